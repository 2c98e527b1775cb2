/*
 * sql_membership.c - SQL functions for a group's members (DESIGN §6):
 * add_member, promote_member, remove_member, join_group, leave_group, and
 * snapshot() and read_barrier().  Checks that need the group's membership
 * as the leader sees it run in the engine worker (membership.c); every
 * outcome becomes an error with its SQLSTATE.
 *
 * Membership changes run on the leader (the error on a follower names it),
 * one at a time per group, and return once applied here.  A change that no
 * quorum acknowledges in time ends with 40003: it may still apply.
 *
 * join_group starts this node's member with the addresses of members it may
 * hear from, then waits until a leader contacts it (bounded: a node nobody
 * added is never contacted; its member is removed again), and until it
 * applied the log up to the change that added it, with NOTICEs on the way.
 */
#include "dragonraft.h"

#include <limits.h>
#include <sys/stat.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "engine/engine.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "membership.h"
#include "miscadmin.h"
#include "nodes/plannodes.h"
#include "origins.h"
#include "pgstat.h"
#include "raft/raft.h"
#include "shmem.h"
#include "snapshot.h"
#include "storage/fd.h"
#include "storage/latch.h"
#include "tcop/pquery.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "write.h"

PG_FUNCTION_INFO_V1(dr_add_member);
PG_FUNCTION_INFO_V1(dr_promote_member);
PG_FUNCTION_INFO_V1(dr_remove_member);
PG_FUNCTION_INFO_V1(dr_join_group);
PG_FUNCTION_INFO_V1(dr_leave_group);
PG_FUNCTION_INFO_V1(dr_left_groups);
PG_FUNCTION_INFO_V1(dr_forget_left_group);
PG_FUNCTION_INFO_V1(dr_snapshot);
PG_FUNCTION_INFO_V1(dr_read_barrier_sql);

/* A node that was added hears from the leader within an election timeout or
 * two; this many election timeouts without contact mean it was not added. */
#define JOIN_CONTACT_TIMEOUTS 20
/* While joining: this many election timeouts without a new entry mean the
 * leader cannot send the log (its beginning was compacted). */
#define JOIN_STALL_TIMEOUTS 60
/* ... and this many with every apply of its entries failing end it too. */
#define JOIN_APPLY_FAILED_TIMEOUTS 10
#define JOIN_NOTICE_MS             5000

/* What this node's status entry of a group says. */
typedef struct GroupView {
	bool exists;
	DrMemberState state;
	int role;
	uint64 leader;
	uint64 commit;
	uint64 applied;
	uint64 last_index;
	uint64 snapshot_index;
	uint32 apply_failures;      /* in a row: the apply worker retries */
	TimestampTz apply_retry_at; /* its next try (0: none due) */
	bool removed;               /* this node's membership lists it as removed */
	bool member;                /* the node asked about is in the membership this node knows */
	bool voter;
	int n_voters;
	uint64 life; /* DrGroup.life: which incarnation of the group */
	char error[DR_ERROR_LEN];
} GroupView;

/* group_id's status here, with whether node is a member (and votes). */
static GroupView view(int64 group_id, int64 node)
{
	GroupView v;
	DrGroup *g;

	memset(&v, 0, sizeof(v));
	LWLockAcquire(dr_shared->groups_lock, LW_SHARED);
	g = group_id > 0 ? dr_shmem_group_find((uint64)group_id) : NULL;
	if (g != NULL) {
		v.exists = true;
		v.life = g->life;
		for (int m = g->first_member; m >= 0; m = dr_members[m].next) {
			if (dr_members[m].voter)
				v.n_voters++;
			if (dr_members[m].node_id == (uint64)node) {
				v.member = true;
				v.voter = dr_members[m].voter;
			}
		}
		SpinLockAcquire(&g->mutex);
		v.state = g->member_state;
		v.role = g->role;
		v.leader = g->leader;
		v.commit = g->commit;
		v.applied = g->applied;
		v.last_index = g->last_index;
		v.snapshot_index = g->snapshot_index;
		v.apply_failures = g->apply_failures;
		v.apply_retry_at = g->apply_retry_at;
		v.removed = g->removed;
		strlcpy(v.error, g->error, sizeof(v.error));
		SpinLockRelease(&g->mutex);
	}
	LWLockRelease(dr_shared->groups_lock);
	return v;
}

/* The group must run here. */
static GroupView running_group(int64 group_id)
{
	GroupView v = view(group_id, dr_node_id);

	if (!v.exists)
		dr_sql_groups_missing(group_id, NULL);
	if (v.state == DR_MEMBER_LOST || v.state == DR_MEMBER_FAILED)
		dr_sql_groups_stopped(group_id, v.error, NULL);
	return v;
}

static void check_node_id(int64 node_id)
{
	if (node_id < 1 || node_id > INT_MAX)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
		                errmsg("node id must be an integer from 1 to %d", INT_MAX)));
}

static void not_leader(int64 group_id, uint64 leader) pg_attribute_noreturn();

static void not_leader(int64 group_id, uint64 leader)
{
	char *addr = leader ? dr_sql_groups_client_address(group_id, (int64)leader) : NULL;

	if (leader == 0)
		ereport(ERROR,
		        (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		         errmsg("group %lld has no leader at the moment", (long long)group_id),
		         errhint("Try again once dragonraft.status shows a leader.")));
	ereport(ERROR,
	        (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
	         errmsg("node %d does not lead group %lld", dr_node_id, (long long)group_id),
	         errdetail("Node %llu leads it%s%s%s.", (unsigned long long)leader,
	                   addr ? " (client address \"" : "", addr ? addr : "", addr ? "\")" : ""),
	         errhint("Membership changes run on the leader.")));
}

/* The outcome of a membership change of node in group_id, as an error unless it applied. */
static void change_outcome(const DrResult *res, int64 group_id, int64 node)
{
	switch (res->rc) {
	case ENGINE_OK:
		return;
	case ENGINE_ERR_NOT_LEADER:
	case ENGINE_ERR_DROPPED:
		not_leader(group_id, res->leader);
		break;
	case ENGINE_ERR_NO_GROUP:
		dr_sql_groups_not_run(group_id, NULL);
		break;
	case ENGINE_ERR_PENDING:
		ereport(ERROR,
		        (errcode(ERRCODE_OBJECT_IN_USE),
		         errmsg("a membership change or leadership transfer of group %lld is in "
		                "progress",
		                (long long)group_id),
		         errhint("Groups change one member at a time: retry once it is done.")));
		break;
	case ENGINE_ERR_TIMEOUT:
	case ENGINE_ERR_UNKNOWN:
	case ENGINE_ERR_STOPPED:
	case DR_RC_ENGINE_EXITED:
		ereport(ERROR,
		        (errcode(ERRCODE_T_R_STATEMENT_COMPLETION_UNKNOWN),
		         errmsg("the membership change of node %lld in group %lld did not "
		                "complete: "
		                "it may still apply",
		                (long long)node, (long long)group_id),
		         errdetail("%s", res->rc == ENGINE_ERR_TIMEOUT
		                                 ? psprintf("No quorum applied it within %d ms; a "
		                                            "majority of the voters may be down.",
		                                            4 * dr_election_rtt * dr_rtt_ms)
		                                 : "The leadership or the engine worker changed "
		                                   "meanwhile."),
		         errhint("See dragonraft.members once the group has a leader again.")));
		break;
	case DR_RC_REMOVED:
		ereport(ERROR,
		        (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
		         errmsg("node %lld was removed from group %lld and can never be a member "
		                "again",
		                (long long)node, (long long)group_id),
		         errhint("Give the server a new dragonraft.node_id to add it again.")));
		break;
	case DR_RC_IS_MEMBER:
		ereport(ERROR, (errcode(ERRCODE_DUPLICATE_OBJECT),
		                errmsg("node %lld is already a member of group %lld",
		                       (long long)node, (long long)group_id),
		                errhint("Make a non-voting member vote with promote_member.")));
		break;
	case DR_RC_NOT_MEMBER:
		ereport(ERROR, (errcode(ERRCODE_UNDEFINED_OBJECT),
		                errmsg("node %lld is not a %smember of group %lld", (long long)node,
		                       res->index == 1 ? "non-voting " : "", (long long)group_id),
		                errhint("See dragonraft.members on the leader.")));
		break;
	case DR_RC_LAST_VOTER:
		ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		                errmsg("node %lld is the last voter of group %lld", (long long)node,
		                       (long long)group_id),
		                errdetail("A group keeps at least one voting member.")));
		break;
	case DR_RC_TWO_VOTERS:
		ereport(ERROR,
		        (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		         errmsg("node %lld is one of the two voters of group %lld", (long long)node,
		                (long long)group_id),
		         errdetail(
		                 "Until every member applied the change, each of the two voters "
		                 "may count itself alone as a majority; and the remaining one has "
		                 "no fault tolerance."),
		         errhint("Add a voter first, or pass force => true.")));
		break;
	case DR_RC_NO_QUORUM:
		ereport(ERROR,
		        (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		         errmsg("the membership change of node %lld would leave group %lld without "
		                "a quorum that answers",
		                (long long)node, (long long)group_id),
		         errdetail("%s", dr_sentence(res->errmsg)),
		         errhint("To add a voter, add it with voting => false, run join_group on "
		                 "it, "
		                 "then promote_member; bring the missing voters back first; or "
		                 "pass force => true (add_member: voting => true, force => "
		                 "true).")));
		break;
	case DR_RC_BEHIND:
		ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		                errmsg("node %lld has not caught up with group %lld",
		                       (long long)node, (long long)group_id),
		                errdetail("%s", dr_sentence(res->errmsg)),
		                errhint("Run join_group on that node, promote it once join_group "
		                        "returned; or "
		                        "pass force => true.")));
		break;
	case ENGINE_ERR_REJECTED:
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
		                errmsg("group %lld refused the membership change of node %lld",
		                       (long long)group_id, (long long)node),
		                res->errmsg[0] ? errdetail("%s", dr_sentence(res->errmsg)) : 0));
		break;
	default:
		ereport(ERROR, (errcode(dr_sql_groups_errcode(res->rc)),
		                errmsg("could not change the membership of group %lld: %s",
		                       (long long)group_id,
		                       res->rc > -100 ? engine_strerror(res->rc) : "bad request"),
		                res->errmsg[0] ? errdetail("%s", dr_sentence(res->errmsg)) : 0));
	}
}

/* Wait a little for the group's status to move (cancellable). */
static void nap(void)
{
	CHECK_FOR_INTERRUPTS();
	(void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 10,
	                PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
}

/*
 * Membership changes, joining and leaving act on the group and the LogDB at
 * once, and a ROLLBACK undoes none of it (a leave rolled back left the
 * catalog rows and triggers of a group whose LogDB data was gone, review 3
 * #8): refused in a transaction block, as VACUUM is, savepoints, chained
 * blocks and pipelines included, and in a procedure, which may roll back.
 * (A subtransaction of an autocommit statement, say a PL/pgSQL exception
 * block, is allowed; a failed leave_group can be run again.)
 */
static void not_in_transaction_block(const char *what)
{
	if ((IsTransactionBlock() && (!IsSubTransaction() || dr_utility_explicit_block())) ||
	    (MyXactFlags & XACT_FLAGS_PIPELINING) || dr_utility_in_call())
		ereport(ERROR, (errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
		                errmsg("%s cannot run inside a transaction block, a pipeline or a "
		                       "procedure",
		                       what),
		                errdetail("What it does to the group does not roll back with the "
		                          "transaction.")));
}

static void change(int64 group_id, int64 node, const DrMemberChange *c)
{
	DrResult res;

	dr_sql_groups_check_engine();
	check_node_id(node);
	(void)running_group(group_id);
	not_in_transaction_block(c->type == RAFT_CC_REMOVE ? "remove_member"
	                         : c->promote              ? "promote_member"
	                                                   : "add_member");
	/* A change the engine took waits for a quorum: cancelled, it may still
	 * commit (40003, as when the engine's own request timeout ends the wait). */
	dr_queue_call_unknown_if_cancelled(
	        DR_REQ_CHANGE_MEMBER, (uint64)group_id, (uint64)node, c, sizeof(*c), &res,
	        psprintf("the membership change of node %lld in group %lld did not complete: it "
	                 "may still apply",
	                 (long long)node, (long long)group_id),
	        "See dragonraft.members once the group has a leader again.");
	if (res.rc == DR_RC_NOT_MEMBER)
		res.index = c->promote; /* says which kind of member it is not */
	/* (dragonraft.members shows an applied change already: the engine
	 * worker answers once it published the group's status) */
	change_outcome(&res, group_id, node);
}

Datum dr_add_member(PG_FUNCTION_ARGS)
{
	int64 group_id = PG_GETARG_INT64(0);
	int64 node = PG_GETARG_INT32(1);
	char *addr = text_to_cstring(PG_GETARG_TEXT_PP(2));
	bool voting = PG_GETARG_BOOL(3);
	DrMemberChange c;
	char host[DR_ADDR_LEN];
	const char *why = NULL;
	int port = 0;

	if (strlen(addr) >= DR_ADDR_LEN ||
	    !dr_parse_address(addr, host, sizeof(host), &port, &why) || port == 0)
		ereport(ERROR,
		        (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
		         errmsg("the address \"%s\" is not host:port", addr),
		         errdetail("%s", why ? why : "The port must be a number from 1 to 65535."),
		         errhint("Give the new node's dragonraft.advertise_address (or "
		                 "listen_address).")));
	memset(&c, 0, sizeof(c));
	c.type = voting ? RAFT_CC_ADD_VOTER : RAFT_CC_ADD_NONVOTER;
	c.force = PG_NARGS() > 4 && PG_GETARG_BOOL(4);
	strlcpy(c.addr, addr, sizeof(c.addr));
	dr_sql_groups_check_new_member(group_id, node);
	change(group_id, node, &c);
	PG_RETURN_VOID();
}

Datum dr_promote_member(PG_FUNCTION_ARGS)
{
	DrMemberChange c;

	memset(&c, 0, sizeof(c));
	c.type = RAFT_CC_ADD_VOTER;
	c.promote = true;
	c.force = PG_NARGS() > 2 && PG_GETARG_BOOL(2);
	change(PG_GETARG_INT64(0), PG_GETARG_INT32(1), &c);
	PG_RETURN_VOID();
}

Datum dr_remove_member(PG_FUNCTION_ARGS)
{
	DrMemberChange c;

	memset(&c, 0, sizeof(c));
	c.type = RAFT_CC_REMOVE;
	c.force = PG_GETARG_BOOL(2);
	change(PG_GETARG_INT64(0), PG_GETARG_INT32(1), &c);
	PG_RETURN_VOID();
}

/* ---- leaving ---- */

static void record_left(int64 group_id);

/*
 * Stop this node's member of group_id and delete its data: the capture
 * triggers and catalog rows of the group (its tables stay, no longer
 * replicated here; NOTICE), the LogDB data, then the replication origin
 * (last: without the LogDB record, an origin marks a member that lost its
 * log, DESIGN §10).  gave_up_join: join_group's clean-up, which ends in an
 * error that rolls back the drop here; the engine worker drops it too.
 */
static void leave_locally(int64 group_id, bool gave_up_join)
{
	Oid types[1] = {INT8OID};
	Datum values[1] = {Int64GetDatum(group_id)};
	StringInfoData tables;
	char origin[NAMEDATALEN];
	RepOriginId origin_id;
	DrResult res;

	/*
	 * A batch of the group's entries (the apply worker's, a snapshot
	 * loader's, or a backend's commit of its own entry: xact.c pre_commit,
	 * which does not wait for the lock and ends with 40003 instead) holds
	 * its origin's session, and the drop of the origin below waits for that
	 * session to end: a wait no deadlock check sees.  With
	 * the group's tables locked first (DROP TRIGGER), a batch that went on
	 * to one of them waited for this transaction while this one waited for
	 * it, until the engine worker terminated this backend for blocking the
	 * apply: the LogDB data gone, the origin and catalog rows rolled back, a
	 * member that lost its LogDB (review 36, TAP 112).  So an open batch
	 * ends first, and none begins (begin_batch) until this transaction ends.
	 */
	dr_origins_name((uint64)group_id, origin);
	origin_id = replorigin_by_name(origin, true);
	dr_shmem_want_applied((uint64)group_id, 0); /* (not after apply_batch_delay) */
	if (origin_id != InvalidRepOriginId)
		dr_origins_lock(origin_id, AccessExclusiveLock);
	initStringInfo(&tables);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT relid::regclass::text FROM dragonraft.replicated_tables "
	                          "WHERE group_id = $1 AND relid IS NOT NULL "
	                          "AND state = 'replicated' ORDER BY 1",
	                          1, types, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "dragonraft could not list the tables of group %lld",
		     (long long)group_id);
	dr_internal_ddl++;
	PG_TRY();
	{
		SPITupleTable *tt = SPI_tuptable;
		uint64 n = SPI_processed;

		for (uint64 i = 0; i < n; i++) {
			char *t = SPI_getvalue(tt->vals[i], tt->tupdesc, 1);

			appendStringInfo(&tables, "%s%s", i > 0 ? ", " : "", t);
			if (SPI_execute(
			            psprintf("DROP TRIGGER IF EXISTS " DR_CAPTURE_TRIGGER
			                     " ON %s; DROP TRIGGER IF EXISTS " DR_TRUNCATE_TRIGGER
			                     " ON %s",
			                     t, t),
			            false, 0) != SPI_OK_UTILITY)
				elog(ERROR, "dragonraft could not drop its triggers on %s", t);
		}
	}
	PG_FINALLY();
	{
		dr_internal_ddl--;
	}
	PG_END_TRY();
	if (SPI_execute_with_args("DELETE FROM dragonraft.replicated_tables WHERE group_id = $1", 1,
	                          types, values, NULL, false, 0) != SPI_OK_DELETE ||
	    SPI_execute_with_args("DELETE FROM dragonraft.ddl_history WHERE group_id = $1", 1,
	                          types, values, NULL, false, 0) != SPI_OK_DELETE ||
	    SPI_execute_with_args("DELETE FROM dragonraft.member_info WHERE group_id = $1", 1,
	                          types, values, NULL, false, 0) != SPI_OK_DELETE ||
	    SPI_execute_with_args("DELETE FROM dragonraft.made_relations WHERE group_id = $1", 1,
	                          types, values, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "dragonraft could not delete the catalog rows of group %lld",
		     (long long)group_id);
	SPI_finish();

	/* Quick (nothing waits for the network), and a cancel here would leave the
	 * LogDB data gone with the origin and triggers still there.  Cancels are
	 * held from here to the end of the transaction: one that came while the
	 * engine worker deleted the data ended the statement at the executor's
	 * next CHECK_FOR_INTERRUPTS, and the catalog rows, the origin, the
	 * triggers came back and the left_groups record rolled back (review 22,
	 * TAP 071).  An engine worker that stopped answering before it took the
	 * request: queue.c gives up on it at a cancel or statement_timeout
	 * (55000, nothing done). */
	dr_xact_hold_cancels();
	/* The record that this node id left the group is durable before the
	 * member's Raft state is deleted (a crash in between leaves a record of
	 * a group that is still here: leave_group again ends it).  A join given
	 * up on is not recorded: no leader contacted the member. */
	if (!gave_up_join)
		record_left(group_id);
	dr_queue_call_uncancellable(DR_REQ_LEAVE_GROUP, (uint64)group_id, gave_up_join, NULL, 0,
	                            &res);
	if (res.rc == DR_RC_ENGINE_EXITED) /* (was XX000: review 69) */
		ereport(ERROR,
		        (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		         errmsg("dragonraft engine worker exited before it stopped the member "
		                "of group %lld on this node",
		                (long long)group_id),
		         errhint("Run leave_group again once dragonraft.node_status() shows "
		                 "the engine worker running.")));
	if (res.rc != ENGINE_OK)
		ereport(ERROR, (errcode(dr_sql_groups_errcode(res.rc)),
		                errmsg("could not stop the member of group %lld on this node: %s",
		                       (long long)group_id,
		                       res.rc > -100 ? engine_strerror(res.rc) : "request refused"),
		                res.errmsg[0] ? errdetail("%s", dr_sentence(res.errmsg)) : 0));
	replorigin_drop_by_name(origin, true, false);
	if (tables.len > 0)
		ereport(NOTICE, (errmsg("the tables of group %lld stay on this node, no longer "
		                        "replicated: %s",
		                        (long long)group_id, tables.data),
		                 errhint("To join the group again (under a new node id), empty "
		                         "or drop them first: a member's copy of a group's table "
		                         "must be empty when the table reaches it.")));
}

/*
 * leave_group deletes the member's LogDB data in its statement, and no
 * rollback brings it back, while the catalog rows, the triggers and the
 * record in left_groups roll back with its transaction: a statement or
 * transaction that failed after it (a DO block that raised next, a second
 * function call in the query) left a group without a log behind catalog
 * rows that say it is there.  So, as PostgreSQL's PreventInTransactionBlock
 * requires of DROP DATABASE (isTopLevel), it must be the whole top-level
 * statement, SELECT dragonraft.leave_group(...) with constant arguments, and
 * its transaction commits right after it (a pipeline too).  (Not from a
 * function, a DO block or a query that does anything more.)
 */
static void whole_statement(FunctionCallInfo fcinfo, const char *what)
{
	PlannedStmt *ps = ActivePortal != NULL && list_length(ActivePortal->stmts) == 1
	                          ? linitial(ActivePortal->stmts)
	                          : NULL;
	Plan *plan = ps != NULL && IsA(ps, PlannedStmt) && ps->commandType == CMD_SELECT
	                     ? ps->planTree
	                     : NULL;
	bool whole = plan != NULL && IsA(plan, Result) && plan->lefttree == NULL &&
	             ((Result *)plan)->resconstantqual == NULL && plan->qual == NIL &&
	             list_length(plan->targetlist) == 1 && fcinfo->flinfo->fn_expr != NULL &&
	             fcinfo->flinfo->fn_expr ==
	                     (Node *)linitial_node(TargetEntry, plan->targetlist)->expr;
	ListCell *lc;

	if (whole)
		foreach (lc, ((FuncExpr *)fcinfo->flinfo->fn_expr)->args)
			whole &= IsA(lfirst(lc), Const) || IsA(lfirst(lc), Param);
	if (!whole)
		ereport(ERROR,
		        (errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
		         errmsg("%s must be called alone, as SELECT dragonraft.%s(...)", what,
		                what),
		         errdetail("It deletes the member's Raft log at once, which no rollback "
		                   "brings back: it cannot run from a function, a DO block or a "
		                   "query that does more, which may fail after it.")));
	MyXactFlags |= XACT_FLAGS_NEEDIMMEDIATECOMMIT;
}

/*
 * A member whose Raft state was deleted must never vote or acknowledge again
 * under the same node id (it would forget its vote and the entries it
 * acknowledged: a committed entry can be lost, review 3 #1).  leave_group
 * records the group, and create_group and join_group of that group under
 * this node id are refused.
 *
 * The record is an empty file per group and node id,
 * dragonraft.data_dir/left_groups/<group id>.<node id>, made and synced
 * before the engine worker deletes the member's LogDB data.  It was a row of
 * the extension's table dragonraft.left_groups: DROP EXTENSION (allowed once
 * the node is a member of no group) took it along, and the node id then
 * joined or made the group again (rev58, TAP 134).  The data directory
 * outlives the extension (DROP EXTENSION removes nothing there) and a LogDB
 * moved aside as damaged, which the LogDB's own records would not.  The view
 * dragonraft.left_groups lists the files; forget_left_group deletes one on
 * purpose.  A file per record needs no lock: two leave_group calls at once
 * each make their own.
 */
static char *left_dir(void)
{
	return psprintf("%s/left_groups", dr_data_dir);
}

static char *left_path(int64 group_id, int32 node_id)
{
	return psprintf("%s/left_groups/%lld.%d", dr_data_dir, (long long)group_id, node_id);
}

static void record_left(int64 group_id)
{
	char *dir = left_dir(), *path = left_path(group_id, dr_node_id);
	struct stat st;
	int fd;

	if (MakePGDirectory(dr_data_dir) != 0 && errno != EEXIST)
		ereport(ERROR, (errcode_for_file_access(),
		                errmsg("could not create directory \"%s\": %m", dr_data_dir)));
	if (MakePGDirectory(dir) != 0 && errno != EEXIST)
		ereport(ERROR, (errcode_for_file_access(),
		                errmsg("could not create directory \"%s\": %m", dir)));
	/* Made here, or a regular file already (a leave that crashed before it
	 * deleted the member's data: leave_group again ends it).  Anything else
	 * of that name is not followed: a symlink was, and the record created or
	 * opened a file wherever it pointed, as the server's user (review 60). */
	fd = OpenTransientFile(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | PG_BINARY);
	if (fd < 0 && errno == EEXIST)
		fd = OpenTransientFile(path, O_RDWR | O_NOFOLLOW | O_NONBLOCK | PG_BINARY);
	if (fd >= 0 && (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))) {
		CloseTransientFile(fd);
		fd = -1;
		errno = EISDIR; /* (not a regular file; said below) */
	}
	if (fd < 0 && (errno == ELOOP || errno == EISDIR || errno == ENXIO || errno == EMLINK))
		ereport(ERROR, (errcode(ERRCODE_WRONG_OBJECT_TYPE),
		                errmsg("could not record that node %d left group %lld: \"%s\" "
		                       "exists and is not a regular file",
		                       dr_node_id, (long long)group_id, path),
		                errdetail("Nothing was left or deleted."),
		                errhint("Move it away (the record is an empty file that "
		                        "leave_group makes), and leave the group again.")));
	if (fd < 0)
		ereport(ERROR, (errcode_for_file_access(),
		                errmsg("could not record that node %d left group %lld: could not "
		                       "create file \"%s\": %m",
		                       dr_node_id, (long long)group_id, path)));
	if (pg_fsync(fd) != 0)
		ereport(ERROR, (errcode_for_file_access(),
		                errmsg("could not fsync file \"%s\": %m", path)));
	CloseTransientFile(fd);
	/* The file's name is in its directory, and the directory in its parent. */
	(void)fsync_fname_ext(dir, true, false, ERROR);
	(void)fsync_fname_ext(dr_data_dir, true, false, ERROR);
}

void dr_sql_membership_check_not_left(int64 group_id)
{
	char *path = left_path(group_id, dr_node_id);
	char origin[NAMEDATALEN];
	struct stat st;
	bool cut_short;

	if (lstat(path, &st) != 0) {
		if (errno == ENOENT)
			return;
		ereport(ERROR, (errcode_for_file_access(),
		                errmsg("could not tell whether node %d left group %lld: could not "
		                       "stat file \"%s\": %m",
		                       dr_node_id, (long long)group_id, path)));
	}
	/* The record is made before the LogDB data is deleted: a leave cut short
	 * after it (its origin or its member still here) is ended by leave_group. */
	dr_origins_name((uint64)group_id, origin);
	cut_short = replorigin_by_name(origin, true) != InvalidRepOriginId ||
	            dr_shmem_group_life((uint64)group_id) != 0;
	ereport(ERROR,
	        (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
	         errmsg("node %d left group %lld and cannot be its member again", dr_node_id,
	                (long long)group_id),
	         errdetail("Its Raft log and vote were deleted when it left: under the same "
	                   "node id it could vote twice in a term or forget entries it "
	                   "acknowledged.  The record outlives DROP EXTENSION."),
	         cut_short ? errhint("Its leave was cut short here: run leave_group(%lld, true) "
	                             "to end it, then give this server a new "
	                             "dragonraft.node_id to add it to the group again.",
	                             (long long)group_id)
	                   : errhint("Remove node %d on the group's leader (remove_member), then "
	                             "give this server a new dragonraft.node_id and add it under "
	                             "that id.",
	                             dr_node_id)));
}

/*
 * A name of left_dir() that is a record: "<group id>.<node id>", as
 * left_path() writes it, both positive.  Any other name (another program's
 * file, " 1.2", "01.2", "+1.2", "1. 2", a group id beyond bigint) is not one:
 * sscanf alone took those for records of a group or node the checks, which
 * look for left_path()'s name, never find (and an overflow for group
 * 9223372036854775807).
 */
static bool parse_left_name(const char *name, int64 *group_id, int32 *node_id)
{
	long long g;
	long n;
	char *end;

	if (name[0] < '1' || name[0] > '9')
		return false;
	errno = 0;
	g = strtoll(name, &end, 10);
	if (errno != 0 || *end != '.' || end[1] < '1' || end[1] > '9')
		return false;
	n = strtol(end + 1, &end, 10);
	if (errno != 0 || *end != '\0' || n > PG_INT32_MAX)
		return false;
	*group_id = g;
	*node_id = (int32)n;
	return true;
}

/* The rows of dragonraft.left_groups: the files of left_dir(). */
Datum dr_left_groups(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *)fcinfo->resultinfo;
	char *dir = left_dir();
	struct dirent *de;
	DIR *d;

	InitMaterializedSRF(fcinfo, 0);
	d = AllocateDir(dir);
	if (d == NULL && errno == ENOENT)
		PG_RETURN_VOID(); /* nothing left yet */
	while ((de = ReadDir(d, dir)) != NULL) {
		int64 group_id;
		int32 node_id;
		struct stat st;
		Datum values[3];
		bool nulls[3] = {false, false, false};

		if (!parse_left_name(de->d_name, &group_id, &node_id))
			continue;
		values[0] = Int64GetDatum(group_id);
		values[1] = Int32GetDatum(node_id);
		if (lstat(psprintf("%s/%s", dir, de->d_name), &st) == 0)
			values[2] = TimestampTzGetDatum(time_t_to_timestamptz(st.st_mtime));
		else
			nulls[2] = true;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	FreeDir(d);
	PG_RETURN_VOID();
}

/*
 * forget_left_group(g, node): the operator's way to give node id node back
 * group g, once every member of g is gone (superuser only: the function's
 * EXECUTE is granted to no one).  The file is deleted at once, and a
 * rollback does not bring it back: not in a transaction block, as
 * leave_group (before rev60, BEGIN; forget_left_group; ROLLBACK deleted it).
 */
Datum dr_forget_left_group(PG_FUNCTION_ARGS)
{
	int64 group_id = PG_GETARG_INT64(0);
	int32 node_id = PG_GETARG_INT32(1);
	char *path = left_path(group_id, node_id);
	struct stat st;

	if (group_id < 1 || node_id < 1)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
		                errmsg("group id and node id must be positive integers")));
	not_in_transaction_block("forget_left_group");
	if (lstat(path, &st) != 0) {
		if (errno == ENOENT)
			ereport(ERROR,
			        (errcode(ERRCODE_UNDEFINED_OBJECT),
			         errmsg("node %d has no record of leaving group %lld on this "
			                "server",
			                node_id, (long long)group_id),
			         errhint("See dragonraft.left_groups for the records.")));
		ereport(ERROR, (errcode_for_file_access(),
		                errmsg("could not stat file \"%s\": %m", path)));
	}
	(void)durable_unlink(path, ERROR);
	PG_RETURN_VOID();
}

/* Is something of group_id left here that the engine no longer runs (a leave
 * that failed after its LogDB step)?  Then leave_group finishes the job. */
static bool left_behind(int64 group_id)
{
	Oid types[1] = {INT8OID};
	Datum values[1] = {Int64GetDatum(group_id)};
	char origin[NAMEDATALEN];
	bool found;

	dr_origins_name((uint64)group_id, origin);
	if (replorigin_by_name(origin, true) != InvalidRepOriginId)
		return true;
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT 1 FROM dragonraft.replicated_tables WHERE group_id = $1 "
	                          "UNION ALL "
	                          "SELECT 1 FROM dragonraft.member_info WHERE group_id = $1",
	                          1, types, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "dragonraft could not read the catalog rows of group %lld",
		     (long long)group_id);
	found = SPI_processed > 0;
	SPI_finish();
	return found;
}

Datum dr_leave_group(PG_FUNCTION_ARGS)
{
	int64 group_id = PG_GETARG_INT64(0);
	bool force = PG_GETARG_BOOL(1);
	GroupView v;

	dr_sql_groups_check_engine();
	v = view(group_id, dr_node_id);
	if (!v.exists && !left_behind(group_id))
		dr_sql_groups_missing(group_id, NULL);
	not_in_transaction_block("leave_group");
	if (v.member && v.state == DR_MEMBER_ACTIVE && v.role == RAFT_LEADER) {
		DrMemberChange c;

		/* The leader removes itself; it hands over leadership as it applies it. */
		memset(&c, 0, sizeof(c));
		c.type = RAFT_CC_REMOVE;
		c.force = force;
		change(group_id, dr_node_id, &c);
	} else if (v.member && v.state == DR_MEMBER_ACTIVE && !force) {
		/* Changes run on the leader, and a removed follower may never hear of its
		 * removal (the leader stops sending it anything): the user must say so. */
		ereport(ERROR,
		        (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		         errmsg("node %d is a member of group %lld as far as it knows", dr_node_id,
		                (long long)group_id),
		         errdetail("Only the leader can remove a member, and a removed node may "
		                   "never hear of it: the leader stops sending it anything."),
		         errhint("Run SELECT dragonraft.remove_member(%lld, %d) on the leader, "
		                 "then "
		                 "leave_group(%lld, force => true) here.",
		                 (long long)group_id, dr_node_id, (long long)group_id)));
	}
	/* (A leader that removed itself above and is refused here keeps its
	 * data as a removed member does: leave_group(g, true) alone deletes it.) */
	whole_statement(fcinfo, "leave_group");
	leave_locally(group_id, false);
	PG_RETURN_VOID();
}

/* ---- joining ---- */

/*
 * A table of the group that this node refused (it had rows of its own, or
 * another definition: say, a server that left the group, kept its tables,
 * and joins again under a new node id) is not replicated here: the client
 * is told, not only the server log (review 3 #7).
 */
static void warn_refused(int64 group_id)
{
	Oid types[1] = {INT8OID};
	Datum values[1] = {Int64GetDatum(group_id)};

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT string_agg(format('%s (%s)', relid::regclass, detail), "
	                          "'; ' ORDER BY table_id) FROM dragonraft.replicated_tables "
	                          "WHERE group_id = $1 AND state = 'refused'",
	                          /* not read-only: a snapshot taken now, after the apply */
	                          1, types, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "dragonraft could not list the tables of group %lld",
		     (long long)group_id);
	if (SPI_processed == 1) {
		char *refused = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);

		if (refused != NULL)
			ereport(WARNING,
			        (errmsg("node %d does not replicate some tables of group %lld: %s",
			                dr_node_id, (long long)group_id, refused),
			         errdetail("A member's copy of a group's table must be empty and "
			                   "defined as the leader's when the table reaches it; a "
			                   "refused table takes no writes and no linearizable "
			                   "reads here, and the group's other tables go on."),
			         errhint("Drop these tables here (or rename them and their "
			                 "indexes), then run dragonraft.resend_table on the "
			                 "group's leader for each.")));
	}
	SPI_finish();
}

/* This node applied its own removal (review 3 #10): it never joins again. */
static void check_not_removed(int64 group_id, const GroupView *v)
{
	if (v->exists && v->removed)
		ereport(ERROR,
		        (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
		         errmsg("node %d was removed from group %lld and can never be a member "
		                "again",
		                dr_node_id, (long long)group_id),
		         errhint("Run leave_group(%lld, force => true) here, then give the server "
		                 "a new dragonraft.node_id and add it under that id.",
		                 (long long)group_id)));
}

static void join_failed(int64 group_id, const DrResult *res) pg_attribute_noreturn();

static void join_failed(int64 group_id, const DrResult *res)
{
	switch (res->rc) {
	case DR_RC_LOST:
		ereport(ERROR,
		        (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		         errmsg("group %lld cannot be joined from this node: %s",
		                (long long)group_id, res->errmsg),
		         errdetail("A member that lost its Raft log must not start as new.")));
		break;
	default:
		dr_sql_groups_start_failed(group_id, res);
		ereport(ERROR, (errcode(dr_sql_groups_errcode(res->rc)),
		                errmsg("could not join group %lld: %s", (long long)group_id,
		                       res->rc > -100 ? engine_strerror(res->rc) : "bad request"),
		                res->errmsg[0] ? errdetail("%s", dr_sentence(res->errmsg)) : 0));
	}
}

/*
 * The addresses given to join_group that replace another one this node
 * dials (node addresses are the node's, for all its groups): "node 3 at
 * 127.0.0.1:9 instead of 127.0.0.1:7403", or NULL.  A typo there cuts this
 * node off from that one, so join_group says so (user28).
 */
static char *replaced_addresses(const DrMemberAddr *m, int n)
{
	StringInfoData s;

	initStringInfo(&s);
	LWLockAcquire(dr_shared->groups_lock, LW_SHARED);
	for (int i = 0; i < n; i++) {
		const char *known = dr_shmem_node_address(m[i].node_id);

		if (known != NULL && known[0] != '\0' && strcmp(known, m[i].addr) != 0)
			appendStringInfo(&s, "%snode %llu at %s instead of %s",
			                 s.len > 0 ? ", " : "", (unsigned long long)m[i].node_id,
			                 m[i].addr, known);
	}
	LWLockRelease(dr_shared->groups_lock);
	return s.len > 0 ? s.data : NULL;
}

/*
 * The member that join_group waits for stopped, or is gone: a member gone
 * has no error to show (an empty DETAIL when leave_group ended it meanwhile,
 * review 46, TAP 127).
 */
static void join_stopped(int64 group_id, const GroupView *v) pg_attribute_noreturn();

static void join_stopped(int64 group_id, const GroupView *v)
{
	if (!v->exists)
		ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		                errmsg("node %d is no longer a member of group %lld", dr_node_id,
		                       (long long)group_id),
		                errdetail("It ended while join_group waited for it to catch up: "
		                          "leave_group(%lld, true) on this node ends it so.",
		                          (long long)group_id),
		                errhint("See dragonraft.left_groups for the groups this node left, "
		                        "which it cannot join again.")));
	dr_sql_groups_stopped(group_id, v->error, NULL);
}

/*
 * view() for join_group's waits: the member it joined, *life (its DrGroup.life; 0: the first
 * one it sees).  A group left and made again here meanwhile (same id) is
 * not it: it is shown as gone, and join_group ends as when it is left
 * (rev58; before, it went on with the new group's status as its own).
 * While the engine worker restarts (the next one takes every group's entry
 * down and adds the LogDB's again, the joined member among them) it looks
 * again once it runs, and *clock (the wait's timer: contact, progress)
 * starts again then; before, join_group ended as if the member had been
 * left, "no longer a member" (review 60).
 */
static GroupView view_joined(int64 group_id, uint64 *life, TimestampTz *clock)
{
	GroupView v = view(group_id, dr_node_id);

	while ((!v.exists || (*life != 0 && v.life != *life)) && !dr_shmem_engine_running()) {
		dr_shmem_engine_wait();
		CHECK_FOR_INTERRUPTS();
		v = view(group_id, dr_node_id);
		if (clock != NULL)
			*clock = GetCurrentTimestamp();
	}
	if (v.exists && *life == 0)
		*life = v.life;
	else if (v.exists && v.life != *life) {
		memset(&v, 0, sizeof(v));
		v.exists = false;
	}
	return v;
}

Datum dr_join_group(PG_FUNCTION_ARGS)
{
	int64 group_id = PG_GETARG_INT64(0);
	Jsonb *jb = PG_GETARG_JSONB_P(1);
	DrMemberAddr *members = palloc(sizeof(DrMemberAddr) * RAFT_MAX_MEMBERS);
	int election_ms = dr_election_rtt * dr_rtt_ms;
	TimestampTz start, moved, noticed, failing = 0, load_started = 0, last_load = 0;
	uint64 last = 0, done, total;
	volatile uint64 caught = 0;
	DrSnapPhase phase, last_phase = DR_SNAP_STARTING;
	GroupView v;
	DrResult res;
	MemoryContext cxt = CurrentMemoryContext;
	char *payload, *replaced;
	Size len;
	int n, others = 0;
	uint64 life = 0;
	int64 failures_seen = -1; /* the apply's failures in a row, as last seen here */
	int failed_here = 0;      /* tries that failed while this call waited */

	dr_sql_groups_check_engine();
	if (group_id < 1)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
		                errmsg("group id must be a positive integer")));
	n = dr_sql_groups_parse_members(jb, members);
	dr_sql_membership_check_not_left(group_id);
	not_in_transaction_block("join_group");
	for (int i = 0; i < n; i++)
		if (members[i].node_id != (uint64)dr_node_id)
			members[others++] = members[i];
	if (others == 0)
		ereport(ERROR,
		        (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
		         errmsg("members must name a member of group %lld other than this node",
		                (long long)group_id),
		         errhint("Give the Raft addresses of the group's members, as in "
		                 "create_group: a joining node hears from whichever leads.")));
	/*
	 * A member learns the addresses it is given (the engine worker keeps them
	 * with the group's), and one that is still catching up (join_group
	 * cancelled, or the server restarted meanwhile) is waited for again.
	 */
	v = view(group_id, dr_node_id);
	check_not_removed(group_id, &v);
	replaced = replaced_addresses(members, others);
	payload = dr_queue_encode_members(members, others, &len);
	dr_queue_call(DR_REQ_JOIN_GROUP, (uint64)group_id, 0, payload, len, &res);
	if (res.rc != ENGINE_OK)
		join_failed(group_id, &res);
	if (replaced != NULL)
		ereport(WARNING,
		        (errmsg("node %d now dials %s", dr_node_id, replaced),
		         errdetail("A join_group call takes the addresses it is given as the right "
		                   "ones, for every group of this node: a wrong one cuts this "
		                   "node off from that node."),
		         errhint("If that is a mistake, run join_group(%lld, ...) again with the "
		                 "right address; dragonraft.members shows the addresses this "
		                 "node knows.",
		                 (long long)group_id)));
	/* (One whose apply fails is waited for, as the "cannot apply" error's hint
	 * says: before, it returned at once, "already a member".) */
	if (v.exists && v.state == DR_MEMBER_ACTIVE && v.member && v.apply_failures == 0) {
		ereport(NOTICE,
		        (errmsg("node %d is already a member of group %lld", dr_node_id,
		                (long long)group_id),
		         errdetail_plural("It learned the address given for %d other node.",
		                          "It learned the addresses given for %d other nodes.",
		                          others, others)));
		PG_RETURN_VOID();
	}

	/* Was it added?  Then a leader contacts it. */
	start = GetCurrentTimestamp();
	for (;;) {
		v = view_joined(group_id, &life, &start);
		check_not_removed(group_id, &v);
		if (v.exists && v.leader != 0)
			break;
		if (!v.exists || v.state != DR_MEMBER_ACTIVE)
			join_stopped(group_id, &v);
		if (TimestampDifferenceExceeds(start, GetCurrentTimestamp(),
		                               JOIN_CONTACT_TIMEOUTS * election_ms)) {
			char own[DR_ADDR_LEN];

			leave_locally(group_id, true);
			SpinLockAcquire(&dr_shared->mutex);
			strlcpy(own, dr_shared->raft_address, sizeof(own));
			SpinLockRelease(&dr_shared->mutex);
			ereport(ERROR,
			        (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			         errmsg("no leader of group %lld contacted node %d",
			                (long long)group_id, dr_node_id),
			         errdetail("Within %d ms.  Either node %d was not added to the "
			                   "group, or members names no member that this node can "
			                   "reach: a new member accepts connections only from the "
			                   "nodes given.",
			                   JOIN_CONTACT_TIMEOUTS * election_ms, dr_node_id),
			         errhint("Run SELECT dragonraft.add_member(%lld, %d, '%s') on the "
			                 "group's leader first (a removed node can never rejoin), "
			                 "and give the Raft addresses (advertise_address) of the "
			                 "group's members, its leader's at least.",
			                 (long long)group_id, dr_node_id, own)));
		}
		nap();
	}
	ereport(NOTICE, (errmsg("node %d joined group %lld: node %llu leads it; catching up",
	                        dr_node_id, (long long)group_id, (unsigned long long)v.leader)));

	/* Caught up: it applied the change that added it, and what the leader committed. */
	moved = noticed = GetCurrentTimestamp();
	for (;;) {
		TimestampTz now = GetCurrentTimestamp();
		bool receiving =
		        dr_snapshot_receiving(group_id, &phase, &done, &total, &load_started);

		v = view_joined(group_id, &life, &moved);
		if (!v.exists || v.state == DR_MEMBER_LOST || v.state == DR_MEMBER_FAILED)
			join_stopped(group_id, &v);
		check_not_removed(group_id, &v);
		/* (Not while a snapshot is verified, loaded or installed: a read barrier
		 * would find the member busy.) */
		if (v.member && v.applied >= v.commit && v.state != DR_MEMBER_RECOVERING &&
		    !receiving)
			break;
		/* Waited for here: not after apply_batch_delay (review 37). */
		if (v.applied < v.commit)
			dr_shmem_want_applied((uint64)group_id, v.commit);
		/*
		 * Only tries that fail while this call waits count, two at least: the
		 * failures from before it (join_group run again once the cause is fixed,
		 * as its hint says) say nothing of the next try, which the apply worker's
		 * back-off may hold for longer than this bound (before, such a call ended
		 * with "every try failed" with no try made meanwhile).
		 */
		if (v.apply_failures == 0)
			failed_here = 0;
		else if (failures_seen >= 0 && v.apply_failures != failures_seen &&
		         failed_here++ == 0)
			failing = now;
		failures_seen = v.apply_failures;
		if (failed_here >= 2 &&
		    TimestampDifferenceExceeds(failing, now,
		                               JOIN_APPLY_FAILED_TIMEOUTS * election_ms))
			ereport(ERROR,
			        (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			         errmsg("node %d cannot apply the entries of group %lld",
			                dr_node_id, (long long)group_id),
			         errdetail("%s",
			                   dr_sentence(psprintf(
			                           "It applied up to entry %llu of %llu and every "
			                           "try failed for %d ms: %s",
			                           (unsigned long long)v.applied,
			                           (unsigned long long)v.commit,
			                           JOIN_APPLY_FAILED_TIMEOUTS * election_ms,
			                           v.error))),
			         errhint("The member stays and its apply worker keeps trying: fix "
			                 "the cause (see dragonraft.status and the server log), "
			                 "then run join_group again to wait for it; or "
			                 "remove_member on the leader and leave_group here.")));
		if (receiving) {
			/* Another load than the one the last NOTICE named: its bytes start
			 * again (the last one failed, the member restarted in place to get
			 * another snapshot, or the load is tried again), and it says so. */
			bool again = last_load != 0 && load_started != last_load;

			moved = now; /* a snapshot is loaded: the log waits */
			if (phase != last_phase || again ||
			    TimestampDifferenceExceeds(noticed, now, JOIN_NOTICE_MS)) {
				noticed = now;
				ereport(NOTICE,
				        (errmsg("joining group %lld: %s a snapshot%s, %llu of %llu "
				                "bytes",
				                (long long)group_id,
				                phase == DR_SNAP_VERIFYING ? "verifying"
				                                           : "loading",
				                again ? " again (a new load)" : "",
				                (unsigned long long)done,
				                (unsigned long long)total),
				         again && v.error[0] != '\0'
				                 ? errdetail("The last one ended: %s.", v.error)
				                 : 0));
				last_load = load_started;
			}
			last_phase = phase;
		} else if (v.state == DR_MEMBER_RECOVERING)
			moved = now;
		/* While the apply fails, the log not growing is not what holds the
		 * member back, and the bound above ends the wait: the stall is counted
		 * from the next try (before, once the back-off between tries reached
		 * 30 s, the bound below ended the wait first, "receives no entries",
		 * with a hint to remove the member; rev66 TAP 137). */
		if (v.apply_failures > 0 && v.apply_retry_at > moved)
			moved = v.apply_retry_at;
		if (v.last_index != last) {
			last = v.last_index;
			moved = now;
		} else if (TimestampDifferenceExceeds(moved, now,
		                                      JOIN_STALL_TIMEOUTS * election_ms))
			ereport(ERROR,
			        (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			         errmsg("node %d receives no entries of group %lld", dr_node_id,
			                (long long)group_id),
			         v.error[0] != '\0'
			                 ? errdetail("Its log ends at %llu and did not grow "
			                             "for %d ms: %s.",
			                             (unsigned long long)v.last_index,
			                             JOIN_STALL_TIMEOUTS * election_ms, v.error)
			                 : errdetail("Its log ends at %llu and did not grow for "
			                             "%d ms: the leader may fail to send it a "
			                             "snapshot of the entries it compacted (see "
			                             "the leader's log).",
			                             (unsigned long long)v.last_index,
			                             JOIN_STALL_TIMEOUTS * election_ms),
			         errhint("Remove it on the leader (remove_member) and "
			                 "leave_group here.")));
		if (TimestampDifferenceExceeds(noticed, now, JOIN_NOTICE_MS)) {
			long secs = 0;
			int usecs;

			noticed = now;
			/* (with the reason it makes no progress, a refused snapshot say; a
			 * failing apply with when it is tried next) */
			if (v.apply_failures > 0 && v.apply_retry_at > now)
				TimestampDifference(now, v.apply_retry_at, &secs, &usecs);
			ereport(NOTICE,
			        (errmsg("joining group %lld: %llu entries received, %llu applied",
			                (long long)group_id, (unsigned long long)v.last_index,
			                (unsigned long long)v.applied),
			         v.apply_failures > 0
			                 ? errdetail("%s",
			                             dr_sentence(psprintf(
			                                     "Its apply failed %u times in a row, "
			                                     "waiting for its next try (in %ld "
			                                     "s): %s",
			                                     v.apply_failures, secs, v.error)))
			         : v.error[0] != '\0' ? errdetail("%s", dr_sentence(v.error))
			                              : 0));
		}
		nap();
	}
	/*
	 * A snapshot sets this member's commit index to its own: what the leader
	 * committed is asked of the leader (a read barrier, which waits until it
	 * is applied here too).  The status copy lags the engine: a snapshot that
	 * came after the loop saw none is waited for (TAP 064 failed once with
	 * "this member is loading a snapshot").  A member that ended meanwhile
	 * (leave_group, a stop) says so as in the loop: the barrier's own error
	 * was "group 31 does not exist on this node", with no reason (TAP 127
	 * failed on it 1 run in 10).
	 */
	PG_TRY();
	{
		caught = dr_read_barrier_ext((uint64)group_id, true);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		v = view_joined(group_id, &life, NULL);
		if (v.exists && v.state != DR_MEMBER_LOST && v.state != DR_MEMBER_FAILED)
			PG_RE_THROW();
		FlushErrorState();
		join_stopped(group_id, &v);
	}
	PG_END_TRY();
	warn_refused(group_id);
	ereport(NOTICE, (errmsg("node %d caught up with group %lld at entry %llu", dr_node_id,
	                        (long long)group_id, (unsigned long long)caught)));
	PG_RETURN_VOID();
}

/* ---- snapshots and reads ---- */

Datum dr_snapshot(PG_FUNCTION_ARGS)
{
	int64 group_id = PG_GETARG_INT64(0);
	DrResult res;

	dr_sql_groups_check_engine();
	(void)running_group(group_id);
	dr_queue_call_unknown_if_cancelled(
	        DR_REQ_SNAPSHOT, (uint64)group_id, 0, NULL, 0, &res,
	        psprintf("the snapshot of group %lld did not complete: it may still be taken",
	                 (long long)group_id),
	        "See snapshot_index in dragonraft.status.");
	if (res.rc == ENGINE_ERR_NO_GROUP)
		dr_sql_groups_not_run(group_id, NULL);
	if (res.rc == ENGINE_ERR_TIMEOUT)
		ereport(ERROR,
		        (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		         errmsg("could not take a snapshot of group %lld in time",
		                (long long)group_id),
		         errdetail(
		                 "A snapshot records the membership as of its index, and this node "
		                 "has not made its apply of the group's last membership change "
		                 "durable."),
		         errhint("See dragonraft.status: a stuck apply says why.")));
	if (res.rc == DR_RC_ENGINE_EXITED)
		dr_sql_groups_engine_exited(); /* (was XX000: review 69) */
	if (res.rc == ENGINE_ERR_STOPPED) /* (was XX000 "group stopped": rev90) */
		ereport(ERROR,
		        (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		         errmsg("could not take a snapshot of group %lld: the group stopped on this "
		                "node meanwhile",
		                (long long)group_id),
		         errdetail("The member left the group (leave_group), was removed from it, or "
		                   "restarted to take a snapshot."),
		         errhint("See dragonraft.status.")));
	if (res.rc != ENGINE_OK)
		ereport(ERROR,
		        (errcode(res.rc == ENGINE_ERR_PENDING || res.rc == ENGINE_ERR_BUSY
		                         ? ERRCODE_OBJECT_IN_USE
		                         : dr_sql_groups_errcode(res.rc)),
		         errmsg("could not take a snapshot of group %lld: %s", (long long)group_id,
		                res.rc > -100 ? engine_strerror(res.rc)
		                              : "the engine worker exited"),
		         res.errmsg[0] ? errdetail("%s", dr_sentence(res.errmsg)) : 0));
	/* (dragonraft.status shows it already: the engine worker answers once it
	 * published the group's status) */
	PG_RETURN_INT64((int64)res.index);
}

Datum dr_read_barrier_sql(PG_FUNCTION_ARGS)
{
	int64 group_id = PG_GETARG_INT64(0);

	if (group_id < 1)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
		                errmsg("group id must be a positive integer")));
	PG_RETURN_INT64((int64)dr_read_barrier((uint64)group_id));
}
