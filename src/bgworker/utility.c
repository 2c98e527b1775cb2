/*
 * utility.c - the hooks of the write path (DESIGN §4):
 *
 * - ProcessUtility: DDL on a replicated table (ALTER TABLE, DROP TABLE,
 *   CREATE INDEX, ...) is refused outside dragonraft.execute(), which runs
 *   it on every member in log order; the apply worker, execute()'s try of
 *   the command on the calling node and dragonraft's own trigger
 *   installation are let through.  execute()'s try refuses a command that
 *   would give members different values (a default that is not immutable
 *   filling a new column, a conversion that is not immutable).  TRUNCATE
 *   and COPY are data changes and replicate like DML.
 * - ExecutorStart checks a statement that writes (or locks rows of) a
 *   replicated table before it touches a row (dr_capture_begin/lock).
 * - ProcessUtility and ExecutorStart note a write to a table that is not
 *   replicated: such a transaction keeps synchronous_commit (only the
 *   replicated part is durable in the Raft log).
 * - Only replicate_table creates dragonraft's triggers, and nothing (execute()
 *   included) drops, renames, enables or disables them, or fires a user
 *   trigger of a replicated table in the apply worker.
 * - object_access_hook: a drop that takes part of a replicated table with
 *   it (a CASCADE, an index, an owned sequence, a capture trigger) is
 *   refused like the DDL above; while the apply worker runs a command of a
 *   group, it notes the relations the command makes (dr_utility_note_made:
 *   dragonraft.made_relations, which full snapshots read).
 *
 * Both hooks cost a transaction that touches no replicated table a few
 * tests per statement.
 */
#include "write.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/relation.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/heap.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/objectaccess.h"
#include "catalog/objectaddress.h"
#include "catalog/pg_attrdef.h"
#include "catalog/pg_auth_members.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_class.h"
#include "catalog/pg_constraint.h"
#include "catalog/pg_depend.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_type.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_shdepend.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_ts_config.h"
#include "catalog/pg_ts_dict.h"
#include "catalog/pg_ts_parser.h"
#include "catalog/pg_ts_template.h"
#include "commands/defrem.h"
#include "commands/extension.h"
#include "commands/tablecmds.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "nodes/parsenodes.h"
#include "optimizer/optimizer.h"
#include "parser/parse_coerce.h"
#include "parser/parse_expr.h"
#include "parser/parse_func.h"
#include "parser/parse_relation.h"
#include "parser/parse_type.h"
#include "parser/parsetree.h"
#include "storage/proc.h"
#include "tcop/utility.h"
#include "utils/fmgroids.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/catcache.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/rel.h"
#include "utils/syscache.h"

bool dr_is_apply_worker = false;
int dr_internal_ddl = 0;
uint64 dr_execute_group = 0;

static ProcessUtility_hook_type prev_utility = NULL;
/* The local transaction that the client began with BEGIN, START TRANSACTION
 * or COMMIT/ROLLBACK AND CHAIN; the depth of CALL statements under way. */
static LocalTransactionId explicit_block_lxid = InvalidLocalTransactionId;
static int call_depth = 0;
static ExecutorStart_hook_type prev_executor_start = NULL;
static object_access_hook_type prev_object_access = NULL;
/* The relations made since dr_utility_note_made(true), while noting (TopTransactionContext). */
static bool noting_made = false;
/* The function that the ALTER FUNCTION running now changes in no way that
 * members compute or check rows with (plan_only_alter), else InvalidOid. */
static Oid plan_only_func = InvalidOid;
static List *made = NIL;

/*
 * The group of the replicated table that relid (a table, or an index or
 * owned sequence of one) is part of; 0 if none.  Anything else (a view, a
 * composite type) is part of none.  The table is opened with lockmode
 * (NoLock: the caller holds one).
 */
static uint64 part_of_replicated(Oid relid, LOCKMODE lockmode)
{
	Oid tab = relid;
	int32 col;
	Relation rel;
	uint64 group_id = 0;

	switch (get_rel_relkind(relid)) {
	case RELKIND_RELATION:
		break;
	case RELKIND_INDEX:
	case RELKIND_PARTITIONED_INDEX:
		tab = IndexGetRelation(relid, true);
		break;
	case RELKIND_SEQUENCE:
		if (!sequenceIsOwned(relid, DEPENDENCY_AUTO, &tab, &col) &&
		    !sequenceIsOwned(relid, DEPENDENCY_INTERNAL, &tab, &col))
			return 0;
		break;
	default:
		return 0;
	}
	rel = OidIsValid(tab) ? try_relation_open(tab, lockmode) : NULL;
	if (rel == NULL)
		return 0;
	if (!dr_capture_rel_replicated(rel, &group_id, NULL))
		group_id = 0;
	relation_close(rel, lockmode);
	return group_id;
}

/* The group of the replicated table that the relation rv names is part of;
 * 0 if none (or it does not exist). */
static uint64 rv_replicated(RangeVar *rv)
{
	Oid relid = RangeVarGetRelid(rv, NoLock, true);

	return OidIsValid(relid) ? part_of_replicated(relid, AccessShareLock) : 0;
}

/* The typed tables of the composite type of relation relid (pg_class has no
 * index on reloftype: ALTER TYPE ... CASCADE scans it too, tablecmds.c). */
static List *typed_tables(Oid relid)
{
	Oid typid = get_rel_type_id(relid);
	Relation classrel;
	ScanKeyData key;
	TableScanDesc scan;
	HeapTuple tup;
	List *tables = NIL;

	if (!OidIsValid(typid))
		return NIL;
	classrel = table_open(RelationRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_class_reloftype, BTEqualStrategyNumber, F_OIDEQ,
	            ObjectIdGetDatum(typid));
	scan = table_beginscan_catalog(classrel, 1, &key);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
		tables = lappend_oid(tables, ((Form_pg_class)GETSTRUCT(tup))->oid);
	table_endscan(scan);
	table_close(classrel, AccessShareLock);
	return tables;
}

/*
 * The group of a replicated table that stmt, a statement on the relation rv
 * (not itself replicated) names, changes all the same by recursion: an
 * ALTER TABLE, a column or constraint rename, an index or a row trigger of
 * a parent reaches its partitions and inheritance children (unless ONLY),
 * an ALTER TYPE ... CASCADE the typed tables of the type, an ATTACH or DETACH
 * PARTITION the table it names; 0 if none.  *relid: that table.
 */
static uint64 replicated_below(Node *stmt, RangeVar *rv, Oid *relid)
{
	Oid parent = RangeVarGetRelid(rv, NoLock, true);
	List *kids = NIL;
	ListCell *lc;
	char kind;
	/* (ATTACH and DETACH PARTITION alone change the table they name only) */
	bool recurses = !IsA(stmt, AlterTableStmt);

	if (!OidIsValid(parent))
		return 0;
	kind = get_rel_relkind(parent);
	if (IsA(stmt, AlterTableStmt))
		foreach (lc, ((AlterTableStmt *)stmt)->cmds) {
			AlterTableCmd *cmd = lfirst_node(AlterTableCmd, lc);

			if (cmd->subtype == AT_AttachPartition ||
			    cmd->subtype == AT_DetachPartition) {
				Oid part = RangeVarGetRelid(((PartitionCmd *)cmd->def)->name,
				                            NoLock, true);

				if (OidIsValid(part))
					kids = lappend_oid(kids, part);
			} else
				recurses = true;
		}
	if (kind == RELKIND_COMPOSITE_TYPE &&
	    ((IsA(stmt, AlterTableStmt) && ((AlterTableStmt *)stmt)->objtype == OBJECT_TYPE) ||
	     (IsA(stmt, RenameStmt) && ((RenameStmt *)stmt)->renameType == OBJECT_ATTRIBUTE)))
		kids = list_concat(kids, typed_tables(parent));
	else if ((kind == RELKIND_RELATION || kind == RELKIND_PARTITIONED_TABLE ||
	          kind == RELKIND_FOREIGN_TABLE) &&
	         rv->inh && recurses &&
	         (IsA(stmt, AlterTableStmt) ||
	          (kind == RELKIND_PARTITIONED_TABLE &&
	           (IsA(stmt, IndexStmt) ||
	            (IsA(stmt, CreateTrigStmt) && ((CreateTrigStmt *)stmt)->row))) ||
	          (IsA(stmt, RenameStmt) &&
	           (((RenameStmt *)stmt)->renameType == OBJECT_COLUMN ||
	            ((RenameStmt *)stmt)->renameType == OBJECT_TABCONSTRAINT))) &&
	         has_subclass(parent))
		kids = list_concat(kids, find_all_inheritors(parent, NoLock, NULL));
	foreach (lc, kids) {
		uint64 group_id;

		if (lfirst_oid(lc) != parent &&
		    (group_id = part_of_replicated(lfirst_oid(lc), AccessShareLock)) != 0) {
			*relid = lfirst_oid(lc);
			return group_id;
		}
	}
	return 0;
}

/* The pg_depend rows of the objects that depend on object objid of class classid. */
static SysScanDesc referencing_scan(Relation dep, Oid classid, Oid objid)
{
	ScanKeyData key[2];

	ScanKeyInit(&key[0], Anum_pg_depend_refclassid, BTEqualStrategyNumber, F_OIDEQ,
	            ObjectIdGetDatum(classid));
	ScanKeyInit(&key[1], Anum_pg_depend_refobjid, BTEqualStrategyNumber, F_OIDEQ,
	            ObjectIdGetDatum(objid));
	return systable_beginscan(dep, DependReferenceIndexId, true, NULL, 2, key);
}

/*
 * The group of a replicated table with a column of type typid (the type
 * that a command changes: changed_type), directly or through a domain
 * over it, an array of it or a composite type with it; 0 if none.
 * *relid: that table.  A value the leader alone accepts stops the apply of
 * every member that cannot read it (review 19 F1).
 */
static uint64 type_id_replicated(Oid typid, Oid *relid)
{
	List *pending, *seen = NIL;
	Relation dep;
	uint64 group_id = 0;

	if (!OidIsValid(typid))
		return 0;
	pending = list_make1_oid(typid);
	dep = table_open(DependRelationId, AccessShareLock);
	while (pending != NIL && group_id == 0) {
		Oid t = linitial_oid(pending);
		SysScanDesc scan;
		HeapTuple tup;

		pending = list_delete_first(pending);
		if (list_member_oid(seen, t))
			continue;
		seen = lappend_oid(seen, t);
		scan = referencing_scan(dep, TypeRelationId, t);
		while (group_id == 0 && (tup = systable_getnext(scan)) != NULL) {
			Form_pg_depend d = (Form_pg_depend)GETSTRUCT(tup);

			/* a domain or array over it, a composite type with it, or a table */
			if (d->classid == TypeRelationId)
				pending = lappend_oid(pending, d->objid);
			else if (d->classid == RelationRelationId && d->objsubid > 0) {
				if (get_rel_relkind(d->objid) == RELKIND_COMPOSITE_TYPE)
					pending = lappend_oid(pending, get_rel_type_id(d->objid));
				else if ((group_id = part_of_replicated(d->objid,
				                                        AccessShareLock)) != 0)
					*relid = d->objid;
			}
		}
		systable_endscan(scan);
	}
	table_close(dep, AccessShareLock);
	return group_id;
}

/*
 * The type that stmt changes: how its values are read, checked or sent
 * (ALTER TYPE ... ADD / RENAME VALUE of an enum, ALTER DOMAIN, ALTER TYPE
 * ... SET (its RECEIVE or SEND function, ...)), or its name, schema or
 * owner (ALTER TYPE / DOMAIN ... RENAME TO, SET SCHEMA, OWNER TO; ALTER
 * DOMAIN ... RENAME CONSTRAINT; ALTER TABLE / VIEW ... RENAME TO, SET
 * SCHEMA, OWNER TO of a relation, whose row type follows it).  The OID
 * stays, but on a member that ran it alone a later execute() that names the
 * type means another one, or none, or may not alter it as the role that
 * proposed it (the apply runs a command as that role, and only a type's
 * owner may alter it): it passes the try and stops that member's apply, or
 * the other way round.  InvalidOid if none.
 */
static Oid changed_type(Node *stmt)
{
	Node *names = NULL;
	RangeVar *rv = NULL;
	ObjectType kind = OBJECT_TYPE;
	ListCell *lc;
	Oid relid;

	switch (nodeTag(stmt)) {
	case T_AlterEnumStmt:
		names = (Node *)((AlterEnumStmt *)stmt)->typeName;
		break;
	case T_AlterDomainStmt:
		names = (Node *)((AlterDomainStmt *)stmt)->typeName;
		break;
	case T_AlterTypeStmt:
		names = (Node *)((AlterTypeStmt *)stmt)->typeName;
		break;
	case T_RenameStmt:
		kind = ((RenameStmt *)stmt)->renameType;
		names = ((RenameStmt *)stmt)->object;
		rv = ((RenameStmt *)stmt)->relation;
		break;
	case T_AlterObjectSchemaStmt:
		kind = ((AlterObjectSchemaStmt *)stmt)->objectType;
		names = ((AlterObjectSchemaStmt *)stmt)->object;
		rv = ((AlterObjectSchemaStmt *)stmt)->relation;
		break;
	case T_AlterOwnerStmt:
		kind = ((AlterOwnerStmt *)stmt)->objectType;
		names = ((AlterOwnerStmt *)stmt)->object;
		break;
	case T_AlterTableStmt:
		foreach (lc, ((AlterTableStmt *)stmt)->cmds)
			if (lfirst_node(AlterTableCmd, lc)->subtype == AT_ChangeOwner)
				rv = ((AlterTableStmt *)stmt)->relation;
		kind = OBJECT_TABLE;
		break;
	default:
		return InvalidOid;
	}
	if (kind == OBJECT_TYPE || kind == OBJECT_DOMAIN || kind == OBJECT_DOMCONSTRAINT)
		return names == NULL
		               ? InvalidOid
		               : LookupTypeNameOid(NULL,
		                                   makeTypeNameFromNameList(castNode(List, names)),
		                                   true);
	if ((kind != OBJECT_TABLE && kind != OBJECT_VIEW && kind != OBJECT_MATVIEW &&
	     kind != OBJECT_FOREIGN_TABLE) ||
	    rv == NULL || !OidIsValid(relid = RangeVarGetRelid(rv, NoLock, true)))
		return InvalidOid;
	return get_rel_type_id(relid);
}

/* type_id_replicated of the type that stmt changes (changed_type), or the
 * group of a replicated typed table of it (CREATE TABLE ... OF it). */
static uint64 type_replicated(Node *stmt, Oid *relid)
{
	Oid typid = changed_type(stmt);
	uint64 group_id = type_id_replicated(typid, relid);
	ListCell *lc;

	if (group_id == 0 && OidIsValid(typid) && OidIsValid(get_typ_typrelid(typid)))
		foreach (lc, typed_tables(get_typ_typrelid(typid)))
			if ((group_id = part_of_replicated(lfirst_oid(lc), AccessShareLock)) != 0) {
				*relid = lfirst_oid(lc);
				break;
			}
	return group_id;
}

static uint64 computed_by_replicated(Oid classid, Oid objid, uint64 except, Oid *relid);

/*
 * The group of a replicated table that schema nsp holds, or that uses a type
 * (type_id_replicated) or a function, operator or text search object
 * (computed_by_replicated) that nsp holds; 0 if none.  *relid: that table.
 */
static uint64 nsp_replicated(Oid nsp, Oid *relid)
{
	Relation dep;
	SysScanDesc scan;
	HeapTuple tup;
	uint64 group_id = 0;

	dep = table_open(DependRelationId, AccessShareLock);
	scan = referencing_scan(dep, NamespaceRelationId, nsp);
	while (group_id == 0 && (tup = systable_getnext(scan)) != NULL) {
		Form_pg_depend d = (Form_pg_depend)GETSTRUCT(tup);

		switch (d->classid) {
		case RelationRelationId:
			if (get_rel_relkind(d->objid) == RELKIND_RELATION &&
			    (group_id = part_of_replicated(d->objid, AccessShareLock)) != 0)
				*relid = d->objid;
			else /* its row type (which has no dependency of its own on the schema) */
				group_id = type_id_replicated(get_rel_type_id(d->objid), relid);
			break;
		case TypeRelationId:
			group_id = type_id_replicated(d->objid, relid);
			break;
		case ProcedureRelationId:
		case OperatorRelationId:
		case TSConfigRelationId:
		case TSDictionaryRelationId:
		case TSTemplateRelationId:
		case TSParserRelationId:
			group_id = computed_by_replicated(d->classid, d->objid, dr_execute_group,
			                                  relid);
			break;
		default:
			break;
		}
	}
	systable_endscan(scan);
	table_close(dep, AccessShareLock);
	return group_id;
}

/*
 * ALTER SCHEMA ... RENAME TO or OWNER TO of a schema that holds a replicated
 * table, a type one uses (type_id_replicated), or a function, operator or
 * text search object one computes or checks its rows with
 * (computed_by_replicated): as RENAME TO, SET SCHEMA and OWNER TO of that
 * table, type (changed_type) or function (object_access), run on one member
 * alone, a later execute() that names the schema means another one, or
 * none, there, or the proposing role may not create in it there.  The
 * group of that table, 0 if none; *relid: that table.
 */
static uint64 schema_replicated(Node *stmt, Oid *relid)
{
	const char *name = NULL;
	Oid nsp;

	if (IsA(stmt, RenameStmt) && ((RenameStmt *)stmt)->renameType == OBJECT_SCHEMA)
		name = ((RenameStmt *)stmt)->subname;
	else if (IsA(stmt, AlterOwnerStmt) && ((AlterOwnerStmt *)stmt)->objectType == OBJECT_SCHEMA)
		name = strVal(((AlterOwnerStmt *)stmt)->object);
	if (name == NULL || !OidIsValid(nsp = get_namespace_oid(name, true)))
		return 0;
	return nsp_replicated(nsp, relid);
}

/*
 * The group of a replicated table of this database that REASSIGN OWNED (or
 * DROP OWNED: dropped) of roles, as those commands find their objects in
 * pg_shdepend, would change; 0 if none.  *what: the object; *relid: that
 * table.  An object the roles own: the table itself (or its owned
 * sequence: a member applies a table's rows as its owner, its CHECK
 * constraints, index expressions and triggers that fire on apply with the
 * owner's privileges, and an owner changed on one member only can stop
 * that member's apply: review 20 item), a table or view whose row type it
 * holds, a type it uses (also through a typed table's type), a schema
 * that holds one of those or a function it uses (nsp_replicated): as
 * ALTER ... OWNER TO of them, a later execute() that alters them, or
 * creates in the schema, then fails on that member only.  Functions
 * (object_access) come through the post-alter hook.  With acl (DROP
 * OWNED, which revokes the roles' privileges): a function that members
 * compute or check the table's rows with, where a role has a privilege
 * (EXECUTE: as check_revoke).
 */
static uint64 owned_replicated(List *roles, bool acl, ObjectAddress *what, Oid *relid)
{
	Relation sd = table_open(SharedDependRelationId, AccessShareLock);
	uint64 group_id = 0;
	ListCell *lc;

	foreach (lc, roles) {
		Oid role = get_rolespec_oid(lfirst(lc), true);
		ScanKeyData key[2];
		SysScanDesc scan;
		HeapTuple tup;

		if (!OidIsValid(role))
			continue;
		ScanKeyInit(&key[0], Anum_pg_shdepend_refclassid, BTEqualStrategyNumber, F_OIDEQ,
		            ObjectIdGetDatum(AuthIdRelationId));
		ScanKeyInit(&key[1], Anum_pg_shdepend_refobjid, BTEqualStrategyNumber, F_OIDEQ,
		            ObjectIdGetDatum(role));
		scan = systable_beginscan(sd, SharedDependReferenceIndexId, true, NULL, 2, key);
		while (group_id == 0 && (tup = systable_getnext(scan)) != NULL) {
			Form_pg_shdepend d = (Form_pg_shdepend)GETSTRUCT(tup);
			ListCell *t;

			if (d->dbid != MyDatabaseId)
				continue;
			if (d->deptype == SHARED_DEPENDENCY_ACL) {
				if (acl && d->classid == ProcedureRelationId)
					group_id = computed_by_replicated(d->classid, d->objid,
					                                  dr_execute_group, relid);
			} else if (d->deptype != SHARED_DEPENDENCY_OWNER)
				continue;
			else if (d->classid == RelationRelationId) {
				if ((group_id = part_of_replicated(d->objid, AccessShareLock)) != 0)
					*relid = d->objid;
				else
					group_id = type_id_replicated(get_rel_type_id(d->objid),
					                              relid);
			} else if (d->classid == TypeRelationId) {
				group_id = type_id_replicated(d->objid, relid);
				if (group_id == 0 && OidIsValid(get_typ_typrelid(d->objid)))
					foreach (t, typed_tables(get_typ_typrelid(d->objid)))
						if ((group_id = part_of_replicated(
						             lfirst_oid(t), AccessShareLock)) !=
						    0) {
							*relid = lfirst_oid(t);
							break;
						}
			} else if (d->classid == NamespaceRelationId)
				group_id = nsp_replicated(d->objid, relid);
			if (group_id != 0)
				*what = (ObjectAddress){d->classid, d->objid, 0};
		}
		systable_endscan(scan);
		if (group_id != 0)
			break;
	}
	table_close(sd, AccessShareLock);
	return group_id;
}

/* owned_replicated of REASSIGN OWNED or DROP OWNED (its privileges too);
 * 0 for any other statement. */
static uint64 owned_changed(Node *stmt, ObjectAddress *what, Oid *relid)
{
	if (IsA(stmt, ReassignOwnedStmt))
		return owned_replicated(((ReassignOwnedStmt *)stmt)->roles, false, what, relid);
	if (IsA(stmt, DropOwnedStmt))
		return owned_replicated(((DropOwnedStmt *)stmt)->roles, true, what, relid);
	return 0;
}

static int execute_hint(uint64 group_id);

/* Outside execute(): REASSIGN OWNED or DROP OWNED that would change object
 * what, which table relid of group group_id is, or uses (owned_changed). */
static void owned_refused(Node *stmt, const ObjectAddress *what, Oid relid, uint64 group_id)
        pg_attribute_noreturn();
static void owned_refused(Node *stmt, const ObjectAddress *what, Oid relid, uint64 group_id)
{
	const char *cmd = IsA(stmt, DropOwnedStmt) ? "DROP OWNED" : "REASSIGN OWNED";

	if (what->classId == RelationRelationId && what->objectId == relid)
		ereport(ERROR,
		        (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
		         errmsg("%s would %s \"%s\", which is replicated by dragonraft: run it "
		                "with dragonraft.execute",
		                cmd, IsA(stmt, DropOwnedStmt) ? "drop" : "change the owner of",
		                get_rel_name(relid)),
		         IsA(stmt, DropOwnedStmt)
		                 ? errdetail("DDL on a replicated table must run on every member "
		                             "of its group in log order.")
		                 : errdetail("Every member applies the table's rows as its owner "
		                             "(its CHECK constraints, index expressions and "
		                             "triggers that fire on apply run with the owner's "
		                             "privileges): members must agree on it."),
		         execute_hint(group_id)));
	if (what->classId == ProcedureRelationId && IsA(stmt, DropOwnedStmt))
		ereport(ERROR,
		        (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
		         errmsg("DROP OWNED would revoke privileges on %s, which table \"%s\" "
		                "replicated by dragonraft uses: run it with dragonraft.execute",
		                getObjectDescription(what, false), get_rel_name(relid)),
		         errdetail("Every member's apply checks or computes the table's rows "
		                   "with it as the table's owner: a privilege revoked on this "
		                   "member only stops its apply of the group."),
		         execute_hint(group_id)));
	ereport(ERROR,
	        (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
	         errmsg("%s would %s %s, which table \"%s\" replicated by dragonraft uses: "
	                "run it with dragonraft.execute",
	                cmd, IsA(stmt, DropOwnedStmt) ? "drop" : "change the owner of",
	                getObjectDescription(what, false), get_rel_name(relid)),
	         IsA(stmt, DropOwnedStmt)
	                 ? errdetail("DDL on a replicated table, or on what it uses, must run "
	                             "on every member of its group in log order.")
	                 : errdetail("Given another owner on this member only, a later "
	                             "command that alters it, or creates in it, would fail on "
	                             "some members only and stop their apply."),
	         execute_hint(group_id)));
}

/* COPY FROM and TRUNCATE run no ExecutorStart: check their replicated tables
 * before they touch a row (a follower's 25006 before a long COPY). */
static void check_data_targets(Node *stmt)
{
	List *rvs = NIL;
	ListCell *lc;

	if (IsA(stmt, CopyStmt) && ((CopyStmt *)stmt)->is_from && ((CopyStmt *)stmt)->relation)
		rvs = list_make1(((CopyStmt *)stmt)->relation);
	else if (IsA(stmt, TruncateStmt))
		rvs = ((TruncateStmt *)stmt)->relations;
	foreach (lc, rvs) {
		Oid relid = RangeVarGetRelid(lfirst(lc), NoLock, true);
		Relation rel;
		uint64 group_id;
		bool replicated;

		if (!OidIsValid(relid) || get_rel_relkind(relid) != RELKIND_RELATION ||
		    (rel = try_table_open(relid, AccessShareLock)) == NULL)
			continue;
		replicated = dr_capture_rel_replicated(rel, &group_id, NULL);
		table_close(rel, AccessShareLock);
		if (replicated)
			dr_capture_begin(group_id);
	}
}

/*
 * COPY t TO reads with the snapshot its portal took before any hook runs, so
 * no read barrier can come first (review 3 #9): under 'linearizable' it is
 * refused; COPY (SELECT ...) TO runs the executor and its barrier.
 */
static void check_linearizable_copy(Node *stmt)
{
	CopyStmt *cs = (CopyStmt *)stmt;
	const char *name;

	if (dr_read_consistency != DR_READ_LINEARIZABLE || !IsA(stmt, CopyStmt) || cs->is_from ||
	    cs->relation == NULL || !rv_replicated(cs->relation))
		return;
	/* (as the statement named it, quoted where SQL needs it: the hint is SQL) */
	name = quote_qualified_identifier(cs->relation->schemaname, cs->relation->relname);
	ereport(ERROR,
	        (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
	         errmsg("COPY %s TO is not a linearizable read", name),
	         errdetail("COPY of a table reads a snapshot taken before a read barrier "
	                   "could run."),
	         errhint("With dragonraft.read_consistency = 'linearizable', copy the rows with "
	                 "COPY (SELECT * FROM %s) TO.",
	                 name)));
}

/* One of dragonraft's triggers (capture, truncate capture, refused guard). */
static bool ours(const char *trigname)
{
	return trigname != NULL && strncmp(trigname, "dragonraft_", strlen("dragonraft_")) == 0;
}

/*
 * A trigger change that would forge, stop or bypass capture, or make a user
 * trigger fire in the apply worker (ENABLE ALWAYS/REPLICA: its writes would
 * reach the followers twice): refused everywhere, dragonraft.execute()
 * included (every member refuses it alike); NULL if it is none.
 */
static const char *trigger_change(Node *stmt)
{
	if (IsA(stmt, CreateTrigStmt)) {
		CreateTrigStmt *t = (CreateTrigStmt *)stmt;
		char *schema, *fn;
		Oid fid;

		DeconstructQualifiedName(t->funcname, &schema, &fn);
		fid = strcmp(fn, "capture") == 0 && schema == NULL
		              ? LookupFuncName(t->funcname, 0, NULL, true)
		              : InvalidOid;
		if (ours(t->trigname) ||
		    (strcmp(fn, "capture") == 0 &&
		     (schema ? strcmp(schema, "dragonraft") == 0
		             : OidIsValid(fid) && get_func_namespace(fid) ==
		                                          get_namespace_oid("dragonraft", true))))
			return "only dragonraft.replicate_table creates dragonraft's triggers";
	} else if (IsA(stmt, RenameStmt) && ((RenameStmt *)stmt)->renameType == OBJECT_TRIGGER) {
		RenameStmt *r = (RenameStmt *)stmt;

		if (ours(r->subname) || ours(r->newname))
			return "dragonraft's triggers cannot be renamed";
	} else if (IsA(stmt, DropStmt) && ((DropStmt *)stmt)->removeType == OBJECT_TRIGGER) {
		ListCell *lc;

		foreach (lc, ((DropStmt *)stmt)->objects)
			if (ours(strVal(llast(lfirst(lc)))))
				return "dragonraft's triggers go with their table";
	} else if (IsA(stmt, AlterTableStmt)) {
		AlterTableStmt *at = (AlterTableStmt *)stmt;
		ListCell *lc;

		foreach (lc, at->cmds) {
			AlterTableCmd *cmd = lfirst(lc);

			switch (cmd->subtype) {
			case AT_EnableTrig:
			case AT_DisableTrig:
				if (ours(cmd->name))
					return "dragonraft's triggers cannot be enabled or "
					       "disabled";
				break;
			case AT_EnableAlwaysTrig:
			case AT_EnableReplicaTrig:
				if (ours(cmd->name) || rv_replicated(at->relation))
					return "the user triggers of a replicated table fire on "
					       "its leader "
					       "only (ENABLE ALWAYS or REPLICA would fire them in "
					       "the apply "
					       "worker too)";
				break;
			case AT_EnableTrigAll:
			case AT_DisableTrigAll:
			case AT_EnableTrigUser:
			case AT_DisableTrigUser:
				if (rv_replicated(at->relation))
					return "dragonraft's triggers cannot be enabled or "
					       "disabled";
				break;
			default:
				break;
			}
		}
	}
	return NULL;
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
	case T_AlterSeqStmt:
		return ((AlterSeqStmt *)stmt)->sequence;
	case T_CreatePolicyStmt:
		return ((CreatePolicyStmt *)stmt)->table;
	case T_AlterPolicyStmt:
		return ((AlterPolicyStmt *)stmt)->table;
	case T_CreateStmt: {
		ListCell *lc;

		foreach (lc, ((CreateStmt *)stmt)->inhRelations)
			if (rv_replicated(lfirst(lc)))
				return lfirst(lc);
		return NULL;
	}
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

/* ---- execute()'s try of its command (dr_execute_group) ---- */

/* serial, bigserial, ...: as parse_utilcmd.c tells them. */
static bool is_serial(const TypeName *t)
{
	const char *n;

	if (t == NULL || list_length(t->names) != 1 || t->pct_type)
		return false;
	n = strVal(linitial(t->names));
	return strcmp(n, "smallserial") == 0 || strcmp(n, "serial2") == 0 ||
	       strcmp(n, "serial") == 0 || strcmp(n, "serial4") == 0 ||
	       strcmp(n, "bigserial") == 0 || strcmp(n, "serial8") == 0;
}

/*
 * A literal that each member converts at parse time with a function that is
 * not immutable ('now', a date or timestamptz read with its own DateStyle and
 * TimeZone, a regclass OID): enums (a label, whatever its OID) and arrays of
 * immutable element types are the same everywhere.
 */
static bool member_literal(Node *node, void *context)
{
	Oid type, input, ioparam;

	if (node == NULL)
		return false;
	if (!IsA(node, Const))
		return expression_tree_walker(node, member_literal, context);
	if (((Const *)node)->constisnull)
		return false;
	type = getBaseType(((Const *)node)->consttype);
	if (OidIsValid(get_element_type(type)))
		type = getBaseType(get_element_type(type));
	if (type_is_enum(type))
		return false;
	getTypeInputInfo(type, &input, &ioparam);
	return func_volatile(input) != PROVOLATILE_IMMUTABLE;
}

/* Would each member compute expr, a fill of existing rows, for itself? */
static bool member_dependent(Node *expr)
{
	return expr != NULL && (contain_mutable_functions_after_planning((Expr *)expr) ||
	                        member_literal(expr, NULL));
}

/*
 * The new column def of a replicated table fills its existing rows on each
 * member: refused unless every member computes the same values (an
 * immutable default, of its own or of its domain, without a literal each
 * member reads its own way; not a serial or identity column, which numbers
 * the rows in each member's own physical order).
 */
static void check_new_column(const char *table, ColumnDef *def)
{
	Node *raw = def->raw_default, *expr = NULL;
	bool numbered = is_serial(def->typeName);
	ListCell *lc;
	Oid typid;
	int32 typmod;

	foreach (lc, def->constraints) {
		Constraint *con = lfirst_node(Constraint, lc);

		if (con->contype == CONSTR_DEFAULT)
			raw = con->raw_expr;
		else if (con->contype == CONSTR_IDENTITY)
			numbered = true;
	}
	if (!is_serial(def->typeName)) { /* (serial names no type) */
		typenameTypeIdAndMod(NULL, def->typeName, &typid, &typmod);
		dr_capture_refuse_type(table, def->colname, typid, InvalidOid);
	}
	if (!numbered) {
		expr = raw != NULL ? cookDefault(make_parsestate(NULL), raw, typid, typmod,
		                                 def->colname, '\0')
		                   : get_typdefault(typid);
		if (!member_dependent(expr))
			return;
	}
	ereport(ERROR,
	        (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
	         errmsg("new column \"%s\" of replicated table \"%s\" would get values that "
	                "differ between members",
	                def->colname, table),
	         errdetail(numbered ? "Each member would number its existing rows in its own "
	                              "order."
	                            : "Each member would compute its default, which is not "
	                              "immutable, for its existing rows."),
	         errhint("Add the column without a default or with a constant one, fill it "
	                 "with UPDATE on the leader (rows replicate), then set its default "
	                 "with ALTER TABLE ... ALTER COLUMN ... SET DEFAULT.")));
}

/*
 * ALTER COLUMN col TYPE of rel, replicated table table (or a parent of it),
 * converts its existing rows on each member: refused unless the conversion
 * (USING, or the cast) is immutable (a cast from text to timestamptz reads
 * each member's TimeZone).
 */
static void check_new_type(Relation rel, const char *table, const char *col, ColumnDef *def)
{
	AttrNumber att = get_attnum(RelationGetRelid(rel), col);
	ParseState *ps;
	Node *expr;
	Oid typid;
	int32 typmod;

	if (att <= 0)
		return; /* ALTER TABLE says what is wrong */
	typenameTypeIdAndMod(NULL, def->typeName, &typid, &typmod);
	dr_capture_refuse_type(table, col, typid, InvalidOid);
	ps = make_parsestate(NULL);
	addNSItemToQuery(ps,
	                 addRangeTableEntryForRelation(ps, rel, AccessShareLock, NULL, false, true),
	                 false, true, true);
	if (def->raw_default != NULL)
		expr = transformExpr(ps, def->raw_default, EXPR_KIND_ALTER_COL_TRANSFORM);
	else {
		Form_pg_attribute a = TupleDescAttr(RelationGetDescr(rel), att - 1);

		expr = (Node *)makeVar(1, att, a->atttypid, a->atttypmod, a->attcollation, 0);
	}
	expr = coerce_to_target_type(ps, expr, exprType(expr), typid, typmod, COERCION_ASSIGNMENT,
	                             COERCE_IMPLICIT_CAST, -1);
	if (!member_dependent(expr))
		return;
	ereport(ERROR,
	        (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
	         errmsg("column \"%s\" of replicated table \"%s\" would be converted to values "
	                "that differ between members",
	                col, table),
	         errdetail("Each member would compute the conversion, which is not immutable, "
	                   "for its existing rows."),
	         errhint("Add a column of the new type, fill it with UPDATE on the leader (rows "
	                 "replicate), then drop the old column and rename the new one.")));
}

/*
 * The group of a replicated table with a column that holds (directly, or in
 * an array, a domain or another composite type: type_id_replicated) the row
 * type of the composite type or table rv that ALTER TYPE (ALTER TABLE, or
 * their RENAME ATTRIBUTE / COLUMN) changes, or of a child of it that the
 * command reaches; 0 if none.  *relid: that table; *rowtype: that row type.
 */
static uint64 rowtype_replicated(RangeVar *rv, Oid *relid, Oid *rowtype)
{
	Oid parent = RangeVarGetRelid(rv, NoLock, true);
	List *rels;
	ListCell *lc;
	uint64 group_id = 0;

	if (!OidIsValid(parent))
		return 0;
	rels = rv->inh && has_subclass(parent) ? find_all_inheritors(parent, NoLock, NULL)
	                                       : list_make1_oid(parent);
	foreach (lc, rels)
		if ((group_id = type_id_replicated(*rowtype = get_rel_type_id(lfirst_oid(lc)),
		                                   relid)) != 0)
			break;
	return group_id;
}

/*
 * Does stmt add, drop or rename an attribute (column) of a row type?  The
 * send form of a composite value carries its attributes, and a member whose
 * row type has another number of them cannot read it (record_recv); one
 * that renamed an attribute alone reads a later command that names it
 * otherwise than the others do: such a change of a row type that a
 * replicated table's column holds must run on every member, in log order
 * (review 38).  (ALTER ATTRIBUTE ... TYPE and ALTER COLUMN ... TYPE:
 * PostgreSQL refuses them while a column uses the type.)
 */
static bool changes_attributes(Node *stmt)
{
	ListCell *lc;

	if (IsA(stmt, RenameStmt))
		return ((RenameStmt *)stmt)->renameType == OBJECT_ATTRIBUTE ||
		       ((RenameStmt *)stmt)->renameType == OBJECT_COLUMN;
	if (IsA(stmt, AlterTableStmt))
		foreach (lc, ((AlterTableStmt *)stmt)->cmds)
			if (lfirst_node(AlterTableCmd, lc)->subtype == AT_AddColumn ||
			    lfirst_node(AlterTableCmd, lc)->subtype == AT_DropColumn)
				return true;
	return false;
}

/*
 * ALTER TYPE ... ADD ATTRIBUTE of a composite type, or ALTER TABLE ... ADD
 * COLUMN of a table (or of a parent of it), whose row type a column of a
 * replicated table holds (rowtype_replicated) gives that column's values
 * the new attribute: one of a type refused in the table itself (values that
 * are OIDs of local objects, or that no member can receive:
 * dr_capture_refuse_type) is refused, with execute() or without (review 38).
 */
static void check_rowtype_refused(Node *stmt)
{
	Oid below = InvalidOid, rowtype = InvalidOid;
	bool looked = false;
	ListCell *lc;

	if (!IsA(stmt, AlterTableStmt))
		return;
	foreach (lc, ((AlterTableStmt *)stmt)->cmds) {
		AlterTableCmd *cmd = lfirst_node(AlterTableCmd, lc);
		ColumnDef *def;
		Oid typid;

		if (cmd->subtype != AT_AddColumn)
			continue;
		def = castNode(ColumnDef, cmd->def);
		if (is_serial(def->typeName) ||
		    !OidIsValid(dr_refused_type(typid = typenameTypeId(NULL, def->typeName))))
			continue;
		if (!looked &&
		    rowtype_replicated(((AlterTableStmt *)stmt)->relation, &below, &rowtype) == 0)
			return;
		looked = true;
		dr_capture_refuse_type(get_rel_name(below), def->colname, typid, rowtype);
	}
}

/*
 * After execute()'s try of ALTER TABLE ... ADD COLUMN ... GENERATED ALWAYS
 * AS (...) STORED on a replicated table: the expression that every member
 * computes, for its existing rows and for every row applied later, must not
 * hold a literal that each member read itself when it ran the command
 * ('now', a timestamptz in its TimeZone, a regclass OID): review 20 found
 * each member's rows stamped with the moment its apply worker ran it.
 */
static void check_generated(AlterTableStmt *at)
{
	Oid relid, below = InvalidOid;
	ListCell *lc;

	if ((rv_replicated(at->relation) == 0 &&
	     replicated_below((Node *)at, at->relation, &below) == 0) ||
	    !OidIsValid(relid = RangeVarGetRelid(at->relation, NoLock, true)))
		return;
	foreach (lc, at->cmds) {
		AlterTableCmd *cmd = lfirst_node(AlterTableCmd, lc);
		const char *col;
		AttrNumber att;
		Relation rel;
		TupleConstr *constr;
		bool member = false;

		if (cmd->subtype != AT_AddColumn)
			continue;
		col = castNode(ColumnDef, cmd->def)->colname;
		att = get_attnum(relid, col);
		if (att <= 0 || get_attgenerated(relid, att) == '\0')
			continue;
		rel = relation_open(relid, NoLock);
		constr = RelationGetDescr(rel)->constr;
		for (int i = 0; constr != NULL && i < constr->num_defval; i++)
			if (constr->defval[i].adnum == att)
				member =
				        member_literal(stringToNode(constr->defval[i].adbin), NULL);
		relation_close(rel, NoLock);
		if (member)
			ereport(ERROR,
			        (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			         errmsg("generated column \"%s\" of replicated table \"%s\" would "
			                "get "
			                "values that differ between members",
			                col,
			                OidIsValid(below) ? get_rel_name(below)
			                                  : at->relation->relname),
			         errdetail("Its expression holds a literal that each member reads "
			                   "itself when it runs the command (such as 'now', a date "
			                   "or time read in its TimeZone, or an OID)."),
			         errhint("Write the expression with constants of types read alike "
			                 "everywhere, or fill an ordinary column on the leader.")));
	}
}

/* The table of a constraint (InvalidOid: a domain's, or none). */
static Oid get_constraint_relid(Oid conid)
{
	HeapTuple tup = SearchSysCache1(CONSTROID, ObjectIdGetDatum(conid));
	Oid relid = InvalidOid;

	if (HeapTupleIsValid(tup)) {
		relid = ((Form_pg_constraint)GETSTRUCT(tup))->conrelid;
		ReleaseSysCache(tup);
	}
	return relid;
}

/*
 * The group of a replicated table whose rows each member checks or computes
 * itself with object (classid, objid): a function, an operator, a text
 * search configuration, dictionary, template or parser in the expression
 * of its stored generated column (the apply recomputes it), its CHECK
 * constraint or one of a domain it uses, its index's expression or
 * predicate (or a partition key above it); 0 if none.  *relid: that table.
 * Followed through pg_depend, which records what an expression names, and
 * what uses those objects: an operator whose code a function is, a text
 * search configuration over a dictionary, a function whose SQL-standard
 * body (BEGIN ATOMIC) calls another.  It does not record the calls in a
 * function body given as a string (LANGUAGE plpgsql, or sql AS '...'): a
 * function reached only through one of those is not found (README).
 * A table of group except (execute() of that group) is passed over.
 */
static uint64 computed_by_replicated(Oid classid, Oid objid, uint64 except, Oid *relid)
{
	List *pending = list_make1(list_make2_oid(classid, objid)), *seen = NIL;
	Relation dep = table_open(DependRelationId, AccessShareLock);
	uint64 group_id = 0;

	while (pending != NIL && group_id == 0) {
		List *obj = linitial(pending);
		SysScanDesc scan;
		HeapTuple tup;
		ListCell *lc;
		bool done = false;

		pending = list_delete_first(pending);
		foreach (lc, seen)
			done |= equal(lfirst(lc), obj);
		if (done)
			continue;
		seen = lappend(seen, obj);
		scan = referencing_scan(dep, linitial_oid(obj), lsecond_oid(obj));
		while (group_id == 0 && (tup = systable_getnext(scan)) != NULL) {
			Form_pg_depend d = (Form_pg_depend)GETSTRUCT(tup);
			Oid tab = InvalidOid;

			switch (d->classid) {
			case ProcedureRelationId:
			case OperatorRelationId:
			case TSConfigRelationId:
			case TSDictionaryRelationId:
			case TSTemplateRelationId:
			case TSParserRelationId:
				pending = lappend(pending, list_make2_oid(d->classid, d->objid));
				break;
			case AttrDefaultRelationId: {
				ObjectAddress col = GetAttrDefaultColumnAddress(d->objid);

				if (OidIsValid(col.objectId) &&
				    get_attgenerated(col.objectId, (AttrNumber)col.objectSubId) !=
				            '\0')
					tab = col.objectId;
				break;
			}
			case ConstraintRelationId:
				tab = get_constraint_relid(d->objid);
				if (!OidIsValid(tab)) {
					HeapTuple con = SearchSysCache1(CONSTROID,
					                                ObjectIdGetDatum(d->objid));

					if (HeapTupleIsValid(con)) {
						Oid typid = ((Form_pg_constraint)GETSTRUCT(con))
						                    ->contypid;

						ReleaseSysCache(con);
						group_id = type_id_replicated(typid, relid);
						if (group_id == except)
							group_id = 0;
					}
				}
				break;
			case RelationRelationId:
				/* an index's expression or predicate, a partition key */
				if (get_rel_relkind(d->objid) == RELKIND_PARTITIONED_TABLE) {
					List *kids = find_all_inheritors(d->objid, AccessShareLock,
					                                 NULL);

					foreach (lc, kids)
						if (group_id == 0 &&
						    (group_id = part_of_replicated(
						             lfirst_oid(lc), AccessShareLock)) !=
						            0) {
							*relid = lfirst_oid(lc);
							if (group_id == except)
								group_id = 0;
						}
				} else if (get_rel_relkind(d->objid) == RELKIND_INDEX)
					tab = IndexGetRelation(d->objid, true);
				break;
			default:
				break;
			}
			if (OidIsValid(tab) &&
			    (group_id = part_of_replicated(tab, AccessShareLock)) != 0) {
				*relid = tab;
				if (group_id == except)
					group_id = 0;
			}
		}
		systable_endscan(scan);
	}
	table_close(dep, AccessShareLock);
	return group_id;
}

/* The hint of DDL refused outside execute(): the call to run instead, with
 * the table's group. */
static int execute_hint(uint64 group_id)
{
	return errhint("Run it as SELECT dragonraft.execute(%llu, '<command>').",
	               (unsigned long long)group_id);
}

/* A change, outside execute(), of an object that members compute or check a
 * replicated table's rows with (computed_by_replicated): refused as DDL on
 * the table is (review 20, and its CHECK and index cases after it). */
static void computed_by(const char *what, Oid relid, uint64 group_id) pg_attribute_noreturn();
static void computed_by(const char *what, Oid relid, uint64 group_id)
{
	ereport(ERROR,
	        (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
	         errmsg("%s is used by table \"%s\", which is replicated by dragonraft: change "
	                "it with dragonraft.execute",
	                what, get_rel_name(relid)),
	         errdetail("Every member computes or checks the table's rows with it itself (a "
	                   "stored generated column, a CHECK constraint, an index): changed on "
	                   "this member only, this member's rows or checks would differ from "
	                   "the other members'."),
	         errhint("Run it as SELECT dragonraft.execute(%llu, '<command>'), and so "
	                 "every change of a function such a table reaches through another "
	                 "function's body: a call in a body given as a string (plpgsql, or "
	                 "sql AS '...') is not checked.",
	                 (unsigned long long)group_id)));
}

/*
 * REVOKE (EXECUTE) of a function that members compute or check a replicated
 * table's rows with (computed_by_replicated), outside execute(): a member's
 * apply runs them as the table's owner, and a function call checks EXECUTE
 * for that role; revoked on one member only (REVOKE ... FROM PUBLIC, a DBA
 * hardening one server), its apply fails on the next row with "permission
 * denied for function" and the group stops there (review 22, TAP 072).  A
 * GRANT only adds, and GRANT OPTION FOR only the option: not refused.
 */
static void other_group(const char *what, uint64 group_id) pg_attribute_noreturn();

static void check_revoke(GrantStmt *gs)
{
	uint64 group_id;
	List *funcs = NIL;
	ListCell *lc;
	Oid relid = InvalidOid;

	if (gs->is_grant || gs->grant_option ||
	    (gs->objtype != OBJECT_FUNCTION && gs->objtype != OBJECT_PROCEDURE &&
	     gs->objtype != OBJECT_ROUTINE))
		return;
	if (gs->targtype == ACL_TARGET_OBJECT)
		foreach (lc, gs->objects) {
			Oid funcid = LookupFuncWithArgs(gs->objtype, lfirst(lc), true);

			if (OidIsValid(funcid))
				funcs = lappend_oid(funcs, funcid);
		}
	else if (gs->targtype == ACL_TARGET_ALL_IN_SCHEMA) {
		Relation rel = table_open(ProcedureRelationId, AccessShareLock);
		TableScanDesc scan = table_beginscan_catalog(rel, 0, NULL);
		List *schemas = NIL;
		HeapTuple tup;

		foreach (lc, gs->objects)
			schemas = lappend_oid(schemas, get_namespace_oid(strVal(lfirst(lc)), true));
		while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
			if (list_member_oid(schemas, ((Form_pg_proc)GETSTRUCT(tup))->pronamespace))
				funcs = lappend_oid(funcs, ((Form_pg_proc)GETSTRUCT(tup))->oid);
		table_endscan(scan);
		table_close(rel, AccessShareLock);
	}
	foreach (lc, funcs) {
		group_id = computed_by_replicated(ProcedureRelationId, lfirst_oid(lc),
		                                  dr_execute_group, &relid);
		if (group_id == 0)
			continue;
		if (dr_execute_group != 0)
			other_group(psprintf("table \"%s\", which function %s is used by,",
			                     get_rel_name(relid), format_procedure(lfirst_oid(lc))),
			            group_id);
		ereport(ERROR,
		        (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
		         errmsg("REVOKE on function %s, which table \"%s\" replicated by "
		                "dragonraft uses: run it with dragonraft.execute",
		                format_procedure(lfirst_oid(lc)), get_rel_name(relid)),
		         errdetail("Every member's apply checks or computes the table's rows "
		                   "with it as the table's owner: a privilege revoked on this "
		                   "member only stops its apply of the group."),
		         execute_hint(group_id)));
	}
}

static void other_group(const char *what, uint64 group_id) pg_attribute_noreturn();
static void other_group(const char *what, uint64 group_id)
{
	ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
	                errmsg("%s is replicated by dragonraft group %llu, not by group %llu", what,
	                       (unsigned long long)group_id, (unsigned long long)dr_execute_group),
	                errdetail("The history of each group changes its own tables only: members "
	                          "apply each group's log in its own order."),
	                errhint("Run it as SELECT dragonraft.execute(%llu, '<command>').",
	                        (unsigned long long)group_id)));
}

/* May PUBLIC call function funcid (its default privileges, or an ACL that
 * grants PUBLIC EXECUTE)? */
static bool public_executes(Oid funcid)
{
	HeapTuple tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(funcid));
	bool isnull, granted = true;
	Datum d;

	if (!HeapTupleIsValid(tup))
		return true;
	d = SysCacheGetAttr(PROCOID, tup, Anum_pg_proc_proacl, &isnull);
	if (!isnull) {
		Acl *acl = DatumGetAclP(d);
		AclItem *items = ACL_DAT(acl);

		granted = false;
		for (int i = 0; i < ACL_NUM(acl); i++)
			if (items[i].ai_grantee == ACL_ID_PUBLIC &&
			    (ACLITEM_GET_PRIVS(items[i]) & ACL_EXECUTE) != 0)
				granted = true;
	}
	ReleaseSysCache(tup);
	return granted;
}

/* Does role have the privileges of the roles it is a member of (INHERIT)? */
static bool role_inherits(Oid role)
{
	HeapTuple tup = SearchSysCache1(AUTHOID, ObjectIdGetDatum(role));
	bool inherit = HeapTupleIsValid(tup) && ((Form_pg_authid)GETSTRUCT(tup))->rolinherit;

	if (HeapTupleIsValid(tup))
		ReleaseSysCache(tup);
	return inherit;
}

/* The roles that role is a member of (directly). */
static List *member_of(Oid role)
{
	CatCList *members = SearchSysCacheList1(AUTHMEMMEMROLE, ObjectIdGetDatum(role));
	List *roles = NIL;

	for (int j = 0; j < members->n_members; j++)
		roles = lappend_oid(
		        roles,
		        ((Form_pg_auth_members)GETSTRUCT(&members->members[j]->tuple))->roleid);
	ReleaseSysCacheList(members);
	return roles;
}

/* The roles of roles, and the roles whose privileges they have (an INHERIT
 * role's memberships, recursively). */
static List *privileges_of(List *roles)
{
	roles = list_copy(roles);
	for (int i = 0; i < list_length(roles); i++) {
		if (role_inherits(list_nth_oid(roles, i)))
			roles = list_concat_unique_oid(roles, member_of(list_nth_oid(roles, i)));
	}
	return roles;
}

/* The owner of relation relid, or InvalidOid. */
static Oid rel_owner(Oid relid)
{
	HeapTuple tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Oid owner = InvalidOid;

	if (HeapTupleIsValid(tup)) {
		owner = ((Form_pg_class)GETSTRUCT(tup))->relowner;
		ReleaseSysCache(tup);
	}
	return owner;
}

/*
 * The group of a replicated table whose owner has the privileges of roles
 * (and of what they inherit: privileges_of) through one of grantees (itself,
 * or a role that inherits), where one of those roles holds EXECUTE on a
 * function that members compute or check the table's rows with
 * (computed_by_replicated) and PUBLIC may not call it; 0 if none.  *relid:
 * that table; *func: that function.  Conservative: whether the owner keeps
 * the privilege another way is not looked at.
 */
static uint64 owner_privilege_via(List *roles, List *grantees, Oid *relid, Oid *func)
{
	Relation sd = table_open(SharedDependRelationId, AccessShareLock);
	uint64 group_id = 0;
	ListCell *lc, *g;

	foreach (lc, privileges_of(roles)) {
		ScanKeyData key[2];
		SysScanDesc scan;
		HeapTuple tup;

		ScanKeyInit(&key[0], Anum_pg_shdepend_refclassid, BTEqualStrategyNumber, F_OIDEQ,
		            ObjectIdGetDatum(AuthIdRelationId));
		ScanKeyInit(&key[1], Anum_pg_shdepend_refobjid, BTEqualStrategyNumber, F_OIDEQ,
		            ObjectIdGetDatum(lfirst_oid(lc)));
		scan = systable_beginscan(sd, SharedDependReferenceIndexId, true, NULL, 2, key);
		while (group_id == 0 && (tup = systable_getnext(scan)) != NULL) {
			Form_pg_shdepend d = (Form_pg_shdepend)GETSTRUCT(tup);
			Oid owner;
			bool loses = false;

			if (d->dbid != MyDatabaseId || d->deptype != SHARED_DEPENDENCY_ACL ||
			    d->classid != ProcedureRelationId || public_executes(d->objid) ||
			    (group_id = computed_by_replicated(d->classid, d->objid,
			                                       dr_execute_group, relid)) == 0)
				continue;
			*func = d->objid;
			owner = rel_owner(*relid);
			if (OidIsValid(owner) && !superuser_arg(owner))
				foreach (g, grantees)
					loses |= has_privs_of_role(owner, lfirst_oid(g)) &&
					         (lfirst_oid(g) == owner ||
					          role_inherits(lfirst_oid(g)));
			if (!loses)
				group_id = 0;
		}
		systable_endscan(scan);
		if (group_id != 0)
			break;
	}
	table_close(sd, AccessShareLock);
	return group_id;
}

/*
 * REVOKE role FROM grantee, and ALTER ROLE grantee NOINHERIT (it loses the
 * privileges of the roles it is a member of), through which the owner of a
 * replicated table has EXECUTE on a function that members compute or check
 * the table's rows with (owner_privilege_via): the owner's apply would lose
 * it on this member only, as with check_revoke's REVOKE ON FUNCTION (its
 * apply fails with "permission denied for function").  ADMIN OPTION FOR
 * only: not refused.
 */
static void check_role_privileges(Node *stmt)
{
	List *roles = NIL, *grantees = NIL;
	ListCell *lc;
	Oid relid = InvalidOid, func = InvalidOid, role;
	uint64 group_id;
	const char *what;

	if (IsA(stmt, GrantRoleStmt) && !((GrantRoleStmt *)stmt)->is_grant &&
	    !((GrantRoleStmt *)stmt)->admin_opt) {
		GrantRoleStmt *gs = (GrantRoleStmt *)stmt;

		foreach (lc, gs->granted_roles)
			if (OidIsValid(role = get_role_oid(((AccessPriv *)lfirst(lc))->priv_name,
			                                   true)))
				roles = lappend_oid(roles, role);
		foreach (lc, gs->grantee_roles)
			if (OidIsValid(role = get_rolespec_oid(lfirst(lc), true)))
				grantees = lappend_oid(grantees, role);
		what = "REVOKE of a role";
	} else if (IsA(stmt, AlterRoleStmt)) {
		AlterRoleStmt *as = (AlterRoleStmt *)stmt;
		bool noinherit = false;

		foreach (lc, as->options)
			if (strcmp(lfirst_node(DefElem, lc)->defname, "inherit") == 0)
				noinherit = !defGetBoolean(lfirst(lc));
		if (!noinherit || !OidIsValid(role = get_rolespec_oid(as->role, true)) ||
		    !role_inherits(role))
			return;
		roles = member_of(role);
		grantees = list_make1_oid(role);
		what = "ALTER ROLE ... NOINHERIT of a role";
	} else
		return;
	if (roles == NIL || grantees == NIL ||
	    (group_id = owner_privilege_via(roles, grantees, &relid, &func)) == 0)
		return;
	if (dr_execute_group != 0)
		other_group(psprintf("table \"%s\", which function %s is used by,",
		                     get_rel_name(relid), format_procedure(func)),
		            group_id);
	ereport(ERROR,
	        (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
	         errmsg("%s through which the owner of table \"%s\", which is replicated by "
	                "dragonraft, may call function %s: run it with dragonraft.execute",
	                what, get_rel_name(relid), format_procedure(func)),
	         errdetail("Every member's apply checks or computes the table's rows with it as "
	                   "the table's owner: a privilege revoked on this member only stops its "
	                   "apply of the group."),
	         execute_hint(group_id)));
}

/*
 * Statements that may take EXECUTE on a function away from a role: REVOKE
 * ON FUNCTION (and ALL FUNCTIONS IN SCHEMA), DROP OWNED (it revokes), REVOKE
 * of a role, ALTER ROLE (NOINHERIT, NOSUPERUSER), DROP ROLE (of a role in
 * between), and a new owner of a function (OWNER TO, REASSIGN OWNED: the old
 * owner's grants move); or that give a replicated table an owner, or a
 * function to call, that the owner may not call: ALTER TABLE (OWNER TO, ADD
 * CONSTRAINT, a column of a domain), ALTER DOMAIN ADD CONSTRAINT, CREATE
 * INDEX, CREATE OR REPLACE FUNCTION (a SQL-standard body's calls).
 */
static bool may_revoke_execute(Node *stmt)
{
	switch (nodeTag(stmt)) {
	case T_GrantStmt:
		return !((GrantStmt *)stmt)->is_grant;
	case T_GrantRoleStmt:
		return !((GrantRoleStmt *)stmt)->is_grant;
	case T_DropOwnedStmt:
	case T_ReassignOwnedStmt:
	case T_AlterRoleStmt:
	case T_DropRoleStmt:    /* the memberships of the roles dropped go */
	case T_AlterTableStmt:  /* OWNER TO; a CHECK, a column of a domain */
	case T_AlterDomainStmt: /* a CHECK */
	case T_IndexStmt:       /* an expression, a predicate */
		return true;
	case T_CreateFunctionStmt: /* a new body that calls another (BEGIN ATOMIC) */
		return ((CreateFunctionStmt *)stmt)->replace;
	case T_AlterOwnerStmt:
		return ((AlterOwnerStmt *)stmt)->objectType == OBJECT_FUNCTION ||
		       ((AlterOwnerStmt *)stmt)->objectType == OBJECT_PROCEDURE ||
		       ((AlterOwnerStmt *)stmt)->objectType == OBJECT_ROUTINE;
	default:
		return false;
	}
}

/* Scan of what object (classid, objid) depends on. */
static SysScanDesc depender_scan(Relation dep, Oid classid, Oid objid)
{
	ScanKeyData key[2];

	ScanKeyInit(&key[0], Anum_pg_depend_classid, BTEqualStrategyNumber, F_OIDEQ,
	            ObjectIdGetDatum(classid));
	ScanKeyInit(&key[1], Anum_pg_depend_objid, BTEqualStrategyNumber, F_OIDEQ,
	            ObjectIdGetDatum(objid));
	return systable_beginscan(dep, DependDependerIndexId, true, NULL, 2, key);
}

/* Add to *funcs the functions that object (classid, objid) calls: those it
 * depends on, operators' functions, and what a function with a SQL-standard
 * body calls in turn. */
static void calls_of(Relation dep, Oid classid, Oid objid, List **funcs)
{
	List *pending = list_make1(list_make2_oid(classid, objid));

	while (pending != NIL) {
		List *obj = linitial(pending);
		SysScanDesc scan = depender_scan(dep, linitial_oid(obj), lsecond_oid(obj));
		HeapTuple tup;

		pending = list_delete_first(pending);
		while ((tup = systable_getnext(scan)) != NULL) {
			Form_pg_depend d = (Form_pg_depend)GETSTRUCT(tup);
			Oid f = InvalidOid;

			if (d->refclassid == ProcedureRelationId)
				f = d->refobjid;
			else if (d->refclassid == OperatorRelationId)
				f = get_opcode(d->refobjid);
			if (!OidIsValid(f) || list_member_oid(*funcs, f))
				continue;
			*funcs = lappend_oid(*funcs, f);
			pending = lappend(pending, list_make2_oid(ProcedureRelationId, f));
		}
		systable_endscan(scan);
	}
}

/*
 * Append to *types the types of relation relid's columns (not dropped), read
 * from the catalog without a lock on the relation: one held by another
 * session (a LOCK TABLE, execute()'s DDL, a follower's apply batch) made an
 * ALTER ROLE ... PASSWORD wait for it, or deadlock.
 */
static void attr_types(Oid relid, List **types)
{
	HeapTuple tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	int natts;

	if (!HeapTupleIsValid(tup))
		return;
	natts = ((Form_pg_class)GETSTRUCT(tup))->relnatts;
	ReleaseSysCache(tup);
	for (int i = 1; i <= natts; i++) {
		tup = SearchSysCache2(ATTNUM, ObjectIdGetDatum(relid), Int16GetDatum(i));
		if (!HeapTupleIsValid(tup))
			continue;
		if (!((Form_pg_attribute)GETSTRUCT(tup))->attisdropped)
			*types = lappend_oid(*types, ((Form_pg_attribute)GETSTRUCT(tup))->atttypid);
		ReleaseSysCache(tup);
	}
}

/*
 * Add to *funcs the functions of the CHECK constraints of the domains that a
 * value of type typid holds, at any depth: the type itself, a domain's base
 * domain, an array's elements, a composite type's attributes, a range's
 * subtype, a multirange's range.  A member's apply receives each column's
 * value through its type's receive function, which checks every domain on
 * the way (domain_recv through array_recv, record_recv, range_recv).
 */
static void domain_calls(Relation dep, Oid typid, List **funcs)
{
	List *pending = list_make1_oid(typid), *seen = NIL;

	while (pending != NIL) {
		Oid t = linitial_oid(pending), elem;
		char typtype;

		pending = list_delete_first(pending);
		if (!OidIsValid(t) || list_member_oid(seen, t))
			continue;
		seen = lappend_oid(seen, t);
		typtype = get_typtype(t);
		if (typtype == TYPTYPE_DOMAIN) {
			SysScanDesc scan = referencing_scan(dep, TypeRelationId, t);
			HeapTuple tup;
			HeapTuple typtup = SearchSysCache1(TYPEOID, ObjectIdGetDatum(t));

			while ((tup = systable_getnext(scan)) != NULL)
				if (((Form_pg_depend)GETSTRUCT(tup))->classid ==
				    ConstraintRelationId)
					calls_of(dep, ConstraintRelationId,
					         ((Form_pg_depend)GETSTRUCT(tup))->objid, funcs);
			systable_endscan(scan);
			if (HeapTupleIsValid(typtup)) {
				/* the base type one level down (a domain over a domain) */
				pending = lappend_oid(
				        pending, ((Form_pg_type)GETSTRUCT(typtup))->typbasetype);
				ReleaseSysCache(typtup);
			}
		} else if (OidIsValid(elem = get_element_type(t)))
			pending = lappend_oid(pending, elem);
		else if (typtype == TYPTYPE_COMPOSITE)
			attr_types(get_typ_typrelid(t), &pending);
		else if (typtype == TYPTYPE_RANGE)
			pending = lappend_oid(pending, get_range_subtype(t));
		else if (typtype == TYPTYPE_MULTIRANGE)
			pending = lappend_oid(pending, get_multirange_range(t));
	}
	list_free(seen);
}

/*
 * The functions each member calls as replicated table relid's owner when it
 * applies the table's rows: those of its CHECK constraints, index
 * expressions and predicates, stored generated columns, and the CHECK
 * constraints of the domains its columns' values hold (domain_calls).
 * (Defaults and user triggers run on the leader only.)
 */
static List *apply_calls(Relation dep, Oid relid)
{
	List *funcs = NIL, *types = NIL;
	SysScanDesc scan = referencing_scan(dep, RelationRelationId, relid);
	HeapTuple tup;
	ListCell *lc;

	while ((tup = systable_getnext(scan)) != NULL) {
		Form_pg_depend d = (Form_pg_depend)GETSTRUCT(tup);

		if (d->classid == ConstraintRelationId ||
		    (d->classid == RelationRelationId &&
		     get_rel_relkind(d->objid) == RELKIND_INDEX))
			calls_of(dep, d->classid, d->objid, &funcs);
		else if (d->classid == AttrDefaultRelationId &&
		         get_attgenerated(relid, (AttrNumber)d->refobjsubid) != '\0')
			calls_of(dep, d->classid, d->objid, &funcs);
	}
	systable_endscan(scan);
	attr_types(relid, &types);
	foreach (lc, types)
		domain_calls(dep, lfirst_oid(lc), &funcs);
	return funcs;
}

/*
 * The replicated tables of this database whose owner (not a superuser) may
 * not call a function that members call as that owner when they apply the
 * table's rows (apply_calls): a list of (table, function) pairs.
 */
List *dr_owners_lacking(void)
{
	Relation trig = table_open(TriggerRelationId, AccessShareLock);
	Relation dep = table_open(DependRelationId, AccessShareLock);
	TableScanDesc scan = table_beginscan_catalog(trig, 0, NULL);
	List *lacking = NIL;
	HeapTuple tup;

	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL) {
		Form_pg_trigger t = (Form_pg_trigger)GETSTRUCT(tup);
		Oid owner;
		ListCell *lc;

		if (strcmp(NameStr(t->tgname), DR_CAPTURE_TRIGGER) != 0 ||
		    !OidIsValid(owner = rel_owner(t->tgrelid)) || superuser_arg(owner))
			continue;
		foreach (lc, apply_calls(dep, t->tgrelid))
			if (pg_proc_aclcheck(lfirst_oid(lc), owner, ACL_EXECUTE) != ACLCHECK_OK)
				lacking = lappend(lacking,
				                  list_make2_oid(t->tgrelid, lfirst_oid(lc)));
	}
	table_endscan(scan);
	table_close(dep, AccessShareLock);
	table_close(trig, AccessShareLock);
	return lacking;
}

/*
 * After a statement that may take EXECUTE away (may_revoke_execute): one
 * that left a replicated table's owner unable to call a function it could
 * call before, and that members call as the owner when they apply the
 * table's rows, is refused, also through execute() (on the proposer, and
 * alike on every member: the leader would go on taking rows, whose CHECK
 * runs as the writer, and every other member's apply would stop).  before:
 * dr_owners_lacking() before the statement.
 */
void dr_check_owners_execute(List *before)
{
	ListCell *lc;

	foreach (lc, dr_owners_lacking()) {
		List *pair = lfirst(lc);
		ListCell *b;
		bool known = false;

		foreach (b, before)
			known |= equal(lfirst(b), pair);
		if (known)
			continue;
		ereport(ERROR,
		        (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
		         errmsg("after this command, role \"%s\", the owner of table \"%s\" "
		                "replicated by dragonraft, may not call function %s",
		                GetUserNameFromId(rel_owner(linitial_oid(pair)), false),
		                get_rel_name(linitial_oid(pair)),
		                format_procedure(lsecond_oid(pair))),
		         errdetail("Members apply the table's rows as its owner, and call the "
		                   "function then (a CHECK constraint, an index expression or a "
		                   "generated column): their apply would stop."),
		         errhint("Grant the owner EXECUTE on the function first, or give the table "
		                 "another owner, through dragonraft.execute.")));
	}
}

/* Outside execute(): a command that changes a type that table relid of group
 * group_id uses (type_replicated, rowtype_replicated, check_view_rowtype). */
static void changes_type_of(Oid relid, uint64 group_id) pg_attribute_noreturn();
static void changes_type_of(Oid relid, uint64 group_id)
{
	ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
	                errmsg("this command changes a type that table \"%s\" uses, which is "
	                       "replicated by dragonraft: run it with dragonraft.execute",
	                       get_rel_name(relid)),
	                errdetail("The members of its group must read, check and name it alike: a "
	                          "value that only this node accepts stops the others' apply, and "
	                          "so does a later command that names the type, or alters it, "
	                          "where it has another name, schema or owner."),
	                execute_hint(group_id)));
}

/* The number of attributes of relation relid (dropped ones too); 0 if none. */
static pg_noinline int rel_natts(Oid relid)
{
	HeapTuple tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	int natts = 0;

	if (HeapTupleIsValid(tup)) {
		natts = ((Form_pg_class)GETSTRUCT(tup))->relnatts;
		ReleaseSysCache(tup);
	}
	return natts;
}

/* CREATE OR REPLACE VIEW, by a writer or execute()'s try: the attributes the
 * view has before it (check_view_rowtype); 0 if none or another statement. */
static int view_natts_before(Node *stmt)
{
	if (!IsA(stmt, ViewStmt) || !((ViewStmt *)stmt)->replace ||
	    (dr_execute_group == 0 && (dr_is_apply_worker || dr_internal_ddl != 0)))
		return 0;
	return rel_natts(RangeVarGetRelid(((ViewStmt *)stmt)->view, NoLock, true));
}

/*
 * After CREATE OR REPLACE VIEW of a view that had natts attributes: columns
 * it added to the view's row type, which a column of a replicated table may
 * hold, as ALTER TYPE ... ADD ATTRIBUTE does (check_rowtype_refused,
 * changes_attributes; review 38).
 */
static void check_view_rowtype(ViewStmt *vs, int natts)
{
	Oid relid = RangeVarGetRelid(vs->view, NoLock, true), below = InvalidOid;
	uint64 group_id;
	Relation rel;

	if (natts == 0 || !OidIsValid(relid) || rel_natts(relid) == natts ||
	    (group_id = type_id_replicated(get_rel_type_id(relid), &below)) == 0)
		return;
	rel = relation_open(relid, NoLock); /* (CREATE OR REPLACE VIEW locked it) */
	for (int i = natts; i < RelationGetNumberOfAttributes(rel); i++)
		dr_capture_refuse_type(get_rel_name(below),
		                       NameStr(TupleDescAttr(RelationGetDescr(rel), i)->attname),
		                       TupleDescAttr(RelationGetDescr(rel), i)->atttypid,
		                       rel->rd_rel->reltype);
	relation_close(rel, NoLock);
	if (dr_execute_group == 0)
		changes_type_of(below, group_id);
	if (group_id != dr_execute_group)
		other_group(psprintf("table \"%s\"", get_rel_name(below)), group_id);
}

/*
 * A statement of the command that execute() of group dr_execute_group tries
 * here, before it proposes it: it may change that group's replicated tables
 * (another group's: object_access too), but not so that members would hold
 * different values.  (The apply worker runs what passed here.)
 */
static void check_execute(Node *stmt)
{
	RangeVar *rv = ddl_target(stmt);
	uint64 group_id = rv != NULL ? rv_replicated(rv) : 0, rowtype_group, type_group,
	       owned_group;
	Oid below = InvalidOid, rowtype, kid = InvalidOid;
	ObjectAddress owned;
	const char *table;
	List *cmds;
	LOCKMODE lockmode;
	Relation rel;
	ListCell *lc;

	if (((type_group = type_replicated(stmt, &below)) != 0 ||
	     (type_group = schema_replicated(stmt, &below)) != 0) &&
	    type_group != dr_execute_group)
		other_group(psprintf("table \"%s\"", get_rel_name(below)), type_group);
	check_rowtype_refused(stmt);
	if (changes_attributes(stmt) &&
	    (rowtype_group = rowtype_replicated(ddl_target(stmt), &below, &rowtype)) != 0 &&
	    rowtype_group != dr_execute_group)
		other_group(psprintf("table \"%s\"", get_rel_name(below)), rowtype_group);
	if (IsA(stmt, GrantStmt))
		check_revoke((GrantStmt *)stmt);
	else
		check_role_privileges(stmt);
	if ((owned_group = owned_changed(stmt, &owned, &below)) != 0 &&
	    owned_group != dr_execute_group)
		other_group(psprintf("table \"%s\"", get_rel_name(below)), owned_group);
	if (group_id == 0 && rv != NULL && (group_id = replicated_below(stmt, rv, &kid)) != 0 &&
	    group_id != dr_execute_group)
		other_group(psprintf("table \"%s\"", get_rel_name(kid)), group_id);
	if (group_id != 0 && group_id != dr_execute_group)
		other_group(psprintf("table \"%s\"", rv->relname), group_id);
	if (group_id == 0 || !IsA(stmt, AlterTableStmt))
		return;
	/* the lock ALTER TABLE takes next (no upgrade from a weaker one) */
	cmds = ((AlterTableStmt *)stmt)->cmds;
	lockmode = AlterTableGetLockLevel(cmds);
	rel = relation_openrv(rv, lockmode);
	/* the replicated table: rv's, or one it reaches (a child, a typed table) */
	table = OidIsValid(kid) ? get_rel_name(kid) : RelationGetRelationName(rel);
	foreach (lc, cmds) {
		AlterTableCmd *cmd = lfirst_node(AlterTableCmd, lc);

		if (cmd->subtype == AT_AddColumn)
			check_new_column(table, castNode(ColumnDef, cmd->def));
		else if (cmd->subtype == AT_AlterColumnType)
			check_new_type(rel, table, cmd->name, castNode(ColumnDef, cmd->def));
	}
	relation_close(rel, NoLock);
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

static void next_utility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
                         ProcessUtilityContext context, ParamListInfo params,
                         QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	if (prev_utility)
		prev_utility(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params, queryEnv,
		                        dest, qc);
}

/*
 * ALTER FUNCTION (PROCEDURE, ROUTINE) of a function whose actions are only
 * COST, ROWS, PARALLEL or LEAKPROOF: estimates and planner hints, which
 * change no value a member computes or checks a replicated table's rows
 * with (a CHECK, a stored generated column, an index expression): the
 * function's OID, else InvalidOid.  Everything else still counts (object_access):
 * its body (CREATE OR REPLACE), STRICT / CALLED ON NULL INPUT (the result for
 * a NULL), SECURITY DEFINER / INVOKER and OWNER (whose privileges it runs
 * with), SET / RESET of a setting (what it computes with), SUPPORT (the
 * planner's rewrites of its calls), its volatility (an index expression or
 * generated column needs IMMUTABLE: a later execute() of CREATE INDEX on it
 * would pass the try and fail on this member), RENAME and SET SCHEMA (the
 * OID is kept, but a later execute() naming it would mean another function,
 * or none, here).
 */
static Oid plan_only_alter(Node *stmt)
{
	AlterFunctionStmt *af;
	ListCell *lc;

	if (!IsA(stmt, AlterFunctionStmt))
		return InvalidOid;
	af = (AlterFunctionStmt *)stmt;
	foreach (lc, af->actions) {
		DefElem *d = lfirst_node(DefElem, lc);

		if (strcmp(d->defname, "cost") != 0 && strcmp(d->defname, "rows") != 0 &&
		    strcmp(d->defname, "parallel") != 0 && strcmp(d->defname, "leakproof") != 0)
			return InvalidOid;
	}
	return LookupFuncWithArgs(af->objtype, af->func, true);
}

static void utility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
                    ProcessUtilityContext context, ParamListInfo params, QueryEnvironment *queryEnv,
                    DestReceiver *dest, QueryCompletion *qc)
{
	Node *stmt = pstmt->utilityStmt;
	int outer_depth = call_depth;
	CommandId outer_cid = dr_truncate_cid;
	Oid outer_func = plan_only_func;
	int view_natts = view_natts_before(stmt);
	/* (execute() checks its whole command: try_here) */
	bool revokes = dr_execute_group == 0 && !dr_is_apply_worker && dr_internal_ddl == 0 &&
	               may_revoke_execute(stmt);
	List *lacking = revokes ? dr_owners_lacking() : NIL;

	if (IsA(stmt, TransactionStmt)) {
		TransactionStmt *ts = (TransactionStmt *)stmt;

		if (ts->kind == TRANS_STMT_BEGIN || ts->kind == TRANS_STMT_START)
			explicit_block_lxid = MyProc->lxid;
		else if ((ts->kind == TRANS_STMT_COMMIT || ts->kind == TRANS_STMT_ROLLBACK) &&
		         ts->chain)
			explicit_block_lxid =
			        MyProc->lxid + 1; /* the chained one: the next local id */
	}
	if (IsA(stmt, DropStmt) && ((DropStmt *)stmt)->removeType == OBJECT_EXTENSION) {
		ListCell *lc;

		foreach (lc, ((DropStmt *)stmt)->objects)
			if (strcmp(strVal(lfirst(lc)), "dragonraft") == 0 &&
			    OidIsValid(get_extension_oid("dragonraft", true)))
				dr_check_extension_drop(); /* (IF EXISTS elsewhere: a NOTICE) */
	}
	if (dr_internal_ddl == 0) {
		const char *refused = trigger_change(stmt);

		if (refused != NULL)
			ereport(ERROR,
			        (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE), errmsg("%s", refused)));
	}
	if (dr_execute_group != 0)
		check_execute(stmt);
	else if (!dr_is_apply_worker && dr_internal_ddl == 0) {
		RangeVar *rv = ddl_target(stmt);
		Oid below = InvalidOid, rowtype;
		ObjectAddress owned;
		uint64 group_id;

		check_rowtype_refused(stmt);
		if ((group_id = type_replicated(stmt, &below)) != 0 ||
		    (changes_attributes(stmt) &&
		     (group_id = rowtype_replicated(ddl_target(stmt), &below, &rowtype)) != 0))
			changes_type_of(below, group_id);
		if ((group_id = schema_replicated(stmt, &below)) != 0)
			ereport(ERROR,
			        (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			         errmsg("this command changes the schema of table \"%s\", or of "
			                "a type or function it uses, which is replicated by "
			                "dragonraft: run it with dragonraft.execute",
			                get_rel_name(below)),
			         errdetail("Renamed, or given another owner, on this member only, "
			                   "a later command that names the schema, or creates in "
			                   "it, would fail on some members only and stop their "
			                   "apply."),
			         execute_hint(group_id)));
		if (IsA(stmt, GrantStmt))
			check_revoke((GrantStmt *)stmt);
		else
			check_role_privileges(stmt);
		if ((group_id = owned_changed(stmt, &owned, &below)) != 0)
			owned_refused(stmt, &owned, below, group_id);
		if (rv != NULL && nodeTag(stmt) != T_DropStmt && !rv_replicated(rv) &&
		    (group_id = replicated_below(stmt, rv, &below)) != 0)
			ereport(ERROR,
			        (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			         errmsg("this command on \"%s\" changes table \"%s\", which is "
			                "replicated by dragonraft: run it with dragonraft.execute",
			                rv->relname, get_rel_name(below)),
			         errdetail("DDL on a replicated table must run on every member of "
			                   "its group in log order, also when it reaches the table "
			                   "from a parent table or from its type."),
			         execute_hint(group_id)));
		if (rv != NULL && (group_id = rv_replicated(rv)) != 0)
			ereport(ERROR,
			        (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			         errmsg("table \"%s\" is replicated by dragonraft: change it with "
			                "dragonraft.execute",
			                rv->relname),
			         errdetail("DDL on a replicated table must run on every member of "
			                   "its "
			                   "group in log order."),
			         execute_hint(group_id)));
		check_data_targets(stmt);
		check_linearizable_copy(stmt);
		if (!dr_capture_other_writes() && !writes_nothing(stmt))
			dr_capture_note_other_write();
	}
	/* What the statement's own hooks read while it runs, restored after it
	 * (an error too). */
	if (IsA(stmt, CallStmt))
		call_depth++;
	else if (IsA(stmt, TruncateStmt))
		/* Its capture orders it by the command that truncated (capture.c). */
		dr_truncate_cid = GetCurrentCommandId(false);
	/* (InvalidOid for any other statement, one nested in it too: an event
	 * trigger's ALTER FUNCTION ... RENAME during ALTER FUNCTION ... COST) */
	plan_only_func = plan_only_alter(stmt);
	PG_TRY();
	{
		next_utility(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
	}
	PG_FINALLY();
	{
		call_depth = outer_depth;
		dr_truncate_cid = outer_cid;
		plan_only_func = outer_func;
	}
	PG_END_TRY();
	if (dr_execute_group != 0 && IsA(stmt, AlterTableStmt))
		check_generated((AlterTableStmt *)stmt);
	if (view_natts != 0)
		check_view_rowtype((ViewStmt *)stmt, view_natts);
	if (revokes)
		dr_check_owners_execute(lacking);
}

bool dr_utility_explicit_block(void)
{
	return IsTransactionBlock() && explicit_block_lxid == MyProc->lxid;
}

bool dr_utility_in_call(void)
{
	return call_depth > 0;
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
	    (eflags & EXEC_FLAG_EXPLAIN_ONLY))
		return;
	/* The apply writes rows with ExecSimpleRelation*, never through here: a
	 * statement here that writes a replicated table is a trigger's that fires
	 * on apply (ENABLE ALWAYS or REPLICA).  The leader's run of that trigger
	 * wrote the table already, and that write is in the log: made again
	 * here, it would be made twice on this member (review 20, TAP 063). */
	if (dr_is_apply_worker) {
		foreach (lc, ps->resultRelations) {
			Index rti = lfirst_int(lc);
			ResultRelInfo *ri = qd->estate->es_result_relations
			                            ? qd->estate->es_result_relations[rti - 1]
			                            : NULL;

			if (ri != NULL &&
			    dr_capture_rel_replicated(ri->ri_RelationDesc, NULL, NULL))
				ereport(ERROR,
				        (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				         errmsg("a trigger that fires on apply writes replicated "
				                "table "
				                "\"%s\"",
				                RelationGetRelationName(ri->ri_RelationDesc)),
				         errdetail("The leader's run of the trigger wrote it, and "
				                   "that "
				                   "write comes through the log: made here too, it "
				                   "would "
				                   "be made twice on this member."),
				         errhint("Have the trigger skip the write when "
				                 "session_replication_role is replica, or make it "
				                 "ENABLE "
				                 "(it fires on the leader only) with "
				                 "dragonraft.execute.")));
		}
		return;
	}
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

/* The table of a capture trigger, or InvalidOid. */
static Oid capture_trigger_table(Oid trigid)
{
	Relation tgrel = table_open(TriggerRelationId, AccessShareLock);
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple tup;
	Oid relid = InvalidOid;

	ScanKeyInit(&key, Anum_pg_trigger_oid, BTEqualStrategyNumber, F_OIDEQ,
	            ObjectIdGetDatum(trigid));
	scan = systable_beginscan(tgrel, TriggerOidIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup)) {
		Form_pg_trigger t = (Form_pg_trigger)GETSTRUCT(tup);

		if (strcmp(NameStr(t->tgname), DR_CAPTURE_TRIGGER) == 0 ||
		    strcmp(NameStr(t->tgname), DR_TRUNCATE_TRIGGER) == 0)
			relid = t->tgrelid;
	}
	systable_endscan(scan);
	table_close(tgrel, AccessShareLock);
	return relid;
}

/*
 * A drop that takes a replicated table, a column, an index or an owned
 * sequence of one, or its capture trigger, with it (DROP SCHEMA / TYPE /
 * DOMAIN ... CASCADE, DROP INDEX, DROP SEQUENCE, DROP EXTENSION) is refused
 * outside dragonraft.execute(): a statement list cannot see every CASCADE.
 * PostgreSQL's own internal drops (REINDEX CONCURRENTLY, rewrites) pass.
 */
static void object_access(ObjectAccessType access, Oid classId, Oid objectId, int subId, void *arg)
{
	Oid relid = InvalidOid;
	uint64 group_id = 0;

	if (prev_object_access)
		prev_object_access(access, classId, objectId, subId, arg);
	if (access == OAT_POST_CREATE && noting_made && classId == RelationRelationId &&
	    subId == 0) {
		MemoryContext old = MemoryContextSwitchTo(TopTransactionContext);

		made = lappend_oid(made, objectId);
		MemoryContextSwitchTo(old);
		return;
	}
	/* CREATE OR REPLACE FUNCTION (a post-create of the same OID), ALTER
	 * FUNCTION (its owner too: REASSIGN OWNED), ALTER OPERATOR, ALTER TEXT
	 * SEARCH CONFIGURATION / DICTIONARY of what a replicated table's stored
	 * generated column, CHECK or index uses: members would compute its
	 * column, or check or index its rows, each their own way.  (Not ALTER
	 * FUNCTION ... COST, ROWS, PARALLEL or LEAKPROOF: plan_only_alter.) */
	if ((access == OAT_POST_CREATE || access == OAT_POST_ALTER) && subId == 0 &&
	    !(access == OAT_POST_ALTER && classId == ProcedureRelationId &&
	      objectId == plan_only_func) &&
	    (classId == ProcedureRelationId || classId == OperatorRelationId ||
	     classId == TSConfigRelationId || classId == TSDictionaryRelationId ||
	     classId == TSTemplateRelationId || classId == TSParserRelationId) &&
	    !dr_is_apply_worker && dr_internal_ddl == 0 &&
	    (group_id = computed_by_replicated(classId, objectId, dr_execute_group, &relid)) != 0) {
		/* execute() of another group: members apply each group's log in its
		 * own order (review 22: the try passed over the object's users) */
		if (dr_execute_group != 0)
			other_group(
			        psprintf("table \"%s\", which %s is used by,", get_rel_name(relid),
			                 getObjectDescription(
			                         &(ObjectAddress){classId, objectId, 0}, false)),
			        group_id);
		computed_by(getObjectDescription(&(ObjectAddress){classId, objectId, 0}, false),
		            relid, group_id);
	}
	if (access != OAT_DROP || dr_is_apply_worker || dr_internal_ddl > 0 ||
	    (arg != NULL && (((ObjectAccessDrop *)arg)->dropflags & PERFORM_DELETION_INTERNAL)))
		return;
	if (classId == TriggerRelationId)
		relid = capture_trigger_table(objectId);
	else if (classId == RelationRelationId &&
	         (group_id = part_of_replicated(objectId, NoLock)) != 0)
		relid = objectId;
	else if (classId == ConstraintRelationId || classId == AttrDefaultRelationId) {
		/* a CHECK constraint or a default that DROP FUNCTION ... CASCADE takes
		 * (review 19 F1: the leader alone then took rows the others refuse) */
		Oid tab = classId == ConstraintRelationId
		                  ? get_constraint_relid(objectId)
		                  : GetAttrDefaultColumnAddress(objectId).objectId;

		if (OidIsValid(tab) && (group_id = part_of_replicated(tab, AccessShareLock)) != 0)
			relid = tab;
	}
	if (!OidIsValid(relid))
		return;
	/* execute() of that group (its try of the command) may drop it */
	if (dr_execute_group != 0) {
		if (group_id == 0)
			group_id = part_of_replicated(relid, NoLock);
		if (group_id == 0 || group_id == dr_execute_group)
			return;
		other_group(
		        getObjectDescription(&(ObjectAddress){RelationRelationId, relid, 0}, false),
		        group_id);
	}
	ereport(ERROR,
	        (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
	         errmsg("%s is part of a table replicated by dragonraft: drop it with "
	                "dragonraft.execute",
	                getObjectDescription(&(ObjectAddress){classId, objectId, subId}, false)),
	         errdetail("DDL on a replicated table must run on every member of its group "
	                   "in log order."),
	         execute_hint(group_id != 0 ? group_id : part_of_replicated(relid, NoLock))));
}

void dr_utility_note_made(bool on)
{
	noting_made = on;
	if (on)
		made = NIL; /* (a list of an earlier transaction is gone with its context) */
}

List *dr_utility_made(void)
{
	return made;
}

void dr_utility_init(void)
{
	prev_object_access = object_access_hook;
	object_access_hook = object_access;
	prev_utility = ProcessUtility_hook;
	ProcessUtility_hook = utility;
	prev_executor_start = ExecutorStart_hook;
	ExecutorStart_hook = executor_start;
}
