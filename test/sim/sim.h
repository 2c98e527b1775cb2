/*
 * sim.h - the deterministic Raft simulator (test/sim): shared types.
 *
 * Several struct raft replicas live in one process.  Virtual time advances in
 * units (SIM_TICK_UNITS per raft tick); everything random comes from one
 * seeded xoshiro256** generator, so a seed reproduces its run byte for byte.
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

#define SIM_MAX_NODES      5
#define SIM_TICK_UNITS     4  /* virtual time units per raft tick */
#define SIM_ELECTION_TICK  10 /* raft election timeout, ticks */
#define SIM_HEARTBEAT_TICK 1  /* raft heartbeat interval, ticks */
#define SIM_PROP_LEN       16 /* bytes of one client proposal */

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

/* Encode client proposal id into buf[SIM_PROP_LEN]. */
void sim_prop_encode(uint64_t id, uint8_t *buf);
/*
 * What the state machine records for an entry: 0 for the leader's no-op, the
 * proposal id (< 2^62) for a client proposal, a hash with bit 63 set otherwise.
 */
uint64_t sim_content(uint32_t type, const uint8_t *data, uint32_t len);
/* Is this content a client proposal id? */
bool sim_content_is_prop(uint64_t c);

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

struct sim_store {
	struct raft_hard_state hs;
	struct raft_membership membership; /* as of the applied index */
	struct sim_snapshot snap;          /* latest snapshot */
	struct sim_snapshot old_snap;      /* the one before (for messages in flight) */
	raft_index first;                  /* index of ents[0] */
	raft_term prev_term;               /* term of first - 1 */
	struct sim_ent *ents;
	size_t n, cap;
	raft_index applied; /* durable together with sm */
	struct sim_u64s sm; /* sm[i] = content applied at index i, 1 <= i <= applied */
	/* entry data the core may still point to until its next raft_advance() */
	uint8_t **grave;
	size_t n_grave, cap_grave;
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
/* Snapshot the state machine at the applied index; false if nothing new. */
bool sim_store_take_snapshot(struct sim_store *s);
/* Drop log entries up to index (<= the snapshot index). */
void sim_store_compact(struct sim_store *s, raft_index upto);
/* Free entry data buried since the last call (after raft_advance or a crash). */
void sim_store_flush_grave(struct sim_store *s);
/* Deep-copy a snapshot. */
void sim_snapshot_copy(struct sim_snapshot *dst, const struct sim_snapshot *src);
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

/* ---- the world ------------------------------------------------------------ */

/* Fault and workload mix of one run, drawn from the seed. */
struct sim_params {
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
	bool lazy_boot; /* the bootstrap Ready may be lost in a crash */
	unsigned max_inflight;
	uint64_t max_msg_bytes, max_inflight_bytes, max_uncommitted;
};

struct sim_node {
	raft_id id;
	struct raft *r; /* NULL while down */
	bool up, retired, retire_pending;
	uint32_t inc; /* incarnation */
	uint64_t restart_at;
	struct sim_store st;
	bool busy; /* a Ready is being persisted */
	struct raft_ready rd;
	uint64_t persist_at;
	bool crash_on_fsync; /* the next late persist ends in a crash */
	bool booting;        /* the bootstrap Ready is persisted synchronously */
	bool have_in_snap;   /* snapshot data received, not yet installed */
	struct sim_snapshot in_snap;
	/* observed */
	enum raft_role role;
	raft_term term;
	raft_index commit;
	raft_term lc_term; /* leader of this term, checked for completeness */
	raft_index lc_k;   /* entries <= lc_k were committed before lc_term */
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
	raft_index min_index; /* highest acknowledged write index when issued */
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
	struct sim_rand rng;
	struct sim_params p;
	uint64_t now;
	bool healed;
	unsigned removals;
	struct sim_node nodes[SIM_MAX_NODES + 1]; /* 1..n */
	struct sim_net net;
	struct sim_prop *props; /* id - 1 */
	size_t n_props, cap_props;
	struct sim_read *reads; /* context - 1 */
	size_t n_reads, cap_reads;
	raft_index max_acked;
	/* checker state */
	struct sim_u64s leader_of_term;
	struct sim_u64s commit_by_term; /* most commit index seen in a term */
	struct sim_u64s applied_term, applied_content;
	struct sim_reg *reg;
	size_t n_reg;
	/* outcome */
	bool failed;
	char prop[40];
	char why[600];
	/* counters for the trace summary */
	uint64_t n_elections, n_crashes, n_snapshots, n_conf, n_transfers, n_acked, n_reads_ok;
};

/* ---- sim_check.c ------------------------------------------------------------ */

/* Record the first violated property (later ones are ignored). */
void sim_fail(struct sim_world *w, const char *prop, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
/* Print one trace line when tracing. */
void sim_trace(struct sim_world *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* After any raft call on nd: election safety, leader completeness, commit per term. */
void sim_observe(struct sim_world *w, struct sim_node *nd);
/* Before persisting a hard state: term monotonic, one vote per term, commit monotonic. */
void sim_check_hard_state(struct sim_world *w, struct sim_node *nd,
                          const struct raft_hard_state *hs);
/* Before persisting entries: log matching and the new leader's completeness. */
void sim_check_append(struct sim_world *w, struct sim_node *nd, const struct raft_entry *e,
                      uint32_t n);
/* A node applies content at index: state machine safety, double apply, acks. */
void sim_check_apply(struct sim_world *w, struct sim_node *nd, raft_index i, raft_term t,
                     uint64_t c);
/* A node installs a snapshot: its content must agree with what was applied. */
void sim_check_snapshot(struct sim_world *w, struct sim_node *nd, const struct sim_snapshot *s);
/* A ReadIndex answer: the index covers every write acknowledged before the read. */
void sim_check_read(struct sim_world *w, struct sim_node *nd, uint64_t ctx, raft_index index);
/* After the run healed: every acknowledged proposal is in every member's state machine. */
void sim_check_final(struct sim_world *w, const struct raft_membership *m);
/* Free the checker state. */
void sim_check_free(struct sim_world *w);

/* ---- sim_node.c ------------------------------------------------------------- */

/* Create (boot != NULL: brand new group) or restart a node's struct raft. */
void sim_node_start(struct sim_world *w, struct sim_node *nd, const struct raft_membership *boot);
/* Crash: drop the struct raft and everything not persisted; down for some units. */
void sim_node_crash(struct sim_world *w, struct sim_node *nd, uint64_t down_for);
/* Run Ready cycles while the node has one (stops if a persist is delayed). */
void sim_node_pump(struct sim_world *w, struct sim_node *nd);
/* Finish a delayed persist that is due (or crash, if so planned). */
void sim_node_persist_due(struct sim_world *w, struct sim_node *nd);
/* Deliver one network item. */
void sim_node_deliver(struct sim_world *w, struct sim_item *it);
/* Can client calls be made on nd now? */
bool sim_node_ready_for_calls(const struct sim_node *nd);

/* ---- sim_run.c ---------------------------------------------------------------- */

struct sim_opts {
	uint64_t seed;
	unsigned nodes; /* 3 or 5 */
	uint64_t steps; /* units of chaos before the heal */
	bool trace;
};

/* Run one seed; returns true if every property held (else w->prop/why say why). */
bool sim_run(const struct sim_opts *o, char *prop, size_t prop_len, char *why, size_t why_len);

#endif /* DRAGONRAFT_SIM_H */
