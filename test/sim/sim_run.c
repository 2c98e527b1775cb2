/*
 * sim_run.c - one simulated run: draw the fault and workload mix from the
 * seed, bootstrap the group, run the chaos phase (faults, client proposals,
 * reads, membership changes and leader transfers, requested on the leader or
 * forwarded from followers, compaction, quiet spells in which the group may
 * quiesce), then heal every fault and check liveness: a leader within a
 * bounded number of ticks, and new proposals and a read completing within a
 * bounded number of ticks, with every member's state machine caught up.
 * Then the probes of sim_probe.c.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

#define ELECT_BOUND_ELECTIONS    60 /* election timeouts to elect a leader after the heal */
#define PROGRESS_BOUND_ELECTIONS 60 /* ... and then to finish the liveness work, */
#define PER_ENTRY_TICKS          2  /* plus this for each entry the slowest member lags */
#define LIVE_PROPOSALS           3
#define BIG_PROP                 (3 * 65536) /* a big proposal spans several arena blocks */

static void draw_params(struct sim_world *w)
{
	struct sim_rand *r = &w->rng;
	struct sim_params *p = &w->p;
	static const unsigned small[] = {0, 64, 2048};
	struct sim_rand own;

	p->elect_tick = 6 + (unsigned)sim_rand_below(r, 20);
	p->hb_tick = 1 + (unsigned)sim_rand_below(r, p->elect_tick / 4);
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
	p->transfer = (unsigned)sim_rand_below(r, 6);
	p->conf = (unsigned)sim_rand_below(r, 10);
	p->compact = (unsigned)sim_rand_below(r, 12);
	p->max_removals = (w->n == 5 ? 2 : 1) + (w->o.two_remove ? 1 : 0);
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
	p->max_committed = sim_rand_below(r, 3) ? 0 : 16 + sim_rand_below(r, 512);
	p->batch = sim_rand_below(r, 2);
	p->loop = 150 + (unsigned)sim_rand_below(r, 850);
	p->big = sim_rand_below(r, 4) ? 0 : 2 + (unsigned)sim_rand_below(r, 15);
	p->max_small = small[sim_rand_below(r, 3)];
	p->nomem = sim_rand_below(r, 4) ? 0 : 1 + (unsigned)sim_rand_below(r, 200);
	p->st_fail = sim_rand_below(r, 8) ? 0 : 1 + (unsigned)sim_rand_below(r, 20);
	p->snap_fail = sim_rand_below(r, 3) ? 0 : (unsigned)sim_rand_below(r, 300);
	p->snap_delay = 1 + (unsigned)sim_rand_below(r, sim_rand_below(r, 2) ? 5 : 200);
	p->quiesce_tick =
	        sim_rand_below(r, 3) ? 0 : p->elect_tick * (1 + (unsigned)sim_rand_below(r, 3));
	p->wake = p->quiesce_tick ? (unsigned)sim_rand_below(r, 4) : 0;
	p->idle = sim_rand_below(r, p->quiesce_tick ? 4 : 2) == 0
	                  ? 0
	                  : 1 + (unsigned)sim_rand_below(r, 8);
	p->kill = sim_rand_below(r, 3) ? 0 : 100 + (unsigned)sim_rand_below(r, 600);
	p->slow = sim_rand_below(r, 2) ? 0 : 1 + sim_rand_below(r, w->n);
	p->reorder_appends = sim_rand_below(r, 3) ? 0 : (unsigned)sim_rand_below(r, 300);
	if (sim_rand_below(r, 4) == 0)
		p->conf *= 5; /* membership churn */
	if (sim_rand_below(r, 4) == 0) {
		p->compact = 30 + (unsigned)sim_rand_below(r, 100); /* snapshots galore */
		p->dup_snap = 100 + (unsigned)sim_rand_below(r, 400);
	}
	/* The state machine's applied index is durable after every Ready, or it lags, far. */
	p->sm_flush = sim_rand_below(r, 3) == 0
	                      ? 1000
	                      : 1 + (unsigned)sim_rand_below(r, sim_rand_below(r, 2) ? 20 : 300);
	/* From a stream of its own: a seed's run stays as it was up to its first snapshot. */
	sim_rand_seed(&own, w->seed ^ 0x736d5f6c6167ULL);
	p->sm_lag = sim_rand_below(&own, 2) ? 0 : 1 + (unsigned)sim_rand_below(&own, 1000);
	/* Deferred leader syncs, from a stream of their own too: without them a seed runs as
	 * it did before they existed. */
	sim_rand_seed(&w->sync_rng, w->seed ^ 0x646566657273ULL);
	p->defer = w->o.defer >= 0 ? w->o.defer != 0 : sim_rand_below(&w->sync_rng, 2);
	if (p->defer) {
		struct sim_rand *d = &w->sync_rng;

		p->sync_zero = (unsigned)sim_rand_below(d, 500);
		p->sync_never = sim_rand_below(d, 2) ? 0 : 1 + (unsigned)sim_rand_below(d, 100);
		p->sync_long = (unsigned)sim_rand_below(d, 200);
		p->sync_max = 1 + (unsigned)sim_rand_below(d, 4 * SIM_TICK_UNITS);
		p->crash_keep = (unsigned)sim_rand_below(d, 700);
	}
}

static void bootstrap(struct sim_world *w)
{
	struct raft_membership boot;
	uint64_t kind = sim_rand_below(&w->rng, 100);
	unsigned nv;

	memset(&boot, 0, sizeof(boot));
	if (kind < 40) {
		nv = w->n; /* all voters */
	} else if (kind < 60) {
		nv = 1; /* one voter, the rest non-voters */
	} else if (kind < 80) {
		nv = (w->n + 1) / 2; /* a majority of voters, the rest non-voters */
	} else {
		nv = (w->n + 1) / 2; /* a majority of voters; the rest join later */
	}
	if (kind < 80)
		for (unsigned id = nv + 1; id <= w->n; id++)
			boot.nonvoters[boot.n_nonvoters++] = id;
	for (unsigned id = 1; id <= nv; id++)
		boot.voters[boot.n_voters++] = id;
	sim_trace(w, "bootstrap: %u voters, %u non-voters, %u not yet members", boot.n_voters,
	          boot.n_nonvoters, w->n - boot.n_voters - boot.n_nonvoters);
	for (unsigned id = 1; id <= w->n && !w->failed; id++) {
		struct sim_node *nd = &w->nodes[id];

		nd->id = id;
		sim_store_init(&nd->st);
		nd->st.fail_rng = &w->fault_rng;
		nd->st.fail = w->p.st_fail;
		/* lazy_boot: node 1 loses its bootstrap Ready in a crash */
		nd->crash_on_fsync = w->p.lazy_boot && id == 1;
		sim_node_start(w, nd, id <= nv + boot.n_nonvoters ? &boot : NULL);
	}
}

struct sim_node *sim_find_leader(struct sim_world *w)
{
	struct sim_node *best = NULL;

	for (unsigned id = 1; id <= w->n; id++) {
		struct sim_node *nd = &w->nodes[id];

		if (nd->up && nd->r && !nd->stopped && nd->role == RAFT_LEADER &&
		    (!best || nd->term > best->term))
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

uint64_t sim_propose(struct sim_world *w, struct sim_node *nd)
{
	static uint8_t buf[SIM_PROP_MIN + BIG_PROP + 1024];
	uint32_t len = SIM_PROP_MIN;
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
	if (sim_rand_permille(&w->rng, w->p.big))
		len += BIG_PROP / 2 + (uint32_t)sim_rand_below(&w->rng, BIG_PROP / 2 + 1024);
	else
		len += (uint32_t)sim_rand_below(&w->rng, w->p.max_small + 1);
	sim_prop_encode(id, buf, len);
	rc = raft_propose(nd->r, buf, len, &idx);
	p->status = rc == RAFT_OK ? SIM_PROP_PENDING : SIM_PROP_FAILED;
	sim_trace(w, "propose %" PRIu64 " (%u bytes) on node %" PRIu64 ": %s (index %" PRIu64 ")",
	          id, len, nd->id, raft_strerror(rc), idx);
	sim_observe(w, nd);
	sim_node_pump(w, nd);
	return id;
}

uint64_t sim_read(struct sim_world *w, struct sim_node *nd)
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
	r->min_index = w->max_commit > w->max_read ? w->max_commit : w->max_read;
	r->done = false;
	rc = raft_read_index(nd->r, ctx);
	sim_trace(w, "read %" PRIu64 " on node %" PRIu64 ": %s", ctx, nd->id, raft_strerror(rc));
	if (rc != RAFT_OK)
		r->done = true;
	sim_observe(w, nd);
	sim_node_pump(w, nd);
	return ctx;
}

/* The voter of m whose durable log is shortest (a lagging transfer target), not self. */
static raft_id laggard(struct sim_world *w, const struct raft_membership *m, raft_id self)
{
	raft_id best = 0;

	for (uint32_t i = 0; i < m->n_voters; i++) {
		raft_id id = m->voters[i];

		if (id != self && id <= w->n &&
		    (!best ||
		     sim_store_last(&w->nodes[id].st) < sim_store_last(&w->nodes[best].st)))
			best = id;
	}
	return best;
}

/* A transfer asked of the leader (to any voter, or to the one that lags most), or by a follower for
 * itself. */
static void transfer(struct sim_world *w)
{
	struct sim_node *l = sim_find_leader(w), *on = l;
	const struct raft_membership *m;
	uint64_t kind = sim_rand_below(&w->rng, 3);
	raft_id target;
	int rc;

	if (kind == 2)
		on = pick_node(w);
	if (!on)
		return;
	m = raft_membership(on->r);
	if (kind == 2)
		target = on->id;
	else if (kind == 1)
		target = laggard(w, m, on->id);
	else
		target = m->n_voters ? m->voters[sim_rand_below(&w->rng, m->n_voters)] : 0;
	if (target == 0 || (kind != 2 && target == on->id))
		return;
	rc = raft_transfer_leader(on->r, target);
	if (rc == RAFT_OK)
		w->n_transfers++;
	sim_trace(w, "transfer leadership to %" PRIu64 " asked of node %" PRIu64 ": %s", target,
	          on->id, raft_strerror(rc));
	sim_observe(w, on);
	sim_node_pump(w, on);
}

/* One membership change proposed on node `on` (forwarded if a follower). */
static void conf_change_on(struct sim_world *w, struct sim_node *on)
{
	const struct raft_membership *m = raft_membership(on->r);
	bool leader = raft_role(on->r) == RAFT_LEADER;
	struct raft_conf_change cc;
	raft_id cand[4 * SIM_MAX_NODES];
	uint32_t types[4 * SIM_MAX_NODES];
	unsigned n = 0, pick;
	char ctx[16];
	raft_index idx = 0;
	int rc;

	for (unsigned id = 1; id <= w->n; id++) {
		struct sim_node *nd = &w->nodes[id];
		bool removed = in_list(m->removed, m->n_removed, id);

		for (unsigned i = 0; i < w->n_removed; i++)
			removed |= w->removed[i].id == id;

		if (removed) {
			/* Never accepted again: the core must refuse (rarely tried). */
			if (sim_rand_below(&w->rng, 8) == 0) {
				cand[n] = id;
				types[n++] = RAFT_CC_ADD_VOTER;
			}
			continue;
		}
		if (nd->retired || nd->retire_pending)
			continue;
		if (in_list(m->nonvoters, m->n_nonvoters, id)) {
			cand[n] = id;
			types[n++] = RAFT_CC_ADD_VOTER; /* promote */
		}
		if (!raft_membership_contains(m, id)) {
			cand[n] = id;
			types[n++] = RAFT_CC_ADD_NONVOTER;
			cand[n] = id;
			types[n++] = RAFT_CC_ADD_VOTER; /* directly */
		}
		/*
		 * Removals only on the leader (a forwarded removal could meet a
		 * promotion on the way), and a voter only from three or more, as an
		 * operator would without force, unless --two-remove: then from two
		 * too.  Of two voters, the one left must not restart without knowing
		 * that the removal committed once the removed one has gone
		 * (configurations take effect when applied): a leader's appends that
		 * tell such a commit leave after its synced save of it (round.c
		 * conf_commit_due, here ready_begin), and a leader of two never
		 * commits its own removal but hands over (replication.c
		 * cap_self_removal); review 41.
		 */
		if (leader && raft_membership_contains(m, id) && w->removals < w->p.max_removals &&
		    (!in_list(m->voters, m->n_voters, id) || m->n_voters >= 3 ||
		     (w->o.two_remove && m->n_voters == 2))) {
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
	rc = raft_propose_conf_change(on->r, &cc, &idx);
	if (rc == RAFT_OK && cc.type == RAFT_CC_REMOVE)
		w->removals++;
	if (rc == RAFT_OK)
		w->n_conf++;
	sim_trace(w, "conf change on node %" PRIu64 ": %s node %" PRIu64 ": %s (index %" PRIu64 ")",
	          on->id,
	          cc.type == RAFT_CC_ADD_VOTER      ? "add voter"
	          : cc.type == RAFT_CC_ADD_NONVOTER ? "add non-voter"
	                                            : "remove",
	          cc.node_id, raft_strerror(rc), idx);
	sim_observe(w, on);
	sim_node_pump(w, on);
}

/* Membership changes: mostly on the leader, sometimes forwarded, sometimes several at once. */
static void conf_change(struct sim_world *w)
{
	unsigned burst =
	        sim_rand_below(&w->rng, 2) == 0 ? 2 + (unsigned)sim_rand_below(&w->rng, 2) : 1;

	for (unsigned i = 0; i < burst && !w->failed; i++) {
		struct sim_node *on =
		        sim_rand_below(&w->rng, 10) < 7 ? sim_find_leader(w) : pick_node(w);

		if (on && sim_node_ready_for_calls(on))
			conf_change_on(w, on);
	}
}

static void compact(struct sim_world *w, struct sim_node *nd)
{
	struct sim_store *s = &nd->st;
	raft_index keep, upto;

	/* As the engine: at the state machine's durable applied index, not past the core's. */
	if (!sim_store_take_snapshot(s, s->durable < nd->applied ? s->durable : nd->applied))
		return;
	keep = sim_rand_below(&w->rng, 8);
	upto = s->snap.index > keep ? s->snap.index - keep : 0;
	if (upto >= s->first) {
		sim_store_compact(s, upto);
		raft_compacted(nd->r, upto);
	}
	sim_trace(w, "node %" PRIu64 " snapshot at %" PRIu64 ", log now [%" PRIu64 ", %" PRIu64 "]",
	          nd->id, s->snap.index, s->first, sim_store_last(s));
	sim_observe(w, nd);
	sim_node_pump(w, nd);
}

static void partition(struct sim_world *w)
{
	struct sim_net *net = &w->net;
	struct sim_node *l = sim_find_leader(w);
	uint64_t kind = sim_rand_below(&w->rng, w->n_removed ? 7 : 6);
	raft_id victim = l ? l->id : 1 + sim_rand_below(&w->rng, w->n);

	memset(net->blocked, 0, sizeof(net->blocked));
	if (kind == 0) {
		sim_trace(w, "network heals");
	} else if (kind == 1 || kind == 2 || kind == 6) {
		uint64_t mask = kind == 1 ? 1 + sim_rand_below(&w->rng, (1u << w->n) - 2)
		                          : 1u << (victim - 1);

		/* Removed nodes that do not know it yet, with one member: their side. */
		if (kind == 6) {
			mask = 1u << sim_rand_below(&w->rng, w->n);
			for (unsigned i = 0; i < w->n_removed; i++)
				if (w->removed[i].id <= w->n)
					mask |= 1u << (w->removed[i].id - 1);
		}

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
	struct sim_node *l = sim_find_leader(w);
	struct sim_node *nd;

	if (l && sim_rand_below(&w->rng, 2)) {
		nd = l;
	} else {
		nd = &w->nodes[1 + sim_rand_below(&w->rng, w->n)];
	}
	/* Half the time the crash hits the node's next write, whatever it holds. */
	if (nd->up && sim_rand_below(&w->rng, 2) == 0) {
		nd->crash_on_fsync = true;
		sim_trace(w, "node %" PRIu64 " will crash during its next fsync", nd->id);
		return;
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

/* Leader killer: some new leaders crash or are cut off soon after their election, or
 * after they applied a membership change (its commit index may not be saved). */
static void kill_leaders(struct sim_world *w)
{
	struct sim_node *l = sim_find_leader(w), *nd = &w->nodes[w->kill_id];

	if (w->kill_id != 0 && w->now >= w->kill_at) {
		w->kill_id = 0;
		if (nd->up && nd->role == RAFT_LEADER && sim_rand_below(&w->rng, 2)) {
			sim_node_crash(w, nd, SIM_TICK_UNITS * (3 + sim_rand_below(&w->rng, 30)));
		} else if (nd->up && nd->role == RAFT_LEADER) {
			for (unsigned j = 1; j <= w->n; j++)
				w->net.blocked[nd->id][j] = w->net.blocked[j][nd->id] = j != nd->id;
			sim_trace(w, "new leader %" PRIu64 " cut off", nd->id);
		}
	}
	if (l && l->r &&
	    (l->term > w->killed_term || raft_membership(l->r)->config_index > w->killed_conf)) {
		w->killed_term = l->term;
		w->killed_conf = raft_membership(l->r)->config_index;
		if (sim_rand_permille(&w->rng, w->p.kill)) {
			w->kill_id = l->id;
			w->kill_at = w->now + sim_rand_below(&w->rng, 3 * SIM_TICK_UNITS);
		}
	}
}

static void chaos(struct sim_world *w)
{
	struct sim_node *nd;

	if (!w->quiet && sim_rand_permille(&w->rng, w->p.idle)) {
		w->quiet = true;
		w->quiet_until = w->now + (uint64_t)SIM_TICK_UNITS * w->p.elect_tick *
		                                  (2 + sim_rand_below(&w->rng, 6));
		sim_trace(w, "quiet spell until %" PRIu64, w->quiet_until);
	} else if (w->quiet && w->now >= w->quiet_until) {
		w->quiet = false;
	}
	if (sim_rand_permille(&w->rng, w->p.part))
		partition(w);
	if (sim_rand_permille(&w->rng, w->p.crash))
		crash(w);
	kill_leaders(w);
	if (sim_rand_permille(&w->rng, w->p.compact) && (nd = pick_node(w)))
		compact(w, nd);
	if (sim_rand_permille(&w->rng, w->p.wake) && (nd = pick_node(w))) {
		sim_trace(w, "node %" PRIu64 " woken: %s", nd->id, raft_strerror(raft_wake(nd->r)));
		sim_observe(w, nd);
		sim_node_pump(w, nd);
	}
	if (w->quiet)
		return;
	if (sim_rand_permille(&w->rng, w->p.propose) && (nd = pick_node(w)))
		sim_propose(w, nd);
	if (sim_rand_permille(&w->rng, w->p.read) && (nd = pick_node(w)))
		sim_read(w, nd);
	if (sim_rand_permille(&w->rng, w->p.transfer))
		transfer(w);
	if (sim_rand_permille(&w->rng, w->p.conf))
		conf_change(w);
	if (sim_rand_permille(&w->rng, w->p.campaign) && (nd = pick_node(w))) {
		int rc = raft_campaign(nd->r);

		sim_trace(w, "node %" PRIu64 " told to campaign: %s", nd->id, raft_strerror(rc));
		sim_observe(w, nd);
		sim_node_pump(w, nd);
	}
}

/* Tick nd, as an engine does for the groups in its tick set. */
static void tick(struct sim_world *w, struct sim_node *nd)
{
	bool quiet = raft_quiesced(nd->r), had = raft_has_ready(nd->r);

	/* The engine leaves quiescent groups out; now and then tick one anyway. */
	if (quiet && sim_rand_below(&w->rng, 8) != 0)
		return;
	raft_tick(nd->r);
	nd->ticks++;
	if (quiet && !had && raft_has_ready(nd->r))
		sim_fail(w, "quiescence", "quiescent node %" PRIu64 " ticked into a Ready", nd->id);
	sim_observe(w, nd);
	sim_node_pump(w, nd);
}

/*
 * The engine's part of quiescence: a quiescent follower whose transport finds
 * its leader unreachable (down, stopped or cut off, noticed within an
 * election timeout or two) is told so, and wakes to elect another.
 */
static void watch_leader(struct sim_world *w, struct sim_node *nd)
{
	raft_id l = raft_leader(nd->r);
	bool reachable;

	if (!raft_quiesced(nd->r) || l == 0 || l == nd->id) {
		nd->unreach_at = 0;
		return;
	}
	reachable = l <= w->n && w->nodes[l].up && !w->nodes[l].stopped &&
	            !w->net.blocked[l][nd->id] && !w->net.blocked[nd->id][l];
	if (reachable) {
		nd->unreach_at = 0;
	} else if (nd->unreach_at == 0) {
		nd->unreach_at = w->now + (uint64_t)SIM_TICK_UNITS * w->p.elect_tick *
		                                  (1 + sim_rand_below(&w->rng, 2));
	} else if (w->now >= nd->unreach_at) {
		nd->unreach_at = 0;
		sim_trace(w, "node %" PRIu64 " finds its leader %" PRIu64 " unreachable", nd->id,
		          l);
		raft_report_unreachable(nd->r, l);
		sim_observe(w, nd);
		sim_node_pump(w, nd);
	}
}

void sim_step(struct sim_world *w)
{
	struct sim_item *it;
	struct sim_node *any;

	w->now++;
	restart_due(w, false);
	/* After the heal, snapshots and compaction go on (the engine's snapshot_entries
	 * policy): a member that lags may still need a snapshot. */
	if (w->healed && w->now % (10 * SIM_TICK_UNITS) == 0 && (any = pick_node(w)))
		compact(w, any);
	for (unsigned id = 1; id <= w->n && !w->failed; id++)
		sim_node_persist_due(w, &w->nodes[id]);
	for (unsigned k = 0; !w->failed && (it = sim_net_pop_due(&w->net, w->now)); k++) {
		sim_node_deliver(w, it);
		if (k > 100000 || w->net.n > 1000000)
			sim_fail(w, "message-storm",
			         "%u messages due at once, %zu in flight: replicas keep answering "
			         "each other",
			         k, w->net.n);
	}
	/* (after the deliveries: in batch mode a node's log may have changed since its Ready) */
	for (unsigned id = 1; id <= w->n && !w->failed; id++)
		sim_node_sync_due(w, &w->nodes[id]);
	if (w->now % SIM_TICK_UNITS == 0) {
		if (w->now % (SIM_TICK_UNITS * w->p.elect_tick) == 0)
			sim_trace(w, "---- tick %" PRIu64 " ----", w->now / SIM_TICK_UNITS);
		for (unsigned id = 1; id <= w->n && !w->failed; id++) {
			struct sim_node *nd = &w->nodes[id];

			if (!sim_node_ready_for_calls(nd))
				continue;
			/* a slow clock misses ticks (only while faults last) */
			if (!w->healed && sim_rand_permille(&w->rng, w->p.skew[id]))
				continue;
			tick(w, nd);
		}
	}
	for (unsigned id = 1; id <= w->n && !w->failed; id++) {
		struct sim_node *nd = &w->nodes[id];

		if (sim_node_ready_for_calls(nd))
			watch_leader(w, nd);
		/* batch mode: the node's loop comes round and takes its Readys */
		if (nd->dirty && sim_node_ready_for_calls(nd)) {
			bool slow = nd->id == w->p.slow && !w->healed;

			if (w->healed || sim_rand_permille(&w->rng, slow ? 100 : w->p.loop))
				sim_node_loop(w, nd, slow);
		}
		if (nd->up && nd->stopped)
			sim_node_crash(w, nd, SIM_TICK_UNITS * (5 + sim_rand_below(&w->rng, 40)));
		if (nd->retire_pending && !nd->retired) {
			sim_trace(w, "node %u learned it was removed: shut down, data deleted", id);
			if (nd->up)
				sim_node_crash(w, nd, 0);
			sim_store_free(&nd->st);
			nd->retired = true;
		}
	}
}

struct sim_node *sim_stable_leader(struct sim_world *w)
{
	struct sim_node *l = sim_find_leader(w);
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
	w->quiet = false;
	memset(w->net.blocked, 0, sizeof(w->net.blocked));
	w->p.drop = w->p.dup = w->p.reorder = 0;
	w->p.nomem = w->p.st_fail = w->p.snap_fail = 0;
	if (w->p.max_delay > 3)
		w->p.max_delay = 3;
	if (w->p.snap_delay > 5)
		w->p.snap_delay = 5;
	for (unsigned id = 1; id <= w->n; id++) {
		w->nodes[id].crash_on_fsync = false;
		w->nodes[id].st.fail = 0;
		if (w->nodes[id].syncing && w->nodes[id].sync_at == UINT64_MAX)
			w->nodes[id].sync_at = w->now + 1; /* a sync that hung finishes */
	}
	/* Messages delayed by the faults still arrive; the probes wait for them. */
	for (size_t i = 0; i < w->net.n; i++)
		if (w->net.heap[i]->at > w->drain_at)
			w->drain_at = w->net.heap[i]->at;
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

		if (raft_membership_contains(m, id) && nd->st.applied < last &&
		    last - nd->st.applied > most)
			most = last - nd->st.applied;
	}
	return most;
}

static bool liveness(struct sim_world *w)
{
	uint64_t t0 = w->now, live[LIVE_PROPOSALS], read = 0, last_try = 0, read_try = 0;
	uint64_t retry = (uint64_t)3 * w->p.elect_tick * SIM_TICK_UNITS;
	unsigned n_live = 0;
	struct sim_node *l = NULL;
	char why[160] = "no stable leader";
	uint64_t bound;

	while (!w->failed && !(l = sim_stable_leader(w))) {
		if (w->now - t0 >
		    (uint64_t)ELECT_BOUND_ELECTIONS * w->p.elect_tick * SIM_TICK_UNITS) {
			sim_fail(w, "liveness-election",
			         "no leader %u election timeouts after the heal",
			         ELECT_BOUND_ELECTIONS);
			return false;
		}
		sim_step(w);
	}
	if (w->failed)
		return false;
	sim_trace(w, "liveness: leader %" PRIu64 " term %" PRIu64 " after %" PRIu64 " ticks", l->id,
	          l->term, (w->now - t0) / SIM_TICK_UNITS);
	t0 = w->now;
	bound = (uint64_t)PROGRESS_BOUND_ELECTIONS * w->p.elect_tick + PER_ENTRY_TICKS * lag(w, l);
	for (;;) {
		struct sim_prop *p = n_live ? &w->props[live[n_live - 1] - 1] : NULL;
		bool done = n_live == LIVE_PROPOSALS && p->status == SIM_PROP_ACKED && read &&
		            w->reads[read - 1].done;

		if (w->failed)
			return false;
		l = sim_stable_leader(w);
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
			return false;
		}
		if (l && sim_node_ready_for_calls(l)) {
			bool stale = w->now - last_try > retry;

			if (!p || (p->status == SIM_PROP_ACKED && n_live < LIVE_PROPOSALS)) {
				live[n_live++] = sim_propose(w, l);
				last_try = w->now;
			} else if (p->status != SIM_PROP_ACKED &&
			           (p->status == SIM_PROP_FAILED || stale)) {
				live[n_live - 1] = sim_propose(w, l); /* retry with a new id */
				last_try = w->now;
			}
			if (sim_node_ready_for_calls(l) &&
			    (!read || (!w->reads[read - 1].done && w->now - read_try > retry))) {
				read = sim_read(w, l);
				read_try = w->now;
			}
		}
		sim_step(w);
	}
	sim_trace(w, "liveness: %u proposals and a read done in %" PRIu64 " ticks", LIVE_PROPOSALS,
	          (w->now - t0) / SIM_TICK_UNITS);
	sim_check_final(w, raft_membership(l->r));
	return !w->failed;
}

static void destroy(struct sim_world *w)
{
	for (unsigned id = 1; id <= w->n; id++) {
		struct sim_node *nd = &w->nodes[id];

		if (nd->r)
			raft_destroy(nd->r);
		nd->r = NULL;
		sim_node_drop_snapshots(nd);
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
	w->o = *o;
	w->seed = o->seed;
	w->n = o->nodes;
	w->trace = o->trace;
	sim_rand_seed(&w->rng, o->seed);
	sim_rand_seed(&w->fault_rng, ~o->seed);
	draw_params(w);
	sim_alloc_bind(w);
	sim_trace(
	        w,
	        "seed %" PRIu64 ", %u nodes: election %u heartbeat %u drop %u dup %u reorder %u "
	        "delay %u part %u crash %u fsync-late %u/%u prevote %d checkquorum %d inflight %u "
	        "msgbytes %" PRIu64 " batch %d/%u big %u small %u nomem %u stfail %u "
	        "snapfail %u/%u quiesce %u idle %u smflush %u smlag %u defer %d/%u/%u/%u/%u/%u",
	        o->seed, w->n, w->p.elect_tick, w->p.hb_tick, w->p.drop, w->p.dup, w->p.reorder,
	        w->p.max_delay, w->p.part, w->p.crash, w->p.fsync_delay, w->p.fsync_max,
	        w->p.pre_vote, w->p.check_quorum, w->p.max_inflight, w->p.max_msg_bytes, w->p.batch,
	        w->p.loop, w->p.big, w->p.max_small, w->p.nomem, w->p.st_fail, w->p.snap_fail,
	        w->p.snap_delay, w->p.quiesce_tick, w->p.idle, w->p.sm_flush, w->p.sm_lag,
	        w->p.defer, w->p.sync_zero, w->p.sync_never, w->p.sync_long, w->p.sync_max,
	        w->p.crash_keep);
	bootstrap(w);
	while (!w->failed && w->now < o->steps) {
		chaos(w);
		sim_step(w);
	}
	if (!w->failed) {
		heal(w);
		if (liveness(w)) {
			sim_probe_disruption(w);
			sim_probe_transfer(w);
			sim_probe_idle_apply(w);
			sim_probe_lost_acks(w);
			sim_probe_split_vote(w);
			sim_probe_isolated_leader(w);
			if (sim_probe_paused_promotion(w))
				(void)liveness(w);
		}
	}
	sim_trace(w,
	          "end: %" PRIu64 " units, %" PRIu64 " elections, %" PRIu64 " crashes, %" PRIu64
	          " snapshots installed, %" PRIu64 " conf changes, %" PRIu64
	          " transfers, %zu proposals, %" PRIu64 " acked, %" PRIu64 " reads, %" PRIu64
	          " failed allocations, %" PRIu64 " fail-stops; deferred: %" PRIu64
	          " Readys, %" PRIu64 " syncs (%" PRIu64 " overtaken, %" PRIu64
	          " for replaced entries), %" PRIu64 " entries lost in crashes",
	          w->now, w->n_elections, w->n_crashes, w->n_snapshots, w->n_conf, w->n_transfers,
	          w->n_props, w->n_acked, w->n_reads_ok, w->n_nomem, w->n_stops, w->n_deferred,
	          w->n_syncs, w->n_sync_overtaken, w->n_sync_stale, w->n_lost_writes);
	ok = !w->failed;
	snprintf(prop, prop_len, "%s", w->prop);
	snprintf(why, why_len, "%s", w->why);
	destroy(w);
	sim_alloc_bind(NULL);
	free(w);
	return ok;
}
