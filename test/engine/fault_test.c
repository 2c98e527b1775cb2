/*
 * fault_test.c - dr-fault-test: the storage fails under a running engine
 * (issue 11).  One dr-node (single-member groups, so it commits alone) runs
 * with libdr_faultfs.so preloaded over its LogDB directory and proposes
 * 4 KiB entries over four groups, 32 in flight, until its storage fails:
 *
 *   disk full       every write after 4 MiB fails with ENOSPC (the write that
 *                   crosses the limit is short, leaving a torn WAL record)
 *   fsync failure   the 201st fsync fails with EIO and the later ones succeed
 *                   again, so a LogDB that retried would go on
 *
 * Then the process must be alive (no abort inside RocksDB), every proposal
 * in flight must have an outcome, a new one is refused with
 * ENGINE_ERR_FAILED, the engine's message names the cause, every group's
 * status says ENGINE_GROUP_ENGINE_FAILED, and the process uses no CPU while
 * it waits.  After kill -9 and a restart without the fault, every
 * acknowledged proposal must be in the state machine's file.
 *
 * Usage: dr-fault-test PATH-TO-dr-node PATH-TO-libdr_faultfs.so
 * Ends with "N passed, N failed"; exit status 1 if anything failed.
 */
#define _GNU_SOURCE
#include <ftw.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "file_sm.h"
#include "node_client.h"

#define GROUPS    4
#define MAX_KEYS  20000
#define IN_FLIGHT 32
#define PAD       4096

#define RC_OK                      0
#define RC_BUSY                    -8
#define RC_FAILED                  -19 /* ENGINE_ERR_FAILED */
#define ENGINE_GROUP_ENGINE_FAILED 3

enum kstate { K_FREE, K_PENDING, K_ACKED, K_REFUSED };

static struct nc_cluster C;
static struct nc_node node;
static unsigned char keys[MAX_KEYS + 1];
static int outstanding, n_failed_replies;
static long n_acked;
static bool bad_rc;
static char why[1024];
static int passed, failed;

static void fail_why(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail_why(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
}

static void report(const char *name, bool ok)
{
	if (ok) {
		passed++;
		printf("ok   %s\n", name);
	} else {
		failed++;
		printf("FAIL %s: %s\n", name, why);
	}
	fflush(stdout);
}

/* "pKEY rc index leader": the outcome of a proposal. */
static void on_line(void *arg, int idx, char *line)
{
	unsigned long long key;
	int rc;

	(void)arg;
	(void)idx;
	if (sscanf(line, "p%llu %d", &key, &rc) != 2 || key == 0 || key > MAX_KEYS ||
	    keys[key] != K_PENDING)
		return;
	outstanding--;
	if (rc == RC_OK) {
		keys[key] = K_ACKED;
		n_acked++;
		return;
	}
	keys[key] = K_REFUSED;
	if (rc == RC_FAILED)
		n_failed_replies++;
	else if (rc != RC_BUSY)
		bad_rc = true;
}

/* Wait until every group is writable (a single member elects itself). */
static bool all_writable(void)
{
	double end = nc_now() + 20;

	for (int g = 1; g <= GROUPS; g++) {
		struct nc_status st;

		while (nc_status(&C, 0, (unsigned long long)g, &st) != 0 || st.rc != 0 ||
		       !st.writable || st.applied != st.commit) {
			if (nc_now() > end) {
				fail_why("group %d not writable after 20 s", g);
				return false;
			}
			nc_pump(&C, 20);
		}
	}
	return true;
}

static int collect(void *arg, const struct file_sm_record *r)
{
	unsigned *seen = arg;
	uint64_t k, nk;

	if (r->len < 16)
		return 0;
	memcpy(&k, r->data, 8);
	memcpy(&nk, r->data + 8, 8);
	if (k == 0 || k > MAX_KEYS || nk != ~k)
		return 0;
	seen[k]++;
	return 0;
}

/* After a restart without the fault: every acknowledged key applied exactly once. */
static bool acked_survived(void)
{
	static unsigned seen[MAX_KEYS + 1];
	char path[700];

	memset(seen, 0, sizeof(seen));
	for (int g = 1; g <= GROUPS; g++) {
		uint64_t valid, count, digest;
		raft_index last;

		snprintf(path, sizeof(path), "%s/sm-%d", node.dir, g);
		if (file_sm_scan(path, collect, seen, &valid, &last, &count, &digest) != 0) {
			fail_why("cannot read %s", path);
			return false;
		}
	}
	for (unsigned k = 1; k <= MAX_KEYS; k++) {
		if (keys[k] == K_ACKED && seen[k] != 1) {
			fail_why("acknowledged key %u applied %u times after the restart", k,
			         seen[k]);
			return false;
		}
		if (seen[k] > 1) {
			fail_why("key %u applied %u times", k, seen[k]);
			return false;
		}
	}
	return true;
}

static int rm_any(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* One scenario: fault is "DR_FAULT_WRITE_BYTES=..." or "DR_FAULT_SYNCS=...". */
static void scenario(const char *name, const char *shim, const char *fault_var,
                     const char *fault_val, const char *cause)
{
	char base[] = "/tmp/dr-fault-XXXXXX", logdb[600], reply[1024], title[128];
	uint64_t issued = 0;
	double end, cpu0, cpu1;
	bool ok = true;

	memset(keys, 0, sizeof(keys));
	outstanding = n_failed_replies = 0;
	n_acked = 0;
	bad_rc = false;
	if (mkdtemp(base) == NULL) {
		perror("mkdtemp");
		exit(2);
	}
	memset(&node, 0, sizeof(node));
	node.id = 1;
	node.in_fd = node.out_fd = -1;
	snprintf(node.dir, sizeof(node.dir), "%s/n1", base);
	snprintf(logdb, sizeof(logdb), "%s/logdb", node.dir);

	/* 1. start under the fault, four single-member groups */
	setenv("LD_PRELOAD", shim, 1);
	setenv("DR_FAULT_DIR", logdb, 1);
	setenv(fault_var, fault_val, 1);
	setenv("ASAN_OPTIONS", "verify_asan_link_order=0", 1);
	if (nc_start(&C, 0, 20) != 0) {
		fail_why("dr-node did not start under the fault shim");
		ok = false;
	}
	unsetenv("LD_PRELOAD");
	unsetenv("DR_FAULT_DIR");
	unsetenv(fault_var);
	for (int g = 1; ok && g <= GROUPS; g++)
		if (nc_call(&C, 0, 10, reply, sizeof(reply), "start %d 1=%s", g, nc_addr(&C, 0)) !=
		            0 ||
		    atoi(reply) != 0) {
			fail_why("start group %d: %s", g, reply);
			ok = false;
		}
	ok = ok && all_writable();

	/* 2. propose until the storage fails */
	end = nc_now() + 60;
	while (ok && n_failed_replies == 0 && issued < MAX_KEYS && nc_now() < end &&
	       nc_alive(&C, 0)) {
		while (outstanding < IN_FLIGHT && issued < MAX_KEYS) {
			issued++;
			keys[issued] = K_PENDING;
			outstanding++;
			nc_send(&C, 0, "p%" PRIu64 " propose %d %" PRIu64 " %d", issued,
			        (int)(issued % GROUPS) + 1, issued, PAD);
		}
		nc_pump(&C, 5);
	}
	if (ok && n_failed_replies == 0) {
		fail_why("no proposal failed after %" PRIu64 " (%ld acknowledged)%s", issued,
		         n_acked, nc_alive(&C, 0) ? "" : "; the node died");
		ok = false;
	}
	/* 3. every proposal in flight has an outcome, the process lives */
	end = nc_now() + 10;
	while (ok && outstanding > 0 && nc_now() < end && nc_alive(&C, 0))
		nc_pump(&C, 20);
	if (ok && !nc_alive(&C, 0)) {
		fail_why("the node died after the storage failed (an abort inside RocksDB?)");
		ok = false;
	}
	if (ok && outstanding > 0) {
		fail_why("%d proposals without an outcome 10 s after the failure", outstanding);
		ok = false;
	}
	if (ok && bad_rc) {
		fail_why("a proposal completed with an rc other than ok, busy or failed");
		ok = false;
	}
	/* 4. the engine says why; every group's status says so */
	if (ok && (nc_call(&C, 0, 5, reply, sizeof(reply), "engine") != 0 || reply[0] != '1' ||
	           strstr(reply, cause) == NULL || strstr(reply, "the engine stopped") == NULL)) {
		fail_why("expected the engine failed with \"%s\", got: %s", cause, reply);
		ok = false;
	}
	for (int g = 1; ok && g <= GROUPS; g++) {
		struct nc_status st;

		if (nc_status(&C, 0, (unsigned long long)g, &st) != 0 ||
		    st.state != ENGINE_GROUP_ENGINE_FAILED) {
			fail_why("group %d: status state %d, expected the engine's failure", g,
			         st.state);
			ok = false;
		}
	}
	if (ok && (nc_call(&C, 0, 5, reply, sizeof(reply), "propose 1 %d", MAX_KEYS + 1) != 0 ||
	           atoi(reply) != RC_FAILED)) {
		fail_why("a new proposal got '%s', expected %d", reply, RC_FAILED);
		ok = false;
	}
	/* 5. it waits without spinning */
	cpu0 = ok ? nc_cpu_seconds(node.pid) : 0;
	if (ok)
		nc_pump(&C, 1000);
	cpu1 = ok ? nc_cpu_seconds(node.pid) : 0;
	if (ok && (cpu0 < 0 || cpu1 - cpu0 > 0.2)) {
		fail_why("the stopped node used %.2f s of CPU in 1 s", cpu1 - cpu0);
		ok = false;
	}
	/* 6. kill -9, restart with room: everything acknowledged is there */
	nc_kill(&C, 0, SIGKILL);
	if (ok && nc_start(&C, 0, 20) != 0) {
		fail_why("dr-node did not restart without the fault");
		ok = false;
	}
	ok = ok && all_writable();
	nc_kill(&C, 0, SIGKILL);
	ok = ok && acked_survived();
	snprintf(title, sizeof(title), "%s: %ld acknowledged, then the engine stopped", name,
	         n_acked);
	report(title, ok);
	nftw(base, rm_any, 16, FTW_DEPTH | FTW_PHYS);
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: dr-fault-test PATH-TO-dr-node PATH-TO-libdr_faultfs.so\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	C.bin = argv[1];
	C.extra = "--rtt 10 --election 10";
	C.n = 1;
	C.nodes = &node;
	C.on_line = on_line;
	scenario("disk full (ENOSPC after 4 MiB)", argv[2], "DR_FAULT_WRITE_BYTES", "4194304",
	         "No space left on device");
	scenario("fsync failure (EIO once, at the 201st)", argv[2], "DR_FAULT_SYNCS", "200",
	         "Input/output error");
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
