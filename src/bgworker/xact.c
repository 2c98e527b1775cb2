/*
 * xact.c - the commit path of a transaction that wrote replicated tables
 * (DESIGN §4), and the one place where its outcomes become SQLSTATEs.
 *
 * At XACT_EVENT_PRE_COMMIT the backend:
 *  1. encodes its change set (capture.c) and proposes it through the request
 *     queue; the engine worker proposes it only if this node still leads the
 *     group in the term recorded at the first write.  The wait for the
 *     outcome cannot be cancelled: a proposal that may commit is never
 *     abandoned while this node leads (leadership loss ends it with 40003).
 *     The engine answers once the entry is applied, or once it is committed
 *     and the request timeout passed while the group's apply is parked here
 *     (an earlier entry fails): then the turn wait takes the cancel.
 *     A group that takes no entries for now (ENGINE_ERR_BUSY: nothing was
 *     proposed) makes it wait and propose again (dr_busy_wait), cancellable,
 *     until dragonraft.busy_timeout or statement_timeout; its commit slot
 *     says so meanwhile (DR_COMMIT_BUSY while it sleeps; the view
 *     dragonraft.busy_waits shows the whole wait, until a proposal is taken);
 *  2. waits for its turn: the group's applied index is N - 1 (applied_cv)
 *     and N was handed to the apply side (pg_sm.c: an answer that came at
 *     the request's deadline, while the group's apply was held, may come
 *     before; the hold of a table digest or export must hold N too);
 *  3. sets up the group's replication origin with origin lsn N, so that its
 *     commit record carries applied index N: its local commit is the
 *     leader's apply of entry N, in log order.
 * At XACT_EVENT_COMMIT it releases the origin, publishes applied = N and
 * clears its commit slot.  At XACT_EVENT_ABORT after a proposal that may
 * have committed it releases the origin and marks the slot GAVE_UP: the
 * apply worker then applies entry N from the log, as on a follower.
 *
 * While the apply worker applies such an entry (or a utility command) it may
 * need a lock that a later transaction holds while it waits for its own turn;
 * PostgreSQL's deadlock detector cannot see a wait on a condition variable.
 * So backends that wait for the apply worker look at its lock wait, as hot
 * standby resolves its lock conflicts (dr_xact_unblock_apply): once it has
 * waited deadlock_timeout, a backend waiting for its turn that holds the lock
 * (directly, or through other sessions' lock waits) ends with 40003: its
 * entry is committed in Raft and the apply worker applies it too.  Sessions
 * that block it longer than dragonraft.max_apply_lock_delay (an idle reader
 * of a table a command alters) are cancelled, and terminated if they still
 * block a second later: the apply worker serves every group of the node.
 *
 * A transaction whose entry follows a utility command that changes one of
 * its tables, and that it did not see at its first write, is skipped by
 * every member (apply_rows.c), and so is a replicate_table after any command
 * it did not see; it fails with 40001 (schema_changed), nothing
 * committed: at once when the apply worker begins that command (it may need
 * the table's lock), or at its turn, when dragonraft.ddl_history says which
 * tables the commands before its entry changed.  A command that every member
 * skipped because another one came first (execute() on two nodes at once:
 * ddl_history.preempted_by) changed none: no writer fails for it.
 *
 * statement_timeout does not fire here (it is disabled before commit; only
 * dr_busy_wait looks at it, before anything is proposed).  The
 * turn wait ends on pg_cancel_backend (40003: the entry is committed in the
 * log and will be applied), pg_terminate_backend and a vanished client
 * (checked as client_connection_check_interval does); every path hands the
 * turn on, because abort marks the slot GAVE_UP.
 */
#include "write.h"

#include <unistd.h>

#include "access/xact.h"
#include "catalog/pg_largeobject.h"
#include "catalog/pg_largeobject_metadata.h"
#include "commands/tablecmds.h"
#include "engine/engine.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "origins.h"
#include "pgstat.h"
#include "queue.h"
#include "raft/raft.h"
#include "replication/origin.h"
#include "shmem.h"
#include "snapshot.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "tcop/tcopprot.h"
#include "utils/array.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"

bool dr_testing_fail_local_commit = false;
int dr_testing_commit_delay = 0;
int dr_testing_busy = 0;
int dr_busy_timeout = 10000;
int dr_max_apply_lock_delay = 5000;

PG_FUNCTION_INFO_V1(dr_busy_waits);

/* libpq/libpq.h declares it, but its include of libpq-be.h wants GSSAPI headers. */
extern bool pq_check_connection(void);

/* Turn waits wake this often to look at cancels and the client's socket; a
 * proposal that met backpressure is tried again every BUSY_POLL_MS. */
#define TURN_POLL_MS   100
#define CLIENT_POLL_MS 1000
#define BUSY_POLL_MS   10

typedef enum Phase {
	PHASE_NONE,     /* nothing proposed */
	PHASE_PROPOSED, /* proposed: it may commit; abort leaves it to the apply worker */
	PHASE_ORIGIN,   /* committed in Raft and our turn: the origin is set up */
} Phase;

/* This backend's commit in progress. */
static struct {
	Phase phase;
	uint64 group_id;
	uint64 index; /* the entry's index, 0 until known */
	bool busy;    /* the commit slot shows a backpressure wait (dr_busy_wait) */
} C;

/* Cancels held off to the end of this transaction (dr_xact_hold_cancels). */
static bool cancel_held = false;

static DrCommit *my_commit(void)
{
	return &dr_commits[MyBackendId - 1];
}

static void set_slot(DrCommitState state, uint64 group_id, bool new_generation, uint64 *gen)
{
	DrCommit *c = my_commit();

	SpinLockAcquire(&c->mutex);
	if (new_generation)
		c->generation++;
	c->state = state;
	c->group_id = group_id;
	if (gen != NULL)
		*gen = c->generation;
	SpinLockRelease(&c->mutex);
}

/* A snapshot of the group's status entry; false when the group is unknown. */
typedef struct GroupView {
	DrGroup *g;
	uint8 role;
	uint8 member_state;
	uint64 term;
	uint64 leader;
	uint64 noop_index;
	uint64 applied;
	uint64 handed;
	uint64 gave_up;
	uint32 gave_up_unknown;
	uint64 schema_index;
	uint64 schema_next;
	uint64 schema_next_table;
	uint32 apply_failures;
	RepOriginId origin;
	uint64 life; /* DrGroup.life: the group's log here, kept by an engine restart */
	char error[DR_ERROR_LEN];
} GroupView;

static bool view_group(uint64 group_id, GroupView *v)
{
	LWLockAcquire(dr_shared->groups_lock, LW_SHARED);
	v->g = dr_shmem_group_find(group_id);
	if (v->g != NULL) {
		SpinLockAcquire(&v->g->mutex);
		v->role = v->g->role;
		v->member_state = v->g->member_state;
		v->term = v->g->term;
		v->leader = v->g->leader;
		v->noop_index = v->g->noop_index;
		v->applied = v->g->applied;
		v->handed = v->g->handed;
		v->gave_up = v->g->gave_up;
		v->gave_up_unknown = v->g->gave_up_unknown;
		v->schema_index = v->g->schema_index;
		v->schema_next = v->g->schema_next;
		v->schema_next_table = v->g->schema_next_table;
		v->apply_failures = v->g->apply_failures;
		v->origin = v->g->origin;
		v->life = v->g->life;
		strlcpy(v->error, v->g->error, sizeof(v->error));
		SpinLockRelease(&v->g->mutex);
	}
	LWLockRelease(dr_shared->groups_lock);
	return v->g != NULL;
}

/* Count a 40003 in the group's counters. */
static void count_unknown(uint64 group_id)
{
	DrGroup *g;

	LWLockAcquire(dr_shared->groups_lock, LW_SHARED);
	g = dr_shmem_group_find(group_id);
	if (g != NULL) {
		SpinLockAcquire(&g->mutex);
		g->stats.xact_unknown++;
		SpinLockRelease(&g->mutex);
	}
	LWLockRelease(dr_shared->groups_lock);
}

/*
 * An entry whose backend gave up after it committed (it released its row
 * locks at its abort) is not applied yet: this transaction may have read rows
 * as they were before that entry.  It proposes nothing and may retry.
 */
static void stale_view(uint64 group_id) pg_attribute_noreturn();

static void stale_view(uint64 group_id)
{
	ereport(ERROR,
	        (errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
	         errmsg("could not serialize access: an earlier transaction of dragonraft group "
	                "%llu "
	                "is being applied from the log",
	                (unsigned long long)group_id),
	         errdetail("Its backend ended after its entry was proposed, before its local "
	                   "commit; this transaction may have read rows as they were before "
	                   "it.  Nothing was proposed."),
	         errhint("Retry the transaction.")));
}

/* May this node's rows of the group lack an entry that is in the log before any
 * this transaction would propose?  (A backend gave up on it.) */
static bool view_stale(const GroupView *v)
{
	return v->applied < v->gave_up || v->gave_up_unknown > 0;
}

/*
 * A proposal given up on while the engine worker ran it (queue.c: the worker
 * stopped answering): the backend counts it (delta 1) before it releases its
 * locks, so that no later proposal of this node can be made from rows that
 * lack it; the engine worker, once it finished the proposal, raises gave_up
 * to its index if it committed (index 0 otherwise: this node lost that term,
 * and a later term's no-op holds writers off) and uncounts it (delta -1).
 * Either may hold groups_lock already.
 */
void dr_xact_unknown_proposal(uint64 group_id, int delta, uint64 index)
{
	bool held = LWLockHeldByMe(dr_shared->groups_lock);
	DrGroup *g;

	if (!held)
		LWLockAcquire(dr_shared->groups_lock, LW_SHARED);
	g = dr_shmem_group_find(group_id);
	if (g != NULL) {
		SpinLockAcquire(&g->mutex);
		if (g->gave_up < index)
			g->gave_up = index;
		if (delta > 0 || g->gave_up_unknown > 0)
			g->gave_up_unknown += delta;
		SpinLockRelease(&g->mutex);
	}
	if (!held)
		LWLockRelease(dr_shared->groups_lock);
}

/*
 * A new leader applies a utility command of its backlog while a writer waits
 * for the no-op: the command may need a lock the writer took before it
 * waits (its table's, at parse time), a cycle no deadlock detector sees.
 * The writer proposed nothing: it ends, and may retry.  (A command skipped
 * for another that came first, and a barrier, run nothing that locks: they
 * move neither schema index, apply_worker.c.)
 */
static void command_in_backlog(uint64 group_id, uint64 command_index) pg_attribute_noreturn();

static void command_in_backlog(uint64 group_id, uint64 command_index)
{
	ConditionVariableCancelSleep();
	ereport(ERROR,
	        (errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
	         errmsg("could not serialize access: dragonraft group %llu applies a command run "
	                "through dragonraft.execute",
	                (unsigned long long)group_id),
	         errdetail("This node leads the group since recently and applies the command at "
	                   "log index %llu of its backlog; it may need this transaction's locks.  "
	                   "Nothing was proposed.",
	                   (unsigned long long)command_index),
	         errhint("Retry the transaction.")));
}

/* A new writer of a group whose apply stopped here, where it leads. */
static void apply_stopped(uint64 group_id, uint64 applied, const char *error)
        pg_attribute_noreturn();

static void apply_stopped(uint64 group_id, uint64 applied, const char *error)
{
	ereport(ERROR,
	        (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
	         errmsg("this node's apply of dragonraft group %llu stopped after entry %llu: %s",
	                (unsigned long long)group_id, (unsigned long long)applied, error),
	         errdetail("This node leads the group and commits its writes in log order, "
	                   "after that entry.  Nothing was proposed."),
	         errhint("Fix the cause here (see dragonraft.status), or move the leadership "
	                 "with dragonraft.transfer_leader.")));
}

uint64 dr_xact_writable(uint64 group_id, bool lock_only)
{
	GroupView v;
	uint64 schema_seen = 0;
	bool first = true;

	if (!lock_only)
		dr_sql_groups_check_engine();
	for (;;) {
		if (lock_only &&
		    (!view_group(group_id, &v) || v.role != RAFT_LEADER ||
		     v.member_state == DR_MEMBER_FAILED || v.member_state == DR_MEMBER_LOST)) {
			ConditionVariableCancelSleep();
			return 0; /* a lock here holds back only this member's apply */
		}
		if (!view_group(group_id, &v))
			dr_sql_groups_missing((int64)group_id, NULL);
		if (v.member_state == DR_MEMBER_FAILED || v.member_state == DR_MEMBER_LOST)
			dr_sql_groups_stopped((int64)group_id, v.error, NULL);
		if (v.role != RAFT_LEADER) {
			ConditionVariableCancelSleep();
			dr_capture_not_leader(group_id, v.leader);
		}
		/* Its turn would wait until the entry that fails here (again, after
		 * the apply worker's pause: not a passing lock conflict) is fixed or
		 * skipped: say so now, before anything is proposed.  (A row lock
		 * proposes nothing.) */
		if (v.apply_failures >= 2 && !lock_only) {
			ConditionVariableCancelSleep();
			apply_stopped(group_id, v.applied, v.error);
		}
		/* Not waited for: the apply worker may need a lock this transaction holds. */
		if (view_stale(&v)) {
			ConditionVariableCancelSleep();
			stale_view(group_id);
		}
		/* A new leader writes once it applied its term's no-op: no stale view. */
		if (v.noop_index > 0 && v.applied >= v.noop_index)
			break;
		if (first)
			schema_seen = Max(v.schema_index, v.schema_next);
		else if (Max(v.schema_index, v.schema_next) > schema_seen)
			command_in_backlog(group_id, Max(v.schema_index, v.schema_next));
		first = false;
		/* Bounded by statement_timeout; cancellable. */
		(void)ConditionVariableTimedSleep(&v.g->applied_cv, TURN_POLL_MS,
		                                  PG_WAIT_EXTENSION);
	}
	ConditionVariableCancelSleep();
	return v.term;
}

uint64 dr_xact_schema_index(uint64 group_id)
{
	GroupView v;

	return view_group(group_id, &v) ? v.schema_index : 0;
}

/* ---- the apply worker's lock waits ---- */

/* Since when proc waits for a heavyweight lock; 0 when it does not. */
static TimestampTz lock_wait_since(PGPROC *proc)
{
	if (proc == NULL || (proc->wait_event_info & 0xFF000000U) != PG_WAIT_LOCK)
		return 0;
	return (TimestampTz)pg_atomic_read_u64(&proc->waitStart);
}

/*
 * Since when the apply worker, or a snapshot loader (which applies a group
 * in its stead), waits for a heavyweight lock, the one that waits longest
 * (*pid); 0 when none does.
 */
static TimestampTz apply_lock_wait(int *pid)
{
	int pids[DR_SNAP_JOBS], n, pgprocno;
	TimestampTz since = 0;

	SpinLockAcquire(&dr_shared->mutex);
	pgprocno = dr_shared->apply_pgprocno;
	*pid = (int)dr_shared->apply_pid;
	SpinLockRelease(&dr_shared->mutex);
	if (pgprocno >= 0)
		since = lock_wait_since(&ProcGlobal->allProcs[pgprocno]);
	n = dr_snapshot_loader_pids(pids);
	for (int i = 0; i < n; i++) {
		TimestampTz t = lock_wait_since(BackendPidGetProc(pids[i]));

		if (t != 0 && (since == 0 || t < since)) {
			since = t;
			*pid = pids[i];
		}
	}
	return since;
}

/* Append to pids the processes that pid waits for (pg_blocking_pids). */
static List *blockers(List *pids, int pid)
{
	ArrayType *a =
	        DatumGetArrayTypeP(DirectFunctionCall1(pg_blocking_pids, Int32GetDatum(pid)));
	int32 *p = (int32 *)ARR_DATA_PTR(a);
	int n = ArrayGetNItems(ARR_NDIM(a), ARR_DIMS(a));

	for (int i = 0; i < n; i++)
		pids = list_append_unique_int(pids, p[i]);
	return pids;
}

/* Processes looked at beyond the apply worker's direct blockers. */
#define MAX_BLOCKER_CHAIN 16

bool dr_xact_unblock_apply(TimestampTz *next_check)
{
	TimestampTz since, now;
	List *direct, *chain;
	int apply_pid, pid;
	bool escalate;
	ListCell *lc;

	since = apply_lock_wait(&apply_pid);
	if (since == 0)
		return false;
	now = GetCurrentTimestamp();
	if (now < *next_check || !TimestampDifferenceExceeds(since, now, DeadlockTimeout))
		return false;
	*next_check = TimestampTzPlusMilliseconds(now, Min(DeadlockTimeout, 1000));
	direct = blockers(NIL, apply_pid);
	chain = list_copy(direct);
	for (int i = 0; i < list_length(chain) && i < MAX_BLOCKER_CHAIN; i++) {
		pid = list_nth_int(chain, i);
		if (pid == MyProcPid)
			return true;
		if (pid != apply_pid)
			chain = blockers(chain, pid);
	}
	if (dr_max_apply_lock_delay < 0 ||
	    !TimestampDifferenceExceeds(since, now, dr_max_apply_lock_delay))
		return false;
	escalate = TimestampDifferenceExceeds(since, now, dr_max_apply_lock_delay + 1000);
	foreach (lc, direct) {
		int applying[DR_SNAP_JOBS + 1], n = dr_snapshot_loader_pids(applying);

		pid = lfirst_int(lc);
		SpinLockAcquire(&dr_shared->mutex);
		applying[n++] = (int)dr_shared->apply_pid;
		SpinLockRelease(&dr_shared->mutex);
		for (int i = 0; i < n && pid != 0; i++)
			if (pid == applying[i])
				pid = 0; /* never the apply worker or a loader themselves */
		if (pid == 0 || BackendPidGetProc(pid) == NULL)
			continue;
		ereport(LOG,
		        (errmsg("dragonraft %s process %d: it holds a lock that the %s has waited "
		                "for since %s",
		                escalate ? "terminates" : "cancels", pid,
		                apply_pid == applying[n - 1] ? "apply worker" : "snapshot loader",
		                timestamptz_to_str(since)),
		         errdetail(
		                 "The apply worker applies every group of this node in log order; "
		                 "dragonraft.max_apply_lock_delay is %d ms.",
		                 dr_max_apply_lock_delay)));
		(void)kill(pid, escalate ? SIGTERM : SIGINT);
	}
	return false;
}

/* ---- backpressure ---- */

/* The backpressure wait is over (its proposal was taken, or the transaction
 * ends): dragonraft.busy_waits no longer shows it. */
void dr_busy_end(void)
{
	if (C.busy) {
		DrCommit *c = my_commit();

		SpinLockAcquire(&c->mutex);
		c->busy_pid = 0;
		if (c->state == DR_COMMIT_BUSY) {
			c->state = DR_COMMIT_IDLE; /* an error as it slept */
			c->group_id = 0;
		}
		SpinLockRelease(&c->mutex);
		C.busy = false;
	}
}

void dr_busy_wait(uint64 group_id, TimestampTz *since)
{
	TimestampTz now = GetCurrentTimestamp();
	long secs;
	int usecs;

	if (*since == 0)
		*since = now;
	/* The commit slot says BUSY (nothing proposed) while it sleeps, and shows
	 * the wait (dragonraft.busy_waits) from the first sleep until the caller's
	 * proposal is taken or the transaction ends (dr_busy_end), the proposals
	 * made again in between included. */
	{
		DrCommit *c = my_commit();

		SpinLockAcquire(&c->mutex);
		c->state = DR_COMMIT_BUSY;
		c->group_id = group_id;
		if (!C.busy) {
			c->busy_pid = MyProcPid;
			c->busy_group = group_id;
			c->busy_since = *since;
		}
		SpinLockRelease(&c->mutex);
		C.busy = true;
	}
	/* At PRE_COMMIT PostgreSQL has disabled the timer already: look here. */
	if (StatementTimeout > 0 &&
	    TimestampDifferenceExceeds(GetCurrentStatementStartTimestamp(), now, StatementTimeout))
		ereport(ERROR, (errcode(ERRCODE_QUERY_CANCELED),
		                errmsg("canceling statement due to statement timeout")));
	if (TimestampDifferenceExceeds(*since, now, dr_busy_timeout)) {
		TimestampDifference(*since, now, &secs, &usecs);
		ereport(ERROR,
		        (errcode(ERRCODE_INSUFFICIENT_RESOURCES),
		         errmsg("dragonraft group %llu is busy: its log takes no more entries "
		                "for now",
		                (unsigned long long)group_id),
		         errdetail("Nothing was proposed; it waited %ld ms "
		                   "(dragonraft.busy_timeout).  A LogDB shard near a write stall, "
		                   "too many uncommitted entries, or a snapshot this member loads "
		                   "hold it back.",
		                   secs * 1000 + usecs / 1000),
		         errhint("Retry the transaction.")));
	}
	(void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, BUSY_POLL_MS,
	                PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
	set_slot(DR_COMMIT_IDLE, 0, false, NULL); /* the caller proposes again */
}

/* dragonraft.busy_waits: the commit slots that wait for backpressure. */
Datum dr_busy_waits(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *)fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	for (int i = 0; i < MaxBackends; i++) {
		DrCommit *c = &dr_commits[i];
		Datum values[3];
		bool nulls[3] = {0}, busy;

		SpinLockAcquire(&c->mutex);
		busy = c->busy_pid != 0;
		values[0] = Int32GetDatum(c->busy_pid);
		values[1] = Int64GetDatum((int64)c->busy_group);
		values[2] = TimestampTzGetDatum(c->busy_since);
		SpinLockRelease(&c->mutex);
		if (busy)
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum)0;
}

/* ---- outcomes ---- */

/*
 * 40003: the entry may be committed in the log (committed false: proposed,
 * outcome unknown), or is (true: the detail says whether this node applies
 * it).  The hint said "If the entry commits, every member applies it, this
 * node included" for both, also under a detail saying that this node does
 * not apply it (review 69).
 */
static void unknown_outcome(const char *msg, const char *detail, bool committed)
        pg_attribute_noreturn();

static void unknown_outcome(const char *msg, const char *detail, bool committed)
{
	count_unknown(C.group_id);
	ereport(ERROR,
	        (errcode(ERRCODE_T_R_STATEMENT_COMPLETION_UNKNOWN), errmsg("%s", msg),
	         errdetail("%s", dr_sentence(detail)),
	         committed ? errhint("Before retrying, check on a member of the group whether "
	                             "the transaction's changes are there; dragonraft.status "
	                             "shows whether this node runs the group.")
	                   : errhint("If the entry commits, every member applies it, this node "
	                             "included; check whether the transaction's changes are "
	                             "there before retrying.")));
}

/* What ended the wait for a proposal's outcome (40003). */
static const char *proposed_then(int rc)
{
	switch (rc) {
	case DR_RC_ENGINE_EXITED:
		return "the engine worker exited";
	case DR_RC_ENGINE_STALLED:
		return "the engine worker stopped answering, and the wait for its outcome was "
		       "cancelled";
	case ENGINE_ERR_UNKNOWN:
		return "this node lost the leadership";
	default:
		return engine_strerror(rc);
	}
}

void dr_proposal_refused(const DrResult *res, uint64 group_id, const char *what)
{
	switch (res->rc) {
	case ENGINE_ERR_TOO_BIG:
		ereport(ERROR,
		        (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
		         errmsg("the %s exceeds the engine's largest entry", what),
		         errdetail("Nothing was proposed."),
		         errhint("Split the work: dragonraft.max_entry_size bounds an entry.")));
		break;
	case ENGINE_ERR_NO_GROUP:
		dr_sql_groups_not_run((int64)group_id, "Nothing was proposed.");
		break;
	case DR_RC_NOT_TAKEN:
		ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		                errmsg("dragonraft's engine on this node takes no %s of group "
		                       "%llu: %s",
		                       what, (unsigned long long)group_id, res->errmsg),
		                errdetail("Nothing was proposed."),
		                errhint("See dragonraft.node_status() and the server log.")));
		break;
	}
}

/* The proposal's outcome as an error, unless it committed (ENGINE_OK). */
static void proposal_outcome(const DrResult *res, const DrPending *p)
{
	switch (res->rc) {
	case ENGINE_OK:
		return;
	case DR_RC_TERM_CHANGED:
	case ENGINE_ERR_NOT_LEADER:
	case ENGINE_ERR_DROPPED:
	case ENGINE_ERR_TOO_BIG:
	case ENGINE_ERR_NO_GROUP:
	case DR_RC_NOT_TAKEN:
		/* Nothing was proposed: the transaction simply fails. */
		C.phase = PHASE_NONE;
		set_slot(DR_COMMIT_IDLE, 0, false, NULL);
		dr_proposal_refused(res, p->group_id, "transaction");
		if (res->rc == DR_RC_TERM_CHANGED && res->leader == (uint64)dr_node_id)
			ereport(ERROR,
			        (errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
			         errmsg("could not serialize access: the leadership of dragonraft "
			                "group "
			                "%llu changed since this transaction's first write",
			                (unsigned long long)p->group_id),
			         errdetail("This node leads the group again, in a later term: the "
			                   "transaction may have read rows as they were before "
			                   "entries "
			                   "of another leader.  Nothing was proposed."),
			         errhint("Retry the transaction.")));
		dr_capture_not_leader(p->group_id, res->leader); /* the others */
		break;
	default:
		/* Unknown, timeout, a stopped group or engine: it may still commit. */
		unknown_outcome(
		        psprintf("the outcome of the transaction in dragonraft group %llu "
		                 "is unknown",
		                 (unsigned long long)p->group_id),
		        psprintf("Its change set was proposed, then %s.", proposed_then(res->rc)),
		        false);
	}
}

/*
 * A utility command that changes a table this transaction wrote lies in the
 * log between the schema it wrote against (schema_index at its first write)
 * and its entry: every member skips the entry (apply_rows.c), so nothing
 * commits.
 */
static void schema_changed(uint64 group_id, uint64 command_index, bool registration)
        pg_attribute_noreturn();

static void schema_changed(uint64 group_id, uint64 command_index, bool registration)
{
	ereport(ERROR,
	        (errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
	         errmsg(registration ? "could not serialize access: a command run through "
	                               "dragonraft.execute in group %llu came between "
	                               "replicate_table and its entry"
	                             : "could not serialize access: a command run through "
	                               "dragonraft.execute changed a table of group %llu while "
	                               "this transaction wrote it",
	                (unsigned long long)group_id),
	         errdetail("The command at log index %llu comes before this transaction's entry, "
	                   "which every member skips: nothing was committed.",
	                   (unsigned long long)command_index),
	         errhint("Retry the transaction.")));
}

/* Does the command the apply worker began (schema_next) change one of tables? */
static bool next_command_changes(const GroupView *v, const uint64 *tables, int n)
{
	if (v->schema_next_table == 0)
		return true;
	if (v->schema_next_table == DR_SCHEMA_NO_TABLE)
		return false;
	for (int i = 0; i < n; i++)
		if (tables[i] == v->schema_next_table)
			return true;
	return false;
}

/*
 * wait_turn holds interrupts: a terminate ends the backend (FATAL, the abort
 * hands the turn on), a cancel the commit with 40003 (its entry is in the
 * log), and a client that went away (looked at every CLIENT_POLL_MS) the
 * backend.  (statement_timeout does not fire here: see the top of the file.)
 * Called with interrupts held once; engine_away: the group is not there
 * while the engine worker does not run.
 */
static void turn_interrupts(uint64 group_id, uint64 index, bool engine_away,
                            TimestampTz *next_client_check)
{
	if (ProcDiePending) {
		ConditionVariableCancelSleep();
		RESUME_INTERRUPTS();
		CHECK_FOR_INTERRUPTS(); /* FATAL */
	}
	if (QueryCancelPending) {
		QueryCancelPending = false;
		ConditionVariableCancelSleep();
		RESUME_INTERRUPTS();
		/* Away, the next engine worker may come back without the group's log
		 * (a lost LogDB, DESIGN §10), or with a group of that id made again:
		 * "will be applied from there" promised what this node may not do
		 * (review 69). */
		unknown_outcome(
		        psprintf("canceled while the transaction waited for its turn in "
		                 "dragonraft group %llu",
		                 (unsigned long long)group_id),
		        engine_away
		                ? psprintf("Its change set is committed in the log at index "
		                           "%llu: every member that keeps that log applies it.  "
		                           "This node's engine worker is not running: this "
		                           "node applies it once the worker runs the group "
		                           "again with that log, not if the worker comes back "
		                           "without it (see dragonraft.status).",
		                           (unsigned long long)index)
		                : psprintf("Its change set is committed in the log at index "
		                           "%llu, and this node applies it from there, as "
		                           "every member does.",
		                           (unsigned long long)index),
		        true);
	}
	if (GetCurrentTimestamp() >= *next_client_check) {
		if (whereToSendOutput == DestRemote && !pq_check_connection()) {
			ConditionVariableCancelSleep();
			RESUME_INTERRUPTS();
			ereport(FATAL, (errcode(ERRCODE_CONNECTION_FAILURE),
			                errmsg("connection to client lost")));
		}
		*next_client_check =
		        TimestampTzPlusMilliseconds(GetCurrentTimestamp(), CLIENT_POLL_MS);
	}
}

/*
 * Wait until the group applied N - 1 (see the top of the file).  life: the
 * group's log the entry was proposed to (DrGroup.life).  A group
 * left and made again on this node meanwhile (same id, a new log) is not
 * the entry's: its applied index says nothing of entry N, and the wait took
 * it for its own (it waited for ever, or ended with an internal error, rev58
 * TAP 134).
 */
static void wait_turn(uint64 group_id, uint64 life, uint64 index, uint64 schema_index)
{
	TimestampTz next_client_check = 0, next_lock_check = 0;
	GroupView v;
	int n_tables;
	uint64 *tables = dr_capture_table_ids(&n_tables), command = 0;

	HOLD_INTERRUPTS(); /* cancels are turned into 40003 below, not 57014 */
	for (;;) {
		if (!view_group(group_id, &v) || v.life != life) {
			/* The group went away: the commit fails below.  Unless the
			 * engine worker restarts (shmem.c): the next one adds the group
			 * again, with its DrGroup.life (rev60).  One that never runs
			 * (it fails at start each time) keeps this waiting: a cancel,
			 * a terminate and a client that went away end it as they do
			 * below (before, a cancel said the group went away, and a
			 * backend whose client had gone waited on: review 60). */
			if (dr_shmem_engine_running())
				break;
			turn_interrupts(group_id, index, true, &next_client_check);
			dr_shmem_engine_wait();
			continue;
		}
		/* Not waited for: the command may need this transaction's table lock.
		 * (A first registration, tables NULL, is skipped after any command.) */
		if (v.schema_next > schema_index &&
		    (tables == NULL || next_command_changes(&v, tables, n_tables))) {
			/* The command may itself wait for another session's lock. */
			(void)dr_xact_unblock_apply(&next_lock_check);
			RESUME_INTERRUPTS();
			ConditionVariableCancelSleep();
			schema_changed(group_id, v.schema_next, tables == NULL);
		}
		/* Its turn, once its entry was handed to the apply side: a proposal
		 * may complete at its deadline, committed but held back from the
		 * apply side (pg_sm.c), for a table digest or export that drains
		 * exactly what was handed (TAP 107). */
		if (v.applied >= index || (v.applied + 1 == index && v.handed >= index))
			break;
		/* Committed but not handed (above), and its group stopped here:
		 * nothing hands the entry over now (review 35 N6). */
		if (v.handed < index &&
		    (v.member_state == DR_MEMBER_FAILED || v.member_state == DR_MEMBER_LOST)) {
			RESUME_INTERRUPTS();
			ConditionVariableCancelSleep();
			unknown_outcome(
			        psprintf("dragonraft group %llu stopped on this node while the "
			                 "transaction waited for its turn",
			                 (unsigned long long)group_id),
			        psprintf("Its change set is committed in the log at index %llu; "
			                 "this node applies it from there once the group runs "
			                 "here again.  The group stopped: %s",
			                 (unsigned long long)index, v.error),
			        true);
		}
		if (dr_xact_unblock_apply(&next_lock_check)) {
			RESUME_INTERRUPTS();
			ConditionVariableCancelSleep();
			unknown_outcome(
			        psprintf("transaction committed in the log of dragonraft "
			                 "group %llu at index %llu, but not applied by this "
			                 "backend",
			                 (unsigned long long)group_id, (unsigned long long)index),
			        "It held a lock that the apply worker waited for while this "
			        "transaction waited for its turn; its entry is applied from the "
			        "log.",
			        true);
		}
		turn_interrupts(group_id, index, false, &next_client_check);
		(void)ConditionVariableTimedSleep(&v.g->applied_cv, TURN_POLL_MS,
		                                  PG_WAIT_EXTENSION);
	}
	ConditionVariableCancelSleep();
	RESUME_INTERRUPTS();
	if (v.g == NULL || v.life != life)
		unknown_outcome(psprintf("dragonraft group %llu went away while the transaction "
		                         "waited for its turn",
		                         (unsigned long long)group_id),
		                v.g == NULL ? "Its change set is committed in the log."
		                            : "Its change set is committed in the log of the group "
		                              "as it was: this node left it, and the group of "
		                              "that id here now was made again since, with "
		                              "another log, so this node does not apply it.",
		                true);
	if (v.applied >= index)
		elog(ERROR, "dragonraft entry %llu of group %llu was applied by another process",
		     (unsigned long long)index, (unsigned long long)group_id);
	/* Every command before the entry is applied: which tables did they change? */
	if (v.schema_index > schema_index) {
		PushActiveSnapshot(GetLatestSnapshot());
		command = dr_apply_rows_command_between(group_id, schema_index, index, tables,
		                                        n_tables);
		PopActiveSnapshot();
	}
	if (command > 0)
		schema_changed(group_id, command, tables == NULL);
	if (v.origin == InvalidRepOriginId)
		elog(ERROR, "dragonraft group %llu has no replication origin yet",
		     (unsigned long long)group_id);
}

/*
 * Did the transaction write anything that is not in its change set?  Then its
 * local commit must be durable, at least locally (whatever the user's
 * synchronous_commit): after a crash the log brings back only the change
 * set.  Large objects are written by functions (lo_from_bytea, lowrite,
 * lo_unlink, ...), through neither the executor nor a utility command;
 * their writes (and reads) hold RowExclusiveLock on their catalogs until the
 * end of the transaction (review 21, TAP 067).
 */
static bool wrote_other(void)
{
	return dr_capture_other_writes() ||
	       CheckRelationOidLockedByMe(LargeObjectRelationId, RowExclusiveLock, true) ||
	       CheckRelationOidLockedByMe(LargeObjectMetadataRelationId, RowExclusiveLock, true);
}

/*
 * An error after the entry committed in the log (PostgreSQL's own steps after
 * PRE_COMMIT: a full NOTIFY queue, another extension's pre-commit callback,
 * the local commit) ends the transaction here, while every member applies it,
 * this node's apply worker too: the client must not take it for a rollback
 * and retry.  Each such error says so in its CONTEXT.
 */
static ErrorContextCallback committed_context;

static void committed_context_cb(void *arg)
{
	errcontext("the transaction's changes are committed in the log of dragonraft group "
	           "%llu (entry %llu) and every member applies them, this node too: do not "
	           "retry it",
	           (unsigned long long)C.group_id, (unsigned long long)C.index);
}

static void pop_committed_context(void)
{
	for (ErrorContextCallback **p = &error_context_stack; *p != NULL; p = &(*p)->previous)
		if (*p == &committed_context) {
			*p = committed_context.previous;
			break;
		}
}

static void pre_commit(void)
{
	struct entry_owner owner;
	DrPending p;
	DrResult res;
	GroupView v;
	uint64 life;
	uint8 *entry;
	Size len;

	if (!dr_capture_pending(&p))
		return;
	/*
	 * What PostgreSQL does after PRE_COMMIT and may fail at, done before the
	 * proposal: an error there came after the entry committed in the log,
	 * and the client was told of a failure (and retried) while every member
	 * applied the transaction, this node's apply worker too.  ON COMMIT
	 * DELETE ROWS of a temporary table that another one's foreign key
	 * references fails each commit that touched a temporary table (0A000,
	 * review 43).  Done again at the commit: the dropped ones are skipped,
	 * the emptied ones emptied again.
	 */
	PreCommit_on_commit_actions();
	life = view_group(p.group_id, &v) ? v.life : 0;
	if (life != 0 && view_stale(&v))
		stale_view(p.group_id);
	owner.node_id = (uint32)dr_node_id;
	owner.incarnation = dr_shared->incarnation;
	owner.slot = (uint32)(MyBackendId - 1);
	/* The slot says "mine to apply" before the entry can exist. */
	C.group_id = p.group_id;
	set_slot(DR_COMMIT_PROPOSED, p.group_id, true, &owner.generation);
	entry = dr_capture_encode(&owner, &len);
	C.phase = PHASE_PROPOSED;
	for (TimestampTz busy_since = 0;;) {
		if (dr_testing_busy > 0 &&
		    (busy_since == 0 ||
		     !TimestampDifferenceExceeds(busy_since, GetCurrentTimestamp(),
		                                 dr_testing_busy)))
			res.rc = ENGINE_ERR_BUSY;
		else
			dr_queue_call_uncancellable(DR_REQ_PROPOSE, p.group_id, p.term, entry, len,
			                            &res);
		if (res.rc != ENGINE_ERR_BUSY)
			break;
		/* Nothing was proposed: an error or a cancel while it waits ends the
		 * transaction with nothing to hand on.  The entry keeps its generation. */
		C.phase = PHASE_NONE;
		dr_busy_wait(p.group_id, &busy_since);
		set_slot(DR_COMMIT_PROPOSED, p.group_id, false, NULL);
		C.phase = PHASE_PROPOSED;
	}
	dr_busy_end();
	pfree(entry);
	proposal_outcome(&res, &p);
	C.index = res.index;

	wait_turn(p.group_id, life, C.index, p.schema_index);
	/*
	 * The entry is committed in the log, and wait_turn turned cancels into
	 * 40003.  From here to the end of the commit a cancel or a lock_timeout
	 * (PostgreSQL waits for the NOTIFY queue's lock after PRE_COMMIT) would
	 * report 57014 or 55P03 for a transaction that every member applies
	 * (review 21, TAP 068): they wait for the commit's end instead, as for
	 * its WAL flush.  (pg_terminate_backend still ends it: a lost connection
	 * says nothing of the outcome.)
	 */
	dr_xact_hold_cancels();
	/*
	 * The origin's session is set up with the origin locked, as a batch of
	 * the apply worker's is: leave_group locks it first, and waits for the
	 * lock, before it stops the member and drops the catalog rows and the
	 * origin.  Without it, leave_group of a group whose tables this
	 * transaction does not hold (a registration's) went on and waited for
	 * the session only to drop the origin: the transaction then committed
	 * its table's triggers and catalog row for a group the node had left,
	 * and every write to the table failed (review 44, TAP 123).  Not
	 * waited for: this transaction may hold a table that leave_group waits
	 * for next.
	 */
	if (!view_group(p.group_id, &v) || v.life != life ||
	    !dr_origins_try_lock(v.origin, AccessShareLock) || !view_group(p.group_id, &v) ||
	    v.life != life) {
		count_unknown(p.group_id);
		ereport(ERROR,
		        (errcode(ERRCODE_T_R_STATEMENT_COMPLETION_UNKNOWN),
		         errmsg("node %d leaves group %llu while the transaction commits",
		                dr_node_id, (unsigned long long)p.group_id),
		         errdetail("Its entry %llu is committed in the group's log: the other "
		                   "members apply it, this node does not.",
		                   (unsigned long long)C.index),
		         errhint("Check on a member of the group whether the transaction's "
		                 "changes are there before retrying.")));
	}
	committed_context.callback = committed_context_cb;
	committed_context.previous = error_context_stack;
	error_context_stack = &committed_context;
	if (p.registration != InvalidOid && p.resend == 0)
		dr_sql_tables_install(p.registration, p.group_id, C.index);

	replorigin_session_setup(v.origin);
	replorigin_session_origin = v.origin;
	replorigin_session_origin_lsn = C.index;
	replorigin_session_origin_timestamp = GetCurrentTimestamp();
	C.phase = PHASE_ORIGIN;
	(void)GetTopTransactionId();
	/* The entry is durable in the Raft log (DESIGN §4 measured why this matters). */
	if (!wrote_other())
		(void)set_config_option("synchronous_commit", "off", PGC_USERSET, PGC_S_SESSION,
		                        GUC_ACTION_LOCAL, true, 0, false);
	else if (synchronous_commit == SYNCHRONOUS_COMMIT_OFF)
		/* The log brings the change set back after a crash whatever the
		 * local commit's durability: a user's synchronous_commit = off lost
		 * the commit, and the transaction came back half, its change set
		 * without its other writes (a local table's rows, a sequence's
		 * advance), where PostgreSQL loses all of it or nothing (review 43). */
		(void)set_config_option("synchronous_commit", "local", PGC_USERSET, PGC_S_SESSION,
		                        GUC_ACTION_LOCAL, true, 0, false);
	if (dr_testing_commit_delay > 0) {
		/* The entry stays this backend's to apply meanwhile (testing only),
		 * until the delay passes or the test, once it saw what the hold was
		 * for, made the file testing_commit_release in the data directory
		 * (a backend's working directory). */
		TimestampTz end =
		        TimestampTzPlusMilliseconds(GetCurrentTimestamp(), dr_testing_commit_delay);

		while (GetCurrentTimestamp() < end && access("testing_commit_release", F_OK) != 0) {
			(void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
			                10, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			CHECK_FOR_INTERRUPTS();
		}
	}
	if (dr_testing_fail_local_commit)
		ereport(ERROR, (errcode(ERRCODE_INTERNAL_ERROR),
		                errmsg("dragonraft.testing_fail_local_commit is set")));
}

static void release_origin(void)
{
	replorigin_session_reset();
	replorigin_session_origin = InvalidRepOriginId;
	replorigin_session_origin_lsn = InvalidXLogRecPtr;
	replorigin_session_origin_timestamp = 0;
}

/* The commit record carries N: publish it, then hand the turn on. */
static void committed(void)
{
	DrGroup *g;

	release_origin();
	LWLockAcquire(dr_shared->groups_lock, LW_SHARED);
	g = dr_shmem_group_find(C.group_id);
	if (g != NULL) {
		SpinLockAcquire(&g->mutex);
		if (g->applied < C.index)
			g->applied = C.index;
		g->stats.xact_commits++;
		SpinLockRelease(&g->mutex);
		ConditionVariableBroadcast(&g->applied_cv);
	}
	LWLockRelease(dr_shared->groups_lock);
	set_slot(DR_COMMIT_IDLE, 0, false, NULL);
	dr_shmem_wake_apply();
}

/* Aborted after a proposal that may commit: the apply worker applies it.
 * (Abort callbacks run before the transaction's locks are released.) */
static void gave_up(void)
{
	if (C.phase == PHASE_ORIGIN)
		release_origin();
	if (C.index > 0) {
		DrGroup *g;

		LWLockAcquire(dr_shared->groups_lock, LW_SHARED);
		g = dr_shmem_group_find(C.group_id);
		if (g != NULL) {
			SpinLockAcquire(&g->mutex);
			if (g->gave_up < C.index)
				g->gave_up = C.index;
			SpinLockRelease(&g->mutex);
		}
		LWLockRelease(dr_shared->groups_lock);
	}
	set_slot(DR_COMMIT_GAVE_UP, C.group_id, false, NULL);
	dr_shmem_wake_apply();
	dr_shmem_wake_engine(); /* it holds the entry for us (pg_sm.c): the apply worker's now */
}

void dr_xact_hold_cancels(void)
{
	if (!cancel_held) {
		HOLD_CANCEL_INTERRUPTS();
		cancel_held = true;
	}
}

/* A cancel or timeout that came while cancels were held is void. */
static void void_pending_cancels(void)
{
	QueryCancelPending = false;
	(void)get_timeout_indicator(STATEMENT_TIMEOUT, true);
	(void)get_timeout_indicator(LOCK_TIMEOUT, true);
}

/*
 * The end of a HOLD_CANCEL_INTERRUPTS() over a short step after an outcome
 * that a cancel would misreport as nothing done (a membership change
 * applied, a snapshot taken): a cancel or timeout that came meanwhile is
 * void.  Not called after an ERROR: errfinish() reset the hold-off count to
 * 0 already (resuming then would take it below 0, and every later cancel of
 * the session would be held).
 */
void dr_xact_void_held_cancels(void)
{
	RESUME_CANCEL_INTERRUPTS();
	void_pending_cancels();
}

/* At the end of the transaction.  A cancel or timeout that came meanwhile is
 * void when it committed.  An ERROR caught on the way (or the abort's) reset
 * the hold-off count already, a FATAL did not: released only while still
 * held, never below 0, or cancels would stay held for the rest of the
 * session. */
static void release_cancels(bool committed)
{
	if (!cancel_held)
		return;
	cancel_held = false;
	if (committed)
		void_pending_cancels();
	if (QueryCancelHoldoffCount > 0)
		RESUME_CANCEL_INTERRUPTS();
}

static void xact_callback(XactEvent event, void *arg)
{
	switch (event) {
	case XACT_EVENT_PRE_COMMIT:
		pre_commit();
		break;
	case XACT_EVENT_PRE_PREPARE: {
		DrPending p;

		if (dr_capture_pending(&p))
			ereport(ERROR,
			        (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			         errmsg("cannot PREPARE a transaction that wrote replicated "
			                "tables"),
			         errdetail(
			                 "Its changes would have to commit in the Raft log before "
			                 "the transaction is prepared.")));
		break;
	}
	case XACT_EVENT_COMMIT:
		pop_committed_context();
		if (C.phase == PHASE_ORIGIN)
			committed();
		release_cancels(true);
		memset(&C, 0, sizeof(C));
		dr_capture_reset();
		break;
	case XACT_EVENT_ABORT:
		pop_committed_context();
		release_cancels(false);
		dr_busy_end();
		if (C.phase != PHASE_NONE)
			gave_up();
		memset(&C, 0, sizeof(C));
		dr_capture_reset();
		break;
	default:
		break;
	}
}

static void subxact_callback(SubXactEvent event, SubTransactionId my_subid,
                             SubTransactionId parent_subid, void *arg)
{
	dr_capture_subxact(event, my_subid, parent_subid);
	if (event == SUBXACT_EVENT_ABORT_SUB)
		dr_busy_end(); /* an execute() that failed as it waited, or proposing again */
}

void dr_xact_init(void)
{
	RegisterXactCallback(xact_callback, NULL);
	RegisterSubXactCallback(subxact_callback, NULL);
}
