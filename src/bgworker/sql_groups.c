/*
 * sql_groups.c - SQL functions that act on groups (DESIGN §6):
 * create_group() and transfer_leader().  They check what they can here and
 * hand the rest to the engine worker through the request queue (queue.c);
 * every outcome becomes a clear error with its SQLSTATE.
 */
#include "dragonraft.h"

#include <ctype.h>
#include <limits.h>

#include "access/htup_details.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_database.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "engine/engine.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "membership.h"
#include "miscadmin.h"
#include "queue.h"
#include "raft/raft.h"
#include "shmem.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"
#include "write.h"

PG_FUNCTION_INFO_V1(dr_create_group);
PG_FUNCTION_INFO_V1(dr_transfer_leader);

/*
 * A damaged LogDB's engine worker waits until engine_retry_at (up to 5 min) before it opens
 * it again (engine_worker.c damaged_exit): "after a few seconds" was wrong then (review 31).
 */
const char *dr_engine_restart_hint(void)
{
	TimestampTz at;

	SpinLockAcquire(&dr_shared->mutex);
	at = dr_shared->engine_retry_at;
	SpinLockRelease(&dr_shared->mutex);
	if (at > GetCurrentTimestamp())
		return psprintf(
		        "The LogDB was found damaged: the next engine worker opens it at %s "
		        "(dragonraft.node_status().engine_retry_at), or at once when "
		        "\"%s/logdb\" is moved aside; see the server log's HINT.",
		        timestamptz_to_str(at), dr_data_dir);
	return "See dragonraft.node_status() and the server log; the postmaster restarts a "
	       "stopped engine worker after a few seconds.";
}

int dr_sql_groups_errcode(int rc)
{
	switch (rc) {
	case ENGINE_ERR_NOMEM:
		return ERRCODE_OUT_OF_MEMORY;
	case ENGINE_ERR_BUSY: /* (as a write's busy_timeout) */
		return ERRCODE_INSUFFICIENT_RESOURCES;
	case ENGINE_ERR_PENDING:
		return ERRCODE_OBJECT_IN_USE;
	case ENGINE_ERR_TOO_BIG:
		return ERRCODE_PROGRAM_LIMIT_EXCEEDED;
	case ENGINE_ERR_UNKNOWN:
	case ENGINE_ERR_TIMEOUT:
		return ERRCODE_T_R_STATEMENT_COMPLETION_UNKNOWN;
	case ENGINE_ERR_NO_GROUP:
	case ENGINE_ERR_NOT_FOUND:
		return ERRCODE_UNDEFINED_OBJECT;
	case ENGINE_ERR_EXISTS:
		return ERRCODE_DUPLICATE_OBJECT;
	case ENGINE_ERR_REJECTED: /* (as a refused membership change) */
		return ERRCODE_INVALID_PARAMETER_VALUE;
	case ENGINE_ERR_NOT_LEADER:
	case ENGINE_ERR_DROPPED:
	case ENGINE_ERR_STORAGE:
	case ENGINE_ERR_SM:
	case ENGINE_ERR_STOPPED:
	case ENGINE_ERR_SNAPSHOT:
	case ENGINE_ERR_FAILED:
	case ENGINE_ERR_NOT_HELD:
	case DR_RC_ENGINE_EXITED:
	case DR_RC_ENGINE_STALLED:
	case DR_RC_NOT_TAKEN:
		return ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE;
	}
	return ERRCODE_INTERNAL_ERROR;
}

/*
 * As PostgreSQL names what is missing ("replication slot \"s\" does not
 * exist"), with "dragonraft" so that it reads alike from a write's COMMIT.
 * Before review 69 some functions said "group N", others "dragonraft group
 * N", only a few gave a hint, and execute(0) said 42704 where read_barrier(0)
 * said 22023.
 */
void dr_sql_groups_missing(int64 group_id, const char *detail)
{
	/* As create_group, join_group, read_barrier and the digests refuse one. */
	if (group_id < 1)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
		                errmsg("group id must be a positive integer")));
	ereport(ERROR,
	        (errcode(ERRCODE_UNDEFINED_OBJECT),
	         errmsg("dragonraft group %lld does not exist on this node", (long long)group_id),
	         detail ? errdetail("%s", dr_sentence(detail)) : 0,
	         errhint("See dragonraft.status for the groups of this node; "
	                 "dragonraft.create_group and dragonraft.join_group make it a "
	                 "member of a group.")));
}

/* Before review 69: "group N is stopped on this node", "dragonraft group N is
 * stopped ...", "group N does not run on this node", "group N has no log on
 * this node", with or without the error and a hint. */
void dr_sql_groups_stopped(int64 group_id, const char *error, const char *detail)
{
	if (error != NULL && error[0] != '\0')
		detail = detail != NULL ? psprintf("%s  %s", dr_sentence(error), detail)
		                        : dr_sentence(error);
	ereport(ERROR,
	        (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
	         errmsg("dragonraft group %lld is stopped on this node", (long long)group_id),
	         detail != NULL ? errdetail("%s", detail) : 0,
	         errhint("See state and error in dragonraft.status, and the server "
	                 "log.")));
}

/* The group's shared status, false if this node does not have it. */
static bool read_state(int64 group_id, uint8 *member_state, uint32 *apply_failures, char *error)
{
	DrGroup *g;

	LWLockAcquire(dr_shared->groups_lock, LW_SHARED);
	g = dr_shmem_group_find((uint64)group_id);
	if (g != NULL) {
		SpinLockAcquire(&g->mutex);
		*member_state = g->member_state;
		*apply_failures = g->apply_failures;
		strlcpy(error, g->error, DR_ERROR_LEN);
		SpinLockRelease(&g->mutex);
	}
	LWLockRelease(dr_shared->groups_lock);
	return g != NULL;
}

void dr_sql_groups_state(int64 group_id, uint8 *member_state, uint32 *apply_failures, char *error)
{
	if (!read_state(group_id, member_state, apply_failures, error))
		dr_sql_groups_missing(group_id, NULL);
}

/* A stopped group is still in the shared status (state and error): the
 * engine's "no such group" said "does not exist" for it (review 69). */
void dr_sql_groups_not_run(int64 group_id, const char *detail)
{
	uint8 state;
	uint32 failures;
	char error[DR_ERROR_LEN] = "";

	if (!read_state(group_id, &state, &failures, error))
		dr_sql_groups_missing(group_id, detail);
	if (state == DR_MEMBER_FAILED || state == DR_MEMBER_LOST)
		dr_sql_groups_stopped(group_id, error, detail);
	/* Active or recovering here, but not in the engine: between an engine
	 * worker's start and its adding the group again, or while it is left
	 * (rev70). */
	ereport(ERROR,
	        (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
	         errmsg("dragonraft group %lld does not run on this node at the moment",
	                (long long)group_id),
	         detail != NULL ? errdetail("%s", dr_sentence(detail)) : 0,
	         errhint("Try again in a moment; dragonraft.status shows the group's state.")));
}

void dr_sql_groups_check_engine(void)
{
	char *db;
	DrEngineState state;
	char error[DR_ERROR_LEN];

	dr_shmem_check_loaded();
	if (dr_node_id == 0)
		ereport(ERROR,
		        (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		         errmsg("dragonraft.node_id is not set, so the engine is off"),
		         errhint("Set dragonraft.node_id to this node's id (a positive integer) "
		                 "in postgresql.conf and restart the server.")));
	db = get_database_name(MyDatabaseId);
	if (db == NULL || strcmp(db, dr_database) != 0)
		ereport(ERROR,
		        (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		         errmsg("dragonraft is used from database \"%s\", but dragonraft.database "
		                "is "
		                "\"%s\"",
		                db ? db : "?", dr_database),
		         errhint("Use the extension in database \"%s\", or set dragonraft.database "
		                 "to this database and restart the server.",
		                 dr_database)));
	SpinLockAcquire(&dr_shared->mutex);
	state = dr_shared->engine_state;
	strlcpy(error, dr_shared->engine_error, sizeof(error));
	SpinLockRelease(&dr_shared->mutex);
	if (state != DR_ENGINE_RUNNING)
		ereport(ERROR,
		        (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		         errmsg("dragonraft engine worker is not running"),
		         error[0] ? errdetail("%s", dr_sentence(psprintf("It stopped: %s", error)))
		                  : 0,
		         errhint("%s", dr_engine_restart_hint())));
}

char *dr_sql_groups_client_address(int64 group_id, int64 node_id)
{
	Oid types[2] = {INT8OID, INT8OID};
	Datum values[2] = {Int64GetDatum(group_id), Int64GetDatum(node_id)};
	char *addr = NULL;
	bool pushed;
	DrUserContext su;
	int rc;

	dr_spi_begin(&pushed); /* (a COMMIT refused at PRE_COMMIT names the leader) */
	/* As the bootstrap superuser: any writer is told where the leader is,
	 * though only pg_monitor and dragonraft_admin may read member_info. */
	dr_as_superuser_begin(&su);
	rc = SPI_execute_with_args("SELECT client_address FROM dragonraft.member_info "
	                           "WHERE group_id = $1 AND node_id = $2",
	                           2, types, values, NULL, true, 1);
	dr_user_context_end(&su);
	if (rc == SPI_OK_SELECT && SPI_processed == 1) {
		char *v = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);

		if (v != NULL)
			addr = MemoryContextStrdup(TopTransactionContext, v);
	}
	dr_spi_end(pushed);
	return addr;
}

const char *dr_locale_provider_name(char provider)
{
	if (provider == COLLPROVIDER_LIBC)
		return "libc";
	if (provider == COLLPROVIDER_ICU)
		return "icu";
	return psprintf("%c", provider);
}

void dr_database_locale(DrDbLocale *out)
{
	HeapTuple tup = SearchSysCache1(DATABASEOID, ObjectIdGetDatum(MyDatabaseId));
	Datum d;
	bool isnull;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for database %u", MyDatabaseId);
	out->encoding = GetDatabaseEncoding();
	out->encoding_name = GetDatabaseEncodingName();
	out->provider = ((Form_pg_database)GETSTRUCT(tup))->datlocprovider;
	out->provider_name = dr_locale_provider_name(out->provider);
	d = SysCacheGetAttr(DATABASEOID, tup, Anum_pg_database_datcollate, &isnull);
	out->collate = isnull ? "" : TextDatumGetCString(d);
	d = SysCacheGetAttr(DATABASEOID, tup, Anum_pg_database_datctype, &isnull);
	out->ctype = isnull ? "" : TextDatumGetCString(d);
	d = SysCacheGetAttr(DATABASEOID, tup, Anum_pg_database_daticulocale, &isnull);
	out->icu_locale = isnull ? NULL : TextDatumGetCString(d);
	ReleaseSysCache(tup);
}

/*
 * A libc locale name as the C library takes it: language[_territory]
 * [.codeset][@modifier] with the codeset's letters and digits alone, in lower
 * case ("C.UTF-8" and "C.utf8", "en_US.UTF-8" and "en_US.utf8" are one
 * locale), and "POSIX" is "C".  Members whose databases spell one locale
 * otherwise (initdb takes the name from the environment) are alike.
 */
static char *locale_key(const char *name)
{
	StringInfoData buf;
	const char *dot = strchr(name, '.');

	if (strcmp(name, "POSIX") == 0)
		return pstrdup("C");
	if (dot == NULL)
		return pstrdup(name);
	initStringInfo(&buf);
	appendBinaryStringInfo(&buf, name, (int)(dot - name) + 1);
	for (name = dot + 1; *name != '\0' && *name != '@'; name++)
		if (isalnum((unsigned char)*name))
			appendStringInfoChar(&buf, (char)pg_ascii_tolower((unsigned char)*name));
	appendStringInfoString(&buf, name);
	return buf.data;
}

/* One "node N's database has WHAT THEIRS, this one OURS" sentence into buf when they differ
 * (libc: locale names, compared as locale_key takes them). */
static void differs(StringInfo buf, uint32 node_id, const char *what, const char *theirs,
                    const char *ours, bool quote, bool libc)
{
	const char *q = quote ? "\"" : "";
	const char *a = theirs != NULL ? theirs : "", *b = ours != NULL ? ours : "";

	if (libc ? strcmp(locale_key(a), locale_key(b)) == 0 : strcmp(a, b) == 0)
		return;
	appendStringInfo(buf, "%sNode %u's database has %s %s%s%s, this one %s%s%s.",
	                 buf->len > 0 ? "  " : "", node_id, what, theirs != NULL ? q : "",
	                 theirs != NULL ? theirs : "none", theirs != NULL ? q : "",
	                 ours != NULL ? q : "", ours != NULL ? ours : "none",
	                 ours != NULL ? q : "");
}

char *dr_locale_differs(uint32 node_id, const char *encoding, const char *collate,
                        const char *ctype, const char *provider, const char *icu_locale)
{
	DrDbLocale here;
	StringInfoData buf;

	if (encoding == NULL)
		return NULL; /* not known */
	dr_database_locale(&here);
	initStringInfo(&buf);
	differs(&buf, node_id, "encoding", encoding, here.encoding_name, false, false);
	if (collate == NULL)
		return buf.len > 0 ? buf.data : NULL; /* the encoding only */
	differs(&buf, node_id, "locale provider", provider, here.provider_name, false, false);
	differs(&buf, node_id, "LC_COLLATE", collate, here.collate, true, true);
	differs(&buf, node_id, "LC_CTYPE", ctype, here.ctype, true, true);
	differs(&buf, node_id, "ICU locale", icu_locale, here.icu_locale, true, false);
	return buf.len > 0 ? buf.data : NULL;
}

/*
 * The first row of query (of $1 and $2: node_id, encoding, lc_collate,
 * lc_ctype, locale_provider, icu_locale of dragonraft.member_info) whose
 * known encoding and locale differ from this database's, as
 * dr_locale_differs says it (in the caller's memory context), with its node
 * in *node_id; NULL: none.  (encoding_only: the encoding alone.)  read_only:
 * with the caller's snapshot (a backend); the apply worker sees the rows
 * its batch wrote.  *found (unless NULL): the query returned a row.
 */
static char *first_differing(const char *query, int64 arg1, int64 arg2, bool encoding_only,
                             bool read_only, int32 *node_id, bool *found)
{
	Oid types[2] = {INT8OID, INT8OID};
	Datum values[2] = {Int64GetDatum(arg1), Int64GetDatum(arg2)};
	MemoryContext cxt = CurrentMemoryContext;
	bool pushed;
	DrUserContext su;
	char *detail = NULL;
	int rc;

	dr_spi_begin(&pushed);
	/* As the bootstrap superuser: only pg_monitor and dragonraft_admin may
	 * read member_info. */
	dr_as_superuser_begin(&su);
	rc = SPI_execute_with_args(query, 2, types, values, NULL, read_only, 0);
	dr_user_context_end(&su);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "dragonraft could not read dragonraft.member_info: %s",
		     SPI_result_code_string(rc));
	if (found != NULL)
		*found = SPI_processed > 0;
	for (uint64 i = 0; i < SPI_processed && detail == NULL; i++) {
		HeapTuple t = SPI_tuptable->vals[i];
		TupleDesc d = SPI_tuptable->tupdesc;
		bool isnull;

		*node_id = DatumGetInt32(SPI_getbinval(t, d, 1, &isnull));
		detail = dr_locale_differs((uint32)*node_id, SPI_getvalue(t, d, 2),
		                           encoding_only ? NULL : SPI_getvalue(t, d, 3),
		                           SPI_getvalue(t, d, 4), SPI_getvalue(t, d, 5),
		                           SPI_getvalue(t, d, 6));
	}
	if (detail != NULL)
		detail = MemoryContextStrdup(cxt, detail);
	dr_spi_end(pushed);
	return detail;
}

char *dr_locale_rejoin_hint(uint64 group_id)
{
	return psprintf("Every member's dragonraft.database must have the same encoding and "
	                "locale: leave the group here (dragonraft.leave_group(%llu)), or remove "
	                "node %d on the leader, and join again from a database with the "
	                "others' locale.",
	                (unsigned long long)group_id, dr_node_id);
}

#define MEMBER_LOCALE_COLUMNS                                                                      \
	"SELECT i.node_id, i.encoding, i.lc_collate, i.lc_ctype, i.locale_provider, i.icu_locale "

/* How long replicate_table() and execute() wait for this node's member info to
 * commit in the group: as long as a read barrier waits for a stalled apply
 * (reads.c), 20 election timeouts (10 s by default). */
#define INFO_WAIT_TIMEOUTS 20

/*
 * Wait (cancellable, bounded) until this node's member info is committed in
 * the group's log (DrGroup.info_in_log), so that the registration or
 * command proposed next follows it there: a member of another locale that
 * replays the log, say a node that joins later, then knows the proposer's
 * locale at the registration and stops there (apply_worker.c
 * check_proposer_locale) instead of storing other values silently.  Each
 * node proposes its info once it knows a leader of the group, at its next
 * turn (every 250 ms): before, a replicate_table() right after
 * create_group() came first in the log (review 45, TAP 130).  A group that
 * is not here, or whose member stopped (failed, lost), is left to the
 * caller's own error.  leader_only: the caller proposes only as the leader
 * (a registration, at its commit): on a node that does not lead it ends at
 * once with 25006, as it would have there (execute() on a follower
 * forwards its command to the leader: it waits).
 */
void dr_sql_groups_wait_info(int64 group_id, const char *what, bool leader_only)
{
	int wait_ms = INFO_WAIT_TIMEOUTS * dr_election_rtt * dr_rtt_ms;
	TimestampTz end = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), wait_ms);
	TimestampTz down_since = 0;
	uint64 life = 0;
	bool restarted = false;

	for (;;) {
		bool in_log = false, stopped = false, running = dr_shmem_engine_running(), over;
		uint64 leader = 0;
		uint8 role = RAFT_FOLLOWER;
		TimestampTz now = GetCurrentTimestamp();
		DrGroup *g;

		/* The bound counts the time an engine worker runs here: one that
		 * restarts (5 s between two) does not use it up.  Before, a wait
		 * across a restart failed once the old worker's exit and the
		 * next one's start took most of it (TAP 136).  Without an engine
		 * worker for as long, the wait ends: the next may not come. */
		if (running && down_since != 0) {
			end = TimestampTzPlusMilliseconds(end, TimestampDifferenceMilliseconds(down_since, now));
			down_since = 0;
		} else if (!running && down_since == 0)
			down_since = now;
		over = running ? now >= end : TimestampDifferenceExceeds(down_since, now, wait_ms);
		LWLockAcquire(dr_shared->groups_lock, LW_SHARED);
		g = dr_shmem_group_find((uint64)group_id);
		if ((g == NULL || (life != 0 && g->life != life)) && !running && !over) {
			/* (the next engine worker adds it again: shmem.c) */
			LWLockRelease(dr_shared->groups_lock);
			restarted = true;
			dr_shmem_engine_wait();
			CHECK_FOR_INTERRUPTS();
			continue;
		}
		if (g != NULL && life != 0 && g->life != life) {
			/* Left and made again here while this waited (rev58): what the
			 * caller checked of the group before was the old one's. */
			LWLockRelease(dr_shared->groups_lock);
			ConditionVariableCancelSleep();
			ereport(ERROR,
			        (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			         errmsg("%s refused: group %lld was left on this node and made "
			                "again while it waited",
			                what, (long long)group_id),
			         errdetail("Nothing was proposed."), errhint("Try again.")));
		}
		if (g != NULL) {
			life = g->life;
			SpinLockAcquire(&g->mutex);
			in_log = g->info_in_log;
			leader = g->leader;
			role = g->role;
			stopped = g->member_state == DR_MEMBER_FAILED ||
			          g->member_state == DR_MEMBER_LOST;
			SpinLockRelease(&g->mutex);
		}
		LWLockRelease(dr_shared->groups_lock);
		/* (a member that stopped commits no info: the caller's own error says
		 * why, as a group that is not here; before, a lost member's
		 * replicate_table() said 25006, "not the leader") */
		if (g == NULL || in_log || stopped)
			break;
		/* (A group the next engine worker started again knows no leader
		 * until its election: this node may lead it again, and the wait
		 * goes on.  Before, it ended with 25006, "no leader at the
		 * moment", where the node led the group before and after: review
		 * 60.) */
		if (leader_only && role != RAFT_LEADER && !(restarted && leader == 0)) {
			ConditionVariableCancelSleep();
			dr_capture_not_leader((uint64)group_id, leader);
		}
		if (over) {
			char *now_leads =
			        leader != 0 ? psprintf("node %llu", (unsigned long long)leader)
			                    : pstrdup("none");

			ConditionVariableCancelSleep();
			ereport(ERROR,
			        (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			         errmsg("%s refused: this node's member info is not in the log of "
			                "group %lld yet",
			                what, (long long)group_id),
			         errdetail("Every member checks a registration and a command "
			                   "against the encoding and locale of its proposer's "
			                   "database, which the proposer's member info tells the "
			                   "group before them.  This node proposes its own once it "
			                   "knows a leader of the group (now: %s), and it did not "
			                   "commit within %d ms.  Nothing was proposed.",
			                   now_leads, wait_ms),
			         errhint("Retry once dragonraft.status shows a leader of group "
			                 "%lld here; the server log says why a proposal fails.",
			                 (long long)group_id)));
		}
		/* (if leave_group removes the entry meanwhile, its memory and its
		 * applied_cv stay, maybe another group's: the timeout ends the sleep,
		 * and the lookup fails; shmem.h) */
		(void)ConditionVariableTimedSleep(&g->applied_cv, 100, PG_WAIT_EXTENSION);
	}
	ConditionVariableCancelSleep();
}

/*
 * Members' tables are the group's state machine, and every member applies
 * a command, a table's definition and its rows with its own database's
 * encoding and locale: one whose database has another takes the text for
 * other characters (the apply stops: check_encoding), or computes
 * upper()/lower() in a stored generated column, a CHECK on text or an
 * index's order differently (the member diverges, or its apply stops).
 * execute() and replicate_table()/resend_table() are refused here before
 * anything is proposed while a member whose info says its encoding and
 * locale has another; a member whose info does not say them (an older
 * build, or not applied here yet) is not held against the group.  Plain
 * writes are not checked (their hot path): the apply's stop is their
 * backstop.  A barrier (dr_sql_tables_barrier: SELECTs of constants, such as
 * check_consistency's marker) computes nothing with the locale: only the
 * encoding its entry says refuses it (the odd member's apply would stop at
 * it), so a group whose members differ in locale alone can still be
 * checked.
 */
void dr_sql_groups_check_locale(int64 group_id, const char *what, bool encoding_only)
{
	int32 node_id = 0;
	char *detail;

	/* (A removed member's row stays: members only.) */
	detail = first_differing(MEMBER_LOCALE_COLUMNS
	                         "FROM dragonraft.member_info i "
	                         "JOIN dragonraft.group_members() m USING (group_id, node_id) "
	                         "WHERE i.group_id = $1 AND i.encoding IS NOT NULL "
	                         "ORDER BY i.node_id",
	                         group_id, 0, encoding_only, true, &node_id, NULL);

	if (detail != NULL)
		ereport(ERROR,
		        (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
		         errmsg("%s refused: node %d, a member of group %lld, has a database of "
		                "another encoding or locale",
		                what, node_id, (long long)group_id),
		         errdetail("%s  Nothing was proposed: every member would apply it with its "
		                   "own database's encoding and locale.",
		                   detail),
		         errhint("Every member's dragonraft.database must have the same encoding "
		                 "and locale (CREATE DATABASE ... ENCODING ... LOCALE ... TEMPLATE "
		                 "template0).  Remove the odd member: "
		                 "dragonraft.remove_member(%lld, %d) on the leader, or "
		                 "dragonraft.leave_group(%lld) on node %d.",
		                 (long long)group_id, node_id, (long long)group_id, node_id)));
}

/*
 * add_member of a node whose database this node knows to have another
 * encoding or locale (its member info in a group of which it is a member
 * here, as applied here) is refused before the change is proposed: it
 * would load the group's tables, or replay their log, and apply their rows
 * with its own locale (its apply stops at a table's registration or at the
 * snapshot; the gate above then refuses the group's execute() too).  A
 * node this one knows nothing of yet is added: its apply's stop is the
 * backstop.
 */
void dr_sql_groups_check_new_member(int64 group_id, int64 node)
{
	int32 node_id = 0;
	char *detail = first_differing(
	        MEMBER_LOCALE_COLUMNS "FROM dragonraft.member_info i "
	                              "JOIN dragonraft.group_members() m USING (group_id, node_id) "
	                              "WHERE i.node_id = $2 AND i.encoding IS NOT NULL "
	                              "ORDER BY i.group_id",
	        group_id, node, false, true, &node_id, NULL);

	if (detail != NULL)
		ereport(ERROR,
		        (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
		         errmsg("dragonraft.add_member refused: node %lld has a database of "
		                "another encoding or locale than node %d",
		                (long long)node, dr_node_id),
		         errdetail("%s  It would apply group %lld's tables with its own.  Nothing "
		                   "was proposed.",
		                   detail, (long long)group_id),
		         errhint("Every member's dragonraft.database must have the same encoding "
		                 "and locale (CREATE DATABASE ... ENCODING ... LOCALE ... TEMPLATE "
		                 "template0): point node %lld's dragonraft.database at such a "
		                 "database and restart it, then add it.",
		                 (long long)node)));
}

char *dr_sql_groups_member_locale_differs(int64 group_id, uint32 node_id, bool *known)
{
	int32 node = 0;

	return first_differing(MEMBER_LOCALE_COLUMNS "FROM dragonraft.member_info i "
	                                             "WHERE i.group_id = $1 AND i.node_id = $2 "
	                                             "AND i.encoding IS NOT NULL",
	                       group_id, (int64)node_id, false, false, &node, known);
}

/* The engine worker reported that it exited before an outcome. */
void dr_sql_groups_engine_exited(void)
{
	ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
	                errmsg("dragonraft engine worker exited before the operation completed"),
	                errhint("%s", dr_engine_restart_hint())));
}

/*
 * The errors that starting a group on this node (create_group, join_group)
 * shares; returns if res is none of them.
 */
void dr_sql_groups_start_failed(int64 group_id, const DrResult *res)
{
	switch (res->rc) {
	case ENGINE_ERR_SM:
		/* (create_group's said nothing of what to do: review 69) */
		ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		                errmsg("group %lld exists on this node but is stopped",
		                       (long long)group_id),
		                errdetail("%s", dr_sentence(res->errmsg)),
		                errhint("Remove it here with leave_group(%lld, force => true).",
		                        (long long)group_id)));
		break;
	case DR_RC_ORIGINS_FULL:
		ereport(ERROR,
		        (errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
		         errmsg("this server has %s replication origins, as many as "
		                "max_replication_slots allows",
		                res->errmsg),
		         errdetail("Each group keeps its applied index in a replication "
		                   "origin, and PostgreSQL tracks at most "
		                   "max_replication_slots of them (logical replication's "
		                   "subscriptions use them too)."),
		         errhint("Raise max_replication_slots (and dragonraft.max_groups) and "
		                 "restart the server.")));
		break;
	case DR_RC_GROUPS_FULL:
		ereport(ERROR, (errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
		                errmsg("this node is a member of dragonraft.max_groups (%d) groups",
		                       dr_max_groups),
		                errhint("Raise dragonraft.max_groups and restart the server.")));
		break;
	case DR_RC_ENGINE_EXITED:
		dr_sql_groups_engine_exited();
		break;
	}
}

/* ---- create_group ---- */

static void bad_members(const char *msg, const char *detail) pg_attribute_noreturn();

static void bad_members(const char *msg, const char *detail)
{
	ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("%s", msg),
	                detail ? errdetail("%s", detail) : 0,
	                errhint("Give members as a JSON object that maps node ids to Raft "
	                        "addresses, for example '{\"1\": \"10.0.0.1:7400\", "
	                        "\"2\": \"10.0.0.2:7400\", \"3\": \"10.0.0.3:7400\"}'.")));
}

/* Whether an address has only printable ASCII characters other than space, quotes and
 * backslash (it goes into the LogDB, the log and error messages as it is). */
static bool plain_address(const char *a, int len)
{
	for (int i = 0; i < len; i++)
		if (a[i] <= ' ' || a[i] > '~' || a[i] == '"' || a[i] == '\'' || a[i] == '\\')
			return false;
	return true;
}

/* s as a JSON string, for error messages. */
static char *json_quoted(const char *s)
{
	StringInfoData buf;

	initStringInfo(&buf);
	escape_json(&buf, s);
	return buf.data;
}

/* members jsonb -> out (room for RAFT_MAX_MEMBERS); returns the count. */
int dr_sql_groups_parse_members(Jsonb *jb, DrMemberAddr *out)
{
	JsonbIterator *it;
	JsonbValue v;
	JsonbIteratorToken tok;
	int n = 0;

	if (JB_ROOT_IS_SCALAR(jb) || !JB_ROOT_IS_OBJECT(jb))
		bad_members("members must be a JSON object", NULL);
	it = JsonbIteratorInit(&jb->root);
	while ((tok = JsonbIteratorNext(&it, &v, false)) != WJB_DONE) {
		char *key, *end, host[DR_ADDR_LEN];
		const char *why;
		int64 id;
		int port;

		if (tok != WJB_KEY)
			continue;
		key = pnstrdup(v.val.string.val, v.val.string.len);
		errno = 0;
		id = strtoi64(key, &end, 10);
		if (key[0] < '1' || key[0] > '9' || *end != '\0' || errno != 0 || id < 1 ||
		    id > INT_MAX)
			bad_members(psprintf("member id %s is not a positive integer",
			                     json_quoted(key)),
			            "Node ids are integers from 1 to 2147483647, written without "
			            "leading zeros.");
		tok = JsonbIteratorNext(&it, &v, true);
		if (tok != WJB_VALUE || v.type != jbvString)
			bad_members(psprintf("the address of node %s is not a string", key), NULL);
		for (int i = 0; i < n; i++)
			if (out[i].node_id == (uint64)id)
				bad_members(psprintf("node %lld appears twice in members",
				                     (long long)id),
				            NULL);
		if (n == RAFT_MAX_MEMBERS)
			bad_members("members lists too many nodes",
			            psprintf("A group has at most %d members.", RAFT_MAX_MEMBERS));
		if (v.val.string.len >= DR_ADDR_LEN)
			bad_members(psprintf("the address of node %s is too long", key), NULL);
		if (!plain_address(v.val.string.val, v.val.string.len))
			bad_members(
			        psprintf("the address %s of node %s is not host:port",
			                 json_quoted(pnstrdup(v.val.string.val, v.val.string.len)),
			                 key),
			        "An address has no spaces, quotes, backslashes or control "
			        "characters.");
		out[n].node_id = (uint64)id;
		memcpy(out[n].addr, v.val.string.val, v.val.string.len);
		out[n].addr[v.val.string.len] = '\0';
		if (!dr_parse_address(out[n].addr, host, sizeof(host), &port, &why))
			bad_members(psprintf("the address \"%s\" of node %s is not host:port",
			                     out[n].addr, key),
			            why);
		if (port == 0)
			bad_members(psprintf("the address \"%s\" of node %s is not host:port",
			                     out[n].addr, key),
			            "The port must be a number from 1 to 65535.");
		n++;
	}
	if (n == 0)
		bad_members("members must name at least one member", NULL);
	return n;
}

Datum dr_create_group(PG_FUNCTION_ARGS)
{
	int64 group_id = PG_GETARG_INT64(0);
	Jsonb *jb = PG_GETARG_JSONB_P(1);
	DrMemberAddr *members = palloc(sizeof(DrMemberAddr) * RAFT_MAX_MEMBERS);
	char own[DR_ADDR_LEN];
	const char *mine = NULL;
	DrResult res;
	char *payload;
	Size len;
	int n;

	dr_sql_groups_check_engine();
	if (group_id < 1)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
		                errmsg("group id must be a positive integer")));
	n = dr_sql_groups_parse_members(jb, members);
	dr_sql_membership_check_not_left(group_id);
	SpinLockAcquire(&dr_shared->mutex);
	strlcpy(own, dr_shared->raft_address, sizeof(own));
	SpinLockRelease(&dr_shared->mutex);
	for (int i = 0; i < n; i++)
		if (members[i].node_id == (uint64)dr_node_id)
			mine = members[i].addr;
	if (mine == NULL)
		ereport(ERROR,
		        (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
		         errmsg("members does not include this node (node %d)", dr_node_id),
		         errhint("Run create_group on every initial member of the group, with "
		                 "the same members.")));
	if (strcmp(mine, own) != 0)
		ereport(ERROR,
		        (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
		         errmsg("members gives \"%s\" as the address of this node, but it is "
		                "reached at \"%s\"",
		                mine, own),
		         errhint("Give this node's dragonraft.advertise_address (or "
		                 "listen_address), "
		                 "which other members dial.")));

	payload = dr_queue_encode_members(members, n, &len);
	dr_queue_call_unknown_if_cancelled(
	        DR_REQ_CREATE_GROUP, (uint64)group_id, 0, payload, len, &res,
	        psprintf("the creation of group %lld on this node did not complete: it may "
	                 "still be created",
	                 (long long)group_id),
	        "Run create_group again with the same members: it returns once the group "
	        "exists on this node.");
	switch (res.rc) {
	case ENGINE_OK:
		PG_RETURN_VOID();
	case DR_RC_MEMBERS_DIFFER:
		ereport(ERROR, (errcode(ERRCODE_DUPLICATE_OBJECT),
		                errmsg("group %lld already exists on this node with other members",
		                       (long long)group_id),
		                errdetail("Its members are %s.", res.errmsg)));
		break;
	case DR_RC_LOST:
		ereport(ERROR,
		        (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		         errmsg("group %lld cannot be started on this node: %s",
		                (long long)group_id, res.errmsg),
		         errdetail("A member that lost its Raft log must not start as new.")));
		break;
	default:
		dr_sql_groups_start_failed(group_id, &res);
		ereport(ERROR, (errcode(dr_sql_groups_errcode(res.rc)),
		                errmsg("could not create group %lld: %s", (long long)group_id,
		                       res.rc > -100 ? engine_strerror(res.rc) : "bad request"),
		                res.errmsg[0] ? errdetail("%s", dr_sentence(res.errmsg)) : 0));
	}
	PG_RETURN_VOID();
}

/* ---- transfer_leader ---- */

static void not_voter(int64 group_id, int32 target) pg_attribute_noreturn();

static void not_voter(int64 group_id, int32 target)
{
	ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
	                errmsg("node %d cannot lead group %lld", target, (long long)group_id),
	                errdetail("Only a voting member can lead."),
	                errhint("Make it vote first with promote_member.")));
}

/* Is node a voting member of group_id, as this node knows the group now? */
static bool votes(int64 group_id, int32 node)
{
	bool voter = false;
	DrGroup *g;

	LWLockAcquire(dr_shared->groups_lock, LW_SHARED);
	g = dr_shmem_group_find((uint64)group_id);
	for (int m = g != NULL ? g->first_member : -1; m >= 0; m = dr_members[m].next)
		voter = voter || (dr_members[m].node_id == (uint64)node && dr_members[m].voter);
	LWLockRelease(dr_shared->groups_lock);
	return voter;
}

Datum dr_transfer_leader(PG_FUNCTION_ARGS)
{
	int64 group_id = PG_GETARG_INT64(0);
	int32 target = PG_GETARG_INT32(1);
	bool member = false;
	DrMemberState state = DR_MEMBER_ACTIVE;
	char error[DR_ERROR_LEN];
	DrGroup *g;
	DrResult res;
	char *addr;

	dr_sql_groups_check_engine();
	LWLockAcquire(dr_shared->groups_lock, LW_SHARED);
	g = group_id > 0 ? dr_shmem_group_find((uint64)group_id) : NULL;
	if (g != NULL) {
		for (int m = g->first_member; m >= 0; m = dr_members[m].next)
			member = member || (dr_members[m].node_id == (uint64)target && target > 0);
		SpinLockAcquire(&g->mutex);
		state = g->member_state;
		strlcpy(error, g->error, sizeof(error));
		SpinLockRelease(&g->mutex);
	}
	LWLockRelease(dr_shared->groups_lock);
	if (g == NULL)
		dr_sql_groups_missing(group_id, NULL);
	if (state == DR_MEMBER_LOST || state == DR_MEMBER_FAILED)
		dr_sql_groups_stopped(group_id, error, NULL);
	if (!member) /* (42704 as remove_member's; it said 22023) */
		ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT),
		                errmsg("node %d is not a member of group %lld", target,
		                       (long long)group_id),
		                errhint("See dragonraft.members.")));

	dr_queue_call_unknown_if_cancelled(
	        DR_REQ_TRANSFER_LEADER, (uint64)group_id, (uint64)target, NULL, 0, &res,
	        psprintf("the leadership transfer of group %lld to node %d did not complete: it "
	                 "may still happen",
	                 (long long)group_id, target),
	        "See the group's leader in dragonraft.status.");
	switch (res.rc) {
	case ENGINE_OK:
		PG_RETURN_VOID();
	case ENGINE_ERR_NOT_LEADER:
		addr = res.leader ? dr_sql_groups_client_address(group_id, (int64)res.leader)
		                  : NULL;
		ereport(ERROR,
		        (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		         errmsg("node %d does not lead group %lld", dr_node_id,
		                (long long)group_id),
		         res.leader ? errdetail("Node %llu leads it%s%s%s.",
		                                (unsigned long long)res.leader,
		                                addr ? " (client address \"" : "", addr ? addr : "",
		                                addr ? "\")" : "")
		                    : 0,
		         errhint("Run transfer_leader on the leader, or on the target node.")));
		break;
	case ENGINE_ERR_DROPPED:
		ereport(ERROR,
		        (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		         errmsg("group %lld has no leader at the moment", (long long)group_id),
		         errhint("Try again once dragonraft.status shows a leader.")));
		break;
	case ENGINE_ERR_TIMEOUT:
		/* Asked on a non-voter for itself, the leader drops the request: say
		 * why rather than that it was slow (review 23 F2). */
		if (!votes(group_id, target))
			not_voter(group_id, target);
		ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		                errmsg("node %d did not take over the leadership of group %lld in "
		                       "time",
		                       target, (long long)group_id),
		                errdetail("A transfer waits two election timeouts (%d ms).",
		                          (2 * dr_election_rtt + 2) * dr_rtt_ms),
		                errhint("Check that node %d is reachable and caught up (see "
		                        "dragonraft.members on the leader).",
		                        target)));
		break;
	case ENGINE_ERR_PENDING:
		ereport(ERROR,
		        (errcode(ERRCODE_OBJECT_IN_USE),
		         errmsg("a leadership transfer or membership change of group %lld is "
		                "in progress",
		                (long long)group_id)));
		break;
	case ENGINE_ERR_REJECTED:
		not_voter(group_id, target);
		break;
	case ENGINE_ERR_NO_GROUP:
		dr_sql_groups_not_run(group_id, NULL);
		break;
	case DR_RC_ENGINE_EXITED:
		dr_sql_groups_engine_exited();
		break;
	default:
		ereport(ERROR, (errcode(dr_sql_groups_errcode(res.rc)),
		                errmsg("could not transfer the leadership of group %lld: %s",
		                       (long long)group_id,
		                       res.rc > -100 ? engine_strerror(res.rc) : "bad request")));
	}
	PG_RETURN_VOID();
}
