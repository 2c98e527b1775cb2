/*
 * raft_int.h - private state of the Raft core, shared by its source files.
 *
 * Nothing here is part of the API; raft.h is.
 */
#ifndef DRAGONRAFT_RAFT_INT_H
#define DRAGONRAFT_RAFT_INT_H

#include <stddef.h>
#include <stdint.h>

#include "raft/raft.h"
#include "util/arena.h"

/* Most entries fetched for one message or one Ready's committed batch. */
#define RAFT_FETCH_MAX_ENTRIES 16384u
/* Most committed payload bytes handed out in one Ready. */
#define RAFT_COMMITTED_MAX_BYTES (64u << 20)
/* Default data block size of an arena. */
#define RAFT_ARENA_BLOCK (64u << 10)

/*
 * Impossible states.  RAFT_ASSERT(r, cond) checks what the core itself
 * guarantees, never a property of input (a malformed or forged message is
 * refused with RAFT_ERR_INVALID and counted by the caller).  Debug builds
 * (RAFT_DEBUG: tests under sanitizers, the simulator, fuzzing) abort; release
 * builds record RAFT_ERR_BUG, which stops the group (raft.h, "Errors"), and
 * return from the enclosing function (with ret, or RAFT_ERR_BUG).
 */
#ifdef RAFT_DEBUG
#define RAFT_ASSERT_RET(r, cond, ret)                                                              \
	do {                                                                                       \
		(void)(r);                                                                         \
		if (!(cond))                                                                       \
			raft_abort(#cond, __FILE__, __LINE__);                                     \
	} while (0)
#else
#define RAFT_ASSERT_RET(r, cond, ret)                                                              \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			raft_bug((r), #cond, __FILE__, __LINE__);                                  \
			return ret;                                                                \
		}                                                                                  \
	} while (0)
#endif
#define RAFT_ASSERT(r, cond) RAFT_ASSERT_RET(r, cond, RAFT_ERR_BUG)

/* Ring of in-flight appends to one follower: last index and bytes of each. */
struct inflights {
	uint32_t start;
	uint32_t count;
	uint32_t cap;
	uint64_t bytes;
	raft_index *last;
	uint64_t *size;
};

enum pr_state {
	PR_PROBE = 0,     /* one append at a time until the match is found */
	PR_REPLICATE = 1, /* pipelined appends, bounded by inflights */
	PR_SNAPSHOT = 2,  /* a snapshot is on its way; nothing else is sent */
};

enum vote_state {
	VOTE_NONE = 0,
	VOTE_GRANTED = 1,
	VOTE_REJECTED = 2,
};

/*
 * What the leader knows of one member (thesis 3.5, "nextIndex"/"matchIndex").
 * Invariant: match < next; match <= the leader's last index; state
 * PR_SNAPSHOT iff a snapshot at pending_snapshot is on its way.
 */
struct progress {
	raft_id id;
	bool voter;
	uint8_t state; /* enum pr_state */
	uint8_t vote;  /* enum vote_state, during an election */
	bool probe_sent;
	bool recent_active;
	bool heard_before; /* recent_active at the last CheckQuorum (raft_pr_quorum_active) */
	raft_index match;
	raft_index next;
	raft_index pending_snapshot;
	raft_index sent_commit;
	raft_index sent_last; /* last index of the entries last sent in an append */
	uint64_t probe_hold;  /* PR_PROBE: the probe in flight carried entries; a heartbeat
	                       * response re-sends it from r->ticks == probe_hold on (0: at once) */
	uint64_t read_ack;    /* highest ReadIndex heartbeat sequence acknowledged */
	raft_index commit;    /* highest commit index the member reported (quiescence) */
	struct inflights ifl;
};

/*
 * The log: stable entries in storage, unstable ones here (etcd's raftLog).
 * Invariant: applied <= committed <= last index; first index - 1 <= applied;
 * ents[i].index == offset + i; has_snap implies offset == snap.index + 1.
 * Ownership: ents[].data lives in arena, which is reset only when no entry is
 * unstable and no message or Ready handed out refers to it (raft_advance).
 */
struct raft_log {
	struct raft_storage st;
	struct raft_entry *ents; /* unstable entries, ents[0].index == offset */
	uint32_t n;
	uint32_t cap;
	raft_index offset;
	bool has_snap; /* a snapshot to install, not yet persisted */
	struct raft_snapshot_meta snap;
	raft_index committed;
	raft_index applied;
	raft_index conf_bound; /* no membership change in the log above it (raft_conf_bound) */
	bool unsynced;         /* stable entries above synced may not be durable (deferred syncs) */
	raft_index synced;     /* while unsynced: entries up to here are durable */
	int failed;            /* first storage callback failure (fatal, see raft_done) */
	raft_index failed_at;  /* the index it was reading */
	struct dr_arena arena; /* data of unstable entries */
};

/* One ReadIndex request the leader is confirming (thesis 6.4). */
struct read_req {
	uint64_t seq; /* 0 until the leader has committed an entry of its term */
	raft_id from;
	uint64_t context;
	raft_index index;
};

struct raft {
	struct raft_config cfg;
	const struct raft_alloc *a;
	raft_id id;

	raft_term term;
	raft_id vote;
	raft_id lead;
	enum raft_role role;
	uint64_t resets; /* raft_resets(): role, term or leader changes (election.c reset) */

	struct raft_log log;
	struct raft_membership conf;
	struct progress prs[RAFT_MAX_MEMBERS];
	uint32_t n_prs;

	unsigned election_elapsed;
	unsigned heartbeat_elapsed;
	uint64_t ticks; /* raft_tick() calls that ticked, ever: the clock of probe_hold */
	unsigned randomized_timeout;
	uint64_t rng;
	bool pre_again; /* pre-candidate in a second or later round (election.c, tie-break) */

	int fatal;           /* RAFT_ERR_BUG or RAFT_ERR_STORAGE once stopped; sticky */
	bool quiesced;       /* no ticking until woken (raft.h, "Quiescence") */
	bool wake_notify;    /* woke up: heartbeats or a notice go out with the next Ready */
	unsigned idle_ticks; /* leader: ticks the group has been idle */

	raft_id transferee;
	unsigned transfer_elapsed; /* leader: ticks since the transfer to transferee began */
	raft_index pending_conf_index;
	uint64_t uncommitted;
	bool pending_bcast;    /* leader: send new entries / commit at the next Ready */
	raft_id handoff_to;    /* removed leader: TimeoutNow to send at the next Ready */
	raft_id bye_to;        /* leader: a voter it removed from two, told at the next Ready */
	raft_index bye_commit; /* ... the commit index that tells it (within its match) */
	bool hold_apply;       /* committed entries stay out of Readys (raft_hold_apply) */

	/* Outgoing messages; entries/snapshot resolved from offsets in raft_ready(). */
	struct raft_message *msgs;
	uint32_t *msg_eoff; /* index into ments, per message */
	uint32_t *msg_soff; /* index into msnaps, per message */
	uint32_t n_msgs;
	uint32_t cap_msgs;
	struct raft_entry *ments;
	uint32_t n_ments;
	uint32_t cap_ments;
	struct raft_snapshot_meta *msnaps;
	uint32_t n_msnaps;
	uint32_t cap_msnaps;
	struct dr_arena mdata; /* data of forwarded proposals */

	struct raft_entry *cents; /* committed entries of the current Ready */
	uint32_t cap_cents;
	struct raft_entry *fetch; /* scratch for storage reads */
	uint32_t cap_fetch;

	struct raft_read_state *rs;
	uint32_t n_rs;
	uint32_t cap_rs;
	struct read_req *rq;
	uint32_t n_rq;
	uint32_t cap_rq;
	uint64_t read_seq;

	struct raft_hard_state prev_hs;
	struct raft_soft_state prev_ss;

	/* What the outstanding Ready handed out. */
	bool in_ready;
	bool rd_apply_only; /* raft_ready_apply: committed entries only */
	bool rd_hs;
	struct raft_hard_state rd_hard_state;
	bool rd_ss;
	struct raft_soft_state rd_soft_state;
	raft_index rd_last_index;
	raft_term rd_last_term;
	raft_index rd_committed_hi;
	uint32_t rd_n_committed;
	bool rd_snap;
	raft_index rd_snap_index;
	bool rd_deferred;  /* written without a sync (rd.sync_deferred) */
	bool rd_must_sync; /* saved synced: entries, a snapshot, or a new term or vote */

	char errmsg[128];
};

/* ---- raft.c: plumbing ---- */

/* Record an impossible state (release builds): the group stops with RAFT_ERR_BUG. */
void raft_bug(struct raft *r, const char *cond, const char *file, int line);
/* Print an impossible state and abort (debug builds). */
void raft_abort(const char *cond, const char *file, int line) __attribute__((noreturn));
/* The rc a public call returns: a fatal error recorded during the call wins. */
int raft_done(struct raft *r, int rc);
/* Before a local input: refuses if stopped or inside a Ready, wakes a quiescent replica. */
int raft_begin_input(struct raft *r);

/* Grow an array to hold need elements (geometric). */
int raft_grow(struct raft *r, void **p, uint32_t *cap, uint32_t need, size_t elsz);
/* Queue a message (to, type, term filled in); NULL on NOMEM (or inside a Ready: a bug). */
struct raft_message *raft_send(struct raft *r, raft_id to, uint32_t type);
/* Attach n entries, copied as structs, to the last queued message. */
int raft_msg_attach_entries(struct raft *r, const struct raft_entry *e, uint32_t n);
/* Attach a snapshot meta copy to the last queued message. */
int raft_msg_attach_snapshot(struct raft *r, const struct raft_snapshot_meta *meta);
/* Copy bytes into the message data arena (valid until raft_advance()). */
const uint8_t *raft_msg_copy_data(struct raft *r, const uint8_t *d, uint32_t len);
/* Progress of member id or NULL. */
struct progress *raft_pr(struct raft *r, raft_id id);
/* Is id a voter of the current configuration? */
bool raft_is_voter(const struct raft *r, raft_id id);
/* Was id removed from the group? */
bool raft_is_removed(const struct raft *r, raft_id id);
/* Number of voters needed for a majority. */
uint32_t raft_quorum(const struct raft *r);
/* Pick a new randomized election timeout in [election, 2*election) (paper 5.2). */
void raft_reset_randomized_timeout(struct raft *r);
#ifdef RAFT_DEBUG
/* Check the invariants of the log and the progress (debug builds: abort). */
void raft_check_invariants(struct raft *r);
#else
#define raft_check_invariants(r) ((void)(r))
#endif

/* ---- log.c ---- */

/* Set up the log over storage. */
int raft_log_init(struct raft *r);
/* Free unstable entries. */
void raft_log_free(struct raft *r);
/*
 * Storage callbacks are read through these; a failure inside the stored range
 * (but RAFT_ERR_NOMEM) is recorded in l->failed (fatal) and reported as
 * RAFT_ERR_STORAGE, so no answer computed from it leaves the replica.
 */

/* A storage callback failed (rc) reading index i: record it (fatal) and return
 * RAFT_ERR_STORAGE, or RAFT_ERR_NOMEM if that was all. */
int raft_log_fail(struct raft_log *l, int rc, raft_index i);
/* Index of the first entry still available. */
raft_index raft_log_first(const struct raft_log *l);
/* Index of the last entry (unstable included). */
raft_index raft_log_last(const struct raft_log *l);
/* Term of the last entry; a raft_rc. */
int raft_log_last_term(struct raft_log *l, raft_term *t);
/* Last index known durable locally (stored, and its sync reported: deferred syncs). */
raft_index raft_log_persisted(const struct raft_log *l);
/* Term of entry i; *stored: storage answered (any failure of it is then the caller's to judge). */
int raft_log_lookup(const struct raft_log *l, raft_index i, raft_term *t, bool *stored);
/* Term of entry i (RAFT_ERR_COMPACTED / RAFT_ERR_UNAVAILABLE when out of range). */
int raft_log_term(struct raft_log *l, raft_index i, raft_term *t);
/* *match: does entry i have term t (false past the log or compacted)?  An rc
 * if its term cannot be read, which is never to be taken for a mismatch. */
int raft_log_match_term(struct raft_log *l, raft_index i, raft_term t, bool *match);
/* Entries [lo, hi) into out (room for hi-lo), at most max_bytes but at least one. */
int raft_log_entries(struct raft_log *l, raft_index lo, raft_index hi, uint64_t max_bytes,
                     struct raft_entry *out, uint32_t *n);
/* Append entries (copied) from ents[0].index, replacing what follows; all or nothing. */
int raft_log_append(struct raft *r, const struct raft_entry *e, uint32_t n);
/* RAFT_OK unless the leader's entry i of term t contradicts an entry committed here:
 * then the replica stops (RAFT_ERR_BUG, see raft.h "Errors"). */
int raft_log_check_committed(struct raft *r, raft_index i, raft_term t);
/* Follower append (paper 5.3): returns RAFT_OK and *ok, *lastnew. */
int raft_log_maybe_append(struct raft *r, raft_index prev, raft_term prev_term, raft_index commit,
                          const struct raft_entry *e, uint32_t n, bool *ok, raft_index *lastnew);
/* Raise the commit index to i <= last index (never lowers it). */
int raft_log_commit_to(struct raft *r, raft_index i);
/* Entries up to (i, t) are now persisted: drop them from the unstable part. */
void raft_log_stable_to(struct raft *r, raft_index i, raft_term t);
/* The pending snapshot at index i is persisted. */
void raft_log_stable_snap_to(struct raft_log *l, raft_index i);
/* Replace the whole log with a snapshot (install from the leader). */
void raft_log_restore(struct raft *r, const struct raft_snapshot_meta *s);
/* Is (lasti, term) at least as up-to-date as our log (paper 5.4.1)? */
bool raft_log_is_up_to_date(struct raft_log *l, raft_index lasti, raft_term term);
/* Largest index <= index whose term is <= term (fast backtracking). */
raft_index raft_log_find_conflict_by_term(struct raft_log *l, raft_index index, raft_term term,
                                          raft_term *found);

/* ---- progress.c ---- */

/* Set up member id with an inflights ring. */
int raft_pr_init(struct raft *r, struct progress *pr, raft_id id, bool voter);
/* Free a progress' inflights. */
void raft_pr_free(struct raft *r, struct progress *pr);
/* Back to probing from next. */
void raft_pr_become_probe(struct progress *pr);
/* Pipelined replication. */
void raft_pr_become_replicate(struct progress *pr);
/* A snapshot at index is on its way. */
void raft_pr_become_snapshot(struct progress *pr, raft_index index);
/* Follower acknowledged n: raise match and next; true if match grew. */
bool raft_pr_maybe_update(struct progress *pr, raft_index n);
/* Rejection of an append at rejected: lower next; false if stale. */
bool raft_pr_maybe_decr_to(struct progress *pr, raft_index rejected, raft_index match_hint);
/* May we send this member an append now? */
bool raft_pr_is_paused(const struct raft *r, const struct progress *pr);
/* Record an append of bytes ending at last (the ring must have room). */
int raft_ifl_add(struct raft *r, struct inflights *f, raft_index last, uint64_t bytes);
/* Drop in-flight appends ending at or before to. */
void raft_ifl_free_le(struct inflights *f, raft_index to);
/* Drop the oldest in-flight append. */
/* Empty the ring. */
void raft_ifl_reset(struct inflights *f);
/* Is the ring full (messages or bytes)? */
bool raft_ifl_full(const struct raft *r, const struct inflights *f);
/* Make c the configuration: prs rebuilt, progress of members that stay kept; all or nothing. */
int raft_pr_sync_conf(struct raft *r, const struct raft_membership *c);
/* Largest index a majority of voters has matched (paper 5.3). */
raft_index raft_pr_quorum_match(const struct raft *r);
/* Have a majority of voters been active since the last check (thesis 6.2)? */
bool raft_pr_quorum_active(struct raft *r);

/* ---- election.c ---- */

/* Become follower of lead in term. */
void raft_become_follower(struct raft *r, raft_term term, raft_id lead);
/* Become leader (after winning an election). */
int raft_become_leader(struct raft *r);
/* Start an election: pre-vote first if configured, unless transfer. */
int raft_do_campaign(struct raft *r, bool pre, bool transfer);
/* Handle RAFT_MSG_VOTE / RAFT_MSG_PREVOTE. */
int raft_handle_vote(struct raft *r, const struct raft_message *m);
/* Take the commit index of a (pre-)vote request or TimeoutNow if our log holds its
 * sender's last entry (m->index, m->log_term). */
int raft_learn_commit(struct raft *r, const struct raft_message *m);
/* Handle a vote response while (pre)candidate. */
int raft_handle_vote_resp(struct raft *r, const struct raft_message *m);
/* Is this replica allowed to campaign? */
bool raft_promotable(const struct raft *r);

/* ---- replication.c ---- */

/* Append entries as leader (term and index assigned); *last receives the last index. */
int raft_repl_append(struct raft *r, struct raft_entry *e, uint32_t n);
/* Send an append to pr if allowed; *sent tells whether one went out. */
int raft_repl_send_append(struct raft *r, struct progress *pr, bool send_if_empty, bool *sent);
/* Send appends to every follower that needs them. */
int raft_repl_bcast_append(struct raft *r);
/* Send heartbeats carrying ctx (ReadIndex sequence or 0). */
int raft_repl_bcast_heartbeat(struct raft *r, uint64_t ctx);
/* Leader: raise the commit index if a quorum matched a current-term entry. */
bool raft_repl_maybe_commit(struct raft *r);
/* Follower: handle RAFT_MSG_APPEND. */
int raft_repl_handle_append(struct raft *r, const struct raft_message *m);
/* Follower: handle RAFT_MSG_HEARTBEAT. */
int raft_repl_handle_heartbeat(struct raft *r, const struct raft_message *m);
/* Leader: handle RAFT_MSG_APPEND_RESP. */
int raft_repl_handle_append_resp(struct raft *r, const struct raft_message *m);
/* Leader: handle RAFT_MSG_HEARTBEAT_RESP. */
int raft_repl_handle_heartbeat_resp(struct raft *r, const struct raft_message *m);
/* Leader: append proposed entries (local or forwarded). */
int raft_repl_propose(struct raft *r, const struct raft_entry *e, uint32_t n, raft_index *index);

/* ---- readindex.c ---- */

/* Leader: register a ReadIndex request from `from` (self for local). */
int raft_ri_request(struct raft *r, raft_id from, uint64_t context);
/* Leader: an entry of the current term committed; start waiting requests. */
int raft_ri_on_commit_in_term(struct raft *r);
/* Leader: a heartbeat response acknowledged sequence seq. */
int raft_ri_ack(struct raft *r, struct progress *pr, uint64_t seq);
/* Follower: answer from the leader. */
int raft_ri_handle_resp(struct raft *r, const struct raft_message *m);
/* Drop every pending request (leadership lost). */
void raft_ri_reset(struct raft *r);
/* Push a read state for the caller. */
int raft_ri_push_state(struct raft *r, uint64_t context, raft_index index);

/* ---- transfer.c ---- */

/* Leader: start transferring leadership to target (thesis 3.10). */
int raft_xfer_start(struct raft *r, raft_id target);
/* Leader: target caught up? send TimeoutNow. */
int raft_xfer_maybe_send_timeout_now(struct raft *r, struct progress *pr);
/* TimeoutNow to node to, with our last entry and commit index (raft_learn_commit). */
int raft_xfer_send_timeout_now(struct raft *r, raft_id to);
/* Stop any transfer in progress. */
void raft_xfer_abort(struct raft *r);

/* ---- membership.c ---- */

/* Validate a conf change against the current configuration (leader, at propose). */
int raft_memb_validate(struct raft *r, const struct raft_conf_change *cc);
/* Apply a conf change to conf (helper for raft_apply_conf_change); all or nothing. */
/* c as change cc leaves it (a change it already shows, or with no room, changes
 * nothing: validated changes always fit). */
void raft_memb_change(struct raft_membership *c, const struct raft_conf_change *cc);
int raft_memb_apply(struct raft *r, const struct raft_conf_change *cc, raft_index index);
/* Validate a membership received from the network or storage. */
bool raft_memb_valid(const struct raft_membership *m);

/* ---- quiesce.c ---- */

/* Leader, each tick: count idle ticks and quiesce the group when due. */
int raft_quiesce_tick(struct raft *r);
/* QUIESCE from our leader: stop ticking. */
int raft_quiesce_follow(struct raft *r, const struct raft_message *m);
/* Leave quiescence: timers restart; at the next Ready a leader heartbeats, a follower tells its
 * leader. */
void raft_quiesce_wake(struct raft *r);
/* At Ready: the heartbeats or the notice of a replica that woke up. */
int raft_quiesce_notify(struct raft *r);
/* A non-voter that knows no leader, each election timeout: wake a quiescent leader. */
int raft_quiesce_seek(struct raft *r);

/* ---- snapshot.c ---- */

/* Leader: send a snapshot to pr; *sent tells whether one went out. */
int raft_snap_send(struct raft *r, struct progress *pr, bool *sent);
/* Follower: handle RAFT_MSG_SNAPSHOT. */
int raft_snap_handle(struct raft *r, const struct raft_message *m);

#endif /* DRAGONRAFT_RAFT_INT_H */
