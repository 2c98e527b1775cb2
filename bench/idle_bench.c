/*
 * idle_bench.c - what idle groups cost (issue 11): three dr-node processes
 * (test/engine/node.c) on loopback with the engine's default timing (rtt
 * 50 ms, election 10 ticks, heartbeat 1 tick), LogDB with fsync, in-memory
 * state machines.  For 1,000 and then 10,000 groups (each on all three
 * nodes): the time to create them (from the first start command until every
 * node knows a leader for every group), then CPU (% of one core, from
 * /proc/PID/stat) and RSS (VmRSS) of each node over an idle period.
 *
 * Usage: idle_bench PATH-TO-dr-node   (IDLE_SECONDS, default 60; IDLE_GROUPS=N
 *        runs only that size; IDLE_NODE_ARGS replaces the dr-node options).
 * The last line is the headline, in the form:
 *   idle_bench: 1000 groups: cpu 0.4% rss 41 MiB per node (worst node), created in 3.1 s;
 *   10000 groups: cpu ...% rss ... MiB, created in ... s
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../test/engine/node_client.h"

struct result {
	double create_s;
	double settle_s; /* until every group was quiescent (or 60 s) */
	double cpu_pct[3];
	double rss_mib[3];
};

static struct nc_node nodes[3];
static struct nc_cluster C;
static int started[3];
static bool start_failed;

/* "cG rc" replies to the start commands. */
static void on_line(void *arg, int idx, char *line)
{
	int gid = 0, rc = 0;

	(void)arg;
	if (sscanf(line, "c%d %d", &gid, &rc) != 2 || idx < 0 || idx > 2)
		return;
	if (rc != 0) {
		fprintf(stderr, "node %d: start group %d: rc %d\n", idx + 1, gid, rc);
		start_failed = true;
	}
	started[idx]++;
}

static void kill_all(void)
{
	for (int i = 0; i < 3; i++)
		nc_kill(&C, i, SIGKILL);
}

/* Resident set size of pid in MiB; -1 if unknown. */
static double rss_mib(pid_t pid)
{
	char path[64], line[256];
	double kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmRSS: %lf kB", &kb) == 1)
			break;
	fclose(f);
	return kb < 0 ? -1 : kb / 1024;
}

/* Does every node know a leader for all n groups (and, with quiet, are they all quiescent)? */
static bool all_led(int n, bool quiet)
{
	for (int i = 0; i < 3; i++) {
		char buf[256];
		unsigned long running = 0, led = 0, here = 0, quiescent = 0;

		if (nc_call(&C, i, 10, buf, sizeof(buf), "groups") != 0 ||
		    sscanf(buf, "0 %lu %lu %lu %lu", &running, &led, &here, &quiescent) != 4 ||
		    running != (unsigned long)n || led != (unsigned long)n ||
		    (quiet && quiescent != (unsigned long)n))
			return false;
	}
	return true;
}

static int run(const char *tmp, int groups, double secs, struct result *r)
{
	char members[512];
	size_t off = 0;
	double t0, end, cpu0[3];

	memset(r, 0, sizeof(*r));
	memset(started, 0, sizeof(started));
	start_failed = false;
	for (int i = 0; i < 3; i++) {
		nodes[i].id = i + 1;
		nodes[i].port = 0;
		nodes[i].pid = 0;
		nodes[i].in_fd = nodes[i].out_fd = -1;
		snprintf(nodes[i].dir, sizeof(nodes[i].dir), "%s/g%d-n%d", tmp, groups, i + 1);
		if (nc_start(&C, i, 30) != 0)
			return -1;
	}
	for (int i = 0; i < 3; i++)
		off += (size_t)snprintf(members + off, sizeof(members) - off, " %d=%s", i + 1,
		                        nc_addr(&C, i));
	/* Create: every start command goes out at once, replies are counted. */
	t0 = nc_now();
	for (int g = 1; g <= groups; g++) {
		for (int i = 0; i < 3; i++)
			if (nc_send(&C, i, "c%d start %d%s", g, g, members) != 0)
				return -1;
		if (g % 64 == 0)
			nc_pump(&C, 0);
	}
	end = t0 + 60 + groups / 50.0;
	while ((started[0] < groups || started[1] < groups || started[2] < groups) &&
	       !start_failed && nc_now() < end)
		nc_pump(&C, 20);
	if (start_failed || started[0] < groups || started[1] < groups || started[2] < groups) {
		fprintf(stderr, "%d groups: not all started (%d %d %d)\n", groups, started[0],
		        started[1], started[2]);
		return -1;
	}
	while (!all_led(groups, false)) {
		if (nc_now() > end) {
			fprintf(stderr, "%d groups: not all have a leader after %.0f s\n", groups,
			        nc_now() - t0);
			return -1;
		}
		nc_pump(&C, 100);
	}
	r->create_s = nc_now() - t0;
	/*
	 * A few election timeouts for the dust to settle (with quiescence on: until
	 * every group is quiescent, at most 60 s, the time told), then the idle period.
	 */
	t0 = nc_now();
	nc_pump(&C, 2000);
	while (!all_led(groups, true) && nc_now() < t0 + 60)
		nc_pump(&C, 200);
	r->settle_s = nc_now() - t0;
	for (int i = 0; i < 3; i++)
		cpu0[i] = nc_cpu_seconds(nodes[i].pid);
	t0 = nc_now();
	while (nc_now() < t0 + secs)
		nc_pump(&C, 200);
	for (int i = 0; i < 3; i++) {
		double cpu1 = nc_cpu_seconds(nodes[i].pid);

		if (cpu0[i] < 0 || cpu1 < 0 || !nc_alive(&C, i)) {
			fprintf(stderr, "node %d went away\n", i + 1);
			return -1;
		}
		r->cpu_pct[i] = 100 * (cpu1 - cpu0[i]) / (nc_now() - t0);
		r->rss_mib[i] = rss_mib(nodes[i].pid);
	}
	printf("%5d groups: created in %.1f s, settled (quiescent) in %.1f s; idle %.0f s: "
	       "cpu %.2f%% %.2f%% %.2f%%, rss %.1f %.1f %.1f MiB\n",
	       groups, r->create_s, r->settle_s, secs, r->cpu_pct[0], r->cpu_pct[1], r->cpu_pct[2],
	       r->rss_mib[0], r->rss_mib[1], r->rss_mib[2]);
	fflush(stdout);
	return 0;
}

static double worst(const double v[3])
{
	double w = v[0];

	for (int i = 1; i < 3; i++)
		if (v[i] > w)
			w = v[i];
	return w;
}

int main(int argc, char **argv)
{
	static const int sizes[] = {1000, 10000};
	struct result res[2];
	char tmp[] = "/tmp/dr-idle-bench-XXXXXX", cmd[128];
	double secs = 60;
	int rc = 0, only, ran = 0;
	const char *env;
	char head[512];
	size_t off = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: idle_bench PATH-TO-dr-node\n");
		return 2;
	}
	if ((env = getenv("IDLE_SECONDS")) != NULL)
		secs = atof(env);
	if (secs <= 0 || mkdtemp(tmp) == NULL)
		return 2;
	signal(SIGPIPE, SIG_IGN);
	C.bin = argv[1];
	C.extra = "--mem --rtt 50 --election 10 --heartbeat 1 --snapshot-entries 10000 "
	          "--overhead 5000";
	if ((env = getenv("IDLE_NODE_ARGS")) != NULL)
		C.extra = env;
	C.n = 3;
	C.nodes = nodes;
	C.on_line = on_line;
	printf("idle_bench: 3 dr-node processes on loopback (%s), LogDB fsync on, idle %.0f s\n",
	       C.extra, secs);
	only = (env = getenv("IDLE_GROUPS")) != NULL ? atoi(env) : 0;
	for (int k = 0; k < 2 && rc == 0; k++) {
		if (only > 0 && sizes[k] != only)
			continue;
		rc = run(tmp, sizes[k], secs, &res[k]);
		kill_all();
		if (rc != 0)
			break;
		off += (size_t)snprintf(head + off, sizeof(head) - off,
		                        "%s%d groups: cpu %.1f%% rss %.0f MiB%s, created in %.1f s",
		                        ran > 0 ? "; " : "", sizes[k], worst(res[k].cpu_pct),
		                        worst(res[k].rss_mib),
		                        ran == 0 ? " per node (worst node)" : "", res[k].create_s);
		ran++;
	}
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmp);
	if (rc != 0 || ran == 0) {
		printf("idle_bench: FAILED\n");
		return 1;
	}
	printf("idle_bench: %s\n", head);
	return 0;
}
