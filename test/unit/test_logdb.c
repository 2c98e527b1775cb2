/*
 * test_logdb.c - unit tests for src/logdb: codec, persistence across restart,
 * conflict overwrite, iteration bounds, removal and compaction, snapshot
 * records, many groups across shards, bootstrap info, import, busy signal,
 * allocation failures and corrupt data written straight into a shard.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <inttypes.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "logdb/logdb.h"
#include "logdb/logdb_codec.h"
#include "logdb/logdb_int.h"
#include "logdb_test_util.h"

struct fx {
	char dir[256];
	struct logdb_config cfg;
	struct logdb *db;
	struct logdb_worker *w;
	struct logdb_entries ents;
	char msg[512];
};

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void fx_open(struct fx *f)
{
	char err[512];
	int rc = logdb_open(&f->cfg, &f->db, err, sizeof(err));
	if (rc)
		fail_msg("logdb_open(%s) = %s: %s", f->dir, logdb_strerror(rc), err);
	assert_int_equal(logdb_worker_create(f->db, &f->w), LOGDB_OK);
}

static void fx_close(struct fx *f)
{
	logdb_entries_free(f->db, &f->ents);
	logdb_worker_destroy(f->w);
	logdb_close(f->db);
	f->w = NULL;
	f->db = NULL;
}

static void fx_reopen(struct fx *f)
{
	fx_close(f);
	fx_open(f);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_logdb.XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	f->cfg.dir = f->dir;
	f->cfg.shards = 4;
	fx_open(f);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	if (f->db)
		fx_close(f);
	nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static const char *msg(struct fx *f)
{
	return logdb_errmsg(f->db, f->msg, sizeof(f->msg));
}

#define CHECK_RC(f, call, want)                                                                    \
	do {                                                                                       \
		int rc_ = (call);                                                                  \
		if (rc_ != (want))                                                                 \
			fail_msg("%s returned %s (%d), expected %s: %s", #call,                    \
			         logdb_strerror(rc_), rc_, logdb_strerror(want), msg(f));          \
	} while (0)

/* Deterministic payload of entry (group, index, term): len bytes. */
static void fill(uint8_t *p, uint32_t len, uint64_t g, uint64_t idx, uint64_t term)
{
	uint64_t x = g * 1000003u + idx * 7919u + term * 104729u + 1;
	for (uint32_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (uint8_t)x;
	}
}

static uint8_t payload[1 << 16];

/* Append entries [lo, hi] with term and len bytes each to (g, 1), optional hard state. */
static int save_entries(struct fx *f, uint64_t g, uint64_t lo, uint64_t hi, uint64_t term,
                        uint32_t len, const struct raft_hard_state *hs, bool sync)
{
	uint32_t n = (uint32_t)(hi - lo + 1);
	struct raft_entry *e = calloc(n, sizeof(*e));
	uint8_t *data = malloc((size_t)n * len + 1);
	for (uint32_t i = 0; i < n; i++) {
		e[i].index = lo + i;
		e[i].term = term;
		e[i].type = RAFT_ENTRY_NORMAL;
		e[i].len = len;
		e[i].data = data + (size_t)i * len;
		fill(data + (size_t)i * len, len, g, lo + i, term);
	}
	struct logdb_update u = {.group_id = g, .node_id = 1, .n_entries = n, .entries = e};
	if (hs) {
		u.hard_state_changed = true;
		u.hard_state = *hs;
	}
	int rc = logdb_save(f->w, &u, 1, sync);
	free(e);
	free(data);
	return rc;
}

static int append(struct fx *f, uint64_t g, uint64_t lo, uint64_t hi, uint64_t term, uint32_t len,
                  const struct raft_hard_state *hs)
{
	return save_entries(f, g, lo, hi, term, len, hs, true);
}

/* Check that [lo, hi] of (g, 1) read back with term and len. */
static void expect_entries(struct fx *f, uint64_t g, uint64_t lo, uint64_t hi, uint64_t term,
                           uint32_t len)
{
	CHECK_RC(f, logdb_iterate_entries(f->db, g, 1, lo, hi + 1, UINT64_MAX, &f->ents), LOGDB_OK);
	if (f->ents.n != hi - lo + 1)
		fail_msg("group %" PRIu64 ": expected %" PRIu64 " entries, got %u", g, hi - lo + 1,
		         f->ents.n);
	for (uint32_t i = 0; i < f->ents.n; i++) {
		const struct raft_entry *e = &f->ents.ents[i];
		fill(payload, len, g, lo + i, term);
		if (e->index != lo + i || e->term != term || e->len != len ||
		    (len && memcmp(e->data, payload, len) != 0))
			fail_msg("group %" PRIu64 " entry %" PRIu64 ": expected term %" PRIu64
			         " len %u, got index %" PRIu64 " term %" PRIu64 " len %u",
			         g, lo + i, term, len, e->index, e->term, e->len);
	}
}

static void test_crc32c(void **state)
{
	(void)state;
	/* the standard CRC32C check value */
	assert_int_equal(dr_crc32c(0, "123456789", 9), 0xE3069283u);
	/* incremental equals one shot, at every split */
	const char *s = "the quick brown fox jumps over the lazy dog, twice over";
	uint32_t whole = dr_crc32c(0, s, strlen(s));
	for (size_t k = 0; k <= strlen(s); k++)
		assert_int_equal(dr_crc32c(dr_crc32c(0, s, k), s + k, strlen(s) - k), whole);
}

static void test_codec_detects_every_flip(void **state)
{
	(void)state;
	uint8_t key[LOGDB_INDEX_KEY_LEN];
	struct logdb_buf b = {0};
	struct raft_entry e[3] = {
	        {.term = 3, .index = 9, .type = 1, .len = 5, .data = (const uint8_t *)"hello"},
	        {.term = 3, .index = 10, .type = 0, .len = 0, .data = NULL},
	        {.term = 4, .index = 11, .type = 1, .len = 2, .data = (const uint8_t *)"ok"}};
	struct logdb_run run;
	struct raft_entry d;
	const char *why;
	logdb_index_key(key, LOGDB_KIND_ENTRY, 7, 1, 9);
	assert_int_equal(logdb_encode_run(&b, key, sizeof(key), e, 3), LOGDB_OK);
	assert_int_equal(logdb_run_open(key, sizeof(key), b.p, b.len, &run, &why), LOGDB_OK);
	assert_int_equal(run.first, 9);
	assert_int_equal(run.n, 3);
	for (int i = 0; i < 3; i++) {
		logdb_run_next(&run, &d);
		assert_int_equal(d.index, e[i].index);
		assert_int_equal(d.term, e[i].term);
		assert_int_equal(d.type, e[i].type);
		assert_int_equal(d.len, e[i].len);
		if (d.len)
			assert_memory_equal(d.data, e[i].data, d.len);
	}
	for (size_t i = 0; i < b.len; i++)
		for (int bit = 0; bit < 8; bit++) {
			b.p[i] ^= (uint8_t)(1 << bit);
			if (logdb_run_open(key, sizeof(key), b.p, b.len, &run, &why) !=
			    LOGDB_ERR_CORRUPT)
				fail_msg("flipping bit %d of byte %zu went unnoticed", bit, i);
			b.p[i] ^= (uint8_t)(1 << bit);
		}
	for (size_t n = 0; n < b.len; n++)
		assert_int_equal(logdb_run_open(key, sizeof(key), b.p, n, &run, &why),
		                 LOGDB_ERR_CORRUPT);
	/* the same value under another key (index 10) is rejected */
	uint8_t other[LOGDB_INDEX_KEY_LEN];
	logdb_index_key(other, LOGDB_KIND_ENTRY, 7, 1, 10);
	assert_int_equal(logdb_run_open(other, sizeof(other), b.p, b.len, &run, &why),
	                 LOGDB_ERR_CORRUPT);
	logdb_buf_free(&b);
}

/*
 * A bootstrap record keeps each address's learned stamp and the book's
 * addr_index (appended to the value); one written before they were kept
 * (without them) still reads, with 0s.
 */
static void test_codec_bootstrap_old_record(void **state)
{
	(void)state;
	uint8_t key[LOGDB_KEY_LEN];
	struct logdb_buf b = {0};
	struct logdb_bootstrap *bs = calloc(1, sizeof(*bs)), *got = calloc(1, sizeof(*got));
	const char *why;
	assert_non_null(bs);
	assert_non_null(got);
	bs->sm_type = 7;
	bs->n_addresses = 2;
	for (uint32_t i = 0; i < 2; i++) {
		bs->addresses[i].node_id = i + 1;
		snprintf(bs->addresses[i].addr, LOGDB_ADDR_MAX, "127.0.0.1:%u", 7400 + i);
		bs->addresses[i].learned = 77 + i;
		bs->membership.voters[i] = i + 1;
	}
	bs->membership.n_voters = 2;
	bs->addr_index = 42;
	logdb_key(key, LOGDB_KIND_BOOTSTRAP, 5, 1);
	assert_int_equal(logdb_encode_bootstrap(&b, key, sizeof(key), bs), LOGDB_OK);
	assert_int_equal(logdb_decode_bootstrap(key, sizeof(key), b.p, b.len, got, &why), LOGDB_OK);
	assert_memory_equal(bs, got, sizeof(*bs));
	/* The record as written before: no addr_index and stamps after the membership. */
	b.len -= 8 + 8 * 2;
	uint32_t crc = dr_crc32c(dr_crc32c(0, key, sizeof(key)), b.p + LOGDB_HDR_LEN,
	                         b.len - LOGDB_HDR_LEN);
	for (int i = 0; i < 4; i++)
		b.p[4 + i] = (uint8_t)(crc >> (8 * i));
	assert_int_equal(logdb_decode_bootstrap(key, sizeof(key), b.p, b.len, got, &why), LOGDB_OK);
	bs->addr_index = 0;
	bs->addresses[0].learned = bs->addresses[1].learned = 0;
	assert_memory_equal(bs, got, sizeof(*bs));
	/* A part of them is a truncated value. */
	b.len += 8;
	crc = dr_crc32c(dr_crc32c(0, key, sizeof(key)), b.p + LOGDB_HDR_LEN, b.len - LOGDB_HDR_LEN);
	for (int i = 0; i < 4; i++)
		b.p[4 + i] = (uint8_t)(crc >> (8 * i));
	assert_int_equal(logdb_decode_bootstrap(key, sizeof(key), b.p, b.len, got, &why),
	                 LOGDB_ERR_CORRUPT);
	logdb_buf_free(&b);
	free(bs);
	free(got);
}

/* Entries stored as runs: split by count and bytes, read across run boundaries. */
static void test_runs(void **state)
{
	struct fx *f = *state;
	/* 1,200 entries in one save: three runs by count */
	CHECK_RC(f, append(f, 4, 1, 1200, 1, 8, NULL), LOGDB_OK);
	/* 40 entries of 16 KiB (640 KiB) in one save: three runs by bytes */
	CHECK_RC(f, append(f, 4, 1201, 1240, 1, 16384, NULL), LOGDB_OK);
	fx_reopen(f);
	expect_entries(f, 4, 1, 1200, 1, 8);
	expect_entries(f, 4, 1201, 1240, 1, 16384);
	expect_entries(f, 4, 500, 530, 1, 8); /* across the first boundary (513) */
	expect_entries(f, 4, 1216, 1218, 1, 16384);
	/* max_bytes cuts inside a run, and at least one entry comes back */
	CHECK_RC(f, logdb_iterate_entries(f->db, 4, 1, 1201, 1241, 40000, &f->ents), LOGDB_OK);
	assert_int_equal(f->ents.n, 2);
	assert_int_equal(f->ents.ents[1].index, 1202);
	CHECK_RC(f, logdb_iterate_entries(f->db, 4, 1, 1210, 1241, 1, &f->ents), LOGDB_OK);
	assert_int_equal(f->ents.n, 1);
	assert_int_equal(f->ents.ents[0].index, 1210);

	/* a byte limit reached inside a run whose tail was written over */
	CHECK_RC(f, append(f, 8, 1, 10, 1, 100, NULL), LOGDB_OK);
	CHECK_RC(f, append(f, 8, 4, 6, 2, 100, NULL), LOGDB_OK);
	CHECK_RC(f, logdb_iterate_entries(f->db, 8, 1, 1, 7, 550, &f->ents), LOGDB_OK);
	assert_int_equal(f->ents.n, 5);
	for (uint32_t i = 0; i < 5; i++) {
		assert_int_equal(f->ents.ents[i].index, i + 1);
		assert_int_equal(f->ents.ents[i].term, i < 3 ? 1 : 2);
	}
	assert_int_equal(f->ents.bytes, 500);
	/*
	 * a large stale entry right where the next run starts must not end the
	 * read early: 1..5 of 100 bytes and a written-over 6 of 4 KiB, then 6..10
	 * of 10 bytes, all fit in 550 bytes
	 */
	static uint8_t big[6][4096];
	struct raft_entry mixed[6];
	for (uint32_t i = 0; i < 6; i++) {
		mixed[i] = (struct raft_entry){
		        .term = 1, .index = i + 1, .len = i < 5 ? 100 : 4096, .data = big[i]};
		fill(big[i], mixed[i].len, 12, i + 1, 1);
	}
	struct logdb_update mu = {.group_id = 12, .node_id = 1, .n_entries = 6, .entries = mixed};
	CHECK_RC(f, logdb_save(f->w, &mu, 1, true), LOGDB_OK);
	CHECK_RC(f, append(f, 12, 6, 10, 2, 10, NULL), LOGDB_OK);
	CHECK_RC(f, logdb_iterate_entries(f->db, 12, 1, 1, 11, 550, &f->ents), LOGDB_OK);
	if (f->ents.n != 10 || f->ents.bytes != 550)
		fail_msg("expected all 10 entries (550 bytes) under a 550-byte limit, got %u "
		         "(%" PRIu64 " bytes)",
		         f->ents.n, f->ents.bytes);
	expect_entries(f, 12, 1, 5, 1, 100);
	expect_entries(f, 12, 6, 10, 2, 10);
	/* removal inside a run keeps the run for the entries after it */
	CHECK_RC(f, logdb_remove_entries_to(f->db, 8, 1, 2), LOGDB_OK);
	CHECK_RC(f, logdb_remove_entries_to(f->db, 8, 1, 5), LOGDB_OK);
	fx_reopen(f);
	CHECK_RC(f, logdb_iterate_entries(f->db, 8, 1, 5, 7, UINT64_MAX, &f->ents),
	         LOGDB_ERR_COMPACTED);
	expect_entries(f, 8, 6, 6, 2, 100);
}

static void test_restart_persistence(void **state)
{
	struct fx *f = *state;
	struct raft_hard_state hs = {.term = 5, .vote = 2, .commit = 8};
	struct logdb_raft_state rs;
	CHECK_RC(f, logdb_read_state(f->db, 1, 1, &rs), LOGDB_ERR_NOT_FOUND);
	CHECK_RC(f, append(f, 1, 1, 10, 5, 100, &hs), LOGDB_OK);
	fx_reopen(f);
	CHECK_RC(f, logdb_read_state(f->db, 1, 1, &rs), LOGDB_OK);
	assert_int_equal(rs.hard_state.term, 5);
	assert_int_equal(rs.hard_state.vote, 2);
	assert_int_equal(rs.hard_state.commit, 8);
	assert_int_equal(rs.first_index, 1);
	assert_int_equal(rs.entry_count, 10);
	expect_entries(f, 1, 1, 10, 5, 100);
	/* appending after a restart continues the log */
	CHECK_RC(f, append(f, 1, 11, 12, 6, 0, NULL), LOGDB_OK);
	fx_reopen(f);
	CHECK_RC(f, logdb_read_state(f->db, 1, 1, &rs), LOGDB_OK);
	assert_int_equal(rs.entry_count, 12);
	assert_int_equal(rs.hard_state.term, 5);
	expect_entries(f, 1, 11, 12, 6, 0);
}

static void test_shard_count_recorded(void **state)
{
	struct fx *f = *state;
	struct logdb *db2;
	char err[512];
	fx_close(f);
	f->cfg.shards = 8;
	assert_int_equal(logdb_open(&f->cfg, &db2, err, sizeof(err)), LOGDB_ERR_SHARDS);
	if (strstr(err, "4 shards") == NULL || strstr(err, "8") == NULL)
		fail_msg("expected the message to name both shard counts, got: %s", err);
	f->cfg.shards = 4;
	fx_open(f);
	assert_int_equal(logdb_shards(f->db), 4);
}

static void test_overwrite_on_conflict(void **state)
{
	struct fx *f = *state;
	struct logdb_raft_state rs;
	CHECK_RC(f, append(f, 3, 1, 10, 1, 20, NULL), LOGDB_OK);
	/* a new leader's entries from 6 replace 6..10 */
	CHECK_RC(f, append(f, 3, 6, 7, 2, 30, NULL), LOGDB_OK);
	CHECK_RC(f, logdb_read_state(f->db, 3, 1, &rs), LOGDB_OK);
	assert_int_equal(rs.entry_count, 7);
	expect_entries(f, 3, 1, 5, 1, 20);
	expect_entries(f, 3, 6, 7, 2, 30);
	CHECK_RC(f, logdb_iterate_entries(f->db, 3, 1, 6, 9, UINT64_MAX, &f->ents),
	         LOGDB_ERR_UNAVAILABLE);
	fx_reopen(f);
	expect_entries(f, 3, 6, 7, 2, 30);
	/* the old tail is gone on disk, not only in the cache: extend and re-read */
	CHECK_RC(f, append(f, 3, 8, 12, 3, 10, NULL), LOGDB_OK);
	expect_entries(f, 3, 8, 12, 3, 10);
	/* a longer replacement from the middle */
	CHECK_RC(f, append(f, 3, 2, 20, 4, 5, NULL), LOGDB_OK);
	expect_entries(f, 3, 2, 20, 4, 5);
	expect_entries(f, 3, 1, 1, 1, 20);
	/* writing past the end would leave a gap */
	CHECK_RC(f, append(f, 3, 22, 23, 4, 5, NULL), LOGDB_ERR_INVALID);
}

static void test_iteration_bounds(void **state)
{
	struct fx *f = *state;
	CHECK_RC(f, append(f, 2, 1, 20, 1, 100, NULL), LOGDB_OK);
	/* max bytes: 250 allows two 100-byte entries */
	CHECK_RC(f, logdb_iterate_entries(f->db, 2, 1, 1, 21, 250, &f->ents), LOGDB_OK);
	assert_int_equal(f->ents.n, 2);
	assert_int_equal(f->ents.bytes, 200);
	/* at least one entry even when it alone exceeds the limit */
	CHECK_RC(f, logdb_iterate_entries(f->db, 2, 1, 5, 21, 1, &f->ents), LOGDB_OK);
	assert_int_equal(f->ents.n, 1);
	assert_int_equal(f->ents.ents[0].index, 5);
	/* exactly at the limit */
	CHECK_RC(f, logdb_iterate_entries(f->db, 2, 1, 1, 21, 300, &f->ents), LOGDB_OK);
	assert_int_equal(f->ents.n, 3);
	/* high is exclusive */
	CHECK_RC(f, logdb_iterate_entries(f->db, 2, 1, 4, 9, UINT64_MAX, &f->ents), LOGDB_OK);
	assert_int_equal(f->ents.n, 5);
	assert_int_equal(f->ents.ents[4].index, 8);
	/* empty range */
	CHECK_RC(f, logdb_iterate_entries(f->db, 2, 1, 7, 7, UINT64_MAX, &f->ents), LOGDB_OK);
	assert_int_equal(f->ents.n, 0);
	CHECK_RC(f, logdb_iterate_entries(f->db, 2, 1, 20, 22, UINT64_MAX, &f->ents),
	         LOGDB_ERR_UNAVAILABLE);
	CHECK_RC(f, logdb_iterate_entries(f->db, 2, 1, 9, 3, UINT64_MAX, &f->ents),
	         LOGDB_ERR_INVALID);
	/* neighbouring groups and nodes do not leak into the range */
	CHECK_RC(f, append(f, 6, 1, 30, 1, 1, NULL), LOGDB_OK);
	expect_entries(f, 2, 1, 20, 1, 100);
	CHECK_RC(f, logdb_iterate_entries(f->db, 2, 2, 1, 2, UINT64_MAX, &f->ents),
	         LOGDB_ERR_UNAVAILABLE);
}

static void test_remove_and_compact(void **state)
{
	struct fx *f = *state;
	struct logdb_raft_state rs;
	/* two saves: entries 1..60 are a run of their own, which removal drops whole */
	CHECK_RC(f, append(f, 5, 1, 60, 1, 512, NULL), LOGDB_OK);
	CHECK_RC(f, append(f, 5, 61, 100, 1, 512, NULL), LOGDB_OK);
	CHECK_RC(f, logdb_remove_entries_to(f->db, 5, 1, 60), LOGDB_OK);
	CHECK_RC(f, logdb_iterate_entries(f->db, 5, 1, 60, 70, UINT64_MAX, &f->ents),
	         LOGDB_ERR_COMPACTED);
	if (strstr(msg(f), "group 5") == NULL)
		fail_msg("expected the compacted error to name group 5: %s", msg(f));
	expect_entries(f, 5, 61, 100, 1, 512);
	CHECK_RC(f, logdb_compact_entries_to(f->db, 5, 1, 60), LOGDB_OK);
	logdb_wait_compactions(f->db);
	/* removing less than before is a no-op; past the end is refused */
	CHECK_RC(f, logdb_remove_entries_to(f->db, 5, 1, 10), LOGDB_OK);
	CHECK_RC(f, logdb_remove_entries_to(f->db, 5, 1, 101), LOGDB_ERR_UNAVAILABLE);
	fx_reopen(f);
	CHECK_RC(f, logdb_read_state(f->db, 5, 1, &rs), LOGDB_OK);
	assert_int_equal(rs.first_index, 61);
	assert_int_equal(rs.entry_count, 40);
	CHECK_RC(f, logdb_iterate_entries(f->db, 5, 1, 1, 5, UINT64_MAX, &f->ents),
	         LOGDB_ERR_COMPACTED);
	expect_entries(f, 5, 61, 100, 1, 512);
	/* the removed entries are physically gone after compaction */
	uint8_t lo[LOGDB_INDEX_KEY_LEN], hi[LOGDB_INDEX_KEY_LEN];
	logdb_index_key(lo, LOGDB_KIND_ENTRY, 5, 1, 0);
	logdb_index_key(hi, LOGDB_KIND_ENTRY, 5, 1, 61);
	CHECK_RC(f, logdb_flush(f->db), LOGDB_OK);
	CHECK_RC(f, logdb_compact_entries_to(f->db, 5, 1, 60), LOGDB_OK);
	logdb_wait_compactions(f->db);
	const char *los[1] = {(const char *)lo}, *his[1] = {(const char *)hi};
	size_t lol[1] = {sizeof(lo)}, hil[1] = {sizeof(hi)};
	uint64_t size = 1;
	char *err = NULL;
	rocksdb_approximate_sizes(f->db->shards[logdb_shard_of(f->db, 5)].db, 1, los, lol, his, hil,
	                          &size, &err);
	assert_null(err);
	if (size != 0)
		fail_msg("expected no bytes left below index 61 after compaction, found %" PRIu64,
		         size);
	/* remove everything, then keep appending */
	CHECK_RC(f, logdb_remove_entries_to(f->db, 5, 1, 100), LOGDB_OK);
	CHECK_RC(f, logdb_read_state(f->db, 5, 1, &rs), LOGDB_OK);
	assert_int_equal(rs.first_index, 101);
	assert_int_equal(rs.entry_count, 0);
	CHECK_RC(f, append(f, 5, 50, 60, 2, 8, NULL), LOGDB_ERR_COMPACTED);
	CHECK_RC(f, append(f, 5, 101, 102, 2, 8, NULL), LOGDB_OK);
	expect_entries(f, 5, 101, 102, 2, 8);
}

static void make_snap(struct logdb_snapshot *s, uint64_t index, uint64_t term)
{
	memset(s, 0, sizeof(*s));
	s->meta.index = index;
	s->meta.term = term;
	s->meta.membership.config_index = index - 1;
	s->meta.membership.n_voters = 3;
	s->meta.membership.voters[0] = 1;
	s->meta.membership.voters[1] = 2;
	s->meta.membership.voters[2] = 3;
	s->meta.membership.n_nonvoters = 1;
	s->meta.membership.nonvoters[0] = 9;
	s->meta.membership.n_removed = 2;
	s->meta.membership.removed[0] = 4;
	s->meta.membership.removed[1] = 5;
	snprintf(s->file, sizeof(s->file), "/data/snap-%" PRIu64 ".bin", index);
	s->size = index * 1000;
	s->checksum = 0xabcdef00u + index;
}

static void expect_snap(const struct logdb_snapshot *got, uint64_t index, uint64_t term)
{
	struct logdb_snapshot want;
	make_snap(&want, index, term);
	if (got->meta.index != index || got->meta.term != term || strcmp(got->file, want.file) ||
	    got->size != want.size || got->checksum != want.checksum ||
	    memcmp(&got->meta.membership, &want.meta.membership, sizeof(want.meta.membership)))
		fail_msg("snapshot %" PRIu64 ": expected term %" PRIu64
		         " file %s, got index %" PRIu64 " term %" PRIu64 " file %s",
		         index, term, want.file, got->meta.index, got->meta.term, got->file);
}

static void test_snapshot_metadata(void **state)
{
	struct fx *f = *state;
	struct logdb_snapshot s, *list;
	size_t n;
	CHECK_RC(f, logdb_get_snapshot(f->db, 4, 1, &s), LOGDB_ERR_NOT_FOUND);
	for (uint64_t i = 1; i <= 3; i++) {
		make_snap(&s, i * 100, i);
		CHECK_RC(f, logdb_save_snapshot(f->db, 4, 1, &s), LOGDB_OK);
	}
	/* another member and group nearby must not show up */
	make_snap(&s, 999, 9);
	CHECK_RC(f, logdb_save_snapshot(f->db, 4, 2, &s), LOGDB_OK);
	CHECK_RC(f, logdb_save_snapshot(f->db, 8, 1, &s), LOGDB_OK);
	fx_reopen(f);
	CHECK_RC(f, logdb_get_snapshot(f->db, 4, 1, &s), LOGDB_OK);
	expect_snap(&s, 300, 3);
	CHECK_RC(f, logdb_list_snapshots(f->db, 4, 1, &list, &n), LOGDB_OK);
	assert_int_equal(n, 3);
	for (size_t i = 0; i < n; i++)
		expect_snap(&list[i], (i + 1) * 100, i + 1);
	logdb_free(f->db, list);
	CHECK_RC(f, logdb_delete_snapshot(f->db, 4, 1, 300), LOGDB_OK);
	CHECK_RC(f, logdb_delete_snapshot(f->db, 4, 1, 12345), LOGDB_OK);
	CHECK_RC(f, logdb_get_snapshot(f->db, 4, 1, &s), LOGDB_OK);
	expect_snap(&s, 200, 2);
	CHECK_RC(f, logdb_list_snapshots(f->db, 4, 1, &list, &n), LOGDB_OK);
	assert_int_equal(n, 2);
	logdb_free(f->db, list);
	/* a replacing record takes the older ones with it; the neighbours stay */
	make_snap(&s, 250, 2);
	CHECK_RC(f, logdb_replace_snapshot(f->db, 4, 1, &s), LOGDB_OK);
	fx_reopen(f);
	CHECK_RC(f, logdb_list_snapshots(f->db, 4, 1, &list, &n), LOGDB_OK);
	assert_int_equal(n, 1);
	expect_snap(&list[0], 250, 2);
	logdb_free(f->db, list);
	CHECK_RC(f, logdb_get_snapshot(f->db, 4, 2, &s), LOGDB_OK);
	expect_snap(&s, 999, 9);
	CHECK_RC(f, logdb_get_snapshot(f->db, 8, 1, &s), LOGDB_OK);
	/* bad membership is refused */
	make_snap(&s, 5, 1);
	s.meta.membership.n_voters = RAFT_MAX_MEMBERS + 1;
	CHECK_RC(f, logdb_save_snapshot(f->db, 4, 1, &s), LOGDB_ERR_INVALID);
}

static void test_snapshot_in_save(void **state)
{
	struct fx *f = *state;
	struct logdb_raft_state rs;
	struct logdb_snapshot s, got;
	CHECK_RC(f, append(f, 9, 1, 10, 1, 4, NULL), LOGDB_OK);
	/* a follower installs a snapshot at 20: its old log goes */
	make_snap(&s, 20, 3);
	struct logdb_update u = {.group_id = 9,
	                         .node_id = 1,
	                         .hard_state_changed = true,
	                         .hard_state = {.term = 3, .vote = 0, .commit = 20},
	                         .snapshot = &s};
	CHECK_RC(f, logdb_save(f->w, &u, 1, true), LOGDB_OK);
	fx_reopen(f);
	CHECK_RC(f, logdb_read_state(f->db, 9, 1, &rs), LOGDB_OK);
	assert_int_equal(rs.first_index, 21);
	assert_int_equal(rs.entry_count, 0);
	assert_int_equal(rs.hard_state.commit, 20);
	CHECK_RC(f, logdb_get_snapshot(f->db, 9, 1, &got), LOGDB_OK);
	expect_snap(&got, 20, 3);
	CHECK_RC(f, logdb_iterate_entries(f->db, 9, 1, 5, 6, UINT64_MAX, &f->ents),
	         LOGDB_ERR_COMPACTED);
	CHECK_RC(f, append(f, 9, 21, 25, 3, 4, NULL), LOGDB_OK);
	expect_entries(f, 9, 21, 25, 3, 4);
	/* a snapshot inside the log replaces it too; new entries follow it in the same save */
	make_snap(&s, 23, 3);
	struct raft_entry e24 = {.term = 4, .index = 24, .len = 4, .data = payload};
	fill(payload, 4, 9, 24, 4);
	u.snapshot = &s;
	u.hard_state_changed = false;
	u.n_entries = 1;
	u.entries = &e24;
	CHECK_RC(f, logdb_save(f->w, &u, 1, true), LOGDB_OK);
	CHECK_RC(f, logdb_read_state(f->db, 9, 1, &rs), LOGDB_OK);
	assert_int_equal(rs.first_index, 24);
	assert_int_equal(rs.entry_count, 1);
	expect_entries(f, 9, 24, 24, 4, 4);
	CHECK_RC(f, logdb_iterate_entries(f->db, 9, 1, 25, 26, UINT64_MAX, &f->ents),
	         LOGDB_ERR_UNAVAILABLE);
	/* entries of a save with a snapshot cannot leave a gap after it */
	e24.index = 30;
	CHECK_RC(f, logdb_save(f->w, &u, 1, true), LOGDB_ERR_INVALID);
	/* the record of the snapshot at 20 went with it */
	struct logdb_snapshot *list;
	size_t k;
	CHECK_RC(f, logdb_list_snapshots(f->db, 9, 1, &list, &k), LOGDB_OK);
	assert_int_equal(k, 1);
	expect_snap(&list[0], 23, 3);
	logdb_free(f->db, list);
}

/*
 * The recovery marker (review 1, #6): saved before a received snapshot goes
 * into the state machine, it survives a restart, and the save that installs
 * that snapshot deletes it in its batch; so does removing the member.
 */
static void test_recovery_marker(void **state)
{
	struct fx *f = *state;
	struct logdb_snapshot s;
	raft_index idx = 99;
	CHECK_RC(f, logdb_get_recovery(f->db, 9, 1, &idx), LOGDB_OK);
	assert_int_equal(idx, 0);
	CHECK_RC(f, append(f, 9, 1, 10, 1, 4, NULL), LOGDB_OK);
	CHECK_RC(f, logdb_save_recovery(f->db, 9, 1, 0), LOGDB_ERR_INVALID);
	CHECK_RC(f, logdb_save_recovery(f->db, 9, 1, 20), LOGDB_OK);
	fx_reopen(f);
	CHECK_RC(f, logdb_get_recovery(f->db, 9, 1, &idx), LOGDB_OK);
	assert_int_equal(idx, 20);
	CHECK_RC(f, logdb_get_recovery(f->db, 9, 2, &idx), LOGDB_OK); /* another member's */
	assert_int_equal(idx, 0);
	/* entries alone leave it */
	CHECK_RC(f, append(f, 9, 11, 12, 1, 4, NULL), LOGDB_OK);
	CHECK_RC(f, logdb_get_recovery(f->db, 9, 1, &idx), LOGDB_OK);
	assert_int_equal(idx, 20);
	make_snap(&s, 20, 3);
	struct logdb_update u = {.group_id = 9,
	                         .node_id = 1,
	                         .hard_state_changed = true,
	                         .hard_state = {.term = 3, .vote = 0, .commit = 20},
	                         .snapshot = &s};
	CHECK_RC(f, logdb_save(f->w, &u, 1, true), LOGDB_OK);
	fx_reopen(f);
	CHECK_RC(f, logdb_get_recovery(f->db, 9, 1, &idx), LOGDB_OK);
	assert_int_equal(idx, 0);
	CHECK_RC(f, logdb_save_recovery(f->db, 9, 1, 30), LOGDB_OK);
	CHECK_RC(f, logdb_remove_node_data(f->db, 9, 1), LOGDB_OK);
	CHECK_RC(f, logdb_get_recovery(f->db, 9, 1, &idx), LOGDB_OK);
	assert_int_equal(idx, 0);
}

/*
 * A follower's conflicting tail is longer than the snapshot it installs: the
 * whole log goes with the install (in the same batch), so a restart does not
 * bring back entries whose terms are older than the snapshot's.
 */
static void test_snapshot_install_truncates(void **state)
{
	struct fx *f = *state;
	struct logdb_raft_state rs;
	struct logdb_snapshot s;
	CHECK_RC(f, append(f, 15, 1, 10, 1, 100, NULL), LOGDB_OK);
	CHECK_RC(f, append(f, 15, 11, 3000, 1, 8, NULL), LOGDB_OK);
	make_snap(&s, 5, 2);
	struct logdb_update u = {.group_id = 15,
	                         .node_id = 1,
	                         .hard_state_changed = true,
	                         .hard_state = {.term = 2, .vote = 0, .commit = 5},
	                         .snapshot = &s};
	CHECK_RC(f, logdb_save(f->w, &u, 1, true), LOGDB_OK);
	fx_reopen(f);
	CHECK_RC(f, logdb_read_state(f->db, 15, 1, &rs), LOGDB_OK);
	assert_int_equal(rs.first_index, 6);
	assert_int_equal(rs.entry_count, 0);
	CHECK_RC(f, logdb_iterate_entries(f->db, 15, 1, 6, 7, UINT64_MAX, &f->ents),
	         LOGDB_ERR_UNAVAILABLE);
	CHECK_RC(f, logdb_iterate_entries(f->db, 15, 1, 5, 6, UINT64_MAX, &f->ents),
	         LOGDB_ERR_COMPACTED);
	/* the new leader's entries from 6 read back as written, none of the old tail */
	CHECK_RC(f, append(f, 15, 6, 8, 2, 16, NULL), LOGDB_OK);
	fx_reopen(f);
	CHECK_RC(f, logdb_read_state(f->db, 15, 1, &rs), LOGDB_OK);
	assert_int_equal(rs.entry_count, 3);
	expect_entries(f, 15, 6, 8, 2, 16);
	CHECK_RC(f, logdb_iterate_entries(f->db, 15, 1, 9, 10, UINT64_MAX, &f->ents),
	         LOGDB_ERR_UNAVAILABLE);
}

static void test_many_groups_across_shards(void **state)
{
	struct fx *f = *state;
	enum { G = 300 };
	static struct logdb_update u[G];
	static struct raft_entry e[G][3];
	static uint8_t data[G][3][40];
	for (int round = 0; round < 3; round++) {
		for (uint64_t g = 0; g < G; g++) {
			for (int k = 0; k < 3; k++) {
				uint64_t idx = (uint64_t)round * 3 + k + 1;
				fill(data[g][k], 40, g + 1, idx, 1);
				e[g][k] = (struct raft_entry){
				        .term = 1, .index = idx, .len = 40, .data = data[g][k]};
			}
			u[g] = (struct logdb_update){
			        .group_id = g + 1,
			        .node_id = 1,
			        .hard_state_changed = true,
			        .hard_state = {.term = 1, .vote = 1, .commit = (uint64_t)round * 3},
			        .n_entries = 3,
			        .entries = e[g]};
		}
		CHECK_RC(f, logdb_save(f->w, u, G, true), LOGDB_OK);
	}
	fx_reopen(f);
	unsigned per_shard[4] = {0};
	for (uint64_t g = 1; g <= G; g++) {
		struct logdb_raft_state rs;
		CHECK_RC(f, logdb_read_state(f->db, g, 1, &rs), LOGDB_OK);
		assert_int_equal(rs.entry_count, 9);
		assert_int_equal(rs.hard_state.commit, 6);
		expect_entries(f, g, 1, 9, 1, 40);
		per_shard[logdb_shard_of(f->db, g)]++;
	}
	for (int s = 0; s < 4; s++)
		if (per_shard[s] == 0)
			fail_msg("expected groups in every shard, shard %d has none", s);
	/* each group is in its own shard's RocksDB only */
	uint8_t key[LOGDB_KEY_LEN];
	char *err = NULL;
	size_t vlen;
	logdb_key(key, LOGDB_KIND_STATE, 1, 1);
	unsigned other = (logdb_shard_of(f->db, 1) + 1) % 4;
	char *v = rocksdb_get(f->db->shards[other].db, f->db->ropts, (const char *)key, sizeof(key),
	                      &vlen, &err);
	assert_null(err);
	assert_null(v);
}

static void test_hard_state_cache_skips_unchanged(void **state)
{
	struct fx *f = *state;
	struct raft_hard_state hs = {.term = 2, .vote = 1, .commit = 0};
	struct logdb_update u = {
	        .group_id = 11, .node_id = 1, .hard_state_changed = true, .hard_state = hs};
	rocksdb_t *r = f->db->shards[logdb_shard_of(f->db, 11)].db;
	uint64_t before, after;
	CHECK_RC(f, logdb_save(f->w, &u, 1, true), LOGDB_OK);
	assert_int_equal(rocksdb_property_int(r, "rocksdb.num-entries-active-mem-table", &before),
	                 0);
	CHECK_RC(f, logdb_save(f->w, &u, 1, true), LOGDB_OK);
	assert_int_equal(rocksdb_property_int(r, "rocksdb.num-entries-active-mem-table", &after),
	                 0);
	if (after != before)
		fail_msg("an unchanged hard state was written again (%" PRIu64 " -> %" PRIu64
		         " memtable entries)",
		         before, after);
	u.hard_state.commit = 1;
	CHECK_RC(f, logdb_save(f->w, &u, 1, true), LOGDB_OK);
	assert_int_equal(rocksdb_property_int(r, "rocksdb.num-entries-active-mem-table", &after),
	                 0);
	assert_int_equal(after, before + 1);
}

static void make_bootstrap(struct logdb_bootstrap *bs, uint64_t g)
{
	memset(bs, 0, sizeof(*bs));
	bs->join = (g % 2) == 0;
	bs->sm_type = 7;
	bs->n_addresses = 3;
	for (uint32_t i = 0; i < 3; i++) {
		bs->addresses[i].node_id = i + 1;
		snprintf(bs->addresses[i].addr, LOGDB_ADDR_MAX, "127.0.0.%" PRIu64 ":%u", g,
		         7400 + i);
		bs->addresses[i].learned = 1000 * g + i;
		bs->membership.voters[i] = i + 1;
	}
	bs->membership.n_voters = 3;
	bs->addr_index = 10 + g;
}

static void test_bootstrap_and_nodes(void **state)
{
	struct fx *f = *state;
	struct logdb_bootstrap bs, got;
	struct logdb_node_info *nodes;
	size_t n;
	CHECK_RC(f, logdb_get_bootstrap(f->db, 1, 1, &got), LOGDB_ERR_NOT_FOUND);
	for (uint64_t g = 1; g <= 10; g++) {
		make_bootstrap(&bs, g);
		CHECK_RC(f, logdb_save_bootstrap(f->db, g, 1 + g % 3, &bs), LOGDB_OK);
	}
	fx_reopen(f);
	for (uint64_t g = 1; g <= 10; g++) {
		make_bootstrap(&bs, g);
		CHECK_RC(f, logdb_get_bootstrap(f->db, g, 1 + g % 3, &got), LOGDB_OK);
		if (memcmp(&bs, &got, sizeof(bs)) != 0)
			fail_msg("bootstrap of group %" PRIu64 " differs after restart", g);
	}
	CHECK_RC(f, logdb_list_nodes(f->db, &nodes, &n), LOGDB_OK);
	assert_int_equal(n, 10);
	bool seen[11] = {false};
	for (size_t i = 0; i < n; i++) {
		assert_true(nodes[i].group_id >= 1 && nodes[i].group_id <= 10);
		assert_int_equal(nodes[i].node_id, 1 + nodes[i].group_id % 3);
		seen[nodes[i].group_id] = true;
	}
	for (int g = 1; g <= 10; g++)
		assert_true(seen[g]);
	logdb_free(f->db, nodes);
	/* an address too long for the format is refused */
	make_bootstrap(&bs, 1);
	memset(bs.addresses[0].addr, 'x', LOGDB_ADDR_MAX);
	CHECK_RC(f, logdb_save_bootstrap(f->db, 1, 1, &bs), LOGDB_ERR_TOO_BIG);
}

static void test_remove_node_data(void **state)
{
	struct fx *f = *state;
	struct logdb_bootstrap bs;
	struct logdb_snapshot s;
	struct logdb_raft_state rs;
	struct logdb_node_info *nodes;
	size_t n;
	struct raft_hard_state hs = {.term = 1, .vote = 1, .commit = 3};
	for (uint64_t g = 12; g <= 13; g++) {
		make_bootstrap(&bs, g);
		CHECK_RC(f, logdb_save_bootstrap(f->db, g, 1, &bs), LOGDB_OK);
		CHECK_RC(f, append(f, g, 1, 50, 1, 64, &hs), LOGDB_OK);
		make_snap(&s, 10, 1);
		CHECK_RC(f, logdb_save_snapshot(f->db, g, 1, &s), LOGDB_OK);
	}
	CHECK_RC(f, logdb_remove_node_data(f->db, 12, 1), LOGDB_OK);
	logdb_wait_compactions(f->db);
	fx_reopen(f);
	CHECK_RC(f, logdb_read_state(f->db, 12, 1, &rs), LOGDB_ERR_NOT_FOUND);
	CHECK_RC(f, logdb_get_bootstrap(f->db, 12, 1, &bs), LOGDB_ERR_NOT_FOUND);
	CHECK_RC(f, logdb_get_snapshot(f->db, 12, 1, &s), LOGDB_ERR_NOT_FOUND);
	CHECK_RC(f, logdb_iterate_entries(f->db, 12, 1, 1, 2, UINT64_MAX, &f->ents),
	         LOGDB_ERR_UNAVAILABLE);
	CHECK_RC(f, logdb_list_nodes(f->db, &nodes, &n), LOGDB_OK);
	assert_int_equal(n, 1);
	assert_int_equal(nodes[0].group_id, 13);
	logdb_free(f->db, nodes);
	expect_entries(f, 13, 1, 50, 1, 64);
	/* the member can start over */
	CHECK_RC(f, append(f, 12, 1, 2, 7, 3, NULL), LOGDB_OK);
	expect_entries(f, 12, 1, 2, 7, 3);
}

static void test_import_snapshot(void **state)
{
	struct fx *f = *state;
	struct logdb_snapshot s, got;
	struct logdb_bootstrap bs;
	struct logdb_raft_state rs;
	struct raft_hard_state hs = {.term = 9, .vote = 3, .commit = 40};
	struct logdb_bootstrap old;
	make_bootstrap(&old, 14);
	old.join = true;
	CHECK_RC(f, logdb_save_bootstrap(f->db, 14, 1, &old), LOGDB_OK);
	CHECK_RC(f, append(f, 14, 1, 40, 9, 16, &hs), LOGDB_OK);
	make_snap(&s, 500, 12);
	CHECK_RC(f, logdb_import_snapshot(f->db, 14, 1, &s), LOGDB_OK);
	fx_reopen(f);
	CHECK_RC(f, logdb_read_state(f->db, 14, 1, &rs), LOGDB_OK);
	assert_int_equal(rs.hard_state.term, 12);
	assert_int_equal(rs.hard_state.commit, 500);
	assert_int_equal(rs.hard_state.vote, 0);
	assert_int_equal(rs.first_index, 501);
	assert_int_equal(rs.entry_count, 0);
	CHECK_RC(f, logdb_get_snapshot(f->db, 14, 1, &got), LOGDB_OK);
	expect_snap(&got, 500, 12);
	CHECK_RC(f, logdb_get_bootstrap(f->db, 14, 1, &bs), LOGDB_OK);
	assert_false(bs.join);
	assert_memory_equal(&bs.membership, &s.meta.membership, sizeof(bs.membership));
	/* the address book stays */
	assert_int_equal(bs.sm_type, old.sm_type);
	assert_int_equal(bs.n_addresses, 3);
	assert_memory_equal(bs.addresses, old.addresses, sizeof(old.addresses));
	/* a member without a bootstrap record imports with an empty one */
	CHECK_RC(f, logdb_import_snapshot(f->db, 16, 1, &s), LOGDB_OK);
	CHECK_RC(f, logdb_get_bootstrap(f->db, 16, 1, &bs), LOGDB_OK);
	assert_int_equal(bs.n_addresses, 0);
	CHECK_RC(f, logdb_iterate_entries(f->db, 14, 1, 1, 2, UINT64_MAX, &f->ents),
	         LOGDB_ERR_COMPACTED);
	CHECK_RC(f, append(f, 14, 501, 503, 12, 16, NULL), LOGDB_OK);
	expect_entries(f, 14, 501, 503, 12, 16);
}

static void test_invalid_updates(void **state)
{
	struct fx *f = *state;
	struct raft_entry e[2] = {{.term = 1, .index = 1}, {.term = 1, .index = 3}};
	struct logdb_update u = {.group_id = 1, .node_id = 1, .n_entries = 2, .entries = e};
	CHECK_RC(f, logdb_save(f->w, &u, 1, true), LOGDB_ERR_INVALID);
	e[0].index = 0;
	e[1].index = 1;
	CHECK_RC(f, logdb_save(f->w, &u, 1, true), LOGDB_ERR_INVALID);
	e[0].index = 1;
	e[1].index = 2;
	e[1].len = 4; /* data missing */
	CHECK_RC(f, logdb_save(f->w, &u, 1, true), LOGDB_ERR_INVALID);
	/* nothing was written by the refused saves */
	struct logdb_raft_state rs;
	CHECK_RC(f, logdb_read_state(f->db, 1, 1, &rs), LOGDB_ERR_NOT_FOUND);
}

/* L0 files of shard 0 (a text property). */
static uint64_t l0_files(struct fx *f)
{
	char *v = rocksdb_property_value(f->db->shards[0].db, "rocksdb.num-files-at-level0");
	assert_non_null(v);
	uint64_t n = strtoull(v, NULL, 10);
	rocksdb_free(v);
	return n;
}

static void test_busy_signal(void **state)
{
	struct fx *f = *state;
	fx_close(f);
	nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	f->cfg.disable_auto_compactions = true;
	f->cfg.l0_slowdown_trigger = 6; /* busy from 4 L0 files, one flush before RocksDB slows */
	f->cfg.shards = 1;
	fx_open(f);
	assert_false(logdb_busy(f->db, 1));
	int flushes = 0;
	for (; flushes < 10 && !logdb_busy(f->db, 1); flushes++) {
		CHECK_RC(f,
		         append(f, 1, (uint64_t)flushes * 10 + 1, (uint64_t)flushes * 10 + 10, 1,
		                100, NULL),
		         LOGDB_OK);
		CHECK_RC(f, logdb_flush(f->db), LOGDB_OK);
	}
	/* Busy while RocksDB would not slow writes yet: fewer L0 files than its
	 * slowdown trigger.  (Not RocksDB's own delayed write rate: with
	 * compactions off it applies no L0 slowdown at all, so that rate stays 0
	 * whatever the signal does, rev90.) */
	uint64_t l0 = l0_files(f);
	if (l0 >= 6)
		fail_msg("busy only at %" PRIu64 " L0 files: RocksDB slows writes from 6", l0);
	if (flushes != 4)
		fail_msg("expected busy after 4 L0 files (slowdown trigger 6), got busy after %d",
		         flushes);
	assert_int_equal(l0, 4);
	assert_true(logdb_busy(f->db, 1));
}

/*
 * Memtables that RocksDB switches and flushes by itself as writes fill them
 * (no logdb_flush, which resets the signal): a shard last found not busy is
 * found not busy again after a write only while its super version number is
 * unchanged, so the signal after each write agrees with the L0 files counted
 * before it (compactions off: the count only grows).
 */
static void test_busy_signal_background_flushes(void **state)
{
	struct fx *f = *state;
	fx_close(f);
	nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	f->cfg.disable_auto_compactions = true;
	f->cfg.l0_slowdown_trigger = 6; /* busy from 4 L0 files */
	f->cfg.shards = 1;
	f->cfg.memtable_budget = 1 << 20; /* memtables of 256 KiB */
	fx_open(f);
	assert_false(logdb_busy(f->db, 1));
	uint64_t next = 1, l0 = 0;
	int found_idle = 0;
	while (l0 < 6) {
		if (next > 20000)
			fail_msg("RocksDB made only %" PRIu64 " L0 files", l0);
		CHECK_RC(f, append(f, 1, next, next + 7, 1, 8000, NULL), LOGDB_OK);
		next += 8;
		l0 = l0_files(f);
		bool busy = logdb_busy(f->db, 1);
		if (l0 + 2 >= 6 && !busy)
			fail_msg("not busy after a write with %" PRIu64 " L0 files (slowdown at 6)",
			         l0);
		found_idle += !busy;
	}
	assert_true(found_idle > 0);
	/* (RocksDB slows no writes with compactions off) */
	for (int i = 0; i < 3; i++, next += 8) {
		CHECK_RC(f, append(f, 1, next, next + 7, 1, 8000, NULL), LOGDB_OK);
		assert_true(logdb_busy(f->db, 1));
	}
}

static void test_wal_dir(void **state)
{
	struct fx *f = *state;
	char wal[300], path[400];
	fx_close(f);
	snprintf(wal, sizeof(wal), "%s/wal", f->dir);
	f->cfg.wal_dir = wal;
	nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	fx_open(f);
	CHECK_RC(f, append(f, 1, 1, 5, 1, 10, NULL), LOGDB_OK);
	fx_reopen(f);
	expect_entries(f, 1, 1, 5, 1, 10);
	snprintf(path, sizeof(path), "%s/shard-%u", wal, logdb_shard_of(f->db, 1));
	assert_int_equal(access(path, F_OK), 0);
	/* the journal is in the WAL directory too */
	snprintf(path, sizeof(path), "%s/journal-%u/CHECKPOINT", wal, logdb_shard_of(f->db, 1));
	assert_int_equal(access(path, F_OK), 0);
	snprintf(path, sizeof(path), "%s/journal-%u", f->dir, logdb_shard_of(f->db, 1));
	assert_int_equal(access(path, F_OK), -1);
}

/* Two threads, each with its own worker, save disjoint groups in every shard at once. */
struct saver {
	struct fx *f;
	struct logdb_worker *w;
	uint64_t base; /* groups base+1 .. base+16 */
	int rc;
};

static void *saver_main(void *arg)
{
	struct saver *sv = arg;
	static __thread uint8_t data[16][8][32];
	struct raft_entry e[16][8];
	struct logdb_update u[16];
	for (uint64_t round = 0; round < 40 && sv->rc == LOGDB_OK; round++) {
		for (uint64_t i = 0; i < 16; i++) {
			uint64_t g = sv->base + i + 1;
			for (uint64_t k = 0; k < 8; k++) {
				fill(data[i][k], 32, g, round * 8 + k + 1, 1);
				e[i][k] = (struct raft_entry){.term = 1,
				                              .index = round * 8 + k + 1,
				                              .len = 32,
				                              .data = data[i][k]};
			}
			u[i] = (struct logdb_update){.group_id = g,
			                             .node_id = 1,
			                             .hard_state_changed = true,
			                             .hard_state = {.term = 1, .commit = round * 8},
			                             .n_entries = 8,
			                             .entries = e[i]};
		}
		sv->rc = logdb_save(sv->w, u, 16, true);
	}
	return NULL;
}

static void test_concurrent_workers(void **state)
{
	struct fx *f = *state;
	struct saver sv[2] = {{.f = f, .base = 100}, {.f = f, .base = 200}};
	pthread_t t[2];
	for (int i = 0; i < 2; i++) {
		CHECK_RC(f, logdb_worker_create(f->db, &sv[i].w), LOGDB_OK);
		assert_int_equal(pthread_create(&t[i], NULL, saver_main, &sv[i]), 0);
	}
	for (int i = 0; i < 2; i++) {
		pthread_join(t[i], NULL);
		CHECK_RC(f, sv[i].rc, LOGDB_OK);
		logdb_worker_destroy(sv[i].w);
	}
	fx_reopen(f);
	for (int i = 0; i < 2; i++)
		for (uint64_t g = sv[i].base + 1; g <= sv[i].base + 16; g++) {
			struct logdb_raft_state rs;
			CHECK_RC(f, logdb_read_state(f->db, g, 1, &rs), LOGDB_OK);
			assert_int_equal(rs.entry_count, 320);
			assert_int_equal(rs.hard_state.commit, 312);
			expect_entries(f, g, 1, 320, 1, 32);
		}
}

/* ---- bad data on disk: write into a shard directly with RocksDB ---------- */

/* Close the LogDB, run fn on the raw RocksDB of group g's shard, reopen. */
static void poke(struct fx *f, uint64_t g, void (*fn)(rocksdb_t *r, void *arg), void *arg)
{
	char path[400];
	char *err = NULL;
	unsigned si = logdb_shard_of(f->db, g);
	fx_close(f);
	snprintf(path, sizeof(path), "%s/shard-%u", f->dir, si);
	rocksdb_options_t *o = rocksdb_options_create();
	rocksdb_t *r = rocksdb_open(o, path, &err);
	assert_null(err);
	fn(r, arg);
	rocksdb_close(r);
	rocksdb_options_destroy(o);
	fx_open(f);
}

struct poke_arg {
	uint8_t key[LOGDB_INDEX_KEY_LEN];
	size_t klen;
	int flip; /* byte of the value to flip; -1 = delete the key; -2 = truncate */
};

static void do_poke(rocksdb_t *r, void *arg)
{
	struct poke_arg *a = arg;
	rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
	rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
	char *err = NULL;
	size_t vlen;
	char *v = rocksdb_get(r, ro, (const char *)a->key, a->klen, &vlen, &err);
	assert_null(err);
	assert_non_null(v);
	if (a->flip == -1) {
		rocksdb_delete(r, wo, (const char *)a->key, a->klen, &err);
	} else {
		if (a->flip == -2)
			vlen /= 2;
		else
			v[a->flip] ^= 0x20;
		rocksdb_put(r, wo, (const char *)a->key, a->klen, v, vlen, &err);
	}
	assert_null(err);
	rocksdb_free(v);
	rocksdb_readoptions_destroy(ro);
	rocksdb_writeoptions_destroy(wo);
}

static void expect_msg(struct fx *f, const char *a, const char *b)
{
	if (strstr(msg(f), a) == NULL || (b && strstr(msg(f), b) == NULL))
		fail_msg("expected the error to name \"%s\"%s%s, got: %s", a, b ? " and " : "",
		         b ? b : "", msg(f));
}

/*
 * A read with a byte limit stops before the entry that would pass it without
 * reading it: a damaged run there is not met (the next read, which starts
 * with it, reports it).  A log digest's step over entries near
 * max_entry_size checked and decoded the next one whole, then dropped it.
 */
static void test_byte_limit_reads_no_further(void **state)
{
	struct fx *f = *state;
	struct poke_arg a;
	struct raft_hard_state hs = {.term = 1, .vote = 1, .commit = 1};

	CHECK_RC(f, append(f, 7, 1, 4, 1, 64, &hs), LOGDB_OK);
	CHECK_RC(f, append(f, 7, 5, 6, 1, 40000, &hs), LOGDB_OK);
	CHECK_RC(f, append(f, 7, 7, 8, 1, 64, &hs), LOGDB_OK);
	a.klen = LOGDB_INDEX_KEY_LEN;
	logdb_index_key(a.key, LOGDB_KIND_ENTRY, 7, 1, 5);
	a.flip = LOGDB_HDR_LEN + 4 + 2 * LOGDB_RUN_ENTRY_HDR + 40000 + 3; /* entry 6's data */
	poke(f, 7, do_poke, &a);
	/* 4 x 64 bytes, and entry 5 (40000) would pass 1000 */
	CHECK_RC(f, logdb_iterate_entries(f->db, 7, 1, 1, 9, 1000, &f->ents), LOGDB_OK);
	assert_int_equal(f->ents.n, 4);
	assert_int_equal(f->ents.bytes, 4 * 64);
	assert_int_equal(f->ents.ents[3].index, 4);
	/* the first entry is read whatever its size: then the damage is met */
	CHECK_RC(f, logdb_iterate_entries(f->db, 7, 1, 5, 9, 1000, &f->ents), LOGDB_ERR_CORRUPT);
	expect_msg(f, "group 7", "index 5");
	CHECK_RC(f, logdb_iterate_entries(f->db, 7, 1, 1, 9, 50000, &f->ents), LOGDB_ERR_CORRUPT);
	/* a run that fits is read */
	CHECK_RC(f, logdb_iterate_entries(f->db, 7, 1, 7, 9, 1000, &f->ents), LOGDB_OK);
	assert_int_equal(f->ents.n, 2);
}

static void test_bad_data_on_disk(void **state)
{
	struct fx *f = *state;
	struct poke_arg a;
	struct raft_hard_state hs = {.term = 1, .vote = 1, .commit = 1};
	struct logdb_raft_state rs;
	struct logdb_snapshot s;
	/* runs 1-4, 5-8, 9-14, 15-19, 20 in groups 7 and 11 */
	static const uint64_t runs[][2] = {{1, 4}, {5, 8}, {9, 14}, {15, 19}, {20, 20}};
	for (int i = 0; i < 5; i++) {
		CHECK_RC(f, append(f, 7, runs[i][0], runs[i][1], 1, 64, &hs), LOGDB_OK);
		CHECK_RC(f, append(f, 11, runs[i][0], runs[i][1], 1, 64, &hs), LOGDB_OK);
	}
	CHECK_RC(f, append(f, 10, 1, 20, 1, 64, &hs), LOGDB_OK);

	/* a flipped payload byte in the run at 5 */
	a.klen = LOGDB_INDEX_KEY_LEN;
	logdb_index_key(a.key, LOGDB_KIND_ENTRY, 7, 1, 5);
	a.flip = LOGDB_HDR_LEN + 4 + LOGDB_RUN_ENTRY_HDR + 3;
	poke(f, 7, do_poke, &a);
	CHECK_RC(f, logdb_iterate_entries(f->db, 7, 1, 1, 21, UINT64_MAX, &f->ents),
	         LOGDB_ERR_CORRUPT);
	expect_msg(f, "group 7", "index 5");
	assert_int_equal(f->ents.n, 0);
	/* entries before and after the damage still read */
	expect_entries(f, 7, 1, 4, 1, 64);
	expect_entries(f, 7, 9, 20, 1, 64);

	/* a truncated run at 9 */
	logdb_index_key(a.key, LOGDB_KIND_ENTRY, 7, 1, 9);
	a.flip = -2;
	poke(f, 7, do_poke, &a);
	CHECK_RC(f, logdb_iterate_entries(f->db, 7, 1, 9, 21, UINT64_MAX, &f->ents),
	         LOGDB_ERR_CORRUPT);
	expect_msg(f, "group 7", "index 9");

	/* a missing last run is a hole, not a short log */
	logdb_index_key(a.key, LOGDB_KIND_ENTRY, 11, 1, 20);
	a.flip = -1;
	poke(f, 11, do_poke, &a);
	CHECK_RC(f, logdb_iterate_entries(f->db, 11, 1, 16, 21, UINT64_MAX, &f->ents),
	         LOGDB_ERR_CORRUPT);
	expect_msg(f, "group 11", "index 20");
	/* ... and so is a missing run in the middle */
	logdb_index_key(a.key, LOGDB_KIND_ENTRY, 11, 1, 15);
	poke(f, 11, do_poke, &a);
	CHECK_RC(f, logdb_iterate_entries(f->db, 11, 1, 10, 20, UINT64_MAX, &f->ents),
	         LOGDB_ERR_CORRUPT);
	expect_msg(f, "group 11", "index 15");
	/* ... also when the hole is at the first index asked */
	CHECK_RC(f, logdb_iterate_entries(f->db, 11, 1, 16, 18, UINT64_MAX, &f->ents),
	         LOGDB_ERR_CORRUPT);
	expect_msg(f, "group 11", "index 16");

	/* a damaged hard state */
	a.klen = LOGDB_KEY_LEN;
	logdb_key(a.key, LOGDB_KIND_STATE, 10, 1);
	a.flip = LOGDB_HDR_LEN + 1;
	poke(f, 10, do_poke, &a);
	CHECK_RC(f, logdb_read_state(f->db, 10, 1, &rs), LOGDB_ERR_CORRUPT);
	expect_msg(f, "group 10", "hard state");
	/* a damaged entry range */
	logdb_key(a.key, LOGDB_KIND_RANGE, 7, 1);
	a.flip = LOGDB_HDR_LEN;
	poke(f, 7, do_poke, &a);
	CHECK_RC(f, logdb_read_state(f->db, 7, 1, &rs), LOGDB_ERR_CORRUPT);
	expect_msg(f, "group 7", "range");
	CHECK_RC(f, append(f, 7, 21, 21, 1, 1, NULL), LOGDB_ERR_CORRUPT);
	/* a damaged member can still be removed */
	CHECK_RC(f, logdb_remove_node_data(f->db, 7, 1), LOGDB_OK);
	CHECK_RC(f, logdb_read_state(f->db, 7, 1, &rs), LOGDB_ERR_NOT_FOUND);

	/* a damaged snapshot record */
	make_snap(&s, 33, 2);
	CHECK_RC(f, logdb_save_snapshot(f->db, 10, 1, &s), LOGDB_OK);
	a.klen = LOGDB_INDEX_KEY_LEN;
	logdb_index_key(a.key, LOGDB_KIND_SNAPSHOT, 10, 1, 33);
	a.flip = 2;
	poke(f, 10, do_poke, &a);
	CHECK_RC(f, logdb_get_snapshot(f->db, 10, 1, &s), LOGDB_ERR_CORRUPT);
	expect_msg(f, "group 10", "index 33");
	/* a damaged bootstrap record */
	struct logdb_bootstrap bs;
	make_bootstrap(&bs, 10);
	CHECK_RC(f, logdb_save_bootstrap(f->db, 10, 1, &bs), LOGDB_OK);
	a.klen = LOGDB_KEY_LEN;
	logdb_key(a.key, LOGDB_KIND_BOOTSTRAP, 10, 1);
	a.flip = 20;
	poke(f, 10, do_poke, &a);
	CHECK_RC(f, logdb_get_bootstrap(f->db, 10, 1, &bs), LOGDB_ERR_CORRUPT);
	expect_msg(f, "group 10", "bootstrap");
}

/* ---- damaged WAL, failed writes ------------------------------------------ */

/* ---- the journal ---------------------------------------------------------- */

/*
 * Close f's LogDB, then run a child (this program again: RocksDB's thread
 * pools do not survive a bare fork) that opens it, runs the step named
 * what with arguments a and b, and exits without closing: a crash, nothing
 * flushed or checkpointed since the last segment switch.
 */
static void crash_after(struct fx *f, const char *what, uint64_t a, uint64_t b)
{
	char args[5][64];
	int st;
	fx_close(f);
	snprintf(args[0], sizeof(args[0]), "%u", f->cfg.shards);
	snprintf(args[1], sizeof(args[1]), "%" PRIu64, f->cfg.journal_segment);
	snprintf(args[2], sizeof(args[2]), "%" PRIu64, a);
	snprintf(args[3], sizeof(args[3]), "%" PRIu64, b);
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		execl("/proc/self/exe", "test_logdb", "--child", what, f->dir, args[0], args[1],
		      args[2], args[3], (char *)NULL);
		_exit(3);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fail_msg("the writing child (%s) failed (status %d)", what, st);
}

/* Start over in an empty directory with cfg changed by the caller. */
static void fx_recreate(struct fx *f)
{
	if (f->db)
		fx_close(f);
	nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	assert_int_equal(mkdir(f->dir, 0700), 0);
	fx_open(f);
}

/* The journal's segment files of shard si (start LSNs, ascending); their count. */
static int segments(struct fx *f, unsigned si, uint64_t *starts, int max)
{
	char path[400];
	snprintf(path, sizeof(path), "%s/journal-%u", f->dir, si);
	return journal_segments(path, starts, max);
}

/* Read a segment file; the offsets of its valid records from 0 into offs. */
static uint8_t *read_segment(const char *path, size_t *size, uint64_t start, size_t *offs, int *n)
{
	struct stat st;
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	uint8_t *p = malloc((size_t)st.st_size + 1);
	assert_int_equal(pread(fd, p, (size_t)st.st_size, 0), st.st_size);
	close(fd);
	*size = (size_t)st.st_size;
	const uint8_t *body;
	uint32_t len;
	size_t off = 0;
	for (*n = 0; logdb_jrec_read(p, *size, start, off, &body, &len) == LOGDB_JREC_VALID;
	     off += logdb_jrec_size(len))
		offs[(*n)++] = off;
	return p;
}

static void patch(const char *path, size_t off, const void *bytes, size_t n)
{
	int fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, bytes, n, (off_t)off), (ssize_t)n);
	close(fd);
}

static int six_saves(struct fx *f, uint64_t a, uint64_t b)
{
	struct raft_hard_state hs = {.term = 1, .vote = 1, .commit = 0};
	(void)a;
	(void)b;
	for (uint64_t i = 0; i < 6; i++) {
		hs.commit = i * 10;
		if (append(f, 1, i * 10 + 1, i * 10 + 10, 1, 64, &hs) != LOGDB_OK)
			return 1;
	}
	return 0;
}

static int six_saves_after_torn(struct fx *f, uint64_t a, uint64_t b)
{
	(void)a;
	(void)b;
	return append(f, 1, 51, 60, 1, 64, NULL);
}

static const uint8_t zeros16[16];

/*
 * A torn last journal record (a crash while it was written) is dropped and
 * written over; damage before the end fails the open loudly, naming shard,
 * file and offset, instead of silently dropping every later synced write.
 */
static void test_journal_damage(void **state)
{
	struct fx *f = *state;
	struct logdb_raft_state rs;
	char seg[400], want[64];
	size_t offs[16], size;
	int n;
	unsigned si = 1 % f->cfg.shards;
	crash_after(f, "six_saves", 0, 0);
	snprintf(seg, sizeof(seg), "%s/journal-%u/0000000000000000.jnl", f->dir, si);
	uint8_t *p = read_segment(seg, &size, 0, offs, &n);
	assert_int_equal(n, 6);

	/* a flipped byte in the body of the second of six records */
	uint8_t c = p[offs[1] + LOGDB_JREC_HDR + 5] ^ 0x10;
	patch(seg, offs[1] + LOGDB_JREC_HDR + 5, &c, 1);
	snprintf(want, sizeof(want), "offset %zu", offs[1]);
	expect_open_corrupt(&f->cfg, "journal-1/0000000000000000.jnl", want);
	/* ... or in its LSN: no longer a record of this use of the segment, yet more follow */
	patch(seg, 0, p, size);
	c = p[offs[1] + 9] ^ 0x01;
	patch(seg, offs[1] + 9, &c, 1);
	expect_open_corrupt(&f->cfg, "shard 1", want);

	/* the undamaged journal with its last record torn opens, without that save */
	patch(seg, 0, p, size);
	patch(seg, offs[5] + LOGDB_JREC_HDR + 100, zeros16, 16);
	fx_open(f);
	CHECK_RC(f, logdb_read_state(f->db, 1, 1, &rs), LOGDB_OK);
	assert_int_equal(rs.entry_count, 50);
	assert_int_equal(rs.hard_state.commit, 40);
	expect_entries(f, 1, 1, 50, 1, 64);
	/* writing goes on over the torn record, and a crash keeps it */
	crash_after(f, "six_saves_after_torn", 0, 0);
	fx_open(f);
	expect_entries(f, 1, 1, 60, 1, 64);
	free(p);
}

/* The lines the LogDB logged (logdb_config.log_fn): how many, the last one's level and text. */
static struct {
	int n, level;
	char msg[1024];
} logged;

static void log_capture(void *ctx, int level, const char *msg)
{
	(void)ctx;
	logged.n++;
	logged.level = level;
	snprintf(logged.msg, sizeof(logged.msg), "%s", msg);
}

/* Open f (left open), which logs one line of level holding a, b and c, and keeps group 1's
 * 50 entries. */
static void open_logged(struct fx *f, int level, const char *a, const char *b, const char *c)
{
	struct logdb_raft_state rs;
	logged.n = 0;
	fx_open(f);
	if (logged.n != 1 || logged.level != level || strstr(logged.msg, a) == NULL ||
	    strstr(logged.msg, b) == NULL || strstr(logged.msg, c) == NULL)
		fail_msg("expected one line of level %d naming \"%s\", \"%s\" and \"%s\"; got %d, "
		         "the last of level %d: %s",
		         level, a, b, c, logged.n, logged.level, logged.msg);
	CHECK_RC(f, logdb_read_state(f->db, 1, 1, &rs), LOGDB_OK);
	assert_int_equal(rs.entry_count, 50);
	expect_entries(f, 1, 1, 50, 1, 64);
}

/*
 * Review 28 F5: the open drops a damaged or torn last record (it cannot
 * tell one from the other in a recycled segment, see note_tail), but never
 * silently: it logs shard, file, offset and the bytes dropped.  A record
 * with a flipped byte (every sector of it holds data) is a WARNING; one cut
 * short in zero-filled space (a sector of zeros, or the file ending inside
 * it) is a LOG line.  A clean reopen logs nothing.
 */
static void test_journal_tail_reported(void **state)
{
	struct fx *f = *state;
	char seg[400], at[128], bytes[64];
	size_t offs[16], size;
	int n;
	unsigned si = 1 % f->cfg.shards;
	f->cfg.log_fn = log_capture;
	crash_after(f, "six_saves", 0, 0);
	snprintf(seg, sizeof(seg), "%s/journal-%u/0000000000000000.jnl", f->dir, si);
	uint8_t *p = read_segment(seg, &size, 0, offs, &n);
	assert_int_equal(n, 6);
	uint32_t len;
	memcpy(&len, p + offs[5] + 4, 4); /* little-endian, as this machine */
	size_t rec_end = offs[5] + LOGDB_JREC_HDR + len;
	size_t sector2 = (offs[5] / 512 + 1) * 512;
	assert_true(sector2 > offs[5] + LOGDB_JREC_HDR && sector2 < rec_end);
	snprintf(at, sizeof(at), "journal-%u/0000000000000000.jnl offset %zu", si, offs[5]);

	/* a flipped byte in the last record's body */
	uint8_t c = p[offs[5] + LOGDB_JREC_HDR + len / 2] ^ 0x40;
	patch(seg, offs[5] + LOGDB_JREC_HDR + len / 2, &c, 1);
	snprintf(bytes, sizeof(bytes), "dropped the %zu bytes", rec_end - offs[5]);
	open_logged(f, LOGDB_LOG_WARNING, at, bytes, "every 512-byte sector of it holds data");
	/* reported once: a clean close and an open with no save between log nothing (review 31;
	 * it was said again at each open), and the dropped bytes are zeros now */
	fx_close(f);
	logged.n = 0;
	fx_open(f);
	if (logged.n != 0)
		fail_msg("the dropped record was reported again at the next open: %s", logged.msg);
	expect_entries(f, 1, 1, 50, 1, 64);
	{
		size_t size2, offs2[16];
		int n2;
		uint8_t *q = read_segment(seg, &size2, 0, offs2, &n2);
		assert_int_equal(n2, 5);
		for (size_t i = offs[5]; i < rec_end; i++)
			if (q[i] != 0)
				fail_msg("byte %zu of the dropped record is not zero", i - offs[5]);
		free(q);
	}

	/* a flipped high bit of its body length (review 31): it runs past the end of its
	 * segment, which no write does (a record that does not fit starts the
	 * next segment): damage, a warning, not a write cut short */
	fx_close(f);
	patch(seg, 0, p, size);
	uint8_t hb = p[offs[5] + 7] ^ 0x10; /* bit 28 of the body length */
	patch(seg, offs[5] + 7, &hb, 1);
	open_logged(f, LOGDB_LOG_WARNING, at, "runs past the end of the segment",
	            "damaged after it was written");

	/* cut short in zero-filled space: its sectors from the second on not written */
	fx_close(f);
	patch(seg, 0, p, size);
	uint8_t *z = calloc(1, rec_end - sector2);
	patch(seg, sector2, z, rec_end - sector2);
	free(z);
	snprintf(bytes, sizeof(bytes), "dropped %zu bytes", rec_end - offs[5]);
	open_logged(f, LOGDB_LOG_INFO, at, bytes, "a sector of zeros");

	/* the file ends inside it (its growth was not durable) */
	fx_close(f);
	patch(seg, 0, p, size);
	assert_int_equal(truncate(seg, (off_t)(offs[5] + LOGDB_JREC_HDR + 100)), 0);
	snprintf(bytes, sizeof(bytes), "dropped %d bytes", LOGDB_JREC_HDR + 100);
	open_logged(f, LOGDB_LOG_INFO, at, bytes, "cut short by the end of the file");

	/* writing goes on over it; a clean close and open log nothing */
	crash_after(f, "six_saves_after_torn", 0, 0);
	fx_open(f);
	fx_close(f);
	logged.n = 0;
	fx_open(f);
	expect_entries(f, 1, 1, 60, 1, 64);
	assert_int_equal(logged.n, 0);
	free(p);
}

/*
 * Small segments: the journal goes round its files many times (switches,
 * checkpoints, recycling) and keeps at most four; a crash after that, also
 * one between a flush and its checkpoint, keeps every save, and no stale
 * record of an earlier use of a segment comes back (each save rewrites
 * group 1's entries 1-16 with a new term: an old record replayed would
 * bring back an older term).
 */
struct rewrites {
	uint64_t from, to; /* terms */
	bool flush_without_checkpoint;
};

static int rewrites(struct fx *f, const struct rewrites *r)
{
	for (uint64_t t = r->from; t <= r->to; t++) {
		struct raft_hard_state hs = {.term = t, .vote = 1, .commit = t};
		if (append(f, 1, 1, 16, t, 1024, &hs) != LOGDB_OK ||
		    append(f, 2, t, t, 1, 512, NULL) != LOGDB_OK)
			return 1;
		if (r->flush_without_checkpoint && t == (r->from + r->to) / 2) {
			/* a crash after the flush, before CHECKPOINT is renamed */
			char tmp[400];
			if (logdb_flush(f->db) != LOGDB_OK)
				return 1;
			snprintf(tmp, sizeof(tmp), "%s/journal-0/CHECKPOINT.tmp", f->dir);
			FILE *fp = fopen(tmp, "w");
			if (fp == NULL)
				return 1;
			fputs("dragonraft-jour", fp);
			fclose(fp);
		}
	}
	return 0;
}

/* The child's step: terms a..b, with a flush but no checkpoint halfway. */
static int rewrite_saves(struct fx *f, uint64_t a, uint64_t b)
{
	struct rewrites r = {.from = a, .to = b, .flush_without_checkpoint = true};
	return rewrites(f, &r);
}

static void expect_rewrites(struct fx *f, uint64_t term)
{
	struct logdb_raft_state rs;
	expect_entries(f, 1, 1, 16, term, 1024);
	CHECK_RC(f, logdb_read_state(f->db, 1, 1, &rs), LOGDB_OK);
	assert_int_equal(rs.hard_state.term, term);
	expect_entries(f, 2, 1, term, 1, 512);
}

static void test_journal_recycles(void **state)
{
	struct fx *f = *state;
	uint64_t starts[64];
	f->cfg.shards = 1;
	f->cfg.journal_segment = 64 << 10;
	fx_recreate(f);
	/* first a batch bigger than a segment: a segment of its own, not kept once free */
	CHECK_RC(f, append(f, 4, 1, 4, 1, 50 << 10, NULL), LOGDB_OK);
	struct rewrites r = {.from = 1, .to = 300};
	assert_int_equal(rewrites(f, &r), 0);
	logdb_wait_compactions(f->db); /* checkpoints too */
	int n = segments(f, 0, starts, 64);
	if (n > 4 || starts[n - 1] < 60 * (64 << 10))
		fail_msg("expected at most 4 segment files, the last past 60 segments, got %d, "
		         "the last at %" PRIu64,
		         n, starts[n - 1]);
	for (int i = 0; i < n; i++) {
		char path[400];
		struct stat st;
		snprintf(path, sizeof(path), "%s/journal-0/%016" PRIx64 ".jnl", f->dir, starts[i]);
		assert_int_equal(stat(path, &st), 0);
		if (st.st_size > 64 << 10)
			fail_msg("%s has %lld bytes, more than a segment", path,
			         (long long)st.st_size);
	}
	expect_entries(f, 4, 1, 4, 1, 50 << 10);
	expect_rewrites(f, 300);

	crash_after(f, "rewrite_saves", 301, 400);
	fx_open(f);
	expect_rewrites(f, 400);
	char tmp[400];
	snprintf(tmp, sizeof(tmp), "%s/journal-0/CHECKPOINT.tmp", f->dir);
	assert_int_equal(access(tmp, F_OK), -1);
	/* and once more from the state that replay left */
	crash_after(f, "rewrite_saves", 401, 450);
	fx_open(f);
	expect_rewrites(f, 450);

	/* damage in the live part of a recycled segment (not its tail) fails the open */
	crash_after(f, "tiny_saves", 1, 20);
	char ck[400], seg[400], want[64];
	unsigned long long lsn = 0;
	snprintf(ck, sizeof(ck), "%s/journal-0/CHECKPOINT", f->dir);
	FILE *fp = fopen(ck, "r");
	assert_non_null(fp);
	assert_int_equal(fscanf(fp, "dragonraft-journal %*u lsn=%llu", &lsn), 1);
	fclose(fp);
	n = segments(f, 0, starts, 64);
	int k = n - 1;
	while (k > 0 && starts[k] > lsn)
		k--;
	assert_true(starts[k] > 0); /* a segment in its second use or later */
	snprintf(seg, sizeof(seg), "%s/journal-0/%016" PRIx64 ".jnl", f->dir, starts[k]);
	size_t offs[64], size;
	int nrec;
	uint8_t *p = read_segment(seg, &size, starts[k], offs, &nrec);
	int live = 0;
	while (live < nrec && starts[k] + offs[live] < lsn)
		live++;
	assert_true(nrec - live >= 2);
	uint8_t c = p[offs[live] + LOGDB_JREC_HDR + 3] ^ 0x04;
	patch(seg, offs[live] + LOGDB_JREC_HDR + 3, &c, 1);
	snprintf(want, sizeof(want), "offset %zu", offs[live]);
	expect_open_corrupt(&f->cfg, seg + strlen(f->dir) + 1, want);
	patch(seg, 0, p, size);
	free(p);
	fx_open(f);
	expect_rewrites(f, 450);
	expect_entries(f, 3, 1, 20, 1, 16);
}

/* A crash after a batch reached the journal, before RocksDB had it: replayed. */
static int journal_only(struct fx *f, uint64_t a, uint64_t b)
{
	struct raft_entry e[3];
	uint8_t data[3][40], key[LOGDB_INDEX_KEY_LEN], rkey[LOGDB_KEY_LEN];
	struct logdb_buf v = {0};
	(void)a;
	(void)b;
	for (int i = 0; i < 3; i++) {
		fill(data[i], 40, 5, (uint64_t)i + 1, 2);
		e[i] = (struct raft_entry){
		        .term = 2, .index = (uint64_t)i + 1, .len = 40, .data = data[i]};
	}
	rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
	logdb_index_key(key, LOGDB_KIND_ENTRY, 5, 1, 1);
	if (logdb_encode_run(&v, key, sizeof(key), e, 3))
		return 1;
	rocksdb_writebatch_put(wb, (const char *)key, sizeof(key), (const char *)v.p, v.len);
	logdb_key(rkey, LOGDB_KIND_RANGE, 5, 1);
	if (logdb_encode_range(&v, rkey, sizeof(rkey), 1, 3))
		return 1;
	rocksdb_writebatch_put(wb, (const char *)rkey, sizeof(rkey), (const char *)v.p, v.len);
	struct shard *s = logdb_shard(f->db, 5);
	pthread_mutex_lock(&s->lock);
	int rc = logdb_journal_append(f->db, s, wb, true);
	pthread_mutex_unlock(&s->lock);
	return rc;
}

static void test_journal_before_rocksdb(void **state)
{
	struct fx *f = *state;
	crash_after(f, "journal_only", 0, 0);
	fx_open(f);
	expect_entries(f, 5, 1, 3, 2, 40);
}

/* What an older build left in RocksDB's own WAL is kept, and the journal goes on after it. */
static void old_wal_write(rocksdb_t *r, void *arg)
{
	struct raft_entry e[4];
	uint8_t data[4][32], key[LOGDB_INDEX_KEY_LEN], rkey[LOGDB_KEY_LEN];
	struct logdb_buf v = {0};
	char *err = NULL;
	(void)arg;
	for (int i = 0; i < 4; i++) {
		fill(data[i], 32, 9, (uint64_t)i + 1, 1);
		e[i] = (struct raft_entry){
		        .term = 1, .index = (uint64_t)i + 1, .len = 32, .data = data[i]};
	}
	rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
	rocksdb_writeoptions_set_sync(wo, 1);
	logdb_index_key(key, LOGDB_KIND_ENTRY, 9, 1, 1);
	assert_int_equal(logdb_encode_run(&v, key, sizeof(key), e, 4), 0);
	rocksdb_put(r, wo, (const char *)key, sizeof(key), (const char *)v.p, v.len, &err);
	assert_null(err);
	logdb_key(rkey, LOGDB_KIND_RANGE, 9, 1);
	assert_int_equal(logdb_encode_range(&v, rkey, sizeof(rkey), 1, 4), 0);
	rocksdb_put(r, wo, (const char *)rkey, sizeof(rkey), (const char *)v.p, v.len, &err);
	assert_null(err);
	rocksdb_writeoptions_destroy(wo);
	logdb_buf_free(&v);
}

static int tiny_saves(struct fx *f, uint64_t a, uint64_t b)
{
	for (uint64_t i = a; i <= b; i++)
		if (append(f, 3, i, i, 1, 16, NULL) != LOGDB_OK)
			return 1;
	return 0;
}

static int four_more(struct fx *f, uint64_t a, uint64_t b)
{
	(void)a;
	(void)b;
	return append(f, 9, 5, 8, 1, 32, NULL);
}

static void test_journal_after_old_wal(void **state)
{
	struct fx *f = *state;
	poke(f, 9, old_wal_write, NULL); /* left in the WAL: RocksDB closes without a flush */
	expect_entries(f, 9, 1, 4, 1, 32);
	crash_after(f, "four_more", 0, 0);
	fx_open(f);
	expect_entries(f, 9, 1, 8, 1, 32);
}

/*
 * The first failed write (here a file size limit: EFBIG, as ENOSPC on a
 * full disk) stops the LogDB: later writes to any shard, flushes and
 * compactions are refused without calling RocksDB, no abort, reads go on;
 * after a reopen everything acknowledged is there.
 */
static void test_write_failure_stops(void **state)
{
	struct fx *f = *state;
	struct rlimit old, lim;
	int acked = 0, rc = LOGDB_OK;
	uint64_t other = 2;
	while (logdb_shard_of(f->db, other) == logdb_shard_of(f->db, 1))
		other++;
	CHECK_RC(f, append(f, other, 1, 3, 1, 10, NULL), LOGDB_OK);
	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = 1 << 20;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	for (; acked < 200; acked++) {
		rc = append(f, 1, (uint64_t)acked * 4 + 1, (uint64_t)acked * 4 + 4, 1, 4096, NULL);
		if (rc != LOGDB_OK)
			break;
	}
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, SIG_DFL);
	if (rc != LOGDB_ERR_IO)
		fail_msg("expected a failed save within 200 saves of 16 KiB under a 1 MiB file "
		         "limit, got %s after %d",
		         logdb_strerror(rc), acked);
	expect_msg(f, "the LogDB stopped", NULL);
	/* with room again, nothing more is written, in any shard */
	CHECK_RC(f, append(f, other, 4, 4, 1, 10, NULL), LOGDB_ERR_IO);
	expect_msg(f, "stopped after a write failure", "the journal of LogDB shard");
	struct logdb_bootstrap bs;
	make_bootstrap(&bs, other);
	CHECK_RC(f, logdb_save_bootstrap(f->db, other, 1, &bs), LOGDB_ERR_IO);
	CHECK_RC(f, logdb_flush(f->db), LOGDB_ERR_IO);
	CHECK_RC(f, logdb_compact_entries_to(f->db, other, 1, 2), LOGDB_ERR_IO);
	/* not busy: waiting would not help, the next save fails with the cause */
	assert_false(logdb_busy(f->db, other));
	/* reads go on */
	expect_entries(f, other, 1, 3, 1, 10);
	if (acked > 0)
		expect_entries(f, 1, 1, (uint64_t)acked * 4, 1, 4096);
	/* a reopened LogDB has every acknowledged save and takes writes again */
	fx_reopen(f);
	struct logdb_raft_state rs;
	if (acked > 0) {
		CHECK_RC(f, logdb_read_state(f->db, 1, 1, &rs), LOGDB_OK);
		if (rs.first_index + rs.entry_count - 1 < (uint64_t)acked * 4)
			fail_msg("acknowledged entries up to %d lost: last index %" PRIu64
			         " after reopen",
			         acked * 4, rs.first_index + rs.entry_count - 1);
		expect_entries(f, 1, 1, (uint64_t)acked * 4, 1, 4096);
	}
	CHECK_RC(f, append(f, other, 4, 4, 1, 10, NULL), LOGDB_OK);
	expect_entries(f, other, 1, 4, 1, 10);
}

/*
 * The journal's own failures stop the LogDB too, under a file size limit
 * (EFBIG, as ENOSPC on a full disk): a record written short (a torn record
 * on disk, dropped at the reopen), and no room for a new segment (a batch
 * larger than a segment gets one of its own size).  Every acknowledged save
 * is there after a reopen.
 */
static int limited_saves(struct fx *f, rlim_t limit, uint32_t len, uint64_t *acked)
{
	struct rlimit old, lim;
	int rc = LOGDB_OK;
	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = limit;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	for (int i = 0; i < 100 && rc == LOGDB_OK; i++)
		if ((rc = append(f, 1, *acked + 1, *acked + 4, 1, len, NULL)) == LOGDB_OK)
			*acked += 4;
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, SIG_DFL);
	return rc;
}

static void test_journal_write_failures(void **state)
{
	struct fx *f = *state;
	uint64_t acked = 0;
	f->cfg.shards = 1;
	f->cfg.journal_segment = 64 << 10;
	fx_recreate(f);
	/* the first save zero-fills the whole first segment */
	CHECK_RC(f, append(f, 1, 1, 4, 1, 1000, NULL), LOGDB_OK);
	acked = 4;
	CHECK_RC(f, limited_saves(f, 40000, 1000, &acked), LOGDB_ERR_IO);
	expect_msg(f, "short write", "the LogDB stopped");
	expect_msg(f, "writing the journal of LogDB shard 0", "0000000000000000.jnl");
	assert_true(acked > 4);
	fx_reopen(f);
	expect_entries(f, 1, 1, acked, 1, 1000);

	/*
	 * segments of 64 KiB fill up (the limit leaves room for RocksDB's
	 * files); then a 1.2 MiB batch needs a segment of its own
	 */
	CHECK_RC(f, limited_saves(f, 1 << 20, 1000, &acked), LOGDB_OK);
	CHECK_RC(f, limited_saves(f, 1 << 20, 300 << 10, &acked), LOGDB_ERR_IO);
	expect_msg(f, "zero-filling the journal of LogDB shard 0", "File too large");
	CHECK_RC(f, append(f, 1, acked + 1, acked + 1, 1, 1000, NULL), LOGDB_ERR_IO);
	fx_reopen(f);
	expect_entries(f, 1, 1, acked, 1, 1000);
	CHECK_RC(f, append(f, 1, acked + 1, acked + 1, 1, 1000, NULL), LOGDB_OK);
}

/*
 * A failed fdatasync of the journal (as Linux reports a lost writeback once:
 * the next one would succeed) stops the LogDB: the save fails, nothing is
 * retried, later saves are refused; a reopen has every acknowledged save.
 * fdatasync and pwritev2 are interposed here (the journal's and RocksDB's
 * calls reach them): a synced record is written with pwritev2(RWF_DSYNC)
 * when nothing else is dirty, so its failed sync is one of that call.
 */
static atomic_int fail_next_fdatasync;
static atomic_int fdatasyncs; /* calls so far */

/*
 * A lost writeback of a journal segment as Linux reports it (errseq): once to
 * each open file description of the file, at its next fdatasync, whichever
 * descriptor of it asks (dup()s share one).  A description is told apart by
 * its file offset, which the journal never uses (pwrite only): 0 when new,
 * then WB_TAG + its number here.  The background sync's fdatasync that
 * reports it waits for wb_release (test_background_sync_error_reaches_writer).
 */
#define WB_TAG 4096
static atomic_int wb_error; /* armed */
static int wb_seen[16], wb_n;
static pthread_mutex_t wb_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wb_cond = PTHREAD_COND_INITIALIZER;
static bool wb_held, wb_release;
static _Thread_local bool wb_bg; /* the background sync's thread */

static bool wb_report(int fd)
{
	char link[64], path[512];
	ssize_t n;
	off_t off;
	bool report = false;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, path, sizeof(path) - 1);
	if (n <= 0)
		return false;
	path[n] = '\0';
	if (strstr(path, "/journal-") == NULL || strstr(path, ".jnl") == NULL)
		return false; /* RocksDB's files, CHECKPOINT */
	pthread_mutex_lock(&wb_lock);
	off = lseek(fd, 0, SEEK_CUR);
	if (off < WB_TAG && wb_n < 16) {
		off = WB_TAG + wb_n;
		wb_seen[wb_n++] = 0;
		lseek(fd, off, SEEK_SET);
	}
	if (off >= WB_TAG && off < WB_TAG + wb_n && !wb_seen[off - WB_TAG]) {
		wb_seen[off - WB_TAG] = 1;
		report = true;
	}
	if (report && wb_bg) {
		wb_held = true;
		pthread_cond_broadcast(&wb_cond);
		while (!wb_release)
			pthread_cond_wait(&wb_cond, &wb_lock);
	}
	pthread_mutex_unlock(&wb_lock);
	return report;
}

int fdatasync(int fd)
{
	atomic_fetch_add(&fdatasyncs, 1);
	if (atomic_exchange(&fail_next_fdatasync, 0) || (atomic_load(&wb_error) && wb_report(fd))) {
		errno = EIO;
		return -1;
	}
	return (int)syscall(SYS_fdatasync, fd);
}

ssize_t pwritev2(int fd, const struct iovec *iov, int iovcnt, off_t offset, int flags)
{
	if ((flags & RWF_DSYNC) && atomic_exchange(&fail_next_fdatasync, 0)) {
		/* written, then the sync failed */
		if (pwritev(fd, iov, iovcnt, offset) < 0)
			return -1;
		errno = EIO;
		return -1;
	}
	return (ssize_t)syscall(SYS_pwritev2, fd, iov, iovcnt, (unsigned long)offset,
	                        (unsigned long)((uint64_t)offset >> 32), flags);
}

static void test_journal_sync_failure(void **state)
{
	struct fx *f = *state;
	CHECK_RC(f, append(f, 1, 1, 4, 1, 100, NULL), LOGDB_OK);
	atomic_store(&fail_next_fdatasync, 1);
	CHECK_RC(f, append(f, 1, 5, 8, 1, 100, NULL), LOGDB_ERR_IO);
	assert_int_equal(atomic_load(&fail_next_fdatasync), 0);
	expect_msg(f, "syncing the journal of LogDB shard 1", "Input/output error");
	CHECK_RC(f, append(f, 1, 5, 8, 1, 100, NULL), LOGDB_ERR_IO);
	expect_msg(f, "stopped after a write failure", "syncing the journal");
	fx_reopen(f);
	expect_entries(f, 1, 1, 4, 1, 100);
	CHECK_RC(f, append(f, 1, 5, 8, 1, 100, NULL), LOGDB_OK);
}

/*
 * logdb_sync (deferred leader syncs): unsynced saves, then one sync of each
 * written journal; a journal nothing was written to since is clean again,
 * so the next synced record needs no fdatasync (RWF_DSYNC).  A failed sync
 * stops the LogDB like a failed synced save.
 */
static void test_background_sync(void **state)
{
	struct fx *f = *state;
	int before;

	CHECK_RC(f, save_entries(f, 1, 1, 4, 1, 100, NULL, false), LOGDB_OK);
	CHECK_RC(f, save_entries(f, 2, 1, 4, 1, 100, NULL, false), LOGDB_OK);
	before = atomic_load(&fdatasyncs);
	CHECK_RC(f, logdb_sync(f->db), LOGDB_OK);
	assert_int_equal(atomic_load(&fdatasyncs) - before, 2); /* groups 1 and 2: two shards */
	before = atomic_load(&fdatasyncs);
	CHECK_RC(f, logdb_sync(f->db), LOGDB_OK);
	CHECK_RC(f, append(f, 1, 5, 6, 1, 100, NULL), LOGDB_OK); /* clean: RWF_DSYNC */
	assert_int_equal(atomic_load(&fdatasyncs), before);
	CHECK_RC(f, save_entries(f, 1, 7, 8, 1, 100, NULL, false), LOGDB_OK);
	atomic_store(&fail_next_fdatasync, 1);
	CHECK_RC(f, logdb_sync(f->db), LOGDB_ERR_IO);
	expect_msg(f, "syncing the journal of LogDB shard", "Input/output error");
	CHECK_RC(f, append(f, 1, 9, 9, 1, 100, NULL), LOGDB_ERR_IO);
	CHECK_RC(f, logdb_sync(f->db), LOGDB_ERR_IO);
	fx_reopen(f);
	expect_entries(f, 1, 1, 8, 1, 100); /* (the process lived: written is kept) */
	expect_entries(f, 2, 1, 4, 1, 100);
}

static void *wb_sync_main(void *arg)
{
	wb_bg = true;
	return (void *)(intptr_t)logdb_sync(arg);
}

/*
 * The background sync and a synced save at once, and a writeback of the
 * journal was lost: the save's own fdatasync must fail too.  Linux reports
 * the error once per open file description; a background sync through a
 * dup() of the writer's descriptor took it, and the save then succeeded
 * over a journal that was no longer a prefix (an earlier write lost, its
 * group's later synced save taken for covering it).
 */
static void test_background_sync_error_reaches_writer(void **state)
{
	struct fx *f = *state;
	pthread_t t;
	void *ret;

	CHECK_RC(f, save_entries(f, 1, 1, 4, 1, 100, NULL, false), LOGDB_OK);
	wb_n = 0;
	wb_held = wb_release = false;
	atomic_store(&wb_error, 1);
	assert_int_equal(pthread_create(&t, NULL, wb_sync_main, f->db), 0);
	pthread_mutex_lock(&wb_lock);
	while (!wb_held)
		pthread_cond_wait(&wb_cond, &wb_lock);
	pthread_mutex_unlock(&wb_lock);
	/* (The background sync took the error, and has not stopped the LogDB yet.) */
	int rc = append(f, 1, 5, 6, 1, 100, NULL);
	pthread_mutex_lock(&wb_lock);
	wb_release = true;
	pthread_cond_broadcast(&wb_cond);
	pthread_mutex_unlock(&wb_lock);
	assert_int_equal(pthread_join(t, &ret), 0);
	atomic_store(&wb_error, 0);
	assert_int_equal((int)(intptr_t)ret, LOGDB_ERR_IO);
	CHECK_RC(f, rc, LOGDB_ERR_IO);
}

struct sync_loop {
	struct logdb *db;
	atomic_int stop;
	int rc;
	atomic_uint n;
};

static void *sync_loop_main(void *arg)
{
	struct sync_loop *s = arg;

	while (!atomic_load(&s->stop) && s->rc == LOGDB_OK) {
		s->rc = logdb_sync(s->db);
		atomic_fetch_add(&s->n, 1);
	}
	return NULL;
}

/* Syncs on another thread while saves go on (segments switch under it). */
static void test_background_sync_concurrent(void **state)
{
	struct fx *f = *state;
	struct sync_loop s;
	pthread_t t;

	fx_close(f);
	f->cfg.journal_segment = 64 << 10;
	fx_open(f);
	memset(&s, 0, sizeof(s));
	s.db = f->db;
	assert_int_equal(pthread_create(&t, NULL, sync_loop_main, &s), 0);
	for (uint64_t i = 0; i < 400; i++)
		CHECK_RC(f, save_entries(f, 1 + i % 3, 1 + i / 3 * 4, 4 + i / 3 * 4, 1, 3000, NULL,
		                         i % 7 == 0),
		         LOGDB_OK);
	while (atomic_load(&s.n) < 2)
		sched_yield(); /* (it synced while saves went on, and after them) */
	atomic_store(&s.stop, 1);
	pthread_join(t, NULL);
	assert_int_equal(s.rc, LOGDB_OK);
	fx_reopen(f);
	for (uint64_t g = 1; g <= 3; g++)
		expect_entries(f, g, 1, 4 + 399 / 3 * 4 - (g > 1 + 399 % 3 ? 4 : 0), 1, 3000);
}

/* ---- allocation failures ------------------------------------------------ */

static int alloc_budget = -1; /* allocations left before failing; -1 = unlimited */

static bool allowed(void)
{
	if (alloc_budget < 0)
		return true;
	if (alloc_budget == 0)
		return false;
	alloc_budget--;
	return true;
}

static void *t_malloc(size_t n)
{
	return allowed() ? malloc(n) : NULL;
}

static void *t_realloc(void *p, size_t n)
{
	return allowed() ? realloc(p, n) : NULL;
}

static const struct logdb_alloc failing = {t_malloc, t_realloc, free};

static void test_alloc_failures(void **state)
{
	struct fx *f = *state;
	fx_close(f);
	f->cfg.alloc = &failing;
	/* open fails cleanly at every allocation until it has enough */
	int budget = 0;
	for (;; budget++) {
		struct logdb *db;
		char err[256];
		alloc_budget = budget;
		int rc = logdb_open(&f->cfg, &db, err, sizeof(err));
		alloc_budget = -1;
		if (rc == LOGDB_OK) {
			logdb_close(db);
			break;
		}
		assert_int_equal(rc, LOGDB_ERR_NOMEM);
		assert_true(budget < 100);
	}
	fx_open(f);
	/* a save fails with NOMEM and leaves nothing half done */
	struct logdb_worker *w2;
	alloc_budget = 0;
	CHECK_RC(f, logdb_worker_create(f->db, &w2), LOGDB_ERR_NOMEM);
	alloc_budget = 0;
	CHECK_RC(f, append(f, 1, 1, 3, 1, 10, NULL), LOGDB_ERR_NOMEM);
	alloc_budget = -1;
	struct logdb_raft_state rs;
	CHECK_RC(f, logdb_read_state(f->db, 1, 1, &rs), LOGDB_ERR_NOT_FOUND);
	CHECK_RC(f, append(f, 1, 1, 3, 1, 10, NULL), LOGDB_OK);
	expect_entries(f, 1, 1, 3, 1, 10);
}

/* test_logdb --child STEP DIR SHARDS SEGMENT A B: a crash_after() child. */
static int child_main(char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(struct fx *f, uint64_t a, uint64_t b);
	} steps[] = {
	        {"six_saves", six_saves},         {"six_saves_after_torn", six_saves_after_torn},
	        {"rewrite_saves", rewrite_saves}, {"journal_only", journal_only},
	        {"four_more", four_more},         {"tiny_saves", tiny_saves}};
	static struct fx f;
	char err[512];
	snprintf(f.dir, sizeof(f.dir), "%s", argv[3]);
	f.cfg.dir = f.dir;
	f.cfg.shards = (unsigned)atoi(argv[4]);
	f.cfg.journal_segment = strtoull(argv[5], NULL, 10);
	if (logdb_open(&f.cfg, &f.db, err, sizeof(err)) != LOGDB_OK ||
	    logdb_worker_create(f.db, &f.w) != LOGDB_OK) {
		fprintf(stderr, "child: %s\n", err);
		return 2;
	}
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++)
		if (strcmp(argv[2], steps[i].name) == 0)
			return steps[i].fn(&f, strtoull(argv[6], NULL, 10),
			                   strtoull(argv[7], NULL, 10))
			               ? 1
			               : 0;
	return 4;
}

int main(int argc, char **argv)
{
	if (argc == 8 && strcmp(argv[1], "--child") == 0)
		_exit(child_main(argv)); /* a crash: no close, no flush */
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_crc32c),
	        cmocka_unit_test(test_codec_detects_every_flip),
	        cmocka_unit_test(test_codec_bootstrap_old_record),
	        cmocka_unit_test_setup_teardown(test_runs, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_restart_persistence, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_shard_count_recorded, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_overwrite_on_conflict, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_iteration_bounds, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_remove_and_compact, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_snapshot_metadata, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_snapshot_in_save, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_snapshot_install_truncates, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_recovery_marker, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_many_groups_across_shards, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_hard_state_cache_skips_unchanged, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_bootstrap_and_nodes, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_remove_node_data, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_import_snapshot, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_invalid_updates, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_busy_signal, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_busy_signal_background_flushes, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_wal_dir, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_concurrent_workers, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_bad_data_on_disk, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_byte_limit_reads_no_further, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_journal_damage, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_journal_tail_reported, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_journal_recycles, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_journal_before_rocksdb, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_journal_after_old_wal, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_journal_write_failures, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_journal_sync_failure, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_background_sync, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_background_sync_concurrent, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_background_sync_error_reaches_writer, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_write_failure_stops, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_alloc_failures, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
