/*
 * snapshot_progress.c - the full snapshots being made or loaded on this node,
 * in shared memory (snapshot.h), and dragonraft.stat_progress_snapshot,
 * after pg_stat_progress_copy: a row per snapshot, from shared memory only.
 */
#include "snapshot.h"

#include <sys/resource.h>

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "postmaster/interrupt.h"
#include "utils/guc.h"
#include "storage/latch.h"
#include "storage/shmem.h"
#include "utils/wait_event.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

PG_FUNCTION_INFO_V1(dr_stat_progress_snapshot);

static DrSnapJob *jobs;

int dr_testing_snapshot_delay = 0;
int dr_testing_hold_delay = 0;

long dr_snapshot_cpu_ms(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return 0;
	return (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000L +
	       (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000L;
}

/*
 * Pause *delay_ms ms, as a test asked, waking every step_ms as wait_event.
 * Re-read on reload: setting it lower (0) ends the pause, so that a test that
 * set it with ALTER SYSTEM ends it once it saw what it waits for (TAP 111)
 * rather than wait out a time.
 */
static void testing_pause(const int *delay_ms, uint32 wait_event, long step_ms)
{
	TimestampTz start = GetCurrentTimestamp();

	while (*delay_ms > 0 &&
	       !TimestampDifferenceExceeds(start, GetCurrentTimestamp(), *delay_ms)) {
		(void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, step_ms,
		                wait_event);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending) {
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
	}
}

void dr_snapshot_testing_pause(void)
{
	testing_pause(&dr_testing_snapshot_delay, PG_WAIT_EXTENSION, 100);
}

void dr_snapshot_testing_hold_pause(void)
{
	/* (PgSleep: a test sees that it is here, past the drain) */
	testing_pause(&dr_testing_hold_delay, WAIT_EVENT_PG_SLEEP, 10);
}

Size dr_snapshot_shmem_size(void)
{
	return MAXALIGN(sizeof(DrSnapJob) * DR_SNAP_JOBS);
}

void dr_snapshot_shmem_init(void)
{
	bool found;

	jobs = ShmemInitStruct("dragonraft snapshots", dr_snapshot_shmem_size(), &found);
	if (!found) {
		memset(jobs, 0, dr_snapshot_shmem_size());
		for (int i = 0; i < DR_SNAP_JOBS; i++)
			SpinLockInit(&jobs[i].mutex);
	}
}

DrSnapJob *dr_snapshot_job(int job)
{
	return &jobs[job];
}

void dr_snapshot_worker(BackgroundWorker *w, const char *function, const char *what,
                        uint64 group_id)
{
	memset(w, 0, sizeof(*w));
	w->bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	w->bgw_start_time = BgWorkerStart_RecoveryFinished;
	w->bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(w->bgw_library_name, BGW_MAXLEN, "dragonraft");
	snprintf(w->bgw_function_name, BGW_MAXLEN, "%s", function);
	snprintf(w->bgw_name, BGW_MAXLEN, "dragonraft snapshot %s for group %llu", what,
	         (unsigned long long)group_id);
	snprintf(w->bgw_type, BGW_MAXLEN, "dragonraft snapshot %s", what);
	w->bgw_notify_pid = MyProcPid;
}

int dr_snapshot_job_alloc(uint64 group_id, DrSnapRole role)
{
	for (int i = 0; i < DR_SNAP_JOBS; i++) {
		DrSnapJob *j = &jobs[i];

		SpinLockAcquire(&j->mutex);
		if (j->group_id == 0) {
			slock_t m = j->mutex;
			uint32 generation = j->generation + 1;

			memset(j, 0, sizeof(*j));
			j->mutex = m;
			j->generation = generation;
			j->group_id = group_id;
			j->role = role;
			j->phase = role == DR_SNAP_RECEIVER ? DR_SNAP_VERIFYING : DR_SNAP_STARTING;
			j->waiter_pgprocno = -1;
			j->started = GetCurrentTimestamp();
			SpinLockRelease(&j->mutex);
			return i;
		}
		SpinLockRelease(&j->mutex);
	}
	return -1;
}

void dr_snapshot_job_free(int job)
{
	SpinLockAcquire(&jobs[job].mutex);
	jobs[job].group_id = 0;
	SpinLockRelease(&jobs[job].mutex);
}

int dr_snapshot_loader_pids(int *pids)
{
	int n = 0;

	for (int i = 0; i < DR_SNAP_JOBS; i++) {
		DrSnapJob *j = &jobs[i];

		SpinLockAcquire(&j->mutex);
		if (j->group_id != 0 && j->role == DR_SNAP_RECEIVER && j->pid != 0 &&
		    j->phase != DR_SNAP_DONE)
			pids[n++] = j->pid;
		SpinLockRelease(&j->mutex);
	}
	return n;
}

bool dr_snapshot_receiving(uint64 group_id, DrSnapPhase *phase, uint64 *done, uint64 *total,
                           TimestampTz *started)
{
	for (int i = 0; i < DR_SNAP_JOBS; i++) {
		DrSnapJob *j = &jobs[i];
		bool mine;

		SpinLockAcquire(&j->mutex);
		mine = j->group_id == group_id && j->role == DR_SNAP_RECEIVER;
		if (mine) {
			*phase = j->phase;
			*done = j->bytes_done;
			*total = j->bytes_total;
			if (started != NULL)
				*started = j->started;
		}
		SpinLockRelease(&j->mutex);
		if (mine)
			return true;
	}
	return false;
}

static const char *phase_name(DrSnapPhase p)
{
	switch (p) {
	case DR_SNAP_STARTING:
		return "starting";
	case DR_SNAP_DRAINING:
		return "waiting for apply";
	case DR_SNAP_EXPORTING:
		return "exporting";
	case DR_SNAP_VERIFYING:
		return "verifying";
	case DR_SNAP_LOADING:
		return "loading";
	case DR_SNAP_DONE:
		return "done";
	}
	return "unknown";
}

/* dragonraft.stat_progress_snapshot */
Datum dr_stat_progress_snapshot(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *)fcinfo->resultinfo;

	InitMaterializedSRF(fcinfo, 0);
	for (int i = 0; i < DR_SNAP_JOBS; i++) {
		DrSnapJob j;
		Datum values[10];
		bool nulls[10] = {0};

		SpinLockAcquire(&jobs[i].mutex);
		j = jobs[i];
		SpinLockRelease(&jobs[i].mutex);
		if (j.group_id == 0)
			continue;
		values[0] = Int64GetDatum((int64)j.group_id);
		values[1] = Int32GetDatum(j.pid);
		values[2] = CStringGetTextDatum(j.role == DR_SNAP_SENDER     ? "sender"
		                                : j.role == DR_SNAP_RECEIVER ? "receiver"
		                                                             : "digest");
		values[3] = CStringGetTextDatum(phase_name(j.phase));
		values[4] = Int64GetDatum((int64)j.index);
		nulls[4] = j.index == 0;
		values[5] = Int64GetDatum((int64)j.bytes_total);
		values[6] = Int64GetDatum((int64)j.bytes_done);
		values[7] = Int32GetDatum((int32)j.tables_total);
		values[8] = Int32GetDatum((int32)j.tables_done);
		values[9] = TimestampTzGetDatum(j.started);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum)0;
}
