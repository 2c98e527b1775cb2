/*
 * test_logdb_journal.c - damage to a LogDB journal that is not a torn tail
 * fails the open with LOGDB_ERR_CORRUPT, naming what is wrong, instead of
 * opening with a silently shorter (or older) log: a changed CHECKPOINT, a
 * missing, emptied or renamed segment, a damaged last record of a segment
 * that a later segment follows, a record moved from a later position, a
 * deleted or stale journal directory.  Also: an older CHECKPOINT (version 1)
 * is still read, and the open unlinks no segment file.
 *
 * Each case starts from a journal that a clean close left (CHECKPOINT at
 * its end) with 64 KiB segments that went round several times, damages it
 * as a disk, a person or a restore could, and opens it.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "logdb/logdb.h"
#include "logdb/logdb_codec.h"
#include "logdb_test_util.h"

#define SEG     (64u << 10)
#define ENTRIES 600 /* of 200 bytes, one save each: about 6 segments */

struct fx {
	char dir[256], jdir[300];
	struct logdb_config cfg;
};

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void fill(uint8_t *p, uint64_t idx)
{
	for (int i = 0; i < 200; i++)
		p[i] = (uint8_t)(idx * 31 + (uint64_t)i);
}

static struct logdb *open_ok(struct fx *f)
{
	struct logdb *db;
	char err[512];
	int rc = logdb_open(&f->cfg, &db, err, sizeof(err));
	if (rc)
		fail_msg("logdb_open(%s) = %s: %s", f->dir, logdb_strerror(rc), err);
	return db;
}

/* Synced saves of group 1's entries [lo, hi], one each, with commit = index; close. */
static void save(struct fx *f, uint64_t lo, uint64_t hi)
{
	struct logdb *db = open_ok(f);
	struct logdb_worker *w;
	uint8_t buf[200];
	assert_int_equal(logdb_worker_create(db, &w), LOGDB_OK);
	for (uint64_t i = lo; i <= hi; i++) {
		fill(buf, i);
		struct raft_entry e = {.term = 1, .index = i, .len = 200, .data = buf};
		struct logdb_update u = {.group_id = 1,
		                         .node_id = 1,
		                         .hard_state_changed = true,
		                         .hard_state = {.term = 1, .vote = 1, .commit = i},
		                         .n_entries = 1,
		                         .entries = &e};
		assert_int_equal(logdb_save(w, &u, 1, true), LOGDB_OK);
		if (i % 50 == 0)
			logdb_wait_compactions(db); /* and checkpoints: segments get reused */
	}
	logdb_worker_destroy(w);
	logdb_close(db);
}

/* The open keeps every entry 1..last, committed. */
static void expect_log(struct fx *f, uint64_t last)
{
	struct logdb *db = open_ok(f);
	struct logdb_raft_state rs;
	struct logdb_entries ents = {0};
	uint8_t buf[200];
	assert_int_equal(logdb_read_state(db, 1, 1, &rs), LOGDB_OK);
	assert_int_equal(rs.first_index, 1);
	assert_int_equal(rs.entry_count, last);
	assert_int_equal(rs.hard_state.commit, last);
	assert_int_equal(logdb_iterate_entries(db, 1, 1, 1, last + 1, UINT64_MAX, &ents), LOGDB_OK);
	assert_int_equal(ents.n, last);
	for (uint32_t i = 0; i < ents.n; i++) {
		fill(buf, i + 1);
		assert_int_equal(ents.ents[i].len, 200);
		assert_memory_equal(ents.ents[i].data, buf, 200);
	}
	logdb_entries_free(db, &ents);
	logdb_close(db);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_logdb_journal.XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->jdir, sizeof(f->jdir), "%s/journal-0", f->dir);
	f->cfg.dir = f->dir;
	f->cfg.shards = 1;
	f->cfg.journal_segment = SEG;
	save(f, 1, ENTRIES);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	nftw(f->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

/* The segment files (start LSNs, ascending); their count. */
static int segments(struct fx *f, uint64_t *starts, int max)
{
	return journal_segments(f->jdir, starts, max);
}

static void seg_path(struct fx *f, char *buf, size_t len, uint64_t start)
{
	snprintf(buf, len, "%s/%016" PRIx64 ".jnl", f->jdir, start);
}

static uint8_t *read_file(const char *path, size_t *size)
{
	struct stat st;
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	uint8_t *p = malloc((size_t)st.st_size + 1);
	assert_int_equal(pread(fd, p, (size_t)st.st_size, 0), st.st_size);
	close(fd);
	*size = (size_t)st.st_size;
	p[*size] = 0;
	return p;
}

static void write_file(const char *path, size_t off, const void *bytes, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, bytes, n, (off_t)off), (ssize_t)n);
	close(fd);
}

/* The checkpoint's LSN and segment (version 1 names none: the newest one). */
static uint64_t ckpt_lsn(struct fx *f, uint64_t *seg)
{
	char path[400];
	size_t size;
	unsigned long long lsn = 0, s = 0;
	uint64_t starts[16];
	snprintf(path, sizeof(path), "%s/CHECKPOINT", f->jdir);
	char *p = (char *)read_file(path, &size);
	int n = sscanf(p, "dragonraft-journal %*u lsn=%llu seg=%llx", &lsn, &s);
	assert_true(n >= 1);
	free(p);
	*seg = n == 2 ? s : starts[segments(f, starts, 16) - 1];
	return lsn;
}

/* Offsets of the valid records of the segment at start; their count. */
static int records(const uint8_t *p, size_t size, uint64_t start, size_t *offs, int max)
{
	const uint8_t *body;
	uint32_t len;
	int n = 0;
	for (size_t off = 0; logdb_jrec_read(p, size, start, off, &body, &len) == LOGDB_JREC_VALID;
	     off += logdb_jrec_size(len)) {
		assert_true(n < max);
		offs[n++] = off;
	}
	return n;
}

static void write_ckpt_line(struct fx *f, const char *line)
{
	char path[400];
	snprintf(path, sizeof(path), "%s/CHECKPOINT", f->jdir);
	assert_int_equal(truncate(path, 0), 0);
	write_file(path, 0, line, strlen(line));
}

/* A version 2 CHECKPOINT line for lsn, seg, rec with a correct checksum. */
static void ckpt_v2(char *line, size_t len, uint64_t lsn, uint64_t seg, int rec)
{
	int n = snprintf(line, len,
	                 "dragonraft-journal 2 lsn=%" PRIu64 " seg=%016" PRIx64 " rec=%d", lsn, seg,
	                 rec);
	snprintf(line + n, len - (size_t)n, " crc=%08" PRIx32 "\n", dr_crc32c(0, line, (size_t)n));
}

/* The setup's journal opens whole, went round its segments, and nothing changes. */
static void test_control(void **state)
{
	struct fx *f = *state;
	uint64_t starts[16], seg;
	int n = segments(f, starts, 16);
	assert_true(n >= 2 && starts[0] > 0); /* recycled */
	uint64_t lsn = ckpt_lsn(f, &seg);
	assert_int_equal(seg, starts[n - 1]);
	assert_true(lsn > seg);
	expect_log(f, ENTRIES);
	save(f, ENTRIES + 1, ENTRIES + 10);
	expect_log(f, ENTRIES + 10);
}

/* D1: a changed digit of CHECKPOINT fails its checksum; a valid line at a wrong LSN fails too. */
static void test_checkpoint_changed(void **state)
{
	struct fx *f = *state;
	char path[400], line[128];
	size_t size;
	uint64_t seg, lsn = ckpt_lsn(f, &seg);
	snprintf(path, sizeof(path), "%s/CHECKPOINT", f->jdir);
	char *orig = (char *)read_file(path, &size);
	char *d = strstr(orig, "lsn=") + 4;
	for (int i = 0; d[i] >= '0' && d[i] <= '9'; i++) {
		char *p = strdup(orig);
		p[d - orig + i] = p[d - orig + i] == '9' ? '1' : (char)(p[d - orig + i] + 1);
		write_ckpt_line(f, p);
		expect_open_corrupt(&f->cfg, "journal-0/CHECKPOINT is damaged", "checksum");
		free(p);
	}
	/* a well-formed checkpoint at a record boundary of the segment, not its end */
	char sp[400];
	size_t offs[512];
	seg_path(f, sp, sizeof(sp), seg);
	uint8_t *p = read_file(sp, &size);
	int n = records(p, size, seg, offs, 512);
	assert_true(n >= 2 && seg + offs[n - 1] < lsn);
	free(p);
	ckpt_v2(line, sizeof(line), seg + offs[n - 1] - 8, seg, 0); /* inside a record */
	write_ckpt_line(f, line);
	expect_open_corrupt(&f->cfg, "CHECKPOINT", "a record of the segment spans it");
	ckpt_v2(line, sizeof(line), lsn + 4096, seg, 0); /* past the end */
	write_ckpt_line(f, line);
	expect_open_corrupt(&f->cfg, "CHECKPOINT", "records stop before it");
	ckpt_v2(line, sizeof(line), lsn, seg, 1); /* claims a record at the end */
	write_ckpt_line(f, line);
	expect_open_corrupt(&f->cfg, "CHECKPOINT", "written before it, is missing");
	write_ckpt_line(f, orig);
	free(orig);
	expect_log(f, ENTRIES);
}

/* A version 1 CHECKPOINT (older build) is read, and rewritten as version 2. */
static void test_checkpoint_version1(void **state)
{
	struct fx *f = *state;
	char line[128];
	uint64_t seg, lsn = ckpt_lsn(f, &seg);
	snprintf(line, sizeof(line), "dragonraft-journal 1 lsn=%" PRIu64 "\n", lsn);
	write_ckpt_line(f, line);
	expect_log(f, ENTRIES);
	uint64_t seg2, lsn2 = ckpt_lsn(f, &seg2);
	assert_int_equal(lsn2, lsn);
	assert_int_equal(seg2, seg);
}

/* D2: the checkpoint's segment deleted, emptied, renamed; never unlinked at open. */
static void test_newest_segment_lost(void **state)
{
	struct fx *f = *state;
	char sp[400], moved[400], want[64];
	size_t size;
	uint64_t starts[16], seg;
	uint64_t lsn = ckpt_lsn(f, &seg);
	seg_path(f, sp, sizeof(sp), seg);
	uint8_t *p = read_file(sp, &size);
	snprintf(want, sizeof(want), "%016" PRIx64 ".jnl", seg);

	assert_int_equal(unlink(sp), 0);
	expect_open_corrupt(&f->cfg, "names the segment it is in, which is missing", want);

	write_file(sp, 0, "", 0); /* empty */
	expect_open_corrupt(&f->cfg, want, "the segment's records stop before it");

	/* renamed to a later name: missing, and the renamed file stays */
	seg_path(f, moved, sizeof(moved), lsn + SEG);
	write_file(moved, 0, p, size);
	assert_int_equal(unlink(sp), 0);
	expect_open_corrupt(&f->cfg, "which is missing", want);
	assert_int_equal(access(moved, F_OK), 0);

	/* ... also when CHECKPOINT has no segment name (version 1): the rename is a gap */
	char line[128];
	snprintf(line, sizeof(line), "dragonraft-journal 1 lsn=%" PRIu64 "\n", seg);
	write_ckpt_line(f, line);
	expect_open_corrupt(&f->cfg, "later segment", "exists");
	assert_int_equal(access(moved, F_OK), 0);
	int n = segments(f, starts, 16);
	assert_int_equal(starts[n - 1], lsn + SEG);
	free(p);
}

/* D3: a damaged last record of a segment while a later (empty) segment exists. */
static void test_damage_before_later_segment(void **state)
{
	struct fx *f = *state;
	char sp[400], next[400], line[128], want[64];
	size_t size, offs[512];
	uint64_t seg, lsn = ckpt_lsn(f, &seg);
	seg_path(f, sp, sizeof(sp), seg);
	uint8_t *p = read_file(sp, &size);
	int n = records(p, size, seg, offs, 512);
	assert_int_equal(
	        seg + offs[n - 1] +
	                logdb_jrec_size(p[offs[n - 1] + 4] | (uint32_t)p[offs[n - 1] + 5] << 8),
	        lsn);
	/* the writer switched at the end (the new segment is empty), and the replay starts earlier
	 */
	seg_path(f, next, sizeof(next), lsn);
	write_file(next, 0, "", 0);
	snprintf(line, sizeof(line), "dragonraft-journal 1 lsn=%" PRIu64 "\n", seg);
	write_ckpt_line(f, line);
	/*
	 * undamaged, it replays into the empty segment; CHECKPOINT is then behind
	 * the shard's marker, as after a crash between a flush and CHECKPOINT
	 */
	expect_log(f, ENTRIES);
	write_ckpt_line(f, line);
	uint8_t c = p[offs[n - 1] + LOGDB_JREC_HDR + 7] ^ 0x20;
	write_file(sp, offs[n - 1] + LOGDB_JREC_HDR + 7, &c, 1);
	snprintf(want, sizeof(want), "offset %zu", offs[n - 1]);
	expect_open_corrupt(&f->cfg, want, "later segment");
	assert_int_equal(access(next, F_OK), 0);
	free(p);
}

/* A whole record with a later LSN than its position (moved) after the end is damage. */
static void test_moved_record(void **state)
{
	struct fx *f = *state;
	char sp[400], want[64];
	size_t size, offs[512];
	uint64_t seg, lsn = ckpt_lsn(f, &seg);
	seg_path(f, sp, sizeof(sp), seg);
	uint8_t *p = read_file(sp, &size);
	int n = records(p, size, seg, offs, 512);
	assert_true(n >= 1);
	/* the first record of the segment, as if at LSN lsn + 4096, written 64 bytes after the end
	 */
	uint32_t len = (uint32_t)p[offs[0] + 4] | (uint32_t)p[offs[0] + 5] << 8 |
	               (uint32_t)p[offs[0] + 6] << 16;
	size_t at = (size_t)(lsn - seg) + 64;
	assert_true(at + LOGDB_JREC_HDR + len <= size);
	uint8_t hdr[LOGDB_JREC_HDR];
	logdb_jrec_header(hdr, lsn + 4096, p + LOGDB_JREC_HDR, len);
	write_file(sp, at, hdr, sizeof(hdr));
	write_file(sp, at + LOGDB_JREC_HDR, p + LOGDB_JREC_HDR, len);
	snprintf(want, sizeof(want), "offset %zu", at);
	expect_open_corrupt(&f->cfg, "its LSN is not its position and not below the checkpoint",
	                    want);
	/* the same record with an LSN below the checkpoint is of an earlier use: the end */
	logdb_jrec_header(hdr, seg - SEG, p + LOGDB_JREC_HDR, len);
	write_file(sp, at, hdr, sizeof(hdr));
	expect_log(f, ENTRIES);
	free(p);
}

/* D2d, D4: a deleted journal directory, and an older copy of it, fail the open. */
static void test_journal_gone_or_stale(void **state)
{
	struct fx *f = *state;
	char cmd[1024];
	snprintf(cmd, sizeof(cmd), "cp -a %s %s.old", f->jdir, f->jdir);
	assert_int_equal(system(cmd), 0);
	save(f, ENTRIES + 1, ENTRIES + 300);
	snprintf(cmd, sizeof(cmd), "mv %s %s.new", f->jdir, f->jdir);
	assert_int_equal(system(cmd), 0);
	expect_open_corrupt(&f->cfg,
	                    "journal of LogDB shard 0 is missing, damaged or older than the shard",
	                    "ends at 0");
	snprintf(cmd, sizeof(cmd), "rm -rf %s && mv %s.old %s", f->jdir, f->jdir, f->jdir);
	assert_int_equal(system(cmd), 0);
	expect_open_corrupt(&f->cfg, "older than the shard", "checkpointed at LSN");
	snprintf(cmd, sizeof(cmd), "rm -rf %s && mv %s.new %s", f->jdir, f->jdir, f->jdir);
	assert_int_equal(system(cmd), 0);
	expect_log(f, ENTRIES + 300);
}

/* D5: CHECKPOINT deleted after the journal recycled: said so, no file invented. */
static void test_checkpoint_missing(void **state)
{
	struct fx *f = *state;
	char path[400];
	snprintf(path, sizeof(path), "%s/CHECKPOINT", f->jdir);
	assert_int_equal(unlink(path), 0);
	expect_open_corrupt(&f->cfg, "CHECKPOINT is missing or behind the oldest segment", ".jnl");
	struct logdb *db;
	char err[512];
	assert_int_equal(logdb_open(&f->cfg, &db, err, sizeof(err)), LOGDB_ERR_CORRUPT);
	assert_null(strstr(err, "0000000000000000.jnl"));
}

/* Lines the open logs (logdb_config.log_fn), one after another. */
struct captured {
	char text[4096];
	int warnings;
};

static void capture(void *ctx, int level, const char *msg)
{
	struct captured *c = ctx;
	size_t n = strlen(c->text);
	snprintf(c->text + n, sizeof(c->text) - n, "%s\n", msg);
	if (level == LOGDB_LOG_WARNING)
		c->warnings++;
}

/*
 * A checkpoint cut short: the shard was flushed with its marker at M, but
 * CHECKPOINT still says an earlier LSN (a crash between the flush and the
 * CHECKPOINT write), and then the last record below M was damaged at rest.
 * With more saves after M (records_after) the journal goes on past M.  The
 * copy of the shard taken at M stands for RocksDB after the crash: every
 * record below M in it (the marker is durable only with them), nothing
 * after.  Returns the offset of the damaged record in its segment.
 */
static size_t cut_short_then_damaged(struct fx *f, bool records_after, uint64_t *marker)
{
	char path[400], ckpt[128], cmd[1200], sp[400];
	size_t size, offs[512];
	uint64_t seg, m, starts[16];
	snprintf(path, sizeof(path), "%s/CHECKPOINT", f->jdir);
	uint8_t *old = read_file(path, &size);
	assert_true(size < sizeof(ckpt));
	memcpy(ckpt, old, size + 1);
	free(old);
	save(f, ENTRIES + 1, ENTRIES + 20);
	m = ckpt_lsn(f, &seg); /* the clean close's checkpoint: the marker too */
	snprintf(cmd, sizeof(cmd), "cp -a %s/shard-0 %s/shard-0.at-marker", f->dir, f->dir);
	assert_int_equal(system(cmd), 0);
	if (records_after)
		save(f, ENTRIES + 21, ENTRIES + 40);
	snprintf(cmd, sizeof(cmd), "rm -rf %s/shard-0 && mv %s/shard-0.at-marker %s/shard-0",
	         f->dir, f->dir, f->dir);
	assert_int_equal(system(cmd), 0);
	write_ckpt_line(f, ckpt);
	/* the record that ends at M, in the segment below M */
	int ns = segments(f, starts, 16), k = ns - 1;
	while (k > 0 && starts[k] >= m)
		k--;
	seg_path(f, sp, sizeof(sp), starts[k]);
	uint8_t *p = read_file(sp, &size);
	int n = records(p, size, starts[k], offs, 512), r = n - 1;
	while (r >= 0 &&
	       starts[k] + offs[r] +
	                       logdb_jrec_size(p[offs[r] + 4] | (uint32_t)p[offs[r] + 5] << 8) !=
	               m)
		r--;
	assert_true(r >= 0);
	uint8_t c = p[offs[r] + LOGDB_JREC_HDR + 7] ^ 0x20;
	write_file(sp, offs[r] + LOGDB_JREC_HDR + 7, &c, 1);
	free(p);
	*marker = m;
	return offs[r];
}

/*
 * Everything below the shard's marker is in RocksDB: a damaged record there,
 * with a whole record at the marker (this journal reached it), opens; the
 * WARNING names the record, and the log holds every entry.
 */
static void test_damaged_below_marker_opens(void **state)
{
	struct fx *f = *state;
	struct captured cap = {{0}, 0};
	char want[64];
	uint64_t m;
	size_t off = cut_short_then_damaged(f, true, &m);
	f->cfg.log_fn = capture;
	f->cfg.log_ctx = &cap;
	struct logdb *db = open_ok(f);
	logdb_close(db);
	snprintf(want, sizeof(want), "offset %zu", off);
	if (cap.warnings != 1 || strstr(cap.text, "below the shard's checkpoint marker") == NULL ||
	    strstr(cap.text, want) == NULL)
		fail_msg("expected one WARNING naming the record at %s below the marker, got: %s",
		         want, cap.text);
	/* said once: the open went on in a new segment, past the damage */
	memset(&cap, 0, sizeof(cap));
	logdb_close(open_ok(f));
	if (cap.text[0] != '\0')
		fail_msg("expected nothing logged at the next open, got: %s", cap.text);
	f->cfg.log_fn = NULL;
	expect_log(f, ENTRIES + 40);
	save(f, ENTRIES + 41, ENTRIES + 60);
	expect_log(f, ENTRIES + 60);
}

/*
 * Review 32: the open that skipped the damage fails to write its CHECKPOINT
 * (a directory in the way of CHECKPOINT.tmp: as a full disk, or a crash
 * there).  Before the fix the shard's marker was already flushed at the
 * journal's end (the empty new segment) with CHECKPOINT still below the
 * damage, and every later open refused the LogDB.  It must open once the
 * write works, with every entry.
 */
static void test_damaged_below_marker_open_cut_short(void **state)
{
	struct fx *f = *state;
	char tmp[400], err[512];
	struct logdb *db;
	uint64_t m;
	cut_short_then_damaged(f, true, &m);
	snprintf(tmp, sizeof(tmp), "%s/CHECKPOINT.tmp", f->jdir);
	assert_int_equal(mkdir(tmp, 0700), 0);
	assert_int_not_equal(logdb_open(&f->cfg, &db, err, sizeof(err)), LOGDB_OK);
	assert_non_null(strstr(err, "CHECKPOINT"));
	assert_int_equal(rmdir(tmp), 0);
	expect_log(f, ENTRIES + 40);
	save(f, ENTRIES + 41, ENTRIES + 60);
	expect_log(f, ENTRIES + 60);
}

/* Damage after the marker too: refused, naming that (the walk from the marker meets it). */
static void test_damaged_below_and_above_marker(void **state)
{
	struct fx *f = *state;
	char sp[400], want[64];
	size_t size, offs[512];
	uint64_t m, starts[16];
	cut_short_then_damaged(f, true, &m);
	int ns = segments(f, starts, 16);
	seg_path(f, sp, sizeof(sp), starts[ns - 1]);
	uint8_t *p = read_file(sp, &size);
	/* the second record after the marker (records() stops at the damage below it) */
	size_t at = (size_t)(m - starts[ns - 1]);
	assert_true(m > starts[ns - 1]);
	int n = records(p + at, size - at, m, offs, 512);
	assert_true(n >= 3);
	at += offs[1];
	uint8_t c = p[at + LOGDB_JREC_HDR + 7] ^ 0x20;
	write_file(sp, at + LOGDB_JREC_HDR + 7, &c, 1);
	free(p);
	snprintf(want, sizeof(want), "offset %zu is not valid", at);
	expect_open_corrupt(&f->cfg, "is damaged: the record at", want);
}

/*
 * ... but not when the journal ends there: a damaged last record below the
 * marker looks as an older copy of the journal does (one taken while that
 * record was written), whose later records may be lost.
 */
static void test_damaged_below_marker_at_end(void **state)
{
	struct fx *f = *state;
	uint64_t m;
	char want[64];
	cut_short_then_damaged(f, false, &m);
	snprintf(want, sizeof(want), "checkpointed at LSN %" PRIu64, m);
	expect_open_corrupt(&f->cfg, "missing, damaged or older than the shard", want);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test_setup_teardown(test_control, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_checkpoint_changed, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_checkpoint_version1, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_newest_segment_lost, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_damage_before_later_segment, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_moved_record, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_journal_gone_or_stale, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_checkpoint_missing, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_damaged_below_marker_opens, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_damaged_below_marker_at_end, setup, teardown),
	        cmocka_unit_test_setup_teardown(test_damaged_below_marker_open_cut_short, setup,
	                                        teardown),
	        cmocka_unit_test_setup_teardown(test_damaged_below_and_above_marker, setup,
	                                        teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
