/*
 * procs_test.c - dr-procs-test: engines in separate processes on loopback
 * (issue 6).  It spawns dr-node processes (node.c) with data directories in
 * a mkdtemp directory and drives them through their stdin/stdout protocol.
 *
 * Part 1, three nodes and eight groups: elect; propose 10,000 entries and see
 * every replica apply the same sequence; kill -9 a follower, restart it and
 * see it catch up; kill -9 a leader, see a new one elected and proposals
 * continue; the same once every group is quiescent (idle groups stop
 * heartbeating, so only the broken connections tell); add a fourth node to a group after compaction
 * (it catches up through a snapshot); transfer leadership to it; remove a member.
 *
 * Part 2, three fresh nodes and four groups: proposals flow while 20 (or
 * PROCS_KILLS) kill -9s of random nodes happen, each node restarted at once.
 * Every proposal is recorded with its outcome; at the end every replica's
 * state machine file must hold every acknowledged proposal exactly once, no
 * proposal that was refused (never appended), no key twice, and all replicas
 * of a group the same sequence.
 *
 * Usage: dr-procs-test PATH-TO-dr-node [seed]   (PROCS_SEED, PROCS_KILLS also read)
 * Ends with "N passed, N failed"; exit status 1 if anything failed.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "file_sm.h"
#include "node_client.h"

#define MAX_NODES  4
#define MAX_GROUPS 8
#define MAX_PROPS  (1 << 21)
#define RESERVE    20000 /* keys kept for the last burst after the kill loop */

/* engine_rc values the protocol carries (engine.h). */
#define RC_OK         0
#define RC_NOT_LEADER -5
#define RC_DROPPED    -6
#define RC_BUSY       -8

enum pstate { P_FREE, P_PENDING, P_ACKED, P_REFUSED, P_UNKNOWN };

struct prop {
	unsigned char state;
	unsigned char gi;
	signed char node;
};

static struct nc_cluster C;
static struct nc_node nodes[MAX_NODES];
static struct prop *props; /* indexed by key */
static uint64_t next_key = 1;
static int n_groups;
static uint64_t gids[MAX_GROUPS];
static int hint[MAX_GROUPS]; /* node index believed to lead */
static int outstanding;
static long n_acked, n_refused, n_unknown;
static int passed, failed;
static char why[512];
static unsigned rng_state;

static unsigned rnd(void)
{
	rng_state = rng_state * 1103515245u + 12345u;
	return (rng_state >> 8) & 0xFFFFFF;
}

static void fail_why(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail_why(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
}

static void report(const char *name, bool ok, double t0)
{
	if (ok) {
		passed++;
		printf("ok   %-50s (%.1f s)\n", name, nc_now() - t0);
	} else {
		failed++;
		printf("FAIL %-50s: %s\n", name, why);
	}
	fflush(stdout);
}

/* ---- proposals ---- */

static void settle(uint64_t key, int rc, unsigned long long leader)
{
	struct prop *p = &props[key];
	int gi = p->gi;

	if (p->state != P_PENDING)
		return;
	outstanding--;
	if (rc == RC_OK) {
		p->state = P_ACKED;
		n_acked++;
		return;
	}
	if (rc == RC_NOT_LEADER || rc == RC_DROPPED || rc == RC_BUSY || rc == -3 /* no group */) {
		p->state = P_REFUSED;
		n_refused++;
	} else {
		p->state = P_UNKNOWN; /* timeout, leadership change in flight, stopped */
		n_unknown++;
	}
	if (rc == RC_NOT_LEADER && leader >= 1 && leader <= (unsigned long long)C.n)
		hint[gi] = (int)leader - 1;
	else
		hint[gi] = (int)(rnd() % (unsigned)C.n);
}

static void on_line(void *arg, int idx, char *line)
{
	uint64_t key;
	int rc;
	unsigned long long index, leader;

	(void)arg;
	(void)idx;
	if (line[0] != 'p' ||
	    sscanf(line + 1, "%" SCNu64 " %d %llu %llu", &key, &rc, &index, &leader) != 4 ||
	    key == 0 || key >= next_key)
		return;
	settle(key, rc, leader);
}

/* Node idx died: its pending proposals' fate is unknown. */
static void orphan(int idx)
{
	for (uint64_t k = 1; k < next_key; k++)
		if (props[k].state == P_PENDING && props[k].node == idx) {
			props[k].state = P_UNKNOWN;
			n_unknown++;
			outstanding--;
		}
}

/* Issue proposals up to window outstanding, over groups [g0, g1). */
static void top_up(int window, int g0, int g1)
{
	while (outstanding < window && next_key < MAX_PROPS) {
		int gi = g0 + (int)(next_key % (uint64_t)(g1 - g0));
		int idx = hint[gi];
		uint64_t key = next_key;

		if (!nc_alive(&C, idx)) {
			hint[gi] = (int)(rnd() % (unsigned)C.n);
			if (!nc_alive(&C, hint[gi]))
				return;
			idx = hint[gi];
		}
		props[key].gi = (unsigned char)gi;
		props[key].node = (signed char)idx;
		props[key].state = P_PENDING;
		next_key++;
		outstanding++;
		if (nc_send(&C, idx, "p%" PRIu64 " propose %" PRIu64 " %" PRIu64, key, gids[gi],
		            key) != 0) {
			props[key].state = P_REFUSED; /* never reached the node */
			n_refused++;
			outstanding--;
			return;
		}
	}
}

/* Keep proposing to groups [g0, g1) until `want` more are acknowledged. */
static bool propose_acked(long want, int window, int g0, int g1, double seconds)
{
	long goal = n_acked + want;
	double end = nc_now() + seconds;

	while (n_acked < goal && nc_now() < end) {
		int w = window;

		if (goal - n_acked < w)
			w = (int)(goal - n_acked);
		top_up(w, g0, g1);
		nc_pump(&C, 10);
		for (int i = 0; i < C.n; i++)
			if (!nc_alive(&C, i))
				orphan(i);
	}
	/* Let the last ones settle. */
	while (outstanding > 0 && nc_now() < end + 10)
		nc_pump(&C, 10);
	if (n_acked < goal) {
		fail_why("%ld of %ld proposals acknowledged in %.0f s", want - (goal - n_acked),
		         want, seconds);
		return false;
	}
	return true;
}

/* ---- cluster state ---- */

/* The node index whose status says it leads group gi (writable), or -1. */
static int leader_of(int gi, struct nc_status *out)
{
	struct nc_status st;

	for (int i = 0; i < C.n; i++) {
		if (!nc_alive(&C, i) || nc_status(&C, i, gids[gi], &st) != 0 || st.rc != 0)
			continue;
		if (st.role == 3 && st.writable) {
			if (out != NULL)
				*out = st;
			return i;
		}
	}
	return -1;
}

static bool wait_leaders(int g0, int g1, double seconds)
{
	double end = nc_now() + seconds;

	for (int gi = g0; gi < g1; gi++) {
		int l;

		while ((l = leader_of(gi, NULL)) < 0 && nc_now() < end)
			nc_pump(&C, 50);
		if (l < 0) {
			fail_why("no leader for group %" PRIu64 " after %.0f s", gids[gi], seconds);
			return false;
		}
		hint[gi] = l;
	}
	return true;
}

/* Every live member of groups [g0, g1) is quiescent (dr-node's default: after 60 idle ticks). */
static bool wait_quiescent(int g0, int g1, double seconds)
{
	double end = nc_now() + seconds;

	for (int gi = g0; gi < g1; gi++)
		for (int i = 0; i < C.n; i++) {
			struct nc_status st;

			while (nc_alive(&C, i) &&
			       (nc_status(&C, i, gids[gi], &st) != 0 || st.rc != 0 ||
			        !st.quiescent) &&
			       nc_now() < end)
				nc_pump(&C, 50);
			if (nc_alive(&C, i) && nc_now() >= end) {
				fail_why("group %" PRIu64 " not quiescent on node %d after %.0f s",
				         gids[gi], nodes[i].id, seconds);
				return false;
			}
		}
	return true;
}

static bool is_voter(const char *voters, int id)
{
	char buf[256], *save = NULL;

	snprintf(buf, sizeof(buf), "%s", voters);
	for (char *t = strtok_r(buf, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save))
		if (atoi(t) == id)
			return true;
	return false;
}

/* Every voter of group gi applied the leader's commit with the leader's digest. */
static bool group_converged(int gi)
{
	struct nc_status ls, st;
	int l = leader_of(gi, &ls);

	if (l < 0)
		return false;
	for (int i = 0; i < C.n; i++) {
		if (!is_voter(ls.voters, nodes[i].id))
			continue;
		if (!nc_alive(&C, i) || nc_status(&C, i, gids[gi], &st) != 0 || st.rc != 0 ||
		    st.applied != ls.commit || st.digest != ls.digest)
			return false;
	}
	return true;
}

static bool wait_converged(int g0, int g1, double seconds)
{
	double end = nc_now() + seconds;

	for (int gi = g0; gi < g1; gi++) {
		while (!group_converged(gi)) {
			if (nc_now() > end) {
				fail_why("group %" PRIu64 " replicas did not converge in %.0f s",
				         gids[gi], seconds);
				return false;
			}
			nc_pump(&C, 50);
		}
	}
	return true;
}

/* ---- sequence check over the state machine files ---- */

struct scan {
	uint8_t *seen;
	int gi;
	long bad;
	char msg[256];
};

static int visit(void *arg, const struct file_sm_record *r)
{
	struct scan *s = arg;
	uint64_t key, inv;

	if (r->len == 0)
		return 0;
	if (r->len != 16) {
		snprintf(s->msg, sizeof(s->msg), "entry %llu has %u bytes",
		         (unsigned long long)r->index, r->len);
		s->bad++;
		return 0;
	}
	memcpy(&key, r->data, 8);
	memcpy(&inv, r->data + 8, 8);
	if (inv != ~key || key == 0 || key >= next_key) {
		snprintf(s->msg, sizeof(s->msg), "entry %llu holds a bad key",
		         (unsigned long long)r->index);
		s->bad++;
		return 0;
	}
	if (s->seen[key]++ != 0) {
		snprintf(s->msg, sizeof(s->msg), "key %" PRIu64 " applied twice", key);
		s->bad++;
	}
	return 0;
}

/*
 * With every node stopped: every voter's file of group gi holds the same
 * sequence, every acknowledged key of the group exactly once, no refused key.
 */
static bool check_files(int gi, const char *voters)
{
	uint64_t ref_valid = 0, ref_digest = 0;
	raft_index ref_last = 0;
	int ref = -1;
	struct scan s = {0};

	s.seen = calloc(next_key + 1, 1);
	s.gi = gi;
	for (int i = 0; i < C.n; i++) {
		char path[700];
		uint64_t valid, count, digest;
		raft_index last;

		if (!is_voter(voters, nodes[i].id))
			continue;
		memset(s.seen, 0, next_key + 1);
		snprintf(path, sizeof(path), "%s/sm-%" PRIu64, nodes[i].dir, gids[gi]);
		if (file_sm_scan(path, visit, &s, &valid, &last, &count, &digest) != 0) {
			fail_why("cannot read %s", path);
			goto fail;
		}
		if (s.bad > 0) {
			fail_why("node %d group %" PRIu64 ": %s", nodes[i].id, gids[gi], s.msg);
			goto fail;
		}
		for (uint64_t k = 1; k < next_key; k++) {
			if (props[k].gi != gi || props[k].state == P_FREE)
				continue;
			if (props[k].state == P_ACKED && s.seen[k] != 1) {
				fail_why("node %d group %" PRIu64 ": acknowledged key %" PRIu64
				         " applied %u times",
				         nodes[i].id, gids[gi], k, s.seen[k]);
				goto fail;
			}
			if (props[k].state == P_REFUSED && s.seen[k] != 0) {
				fail_why("node %d group %" PRIu64 ": refused key %" PRIu64
				         " was applied",
				         nodes[i].id, gids[gi], k);
				goto fail;
			}
		}
		if (ref < 0) {
			ref = i;
			ref_valid = valid;
			ref_last = last;
			ref_digest = digest;
		} else if (valid != ref_valid || last != ref_last || digest != ref_digest) {
			fail_why("group %" PRIu64
			         ": node %d applied %llu entries (digest %016" PRIx64
			         "), node %d %llu (digest %016" PRIx64 ")",
			         gids[gi], nodes[ref].id, (unsigned long long)ref_last, ref_digest,
			         nodes[i].id, (unsigned long long)last, digest);
			goto fail;
		}
	}
	free(s.seen);
	return true;
fail:
	free(s.seen);
	return false;
}

/* Converge, note each group's voters, stop every node, check the files. */
static bool final_check(int g0, int g1)
{
	char voters[MAX_GROUPS][256];

	if (!wait_converged(g0, g1, 60))
		return false;
	for (int gi = g0; gi < g1; gi++) {
		struct nc_status ls;

		if (leader_of(gi, &ls) < 0) {
			fail_why("group %" PRIu64 " lost its leader", gids[gi]);
			return false;
		}
		snprintf(voters[gi], sizeof(voters[gi]), "%s", ls.voters);
	}
	for (int i = 0; i < C.n; i++)
		nc_kill(&C, i, SIGKILL);
	for (int gi = g0; gi < g1; gi++)
		if (!check_files(gi, voters[gi]))
			return false;
	return true;
}

/* ---- membership and leadership changes, retried until they show ---- */

static bool compacted(int gi, int arg)
{
	struct nc_status st;

	(void)arg;
	return leader_of(gi, &st) >= 0 && st.first > 1;
}

static bool has_voter(int gi, int id)
{
	struct nc_status st;

	return leader_of(gi, &st) >= 0 && is_voter(st.voters, id);
}

static bool lacks_voter(int gi, int id)
{
	struct nc_status st;

	return leader_of(gi, &st) >= 0 && !is_voter(st.voters, id);
}

static bool led_by(int gi, int idx)
{
	return leader_of(gi, NULL) == idx;
}

/*
 * Until done(gi, arg) holds: send cmd to group gi's current leader and wait
 * for its outcome (a leadership change in between only means sending again).
 */
static bool leader_until(int gi, const char *cmd, bool (*done)(int, int), int arg, double seconds)
{
	double end = nc_now() + seconds;
	int last_rc = 1;

	while (nc_now() < end) {
		char buf[256];
		int l;

		if (done(gi, arg))
			return true;
		l = leader_of(gi, NULL);
		if (l >= 0 && nc_call(&C, l, 20, buf, sizeof(buf), "%s", cmd) == 0)
			last_rc = atoi(buf);
		if (done(gi, arg))
			return true;
		nc_pump(&C, 50);
	}
	fail_why("'%s' did not take effect in %.0f s (last outcome %d)", cmd, seconds, last_rc);
	return false;
}

/* ---- part 1 ---- */

static bool start_cluster(int nnodes, int groups, const char *tmp, const char *sub)
{
	C.n = nnodes;
	n_groups = groups;
	for (int i = 0; i < MAX_NODES; i++) {
		nodes[i].id = i + 1;
		nodes[i].pid = 0;
		nodes[i].port = 0;
		nodes[i].in_fd = nodes[i].out_fd = -1;
		snprintf(nodes[i].dir, sizeof(nodes[i].dir), "%s/%s-n%d", tmp, sub, i + 1);
	}
	for (int i = 0; i < nnodes; i++)
		if (nc_start(&C, i, 30) != 0) {
			fail_why("node %d did not start", i + 1);
			return false;
		}
	for (int gi = 0; gi < groups; gi++) {
		char members[512];
		size_t off = 0;

		gids[gi] = (uint64_t)gi + 1;
		for (int i = 0; i < nnodes; i++)
			off += (size_t)snprintf(members + off, sizeof(members) - off, " %d=%s",
			                        nodes[i].id, nc_addr(&C, i));
		for (int i = 0; i < nnodes; i++) {
			char buf[64];

			if (nc_call(&C, i, 10, buf, sizeof(buf), "start %" PRIu64 "%s", gids[gi],
			            members) != 0 ||
			    atoi(buf) != 0) {
				fail_why("start group %" PRIu64 " on node %d failed", gids[gi],
				         i + 1);
				return false;
			}
		}
	}
	return true;
}

static bool restart(int idx)
{
	if (nc_start(&C, idx, 30) != 0) {
		fail_why("node %d did not restart", nodes[idx].id);
		return false;
	}
	return true;
}

static void part1(const char *tmp)
{
	double t0 = nc_now();
	bool ok;
	int victim, lead;
	char cmd[256];
	struct nc_status st;

	ok = start_cluster(3, 8, tmp, "p1") && wait_leaders(0, 8, 30);
	report("elect a leader in 8 groups over 3 processes", ok, t0);
	if (!ok)
		goto skip;

	t0 = nc_now();
	ok = propose_acked(10000, 256, 0, 8, 90) && wait_converged(0, 8, 30);
	report("10,000 proposals over 8 groups, replicas agree", ok, t0);
	if (!ok)
		goto skip;

	/* kill -9 a follower of group 1; proposals go on; it restarts and catches up. */
	t0 = nc_now();
	lead = leader_of(0, NULL);
	victim = (lead + 1) % 3;
	nc_kill(&C, victim, SIGKILL);
	orphan(victim);
	ok = wait_leaders(0, 8, 30) && propose_acked(1000, 128, 0, 8, 60) && restart(victim) &&
	     wait_converged(0, 8, 60);
	report("kill -9 a follower, restart: it catches up", ok, t0);
	if (!ok)
		goto skip;

	/* kill -9 group 1's leader: a new one is elected and proposals continue. */
	t0 = nc_now();
	lead = leader_of(0, NULL);
	nc_kill(&C, lead, SIGKILL);
	orphan(lead);
	ok = wait_leaders(0, 8, 30);
	if (ok && leader_of(0, NULL) == lead) {
		fail_why("the killed node still leads");
		ok = false;
	}
	ok = ok && propose_acked(1000, 128, 0, 1, 60) && restart(lead) && wait_converged(0, 8, 60);
	report("kill -9 the leader: new leader, proposals continue", ok, t0);
	if (!ok)
		goto skip;

	/* Idle groups quiesce; kill -9 their leader: its connections break, a new one leads. */
	t0 = nc_now();
	ok = wait_quiescent(0, 8, 30);
	lead = leader_of(0, NULL);
	if (ok) {
		nc_kill(&C, lead, SIGKILL);
		orphan(lead);
		ok = wait_leaders(0, 8, 30);
	}
	if (ok && leader_of(0, NULL) == lead) {
		fail_why("the killed node still leads");
		ok = false;
	}
	ok = ok && propose_acked(1000, 128, 0, 8, 60) && restart(lead) &&
	     wait_converged(0, 8, 60) && wait_quiescent(0, 8, 30);
	report("idle groups quiesce; kill -9 their leader: new leader, quiescent again", ok, t0);
	if (!ok)
		goto skip;

	/* A fourth node joins group 1 after compaction: it gets a snapshot. */
	t0 = nc_now();
	ok = leader_until(0, "snapshot 1", compacted, 0, 30);
	if (ok) {
		C.n = 4;
		ok = nc_start(&C, 3, 30) == 0;
		if (!ok)
			fail_why("node 4 did not start");
	}
	if (ok) {
		char buf[64];

		snprintf(cmd, sizeof(cmd), "join 1 1=%s 2=%s 3=%s", nc_addr(&C, 0), nc_addr(&C, 1),
		         nc_addr(&C, 2));
		ok = nc_call(&C, 3, 10, buf, sizeof(buf), "%s", cmd) == 0 && atoi(buf) == 0;
		if (!ok)
			fail_why("node 4 could not start its joining member");
		snprintf(cmd, sizeof(cmd), "add 1 4 %s", nc_addr(&C, 3));
		ok = ok && leader_until(0, cmd, has_voter, 4, 30);
	}
	ok = ok && propose_acked(200, 64, 0, 1, 30) && wait_converged(0, 1, 60);
	if (ok && (nc_status(&C, 3, 1, &st) != 0 || st.recoveries < 1 || st.count < 10000 / 8)) {
		fail_why("node 4 holds %llu entries after %u snapshot recoveries", st.count,
		         st.recoveries);
		ok = false;
	}
	report("add a 4th node to group 1: snapshot, catches up", ok, t0);
	if (!ok)
		goto skip;

	/* Transfer group 1's leadership to node 4. */
	t0 = nc_now();
	ok = leader_until(0, "transfer 1 4", led_by, 3, 30);
	hint[0] = 3;
	ok = ok && propose_acked(200, 64, 0, 1, 30);
	report("transfer group 1's leadership to node 4", ok, t0);
	if (!ok)
		goto skip;

	/* Remove node 3 from group 1: the leader's membership drops it, proposals go on. */
	t0 = nc_now();
	ok = leader_until(0, "remove 1 3", lacks_voter, 3, 30);
	if (ok && !has_voter(0, 4)) {
		fail_why("node 4 is no longer a voter of group 1");
		ok = false;
	}
	ok = ok && propose_acked(500, 64, 0, 8, 30);
	report("remove node 3 from group 1", ok, t0);
	if (!ok)
		goto skip;

	t0 = nc_now();
	ok = final_check(0, 8);
	report("every replica applied the same sequence, acked once", ok, t0);
	printf("part 1: %ld acknowledged, %ld refused, %ld unknown proposals\n", n_acked, n_refused,
	       n_unknown);
	goto out;
skip:
	failed++;
	printf("FAIL part 1 stopped early\n");
out:
	for (int i = 0; i < MAX_NODES; i++)
		nc_kill(&C, i, SIGKILL);
}

/* ---- part 2 ---- */

static void part2(const char *tmp, int kills)
{
	double t0 = nc_now();
	bool ok;
	int done = 0;

	memset(props, 0, sizeof(*props) * MAX_PROPS);
	next_key = 1;
	outstanding = 0;
	n_acked = n_refused = n_unknown = 0;
	ok = start_cluster(3, 4, tmp, "p2") && wait_leaders(0, 4, 30);
	if (!ok) {
		report("kill -9 loop: cluster start", false, t0);
		goto out;
	}
	for (; done < kills && ok; done++) {
		double until = nc_now() + 0.2 + (double)(rnd() % 400) / 1000.0;
		int victim = (int)(rnd() % 3);

		while (nc_now() < until) {
			if (next_key < MAX_PROPS - RESERVE)
				top_up(64, 0, 4);
			nc_pump(&C, 5);
		}
		nc_kill(&C, victim, SIGKILL);
		orphan(victim);
		until = nc_now() + (double)(rnd() % 300) / 1000.0;
		while (nc_now() < until) {
			if (next_key < MAX_PROPS - RESERVE)
				top_up(64, 0, 4);
			nc_pump(&C, 5);
		}
		ok = restart(victim);
		for (int i = 0; i < C.n && ok; i++)
			if (!nc_alive(&C, i)) {
				fail_why("node %d died on its own", nodes[i].id);
				ok = false;
			}
	}
	/* Proposals settle, then a last burst must get through. */
	ok = ok && wait_leaders(0, 4, 30) && propose_acked(200, 64, 0, 4, 60);
	if (ok)
		ok = final_check(0, 4);
	printf("part 2: %d kills, %ld acknowledged, %ld refused, %ld unknown proposals\n", done,
	       n_acked, n_refused, n_unknown);
	if (ok && n_acked < 1000) {
		fail_why("only %ld proposals acknowledged during the kill loop", n_acked);
		ok = false;
	}
	report("kill -9 loop: no acknowledged proposal lost", ok, t0);
out:
	for (int i = 0; i < MAX_NODES; i++)
		nc_kill(&C, i, SIGKILL);
}

static void rm_rf(const char *dir)
{
	char cmd[700];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
}

int main(int argc, char **argv)
{
	char tmp[] = "/tmp/dr-procs-XXXXXX";
	const char *env;
	unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
	int kills = 20;

	if (argc < 2) {
		fprintf(stderr, "usage: dr-procs-test PATH-TO-dr-node [seed]\n");
		return 2;
	}
	if ((env = getenv("PROCS_SEED")) != NULL)
		seed = (unsigned)strtoul(env, NULL, 10);
	if (argc > 2)
		seed = (unsigned)strtoul(argv[2], NULL, 10);
	if ((env = getenv("PROCS_KILLS")) != NULL)
		kills = atoi(env);
	rng_state = seed;
	printf("dr-procs-test: seed %u (rerun: PROCS_SEED=%u)\n", seed, seed);
	signal(SIGPIPE, SIG_IGN);
	if (mkdtemp(tmp) == NULL) {
		perror("mkdtemp");
		return 2;
	}
	props = calloc(MAX_PROPS, sizeof(*props));
	if (props == NULL)
		return 2;
	C.bin = argv[1];
	C.nodes = nodes;
	C.on_line = on_line;
	C.quiet = false;

	/*
	 * Part 1 with the state machines' snapshots on a thread pool (the way
	 * the PostgreSQL state machine exports and loads tables), part 2 with
	 * either kind, by the seed.
	 */
#define NODE_ARGS "--rtt 10 --election 30 --snapshot-entries 1000 --overhead 200"
	C.extra = NODE_ARGS " --async-snapshots";
	part1(tmp);
	if (seed % 2 == 0)
		C.extra = NODE_ARGS;
	printf("part 2: snapshots %s\n", seed % 2 == 0 ? "inline" : "in the background");
	part2(tmp, kills);

	if (failed == 0)
		rm_rf(tmp);
	else
		printf("data kept in %s\n", tmp);
	free(props);
	printf("%d passed, %d failed\n", passed, failed);
	return failed == 0 ? 0 : 1;
}
