/*
 * kv_sm.c - the test key-value state machine (see the header).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv_sm.h"

#define KV_MAGIC 0x4B56534E41503031ull /* "KVSNAP01" */

struct kv_slot {
	uint64_t key; /* stored as key + 1 so that 0 marks a free slot */
	uint64_t vhash;
	raft_index index;
};

struct kv_state {
	raft_index applied;
	uint64_t digest;
	uint64_t count;
	struct kv_slot *slots;
	size_t cap, n;
};

struct kv_sm {
	struct kv_state cur, durable;
	uint64_t lag;
	unsigned recoveries;
	unsigned saves;
	char save_path[1024]; /* the file of the last save_snapshot call */
	bool async;
	bool busy; /* apply_busy answers true */
	enum kv_job job;
	int job_rc;
	raft_index job_index;
	char job_path[1024];
};

static uint64_t mix(uint64_t h, uint64_t v)
{
	h ^= v + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
	h *= 0xBF58476D1CE4E5B9ull;
	return h ^ (h >> 31);
}

static uint64_t hash_bytes(const uint8_t *p, size_t n)
{
	uint64_t h = 1469598103934665603ull;

	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return h;
}

static void state_free(struct kv_state *s)
{
	free(s->slots);
	memset(s, 0, sizeof(*s));
}

static int state_copy(struct kv_state *dst, const struct kv_state *src)
{
	struct kv_slot *slots = NULL;

	if (src->cap > 0) {
		slots = malloc(src->cap * sizeof(*slots));
		if (slots == NULL)
			return ENGINE_ERR_NOMEM;
		memcpy(slots, src->slots, src->cap * sizeof(*slots));
	}
	free(dst->slots);
	*dst = *src;
	dst->slots = slots;
	return ENGINE_OK;
}

static void put_slot(struct kv_state *s, uint64_t key, uint64_t vhash, raft_index index)
{
	size_t i = (size_t)mix(0, key) & (s->cap - 1);

	while (s->slots[i].key != 0 && s->slots[i].key != key + 1)
		i = (i + 1) & (s->cap - 1);
	if (s->slots[i].key == 0)
		s->n++;
	s->slots[i].key = key + 1;
	s->slots[i].vhash = vhash;
	s->slots[i].index = index;
}

static int put(struct kv_state *s, uint64_t key, uint64_t vhash, raft_index index)
{
	if ((s->n + 1) * 2 > s->cap) {
		struct kv_state ns = *s;

		ns.cap = s->cap ? s->cap * 2 : 256;
		ns.n = 0;
		ns.slots = calloc(ns.cap, sizeof(*ns.slots));
		if (ns.slots == NULL)
			return ENGINE_ERR_NOMEM;
		for (size_t i = 0; i < s->cap; i++)
			if (s->slots[i].key != 0)
				put_slot(&ns, s->slots[i].key - 1, s->slots[i].vhash,
				         s->slots[i].index);
		free(s->slots);
		*s = ns;
	}
	put_slot(s, key, vhash, index);
	return ENGINE_OK;
}

int kv_sm_create(uint64_t lag, struct kv_sm **out)
{
	*out = calloc(1, sizeof(**out));
	if (*out == NULL)
		return ENGINE_ERR_NOMEM;
	(*out)->lag = lag;
	return ENGINE_OK;
}

void kv_sm_destroy(struct kv_sm *kv)
{
	if (kv == NULL)
		return;
	state_free(&kv->cur);
	state_free(&kv->durable);
	free(kv);
}

static int kv_apply(void *ctx, const struct engine_sm_entry *ents, uint32_t n)
{
	struct kv_sm *kv = ctx;
	struct kv_state *s = &kv->cur;
	int rc;

	if (kv->job == KV_JOB_RECOVER) {
		fprintf(stderr, "kv_sm: apply during a snapshot recovery\n");
		return ENGINE_ERR_INVALID;
	}
	for (uint32_t i = 0; i < n; i++) {
		const struct engine_sm_entry *e = &ents[i];
		uint64_t key = 0;

		if (e->index != s->applied + 1) {
			fprintf(stderr, "kv_sm: applied %llu then %llu: out of order\n",
			        (unsigned long long)s->applied, (unsigned long long)e->index);
			return ENGINE_ERR_INVALID;
		}
		s->applied = e->index;
		s->digest = mix(mix(mix(s->digest, e->index), e->term), e->type);
		if (e->len == 0)
			continue;
		s->digest = mix(s->digest, hash_bytes(e->data, e->len));
		s->count++;
		memcpy(&key, e->data, e->len < 8 ? e->len : 8);
		rc = put(s, key, e->len > 8 ? hash_bytes(e->data + 8, e->len - 8) : 0, e->index);
		if (rc != ENGINE_OK)
			return rc;
	}
	if (kv->lag == 0 || s->applied >= kv->durable.applied + kv->lag)
		return kv->lag == 0 ? ENGINE_OK : state_copy(&kv->durable, s);
	return ENGINE_OK;
}

static raft_index kv_durable(void *ctx)
{
	struct kv_sm *kv = ctx;

	return kv->lag == 0 ? kv->cur.applied : kv->durable.applied;
}

static int save_now(struct kv_sm *kv, const char *path, raft_index *index)
{
	/* With a lag, export the durable state (as an asynchronous state
	 * machine would): an index below what the engine handed over. */
	struct kv_state *s = kv->lag > 0 ? &kv->durable : &kv->cur;
	uint64_t hdr[5] = {KV_MAGIC, s->applied, s->digest, s->count, s->n};
	uint64_t sum = 0;
	FILE *f = fopen(path, "wb");

	if (f == NULL)
		return ENGINE_ERR_SNAPSHOT;
	for (int i = 0; i < 5; i++)
		sum = mix(sum, hdr[i]);
	fwrite(hdr, sizeof(hdr), 1, f);
	for (size_t i = 0; i < s->cap; i++) {
		if (s->slots[i].key == 0)
			continue;
		fwrite(&s->slots[i], sizeof(s->slots[i]), 1, f);
		sum = mix(mix(mix(sum, s->slots[i].key), s->slots[i].vhash), s->slots[i].index);
	}
	fwrite(&sum, sizeof(sum), 1, f);
	if (fflush(f) != 0 || ferror(f)) {
		fclose(f);
		return ENGINE_ERR_SNAPSHOT;
	}
	fclose(f);
	*index = s->applied;
	return ENGINE_OK;
}

static int recover_now(struct kv_sm *kv, const char *path, raft_index index)
{
	struct kv_state ns;
	uint64_t hdr[5], sum = 0, want;
	struct kv_slot sl;
	FILE *f = fopen(path, "rb");
	int rc = ENGINE_ERR_SNAPSHOT;

	memset(&ns, 0, sizeof(ns));
	if (f == NULL)
		return ENGINE_ERR_SNAPSHOT;
	if (fread(hdr, sizeof(hdr), 1, f) != 1 || hdr[0] != KV_MAGIC || hdr[1] != index ||
	    hdr[4] > (1u << 26))
		goto out;
	for (int i = 0; i < 5; i++)
		sum = mix(sum, hdr[i]);
	for (uint64_t i = 0; i < hdr[4]; i++) {
		if (fread(&sl, sizeof(sl), 1, f) != 1 || sl.key == 0)
			goto out;
		sum = mix(mix(mix(sum, sl.key), sl.vhash), sl.index);
		if (put(&ns, sl.key - 1, sl.vhash, sl.index) != ENGINE_OK)
			goto out;
	}
	if (fread(&want, sizeof(want), 1, f) != 1 || want != sum)
		goto out;
	ns.applied = hdr[1];
	ns.digest = hdr[2];
	ns.count = hdr[3];
	state_free(&kv->cur);
	kv->cur = ns;
	memset(&ns, 0, sizeof(ns));
	/* A recovered snapshot is durable (it replaced the on-disk state). */
	rc = state_copy(&kv->durable, &kv->cur);
	kv->recoveries++;
out:
	state_free(&ns);
	fclose(f);
	return rc;
}

static int kv_save(void *ctx, const char *path, raft_index *index)
{
	struct kv_sm *kv = ctx;

	kv->saves++;
	snprintf(kv->save_path, sizeof(kv->save_path), "%s", path);
	if (!kv->async)
		return save_now(kv, path, index);
	if (kv->job != KV_JOB_NONE)
		return ENGINE_ERR_SNAPSHOT; /* the engine runs one at a time */
	/* The state is captured now (as a REPEATABLE READ export would be). */
	kv->job = KV_JOB_SAVE;
	kv->job_rc = save_now(kv, path, &kv->job_index);
	return ENGINE_IN_PROGRESS;
}

static int kv_recover(void *ctx, const char *path, raft_index index)
{
	struct kv_sm *kv = ctx;

	if (!kv->async)
		return recover_now(kv, path, index);
	if (kv->job != KV_JOB_NONE || strlen(path) >= sizeof(kv->job_path))
		return ENGINE_ERR_SNAPSHOT;
	kv->job = KV_JOB_RECOVER;
	kv->job_index = index;
	snprintf(kv->job_path, sizeof(kv->job_path), "%s", path);
	return ENGINE_IN_PROGRESS;
}

void kv_sm_set_async(struct kv_sm *kv, bool on)
{
	kv->async = on;
}

enum kv_job kv_sm_job(const struct kv_sm *kv)
{
	return kv->job;
}

int kv_sm_finish(struct kv_sm *kv, raft_index *index)
{
	enum kv_job job = kv->job;

	kv->job = KV_JOB_NONE;
	*index = kv->job_index;
	if (job == KV_JOB_SAVE)
		return kv->job_rc;
	if (job == KV_JOB_RECOVER)
		return recover_now(kv, kv->job_path, kv->job_index);
	return ENGINE_ERR_INVALID;
}

static bool kv_busy(void *ctx)
{
	return ((struct kv_sm *)ctx)->busy;
}

void kv_sm_set_busy(struct kv_sm *kv, bool busy)
{
	kv->busy = busy;
}

void kv_sm_ops(struct kv_sm *kv, struct engine_sm_ops *ops)
{
	memset(ops, 0, sizeof(*ops));
	ops->ctx = kv;
	ops->apply = kv_apply;
	ops->durable_applied = kv_durable;
	ops->save_snapshot = kv_save;
	ops->recover = kv_recover;
	ops->apply_busy = kv_busy;
}

void kv_sm_crash(struct kv_sm *kv)
{
	kv->job = KV_JOB_NONE; /* a background op dies with the process */
	if (kv->lag == 0)
		return;
	if (state_copy(&kv->cur, &kv->durable) != ENGINE_OK)
		abort();
}

raft_index kv_sm_applied(const struct kv_sm *kv)
{
	return kv->cur.applied;
}

uint64_t kv_sm_digest(const struct kv_sm *kv)
{
	return kv->cur.digest;
}

uint64_t kv_sm_count(const struct kv_sm *kv)
{
	return kv->cur.count;
}

raft_index kv_sm_get(const struct kv_sm *kv, uint64_t key, uint64_t *value_hash)
{
	const struct kv_state *s = &kv->cur;
	size_t i;

	if (s->cap == 0)
		return 0;
	for (i = (size_t)mix(0, key) & (s->cap - 1); s->slots[i].key != 0;
	     i = (i + 1) & (s->cap - 1)) {
		if (s->slots[i].key == key + 1) {
			if (value_hash != NULL)
				*value_hash = s->slots[i].vhash;
			return s->slots[i].index;
		}
	}
	return 0;
}

unsigned kv_sm_recoveries(const struct kv_sm *kv)
{
	return kv->recoveries;
}

unsigned kv_sm_saves(const struct kv_sm *kv)
{
	return kv->saves;
}

const char *kv_sm_save_path(const struct kv_sm *kv)
{
	return kv->save_path;
}
