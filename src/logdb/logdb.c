/*
 * logdb.c - opening and closing the sharded LogDB, errors, the member cache,
 * background compaction and the busy signal.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "logdb/logdb_int.h"

#define META_FILE  "LOGDB"
#define META_MAGIC "dragonraft-logdb"

const char *logdb_strerror(int rc)
{
	switch (rc) {
	case LOGDB_OK:
		return "ok";
	case LOGDB_ERR_NOMEM:
		return "out of memory";
	case LOGDB_ERR_IO:
		return "storage I/O error";
	case LOGDB_ERR_CORRUPT:
		return "corrupt record on disk";
	case LOGDB_ERR_NOT_FOUND:
		return "not found";
	case LOGDB_ERR_COMPACTED:
		return "entries compacted away";
	case LOGDB_ERR_UNAVAILABLE:
		return "entries not yet available";
	case LOGDB_ERR_INVALID:
		return "invalid argument";
	case LOGDB_ERR_SHARDS:
		return "shard count differs from the stored one";
	case LOGDB_ERR_TOO_BIG:
		return "record too big";
	}
	return "unknown error";
}

/* ---- memory and errors ------------------------------------------------- */

void *logdb_malloc(struct logdb *db, size_t n)
{
	return db->alloc ? db->alloc->malloc(n) : malloc(n);
}

void *logdb_realloc(struct logdb *db, void *p, size_t n)
{
	return db->alloc ? db->alloc->realloc(p, n) : realloc(p, n);
}

void logdb_free(struct logdb *db, void *p)
{
	if (db->alloc)
		db->alloc->free(p);
	else
		free(p);
}

static void *cfg_malloc(const struct logdb_config *cfg, size_t n)
{
	return cfg->alloc ? cfg->alloc->malloc(n) : malloc(n);
}

static void cfg_free(const struct logdb_config *cfg, void *p)
{
	if (cfg->alloc)
		cfg->alloc->free(p);
	else
		free(p);
}

int logdb_fail(struct logdb *db, int rc, const char *fmt, ...)
{
	va_list ap;
	pthread_mutex_lock(&db->err_lock);
	va_start(ap, fmt);
	vsnprintf(db->errmsg, sizeof(db->errmsg), fmt, ap);
	va_end(ap);
	pthread_mutex_unlock(&db->err_lock);
	return rc;
}

void logdb_note(struct logdb *db, int level, const char *fmt, ...)
{
	char msg[768];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (db->log_fn)
		db->log_fn(db->log_ctx, level, msg);
	else
		fprintf(stderr, "logdb: %s: %s\n", level == LOGDB_LOG_WARNING ? "WARNING" : "LOG",
		        msg);
}

int logdb_io_fail(struct logdb *db, char *err, const char *what)
{
	/* RocksDB's Corruption status (a failed block checksum, a file too short):
	 * damage that a retry or a reopen meets again, as at open. */
	int rc = err != NULL && strncmp(err, "Corruption", 10) == 0 ? LOGDB_ERR_CORRUPT
	                                                             : LOGDB_ERR_IO;

	logdb_fail(db, rc, "%s: %s", what, err ? err : "unknown RocksDB error");
	rocksdb_free(err);
	return rc;
}

int logdb_stop(struct logdb *db, const char *what, const char *why)
{
	pthread_mutex_lock(&db->err_lock);
	if (!atomic_load(&db->stopped)) {
		snprintf(db->stopmsg, sizeof(db->stopmsg), "%s: %s", what, why);
		atomic_store(&db->stopped, true);
	}
	snprintf(db->errmsg, sizeof(db->errmsg),
	         "%s: %s; the LogDB stopped (nothing more is written: a failed write or sync "
	         "may have lost data)",
	         what, why);
	pthread_mutex_unlock(&db->err_lock);
	return LOGDB_ERR_IO;
}

int logdb_write_failed(struct logdb *db, char *err, const char *what)
{
	logdb_stop(db, what, err ? err : "unknown RocksDB error");
	rocksdb_free(err);
	return LOGDB_ERR_IO;
}

int logdb_check_stopped(struct logdb *db)
{
	if (!atomic_load(&db->stopped))
		return LOGDB_OK;
	pthread_mutex_lock(&db->err_lock);
	snprintf(db->errmsg, sizeof(db->errmsg), "the LogDB stopped after a write failure (%s)",
	         db->stopmsg);
	pthread_mutex_unlock(&db->err_lock);
	return LOGDB_ERR_IO;
}

const char *logdb_errmsg(struct logdb *db, char *buf, size_t len)
{
	if (len == 0)
		return buf;
	pthread_mutex_lock(&db->err_lock);
	snprintf(buf, len, "%s", db->errmsg);
	pthread_mutex_unlock(&db->err_lock);
	return buf;
}

unsigned logdb_shards(const struct logdb *db)
{
	return db->n;
}

unsigned logdb_shard_of(const struct logdb *db, uint64_t group_id)
{
	return (unsigned)(group_id % db->n);
}

struct shard *logdb_shard(struct logdb *db, uint64_t group_id)
{
	return &db->shards[logdb_shard_of(db, group_id)];
}

void logdb_range_end(uint8_t *key, unsigned kind, uint64_t group_id, uint64_t node_id)
{
	logdb_key(key, kind, group_id, node_id);
	memset(key + LOGDB_KEY_LEN, 0xff, 8);
	key[LOGDB_INDEX_KEY_LEN] = 0;
}

/* ---- member cache ------------------------------------------------------ */

static size_t slot(uint64_t g, uint64_t n, size_t cap)
{
	uint64_t h =
	        g * 0x9E3779B97F4A7C15ull ^ (n + 0x632BE59BD9B4E019ull) * 0xC2B2AE3D27D4EB4Full;
	h ^= h >> 29;
	return (size_t)(h & (cap - 1));
}

static struct member *lookup(struct shard *s, uint64_t g, uint64_t n)
{
	if (s->cap == 0)
		return NULL;
	for (size_t i = slot(g, n, s->cap);; i = (i + 1) & (s->cap - 1)) {
		struct member *m = &s->tab[i];
		if (!m->used)
			return NULL;
		if (m->group_id == g && m->node_id == n)
			return m;
	}
}

static int grow(struct logdb *db, struct shard *s)
{
	size_t cap = s->cap ? s->cap * 2 : 64;
	struct member *tab = logdb_malloc(db, cap * sizeof(*tab));
	if (tab == NULL)
		return logdb_fail(db, LOGDB_ERR_NOMEM, "out of memory for the member cache");
	memset(tab, 0, cap * sizeof(*tab));
	for (size_t i = 0; i < s->cap; i++) {
		struct member *m = &s->tab[i];
		if (!m->used)
			continue;
		size_t j = slot(m->group_id, m->node_id, cap);
		while (tab[j].used)
			j = (j + 1) & (cap - 1);
		tab[j] = *m;
	}
	logdb_free(db, s->tab);
	s->tab = tab;
	s->cap = cap;
	return LOGDB_OK;
}

/* Read the range and state keys of a member into m. */
static int load(struct logdb *db, struct shard *s, struct member *m)
{
	uint8_t key[LOGDB_KEY_LEN];
	char *err = NULL;
	size_t vlen;
	const char *why;
	int rc = LOGDB_OK;

	m->first = 1;
	m->last = 0;
	m->stored = false;
	m->hs_stored = false;
	memset(&m->hs, 0, sizeof(m->hs));

	logdb_key(key, LOGDB_KIND_RANGE, m->group_id, m->node_id);
	char *v = rocksdb_get(s->db, db->ropts, (const char *)key, sizeof(key), &vlen, &err);
	if (err)
		return logdb_io_fail(db, err, "reading the entry range");
	if (v) {
		rc = logdb_decode_range(key, sizeof(key), (uint8_t *)v, vlen, &m->first, &m->last,
		                        &why);
		rocksdb_free(v);
		if (rc)
			return logdb_fail(db, rc,
			                  "corrupt entry range of group %" PRIu64 " node %" PRIu64
			                  ": %s",
			                  m->group_id, m->node_id, why);
		m->stored = true;
	}
	logdb_key(key, LOGDB_KIND_STATE, m->group_id, m->node_id);
	v = rocksdb_get(s->db, db->ropts, (const char *)key, sizeof(key), &vlen, &err);
	if (err)
		return logdb_io_fail(db, err, "reading the hard state");
	if (v) {
		rc = logdb_decode_state(key, sizeof(key), (uint8_t *)v, vlen, &m->hs, &why);
		rocksdb_free(v);
		if (rc)
			return logdb_fail(db, rc,
			                  "corrupt hard state of group %" PRIu64 " node %" PRIu64
			                  ": %s",
			                  m->group_id, m->node_id, why);
		m->stored = true;
		m->hs_stored = true;
	}
	m->loaded = true;
	return LOGDB_OK;
}

int logdb_member_slot(struct logdb *db, struct shard *s, uint64_t g, uint64_t n,
                      struct member **out)
{
	struct member *m = lookup(s, g, n);
	if (m == NULL) {
		if ((s->count + 1) * 4 > s->cap * 3) {
			int rc = grow(db, s);
			if (rc)
				return rc;
		}
		size_t i = slot(g, n, s->cap);
		while (s->tab[i].used)
			i = (i + 1) & (s->cap - 1);
		m = &s->tab[i];
		memset(m, 0, sizeof(*m));
		m->used = true;
		m->group_id = g;
		m->node_id = n;
		s->count++;
	}
	*out = m;
	return LOGDB_OK;
}

int logdb_member(struct logdb *db, struct shard *s, uint64_t g, uint64_t n, struct member **out)
{
	struct member *m;
	int rc = logdb_member_slot(db, s, g, n, &m);
	if (rc)
		return rc;
	if (!m->loaded && (rc = load(db, s, m)))
		return rc;
	*out = m;
	return LOGDB_OK;
}

void logdb_member_forget(struct shard *s, uint64_t g, uint64_t n)
{
	struct member *m = lookup(s, g, n);
	if (m)
		m->loaded = false;
}

/* ---- background compaction -------------------------------------------- */

/* Work queued for the background thread (bg_lock held). */
static bool bg_pending(struct logdb *db)
{
	return db->job_count || db->full_compact_mask || db->ckpt_mask;
}

static void *bg_main(void *arg)
{
	struct logdb *db = arg;
	pthread_mutex_lock(&db->bg_lock);
	for (;;) {
		while (!db->bg_stop && !bg_pending(db))
			pthread_cond_wait(&db->bg_wake, &db->bg_lock);
		if (!bg_pending(db))
			break; /* stopping with nothing left */
		db->bg_running = true;
		if (atomic_load(&db->stopped)) {
			db->job_count = 0; /* nothing more is written, compactions included */
			db->full_compact_mask = 0;
			db->ckpt_mask = 0;
			pthread_mutex_unlock(&db->bg_lock);
		} else if (db->ckpt_mask) {
			/* first: a lagging checkpoint makes the journal create segments */
			unsigned si = (unsigned)__builtin_ctzll(db->ckpt_mask);
			db->ckpt_mask &= ~(1ull << si);
			pthread_mutex_unlock(&db->bg_lock);
			logdb_journal_checkpoint(db, si);
		} else if (db->job_count) {
			struct compact_job j = db->jobs[db->job_head];
			db->job_head = (db->job_head + 1) % COMPACT_QUEUE;
			db->job_count--;
			pthread_mutex_unlock(&db->bg_lock);
			rocksdb_compact_range(db->shards[j.shard].db, (const char *)j.lo, j.lo_len,
			                      (const char *)j.hi, j.hi_len);
		} else {
			unsigned si = (unsigned)__builtin_ctzll(db->full_compact_mask);
			db->full_compact_mask &= ~(1ull << si);
			pthread_mutex_unlock(&db->bg_lock);
			rocksdb_compact_range(db->shards[si].db, NULL, 0, NULL, 0);
		}
		pthread_mutex_lock(&db->bg_lock);
		db->bg_running = false;
		if (!bg_pending(db))
			pthread_cond_broadcast(&db->bg_idle);
	}
	db->bg_running = false;
	pthread_cond_broadcast(&db->bg_idle);
	pthread_mutex_unlock(&db->bg_lock);
	return NULL;
}

void logdb_queue_compaction(struct logdb *db, unsigned si, const uint8_t *lo, size_t lo_len,
                            const uint8_t *hi, size_t hi_len)
{
	pthread_mutex_lock(&db->bg_lock);
	if (db->job_count == COMPACT_QUEUE || lo_len > sizeof(db->jobs[0].lo) ||
	    hi_len > sizeof(db->jobs[0].hi)) {
		db->full_compact_mask |= 1ull << si; /* too much queued: do the whole shard */
	} else {
		struct compact_job *j = &db->jobs[(db->job_head + db->job_count) % COMPACT_QUEUE];
		j->shard = si;
		memcpy(j->lo, lo, lo_len);
		memcpy(j->hi, hi, hi_len);
		j->lo_len = (uint8_t)lo_len;
		j->hi_len = (uint8_t)hi_len;
		db->job_count++;
	}
	pthread_cond_signal(&db->bg_wake);
	pthread_mutex_unlock(&db->bg_lock);
}

void logdb_queue_checkpoint(struct logdb *db, unsigned si)
{
	pthread_mutex_lock(&db->bg_lock);
	db->ckpt_mask |= 1ull << si;
	pthread_cond_signal(&db->bg_wake);
	pthread_mutex_unlock(&db->bg_lock);
}

int logdb_compact_entries_to(struct logdb *db, uint64_t g, raft_id n, raft_index index)
{
	uint8_t lo[LOGDB_INDEX_KEY_LEN], hi[LOGDB_INDEX_KEY_LEN];
	int rc = logdb_check_stopped(db);
	if (rc)
		return rc;
	if (index == UINT64_MAX)
		return logdb_fail(db, LOGDB_ERR_INVALID, "compaction index out of range");
	logdb_index_key(lo, LOGDB_KIND_ENTRY, g, n, 0);
	logdb_index_key(hi, LOGDB_KIND_ENTRY, g, n, index + 1);
	logdb_queue_compaction(db, logdb_shard_of(db, g), lo, sizeof(lo), hi, sizeof(hi));
	return LOGDB_OK;
}

void logdb_wait_compactions(struct logdb *db)
{
	pthread_mutex_lock(&db->bg_lock);
	while (bg_pending(db) || db->bg_running)
		pthread_cond_wait(&db->bg_idle, &db->bg_lock);
	pthread_mutex_unlock(&db->bg_lock);
}

/* ---- busy signal and flush --------------------------------------------- */

/*
 * RocksDB slows writes down at max_write_buffer_number - 1 immutable
 * memtables or level0_slowdown_writes_trigger L0 files (and stops them at
 * one more memtable or 16 more files); busy fires one step before (a save
 * fills at most one memtable, a flush adds one L0 file), or during any
 * slowdown (pending compaction bytes too) or stop.
 */
static bool shard_busy(struct logdb *db, struct shard *s)
{
	uint64_t imm = 0, delayed = 0, stopped = 0;
	if (rocksdb_property_int(s->db, "rocksdb.num-immutable-mem-table", &imm) == 0 &&
	    imm + 2 >= LOGDB_MEMTABLES_PER_SHARD)
		return true;
	/* not an "int" property in RocksDB's table: read it as text */
	char *v = rocksdb_property_value(s->db, "rocksdb.num-files-at-level0");
	if (v) {
		uint64_t l0 = strtoull(v, NULL, 10);
		rocksdb_free(v);
		if (l0 + 2 >= (uint64_t)db->l0_slowdown)
			return true;
	}
	return (rocksdb_property_int(s->db, "rocksdb.actual-delayed-write-rate", &delayed) == 0 &&
	        delayed > 0) ||
	       (rocksdb_property_int(s->db, "rocksdb.is-write-stopped", &stopped) == 0 && stopped);
}

bool logdb_busy(struct logdb *db, uint64_t group_id)
{
	struct shard *s = logdb_shard(db, group_id);
	if (atomic_load(&db->stopped))
		return false; /* a failure, not backpressure: the next save fails with it */
	if (atomic_load(&s->busy) == BUSY_NO)
		return false;
	uint64_t sv = 0;
	if (rocksdb_property_int(s->db, "rocksdb.current-super-version-number", &sv) != 0)
		sv = UINT64_MAX; /* (never matches: computed in full) */
	else if (atomic_load(&s->idle_sv) == sv + 1) {
		atomic_store(&s->busy, BUSY_NO);
		return false;
	}
	bool busy = shard_busy(db, s);
	atomic_store(&s->idle_sv, busy || sv == UINT64_MAX ? 0 : sv + 1);
	atomic_store(&s->busy, busy ? BUSY_YES : BUSY_NO);
	return busy;
}

int logdb_flush(struct logdb *db)
{
	int rc = logdb_check_stopped(db);
	if (rc)
		return rc;
	rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
	rocksdb_flushoptions_set_wait(fo, 1);
	for (unsigned i = 0; i < db->n && rc == LOGDB_OK; i++) {
		char *err = NULL;
		rocksdb_flush(db->shards[i].db, fo, &err);
		atomic_store(&db->shards[i].busy, BUSY_UNKNOWN);
		if (err)
			rc = logdb_write_failed(db, err, "flushing a shard");
	}
	rocksdb_flushoptions_destroy(fo);
	return rc;
}

/* ---- workers ----------------------------------------------------------- */

int logdb_worker_create(struct logdb *db, struct logdb_worker **out)
{
	struct logdb_worker *w = logdb_malloc(db, sizeof(*w));
	if (w == NULL)
		goto err;
	memset(w, 0, sizeof(*w));
	w->db = db;
	w->vals = logdb_malloc(db, db->n * sizeof(*w->vals));
	if (w->vals == NULL)
		goto err_after_worker;
	w->batches = logdb_malloc(db, db->n * sizeof(*w->batches));
	if (w->batches == NULL)
		goto err_after_vals;
	for (unsigned i = 0; i < db->n; i++) {
		w->batches[i] = rocksdb_writebatch_create();
		memset(&w->vals[i], 0, sizeof(w->vals[i]));
		w->vals[i].alloc = db->alloc;
	}
	*out = w;
	return LOGDB_OK;

err_after_vals:
	logdb_free(db, w->vals);
err_after_worker:
	logdb_free(db, w);
err:
	return logdb_fail(db, LOGDB_ERR_NOMEM, "out of memory for a worker");
}

void logdb_worker_destroy(struct logdb_worker *w)
{
	if (w == NULL)
		return;
	struct logdb *db = w->db;
	for (unsigned i = 0; i < db->n; i++) {
		rocksdb_writebatch_destroy(w->batches[i]);
		logdb_buf_free(&w->vals[i]);
	}
	logdb_free(db, w->batches);
	logdb_free(db, w->vals);
	logdb_free(db, w->shard_of);
	logdb_free(db, w);
}

/* ---- open and close ---------------------------------------------------- */

static int mkdirs(const char *path)
{
	char tmp[4096];
	if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp))
		return -1;
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
		return -1;
	return 0;
}

static int fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY);
	if (fd < 0)
		return -1;
	int rc = fsync(fd);
	close(fd);
	return rc;
}

static char *dup_str(const struct logdb_config *cfg, const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = cfg_malloc(cfg, n);
	if (p)
		memcpy(p, s, n);
	return p;
}

/* Check (or, for a new LogDB, record) the shard count in dir/LOGDB. */
static int check_meta(struct logdb *db)
{
	char path[4096], tmp[4096], line[128];
	snprintf(path, sizeof(path), "%s/" META_FILE, db->dir);
	FILE *f = fopen(path, "r");
	if (f) {
		unsigned version = 0, shards = 0;
		int ok = fgets(line, sizeof(line), f) != NULL &&
		         sscanf(line, META_MAGIC " %u shards=%u", &version, &shards) == 2;
		fclose(f);
		if (!ok || version != 1)
			return logdb_fail(db, LOGDB_ERR_CORRUPT,
			                  "%s is not a dragonraft LogDB "
			                  "description",
			                  path);
		if (shards != db->n)
			return logdb_fail(db, LOGDB_ERR_SHARDS,
			                  "LogDB in %s was created with %u shards; it cannot "
			                  "be opened with %u",
			                  db->dir, shards, db->n);
		return LOGDB_OK;
	}
	if (errno != ENOENT)
		return logdb_fail(db, LOGDB_ERR_IO, "cannot read %s: %s", path, strerror(errno));
	snprintf(tmp, sizeof(tmp), "%s/shard-0", db->dir);
	struct stat st;
	if (stat(tmp, &st) == 0)
		return logdb_fail(db, LOGDB_ERR_CORRUPT, "%s has shards but no " META_FILE " file",
		                  db->dir);
	snprintf(tmp, sizeof(tmp), "%s/" META_FILE ".tmp", db->dir);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		return logdb_fail(db, LOGDB_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
	int n = snprintf(line, sizeof(line), META_MAGIC " 1 shards=%u\n", db->n);
	bool ok = write(fd, line, (size_t)n) == n && fsync(fd) == 0;
	close(fd);
	if (!ok || rename(tmp, path) != 0 || fsync_dir(db->dir) != 0)
		return logdb_fail(db, LOGDB_ERR_IO, "cannot write %s: %s", path, strerror(errno));
	return LOGDB_OK;
}

static void set_options(struct logdb *db, const struct logdb_config *cfg)
{
	rocksdb_options_t *o = rocksdb_options_create();
	rocksdb_options_set_create_if_missing(o, 1);
	rocksdb_options_set_paranoid_checks(o, 1);
	rocksdb_options_set_compression(o, rocksdb_no_compression);
	uint64_t budget =
	        cfg->memtable_budget ? cfg->memtable_budget : LOGDB_DEFAULT_MEMTABLE_BUDGET;
	uint64_t wb = budget / db->n / LOGDB_MEMTABLES_PER_SHARD;
	if (wb < (256u << 10))
		wb = 256u << 10;
	/* One budget for all shards: RocksDB keeps at most this many memtables a shard. */
	rocksdb_options_set_write_buffer_size(o, wb);
	db->seg_size = cfg->journal_segment ? cfg->journal_segment : wb; /* one per memtable */
	rocksdb_options_set_max_write_buffer_number(o, LOGDB_MEMTABLES_PER_SHARD);
	rocksdb_options_set_level0_slowdown_writes_trigger(o, db->l0_slowdown);
	rocksdb_options_set_level0_stop_writes_trigger(o, db->l0_slowdown + 16);
	rocksdb_options_set_max_background_jobs(o, 2);
	/*
	 * RocksDB's info LOG takes fatal messages only: Debian's build (with
	 * assertions) aborts when it logs again after a failed LOG write, as
	 * on a full disk.  Failures reach the caller through the LogDB's
	 * messages instead.
	 */
	rocksdb_options_set_info_log_level(o, 4);
	rocksdb_options_set_keep_log_file_num(o, 2);
	rocksdb_options_set_max_open_files(o, 256);
	/*
	 * RocksDB's own WAL holds only what an older build wrote (the journal
	 * is the log now), recovered as then: a torn last record (a crash
	 * while it was written) is dropped, any other damage fails the open.
	 * Point-in-time recovery would silently stop replay at a damaged
	 * record and drop every later synced write, votes included.
	 */
	rocksdb_options_set_wal_recovery_mode(o, 0); /* kTolerateCorruptedTailRecords */
	if (cfg->disable_auto_compactions)
		rocksdb_options_set_disable_auto_compactions(o, 1);
	db->opts = o;
}

static void stop_bg(struct logdb *db)
{
	if (!db->bg_started)
		return;
	pthread_mutex_lock(&db->bg_lock);
	db->bg_stop = true;
	pthread_cond_signal(&db->bg_wake);
	pthread_mutex_unlock(&db->bg_lock);
	pthread_join(db->bg, NULL);
	db->bg_started = false;
}

static void close_shards(struct logdb *db)
{
	for (unsigned i = 0; i < db->n; i++) {
		logdb_journal_close(db, i);
		if (db->shards[i].db)
			rocksdb_close(db->shards[i].db);
		pthread_mutex_destroy(&db->shards[i].lock);
		logdb_free(db, db->shards[i].tab);
	}
}

int logdb_open(const struct logdb_config *cfg, struct logdb **out, char *errmsg, size_t errmsg_len)
{
	char path[4096];
	char *err = NULL;
	int rc;

	if (cfg->dir == NULL || cfg->shards > LOGDB_MAX_SHARDS) {
		if (errmsg && errmsg_len)
			snprintf(errmsg, errmsg_len, "no directory or more than %d shards",
			         LOGDB_MAX_SHARDS);
		return LOGDB_ERR_INVALID;
	}
	struct logdb *db = cfg_malloc(cfg, sizeof(*db));
	if (db == NULL) {
		if (errmsg && errmsg_len)
			snprintf(errmsg, errmsg_len, "out of memory");
		return LOGDB_ERR_NOMEM;
	}
	memset(db, 0, sizeof(*db));
	db->alloc = cfg->alloc;
	db->log_fn = cfg->log_fn;
	db->log_ctx = cfg->log_ctx;
	db->n = cfg->shards ? cfg->shards : LOGDB_DEFAULT_SHARDS;
	db->no_sync = cfg->no_sync;
	db->l0_slowdown = cfg->l0_slowdown_trigger ? cfg->l0_slowdown_trigger : 20;
	pthread_mutex_init(&db->err_lock, NULL);
	pthread_mutex_init(&db->bg_lock, NULL);
	pthread_cond_init(&db->bg_wake, NULL);
	pthread_cond_init(&db->bg_idle, NULL);

	rc = LOGDB_ERR_NOMEM;
	db->dir = dup_str(cfg, cfg->dir);
	if (db->dir == NULL)
		goto err_after_db;
	if (cfg->wal_dir) {
		db->wal_dir = dup_str(cfg, cfg->wal_dir);
		if (db->wal_dir == NULL)
			goto err_after_dir;
	}
	if (mkdirs(db->dir) != 0 || (db->wal_dir && mkdirs(db->wal_dir) != 0)) {
		rc = logdb_fail(db, LOGDB_ERR_IO, "cannot create %s: %s",
		                db->wal_dir ? "the LogDB or WAL directory" : db->dir,
		                strerror(errno));
		goto err_after_dir;
	}
	if ((rc = check_meta(db)))
		goto err_after_dir;

	rc = LOGDB_ERR_NOMEM;
	db->shards = cfg_malloc(cfg, db->n * sizeof(*db->shards));
	if (db->shards == NULL)
		goto err_after_dir;
	memset(db->shards, 0, db->n * sizeof(*db->shards));
	for (unsigned i = 0; i < db->n; i++) {
		pthread_mutex_init(&db->shards[i].lock, NULL);
		db->shards[i].j.fd = db->shards[i].j.dirfd = -1;
	}
	set_options(db, cfg);
	db->wopts = rocksdb_writeoptions_create();
	rocksdb_writeoptions_disable_WAL(db->wopts, 1);
	db->ropts = rocksdb_readoptions_create();
	rocksdb_readoptions_set_verify_checksums(db->ropts, 1);

	for (unsigned i = 0; i < db->n; i++) {
		if (db->wal_dir) {
			snprintf(path, sizeof(path), "%s/shard-%u", db->wal_dir, i);
			rocksdb_options_set_wal_dir(db->opts, path);
		}
		snprintf(path, sizeof(path), "%s/shard-%u", db->dir, i);
		db->shards[i].db = rocksdb_open(db->opts, path, &err);
		if (err) {
			rc = strncmp(err, "Corruption", 10) == 0 ? LOGDB_ERR_CORRUPT : LOGDB_ERR_IO;
			logdb_fail(db, rc, "opening LogDB shard %s: %s", path, err);
			rocksdb_free(err);
			goto err_after_shards;
		}
		if ((rc = logdb_journal_open(db, i, db->wal_dir ? db->wal_dir : db->dir)))
			goto err_after_shards;
	}
	if (pthread_create(&db->bg, NULL, bg_main, db) != 0) {
		rc = logdb_fail(db, LOGDB_ERR_NOMEM, "cannot start the compaction thread");
		goto err_after_shards;
	}
	db->bg_started = true;
	if ((rc = logdb_writers_start(db))) {
		logdb_writers_stop(db);
		stop_bg(db);
		goto err_after_shards;
	}
	*out = db;
	return LOGDB_OK;

err_after_shards:
	close_shards(db);
	rocksdb_options_destroy(db->opts);
	rocksdb_writeoptions_destroy(db->wopts);
	rocksdb_readoptions_destroy(db->ropts);
	cfg_free(cfg, db->shards);
err_after_dir:
	cfg_free(cfg, db->wal_dir);
	cfg_free(cfg, db->dir);
err_after_db:
	if (errmsg && errmsg_len)
		snprintf(errmsg, errmsg_len, "%s", db->errmsg[0] ? db->errmsg : logdb_strerror(rc));
	pthread_mutex_destroy(&db->err_lock);
	pthread_mutex_destroy(&db->bg_lock);
	pthread_cond_destroy(&db->bg_wake);
	pthread_cond_destroy(&db->bg_idle);
	cfg_free(cfg, db);
	return rc;
}

void logdb_close(struct logdb *db)
{
	if (db == NULL)
		return;
	logdb_writers_stop(db);
	stop_bg(db);
	close_shards(db);
	rocksdb_options_destroy(db->opts);
	rocksdb_writeoptions_destroy(db->wopts);
	rocksdb_readoptions_destroy(db->ropts);
	logdb_free(db, db->shards);
	logdb_free(db, db->wal_dir);
	logdb_free(db, db->dir);
	pthread_mutex_destroy(&db->err_lock);
	pthread_mutex_destroy(&db->bg_lock);
	pthread_cond_destroy(&db->bg_wake);
	pthread_cond_destroy(&db->bg_idle);
	logdb_free(db, db);
}
