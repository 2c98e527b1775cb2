/*
 * logdb.h - the LogDB: everything the Raft engine persists (bootstrap info,
 * hard state, log entries, snapshot metadata), kept in N RocksDB instances
 * ("shards") through RocksDB's C API.  After Dragonboat's ILogDB; DESIGN §7.
 *
 * Threads: one struct logdb may be used from several threads at once.  Each
 * thread that saves Raft state owns a struct logdb_worker (its reusable write
 * batches and buffers); reads need no worker.
 *
 * Durability: logdb_save() (unless told not to sync) returns only after
 * every touched shard's batch is fsynced.  Each shard's batch is atomic.  Across shards a crash may
 * keep one shard's batch and lose another's; that is safe because a group (and all of its keys)
 * lives in exactly one shard, so every group sees all or nothing of one save.
 *
 * Failures: the first write, sync or flush that fails stops the LogDB for
 * good: every later write, flush and compaction (any shard) returns
 * LOGDB_ERR_IO naming that failure without calling RocksDB, since a failed
 * fsync must not be retried (the kernel may have dropped the pages it could
 * not write) and RocksDB's writers must not be used after an error.  Reads
 * go on; reopening is the way back.  Opening fails with LOGDB_ERR_CORRUPT
 * when a shard's journal is damaged before its end (a torn or damaged last
 * record is dropped, and said so through logdb_config.log_fn); a read or an open that meets
 * RocksDB's Corruption status (a failed block checksum, a short file) is LOGDB_ERR_CORRUPT too.
 *
 * Memory: pointers in the structs below are borrowed unless said otherwise.
 */
#ifndef DRAGONRAFT_LOGDB_H
#define DRAGONRAFT_LOGDB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raft/raft_msg.h"

/* Return codes: 0 is success, all errors are negative. */
enum logdb_rc {
	LOGDB_OK = 0,
	LOGDB_ERR_NOMEM = -1,       /* allocation failed */
	LOGDB_ERR_IO = -2,          /* RocksDB or the file system reported an error */
	LOGDB_ERR_CORRUPT = -3,     /* a stored value failed its checksum or decode */
	LOGDB_ERR_NOT_FOUND = -4,   /* no such record */
	LOGDB_ERR_COMPACTED = -5,   /* the requested entries were removed */
	LOGDB_ERR_UNAVAILABLE = -6, /* the requested entries are beyond the last index */
	LOGDB_ERR_INVALID = -7,     /* bad argument */
	LOGDB_ERR_SHARDS = -8,      /* opened with a shard count other than the stored one */
	LOGDB_ERR_TOO_BIG = -9,     /* a record larger than the format allows */
};

/* Static description of an rc. */
const char *logdb_strerror(int rc);

/* Allocation hooks, swappable so tests can inject failures. */
struct logdb_alloc {
	void *(*malloc)(size_t size);
	void *(*realloc)(void *p, size_t size);
	void (*free)(void *p);
};

#define LOGDB_DEFAULT_SHARDS          4
#define LOGDB_MAX_SHARDS              64
#define LOGDB_DEFAULT_MEMTABLE_BUDGET (256ull << 20)
#define LOGDB_MEMTABLES_PER_SHARD     4
#define LOGDB_ADDR_MAX                256  /* bytes of a member address, NUL included */
#define LOGDB_PATH_MAX                1024 /* bytes of a snapshot file path, NUL included */

struct logdb_config {
	const char *dir;     /* data directory (created if missing) */
	const char *wal_dir; /* separate directory for the journals (and RocksDB's WAL), or NULL */
	unsigned shards;     /* RocksDB instances; 0 = LOGDB_DEFAULT_SHARDS */
	/*
	 * Memory for every shard's memtables together (RocksDB's write
	 * buffers): each shard gets LOGDB_MEMTABLES_PER_SHARD memtables of
	 * budget / (shards * 4) bytes (at least 256 KiB), so even a stalled
	 * LogDB stays within it.  0 = LOGDB_DEFAULT_MEMTABLE_BUDGET (256 MiB).
	 */
	uint64_t memtable_budget;
	int l0_slowdown_trigger;         /* L0 files that slow writes (stop: +16); 0 = 20 */
	uint64_t journal_segment;        /* tests: journal segment bytes; 0 = one memtable */
	bool no_sync;                    /* tests only: do not fsync saves */
	bool disable_auto_compactions;   /* tests only: keep L0 files (busy tests) */
	const struct logdb_alloc *alloc; /* NULL = libc */
	/*
	 * Lines worth a log that are not errors (a journal tail dropped at
	 * open), called during logdb_open() on its caller's thread, level one
	 * of enum logdb_log_level; NULL = written to stderr.
	 */
	void (*log_fn)(void *ctx, int level, const char *msg);
	void *log_ctx;
};

/* Levels of logdb_config.log_fn. */
enum logdb_log_level {
	LOGDB_LOG_INFO = 0,    /* expected after a crash (a torn last record) */
	LOGDB_LOG_WARNING = 1, /* a crash alone cannot explain it on a fresh segment */
};

/* A member address as given to create_group. */
struct logdb_address {
	raft_id node_id;
	char addr[LOGDB_ADDR_MAX];
	uint64_t learned; /* the engine's order of learning it (0 = not recorded) */
};

/* What a member needs to start: written once when it is created. */
struct logdb_bootstrap {
	bool join;        /* joins an existing group (no initial membership) */
	uint32_t sm_type; /* the engine's state machine type */
	uint32_t n_addresses;
	struct logdb_address addresses[RAFT_MAX_MEMBERS];
	struct raft_membership membership; /* initial membership (if !join) */
	uint64_t addr_index; /* the log's membership changes up to here are in addresses
	                      * (0 = not recorded: records written before it was kept) */
};

/* One member stored on this node. */
struct logdb_node_info {
	uint64_t group_id;
	raft_id node_id;
};

/* Snapshot metadata; the snapshot file itself is the engine's. */
struct logdb_snapshot {
	struct raft_snapshot_meta meta; /* index, term, membership */
	char file[LOGDB_PATH_MAX];      /* path of the data file, "" for metadata-only */
	uint64_t size;                  /* bytes of the file */
	uint64_t checksum;              /* the engine's checksum of the file */
};

/*
 * One group's share of a save, shaped after struct raft_ready: persist
 * hard_state if hard_state_changed, append entries (replacing any stored entry
 * at or above entries[0].index), record snapshot if not NULL (an installed
 * snapshot replaces the whole log: every stored entry and older snapshot
 * records go, in the same batch; the update's entries then follow it).
 */
struct logdb_update {
	uint64_t group_id;
	raft_id node_id;
	bool hard_state_changed;
	struct raft_hard_state hard_state;
	uint32_t n_entries;
	const struct raft_entry *entries;      /* consecutive indexes */
	const struct logdb_snapshot *snapshot; /* NULL = none */
};

/* What a restarting member reads. */
struct logdb_raft_state {
	struct raft_hard_state hard_state;
	raft_index first_index; /* first entry still stored */
	uint64_t entry_count;   /* entries [first_index, first_index + entry_count) */
};

/*
 * Entries read by logdb_iterate_entries().  The arrays are owned by the struct
 * and reused across calls (no allocation once they are large enough);
 * ents[i].data points into buf and stays valid until the next call or
 * logdb_entries_free().
 */
struct logdb_entries {
	struct raft_entry *ents;
	uint32_t n, cap;
	uint8_t *buf;
	size_t buf_len, buf_cap;
	uint64_t bytes; /* payload bytes of ents[0..n) */
};

struct logdb;        /* opaque */
struct logdb_worker; /* opaque: one per saving thread */

/* Open (or create) the LogDB in cfg->dir; *out on success, else the reason in errmsg. */
int logdb_open(const struct logdb_config *cfg, struct logdb **out, char *errmsg, size_t errmsg_len);
/* Wait for background compactions, close every shard and free db. */
void logdb_close(struct logdb *db);
/* The message of the last error (copied into buf, NUL-terminated). */
const char *logdb_errmsg(struct logdb *db, char *buf, size_t len);
/* Number of shards. */
unsigned logdb_shards(const struct logdb *db);
/* The shard index that stores group_id. */
unsigned logdb_shard_of(const struct logdb *db, uint64_t group_id);

/* A worker's reusable batches and buffers. */
int logdb_worker_create(struct logdb *db, struct logdb_worker **out);
/* Free a worker. */
void logdb_worker_destroy(struct logdb_worker *w);

/* Record how member (group, node) starts, and list it in logdb_list_nodes(). */
int logdb_save_bootstrap(struct logdb *db, uint64_t group_id, raft_id node_id,
                         const struct logdb_bootstrap *bs);
/* Read the bootstrap info of (group, node); LOGDB_ERR_NOT_FOUND if none. */
int logdb_get_bootstrap(struct logdb *db, uint64_t group_id, raft_id node_id,
                        struct logdb_bootstrap *bs);
/* All members stored here; *out is allocated with the hooks (logdb_free()). */
int logdb_list_nodes(struct logdb *db, struct logdb_node_info **out, size_t *n);
/* Free memory a logdb_list_* call returned. */
void logdb_free(struct logdb *db, void *p);

/*
 * Persist n groups' updates: one synced batch per touched shard, the shards
 * written in parallel.  On an error some shards' batches may have been
 * written (each group still sees all or nothing of its update).  With sync
 * false the batches are written but not fsynced: a crash of the machine may
 * lose them (never a torn part of one), and a later synced write of the same
 * shard makes them durable too (the shard's journal is in write order).
 */
int logdb_save(struct logdb_worker *w, const struct logdb_update *updates, size_t n, bool sync);
/*
 * Make every write so far durable (the unsynced saves before the call: each
 * shard's journal is fdatasynced if written since its last sync).  Safe from
 * another thread while saves go on (they are not blocked by its syncs); a
 * failure stops the LogDB as a failed synced save does.
 */
int logdb_sync(struct logdb *db);
/* Entries [low, high) of (group, node), at most max_bytes of payload but at least one. */
int logdb_iterate_entries(struct logdb *db, uint64_t group_id, raft_id node_id, raft_index low,
                          raft_index high, uint64_t max_bytes, struct logdb_entries *out);
/* Free the arrays of out. */
void logdb_entries_free(struct logdb *db, struct logdb_entries *out);
/* Hard state and stored entry range; LOGDB_ERR_NOT_FOUND for an unknown member. */
int logdb_read_state(struct logdb *db, uint64_t group_id, raft_id node_id,
                     struct logdb_raft_state *out);
/* Drop entries <= index (reads below become LOGDB_ERR_COMPACTED); synced. */
int logdb_remove_entries_to(struct logdb *db, uint64_t group_id, raft_id node_id, raft_index index);
/* Queue a background RocksDB compaction of (group, node)'s entries <= index. */
int logdb_compact_entries_to(struct logdb *db, uint64_t group_id, raft_id node_id,
                             raft_index index);
/* Block until every queued background compaction has run. */
void logdb_wait_compactions(struct logdb *db);

/* Record snapshot metadata (synced). */
int logdb_save_snapshot(struct logdb *db, uint64_t group_id, raft_id node_id,
                        const struct logdb_snapshot *snap);
/* The snapshot with the highest index; LOGDB_ERR_NOT_FOUND if none. */
int logdb_get_snapshot(struct logdb *db, uint64_t group_id, raft_id node_id,
                       struct logdb_snapshot *snap);
/* All snapshots of (group, node), ascending index; *out from the hooks (logdb_free()). */
int logdb_list_snapshots(struct logdb *db, uint64_t group_id, raft_id node_id,
                         struct logdb_snapshot **out, size_t *n);
/* Delete the snapshot record at index (absent is not an error). */
int logdb_delete_snapshot(struct logdb *db, uint64_t group_id, raft_id node_id, raft_index index);
/* Record snapshot metadata and delete every older record, in one synced batch. */
int logdb_replace_snapshot(struct logdb *db, uint64_t group_id, raft_id node_id,
                           const struct logdb_snapshot *snap);

/*
 * A received snapshot at index is about to be recovered into the state
 * machine, before its record is saved: a synced marker, so that a restart
 * can tell a state machine ahead of the log because of it from one ahead of
 * a stale copy of the LogDB.  The save that installs a snapshot deletes the
 * marker in its batch; so do removal and import.
 */
int logdb_save_recovery(struct logdb *db, uint64_t group_id, raft_id node_id, raft_index index);
/* The marker's index, 0 when there is none. */
int logdb_get_recovery(struct logdb *db, uint64_t group_id, raft_id node_id, raft_index *index);

/* Delete everything stored for (group, node) (synced), then compact it away. */
int logdb_remove_node_data(struct logdb *db, uint64_t group_id, raft_id node_id);
/*
 * Disaster recovery: replace all of (group, node)'s data with the state a
 * snapshot implies (bootstrap from its membership, the member's stored
 * address book kept; hard state term/commit at the snapshot, empty log after
 * it, the snapshot record).
 */
int logdb_import_snapshot(struct logdb *db, uint64_t group_id, raft_id node_id,
                          const struct logdb_snapshot *snap);

/*
 * True when the shard holding group_id is one step from a RocksDB write
 * slowdown (immutable memtables or L0 files), or in one: backpressure that
 * clears by itself, so callers wait and try again.  A stopped LogDB is not
 * busy: it takes no writes ever again, and the next save says so.  Cheap:
 * computed at most once per write to the shard while not busy, so it may lag
 * the shard's background flushes by one save.
 */
bool logdb_busy(struct logdb *db, uint64_t group_id);
/* Flush every shard's memtables to SST files (tests, backups). */
int logdb_flush(struct logdb *db);

#endif /* DRAGONRAFT_LOGDB_H */
