/*
 * snapshot_export.c - the exporter: a dynamic background worker that writes
 * a group's full snapshot (snapshot.h) for the engine worker (pg_sm.c), so
 * that the engine worker, the other groups and the leader's writes go on.
 *
 * The rows and the applied index must match exactly.  Once the exporter is
 * connected and ready, the engine worker holds the group's apply
 * (apply_busy), and says "drained" once everything handed to the state
 * machine is applied and published (DrGroup.applied moves after the commit
 * that applied an entry is visible, by the apply worker or by a backend at
 * its turn).  Nothing of the group commits then: the REPEATABLE READ
 * snapshot taken now holds exactly the entries up to the origin's position,
 * which is that index.  The group's tables are locked (ACCESS SHARE) before
 * its apply goes on, so no utility command of the group changes them under
 * the export (one would wait for its end).  The rows are written with binary
 * COPY, table by table (COPY TO a file, then appended to the snapshot with
 * the running checksum).
 */
#include "snapshot.h"

#include <sys/stat.h>
#include <unistd.h>

#include "access/table.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/copy.h"
#include "commands/sequence.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parse_node.h"
#include "parser/parser.h"
#include "pgstat.h"
#include "port/pg_crc32c.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "replication/origin.h"
#include "shmem.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "origins.h"

/* The engine worker drains the group's apply within this, or the export fails. */
#define DRAIN_TIMEOUT_MS 60000

typedef struct ExportTable {
	uint64 table_id;
	Oid relid;
	char *schema;
	char *name;
	char *def;
	char *seqs; /* SQL that sets its owned sequences */
} ExportTable;

static struct {
	FILE *out;
	pg_crc32c crc;
	uint64 bytes;
	char *tmp; /* COPY's file */
	DrSnapJob *job;
	uint64 group_id;
} X;

/*
 * Lock the job if it is still this exporter's (the engine worker frees it
 * when the group stops, and may give it to another export meanwhile).
 */
static bool lock_job(void)
{
	SpinLockAcquire(&X.job->mutex);
	if (X.job->pid == MyProcPid && X.job->group_id == X.group_id)
		return true;
	SpinLockRelease(&X.job->mutex);
	return false;
}

static void wake_engine(void)
{
	int pgprocno;

	SpinLockAcquire(&dr_shared->mutex);
	pgprocno = dr_shared->engine_pgprocno;
	SpinLockRelease(&dr_shared->mutex);
	if (pgprocno >= 0)
		SetLatch(&ProcGlobal->allProcs[pgprocno].procLatch);
}

static void put(const void *p, size_t n)
{
	if (fwrite(p, 1, n, X.out) != n)
		ereport(ERROR,
		        (errcode_for_file_access(), errmsg("could not write snapshot file: %m")));
	COMP_CRC32C(X.crc, p, n);
	X.bytes += n;
}

static void put32(uint32 v)
{
	uint8 b[4];

	for (int i = 0; i < 4; i++)
		b[i] = (uint8)(v >> (8 * i));
	put(b, 4);
}

static void put64(uint64 v)
{
	uint8 b[8];

	for (int i = 0; i < 8; i++)
		b[i] = (uint8)(v >> (8 * i));
	put(b, 8);
}

static void put_header(uint32 kind, uint64 len)
{
	put32(kind);
	put32(0);
	put64(len);
}

static void progress(uint32 tables_done)
{
	if (!lock_job())
		return;
	X.job->bytes_done = X.bytes;
	X.job->bytes_total = X.bytes;
	X.job->tables_done = tables_done;
	SpinLockRelease(&X.job->mutex);
}

/* COPY ... TO the temporary file in binary, then append it as a section. */
static void copy_section(uint32 kind, Relation rel, const char *query)
{
	ParseState *pstate = make_parsestate(NULL);
	List *options = list_make1(makeDefElem("format", (Node *)makeString("binary"), -1));
	RawStmt *raw = NULL;
	CopyToState cstate;
	struct stat st;
	FILE *in;
	char buf[65536];
	size_t n;

	if (query != NULL) {
		pstate->p_sourcetext = query;
		raw = linitial_node(RawStmt, raw_parser(query, RAW_PARSE_DEFAULT));
	}
	cstate = BeginCopyTo(pstate, rel, raw, InvalidOid, X.tmp, false, NIL, options);
	(void)DoCopyTo(cstate);
	EndCopyTo(cstate);
	free_parsestate(pstate);

	in = AllocateFile(X.tmp, PG_BINARY_R);
	if (in == NULL || fstat(fileno(in), &st) != 0)
		ereport(ERROR,
		        (errcode_for_file_access(), errmsg("could not read \"%s\": %m", X.tmp)));
	put_header(kind, (uint64)st.st_size);
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0) {
		put(buf, n);
		CHECK_FOR_INTERRUPTS();
	}
	if (ferror(in))
		ereport(ERROR,
		        (errcode_for_file_access(), errmsg("could not read \"%s\": %m", X.tmp)));
	FreeFile(in);
	unlink(X.tmp);
}

/* The SQL that sets relid's owned sequences as they are now. */
static char *sequences_sql(Oid relid)
{
	StringInfoData s;
	ListCell *lc;

	initStringInfo(&s);
	foreach (lc, getOwnedSequences(relid)) {
		Oid seq = lfirst_oid(lc);
		char *q = quote_qualified_identifier(get_namespace_name(get_rel_namespace(seq)),
		                                     get_rel_name(seq));

		if (SPI_execute(psprintf("SELECT last_value, CASE WHEN is_called THEN 'true' ELSE "
		                         "'false' END FROM %s",
		                         q),
		                true, 1) != SPI_OK_SELECT ||
		    SPI_processed != 1)
			elog(ERROR, "dragonraft could not read sequence %s", q);
		appendStringInfo(&s, "SELECT pg_catalog.setval(%s, %s, %s);", quote_literal_cstr(q),
		                 SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1),
		                 SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2));
	}
	return s.data;
}

/* The group's tables, locked: read inside the snapshot while its apply is held. */
static List *group_tables(uint64 group_id)
{
	Oid types[1] = {INT8OID};
	Datum values[1] = {Int64GetDatum((int64)group_id)};
	List *tables = NIL;
	ListCell *lc;
	char *refused;
	bool isnull;

	/* A snapshot from here would lack them, and a member that loads it drops them. */
	if (SPI_execute_with_args("SELECT string_agg(coalesce(relid::regclass::text, "
	                          "'table id ' || table_id), ', ' ORDER BY table_id) "
	                          "FROM dragonraft.replicated_tables "
	                          "WHERE group_id = $1 AND state <> 'replicated'",
	                          1, types, values, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "dragonraft could not list the tables of group %llu",
		     (unsigned long long)group_id);
	(void)SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (!isnull) {
		refused = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		ereport(ERROR,
		        (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		         errmsg("node %d cannot export a snapshot of group %llu: it does not "
		                "replicate the group's table(s) %s",
		                dr_node_id, (unsigned long long)group_id, refused),
		         errdetail("A snapshot from here would lack them, and a member that "
		                   "loads it would drop them with the group's rows."),
		         errhint("Transfer the group's leadership to a member that replicates "
		                 "them (dragonraft.transfer_leader).")));
	}
	if (SPI_execute_with_args("SELECT t.table_id, t.relid, n.nspname, c.relname, "
	                          "dragonraft.table_definition(t.relid) "
	                          "FROM dragonraft.replicated_tables t "
	                          "JOIN pg_class c ON c.oid = t.relid "
	                          "JOIN pg_namespace n ON n.oid = c.relnamespace "
	                          "WHERE t.group_id = $1 AND t.state = 'replicated' "
	                          "ORDER BY t.table_id",
	                          1, types, values, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "dragonraft could not list the tables of group %llu",
		     (unsigned long long)group_id);
	for (uint64 i = 0; i < SPI_processed; i++) {
		HeapTuple tup = SPI_tuptable->vals[i];
		TupleDesc desc = SPI_tuptable->tupdesc;
		ExportTable *t = palloc0(sizeof(ExportTable));
		bool isnull;

		t->table_id = (uint64)DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		t->relid = DatumGetObjectId(SPI_getbinval(tup, desc, 2, &isnull));
		t->schema = SPI_getvalue(tup, desc, 3);
		t->name = SPI_getvalue(tup, desc, 4);
		t->def = SPI_getvalue(tup, desc, 5);
		tables = lappend(tables, t);
	}
	foreach (lc, tables) {
		ExportTable *t = lfirst(lc);

		LockRelationOid(t->relid, AccessShareLock);
		t->seqs = sequences_sql(t->relid);
	}
	return tables;
}

/* Until the engine worker says the group's apply is drained. */
static void wait_drained(void)
{
	TimestampTz end = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), DRAIN_TIMEOUT_MS);

	for (;;) {
		bool drained;

		if (!lock_job())
			elog(ERROR, "the export was called off");
		drained = X.job->drained;
		SpinLockRelease(&X.job->mutex);
		if (drained)
			return;
		if (GetCurrentTimestamp() >= end)
			ereport(ERROR,
			        (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			         errmsg("the group's entries were not applied within %d ms",
			                DRAIN_TIMEOUT_MS),
			         errhint("See dragonraft.status: its entries may fail to apply.")));
		(void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 1000,
		                PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

static void export(uint64 group_id, const char *path)
{
	char origin_name[NAMEDATALEN];
	RepOriginId origin;
	uint64 index;
	List *tables;
	ListCell *lc;
	uint32 done = 0;
	TimestampTz held, released;

	/*
	 * The group's writes wait while its apply is held: a table locked by a
	 * transaction that waits for its own commit through the group would hold
	 * them for good.  Such a lock fails the export (tried again in 1 s).
	 */
	SetConfigOption("lock_timeout", psprintf("%d", dr_election_rtt * dr_rtt_ms), PGC_SUSET,
	                PGC_S_OVERRIDE);
	/* Ready: the engine worker holds the group's apply until the snapshot is taken. */
	held = GetCurrentTimestamp();
	if (!lock_job())
		elog(ERROR, "the export was called off");
	X.job->phase = DR_SNAP_DRAINING;
	SpinLockRelease(&X.job->mutex);
	wake_engine();
	wait_drained();
	StartTransactionCommand();
	XactIsoLevel = XACT_REPEATABLE_READ;
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	dr_origins_name(group_id, origin_name);
	origin = replorigin_by_name(origin_name, false);
	index = replorigin_get_progress(origin, false);
	tables = group_tables(group_id);
	if (!lock_job())
		elog(ERROR, "the export was called off");
	X.job->index = index;
	X.job->taken = true;
	X.job->phase = DR_SNAP_EXPORTING;
	X.job->tables_total = (uint32)list_length(tables);
	SpinLockRelease(&X.job->mutex);
	wake_engine(); /* the group's apply goes on */
	released = GetCurrentTimestamp();
	if (index < X.job->handed)
		elog(ERROR, "group %llu applied %llu, less than the %llu handed over",
		     (unsigned long long)group_id, (unsigned long long)index,
		     (unsigned long long)X.job->handed);

	X.out = AllocateFile(path, PG_BINARY_W);
	if (X.out == NULL)
		ereport(ERROR, (errcode_for_file_access(),
		                errmsg("could not create snapshot file \"%s\": %m", path)));
	/* COPY takes absolute paths only (the snapshot directory may be relative to PGDATA). */
	X.tmp = psprintf("%s.copy", make_absolute_path(path));
	INIT_CRC32C(X.crc);
	put(DR_SNAP_MAGIC, 8);
	put64(group_id);
	put64(index);
	put32((uint32)list_length(tables));
	put32(0);
	foreach (lc, tables) {
		ExportTable *t = lfirst(lc);
		StringInfoData meta;
		Relation rel;

		initStringInfo(&meta);
		for (int i = 0; i < 8; i++)
			appendStringInfoChar(&meta, (char)(t->table_id >> (8 * i)));
		appendBinaryStringInfo(&meta, t->schema, strlen(t->schema) + 1);
		appendBinaryStringInfo(&meta, t->name, strlen(t->name) + 1);
		appendBinaryStringInfo(&meta, t->def, strlen(t->def) + 1);
		appendBinaryStringInfo(&meta, t->seqs, strlen(t->seqs) + 1);
		put_header(DR_SNAP_TABLE, meta.len);
		put(meta.data, meta.len);
		rel = table_open(t->relid, AccessShareLock);
		copy_section(DR_SNAP_ROWS, rel, NULL);
		table_close(rel, AccessShareLock);
		progress(++done);
	}
	copy_section(DR_SNAP_HISTORY, NULL,
	             psprintf("SELECT * FROM dragonraft.ddl_history WHERE group_id = %llu "
	                      "ORDER BY index",
	                      (unsigned long long)group_id));
	copy_section(DR_SNAP_MEMBERS, NULL,
	             psprintf("SELECT * FROM dragonraft.member_info WHERE group_id = %llu "
	                      "ORDER BY node_id",
	                      (unsigned long long)group_id));
	FIN_CRC32C(X.crc);
	{
		pg_crc32c crc = X.crc;

		put32(DR_SNAP_END);
		put32(crc);
		put64(X.bytes + 8);
	}
	if (FreeFile(X.out) != 0)
		ereport(ERROR, (errcode_for_file_access(),
		                errmsg("could not write snapshot file \"%s\": %m", path)));
	X.out = NULL;
	progress(done);
	dr_snapshot_testing_pause();
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	ereport(LOG, (errmsg("dragonraft exported a snapshot of group %llu at entry %llu: %d "
	                     "tables, %llu bytes in %ld ms (its apply held %ld ms)",
	                     (unsigned long long)group_id, (unsigned long long)index,
	                     list_length(tables), (unsigned long long)X.bytes,
	                     (long)((GetCurrentTimestamp() - X.job->started) / 1000),
	                     (long)((released - held) / 1000))));
}

void dr_snapshot_export_main(Datum arg)
{
	int job = DatumGetInt32(arg);
	uint64 group_id;
	char path[MAXPGPATH];
	MemoryContext cxt;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	X.job = dr_snapshot_job(job);
	memcpy(&X.group_id, MyBgworkerEntry->bgw_extra, sizeof(X.group_id));
	group_id = X.group_id;
	SpinLockAcquire(&X.job->mutex);
	if (X.job->group_id != group_id || X.job->pid != 0) {
		SpinLockRelease(&X.job->mutex);
		proc_exit(0); /* called off before it started */
	}
	strlcpy(path, X.job->path, sizeof(path));
	X.job->pid = MyProcPid;
	X.job->waiter_pgprocno = MyProc->pgprocno;
	SpinLockRelease(&X.job->mutex);
	BackgroundWorkerInitializeConnection(dr_database, NULL, 0);
	pgstat_report_activity(STATE_RUNNING, psprintf("exporting a snapshot of group %llu",
	                                               (unsigned long long)group_id));
	cxt = CurrentMemoryContext;
	PG_TRY();
	{
		export(group_id, path);
		if (lock_job()) {
			X.job->rc = 0;
			X.job->phase = DR_SNAP_DONE;
			SpinLockRelease(&X.job->mutex);
		}
	}
	PG_CATCH();
	{
		ErrorData *ed;

		MemoryContextSwitchTo(cxt);
		ed = CopyErrorData();
		if (lock_job()) {
			strlcpy(X.job->error, ed->message, sizeof(X.job->error));
			X.job->rc = -1;
			X.job->taken = true;
			X.job->phase = DR_SNAP_DONE;
			SpinLockRelease(&X.job->mutex);
		}
		unlink(path);
		if (X.tmp != NULL)
			unlink(X.tmp);
		wake_engine();
		PG_RE_THROW();
	}
	PG_END_TRY();
	wake_engine();
}
