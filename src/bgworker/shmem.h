/*
 * shmem.h - dragonraft's shared memory (DESIGN §3): the node-wide state of
 * the engine and apply workers, one request slot per backend (queue.c), one
 * status entry per group, and two pools the group entries draw from: group
 * members, and node addresses (a node has one Raft address, whichever groups
 * it is in).  Sized at server start by MaxBackends and dragonraft.max_groups.
 *
 * NOTES on locking, after replication/logical/origin.c.  Every field below
 * names the lock that protects it.
 *
 * - DrShared.mutex (spinlock): the engine and apply worker fields of DrShared.
 * - DrShared.queue_mutex (spinlock): whether the engine accepts requests, and
 *   the ring of submitted request slots.
 * - DrRequest.mutex (spinlock): one request slot (see queue.c).
 * - The groups lock (LWLock, tranche "dragonraft"): the groups hash table
 *   (an entry is added or removed in exclusive mode, looked up in shared
 *   mode), the member chains of the entries, the member pool's free list and
 *   the node pool.  Only the engine worker takes it in exclusive mode.
 * - DrGroup.mutex (spinlock): the changing fields of one group entry and of
 *   its members in the pool (match index, last contact).  It is taken while
 *   the groups lock is held in either mode, never the other way round.
 * - DrCommit.mutex (spinlock): one backend's commit slot (xact.c).  Never
 *   held together with a group's mutex.
 *
 * The applied index of a group moves in two kinds of processes (DESIGN §4):
 * the apply worker, after committing a batch, and a backend whose own entry
 * N it commits as the leader's apply of N, once applied is N - 1 (its turn).
 * Either first releases the group's replication origin, then publishes
 * applied (group mutex) and broadcasts applied_cv, so the next one may take
 * the origin.  A backend publishes applied before it clears its commit slot:
 * the apply worker reads the slot first and applied second, so it never
 * misses that an entry was applied.  A backend takes its turn only once its
 * entry was handed to the apply side (handed, group mutex): an apply held
 * for a snapshot export or a table digest (pg_sm.c) drains exactly the
 * entries handed before the hold, and no later one commits meanwhile.
 *
 * No code holds a spinlock while it takes another lock, or calls anything
 * that may fail: values are copied in and out.  Pointers to group entries
 * stay valid while the groups lock is held; the engine worker, which alone
 * adds and removes entries, may keep them.
 */
#ifndef DRAGONRAFT_SHMEM_H
#define DRAGONRAFT_SHMEM_H

#include "dragonraft.h"

#include "replication/origin.h"
#include "storage/condition_variable.h"
#include "storage/dsm.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/spin.h"
#include "utils/hsearch.h"

typedef enum DrEngineState {
	DR_ENGINE_OFF,     /* dragonraft.node_id = 0, or the worker has not started */
	DR_ENGINE_RUNNING, /* the engine worker is in its main loop */
	DR_ENGINE_STOPPED, /* the engine worker exited (engine_error says why, if it failed) */
} DrEngineState;

typedef enum DrApplyState {
	DR_APPLY_NONE,         /* no apply worker */
	DR_APPLY_RUNNING,      /* attached to the engine worker's queue */
	DR_APPLY_NO_EXTENSION, /* it found no extension in dragonraft.database and exited */
} DrApplyState;

/* How far a group's member got (DrGroup.member_state). */
typedef enum DrMemberState {
	DR_MEMBER_ACTIVE,     /* the engine runs it */
	DR_MEMBER_RECOVERING, /* it loads a snapshot */
	DR_MEMBER_FAILED,     /* the engine stopped it (error says why) */
	DR_MEMBER_LOST,       /* not started: applied entries but no LogDB record (DESIGN §10) */
} DrMemberState;

/* Cumulative counters of a group (dragonraft.stat_groups). */
typedef struct DrGroupStats {
	uint64 proposals;
	uint64 commits;
	uint64 unknown_outcomes;
	uint64 elections;
	uint64 leader_changes;
	uint64 snapshots_sent;
	uint64 snapshots_received;
	uint64 bytes_sent;
	uint64 bytes_received;
	uint64 apply_errors;
	/* written by backends that commit through Raft (xact.c), group mutex */
	uint64 xact_commits; /* transactions committed through the group's log here */
	uint64 xact_unknown; /* transactions that ended with 40003 (outcome unknown) */
} DrGroupStats;

#define DR_STATS_FIELDS (sizeof(DrGroupStats) / sizeof(uint64))

#define DR_SCHEMA_NO_TABLE UINT64_MAX /* DrGroup.schema_next_table */

/* One group's status entry (the key of the groups hash table). */
typedef struct DrGroup {
	uint64 group_id; /* hash key; fixed while the entry exists */
	/* Broadcast when applied moves (and info_in_log is set).  Made once with
	 * shared memory (dr_shmem_startup), for every entry of the hash, and kept as
	 * it is when an entry is removed and reused: a backend that sleeps on it
	 * while leave_group or an engine worker restart removes the entry stays
	 * on its wait list until it wakes and looks again, and a new group's entry
	 * that initialized it again lost that list (the sleeper's cancel then
	 * deleted itself from the new group's list, dropping its sleepers or
	 * linking in processes that sleep elsewhere). */
	ConditionVariable applied_cv;
	uint64 made; /* dr_shared->groups_made when it was added; fixed while it exists */
	/* The group's log here, for waits that look the group up by id again
	 * (dr_shmem_group_life): made anew with the member (create_group,
	 * join_group, a lost LogDB), kept when an engine worker restart adds the
	 * entry again for the same log (made changes then).  groups lock. */
	uint64 life;
	int first_member; /* groups lock: first of its members in the pool, -1 if none */
	slock_t mutex;    /* protects the fields below */

	/* written by the engine worker */
	uint8 member_state;         /* DrMemberState */
	uint8 role;                 /* enum raft_role */
	bool apply_held;            /* committed entries wait for the apply worker */
	bool sending_snapshot;      /* a full snapshot is being made for a follower */
	bool quiescent;             /* idle: no heartbeats until any input (contact stays old) */
	bool removed;               /* its membership lists this node as removed */
	bool snapshot_refused;      /* error is this node's refusal of a snapshot for want of
	                             * room, until one arrives or entries do (review 28 F5) */
	uint64 term;                /* current term */
	uint64 leader;              /* leader's node id, 0 = none known */
	uint64 commit;              /* commit index */
	uint64 last_index;          /* last index in this member's log */
	uint64 snapshot_index;      /* latest snapshot */
	uint64 handed;              /* the last entry handed to the apply side (pg_sm.c);
	                             * a backend commits its own entry only once it is
	                             * handed (xact.c), so a hold of the apply holds it */
	TimestampTz leader_contact; /* follower: last message from the leader; 0 = never */
	DrGroupStats stats;         /* engine counters since the engine worker started */
	char error[DR_ERROR_LEN];   /* FAILED, LOST or apply failure: what happened */

	/* written by backends (stat_reset) and the engine worker (group start) */
	DrGroupStats stats_base; /* stats at the last reset */
	TimestampTz stats_reset; /* when */

	uint64 noop_index; /* leader: its term's no-op; 0 when not leading */
	bool info_in_log;  /* engine worker: this node's member info is committed in the log (it was
	                    * before the engine worker started, or its proposal committed
	                    * since): a registration or command proposed now follows it
	                    * (dr_sql_groups_wait_info); applied_cv is broadcast
	                    * when it is set */

	/* written by the apply worker, and by backends at their turn (see NOTES) */
	uint64 applied;         /* applied index: its effects are committed here */
	uint64 gave_up;         /* highest entry whose backend gave up after it committed (set
	                         * before that backend releases its locks): until applied
	                         * reaches it, local reads of its rows may be stale */
	uint32 gave_up_unknown; /* proposals given up on while the engine ran them
	                         * (stalled): their index is not known yet, so any
	                         * read may be stale until the engine finishes them
	                         * (queue.c) and raises gave_up to their index */
	RepOriginId origin;     /* the group's replication origin, InvalidRepOriginId until known */
	uint64 schema_index;    /* the group's last utility command applied here (published
	                         * before applied moves past it) */
	uint64 schema_next;     /* apply worker: the last utility command it began to apply */
	uint64 schema_next_table;   /* the one replicated table that command changes; 0: any;
	                             * DR_SCHEMA_NO_TABLE: none */
	uint64 apply_errors;        /* apply worker failures */
	uint32 apply_failures;      /* consecutive failures to apply its next entry (error says
	                             * why); 0 = it applies.  Its entries are parked meanwhile */
	TimestampTz apply_retry_at; /* the engine worker sends its entries again then; 0 once
	                             * it did (it clears it) */
	bool apply_corrupt;         /* the last failure was ERRCODE_DATA_CORRUPTED (or a
	                             * snapshot file that is gone): trying the same bytes
	                             * again cannot help */
	/* written by the engine worker and the apply worker (dr_shmem_group_track_lag) */
	TimestampTz behind_since; /* applied has stayed below behind_commit since; 0 = caught up */
	uint64 behind_commit;     /* the commit index seen then */
	/* the highest applied index a process on this node waits for (dr_shmem_want_applied):
	 * while applied is below it, the apply worker's batches of the group do not wait
	 * dragonraft.apply_batch_delay for more entries */
	pg_atomic_uint64 wanted;
} DrGroup;

/* A member of a group, in the member pool. */
typedef struct DrMember {
	uint64 node_id;    /* groups lock */
	int next;          /* groups lock: next member of the same group, -1 = last */
	bool voter;        /* groups lock */
	bool has_progress; /* group mutex: match and last_contact are known (this node leads) */
	uint64 match;      /* group mutex */
	TimestampTz last_contact; /* group mutex; 0 = never heard from */
	/* group mutex: this node leads, the member needs a snapshot and refused the last for want
	 * of room (review 28 F5): bytes it needed, had free, keeps free */
	bool refused_no_room;
	uint64 refused_need, refused_free, refused_min_free;
} DrMember;

/* A node's Raft address, in the node pool (groups lock). */
typedef struct DrNode {
	uint64 node_id; /* 0 = free */
	char address[DR_ADDR_LEN];
} DrNode;

/* A backend's commit slot (xact.c): its change set's proposal, as the apply
 * worker must know it (DESIGN §4).  Indexed by backend id - 1. */
typedef enum DrCommitState {
	DR_COMMIT_IDLE,     /* nothing proposed, or committed */
	DR_COMMIT_PROPOSED, /* proposed; the backend will apply its entry itself */
	DR_COMMIT_GAVE_UP,  /* the backend aborted after proposing: the apply worker applies it */
	DR_COMMIT_BUSY,     /* nothing proposed: it waits for the group's log to take entries
	                     * (dr_busy_wait; a COMMIT or execute(), dragonraft.busy_waits) */
} DrCommitState;

typedef struct DrCommit {
	slock_t mutex;     /* protects the fields below */
	uint64 generation; /* bumped at each proposal; the entry carries it */
	DrCommitState state;
	uint64 group_id;
	/* A wait for backpressure (dr_busy_wait), shown in dragonraft.busy_waits
	 * until a proposal is taken, the proposals made again included: */
	int busy_pid;           /* the backend's pid, 0 = none */
	uint64 busy_group;      /* the group whose log takes no entries for now */
	TimestampTz busy_since; /* when it first met backpressure */
} DrCommit;

/* The transport's refusals, summed by kind (dragonraft.stat_node). */
typedef struct DrTransportCounters {
	uint64 accepted;          /* connections accepted */
	uint64 refused;           /* connections over the handshake or snapshot limits */
	uint64 tls_failures;      /* TLS handshakes that failed, altered records */
	uint64 auth_refused;      /* wrong or unknown node ids, not on loopback without TLS */
	uint64 messages_rejected; /* undecodable, or not from the connection's node or a member
	                           * of a group run here (not a group stopped or left here) */
	uint64 frames_rejected;   /* bad header, oversize, bad checksum, over the memory budget */
	uint64 lines_suppressed;  /* refusals not logged (rate limit) */
	uint64 dropped_no_group;  /* messages of a group not run here (stopped, left, ...) */
} DrTransportCounters;

/* The node-wide part. */
/*
 * What tells a directory from one made in its place: device and inode, and
 * the ctime (nanoseconds), since a file system may give a new directory the
 * inode number of one just removed (ext4 does readily).
 */
typedef struct DrDirId {
	dev_t dev;
	ino_t ino;
	int64 ctime_sec;
	int64 ctime_nsec;
} DrDirId;

typedef struct DrShared {
	slock_t mutex; /* protects the fields up to queue_mutex */
	DrEngineState engine_state;
	pid_t engine_pid;    /* 0 unless running */
	int engine_pgprocno; /* its PGPROC, for SetLatch; -1 unless running */
	TimestampTz engine_started;
	pg_atomic_uint64 engine_loops;   /* the engine worker's loops (queue.c: is it stalled?) */
	pg_atomic_uint64 groups_made;    /* entries added to the groups hash table (DrGroup.made) */
	char engine_error[DR_ERROR_LEN]; /* why the engine stopped, "" after a clean stop;
	                                  * kept a minute into the next worker's run */
	int engine_damaged_runs;         /* engine workers in a row that found the LogDB damaged
	                                  * (engine_worker.c: the retry's back-off) */
	TimestampTz engine_retry_at;     /* the next engine worker waits until then to open the
	                                  * LogDB (0 = no wait) */
	TimestampTz engine_damaged_at;   /* when the last of them found it so (a reload since
	                                  * ends the wait) */
	DrDirId engine_damaged_dir;      /* the damaged LogDB directory: the wait ends when
	                                  * it is moved aside or replaced */
	int groups_not_started;          /* stored groups beyond dragonraft.max_groups */
	DrTransportCounters transport;   /* copied by the engine worker */
	uint64 digest_steps;             /* log digest steps since the engine worker started */
	int digest_steps_loop_max;       /* the most of them that one engine loop ran */
	char raft_address[DR_ADDR_LEN];  /* host:port the transport listens on */
	pid_t apply_pid;                 /* 0 = no apply worker process */
	int apply_pgprocno;              /* its PGPROC, for SetLatch; -1 unless running */
	DrApplyState apply_state;
	bool apply_wakes_engine;  /* its progress wakes the engine worker (pg_sm.c) */
	bool apply_wants_commits; /* backends' commits wake it: entries of theirs wait there */
	/* The group whose batch the apply worker holds open for more entries (0:
	 * none), waiting on apply_delay_latch: a dr_shmem_want_applied wakes it,
	 * and so do the engine worker's messages of other groups; those of the
	 * group wait in the queue until the delay ends (apply_worker.c). */
	pg_atomic_uint64 apply_delaying;
	Latch apply_delay_latch; /* owned by the apply worker (apply_worker.c: delay_latch) */
	uint64 incarnation;      /* random, new at each start of shared memory; fixed after */

	slock_t queue_mutex; /* protects accepting and the ring */
	bool accepting;      /* the engine worker takes requests */
	uint32 ring_head;    /* next slot number to take */
	uint32 ring_tail;    /* next free place */

	LWLock *groups_lock; /* see NOTES */
	int n_groups;        /* groups lock: entries in the hash table */
	int member_free;     /* groups lock: first free member in the pool, -1 = none */
} DrShared;

/* Set by the shmem startup hook; NULL unless the library is preloaded. */
extern DrShared *dr_shared;
extern struct DrRequest *dr_requests; /* MaxBackends request slots */
extern int *dr_ring;                  /* MaxBackends places */
extern DrCommit *dr_commits;          /* MaxBackends commit slots */
extern DrMember *dr_members;          /* dr_n_members */
extern DrNode *dr_nodes;              /* dr_n_nodes */
extern int dr_n_members;
extern int dr_n_nodes;

/* shmem_request_hook and shmem_startup_hook. */
extern void dr_shmem_request(void);
extern void dr_shmem_startup(void);

/* Raise an error unless the library is preloaded. */
extern void dr_shmem_check_loaded(void);

/* The group's entry or NULL; the caller holds the groups lock. */
extern DrGroup *dr_shmem_group_find(uint64 group_id);
extern uint64 dr_shmem_group_life(uint64 group_id);
extern bool dr_shmem_engine_running(void);
extern void dr_shmem_engine_wait(void);
/* The group's applied index as published (0 if unknown here): the commits that
 * applied it are visible. */
extern uint64 dr_shmem_group_applied(uint64 group_id);
/* Add an entry for group_id (engine worker, groups lock exclusive); NULL when
 * dragonraft.max_groups entries exist.  The new entry is in state ACTIVE. */
extern DrGroup *dr_shmem_group_add(uint64 group_id);
/* Remove group_id's entry and its members (engine worker, groups lock exclusive). */
extern void dr_shmem_group_remove(uint64 group_id);
/* Replace g's member chain (engine worker, groups lock exclusive); false when the
 * pool ran out (the members that fit are kept). */
extern bool dr_shmem_group_set_members(DrGroup *g, const uint64 *ids, const bool *voter, int n);
/* Set node_id's address (engine worker, groups lock exclusive); false if the pool is full. */
extern bool dr_shmem_node_set(uint64 node_id, const char *address);
/* node_id's address or NULL; the caller holds the groups lock. */
extern const char *dr_shmem_node_address(uint64 node_id);
/* A backend committed or gave up its entry: set the apply worker's latch, and
 * the one of its held batch's wait (apply_delay_latch), if it runs and entries
 * of backends wait there (apply_wants_commits). */
extern void dr_shmem_wake_apply(void);
/* Set the engine worker's latch, if it runs. */
extern void dr_shmem_wake_engine(void);
/* The caller waits for the group's applied index to reach index (0: the last
 * entry handed to the apply side now, and a held batch or a linger ends even
 * if that was wanted already): the apply worker commits its batches of the
 * group at once (not after dragonraft.apply_batch_delay) until it does.  Call
 * it before sleeping. */
extern void dr_shmem_want_applied(uint64 group_id, uint64 index);

/* After commit or applied moved: note since when an entry committed is not applied
 * (the caller holds g->mutex). */
extern void dr_shmem_group_track_lag(DrGroup *g, TimestampTz now);
/* Whether an entry committed lag_ms ago or earlier is still not applied. */
extern bool dr_shmem_group_lagging(const DrGroup *g, TimestampTz now, int lag_ms);

/* Scan every group entry; the caller holds the groups lock. */
extern void dr_shmem_group_scan_init(HASH_SEQ_STATUS *status);

#endif /* DRAGONRAFT_SHMEM_H */
