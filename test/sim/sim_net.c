/*
 * sim_net.c - the simulated network: deep copies of messages in a min-heap
 * ordered by (delivery time, sequence number), so delivery order depends only
 * on the seed.  Drops, duplicates, delays and partitions are decided by the
 * caller (sim_node.c) from the run's PRNG.
 */
#include <stdlib.h>
#include <string.h>

#include "sim.h"

struct sim_item *sim_item_from_msg(const struct raft_message *m)
{
	struct sim_item *it = sim_xmalloc(sizeof(*it));
	size_t bytes = 0, off = 0;

	memset(it, 0, sizeof(*it));
	it->kind = SIM_ITEM_MSG;
	it->from = m->from;
	it->to = m->to;
	it->m = *m;
	it->m.entries = NULL;
	it->m.snapshot = NULL;
	if (m->n_entries) {
		for (uint32_t i = 0; i < m->n_entries; i++)
			bytes += m->entries[i].len;
		it->ents = sim_xmalloc(m->n_entries * sizeof(*it->ents));
		it->buf = bytes ? sim_xmalloc(bytes) : NULL;
		for (uint32_t i = 0; i < m->n_entries; i++) {
			it->ents[i] = m->entries[i];
			if (m->entries[i].len) {
				memcpy(it->buf + off, m->entries[i].data, m->entries[i].len);
				it->ents[i].data = it->buf + off;
				off += m->entries[i].len;
			} else {
				it->ents[i].data = NULL;
			}
		}
		it->m.entries = it->ents;
	}
	if (m->snapshot) {
		it->meta = *m->snapshot;
		it->m.snapshot = &it->meta;
	}
	return it;
}

struct sim_item *sim_item_dup(const struct sim_item *src)
{
	struct sim_item *it;

	if (src->kind != SIM_ITEM_MSG) {
		it = sim_xmalloc(sizeof(*it));
		*it = *src;
		memset(&it->sm, 0, sizeof(it->sm));
		return it;
	}
	it = sim_item_from_msg(&src->m);
	it->from_inc = src->from_inc;
	sim_u64s_copy(&it->sm, &src->sm, src->sm.n);
	return it;
}

void sim_item_free(struct sim_item *it)
{
	if (!it)
		return;
	free(it->ents);
	free(it->buf);
	sim_u64s_free(&it->sm);
	free(it);
}

static bool before(const struct sim_item *a, const struct sim_item *b)
{
	return a->at < b->at || (a->at == b->at && a->seq < b->seq);
}

void sim_net_push(struct sim_net *n, struct sim_item *it)
{
	size_t i;

	if (n->n == n->cap) {
		n->cap = n->cap ? 2 * n->cap : 256;
		n->heap = sim_xrealloc(n->heap, n->cap * sizeof(*n->heap));
	}
	it->seq = ++n->seq;
	i = n->n++;
	while (i > 0) {
		size_t p = (i - 1) / 2;

		if (!before(it, n->heap[p]))
			break;
		n->heap[i] = n->heap[p];
		i = p;
	}
	n->heap[i] = it;
}

struct sim_item *sim_net_pop_due(struct sim_net *n, uint64_t now)
{
	struct sim_item *top, *last;
	size_t i = 0;

	if (n->n == 0 || n->heap[0]->at > now)
		return NULL;
	top = n->heap[0];
	last = n->heap[--n->n];
	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= n->n)
			break;
		if (c + 1 < n->n && before(n->heap[c + 1], n->heap[c]))
			c++;
		if (!before(n->heap[c], last))
			break;
		n->heap[i] = n->heap[c];
		i = c;
	}
	if (n->n > 0)
		n->heap[i] = last;
	return top;
}

void sim_net_free(struct sim_net *n)
{
	for (size_t i = 0; i < n->n; i++)
		sim_item_free(n->heap[i]);
	free(n->heap);
	memset(n, 0, sizeof(*n));
}
