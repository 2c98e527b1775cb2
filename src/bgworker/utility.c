/*
 * utility.c - the hooks of the write path (DESIGN §4):
 *
 * - ProcessUtility: DDL on a replicated table (ALTER TABLE, DROP TABLE,
 *   CREATE INDEX, ...) is refused outside dragonraft.execute(), which runs
 *   it on every member in log order; the apply worker and dragonraft's own
 *   trigger installation are let through.  TRUNCATE and COPY are data
 *   changes and replicate like DML.
 * - ExecutorStart checks a statement that writes (or locks rows of) a
 *   replicated table before it touches a row (dr_capture_begin/lock).
 * - ProcessUtility and ExecutorStart note a write to a table that is not
 *   replicated: such a transaction keeps synchronous_commit (only the
 *   replicated part is durable in the Raft log).
 * - Only replicate_table creates capture triggers.
 *
 * Both hooks cost a transaction that touches no replicated table a few
 * tests per statement.
 */
#include "write.h"

#include "access/table.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "executor/executor.h"
#include "nodes/parsenodes.h"
#include "parser/parse_func.h"
#include "parser/parsetree.h"
#include "tcop/utility.h"
#include "utils/lsyscache.h"

bool dr_is_apply_worker = false;
int dr_internal_ddl = 0;

static ProcessUtility_hook_type prev_utility = NULL;
static ExecutorStart_hook_type prev_executor_start = NULL;

/*
 * Is the relation rv names replicated (for an index: its table)?  A missing
 * one is not, nor anything that is not a table (a composite type, a view,
 * a sequence).
 */
static bool rv_replicated(RangeVar *rv)
{
	Oid relid = RangeVarGetRelid(rv, NoLock, true);
	Relation rel;
	bool r;

	if (!OidIsValid(relid))
		return false;
	switch (get_rel_relkind(relid)) {
	case RELKIND_INDEX:
	case RELKIND_PARTITIONED_INDEX:
		relid = IndexGetRelation(relid, true);
		break;
	case RELKIND_RELATION:
	case RELKIND_PARTITIONED_TABLE:
		break;
	default:
		return false;
	}
	rel = OidIsValid(relid) ? try_table_open(relid, AccessShareLock) : NULL;
	if (rel == NULL)
		return false;
	r = dr_capture_rel_replicated(rel, NULL, NULL);
	table_close(rel, AccessShareLock);
	return r;
}

/* A trigger that only replicate_table may create: the capture trigger's
 * names, or dragonraft.capture() under any name. */
static bool capture_trigger(Node *stmt)
{
	const char *name = NULL;

	if (IsA(stmt, CreateTrigStmt)) {
		CreateTrigStmt *t = (CreateTrigStmt *)stmt;
		char *schema, *fn;

		DeconstructQualifiedName(t->funcname, &schema, &fn);
		if (strcmp(fn, "capture") == 0) {
			Oid fid = schema ? InvalidOid : LookupFuncName(t->funcname, 0, NULL, true);

			if (schema ? strcmp(schema, "dragonraft") == 0
			           : OidIsValid(fid) &&
			                     get_func_namespace(fid) ==
			                             get_namespace_oid("dragonraft", true))
				return true;
		}
		name = t->trigname;
	} else if (IsA(stmt, RenameStmt) && ((RenameStmt *)stmt)->renameType == OBJECT_TRIGGER)
		name = ((RenameStmt *)stmt)->newname;
	return name != NULL && strncmp(name, DR_CAPTURE_TRIGGER, strlen(DR_CAPTURE_TRIGGER)) == 0;
}

/* The replicated table a DDL statement changes, or NULL. */
static RangeVar *ddl_target(Node *stmt)
{
	switch (nodeTag(stmt)) {
	case T_AlterTableStmt:
		return ((AlterTableStmt *)stmt)->relation;
	case T_IndexStmt:
		return ((IndexStmt *)stmt)->relation;
	case T_RenameStmt:
		return ((RenameStmt *)stmt)->relation;
	case T_CreateTrigStmt:
		return ((CreateTrigStmt *)stmt)->relation;
	case T_RuleStmt:
		return ((RuleStmt *)stmt)->relation;
	case T_AlterObjectSchemaStmt:
		return ((AlterObjectSchemaStmt *)stmt)->relation;
	case T_DropStmt: {
		DropStmt *d = (DropStmt *)stmt;
		ListCell *lc;

		if (d->removeType != OBJECT_TABLE)
			return NULL;
		foreach (lc, d->objects) {
			RangeVar *rv = makeRangeVarFromNameList(lfirst(lc));

			if (rv_replicated(rv))
				return rv;
		}
		return NULL;
	}
	default:
		return NULL;
	}
}

/* Utility statements that write nothing a crash could lose. */
static bool writes_nothing(Node *stmt)
{
	switch (nodeTag(stmt)) {
	case T_TransactionStmt:
	case T_VariableSetStmt:
	case T_VariableShowStmt:
	case T_PrepareStmt:
	case T_ExecuteStmt: /* its plan goes through ExecutorStart */
	case T_DeallocateStmt:
	case T_DeclareCursorStmt:
	case T_FetchStmt:
	case T_ClosePortalStmt:
	case T_DoStmt: /* its statements go through the hooks */
	case T_CallStmt:
	case T_LockStmt:
	case T_ExplainStmt:
		return true;
	case T_CopyStmt: /* COPY TO writes nothing; COPY FROM a replicated table is captured */
		return !((CopyStmt *)stmt)->is_from || rv_replicated(((CopyStmt *)stmt)->relation);
	default:
		return false;
	}
}

static void utility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
                    ProcessUtilityContext context, ParamListInfo params, QueryEnvironment *queryEnv,
                    DestReceiver *dest, QueryCompletion *qc)
{
	Node *stmt = pstmt->utilityStmt;

	if (!dr_is_apply_worker && dr_internal_ddl == 0) {
		RangeVar *rv;

		if (capture_trigger(stmt))
			ereport(ERROR,
			        (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			         errmsg("only dragonraft.replicate_table creates dragonraft's "
			                "capture triggers")));
		rv = ddl_target(stmt);

		if (rv != NULL && (nodeTag(stmt) == T_DropStmt || rv_replicated(rv)))
			ereport(ERROR,
			        (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			         errmsg("table \"%s\" is replicated by dragonraft: change it with "
			                "dragonraft.execute",
			                rv->relname),
			         errdetail("DDL on a replicated table must run on every member of "
			                   "its "
			                   "group in log order."),
			         errhint("Run it as SELECT dragonraft.execute(<group id>, "
			                 "'<command>').")));
		if (!dr_capture_other_writes() && !writes_nothing(stmt))
			dr_capture_note_other_write();
	}
	if (prev_utility)
		prev_utility(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params, queryEnv,
		                        dest, qc);
}

/*
 * A statement that writes (or locks rows of) a replicated table checks that
 * this node may write it before it touches a row: a follower refuses it
 * with 25006 before it runs, and a new leader waits until it applied its
 * term's no-op before it locks a row that an older entry, not applied yet,
 * may change (the apply worker would wait for that lock, and the backend
 * for the apply).  Other result relations keep synchronous_commit.
 */
static void executor_start(QueryDesc *qd, int eflags)
{
	PlannedStmt *ps = qd->plannedstmt;
	ListCell *lc;

	if (prev_executor_start)
		prev_executor_start(qd, eflags);
	else
		standard_ExecutorStart(qd, eflags);
	if ((ps->resultRelations == NIL && ps->rowMarks == NIL) ||
	    (eflags & EXEC_FLAG_EXPLAIN_ONLY) || dr_is_apply_worker)
		return;
	foreach (lc, ps->resultRelations) {
		Index rti = lfirst_int(lc);
		ResultRelInfo *ri = qd->estate->es_result_relations
		                            ? qd->estate->es_result_relations[rti - 1]
		                            : NULL;
		uint64 group_id;

		if (ri != NULL && dr_capture_rel_replicated(ri->ri_RelationDesc, &group_id, NULL))
			dr_capture_begin(group_id);
		else if (!dr_capture_other_writes())
			dr_capture_note_other_write();
	}
	foreach (lc, ps->rowMarks) {
		PlanRowMark *rc = lfirst(lc);
		uint64 group_id;

		if (rc->markType == ROW_MARK_REFERENCE || rc->markType == ROW_MARK_COPY ||
		    rt_fetch(rc->rti, ps->rtable)->rtekind != RTE_RELATION)
			continue;
		if (dr_capture_rel_replicated(ExecGetRangeTableRelation(qd->estate, rc->rti),
		                              &group_id, NULL))
			dr_capture_lock(group_id);
	}
}

void dr_utility_init(void)
{
	prev_utility = ProcessUtility_hook;
	ProcessUtility_hook = utility;
	prev_executor_start = ExecutorStart_hook;
	ExecutorStart_hook = executor_start;
}
