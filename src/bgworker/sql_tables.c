/*
 * sql_tables.c - SQL functions on replicated tables (DESIGN §4, §6):
 * replicate_table(), execute(), and the two things the proposing backend
 * and the apply worker share: a table's canonical definition and the
 * installation of its capture triggers.
 *
 * replicate_table() locks the table (EXCLUSIVE: reads go on, writes wait)
 * and marks the transaction as a registration; at its commit (xact.c) the
 * registration entry carries the definition and the rows read then, and
 * once it is committed in the log at index N the table's id is N: the
 * backend installs the capture triggers with that id in the same local
 * transaction, as every member does when it applies entry N.
 * resend_table() sends a replicated table's registration again, under its
 * first id, for members that refused it (apply_rows.c).
 *
 * execute() tries a utility command here, proposes it (from any member: a
 * follower forwards it to the leader) and returns once it is applied here;
 * the apply worker of every member runs it in log order (apply_rows.c).  Its
 * entry carries the group's last command its try saw: if another command
 * came between that one and its entry (proposed from another node while it
 * was tried here), every member skips it, and execute() fails with 40001.
 */
#include "write.h"
#include "snapshot.h"

#include "access/table.h"
#include "access/xact.h"
#include "catalog/catalog.h"
#include "catalog/namespace.h"
#include "catalog/objectaddress.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "engine/engine.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "membership.h"
#include "miscadmin.h"
#include "parser/parser.h"
#include "pgstat.h"
#include "queue.h"
#include "shmem.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/bytea.h"
#include "utils/float.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/xml.h"

PG_FUNCTION_INFO_V1(dr_replicate_table);
PG_FUNCTION_INFO_V1(dr_resend_table);
PG_FUNCTION_INFO_V1(dr_execute);
PG_FUNCTION_INFO_V1(dr_skip_command);

/* What dragonraft's own queries run with: pg_catalog's objects, nobody's else. */
#define PINNED_SEARCH_PATH "pg_catalog, pg_temp"

/* What dragonraft's workers run with, not what ALTER DATABASE or ALTER ROLE
 * ... SET says: the log must apply as it is.  (A database made read-only
 * stopped the apply of every group for good; xml_recv parses with
 * xmloption, whose DOCUMENT refused a fragment that the leader stored; a
 * lock_timeout made the apply fail where it waits to cancel the holder
 * after dragonraft.max_apply_lock_delay; client_encoding below.) */
static const char *const worker_settings[][2] = {
        {"search_path", PINNED_SEARCH_PATH},
        {"xmloption", "content"},
        {"default_transaction_read_only", "off"},
        {"default_transaction_isolation", "read committed"},
        {"default_transaction_deferrable", "off"},
        {"statement_timeout", "0"},
        {"lock_timeout", "0"},
        {"idle_in_transaction_session_timeout", "0"},
};

/*
 * What PostgreSQL's own IMMUTABLE functions and expressions read (float4out
 * and float8out, byteaout, XMLELEMENT's bytea): what every member computes a
 * row's stored generated columns and checks its CHECK constraints with,
 * whatever its postgresql.conf says, and what the leader's capture computes
 * a row again with when its session has others (capture.c check_row).  A
 * follower with extra_float_digits = 0 in postgresql.conf stored
 * '0.333333333333333' in a column GENERATED AS (x::text) where the leader
 * stored '0.3333333333333333', silently.  (XMLELEMENT of a timestamptz reads
 * TimeZone too: not pinned, see README.)
 */
static const char *const row_settings[][2] = {
        {"extra_float_digits", "1"},
        {"bytea_output", "hex"},
        {"xmlbinary", "base64"},
};

bool dr_row_settings_pinned(void)
{
	/* (every extra_float_digits above 0 prints the shortest exact form) */
	return extra_float_digits > 0 && bytea_output == BYTEA_OUTPUT_HEX &&
	       xmlbinary == XMLBINARY_BASE64;
}

void dr_set_row_settings(GucAction action)
{
	for (int i = 0; i < lengthof(row_settings); i++)
		(void)set_config_option(row_settings[i][0], row_settings[i][1], PGC_SUSET,
		                        PGC_S_SESSION, action, true, 0, false);
}

const char *dr_row_settings_text(void)
{
	return "extra_float_digits = 1, bytea_output = hex, xmlbinary = base64";
}

/*
 * The deepest value a member can receive is as deep as its max_stack_depth
 * lets the type's receive function recurse: a jsonb of 20000 levels that a
 * leader's session stored with max_stack_depth = 6MB stopped the apply of a
 * member at the default 2MB, for good ("stack depth limit exceeded").  The
 * workers take what this platform's stack allows (within a bound), never
 * less than they had.
 */
static void raise_stack_depth(void)
{
	long rlim = get_stack_depth_rlimit();
	long kb;

	if (rlim <= STACK_DEPTH_SLOP)
		return; /* unknown, or too small for any */
	kb = Min(rlim - STACK_DEPTH_SLOP, 64L * 1024 * 1024) / 1024;
	if (kb > max_stack_depth)
		SetConfigOption("max_stack_depth", psprintf("%ld", kb), PGC_SUSET, PGC_S_SESSION);
}

void dr_pin_worker_settings(void)
{
	for (int i = 0; i < lengthof(worker_settings); i++)
		SetConfigOption(worker_settings[i][0], worker_settings[i][1], PGC_SUSET,
		                PGC_S_SESSION);
	for (int i = 0; i < lengthof(row_settings); i++)
		SetConfigOption(row_settings[i][0], row_settings[i][1], PGC_SUSET, PGC_S_SESSION);
	raise_stack_depth();
	/* (an apply worker whose client encoding was LATIN1 read the leader's
	 * UTF8 'café' as 'cafÃ©') */
	SetConfigOption("client_encoding", GetDatabaseEncodingName(), PGC_SUSET, PGC_S_SESSION);
}

int dr_client_encoding_db(void)
{
	int client = pg_get_client_encoding();

	if (client == GetDatabaseEncoding())
		return -1;
	if (SetClientEncoding(GetDatabaseEncoding()) < 0)
		elog(ERROR, "dragonraft could not set the client encoding to the database's");
	return client;
}

void dr_client_encoding_restore(int client)
{
	if (client >= 0 && SetClientEncoding(client) < 0)
		elog(WARNING, "dragonraft could not set the client encoding back to \"%s\"",
		     pg_encoding_to_char(client));
}

/* In a GUC nest level of the caller's. */
void dr_default_search_path(void)
{
	(void)set_config_option("search_path", GetConfigOptionResetString("search_path"), PGC_SUSET,
	                        PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
}

/*
 * The settings that a command of execute() runs with, on every member and in
 * its try: what decides whether it fails, or how its text reads and what
 * its constants fold to (a timestamptz or date literal in a CHECK, an index
 * predicate or a partition bound).  Fixed, not each member's own: a role's
 * ALTER ROLE ... SET check_function_bodies = off reached the try only, and
 * the group stopped on every member (review 20 item 5); a member with
 * another TimeZone in postgresql.conf folded '2026-01-01 00:00' to another
 * instant (item 6).
 */
static const char *const command_settings[][2] = {
        {"check_function_bodies", "on"},
        {"standard_conforming_strings", "on"},
        /* (an E'...' string's \': refused by a member whose postgresql.conf
         * says backslash_quote = off, which stopped applying there; the
         * command's text is in the server's encoding already) */
        {"backslash_quote", "on"},
        {"allow_system_table_mods", "off"},
        {"TimeZone", "UTC"},
        {"DateStyle", "ISO, MDY"},
        {"IntervalStyle", "postgres"},
        {"extra_float_digits", "1"},
        {"lc_monetary", "C"},
        /* (how the text parses: "a = NULL" became "a IS NULL", '{NULL}' the
         * string "NULL" on a member with these in postgresql.conf: review
         * 22, TAP 073) */
        {"transform_null_equals", "off"},
        {"array_nulls", "on"},
        {"xmloption", "content"},
};

static void set_command_settings(GucAction action)
{
	for (int i = 0; i < lengthof(command_settings); i++)
		(void)set_config_option(command_settings[i][0], command_settings[i][1], PGC_SUSET,
		                        PGC_S_SESSION, action, true, 0, false);
	/* (what a rewrite computes a stored generated column with, what ADD
	 * CONSTRAINT checks the rows with) */
	dr_set_row_settings(action);
}

/* A command's search_path (NULL: this node's default) and command_settings,
 * in a GUC nest level of the caller's. */
void dr_command_search_path(const char *search_path)
{
	(void)set_config_option("search_path",
	                        search_path ? search_path
	                                    : GetConfigOptionResetString("search_path"),
	                        PGC_SUSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	set_command_settings(GUC_ACTION_SAVE);
}

void dr_as_superuser_begin(DrUserContext *s)
{
	GetUserIdAndSecContext(&s->user, &s->sec);
	s->nest = NewGUCNestLevel();
	(void)set_config_option("search_path", PINNED_SEARCH_PATH, PGC_USERSET, PGC_S_SESSION,
	                        GUC_ACTION_SAVE, true, 0, false);
	SetUserIdAndSecContext(BOOTSTRAP_SUPERUSERID, s->sec | SECURITY_LOCAL_USERID_CHANGE |
	                                                      SECURITY_RESTRICTED_OPERATION);
}

/* What the code run meanwhile set (set_config, SET in a function) is undone
 * with the nest level, as an abort undoes it: none of it reaches the caller's
 * session. */
void dr_user_context_end(const DrUserContext *s)
{
	SetUserIdAndSecContext(s->user, s->sec);
	if (s->nest >= 0)
		AtEOXact_GUC(false, s->nest);
}

/* Connect SPI with a snapshot (also at PRE_COMMIT, which has none). */
void dr_spi_begin(bool *pushed)
{
	*pushed = !ActiveSnapshotSet();
	if (*pushed)
		PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
}

void dr_spi_end(bool pushed)
{
	SPI_finish();
	if (pushed)
		PopActiveSnapshot();
}

/* The one text that sql (of $1, relid) returns, palloc'd. */
static char *describe(Oid relid, const char *sql)
{
	Oid types[1] = {OIDOID};
	Datum values[1] = {ObjectIdGetDatum(relid)};
	MemoryContext cxt = CurrentMemoryContext;
	char *def = NULL;
	bool pushed;

	dr_spi_begin(&pushed);
	/* Not read-only: the command counter moves, so that a table made earlier in this
	 * transaction (a DDL entry applied in the same batch) shows its columns. */
	if (SPI_execute_with_args(sql, 1, types, values, NULL, false, 1) == SPI_OK_SELECT &&
	    SPI_processed == 1) {
		char *v = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);

		if (v != NULL)
			def = MemoryContextStrdup(cxt, v);
	}
	dr_spi_end(pushed);
	if (def == NULL)
		elog(ERROR, "dragonraft could not describe table %u", relid);
	return def;
}

char *dr_sql_tables_definition(Oid relid)
{
	return describe(relid, "SELECT dragonraft.table_definition($1)");
}

char *dr_sql_tables_extras(Oid relid)
{
	return describe(relid, "SELECT " DR_SNAP_EXTRAS("$1::regclass"));
}

void dr_sql_tables_install(Oid relid, uint64 group_id, uint64 table_id)
{
	char *qname = quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
	                                         get_rel_name(relid));
	Oid types[3] = {INT8OID, INT8OID, OIDOID};
	Datum values[3] = {Int64GetDatum((int64)group_id), Int64GetDatum((int64)table_id),
	                   ObjectIdGetDatum(relid)};
	bool pushed;
	DrUserContext su;

	dr_spi_begin(&pushed);
	dr_internal_ddl++;
	/* As the bootstrap superuser: the caller of replicate_table owns the
	 * table, not dragonraft's catalog. */
	dr_as_superuser_begin(&su);
	PG_TRY();
	{
		if (SPI_execute(psprintf("CREATE TRIGGER " DR_CAPTURE_TRIGGER
		                         " AFTER INSERT OR UPDATE OR DELETE ON %s FOR EACH ROW "
		                         "EXECUTE FUNCTION dragonraft.capture('%llu', '%llu')",
		                         qname, (unsigned long long)group_id,
		                         (unsigned long long)table_id),
		                false, 0) != SPI_OK_UTILITY ||
		    SPI_execute(psprintf("CREATE TRIGGER " DR_TRUNCATE_TRIGGER
		                         " AFTER TRUNCATE ON %s FOR EACH STATEMENT "
		                         "EXECUTE FUNCTION dragonraft.capture('%llu', '%llu')",
		                         qname, (unsigned long long)group_id,
		                         (unsigned long long)table_id),
		                false, 0) != SPI_OK_UTILITY ||
		    /* session_replication_role = replica bypasses neither of them */
		    SPI_execute(psprintf("ALTER TABLE %s ENABLE ALWAYS TRIGGER " DR_CAPTURE_TRIGGER
		                         ", ENABLE ALWAYS TRIGGER " DR_TRUNCATE_TRIGGER,
		                         qname),
		                false, 0) != SPI_OK_UTILITY ||
		    SPI_execute_with_args("INSERT INTO dragonraft.replicated_tables "
		                          "(group_id, table_id, relid, state) "
		                          "VALUES ($1, $2, $3, 'replicated') "
		                          "ON CONFLICT (group_id, table_id) DO UPDATE "
		                          "SET relid = $3, state = 'replicated', detail = NULL",
		                          3, types, values, NULL, false, 0) != SPI_OK_INSERT)
			elog(ERROR, "dragonraft could not install its triggers on %s", qname);
	}
	PG_FINALLY();
	{
		dr_user_context_end(&su);
		dr_internal_ddl--;
	}
	PG_END_TRY();
	dr_spi_end(pushed);
}

/* The table to register, locked until the commit (writes wait; reads go on). */
/*
 * A table that may join a group: an ordinary permanent table, not a system
 * catalog or one of dragonraft's own (its registration would be committed in
 * the log and then fail on every member for ever: review 13 F8), owned by
 * the caller, as PostgreSQL 15 asks of a table added to a publication (its
 * rows go to every member; the apply worker, a superuser, installs it there).
 */
static Relation open_registered(Oid relid)
{
	Relation rel = try_table_open(relid, ExclusiveLock);
	Oid nsp;

	if (rel == NULL) /* (0::regclass, or a table dropped since: review 19) */
		ereport(ERROR, (errcode(ERRCODE_UNDEFINED_TABLE),
		                errmsg("relation with OID %u does not exist", relid)));
	nsp = RelationGetNamespace(rel);

	if (rel->rd_rel->relkind != RELKIND_RELATION ||
	    rel->rd_rel->relpersistence != RELPERSISTENCE_PERMANENT)
		ereport(ERROR,
		        (errcode(ERRCODE_WRONG_OBJECT_TYPE),
		         errmsg("\"%s\" cannot be replicated", RelationGetRelationName(rel)),
		         errdetail("Only ordinary permanent tables can be replicated (not "
		                   "partitioned, "
		                   "temporary or unlogged ones, views or foreign tables).")));
	if (IsSystemRelation(rel) || IsCatalogNamespace(nsp) ||
	    nsp == get_namespace_oid("information_schema", true) ||
	    nsp == get_namespace_oid("dragonraft", true))
		ereport(ERROR,
		        (errcode(ERRCODE_WRONG_OBJECT_TYPE),
		         errmsg("\"%s\" cannot be replicated", RelationGetRelationName(rel)),
		         errdetail("System catalogs and the tables of pg_catalog, "
		                   "information_schema and dragonraft are each node's own.")));
	if (!pg_class_ownercheck(relid, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, get_relkind_objtype(rel->rd_rel->relkind),
		               RelationGetRelationName(rel));
	/* The apply fires such a trigger as the table's owner in a
	 * security-restricted operation, where PostgreSQL defers no trigger
	 * (review 14 R4: every member's apply stopped on it for good). */
	for (int i = 0; rel->trigdesc != NULL && i < rel->trigdesc->numtriggers; i++) {
		const Trigger *tg = &rel->trigdesc->triggers[i];

		if (tg->tgdeferrable && (tg->tgenabled == TRIGGER_FIRES_ALWAYS ||
		                         tg->tgenabled == TRIGGER_FIRES_ON_REPLICA))
			ereport(ERROR,
			        (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			         errmsg("\"%s\" cannot be replicated: its trigger \"%s\" is "
			                "deferrable "
			                "and fires on apply",
			                RelationGetRelationName(rel), tg->tgname),
			         errdetail("Members fire a table's triggers ENABLE ALWAYS or "
			                   "REPLICA as "
			                   "its owner in a security-restricted operation, where "
			                   "PostgreSQL fires no deferred trigger."),
			         errhint("Make the trigger NOT DEFERRABLE, or ENABLE it (for "
			                 "writes on "
			                 "the leader only).")));
	}
	return rel;
}

Datum dr_replicate_table(PG_FUNCTION_ARGS)
{
	Oid relid = PG_GETARG_OID(0);
	int64 group_id = PG_GETARG_INT64(1);
	Relation rel;

	dr_sql_groups_check_engine();
	if (group_id < 1)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
		                errmsg("group id must be a positive integer")));
	/* (its catalog rows and triggers are written at the commit, once the log
	 * took the registration: review 19 F5) */
	PreventCommandIfReadOnly("dragonraft.replicate_table()");
	rel = open_registered(relid);
	if (dr_capture_rel_replicated(rel, NULL, NULL))
		ereport(ERROR,
		        (errcode(ERRCODE_DUPLICATE_OBJECT),
		         errmsg("table \"%s\" is replicated already", RelationGetRelationName(rel)),
		         errhint("See dragonraft.tables.")));
	dr_capture_refuse_cycle(rel);
	for (int i = 0; i < RelationGetDescr(rel)->natts; i++) {
		Form_pg_attribute a = TupleDescAttr(RelationGetDescr(rel), i);

		if (!a->attisdropped)
			dr_capture_refuse_type(RelationGetRelationName(rel), NameStr(a->attname),
			                       a->atttypid, InvalidOid);
	}
	table_close(rel, NoLock);
	dr_sql_groups_check_locale(group_id, "dragonraft.replicate_table", false);
	/* (the registration follows this node's member info in the log) */
	dr_sql_groups_wait_info(group_id, "dragonraft.replicate_table", true);
	dr_capture_register(relid, (uint64)group_id, 0);
	PG_RETURN_VOID();
}

/*
 * The registration of a replicated table, sent through the log again with
 * its rows: members that refused it (and whose own table was dropped or
 * fixed since) take it as from the first; the others have it already.
 */
Datum dr_resend_table(PG_FUNCTION_ARGS)
{
	Oid relid = PG_GETARG_OID(0);
	uint64 group_id, table_id;
	Relation rel;

	dr_sql_groups_check_engine();
	PreventCommandIfReadOnly("dragonraft.resend_table()");
	rel = open_registered(relid);
	if (!dr_capture_rel_replicated(rel, &group_id, &table_id))
		ereport(ERROR,
		        (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		         errmsg("table \"%s\" is not replicated on this node",
		                RelationGetRelationName(rel)),
		         errhint("Run resend_table on the group's leader; a table not replicated "
		                 "yet is registered with replicate_table.")));
	table_close(rel, NoLock);
	dr_sql_groups_check_locale((int64)group_id, "dragonraft.resend_table", false);
	dr_sql_groups_wait_info((int64)group_id, "dragonraft.resend_table", true);
	dr_capture_register(relid, group_id, table_id);
	PG_RETURN_VOID();
}

/* The group here (NULL: none; valid only for its condition variable): its
 * applied index, and its apply failures and error (apply_worker.c). */
static DrGroup *read_group(uint64 group_id, uint64 *applied, uint32 *failures,
                           char error[DR_ERROR_LEN])
{
	DrGroup *g;

	LWLockAcquire(dr_shared->groups_lock, LW_SHARED);
	g = dr_shmem_group_find(group_id);
	if (g != NULL) {
		SpinLockAcquire(&g->mutex);
		*applied = g->applied;
		*failures = g->apply_failures;
		memcpy(error, g->error, DR_ERROR_LEN);
		SpinLockRelease(&g->mutex);
		error[DR_ERROR_LEN - 1] = '\0';
	}
	LWLockRelease(dr_shared->groups_lock);
	return g;
}

/*
 * The group's apply stopped here (an entry failed): the command, proposed
 * as entry index or about to be (0), would not run here until the cause is
 * fixed.
 */
static void check_apply_goes_on(uint64 group_id, uint64 index, uint64 applied, uint32 failures,
                                const char *error)
{
	if (failures == 0)
		return;
	ereport(ERROR,
	        (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
	         index > 0
	                 ? errmsg("the command is entry %llu of dragonraft group %llu, but this "
	                          "node's apply of the group stopped after entry %llu: %s",
	                          (unsigned long long)index, (unsigned long long)group_id,
	                          (unsigned long long)applied, error)
	                 : errmsg("this node's apply of dragonraft group %llu stopped after "
	                          "entry %llu: %s",
	                          (unsigned long long)group_id, (unsigned long long)applied, error),
	         index > 0 ? errdetail("Every member runs the command in log order; a member "
	                               "where an entry fails stops applying the group.")
	                   : errdetail("Nothing was proposed."),
	         errhint("Fix the cause here (see dragonraft.status): the apply is tried again "
	                 "and goes on by itself.")));
}

/* Wait (cancellable) until the group applied index here; an error if its
 * apply stopped here.  life: the group's incarnation (DrGroup.life) that
 * took the command: a group left here meanwhile (and maybe made again, same
 * id, another log, whose applied index says nothing of this entry: rev58)
 * does not run it here, 40003. */
static void wait_applied(uint64 group_id, uint64 life, uint64 index)
{
	TimestampTz next_lock_check = 0;

	for (;;) {
		uint64 applied = 0;
		uint32 failures = 0;
		char error[DR_ERROR_LEN];
		DrGroup *g = read_group(group_id, &applied, &failures, error);

		if ((g == NULL || g->life != life) && !dr_shmem_engine_running()) {
			/* (the next engine worker adds it again: shmem.c) */
			dr_shmem_engine_wait();
			CHECK_FOR_INTERRUPTS();
			continue;
		}
		if (g == NULL || g->life != life) {
			ConditionVariableCancelSleep();
			ereport(ERROR,
			        (errcode(ERRCODE_T_R_STATEMENT_COMPLETION_UNKNOWN),
			         errmsg("dragonraft group %llu went away on this node while the "
			                "command waited to be applied",
			                (unsigned long long)group_id),
			         errdetail(
			                 "It is entry %llu of the log of the group as it was: the "
			                 "other members run it, this node does not.",
			                 (unsigned long long)index),
			         errhint("See dragonraft.ddl_history on a member of the group.")));
		}
		if (applied >= index)
			break;
		check_apply_goes_on(group_id, index, applied, failures, error);
		if (dr_xact_unblock_apply(&next_lock_check))
			ereport(ERROR,
			        (errcode(ERRCODE_T_R_STATEMENT_COMPLETION_UNKNOWN),
			         errmsg("the command in dragonraft group %llu waits for a lock "
			                "that "
			                "this statement holds",
			                (unsigned long long)group_id),
			         errdetail("It is entry %llu of the group's log; every member runs "
			                   "it once this transaction ends.",
			                   (unsigned long long)index),
			         errhint("Call dragonraft.execute in a statement that reads no "
			                 "table "
			                 "the command changes; see dragonraft.ddl_history.")));
		(void)ConditionVariableTimedSleep(&g->applied_cv, 100, PG_WAIT_EXTENSION);
	}
	ConditionVariableCancelSleep();
}

/* In a PG_CATCH after the proposal was sent: a cancel or statement_timeout
 * leaves the command to the log, where it may commit and run (40003), once
 * the engine worker took it. */
static void unknown_if_cancelled(MemoryContext cxt, int64 group_id)
{
	ErrorData *ed;

	MemoryContextSwitchTo(cxt);
	ed = CopyErrorData();
	if (ed->sqlerrcode != ERRCODE_QUERY_CANCELED)
		return;
	FlushErrorState();
	if (dr_queue_last_untaken())
		ereport(ERROR, (errcode(ERRCODE_QUERY_CANCELED), errmsg("%s", ed->message),
		                errdetail("The engine worker had not taken the command: nothing "
		                          "was proposed.")));
	ereport(ERROR,
	        (errcode(ERRCODE_T_R_STATEMENT_COMPLETION_UNKNOWN),
	         errmsg("the outcome of the command in dragonraft group %lld is unknown",
	                (long long)group_id),
	         errdetail("The command was proposed before the statement ended (%s): it may "
	                   "still run on every member.",
	                   ed->message),
	         errhint("See dragonraft.ddl_history on any member.")));
}

/* A SELECT of constants only, such as SELECT 1: a barrier through the log. */
static bool constant_select(const SelectStmt *s)
{
	ListCell *lc;

	if (s->op != SETOP_NONE || s->fromClause != NIL || s->whereClause != NULL ||
	    s->intoClause != NULL || s->valuesLists != NIL || s->withClause != NULL ||
	    s->groupClause != NIL || s->havingClause != NULL || s->lockingClause != NIL ||
	    s->distinctClause != NIL || s->sortClause != NIL || s->limitCount != NULL ||
	    s->limitOffset != NULL)
		return false;
	foreach (lc, s->targetList) {
		ResTarget *rt = lfirst_node(ResTarget, lc);

		if (!IsA(rt->val, A_Const))
			return false;
	}
	return true;
}

/*
 * A command's raw parse trees as it runs, on every member and in its try: with
 * standard_conforming_strings and backslash_quote on (command_settings), not
 * the session's or this member's own.  Else the same text read otherwise:
 * SELECT 'x\'; INSERT ...; --' is one constant SELECT with
 * standard_conforming_strings off, a SELECT and an INSERT as it runs.
 */
List *dr_parse_command(const char *command)
{
	bool scs = standard_conforming_strings;
	int bq = backslash_quote;
	List *volatile stmts = NIL;

	standard_conforming_strings = true;
	backslash_quote = BACKSLASH_QUOTE_ON;
	PG_TRY();
	{
		stmts = raw_parser(command, RAW_PARSE_DEFAULT);
	}
	PG_FINALLY();
	{
		standard_conforming_strings = scs;
		backslash_quote = bq;
	}
	PG_END_TRY();
	return stmts;
}

/*
 * Is command a barrier: SELECTs of constants only (all check_utility_only
 * lets through besides utility commands)?  It changes nothing, whatever the
 * schema it runs against, so it neither makes another command's try stale
 * nor goes stale itself: no command is skipped for it, it is never skipped
 * for another, and no writer fails for it (apply_rows.c, xact.c).  Told from
 * the command's text alone, as PostgreSQL's grammar reads it with the
 * command's own standard_conforming_strings and backslash_quote (on): every
 * member, and a snapshot's history, tell alike.  A command that does not parse is none.
 */
bool dr_sql_tables_barrier(const char *command)
{
	MemoryContext cxt = CurrentMemoryContext;
	/* (the parse, about 2 kB, goes with it: a restart reads every barrier
	 * after the group's last command, dr_apply_rows_last_command) */
	MemoryContext parse = AllocSetContextCreate(cxt, "dragonraft barrier", ALLOCSET_SMALL_SIZES);
	List *volatile stmts = NIL;
	ListCell *lc;
	bool barrier;

	MemoryContextSwitchTo(parse);
	PG_TRY();
	{
		stmts = dr_parse_command(command);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(parse);
		FlushErrorState();
		stmts = NIL;
	}
	PG_END_TRY();
	barrier = stmts != NIL;
	foreach (lc, stmts) {
		Node *n = lfirst_node(RawStmt, lc)->stmt;

		if (!IsA(n, SelectStmt) || !constant_select((SelectStmt *)n))
			barrier = false;
	}
	MemoryContextSwitchTo(cxt);
	MemoryContextDelete(parse);
	return barrier;
}

/*
 * execute() takes utility commands (DDL) only.  A command that reads or
 * writes rows, or runs code of its own, would run in each member's apply
 * worker (session_replication_role = replica: no triggers, no foreign key
 * checks) and could give each member its own result; rows replicate as DML.
 */
static void check_utility_only(const char *command)
{
	/* (as the command runs: with this session's standard_conforming_strings
	 * off, SELECT 'x\'; INSERT ...; --' read as one constant SELECT here) */
	List *stmts = dr_parse_command(command);
	ListCell *lc;

	/* (blanks, ';' or a comment alone: an entry that does nothing; review 19) */
	if (stmts == NIL)
		ereport(ERROR,
		        (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("the command is empty")));
	foreach (lc, stmts) {
		Node *n = lfirst_node(RawStmt, lc)->stmt;
		const char *what = NULL;

		switch (nodeTag(n)) {
		case T_SelectStmt:
			what = constant_select((SelectStmt *)n) ? NULL : "SELECT";
			break;
		case T_InsertStmt:
		case T_UpdateStmt:
		case T_DeleteStmt:
		case T_MergeStmt:
		case T_TruncateStmt:
		case T_CopyStmt:
			what = "a command that changes rows";
			break;
		case T_CreateTableAsStmt:
		case T_RefreshMatViewStmt:
			what = "a command that fills a table from a query";
			break;
		case T_TransactionStmt:
		case T_ListenStmt:
			/* (review 19 F4: PostgreSQL refuses LISTEN in a background process,
			 * so it passed the try and stopped the group's apply on every
			 * member; a transaction control command failed as 'SPI_execute
			 * failed') */
			ereport(ERROR,
			        (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			         errmsg("dragonraft.execute cannot run %s",
			                IsA(n, ListenStmt) ? "LISTEN"
			                                   : "a transaction control command"),
			         errdetail("Every member runs the command in a transaction of its "
			                   "apply worker, a background process.")));
			break;
		case T_DeallocateStmt:
		case T_FetchStmt:
		case T_ClosePortalStmt:
			/* (review 19 F4: the try here deallocated or closed this session's
			 * own, for good, and the apply worker had none: the group stopped
			 * on every member) */
			ereport(ERROR,
			        (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			         errmsg("dragonraft.execute cannot run %s",
			                IsA(n, DeallocateStmt) ? "DEALLOCATE"
			                : IsA(n, FetchStmt)    ? "FETCH or MOVE"
			                                       : "CLOSE"),
			         errdetail(
			                 "It acts on the prepared statements or cursors of a "
			                 "session, and every member runs the command in its apply "
			                 "worker's session.")));
			break;
		case T_CallStmt:
		case T_DoStmt:
		case T_ExecuteStmt:
		case T_PrepareStmt:
		case T_ExplainStmt:
		case T_DeclareCursorStmt:
			what = "a command that runs a query or code";
			break;
		default:
			break;
		}
		if (what != NULL)
			ereport(ERROR,
			        (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			         errmsg("dragonraft.execute runs utility commands only, not %s",
			                what),
			         errdetail("Every member would run it with "
			                   "session_replication_role = "
			                   "replica, and could get its own result."),
			         errhint("Change the rows of a replicated table with ordinary SQL "
			                 "on "
			                 "the leader.")));
	}
}

/* The sequences whose RowExclusiveLock this backend holds (SPI connected). */
static List *sequences_locked(void)
{
	if (SPI_execute("SELECT l.relation FROM pg_catalog.pg_locks l "
	                "JOIN pg_catalog.pg_class c ON c.oid = l.relation "
	                "WHERE l.pid = pg_catalog.pg_backend_pid() AND l.locktype = 'relation' "
	                "AND l.database = (SELECT oid FROM pg_catalog.pg_database "
	                "WHERE datname = pg_catalog.current_database()) "
	                "AND l.mode = 'RowExclusiveLock' AND l.granted AND c.relkind = 'S'",
	                true, 0) != SPI_OK_SELECT)
		elog(ERROR, "dragonraft could not read pg_locks");
	return dr_spi_oids();
}

List *dr_spi_oids(void)
{
	List *oids = NIL;

	for (uint64 i = 0; i < SPI_processed; i++) {
		bool isnull;

		oids = lappend_oid(
		        oids, DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
		                                             SPI_tuptable->tupdesc, 1, &isnull)));
	}
	return oids;
}

/*
 * A command must have one outcome on every member: a member where a command
 * of the log fails stops applying the group until the cause is fixed there
 * (apply_rows.c).  So the calling node tries it first, as its apply worker
 * will run it (as this role, in the same security context, with the
 * search_path the entry carries), in a subtransaction rolled back at once: a
 * command that fails here is refused and never enters the log.  While it
 * runs, the hooks let it change the group's replicated tables and refuse
 * what would make members diverge (utility.c).  It waits for the locks it
 * needs as the command would.  (A read barrier first: it sees every command
 * committed before execute() was called, wherever it was proposed.)
 */
static void try_here(int64 group_id, const char *command, const char *search_path)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	ErrorData *volatile ed = NULL;
	Oid save_user;
	int save_sec;
	List *locked, *now, *cycle, *lacking;
	Datum known;
	ListCell *lc;
	uint32 temp_before = MyXactFlags & XACT_FLAGS_ACCESSEDTEMPNAMESPACE;
	bool temp_used;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	locked = sequences_locked();
	known = dr_capture_cycle_before((uint64)group_id, &cycle);
	/* (PostgreSQL's own record of a transaction that operated on temporary
	 * objects, which PREPARE TRANSACTION refuses: cleared for the try) */
	MyXactFlags &= ~XACT_FLAGS_ACCESSEDTEMPNAMESPACE;
	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	GetUserIdAndSecContext(&save_user, &save_sec);
	dr_execute_group = (uint64)group_id;
	PG_TRY();
	{
		SetUserIdAndSecContext(save_user, save_sec | SECURITY_LOCAL_USERID_CHANGE);
		(void)set_config_option("search_path", search_path, PGC_USERSET, PGC_S_SESSION,
		                        GUC_ACTION_LOCAL, true, 0, false);
		/* (as every member runs it: review 19 F3, a function body that did not
		 * compile passed with this session's check_function_bodies off) */
		set_command_settings(GUC_ACTION_LOCAL);
		/* (the whole command: REVOKE EXECUTE FROM PUBLIC and then GRANT it to
		 * the owner, as pg_restore does, passes) */
		lacking = dr_owners_lacking();
		if (SPI_execute(command, false, 0) < 0)
			elog(ERROR, "SPI_execute failed");
		dr_check_owners_execute(lacking);
		dr_capture_cycle_after((uint64)group_id, known, cycle);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		ed = CopyErrorData();
		FlushErrorState();
	}
	PG_END_TRY();
	dr_execute_group = 0;
	temp_used = (MyXactFlags & XACT_FLAGS_ACCESSEDTEMPNAMESPACE) != 0;
	MyXactFlags |= temp_before;
	SetUserIdAndSecContext(save_user, save_sec);
	RollbackAndReleaseCurrentSubTransaction();
	MemoryContextSwitchTo(cxt);
	CurrentResourceOwner = owner;
	/* ALTER SEQUENCE locked its sequence for the whole transaction (as nextval does,
	 * sequence.c): the apply worker's run of the command would wait for this one. */
	now = sequences_locked();
	foreach (lc, now) {
		if (list_member_oid(locked, lfirst_oid(lc)))
			continue;
		CurrentResourceOwner = TopTransactionResourceOwner;
		UnlockRelationOid(lfirst_oid(lc), RowExclusiveLock);
		CurrentResourceOwner = owner;
	}
	SPI_finish();
	/* A temporary object lives in one session: the members' apply workers
	 * would lack this session's (the command fails there and stops the
	 * group's apply on every member), and one it made would stay in the apply
	 * worker's session (the next command that makes it fails there). */
	if (ed == NULL && temp_used)
		ereport(ERROR,
		        (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
		         errmsg("dragonraft.execute cannot run a command that operates on "
		                "temporary objects"),
		         errdetail("Every member runs the command in its apply worker's session, "
		                   "which has no temporary object of this session and keeps one "
		                   "the command makes: nothing was proposed."),
		         errhint("Run commands on temporary objects in your own session, "
		                 "outside dragonraft.execute.")));
	if (ed != NULL)
		ereport(ERROR,
		        (errcode(ed->sqlerrcode), errmsg_internal("%s", ed->message),
		         errdetail("%s%sThe command failed when dragonraft.execute tried it on "
		                   "this node first: nothing was proposed.",
		                   ed->detail ? ed->detail : "", ed->detail ? " " : ""),
		         ed->hint ? errhint("%s", ed->hint) : 0));
}

/*
 * Was the command of entry index skipped on every member because another
 * command of the group came first (apply_rows.c)?  That command's index,
 * else 0.  Read once the entry is applied here, with a new snapshot (the
 * statement's may be older than that apply).
 */
static uint64 preempted_by(uint64 group_id, uint64 index)
{
	Oid types[2] = {INT8OID, INT8OID};
	Datum values[2] = {Int64GetDatum((int64)group_id), Int64GetDatum((int64)index)};
	uint64 first = 0;
	DrUserContext su;
	int rc;

	/* As the bootstrap superuser: the caller need not see the catalog table. */
	dr_as_superuser_begin(&su);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetLatestSnapshot());
	rc = SPI_execute_with_args("SELECT preempted_by FROM dragonraft.ddl_history "
	                           "WHERE group_id = $1 AND index = $2",
	                           2, types, values, NULL, true, 1);
	PopActiveSnapshot();
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "dragonraft could not read dragonraft.ddl_history");
	if (SPI_processed == 1) {
		bool isnull;
		Datum d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
			first = (uint64)DatumGetInt64(d);
	}
	SPI_finish();
	dr_user_context_end(&su);
	return first;
}

/* The transaction that called execute() last (one call per transaction). */
static LocalTransactionId execute_lxid = InvalidLocalTransactionId;

/* (advisory locks of SQL use 1 and 2 there) */
#define DR_EXECUTE_LOCK_FIELD4 0xD5A7

/*
 * One execute() of a group at a time on this node, from its try until its
 * command is applied here (review 19 F7): a second try that ran after the
 * first one rolled back and before its command was applied here passed,
 * and entered the log a command that then failed on every member (two
 * sessions creating one table: the group stopped on every member).  Waits
 * as a cancellable loop, not in the lock manager, and gives up at once if
 * the apply worker waits for a lock this statement holds.  (Calls on two
 * nodes at once still race: the entry of the second is skipped by every
 * member, and it fails with 40001.)
 */
static void lock_group_commands(uint64 group_id, LOCKTAG *tag)
{
	TimestampTz next_lock_check = 0;

	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, (uint32)(group_id >> 32), (uint32)group_id,
	                     DR_EXECUTE_LOCK_FIELD4);
	while (LockAcquire(tag, ExclusiveLock, false, true) == LOCKACQUIRE_NOT_AVAIL) {
		if (dr_xact_unblock_apply(&next_lock_check))
			ereport(ERROR, (errcode(ERRCODE_LOCK_NOT_AVAILABLE),
			                errmsg("dragonraft.execute waits for another command of "
			                       "group %llu, "
			                       "which waits for a lock that this statement holds",
			                       (unsigned long long)group_id),
			                errdetail("Nothing was proposed."),
			                errhint("Call dragonraft.execute in a statement that reads "
			                        "no table "
			                        "the other command changes.")));
		(void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 10,
		                PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

Datum dr_execute(PG_FUNCTION_ARGS)
{
	int64 group_id = PG_GETARG_INT64(0);
	char *command = text_to_cstring(PG_GETARG_TEXT_PP(1));
	struct entry_ddl d;
	struct entry_buf b = {0};
	DrResult res;
	void *entry;
	uint64 applied = 0;
	uint32 failures = 0;
	char error[DR_ERROR_LEN];
	MemoryContext cxt = CurrentMemoryContext;
	LOCKTAG tag;
	bool barrier;
	uint64 first, life;
	uint8 state = DR_MEMBER_ACTIVE;

	dr_sql_groups_check_engine();
	dr_sql_groups_state(group_id, &state, &failures, error);
	/* (the barrier below said so inside "could not wait for this node to
	 * apply", with "retry once ... the group applying here": review 69) */
	if (state == DR_MEMBER_LOST || state == DR_MEMBER_FAILED)
		dr_sql_groups_stopped(group_id, error, "Nothing was proposed.");
	/* A second call in one statement (SELECT dragonraft.execute(...) FROM
	 * generate_series(1, 2)) or function: the first call's command runs on
	 * every member whatever becomes of this transaction.  (Its try gave the
	 * transaction an XID: it was refused below as "after a write".) */
	if (execute_lxid == MyProc->lxid)
		ereport(ERROR,
		        (errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
		         errmsg("dragonraft.execute can run only once in a transaction"),
		         errdetail("This transaction called it before: that call's command is "
		                   "applied on every member, and nothing that becomes of this "
		                   "transaction can undo it."),
		         errhint("Call it in a transaction of its own for each command, or pass "
		                 "the commands together, separated by semicolons: every member "
		                 "runs them in one entry.")));
	/* The apply worker runs the command in log order and waits for the locks
	 * it needs; this backend would wait for that apply while holding its
	 * transaction's locks (a cycle no deadlock detector sees), and a ROLLBACK
	 * could not undo the command on the members.  (A multi-statement query
	 * string is a block too, as for VACUUM.) */
	if (IsTransactionBlock() || TransactionIdIsValid(GetTopTransactionIdIfAny()))
		ereport(ERROR, (errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
		                errmsg("dragonraft.execute cannot run inside a transaction block "
		                       "or after a write of its transaction"),
		                errhint("Call it in a transaction of its own.")));
	d.node_id = (uint32)dr_node_id;
	d.command = command;
	d.len = (uint32)strlen(command);
	if (d.len == 0)
		ereport(ERROR,
		        (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("the command is empty")));
	check_utility_only(command);
	execute_lxid = MyProc->lxid;
	lock_group_commands((uint64)group_id, &tag);
	(void)read_group((uint64)group_id, &applied, &failures, error); /* (after the wait) */
	check_apply_goes_on((uint64)group_id, 0, applied, failures, error);
	PG_TRY();
	{
		(void)dr_read_barrier((uint64)group_id);
	}
	PG_CATCH();
	{
		ErrorData *ed;

		MemoryContextSwitchTo(cxt);
		ed = CopyErrorData();
		FlushErrorState();
		ereport(ERROR, (errcode(ed->sqlerrcode),
		                errmsg("dragonraft.execute could not wait for this node to apply "
		                       "the log of group %lld",
		                       (long long)group_id),
		                errdetail("%s%s%s", dr_sentence(ed->message),
		                          ed->detail ? "  " : "", ed->detail ? ed->detail : ""),
		                errhint("Nothing was proposed.  Retry once dragonraft.status shows "
		                        "a leader and the group applying here.")));
	}
	PG_END_TRY();
	/* (after the barrier: the members' infos of the log up to here) */
	barrier = dr_sql_tables_barrier(command);
	dr_sql_groups_check_locale(group_id, "dragonraft.execute", barrier);
	/* (a barrier's members check the encoding its entry says, not its
	 * proposer's info) */
	if (!barrier)
		dr_sql_groups_wait_info(group_id, "dragonraft.execute", false);
	/* Every member runs it as this role (by name), with its privileges there,
	 * and with the search_path this session has by default (its role's and
	 * database's settings here), tried here first. */
	d.search_path = pstrdup(GetConfigOptionResetString("search_path"));
	d.search_path_len = (uint32)strlen(d.search_path);
	/* The group's last command that the try sees (it may see later ones: then
	 * its command is skipped for one of those, a needless but safe 40001).  A
	 * command of the log between this one and the entry, which another node
	 * proposed meanwhile, makes every member skip it (apply_rows.c); a barrier
	 * (dr_sql_tables_barrier) neither does nor is ever skipped. */
	d.has_schema_index = 1;
	d.schema_index = dr_xact_schema_index((uint64)group_id);
	try_here(group_id, command, d.search_path);
	d.role = GetUserNameFromId(GetUserId(), false);
	d.role_len = (uint16)strlen(d.role);
	/* (in the database's encoding: a member whose database has another refuses it) */
	if (entry_encode_ddl(&b, &d) != ENTRY_OK ||
	    entry_set_encoding(b.data, b.len, GetDatabaseEncoding()) != ENTRY_OK ||
	    b.len > (size_t)dr_max_entry_size)
		ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
		                errmsg("the command exceeds dragonraft.max_entry_size"),
		                errdetail("Nothing was proposed."),
		                errhint("Split it into several commands.")));
	entry = palloc(b.len);
	memcpy(entry, b.data, b.len);
	free(b.data);
	life = dr_shmem_group_life((uint64)group_id);
	for (TimestampTz busy_since = 0;; dr_busy_wait((uint64)group_id, &busy_since)) {
		PG_TRY();
		{
			dr_queue_call(DR_REQ_PROPOSE, (uint64)group_id, 0, entry, b.len, &res);
		}
		PG_CATCH();
		{
			unknown_if_cancelled(cxt, group_id);
			PG_RE_THROW();
		}
		PG_END_TRY();
		if (res.rc != ENGINE_ERR_BUSY)
			break;
	}
	dr_busy_end();
	pfree(entry);
	switch (res.rc) {
	case ENGINE_OK:
		break;
	case ENGINE_ERR_DROPPED:
	case ENGINE_ERR_NOT_LEADER:
		ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		                errmsg("dragonraft group %lld has no leader to take the command",
		                       (long long)group_id),
		                errdetail("Nothing was proposed."),
		                errhint("Try again once the group has elected a leader.")));
		break;
	default:
		dr_proposal_refused(&res, (uint64)group_id, "command");
		ereport(ERROR,
		        (errcode(ERRCODE_T_R_STATEMENT_COMPLETION_UNKNOWN),
		         errmsg("the outcome of the command in dragonraft group %lld is unknown",
		                (long long)group_id),
		         errdetail("%s", dr_sentence(res.rc > -100 ? engine_strerror(res.rc)
		                                                   : "the engine worker exited")),
		         errhint("See dragonraft.ddl_history on any member.")));
	}
	PG_TRY();
	{
		wait_applied((uint64)group_id, life, res.index);
	}
	PG_CATCH();
	{
		unknown_if_cancelled(cxt, group_id);
		PG_RE_THROW();
	}
	PG_END_TRY();
	(void)LockRelease(&tag, ExclusiveLock, false);
	/* Applied here: the command ran, or was skipped for another (which
	 * preempted_by tells).  A cancel or timeout during that last query (a lock
	 * on ddl_history can hold it up for as long as it is held: review 27) is
	 * 40003, not 57014: the command is in the log. */
	PG_TRY();
	{
		first = preempted_by((uint64)group_id, res.index);
	}
	PG_CATCH();
	{
		unknown_if_cancelled(cxt, group_id);
		PG_RE_THROW();
	}
	PG_END_TRY();
	if (first > 0)
		ereport(ERROR,
		        (errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
		         errmsg("could not serialize access: another command of dragonraft group "
		                "%lld came first",
		                (long long)group_id),
		         errdetail(
		                 "The command at log index %llu entered the log after this command "
		                 "was tried here and before its entry (%llu): every member skipped "
		                 "this one, and nothing of it was applied.",
		                 (unsigned long long)first, (unsigned long long)res.index),
		         errhint("Retry dragonraft.execute: it tries the command again against the "
		                 "schema as it is now.")));

	PG_RETURN_INT64((int64)res.index);
}

/*
 * skip_command(): on a member whose apply of the group stopped at the
 * command of entry index (it failed here: apply_rows.c, or when a snapshot's
 * load ran it again: snapshot_load.c), ask the apply worker (or the load) to
 * skip that command here if it fails again, as ALTER SUBSCRIPTION ... SKIP
 * does.  Nothing else is ever skipped.
 */
Datum dr_skip_command(PG_FUNCTION_ARGS)
{
	int64 group_id = PG_GETARG_INT64(0);
	int64 index = PG_GETARG_INT64(1);
	uint64 applied = 0;
	uint32 failures = 0;
	char error[DR_ERROR_LEN];
	Oid types[2] = {INT8OID, INT8OID};
	Datum values[2] = {Int64GetDatum(group_id), Int64GetDatum(index)};
	DrUserContext su;
	int rc;
	const char *at;
	unsigned long long failed;

	dr_sql_groups_check_engine();
	if (group_id < 1 || read_group((uint64)group_id, &applied, &failures, error) == NULL)
		dr_sql_groups_missing(group_id, NULL);
	/* (apply_rows.c words the failure of a command so; a command begins an
	 * apply batch, so it stopped right before it; snapshot_load.c words so a
	 * command that a snapshot's load ran again) */
	at = strstr(error, "the command at entry ");
	if (at == NULL || sscanf(at, "the command at entry %llu ", &failed) != 1)
		failed = 0;
	at = strstr(error, " at entry ");
	if (at != NULL && strstr(at, "failed when its snapshot's load ran it") != NULL &&
	    sscanf(at, " at entry %llu ", &failed) != 1)
		failed = 0;
	if (failures == 0 || index < 1 || (uint64)index != failed)
		ereport(ERROR,
		        (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		         errmsg("this node's apply of dragonraft group %lld did not stop at the "
		                "command of entry %lld",
		                (long long)group_id, (long long)index),
		         failures > 0
		                 ? errdetail("%s", dr_sentence(psprintf(
		                                           "It stopped after entry %llu: %s",
		                                           (unsigned long long)applied, error)))
		                 : errdetail("It goes on."),
		         errhint("Pass skip_command the entry of the command at which the apply "
		                 "stopped: see error in dragonraft.status.")));
	/* As the bootstrap superuser: dragonraft_admin may ask, not write the table. */
	dr_as_superuser_begin(&su);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	rc = SPI_execute_with_args("INSERT INTO dragonraft.skip_requests (group_id, index) "
	                           "VALUES ($1, $2) ON CONFLICT DO NOTHING",
	                           2, types, values, NULL, false, 0);
	SPI_finish();
	dr_user_context_end(&su);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "dragonraft could not record the request to skip a command");
	ereport(NOTICE, (errmsg("the command is skipped on this node at the next try of the "
	                        "group's apply"),
	                 errhint("See dragonraft.status and dragonraft.ddl_failures.")));
	PG_RETURN_VOID();
}
