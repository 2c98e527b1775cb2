/*
 * sim.h - the deterministic Raft simulator (test/sim): shared types.
 *
 * Several struct raft replicas live in one process.  Virtual time advances in
 * units (SIM_TICK_UNITS per raft tick); everything random comes from seeded
 * xoshiro256** generators, so a seed reproduces its run byte for byte.
 * Each node persists into its own in-memory "disk" (struct sim_store) through
 * the Ready cycle; a crash drops the struct raft and everything not yet
 * persisted.  Invariants are checked incrementally as events happen.
 */
#ifndef DRAGONRAFT_SIM_H
#define DRAGONRAFT_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raft/raft.h"

#define SIM_MAX_NODES  5
#define SIM_TICK_UNITS 4  /* virtual time units per raft tick */
#define SIM_PROP_MIN   16 /* bytes of the smallest client proposal (its id and a mark) */

/* ---- sim_util.c ---------------------------------------------------------- */

/* xoshiro256** seeded through splitmix64. */
struct sim_rand {
	uint64_t s[4];
};

/* Seed the generator. */
void sim_rand_seed(struct sim_rand *r, uint64_t seed);
/* Next 64 random bits. */
uint64_t sim_rand_next(struct sim_rand *r);
/* Uniform value in [0, n); 0 when n <= 1. */
uint64_t sim_rand_below(struct sim_rand *r, uint64_t n);
/* True with probability p/1000. */
bool sim_rand_permille(struct sim_rand *r, unsigned p);

/* A growable array of u64 read as zero past its end. */
struct sim_u64s {
	uint64_t *v;
	size_t n, cap;
};

/* Set a[i] = x, growing with zeros. */
void sim_u64s_set(struct sim_u64s *a, size_t i, uint64_t x);
/* a[i], or 0 past the end. */
uint64_t sim_u64s_get(const struct sim_u64s *a, size_t i);
/* Copy src into dst (dst's old contents are freed). */
void sim_u64s_copy(struct sim_u64s *dst, const struct sim_u64s *src, size_t n);
/* Free the array. */
void sim_u64s_free(struct sim_u64s *a);

/* malloc/realloc that abort on failure (the harness, not the code under test). */
void *sim_xmalloc(size_t n);
/* See sim_xmalloc. */
void *sim_xrealloc(void *p, size_t n);

/*
 * Encode client proposal id into buf[len] (len >= SIM_PROP_MIN): the id, a
 * mark, then bytes derived from the id, so a payload that was damaged (or
 * read from reused memory) is recognised wherever it shows up.
 */
void sim_prop_encode(uint64_t id, uint8_t *buf, uint32_t len);
/*
 * What the state machine records for an entry: 0 for the leader's no-op, the
 * proposal id (< 2^62) for an intact client proposal, a hash with bit 63 set
 * otherwise.
 */
uint64_t sim_content(uint32_t type, const uint8_t *data, uint32_t len);
/* Is this content a client proposal id? */
bool sim_content_is_prop(uint64_t c);
/* Is e something the simulation could have written (no-op, intact proposal, conf change)? */
bool sim_entry_intact(const struct raft_entry *e);

/* ---- sim_store.c: one node's durable state -------------------------------- */

/* A state machine snapshot: its metadata and the content of indexes 1..index. */
struct sim_snapshot {
	struct raft_snapshot_meta meta;
	struct sim_u64s sm;
};

/* One stored log entry (its index is implicit). */
struct sim_ent {
	raft_term term;
	uint32_t type;
	uint32_t len;
	uint8_t *data;
};

/* A write not yet durable (deferred syncs): the log's end and hard state after it. */
struct sim_wrec {
	uint64_t seq;
	raft_index last;
	raft_term term; /* of entry last */
	struct raft_hard_state hs;
};

struct sim_store {
	struct raft_hard_state hs;
	struct raft_membership boot;       /* the bootstrap record (empty for a joiner) */
	struct raft_membership membership; /* the core's, as of its applied index */
	struct raft_snapshot_meta snap;    /* latest snapshot: metadata (the engine's) */
	raft_index first;                  /* index of ents[0] */
	raft_term prev_term;               /* term of first - 1 */
	struct sim_ent *ents;
	size_t n, cap;
	raft_index applied; /* the state machine's applied index (sm) */
	raft_index durable; /* what of it survives a crash (the engine's durable_applied) */
	struct sim_u64s sm; /* sm[i] = content applied at index i, 1 <= i <= applied */
	/* entry data the core may still point to until its next raft_advance() */
	uint8_t **grave;
	size_t n_grave, cap_grave;
	/* Deferred syncs: the writes since the last durable point, oldest first (a journal:
	 * a crash keeps a prefix of them); dur_last and dur_hs are the durable log's end and
	 * hard state while there are any (n_wrec == 0: everything stored is durable). */
	struct sim_wrec *wrec;
	size_t n_wrec, cap_wrec;
	uint64_t wseq;
	raft_index dur_last;
	struct raft_hard_state dur_hs;
	/* read failures injected into the storage callbacks (per 100,000 calls):
	 * half out of memory (transient), half I/O errors (fatal) */
	struct sim_rand *fail_rng;
	unsigned fail;
};

/* An empty disk. */
void sim_store_init(struct sim_store *s);
/* Free everything (the disk is gone). */
void sim_store_free(struct sim_store *s);
/* The struct raft_storage over s. */
struct raft_storage sim_store_iface(struct sim_store *s);
/* Last index in the log (first - 1 when empty). */
raft_index sim_store_last(const struct sim_store *s);
/* Term of entry i, first - 1 <= i <= last; a raft_rc. */
int sim_store_term(const struct sim_store *s, raft_index i, raft_term *t);
/* Append entries replacing the log from e[0].index; -1 on a gap or overlap with the snapshot. */
int sim_store_append(struct sim_store *s, const struct raft_entry *e, uint32_t n);
/* Replace log and state machine with a snapshot. */
void sim_store_install(struct sim_store *s, const struct sim_snapshot *snap);
/* The metadata snapshot at index at (<= applied; as the engine, at its durable applied
 * index), with the membership, which must be as of at; false if nothing new or it is not.
 * (A follower's snapshot is made when it is sent, from the state machine: sim_node.c.) */
bool sim_store_take_snapshot(struct sim_store *s, raft_index at);
/* Drop log entries up to index (<= the snapshot index). */
void sim_store_compact(struct sim_store *s, raft_index upto);
/* A synced save: everything stored so far is durable (a journal is a prefix). */
void sim_store_synced(struct sim_store *s);
/* Before an unsynced write: remember the durable state if this is the first since a sync. */
void sim_store_defer_begin(struct sim_store *s);
/* After an unsynced write: record it; returns its sequence number. */
uint64_t sim_store_defer_end(struct sim_store *s);
/* Last index of the durable log. */
raft_index sim_store_durable_last(const struct sim_store *s);
/* A sync that started after write seq completed: the writes up to it are durable.  False
 * if a synced save overtook it; else *index and *term are the last entry it covered. */
bool sim_store_sync_done(struct sim_store *s, uint64_t seq, raft_index *index, raft_term *term);
/* A crash: keep the first keep unsynced writes (at most all), lose the rest (log and hard
 * state back to what they were then); -1 if that cuts into compacted entries (a log that
 * lost entries the state machine needed), else the number of entries lost. */
long sim_store_crash(struct sim_store *s, size_t keep);
/* Free entry data buried since the last call (after raft_advance or a crash). */
void sim_store_flush_grave(struct sim_store *s);
/* Free a snapshot's content. */
void sim_snapshot_free(struct sim_snapshot *s);

/* ---- sim_net.c: the network --------------------------------------------- */

enum sim_item_kind {
	SIM_ITEM_MSG = 0,         /* a raft message */
	SIM_ITEM_SNAP_REPORT = 1, /* tells the sender how its snapshot went */
};

/* One thing in flight. */
struct sim_item {
	uint64_t at, seq;
	uint32_t kind;
	raft_id from, to;
	uint32_t from_inc; /* sender incarnation (reports go back to it) */
	bool failed;       /* report: the snapshot was lost */
	struct raft_message m;
	struct raft_entry *ents;
	uint8_t *buf;
	struct raft_snapshot_meta meta;
	struct sim_u64s sm; /* snapshot data travelling beside the message */
};

struct sim_net {
	struct sim_item **heap; /* min-heap on (at, seq) */
	size_t n, cap;
	uint64_t seq;
	bool blocked[SIM_MAX_NODES + 1][SIM_MAX_NODES + 1]; /* [from][to] */
	raft_id lose_acks_to; /* probe lost-acks: accepting APPEND_RESPs to it are lost */
};

/* A deep copy of a raft message as an item. */
struct sim_item *sim_item_from_msg(const struct raft_message *m);
/* A deep copy of an item. */
struct sim_item *sim_item_dup(const struct sim_item *it);
/* Free an item. */
void sim_item_free(struct sim_item *it);
/* Queue an item for delivery at it->at. */
void sim_net_push(struct sim_net *n, struct sim_item *it);
/* The earliest item due at or before now, or NULL. */
struct sim_item *sim_net_pop_due(struct sim_net *n, uint64_t now);
/* Free every queued item. */
void sim_net_free(struct sim_net *n);

/* What a run is asked to do (sim_main.c). */
struct sim_opts {
	uint64_t seed;
	unsigned nodes; /* 3 or 5 */
	uint64_t steps; /* units of chaos before the heal */
	bool trace;
	/* The engine's restart without a fix, to show what the simulator finds: */
	bool no_conf_commit; /* no commit save before membership changes apply */
	bool stale_commit;   /* the commit index not raised to the durable applied index */
	/* as before review 15: a save stores the hard state only when it changed,
	 * and a commit index alone is never saved */
	bool lazy_conf_commit;
	int defer; /* deferred leader syncs: 1 on, 0 off, -1 drawn from the seed (half) */
	/* a voter may be removed from two voters too, and one removal more is allowed
	 * (off: a seed runs as it did before the option) */
	bool two_remove;
	/* as before review 41: a leader's appends leave before its save even when it
	 * stores a commit index that may cover a membership change */
	bool early_conf_appends;
};

/* ---- the world ------------------------------------------------------------ */

/* Fault and workload mix of one run, drawn from the seed. */
struct sim_params {
	unsigned elect_tick, hb_tick;                    /* raft timing, ticks */
	unsigned drop, dup, reorder;                     /* permille per message */
	unsigned max_delay;                              /* units, >= 1 */
	unsigned part, crash;                            /* permille per step */
	unsigned fsync_delay;                            /* permille of Readys persisted late */
	unsigned fsync_max;                              /* most units a persist takes */
	unsigned propose, read, transfer, conf, compact; /* permille per step */
	unsigned max_removals;
	unsigned campaign;                /* permille per step: raft_campaign on a node */
	unsigned skew[SIM_MAX_NODES + 1]; /* permille of ticks a node's clock misses */
	bool pre_vote, check_quorum;
	bool lazy_boot;           /* the bootstrap Ready may be lost in a crash */
	bool batch;               /* inputs pile up between Readys (an engine's batch) */
	unsigned loop;            /* batch: permille of units a node takes its Readys */
	unsigned big;             /* permille of proposals several arena blocks large */
	unsigned max_small;       /* other proposals: up to SIM_PROP_MIN + max_small bytes */
	unsigned nomem;           /* permille of the core's allocations that fail */
	unsigned st_fail;         /* storage reads that fail per 100,000 (I/O: the node stops) */
	unsigned snap_fail;       /* permille of snapshot reports that say "failed" anyway */
	unsigned snap_delay;      /* most units a snapshot report takes */
	unsigned quiesce_tick;    /* raft quiesce_tick (0: quiescence off) */
	unsigned wake;            /* permille per step: a spurious raft_wake */
	unsigned idle;            /* permille per step: a quiet spell (no client input) begins */
	unsigned kill;            /* permille of new leaders, or conf changes, struck soon after */
	raft_id slow;             /* this node applies one entry per Ready, and rarely loops */
	unsigned reorder_appends; /* permille of appends delivered late (stale rejections) */
	unsigned dup_snap;        /* permille of snapshot messages delivered twice */
	unsigned sm_flush;        /* permille of Readys after which the applied index is durable */
	unsigned sm_lag; /* permille of snapshots for followers made at the durable applied index */
	unsigned max_inflight;
	bool defer;          /* cfg.defer_leader_sync on every node */
	unsigned sync_zero;  /* deferred syncs: permille done at once, */
	unsigned sync_long;  /* ... permille that take long (up to 3 election timeouts), */
	unsigned sync_never; /* ... permille that never finish before a crash (or the heal) */
	unsigned sync_max;   /* ... most units of the others */
	unsigned crash_keep; /* permille of crashes that keep some unsynced writes */
	uint64_t max_msg_bytes, max_inflight_bytes, max_uncommitted, max_committed;
};

struct sim_node {
	raft_id id;
	struct raft *r; /* NULL while down */
	bool up, retired, retire_pending;
	bool stopped; /* the core failed fatally: down until restarted */
	bool paused;  /* stopped as by SIGSTOP (probe paused-promotion): no ticks, no loop, and
	               * messages to it wait, as bytes in its sockets */
	uint32_t inc; /* incarnation */
	uint64_t restart_at;
	struct sim_store st;
	struct raft_hard_state hs; /* the latest hard state, saved or not (the engine's g->hs) */
	raft_index applied;        /* the core's applied index (below st.applied in a replay) */
	raft_index replay_upto;    /* after a restart: entries the state machine holds */
	bool busy;                 /* a Ready is being persisted */
	bool dirty;                /* batch mode: inputs wait for the node's next loop */
	struct raft_ready rd;
	uint64_t persist_at;
	bool crash_on_fsync;        /* the next late persist ends in a crash */
	bool syncing;               /* a background sync of deferred writes is in flight */
	uint64_t sync_seq, sync_at; /* ... covering writes up to sync_seq, done then, */
	raft_index sync_index;      /* ... whose last entry was this, as written */
	raft_term sync_term;
	bool report_retry;    /* raft_durable said out of memory: report it again */
	bool owe;             /* a synced save the core does not count (commit only) */
	raft_index owe_index; /* ... made the log durable to here: report it */
	raft_term owe_term;
	bool conf_commit;               /* the Ready out saves a commit raft_conf_bound covers:
	                                 * synced, and its appends wait for it (round.c) */
	bool booting;                   /* the bootstrap Ready is persisted synchronously */
	struct sim_snapshot in_snap[4]; /* snapshot data received, not yet installed */
	unsigned n_in_snap;
	uint64_t unreach_at; /* quiescent and cut off from the leader: wake at this time */
	uint64_t ticks;      /* raft_tick calls (a node busy persisting misses ticks) */
	/* observed */
	enum raft_role role;
	raft_term term;
	raft_index commit;
	raft_index commit_seen; /* committed entries up to here are registered */
	raft_term lc_term;      /* leader of this term, checked for completeness */
	raft_term sent_term;    /* the highest term of a message it sent (pre-votes aside) */
};

enum sim_prop_status { SIM_PROP_PENDING = 1, SIM_PROP_FAILED = 2, SIM_PROP_ACKED = 3 };

struct sim_prop {
	raft_id node;          /* submitted to */
	uint8_t status;        /* enum sim_prop_status */
	raft_index index;      /* acknowledged at */
	raft_index applied_at; /* first index any node applied it at */
	uint64_t at;           /* submitted at */
};

struct sim_read {
	raft_id node;
	raft_index min_index; /* highest commit index anyone had when it was issued */
	bool done;
};

/* One entry version at one index: the log-matching registry. */
struct sim_reg_ent {
	raft_term term, prev_term;
	uint64_t content;
	raft_id node;
};

struct sim_reg {
	uint32_t n, cap;
	struct sim_reg_ent *e;
};

struct sim_world {
	uint64_t seed;
	unsigned n;
	bool trace;
	struct sim_opts o;
	struct sim_rand rng;
	struct sim_rand fault_rng; /* allocation and storage failures */
	struct sim_rand
	        sync_rng; /* deferred syncs (a stream of its own: other seeds keep their runs) */
	struct sim_params p;
	uint64_t now;
	bool healed, quiet;
	uint64_t quiet_until;   /* a quiet spell (no client input) lasts until then */
	uint64_t drain_at;      /* when the last message sent before the heal arrives */
	raft_term killed_term;  /* leader killer: the newest term whose leader was judged */
	raft_index killed_conf; /* ... and the newest membership change it had applied */
	raft_id kill_id;        /* ... its leader, to be struck at kill_at */
	uint64_t kill_at;
	unsigned removals;
	struct sim_node nodes[SIM_MAX_NODES + 1]; /* 1..n */
	struct sim_net net;
	struct sim_prop *props; /* id - 1 */
	size_t n_props, cap_props;
	struct sim_read *reads; /* context - 1 */
	size_t n_reads, cap_reads;
	raft_index max_acked;
	raft_index max_commit; /* highest commit index any node had */
	raft_index max_read;   /* highest index a read returned */
	struct {
		raft_id id;
		raft_index at; /* index of the conf change that removed it */
	} removed[64];         /* ids removed by an applied conf change */
	unsigned n_removed;
	/* checker state */
	struct sim_u64s leader_of_term;
	struct sim_u64s committed_term; /* term of the entry known committed at each index */
	/* the term in which each index was first known committed (its observer's: the
	 * committing leader's, or a later one), for leader completeness */
	struct sim_u64s committed_in;
	struct sim_u64s applied_term, applied_content;
	struct sim_reg *reg;
	size_t n_reg;
	/* outcome */
	bool failed;
	char prop[40];
	char why[600];
	/* counters for the trace summary */
	uint64_t n_elections, n_crashes, n_snapshots, n_conf, n_transfers, n_acked, n_reads_ok;
	uint64_t n_nomem, n_stops;
	uint64_t n_deferred, n_syncs, n_sync_overtaken, n_sync_stale, n_lost_writes;
};

/* ---- sim_check.c ------------------------------------------------------------ */

/* Record the first violated property (later ones are ignored). */
void sim_fail(struct sim_world *w, const char *prop, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
/* Print one trace line when tracing. */
void sim_trace(struct sim_world *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/*
 * After any raft call on nd: a fatal rc stops the node (a bug fails the run),
 * election safety, committed entries registered, leader completeness.
 */
void sim_observe(struct sim_world *w, struct sim_node *nd);
/* Before persisting a hard state: term monotonic, one vote per term, commit monotonic. */
void sim_check_hard_state(struct sim_world *w, struct sim_node *nd,
                          const struct raft_hard_state *hs);
/* Before persisting entries: log matching, and no committed entry replaced. */
void sim_check_append(struct sim_world *w, struct sim_node *nd, const struct raft_entry *e,
                      uint32_t n);
/* Entries leaving nd (Ready, message): each intact, as the simulation wrote it. */
void sim_check_intact(struct sim_world *w, struct sim_node *nd, const struct raft_entry *e,
                      uint32_t n, const char *where);
/* A node applies content at index: state machine safety, double apply, acks. */
void sim_check_apply(struct sim_world *w, struct sim_node *nd, raft_index i, raft_term t,
                     uint64_t c);
/* Before a node applies index i: its log holds i durably (deferred syncs: a crash may
 * take unsynced entries, and a restart must find in the log what was applied). */
void sim_check_apply_durable(struct sim_world *w, struct sim_node *nd, raft_index i);
/* A node applied a membership: a removed id never comes back. */
void sim_check_membership(struct sim_world *w, struct sim_node *nd,
                          const struct raft_membership *m);
/* A node installs a snapshot: its content must agree with what was applied. */
void sim_check_snapshot(struct sim_world *w, struct sim_node *nd, const struct sim_snapshot *s);
/* A ReadIndex answer: at least every commit index seen before the read was issued. */
void sim_check_read(struct sim_world *w, struct sim_node *nd, uint64_t ctx, raft_index index);
/* After the run healed: every acknowledged proposal is in every member's state machine. */
void sim_check_final(struct sim_world *w, const struct raft_membership *m);
/* nd crashed: a leadership of a term its disk never held and no message of
 * its carried left no trace, and its term may be led again. */
void sim_check_crashed(struct sim_world *w, struct sim_node *nd);
/* Free the checker state. */
void sim_check_free(struct sim_world *w);

/* ---- sim_node.c ------------------------------------------------------------- */

/* Create (boot != NULL: brand new group) or restart a node's struct raft. */
void sim_node_start(struct sim_world *w, struct sim_node *nd, const struct raft_membership *boot);
/* Forget snapshot data received and not installed. */
void sim_node_drop_snapshots(struct sim_node *nd);
/* Crash: drop the struct raft and everything not persisted; down for some units. */
void sim_node_crash(struct sim_world *w, struct sim_node *nd, uint64_t down_for);
/* Inputs reached nd: run its Ready cycles now, or (batch mode) at its next loop. */
void sim_node_pump(struct sim_world *w, struct sim_node *nd);
/* Run Ready cycles while the node has one (or just one; stops if a persist is delayed). */
void sim_node_loop(struct sim_world *w, struct sim_node *nd, bool one);
/* Complete the background sync of deferred writes that is due (raft_durable). */
void sim_node_sync_due(struct sim_world *w, struct sim_node *nd);
/* Finish a delayed persist that is due (or crash, if so planned). */
void sim_node_persist_due(struct sim_world *w, struct sim_node *nd);
/* Deliver one network item. */
void sim_node_deliver(struct sim_world *w, struct sim_item *it);
/* Can client calls be made on nd now? */
bool sim_node_ready_for_calls(const struct sim_node *nd);
/* The allocation hooks the cores use: they fail as w->p.nomem says once bound to w. */
extern const struct raft_alloc sim_alloc;
/* Bind the hooks to the run w (NULL: never fail). */
void sim_alloc_bind(struct sim_world *w);

/* ---- sim_run.c ---------------------------------------------------------------- */

/* Run one seed; returns true if every property held (else w->prop/why say why). */
bool sim_run(const struct sim_opts *o, char *prop, size_t prop_len, char *why, size_t why_len);
/* One unit of virtual time: persists, deliveries, ticks, wake-ups, loops, retirements. */
void sim_step(struct sim_world *w);
/* The up leader with the highest term, or NULL. */
struct sim_node *sim_find_leader(struct sim_world *w);
/* A leader whose term no up member exceeds, or NULL. */
struct sim_node *sim_stable_leader(struct sim_world *w);
/* Submit proposal on nd; returns its id. */
uint64_t sim_propose(struct sim_world *w, struct sim_node *nd);
/* Issue a ReadIndex on nd; returns its context. */
uint64_t sim_read(struct sim_world *w, struct sim_node *nd);

/* ---- sim_probe.c: after liveness, in a healed, idle group ---------------------- */

/* A follower cut off for a while and healed must not raise the term (PreVote + CheckQuorum). */
void sim_probe_disruption(struct sim_world *w);
/* A transfer to a lagging voter hands over in one term or leaves term and leader alone. */
void sim_probe_transfer(struct sim_world *w);
/* Once idle, every member has applied every committed entry (one crashed after a write too). */
void sim_probe_idle_apply(struct sim_world *w);
/* A write whose acknowledgements were all lost commits with no write after it. */
void sim_probe_lost_acks(struct sim_world *w);
/* Two pre-candidates with equal logs, the leader cut off: the next term's leader, no split. */
void sim_probe_split_vote(struct sim_world *w);
/* isolated-leader: a leader cut off under proposals steps down in 3 election timeouts. */
void sim_probe_isolated_leader(struct sim_world *w);
/* Probe: a leader whose other voters pause proposes a promotion; true if it ran. */
bool sim_probe_paused_promotion(struct sim_world *w);

#endif /* DRAGONRAFT_SIM_H */
