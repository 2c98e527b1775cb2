/*
 * engine_logdb.c - the engine's storage ops over the LogDB.
 *
 * The one place where the two models differ is the start of the log.  The
 * engine needs the term of entry first_index - 1; the LogDB removes entries
 * up to an index without keeping a term.  So compact(i) removes the entries
 * below i and keeps entry i, whose term a load reads back: the log then
 * starts at i + 1, entries below the latest snapshot included (a follower
 * that lags by less than compaction_overhead entries still catches up from
 * the log after a restart).  A log that starts right after the snapshot (an
 * installed one replaced it) takes the snapshot's term; without a snapshot
 * the log starts at 1.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine_logdb.h"

/* Terms of a window of one group's log, read together (a run at a time). */
#define TERM_WINDOW 256
struct term_cache {
	uint64_t group_id; /* 0 = empty */
	raft_index lo;
	uint32_t n;
	raft_term terms[TERM_WINDOW];
};

/*
 * The read buffer is kept between reads up to this size: Raft's reads and a
 * log digest's steps (4 MB) reuse it.  A read of larger entries (up to
 * max_entry_size each: the first entry of a read is read whatever the byte
 * limit) frees it afterwards, or the engine worker would keep up to twice
 * the largest entry it ever read for as long as it runs.
 */
#define READ_BUF_KEEP (8u << 20)

struct engine_logdb {
	struct logdb *db;
	struct logdb_worker *w;
	raft_id node;
	struct term_cache tc;
	struct logdb_entries ents; /* reused read buffer */
	struct logdb_update *ups;  /* reused save arrays */
	struct logdb_snapshot *snaps;
	size_t cap;
	struct logdb_bootstrap lbs; /* scratch (large) */
	char msg[512];              /* the LogDB's last error (el_errmsg) */
	bool damaged;               /* a read found damage (engine_logdb_damaged) */
	/* el_sync runs on another thread (engine_uv's deferred sync) holding sync_lock;
	 * once stopped (engine_logdb_stop) it no longer touches the LogDB. */
	pthread_mutex_t sync_lock;
	bool stopped;
};

static int from_logdb(int rc)
{
	switch (rc) {
	case LOGDB_OK:
		return ENGINE_OK;
	case LOGDB_ERR_NOMEM:
		return ENGINE_ERR_NOMEM;
	case LOGDB_ERR_NOT_FOUND:
		return ENGINE_ERR_NOT_FOUND;
	case LOGDB_ERR_INVALID:
		return ENGINE_ERR_INVALID;
	}
	return ENGINE_ERR_STORAGE;
}

/* A LogDB rc as the engine's; remembers damage. */
static int el_rc(struct engine_logdb *el, int rc)
{
	if (rc == LOGDB_ERR_CORRUPT)
		el->damaged = true;
	return from_logdb(rc);
}

/* A log that contradicts itself. */
static int el_damage(struct engine_logdb *el)
{
	el->damaged = true;
	return ENGINE_ERR_STORAGE;
}

bool engine_logdb_damaged(const struct engine_logdb *el)
{
	return el->damaged;
}

int engine_logdb_create(struct logdb *db, raft_id node_id, struct engine_logdb **out)
{
	struct engine_logdb *el;
	int rc;

	*out = NULL;
	if (db == NULL || node_id == 0)
		return ENGINE_ERR_INVALID;
	el = calloc(1, sizeof(*el));
	if (el == NULL)
		return ENGINE_ERR_NOMEM;
	el->db = db;
	el->node = node_id;
	rc = logdb_worker_create(db, &el->w);
	if (rc != LOGDB_OK) {
		free(el);
		return from_logdb(rc);
	}
	pthread_mutex_init(&el->sync_lock, NULL);
	*out = el;
	return ENGINE_OK;
}

/* What el holds of the LogDB's memory. */
static void release_logdb(struct engine_logdb *el)
{
	logdb_entries_free(el->db, &el->ents);
	logdb_worker_destroy(el->w);
	el->w = NULL;
}

void engine_logdb_stop(struct engine_logdb *el)
{
	pthread_mutex_lock(&el->sync_lock); /* a sync running now ends first */
	el->stopped = true;
	pthread_mutex_unlock(&el->sync_lock);
	release_logdb(el);
}

void engine_logdb_destroy(struct engine_logdb *el)
{
	if (el == NULL)
		return;
	if (!el->stopped)
		release_logdb(el);
	pthread_mutex_destroy(&el->sync_lock);
	free(el->ups);
	free(el->snaps);
	free(el);
}

static int el_save_bootstrap(void *ctx, uint64_t group_id, const struct engine_bootstrap *bs)
{
	struct engine_logdb *el = ctx;
	struct logdb_bootstrap *l = &el->lbs;

	memset(l, 0, sizeof(*l));
	l->join = bs->join;
	l->n_addresses = bs->n_members;
	for (uint32_t i = 0; i < bs->n_members && i < RAFT_MAX_MEMBERS; i++) {
		l->addresses[i].node_id = bs->members[i].node_id;
		memcpy(l->addresses[i].addr, bs->members[i].addr, sizeof(l->addresses[i].addr));
		l->addresses[i].addr[sizeof(l->addresses[i].addr) - 1] = '\0';
		l->addresses[i].learned = bs->members[i].learned;
	}
	l->membership = bs->membership;
	l->addr_index = bs->addr_index;
	return el_rc(el, logdb_save_bootstrap(el->db, group_id, el->node, l));
}

static int save(struct engine_logdb *el, const struct engine_update *u, size_t n, bool sync)
{
	if (n > el->cap) {
		size_t nc = el->cap ? el->cap : 16;
		void *a, *b;

		while (nc < n)
			nc *= 2;
		a = realloc(el->ups, nc * sizeof(*el->ups));
		if (a == NULL)
			return ENGINE_ERR_NOMEM;
		el->ups = a;
		b = realloc(el->snaps, nc * sizeof(*el->snaps));
		if (b == NULL)
			return ENGINE_ERR_NOMEM;
		el->snaps = b;
		el->cap = nc;
	}
	for (size_t i = 0; i < n; i++) {
		struct logdb_update *l = &el->ups[i];

		if (u[i].group_id == el->tc.group_id && (u[i].n_entries > 0 || u[i].snapshot))
			el->tc.group_id = 0; /* entries may be replaced */
		l->group_id = u[i].group_id;
		l->node_id = el->node;
		l->hard_state_changed = u[i].hard_state_changed;
		l->hard_state = u[i].hard_state;
		l->n_entries = u[i].n_entries;
		l->entries = u[i].entries;
		l->snapshot = NULL;
		if (u[i].snapshot != NULL) {
			memset(&el->snaps[i], 0, sizeof(el->snaps[i]));
			el->snaps[i].meta = *u[i].snapshot;
			l->snapshot = &el->snaps[i];
		}
	}
	return el_rc(el, logdb_save(el->w, el->ups, n, sync));
}

static int el_save(void *ctx, const struct engine_update *u, size_t n)
{
	return save(ctx, u, n, true);
}

static int el_write(void *ctx, const struct engine_update *u, size_t n)
{
	return save(ctx, u, n, false);
}

/* (From the engine driver's sync thread: the LogDB takes its shard locks.) */
static int el_sync(void *ctx)
{
	struct engine_logdb *el = ctx;
	int rc = ENGINE_ERR_STOPPED;

	pthread_mutex_lock(&el->sync_lock);
	if (!el->stopped)
		rc = from_logdb(logdb_sync(el->db));
	pthread_mutex_unlock(&el->sync_lock);
	return rc;
}

static int el_term(void *ctx, uint64_t group_id, raft_index i, raft_term *t);

static int el_load(void *ctx, uint64_t group_id, struct engine_stored_state *out)
{
	struct engine_logdb *el = ctx;
	struct logdb_bootstrap *l = &el->lbs;
	struct logdb_raft_state rs;
	struct logdb_snapshot snap;
	raft_index first, last;
	int rc;

	rc = logdb_get_bootstrap(el->db, group_id, el->node, l);
	if (rc != LOGDB_OK)
		return el_rc(el, rc);
	memset(out, 0, sizeof(*out));
	out->bootstrap.join = l->join;
	out->bootstrap.n_members =
	        l->n_addresses < RAFT_MAX_MEMBERS ? l->n_addresses : RAFT_MAX_MEMBERS;
	for (uint32_t i = 0; i < out->bootstrap.n_members; i++) {
		out->bootstrap.members[i].node_id = l->addresses[i].node_id;
		memcpy(out->bootstrap.members[i].addr, l->addresses[i].addr,
		       sizeof(l->addresses[i].addr) < ENGINE_ADDR_MAX ? sizeof(l->addresses[i].addr)
		                                                      : ENGINE_ADDR_MAX);
		out->bootstrap.members[i].addr[ENGINE_ADDR_MAX - 1] = '\0';
		out->bootstrap.members[i].learned = l->addresses[i].learned;
	}
	out->bootstrap.membership = l->membership;
	out->bootstrap.addr_index = l->addr_index;

	rc = logdb_read_state(el->db, group_id, el->node, &rs);
	if (rc == LOGDB_ERR_NOT_FOUND) {
		memset(&rs, 0, sizeof(rs));
		rs.first_index = 1;
	} else if (rc != LOGDB_OK) {
		return el_rc(el, rc);
	}
	rc = logdb_get_snapshot(el->db, group_id, el->node, &snap);
	if (rc == LOGDB_ERR_NOT_FOUND)
		memset(&snap, 0, sizeof(snap));
	else if (rc != LOGDB_OK)
		return el_rc(el, rc);

	first = rs.first_index;
	last = rs.first_index + rs.entry_count - 1;
	out->hard_state = rs.hard_state;
	out->snapshot = snap.meta;
	out->last_index = last > snap.meta.index ? last : snap.meta.index;
	rc = logdb_get_recovery(el->db, group_id, el->node, &out->recovery);
	if (rc != LOGDB_OK)
		return el_rc(el, rc);
	if (first == 1) {
		out->first_index = 1; /* nothing compacted */
	} else if (snap.meta.index > 0 && first == snap.meta.index + 1) {
		out->first_index = first; /* an installed snapshot replaced the log */
		out->prev_term = snap.meta.term;
	} else if (snap.meta.index > 0 && first <= snap.meta.index && first <= last) {
		/* compact(first) kept entry first for its term */
		out->first_index = first + 1;
		rc = el_term(el, group_id, first, &out->prev_term);
		if (rc != ENGINE_OK)
			return rc;
	} else {
		return el_damage(el); /* compacted past the snapshot, or without one: damage */
	}
	return ENGINE_OK;
}

static int el_list(void *ctx, uint64_t *ids, size_t cap, size_t *n)
{
	struct engine_logdb *el = ctx;
	struct logdb_node_info *ni = NULL;
	size_t k = 0, total = 0;
	int rc;

	rc = logdb_list_nodes(el->db, &ni, &total);
	if (rc != LOGDB_OK)
		return el_rc(el, rc);
	for (size_t i = 0; i < total; i++) {
		if (ni[i].node_id != el->node)
			continue;
		if (k < cap)
			ids[k] = ni[i].group_id;
		k++;
	}
	logdb_free(el->db, ni);
	*n = k;
	return ENGINE_OK;
}

size_t engine_logdb_read_buffer(const struct engine_logdb *el)
{
	return el->ents.buf_cap;
}

/* After a read: entries copied out, the buffer given back if it grew too big. */
static void read_done(struct engine_logdb *el)
{
	if (el->ents.buf_cap > READ_BUF_KEEP)
		logdb_entries_free(el->db, &el->ents);
}

static int read_entries(struct engine_logdb *el, uint64_t group_id, raft_index lo, raft_index hi,
                        uint64_t max_bytes, struct raft_entry *out, uint32_t *n,
                        struct engine_arena *arena)
{
	int rc;

	*n = 0;
	rc = logdb_iterate_entries(el->db, group_id, el->node, lo, hi, max_bytes, &el->ents);
	if (rc != LOGDB_OK)
		return el_rc(el, rc);
	if (el->ents.n == 0 || el->ents.n > hi - lo)
		return el_damage(el);
	for (uint32_t i = 0; i < el->ents.n; i++) {
		out[i] = el->ents.ents[i];
		if (out[i].len > 0) {
			uint8_t *d = engine_arena_alloc(arena, out[i].len);

			if (d == NULL)
				return ENGINE_ERR_NOMEM;
			memcpy(d, el->ents.ents[i].data, out[i].len);
			out[i].data = d;
		}
	}
	*n = el->ents.n;
	return ENGINE_OK;
}

static int el_entries(void *ctx, uint64_t group_id, raft_index lo, raft_index hi,
                      uint64_t max_bytes, struct raft_entry *out, uint32_t *n,
                      struct engine_arena *arena)
{
	struct engine_logdb *el = ctx;
	int rc = read_entries(el, group_id, lo, hi, max_bytes, out, n, arena);

	read_done(el);
	return rc;
}

/*
 * Terms come from a window around i, most of it below: Raft walks back one
 * index at a time when it looks for where two logs diverge, and every entry
 * read from the LogDB costs the decoding of its whole run.
 */
static int read_term(struct engine_logdb *el, uint64_t group_id, raft_index i, raft_term *t)
{
	struct term_cache *tc = &el->tc;
	struct logdb_raft_state rs;
	raft_index lo, hi, last;
	int rc;

	if (tc->group_id == group_id && i >= tc->lo && i - tc->lo < tc->n) {
		*t = tc->terms[i - tc->lo];
		return ENGINE_OK;
	}
	rc = logdb_read_state(el->db, group_id, el->node, &rs);
	if (rc != LOGDB_OK)
		return el_rc(el, rc);
	last = rs.first_index + rs.entry_count - 1;
	if (i < rs.first_index || i > last)
		return el_damage(el);
	lo = i >= rs.first_index + TERM_WINDOW * 3 / 4 ? i - TERM_WINDOW * 3 / 4 : rs.first_index;
	hi = lo + TERM_WINDOW <= last + 1 ? lo + TERM_WINDOW : last + 1;
	rc = logdb_iterate_entries(el->db, group_id, el->node, lo, hi, 256 << 10, &el->ents);
	if (rc == LOGDB_OK && el->ents.n > 0 && i - lo >= el->ents.n) {
		lo = i; /* large entries: the byte limit ended the window before i */
		rc = logdb_iterate_entries(el->db, group_id, el->node, i, i + 1, 0, &el->ents);
	}
	if (rc != LOGDB_OK)
		return el_rc(el, rc);
	if (el->ents.n == 0 || el->ents.n > TERM_WINDOW)
		return el_damage(el);
	tc->group_id = group_id;
	tc->lo = lo;
	tc->n = el->ents.n;
	for (uint32_t k = 0; k < el->ents.n; k++)
		tc->terms[k] = el->ents.ents[k].term;
	*t = tc->terms[i - lo];
	return ENGINE_OK;
}

static int el_term(void *ctx, uint64_t group_id, raft_index i, raft_term *t)
{
	struct engine_logdb *el = ctx;
	int rc = read_term(el, group_id, i, t);

	read_done(el);
	return rc;
}

static int el_save_snapshot(void *ctx, uint64_t group_id, const struct raft_snapshot_meta *m)
{
	struct engine_logdb *el = ctx;
	struct logdb_snapshot snap;

	memset(&snap, 0, sizeof(snap));
	snap.meta = *m;
	/* Restarts go by the newest record only. */
	return el_rc(el, logdb_replace_snapshot(el->db, group_id, el->node, &snap));
}

static int el_save_recovery(void *ctx, uint64_t group_id, raft_index index)
{
	struct engine_logdb *el = ctx;

	return el_rc(el, logdb_save_recovery(el->db, group_id, el->node, index));
}

static int el_compact(void *ctx, uint64_t group_id, raft_index index)
{
	struct engine_logdb *el = ctx;
	int rc;

	if (group_id == el->tc.group_id)
		el->tc.group_id = 0;
	if (index <= 1)
		return ENGINE_OK; /* entry index stays for its term (see the top) */
	rc = logdb_remove_entries_to(el->db, group_id, el->node, index - 1);
	if (rc == LOGDB_OK)
		rc = logdb_compact_entries_to(el->db, group_id, el->node, index - 1);
	return el_rc(el, rc);
}

static int el_remove(void *ctx, uint64_t group_id)
{
	struct engine_logdb *el = ctx;

	if (group_id == el->tc.group_id)
		el->tc.group_id = 0;
	return el_rc(el, logdb_remove_node_data(el->db, group_id, el->node));
}

static bool el_busy(void *ctx, uint64_t group_id)
{
	return logdb_busy(((struct engine_logdb *)ctx)->db, group_id);
}

static const char *el_errmsg(void *ctx)
{
	struct engine_logdb *el = ctx;

	return logdb_errmsg(el->db, el->msg, sizeof(el->msg));
}

void engine_logdb_ops(struct engine_logdb *el, struct engine_storage_ops *ops)
{
	memset(ops, 0, sizeof(*ops));
	ops->ctx = el;
	ops->save_bootstrap = el_save_bootstrap;
	ops->save = el_save;
	ops->write = el_write;
	ops->sync = el_sync;
	ops->load = el_load;
	ops->list = el_list;
	ops->entries = el_entries;
	ops->term = el_term;
	ops->save_snapshot = el_save_snapshot;
	ops->save_recovery = el_save_recovery;
	ops->compact = el_compact;
	ops->remove = el_remove;
	ops->busy = el_busy;
	ops->errmsg = el_errmsg;
}
