/*
 * probe_events.h - what the probes in this directory share (not part of any
 * build): a min-heap of events in virtual time, ordered by time and then by
 * the order they were queued (so messages on one link stay in order), a
 * copy of a message and its entries' bytes to deliver later, and
 * percentiles of a sorted array.
 *
 * The including file defines struct ev first, with at least
 *   uint64_t at, seq; struct raft_message m; struct raft_entry *ents;
 *   uint8_t *data;
 */
#ifndef PROBE_EVENTS_H
#define PROBE_EVENTS_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "raft/raft.h"

static struct ev **heap;
static size_t nheap, capheap;
static uint64_t seq;

static bool before(const struct ev *a, const struct ev *b)
{
	return a->at < b->at || (a->at == b->at && a->seq < b->seq);
}

static void push(struct ev *e)
{
	size_t i;

	e->seq = seq++;
	if (nheap == capheap) {
		capheap = capheap ? 2 * capheap : 1024;
		heap = realloc(heap, capheap * sizeof(*heap));
	}
	i = nheap++;
	heap[i] = e;
	while (i > 0 && before(heap[i], heap[(i - 1) / 2])) {
		struct ev *t = heap[i];

		heap[i] = heap[(i - 1) / 2];
		heap[(i - 1) / 2] = t;
		i = (i - 1) / 2;
	}
}

static struct ev *pop(void)
{
	struct ev *top = heap[0];
	size_t i = 0;

	heap[0] = heap[--nheap];
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;

		if (l < nheap && before(heap[l], heap[m]))
			m = l;
		if (r < nheap && before(heap[r], heap[m]))
			m = r;
		if (m == i)
			break;
		struct ev *t = heap[i];
		heap[i] = heap[m];
		heap[m] = t;
		i = m;
	}
	return top;
}

/* e->m = *m, with its entries and their bytes copied into e (freed with
 * it); snapshots are not carried. */
static void ev_set_message(struct ev *e, const struct raft_message *m)
{
	uint64_t bytes = 0;

	e->m = *m;
	for (uint32_t i = 0; i < m->n_entries; i++)
		bytes += m->entries[i].len;
	if (m->n_entries) {
		uint8_t *p;

		e->ents = calloc(m->n_entries, sizeof(*e->ents));
		e->data = p = malloc(bytes + 1);
		for (uint32_t i = 0; i < m->n_entries; i++) {
			e->ents[i] = m->entries[i];
			memcpy(p, m->entries[i].data, m->entries[i].len);
			e->ents[i].data = p;
			p += m->entries[i].len;
		}
		e->m.entries = e->ents;
	}
	e->m.snapshot = NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The p-th percentile (0..1) of v[0..n), sorted ascending; 0 if empty. */
static uint64_t pct(const uint64_t *v, size_t n, double p)
{
	if (n == 0)
		return 0;
	return v[(size_t)(p * (double)(n - 1))];
}

#endif
