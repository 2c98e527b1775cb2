/*
 * apply.h - what the engine worker sends the apply worker (DESIGN §3): one
 * shm_mq message per committed entry, in log order per group, a DrApplyMsg
 * followed by the entry's data (an application entry, src/entry).
 */
#ifndef DRAGONRAFT_APPLY_H
#define DRAGONRAFT_APPLY_H

#include "dragonraft.h"

/* Bytes of the queue's ring in its DSM segment. */
#define DR_APPLY_QUEUE_BYTES (4 * 1024 * 1024)

/*
 * DrApplyMsg.type of a message without data: the group's entries follow
 * again from the first one the engine worker keeps (after the apply worker
 * parked the group when one of its entries failed to apply).
 */
#define DR_APPLY_RESEND 0xFFFFFFFFu

typedef struct DrApplyMsg {
	uint64 group_id;
	uint64 index;
	uint64 term;
	uint32 type; /* enum raft_entry_type */
	uint32 len;  /* data bytes that follow */
} DrApplyMsg;

#endif /* DRAGONRAFT_APPLY_H */
