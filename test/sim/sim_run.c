/*
 * sim_run.c - one simulated run: draw the fault and workload mix from the
 * seed, bootstrap the group, run the chaos phase (faults, client proposals,
 * reads, membership changes, leader transfers, compaction), then heal every
 * fault and check liveness: a leader within a bounded number of ticks, and
 * new proposals and a read completing within a bounded number of ticks, with
 * every member's state machine caught up.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

#define ELECT_BOUND_TICKS (60 * SIM_ELECTION_TICK)
/* Plus PER_ENTRY_TICKS for each entry the slowest member lags the leader at the heal. */
#define PROGRESS_BOUND_TICKS (60 * SIM_ELECTION_TICK)
#define PER_ENTRY_TICKS      2
#define LIVE_PROPOSALS       3
#define RETRY_TICKS          (3 * SIM_ELECTION_TICK)

static void draw_params(struct sim_world *w)
{
	struct sim_rand *r = &w->rng;
	struct sim_params *p = &w->p;

	p->drop = sim_rand_below(r, 4) == 0 ? 0 : (unsigned)sim_rand_below(r, 150);
	p->dup = (unsigned)sim_rand_below(r, 60);
	p->reorder = (unsigned)sim_rand_below(r, 50);
	p->max_delay = 1 + (unsigned)sim_rand_below(r, 6);
	p->part = 2 + (unsigned)sim_rand_below(r, 10);
	p->crash = 1 + (unsigned)sim_rand_below(r, 8);
	p->fsync_delay = (unsigned)sim_rand_below(r, 400);
	p->fsync_max = 1 + (unsigned)sim_rand_below(r, 12);
	p->propose = 50 + (unsigned)sim_rand_below(r, 300);
	p->read = (unsigned)sim_rand_below(r, 60);
	p->transfer = (unsigned)sim_rand_below(r, 5);
	p->conf = (unsigned)sim_rand_below(r, 8);
	p->compact = (unsigned)sim_rand_below(r, 12);
	p->max_removals = w->n == 5 ? 2 : 1;
	p->campaign = (unsigned)sim_rand_below(r, 3);
	p->lazy_boot = sim_rand_below(r, 4) == 0;
	for (unsigned id = 1; id <= w->n; id++)
		p->skew[id] = sim_rand_below(r, 2) ? (unsigned)sim_rand_below(r, 300) : 0;
	p->pre_vote = sim_rand_below(r, 2);
	p->check_quorum = sim_rand_below(r, 2);
	p->max_inflight = 1 + (unsigned)sim_rand_below(r, 64);
	p->max_msg_bytes = 16 + sim_rand_below(r, 2048);
	p->max_inflight_bytes = sim_rand_below(r, 2) ? 0 : 256 + sim_rand_below(r, 8192);
	p->max_uncommitted = sim_rand_below(r, 3) ? 0 : 512 + sim_rand_below(r, 8192);
}

static void bootstrap(struct sim_world *w)
{
	struct raft_membership boot;
	uint64_t kind = sim_rand_below(&w->rng, 100);
	unsigned nv;

	memset(&boot, 0, sizeof(boot));
	if (kind < 45) {
		nv = w->n; /* all voters */
	} else if (kind < 75) {
		nv = 1; /* one voter, the rest non-voters */
		for (unsigned id = 2; id <= w->n; id++)
			boot.nonvoters[boot.n_nonvoters++] = id;
	} else {
		nv = (w->n + 1) / 2; /* a majority of voters; the rest join later */
	}
	for (unsigned id = 1; id <= nv; id++)
		boot.voters[boot.n_voters++] = id;
	sim_trace(w, "bootstrap: %u voters, %u non-voters, %u not yet members", boot.n_voters,
	          boot.n_nonvoters, w->n - boot.n_voters - boot.n_nonvoters);
	for (unsigned id = 1; id <= w->n && !w->failed; id++) {
		struct sim_node *nd = &w->nodes[id];

		nd->id = id;
		sim_store_init(&nd->st);
		/* lazy_boot: node 1 loses its bootstrap Ready in a crash */
		nd->crash_on_fsync = w->p.lazy_boot && id == 1;
		sim_node_start(w, nd, id <= nv + boot.n_nonvoters ? &boot : NULL);
	}
}

/* The up leader with the highest term, or NULL. */
static struct sim_node *find_leader(struct sim_world *w)
{
	struct sim_node *best = NULL;

	for (unsigned id = 1; id <= w->n; id++) {
		struct sim_node *nd = &w->nodes[id];

		if (nd->up && nd->r && nd->role == RAFT_LEADER && (!best || nd->term > best->term))
			best = nd;
	}
	return best;
}

static bool in_list(const raft_id *v, uint32_t n, raft_id id)
{
	for (uint32_t i = 0; i < n; i++)
		if (v[i] == id)
			return true;
	return false;
}

/* A random node that accepts calls now, or NULL. */
static struct sim_node *pick_node(struct sim_world *w)
{
	struct sim_node *c[SIM_MAX_NODES];
	unsigned n = 0;

	for (unsigned id = 1; id <= w->n; id++)
		if (sim_node_ready_for_calls(&w->nodes[id]))
			c[n++] = &w->nodes[id];
	return n ? c[sim_rand_below(&w->rng, n)] : NULL;
}

static uint64_t propose_at(struct sim_world *w, struct sim_node *nd)
{
	uint8_t data[SIM_PROP_LEN];
	struct sim_prop *p;
	raft_index idx = 0;
	uint64_t id;
	int rc;

	if (w->n_props == w->cap_props) {
		w->cap_props = w->cap_props ? 2 * w->cap_props : 256;
		w->props = sim_xrealloc(w->props, w->cap_props * sizeof(*w->props));
	}
	id = ++w->n_props;
	p = &w->props[id - 1];
	memset(p, 0, sizeof(*p));
	p->node = nd->id;
	p->at = w->now;
	sim_prop_encode(id, data);
	rc = raft_propose(nd->r, data, SIM_PROP_LEN, &idx);
	p->status = rc == RAFT_OK ? SIM_PROP_PENDING : SIM_PROP_FAILED;
	sim_trace(w, "propose %" PRIu64 " on node %" PRIu64 ": %s (index %" PRIu64 ")", id, nd->id,
	          raft_strerror(rc), idx);
	sim_observe(w, nd);
	sim_node_pump(w, nd);
	return id;
}

static uint64_t read_at(struct sim_world *w, struct sim_node *nd)
{
	struct sim_read *r;
	uint64_t ctx;
	int rc;

	if (w->n_reads == w->cap_reads) {
		w->cap_reads = w->cap_reads ? 2 * w->cap_reads : 64;
		w->reads = sim_xrealloc(w->reads, w->cap_reads * sizeof(*w->reads));
	}
	ctx = ++w->n_reads;
	r = &w->reads[ctx - 1];
	r->node = nd->id;
	r->min_index = w->max_acked;
	r->done = false;
	rc = raft_read_index(nd->r, ctx);
	sim_trace(w, "read %" PRIu64 " on node %" PRIu64 ": %s", ctx, nd->id, raft_strerror(rc));
	if (rc != RAFT_OK)
		r->done = true;
	sim_observe(w, nd);
	sim_node_pump(w, nd);
	return ctx;
}

static void transfer(struct sim_world *w)
{
	struct sim_node *l = find_leader(w);
	const struct raft_membership *m;
	raft_id target;
	int rc;

	if (!l || !sim_node_ready_for_calls(l))
		return;
	m = raft_membership(l->r);
	if (m->n_voters < 2)
		return;
	target = m->voters[sim_rand_below(&w->rng, m->n_voters)];
	if (target == l->id)
		return;
	rc = raft_transfer_leader(l->r, target);
	if (rc == RAFT_OK)
		w->n_transfers++;
	sim_trace(w, "transfer leadership %" PRIu64 " -> %" PRIu64 ": %s", l->id, target,
	          raft_strerror(rc));
	sim_observe(w, l);
	sim_node_pump(w, l);
}

static void conf_change(struct sim_world *w)
{
	struct sim_node *l = find_leader(w);
	const struct raft_membership *m;
	struct raft_conf_change cc;
	raft_id cand[3 * SIM_MAX_NODES];
	uint32_t types[3 * SIM_MAX_NODES];
	unsigned n = 0, pick;
	char ctx[16];
	raft_index idx = 0;
	int rc;

	if (!l || !sim_node_ready_for_calls(l))
		return;
	m = raft_membership(l->r);
	for (unsigned id = 1; id <= w->n; id++) {
		struct sim_node *nd = &w->nodes[id];

		if (nd->retired || nd->retire_pending || in_list(m->removed, m->n_removed, id))
			continue;
		if (in_list(m->nonvoters, m->n_nonvoters, id)) {
			cand[n] = id;
			types[n++] = RAFT_CC_ADD_VOTER;
		}
		if (!raft_membership_contains(m, id)) {
			cand[n] = id;
			types[n++] = RAFT_CC_ADD_NONVOTER;
		}
		if (raft_membership_contains(m, id) && w->removals < w->p.max_removals &&
		    (!in_list(m->voters, m->n_voters, id) || m->n_voters >= 3)) {
			cand[n] = id;
			types[n++] = RAFT_CC_REMOVE;
		}
	}
	if (n == 0)
		return;
	pick = (unsigned)sim_rand_below(&w->rng, n);
	memset(&cc, 0, sizeof(cc));
	cc.type = types[pick];
	cc.node_id = cand[pick];
	snprintf(ctx, sizeof(ctx), "node-%u", (unsigned)cc.node_id);
	cc.context = (const uint8_t *)ctx;
	cc.context_len = (uint32_t)strlen(ctx);
	rc = raft_propose_conf_change(l->r, &cc, &idx);
	if (rc == RAFT_OK && cc.type == RAFT_CC_REMOVE)
		w->removals++;
	if (rc == RAFT_OK)
		w->n_conf++;
	sim_trace(w,
	          "conf change on leader %" PRIu64 ": %s node %" PRIu64 ": %s (index %" PRIu64 ")",
	          l->id,
	          cc.type == RAFT_CC_ADD_VOTER      ? "add voter"
	          : cc.type == RAFT_CC_ADD_NONVOTER ? "add non-voter"
	                                            : "remove",
	          cc.node_id, raft_strerror(rc), idx);
	sim_observe(w, l);
	sim_node_pump(w, l);
}

static void compact(struct sim_world *w, struct sim_node *nd)
{
	struct sim_store *s = &nd->st;
	raft_index keep, upto;

	if (!sim_store_take_snapshot(s))
		return;
	keep = sim_rand_below(&w->rng, 8);
	upto = s->snap.meta.index > keep ? s->snap.meta.index - keep : 0;
	if (upto >= s->first) {
		sim_store_compact(s, upto);
		raft_compacted(nd->r, upto);
	}
	sim_trace(w, "node %" PRIu64 " snapshot at %" PRIu64 ", log now [%" PRIu64 ", %" PRIu64 "]",
	          nd->id, s->snap.meta.index, s->first, sim_store_last(s));
	sim_observe(w, nd);
	sim_node_pump(w, nd);
}

static void partition(struct sim_world *w)
{
	struct sim_net *net = &w->net;
	struct sim_node *l = find_leader(w);
	uint64_t kind = sim_rand_below(&w->rng, 6);
	raft_id victim = l ? l->id : 1 + sim_rand_below(&w->rng, w->n);

	memset(net->blocked, 0, sizeof(net->blocked));
	if (kind == 0) {
		sim_trace(w, "network heals");
	} else if (kind == 1 || kind == 2) {
		uint64_t mask = kind == 1 ? 1 + sim_rand_below(&w->rng, (1u << w->n) - 2)
		                          : 1u << (victim - 1);

		for (unsigned a = 1; a <= w->n; a++)
			for (unsigned b = 1; b <= w->n; b++)
				net->blocked[a][b] =
				        ((mask >> (a - 1)) & 1) != ((mask >> (b - 1)) & 1);
		sim_trace(w, "partition: side %#" PRIx64 " cut off", mask);
	} else if (kind == 3) {
		unsigned k = 1 + (unsigned)sim_rand_below(&w->rng, 3);

		for (unsigned i = 0; i < k; i++) {
			unsigned a = 1 + (unsigned)sim_rand_below(&w->rng, w->n);
			unsigned b = 1 + (unsigned)sim_rand_below(&w->rng, w->n);

			if (a != b) {
				net->blocked[a][b] = true;
				sim_trace(w, "one-way cut %u -> %u", a, b);
			}
		}
	} else {
		for (unsigned b = 1; b <= w->n; b++)
			if (b != victim) {
				if (kind == 4)
					net->blocked[victim][b] = true;
				else
					net->blocked[b][victim] = true;
			}
		sim_trace(w, "one-way: node %" PRIu64 " %s", victim,
		          kind == 4 ? "cannot send" : "cannot receive");
	}
}

static void crash(struct sim_world *w)
{
	struct sim_node *l = find_leader(w);
	struct sim_node *nd;

	if (l && sim_rand_below(&w->rng, 2)) {
		if (sim_rand_below(&w->rng, 2)) {
			l->crash_on_fsync = true;
			sim_trace(w, "node %" PRIu64 " will crash during its next log fsync",
			          l->id);
			return;
		}
		nd = l;
	} else {
		nd = &w->nodes[1 + sim_rand_below(&w->rng, w->n)];
		if (nd->up && sim_rand_below(&w->rng, 4) == 0) {
			nd->crash_on_fsync = true;
			sim_trace(w, "node %" PRIu64 " will crash during its next log fsync",
			          nd->id);
			return;
		}
	}
	if (nd->up && !nd->retired)
		sim_node_crash(w, nd, SIM_TICK_UNITS * (3 + sim_rand_below(&w->rng, 60)));
}

static void restart_due(struct sim_world *w, bool all)
{
	for (unsigned id = 1; id <= w->n && !w->failed; id++) {
		struct sim_node *nd = &w->nodes[id];

		if (!nd->up && !nd->retired && (all || nd->restart_at <= w->now))
			sim_node_start(w, nd, NULL);
	}
}

static void chaos(struct sim_world *w)
{
	struct sim_node *nd;

	if (sim_rand_permille(&w->rng, w->p.part))
		partition(w);
	if (sim_rand_permille(&w->rng, w->p.crash))
		crash(w);
	restart_due(w, false);
	if (sim_rand_permille(&w->rng, w->p.propose) && (nd = pick_node(w)))
		propose_at(w, nd);
	if (sim_rand_permille(&w->rng, w->p.read) && (nd = pick_node(w)))
		read_at(w, nd);
	if (sim_rand_permille(&w->rng, w->p.transfer))
		transfer(w);
	if (sim_rand_permille(&w->rng, w->p.conf))
		conf_change(w);
	if (sim_rand_permille(&w->rng, w->p.compact) && (nd = pick_node(w)))
		compact(w, nd);
	if (sim_rand_permille(&w->rng, w->p.campaign) && (nd = pick_node(w))) {
		int rc = raft_campaign(nd->r);

		sim_trace(w, "node %" PRIu64 " told to campaign: %s", nd->id, raft_strerror(rc));
		sim_observe(w, nd);
		sim_node_pump(w, nd);
	}
}

/* One unit of virtual time: finished persists, deliveries, ticks, retirements. */
static void step(struct sim_world *w)
{
	struct sim_item *it;
	struct sim_node *any;

	w->now++;
	/* After the heal, an engine's periodic snapshot policy (a follower added
	 * after the last snapshot needs a newer one that names it). */
	if (w->healed && w->now % (10 * SIM_TICK_UNITS) == 0 && (any = pick_node(w)))
		compact(w, any);
	for (unsigned id = 1; id <= w->n && !w->failed; id++)
		sim_node_persist_due(w, &w->nodes[id]);
	while (!w->failed && (it = sim_net_pop_due(&w->net, w->now)))
		sim_node_deliver(w, it);
	if (w->now % SIM_TICK_UNITS == 0) {
		if (w->now % (SIM_TICK_UNITS * SIM_ELECTION_TICK) == 0)
			sim_trace(w, "---- tick %" PRIu64 " ----", w->now / SIM_TICK_UNITS);
		for (unsigned id = 1; id <= w->n && !w->failed; id++) {
			struct sim_node *nd = &w->nodes[id];

			if (!sim_node_ready_for_calls(nd))
				continue;
			/* a slow clock misses ticks (only while faults last) */
			if (!w->healed && sim_rand_permille(&w->rng, w->p.skew[id]))
				continue;
			raft_tick(nd->r);
			sim_observe(w, nd);
			sim_node_pump(w, nd);
		}
	}
	for (unsigned id = 1; id <= w->n && !w->failed; id++) {
		struct sim_node *nd = &w->nodes[id];

		if (nd->retire_pending && !nd->retired) {
			sim_trace(w, "node %u removed from the group: shut down for good", id);
			if (nd->up)
				sim_node_crash(w, nd, 0);
			nd->retired = true;
		}
	}
}

/* A leader whose term no up member exceeds, or NULL. */
static struct sim_node *stable_leader(struct sim_world *w)
{
	struct sim_node *l = find_leader(w);
	const struct raft_membership *m;

	if (!l)
		return NULL;
	m = raft_membership(l->r);
	for (unsigned id = 1; id <= w->n; id++) {
		struct sim_node *nd = &w->nodes[id];

		if (nd->up && raft_membership_contains(m, id) && nd->term > l->term)
			return NULL;
	}
	return l;
}

static void heal(struct sim_world *w)
{
	w->healed = true;
	memset(w->net.blocked, 0, sizeof(w->net.blocked));
	w->p.drop = w->p.dup = w->p.reorder = 0;
	if (w->p.max_delay > 3)
		w->p.max_delay = 3;
	for (unsigned id = 1; id <= w->n; id++)
		w->nodes[id].crash_on_fsync = false;
	sim_trace(w, "==== all faults heal ====");
	restart_due(w, true);
}

/* After the heal: all members caught up with the liveness proposals? */
static bool caught_up(struct sim_world *w, const struct raft_membership *m, raft_index target,
                      char *why, size_t len)
{
	for (unsigned id = 1; id <= w->n; id++) {
		struct sim_node *nd = &w->nodes[id];

		if (!raft_membership_contains(m, id))
			continue;
		if (!nd->up || nd->st.applied < target) {
			snprintf(why, len, "node %u applied %" PRIu64 " of %" PRIu64 "%s", id,
			         nd->st.applied, target, nd->up ? "" : " (down)");
			return false;
		}
	}
	return true;
}

/* How many entries the slowest up member lags behind leader l's log. */
static uint64_t lag(struct sim_world *w, struct sim_node *l)
{
	const struct raft_membership *m = raft_membership(l->r);
	raft_index last = raft_last_index(l->r);
	uint64_t most = 0;

	for (unsigned id = 1; id <= w->n; id++) {
		struct sim_node *nd = &w->nodes[id];

		if (raft_membership_contains(m, id) && nd->st.applied < last && last - nd->st.applied > most)
			most = last - nd->st.applied;
	}
	return most;
}

static void liveness(struct sim_world *w)
{
	uint64_t t0 = w->now, live[LIVE_PROPOSALS], read = 0, last_try = 0, read_try = 0;
	unsigned n_live = 0;
	struct sim_node *l = NULL;
	char why[160] = "no stable leader";
	uint64_t bound;

	while (!w->failed && !(l = stable_leader(w))) {
		if (w->now - t0 > (uint64_t)ELECT_BOUND_TICKS * SIM_TICK_UNITS) {
			sim_fail(w, "liveness-election", "no leader %u ticks after the heal",
			         ELECT_BOUND_TICKS);
			return;
		}
		step(w);
	}
	if (w->failed)
		return;
	sim_trace(w, "liveness: leader %" PRIu64 " term %" PRIu64 " after %" PRIu64 " ticks", l->id,
	          l->term, (w->now - t0) / SIM_TICK_UNITS);
	t0 = w->now;
	bound = PROGRESS_BOUND_TICKS + PER_ENTRY_TICKS * lag(w, l);
	for (;;) {
		struct sim_prop *p = n_live ? &w->props[live[n_live - 1] - 1] : NULL;
		bool done = n_live == LIVE_PROPOSALS && p->status == SIM_PROP_ACKED && read &&
		            w->reads[read - 1].done;

		if (w->failed)
			return;
		l = stable_leader(w);
		if (l && !done)
			snprintf(why, sizeof(why),
			         "leader %" PRIu64 " term %" PRIu64 " commit %" PRIu64
			         " last %" PRIu64,
			         l->id, l->term, raft_commit_index(l->r), raft_last_index(l->r));
		if (done && l && caught_up(w, raft_membership(l->r), p->index, why, sizeof(why)))
			break;
		if (w->now - t0 > bound * SIM_TICK_UNITS) {
			sim_fail(w, "liveness-progress",
			         "%" PRIu64 " ticks after a leader was elected: %u/%u proposals "
			         "acknowledged, read %s; %s",
			         bound, n_live - (p && p->status != SIM_PROP_ACKED), LIVE_PROPOSALS,
			         read && w->reads[read - 1].done ? "done" : "pending", why);
			return;
		}
		if (l && sim_node_ready_for_calls(l)) {
			bool stale = w->now - last_try > (uint64_t)RETRY_TICKS * SIM_TICK_UNITS;

			if (!p || (p->status == SIM_PROP_ACKED && n_live < LIVE_PROPOSALS)) {
				live[n_live++] = propose_at(w, l);
				last_try = w->now;
			} else if (p->status != SIM_PROP_ACKED &&
			           (p->status == SIM_PROP_FAILED || stale)) {
				live[n_live - 1] = propose_at(w, l); /* retry with a new id */
				last_try = w->now;
			}
			if (sim_node_ready_for_calls(l) &&
			    (!read ||
			     (!w->reads[read - 1].done &&
			      w->now - read_try > (uint64_t)RETRY_TICKS * SIM_TICK_UNITS))) {
				read = read_at(w, l);
				read_try = w->now;
			}
		}
		step(w);
	}
	sim_trace(w, "liveness: %u proposals and a read done in %" PRIu64 " ticks", LIVE_PROPOSALS,
	          (w->now - t0) / SIM_TICK_UNITS);
	sim_check_final(w, raft_membership(l->r));
}

static void destroy(struct sim_world *w)
{
	for (unsigned id = 1; id <= w->n; id++) {
		struct sim_node *nd = &w->nodes[id];

		if (nd->r)
			raft_destroy(nd->r);
		nd->r = NULL;
		sim_snapshot_free(&nd->in_snap);
		sim_store_free(&nd->st);
	}
	sim_net_free(&w->net);
	free(w->props);
	free(w->reads);
	sim_check_free(w);
}

bool sim_run(const struct sim_opts *o, char *prop, size_t prop_len, char *why, size_t why_len)
{
	struct sim_world *w = calloc(1, sizeof(*w));
	bool ok;

	if (!w) {
		snprintf(prop, prop_len, "harness");
		snprintf(why, why_len, "out of memory");
		return false;
	}
	w->seed = o->seed;
	w->n = o->nodes;
	w->trace = o->trace;
	sim_rand_seed(&w->rng, o->seed);
	draw_params(w);
	sim_trace(w,
	          "seed %" PRIu64 ", %u nodes: drop %u dup %u reorder %u delay %u part %u crash %u "
	          "fsync-late %u/%u prevote %d checkquorum %d inflight %u msgbytes %" PRIu64,
	          o->seed, w->n, w->p.drop, w->p.dup, w->p.reorder, w->p.max_delay, w->p.part,
	          w->p.crash, w->p.fsync_delay, w->p.fsync_max, w->p.pre_vote, w->p.check_quorum,
	          w->p.max_inflight, w->p.max_msg_bytes);
	bootstrap(w);
	while (!w->failed && w->now < o->steps) {
		chaos(w);
		step(w);
	}
	if (!w->failed) {
		heal(w);
		liveness(w);
	}
	sim_trace(w,
	          "end: %" PRIu64 " units, %" PRIu64 " elections, %" PRIu64 " crashes, %" PRIu64
	          " snapshots installed, %" PRIu64 " conf changes, %" PRIu64
	          " transfers, %zu proposals, %" PRIu64 " acked, %" PRIu64 " reads",
	          w->now, w->n_elections, w->n_crashes, w->n_snapshots, w->n_conf, w->n_transfers,
	          w->n_props, w->n_acked, w->n_reads_ok);
	ok = !w->failed;
	snprintf(prop, prop_len, "%s", w->prop);
	snprintf(why, why_len, "%s", w->why);
	destroy(w);
	free(w);
	return ok;
}
