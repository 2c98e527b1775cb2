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
 * its turn; a backend commits its entry only once it was handed: xact.c).
 * Nothing of the group commits then: the REPEATABLE READ
 * snapshot taken now holds exactly the entries up to the origin's position,
 * which is that index.  The group's tables are locked (ACCESS SHARE, for
 * the session) and described before its apply is held, so that the hold
 * lasts as long whatever their number, and no utility command of the group
 * changes them under the export (one would wait for its end).  The rows are
 * written table by table, by a scan of each straight into the file (every
 * byte is written once), in their on-disk form (snapshot_rows.c) or, for a
 * table with stored generated columns and for the group's history and
 * member info, in binary COPY's format.
 */
#include "snapshot.h"
#include "write.h"

#include <sys/statvfs.h>
#include <unistd.h>

#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
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
	char *extras; /* DR_SNAP_EXTRAS: owner, privileges, policies, ... */
} ExportTable;

static struct {
	FILE *out;
	const char *path; /* out's */
	pg_crc32c crc;
	uint64 bytes;
	uint64 section;     /* where the section being written starts */
	uint32 tables_done; /* tables written */
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

/* (the file named, as PostgreSQL's messages name theirs: review 73) */
static void write_failed(void) pg_attribute_noreturn();

static void write_failed(void)
{
	ereport(ERROR, (errcode_for_file_access(),
	                errmsg("could not write snapshot file \"%s\": %m", X.path)));
}

static void put(const void *p, size_t n)
{
	if (fwrite(p, 1, n, X.out) != n)
		write_failed();
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

static void progress(void)
{
	if (!lock_job())
		return;
	X.job->bytes_done = X.bytes;
	X.job->bytes_total = X.bytes;
	X.job->tables_done = X.tables_done;
	SpinLockRelease(&X.job->mutex);
}

/*
 * A section is written before its length is known: its header is a
 * placeholder, filled in at its end, and goes into the checksum after its
 * bytes (snapshot.h).
 */
static void begin_section(void)
{
	static const uint8 zero[DR_SNAP_SECTION_BYTES];

	X.section = X.bytes;
	if (fwrite(zero, 1, sizeof(zero), X.out) != sizeof(zero))
		write_failed();
	X.bytes += sizeof(zero);
}

static void end_section(uint32 kind)
{
	uint64 len = X.bytes - X.section - DR_SNAP_SECTION_BYTES;
	uint8 h[DR_SNAP_SECTION_BYTES] = {0};

	for (int i = 0; i < 4; i++)
		h[i] = (uint8)(kind >> (8 * i));
	for (int i = 0; i < 8; i++)
		h[8 + i] = (uint8)(len >> (8 * i));
	if (fseeko(X.out, (off_t)X.section, SEEK_SET) != 0 ||
	    fwrite(h, 1, sizeof(h), X.out) != sizeof(h) || fseeko(X.out, 0, SEEK_END) != 0)
		write_failed();
	COMP_CRC32C(X.crc, h, sizeof(h));
}

/* Binary COPY's integers are big-endian. */
static void row_int(StringInfo buf, int bytes, uint64 v)
{
	for (int i = bytes - 1; i >= 0; i--)
		appendStringInfoCharMacro(buf, (char)(v >> (8 * i)));
}

/*
 * Columns whose send function writes the value's bits big-endian (int2send,
 * int4send, int8send, float4send, ...): their width here, 0 for the others.
 * Written directly, the same bytes, without a call and a bytea per value.
 */
static int fixed_width(Oid type)
{
	switch (type) {
	case BOOLOID:
		return 1;
	case INT2OID:
		return 2;
	case INT4OID:
	case OIDOID:
	case DATEOID:
	case FLOAT4OID:
		return 4;
	case INT8OID:
	case TIMEOID:
	case TIMESTAMPOID:
	case TIMESTAMPTZOID:
	case FLOAT8OID:
		return 8;
	default:
		return 0;
	}
}

static uint64 fixed_bits(Oid type, Datum d)
{
	switch (type) {
	case BOOLOID:
		return DatumGetBool(d) ? 1 : 0;
	case INT2OID:
		return (uint16)DatumGetInt16(d);
	case INT4OID:
	case DATEOID:
		return (uint32)DatumGetInt32(d);
	case OIDOID:
		return DatumGetObjectId(d);
	case FLOAT4OID: {
		float4 f = DatumGetFloat4(d);
		uint32 u;

		memcpy(&u, &f, sizeof(u));
		return u;
	}
	case FLOAT8OID: {
		float8 f = DatumGetFloat8(d);
		uint64 u;

		memcpy(&u, &f, sizeof(u));
		return u;
	}
	default:
		return (uint64)DatumGetInt64(d);
	}
}

/*
 * Rows in binary COPY's format (what COPY FROM reads back), written straight
 * into the snapshot file: the columns COPY TO would write (not dropped, not
 * generated), each by its type's send function or, for common types, the
 * same bytes written directly.  Tuples come from a scan of rel or, without
 * rel, from SPI's result of query.
 */
static void rows_section(uint32 kind, Relation rel, const char *query)
{
	static const char sig[] = "PGCOPY\n\377\r\n"; /* and its NUL */
	TupleDesc desc;
	int natts, *atts, *width;
	FmgrInfo *send;
	/* textsend, varcharsend, bpcharsend and byteasend write the bytes as they are when no
	 * encoding conversion is needed */
	bool raw_text = pg_get_client_encoding() == GetDatabaseEncoding();
	MemoryContext row_cxt, old;
	StringInfoData buf;
	TableScanDesc scan = NULL;
	TupleTableSlot *slot = NULL;
	uint64 n = 0;
	Datum *spi_values = NULL;
	bool *spi_nulls = NULL;

	if (rel != NULL && rel->rd_rel->relkind != RELKIND_RELATION)
		elog(ERROR, "dragonraft cannot export \"%s\": not an ordinary table",
		     RelationGetRelationName(rel)); /* (replicate_table takes no other) */
	if (rel != NULL)
		desc = RelationGetDescr(rel);
	else if (SPI_execute(query, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "dragonraft could not run: %s", query);
	else
		desc = SPI_tuptable->tupdesc;
	atts = palloc(sizeof(int) * desc->natts);
	send = palloc(sizeof(FmgrInfo) * desc->natts);
	width = palloc(sizeof(int) * desc->natts);
	natts = 0;
	for (int i = 0; i < desc->natts; i++) {
		Form_pg_attribute a = TupleDescAttr(desc, i);
		Oid func;
		bool varlena;

		if (a->attisdropped || a->attgenerated)
			continue;
		getTypeBinaryOutputInfo(a->atttypid, &func, &varlena);
		fmgr_info(func, &send[natts]);
		width[natts] = fixed_width(a->atttypid);
		if (a->atttypid == BYTEAOID ||
		    (raw_text && (a->atttypid == TEXTOID || a->atttypid == VARCHAROID ||
		                  a->atttypid == BPCHAROID)))
			width[natts] = -1; /* the varlena's bytes */
		atts[natts++] = i;
	}
	row_cxt =
	        AllocSetContextCreate(CurrentMemoryContext, "snapshot row", ALLOCSET_DEFAULT_SIZES);
	initStringInfo(&buf);
	begin_section();
	appendBinaryStringInfo(&buf, sig, sizeof(sig));
	row_int(&buf, 4, 0); /* flags */
	row_int(&buf, 4, 0); /* header extension */
	if (rel == NULL) {
		spi_values = palloc(sizeof(Datum) * desc->natts);
		spi_nulls = palloc(sizeof(bool) * desc->natts);
	} else {
		scan = table_beginscan(rel, GetActiveSnapshot(), 0, NULL);
		slot = table_slot_create(rel, NULL);
	}
	for (;;) {
		Datum *values;
		bool *nulls;

		if (rel != NULL) {
			if (!table_scan_getnextslot(scan, ForwardScanDirection, slot))
				break;
			slot_getallattrs(slot);
			values = slot->tts_values;
			nulls = slot->tts_isnull;
		} else if (n < SPI_processed) {
			values = spi_values;
			nulls = spi_nulls;
			heap_deform_tuple(SPI_tuptable->vals[n], desc, values, nulls);
		} else
			break;
		old = MemoryContextSwitchTo(row_cxt);
		row_int(&buf, 2, (uint32)natts);
		for (int k = 0; k < natts; k++) {
			int i = atts[k];

			if (nulls[i])
				row_int(&buf, 4, (uint32)-1);
			else if (width[k] > 0) {
				row_int(&buf, 4, (uint64)width[k]);
				row_int(&buf, width[k],
				        fixed_bits(TupleDescAttr(desc, i)->atttypid, values[i]));
			} else if (width[k] < 0) {
				struct varlena *v = pg_detoast_datum_packed(
				        (struct varlena *)DatumGetPointer(values[i]));

				row_int(&buf, 4, VARSIZE_ANY_EXHDR(v));
				appendBinaryStringInfo(&buf, VARDATA_ANY(v), VARSIZE_ANY_EXHDR(v));
			} else {
				bytea *b = SendFunctionCall(&send[k], values[i]);

				row_int(&buf, 4, (uint32)(VARSIZE(b) - VARHDRSZ));
				appendBinaryStringInfo(&buf, VARDATA(b), VARSIZE(b) - VARHDRSZ);
			}
		}
		MemoryContextSwitchTo(old);
		MemoryContextReset(row_cxt);
		if (buf.len >= 65536) {
			put(buf.data, buf.len);
			resetStringInfo(&buf);
			progress();
			CHECK_FOR_INTERRUPTS();
		}
		n++;
	}
	row_int(&buf, 2, (uint32)-1); /* the end of the rows */
	put(buf.data, buf.len);
	end_section(kind);
	if (rel != NULL) {
		ExecDropSingleTupleTableSlot(slot);
		table_endscan(scan);
	}
	MemoryContextDelete(row_cxt);
	pfree(buf.data);
}

static void flush_rows(StringInfo buf)
{
	put(buf->data, buf->len);
	resetStringInfo(buf);
	progress();
}

/* A table's rows: in their on-disk form (snapshot_rows.c), else as binary COPY. */
static void table_rows(Relation rel)
{
	StringInfoData buf;

	if (rel->rd_rel->relkind != RELKIND_RELATION || !dr_snapshot_rows_raw(rel)) {
		rows_section(DR_SNAP_ROWS, rel, NULL);
		return;
	}
	initStringInfo(&buf);
	begin_section();
	dr_snapshot_rows_write(rel, &buf, flush_rows);
	end_section(DR_SNAP_ROWS);
	pfree(buf.data);
}

/* Append the SQL that sets sequence seq as it is now to s. */
static void setval_sql(StringInfo s, Oid seq)
{
	char *q = quote_qualified_identifier(get_namespace_name(get_rel_namespace(seq)),
	                                     get_rel_name(seq));

	if (SPI_execute(psprintf("SELECT last_value, CASE WHEN is_called THEN 'true' ELSE "
	                         "'false' END FROM %s",
	                         q),
	                true, 1) != SPI_OK_SELECT ||
	    SPI_processed != 1)
		elog(ERROR, "dragonraft could not read sequence %s", q);
	appendStringInfo(s, "SELECT pg_catalog.setval(%s, %s, %s);", quote_literal_cstr(q),
	                 SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1),
	                 SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2));
}

/* The SQL that sets relid's owned sequences as they are now. */
static char *sequences_sql(Oid relid)
{
	StringInfoData s;
	ListCell *lc;

	initStringInfo(&s);
	foreach (lc, getOwnedSequences(relid))
		setval_sql(&s, lfirst_oid(lc));
	return s.data;
}

/*
 * The relations that the group's commands made here and that are not its
 * tables (dragonraft.made_relations; a sequence owned by a column travels
 * with its table), in the order they were made: per relation a
 * DR_SNAP_PLAIN section (snapshot.h).  One that a snapshot does not carry
 * (dragonraft.plain_definition is NULL) goes with what it is and no
 * definition: a load says that its command's effect is missing.
 */
static void plain_sections(uint64 group_id)
{
	Oid types[1] = {INT8OID};
	Datum values[1] = {Int64GetDatum((int64)group_id)};
	SPITupleTable *tt;
	uint64 n;
	char *query = psprintf(
	        "SELECT m.index, c.oid, n.nspname, c.relname, d.def, CASE WHEN d.def IS NULL "
	        "THEN CASE WHEN c.relkind = 'm' THEN 'materialized view' "
	        "WHEN c.relkind = 'p' THEN 'partitioned table' "
	        "WHEN c.relkind = 'f' THEN 'foreign table' "
	        "WHEN c.relpersistence = 'u' THEN 'unlogged table' "
	        "ELSE 'partition or inheritance child' END ELSE %s END, c.relkind::text "
	        "FROM dragonraft.made_relations m JOIN pg_catalog.pg_class c ON c.oid = m.relid "
	        "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
	        "CROSS JOIN LATERAL (SELECT dragonraft.plain_definition(c.oid) AS def) d "
	        "WHERE m.group_id = $1 AND %s ORDER BY m.index, m.seq",
	        DR_SNAP_EXTRAS("c.oid"), DR_SNAP_PLAIN_REL("c"));

	if (SPI_execute_with_args(query, 1, types, values, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "dragonraft could not read dragonraft.made_relations");
	tt = SPI_tuptable;
	n = SPI_processed;
	for (uint64 i = 0; i < n; i++) {
		HeapTuple tup = tt->vals[i];
		bool isnull;
		uint64 index = (uint64)DatumGetInt64(SPI_getbinval(tup, tt->tupdesc, 1, &isnull));
		Oid relid = DatumGetObjectId(SPI_getbinval(tup, tt->tupdesc, 2, &isnull));
		char *def = SPI_getvalue(tup, tt->tupdesc, 5);
		char *extras = SPI_getvalue(tup, tt->tupdesc, 6);
		const char *parts[4] = {SPI_getvalue(tup, tt->tupdesc, 3),
		                        SPI_getvalue(tup, tt->tupdesc, 4), def ? def : "", NULL};
		char kind = SPI_getvalue(tup, tt->tupdesc, 7)[0];
		StringInfoData meta, seqs;

		initStringInfo(&seqs);
		if (def != NULL && kind == RELKIND_SEQUENCE)
			setval_sql(&seqs, relid); /* (a query of its own: tt stays valid) */
		else if (def != NULL)
			appendStringInfoString(&seqs, sequences_sql(relid));
		parts[3] = seqs.data;
		initStringInfo(&meta);
		for (int k = 0; k < 8; k++)
			appendStringInfoChar(&meta, (char)(index >> (8 * k)));
		appendStringInfoChar(&meta, kind);
		for (int k = 0; k < 4; k++)
			appendBinaryStringInfo(&meta, parts[k], strlen(parts[k]) + 1);
		appendBinaryStringInfo(&meta, extras ? extras : "",
		                       strlen(extras ? extras : "") + 1);
		begin_section();
		put(meta.data, meta.len);
		end_section(DR_SNAP_PLAIN);
	}
}

/*
 * Before the group's apply is held: ACCESS SHARE on each of its tables for
 * the session (as CREATE INDEX CONCURRENTLY does), waiting while the
 * group's writes go on for as long as a session keeps a stronger lock on
 * one.  Then nothing of the export waits for a table's lock.  Session
 * locks outlive transactions and even the process (its lock table entries
 * would stay behind it): unlock_tables releases them at the export's end
 * and, whatever ends the process, at its exit.
 */
static Oid *session_locked;
static int n_session_locked;

static void unlock_tables(int code, Datum arg)
{
	while (n_session_locked > 0) {
		LockRelId id = {.relId = session_locked[--n_session_locked], .dbId = MyDatabaseId};

		UnlockRelationIdForSession(&id, AccessShareLock);
	}
}

static uint64 lock_tables_for_session(uint64 group_id)
{
	Oid types[1] = {INT8OID};
	Datum values[1] = {Int64GetDatum((int64)group_id)};
	List *relids = NIL;
	ListCell *lc;
	uint64 size = 0;

	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args(
	            "SELECT relid, coalesce(pg_table_size(relid), 0) "
	            "FROM dragonraft.replicated_tables "
	            "WHERE group_id = $1 AND state = 'replicated' AND relid IS NOT NULL",
	            1, types, values, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "dragonraft could not list the tables of group %llu",
		     (unsigned long long)group_id);
	for (uint64 i = 0; i < SPI_processed; i++) {
		HeapTuple tup = SPI_tuptable->vals[i];
		bool isnull;

		relids = lappend_oid(relids, DatumGetObjectId(SPI_getbinval(
		                                     tup, SPI_tuptable->tupdesc, 1, &isnull)));
		size += (uint64)DatumGetInt64(
		        SPI_getbinval(tup, SPI_tuptable->tupdesc, 2, &isnull));
	}
	SPI_finish();
	PopActiveSnapshot();
	session_locked =
	        MemoryContextAlloc(TopMemoryContext, Max(list_length(relids), 1) * sizeof(Oid));
	before_shmem_exit(unlock_tables, (Datum)0);
	foreach (lc, relids) {
		LockRelId id = {.relId = lfirst_oid(lc), .dbId = MyDatabaseId};

		LockRelationIdForSession(&id, AccessShareLock);
		session_locked[n_session_locked++] = id.relId;
	}
	CommitTransactionCommand();
	return size;
}

/* An error unless this node replicates every table of the group. */
static void check_refused(uint64 group_id)
{
	Oid types[1] = {INT8OID};
	Datum values[1] = {Int64GetDatum((int64)group_id)};
	char *refused;
	bool isnull;

	if (SPI_execute_with_args("SELECT string_agg(coalesce(relid::regclass::text, "
	                          "'table id ' || table_id), ', ' ORDER BY table_id) "
	                          "FROM dragonraft.replicated_tables "
	                          "WHERE group_id = $1 AND state <> 'replicated'",
	                          1, types, values, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "dragonraft could not list the tables of group %llu",
		     (unsigned long long)group_id);
	(void)SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (isnull)
		return;
	refused = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
	                errmsg("node %d cannot export a snapshot of group %llu: it does not "
	                       "replicate the group's table(s) %s",
	                       dr_node_id, (unsigned long long)group_id, refused),
	                errdetail("A snapshot from here would lack them, and a member that "
	                          "loads it would drop them with the group's rows."),
	                errhint("Transfer the group's leadership to a member that replicates "
	                        "them (dragonraft.transfer_leader).")));
}

/*
 * The group's tables in table id order, in cxt, with their definitions and
 * extras if describe: an error if this node refused one of them (a snapshot
 * from here would lack it, and a member that loads it drops it).
 */
static List *list_tables(uint64 group_id, bool describe, MemoryContext cxt)
{
	Oid types[1] = {INT8OID};
	Datum values[1] = {Int64GetDatum((int64)group_id)};
	List *tables = NIL;
	MemoryContext old;
	const char *description =
	        "dragonraft.table_definition(t.relid), " DR_SNAP_EXTRAS("t.relid");

	check_refused(group_id);
	if (SPI_execute_with_args(psprintf("SELECT t.table_id, t.relid, n.nspname, c.relname, %s "
	                                   "FROM dragonraft.replicated_tables t "
	                                   "JOIN pg_class c ON c.oid = t.relid "
	                                   "JOIN pg_namespace n ON n.oid = c.relnamespace "
	                                   "WHERE t.group_id = $1 AND t.state = 'replicated' "
	                                   "ORDER BY t.table_id",
	                                   describe ? description : "NULL, NULL"),
	                          1, types, values, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "dragonraft could not list the tables of group %llu",
		     (unsigned long long)group_id);
	old = MemoryContextSwitchTo(cxt);
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
		t->extras = SPI_getvalue(tup, desc, 6);
		tables = lappend(tables, t);
	}
	MemoryContextSwitchTo(old);
	return tables;
}

static void changed(uint64 group_id, const char *what) pg_attribute_noreturn();

static void changed(uint64 group_id, const char *what)
{
	ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
	                errmsg("the tables of group %llu changed while their snapshot was "
	                       "prepared: %s",
	                       (unsigned long long)group_id, what),
	                errdetail("The export is tried again.")));
}

/*
 * The group's tables, described before its apply is held, once they are
 * locked for the session (lock_tables_for_session: their definitions cannot
 * change meanwhile), and the group's last command then: a snapshot taken
 * later holds exactly these tables so defined if it holds the same tables
 * and the same last command (what else changes them, a command of the
 * group, comes with a row of its history; the group's last command as the
 * apply counts it: a barrier or a skipped command applied meanwhile changed
 * nothing and does not make the export start over).
 */
static List *describe_tables(uint64 group_id, uint64 *schema)
{
	MemoryContext keep = CurrentMemoryContext;
	List *tables;
	ListCell *lc;

	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	*schema = dr_apply_rows_last_command(group_id);
	tables = list_tables(group_id, true, keep);
	foreach (lc, tables) {
		ExportTable *t = lfirst(lc);
		int i = 0;

		while (i < n_session_locked && session_locked[i] != t->relid)
			i++;
		if (i == n_session_locked)
			changed(group_id, psprintf("table %s was registered after they were locked",
			                           quote_qualified_identifier(t->schema, t->name)));
	}
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	MemoryContextSwitchTo(keep);
	return tables;
}

/*
 * Under the snapshot taken while the group's apply was held: the group's
 * tables and last command are those describe_tables saw, or the export
 * fails (tried again).
 */
static void check_tables(uint64 group_id, List *described, uint64 schema)
{
	List *now = list_tables(group_id, false, CurrentMemoryContext);
	uint64 schema_now = dr_apply_rows_last_command(group_id);

	if (schema_now != schema)
		changed(group_id, psprintf("the command at entry %llu was applied after they were "
		                           "described",
		                           (unsigned long long)schema_now));
	for (int i = 0; i < Max(list_length(now), list_length(described)); i++) {
		ExportTable *a = i < list_length(now) ? list_nth(now, i) : NULL;
		ExportTable *b = i < list_length(described) ? list_nth(described, i) : NULL;

		if (a == NULL || b == NULL || a->table_id != b->table_id || a->relid != b->relid ||
		    strcmp(a->schema, b->schema) != 0 || strcmp(a->name, b->name) != 0)
			changed(group_id,
			        psprintf("table %s was registered, dropped or renamed",
			                 quote_qualified_identifier((a != NULL ? a : b)->schema,
			                                            (a != NULL ? a : b)->name)));
	}
}

/*
 * The file must fit beside the LogDB (in dragonraft.data_dir) with room to
 * spare: a full disk would stop the node's engine.  Its rows take about as
 * much as the tables' heaps (size, pg_table_size); refused otherwise.
 */
static void check_room(const char *path, uint64 size)
{
	char dir[MAXPGPATH];
	struct statvfs vfs;
	uint64 avail;

	strlcpy(dir, path, sizeof(dir));
	get_parent_directory(dir);
	if (statvfs(dir, &vfs) != 0)
		ereport(ERROR, (errcode_for_file_access(),
		                errmsg("could not check the free space of \"%s\": %m", dir)));
	avail = (uint64)vfs.f_bavail * vfs.f_frsize;
	if (avail < size + DR_SNAP_MIN_FREE)
		ereport(ERROR,
		        (errcode(ERRCODE_DISK_FULL),
		         errmsg("no room for a snapshot of group %llu in \"%s\"",
		                (unsigned long long)X.group_id, dir),
		         errdetail("Its tables take %llu bytes; %llu bytes are free, and %llu must "
		                   "stay free for the LogDB.",
		                   (unsigned long long)size, (unsigned long long)avail,
		                   (unsigned long long)DR_SNAP_MIN_FREE),
		         errhint("Free space on the file system of dragonraft.data_dir, or lower "
		                 "dragonraft.snapshot_min_free.")));
}

static void called_off(void) pg_attribute_noreturn();

/* The engine worker freed this exporter's job: an operational state, not a bug. */
static void called_off(void)
{
	ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
	                errmsg("the export of a snapshot of group %llu was called off",
	                       (unsigned long long)X.group_id),
	                errdetail("The engine worker ended it: the group stopped on this "
	                          "node, or the engine worker exited.")));
}

/* Until the engine worker says the group's apply is drained. */
static void wait_drained(void)
{
	TimestampTz end = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), DRAIN_TIMEOUT_MS);

	for (;;) {
		bool drained;

		if (!lock_job())
			called_off();
		drained = X.job->drained;
		SpinLockRelease(&X.job->mutex);
		if (drained)
			return;
		if (GetCurrentTimestamp() >= end)
			ereport(ERROR,
			        (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			         errmsg("the entries of group %llu were not applied within %d ms",
			                (unsigned long long)X.group_id, DRAIN_TIMEOUT_MS),
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
	uint64 index, schema, published;
	List *tables;
	ListCell *lc;
	TimestampTz held, released;
	long cpu = dr_snapshot_cpu_ms();

	check_room(path, lock_tables_for_session(group_id));
	tables = describe_tables(group_id, &schema);
	/*
	 * Ready: the engine worker holds the group's apply until the snapshot is
	 * taken.  Nothing in between depends on the number of tables: what is
	 * read under the snapshot is read after the hold.
	 */
	held = GetCurrentTimestamp();
	if (!lock_job())
		called_off();
	X.job->phase = DR_SNAP_DRAINING;
	SpinLockRelease(&X.job->mutex);
	wake_engine();
	wait_drained();
	published = dr_shmem_group_applied(group_id);
	StartTransactionCommand();
	XactIsoLevel = XACT_REPEATABLE_READ;
	PushActiveSnapshot(GetTransactionSnapshot());
	dr_snapshot_testing_hold_pause();
	dr_origins_name(group_id, origin_name);
	origin = replorigin_by_name(origin_name, false);
	index = replorigin_get_progress(origin, false);
	/* Still this exporter's job: its hold lasted through the snapshot and
	 * the read of the origin (the engine worker frees the job when it ends
	 * the hold otherwise: the group stopped, or a new engine worker runs).
	 * Called off, the apply may have gone on: no comparison then. */
	if (!lock_job())
		called_off();
	X.job->index = index;
	X.job->taken = true;
	X.job->phase = DR_SNAP_EXPORTING;
	X.job->tables_total = (uint32)list_length(tables);
	SpinLockRelease(&X.job->mutex);
	wake_engine(); /* the group's apply goes on */
	/* (sql_tabledigest.c says why they are equal; else the file would lie) */
	if (index != published)
		elog(ERROR,
		     "the applied index of group %llu moved from %llu to %llu while its "
		     "apply was held for the export",
		     (unsigned long long)group_id, (unsigned long long)published,
		     (unsigned long long)index);
	released = GetCurrentTimestamp();
	if (index < X.job->handed)
		elog(ERROR, "group %llu applied %llu, less than the %llu handed over",
		     (unsigned long long)group_id, (unsigned long long)index,
		     (unsigned long long)X.job->handed);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	check_tables(group_id, tables, schema);

	X.path = path;
	X.out = AllocateFile(path, PG_BINARY_W);
	if (X.out == NULL)
		ereport(ERROR, (errcode_for_file_access(),
		                errmsg("could not create snapshot file \"%s\": %m", path)));
	INIT_CRC32C(X.crc);
	put(DR_SNAP_MAGIC, 8);
	put64(group_id);
	put64(index);
	put32((uint32)list_length(tables));
	put32(0);
	{
		uint8 platform[DR_SNAP_HEADER_BYTES - 32];

		dr_snapshot_platform(platform);
		put(platform, sizeof(platform));
	}
	{
		DrDbLocale here;
		StringInfoData meta;

		dr_database_locale(&here);
		initStringInfo(&meta);
		for (int i = 0; i < 4; i++)
			appendStringInfoChar(&meta, (char)((uint32)dr_node_id >> (8 * i)));
		appendStringInfoChar(&meta, here.provider);
		appendBinaryStringInfo(&meta, here.collate, strlen(here.collate) + 1);
		appendBinaryStringInfo(&meta, here.ctype, strlen(here.ctype) + 1);
		if (here.icu_locale != NULL)
			appendStringInfoString(&meta, here.icu_locale);
		appendStringInfoChar(&meta, '\0');
		begin_section();
		put(meta.data, meta.len);
		end_section(DR_SNAP_LOCALE);
	}
	foreach (lc, tables) {
		ExportTable *t = lfirst(lc);
		StringInfoData meta;
		Relation rel;
		char *seqs;

		initStringInfo(&meta);
		for (int i = 0; i < 8; i++)
			appendStringInfoChar(&meta, (char)(t->table_id >> (8 * i)));
		appendBinaryStringInfo(&meta, t->schema, strlen(t->schema) + 1);
		appendBinaryStringInfo(&meta, t->name, strlen(t->name) + 1);
		appendBinaryStringInfo(&meta, t->def, strlen(t->def) + 1);
		seqs = sequences_sql(t->relid); /* a sequence only grows: read after the hold */
		appendBinaryStringInfo(&meta, seqs, strlen(seqs) + 1);
		appendBinaryStringInfo(&meta, t->extras, strlen(t->extras) + 1);
		begin_section();
		put(meta.data, meta.len);
		end_section(DR_SNAP_TABLE);
		rel = table_open(t->relid, AccessShareLock);
		table_rows(rel);
		table_close(rel, AccessShareLock);
		X.tables_done++;
		progress();
	}
	plain_sections(group_id);
	rows_section(DR_SNAP_HISTORY, NULL,
	             psprintf("SELECT * FROM dragonraft.ddl_history WHERE group_id = %llu "
	                      "ORDER BY index",
	                      (unsigned long long)group_id));
	rows_section(DR_SNAP_MEMBERS, NULL,
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
	progress();
	dr_snapshot_testing_pause();
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	unlock_tables(0, (Datum)0);
	ereport(LOG, (errmsg("dragonraft exported a snapshot of group %llu at entry %llu: %d "
	                     "tables, %llu bytes in %ld ms (its apply held %ld ms; CPU %ld ms)",
	                     (unsigned long long)group_id, (unsigned long long)index,
	                     list_length(tables), (unsigned long long)X.bytes,
	                     (long)((GetCurrentTimestamp() - X.job->started) / 1000),
	                     (long)((released - held) / 1000), dr_snapshot_cpu_ms() - cpu)));
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
	dr_pin_worker_settings();
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
		} else {
			/* Called off meanwhile (the engine worker freed the job, and
			 * terminated this worker too late to stop it): nobody takes the
			 * file, nor deletes it before the next engine worker's start. */
			unlink(path);
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
		wake_engine();
		PG_RE_THROW();
	}
	PG_END_TRY();
	wake_engine();
}
