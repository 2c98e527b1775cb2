/*
 * failover.c - issue #13 probe (not part of any build): how long a group
 * takes to elect a new leader and commit again after its leader dies
 * (kill -9), and how often that takes more than one election round (a split
 * vote, a failed pre-vote round).
 *
 * N replicas (3 or 5) over raft_memstorage in virtual time (microseconds),
 * at the engine's defaults: a tick of 50 ms (dragonraft.rtt_ms), heartbeat
 * every tick, election timeout 10 ticks (randomized in [10, 20)), pre-vote
 * and check-quorum on.  Each replica ticks on its own clock, its phase drawn
 * per trial (the servers' timers are not aligned).  Every message takes a
 * delay drawn uniformly from [DMIN, DMAX], but arrives after those sent
 * before it on the same link (one TCP connection per pair); a Ready that
 * writes (entries, a new term or vote) takes F to persist, and the replica
 * takes no input meanwhile (the engine's round).  A client proposes at the
 * leader every P (jittered +-50%).
 *
 * A trial: a fresh group, node 1 campaigns, the load runs for 2-3 s (the
 * kill time drawn per trial), the leader dies (its queued input is lost,
 * messages to it are dropped), and the trial ends when a live replica leads
 * a later term and commits a client entry of it.  Reported over TRIALS
 * trials (seeds 1..TRIALS, or from SEED0):
 *   elect  kill -> a new leader (ms): percentiles and max
 *   gap    the last commit on the old leader -> the first client entry
 *          committed on the new one (the write gap)
 *   terms  how many terms the election took (1 = one round; 2+ = a split
 *          vote or a candidate that lost)
 *   slow   trials whose gap exceeds 1.5 s (the goal)
 *
 * Build and run (from the repository root), for the core as written and for
 * another one (e.g. main's src/raft in a copy):
 *
 *   cc -O2 -Isrc -o /tmp/fo_new test/sim/probes/failover.c \
 *      src/raft/[a-z]*.c src/util/arena.c
 *   mkdir -p /tmp/old && git archive main src/raft | tar -x -C /tmp/old
 *   cc -O2 -I/tmp/old/src -Isrc -o /tmp/fo_old test/sim/probes/failover.c \
 *      /tmp/old/src/raft/[a-z]*.c src/util/arena.c
 *   /tmp/fo_new NODES DMIN_us DMAX_us [TRIALS] [F_us] [P_us] [SEED0] [-v]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raft/raft.h"
#include "raft/raft_memstorage.h"
#include "raft/raft_int.h" /* randomized_timeout, for -v */

#define MAXN 5
#define TICK 50000

enum ev_kind { EV_MSG, EV_PERSISTED, EV_TICK, EV_PROPOSE };

struct ev {
	uint64_t at, seq;
	int kind, node;
	uint32_t inc; /* the node's incarnation when queued */
	struct raft_message m;
	struct raft_entry *ents;
	uint8_t *data;
};

#include "probe_events.h"

struct node {
	struct raft *r;
	struct raft_memstorage *ms;
	bool dead, busy;
	uint64_t busy_until;
	uint32_t inc;
	struct raft_ready rd;
	raft_term term;
	raft_id vote;
	uint64_t prop_seen; /* client entries seen committed */
};

static uint64_t now, rng;
static uint64_t DMIN, DMAX, F = 2000, P = 2000;
static int NN, verbose;
static struct node nodes[MAXN + 1];
static uint64_t link_at[MAXN + 1][MAXN + 1]; /* last delivery time per (from, to) */

static uint64_t rnd(void)
{
	uint64_t z = (rng += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void ev_free(struct ev *e)
{
	free(e->ents);
	free(e->data);
	free(e);
}

static struct ev *ev_new(uint64_t at, int kind, int node)
{
	struct ev *e = calloc(1, sizeof(*e));

	e->at = at;
	e->kind = kind;
	e->node = node;
	if (node > 0)
		e->inc = nodes[node].inc;
	return e;
}

static void send(const struct raft_message *m)
{
	struct ev *e;
	uint64_t at;

	if (nodes[m->to].dead)
		return;
	/* a TCP connection per pair: delivered in the order sent */
	at = now + DMIN + rnd() % (DMAX - DMIN + 1);
	if (at < link_at[m->from][m->to])
		at = link_at[m->from][m->to];
	link_at[m->from][m->to] = at;
	e = ev_new(at, EV_MSG, (int)m->to);
	ev_set_message(e, m);
	push(e);
}

/* Client entries (16 bytes) committed on id, in terms >= from_term. */
static void finish(int id)
{
	struct node *nd = &nodes[id];
	struct raft_ready *rd = &nd->rd;

	raft_memstorage_save_ready(nd->ms, rd);
	if (verbose > 1 && rd->soft_state_changed)
		printf("    %llu us: node %d role %d term %llu leader %llu\n",
		       (unsigned long long)now, id, (int)rd->soft_state.role,
		       (unsigned long long)raft_term_of(nd->r),
		       (unsigned long long)rd->soft_state.leader);
	if (rd->hard_state_changed) {
		nd->term = rd->hard_state.term;
		nd->vote = rd->hard_state.vote;
	}
	for (uint32_t k = 0; k < rd->n_messages; k++)
		if (!raft_msg_may_precede_persist(&rd->messages[k]))
			send(&rd->messages[k]);
	for (uint32_t k = 0; k < rd->n_committed; k++) {
		const struct raft_entry *e = &rd->committed[k];

		if (e->type == RAFT_ENTRY_CONF_CHANGE)
			raft_apply_conf_change(nd->r, e, NULL);
		else if (e->len == 16)
			nd->prop_seen++;
	}
	raft_advance(nd->r, rd);
	nd->busy = false;
}

static void pump(int id)
{
	struct node *nd = &nodes[id];

	while (!nd->dead && !nd->busy && raft_has_ready(nd->r)) {
		struct raft_ready *rd = &nd->rd;
		bool write;

		raft_ready(nd->r, rd);
		for (uint32_t k = 0; k < rd->n_messages; k++)
			if (raft_msg_may_precede_persist(&rd->messages[k]))
				send(&rd->messages[k]);
		write = rd->n_entries > 0 ||
		        (rd->hard_state_changed &&
		         (rd->hard_state.term != nd->term || rd->hard_state.vote != nd->vote));
		if (write) {
			nd->busy = true;
			nd->busy_until = now + F;
			push(ev_new(now + F, EV_PERSISTED, id));
		} else {
			finish(id);
		}
	}
}

static int leader(void)
{
	int best = 0;

	for (int id = 1; id <= NN; id++)
		if (!nodes[id].dead && raft_role(nodes[id].r) == RAFT_LEADER &&
		    (best == 0 || raft_term_of(nodes[id].r) > raft_term_of(nodes[best].r)))
			best = id;
	return best;
}

struct result {
	uint64_t elect, gap;
	raft_term terms;
};

static void destroy_all(void)
{
	while (nheap > 0)
		ev_free(pop());
	for (int id = 1; id <= NN; id++) {
		if (nodes[id].r)
			raft_destroy(nodes[id].r);
		raft_memstorage_destroy(nodes[id].ms);
		memset(&nodes[id], 0, sizeof(nodes[id]));
	}
}

/* One trial; false if no leader committed within 60 s of the kill. */
static bool trial(uint64_t seed, struct result *res)
{
	struct raft_membership m;
	uint64_t kill_at, last_commit = 0, prop_id = 0, elected = 0;
	raft_index old_commit = 0;
	raft_term old_term = 0;
	int old = 0;
	bool ok = false;

	rng = seed * 0x2545f4914f6cdd1dull + 1;
	now = 0;
	memset(link_at, 0, sizeof(link_at));
	memset(&m, 0, sizeof(m));
	m.n_voters = (uint32_t)NN;
	for (int i = 0; i < NN; i++)
		m.voters[i] = (raft_id)(i + 1);
	for (int id = 1; id <= NN; id++) {
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
		c.seed = rnd();
		raft_memstorage_create(NULL, &nodes[id].ms);
		raft_memstorage_set_membership(nodes[id].ms, &m);
		raft_memstorage_storage(nodes[id].ms, &c.storage);
		raft_create(&c, &m, &nodes[id].r);
		nodes[id].inc = 1;
	}
	for (int id = 1; id <= NN; id++) {
		pump(id);
		push(ev_new(1 + rnd() % TICK, EV_TICK, id)); /* its own phase */
	}
	raft_campaign(nodes[1].r);
	pump(1);
	push(ev_new(P, EV_PROPOSE, 0));
	kill_at = 2000000 + rnd() % 1000000;
	while (nheap > 0) {
		struct ev *e = pop();
		struct node *nd = e->node > 0 ? &nodes[e->node] : NULL;
		int l;

		now = e->at;
		if (now > kill_at + 60000000)
			break;
		if (old == 0 && now >= kill_at) {
			old = leader();
			if (old == 0) {
				/* no leader at the kill time: try again a little later */
				kill_at += TICK;
			} else {
				old_term = raft_term_of(nodes[old].r);
				old_commit = raft_commit_index(nodes[old].r);
				nodes[old].dead = true;
				nodes[old].inc++;
				if (verbose) {
					printf("  seed %llu: kill leader %d term %llu at %llu us; "
					       "timeouts",
					       (unsigned long long)seed, old,
					       (unsigned long long)old_term,
					       (unsigned long long)now);
					for (int id = 1; id <= NN; id++)
						if (id != old)
							printf(" %d:%u", id,
							       nodes[id].r->randomized_timeout);
					printf("\n");
				}
			}
		}
		if (nd && (nd->dead || e->inc != nd->inc)) {
			ev_free(e);
			continue;
		}
		if (nd && e->kind != EV_PERSISTED && nd->busy) {
			e->at = nd->busy_until;
			push(e); /* after the persist: FIFO by seq */
			continue;
		}
		switch (e->kind) {
		case EV_MSG:
			if (verbose > 2 && e->m.type >= RAFT_MSG_VOTE &&
			    e->m.type <= RAFT_MSG_PREVOTE_RESP)
				printf("    %llu us: %d->%d type %u term %llu%s (at: role %d term "
				       "%llu lead "
				       "%llu elapsed %u)\n",
				       (unsigned long long)now, (int)e->m.from, e->node, e->m.type,
				       (unsigned long long)e->m.term, e->m.reject ? " reject" : "",
				       (int)raft_role(nd->r),
				       (unsigned long long)raft_term_of(nd->r),
				       (unsigned long long)raft_leader(nd->r),
				       nd->r->election_elapsed);
			raft_step(nd->r, &e->m);
			pump(e->node);
			break;
		case EV_PERSISTED:
			finish(e->node);
			pump(e->node);
			break;
		case EV_TICK:
			raft_tick(nd->r);
			pump(e->node);
			push(ev_new(now + TICK, EV_TICK, e->node));
			break;
		case EV_PROPOSE:
			l = leader();
			if (l != 0) {
				uint8_t payload[16] = {0};

				prop_id++;
				memcpy(payload, &prop_id, sizeof(prop_id));
				raft_propose(nodes[l].r, payload, sizeof(payload), NULL);
				pump(l);
			}
			push(ev_new(now + P / 2 + rnd() % (P + 1), EV_PROPOSE, 0));
			break;
		}
		ev_free(e);
		if (old == 0) {
			l = leader();
			if (l != 0 && raft_commit_index(nodes[l].r) > old_commit) {
				old_commit = raft_commit_index(nodes[l].r);
				last_commit = now;
			}
			continue;
		}
		l = leader();
		if (l != 0 && raft_term_of(nodes[l].r) > old_term) {
			raft_index c = raft_commit_index(nodes[l].r),
			           li = raft_last_index(nodes[l].r);
			raft_term t = 0;

			if (elected == 0) {
				elected = now;
				res->terms = raft_term_of(nodes[l].r) - old_term;
				if (verbose)
					printf("  seed %llu: node %d leads term %llu after %llu "
					       "us\n",
					       (unsigned long long)seed, l,
					       (unsigned long long)raft_term_of(nodes[l].r),
					       (unsigned long long)(now - kill_at));
			}
			/* a client entry of the new term committed (past the no-op) */
			(void)li;
			for (raft_index i = c;
			     i > 0 && raft_term_at(nodes[l].r, i, &t) == RAFT_OK &&
			     t == raft_term_of(nodes[l].r);
			     i--) {
				const struct raft_entry *en = raft_memstorage_entry(nodes[l].ms, i);

				if (en && en->len == 16) {
					res->elect = elected - kill_at;
					res->gap = now - last_commit;
					ok = true;
					break;
				}
			}
			if (ok)
				break;
		}
	}
	destroy_all();
	return ok;
}

static double pct_ms(const uint64_t *v, size_t n, double p)
{
	return (double)pct(v, n, p) / 1000.0;
}

int main(int argc, char **argv)
{
	uint64_t trials, seed0;
	uint64_t *elect, *gap, terms_hist[8] = {0}, slow = 0, failed = 0;
	size_t n = 0;

	if (argc < 4) {
		fprintf(stderr, "usage: failover NODES DMIN_us DMAX_us [TRIALS] [F_us] [P_us] "
		                "[SEED0] [-v]\n");
		return 2;
	}
	NN = atoi(argv[1]);
	DMIN = strtoull(argv[2], NULL, 10);
	DMAX = strtoull(argv[3], NULL, 10);
	trials = argc > 4 ? strtoull(argv[4], NULL, 10) : 1000;
	if (argc > 5)
		F = strtoull(argv[5], NULL, 10);
	if (argc > 6)
		P = strtoull(argv[6], NULL, 10);
	seed0 = argc > 7 ? strtoull(argv[7], NULL, 10) : 1;
	verbose = argc > 8 ? (int)strlen(argv[8]) - 1 : 0; /* -v, -vv */
	if (NN < 3 || NN > MAXN || DMAX < DMIN || P == 0) {
		fprintf(stderr, "bad arguments\n");
		return 2;
	}
	elect = calloc(trials, sizeof(*elect));
	gap = calloc(trials, sizeof(*gap));
	for (uint64_t s = seed0; s < seed0 + trials; s++) {
		struct result r = {0, 0, 0};

		if (!trial(s, &r)) {
			failed++;
			printf("  seed %llu: no new leader committed within 60 s\n",
			       (unsigned long long)s);
			continue;
		}
		elect[n] = r.elect;
		gap[n] = r.gap;
		n++;
		terms_hist[r.terms < 7 ? r.terms : 7]++;
		if (r.gap > 1500000)
			slow++;
		if (verbose)
			printf("  seed %llu: elect %.0f ms gap %.0f ms terms %llu\n",
			       (unsigned long long)s, (double)r.elect / 1000.0,
			       (double)r.gap / 1000.0, (unsigned long long)r.terms);
	}
	qsort(elect, n, sizeof(*elect), cmp_u64);
	qsort(gap, n, sizeof(*gap), cmp_u64);
	printf("nodes %d delay %llu-%llu us fsync %llu us propose every %llu us: %zu trials "
	       "(%llu without a leader)\n",
	       NN, (unsigned long long)DMIN, (unsigned long long)DMAX, (unsigned long long)F,
	       (unsigned long long)P, n, (unsigned long long)failed);
	printf("  terms per election: 1: %llu  2: %llu  3: %llu  4+: %llu  (more than one: "
	       "%.1f%%)\n",
	       (unsigned long long)terms_hist[1], (unsigned long long)terms_hist[2],
	       (unsigned long long)terms_hist[3],
	       (unsigned long long)(terms_hist[4] + terms_hist[5] + terms_hist[6] + terms_hist[7]),
	       n ? 100.0 * (double)(n - terms_hist[1]) / (double)n : 0.0);
	printf("  elect ms: p50 %.0f p90 %.0f p99 %.0f max %.0f\n", pct_ms(elect, n, 0.5),
	       pct_ms(elect, n, 0.9), pct_ms(elect, n, 0.99),
	       n ? (double)elect[n - 1] / 1000.0 : 0.0);
	printf("  gap ms:   p50 %.0f p90 %.0f p99 %.0f max %.0f; over 1.5 s: %llu (%.1f%%)\n",
	       pct_ms(gap, n, 0.5), pct_ms(gap, n, 0.9), pct_ms(gap, n, 0.99),
	       n ? (double)gap[n - 1] / 1000.0 : 0.0, (unsigned long long)slow,
	       n ? 100.0 * (double)slow / (double)n : 0.0);
	free(elect);
	free(gap);
	return 0;
}
