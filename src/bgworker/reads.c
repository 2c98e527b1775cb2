/*
 * reads.c - linearizable reads (DESIGN §5, Raft thesis §6.4).
 *
 * dr_read_barrier() asks the engine for a ReadIndex (the leader confirms
 * its leadership with a quorum; a follower's request is forwarded to the
 * leader by the Raft core), then waits until this node's applied index
 * (the effects committed here) reaches it.  A statement that begins after
 * the barrier returned sees every write committed in the group before the
 * barrier began.
 *
 * With dragonraft.read_consistency = 'linearizable', the ExecutorStart hook
 * runs the barrier for every group whose tables the statement reads, then
 * replaces the statement's snapshot, taken before the barrier, by a new one.
 * That is READ COMMITTED only: in REPEATABLE READ and SERIALIZABLE the
 * transaction's snapshot is its first statement's, taken before any hook
 * runs, so such a read is refused (0A000); a read_barrier() run before the
 * transaction began makes its reads linearizable.  Reads in the default
 * 'local' mode cost nothing here.
 *
 * One barrier per group per top-level statement: a statement is
 * linearizable if it sees the state as of a point between its start and its
 * end, so the queries nested in it (a function's, a trigger's, the foreign
 * key checks PostgreSQL runs per row) reuse a barrier that ran since the
 * top-level statement began when their snapshot sees the same transactions
 * as the one taken after that barrier (same_view(): nothing committed here
 * since, or the statement's own snapshot), else they run one of their own.
 * A top-level statement is an executor or utility entry at nesting depth 0
 * (counted by the ExecutorRun, ExecutorFinish and ProcessUtility hooks):
 * each one begins a new generation, so nothing is reused across statements.
 * The end of a transaction begins one too: a procedure that COMMITs or
 * ROLLs BACK runs its next queries in a new transaction, which may begin
 * long after the barrier (review 27).
 */
#include "dragonraft.h"

#include "access/parallel.h"
#include "access/xact.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "engine/engine.h"
#include "executor/executor.h"
#include "membership.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "queue.h"
#include "shmem.h"
#include "snapshot.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "tcop/utility.h"
#include "utils/guc.h"
#include "utils/array.h"
#include "utils/fmgrprotos.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "write.h"

#define MAX_GROUPS_PER_STATEMENT 64
/* A barrier whose local apply does not move for this many election timeouts fails. */
#define BARRIER_STALL_TIMEOUTS 20
/*
 * A barrier waits this many election timeouts for a leader to confirm its
 * read index: the engine's request timeout (engine.c, request_timeout_ticks),
 * within which it asks every next leader again (client.c, eng_reask_reads).
 * A member that just loaded a snapshot or restarted knows none until a
 * heartbeat or an append reaches it (a heartbeat interval), and an election
 * (a transfer's, or the leader's loss) leaves the group without one: each
 * candidate stands after a randomized timeout of one to two election
 * timeouts, so one election takes up to about two, and four also cover one
 * split vote; longer is not a moment of the group but a lost quorum.
 */
#define BARRIER_LEADER_TIMEOUTS 4

static ExecutorStart_hook_type prev_executor_start = NULL;
static ExecutorRun_hook_type prev_executor_run = NULL;
static ExecutorFinish_hook_type prev_executor_finish = NULL;
static ProcessUtility_hook_type prev_utility = NULL;
/* A parallel worker: how many of its ExecutorRun calls are under way. */
static int worker_run_depth = 0;

/* How many ExecutorRun, ExecutorFinish and ProcessUtility calls are under way
 * (not in a parallel worker); a call at depth 0 is a top-level statement's. */
static int nest_depth = 0;
/* The top-level statement's generation: each one at depth 0 takes a new one. */
static uint64 statement_gen = 0;
/* The read barriers this session ran (SHOW dragonraft.read_barriers). */
static uint64 barriers_run = 0;
static int barriers_guc = 0;

/* What a snapshot taken after a barrier saw: the transactions below xmax and
 * not in xip. */
typedef struct BarrierSeen {
	TransactionId xmax;
	uint32 xcnt;
	TransactionId xip[FLEXIBLE_ARRAY_MEMBER];
} BarrierSeen;

/* The barriers run in the current generation, and what their snapshot saw. */
typedef struct StatementBarrier {
	uint64 group_id;
	uint64 gen;
	BarrierSeen *seen;
} StatementBarrier;

static StatementBarrier statement_barriers[MAX_GROUPS_PER_STATEMENT];
static int n_statement_barriers = 0;

/*
 * A parallel worker can run no barrier, but its leader's statement may have
 * run the one it needs.  Before a query that may run in parallel workers
 * starts, the leader publishes in its backend's slot the groups whose
 * barrier its statement ran and whose snapshot taken after the barrier the
 * query's snapshot equals (same_view()), with what same_view() reads of that
 * snapshot (xmax, and its xip by count and digest).  A worker's query whose
 * snapshot is the same (a STABLE function's reads with the active snapshot
 * that the worker got from its leader) reads those groups.  The leader's
 * statement goes on while its workers run (they end before its Gather
 * does), and a new statement clears the slot; a nested parallel query of
 * the leader that publishes anew has another snapshot (then the worker is
 * refused, as before) or the same one (then the groups hold for it too).
 */
#define PUBLISHED_GROUPS 8
typedef struct Published {
	slock_t mutex;
	int pid; /* the backend that published, 0 if none */
	TransactionId xmax;
	uint32 xcnt;
	uint64 digest;
	int n;
	uint64 groups[PUBLISHED_GROUPS];
} Published;

static Published *published = NULL; /* MaxBackends slots, by backend id */
static bool have_published = false;

static void barrier_failed(uint64 group_id, const char *msg, const char *detail)
        pg_attribute_noreturn();

static void barrier_failed(uint64 group_id, const char *msg, const char *detail)
{
	ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
	                errmsg("linearizable read barrier of dragonraft group %llu failed: %s",
	                       (unsigned long long)group_id, msg),
	                detail ? errdetail("%s", dr_sentence(detail)) : 0,
	                errhint("Retry once dragonraft.status shows a leader and the group "
	                        "applying here, or read with dragonraft.read_consistency = "
	                        "'local'.")));
}

/* Is pid waiting for a lock that this backend holds? */
static bool waits_for_me(pid_t pid)
{
	ArrayType *a;
	Datum *pids;
	int n;

	a = DatumGetArrayTypeP(DirectFunctionCall1(pg_blocking_pids, Int32GetDatum((int32)pid)));
	deconstruct_array(a, INT4OID, sizeof(int32), true, TYPALIGN_INT, &pids, NULL, &n);
	for (int i = 0; i < n; i++)
		if (DatumGetInt32(pids[i]) == MyProcPid)
			return true;
	return false;
}

/* Is the apply worker, or a snapshot loader, waiting for a lock that this backend holds? */
static bool apply_waits_for_me(void)
{
	int loaders[DR_SNAP_JOBS], n = dr_snapshot_loader_pids(loaders);
	pid_t pid;

	SpinLockAcquire(&dr_shared->mutex);
	pid = dr_shared->apply_pid;
	SpinLockRelease(&dr_shared->mutex);
	if (pid != 0 && waits_for_me(pid))
		return true;
	for (int i = 0; i < n; i++)
		if (waits_for_me(loaders[i]))
			return true;
	return false;
}

/* Why a local apply that has not moved since `moved` will not reach the barrier
 * (failures and error: the group's apply status), or NULL to wait on. */
static const char *apply_stuck(TimestampTz moved, int stall, uint32 failures, const char *error)
{
	TimestampTz now = GetCurrentTimestamp();

	if (failures > 0)
		return psprintf("Applying the next entry failed: %s", error);
	if (TimestampDifferenceExceeds(moved, now, 100) && apply_waits_for_me())
		return "The apply worker waits for a lock that this transaction holds.";
	if (TimestampDifferenceExceeds(moved, now, stall))
		return psprintf("It did not move for %d ms: the apply worker may be waiting for a "
		                "lock, or not running.",
		                stall);
	return NULL;
}

/* A read barrier of a member removed from its group fails: its ReadIndex
 * would go unanswered (review 3 #10).  *life: the group's DrGroup.life, and
 * *leaderless whether this member knows no leader of it, if not NULL. */
static void check_not_removed(uint64 group_id, uint64 *life, bool *leaderless)
{
	DrGroup *g;
	bool removed = false;

	LWLockAcquire(dr_shared->groups_lock, LW_SHARED);
	g = dr_shmem_group_find(group_id);
	if (g != NULL) {
		if (life != NULL)
			*life = g->life;
		SpinLockAcquire(&g->mutex);
		removed = g->removed;
		if (leaderless != NULL)
			*leaderless = g->leader == 0;
		SpinLockRelease(&g->mutex);
	}
	LWLockRelease(dr_shared->groups_lock);
	if (removed)
		barrier_failed(group_id, psprintf("node %d was removed from the group", dr_node_id),
		               "Its tables here are no longer replicated.");
}

uint64 dr_read_barrier(uint64 group_id)
{
	return dr_read_barrier_ext(group_id, false);
}

uint64 dr_read_barrier_ext(uint64 group_id, bool wait_load)
{
	DrResult res;
	DrSnapPhase phase;
	uint64 done, total;
	DrGroup *g;
	TimestampTz moved;
	uint64 last = 0;
	bool leaderless = false;
	const char *why;
	int stall;
	int leader_wait = BARRIER_LEADER_TIMEOUTS * dr_election_rtt * dr_rtt_ms;
	uint64 life = 0;

	/* join_group's barrier (wait_load) waits for an engine worker that
	 * restarts, as join_group's own waits (sql_membership.c view_joined). */
	while (wait_load && !dr_shmem_engine_running()) {
		dr_shmem_engine_wait();
		CHECK_FOR_INTERRUPTS();
	}
	dr_sql_groups_check_engine();
	check_not_removed(group_id, &life, wait_load ? &leaderless : NULL);
	/*
	 * The engine asks every next leader for the read index until one
	 * confirms it, within leader_wait (a change of leader, a follower's
	 * flicker to pre-candidate, or no leader known yet fail no read), and a
	 * cancel or statement_timeout ends the wait here at once.  join_group
	 * says so when its member knows no leader yet (a plain read does not: a
	 * NOTICE at every statement during an election would be noise, and
	 * should the wait fail, its error says why).
	 */
	for (;;) {
		if (leaderless)
			ereport(NOTICE, (errmsg("joining group %llu: node %d knows no leader of it; "
			                        "waiting up to %d ms for one",
			                        (unsigned long long)group_id, dr_node_id,
			                        leader_wait)));
		dr_queue_call(DR_REQ_READ_INDEX, group_id, 0, NULL, 0, &res);
		/*
		 * join_group's barrier also waits for a load, an engine restart, the
		 * member stopped under the read, without a bound: a member
		 * restarted in place to take another snapshot is asked again, one
		 * that left says so (gone, join_group's own error; TAP 127 failed 1
		 * run in 6 on "group stopped" with no reason).  A removed member, a
		 * group gone end it at once.
		 */
		if (!wait_load || (res.rc != ENGINE_ERR_BUSY && res.rc != DR_RC_ENGINE_EXITED &&
		                   res.rc != ENGINE_ERR_STOPPED))
			break;
		while (!dr_shmem_engine_running()) {
			dr_shmem_engine_wait();
			CHECK_FOR_INTERRUPTS();
		}
		CHECK_FOR_INTERRUPTS();
		(void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 50,
		                PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		leaderless = false; /* (said once) */
		check_not_removed(group_id, NULL, NULL);
	}
	if (res.rc != ENGINE_OK)
		check_not_removed(group_id, NULL, NULL); /* (removed while it waited: says so) */
	switch (res.rc) {
	case ENGINE_OK:
		break;
	case ENGINE_ERR_NO_GROUP:
		dr_sql_groups_not_run((int64)group_id, NULL);
		break;
	case ENGINE_ERR_TIMEOUT:
		barrier_failed(group_id, "no quorum confirmed the leader in time",
		               psprintf("A read index waits %d ms for a majority of the voters.",
		                        leader_wait));
		break;
	case ENGINE_ERR_DROPPED: /* (at the end of the wait: no leader known then) */
		barrier_failed(group_id, "the group has no leader at the moment",
		               psprintf("No leader confirmed the read index for %d ms (%d election "
		                        "timeouts), and this member knows none.",
		                        leader_wait, BARRIER_LEADER_TIMEOUTS));
		break;
	case ENGINE_ERR_BUSY: /* (a read index meets no backpressure: a frozen group) */
		barrier_failed(group_id,
		               "this member is loading a snapshot or retrying a membership change",
		               NULL);
		break;
	case DR_RC_ENGINE_EXITED:
		barrier_failed(group_id, "the engine worker exited", NULL);
		break;
	case ENGINE_ERR_STOPPED:
		barrier_failed(group_id, "the group stopped on this node while the barrier waited",
		               "The member left the group (leave_group), was removed from it, or "
		               "restarted to take a snapshot; dragonraft.status shows it now.");
		break;
	default:
		barrier_failed(group_id, res.rc > -100 ? engine_strerror(res.rc) : "bad request",
		               res.errmsg[0] ? res.errmsg : NULL);
	}

	/*
	 * The engine handed the entries up to res.index to the apply side: wait for
	 * them, but not for an apply that stopped moving (review 3 #5): the apply
	 * worker may be failing, stopped, or waiting for a lock that this very
	 * transaction holds, which no deadlock detector sees.
	 */
	stall = BARRIER_STALL_TIMEOUTS * dr_election_rtt * dr_rtt_ms;
	moved = GetCurrentTimestamp();
	for (;;) {
		uint64 applied = 0;
		uint32 failures = 0;
		DrMemberState state = DR_MEMBER_FAILED;
		char error[DR_ERROR_LEN];

		LWLockAcquire(dr_shared->groups_lock, LW_SHARED);
		g = dr_shmem_group_find(group_id);
		if ((g == NULL || g->life != life) && !dr_shmem_engine_running()) {
			/* (the next engine worker adds it again: shmem.c; the stall
			 * timeout still ends the wait) */
			LWLockRelease(dr_shared->groups_lock);
			if ((why = apply_stuck(moved, stall, 0, "")) != NULL) {
				ConditionVariableCancelSleep();
				barrier_failed(group_id, "the engine worker restarts on this node",
				               why);
			}
			dr_shmem_engine_wait();
			CHECK_FOR_INTERRUPTS();
			continue;
		}
		if (g != NULL && g->life != life) {
			/* The group was left and made again here (same id, a new log):
			 * its applied index is not the read index's (rev58). */
			LWLockRelease(dr_shared->groups_lock);
			ConditionVariableCancelSleep();
			barrier_failed(group_id,
			               "the group was left on this node and made again while the "
			               "barrier waited",
			               NULL);
		}
		if (g != NULL) {
			SpinLockAcquire(&g->mutex);
			applied = g->applied;
			state = g->member_state;
			failures = g->apply_failures;
			if (failures > 0)
				strlcpy(error, g->error, sizeof(error));
			SpinLockRelease(&g->mutex);
		}
		LWLockRelease(dr_shared->groups_lock);
		if (applied >= res.index)
			break;
		if (g == NULL || state == DR_MEMBER_FAILED || state == DR_MEMBER_LOST) {
			ConditionVariableCancelSleep();
			barrier_failed(group_id, "the group stopped on this node", NULL);
		}
		/* (A snapshot that this member loads is progress too.) */
		if (applied != last || state == DR_MEMBER_RECOVERING ||
		    dr_snapshot_receiving(group_id, &phase, &done, &total, NULL)) {
			last = applied;
			moved = GetCurrentTimestamp();
		} else if ((why = apply_stuck(moved, stall, failures, error)) != NULL) {
			ConditionVariableCancelSleep();
			barrier_failed(group_id,
			               psprintf("this node's apply is stuck at entry %llu of %llu",
			                        (unsigned long long)applied,
			                        (unsigned long long)res.index),
			               why);
		}
		/* The entry's memory and applied_cv stay in shared memory if
		 * leave_group removes it meanwhile (maybe another group's then:
		 * shmem.h); the timeout then ends the sleep and the lookup fails. */
		dr_shmem_want_applied(group_id, res.index);
		(void)ConditionVariableTimedSleep(&g->applied_cv, 100, PG_WAIT_EXTENSION);
	}
	ConditionVariableCancelSleep();
	barriers_run++;
	return res.index;
}

/*
 * Does snapshot s see the same transactions as seen (the one taken after a
 * barrier)?  Only then may s's query go without a barrier of its own: a
 * newer one could show a write made here (or in another group, after its
 * barrier) after a write of this group that this member has not applied yet,
 * the later without the earlier (review 27 finding 2); an older one misses
 * what the barrier waited for.  Same xmax, same number of running
 * transactions, each of s's among seen's.
 */
static bool same_view(Snapshot s, const BarrierSeen *seen)
{
	if (s == NULL || s->snapshot_type != SNAPSHOT_MVCC || s->takenDuringRecovery ||
	    !TransactionIdEquals(s->xmax, seen->xmax) || s->xcnt != seen->xcnt)
		return false;
	for (uint32 i = 0; i < s->xcnt; i++) {
		bool running = false;

		for (uint32 j = 0; j < seen->xcnt && !running; j++)
			running = TransactionIdEquals(seen->xip[j], s->xip[i]);
		if (!running)
			return false;
	}
	return true;
}

/* What the snapshot taken after the current statement's barrier of group_id
 * saw; NULL: the statement ran none. */
static const BarrierSeen *statement_barrier(uint64 group_id)
{
	for (int i = 0; i < n_statement_barriers; i++) {
		StatementBarrier *b = &statement_barriers[i];

		if (b->gen == statement_gen && b->group_id == group_id)
			return b->seen;
	}
	return NULL;
}

/* How many of the n groups snap reads without a barrier of its own. */
static int covered(const uint64 *groups, int n, Snapshot snap)
{
	int k = 0;

	for (int i = 0; i < n; i++) {
		const BarrierSeen *seen = statement_barrier(groups[i]);

		k += seen != NULL && same_view(snap, seen);
	}
	return k;
}

/* Group group_id's barrier ran in this statement, snap taken after it. */
static void statement_barrier_ran(uint64 group_id, Snapshot snap)
{
	StatementBarrier *b = NULL;
	BarrierSeen *seen;
	int keep = 0;

	/* The entries of past statements go. */
	for (int i = 0; i < n_statement_barriers; i++) {
		if (statement_barriers[i].gen == statement_gen &&
		    statement_barriers[i].group_id != group_id)
			statement_barriers[keep++] = statement_barriers[i];
		else
			pfree(statement_barriers[i].seen);
	}
	n_statement_barriers = keep;
	if (n_statement_barriers == MAX_GROUPS_PER_STATEMENT)
		return; /* (the next nested read runs its own) */
	seen = MemoryContextAlloc(TopMemoryContext,
	                          offsetof(BarrierSeen, xip) + snap->xcnt * sizeof(TransactionId));
	seen->xmax = snap->xmax;
	seen->xcnt = snap->xcnt;
	memcpy(seen->xip, snap->xip, snap->xcnt * sizeof(TransactionId));
	b = &statement_barriers[n_statement_barriers++];
	b->group_id = group_id;
	b->gen = statement_gen;
	b->seen = seen;
}

static uint64 xip_digest(Snapshot s)
{
	return hash_bytes_extended((const unsigned char *)s->xip, s->xcnt * sizeof(TransactionId),
	                           0);
}

static void unpublish(void)
{
	Published *p;

	if (published == NULL || MyBackendId < 1 || MyBackendId > MaxBackends)
		return; /* (not preloaded; no backend slot) */
	p = &published[MyBackendId - 1];
	SpinLockAcquire(&p->mutex);
	p->pid = 0;
	p->n = 0;
	SpinLockRelease(&p->mutex);
	have_published = false;
}

/* A new top-level statement of this backend. */
static void statement_begins(void)
{
	statement_gen++;
	if (have_published)
		unpublish();
}

/* The end of a transaction (a procedure's COMMIT or ROLLBACK, too): its
 * barriers are reused no more. */
static void xact_ends(XactEvent event, void *arg)
{
	if (IsParallelWorker() || (event != XACT_EVENT_COMMIT && event != XACT_EVENT_ABORT &&
	                           event != XACT_EVENT_PREPARE))
		return;
	statement_gen++;
	if (have_published)
		unpublish();
}

/* The leader, before a query that may run in parallel workers starts. */
static void publish(Snapshot snap)
{
	Published *p;
	uint64 groups[PUBLISHED_GROUPS];
	int n = 0;

	if (published == NULL || MyBackendId < 1 || MyBackendId > MaxBackends)
		return;
	p = &published[MyBackendId - 1];
	if (snap->snapshot_type != SNAPSHOT_MVCC || snap->takenDuringRecovery) {
		if (have_published)
			unpublish();
		return;
	}
	for (int i = 0; i < n_statement_barriers && n < PUBLISHED_GROUPS; i++)
		if (statement_barriers[i].gen == statement_gen &&
		    same_view(snap, statement_barriers[i].seen))
			groups[n++] = statement_barriers[i].group_id;
	if (n == 0 && !have_published)
		return;
	SpinLockAcquire(&p->mutex);
	p->pid = MyProcPid;
	p->xmax = snap->xmax;
	p->xcnt = snap->xcnt;
	p->digest = xip_digest(snap);
	p->n = n;
	memcpy(p->groups, groups, n * sizeof(uint64));
	SpinLockRelease(&p->mutex);
	have_published = true;
}

/* A parallel worker: did its leader publish group_id for a snapshot like snap? */
static bool leader_covered(uint64 group_id, Snapshot snap)
{
	PGPROC *leader = MyProc->lockGroupLeader;
	Published *p;
	uint64 digest;
	bool found = false;

	if (published == NULL || leader == NULL || leader == MyProc ||
	    ParallelLeaderBackendId < 1 || ParallelLeaderBackendId > MaxBackends || snap == NULL ||
	    snap->snapshot_type != SNAPSHOT_MVCC || snap->takenDuringRecovery)
		return false;
	digest = xip_digest(snap);
	p = &published[ParallelLeaderBackendId - 1];
	SpinLockAcquire(&p->mutex);
	if (p->pid != 0 && p->pid == leader->pid && p->xmax == snap->xmax &&
	    p->xcnt == snap->xcnt && p->digest == digest)
		for (int i = 0; i < p->n; i++)
			found = found || p->groups[i] == group_id;
	SpinLockRelease(&p->mutex);
	return found;
}

/* A table this member refused (its group's registration met rows or another
 * definition here) holds stale rows: a linearizable read of it is refused, as a
 * local write is (review 3 #7). */
static void check_not_refused(Relation rel)
{
	TriggerDesc *td = rel->trigdesc;

	for (int i = 0; td != NULL && i < td->numtriggers; i++) {
		Trigger *t = &td->triggers[i];

		if (t->tgnargs == 2 && strcmp(t->tgname, DR_REFUSED_TRIGGER) == 0 &&
		    strcmp(t->tgargs[0], "refused") == 0) {
			char *name = pstrdup(RelationGetRelationName(rel));
			char *group = pstrdup(t->tgargs[1]);

			RelationClose(rel);
			ereport(ERROR,
			        (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			         errmsg("table \"%s\" was refused by dragonraft group %s on this "
			                "member",
			                name, group),
			         errdetail("This member does not replicate it: a linearizable read "
			                   "of it would return rows that the group does not have.  "
			                   "dragonraft.tables says why it was refused."),
			         errhint("Read it with dragonraft.read_consistency = 'local'.  To "
			                 "replicate it here: remove_member on the leader, "
			                 "leave_group here, empty the table, and join again "
			                 "under a new dragonraft.node_id.")));
		}
	}
}

/*
 * The groups of the replicated tables that a statement reads.  An INSERT's
 * target that it reads nothing of (no RETURNING, no ON CONFLICT reading the
 * row: no SELECT privilege asked) is not read: it took a ReadIndex round per
 * INSERT, and was refused in REPEATABLE READ as a read (review 23 F3).
 */
static int statement_groups(PlannedStmt *ps, uint64 *groups)
{
	int n = 0, rti = 0;
	ListCell *lc;

	foreach (lc, ps->rtable) {
		RangeTblEntry *rte = lfirst_node(RangeTblEntry, lc);
		Relation rel;
		uint64 gid;
		bool found = false;

		rti++;
		if (rte->rtekind != RTE_RELATION || rte->relkind != RELKIND_RELATION)
			continue;
		if (ps->commandType == CMD_INSERT && (rte->requiredPerms & ACL_SELECT) == 0 &&
		    list_member_int(ps->resultRelations, rti))
			continue;
		rel = RelationIdGetRelation(rte->relid);
		if (rel == NULL)
			continue;
		check_not_refused(rel);
		if (dr_capture_rel_replicated(rel, &gid, NULL)) {
			for (int i = 0; i < n; i++)
				found = found || groups[i] == gid;
			if (!found && n == MAX_GROUPS_PER_STATEMENT) {
				RelationClose(rel);
				ereport(ERROR,
				        (errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				         errmsg("a linearizable statement reads tables of more "
				                "than %d "
				                "dragonraft groups",
				                MAX_GROUPS_PER_STATEMENT),
				         errhint("Run dragonraft.read_barrier() for each group, "
				                 "then read "
				                 "with dragonraft.read_consistency = 'local'.")));
			}
			if (!found)
				groups[n++] = gid;
		}
		RelationClose(rel);
	}
	return n;
}

static void executor_start(QueryDesc *qd, int eflags)
{
	int *depth;

	/*
	 * A query that a parallel worker starts while it runs its part of the
	 * plan (a PARALLEL SAFE function's) had neither barrier nor a snapshot
	 * after one: it read what was applied when the statement began (review 23
	 * F4), unless its leader's statement ran the group's barrier and the
	 * worker's snapshot follows it (leader_covered()).  The part of the plan
	 * itself is the leader's, which ran them.
	 */
	if (dr_read_consistency == DR_READ_LINEARIZABLE && IsParallelWorker() &&
	    worker_run_depth > 0 && !(eflags & EXEC_FLAG_EXPLAIN_ONLY)) {
		uint64 groups[MAX_GROUPS_PER_STATEMENT];
		int n = statement_groups(qd->plannedstmt, groups), m = 0;

		for (int i = 0; i < n; i++)
			if (!leader_covered(groups[i], qd->snapshot))
				groups[m++] = groups[i];
		if (m > 0)
			ereport(ERROR,
			        (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			         errmsg("a linearizable read of dragonraft group %llu cannot run "
			                "in a "
			                "parallel worker",
			                (unsigned long long)groups[0]),
			         errdetail(
			                 "A function that the statement runs in a parallel worker "
			                 "reads the group's tables, and the statement ran no "
			                 "barrier of the group that the worker's snapshot "
			                 "follows; a parallel worker can wait for no read "
			                 "barrier nor take a snapshot after one."),
			         errhint("Mark the function PARALLEL RESTRICTED, or run "
			                 "dragonraft.read_barrier() first and read with "
			                 "dragonraft.read_consistency = 'local'.")));
	}
	if (!IsParallelWorker() && nest_depth == 0)
		statement_begins(); /* a top-level statement's query */
	/* A parallel worker runs with the snapshot its leader took after the barrier. */
	if (dr_read_consistency == DR_READ_LINEARIZABLE && !dr_is_apply_worker &&
	    !IsParallelWorker() && !(eflags & EXEC_FLAG_EXPLAIN_ONLY) && qd->snapshot != NULL) {
		uint64 groups[MAX_GROUPS_PER_STATEMENT];
		int n = statement_groups(qd->plannedstmt, groups);
		bool xact_snapshot = IsolationUsesXactSnapshot();

		/*
		 * A nested query (a function's, a trigger's, a foreign key check's)
		 * of groups whose barriers its top-level statement ran needs none of
		 * its own if it reads with a snapshot that sees the same transactions
		 * as the ones taken after them: its own (a STABLE function's reads
		 * with the statement's), or a new one while nothing else committed
		 * here since (a volatile function's, a foreign key check's, or one
		 * older than the barrier: an AFTER trigger's).  Otherwise all of
		 * them run a barrier: a newer snapshot could show a write made here
		 * or in another group after a write of this group that this member
		 * has not applied yet (review 27 finding 2).
		 */
		if (n > 0 && nest_depth > 0 && covered(groups, n, qd->snapshot) < n &&
		    (!xact_snapshot || qd->crosscheck_snapshot != InvalidSnapshot)) {
			Snapshot fresh =
			        xact_snapshot ? GetLatestSnapshot() : GetTransactionSnapshot();

			if (covered(groups, n, fresh) == n) {
				UnregisterSnapshot(qd->snapshot);
				qd->snapshot = RegisterSnapshot(fresh);
			}
		}
		if (n > 0 && nest_depth > 0 && covered(groups, n, qd->snapshot) == n)
			n = 0;
		/* The transaction's snapshot predates any barrier run now: it would read stale
		 * data without a word (review 3 #3).  Not so a foreign key check that must see
		 * rows newer than it (ri_PerformCheck: a crosscheck snapshot, and the latest
		 * snapshot, taken again after the barrier). */
		if (n > 0 && xact_snapshot && qd->crosscheck_snapshot == InvalidSnapshot)
			ereport(ERROR,
			        (errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
			         errmsg("dragonraft.read_consistency = 'linearizable' reads only "
			                "in "
			                "READ COMMITTED"),
			         errdetail(
			                 "A REPEATABLE READ or SERIALIZABLE transaction reads the "
			                 "snapshot taken when its first statement began, before "
			                 "any "
			                 "read barrier could run."),
			         errhint("Run SELECT dragonraft.read_barrier(group_id) before "
			                 "BEGIN and "
			                 "read with dragonraft.read_consistency = 'local' inside "
			                 "the "
			                 "transaction.")));
		for (int i = 0; i < n; i++)
			(void)dr_read_barrier(groups[i]);
		if (n > 0) {
			/* The statement's snapshot predates the barrier: take one after it. */
			UnregisterSnapshot(qd->snapshot);
			qd->snapshot = RegisterSnapshot(xact_snapshot ? GetLatestSnapshot()
			                                              : GetTransactionSnapshot());
			for (int i = 0; i < n; i++)
				statement_barrier_ran(groups[i], qd->snapshot);
		}
		if (qd->plannedstmt->parallelModeNeeded)
			publish(qd->snapshot);
	}
	/* Queries run while the executor starts (initial partition pruning calls
	 * STABLE functions) are nested in this one (review 27 finding 3): not a
	 * new statement's, and in a parallel worker checked as the worker's own. */
	depth = IsParallelWorker() ? &worker_run_depth : &nest_depth;
	(*depth)++;
	PG_TRY();
	{
		if (prev_executor_start)
			prev_executor_start(qd, eflags);
		else
			standard_ExecutorStart(qd, eflags);
	}
	PG_FINALLY();
	{
		(*depth)--;
	}
	PG_END_TRY();
}

/*
 * A statement whose snapshot executor_start replaced runs with it as the
 * active snapshot too.  A parallel worker executes with its leader's active
 * snapshot (ExecParallelGetQueryDesc), and a plan node that is not parallel
 * aware (a single-copy Gather's plan, the inner side of a parallel join)
 * scans with it: where the caller pushed its own snapshot, taken before the
 * barrier (SPI, EXPLAIN ANALYZE, CREATE TABLE AS, COPY (query) TO), such a
 * worker read rows older than the barrier (review 23 F1).  As PortalRunSelect
 * does; an error's abort pops it.
 */
static void run(QueryDesc *qd, ScanDirection dir, uint64 count, bool execute_once)
{
	if (prev_executor_run)
		prev_executor_run(qd, dir, count, execute_once);
	else
		standard_ExecutorRun(qd, dir, count, execute_once);
}

static void executor_run(QueryDesc *qd, ScanDirection dir, uint64 count, bool execute_once)
{
	bool push = dr_read_consistency == DR_READ_LINEARIZABLE && qd->snapshot != NULL &&
	            ActiveSnapshotSet() && GetActiveSnapshot() != qd->snapshot;

	if (IsParallelWorker()) {
		worker_run_depth++;
		PG_TRY();
		{
			run(qd, dir, count, execute_once);
		}
		PG_FINALLY();
		{
			worker_run_depth--;
		}
		PG_END_TRY();
		return;
	}
	if (push)
		PushActiveSnapshot(qd->snapshot);
	nest_depth++;
	PG_TRY();
	{
		run(qd, dir, count, execute_once);
	}
	PG_FINALLY();
	{
		nest_depth--;
	}
	PG_END_TRY();
	if (push)
		PopActiveSnapshot();
}

/* The AFTER triggers of a query (foreign key checks) run nested in it. */
static void executor_finish(QueryDesc *qd)
{
	if (IsParallelWorker()) {
		if (prev_executor_finish)
			prev_executor_finish(qd);
		else
			standard_ExecutorFinish(qd);
		return;
	}
	nest_depth++;
	PG_TRY();
	{
		if (prev_executor_finish)
			prev_executor_finish(qd);
		else
			standard_ExecutorFinish(qd);
	}
	PG_FINALLY();
	{
		nest_depth--;
	}
	PG_END_TRY();
}

/* A utility statement at depth 0 (DO, CALL, COPY, CREATE TABLE AS, FETCH ...)
 * is a top-level statement: the queries it runs are nested in it. */
static void utility(PlannedStmt *ps, const char *query, bool read_only, ProcessUtilityContext ctx,
                    ParamListInfo params, QueryEnvironment *env, DestReceiver *dest,
                    QueryCompletion *qc)
{
	if (!IsParallelWorker() && nest_depth == 0)
		statement_begins();
	nest_depth++;
	PG_TRY();
	{
		if (prev_utility)
			prev_utility(ps, query, read_only, ctx, params, env, dest, qc);
		else
			standard_ProcessUtility(ps, query, read_only, ctx, params, env, dest, qc);
	}
	PG_FINALLY();
	{
		nest_depth--;
	}
	PG_END_TRY();
}

static const char *show_barriers(void)
{
	return psprintf(UINT64_FORMAT, barriers_run);
}

Size dr_reads_shmem_size(void)
{
	return MAXALIGN(mul_size(MaxBackends, sizeof(Published)));
}

void dr_reads_shmem_init(void)
{
	bool found;

	published = ShmemInitStruct("dragonraft reads", dr_reads_shmem_size(), &found);
	if (!found)
		for (int i = 0; i < MaxBackends; i++) {
			memset(&published[i], 0, sizeof(Published));
			SpinLockInit(&published[i].mutex);
		}
}

void dr_reads_init(void)
{
	prev_executor_start = ExecutorStart_hook;
	ExecutorStart_hook = executor_start;
	prev_executor_run = ExecutorRun_hook;
	ExecutorRun_hook = executor_run;
	prev_executor_finish = ExecutorFinish_hook;
	ExecutorFinish_hook = executor_finish;
	prev_utility = ProcessUtility_hook;
	ProcessUtility_hook = utility;
	RegisterXactCallback(xact_ends, NULL);
	DefineCustomIntVariable("dragonraft.read_barriers",
	                        "How many read barriers this session ran (read only).", NULL,
	                        &barriers_guc, 0, 0, INT_MAX, PGC_INTERNAL,
	                        GUC_NO_RESET_ALL | GUC_NOT_IN_SAMPLE | GUC_DISALLOW_IN_FILE, NULL,
	                        NULL, show_barriers);
}
