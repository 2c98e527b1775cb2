/*
 * sim_util.c - the simulator's PRNG, growable arrays and entry contents.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

static uint64_t splitmix(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

void sim_rand_seed(struct sim_rand *r, uint64_t seed)
{
	uint64_t x = seed;

	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix(&x);
}

uint64_t sim_rand_next(struct sim_rand *r)
{
	uint64_t *s = r->s;
	uint64_t out = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return out;
}

uint64_t sim_rand_below(struct sim_rand *r, uint64_t n)
{
	if (n <= 1)
		return 0;
	return sim_rand_next(r) % n;
}

bool sim_rand_permille(struct sim_rand *r, unsigned p)
{
	if (p == 0)
		return false;
	return sim_rand_below(r, 1000) < p;
}

void *sim_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p) {
		fprintf(stderr, "dragonraft-sim: out of memory\n");
		abort();
	}
	return p;
}

void *sim_xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (!q) {
		fprintf(stderr, "dragonraft-sim: out of memory\n");
		abort();
	}
	return q;
}

void sim_u64s_set(struct sim_u64s *a, size_t i, uint64_t x)
{
	if (i >= a->cap) {
		size_t cap = a->cap ? a->cap : 64;

		while (cap <= i)
			cap *= 2;
		a->v = sim_xrealloc(a->v, cap * sizeof(*a->v));
		memset(a->v + a->cap, 0, (cap - a->cap) * sizeof(*a->v));
		a->cap = cap;
	}
	a->v[i] = x;
	if (i >= a->n)
		a->n = i + 1;
}

uint64_t sim_u64s_get(const struct sim_u64s *a, size_t i)
{
	return i < a->n ? a->v[i] : 0;
}

void sim_u64s_copy(struct sim_u64s *dst, const struct sim_u64s *src, size_t n)
{
	sim_u64s_free(dst);
	if (n > src->n)
		n = src->n;
	if (n == 0)
		return;
	dst->v = sim_xmalloc(n * sizeof(*dst->v));
	memcpy(dst->v, src->v, n * sizeof(*dst->v));
	dst->n = dst->cap = n;
}

void sim_u64s_free(struct sim_u64s *a)
{
	free(a->v);
	a->v = NULL;
	a->n = a->cap = 0;
}

#define PROP_MARK 0x5a17c0ffee5eedull

/* Byte k (>= SIM_PROP_MIN) of proposal id's payload. */
static uint8_t fill(uint64_t id, uint32_t k)
{
	uint64_t x = id * 0x9e3779b97f4a7c15ull + k;

	return (uint8_t)((x ^ (x >> 29)) * 0xbf58476d1ce4e5b9ull >> 56);
}

void sim_prop_encode(uint64_t id, uint8_t *buf, uint32_t len)
{
	uint64_t mark = id ^ PROP_MARK;

	for (int i = 0; i < 8; i++) {
		buf[i] = (uint8_t)(id >> (8 * i));
		buf[8 + i] = (uint8_t)(mark >> (8 * i));
	}
	for (uint32_t k = SIM_PROP_MIN; k < len; k++)
		buf[k] = fill(id, k);
}

/* The id of an intact proposal payload, or 0. */
static uint64_t prop_id(const uint8_t *data, uint32_t len)
{
	uint64_t id = 0, mark = 0;

	if (len < SIM_PROP_MIN)
		return 0;
	for (int i = 0; i < 8; i++) {
		id |= (uint64_t)data[i] << (8 * i);
		mark |= (uint64_t)data[8 + i] << (8 * i);
	}
	if ((id ^ PROP_MARK) != mark || id == 0 || id >= (1ull << 62))
		return 0;
	for (uint32_t k = SIM_PROP_MIN; k < len; k++)
		if (data[k] != fill(id, k))
			return 0;
	return id;
}

uint64_t sim_content(uint32_t type, const uint8_t *data, uint32_t len)
{
	uint64_t h = 0xcbf29ce484222325ull, id;

	if (type == RAFT_ENTRY_NORMAL && len == 0)
		return 0;
	if (type == RAFT_ENTRY_NORMAL && (id = prop_id(data, len)) != 0)
		return id;
	h ^= type;
	h *= 0x100000001b3ull;
	for (uint32_t i = 0; i < len; i++) {
		h ^= data[i];
		h *= 0x100000001b3ull;
	}
	return h | (1ull << 63);
}

bool sim_content_is_prop(uint64_t c)
{
	return c != 0 && c < (1ull << 62);
}

bool sim_entry_intact(const struct raft_entry *e)
{
	struct raft_conf_change cc;

	if (e->type == RAFT_ENTRY_CONF_CHANGE)
		return raft_conf_change_decode(e->data, e->len, &cc) == RAFT_OK;
	return e->type == RAFT_ENTRY_NORMAL && (e->len == 0 || prop_id(e->data, e->len) != 0);
}
