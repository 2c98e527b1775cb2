/*
 * pending.c - the table of client operations waiting for an outcome, keyed by
 * series (open addressing, linear probing, backward-shift deletion: no
 * allocation per proposal once the table is large enough).
 */
#include <string.h>

#include "engine/engine_int.h"

static size_t slot_of(const struct pending_table *t, uint64_t key)
{
	return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 17) & (t->cap - 1);
}

int eng_pending_init(struct pending_table *t, const struct engine_alloc *a, size_t cap)
{
	t->slots = a->malloc(cap * sizeof(*t->slots));
	if (t->slots == NULL)
		return ENGINE_ERR_NOMEM;
	memset(t->slots, 0, cap * sizeof(*t->slots));
	t->cap = cap;
	t->n = 0;
	return ENGINE_OK;
}

void eng_pending_free(struct pending_table *t, const struct engine_alloc *a)
{
	a->free(t->slots);
	t->slots = NULL;
	t->cap = t->n = 0;
}

static void insert(struct pending_table *t, const struct pending *p)
{
	size_t i = slot_of(t, p->key);

	while (t->slots[i].key != 0)
		i = (i + 1) & (t->cap - 1);
	t->slots[i] = *p;
	t->n++;
}

/* Double the table. */
static int grow(struct pending_table *t, const struct engine_alloc *a)
{
	struct pending_table nt;
	int rc = eng_pending_init(&nt, a, t->cap * 2);

	if (rc != ENGINE_OK)
		return rc;
	for (size_t i = 0; i < t->cap; i++)
		if (t->slots[i].key != 0)
			insert(&nt, &t->slots[i]);
	a->free(t->slots);
	*t = nt;
	return ENGINE_OK;
}

int eng_pending_reserve(struct pending_table *t, const struct engine_alloc *a, size_t n)
{
	int rc;

	while ((t->n + n) * 2 > t->cap) {
		rc = grow(t, a);
		if (rc != ENGINE_OK)
			return rc;
	}
	return ENGINE_OK;
}

int eng_pending_put(struct pending_table *t, const struct engine_alloc *a, const struct pending *p)
{
	int rc;

	if ((t->n + 1) * 2 > t->cap) {
		rc = grow(t, a);
		if (rc != ENGINE_OK)
			return rc;
	}
	insert(t, p);
	return ENGINE_OK;
}

struct pending *eng_pending_get(struct pending_table *t, uint64_t key)
{
	size_t i;

	if (key == 0 || t->n == 0)
		return NULL;
	for (i = slot_of(t, key); t->slots[i].key != 0; i = (i + 1) & (t->cap - 1))
		if (t->slots[i].key == key)
			return &t->slots[i];
	return NULL;
}

void eng_pending_del(struct pending_table *t, struct pending *p, struct pending *out)
{
	size_t mask = t->cap - 1;
	size_t i = (size_t)(p - t->slots), j = i;

	if (out != NULL)
		*out = *p;
	/* Backward shift: move later members of the probe run into the hole. */
	for (;;) {
		size_t home;

		j = (j + 1) & mask;
		if (t->slots[j].key == 0)
			break;
		home = slot_of(t, t->slots[j].key);
		/* Keep j where it is if its home lies cyclically in (i, j]. */
		if (i <= j ? (i < home && home <= j) : (i < home || home <= j))
			continue;
		t->slots[i] = t->slots[j];
		i = j;
	}
	t->slots[i].key = 0;
	t->n--;
}
