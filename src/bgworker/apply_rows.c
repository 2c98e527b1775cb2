/*
 * apply_rows.c - the apply worker's side of the write path (DESIGN §4):
 * change sets, table registrations and utility commands, applied inside the
 * apply worker's transaction (several entries per transaction, the applied
 * index in its commit record: apply_worker.c).
 *
 * Rows are applied with the executor, as logical replication's worker.c
 * does: a table id maps to the local table (dragonraft.replicated_tables),
 * column names to attribute numbers, values come in through their types'
 * binary receive functions (both cached until a relcache invalidation, a
 * registration or a utility command), rows are found by replica identity
 * (the identity index, or the whole row under REPLICA IDENTITY FULL) and
 * changed with ExecSimpleRelationInsert/Update/Delete.  The tables stay open,
 * with their executor state, for the batch's next change sets of the same
 * tables (kept).  The worker runs with
 * session_replication_role = replica, so user triggers and the capture
 * trigger do not fire.  A row that is not found, or a constraint that
 * fails, means this member diverged: the apply stops with an error rather
 * than skip it.  Sequences move forward only.
 *
 * A registration whose table exists here with another definition, or with
 * rows of its own, is refused: the refusal is recorded in
 * dragonraft.replicated_tables (state 'refused', with the reason) and in the
 * server log, the group's apply goes on, later changes of that table are
 * skipped on this member, and a guard trigger refuses local writes to it
 * (they would never be replicated, even once this member leads).  Stopping
 * the group's apply instead would leave every other table of the group
 * behind for a local mistake that a DBA fixes by dropping (or renaming) the
 * table here and running resend_table() on the leader: the registration comes
 * again under the table's id, with the rows of that log position, and only
 * members that do not replicate the table take it.
 *
 * A member that makes the table from a registration (first or sent again)
 * gives it, in the same transaction, what it has on the proposer besides its
 * definition (the entry's extras: owner, privileges, row level security and
 * policies, user triggers with their enabled state, comments), as a
 * snapshot's load does; a role or function they name that does not exist
 * here fails the entry, and the group's apply stops here until it is
 * created.  A table kept (the proposer's own, or an empty one defined alike)
 * keeps its own owner and privileges.
 *
 * A utility command (execute) runs in a subtransaction, as the role that
 * proposed it (looked up by name on each member), its settings (SET) undone
 * after it, and is recorded in dragonraft.ddl_history.  It ran on the node
 * that proposed it (sql_tables.c tries it there first), so a failure here
 * (the role does not exist here, a local object takes a name, ...) would
 * leave this member with another schema: the group's apply stops here with
 * the error, as PostgreSQL's logical apply worker does, and the entry is
 * tried again until the cause is fixed (apply_worker.c), or until a DBA
 * skips it here (skip_command: recorded with its error in ddl_history).
 * A command whose entry follows another command of the group that its try
 * did not see (execute() on two nodes at once) is skipped instead, on every
 * member alike, before it runs (preempted).
 * The relations it makes are recorded in dragonraft.made_relations.
 */
#include "write.h"
#include "snapshot.h"

#include "access/genam.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/catalog.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_index.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_sequence.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/tablecmds.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parse_func.h"
#include "parser/parser.h"
#include "shmem.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/typcache.h"

/* The columns an entry names for a table: where they are here, how they come in. */
typedef struct ColumnMap {
	const uint8 *names; /* the entry's column names section, as it came */
	Size names_len;
	int n_cols;          /* the entry's columns */
	AttrNumber *attnums; /* their attribute numbers here */
	FmgrInfo *recv;      /* their types' receive functions */
	Oid *ioparams;
} ColumnMap;

/* The key columns of a table's replica identity index: how a row is looked up. */
typedef struct IdentityKeys {
	Oid index;
	int n_keys;
	AttrNumber *attnums; /* the table's attribute of each key column */
	RegProcedure *procs; /* its equality operator's function */
	Oid *collations;
} IdentityKeys;

/* A scan of a table's replica identity index, begun once and run again per row. */
typedef struct IdentityScan {
	IndexScanDesc scan;
	SnapshotData dirty; /* the scan's: it says who holds a row it finds */
	int n_keys;
	AttrNumber *attnums; /* the table's attribute of each key column */
	ScanKeyData *keys;   /* their equality operators (arguments set per row) */
} IdentityScan;

/* A table of the entry being applied. */
typedef struct ApplyTable {
	Relation rel;          /* NULL: not replicated here, its ops are skipped */
	const ColumnMap *cols; /* (NULL with rel) */
	ResultRelInfo *rri;
	IdentityScan *ident; /* NULL: no identity index, rows are found by the whole row */
	TupleTableSlot *remote, *key, *local, *changed;
} ApplyTable;

/* table id -> relid, InvalidOid when the table is not replicated here. */
typedef struct RelmapEntry {
	struct {
		uint64 group_id;
		uint64 table_id;
	} key;
	Oid relid;
	ColumnMap *cols;     /* its columns as entries name them (column_map); NULL: none yet */
	IdentityKeys *ident; /* its identity index's keys (identity_keys); NULL: none yet */
} RelmapEntry;

/*
 * Kept across batches: any relcache invalidation (DDL on a table, and every
 * change of dragonraft.replicated_tables, whose trigger invalidates them all)
 * empties it before the next entry (relmap_check).  The callback only
 * counts: it may run in the middle of a lookup, and an entry's tables use
 * the column maps until it is applied; meanwhile nothing stale is used or
 * kept.  relmap_cxt holds the hash and the column maps.
 */
static HTAB *relmap = NULL;
static MemoryContext relmap_cxt = NULL;
static uint64 relmap_gen, relmap_built_gen;

/*
 * dragonraft.capture(), whose triggers do nothing in the apply worker;
 * InvalidOid until looked up (again after dr_apply_rows_forget).
 */
static Oid capture_fn = InvalidOid;

/*
 * The tables that the batch's last change set opened, with their executor
 * state (which holds them), kept open for the batch's next change sets that
 * name no other table (or another column list): their locks stay until the
 * commit anyway.  Closed before the commit (dr_apply_rows_close), before a
 * command or a registration runs and before a TRUNCATE (these refuse a
 * table in use), and when relmap goes stale (they use its column maps).
 */
static struct {
	EState *estate; /* NULL: none open */
	EPQState epq;
	ApplyTable *tables; /* in estate's memory */
	uint32 n;
} kept;

/*
 * The database's search_path, which the owners' code on the rows sees
 * (apply_sections), set in a GUC nest level of its own at the first change
 * set of a run and kept for the batch's next change sets, until another
 * entry or the commit (dr_apply_rows_pin_path): set and restored for each
 * change set, it was parsed and the namespace path recomputed per
 * replicated transaction.  Set while the transaction lxid lasts (an abort
 * ends its nest levels).
 */
static struct {
	int nest;
	LocalTransactionId lxid; /* InvalidLocalTransactionId: not set */
} rows_path;

static void relmap_inval(Datum arg, Oid relid)
{
	relmap_gen++;
}

void dr_apply_rows_close(void)
{
	if (kept.estate == NULL)
		return;
	EvalPlanQualEnd(&kept.epq);
	for (uint32 i = 0; i < kept.n; i++)
		if (kept.tables[i].ident != NULL)
			index_endscan(kept.tables[i].ident->scan);
	ExecCloseResultRelations(kept.estate);
	ExecResetTupleTable(kept.estate->es_tupleTable, false);
	for (uint32 i = 0; i < kept.n; i++)
		if (kept.tables[i].rel != NULL)
			table_close(kept.tables[i].rel, NoLock);
	FreeExecutorState(kept.estate);
	kept.estate = NULL;
}

void dr_apply_rows_pin_path(void)
{
	if (rows_path.lxid != InvalidLocalTransactionId && rows_path.lxid == MyProc->lxid)
		AtEOXact_GUC(false, rows_path.nest);
	rows_path.lxid = InvalidLocalTransactionId;
}

/* The database's search_path for the owners' code, until dr_apply_rows_pin_path. */
static void rows_search_path(void)
{
	if (rows_path.lxid != InvalidLocalTransactionId && rows_path.lxid == MyProc->lxid)
		return;
	rows_path.nest = NewGUCNestLevel();
	dr_default_search_path();
	rows_path.lxid = MyProc->lxid;
}

void dr_apply_rows_forget(void)
{
	kept.estate = NULL; /* closed, or gone with its transaction */
	capture_fn = InvalidOid;
	if (relmap_cxt != NULL)
		MemoryContextDelete(relmap_cxt); /* and relmap with it */
	relmap_cxt = NULL;
	relmap = NULL;
}

/* Before an entry's tables are opened: forget what an invalidation made stale. */
static void relmap_check(void)
{
	if (relmap != NULL && relmap_built_gen != relmap_gen) {
		dr_apply_rows_close();
		dr_apply_rows_forget();
	}
}

/*
 * The local table of a table id (InvalidOid: not replicated here), and its
 * entry in relmap (*entry; NULL when an invalidation came since relmap_check:
 * then nothing is kept).
 */
static Oid relmap_lookup(uint64 group_id, uint64 table_id, RelmapEntry **entry)
{
	RelmapEntry *e;
	struct {
		uint64 group_id;
		uint64 table_id;
	} key = {group_id, table_id};
	Oid types[2] = {INT8OID, INT8OID};
	Datum values[2] = {Int64GetDatum((int64)group_id), Int64GetDatum((int64)table_id)};
	uint64 gen = relmap_gen;
	Oid relid = InvalidOid;
	bool isnull;

	if (relmap == NULL) {
		HASHCTL info;
		static bool registered = false;

		if (!registered) {
			CacheRegisterRelcacheCallback(relmap_inval, (Datum)0);
			registered = true;
		}
		relmap_built_gen = relmap_gen;
		relmap_cxt = AllocSetContextCreate(TopMemoryContext, "dragonraft relmap",
		                                   ALLOCSET_DEFAULT_SIZES);
		memset(&info, 0, sizeof(info));
		info.keysize = sizeof(key);
		info.entrysize = sizeof(RelmapEntry);
		info.hcxt = relmap_cxt;
		relmap = hash_create("dragonraft relmap", 64, &info,
		                     HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	if (relmap_built_gen == relmap_gen) {
		e = hash_search(relmap, &key, HASH_FIND, NULL);
		if (e != NULL) {
			*entry = e;
			return e->relid;
		}
	}
	if (SPI_execute_with_args("SELECT relid FROM dragonraft.replicated_tables WHERE "
	                          "group_id OPERATOR(pg_catalog.=) $1 AND table_id "
	                          "OPERATOR(pg_catalog.=) $2 AND state OPERATOR(pg_catalog.=) "
	                          "'replicated'::pg_catalog.text",
	                          2, types, values, NULL, true, 1) == SPI_OK_SELECT &&
	    SPI_processed == 1) {
		Datum d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
			relid = DatumGetObjectId(d);
	}
	*entry = NULL;
	if (gen != relmap_gen || relmap_built_gen != relmap_gen)
		return relid; /* may be older than an invalidation: not kept */
	e = hash_search(relmap, &key, HASH_ENTER, NULL);
	e->relid = relid;
	e->cols = NULL;
	e->ident = NULL;
	*entry = e;
	return relid;
}

static void corrupt(const char *what) pg_attribute_noreturn();

static void corrupt(const char *what)
{
	ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED), errmsg("malformed change set: %s", what)));
}

/*
 * The apply worker fires the triggers that session_replication_role =
 * replica fires (ENABLE ALWAYS or REPLICA), as PostgreSQL's apply worker
 * does; dragonraft's own (ENABLE ALWAYS) return at once here.  A table with
 * no other trigger that fires gets no trigger descriptor: its rows queue no
 * after-trigger event, which would fetch each row again to call a trigger
 * that does nothing.
 */
static void drop_idle_triggers(ResultRelInfo *rri)
{
	if (!dr_fires_user_triggers(rri->ri_TrigDesc))
		rri->ri_TrigDesc = NULL;
}

bool dr_fires_user_triggers(const TriggerDesc *td)
{
	if (td == NULL)
		return false;
	if (!OidIsValid(capture_fn))
		capture_fn = LookupFuncName(
		        list_make2(makeString("dragonraft"), makeString("capture")), 0, NULL, true);
	for (int i = 0; i < td->numtriggers; i++) {
		const Trigger *tg = &td->triggers[i];

		if (tg->tgfoid != capture_fn && (tg->tgenabled == TRIGGER_FIRES_ALWAYS ||
		                                 tg->tgenabled == TRIGGER_FIRES_ON_REPLICA))
			return true;
	}
	return false;
}

void dr_as_owner_begin(Relation rel, bool with_path, DrUserContext *s)
{
	GetUserIdAndSecContext(&s->user, &s->sec);
	s->nest = -1;
	if (with_path) {
		s->nest = NewGUCNestLevel();
		dr_default_search_path();
	}
	SetUserIdAndSecContext(rel->rd_rel->relowner, s->sec | SECURITY_LOCAL_USERID_CHANGE |
	                                                      SECURITY_RESTRICTED_OPERATION);
}

/*
 * The columns et names in rel: the column map kept in e (its table's first
 * entry made it), else a new one, kept in e if e has none (and e is not
 * NULL), or in the transaction's memory.  Capture names every column of a
 * table (not dropped, not generated): another list comes after a command
 * changed the table, and that invalidation empties relmap.
 */
static const ColumnMap *column_map(RelmapEntry *e, Relation rel, const struct entry_table *et)
{
	Size len = et->cols.end - et->cols.p;
	struct entry_reader r = et->cols;
	MemoryContext cxt, old;
	ColumnMap *cm;

	if (e != NULL && e->cols != NULL) {
		if (e->cols->names_len == len && memcmp(e->cols->names, et->cols.p, len) == 0)
			return e->cols;
		e = NULL; /* (not replaced: an entry may use it until relmap_check) */
	}
	cxt = e != NULL ? relmap_cxt : CurrentMemoryContext;
	old = MemoryContextSwitchTo(cxt);
	cm = palloc(sizeof(ColumnMap));
	cm->names = memcpy(palloc(Max(len, 1)), et->cols.p, len);
	cm->names_len = len;
	cm->n_cols = et->n_cols;
	cm->attnums = palloc(et->n_cols * sizeof(AttrNumber));
	cm->recv = palloc(et->n_cols * sizeof(FmgrInfo));
	cm->ioparams = palloc(et->n_cols * sizeof(Oid));
	MemoryContextSwitchTo(old);
	for (int c = 0; c < et->n_cols; c++) {
		const char *name;
		uint16 name_len;
		char *cname;
		AttrNumber att;
		Form_pg_attribute a;
		Oid recv;

		(void)entry_next_name(&r, &name, &name_len);
		cname = pnstrdup(name, name_len);
		att = get_attnum(RelationGetRelid(rel), cname);
		if (att <= 0 || TupleDescAttr(RelationGetDescr(rel), att - 1)->attgenerated)
			ereport(ERROR,
			        (errcode(ERRCODE_UNDEFINED_COLUMN),
			         errmsg("column \"%s\" of replicated table \"%s\" does not exist "
			                "on this node",
			                cname, RelationGetRelationName(rel)),
			         errhint("Change replicated tables with dragonraft.execute "
			                 "only.")));
		a = TupleDescAttr(RelationGetDescr(rel), att - 1);
		cm->attnums[c] = att;
		getTypeBinaryInputInfo(a->atttypid, &recv, &cm->ioparams[c]);
		fmgr_info_cxt(recv, &cm->recv[c], cxt);
	}
	if (e != NULL)
		e->cols = cm;
	return cm;
}

/*
 * The keys of index idxrel, rel's replica identity index: kept in e (the
 * table's first batch finds them) unless an invalidation came meanwhile (or
 * e is NULL), else in the transaction's memory.  A change of the identity
 * index invalidates the table, and so empties relmap before the next entry.
 */
static const IdentityKeys *identity_keys(RelmapEntry *e, Relation idxrel)
{
	uint64 gen = relmap_gen;
	MemoryContext cxt, old;
	IdentityKeys *ik;
	oidvector *opclass;
	bool isnull;

	if (relmap_built_gen != relmap_gen)
		e = NULL; /* (the entry is not to be kept, nor used) */
	if (e != NULL && e->ident != NULL && e->ident->index == RelationGetRelid(idxrel))
		return e->ident;
	cxt = e != NULL ? relmap_cxt : CurrentMemoryContext;
	old = MemoryContextSwitchTo(cxt);
	ik = palloc(sizeof(IdentityKeys));
	ik->index = RelationGetRelid(idxrel);
	ik->n_keys = IndexRelationGetNumberOfKeyAttributes(idxrel);
	ik->attnums = palloc(ik->n_keys * sizeof(AttrNumber));
	ik->procs = palloc(ik->n_keys * sizeof(RegProcedure));
	ik->collations = palloc(ik->n_keys * sizeof(Oid));
	MemoryContextSwitchTo(old);
	opclass = (oidvector *)DatumGetPointer(SysCacheGetAttr(INDEXRELID, idxrel->rd_indextuple,
	                                                       Anum_pg_index_indclass, &isnull));
	for (int k = 0; k < ik->n_keys; k++) {
		Oid type = get_opclass_input_type(opclass->values[k]);
		Oid family = get_opclass_family(opclass->values[k]);
		Oid op = get_opfamily_member(family, type, type, BTEqualStrategyNumber);

		if (!OidIsValid(op))
			elog(ERROR, "missing operator %d(%u,%u) in opfamily %u",
			     BTEqualStrategyNumber, type, type, family);
		ik->attnums[k] = idxrel->rd_index->indkey.values[k];
		ik->procs[k] = get_opcode(op);
		ik->collations[k] = idxrel->rd_indcollation[k];
	}
	if (e != NULL && gen == relmap_gen)
		e->ident = ik;
	return ik;
}

/*
 * The scan that finds rows of rel by its replica identity index idx (as
 * execReplication.c's RelationFindReplTupleByIndex, which would look up the
 * index's operators and begin a scan for every row): an equality key per
 * index column, through a dirty snapshot.
 */
static IdentityScan *identity_scan(ResultRelInfo *rri, Oid idx, RelmapEntry *e)
{
	IdentityScan *is = palloc(sizeof(IdentityScan));
	Relation idxrel = NULL;
	const IdentityKeys *ik;

	/* The result relation opened every index of the table (locked until the commit). */
	for (int i = 0; i < rri->ri_NumIndices; i++)
		if (RelationGetRelid(rri->ri_IndexRelationDescs[i]) == idx)
			idxrel = rri->ri_IndexRelationDescs[i];
	if (idxrel == NULL)
		elog(ERROR, "replica identity index %u of table \"%s\" is not open", idx,
		     RelationGetRelationName(rri->ri_RelationDesc));
	ik = identity_keys(e, idxrel);
	is->n_keys = ik->n_keys;
	is->attnums = palloc(is->n_keys * sizeof(AttrNumber));
	is->keys = palloc(is->n_keys * sizeof(ScanKeyData));
	for (int k = 0; k < is->n_keys; k++) {
		is->attnums[k] = ik->attnums[k];
		ScanKeyInit(&is->keys[k], k + 1, BTEqualStrategyNumber, ik->procs[k], (Datum)0);
		is->keys[k].sk_collation = ik->collations[k];
	}
	InitDirtySnapshot(is->dirty);
	is->scan = index_beginscan(rri->ri_RelationDesc, idxrel, &is->dirty, is->n_keys, 0);
	return is;
}

/* The kept table relid, if its column list is the one et names. */
static const ApplyTable *kept_table(Oid relid, const struct entry_table *et)
{
	Size len = et->cols.end - et->cols.p;

	for (uint32 i = 0; i < kept.n; i++) {
		const ApplyTable *k = &kept.tables[i];

		if (k->rel != NULL && RelationGetRelid(k->rel) == relid &&
		    k->cols->names_len == len && memcmp(k->cols->names, et->cols.p, len) == 0)
			return k;
	}
	return NULL;
}

/*
 * The entry's tables (relid_override: a registration's one table): the kept
 * ones if they are all there, else opened (and kept in place of those).
 * The entry's after-trigger query begins.
 */
static ApplyTable *open_tables(uint64 group_id, const struct entry_change_set *cs,
                               Oid relid_override)
{
	ApplyTable *tables = palloc0(Max(cs->n_tables, 1) * sizeof(ApplyTable));
	struct entry_table *ets = palloc(Max(cs->n_tables, 1) * sizeof(struct entry_table));
	RelmapEntry **es = palloc(Max(cs->n_tables, 1) * sizeof(RelmapEntry *));
	Oid *relids = palloc(Max(cs->n_tables, 1) * sizeof(Oid));
	struct entry_reader r = cs->tables;
	bool reuse = kept.estate != NULL;
	EState *estate;
	List *rtable = NIL;

	for (uint32 i = 0; i < cs->n_tables; i++) {
		const ApplyTable *k;

		(void)entry_next_table(&r, &ets[i]);
		es[i] = NULL;
		relids[i] = relid_override != InvalidOid
		                    ? relid_override
		                    : relmap_lookup(group_id, ets[i].table_id, &es[i]);
		if (!reuse || !OidIsValid(relids[i]))
			continue; /* (refused here: its ops are skipped) */
		k = kept_table(relids[i], &ets[i]);
		if (k != NULL)
			tables[i] = *k;
		else
			reuse = false;
	}
	if (reuse) {
		AfterTriggerBeginQuery();
		return tables;
	}
	dr_apply_rows_close();
	memset(tables, 0, Max(cs->n_tables, 1) * sizeof(ApplyTable));
	for (uint32 i = 0; i < cs->n_tables; i++) {
		ApplyTable *t = &tables[i];

		if (!OidIsValid(relids[i]))
			continue;
		t->rel = try_table_open(relids[i], RowExclusiveLock);
		if (t->rel == NULL)
			ereport(ERROR,
			        (errcode(ERRCODE_UNDEFINED_TABLE),
			         errmsg("replicated table %llu of group %llu is missing on this "
			                "node",
			                (unsigned long long)ets[i].table_id,
			                (unsigned long long)group_id),
			         errdetail("Table %u was dropped outside dragonraft.execute.",
			                   relids[i]),
			         errhint("Replicated tables change through dragonraft.execute "
			                 "only.")));
		if (relmap_built_gen != relmap_gen)
			es[i] = NULL; /* an invalidation came with the lock */
		t->cols = column_map(es[i], t->rel, &ets[i]);
	}

	/* One range table entry per table of the entry, in order. */
	for (uint32 i = 0; i < cs->n_tables; i++) {
		RangeTblEntry *rte = makeNode(RangeTblEntry);
		Relation rel = tables[i].rel;

		rte->rtekind = RTE_RELATION;
		rte->relid = rel ? RelationGetRelid(rel) : InvalidOid;
		rte->relkind = rel ? rel->rd_rel->relkind : RELKIND_RELATION;
		rte->rellockmode = AccessShareLock;
		/* Every shipped column counts as updated: stored generated columns
		 * are recomputed from them (as worker.c does). */
		for (int c = 0; rel != NULL && c < tables[i].cols->n_cols; c++)
			rte->updatedCols = bms_add_member(
			        rte->updatedCols,
			        tables[i].cols->attnums[c] - FirstLowInvalidHeapAttributeNumber);
		rtable = lappend(rtable, rte);
	}
	estate = CreateExecutorState();
	ExecInitRangeTable(estate, rtable);
	estate->es_output_cid = GetCurrentCommandId(true);
	for (uint32 i = 0; i < cs->n_tables; i++) {
		ApplyTable *t = &tables[i];
		TupleDesc desc;
		Oid idx;
		DrUserContext uc;

		if (t->rel == NULL)
			continue;
		desc = RelationGetDescr(t->rel);
		t->rri = makeNode(ResultRelInfo);
		InitResultRelInfo(t->rri, t->rel, i + 1, NULL, 0);
		drop_idle_triggers(t->rri);
		estate->es_opened_result_relations =
		        lappend(estate->es_opened_result_relations, t->rri);
		/* Its indexes' expressions and predicates, read for the first time
		 * in this process, run what of them is constant (an IMMUTABLE
		 * function's call with constant arguments): as its owner. */
		dr_as_owner_begin(t->rel, false, &uc);
		ExecOpenIndices(t->rri, false);
		dr_user_context_end(&uc);
		idx = RelationGetReplicaIndex(t->rel);
		t->ident = OidIsValid(idx) ? identity_scan(t->rri, idx, es[i]) : NULL;
		t->remote = ExecInitExtraTupleSlot(estate, desc, &TTSOpsVirtual);
		t->key = ExecInitExtraTupleSlot(estate, desc, &TTSOpsVirtual);
		t->changed = ExecInitExtraTupleSlot(estate, desc, &TTSOpsVirtual);
		t->local = table_slot_create(t->rel, &estate->es_tupleTable);
	}
	kept.estate = estate;
	kept.n = cs->n_tables;
	kept.tables =
	        MemoryContextAlloc(estate->es_query_cxt, Max(cs->n_tables, 1) * sizeof(ApplyTable));
	memcpy(kept.tables, tables, cs->n_tables * sizeof(ApplyTable));
	EvalPlanQualInit(&kept.epq, estate, NULL, NIL, -1);
	AfterTriggerBeginQuery();
	return tables;
}

/* Fill slot from an entry tuple; present[attnum - 1] says what was shipped. */
static void fill(ApplyTable *t, const struct entry_tuple *tu, TupleTableSlot *slot, bool *present)
{
	TupleDesc desc = slot->tts_tupleDescriptor;
	const ColumnMap *cm = t->cols;
	struct entry_reader r = tu->values; /* a tuple may be read twice (key, new row) */

	if (tu->n_cols != cm->n_cols)
		corrupt("a tuple does not have its table's columns");
	ExecClearTuple(slot);
	for (int i = 0; i < desc->natts; i++) {
		slot->tts_values[i] = (Datum)0;
		slot->tts_isnull[i] = true;
		if (present != NULL)
			present[i] = false;
	}
	for (int c = 0; c < cm->n_cols; c++) {
		int att = cm->attnums[c] - 1;
		const uint8 *data;
		uint32 len;
		unsigned kind;
		StringInfoData buf;

		(void)entry_next_value(&r, &kind, &data, &len);
		if (kind == ENTRY_VALUE_ABSENT)
			continue;
		if (present != NULL)
			present[att] = true;
		if (kind == ENTRY_VALUE_NULL)
			continue;
		/* Receive functions may expect a terminated buffer, as in worker.c. */
		buf.data = palloc(len + 1);
		memcpy(buf.data, data, len);
		buf.data[len] = '\0';
		buf.len = (int)len;
		buf.maxlen = (int)len + 1;
		buf.cursor = 0;
		slot->tts_values[att] = ReceiveFunctionCall(&cm->recv[c], &buf, cm->ioparams[c],
		                                            TupleDescAttr(desc, att)->atttypmod);
		slot->tts_isnull[att] = false;
		if (buf.cursor != buf.len)
			ereport(ERROR, (errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
			                errmsg("incorrect binary data format in column \"%s\"",
			                       NameStr(TupleDescAttr(desc, att)->attname))));
	}
	ExecStoreVirtualTuple(slot);
}

/*
 * Lock the row found into t->local: true if locked, false if another
 * transaction updated or deleted it first (look it up again, as
 * RelationFindReplTupleByIndex does).
 */
static bool lock_found(ApplyTable *t)
{
	TM_FailureData tmfd;
	TM_Result res;

	PushActiveSnapshot(GetLatestSnapshot());
	res = table_tuple_lock(t->rel, &t->local->tts_tid, GetLatestSnapshot(), t->local,
	                       GetCurrentCommandId(false), LockTupleExclusive, LockWaitBlock, 0,
	                       &tmfd);
	PopActiveSnapshot();
	switch (res) {
	case TM_Ok:
		return true;
	case TM_Updated:
	case TM_Deleted:
		ereport(LOG, (errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
		              errmsg("concurrent %s of a row of table \"%s\" to apply, retrying",
		                     res == TM_Updated ? "update" : "delete",
		                     RelationGetRelationName(t->rel))));
		return false;
	case TM_Invisible:
		elog(ERROR, "attempted to lock invisible tuple");
		break;
	default:
		elog(ERROR, "unexpected table_tuple_lock status: %u", res);
		break;
	}
	return false;
}

/*
 * The row the key slot identifies, by the identity index, into t->local and
 * locked; false if there is none.  A row that another transaction holds
 * (inserting, deleting or locking it) is looked up again once that one
 * ended, and so is a row that changed before it could be locked (as
 * RelationFindReplTupleByIndex does).
 */
static bool find_by_identity(ApplyTable *t)
{
	IdentityScan *is = t->ident;
	ScanKeyData keys[INDEX_MAX_KEYS];

	memcpy(keys, is->keys, is->n_keys * sizeof(ScanKeyData));
	for (int k = 0; k < is->n_keys; k++) {
		keys[k].sk_argument = t->key->tts_values[is->attnums[k] - 1];
		if (t->key->tts_isnull[is->attnums[k] - 1])
			keys[k].sk_flags |= SK_ISNULL;
	}
	for (;;) {
		TransactionId holder;

		index_rescan(is->scan, keys, is->n_keys, NULL, 0);
		if (!index_getnext_slot(is->scan, ForwardScanDirection, t->local))
			return false;
		ExecMaterializeSlot(t->local);
		holder = TransactionIdIsValid(is->dirty.xmin) ? is->dirty.xmin : is->dirty.xmax;
		if (TransactionIdIsValid(holder)) {
			XactLockTableWait(holder, NULL, NULL, XLTW_None);
			continue;
		}
		if (lock_found(t))
			return true;
	}
}

/*
 * Does a local row match the key slot (a whole row, REPLICA IDENTITY FULL)
 * column by column, dropped and generated columns aside (as PostgreSQL's
 * tuples_equal): by image (the same bytes), or by each type's equality
 * operator?
 */
static bool rows_match(TupleTableSlot *row, TupleTableSlot *key, bool image)
{
	TupleDesc desc = row->tts_tupleDescriptor;

	slot_getallattrs(row);
	slot_getallattrs(key);
	for (int i = 0; i < desc->natts; i++) {
		Form_pg_attribute att = TupleDescAttr(desc, i);
		TypeCacheEntry *tc;

		/* (not shipped: the key has none; this member computed them) */
		if (att->attisdropped || att->attgenerated)
			continue;
		if (row->tts_isnull[i] != key->tts_isnull[i])
			return false;
		if (row->tts_isnull[i])
			continue;
		if (image) {
			if (!datum_image_eq(row->tts_values[i], key->tts_values[i], att->attbyval,
			                    att->attlen))
				return false;
			continue;
		}
		tc = lookup_type_cache(att->atttypid, TYPECACHE_EQ_OPR_FINFO);
		if (!OidIsValid(tc->eq_opr_finfo.fn_oid))
			ereport(ERROR,
			        (errcode(ERRCODE_UNDEFINED_FUNCTION),
			         errmsg("could not identify an equality operator for type %s",
			                format_type_be(att->atttypid))));
		if (!DatumGetBool(FunctionCall2Coll(&tc->eq_opr_finfo, att->attcollation,
		                                    row->tts_values[i], key->tts_values[i])))
			return false;
	}
	return true;
}

/*
 * The row the key slot holds whole (REPLICA IDENTITY FULL), into t->local
 * and locked; false if there is none.  As RelationFindReplTupleSeq, but a
 * row with the very same bytes comes first: equality operators hold rows
 * equal that are not the same (numeric 1.0 and 1.00, float8 0 and -0,
 * interval '1 day' and '24 hours', text under a nondeterministic
 * collation), and the leader changed the one whose bytes it shipped
 * (review 20: the follower changed the first equal row it met, and both
 * went on with other rows).  An equal row is taken only if no row has the
 * same bytes.
 */
static bool find_full(ApplyTable *t)
{
	SnapshotData snap;
	TableScanDesc scan;
	TupleTableSlot *scanslot = table_slot_create(t->rel, NULL);
	bool found;

	InitDirtySnapshot(snap);
	scan = table_beginscan(t->rel, &snap, 0, NULL);
	for (;;) {
		TransactionId holder = InvalidTransactionId;

		found = false;
		table_rescan(scan, NULL);
		while (table_scan_getnextslot(scan, ForwardScanDirection, scanslot)) {
			bool same = rows_match(scanslot, t->key, true);

			if (!same && (found || !rows_match(scanslot, t->key, false)))
				continue;
			found = true;
			ExecCopySlot(t->local, scanslot);
			holder = TransactionIdIsValid(snap.xmin) ? snap.xmin : snap.xmax;
			if (same || TransactionIdIsValid(holder))
				break;
		}
		if (!found)
			break;
		if (TransactionIdIsValid(holder)) {
			XactLockTableWait(holder, NULL, NULL, XLTW_None);
			continue;
		}
		if (lock_found(t))
			break;
	}
	table_endscan(scan);
	ExecDropSingleTupleTableSlot(scanslot);
	return found;
}

/* Find the local row the key slot identifies (locked), into t->local. */
static void find_row(ApplyTable *t, const char *action)
{
	bool found = t->ident != NULL ? find_by_identity(t) : find_full(t);

	if (!found)
		ereport(ERROR,
		        (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		         errmsg("the row to %s in replicated table \"%s\" is not on this node",
		                action, RelationGetRelationName(t->rel)),
		         errdetail("This member's table differs from the log: it was changed "
		                   "outside dragonraft.")));
}

/*
 * A BEFORE ROW trigger that fires on apply (ENABLE ALWAYS or REPLICA) may
 * check a row, raise, or write elsewhere, but not change or skip the row the
 * leader shipped: the leader's triggers made it already (review 20: each
 * follower's trigger changed every applied row once more, and the apply went
 * on with rows of its own).  The apply stops here instead, as for a row that
 * is not found.
 */
static void row_changed_by_trigger(ApplyTable *t, const char *action, bool skipped)
{
	ereport(ERROR,
	        (errcode(ERRCODE_TRIGGERED_ACTION_EXCEPTION),
	         errmsg("a BEFORE ROW trigger of replicated table \"%s\" %s the row to %s",
	                RelationGetRelationName(t->rel), skipped ? "skipped" : "changed", action),
	         errdetail("The leader's triggers made the row; a trigger that fires on apply "
	                   "(ENABLE ALWAYS or REPLICA) must leave it as it comes, or this "
	                   "member's rows would differ from the leader's."),
	         errhint("Have the trigger return NEW unchanged when "
	                 "session_replication_role is replica, or make it ENABLE (it fires on "
	                 "the leader only) with dragonraft.execute.")));
}

/* Does rri fire a BEFORE ROW trigger of event (TRIGGER_TYPE_INSERT, ...)? */
static bool before_row(const ResultRelInfo *rri, int event)
{
	const TriggerDesc *td = rri->ri_TrigDesc;

	if (td == NULL)
		return false;
	return event == TRIGGER_TYPE_INSERT   ? td->trig_insert_before_row
	       : event == TRIGGER_TYPE_UPDATE ? td->trig_update_before_row
	                                      : td->trig_delete_before_row;
}

static void apply_op(ApplyTable *tables, struct entry_op *op, EState *estate, EPQState *epq)
{
	ApplyTable *t = &tables[op->table];
	TupleDesc desc;
	bool *present;
	bool checked;
	ItemPointerData tid;

	if (t->rel == NULL)
		return; /* not replicated here (refused): skipped */
	desc = RelationGetDescr(t->rel);
	switch (op->kind) {
	case ENTRY_OP_INSERT:
		fill(t, &op->new_tuple, t->remote, NULL);
		checked = before_row(t->rri, TRIGGER_TYPE_INSERT);
		if (checked)
			ExecCopySlot(t->key, t->remote); /* (the key slot: unused by an insert) */
		ItemPointerSetInvalid(&t->remote->tts_tid);
		ExecSimpleRelationInsert(t->rri, estate, t->remote);
		if (checked && !ItemPointerIsValid(&t->remote->tts_tid))
			row_changed_by_trigger(t, "insert", true);
		if (checked && !rows_match(t->remote, t->key, true))
			row_changed_by_trigger(t, "insert", false);
		break;
	case ENTRY_OP_UPDATE:
		present = palloc(desc->natts * sizeof(bool));
		fill(t, op->has_old ? &op->old_tuple : &op->new_tuple, t->key, NULL);
		find_row(t, "update");
		fill(t, &op->new_tuple, t->remote, present);
		slot_getallattrs(t->local);
		ExecClearTuple(t->changed);
		for (int i = 0; i < desc->natts; i++) {
			bool from_remote = present[i];

			t->changed->tts_values[i] =
			        from_remote ? t->remote->tts_values[i] : t->local->tts_values[i];
			t->changed->tts_isnull[i] =
			        from_remote ? t->remote->tts_isnull[i] : t->local->tts_isnull[i];
		}
		ExecStoreVirtualTuple(t->changed);
		checked = before_row(t->rri, TRIGGER_TYPE_UPDATE);
		if (checked)
			ExecCopySlot(t->key, t->changed); /* (the row is found: the key is done) */
		ItemPointerSetInvalid(&t->changed->tts_tid);
		EvalPlanQualSetSlot(epq, t->changed);
		ExecSimpleRelationUpdate(t->rri, estate, epq, t->local, t->changed);
		if (checked && !ItemPointerIsValid(&t->changed->tts_tid))
			row_changed_by_trigger(t, "update", true);
		if (checked && !rows_match(t->changed, t->key, true))
			row_changed_by_trigger(t, "update", false);
		break;
	case ENTRY_OP_DELETE:
		fill(t, &op->old_tuple, t->key, NULL);
		find_row(t, "delete");
		EvalPlanQualSetSlot(epq, t->local);
		tid = t->local->tts_tid;
		ExecSimpleRelationDelete(t->rri, estate, epq, t->local);
		/* (a row that this transaction deleted is not its own to see) */
		if (before_row(t->rri, TRIGGER_TYPE_DELETE) &&
		    table_tuple_fetch_row_version(t->rel, &tid, SnapshotSelf, t->local))
			row_changed_by_trigger(t, "delete", true);
		break;
	}
}

/* The sequence a change set names by name, if the group's commands made it
 * here (dragonraft.made_relations), else InvalidOid. */
static Oid named_sequence(uint64 group_id, const struct entry_seq *s)
{
	Oid types[2] = {INT8OID, OIDOID};
	Datum values[2];
	Oid nsp = get_namespace_oid(pnstrdup(s->schema, s->schema_len), true);
	Oid seqid = OidIsValid(nsp) ? get_relname_relid(pnstrdup(s->name, s->name_len), nsp)
	                            : InvalidOid;
	uint64 n;

	if (!OidIsValid(seqid) || get_rel_relkind(seqid) != RELKIND_SEQUENCE)
		return InvalidOid;
	values[0] = Int64GetDatum((int64)group_id);
	values[1] = ObjectIdGetDatum(seqid);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT FROM dragonraft.made_relations WHERE group_id = $1 "
	                          "AND relid = $2",
	                          2, types, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "dragonraft could not read dragonraft.made_relations");
	n = SPI_processed;
	SPI_finish();
	return n > 0 ? seqid : InvalidOid;
}

/* Sequences go forward (in the direction of their increment) to the leader's
 * last value, never back.  One named by name (the group's commands made it,
 * no column of the change set's tables takes values from it) that this node
 * does not have as the group's is left alone. */
static void apply_sequences(uint64 group_id, ApplyTable *tables, const struct entry_change_set *cs)
{
	struct entry_reader r = cs->seqs;

	for (uint32 i = 0; i < cs->n_seqs; i++) {
		struct entry_seq s;
		ApplyTable *t;
		Oid seqid;
		LOCAL_FCINFO(fcinfo, 1);
		Datum cur;
		HeapTuple seqtup;
		bool ascending;

		(void)entry_next_seq(&r, &s);
		if (s.table == ENTRY_SEQ_NAMED)
			seqid = named_sequence(group_id, &s);
		else {
			t = &tables[s.table];
			if (t->rel == NULL)
				continue;
			if (s.column >= t->cols->n_cols)
				corrupt("a sequence names a column past its table's");
			seqid = dr_column_sequence(t->rel, t->cols->attnums[s.column],
			                           dr_owned_sequences(RelationGetRelid(t->rel)));
		}
		if (!OidIsValid(seqid) ||
		    !HeapTupleIsValid(seqtup = SearchSysCache1(SEQRELID, ObjectIdGetDatum(seqid))))
			continue;
		ascending = ((Form_pg_sequence)GETSTRUCT(seqtup))->seqincrement > 0;
		ReleaseSysCache(seqtup);
		InitFunctionCallInfoData(*fcinfo, NULL, 1, InvalidOid, NULL, NULL);
		fcinfo->args[0].value = ObjectIdGetDatum(seqid);
		fcinfo->args[0].isnull = false;
		cur = pg_sequence_last_value(fcinfo);
		if (!fcinfo->isnull &&
		    (ascending ? DatumGetInt64(cur) >= s.value : DatumGetInt64(cur) <= s.value))
			continue;
		(void)DirectFunctionCall2(setval_oid, ObjectIdGetDatum(seqid),
		                          Int64GetDatum(s.value));
	}
}

bool dr_table_has_rows(Oid relid)
{
	Relation rel = table_open(relid, AccessShareLock);
	TableScanDesc scan = table_beginscan(rel, GetActiveSnapshot(), 0, NULL);
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	bool any = table_scan_getnextslot(scan, ForwardScanDirection, slot);

	ExecDropSingleTupleTableSlot(slot);
	table_endscan(scan);
	table_close(rel, NoLock);
	return any;
}

void dr_truncate_tables(List *relids)
{
	List *rels = NIL, *logged = NIL;
	ListCell *lc;
	Relation fires = NULL; /* a table whose user triggers fire (as its owner) */
	DrUserContext uc;

	foreach (lc, relids) {
		Relation rel = table_open(lfirst_oid(lc), AccessExclusiveLock);

		rels = lappend(rels, rel);
		if (RelationIsLogicallyLogged(rel))
			logged = lappend_oid(logged, RelationGetRelid(rel));
		if (!dr_fires_user_triggers(rel->trigdesc))
			continue;
		if (fires != NULL && fires->rd_rel->relowner != rel->rd_rel->relowner)
			ereport(ERROR,
			        (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			         errmsg("could not truncate \"%s\" and \"%s\": their triggers that "
			                "fire on apply belong to different owners",
			                RelationGetRelationName(fires),
			                RelationGetRelationName(rel)),
			         errdetail(
			                 "The apply runs a table's triggers ENABLE ALWAYS or "
			                 "REPLICA as its owner, and one TRUNCATE fires them all."),
			         errhint("Give the tables one owner, or set those triggers ENABLE, "
			                 "on this node: the group's apply then goes on.")));
		fires = rel;
	}
	/* (with the database's search_path, and what they set undone after: a
	 * snapshot's load has no nest level of its own around this) */
	if (fires != NULL)
		dr_as_owner_begin(fires, true, &uc);
	ExecuteTruncateGuts(rels, relids, logged, DROP_RESTRICT, false);
	if (fires != NULL)
		dr_user_context_end(&uc);
	foreach (lc, rels)
		table_close(lfirst(lc), NoLock);
}

/*
 * Each op is a replication step, as worker.c's begin/end_replication_step:
 * a snapshot and a command id of its own, then CommandCounterIncrement, so
 * that an op sees (and can lock) the row versions the ops before it made.
 */
static void step_begin(EState *estate)
{
	PushActiveSnapshot(GetTransactionSnapshot());
	if (estate != NULL)
		estate->es_output_cid = GetCurrentCommandId(true);
}

static void step_end(void)
{
	PopActiveSnapshot();
	CommandCounterIncrement();
}

/* An error while a table's own code ran as its owner says so (review 14 R5). */
static void as_owner_context(void *arg)
{
	Relation rel = (Relation)arg;

	errcontext("applying a row of table %s as its owner %s (members run a table's triggers, "
	           "checks and index expressions as its owner)",
	           RelationGetRelationName(rel), GetUserNameFromId(rel->rd_rel->relowner, true));
}

static void apply_sections(uint64 group_id, const struct entry_change_set *cs, Oid relid_override)
{
	ApplyTable *tables = NULL;
	struct entry_reader r = cs->ops;
	int nest;

	/* The owners' code on the rows sees the database's search_path (the
	 * worker's own queries here spell out pg_catalog's operators), set once
	 * for the batch's run of change sets ... */
	rows_search_path();
	/* ... and what it sets (SET, SET LOCAL) is undone after the change set,
	 * as PostgreSQL undoes what index functions set in VACUUM or CREATE
	 * INDEX: kept, a SET of search_path would reach the worker's own queries
	 * as the bootstrap superuser, and a SET LOCAL the batch's next change
	 * sets (of other transactions, maybe other owners). */
	nest = NewGUCNestLevel();
	relmap_check();
	for (uint32 i = 0; i < cs->n_ops; i++) {
		struct entry_op op;

		(void)entry_next_op(&r, &op);
		if (tables == NULL) {
			step_begin(NULL);
			tables = open_tables(group_id, cs, relid_override);
			PopActiveSnapshot();
		}
		if (op.kind == ENTRY_OP_TRUNCATE) {
			List *relids = NIL;

			/* One TRUNCATE command records an op per table, adjacent: apply
			 * adjacent ones together (TRUNCATE parent, child; ... CASCADE). */
			for (;;) {
				Relation rel = tables[op.table].rel;
				struct entry_reader next = r;
				struct entry_op next_op;

				if (rel != NULL)
					relids = list_append_unique_oid(relids,
					                                RelationGetRelid(rel));
				if (i + 1 == cs->n_ops)
					break;
				(void)entry_next_op(&next, &next_op);
				if (next_op.kind != ENTRY_OP_TRUNCATE)
					break;
				r = next;
				op = next_op;
				i++;
			}
			AfterTriggerEndQuery(kept.estate);
			dr_apply_rows_close();
			tables = NULL;
			step_begin(NULL);
			if (relids != NIL)
				dr_truncate_tables(relids);
			step_end();
			continue;
		}
		step_begin(kept.estate);
		if (op.table < cs->n_tables && tables[op.table].rel != NULL) {
			/* As its table's owner; its user triggers fire, before and after
			 * the row, as the owner too.  (No event waits from an earlier op:
			 * only a table with such triggers queues one, fired after its op.) */
			const ApplyTable *t = &tables[op.table];
			bool fires = t->rri->ri_TrigDesc != NULL;
			DrUserContext uc;
			ErrorContextCallback cb = {.callback = as_owner_context,
			                           .arg = (void *)t->rel,
			                           .previous = error_context_stack};

			error_context_stack = &cb;
			dr_as_owner_begin(t->rel, false, &uc);
			apply_op(tables, &op, kept.estate, &kept.epq);
			if (fires) {
				AfterTriggerEndQuery(kept.estate);
				AfterTriggerBeginQuery();
			}
			dr_user_context_end(&uc);
			error_context_stack = cb.previous;
		}
		ResetPerTupleExprContext(kept.estate);
		step_end();
		CHECK_FOR_INTERRUPTS();
	}
	step_begin(NULL);
	if (tables == NULL)
		tables = open_tables(group_id, cs, relid_override);
	apply_sequences(group_id, tables, cs);
	AfterTriggerEndQuery(kept.estate);
	step_end();
	AtEOXact_GUC(false, nest);
}

static void decode_failed(int rc) pg_attribute_noreturn();

static void decode_failed(int rc)
{
	ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
	                errmsg("undecodable entry: %s", entry_strerror(rc))));
}

bool dr_apply_rows_owned(const struct entry_header *h)
{
	struct entry_owner o;
	DrCommit *c;
	bool live;

	if (entry_decode_owner(h, &o) != ENTRY_OK || o.node_id != (uint32)dr_node_id ||
	    o.incarnation != dr_shared->incarnation || o.slot >= (uint32)MaxBackends)
		return false;
	c = &dr_commits[o.slot];
	SpinLockAcquire(&c->mutex);
	live = c->generation == o.generation && c->state == DR_COMMIT_PROPOSED;
	SpinLockRelease(&c->mutex);
	return live;
}

/*
 * The plan of dr_apply_rows_command_between's query, made once per process
 * (a writer's backend at its turn, the apply worker per change set older than
 * a command): planning it took most of a call, about 120 us under load.  The
 * plan cache makes it again if dragonraft.ddl_history or its indexes change.
 */
static SPIPlanPtr between_plan;

uint64 dr_apply_rows_command_between(uint64 group_id, uint64 since, uint64 before,
                                     const uint64 *tables, int n)
{
	Oid types[4] = {INT8OID, INT8OID, INT8OID, INT8ARRAYOID};
	Datum values[4], *ids = palloc(Max(n, 1) * sizeof(Datum));
	char nulls[4] = {' ', ' ', ' ', tables == NULL ? 'n' : ' '};
	uint64 found = 0;
	DrUserContext su;
	int rc;
	bool isnull;

	/* (what it costs: an SQL query per call; TAP 146 counts them) */
	ereport(DEBUG1, (errmsg_internal("dragonraft reads the commands of group %llu between "
	                                 "entries %llu and %llu",
	                                 (unsigned long long)group_id, (unsigned long long)since,
	                                 (unsigned long long)before)));
	for (int i = 0; i < n; i++)
		ids[i] = Int64GetDatum((int64)tables[i]);
	values[0] = Int64GetDatum((int64)group_id);
	values[1] = Int64GetDatum((int64)since);
	values[2] = Int64GetDatum((int64)before);
	values[3] = tables == NULL ? (Datum)0
	                           : PointerGetDatum(construct_array(
	                                     ids, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	/* As the bootstrap superuser: a writer need not see the catalog table. */
	dr_as_superuser_begin(&su);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	/* (a command skipped for another one that came first changed nothing, and
	 * so does a barrier: dr_sql_tables_barrier, told from its text alike on
	 * every member; one recorded before barriers were told apart has tables
	 * NULL) */
	if (between_plan == NULL) {
		SPIPlanPtr plan = SPI_prepare(
		        "SELECT index, command FROM dragonraft.ddl_history WHERE group_id = $1 "
		        "AND index > $2 AND index < $3 AND " DR_HISTORY_COMMANDS " "
		        "AND ($4 IS NULL OR tables IS NULL OR tables && $4) ORDER BY index DESC",
		        4, types);

		if (plan == NULL || SPI_keepplan(plan) != 0)
			elog(ERROR,
			     "dragonraft could not prepare its read of dragonraft.ddl_history: %s",
			     SPI_result_code_string(SPI_result));
		between_plan = plan;
	}
	rc = SPI_execute_plan(between_plan, values, nulls, true, 0);
	dr_user_context_end(&su);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "dragonraft could not read dragonraft.ddl_history");
	for (uint64 i = 0; i < SPI_processed && found == 0; i++) {
		HeapTuple t = SPI_tuptable->vals[i];
		Datum d = SPI_getbinval(t, SPI_tuptable->tupdesc, 1, &isnull);
		char *command = SPI_getvalue(t, SPI_tuptable->tupdesc, 2);

		if (!dr_sql_tables_barrier(command))
			found = (uint64)DatumGetInt64(d);
		pfree(command);
	}
	SPI_finish();
	return found;
}

/*
 * A change set built against an older schema of one of its tables than the
 * table's at the change set's place in the log (a utility command that
 * changes it came between the writer's first write and its entry) is
 * skipped, on every member alike: its columns and values may no longer mean
 * what they did.  Its backend failed with 40001 (xact.c).  schema_index is
 * the group's last command so far: only when the change set is older does
 * dragonraft.ddl_history say which tables the commands since changed.
 */
void dr_apply_rows_change_set(uint64 group_id, uint64 index, uint64 schema_index,
                              const struct entry_header *h)
{
	struct entry_change_set cs;
	int rc = entry_decode_change_set(h, &cs);
	uint64 command = 0;

	if (rc != ENTRY_OK)
		decode_failed(rc);
	if (cs.schema_index < schema_index) {
		struct entry_reader r = cs.tables;
		uint64 *tables = palloc(Max(cs.n_tables, 1) * sizeof(uint64));

		for (uint32 i = 0; i < cs.n_tables; i++) {
			struct entry_table et;

			(void)entry_next_table(&r, &et);
			tables[i] = et.table_id;
		}
		/* The apply worker's own transaction: a new snapshot sees its batch. */
		PushActiveSnapshot(GetTransactionSnapshot());
		command = dr_apply_rows_command_between(group_id, cs.schema_index, index, tables,
		                                        (int)cs.n_tables);
		PopActiveSnapshot();
	}
	if (command > 0) {
		ereport(LOG, (errmsg("dragonraft skipped entry %llu of group %llu: the command at "
		                     "entry %llu changed its tables after its transaction "
		                     "first wrote",
		                     (unsigned long long)index, (unsigned long long)group_id,
		                     (unsigned long long)command),
		              errdetail("Its transaction failed with SQLSTATE 40001 on node %u; "
		                        "every member skips it.",
		                        cs.owner.node_id)));
		return;
	}
	apply_sections(group_id, &cs, InvalidOid);
}

uint64 dr_apply_rows_last_command(uint64 group_id)
{
	Oid types[1] = {INT8OID};
	Datum values[1] = {Int64GetDatum((int64)group_id)};
	uint64 index = 0, rows = 0;
	Portal portal;
	bool isnull;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	/* From the end (the primary key's order), up to the first command that
	 * counts: barriers come in runs (caught_up's, check_consistency's), which
	 * the partial index of DR_HISTORY_COMMANDS leaves out unread. */
	portal = SPI_cursor_open_with_args(NULL,
	                                   "SELECT index, command FROM dragonraft.ddl_history "
	                                   "WHERE group_id = $1 AND " DR_HISTORY_COMMANDS " "
	                                   "ORDER BY index DESC",
	                                   1, types, values, NULL, false, CURSOR_OPT_NO_SCROLL);
	while (index == 0) {
		SPI_cursor_fetch(portal, true, 64);
		if (SPI_processed == 0)
			break;
		for (uint64 i = 0; i < SPI_processed && index == 0; i++) {
			HeapTuple t = SPI_tuptable->vals[i];
			char *command = SPI_getvalue(t, SPI_tuptable->tupdesc, 2);

			rows++;
			if (!dr_sql_tables_barrier(command))
				index = (uint64)DatumGetInt64(
				        SPI_getbinval(t, SPI_tuptable->tupdesc, 1, &isnull));
			pfree(command);
		}
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);
	SPI_finish();
	/* (what it cost: the rows whose text was parsed; TAP 148 counts them) */
	ereport(DEBUG1, (errmsg_internal("dragonraft found the last command of group %llu at "
	                                 "entry %llu, parsing %llu rows of its history",
	                                 (unsigned long long)group_id, (unsigned long long)index,
	                                 (unsigned long long)rows)));
	return index;
}

uint64 dr_apply_rows_schema_index(uint64 group_id)
{
	uint64 index;

	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	index = dr_apply_rows_last_command(group_id);
	PopActiveSnapshot();
	CommitTransactionCommand();
	return index;
}

void dr_apply_rows_publish_schema(uint64 group_id, uint64 index, bool applied, uint64 table)
{
	DrGroup *g;

	LWLockAcquire(dr_shared->groups_lock, LW_SHARED);
	g = dr_shmem_group_find(group_id);
	if (g != NULL) {
		SpinLockAcquire(&g->mutex);
		if (applied)
			g->schema_index = index;
		else {
			g->schema_next = index;
			g->schema_next_table = table;
		}
		SpinLockRelease(&g->mutex);
		ConditionVariableBroadcast(&g->applied_cv);
	}
	LWLockRelease(dr_shared->groups_lock);
}

/* ---- registrations ---- */

static void record_table(uint64 group_id, uint64 table_id, Oid relid, const char *state,
                         const char *detail)
{
	Oid types[5] = {INT8OID, INT8OID, OIDOID, TEXTOID, TEXTOID};
	Datum values[5] = {Int64GetDatum((int64)group_id), Int64GetDatum((int64)table_id),
	                   ObjectIdGetDatum(relid), CStringGetTextDatum(state),
	                   detail ? CStringGetTextDatum(detail) : (Datum)0};
	char nulls[5] = {' ', ' ', OidIsValid(relid) ? ' ' : 'n', ' ', detail ? ' ' : 'n'};

	if (SPI_execute_with_args("INSERT INTO dragonraft.replicated_tables AS t "
	                          "(group_id, table_id, relid, state, detail) "
	                          "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (group_id, table_id) "
	                          "DO UPDATE SET relid = $3, state = $4, detail = $5",
	                          5, types, values, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "dragonraft could not record table %llu", (unsigned long long)table_id);
}

/* Run dragonraft's own DDL on a table (its trigger changes pass the utility hook). */
static void internal_ddl(const char *sql)
{
	dr_internal_ddl++;
	PG_TRY();
	{
		if (SPI_execute(sql, false, 0) != SPI_OK_UTILITY)
			elog(ERROR, "dragonraft could not run: %s", sql);
	}
	PG_FINALLY();
	{
		dr_internal_ddl--;
	}
	PG_END_TRY();
}

/* A table refused here takes no writes: they would never be replicated, even
 * once this member leads (ENABLE ALWAYS, before any row is touched). */
static void guard(const char *qname, uint64 group_id)
{
	internal_ddl(psprintf("CREATE OR REPLACE TRIGGER " DR_REFUSED_TRIGGER
	                      " BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON %s "
	                      "FOR EACH STATEMENT EXECUTE FUNCTION "
	                      "dragonraft.capture('refused', '%llu')",
	                      qname, (unsigned long long)group_id));
	internal_ddl(psprintf("ALTER TABLE %s ENABLE ALWAYS TRIGGER " DR_REFUSED_TRIGGER, qname));
}

static void refuse(uint64 group_id, uint64 table_id, uint64 index, const char *qname, Oid relid,
                   const char *reason)
{
	record_table(group_id, table_id, relid, "refused", reason);
	ereport(WARNING,
	        (errmsg("dragonraft does not replicate table %s of group %llu on this node: %s",
	                qname, (unsigned long long)group_id, reason),
	         errdetail("Its registration is entry %llu; the group's other tables go on.",
	                   (unsigned long long)index),
	         errhint("Drop the table on this node (or rename it and its indexes), then "
	                 "run dragonraft.resend_table('%s') on the group's leader.",
	                 qname)));
}

/*
 * A table this member kept (empty, defined alike) whose owner, privileges,
 * ... differ from the proposer's (extras): it keeps them, and says so, since
 * a failover to this member would show them to the application.
 */
static void warn_extras_differ(uint64 group_id, const char *qname, Oid relid, const char *extras)
{
	char *here = dr_sql_tables_extras(relid);

	if (strcmp(here, extras) == 0)
		return;
	ereport(WARNING,
	        (errmsg("dragonraft table %s of group %llu keeps its own owner, privileges, row "
	                "level security, policies, triggers or comments on this node, which "
	                "differ from the leader's",
	                qname, (unsigned long long)group_id),
	         errdetail("This node has \"%s\"; the leader has \"%s\".", here, extras),
	         errhint("Change them on every member through dragonraft.execute() on the leader "
	                 "(ALTER TABLE ... OWNER TO, GRANT, ...).")));
}

/* The table id a registration sends again (resend_table): the table's own. */
static uint64 sent_table_id(const struct entry_change_set *cs)
{
	struct entry_reader r = cs->tables;
	struct entry_table t;
	int rc = entry_next_table(&r, &t);

	if (rc != ENTRY_OK)
		decode_failed(rc);
	return t.table_id;
}

/* Does this member replicate table table_id of the group?  If it refused it:
 * the local table it refused then (*refused; InvalidOid if none). */
static bool replicates(uint64 group_id, uint64 table_id, Oid *refused)
{
	Oid types[2] = {INT8OID, INT8OID};
	Datum values[2] = {Int64GetDatum((int64)group_id), Int64GetDatum((int64)table_id)};
	bool isnull, replicated = false;

	*refused = InvalidOid;
	if (SPI_execute_with_args(
	            "SELECT state = 'replicated', relid FROM dragonraft.replicated_tables "
	            "WHERE group_id = $1 AND table_id = $2",
	            2, types, values, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "dragonraft could not read dragonraft.replicated_tables");
	if (SPI_processed == 1) {
		HeapTuple tup = SPI_tuptable->vals[0];
		Datum relid = SPI_getbinval(tup, SPI_tuptable->tupdesc, 2, &isnull);

		replicated = DatumGetBool(SPI_getbinval(tup, SPI_tuptable->tupdesc, 1, &isnull));
		if (!replicated && relid != (Datum)0)
			*refused = DatumGetObjectId(relid);
	}
	return replicated;
}

/* A refused table taken now loses its guard. */
static void unguard(const char *qname)
{
	internal_ddl(psprintf("DROP TRIGGER IF EXISTS " DR_REFUSED_TRIGGER " ON %s", qname));
}

static void execute_sql(void *sql)
{
	if (SPI_execute(sql, false, 0) < 0)
		elog(ERROR, "SPI_execute failed");
}

/* Run sql in a subtransaction; NULL or the error's message. */
static char *try_sql(const char *sql)
{
	ErrorData *ed = dr_try_subxact(execute_sql, (void *)sql);

	return ed == NULL ? NULL : ed->message;
}

/* A table that a registration made here, as an error names it. */
static char *registered_what(const char *qname, bool resend, uint64 group_id, uint64 index)
{
	return psprintf("table %s, %s group %llu at entry %llu", qname,
	                resend ? "sent again to" : "registered in", (unsigned long long)group_id,
	                (unsigned long long)index);
}

void dr_apply_rows_register(uint64 group_id, uint64 index, uint64 schema_index,
                            const struct entry_header *h)
{
	struct entry_change_set cs;
	char *schema, *name, *def, *qname, *error;
	Oid nsp, relid;
	bool mine;
	uint64 table_id = index;
	Oid refused = InvalidOid;
	int rc = entry_decode_register(h, &cs);
	uint64 command = 0;
	bool resend = h->type == ENTRY_RESEND_TABLE || h->type == ENTRY_RESEND_TABLE_V1;
	bool made = false;

	if (rc != ENTRY_OK)
		decode_failed(rc);
	dr_apply_rows_close(); /* its table may be one of them */
	if (resend) {          /* for the members that do not replicate it */
		table_id = sent_table_id(&cs);
		if (replicates(group_id, table_id, &refused))
			return;
	}
	/* Read before a command that lies before it in the log (any command, for a
	 * table that is not replicated yet): skipped, as a change set is. */
	if (h->type != ENTRY_REGISTER_TABLE_V1 && cs.schema_index < schema_index) {
		PushActiveSnapshot(GetTransactionSnapshot());
		command = dr_apply_rows_command_between(group_id, cs.schema_index, index,
		                                        resend ? &table_id : NULL, resend ? 1 : 0);
		PopActiveSnapshot();
	}
	if (command > 0) {
		ereport(LOG,
		        (errmsg("dragonraft skipped entry %llu of group %llu: the command at entry "
		                "%llu %s",
		                (unsigned long long)index, (unsigned long long)group_id,
		                (unsigned long long)command,
		                resend ? "changed its table after it was read"
		                       : "came after its table was read"),
		         errdetail("Its %s failed with SQLSTATE 40001 on node %u; every member "
		                   "skips it.",
		                   resend ? "resend_table" : "replicate_table", cs.owner.node_id)));
		return;
	}
	schema = pnstrdup(cs.schema, cs.schema_len);
	name = pnstrdup(cs.name, cs.name_len);
	def = pnstrdup(cs.def, cs.def_len);
	qname = quote_qualified_identifier(schema, name);
	mine = cs.owner.node_id == (uint32)dr_node_id;
	nsp = get_namespace_oid(schema, true);
	relid = OidIsValid(nsp) ? get_relname_relid(name, nsp) : InvalidOid;

	if (OidIsValid(relid)) {
		Relation rel = table_open(relid, AccessExclusiveLock);
		bool replicated = dr_capture_rel_replicated(rel, NULL, NULL);
		char *here;

		table_close(rel, NoLock);
		if (replicated) {
			refuse(group_id, table_id, index, qname, relid, "it is replicated already");
			return;
		}
		here = dr_sql_tables_definition(relid);
		if (strcmp(here, def) != 0) {
			guard(qname, group_id);
			refuse(group_id, table_id, index, qname, relid,
			       psprintf("its definition differs from the leader's (leader: %s; "
			                "here: "
			                "%s)",
			                def, here));
			return;
		}
		if (dr_table_has_rows(relid)) {
			/* The proposing node's own rows are in the entry: replace them. */
			if (!mine) {
				guard(qname, group_id);
				refuse(group_id, table_id, index, qname, relid,
				       "it has rows here; a member's table must be empty to join");
				return;
			}
			/* (its firing user triggers as its owner) */
			dr_truncate_tables(list_make1_oid(relid));
			CommandCounterIncrement();
		}
		unguard(qname);
	} else {
		bool owner_failed;
		/* Its owner at once: what PostgreSQL runs of its owner's code while
		 * its constraints and indexes are added, and its rows' checks, run
		 * as the owner, not as this superuser. */
		ErrorData *ed = dr_snapshot_try_make(
		        qname, def, cs.extras != NULL ? pnstrdup(cs.extras, cs.extras_len) : NULL,
		        registered_what(qname, resend, group_id, index), &owner_failed);

		if (owner_failed)
			ReThrowError(ed); /* (a missing role: as the extras' error) */
		error = ed != NULL ? ed->message : NULL;
		nsp = get_namespace_oid(schema, true);
		relid = OidIsValid(nsp) ? get_relname_relid(name, nsp) : InvalidOid;
		if (error != NULL || !OidIsValid(relid)) {
			refuse(group_id, table_id, index, qname, InvalidOid,
			       psprintf("it could not be created here: %s",
			                error ? error : "the definition made no such table"));
			return;
		}
		made = true;
	}
	apply_sections(group_id, &cs, relid);
	dr_apply_rows_pin_path();
	dr_apply_rows_close(); /* (ALTER TABLE refuses a table in use) */
	/* The member's own table that it refused, renamed since, is a plain table again. */
	if (OidIsValid(refused) && refused != relid && get_rel_name(refused) != NULL)
		unguard(quote_qualified_identifier(get_namespace_name(get_rel_namespace(refused)),
		                                   get_rel_name(refused)));
	dr_sql_tables_install(relid, group_id, table_id);
	/*
	 * A table this member made: its owner, privileges, ... too, in this
	 * transaction (entry types of older builds carry none).  A kept table
	 * keeps its own: it is the proposer's, or one that a DBA or execute()
	 * made here, whose owner and grants are theirs to set.
	 */
	if (made && cs.extras != NULL)
		dr_snapshot_give_extras(qname, pnstrdup(cs.extras, cs.extras_len),
		                        registered_what(qname, resend, group_id, index));
	else if (!made && !mine && cs.extras != NULL)
		warn_extras_differ(group_id, qname, relid, pnstrdup(cs.extras, cs.extras_len));
	dr_apply_rows_forget();
	ereport(LOG, (errmsg("dragonraft table %s joined group %llu at entry %llu", qname,
	                     (unsigned long long)group_id, (unsigned long long)index)));
}

/*
 * dragonraft's triggers on tables replicated (or refused) before they were
 * made ENABLE ALWAYS fire for session_replication_role = replica too from
 * now on (at every start of the apply worker; none is found after the
 * first).  A table whose lock is not free at once is left to the next start:
 * a writer may hold it while it waits for this worker.
 */
void dr_apply_rows_upgrade_triggers(void)
{
	uint64 n;

	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute("SELECT format('ALTER TABLE %s ENABLE ALWAYS TRIGGER %I', "
	                "tgrelid::regclass, tgname) FROM pg_trigger WHERE tgname IN "
	                "('" DR_CAPTURE_TRIGGER "', '" DR_TRUNCATE_TRIGGER "', '" DR_REFUSED_TRIGGER
	                "') AND tgenabled <> 'A'",
	                true, 0) != SPI_OK_SELECT)
		elog(ERROR, "dragonraft could not read pg_trigger");
	n = SPI_processed;
	if (n > 0) {
		SPITupleTable *tt = SPI_tuptable;

		if (SPI_execute("SET LOCAL lock_timeout = '1s'", false, 0) != SPI_OK_UTILITY)
			elog(ERROR, "dragonraft could not set lock_timeout");
		dr_internal_ddl++;
		for (uint64 i = 0; i < n; i++) {
			char *sql = SPI_getvalue(tt->vals[i], tt->tupdesc, 1);
			char *error = try_sql(sql);

			if (error != NULL)
				ereport(WARNING,
				        (errmsg("dragonraft could not upgrade a trigger: %s",
				                error),
				         errdetail("The command was \"%s\".", sql)));
			else
				ereport(LOG, (errmsg("dragonraft upgraded a trigger: %s", sql)));
		}
		dr_internal_ddl--;
	}
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
}

/* ---- utility commands ---- */

/*
 * The replicated table of group_id that a command changes: its table id, 0
 * when it changes none, -1 when it may change any.  A change set of a
 * table that a command changed after its writer first wrote is skipped
 * (dr_apply_rows_change_set), so every member must give the same answer at
 * the command's place in the log: it is narrowed only for one statement
 * that changes the one table it names, schema-qualified (search_path and the
 * role's "$user" play no part), without partitions or inheritance children,
 * and for CREATE TABLE of a plain new table.
 */
static int64 command_table(uint64 group_id, const char *command)
{
	MemoryContext cxt = CurrentMemoryContext;
	List *volatile stmts = NIL;
	RangeVar *rv = NULL;
	Node *n;
	Oid relid, types[2] = {INT8OID, OIDOID};
	Datum values[2];
	bool isnull;

	PG_TRY();
	{
		/* (as the command runs, not with this member's own
		 * standard_conforming_strings: every member must tell alike) */
		stmts = dr_parse_command(command);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		FlushErrorState(); /* it fails to run too; any table, to be safe */
		stmts = NIL;
	}
	PG_END_TRY();
	if (list_length(stmts) != 1)
		return -1;
	n = linitial_node(RawStmt, stmts)->stmt;
	switch (nodeTag(n)) {
	case T_CreateStmt: {
		CreateStmt *c = (CreateStmt *)n;

		return c->inhRelations == NIL && c->partbound == NULL && c->ofTypename == NULL ? 0
		                                                                               : -1;
	}
	case T_AlterTableStmt:
		if (((AlterTableStmt *)n)->objtype != OBJECT_TABLE)
			return -1;
		rv = ((AlterTableStmt *)n)->relation;
		break;
	case T_IndexStmt:
		rv = ((IndexStmt *)n)->relation;
		break;
	case T_RenameStmt: {
		RenameStmt *r = (RenameStmt *)n;

		if (r->renameType != OBJECT_TABLE &&
		    (r->renameType != OBJECT_COLUMN || r->relationType != OBJECT_TABLE))
			return -1;
		rv = r->relation;
		break;
	}
	case T_DropStmt: {
		DropStmt *d = (DropStmt *)n;

		if (d->removeType != OBJECT_TABLE || d->behavior != DROP_RESTRICT ||
		    list_length(d->objects) != 1)
			return -1;
		rv = makeRangeVarFromNameList(linitial_node(List, d->objects));
		break;
	}
	default:
		return -1;
	}
	if (rv == NULL || rv->schemaname == NULL)
		return -1;
	relid = RangeVarGetRelid(rv, NoLock, true);
	if (!OidIsValid(relid))
		return 0;
	if (has_subclass(relid))
		return -1; /* it recurses to partitions and inheritance children */
	values[0] = Int64GetDatum((int64)group_id);
	values[1] = ObjectIdGetDatum(relid);
	if (SPI_execute_with_args("SELECT table_id FROM dragonraft.replicated_tables WHERE "
	                          "group_id = $1 AND relid = $2",
	                          2, types, values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "dragonraft could not read dragonraft.replicated_tables");
	if (SPI_processed == 0)
		return 0;
	return DatumGetInt64(
	        SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/* try_sql of a command of a group, noting the relations it makes (dr_utility_made). */
static char *try_command(const char *command)
{
	char *volatile error = NULL;

	dr_utility_note_made(true);
	PG_TRY();
	{
		error = try_sql(command);
	}
	PG_FINALLY();
	{
		dr_utility_note_made(false);
	}
	PG_END_TRY();
	return error;
}

/*
 * The relations that the command at index made (relids, in creation order)
 * that still exist go into dragonraft.made_relations: views, sequences and
 * tables (not indexes, TOAST tables, composite types or temporary
 * relations).  Those the group's commands dropped leave it.  Full snapshots
 * carry those that are not tables of the group (snapshot_export.c).
 */
static void record_made(uint64 group_id, uint64 index, List *relids)
{
	Oid types[3] = {INT8OID, INT8OID, OIDARRAYOID};
	Datum values[3], *elems = palloc(sizeof(Datum) * Max(list_length(relids), 1));
	int n = 0;
	ListCell *lc;

	if (SPI_execute("DELETE FROM dragonraft.made_relations m WHERE "
	                "NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = m.relid)",
	                false, 0) != SPI_OK_DELETE)
		elog(ERROR, "dragonraft could not update dragonraft.made_relations");
	foreach (lc, relids)
		elems[n++] = ObjectIdGetDatum(lfirst_oid(lc));
	if (n == 0)
		return;
	values[0] = Int64GetDatum((int64)group_id);
	values[1] = Int64GetDatum((int64)index);
	values[2] =
	        PointerGetDatum(construct_array(elems, n, OIDOID, sizeof(Oid), true, TYPALIGN_INT));
	if (SPI_execute_with_args("INSERT INTO dragonraft.made_relations (group_id, index, seq, "
	                          "relid) SELECT $1, $2, m.seq, c.oid "
	                          "FROM unnest($3) WITH ORDINALITY AS m (relid, seq) "
	                          "JOIN pg_catalog.pg_class c ON c.oid = m.relid "
	                          "WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') "
	                          "AND c.relpersistence <> 't' ON CONFLICT DO NOTHING",
	                          3, types, values, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "dragonraft could not update dragonraft.made_relations");
}

/*
 * A command whose try on its calling node did not see another command of
 * the group that comes before its entry (execute() on two nodes at once:
 * both tries passed, and the second command may fail where the first one
 * ran) is skipped, on every member alike: recorded in ddl_history as
 * preempted by that command, changing no table (no writer's entry is
 * skipped for it), and its caller's execute() fails with 40001 (sql_tables.c).
 * Any command counts, whatever it changes: which objects a command touches
 * is not known before it runs, and members must agree without running it;
 * but a barrier (SELECTs of constants, told from its text alike on every
 * member: dr_sql_tables_barrier) changes nothing under any schema: it is
 * never skipped, and no command is skipped for it.
 */
static void preempted(uint64 group_id, uint64 index, uint64 command, const struct entry_ddl *d)
{
	Oid types[6] = {INT8OID, INT8OID, TEXTOID, TEXTOID, TEXTOID, INT8OID};
	Datum values[6];
	char nulls[6] = {' ', ' ', ' ', ' ', d->search_path ? ' ' : 'n', ' '};
	char *sql = pnstrdup(d->command, d->len);

	ereport(LOG,
	        (errmsg("dragonraft skipped the command at entry %llu of group %llu: the command "
	                "at entry %llu came first",
	                (unsigned long long)index, (unsigned long long)group_id,
	                (unsigned long long)command),
	         errdetail("Its try on node %u saw the group's commands up to entry %llu; every "
	                   "member skips it, and its dragonraft.execute fails with SQLSTATE "
	                   "40001.  The command was \"%s\".",
	                   d->node_id, (unsigned long long)d->schema_index, sql)));
	values[0] = Int64GetDatum((int64)group_id);
	values[1] = Int64GetDatum((int64)index);
	/* (a request to skip a command goes at the next command, as below) */
	if (SPI_execute_with_args("DELETE FROM dragonraft.skip_requests "
	                          "WHERE group_id = $1 AND index <= $2",
	                          2, types, values, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "dragonraft could not update dragonraft.skip_requests");
	values[2] = CStringGetTextDatum(sql);
	values[3] = PointerGetDatum(cstring_to_text_with_len(d->role, d->role_len));
	values[4] = d->search_path ? PointerGetDatum(cstring_to_text_with_len(d->search_path,
	                                                                      d->search_path_len))
	                           : (Datum)0;
	values[5] = Int64GetDatum((int64)command);
	if (SPI_execute_with_args("INSERT INTO dragonraft.ddl_history (group_id, index, command, "
	                          "role, tables, search_path, preempted_by) "
	                          "VALUES ($1, $2, $3, $4, '{}', $5, $6) ON CONFLICT DO NOTHING",
	                          6, types, values, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "dragonraft could not record a command in dragonraft.ddl_history");
	CommandCounterIncrement();
}

bool dr_apply_rows_ddl(uint64 group_id, uint64 index, uint64 schema_index,
                       const struct entry_header *h)
{
	struct entry_ddl d;
	Oid types[7] = {INT8OID, INT8OID, TEXTOID, TEXTOID, TEXTOID, INT8ARRAYOID, TEXTOID};
	Datum values[7];
	char nulls[7] = {' ', ' ', ' ', ' ', ' ', ' ', ' '};
	char *command, *role, *error, *search_path;
	Oid roleid, save_user;
	int save_sec, save_nestlevel;
	int64 table;
	Datum id;
	bool skip, isnull, barrier;
	uint64 first = 0;
	int rc = entry_decode_ddl(h, &d);

	if (rc != ENTRY_OK)
		decode_failed(rc);
	command = pnstrdup(d.command, d.len);
	barrier = dr_sql_tables_barrier(command);
	/* Decided before the command is published to writers (they would fail
	 * for it) and before it runs.  schema_index is the group's last command so
	 * far: only when its try saw an older one does ddl_history say whether
	 * one of those since ran.  (A barrier cannot go stale.) */
	if (d.has_schema_index && d.schema_index < schema_index && !barrier) {
		PushActiveSnapshot(GetTransactionSnapshot());
		first = dr_apply_rows_command_between(group_id, d.schema_index, index, NULL, 0);
		PopActiveSnapshot();
	}
	if (first > 0) {
		preempted(group_id, index, first, &d);
		return false;
	}
	/* (a member of another locale than the proposer's stops here, before the
	 * command is published or run: apply_worker.c; a barrier computes
	 * nothing with it, and a command skipped above changes nothing) */
	if (!barrier)
		dr_apply_check_proposer_locale(group_id, index, d.node_id, true);
	dr_apply_rows_close(); /* a command refuses a table in use */
	role = pnstrdup(d.role, d.role_len);
	/* (an older build's entry: this node's default, as then) */
	search_path = d.search_path != NULL ? pnstrdup(d.search_path, d.search_path_len) : NULL;
	/* Writers of that table (and replicate_table) waiting for their turn fail with
	 * 40001 now (xact.c); not for a barrier, which changes no table and takes
	 * no lock. */
	table = barrier ? 0 : command_table(group_id, command);
	if (!barrier)
		dr_apply_rows_publish_schema(
		        group_id, index, false,
		        table < 0 ? 0 : (table == 0 ? DR_SCHEMA_NO_TABLE : (uint64)table));
	roleid = get_role_oid(role, true);
	if (!OidIsValid(roleid))
		error = psprintf(
		        "role \"%s\", which proposed the command, does not exist on this node",
		        role);
	else {
		/* As the proposing role, with its privileges here and the search_path
		 * it was tried with; its settings end with it. */
		GetUserIdAndSecContext(&save_user, &save_sec);
		SetUserIdAndSecContext(roleid, save_sec | SECURITY_LOCAL_USERID_CHANGE);
		save_nestlevel = NewGUCNestLevel();
		dr_command_search_path(search_path);
		error = try_command(command);
		AtEOXact_GUC(false, save_nestlevel);
		SetUserIdAndSecContext(save_user, save_sec);
	}
	/*
	 * The group stops here (apply_worker.c) until the cause is fixed on this
	 * node, or a DBA skips the command here (skip_command).  A request to skip
	 * it goes once the entry is applied, whether it was needed or not (and
	 * one for an entry that was not a command, at the next command).
	 */
	values[0] = Int64GetDatum((int64)group_id);
	values[1] = Int64GetDatum((int64)index);
	if (SPI_execute_with_args("DELETE FROM dragonraft.skip_requests "
	                          "WHERE group_id = $1 AND index <= $2 RETURNING index = $2",
	                          2, types, values, NULL, false, 0) != SPI_OK_DELETE_RETURNING)
		elog(ERROR, "dragonraft could not read dragonraft.skip_requests");
	skip = false;
	for (uint64 i = 0; i < SPI_processed; i++)
		skip |= DatumGetBool(
		        SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
	if (error != NULL && !skip)
		ereport(ERROR,
		        (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		         errmsg("the command at entry %llu failed on this node: %s; the "
		                "command: %s",
		                (unsigned long long)index, error, command),
		         errdetail("It ran on the node that proposed it: this member stops "
		                   "applying group %llu rather than go on with a different "
		                   "schema.",
		                   (unsigned long long)group_id),
		         errhint("Fix the cause on this node (a missing role, an object "
		                 "that takes the name, ...): the command is tried again.  "
		                 "Or skip it here: SELECT dragonraft.skip_command(%llu, %llu).",
		                 (unsigned long long)group_id, (unsigned long long)index)));
	if (error != NULL)
		ereport(WARNING,
		        (errmsg("dragonraft skipped the command at entry %llu of group %llu "
		                "on this node: %s",
		                (unsigned long long)index, (unsigned long long)group_id, error),
		         errdetail("A call of dragonraft.skip_command asked for it.  The command "
		                   "was \"%s\".",
		                   command)));
	values[2] = CStringGetTextDatum(command);
	values[3] = error ? CStringGetTextDatum(error) : (Datum)0;
	nulls[3] = error ? ' ' : 'n';
	values[4] = CStringGetTextDatum(role);
	id = Int64GetDatum(table);
	values[5] = table < 0 ? (Datum)0
	                      : PointerGetDatum(construct_array(&id, table > 0 ? 1 : 0, INT8OID, 8,
	                                                        FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	nulls[5] = table < 0 ? 'n' : ' ';
	values[6] = search_path ? CStringGetTextDatum(search_path) : (Datum)0;
	nulls[6] = search_path ? ' ' : 'n';
	if (SPI_execute_with_args("INSERT INTO dragonraft.ddl_history (group_id, index, command, "
	                          "error, role, tables, search_path) "
	                          "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
	                          7, types, values, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "dragonraft could not record a command in dragonraft.ddl_history");
	/* Tables the command dropped are no longer replicated. */
	if (SPI_execute("DELETE FROM dragonraft.replicated_tables t WHERE relid IS NOT NULL AND "
	                "NOT EXISTS (SELECT FROM pg_class c WHERE c.oid = t.relid)",
	                false, 0) != SPI_OK_DELETE)
		elog(ERROR, "dragonraft could not update dragonraft.replicated_tables");
	if (error == NULL)
		record_made(group_id, index, dr_utility_made());
	if (error == NULL && barrier && strcmp(command, DR_CONSISTENCY_MARKER) == 0)
		dr_consistency_mark(group_id, index); /* (consistency.c) */
	dr_apply_rows_close();
	dr_apply_rows_forget();
	CommandCounterIncrement();
	return !barrier;
}
