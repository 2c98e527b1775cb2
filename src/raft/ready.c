/*
 * ready.c - the Ready record (etcd raft's Ready/Advance): what the caller
 * must persist, send and apply this round, and what changes once it has.
 */
#include <string.h>

#include "raft/raft_int.h"

static bool soft_changed(const struct raft *r)
{
	return r->prev_ss.leader != r->lead || r->prev_ss.role != r->role;
}

static bool hard_changed(const struct raft *r)
{
	return r->prev_hs.term != r->term || r->prev_hs.vote != r->vote ||
	       r->prev_hs.commit != r->log.committed;
}

/* Committed entries a Ready may hand out now: while a deferred sync is
 * outstanding, only those durable here (see raft_ready). */
static raft_index apply_bound(const struct raft_log *l)
{
	raft_index p;

	if (!l->unsynced)
		return l->committed;
	p = raft_log_persisted(l);
	return p < l->committed ? p : l->committed;
}

bool raft_has_ready(const struct raft *r)
{
	const struct raft_log *l = &r->log;

	if (r->in_ready || r->fatal != 0)
		return false;
	/* Committed entries count only if some can be handed out (apply_bound; unstable
	 * ones go with l->n). */
	return (r->pending_bcast && r->prev_hs.term == r->term) || r->handoff_to != 0 ||
	       r->bye_to != 0 || r->wake_notify || r->n_msgs > 0 || l->n > 0 || l->has_snap ||
	       hard_changed(r) || soft_changed(r) ||
	       (!r->hold_apply && apply_bound(l) > l->applied) || r->n_rs > 0;
}

bool raft_holds_messages(const struct raft *r)
{
	return r->n_msgs > 0;
}

/* Committed entries not yet applied, up to upto, bounded per Ready. */
static int fill_committed(struct raft *r, raft_index upto, uint32_t *n)
{
	struct raft_log *l = &r->log;
	raft_index lo = l->applied + 1, hi = (l->committed < upto ? l->committed : upto) + 1;
	uint64_t max =
	        r->cfg.max_committed_bytes ? r->cfg.max_committed_bytes : RAFT_COMMITTED_MAX_BYTES;
	int rc;

	*n = 0;
	if (lo >= hi || r->hold_apply)
		return RAFT_OK;
	if (hi - lo > RAFT_FETCH_MAX_ENTRIES)
		hi = lo + RAFT_FETCH_MAX_ENTRIES;
	rc = raft_grow(r, (void **)&r->cents, &r->cap_cents, (uint32_t)(hi - lo),
	               sizeof(*r->cents));
	if (rc != RAFT_OK)
		return rc;
	return raft_log_entries(l, lo, hi, max, r->cents, n);
}

/* An empty rd, or why no Ready may be handed out now. */
static int ready_open(struct raft *r, struct raft_ready *rd)
{
	memset(rd, 0, sizeof(*rd));
	if (r->fatal != 0)
		return r->fatal;
	return r->in_ready ? RAFT_ERR_INVALID : RAFT_OK;
}

/* rd hands out the nc committed entries fill_committed gathered. */
static void hand_committed(struct raft *r, struct raft_ready *rd, uint32_t nc)
{
	rd->n_committed = nc;
	rd->committed = r->cents;
	r->rd_committed_hi = nc > 0 ? r->cents[nc - 1].index : 0;
	r->rd_n_committed = nc;
}

int raft_ready(struct raft *r, struct raft_ready *rd)
{
	struct raft_log *l = &r->log;
	uint32_t nc = 0;
	int rc = ready_open(r, rd);

	if (rc != RAFT_OK)
		return rc;
	/*
	 * Appends may leave before the leader persists the entries they carry,
	 * but never before its term and vote are durable: a leader that crashed
	 * and lost its term could otherwise lead that term twice.  Until then
	 * they wait for the next Ready.  Whatever fails for memory here (this
	 * broadcast, the notices, the committed entries) waits for the next Ready.
	 */
	if (r->role == RAFT_LEADER && r->pending_bcast && r->prev_hs.term == r->term &&
	    r->prev_hs.vote == r->vote) {
		r->pending_bcast = false;
		raft_repl_maybe_commit(r); /* no-op unless the quorum moved (or a mutant) */
		if (raft_repl_bcast_append(r) != RAFT_OK)
			r->pending_bcast = true;
	}
	if (r->bye_to != 0) {
		/* A voter removed from two: it learns that the removal committed (membership.c). */
		struct raft_message *m = r->role == RAFT_LEADER && r->bye_commit > 0
		                                 ? raft_send(r, r->bye_to, RAFT_MSG_HEARTBEAT)
		                                 : NULL;

		if (m != NULL)
			m->commit = r->bye_commit;
		if (m != NULL || r->role != RAFT_LEADER || r->bye_commit == 0)
			r->bye_to = 0;
	}
	if (r->handoff_to != 0) {
		/* A leader that removed itself asks the most up-to-date voter to campaign. */
		if (raft_xfer_send_timeout_now(r, r->handoff_to) == RAFT_OK)
			r->handoff_to = 0;
	}
	if (r->wake_notify && raft_quiesce_notify(r) == RAFT_OK)
		r->wake_notify = false;
	/*
	 * A leader's entries of its own term may be synced later; committed
	 * entries are then handed out only up to what is durable here (as
	 * always while a sync is outstanding): a restart must find in its log
	 * what the state machine applied.
	 */
	r->rd_deferred = r->cfg.defer_leader_sync && r->role == RAFT_LEADER && l->n > 0 &&
	                 !l->has_snap && r->prev_hs.term == r->term && r->prev_hs.vote == r->vote;
	if (fill_committed(r, r->rd_deferred ? raft_log_persisted(l) : apply_bound(l), &nc) !=
	    RAFT_OK)
		nc = 0;
	if (raft_done(r, RAFT_OK) != RAFT_OK)
		return r->fatal; /* nothing computed from a failed read leaves */
	r->in_ready = true;
	rd->sync_deferred = r->rd_deferred;
	r->rd_must_sync = !r->rd_deferred &&
	                  (l->n > 0 || l->has_snap || r->prev_hs.term != r->term ||
	                   r->prev_hs.vote != r->vote);

	rd->hard_state_changed = r->rd_hs = hard_changed(r);
	rd->hard_state.term = r->term;
	rd->hard_state.vote = r->vote;
	rd->hard_state.commit = l->committed;
	r->rd_hard_state = rd->hard_state;
	rd->soft_state_changed = r->rd_ss = soft_changed(r);
	rd->soft_state.leader = r->lead;
	rd->soft_state.role = r->role;
	r->rd_soft_state = rd->soft_state;

	rd->has_snapshot = r->rd_snap = l->has_snap;
	if (l->has_snap) {
		rd->snapshot = l->snap;
		r->rd_snap_index = l->snap.index;
	}
	rd->n_entries = l->n;
	rd->entries = l->ents;
	r->rd_last_index = raft_log_last(l);
	r->rd_last_term = l->n > 0 ? l->ents[l->n - 1].term : 0;

	for (uint32_t i = 0; i < r->n_msgs; i++) {
		struct raft_message *m = &r->msgs[i];

		m->entries = r->msg_eoff[i] == UINT32_MAX ? NULL : &r->ments[r->msg_eoff[i]];
		m->snapshot = r->msg_soff[i] == UINT32_MAX ? NULL : &r->msnaps[r->msg_soff[i]];
	}
	rd->n_messages = r->n_msgs;
	rd->messages = r->msgs;

	hand_committed(r, rd, nc);

	rd->n_read_states = r->n_rs;
	rd->read_states = r->rs;
	return RAFT_OK;
}

bool raft_has_apply_ready(const struct raft *r)
{
	const struct raft_log *l = &r->log;

	return !r->in_ready && r->fatal == 0 && !r->hold_apply && l->committed > l->applied &&
	       raft_log_persisted(l) > l->applied;
}

int raft_ready_apply(struct raft *r, struct raft_ready *rd)
{
	uint32_t nc = 0;
	int rc = ready_open(r, rd);

	if (rc != RAFT_OK)
		return rc;
	if (fill_committed(r, raft_log_persisted(&r->log), &nc) != RAFT_OK)
		nc = 0;
	if (raft_done(r, RAFT_OK) != RAFT_OK)
		return r->fatal;
	r->in_ready = true;
	r->rd_apply_only = true;
	r->rd_deferred = false;
	r->rd_must_sync = false;
	r->rd_hs = false;
	r->rd_ss = false;
	r->rd_snap = false;
	r->rd_last_term = 0;
	hand_committed(r, rd, nc);
	return RAFT_OK;
}

void raft_advance(struct raft *r, const struct raft_ready *rd)
{
	struct raft_log *l = &r->log;

	(void)rd;
	if (!r->in_ready)
		return;
	r->in_ready = false;
	/* Everything handed out is done (nothing is queued inside a Ready): reuse the buffers.
	 * An apply-only Ready handed out no messages: they wait for the next one. */
	if (!r->rd_apply_only) {
		r->n_msgs = 0;
		r->n_ments = 0;
		r->n_msnaps = 0;
		dr_arena_reset(&r->mdata);
		r->n_rs = 0;
	}
	if (r->rd_hs)
		r->prev_hs = r->rd_hard_state;
	if (r->rd_ss)
		r->prev_ss = r->rd_soft_state;
	if (r->rd_snap) {
		raft_log_stable_snap_to(l, r->rd_snap_index);
		if (l->applied < r->rd_snap_index)
			l->applied = r->rd_snap_index;
	}
	if (r->rd_committed_hi > l->applied) {
		uint64_t bytes = 0;

		for (uint32_t i = 0; i < r->rd_n_committed; i++)
			bytes += r->cents[i].len;
		l->applied = r->rd_committed_hi;
		if (r->role == RAFT_LEADER)
			r->uncommitted = r->uncommitted > bytes ? r->uncommitted - bytes : 0;
	}
	if (r->rd_deferred && !l->unsynced) {
		l->synced = raft_log_persisted(l); /* before these entries */
		l->unsynced = true;
	} else if (r->rd_must_sync) {
		l->unsynced = false; /* a synced save: every earlier write is durable too */
	}
	if (r->rd_last_term != 0)
		raft_log_stable_to(r, r->rd_last_index, r->rd_last_term);
	/* No entry is unstable and no message refers to their data any more. */
	if (l->n == 0 && !r->rd_apply_only)
		dr_arena_reset(&l->arena);
	r->rd_apply_only = false;
	if (r->rd_last_term != 0 && r->role == RAFT_LEADER) {
		struct progress *self = raft_pr(r, r->id);

		/* The leader counts itself only for what it persisted. */
		if (self != NULL && raft_pr_maybe_update(self, raft_log_persisted(l)) &&
		    raft_repl_maybe_commit(r))
			r->pending_bcast = true;
	}
	raft_done(r, RAFT_OK);
}

int raft_durable(struct raft *r, raft_index index, raft_term term)
{
	struct raft_log *l = &r->log;
	struct progress *self;
	raft_term t;
	int rc;

	if (r->fatal != 0)
		return r->fatal;
	if (r->in_ready)
		return RAFT_ERR_INVALID;
	if (!l->unsynced || index <= l->synced)
		return RAFT_OK; /* known already, or overtaken by a synced save */
	/* (Stored entries turn unstable again only when replaced.) */
	if (index >= l->offset)
		return raft_done(r, RAFT_OK); /* replaced since: a later report covers it */
	rc = raft_log_term(l, index, &t);
	if (rc == RAFT_ERR_NOMEM)
		return rc; /* the term cannot be read now: the caller reports again */
	if (rc != RAFT_OK || t != term)
		return raft_done(r, RAFT_OK); /* replaced since (or compacted), or fatal */
	l->synced = index;
	if (l->synced >= l->offset - 1)
		l->unsynced = false;
	self = raft_pr(r, r->id);
	if (r->role == RAFT_LEADER && self != NULL &&
	    raft_pr_maybe_update(self, raft_log_persisted(l)) && raft_repl_maybe_commit(r))
		r->pending_bcast = true;
	return raft_done(r, RAFT_OK);
}

bool raft_msg_may_precede_persist(const struct raft_message *m)
{
	return m->type == RAFT_MSG_APPEND;
}
