/*
 * sim_store.c - one simulated node's disk: hard state, log, snapshot and the
 * state machine with its applied index.  Everything here survives a crash
 * but the state machine's entries above its durable index; what the core
 * has not handed over through a completed Ready does not.
 */
#include <stdlib.h>
#include <string.h>

#include "sim.h"

void sim_store_init(struct sim_store *s)
{
	memset(s, 0, sizeof(*s));
	s->first = 1;
}

static void bury(struct sim_store *s, uint8_t *p)
{
	if (!p)
		return;
	if (s->n_grave == s->cap_grave) {
		s->cap_grave = s->cap_grave ? 2 * s->cap_grave : 64;
		s->grave = sim_xrealloc(s->grave, s->cap_grave * sizeof(*s->grave));
	}
	s->grave[s->n_grave++] = p;
}

void sim_store_flush_grave(struct sim_store *s)
{
	for (size_t i = 0; i < s->n_grave; i++)
		free(s->grave[i]);
	s->n_grave = 0;
}

void sim_snapshot_free(struct sim_snapshot *s)
{
	sim_u64s_free(&s->sm);
	memset(&s->meta, 0, sizeof(s->meta));
}

void sim_store_free(struct sim_store *s)
{
	struct sim_rand *fail_rng = s->fail_rng;
	unsigned fail = s->fail;

	for (size_t i = 0; i < s->n; i++)
		free(s->ents[i].data);
	free(s->ents);
	sim_store_flush_grave(s);
	free(s->grave);
	sim_u64s_free(&s->sm);
	sim_store_init(s);
	s->fail_rng = fail_rng; /* the disk is gone, not its flakiness */
	s->fail = fail;
}

raft_index sim_store_last(const struct sim_store *s)
{
	return s->first + s->n - 1;
}

int sim_store_term(const struct sim_store *s, raft_index i, raft_term *t)
{
	if (i + 1 < s->first)
		return RAFT_ERR_COMPACTED;
	if (i > sim_store_last(s))
		return RAFT_ERR_UNAVAILABLE;
	*t = i + 1 == s->first ? s->prev_term : s->ents[i - s->first].term;
	return RAFT_OK;
}

int sim_store_append(struct sim_store *s, const struct raft_entry *e, uint32_t n)
{
	raft_index lo;

	if (n == 0)
		return 0;
	lo = e[0].index;
	if (lo < s->first || lo > sim_store_last(s) + 1)
		return -1;
	for (uint32_t k = 0; k < n; k++)
		if (e[k].index != lo + k)
			return -1;
	for (size_t i = lo - s->first; i < s->n; i++)
		bury(s, s->ents[i].data);
	s->n = lo - s->first;
	if (s->n + n > s->cap) {
		size_t cap = s->cap ? s->cap : 64;

		while (cap < s->n + n)
			cap *= 2;
		s->ents = sim_xrealloc(s->ents, cap * sizeof(*s->ents));
		s->cap = cap;
	}
	for (uint32_t k = 0; k < n; k++) {
		struct sim_ent *d = &s->ents[s->n++];

		d->term = e[k].term;
		d->type = e[k].type;
		d->len = e[k].len;
		d->data = NULL;
		if (e[k].len) {
			d->data = sim_xmalloc(e[k].len);
			memcpy(d->data, e[k].data, e[k].len);
		}
	}
	return 0;
}

void sim_store_install(struct sim_store *s, const struct sim_snapshot *snap)
{
	for (size_t i = 0; i < s->n; i++)
		bury(s, s->ents[i].data);
	s->n = 0;
	s->first = snap->meta.index + 1;
	s->prev_term = snap->meta.term;
	s->snap = snap->meta;
	s->membership = snap->meta.membership;
	s->applied = s->durable = snap->meta.index;
	sim_u64s_copy(&s->sm, &snap->sm, snap->meta.index + 1);
}

bool sim_store_take_snapshot(struct sim_store *s, raft_index at)
{
	raft_term t;

	if (at > s->applied || at <= s->snap.index || s->membership.config_index > at ||
	    sim_store_term(s, at, &t) != RAFT_OK)
		return false;
	s->snap.index = at;
	s->snap.term = t;
	s->snap.membership = s->membership;
	return true;
}

void sim_store_compact(struct sim_store *s, raft_index upto)
{
	size_t drop;

	if (upto > s->snap.index)
		upto = s->snap.index;
	if (upto < s->first || upto > sim_store_last(s))
		return;
	drop = upto - s->first + 1;
	s->prev_term = s->ents[drop - 1].term;
	for (size_t i = 0; i < drop; i++)
		bury(s, s->ents[i].data);
	memmove(s->ents, s->ents + drop, (s->n - drop) * sizeof(*s->ents));
	s->n -= drop;
	s->first = upto + 1;
}

/* ---- struct raft_storage callbacks ---- */

/* An injected read failure, or 0: out of memory (transient) or an I/O error (fatal). */
static int read_fault(struct sim_store *s)
{
	if (s->fail == 0 || sim_rand_below(s->fail_rng, 100000) >= s->fail)
		return 0;
	return sim_rand_below(s->fail_rng, 2) ? RAFT_ERR_NOMEM : RAFT_ERR_STORAGE;
}

static int cb_initial_state(void *ctx, struct raft_hard_state *hs, struct raft_membership *m)
{
	struct sim_store *s = ctx;

	*hs = s->hs;
	*m = s->membership;
	return RAFT_OK;
}

static int cb_entries(void *ctx, raft_index lo, raft_index hi, uint64_t max_bytes,
                      struct raft_entry *out, uint32_t *n)
{
	struct sim_store *s = ctx;
	int rc = read_fault(s);
	uint64_t bytes = 0;
	uint32_t k = 0;

	*n = 0;
	if (rc != 0)
		return rc;
	if (lo < s->first)
		return RAFT_ERR_COMPACTED;
	if (hi < lo || hi > sim_store_last(s) + 1)
		return RAFT_ERR_UNAVAILABLE;
	for (raft_index i = lo; i < hi; i++) {
		const struct sim_ent *e = &s->ents[i - s->first];

		if (k > 0 && bytes + e->len > max_bytes)
			break;
		out[k].term = e->term;
		out[k].index = i;
		out[k].type = e->type;
		out[k].len = e->len;
		out[k].data = e->data;
		bytes += e->len;
		k++;
	}
	*n = k;
	return RAFT_OK;
}

static int cb_term(void *ctx, raft_index i, raft_term *t)
{
	int rc = read_fault(ctx);

	return rc != 0 ? rc : sim_store_term(ctx, i, t);
}

static raft_index cb_first_index(void *ctx)
{
	return ((struct sim_store *)ctx)->first;
}

static raft_index cb_last_index(void *ctx)
{
	return sim_store_last(ctx);
}

static int cb_snapshot(void *ctx, struct raft_snapshot_meta *meta)
{
	*meta = ((struct sim_store *)ctx)->snap;
	return RAFT_OK;
}

struct raft_storage sim_store_iface(struct sim_store *s)
{
	struct raft_storage st = {
	        .ctx = s,
	        .initial_state = cb_initial_state,
	        .entries = cb_entries,
	        .term = cb_term,
	        .first_index = cb_first_index,
	        .last_index = cb_last_index,
	        .snapshot = cb_snapshot,
	};
	return st;
}
