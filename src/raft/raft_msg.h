/*
 * raft_msg.h - the data types that cross the Raft core's boundary: log
 * entries, hard state, membership, snapshot metadata and messages.
 *
 * These types are the contract between src/raft (which produces and consumes
 * them), src/logdb (which persists entries, hard state and snapshot metadata)
 * and src/transport (which encodes messages on the wire).  Add fields only at
 * the end of a struct and update the LogDB encoding and the .proto schema in
 * the same change.
 *
 * Memory: every pointer in these structs is borrowed.  Who owns the bytes is
 * said where the struct is produced (raft_ready, transport decode, ...).
 */
#ifndef DRAGONRAFT_RAFT_MSG_H
#define DRAGONRAFT_RAFT_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef uint64_t raft_id;    /* replica id == node id; 0 means "none" */
typedef uint64_t raft_term;  /* 0 only before the first election */
typedef uint64_t raft_index; /* first real entry has index 1 */

/* Most voters plus non-voters a group may have. */
#define RAFT_MAX_MEMBERS 32
/* Most removed ids remembered (a removed id is never accepted again). */
#define RAFT_MAX_REMOVED 64

enum raft_entry_type {
	RAFT_ENTRY_NORMAL = 0,      /* application data; len 0 is the leader's no-op */
	RAFT_ENTRY_CONF_CHANGE = 1, /* data is raft_conf_change_encode() output */
};

/* One log entry.  data is borrowed; len may be 0. */
struct raft_entry {
	raft_term term;
	raft_index index;
	uint32_t type; /* enum raft_entry_type */
	uint32_t len;
	const uint8_t *data;
};

/* What must be persisted before any message that depends on it is sent. */
struct raft_hard_state {
	raft_term term;
	raft_id vote;
	raft_index commit;
};

/* The configuration of a group.  Ids in each array are unique and non-zero. */
struct raft_membership {
	raft_index config_index; /* index of the entry that produced it; 0 = bootstrap */
	uint32_t n_voters;
	uint32_t n_nonvoters;
	uint32_t n_removed;
	raft_id voters[RAFT_MAX_MEMBERS];
	raft_id nonvoters[RAFT_MAX_MEMBERS];
	raft_id removed[RAFT_MAX_REMOVED];
};

/* Describes the state a snapshot captures; the data itself travels apart. */
struct raft_snapshot_meta {
	raft_index index;
	raft_term term;
	struct raft_membership membership;
};

enum raft_conf_change_type {
	RAFT_CC_ADD_VOTER = 0,    /* add a voter, or promote a non-voter */
	RAFT_CC_ADD_NONVOTER = 1, /* add a non-voting member */
	RAFT_CC_REMOVE = 2,       /* remove a voter or non-voter */
};

/* A single-server membership change (thesis 4.1). */
struct raft_conf_change {
	uint32_t type; /* enum raft_conf_change_type */
	raft_id node_id;
	uint32_t context_len; /* opaque to raft (the engine stores the address) */
	const uint8_t *context;
};

/* Message types that travel between replicas. */
enum raft_msg_type {
	RAFT_MSG_APPEND = 1,      /* leader -> follower: entries and commit */
	RAFT_MSG_APPEND_RESP = 2, /* follower -> leader: match index or reject + hint */
	RAFT_MSG_VOTE = 3,        /* candidate -> all: RequestVote */
	RAFT_MSG_VOTE_RESP = 4,
	RAFT_MSG_PREVOTE = 5, /* pre-candidate -> all (thesis 9.6) */
	RAFT_MSG_PREVOTE_RESP = 6,
	RAFT_MSG_HEARTBEAT = 7, /* leader -> follower: commit, read-index context */
	RAFT_MSG_HEARTBEAT_RESP = 8,
	RAFT_MSG_SNAPSHOT = 9,   /* leader -> follower: install snapshot (meta only) */
	RAFT_MSG_PROPOSE = 10,   /* follower -> leader: forwarded proposal entries */
	RAFT_MSG_READINDEX = 11, /* follower -> leader: forwarded ReadIndex request */
	RAFT_MSG_READINDEX_RESP = 12,
	RAFT_MSG_TIMEOUT_NOW = 13,     /* leader -> transferee: campaign now (thesis 3.10) */
	RAFT_MSG_TRANSFER_LEADER = 14, /* follower -> leader: forwarded transfer request */
	RAFT_MSG_QUIESCE = 15,         /* leader -> all: the group is idle, stop ticking */
	RAFT_MSG_TYPE_MAX = 15,
};

/* Message flags. */
#define RAFT_MSG_FLAG_TRANSFER 0x1u /* a vote caused by leadership transfer */
#define RAFT_MSG_FLAG_WAKE     0x2u /* heartbeat response of a follower that woke up */
/* An append without entries that only spreads the commit index to a follower
 * known to hold its prev index: it is answered only when rejected. */
#define RAFT_MSG_FLAG_COMMIT_ONLY 0x4u

/*
 * One message.  Fields a type does not use are zero.  entries and snapshot
 * are borrowed from whoever produced the message.
 */
struct raft_message {
	uint32_t type; /* enum raft_msg_type */
	uint32_t flags;
	uint64_t group_id;
	raft_id from;
	raft_id to;
	raft_term term;
	raft_term log_term; /* term of the entry at index (append / vote) */
	raft_index index;   /* prev index (append), last index (vote), match (resp) */
	raft_index commit;  /* leader's commit (append, heartbeat); candidate's (vote); sender's
	                       (responses) */
	bool reject;
	raft_index reject_hint; /* fast backtracking: follower's hint index */
	raft_term hint_term;    /* term at reject_hint in the follower's log */
	uint64_t context;       /* ReadIndex request id */
	uint32_t n_entries;
	const struct raft_entry *entries;
	const struct raft_snapshot_meta *snapshot; /* RAFT_MSG_SNAPSHOT only */
};

#endif /* DRAGONRAFT_RAFT_MSG_H */
