/*
 * raft_memstorage.c - in-memory struct raft_storage.  Entries live in one
 * array (compaction moves a head offset); their data in blocks that never
 * move and are freed once compaction passes every entry they hold.
 */
#include <stdlib.h>
#include <string.h>

#include "raft/raft_memstorage.h"

#define MS_BLOCK (64u << 10)

struct mblock {
	struct mblock *next;
	size_t cap;
	size_t used;
	raft_index max_index; /* highest index whose data is here */
	uint8_t data[];
};

struct raft_memstorage {
	const struct raft_alloc *a;
	struct raft_hard_state hs;
	struct raft_membership m;
	struct raft_snapshot_meta snap;
	raft_index base; /* entries start at base + 1 */
	raft_term base_term;
	struct raft_entry *ents;
	size_t head;
	size_t n;
	size_t cap;
	struct mblock *oldest;
	struct mblock *cur;
};

static const struct raft_alloc ms_libc = {malloc, realloc, free};

int raft_memstorage_create(const struct raft_alloc *alloc, struct raft_memstorage **out)
{
	const struct raft_alloc *a = alloc ? alloc : &ms_libc;
	struct raft_memstorage *ms = a->malloc(sizeof(*ms));

	*out = NULL;
	if (ms == NULL)
		return RAFT_ERR_NOMEM;
	memset(ms, 0, sizeof(*ms));
	ms->a = a;
	*out = ms;
	return RAFT_OK;
}

/* Free blocks (never the current one) whose entries are all at or below index. */
static void free_blocks_upto(struct raft_memstorage *ms, raft_index index)
{
	while (ms->oldest != NULL && ms->oldest != ms->cur && ms->oldest->max_index <= index) {
		struct mblock *b = ms->oldest;

		ms->oldest = b->next;
		ms->a->free(b);
	}
}

void raft_memstorage_destroy(struct raft_memstorage *ms)
{
	struct mblock *b, *next;

	if (ms == NULL)
		return;
	for (b = ms->oldest; b != NULL; b = next) {
		next = b->next;
		ms->a->free(b);
	}
	ms->a->free(ms->ents);
	ms->a->free(ms);
}

static raft_index last_index(const struct raft_memstorage *ms)
{
	return ms->base + ms->n;
}

static const uint8_t *copy_data(struct raft_memstorage *ms, const uint8_t *d, uint32_t len,
                                raft_index index)
{
	struct mblock *b = ms->cur;
	uint8_t *p;

	if (len == 0)
		return NULL;
	if (b == NULL || b->cap - b->used < len) {
		size_t cap = len > MS_BLOCK ? len : MS_BLOCK;

		b = ms->a->malloc(sizeof(*b) + cap);
		if (b == NULL)
			return NULL;
		b->next = NULL;
		b->cap = cap;
		b->used = 0;
		b->max_index = 0;
		if (ms->cur != NULL)
			ms->cur->next = b;
		else
			ms->oldest = b;
		ms->cur = b;
	}
	p = b->data + b->used;
	memcpy(p, d, len);
	b->used += len;
	if (index > b->max_index)
		b->max_index = index;
	return p;
}

int raft_memstorage_append(struct raft_memstorage *ms, const struct raft_entry *e, uint32_t n)
{
	raft_index first;
	size_t keep;

	/* Entries already compacted away are skipped. */
	while (n > 0 && e[0].index <= ms->base) {
		e++;
		n--;
	}
	if (n == 0)
		return RAFT_OK;
	first = e[0].index;
	if (first > last_index(ms) + 1)
		return RAFT_ERR_UNAVAILABLE;
	keep = (size_t)(first - ms->base - 1);
	if (ms->head + keep + n > ms->cap) {
		if (ms->head > 0) {
			memmove(ms->ents, ms->ents + ms->head, keep * sizeof(*ms->ents));
			ms->head = 0;
		}
		if (keep + n > ms->cap) {
			size_t cap = ms->cap ? ms->cap : 256;
			void *p;

			while (cap < keep + n)
				cap *= 2;
			p = ms->a->realloc(ms->ents, cap * sizeof(*ms->ents));
			if (p == NULL)
				return RAFT_ERR_NOMEM;
			ms->ents = p;
			ms->cap = cap;
		}
	}
	ms->n = keep;
	for (uint32_t i = 0; i < n; i++) {
		struct raft_entry *d = &ms->ents[ms->head + keep + i];

		*d = e[i];
		d->data = copy_data(ms, e[i].data, e[i].len, e[i].index);
		if (e[i].len > 0 && d->data == NULL)
			return RAFT_ERR_NOMEM;
		ms->n++;
	}
	return RAFT_OK;
}

void raft_memstorage_set_hard_state(struct raft_memstorage *ms, const struct raft_hard_state *hs)
{
	ms->hs = *hs;
}

void raft_memstorage_set_membership(struct raft_memstorage *ms, const struct raft_membership *m)
{
	ms->m = *m;
}

int raft_memstorage_apply_snapshot(struct raft_memstorage *ms, const struct raft_snapshot_meta *s)
{
	if (s->index < ms->snap.index)
		return RAFT_ERR_COMPACTED;
	ms->snap = *s;
	ms->base = s->index;
	ms->base_term = s->term;
	ms->head = 0;
	ms->n = 0;
	free_blocks_upto(ms, UINT64_MAX);
	ms->m = s->membership;
	if (ms->hs.commit < s->index)
		ms->hs.commit = s->index;
	return RAFT_OK;
}

static int term_of(const struct raft_memstorage *ms, raft_index i, raft_term *t)
{
	if (i < ms->base)
		return RAFT_ERR_COMPACTED;
	if (i > last_index(ms))
		return RAFT_ERR_UNAVAILABLE;
	*t = i == ms->base ? ms->base_term : ms->ents[ms->head + (i - ms->base - 1)].term;
	return RAFT_OK;
}

int raft_memstorage_create_snapshot(struct raft_memstorage *ms, raft_index index,
                                    const struct raft_membership *m)
{
	raft_term t;
	int rc;

	if (index < ms->snap.index)
		return RAFT_ERR_COMPACTED;
	rc = term_of(ms, index, &t);
	if (rc != RAFT_OK)
		return rc;
	ms->snap.index = index;
	ms->snap.term = t;
	ms->snap.membership = *m;
	return RAFT_OK;
}

int raft_memstorage_compact(struct raft_memstorage *ms, raft_index index)
{
	raft_term t;
	int rc;

	if (index <= ms->base)
		return RAFT_OK;
	rc = term_of(ms, index, &t);
	if (rc != RAFT_OK)
		return rc;
	ms->head += (size_t)(index - ms->base);
	ms->n -= (size_t)(index - ms->base);
	ms->base = index;
	ms->base_term = t;
	free_blocks_upto(ms, index);
	return RAFT_OK;
}

int raft_memstorage_save_ready(struct raft_memstorage *ms, const struct raft_ready *rd)
{
	int rc;

	if (rd->has_snapshot) {
		rc = raft_memstorage_apply_snapshot(ms, &rd->snapshot);
		if (rc != RAFT_OK)
			return rc;
	}
	rc = raft_memstorage_append(ms, rd->entries, rd->n_entries);
	if (rc != RAFT_OK)
		return rc;
	if (rd->hard_state_changed)
		ms->hs = rd->hard_state;
	return RAFT_OK;
}

const struct raft_hard_state *raft_memstorage_hard_state(const struct raft_memstorage *ms)
{
	return &ms->hs;
}

raft_index raft_memstorage_first_index(const struct raft_memstorage *ms)
{
	return ms->base + 1;
}

raft_index raft_memstorage_last_index(const struct raft_memstorage *ms)
{
	return last_index(ms);
}

const struct raft_entry *raft_memstorage_entry(const struct raft_memstorage *ms, raft_index i)
{
	if (i <= ms->base || i > last_index(ms))
		return NULL;
	return &ms->ents[ms->head + (i - ms->base - 1)];
}

/* ---- struct raft_storage callbacks ---- */

static int cb_initial_state(void *ctx, struct raft_hard_state *hs, struct raft_membership *m)
{
	struct raft_memstorage *ms = ctx;

	*hs = ms->hs;
	*m = ms->m;
	return RAFT_OK;
}

static int cb_entries(void *ctx, raft_index lo, raft_index hi, uint64_t max_bytes,
                      struct raft_entry *out, uint32_t *n)
{
	struct raft_memstorage *ms = ctx;
	uint64_t size = 0;
	uint32_t k = 0;

	*n = 0;
	if (lo <= ms->base)
		return RAFT_ERR_COMPACTED;
	if (hi > last_index(ms) + 1 || lo > hi)
		return RAFT_ERR_UNAVAILABLE;
	for (raft_index i = lo; i < hi; i++) {
		const struct raft_entry *e = &ms->ents[ms->head + (i - ms->base - 1)];

		if (k > 0 && size + e->len > max_bytes)
			break;
		out[k++] = *e;
		size += e->len;
	}
	*n = k;
	return RAFT_OK;
}

static int cb_term(void *ctx, raft_index i, raft_term *t)
{
	return term_of(ctx, i, t);
}

static raft_index cb_first_index(void *ctx)
{
	return raft_memstorage_first_index(ctx);
}

static raft_index cb_last_index(void *ctx)
{
	return last_index(ctx);
}

static int cb_snapshot(void *ctx, struct raft_snapshot_meta *meta)
{
	struct raft_memstorage *ms = ctx;

	*meta = ms->snap;
	return RAFT_OK;
}

void raft_memstorage_storage(struct raft_memstorage *ms, struct raft_storage *st)
{
	st->ctx = ms;
	st->initial_state = cb_initial_state;
	st->entries = cb_entries;
	st->term = cb_term;
	st->first_index = cb_first_index;
	st->last_index = cb_last_index;
	st->snapshot = cb_snapshot;
}
