/*
 * apply.h - what the engine worker sends the apply worker (DESIGN §3): one
 * shm_mq message per committed entry, in log order per group, a DrApplyMsg
 * followed by the entry's data (an application entry, src/entry).
 */
#ifndef DRAGONRAFT_APPLY_H
#define DRAGONRAFT_APPLY_H

#include "dragonraft.h"

#include "port/atomics.h"

/* Bytes of the queue's DSM segment: a DrApplyQueue, then the shm_mq. */
#define DR_APPLY_QUEUE_BYTES (4 * 1024 * 1024)

/*
 * The head of the queue's segment.  A shm_mq receiver that finds the queue
 * empty marks what it read and sets the sender's latch: it would wake the
 * engine worker after every apply batch.  So the apply worker calls
 * shm_mq_receive only while messages counts more than it received; what it
 * read is then marked only each quarter of the ring, or when a message is
 * not there whole (the engine worker waits for room then).  The engine
 * worker counts a message before its first try to send it (a message that
 * would block counts once), and once more as it detaches, so that the apply
 * worker looks and finds the queue detached.
 */
typedef struct DrApplyQueue {
	pg_atomic_uint64 messages;
} DrApplyQueue;

#define DR_APPLY_QUEUE_MQ       MAXALIGN(sizeof(DrApplyQueue))
#define DR_APPLY_QUEUE_MQ_BYTES (DR_APPLY_QUEUE_BYTES - DR_APPLY_QUEUE_MQ)

/*
 * DrApplyMsg.type of a message without data: the group's entries follow
 * again from the first one the engine worker keeps (after the apply worker
 * parked the group when one of its entries failed to apply).
 */
#define DR_APPLY_RESEND 0xFFFFFFFFu

/*
 * made: the group's shared entry's DrGroup.made when the engine worker kept
 * the message.  A group left and made again on this node (after DROP
 * EXTENSION / CREATE EXTENSION) has a new one, and the apply worker drops
 * the earlier group's messages still in its queue: taken for the new
 * group's, they were applied as its first entries, and its own ones at
 * those indexes skipped (review 44, TAP 122).
 */
typedef struct DrApplyMsg {
	uint64 group_id;
	uint64 made;
	uint64 index;
	uint64 term;
	uint32 type; /* enum raft_entry_type */
	uint32 len;  /* data bytes that follow */
} DrApplyMsg;

#endif /* DRAGONRAFT_APPLY_H */
