/*
 * sql_tabledigest.c - dragonraft.table_digest(group_id): a digest of each
 * replicated table of a group as this node holds it at exactly the group's
 * applied index returned with it, so that members can compare their tables
 * (log_digest compares their logs; nothing else sees a table that one
 * member changed behind the apply's back, or that its apply got wrong).
 *
 * The exporter's protocol (snapshot_export.c, pg_sm.c watch_digests), from
 * the calling backend: its tables are locked ACCESS SHARE first; a job of
 * role DR_SNAP_DIGEST asks the engine worker to hold the group's apply; once
 * it says "drained" (everything handed over is applied and published),
 * nothing of the group commits until the backend took its snapshot and read
 * the group's origin (its applied index); the job is freed then (or at any
 * exit: an error, a cancel, the backend's end), which ends the hold.  The
 * tables are scanned afterwards, under that snapshot, while the apply goes
 * on.
 *
 * Why the snapshot holds exactly the entries up to the origin's position, on
 * a follower and on the leader alike.  Every commit that applies entries
 * advances the origin in RecordTransactionCommit, before
 * ProcArrayEndTransaction makes it visible; the applied index
 * (DrGroup.applied) is published after it is visible, by the apply worker
 * after its commit or by the leader's backend at XACT_EVENT_COMMIT.
 * "Drained" is applied >= handed, the last entry handed to the apply side
 * before the hold: all of them are visible.  From the hold on nothing is
 * handed, so the apply worker gets nothing, and a leader's backend commits
 * its own entry only once it was handed (xact.c wait_turn): its proposal may
 * complete at its deadline while the apply is held, committed but not handed
 * (engine client.c), and before TAP 107 such a backend committed under the
 * hold, so that the origin could name an entry the snapshot lacked.  As a
 * check, the origin read after the snapshot must equal the applied index
 * published before it (else XX000: try again).
 *
 * A table's digest is independent of its physical layout and row order:
 * per row, SHA-256 (OpenSSL's EVP, linked already) over its columns in name
 * order, each as its name and a NUL, 0 (NULL) or 1, and then for a value its
 * length (4 bytes, big-endian) and its type's binary send form (with the
 * client encoding set to the database's meanwhile, so that text goes as it
 * is stored); the table's digest is the sum of its rows' hashes modulo
 * 2^256 (big-endian), so that row order does not matter and duplicate rows
 * count.  Dropped columns and the columns' attnum order do not matter.
 * The send forms of arrays, composites, ranges and multiranges name their
 * element and column types by OID, and a type made through execute() has
 * another OID on each member: those OIDs are zeroed, at every depth, before
 * the form is hashed (the column's declared type fixes them anyway).
 */
#include "dragonraft.h"

#include <openssl/evp.h>

#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "origins.h"
#include "replication/origin.h"
#include "shmem.h"
#include "snapshot.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"
#include "utils/wait_event.h"
#include "write.h"

PG_FUNCTION_INFO_V1(dr_table_digest);

/* The engine worker drains the group's apply within this, or the digest fails. */
#define DRAIN_TIMEOUT_MS DR_DIGEST_DRAIN_MS
/* How often the wait for the drain looks at the group's status. */
#define DRAIN_POLL_MS 100

/* This backend's job while it asks for a hold; -1 = none. */
static int my_job = -1;
static uint32 my_generation;
/* The group's incarnation (DrGroup.life) when the digest began: a group left
 * and made again here meanwhile is another log, at other indexes (rev58). */
static uint64 digest_life;
static bool exit_hooked;
/* The length of the last hold, in microseconds (the LOG line at DEBUG1). */
static long last_hold_us;

/* Free this backend's job if it has one: the engine worker ends the hold. */
static void free_job(void)
{
	DrSnapJob *j;

	if (my_job < 0)
		return;
	j = dr_snapshot_job(my_job);
	SpinLockAcquire(&j->mutex);
	if (j->generation == my_generation && j->pid == MyProcPid)
		j->group_id = 0;
	SpinLockRelease(&j->mutex);
	my_job = -1;
	dr_shmem_wake_engine();
}

static void free_job_at_exit(int code, Datum arg)
{
	free_job();
}

/*
 * An error unless the group runs here: 42704 if this node does not know it,
 * 55000 if it stopped or lost its log, or (drain) if its next entry fails to
 * apply (its error as the detail).
 */
static void check_group(int64 group_id, bool drain)
{
	uint8 state = DR_MEMBER_ACTIVE;
	uint32 failures = 0;
	char error[DR_ERROR_LEN] = "";

	dr_sql_groups_state(group_id, &state, &failures, error);
	if (state == DR_MEMBER_FAILED || state == DR_MEMBER_LOST)
		dr_sql_groups_stopped(group_id, error, NULL);
	if (drain && failures > 0)
		ereport(ERROR,
		        (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		         errmsg("the apply of group %lld is stuck on this node: its next entry "
		                "fails to apply",
		                (long long)group_id),
		         error[0] ? errdetail("%s", dr_sentence(error)) : 0,
		         errhint("See dragonraft.status; a digest needs the group's entries "
		                 "applied up to where it is taken.")));
}

List *dr_table_digest_tables(int64 group_id)
{
	Oid types[1] = {INT8OID};
	Datum values[1] = {Int64GetDatum(group_id)};
	MemoryContext cxt = CurrentMemoryContext;
	List *relids = NIL;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT relid FROM dragonraft.replicated_tables "
	                          "WHERE group_id = $1 AND state = 'replicated' "
	                          "AND relid IS NOT NULL ORDER BY table_id",
	                          1, types, values, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "dragonraft could not list the tables of group %lld",
		     (long long)group_id);
	for (uint64 i = 0; i < SPI_processed; i++) {
		bool isnull;
		Oid relid = DatumGetObjectId(
		        SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		MemoryContext old = MemoryContextSwitchTo(cxt);

		relids = lappend_oid(relids, relid);
		MemoryContextSwitchTo(old);
	}
	SPI_finish();
	return relids;
}

/* The group is still the one the digest began with (digest_life). */
static void check_same_group(int64 group_id)
{
	if (dr_shmem_group_life((uint64)group_id) != digest_life)
		ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		                errmsg("group %lld was left on this node while its digest was "
		                       "prepared",
		                       (long long)group_id),
		                errdetail("A group of that id here now is another, with another "
		                          "log."),
		                errhint("Try again.")));
}

/* The pid of the engine worker if it runs, else 0. */
static pid_t running_engine(void)
{
	pid_t pid;

	SpinLockAcquire(&dr_shared->mutex);
	pid = dr_shared->engine_state == DR_ENGINE_RUNNING ? dr_shared->engine_pid : 0;
	SpinLockRelease(&dr_shared->mutex);
	return pid;
}

/*
 * Until the engine worker says the group's apply is drained (job j, ours):
 * true; false if the engine worker that was asked (engine) is gone meanwhile:
 * its hold ended with it, the next one does not take the job up (pg_sm.c
 * end_predecessors_jobs), and the digest asks again (take_held_snapshot).
 */
static bool wait_drained(int64 group_id, pid_t engine, DrSnapJob *j, uint64 *handed)
{
	TimestampTz end = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), DRAIN_TIMEOUT_MS);
	TimestampTz next_lock_check = 0;

	for (;;) {
		bool drained;
		DrSnapPhase phase;
		char error[DR_ERROR_LEN];

		SpinLockAcquire(&j->mutex);
		drained = j->drained;
		phase = j->phase;
		*handed = j->handed;
		strlcpy(error, j->error, sizeof(error));
		SpinLockRelease(&j->mutex);
		if (running_engine() != engine)
			return false;
		if (drained)
			return true;
		if (phase == DR_SNAP_DONE) /* (the engine worker ended the job) */
			dr_sql_groups_stopped(group_id, error, NULL);
		check_group(group_id, true);
		check_same_group(group_id);
		/* The drain may need a table this backend locked (the apply of an
		 * ALTER TABLE of the group): a deadlock that PostgreSQL cannot see,
		 * which held the apply worker, every group's, until
		 * max_apply_lock_delay cancelled this (review 34, TAP 105). */
		if (dr_xact_unblock_apply(&next_lock_check))
			ereport(ERROR,
			        (errcode(ERRCODE_T_R_DEADLOCK_DETECTED),
			         errmsg("dragonraft.table_digest of group %lld holds a lock that the "
			                "apply worker waits for",
			                (long long)group_id),
			         errdetail("The digest waits until the group's entries are applied; the "
			                   "next one needs a table that the digest locked (a command "
			                   "that changes it)."),
			         errhint("Try again.")));
		if (GetCurrentTimestamp() >= end)
			ereport(ERROR,
			        (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			         errmsg("the entries of group %lld were not applied within %d ms",
			                (long long)group_id, DRAIN_TIMEOUT_MS),
			         errhint("See dragonraft.status: its entries may fail to apply, or "
			                 "wait "
			                 "for a lock.")));
		dr_shmem_want_applied((uint64)group_id, *handed); /* (a drain waits for a commit) */
		(void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
		                DRAIN_POLL_MS, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/* With job j asked for: wait for the drain, take the snapshot (*snap) and read the
 * group's applied index (*index), let the apply go on.  False, nothing taken,
 * if the engine worker (engine) exited meanwhile (wait_drained). */
static bool take_while_held(int64 group_id, pid_t engine, RepOriginId origin, DrSnapJob *j,
                            Snapshot *snap, uint64 *index, uint64 *handed)
{
	TimestampTz held;
	bool ended;
	char error[DR_ERROR_LEN];
	uint64 published;

	SpinLockAcquire(&j->mutex);
	my_generation = j->generation;
	j->pid = MyProcPid;
	j->waiter_pgprocno = MyProc->pgprocno;
	j->phase = DR_SNAP_DRAINING;
	SpinLockRelease(&j->mutex);
	held = GetCurrentTimestamp();
	dr_shmem_wake_engine();
	if (!wait_drained(group_id, engine, j, handed))
		return false;
	check_same_group(group_id);
	/* Nothing of the group commits now: this snapshot holds exactly its
	 * entries up to the origin's position (see the top of the file). */
	published = dr_shmem_group_applied((uint64)group_id);
	*snap = RegisterSnapshot(GetLatestSnapshot());
	dr_snapshot_testing_hold_pause();
	*index = origin == InvalidRepOriginId ? 0 : replorigin_get_progress(origin, false);
	SpinLockAcquire(&j->mutex);
	/* The engine worker says DONE before it lets the apply go on: not DONE
	 * now, the apply was still held when the snapshot was taken. */
	ended = j->phase == DR_SNAP_DONE;
	if (!ended) {
		j->index = *index;
		j->taken = true;
	}
	strlcpy(error, j->error, sizeof(error));
	SpinLockRelease(&j->mutex);
	if (ended && running_engine() != engine) {
		UnregisterSnapshot(*snap);
		return false;
	}
	if (ended) {
		UnregisterSnapshot(*snap);
		ereport(ERROR,
		        (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		         errmsg("the hold of the apply of group %lld ended before the digest "
		                "took its snapshot",
		                (long long)group_id),
		         error[0] ? errdetail("%s", dr_sentence(error)) : 0,
		         errhint("Try again.")));
	}
	/* Held until after the read of the origin (not DONE above): nothing of
	 * the group committed meanwhile.  (A hold that ended abnormally lets the
	 * apply go on: 55000 above, not this.) */
	if (*index != published) {
		UnregisterSnapshot(*snap);
		ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
		                errmsg("the applied index of group %lld moved from %llu to %llu "
		                       "while its apply was held for the digest",
		                       (long long)group_id, (unsigned long long)published,
		                       (unsigned long long)*index),
		                errhint("Try again.")));
	}
	free_job();
	last_hold_us = (long)(GetCurrentTimestamp() - held);
	return true;
}

/* take_while_held, the job freed however it ends. */
static bool take_guarded(int64 group_id, pid_t engine, RepOriginId origin, Snapshot *snap,
                         uint64 *index, uint64 *handed)
{
	bool taken = false;

	PG_TRY();
	{
		taken = take_while_held(group_id, engine, origin, dr_snapshot_job(my_job), snap,
		                        index, handed);
	}
	PG_CATCH();
	{
		free_job();
		PG_RE_THROW();
	}
	PG_END_TRY();
	free_job();
	return taken;
}

/*
 * Hold the group's apply, take the snapshot (registered, returned) and read
 * the group's applied index (*index), let the apply go on: the hold ends on
 * every way out.  The engine worker that holds the apply may exit before the
 * snapshot is taken (a restart: the next one takes the groups up again, the
 * same logs): the digest asks the next one, within the drain's time.
 * Before, it failed with 55000, the engine worker not running or the group
 * not running here, where nothing was wrong with the group (review 60).
 */
static Snapshot take_held_snapshot(int64 group_id, RepOriginId origin, uint64 *index)
{
	TimestampTz end = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), DRAIN_TIMEOUT_MS);
	Snapshot snap = NULL;
	uint64 handed = 0;
	pid_t engine;

	if (!exit_hooked) {
		before_shmem_exit(free_job_at_exit, (Datum)0);
		exit_hooked = true;
	}
	for (;;) {
		/* (the caller saw it run; then, the next one) */
		while ((engine = running_engine()) == 0) {
			if (GetCurrentTimestamp() >= end)
				dr_sql_groups_check_engine(); /* its error, 55000 */
			dr_shmem_engine_wait();
			CHECK_FOR_INTERRUPTS();
		}
		check_group(group_id, false);
		check_same_group(group_id);
		my_job = dr_snapshot_job_alloc((uint64)group_id, DR_SNAP_DIGEST);
		if (my_job < 0)
			ereport(ERROR,
			        (errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
			         errmsg("too many snapshots are being made or loaded on this node "
			                "(%d)",
			                DR_SNAP_JOBS),
			         errhint("See dragonraft.stat_progress_snapshot, and try again.")));
		if (take_guarded(group_id, engine, origin, &snap, index, &handed))
			break;
		ereport(DEBUG1, (errmsg("dragonraft engine worker exited while the digest of "
		                        "group %lld waited for its hold; it asks the next one",
		                        (long long)group_id)));
	}
	if (*index < handed)
		elog(ERROR, "group %lld applied %llu, less than the %llu handed over",
		     (long long)group_id, (unsigned long long)*index, (unsigned long long)handed);
	return snap;
}

/* sum += h, modulo 2^256, both big-endian. */
static void add256(uint8 sum[32], const uint8 h[32])
{
	unsigned carry = 0;

	for (int i = 31; i >= 0; i--) {
		unsigned v = (unsigned)sum[i] + h[i] + carry;

		sum[i] = (uint8)v;
		carry = v >> 8;
	}
}

typedef struct DigestCol {
	int att; /* in the tuple descriptor */
	const char *name;
	FmgrInfo send;
	Oid type;
	bool oids; /* its send form names types by OID */
} DigestCol;

typedef enum FormKind { FK_PLAIN, FK_ARRAY, FK_RECORD, FK_RANGE, FK_MULTIRANGE } FormKind;

/* What the send form of a value of type is; *inner: the type of its items. */
static FormKind form_kind(Oid type, Oid *inner)
{
	Oid base = getBaseType(type);
	char t = get_typtype(base);

	*inner = InvalidOid;
	if (t == TYPTYPE_COMPOSITE)
		return FK_RECORD;
	if (t == TYPTYPE_RANGE) {
		*inner = get_range_subtype(base);
		return FK_RANGE;
	}
	if (t == TYPTYPE_MULTIRANGE) {
		*inner = get_multirange_range(base);
		return FK_MULTIRANGE;
	}
	*inner = get_element_type(base);
	return OidIsValid(*inner) ? FK_ARRAY : FK_PLAIN;
}

static uint32 get_be32(const uint8 *p)
{
	return (uint32)p[0] << 24 | (uint32)p[1] << 16 | (uint32)p[2] << 8 | p[3];
}

static void pg_attribute_noreturn() bad_form(Oid type)
{
	elog(ERROR, "unexpected binary form of a value of type %u", type);
}

/*
 * Zero the type OIDs in p[0, len), the send form of a value of type:
 * array_send's element type, record_send's column types, and those in the
 * items of either and of ranges and multiranges.  After its header, each
 * form is a list of items, each a length (-1: NULL) and the item's send
 * form, in a record preceded by the item's type.
 */
static void zero_oids(Oid type, uint8 *p, uint32 len)
{
	Oid inner, ignored;
	FormKind kind = form_kind(type, &inner);
	uint32 off = 0;

	check_stack_depth();
	switch (kind) {
	case FK_PLAIN:
		return;
	case FK_ARRAY: /* ndim, has nulls, element type, ndim x (dim, lower bound) */
		if (len < 12 || get_be32(p) > MAXDIM || len < 12 + 8 * get_be32(p))
			bad_form(type);
		memset(p + 8, 0, 4);
		off = 12 + 8 * get_be32(p);
		break;
	case FK_RANGE: /* flags */
		off = 1;
		break;
	case FK_RECORD: /* number of columns */
	case FK_MULTIRANGE: /* number of ranges */
		off = 4;
		break;
	}
	if (off > len)
		bad_form(type);
	if (kind != FK_RECORD && form_kind(inner, &ignored) == FK_PLAIN)
		return;
	while (off < len) {
		Oid item = inner;
		uint32 n;

		if (kind == FK_RECORD) {
			if (len - off < 4)
				bad_form(type);
			item = get_be32(p + off);
			memset(p + off, 0, 4);
			off += 4;
		}
		if (len - off < 4)
			bad_form(type);
		n = get_be32(p + off);
		off += 4;
		if (n == 0xffffffff) /* NULL */
			continue;
		if (n > len - off)
			bad_form(type);
		zero_oids(item, p + off, n);
		off += n;
	}
}

static int col_cmp(const void *a, const void *b)
{
	return strcmp(((const DigestCol *)a)->name, ((const DigestCol *)b)->name);
}

static void hash(EVP_MD_CTX *ctx, const void *p, size_t n)
{
	if (EVP_DigestUpdate(ctx, p, n) != 1)
		elog(ERROR, "could not compute SHA-256 hash");
}

void dr_table_digest_rel(Oid relid, Snapshot snap, uint64 *rows, uint8 sum[32])
{
	static EVP_MD_CTX *ctx;
	static EVP_MD *md;
	Relation rel = table_open(relid, AccessShareLock);
	TupleDesc desc = RelationGetDescr(rel);
	DigestCol *cols = palloc(sizeof(DigestCol) * Max(desc->natts, 1));
	int n = 0;
	MemoryContext row_cxt, old;
	TableScanDesc scan;
	TupleTableSlot *slot;

	if (ctx == NULL)
		ctx = EVP_MD_CTX_new();
	if (md == NULL)
		md = EVP_MD_fetch(NULL, "SHA256", NULL);
	if (ctx == NULL || md == NULL)
		elog(ERROR, "could not initialize SHA-256 context");
	for (int i = 0; i < desc->natts; i++) {
		Form_pg_attribute a = TupleDescAttr(desc, i);
		Oid func, inner, unsent;
		bool varlena;

		if (a->attisdropped)
			continue;
		/* replicate_table and execute() refuse such a column, but its type
		 * can lose its send function later (ALTER TYPE ... SET (SEND =
		 * NONE)), and an older build took it */
		if (OidIsValid(unsent = dr_unsent_type(a->atttypid)))
			ereport(ERROR,
			        (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			         errmsg("column \"%s\" of replicated table \"%s\" cannot be "
			                "digested: its type %s has no binary form",
			                NameStr(a->attname), RelationGetRelationName(rel),
			                format_type_be(a->atttypid)),
			         errdetail("Its values hold %s values, and type %s has no send "
			                   "function.",
			                   format_type_be(unsent), format_type_be(unsent)),
			         errhint("Convert or drop the column with dragonraft.execute: no "
			                 "member can receive its values either.")));
		getTypeBinaryOutputInfo(a->atttypid, &func, &varlena);
		fmgr_info(func, &cols[n].send);
		cols[n].type = a->atttypid;
		cols[n].oids = form_kind(a->atttypid, &inner) != FK_PLAIN;
		cols[n].att = i;
		cols[n].name = NameStr(a->attname);
		n++;
	}
	qsort(cols, n, sizeof(DigestCol), col_cmp);
	row_cxt = AllocSetContextCreate(CurrentMemoryContext, "table digest row",
	                                ALLOCSET_DEFAULT_SIZES);
	memset(sum, 0, 32);
	*rows = 0;
	scan = table_beginscan(rel, snap, 0, NULL);
	slot = table_slot_create(rel, NULL);
	while (table_scan_getnextslot(scan, ForwardScanDirection, slot)) {
		uint8 h[32];

		slot_getallattrs(slot);
		old = MemoryContextSwitchTo(row_cxt);
		if (EVP_DigestInit_ex(ctx, md, NULL) != 1)
			elog(ERROR, "could not compute SHA-256 hash");
		for (int k = 0; k < n; k++) {
			int i = cols[k].att;
			uint8 flag = slot->tts_isnull[i] ? 0 : 1;

			hash(ctx, cols[k].name, strlen(cols[k].name) + 1);
			hash(ctx, &flag, 1);
			if (flag) {
				bytea *b = SendFunctionCall(&cols[k].send, slot->tts_values[i]);
				uint32 len = VARSIZE(b) - VARHDRSZ;
				uint8 be[4] = {(uint8)(len >> 24), (uint8)(len >> 16),
				               (uint8)(len >> 8), (uint8)len};

				if (cols[k].oids)
					zero_oids(cols[k].type, (uint8 *)VARDATA(b), len);
				hash(ctx, be, 4);
				hash(ctx, VARDATA(b), len);
			}
		}
		if (EVP_DigestFinal_ex(ctx, h, NULL) != 1)
			elog(ERROR, "could not compute SHA-256 hash");
		add256(sum, h);
		MemoryContextSwitchTo(old);
		MemoryContextReset(row_cxt);
		if ((++*rows & 1023) == 0)
			CHECK_FOR_INTERRUPTS();
	}
	ExecDropSingleTupleTableSlot(slot);
	table_endscan(scan);
	MemoryContextDelete(row_cxt);
	table_close(rel, AccessShareLock);
	pfree(cols);
}

/*
 * dragonraft.table_digest(group_id): per replicated table of the group, in
 * table id order: group_id, applied_index (the same for all), relid, rows,
 * digest (64 hex digits).  No rows for a group without tables.
 */
Datum dr_table_digest(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *)fcinfo->resultinfo;
	int64 group_id;
	char origin_name[NAMEDATALEN];
	RepOriginId origin;
	List *relids, *now;
	ListCell *lc;
	Snapshot snap;
	uint64 index = 0;
	int client;
	TimestampTz started = GetCurrentTimestamp();

	if (PG_ARGISNULL(0) || PG_GETARG_INT64(0) < 1)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
		                errmsg("group id must be a positive integer")));
	group_id = PG_GETARG_INT64(0);
	InitMaterializedSRF(fcinfo, 0);
	dr_sql_groups_check_engine();
	check_group(group_id, false);
	digest_life = dr_shmem_group_life((uint64)group_id);
	if (TransactionIdIsValid(GetTopTransactionIdIfAny()))
		ereport(ERROR, (errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
		                errmsg("dragonraft.table_digest cannot run in a transaction that "
		                       "wrote"),
		                errdetail("Its own writes are not in the group's log yet."),
		                errhint("Run it in a transaction of its own.")));
	dr_origins_name((uint64)group_id, origin_name);
	origin = replorigin_by_name(origin_name, true);
	/* Locked before the hold, as the exporter does: a utility command of the
	 * group that changes one waits until the end of this transaction. */
	relids = dr_table_digest_tables(group_id);
	foreach (lc, relids)
		LockRelationOid(lfirst_oid(lc), AccessShareLock);

	snap = take_held_snapshot(group_id, origin, &index);
	PushActiveSnapshot(snap);
	now = dr_table_digest_tables(group_id);
	if (!equal(now, relids))
		ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		                errmsg("the tables of group %lld changed while their digest was "
		                       "prepared",
		                       (long long)group_id),
		                errhint("Try again.")));
	client = dr_client_encoding_db();
	PG_TRY();
	{
		foreach (lc, relids) {
			Datum values[5];
			bool nulls[5] = {false};
			uint8 sum[32];
			uint64 rows;
			char hex[65];

			dr_table_digest_rel(lfirst_oid(lc), snap, &rows, sum);
			for (int i = 0; i < 32; i++)
				snprintf(hex + 2 * i, 3, "%02x", sum[i]);
			values[0] = Int64GetDatum(group_id);
			values[1] = Int64GetDatum((int64)index);
			values[2] = ObjectIdGetDatum(lfirst_oid(lc));
			values[3] = Int64GetDatum((int64)rows);
			values[4] = CStringGetTextDatum(hex);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
	}
	PG_FINALLY();
	{
		dr_client_encoding_restore(client);
	}
	PG_END_TRY();
	PopActiveSnapshot();
	UnregisterSnapshot(snap);
	ereport(DEBUG1, (errmsg("dragonraft digested the %d tables of group %lld at entry %llu in "
	                        "%ld ms (its apply held %ld us)",
	                        list_length(relids), (long long)group_id, (unsigned long long)index,
	                        (long)((GetCurrentTimestamp() - started) / 1000), last_hold_us)));
	return (Datum)0;
}
