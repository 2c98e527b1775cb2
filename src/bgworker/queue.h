/*
 * queue.h - the request path from backends to the engine worker (DESIGN §3):
 * a slot per backend in shared memory, a ring of submitted slot numbers that
 * the engine worker drains when its latch is set, payloads inline or (when
 * larger) in a DSM segment the backend creates, results and a condition
 * variable per slot.  SQL functions use it now; proposals will.
 */
#ifndef DRAGONRAFT_QUEUE_H
#define DRAGONRAFT_QUEUE_H

#include "dragonraft.h"

#include "storage/condition_variable.h"
#include "storage/dsm.h"
#include "storage/spin.h"

typedef enum DrRequestKind {
	DR_REQ_CREATE_GROUP = 1, /* payload: members (dr_queue_encode_members) */
	DR_REQ_TRANSFER_LEADER,  /* arg: the target node */
	DR_REQ_PROPOSE,          /* payload: an entry; arg: the term this node must still
	                          * lead in (0: any, and a follower forwards it) */
	/* membership.c */
	DR_REQ_JOIN_GROUP,    /* payload: known members (dr_queue_encode_members) */
	DR_REQ_CHANGE_MEMBER, /* arg: the node; payload: a DrMemberChange */
	DR_REQ_LEAVE_GROUP,   /* stop this node's member and delete its LogDB data */
	DR_REQ_READ_INDEX,    /* a linearizable read point (index: once handed to apply) */
	DR_REQ_SNAPSHOT,      /* a metadata snapshot now, then compaction (index) */
	DR_REQ_LOG_DIGEST,    /* payload and out: a struct engine_log_digest; arg 0: start
	                       * it over [first, last] (0: unbounded), 1: go on with it */
} DrRequestKind;

/* Outcomes beyond the engine's own codes (enum engine_rc, 0 = success). */
#define DR_RC_ENGINE_EXITED  (-100) /* the engine worker exited before an outcome */
#define DR_RC_BAD_REQUEST    (-101) /* the payload could not be read */
#define DR_RC_GROUPS_FULL    (-102) /* dragonraft.max_groups groups exist */
#define DR_RC_MEMBERS_DIFFER (-103) /* the group exists here with other members */
#define DR_RC_LOST           (-104) /* the member lost its LogDB (errmsg says more) */
#define DR_RC_TERM_CHANGED   (-105) /* not proposed: this node no longer leads that term */
#define DR_RC_ORIGINS_FULL   (-106) /* max_replication_slots origins exist (errmsg: how many) */
#define DR_RC_NOT_TAKEN      (-114) /* not proposed: the engine refused it (errmsg: why) */
#define DR_RC_ENGINE_STALLED (-115) /* given up: the engine stopped answering (queue.c) */
/* membership.c: a change refused before it reached the Raft core */
#define DR_RC_REMOVED    (-107) /* the node was removed from the group: never again */
#define DR_RC_IS_MEMBER  (-108) /* add: already a member (a voter, for a promotion) */
#define DR_RC_NOT_MEMBER (-109) /* remove or promote: not a member (not a non-voter) */
#define DR_RC_LAST_VOTER (-110) /* remove: the group's only voter */
#define DR_RC_TWO_VOTERS (-111) /* remove: one of two voters, without force */
#define DR_RC_NO_QUORUM  (-112) /* without force: the new voters that answer are no quorum */
#define DR_RC_BEHIND     (-113) /* promote, without force: the non-voter is not caught up */

/* Bytes a result returns beyond its index (DR_REQ_LOG_DIGEST: its state). */
#define DR_RESULT_OUT 96

/* What an operation completed with. */
typedef struct DrResult {
	int rc;                    /* 0 or a negative code */
	uint64 index;              /* a log index, where the operation has one */
	uint64 leader;             /* the known leader, for ENGINE_ERR_NOT_LEADER */
	char errmsg[DR_ERROR_LEN]; /* more about a failure, "" if nothing */
	char out[DR_RESULT_OUT];   /* what a request returns beyond index (its kind says) */
} DrResult;

/* Did the last dr_queue_call end with an error (a cancel) before the engine
 * worker took its request? */
extern bool dr_queue_last_untaken(void);

/* Inline payload bytes per slot; larger payloads go through a DSM segment
 * (a small change set should not cost a segment per commit). */
#define DR_INLINE_PAYLOAD 8192

typedef enum DrSlotState {
	DR_SLOT_FREE,      /* its backend may submit */
	DR_SLOT_SUBMITTED, /* in the ring */
	DR_SLOT_RUNNING,   /* the engine worker took it */
	DR_SLOT_DONE,      /* result set; its backend frees it */
	DR_SLOT_ABANDONED, /* its backend gave up waiting; the engine worker frees it */
} DrSlotState;

/* One backend's request slot, indexed by backend id - 1. */
typedef struct DrRequest {
	slock_t mutex; /* protects everything but cv */
	DrSlotState state;
	uint64 generation; /* bumped at each submission: results of an older one are dropped */
	DrRequestKind kind;
	uint64 group_id;
	uint64 arg;
	Size len;       /* payload bytes */
	dsm_handle dsm; /* DSM_HANDLE_INVALID: the payload is inline */
	DrResult result;
	bool held;            /* a proposal given up on while the engine ran it: its group's
	                       * gave_up_unknown counts it until the engine finishes it */
	ConditionVariable cv; /* broadcast at DONE and at FREE */
	char payload[DR_INLINE_PAYLOAD];
} DrRequest;

/* A member as create_group gives it. */
typedef struct DrMemberAddr {
	uint64 node_id;
	char addr[DR_ADDR_LEN];
} DrMemberAddr;

/* The payload of DR_REQ_CREATE_GROUP: u32 count, then per member u64 node id,
 * u16 length and the address.  Encode n members into a palloc'd buffer. */
extern char *dr_queue_encode_members(const DrMemberAddr *m, int n, Size *len);
/* Decode into out (room for max); false when malformed. */
extern bool dr_queue_decode_members(const char *p, Size len, DrMemberAddr *out, int max, int *n);

/* Backend: submit a request, wait for its outcome (cancellable), fill res. */
extern void dr_queue_call(DrRequestKind kind, uint64 group_id, uint64 arg, const void *payload,
                          Size len, DrResult *res);
/* The same, but the wait cannot be cancelled: a proposal that may commit is
 * never abandoned (DESIGN §4); it ends with the engine's outcome, which
 * CheckQuorum and the request timeout bound, or when the engine worker exits. */
extern void dr_queue_call_uncancellable(DrRequestKind kind, uint64 group_id, uint64 arg,
                                        const void *payload, Size len, DrResult *res);
/* dr_queue_call, but a cancel or statement_timeout after the engine worker
 * took the request ends with 40003 (errmsg unknown: what may still happen;
 * hint), not 57014: the engine worker goes on with it. */
extern void dr_queue_call_unknown_if_cancelled(DrRequestKind kind, uint64 group_id, uint64 arg,
                                               const void *payload, Size len, DrResult *res,
                                               const char *unknown, const char *hint);

/* A request the engine worker took. */
typedef struct DrTaken {
	int slot;
	uint64 generation;
	DrRequestKind kind;
	uint64 group_id;
	uint64 arg;
	Size len;
	const char *payload; /* inline in the slot or in seg; valid until dr_queue_complete */
	dsm_segment *seg;
} DrTaken;

/* Engine worker: start taking requests (at start, after a predecessor died). */
extern void dr_queue_open(void);
/* Engine worker: take the next submitted request; false when there is none. */
extern bool dr_queue_take(DrTaken *t);
/* Engine worker: the payload of t is no longer needed. */
extern void dr_queue_done_with_payload(DrTaken *t);
/* Engine worker (also from engine callbacks): the outcome of (slot, generation). */
extern void dr_queue_complete(int slot, uint64 generation, const DrResult *res);
/* Engine worker: has the backend given up on the request (slot, generation) that
 * the engine holds?  (dr_queue_complete then just frees the slot.) */
extern bool dr_queue_given_up(int slot, uint64 generation);
/* Engine worker exits: refuse new requests, fail every outstanding one. */
extern void dr_queue_close(void);

/* The (slot, generation) of a taken request as an engine callback context, and back. */
extern void *dr_queue_ctx(const DrTaken *t);
extern void dr_queue_from_ctx(void *ctx, int *slot, uint64 *generation);

#endif /* DRAGONRAFT_QUEUE_H */
