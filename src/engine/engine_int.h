/*
 * engine_int.h - private structures of the engine.  Files by concern:
 * engine.c (the engine, its groups and their state, input, status),
 * logview.c (a group's view of its stable log, which its Raft core reads),
 * addrbook.c (members' addresses), client.c (client operations and the
 * trackers of pending ones), round.c (the Ready round), snapshot.c (state
 * machine snapshots, installs, metadata snapshots and compaction), pending.c
 * (the table of proposals and reads), cache.c (the entry cache).
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
void eng_cache_append(struct entry_cache *c, const struct engine_alloc *a,
                      const struct raft_entry *e, uint32_t n, uint64_t limit);
/* Drop every entry; the next expected index is next. */
void eng_cache_clear(struct entry_cache *c, raft_index next);
/* Drop entries below index below. */
void eng_cache_trim(struct entry_cache *c, raft_index below);
/* Free blocks no entry uses any more (call after raft_advance). */
void eng_cache_release(struct entry_cache *c, const struct engine_alloc *a);
/* Free everything. */
void eng_cache_free(struct entry_cache *c, const struct engine_alloc *a);
/* Entries [lo, hi) bounded by max_bytes (at least one) if all cached. */
bool eng_cache_entries(const struct entry_cache *c, raft_index lo, raft_index hi,
                       uint64_t max_bytes, struct raft_entry *out, uint32_t *n);
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
	raft_term term;    /* proposal: term it was appended in (known index only); read: the
	                    * term it was asked in */
	uint64_t resets;   /* read: the core's raft_resets() when it was asked (the role,
	                    * term and leader it went to) */
	bool unasked;      /* read: not with the core, which knew no leader to ask then */
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

/* Who waits for a tracked operation (see the trackers below). */
struct waiter {
	bool active;
	engine_done_cb cb;
	void *ctx;
};

/*
 * The trackers of a group's single-slot operations, after Dragonboat's
 * pendingConfigChange, pendingLeaderTransfer and pendingSnapshot (client.c
 * holds their rules).
 */
/* A membership change proposed here: done when applied, or its fate otherwise known. */
struct pending_cc {
	struct waiter w;
	raft_index index; /* its log index */
	raft_term term;   /* the term it was appended in */
	uint64_t deadline;
	bool own_removal; /* removes this node: it may commit under another leader (client.c) */
};

/* A leadership transfer asked here: done when the target leads, or on timeout. */
struct pending_transfer {
	struct waiter w;
	raft_id target;
	uint64_t deadline;
};

/* A snapshot asked by a client: done when the next metadata snapshot is saved, or on timeout. */
struct pending_snapshot {
	struct waiter w;
	uint64_t deadline;
};

/* A state machine snapshot being written for followers that need one (leader side). */
enum snap_out_state {
	OUT_SAVING = 1, /* save_snapshot() runs in the background */
	OUT_SAVED,      /* ... and ended (rc, index): the next round ships it */
};

struct snap_out {
	enum snap_out_state state;
	int rc;
	raft_index index;
	struct raft_message tmpl; /* the first request (term, from); to varies */
	uint32_t n_to;
	raft_id to[RAFT_MAX_MEMBERS]; /* followers waiting for it */
	char path[ENGINE_PATH_MAX + 96];
};

/*
 * The address book: the stored bootstrap record (how the member started, its
 * initial voters, its members' addresses), kept compact in memory since a
 * group has a few members where struct engine_bootstrap has room for
 * RAFT_MAX_MEMBERS (addrbook.c).
 */
struct addrbook {
	bool join;
	uint32_t n;
	struct engine_member *m;         /* n addresses */
	struct raft_membership *initial; /* initial voters; NULL when the member joined */
	raft_index index; /* the log's membership changes up to here are in m (saved) */
	raft_index at;    /* > 0: the log index being applied (what a learn is current to) */
};

/* What the network was told of a node: the address it dials (addrbook.c). */
struct eng_peer {
	raft_id id;
	uint64_t learned; /* of the book entry it came from */
	uint64_t linger;  /* removed here: the network forgets it at this tick, not before */
	char addr[ENGINE_ADDR_MAX];
};

/*
 * What a group is doing.  Every change goes through eng_set_state()
 * (engine.c), the one place that knows the transitions:
 *
 *	ACTIVE -> RECOVERING     install(): recover() runs in the background; the
 *	                         group is frozen, its Ready held
 *	RECOVERING -> RECOVERED  engine_snapshot_recovered() with success
 *	RECOVERED -> ACTIVE      the next round saved and advanced the held Ready
 *	ACTIVE, RECOVERED        the Raft core ran out of memory applying a
 *	  -> APPLY_RETRY         membership change: the Ready (saved and sent) is
 *	                         held, the group frozen, and each round applies
 *	                         again from that entry (raft.h: later entries wait)
 *	APPLY_RETRY -> ACTIVE    it applied: the Ready is advanced
 *	any -> FAILED            its state machine or Raft core failed (g->error);
 *	                         pending operations complete with ENGINE_ERR_SM
 */
enum group_state {
	GS_ACTIVE = 0,
	GS_RECOVERING,
	GS_RECOVERED,
	GS_APPLY_RETRY,
	GS_FAILED,
};

struct group {
	uint64_t id;
	struct engine *e;
	struct raft *r;
	struct engine_sm_ops sm;
	enum group_state state;
	struct engine_arena arena; /* entry data read from storage this round */
	struct entry_cache cache;  /* recently persisted entries */
	struct addrbook book;      /* the stored bootstrap record */
	bool marked;               /* in e->marked: the next round visits it */
	size_t tick_pos;           /* its place in e->ticking, or SIZE_MAX when not there */

	/* The stable log as storage holds it (logview.c; Raft reads it through us). */
	struct raft_hard_state hs; /* the last the core handed out */
	raft_index saved_commit;   /* the commit index storage holds */
	bool conf_commit;          /* this round's Ready saves a commit raft_conf_bound covers */
	raft_index wr_index;       /* this round wrote entries up to it unsynced (deferred) */
	raft_term wr_term;
	raft_index dw_index;       /* written unsynced, for the next background sync */
	raft_term dw_term;
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
	uint64_t resets;       /* raft_resets(): also a change and its undoing between rounds */
	raft_index noop_index; /* as leader: last index when leadership was seen */

	struct raft_ready rd;

	char *recv_path; /* snapshot file received for recv_index (ENGINE_PATH_MAX bytes), or NULL
	                  */
	raft_index recv_index;
	struct snap_out *out; /* a state machine snapshot for followers, while one is made */
	/* Snapshots shipped to followers: the log after each stays until that follower has it
	 * (snapshot.c keep_shipped). */
	struct shipped {
		raft_id to;
		raft_index index;
		uint64_t until; /* tick */
	} shipped[RAFT_MAX_MEMBERS];
	uint32_t n_shipped;
	/* Followers whose last snapshot streams failed in a row (a receiver without room
	 * for it, say): no new snapshot is made for one before its retry tick, so that a
	 * leader does not export its tables again and again while they are refused
	 * (snapshot.c); one that took a stream leaves the list. */
	struct snap_backoff {
		raft_id to;
		uint32_t failures;
		uint64_t retry; /* tick */
	} backoff[RAFT_MAX_MEMBERS];
	uint32_t n_backoff;
	/* Followers that refused this leader's snapshot streams for want of room: one record
	 * each, for the status and the log line (snapshot.c, engine_snapshot_refused_by),
	 * until the follower takes a snapshot or catches up by entries, or leaves the group.
	 * Not shown once this node stops leading it in this term (the record keeps the pace
	 * of the log line: a leadership that comes back says no more, review 33). */
	struct snap_no_room {
		raft_id to;
		uint64_t need, free_bytes, min_free; /* its latest refusal's numbers */
		bool shown;        /* that refusal is its latest answer: no stream started since */
		uint64_t count;    /* refusals in a row */
		uint64_t left_out; /* of them, not logged since the last line */
		uint64_t logged;   /* tick of the last line */
	} *no_room; /* RAFT_MAX_MEMBERS records (e->a), from the first refusal until the
	             * last record goes: NULL in almost every group */
	uint32_t n_no_room;

	struct pending_cc cc;
	struct pending_transfer transfer;
	struct pending_snapshot snapreq;
	size_t n_pending; /* proposals and reads in the table */
	uint64_t *reads;  /* keys of reads whose index is known, waiting for apply */
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
	char *error;   /* why the group failed (GS_FAILED) */
	char *refusal; /* this node's last refusal of a snapshot for want of room
	                * (engine_snapshot_refused), until one arrives or it catches up;
	                * NULL: none */
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
	char errmsg[512];
	char snapdir[ENGINE_PATH_MAX];

	struct group **groups; /* running groups */
	size_t n_groups, cap_groups;
	struct eng_peer *peers; /* addresses handed to add_peer, one per node */
	size_t n_peers, cap_peers;
	uint64_t addr_clock;  /* the last learned stamp handed out or read (addrbook.c) */
	struct group **index; /* open-addressing table of groups by id (NULL = free) */
	size_t index_cap;     /* a power of two, at least twice n_groups */
	/* Tests: wall-clock microseconds for address stamps (addrbook.c); NULL: CLOCK_REALTIME. */
	uint64_t (*wall_us)(void);

	struct pending_table pend;
	uint64_t now;    /* ticks */
	uint64_t series; /* last proposal/read key handed out */
	uint64_t client_id;
	uint64_t dropped;
	uint64_t role_changes; /* engine_role_changes() */
	bool failed;           /* a storage failure stopped the engine (errmsg) */
	bool stopping;         /* engine_destroy runs: no new operations */
	bool in_round;
	bool in_flush;  /* running completion callbacks */
	unsigned defer; /* > 0: completions are queued (table being iterated) */

	/*
	 * The ready set: groups the next round visits (input arrived, a tick
	 * made work, an operation started, a report came).  A round takes it
	 * whole (into batch) and visits nothing else, so idle groups cost
	 * nothing per round.  The tick set: groups engine_tick() ticks (every
	 * active group that is not quiescent; a round puts a woken one back).
	 * Both have room for
	 * every group, reserved when it starts.
	 */
	struct group **marked;
	size_t n_marked;
	struct group **ticking;
	size_t n_ticking;
	struct group **batch; /* the set a round took */
	size_t cap_sets;

	/* reusable round buffers */
	struct group **ready; /* the batch's groups with a Ready */
	size_t cap_ready;
	struct engine_update *updates;
	size_t cap_updates;
	struct engine_sm_entry *sment;
	size_t cap_sment;
	uint8_t *scratch;
	size_t cap_scratch;
	struct done *done;
	size_t n_done, cap_done;
	size_t n_owed;     /* operations accepted, not completed: cap_done >= n_done + n_owed */
	uint64_t *changed; /* ids of groups whose status changed (room for every group) */
	size_t n_changed, cap_changed;
	/*
	 * Outgoing snapshot files are named snap-<node>-<group>-<snap_tag>-<snap_seq>:
	 * the sequence restarts at 1 with each engine, and a process that outlived
	 * an earlier one (a PostgreSQL exporter still writing, or deleting its file
	 * when it fails) must not share a name with a file of this one.  snap_tag
	 * is drawn at random for each engine (engine_create).
	 */
	uint64_t snap_seq;
	uint64_t snap_tag;

	/* Deferred leader syncs (round.c): what the background sync under way covers. */
	bool sync_wanted;    /* a group wrote unsynced since the last sync began */
	bool sync_out;       /* a sync is under way */
	uint64_t sync_began; /* the tick it began */
	struct eng_synced {
		uint64_t group_id;
		raft_index index;
		raft_term term;
	} *sy;
	size_t n_sy, cap_sy;
};

/* May the group be stepped, ticked or asked for work (not failed, not frozen by a recovery)? */
static inline bool eng_live(const struct group *g)
{
	return g->state == GS_ACTIVE;
}

/* 8 bytes little-endian: the engine's entry header, a membership change's address stamp. */
static inline void eng_put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint64_t eng_get64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

/* ---- engine.c ---- */

/* Find a running group. */
struct group *eng_group(const struct engine *e, uint64_t id);
/* Record a formatted error message; returns rc. */
int eng_err(struct engine *e, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* A line for the operator at an engine_log_level (engine_config.log_fn; none without it). */
void eng_say(struct engine *e, int level, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
/* Grow *p (element size sz) to hold at least n elements. */
int eng_reserve(struct engine *e, void **p, size_t *cap, size_t n, size_t sz);
/* Map a raft_rc to an engine_rc. */
int eng_from_raft(int rc);
/* Complete an operation. */
void eng_complete(struct engine *e, engine_done_cb cb, void *ctx, int rc, uint64_t group,
                  raft_index index, raft_id leader);
/* Run queued completions unless a round, a flush or an iteration is under way. */
void eng_flush(struct engine *e);
/* Move g to state to (see enum group_state); false for a transition that does not exist. */
bool eng_set_state(struct engine *e, struct group *g, enum group_state to);
/* g's state machine or Raft core failed: record why (formatted), fail g (its operations too). */
void eng_group_failed(struct engine *e, struct group *g, int rc, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
/*
 * The storage failed (rc; what, formatted, says doing what): stop the engine.
 * Nothing is sent, acknowledged or applied after it; every pending operation
 * completes with ENGINE_ERR_FAILED (queued: they run at the next flush, never
 * from inside the Raft core).  Returns ENGINE_ERR_FAILED.
 */
int eng_fail_engine(struct engine *e, int rc, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
/*
 * What an input to g's Raft core returned (or raft_fatal() after a call that
 * records its error): a refusal of the input comes back as an engine rc;
 * RAFT_ERR_STORAGE (storage failed or contradicted itself) stops the engine;
 * RAFT_ERR_BUG (an impossible state) and any rc the engine does not expect
 * stop the group; each with a message naming what and raft_errmsg().
 */
int eng_raft_rc(struct engine *e, struct group *g, int rc, const char *what);
/* List g for engine_take_changed(). */
void eng_changed(struct engine *e, struct group *g);
/* A snapshot arrived or entries did: a refusal of one for want of room is over. */
void eng_refusal_clear(struct engine *e, struct group *g);
/* The leader's records of refusals (no_room): a stream to `to` started (the refusal is no
 * longer its latest answer); or drop those of members that left or caught up by entries,
 * or (all) show none when this node no longer leads in the term they were made. */
void eng_no_room_streaming(struct engine *e, struct group *g, raft_id to);
/* A stream to `to` went through: its record goes (logged when it had one). */
void eng_no_room_took(struct engine *e, struct group *g, raft_id to);
void eng_no_room_prune(struct engine *e, struct group *g);
void eng_no_room_forget_all(struct engine *e, struct group *g);
/* g has work: the next round visits it. */
void eng_mark(struct engine *e, struct group *g);
/* g joins the tick set if it is active and not quiescent, else leaves it (a change is listed
 * for engine_take_changed). */
void eng_tick_update(struct engine *e, struct group *g);

/* ---- logview.c ---- */

/* Fill g's log view from storage (restart, bs NULL) or record a new member (bs). */
int eng_view_load(struct engine *e, struct group *g, const struct engine_bootstrap *bs);
/* The struct raft_storage through which g's Raft core reads the view. */
void eng_view_storage(struct group *g, struct raft_storage *st);
/* After a save: the stable log as storage now holds it (g->rd was saved). */
void eng_view_persisted(struct engine *e, struct group *g);
/* Term of a persisted entry (first - 1 <= i <= last). */
int eng_view_term(struct engine *e, struct group *g, raft_index i, raft_term *t);

/* ---- addrbook.c ---- */

/* Take bs as g's address book (a new member's voters are its members unless it joins). */
int eng_book_init(struct engine *e, struct group *g, const struct engine_bootstrap *bs, bool fresh);
/* Save g's address book as its bootstrap record (synced). */
int eng_book_save(struct engine *e, struct group *g);
/* Free g's address book. */
void eng_book_free(struct engine *e, struct group *g);
/* g's initial voters (none when it joined). */
const struct raft_membership *eng_book_initial(const struct group *g);
/*
 * The context of a membership change that adds a node (client.c proposes
 * it, round.c applies it): the node's address, a NUL, ENG_CC_STAMPED and the
 * proposer's stamp for the address (8 bytes, little-endian: when it was
 * given), so that every member learns it as of then, however late it applies
 * the change (user28).  Older builds wrote the address alone (no NUL):
 * unstamped, learned as engine_learn_address_unstamped learns an address.
 * Forward compatible: a later version keeps the address, the NUL and its
 * version byte, and may only append after the version byte; this build
 * learns its address unstamped.
 */
#define ENG_CC_STAMPED     1
#define ENG_CC_CONTEXT_MAX (ENGINE_ADDR_MAX + 9) /* an address, NUL, version, stamp */
struct eng_cc_address {
	const char *addr; /* len bytes, not NUL-terminated */
	size_t len;
	unsigned version; /* 0: an older build's (the address alone); 1; later: unstamped */
	uint64_t learned; /* the proposer's stamp; 0: unstamped */
	uint64_t far;     /* a version-1 stamp above ENGINE_STAMP_MAX (learned 0), or 0 */
};
/* The context for addr (strlen < ENGINE_ADDR_MAX) given at stamp learned (> 0): its length. */
size_t eng_cc_context(uint8_t *buf, const char *addr, uint64_t learned);
/* Decode a context: ENGINE_OK, or ENGINE_ERR_INVALID (no address) with what is wrong in why. */
int eng_cc_address(const uint8_t *ctx, size_t len, struct eng_cc_address *out, char *why,
                   size_t cap);
/*
 * Learn the address that the membership change at index (adding node id) brings in its
 * context: one that brings none, one of a later version, or one stamped above
 * ENGINE_STAMP_MAX (learned unstamped), is said in a WARNING line, and the book is saved
 * as holding the change (a restart does not apply it, nor say so, again).
 */
int eng_learn_cc_address(struct engine *e, struct group *g, raft_index index, raft_id id,
                         const uint8_t *ctx, size_t len);
/* Node id left g: its address leaves g's book (saved), and the network once no group needs it. */
int eng_forget_address(struct engine *e, struct group *g, raft_id id);
/* eng_forget_address for each of m's removed ids that g's book lists. */
void eng_book_drop_removed(struct engine *e, struct group *g, const struct raft_membership *m);
/* Tell the network to forget node id unless a group here has it (member or address). */
void eng_drop_peer_if_unused(struct engine *e, raft_id id);
void eng_linger_peer(struct engine *e, raft_id id);
void eng_drop_lingering(struct engine *e);
/* Tell the network every address g knows (at start). */
void eng_announce_addresses(struct engine *e, struct group *g);
/* Does g's address book list node id? */
bool eng_knows_address(const struct group *g, raft_id id);

/* ---- client.c ---- */

/* Complete the operation w waits for (if any) and clear it. */
void eng_waiter_done(struct engine *e, struct group *g, struct waiter *w, int rc, raft_index index);
/* Committed entries ents[0..n) were applied (g->applied moved): settle a tracked conf change. */
void eng_cc_applied(struct engine *e, struct group *g, const struct raft_entry *ents, uint32_t n);
/* Complete g's reads that have no read index yet with rc (none will come). */
void eng_end_unconfirmed_reads(struct engine *e, struct group *g, int rc);
/* Ask the core again for g's reads without a read index that it no longer holds (asked
 * before its last change of role, term or leader: raft_resets) or never took (it knew
 * no leader then), of the leader it knows now. */
void eng_reask_reads(struct engine *e, struct group *g);
/* Resolve everything of g pending at a leadership change. */
void eng_leader_changed(struct engine *e, struct group *g);
/* Fail every pending operation of g with rc (group stopping or failed). */
void eng_fail_group(struct engine *e, struct group *g, int rc);
/* Time out operations whose deadline passed. */
void eng_expire(struct engine *e);
/* round.c: a background sync out for an election timeout hands this node's groups off. */
void eng_sync_watch(struct engine *e);

/* ---- snapshot.c ---- */

/* m->to needs a snapshot of the state machine (leader side). */
void eng_send_snapshot(struct engine *e, struct group *g, const struct raft_message *m);
/* A stream to `to` ended: failed ones put its next snapshot off. */
void eng_snapshot_backoff(struct engine *e, struct group *g, raft_id to, bool failed);
/* A background snapshot save of g ended: ship it (outside any Ready). */
void eng_snapshot_saved(struct engine *e, struct group *g);
/* Install the snapshot in g->rd into the state machine; ENGINE_IN_PROGRESS when in the background.
 */
int eng_install(struct engine *e, struct group *g);
/* Is a metadata snapshot due (or asked for)?  It waits while the state machine's durable
 * applied index lags. */
bool eng_snapshot_wanted(const struct engine *e, const struct group *g);
/* Take a metadata snapshot and compact when due (DESIGN 9). */
int eng_snapshot_if_due(struct engine *e, struct group *g);

#endif /* DRAGONRAFT_ENGINE_INT_H */
