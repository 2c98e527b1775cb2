/*
 * engine_worker.h - what the files of the engine worker share (DESIGN §3):
 * its engine and the per-group state machine adapters.  Only the engine
 * worker process includes this.
 *
 * Rule for everything called back by libuv or by the engine (state machine
 * ops, operation callbacks): no ereport(ERROR), no palloc.  Those callbacks
 * set flags and copy into malloc'd or shared memory; the main loop raises
 * errors.  A longjmp out of uv_run would leave libuv's loop corrupt.  One that
 * happens anyway (an out-of-memory ERROR, a FATAL) ends the worker without running
 * libuv or the engine again (stop_engine in engine_worker.c).
 */
#ifndef DRAGONRAFT_ENGINE_WORKER_H
#define DRAGONRAFT_ENGINE_WORKER_H

#include "dragonraft.h"

#include <uv.h>

#include "engine/engine.h"
#include "lib/ilist.h"
#include "shmem.h"

/* One group's state machine adapter and what the engine worker knows of it. */
typedef struct DrSm {
	uint64 group_id; /* hash key */
	DrGroup *shared; /* its status entry in shared memory */

	/* pg_sm.c */
	raft_index durable;    /* applied index whose commit is flushed to WAL */
	raft_index refreshed;  /* shared->applied when durable was last refreshed */
	dlist_head entries;    /* handed over, not yet applied (DrSmEntry) */
	dlist_node queued;     /* in the list of groups with entries, while it has some */
	dlist_node progressed; /* in the list of groups whose applied index moved */
	bool in_progressed;
	bool held;              /* apply_busy told the engine to hold its entries */
	dlist_node held_node;   /* in the list of held groups, while held */
	bool parked;            /* its entries fail to apply: held until they do */
	dlist_node resend_node; /* in the list of groups to send again, while in_resend */
	bool in_resend;
	raft_index handed;    /* the last entry handed over */
	uint64 hold_pass;     /* the pass of send_new that holds its entries (pg_sm.c) */
	bool exporting;       /* a full snapshot is made (the exporter's job: snap_job) */
	bool export_hold;     /* ... and the group's apply is held until it took its snapshot */
	int snap_job;         /* the exporter's job (snapshot.h), while exporting */
	dlist_node snap_node; /* in the list of exports, while exporting */
	struct BackgroundWorkerHandle *exporter; /* NULL until it is started */
	TimestampTz export_retry_at;             /* no export before (one failed) */
	uint32 export_failures;                  /* in a row: the pause doubles with each */
	bool digest_hold;          /* its apply is held for a backend's table digest: */
	int digest_job;            /* ... its job (snapshot.h, role DR_SNAP_DIGEST) */
	uint32 digest_generation;  /* ... of that allocation of the job */
	TimestampTz digest_until;  /* ... when the hold ends, whatever its backend does */
	dlist_node digest_node;    /* ... in the list of digests, while digest_hold */
	raft_index recovering; /* a received snapshot at this index is loaded; 0 = none */
	bool recover_failed;   /* its file could not be loaded: the group stopped, nothing is
	                        * sent again; it restarts in place (heal_at) */
	uint32 heal_failures;  /* loads in a row whose file could not be loaded (kept across
	                        * its restarts in place): the pause before the next doubles */
	TimestampTz heal_at;   /* ... the group restarts in place then (while in_heals) */
	raft_index heal_applied; /* applied index it restarted in place at (heal_failures > 0) */
	dlist_node heal_node;  /* in the list of groups to restart, while in_heals */
	bool in_heals;
	raft_index handoff_entry; /* the failing entry for which it handed off its leadership */
	TimestampTz handoff_not_before; /* ... and a failed hand-off is tried again then */
	raft_index handoff_none_logged; /* the failing entry for which it logged that no voter
	                                 * could take the group */
	raft_id last_leader;            /* the last other node seen leading (engine_status.c) */

	/* engine_status.c: what was published last */
	int role;
	raft_term term;
	raft_id leader;
	uint64 members_sig;   /* signature of the membership in the member pool */
	bool snapshot_needed; /* a member needs a full snapshot (logged once) */

	/* engine_groups.c: this node's member info entry */
	dlist_node info_node; /* in the list of groups that need one */
	bool info_needed;
	bool info_inflight;
	bool joining;              /* a new member: its info waits until it caught up, */
	raft_index join_target;    /* ... applied the first commit index it knew (0: none yet) */
	TimestampTz info_retry_at; /* no info proposal before (the last one failed) */
	int info_failures;         /* in a row: the back-off doubles */
	/* ... and the members' addresses, which its leader proposes */
	dlist_node addr_node; /* in the list of groups that need them, while addresses_needed */
	bool addresses_needed;
} DrSm;

/* The engine worker's process-wide state. */
typedef struct DrEngine {
	uv_loop_t loop;
	bool loop_ready;
	struct logdb *db;
	struct engine_logdb *el;
	struct engine_uv *u;
	struct engine *e;
	struct transport *t;
	HTAB *sms; /* group id -> DrSm */
	int n_running;
} DrEngine;

extern DrEngine *dr_engine;

/* pg_sm.c: the engine-side state machine adapter and the apply worker's queue. */
extern void dr_pg_sm_init(void);
extern void dr_pg_sm_ops(DrSm *sm, struct engine_sm_ops *ops);
extern void dr_pg_sm_forget(DrSm *sm);
/* A group restarted in place (dr_engine_groups_heal): the apply worker forgets its
 * failure before its new entries. */
extern void dr_pg_sm_restarted(DrSm *sm);
extern void dr_pg_sm_poll(void);
extern void dr_pg_sm_refresh_durable(void);
/* Milliseconds until the next look: a parked group due to be sent again, or an
 * entry held for its backend; -1 = none. */
extern long dr_pg_sm_timeout(void);
extern void dr_pg_sm_shutdown(void);

/* engine_groups.c: groups, requests from backends, member info entries. */
extern DrSm *dr_engine_groups_find(uint64 group_id);
extern void dr_engine_groups_restart(void);
extern void dr_engine_groups_take_requests(void);
/*
 * Operations whose backends return once dragonraft.status and
 * dragonraft.members show their outcome (transfers, membership changes):
 * the engine callback, its ctx for a request (queue_ctx: dr_queue_ctx;
 * NULL: out of memory; free() it if the engine refuses the operation), and
 * their completion once the main loop published their groups' status.
 */
extern void dr_engine_groups_shown_cb(void *ctx, const struct engine_result *res);
extern void *dr_engine_groups_shown_ctx(uint64 group_id, void *queue_ctx);
extern void dr_engine_groups_shown_done(void);
extern void dr_engine_groups_member_info(void);
extern void dr_engine_groups_propose_addresses(bool retry);
extern void dr_engine_groups_propose_addresses_of(DrSm *sm);
extern void dr_engine_groups_entry_applied(DrSm *sm, const uint8 *data, uint32 len);
extern void dr_engine_groups_reload(void);
/* Stop a group and start it again from its LogDB, as a server restart would. */
extern void dr_engine_groups_heal(DrSm *sm);
/* Forget a group the engine no longer runs (its DrSm and status entry). */
extern void dr_engine_groups_stop(uint64 group_id);
/* Engine callback completing a backend's request (ctx: dr_queue_ctx). */
extern void dr_engine_groups_op_done(void *ctx, const struct engine_result *res);

/* membership.c: membership, reads and snapshot requests; false: not one of them. */
struct DrTaken;
extern bool dr_membership_request(struct DrTaken *t);
/* Log digest requests wait in membership.c for their steps: at start, none. */
extern void dr_membership_digests_open(void);
/* One engine loop's share of digest steps, the requests given up on freed. */
extern void dr_membership_digests_run(void);
/* Do digest requests wait for the next loop (which must then come at once)? */
extern bool dr_membership_digests_waiting(void);

/* engine_status.c: status in shared memory, LOG lines. */
extern void dr_engine_status_publish(DrSm *sm);
extern void dr_engine_status_lead(void *ctx, uint64_t group_id);
extern bool dr_engine_status_led(void);
extern void dr_engine_status_refresh(void);
extern void dr_engine_status_peers(void);
extern void dr_engine_status_node(void);

#endif /* DRAGONRAFT_ENGINE_WORKER_H */
