/*
 * cache.c - the per-group entry cache: the most recently persisted entries,
 * kept in memory so that applying committed entries and replicating to
 * followers that are only a little behind do not read the LogDB back
 * (Dragonboat's in-memory log plays the same part).
 *
 * Entries live in a ring indexed by log index; their data is copied into one
 * block per save (no allocation per entry).  A block is freed when its last
 * entry leaves the ring, but only after the group's next raft_advance() that
 * leaves no message waiting in the core (round.c finish), since messages of
 * the current Ready, or built for the next one, may still point into it.
 */
#include <string.h>

#include "engine/engine_int.h"

#define CENT_OVERHEAD 48 /* bytes charged per cached entry besides its data */

static struct centry *at(const struct entry_cache *c, size_t k)
{
	return &c->ring[(c->head + k) & (c->cap - 1)];
}

static void unref(struct entry_cache *c, struct cache_block *b)
{
	if (--b->refs == 0) {
		b->next = c->dead;
		c->dead = b;
	}
}

static void pop_front(struct entry_cache *c)
{
	struct centry *ce = at(c, 0);

	c->bytes -= ce->e.len + CENT_OVERHEAD;
	unref(c, ce->b);
	c->head = (c->head + 1) & (c->cap - 1);
	c->n--;
	c->first++;
}

static void pop_back(struct entry_cache *c)
{
	struct centry *ce = at(c, c->n - 1);

	c->bytes -= ce->e.len + CENT_OVERHEAD;
	unref(c, ce->b);
	c->n--;
}

void eng_cache_clear(struct entry_cache *c, raft_index next)
{
	while (c->n > 0)
		pop_back(c);
	c->first = next;
}

void eng_cache_release(struct entry_cache *c, const struct engine_alloc *a)
{
	while (c->dead != NULL) {
		struct cache_block *b = c->dead;

		c->dead = b->next;
		a->free(b);
	}
}

void eng_cache_free(struct entry_cache *c, const struct engine_alloc *a)
{
	eng_cache_clear(c, 0);
	eng_cache_release(c, a);
	a->free(c->ring);
	memset(c, 0, sizeof(*c));
}

static int grow(struct entry_cache *c, const struct engine_alloc *a, size_t need)
{
	size_t nc = c->cap ? c->cap : 16;
	struct centry *nr;

	while (nc < need)
		nc *= 2;
	nr = a->malloc(nc * sizeof(*nr));
	if (nr == NULL)
		return ENGINE_ERR_NOMEM;
	for (size_t k = 0; k < c->n; k++)
		nr[k] = *at(c, k);
	a->free(c->ring);
	c->ring = nr;
	c->cap = nc;
	c->head = 0;
	return ENGINE_OK;
}

void eng_cache_append(struct entry_cache *c, const struct engine_alloc *a,
                      const struct raft_entry *e, uint32_t n, uint64_t limit)
{
	struct cache_block *b;
	size_t data = 0;
	uint8_t *p;

	if (n == 0 || limit == 0)
		return;
	/* New entries replace any cached suffix from e[0].index. */
	while (c->n > 0 && c->first + c->n > e[0].index)
		pop_back(c);
	if (c->n == 0 || c->first + c->n != e[0].index)
		eng_cache_clear(c, e[0].index);
	for (uint32_t i = 0; i < n; i++)
		data += e[i].len;
	if (c->n + n > c->cap && grow(c, a, c->n + n) != ENGINE_OK)
		goto drop;
	b = a->malloc(sizeof(*b) + data);
	if (b == NULL)
		goto drop;
	b->refs = n;
	b->next = NULL;
	p = b->data;
	for (uint32_t i = 0; i < n; i++) {
		struct centry *ce = at(c, c->n);

		ce->e = e[i];
		ce->b = b;
		if (e[i].len > 0) {
			memcpy(p, e[i].data, e[i].len);
			ce->e.data = p;
			p += e[i].len;
		} else {
			ce->e.data = NULL;
		}
		c->n++;
		c->bytes += e[i].len + CENT_OVERHEAD;
	}
	while (c->n > 0 && c->bytes > limit)
		pop_front(c);
	return;
drop:
	/* Out of memory: the cache is only an optimisation; storage has it all. */
	eng_cache_clear(c, e[n - 1].index + 1);
}

void eng_cache_trim(struct entry_cache *c, raft_index below)
{
	while (c->n > 0 && c->first < below)
		pop_front(c);
	if (c->n == 0 && c->first < below)
		c->first = below;
}

bool eng_cache_entries(const struct entry_cache *c, raft_index lo, raft_index hi,
                       uint64_t max_bytes, struct raft_entry *out, uint32_t *n)
{
	uint64_t size = 0;
	uint32_t k = 0;

	if (lo < c->first || hi > c->first + c->n || lo >= hi)
		return false;
	for (raft_index i = lo; i < hi; i++) {
		const struct raft_entry *e = &at(c, (size_t)(i - c->first))->e;

		if (k > 0 && size + e->len > max_bytes)
			break;
		out[k++] = *e;
		size += e->len;
	}
	*n = k;
	return true;
}

bool eng_cache_term(const struct entry_cache *c, raft_index i, raft_term *t)
{
	if (i < c->first || i >= c->first + c->n)
		return false;
	*t = at(c, (size_t)(i - c->first))->e.term;
	return true;
}
