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

void raft_ifl_add(struct inflights *f, raft_index last, uint64_t bytes)
{
	uint32_t at;

	if (f->count == f->cap)
		return; /* callers check ifl_full first */
	at = (f->start + f->count) % f->cap;
	f->last[at] = last;
	f->size[at] = bytes;
	f->count++;
	f->bytes += bytes;
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

void raft_ifl_free_first(struct inflights *f)
{
	if (f->count > 0)
		raft_ifl_free_le(f, f->last[f->start]);
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

/* Is id in the list? */
static bool has_id(const raft_id *ids, uint32_t n, raft_id id)
{
	for (uint32_t i = 0; i < n; i++)
		if (ids[i] == id)
			return true;
	return false;
}

int raft_pr_sync_conf(struct raft *r)
{
	struct progress old[2 * RAFT_MAX_MEMBERS];
	uint32_t n_old = r->n_prs, n = 0;
	const struct raft_membership *c = &r->conf;
	int rc = RAFT_OK;

	memcpy(old, r->prs, n_old * sizeof(old[0]));
	for (uint32_t k = 0; k < c->n_voters + c->n_nonvoters; k++) {
		bool voter = k < c->n_voters;
		raft_id id = voter ? c->voters[k] : c->nonvoters[k - c->n_voters];
		struct progress *dst = &r->prs[n];
		uint32_t j;

		for (j = 0; j < n_old; j++)
			if (old[j].id == id)
				break;
		if (j < n_old) {
			*dst = old[j];
			old[j].id = 0; /* moved */
		} else {
			rc = raft_pr_init(r, dst, id, voter);
			if (rc != RAFT_OK)
				break;
			if (id == r->id)
				dst->match = raft_log_persisted(&r->log);
		}
		dst->voter = voter;
		n++;
	}
	for (uint32_t j = 0; j < n_old; j++)
		if (old[j].id != 0 && !has_id(c->voters, c->n_voters, old[j].id) &&
		    !has_id(c->nonvoters, c->n_nonvoters, old[j].id))
			raft_pr_free(r, &old[j]);
	r->n_prs = n;
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
#ifdef RAFT_PLANT_BUG_LEADER_COUNTS_UNPERSISTED
		/* PLANTED BUG: the leader counts entries it has not persisted. */
		if (pr->id == r->id)
			v = raft_log_last(&r->log);
#endif
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

bool raft_pr_quorum_active(struct raft *r)
{
	uint32_t active = 0;

	for (uint32_t i = 0; i < r->n_prs; i++) {
		struct progress *pr = &r->prs[i];

		if (pr->id == r->id) {
			pr->recent_active = true;
		}
		if (pr->voter && pr->recent_active)
			active++;
		if (pr->id != r->id)
			pr->recent_active = false;
	}
	return active >= raft_quorum(r);
}
