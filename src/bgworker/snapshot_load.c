/*
 * snapshot_load.c - the load of a received full snapshot (snapshot.h), by
 * a loader that the apply worker starts, in one transaction that also sets
 * the group's origin to the snapshot's index (apply_worker.c): the checksum first (a bad file is an
 * error before anything changes), then the tables' sections are read and
 * every table's fate decided before anything changes: made from the
 * definition it carries if it does not exist here, kept (a table of the
 * group here that is alike), replaced (one of the group that differs, or
 * that references a replaced one), or adopted (an existing table that is not
 * the group's must be empty and alike).  Replaced tables, and tables of the
 * group here that the snapshot lacks or has under another name (dropped or
 * renamed by a command whose entry was compacted), are dropped in one
 * statement (a foreign key from a table
 * outside the group into one that is dropped or truncated, or a view on one
 * that is dropped, is an error naming it); a relation here that has the
 * name of one that a table to be made makes is an error naming it.  The
 * group's history is loaded, and what its commands that this node lacks
 * (those above its own history: all on a bare node; and those of it that
 * failed here and ran where the snapshot was made) did besides changing the
 * group's tables and rows runs here again, verbatim and in log order (a
 * failure is an error naming the command; a statement that needs a table of
 * the group runs once the tables are made); the tables' fates are decided
 * again after it.  Then per table: made if needed (and given its owner at
 * once, with the sequences it makes: what its owner's code does on its rows,
 * index expressions, checks, triggers, runs as the owner, never as this
 * superuser), or truncated right
 * before its rows with the kept tables foreign keys link it to (TRUNCATE
 * allows nothing else), filled with its rows (snapshot_rows.c: inserted
 * frozen, no trigger fired, a kept table's indexes rebuilt after them;
 * binary COPY FREEZE for a table with stored generated columns;
 * dragonraft's triggers off meanwhile, in this transaction only; foreign
 * keys are not checked: session_replication_role is replica), its indexes
 * built, its owned sequences set.  Once every table is loaded, the
 * tables made get their foreign keys (these and their CHECK constraints go
 * in NOT VALID and are then marked valid: the rows are the leader's), the
 * statements set aside run, then the tables made get their privileges
 * (their sequences' too), policies, triggers and comments; then the group's
 * member info is replaced.  The
 * relations that the group's commands made and that are not its tables
 * (DR_SNAP_PLAIN: views, sequences, plain tables) are kept when alike, or
 * dropped with the tables (plain_clear) and made again: the sequences
 * before the tables, the views and plain tables once the tables are loaded
 * (plain_make); dragonraft.made_relations then lists them.  A crash
 * leaves everything as it was; the engine receives the snapshot again.
 */
#include "snapshot.h"

#include <sys/stat.h>

#include "access/htup_details.h"
#include "access/table.h"
#include "access/twophase.h"
#include "access/xact.h"
#include "catalog/catalog.h"
#include "catalog/dependency.h"
#include "catalog/index.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_enum.h"
#include "catalog/pg_type.h"
#include "commands/copy.h"
#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parser.h"
#include "parser/parse_relation.h"
#include "parser/parse_type.h"
#include "port/pg_crc32c.h"
#include "storage/fd.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/regproc.h"
#include "utils/rel.h"
#include "utils/resowner.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "write.h"

static struct {
	FILE *in;
	const char *path;
	uint64 left; /* bytes of the section COPY reads */
	DrSnapJob *job;
	uint64 done; /* the file position */
	/*
	 * The bytes read in this phase, the progress shown (bytes_done): the load
	 * reads the sections out of the file's order (the history, which follows the
	 * tables, first), so the position went back and forth, and join_group's NOTICE
	 * said 14148, then 13874 of 14411 bytes (review 47).  A load reads each
	 * byte once (the trailer not at all), so this only grows.
	 */
	uint64 read;
	/* for dr_snapshot_log_loaded() */
	uint64 group_id, index, size, schema_index;
	uint32 tables;
	TimestampTz start, verified;
	long cpu;
	uint64 skipped; /* the command whose failing statements the load leaves out (0: none) */
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
	L.read += n;
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
	L.job->bytes_done = L.read;
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

/* What the rows' on-disk form depends on (snapshot.h) must be the same here. */
static void check_platform(void)
{
	uint8 file[DR_SNAP_HEADER_BYTES - 32], here[DR_SNAP_HEADER_BYTES - 32];
	char *what[2];

	get(file, sizeof(file));
	dr_snapshot_platform(here);
	if (memcmp(file, here, sizeof(file)) == 0)
		return;
	for (int i = 0; i < 2; i++) {
		const uint8 *p = i == 0 ? file : here;

		what[i] = psprintf("PostgreSQL %u (catalog version %u), MAXALIGN %d, "
		                   "FLOAT8PASSBYVAL %d, %s-endian, %d-byte Datum, encoding %s",
		                   (p[0] | p[1] << 8 | p[2] << 16 | (uint32)p[3] << 24) / 100,
		                   p[4] | p[5] << 8 | p[6] << 16 | (uint32)p[7] << 24, p[8], p[9],
		                   p[10] ? "big" : "little", p[11],
		                   pg_encoding_to_char(p[12] | p[13] << 8 | p[14] << 16 |
		                                       (uint32)p[15] << 24));
	}
	ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
	                errmsg("snapshot file \"%s\" was made by a server unlike this one", L.path),
	                errdetail("The file's rows are for %s; this server has %s. Nothing of it "
	                          "was loaded.",
	                          what[0], what[1]),
	                errhint("Run the same PostgreSQL major version on the same platform, "
	                        "with the same database encoding, on every member.")));
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
	L.read = 0; /* the load's own count starts */
	get(magic, 8);
	if (memcmp(magic, DR_SNAP_MAGIC, 8) != 0)
		corrupt(memcmp(magic, "DRSNAP", 6) == 0
		                ? psprintf("its format is %.8s, and this server reads %s only "
		                           "(every "
		                           "member must run the same build)",
		                           magic, DR_SNAP_MAGIC)
		                : "not a dragonraft snapshot");
	if (get64() != group_id || get64() != index)
		corrupt("it is not the snapshot of this group and index");
	tables = get32();
	(void)get32();
	check_platform();
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
		L.job->bytes_done = L.read;
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
	DrUserContext uc;

	/* A table made or truncated by this load: its rows go in frozen and all-visible, so
	 * that the first reads and vacuum here do not write every page again. */
	if (rel->rd_createSubid == GetCurrentSubTransactionId() ||
	    rel->rd_newRelfilenodeSubid == GetCurrentSubTransactionId())
		options = lappend(options, makeDefElem("freeze", (Node *)makeBoolean(true), -1));
	(void)addRangeTableEntryForRelation(pstate, rel, RowExclusiveLock, NULL, false, false);
	L.left = len;
	dr_as_owner_begin(rel, true, &uc); /* its triggers, checks, index expressions */
	cstate = BeginCopyFrom(pstate, rel, NULL, NULL, false, copy_source, NIL, options);
	(void)CopyFrom(cstate);
	EndCopyFrom(cstate);
	dr_user_context_end(&uc);
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

/* The statement as the command spells it; a schema without what it creates inside. */
static char *statement_sql(const char *command, RawStmt *raw)
{
	CreateSchemaStmt *cs = (CreateSchemaStmt *)raw->stmt;

	if (IsA(raw->stmt, CreateSchemaStmt) && cs->schemaElts != NIL) {
		const char *name =
		        cs->schemaname != NULL ? cs->schemaname : get_rolespec_name(cs->authrole);

		return psprintf("CREATE SCHEMA %s%s%s", quote_identifier(name),
		                cs->authrole != NULL ? " AUTHORIZATION " : "",
		                cs->authrole != NULL
		                        ? quote_identifier(get_rolespec_name(cs->authrole))
		                        : "");
	}
	return raw->stmt_len > 0 ? pnstrdup(command + raw->stmt_location, raw->stmt_len)
	                         : pstrdup(command + raw->stmt_location);
}

/* The constraint an ALTER TABLE ... ADD CONSTRAINT of a definition adds, or NULL. */
static Constraint *added_constraint(Node *stmt)
{
	AlterTableCmd *cmd;

	if (!IsA(stmt, AlterTableStmt) || list_length(((AlterTableStmt *)stmt)->cmds) != 1)
		return NULL;
	cmd = linitial(((AlterTableStmt *)stmt)->cmds);
	return cmd->subtype == AT_AddConstraint ? (Constraint *)cmd->def : NULL;
}

/*
 * A table's definition (dragonraft.table_definition), statement by
 * statement as the parser splits it (a literal may hold ";" and a newline),
 * in what makes the table (its sequences and CREATE TABLE), what follows its
 * rows (constraints, indexes, sequence ownership, replica identity) and its
 * foreign keys, added once every table of the snapshot is made and loaded.
 * Its valid CHECK constraints and foreign keys are added NOT VALID, their
 * names in *unchecked, and marked valid afterwards (mark_validated): the rows
 * are the leader's, which met them, and validating them here would run the
 * functions of their owner (a CHECK's, a key's operators) as this superuser.
 */
static void split_definition(const char *def, char **pre, char **post, char **fks, List **unchecked)
{
	StringInfoData part[3];
	ListCell *lc;

	for (int i = 0; i < 3; i++)
		initStringInfo(&part[i]);
	foreach (lc, dr_parse_command(def)) {
		RawStmt *raw = lfirst_node(RawStmt, lc);
		Constraint *con = added_constraint(raw->stmt);
		int i = 1;
		bool trusted = con != NULL && !con->skip_validation &&
		               (con->contype == CONSTR_CHECK || con->contype == CONSTR_FOREIGN);

		if (IsA(raw->stmt, CreateSeqStmt) || IsA(raw->stmt, CreateStmt))
			i = 0;
		else if (con != NULL && con->contype == CONSTR_FOREIGN)
			i = 2;
		appendStringInfo(&part[i], "%s%s;\n", statement_sql(def, raw),
		                 trusted ? " NOT VALID" : "");
		if (trusted)
			*unchecked = lappend(*unchecked, con->conname);
	}
	*pre = part[0].data;
	*post = part[1].data;
	*fks = part[2].data;
}

/* What the load does with a table of the snapshot. */
typedef enum Fate {
	FATE_CREATE,  /* not here: made from its definition */
	FATE_REPLACE, /* the group's here, but another or changed: dropped, then made */
	FATE_KEEP,    /* the group's here and alike: truncated */
	FATE_ADOPT,   /* here, not the group's, alike and empty: it joins the group */
} Fate;

typedef struct LoadTable {
	uint64 table_id;
	const char *schema, *name, *def, *seqs, *extras;
	char *qname;
	uint64 rows_at, rows_len; /* its rows section's bytes in the file */
	Oid relid;
	Fate fate;
	bool truncated;  /* kept or adopted: truncated by now */
	char *fks;       /* a table made by the load: its foreign keys, added last */
	List *unchecked; /* and the names of its constraints added NOT VALID */
} LoadTable;

/*
 * A relation that the group's commands made and that is not one of its
 * tables (a DR_SNAP_PLAIN section): a view, a sequence or a table, or, with
 * an empty definition, one that snapshots do not carry (extras then says
 * what it is).
 */
typedef struct LoadPlain {
	uint64 index; /* the command that made it */
	char kind;    /* its relkind */
	const char *schema, *name, *def, *seqs, *extras;
	char *qname;
	bool made; /* made by this load */
} LoadPlain;

/* Where the file's sections are. */
typedef struct Contents {
	LoadTable *t;
	uint32 n;
	uint64 history_at, history_len, members_at, members_len;
	List *plain; /* LoadPlain, in the order the group's commands made them */
	/* DR_SNAP_LOCALE: the exporter and its database's locale */
	uint32 exporter;
	char provider;
	const char *collate, *ctype, *icu_locale; /* icu_locale NULL: none */
} Contents;

static void seek_to(uint64 at)
{
	if (fseeko(L.in, (off_t)at, SEEK_SET) != 0)
		corrupt("seek failed");
	L.done = at;
}

/* A table section: its id, then schema, name, definition, sequences' SQL and extras. */
static void parse_table(LoadTable *t, const char *meta, uint64 len)
{
	const char *end = meta + len;

	if (len < 8 + 4)
		corrupt("a table section is too short");
	t->table_id = 0;
	for (int i = 0; i < 8; i++)
		t->table_id |= (uint64)(uint8)meta[i] << (8 * i);
	t->schema = meta + 8;
	t->name = t->schema + strnlen(t->schema, end - t->schema) + 1;
	t->def = t->name < end ? t->name + strnlen(t->name, end - t->name) + 1 : end;
	t->seqs = t->def < end ? t->def + strnlen(t->def, end - t->def) + 1 : end;
	t->extras = t->seqs < end ? t->seqs + strnlen(t->seqs, end - t->seqs) + 1 : end;
	if (t->extras >= end || t->extras + strnlen(t->extras, end - t->extras) + 1 != end)
		corrupt("a table section is malformed");
	t->qname = quote_qualified_identifier(t->schema, t->name);
}

/* A plain relation's section: the command's index, its kind, then schema, name,
 * definition, sequences' SQL and extras. */
static LoadPlain *parse_plain(const char *meta, uint64 len)
{
	const char *end = meta + len;
	LoadPlain *p = palloc0(sizeof(LoadPlain));

	if (len < 8 + 1 + 5)
		corrupt("a relation's section is too short");
	for (int i = 0; i < 8; i++)
		p->index |= (uint64)(uint8)meta[i] << (8 * i);
	p->kind = meta[8];
	p->schema = meta + 9;
	p->name = p->schema + strnlen(p->schema, end - p->schema) + 1;
	p->def = p->name < end ? p->name + strnlen(p->name, end - p->name) + 1 : end;
	p->seqs = p->def < end ? p->def + strnlen(p->def, end - p->def) + 1 : end;
	p->extras = p->seqs < end ? p->seqs + strnlen(p->seqs, end - p->seqs) + 1 : end;
	if (p->extras >= end || p->extras + strnlen(p->extras, end - p->extras) + 1 != end ||
	    p->schema[0] == '\0' || p->name[0] == '\0' ||
	    (p->def[0] != '\0' && p->kind != RELKIND_VIEW && p->kind != RELKIND_SEQUENCE &&
	     p->kind != RELKIND_RELATION))
		corrupt("a relation's section is malformed");
	p->qname = quote_qualified_identifier(p->schema, p->name);
	return p;
}

/* The NUL-terminated string at *p, before end; *p moves past it. */
static const char *take_string(const char **p, const char *end)
{
	const char *s = *p;
	size_t n = strnlen(s, end - s);

	if (n == (size_t)(end - s))
		corrupt("its locale section is malformed");
	*p = s + n + 1;
	return s;
}

/* The exporter's node id and locale: provider, then collate, ctype and ICU
 * locale, each NUL-terminated. */
static void parse_locale(Contents *c, const char *meta, uint64 len)
{
	const char *end = meta + len, *p = meta + 5;

	if (len < 4 + 1 + 3)
		corrupt("its locale section is too short");
	for (int i = 0; i < 4; i++)
		c->exporter |= (uint32)(uint8)meta[i] << (8 * i);
	c->provider = meta[4];
	c->collate = take_string(&p, end);
	c->ctype = take_string(&p, end);
	c->icu_locale = take_string(&p, end);
	if (p != end)
		corrupt("its locale section is malformed");
	if (c->icu_locale[0] == '\0')
		c->icu_locale = NULL;
}

/*
 * A snapshot's tables were filled by members of the exporter's locale: a
 * member whose database has another computes their generated columns and
 * CHECKs on text otherwise (upper() of 'é' under LC_CTYPE "C"), and diverges
 * silently once it applies the rows that follow (a node that joined the
 * group after its tables came: the gate, sql_groups.c, could not see it).
 * Refused before anything is loaded, as another encoding is.
 */
static void check_locale(uint64 group_id, const Contents *c)
{
	char *detail;

	if (c->n == 0)
		return; /* nothing computed with the locale */
	detail = dr_locale_differs(c->exporter, GetDatabaseEncodingName(), c->collate, c->ctype,
	                           dr_locale_provider_name(c->provider), c->icu_locale);
	if (detail == NULL)
		return;
	ereport(ERROR,
	        (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
	         errmsg("snapshot file \"%s\" of group %llu was made by node %u with a database "
	                "of another locale than database \"%s\" of node %d",
	                L.path, (unsigned long long)group_id, c->exporter, dr_database, dr_node_id),
	         errdetail("%s  Nothing of it was loaded: this member would compute its tables' "
	                   "generated columns and CHECKs otherwise.",
	                   detail),
	         errhint("%s", dr_locale_rejoin_hint(group_id))));
}

/* Read the tables' sections and note where every section's bytes are. */
static void scan(Contents *c, uint32 tables, uint64 end)
{
	bool history = false, members = false, locale = false;

	c->t = palloc0(sizeof(LoadTable) * Max(tables, 1));
	while (L.done < end) {
		uint32 kind = get32();
		uint64 len;

		(void)get32();
		len = get64();
		if (len > end - L.done)
			corrupt("a section runs past the end");
		if (kind == DR_SNAP_TABLE) {
			LoadTable *t;
			char *meta;

			if (len > MaxAllocSize || c->n >= tables)
				corrupt("a table section is too long, or one too many");
			t = &c->t[c->n++];
			meta = palloc(len);
			get(meta, len);
			parse_table(t, meta, len);
			if (end - L.done < DR_SNAP_SECTION_BYTES || get32() != DR_SNAP_ROWS ||
			    get32() != 0)
				corrupt("a table's rows are missing");
			t->rows_len = get64();
			if (t->rows_len > end - L.done)
				corrupt("a section runs past the end");
			t->rows_at = L.done;
			seek_to(L.done + t->rows_len);
		} else if (kind == DR_SNAP_PLAIN) {
			char *meta;

			if (len > MaxAllocSize)
				corrupt("a relation's section is too long");
			meta = palloc(len);
			get(meta, len);
			c->plain = lappend(c->plain, parse_plain(meta, len));
		} else if (kind == DR_SNAP_LOCALE) {
			char *meta;

			if (len > 4096 || locale)
				corrupt("its locale section is too long, or one too many");
			meta = palloc(len);
			get(meta, len);
			parse_locale(c, meta, len);
			locale = true;
		} else if (kind == DR_SNAP_HISTORY || kind == DR_SNAP_MEMBERS) {
			if (kind == DR_SNAP_HISTORY) {
				c->history_at = L.done;
				c->history_len = len;
				history = true;
			} else {
				c->members_at = L.done;
				c->members_len = len;
				members = true;
			}
			seek_to(L.done + len);
		} else
			corrupt("unknown section");
	}
	if (c->n != tables)
		corrupt("it holds fewer tables than its header says");
	if (!history || !members || !locale)
		corrupt("its history, member info or locale is missing");
}

/* Run sql, statements of extras; an error says what could not get them. */
static void give(const char *sql, const char *extras, const char *what)
{
	MemoryContext cxt = CurrentMemoryContext;

	PG_TRY();
	{
		run_internal(sql);
	}
	PG_CATCH();
	{
		ErrorData *ed;

		MemoryContextSwitchTo(cxt);
		ed = CopyErrorData();
		FlushErrorState();
		ereport(ERROR,
		        (errcode(ed->sqlerrcode),
		         errmsg("%s could not get its owner, privileges, row level security, "
		                "policies, triggers or comments here: %s",
		                what, ed->message),
		         errdetail("On the leader it has \"%s\".", extras),
		         errhint("Create what is missing on this node (a role, say); it is "
		                 "tried again.")));
	}
	PG_END_TRY();
}

/* The owner's name that extras gives (its first statement). */
static const char *extras_owner(const char *extras, const char *what)
{
	List *stmts = dr_parse_command(extras);
	RawStmt *first = stmts != NIL ? linitial_node(RawStmt, stmts) : NULL;
	AlterTableStmt *at = first != NULL && IsA(first->stmt, AlterTableStmt)
	                             ? (AlterTableStmt *)first->stmt
	                             : NULL;
	AlterTableCmd *cmd = at != NULL && list_length(at->cmds) == 1 ? linitial(at->cmds) : NULL;

	if (cmd == NULL || cmd->subtype != AT_ChangeOwner ||
	    cmd->newowner->roletype != ROLESPEC_CSTRING)
		ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
		                errmsg("what %s has besides its definition does not begin with its "
		                       "owner",
		                       what),
		                errdetail("It is \"%s\".", extras)));
	return cmd->newowner->rolename;
}

/*
 * Become, for what makes table qname (CREATE SEQUENCE, CREATE TABLE), the
 * owner that extras names, when def has a stored generated column:
 * PostgreSQL runs the constant calls of IMMUTABLE functions in its
 * expression while it makes the table, as whoever makes it.  Only when that
 * role exists here and may create in the table's schema; else (a role
 * missing here, which dr_snapshot_give_owner then names; one that lost
 * CREATE there since) this superuser makes it, as one must have on the
 * leader then.  False: nothing changed.
 */
static bool as_maker_begin(const char *qname, const char *def, const char *extras, const char *what,
                           DrUserContext *uc)
{
	bool generated = false;
	RangeVar *rv = makeRangeVarFromNameList(stringToQualifiedNameList(qname));
	Oid nsp = rv->schemaname != NULL ? get_namespace_oid(rv->schemaname, true) : InvalidOid;
	Oid role;
	ListCell *lc, *col, *con;

	foreach (lc, dr_parse_command(def)) {
		CreateStmt *cs = (CreateStmt *)lfirst_node(RawStmt, lc)->stmt;

		if (IsA(cs, CreateStmt))
			foreach (col, cs->tableElts)
				if (IsA(lfirst(col), ColumnDef))
					foreach (con, ((ColumnDef *)lfirst(col))->constraints)
						generated |= ((Constraint *)lfirst(con))->contype ==
						             CONSTR_GENERATED;
	}
	if (!generated || extras == NULL)
		return false;
	role = get_role_oid(extras_owner(extras, what), true);
	if (!OidIsValid(role) || !OidIsValid(nsp) ||
	    pg_namespace_aclcheck(nsp, role, ACL_CREATE) != ACLCHECK_OK)
		return false;
	GetUserIdAndSecContext(&uc->user, &uc->sec);
	uc->nest = -1;
	SetUserIdAndSecContext(role, uc->sec | SECURITY_LOCAL_USERID_CHANGE |
	                                     SECURITY_RESTRICTED_OPERATION);
	return true;
}

void dr_snapshot_give_owner(const char *qname, const char *def, const char *extras,
                            const char *what)
{
	const char *owner = quote_identifier(extras_owner(extras, what));
	StringInfoData sql;
	ListCell *lc;

	initStringInfo(&sql);
	appendStringInfo(&sql, "ALTER TABLE %s OWNER TO %s;", qname, owner);
	/* (not yet owned by the table when made before it: ALTER TABLE misses them) */
	foreach (lc, dr_parse_command(def)) {
		CreateSeqStmt *cs = (CreateSeqStmt *)lfirst_node(RawStmt, lc)->stmt;

		if (IsA(cs, CreateSeqStmt))
			appendStringInfo(
			        &sql, "\nALTER SEQUENCE %s OWNER TO %s;",
			        cs->sequence->schemaname != NULL
			                ? quote_qualified_identifier(cs->sequence->schemaname,
			                                             cs->sequence->relname)
			                : quote_identifier(cs->sequence->relname),
			        owner);
	}
	give(sql.data, extras, what);
	CommandCounterIncrement();
}

/*
 * Give table qname, just made from its definition, what it has besides it
 * (extras, DR_SNAP_EXTRAS): its privileges are those the extras grant, none
 * else (the default privileges here gave it and its sequences more: review
 * 9).  A role it names that does not exist here is an error naming what
 * (the table, as an error says it).
 */
void dr_snapshot_give_extras(const char *qname, const char *extras, const char *what)
{
	Oid types[1] = {TEXTOID};
	Datum values[1] = {CStringGetTextDatum(qname)};

	if (SPI_execute_with_args(
	            "UPDATE pg_catalog.pg_class SET relacl = NULL WHERE oid = $1::regclass "
	            "OR oid IN (SELECT d.objid FROM pg_catalog.pg_depend d "
	            "JOIN pg_catalog.pg_class s ON s.oid = d.objid AND s.relkind = 'S' "
	            "WHERE d.classid = 'pg_catalog.pg_class'::regclass "
	            "AND d.refclassid = 'pg_catalog.pg_class'::regclass "
	            "AND d.refobjid = $1::regclass AND d.deptype IN ('a', 'i'))",
	            1, types, values, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "dragonraft could not reset the privileges of %s", qname);
	CommandCounterIncrement();
	give(extras, extras, what);
}

static char *relname(Oid relid)
{
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
	                                  get_rel_name(relid));
}

static void name_taken(uint64 group_id, const LoadTable *t, const char *what)
        pg_attribute_noreturn();

/* what (a relation or type here) has a name that table t of the snapshot needs. */
static void name_taken(uint64 group_id, const LoadTable *t, const char *what)
{
	ereport(ERROR,
	        (errcode(ERRCODE_DUPLICATE_OBJECT),
	         errmsg("%s here has a name that table %s of the snapshot of group %llu "
	                "needs",
	                what, t->qname, (unsigned long long)group_id),
	         errdetail("Nothing of the snapshot was loaded."),
	         errhint("Rename or drop the %s on this node: the load is tried again.", what)));
}

/* A relation here, for an error: its kind and name (and an index's table). */
static char *describe_relation(Oid relid)
{
	switch (get_rel_relkind(relid)) {
	case RELKIND_RELATION:
		return psprintf("table %s", relname(relid));
	case RELKIND_INDEX:
	case RELKIND_PARTITIONED_INDEX:
		return psprintf("index %s of table %s", relname(relid),
		                relname(IndexGetRelation(relid, false)));
	case RELKIND_SEQUENCE:
		return psprintf("sequence %s", relname(relid));
	case RELKIND_VIEW:
		return psprintf("view %s", relname(relid));
	case RELKIND_MATVIEW:
		return psprintf("materialized view %s", relname(relid));
	default:
		return psprintf("relation %s", relname(relid));
	}
}

/*
 * The relations that the tables the load makes make (themselves, their
 * sequences, the indexes of their constraints and their other indexes) and
 * their row types: one here that has such a name is an error before any of
 * them is made.  (Checked after the drops, which free the names of the
 * tables replaced; an error rolls them back.)
 */
static void check_names(uint64 group_id, const Contents *c)
{
	for (uint32 i = 0; i < c->n; i++) {
		const LoadTable *t = &c->t[i];
		ListCell *lc;

		if (t->fate != FATE_CREATE && t->fate != FATE_REPLACE)
			continue;
		foreach (lc, dr_parse_command(t->def)) {
			Node *stmt = lfirst_node(RawStmt, lc)->stmt;
			Constraint *con = added_constraint(stmt);
			RangeVar *rv = NULL;
			const char *name = NULL;
			Oid nsp, relid;

			if (IsA(stmt, CreateSeqStmt))
				rv = ((CreateSeqStmt *)stmt)->sequence;
			else if (IsA(stmt, CreateStmt))
				rv = ((CreateStmt *)stmt)->relation;
			else if (IsA(stmt, IndexStmt)) {
				rv = ((IndexStmt *)stmt)->relation;
				name = ((IndexStmt *)stmt)->idxname;
			} else if (con != NULL && (con->contype == CONSTR_PRIMARY ||
			                           con->contype == CONSTR_UNIQUE ||
			                           con->contype == CONSTR_EXCLUSION)) {
				rv = ((AlterTableStmt *)stmt)->relation;
				name = con->conname;
			}
			if (rv == NULL)
				continue;
			if (name == NULL)
				name = rv->relname;
			nsp = get_namespace_oid(rv->schemaname != NULL ? rv->schemaname : t->schema,
			                        true);
			if (!OidIsValid(nsp) || name == NULL)
				continue; /* (a schema that the history makes) */
			relid = get_relname_relid(name, nsp);
			if (OidIsValid(relid))
				name_taken(group_id, t, describe_relation(relid));
			if (IsA(stmt, CreateStmt) &&
			    OidIsValid(GetSysCacheOid2(TYPENAMENSP, Anum_pg_type_oid,
			                               CStringGetDatum(name),
			                               ObjectIdGetDatum(nsp))))
				name_taken(group_id, t,
				           psprintf("type %s",
				                    quote_qualified_identifier(
				                            get_namespace_name(nsp), name)));
		}
	}
}

/* Whether the table here (if any) is kept, replaced or adopted, or the table is made. */
static void examine(uint64 group_id, LoadTable *t)
{
	Oid nsp = get_namespace_oid(t->schema, true);
	uint64 g, tid;
	bool mine, same;
	Relation rel;

	t->relid = OidIsValid(nsp) ? get_relname_relid(t->name, nsp) : InvalidOid;
	t->fate = FATE_CREATE;
	if (!OidIsValid(t->relid))
		return;
	if (get_rel_relkind(t->relid) != RELKIND_RELATION)
		name_taken(group_id, t, describe_relation(t->relid));
	rel = table_open(t->relid, AccessShareLock); /* TRUNCATE or DROP lock it more */
	mine = dr_capture_rel_replicated(rel, &g, &tid);
	table_close(rel, NoLock);
	if (mine && g != group_id)
		ereport(ERROR,
		        (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		         errmsg("table %s of the snapshot of group %llu is replicated "
		                "by group %llu here",
		                t->qname, (unsigned long long)group_id, (unsigned long long)g)));
	same = strcmp(dr_sql_tables_definition(t->relid), t->def) == 0;
	if (mine) {
		same = same && strcmp(dr_sql_tables_extras(t->relid), t->extras) == 0;
		/* Dropped and made again, or changed, by commands whose entries this member
		 * missed: the group's table replaces it. */
		t->fate = tid == t->table_id && same ? FATE_KEEP : FATE_REPLACE;
		return;
	}
	if (!same)
		ereport(ERROR,
		        (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		         errmsg("table %s exists here with a definition other than the one in the "
		                "snapshot of group %llu",
		                t->qname, (unsigned long long)group_id),
		         errhint("Drop it on this node.")));
	if (dr_table_has_rows(t->relid))
		ereport(ERROR,
		        (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		         errmsg("table %s has rows here; it must be empty to join group %llu",
		                t->qname, (unsigned long long)group_id)));
	if (strcmp(dr_sql_tables_extras(t->relid), t->extras) != 0)
		ereport(ERROR,
		        (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		         errmsg("table %s exists here with an owner, privileges, row level "
		                "security, "
		                "policies, triggers or comments other than in the snapshot of "
		                "group %llu",
		                t->qname, (unsigned long long)group_id),
		         errdetail("The snapshot gives it \"%s\".", t->extras),
		         errhint("Drop it on this node.")));
	t->fate = FATE_ADOPT;
}

/* Whether relid has a foreign key to one of the tables in refs. */
static bool references(Oid relid, List *refs)
{
	Relation rel = table_open(relid, NoLock);
	ListCell *lc;
	bool found = false;

	foreach (lc, RelationGetFKeyList(rel)) {
		ForeignKeyCacheInfo *fk = lfirst(lc);

		found = found || list_member_oid(refs, fk->confrelid);
	}
	table_close(rel, NoLock);
	return found;
}

/* A list of oids as an oid[] parameter. */
static Datum oid_array(List *oids)
{
	Datum *elems = palloc(sizeof(Datum) * Max(list_length(oids), 1));
	int n = 0;
	ListCell *lc;

	foreach (lc, oids)
		elems[n++] = ObjectIdGetDatum(lfirst_oid(lc));
	return PointerGetDatum(construct_array(elems, n, OIDOID, sizeof(Oid), true, TYPALIGN_INT));
}

/*
 * The group's tables here that the load drops or truncates (mine): a foreign
 * key into one of them from a table that is none of them makes the load fail
 * (TRUNCATE and DROP would, less clearly).
 */
static void check_referenced(uint64 group_id, List *mine)
{
	Oid types[1] = {OIDARRAYOID};
	Datum values[1] = {oid_array(mine)};

	if (SPI_execute_with_args("SELECT conrelid, conname::text, confrelid FROM pg_constraint "
	                          "WHERE contype = 'f' AND confrelid = ANY ($1) "
	                          "AND NOT conrelid = ANY ($1) ORDER BY 1, 2 LIMIT 1",
	                          1, types, values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "dragonraft could not read pg_constraint");
	if (SPI_processed > 0) {
		HeapTuple tup = SPI_tuptable->vals[0];
		TupleDesc desc = SPI_tuptable->tupdesc;
		bool isnull;
		Oid from = DatumGetObjectId(SPI_getbinval(tup, desc, 1, &isnull));
		Oid to = DatumGetObjectId(SPI_getbinval(tup, desc, 3, &isnull));

		ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		                errmsg("table %s references table %s of group %llu, whose rows a "
		                       "snapshot replaces here",
		                       relname(from), relname(to), (unsigned long long)group_id),
		                errdetail("Its foreign key %s is not one of group %llu's tables'.",
		                          quote_identifier(SPI_getvalue(tup, desc, 2)),
		                          (unsigned long long)group_id),
		                errhint("Drop that foreign key on this node; the load is tried "
		                        "again.")));
	}
}

/*
 * A view here (or a materialized view) on a table of the group that the load
 * drops is an error naming it: DROP TABLE would fail less clearly, and
 * CASCADE would drop what is not the group's.
 */
static void check_views(uint64 group_id, List *gone)
{
	Oid types[1] = {OIDARRAYOID};
	Datum values[1] = {oid_array(gone)};
	bool isnull;

	if (SPI_execute_with_args("SELECT r.ev_class, d.refobjid FROM pg_depend d "
	                          "JOIN pg_rewrite r ON r.oid = d.objid "
	                          "WHERE d.classid = 'pg_rewrite'::regclass "
	                          "AND d.refclassid = 'pg_class'::regclass "
	                          "AND d.refobjid = ANY ($1) AND NOT r.ev_class = ANY ($1) "
	                          "ORDER BY 1, 2 LIMIT 1",
	                          1, types, values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "dragonraft could not read pg_depend");
	if (SPI_processed == 0)
		return;
	ereport(ERROR,
	        (errcode(ERRCODE_DEPENDENT_OBJECTS_STILL_EXIST),
	         errmsg("%s here depends on table %s of group %llu, which a snapshot replaces "
	                "here",
	                describe_relation(DatumGetObjectId(SPI_getbinval(
	                        SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull))),
	                relname(DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0],
	                                                       SPI_tuptable->tupdesc, 2, &isnull))),
	                (unsigned long long)group_id),
	         errdetail("Nothing of the snapshot was loaded."),
	         errhint("Drop it on this node (and make it again once the snapshot is loaded): "
	                 "the load is tried again.  (A view that a command of the group made "
	                 "here, listed in dragonraft.made_relations, the load drops and makes "
	                 "again itself.)")));
}

/*
 * Drop the relations relids together (one may depend on another), and
 * nothing else: an error if something else depends on one of them.
 */
static void drop_relations(List *relids)
{
	ObjectAddresses *objects = new_object_addresses();
	ListCell *lc;

	foreach (lc, relids) {
		ObjectAddress a = {RelationRelationId, lfirst_oid(lc), 0};

		LockRelationOid(a.objectId, AccessExclusiveLock);
		add_exact_object_address(&a, objects);
	}
	dr_internal_ddl++;
	PG_TRY();
	{
		performMultipleDeletions(objects, DROP_RESTRICT, 0);
	}
	PG_FINALLY();
	{
		dr_internal_ddl--;
	}
	PG_END_TRY();
	free_object_addresses(objects);
	CommandCounterIncrement();
}

/* The oids that query (of $1 and $2, of types type1 and oid[]) returns. */
static List *oids_of(const char *query, Oid type1, Datum arg1, List *oids)
{
	Oid types[2] = {type1, OIDARRAYOID};
	Datum values[2] = {arg1, oid_array(oids)};

	if (SPI_execute_with_args(query, 2, types, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "dragonraft could not run: %s", query);
	return dr_spi_oids();
}

/* The relation named as p is here (InvalidOid: none). */
static Oid plain_here(const LoadPlain *p)
{
	Oid nsp = get_namespace_oid(p->schema, true);

	return OidIsValid(nsp) ? get_relname_relid(p->name, nsp) : InvalidOid;
}

/* Whether relid here has p's definition and extras (as the exporter gives them). */
static bool plain_alike(Oid relid, const LoadPlain *p)
{
	Oid types[1] = {OIDOID};
	Datum values[1] = {ObjectIdGetDatum(relid)};
	char *def, *extras;

	if (get_rel_relkind(relid) != p->kind)
		return false;
	if (SPI_execute_with_args("SELECT dragonraft.plain_definition($1), " DR_SNAP_EXTRAS("$1"),
	                          1, types, values, NULL, false, 1) != SPI_OK_SELECT ||
	    SPI_processed != 1)
		elog(ERROR, "dragonraft could not describe relation %u", relid);
	def = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	extras = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	return def != NULL && extras != NULL && strcmp(def, p->def) == 0 &&
	       strcmp(extras, p->extras) == 0;
}

/*
 * Make way for the relations that the group's commands made and that are
 * not its tables (views, sequences, plain tables: c->plain), before the
 * tables in gone are dropped.  One here under the name of one of the
 * snapshot's with the same definition and extras is kept (whoever made it);
 * one that differs is dropped if the group's commands made it here
 * (dragonraft.made_relations: a command this node missed changed it), and
 * an error otherwise, naming it.  The group's relations here that the
 * snapshot lacks (a command this node missed dropped or renamed them), and
 * those that depend on a relation dropped now or on a table in gone (a view
 * of the group on a table the load replaces; a plain table whose default or
 * foreign key uses one), are dropped too, in one
 * deletion that fails if anything else depends on them; the load makes
 * those of the snapshot again once the tables are loaded (plain_make).
 */
static void plain_clear(uint64 group_id, const Contents *c, List *gone)
{
	List *mine, *drop = NIL, *named = NIL, *more;
	ListCell *lc;
	StringInfoData what;

	mine = oids_of("SELECT m.relid FROM dragonraft.made_relations m "
	               "JOIN pg_catalog.pg_class c ON c.oid = m.relid "
	               "WHERE m.group_id = $1 AND NOT c.oid = ANY ($2) "
	               "AND " DR_SNAP_PLAIN_REL("c") " ORDER BY m.index, m.seq",
	               INT8OID, Int64GetDatum((int64)group_id), gone);
	foreach (lc, c->plain) {
		LoadPlain *p = lfirst(lc);
		Oid relid = plain_here(p);

		if (!OidIsValid(relid) || list_member_oid(gone, relid))
			continue;
		named = lappend_oid(named, relid);
		if (p->def[0] == '\0' || plain_alike(relid, p))
			continue; /* (one that snapshots do not carry stays as it is) */
		if (!list_member_oid(mine, relid))
			ereport(ERROR,
			        (errcode(ERRCODE_DUPLICATE_OBJECT),
			         errmsg("%s here has a name that %s of the snapshot of group %llu "
			                "needs",
			                describe_relation(relid),
			                psprintf("%s %s",
			                         p->kind == RELKIND_VIEW       ? "view"
			                         : p->kind == RELKIND_SEQUENCE ? "sequence"
			                                                       : "table",
			                         p->qname),
			                (unsigned long long)group_id),
			         errdetail(
			                 "A command of the group made it on the members, with "
			                 "another definition, owner or privileges than this one's "
			                 "here, which no command of the group made.  Nothing of "
			                 "the snapshot was loaded."),
			         errhint("Rename or drop it on this node: the load is tried "
			                 "again.")));
		drop = lappend_oid(drop, relid);
	}
	foreach (lc, mine)
		if (!list_member_oid(named, lfirst_oid(lc)))
			drop = list_append_unique_oid(drop, lfirst_oid(lc));
	/* what depends on them, or on the tables dropped, goes with them */
	do {
		more = oids_of(
		        "SELECT DISTINCT m FROM unnest($1::pg_catalog.oid[]) m WHERE EXISTS ("
		        "SELECT FROM pg_catalog.pg_depend d "
		        "LEFT JOIN pg_catalog.pg_rewrite r ON d.classid = "
		        "'pg_catalog.pg_rewrite'::pg_catalog.regclass AND r.oid = d.objid "
		        "LEFT JOIN pg_catalog.pg_attrdef a ON d.classid = "
		        "'pg_catalog.pg_attrdef'::pg_catalog.regclass AND a.oid = d.objid "
		        "LEFT JOIN pg_catalog.pg_constraint k ON d.classid = "
		        "'pg_catalog.pg_constraint'::pg_catalog.regclass AND k.oid = d.objid "
		        "WHERE d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass "
		        "AND d.refobjid = ANY ($2) AND m = coalesce(r.ev_class, a.adrelid, "
		        "k.conrelid, CASE WHEN d.classid = "
		        "'pg_catalog.pg_class'::pg_catalog.regclass THEN d.objid END))",
		        OIDARRAYOID, oid_array(list_difference_oid(mine, drop)),
		        list_concat_copy(drop, gone));
		drop = list_concat(drop, more);
	} while (more != NIL);
	if (drop == NIL)
		return;
	initStringInfo(&what);
	foreach (lc, drop)
		appendStringInfo(&what, "%s%s", what.len > 0 ? ", " : "",
		                 describe_relation(lfirst_oid(lc)));
	ereport(LOG, (errmsg("dragonraft drops %s, made by commands of group %llu, to make them "
	                     "as the snapshot has them",
	                     what.data, (unsigned long long)group_id)));
	drop_relations(drop);
}

/*
 * Tables of the group here that the snapshot lacks (dropped by a command whose
 * entry was compacted): their relids (if they still exist) join gone, their
 * ids stale.  So does a table of the group here that the snapshot has under
 * another name (renamed, or moved to another schema, by such a command): the
 * snapshot's is made, under the same id.
 */
static void others(uint64 group_id, const Contents *c, List **gone, List **stale)
{
	Oid types[1] = {INT8OID};
	Datum values[1] = {Int64GetDatum((int64)group_id)};
	SPITupleTable *tt;

	if (SPI_execute_with_args("SELECT table_id, relid FROM dragonraft.replicated_tables "
	                          "WHERE group_id = $1",
	                          1, types, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "dragonraft could not list the tables of group %llu",
		     (unsigned long long)group_id);
	tt = SPI_tuptable;
	for (uint64 i = 0; i < SPI_processed; i++) {
		bool isnull;
		int64 tid = DatumGetInt64(SPI_getbinval(tt->vals[i], tt->tupdesc, 1, &isnull));
		Datum d = SPI_getbinval(tt->vals[i], tt->tupdesc, 2, &isnull);
		Oid relid = isnull ? InvalidOid : DatumGetObjectId(d);
		const LoadTable *t = NULL;

		for (uint32 k = 0; k < c->n && t == NULL; k++)
			if (c->t[k].table_id == (uint64)tid)
				t = &c->t[k];
		if (t != NULL && t->relid == relid)
			continue;
		if (t == NULL)
			*stale = lappend(*stale, makeInteger(tid));
		if (OidIsValid(relid) && get_rel_name(relid) != NULL) {
			ereport(LOG,
			        (errmsg("dragonraft drops table %s: the snapshot of group %llu %s",
			                relname(relid), (unsigned long long)group_id,
			                t == NULL ? "does not have it"
			                          : psprintf("has it as %s", t->qname))));
			*gone = list_append_unique_oid(*gone, relid);
		}
	}
}

/*
 * Decide every table's fate and make way for the snapshot's tables: the
 * group's tables here that are replaced or that the snapshot lacks are
 * dropped together, with the tables of the group kept here that reference
 * them (made again).  A foreign key from a table outside the group into one
 * that is dropped or truncated is an error.
 */
static void clear_tables(uint64 group_id, Contents *c, List **stale, bool replace_kept)
{
	List *gone = NIL, *mine, *kept = NIL;
	bool more = true;
	StringInfoData sql;
	ListCell *lc;

	for (uint32 i = 0; i < c->n; i++) {
		examine(group_id, &c->t[i]);
		if (replace_kept && c->t[i].fate == FATE_KEEP)
			c->t[i].fate = FATE_REPLACE;
	}
	others(group_id, c, &gone, stale);
	for (uint32 i = 0; i < c->n; i++)
		if (c->t[i].fate == FATE_REPLACE)
			gone = list_append_unique_oid(gone, c->t[i].relid);
	while (more) {
		more = false;
		for (uint32 i = 0; i < c->n; i++) {
			LoadTable *t = &c->t[i];

			if (t->fate == FATE_KEEP && references(t->relid, gone)) {
				t->fate = FATE_REPLACE;
				gone = lappend_oid(gone, t->relid);
				more = true;
			}
		}
	}
	for (uint32 i = 0; i < c->n; i++)
		if (c->t[i].fate == FATE_KEEP || c->t[i].fate == FATE_ADOPT)
			kept = lappend_oid(kept, c->t[i].relid);
	plain_clear(group_id, c, gone);
	mine = list_concat_copy(gone, kept);
	if (mine == NIL)
		return;
	check_referenced(group_id, mine);
	if (gone != NIL)
		check_views(group_id, gone);
	initStringInfo(&sql);
	foreach (lc, gone) {
		appendStringInfoString(&sql, sql.len == 0 ? "DROP TABLE " : ", ");
		appendStringInfoString(&sql, relname(lfirst_oid(lc)));
	}
	for (uint32 i = 0; i < c->n; i++)
		if (c->t[i].fate == FATE_REPLACE) {
			ereport(LOG,
			        (errmsg("dragonraft replaces table %s by the one in the snapshot "
			                "of group %llu",
			                c->t[i].qname, (unsigned long long)group_id)));
			c->t[i].relid = InvalidOid;
		}
	if (sql.len > 0)
		run_internal(sql.data);
	CommandCounterIncrement();
}

/* Whether a foreign key links tables a and b (both locked). */
static bool linked(Oid a, Oid b)
{
	return references(a, list_make1_oid(b)) || references(b, list_make1_oid(a));
}

/*
 * Truncate t, kept or adopted, right before its rows, together with the
 * tables kept or adopted that foreign keys link to it, directly or not
 * (TRUNCATE allows nothing else): the others' old rows stay readable here
 * until their turn.  Their user triggers that fire run as their owner, as
 * the apply worker's TRUNCATE runs them.
 */
static void truncate_linked(Contents *c, LoadTable *t)
{
	List *set = list_make1_oid(t->relid), *relids = NIL;
	bool more = true;

	while (more) {
		more = false;
		for (uint32 i = 0; i < c->n; i++) {
			LoadTable *u = &c->t[i];
			ListCell *lc;

			if ((u->fate != FATE_KEEP && u->fate != FATE_ADOPT) ||
			    list_member_oid(set, u->relid))
				continue;
			foreach (lc, set)
				if (linked(u->relid, lfirst_oid(lc))) {
					set = lappend_oid(set, u->relid);
					more = true;
					break;
				}
		}
	}
	for (uint32 i = 0; i < c->n; i++) {
		LoadTable *u = &c->t[i];

		if ((u->fate != FATE_KEEP && u->fate != FATE_ADOPT) ||
		    !list_member_oid(set, u->relid))
			continue;
		if (u->fate == FATE_KEEP)
			our_triggers(u->qname, false);
		relids = lappend_oid(relids, u->relid);
		u->truncated = true;
	}
	dr_truncate_tables(relids);
	CommandCounterIncrement();
}

/* A table of the snapshot, as an error names it. */
static char *table_what(uint64 group_id, const LoadTable *t)
{
	return psprintf("table %s of the snapshot of group %llu", t->qname,
	                (unsigned long long)group_id);
}

/*
 * Mark the constraints of relid that split_definition added NOT VALID
 * valid, as they are where the snapshot was made.
 */
static void mark_validated(Oid relid, List *names)
{
	Oid types[2] = {OIDOID, TEXTARRAYOID};
	Datum values[2] = {ObjectIdGetDatum(relid)};
	Datum *d = palloc(list_length(names) * sizeof(Datum));
	ListCell *lc;

	foreach (lc, names)
		d[foreach_current_index(lc)] = CStringGetTextDatum(lfirst(lc));
	values[1] = PointerGetDatum(
	        construct_array(d, list_length(names), TEXTOID, -1, false, TYPALIGN_INT));
	if (SPI_execute_with_args("UPDATE pg_catalog.pg_constraint SET convalidated = true "
	                          "WHERE conrelid = $1 AND conname = ANY ($2) AND NOT convalidated",
	                          2, types, values, NULL, false, 0) != SPI_OK_UPDATE ||
	    SPI_processed != (uint64)list_length(names))
		elog(ERROR, "dragonraft could not mark the constraints of %s valid",
		     relname(relid));
	CacheInvalidateRelcacheByRelid(relid);
	CommandCounterIncrement();
}

typedef struct Later Later;
static ErrorData *try_run(const char *sql, Node *stmt, const char *command);
static bool run_later(uint64 group_id, List *later, bool early);

typedef struct TryMake {
	const char *qname, *def, *extras, *what;
	bool owning; /* dr_snapshot_give_owner runs */
} TryMake;

static void try_make(void *arg)
{
	TryMake *m = arg;
	char *pre, *post, *fks;
	List *unchecked = NIL;
	DrUserContext uc;
	bool maker;
	Oid relid;

	if (m->extras == NULL) {
		run(m->def); /* (an older entry's: the table stays this superuser's) */
		return;
	}
	maker = as_maker_begin(m->qname, m->def, m->extras, m->what, &uc);
	split_definition(m->def, &pre, &post, &fks, &unchecked);
	run(pre);
	if (maker)
		dr_user_context_end(&uc);
	CommandCounterIncrement();
	relid = RangeVarGetRelid(makeRangeVarFromNameList(stringToQualifiedNameList(m->qname)),
	                         NoLock, true);
	if (!OidIsValid(relid))
		ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
		                errmsg("the definition of %s made no such table", m->qname)));
	m->owning = true;
	dr_snapshot_give_owner(m->qname, m->def, m->extras, m->what);
	m->owning = false;
	run(post);
	run(fks);
	CommandCounterIncrement();
	if (unchecked != NIL)
		mark_validated(relid, unchecked);
}

/*
 * Make an empty table from its definition def, in a subtransaction (its
 * error, or NULL): the table and the sequences it makes, then (extras not
 * NULL) its owner, then the rest, its CHECK constraints and foreign keys NOT
 * VALID and then marked valid.  Validating a CHECK runs its functions as
 * whoever adds it, and building an index runs its expressions as the
 * table's owner, even on no rows (PostgreSQL evaluates a call of an
 * IMMUTABLE function with constant arguments then): neither may be this
 * superuser.  *owner_failed says that the error is the owner's
 * (dr_snapshot_give_owner).  A registration makes its table so
 * (apply_rows.c), a load the plain tables that commands made.
 */
ErrorData *dr_snapshot_try_make(const char *qname, const char *def, const char *extras,
                                const char *what, bool *owner_failed)
{
	TryMake m = {qname, def, extras, what, false};
	ErrorData *ed = dr_try_subxact(try_make, &m);

	*owner_failed = ed != NULL && m.owning;
	return ed;
}

/*
 * Make the table from its definition (what comes before its rows).  One
 * that uses a type that a statement set aside makes (a composite type or a
 * domain over the row type of a table made before it) is made once the
 * statements set aside that can run now ran.
 */
static void create_table(uint64 group_id, LoadTable *t, char **post, List *later)
{
	Oid nsp;
	char *pre;
	ErrorData *ed = NULL;
	DrUserContext uc;
	bool maker;

	split_definition(t->def, &pre, post, &t->fks, &t->unchecked);
	if (later != NIL) {
		maker = as_maker_begin(t->qname, t->def, t->extras, table_what(group_id, t), &uc);
		dr_internal_ddl++;
		ed = try_run(pre, NULL, NULL);
		dr_internal_ddl--;
		if (maker)
			dr_user_context_end(&uc);
	}
	if (later == NIL || (ed != NULL && run_later(group_id, later, true))) {
		maker = as_maker_begin(t->qname, t->def, t->extras, table_what(group_id, t), &uc);
		run_internal(pre);
		if (maker)
			dr_user_context_end(&uc);
	} else if (ed != NULL)
		ReThrowError(ed);
	nsp = get_namespace_oid(t->schema, true);
	t->relid = OidIsValid(nsp) ? get_relname_relid(t->name, nsp) : InvalidOid;
	if (!OidIsValid(t->relid))
		ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
		                errmsg("the definition of %s in the snapshot made no such table",
		                       t->qname)));
	CommandCounterIncrement();
	dr_snapshot_give_owner(t->qname, t->def, t->extras, table_what(group_id, t));
}

/* get, with the load's progress. */
static void get_rows(void *p, size_t n)
{
	get(p, n);
	if (L.job != NULL) {
		SpinLockAcquire(&L.job->mutex);
		L.job->bytes_done = L.read;
		SpinLockRelease(&L.job->mutex);
	}
}

/* A table's rows: in their on-disk form (snapshot_rows.c), or binary COPY. */
static void rows_in(Oid relid, uint64 len)
{
	uint64 start = L.done;
	char magic[8];
	Relation rel;
	DrUserContext uc;

	if (len < sizeof(magic) ||
	    (get(magic, sizeof(magic)), memcmp(magic, DR_SNAP_RAW_MAGIC, sizeof(magic)) != 0)) {
		if (len >= sizeof(magic))
			L.read -= sizeof(magic); /* (COPY reads them again) */
		seek_to(start);
		copy_in(relid, len);
		return;
	}
	rel = table_open(relid, RowExclusiveLock);
	dr_as_owner_begin(rel, true, &uc); /* its checks */
	dr_snapshot_rows_read(rel, len - sizeof(magic), get_rows, corrupt);
	dr_user_context_end(&uc);
	table_close(rel, NoLock);
}

/* One table's rows, then what follows them. */
static void load_rows(uint64 group_id, Contents *c, LoadTable *t, List *later)
{
	char *post = "";

	if (t->fate == FATE_CREATE || t->fate == FATE_REPLACE)
		create_table(group_id, t, &post, later);
	else if (!t->truncated)
		truncate_linked(c, t);
	seek_to(t->rows_at);
	rows_in(t->relid, t->rows_len);
	if (post[0] != '\0')
		run_internal(post); /* its indexes: built once, faster than row by row */
	if (t->seqs[0] != '\0')
		run(t->seqs);
	if (t->fate == FATE_KEEP)
		our_triggers(t->qname, true);
	else
		dr_sql_tables_install(t->relid, group_id, t->table_id);
	CommandCounterIncrement();
}

/* Replace the group's rows of a catalog table by the section's. */
static void load_catalog(uint64 group_id, const char *table, uint64 at, uint64 len)
{
	Oid types[1] = {INT8OID};
	Datum values[1] = {Int64GetDatum((int64)group_id)};
	List *names = list_make2(makeString("dragonraft"), makeString((char *)table));
	Oid relid = RangeVarGetRelid(makeRangeVarFromNameList(names), RowExclusiveLock, false);

	if (SPI_execute_with_args(psprintf("DELETE FROM dragonraft.%s WHERE group_id = $1", table),
	                          1, types, values, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "dragonraft could not clear dragonraft.%s", table);
	seek_to(at);
	copy_in(relid, len);
	CommandCounterIncrement();
}

/* The commands of the n entries indexes get via and error (each unless NULL). */
static void history_mark(uint64 group_id, const char *via, const char *error, Datum *indexes, int n)
{
	Oid types[4] = {INT8OID, TEXTOID, INT8ARRAYOID, TEXTOID};
	Datum values[4] = {Int64GetDatum((int64)group_id),
	                   via != NULL ? CStringGetTextDatum(via) : (Datum)0,
	                   PointerGetDatum(construct_array(indexes, n, INT8OID, 8, FLOAT8PASSBYVAL,
	                                                   TYPALIGN_DOUBLE)),
	                   error != NULL ? CStringGetTextDatum(error) : (Datum)0};
	char nulls[4] = {' ', via != NULL ? ' ' : 'n', ' ', error != NULL ? ' ' : 'n'};

	if (SPI_execute_with_args("UPDATE dragonraft.ddl_history "
	                          "SET via = coalesce($2, via), error = coalesce($4, error) "
	                          "WHERE group_id = $1 AND index = ANY ($3)",
	                          4, types, values, nulls, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "dragonraft could not update dragonraft.ddl_history");
}

/* This node's history of the group before the load: its last index (0: none) and its rows'
 * indexes, commands, vias and errors (arrays, in index order). */
typedef struct LocalHistory {
	uint64 last;
	Datum indexes, commands, vias, errors;
} LocalHistory;

static void read_local_history(uint64 group_id, LocalHistory *local)
{
	Oid types[1] = {INT8OID};
	Datum values[1] = {Int64GetDatum((int64)group_id)};
	Datum *cols[4] = {&local->indexes, &local->commands, &local->vias, &local->errors};
	bool isnull;

	if (SPI_execute_with_args(
	            "SELECT coalesce(max(index), 0), array_agg(index ORDER BY index), "
	            "array_agg(command ORDER BY index), array_agg(via ORDER BY index), "
	            "array_agg(error ORDER BY index) FROM dragonraft.ddl_history "
	            "WHERE group_id = $1",
	            1, types, values, NULL, false, 1) != SPI_OK_SELECT ||
	    SPI_processed != 1)
		elog(ERROR, "dragonraft could not read dragonraft.ddl_history");
	local->last = (uint64)DatumGetInt64(
	        SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	for (int i = 0; i < 4; i++) {
		Datum d =
		        SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, i + 2, &isnull);

		*cols[i] = isnull ? (Datum)0 : datumCopy(d, false, -1);
	}
}

/*
 * A command of this node's history that did not run here (it failed here and
 * was skipped, or a load here took it from a member that had skipped it) but
 * did where the snapshot was made (review 9 R5): the load runs it again.
 */
#define NOT_RUN_HERE                                                                               \
	"l.error IS NOT NULL AND l.error NOT LIKE 'not all run here:%' "                           \
	"AND (h.error IS NULL OR h.error LIKE 'not all run here:%')"

/*
 * The group's history, as loaded: how its commands reached this node.  The
 * snapshot's rows say how they reached the member that exported it.  Those
 * this node had already (local) keep what its own rows said, but for those
 * that did not run here and did there: they came with the snapshot (via),
 * their indexes in *redo (a Datum int8[], or 0: none); here every later one
 * came with the snapshot, and one that was skipped there after it failed
 * there (error) is missing here because of that.  A history here that is
 * not the start of the snapshot's is an error: what this node made of it is
 * not the group's.
 */
static void history_loaded(uint64 group_id, const LocalHistory *local, Datum *redo)
{
	Oid types[5] = {INT8OID, INT8ARRAYOID, TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID};
	Datum values[5] = {Int64GetDatum((int64)group_id), local->indexes, local->commands,
	                   local->vias, local->errors};
	Datum d;
	bool isnull;

	*redo = (Datum)0;
	if (local->last > 0) {
		if (SPI_execute_with_args("SELECT l.index FROM unnest($2, $3) l (index, command) "
		                          "LEFT JOIN dragonraft.ddl_history h "
		                          "ON h.group_id = $1 AND h.index = l.index "
		                          "WHERE h.command IS DISTINCT FROM l.command "
		                          "ORDER BY 1 LIMIT 1",
		                          3, types, values, NULL, false, 1) != SPI_OK_SELECT)
			elog(ERROR, "dragonraft could not read dragonraft.ddl_history");
		if (SPI_processed > 0)
			ereport(ERROR,
			        (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			         errmsg("the history of group %llu here differs from the "
			                "one in its snapshot at entry %s",
			                (unsigned long long)group_id,
			                SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
			                             1)),
			         errdetail("This node's schema is not what the group's "
			                   "commands made.  Nothing of the snapshot was loaded."),
			         errhint("See dragonraft.ddl_history on this node and on "
			                 "the leader.")));
		if (SPI_execute_with_args("WITH u AS (UPDATE dragonraft.ddl_history h "
		                          "SET via = CASE WHEN " NOT_RUN_HERE " THEN 'snapshot' "
		                          "ELSE l.via END, "
		                          "error = CASE WHEN " NOT_RUN_HERE " THEN h.error "
		                          "ELSE l.error END "
		                          "FROM unnest($2, $4, $5) l (index, via, error) "
		                          "WHERE h.group_id = $1 AND h.index = l.index "
		                          "RETURNING h.index, " NOT_RUN_HERE " AS redo) "
		                          "SELECT array_agg(index ORDER BY index) FROM u "
		                          "WHERE redo",
		                          5, types, values, NULL, false, 1) != SPI_OK_SELECT ||
		    SPI_processed != 1)
			elog(ERROR, "dragonraft could not update dragonraft.ddl_history");
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		if (!isnull)
			*redo = datumCopy(d, false, -1);
	}
	values[1] = Int64GetDatum((int64)local->last);
	types[1] = INT8OID;
	if (SPI_execute_with_args(
	            "UPDATE dragonraft.ddl_history SET via = 'snapshot', "
	            "error = CASE WHEN via = 'log' AND error IS NOT NULL THEN 'not run here: it "
	            "was skipped on the member that exported the snapshot loaded here, where it "
	            "failed: ' || error ELSE error END WHERE group_id = $1 AND index > $2",
	            2, types, values, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "dragonraft could not update dragonraft.ddl_history");
}

/*
 * Whether the load runs a statement of a command again: not if it changes
 * relations (tables, their columns, constraints, indexes, triggers,
 * policies, rules, privileges and comments; sequences, views), which the
 * snapshot's tables come with.  Everything else runs (a DROP, RENAME, SET
 * SCHEMA or ALTER of a type, function, schema ...; a SET, which the command's
 * later statements see), whatever it names.
 */
static bool replayed(Node *stmt)
{
	ObjectType kind;

	switch (nodeTag(stmt)) {
	case T_CreateStmt:
	case T_CreateForeignTableStmt:
	case T_CreateTableAsStmt:
	case T_ViewStmt:
	case T_CreateSeqStmt:
	case T_AlterSeqStmt:
	case T_IndexStmt:
	case T_CreateTrigStmt:
	case T_CreatePolicyStmt:
	case T_AlterPolicyStmt:
	case T_RuleStmt:
	case T_CreateStatsStmt:
	case T_AlterStatsStmt:
	case T_AlterTableMoveAllStmt:
	case T_LockStmt:
	case T_ClusterStmt:
	case T_VacuumStmt:
	case T_ReindexStmt:
	case T_SelectStmt: /* a constant one: execute() takes no other (nor DML, DO, CALL) */
		return false;
	case T_AlterTableStmt: /* ALTER TYPE ... ADD / DROP / ALTER ATTRIBUTE runs */
		return ((AlterTableStmt *)stmt)->objtype == OBJECT_TYPE;
	case T_RenameStmt:
		kind = ((RenameStmt *)stmt)->renameType;
		break;
	case T_DropStmt:
		kind = ((DropStmt *)stmt)->removeType;
		break;
	case T_AlterObjectSchemaStmt:
		kind = ((AlterObjectSchemaStmt *)stmt)->objectType;
		break;
	case T_CommentStmt:
		kind = ((CommentStmt *)stmt)->objtype;
		break;
	case T_SecLabelStmt:
		kind = ((SecLabelStmt *)stmt)->objtype;
		break;
	case T_GrantStmt:
		kind = ((GrantStmt *)stmt)->objtype;
		break;
	default:
		return true;
	}
	switch (kind) {
	case OBJECT_TABLE:
	case OBJECT_FOREIGN_TABLE:
	case OBJECT_SEQUENCE:
	case OBJECT_VIEW:
	case OBJECT_MATVIEW:
	case OBJECT_INDEX:
	case OBJECT_COLUMN:
	case OBJECT_TABCONSTRAINT:
	case OBJECT_TRIGGER:
	case OBJECT_POLICY:
	case OBJECT_RULE:
	case OBJECT_STATISTIC_EXT:
		return false;
	default:
		return true;
	}
}

/*
 * PostgreSQL refuses to use an enum value that ALTER TYPE ... ADD VALUE
 * added in the same transaction, and the snapshot's rows may use it.  All
 * that could hold the value is this transaction's (the tables it loads are
 * made or truncated by it; a rollback takes them with the value), so the
 * value's row is made again under a new OID, as CREATE TYPE makes its
 * values: usable at once.  (An odd OID: its order comes from its sort order.)
 */
static void enum_value_usable(AlterEnumStmt *ae)
{
	Oid typid = LookupTypeNameOid(NULL, makeTypeNameFromNameList(ae->typeName), false);
	HeapTuple tup = SearchSysCacheCopy2(ENUMTYPOIDNAME, ObjectIdGetDatum(typid),
	                                    CStringGetDatum(ae->newVal));
	Datum values[Natts_pg_enum];
	bool nulls[Natts_pg_enum] = {false};
	Form_pg_enum en;
	Relation rel;
	Oid oid;

	if (!HeapTupleIsValid(tup))
		return;
	en = (Form_pg_enum)GETSTRUCT(tup);
	if (!EnumUncommitted(en->oid))
		return;
	rel = table_open(EnumRelationId, RowExclusiveLock);
	CatalogTupleDelete(rel, &tup->t_self);
	do
		oid = GetNewOidWithIndex(rel, EnumOidIndexId, Anum_pg_enum_oid);
	while (oid % 2 == 0);
	values[Anum_pg_enum_oid - 1] = ObjectIdGetDatum(oid);
	values[Anum_pg_enum_enumtypid - 1] = ObjectIdGetDatum(typid);
	values[Anum_pg_enum_enumsortorder - 1] = Float4GetDatum(en->enumsortorder);
	values[Anum_pg_enum_enumlabel - 1] = NameGetDatum(&en->enumlabel);
	CatalogTupleInsert(rel, heap_form_tuple(RelationGetDescr(rel), values, nulls));
	table_close(rel, RowExclusiveLock);
	CommandCounterIncrement();
}

/*
 * The GRANT elements of CREATE SCHEMA cs (of command) that the load runs
 * again, as CREATE SCHEMA runs them: the schema first in the search path, as
 * its owner.  (The others are the relations' elements, which the tables
 * bring, or views.)
 */
static void schema_grants(CreateSchemaStmt *cs, const char *command)
{
	Oid owner = cs->authrole != NULL ? get_rolespec_oid(cs->authrole, false) : GetUserId();
	OverrideSearchPath *path = GetOverrideSearchPath(CurrentMemoryContext);
	Oid save_user;
	int save_sec;
	ListCell *lc;

	path->schemas = lcons_oid(get_namespace_oid(cs->schemaname != NULL
	                                                    ? cs->schemaname
	                                                    : get_rolespec_name(cs->authrole),
	                                            false),
	                          path->schemas);
	PushOverrideSearchPath(path);
	GetUserIdAndSecContext(&save_user, &save_sec);
	SetUserIdAndSecContext(owner, save_sec | SECURITY_LOCAL_USERID_CHANGE);
	foreach (lc, cs->schemaElts) {
		PlannedStmt *ps;

		if (!IsA(lfirst(lc), GrantStmt) || !replayed(lfirst(lc)))
			continue;
		ps = makeNode(PlannedStmt);
		ps->commandType = CMD_UTILITY;
		ps->utilityStmt = lfirst(lc);
		ps->stmt_location = -1;
		ProcessUtility(ps, command, false, PROCESS_UTILITY_SUBCOMMAND, NULL, NULL,
		               None_Receiver, NULL);
		CommandCounterIncrement();
	}
	SetUserIdAndSecContext(save_user, save_sec);
	PopOverrideSearchPath();
}

typedef struct TryRun {
	const char *sql, *command;
	Node *stmt;
} TryRun;

static void try_run_sql(void *arg)
{
	TryRun *t = arg;

	run(t->sql);
	if (t->stmt != NULL && IsA(t->stmt, CreateSchemaStmt))
		schema_grants((CreateSchemaStmt *)t->stmt, t->command);
}

/* Run sql (statement stmt of command) in a subtransaction: NULL, or its error. */
static ErrorData *try_run(const char *sql, Node *stmt, const char *command)
{
	TryRun t = {sql, command, stmt};

	return dr_try_subxact(try_run_sql, &t);
}

typedef struct ReplayContext {
	uint64 group_id, index;
	const char *role, *sql;
} ReplayContext;

static void replay_context(void *arg)
{
	ReplayContext *o = arg;

	errcontext("running again the command of group %llu at entry %llu, as role %s: %s",
	           (unsigned long long)o->group_id, (unsigned long long)o->index, o->role, o->sql);
}

/*
 * A statement that failed because an object it names is missing, which the
 * tables the load makes later may make (CREATE PUBLICATION ... FOR TABLE, a
 * function whose SQL-standard body reads one or that returns its rows), or
 * an object that such a statement makes: its run waits for them (review 9
 * R3).
 */
static bool needs_tables(int sqlerrcode)
{
	return sqlerrcode == ERRCODE_UNDEFINED_TABLE || sqlerrcode == ERRCODE_UNDEFINED_OBJECT ||
	       sqlerrcode == ERRCODE_UNDEFINED_FUNCTION;
}

/*
 * A statement run again after the tables are made, as its command's role; or
 * a rename of a table or of a column that a command made after such a
 * statement: undone before them (undo), made again in log order.
 */
struct Later {
	uint64 index;
	Oid roleid;
	const char *role;
	const char *search_path; /* its command's (NULL: this node's default) */
	List *sets;              /* the SET statements its command ran before it */
	char *sql;
	Node *stmt;
	const char *command; /* the whole command, stmt's source */
	char *undo;          /* a rename: what undoes it (NULL once it cannot be: not made here) */
	bool done;           /* ran before the last tables were made (run_later, early) */
};

/* The key of an object of kind named by name (its last part): functions and
 * their kin one kind, types and domains one, whatever the spelling of its
 * schema or arguments. */
static void add_key(List **keys, ObjectType kind, Node *name)
{
	const char *last;

	if (name == NULL)
		return;
	if (IsA(name, ObjectWithArgs))
		name = (Node *)((ObjectWithArgs *)name)->objname;
	else if (IsA(name, TypeName))
		name = (Node *)((TypeName *)name)->names;
	if (IsA(name, List))
		name = llast((List *)name);
	if (!IsA(name, String))
		return;
	last = strVal(name);
	if (kind == OBJECT_PROCEDURE || kind == OBJECT_ROUTINE || kind == OBJECT_AGGREGATE)
		kind = OBJECT_FUNCTION;
	else if (kind == OBJECT_DOMAIN)
		kind = OBJECT_TYPE;
	*keys = lappend(*keys, psprintf("%d %s", (int)kind, last));
}

/*
 * The objects other than relations that a statement makes, changes or drops,
 * as keys (add_key): a statement that names one that a statement set aside
 * names is set aside too, so that it runs after it, as in the log (a DROP
 * ... IF EXISTS, a CREATE OR REPLACE, a CREATE again after a DROP set aside
 * succeed where the object is missing).
 */
static List *object_keys(Node *stmt)
{
	List *keys = NIL;
	ListCell *lc;

	switch (nodeTag(stmt)) {
	case T_CreateFunctionStmt:
		add_key(&keys, OBJECT_FUNCTION, (Node *)((CreateFunctionStmt *)stmt)->funcname);
		break;
	case T_AlterFunctionStmt:
		add_key(&keys, OBJECT_FUNCTION, (Node *)((AlterFunctionStmt *)stmt)->func);
		break;
	case T_DropStmt:
		foreach (lc, ((DropStmt *)stmt)->objects)
			add_key(&keys, ((DropStmt *)stmt)->removeType, lfirst(lc));
		break;
	case T_RenameStmt:
		add_key(&keys, ((RenameStmt *)stmt)->renameType, ((RenameStmt *)stmt)->object);
		add_key(&keys, ((RenameStmt *)stmt)->renameType,
		        (Node *)makeString(((RenameStmt *)stmt)->newname));
		break;
	case T_AlterObjectSchemaStmt:
		add_key(&keys, ((AlterObjectSchemaStmt *)stmt)->objectType,
		        ((AlterObjectSchemaStmt *)stmt)->object);
		break;
	case T_AlterOwnerStmt:
		add_key(&keys, ((AlterOwnerStmt *)stmt)->objectType,
		        ((AlterOwnerStmt *)stmt)->object);
		break;
	case T_AlterObjectDependsStmt:
		add_key(&keys, ((AlterObjectDependsStmt *)stmt)->objectType,
		        ((AlterObjectDependsStmt *)stmt)->object);
		break;
	case T_CommentStmt:
		add_key(&keys, ((CommentStmt *)stmt)->objtype, ((CommentStmt *)stmt)->object);
		break;
	case T_GrantStmt:
		if (((GrantStmt *)stmt)->targtype == ACL_TARGET_OBJECT)
			foreach (lc, ((GrantStmt *)stmt)->objects)
				add_key(&keys, ((GrantStmt *)stmt)->objtype, lfirst(lc));
		break;
	case T_CreatePublicationStmt:
		add_key(&keys, OBJECT_PUBLICATION,
		        (Node *)makeString(((CreatePublicationStmt *)stmt)->pubname));
		break;
	case T_AlterPublicationStmt:
		add_key(&keys, OBJECT_PUBLICATION,
		        (Node *)makeString(((AlterPublicationStmt *)stmt)->pubname));
		break;
	case T_DefineStmt:
		add_key(&keys, ((DefineStmt *)stmt)->kind, (Node *)((DefineStmt *)stmt)->defnames);
		break;
	case T_CompositeTypeStmt:
		add_key(&keys, OBJECT_TYPE,
		        (Node *)makeString(((CompositeTypeStmt *)stmt)->typevar->relname));
		break;
	case T_CreateDomainStmt:
		add_key(&keys, OBJECT_TYPE, (Node *)((CreateDomainStmt *)stmt)->domainname);
		break;
	case T_CreateEnumStmt:
		add_key(&keys, OBJECT_TYPE, (Node *)((CreateEnumStmt *)stmt)->typeName);
		break;
	case T_AlterEnumStmt:
		add_key(&keys, OBJECT_TYPE, (Node *)((AlterEnumStmt *)stmt)->typeName);
		break;
	case T_AlterDomainStmt:
		add_key(&keys, OBJECT_TYPE, (Node *)((AlterDomainStmt *)stmt)->typeName);
		break;
	default:
		break;
	}
	return keys;
}

/* Whether two lists of keys (object_keys) share one. */
static bool keys_meet(List *a, List *b)
{
	ListCell *x, *y;

	foreach (x, a)
		foreach (y, b)
			if (strcmp(lfirst(x), lfirst(y)) == 0)
				return true;
	return false;
}

/* A relation as a statement spelled it, with name instead of its own. */
static char *spelled(RangeVar *rv, const char *name)
{
	return rv->schemaname != NULL ? quote_qualified_identifier(rv->schemaname, name)
	                              : pstrdup(quote_identifier(name));
}

/*
 * What undoes a statement that renames a table or a column of one, or moves
 * a table to another schema named (from a schema named), run as its command's
 * role after its command's SET statements: NULL if it is none of them.
 */
static char *rename_undo(Node *stmt)
{
	RenameStmt *rs = (RenameStmt *)stmt;
	AlterObjectSchemaStmt *os = (AlterObjectSchemaStmt *)stmt;

	if (IsA(stmt, RenameStmt) && rs->renameType == OBJECT_TABLE)
		return psprintf("ALTER TABLE %s RENAME TO %s", spelled(rs->relation, rs->newname),
		                quote_identifier(rs->relation->relname));
	if (IsA(stmt, RenameStmt) && rs->renameType == OBJECT_COLUMN &&
	    rs->relationType == OBJECT_TABLE)
		return psprintf("ALTER TABLE %s RENAME COLUMN %s TO %s",
		                spelled(rs->relation, rs->relation->relname),
		                quote_identifier(rs->newname), quote_identifier(rs->subname));
	if (IsA(stmt, AlterObjectSchemaStmt) && os->objectType == OBJECT_TABLE &&
	    os->relation->schemaname != NULL)
		return psprintf("ALTER TABLE %s SET SCHEMA %s",
		                quote_qualified_identifier(os->newschema, os->relation->relname),
		                quote_identifier(os->relation->schemaname));
	return NULL;
}

/* Run a command's statements as roleid: the settings they make end with leave(). */
static int enter(Oid roleid, const char *search_path, Oid *save_user, int *save_sec)
{
	int nestlevel;

	GetUserIdAndSecContext(save_user, save_sec);
	SetUserIdAndSecContext(roleid, *save_sec | SECURITY_LOCAL_USERID_CHANGE);
	nestlevel = NewGUCNestLevel();
	dr_command_search_path(search_path);
	(void)set_config_option("check_function_bodies", "off", PGC_SUSET, PGC_S_SESSION,
	                        GUC_ACTION_SAVE, true, 0, false);
	return nestlevel;
}

static void leave(int nestlevel, Oid save_user, int save_sec)
{
	AtEOXact_GUC(false, nestlevel);
	SetUserIdAndSecContext(save_user, save_sec);
}

/*
 * Whether a DBA asked (skip_command) to skip here the command at index, whose
 * statement failed with ed when the load ran it: the load leaves out its
 * statements that fail, and this node's history says so.  The request goes.
 */
static bool skipped_here(uint64 group_id, uint64 index, ErrorData *ed)
{
	Oid types[2] = {INT8OID, INT8OID};
	Datum values[2] = {Int64GetDatum((int64)group_id), Int64GetDatum((int64)index)};

	if (L.skipped == index)
		return true;
	if (SPI_execute_with_args("DELETE FROM dragonraft.skip_requests "
	                          "WHERE group_id = $1 AND index = $2",
	                          2, types, values, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "dragonraft could not read dragonraft.skip_requests");
	if (SPI_processed == 0)
		return false;
	L.skipped = index;
	ereport(LOG,
	        (errmsg("dragonraft left out a statement of the command of group %llu at "
	                "entry %llu in a snapshot's load here (skip_command): %s",
	                (unsigned long long)group_id, (unsigned long long)index, ed->message)));
	history_mark(group_id, NULL,
	             psprintf("not all run here: a statement was skipped here (skip_command) "
	                      "when a snapshot's load ran it: %s",
	                      ed->message),
	             values + 1, 1);
	return true;
}

static void replay_failed(uint64 group_id, uint64 index, ErrorData *ed, bool aside)
        pg_attribute_noreturn();

/* The command at index failed when the load ran it again (aside: once the tables were
 * made, for a statement that needs one). */
static void replay_failed(uint64 group_id, uint64 index, ErrorData *ed, bool aside)
{
	ereport(ERROR,
	        (errcode(ed->sqlerrcode),
	         errmsg("the command of group %llu at entry %llu failed when its snapshot's "
	                "load ran it again here: %s",
	                (unsigned long long)group_id, (unsigned long long)index, ed->message),
	         aside ? errdetail("A snapshot's load runs again what the group's commands that "
	                           "this node lacks did besides changing its tables and rows; "
	                           "this statement needs a table of the group and ran once the "
	                           "tables were made, as a later command of the group left them "
	                           "(renames undone).  Nothing of the snapshot was loaded.")
	               : errdetail("A snapshot's load runs again what the group's commands that "
	                           "this node lacks did besides changing its tables and rows.  "
	                           "Nothing of the snapshot was loaded."),
	         aside ? errhint("A later command that dropped a table or a column it needs "
	                         "(ALTER TABLE ... DROP COLUMN ... CASCADE) dropped what it made "
	                         "on the members that ran it: then run "
	                         "dragonraft.skip_command(%llu, %llu) here, and the load leaves "
	                         "the statement out.",
	                         (unsigned long long)group_id, (unsigned long long)index)
	               : errhint("An object of this node's own may take a name that the group "
	                         "uses: drop or rename it; the load is tried again.")));
}

/* What follows a statement that ran again. */
static void replayed_stmt(Node *stmt)
{
	if (IsA(stmt, AlterEnumStmt) && ((AlterEnumStmt *)stmt)->oldVal == NULL)
		enum_value_usable((AlterEnumStmt *)stmt);
}

/*
 * Run again what the group's commands above this node's history (after), and
 * those of it in redo (an int8[] or 0: history_loaded), did besides changing
 * its tables and rows: every other statement of each command, verbatim and
 * in log order, as the role that ran it, with the settings its earlier
 * statements made (check_function_bodies off: a body may use a table made
 * later), DROP, RENAME and CASCADE included; a command skipped on the member
 * the snapshot came from is skipped here, and so is one that every member
 * skipped for another command that came first (preempted_by).  So a bare
 * node runs what the whole history did and a member that fell behind what it
 * missed, with no guess about what exists here: a statement that fails fails
 * the load, naming the command (an object of this node's own that takes a
 * name the group uses, say).  A table of the group kept here has its final
 * definition, which an earlier definition of the objects it uses may not fit
 * (a type dropped after a column stopped using it, then made again): once a
 * statement fails, the tables kept are replaced instead and the statement is
 * tried again.  A
 * statement that fails because an object it names is missing (needs_tables)
 * joins *later, which run_later runs once the tables are made.
 * The relations that are not tables of the group (views, sequences, plain
 * tables) come with the snapshot (plain_make), as the tables do.  Whether
 * anything ran (the caller then
 * decides again what each table becomes: a CASCADE may have changed or
 * dropped one).
 */
static bool replay(uint64 group_id, uint64 after, Datum redo, Contents *c, List **stale,
                   List **later)
{
	Oid types[3] = {INT8OID, INT8OID, INT8ARRAYOID};
	Datum values[3] = {Int64GetDatum((int64)group_id), Int64GetDatum((int64)after), redo};
	char nulls[3] = {' ', ' ', redo != (Datum)0 ? ' ' : 'n'};
	uint64 n;
	char **commands, **roles, **paths;
	Datum *indexes, *ran;
	int n_ran = 0;
	bool replaced = false;
	List *aside = NIL; /* the keys (object_keys) of the statements set aside */
	char *search_path = pstrdup(GetConfigOption("search_path", false, false));
	ReplayContext o = {.group_id = group_id};
	ErrorContextCallback cb = {.callback = replay_context, .arg = &o};

	if (SPI_execute_with_args("SELECT index, command, coalesce(role, ''), search_path "
	                          "FROM dragonraft.ddl_history "
	                          "WHERE group_id = $1 AND (index > $2 OR index = ANY ($3)) "
	                          "AND (error IS NULL OR error LIKE 'not all run here:%') "
	                          "AND preempted_by IS NULL ORDER BY index",
	                          3, types, values, nulls, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "dragonraft could not read the history of group %llu",
		     (unsigned long long)group_id);
	n = SPI_processed;
	commands = palloc(sizeof(char *) * Max(n, 1));
	roles = palloc(sizeof(char *) * Max(n, 1));
	paths = palloc(sizeof(char *) * Max(n, 1));
	indexes = palloc(sizeof(Datum) * Max(n, 1));
	ran = palloc(sizeof(Datum) * Max(n, 1));
	for (uint64 i = 0; i < n; i++) {
		bool isnull;

		indexes[i] =
		        SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);
		commands[i] = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);
		roles[i] = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 3);
		paths[i] = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 4);
	}
	cb.previous = error_context_stack;
	error_context_stack = &cb;
	for (uint64 i = 0; i < n; i++) {
		Oid roleid = roles[i][0] != '\0' ? get_role_oid(roles[i], true) : GetUserId(),
		    save_user;
		int save_sec, nestlevel;
		bool any = false;
		List *sets = NIL;
		ListCell *lc;

		o.index = (uint64)DatumGetInt64(indexes[i]);
		o.role = roles[i];
		o.sql = commands[i];
		if (!OidIsValid(roleid))
			ereport(ERROR,
			        (errcode(ERRCODE_UNDEFINED_OBJECT),
			         errmsg("role \"%s\", which ran the command of group %llu at "
			                "entry %llu, does not exist on this node",
			                roles[i], (unsigned long long)group_id,
			                (unsigned long long)o.index),
			         errhint("Create the role on this node; the load is tried "
			                 "again.")));
		nestlevel = enter(roleid, paths[i], &save_user, &save_sec);
		foreach (lc, dr_parse_command(commands[i])) {
			RawStmt *raw = lfirst_node(RawStmt, lc);
			ErrorData *ed;
			char *sql, *undo;
			List *keys;
			bool defer;

			undo = *later != NIL ? rename_undo(raw->stmt) : NULL;
			if (!replayed(raw->stmt) && undo == NULL)
				continue;
			o.sql = sql = statement_sql(commands[i], raw);
			keys = object_keys(raw->stmt);
			/* after a statement set aside that names the same object, or a rename of
			 * a table or column after one (run_later) */
			defer = undo != NULL || keys_meet(keys, aside);
			ed = defer ? NULL : try_run(o.sql, raw->stmt, commands[i]);
			if (ed != NULL && !replaced && !needs_tables(ed->sqlerrcode)) {
				int level = NewGUCNestLevel();

				/* as the load, not as the command's role, with its search_path */
				replaced = true;
				SetUserIdAndSecContext(save_user, save_sec);
				(void)set_config_option("search_path", search_path, PGC_SUSET,
				                        PGC_S_SESSION, GUC_ACTION_SAVE, true, 0,
				                        false);
				clear_tables(group_id, c, stale, true);
				AtEOXact_GUC(false, level);
				SetUserIdAndSecContext(roleid,
				                       save_sec | SECURITY_LOCAL_USERID_CHANGE);
				ed = try_run(o.sql, raw->stmt, commands[i]);
			}
			if (defer || (ed != NULL && needs_tables(ed->sqlerrcode))) {
				Later *w = palloc(sizeof(Later));

				*w = (Later){.index = o.index,
				             .roleid = roleid,
				             .role = roles[i],
				             .search_path = paths[i],
				             .sets = list_copy(sets),
				             .sql = sql,
				             .stmt = raw->stmt,
				             .command = commands[i],
				             .undo = undo};
				*later = lappend(*later, w);
				aside = list_concat(aside, keys);
				continue;
			}
			if (ed != NULL) {
				if (!skipped_here(group_id, o.index, ed))
					replay_failed(group_id, o.index, ed, false);
				continue;
			}
			if (IsA(raw->stmt, VariableSetStmt))
				sets = lappend(sets, sql);
			replayed_stmt(raw->stmt);
			any = true;
		}
		leave(nestlevel, save_user, save_sec);
		if (any)
			ran[n_ran++] = indexes[i];
	}
	error_context_stack = cb.previous;
	if (n_ran > 0)
		history_mark(group_id, "replayed", NULL, ran, n_ran);
	CommandCounterIncrement();
	return n_ran > 0;
}

/* Run sql of w (or what undoes it) as its command's role, after its command's SET
 * statements: NULL, or its error.  A rename of a table of the group here is the load's. */
static ErrorData *run_as(ReplayContext *o, Later *w, const char *sql)
{
	Oid save_user;
	int save_sec, nestlevel = enter(w->roleid, w->search_path, &save_user, &save_sec);
	ListCell *lc;
	ErrorData *ed;

	o->index = w->index;
	o->role = w->role;
	foreach (lc, w->sets) {
		o->sql = lfirst(lc);
		run(o->sql);
	}
	o->sql = sql;
	dr_internal_ddl += w->undo != NULL;
	ed = try_run(sql, w->stmt, w->command);
	dr_internal_ddl -= w->undo != NULL;
	if (ed == NULL)
		replayed_stmt(w->stmt);
	leave(nestlevel, save_user, save_sec);
	return ed;
}

/*
 * The statements replay() set aside, in log order, once the tables are made:
 * each as its command's role, after the SET statements its command ran
 * before it; one that fails now fails the load.  The tables and columns that
 * later commands renamed have the names these statements knew: the renames
 * are undone first, newest first, and made again in log order among them (a
 * rename of a table that the load does not make is left out).  Early (a
 * table to make needs a type that one of them makes): those that run now
 * before the first that fails, when no rename is among them; whether any ran.
 */
static bool run_later(uint64 group_id, List *later, bool early)
{
	ReplayContext o = {.group_id = group_id};
	ErrorContextCallback cb = {.callback = replay_context, .arg = &o};
	Datum *ran = palloc(sizeof(Datum) * Max(list_length(later), 1));
	int n_ran = 0;
	ListCell *lc;

	foreach (lc, later)
		if (early && ((Later *)lfirst(lc))->undo != NULL)
			return false;
	cb.previous = error_context_stack;
	error_context_stack = &cb;
	for (int i = list_length(later) - 1; i >= 0 && !early; i--) {
		Later *w = list_nth(later, i);
		ErrorData *ed;

		if (w->undo == NULL || (ed = run_as(&o, w, w->undo)) == NULL)
			continue;
		if (ed->sqlerrcode != ERRCODE_UNDEFINED_TABLE &&
		    !skipped_here(group_id, w->index, ed))
			replay_failed(group_id, w->index, ed, true);
		w->undo = w->sql = NULL; /* not made here (or skipped) */
	}
	foreach (lc, later) {
		Later *w = lfirst(lc);
		ErrorData *ed;

		if (w->sql == NULL || w->done)
			continue;
		ed = run_as(&o, w, w->sql);
		if (ed != NULL && early)
			break;
		if (ed != NULL && !skipped_here(group_id, w->index, ed))
			replay_failed(group_id, w->index, ed, true);
		w->done = true;
		if (w->undo == NULL &&
		    (n_ran == 0 || DatumGetInt64(ran[n_ran - 1]) != (int64)w->index))
			ran[n_ran++] = Int64GetDatum((int64)w->index);
	}
	error_context_stack = cb.previous;
	if (n_ran > 0)
		history_mark(group_id, "replayed", NULL, ran, n_ran);
	CommandCounterIncrement();
	return n_ran > 0;
}

/*
 * Make the relations of c->plain that are not here (plain_clear kept those
 * alike): the sequences (early: before the tables, whose defaults may use
 * them), or the views and tables (once the group's tables are loaded and the
 * statements set aside ran).  A view may read one made after it (a CREATE
 * OR REPLACE VIEW since): each is tried in order, again after the others
 * while any of them is made; one that still fails fails the load, naming it.
 */
static void plain_make(uint64 group_id, Contents *c, bool early)
{
	List *pending = NIL;
	ListCell *lc;
	bool progress = true;

	foreach (lc, c->plain) {
		LoadPlain *p = lfirst(lc);

		if (p->def[0] != '\0' && (p->kind == RELKIND_SEQUENCE) == early &&
		    !OidIsValid(plain_here(p)))
			pending = lappend(pending, p);
	}
	while (pending != NIL && progress) {
		List *failed = NIL;
		ErrorData *first = NULL;

		progress = false;
		foreach (lc, pending) {
			LoadPlain *p = lfirst(lc);
			ErrorData *ed;

			dr_internal_ddl++;
			if (p->kind == RELKIND_RELATION) {
				bool owner_failed;

				/* as a registration's table: owner code runs as its owner */
				ed = dr_snapshot_try_make(
				        p->qname, p->def, p->extras,
				        psprintf("%s of the snapshot of group %llu", p->qname,
				                 (unsigned long long)group_id),
				        &owner_failed);
			} else
				ed = try_run(p->def, NULL, NULL);
			dr_internal_ddl--;
			if (ed == NULL) {
				p->made = progress = true;
				CommandCounterIncrement();
				continue;
			}
			failed = lappend(failed, p);
			if (first == NULL)
				first = ed;
		}
		pending = failed;
		if (pending != NIL && !progress)
			ereport(ERROR,
			        (errcode(first->sqlerrcode),
			         errmsg("%s of the snapshot of group %llu could not be made here: "
			                "%s",
			                ((LoadPlain *)linitial(pending))->qname,
			                (unsigned long long)group_id, first->message),
			         errdetail("A command of the group made it (entry %llu); its "
			                   "definition is \"%s\".",
			                   (unsigned long long)((LoadPlain *)linitial(pending))
			                           ->index,
			                   ((LoadPlain *)linitial(pending))->def),
			         errhint("Fix the cause on this node: the load is tried again.")));
	}
}

/*
 * Once the views and tables of c->plain are made: those made get their
 * owner, privileges and comments, every sequence its value; this node's
 * dragonraft.made_relations of the group become the snapshot's; and a
 * command whose relation snapshots do not carry, missing here, says so in
 * its history (dragonraft.ddl_failures).
 */
static void plain_finish(uint64 group_id, Contents *c)
{
	Oid types[4] = {INT8OID, INT8OID, INT4OID, OIDOID};
	Datum values[4] = {Int64GetDatum((int64)group_id)};
	ListCell *lc;
	int seq = 0;

	if (SPI_execute_with_args("DELETE FROM dragonraft.made_relations WHERE group_id = $1", 1,
	                          types, values, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "dragonraft could not update dragonraft.made_relations");
	/* (writers keep which sequences the group made until an invalidation: capture.c) */
	CacheInvalidateRelcacheAll();
	foreach (lc, c->plain) {
		LoadPlain *p = lfirst(lc);
		Oid relid = plain_here(p);
		Datum index = Int64GetDatum((int64)p->index);

		if (p->def[0] == '\0') {
			if (!OidIsValid(relid))
				history_mark(
				        group_id, NULL,
				        psprintf(
				                "not all run here: a snapshot's load does not make "
				                "the %s %s that this command made",
				                p->extras, p->qname),
				        &index, 1);
			continue;
		}
		if (!OidIsValid(relid))
			ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
			                errmsg("the definition of %s in the snapshot made no such "
			                       "relation",
			                       p->qname)));
		if (p->made)
			dr_snapshot_give_extras(p->qname, p->extras,
			                        psprintf("%s of the snapshot of group %llu",
			                                 p->qname, (unsigned long long)group_id));
		if (p->seqs[0] != '\0')
			run(p->seqs);
		values[1] = index;
		values[2] = Int32GetDatum(++seq);
		values[3] = ObjectIdGetDatum(relid);
		if (SPI_execute_with_args("INSERT INTO dragonraft.made_relations (group_id, index, "
		                          "seq, relid) VALUES ($1, $2, $3, $4)",
		                          4, types, values, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "dragonraft could not update dragonraft.made_relations");
	}
	CommandCounterIncrement();
}

/*
 * A load holds about four locks per table it makes or replaces (the table,
 * its key's index, its TOAST table and index) until it commits, in the one
 * lock table of max_locks_per_transaction x (MaxBackends +
 * max_prepared_transactions) entries (PostgreSQL's NLOCKENTS).  A snapshot
 * of more than that is refused before any lock is taken (review 26 F2):
 * taken one by one, the locks would run out late (`out of shared memory`),
 * and every try would fill the lock table so that this server's other
 * sessions failed too.
 */
#define LOCKS_PER_TABLE 4

static void check_locks(uint64 group_id, const Contents *c)
{
	int64 slots = (int64)MaxBackends + max_prepared_xacts;
	int64 room = (int64)max_locks_per_xact * slots;
	int64 needed = (int64)LOCKS_PER_TABLE * c->n;
	ListCell *lc;

	foreach (lc, c->plain)
		needed += ((LoadPlain *)lfirst(lc))->kind == RELKIND_RELATION ? LOCKS_PER_TABLE : 1;
	if (needed <= room)
		return;
	ereport(ERROR,
	        (errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
	         errmsg("the snapshot of group %llu needs about %lld locks to load, more than "
	                "the lock table holds (%lld)",
	                (unsigned long long)group_id, (long long)needed, (long long)room),
	         errdetail("Its %u tables and %d other relations are loaded in one transaction, "
	                   "about %d locks a table; the lock table holds "
	                   "max_locks_per_transaction (%d) x %lld locks.",
	                   c->n, list_length(c->plain), LOCKS_PER_TABLE, max_locks_per_xact,
	                   (long long)slots),
	         errhint("Set max_locks_per_transaction to at least %lld on this node and "
	                 "restart it; the load is tried again.",
	                 (long long)((needed + slots - 1) / slots))));
}

static uint64 load(uint64 group_id, uint64 index, const char *path)
{
	struct stat st;
	uint32 tables;
	Contents c = {0};
	List *stale = NIL;
	ListCell *lc;
	uint64 schema_index = 0;
	LocalHistory local;
	Datum redo;
	List *later = NIL;
	Oid types[2] = {INT8OID, INT8OID};
	Datum values[2] = {Int64GetDatum((int64)group_id)};

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
	scan(&c, tables, (uint64)st.st_size - DR_SNAP_TRAILER_BYTES);
	check_locale(group_id, &c);
	check_locks(group_id, &c);
	read_local_history(group_id, &local);
	clear_tables(group_id, &c, &stale, false);
	load_catalog(group_id, "ddl_history", c.history_at, c.history_len);
	history_loaded(group_id, &local, &redo);
	if (replay(group_id, local.last, redo, &c, &stale, &later))
		clear_tables(group_id, &c, &stale, false);
	plain_make(group_id, &c, true);
	check_names(group_id, &c);
	for (uint32 i = 0; i < c.n; i++) {
		load_rows(group_id, &c, &c.t[i], later);
		progress(DR_SNAP_LOADING, i + 1);
		if (i == 0)
			dr_snapshot_testing_pause();
	}
	for (uint32 i = 0; i < c.n; i++)
		if (c.t[i].fks != NULL && c.t[i].fks[0] != '\0')
			run_internal(c.t[i].fks); /* every table they reference is there */
	for (uint32 i = 0; i < c.n; i++)
		if (c.t[i].unchecked != NIL)
			mark_validated(c.t[i].relid, c.t[i].unchecked);
	(void)run_later(group_id, later, false);
	plain_make(group_id, &c, false);
	for (uint32 i = 0; i < c.n; i++)
		if (c.t[i].fate == FATE_CREATE || c.t[i].fate == FATE_REPLACE)
			dr_snapshot_give_extras(/* a policy may use another table */
			                        c.t[i].qname, c.t[i].extras,
			                        table_what(group_id, &c.t[i]));
	plain_finish(group_id, &c);
	load_catalog(group_id, "member_info", c.members_at, c.members_len);
	foreach (lc, stale) {
		values[1] = Int64GetDatum(intVal(lfirst(lc)));
		if (SPI_execute_with_args("DELETE FROM dragonraft.replicated_tables "
		                          "WHERE group_id = $1 AND table_id = $2",
		                          2, types, values, NULL, false, 0) != SPI_OK_DELETE)
			elog(ERROR, "dragonraft could not update dragonraft.replicated_tables");
	}
	schema_index = L.schema_index = dr_apply_rows_last_command(group_id);
	L.tables = tables;
	L.size = (uint64)st.st_size;
	return schema_index;
}

void dr_snapshot_log_loaded(void)
{
	ereport(LOG, (errmsg("dragonraft loaded the snapshot of group %llu at entry %llu: %u "
	                     "tables, %llu bytes in %ld ms (checksum %ld ms; CPU %ld ms), the "
	                     "group's last command at entry %llu",
	                     (unsigned long long)L.group_id, (unsigned long long)L.index, L.tables,
	                     (unsigned long long)L.size,
	                     (long)((GetCurrentTimestamp() - L.start) / 1000),
	                     (long)((L.verified - L.start) / 1000), dr_snapshot_cpu_ms() - L.cpu,
	                     (unsigned long long)L.schema_index)));
}

uint64 dr_snapshot_load(int job)
{
	DrSnapJob *j = dr_snapshot_job(job);
	volatile uint64 schema_index;
	char path[MAXPGPATH];

	memset(&L, 0, sizeof(L));
	L.job = j;
	SpinLockAcquire(&j->mutex);
	j->pid = MyProcPid;
	L.group_id = j->group_id;
	L.index = j->index;
	memcpy(path, j->path, sizeof(path));
	SpinLockRelease(&j->mutex);
	path[sizeof(path) - 1] = '\0';
	L.path = pstrdup(path);
	L.start = GetCurrentTimestamp();
	L.cpu = dr_snapshot_cpu_ms();
	PG_TRY();
	{
		schema_index = load(L.group_id, L.index, L.path);
	}
	PG_FINALLY();
	{
		if (L.in != NULL)
			FreeFile(L.in);
		L.in = NULL;
	}
	PG_END_TRY();
	return schema_index;
}
