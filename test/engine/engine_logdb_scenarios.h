/*
 * engine_logdb_scenarios.h - the engine scenarios (engine_scenarios.h), with every
 * node persisting into a real LogDB (RocksDB) through engine_logdb.c.  A crash
 * closes the node's LogDB; a restart opens it again and reloads from disk.
 */
#define _GNU_SOURCE /* nftw */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <pthread.h>

#include <cmocka.h>

#include "engine/engine_int.h"
#include "engine/engine_logdb.h"
#include "logdb/logdb.h"
#include "logdb/logdb_codec.h"
#include "cluster.h"
#include <rocksdb/c.h>

struct node_db {
	struct logdb *db;
	struct engine_logdb *el;
};

static struct node_db dbs[CL_MAX_NODES + 1];

static int open_db(struct cluster *c, raft_id id, struct engine_storage_ops *ops)
{
	struct logdb_config cfg = {0};
	char dir[512], err[256];
	int rc;

	snprintf(dir, sizeof(dir), "%s/logdb-%llu", c->dir, (unsigned long long)id);
	cfg.dir = dir;
	cfg.shards = 2;
	cfg.no_sync = true; /* a crash here is a process exit: the OS keeps written data */
	cfg.memtable_budget = 32 << 20;
	rc = logdb_open(&cfg, &dbs[id].db, err, sizeof(err));
	if (rc != LOGDB_OK) {
		fprintf(stderr, "logdb_open(%s): %s\n", dir, err);
		return ENGINE_ERR_STORAGE;
	}
	rc = engine_logdb_create(dbs[id].db, id, &dbs[id].el);
	if (rc != ENGINE_OK) {
		logdb_close(dbs[id].db);
		return rc;
	}
	engine_logdb_ops(dbs[id].el, ops);
	return ENGINE_OK;
}

/* The engine keeps only the newest snapshot record of each member. */
static void check_snapshot_records(raft_id id)
{
	struct logdb_node_info *nodes;
	size_t n;

	if (logdb_list_nodes(dbs[id].db, &nodes, &n) != LOGDB_OK)
		return; /* the scenario itself reports storage trouble */
	for (size_t i = 0; i < n; i++) {
		struct logdb_snapshot *snaps;
		size_t k;

		if (logdb_list_snapshots(dbs[id].db, nodes[i].group_id, nodes[i].node_id, &snaps,
		                         &k) != LOGDB_OK)
			continue;
		logdb_free(dbs[id].db, snaps);
		if (k > 1)
			fail_msg("node %llu group %llu: %zu snapshot records kept, expected at "
			         "most 1",
			         (unsigned long long)id, (unsigned long long)nodes[i].group_id, k);
	}
	logdb_free(dbs[id].db, nodes);
}

static void close_db(struct cluster *c, raft_id id)
{
	(void)c;
	check_snapshot_records(id);
	engine_logdb_destroy(dbs[id].el);
	logdb_close(dbs[id].db);
	dbs[id].el = NULL;
	dbs[id].db = NULL;
}

static const struct cluster_storage logdb_storage = {open_db, close_db};

static int rm_any(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static raft_term term_at(raft_index i)
{
	return 1 + i / 97;
}

static void save_range(const struct engine_storage_ops *ops, raft_index lo, raft_index hi,
                       raft_term (*term)(raft_index))
{
	static struct raft_entry ents[2048];
	static uint8_t data[2048][40];
	struct engine_update u;

	assert_true(hi - lo + 1 <= 2048);
	for (raft_index i = lo; i <= hi; i++) {
		struct raft_entry *e = &ents[i - lo];

		memset(data[i - lo], (int)i, sizeof(data[i - lo]));
		e->index = i;
		e->term = term(i);
		e->type = RAFT_ENTRY_NORMAL;
		e->len = (uint32_t)(i % 40);
		e->data = data[i - lo];
	}
	memset(&u, 0, sizeof(u));
	u.group_id = 5;
	u.n_entries = (uint32_t)(hi - lo + 1);
	u.entries = ents;
	assert_int_equal(ops->save(ops->ctx, &u, 1), ENGINE_OK);
}

static void expect_terms(const struct engine_storage_ops *ops, raft_index lo, raft_index hi,
                         raft_term (*term)(raft_index))
{
	/* downwards (as a backtracking leader walks), then upwards */
	for (raft_index i = hi; i >= lo; i--) {
		raft_term t = 0;

		assert_int_equal(ops->term(ops->ctx, 5, i, &t), ENGINE_OK);
		if (t != term(i))
			fail_msg("term of %llu: %llu, expected %llu", (unsigned long long)i,
			         (unsigned long long)t, (unsigned long long)term(i));
	}
	for (raft_index i = lo; i <= hi; i++) {
		raft_term t = 0;

		assert_int_equal(ops->term(ops->ctx, 5, i, &t), ENGINE_OK);
		assert_int_equal(t, term(i));
	}
}

static raft_term term_after_conflict(raft_index i)
{
	return i >= 700 ? 40 : term_at(i);
}

/*
 * Terms read through the adapter's window stay right across saves, conflicts
 * and compaction; a reload starts the log where compaction left it.
 */
static void test_terms(void **state)
{
	struct cluster c;
	struct engine_storage_ops ops;
	struct engine_bootstrap bs;
	struct raft_snapshot_meta snap;
	struct engine_stored_state *ss;
	raft_term t;

	(void)state;
	memset(&c, 0, sizeof(c));
	snprintf(c.dir, sizeof(c.dir), "%s/dr-engine-terms-XXXXXX", cl_test_root());
	assert_non_null(mkdtemp(c.dir));
	assert_int_equal(open_db(&c, 1, &ops), ENGINE_OK);
	save_range(&ops, 1, 1500, term_at);
	expect_terms(&ops, 1, 1500, term_at);
	/* a conflict from 700 replaces the tail with term 40 (and a shorter log),
	 * while the window around 750 is in the adapter's memory */
	assert_int_equal(ops.term(ops.ctx, 5, 750, &t), ENGINE_OK);
	assert_int_equal(t, term_at(750));
	save_range(&ops, 700, 900, term_after_conflict);
	assert_int_equal(ops.term(ops.ctx, 5, 750, &t), ENGINE_OK);
	assert_int_equal(t, 40);
	expect_terms(&ops, 1, 900, term_after_conflict);
	assert_int_equal(ops.term(ops.ctx, 5, 901, &t), ENGINE_ERR_STORAGE);
	/* compaction below a snapshot: what remains still answers, term(650) too */
	memset(&bs, 0, sizeof(bs));
	bs.n_members = 1;
	bs.members[0].node_id = 1;
	assert_int_equal(ops.save_bootstrap(ops.ctx, 5, &bs), ENGINE_OK);
	memset(&snap, 0, sizeof(snap));
	snap.index = 800;
	snap.term = 40;
	snap.membership.n_voters = 1;
	snap.membership.voters[0] = 1;
	assert_int_equal(ops.save_snapshot(ops.ctx, 5, &snap), ENGINE_OK);
	assert_int_equal(ops.compact(ops.ctx, 5, 650), ENGINE_OK);
	expect_terms(&ops, 650, 900, term_after_conflict);
	/* a restart sees the log from 651 on, below the snapshot too */
	close_db(&c, 1);
	assert_int_equal(open_db(&c, 1, &ops), ENGINE_OK);
	assert_non_null(ss = malloc(sizeof(*ss)));
	assert_int_equal(ops.load(ops.ctx, 5, ss), ENGINE_OK);
	assert_int_equal(ss->first_index, 651);
	assert_int_equal(ss->prev_term, term_after_conflict(650));
	assert_int_equal(ss->last_index, 900);
	assert_int_equal(ss->snapshot.index, 800);
	free(ss);
	close_db(&c, 1);
	nftw(c.dir, rm_any, 8, FTW_DEPTH | FTW_PHYS);
}

static void read_failure(void (*damage)(struct cluster *c, raft_id id), const char *also);

/* Flip one byte in the middle of the first stored entry run of group 1 on (stopped) node id. */
static void flip_run(struct cluster *c, raft_id id)
{
	uint8_t lo[LOGDB_INDEX_KEY_LEN], hi[LOGDB_INDEX_KEY_LEN];
	char path[600], *err = NULL;
	size_t klen, vlen;

	snprintf(path, sizeof(path), "%s/logdb-%llu/shard-%llu", c->dir, (unsigned long long)id,
	         (unsigned long long)(c->group_ids[0] % 2));
	logdb_index_key(lo, LOGDB_KIND_ENTRY, c->group_ids[0], id, 0);
	logdb_index_key(hi, LOGDB_KIND_ENTRY, c->group_ids[0], id, UINT64_MAX);
	rocksdb_options_t *o = rocksdb_options_create();
	rocksdb_t *r = rocksdb_open(o, path, &err);
	assert_null(err);
	rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
	rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
	rocksdb_iterator_t *it = rocksdb_create_iterator(r, ro);
	rocksdb_iter_seek(it, (const char *)lo, sizeof(lo));
	assert_true(rocksdb_iter_valid(it));
	const char *k = rocksdb_iter_key(it, &klen);
	const char *v = rocksdb_iter_value(it, &vlen);
	assert_true(klen == sizeof(lo) && memcmp(k, hi, sizeof(hi)) < 0);
	char *val = malloc(vlen);
	memcpy(val, v, vlen);
	val[vlen / 2] ^= 0x20;
	rocksdb_put(r, wo, k, klen, val, vlen, &err);
	assert_null(err);
	free(val);
	rocksdb_iter_destroy(it);
	rocksdb_readoptions_destroy(ro);
	rocksdb_writeoptions_destroy(wo);
	rocksdb_close(r);
	rocksdb_options_destroy(o);
}

/* A flipped byte in a committed run of a stopped follower: at restart its engine stops. */
static void test_corrupt_run_restart(void **state)
{
	(void)state;
	read_failure(flip_run, "checksum");
}

#define BIG_ENTRY (10u << 20)

/* Entries [lo, hi) through ops with a byte limit: how many came, each checked. */
static uint32_t read_big(const struct engine_storage_ops *ops, raft_index lo, raft_index hi,
                         uint64_t max_bytes)
{
	struct raft_entry out[8];
	struct engine_arena arena;
	uint32_t n = 0;

	dr_arena_init(&arena.ar, malloc, free, ARENA_BLOCK);
	assert_int_equal(ops->entries(ops->ctx, 5, lo, hi, max_bytes, out, &n, &arena), ENGINE_OK);
	for (uint32_t i = 0; i < n; i++) {
		uint32_t len = out[i].index <= 2 ? BIG_ENTRY : 1024;

		assert_int_equal(out[i].index, lo + i);
		assert_int_equal(out[i].len, len);
		assert_int_equal(out[i].data[0], (uint8_t)out[i].index);
		assert_int_equal(out[i].data[len - 1], (uint8_t)out[i].index);
	}
	dr_arena_free(&arena.ar);
	return n;
}

/*
 * Entries near max_entry_size (a log digest's step reads at least one): a
 * read stops before the entry that would pass its byte limit and takes the
 * first whatever its size; the adapter's read buffer does not keep the
 * memory of a big read (it kept twice the largest entry ever read, for as
 * long as the engine ran), and keeps that of small ones (Raft's reads reuse
 * it).
 */
static void test_big_entries(void **state)
{
	struct cluster c;
	struct engine_storage_ops ops;
	struct engine_update u;
	struct raft_entry ents[4];
	uint8_t *data = malloc(2 * BIG_ENTRY + 2 * 1024);

	(void)state;
	assert_non_null(data);
	memset(&c, 0, sizeof(c));
	snprintf(c.dir, sizeof(c.dir), "%s/dr-engine-big-XXXXXX", cl_test_root());
	assert_non_null(mkdtemp(c.dir));
	assert_int_equal(open_db(&c, 1, &ops), ENGINE_OK);
	for (uint32_t i = 0, off = 0; i < 4; i++) {
		ents[i].index = i + 1;
		ents[i].term = 1;
		ents[i].type = RAFT_ENTRY_NORMAL;
		ents[i].len = i < 2 ? BIG_ENTRY : 1024;
		ents[i].data = data + off;
		memset(data + off, (int)(i + 1), ents[i].len);
		off += ents[i].len;
	}
	memset(&u, 0, sizeof(u));
	u.group_id = 5;
	u.n_entries = 4;
	u.entries = ents;
	assert_int_equal(ops.save(ops.ctx, &u, 1), ENGINE_OK);
	free(data);

	assert_int_equal(read_big(&ops, 1, 5, 4 << 20), 1); /* the first, 10 MB */
	if (engine_logdb_read_buffer(dbs[1].el) > (8u << 20))
		fail_msg("the read buffer keeps %zu bytes after a read of a 10 MB entry, expected "
		         "at most 8 MB",
		         engine_logdb_read_buffer(dbs[1].el));
	assert_int_equal(read_big(&ops, 1, 5, 2 * BIG_ENTRY), 2); /* not the next 1 KB */
	assert_int_equal(read_big(&ops, 2, 5, 4 << 20), 1);
	assert_true(engine_logdb_read_buffer(dbs[1].el) <= (8u << 20));
	assert_int_equal(read_big(&ops, 3, 5, 4 << 20), 2);
	assert_true(engine_logdb_read_buffer(dbs[1].el) > 0); /* kept for the next read */
	close_db(&c, 1);
	nftw(c.dir, rm_any, 8, FTW_DEPTH | FTW_PHYS);
}

/* A thread that syncs through the adapter until a sync fails (engine_uv's deferred sync). */
static void *sync_until_stopped(void *arg)
{
	struct engine_storage_ops *ops = arg;
	int rc;

	while ((rc = ops->sync(ops->ctx)) == ENGINE_OK)
		;
	return (void *)(intptr_t)rc;
}

/*
 * engine_logdb_stop (the engine worker's exit after an error inside the
 * engine, which does not run libuv again): a sync running on another thread
 * ends first, and later syncs fail without touching the LogDB, which the
 * embedder then closes while the adapter stays (under ASan a sync that read
 * the closed LogDB fails the test).
 */
static void test_stop_ends_sync(void **state)
{
	struct cluster c;
	struct engine_storage_ops ops;
	pthread_t th;
	void *ret;

	(void)state;
	memset(&c, 0, sizeof(c));
	snprintf(c.dir, sizeof(c.dir), "%s/dr-engine-stop-XXXXXX", cl_test_root());
	assert_non_null(mkdtemp(c.dir));
	assert_int_equal(open_db(&c, 1, &ops), ENGINE_OK);
	assert_int_equal(ops.sync(ops.ctx), ENGINE_OK);
	assert_int_equal(pthread_create(&th, NULL, sync_until_stopped, &ops), 0);
	engine_logdb_stop(dbs[1].el);
	logdb_close(dbs[1].db);
	assert_int_equal(pthread_join(th, &ret), 0);
	assert_int_equal((int)(intptr_t)ret, ENGINE_ERR_STOPPED);
	assert_int_equal(ops.sync(ops.ctx), ENGINE_ERR_STOPPED);
	engine_logdb_destroy(dbs[1].el); /* (after the close: it frees only its own memory) */
	dbs[1].el = NULL;
	dbs[1].db = NULL;
	nftw(c.dir, rm_any, 8, FTW_DEPTH | FTW_PHYS);
}

#define ENGINE_EXTRA_TESTS                                                                         \
	cmocka_unit_test(test_terms), cmocka_unit_test(test_corrupt_run_restart),                  \
	        cmocka_unit_test(test_big_entries), cmocka_unit_test(test_stop_ends_sync),

/* A live node's storage ops, for reading its log back (expect_same_logs). */
static void logdb_node_ops(struct cluster *c, raft_id id, struct engine_storage_ops *ops)
{
	(void)c;
	engine_logdb_ops(dbs[id].el, ops);
}

#define TEST_ENGINE_STORAGE     (&logdb_storage)
#define TEST_ENGINE_STORAGE_OPS logdb_node_ops
#include "engine_scenarios.h"
