/*
 * logdb_journal.c - each shard's own write-ahead journal in front of RocksDB.
 *
 * RocksDB's WAL grows its file with every append, so each fdatasync also
 * commits the inode's size in the file system's journal; RocksDB recycles
 * WAL files only in recovery modes that silently drop synced writes after
 * a damaged record.  So every batch goes first to this journal (one record,
 * fdatasynced when the save asks for it), then to RocksDB with its WAL
 * disabled.
 *
 * Segments: files named by the LSN (byte position in the endless journal)
 * of their first byte, at least one memtable long, zero-filled a chunk
 * ahead of the writer so that the fdatasync of a record overwrites
 * allocated blocks and changes no metadata.  Records do not span segments:
 * one that does not fit starts the next segment (a batch larger than a
 * segment gets a segment of its own size, unlinked once free).  The old
 * segment is fdatasynced before the switch and the new name made durable
 * (fsync of the directory) before anything is written to it, so the
 * journal on disk is always a prefix of what was written.
 *
 * Checkpoints: at a switch the background thread is asked to flush the
 * shard's memtables (every record below the new segment was written to
 * RocksDB before: both happen under the shard lock) and then to record
 * that LSN in CHECKPOINT (written to a temporary file, synced, renamed);
 * only then are the segments below it free.  A free segment is renamed to
 * the next start LSN when one is needed, or a new file is created when none
 * is free (the checkpoint lags); at most JOURNAL_SEGS files are kept.
 *
 * Replay (open): CHECKPOINT (with a CRC32C) names the segment that holds
 * the checkpoint; that segment's records must lead from its start exactly to
 * the checkpoint LSN.  From there every record whose LSN matches its
 * position, segment after segment, is written to RocksDB, then the shard is
 * flushed and the end recorded as the new checkpoint.  The journal ends at
 * zeros, a record of a segment's earlier use (its LSN below the checkpoint)
 * or a torn record (short body, bad CRC), which the open drops and reports
 * through logdb_config.log_fn (note_tail says why it cannot refuse); if a
 * valid record follows that point in the segment (or one whose LSN is not
 * its position but at or above the checkpoint: moved), or any later
 * segment exists (the writer synced
 * the segment whole before it made the next one), the damage is not a torn
 * tail and the open fails with LOGDB_ERR_CORRUPT naming shard, file and
 * offset.  Each checkpoint also puts its LSN into the shard (the 0x0808
 * marker) before the flush: a shard whose marker is beyond the journal's end
 * has lost its journal (deleted, emptied) or found an older one (a restore),
 * and the open fails (damage below the marker with a whole record at it is
 * skipped: skip_to_marker).  The open never removes a segment file that holds
 * records not yet checkpointed.
 * Batches are blind writes (puts, deletes, range deletions), so writing a
 * record again that RocksDB already has changes nothing.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "logdb/logdb_int.h"

#define JOURNAL_SEGS  4          /* segment files kept per shard */
#define JOURNAL_CHUNK (1u << 20) /* zero-filled ahead of the writer at a time */
#define ZERO_PIECE    4096u      /* bytes of one zero-filling write: a page */
#define CKPT_FILE     "CHECKPOINT"
#define CKPT_TMP      "CHECKPOINT.tmp"
#define CKPT_MAGIC    "dragonraft-journal"
#define SEG_NAME_LEN  20 /* 16 hex digits + ".jnl" */

static const uint8_t zeros[64 << 10];

static void seg_name(char *buf, uint64_t start)
{
	snprintf(buf, SEG_NAME_LEN + 1, "%016" PRIx64 ".jnl", start);
}

/* A segment file's start LSN from its name; false for any other file. */
static bool parse_seg_name(const char *name, uint64_t *start)
{
	char *end;
	if (strlen(name) != SEG_NAME_LEN || strcmp(name + 16, ".jnl") != 0)
		return false;
	for (int i = 0; i < 16; i++)
		if (!((name[i] >= '0' && name[i] <= '9') || (name[i] >= 'a' && name[i] <= 'f')))
			return false;
	*start = strtoull(name, &end, 16);
	return end == name + 16;
}

static unsigned shard_no(struct logdb *db, struct shard *s)
{
	return (unsigned)(s - db->shards);
}

/* A failed journal write or sync: stop the LogDB (errno describes it). */
static int jfail(struct logdb *db, struct shard *s, const char *what, uint64_t file, uint64_t off)
{
	char buf[256], name[SEG_NAME_LEN + 1];
	const char *why = errno ? strerror(errno) : "short write";
	seg_name(name, file);
	snprintf(buf, sizeof(buf), "%s the journal of LogDB shard %u (%s/%s at offset %" PRIu64 ")",
	         what, shard_no(db, s), s->j.dir, name, off);
	return logdb_stop(db, buf, why);
}

static int sync_dir(struct logdb *db, struct journal *j)
{
	return db->no_sync ? 0 : fsync(j->dirfd);
}

/* Room for one more segment in j->segs. */
static int reserve_seg(struct logdb *db, struct journal *j)
{
	if (j->n_segs < j->cap_segs)
		return LOGDB_OK;
	size_t cap = j->cap_segs ? j->cap_segs * 2 : 8;
	uint64_t *p = logdb_realloc(db, j->segs, cap * sizeof(*p));
	if (p == NULL)
		return logdb_fail(db, LOGDB_ERR_NOMEM, "out of memory for the journal");
	j->segs = p;
	j->cap_segs = cap;
	return LOGDB_OK;
}

static void drop_first_seg(struct journal *j)
{
	memmove(j->segs, j->segs + 1, (j->n_segs - 1) * sizeof(*j->segs));
	j->n_segs--;
	j->n_free--;
}

/* Unlink free segments beyond JOURNAL_SEGS files. */
static void trim_free(struct journal *j)
{
	char name[SEG_NAME_LEN + 1];
	while (j->n_free > 0 && j->n_segs > JOURNAL_SEGS) {
		seg_name(name, j->segs[0]);
		unlinkat(j->dirfd, name, 0);
		drop_first_seg(j);
	}
}

/*
 * What CHECKPOINT says (version 2: "dragonraft-journal 2 lsn=L seg=S rec=R
 * crc=C"): records below LSN lsn are in RocksDB's SST files; seg is the
 * segment that holds lsn, whose records [seg, lsn) were durable when it was
 * written (they lead from the segment's start exactly to lsn); rec says that
 * a record at lsn was durable too (a checkpoint taken at a switch, after the
 * first record of the new segment); crc is a CRC32C of the line before it.
 * Version 1 ("dragonraft-journal 1 lsn=L") has no seg, rec or crc.
 */
struct ckpt {
	uint64_t lsn, seg;
	bool rec;
	bool found; /* the file exists */
	bool named; /* version 2: seg was recorded */
};

static int format_ckpt(char *line, size_t size, const struct ckpt *c)
{
	int n = snprintf(line, size, CKPT_MAGIC " 2 lsn=%" PRIu64 " seg=%016" PRIx64 " rec=%d",
	                 c->lsn, c->seg, c->rec ? 1 : 0);
	uint32_t crc = dr_crc32c(0, line, (size_t)n);
	return n + snprintf(line + n, size - (size_t)n, " crc=%08" PRIx32 "\n", crc);
}

/* Write CHECKPOINT atomically (temporary file, sync, rename, sync the directory). */
static int write_ckpt(struct logdb *db, struct journal *j, const struct ckpt *c)
{
	char line[128];
	int n = format_ckpt(line, sizeof(line), c);
	int fd = openat(j->dirfd, CKPT_TMP, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	errno = 0;
	bool ok = write(fd, line, (size_t)n) == n && (db->no_sync || fsync(fd) == 0);
	int e = errno;
	close(fd);
	errno = e;
	if (!ok || renameat(j->dirfd, CKPT_TMP, j->dirfd, CKPT_FILE) != 0 || sync_dir(db, j) != 0)
		return -1;
	return 0;
}

/* Read CHECKPOINT into *c (c->found false, lsn 0 when there is none yet). */
static int read_ckpt(struct logdb *db, unsigned si, struct journal *j, struct ckpt *c)
{
	char line[128] = "", want[128];
	memset(c, 0, sizeof(*c));
	int fd = openat(j->dirfd, CKPT_FILE, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return LOGDB_OK;
		return logdb_fail(db, LOGDB_ERR_IO, "cannot read %s/" CKPT_FILE ": %s", j->dir,
		                  strerror(errno));
	}
	ssize_t n = read(fd, line, sizeof(line) - 1);
	close(fd);
	c->found = true;
	unsigned version = 0;
	int rec = 0;
	char nl = 0;
	bool ok = false;
	if (n > 0 && sscanf(line, CKPT_MAGIC " %u", &version) == 1 && version == 1) {
		ok = sscanf(line, CKPT_MAGIC " 1 lsn=%" SCNu64 "%c", &c->lsn, &nl) == 2 &&
		     nl == '\n';
	} else if (n > 0 && version == 2 &&
	           sscanf(line, CKPT_MAGIC " 2 lsn=%" SCNu64 " seg=%" SCNx64 " rec=%d", &c->lsn,
	                  &c->seg, &rec) == 3) {
		/* the line written for these values, checksum included, and nothing else */
		c->named = true;
		c->rec = rec;
		ok = c->seg <= c->lsn && format_ckpt(want, sizeof(want), c) == n &&
		     strcmp(want, line) == 0;
	}
	if (!ok)
		return logdb_fail(db, LOGDB_ERR_CORRUPT,
		                  "journal of LogDB shard %u: %s/" CKPT_FILE
		                  " is damaged (bad format or checksum)",
		                  si, j->dir);
	return LOGDB_OK;
}

/* ---- writing ----------------------------------------------------------- */

/*
 * Zero-fill the current segment up to at least need bytes (a chunk ahead),
 * one page per write: the page cache gives a buffered write a folio as large
 * as the write (ext4 on the test machines' Linux 6.18), and every later
 * record written into a large folio walked all its blocks' buffer heads, at
 * the write and again at its sync (ext4_block_write_begin,
 * ext4_bio_write_folio: 2.5-4% of an engine worker's CPU under pgbench
 * with 1 MiB writes, 0.2% now: helper perf89).  256 writes a chunk, one
 * chunk per about 1,500 records.
 */
static int prepare(struct logdb *db, struct shard *s, uint64_t need)
{
	struct journal *j = &s->j;
	uint64_t target = (need + JOURNAL_CHUNK - 1) / JOURNAL_CHUNK * JOURNAL_CHUNK;
	if (target > j->seg_cap)
		target = j->seg_cap > need ? j->seg_cap : need;
	while (j->prepared < target) {
		uint64_t k = ZERO_PIECE - j->prepared % ZERO_PIECE; /* to the page's end */
		if (k > target - j->prepared)
			k = target - j->prepared;
		errno = 0;
		ssize_t w = pwrite(j->fd, zeros, (size_t)k, (off_t)j->prepared);
		if (w <= 0)
			return jfail(db, s, "zero-filling", j->seg_start, j->prepared);
		j->prepared += (uint64_t)w;
		j->dirty = true;
	}
	return LOGDB_OK;
}

/* Start the next segment at j->pos, for a record of rec bytes. */
static int switch_segment(struct logdb *db, struct shard *s, uint64_t rec)
{
	struct journal *j = &s->j;
	char name[SEG_NAME_LEN + 1], old[SEG_NAME_LEN + 1];
	unsigned si = shard_no(db, s);
	if (j->fd >= 0) {
		errno = 0;
		if (j->dirty && !db->no_sync && fdatasync(j->fd) != 0)
			return jfail(db, s, "syncing", j->seg_start, j->pos - j->seg_start);
		close(j->fd);
		j->fd = -1;
		j->dirty = false;
		j->ckpt_want = j->pos;
		logdb_queue_checkpoint(db, si);
	}
	int rc = reserve_seg(db, j);
	if (rc)
		return rc;
	seg_name(name, j->pos);
	errno = 0;
	if (j->n_free > 0) {
		seg_name(old, j->segs[0]);
		if (renameat(j->dirfd, old, j->dirfd, name) != 0)
			return jfail(db, s, "recycling a segment of", j->pos, 0);
		drop_first_seg(j);
		j->fd = openat(j->dirfd, name, O_RDWR | O_CLOEXEC);
	} else {
		j->fd = openat(j->dirfd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	}
	struct stat st;
	if (j->fd < 0 || fstat(j->fd, &st) != 0)
		return jfail(db, s, "opening a segment of", j->pos, 0);
	if (sync_dir(db, j) != 0)
		return jfail(db, s, "syncing the directory of", j->pos, 0);
	j->segs[j->n_segs++] = j->pos;
	j->seg_start = j->pos;
	j->prepared = (uint64_t)st.st_size;
	j->seg_cap = db->seg_size;
	if (j->seg_cap < j->prepared)
		j->seg_cap = j->prepared;
	if (j->seg_cap < rec)
		j->seg_cap = rec;
	return LOGDB_OK;
}

int logdb_journal_append(struct logdb *db, struct shard *s, rocksdb_writebatch_t *b, bool sync)
{
	struct journal *j = &s->j;
	uint8_t hdr[LOGDB_JREC_HDR];
	size_t len;
	const char *body = rocksdb_writebatch_data(b, &len);
	int rc;
	if (len > UINT32_MAX - 64)
		return logdb_fail(db, LOGDB_ERR_TOO_BIG, "a write batch of %zu bytes", len);
	uint64_t rec = logdb_jrec_size(len);
	if (j->fd < 0 || (j->pos > j->seg_start && j->pos - j->seg_start + rec > j->seg_cap))
		if ((rc = switch_segment(db, s, rec)))
			return rc;
	uint64_t off = j->pos - j->seg_start;
	if (off + rec > j->prepared && (rc = prepare(db, s, off + rec)))
		return rc;
	logdb_jrec_header(hdr, j->pos, body, (uint32_t)len);
	struct iovec iov[3] = {
	        {hdr, sizeof(hdr)}, {(void *)body, len}, {(void *)zeros, rec - sizeof(hdr) - len}};
	errno = 0;
	/*
	 * A synced record when everything before it is synced: one system call
	 * that writes it and syncs its range (RWF_DSYNC: a write and fdatasync of
	 * those bytes).  Its blocks were allocated by the zero-fill, whose first
	 * record took the fdatasync below (dirty), so no metadata is left to
	 * commit.  Anything else dirty (an unsynced record, the zero-fill) needs
	 * the whole file synced: the journal on disk must stay a prefix.
	 */
	if (sync && !db->no_sync && !j->dirty && !atomic_load(&db->no_dsync_write)) {
		ssize_t w = pwritev2(j->fd, iov, 3, (off_t)off, RWF_DSYNC);

		if (w == (ssize_t)rec) {
			j->pos += rec;
			return LOGDB_OK;
		}
		if (w >= 0)
			return jfail(db, s, "writing", j->seg_start, off);
		if (errno != EOPNOTSUPP && errno != ENOSYS && errno != EINVAL)
			return jfail(db, s, "writing and syncing", j->seg_start, off);
		atomic_store(&db->no_dsync_write, true); /* nothing written: as below from now on */
		errno = 0;
	}
	if (pwritev(j->fd, iov, 3, (off_t)off) != (ssize_t)rec)
		return jfail(db, s, "writing", j->seg_start, off);
	j->pos += rec;
	j->dirty = true;
	if (sync && !db->no_sync) {
		if (fdatasync(j->fd) != 0)
			return jfail(db, s, "syncing", j->seg_start, off);
		j->dirty = false;
	}
	return LOGDB_OK;
}

/*
 * logdb_sync (logdb.h), from any thread: each shard's current segment is
 * opened under the shard lock and fdatasynced outside it, so saves go on
 * meanwhile (a segment a switch left was synced by the switch).  When nothing
 * was written meanwhile, the journal is clean again: its next synced record
 * may take RWF_DSYNC.
 */
int logdb_sync(struct logdb *db)
{
	for (unsigned i = 0; i < db->n; i++) {
		struct shard *s = &db->shards[i];
		struct journal *j = &s->j;
		char name[SEG_NAME_LEN + 1];
		uint64_t seg, pos, prepared;
		int fd, rc, err;

		pthread_mutex_lock(&s->lock);
		rc = logdb_check_stopped(db);
		if (rc || !j->dirty || j->fd < 0 || db->no_sync) {
			pthread_mutex_unlock(&s->lock);
			if (rc)
				return rc;
			continue;
		}
		seg = j->seg_start;
		pos = j->pos;
		prepared = j->prepared;
		/*
		 * An open file description of its own, not a dup() of the writer's:
		 * Linux reports a lost writeback once per description, and the
		 * writer's next synced save must see it too (it would take the
		 * journal for a prefix that it no longer is).
		 */
		seg_name(name, seg);
		errno = 0;
		fd = openat(j->dirfd, name, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			rc = jfail(db, s, "opening for a sync", seg, pos - seg);
			pthread_mutex_unlock(&s->lock);
			return rc;
		}
		pthread_mutex_unlock(&s->lock);
		errno = 0;
		rc = fdatasync(fd);
		err = errno;
		close(fd);
		pthread_mutex_lock(&s->lock);
		if (rc != 0) {
			errno = err;
			rc = jfail(db, s, "syncing", seg, pos - seg);
			pthread_mutex_unlock(&s->lock);
			return rc;
		}
		if (j->seg_start == seg && j->pos == pos && j->prepared == prepared)
			j->dirty = false;
		pthread_mutex_unlock(&s->lock);
	}
	return LOGDB_OK;
}

/* ---- checkpoints ------------------------------------------------------- */

/*
 * Segments [n_free, k) hold only checkpointed records: free them for reuse,
 * except a file that grew for a batch larger than a segment (unlinked, so
 * the journal keeps its size).
 */
static void release(struct logdb *db, struct journal *j, size_t k)
{
	char name[SEG_NAME_LEN + 1];
	struct stat st;
	while (j->n_free < k) {
		seg_name(name, j->segs[j->n_free]);
		if (fstatat(j->dirfd, name, &st, 0) == 0 && (uint64_t)st.st_size <= db->seg_size) {
			j->n_free++;
			continue;
		}
		unlinkat(j->dirfd, name, 0);
		memmove(j->segs + j->n_free, j->segs + j->n_free + 1,
		        (j->n_segs - j->n_free - 1) * sizeof(*j->segs));
		j->n_segs--;
		k--;
	}
	trim_free(j);
}

/* Segments below the one that holds lsn are free: lsn is durable in RocksDB. */
static void free_below(struct logdb *db, struct journal *j, uint64_t lsn)
{
	size_t k = j->n_free;
	while (k + 1 < j->n_segs && j->segs[k + 1] <= lsn)
		k++;
	release(db, j, k);
}

/* Flush the shard (every record written to it durable), then write CHECKPOINT c. */
static int flush_then_ckpt(struct logdb *db, struct shard *s, const struct ckpt *c)
{
	char *err = NULL, what[300];
	rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
	rocksdb_flushoptions_set_wait(fo, 1);
	rocksdb_flush(s->db, fo, &err);
	rocksdb_flushoptions_destroy(fo);
	atomic_store(&s->busy, BUSY_UNKNOWN);
	if (err)
		return logdb_write_failed(db, err, "flushing a shard for a journal checkpoint");
	if (write_ckpt(db, &s->j, c) != 0) {
		snprintf(what, sizeof(what), "writing %s/" CKPT_FILE, s->j.dir);
		return logdb_stop(db, what, strerror(errno));
	}
	return LOGDB_OK;
}

/*
 * Record checkpoint c: make the checkpoint's segment durable (the open walks
 * its records up to c->lsn, and the marker below must never be ahead of
 * the durable journal), put c->lsn into the shard (the 0x0808 marker, which
 * ties RocksDB to its journal: the open fails when RocksDB is ahead of the
 * journal's end), flush the shard, then write CHECKPOINT.  A failure stops
 * the LogDB.
 */
static int checkpoint_to(struct logdb *db, struct shard *s, const struct ckpt *c)
{
	struct journal *j = &s->j;
	uint8_t key[LOGDB_KEY_LEN];
	struct logdb_buf v = {.alloc = db->alloc};
	char *err = NULL, name[SEG_NAME_LEN + 1];
	seg_name(name, c->seg);
	errno = 0;
	int fd = openat(j->dirfd, name, O_RDONLY | O_CLOEXEC);
	bool ok = fd >= 0 && (db->no_sync || fdatasync(fd) == 0);
	if (fd >= 0)
		close(fd);
	if (!ok)
		return jfail(db, s, "syncing, for a checkpoint,", c->seg, 0);
	logdb_key(key, LOGDB_KIND_CKPT, 0, 0);
	if (logdb_encode_ckpt(&v, key, sizeof(key), c->lsn) != LOGDB_OK)
		return logdb_fail(db, LOGDB_ERR_NOMEM, "out of memory for a journal checkpoint");
	rocksdb_put(s->db, db->wopts, (const char *)key, sizeof(key), (const char *)v.p, v.len,
	            &err);
	logdb_buf_free(&v);
	if (err)
		return logdb_write_failed(db, err, "writing a journal checkpoint marker");
	return flush_then_ckpt(db, s, c);
}

/* The index of the segment that holds lsn (the greatest start <= lsn); n_segs if none. */
static size_t seg_holding(const struct journal *j, uint64_t lsn)
{
	size_t k = j->n_segs;
	for (size_t i = 0; i < j->n_segs && j->segs[i] <= lsn; i++)
		k = i;
	return k;
}

int logdb_journal_checkpoint(struct logdb *db, unsigned si)
{
	struct shard *s = &db->shards[si];
	struct journal *j = &s->j;
	struct ckpt c = {.named = true};
	pthread_mutex_lock(&s->lock);
	c.lsn = j->ckpt_want; /* every record below it is in RocksDB */
	if (c.lsn > j->ckpt) {
		c.seg = j->segs[seg_holding(j, c.lsn)];
		c.rec = j->pos > c.lsn; /* written, so the sync of c.seg covers it */
	}
	pthread_mutex_unlock(&s->lock);
	if (c.lsn <= j->ckpt)
		return LOGDB_OK;
	int rc = logdb_check_stopped(db);
	if (rc || (rc = checkpoint_to(db, s, &c)))
		return rc;
	pthread_mutex_lock(&s->lock);
	j->ckpt = c.lsn;
	free_below(db, j, c.lsn);
	pthread_mutex_unlock(&s->lock);
	return LOGDB_OK;
}

/* ---- open and replay --------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* List the segment files (sorted) and remove a leftover temporary checkpoint. */
static int list_segments(struct logdb *db, struct journal *j)
{
	DIR *d = fdopendir(dup(j->dirfd));
	if (d == NULL)
		return logdb_fail(db, LOGDB_ERR_IO, "cannot list %s: %s", j->dir, strerror(errno));
	int rc = LOGDB_OK;
	struct dirent *e;
	uint64_t start;
	while (rc == LOGDB_OK && (e = readdir(d)) != NULL) {
		if (parse_seg_name(e->d_name, &start) && (rc = reserve_seg(db, j)) == LOGDB_OK)
			j->segs[j->n_segs++] = start;
		else if (strcmp(e->d_name, CKPT_TMP) == 0)
			unlinkat(j->dirfd, CKPT_TMP, 0);
	}
	closedir(d);
	if (j->n_segs > 1)
		qsort(j->segs, j->n_segs, sizeof(*j->segs), cmp_u64);
	return rc;
}

/* A segment file mapped for reading. */
struct seg_map {
	const uint8_t *p;
	size_t size;
};

static int map_seg(struct logdb *db, struct journal *j, uint64_t start, struct seg_map *m)
{
	char name[SEG_NAME_LEN + 1];
	struct stat st;
	seg_name(name, start);
	m->p = NULL;
	m->size = 0;
	int fd = openat(j->dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) != 0) {
		int e = errno;
		if (fd >= 0)
			close(fd);
		return logdb_fail(db, LOGDB_ERR_IO, "cannot read %s/%s: %s", j->dir, name,
		                  strerror(e));
	}
	if (st.st_size > 0) {
		void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (p == MAP_FAILED) {
			int e = errno;
			close(fd);
			return logdb_fail(db, LOGDB_ERR_IO, "cannot map %s/%s: %s", j->dir, name,
			                  strerror(e));
		}
		m->p = p;
		m->size = (size_t)st.st_size;
	}
	close(fd);
	return LOGDB_OK;
}

static void unmap_seg(struct seg_map *m)
{
	if (m->p)
		munmap((void *)m->p, m->size);
}

static int damaged(struct logdb *db, unsigned si, struct journal *j, uint64_t file, size_t off,
                   uint64_t valid_file, size_t valid_off)
{
	char a[SEG_NAME_LEN + 1], b[SEG_NAME_LEN + 1];
	seg_name(a, file);
	seg_name(b, valid_file);
	return logdb_fail(db, LOGDB_ERR_CORRUPT,
	                  "journal of LogDB shard %u is damaged: the record at %s/%s offset %zu "
	                  "is not valid but a valid record follows (%s offset %zu); not a torn "
	                  "tail, so later synced writes would be lost",
	                  si, j->dir, a, off, b, valid_off);
}

/* Write one record's batch to RocksDB. */
static int replay_record(struct logdb *db, struct shard *s, const uint8_t *body, uint32_t len)
{
	char *err = NULL;
	if (len < 12) /* a RocksDB write batch has a 12-byte header */
		return logdb_fail(db, LOGDB_ERR_CORRUPT,
		                  "journal of LogDB shard %u: a %u-byte record", shard_no(db, s),
		                  len);
	rocksdb_writebatch_t *b = rocksdb_writebatch_create_from((const char *)body, len);
	rocksdb_write(s->db, db->wopts, b, &err);
	rocksdb_writebatch_destroy(b);
	if (err)
		return logdb_io_fail(db, err, "replaying the journal");
	return LOGDB_OK;
}

/*
 * Check checkpoint c against segs[k], the segment that holds it: the records
 * of that segment from its start lead exactly to c->lsn (they stay until a
 * later checkpoint frees the segment), followed by a record if c->rec.
 */
static int check_ckpt(struct logdb *db, unsigned si, struct journal *j, size_t k,
                      const struct ckpt *c)
{
	char name[SEG_NAME_LEN + 1];
	struct seg_map m;
	const uint8_t *body;
	uint32_t len;
	uint64_t start = j->segs[k];
	size_t off = 0, at = (size_t)(c->lsn - start);
	int rc = map_seg(db, j, start, &m);
	if (rc)
		return rc;
	while (off < at &&
	       logdb_jrec_read(m.p, m.size, start, off, &body, &len) == LOGDB_JREC_VALID)
		off += logdb_jrec_size(len);
	bool rec = off == at &&
	           logdb_jrec_read(m.p, m.size, start, off, &body, &len) == LOGDB_JREC_VALID;
	unmap_seg(&m);
	if (off == at && (rec || !c->rec))
		return LOGDB_OK;
	seg_name(name, start);
	return logdb_fail(db, LOGDB_ERR_CORRUPT,
	                  "journal of LogDB shard %u is damaged: " CKPT_FILE " (LSN %" PRIu64
	                  ") is at %s/%s offset %zu, but %s",
	                  si, c->lsn, j->dir, name, at,
	                  off < at   ? "the segment's records stop before it"
	                  : off > at ? "a record of the segment spans it"
	                             : "the record there, written before it, is missing");
}

/*
 * Say what the open drops where the journal ends (review 28 F5): a record
 * of this use of the segment that is not whole (its body runs past the end
 * of the file, or fails its CRC), or a header that neither this use nor
 * the segment's earlier use explains.  It is dropped, not refused, and the
 * writer then writes over it: so this line is the only trace.
 *
 * Why not refuse a record whose CRC fails though it looks whole: a power
 * loss while the last record was written keeps any subset of its 512-byte
 * sectors (the page cache writes pages in any order, a disk may tear a
 * page), and a sector not written holds what was there before.  In
 * zero-filled space that is zeros, so a bad record with no zero sector
 * there cannot be a write cut short: it was damaged after it was written
 * (and may have been acknowledged: Raft then counted on it).  But segments
 * are recycled (renamed, not zeroed): there what was there before is the
 * bytes of the segment's earlier use, and a record cut short over them has
 * every sector non-zero and a bad CRC, the very picture of a flipped byte.
 * The open cannot tell a recycled segment, or how far its earlier use
 * reached, from the bytes, so refusing would leave a node that lost power
 * at the wrong moment unable to start.  PostgreSQL's WAL does the same (a
 * bad CRC at the end is the end, with a LOG line).  The line says which
 * case it is: LOGDB_LOG_WARNING when every sector holds data (damage after
 * the write, or a write cut short in a recycled segment), LOGDB_LOG_INFO
 * when a sector is zeros or the file ends inside it (a write cut short).
 * Not seen: a damaged magic (the bytes then look like the earlier use's),
 * and a record whose header sector was lost while later ones were written
 * (zeros where the header was).
 */
static void note_tail(struct logdb *db, unsigned si, struct journal *j, uint64_t start, size_t off,
                      const struct logdb_jrec_tail *t)
{
	char name[SEG_NAME_LEN + 1];
	if (t->kind == LOGDB_TAIL_CLEAN)
		return;
	seg_name(name, start);
	if (t->kind == LOGDB_TAIL_CRC && t->all_sectors)
		logdb_note(db, LOGDB_LOG_WARNING,
		           "journal of LogDB shard %u ends at %s/%s offset %zu: dropped the %zu "
		           "bytes of the record there (a body of %" PRIu32 " bytes that fails "
		           "its checksum, though every 512-byte sector of it holds data: "
		           "damaged after it was written, or cut short over the bytes of a "
		           "recycled segment's earlier use); if it was damaged, a save "
		           "acknowledged to Raft is lost",
		           si, j->dir, name, off, t->bytes, t->len);
	else if (t->kind == LOGDB_TAIL_SHORT && off > 0 && t->bytes >= LOGDB_JREC_HDR &&
	         off + logdb_jrec_size(t->len) >
	                 (db->seg_size > off + t->bytes ? db->seg_size : off + t->bytes))
		/*
		 * Review 31: a record that does not fit its segment starts the next one
		 * (logdb_journal_append; only a segment's first record may be larger), so
		 * one at off > 0 longer than the segment (its file or the segment size)
		 * was never written so: this use's header (its LSN says so) whose length
		 * was damaged after it was written (a flipped high bit), not a write cut
		 * short.  (A segment size lowered since it was written could make a torn
		 * record look so.)
		 */
		logdb_note(db, LOGDB_LOG_WARNING,
		           "journal of LogDB shard %u ends at %s/%s offset %zu: dropped the record "
		           "there (its header's body length of %" PRIu32 " bytes runs past the end "
		           "of the segment, which no write does: a record that does not fit starts "
		           "the next segment; damaged after it was written); a save acknowledged "
		           "to Raft may be lost",
		           si, j->dir, name, off, t->len);
	else
		logdb_note(db, LOGDB_LOG_INFO,
		           "journal of LogDB shard %u ends at %s/%s offset %zu: dropped %zu bytes "
		           "there, %s (a write cut short by a crash)",
		           si, j->dir, name, off, t->bytes,
		           t->kind == LOGDB_TAIL_CRC ? "a record that fails its checksum, with a "
		                                       "sector of zeros"
		           : t->kind == LOGDB_TAIL_SHORT
		                   ? "a record cut short by the end of the file"
		                   : "a record header that is not valid");
}

/*
 * Replay from lsn, in segs[k] and the segments that continue it (only
 * walk them unless apply); *end is the LSN after the last valid record
 * and *last the index of its segment.  The journal ends at zeros, a record
 * of a segment's earlier use (its LSN is below ckpt) or a torn record; a
 * valid record after that point, or any later segment, is damage.
 */
static int replay(struct logdb *db, struct shard *s, size_t k, uint64_t lsn, uint64_t ckpt,
                  bool apply, uint64_t *end, size_t *last)
{
	struct journal *j = &s->j;
	unsigned si = shard_no(db, s);
	char a[SEG_NAME_LEN + 1], b[SEG_NAME_LEN + 1];
	struct seg_map m;
	int rc;
	for (;;) {
		uint64_t start = j->segs[k];
		if ((rc = map_seg(db, j, start, &m)))
			return rc;
		size_t off = (size_t)(lsn - start);
		const uint8_t *body;
		uint32_t len;
		while (logdb_jrec_read(m.p, m.size, start, off, &body, &len) == LOGDB_JREC_VALID) {
			if (apply && (rc = replay_record(db, s, body, len))) {
				unmap_seg(&m);
				return rc;
			}
			off += logdb_jrec_size(len);
		}
		lsn = start + off;
		if (k + 1 < j->n_segs && j->segs[k + 1] == lsn) {
			unmap_seg(&m); /* the writer switched here */
			k++;
			continue;
		}
		/* the end: nothing valid may follow (a moved record neither) */
		size_t v = logdb_jrec_find(m.p, m.size, start, off, ckpt);
		bool moved = v < m.size && logdb_jrec_read(m.p, m.size, start, v, &body, &len) !=
		                                   LOGDB_JREC_VALID;
		struct logdb_jrec_tail tail;
		logdb_jrec_tail(m.p, m.size, start, off, &tail);
		unmap_seg(&m);
		seg_name(a, start);
		if (moved)
			return logdb_fail(
			        db, LOGDB_ERR_CORRUPT,
			        "journal of LogDB shard %u is damaged: the record at %s/%s "
			        "offset %zu is whole but its LSN is not its position and "
			        "not below the checkpoint (a moved or renamed segment); not "
			        "a torn tail",
			        si, j->dir, a, v);
		if (v < m.size)
			return damaged(db, si, j, start, off, start, v);
		if (k + 1 < j->n_segs) {
			/* the writer synced this segment whole before it made the next one */
			seg_name(b, j->segs[k + 1]);
			return logdb_fail(
			        db, LOGDB_ERR_CORRUPT,
			        "journal of LogDB shard %u is damaged: its records end at "
			        "%s/%s offset %zu, but a later segment %s exists (a "
			        "segment is complete before the next one is made)",
			        si, j->dir, a, off, b);
		}
		if (apply) {
			note_tail(db, si, j, start, off, &tail);
			j->dropped = tail.bytes;
		}
		*end = lsn;
		*last = k;
		return LOGDB_OK;
	}
}

/*
 * The dropped last record that note_tail reported (review 31): zeros over
 * it, synced, before writing goes on where it was.  Else a clean close and
 * an open that wrote nothing in between (an idle shard, an engine worker
 * that fails and restarts) reported the same bytes again at each open, a
 * WARNING that a save may be lost each time; and a shorter record written
 * over it left the rest of it where the writer counts on zeros (prepared).
 * The line stays their only trace.
 */
static int zero_dropped(struct logdb *db, struct journal *j, const char *name)
{
	static const uint8_t zbuf[4096];
	uint64_t at = j->pos - j->seg_start, n = j->dropped;

	j->dropped = 0;
	while (n > 0) {
		size_t k = n < sizeof(zbuf) ? (size_t)n : sizeof(zbuf);
		ssize_t w = pwrite(j->fd, zbuf, k, (off_t)at);
		if (w <= 0)
			return logdb_fail(db, LOGDB_ERR_IO, "cannot write %s/%s: %s", j->dir, name,
			                  w < 0 ? strerror(errno) : "short write");
		at += (uint64_t)w;
		n -= (uint64_t)w;
	}
	if (at > j->pos - j->seg_start && !db->no_sync && fdatasync(j->fd) != 0)
		return logdb_fail(db, LOGDB_ERR_IO, "cannot sync %s/%s: %s", j->dir, name,
		                  strerror(errno));
	return LOGDB_OK;
}

/*
 * The walk from CHECKPOINT to the shard's marker (a checkpoint cut short
 * after its flush) met damage below the marker (db's message says where):
 * may the replay start at the marker instead?  Everything below the marker
 * is in RocksDB (the marker was put after those records and flushed with
 * them: RocksDB makes memtables durable in order, and with its WAL off the
 * marker is durable only so), so nothing below it is needed.  What the walk
 * guards against is a journal that never reached the marker (deleted,
 * emptied, an older copy): only a whole record of this use (its LSN is its
 * position) at the marker proves this journal reached it, so only then is
 * the damage skipped, with a WARNING naming it, if the journal from the
 * marker on is whole; *k is then the marker's segment.  Without one (the journal ends at the
 * marker, or the marker's segment is empty) the damage stays refused: a damaged last record below
 * the marker looks exactly like an older copy taken while that record was
 * written, whose later records may be lost.
 */
static bool skip_to_marker(struct logdb *db, struct shard *s, uint64_t marker, uint64_t ckpt,
                           size_t *k)
{
	struct journal *j = &s->j;
	unsigned si = shard_no(db, s);
	char why[sizeof(db->errmsg)], name[SEG_NAME_LEN + 1];
	const uint8_t *body;
	uint32_t len;
	struct seg_map m;
	size_t i = seg_holding(j, marker), last;
	uint64_t end;
	bool whole;

	memcpy(why, db->errmsg, sizeof(why));
	if (i == j->n_segs || map_seg(db, j, j->segs[i], &m)) {
		logdb_fail(db, LOGDB_ERR_CORRUPT, "%s", why);
		return false;
	}
	whole = logdb_jrec_read(m.p, m.size, j->segs[i], (size_t)(marker - j->segs[i]), &body,
	                        &len) == LOGDB_JREC_VALID;
	unmap_seg(&m);
	/* (damage at or after the marker is refused as before: said by the walk from it) */
	if (!whole || replay(db, s, i, marker, ckpt, false, &end, &last))
		return false;
	seg_name(name, j->segs[i]);
	logdb_note(db, LOGDB_LOG_WARNING,
	           "journal of LogDB shard %u: damage below the shard's checkpoint marker (LSN "
	           "%" PRIu64 ", %s/%s offset %" PRIu64 ") skipped: RocksDB holds every record "
	           "below the marker, and the replay starts there (%s)",
	           si, marker, j->dir, name, marker - j->segs[i], why);
	*k = i;
	return true;
}

/* The shard's checkpoint marker (0x0808) into *lsn, 0 if it has none. */
static int read_marker(struct logdb *db, struct shard *s, uint64_t *lsn)
{
	uint8_t key[LOGDB_KEY_LEN];
	size_t vlen;
	char *err = NULL;
	const char *why = NULL;
	*lsn = 0;
	logdb_key(key, LOGDB_KIND_CKPT, 0, 0);
	char *v = rocksdb_get(s->db, db->ropts, (const char *)key, sizeof(key), &vlen, &err);
	if (err)
		return logdb_io_fail(db, err, "reading the journal checkpoint marker");
	if (v == NULL)
		return LOGDB_OK;
	int rc = logdb_decode_ckpt(key, sizeof(key), (const uint8_t *)v, vlen, lsn, &why);
	rocksdb_free(v);
	if (rc)
		return logdb_fail(db, LOGDB_ERR_CORRUPT,
		                  "LogDB shard %u: journal checkpoint marker: %s", shard_no(db, s),
		                  why);
	return LOGDB_OK;
}

static int fsync_path(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = fsync(fd);
	close(fd);
	return rc;
}

int logdb_journal_open(struct logdb *db, unsigned si, const char *base)
{
	struct shard *s = &db->shards[si];
	struct journal *j = &s->j;
	char name[SEG_NAME_LEN + 1];
	struct ckpt c;
	uint64_t end, marker;
	size_t k, last = 0;
	bool skipped = false;
	int rc;

	j->fd = -1;
	j->dirfd = -1;
	size_t n = strlen(base) + 32;
	if ((j->dir = logdb_malloc(db, n)) == NULL)
		return logdb_fail(db, LOGDB_ERR_NOMEM, "out of memory for the journal");
	snprintf(j->dir, n, "%s/journal-%u", base, si);
	bool made = mkdir(j->dir, 0700) == 0;
	if ((!made && errno != EEXIST) || (made && !db->no_sync && fsync_path(base) != 0) ||
	    (j->dirfd = open(j->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return logdb_fail(db, LOGDB_ERR_IO, "cannot open %s: %s", j->dir, strerror(errno));
	if ((rc = read_ckpt(db, si, j, &c)) || (rc = list_segments(db, j)) ||
	    (rc = read_marker(db, s, &marker)))
		return rc;

	/* the segment that holds the checkpoint, checked, and replay from there */
	end = c.lsn;
	if (c.found || j->n_segs > 0) {
		k = c.named ? seg_holding(j, c.seg) : seg_holding(j, c.lsn);
		if (k == j->n_segs || (c.named && j->segs[k] != c.seg)) {
			seg_name(name, c.named ? c.seg : j->n_segs ? j->segs[0] : 0);
			return logdb_fail(db, LOGDB_ERR_CORRUPT,
			                  "journal of LogDB shard %u is damaged: %s/" CKPT_FILE
			                  " %s%s",
			                  si, j->dir,
			                  c.named ? "names the segment it is in, which is missing: "
			                  : j->n_segs ? "is missing or behind the oldest segment "
			                              : "is there but no segment file",
			                  c.named || j->n_segs ? name : "");
		}
		if ((rc = check_ckpt(db, si, j, k, &c)))
			return rc;
		/* RocksDB ahead of the CHECKPOINT (a crash before it was written): walk first */
		uint64_t from = c.lsn;
		if (marker > c.lsn && (rc = replay(db, s, k, c.lsn, c.lsn, false, &end, &last)) &&
		    (rc != LOGDB_ERR_CORRUPT || !skip_to_marker(db, s, marker, c.lsn, &k)))
			return rc;
		skipped = marker > c.lsn && rc == LOGDB_ERR_CORRUPT;
		if (skipped)
			from = end = marker;
		if (marker <= end && (rc = replay(db, s, k, from, c.lsn, true, &end, &last)))
			return rc;
	}
	if (marker > end)
		return logdb_fail(db, LOGDB_ERR_CORRUPT,
		                  "journal of LogDB shard %u is missing, damaged or older than the "
		                  "shard: the shard was checkpointed at LSN %" PRIu64
		                  " but %s/ ends at %" PRIu64,
		                  si, marker, j->dir, end);
	j->ckpt = j->ckpt_want = j->pos = end;
	if (j->n_segs == 0)
		return LOGDB_OK; /* a new journal */
	/*
	 * After damage skipped below the marker: go on in a new segment at the end, so
	 * that the records of CHECKPOINT's segment lead from its start to it without
	 * passing the damage (check_ckpt at the next open).
	 */
	if (skipped && j->segs[last] != end) {
		j->pos = end;
		j->dropped = 0; /* (its bytes stay in a segment below the checkpoint) */
		if ((rc = switch_segment(db, s, 0)))
			return rc;
		close(j->fd);
		j->fd = -1;
		last = j->n_segs - 1;
	}
	/*
	 * Review 32: after a skip, CHECKPOINT goes past the damage (the shard flushed:
	 * the records replayed from the marker) before checkpoint_to moves the marker
	 * to the end.  With the marker at the end (no record there: the new segment
	 * is empty) and CHECKPOINT still below the damage, a crash between them left
	 * a LogDB that the next open refused (test_damaged_below_marker_open_cut_short).
	 */
	if (skipped &&
	    (rc = flush_then_ckpt(db, s, &(struct ckpt){.lsn = end, .seg = j->segs[last]})))
		return rc;
	/* record the end (the shard flushed) unless CHECKPOINT says so already */
	if ((end > c.lsn || !c.named || c.seg != j->segs[last]) &&
	    (rc = checkpoint_to(db, s, &(struct ckpt){.lsn = end, .seg = j->segs[last]})))
		return rc;
	/* go on writing in the segment where the replay ended */
	struct stat st;
	release(db, j, last);
	j->seg_start = j->segs[j->n_free];
	seg_name(name, j->seg_start);
	j->fd = openat(j->dirfd, name, O_RDWR | O_CLOEXEC);
	if (j->fd < 0 || fstat(j->fd, &st) != 0)
		return logdb_fail(db, LOGDB_ERR_IO, "cannot open %s/%s: %s", j->dir, name,
		                  strerror(errno));
	j->prepared = (uint64_t)st.st_size;
	j->seg_cap = db->seg_size > j->prepared ? db->seg_size : j->prepared;
	return zero_dropped(db, j, name);
}

void logdb_journal_close(struct logdb *db, unsigned si)
{
	struct journal *j = &db->shards[si].j;
	if (j->fd >= 0 && db->shards[si].db) {
		/* a clean close replays nothing at the next open */
		j->ckpt_want = j->pos;
		logdb_journal_checkpoint(db, si);
	}
	if (j->fd >= 0)
		close(j->fd);
	if (j->dirfd >= 0)
		close(j->dirfd);
	logdb_free(db, j->segs);
	logdb_free(db, j->dir);
	memset(j, 0, sizeof(*j));
	j->fd = j->dirfd = -1;
}
