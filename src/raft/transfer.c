/*
 * transfer.c - leadership transfer (thesis 3.10): the leader stops taking
 * proposals, brings the target up to date, then sends it TimeoutNow so it
 * campaigns at once.  A transfer that does not finish within an election
 * timeout is abandoned (raft_tick).
 */
#include "raft/raft_int.h"

int raft_xfer_send_timeout_now(struct raft *r, raft_id to)
{
	struct raft_message *m;
	raft_term last_term;
	int rc;

	rc = raft_log_last_term(&r->log, &last_term);
	if (rc != RAFT_OK)
		return rc;
	m = raft_send(r, to, RAFT_MSG_TIMEOUT_NOW);
	if (m == NULL)
		return RAFT_ERR_NOMEM;
	m->index = raft_log_last(&r->log);
	m->log_term = last_term;
	m->commit = r->log.committed;
	return RAFT_OK;
}

int raft_xfer_maybe_send_timeout_now(struct raft *r, struct progress *pr)
{
	if (pr->match != raft_log_last(&r->log))
		return RAFT_OK;
	return raft_xfer_send_timeout_now(r, pr->id);
}

int raft_xfer_start(struct raft *r, raft_id target)
{
	struct progress *pr;
	bool sent;

	if (r->role != RAFT_LEADER)
		return RAFT_ERR_NOT_LEADER;
	pr = raft_pr(r, target);
	if (pr == NULL || !pr->voter)
		return RAFT_ERR_INVALID;
	if (target == r->id || target == r->transferee)
		return RAFT_OK; /* already leader, or already under way */
	/* Thesis 3.10: the transfer must finish within an election timeout. */
	r->transferee = target;
	/* Its own timer: CheckQuorum's (election_elapsed) must not be set back,
	 * or transfers asked once an election timeout keep a leader cut off
	 * from its quorum in office (review 18). */
	r->transfer_elapsed = 0;
	if (pr->match == raft_log_last(&r->log))
		return raft_xfer_maybe_send_timeout_now(r, pr);
	return raft_repl_send_append(r, pr, true, &sent);
}

void raft_xfer_abort(struct raft *r)
{
	r->transferee = 0;
}
