/*
 * sim_store.c - one simulated node's disk: hard state, log, snapshot and the
 * state machine with its applied index.  Everything here survives a crash
 * but the state machine's entries above its durable index and the writes of
 * deferred syncs not yet synced (a journal: a crash keeps a prefix of them);
 * what the core has not handed over through a completed Ready does not.
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
	free(s->wrec);
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

/* ---- deferred syncs ---- */

void sim_store_synced(struct sim_store *s)
{
	s->n_wrec = 0;
}

void sim_store_defer_begin(struct sim_store *s)
{
	if (s->n_wrec > 0)
		return;
	s->dur_last = sim_store_last(s);
	s->dur_hs = s->hs;
}

uint64_t sim_store_defer_end(struct sim_store *s)
{
	struct sim_wrec *r;

	if (s->n_wrec == s->cap_wrec) {
		s->cap_wrec = s->cap_wrec ? 2 * s->cap_wrec : 16;
		s->wrec = sim_xrealloc(s->wrec, s->cap_wrec * sizeof(*s->wrec));
	}
	r = &s->wrec[s->n_wrec++];
	r->seq = ++s->wseq;
	r->last = sim_store_last(s);
	r->hs = s->hs;
	r->term = 0;
	(void)sim_store_term(s, r->last, &r->term);
	return r->seq;
}

raft_index sim_store_durable_last(const struct sim_store *s)
{
	return s->n_wrec > 0 ? s->dur_last : sim_store_last(s);
}

bool sim_store_sync_done(struct sim_store *s, uint64_t seq, raft_index *index, raft_term *term)
{
	size_t k = 0;

	while (k < s->n_wrec && s->wrec[k].seq <= seq)
		k++;
	if (k == 0 || s->wrec[k - 1].seq != seq)
		return false; /* a synced save made it durable already */
	s->dur_last = *index = s->wrec[k - 1].last;
	*term = s->wrec[k - 1].term;
	s->dur_hs = s->wrec[k - 1].hs;
	memmove(s->wrec, s->wrec + k, (s->n_wrec - k) * sizeof(*s->wrec));
	s->n_wrec -= k;
	return true;
}

long sim_store_crash(struct sim_store *s, size_t keep)
{
	raft_index last = s->dur_last;
	raft_index was = sim_store_last(s);

	if (s->n_wrec == 0)
		return 0;
	if (keep > s->n_wrec)
		keep = s->n_wrec;
	s->hs = s->dur_hs;
	if (keep > 0) {
		last = s->wrec[keep - 1].last;
		s->hs = s->wrec[keep - 1].hs;
	}
	s->n_wrec = 0;
	if (last + 1 < s->first)
		return -1;
	for (size_t i = last + 1 - s->first; i < s->n; i++)
		bury(s, s->ents[i].data);
	s->n = last + 1 - s->first;
	return (long)(was - last);
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
