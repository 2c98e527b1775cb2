/*
 * commit_lag.c - review 15 probe (not part of any build): how late followers
 * learn the commit index under a steady write load, for the core as written
 * and for the core before b52080e (commit-only appends).  3 replicas over
 * raft_memstorage in virtual time (microseconds): one-way network delay D,
 * an fsync of F for every Ready with entries (appends leave before it, as
 * raft_msg_may_precede_persist allows), a tick of 50 ms (heartbeat every
 * tick, as dragonraft.rtt_ms / heartbeat_rtt default), proposals at the
 * leader every P (jittered +-50%), a ReadIndex on follower 2 every 7 ms.
 *
 * Reports, per follower, how long after the leader it reaches each commit
 * index (mean, p99, max), the follower ReadIndex latency (issue -> applied
 * >= read index), and messages per entry.
 *
 * Build and run (from the repository root; the old core is b52080e^'s
 * replication.c in a copy of src/raft):
 *
 *   cc -O2 -Isrc -o /tmp/lag_new test/sim/probes/commit_lag.c \
 *      src/raft/[a-z]*.c src/util/arena.c
 *   mkdir -p /tmp/old && cp -r src/raft /tmp/old/
 *   git show b52080e^:src/raft/replication.c >/tmp/old/raft/replication.c
 *   cc -O2 -I/tmp/old -Isrc -o /tmp/lag_old test/sim/probes/commit_lag.c \
 *      /tmp/old/raft/[a-z]*.c src/util/arena.c
 *   /tmp/lag_new D F P [N] [DROP_PERMILLE]    (and /tmp/lag_old alike)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raft/raft.h"
#include "raft/raft_memstorage.h"

#define NODES 3
#define TICK  50000
#define MAXI  200000

enum ev_kind { EV_MSG, EV_PERSISTED, EV_PROPOSE, EV_TICK, EV_READ };

struct ev {
	uint64_t at, seq;
	int kind, node;
	struct raft_message m;
	struct raft_entry *ents;
	uint8_t *data;
};

#include "probe_events.h"

static uint64_t now, D, F, P, N, drop_pm;
static uint64_t rng = 88172645463325252ULL;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static struct ev *ev_new(uint64_t at, int kind, int node)
{
	struct ev *e = calloc(1, sizeof(*e));

	e->at = at;
	e->kind = kind;
	e->node = node;
	return e;
}

struct node {
	struct raft *r;
	struct raft_memstorage *ms;
	bool busy;
	uint64_t busy_until; /* inputs wait for the Ready in progress (the engine's round) */
	struct raft_ready rd;
	raft_index applied;
};

static struct node nodes[NODES + 1];
static uint64_t commit_at[NODES + 1][MAXI];
static uint64_t msgs[16], n_msgs, n_refused;
static uint64_t read_issued[100000], read_index[100000], read_done[100000], n_reads;

static void note_commit(int id)
{
	raft_index c = raft_commit_index(nodes[id].r);

	for (raft_index i = c; i > 0 && i < MAXI && commit_at[id][i] == 0; i--)
		commit_at[id][i] = now;
}

static void send(const struct raft_message *m)
{
	struct ev *e;

	msgs[m->type]++;
	n_msgs++;
	if (drop_pm && rnd() % 1000 < drop_pm)
		return;
	e = ev_new(now + D, EV_MSG, (int)m->to);
	ev_set_message(e, m);
	push(e);
}

static void finish(int id)
{
	struct node *nd = &nodes[id];
	struct raft_ready *rd = &nd->rd;

	raft_memstorage_save_ready(nd->ms, rd);
	for (uint32_t k = 0; k < rd->n_messages; k++)
		if (!raft_msg_may_precede_persist(&rd->messages[k]))
			send(&rd->messages[k]);
	for (uint32_t k = 0; k < rd->n_committed; k++) {
		const struct raft_entry *e = &rd->committed[k];

		if (e->type == RAFT_ENTRY_CONF_CHANGE)
			raft_apply_conf_change(nd->r, e, NULL);
		nd->applied = e->index;
	}
	for (uint32_t k = 0; k < rd->n_read_states; k++) {
		uint64_t c = rd->read_states[k].context;

		if (c > 0 && c <= n_reads)
			read_index[c - 1] = rd->read_states[k].index;
	}
	raft_advance(nd->r, rd);
	for (uint64_t c = 0; c < n_reads; c++)
		if (read_index[c] && !read_done[c] && nodes[2].applied >= read_index[c])
			read_done[c] = now;
	nd->busy = false;
	note_commit(id);
}

static void pump(int id)
{
	struct node *nd = &nodes[id];

	while (!nd->busy && raft_has_ready(nd->r)) {
		raft_ready(nd->r, &nd->rd);
		for (uint32_t k = 0; k < nd->rd.n_messages; k++)
			if (raft_msg_may_precede_persist(&nd->rd.messages[k]))
				send(&nd->rd.messages[k]);
		if (nd->rd.n_entries > 0) {
			nd->busy = true;
			nd->busy_until = now + F;
			push(ev_new(now + F, EV_PERSISTED, id));
		} else {
			finish(id);
		}
	}
}

int main(int argc, char **argv)
{
	struct raft_membership m;
	uint64_t proposed = 0, reads_to = 0, end;
	uint8_t payload[16] = {0};
	raft_index first = 0, last;

	if (argc < 4) {
		fprintf(stderr, "usage: commit_lag D_us F_us P_us [N] [drop_permille]\n");
		return 2;
	}
	D = strtoull(argv[1], NULL, 10);
	F = strtoull(argv[2], NULL, 10);
	P = strtoull(argv[3], NULL, 10);
	N = argc > 4 ? strtoull(argv[4], NULL, 10) : 20000;
	drop_pm = argc > 5 ? strtoull(argv[5], NULL, 10) : 0;
	memset(&m, 0, sizeof(m));
	m.n_voters = NODES;
	for (int i = 0; i < NODES; i++)
		m.voters[i] = (raft_id)(i + 1);
	for (int id = 1; id <= NODES; id++) {
		struct raft_config c;

		memset(&c, 0, sizeof(c));
		c.group_id = 1;
		c.id = (raft_id)id;
		c.election_tick = 10;
		c.heartbeat_tick = 1;
		c.max_inflight_msgs = 256;
		c.max_msg_bytes = 1 << 20;
		c.check_quorum = true;
		c.pre_vote = true;
		c.seed = (uint64_t)id;
		raft_memstorage_create(NULL, &nodes[id].ms);
		raft_memstorage_set_membership(nodes[id].ms, &m);
		raft_memstorage_storage(nodes[id].ms, &c.storage);
		raft_create(&c, &m, &nodes[id].r);
	}
	for (int id = 1; id <= NODES; id++)
		pump(id);
	raft_campaign(nodes[1].r);
	pump(1);
	push(ev_new(TICK, EV_TICK, 0));
	push(ev_new(5 * TICK, EV_PROPOSE, 1));
	push(ev_new(5 * TICK + 3500, EV_READ, 2));
	end = UINT64_MAX;
	while (nheap > 0) {
		struct ev *e = pop();

		now = e->at;
		if (now > end)
			break;
		if (e->kind != EV_PERSISTED && e->kind != EV_TICK && nodes[e->node].busy) {
			e->at = nodes[e->node].busy_until;
			push(e); /* after the persist: FIFO by seq */
			continue;
		}
		switch (e->kind) {
		case EV_MSG:
			if (raft_step(nodes[e->node].r, &e->m) != RAFT_OK) {
				if (getenv("LAG_DEBUG"))
					fprintf(stderr, "step %d->%d type %d: %s\n", (int)e->m.from,
					        e->node, (int)e->m.type,
					        raft_errmsg(nodes[e->node].r));
				n_refused++;
			}
			note_commit(e->node);
			pump(e->node);
			break;
		case EV_PERSISTED:
			finish(e->node);
			pump(e->node);
			break;
		case EV_TICK:
			for (int id = 1; id <= NODES; id++) {
				if (nodes[id].busy) {
					struct ev *t =
					        ev_new(nodes[id].busy_until, EV_READ + 1, id);

					push(t);
					continue;
				}
				raft_tick(nodes[id].r);
				pump(id);
			}
			push(ev_new(now + TICK, EV_TICK, 0));
			break;
		case EV_PROPOSE:
			if (proposed < N) {
				raft_index idx = 0;

				memcpy(payload, &proposed, sizeof(proposed));
				if (raft_propose(nodes[1].r, payload, sizeof(payload), &idx) ==
				    RAFT_OK) {
					if (first == 0)
						first = idx;
					proposed++;
				}
				pump(1);
				push(ev_new(now + P / 2 + rnd() % (P + 1), EV_PROPOSE, 1));
			} else if (end == UINT64_MAX) {
				end = now + 20 * TICK;
			}
			break;
		case EV_READ + 1: /* one node's postponed tick */
			raft_tick(nodes[e->node].r);
			pump(e->node);
			break;
		case EV_READ:
			if (proposed < N && n_reads < 100000) {
				read_issued[n_reads] = now;
				n_reads++;
				int rc = raft_read_index(nodes[2].r, n_reads);

				if (rc != RAFT_OK) {
					if (getenv("LAG_DEBUG"))
						fprintf(stderr, "read at %llu: %s\n",
						        (unsigned long long)now, raft_strerror(rc));
					n_refused++;
				}
				pump(2);
				reads_to++;
				push(ev_new(now + 7000, EV_READ, 2));
			}
			break;
		}
		free(e->ents);
		free(e->data);
		free(e);
	}
	last = raft_commit_index(nodes[1].r);
	if (raft_role(nodes[1].r) != RAFT_LEADER)
		printf("leader changed!\n");
	printf("D=%llu F=%llu P=%llu N=%llu drop=%llu: leader commit %llu, entries %llu..\n",
	       (unsigned long long)D, (unsigned long long)F, (unsigned long long)P,
	       (unsigned long long)N, (unsigned long long)drop_pm, (unsigned long long)last,
	       (unsigned long long)first);
	for (int id = 2; id <= NODES; id++) {
		static uint64_t lag[MAXI];
		size_t n = 0;
		double sum = 0;

		for (raft_index i = first; i <= last && i < MAXI; i++)
			if (commit_at[1][i] && commit_at[id][i]) {
				lag[n] = commit_at[id][i] > commit_at[1][i]
				                 ? commit_at[id][i] - commit_at[1][i]
				                 : 0;
				sum += (double)lag[n++];
			}
		qsort(lag, n, sizeof(*lag), cmp_u64);
		printf("  follower %d: commit lag behind leader (us): mean %.0f p50 %llu p99 %llu "
		       "max "
		       "%llu (%zu entries)\n",
		       id, n ? sum / (double)n : 0.0, (unsigned long long)pct(lag, n, 0.5),
		       (unsigned long long)pct(lag, n, 0.99),
		       (unsigned long long)(n ? lag[n - 1] : 0), n);
	}
	{
		static uint64_t lat[100000];
		size_t n = 0;
		double sum = 0;

		for (uint64_t c = 0; c < n_reads; c++)
			if (read_done[c]) {
				lat[n] = read_done[c] - read_issued[c];
				sum += (double)lat[n++];
			}
		qsort(lat, n, sizeof(*lat), cmp_u64);
		printf("  follower 2 ReadIndex latency (us): mean %.0f p50 %llu p99 %llu max %llu "
		       "(%zu "
		       "of %llu reads)\n",
		       n ? sum / (double)n : 0.0, (unsigned long long)pct(lat, n, 0.5),
		       (unsigned long long)pct(lat, n, 0.99),
		       (unsigned long long)(n ? lat[n - 1] : 0), n, (unsigned long long)n_reads);
	}
	if (n_refused)
		printf("  %llu inputs refused (reads before follower 2 knows the leader: "
		       "warm-up)\n",
		       (unsigned long long)n_refused);
	printf("  messages per entry: %.2f (append %.2f, append_resp %.2f, heartbeat %.2f)\n",
	       (double)n_msgs / (double)N, (double)msgs[RAFT_MSG_APPEND] / (double)N,
	       (double)msgs[RAFT_MSG_APPEND_RESP] / (double)N,
	       (double)msgs[RAFT_MSG_HEARTBEAT] / (double)N);
	return 0;
}
