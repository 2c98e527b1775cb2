/*
 * replication.c - log replication (paper 5.3): proposals, appends with
 * pipelining and flow control, fast backtracking on rejection, heartbeats,
 * and the leader's commit rule (paper 5.4.2).
 */
#include <string.h>

#include "raft/raft_int.h"

int raft_repl_append(struct raft *r, struct raft_entry *e, uint32_t n)
{
	raft_index last = raft_log_last(&r->log);
	struct progress *self;
	int rc;

	for (uint32_t i = 0; i < n; i++) {
		e[i].term = r->term;
		e[i].index = last + 1 + i;
	}
	rc = raft_log_append(r, e, n);
	if (rc != RAFT_OK)
		return rc;
	self = raft_pr(r, r->id);
	if (self != NULL)
		self->next = raft_log_last(&r->log) + 1; /* match moves only once persisted */
	r->pending_bcast = true;
	return RAFT_OK;
}

/* Follower: send proposals to the leader (entry data copied for the message). */
static int forward_proposal(struct raft *r, const struct raft_entry *e, uint32_t n)
{
	struct raft_message *m;
	uint32_t base;
	int rc;

	if (r->role != RAFT_FOLLOWER || r->lead == 0)
		return RAFT_ERR_NO_LEADER;
	m = raft_send(r, r->lead, RAFT_MSG_PROPOSE);
	if (m == NULL)
		return RAFT_ERR_NOMEM;
	base = r->n_ments;
	rc = raft_msg_attach_entries(r, e, n);
	if (rc != RAFT_OK) {
		r->n_msgs--;
		return rc;
	}
	for (uint32_t i = 0; i < n; i++) {
		struct raft_entry *d = &r->ments[base + i];

		d->term = 0;
		d->index = 0;
		d->data = raft_msg_copy_data(r, e[i].data, e[i].len);
		if (e[i].len > 0 && d->data == NULL) {
			r->n_msgs--;
			r->n_ments = base;
			return RAFT_ERR_NOMEM;
		}
	}
	return RAFT_OK;
}

/* Leader: check and append one proposed entry. */
static int propose_one(struct raft *r, const struct raft_entry *in, raft_index *index)
{
	struct raft_entry e = *in;
	struct raft_conf_change cc;
	int rc;

	if (r->cfg.max_entry_bytes > 0 && e.len > r->cfg.max_entry_bytes)
		return RAFT_ERR_TOO_BIG;
	/* A leader may exceed the limit once when nothing is uncommitted (etcd). */
	if (r->cfg.max_uncommitted_bytes > 0 && e.len > 0 && r->uncommitted > 0 &&
	    r->uncommitted + e.len > r->cfg.max_uncommitted_bytes)
		return RAFT_ERR_TOO_MANY_UNCOMMITTED;
	if (e.type == RAFT_ENTRY_CONF_CHANGE) {
		rc = raft_conf_change_decode(e.data, e.len, &cc);
		if (rc != RAFT_OK)
			return rc;
		/* Thesis 4.1: one membership change at a time. */
		if (r->pending_conf_index > r->log.applied)
			return RAFT_ERR_CONF_CHANGE_PENDING;
		rc = raft_memb_validate(r, &cc);
		if (rc != RAFT_OK)
			return rc;
	}
	rc = raft_repl_append(r, &e, 1);
	if (rc != RAFT_OK)
		return rc;
	if (e.type == RAFT_ENTRY_CONF_CHANGE)
		r->pending_conf_index = e.index;
	r->uncommitted += e.len;
	if (index != NULL)
		*index = e.index;
	return RAFT_OK;
}

int raft_repl_propose(struct raft *r, const struct raft_entry *e, uint32_t n, raft_index *index)
{
	int rc = RAFT_OK;

	if (r->role != RAFT_LEADER)
		return forward_proposal(r, e, n);
	if (r->transferee != 0)
		return RAFT_ERR_TRANSFER_IN_PROGRESS;
	if (raft_pr(r, r->id) == NULL)
		return RAFT_ERR_NOT_LEADER; /* removed itself: it is on its way out */
	for (uint32_t i = 0; i < n; i++) {
		int one = propose_one(r, &e[i], index);

		if (one != RAFT_OK)
			rc = one;
	}
	return rc;
}

/*
 * An append to pr from pr->next: with entries (up to max_msg_bytes) unless
 * entries is false, and without any only when send_if_empty.
 */
static int send_append(struct raft *r, struct progress *pr, bool send_if_empty, bool entries,
                       bool *sent)
{
	struct raft_log *l = &r->log;
	raft_index prev = pr->next - 1, last = entries ? raft_log_last(l) : prev;
	struct raft_message *m;
	raft_term prev_term;
	uint32_t n = 0;
	uint64_t bytes = 0;
	int rc;

	rc = raft_log_term(l, prev, &prev_term);
	if (rc == RAFT_ERR_COMPACTED)
		return raft_snap_send(r, pr, sent);
	if (rc != RAFT_OK)
		return rc == RAFT_ERR_UNAVAILABLE ? RAFT_OK : rc;
	if (pr->next <= last) {
		raft_index hi = last + 1;

		if (hi - pr->next > RAFT_FETCH_MAX_ENTRIES)
			hi = pr->next + RAFT_FETCH_MAX_ENTRIES;
		rc = raft_grow(r, (void **)&r->ments, &r->cap_ments,
		               r->n_ments + (uint32_t)(hi - pr->next), sizeof(*r->ments));
		if (rc != RAFT_OK)
			return rc;
		rc = raft_log_entries(l, pr->next, hi, r->cfg.max_msg_bytes, r->ments + r->n_ments,
		                      &n);
		if (rc == RAFT_ERR_COMPACTED)
			return raft_snap_send(r, pr, sent);
		if (rc != RAFT_OK)
			return rc;
	}
	if (n == 0 && !send_if_empty)
		return RAFT_OK;
	m = raft_send(r, pr->id, RAFT_MSG_APPEND);
	if (m == NULL)
		return RAFT_ERR_NOMEM;
	m->index = prev;
	m->log_term = prev_term;
	m->commit = l->committed;
	pr->sent_commit = l->committed;
	if (n > 0) {
		raft_index end = r->ments[r->n_ments + n - 1].index;

		r->msg_eoff[r->n_msgs - 1] = r->n_ments;
		m->n_entries = n;
		for (uint32_t i = 0; i < n; i++)
			bytes += r->ments[r->n_ments + i].len;
		r->n_ments += n;
		pr->sent_last = end;
		if (pr->state == PR_REPLICATE) {
			/* Pipelining: optimistically move next past what is in flight. */
			pr->next = end + 1;
			rc = raft_ifl_add(r, &pr->ifl, end, bytes);
			if (rc != RAFT_OK)
				return rc;
		}
	} else if (pr->state == PR_REPLICATE && prev == pr->match)
		m->flags |= RAFT_MSG_FLAG_COMMIT_ONLY; /* its answer would tell nothing */
	if (pr->state == PR_PROBE) {
		pr->probe_sent = true;
		/* raft_repl_handle_heartbeat_resp: one with entries waits to be re-sent. */
		pr->probe_hold = n > 0 ? r->ticks + r->cfg.election_tick : 0;
	}
	*sent = true;
	return RAFT_OK;
}

int raft_repl_send_append(struct raft *r, struct progress *pr, bool send_if_empty, bool *sent)
{
	*sent = false;
	if (raft_pr_is_paused(r, pr))
		return RAFT_OK;
	return send_append(r, pr, send_if_empty, true, sent);
}

/*
 * Whether pr should now get an append without entries for a newer commit
 * index.  Not while the leader holds uncommitted entries (their commit
 * brings a broadcast again) or has appends in flight to pr (its answer
 * does): appends with entries carry the commit meanwhile, and a heartbeat
 * does should neither come.  Under load that saves a message per commit,
 * and the answer that the flag RAFT_MSG_FLAG_COMMIT_ONLY spares.
 */
static bool commit_news(const struct raft *r, const struct progress *pr)
{
	const struct raft_log *l = &r->log;

	return l->committed > pr->sent_commit && l->committed == raft_log_last(l) &&
	       pr->next == pr->match + 1;
}

int raft_repl_bcast_append(struct raft *r)
{
	for (uint32_t i = 0; i < r->n_prs; i++) {
		struct progress *pr = &r->prs[i];
		bool sent = true;
		int rc;

		if (pr->id == r->id)
			continue;
		/* An empty append only to probe or to spread a new commit index. */
		rc = raft_repl_send_append(r, pr, pr->state == PR_PROBE || commit_news(r, pr),
		                           &sent);
		/* Keep the pipe full while the window allows. */
		while (rc == RAFT_OK && sent && pr->next <= raft_log_last(&r->log))
			rc = raft_repl_send_append(r, pr, false, &sent);
		if (rc != RAFT_OK)
			return rc;
	}
	return RAFT_OK;
}

int raft_repl_bcast_heartbeat(struct raft *r, uint64_t ctx)
{
	for (uint32_t i = 0; i < r->n_prs; i++) {
		struct progress *pr = &r->prs[i];
		struct raft_message *m;

		if (pr->id == r->id)
			continue;
		m = raft_send(r, pr->id, RAFT_MSG_HEARTBEAT);
		if (m == NULL)
			return RAFT_ERR_NOMEM;
		/* The follower may not have our entries beyond match yet. */
		m->commit = pr->match < r->log.committed ? pr->match : r->log.committed;
		m->context = ctx;
	}
	return RAFT_OK;
}

/* Visit the conf change entries of the log in [lo, hi] (in order) until visit returns true. */
static int scan_conf(struct raft *r, raft_index lo, raft_index hi,
                     bool (*visit)(void *arg, raft_index i, const struct raft_conf_change *cc),
                     void *arg)
{
	struct raft_log *l = &r->log;

	if (lo < raft_log_first(l))
		lo = raft_log_first(l); /* compacted: applied, in r->conf */
	while (lo <= hi) {
		raft_index end = hi - lo >= 1024 ? lo + 1024 : hi + 1;
		uint32_t n = 0;
		int rc = raft_grow(r, (void **)&r->fetch, &r->cap_fetch, (uint32_t)(end - lo),
		                   sizeof(*r->fetch));

		if (rc == RAFT_OK)
			rc = raft_log_entries(l, lo, end, UINT64_MAX, r->fetch, &n);
		if (rc == RAFT_OK && n == 0)
			rc = RAFT_ERR_UNAVAILABLE;
		if (rc != RAFT_OK)
			return rc;
		for (uint32_t k = 0; k < n; k++) {
			struct raft_conf_change cc;

			if (r->fetch[k].type == RAFT_ENTRY_CONF_CHANGE &&
			    raft_conf_change_decode(r->fetch[k].data, r->fetch[k].len, &cc) ==
			            RAFT_OK &&
			    visit(arg, r->fetch[k].index, &cc))
				return RAFT_OK;
		}
		lo += n;
	}
	return RAFT_OK;
}

static bool find_self_removal(void *arg, raft_index i, const struct raft_conf_change *cc)
{
	struct {
		raft_id self;
		raft_index at;
	} *a = arg;

	if (cc->type != RAFT_CC_REMOVE || cc->node_id != a->self)
		return false;
	a->at = i;
	return true;
}

/* The voters as the conf changes below `at` leave them (what applying them will do). */
struct voters_at {
	struct raft_membership c;
	raft_index at;
};

static bool track_voters(void *arg, raft_index i, const struct raft_conf_change *cc)
{
	struct voters_at *v = arg;

	if (i >= v->at)
		return true;
	if (i > v->c.config_index)           /* (applied ones are in it) */
		raft_memb_change(&v->c, cc); /* (a removed id added back: counted, see below) */
	return false;
}

/*
 * A leader of two voters never commits its own removal: it caps *mci below
 * that entry and hands leadership to the other voter, which commits it.
 *
 * Membership changes take effect when applied, and a member learns that one
 * committed only from its leader (appends, heartbeats, TimeoutNow) or a
 * candidate (vote requests).  If the leader L of {L, F} committed its own
 * removal, it would apply it and leave (the removed member's data may go at
 * once), while F might not yet durably know that the removal committed: its
 * append carrying the commit index, or the TimeoutNow L hands over with, may
 * be lost, or F may crash before it saves it.  F then restarts with the
 * configuration {L, F} and waits for ever for the gone L's vote (simulator
 * --two-remove; review 41).  Nothing F could send L afterwards would help: L
 * has left.  Whereas with F as the leader, F commits the removal and saves
 * that commit index, synced, before any message telling L of it leaves
 * (round.c conf_commit_due; the simulator's driver alike); L learns that it
 * was removed only from F, so when L leaves F durably knows.  F's restart
 * then applies the removal and F leads alone.
 *
 * Safe: committing later is always safe.  Live: L still commits what lies
 * below its removal; F holds the removal (it counts in the quorum match),
 * and a transfer brings F up to date and makes it campaign; L's vote goes to
 * F (equal logs), and F's first entry commits the removal.  A transfer that
 * times out is started again on the next acknowledgement.  In groups of
 * three or more voters the leader commits its removal as before, steps down
 * and hands over: the others are a quorum of the configuration before the
 * change too, and an election among them needs no removed member's vote.
 *
 * The configuration that counts is the one the changes below the removal
 * leave (a committed change may not be applied yet); a removed id an
 * unapplied change adds back is counted (a no-op when applied): it can only
 * hide a two-voter case as three, which the engine refuses anyway (an id
 * removed is never accepted again).  Storage errors: nothing commits now.
 */
static int cap_self_removal(struct raft *r, raft_index *mci)
{
	struct raft_log *l = &r->log;
	struct {
		raft_id self;
		raft_index at;
	} f = {r->id, 0};
	struct voters_at v;
	raft_index hi = *mci < l->conf_bound ? *mci : l->conf_bound;
	raft_id other = 0;
	bool voter = false;
	int rc;

	if (hi <= l->committed)
		return RAFT_OK; /* no membership change to commit */
	rc = scan_conf(r, l->committed + 1, hi, find_self_removal, &f);
	if (rc != RAFT_OK || f.at == 0)
		return rc;
	v.c = r->conf;
	v.at = f.at;
	rc = scan_conf(r, l->applied + 1, f.at - 1, track_voters, &v);
	if (rc != RAFT_OK)
		return rc;
	if (v.c.n_voters != 2)
		return RAFT_OK;
	for (uint32_t k = 0; k < v.c.n_voters; k++) {
		if (v.c.voters[k] == r->id)
			voter = true;
		else
			other = v.c.voters[k];
	}
	if (!voter || other == 0)
		return RAFT_OK;
	*mci = f.at - 1;
	if (!r->in_ready && r->transferee == 0 && raft_is_voter(r, other))
		return raft_xfer_start(r, other);
	return RAFT_OK;
}

bool raft_repl_maybe_commit(struct raft *r)
{
	raft_index mci = raft_pr_quorum_match(r);
	raft_term t;

	if (mci <= r->log.committed)
		return false;
	if (cap_self_removal(r, &mci) != RAFT_OK || mci <= r->log.committed)
		return false;
	/* Paper 5.4.2: only entries of the current term commit by counting replicas. */
	if (raft_log_term(&r->log, mci, &t) != RAFT_OK || t != r->term)
		return false;
	if (raft_log_commit_to(r, mci) != RAFT_OK)
		return false;
	raft_ri_on_commit_in_term(r);
	return true;
}

int raft_repl_handle_append(struct raft *r, const struct raft_message *m)
{
	struct raft_log *l = &r->log;
	struct raft_message *o;
	raft_index lastnew = 0;
	bool ok;
	int rc;

	if (m->index < l->committed) {
		/* Everything up to commit is settled: tell the leader where we are. */
		rc = raft_log_check_committed(r, m->index, m->log_term);
		for (uint32_t k = 0; k < m->n_entries && rc == RAFT_OK; k++)
			rc = raft_log_check_committed(r, m->entries[k].index, m->entries[k].term);
		if (rc != RAFT_OK)
			return rc;
		o = raft_send(r, m->from, RAFT_MSG_APPEND_RESP);
		if (o == NULL)
			return RAFT_ERR_NOMEM;
		o->index = l->committed;
		o->commit = l->committed;
		return RAFT_OK;
	}
	rc = raft_log_maybe_append(r, m->index, m->log_term, m->commit, m->entries, m->n_entries,
	                           &ok, &lastnew);
	if (rc != RAFT_OK || (ok && m->n_entries == 0 && (m->flags & RAFT_MSG_FLAG_COMMIT_ONLY)))
		return rc;
	o = raft_send(r, m->from, RAFT_MSG_APPEND_RESP);
	if (o == NULL)
		return RAFT_ERR_NOMEM;
	o->commit = l->committed;
	if (ok) {
		/* Sent after the entries are persisted (same Ready). */
		o->index = lastnew;
		return RAFT_OK;
	}
	/* Paper 5.3 (end): hint the leader where our log could match. */
	raft_index hint = m->index < raft_log_last(l) ? m->index : raft_log_last(l);
	raft_term hint_term = 0;

	hint = raft_log_find_conflict_by_term(l, hint, m->log_term, &hint_term);
	o->index = m->index;
	o->reject = true;
	o->reject_hint = hint;
	o->hint_term = hint_term;
	return RAFT_OK;
}

int raft_repl_handle_heartbeat(struct raft *r, const struct raft_message *m)
{
	struct raft_message *o;
	raft_index c = m->commit < raft_log_last(&r->log) ? m->commit : raft_log_last(&r->log);
	int rc;

	rc = raft_log_commit_to(r, c);
	if (rc != RAFT_OK)
		return rc;
	o = raft_send(r, m->from, RAFT_MSG_HEARTBEAT_RESP);
	if (o == NULL)
		return RAFT_ERR_NOMEM;
	o->context = m->context;
	o->commit = r->log.committed;
	return RAFT_OK;
}

/* Send more to pr while the window allows. */
static int drain(struct raft *r, struct progress *pr)
{
	bool sent = true;
	int rc = RAFT_OK;

	while (rc == RAFT_OK && sent && pr->next <= raft_log_last(&r->log))
		rc = raft_repl_send_append(r, pr, false, &sent);
	return rc;
}

int raft_repl_handle_append_resp(struct raft *r, const struct raft_message *m)
{
	struct progress *pr = raft_pr(r, m->from);
	bool sent;
	int rc;

	/* Within a term the leader's log only grows: a larger ack was forged. */
	if (!m->reject && m->index > raft_log_last(&r->log))
		return RAFT_ERR_INVALID;
	if (m->reject) {
		raft_index probe = m->reject_hint;

		/* Fast backtracking: skip all entries of the conflicting term at once. */
		if (m->hint_term > 0) {
			raft_term found;

			probe = raft_log_find_conflict_by_term(&r->log, m->reject_hint,
			                                       m->hint_term, &found);
		}
		if (raft_pr_maybe_decr_to(pr, m->index, probe)) {
			if (pr->state == PR_REPLICATE)
				raft_pr_become_probe(pr);
			return raft_repl_send_append(r, pr, true, &sent);
		}
		return RAFT_OK;
	}
	/* A probe acknowledged at the current match also ends probing (etcd does too). */
	if (!raft_pr_maybe_update(pr, m->index) &&
	    !(pr->state == PR_PROBE && pr->match == m->index))
		return RAFT_OK;
	switch (pr->state) {
	case PR_PROBE:
		raft_pr_become_replicate(pr);
		break;
	case PR_SNAPSHOT:
		if (pr->match >= pr->pending_snapshot || pr->match + 1 >= raft_log_first(&r->log)) {
			raft_pr_become_probe(pr);
			raft_pr_become_replicate(pr);
		}
		break;
	default:
		raft_ifl_free_le(&pr->ifl, m->index);
		break;
	}
	if (raft_repl_maybe_commit(r))
		r->pending_bcast = true; /* commit goes out with the next Ready */
	rc = drain(r, pr);
	if (rc != RAFT_OK)
		return rc;
	if (commit_news(r, pr))
		r->pending_bcast = true; /* the commit it was not sent while appends flew */
	if (pr->id == r->transferee)
		return raft_xfer_maybe_send_timeout_now(r, pr);
	return RAFT_OK;
}

int raft_repl_handle_heartbeat_resp(struct raft *r, const struct raft_message *m)
{
	struct progress *pr = raft_pr(r, m->from);
	bool sent;
	int rc = RAFT_OK;

	/*
	 * A probe or its answer may have been lost: a heartbeat response lets the
	 * probe go out again.  Not one that carried entries before it has been
	 * outstanding for an election timeout of our ticks (probe_hold): its
	 * follower may be busy writing them (an engine answers nothing of a Ready
	 * before it is synced, a 5 MB entry on a loaded machine took 0.1-0.3 s)
	 * while heartbeat responses from before keep coming, and each would send
	 * the whole of it again (up to max_msg_bytes).  Over TCP a message is
	 * lost when its connection drops, which the engine reports:
	 * raft_report_unreachable() lifts the hold, so the next heartbeat response
	 * re-sends at once.  A loss nobody reports (the receiving group was not
	 * active) costs at most one election timeout.  An empty probe is re-sent
	 * at each heartbeat response; an answer (acceptance, rejection) and a new
	 * term end the probe as before.
	 */
	if (pr->probe_hold == 0 || r->ticks >= pr->probe_hold)
		pr->probe_sent = false;
	/*
	 * A lagging follower gets an append, even empty, to expose a lost one.
	 * With the window full, an empty one past what is in flight (as etcd
	 * does): its acceptance frees the window, its rejection shows an append
	 * lost and brings the probe.  Opening the window by one instead let
	 * another append of up to max_msg_bytes go to a slow follower at every
	 * heartbeat response, past the window's bound.
	 */
	if (pr->state == PR_REPLICATE && raft_ifl_full(r, &pr->ifl))
		rc = send_append(r, pr, true, false, &sent);
	else if (pr->match < raft_log_last(&r->log))
		rc = raft_repl_send_append(r, pr, true, &sent);
	if (rc != RAFT_OK)
		return rc;
	if (m->context > 0)
		return raft_ri_ack(r, pr, m->context);
	return RAFT_OK;
}
