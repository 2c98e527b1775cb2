/*
 * engine_inproc_bench.c - the engine's own cost: three engines in ONE process
 * (fake network), 16-byte proposals kept in flight on every group's leader,
 * for 1, 8 and 48 groups, over the in-memory fake storage and over RocksDB
 * (LogDB, with and without fsync).  Reports committed proposals/s, CPU per
 * proposal (all three replicas together) and p50/p99 proposal latency.
 *
 * This is not the multi-process loopback benchmark of the issue (which also
 * pays for TCP); it measures the engine + raft + storage path alone.
 *
 * Usage: engine_inproc_bench [proposals per run] [in flight per group]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cluster.h"
#include "engine/engine_logdb.h"
#include "logdb/logdb.h"

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- LogDB storage for the cluster ---- */

static struct {
	struct logdb *db;
	struct engine_logdb *el;
} dbs[CL_MAX_NODES + 1];
static bool db_sync;

static int open_db(struct cluster *c, raft_id id, struct engine_storage_ops *ops)
{
	struct logdb_config cfg;
	char dir[512], err[256];

	memset(&cfg, 0, sizeof(cfg));
	snprintf(dir, sizeof(dir), "%s/logdb-%llu", c->dir, (unsigned long long)id);
	cfg.dir = dir;
	cfg.no_sync = !db_sync;
	if (logdb_open(&cfg, &dbs[id].db, err, sizeof(err)) != LOGDB_OK) {
		fprintf(stderr, "logdb_open: %s\n", err);
		return ENGINE_ERR_STORAGE;
	}
	if (engine_logdb_create(dbs[id].db, id, &dbs[id].el) != ENGINE_OK) {
		logdb_close(dbs[id].db);
		return ENGINE_ERR_NOMEM;
	}
	engine_logdb_ops(dbs[id].el, ops);
	return ENGINE_OK;
}

static void close_db(struct cluster *c, raft_id id)
{
	(void)c;
	engine_logdb_destroy(dbs[id].el);
	logdb_close(dbs[id].db);
}

static const struct cluster_storage logdb_storage = {open_db, close_db};

/* ---- one run ---- */

struct slot {
	double t0;
	int gi;
};

static double *lat;
static long n_lat, n_failed;
static int *inflight;

static void done_cb(void *ctx, const struct engine_result *res)
{
	struct slot *s = ctx;

	if (res->rc == ENGINE_OK)
		lat[n_lat++] = now_s() - s->t0;
	else
		n_failed++;
	inflight[s->gi]--;
}

static bool all_led(struct cluster *c, void *arg)
{
	(void)arg;
	for (int g = 0; g < c->n_groups; g++)
		if (cluster_leader(c, g) == 0)
			return false;
	return true;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double run(const char *label, const struct cluster_storage *st, int groups, long total,
                  int window)
{
	struct engine_config cfg;
	struct cluster c;
	struct slot *slots = calloc((size_t)total, sizeof(*slots));
	raft_id lead[CL_MAX_GROUPS];
	long sent = 0;
	double t0, c0, wall, cpu, rate;
	uint8_t buf[16] = {0};

	lat = calloc((size_t)total, sizeof(*lat));
	inflight = calloc((size_t)groups, sizeof(*inflight));
	if (slots == NULL || lat == NULL || inflight == NULL)
		exit(1);
	n_lat = n_failed = 0;
	memset(&cfg, 0, sizeof(cfg));
	cfg.election_rtt = 10;
	cfg.heartbeat_rtt = 1;
	cfg.snapshot_entries = 10000;
	cfg.compaction_overhead = 5000;
	if (cluster_init_with(&c, st, 3, 3, groups, &cfg, 0) != ENGINE_OK ||
	    !cluster_run(&c, all_led, NULL, 500)) {
		fprintf(stderr, "%s: cluster did not start\n", label);
		exit(1);
	}
	for (int g = 0; g < groups; g++)
		lead[g] = cluster_leader(&c, g);
	t0 = now_s();
	c0 = cpu_s();
	while (n_lat + n_failed < total) {
		for (int g = 0; g < groups; g++) {
			while (inflight[g] < window && sent < total) {
				struct slot *s = &slots[sent];

				s->t0 = now_s();
				s->gi = g;
				memcpy(buf, &sent, sizeof(sent));
				if (engine_propose(c.nodes[lead[g]].e, c.group_ids[g], buf, 16,
				                   done_cb, s) != ENGINE_OK)
					break;
				inflight[g]++;
				sent++;
			}
		}
		cluster_step(&c);
		if (sent == total)
			cluster_tick(&c); /* flush the tail (heartbeats carry commit) */
	}
	wall = now_s() - t0;
	cpu = cpu_s() - c0;
	rate = (double)n_lat / wall;
	qsort(lat, (size_t)n_lat, sizeof(*lat), cmp_double);
	printf("%-16s %2d groups: %8.0f proposals/s, %6.0f ns CPU/proposal (3 replicas), "
	       "p50 %.2f ms, p99 %.2f ms%s\n",
	       label, groups, rate, cpu * 1e9 / (double)n_lat, lat[n_lat / 2] * 1e3,
	       lat[(size_t)((double)n_lat * 0.99)] * 1e3, n_failed ? " (failures!)" : "");
	cluster_destroy(&c);
	free(slots);
	free(lat);
	free(inflight);
	return rate;
}

int main(int argc, char **argv)
{
	long total = argc > 1 ? atol(argv[1]) : 200000;
	int window = argc > 2 ? atoi(argv[2]) : 256;
	static const int groups[] = {1, 8, 48};
	double fake48 = 0, db48 = 0, sync48 = 0;

	setenv("DR_ENGINE_TEST_ROOT", "/tmp", 0); /* the disk's fsyncs, not tmpfs's */
	for (int i = 0; i < 3; i++)
		fake48 = run("fake storage", NULL, groups[i], total, window);
	for (int i = 0; i < 3; i++)
		db48 = run("logdb no-sync", &logdb_storage, groups[i], total, window);
	db_sync = true;
	sync48 = run("logdb fsync", &logdb_storage, 48, total / 4, window);
	printf("engine in-process, 48 groups: %.0f proposals/s (fake storage), %.0f (LogDB), "
	       "%.0f (LogDB with fsync)\n",
	       fake48, db48, sync48);
	return 0;
}
