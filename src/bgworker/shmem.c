/*
 * shmem.c - dragonraft's shared memory (DESIGN §3): sizing, creation, and
 * the group entries with their member and node pools.  The lock protocol is
 * in the NOTES of shmem.h.
 */
#include "shmem.h"

#include "membership.h"
#include "miscadmin.h"
#include "queue.h"
#include "snapshot.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

DrShared *dr_shared = NULL;
DrRequest *dr_requests = NULL;
int *dr_ring = NULL;
DrCommit *dr_commits = NULL;
DrMember *dr_members = NULL;
DrNode *dr_nodes = NULL;
int dr_n_members = 0;
int dr_n_nodes = 0;

static HTAB *groups = NULL;

/* Members per group on average that the pool holds (3 or 5 in most groups). */
#define MEMBERS_PER_GROUP 5
/* Distinct nodes the node pool holds: a cluster has far fewer nodes than groups. */
#define NODES(max_groups) (128 + (max_groups) / 4)

static Size shmem_size(void)
{
	Size size = MAXALIGN(sizeof(DrShared));

	size = add_size(size, MAXALIGN(mul_size(MaxBackends, sizeof(DrRequest))));
	size = add_size(size, MAXALIGN(mul_size(MaxBackends, sizeof(int))));
	size = add_size(size, MAXALIGN(mul_size(MaxBackends, sizeof(DrCommit))));
	size = add_size(
	        size, MAXALIGN(mul_size(dr_max_groups * MEMBERS_PER_GROUP + 32, sizeof(DrMember))));
	size = add_size(size, MAXALIGN(mul_size(NODES(dr_max_groups), sizeof(DrNode))));
	size = add_size(size, hash_estimate_size(dr_max_groups, sizeof(DrGroup)));
	return size;
}

void dr_shmem_request(void)
{
	RequestAddinShmemSpace(shmem_size());
	RequestAddinShmemSpace(dr_snapshot_shmem_size());
	RequestAddinShmemSpace(dr_reads_shmem_size());
	RequestNamedLWLockTranche("dragonraft", 1);
}

/*
 * Every group entry's applied_cv, once (shmem.h): each element of the hash is
 * entered here, made, and freed.  A shared, fixed-size table that is not
 * partitioned has exactly its initial size of elements, all on one free list,
 * made by hash_create (dynahash.c), and never more: dr_max_groups entries
 * reach every one, and one more finds none.  Checked, not assumed: an element
 * never reached would hold a zeroed ConditionVariable, whose wait list holds
 * process 0 (an empty one holds INVALID_PGPROCNO), and the first backend to
 * sleep on it would corrupt that process's wait links.
 */
static void make_group_cvs(void)
{
	HASH_SEQ_STATUS scan;
	uint64 id, made = 0;

	/* (A scan open on the table, never read, keeps the entry past the last
	 * from splitting a bucket: that took shared memory past the table's
	 * estimate when dr_max_groups is a power of two.) */
	hash_seq_init(&scan, groups);
	for (id = 1; id <= (uint64)dr_max_groups + 1; id++) {
		DrGroup *g = hash_search(groups, &id, HASH_ENTER_NULL, NULL);

		if (g == NULL)
			break;
		ConditionVariableInit(&g->applied_cv);
		made++;
	}
	hash_seq_term(&scan);
	for (id = 1; id <= made; id++)
		(void)hash_search(groups, &id, HASH_REMOVE, NULL);
	if (made != (uint64)dr_max_groups)
		ereport(FATAL, (errcode(ERRCODE_INTERNAL_ERROR),
		                errmsg("dragonraft's groups hash table holds %llu entries, not %d",
		                       (unsigned long long)made, dr_max_groups),
		                errdetail("Each entry's condition variable is made at start, for "
		                          "dragonraft.max_groups entries.")));
}

void dr_shmem_startup(void)
{
	HASHCTL info;
	bool found;
	char *p;

	dr_n_members = dr_max_groups * MEMBERS_PER_GROUP + 32;
	dr_n_nodes = NODES(dr_max_groups);

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	p = ShmemInitStruct("dragonraft",
	                    shmem_size() - hash_estimate_size(dr_max_groups, sizeof(DrGroup)),
	                    &found);
	dr_shared = (DrShared *)p;
	p += MAXALIGN(sizeof(DrShared));
	dr_requests = (DrRequest *)p;
	p += MAXALIGN(mul_size(MaxBackends, sizeof(DrRequest)));
	dr_ring = (int *)p;
	p += MAXALIGN(mul_size(MaxBackends, sizeof(int)));
	dr_commits = (DrCommit *)p;
	p += MAXALIGN(mul_size(MaxBackends, sizeof(DrCommit)));
	dr_members = (DrMember *)p;
	p += MAXALIGN(mul_size(dr_n_members, sizeof(DrMember)));
	dr_nodes = (DrNode *)p;

	memset(&info, 0, sizeof(info));
	info.keysize = sizeof(uint64);
	info.entrysize = sizeof(DrGroup);
	groups = ShmemInitHash("dragonraft groups", dr_max_groups, dr_max_groups, &info,
	                       HASH_ELEM | HASH_BLOBS | HASH_FIXED_SIZE);

	if (!found) {
		memset(dr_shared, 0, sizeof(DrShared));
		SpinLockInit(&dr_shared->mutex);
		SpinLockInit(&dr_shared->queue_mutex);
		dr_shared->engine_state = DR_ENGINE_OFF;
		dr_shared->engine_pgprocno = -1;
		pg_atomic_init_u64(&dr_shared->engine_loops, 0);
		pg_atomic_init_u64(&dr_shared->groups_made, 0);
		dr_shared->apply_pgprocno = -1;
		dr_shared->apply_wakes_engine = true;
		dr_shared->apply_wants_commits = true;
		pg_atomic_init_u64(&dr_shared->apply_delaying, 0);
		InitSharedLatch(&dr_shared->apply_delay_latch);
		/* Entries proposed before this start belong to no live backend. */
		if (!pg_strong_random(&dr_shared->incarnation, sizeof(dr_shared->incarnation)))
			dr_shared->incarnation = (uint64)GetCurrentTimestamp() ^ (uint64)MyProcPid
			                                                                 << 32;
		dr_shared->groups_lock = &(GetNamedLWLockTranche("dragonraft"))->lock;
		for (int i = 0; i < MaxBackends; i++) {
			DrRequest *r = &dr_requests[i];

			memset(r, 0, sizeof(*r));
			SpinLockInit(&r->mutex);
			r->state = DR_SLOT_FREE;
			r->dsm = DSM_HANDLE_INVALID;
			ConditionVariableInit(&r->cv);
		}
		for (int i = 0; i < MaxBackends; i++) {
			memset(&dr_commits[i], 0, sizeof(DrCommit));
			SpinLockInit(&dr_commits[i].mutex);
		}
		for (int i = 0; i < dr_n_members; i++) {
			memset(&dr_members[i], 0, sizeof(DrMember));
			dr_members[i].next = i + 1 < dr_n_members ? i + 1 : -1;
		}
		dr_shared->member_free = 0;
		memset(dr_nodes, 0, mul_size(dr_n_nodes, sizeof(DrNode)));
		make_group_cvs();
	}
	dr_snapshot_shmem_init();
	dr_reads_shmem_init();
	LWLockRelease(AddinShmemInitLock);
}

/* Set the apply worker's latch, if it runs (and, if commits_only, wants commits);
 * whether it did. */
static bool set_apply_latch(bool commits_only)
{
	int pgprocno;

	SpinLockAcquire(&dr_shared->mutex);
	pgprocno = !commits_only || dr_shared->apply_wants_commits ? dr_shared->apply_pgprocno : -1;
	SpinLockRelease(&dr_shared->mutex);
	if (pgprocno >= 0)
		SetLatch(&ProcGlobal->allProcs[pgprocno].procLatch);
	return pgprocno >= 0;
}

void dr_shmem_wake_apply(void)
{
	/* (and the wait of a batch it holds, on a latch of its own: review 73) */
	if (set_apply_latch(true))
		SetLatch(&dr_shared->apply_delay_latch);
}

void dr_shmem_want_applied(uint64 group_id, uint64 index)
{
	DrGroup *g;
	bool wake = false;

	LWLockAcquire(dr_shared->groups_lock, LW_SHARED);
	g = dr_shmem_group_find(group_id);
	if (g != NULL) {
		uint64 cur = pg_atomic_read_u64(&g->wanted);
		bool raised = false;

		/* (0: it wakes a held batch or a linger even if the index was wanted
		 * already: a new leader's term's no-op, handed later, is a change set
		 * of the group that ends no hold; wanted up to what was handed by a
		 * read before, its writes waited out the linger: review 70) */
		wake = index == 0;
		if (index == 0) {
			SpinLockAcquire(&g->mutex);
			index = g->handed;
			SpinLockRelease(&g->mutex);
		}
		/* Raised here: the apply worker may be waiting.  (The exchange is a
		 * full barrier: it either sees the index after it said it waits, or
		 * this sees that it waits.) */
		while (cur < index && !raised)
			raised = pg_atomic_compare_exchange_u64(&g->wanted, &cur, index);
		pg_memory_barrier(); /* (as the exchange, if it did not take place) */
		wake = (wake || raised) && pg_atomic_read_u64(&dr_shared->apply_delaying) != 0;
	}
	LWLockRelease(dr_shared->groups_lock);
	if (wake) {
		SetLatch(&dr_shared->apply_delay_latch); /* (its delay's wait) */
		set_apply_latch(false);
	}
}

void dr_shmem_wake_engine(void)
{
	int pgprocno;

	SpinLockAcquire(&dr_shared->mutex);
	pgprocno = dr_shared->engine_pgprocno;
	SpinLockRelease(&dr_shared->mutex);
	if (pgprocno >= 0)
		SetLatch(&ProcGlobal->allProcs[pgprocno].procLatch);
}

void dr_shmem_check_loaded(void)
{
	if (dr_shared == NULL)
		ereport(ERROR,
		        (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		         errmsg("dragonraft is not loaded through shared_preload_libraries"),
		         errhint("Add dragonraft to shared_preload_libraries in postgresql.conf "
		                 "and restart the server.")));
}

DrGroup *dr_shmem_group_find(uint64 group_id)
{
	Assert(LWLockHeldByMe(dr_shared->groups_lock));
	return hash_search(groups, &group_id, HASH_FIND, NULL);
}

uint64 dr_shmem_group_applied(uint64 group_id)
{
	DrGroup *g;
	uint64 applied = 0;

	LWLockAcquire(dr_shared->groups_lock, LW_SHARED);
	g = dr_shmem_group_find(group_id);
	if (g != NULL) {
		SpinLockAcquire(&g->mutex);
		applied = g->applied;
		SpinLockRelease(&g->mutex);
	}
	LWLockRelease(dr_shared->groups_lock);
	return applied;
}

/* The group's log here (DrGroup.life), 0 when it is not here: a wait that
 * looks the group up by id again ends when it changes (rev58, rev60). */
uint64 dr_shmem_group_life(uint64 group_id)
{
	DrGroup *g;
	uint64 life;

	LWLockAcquire(dr_shared->groups_lock, LW_SHARED);
	g = dr_shmem_group_find(group_id);
	life = g != NULL ? g->life : 0;
	LWLockRelease(dr_shared->groups_lock);
	return life;
}

/*
 * The engine worker runs: not from one's exit to the next one's main loop,
 * which takes every group's entry down and adds the LogDB's groups again
 * (engine_groups.c dr_engine_groups_restart; they keep their DrGroup.life).
 * A wait that finds its group gone, or another, while the engine worker does
 * not run looks again once it does (rev60): before, one that looked in
 * between ended as if the group had been left.
 */
bool dr_shmem_engine_running(void)
{
	bool running;

	SpinLockAcquire(&dr_shared->mutex);
	running = dr_shared->engine_state == DR_ENGINE_RUNNING;
	SpinLockRelease(&dr_shared->mutex);
	return running;
}

/* One sleep of such a wait (100 ms, or until the latch is set). */
void dr_shmem_engine_wait(void)
{
	ConditionVariableCancelSleep();
	(void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, 100,
	                PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
}

DrGroup *dr_shmem_group_add(uint64 group_id)
{
	DrGroup *g;
	bool found;

	Assert(LWLockHeldByMeInMode(dr_shared->groups_lock, LW_EXCLUSIVE));
	g = hash_search(groups, &group_id, HASH_FIND, NULL);
	if (g != NULL)
		return g;
	if (dr_shared->n_groups >= dr_max_groups)
		return NULL;
	g = hash_search(groups, &group_id, HASH_ENTER_NULL, &found);
	if (g == NULL)
		return NULL;
	dr_shared->n_groups++;
	/* (applied_cv stays: see shmem.h) */
	memset((char *)g + offsetof(DrGroup, made), 0, sizeof(DrGroup) - offsetof(DrGroup, made));
	g->made = pg_atomic_add_fetch_u64(&dr_shared->groups_made, 1);
	g->life = g->made; /* (a new log, unless the engine worker says otherwise) */
	g->first_member = -1;
	SpinLockInit(&g->mutex);
	g->member_state = DR_MEMBER_ACTIVE;
	g->origin = InvalidRepOriginId;
	g->stats_reset = GetCurrentTimestamp();
	pg_atomic_init_u64(&g->wanted, 0);
	return g;
}

void dr_shmem_group_remove(uint64 group_id)
{
	DrGroup *g;

	Assert(LWLockHeldByMeInMode(dr_shared->groups_lock, LW_EXCLUSIVE));
	g = hash_search(groups, &group_id, HASH_FIND, NULL);
	if (g == NULL)
		return;
	dr_shmem_group_set_members(g, NULL, NULL, 0);
	hash_search(groups, &group_id, HASH_REMOVE, NULL);
	dr_shared->n_groups--;
}

bool dr_shmem_group_set_members(DrGroup *g, const uint64 *ids, const bool *voter, int n)
{
	int *link = &g->first_member;

	Assert(LWLockHeldByMeInMode(dr_shared->groups_lock, LW_EXCLUSIVE));
	/* Give the old chain back. */
	while (*link >= 0) {
		int m = *link;

		*link = dr_members[m].next;
		dr_members[m].next = dr_shared->member_free;
		dr_members[m].node_id = 0;
		dr_shared->member_free = m;
	}
	for (int i = 0; i < n; i++) {
		int m = dr_shared->member_free;
		DrMember *dm;

		if (m < 0)
			return false;
		dm = &dr_members[m];
		dr_shared->member_free = dm->next;
		SpinLockAcquire(&g->mutex);
		dm->node_id = ids[i];
		dm->voter = voter[i];
		dm->has_progress = false;
		dm->match = 0;
		dm->last_contact = 0;
		dm->next = -1;
		SpinLockRelease(&g->mutex);
		*link = m;
		link = &dm->next;
	}
	return true;
}

bool dr_shmem_node_set(uint64 node_id, const char *address)
{
	DrNode *free_node = NULL;

	Assert(LWLockHeldByMeInMode(dr_shared->groups_lock, LW_EXCLUSIVE));
	for (int i = 0; i < dr_n_nodes; i++) {
		if (dr_nodes[i].node_id == node_id) {
			strlcpy(dr_nodes[i].address, address, sizeof(dr_nodes[i].address));
			return true;
		}
		if (dr_nodes[i].node_id == 0 && free_node == NULL)
			free_node = &dr_nodes[i];
	}
	if (free_node == NULL)
		return false;
	strlcpy(free_node->address, address, sizeof(free_node->address));
	free_node->node_id = node_id;
	return true;
}

const char *dr_shmem_node_address(uint64 node_id)
{
	Assert(LWLockHeldByMe(dr_shared->groups_lock));
	for (int i = 0; i < dr_n_nodes; i++)
		if (dr_nodes[i].node_id == node_id)
			return dr_nodes[i].address;
	return NULL;
}

void dr_shmem_group_track_lag(DrGroup *g, TimestampTz now)
{
	if (g->behind_since != 0 && g->applied < g->behind_commit)
		return; /* still behind what was committed then */
	g->behind_since = g->commit > g->applied ? now : 0;
	g->behind_commit = g->commit;
}

bool dr_shmem_group_lagging(const DrGroup *g, TimestampTz now, int lag_ms)
{
	return g->behind_since != 0 && g->applied < g->behind_commit &&
	       TimestampDifferenceExceeds(g->behind_since, now, lag_ms);
}

void dr_shmem_group_scan_init(HASH_SEQ_STATUS *status)
{
	Assert(LWLockHeldByMe(dr_shared->groups_lock));
	hash_seq_init(status, groups);
}
