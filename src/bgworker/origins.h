/*
 * origins.h - a replication origin per group holds its applied index
 * (origins.c).  Each function runs its own transaction: call it outside one.
 */
#ifndef DRAGONRAFT_ORIGINS_H
#define DRAGONRAFT_ORIGINS_H

#include "dragonraft.h"

#include "replication/origin.h"

typedef struct DrOrigin {
	uint64 group_id;
	RepOriginId id;
} DrOrigin;

/* The name of group_id's origin (buf of NAMEDATALEN bytes). */
extern void dr_origins_name(uint64 group_id, char *buf);
/* Every group's origin (palloc'd in the caller's context; *n of them). */
extern DrOrigin *dr_origins_scan(int *n);
/* Every replication origin of the server, dragonraft's or not. */
extern int dr_origins_count(void);
/* group_id's origin; InvalidRepOriginId if it has none and create is false. */
extern RepOriginId dr_origins_find(uint64 group_id, bool create);

#endif /* DRAGONRAFT_ORIGINS_H */
