/*
 * election.c - roles and leader election: randomized timeouts (paper 5.2),
 * one vote per term, the up-to-date check (paper 5.4.1) and PreVote
 * (thesis 9.6).
 */
#include <string.h>

#include "raft/raft_int.h"

/* Forget per-term state; a new term clears the vote (paper 5.1, Figure 2). */
static void reset(struct raft *r, raft_term term)
{
	raft_index last = raft_log_last(&r->log);

	if (r->term != term) {
		r->term = term;
		r->vote = 0;
	}
	r->lead = 0;
	r->election_elapsed = 0;
	r->heartbeat_elapsed = 0;
	raft_reset_randomized_timeout(r);
	raft_xfer_abort(r);
	raft_ri_reset(r);
	r->pending_bcast = false;
	r->pending_conf_index = 0;
	r->uncommitted = 0;
	r->idle_ticks = 0;
	for (uint32_t i = 0; i < r->n_prs; i++) {
		struct progress *pr = &r->prs[i];

		pr->state = PR_PROBE;
		pr->probe_sent = false;
		pr->pending_snapshot = 0;
		pr->recent_active = false;
		pr->vote = VOTE_NONE;
		pr->read_ack = 0;
		pr->sent_commit = 0;
		pr->commit = 0;
		pr->match = 0;
		pr->next = last + 1;
		raft_ifl_reset(&pr->ifl);
		if (pr->id == r->id)
			pr->match = raft_log_persisted(&r->log);
	}
}

void raft_become_follower(struct raft *r, raft_term term, raft_id lead)
{
	reset(r, term);
	r->role = RAFT_FOLLOWER;
	r->lead = lead;
}

/* Are committed conf change entries still waiting to be applied? */
static bool unapplied_conf_change(struct raft *r)
{
	struct raft_log *l = &r->log;
	raft_index lo = l->applied + 1;

	while (lo <= l->committed) {
		raft_index hi = l->committed + 1;
		uint32_t n = 0;

		if (hi - lo > 1024)
			hi = lo + 1024;
		if (raft_grow(r, (void **)&r->fetch, &r->cap_fetch, (uint32_t)(hi - lo),
		              sizeof(*r->fetch)) != RAFT_OK)
			return true; /* be conservative */
		if (raft_log_entries(l, lo, hi, UINT64_MAX, r->fetch, &n) != RAFT_OK || n == 0)
			return true;
		for (uint32_t i = 0; i < n; i++)
			if (r->fetch[i].type == RAFT_ENTRY_CONF_CHANGE &&
			    r->fetch[i].index > r->conf.config_index)
				return true;
		lo += n;
	}
	return false;
}

bool raft_promotable(const struct raft *r)
{
	return raft_is_voter(r, r->id) && !r->log.has_snap;
}

int raft_become_leader(struct raft *r)
{
	struct raft_entry noop = {0, 0, RAFT_ENTRY_NORMAL, 0, NULL};
	struct progress *self;

	reset(r, r->term);
	r->role = RAFT_LEADER;
	r->lead = r->id;
	self = raft_pr(r, r->id);
	if (self != NULL) {
		raft_pr_become_replicate(self);
		self->match = raft_log_persisted(&r->log);
		self->next = raft_log_last(&r->log) + 1;
		self->recent_active = true;
	}
	/* Conservatively assume the tail may hold an unapplied conf change. */
	r->pending_conf_index = raft_log_last(&r->log);
	/* Thesis 6.4 / paper 8: a no-op entry at the start of the term. */
	return raft_repl_append(r, &noop, 1);
}

/* Count votes among voters: granted and rejected. */
static void tally(const struct raft *r, uint32_t *granted, uint32_t *rejected)
{
	*granted = *rejected = 0;
	for (uint32_t i = 0; i < r->n_prs; i++) {
		if (!r->prs[i].voter)
			continue;
		if (r->prs[i].vote == VOTE_GRANTED)
			(*granted)++;
		else if (r->prs[i].vote == VOTE_REJECTED)
			(*rejected)++;
	}
}

/* React to the vote count: win, lose or keep waiting. */
static int poll(struct raft *r)
{
	uint32_t granted, rejected, q = raft_quorum(r);

	tally(r, &granted, &rejected);
	if (granted >= q) {
		if (r->role == RAFT_PRECANDIDATE)
			return raft_do_campaign(r, false, false);
		return raft_become_leader(r);
	}
	if (rejected >= r->conf.n_voters - q + 1)
		raft_become_follower(r, r->term, 0);
	return RAFT_OK;
}

int raft_do_campaign(struct raft *r, bool pre, bool transfer)
{
	uint32_t type = pre ? RAFT_MSG_PREVOTE : RAFT_MSG_VOTE;
	raft_term vterm, last_term;
	struct progress *self;
	int rc;

	if (!raft_promotable(r))
		return RAFT_OK;
	if (unapplied_conf_change(r))
		return RAFT_OK; /* campaign only under the configuration we will use */
	rc = raft_log_last_term(&r->log, &last_term);
	if (rc != RAFT_OK)
		return rc;
	if (pre) {
		/* Thesis 9.6: ask first whether we could win, without raising the term. */
		raft_term keep = r->term;

		reset(r, keep);
		r->role = RAFT_PRECANDIDATE;
		vterm = r->term + 1;
	} else {
		/* Paper 5.2: increment the term and vote for ourselves. */
		reset(r, r->term + 1);
		r->role = RAFT_CANDIDATE;
		r->vote = r->id;
		vterm = r->term;
	}
	self = raft_pr(r, r->id);
	RAFT_ASSERT(r, self != NULL); /* promotable: a voter */
	self->vote = VOTE_GRANTED;
	if (raft_quorum(r) <= 1)
		return poll(r);
	for (uint32_t i = 0; i < r->n_prs; i++) {
		struct progress *pr = &r->prs[i];
		struct raft_message *m;

		if (!pr->voter || pr->id == r->id)
			continue;
		m = raft_send(r, pr->id, type);
		if (m == NULL)
			return RAFT_ERR_NOMEM;
		m->term = vterm;
		m->index = raft_log_last(&r->log);
		m->log_term = last_term;
		if (transfer)
			m->flags |= RAFT_MSG_FLAG_TRANSFER;
	}
	return RAFT_OK;
}

int raft_handle_vote(struct raft *r, const struct raft_message *m)
{
	bool pre = m->type == RAFT_MSG_PREVOTE;
	struct raft_message *o;
	bool can_vote, up_to_date;

	/* Paper 5.2: at most one vote per term, first come first served. */
	can_vote =
	        r->vote == m->from || (r->vote == 0 && r->lead == 0) || (pre && m->term > r->term);
	/* Paper 5.4.1: only for a candidate whose log is at least as up-to-date. */
	up_to_date = raft_log_is_up_to_date(&r->log, m->index, m->log_term);
	o = raft_send(r, m->from, pre ? RAFT_MSG_PREVOTE_RESP : RAFT_MSG_VOTE_RESP);
	if (o == NULL)
		return RAFT_ERR_NOMEM;
	if (can_vote && up_to_date) {
		o->term = m->term;
		if (!pre) {
			r->election_elapsed = 0;
			r->vote = m->from;
		}
	} else {
		o->reject = true;
	}
	return RAFT_OK;
}

int raft_handle_vote_resp(struct raft *r, const struct raft_message *m)
{
	struct progress *pr = raft_pr(r, m->from);

	if (pr == NULL || !pr->voter)
		return RAFT_OK;
	/* A pre-vote grant is only for the term we would campaign in. */
	if (m->type == RAFT_MSG_PREVOTE_RESP && !m->reject && m->term != r->term + 1)
		return RAFT_OK;
	if (pr->vote == VOTE_NONE)
		pr->vote = m->reject ? VOTE_REJECTED : VOTE_GRANTED;
	return poll(r);
}
