/*
 * membership.c - the engine worker's side of membership changes, leaving a
 * group, linearizable read points, snapshot requests (DESIGN §5, §6, §9) and
 * log digests (dragonraft.log_digest).
 *
 * A change is checked here against the membership the engine has (the
 * leader's is the one that counts), so that the usual mistakes get their
 * own error instead of the Raft core's generic refusal: an id removed
 * before (never accepted again), an existing member, a member that is not
 * there, the last voter, one of two voters (the other alone would then be
 * a quorum of one: allowed only with force).  Unless forced, a change must
 * also leave a quorum of the new voters that answer the leader now (etcd's
 * strict reconfiguration check; see answers()): adding a voter to a one-voter group, or
 * removing a live voter while another is down, would stop the group for as
 * long as the missing voter stays away (for ever, for a wrong address); and
 * a non-voter is promoted only once it has caught up.  The Raft core checks again,
 * and refuses a second change while one is pending.  Changes go through the
 * leader only; a follower answers with the leader's id.
 */
#include "engine_worker.h"

#include "membership.h"
#include "miscadmin.h"
#include "origins.h"
#include "queue.h"
#include "raft/raft.h"
#include "transport/transport.h"
#include "utils/memutils.h"

static void complete(const DrTaken *t, int rc, uint64 leader)
{
	DrResult res;

	memset(&res, 0, sizeof(res));
	res.rc = rc;
	res.leader = leader;
	dr_queue_complete(t->slot, t->generation, &res);
}

/* A request's payload of exactly len bytes into buf, the payload released; else the request
 * completes as a bad one (false). */
static bool take_payload(DrTaken *t, void *buf, size_t len)
{
	bool ok = t->len == len;

	if (ok)
		memcpy(buf, t->payload, len);
	dr_queue_done_with_payload(t);
	if (!ok)
		complete(t, DR_RC_BAD_REQUEST, 0);
	return ok;
}

static bool listed(const raft_id *ids, uint32 n, raft_id id)
{
	for (uint32 i = 0; i < n; i++)
		if (ids[i] == id)
			return true;
	return false;
}

/* A non-voter this close to the leader's last index may be promoted. */
#define PROMOTE_MAX_LAG 1024

/*
 * Does member id answer the leader (st: the leader's status)?  The transport
 * has a connection to it open (a server that stopped or crashed closed it at
 * once), and it was heard from within an election timeout (a server cut off
 * or powered off), unless the group is quiescent and exchanges no
 * heartbeats (its members all held the whole log when it went quiet).
 */
static bool answers(const struct engine_group_status *st, raft_id id, raft_index *match)
{
	uint64 now = engine_now(dr_engine->e);
	struct transport_peer_stats ps;

	*match = st->last_index;
	if (id == st->leader)
		return true;
	for (uint32 i = 0; i < st->n_peers; i++) {
		const struct engine_peer_status *p = &st->peers[i];

		if (p->node_id != id)
			continue;
		*match = p->match;
		if (transport_peer_stats(dr_engine->t, id, &ps) != TRANSPORT_OK || !ps.connected)
			return false;
		return st->quiescent ||
		       (p->contact_tick != 0 && now - p->contact_tick <= (uint64)dr_election_rtt);
	}
	*match = 0;
	return false;
}

/* Unless forced: do the voters after change c of node that answer now form a quorum? */
static int quorum_refusal(const struct engine_group_status *st, const DrMemberChange *c,
                          raft_id node, DrResult *res)
{
	const struct raft_membership *m = &st->membership;
	uint32 n = 0, live = 0;
	raft_index match;

	for (uint32 i = 0; i < m->n_voters; i++) {
		if (c->type == RAFT_CC_REMOVE && m->voters[i] == node)
			continue;
		n++;
		live += answers(st, m->voters[i], &match);
	}
	if (c->type == RAFT_CC_ADD_VOTER) {
		bool up = answers(st, node, &match);

		if (c->promote && (!up || match + PROMOTE_MAX_LAG < st->last_index)) {
			snprintf(res->errmsg, sizeof(res->errmsg),
			         "It %s the leader, and holds the log up to entry %llu of %llu.",
			         up ? "answers" : "does not answer", (unsigned long long)match,
			         (unsigned long long)st->last_index);
			return DR_RC_BEHIND;
		}
		n++;
		live += up;
	}
	if (live >= n / 2 + 1)
		return 0;
	snprintf(
	        res->errmsg, sizeof(res->errmsg),
	        "After the change %u of its %u voters would answer the leader now; a quorum is %u.",
	        live, n, n / 2 + 1);
	return DR_RC_NO_QUORUM;
}

/* Why the leader's status st refuses change c of node, or 0 (res: details). */
static int refusal(const struct engine_group_status *st, const DrMemberChange *c, raft_id node,
                   DrResult *res)
{
	const struct raft_membership *m = &st->membership;
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
		break;
	case RAFT_CC_ADD_NONVOTER:
		return voter || nonvoter ? DR_RC_IS_MEMBER : 0;
	default:
		if (!voter && !nonvoter)
			return DR_RC_NOT_MEMBER;
		if (voter && m->n_voters == 1)
			return DR_RC_LAST_VOTER;
		if (voter && m->n_voters == 2 && !c->force)
			return DR_RC_TWO_VOTERS;
		if (!voter)
			return 0;
	}
	return c->force ? 0 : quorum_refusal(st, c, node, res);
}

static void change_member(DrTaken *t)
{
	static struct engine_group_status st;
	DrMemberChange c;
	DrResult res;
	raft_id node = t->arg;
	void *ctx;
	int rc;

	if (!take_payload(t, &c, sizeof(c)))
		return;
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
	memset(&res, 0, sizeof(res));
	res.rc = refusal(&st, &c, node, &res);
	if (res.rc != 0) {
		dr_queue_complete(t->slot, t->generation, &res);
		return;
	}
	/* (the function returns once dragonraft.members shows the change here:
	 * before, the backend waited up to a second for the status copy, and
	 * on a loaded server returned before it, saying nothing) */
	ctx = dr_engine_groups_shown_ctx(t->group_id, dr_queue_ctx(t));
	if (ctx == NULL) {
		complete(t, ENGINE_ERR_NOMEM, st.leader);
		return;
	}
	if (c.type == RAFT_CC_REMOVE)
		rc = engine_remove_member(dr_engine->e, t->group_id, node, dr_engine_groups_shown_cb,
		                          ctx);
	else if (c.type == RAFT_CC_ADD_NONVOTER)
		rc = engine_add_nonvoter(dr_engine->e, t->group_id, node, c.addr,
		                         dr_engine_groups_shown_cb, ctx);
	else
		rc = engine_add_member(dr_engine->e, t->group_id, node, c.promote ? NULL : c.addr,
		                       dr_engine_groups_shown_cb, ctx);
	if (rc != ENGINE_OK) {
		free(ctx);
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

/*
 * arg 1: a join that gave up (no leader contacted the new member).  Its
 * origin, made when it started, is dropped here: the backend's drop would
 * roll back with join_group's error, leaving an origin that marks a member
 * without a LogDB.
 */
static void leave_group(DrTaken *t)
{
	int rc = engine_remove_group_data(dr_engine->e, t->group_id);

	if (rc == ENGINE_OK || rc == ENGINE_ERR_NO_GROUP) {
		dr_engine_groups_stop(t->group_id);
		if (t->arg == 1)
			(void)dr_origins_drop(t->group_id); /* (logged if it failed) */
		ereport(LOG,
		        (errmsg("dragonraft group %llu: node %d left it, its LogDB data deleted",
		                (unsigned long long)t->group_id, dr_node_id)));
		rc = ENGINE_OK;
	}
	complete(t, rc, 0);
}

/*
 * One step of a log digest (dragonraft.log_digest): at most this many
 * entries, or about this many bytes of their data, read and hashed while the
 * engine's rounds wait; the backend asks again for the next step.
 */
#define DIGEST_STEP_ENTRIES 2048
#define DIGEST_STEP_BYTES   (4 * 1024 * 1024)

/*
 * The steps one engine loop runs, whatever the number of digests asked: a
 * commit of any group waits for them between two Raft rounds.  A step per
 * request taken made that wait grow with the backends digesting (20 commits
 * beside 1, 4, 8 digest loops: 0.6, 2.2, 4.7 s).  The others wait in
 * arrival order for the next loops, which come at once (dr_membership_digests
 * _waiting): each loop runs one step between its rounds.
 */
#define DIGEST_LOOP_STEPS 1

/* A digest request waiting for its step: the ring holds at most one a slot. */
typedef struct DigestWait {
	int slot;
	uint64 generation;
	uint64 group_id;
	uint64 arg;
	struct engine_log_digest d;
} DigestWait;

static DigestWait *digests; /* MaxBackends of them, a ring */
static int digests_head, digests_n;

void dr_membership_digests_open(void)
{
	if (digests == NULL)
		digests =
		        MemoryContextAllocZero(TopMemoryContext, sizeof(DigestWait) * MaxBackends);
	digests_head = digests_n = 0;
	SpinLockAcquire(&dr_shared->mutex);
	dr_shared->digest_steps = 0;
	dr_shared->digest_steps_loop_max = 0;
	SpinLockRelease(&dr_shared->mutex);
}

bool dr_membership_digests_waiting(void)
{
	return digests_n > 0;
}

static void log_digest(DrTaken *t)
{
	DigestWait *w;

	if (digests_n >= MaxBackends) { /* cannot be: one request a slot */
		dr_queue_done_with_payload(t);
		complete(t, DR_RC_BAD_REQUEST, 0);
		return;
	}
	w = &digests[(digests_head + digests_n) % MaxBackends];
	if (!take_payload(t, &w->d, sizeof(w->d)))
		return;
	w->slot = t->slot;
	w->generation = t->generation;
	w->group_id = t->group_id;
	w->arg = t->arg;
	digests_n++;
}

static void digest_step(DigestWait *w)
{
	struct engine_log_digest d = w->d;
	DrResult res;

	StaticAssertStmt(sizeof(d) <= sizeof(res.out), "DR_RESULT_OUT is too small");
	memset(&res, 0, sizeof(res));
	res.rc = ENGINE_OK;
	if (w->arg == 0)
		res.rc = engine_log_digest_start(dr_engine->e, w->group_id, d.first, d.last, &d);
	if (res.rc == ENGINE_OK)
		res.rc = engine_log_digest_step(dr_engine->e, w->group_id, &d, DIGEST_STEP_ENTRIES,
		                                DIGEST_STEP_BYTES);
	if (res.rc != ENGINE_OK)
		strlcpy(res.errmsg, engine_errmsg(dr_engine->e), sizeof(res.errmsg));
	memcpy(res.out, &d, sizeof(d));
	dr_queue_complete(w->slot, w->generation, &res);
}

void dr_membership_digests_run(void)
{
	int steps = 0, kept = 0;

	/* Requests given up on (a cancel, statement_timeout, an exit) leave at
	 * once, wherever they wait: their backends wait for their slots to be
	 * free before they ask anything else. */
	for (int i = 0; i < digests_n; i++) {
		DigestWait *w = &digests[(digests_head + i) % MaxBackends];

		if (dr_queue_given_up(w->slot, w->generation)) {
			DrResult res;

			memset(&res, 0, sizeof(res));
			res.rc = DR_RC_BAD_REQUEST; /* (nobody reads it) */
			dr_queue_complete(w->slot, w->generation, &res);
			continue;
		}
		if (kept != i)
			digests[(digests_head + kept) % MaxBackends] = *w;
		kept++;
	}
	digests_n = kept;
	for (; digests_n > 0 && steps < DIGEST_LOOP_STEPS; steps++) {
		digest_step(&digests[digests_head]);
		digests_head = (digests_head + 1) % MaxBackends;
		digests_n--;
	}
	if (steps == 0)
		return;
	SpinLockAcquire(&dr_shared->mutex);
	dr_shared->digest_steps += (uint64)steps;
	dr_shared->digest_steps_loop_max = Max(dr_shared->digest_steps_loop_max, steps);
	SpinLockRelease(&dr_shared->mutex);
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
	case DR_REQ_LOG_DIGEST:
		log_digest(t);
		return true;
	case DR_REQ_READ_INDEX:
		dr_queue_done_with_payload(t);
		rc = engine_read_index(dr_engine->e, t->group_id, dr_engine_groups_op_done,
		                       dr_queue_ctx(t));
		break;
	case DR_REQ_SNAPSHOT: {
		static struct engine_group_status st;
		void *ctx;

		dr_queue_done_with_payload(t);
		/* It waits until the group's last membership change (in the log, up
		 * to its last index) is applied and committed here: not after a
		 * follower's apply_batch_delay, which outlasts the request's timeout
		 * (review 37). */
		if (engine_group_status(dr_engine->e, t->group_id, &st) == ENGINE_OK)
			dr_shmem_want_applied(t->group_id, st.last_index);
		/* The snapshot covers what is applied now, not what was durable at the
		 * last refresh (up to DURABLE_MS ago: it returned the previous index). */
		dr_pg_sm_refresh_durable();
		/* (snapshot() returns once dragonraft.status shows the snapshot) */
		ctx = dr_engine_groups_shown_ctx(t->group_id, dr_queue_ctx(t));
		if (ctx == NULL) {
			rc = ENGINE_ERR_NOMEM;
			break;
		}
		rc = engine_request_snapshot(dr_engine->e, t->group_id, dr_engine_groups_shown_cb,
		                             ctx);
		if (rc != ENGINE_OK)
			free(ctx);
		break;
	}
	default:
		return false;
	}
	if (rc != ENGINE_OK) {
		DrSm *sm = dr_engine_groups_find(t->group_id);

		complete(t, rc, sm != NULL ? sm->leader : 0);
	}
	return true;
}
