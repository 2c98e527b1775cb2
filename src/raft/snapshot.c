/*
 * snapshot.c - InstallSnapshot (paper 7, thesis 5.3): the leader sends its
 * latest snapshot to a follower that needs compacted entries; a follower
 * replaces its log with it.  Snapshot data travels outside the core; the
 * message carries the metadata.  Compaction is driven by the caller.
 */
#include "raft/raft_int.h"

int raft_snap_send(struct raft *r, struct progress *pr, bool *sent)
{
	struct raft_snapshot_meta meta;
	struct raft_message *m;
	int rc;

	*sent = false;
	rc = r->log.st.snapshot(r->log.st.ctx, &meta);
	if (rc != RAFT_OK)
		return raft_log_fail(&r->log, rc, pr->next);
	if (meta.index == 0)
		return RAFT_OK; /* nothing to send yet; retried on the next attempt */
	m = raft_send(r, pr->id, RAFT_MSG_SNAPSHOT);
	if (m == NULL)
		return RAFT_ERR_NOMEM;
	m->index = meta.index;
	m->log_term = meta.term;
	m->commit = r->log.committed;
	rc = raft_msg_attach_snapshot(r, &meta);
	if (rc != RAFT_OK) {
		r->n_msgs--;
		return rc;
	}
	raft_pr_become_snapshot(pr, meta.index);
	*sent = true;
	return RAFT_OK;
}

int raft_snap_handle(struct raft *r, const struct raft_message *m)
{
	const struct raft_snapshot_meta *s = m->snapshot;
	struct raft_log *l = &r->log;
	struct raft_message *o;
	bool have = false;
	int rc;

	/* A term that cannot be read is no reason to discard the log: drop the message. */
	if (s->index > l->committed) {
		rc = raft_log_match_term(l, s->index, s->term, &have);
		if (rc != RAFT_OK)
			return rc;
	}
	if (s->index <= l->committed || !raft_membership_contains(&s->membership, r->id)) {
		/* Stale, or not meant for us: report where we are. */
	} else if (have) {
		/*
		 * Paper 7: we already have the snapshot's last entry; keep the
		 * entries after it (we may have acknowledged them) and just
		 * fast-forward commit.
		 */
		rc = raft_log_commit_to(r, s->index);
		if (rc != RAFT_OK)
			return rc;
	} else {
		/* Paper 7: discard the entire log and install the snapshot (all or nothing). */
		rc = raft_pr_sync_conf(r, &s->membership);
		if (rc != RAFT_OK)
			return rc;
		raft_log_restore(r, s);
	}
	o = raft_send(r, m->from, RAFT_MSG_APPEND_RESP);
	if (o == NULL)
		return RAFT_ERR_NOMEM;
	o->index = l->has_snap ? l->snap.index : l->committed;
	return RAFT_OK;
}
