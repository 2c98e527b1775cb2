/*
 * engine_int.h - private structures of the engine (engine.c: groups, client
 * operations, input; round.c: the Ready round, apply, snapshots; pending.c:
 * the table of operations waiting for an outcome).
 */
#ifndef DRAGONRAFT_ENGINE_INT_H
#define DRAGONRAFT_ENGINE_INT_H

#include "engine/engine.h"
#include "raft/raft.h"
#include "util/arena.h"

#define ARENA_BLOCK 65536

/* Entry data that storage copied out for one round (see engine_arena_alloc). */
struct engine_arena {
	struct dr_arena ar;
};

/* Entry data of one save, shared by the cached entries it holds. */
struct cache_block {
	struct cache_block *next; /* on the dead list */
	uint32_t refs;
	uint8_t data[];
};

struct centry {
	struct raft_entry e;
	struct cache_block *b;
};

/* Recently persisted entries [first, first + n) of one group (cache.c). */
struct entry_cache {
	struct centry *ring;
	size_t cap, head, n; /* cap: power of two */
	raft_index first;
	uint64_t bytes;
	struct cache_block *dead; /* freed at eng_cache_release() */
};

/* Append persisted entries (copied), replacing a cached suffix; keep within limit bytes. */
void eng_cache_append(struct entry_cache *c, const struct engine_alloc *a, const struct raft_entry *e,
                  uint32_t n, uint64_t limit);
/* Drop every entry; the next expected index is next. */
void eng_cache_clear(struct entry_cache *c, raft_index next);
/* Drop entries below index below. */
void eng_cache_trim(struct entry_cache *c, raft_index below);
/* Free blocks no entry uses any more (call after raft_advance). */
void eng_cache_release(struct entry_cache *c, const struct engine_alloc *a);
/* Free everything. */
void eng_cache_free(struct entry_cache *c, const struct engine_alloc *a);
/* Entries [lo, hi) bounded by max_bytes (at least one) if all cached. */
bool eng_cache_entries(const struct entry_cache *c, raft_index lo, raft_index hi, uint64_t max_bytes,
                   struct raft_entry *out, uint32_t *n);
/* Term of entry i if cached. */
bool eng_cache_term(const struct entry_cache *c, raft_index i, raft_term *t);

enum pending_kind {
	PK_PROPOSAL = 1,
	PK_READ = 2,
};

/* One operation waiting for its outcome, keyed by series. */
struct pending {
	uint64_t key; /* series; 0 = free slot */
	uint64_t group_id;
	raft_index index;  /* proposal: log index when known; read: read index when known */
	raft_term term;    /* proposal: term it was appended in (known index only) */
	uint64_t deadline; /* tick */
	uint32_t kind;     /* enum pending_kind */
	engine_done_cb cb;
	void *ctx;
};

/* Open-addressing table (linear probing, backward-shift deletion). */
struct pending_table {
	struct pending *slots;
	size_t cap; /* power of two */
	size_t n;
};

/* Initialise t with room for cap (power of two) slots. */
int eng_pending_init(struct pending_table *t, const struct engine_alloc *a, size_t cap);
/* Free t's slots. */
void eng_pending_free(struct pending_table *t, const struct engine_alloc *a);
/* Insert p (p->key unused so far); grows t as needed. */
int eng_pending_put(struct pending_table *t, const struct engine_alloc *a, const struct pending *p);
/* The slot of key, or NULL. */
struct pending *eng_pending_get(struct pending_table *t, uint64_t key);
/* Make room for n more entries without allocating in eng_pending_put. */
int eng_pending_reserve(struct pending_table *t, const struct engine_alloc *a, size_t n);
/* Remove the slot p points to (from eng_pending_get or iteration); *p is copied out first. */
void eng_pending_del(struct pending_table *t, struct pending *p, struct pending *out);

/* A single-slot operation of a group (membership change, transfer, snapshot). */
struct slot_op {
	bool active;
	raft_index index; /* conf change: its index */
	raft_term term;   /* conf change: term it was appended in */
	raft_id target;   /* transfer: the target */
	uint64_t deadline;
	engine_done_cb cb;
	void *ctx;
};

/* A state machine snapshot being written for followers that need one (leader side). */
struct snap_out {
	bool busy; /* save_snapshot() runs */
	bool done; /* ... and ended: rc, index */
	int rc;
	raft_index index;
	struct raft_message tmpl; /* the first request (term, from); to varies */
	uint32_t n_to;
	raft_id to[RAFT_MAX_MEMBERS]; /* followers waiting for it */
	char path[ENGINE_PATH_MAX + 96];
};

struct group {
	uint64_t id;
	struct engine *e;
	struct raft *r;
	struct engine_sm_ops sm;
	struct engine_arena arena;  /* entry data read from storage this round */
	struct entry_cache cache;   /* recently persisted entries */
	bool busy;                  /* storage busy (sampled once per round) */
	struct engine_bootstrap bs; /* stored bootstrap record (address book) */

	/* The stable log as storage holds it (Raft reads it through us). */
	struct raft_hard_state hs;
	raft_index first, last;
	raft_term prev_term;
	struct raft_snapshot_meta snap;

	struct raft_membership conf; /* as of applied */
	raft_index applied;
	raft_term applied_term;
	raft_index sm_skip;           /* entries <= sm_skip are already in the state machine */
	raft_index last_snap_applied; /* applied index when the last snapshot was taken */

	/* last soft/hard state seen, to detect leadership changes */
	raft_id leader;
	raft_term term;
	int role;
	raft_index noop_index; /* as leader: last index when leadership was seen */

	struct raft_ready rd;
	bool in_ready;
	bool failed; /* state machine failed: the group does nothing until stopped */

	char recv_path[ENGINE_PATH_MAX]; /* snapshot file received for recv_index */
	raft_index recv_index;
	/*
	 * A background recover() of rd.snapshot: the group is frozen (its Ready
	 * held, nothing stepped or ticked) until it ends; then the next round
	 * saves and advances that Ready (resumed).
	 */
	bool installing, install_done, resumed;
	int install_rc;
	struct snap_out out; /* the state machine snapshot for followers */

	struct slot_op cc;       /* membership change */
	struct slot_op transfer; /* leadership transfer */
	struct slot_op snapreq;  /* requested snapshot */
	size_t n_pending;        /* proposals and reads in the table */
	uint64_t *reads;         /* keys of reads whose index is known, waiting for apply */
	size_t n_reads, cap_reads;
	raft_index check_upto; /* kept proposals at or below this index were overwritten
	                        * if not applied as ours by then (leadership change) */

	bool apply_held; /* the state machine said apply_busy: committed entries wait */
	bool changed;    /* listed in e->changed (engine_take_changed) */
	struct engine_group_stats stats;
	struct {
		raft_id id;
		uint64_t tick;
	} contact[RAFT_MAX_MEMBERS]; /* last message from each node, by engine tick */
	uint32_t n_contact;
	char error[256]; /* why the group failed */
};

/* A completion queued during a round, run when the round ends. */
struct done {
	engine_done_cb cb;
	void *ctx;
	struct engine_result res;
};

struct engine {
	struct engine_config cfg;
	struct engine_storage_ops st;
	struct engine_network_ops net;
	const struct engine_alloc *a;
	struct raft_alloc ra;
	char errmsg[256];
	char snapdir[ENGINE_PATH_MAX];

	struct group **groups; /* running groups */
	size_t n_groups, cap_groups;
	struct group **index; /* open-addressing table of groups by id (NULL = free) */
	size_t index_cap;     /* a power of two, at least twice n_groups */

	struct pending_table pend;
	uint64_t now;    /* ticks */
	uint64_t series; /* last proposal/read key handed out */
	uint64_t client_id;
	uint64_t dropped;
	bool failed;
	bool in_round;
	bool in_flush;  /* running completion callbacks */
	unsigned defer; /* > 0: completions are queued (table being iterated) */
	bool work;      /* input arrived since the last round */

	/* reusable round buffers */
	struct group **ready;
	size_t cap_ready;
	struct engine_update *updates;
	size_t cap_updates;
	struct engine_sm_entry *sment;
	size_t cap_sment;
	uint8_t *scratch;
	size_t cap_scratch;
	struct done *done;
	size_t n_done, cap_done;
	uint64_t *changed; /* ids of groups whose status changed (room for every group) */
	size_t n_changed, cap_changed;
	uint64_t snap_seq;   /* names outgoing snapshot files */
	unsigned async_done; /* background snapshot ops that ended since the last round */
};

/* May the group be stepped, ticked or asked for work (not frozen by a recovery)? */
static inline bool eng_live(const struct group *g)
{
	return !g->failed && !g->installing;
}

/* Find a running group. */
struct group *eng_group(const struct engine *e, uint64_t id);
/* Record a formatted error message; returns rc. */
int eng_err(struct engine *e, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Grow *p (element size sz) to hold at least n elements. */
int eng_reserve(struct engine *e, void **p, size_t *cap, size_t n, size_t sz);
/* Map a raft_rc to an engine_rc. */
int eng_from_raft(int rc);
/* Complete an operation. */
void eng_complete(struct engine *e, engine_done_cb cb, void *ctx, int rc, uint64_t group,
                  raft_index index, raft_id leader);
/* Run queued completions unless a round, a flush or an iteration is under way. */
void eng_flush(struct engine *e);
/* Complete a slot operation and clear it. */
void eng_slot_done(struct engine *e, struct group *g, struct slot_op *s, int rc, raft_index index);
/* Resolve everything of g pending at a leadership change. */
void eng_leader_changed(struct engine *e, struct group *g);
/* Fail every pending operation of g with rc (group stopping). */
void eng_fail_group(struct engine *e, struct group *g, int rc);
/* Time out operations whose deadline passed. */
void eng_expire(struct engine *e);
/* List g for engine_take_changed(). */
void eng_changed(struct engine *e, struct group *g);
/* Learn a member's address (bootstrap record, transport). */
int eng_learn_address(struct engine *e, struct group *g, raft_id id, const char *addr, size_t len);

#endif /* DRAGONRAFT_ENGINE_INT_H */
