/*
 * engine_worker.c - the engine worker: one static background worker per
 * node (DESIGN §3).  It owns the node's Raft engine; until src/engine exists
 * it prepares the node's data directory, publishes its state in shared
 * memory and serves its latch, so that the worker's life cycle (start,
 * reload, clean shutdown, postmaster death) is in place and tested.
 */
#include "dragonraft.h"

#include <sys/stat.h>

#include "common/file_perm.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "utils/guc.h"
#include "utils/timestamp.h"

void
dr_register_engine_worker(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	/*
	 * Like the logical replication launcher, the worker attaches to shared
	 * catalogs only (no database), which also gives it an entry in
	 * pg_stat_activity.
	 */
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 5;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "dragonraft");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "dr_engine_worker_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "dragonraft engine for node %d", dr_node_id);
	snprintf(worker.bgw_type, BGW_MAXLEN, "dragonraft engine");
	RegisterBackgroundWorker(&worker);
}

static void
set_state(DrEngineState state)
{
	SpinLockAcquire(&dr_shared->mutex);
	dr_shared->engine_state = state;
	dr_shared->engine_pid = state == DR_ENGINE_RUNNING ? MyProcPid : 0;
	if (state == DR_ENGINE_RUNNING)
		dr_shared->engine_started = GetCurrentTimestamp();
	SpinLockRelease(&dr_shared->mutex);
}

static void
on_engine_exit(int code, Datum arg)
{
	set_state(DR_ENGINE_STOPPED);
}

/* Creates dragonraft.data_dir (relative to PGDATA) if it does not exist. */
static void
prepare_data_dir(void)
{
	struct stat st;

	if (stat(dr_data_dir, &st) == 0) {
		if (!S_ISDIR(st.st_mode))
			ereport(ERROR, (errcode(ERRCODE_CONFIG_FILE_ERROR),
					errmsg("dragonraft.data_dir \"%s\" is not a directory",
					       dr_data_dir)));
		return;
	}
	if (errno != ENOENT)
		ereport(ERROR, (errcode_for_file_access(),
				errmsg("could not stat dragonraft.data_dir \"%s\": %m", dr_data_dir)));
	if (MakePGDirectory(dr_data_dir) != 0)
		ereport(ERROR,
			(errcode_for_file_access(),
			 errmsg("could not create dragonraft.data_dir \"%s\": %m", dr_data_dir)));
}

void
dr_engine_worker_main(Datum arg)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);

	prepare_data_dir();
	before_shmem_exit(on_engine_exit, (Datum)0);
	set_state(DR_ENGINE_RUNNING);
	ereport(LOG, (errmsg("dragonraft engine worker started for node %d on %s", dr_node_id,
			     dr_listen_address),
		      errdetail("The Raft engine is not part of this build yet; the worker "
				"only keeps its place in the node's life cycle.")));

	while (!ShutdownRequestPending) {
		int rc;

		rc = WaitLatch(MyLatch, WL_LATCH_SET | WL_EXIT_ON_PM_DEATH, -1L,
			       PG_WAIT_EXTENSION);
		if (rc & WL_LATCH_SET)
			ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending) {
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			ereport(LOG, (errmsg("dragonraft engine worker for node %d reloaded its "
					     "configuration",
					     dr_node_id)));
		}
	}

	ereport(LOG, (errmsg("dragonraft engine worker for node %d shutting down", dr_node_id)));
	proc_exit(0);
}
