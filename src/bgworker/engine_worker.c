/*
 * engine_worker.c - the engine worker (DESIGN §3): one static background
 * worker per node that runs src/engine over the LogDB (dragonraft.data_dir)
 * and the TCP transport.  It waits on its latch and on libuv's backend fd
 * together, then turns the loop once without blocking; backends wake it with
 * SetLatch.  This file is wiring: start, the loop, stop.  The groups are in
 * engine_groups.c, the status in engine_status.c, the state machine and the
 * apply worker's queue in pg_sm.c.
 *
 * Threads: RocksDB's and libuv's threads never run PostgreSQL code, and they
 * must never receive the process's signals (the latch's wake-ups and
 * PostgreSQL's handlers belong to this thread): they are created with every
 * signal blocked.  Engine and libuv callbacks follow the rule in
 * engine_worker.h.  If the engine stops after a storage failure, the status
 * says so and the worker exits with FATAL; the postmaster starts it again.
 */
#include "engine_worker.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>

#include "common/file_perm.h"
#include "engine/engine_logdb.h"
#include "engine/engine_uv.h"
#include "logdb/logdb.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "port/pg_crc32c.h"
#include "portability/instr_time.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "queue.h"
#include "replication/slot.h"
#include "snapshot.h"
#include "storage/fd.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "transport/transport.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "write.h"

/* Housekeeping cadence: member info entries, reachability of other nodes. */
#define HOUSEKEEPING_MS 250
/* How long a restarted engine worker shows why the one before it failed. */
#define ENGINE_ERROR_KEEP_MS 60000
/* Status copies for the views, at most this often (each group at most once),
 * or STATUS_ROLE_MS after a group's term, leader or role changed here: a
 * leader that stepped down said 'leader' for up to STATUS_MS, and clients
 * and poolers that route writes by dragonraft.leader() or dragonraft.status
 * went to it (promote55: TAP 010 asked a node that no longer led).  A node
 * that starts to lead shows it at once, inside the engine's round
 * (dr_engine_status_lead). */
#define STATUS_MS      100
#define STATUS_ROLE_MS 10
/* Refresh of the durable applied indexes (a WAL flush at most this often). */
#define DURABLE_MS 1000
/* Entry header and protobuf framing beyond max_entry_size in a transport frame. */
#define FRAME_SLACK (1024 * 1024)

DrEngine *dr_engine = NULL;

void dr_register_engine_worker(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	/*
	 * It connects to dragonraft.database, as pg_cron's launcher does: the
	 * replication origins (pg_replication_origin) are a shared catalog, but
	 * one that a backend without a database cannot read.
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

/*
 * Steps of the engine worker that call into the engine or libuv: each is
 * entered with engine_enter() and left with engine_leave().  An ERROR, a
 * FATAL or a proc_exit raised inside one (in a callback that the engine or
 * libuv called: the state machine's hooks, dr_engine_status_lead, a
 * completion callback; or in the PostgreSQL code of the step itself) leaves
 * the count above 0, and stop_engine then knows that an engine or libuv
 * frame may have been abandoned: libuv keeps lists of a handle kind on its
 * stack while their callbacks run (a longjmp out of them leaves the loop
 * pointing into a dead stack frame), and the engine may be in the middle of
 * a round.  Neither is run nor closed again (a FATAL inside a callback would
 * have run the loop nested inside itself); see stop_engine.
 */
static int engine_steps;

static void engine_enter(void)
{
	engine_steps++;
}

static void engine_leave(void)
{
	Assert(engine_steps > 0);
	engine_steps--;
}

/*
 * dragonraft.testing_second_check: a second check handle on the loop, run
 * after engine_uv's, which runs the engine's rounds.  It closes itself when
 * it runs once the engine stops (as the transport's handles close as the
 * loop runs).  libuv runs a kind's handles from a list it moved onto its
 * stack: while a round runs, this handle is in that list, and after a
 * longjmp out of the round it never runs again (an exit that ran the loop
 * waited for it for ever: TAP 161).
 */
static uv_check_t testing_check;

static void on_testing_check(uv_check_t *h)
{
	if (dr_engine == NULL) /* stop_engine */
		uv_close((uv_handle_t *)h, NULL);
}

/* Close the engine, the transport and the LogDB (at every exit: RocksDB's
 * threads must not outlive it). */
static void stop_engine(void)
{
	DrEngine *de = dr_engine;

	if (de == NULL)
		return;
	dr_engine = NULL;
	dr_pg_sm_shutdown();
	if (engine_steps > 0) {
		/*
		 * The exit comes from inside a step (engine_enter): the loop and the
		 * engine are left as they are, and the process ends with their memory
		 * and sockets.  Only the LogDB closes (RocksDB's threads must not
		 * outlive it), once the adapter's deferred sync, on libuv's thread
		 * pool, ended and no later one can touch it.  What the engine saved
		 * is in the LogDB; its journal is checked and replayed at the next
		 * open, as after a crash of the process.
		 */
		ereport(LOG, (errmsg("dragonraft engine worker for node %d exits from inside its "
		                     "engine: only its LogDB is closed",
		                     dr_node_id)));
		if (de->el != NULL)
			engine_logdb_stop(de->el);
		if (de->db != NULL)
			logdb_close(de->db);
		return;
	}
	if (de->u != NULL)
		engine_uv_close(de->u);
	if (de->loop_ready) {
		/* Handles close, the transport and the engine are freed, as the loop runs. */
		while (uv_run(&de->loop, UV_RUN_DEFAULT) != 0)
			;
		uv_loop_close(&de->loop);
	}
	if (de->el != NULL)
		engine_logdb_destroy(de->el);
	if (de->db != NULL)
		logdb_close(de->db);
}

static void on_engine_exit(int code, Datum arg)
{
	stop_engine();
	SpinLockAcquire(&dr_shared->mutex);
	dr_shared->engine_state = DR_ENGINE_STOPPED;
	dr_shared->engine_pid = 0;
	dr_shared->engine_pgprocno = -1;
	SpinLockRelease(&dr_shared->mutex);
	dr_queue_close();
}

/* Exit with FATAL; node_status() shows msg as the reason the engine stopped. */
static void stop_with(const char *msg, const char *hint) pg_attribute_noreturn();

static void stop_with(const char *msg, const char *hint)
{
	SpinLockAcquire(&dr_shared->mutex);
	strlcpy(dr_shared->engine_error, msg, sizeof(dr_shared->engine_error));
	SpinLockRelease(&dr_shared->mutex);
	ereport(FATAL, (errmsg("%s", msg), hint ? errhint("%s", hint) : 0));
	pg_unreachable();
}

/* Creates dragonraft.data_dir (relative to PGDATA) and its subdirectory dir. */
static void prepare_dir(const char *dir)
{
	struct stat st;

	if (stat(dir, &st) == 0) {
		if (!S_ISDIR(st.st_mode))
			stop_with(psprintf("\"%s\" in dragonraft.data_dir is not a directory", dir),
			          NULL);
		return;
	}
	if (errno != ENOENT)
		stop_with(psprintf("could not stat \"%s\": %m", dir), NULL);
	if (MakePGDirectory(dir) != 0)
		stop_with(psprintf("could not create directory \"%s\": %m", dir), NULL);
}

/* Most bytes of a cluster secret (a file of at most 4,096 hex digits). */
#define SECRET_MAX 2048

/* The cluster secret (palloc'd, *len bytes), or NULL without dragonraft.cluster_secret_file. */
static uint8 *read_secret(size_t *len)
{
	uint8 *secret = palloc(SECRET_MAX);
	char err[512];

	*len = 0;
	if (dr_cluster_secret_file[0] == '\0')
		return NULL;
	if (transport_read_secret_file(dr_cluster_secret_file, secret, SECRET_MAX, len, err,
	                               sizeof(err)) != TRANSPORT_OK)
		stop_with(psprintf("dragonraft %s", err),
		          "Make one with: openssl rand -hex 32 > FILE; chmod 600 FILE (the same "
		          "secret on every node).");
	return secret;
}

/*
 * Lines the transport logs (refused peers, an insecure configuration) come
 * from libuv callbacks too, where no ereport may run: they wait in a small
 * queue (malloc) that the main loop empties into the server log.
 */
#define TRANSPORT_LOG_QUEUE 64
#define QUEUED_WARNING      100 /* a WARNING without the transport's TLS hint (the LogDB's) */
static struct {
	int level[TRANSPORT_LOG_QUEUE];
	char *msg[TRANSPORT_LOG_QUEUE];
	int n;
	int dropped;
} tlog;

static void transport_log(void *ctx, int level, const char *msg)
{
	char *copy;

	if (tlog.n == TRANSPORT_LOG_QUEUE || (copy = strdup(msg)) == NULL) {
		tlog.dropped++;
		return;
	}
	tlog.level[tlog.n] = level;
	tlog.msg[tlog.n++] = copy;
}

static void flush_transport_log(void)
{
	for (int i = 0; i < tlog.n; i++) {
		bool warning =
		        tlog.level[i] == TRANSPORT_LOG_WARNING; /* an insecure configuration */

		ereport(tlog.level[i] == TRANSPORT_LOG_INFO ? LOG : WARNING,
		        (errmsg("%s", tlog.msg[i]),
		         warning ? errhint("Set dragonraft.ssl_cert_file, ssl_key_file and "
		                           "ssl_ca_file "
		                           "(scripts/make-certs.sh makes them), or "
		                           "dragonraft.cluster_secret_file.")
		                 : 0));
		free(tlog.msg[i]);
	}
	if (tlog.dropped > 0)
		ereport(LOG,
		        (errmsg("dragonraft transport: %d more lines not logged", tlog.dropped)));
	tlog.n = tlog.dropped = 0;
}

/* Lines the LogDB logs at open (a journal tail it dropped: review 28 F5), through the same
 * queue (logdb_open runs on this thread, but with every signal blocked; no palloc: an
 * ERROR must not leave the LogDB half open). */
static void logdb_log(void *ctx, int level, const char *msg)
{
	char line[2048];

	snprintf(line, sizeof(line), "dragonraft LogDB: %s", msg);
	transport_log(ctx, level == LOGDB_LOG_WARNING ? QUEUED_WARNING : TRANSPORT_LOG_INFO, line);
}

/* The engine's lines (refused snapshots; a membership change's address not learned, a
 * WARNING) come from engine rounds, in libuv callbacks: through the same queue. */
static void engine_log(void *ctx, int level, const char *line)
{
	transport_log(ctx, level == ENGINE_LOG_WARNING ? QUEUED_WARNING : TRANSPORT_LOG_INFO, line);
}

static void noop_work(uv_work_t *w)
{
}

static void noop_after(uv_work_t *w, int status)
{
}

/*
 * Open the LogDB and create libuv's thread pool with every signal blocked:
 * threads inherit the mask of the thread that creates them, and RocksDB
 * starts its threads when it opens, libuv at its first queued work.
 */
static void open_with_threads_masked(struct logdb_config *lc, char *err, size_t errlen, int *rc)
{
	static uv_work_t warm;
	sigset_t all, old;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	*rc = logdb_open(lc, &dr_engine->db, err, errlen);
	if (*rc == LOGDB_OK)
		uv_queue_work(&dr_engine->loop, &warm, noop_work, noop_after);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* The HINT for a damaged LogDB (at open, or a read that found it so). */
static const char *damaged_hint(void)
{
	return psprintf("The LogDB is damaged: the engine worker fails so at each restart, and its "
	                "log cannot be repaired.  Its members rejoin their groups from the other "
	                "members: move \"%s/logdb\" aside (the server may run: the engine "
	                "worker that waits to try again opens a new one at once) or stop the "
	                "server, move it aside and start it; dragonraft.status then shows each "
	                "group stopped, with how to rejoin.",
	                dr_data_dir);
}

/*
 * A damaged LogDB fails every engine worker the same way, and the
 * postmaster started one every 5 s for ever: a FATAL and its HINT every 5 s
 * filled the server log (review 28 F5).  So each engine worker in a row
 * that finds the LogDB damaged (at open, or a read) doubles the time until
 * the next one opens it: 5 s (the postmaster's restart time, no wait),
 * then 10 s, 20 s ... up to 5 min.  The count and the time live in shared
 * memory (node_status() shows the time as engine_retry_at) and in a file
 * that outlives a crash's reinitialization (save_backoff); the count is
 * forgotten with the failure (forget_failure: a worker that ran a minute),
 * since a LogDB that opens may still fail at its first read (TAP 091).  The
 * waiting worker ends at once at SIGTERM or the postmaster's death; it
 * opens the LogDB at once when the damaged directory is moved aside or
 * replaced (it looks each second, at device, inode and ctime: the HINT's
 * remedy needs no restart and no wait), or at a reload (pg_reload_conf(),
 * SIGHUP).
 */
#define DAMAGED_RETRY_MIN_MS 5000
#define DAMAGED_RETRY_MAX_MS (5 * 60 * 1000)

/* dragonraft.data_dir/logdb (relative to PGDATA, the working directory). */
static const char *logdb_path(void)
{
	return psprintf("%s/logdb", dr_data_dir);
}

/* The identity of directory path into *id (all zeros when it cannot be read). */
static void dir_id(const char *path, DrDirId *id)
{
	struct stat st;

	memset(id, 0, sizeof(*id));
	if (stat(path, &st) != 0)
		return;
	id->dev = st.st_dev;
	id->ino = st.st_ino;
	id->ctime_sec = (int64)st.st_ctim.tv_sec;
	id->ctime_nsec = (int64)st.st_ctim.tv_nsec;
}

static bool same_dir(const DrDirId *a, const DrDirId *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->ctime_sec == b->ctime_sec &&
	       a->ctime_nsec == b->ctime_nsec;
}

/*
 * The back-off survives a crash of any backend: the postmaster then makes
 * shared memory anew, and the next engine worker opened the damaged LogDB at
 * once and began again at 5 s (a backend crashing each minute kept it failing
 * every 5-20 s).  damaged_exit writes the count, the times and the damaged
 * directory's identity to dragonraft.data_dir/logdb_damaged; an engine worker
 * that finds no count in shared memory (after a crash, or a server start)
 * takes them from there (load_backoff) when the LogDB directory is still the
 * one found damaged.  A server start still opens the LogDB at once (its
 * configuration load counts as a reload), but the count goes on.  The file is
 * removed when the count is forgotten (forget_failure), and ignored (with a
 * LOG) when it cannot be read or fails its checksum: it can only delay an
 * attempt, never stop one.
 */
#define BACKOFF_MAGIC "dragonraft-backoff 1"

static const char *backoff_path(void)
{
	return psprintf("%s/logdb_damaged", dr_data_dir);
}

static pg_crc32c line_crc(const char *line, size_t len)
{
	pg_crc32c crc;

	INIT_CRC32C(crc);
	COMP_CRC32C(crc, line, len);
	FIN_CRC32C(crc);
	return crc;
}

/* Write the back-off (damaged_exit); a failure only costs its survival of a crash. */
static void save_backoff(int runs, TimestampTz damaged_at, TimestampTz retry_at, const DrDirId *id)
{
	const char *path = backoff_path(), *tmp = psprintf("%s.tmp", path);
	char line[256];
	bool ok = false;
	int n;
	FILE *f;

	n = snprintf(line, sizeof(line),
	             BACKOFF_MAGIC " runs=%d damaged_at=" INT64_FORMAT " retry_at=" INT64_FORMAT
	                           " dev=" UINT64_FORMAT " ino=" UINT64_FORMAT
	                           " ctime=" INT64_FORMAT "." INT64_FORMAT,
	             runs, (int64)damaged_at, (int64)retry_at, (uint64)id->dev, (uint64)id->ino,
	             id->ctime_sec, id->ctime_nsec);
	snprintf(line + n, sizeof(line) - n, " crc=%08x\n", line_crc(line, n));
	f = AllocateFile(tmp, PG_BINARY_W);
	if (f != NULL) {
		ok = fputs(line, f) != EOF;
		ok = FreeFile(f) == 0 && ok && rename(tmp, path) == 0;
	}
	if (!ok)
		ereport(LOG, (errcode_for_file_access(),
		              errmsg("dragonraft could not write \"%s\": %m", tmp),
		              errdetail("The back-off of the next attempt to open the damaged "
		                        "LogDB starts over if a backend crashes.")));
}

/* Forget the saved back-off (the count was forgotten, or the file is not usable). */
static void remove_backoff(void)
{
	const char *path = backoff_path();

	if (unlink(path) != 0 && errno != ENOENT)
		ereport(LOG, (errcode_for_file_access(),
		              errmsg("dragonraft could not remove \"%s\": %m", path)));
}

/*
 * At start, when shared memory holds no count (a new postmaster, or one that
 * reinitialized after a crash): take the back-off saved by damaged_exit, if
 * the LogDB directory is still the one found damaged.
 */
static void load_backoff(void)
{
	const char *path = backoff_path();
	char line[256], nl;
	int runs, n, len;
	int64 damaged_at, retry_at, ctime_sec, ctime_nsec;
	uint64 dev, ino;
	unsigned crc;
	DrDirId id, now_id;
	const char *why = NULL;
	FILE *f;
	bool fresh;

	SpinLockAcquire(&dr_shared->mutex);
	fresh = dr_shared->engine_damaged_runs == 0;
	SpinLockRelease(&dr_shared->mutex);
	if (!fresh)
		return;
	f = AllocateFile(path, PG_BINARY_R);
	if (f == NULL) {
		if (errno != ENOENT)
			ereport(LOG,
			        (errcode_for_file_access(),
			         errmsg("dragonraft could not read \"%s\", ignored: %m", path)));
		return;
	}
	len = (int)fread(line, 1, sizeof(line) - 1, f);
	FreeFile(f);
	line[Max(len, 0)] = '\0';
	if (sscanf(line,
	           BACKOFF_MAGIC " runs=%d damaged_at=" INT64_FORMAT " retry_at=" INT64_FORMAT
	                         " dev=" UINT64_FORMAT " ino=" UINT64_FORMAT " ctime=" INT64_FORMAT
	                         "." INT64_FORMAT "%n crc=%8x%c",
	           &runs, &damaged_at, &retry_at, &dev, &ino, &ctime_sec, &ctime_nsec, &n, &crc,
	           &nl) != 9 ||
	    nl != '\n' || (int)strlen(line) != n + 14)
		why = "it is not a back-off line";
	else if (crc != line_crc(line, n))
		why = "its checksum fails";
	/* (damaged_at ahead of the clock: the clock went back since, and the wait
	 * would last that much longer, a server start's too: TAP 103) */
	else if (runs < 1 || retry_at < damaged_at ||
	         retry_at > TimestampTzPlusMilliseconds(damaged_at, DAMAGED_RETRY_MAX_MS) ||
	         damaged_at > GetCurrentTimestamp())
		why = "its values are out of range";
	if (why != NULL) {
		ereport(LOG, (errmsg("dragonraft ignores \"%s\": %s", path, why),
		              errdetail("The engine worker opens the LogDB without waiting.")));
		remove_backoff();
		return;
	}
	memset(&id, 0, sizeof(id));
	id.dev = (dev_t)dev;
	id.ino = (ino_t)ino;
	id.ctime_sec = ctime_sec;
	id.ctime_nsec = ctime_nsec;
	dir_id(logdb_path(), &now_id);
	if (!same_dir(&id, &now_id)) {
		remove_backoff(); /* moved aside or replaced while no worker ran */
		return;
	}
	SpinLockAcquire(&dr_shared->mutex);
	if (dr_shared->engine_damaged_runs == 0) {
		dr_shared->engine_damaged_runs = runs;
		dr_shared->engine_damaged_at = damaged_at;
		dr_shared->engine_retry_at = retry_at;
		dr_shared->engine_damaged_dir = id;
	}
	SpinLockRelease(&dr_shared->mutex);
}

static void damaged_exit(const char *msg) pg_attribute_noreturn();

static void damaged_exit(const char *msg)
{
	TimestampTz at, now;
	long ms = DAMAGED_RETRY_MIN_MS;
	DrDirId id;
	int n;

	SpinLockAcquire(&dr_shared->mutex);
	n = ++dr_shared->engine_damaged_runs;
	SpinLockRelease(&dr_shared->mutex);
	for (int i = 1; i < n && ms < DAMAGED_RETRY_MAX_MS; i++)
		ms *= 2;
	ms = Min(ms, DAMAGED_RETRY_MAX_MS);
	now = GetCurrentTimestamp();
	at = TimestampTzPlusMilliseconds(now, ms);
	dir_id(logdb_path(), &id);
	SpinLockAcquire(&dr_shared->mutex);
	dr_shared->engine_retry_at = at;
	dr_shared->engine_damaged_at = now;
	dr_shared->engine_damaged_dir = id;
	strlcpy(dr_shared->engine_error, msg, sizeof(dr_shared->engine_error));
	SpinLockRelease(&dr_shared->mutex);
	save_backoff(n, now, at, &id);
	ereport(FATAL,
	        (errmsg("%s", msg),
	         errdetail_plural("%d engine worker in a row found the LogDB damaged; the next "
	                          "one opens it at %s (in %ld s), or at once when it is moved "
	                          "aside.",
	                          "%d engine workers in a row found the LogDB damaged; the next "
	                          "one opens it at %s (in %ld s), or at once when it is moved "
	                          "aside.",
	                          n, n, timestamptz_to_str(at), ms / 1000),
	         errhint("%s", damaged_hint())));
	pg_unreachable();
}

/*
 * Before opening the LogDB: wait until engine_retry_at (damaged_exit), or a reload.  The
 * wait is measured on the monotonic clock too, from its start: it lasts no longer than
 * engine_retry_at was ahead then (at most the back-off's 5 min).  A wall clock stepped
 * back while the server runs made it longer by the step, days with no bound;
 * node_status().engine_retry_at then shows when the wait ends.
 */
static void wait_for_retry(void)
{
	const char *dir = logdb_path();
	TimestampTz damaged_at, retry_at;
	instr_time began, elapsed;
	int64 budget_ms;
	bool cut = false;

	/*
	 * A reload while no engine worker ran (the postmaster starts the next one 5 s after the
	 * last exits: a reload then reached no one) ends the wait too (review 31).  PgReloadTime
	 * is the postmaster's, as of this worker's fork.
	 */
	SpinLockAcquire(&dr_shared->mutex);
	damaged_at = dr_shared->engine_damaged_at;
	retry_at = dr_shared->engine_retry_at;
	SpinLockRelease(&dr_shared->mutex);
	if (retry_at > GetCurrentTimestamp() && PgReloadTime > damaged_at) {
		ereport(LOG, (errmsg("dragonraft engine worker for node %d opens its LogDB now (a "
		                     "reload since it was found damaged ended the wait)",
		                     dr_node_id)));
		return;
	}
	INSTR_TIME_SET_CURRENT(began);
	budget_ms = Min(Max((retry_at - GetCurrentTimestamp()) / 1000, 0), DAMAGED_RETRY_MAX_MS);
	for (;;) {
		TimestampTz at, now = GetCurrentTimestamp();
		DrDirId damaged, id;
		int64 left_ms;
		long ms;

		INSTR_TIME_SET_CURRENT(elapsed);
		INSTR_TIME_SUBTRACT(elapsed, began);
		left_ms = budget_ms - (int64)INSTR_TIME_GET_MILLISEC(elapsed);
		/* (a second's slack: the two clocks drift apart by milliseconds) */
		SpinLockAcquire(&dr_shared->mutex);
		at = dr_shared->engine_retry_at;
		if (at > TimestampTzPlusMilliseconds(now, Max(left_ms, 0) + 1000)) {
			at = dr_shared->engine_retry_at =
			        TimestampTzPlusMilliseconds(now, Max(left_ms, 0));
			cut = true;
		}
		damaged = dr_shared->engine_damaged_dir;
		SpinLockRelease(&dr_shared->mutex);
		if (at <= now || left_ms <= 0) {
			if (cut)
				ereport(LOG, (errmsg("dragonraft engine worker for node %d opens "
				                     "its LogDB now "
				                     "(its wait was cut to the time it had left "
				                     "when the "
				                     "clock went back)",
				                     dr_node_id)));
			return;
		}
		dir_id(dir, &id);
		if (!same_dir(&id, &damaged)) {
			ereport(LOG,
			        (errmsg("dragonraft engine worker for node %d opens its LogDB now: "
			                "\"%s\" was moved or replaced since it was found damaged",
			                dr_node_id, dir)));
			return;
		}
		ms = (long)Min((at - now + 999) / 1000, 1000);
		(void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, ms,
		                PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ShutdownRequestPending)
			proc_exit(1); /* as main_loop's end: pg_terminate_backend starts it again */
		if (ConfigReloadPending) {
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			ereport(LOG,
			        (errmsg("dragonraft engine worker for node %d opens its LogDB now "
			                "(a reload ended its wait after a damaged LogDB)",
			                dr_node_id)));
			return;
		}
	}
}

/* dragonraft.snapshot_min_free (MB) to the transport: at start and at each reload. */
static void set_snapshot_min_free(struct transport *t)
{
	transport_set_snapshot_min_free(t, (uint64)dr_snapshot_min_free * 1024 * 1024);
}

/*
 * The pid of another process that holds the LogDB's lock (RocksDB's LOCK file
 * of its first shard, an fcntl lock), else 0: another server given the same
 * dragonraft.data_dir.  Its LogDB is not damaged, and the hint for a failed
 * open (move the LogDB aside) would move that server's away.
 */
static pid_t logdb_lock_holder(const char *logdb_dir)
{
	char path[MAXPGPATH];
	struct flock fl;
	int fd;

	snprintf(path, sizeof(path), "%s/shard-0/LOCK", logdb_dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	if (fcntl(fd, F_GETLK, &fl) != 0)
		fl.l_type = F_UNLCK;
	close(fd); /* (this process holds no lock on it to lose) */
	return fl.l_type != F_UNLCK && fl.l_pid != MyProcPid ? fl.l_pid : 0;
}

static void start_engine(void)
{
	DrEngine *de = dr_engine;
	struct logdb_config lc;
	struct engine_config ec;
	struct transport_config tc;
	struct engine_storage_ops st;
	char logdb_dir[MAXPGPATH], snap_dir[MAXPGPATH], err[512];
	char host[DR_ADDR_LEN];
	const char *why;
	int port, rc;
	pid_t holder;
	size_t secret_len;
	uint8 *secret = read_secret(&secret_len);

	prepare_dir(dr_data_dir);
	snprintf(logdb_dir, sizeof(logdb_dir), "%s/logdb", dr_data_dir);
	snprintf(snap_dir, sizeof(snap_dir), "%s/snapshots", dr_data_dir);
	prepare_dir(snap_dir);

	if (uv_loop_init(&de->loop) != 0)
		stop_with("dragonraft could not initialise its event loop", NULL);
	de->loop_ready = true;
	memset(&lc, 0, sizeof(lc));
	lc.dir = logdb_dir;
	lc.memtable_budget = (uint64)dr_logdb_memtable_budget << 20;
	lc.log_fn = logdb_log;
	open_with_threads_masked(&lc, err, sizeof(err), &rc);
	flush_transport_log(); /* what the open dropped at a journal's end */
	/* A damaged LogDB fails the same way at every restart (review 28 F1): say
	 * what to do about it, and for another failure what to check. */
	if (rc == LOGDB_ERR_CORRUPT)
		damaged_exit(psprintf("dragonraft could not open its LogDB in \"%s\": %s",
		                      logdb_dir, err));
	if (rc != LOGDB_OK && (holder = logdb_lock_holder(logdb_dir)) != 0)
		stop_with(psprintf("dragonraft could not open its LogDB in \"%s\": process %d "
		                   "uses it: %s",
		                   logdb_dir, (int)holder, err),
		          "Each server needs a dragonraft.data_dir of its own: this one may be "
		          "another server's.  Do not move its LogDB aside (that server uses it); "
		          "set dragonraft.data_dir and restart this server.");
	if (rc != LOGDB_OK)
		stop_with(
		        psprintf("dragonraft could not open its LogDB in \"%s\": %s", logdb_dir,
		                 err),
		        rc == LOGDB_ERR_SHARDS
		                ? NULL
		                : psprintf("The postmaster starts the engine worker again in a few "
		                           "seconds; check the disk and the permissions of "
		                           "dragonraft.data_dir.  If files of the LogDB are gone, "
		                           "it "
		                           "is damaged: stop the server, move \"%s\" aside and "
		                           "start "
		                           "it; dragonraft.status then shows how each group "
		                           "rejoins.",
		                           logdb_dir));
	/* The LogDB is locked now (RocksDB's LOCK files): data_dir is this server's, and
	 * what pg_sm.c removes from its snapshot directory (the files a previous engine
	 * worker left) is this node's.  Before the open, a second server given the same
	 * data_dir by mistake deleted the first one's snapshot files (one being
	 * installed, made or sent) at each of its engine worker's starts, each failing
	 * at the lock (rev66 TAP 137). */
	dr_pg_sm_init();
	if (engine_logdb_create(de->db, dr_node_id, &de->el) != ENGINE_OK)
		stop_with("dragonraft could not set up its LogDB adapter", NULL);
	engine_logdb_ops(de->el, &st);

	memset(&ec, 0, sizeof(ec));
	ec.node_id = dr_node_id;
	/* Election timeouts drawn anew at each start, not the node id's sequence again. */
	if (!pg_strong_random(&ec.seed, sizeof(ec.seed)))
		ec.seed = 0; /* the engine then seeds with the node id */
	ec.rtt_ms = dr_rtt_ms;
	ec.election_rtt = dr_election_rtt;
	ec.heartbeat_rtt = dr_heartbeat_rtt;
	ec.snapshot_entries = dr_snapshot_entries;
	ec.compaction_overhead = dr_compaction_overhead;
	ec.max_entry_bytes = dr_max_entry_size;
	ec.forward_proposals = true; /* followers' member info entries reach the leader */
	ec.defer_leader_sync = dr_deferred_leader_sync;
	ec.snapshot_dir = snap_dir;
	ec.log_fn = engine_log;
	ec.lead_fn = dr_engine_status_lead;

	memset(&tc, 0, sizeof(tc));
	tc.listen_addr = dr_listen_address;
	tc.tls_cert_file = dr_ssl_cert_file[0] ? dr_ssl_cert_file : NULL;
	tc.tls_key_file = dr_ssl_key_file[0] ? dr_ssl_key_file : NULL;
	tc.tls_ca_file = dr_ssl_ca_file[0] ? dr_ssl_ca_file : NULL;
	tc.tls_crl_file = dr_ssl_crl_file[0] ? dr_ssl_crl_file : NULL;
	tc.secret = secret;
	tc.secret_len = secret_len;
	tc.log_fn = transport_log;
	tc.max_frame = Max((uint64)dr_max_entry_size + FRAME_SLACK, 64 * 1024 * 1024);
	tc.queue_max_bytes = tc.max_frame;
	tc.snapshot_dir = snap_dir;
	/* The directory is this worker's alone: the LogDB beside it, opened above, is locked
	 * (RocksDB's LOCK files), and the apply side removes the other snapshot files a
	 * previous engine worker left (pg_sm.c).  Its partial files go too, at once: a
	 * stream of an earlier process is never resumed. */
	tc.snapshot_dir_private = true;
	if (dr_testing_second_check) {
		/* (started first: libuv runs the check handle started last first) */
		uv_check_init(&de->loop, &testing_check);
		uv_check_start(&testing_check, on_testing_check);
	}
	rc = engine_uv_create(&de->loop, &ec, &st, &tc, &de->u, err, sizeof(err));
	flush_transport_log();
	if (rc != ENGINE_OK)
		stop_with(psprintf("dragonraft could not start its engine on %s: %s",
		                   dr_listen_address, err),
		          strstr(err, "cannot listen") != NULL
		                  ? "Is another process listening there?  See "
		                    "dragonraft.listen_address."
		                  : NULL);
	de->e = engine_uv_engine(de->u);
	de->t = engine_uv_transport(de->u);
	set_snapshot_min_free(de->t);

	/* The address others dial, with the port the listener got. */
	if (!dr_parse_address(dr_advertise_address[0] ? dr_advertise_address : dr_listen_address,
	                      host, sizeof(host), &port, &why))
		stop_with(psprintf("dragonraft address: %s", why), NULL);
	if (dr_advertise_address[0] == '\0' || port == 0)
		port = transport_listen_port(de->t);
	SpinLockAcquire(&dr_shared->mutex);
	snprintf(dr_shared->raft_address, sizeof(dr_shared->raft_address), "%s:%d", host, port);
	SpinLockRelease(&dr_shared->mutex);
}

static void set_running(void)
{
	SpinLockAcquire(&dr_shared->mutex);
	dr_shared->engine_state = DR_ENGINE_RUNNING;
	dr_shared->engine_pid = MyProcPid;
	dr_shared->engine_pgprocno = MyProc->pgprocno;
	dr_shared->engine_started = GetCurrentTimestamp();
	/* engine_error keeps the failure that ended the worker before (forget_failure),
	 * engine_damaged_runs too (engine_retry_at was cleared once its wait was over) */
	SpinLockRelease(&dr_shared->mutex);
}

/*
 * The failure that ended the previous engine worker stays in node_status()
 * until this one has run ENGINE_ERROR_KEEP_MS without failing (review 28 F4):
 * a worker that fails again and again (a disk that stays full) runs a few
 * seconds each time, and a monitor polling node_status() saw a healthy node
 * most of the time.
 */
static void forget_failure(TimestampTz now)
{
	bool had_runs = false;

	SpinLockAcquire(&dr_shared->mutex);
	if (now >= TimestampTzPlusMilliseconds(dr_shared->engine_started, ENGINE_ERROR_KEEP_MS)) {
		dr_shared->engine_error[0] = '\0';
		had_runs = dr_shared->engine_damaged_runs > 0;
		dr_shared->engine_damaged_runs = 0; /* the back-off of damaged_exit starts over */
	}
	SpinLockRelease(&dr_shared->mutex);
	if (had_runs)
		remove_backoff();
}

/* The engine stopped after a storage failure: say so, then exit (and be restarted). */
static void engine_failed_exit(void) pg_attribute_noreturn();

static void engine_failed_exit(void)
{
	const char *msg = psprintf("dragonraft engine stopped: %s", engine_errmsg(dr_engine->e));

	/* A read that found damage meets it again after the restart (review 28 F2). */
	if (engine_logdb_damaged(dr_engine->el))
		damaged_exit(msg);
	stop_with(msg, "The postmaster starts the engine worker again in a few seconds; check "
	               "the disk that holds dragonraft.data_dir.");
}

/* At a reload: the TLS files again (a new CRL closes the connections of revoked nodes). */
static void reload_tls(void)
{
	struct transport_tls_files f = {dr_ssl_cert_file, dr_ssl_key_file, dr_ssl_ca_file,
	                                dr_ssl_crl_file[0] ? dr_ssl_crl_file : NULL};
	char err[512];

	if (dr_ssl_cert_file[0] != '\0' &&
	    engine_uv_reload_tls(dr_engine->u, &f, err, sizeof(err)) != ENGINE_OK)
		ereport(WARNING, (errmsg("dragonraft could not reload its TLS files: %s", err),
		                  errdetail("The files read before stay in use.")));
	flush_transport_log();
}

static void main_loop(void)
{
	DrEngine *de = dr_engine;
	MemoryContext loop_cxt = AllocSetContextCreate(TopMemoryContext, "dragonraft engine loop",
	                                               ALLOCSET_DEFAULT_SIZES);
	WaitEventSet *wes = CreateWaitEventSet(TopMemoryContext, 3);
	TimestampTz next_status = 0, next_housekeeping = 0, next_durable = 0, next_lock_check = 0;
	TimestampTz last_status = 0;
	uint64 role_changes = 0;
	bool status_due = false; /* a role change waits for its copy */

	AddWaitEventToSet(wes, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
	AddWaitEventToSet(wes, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
	AddWaitEventToSet(wes, WL_SOCKET_READABLE, engine_uv_fd(de->u), NULL, NULL);

	for (;;) {
		WaitEvent ev[3];
		long timeout = engine_has_work(de->e) || dr_membership_digests_waiting()
		                       ? 0
		                       : engine_uv_timeout(de->u);
		long retry = dr_pg_sm_timeout();
		TimestampTz now;
		int n;

		if (retry >= 0 && (timeout < 0 || retry < timeout))
			timeout = retry;
		if (timeout < 0 || timeout > HOUSEKEEPING_MS)
			timeout = HOUSEKEEPING_MS;
		if (status_due) {
			long left = (long)((next_status - GetCurrentTimestamp()) / 1000);

			timeout = Min(timeout, Max(left, 0));
		}
		n = WaitEventSetWait(wes, timeout, ev, lengthof(ev), PG_WAIT_EXTENSION);
		for (int i = 0; i < n; i++)
			if (ev[i].events & WL_LATCH_SET)
				ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ShutdownRequestPending)
			break; /* requests not taken are failed at exit */
		MemoryContextSwitchTo(loop_cxt);
		if (ConfigReloadPending) {
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			engine_enter();
			dr_engine_groups_reload();
			set_snapshot_min_free(de->t);
			reload_tls();
			engine_leave();
			ereport(LOG, (errmsg("dragonraft engine worker for node %d reloaded its "
			                     "configuration",
			                     dr_node_id)));
		}

		engine_enter();
		dr_engine_groups_take_requests();
		engine_uv_run_nowait(de->u);
		/* after the round: the proposals just taken go out first */
		dr_membership_digests_run();
		dr_engine_groups_propose_addresses(false);
		flush_transport_log();
		dr_pg_sm_poll();
		/* (after the poll: a group it restarts in place answers its waiting
		 * changes at once, not after the loop's sleep) */
		dr_engine_groups_shown_done();
		now = GetCurrentTimestamp();
		pg_atomic_fetch_add_u64(&dr_shared->engine_loops, 1); /* queue.c */
		if (engine_role_changes(de->e) != role_changes) {
			role_changes = engine_role_changes(de->e);
			status_due = true;
			next_status = Min(next_status,
			                  TimestampTzPlusMilliseconds(last_status, STATUS_ROLE_MS));
		}
		/* A new leader shown inside the round: its full copy now, before the
		 * next requests (dr_engine_status_lead). */
		if (dr_engine_status_led())
			next_status = now;
		if (now >= next_status) {
			dr_engine_status_refresh();
			last_status = now;
			status_due = false;
			next_status = TimestampTzPlusMilliseconds(now, STATUS_MS);
		}
		if (now >= next_housekeeping) {
			dr_engine_groups_member_info();
			dr_engine_status_peers();
			dr_engine_status_node();
			/* A session that blocks the apply worker on a node with no writer
			 * (a follower): max_apply_lock_delay holds there too. */
			(void)dr_xact_unblock_apply(&next_lock_check);
			forget_failure(now);
			next_housekeeping = TimestampTzPlusMilliseconds(now, HOUSEKEEPING_MS);
		}
		if (now >= next_durable) {
			dr_pg_sm_refresh_durable();
			next_durable = TimestampTzPlusMilliseconds(now, DURABLE_MS);
		}
		engine_leave();
		if (engine_failed(de->e))
			engine_failed_exit();
		MemoryContextSwitchTo(TopMemoryContext);
		MemoryContextReset(loop_cxt);
	}
}

/*
 * The worker exits in BackgroundWorkerInitializeConnection when
 * dragonraft.database cannot be used (it does not exist, it does not allow
 * connections): FATAL, which only the server log said, while node_status()
 * showed the engine off without a reason.
 */
static bool connected;

static void on_exit_before_connected(int code, Datum arg)
{
	if (connected || code == 0)
		return;
	SpinLockAcquire(&dr_shared->mutex);
	snprintf(dr_shared->engine_error, sizeof(dr_shared->engine_error),
	         "the engine worker could not connect to database \"%s\" "
	         "(dragonraft.database); the server log says why",
	         dr_database);
	SpinLockRelease(&dr_shared->mutex);
}

void dr_engine_worker_main(Datum arg)
{
	HASHCTL info;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, SignalHandlerForShutdownRequest);
	BackgroundWorkerUnblockSignals();
	load_backoff();   /* the back-off after a crash of any backend */
	wait_for_retry(); /* after a damaged LogDB */
	/* The wait is over (review 31): a failure of this worker other than the damage again must
	 * not show a next attempt in node_status() nor in the HINT of the "not running" error. */
	SpinLockAcquire(&dr_shared->mutex);
	dr_shared->engine_retry_at = 0;
	SpinLockRelease(&dr_shared->mutex);
	before_shmem_exit(on_exit_before_connected, (Datum)0);
	BackgroundWorkerInitializeConnection(dr_database, NULL, 0);
	connected = true;
	dr_pin_worker_settings();

	dr_engine = MemoryContextAllocZero(TopMemoryContext, sizeof(DrEngine));
	memset(&info, 0, sizeof(info));
	info.keysize = sizeof(uint64);
	info.entrysize = sizeof(DrSm);
	info.hcxt = TopMemoryContext;
	dr_engine->sms =
	        hash_create("dragonraft groups", 256, &info, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	before_shmem_exit(on_engine_exit, (Datum)0);
	start_engine(); /* (dr_pg_sm_init once the LogDB is open) */
	/*
	 * Loaders that outlived the engine worker before this one (and its apply
	 * worker) end first: one that committed after the groups' origins are
	 * read here moved a group's applied index under this worker, which
	 * started the member from the origin's older position (review 48, TAP
	 * 129).  Their loads come again with the snapshots the leaders send.
	 */
	dr_apply_end_orphan_loaders();
	engine_enter();
	dr_engine_groups_restart();
	dr_membership_digests_open();
	engine_leave();
	dr_queue_open();
	set_running();
	if (dr_max_groups > max_replication_slots)
		ereport(LOG,
		        (errmsg("dragonraft.max_groups is %d but max_replication_slots is %d",
		                dr_max_groups, max_replication_slots),
		         errdetail(
		                 "Each group keeps its applied index in a replication origin, and "
		                 "PostgreSQL tracks at most max_replication_slots of them: this "
		                 "node can be a member of at most %d groups.",
		                 max_replication_slots),
		         errhint("Raise max_replication_slots, or lower dragonraft.max_groups.")));
	ereport(LOG, (errmsg("dragonraft engine worker started for node %d on %s", dr_node_id,
	                     dr_shared->raft_address),
	              errdetail("%d groups running.", dr_engine->n_running)));

	main_loop();

	ereport(LOG, (errmsg("dragonraft engine worker for node %d shutting down", dr_node_id)));
	/* Exit code 1: a worker stopped by pg_terminate_backend is started again. */
	proc_exit(1);
}
