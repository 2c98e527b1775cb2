/*
 * progress.c - the leader's view of each member: probe / replicate /
 * snapshot states, the in-flight window (flow control), and quorum counting.
 */
#include <string.h>

#include "raft/raft_int.h"

int raft_pr_init(struct raft *r, struct progress *pr, raft_id id, bool voter)
{
	uint32_t cap = r->cfg.max_inflight_msgs;

	memset(pr, 0, sizeof(*pr));
	pr->id = id;
	pr->voter = voter;
	pr->state = PR_PROBE;
	pr->next = raft_log_last(&r->log) + 1;
	pr->recent_active = true; /* a new member gets one CheckQuorum period of grace */
	pr->ifl.cap = cap;
	pr->ifl.last = r->a->malloc(cap * sizeof(*pr->ifl.last));
	pr->ifl.size = r->a->malloc(cap * sizeof(*pr->ifl.size));
	if (pr->ifl.last == NULL || pr->ifl.size == NULL) {
		raft_pr_free(r, pr);
		return RAFT_ERR_NOMEM;
	}
	return RAFT_OK;
}

void raft_pr_free(struct raft *r, struct progress *pr)
{
	r->a->free(pr->ifl.last);
	r->a->free(pr->ifl.size);
	pr->ifl.last = NULL;
	pr->ifl.size = NULL;
}

static void reset_state(struct progress *pr, uint8_t state)
{
	pr->probe_sent = false;
	pr->probe_hold = 0;
	pr->pending_snapshot = 0;
	pr->state = state;
	raft_ifl_reset(&pr->ifl);
}

void raft_pr_become_probe(struct progress *pr)
{
	if (pr->state == PR_SNAPSHOT) {
		raft_index ps = pr->pending_snapshot;

		reset_state(pr, PR_PROBE);
		pr->next = (pr->match + 1 > ps + 1) ? pr->match + 1 : ps + 1;
	} else {
		reset_state(pr, PR_PROBE);
		pr->next = pr->match + 1;
	}
}

void raft_pr_become_replicate(struct progress *pr)
{
	reset_state(pr, PR_REPLICATE);
	pr->next = pr->match + 1;
}

void raft_pr_become_snapshot(struct progress *pr, raft_index index)
{
	reset_state(pr, PR_SNAPSHOT);
	pr->pending_snapshot = index;
}

bool raft_pr_maybe_update(struct progress *pr, raft_index n)
{
	bool updated = false;

	if (pr->match < n) {
		pr->match = n;
		updated = true;
		pr->probe_sent = false;
	}
	if (pr->next < n + 1)
		pr->next = n + 1;
	return updated;
}

bool raft_pr_maybe_decr_to(struct progress *pr, raft_index rejected, raft_index match_hint)
{
	if (pr->state == PR_REPLICATE) {
		/* A rejection at or below match is stale. */
		if (rejected <= pr->match)
			return false;
		pr->next = pr->match + 1;
		return true;
	}
	/* Probing: only the rejection of the probe we sent counts. */
	if (pr->next - 1 != rejected)
		return false;
	pr->next = rejected < match_hint + 1 ? rejected : match_hint + 1;
	if (pr->next < pr->match + 1)
		pr->next = pr->match + 1;
	pr->probe_sent = false;
	return true;
}

bool raft_pr_is_paused(const struct raft *r, const struct progress *pr)
{
	switch (pr->state) {
	case PR_PROBE:
		return pr->probe_sent;
	case PR_REPLICATE:
		return raft_ifl_full(r, &pr->ifl);
	default:
		return true;
	}
}

int raft_ifl_add(struct raft *r, struct inflights *f, raft_index last, uint64_t bytes)
{
	uint32_t at;

	RAFT_ASSERT(r, f->count < f->cap); /* callers check raft_ifl_full first */
	at = (f->start + f->count) % f->cap;
	f->last[at] = last;
	f->size[at] = bytes;
	f->count++;
	f->bytes += bytes;
	return RAFT_OK;
}

void raft_ifl_free_le(struct inflights *f, raft_index to)
{
	while (f->count > 0 && f->last[f->start] <= to) {
		f->bytes -= f->size[f->start];
		f->start = (f->start + 1) % f->cap;
		f->count--;
	}
	if (f->count == 0)
		f->start = 0;
}

void raft_ifl_reset(struct inflights *f)
{
	f->start = 0;
	f->count = 0;
	f->bytes = 0;
}

bool raft_ifl_full(const struct raft *r, const struct inflights *f)
{
	if (f->count >= f->cap)
		return true;
	return r->cfg.max_inflight_bytes > 0 && f->bytes >= r->cfg.max_inflight_bytes;
}

int raft_pr_sync_conf(struct raft *r, const struct raft_membership *c)
{
	struct progress next[RAFT_MAX_MEMBERS];
	uint32_t n = 0;
	int rc = RAFT_OK;

	RAFT_ASSERT(r, c->n_voters + c->n_nonvoters <= RAFT_MAX_MEMBERS);
	for (uint32_t k = 0; k < c->n_voters + c->n_nonvoters; k++) {
		bool voter = k < c->n_voters;
		raft_id id = voter ? c->voters[k] : c->nonvoters[k - c->n_voters];
		struct progress *old = raft_pr(r, id);

		if (old != NULL) {
			next[n] = *old;
		} else {
			rc = raft_pr_init(r, &next[n], id, voter);
			if (rc != RAFT_OK)
				goto err_after_init;
			if (id == r->id)
				next[n].match = raft_log_persisted(&r->log);
		}
		next[n++].voter = voter;
	}
	/* Nothing can fail from here: members that leave give up their rings. */
	for (uint32_t j = 0; j < r->n_prs; j++)
		if (!raft_membership_contains(c, r->prs[j].id))
			raft_pr_free(r, &r->prs[j]);
	memcpy(r->prs, next, n * sizeof(next[0]));
	r->n_prs = n;
	if (c != &r->conf)
		r->conf = *c;
	return RAFT_OK;

err_after_init:
	for (uint32_t j = 0; j < n; j++)
		if (raft_pr(r, next[j].id) == NULL)
			raft_pr_free(r, &next[j]);
	return rc;
}

raft_index raft_pr_quorum_match(const struct raft *r)
{
	raft_index m[RAFT_MAX_MEMBERS];
	uint32_t n = 0;

	for (uint32_t i = 0; i < r->n_prs; i++) {
		const struct progress *pr = &r->prs[i];
		raft_index v;

		if (!pr->voter)
			continue;
		v = pr->match;
		/* insertion sort, descending */
		uint32_t j = n++;
		while (j > 0 && m[j - 1] < v) {
			m[j] = m[j - 1];
			j--;
		}
		m[j] = v;
	}
	if (n == 0)
		return 0;
	return m[n / 2];
}

/*
 * A member busy writing entries we sent it answers nothing until they are
 * synced: an engine persists a Ready before it sends its messages (a 5 MB
 * entry on a loaded machine took 0.1-0.3 s, the leader's heartbeats queued
 * behind it).  Such a member, heard from in the period before, counts as
 * active for one more period; never two in a row, so a leader cut off from
 * its quorum still steps down, at most one election timeout later.
 */
static bool busy_writing(const struct progress *pr)
{
	return pr->heard_before && pr->match < pr->sent_last;
}

bool raft_pr_quorum_active(struct raft *r)
{
	uint32_t active = 0;

	for (uint32_t i = 0; i < r->n_prs; i++) {
		struct progress *pr = &r->prs[i];
		bool heard = pr->recent_active;

		if (pr->id == r->id) {
			heard = true;
		} else if (!heard && busy_writing(pr)) {
			heard = true;
			pr->heard_before = false; /* the next period needs a message */
		} else {
			pr->heard_before = heard;
		}
		if (pr->voter && heard)
			active++;
		pr->recent_active = pr->id == r->id;
	}
	return active >= raft_quorum(r);
}
