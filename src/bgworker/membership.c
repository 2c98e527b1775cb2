/*
 * membership.c - the engine worker's side of membership changes, leaving a
 * group, linearizable read points and snapshot requests (DESIGN §5, §6, §9).
 *
 * A change is checked here against the membership the engine has (the
 * leader's is the one that counts), so that the usual mistakes get their
 * own error instead of the Raft core's generic refusal: an id removed
 * before (never accepted again), an existing member, a member that is not
 * there, the last voter, one of two voters (the other alone would then be
 * a quorum of one: allowed only with force).  The Raft core checks again,
 * and refuses a second change while one is pending.  Changes go through the
 * leader only; a follower answers with the leader's id.
 */
#include "engine_worker.h"

#include "membership.h"
#include "queue.h"
#include "raft/raft.h"

static void complete(const DrTaken *t, int rc, uint64 leader)
{
	DrResult res;

	memset(&res, 0, sizeof(res));
	res.rc = rc;
	res.leader = leader;
	dr_queue_complete(t->slot, t->generation, &res);
}

static bool listed(const raft_id *ids, uint32 n, raft_id id)
{
	for (uint32 i = 0; i < n; i++)
		if (ids[i] == id)
			return true;
	return false;
}

/* Why membership m refuses change c of node, or 0. */
static int refusal(const struct raft_membership *m, const DrMemberChange *c, raft_id node)
{
	bool voter = listed(m->voters, m->n_voters, node);
	bool nonvoter = listed(m->nonvoters, m->n_nonvoters, node);

	if (listed(m->removed, m->n_removed, node))
		return DR_RC_REMOVED;
	switch (c->type) {
	case RAFT_CC_ADD_VOTER:
		if (voter || (nonvoter && !c->promote))
			return DR_RC_IS_MEMBER;
		if (c->promote && !nonvoter)
			return DR_RC_NOT_MEMBER;
		return 0;
	case RAFT_CC_ADD_NONVOTER:
		return voter || nonvoter ? DR_RC_IS_MEMBER : 0;
	default:
		if (!voter && !nonvoter)
			return DR_RC_NOT_MEMBER;
		if (voter && m->n_voters == 1)
			return DR_RC_LAST_VOTER;
		if (voter && m->n_voters == 2 && !c->force)
			return DR_RC_TWO_VOTERS;
		return 0;
	}
}

static void change_member(DrTaken *t)
{
	static struct engine_group_status st;
	DrMemberChange c;
	raft_id node = t->arg;
	int rc;

	if (t->len != sizeof(c)) {
		dr_queue_done_with_payload(t);
		complete(t, DR_RC_BAD_REQUEST, 0);
		return;
	}
	memcpy(&c, t->payload, sizeof(c));
	dr_queue_done_with_payload(t);
	c.addr[sizeof(c.addr) - 1] = '\0';
	if (dr_engine_groups_find(t->group_id) == NULL ||
	    engine_group_status(dr_engine->e, t->group_id, &st) != ENGINE_OK) {
		complete(t, ENGINE_ERR_NO_GROUP, 0);
		return;
	}
	if (st.role != RAFT_LEADER) {
		complete(t, st.leader != 0 ? ENGINE_ERR_NOT_LEADER : ENGINE_ERR_DROPPED, st.leader);
		return;
	}
	rc = refusal(&st.membership, &c, node);
	if (rc != 0) {
		complete(t, rc, st.leader);
		return;
	}
	if (c.type == RAFT_CC_REMOVE)
		rc = engine_remove_member(dr_engine->e, t->group_id, node, dr_engine_groups_op_done,
		                          dr_queue_ctx(t));
	else if (c.type == RAFT_CC_ADD_NONVOTER)
		rc = engine_add_nonvoter(dr_engine->e, t->group_id, node, c.addr,
		                         dr_engine_groups_op_done, dr_queue_ctx(t));
	else
		rc = engine_add_member(dr_engine->e, t->group_id, node, c.promote ? NULL : c.addr,
		                       dr_engine_groups_op_done, dr_queue_ctx(t));
	if (rc != ENGINE_OK) {
		complete(t, rc, st.leader);
		return;
	}
	if (c.addr[0] != '\0') {
		/* dragonraft.members shows its address here at once */
		LWLockAcquire(dr_shared->groups_lock, LW_EXCLUSIVE);
		(void)dr_shmem_node_set(node, c.addr);
		LWLockRelease(dr_shared->groups_lock);
	}
}

static void leave_group(DrTaken *t)
{
	int rc = engine_remove_group_data(dr_engine->e, t->group_id);

	if (rc == ENGINE_OK || rc == ENGINE_ERR_NO_GROUP) {
		dr_engine_groups_stop(t->group_id);
		ereport(LOG,
		        (errmsg("dragonraft group %llu: node %d left it, its LogDB data deleted",
		                (unsigned long long)t->group_id, dr_node_id)));
		rc = ENGINE_OK;
	}
	complete(t, rc, 0);
}

bool dr_membership_request(DrTaken *t)
{
	int rc;

	switch (t->kind) {
	case DR_REQ_CHANGE_MEMBER:
		change_member(t);
		return true;
	case DR_REQ_LEAVE_GROUP:
		dr_queue_done_with_payload(t);
		leave_group(t);
		return true;
	case DR_REQ_READ_INDEX:
		dr_queue_done_with_payload(t);
		rc = engine_read_index(dr_engine->e, t->group_id, dr_engine_groups_op_done,
		                       dr_queue_ctx(t));
		break;
	case DR_REQ_SNAPSHOT:
		dr_queue_done_with_payload(t);
		rc = engine_request_snapshot(dr_engine->e, t->group_id, dr_engine_groups_op_done,
		                             dr_queue_ctx(t));
		break;
	default:
		return false;
	}
	if (rc != ENGINE_OK) {
		DrSm *sm = dr_engine_groups_find(t->group_id);

		complete(t, rc, sm != NULL ? sm->leader : 0);
	}
	return true;
}
