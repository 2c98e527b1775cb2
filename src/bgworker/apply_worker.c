/*
 * apply_worker.c - the apply worker (DESIGN §3, §4): the state machine of
 * every group on this node.  A dynamic background worker connected to
 * dragonraft.database, started by the engine worker, that receives committed
 * entries through a shm_mq in log order per group and applies them, several
 * entries of one group per transaction (a follower's transaction waits up to
 * dragonraft.apply_batch_delay for more: batch_wait_ms).  The group's applied index goes into
 * that same transaction's commit record through the group's replication
 * origin (origins.c), so it is exactly as durable as the effects.  Raft's
 * no-ops and membership entries change no rows: the transaction then gets an
 * XID anyway, or its commit record would not carry the origin's position.
 *
 * The engine worker may send an entry again (after this worker restarted);
 * entries at or below the applied index are skipped, and a gap is an error.
 *
 * An entry that fails to apply stops only its group: the transaction is
 * rolled back, the group is parked (its entries dropped here, held by the
 * engine worker, which keeps every entry until it is applied), its status
 * says apply_failed with the error, and the other groups go on.  The engine
 * worker sends the group's entries again after a pause that doubles from 1 s
 * up to 30 s while they keep failing (DR_APPLY_RESEND, pg_sm.c).
 * Its commits are asynchronous (synchronous_commit = off): the entries are
 * durable in the Raft log, and after a crash the engine replays those above
 * the applied index that reached the disk.
 *
 * A received full snapshot is loaded by a loader of its own (start_load), a
 * background worker, while this one applies the other groups.
 *
 * Entries are no-ops, membership changes, member info (dragonraft.member_info),
 * and the write path's change sets, table registrations and utility
 * commands (apply_rows.c).  On the leader a change set or registration
 * belongs to the backend that proposed it while that backend lives
 * (DESIGN §4): it applies the entry itself, in log order, and this worker
 * only skips it.  Its group's later entries wait here, in this worker's
 * memory, while the other groups' entries go on (one worker serves every
 * group, and a backend may take a while: its turn, its commit).  If the
 * backend gives up (its local commit failed, it was cancelled or it exited)
 * this worker applies the entry.  A backend waiting for a later turn that
 * holds a lock this worker waits for ends itself with 40003 (xact.c,
 * dr_xact_unblock_apply).
 */
#include "dragonraft.h"

#include <sys/stat.h>

#include "access/xact.h"
#include "apply.h"
#include "commands/extension.h"
#include "entry/entry.h"
#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "origins.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "raft/raft.h"
#include "raft/raft_msg.h"
#include "shmem.h"
#include "snapshot.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/procsignal.h"
#include "storage/shm_mq.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "write.h"

/* A batch (one transaction) ends at a group change, an empty queue or these. */
#define BATCH_ENTRIES 1000
#define BATCH_BYTES   (16 * 1024 * 1024)
/* A parked group is tried again after this, doubled at each failure up to the most. */
#define RETRY_MS     1000
#define MAX_RETRY_MS 30000

/* What this worker knows of a group. */
typedef struct ApplyGroup {
	uint64 group_id; /* hash key */
	uint64 made;     /* its shared entry's DrGroup.made when found (0: none) */
	RepOriginId origin;
	uint64 applied;      /* its last entry applied here (committed or in the open batch) */
	dlist_head waiting;  /* entries behind one a live backend applies (Deferred) */
	dlist_node parked;   /* in the list of groups with waiting entries */
	bool failed;         /* parked after a failure: its entries are dropped until the
	                      * engine worker sends them again (DR_APPLY_RESEND) */
	bool gone;           /* this node left the group: its entries are dropped */
	uint64 schema_index; /* its last utility command applied (committed) */
	uint64 schema_batch; /* the same within the open batch */
	BackgroundWorkerHandle *loader; /* loading a snapshot (its entries wait); NULL: not */
	int load_job;                   /* the loader's receiver job */
} ApplyGroup;

/* A message kept while its group waits for a backend. */
typedef struct Deferred {
	dlist_node node;
	DrApplyMsg msg;
	uint8 data[FLEXIBLE_ARRAY_MEMBER];
} Deferred;

static HTAB *groups;
static uint64 groups_made_seen;           /* dr_shared->groups_made when forget_remade looked */
static ApplyGroup *last_group;            /* the last entry's (NULL: none), without a hash lookup */
static ApplyGroup *loading[DR_SNAP_JOBS]; /* the groups with a loader */
static int n_loading;

static void park(uint64 gid, const char *message, bool corrupt);
static void end_batch(void);
static dlist_head parked_groups = DLIST_STATIC_INIT(parked_groups);
static SPIPlanPtr member_info_plan;

/* The open batch (transaction). */
static struct {
	ApplyGroup *ag; /* NULL: none open */
	int n;
	Size bytes;
	bool origin_set; /* replorigin_session_setup done */
	TimestampTz began;
	bool held; /* it waited for more entries, or began after a linger */
} batch;

/*
 * After the commit of a follower's batch that waited for more entries
 * (under load), the worker lingers: it sleeps up to apply_batch_delay
 * before it looks at the queue again, woken as in a batch's wait
 * (delay_latch), and applies what came meanwhile in a batch that commits
 * once the queue is empty.  Entries come to wait for the delay in the
 * queue, not in an open batch: a wake-up per batch under load, not two
 * (the first entry's, and the delay's end).  linger_group: the group of the
 * batch just committed (0: none); lingered: the worker comes from a linger.
 */
static uint64 linger_group;
static bool lingered;

int dr_apply_batch_delay = 5;

/*
 * The latch of the wait for more entries of the open batch: the shared
 * apply_delay_latch, not MyLatch, which the engine worker sets with each
 * pass's messages (shm_mq).  Woken for each of them, a follower's worker
 * under pgbench slept and woke once per entry (a context switch, and the
 * engine worker's kill()), to apply it and sleep again until the delay's
 * end: now they wait in the queue for it, and what must end the wait sooner
 * sets this latch: a wait for the group's applied index
 * (dr_shmem_want_applied), a message of another group or one that found the
 * queue full, the engine worker's detach (pg_sm.c), and this worker's
 * signals.  MyLatch if another process owns it (a predecessor on its way
 * out).
 */
static Latch *delay_latch;

/* The message received and not yet dealt with (valid until the next receive). */
static struct {
	const DrApplyMsg *m; /* NULL: none */
	const uint8 *data;
} in_hand;

/* What is being applied, for the error context and the error record. */
static struct {
	uint64 group_id;
	uint64 index;
	const char *what;
} applying;

static void on_apply_exit(int code, Datum arg)
{
	int pgprocno;

	SpinLockAcquire(&dr_shared->mutex);
	if (delay_latch == &dr_shared->apply_delay_latch)
		DisownLatch(delay_latch);
	delay_latch = MyLatch;
	dr_shared->apply_pid = 0;
	dr_shared->apply_pgprocno = -1;
	pgprocno = dr_shared->engine_pgprocno;
	SpinLockRelease(&dr_shared->mutex);
	if (pgprocno >= 0)
		SetLatch(&ProcGlobal->allProcs[pgprocno].procLatch);
}

/* Signals end the wait for more entries, as they end the others. */
static void delay_signal(void)
{
	int save_errno = errno;

	SetLatch(&dr_shared->apply_delay_latch);
	errno = save_errno;
}

static void apply_sigterm(SIGNAL_ARGS)
{
	delay_signal();
	die(postgres_signal_arg);
}

static void apply_sighup(SIGNAL_ARGS)
{
	delay_signal();
	SignalHandlerForConfigReload(postgres_signal_arg);
}

static void apply_sigint(SIGNAL_ARGS)
{
	delay_signal();
	StatementCancelHandler(postgres_signal_arg);
}

static void apply_sigusr1(SIGNAL_ARGS)
{
	delay_signal();
	procsignal_sigusr1_handler(postgres_signal_arg);
}

static void set_state(DrApplyState state)
{
	SpinLockAcquire(&dr_shared->mutex);
	dr_shared->apply_state = state;
	SpinLockRelease(&dr_shared->mutex);
}

static void apply_error_callback(void *arg)
{
	if (applying.group_id != 0)
		errcontext("dragonraft apply of entry %llu (%s) of group %llu",
		           (unsigned long long)applying.index, applying.what,
		           (unsigned long long)applying.group_id);
}

/*
 * Tell backends and the engine worker how far a group is applied, or that it
 * failed: then the pause (ms) before its entries come again.  Progress wakes
 * the engine worker only while it waits on it (pg_sm.c: want_apply_wakes).
 */
static int publish(uint64 group_id, uint64 applied, RepOriginId origin, const char *error,
                   bool corrupt)
{
	TimestampTz now = GetCurrentTimestamp();
	DrGroup *g;
	int pgprocno, delay = 0;

	LWLockAcquire(dr_shared->groups_lock, LW_SHARED);
	g = dr_shmem_group_find(group_id);
	if (g != NULL) {
		SpinLockAcquire(&g->mutex);
		if (error == NULL) {
			if (g->applied < applied)
				g->applied = applied;
			g->origin = origin;
			if (g->apply_failures > 0 && (g->member_state == DR_MEMBER_ACTIVE ||
			                              g->member_state == DR_MEMBER_RECOVERING))
				g->error[0] = '\0';
			g->apply_failures = 0;
			g->apply_corrupt = false;
			g->apply_retry_at = 0;
			dr_shmem_group_track_lag(g, now);
		} else {
			g->apply_errors++;
			g->apply_failures++;
			g->apply_corrupt = corrupt;
			delay = Min(RETRY_MS << Min(g->apply_failures - 1, 5), MAX_RETRY_MS);
			g->apply_retry_at = TimestampTzPlusMilliseconds(now, delay);
			/* (A snapshot that fails to load stops the group with this error.) */
			if (g->member_state == DR_MEMBER_ACTIVE ||
			    g->member_state == DR_MEMBER_RECOVERING)
				snprintf(g->error, sizeof(g->error), "apply worker: %s", error);
		}
		SpinLockRelease(&g->mutex);
		ConditionVariableBroadcast(&g->applied_cv);
	}
	LWLockRelease(dr_shared->groups_lock);
	SpinLockAcquire(&dr_shared->mutex);
	pgprocno = dr_shared->apply_wakes_engine || error != NULL ? dr_shared->engine_pgprocno : -1;
	SpinLockRelease(&dr_shared->mutex);
	if (pgprocno >= 0)
		SetLatch(&ProcGlobal->allProcs[pgprocno].procLatch);
	return delay;
}

/*
 * Whether backends' commits wake this worker (xact.c): only while entries of
 * theirs wait here (parked_groups); the engine worker hands over an entry of
 * a live local backend once that backend is done with it (pg_sm.c).  Set
 * before the last look at the waiting entries (retry_parked) and read by a
 * backend after it published its commit, both under dr_shared->mutex: one
 * of the two sees the other.
 */
static void want_commits(bool want)
{
	SpinLockAcquire(&dr_shared->mutex);
	dr_shared->apply_wants_commits = want;
	SpinLockRelease(&dr_shared->mutex);
}

/* group_id's entry in shared memory (DrGroup.made), 0 for none: a member on this node. */
static uint64 group_made(uint64 group_id)
{
	DrGroup *g;
	uint64 made;

	LWLockAcquire(dr_shared->groups_lock, LW_SHARED);
	g = dr_shmem_group_find(group_id);
	made = g != NULL ? g->made : 0;
	LWLockRelease(dr_shared->groups_lock);
	return made;
}

static bool group_here(uint64 group_id)
{
	return group_made(group_id) != 0;
}

/*
 * The group's origin, applied index and schema index, the first time it is
 * seen: looked up (the origin created) in transactions of their own, so the
 * caller commits an open batch first.  NULL for a group this node left: the
 * engine worker stops it before leave_group drops its origin, and its
 * entries already in the queue are dropped here.  Made again for them, the
 * origin outlived the group and marked this node a member that lost its
 * LogDB (regress membership in CI); so the group is looked for again after
 * an origin made here, which is dropped if the group was gone.  A group
 * seen gone by begin_batch stays so, its entries dropped: a node never
 * becomes a member again of a group it left (left_groups), and a join that
 * gave up had no entries.
 */
static ApplyGroup *find_group(uint64 group_id)
{
	ApplyGroup *ag = hash_search(groups, &group_id, HASH_FIND, NULL);
	RepOriginId origin;
	uint64 schema_index, made;

	if (ag == NULL) {
		made = group_made(group_id);
		if (made == 0)
			return NULL;
		/* (made when the member started: made here only if it was lost then) */
		origin = dr_origins_find(group_id, false);
		if (origin == InvalidRepOriginId) {
			origin =
			        dr_origins_find(group_id, true); /* may fail: nothing entered yet */
			if (!group_here(group_id)) {
				(void)dr_origins_drop(group_id); /* (logged if it failed) */
				return NULL;
			}
		}
		schema_index = dr_apply_rows_schema_index(group_id);
		/* Shared memory is new after a restart: writers record the schema from it. */
		dr_apply_rows_publish_schema(group_id, schema_index, true, 0);
		ag = hash_search(groups, &group_id, HASH_ENTER, NULL);
		ag->made = made;
		ag->origin = origin;
		ag->schema_index = ag->schema_batch = schema_index;
		ag->applied = replorigin_get_progress(origin, false);
		dlist_init(&ag->waiting);
		ag->failed = false;
		ag->gone = false;
		ag->loader = NULL;
	}
	return ag;
}

/* The group's applied index as backends may have moved it (outside a batch of it). */
static void refresh_applied(ApplyGroup *ag)
{
	DrGroup *g;

	LWLockAcquire(dr_shared->groups_lock, LW_SHARED);
	g = dr_shmem_group_find(ag->group_id);
	if (g != NULL) {
		SpinLockAcquire(&g->mutex);
		if (g->applied > ag->applied)
			ag->applied = g->applied;
		SpinLockRelease(&g->mutex);
	}
	LWLockRelease(dr_shared->groups_lock);
}

/*
 * Begin a batch of ag's entries; false (nothing begun) for a group this node
 * left since its origin was found (and maybe made again: another shared
 * entry, DrGroup.made, and another origin).  leave_group locks the origin,
 * waiting for an open batch, and drops it once the engine worker removed the
 * group: so the group is looked for with the origin locked.  Its entries
 * still in the queue applied with the origin, dropped or taken by a group
 * made since, moved that group's applied index past entries it never
 * applied; and a session of a dropped origin made its in-memory state again,
 * kept at checkpoints, one of max_replication_slots taken for nothing (TAP
 * 112).
 */
static bool begin_batch(ApplyGroup *ag, uint64 first)
{
	char activity[96];

	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	batch.ag = ag;
	ag->schema_batch = ag->schema_index;
	batch.n = 0;
	batch.bytes = 0;
	batch.began = GetCurrentTimestamp();
	batch.held = lingered;
	/* (leave_group waits for the batch's end, and a batch for leave_group's) */
	dr_origins_lock(ag->origin, AccessShareLock);
	if (group_made(ag->group_id) != ag->made) {
		SPI_finish();
		PopActiveSnapshot();
		AbortCurrentTransaction();
		end_batch();
		ag->gone = true;
		return false;
	}
	replorigin_session_setup(ag->origin);
	batch.origin_set = true;
	replorigin_session_origin = ag->origin;
	/*
	 * The origin is the only record of what this node applied: a new one
	 * (a new group, or a member that rejoins after losing its LogDB) starts
	 * from nothing, and so does the group's member info.
	 */
	if (ag->applied == 0) {
		Datum gid = Int64GetDatum((int64)ag->group_id);
		Oid type = INT8OID;

		if (SPI_execute_with_args("DELETE FROM dragonraft.member_info WHERE group_id = $1",
		                          1, &type, &gid, NULL, false, 0) != SPI_OK_DELETE)
			elog(ERROR, "could not clear dragonraft.member_info of group %llu",
			     (unsigned long long)ag->group_id);
	}
	snprintf(activity, sizeof(activity), "applying group %llu from entry %llu",
	         (unsigned long long)ag->group_id, (unsigned long long)first);
	pgstat_report_activity(STATE_RUNNING, activity);
	return true;
}

/* The batch's transaction ended (committed or aborted): so does its origin session. */
static void end_batch(void)
{
	if (batch.origin_set) {
		replorigin_session_reset();
		batch.origin_set = false;
	}
	replorigin_session_origin = InvalidRepOriginId;
	replorigin_session_origin_lsn = InvalidXLogRecPtr;
	replorigin_session_origin_timestamp = 0;
	batch.ag = NULL;
	applying.group_id = 0;
}

/* May the apply hold group_id's entries for more?  Says first that it waits
 * (apply_delaying): a wait that asks for the group's applied index from then
 * on wakes it (dr_shmem_want_applied). */
static bool may_hold(uint64 group_id)
{
	bool wait;
	DrGroup *g;

	pg_atomic_write_u64(&dr_shared->apply_delaying, group_id);
	pg_memory_barrier(); /* (against dr_shmem_want_applied's exchange, and send_msg's count) */
	LWLockAcquire(dr_shared->groups_lock, LW_SHARED);
	g = dr_shmem_group_find(group_id);
	if (g != NULL) {
		uint64 wanted = pg_atomic_read_u64(&g->wanted);

		SpinLockAcquire(&g->mutex);
		wait = g->role != RAFT_LEADER && wanted <= g->applied;
		SpinLockRelease(&g->mutex);
	} else
		wait = false;
	LWLockRelease(dr_shared->groups_lock);
	return wait;
}

/*
 * Could an entry that waits here (retry_parked) be applied now: its group's
 * load ended (check_loads, before), or its backend is done with it?  A held
 * batch ends for it (review 73: the entries of a group whose snapshot load
 * ended, and those behind a backend's entry, waited for the whole
 * apply_batch_delay behind another group's held batch).  Says first that
 * backends' commits wake this worker (xact.c, dr_shmem_wake_apply: the delay
 * latch too), as the idle worker's last look does.
 */
static bool parked_due(void)
{
	dlist_iter it;

	if (dlist_is_empty(&parked_groups))
		return false;
	want_commits(true);
	dlist_foreach(it, &parked_groups)
	{
		ApplyGroup *ag = dlist_container(ApplyGroup, parked, it.cur);
		Deferred *d = dlist_head_element(Deferred, node, &ag->waiting);
		struct entry_header h;

		if (ag->loader != NULL)
			continue;
		if (d->msg.type == RAFT_ENTRY_NORMAL && d->msg.len > 0 &&
		    entry_decode_header(d->data, d->msg.len, &h) == ENTRY_OK &&
		    dr_apply_rows_owned(&h))
			continue; /* (still its backend's) */
		return true;
	}
	return false;
}

/*
 * Does the open batch wait for more entries (the queue is empty)?  The
 * milliseconds it may wait, or 0 to commit now.  Committed at once, a
 * follower under load had about two entries per transaction, and a third of
 * the apply's CPU went to the transaction (its commit, the tables opened,
 * the search_path set); 6.6 entries with 5 ms under pgbench.  A follower's
 * applied index serves waits on this node (read barriers, table_digest's
 * drain, leave_group's lock), which ask for it (dr_shmem_want_applied: the
 * group's wanted index above its applied one); a backend's own entry (its
 * commit, execute()) commits the batch before it anyway.  Not on a leader:
 * its backends apply their own entries, in log order after these, and may
 * wait for a row lock this batch holds.
 */
static long batch_wait_ms(void)
{
	long left;

	if (dr_apply_batch_delay <= 0 || lingered)
		return 0; /* (after a linger: its entries waited already) */
	left = dr_apply_batch_delay -
	       (long)TimestampDifferenceMilliseconds(batch.began, GetCurrentTimestamp());
	if (left <= 0 || !may_hold(batch.ag->group_id) || parked_due())
		return 0;
	batch.held = true;
	return left;
}

static void commit_batch(void)
{
	ApplyGroup *ag = batch.ag;

	applying.group_id = ag->group_id;
	applying.index = ag->applied;
	applying.what = "commit";
	if (delay_latch != NULL) { /* (a snapshot loader's commit is not the apply worker's) */
		pg_atomic_write_u64(&dr_shared->apply_delaying, 0);
		linger_group = batch.held ? ag->group_id : 0;
		lingered = false;
	}
	replorigin_session_origin_lsn = ag->applied;
	replorigin_session_origin_timestamp = GetCurrentTimestamp();
	/* Without an XID the commit record would not carry the origin's position. */
	(void)GetTopTransactionId();
	dr_apply_rows_pin_path();
	dr_apply_rows_close();
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	end_batch();
	if (ag->schema_batch != ag->schema_index) {
		/* before applied moves past it: a backend at its turn must see it */
		ag->schema_index = ag->schema_batch;
		dr_apply_rows_publish_schema(ag->group_id, ag->schema_index, true, 0);
	}
	publish(ag->group_id, ag->applied, ag->origin, NULL, false);
}

/* The (group, node) pairs whose member info's encoding or locale this
 * worker warned about: once each, not at each restart of the member. */
typedef struct WarnedKey {
	uint64 group_id;
	uint32 node_id;
} WarnedKey;
static HTAB *locale_warned;

/* A member's database has another encoding or locale: execute() and
 * replicate_table() are refused while it does (sql_groups.c); say so here
 * on every member, once for each (group, node). */
static void warn_locale(uint64 group_id, const struct entry_member_info *mi, const char *encoding,
                        const char *collate, const char *ctype, const char *provider,
                        const char *icu_locale)
{
	WarnedKey key;
	char *detail;
	bool found;

	if (locale_warned == NULL) {
		HASHCTL ctl;

		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = ctl.entrysize = sizeof(WarnedKey);
		ctl.hcxt = TopMemoryContext;
		locale_warned = hash_create("dragonraft locale warnings", 64, &ctl,
		                            HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	memset(&key, 0, sizeof(key));
	key.group_id = group_id;
	key.node_id = mi->node_id;
	detail = dr_locale_differs(mi->node_id, encoding, collate, ctype, provider, icu_locale);
	if (detail == NULL) {
		(void)hash_search(locale_warned, &key, HASH_REMOVE, NULL); /* fixed: say it again */
		return;
	}
	(void)hash_search(locale_warned, &key, HASH_ENTER, &found);
	if (found)
		return;
	ereport(WARNING,
	        (errmsg("node %u, a member of group %llu, has a database of another encoding or "
	                "locale than database \"%s\" of node %d",
	                mi->node_id, (unsigned long long)group_id, dr_database, dr_node_id),
	         errdetail("%s  The group's execute() and replicate_table() are refused while it "
	                   "does; a write applied with another encoding stops that member's apply, "
	                   "and one whose generated columns or CHECKs compare or convert text may "
	                   "diverge.",
	                   detail),
	         errhint("Every member's dragonraft.database must have the same encoding and "
	                 "locale: remove the odd member (dragonraft.remove_member or "
	                 "dragonraft.leave_group).")));
}

static void apply_member_info(uint64 group_id, uint64 index, const struct entry_header *h)
{
	struct entry_member_info mi;
	Datum values[9];
	char nulls[9] = {' ', ' ', ' ', ' ', 'n', 'n', 'n', 'n', 'n'};
	char *encoding = NULL, *collate = NULL, *ctype = NULL, *provider = NULL, *icu = NULL;
	int rc = entry_decode_member_info(h, &mi);

	if (rc != ENTRY_OK)
		ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED),
		                errmsg("malformed member info entry: %s", entry_strerror(rc))));
	if (member_info_plan == NULL) {
		Oid types[9] = {INT8OID, INT4OID, TEXTOID, INT8OID, TEXTOID,
		                TEXTOID, TEXTOID, TEXTOID, TEXTOID};

		/* Entries come in log order above the origin's position: the last one
		 * wins (an older build's says no encoding nor locale: NULL). */
		member_info_plan = SPI_prepare(
		        "INSERT INTO dragonraft.member_info AS m "
		        "(group_id, node_id, client_address, since_index, encoding, lc_collate, "
		        "lc_ctype, locale_provider, icu_locale) "
		        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
		        "ON CONFLICT (group_id, node_id) DO UPDATE "
		        "SET client_address = EXCLUDED.client_address, since_index = "
		        "EXCLUDED.since_index, encoding = EXCLUDED.encoding, "
		        "lc_collate = EXCLUDED.lc_collate, lc_ctype = EXCLUDED.lc_ctype, "
		        "locale_provider = EXCLUDED.locale_provider, icu_locale = "
		        "EXCLUDED.icu_locale",
		        9, types);
		if (member_info_plan == NULL || SPI_keepplan(member_info_plan) != 0)
			elog(ERROR, "SPI_prepare failed for dragonraft.member_info: %s",
			     SPI_result_code_string(SPI_result));
	}
	values[0] = Int64GetDatum((int64)group_id);
	values[1] = Int32GetDatum((int32)mi.node_id);
	values[2] = PointerGetDatum(cstring_to_text_with_len(mi.client_addr, mi.client_addr_len));
	values[3] = Int64GetDatum((int64)index);
	if (mi.has_locale) {
		/* (an id this build does not know is named as such: not this one's) */
		encoding = PG_VALID_ENCODING(mi.encoding)
		                   ? pstrdup(pg_encoding_to_char(mi.encoding))
		                   : psprintf("encoding id %d", mi.encoding);
		provider = pstrdup(dr_locale_provider_name(mi.locale_provider));
		collate = pnstrdup(mi.collate, mi.collate_len);
		ctype = pnstrdup(mi.ctype, mi.ctype_len);
		if (mi.icu_locale_len > 0)
			icu = pnstrdup(mi.icu_locale, mi.icu_locale_len);
		values[4] = CStringGetTextDatum(encoding);
		values[5] = CStringGetTextDatum(collate);
		values[6] = CStringGetTextDatum(ctype);
		values[7] = CStringGetTextDatum(provider);
		values[8] = icu != NULL ? CStringGetTextDatum(icu) : (Datum)0;
		memset(nulls + 4, ' ', 4);
		nulls[8] = icu != NULL ? ' ' : 'n';
	}
	rc = SPI_execute_plan(member_info_plan, values, nulls, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "dragonraft.member_info insert failed: %s", SPI_result_code_string(rc));
	if (mi.has_locale)
		warn_locale(group_id, &mi, encoding, collate, ctype, provider, icu);
}

/*
 * An entry's text (values in their send form, names, definitions, commands)
 * is in its proposer's database encoding: a member whose database has
 * another would take it for other characters (UTF8 'é' as LATIN1 'Ã©') or
 * stop at bytes invalid here.  It stops the group at the entry instead,
 * before anything of it is stored, naming both.  (Entries of older builds
 * say no encoding: applied as they were.)
 */
static void check_encoding(uint64 group_id, uint64 index, const struct entry_header *h)
{
	struct entry_owner owner;
	struct entry_ddl ddl;
	uint32 node_id = 0;

	if (h->encoding < 0 || h->encoding == GetDatabaseEncoding())
		return;
	if (entry_is_ddl(h->type) ? entry_decode_ddl(h, &ddl) == ENTRY_OK
	                          : entry_decode_owner(h, &owner) == ENTRY_OK)
		node_id = entry_is_ddl(h->type) ? ddl.node_id : owner.node_id;
	ereport(ERROR,
	        (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
	         errmsg("node %u wrote entry %llu of group %llu in encoding %s, but database "
	                "\"%s\" of node %d has encoding %s",
	                node_id, (unsigned long long)index, (unsigned long long)group_id,
	                PG_VALID_ENCODING(h->encoding) ? pg_encoding_to_char(h->encoding) : "?",
	                dr_database, dr_node_id, GetDatabaseEncodingName()),
	         errdetail("Nothing of it was applied: its text would be taken for other "
	                   "characters here.  This member applies none of the group's entries "
	                   "until it is fixed: remove the odd member from the group, or move it "
	                   "to a database of the others' encoding."),
	         errhint("Give every member of a group a database of the same encoding.")));
}

/*
 * A table's registration (or resend) gives this member the table that its
 * proposer's rows fill: a member whose database has another locale than
 * the proposer's, as the proposer's member info applied so far says it,
 * computes the rows' stored generated columns and CHECKs on text otherwise
 * (upper() of 'é' under LC_CTYPE "C"), and diverges silently or stops at a
 * row.  A command (execute()) defines such columns and CHECKs, and indexes
 * on expressions, and computes them over the rows a member holds (ALTER
 * TABLE ... ADD COLUMN ... GENERATED rewrites them): every command but a
 * barrier is checked, as the gate refuses every one but a barrier (a
 * command's text does not tell what computes with the locale: a function,
 * a domain, a default, an index expression, a collation copied from the
 * database's), and the CREATE TABLE that comes before a table's
 * registration is refused with it (review 45 hole 3).  The gate
 * (sql_groups.c) refuses them while the odd member's info is known on the
 * proposer; this is for the member it could not see: one that joined since
 * and replays the log, or whose info the proposer had not applied yet.  It
 * stops the group here before anything of the entry is done, as
 * check_encoding does.  The proposer's info comes before its registration
 * or command in the log: the proposer waits for it
 * (dr_sql_groups_wait_info).  One with no proposer's locale before it is of
 * an older build's log (whose member info came once it knew a leader, often
 * after a replicate_table() or execute() right after create_group(): review
 * 45), or of a member whose info says no locale (an older build's, or names
 * an entry cannot carry).  It is applied as it was: refusing it would stop
 * every member that replays such a log, of the same locale or not.  A
 * WARNING says that this member could not check it.
 */
void dr_apply_check_proposer_locale(uint64 group_id, uint64 index, uint32 node_id, bool command)
{
	const char *did = command ? "proposed a command" : "registered a table";
	bool known = false;
	char *detail;

	if (node_id == (uint32)dr_node_id)
		return;
	detail = dr_sql_groups_member_locale_differs((int64)group_id, node_id, &known);
	if (!known)
		ereport(WARNING,
		        (errmsg("node %u %s in entry %llu of group %llu with no member info before "
		                "it that says its database's locale",
		                node_id, did, (unsigned long long)index,
		                (unsigned long long)group_id),
		         errdetail("Database \"%s\" of node %d applies it as it comes, unable to "
		                   "check that node %u's database has the same locale.  Older "
		                   "builds' member infos say no locale, or could come after a "
		                   "registration or command in the log.",
		                   dr_database, dr_node_id, node_id),
		         errhint("Compare the group's tables with the other members' "
		                 "(dragonraft.table_digest) if the members' locales may differ.")));
	if (detail == NULL)
		return;
	ereport(ERROR,
	        (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
	         errmsg("node %u %s in entry %llu of group %llu with a database of another locale "
	                "than database \"%s\" of node %d",
	                node_id, did, (unsigned long long)index, (unsigned long long)group_id,
	                dr_database, dr_node_id),
	         errdetail("%s  Nothing of it was applied: this member would compute %s "
	                   "otherwise.  It applies none of the group's entries until it is fixed.",
	                   detail,
	                   command ? "what the command defines or checks (generated columns, "
	                             "CHECKs, indexes on expressions)"
	                           : "the table's generated columns and CHECKs"),
	         errhint("%s", dr_locale_rejoin_hint(group_id))));
}

/* A registration's proposer is its owner (a malformed one is refused by its
 * decoding). */
static void check_proposer_locale(uint64 group_id, uint64 index, const struct entry_header *h)
{
	struct entry_owner owner;

	if (entry_decode_owner(h, &owner) == ENTRY_OK)
		dr_apply_check_proposer_locale(group_id, index, owner.node_id, false);
}

/*
 * Apply one entry of ag, or return false when a live local backend applies
 * it itself (its group then waits).
 */
static bool apply_entry(ApplyGroup *ag, const DrApplyMsg *m, const uint8 *data)
{
	struct entry_header h;
	bool has_header = false;
	int rc;

	if (ag->gone)
		return true; /* left: its entries are dropped */
	if (ag->loader != NULL)
		return false; /* after its snapshot */
	if (batch.ag != NULL &&
	    (batch.ag != ag || batch.n >= BATCH_ENTRIES || batch.bytes >= BATCH_BYTES))
		commit_batch();
	applying.group_id = m->group_id;
	applying.index = m->index;
	applying.what = m->type == RAFT_ENTRY_CONF_CHANGE ? "membership change"
	                : m->len == 0                     ? "no-op"
	                                                  : "entry";
	if (m->type == RAFT_ENTRY_NORMAL && m->len > 0) {
		rc = entry_decode_header(data, m->len, &h);
		if (rc != ENTRY_OK) {
			/* A newer dragonraft's entry is no corruption: another node runs it. */
			bool newer = rc == ENTRY_ERR_VERSION || rc == ENTRY_ERR_TYPE;

			ereport(ERROR,
			        (errcode(newer ? ERRCODE_FEATURE_NOT_SUPPORTED
			                       : ERRCODE_DATA_CORRUPTED),
			         errmsg("undecodable entry: %s", entry_strerror(rc)),
			         newer ? errhint("An entry written by a newer dragonraft needs "
			                         "that version on this node too.")
			               : 0));
		}
		applying.what = entry_type_name(h.type);
		has_header = true;
		/* A command begins a batch: if it fails here, what came before stays
		 * applied, and the group stops right before it. */
		if (entry_is_ddl(h.type) && batch.ag == ag)
			commit_batch();
	}
	/* Owned by a live backend?  (Read before applied: see shmem.h NOTES.) */
	if (has_header && dr_apply_rows_owned(&h)) {
		if (batch.ag == ag)
			commit_batch(); /* its turn needs our applied index */
		refresh_applied(ag);
		if (m->index > ag->applied)
			return false;
	}
	if (batch.ag != ag)
		refresh_applied(ag);
	if (m->index <= ag->applied)
		return true; /* applied before this worker restarted, or by its backend */
	/*
	 * A group this node left since (its shared entry gone, or made again)
	 * has no applied index to refresh from: the entries that its backends
	 * applied last seemed missing.  A writer that ended with 40003 because
	 * leave_group came first (xact.c pre_commit) hands its entry here, after
	 * its predecessor's backend applied its own: "entries 15 to 15 of group
	 * 20 are missing", logged, and the gone group parked (review 46, TAP
	 * 126).  Dropped, as begin_batch drops them.
	 */
	if (m->index != ag->applied + 1 && group_made(ag->group_id) != ag->made) {
		ag->gone = true;
		return true;
	}
	if (m->index != ag->applied + 1)
		ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
		                errmsg("entries %llu to %llu of group %llu are missing",
		                       (unsigned long long)ag->applied + 1,
		                       (unsigned long long)m->index - 1,
		                       (unsigned long long)m->group_id)));
	if (has_header)
		check_encoding(m->group_id, m->index, &h);
	if (batch.ag == NULL && !begin_batch(ag, m->index))
		return true; /* a group this node left: dropped */

	if (has_header) {
		if (h.type != ENTRY_CHANGE_SET)
			dr_apply_rows_pin_path(); /* its queries are the worker's own */
		switch (h.type) {
		case ENTRY_MEMBER_INFO:
		case ENTRY_MEMBER_INFO_V1:
			apply_member_info(m->group_id, m->index, &h);
			break;
		case ENTRY_CHANGE_SET:
			dr_apply_rows_change_set(m->group_id, m->index, ag->schema_batch, &h);
			break;
		case ENTRY_REGISTER_TABLE:
		case ENTRY_REGISTER_TABLE_V2:
		case ENTRY_REGISTER_TABLE_V1:
		case ENTRY_RESEND_TABLE:
		case ENTRY_RESEND_TABLE_V1:
			check_proposer_locale(m->group_id, m->index, &h);
			dr_apply_rows_register(m->group_id, m->index, ag->schema_batch, &h);
			break;
		case ENTRY_DDL:
		case ENTRY_DDL_V2:
		case ENTRY_DDL_V1:
			/* (one skipped for another that came first, or a barrier, has a
			 * row of the history, but changed nothing: the group's last
			 * command stays, and a writer waiting for a new leader's backlog
			 * does not fail for it: xact.c) */
			if (dr_apply_rows_ddl(m->group_id, m->index, ag->schema_batch, &h))
				ag->schema_batch = m->index;
			break;
		}
	}
	ag->applied = m->index;
	batch.n++;
	batch.bytes += m->len;
	/* ... and ends one: what comes after sees it committed, as on the node that
	 * proposed it (review 19 F6: a value ALTER TYPE ... ADD VALUE added cannot be
	 * used in its own transaction, and a follower that applied the next change
	 * set with it stopped there for good). */
	if (has_header && entry_is_ddl(h.type))
		commit_batch();
	/* A registration (or resend) holds its table's AccessExclusiveLock (its
	 * capture trigger): every query of the table here waits for its commit,
	 * and asks nothing of this worker (review 37: not after apply_batch_delay).
	 * (The members' addresses, rare, end the batch too.) */
	else if (has_header && h.type != ENTRY_CHANGE_SET && !entry_is_member_info(h.type))
		commit_batch();
	return true;
}

static void defer(ApplyGroup *ag, const DrApplyMsg *m, const uint8 *data)
{
	Deferred *d = MemoryContextAlloc(TopMemoryContext, offsetof(Deferred, data) + m->len);

	d->msg = *m;
	memcpy(d->data, data, m->len);
	if (dlist_is_empty(&ag->waiting))
		dlist_push_tail(&parked_groups, &ag->parked);
	dlist_push_tail(&ag->waiting, &d->node);
}

/* Apply what waits behind entries that backends applied or gave up. */
static void retry_parked(void)
{
	dlist_mutable_iter it;

	dlist_foreach_modify(it, &parked_groups)
	{
		ApplyGroup *ag = dlist_container(ApplyGroup, parked, it.cur);

		while (!dlist_is_empty(&ag->waiting)) {
			Deferred *d = dlist_head_element(Deferred, node, &ag->waiting);

			if (!apply_entry(ag, &d->msg, d->data))
				break;
			dlist_pop_head_node(&ag->waiting);
			pfree(d);
		}
		if (dlist_is_empty(&ag->waiting))
			dlist_delete(&ag->parked);
	}
}

/* Forget the entries of ag that wait for backends. */
static void drop_waiting(ApplyGroup *ag)
{
	if (dlist_is_empty(&ag->waiting))
		return;
	dlist_delete(&ag->parked);
	while (!dlist_is_empty(&ag->waiting))
		pfree(dlist_container(Deferred, node, dlist_pop_head_node(&ag->waiting)));
}

/* A loader's argument: its job and the job's generation (DR_SNAP_JOBS <= 16). */
static Datum loader_arg(int job, uint32 generation)
{
	return Int32GetDatum((int32)((generation & 0x7FFFFFF) << 4 | (uint32)job));
}

/*
 * Loaders of a predecessor (an apply worker that exited while they ran) end
 * before this worker applies anything: one that committed later would move
 * a group behind its back.  Their loads come again with the engine
 * worker's messages.  A new engine worker ends them too, before it reads
 * the groups' origins (engine_worker.c): a loader that outlived the engine
 * worker could commit under the next one, after that one read the origin
 * and before its apply worker started (review 48, TAP 129).
 */
void dr_apply_end_orphan_loaders(void)
{
	for (int i = 0; i < DR_SNAP_JOBS; i++) {
		DrSnapJob *j = dr_snapshot_job(i);

		for (;;) {
			bool loader;
			pid_t pid;

			SpinLockAcquire(&j->mutex);
			loader = j->group_id != 0 && j->role == DR_SNAP_RECEIVER;
			pid = j->pid;
			/* Ended, or not started: then it finds its job gone. */
			if (loader && pid == 0)
				j->group_id = 0;
			SpinLockRelease(&j->mutex);
			if (!loader || pid == 0)
				break;
			(void)kill(pid, SIGTERM); /* its exit clears pid (loader_exit) */
			(void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
			                10, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
		}
	}
}

/*
 * A received snapshot replaces the group's tables (snapshot_load.c) in one
 * transaction that sets its origin to the snapshot's index, made by a
 * loader of its own (dr_snapshot_loader_main) while this worker applies the
 * other groups; the group's entries that come meanwhile wait here, and
 * those at or below the index are skipped after it.
 */
static void start_load(const DrApplyMsg *m, const uint8 *data)
{
	BackgroundWorker w;
	MemoryContext old;
	ApplyGroup *ag;
	DrSnapJob *j;
	struct stat st;
	bool registered;
	int job;

	if (batch.ag != NULL)
		commit_batch();
	applying.group_id = m->group_id;
	applying.index = m->index;
	applying.what = "snapshot";
	if (m->len == 0 || data[m->len - 1] != '\0' || m->len > MAXPGPATH)
		elog(ERROR, "malformed snapshot message");
	ag = find_group(m->group_id);
	if (ag == NULL || m->made < ag->made || ag->gone || ag->failed || ag->loader != NULL)
		return; /* left (an earlier group's); parked: the engine worker sends it again;
		         * or loading one already */
	refresh_applied(ag);
	if (m->index <= ag->applied)
		return;
	drop_waiting(ag);
	dr_snapshot_worker(&w, "dr_snapshot_loader_main", "loader", m->group_id);
	job = dr_snapshot_job_alloc(m->group_id, DR_SNAP_RECEIVER);
	if (job < 0)
		ereport(ERROR,
		        (errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
		         errmsg("dragonraft cannot load the snapshot of group %llu: it makes or "
		                "loads %d snapshots already",
		                (unsigned long long)m->group_id, DR_SNAP_JOBS),
		         errdetail("The load is tried again once one of them ends.")));
	j = dr_snapshot_job(job);
	if (stat((const char *)data, &st) != 0)
		st.st_size = 0; /* the loader says why it cannot open it */
	SpinLockAcquire(&j->mutex);
	j->index = m->index;
	j->bytes_total = (uint64)st.st_size; /* its progress is shown from now on */
	strlcpy(j->path, (const char *)data, sizeof(j->path));
	w.bgw_main_arg = loader_arg(job, j->generation);
	SpinLockRelease(&j->mutex);
	/* The group it loads into (not one made again since: the loader looks) */
	memcpy(w.bgw_extra, &ag->made, sizeof(ag->made));
	old = MemoryContextSwitchTo(TopMemoryContext); /* the handle outlives transactions */
	registered = RegisterDynamicBackgroundWorker(&w, &ag->loader);
	MemoryContextSwitchTo(old);
	if (!registered) {
		ag->loader = NULL;
		dr_snapshot_job_free(job);
		ereport(ERROR, (errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
		                errmsg("no background worker slot is free for the snapshot load of "
		                       "group %llu",
		                       (unsigned long long)m->group_id),
		                errhint("Raise max_worker_processes.")));
	}
	ag->load_job = job;
	loading[n_loading++] = ag;
}

/* A loader ended: the group goes on after its snapshot, or is parked with its error. */
static void finish_load(ApplyGroup *ag)
{
	DrSnapJob *j = dr_snapshot_job(ag->load_job);
	char error[DR_ERROR_LEN];
	bool done;
	int code;

	if (batch.ag != NULL)
		commit_batch(); /* what follows takes transactions of its own */
	SpinLockAcquire(&j->mutex);
	done = j->phase == DR_SNAP_DONE;
	code = j->rc;
	memcpy(error, j->error, sizeof(error));
	SpinLockRelease(&j->mutex);
	error[sizeof(error) - 1] = '\0';
	dr_snapshot_job_free(ag->load_job);
	pfree(ag->loader);
	ag->loader = NULL;
	if (group_made(ag->group_id) != ag->made) {
		/* Left (and maybe made again) meanwhile: the loader found it gone,
		 * which is no error of the group now on this node (TAP 122). */
		drop_waiting(ag);
		hash_search(groups, &ag->group_id, HASH_REMOVE, NULL);
		last_group = NULL;
		return;
	}
	applying.group_id = ag->group_id;
	applying.what = "snapshot";
	/*
	 * A file that cannot be loaded (corrupt, truncated, gone) is marked: the
	 * engine worker then restarts the group to get another (pg_sm.c); any
	 * other failure is tried again with the same file.
	 */
	if (!done || code != 0) {
		park(ag->group_id, done ? error : "the snapshot loader exited before its commit",
		     done && (code == ERRCODE_DATA_CORRUPTED || code == ERRCODE_UNDEFINED_FILE));
		return;
	}
	/* It committed, and published the group's applied index. */
	ag->schema_index = ag->schema_batch = dr_apply_rows_schema_index(ag->group_id);
	ag->applied = replorigin_get_progress(ag->origin, false);
	dr_apply_rows_forget();
	applying.group_id = 0;
}

static void check_loads(void)
{
	pid_t pid;

	for (int i = 0; i < n_loading; i++)
		if (GetBackgroundWorkerPid(loading[i]->loader, &pid) == BGWH_STOPPED) {
			ApplyGroup *ag = loading[i];

			loading[i--] = loading[--n_loading];
			finish_load(ag);
		}
}

/*
 * End the loader of ag, a group left and made again since its load began,
 * and forget ag.  The loader loads only into its own group (it looks for it
 * with the origin locked) and fails; kept meanwhile, ag held the new group's
 * first entries behind the load and dropped them with it ("entries 1 to 2
 * are missing", TAP 122).  (A postmaster that does not start or stop it
 * holds this worker: as it does the loader's start anyway.)
 */
static void forget_load(ApplyGroup *ag)
{
	for (int i = 0; i < n_loading; i++)
		if (loading[i] == ag) {
			loading[i] = loading[--n_loading];
			break;
		}
	TerminateBackgroundWorker(ag->loader);
	(void)WaitForBackgroundWorkerShutdown(ag->loader);
	dr_snapshot_job_free(ag->load_job);
	pfree(ag->loader);
	ag->loader = NULL;
	drop_waiting(ag);
	hash_search(groups, &ag->group_id, HASH_REMOVE, NULL);
}

/*
 * Forget what was found of groups whose shared entry was made again since:
 * a group this node left and is a member of again (forget_left_group; before
 * rev58, DROP EXTENSION emptied dragonraft.left_groups), or one an engine
 * worker's restart started again.
 * The group made anew has an origin of its own, at 0: kept, the old origin's
 * applied index skipped its entries, and the old id, taken meanwhile by
 * another group, moved that group's applied index (review 36, TAP 112).
 * Found again from its origin with its next entry.  Looked at only when
 * entries were added (a group with a loader: its loader ended first).
 */
static void forget_remade_groups(void)
{
	uint64 made = pg_atomic_read_u64(&dr_shared->groups_made);
	HASH_SEQ_STATUS seq;
	ApplyGroup *ag, *with_loader[DR_SNAP_JOBS];
	int n_with_loader = 0;

	if (made == groups_made_seen)
		return;
	if (batch.ag != NULL)
		commit_batch();
	groups_made_seen = made;
	LWLockAcquire(dr_shared->groups_lock, LW_SHARED);
	hash_seq_init(&seq, groups);
	while ((ag = hash_seq_search(&seq)) != NULL) {
		DrGroup *g = dr_shmem_group_find(ag->group_id);

		if (g == NULL || g->made == ag->made)
			continue; /* (one gone: begin_batch drops its entries) */
		if (ag->loader != NULL) {
			with_loader[n_with_loader++] = ag; /* (one per job) */
			continue;
		}
		drop_waiting(ag);
		hash_search(groups, &ag->group_id, HASH_REMOVE, NULL);
	}
	LWLockRelease(dr_shared->groups_lock);
	for (int i = 0; i < n_with_loader; i++)
		forget_load(with_loader[i]);
	last_group = NULL;
}

static void receive_entry(const DrApplyMsg *m, const uint8 *data)
{
	ApplyGroup *ag;

	forget_remade_groups();
	if (m->type == DR_APPLY_SNAPSHOT) {
		start_load(m, data);
		return;
	}

	if (m->type == DR_APPLY_RESEND) {
		/* Its entries follow from the first one kept: try again. */
		ag = hash_search(groups, &m->group_id, HASH_FIND, NULL);
		if (ag != NULL && m->made < ag->made)
			return; /* an earlier group's */
		if (ag != NULL && ag->failed && ag->origin == InvalidRepOriginId) {
			hash_search(groups, &m->group_id, HASH_REMOVE, NULL);
			last_group = NULL;
		} else if (ag != NULL && ag->failed) {
			ag->failed = false;
			ag->applied = replorigin_get_progress(ag->origin, false);
		}
		return;
	}
	ag = last_group != NULL && last_group->group_id == m->group_id
	             ? last_group
	             : hash_search(groups, &m->group_id, HASH_FIND, NULL);
	/*
	 * An entry of a group this node left, or of an earlier group of the id:
	 * one left, and made again since (DrApplyMsg.made).  Taken for the new
	 * group's, the earlier group's entries still queued were applied as its
	 * first ones, moved its origin past them, and its own entries at those
	 * indexes were skipped (review 44, TAP 122).
	 */
	if (ag != NULL && m->made < ag->made)
		return;
	if (ag == NULL) {
		uint64 made = group_made(m->group_id);

		if (made == 0 || m->made < made)
			return;
		if (batch.ag != NULL)
			commit_batch(); /* finding its origin takes a transaction */
		applying.group_id = m->group_id;
		applying.index = m->index;
		applying.what = "origin lookup";
		ag = find_group(m->group_id);
		if (ag == NULL || m->made < ag->made)
			return; /* a group this node left (and maybe made again) */
	}
	last_group = ag;
	if (ag->failed)
		return; /* parked: the engine worker sends it again */
	if (!dlist_is_empty(&ag->waiting) || !apply_entry(ag, m, data))
		defer(ag, m, data);
}

/* Park group gid after an error: its entries are dropped until they come again. */
static void park(uint64 gid, const char *message, bool corrupt)
{
	ApplyGroup *ag;
	int delay;

	ag = hash_search(groups, &gid, HASH_FIND, NULL);
	if (ag != NULL) {
		drop_waiting(ag);
		ag->applied = replorigin_get_progress(ag->origin, false);
		ag->schema_batch = ag->schema_index; /* rolled back with the batch */
	} else {
		/* Its origin could not be found or made: find_group tries again later. */
		ag = hash_search(groups, &gid, HASH_ENTER, NULL);
		ag->made = group_made(gid);
		ag->origin = InvalidRepOriginId;
		ag->applied = 0;
		ag->schema_index = ag->schema_batch = 0;
		dlist_init(&ag->waiting);
		ag->gone = false;
		ag->loader = NULL;
	}
	ag->failed = true;
	if (in_hand.m != NULL && in_hand.m->group_id == gid)
		in_hand.m = NULL; /* it comes again with the group's other entries */
	delay = publish(gid, 0, InvalidRepOriginId, message, corrupt);
	ereport(LOG, (errmsg("dragonraft apply worker parked group %llu after an error; the "
	                     "other groups go on",
	                     (unsigned long long)gid),
	              errdetail("Its entries are applied again in %d ms.", delay)));
	pgstat_report_activity(STATE_IDLE, NULL);
}

/* The error being handled, logged and copied; its transaction aborted. */
static ErrorData *take_error(void)
{
	ErrorData *edata;

	MemoryContextSwitchTo(TopMemoryContext);
	edata = CopyErrorData();
	EmitErrorReport();
	FlushErrorState();
	AbortOutOfAnyTransaction();
	return edata;
}

/* What dragonraft.status shows of an error: its message, and PostgreSQL's
 * hint when it has one ("out of shared memory" of a load of thousands of
 * tables says to raise max_locks_per_transaction: review 26).  The status
 * keeps DR_ERROR_LEN bytes with a prefix ("apply worker: "): a long message
 * is cut (its whole text is in the server log) so that the hint, which says
 * what to do, fits; a failed command's text took all the room, and the
 * skip_command hint was lost (found by doc65). */
#define ERROR_TEXT_ROOM (DR_ERROR_LEN - 1 - 32)

static const char *error_text(const ErrorData *edata)
{
	int mlen, hlen;

	if (edata->hint == NULL)
		return edata->message;
	mlen = strlen(edata->message);
	hlen = strlen(edata->hint);
	if (mlen + hlen + 3 <= ERROR_TEXT_ROOM || hlen + 3 + 3 + 32 > ERROR_TEXT_ROOM)
		return psprintf("%s (%s)", edata->message, edata->hint);
	mlen = pg_mbcliplen(edata->message, mlen, ERROR_TEXT_ROOM - hlen - 3 - 3);
	return psprintf("%.*s... (%s)", mlen, edata->message, edata->hint);
}

/*
 * An entry of applying.group_id failed (the error is being handled): roll
 * back its batch, log the error and park the group; the others go on.
 */
static void park_failed_group(void)
{
	uint64 gid = applying.group_id;
	ErrorData *edata;

	HOLD_INTERRUPTS();
	edata = take_error();
	end_batch();
	pg_atomic_write_u64(&dr_shared->apply_delaying, 0); /* (its batch is gone) */
	linger_group = 0;
	lingered = false;
	dr_apply_rows_pin_path();
	dr_apply_rows_forget();
	RESUME_INTERRUPTS();

	park(gid, error_text(edata), edata->sqlerrcode == ERRCODE_DATA_CORRUPTED);
	FreeErrorData(edata);
}

/* The queue from the engine worker, and the messages received from it (apply.h). */
static DrApplyQueue *queue;
static shm_mq_handle *queue_mqh;
static uint64 received;

/* The next message, without the shm_mq's wake-up of the engine worker when empty. */
static shm_mq_result receive(Size *nbytes, void **data)
{
	shm_mq_result res;

	if (pg_atomic_read_u64(&queue->messages) == received)
		return SHM_MQ_WOULD_BLOCK;
	res = shm_mq_receive(queue_mqh, nbytes, data, true);
	if (res == SHM_MQ_SUCCESS)
		received++;
	return res;
}

/*
 * A reload (SIGHUP) is read after each wait: idle, in a held batch's wait
 * (its new apply_batch_delay counts for it), and in a linger, where a
 * worker under load spends its waits without ever going idle.
 */
static void reload_config(void)
{
	if (ConfigReloadPending) {
		ConfigReloadPending = false;
		ProcessConfigFile(PGC_SIGHUP);
	}
}

/* Receive and apply until the engine worker goes away; an error stops its group. */
static void apply_messages(void)
{
	for (;;) {
		Size nbytes;
		void *data;
		shm_mq_result res;

		if (in_hand.m != NULL) {
			receive_entry(in_hand.m, in_hand.data); /* after its group's failure */
			in_hand.m = NULL;
			applying.group_id = 0;
		}
		res = receive(&nbytes, &data);
		if (res == SHM_MQ_WOULD_BLOCK) {
			long wait_ms;

			check_loads(); /* (one that ended commits the batch: its group goes on) */
			wait_ms = batch.ag != NULL ? batch_wait_ms() : 0;

			if (wait_ms > 0) {
				/*
				 * A wait that wants this batch, a message of another group, or
				 * the delay's end (delay_latch).  A message counted before
				 * apply_delaying was set may have been sent without a look at
				 * it: its flush sets MyLatch, waited for instead.
				 */
				Latch *latch = pg_atomic_read_u64(&queue->messages) == received
				                       ? delay_latch
				                       : MyLatch;

				(void)WaitLatch(latch,
				                WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
				                wait_ms, PG_WAIT_EXTENSION);
				ResetLatch(latch);
				CHECK_FOR_INTERRUPTS();
				reload_config();
				continue;
			}
			if (batch.ag != NULL)
				commit_batch();
			check_loads();
			want_commits(!dlist_is_empty(&parked_groups));
			retry_parked();
			applying.group_id = 0;
			if (batch.ag != NULL)
				continue; /* applied what waited: commit it first */
			if (linger_group != 0) {
				uint64 gid = linger_group;

				linger_group = 0;
				/* (a message in flight, or entries of backends waiting: not now) */
				if (dr_apply_batch_delay > 0 && dlist_is_empty(&parked_groups) &&
				    may_hold(gid) &&
				    pg_atomic_read_u64(&queue->messages) == received) {
					(void)WaitLatch(delay_latch,
					                WL_LATCH_SET | WL_TIMEOUT |
					                        WL_EXIT_ON_PM_DEATH,
					                dr_apply_batch_delay, PG_WAIT_EXTENSION);
					ResetLatch(delay_latch);
					lingered = true;
					CHECK_FOR_INTERRUPTS();
					reload_config();
					continue;
				}
			}
			pg_atomic_write_u64(&dr_shared->apply_delaying, 0);
			lingered = false;
			pgstat_report_activity(STATE_IDLE, NULL);
			(void)WaitLatch(MyLatch, WL_LATCH_SET | WL_EXIT_ON_PM_DEATH, -1L,
			                PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
			reload_config();
			continue;
		}
		if (res == SHM_MQ_DETACHED) {
			if (batch.ag != NULL)
				commit_batch();
			ereport(LOG,
			        (errmsg("dragonraft apply worker for node %d exits: the engine "
			                "worker went away",
			                dr_node_id)));
			proc_exit(0);
		}
		if (nbytes < sizeof(DrApplyMsg) ||
		    nbytes != sizeof(DrApplyMsg) + ((const DrApplyMsg *)data)->len)
			elog(ERROR,
			     "dragonraft apply worker received a malformed message of %zu bytes",
			     nbytes);
		in_hand.m = (const DrApplyMsg *)data;
		in_hand.data = (const uint8 *)data + sizeof(DrApplyMsg);
		receive_entry(in_hand.m, in_hand.data);
		in_hand.m = NULL;
		check_loads();
		if (!dlist_is_empty(&parked_groups))
			retry_parked();
		applying.group_id = 0; /* what fails now is no group's */
		CHECK_FOR_INTERRUPTS();
	}
}

static void apply_loop(void)
{
	for (;;) {
		PG_TRY();
		{
			apply_messages();
		}
		PG_CATCH();
		{
			if (applying.group_id == 0)
				PG_RE_THROW();
			park_failed_group();
		}
		PG_END_TRY();
	}
}

/* One LOG line: where each group resumes. */
static void log_start(void)
{
	StringInfoData s;
	int n;
	DrOrigin *o = dr_origins_scan(&n);

	initStringInfo(&s);
	for (int i = 0; i < n; i++) {
		if (i == 10) {
			appendStringInfo(&s, " and %d more", n - 10);
			break;
		}
		appendStringInfo(&s, "%sgroup %llu at %llu", i > 0 ? ", " : "",
		                 (unsigned long long)o[i].group_id,
		                 (unsigned long long)replorigin_get_progress(o[i].id, false));
	}
	ereport(LOG, (errmsg("dragonraft apply worker for node %d started in database \"%s\"",
	                     dr_node_id, dr_database),
	              n > 0 ? errdetail("It resumes %d groups after their applied indexes: %s.", n,
	                                s.data)
	                    : 0));
}

void dr_apply_worker_main(Datum arg)
{
	dsm_handle handle = DatumGetUInt32(arg);
	ErrorContextCallback errcb;
	dsm_segment *seg;
	shm_mq *mq;
	HASHCTL info;
	bool have_extension;

	pqsignal(SIGHUP, apply_sighup);
	pqsignal(SIGTERM, apply_sigterm);
	pqsignal(SIGINT, apply_sigint);
	pqsignal(SIGUSR1, apply_sigusr1);
	BackgroundWorkerUnblockSignals();
	dr_is_apply_worker = true;
	delay_latch = MyLatch;
	SpinLockAcquire(&dr_shared->mutex);
	dr_shared->apply_pid = MyProcPid;
	dr_shared->apply_pgprocno = MyProc->pgprocno;
	dr_shared->apply_state = DR_APPLY_NONE;
	if (dr_shared->apply_delay_latch.owner_pid == 0) {
		OwnLatch(&dr_shared->apply_delay_latch); /* (no error: it is not owned) */
		delay_latch = &dr_shared->apply_delay_latch;
	}
	SpinLockRelease(&dr_shared->mutex);
	before_shmem_exit(on_apply_exit, (Datum)0);

	BackgroundWorkerInitializeConnection(dr_database, NULL, 0);
	dr_pin_worker_settings();
	dr_apply_end_orphan_loaders();
	CurrentResourceOwner = ResourceOwnerCreate(NULL, "dragonraft apply worker");
	StartTransactionCommand();
	have_extension = OidIsValid(get_extension_oid("dragonraft", true));
	CommitTransactionCommand();
	if (!have_extension) {
		set_state(DR_APPLY_NO_EXTENSION);
		proc_exit(0);
	}
	/* The Raft log already holds every entry durably (see the top of this file). */
	SetConfigOption("synchronous_commit", "off", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("session_replication_role", "replica", PGC_SUSET, PGC_S_OVERRIDE);
	dr_apply_rows_upgrade_triggers();

	seg = dsm_attach(handle);
	if (seg == NULL)
		ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		                errmsg("dragonraft apply worker could not map the engine worker's "
		                       "queue")));
	queue = dsm_segment_address(seg);
	mq = (shm_mq *)((char *)queue + DR_APPLY_QUEUE_MQ);
	shm_mq_set_receiver(mq, MyProc);
	queue_mqh = shm_mq_attach(mq, seg, NULL);

	memset(&info, 0, sizeof(info));
	info.keysize = sizeof(uint64);
	info.entrysize = sizeof(ApplyGroup);
	groups = hash_create("dragonraft apply groups", 256, &info, HASH_ELEM | HASH_BLOBS);
	set_state(DR_APPLY_RUNNING);
	log_start();

	errcb.callback = apply_error_callback;
	errcb.arg = NULL;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;
	apply_loop();
}

/* The loader's job no longer names a live process. */
static void loader_exit(int code, Datum arg)
{
	DrSnapJob *j = dr_snapshot_job(DatumGetInt32(arg) & 0xF);

	SpinLockAcquire(&j->mutex);
	if (loader_arg(DatumGetInt32(arg) & 0xF, j->generation) == arg)
		j->pid = 0;
	SpinLockRelease(&j->mutex);
}

/* The loader's outcome, for the apply worker (finish_load). */
static void loader_done(DrSnapJob *j, int code, const char *error)
{
	SpinLockAcquire(&j->mutex);
	j->phase = DR_SNAP_DONE;
	j->rc = code;
	if (error != NULL)
		strlcpy(j->error, error, sizeof(j->error));
	SpinLockRelease(&j->mutex);
}

/*
 * The loader of a received snapshot (start_load): the transaction that
 * replaces the group's tables and sets its origin to the snapshot's index,
 * published as the group's applied index as this worker's batches are.
 */
void dr_snapshot_loader_main(Datum arg)
{
	int job = DatumGetInt32(arg) & 0xF;
	DrSnapJob *j = dr_snapshot_job(job);
	ErrorContextCallback errcb;
	HASHCTL info;
	ApplyGroup *ag;
	uint64 group_id, index, made;
	bool mine;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	dr_is_apply_worker = true;
	SpinLockAcquire(&j->mutex);
	mine = j->group_id != 0 && j->role == DR_SNAP_RECEIVER &&
	       loader_arg(job, j->generation) == arg;
	if (mine)
		j->pid = MyProcPid;
	group_id = j->group_id;
	index = j->index;
	SpinLockRelease(&j->mutex);
	memcpy(&made, MyBgworkerEntry->bgw_extra, sizeof(made));
	if (!mine)
		proc_exit(0); /* its apply worker exited before it started
		               * (dr_apply_end_orphan_loaders) */
	before_shmem_exit(loader_exit, arg);
	BackgroundWorkerInitializeConnection(dr_database, NULL, 0);
	dr_pin_worker_settings();
	CurrentResourceOwner = ResourceOwnerCreate(NULL, "dragonraft snapshot loader");
	/*
	 * Unlike the apply's, a load's commit must be durable before its applied
	 * index is published: the engine then saves the installed snapshot, and
	 * the log below it is gone.  A load lost in a crash after that (one that
	 * drops no file, as a bare node's, is not flushed at commit otherwise)
	 * left the member with its old tables and origin and a log starting
	 * after the snapshot: "entries 1 to N are missing", stopped for good
	 * (review 21, TAP 069).  One flush per load.
	 */
	SetConfigOption("synchronous_commit", "local", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("session_replication_role", "replica", PGC_SUSET, PGC_S_OVERRIDE);
	memset(&info, 0, sizeof(info));
	info.keysize = sizeof(uint64);
	info.entrysize = sizeof(ApplyGroup);
	groups = hash_create("dragonraft loader group", 4, &info, HASH_ELEM | HASH_BLOBS);
	errcb.callback = apply_error_callback;
	errcb.arg = NULL;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;
	PG_TRY();
	{
		applying.group_id = group_id;
		applying.index = index;
		applying.what = "snapshot";
		ag = find_group(group_id);
		/* (a loader started late must not load into a group made again since:
		 * begin_batch looks again with the origin locked) */
		if (ag == NULL || ag->made != made || !begin_batch(ag, index))
			ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			                errmsg("group %llu is no longer on this node",
			                       (unsigned long long)group_id)));
		ag->schema_batch = dr_snapshot_load(job);
		ag->applied = index;
		commit_batch();
		dr_snapshot_log_loaded();
		loader_done(j, 0, NULL);
	}
	PG_CATCH();
	{
		ErrorData *edata;

		HOLD_INTERRUPTS();
		edata = take_error();
		loader_done(j, edata->sqlerrcode, error_text(edata));
		proc_exit(1);
	}
	PG_END_TRY();
	proc_exit(0);
}
