/*
 * consistency.c - dragonraft.check_consistency(group_id): every member
 * digests the group's tables at the same log index, in the background, into
 * its dragonraft.consistency_checks.
 *
 * The leader proposes a marker, DR_CONSISTENCY_MARKER through execute(): a
 * barrier (SELECTs of constants), which a member of an older build applies
 * as the no-op it is, where an entry of a new type would stop its apply of
 * the group ("undecodable entry").  The apply worker, applying it (a
 * command begins its own batch: every entry before it is committed, and no
 * entry after it commits before this transaction, whoever applies it),
 * exports the snapshot it sees (the group's tables at exactly that index),
 * starts a checker (a dynamic background worker) and waits until the
 * checker imported it and locked the group's tables (or failed: recorded,
 * and the apply goes on); its commit then lets the group's apply go on.
 * The checker digests the tables as table_digest does (sql_tabledigest.c)
 * and records them, replacing what was recorded at that index: if the
 * marker's apply aborts after its checker took the snapshot, the apply is
 * tried again and starts another.
 */
#include "snapshot.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"
#include "write.h"

/* The apply waits this long at most for the checker to import its snapshot. */
#define IMPORT_TIMEOUT_MS 10000

/*
 * The rows of a check replace those recorded at its index before (SPI
 * connected, in a READ COMMITTED transaction, so that the DELETE sees rows
 * that another checker committed while this one waited for the lock): an
 * apply that aborted after its checker took the snapshot (its commit failed,
 * the apply worker died) applies the marker again, and the checker it starts
 * then records the same index (TAP 107 part 3: twice before).  The lock
 * conflicts with itself: two checkers of one index record one after the
 * other.
 */
static void forget_earlier(uint64 group_id, uint64 index)
{
	Oid types[2] = {INT8OID, INT8OID};
	Datum values[2] = {Int64GetDatum((int64)group_id), Int64GetDatum((int64)index)};

	if (SPI_execute("LOCK TABLE dragonraft.consistency_checks IN SHARE ROW EXCLUSIVE MODE",
	                false, 0) != SPI_OK_UTILITY ||
	    SPI_execute_with_args("DELETE FROM dragonraft.consistency_checks "
	                          "WHERE group_id = $1 AND log_index = $2",
	                          2, types, values, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "dragonraft could not replace the rows of a check in "
		            "dragonraft.consistency_checks");
}

/* A row of dragonraft.consistency_checks (SPI connected): relid InvalidOid = none. */
static void record(uint64 group_id, uint64 index, Oid relid, int64 rows, const char *digest,
                   const char *error)
{
	Oid types[6] = {INT8OID, INT8OID, OIDOID, INT8OID, TEXTOID, TEXTOID};
	Datum values[6] = {Int64GetDatum((int64)group_id),
	                   Int64GetDatum((int64)index),
	                   ObjectIdGetDatum(relid),
	                   Int64GetDatum(rows),
	                   digest ? CStringGetTextDatum(digest) : (Datum)0,
	                   error ? CStringGetTextDatum(error) : (Datum)0};
	char nulls[6] = {' ',
	                 ' ',
	                 OidIsValid(relid) ? ' ' : 'n',
	                 rows >= 0 ? ' ' : 'n',
	                 digest ? ' ' : 'n',
	                 error ? ' ' : 'n'};

	if (SPI_execute_with_args("INSERT INTO dragonraft.consistency_checks (group_id, log_index, "
	                          "relid, rows, digest, error) VALUES ($1, $2, $3, $4, $5, $6)",
	                          6, types, values, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "dragonraft could not record a row in dragonraft.consistency_checks");
}

void dr_consistency_mark(uint64 group_id, uint64 index)
{
	int job = dr_snapshot_job_alloc(group_id, DR_SNAP_DIGEST);
	DrSnapJob *j;
	BackgroundWorker w;
	BackgroundWorkerHandle *volatile h = NULL;
	uint32 generation;
	char *name;
	const char *volatile error = NULL;
	TimestampTz start = GetCurrentTimestamp(), end;
	pid_t pid;

	if (job < 0) {
		forget_earlier(group_id, index);
		record(group_id, index, InvalidOid, -1, NULL,
		       "no free snapshot job on this node (dragonraft.stat_progress_snapshot)");
		return;
	}
	j = dr_snapshot_job(job);
	PG_TRY();
	{
		name = ExportSnapshot(GetLatestSnapshot());
		SpinLockAcquire(&j->mutex);
		generation = j->generation;
		strlcpy(j->path, name, sizeof(j->path));
		j->index = index;
		j->waiter_pgprocno = MyProc->pgprocno;
		SpinLockRelease(&j->mutex);
		dr_snapshot_worker(&w, "dr_consistency_main", "checker", group_id);
		w.bgw_main_arg = Int32GetDatum(job);
		memcpy(w.bgw_extra, &group_id, sizeof(group_id));
		memcpy(w.bgw_extra + sizeof(group_id), &generation, sizeof(generation));
		if (!RegisterDynamicBackgroundWorker(&w, (BackgroundWorkerHandle **)&h))
			error = "no background worker slot for the checker (max_worker_processes)";
		end = TimestampTzPlusMilliseconds(start, IMPORT_TIMEOUT_MS);
		while (error == NULL) {
			bool taken;

			SpinLockAcquire(&j->mutex);
			taken = j->taken;
			SpinLockRelease(&j->mutex);
			if (taken)
				break;
			if (GetBackgroundWorkerPid(h, &pid) == BGWH_STOPPED)
				error = "the checker exited before it took its snapshot (see the "
				        "server log)";
			else if (GetCurrentTimestamp() >= end)
				error = "the checker did not take its snapshot within 10 s";
			else {
				(void)WaitLatch(MyLatch,
				                WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 10,
				                PG_WAIT_EXTENSION);
				ResetLatch(MyLatch);
				CHECK_FOR_INTERRUPTS();
			}
		}
		if (error != NULL && h != NULL)
			TerminateBackgroundWorker(h);
	}
	PG_FINALLY();
	{
		dr_snapshot_job_free(job);
	}
	PG_END_TRY();
	if (error != NULL) {
		forget_earlier(group_id, index);
		record(group_id, index, InvalidOid, -1, NULL, error);
	}
	ereport(LOG, (errmsg("dragonraft consistency check of group %llu at entry %llu: its "
	                     "apply held %ld us for the checker",
	                     (unsigned long long)group_id, (unsigned long long)index,
	                     (long)(GetCurrentTimestamp() - start))));
}

/* One table's digest, kept across the transactions of the checker. */
typedef struct Checked {
	Oid relid;
	uint64 rows;
	char hex[65];
} Checked;

/* Digest the group's tables (relids, locked) under the active snapshot, into a list
 * of Checked allocated in cxt. */
static List *check_tables(List *relids, MemoryContext cxt)
{
	List *out = NIL;
	ListCell *lc;

	if (SetClientEncoding(GetDatabaseEncoding()) < 0)
		elog(ERROR, "dragonraft could not set the client encoding to the database's");
	foreach (lc, relids) {
		Checked *c = MemoryContextAlloc(cxt, sizeof(Checked));
		uint8 sum[32];
		MemoryContext old;

		c->relid = lfirst_oid(lc);
		dr_table_digest_rel(c->relid, GetActiveSnapshot(), &c->rows, sum);
		for (int i = 0; i < 32; i++)
			snprintf(c->hex + 2 * i, 3, "%02x", sum[i]);
		old = MemoryContextSwitchTo(cxt);
		out = lappend(out, c);
		MemoryContextSwitchTo(old);
	}
	return out;
}

/* In a transaction of its own: the check's rows (checked; error: one row saying so)
 * replace those at its index. */
static void record_check(uint64 group_id, uint64 index, List *checked, const char *error)
{
	ListCell *lc;

	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	forget_earlier(group_id, index);
	if (error != NULL)
		record(group_id, index, InvalidOid, -1, NULL, error);
	else if (checked == NIL)
		record(group_id, index, InvalidOid, 0, NULL, NULL); /* (the check ran) */
	foreach (lc, error == NULL ? checked : NIL) {
		Checked *c = lfirst(lc);

		record(group_id, index, c->relid, (int64)c->rows, c->hex, NULL);
	}
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
}

void dr_consistency_main(Datum arg)
{
	int job = DatumGetInt32(arg);
	DrSnapJob *j = dr_snapshot_job(job);
	uint64 group_id, index;
	uint32 generation;
	char name[MAXPGPATH];
	int waiter;
	MemoryContext cxt;
	List *relids, *volatile checked = NIL;
	ErrorData *volatile ed = NULL;
	ListCell *lc;
	bool mine;

	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	memcpy(&group_id, MyBgworkerEntry->bgw_extra, sizeof(group_id));
	memcpy(&generation, MyBgworkerEntry->bgw_extra + sizeof(group_id), sizeof(generation));
	SpinLockAcquire(&j->mutex);
	mine = j->group_id == group_id && j->generation == generation;
	strlcpy(name, j->path, sizeof(name));
	index = j->index;
	waiter = j->waiter_pgprocno;
	if (mine)
		j->pid = MyProcPid;
	SpinLockRelease(&j->mutex);
	if (!mine)
		proc_exit(0); /* its apply gave up on it */
	BackgroundWorkerInitializeConnection(dr_database, NULL, 0);
	dr_pin_worker_settings();
	pgstat_report_activity(STATE_RUNNING,
	                       psprintf("checking group %llu at entry %llu",
	                                (unsigned long long)group_id, (unsigned long long)index));
	StartTransactionCommand();
	XactIsoLevel = XACT_REPEATABLE_READ;
	ImportSnapshot(name); /* (an error: the apply records it) */
	/* The tables are locked before the apply goes on: a command of the group
	 * after the marker (ALTER TABLE, a rewrite) waits until they are digested,
	 * else a table opened later had its schema, or its rows rewritten out of
	 * the snapshot's sight (review 34, TAP 105). */
	PushActiveSnapshot(GetTransactionSnapshot());
	relids = dr_table_digest_tables((int64)group_id);
	foreach (lc, relids)
		LockRelationOid(lfirst_oid(lc), AccessShareLock);
	PopActiveSnapshot();
	SpinLockAcquire(&j->mutex);
	mine = j->group_id == group_id && j->generation == generation;
	if (mine)
		j->taken = true;
	SpinLockRelease(&j->mutex);
	if (!mine)
		proc_exit(0);
	SetLatch(&ProcGlobal->allProcs[waiter].procLatch);
	cxt = AllocSetContextCreate(TopMemoryContext, "dragonraft checker", ALLOCSET_SMALL_SIZES);
	PG_TRY();
	{
		/* (digested under the imported snapshot; recorded in READ COMMITTED) */
		PushActiveSnapshot(GetTransactionSnapshot());
		checked = check_tables(relids, cxt);
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		ed = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
	}
	PG_END_TRY();
	record_check(group_id, index, checked, ed != NULL ? ed->message : NULL);
}
