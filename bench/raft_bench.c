/*
 * raft_bench.c - throughput of the Raft core alone: 3 in-memory replicas
 * per group in one process, messages handed over directly, no faults,
 * 16-byte proposals batched per round as an engine would.  Reports
 * committed entries per second and CPU nanoseconds per proposal for 1 and
 * 64 groups.
 *
 *   raft_bench [--entries N] [--batch B]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "raft/raft.h"
#include "raft/raft_memstorage.h"

#define NODES        3
#define PAYLOAD      16
#define KEEP_ENTRIES 4096 /* compaction keeps this many applied entries */

struct node {
	struct raft *r;
	struct raft_memstorage *ms;
	raft_index applied;
	raft_index compacted;
};

struct group {
	struct node n[NODES];
	uint64_t committed; /* application entries applied by the leader */
};

static double last_rate[2]; /* entries per CPU second: 1 group, 64 groups */

static void die(const char *what, int rc)
{
	fprintf(stderr, "raft_bench: %s: %s\n", what, raft_strerror(rc));
	exit(1);
}

static double now(clockid_t c)
{
	struct timespec ts;

	clock_gettime(c, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void group_init(struct group *g, uint64_t gid)
{
	struct raft_membership m;

	memset(g, 0, sizeof(*g));
	memset(&m, 0, sizeof(m));
	m.n_voters = NODES;
	for (int i = 0; i < NODES; i++)
		m.voters[i] = (raft_id)(i + 1);
	for (int i = 0; i < NODES; i++) {
		struct raft_config c;
		int rc;

		memset(&c, 0, sizeof(c));
		c.group_id = gid;
		c.id = (raft_id)(i + 1);
		c.election_tick = 10;
		c.heartbeat_tick = 1;
		c.max_inflight_msgs = 256;
		c.max_msg_bytes = 1 << 20;
		c.seed = gid;
		rc = raft_memstorage_create(NULL, &g->n[i].ms);
		if (rc != RAFT_OK)
			die("memstorage", rc);
		raft_memstorage_set_membership(g->n[i].ms, &m);
		raft_memstorage_storage(g->n[i].ms, &c.storage);
		rc = raft_create(&c, &m, &g->n[i].r);
		if (rc != RAFT_OK)
			die("raft_create", rc);
	}
}

static void group_free(struct group *g)
{
	for (int i = 0; i < NODES; i++) {
		raft_destroy(g->n[i].r);
		raft_memstorage_destroy(g->n[i].ms);
	}
}

/* One Ready cycle of node i: persist, hand messages over, apply, advance. */
static bool cycle(struct group *g, int i)
{
	struct node *nd = &g->n[i];
	struct raft_ready rd;
	int rc;

	if (!raft_has_ready(nd->r))
		return false;
	raft_ready(nd->r, &rd);
	rc = raft_memstorage_save_ready(nd->ms, &rd);
	if (rc != RAFT_OK)
		die("save_ready", rc);
	for (uint32_t k = 0; k < rd.n_messages; k++) {
		const struct raft_message *m = &rd.messages[k];

		rc = raft_step(g->n[m->to - 1].r, m);
		if (rc != RAFT_OK)
			die("step", rc);
	}
	for (uint32_t k = 0; k < rd.n_committed; k++) {
		const struct raft_entry *e = &rd.committed[k];

		if (e->type == RAFT_ENTRY_CONF_CHANGE) {
			rc = raft_apply_conf_change(nd->r, e, NULL);
			if (rc != RAFT_OK)
				die("apply_conf_change", rc);
		} else if (e->len == PAYLOAD && raft_role(nd->r) == RAFT_LEADER) {
			g->committed++;
		}
	}
	if (rd.n_committed > 0)
		nd->applied = rd.committed[rd.n_committed - 1].index;
	raft_advance(nd->r, &rd);
	/* Caller-driven compaction keeps memory flat. */
	if (nd->applied > nd->compacted + 2 * KEEP_ENTRIES) {
		nd->compacted = nd->applied - KEEP_ENTRIES;
		rc = raft_memstorage_compact(nd->ms, nd->compacted);
		if (rc != RAFT_OK)
			die("compact", rc);
		raft_compacted(nd->r, nd->compacted);
	}
	return true;
}

static void settle(struct group *g)
{
	bool any = true;

	while (any) {
		any = false;
		for (int i = 0; i < NODES; i++)
			while (cycle(g, i))
				any = true;
	}
}

static void run(int n_groups, uint64_t total, uint32_t batch)
{
	struct group *gs = calloc((size_t)n_groups, sizeof(*gs));
	uint8_t payload[PAYLOAD];
	uint64_t per_group = total / (uint64_t)n_groups, proposed = 0, committed = 0;
	double w0, c0, wall, cpu;

	if (gs == NULL)
		die("calloc", RAFT_ERR_NOMEM);
	for (int g = 0; g < n_groups; g++) {
		group_init(&gs[g], (uint64_t)g + 1);
		settle(&gs[g]);
		if (raft_campaign(gs[g].n[0].r) != RAFT_OK)
			die("campaign", RAFT_ERR_INVALID);
		settle(&gs[g]);
		if (raft_role(gs[g].n[0].r) != RAFT_LEADER)
			die("no leader", RAFT_ERR_NOT_LEADER);
	}
	memset(payload, 0xab, sizeof(payload));
	w0 = now(CLOCK_MONOTONIC);
	c0 = now(CLOCK_PROCESS_CPUTIME_ID);
	for (uint64_t sent = 0; sent < per_group;) {
		uint32_t b = per_group - sent < batch ? (uint32_t)(per_group - sent) : batch;

		for (int g = 0; g < n_groups; g++) {
			struct raft *lead = gs[g].n[0].r;

			for (uint32_t k = 0; k < b; k++) {
				raft_index idx;
				int rc;

				memcpy(payload, &proposed, sizeof(proposed));
				rc = raft_propose(lead, payload, PAYLOAD, &idx);
				if (rc != RAFT_OK)
					die("propose", rc);
				proposed++;
			}
			/* One engine round: every replica's Ready once. */
			for (int i = 0; i < NODES; i++)
				cycle(&gs[g], i);
		}
		sent += b;
	}
	for (int g = 0; g < n_groups; g++) {
		settle(&gs[g]);
		committed += gs[g].committed;
	}
	wall = now(CLOCK_MONOTONIC) - w0;
	cpu = now(CLOCK_PROCESS_CPUTIME_ID) - c0;
	if (committed != proposed) {
		fprintf(stderr, "raft_bench: %llu proposed but %llu committed\n",
		        (unsigned long long)proposed, (unsigned long long)committed);
		exit(1);
	}
	printf("groups=%d entries=%llu batch=%u: %.0f entries/s (wall %.3fs), %.0f entries/s per "
	       "CPU second, %.0f CPU ns/proposal\n",
	       n_groups, (unsigned long long)committed, batch, committed / wall, wall,
	       committed / cpu, cpu * 1e9 / committed);
	fflush(stdout);
	for (int g = 0; g < n_groups; g++)
		group_free(&gs[g]);
	free(gs);
	last_rate[n_groups > 1] = committed / cpu;
}

int main(int argc, char **argv)
{
	uint64_t entries = 2000000;
	uint32_t batch = 512;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--entries") == 0)
			entries = strtoull(argv[i + 1], NULL, 10);
		else if (strcmp(argv[i], "--batch") == 0)
			batch = (uint32_t)strtoul(argv[i + 1], NULL, 10);
	}
	if (entries < 64 || batch == 0) {
		fprintf(stderr, "usage: raft_bench [--entries N>=64] [--batch B>0]\n");
		return 2;
	}
	run(1, entries, batch);
	run(64, entries, batch / 8 ? batch / 8 : 1);
	printf("raft_bench: 1 group %.0f entries/CPU-s (%.0f ns/proposal), 64 groups %.0f "
	       "entries/CPU-s (%.0f ns/proposal)\n",
	       last_rate[0], 1e9 / last_rate[0], last_rate[1], 1e9 / last_rate[1]);
	return 0;
}
