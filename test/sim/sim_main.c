/*
 * sim_main.c - dragonraft-sim: run seeds S..S+K-1 of the deterministic Raft
 * simulator, print each failing seed with the violated property, and end with
 * "N passed, N failed".
 *
 *   dragonraft-sim --seed-start S --runs K [--nodes 3|5] [--steps M] [--trace]
 *                  [--stop-at-fail] [--no-conf-commit] [--stale-commit] [--lazy-conf-commit]
 *                  [--defer | --no-defer] [--two-remove] [--early-conf-appends]
 *
 * Without --nodes, odd seeds run 5 nodes and even seeds 3.  Without --defer or
 * --no-defer, half the seeds (drawn from the seed) defer leaders' syncs.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

#define DEFAULT_STEPS 30000

static void usage(FILE *f)
{
	fprintf(f, "usage: dragonraft-sim --seed-start S --runs K [--nodes 3|5] [--steps M] "
	           "[--trace] [--stop-at-fail] [--no-conf-commit] [--stale-commit] "
	           "[--lazy-conf-commit] [--defer | --no-defer] [--two-remove]\n"
	           "       [--early-conf-appends]\n");
}

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || !*s || *s == '-')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end)
		return -1;
	*out = v;
	return 0;
}

int main(int argc, char **argv)
{
	uint64_t start = 1, runs = 1, steps = DEFAULT_STEPS, nodes = 0;
	uint64_t passed = 0, failed = 0;
	bool trace = false, stop = false, no_conf_commit = false, stale_commit = false,
	     lazy_conf_commit = false, two_remove = false, early_conf_appends = false;
	int defer = -1;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		uint64_t *dst = NULL;

		if (!strcmp(a, "--trace")) {
			trace = true;
			continue;
		}
		if (!strcmp(a, "--stop-at-fail")) {
			stop = true;
			continue;
		}
		if (!strcmp(a, "--no-conf-commit")) {
			no_conf_commit = true;
			continue;
		}
		if (!strcmp(a, "--stale-commit")) {
			stale_commit = true;
			continue;
		}
		if (!strcmp(a, "--lazy-conf-commit")) {
			lazy_conf_commit = true;
			continue;
		}
		if (!strcmp(a, "--early-conf-appends")) {
			early_conf_appends = true;
			continue;
		}
		if (!strcmp(a, "--two-remove")) {
			two_remove = true;
			continue;
		}
		if (!strcmp(a, "--defer") || !strcmp(a, "--no-defer")) {
			defer = a[2] == 'd';
			continue;
		}
		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			usage(stdout);
			return 0;
		}
		if (!strcmp(a, "--seed-start"))
			dst = &start;
		else if (!strcmp(a, "--runs"))
			dst = &runs;
		else if (!strcmp(a, "--steps"))
			dst = &steps;
		else if (!strcmp(a, "--nodes"))
			dst = &nodes;
		if (!dst || i + 1 >= argc || parse_u64(argv[i + 1], dst) != 0) {
			fprintf(stderr, "dragonraft-sim: bad argument '%s'\n", a);
			usage(stderr);
			return 2;
		}
		i++;
	}
	if (nodes != 0 && nodes != 3 && nodes != 5) {
		fprintf(stderr, "dragonraft-sim: --nodes must be 3 or 5\n");
		return 2;
	}
	for (uint64_t k = 0; k < runs && !(stop && failed); k++) {
		struct sim_opts o = {
		        .seed = start + k,
		        .nodes = nodes               ? (unsigned)nodes
		                 : ((start + k) & 1) ? 5
		                                     : 3,
		        .steps = steps,
		        .trace = trace,
		        .no_conf_commit = no_conf_commit,
		        .stale_commit = stale_commit,
		        .lazy_conf_commit = lazy_conf_commit,
		        .defer = defer,
		        .two_remove = two_remove,
		        .early_conf_appends = early_conf_appends,
		};
		char prop[64], why[640];

		if (sim_run(&o, prop, sizeof(prop), why, sizeof(why))) {
			passed++;
		} else {
			failed++;
			printf("FAIL seed %" PRIu64 " nodes %u: %s: %s\n", o.seed, o.nodes, prop,
			       why);
		}
		fflush(stdout);
	}
	printf("%" PRIu64 " passed, %" PRIu64 " failed\n", passed, failed);
	return failed ? 1 : 0;
}
