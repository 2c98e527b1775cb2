/*
 * membership.h - what the SQL functions of membership, reads and snapshots
 * (sql_membership.c, reads.c) share with the engine worker's side of them
 * (membership.c).
 */
#ifndef DRAGONRAFT_MEMBERSHIP_H
#define DRAGONRAFT_MEMBERSHIP_H

#include "dragonraft.h"

#include "queue.h"
#include "raft/raft_msg.h"
#include "utils/jsonb.h"

/* The payload of DR_REQ_CHANGE_MEMBER. */
typedef struct DrMemberChange {
	uint32 type;            /* enum raft_conf_change_type */
	bool promote;           /* RAFT_CC_ADD_VOTER of a member that must be a non-voter */
	bool force;             /* also one of two voters, or a change after which the
	                         * voters that answer are no quorum */
	char addr[DR_ADDR_LEN]; /* the new member's Raft address ("" for the others) */
} DrMemberChange;

/* sql_groups.c: a members jsonb of create_group or join_group into out (room for
 * RAFT_MAX_MEMBERS); returns the count, or raises the error. */
extern int dr_sql_groups_parse_members(Jsonb *jb, DrMemberAddr *out);
/* sql_groups.c: raises what starting a group here (create_group, join_group) may
 * fail with alike (limits, the engine worker gone, the group there but stopped);
 * returns for other results. */
extern void dr_sql_groups_start_failed(int64 group_id, const DrResult *res);

/* sql_membership.c: refuse (an error with a hint) to start a member of group_id here
 * if this node id left it: its Raft state is gone, so it must never vote again. */
extern void dr_sql_membership_check_not_left(int64 group_id);

/* reads.c: the ExecutorStart hook of linearizable reads (from _PG_init). */
extern void dr_reads_init(void);
extern Size dr_reads_shmem_size(void);
extern void dr_reads_shmem_init(void);
/* A ReadIndex of group_id through the engine, then a wait until this node applied
 * it (cancellable); returns the index.  Errors: no quorum, no leader, no group. */
extern uint64 dr_read_barrier(uint64 group_id);
/* The same; wait_load: a member loading a snapshot is waited for, not an error
 * (join_group: a snapshot may come after it saw none). */
extern uint64 dr_read_barrier_ext(uint64 group_id, bool wait_load);

#endif /* DRAGONRAFT_MEMBERSHIP_H */
