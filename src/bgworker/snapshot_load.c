/*
 * snapshot_load.c - the load of a received full snapshot (snapshot.h), by
 * the apply worker in one transaction that also sets the group's origin to
 * the snapshot's index (apply_worker.c): the checksum first (a bad file is an
 * error before anything changes), then per table: created from the
 * definition it carries if it does not exist here (indexes after the rows;
 * a table of the group here that differs is dropped first, an existing table
 * that is not the group's must be empty and defined alike), or truncated,
 * and filled with binary COPY (FREEZE; dragonraft's triggers off meanwhile, in this
 * transaction only), its owned sequences set; then the group's history and
 * member info replaced.  Tables of the group here that the snapshot lacks were dropped by
 * a command whose entry was compacted: they are dropped.  A crash leaves
 * everything as it was; the engine receives the snapshot again.
 */
#include "snapshot.h"

#include <sys/stat.h>

#include "access/table.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/copy.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parse_relation.h"
#include "port/pg_crc32c.h"
#include "storage/fd.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/timestamp.h"
#include "write.h"

static struct {
	FILE *in;
	const char *path;
	uint64 left; /* bytes of the section COPY reads */
	DrSnapJob *job;
	uint64 done;
	/* for dr_snapshot_log_loaded() */
	uint64 group_id, index, size;
	uint32 tables;
	TimestampTz start, verified;
	long cpu;
} L;

static void corrupt(const char *why) pg_attribute_noreturn();

static void corrupt(const char *why)
{
	ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
	                errmsg("snapshot file \"%s\" is corrupt: %s", L.path, why),
	                errdetail("Nothing of it was loaded.")));
}

static void get(void *p, size_t n)
{
	if (fread(p, 1, n, L.in) != n)
		corrupt(ferror(L.in) ? "read error" : "it ends early");
	L.done += n;
}

static uint32 get32(void)
{
	uint8 b[4];

	get(b, 4);
	return (uint32)b[0] | (uint32)b[1] << 8 | (uint32)b[2] << 16 | (uint32)b[3] << 24;
}

static uint64 get64(void)
{
	uint64 lo = get32();

	return lo | (uint64)get32() << 32;
}

static void progress(DrSnapPhase phase, uint32 tables_done)
{
	if (L.job == NULL)
		return;
	SpinLockAcquire(&L.job->mutex);
	L.job->phase = phase;
	L.job->bytes_done = L.done;
	L.job->tables_done = tables_done;
	SpinLockRelease(&L.job->mutex);
}

/* Feed n bytes of the file to crc. */
static void crc_bytes(pg_crc32c *crc, uint64 n)
{
	char buf[65536];

	while (n > 0) {
		size_t k = Min(n, sizeof(buf));

		get(buf, k);
		COMP_CRC32C(*crc, buf, k);
		n -= k;
		progress(DR_SNAP_VERIFYING, 0);
		CHECK_FOR_INTERRUPTS();
	}
}

/* The checksum over the whole file and its trailer; then back at the header's end. */
static uint32 verify(uint64 group_id, uint64 index, uint64 size)
{
	char magic[8];
	pg_crc32c crc;
	uint64 end = size - DR_SNAP_TRAILER_BYTES;
	uint32 tables;

	if (size < DR_SNAP_HEADER_BYTES + DR_SNAP_TRAILER_BYTES)
		corrupt("it is too short");
	INIT_CRC32C(crc);
	crc_bytes(&crc, DR_SNAP_HEADER_BYTES);
	while (L.done < end) {
		uint8 h[DR_SNAP_SECTION_BYTES];
		uint64 len = 0;

		if (end - L.done < sizeof(h))
			corrupt("a section runs past the end");
		get(h, sizeof(h));
		for (int i = 0; i < 8; i++)
			len |= (uint64)h[8 + i] << (8 * i);
		if (len > end - L.done)
			corrupt("a section runs past the end");
		crc_bytes(&crc, len);
		COMP_CRC32C(crc, h, sizeof(h)); /* a section's header after its bytes */
	}
	FIN_CRC32C(crc);
	if (get32() != DR_SNAP_END)
		corrupt("no trailer");
	if (get32() != crc)
		corrupt("checksum mismatch");
	if (get64() != size)
		corrupt("its size differs from the one recorded");
	if (fseeko(L.in, 0, SEEK_SET) != 0)
		corrupt("seek failed");
	L.done = 0;
	get(magic, 8);
	if (memcmp(magic, DR_SNAP_MAGIC, 8) != 0)
		corrupt("not a dragonraft snapshot of this version");
	if (get64() != group_id || get64() != index)
		corrupt("it is not the snapshot of this group and index");
	tables = get32();
	(void)get32();
	return tables;
}

/* COPY FROM's source: the current section. */
static int copy_source(void *outbuf, int minread, int maxread)
{
	size_t n = Min((uint64)maxread, L.left);

	if (n == 0)
		return 0;
	get(outbuf, n);
	L.left -= n;
	if (L.job != NULL) {
		SpinLockAcquire(&L.job->mutex);
		L.job->bytes_done = L.done;
		SpinLockRelease(&L.job->mutex);
	}
	return (int)n;
}

static void copy_in(Oid relid, uint64 len)
{
	Relation rel = table_open(relid, RowExclusiveLock);
	ParseState *pstate = make_parsestate(NULL);
	List *options = list_make1(makeDefElem("format", (Node *)makeString("binary"), -1));
	CopyFromState cstate;

	/* A table made or truncated by this load: its rows go in frozen and all-visible, so
	 * that the first reads and vacuum here do not write every page again. */
	if (rel->rd_createSubid == GetCurrentSubTransactionId() ||
	    rel->rd_newRelfilenodeSubid == GetCurrentSubTransactionId())
		options = lappend(options, makeDefElem("freeze", (Node *)makeBoolean(true), -1));
	(void)addRangeTableEntryForRelation(pstate, rel, RowExclusiveLock, NULL, false, false);
	L.left = len;
	cstate = BeginCopyFrom(pstate, rel, NULL, NULL, false, copy_source, NIL, options);
	(void)CopyFrom(cstate);
	EndCopyFrom(cstate);
	if (L.left != 0)
		corrupt("a table's rows end before their section");
	free_parsestate(pstate);
	table_close(rel, NoLock);
}

static void run(const char *sql)
{
	if (SPI_execute(sql, false, 0) < 0)
		elog(ERROR, "dragonraft could not run: %s", sql);
}

/* DDL of dragonraft's own (the utility hook lets it touch our triggers). */
static void run_internal(const char *sql)
{
	dr_internal_ddl++;
	PG_TRY();
	{
		run(sql);
	}
	PG_FINALLY();
	{
		dr_internal_ddl--;
	}
	PG_END_TRY();
}

/* Our triggers on qname off (false) or back on (true), in this transaction. */
static void our_triggers(const char *qname, bool on)
{
	run_internal(psprintf(on ? "ALTER TABLE %s ENABLE ALWAYS TRIGGER " DR_CAPTURE_TRIGGER
	                           ", ENABLE ALWAYS TRIGGER " DR_TRUNCATE_TRIGGER
	                         : "ALTER TABLE %s DISABLE TRIGGER " DR_CAPTURE_TRIGGER
	                           ", DISABLE TRIGGER " DR_TRUNCATE_TRIGGER,
	                      qname));
}

/*
 * A table's definition (dragonraft.table_definition: one statement a line)
 * in what makes the table (its sequences and CREATE TABLE) and what follows
 * the rows (constraints, indexes, sequence ownership, replica identity).
 */
static void split_definition(const char *def, char **pre, char **post)
{
	StringInfoData a, b;
	const char *p = def;

	initStringInfo(&a);
	initStringInfo(&b);
	while (*p != '\0') {
		const char *end = strstr(p, ";\n");
		size_t n = end != NULL ? (size_t)(end - p) + 2 : strlen(p);
		bool first = strncmp(p, "CREATE SEQUENCE ", 16) == 0 ||
		             strncmp(p, "CREATE TABLE ", 13) == 0;

		appendBinaryStringInfo(first ? &a : &b, p, n);
		p += n;
	}
	*pre = a.data;
	*post = b.data;
}

/* One table: its meta section has been read; its rows come next.  Returns its id. */
static uint64 load_table(uint64 group_id, const char *meta, uint64 len)
{
	const char *end = meta + len;
	const char *schema, *name, *def, *seqs;
	char *qname;
	uint64 table_id = 0, rows_len, g, tid;
	Oid nsp, relid;
	bool replicated_here = false, same;
	char *pre, *post = "";

	if (len < 8 + 4)
		corrupt("a table section is too short");
	for (int i = 0; i < 8; i++)
		table_id |= (uint64)(uint8)meta[i] << (8 * i);
	schema = meta + 8;
	name = schema + strnlen(schema, end - schema) + 1;
	def = name < end ? name + strnlen(name, end - name) + 1 : end;
	seqs = def < end ? def + strnlen(def, end - def) + 1 : end;
	if (seqs >= end || seqs + strnlen(seqs, end - seqs) + 1 != end)
		corrupt("a table section is malformed");
	if (get32() != DR_SNAP_ROWS || get32() != 0)
		corrupt("a table's rows are missing");
	rows_len = get64();

	qname = quote_qualified_identifier(schema, name);
	nsp = get_namespace_oid(schema, true);
	relid = OidIsValid(nsp) ? get_relname_relid(name, nsp) : InvalidOid;
	if (OidIsValid(relid)) {
		Relation rel = table_open(relid, AccessExclusiveLock);

		replicated_here = dr_capture_rel_replicated(rel, &g, &tid);
		table_close(rel, NoLock);
		if (replicated_here && g != group_id)
			ereport(ERROR,
			        (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			         errmsg("table %s of the snapshot of group %llu is replicated "
			                "by group %llu here",
			                qname, (unsigned long long)group_id,
			                (unsigned long long)g)));
		same = strcmp(dr_sql_tables_definition(relid), def) == 0;
		if (replicated_here && (tid != table_id || !same)) {
			/* Dropped and made again, or changed, by commands whose entries this
			 * member missed: the group's table replaces it. */
			ereport(LOG,
			        (errmsg("dragonraft replaces table %s by the one in the snapshot "
			                "of group %llu",
			                qname, (unsigned long long)group_id)));
			run_internal(psprintf("DROP TABLE %s", qname));
			relid = InvalidOid;
			replicated_here = false;
		} else if (!replicated_here) {
			if (!same)
				ereport(ERROR,
				        (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				         errmsg("table %s exists here with a definition other than "
				                "the one in the snapshot of group %llu",
				                qname, (unsigned long long)group_id),
				         errhint("Drop it on this node.")));
			if (SPI_execute(psprintf("SELECT 1 FROM %s LIMIT 1", qname), true, 1) !=
			            SPI_OK_SELECT ||
			    SPI_processed > 0)
				ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				                errmsg("table %s has rows here; it must be empty "
				                       "to join group "
				                       "%llu",
				                       qname, (unsigned long long)group_id)));
		} else {
			our_triggers(qname, false);
			run(psprintf("TRUNCATE ONLY %s", qname));
		}
	}
	if (!OidIsValid(relid)) {
		split_definition(def, &pre, &post);
		run_internal(pre);
		relid = OidIsValid(nsp = get_namespace_oid(schema, true))
		                ? get_relname_relid(name, nsp)
		                : InvalidOid;
		if (!OidIsValid(relid))
			ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
			                errmsg("the definition of %s in the snapshot made no such "
			                       "table",
			                       qname)));
	}
	CommandCounterIncrement();
	copy_in(relid, rows_len);
	if (post[0] != '\0')
		run_internal(post); /* its indexes: built once, faster than row by row */
	if (seqs[0] != '\0')
		run(seqs);
	if (replicated_here)
		our_triggers(qname, true);
	else
		dr_sql_tables_install(relid, group_id, table_id);
	CommandCounterIncrement();
	return table_id;
}

/* Replace the group's rows of a catalog table by the section's. */
static void load_catalog(uint64 group_id, const char *table, uint64 len)
{
	Oid types[1] = {INT8OID};
	Datum values[1] = {Int64GetDatum((int64)group_id)};
	List *names = list_make2(makeString("dragonraft"), makeString((char *)table));
	Oid relid = RangeVarGetRelid(makeRangeVarFromNameList(names), RowExclusiveLock, false);

	if (SPI_execute_with_args(psprintf("DELETE FROM dragonraft.%s WHERE group_id = $1", table),
	                          1, types, values, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "dragonraft could not clear dragonraft.%s", table);
	copy_in(relid, len);
	CommandCounterIncrement();
}

/* Tables of the group here that the snapshot does not have: dropped in its history. */
static void drop_others(uint64 group_id, const uint64 *loaded, uint32 n_loaded)
{
	Oid types[1] = {INT8OID};
	Datum values[1] = {Int64GetDatum((int64)group_id)};
	SPITupleTable *tt;
	uint64 n;

	if (SPI_execute_with_args("SELECT table_id, relid FROM dragonraft.replicated_tables "
	                          "WHERE group_id = $1",
	                          1, types, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "dragonraft could not list the tables of group %llu",
		     (unsigned long long)group_id);
	tt = SPI_tuptable;
	n = SPI_processed;
	for (uint64 i = 0; i < n; i++) {
		bool isnull, keep = false;
		uint64 tid =
		        (uint64)DatumGetInt64(SPI_getbinval(tt->vals[i], tt->tupdesc, 1, &isnull));
		Datum d = SPI_getbinval(tt->vals[i], tt->tupdesc, 2, &isnull);
		Oid relid = isnull ? InvalidOid : DatumGetObjectId(d);
		Oid dtypes[2] = {INT8OID, INT8OID};
		Datum dvalues[2] = {Int64GetDatum((int64)group_id), Int64GetDatum((int64)tid)};

		for (uint32 k = 0; k < n_loaded && !keep; k++)
			keep = loaded[k] == tid;
		if (keep)
			continue;
		if (OidIsValid(relid) && get_rel_name(relid) != NULL) {
			char *qname = quote_qualified_identifier(
			        get_namespace_name(get_rel_namespace(relid)), get_rel_name(relid));

			ereport(LOG,
			        (errmsg("dragonraft drops table %s: the snapshot of group %llu "
			                "does not have it",
			                qname, (unsigned long long)group_id)));
			run_internal(psprintf("DROP TABLE %s", qname));
		}
		if (SPI_execute_with_args("DELETE FROM dragonraft.replicated_tables "
		                          "WHERE group_id = $1 AND table_id = $2",
		                          2, dtypes, dvalues, NULL, false, 0) != SPI_OK_DELETE)
			elog(ERROR, "dragonraft could not update dragonraft.replicated_tables");
	}
}

static uint64 load(uint64 group_id, uint64 index, const char *path)
{
	struct stat st;
	uint32 tables, done = 0;
	uint64 *loaded;
	uint64 schema_index = 0;
	Oid types[1] = {INT8OID};
	Datum values[1] = {Int64GetDatum((int64)group_id)};

	L.in = AllocateFile(path, PG_BINARY_R);
	if (L.in == NULL || fstat(fileno(L.in), &st) != 0)
		ereport(ERROR, (errcode_for_file_access(),
		                errmsg("could not open snapshot file \"%s\": %m", path)));
	if (L.job != NULL) {
		SpinLockAcquire(&L.job->mutex);
		L.job->bytes_total = (uint64)st.st_size;
		L.job->index = index;
		SpinLockRelease(&L.job->mutex);
	}
	tables = verify(group_id, index, (uint64)st.st_size);
	L.verified = GetCurrentTimestamp();
	if (L.job != NULL) {
		SpinLockAcquire(&L.job->mutex);
		L.job->tables_total = tables;
		SpinLockRelease(&L.job->mutex);
	}
	progress(DR_SNAP_LOADING, 0);
	loaded = palloc(sizeof(uint64) * Max(tables, 1));
	while (L.done < (uint64)st.st_size - DR_SNAP_TRAILER_BYTES) {
		uint32 kind = get32();
		uint64 len;

		(void)get32();
		len = get64();
		if (len > (uint64)st.st_size - L.done)
			corrupt("a section runs past the end");
		if (kind == DR_SNAP_TABLE) {
			char *meta;

			if (len > MaxAllocSize || done >= tables)
				corrupt("a table section is too long, or one too many");
			meta = palloc(len);
			get(meta, len);
			loaded[done] = load_table(group_id, meta, len);
			pfree(meta);
			progress(DR_SNAP_LOADING, ++done);
			if (done == 1)
				dr_snapshot_testing_pause();
		} else if (kind == DR_SNAP_HISTORY)
			load_catalog(group_id, "ddl_history", len);
		else if (kind == DR_SNAP_MEMBERS)
			load_catalog(group_id, "member_info", len);
		else
			corrupt("unknown section");
	}
	if (done != tables)
		corrupt("it holds fewer tables than its header says");
	drop_others(group_id, loaded, done);
	if (SPI_execute_with_args("SELECT max(index) FROM dragonraft.ddl_history "
	                          "WHERE group_id = $1",
	                          1, types, values, NULL, true, 1) == SPI_OK_SELECT &&
	    SPI_processed == 1) {
		bool isnull;
		Datum d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
			schema_index = (uint64)DatumGetInt64(d);
	}
	L.tables = tables;
	L.size = (uint64)st.st_size;
	return schema_index;
}

void dr_snapshot_log_loaded(void)
{
	ereport(LOG, (errmsg("dragonraft loaded the snapshot of group %llu at entry %llu: %u "
	                     "tables, %llu bytes in %ld ms (checksum %ld ms; CPU %ld ms)",
	                     (unsigned long long)L.group_id, (unsigned long long)L.index, L.tables,
	                     (unsigned long long)L.size,
	                     (long)((GetCurrentTimestamp() - L.start) / 1000),
	                     (long)((L.verified - L.start) / 1000), dr_snapshot_cpu_ms() - L.cpu)));
}

uint64 dr_snapshot_load(uint64 group_id, uint64 index, const char *path)
{
	int job = dr_snapshot_job_alloc(group_id, DR_SNAP_RECEIVER);
	volatile uint64 schema_index;

	memset(&L, 0, sizeof(L));
	L.path = path;
	L.group_id = group_id;
	L.index = index;
	L.start = GetCurrentTimestamp();
	L.cpu = dr_snapshot_cpu_ms();
	L.job = job >= 0 ? dr_snapshot_job(job) : NULL;
	if (L.job != NULL) {
		SpinLockAcquire(&L.job->mutex);
		L.job->pid = MyProcPid;
		strlcpy(L.job->path, path, sizeof(L.job->path));
		SpinLockRelease(&L.job->mutex);
	}
	PG_TRY();
	{
		schema_index = load(group_id, index, path);
	}
	PG_FINALLY();
	{
		if (L.in != NULL)
			FreeFile(L.in);
		L.in = NULL;
		if (job >= 0)
			dr_snapshot_job_free(job);
	}
	PG_END_TRY();
	return schema_index;
}
