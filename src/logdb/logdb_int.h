/*
 * logdb_int.h - LogDB internals shared by logdb.c (open, errors, background
 * compaction, busy signal), logdb_write.c and logdb_read.c.
 */
#ifndef DRAGONRAFT_LOGDB_INT_H
#define DRAGONRAFT_LOGDB_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <rocksdb/c.h>

#include "logdb/logdb.h"
#include "logdb/logdb_codec.h"

/*
 * What a shard remembers of one member, loaded from disk on first use.
 *
 * The entry range lives in the 0x0303 key (Dragonboat's "max index" key),
 * written in the same batch as the entries.  We keep it rather than derive the
 * last index with a reverse seek because (a) restart reads it with one point
 * lookup per member, while a reverse seek has to step over the range
 * tombstones that conflict truncation and compaction leave behind, and (b) it
 * also records the first index after logdb_remove_entries_to(), which a seek
 * could not tell apart from entries whose deletion is still in a tombstone.
 */
struct member {
	uint64_t group_id, node_id;
	bool used;   /* slot holds a member */
	bool loaded; /* first/last/hs reflect what is on disk */
	bool stored; /* a range or state key exists on disk */
	bool hs_stored;
	uint64_t first, last; /* entries [first, last]; last = first - 1 when empty */
	struct raft_hard_state hs;
};

/* A pending background compaction of keys [lo, hi). */
struct compact_job {
	unsigned shard;
	uint8_t lo[LOGDB_INDEX_KEY_LEN + 1];
	uint8_t hi[LOGDB_INDEX_KEY_LEN + 1];
	uint8_t lo_len, hi_len;
};

#define COMPACT_QUEUE 64

/* A shard's part of one save, handed to the shard's writer thread. */
struct shard_job {
	struct logdb_worker *w;
	const struct logdb_update *updates;
	size_t n;
	bool sync;
	int rc;
	bool posted; /* taken by a save until it collects the result */
	bool done;
};

/*
 * A shard's journal (logdb_journal.c): every write batch goes first, as one
 * record, to a segment file of the journal and then to RocksDB with its WAL
 * disabled.  Segment files are named by the LSN of their first byte,
 * zero-filled before records are written over them (so an fdatasync changes
 * no metadata) and recycled once a checkpoint has every record in them in
 * RocksDB's SST files.  Guarded by the shard lock, except ckpt (the
 * background thread's).
 */
struct journal {
	char *dir; /* <wal_dir or dir>/journal-N */
	int dirfd;
	int fd;             /* the current segment, -1 before the first write */
	uint64_t seg_start; /* its first LSN (its name) */
	uint64_t seg_cap;   /* bytes it holds before the next switch */
	uint64_t prepared;  /* bytes of it zero-filled (its size) */
	uint64_t pos;       /* LSN of the next record */
	bool dirty;         /* written since its last fdatasync */
	uint64_t *segs;     /* every segment file's start LSN, ascending; the last is current */
	size_t n_segs, cap_segs;
	size_t n_free;      /* segs[0..n_free) hold only checkpointed records: reusable */
	uint64_t ckpt_want; /* LSN the next checkpoint covers (set at a switch) */
	uint64_t ckpt;      /* the checkpoint on disk: records below it are in SST files */
	uint64_t dropped;   /* open: bytes of a dropped last record at pos (note_tail), zeroed
	                     * before writing goes on */
};

struct shard {
	rocksdb_t *db;
	struct journal j;
	pthread_mutex_t lock; /* orders this shard's writes; guards the cache */
	struct member *tab;   /* open-addressing hash table of members */
	size_t cap, count;

	/* the writer thread that lets one save sync several shards in parallel */
	pthread_t thread;
	bool thread_started, stop;
	pthread_mutex_t job_lock;
	pthread_cond_t job_ready, job_done;
	struct shard_job job;

	/*
	 * The busy signal, computed from RocksDB's properties only when asked
	 * and unknown: every write resets it to unknown (only writes make a
	 * shard busier), and a busy shard is asked again each time.  An unknown
	 * one whose LSM tree did not change since it was last found not busy
	 * (RocksDB's super version number, bumped at every memtable switch,
	 * flush and compaction, and with it the write stall state) is not busy
	 * still: one property read, not four, per proposal under load.
	 */
	atomic_int busy;              /* enum busy_state */
	atomic_uint_fast64_t idle_sv; /* super version + 1 when last found not busy; 0: none */
};

enum busy_state { BUSY_UNKNOWN = 0, BUSY_NO = 1, BUSY_YES = 2 };

struct logdb {
	char *dir;
	char *wal_dir;
	unsigned n;
	bool no_sync;
	atomic_bool no_dsync_write; /* pwritev2(RWF_DSYNC) refused here: write, then fdatasync */
	int l0_slowdown;            /* L0 files at which RocksDB slows writes */
	const struct logdb_alloc *alloc;
	void (*log_fn)(void *ctx, int level, const char *msg); /* NULL = stderr */
	void *log_ctx;
	struct shard *shards;
	uint64_t seg_size; /* journal segment size (one memtable) */
	rocksdb_options_t *opts;
	rocksdb_writeoptions_t *wopts; /* RocksDB's WAL disabled: the journal is the log */
	rocksdb_readoptions_t *ropts;

	pthread_mutex_t err_lock;
	char errmsg[512];
	/*
	 * Set by the first failed write, sync or flush (logdb_write_failed):
	 * from then on every write, flush and compaction is refused without
	 * calling RocksDB.  A failed fsync is never retried (the kernel may
	 * have dropped the data it could not write), and RocksDB's own writers
	 * must not be called again after an error.  Reads go on.
	 */
	atomic_bool stopped;
	char stopmsg[400]; /* the failure that stopped it (err_lock) */

	pthread_t bg;
	bool bg_started;
	pthread_mutex_t bg_lock;
	pthread_cond_t bg_wake, bg_idle;
	bool bg_stop, bg_running;
	struct compact_job jobs[COMPACT_QUEUE];
	unsigned job_head, job_count;
	uint64_t full_compact_mask; /* shards to compact entirely (queue overflowed) */
	uint64_t ckpt_mask;         /* shards whose journal wants a checkpoint */
};

/* Per-update work of one save, reused across saves. */
struct logdb_worker {
	struct logdb *db;
	struct logdb_buf *vals;         /* value buffer, one per shard */
	rocksdb_writebatch_t **batches; /* one per shard */
	unsigned *shard_of;             /* per update */
	size_t shard_of_cap;
};

/* Allocation through the hooks. */
void *logdb_malloc(struct logdb *db, size_t n);
/* Reallocation through the hooks. */
void *logdb_realloc(struct logdb *db, void *p, size_t n);

/* Record a message for rc (printf-style) and return rc. */
int logdb_fail(struct logdb *db, int rc, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
/* A line for logdb_config.log_fn (printf-style; LOGDB_LOG_*). */
void logdb_note(struct logdb *db, int level, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
/* Turn a RocksDB error string (freed here) into LOGDB_ERR_IO with context
 * (LOGDB_ERR_CORRUPT for RocksDB's Corruption status). */
int logdb_io_fail(struct logdb *db, char *err, const char *what);
/* A write, sync or flush failed (err freed here): stop the LogDB; LOGDB_ERR_IO. */
int logdb_write_failed(struct logdb *db, char *err, const char *what);
/* A write, sync or flush failed while doing what, because why: stop the LogDB; LOGDB_ERR_IO. */
int logdb_stop(struct logdb *db, const char *what, const char *why);
/* LOGDB_ERR_IO (naming the first failure) once the LogDB stopped, else LOGDB_OK. */
int logdb_check_stopped(struct logdb *db);

/* The shard of group_id. */
struct shard *logdb_shard(struct logdb *db, uint64_t group_id);
/* Find (loading from disk if needed) the cache slot of a member; shard lock held. */
int logdb_member(struct logdb *db, struct shard *s, uint64_t group_id, uint64_t node_id,
                 struct member **out);
/* Find or add the cache slot of a member without loading it; shard lock held. */
int logdb_member_slot(struct logdb *db, struct shard *s, uint64_t group_id, uint64_t node_id,
                      struct member **out);
/* Forget the cached state of a member (after a failed write); shard lock held. */
void logdb_member_forget(struct shard *s, uint64_t group_id, uint64_t node_id);

/*
 * The first index of the stored run that holds entry index of (g, n): the
 * greatest run key <= index, or 0 if there is none.  Shard lock held.
 */
int logdb_run_holding(struct logdb *db, struct shard *s, uint64_t g, uint64_t n, uint64_t index,
                      uint64_t *start);

/* Start one writer thread per shard (when there are several shards). */
int logdb_writers_start(struct logdb *db);
/* Stop and join the writer threads. */
void logdb_writers_stop(struct logdb *db);

/* Exclusive upper bound of every 28-byte key of (kind, group, node): prefix, 8 x 0xff, 0. */
void logdb_range_end(uint8_t *key, unsigned kind, uint64_t group_id, uint64_t node_id);
/* Queue a background compaction of [lo, hi) in shard si. */
void logdb_queue_compaction(struct logdb *db, unsigned si, const uint8_t *lo, size_t lo_len,
                            const uint8_t *hi, size_t hi_len);

/* Open shard si's journal in base/journal-si and replay it into the shard's RocksDB. */
int logdb_journal_open(struct logdb *db, unsigned si, const char *base);
/* Checkpoint shard si's journal (unless the LogDB stopped), close its files and free it. */
void logdb_journal_close(struct logdb *db, unsigned si);
/* Append batch b to s's journal, fdatasynced if sync (shard lock held). */
int logdb_journal_append(struct logdb *db, struct shard *s, rocksdb_writebatch_t *b, bool sync);
/* Flush shard si, record its checkpoint, free the segments it covers (background thread). */
int logdb_journal_checkpoint(struct logdb *db, unsigned si);
/* Ask the background thread for a checkpoint of shard si. */
void logdb_queue_checkpoint(struct logdb *db, unsigned si);

#endif /* DRAGONRAFT_LOGDB_INT_H */
