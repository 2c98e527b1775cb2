/*
 * origins.c - a replication origin per group records its applied index
 * (DESIGN §4, §9): the apply worker advances it in the commit record of the
 * transaction that applied the entries, as logical replication's worker.c
 * records the remote position, so the applied index is written atomically
 * with the effects at no extra row write.  pg_replication_origin is a shared
 * catalog.
 */
#include "dragonraft.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_replication_origin.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "origins.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#define ORIGIN_PREFIX "dragonraft_"

void dr_origins_name(uint64 group_id, char *buf)
{
	snprintf(buf, NAMEDATALEN, ORIGIN_PREFIX "%llu", (unsigned long long)group_id);
}

/* The group id an origin name stands for, or 0 for other origins. */
static uint64 origin_group(const char *name)
{
	const char *p = name + strlen(ORIGIN_PREFIX);
	char *end;
	uint64 id;

	if (strncmp(name, ORIGIN_PREFIX, strlen(ORIGIN_PREFIX)) != 0 || *p < '1' || *p > '9')
		return 0;
	errno = 0;
	id = strtou64(p, &end, 10);
	return errno == 0 && *end == '\0' ? id : 0;
}

/* The origins named like a group's, in the caller's transaction and memory context. */
static DrOrigin *scan_in_xact(int *n)
{
	DrOrigin *out = palloc(sizeof(DrOrigin) * 16);
	int cap = 16;
	Relation rel;
	SysScanDesc scan;
	HeapTuple tup;

	*n = 0;
	rel = table_open(ReplicationOriginRelationId, AccessShareLock);
	scan = systable_beginscan(rel, InvalidOid, false, NULL, 0, NULL);
	while (HeapTupleIsValid(tup = systable_getnext(scan))) {
		Form_pg_replication_origin f = (Form_pg_replication_origin)GETSTRUCT(tup);
		uint64 gid = origin_group(text_to_cstring(&f->roname));

		if (gid == 0)
			continue;
		if (*n == cap) {
			cap *= 2;
			out = repalloc(out, sizeof(DrOrigin) * cap);
		}
		out[*n].group_id = gid;
		out[*n].id = (RepOriginId)f->roident;
		(*n)++;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return out;
}

DrOrigin *dr_origins_scan(int *n)
{
	MemoryContext cxt = CurrentMemoryContext;
	DrOrigin *out;

	StartTransactionCommand();
	MemoryContextSwitchTo(cxt);
	out = scan_in_xact(n);
	CommitTransactionCommand();
	MemoryContextSwitchTo(cxt);
	return out;
}

int dr_origins_count(void)
{
	MemoryContext cxt = CurrentMemoryContext;
	Relation rel;
	SysScanDesc scan;
	int n = 0;

	StartTransactionCommand();
	rel = table_open(ReplicationOriginRelationId, AccessShareLock);
	scan = systable_beginscan(rel, InvalidOid, false, NULL, 0, NULL);
	while (HeapTupleIsValid(systable_getnext(scan)))
		n++;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	CommitTransactionCommand();
	MemoryContextSwitchTo(cxt);
	return n;
}

int dr_origins_in_xact(uint64 *lowest)
{
	int n;
	DrOrigin *o = scan_in_xact(&n);

	*lowest = 0;
	for (int i = 0; i < n; i++)
		if (i == 0 || o[i].group_id < *lowest)
			*lowest = o[i].group_id;
	pfree(o);
	return n;
}

bool dr_origins_applied_here(uint64 group_id)
{
	MemoryContext cxt = CurrentMemoryContext;
	Datum gid = Int64GetDatum((int64)group_id);
	Oid type = INT8OID;
	bool found = true;

	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute("SELECT 1 WHERE to_regclass('dragonraft.member_info') IS NOT NULL", true,
	                1) == SPI_OK_SELECT &&
	    SPI_processed == 1)
		found = SPI_execute_with_args(
		                "SELECT 1 FROM dragonraft.member_info WHERE group_id = $1 "
		                "UNION ALL SELECT 1 FROM dragonraft.ddl_history "
		                "WHERE group_id = $1 "
		                "UNION ALL SELECT 1 FROM dragonraft.replicated_tables "
		                "WHERE group_id = $1 LIMIT 1",
		                1, &type, &gid, NULL, true, 1) != SPI_OK_SELECT ||
		        SPI_processed == 1;
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	MemoryContextSwitchTo(cxt);
	return found;
}

RepOriginId dr_origins_find(uint64 group_id, bool create)
{
	MemoryContext cxt = CurrentMemoryContext;
	char name[NAMEDATALEN];
	RepOriginId id;

	dr_origins_name(group_id, name);
	StartTransactionCommand();
	id = replorigin_by_name(name, true);
	if (id == InvalidRepOriginId && create)
		id = replorigin_create(name);
	CommitTransactionCommand();
	MemoryContextSwitchTo(cxt);
	return id;
}

bool dr_origins_drop(uint64 group_id)
{
	MemoryContext cxt = CurrentMemoryContext;
	char name[NAMEDATALEN];
	volatile bool ok = true;

	dr_origins_name(group_id, name);
	StartTransactionCommand();
	PG_TRY();
	{
		replorigin_drop_by_name(name, true, true);
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		EmitErrorReport();
		FlushErrorState();
		AbortCurrentTransaction();
		ok = false;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(cxt);
	return ok;
}

void dr_origins_lock(RepOriginId origin, LOCKMODE mode)
{
	LockSharedObject(ReplicationOriginRelationId, origin, 0, mode);
}

bool dr_origins_try_lock(RepOriginId origin, LOCKMODE mode)
{
	LOCKTAG tag;

	/* (LockSharedObject's tag, without its wait) */
	SET_LOCKTAG_OBJECT(tag, InvalidOid, ReplicationOriginRelationId, origin, 0);
	if (LockAcquire(&tag, mode, false, true) == LOCKACQUIRE_NOT_AVAIL)
		return false;
	AcceptInvalidationMessages();
	return true;
}
