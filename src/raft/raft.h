/*
 * raft.h - the Raft protocol core: one struct raft per group, no I/O, no
 * clock, no threads, no global state.
 *
 * Input:  raft_tick(), raft_step(message), raft_propose(), raft_read_index(),
 *         raft_propose_conf_change(), raft_transfer_leader(), raft_campaign(),
 *         raft_wake(), raft_report_*().
 * Output: a Ready record (raft_ready()), acknowledged with raft_advance().
 *
 * The caller's loop, as in etcd raft's RawNode:
 *
 *	if (raft_has_ready(r)) {
 *		if (raft_ready(r, &rd) != RAFT_OK)
 *		        stop the group (see "Errors");
 *		persist rd.hard_state (if rd.hard_state_changed), rd.entries and
 *		        rd.snapshot (if rd.has_snapshot), fsync;
 *		send rd.messages (the leader may send rd.messages before persisting
 *		        when the message is an append: raft_msg_may_precede_persist());
 *		apply rd.committed;
 *		raft_advance(r, &rd);
 *	}
 *
 * Between raft_ready() and raft_advance() only raft_apply_conf_change(),
 * raft_report_*() and the accessors may be called; the other input functions
 * return RAFT_ERR_INVALID there and raft_has_ready() is false.  Any number of
 * inputs may come between two Readys (an engine steps a whole batch).
 *
 * Errors.  Every input function returns a raft_rc:
 *  - refusals (NOT_LEADER, NO_LEADER, TOO_MANY_UNCOMMITTED, CONF_CHANGE_PENDING,
 *    TRANSFER_IN_PROGRESS, REMOVED, TOO_BIG, INVALID): nothing changed and
 *    nothing is queued.  INVALID from raft_step is a malformed or forged
 *    message: it was dropped; count it.
 *  - RAFT_ERR_NOMEM: from raft_propose, raft_propose_conf_change,
 *    raft_read_index, raft_transfer_leader, raft_campaign and
 *    raft_apply_conf_change nothing changed: retry (raft_apply_conf_change
 *    must succeed before later entries are applied, or the group must stop).
 *    From raft_step and raft_tick: handled at most as if the message or a
 *    reply had been lost on the network, which Raft tolerates; carry on.
 *    raft_ready never fails for memory: what it could not add waits for the
 *    next Ready.
 *  - fatal, the group must stop: RAFT_ERR_BUG (an impossible state, debug
 *    builds abort instead; or, from raft_step, a leader whose log contradicts
 *    an entry committed here: proof that a replica lost its state and voted
 *    or acknowledged again) and RAFT_ERR_STORAGE (a storage callback failed or
 *    storage contradicts itself).  They are sticky: every later call returns
 *    the same code, raft_has_ready() is false and raft_ready() hands out
 *    nothing, so nothing computed after the failure ever leaves the replica.
 *    raft_fatal() and raft_errmsg() say what happened; only the accessors and
 *    raft_destroy() remain useful.  Any input function and raft_ready() may
 *    return them; raft_advance(), raft_report_*() and raft_compacted() record
 *    them for the next call.
 *
 * Storage: the core keeps unstable entries itself and reads stable ones
 * through struct raft_storage (like etcd's Storage).  raft_memstorage.h is an
 * in-memory implementation for tests, the simulator and benchmarks.
 *
 * Entry data: what a Ready or its messages point to is owned by the core (or,
 * for stable entries, by storage) and stays valid until raft_advance();
 * data passed in (raft_propose, raft_step) is copied.  Messages built by
 * inputs between two Readys point to storage's data too and wait in the
 * core until the next raft_ready(): an apply-only Ready (raft_ready_apply)
 * hands out none, so while raft_holds_messages() storage's data must outlive
 * that Ready's raft_advance().
 *
 * Membership (thesis 4.1, one server at a time) takes effect when the caller
 * applies the committed conf change entry with raft_apply_conf_change(), as in
 * etcd.  Safety: the leader refuses a new change while the previous one is not
 * applied, and a replica does not campaign while a committed change is
 * unapplied.  Bootstrapping a group writes one committed conf change entry per
 * member (term 1, indexes 1..n), so a member that joins later learns the
 * initial configuration from the log.  A replica created without bootstrap
 * over storage that holds a membership but no entries and term 0 (a crash
 * before the bootstrap Ready was persisted) bootstraps again from it.
 *
 * Quiescence (config quiesce_tick, after Dragonboat): a leader whose group has
 * been idle for quiesce_tick ticks (no proposal, read, membership change,
 * transfer or snapshot under way; every member has acknowledged the last
 * index and reported the commit index) sends RAFT_MSG_QUIESCE, carrying the
 * commit index as a heartbeat does, and stops ticking; a follower takes that
 * commit index and does the same on that message from its leader.  While
 * raft_quiesced(), raft_tick() does nothing (the caller may skip it).  Any
 * local input and any message but QUIESCE wakes the replica, except that a
 * heartbeat response wakes only a leader, and only when flagged (not late
 * answers to its last heartbeats).  Waking restarts the timers, so it never
 * starts an election or a CheckQuorum step-down by itself; a woken leader
 * heartbeats at once and a woken follower tells its leader (a heartbeat
 * response flagged RAFT_MSG_FLAG_WAKE), so one woken member wakes the
 * group.  If the leader
 * may be gone, wake the followers (raft_wake(), or raft_report_unreachable()
 * of the leader): they elect a new one after an election timeout.  A
 * non-voter that knows no leader (one that restarted after the group went
 * quiet, and missed QUIESCE) sends that flagged heartbeat response to every
 * voter each election timeout: it cannot campaign, and a quiescent leader
 * sends nothing, so it would learn its commit index only at the next write
 * (unless the caller wakes a quiescent leader when a message to a member
 * fails, as the engine does).  Only a leader wakes on it.
 *
 * rd.committed may include entries of rd.entries (the leader commits through
 * its followers while persisting in parallel): persist before applying.
 *
 * Deferred syncs (config defer_leader_sync): a leader's Ready that carries
 * entries but no new term, vote or snapshot says rd.sync_deferred.  The
 * caller may then write it without waiting for the sync, send all of its
 * messages once written (a leader's messages of its own term promise
 * nothing about its own log), apply and advance, and sync in the
 * background: the core counts those entries for the leader's own vote, and
 * hands them out as committed, only once raft_durable() reported them (any
 * Ready hands out committed entries only up to what is durable while a
 * report is outstanding).  Contract: a synced save makes every earlier
 * write of the group durable (a journal that is a prefix), so the advance
 * of a Ready that was saved synced (entries, a snapshot, a new term or
 * vote) counts everything stored as durable; after a crash, writes never
 * reported durable may be lost, with the hard state written beside them.
 * Followers never defer: their acknowledgements promise a durable log.
 */
#ifndef DRAGONRAFT_RAFT_H
#define DRAGONRAFT_RAFT_H

#include "raft_msg.h"

/* Return codes: 0 is success, all errors are negative. */
enum raft_rc {
	RAFT_OK = 0,
	RAFT_ERR_NOMEM = -1,                /* allocation failed */
	RAFT_ERR_NOT_LEADER = -2,           /* this replica is not leader; see raft_leader() */
	RAFT_ERR_NO_LEADER = -3,            /* proposal dropped: no known leader to forward to */
	RAFT_ERR_TOO_MANY_UNCOMMITTED = -4, /* uncommitted byte limit reached */
	RAFT_ERR_CONF_CHANGE_PENDING = -5,  /* one membership change at a time */
	RAFT_ERR_TRANSFER_IN_PROGRESS = -6, /* proposals refused while transferring */
	RAFT_ERR_INVALID = -7,              /* bad argument (unknown member, bad id, ...) */
	RAFT_ERR_REMOVED = -8,              /* the node id was removed and cannot return */
	RAFT_ERR_COMPACTED = -9,            /* storage: requested index compacted away */
	RAFT_ERR_UNAVAILABLE = -10,         /* storage: requested index not yet available */
	RAFT_ERR_STORAGE = -11,             /* storage callback failed (fatal) */
	RAFT_ERR_TOO_BIG = -12,             /* entry larger than the configured maximum */
	RAFT_ERR_BUG = -13,                 /* an impossible state: the group must stop (fatal) */
};

/* Static description of an rc. */
const char *raft_strerror(int rc);

enum raft_role {
	RAFT_FOLLOWER = 0,
	RAFT_PRECANDIDATE = 1,
	RAFT_CANDIDATE = 2,
	RAFT_LEADER = 3,
};

/*
 * Read access to stable storage.  All callbacks return a raft_rc: RAFT_OK, or
 * RAFT_ERR_NOMEM (transient: what needed the read waits and is retried), or
 * any other error for an index inside [first_index - 1, last_index], which is
 * fatal (RAFT_ERR_STORAGE, see "Errors").
 */
struct raft_storage {
	void *ctx;
	/* Hard state and membership as last persisted. */
	int (*initial_state)(void *ctx, struct raft_hard_state *hs, struct raft_membership *m);
	/*
	 * Entries [lo, hi), at most max_bytes in total but at least one entry.
	 * Fills out[0..*n) (room for hi-lo entries); data stays valid until the
	 * next raft_advance() of the group that asked, and past it while
	 * raft_holds_messages() (after an apply-only Ready: see "Entry data").
	 */
	int (*entries)(void *ctx, raft_index lo, raft_index hi, uint64_t max_bytes,
	               struct raft_entry *out, uint32_t *n);
	/* Term of entry i, for first_index-1 <= i <= last_index. */
	int (*term)(void *ctx, raft_index i, raft_term *t);
	raft_index (*first_index)(void *ctx); /* first entry still in the log */
	raft_index (*last_index)(void *ctx);
	/* Metadata of the latest snapshot (index 0 when there is none). */
	int (*snapshot)(void *ctx, struct raft_snapshot_meta *meta);
};

/* Allocation hooks, swappable so tests can inject failures. */
struct raft_alloc {
	void *(*malloc)(size_t size);
	void *(*realloc)(void *p, size_t size);
	void (*free)(void *p);
};

struct raft_config {
	uint64_t group_id;
	raft_id id;                     /* this replica, > 0 */
	unsigned election_tick;         /* election timeout in ticks (> heartbeat_tick) */
	unsigned heartbeat_tick;        /* heartbeat interval in ticks */
	bool pre_vote;                  /* thesis 9.6; with a tie-break (election.c) */
	bool check_quorum;              /* leader steps down without a quorum (thesis 6.2) */
	unsigned max_inflight_msgs;     /* appends in flight per follower */
	uint64_t max_inflight_bytes;    /* bytes in flight per follower; 0 = unlimited */
	uint64_t max_msg_bytes;         /* most entry bytes per append message */
	uint64_t max_uncommitted_bytes; /* leader's uncommitted payload limit; 0 = none */
	uint64_t max_entry_bytes;       /* largest single entry; 0 = none */
	uint64_t max_committed_bytes; /* most committed bytes per Ready (>= 1 entry); 0 = 64 MiB */
	unsigned quiesce_tick;        /* idle ticks before a leader quiesces the group; 0 = never */
	bool defer_leader_sync;       /* a leader's Readys may be synced later (see the top) */
	raft_index applied; /* last applied index at restart (may pass the stored commit) */
	uint64_t seed;      /* seeds the randomized election timeout */
	struct raft_storage storage;
	const struct raft_alloc *alloc; /* NULL = libc */
};

/* A ReadIndex result: reads with this context may be served once applied >= index. */
struct raft_read_state {
	uint64_t context;
	raft_index index;
};

/* Soft state that changed (leader changes are reported through this). */
struct raft_soft_state {
	raft_id leader;
	enum raft_role role;
};

/*
 * Everything the caller must do this round.  All arrays are owned by the core
 * and stay valid until raft_advance().
 */
struct raft_ready {
	bool hard_state_changed;
	struct raft_hard_state hard_state; /* persist if changed */
	bool soft_state_changed;
	struct raft_soft_state soft_state;
	bool has_snapshot;
	struct raft_snapshot_meta snapshot; /* install, then persist, if has_snapshot */
	uint32_t n_entries;
	const struct raft_entry *entries; /* append to stable storage (replacing >= first) */
	uint32_t n_messages;
	const struct raft_message *messages; /* send after persisting (see raft.h top) */
	uint32_t n_committed;
	const struct raft_entry *committed; /* apply in order */
	uint32_t n_read_states;
	const struct raft_read_state *read_states;
	bool sync_deferred; /* write now, sync later, report with raft_durable() */
};

struct raft; /* opaque */

/*
 * Create a replica; bootstrap: membership for a brand new group over empty
 * storage (else NULL: restart, or a member joining an existing group).  With
 * bootstrap the first Ready carries the n bootstrap entries (see above).
 */
int raft_create(const struct raft_config *cfg, const struct raft_membership *bootstrap,
                struct raft **out);
/* Free a replica and everything it owns. */
void raft_destroy(struct raft *r);

/* Advance logical time by one tick. */
int raft_tick(struct raft *r);
/* Feed one message received from a peer (or forwarded locally). */
int raft_step(struct raft *r, const struct raft_message *m);

/*
 * Propose application data.  On the leader *index receives its log index; on
 * a follower the entry is forwarded to the leader and *index is 0 (the caller
 * recognises its entry by content when it commits).
 */
int raft_propose(struct raft *r, const uint8_t *data, uint32_t len, raft_index *index);
/* Propose one membership change (one pending at a time). */
int raft_propose_conf_change(struct raft *r, const struct raft_conf_change *cc, raft_index *index);
/*
 * Apply a committed conf change entry to the configuration (call while
 * applying, in log order); *out receives the membership to persist.  A change
 * already applied (index <= config_index) or no longer valid leaves it
 * unchanged and returns RAFT_OK; RAFT_ERR_INVALID for a malformed entry.  A
 * leader that removes itself steps down (of three or more voters; a leader of
 * two never commits its own removal: it hands over, and the other voter
 * commits it).  An embedder that stores a commit index lazily must store one
 * that raft_conf_bound() says may cover a membership change before any
 * message of that Ready leaves, appends included (engine round.c).
 */
int raft_apply_conf_change(struct raft *r, const struct raft_entry *e, struct raft_membership *out);
/* Request a linearizable read point; the answer comes as a read state with context. */
int raft_read_index(struct raft *r, uint64_t context);
/* Ask the leader to hand leadership to target (thesis 3.10). */
int raft_transfer_leader(struct raft *r, raft_id target);
/* Start an election now (tests and manual failover). */
int raft_campaign(struct raft *r);

/* Leave quiescence now (no-op if not quiescent), e.g. when the leader may be gone. */
int raft_wake(struct raft *r);
/* Is this replica quiescent (raft_tick() would do nothing)? */
bool raft_quiesced(const struct raft *r);

/* The transport could not reach a peer (if it is our leader, we wake up). */
void raft_report_unreachable(struct raft *r, raft_id peer);
/* The snapshot sent to a peer finished (or failed). */
void raft_report_snapshot(struct raft *r, raft_id peer, bool failed);

/* Is there anything in a Ready? */
bool raft_has_ready(const struct raft *r);
/*
 * Do messages wait in the core for the next raft_ready()?  They may point to
 * entry data that storage returned: storage must keep it until they are
 * handed out and that Ready is advanced (true after an apply-only Ready when
 * inputs built messages before it; always false after a raft_ready()'s).
 */
bool raft_holds_messages(const struct raft *r);
/* Fill rd with this round's work; RAFT_OK, RAFT_ERR_INVALID (a Ready is out) or fatal. */
int raft_ready(struct raft *r, struct raft_ready *rd);
/* The caller has persisted, sent and applied rd. */
void raft_advance(struct raft *r, const struct raft_ready *rd);
/*
 * An apply-only Ready: committed entries that this replica already persisted
 * and nothing else (no entries, state or messages, which wait for the next
 * raft_ready()), acknowledged with raft_advance() like any Ready.  It lets a
 * caller apply what is committed before it persists newer entries, so that
 * a commit does not wait for the fsync of the entries proposed after it
 * (etcd raft applies committed entries concurrently with the next write).
 */
bool raft_has_apply_ready(const struct raft *r);
int raft_ready_apply(struct raft *r, struct raft_ready *rd);
/* Messages that a leader may send before persisting the entries they carry. */
bool raft_msg_may_precede_persist(const struct raft_message *m);
/*
 * The entries up to index, written by Readys that said sync_deferred, are
 * durable; term is entry index's as written (a report for an entry replaced
 * since is ignored; so is one below what is known durable).  Not between
 * raft_ready() and raft_advance() (RAFT_ERR_INVALID).  A leader counts them
 * for its own vote at once, and its next Ready may commit and hand them out.
 * RAFT_ERR_NOMEM: storage could not read the entry's term now; nothing was
 * taken, report it again.
 */
int raft_durable(struct raft *r, raft_index index, raft_term term);

/*
 * Hold committed entries back from Readys while the state machine cannot take
 * more (hold = true), as Dragonboat's GetUpdate(moreEntriesToApply); false
 * hands them out again.  Everything else in a Ready still flows: the replica
 * keeps persisting, acknowledging and voting.
 */
void raft_hold_apply(struct raft *r, bool hold);

/* Caller-driven compaction: stable storage was compacted up to index. */
void raft_compacted(struct raft *r, raft_index index);

/* Read-only accessors. */
enum raft_role raft_role(const struct raft *r);
raft_id raft_leader(const struct raft *r);
raft_term raft_term_of(const struct raft *r);
/*
 * How many times the core reset its role: became a follower (of a new term,
 * or after a step-down or a lost election), a pre-candidate, a candidate or
 * the leader.  Each forgets the ReadIndex queue, and what comes meanwhile
 * for the state it left is dropped; every change of term or role, and of
 * leader within a term, is one (a follower learning its term's leader is
 * not).  A caller that looks at role, term and leader only now and then
 * misses a change undone in between (a follower that timed out, lost its
 * pre-vote and heard from the same leader again); this count still moved.
 */
uint64_t raft_resets(const struct raft *r);
raft_index raft_commit_index(const struct raft *r);
raft_index raft_last_index(const struct raft *r);
/* The index of a snapshot that a RAFT_MSG_SNAPSHOT installed in the core and
 * that a Ready carries (or will) for the caller to install; 0 if none. */
raft_index raft_snapshot_pending(const struct raft *r);
/* No membership change entry in the log lies above this index (an upper
 * bound: after a restart, the last index then).  A commit index that moves
 * past a stored one below it may cover a change: an embedder that stores a
 * commit index alone lazily must store it then (a restart takes its
 * configuration from the log up to the stored commit index). */
raft_index raft_conf_bound(const struct raft *r);
/* Term of entry i in this replica's log (unstable entries included); a raft_rc. */
int raft_term_at(const struct raft *r, raft_index i, raft_term *t);
/* As leader: the lowest match index of the other members (what they may still
 * need starts after it); otherwise, or alone, the last index. */
raft_index raft_peers_match(const struct raft *r);
/* Replication progress of one member, as its leader tracks it. */
struct raft_peer_progress {
	raft_id id;
	bool voter;
	raft_index match;   /* highest index known to be replicated there */
	raft_index next;    /* next index to send */
	bool recent_active; /* heard from since the last check-quorum */
	bool heard_before;  /* heard from in the check-quorum period before that */
};
/* As leader: member id's progress (RAFT_ERR_NOT_LEADER, or RAFT_ERR_INVALID for a non-member). */
int raft_peer_progress(const struct raft *r, raft_id id, struct raft_peer_progress *out);
const struct raft_membership *raft_membership(const struct raft *r);
/* Is id a voter or non-voter of m? */
bool raft_membership_contains(const struct raft_membership *m, raft_id id);
/* Why the last input was refused with RAFT_ERR_INVALID, or what stopped the replica. */
const char *raft_errmsg(const struct raft *r);
/* The fatal rc that stopped this replica (RAFT_ERR_BUG, RAFT_ERR_STORAGE), or 0. */
int raft_fatal(const struct raft *r);

/* Encode / decode a conf change as entry data.  Encode returns bytes needed. */
size_t raft_conf_change_encode(const struct raft_conf_change *cc, uint8_t *buf, size_t cap);
int raft_conf_change_decode(const uint8_t *buf, size_t len, struct raft_conf_change *cc);

#endif /* DRAGONRAFT_RAFT_H */
