/*
 * arena.c - the bump allocator (see arena.h).
 */
#include <string.h>

#include "util/arena.h"

void dr_arena_init(struct dr_arena *ar, void *(*malloc_fn)(size_t), void (*free_fn)(void *),
                   size_t block)
{
	memset(ar, 0, sizeof(*ar));
	ar->malloc = malloc_fn;
	ar->free = free_fn;
	ar->block = block;
}

void *dr_arena_alloc(struct dr_arena *ar, size_t n)
{
	struct dr_arena_block *b = ar->cur;
	void *p;

	if (n == 0)
		return NULL;
	n = (n + 7) & ~(size_t)7;
	if (b == NULL || b->cap - b->used < n) {
		size_t cap = ar->block;

		if (ar->total > cap)
			cap = ar->total; /* geometric: the next block doubles the total */
		if (cap < n)
			cap = n;
		b = ar->malloc(sizeof(*b) + cap);
		if (b == NULL)
			return NULL;
		b->cap = cap;
		b->used = 0;
		b->next = NULL;
		if (ar->cur != NULL) {
			ar->cur->next = ar->full;
			ar->full = ar->cur;
		}
		ar->cur = b;
	}
	p = b->data + b->used;
	b->used += n;
	ar->total += n;
	return p;
}

const uint8_t *dr_arena_copy(struct dr_arena *ar, const void *d, size_t len)
{
	uint8_t *p = dr_arena_alloc(ar, len);

	if (p != NULL)
		memcpy(p, d, len);
	return p;
}

void dr_arena_reset(struct dr_arena *ar)
{
	struct dr_arena_block *b, *next;

	for (b = ar->full; b != NULL; b = next) {
		next = b->next;
		ar->free(b);
	}
	ar->full = NULL;
	if (ar->cur != NULL && ar->strict) {
		ar->free(ar->cur);
		ar->cur = NULL;
	}
	if (ar->cur != NULL)
		ar->cur->used = 0;
	ar->total = 0;
}

void dr_arena_free(struct dr_arena *ar)
{
	dr_arena_reset(ar);
	if (ar->cur != NULL)
		ar->free(ar->cur);
	ar->cur = NULL;
}

/* Is [p, p+n) inside what block b handed out? */
static bool in_block(const struct dr_arena_block *b, const void *p, size_t n)
{
	uintptr_t lo = (uintptr_t)b->data, at = (uintptr_t)p;

	return at >= lo && at - lo <= b->used && n <= b->used - (at - lo);
}

bool dr_arena_owns(const struct dr_arena *ar, const void *p, size_t n)
{
	if (ar->cur != NULL && in_block(ar->cur, p, n))
		return true;
	for (const struct dr_arena_block *b = ar->full; b != NULL; b = b->next)
		if (in_block(b, p, n))
			return true;
	return false;
}
