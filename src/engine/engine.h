/*
 * engine.h - the multi-group engine (Dragonboat's NodeHost), without
 * PostgreSQL and without direct I/O: one struct engine runs many Raft groups
 * of one node.  Disk, network and state machines are reached through the
 * three ops structs below, so the real LogDB and transport plug in through
 * small adapters and tests use in-memory fakes.
 *
 * Threads: none.  Every function must be called from the thread that drives
 * the engine (the libuv loop in production).  Callbacks given to client
 * operations run at the end of engine_run_round(), or inside engine_tick(),
 * engine_deliver(), engine_deliver_snapshot(), engine_stop_group() and
 * engine_destroy(), never inside another client operation; they may start
 * new operations but must not start, stop or destroy groups or the engine,
 * nor call engine_run_round() (those return ENGINE_ERR_INVALID there).
 *
 * The driver's loop:
 *
 *	every rtt_ms:         engine_tick(e);
 *	on network input:     engine_deliver(e, msgs, n), engine_deliver_snapshot(...),
 *	                      engine_report_unreachable(...), engine_snapshot_sent(...);
 *	whenever work queued: engine_run_round(e);  (engine_has_work() says so)
 *
 * One round visits the groups with work (the ready set: messages arrived,
 * a tick made work, an operation started, a report came; idle groups cost
 * nothing), gathers their Readys, sends the leaders' appends (they go out
 * before the leader's own write), writes their entries and changed hard
 * states with ONE storage save (one synced batch per LogDB shard), sends the
 * other messages, applies committed entries to the state machines, advances
 * the Raft cores, completes client callbacks, then takes metadata snapshots
 * and compacts logs where due.
 *
 * Failures: a storage failure (a save, a sync, a read of entries or terms,
 * snapshot metadata, compaction; corruption included) stops the whole
 * engine: nothing more is sent, acknowledged or applied, engine_failed()
 * turns true, engine_errmsg() names the group, the node and the index (with
 * the storage's own message), every group's status says
 * ENGINE_GROUP_ENGINE_FAILED (all are listed by engine_take_changed()), and
 * every pending operation completes with ENGINE_ERR_FAILED: its outcome is
 * unknown, a proposal may still commit.  Only a new process goes on (the
 * PostgreSQL worker exits with FATAL).  A state machine failure, or an error
 * of a group's Raft core that is not a refusal of the input (a bug), stops
 * only that group: ENGINE_GROUP_FAILED, its operations complete with
 * ENGINE_ERR_SM.
 *
 * Proposals: each proposal's entry starts with a 16-byte header (client id,
 * series; little-endian) that the engine strips before the state machine sees
 * the data, so the proposing node recognises its entry when it commits, also
 * after a follower forwarded it.  Callbacks fire after the entry was applied
 * on this node.  A proposal whose fate is unknown (leadership lost while it
 * was in flight) completes with ENGINE_ERR_UNKNOWN and may still commit: it is
 * never reported as failed.
 */
#ifndef DRAGONRAFT_ENGINE_H
#define DRAGONRAFT_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raft/raft_msg.h"

/* Return codes and completion results: 0 is success, errors are negative. */
enum engine_rc {
	ENGINE_IN_PROGRESS = 1,     /* state machine snapshot ops only: it ends later */
	ENGINE_OK = 0,              /* done; for a proposal: committed and applied */
	ENGINE_ERR_NOMEM = -1,      /* allocation failed */
	ENGINE_ERR_INVALID = -2,    /* bad argument */
	ENGINE_ERR_NO_GROUP = -3,   /* no such group on this node */
	ENGINE_ERR_EXISTS = -4,     /* the group is already running */
	ENGINE_ERR_NOT_LEADER = -5, /* this node does not lead the group (leader id given) */
	ENGINE_ERR_DROPPED = -6,    /* not appended (no leader, overwritten): safe to retry */
	ENGINE_ERR_UNKNOWN = -7,    /* leadership changed in flight: it may still commit */
	ENGINE_ERR_BUSY = -8,       /* backpressure: LogDB busy or too many uncommitted bytes */
	ENGINE_ERR_TIMEOUT =
	        -9, /* no outcome in time (forwarded proposal, read, change); may still commit */
	ENGINE_ERR_TOO_BIG = -10,   /* entry larger than max_entry_bytes */
	ENGINE_ERR_PENDING = -11,   /* a membership change or transfer is already running */
	ENGINE_ERR_REJECTED = -12,  /* the Raft core refused (removed id, bad member, ...) */
	ENGINE_ERR_STORAGE = -13,   /* the storage ops failed; the engine stops */
	ENGINE_ERR_SM = -14,        /* the state machine failed; the group stops */
	ENGINE_ERR_STOPPED = -15,   /* the group was stopped before the outcome was known */
	ENGINE_ERR_RAFT = -16,      /* unexpected Raft core error (see engine_errmsg) */
	ENGINE_ERR_NOT_FOUND = -17, /* storage: nothing stored for that group */
	ENGINE_ERR_SNAPSHOT = -18,  /* a snapshot could not be made, sent or installed */
	ENGINE_ERR_FAILED = -19,    /* the engine stopped (storage failure): outcome unknown */
	ENGINE_ERR_NOT_HELD = -20,  /* log entries asked for are not stored here (compacted,
	                             * or not yet written) */
};

/* Static description of an rc. */
const char *engine_strerror(int rc);

/* Allocation hooks, swappable so tests can inject failures. */
struct engine_alloc {
	void *(*malloc)(size_t size);
	void *(*realloc)(void *p, size_t size);
	void (*free)(void *p);
};

#define ENGINE_ADDR_MAX     256  /* bytes of a member address, NUL included */
#define ENGINE_PATH_MAX     1024 /* bytes of a snapshot path, NUL included */
#define ENGINE_HEADER_BYTES 16   /* proposal header: client id, series */
/*
 * The latest plausible address stamp (wall-clock microseconds): 2200-01-01
 * 00:00 UTC.  A stamp above it (only a corrupt or hostile one: a membership
 * change's context, an ENTRY_ADDRESSES entry, a saved address book) counts as
 * absent, on every member and in every build alike: taken as the engine's
 * clock, it would pin every stamp this node gives after it (review of
 * addrstamp85: one near UINT64_MAX saturated the clock and corrections
 * stopped spreading between nodes).
 */
#define ENGINE_STAMP_MAX UINT64_C(7258118400000000)

/*
 * The longest file name the engine and the transport put in the snapshot
 * directory, its slash included: a received file
 * "/snap-g<group>-n<from>-i<index>-t<term>.snap" (each number up to 20
 * digits, 98 bytes) renamed to "<that>.recovering" for its install.  The
 * engine's own outgoing files ("/snap-<node>-<group>-<tag>-<seq>") take 85.
 */
#define ENGINE_SNAPSHOT_NAME_MAX 109
/* The longest snapshot directory engine_create() takes (bytes, NUL excluded): every
 * file name in it fits a path of ENGINE_PATH_MAX. */
#define ENGINE_SNAPSHOT_DIR_MAX (ENGINE_PATH_MAX - 1 - ENGINE_SNAPSHOT_NAME_MAX)

/* A member of a group and the address other nodes dial. */
struct engine_member {
	raft_id node_id;
	char addr[ENGINE_ADDR_MAX];
	uint64_t learned; /* the engine's: when this node learned it, ordered across groups
	                   * (0 = not recorded) */
};

/*
 * How a member starts (the LogDB bootstrap record).  members doubles as the
 * group's address book: the engine saves it again when a membership change
 * brings a new address.  membership is filled in by the engine.
 */
struct engine_bootstrap {
	bool join; /* joins an existing group: no initial membership */
	uint32_t n_members;
	struct engine_member members[RAFT_MAX_MEMBERS]; /* initial members / known addresses */
	struct raft_membership membership;              /* initial voters (empty when join) */
	/* The engine's: the log's membership changes up to here are in members, so
	 * a restart that applies them again does not learn their addresses again
	 * (0 = not recorded: it does). */
	raft_index addr_index;
};

/*
 * Borrowed-memory arena that storage implementations fill entry data into;
 * pointers stay valid until the engine resets it (after the group's advance).
 */
struct engine_arena;
/* Room for n > 0 bytes in a; NULL when out of memory. */
void *engine_arena_alloc(struct engine_arena *a, size_t n);

/* ---- storage (LogDB) ---------------------------------------------------- */

/* One group's share of a save, shaped after struct raft_ready. */
struct engine_update {
	uint64_t group_id;
	bool hard_state_changed;
	struct raft_hard_state hard_state;
	/* installed snapshot: the log up to snapshot->index is replaced by it */
	const struct raft_snapshot_meta *snapshot;
	uint32_t n_entries;
	const struct raft_entry *entries; /* consecutive; replace stored entries >= [0].index */
};

/* What a restarting member reads back. */
struct engine_stored_state {
	struct engine_bootstrap bootstrap;
	struct raft_hard_state hard_state;
	raft_index first_index; /* first entry stored (last_index + 1 when none) */
	raft_index last_index;  /* last entry stored (snapshot index when none) */
	raft_term prev_term;    /* term of entry first_index - 1 (0 when first_index is 1) */
	struct raft_snapshot_meta snapshot; /* latest snapshot; index 0 = none */
	raft_index recovery; /* a received snapshot whose recovery started, not yet saved
	                      * as installed (save_recovery); 0 = none */
};

/*
 * The engine's view of the LogDB.  Every function returns an engine_rc.  The
 * contract the engine relies on: save() is durable when it returns (one
 * synced batch per shard); compact(i) keeps term(i) answerable (the entry at i or a
 * record of its term stays), so Raft can match appends right after it.
 */
struct engine_storage_ops {
	void *ctx;
	/* Record (or replace) a member's bootstrap info, synced, before its first save. */
	int (*save_bootstrap)(void *ctx, uint64_t group_id, const struct engine_bootstrap *bs);
	/*
	 * Persist many groups' updates in one call, synced.  The engine saves
	 * only what must be durable (entries, snapshots, a new term or vote): a
	 * hard state that only moved the commit index goes with the group's
	 * next save (a restart starts it at the state machine's durable
	 * applied index if that is further, and learns the rest again from the
	 * leader), except before a membership change is applied: a restart
	 * applies the log's changes again only up to that commit index.
	 */
	int (*save)(void *ctx, const struct engine_update *u, size_t n);
	/*
	 * Optional, with sync (engine_config.defer_leader_sync): write like
	 * save() without waiting for the sync.  A later synced save (or sync)
	 * must make every earlier write durable, and a crash may lose only a
	 * suffix of the writes that no sync covered.
	 */
	int (*write)(void *ctx, const struct engine_update *u, size_t n);
	/* Make every write so far durable: called from another thread while the engine runs
	 * (engine_sync_begin() / engine_sync_done()), and from the engine's own in
	 * engine_start_group() while writes may be unsynced (both at once, then). */
	int (*sync)(void *ctx);
	/* Everything a restart needs; ENGINE_ERR_NOT_FOUND for an unknown group. */
	int (*load)(void *ctx, uint64_t group_id, struct engine_stored_state *out);
	/* Groups stored here: up to cap ids into ids, total count in *n. */
	int (*list)(void *ctx, uint64_t *ids, size_t cap, size_t *n);
	/* Entries [lo, hi), at most max_bytes but at least one; data copied into arena. */
	int (*entries)(void *ctx, uint64_t group_id, raft_index lo, raft_index hi,
	               uint64_t max_bytes, struct raft_entry *out, uint32_t *n,
	               struct engine_arena *arena);
	/* Term of stored entry i (first_index - 1 <= i <= last_index). */
	int (*term)(void *ctx, uint64_t group_id, raft_index i, raft_term *t);
	/* Record snapshot metadata (synced). */
	int (*save_snapshot)(void *ctx, uint64_t group_id, const struct raft_snapshot_meta *m);
	/* A received snapshot at index goes into the state machine now (synced); the save
	 * that installs a snapshot forgets it (load() returns it until then). */
	int (*save_recovery)(void *ctx, uint64_t group_id, raft_index index);
	/* Entries <= index are no longer needed; term(index) must stay answerable. */
	int (*compact)(void *ctx, uint64_t group_id, raft_index index);
	/* Delete everything stored for the group. */
	int (*remove)(void *ctx, uint64_t group_id);
	/* True while the shard holding the group is near its write-stall limits (asked per
	 * proposal: must be cheap). */
	bool (*busy)(void *ctx, uint64_t group_id);
	/* Optional: the storage's description of its last error (named in engine_errmsg). */
	const char *(*errmsg)(void *ctx);
};

/* ---- network (transport) ------------------------------------------------ */

/*
 * The engine's view of the transport.  send() copies or encodes the message
 * before returning; a message that cannot be delivered is reported back with
 * engine_report_unreachable().  send_snapshot() takes over the file at path
 * (whatever it returns) and deletes it when done; the receiver hands the file
 * and the message together to engine_deliver_snapshot(), and the sender
 * reports the end with engine_snapshot_sent().
 */
struct engine_network_ops {
	void *ctx;
	/* Queue one message to m->to. */
	int (*send)(void *ctx, const struct raft_message *m);
	/* Stream the snapshot file at path for m (RAFT_MSG_SNAPSHOT, m->snapshot set). */
	int (*send_snapshot)(void *ctx, const struct raft_message *m, const char *path);
	/* node_id listens at addr (from group members and membership changes). */
	int (*add_peer)(void *ctx, raft_id node_id, const char *addr);
	/*
	 * Optional: write what was queued now, calling nothing back.  A round
	 * calls it after a leader's appends, before the save it fsyncs, so
	 * that the followers' writes overlap the leader's own (thesis 10.2.1);
	 * without it they leave with the round's other messages.
	 */
	void (*flush)(void *ctx);
	/*
	 * Optional: no group here has node_id any more (as a member or in its
	 * address book: it was removed, or this node left the groups it shared):
	 * forget its address and what was queued to it, and refuse it until
	 * add_peer declares it again.  Must call nothing back from inside.
	 */
	void (*remove_peer)(void *ctx, raft_id node_id);
	/*
	 * Optional: group_id stopped here (engine_stop_group, engine_remove_group_data):
	 * drop what was received for it and not handed to the engine (a snapshot file
	 * whose message has not come, a stream under way or cut off midway), since
	 * nothing would ever take it.  Must call nothing back from inside.
	 */
	void (*group_stopped)(void *ctx, uint64_t group_id);
};

/* ---- state machine ------------------------------------------------------ */

/* One committed entry as the state machine sees it (proposal header removed). */
struct engine_sm_entry {
	raft_index index;
	raft_term term;
	uint32_t type; /* enum raft_entry_type; conf changes carry no data here */
	uint32_t len;
	const uint8_t *data;
};

/*
 * An on-disk state machine, one per group.  It must skip nothing: the engine
 * hands it every committed entry above its durable applied index, in order.
 * apply() may also just queue the entries for another process (the
 * PostgreSQL apply worker): the engine's applied index, and the callbacks
 * that wait for it, then mean "handed to the state machine", and
 * durable_applied() reports what has really been made durable (compaction
 * and restarts go by it).  save_snapshot() may capture any index at or below
 * what was handed over, as long as it reports that index.
 *
 * Full snapshots may take long (the PostgreSQL state machine exports or loads
 * tables), so both snapshot ops may run in the background: they return
 * ENGINE_IN_PROGRESS and report the end later, from the engine's thread and
 * outside engine calls, with engine_snapshot_saved() / engine_snapshot_recovered().
 * Meanwhile the engine goes on with every group.  While a recovery runs its
 * group is frozen: no apply(), no messages, ticks or client operations (they
 * get ENGINE_ERR_BUSY), so the state machine sees nothing but the recovery.
 * One save runs per group at a time; followers that need a snapshot meanwhile
 * get the same one.  A state machine must give up its background work when
 * its group is stopped; the engine ignores reports for groups it no longer runs.
 */
struct engine_sm_ops {
	void *ctx;
	/* Apply a batch of committed entries, in log order. */
	int (*apply)(void *ctx, const struct engine_sm_entry *ents, uint32_t n);
	/* Last applied index that survives a crash (compaction stays below it). */
	raft_index (*durable_applied)(void *ctx);
	/* Write the whole state at its applied index to path; *index receives that index
	 * (or ENGINE_IN_PROGRESS, then engine_snapshot_saved() tells the index).  NULL: no
	 * full snapshot can be made; the log is then never compacted past what a member
	 * may still need (on a follower: not at all), and a member that needs one anyway
	 * (added after a compaction) is reported (snapshots_unavailable, needs_snapshot). */
	int (*save_snapshot)(void *ctx, const char *path, raft_index *index);
	/* Replace the whole state with the snapshot file at path (taken at index);
	 * or ENGINE_IN_PROGRESS, then engine_snapshot_recovered(). */
	int (*recover)(void *ctx, const char *path, raft_index index);
	/*
	 * Optional: true while the state machine cannot take more entries (say
	 * its queue to another process is full).  Committed entries then wait
	 * in the log, the group goes on persisting and acknowledging, and the
	 * state machine calls engine_sm_resume() once it has room again.
	 */
	bool (*apply_busy)(void *ctx);
};

/* ---- engine ------------------------------------------------------------- */

#define ENGINE_DEFAULT_MAX_UNCOMMITTED (32ull << 20)
#define ENGINE_DEFAULT_MAX_ENTRY       (64ull << 20)
#define ENGINE_UNLIMITED               UINT64_MAX
#define ENGINE_QUIESCE_OFF             UINT32_MAX

/* Numbers: 0 takes the default in [brackets]; the byte limits take ENGINE_UNLIMITED. */
struct engine_config {
	raft_id node_id;                /* this node, > 0 */
	unsigned rtt_ms;                /* tick length for drivers [50] */
	unsigned election_rtt;          /* election timeout in ticks [10] */
	unsigned heartbeat_rtt;         /* heartbeat interval in ticks [1] */
	uint64_t snapshot_entries;      /* metadata snapshot every N applied entries; 0 = never */
	uint64_t compaction_overhead;   /* entries kept below the snapshot point */
	uint64_t max_uncommitted_bytes; /* proposals' bytes a leader holds uncommitted, per
	                                 * group, beyond which they get ENGINE_ERR_BUSY (one
	                                 * larger entry passes when none is) [32 MiB] */
	uint64_t max_entry_bytes;       /* largest proposal (DESIGN max_entry_size) [64 MiB] */
	uint64_t max_msg_bytes;         /* entry bytes per append [1 MiB] */
	unsigned max_inflight_msgs;     /* appends in flight per follower [256] */
	unsigned request_timeout_ticks; /* client operations time out [4 * election_rtt] */
	unsigned quiesce_ticks;         /* idle ticks before a group quiesces: it stops ticking and
	                                 * heartbeating until any input (raft.h) [3 * election_rtt];
	                                 * ENGINE_QUIESCE_OFF: never */
	uint64_t entry_cache_bytes;     /* recent entries kept in memory per group [4 MiB] */
	bool forward_proposals;         /* followers forward proposals instead of NOT_LEADER */
	bool defer_leader_sync; /* a leader's writes of its term are synced in the background:
	                         * storage write() and sync(), engine_sync_begin() */
	uint64_t client_id;       /* proposal key prefix, new per start; 0 = node id + random */
	uint64_t seed;            /* randomised election timeouts; 0 = node id */
	const char *snapshot_dir; /* where snapshot files are written ["."] */
	const struct engine_alloc *alloc; /* NULL = libc */
	/* Lines for the operator (a follower's refusals of this node's snapshots, at most one
	 * a minute per follower and group; a membership change's address not learned), at an
	 * engine_log_level; NULL: none.  engine_uv passes them to its log_fn. */
	void (*log_fn)(void *ctx, int level, const char *line);
	void *log_ctx;
	/* A group whose core leads in a term that the engine has not seen it lead in: called
	 * inside the round, before any message of that term leaves (the other members learn
	 * the new leader from them: a transfer completes there), so that the embedder shows
	 * the role first (engine_group_status: leader, noop_index 0 until the round ends).
	 * It may call the engine's getters only (engine_group_status, engine_group_stats,
	 * engine_now, engine_peer_address, ...), no operation.  NULL: none. */
	void (*lead_fn)(void *ctx, uint64_t group_id);
	void *lead_ctx;
};

/* Levels of engine_config.log_fn's lines. */
enum engine_log_level {
	ENGINE_LOG_INFO = 1, /* for the operator's information */
	ENGINE_LOG_WARNING,  /* something the operator should look at; nothing stopped */
};

/* What a client operation completed with. */
struct engine_result {
	int rc; /* ENGINE_OK or a negative engine_rc */
	uint64_t group_id;
	raft_index index; /* committed index, read index or snapshot index */
	raft_id leader;   /* known leader for ENGINE_ERR_NOT_LEADER, else 0 */
};

/* Completion callback of a client operation; res is valid during the call. */
typedef void (*engine_done_cb)(void *ctx, const struct engine_result *res);

/* A waitable handle: pass engine_wait_cb and &w; w.done turns true once. */
struct engine_wait {
	bool done;
	struct engine_result res;
};
/* Completion callback that fills a struct engine_wait. */
void engine_wait_cb(void *ctx, const struct engine_result *res);

/* What a group is doing (engine_group_status.state). */
enum engine_group_state {
	ENGINE_GROUP_ACTIVE = 0,     /* taking part in its group */
	ENGINE_GROUP_RECOVERING = 1, /* the state machine loads a received snapshot */
	ENGINE_GROUP_FAILED = 2,     /* stopped by a failure (status.error says which) */
	ENGINE_GROUP_ENGINE_FAILED =
	        3, /* the whole engine stopped (storage): error = engine_errmsg */
};

/* A member as the leader sees it (engine_group_status.peers). */
struct engine_peer_status {
	raft_id node_id;
	bool voter;
	raft_index match;      /* highest index known replicated there */
	uint64_t contact_tick; /* engine tick of its last message in this group; 0 = never */
	bool needs_snapshot;   /* behind the log's first index: only a snapshot catches it up */
	/* needs_snapshot and it refused the last one for want of room (engine_snapshot_refused_by):
	 * its numbers (0 when its answer had none) */
	bool refused_no_room;
	uint64_t refused_need, refused_free, refused_min_free;
};

#define ENGINE_REFUSAL_LEN 384

/* Per-group status (copied into shared memory by the PostgreSQL side). */
struct engine_group_status {
	uint64_t group_id;
	int role; /* enum raft_role */
	raft_term term;
	raft_id leader;
	raft_index commit;
	raft_index applied;
	raft_index last_index;
	raft_index snapshot_index;
	raft_index first_index;
	bool writable; /* leader that applied everything up to its term's no-op (DESIGN 4) */
	raft_index noop_index; /* leader: its term's no-op (writable once the state machine,
	                        * not only the engine, applied it); 0 otherwise */
	struct raft_membership membership;
	int state;             /* enum engine_group_state */
	bool sending_snapshot; /* a state machine snapshot is being made for a follower */
	bool apply_held;       /* committed entries wait for the state machine (apply_busy) */
	bool quiescent;        /* idle: no ticks and no heartbeats until any input (the leader's
	                        * contact tick then stays as it was) */
	bool snapshot_needed;  /* leader: a member needs a snapshot (peers[].needs_snapshot) */
	uint64_t leader_contact_tick; /* engine tick of the last message from the leader
	                               * (the leader itself: now); 0 = never */
	uint32_t n_peers;             /* leader only: the other members' progress */
	struct engine_peer_status peers[RAFT_MAX_MEMBERS];
	char error[512]; /* ENGINE_GROUP_FAILED, ENGINE_GROUP_ENGINE_FAILED: what failed */
	/* This node refused the leader's snapshot for want of room (engine_snapshot_refused):
	 * why, until a snapshot arrives or entries do; "" otherwise. */
	char snapshot_refusal[ENGINE_REFUSAL_LEN];
};

/* Cumulative per-group counters since the group started on this node. */
struct engine_group_stats {
	uint64_t proposals;             /* proposals accepted on this node */
	uint64_t unknown_outcomes;      /* proposals completed with ENGINE_ERR_UNKNOWN */
	uint64_t entries_applied;       /* committed entries handed to the state machine */
	uint64_t elections;             /* new terms seen (each one an election) */
	uint64_t leader_changes;        /* times the known leader changed to another node */
	uint64_t snapshots_sent;        /* state machine snapshots streamed to followers */
	uint64_t snapshots_received;    /* snapshots installed here */
	uint64_t bytes_sent;            /* entry payload bytes sent in appends */
	uint64_t bytes_received;        /* entry payload bytes received in appends */
	uint64_t apply_errors;          /* state machine failures (apply, recovery) */
	uint64_t snapshots_unavailable; /* a follower needed a snapshot that the state machine
	                                 * cannot make (no save_snapshot): it stays behind */
};

struct engine; /* opaque */

/*
 * Whether dir (NULL: ".") can be the snapshot directory: at most
 * ENGINE_SNAPSHOT_DIR_MAX bytes, so that no file name in it is cut short.  If
 * not, ENGINE_ERR_INVALID and why in errmsg.  engine_create() checks it.
 */
int engine_check_snapshot_dir(const char *dir, char *errmsg, size_t errmsg_len);

/* Create an engine; on error the reason is in errmsg. */
int engine_create(const struct engine_config *cfg, const struct engine_storage_ops *storage,
                  const struct engine_network_ops *net, struct engine **out, char *errmsg,
                  size_t errmsg_len);
/*
 * Free the engine and every group; nothing is written.  Operations still
 * pending complete first, with ENGINE_ERR_STOPPED (callbacks run inside this
 * call; engine calls from them return ENGINE_ERR_STOPPED).
 */
void engine_destroy(struct engine *e);
/* The last error's human description. */
const char *engine_errmsg(const struct engine *e);

/*
 * Start this node's member of a group.  New group: bootstrap->join false and
 * the initial members (this node among them).  Joining: join true, members
 * may list known peers.  Restart of a stored group: bootstrap NULL.
 */
int engine_start_group(struct engine *e, uint64_t group_id, const struct engine_bootstrap *bs,
                       const struct engine_sm_ops *sm);
/* Stop a group's member (pending operations complete with ENGINE_ERR_STOPPED); the
 * snapshot files received for it are deleted (the network's too: group_stopped). */
int engine_stop_group(struct engine *e, uint64_t group_id);
/* Stop the member if running and delete its stored data. */
int engine_remove_group_data(struct engine *e, uint64_t group_id);
/* Groups the storage holds (for restarts): up to cap ids, total in *n. */
int engine_stored_groups(struct engine *e, uint64_t *ids, size_t cap, size_t *n);

/* Propose data; 0 means cb runs exactly once later, else cb never runs: ENGINE_OK once
 * it is committed and applied here, or, while the state machine holds the group's
 * entries back (apply_busy), once it is committed and request_timeout_ticks passed. */
int engine_propose(struct engine *e, uint64_t group_id, const void *data, uint32_t len,
                   engine_done_cb cb, void *ctx);
/* Linearizable read point: cb gets the index once this node applied it, or, while the
 * state machine holds the group's entries back (apply_busy), once request_timeout_ticks
 * passed: the caller then waits until its state machine applied that index.  A change
 * of leader, or no leader known, before a leader confirmed the read: it is asked again
 * of the next leader, until request_timeout_ticks passed (then ENGINE_ERR_DROPPED if no
 * leader is known, else ENGINE_ERR_TIMEOUT). */
int engine_read_index(struct engine *e, uint64_t group_id, engine_done_cb cb, void *ctx);
/* Add a voter (or promote a non-voter: addr NULL); cb once the change is applied here.
 * The change carries addr with a stamp of now (engine_address_stamp): every member
 * learns it as given then, so a correction given later wins wherever it applies. */
int engine_add_member(struct engine *e, uint64_t group_id, raft_id node_id, const char *addr,
                      engine_done_cb cb, void *ctx);
/* Add a non-voting member; cb once the change is applied here. */
int engine_add_nonvoter(struct engine *e, uint64_t group_id, raft_id node_id, const char *addr,
                        engine_done_cb cb, void *ctx);
/* Remove a member; cb once the change is applied here. */
int engine_remove_member(struct engine *e, uint64_t group_id, raft_id node_id, engine_done_cb cb,
                         void *ctx);
/* Hand leadership to target; cb once target leads (or timeout). */
int engine_transfer_leader(struct engine *e, uint64_t group_id, raft_id target, engine_done_cb cb,
                           void *ctx);
/* Take a metadata snapshot now and compact; cb gets the snapshot index, or
 * ENGINE_ERR_TIMEOUT once request_timeout_ticks passed while the state machine's
 * durable index stayed below the last membership change applied (a snapshot
 * records the membership as of its index). */
int engine_request_snapshot(struct engine *e, uint64_t group_id, engine_done_cb cb, void *ctx);

/* Messages from the network (any mix of groups); unknown groups are counted and dropped. */
int engine_deliver(struct engine *e, const struct raft_message *msgs, size_t n);
/*
 * A complete snapshot file for m (RAFT_MSG_SNAPSHOT) arrived at path.  The
 * engine owns the file from here, whatever the outcome: it keeps it for the
 * Ready that installs it, and deletes it at once if nothing will (the core
 * refused the message: an older term, at or below the commit index; or an
 * error: no such group, one recovering from another snapshot).
 */
int engine_deliver_snapshot(struct engine *e, const struct raft_message *m, const char *path);
/*
 * Messages to node_id were dropped, or (group_id 0) the connection to it was
 * lost: quiescent groups it is a member of wake up, so that a quiescent
 * follower whose leader is gone elects another.
 */
void engine_report_unreachable(struct engine *e, raft_id node_id, uint64_t group_id);
/*
 * This node refused node from's snapshot of group_id for want of room (why, for a
 * DBA): shown in its status (snapshot_refusal) until a snapshot arrives or entries do.
 * Ignored when this node knows another leader of the group: a late stream of a former
 * leader, whose refusal would stay on a group caught up by entries.
 */
void engine_snapshot_refused(struct engine *e, uint64_t group_id, raft_id from,
                             const char *why);
/*
 * Node `by` refused this node's snapshot of group_id for want of room: bytes it needed, had
 * free and keeps free.  Before the engine_snapshot_sent() that ends the stream.  The
 * leader's one record of it (snapshot.c) gives peers[].refused_no_room while `by` needs a
 * snapshot and no newer stream to it has started, and the log line (log_fn, once a minute
 * per member and group, also when leadership goes and comes back); it goes when `by`
 * takes a snapshot or catches up by entries, or leaves the group (or the group stops
 * here), and is not shown once this node stops leading it.
 */
void engine_snapshot_refused_by(struct engine *e, uint64_t group_id, raft_id by, uint64_t need,
                                uint64_t free_bytes, uint64_t min_free);
/* A snapshot stream to node `to` ended (not failed: it took the snapshot, and the record of
 * its refusals goes, with a log line). */
void engine_snapshot_sent(struct engine *e, raft_id to, uint64_t group_id, bool failed);

/* A background save_snapshot() of group_id ended: rc, and the index the file holds. */
int engine_snapshot_saved(struct engine *e, uint64_t group_id, int rc, raft_index index);
/* A background recover() of group_id ended with rc (not ENGINE_OK: the group stops). */
int engine_snapshot_recovered(struct engine *e, uint64_t group_id, int rc);

/*
 * Deferred leader syncs (engine_config.defer_leader_sync): a round whose
 * saves are all leaders' entries of their own term writes them without a
 * sync (storage write()) and goes on; they count for the leader's own vote,
 * and are applied there, once a background sync covered them.  The driver
 * runs that sync: when engine_sync_wanted() (after a round), it calls
 * engine_sync_begin(), storage sync() on another thread, then
 * engine_sync_done() with its rc, one sync at a time.  A failed sync stops
 * the engine, as a failed save does.
 */
bool engine_sync_wanted(const struct engine *e);
void engine_sync_begin(struct engine *e);
void engine_sync_done(struct engine *e, int rc);

/* One tick of logical time for every active group; times out client operations. */
void engine_tick(struct engine *e);
/* One round over the groups with work (see the top of this file); ENGINE_ERR_FAILED after a
 * storage failure. */
int engine_run_round(struct engine *e);
/* Did a storage failure stop the engine (reason in engine_errmsg)?  Restart the process. */
bool engine_failed(const struct engine *e);
/* Is there work for engine_run_round()? */
bool engine_has_work(const struct engine *e);

/*
 * node_id (a member of the group, or one being added) listens at addr: kept
 * in the group's address book (saved) and handed to the network, as the
 * address a membership change brings, learned now.  For addresses a user
 * gives again: the address dialed from now on, also when the book held it
 * already (learned before another group's).  A node's address is the
 * node's: every other group's book here that keeps node_id takes it too,
 * with the same stamp.  ENGINE_ERR_NO_GROUP.
 */
int engine_learn_address(struct engine *e, uint64_t group_id, raft_id node_id, const char *addr);
/*
 * The same for an address learned at stamp `learned` where it comes from
 * (the leader that replicated it: its engine_peer_learned, or for its own
 * address an engine_address_stamp): the network dials it unless it dials the
 * node at a newer one already, whichever group brought that, and the book
 * keeps the newer of the two.  Stamps are wall-clock: servers whose clocks
 * disagree can order two addresses the wrong way.  A stamp above
 * ENGINE_STAMP_MAX counts as absent: the address is learned as
 * engine_learn_address_unstamped learns it, with a WARNING.
 * ENGINE_ERR_NO_GROUP.
 */
int engine_learn_address_at(struct engine *e, uint64_t group_id, raft_id node_id, const char *addr,
                            uint64_t learned);
/*
 * The same for an address replicated without a stamp (an older build's
 * ENTRY_ADDRESSES_V1): as new as what the group's book says of node_id
 * before it (0 when nothing), so that it is learned in the group's log order
 * but never over a newer address from elsewhere: applied late or again (a
 * restart), it does not undo a correction or a stamped entry that comes
 * after it.  A book address that another group's book holds with the same
 * stamp (a correction given there) counts as just newer.  ENGINE_ERR_NO_GROUP.
 */
int engine_learn_address_unstamped(struct engine *e, uint64_t group_id, raft_id node_id,
                                   const char *addr);
/* When the address engine_peer_address gives was learned (0: none, or not recorded). */
uint64_t engine_peer_learned(const struct engine *e, raft_id node_id);
/* A stamp for an address given now: wall-clock microseconds, above every stamp
 * this engine handed out or was given. */
uint64_t engine_address_stamp(struct engine *e);
/*
 * A stamp another server gave this node's own address (which this node does not learn
 * from others: an ENTRY_ADDRESSES that lists it): the stamps this node gives from now on
 * are above it, so that its own address, proposed later, wins over it (a proposer whose
 * clock runs ahead); one ahead of the wall clock is saved in the address books (this
 * node's own entry), so they are after a restart too.  One above ENGINE_STAMP_MAX is
 * ignored, with a WARNING.
 */
void engine_address_seen(struct engine *e, uint64_t learned);
/*
 * The address this node dials node_id at (the one last handed to add_peer:
 * of the addresses its groups know for it, the one learned last), or NULL
 * when none is; valid until the next engine call.
 */
const char *engine_peer_address(const struct engine *e, raft_id node_id);
/* Status of one group. */
int engine_group_status(const struct engine *e, uint64_t group_id, struct engine_group_status *out);
/*
 * A digest of a range of a group's stored log, to compare members (Raft's Log
 * Matching: logs that hold an entry with the same index and term are
 * identical up to it).  A SHA-256 chain: sum(first - 1) is 32 zero bytes and
 * sum(i) = SHA-256(sum(i - 1) || index || term || type || len || data), the
 * numbers big-endian (8, 8, 4, 4 bytes); the digest is sum(last).  It is the
 * same however the range is cut into steps, and a step's whole state is this
 * struct, so a caller outside the engine's loop may carry it between steps.
 */
struct engine_log_digest {
	raft_index first; /* the range digested: [first, last] (first > last: empty) */
	raft_index last;
	raft_index next;     /* the next entry to digest; done once next > last */
	raft_term last_term; /* the term of entry next - 1 (0 before the first) */
	uint64_t entries;    /* entries digested so far */
	uint8_t sum[32];     /* the chain up to entry next - 1 */
};
/*
 * Start d over the entries of a group that storage holds in [lo, hi] (lo 0:
 * from the first held; hi 0: up to the last).  ENGINE_ERR_NO_GROUP;
 * ENGINE_ERR_INVALID for lo > hi; ENGINE_ERR_NOT_HELD when bounds were given
 * and no entry of [lo, hi] is held (an empty log with no bounds is an empty
 * range).  Nothing is read yet.
 */
int engine_log_digest_start(struct engine *e, uint64_t group_id, raft_index lo, raft_index hi,
                            struct engine_log_digest *d);
/*
 * Digest the next entries of d: at most max_entries, and no more than about
 * max_bytes of data (at least one entry), read from storage (not the entry
 * cache).  A step is short, so the caller interleaves it with the engine's
 * rounds.  ENGINE_ERR_NOT_HELD when the log no longer holds entries of the
 * range (compacted or truncated since the start); ENGINE_ERR_STORAGE or
 * ENGINE_ERR_NOMEM when a read fails (engine_errmsg says which).
 */
int engine_log_digest_step(struct engine *e, uint64_t group_id, struct engine_log_digest *d,
                           uint32_t max_entries, uint64_t max_bytes);

/* Counters of one group. */
int engine_group_stats(const struct engine *e, uint64_t group_id, struct engine_group_stats *out);
/*
 * Groups whose status may have changed since they were last taken (they ran
 * a Ready, started, failed, were resumed, their state machine's hold began
 * or ended (apply_held), or took a snapshot): up to cap ids
 * into ids, the rest stay for the next call.  Lets an embedder refresh a
 * status copy without scanning every group.
 */
size_t engine_take_changed(struct engine *e, uint64_t *ids, size_t cap);
/* The engine's clock: ticks since it was created. */
uint64_t engine_now(const struct engine *e);
/* The state machine of group_id has room again (see engine_sm_ops.apply_busy). */
void engine_sm_resume(struct engine *e, uint64_t group_id);
/* Number of running groups; their ids into ids (up to cap). */
size_t engine_groups(const struct engine *e, uint64_t *ids, size_t cap);
/* Whether a message for group_id from node `from` should be accepted (transport check). */
bool engine_accepts(const struct engine *e, uint64_t group_id, raft_id from);
/* Whether group_id runs here (started and not failed): a message engine_accepts refuses
 * for a group that does not is routine (it stopped or left here), not a rejected one. */
bool engine_runs_group(const struct engine *e, uint64_t group_id);
/* Whether a snapshot of group_id at index could still be installed here (the
 * group runs and has not committed that far: Raft refuses one at or below its
 * commit index). */
bool engine_snapshot_useful(const struct engine *e, uint64_t group_id, raft_index index);
/* Whether path is the received snapshot file that a Ready of group_id will install
 * (the core took its message): the engine's, which no one else may delete.  A stream
 * of the same snapshot that ends meanwhile renames its file to that very name. */
bool engine_snapshot_held(const struct engine *e, uint64_t group_id, const char *path);
/* Operations waiting for an outcome (proposals, reads, changes). */
size_t engine_pending_count(const struct engine *e);
/* Messages dropped on delivery because of an unknown group or a bad message. */
uint64_t engine_dropped_messages(const struct engine *e);
/* Times a group's term, leader or role here changed: an embedder that copies
 * statuses now and then copies them at once when this moves. */
uint64_t engine_role_changes(const struct engine *e);

#endif /* DRAGONRAFT_ENGINE_H */
