/*
 * election.c - roles and leader election: randomized timeouts (paper 5.2),
 * one vote per term, the up-to-date check (paper 5.4.1) and PreVote
 * (thesis 9.6), with a tie-break between two pre-candidates (below).
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
	r->resets++;
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
		pr->probe_hold = 0;
		pr->pending_snapshot = 0;
		pr->recent_active = false;
		pr->heard_before = false;
		pr->vote = VOTE_NONE;
		pr->read_ack = 0;
		pr->sent_commit = 0;
		pr->sent_last = 0;
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

/* Send a (pre-)vote request for term vterm to voter to. */
static int ask_vote(struct raft *r, raft_id to, uint32_t type, raft_term vterm, raft_term last_term,
                    bool transfer)
{
	struct raft_message *m = raft_send(r, to, type);

	if (m == NULL)
		return RAFT_ERR_NOMEM;
	m->term = vterm;
	m->index = raft_log_last(&r->log);
	m->log_term = last_term;
	m->commit = r->log.committed; /* (raft_learn_commit) */
	if (transfer)
		m->flags |= RAFT_MSG_FLAG_TRANSFER;
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

		r->pre_again = r->role == RAFT_PRECANDIDATE;
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

		if (!pr->voter || pr->id == r->id)
			continue;
		rc = ask_vote(r, pr->id, type, vterm, last_term, transfer);
		if (rc != RAFT_OK)
			return rc;
	}
	return RAFT_OK;
}

/*
 * A (pre-)vote request tells us the candidate's commit index, and we take it
 * when our log holds the candidate's last entry: by the Log Matching
 * Property (paper 5.3) our log then equals the candidate's up to that entry,
 * and what the candidate knows to be committed is committed.
 *
 * Without it a group could elect no leader ever (simulator, --defer seeds
 * 1906 and 9244): its only voter A adds a voter B, commits and applies that
 * change, and crashes; its last entries, which B had received, were not yet
 * on A's disk (a deferred sync; or an append sent before its own write), so
 * after the restart B's log is longer than A's and B refuses A its vote.  B
 * never heard that its promotion committed, so it is not a voter in the
 * configuration it applied, and never campaigns.  Having the commit index
 * from A's request, B applies its promotion, campaigns and wins A's vote.
 *
 * TimeoutNow carries the same (transfer.c): a leader that removed itself
 * hands over with one, and leaves; the one it hands over to may not have
 * heard that the removal committed (review 40).  (Of two voters, that one
 * could still crash before saving it, the leader gone: so a leader of two
 * never commits its own removal, review 41, replication.c.)
 *
 * A leader learns its commit index from its followers' acknowledgements.
 */
int raft_learn_commit(struct raft *r, const struct raft_message *m)
{
	raft_index c = m->commit < m->index ? m->commit : m->index;
	bool match;
	int rc;

	if (r->role == RAFT_LEADER || c <= r->log.committed)
		return RAFT_OK;
	rc = raft_log_match_term(&r->log, m->index, m->log_term, &match);
	if (rc != RAFT_OK || !match)
		return rc;
	return raft_log_commit_to(r, c);
}

/*
 * Two pre-candidates of one term, and a tie-break between them (issue 13).
 *
 * When the leader dies, its followers' timeouts can fire in the same tick.
 * Each then becomes a pre-candidate before the other's PREVOTE arrives; if
 * each granted the other's (their logs are equal: the leader sent both the
 * same entries), both would become candidates of term T+1, each voting for
 * itself and refusing the other: a split vote, and another randomized
 * timeout (0.5 to 1 s at the engine's defaults) before anyone leads.
 *
 * So a pre-candidate c in its first round (not one that timed out and
 * campaigns again), asked for a pre-vote for its own next term by q, a voter
 * of c's configuration and not a transfer's campaign, refuses it when both
 * logs are equal and q's id is higher (beside the usual refusal of a log
 * behind c's, paper 5.4.1).  Having refused q for either reason, c asks q
 * for q's pre-vote again if q has not answered c yet: q sent a pre-vote, so
 * q no longer heeds a leader's lease (thesis 4.2.3; it may have dropped c's
 * first request while it did), its term is c's, its log is no more up to
 * date than c's and its id is higher when they are equal, so q grants it.
 * With three voters and one down, c leads one round trip after q's request
 * reaches it, in one term.
 *
 * Pre-votes change no term, vote or log (thesis 9.6): refusing one can only
 * cost liveness.
 *  - No livelock between pre-candidates: (log, then lower id) is a strict
 *    order, so of two pre-candidates at most one refuses the other on these
 *    grounds; the greatest among them is refused by none, and a follower
 *    that grants the lesser q (one out of its lease, of term T, whose log is
 *    no more up to date than q's) grants c too.
 *  - Reachability: c may be unable to win (a quorum of voters unreachable
 *    from c, or their answers lost) while q could win with c's grant, in a
 *    partition that is not transitive.  c refuses q only in its first round:
 *    once c's timeout fires again (it stays a pre-candidate while too few
 *    answer), c grants q as before.  q asks again only at its own next
 *    timeout, which may still fall in c's first round, so there the
 *    tie-break can delay q's election by up to two of q's timeouts (review
 *    17: 4 voters, the leader down, the lowest surviving id cut off from
 *    one other survivor: 29 and 36 ticks on average from the leader's death to a
 *    new leader instead of 17, at most 64), each time c becomes a
 *    pre-candidate; it never stops an election.  Randomized timeouts break
 *    every other tie as before.
 *  - In a group of five, q may still win its pre-vote with two followers'
 *    grants: the rule makes splits rarer there, not impossible.
 */
int raft_handle_vote(struct raft *r, const struct raft_message *m)
{
	bool pre = m->type == RAFT_MSG_PREVOTE;
	struct progress *pr = raft_pr(r, m->from);
	struct raft_message *o;
	bool can_vote, up_to_date, rival, tie = false;
	raft_term last_term = 0;
	int rc;

	rc = raft_learn_commit(r, m);
	if (rc != RAFT_OK)
		return rc;
	/* Paper 5.2: at most one vote per term, first come first served. */
	can_vote =
	        r->vote == m->from || (r->vote == 0 && r->lead == 0) || (pre && m->term > r->term);
	/* Paper 5.4.1: only for a candidate whose log is at least as up-to-date. */
	up_to_date = raft_log_is_up_to_date(&r->log, m->index, m->log_term);
	/* Another pre-candidate of our term, which we count (the tie-break above). */
	rival = pre && r->role == RAFT_PRECANDIDATE && !r->pre_again && m->term == r->term + 1 &&
	        pr != NULL && pr->voter && (m->flags & RAFT_MSG_FLAG_TRANSFER) == 0;
	if (rival) {
		rc = raft_log_last_term(&r->log, &last_term);
		if (rc != RAFT_OK)
			return rc;
		/* Up to date and ours no less: equal logs, and the lower id wins. */
		tie = up_to_date && m->from > r->id && last_term == m->log_term &&
		      raft_log_last(&r->log) == m->index;
	}
	o = raft_send(r, m->from, pre ? RAFT_MSG_PREVOTE_RESP : RAFT_MSG_VOTE_RESP);
	if (o == NULL)
		return RAFT_ERR_NOMEM;
	if (can_vote && up_to_date && !tie) {
		o->term = m->term;
		if (!pre) {
			r->election_elapsed = 0;
			r->vote = m->from;
		}
		return RAFT_OK;
	}
	o->reject = true;
	/* A rival that has not answered us ignores any lease now, and grants ours. */
	if (rival && pr->vote == VOTE_NONE)
		return ask_vote(r, m->from, RAFT_MSG_PREVOTE, r->term + 1, last_term, false);
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
