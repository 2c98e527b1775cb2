/*
 * origins.h - a replication origin per group holds its applied index
 * (origins.c).  Each function runs its own transaction: call it outside one.
 */
#ifndef DRAGONRAFT_ORIGINS_H
#define DRAGONRAFT_ORIGINS_H

#include "dragonraft.h"

#include "replication/origin.h"
#include "storage/lockdefs.h"

typedef struct DrOrigin {
	uint64 group_id;
	RepOriginId id;
} DrOrigin;

/* The name of group_id's origin (buf of NAMEDATALEN bytes). */
extern void dr_origins_name(uint64 group_id, char *buf);
/* Every group's origin (palloc'd in the caller's context; *n of them). */
extern DrOrigin *dr_origins_scan(int *n);
/*
 * Whether this node applied entries of group_id: dragonraft.member_info,
 * ddl_history or replicated_tables has rows of it; true too when they are
 * not there to tell.  An origin named like a group's without any is not one
 * of dragonraft's.  (A member's info entry comes once it knows a leader,
 * after the group's first entries: a member that applied a command but not
 * yet its info, left half by a crash in leave_group, had its origin taken
 * for someone else's and showed no status row: review 44, TAP 123.)
 */
extern bool dr_origins_applied_here(uint64 group_id);
/* Every replication origin of the server, dragonraft's or not. */
extern int dr_origins_count(void);
/*
 * The origins named like a group's (dragonraft_<group id>), in the caller's
 * transaction (the others start their own); *lowest the lowest group id of
 * them.  DROP EXTENSION counts them (dr_check_extension_drop).
 */
extern int dr_origins_in_xact(uint64 *lowest);
/* group_id's origin; InvalidRepOriginId if it has none and create is false. */
extern RepOriginId dr_origins_find(uint64 group_id, bool create);
/* Drop group_id's origin if it has one (not waiting for a user of it); false on failure. */
extern bool dr_origins_drop(uint64 group_id);
/*
 * Lock an origin (the object, in the caller's transaction, to its end): a
 * batch of the group's entries holds AccessShareLock, and so does a backend
 * that commits its own entry (xact.c pre_commit), leave_group
 * AccessExclusiveLock (sql_membership.c leave_locally says why).
 */
extern void dr_origins_lock(RepOriginId origin, LOCKMODE mode);
/* The same without waiting: false if another process holds or waits for a conflicting lock. */
extern bool dr_origins_try_lock(RepOriginId origin, LOCKMODE mode);

#endif /* DRAGONRAFT_ORIGINS_H */
