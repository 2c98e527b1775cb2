/*
 * pg_sm.c - the state machine of every group, as the engine sees it, and the
 * queue to the apply worker (DESIGN §3, §9).
 *
 * The engine hands committed entries to apply(); they are copied (malloc:
 * this is an engine callback) into a list in hand-over order and sent to the
 * apply worker through a shm_mq without ever blocking.  An entry is kept
 * until the apply worker's applied index (shared memory) covers it, so an
 * apply worker that is restarted gets every entry above its applied index
 * again.  What is kept is bounded in bytes: at the bound apply_busy() holds
 * the group's committed entries in the Raft log (they stay durable and
 * acknowledged) until the apply worker catches up and the group is resumed.
 * A change set that a live local backend commits itself (the leader's own
 * writes) is held back, with its group's later entries, until that backend
 * committed it or gave up (backend_applies).
 *
 * A group whose entry failed to apply is parked by the apply worker (its
 * status says when to try again): it is held here until it applies, and at
 * the time set its entries are sent again, after a DR_APPLY_RESEND message,
 * while the other groups' entries keep flowing.
 *
 * durable_applied() is the applied index whose commit is flushed to WAL:
 * the replication origin's progress, flushed (replorigin_get_progress with
 * flush), read in the main loop and cached (the callback may not do I/O or
 * raise errors).  Compaction stays below it, and a restart replays above it.
 *
 * The apply worker is started here once a group exists (its database holds
 * the extension then) and again whenever it exits.
 *
 * Full snapshots (snapshot.h): save_snapshot starts an exporter (a dynamic
 * background worker) and holds the group's apply only while the exporter
 * takes its snapshot (watch_exports); recover queues a DR_APPLY_SNAPSHOT
 * message that the apply worker loads after the group's earlier entries; a
 * received file that cannot be loaded restarts its group in place after a
 * pause (heal_later), so that the leader sends another.
 */
#include "engine_worker.h"

#include "apply.h"
#include "entry/entry.h"
#include "miscadmin.h"
#include "snapshot.h"
#include "postmaster/bgworker.h"
#include "raft/raft.h"
#include "storage/fd.h"
#include "storage/proc.h"
#include "storage/shm_mq.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "write.h"

/* An entry handed over and not yet applied. */
typedef struct DrSmEntry {
	dlist_node group_node; /* in its group's entries */
	dlist_node order_node; /* in hand-over order */
	DrSm *sm;              /* its group */
	bool sent;             /* to the current apply worker, in hand-over order */
	DrApplyMsg msg;
	uint8 data[FLEXIBLE_ARRAY_MEMBER];
} DrSmEntry;

/* Bytes of entries kept for the apply worker before groups are held. */
#define QUEUE_BOUND ((Size)32 * 1024 * 1024)
/* Pause before starting an apply worker again after one exited; and the most. */
#define RESTART_DELAY_MS     1000
#define MAX_RESTART_DELAY_MS 30000
/* Pause before a leader exports a snapshot again after an export failed; it
 * doubles with each failure in a row, up to the most. */
#define EXPORT_RETRY_MS     1000
#define MAX_EXPORT_RETRY_MS 60000
/* Pause before a group whose received snapshot file cannot be loaded restarts to
 * get another; it doubles with each such load in a row, up to the most. */
#define HEAL_RETRY_MS     1000
#define MAX_HEAL_RETRY_MS 120000
/* ... and after one found no extension in dragonraft.database, or had no slot. */
#define RETRY_DELAY_MS 10000
/* While a local backend's entry is held (backend_applies): how often to look
 * again whether that backend is done with it. */
#define HOLD_POLL_MS 1

static struct {
	dlist_head order;        /* every entry kept, in hand-over order */
	DrSmEntry *next_send;    /* first entry not yet sent, NULL = all sent */
	uint64 pass;             /* of send_new over the entries not sent */
	Size bytes;              /* bytes kept */
	dlist_head with_entries; /* groups that have entries kept */
	dlist_head progressed;   /* groups whose applied index moved since the last refresh */
	dlist_head held;         /* groups held by apply_busy */
	dlist_head resend;       /* parked groups whose entries are due to be sent again */
	dlist_head exports;      /* groups whose full snapshot is being made */
	dlist_head digests;      /* groups held for a backend's table digest */
	dlist_head heals;        /* groups to restart for another snapshot (heal_at) */
	bool watched;            /* a group is recovering or parked */
	bool holding;            /* an entry is held: a live local backend applies it */
	bool resend_started;     /* the head's DR_APPLY_RESEND message is sent */
	DrSmEntry *resend_next;  /* the head's next entry to send again, NULL = done */
	TimestampTz next_retry;  /* earliest time a parked group is due; 0 = none */
	/*
	 * A message whose send would block may be partly in the queue: the next
	 * send must be the same message, and its entry stays until it is sent
	 * (a backend may apply its own entry meanwhile).
	 */
	DrSmEntry *blocked;  /* that entry; NULL: none, or a DR_APPLY_RESEND message */
	bool blocked_normal; /* it is send_new's (not the resend's) */

	dsm_segment *seg; /* the current apply worker's queue */
	DrApplyQueue *queue;
	shm_mq_handle *mqh;
	bool counted;    /* the message being sent is counted (queue->messages) */
	bool wake_delay; /* a message sent since the last flush ends the apply worker's delay */
	BackgroundWorkerHandle *worker;
	TimestampTz next_start; /* no apply worker starts before */
	int failures;           /* apply workers that exited since anything was applied */
	bool warned;            /* about the current reason it cannot start */
} S;

/*
 * Snapshot files a previous engine worker left (it crashed while one was
 * made, sent or loaded) are of no use to this one; partial streams (.part)
 * are the transport's to resume or age out.
 */
static void remove_stale_snapshots(void)
{
	char *dir = psprintf("%s/snapshots", dr_data_dir);
	DIR *d = AllocateDir(dir);
	struct dirent *de;
	int n = 0;

	if (d == NULL)
		return; /* none yet */
	while ((de = ReadDir(d, dir)) != NULL) {
		size_t len = strlen(de->d_name);

		if (strncmp(de->d_name, "snap-", 5) != 0 ||
		    (len > 5 && strcmp(de->d_name + len - 5, ".part") == 0))
			continue;
		if (unlink(psprintf("%s/%s", dir, de->d_name)) == 0)
			n++;
	}
	FreeDir(d);
	if (n > 0)
		ereport(LOG,
		        (errmsg("dragonraft removed %d snapshot files of a previous engine worker "
		                "from \"%s\"",
		                n, dir)));
}

/*
 * The holds of a previous engine worker ended with it: a digest it claimed
 * (its backend may be past the drain) fails with why, as when the group
 * stops here (this worker never claims it again); an export it started is
 * called off (its exporter's job is freed, its file is gone).  A digest not
 * yet claimed is this worker's to claim.
 */
static void end_predecessors_jobs(void)
{
	for (int i = 0; i < DR_SNAP_JOBS; i++) {
		DrSnapJob *j = dr_snapshot_job(i);
		int waiter = -1;

		SpinLockAcquire(&j->mutex);
		if (j->group_id != 0 && j->role == DR_SNAP_DIGEST && j->claimed &&
		    j->phase != DR_SNAP_DONE) {
			strlcpy(j->error, "The engine worker that held the group's apply exited.",
			        sizeof(j->error));
			j->rc = ENGINE_ERR_NO_GROUP;
			j->phase = DR_SNAP_DONE;
			waiter = j->waiter_pgprocno;
		} else if (j->role == DR_SNAP_SENDER)
			j->group_id = 0;
		SpinLockRelease(&j->mutex);
		if (waiter >= 0)
			SetLatch(&ProcGlobal->allProcs[waiter].procLatch);
	}
}

void dr_pg_sm_init(void)
{
	remove_stale_snapshots();
	end_predecessors_jobs();
	memset(&S, 0, sizeof(S));
	dlist_init(&S.order);
	dlist_init(&S.with_entries);
	dlist_init(&S.progressed);
	dlist_init(&S.held);
	dlist_init(&S.resend);
	dlist_init(&S.heals);
	dlist_init(&S.exports);
	dlist_init(&S.digests);
}

/* ---- engine callbacks: no palloc, no ereport ---- */

/* Keep one message for the apply worker (malloc: an engine callback). */
static bool keep(DrSm *sm, raft_index index, raft_term term, uint32 type, const void *data,
                 uint32 len)
{
	DrSmEntry *e = malloc(offsetof(DrSmEntry, data) + len);

	if (e == NULL)
		return false;
	e->sm = sm;
	e->sent = false;
	e->msg.group_id = sm->group_id;
	e->msg.made = sm->shared->made;
	e->msg.index = index;
	e->msg.term = term;
	e->msg.type = type;
	e->msg.len = len;
	if (len > 0)
		memcpy(e->data, data, len);
	if (dlist_is_empty(&sm->entries))
		dlist_push_tail(&S.with_entries, &sm->queued);
	dlist_push_tail(&sm->entries, &e->group_node);
	dlist_push_tail(&S.order, &e->order_node);
	S.bytes += sizeof(DrSmEntry) + len;
	if (S.next_send == NULL)
		S.next_send = e;
	sm->handed = index;
	return true;
}

/*
 * Backends may commit their own entries up to sm->handed (xact.c wait_turn):
 * published before the engine completes their proposals.  A proposal that
 * completed at its deadline while the group's apply was held (engine
 * client.c: committed, not handed) waits for its hand-over at its turn, so
 * an export's or digest's hold drains exactly what was handed before it.
 */
static void publish_handed(DrSm *sm)
{
	SpinLockAcquire(&sm->shared->mutex);
	sm->shared->handed = sm->handed;
	SpinLockRelease(&sm->shared->mutex);
}

static int sm_apply(void *ctx, const struct engine_sm_entry *ents, uint32_t n)
{
	DrSm *sm = ctx;
	int rc = ENGINE_OK;

	dr_testing_error(DR_TESTING_FATAL_IN_ROUND);
	dr_testing_error(DR_TESTING_ERROR_IN_ROUND);
	for (uint32_t i = 0; i < n; i++) {
		if (!keep(sm, ents[i].index, ents[i].term, ents[i].type, ents[i].data,
		          ents[i].len)) {
			rc = ENGINE_ERR_NOMEM;
			break;
		}
		/* Members' addresses are the engine worker's (engine_groups.c). */
		if (ents[i].len > ENTRY_HEADER_BYTES &&
		    (entry_is_addresses(ents[i].data[1]) || entry_is_member_info(ents[i].data[1])))
			dr_engine_groups_entry_applied(sm, ents[i].data, ents[i].len);
	}
	publish_handed(sm);
	return rc;
}

static raft_index sm_durable_applied(void *ctx)
{
	return ((DrSm *)ctx)->durable;
}

static bool sm_apply_busy(void *ctx)
{
	DrSm *sm = ctx;

	if (S.bytes < QUEUE_BOUND && !sm->parked && !sm->export_hold && !sm->digest_hold)
		return false;
	if (!sm->held) {
		sm->held = true;
		dlist_push_tail(&S.held, &sm->held_node);
	}
	return true;
}

/* A full snapshot for a member (snapshot_export.c): the main loop starts the exporter. */
static int sm_save_snapshot(void *ctx, const char *path, raft_index *index)
{
	DrSm *sm = ctx;
	DrSnapJob *j;

	if (sm->exporting || strlen(path) >= MAXPGPATH ||
	    (sm->export_retry_at != 0 && GetCurrentTimestamp() < sm->export_retry_at))
		return ENGINE_ERR_SNAPSHOT;
	sm->snap_job = dr_snapshot_job_alloc(sm->group_id, DR_SNAP_SENDER);
	if (sm->snap_job < 0)
		return ENGINE_ERR_SNAPSHOT; /* too many at once: the engine asks again later */
	j = dr_snapshot_job(sm->snap_job);
	SpinLockAcquire(&j->mutex);
	strlcpy(j->path, path, sizeof(j->path));
	SpinLockRelease(&j->mutex);
	sm->exporting = true;
	sm->exporter = NULL;
	dlist_push_tail(&S.exports, &sm->snap_node);
	*index = 0;
	return ENGINE_IN_PROGRESS;
}

/*
 * A received snapshot: the apply worker loads it (DR_APPLY_SNAPSHOT, after
 * the group's entries handed over before it); engine_snapshot_recovered()
 * once its applied index reaches it (collect_applied).
 */
static int sm_recover(void *ctx, const char *path, raft_index index)
{
	DrSm *sm = ctx;

	if (!keep(sm, index, 0, DR_APPLY_SNAPSHOT, path, (uint32)strlen(path) + 1))
		return ENGINE_ERR_NOMEM;
	publish_handed(sm);
	sm->recovering = index;
	return ENGINE_IN_PROGRESS;
}

void dr_pg_sm_ops(DrSm *sm, struct engine_sm_ops *ops)
{
	memset(ops, 0, sizeof(*ops));
	ops->ctx = sm;
	ops->apply = sm_apply;
	ops->durable_applied = sm_durable_applied;
	ops->apply_busy = sm_apply_busy;
	ops->save_snapshot = sm_save_snapshot;
	ops->recover = sm_recover;
}

/* ---- main loop ---- */

static void free_entry(DrSmEntry *e)
{
	if (S.blocked == e)
		S.blocked = NULL; /* (its group is gone) */
	if (S.next_send == e)
		S.next_send = dlist_has_next(&S.order, &e->order_node)
		                      ? dlist_container(DrSmEntry, order_node,
		                                        dlist_next_node(&S.order, &e->order_node))
		                      : NULL;
	/* (A backend may apply its own entry before it is sent again.) */
	if (S.resend_next == e) {
		DrSm *sm = dlist_head_element(DrSm, resend_node, &S.resend);

		S.resend_next =
		        dlist_has_next(&sm->entries, &e->group_node)
		                ? dlist_container(DrSmEntry, group_node,
		                                  dlist_next_node(&sm->entries, &e->group_node))
		                : NULL;
	}
	dlist_delete(&e->group_node);
	dlist_delete(&e->order_node);
	S.bytes -= sizeof(DrSmEntry) + e->msg.len;
	free(e);
}

static void resend_remove(DrSm *sm)
{
	if (!sm->in_resend)
		return;
	if (dlist_head_element(DrSm, resend_node, &S.resend) == sm) {
		S.resend_started = false;
		S.resend_next = NULL;
	}
	dlist_delete(&sm->resend_node);
	sm->in_resend = false;
}

/* The export of sm ends: its apply goes on (resume: the group still runs). */
static void export_end(DrSm *sm, bool resume)
{
	if (sm->exporter != NULL) {
		TerminateBackgroundWorker(sm->exporter); /* no-op once it exited */
		pfree(sm->exporter);
	}
	sm->exporter = NULL;
	dr_snapshot_job_free(sm->snap_job);
	dlist_delete(&sm->snap_node);
	sm->exporting = false;
	if (sm->export_hold && resume)
		engine_sm_resume(dr_engine->e, sm->group_id);
	sm->export_hold = false;
}

/*
 * The table digest's hold of sm ends (its backend took its snapshot, gave up
 * or exited; or the group stops: why, to the backend); resume_held lets the
 * apply go on.
 */
static void digest_end(DrSm *sm, const char *why)
{
	DrSnapJob *j = dr_snapshot_job(sm->digest_job);
	int waiter = -1;

	SpinLockAcquire(&j->mutex);
	if (why != NULL && j->group_id == sm->group_id && j->generation == sm->digest_generation &&
	    j->phase != DR_SNAP_DONE) {
		strlcpy(j->error, why, sizeof(j->error));
		j->rc = ENGINE_ERR_NO_GROUP;
		j->phase = DR_SNAP_DONE;
		waiter = j->waiter_pgprocno;
	}
	SpinLockRelease(&j->mutex);
	if (waiter >= 0)
		SetLatch(&ProcGlobal->allProcs[waiter].procLatch);
	dlist_delete(&sm->digest_node);
	sm->digest_hold = false;
}

void dr_pg_sm_forget(DrSm *sm)
{
	if (sm->exporting)
		export_end(sm, false);
	if (sm->digest_hold)
		digest_end(sm, "The group stopped on this node.");
	sm->recovering = 0;
	if (!dlist_is_empty(&sm->entries))
		dlist_delete(&sm->queued);
	while (!dlist_is_empty(&sm->entries))
		free_entry(dlist_head_element(DrSmEntry, group_node, &sm->entries));
	if (sm->in_progressed)
		dlist_delete(&sm->progressed);
	sm->in_progressed = false;
	if (sm->held)
		dlist_delete(&sm->held_node);
	sm->held = false;
	resend_remove(sm);
	if (sm->in_heals)
		dlist_delete(&sm->heal_node);
	sm->in_heals = false;
}

void dr_pg_sm_restarted(DrSm *sm)
{
	/* Its DR_APPLY_RESEND message goes before its entries (send_entries). */
	if (!sm->in_resend) {
		dlist_push_tail(&S.resend, &sm->resend_node);
		sm->in_resend = true;
	}
}

/* Everything kept goes to a new apply worker. */
static void send_all_again(void)
{
	dlist_iter it;

	dlist_foreach(it, &S.order)
	{
		dlist_container(DrSmEntry, order_node, it.cur)->sent = false;
	}
	S.next_send = dlist_is_empty(&S.order)
	                      ? NULL
	                      : dlist_head_element(DrSmEntry, order_node, &S.order);
}

/* The apply worker looks at the queue (and finds it detached): see apply.h. */
static void queue_closing(dsm_segment *seg, Datum arg)
{
	pg_atomic_fetch_add_u64(&((DrApplyQueue *)dsm_segment_address(seg))->messages, 1);
	SetLatch(&dr_shared->apply_delay_latch); /* (not after its batch's delay) */
}

/* The apply worker exited: everything kept goes to the next one. */
static void apply_gone(void)
{
	if (S.mqh != NULL) {
		cancel_on_dsm_detach(S.seg, queue_closing, (Datum)0);
		queue_closing(S.seg, (Datum)0);
		shm_mq_detach(S.mqh);
	}
	if (S.seg != NULL)
		dsm_detach(S.seg);
	if (S.worker != NULL)
		pfree(S.worker);
	S.mqh = NULL;
	S.seg = NULL;
	S.queue = NULL;
	S.counted = false;
	S.wake_delay = false;
	S.worker = NULL;
	S.blocked = NULL;
	S.blocked_normal = false;
	/* The next apply worker gets everything, and tries parked groups at once. */
	while (!dlist_is_empty(&S.resend))
		resend_remove(dlist_head_element(DrSm, resend_node, &S.resend));
	send_all_again();
}

static void start_apply(void)
{
	BackgroundWorker w;
	MemoryContext old;
	pid_t pid;
	shm_mq *mq;

	SpinLockAcquire(&dr_shared->mutex);
	pid = dr_shared->apply_pid;
	SpinLockRelease(&dr_shared->mutex);
	if (pid != 0)
		return; /* a predecessor's apply worker is still on its way out */

	memset(&w, 0, sizeof(w));
	w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	w.bgw_start_time = BgWorkerStart_RecoveryFinished;
	w.bgw_restart_time = BGW_NEVER_RESTART; /* this worker restarts it */
	snprintf(w.bgw_library_name, BGW_MAXLEN, "dragonraft");
	snprintf(w.bgw_function_name, BGW_MAXLEN, "dr_apply_worker_main");
	snprintf(w.bgw_name, BGW_MAXLEN, "dragonraft apply worker for node %d", dr_node_id);
	snprintf(w.bgw_type, BGW_MAXLEN, "dragonraft apply");
	w.bgw_notify_pid = MyProcPid;

	old = MemoryContextSwitchTo(TopMemoryContext);
	S.seg = dsm_create(DR_APPLY_QUEUE_BYTES, 0);
	dsm_pin_mapping(S.seg);
	S.queue = dsm_segment_address(S.seg);
	pg_atomic_init_u64(&S.queue->messages, 0);
	mq = shm_mq_create((char *)S.queue + DR_APPLY_QUEUE_MQ, DR_APPLY_QUEUE_MQ_BYTES);
	shm_mq_set_sender(mq, MyProc);
	w.bgw_main_arg = UInt32GetDatum(dsm_segment_handle(S.seg));
	if (!RegisterDynamicBackgroundWorker(&w, &S.worker)) {
		MemoryContextSwitchTo(old);
		dsm_detach(S.seg);
		S.seg = NULL;
		S.queue = NULL;
		S.worker = NULL;
		S.next_start = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), RETRY_DELAY_MS);
		if (!S.warned)
			ereport(WARNING,
			        (errmsg("dragonraft cannot start its apply worker: no background "
			                "worker slot is free"),
			         errhint("Raise max_worker_processes.")));
		S.warned = true;
		return;
	}
	S.mqh = shm_mq_attach(mq, S.seg, S.worker);
	/* After shm_mq's own: at exit it runs first, before the queue is detached. */
	on_dsm_detach(S.seg, queue_closing, (Datum)0);
	MemoryContextSwitchTo(old);
	send_all_again();
}

static void warn_no_extension(void)
{
	ereport(LOG, (errmsg("dragonraft apply worker found no extension dragonraft in database "
	                     "\"%s\"",
	                     dr_database),
	              errhint("Run CREATE EXTENSION dragonraft in the database that "
	                      "dragonraft.database names; the engine worker tries again every %d "
	                      "seconds.",
	                      RETRY_DELAY_MS / 1000)));
}

/*
 * Keep an apply worker running while there are groups.  One that keeps
 * failing (the same entry fails to apply) is started again after a pause
 * that doubles up to MAX_RESTART_DELAY_MS; applying anything resets it.
 */
static void watch_apply(void)
{
	TimestampTz now;
	int delay;

	if (S.worker != NULL) {
		pid_t pid;
		DrApplyState st;

		if (GetBackgroundWorkerPid(S.worker, &pid) != BGWH_STOPPED)
			return;
		apply_gone();
		SpinLockAcquire(&dr_shared->mutex);
		st = dr_shared->apply_state;
		SpinLockRelease(&dr_shared->mutex);
		now = GetCurrentTimestamp();
		if (st == DR_APPLY_NO_EXTENSION) {
			if (!S.warned)
				warn_no_extension();
			S.warned = true;
			delay = RETRY_DELAY_MS;
		} else {
			S.warned = false;
			delay = Min(RESTART_DELAY_MS << Min(S.failures, 5), MAX_RESTART_DELAY_MS);
			S.failures++;
		}
		S.next_start = TimestampTzPlusMilliseconds(now, delay);
	}
	if (dr_engine->n_running == 0)
		return;
	if (GetCurrentTimestamp() >= S.next_start)
		start_apply();
}

int dr_leader_handoff_after = 3;

static void handoff_done(void *ctx, const struct engine_result *res)
{
	DrSm *sm = dr_engine_groups_find((uint64)(uintptr_t)ctx);

	if (res->rc == ENGINE_OK)
		return;
	ereport(LOG, (errmsg("dragonraft group %llu could not hand off its leadership: %s",
	                     (unsigned long long)res->group_id, engine_strerror(res->rc))));
	if (sm != NULL) {
		sm->handoff_entry = 0; /* tried again after an election timeout */
		sm->handoff_not_before = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
		                                                     dr_election_rtt * dr_rtt_ms);
	}
}

/* No voter could take the group after two more tries: say so once per entry. */
static void log_no_handoff(DrSm *sm, uint32 failures, raft_index applied)
{
	if (sm->handoff_none_logged == applied + 1)
		return;
	sm->handoff_none_logged = applied + 1;
	ereport(LOG,
	        (errmsg("this node's apply of dragonraft group %llu failed %u times after "
	                "entry %llu, and no other voter can take the group",
	                (unsigned long long)sm->group_id, failures, (unsigned long long)applied),
	         sm->last_leader != 0
	                 ? errdetail("A voter takes it when it holds that entry, answered "
	                             "within an election timeout and is not node %llu, the "
	                             "last other node that led.",
	                             (unsigned long long)sm->last_leader)
	                 : errdetail("A voter takes it when it holds that entry and answered "
	                             "within an election timeout."),
	         errhint("The group takes no writes until this node applies the entry; see "
	                 "dragonraft.status for the error.")));
}

/*
 * The leader commits a group's writes here in log order, after the entry
 * that fails to apply here: the group takes no writes until it applies.
 * After dr_leader_handoff_after failed tries, hand the leadership, once per
 * entry, to the voter with most of the log among those that hold the entry
 * and were heard from within an election timeout, but not to the last other
 * node that led (it may have handed the group here for the same entry).
 */
static void hand_off(DrSm *sm, uint32 failures, raft_index applied)
{
	static struct engine_group_status st;
	raft_index best = applied; /* the target holds the failing entry */
	raft_id target = 0;
	uint64 now;
	int rc;

	if (dr_leader_handoff_after == 0 || failures < (uint32)dr_leader_handoff_after ||
	    sm->role != RAFT_LEADER || sm->handoff_entry == applied + 1 ||
	    GetCurrentTimestamp() < sm->handoff_not_before)
		return;
	if (engine_group_status(dr_engine->e, sm->group_id, &st) != ENGINE_OK ||
	    st.role != RAFT_LEADER)
		return;
	now = engine_now(dr_engine->e);
	for (uint32 i = 0; i < st.n_peers; i++) {
		const struct engine_peer_status *p = &st.peers[i];

		if (p->voter && !p->needs_snapshot && p->match > best &&
		    p->node_id != sm->last_leader && p->contact_tick != 0 &&
		    p->contact_tick + (uint64)dr_election_rtt >= now) {
			best = p->match;
			target = p->node_id;
		}
	}
	if (target == 0) {
		/* none yet (progress unknown right after an election): look again */
		sm->handoff_not_before =
		        TimestampTzPlusMilliseconds(GetCurrentTimestamp(), dr_rtt_ms);
		if (failures >= (uint32)dr_leader_handoff_after + 2)
			log_no_handoff(sm, failures, applied);
		return;
	}
	sm->handoff_entry = applied + 1;
	ereport(LOG, (errmsg("this node's apply of dragonraft group %llu failed %u times after "
	                     "entry %llu: it hands the leadership to node %llu",
	                     (unsigned long long)sm->group_id, failures,
	                     (unsigned long long)applied, (unsigned long long)target),
	              errhint("See dragonraft.status for the error; "
	                      "dragonraft.leader_handoff_after sets after how many failed "
	                      "tries the leadership is handed over.")));
	rc = engine_transfer_leader(dr_engine->e, sm->group_id, target, handoff_done,
	                            (void *)(uintptr_t)sm->group_id);
	if (rc != ENGINE_OK) {
		struct engine_result res = {.rc = rc, .group_id = sm->group_id};

		handoff_done((void *)(uintptr_t)sm->group_id, &res);
	}
}

/*
 * A group's entries fail to apply (failures > 0): hold it, and send its
 * entries again once the apply worker's pause (retry_at) is over.
 */
static void watch_parked(DrSm *sm, uint32 failures, TimestampTz retry_at, raft_index applied)
{
	if (failures == 0) {
		sm->parked = false; /* resume_held lets it go on */
		sm->handoff_entry = 0;
		return;
	}
	sm->parked = true;
	hand_off(sm, failures, applied);
	if (retry_at == 0 || sm->in_resend || sm->recover_failed)
		return;
	if (retry_at > GetCurrentTimestamp()) {
		if (S.next_retry == 0 || retry_at < S.next_retry)
			S.next_retry = retry_at;
		return;
	}
	SpinLockAcquire(&sm->shared->mutex);
	sm->shared->apply_retry_at = 0;
	SpinLockRelease(&sm->shared->mutex);
	dlist_push_tail(&S.resend, &sm->resend_node);
	sm->in_resend = true;
}

/*
 * A failed export is not tried again at once (the leader asks at every
 * probe), and less often while it keeps failing: each try holds the group's
 * apply for a moment and may fill the disk.
 */
static void export_failed(DrSm *sm)
{
	int ms = EXPORT_RETRY_MS << Min(sm->export_failures, 6);

	sm->export_failures++;
	sm->export_retry_at =
	        TimestampTzPlusMilliseconds(GetCurrentTimestamp(), Min(ms, MAX_EXPORT_RETRY_MS));
}

/*
 * A received snapshot whose file cannot be loaded (corrupt, truncated or
 * gone) stopped its group: it restarts in place after a pause, as a server
 * restart would start it (review 26 F1: the leader then sends another
 * snapshot), and the other groups go on.  The pause doubles from 1 s up to
 * 2 min while its loads keep failing that way, so that a leader is not asked
 * for one snapshot after another.
 */
static void heal_later(DrSm *sm)
{
	int ms = Min(HEAL_RETRY_MS << Min(sm->heal_failures, 7), MAX_HEAL_RETRY_MS);

	sm->heal_failures++;
	sm->heal_at = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), ms);
	if (!sm->in_heals)
		dlist_push_tail(&S.heals, &sm->heal_node);
	sm->in_heals = true;
	ereport(LOG, (errmsg("dragonraft group %llu restarts on node %d in %d ms to get "
	                     "another snapshot",
	                     (unsigned long long)sm->group_id, dr_node_id, ms),
	              errdetail("Its received snapshot file cannot be loaded (%u times in a "
	                        "row); dragonraft.status shows why.",
	                        sm->heal_failures)));
}

/* A snapshot loaded after restarts in place: its error goes. */
static void healed(DrSm *sm)
{
	sm->heal_failures = 0;
	SpinLockAcquire(&sm->shared->mutex);
	if (sm->shared->apply_failures == 0)
		sm->shared->error[0] = '\0';
	SpinLockRelease(&sm->shared->mutex);
}

/* Restart the groups that are due (heal_later); note when the next one is. */
static void heal_due(void)
{
	dlist_mutable_iter it;
	TimestampTz now = GetCurrentTimestamp();

	dlist_foreach_modify(it, &S.heals)
	{
		DrSm *sm = dlist_container(DrSm, heal_node, it.cur);

		if (sm->heal_at > now) {
			if (S.next_retry == 0 || sm->heal_at < S.next_retry)
				S.next_retry = sm->heal_at;
			continue;
		}
		dlist_delete(&sm->heal_node);
		sm->in_heals = false;
		dr_engine_groups_heal(sm); /* sm is gone: a new one runs the group */
	}
}

/* Free what the apply worker applied; note the groups that moved, and parked ones. */
static void collect_applied(void)
{
	dlist_mutable_iter it;

	S.next_retry = 0;
	S.watched = false;
	dlist_foreach_modify(it, &S.with_entries)
	{
		DrSm *sm = dlist_container(DrSm, queued, it.cur);
		uint64 applied;
		uint32 failures;
		TimestampTz retry_at;
		bool corrupt;

		SpinLockAcquire(&sm->shared->mutex);
		applied = sm->shared->applied;
		failures = sm->shared->apply_failures;
		retry_at = sm->shared->apply_retry_at;
		corrupt = sm->shared->apply_corrupt;
		SpinLockRelease(&sm->shared->mutex);
		/*
		 * Loaded; or the file cannot be loaded (corrupt, truncated, gone: the
		 * apply worker logged why): the group stops, and restarts in place
		 * after a pause to get another (heal_later).  A load that failed
		 * otherwise (a table of its own here, a lock, disk space) is tried
		 * again after the apply worker's pause, as a failed entry is, so that
		 * fixing the cause is enough; status shows the error meanwhile.
		 */
		if (sm->recovering != 0 &&
		    (applied >= sm->recovering || (failures > 0 && corrupt))) {
			sm->recover_failed = applied < sm->recovering;
			sm->recovering = 0;
			engine_snapshot_recovered(dr_engine->e, sm->group_id,
			                          sm->recover_failed ? ENGINE_ERR_SNAPSHOT
			                                             : ENGINE_OK);
			if (sm->recover_failed)
				heal_later(sm);
			else if (sm->heal_failures > 0)
				healed(sm);
		}
		/* Restarted in place, then caught up by entries, no snapshot needed
		 * (review 29 F3: the load's error stayed for ever). */
		if (sm->heal_failures > 0 && sm->recovering == 0 && !sm->in_heals &&
		    applied > sm->heal_applied)
			healed(sm);
		if (failures > 0 || sm->parked)
			watch_parked(sm, failures, retry_at, applied);
		S.watched |= sm->recovering != 0 || sm->parked;
		while (!dlist_is_empty(&sm->entries)) {
			DrSmEntry *e = dlist_head_element(DrSmEntry, group_node, &sm->entries);

			if (e->msg.index > applied || e == S.blocked)
				break;
			free_entry(e);
			S.failures = 0; /* the apply worker gets on */
		}
		if (dlist_is_empty(&sm->entries))
			dlist_delete(&sm->queued);
		if (applied > sm->refreshed && !sm->in_progressed) {
			dlist_push_tail(&S.progressed, &sm->progressed);
			sm->in_progressed = true;
		}
	}
}

/* Held groups go on once there is room (parked ones once they apply). */
static void resume_held(void)
{
	dlist_mutable_iter it;

	if (S.bytes >= QUEUE_BOUND)
		return;
	dlist_foreach_modify(it, &S.held)
	{
		DrSm *sm = dlist_container(DrSm, held_node, it.cur);

		if (sm->parked || sm->export_hold || sm->digest_hold)
			continue;
		dlist_delete(&sm->held_node);
		sm->held = false;
		engine_sm_resume(dr_engine->e, sm->group_id);
	}
}

/* A no-op (no data) or a change set: the apply worker applies it in its open batch. */
static bool change_set(const DrApplyMsg *msg, const uint8 *data)
{
	struct entry_header h;

	return msg->len == 0 ||
	       (entry_decode_header(data, msg->len, &h) == ENTRY_OK && h.type == ENTRY_CHANGE_SET);
}

/* One message (of entry e, or NULL) to the apply worker without blocking; false if
 * it did not go (all of it). */
static bool send_msg(const DrApplyMsg *msg, const uint8 *data, bool flush, DrSmEntry *e)
{
	shm_mq_iovec iov[2];
	shm_mq_result res;

	iov[0].data = (const char *)msg;
	iov[0].len = sizeof(*msg);
	iov[1].data = (const char *)data;
	iov[1].len = msg->len;
	if (!S.counted) {
		pg_atomic_fetch_add_u64(&S.queue->messages, 1); /* (a full barrier) */
		S.counted = true;
	}
	/* Would block: the apply worker sets our latch as it reads.  Detached: it
	 * exits, and watch_apply notices. */
	res = shm_mq_sendv(S.mqh, iov, 2, true, flush);
	/*
	 * The apply worker holding a batch open for more entries of a group is
	 * not woken by the shm_mq's latch (apply_worker.c: delay_latch): only
	 * by a message of another group or of another kind (a snapshot, a
	 * resend, a membership change) or an entry other than a change set (a
	 * command or a registration commits its batch there, and its proposer
	 * may wait for it on this node, as execute() does), once flushed, or by
	 * a queue that is full.  Read after the message was counted (a full barrier): if it
	 * was not delaying yet, it saw the count and waits for the flush on its
	 * own latch.
	 */
	if (res != SHM_MQ_DETACHED) {
		uint64 delaying = pg_atomic_read_u64(&dr_shared->apply_delaying);

		if (delaying != 0 && (res == SHM_MQ_WOULD_BLOCK || msg->group_id != delaying ||
		                      msg->type != RAFT_ENTRY_NORMAL || !change_set(msg, data)))
			S.wake_delay = true;
		if (S.wake_delay && (res == SHM_MQ_WOULD_BLOCK || flush)) {
			SetLatch(&dr_shared->apply_delay_latch);
			S.wake_delay = false;
		}
	}
	S.blocked = res == SHM_MQ_WOULD_BLOCK ? e : NULL;
	S.counted = res == SHM_MQ_WOULD_BLOCK;
	return res == SHM_MQ_SUCCESS;
}

/* The entries of parked groups that are due, each after a DR_APPLY_RESEND message. */
static bool send_again(void)
{
	while (!dlist_is_empty(&S.resend)) {
		DrSm *sm = dlist_head_element(DrSm, resend_node, &S.resend);

		if (!S.resend_started) {
			DrApplyMsg m = {.group_id = sm->group_id,
			                .made = sm->shared->made,
			                .type = DR_APPLY_RESEND};

			if (!send_msg(&m, NULL, dlist_is_empty(&sm->entries), NULL))
				return false;
			S.resend_started = true;
			S.resend_next =
			        dlist_is_empty(&sm->entries)
			                ? NULL
			                : dlist_head_element(DrSmEntry, group_node, &sm->entries);
		}
		while (S.resend_next != NULL) {
			DrSmEntry *e = S.resend_next;
			bool last = !dlist_has_next(&sm->entries, &e->group_node);

			if (!send_msg(&e->msg, e->data, last, e))
				return false;
			S.resend_next = last ? NULL
			                     : dlist_container(DrSmEntry, group_node,
			                                       dlist_next_node(&sm->entries,
			                                                       &e->group_node));
		}
		resend_remove(sm);
	}
	return true;
}

/*
 * Is e a change set (or registration) of a live backend of this node, which
 * commits it itself at its turn (xact.c)?  The apply worker could only wait
 * for that backend (and be woken by its commit: a context switch per
 * transaction on a leader), so e is held here, with the entries of its
 * group after it, until the backend applied it (collect_applied frees it)
 * or gave up (then e goes to the apply worker).  Other groups' entries go
 * on meanwhile.
 */
static bool backend_applies(const DrSmEntry *e)
{
	struct entry_header h;

	return e->msg.type == RAFT_ENTRY_NORMAL && e->msg.len > 0 &&
	       entry_decode_header(e->data, e->msg.len, &h) == ENTRY_OK && dr_apply_rows_owned(&h);
}

static DrSmEntry *next_in_order(DrSmEntry *e)
{
	return dlist_has_next(&S.order, &e->order_node)
	               ? dlist_container(DrSmEntry, order_node,
	                                 dlist_next_node(&S.order, &e->order_node))
	               : NULL;
}

/* Send e (flush: the last one of a pass); false if it did not go. */
static bool send_one(DrSmEntry *e, bool flush)
{
	e->sent = send_msg(&e->msg, e->data, flush, e);
	S.blocked_normal = S.blocked == e;
	return e->sent;
}

/*
 * The entries in hand-over order that the apply worker has not had yet,
 * but those held for their backends; each sent after the next one to send
 * is found, so that the last one flushes the queue.
 */
static bool send_new(void)
{
	DrSmEntry *pending = NULL;

	S.pass++;
	for (DrSmEntry *e = S.next_send; e != NULL; e = next_in_order(e)) {
		if (e->sent || e->sm->hold_pass == S.pass)
			continue; /* sent, or its group waits for an entry held before it */
		if (backend_applies(e)) {
			e->sm->hold_pass = S.pass;
			S.holding = true;
			continue;
		}
		if (pending != NULL && !send_one(pending, false))
			return false;
		pending = e;
	}
	if (pending != NULL && !send_one(pending, true))
		return false;
	while (S.next_send != NULL && S.next_send->sent)
		S.next_send = next_in_order(S.next_send);
	return true;
}

/* Send what the apply worker has not had yet, without blocking. */
static void send_entries(void)
{
	S.holding = false;
	if (S.mqh == NULL)
		return;
	/* A message partly in the queue goes on first, whatever it is. */
	if (S.blocked_normal && S.blocked != NULL && !send_one(S.blocked, true))
		return;
	if (send_again())
		(void)send_new();
}

static bool start_exporter(DrSm *sm)
{
	BackgroundWorker w;
	MemoryContext old;
	bool ok;

	dr_snapshot_worker(&w, "dr_snapshot_export_main", "exporter", sm->group_id);
	w.bgw_main_arg = Int32GetDatum(sm->snap_job);
	memcpy(w.bgw_extra, &sm->group_id, sizeof(sm->group_id)); /* the job is this group's */
	old = MemoryContextSwitchTo(TopMemoryContext);
	ok = RegisterDynamicBackgroundWorker(&w, &sm->exporter);
	MemoryContextSwitchTo(old);
	if (!ok) {
		sm->exporter = NULL;
		ereport(WARNING, (errmsg("dragonraft cannot export a snapshot of group %llu: no "
		                         "background worker slot is free",
		                         (unsigned long long)sm->group_id),
		                  errhint("Raise max_worker_processes; the leader tries again.")));
	}
	return ok;
}

/*
 * Exports: start the exporter; once it is ready, hold the group's apply
 * (from the next round on nothing more is handed over, so sm->handed is
 * final now) and tell it when everything handed over is applied (its
 * snapshot then holds exactly that); let the apply go on once it took its
 * snapshot; tell the engine when the file is written.  The group's writes
 * wait only from "ready" to "taken".
 */
static void watch_exports(void)
{
	dlist_mutable_iter it;

	dlist_foreach_modify(it, &S.exports)
	{
		DrSm *sm = dlist_container(DrSm, snap_node, it.cur);
		DrSnapJob *j = dr_snapshot_job(sm->snap_job);
		uint64 applied;
		bool drained, taken, stopped;
		int rc, waiter;
		DrSnapPhase phase;
		raft_index index;
		char error[DR_ERROR_LEN];
		pid_t pid;

		if (sm->exporter == NULL && !start_exporter(sm)) {
			export_end(sm, true);
			export_failed(sm);
			engine_snapshot_saved(dr_engine->e, sm->group_id, ENGINE_ERR_SNAPSHOT, 0);
			continue;
		}
		SpinLockAcquire(&sm->shared->mutex);
		applied = sm->shared->applied;
		SpinLockRelease(&sm->shared->mutex);
		stopped = GetBackgroundWorkerPid(sm->exporter, &pid) == BGWH_STOPPED;
		SpinLockAcquire(&j->mutex);
		if (j->phase == DR_SNAP_DRAINING && !j->taken)
			sm->export_hold = true;
		if (sm->export_hold && !j->drained && applied >= sm->handed) {
			j->drained = true;
			j->handed = sm->handed;
		}
		drained = j->drained;
		taken = j->taken;
		phase = j->phase;
		rc = j->rc;
		index = j->index;
		waiter = j->waiter_pgprocno;
		strlcpy(error, j->error, sizeof(error));
		SpinLockRelease(&j->mutex);
		if (drained && !taken && waiter >= 0)
			SetLatch(&ProcGlobal->allProcs[waiter].procLatch);
		if (taken && sm->export_hold) {
			sm->export_hold = false;
			engine_sm_resume(dr_engine->e, sm->group_id);
		}
		if (phase != DR_SNAP_DONE && !stopped)
			continue;
		if (phase != DR_SNAP_DONE || rc != 0)
			ereport(LOG, (errmsg("dragonraft could not export a snapshot of group %llu",
			                     (unsigned long long)sm->group_id),
			              errdetail("%s", error[0] ? dr_sentence(error)
			                                       : "The exporter exited.")));
		export_end(sm, true);
		if (phase == DR_SNAP_DONE && rc == 0) {
			sm->export_retry_at = 0;
			sm->export_failures = 0;
		} else
			export_failed(sm);
		engine_snapshot_saved(dr_engine->e, sm->group_id,
		                      sm->export_retry_at == 0 ? ENGINE_OK : ENGINE_ERR_SNAPSHOT,
		                      index);
	}
}

/*
 * A job of role DR_SNAP_DIGEST that waits for its group's apply to be held:
 * claim it (one per group at a time; another waits for its turn), or fail it
 * if the group does not run here.
 */
static void claim_digest(int i)
{
	DrSnapJob *j = dr_snapshot_job(i);
	uint64 group_id;
	uint32 generation;
	int waiter;
	DrSm *sm;
	bool want;

	SpinLockAcquire(&j->mutex);
	group_id = j->group_id;
	generation = j->generation;
	waiter = j->waiter_pgprocno;
	want = group_id != 0 && j->role == DR_SNAP_DIGEST && j->phase == DR_SNAP_DRAINING &&
	       !j->claimed;
	SpinLockRelease(&j->mutex);
	if (!want)
		return;
	sm = dr_engine_groups_find(group_id);
	if (sm != NULL && sm->digest_hold)
		return; /* after the one in progress */
	SpinLockAcquire(&j->mutex);
	want = j->group_id == group_id && j->generation == generation; /* still that job */
	if (want && sm == NULL) {
		strlcpy(j->error, "The group does not run on this node.", sizeof(j->error));
		j->rc = ENGINE_ERR_NO_GROUP;
		j->phase = DR_SNAP_DONE;
	} else if (want)
		j->claimed = true;
	SpinLockRelease(&j->mutex);
	if (!want)
		return;
	if (sm == NULL) {
		if (waiter >= 0)
			SetLatch(&ProcGlobal->allProcs[waiter].procLatch);
		return;
	}
	sm->digest_hold = true;
	sm->digest_job = i;
	sm->digest_generation = generation;
	sm->digest_until = TimestampTzPlusMilliseconds(
	        GetCurrentTimestamp(),
	        dr_testing_digest_hold > 0 ? dr_testing_digest_hold : DR_DIGEST_HOLD_MAX_MS);
	dlist_push_tail(&S.digests, &sm->digest_node);
}

/*
 * Table digests (sql_tabledigest.c), with the exporter's protocol
 * (watch_exports) but from a backend: the group's apply is held from the
 * claim; "drained" once everything handed over is applied and published;
 * the hold ends once the backend took its snapshot, freed its job or
 * exited, whatever happened to it, or at digest_until (a backend that does
 * not run, SIGSTOP say, fails then: phase DONE).
 */
static void watch_digests(void)
{
	dlist_mutable_iter it;

	for (int i = 0; i < DR_SNAP_JOBS; i++)
		claim_digest(i);
	dlist_foreach_modify(it, &S.digests)
	{
		DrSm *sm = dlist_container(DrSm, digest_node, it.cur);
		DrSnapJob *j = dr_snapshot_job(sm->digest_job);
		uint64 applied;
		bool gone, wake = false;
		int waiter, pid;

		SpinLockAcquire(&sm->shared->mutex);
		applied = sm->shared->applied;
		SpinLockRelease(&sm->shared->mutex);
		SpinLockAcquire(&j->mutex);
		gone = j->group_id != sm->group_id || j->generation != sm->digest_generation ||
		       j->taken || j->phase == DR_SNAP_DONE;
		if (!gone && !j->drained && applied >= sm->handed) {
			j->drained = true;
			j->handed = sm->handed;
			wake = true;
		}
		waiter = j->waiter_pgprocno;
		pid = j->pid;
		SpinLockRelease(&j->mutex);
		/* (A backend frees its job as it exits; this is for one that could not.) */
		if (!gone && (waiter < 0 || ProcGlobal->allProcs[waiter].pid != pid))
			gone = true;
		if (gone)
			digest_end(sm, NULL);
		else if (GetCurrentTimestamp() >= sm->digest_until)
			/* (its backend does not run: the group's apply is not held longer) */
			digest_end(sm, "The group's apply was held for the digest for longer than "
			               "its backend may wait.");
		else if (wake)
			SetLatch(&ProcGlobal->allProcs[waiter].procLatch);
	}
}

/*
 * Whether the apply worker's progress wakes this worker: only while
 * something here waits on it (a held, parked or recovering group, an export
 * waiting for the drain, a queue past half its bound).  Otherwise the
 * applied index is read at the next wake-up (a round, a request, the
 * housekeeping timeout), and what it frees can wait until then: a wake-up
 * per apply batch would cost every node a context switch per transaction
 * under load.  Both sides use dr_shared->mutex, so progress published
 * before the flag is set is seen by the pass that the latch set here runs.
 */
static void want_apply_wakes(bool want)
{
	bool was;

	SpinLockAcquire(&dr_shared->mutex);
	was = dr_shared->apply_wakes_engine;
	dr_shared->apply_wakes_engine = want;
	SpinLockRelease(&dr_shared->mutex);
	if (want && !was)
		SetLatch(MyLatch);
}

void dr_pg_sm_poll(void)
{
	watch_exports();
	watch_digests();
	watch_apply();
	collect_applied();
	heal_due();
	resume_held();
	send_entries();
	want_apply_wakes(S.watched || !dlist_is_empty(&S.held) || !dlist_is_empty(&S.exports) ||
	                 !dlist_is_empty(&S.digests) || S.bytes >= QUEUE_BOUND / 2);
}

long dr_pg_sm_timeout(void)
{
	long secs, ms;
	int usecs;

	if (S.next_retry == 0)
		return S.holding ? HOLD_POLL_MS : -1;
	TimestampDifference(GetCurrentTimestamp(), S.next_retry, &secs, &usecs);
	ms = secs * 1000 + (usecs + 999) / 1000;
	return S.holding && ms > HOLD_POLL_MS ? HOLD_POLL_MS : ms;
}

void dr_pg_sm_refresh_durable(void)
{
	dlist_mutable_iter it;

	dlist_foreach_modify(it, &S.progressed)
	{
		DrSm *sm = dlist_container(DrSm, progressed, it.cur);
		RepOriginId origin;
		uint64 applied;

		SpinLockAcquire(&sm->shared->mutex);
		origin = sm->shared->origin;
		applied = sm->shared->applied;
		SpinLockRelease(&sm->shared->mutex);
		dlist_delete(&sm->progressed);
		sm->in_progressed = false;
		if (origin == InvalidRepOriginId)
			continue;
		/* Flushes WAL up to the commit that recorded it. */
		sm->durable = replorigin_get_progress(origin, true);
		sm->refreshed = applied;
	}
}

void dr_pg_sm_shutdown(void)
{
	while (!dlist_is_empty(&S.exports))
		export_end(dlist_head_element(DrSm, snap_node, &S.exports), false);
	if (S.worker != NULL)
		TerminateBackgroundWorker(S.worker);
	apply_gone();
	while (!dlist_is_empty(&S.order))
		free_entry(dlist_head_element(DrSmEntry, order_node, &S.order));
}
