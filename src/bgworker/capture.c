/*
 * capture.c - capture of a transaction's changes to replicated tables
 * (DESIGN §4): the trigger that replicate_table installs (AFTER ROW INSERT,
 * UPDATE, DELETE and AFTER TRUNCATE FOR EACH STATEMENT) appends each change
 * to the transaction's change set in TopTransactionContext, already in the
 * entry's encoding (src/entry): tables by their group-wide id, columns by
 * name, values in their type's binary send format (TOASTed values are
 * detoasted; generated columns are not shipped, members compute them).
 * An UPDATE carries the old key when it changes the key, and the whole old
 * row under REPLICA IDENTITY FULL; a DELETE carries the key (or the row).
 * A table without a replica identity takes INSERTs only, as a publication
 * would.  A subtransaction that rolls back takes its changes with it.
 * The entry lists the changes in execution order: by the command id that
 * made each one (a user trigger's changes may be captured before their
 * cause), in capture order within a command.  A TRUNCATE counts as the
 * command that truncated the table (its pg_class row's, in the TRUNCATE
 * statement), not the one current when its capture fires: a user AFTER
 * TRUNCATE trigger may fire before it and write the table.
 *
 * The first change of a transaction checks that this node leads the group
 * and records the term (xact.c); a change to a table of another group is
 * refused at once.  A transaction that touches no replicated table never
 * reaches this file: its cost is the test in dr_capture_pending().
 */
#include "write.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/pg_attrdef.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_depend.h"
#include "catalog/pg_sequence.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/nodeModifyTable.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/bitmapset.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/hsearch.h"
#include "utils/fmgroids.h"
#include "utils/fmgrprotos.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/typcache.h"

PG_FUNCTION_INFO_V1(dr_capture);
PG_FUNCTION_INFO_V1(dr_registrations_changed);

/* A table the transaction changed, and how its rows are encoded. */
typedef struct CapTable {
	Oid relid;
	uint64 table_id;
	int n_cols;          /* shipped columns: not dropped, not generated */
	char **cols;         /* their names */
	AttrNumber *attnums; /* their attribute numbers */
	FmgrInfo *send;      /* their types' send functions */
	bool *key;           /* part of the replica identity key */
	Oid *seqs;           /* the sequence each one's values come from, or InvalidOid */
	char identity;       /* 'k' key, 'f' full row, 'n' none (INSERT only) */
	const char *no_eq;   /* 'f': a column whose type has no equality, or NULL */
} CapTable;

/* Where an op starts in X.ops, and the command that made its change. */
typedef struct OpPos {
	CommandId cid;
	uint32 seq; /* capture order: the tie-break of a stable sort */
	size_t off, len;
} OpPos;

/* State at the start of an open subtransaction. */
typedef struct Saved {
	SubTransactionId subid;
	size_t ops_len;
	uint32 n_ops;
	int n_tables;
} Saved;

/* The transaction's capture; everything lives in TopTransactionContext. */
static struct {
	bool active;      /* something was captured or registered */
	bool other_write; /* a table that is not replicated was written */
	uint64 group_id;
	uint64 term;
	uint64 schema_index; /* see DrPending */
	Oid registration;
	uint64 resend; /* see DrPending */
	struct entry_buf ops;
	uint32 n_ops;
	OpPos *pos; /* n_ops of them; cap_pos allocated */
	uint32 cap_pos;
	bool unsorted; /* an op was captured after an op of a later command */
	CapTable *tables;
	int n_tables;
	int cap_tables;
	List *saved; /* Saved, innermost first */
} X;

static void *grow_in_xact(void *old, size_t size)
{
	return old ? repalloc_huge(old, size) : MemoryContextAllocHuge(TopTransactionContext, size);
}

bool dr_capture_rel_replicated(Relation rel, uint64 *group_id, uint64 *table_id)
{
	TriggerDesc *td = rel->trigdesc;

	if (td == NULL)
		return false;
	for (int i = 0; i < td->numtriggers; i++) {
		Trigger *t = &td->triggers[i];

		if (t->tgnargs == 2 && strcmp(t->tgname, DR_CAPTURE_TRIGGER) == 0) {
			if (group_id != NULL)
				*group_id = strtou64(t->tgargs[0], NULL, 10);
			if (table_id != NULL)
				*table_id = strtou64(t->tgargs[1], NULL, 10);
			return true;
		}
	}
	return false;
}

bool dr_capture_pending(DrPending *p)
{
	if (!X.active || (X.n_ops == 0 && X.registration == InvalidOid))
		return false;
	p->group_id = X.group_id;
	p->term = X.term;
	p->schema_index = X.schema_index;
	p->registration = X.registration;
	p->resend = X.resend;
	return true;
}

uint64 *dr_capture_table_ids(int *n)
{
	uint64 *ids;

	*n = X.n_tables;
	if (X.registration != InvalidOid && X.resend == 0)
		return NULL;
	ids = palloc(Max(X.n_tables, 1) * sizeof(uint64));
	for (int i = 0; i < X.n_tables; i++)
		ids[i] = X.tables[i].table_id;
	return ids;
}

void dr_capture_note_other_write(void)
{
	X.other_write = true;
}

bool dr_capture_other_writes(void)
{
	return X.other_write;
}

void dr_capture_reset(void)
{
	memset(&X, 0, sizeof(X)); /* the memory goes with TopTransactionContext */
}

/* The first replicated change (or registration) of the transaction. */
static void start(uint64 group_id)
{
	if (X.active) {
		if (X.group_id != group_id)
			ereport(ERROR,
			        (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			         errmsg("a transaction cannot write tables of two dragonraft "
			                "groups"),
			         errdetail(
			                 "It wrote tables of group %llu and now one of group %llu.",
			                 (unsigned long long)X.group_id,
			                 (unsigned long long)group_id),
			         errhint("Write each group's tables in a transaction of its "
			                 "own.")));
		if (X.registration != InvalidOid)
			ereport(ERROR,
			        (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			         errmsg("replicate_table must run in a transaction of its own"),
			         errdetail("This transaction registers table \"%s\".",
			                   get_rel_name(X.registration))));
		return;
	}
	if (IsolationIsSerializable())
		ereport(ERROR,
		        (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
		         errmsg("SERIALIZABLE transactions cannot write replicated tables"),
		         errdetail("A serializable transaction's commit-time check would run after "
		                   "its change set was committed in the Raft log."),
		         errhint("Use REPEATABLE READ or READ COMMITTED for writes of replicated "
		                 "tables.")));
	X.term = dr_xact_writable(group_id, false);
	/* After the table's lock: no utility command on it can commit before ours. */
	X.schema_index = dr_xact_schema_index(group_id);
	X.group_id = group_id;
	X.ops.grow = grow_in_xact;
	X.active = true;
}

/*
 * The trigger's arguments must be the registration of the table it fires on
 * (dragonraft.replicated_tables): a trigger that names another table's id
 * would write rows into that table on the other members.  Read as the
 * bootstrap superuser (the writer need not see the catalog table); once per
 * table and transaction.
 */
static void check_registration(Relation rel, uint64 table_id)
{
	Oid types[3] = {INT8OID, INT8OID, OIDOID};
	Datum values[3] = {Int64GetDatum((int64)X.group_id), Int64GetDatum((int64)table_id),
	                   ObjectIdGetDatum(RelationGetRelid(rel))};
	DrUserContext su;
	int rc;
	uint64 n;

	dr_as_superuser_begin(&su);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	rc = SPI_execute_with_args("SELECT FROM dragonraft.replicated_tables WHERE group_id = $1 "
	                           "AND table_id = $2 AND relid = $3 AND state = 'replicated'",
	                           3, types, values, NULL, true, 1);
	n = SPI_processed;
	SPI_finish();
	dr_user_context_end(&su);
	if (rc != SPI_OK_SELECT || n != 1)
		ereport(ERROR,
		        (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
		         errmsg("table \"%s\" is not table %llu of dragonraft group %llu",
		                RelationGetRelationName(rel), (unsigned long long)table_id,
		                (unsigned long long)X.group_id),
		         errdetail("Its trigger calls dragonraft.capture() with another table's "
		                   "registration."),
		         errhint("Only dragonraft.replicate_table installs that trigger.")));
}

/*
 * What table_index learns from the catalogs, kept across transactions: the
 * registration a table's trigger arguments were checked against (an SPI
 * query) and the sequence of each column (pg_depend scans); before, every
 * transaction paid both for every table it wrote.  Any relcache
 * invalidation empties it: DDL on a table or a sequence, VACUUM, and every
 * change of dragonraft.replicated_tables (its trigger,
 * dr_registrations_changed).
 */
typedef struct RelInfo {
	Oid relid;                 /* hash key */
	uint64 group_id, table_id; /* the registration checked; 0 = not checked */
	int natts;
	Oid *seqs; /* by attribute number - 1, in CacheMemoryContext */
} RelInfo;

static HTAB *rel_info;
static uint64 rel_info_gen; /* invalidations seen */

/*
 * The database's permanent sequences, each with the group whose commands
 * made it (dragonraft.made_relations; 0: none) and its name: read at the
 * commit of a change set after an invalidation (as rel_info), kept in
 * CacheMemoryContext.
 */
typedef struct SeqInfo {
	Oid relid;
	uint64 group_id;
	char *schema, *name;
} SeqInfo;

static SeqInfo *seq_info;
static int n_seq_info;
static bool seq_info_valid;
static bool inval_registered;

static void rel_info_inval(Datum arg, Oid relid)
{
	HASH_SEQ_STATUS s;
	RelInfo *r;

	rel_info_gen++;
	seq_info_valid = false;
	if (rel_info == NULL)
		return;
	hash_seq_init(&s, rel_info);
	while ((r = hash_seq_search(&s)) != NULL) {
		pfree(r->seqs);
		(void)hash_search(rel_info, &r->relid, HASH_REMOVE, NULL);
	}
}

/*
 * Check rel's registration (when check) and put the sequence of each of its
 * attributes (InvalidOid for none) in seqs, from the cache or the catalogs.
 * Nothing here may hold a cache entry across a catalog access: an
 * invalidation may empty the cache there.
 */
static void catalog_info(Relation rel, uint64 table_id, bool check, Oid *seqs)
{
	Oid relid = RelationGetRelid(rel);
	TupleDesc desc = RelationGetDescr(rel);
	uint64 gen;
	RelInfo *r;
	List *owned;
	bool found;

	if (rel_info == NULL) {
		HASHCTL ctl;

		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(RelInfo);
		ctl.hcxt = CacheMemoryContext;
		rel_info = hash_create("dragonraft capture tables", 64, &ctl,
		                       HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		if (!inval_registered)
			CacheRegisterRelcacheCallback(rel_info_inval, (Datum)0);
		inval_registered = true;
	}
	r = hash_search(rel_info, &relid, HASH_FIND, NULL);
	if (r != NULL && r->natts == desc->natts &&
	    (!check || (r->group_id == X.group_id && r->table_id == table_id))) {
		memcpy(seqs, r->seqs, desc->natts * sizeof(Oid));
		return;
	}
	gen = rel_info_gen;
	if (check)
		check_registration(rel, table_id);
	owned = dr_owned_sequences(relid);
	for (int i = 0; i < desc->natts; i++) {
		Form_pg_attribute a = TupleDescAttr(desc, i);

		seqs[i] = a->attisdropped || a->attgenerated
		                  ? InvalidOid
		                  : dr_column_sequence(rel, a->attnum, owned);
	}
	if (gen != rel_info_gen)
		return; /* what was read may be older than an invalidation: not kept */
	r = hash_search(rel_info, &relid, HASH_ENTER, &found);
	if (found)
		pfree(r->seqs);
	r->seqs = MemoryContextAlloc(CacheMemoryContext, desc->natts * sizeof(Oid));
	memcpy(r->seqs, seqs, desc->natts * sizeof(Oid));
	r->natts = desc->natts;
	r->group_id = check ? X.group_id : 0;
	r->table_id = check ? table_id : 0;
}

/* AFTER ... FOR EACH STATEMENT on dragonraft.replicated_tables: registrations changed. */
Datum dr_registrations_changed(PG_FUNCTION_ARGS)
{
	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
		        (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
		         errmsg("dragonraft.registrations_changed() must be called as a trigger")));
	CacheInvalidateRelcacheAll();
	return PointerGetDatum(NULL);
}

void dr_capture_begin(uint64 group_id)
{
	start(group_id);
}

void dr_capture_lock(uint64 group_id)
{
	if (!X.active || X.group_id != group_id)
		(void)dr_xact_writable(group_id, true);
}

/* The table's entry in the change set, set up at its first change
 * (check: the trigger's table id must be rel's registration). */
static int table_index(Relation rel, uint64 table_id, bool check)
{
	TupleDesc desc = RelationGetDescr(rel);
	MemoryContext old;
	Bitmapset *key = NULL;
	Oid *att_seqs;
	CapTable *t;

	for (int i = 0; i < X.n_tables; i++)
		if (X.tables[i].relid == RelationGetRelid(rel))
			return i;

	old = MemoryContextSwitchTo(TopTransactionContext);
	if (X.n_tables == X.cap_tables) {
		X.cap_tables = X.cap_tables ? 2 * X.cap_tables : 4;
		X.tables = X.tables ? repalloc(X.tables, X.cap_tables * sizeof(CapTable))
		                    : palloc(X.cap_tables * sizeof(CapTable));
	}
	t = &X.tables[X.n_tables];
	memset(t, 0, sizeof(*t));
	t->relid = RelationGetRelid(rel);
	t->table_id = table_id;
	t->cols = palloc(desc->natts * sizeof(char *));
	t->attnums = palloc(desc->natts * sizeof(AttrNumber));
	t->send = palloc(desc->natts * sizeof(FmgrInfo));
	t->key = palloc0(desc->natts * sizeof(bool));
	t->seqs = palloc(desc->natts * sizeof(Oid));
	att_seqs = palloc(desc->natts * sizeof(Oid));
	catalog_info(rel, table_id, check, att_seqs);
	switch (rel->rd_rel->relreplident) {
	case REPLICA_IDENTITY_FULL:
		t->identity = 'f';
		break;
	case REPLICA_IDENTITY_NOTHING:
		t->identity = 'n';
		break;
	default:
		key = RelationGetIdentityKeyBitmap(rel);
		t->identity = key != NULL ? 'k' : 'n';
	}
	for (int i = 0; i < desc->natts; i++) {
		Form_pg_attribute a = TupleDescAttr(desc, i);
		Oid send;
		bool varlena;

		if (a->attisdropped || a->attgenerated)
			continue;
		getTypeBinaryOutputInfo(a->atttypid, &send, &varlena);
		fmgr_info_cxt(send, &t->send[t->n_cols], TopTransactionContext);
		t->cols[t->n_cols] = pstrdup(NameStr(a->attname));
		t->attnums[t->n_cols] = a->attnum;
		t->key[t->n_cols] =
		        t->identity == 'f' ||
		        bms_is_member(a->attnum - FirstLowInvalidHeapAttributeNumber, key);
		t->seqs[t->n_cols] = att_seqs[i];
		/* A member finds an identity FULL row by comparing every column. */
		if (t->identity == 'f' && t->no_eq == NULL &&
		    !OidIsValid(lookup_type_cache(a->atttypid, TYPECACHE_EQ_OPR)->eq_opr))
			t->no_eq = t->cols[t->n_cols];
		t->n_cols++;
	}
	MemoryContextSwitchTo(old);
	return X.n_tables++;
}

/*
 * Start an op made by command cid.  Triggers fire in name order, and a
 * nested statement's events fire inside the outer event, so a change a user
 * trigger makes may be captured before the change that caused it: the
 * command id orders them (dr_capture_encode), the capture order within one
 * command.
 */
static void put_op(unsigned kind, int ti, CommandId cid)
{
	if (X.n_ops == X.cap_pos) {
		X.cap_pos = X.cap_pos ? 2 * X.cap_pos : 64;
		X.pos = grow_in_xact(X.pos, (size_t)X.cap_pos * sizeof(OpPos));
	}
	if (X.n_ops > 0 && cid < X.pos[X.n_ops - 1].cid)
		X.unsorted = true;
	X.pos[X.n_ops].cid = cid;
	X.pos[X.n_ops].seq = X.n_ops;
	X.pos[X.n_ops].off = X.ops.len;
	entry_put_op(&X.ops, kind, (uint32)ti);
}

CommandId dr_truncate_cid = InvalidCommandId;

/*
 * The command that truncated rel: the one that wrote its pg_class row (a new
 * relfilenode, made visible at once), if it belongs to the TRUNCATE
 * statement under way; else (a table created or truncated before in the same
 * subtransaction is emptied in place) the statement's first command.
 */
static CommandId truncate_cid(Relation rel)
{
	CommandId cid =
	        dr_truncate_cid != InvalidCommandId ? dr_truncate_cid : GetCurrentCommandId(false);
	HeapTuple tup = SearchSysCache1(RELOID, ObjectIdGetDatum(RelationGetRelid(rel)));

	if (HeapTupleIsValid(tup)) {
		if (TransactionIdIsCurrentTransactionId(HeapTupleHeaderGetRawXmin(tup->t_data)) &&
		    HeapTupleHeaderGetCmin(tup->t_data) > cid)
			cid = HeapTupleHeaderGetCmin(tup->t_data);
		ReleaseSysCache(tup);
	}
	return cid;
}

/* Append a tuple: every shipped column, or only the key (ABSENT elsewhere). */
static void put_values(const CapTable *t, HeapTuple tup, TupleDesc desc, bool key_only)
{
	entry_put_tuple(&X.ops, (uint16)t->n_cols);
	for (int i = 0; i < t->n_cols; i++) {
		bool isnull;
		Datum d;
		bytea *b;

		if (key_only && !t->key[i]) {
			entry_put_value(&X.ops, ENTRY_VALUE_ABSENT, NULL, 0);
			continue;
		}
		d = heap_getattr(tup, t->attnums[i], desc, &isnull);
		if (isnull) {
			entry_put_value(&X.ops, ENTRY_VALUE_NULL, NULL, 0);
			continue;
		}
		if (TupleDescAttr(desc, t->attnums[i] - 1)->attlen == -1)
			d = PointerGetDatum(PG_DETOAST_DATUM(d));
		b = SendFunctionCall((FmgrInfo *)&t->send[i], d);
		entry_put_value(&X.ops, ENTRY_VALUE_BINARY, VARDATA(b), VARSIZE(b) - VARHDRSZ);
		pfree(b);
	}
	if (X.ops.failed)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
}

/* put_values in the database's encoding: a session whose client_encoding is
 * another one sent its text in that (pq_sendtext), and every member's apply
 * stopped at the first value it could not read as the database's, or took
 * other characters. */
static void put_tuple(const CapTable *t, HeapTuple tup, TupleDesc desc, bool key_only)
{
	int client;

	if (pg_get_client_encoding() == GetDatabaseEncoding()) {
		put_values(t, tup, desc, key_only);
		return;
	}
	client = dr_client_encoding_db();
	PG_TRY();
	{
		put_values(t, tup, desc, key_only);
	}
	PG_FINALLY();
	{
		dr_client_encoding_restore(client);
	}
	PG_END_TRY();
}

/* Did the UPDATE change a key column? */
static bool key_changed(const CapTable *t, HeapTuple oldtup, HeapTuple newtup, TupleDesc desc)
{
	for (int i = 0; i < t->n_cols; i++) {
		Form_pg_attribute a = TupleDescAttr(desc, t->attnums[i] - 1);
		bool n1, n2;
		Datum d1, d2;

		if (!t->key[i])
			continue;
		d1 = heap_getattr(oldtup, t->attnums[i], desc, &n1);
		d2 = heap_getattr(newtup, t->attnums[i], desc, &n2);
		if (n1 != n2 || (!n1 && !datum_image_eq(d1, d2, a->attbyval, a->attlen)))
			return true;
	}
	return false;
}

static void no_identity(Relation rel, const CapTable *t, const char *action)
{
	if (t->no_eq != NULL)
		ereport(ERROR,
		        (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		         errmsg("cannot %s table \"%s\" because its replica identity is FULL and "
		                "column \"%s\" has a type without an equality operator",
		                action, RelationGetRelationName(rel), t->no_eq),
		         errdetail("The members of its group find the row to change by comparing "
		                   "every column."),
		         errhint("Give the table a primary key, or an identity index, with "
		                 "dragonraft.execute.")));
	ereport(ERROR,
	        (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
	         errmsg("cannot %s table \"%s\" because it does not have a replica identity and "
	                "is replicated by dragonraft",
	                action, RelationGetRelationName(rel)),
	         errhint("To enable %s the table, give it a primary key, or set REPLICA IDENTITY "
	                 "with dragonraft.execute and ALTER TABLE.",
	                 strcmp(action, "update") == 0 ? "updating" : "deleting from")));
}

static void check_size(size_t len)
{
	if (len > (size_t)dr_max_entry_size)
		ereport(ERROR, (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
		                errmsg("the transaction's changes to replicated tables exceed "
		                       "dragonraft.max_entry_size (%d bytes)",
		                       dr_max_entry_size),
		                errhint("Split the work into smaller transactions.")));
}

static void row_settings_context(void *arg)
{
	errcontext("dragonraft computed the new row of table \"%s\" again with the settings "
	           "that the members of its group compute and check rows with (%s)",
	           (const char *)arg, dr_row_settings_text());
}

/*
 * Members compute a row's stored generated columns, and check its CHECK and
 * domain constraints, with fixed settings (extra_float_digits, bytea_output,
 * xmlbinary: dr_set_row_settings), which PostgreSQL's IMMUTABLE output of
 * float and bytea reads.  A session with others (SET, or the leader's
 * postgresql.conf) computed the row with those: with extra_float_digits = 0
 * a column GENERATED AS (x::text) stored '0.333333333333333' here and
 * '0.3333333333333333' on every member, silently, and a CHECK on such a
 * text passed here and stopped the members' apply.  The row is computed and
 * checked again with the members' settings: another value is refused, and
 * so is a CHECK (or a domain's) that fails.  (A session with the members'
 * settings has nothing to do.)
 */
static void check_row(Relation rel, HeapTuple tup)
{
	TupleDesc desc = RelationGetDescr(rel);
	TupleConstr *constr = desc->constr;
	ErrorContextCallback cb;
	ResultRelInfo *rri;
	TupleTableSlot *slot;
	EState *estate;
	int nest;

	bool domains = false;

	if (dr_row_settings_pinned())
		return;
	for (int i = 0; i < desc->natts && !domains; i++)
		domains = !TupleDescAttr(desc, i)->attisdropped &&
		          get_typtype(TupleDescAttr(desc, i)->atttypid) == TYPTYPE_DOMAIN;
	if (!domains &&
	    (constr == NULL || (!constr->has_generated_stored && constr->num_check == 0)))
		return;
	estate = CreateExecutorState();
	rri = makeNode(ResultRelInfo);
	InitResultRelInfo(rri, rel, 0, NULL, 0);
	slot = MakeSingleTupleTableSlot(desc, &TTSOpsHeapTuple);
	ExecStoreHeapTuple(tup, slot, false);
	cb.callback = row_settings_context;
	cb.arg = RelationGetRelationName(rel);
	cb.previous = error_context_stack;
	error_context_stack = &cb;
	nest = NewGUCNestLevel();
	dr_set_row_settings(GUC_ACTION_SAVE);
	if (constr != NULL && constr->has_generated_stored) {
		ExecComputeStoredGenerated(rri, estate, slot, CMD_INSERT);
		for (int i = 0; i < desc->natts; i++) {
			Form_pg_attribute a = TupleDescAttr(desc, i);
			bool n1, n2;
			Datum d1, d2;

			if (a->attgenerated != ATTRIBUTE_GENERATED_STORED)
				continue;
			d1 = heap_getattr(tup, a->attnum, desc, &n1);
			d2 = slot_getattr(slot, a->attnum, &n2);
			if (n1 != n2 || (!n1 && !datum_image_eq(d1, d2, a->attbyval, a->attlen)))
				ereport(ERROR,
				        (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				         errmsg("generated column \"%s\" of replicated table \"%s\" "
				                "depends on this session's settings",
				                NameStr(a->attname), RelationGetRelationName(rel)),
				         errdetail("The members of its group compute it with %s, and "
				                   "get another value: they would store that one.",
				                   dr_row_settings_text()),
				         errhint("Write the row with those settings, or make the "
				                 "column's expression not print floats or bytea as "
				                 "text.")));
		}
	}
	if (constr != NULL && constr->num_check > 0)
		ExecConstraints(rri, slot, estate);
	/* (members check a domain's constraints as they receive its values) */
	for (int i = 0; i < desc->natts && domains; i++) {
		Form_pg_attribute a = TupleDescAttr(desc, i);
		bool isnull;
		Datum d;

		if (a->attisdropped || get_typtype(a->atttypid) != TYPTYPE_DOMAIN)
			continue;
		d = heap_getattr(tup, a->attnum, desc, &isnull);
		domain_check(d, isnull, a->atttypid, NULL, NULL);
	}
	AtEOXact_GUC(false, nest);
	error_context_stack = cb.previous;
	ExecDropSingleTupleTableSlot(slot);
	ExecCloseResultRelations(estate);
	FreeExecutorState(estate);
}

Datum dr_capture(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *)fcinfo->context;
	Relation rel;
	TupleDesc desc;
	uint64 group_id, table_id;
	const CapTable *t;
	int ti;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
		                errmsg("dragonraft.capture() must be called as an AFTER trigger")));
	/* The triggers are ENABLE ALWAYS (session_replication_role = replica does not
	 * bypass them); the apply worker's own changes come from the log. */
	if (dr_is_apply_worker)
		return PointerGetDatum(NULL);
	if (td->tg_trigger->tgnargs == 2 && strcmp(td->tg_trigger->tgargs[0], "refused") == 0)
		ereport(ERROR,
		        (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		         errmsg("table \"%s\" was refused by dragonraft group %s on this member",
		                RelationGetRelationName(td->tg_relation),
		                td->tg_trigger->tgargs[1]),
		         errdetail("The group replicates a table of that name; writes here would "
		                   "never be replicated.  dragonraft.tables says why it was "
		                   "refused."),
		         errhint("Drop the table on this node (or rename it and its indexes), "
		                 "then run dragonraft.resend_table on the group's leader.")));
	if (!TRIGGER_FIRED_AFTER(td->tg_event))
		ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
		                errmsg("dragonraft.capture() must be called as an AFTER trigger")));
	rel = td->tg_relation;
	desc = RelationGetDescr(rel);
	if (td->tg_trigger->tgnargs != 2)
		ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
		                errmsg("dragonraft.capture() needs a group id and a table id")));
	group_id = strtou64(td->tg_trigger->tgargs[0], NULL, 10);
	table_id = strtou64(td->tg_trigger->tgargs[1], NULL, 10);
	start(group_id);
	ti = table_index(rel, table_id, true);
	t = &X.tables[ti];

	/* The command of a row change is in its tuple (cmin of the new version,
	 * cmax of the deleted one; combo ids resolve in our own transaction). */
	if (TRIGGER_FIRED_BY_TRUNCATE(td->tg_event)) {
		put_op(ENTRY_OP_TRUNCATE, ti, truncate_cid(rel));
	} else if (TRIGGER_FIRED_BY_INSERT(td->tg_event)) {
		check_row(rel, td->tg_trigtuple);
		put_op(ENTRY_OP_INSERT, ti, HeapTupleHeaderGetCmin(td->tg_trigtuple->t_data));
		put_tuple(t, td->tg_trigtuple, desc, false);
	} else if (TRIGGER_FIRED_BY_UPDATE(td->tg_event)) {
		bool with_old;

		if (t->identity == 'n' || t->no_eq != NULL)
			no_identity(rel, t, "update");
		check_row(rel, td->tg_newtuple);
		with_old = t->identity == 'f' ||
		           key_changed(t, td->tg_trigtuple, td->tg_newtuple, desc);
		put_op(ENTRY_OP_UPDATE, ti, HeapTupleHeaderGetCmin(td->tg_newtuple->t_data));
		entry_put_u8(&X.ops, with_old ? 1 : 0);
		if (with_old)
			put_tuple(t, td->tg_trigtuple, desc, t->identity == 'k');
		put_tuple(t, td->tg_newtuple, desc, false);
	} else if (TRIGGER_FIRED_BY_DELETE(td->tg_event)) {
		if (t->identity == 'n' || t->no_eq != NULL)
			no_identity(rel, t, "delete from");
		put_op(ENTRY_OP_DELETE, ti, HeapTupleHeaderGetCmax(td->tg_trigtuple->t_data));
		put_tuple(t, td->tg_trigtuple, desc, t->identity == 'k');
	}
	X.n_ops++;
	check_size(X.ops.len);
	return PointerGetDatum(NULL);
}

void dr_capture_register(Oid relid, uint64 group_id, uint64 resend)
{
	if (X.active && X.n_ops > 0)
		ereport(ERROR, (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
		                errmsg("replicate_table must run in a transaction of its own"),
		                errdetail("This transaction already wrote replicated tables.")));
	start(group_id);
	X.registration = relid;
	X.resend = resend;
}

/* What to do with a registration (of X) that exceeds max_entry_size. */
static int registration_hint(void)
{
	return X.resend != 0 ? errhint("resend_table sends the whole table in one entry: raise "
	                               "dragonraft.max_entry_size on every member (a restart) "
	                               "while you resend it.")
	                     : errhint("Replicate the table while it is empty (move its rows "
	                               "aside), then load its rows in transactions smaller than "
	                               "dragonraft.max_entry_size.");
}

/* The registered table's rows as INSERTs, read with a fresh snapshot (the
 * table is locked since replicate_table: nothing else changes it). */
static void capture_rows(Relation rel)
{
	TupleDesc desc = RelationGetDescr(rel);
	Snapshot snap = RegisterSnapshot(GetLatestSnapshot());
	TableScanDesc scan = table_beginscan(rel, snap, 0, NULL);
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	/* A new table's id is the entry's index (unknown here: members take that one) */
	int ti = table_index(rel, X.resend != 0 ? X.resend : 1, false);

	while (table_scan_getnextslot(scan, ForwardScanDirection, slot)) {
		bool should_free;
		HeapTuple tup = ExecFetchSlotHeapTuple(slot, false, &should_free);

		CHECK_FOR_INTERRUPTS();
		put_op(ENTRY_OP_INSERT, ti, 0);
		put_tuple(&X.tables[ti], tup, desc, false);
		X.n_ops++;
		if (should_free)
			heap_freetuple(tup);
		if (X.ops.len > (size_t)dr_max_entry_size)
			ereport(ERROR,
			        (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
			         errmsg("table \"%s\" has more rows than one entry can carry",
			                RelationGetRelationName(rel)),
			         errdetail("Its rows exceed dragonraft.max_entry_size (%d bytes).",
			                   dr_max_entry_size),
			         registration_hint()));
	}
	ExecDropSingleTupleTableSlot(slot);
	table_endscan(scan);
	UnregisterSnapshot(snap);
}

/* The last value of a sequence, whatever the user's privileges on it. */
static bool sequence_last_value(Oid seqid, int64 *value)
{
	LOCAL_FCINFO(fcinfo, 1);
	Oid save_user;
	int save_sec;
	Datum d;

	GetUserIdAndSecContext(&save_user, &save_sec);
	SetUserIdAndSecContext(BOOTSTRAP_SUPERUSERID, save_sec | SECURITY_LOCAL_USERID_CHANGE);
	InitFunctionCallInfoData(*fcinfo, NULL, 1, InvalidOid, NULL, NULL);
	fcinfo->args[0].value = ObjectIdGetDatum(seqid);
	fcinfo->args[0].isnull = false;
	d = pg_sequence_last_value(fcinfo);
	SetUserIdAndSecContext(save_user, save_sec);
	if (fcinfo->isnull)
		return false;
	*value = DatumGetInt64(d);
	return true;
}

List *dr_owned_sequences(Oid relid)
{
	List *owned = NIL;
	ListCell *lc;

	foreach (lc, getOwnedSequences(relid)) {
		DrOwnedSeq *o = palloc(sizeof(DrOwnedSeq));
		Oid tab;
		int32 col;

		if (!sequenceIsOwned(lfirst_oid(lc), DEPENDENCY_AUTO, &tab, &col) &&
		    !sequenceIsOwned(lfirst_oid(lc), DEPENDENCY_INTERNAL, &tab, &col))
			continue;
		o->seq = lfirst_oid(lc);
		o->att = (AttrNumber)col;
		owned = lappend(owned, o);
	}
	return owned;
}

/* Does the default of column att call nextval()?  (A filter on the stored
 * expression's text, so that plain defaults cost no catalog scan.) */
static bool default_calls_nextval(Relation rel, AttrNumber att)
{
	TupleConstr *constr = RelationGetDescr(rel)->constr;
	char funcid[32];

	if (constr == NULL)
		return false;
	snprintf(funcid, sizeof(funcid), ":funcid %u ", F_NEXTVAL);
	for (int i = 0; i < constr->num_defval; i++)
		if (constr->defval[i].adnum == att)
			return strstr(constr->defval[i].adbin, funcid) != NULL;
	return false;
}

Oid dr_column_sequence(Relation rel, AttrNumber att, List *owned)
{
	ListCell *lc;
	Oid def, seqid = InvalidOid;
	Relation dep;
	ScanKeyData key[2];
	SysScanDesc scan;
	HeapTuple tup;

	foreach (lc, owned) {
		DrOwnedSeq *o = lfirst(lc);

		if (o->att == att)
			return o->seq;
	}
	if (!default_calls_nextval(rel, att) ||
	    !OidIsValid(def = GetAttrDefaultOid(RelationGetRelid(rel), att)))
		return InvalidOid;
	/* The sequence the default depends on (nextval('some_seq')). */
	dep = table_open(DependRelationId, AccessShareLock);
	ScanKeyInit(&key[0], Anum_pg_depend_classid, BTEqualStrategyNumber, F_OIDEQ,
	            ObjectIdGetDatum(AttrDefaultRelationId));
	ScanKeyInit(&key[1], Anum_pg_depend_objid, BTEqualStrategyNumber, F_OIDEQ,
	            ObjectIdGetDatum(def));
	scan = systable_beginscan(dep, DependDependerIndexId, true, NULL, 2, key);
	while (HeapTupleIsValid(tup = systable_getnext(scan))) {
		Form_pg_depend d = (Form_pg_depend)GETSTRUCT(tup);

		if (d->refclassid == RelationRelationId &&
		    get_rel_relkind(d->refobjid) == RELKIND_SEQUENCE) {
			seqid = d->refobjid;
			break;
		}
	}
	systable_endscan(scan);
	table_close(dep, AccessShareLock);
	return seqid;
}

/* Read seq_info from the catalogs (kept unless an invalidation came meanwhile). */
static void load_seq_info(void)
{
	DrUserContext su;
	uint64 gen = rel_info_gen, n;
	SeqInfo *info;
	MemoryContext old;

	if (!inval_registered)
		CacheRegisterRelcacheCallback(rel_info_inval, (Datum)0);
	inval_registered = true;
	dr_as_superuser_begin(&su);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetLatestSnapshot()); /* (at PRE_COMMIT there is none) */
	if (SPI_execute(
	            "SELECT c.oid, coalesce((SELECT m.group_id FROM dragonraft.made_relations m "
	            "WHERE m.relid = c.oid LIMIT 1), 0), n.nspname, c.relname "
	            "FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n "
	            "ON n.oid = c.relnamespace WHERE c.relkind = 'S' AND c.relpersistence = 'p'",
	            true, 0) != SPI_OK_SELECT)
		elog(ERROR, "dragonraft could not read the sequences");
	n = SPI_processed;
	old = MemoryContextSwitchTo(CacheMemoryContext);
	info = palloc(Max(n, 1) * sizeof(SeqInfo));
	for (uint64 i = 0; i < n; i++) {
		HeapTuple tup = SPI_tuptable->vals[i];
		TupleDesc desc = SPI_tuptable->tupdesc;
		bool isnull;

		info[i].relid = DatumGetObjectId(SPI_getbinval(tup, desc, 1, &isnull));
		info[i].group_id = (uint64)DatumGetInt64(SPI_getbinval(tup, desc, 2, &isnull));
		info[i].schema = SPI_getvalue(tup, desc, 3);
		info[i].name = SPI_getvalue(tup, desc, 4);
	}
	MemoryContextSwitchTo(old);
	PopActiveSnapshot();
	SPI_finish();
	dr_user_context_end(&su);
	if (seq_info != NULL) {
		for (int i = 0; i < n_seq_info; i++) {
			pfree(seq_info[i].schema);
			pfree(seq_info[i].name);
		}
		pfree(seq_info);
	}
	seq_info = info;
	n_seq_info = (int)n;
	seq_info_valid = gen == rel_info_gen;
}

static bool column_sequence(Oid seqid)
{
	for (int ti = 0; ti < X.n_tables; ti++)
		for (int c = 0; c < X.tables[ti].n_cols; c++)
			if (X.tables[ti].seqs[c] == seqid)
				return true;
	return false;
}

/*
 * The sequences the transaction used (nextval, setval, currval hold
 * RowExclusiveLock on them to its end) that its tables' columns do not
 * take values from: a sequence that the group's commands made is carried by
 * name (it exists on every member); any other makes the local commit keep
 * the user's synchronous_commit (X.other_write), or a crash loses its
 * advance while the log brings the rows back (review 21 F4).  Before the
 * columns' sequences are read: reading one locks it.
 */
static void used_sequences(struct entry_seq **seqs, uint32 *n, int *cap)
{
	if (!seq_info_valid)
		load_seq_info();
	for (int i = 0; i < n_seq_info; i++) {
		SeqInfo *si = &seq_info[i];
		int64 v;

		if (!CheckRelationOidLockedByMe(si->relid, RowExclusiveLock, true) ||
		    column_sequence(si->relid))
			continue;
		if (si->group_id != X.group_id || !sequence_last_value(si->relid, &v)) {
			X.other_write = true;
			continue;
		}
		if ((int)*n == *cap) {
			*cap = *cap ? 2 * *cap : 4;
			*seqs = *seqs ? repalloc(*seqs, *cap * sizeof(**seqs))
			              : palloc(*cap * sizeof(**seqs));
		}
		memset(&(*seqs)[*n], 0, sizeof(**seqs));
		(*seqs)[*n].table = ENTRY_SEQ_NAMED;
		(*seqs)[*n].value = v;
		(*seqs)[*n].schema = pstrdup(si->schema);
		(*seqs)[*n].schema_len = (uint16)strlen(si->schema);
		(*seqs)[*n].name = pstrdup(si->name);
		(*seqs)[*n].name_len = (uint16)strlen(si->name);
		(*n)++;
	}
}

/* The last values of the sequences the tables' columns take values from,
 * and of those used_sequences carries. */
static struct entry_seq *capture_sequences(uint32 *n)
{
	struct entry_seq *seqs = NULL;
	int cap = 0;

	*n = 0;
	used_sequences(&seqs, n, &cap);
	for (int ti = 0; ti < X.n_tables; ti++) {
		const CapTable *t = &X.tables[ti];

		for (int c = 0; c < t->n_cols; c++) {
			int64 v;

			if (!OidIsValid(t->seqs[c]) || !sequence_last_value(t->seqs[c], &v))
				continue;
			if ((int)*n == cap) {
				cap = cap ? 2 * cap : 4;
				seqs = seqs ? repalloc(seqs, cap * sizeof(*seqs))
				            : palloc(cap * sizeof(*seqs));
			}
			memset(&seqs[*n], 0, sizeof(*seqs));
			seqs[*n].table = (uint32)ti;
			seqs[*n].column = (uint16)c;
			seqs[*n].value = v;
			(*n)++;
		}
	}
	return seqs;
}

static int cmp_pos(const void *a, const void *b)
{
	const OpPos *x = a, *y = b;

	if (x->cid != y->cid)
		return x->cid < y->cid ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* The ops in execution order: by command, then in capture order. */
static struct entry_buf sorted_ops(void)
{
	struct entry_buf b = {0};

	if (!X.unsorted)
		return X.ops;
	for (uint32 i = 0; i < X.n_ops; i++)
		X.pos[i].len = (i + 1 < X.n_ops ? X.pos[i + 1].off : X.ops.len) - X.pos[i].off;
	qsort(X.pos, X.n_ops, sizeof(OpPos), cmp_pos);
	b.grow = grow_in_xact;
	for (uint32 i = 0; i < X.n_ops; i++)
		entry_put_bytes(&b, X.ops.data + X.pos[i].off, X.pos[i].len);
	if (b.failed)
		ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
	return b;
}

uint8 *dr_capture_encode(const struct entry_owner *owner, Size *len)
{
	struct entry_table_in *tables;
	struct entry_register_in reg;
	struct entry_buf out = {0}, ops;
	struct entry_seq *seqs;
	uint32 n_seqs;
	int rc;

	if (X.registration != InvalidOid) {
		Relation rel = table_open(X.registration, NoLock); /* locked by replicate_table */

		capture_rows(rel);
		reg.schema = get_namespace_name(RelationGetNamespace(rel));
		reg.name = RelationGetRelationName(rel);
		reg.def = dr_sql_tables_definition(X.registration);
		reg.resend = X.resend != 0;
		reg.extras = dr_sql_tables_extras(X.registration);
		table_close(rel, NoLock);
	}
	seqs = capture_sequences(&n_seqs);
	tables = palloc(Max(X.n_tables, 1) * sizeof(*tables));
	for (int i = 0; i < X.n_tables; i++) {
		tables[i].table_id = X.tables[i].table_id;
		tables[i].n_cols = (uint16)X.tables[i].n_cols;
		tables[i].cols = (const char *const *)X.tables[i].cols;
	}
	out.grow = grow_in_xact;
	ops = sorted_ops();
	rc = entry_encode_change_set(&out, owner, X.schema_index,
	                             X.registration != InvalidOid ? &reg : NULL, tables,
	                             (uint32)X.n_tables, seqs, n_seqs, ops.data, ops.len, X.n_ops);
	/* Its values went through the send functions in the database's encoding
	 * (put_tuple): a member whose database has another refuses it (apply_worker.c). */
	if (rc == ENTRY_OK)
		rc = entry_set_encoding(out.data, out.len, GetDatabaseEncoding());
	if (rc != ENTRY_OK)
		elog(ERROR, "dragonraft could not encode the change set: %s", entry_strerror(rc));
	/* A registration counts its definition and extras (a long comment, say) too. */
	if (X.registration != InvalidOid && out.len > (size_t)dr_max_entry_size)
		ereport(ERROR,
		        (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
		         errmsg("table \"%s\" is too large for one entry", reg.name),
		         errdetail(
		                 "Its rows, definition, owner, privileges, policies, triggers and "
		                 "comments take %zu bytes, over dragonraft.max_entry_size (%d "
		                 "bytes).",
		                 out.len, dr_max_entry_size),
		         registration_hint()));
	check_size(out.len);
	*len = out.len;
	return out.data;
}

void dr_capture_subxact(SubXactEvent event, SubTransactionId my_subid,
                        SubTransactionId parent_subid)
{
	ListCell *lc;

	if (!X.active)
		return; /* nothing captured yet: nothing to keep track of */
	switch (event) {
	case SUBXACT_EVENT_START_SUB: {
		MemoryContext old = MemoryContextSwitchTo(TopTransactionContext);
		Saved *s = palloc(sizeof(Saved));

		s->subid = my_subid;
		s->ops_len = X.ops.len;
		s->n_ops = X.n_ops;
		s->n_tables = X.n_tables;
		X.saved = lcons(s, X.saved);
		MemoryContextSwitchTo(old);
		break;
	}
	case SUBXACT_EVENT_COMMIT_SUB:
		/* Its changes now belong to its parent. */
		if (X.saved != NIL && ((Saved *)linitial(X.saved))->subid == my_subid)
			X.saved = list_delete_first(X.saved);
		break;
	case SUBXACT_EVENT_ABORT_SUB:
		foreach (lc, X.saved) {
			Saved *s = lfirst(lc);

			if (s->subid != my_subid)
				continue;
			X.ops.len = s->ops_len;
			X.n_ops = s->n_ops;
			X.n_tables = s->n_tables;
			/* In place: the current context is the abort's, reset right after. */
			for (int n = foreach_current_index(lc); n >= 0; n--)
				X.saved = list_delete_first(X.saved);
			return;
		}
		/* It began before the first change: nothing of the transaction is left. */
		if (X.registration == InvalidOid) {
			bool other = X.other_write;

			dr_capture_reset();
			X.other_write = other;
		}
		break;
	default:
		break;
	}
}

void dr_capture_not_leader(uint64 group_id, uint64 leader)
{
	char *addr = leader ? dr_sql_groups_client_address((int64)group_id, (int64)leader) : NULL;

	if (leader != 0)
		ereport(ERROR, (errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
		                errmsg("node %d is not the leader of dragonraft group %llu",
		                       dr_node_id, (unsigned long long)group_id),
		                errdetail("The leader is node %llu, client address \"%s\".",
		                          (unsigned long long)leader, addr ? addr : "unknown"),
		                errhint("Send writes of this group's tables to its leader; "
		                        "dragonraft.leader(%llu) names it.",
		                        (unsigned long long)group_id)));
	ereport(ERROR, (errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
	                errmsg("node %d is not the leader of dragonraft group %llu", dr_node_id,
	                       (unsigned long long)group_id),
	                errdetail("The group has no leader at the moment."),
	                errhint("Try again once the group has elected a leader; "
	                        "dragonraft.leader(%llu) names it.",
	                        (unsigned long long)group_id)));
}

/* Is type one whose values are (or hold) OIDs of this node's objects:
 * regclass, regtype, ..., aclitem (roles), pg_node_tree (catalog
 * expressions)? */
bool dr_type_is_local_oid(Oid type)
{
	switch (type) {
	case REGPROCOID:
	case REGPROCEDUREOID:
	case REGOPEROID:
	case REGOPERATOROID:
	case REGCLASSOID:
	case REGCOLLATIONOID:
	case REGTYPEOID:
	case REGROLEOID:
	case REGNAMESPACEOID:
	case REGCONFIGOID:
	case REGDICTIONARYOID:
	case ACLITEMOID:
	case PG_NODE_TREEOID:
		return true;
	default:
		return false;
	}
}

/* Has type no send function, or (receive too) no receive function? */
static bool io_missing(Oid type, bool receive_too)
{
	HeapTuple tup = SearchSysCache1(TYPEOID, ObjectIdGetDatum(type));
	bool none = false;

	if (HeapTupleIsValid(tup)) {
		Form_pg_type t = (Form_pg_type)GETSTRUCT(tup);

		none = !OidIsValid(t->typsend) || (receive_too && !OidIsValid(t->typreceive));
		ReleaseSysCache(tup);
	}
	return none;
}

/* Has type no send function (no binary form: aclitem, gtsvector, a base
 * type made without one, or that lost it by ALTER TYPE ... SET)? */
static bool type_unsent(Oid type)
{
	return io_missing(type, false);
}

/* Can no member receive a value of type: it has no send or no receive
 * function, or one that refuses every value (the planner's extended
 * statistics and BRIN summaries, which only the server builds; pg_node_tree
 * too, a local OID type)?  A follower's apply would stop at the first row
 * with one (review 38). */
static bool type_unreceived(Oid type)
{
	switch (type) {
	case PG_NDISTINCTOID:
	case PG_DEPENDENCIESOID:
	case PG_MCV_LISTOID:
	case PG_BRIN_BLOOM_SUMMARYOID:
	case PG_BRIN_MINMAX_MULTI_SUMMARYOID:
		return true;
	default:
		return io_missing(type, true);
	}
}

/* A type whose values cannot be in a replicated table's column. */
static bool type_refused(Oid type)
{
	return dr_type_is_local_oid(type) || type_unreceived(type);
}

/* The first type for which pred holds that a value of type holds (itself,
 * or as an array's element, a domain's base, a composite's attribute or a
 * range's bound), or InvalidOid. */
static Oid type_holding(Oid type, bool (*pred)(Oid))
{
	Oid sub, found = InvalidOid;

	check_stack_depth();
	type = getBaseType(type);
	if (pred(type))
		return type;
	if (OidIsValid(sub = get_element_type(type)))
		return type_holding(sub, pred);
	if (OidIsValid(sub = get_multirange_range(type)))
		return type_holding(sub, pred);
	if (OidIsValid(sub = get_range_subtype(type)))
		return type_holding(sub, pred);
	if (type_is_rowtype(type) && type != RECORDOID) {
		TupleDesc desc = lookup_rowtype_tupdesc(type, -1);

		for (int i = 0; i < desc->natts && !OidIsValid(found); i++)
			if (!TupleDescAttr(desc, i)->attisdropped)
				found = type_holding(TupleDescAttr(desc, i)->atttypid, pred);
		ReleaseTupleDesc(desc);
	}
	return found;
}

/* The type refused in a replicated table's column that a value of type
 * holds, or InvalidOid: one whose values hold OIDs of local objects
 * (dr_type_is_local_oid: pg_node_tree's values hold OIDs of functions,
 * types and relations, aclitem's of roles), or that no member can receive
 * (type_unreceived). */
Oid dr_refused_type(Oid type)
{
	return type_holding(type, type_refused);
}

/* The type without a send function that a value of type holds (as
 * dr_refused_type), or InvalidOid. */
Oid dr_unsent_type(Oid type)
{
	return type_holding(type, type_unsent);
}

/*
 * A column of a replicated table must not hold OIDs of local objects:
 * values travel in their send form, which for regclass and its kind is the
 * OID, and each member gives its objects (made by execute(), or its own)
 * their own OIDs, so the same value would name another object, or none,
 * on another member, and their digests would agree.  Nor values that no
 * member can receive.  rowtype (if valid): type, of the new attribute
 * column, would join that composite type (or table's row type), which a
 * column of replicated table table holds.
 */
void dr_capture_refuse_type(const char *table, const char *column, Oid type, Oid rowtype)
{
	Oid found = dr_refused_type(type);
	bool oids;

	if (!OidIsValid(found))
		return;
	oids = dr_type_is_local_oid(found);
	ereport(ERROR,
	        (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
	         OidIsValid(rowtype)
	                 ? errmsg("type %s, which a column of replicated table \"%s\" holds, "
	                          "cannot have attribute \"%s\" of type %s",
	                          format_type_be(rowtype), table, column, format_type_be(type))
	                 : errmsg("replicated table \"%s\" cannot have column \"%s\" of type %s",
	                          table, column, format_type_be(type)),
	         oids ? errdetail("Its values hold %s values, which name objects by the OIDs that "
	                          "each member gives them itself: the same value would name "
	                          "another object, or none, on another member.",
	                          format_type_be(found))
	              : errdetail("Its values hold %s values, which no member can receive in "
	                          "the binary form that rows travel in (the type has no send or "
	                          "receive function, or its receive function refuses every "
	                          "value).",
	                          format_type_be(found)),
	         oids ? errhint("Store the object's name as text instead.")
	              : errhint("Store the values as text instead.")));
}

/*
 * CYCLE sequences are refused where they would be carried (review 21 F5):
 * members move a carried sequence forward only (entries may carry the
 * values of concurrent transactions out of order), so a wrap on the leader
 * would not reach them and a new leader would hand out its minimum again.
 * replicate_table refuses a table whose column takes values from one.
 */
void dr_capture_refuse_cycle(Relation rel)
{
	TupleDesc desc = RelationGetDescr(rel);
	List *owned = dr_owned_sequences(RelationGetRelid(rel));

	for (int i = 0; i < desc->natts; i++) {
		Form_pg_attribute a = TupleDescAttr(desc, i);
		Oid seqid;
		HeapTuple tup;
		bool cycle;

		if (a->attisdropped || a->attgenerated ||
		    !OidIsValid(seqid = dr_column_sequence(rel, a->attnum, owned)) ||
		    !HeapTupleIsValid(tup = SearchSysCache1(SEQRELID, ObjectIdGetDatum(seqid))))
			continue;
		cycle = ((Form_pg_sequence)GETSTRUCT(tup))->seqcycle;
		ReleaseSysCache(tup);
		if (cycle)
			ereport(ERROR,
			        (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			         errmsg("\"%s\" cannot be replicated: its column \"%s\" takes "
			                "values "
			                "from the CYCLE sequence \"%s\"",
			                RelationGetRelationName(rel), NameStr(a->attname),
			                get_rel_name(seqid)),
			         errdetail("Members move a replicated sequence forward only: a "
			                   "wrap-around would not reach them."),
			         errhint("ALTER SEQUENCE %s NO CYCLE first.",
			                 quote_identifier(get_rel_name(seqid)))));
	}
}

/*
 * The CYCLE sequences that the group's change sets would carry: made by its
 * commands, owned by or the default of a column of its tables, or (a
 * command's try) made since known (every sequence's OID) was read.  SPI
 * connected; as the bootstrap superuser; not read-only, to see the command.
 */
static List *cycle_sequences(uint64 group_id, Datum known)
{
	Oid types[2] = {INT8OID, OIDARRAYOID};
	Datum values[2] = {Int64GetDatum((int64)group_id), known};
	DrUserContext su;
	List *oids;

	dr_as_superuser_begin(&su);
	if (SPI_execute_with_args("SELECT s.seqrelid FROM pg_catalog.pg_sequence s "
	                          "JOIN pg_catalog.pg_class c ON c.oid = s.seqrelid "
	                          "WHERE s.seqcycle AND c.relpersistence = 'p' AND ("
	                          "s.seqrelid <> ALL ($2) "
	                          "OR EXISTS (SELECT FROM dragonraft.made_relations m "
	                          "WHERE m.group_id = $1 AND m.relid = s.seqrelid) "
	                          "OR EXISTS (SELECT FROM pg_catalog.pg_depend d "
	                          "JOIN dragonraft.replicated_tables r ON r.group_id = $1 AND ("
	                          "(d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass "
	                          "AND d.objid = s.seqrelid AND d.refobjid = r.relid "
	                          "AND d.deptype IN ('a', 'i')) "
	                          "OR (d.classid = 'pg_catalog.pg_attrdef'::pg_catalog.regclass "
	                          "AND d.refobjid = s.seqrelid AND d.objid IN (SELECT ad.oid "
	                          "FROM pg_catalog.pg_attrdef ad WHERE ad.adrelid = r.relid)))))",
	                          2, types, values, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "dragonraft could not read the sequences");
	oids = dr_spi_oids();
	dr_user_context_end(&su);
	return oids;
}

/* Before a command's try (SPI connected): every sequence, and the group's CYCLE
 * ones already carried (made before this check existed: left to the README). */
Datum dr_capture_cycle_before(uint64 group_id, List **cycle)
{
	Datum known;
	bool isnull;
	DrUserContext su;

	dr_as_superuser_begin(&su);
	if (SPI_execute("SELECT coalesce(pg_catalog.array_agg(seqrelid), '{}') "
	                "FROM pg_catalog.pg_sequence",
	                true, 0) != SPI_OK_SELECT ||
	    SPI_processed != 1)
		elog(ERROR, "dragonraft could not read the sequences");
	known = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	known = datumCopy(known, false, -1);
	dr_user_context_end(&su);
	*cycle = cycle_sequences(group_id, known);
	return known;
}

/* After the command, in its try: it must not make a carried sequence CYCLE. */
void dr_capture_cycle_after(uint64 group_id, Datum known, List *cycle)
{
	ListCell *lc;

	foreach (lc, cycle_sequences(group_id, known)) {
		if (list_member_oid(cycle, lfirst_oid(lc)))
			continue;
		ereport(ERROR,
		        (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
		         errmsg("dragonraft.execute cannot make the group's sequence \"%s\" CYCLE",
		                get_rel_name(lfirst_oid(lc))),
		         errdetail("Members move a replicated sequence forward only: a "
		                   "wrap-around would not reach them."),
		         errhint("Use NO CYCLE (the default).")));
	}
}
