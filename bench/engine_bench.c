/*
 * engine_bench.c - the engine over real processes: three dr-node processes
 * (test/engine/node.c) on loopback TCP, each with its own LogDB (fsync on)
 * and in-memory KV state machines (--mem).  For 1, 8 and 48 groups, every
 * node keeps OUT 16-byte proposals in flight on each group it leads (its
 * "bench" command) for SECONDS; the driver merges the nodes' counts and
 * latency histograms: committed proposals/s and p50/p99 latency (proposal
 * to callback on the leader, i.e. committed on a quorum and applied there).
 *
 * Usage: engine_bench PATH-TO-dr-node [seconds [in-flight total]]
 *        (BENCH_SECONDS, BENCH_INFLIGHT and BENCH_NODE_ARGS, the dr-node options,
 *        also read; BENCH_GROUPS=N runs only the N-group size).  Last line: headline.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../test/engine/node_client.h"
#include "../test/engine/node_proto.h"

struct result {
	double rate, p50_ms, p99_ms;
	uint64_t ok, failed;
};

static struct nc_node nodes[3];
static struct nc_cluster C;

static double percentile(const uint64_t *hist, uint64_t total, double q)
{
	uint64_t want = (uint64_t)(q * (double)total), seen = 0;

	for (int b = 0; b < NODE_BENCH_BUCKETS; b++) {
		seen += hist[b];
		if (seen > want && hist[b] > 0)
			return (double)(node_bench_bucket_us(b) + node_bench_bucket_us(b + 1)) / 2 /
			       1000.0;
	}
	return 0;
}

static void kill_all(void)
{
	for (int i = 0; i < 3; i++)
		nc_kill(&C, i, SIGKILL);
}

static uint64_t hist[NODE_BENCH_BUCKETS];
static uint64_t got_ok, got_failed;
static bool done[3];

/* "benchI rc ok failed b:count ..." from node I. */
static void on_line(void *arg, int idx, char *line)
{
	char *save = NULL, *t;
	int i, rc;
	unsigned long long ok, failed;
	int n = 0;

	(void)arg;
	(void)idx;
	if (sscanf(line, "bench%d %d %llu %llu%n", &i, &rc, &ok, &failed, &n) != 4 || i < 0 ||
	    i > 2 || rc != 0)
		return;
	got_ok += ok;
	got_failed += failed;
	for (t = strtok_r(line + n, " ", &save); t != NULL; t = strtok_r(NULL, " ", &save)) {
		int b;
		unsigned long long c;

		if (sscanf(t, "%d:%llu", &b, &c) == 2 && b >= 0 && b < NODE_BENCH_BUCKETS)
			hist[b] += c;
	}
	done[i] = true;
}

static int run(const char *tmp, int groups, double secs, int inflight, struct result *r)
{
	char members[512], buf[256];
	size_t off = 0;
	int out = inflight / groups;
	double end;

	if (out < 16)
		out = 16;
	memset(r, 0, sizeof(*r));
	memset(hist, 0, sizeof(hist));
	got_ok = got_failed = 0;
	for (int i = 0; i < 3; i++) {
		nodes[i].id = i + 1;
		nodes[i].port = 0;
		nodes[i].pid = 0;
		nodes[i].in_fd = nodes[i].out_fd = -1;
		snprintf(nodes[i].dir, sizeof(nodes[i].dir), "%s/g%d-n%d", tmp, groups, i + 1);
		done[i] = false;
		if (nc_start(&C, i, 30) != 0)
			return -1;
	}
	for (int i = 0; i < 3; i++)
		off += (size_t)snprintf(members + off, sizeof(members) - off, " %d=%s", i + 1,
		                        nc_addr(&C, i));
	for (int g = 1; g <= groups; g++)
		for (int i = 0; i < 3; i++)
			if (nc_call(&C, i, 10, buf, sizeof(buf), "start %d%s", g, members) != 0 ||
			    atoi(buf) != 0) {
				fprintf(stderr, "start group %d on node %d failed\n", g, i + 1);
				return -1;
			}
	/* Every group has a writable leader. */
	end = nc_now() + 30;
	for (int g = 1; g <= groups; g++) {
		bool led = false;

		while (!led && nc_now() < end) {
			for (int i = 0; i < 3 && !led; i++) {
				struct nc_status st;

				led = nc_status(&C, i, (unsigned long long)g, &st) == 0 &&
				      st.rc == 0 && st.role == 3 && st.writable;
			}
			if (!led)
				nc_pump(&C, 20);
		}
		if (!led) {
			fprintf(stderr, "group %d has no leader\n", g);
			return -1;
		}
	}
	for (int i = 0; i < 3; i++)
		if (nc_send(&C, i, "bench%d bench %.3f %d", i, secs, out) != 0)
			return -1;
	end = nc_now() + secs + 30;
	while (!(done[0] && done[1] && done[2]) && nc_now() < end)
		nc_pump(&C, 50);
	if (!(done[0] && done[1] && done[2])) {
		fprintf(stderr, "bench replies missing\n");
		return -1;
	}
	r->ok = got_ok;
	r->failed = got_failed;
	r->rate = (double)got_ok / secs;
	r->p50_ms = percentile(hist, got_ok, 0.50);
	r->p99_ms = percentile(hist, got_ok, 0.99);
	printf("%2d groups, %4d in flight per group: %9.0f proposals/s  p50 %7.2f ms  p99 %7.2f ms"
	       "  (%" PRIu64 " committed, %" PRIu64 " failed)\n",
	       groups, out, r->rate, r->p50_ms, r->p99_ms, got_ok, got_failed);
	fflush(stdout);
	return 0;
}

int main(int argc, char **argv)
{
	static const int sizes[] = {1, 8, 48};
	struct result res[3];
	char tmp[] = "/tmp/dr-engine-bench-XXXXXX", cmd[128];
	double secs = 3;
	int inflight = 4096, rc = 0, only;
	const char *env;

	if (argc < 2) {
		fprintf(stderr, "usage: engine_bench PATH-TO-dr-node [seconds [in-flight]]\n");
		return 2;
	}
	if ((env = getenv("BENCH_SECONDS")) != NULL)
		secs = atof(env);
	if ((env = getenv("BENCH_INFLIGHT")) != NULL)
		inflight = atoi(env);
	if (argc > 2)
		secs = atof(argv[2]);
	if (argc > 3)
		inflight = atoi(argv[3]);
	if (secs <= 0 || inflight <= 0 || mkdtemp(tmp) == NULL)
		return 2;
	signal(SIGPIPE, SIG_IGN);
	C.bin = argv[1];
	C.extra = "--mem --rtt 10 --election 30 --snapshot-entries 100000 --overhead 10000";
	if ((env = getenv("BENCH_NODE_ARGS")) != NULL)
		C.extra = env;
	C.n = 3;
	C.nodes = nodes;
	C.on_line = on_line;
	printf("engine_bench: 3 dr-node processes on loopback, LogDB fsync on, in-memory KV, "
	       "16-byte proposals, %.1f s per run, %d in flight in all\n",
	       secs, inflight);
	only = (env = getenv("BENCH_GROUPS")) != NULL ? atoi(env) : 0;
	for (int k = 0; k < 3 && rc == 0; k++) {
		if (only > 0 && sizes[k] != only)
			continue;
		rc = run(tmp, sizes[k], secs, inflight, &res[k]);
		kill_all();
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmp);
	if (rc != 0) {
		printf("engine_bench: FAILED\n");
		return 1;
	}
	if (only > 0)
		return 0; /* one size was asked for: its line above is the result */
	printf("engine_bench: 1 group %.0f/s (p50 %.2f ms, p99 %.2f ms); 8 groups %.0f/s "
	       "(p50 %.2f, p99 %.2f); 48 groups %.0f/s (p50 %.2f ms, p99 %.2f ms) "
	       "[goal 300000/s at 48 groups]\n",
	       res[0].rate, res[0].p50_ms, res[0].p99_ms, res[1].rate, res[1].p50_ms, res[1].p99_ms,
	       res[2].rate, res[2].p50_ms, res[2].p99_ms);
	return 0;
}
