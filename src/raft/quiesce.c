/*
 * quiesce.c - quiescence (after Dragonboat): a group with nothing to do stops
 * ticking, so that thousands of idle groups cost almost nothing.  The leader
 * decides, once the group has been idle for quiesce_tick ticks, and tells
 * every member with RAFT_MSG_QUIESCE.  Any input wakes a replica (raft.h,
 * "Quiescence"); waking restarts the timers, so a quiet period never counts
 * towards an election timeout or a CheckQuorum step-down.
 */
#include "raft/raft_int.h"

/* Leader: nothing under way and every member holds and knows all of the log. */
static bool idle(const struct raft *r)
{
	const struct raft_log *l = &r->log;
	raft_index last = raft_log_last(l);

	if (l->n > 0 || l->committed != last || l->applied != last || r->n_rq > 0 ||
	    r->transferee != 0 || r->pending_conf_index > l->applied || r->pending_bcast ||
	    r->handoff_to != 0 || r->bye_to != 0 || r->n_msgs > 0)
		return false;
	for (uint32_t i = 0; i < r->n_prs; i++) {
		const struct progress *pr = &r->prs[i];

		if (pr->id != r->id &&
		    (pr->match != last || pr->commit != last || pr->state == PR_SNAPSHOT))
			return false;
	}
	return true;
}

int raft_quiesce_tick(struct raft *r)
{
	if (!idle(r)) {
		r->idle_ticks = 0;
		return RAFT_OK;
	}
	if (++r->idle_ticks < r->cfg.quiesce_tick)
		return RAFT_OK;
	for (uint32_t i = 0; i < r->n_prs; i++) {
		struct raft_message *m;

		if (r->prs[i].id == r->id)
			continue;
		m = raft_send(r, r->prs[i].id, RAFT_MSG_QUIESCE);
		if (m == NULL)
			return RAFT_ERR_NOMEM; /* the next tick tries again */
		/* As a heartbeat's: a member that restarted since it reported its
		 * commit index (which need not be stored) learns it before it goes
		 * quiet, for no heartbeat comes after this. */
		m->commit = r->prs[i].match < r->log.committed ? r->prs[i].match : r->log.committed;
	}
	r->quiesced = true;
	return RAFT_OK;
}

int raft_quiesce_follow(struct raft *r, const struct raft_message *m)
{
	raft_index last = raft_log_last(&r->log);

	r->election_elapsed = 0;
	r->quiesced = true;
	return raft_log_commit_to(r, m->commit < last ? m->commit : last);
}

void raft_quiesce_wake(struct raft *r)
{
	if (!r->quiesced)
		return;
	r->quiesced = false;
	r->idle_ticks = 0;
	r->election_elapsed = 0;
	r->heartbeat_elapsed = 0;
	/* The quiet period proves nothing about the quorum: a full CheckQuorum period. */
	for (uint32_t i = 0; i < r->n_prs; i++)
		r->prs[i].recent_active = true;
	r->wake_notify = true;
}

int raft_quiesce_notify(struct raft *r)
{
	struct raft_message *m;

	if (r->role == RAFT_LEADER)
		return raft_repl_bcast_heartbeat(r, r->read_seq);
	if (r->role != RAFT_FOLLOWER || r->lead == 0)
		return RAFT_OK;
	m = raft_send(r, r->lead, RAFT_MSG_HEARTBEAT_RESP);
	if (m == NULL)
		return RAFT_ERR_NOMEM;
	m->flags = RAFT_MSG_FLAG_WAKE;
	m->commit = r->log.committed;
	return RAFT_OK;
}

int raft_quiesce_seek(struct raft *r)
{
	/* Not a member (yet: a joiner): its leader comes to it once it is added. */
	if (!raft_membership_contains(&r->conf, r->id))
		return RAFT_OK;
	for (uint32_t i = 0; i < r->conf.n_voters; i++) {
		struct raft_message *m;

		if (r->conf.voters[i] == r->id)
			continue;
		m = raft_send(r, r->conf.voters[i], RAFT_MSG_HEARTBEAT_RESP);
		if (m == NULL)
			return RAFT_ERR_NOMEM;
		m->flags = RAFT_MSG_FLAG_WAKE;
		m->commit = r->log.committed;
	}
	return RAFT_OK;
}
