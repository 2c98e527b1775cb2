/*
 * arena.h - a bump allocator over blocks that never move: everything handed
 * out stays valid until dr_arena_reset(), which frees all blocks but the one
 * being filled (kept for reuse).  Used for entry data that lives for one
 * Ready (src/raft) or one round (src/engine).  Not thread-safe.
 *
 * Ownership checks for debug builds: dr_arena_owns() says whether bytes were
 * handed out since the last reset, and a strict arena frees every block on
 * reset, so that a pointer kept past its lifetime is a use-after-free that
 * AddressSanitizer reports instead of silently reading reused bytes.
 */
#ifndef DRAGONRAFT_UTIL_ARENA_H
#define DRAGONRAFT_UTIL_ARENA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct dr_arena_block {
	struct dr_arena_block *next;
	size_t cap, used;
	uint8_t data[];
};

struct dr_arena {
	void *(*malloc)(size_t size); /* allocation hooks (tests inject failures) */
	void (*free)(void *p);
	size_t block;                /* smallest block */
	struct dr_arena_block *cur;  /* block being filled */
	struct dr_arena_block *full; /* older blocks, newest first */
	size_t total;                /* bytes handed out since the last reset */
	bool strict;                 /* reset frees every block (debug builds) */
};

/* An empty arena over these hooks; blocks of at least block bytes. */
void dr_arena_init(struct dr_arena *ar, void *(*malloc_fn)(size_t), void (*free_fn)(void *),
                   size_t block);
/* n bytes, 8-byte aligned; NULL when out of memory or n is 0. */
void *dr_arena_alloc(struct dr_arena *ar, size_t n);
/* A copy of d[0..len); NULL when out of memory or len is 0. */
const uint8_t *dr_arena_copy(struct dr_arena *ar, const void *d, size_t len);
/* Forget everything handed out, keeping the current block (unless strict). */
void dr_arena_reset(struct dr_arena *ar);
/* Were p[0..n) handed out by ar since its last reset? */
bool dr_arena_owns(const struct dr_arena *ar, const void *p, size_t n);
/* Free every block. */
void dr_arena_free(struct dr_arena *ar);

#endif /* DRAGONRAFT_UTIL_ARENA_H */
