/*
 * log.c - the Raft log as the core sees it: stable entries read through
 * struct raft_storage, unstable entries (not yet persisted) kept here, plus
 * the commit and apply indexes.
 */
#include <stdio.h>
#include <string.h>

#include "raft/raft_int.h"

/* ---- log ---- */

int raft_log_init(struct raft *r)
{
	struct raft_log *l = &r->log;
	raft_index last = l->st.last_index(l->st.ctx);
	raft_index first = l->st.first_index(l->st.ctx);

	if (first == 0 || first > last + 1)
		return RAFT_ERR_STORAGE;
	l->offset = last + 1;
	l->n = 0;
	l->has_snap = false;
	l->conf_bound = last; /* the stored log is not read for it */
	return RAFT_OK;
}

void raft_log_free(struct raft *r)
{
	r->a->free(r->log.ents);
	r->log.ents = NULL;
	dr_arena_free(&r->log.arena);
}

int raft_log_fail(struct raft_log *l, int rc, raft_index i)
{
	if (rc == RAFT_ERR_NOMEM)
		return rc; /* transient: what needed the read is retried */
	if (l->failed == 0) {
		l->failed = rc == RAFT_OK ? RAFT_ERR_STORAGE : rc;
		l->failed_at = i;
	}
	return RAFT_ERR_STORAGE;
}

raft_index raft_log_first(const struct raft_log *l)
{
	if (l->has_snap)
		return l->snap.index + 1;
	return l->st.first_index(l->st.ctx);
}

raft_index raft_log_last(const struct raft_log *l)
{
	return l->offset + l->n - 1;
}

int raft_log_last_term(struct raft_log *l, raft_term *t)
{
	if (l->n > 0) {
		*t = l->ents[l->n - 1].term;
		return RAFT_OK;
	}
	return raft_log_term(l, raft_log_last(l), t);
}

raft_index raft_log_persisted(const struct raft_log *l)
{
	if (l->has_snap)
		return 0;
	if (l->unsynced && l->synced < l->offset - 1)
		return l->synced; /* written, but the sync is not reported yet */
	return l->offset - 1;
}

int raft_log_lookup(const struct raft_log *l, raft_index i, raft_term *t, bool *stored)
{
	*stored = false;
	if (i >= l->offset) {
		if (i - l->offset >= l->n)
			return RAFT_ERR_UNAVAILABLE;
		*t = l->ents[i - l->offset].term;
		return RAFT_OK;
	}
	if (l->has_snap) {
		if (i == l->snap.index) {
			*t = l->snap.term;
			return RAFT_OK;
		}
		return RAFT_ERR_COMPACTED;
	}
	if (i + 1 < l->st.first_index(l->st.ctx))
		return RAFT_ERR_COMPACTED;
	*stored = true;
	return l->st.term(l->st.ctx, i, t);
}

int raft_log_term(struct raft_log *l, raft_index i, raft_term *t)
{
	bool stored;
	int rc = raft_log_lookup(l, i, t, &stored);

	return rc != RAFT_OK && stored ? raft_log_fail(l, rc, i) : rc;
}

int raft_log_match_term(struct raft_log *l, raft_index i, raft_term t, bool *match)
{
	raft_term have;
	int rc;

	*match = false;
	if (i > raft_log_last(l))
		return RAFT_OK;
	rc = raft_log_term(l, i, &have);
	if (rc == RAFT_ERR_COMPACTED)
		return RAFT_OK;
	if (rc != RAFT_OK)
		return rc;
	*match = have == t;
	return RAFT_OK;
}

int raft_log_entries(struct raft_log *l, raft_index lo, raft_index hi, uint64_t max_bytes,
                     struct raft_entry *out, uint32_t *n)
{
	uint64_t size = 0;
	uint32_t k = 0;
	raft_index i;
	int rc;

	*n = 0;
	if (lo >= hi)
		return RAFT_OK;
	if (lo < raft_log_first(l))
		return RAFT_ERR_COMPACTED;
	if (hi > raft_log_last(l) + 1)
		return RAFT_ERR_UNAVAILABLE;
	if (lo < l->offset) {
		raft_index shi = hi < l->offset ? hi : l->offset;

		rc = l->st.entries(l->st.ctx, lo, shi, max_bytes, out, &k);
		if (rc != RAFT_OK || k == 0 || k > shi - lo)
			return raft_log_fail(l, rc, lo);
		for (uint32_t j = 0; j < k; j++) {
			if (out[j].index != lo + j)
				return raft_log_fail(l, RAFT_ERR_STORAGE, lo + j);
			size += out[j].len;
		}
		if (k < shi - lo) {
			*n = k;
			return RAFT_OK;
		}
	}
	for (i = lo > l->offset ? lo : l->offset; i < hi; i++) {
		const struct raft_entry *e = &l->ents[i - l->offset];

		if (k > 0 && size + e->len > max_bytes)
			break;
		out[k++] = *e;
		size += e->len;
	}
	*n = k;
	return RAFT_OK;
}

int raft_log_append(struct raft *r, const struct raft_entry *e, uint32_t n)
{
	struct raft_log *l = &r->log;
	raft_index after, offset = l->offset;
	uint32_t base;
	int rc;

	if (n == 0)
		return RAFT_OK;
	after = e[0].index;
	if (after <= l->offset) {
		/* Replace everything unstable; storage's suffix is replaced on persist. */
		RAFT_ASSERT(r, !l->has_snap || after > l->snap.index);
		offset = after;
		base = 0;
	} else {
		RAFT_ASSERT(r, after <= l->offset + l->n); /* no gap */
		base = (uint32_t)(after - l->offset);
	}
	/*
	 * Copy past the live entries first, so that running out of memory
	 * changes nothing.  Data of replaced entries stays in the arena: a
	 * message queued earlier may still carry it.
	 */
	rc = raft_grow(r, (void **)&l->ents, &l->cap, l->n + n, sizeof(*l->ents));
	if (rc != RAFT_OK)
		return rc;
	for (uint32_t j = 0; j < n; j++) {
		struct raft_entry *d = &l->ents[l->n + j];

		RAFT_ASSERT(r, e[j].index == after + j);
		*d = e[j];
		d->data = dr_arena_copy(&l->arena, e[j].data, e[j].len);
		if (e[j].len > 0 && d->data == NULL)
			return RAFT_ERR_NOMEM;
	}
	if (base != l->n)
		memmove(l->ents + base, l->ents + l->n, n * sizeof(*l->ents));
	l->offset = offset;
	l->n = base + n;
	if (l->conf_bound >= after)
		l->conf_bound = after - 1; /* what was above is replaced */
	for (uint32_t j = 0; j < n; j++)
		if (e[j].type == RAFT_ENTRY_CONF_CHANGE)
			l->conf_bound = e[j].index;
	return RAFT_OK;
}

/* *ci: first entry of e not already in the log with the same term (0: none). */
static int find_conflict(struct raft_log *l, const struct raft_entry *e, uint32_t n, raft_index *ci)
{
	bool match;
	int rc;

	*ci = 0;
	for (uint32_t j = 0; j < n; j++) {
		rc = raft_log_match_term(l, e[j].index, e[j].term, &match);
		if (rc != RAFT_OK || !match) {
			*ci = e[j].index;
			return rc;
		}
	}
	return RAFT_OK;
}

/*
 * A leader of the current term has every committed entry (paper 5.4.1), so a
 * different term at a committed index is proof that some replica broke
 * Raft's rules (one that lost its state and voted or acknowledged again
 * under the same id): neither log can be trusted any more, and the replica
 * stops instead of rejecting the append for ever.
 */
int raft_log_check_committed(struct raft *r, raft_index i, raft_term t)
{
	raft_term have;
	int rc;

	if (i == 0 || i > r->log.committed)
		return RAFT_OK;
	rc = raft_log_term(&r->log, i, &have);
	if (rc == RAFT_ERR_COMPACTED)
		return RAFT_OK;
	if (rc != RAFT_OK || have == t)
		return rc;
	if (r->fatal == 0) {
		r->fatal = RAFT_ERR_BUG;
		snprintf(r->errmsg, sizeof(r->errmsg),
		         "logs diverged: the leader has term %llu at index %llu, committed here in "
		         "term %llu",
		         (unsigned long long)t, (unsigned long long)i, (unsigned long long)have);
	}
	return RAFT_ERR_BUG;
}

int raft_log_maybe_append(struct raft *r, raft_index prev, raft_term prev_term, raft_index commit,
                          const struct raft_entry *e, uint32_t n, bool *ok, raft_index *lastnew)
{
	struct raft_log *l = &r->log;
	raft_index ci, ln = prev + n;
	bool match;
	int rc;

	/*
	 * A term that cannot be read is never a mismatch: that would truncate
	 * entries this replica may have acknowledged.  The message is dropped.
	 */
	*ok = false;
	/* Paper 5.3: reject unless the log contains an entry at prev with prev_term. */
	rc = raft_log_match_term(l, prev, prev_term, &match);
	if (rc == RAFT_OK && !match)
		rc = raft_log_check_committed(r, prev, prev_term);
	if (rc != RAFT_OK || !match)
		return rc;
	rc = find_conflict(l, e, n, &ci);
	if (rc != RAFT_OK)
		return rc;
	if (ci != 0) {
		rc = raft_log_check_committed(r, ci, e[ci - (prev + 1)].term);
		if (rc != RAFT_OK)
			return rc;
		/* Paper 5.3: delete the conflicting entry and all that follow it. */
		rc = raft_log_append(r, &e[ci - (prev + 1)], (uint32_t)(n - (ci - (prev + 1))));
		if (rc != RAFT_OK)
			return rc;
	}
	/* Paper 5.3: commitIndex = min(leaderCommit, index of last new entry). */
	rc = raft_log_commit_to(r, commit < ln ? commit : ln);
	if (rc != RAFT_OK)
		return rc;
	*ok = true;
	*lastnew = ln;
	return RAFT_OK;
}

int raft_log_commit_to(struct raft *r, raft_index i)
{
	struct raft_log *l = &r->log;

	if (i <= l->committed)
		return RAFT_OK;
	RAFT_ASSERT(r, i <= raft_log_last(l));
	l->committed = i;
	return RAFT_OK;
}

void raft_log_stable_to(struct raft *r, raft_index i, raft_term t)
{
	struct raft_log *l = &r->log;
	uint32_t k;

	if (l->n == 0 || i < l->offset || i - l->offset >= l->n)
		return;
	if (l->ents[i - l->offset].term != t)
		return; /* replaced since the Ready was handed out */
	k = (uint32_t)(i - l->offset + 1);
	if (k < l->n)
		memmove(l->ents, l->ents + k, (l->n - k) * sizeof(*l->ents));
	l->n -= k;
	l->offset = i + 1;
}

void raft_log_stable_snap_to(struct raft_log *l, raft_index i)
{
	if (l->has_snap && l->snap.index == i)
		l->has_snap = false;
}

void raft_log_restore(struct raft *r, const struct raft_snapshot_meta *s)
{
	struct raft_log *l = &r->log;

	/* The arena keeps the old entries' data: queued messages may carry it. */
	l->has_snap = true;
	l->snap = *s;
	l->n = 0;
	l->offset = s->index + 1;
	l->committed = s->index;
	l->applied = s->index;
	if (l->conf_bound > s->index)
		l->conf_bound = s->index; /* the snapshot's membership comes with it */
}

bool raft_log_is_up_to_date(struct raft_log *l, raft_index lasti, raft_term term)
{
	raft_term lt;

	if (raft_log_last_term(l, &lt) != RAFT_OK)
		return false; /* storage failed: fatal, and never a vote */
	/* Paper 5.4.1: compare last terms, then lengths. */
	return term > lt || (term == lt && lasti >= raft_log_last(l));
}

raft_index raft_log_find_conflict_by_term(struct raft_log *l, raft_index index, raft_term term,
                                          raft_term *found)
{
	raft_term t;

	for (;;) {
		if (raft_log_term(l, index, &t) != RAFT_OK) {
			*found = 0;
			return index;
		}
		if (t <= term || index == 0) {
			*found = t;
			return index;
		}
		index--;
	}
}
