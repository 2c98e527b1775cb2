/*
 * fake_storage.c - the in-memory storage for engine tests (see the header).
 */
#include <stdlib.h>
#include <string.h>

#include "fake_storage.h"

struct fent {
	struct raft_entry e; /* e.data owned */
};

struct fgroup {
	uint64_t id;
	struct engine_bootstrap bs;
	struct raft_hard_state hs;
	raft_index first;    /* index of ents[0] */
	raft_term prev_term; /* term of first - 1 */
	struct raft_snapshot_meta snap;
	raft_index recovery; /* save_recovery's marker; 0 = none */
	struct fent *ents;
	size_t n, cap;
	/* Unsynced writes (write()): what a crash goes back to. */
	bool unsynced;
	raft_index synced_last;
	struct raft_hard_state synced_hs;
};

struct fake_storage {
	struct fgroup **groups;
	size_t n, cap;
	bool busy;
	bool fail_armed;
	size_t fail_keep;
	enum fake_read_fault read_fault;
	unsigned nomem_reads; /* FAKE_READ_NOMEM: reads still to fail */
	uint64_t saves;
	uint64_t commit_only;       /* updates with nothing that must be durable */
	uint64_t reads;             /* reads of entries and terms */
	uint64_t writes;            /* unsynced saves (write()) */
	uint64_t syncs;             /* sync() calls */
	bool sync_fail_armed;
	void (*on_save)(void *arg); /* fake_storage_on_save */
	void *on_save_arg;
	uint32_t on_save_min;
	void (*on_commit)(void *arg); /* fake_storage_on_commit */
	void *on_commit_arg;
	raft_index on_commit_min;
};

int fake_storage_create(struct fake_storage **out)
{
	*out = calloc(1, sizeof(**out));
	return *out == NULL ? ENGINE_ERR_NOMEM : ENGINE_OK;
}

static void truncate_from(struct fgroup *g, size_t k)
{
	for (size_t i = k; i < g->n; i++)
		free((void *)g->ents[i].e.data);
	if (k < g->n)
		g->n = k;
}

static void group_free(struct fgroup *g)
{
	truncate_from(g, 0);
	free(g->ents);
	free(g);
}

void fake_storage_destroy(struct fake_storage *fs)
{
	if (fs == NULL)
		return;
	for (size_t i = 0; i < fs->n; i++)
		group_free(fs->groups[i]);
	free(fs->groups);
	free(fs);
}

static struct fgroup *find(const struct fake_storage *fs, uint64_t id)
{
	for (size_t i = 0; i < fs->n; i++)
		if (fs->groups[i]->id == id)
			return fs->groups[i];
	return NULL;
}

static int fs_save_bootstrap(void *ctx, uint64_t group_id, const struct engine_bootstrap *bs)
{
	struct fake_storage *fs = ctx;
	struct fgroup *g = find(fs, group_id);

	if (g == NULL) {
		if (fs->n == fs->cap) {
			size_t nc = fs->cap ? 2 * fs->cap : 8;
			struct fgroup **ng = realloc(fs->groups, nc * sizeof(*ng));

			if (ng == NULL)
				return ENGINE_ERR_NOMEM;
			fs->groups = ng;
			fs->cap = nc;
		}
		g = calloc(1, sizeof(*g));
		if (g == NULL)
			return ENGINE_ERR_NOMEM;
		g->id = group_id;
		g->first = 1;
		fs->groups[fs->n++] = g;
	}
	g->bs = *bs;
	return ENGINE_OK;
}

static raft_index last_of(const struct fgroup *g)
{
	return g->first + g->n - 1;
}

static int append(struct fgroup *g, const struct raft_entry *e, uint32_t n)
{
	raft_index at = e[0].index;

	if (at < g->first || at > last_of(g) + 1)
		return ENGINE_ERR_INVALID;
	truncate_from(g, (size_t)(at - g->first));
	if (g->n + n > g->cap) {
		size_t nc = g->cap ? g->cap : 64;
		struct fent *ne;

		while (nc < g->n + n)
			nc *= 2;
		ne = realloc(g->ents, nc * sizeof(*ne));
		if (ne == NULL)
			return ENGINE_ERR_NOMEM;
		g->ents = ne;
		g->cap = nc;
	}
	for (uint32_t i = 0; i < n; i++) {
		struct fent *f = &g->ents[g->n];
		uint8_t *d = NULL;

		if (e[i].index != at + i)
			return ENGINE_ERR_INVALID;
		if (e[i].len > 0) {
			d = malloc(e[i].len);
			if (d == NULL)
				return ENGINE_ERR_NOMEM;
			memcpy(d, e[i].data, e[i].len);
		}
		f->e = e[i];
		f->e.data = d;
		g->n++;
	}
	return ENGINE_OK;
}

/* Whether an update holds an entry of at least len bytes. */
static bool has_entry_of(const struct engine_update *u, size_t n, uint32_t len)
{
	for (size_t i = 0; i < n; i++)
		for (size_t k = 0; k < u[i].n_entries; k++)
			if (u[i].entries[k].len >= len)
				return true;
	return false;
}

/* Every write so far is durable (a synced write syncs the earlier ones too: a journal). */
static void sync_all(struct fake_storage *fs)
{
	for (size_t i = 0; i < fs->n; i++)
		fs->groups[i]->unsynced = false;
}

static int save(struct fake_storage *fs, const struct engine_update *u, size_t n, bool sync)
{
	bool fail = false;
	int rc;

	if (sync)
		sync_all(fs);
	for (size_t i = 0; i < n && fs->on_commit != NULL; i++)
		if (u[i].hard_state_changed && u[i].hard_state.commit >= fs->on_commit_min) {
			void (*fn)(void *) = fs->on_commit;

			fs->on_commit = NULL; /* once */
			fn(fs->on_commit_arg);
		}
	if (fs->on_save != NULL && has_entry_of(u, n, fs->on_save_min)) {
		void (*fn)(void *) = fs->on_save;

		fs->on_save = NULL; /* once */
		fn(fs->on_save_arg);
	}
	if (fs->fail_armed) {
		fs->fail_armed = false;
		fail = true;
		if (fs->fail_keep < n)
			n = fs->fail_keep;
	}
	for (size_t i = 0; i < n; i++) {
		struct fgroup *g = find(fs, u[i].group_id);

		if (g == NULL)
			return ENGINE_ERR_NOT_FOUND;
		if (!sync && !g->unsynced) {
			g->unsynced = true;
			g->synced_last = last_of(g);
			g->synced_hs = g->hs;
		}
		/* (Unsynced writes are a leader's: they never replace durable entries.) */
		if (!sync && (u[i].snapshot != NULL ||
		              (u[i].n_entries > 0 && u[i].entries[0].index <= g->synced_last)))
			return ENGINE_ERR_INVALID;
		if (u[i].snapshot == NULL && u[i].n_entries == 0 &&
		    (!u[i].hard_state_changed ||
		     (u[i].hard_state.term == g->hs.term && u[i].hard_state.vote == g->hs.vote)))
			fs->commit_only++;
		if (u[i].snapshot != NULL) {
			truncate_from(g, 0);
			g->snap = *u[i].snapshot;
			g->first = u[i].snapshot->index + 1;
			g->prev_term = u[i].snapshot->term;
			g->recovery = 0;
		}
		if (u[i].n_entries > 0) {
			rc = append(g, u[i].entries, u[i].n_entries);
			if (rc != ENGINE_OK)
				return rc;
		}
		if (u[i].hard_state_changed)
			g->hs = u[i].hard_state;
	}
	return fail ? ENGINE_ERR_STORAGE : ENGINE_OK;
}

static int fs_save(void *ctx, const struct engine_update *u, size_t n)
{
	struct fake_storage *fs = ctx;

	fs->saves++;
	return save(fs, u, n, true);
}

static int fs_write(void *ctx, const struct engine_update *u, size_t n)
{
	struct fake_storage *fs = ctx;

	fs->writes++;
	return save(fs, u, n, false);
}

static int fs_sync(void *ctx)
{
	struct fake_storage *fs = ctx;

	fs->syncs++;
	if (fs->sync_fail_armed) {
		fs->sync_fail_armed = false;
		return ENGINE_ERR_STORAGE;
	}
	sync_all(fs);
	return ENGINE_OK;
}

void fake_storage_lose_unsynced(struct fake_storage *fs)
{
	for (size_t i = 0; i < fs->n; i++) {
		struct fgroup *g = fs->groups[i];

		if (!g->unsynced)
			continue;
		truncate_from(g, g->synced_last >= g->first ? (size_t)(g->synced_last - g->first + 1)
		                                            : 0);
		g->hs = g->synced_hs;
		g->unsynced = false;
	}
}

void fake_storage_fail_next_sync(struct fake_storage *fs)
{
	fs->sync_fail_armed = true;
}

uint64_t fake_storage_writes(const struct fake_storage *fs)
{
	return fs->writes;
}

uint64_t fake_storage_syncs(const struct fake_storage *fs)
{
	return fs->syncs;
}

static int fs_load(void *ctx, uint64_t group_id, struct engine_stored_state *out)
{
	struct fgroup *g = find(ctx, group_id);

	if (g == NULL)
		return ENGINE_ERR_NOT_FOUND;
	out->bootstrap = g->bs;
	out->hard_state = g->hs;
	out->first_index = g->first;
	out->last_index = last_of(g);
	out->prev_term = g->prev_term;
	out->snapshot = g->snap;
	out->recovery = g->recovery;
	return ENGINE_OK;
}

static int fs_list(void *ctx, uint64_t *ids, size_t cap, size_t *n)
{
	struct fake_storage *fs = ctx;

	for (size_t i = 0; i < fs->n && i < cap; i++)
		ids[i] = fs->groups[i]->id;
	*n = fs->n;
	return ENGINE_OK;
}

/* The injected fault of a read of entries or a term. */
static int read_fault(struct fake_storage *fs)
{
	fs->reads++;
	switch (fs->read_fault) {
	case FAKE_READ_FAIL:
		return ENGINE_ERR_STORAGE;
	case FAKE_READ_NOMEM:
		if (fs->nomem_reads == 0)
			return ENGINE_OK;
		fs->nomem_reads--;
		return ENGINE_ERR_NOMEM;
	default:
		return ENGINE_OK;
	}
}

static int fs_entries(void *ctx, uint64_t group_id, raft_index lo, raft_index hi,
                      uint64_t max_bytes, struct raft_entry *out, uint32_t *n,
                      struct engine_arena *arena)
{
	struct fgroup *g = find(ctx, group_id);
	uint64_t size = 0;
	uint32_t k = 0;
	int rc;

	*n = 0;
	if (g == NULL)
		return ENGINE_ERR_NOT_FOUND;
	rc = read_fault(ctx);
	if (rc != ENGINE_OK)
		return rc;
	if (lo < g->first || hi > last_of(g) + 1 || lo >= hi)
		return ENGINE_ERR_INVALID;
	for (raft_index i = lo; i < hi; i++) {
		const struct raft_entry *e = &g->ents[i - g->first].e;
		uint8_t *d = NULL;

		if (k > 0 && size + e->len > max_bytes)
			break;
		if (e->len > 0) {
			d = engine_arena_alloc(arena, e->len);
			if (d == NULL)
				return ENGINE_ERR_NOMEM;
			memcpy(d, e->data, e->len);
		}
		out[k] = *e;
		out[k].data = d;
		if (((struct fake_storage *)ctx)->read_fault == FAKE_READ_BAD_INDEX)
			out[k].index++; /* storage that contradicts itself */
		size += e->len;
		k++;
	}
	*n = k;
	return ENGINE_OK;
}

static int fs_term(void *ctx, uint64_t group_id, raft_index i, raft_term *t)
{
	struct fgroup *g = find(ctx, group_id);
	int rc;

	if (g == NULL)
		return ENGINE_ERR_NOT_FOUND;
	rc = read_fault(ctx);
	if (rc != ENGINE_OK)
		return rc;
	if (i + 1 == g->first) {
		*t = g->prev_term;
		return ENGINE_OK;
	}
	if (i < g->first || i > last_of(g))
		return ENGINE_ERR_INVALID;
	*t = g->ents[i - g->first].e.term;
	return ENGINE_OK;
}

static int fs_save_snapshot(void *ctx, uint64_t group_id, const struct raft_snapshot_meta *m)
{
	struct fgroup *g = find(ctx, group_id);

	sync_all(ctx);
	if (g == NULL)
		return ENGINE_ERR_NOT_FOUND;
	if (m->index > g->snap.index)
		g->snap = *m;
	return ENGINE_OK;
}

static int fs_save_recovery(void *ctx, uint64_t group_id, raft_index index)
{
	struct fgroup *g = find(ctx, group_id);

	sync_all(ctx);
	if (g == NULL)
		return ENGINE_ERR_NOT_FOUND;
	g->recovery = index;
	return ENGINE_OK;
}

static int fs_compact(void *ctx, uint64_t group_id, raft_index index)
{
	struct fgroup *g = find(ctx, group_id);
	size_t k;

	sync_all(ctx);
	if (g == NULL)
		return ENGINE_ERR_NOT_FOUND;
	if (index < g->first)
		return ENGINE_OK;
	if (index > last_of(g))
		return ENGINE_ERR_INVALID;
	k = (size_t)(index - g->first + 1);
	g->prev_term = g->ents[k - 1].e.term;
	for (size_t i = 0; i < k; i++)
		free((void *)g->ents[i].e.data);
	memmove(g->ents, g->ents + k, (g->n - k) * sizeof(*g->ents));
	g->n -= k;
	g->first = index + 1;
	return ENGINE_OK;
}

static int fs_remove(void *ctx, uint64_t group_id)
{
	struct fake_storage *fs = ctx;

	for (size_t i = 0; i < fs->n; i++) {
		if (fs->groups[i]->id != group_id)
			continue;
		group_free(fs->groups[i]);
		fs->groups[i] = fs->groups[--fs->n];
		return ENGINE_OK;
	}
	return ENGINE_OK;
}

static bool fs_busy(void *ctx, uint64_t group_id)
{
	(void)group_id;
	return ((struct fake_storage *)ctx)->busy;
}

static const char *fs_errmsg(void *ctx)
{
	return ((struct fake_storage *)ctx)->read_fault == FAKE_READ_FAIL
	               ? "fake storage: reads fail"
	               : "";
}

void fake_storage_ops(struct fake_storage *fs, struct engine_storage_ops *ops)
{
	memset(ops, 0, sizeof(*ops));
	ops->ctx = fs;
	ops->save_bootstrap = fs_save_bootstrap;
	ops->save = fs_save;
	ops->write = fs_write;
	ops->sync = fs_sync;
	ops->load = fs_load;
	ops->list = fs_list;
	ops->entries = fs_entries;
	ops->term = fs_term;
	ops->save_snapshot = fs_save_snapshot;
	ops->save_recovery = fs_save_recovery;
	ops->compact = fs_compact;
	ops->remove = fs_remove;
	ops->busy = fs_busy;
	ops->errmsg = fs_errmsg;
}

void fake_storage_on_save(struct fake_storage *fs, uint32_t min_len, void (*fn)(void *arg),
                          void *arg)
{
	fs->on_save = fn;
	fs->on_save_arg = arg;
	fs->on_save_min = min_len;
}

void fake_storage_on_commit(struct fake_storage *fs, raft_index commit, void (*fn)(void *arg),
                            void *arg)
{
	fs->on_commit = fn;
	fs->on_commit_arg = arg;
	fs->on_commit_min = commit;
}

void fake_storage_set_busy(struct fake_storage *fs, bool b)
{
	fs->busy = b;
}

void fake_storage_fail_next_save(struct fake_storage *fs, size_t keep)
{
	fs->fail_armed = true;
	fs->fail_keep = keep;
}

void fake_storage_read_fault(struct fake_storage *fs, enum fake_read_fault f, unsigned n)
{
	fs->read_fault = f;
	fs->nomem_reads = n;
}

unsigned fake_storage_nomem_left(const struct fake_storage *fs)
{
	return fs->nomem_reads;
}

int fake_storage_mangle(struct fake_storage *fs, uint64_t group_id, raft_index index)
{
	struct fgroup *g = find(fs, group_id);
	uint8_t *d;

	if (g == NULL || index < g->first || index > last_of(g))
		return ENGINE_ERR_INVALID;
	d = malloc(3);
	if (d == NULL)
		return ENGINE_ERR_NOMEM;
	memset(d, 0xff, 3);
	free((void *)g->ents[index - g->first].e.data);
	g->ents[index - g->first].e.data = d;
	g->ents[index - g->first].e.len = 3;
	return ENGINE_OK;
}

int fake_storage_flip(struct fake_storage *fs, uint64_t group_id, raft_index index, uint32_t at)
{
	struct fgroup *g = find(fs, group_id);

	if (g == NULL || index < g->first || index > last_of(g) ||
	    at >= g->ents[index - g->first].e.len)
		return ENGINE_ERR_INVALID;
	((uint8_t *)g->ents[index - g->first].e.data)[at] ^= 1;
	return ENGINE_OK;
}

uint64_t fake_storage_saves(const struct fake_storage *fs)
{
	return fs->saves;
}

uint64_t fake_storage_commit_only(const struct fake_storage *fs)
{
	return fs->commit_only;
}

raft_index fake_storage_commit(const struct fake_storage *fs, uint64_t group_id)
{
	const struct fgroup *g = find(fs, group_id);

	return g == NULL ? 0 : g->hs.commit;
}

uint64_t fake_storage_reads(const struct fake_storage *fs)
{
	return fs->reads;
}

raft_index fake_storage_first(const struct fake_storage *fs, uint64_t group_id)
{
	const struct fgroup *g = find(fs, group_id);

	return g == NULL ? 0 : g->first;
}

int fake_storage_clone(const struct fake_storage *fs, struct fake_storage **out)
{
	struct fake_storage *c;
	int rc = fake_storage_create(&c);

	for (size_t i = 0; i < fs->n && rc == ENGINE_OK; i++) {
		const struct fgroup *g = fs->groups[i];
		struct fgroup *ng;

		rc = fs_save_bootstrap(c, g->id, &g->bs);
		if (rc != ENGINE_OK)
			break;
		ng = find(c, g->id);
		ng->hs = g->hs;
		ng->first = g->first;
		ng->prev_term = g->prev_term;
		ng->snap = g->snap;
		ng->recovery = g->recovery;
		for (size_t k = 0; k < g->n && rc == ENGINE_OK; k++)
			rc = append(ng, &g->ents[k].e, 1);
	}
	if (rc != ENGINE_OK) {
		fake_storage_destroy(c);
		return rc;
	}
	*out = c;
	return ENGINE_OK;
}
