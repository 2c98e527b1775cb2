/*
 * sim_probe.c - checks run after liveness, in a healed group with nothing
 * else going on, for the rules that only show as lost availability:
 *
 *   disruption  a follower cut off for several election timeouts and healed
 *               must not raise the term of a stable group (PreVote and the
 *               CheckQuorum lease, thesis 9.6 and 4.2.3; checked when both
 *               are on, as the engine runs them)
 *   transfer    a leadership transfer to a voter that lags hands over in one
 *               term (TimeoutNow only once the target is up to date, thesis
 *               3.10), or is abandoned with leader and term unchanged
 *   idle-apply  once the group is idle, every member applies every committed
 *               entry: also a member that crashed after its last write, its
 *               commit index not saved (a Ready that only moves it saves
 *               nothing), and came back just as the leader quiesced (a
 *               QUIESCE that carried no commit index left it behind until
 *               the next write: fixed in 93dbd5d)
 *   lost-acks   a write whose every acknowledgement (APPEND_RESP) was lost
 *               commits and is applied everywhere with no write after it:
 *               the empty append that a heartbeat answer brings to a
 *               follower with appends in flight must be answered (only an
 *               append at the follower's known match may go unanswered,
 *               RAFT_MSG_FLAG_COMMIT_ONLY)
 *   split-vote  (pre-vote on) the leader of three voters is cut off and both
 *               others, whose logs are equal, campaign at once: the lower id
 *               gets the other's pre-vote, not the reverse, so a leader of
 *               the next term follows, no split vote (election.c's tie-break)
 *   isolated-leader (check-quorum on) a leader cut off from every other
 *               member, given a proposal every tick (each wakes it, and keeps
 *               entries it sent unacknowledged: the grace of a member busy
 *               writing them, progress.c busy_writing), steps down within 3
 *               election timeouts of the cut (283f08c's bound; 2 before it)
 *   paused-promotion (check-quorum on) the leader's other voters stop at
 *               once, as by SIGSTOP (messages to them wait), and the leader
 *               proposes the promotion of a non-voter that still answers
 *               (promote_member with force, TAP 010): it steps down, the
 *               others continue with its append waiting for them, and the
 *               liveness check runs again: one leader, the group goes on,
 *               every property holds meanwhile, whoever wins and whether
 *               the promotion commits or not
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "sim.h"

#define IDLE_BOUND_ELECTIONS 60 /* idle-apply: most election timeouts to converge */
#ifndef SIM_ISO_BOUND
#define SIM_ISO_BOUND 3
#endif

/* Run k election timeouts. */
static void run_elections(struct sim_world *w, uint64_t k)
{
	uint64_t end = w->now + k * w->p.elect_tick * SIM_TICK_UNITS;

	while (!w->failed && w->now < end)
		sim_step(w);
}

/*
 * Let what the faults left behind play out: messages delayed past the heal
 * (a TimeoutNow among them) and transfers asked for before it, which a
 * leader abandons after an election timeout.
 */
static void settle(struct sim_world *w)
{
	while (!w->failed && w->now < w->drain_at)
		sim_step(w);
	run_elections(w, 2);
}

/* A voter other than leader l, up, whose absence leaves a quorum; or NULL. */
static struct sim_node *spare_voter(struct sim_world *w, struct sim_node *l)
{
	const struct raft_membership *m = raft_membership(l->r);
	struct sim_node *c[SIM_MAX_NODES];
	unsigned n = 0;

	if (m->n_voters < 3)
		return NULL;
	for (uint32_t i = 0; i < m->n_voters; i++) {
		raft_id id = m->voters[i];

		if (id != l->id && id <= w->n && sim_node_ready_for_calls(&w->nodes[id]))
			c[n++] = &w->nodes[id];
	}
	return n ? c[sim_rand_below(&w->rng, n)] : NULL;
}

static void cut(struct sim_world *w, raft_id id, bool on)
{
	for (unsigned j = 1; j <= w->n; j++)
		w->net.blocked[id][j] = w->net.blocked[j][id] = on && j != id;
}

/* Is l leader of term t, with no member of its group in a later term? */
static bool still_leads(struct sim_world *w, struct sim_node *l, raft_term t, char *why, size_t len)
{
	const struct raft_membership *m;

	if (!l->up || !l->r || l->role != RAFT_LEADER || l->term != t) {
		snprintf(why, len, "node %" PRIu64 " is %s in term %" PRIu64, l->id,
		         l->role == RAFT_LEADER ? "leader" : "no longer leader", l->term);
		return false;
	}
	m = raft_membership(l->r);
	for (unsigned id = 1; id <= w->n; id++)
		if (w->nodes[id].up && raft_membership_contains(m, id) && w->nodes[id].term > t) {
			snprintf(why, len, "node %u is in term %" PRIu64, id, w->nodes[id].term);
			return false;
		}
	return true;
}

void sim_probe_disruption(struct sim_world *w)
{
	struct sim_node *l, *f;
	char why[128];
	raft_term t;

	if (w->failed || !w->p.pre_vote || !w->p.check_quorum)
		return;
	settle(w);
	l = sim_stable_leader(w);
	if (w->failed || !l || !(f = spare_voter(w, l)))
		return;
	t = l->term;
	run_elections(w, 2 + sim_rand_below(&w->rng, 3)); /* idle: the group may quiesce */
	if (!w->failed && !still_leads(w, l, t, why, sizeof(why))) {
		sim_fail(w, "disruption", "an idle, healthy group changed: %s", why);
		return;
	}
	sim_trace(w, "probe: node %" PRIu64 " cut off from leader %" PRIu64 " of term %" PRIu64,
	          f->id, l->id, t);
	cut(w, f->id, true);
	run_elections(w, 3 + sim_rand_below(&w->rng, 4));
	cut(w, f->id, false);
	sim_trace(w, "probe: node %" PRIu64 " back", f->id);
	run_elections(w, 6);
	if (!w->failed && !still_leads(w, l, t, why, sizeof(why)))
		sim_fail(w, "disruption",
		         "node %" PRIu64 " came back after a partition and the group's leader "
		         "%" PRIu64 " of term %" PRIu64 " was disrupted: %s",
		         f->id, l->id, t, why);
}

void sim_probe_transfer(struct sim_world *w)
{
	struct sim_node *l, *target, *now;
	unsigned k, cut_ticks;
	uint64_t end;
	char why[128];
	raft_term t;
	int rc;

	settle(w);
	l = sim_stable_leader(w);
	if (w->failed || !l || !sim_node_ready_for_calls(l) || !(target = spare_voter(w, l)))
		return;
	t = l->term;
	/* The target misses a few entries, cut off for less than an election timeout. */
	cut(w, target->id, true);
	k = 1 + (unsigned)sim_rand_below(&w->rng, 20);
	for (unsigned i = 0; i < k && sim_node_ready_for_calls(l); i++)
		sim_propose(w, l);
	cut_ticks = w->p.elect_tick / 2 > w->p.hb_tick ? w->p.elect_tick / 2 - w->p.hb_tick : 1;
	end = w->now + (uint64_t)cut_ticks * SIM_TICK_UNITS;
	while (!w->failed && w->now < end)
		sim_step(w);
	cut(w, target->id, false);
	if (w->failed || !sim_node_ready_for_calls(l) || l->role != RAFT_LEADER || l->term != t)
		return; /* nothing to judge: leadership moved for its own reasons */
	rc = raft_transfer_leader(l->r, target->id);
	sim_trace(w,
	          "probe: transfer from %" PRIu64 " to lagging %" PRIu64 " (term %" PRIu64 "): %s",
	          l->id, target->id, t, raft_strerror(rc));
	sim_observe(w, l);
	sim_node_pump(w, l);
	if (rc != RAFT_OK)
		return;
	run_elections(w, 4);
	if (w->failed)
		return;
	now = sim_stable_leader(w);
	if (now == target && now->term == t + 1)
		return;
	if (now == l && still_leads(w, l, t, why, sizeof(why)))
		return;
	if (now)
		sim_fail(w, "transfer",
		         "transfer of term %" PRIu64 " from %" PRIu64 " to lagging %" PRIu64
		         " ended with node %" PRIu64 " leading term %" PRIu64,
		         t, l->id, target->id, now->id, now->term);
	else
		sim_fail(w, "transfer",
		         "transfer of term %" PRIu64 " from %" PRIu64 " to lagging %" PRIu64
		         " left no stable leader",
		         t, l->id, target->id);
}

/* Has every member of l's group applied index i? */
static bool all_applied(struct sim_world *w, struct sim_node *l, raft_index i)
{
	const struct raft_membership *m = raft_membership(l->r);

	for (unsigned id = 1; id <= w->n; id++)
		if (raft_membership_contains(m, id) &&
		    (!w->nodes[id].up || w->nodes[id].st.applied < i))
			return false;
	return true;
}

/* A member other than leader l, up (voter or not); or NULL. */
static struct sim_node *other_member(struct sim_world *w, struct sim_node *l)
{
	const struct raft_membership *m = raft_membership(l->r);
	struct sim_node *c[SIM_MAX_NODES];
	unsigned n = 0;

	for (unsigned id = 1; id <= w->n; id++)
		if (id != l->id && raft_membership_contains(m, id) &&
		    sim_node_ready_for_calls(&w->nodes[id]))
			c[n++] = &w->nodes[id];
	return n ? c[sim_rand_below(&w->rng, n)] : NULL;
}

/* A write applied everywhere, then member f crashes and comes back as the group goes idle. */
static void crash_after_write(struct sim_world *w, struct sim_node *l)
{
	uint64_t id = sim_propose(w, l), end;
	const struct sim_prop *p = &w->props[id - 1];
	struct sim_node *f;
	bool at_quiesce;

	end = w->now + (uint64_t)10 * w->p.elect_tick * SIM_TICK_UNITS;
	while (!w->failed && w->now < end &&
	       !(p->status == SIM_PROP_ACKED && all_applied(w, l, p->index)))
		sim_step(w);
	if (w->failed || p->status != SIM_PROP_ACKED || !l->r || !(f = other_member(w, l)))
		return; /* nothing to judge here: liveness has checked that writes complete */
	/* Soon after: before or after it told the leader its commit index. */
	end = w->now + sim_rand_below(&w->rng, (uint64_t)2 * w->p.hb_tick * SIM_TICK_UNITS);
	while (!w->failed && w->now < end)
		sim_step(w);
	if (w->failed || !f->up)
		return;
	sim_trace(w,
	          "probe: node %" PRIu64 " crashes after write %" PRIu64 " (commit %" PRIu64
	          " saved %" PRIu64 ", applied %" PRIu64 " durable %" PRIu64 ")",
	          f->id, p->index, f->commit, f->st.hs.commit, f->st.applied, f->st.durable);
	sim_node_crash(w, f, UINT64_MAX / 2);
	/* It comes back as soon as the leader quiesces (its QUIESCE then in flight), or later. */
	at_quiesce = sim_rand_below(&w->rng, 2) == 0;
	end = w->now + sim_rand_below(&w->rng, (uint64_t)3 * w->p.elect_tick * SIM_TICK_UNITS);
	while (!w->failed && w->now < end && !(at_quiesce && l->r && raft_quiesced(l->r)))
		sim_step(w);
	f->restart_at = w->now + 1;
}

/* Has every member of l's group applied exactly l's commit index? */
static bool converged(struct sim_world *w, struct sim_node *l, char *why, size_t len)
{
	raft_index c = raft_commit_index(l->r);

	for (unsigned id = 1; id <= w->n; id++) {
		struct sim_node *nd = &w->nodes[id];

		if (!raft_membership_contains(raft_membership(l->r), id))
			continue;
		if (!nd->up || nd->st.applied != c || nd->applied != c) {
			snprintf(why, len,
			         "leader %" PRIu64 " term %" PRIu64 " commit %" PRIu64
			         ", but node %u %s applied %" PRIu64 " (its commit %" PRIu64 ")",
			         l->id, l->term, c, id, nd->up ? "has" : "is down, has",
			         nd->st.applied, nd->commit);
			return false;
		}
	}
	return true;
}

void sim_probe_idle_apply(struct sim_world *w)
{
	struct sim_node *l;
	char why[160];

	settle(w);
	l = sim_stable_leader(w);
	if (w->failed || !l || !sim_node_ready_for_calls(l))
		return;
	crash_after_write(w, l);
	/* Idle: long enough to quiesce, and for a member that came back to catch up. */
	run_elections(w, 6 + w->p.quiesce_tick / w->p.elect_tick);
	/* (If its crash cost the group its leader, electing one may take longer.) */
	for (unsigned k = 0; !w->failed; k++) {
		l = sim_stable_leader(w);
		if (!l)
			snprintf(why, sizeof(why), "no stable leader");
		else if (converged(w, l, why, sizeof(why)))
			return;
		if (k == IDLE_BOUND_ELECTIONS) {
			sim_fail(w, "idle-apply", "%u election timeouts into an idle spell: %s",
			         IDLE_BOUND_ELECTIONS, why);
			return;
		}
		run_elections(w, 1);
	}
}

/* Does every member of l's group hold index i on its disk? */
static bool all_hold(struct sim_world *w, struct sim_node *l, raft_index i)
{
	const struct raft_membership *m = raft_membership(l->r);

	for (unsigned id = 1; id <= w->n; id++)
		if (raft_membership_contains(m, id) &&
		    (!w->nodes[id].up || sim_store_last(&w->nodes[id].st) < i))
			return false;
	return true;
}

void sim_probe_lost_acks(struct sim_world *w)
{
	struct sim_node *l;
	const struct sim_prop *p;
	raft_index idx;
	raft_term t;
	uint64_t id, end;

	settle(w);
	l = sim_stable_leader(w);
	if (w->failed || !l || !sim_node_ready_for_calls(l))
		return;
	t = l->term;
	w->net.lose_acks_to = l->id;
	id = sim_propose(w, l);
	p = &w->props[id - 1];
	idx = l->r ? raft_last_index(l->r) : 0;
	/* Until every member holds the write: it cannot commit meanwhile. */
	end = w->now + (uint64_t)10 * w->p.elect_tick * SIM_TICK_UNITS;
	while (!w->failed && w->now < end && p->status == SIM_PROP_PENDING && l->r &&
	       !all_hold(w, l, idx))
		sim_step(w);
	w->net.lose_acks_to = 0;
	if (w->failed || p->status != SIM_PROP_PENDING || !l->r || !all_hold(w, l, idx))
		return; /* nothing to judge */
	sim_trace(w, "probe: every member holds write %" PRIu64 " at %" PRIu64 ", its acks lost",
	          id, idx);
	/* No input from here on. */
	for (unsigned k = 0; !w->failed; k++) {
		if (!l->r || l->role != RAFT_LEADER || l->term != t)
			return; /* leadership moved for its own reasons: a new leader commits anyway
			         */
		if (p->status == SIM_PROP_ACKED && all_applied(w, l, idx))
			return;
		if (k == 10) {
			sim_fail(w, "lost-acks",
			         "leader %" PRIu64 " term %" PRIu64 ": write %" PRIu64
			         " at %" PRIu64 " held by every member, its acks lost, is %s after "
			         "10 election timeouts without input (leader commit %" PRIu64 ")",
			         l->id, t, id, idx,
			         p->status == SIM_PROP_ACKED ? "not applied everywhere"
			                                     : "not acknowledged",
			         raft_commit_index(l->r));
			return;
		}
		run_elections(w, 1);
	}
}

/* Does nd's log end at the same index and term as o's? */
static bool same_last(struct sim_node *nd, struct sim_node *o)
{
	raft_index i = raft_last_index(nd->r);
	raft_term a, b;

	return i == raft_last_index(o->r) && raft_term_at(nd->r, i, &a) == RAFT_OK &&
	       raft_term_at(o->r, i, &b) == RAFT_OK && a == b;
}

void sim_probe_split_vote(struct sim_world *w)
{
	const struct raft_membership *m;
	struct sim_node *l, *c[2];
	unsigned n = 0;
	raft_term t;

	if (w->failed || !w->p.pre_vote)
		return;
	settle(w);
	l = sim_stable_leader(w);
	if (w->failed || !l || !sim_node_ready_for_calls(l))
		return;
	m = raft_membership(l->r);
	if (m->n_voters != 3)
		return;
	for (uint32_t i = 0; i < m->n_voters; i++) {
		raft_id id = m->voters[i];

		if (id != l->id && id <= w->n && sim_node_ready_for_calls(&w->nodes[id]))
			c[n++] = &w->nodes[id];
	}
	if (n != 2 || c[0]->term != l->term || c[1]->term != l->term || !same_last(c[0], c[1]))
		return; /* nothing to judge */
	t = l->term;
	sim_trace(w,
	          "probe: leader %" PRIu64 " of term %" PRIu64 " cut off; %" PRIu64 " and %" PRIu64
	          " campaign at once",
	          l->id, t, c[0]->id, c[1]->id);
	cut(w, l->id, true);
	for (unsigned k = 0; k < 2; k++) {
		raft_campaign(c[k]->r);
		sim_observe(w, c[k]);
		sim_node_pump(w, c[k]);
	}
	for (unsigned k = 0; k < 2; k++)
		if (!c[k]->r || raft_role(c[k]->r) != RAFT_PRECANDIDATE)
			goto out; /* one could not campaign (a membership change to apply) */
	for (uint64_t end = w->now + (uint64_t)10 * w->p.elect_tick * SIM_TICK_UNITS;
	     !w->failed && w->now < end;) {
		struct sim_node *nl = sim_find_leader(w);

		if (nl && nl != l) {
			if (nl->term != t + 1 || nl->id != (c[0]->id < c[1]->id ? c[0] : c[1])->id)
				sim_fail(w, "split-vote",
				         "after leader %" PRIu64 " of term %" PRIu64
				         " was cut off, "
				         "node %" PRIu64 " leads term %" PRIu64
				         " (pre-candidates %" PRIu64 " and %" PRIu64
				         ", equal logs: the lower id in term %" PRIu64 ")",
				         l->id, t, nl->id, nl->term, c[0]->id, c[1]->id, t + 1);
			goto out;
		}
		sim_step(w);
	}
	if (!w->failed)
		sim_fail(w, "split-vote",
		         "after leader %" PRIu64 " of term %" PRIu64
		         " was cut off, no leader within "
		         "10 election timeouts (pre-candidates %" PRIu64 " and %" PRIu64 ")",
		         l->id, t, c[0]->id, c[1]->id);
out:
	cut(w, l->id, false);
}

void sim_probe_isolated_leader(struct sim_world *w)
{
	struct sim_node *l;
	uint64_t start, t0;
	raft_term t;

	if (w->failed || !w->p.check_quorum)
		return;
	settle(w);
	l = sim_stable_leader(w);
	if (w->failed || !l || !sim_node_ready_for_calls(l) || raft_membership(l->r)->n_voters < 2)
		return; /* a lone voter is its own quorum */
	t = l->term;
	sim_trace(w, "probe: leader %" PRIu64 " of term %" PRIu64 " cut off, proposals every tick",
	          l->id, t);
	cut(w, l->id, true);
	start = w->now;
	t0 = l->ticks;
	/* Counted in the leader's own ticks (it misses those that come while it
	 * persists): 3 election timeouts from the first proposal (a quiescent
	 * leader wakes at it, its timers at 0). */
	while (!w->failed) {
		if (!l->r || l->role != RAFT_LEADER || l->term != t) {
			sim_trace(w,
			          "probe: node %" PRIu64 " no longer leads term %" PRIu64
			          " after %" PRIu64 " of its ticks",
			          l->id, t, l->ticks - t0);
			break; /* stepped down (or crashed: nothing to judge) */
		}
		if (l->ticks - t0 > (uint64_t)SIM_ISO_BOUND * w->p.elect_tick ||
		    w->now - start > (uint64_t)60 * w->p.elect_tick * SIM_TICK_UNITS) {
			sim_fail(w, "isolated-leader",
			         "leader %" PRIu64 " of term %" PRIu64
			         " cut off from every member, a proposal every tick, still leads "
			         "after %" PRIu64 " of its ticks (election timeout %u)",
			         l->id, t, l->ticks - t0, w->p.elect_tick);
			break;
		}
		if ((w->now - start) % SIM_TICK_UNITS == 0 && sim_node_ready_for_calls(l))
			(void)sim_propose(w, l);
		sim_step(w);
	}
	cut(w, l->id, false);
}

/* Propose change type of node id on l (the context names it, as the engine's address). */
static int propose_change(struct sim_world *w, struct sim_node *l, uint32_t type, raft_id id,
                          raft_index *at)
{
	struct raft_conf_change cc;
	raft_index idx = 0;
	char ctx[32];
	int rc;

	memset(&cc, 0, sizeof(cc));
	cc.type = type;
	cc.node_id = id;
	snprintf(ctx, sizeof(ctx), "node-%u", (unsigned)id);
	cc.context = (const uint8_t *)ctx;
	cc.context_len = (uint32_t)strlen(ctx);
	rc = raft_propose_conf_change(l->r, &cc, &idx);
	if (rc == RAFT_OK)
		w->n_conf++;
	sim_trace(w,
	          "probe: node %" PRIu64 " proposes to %s node %" PRIu64 ": %s (index %" PRIu64 ")",
	          l->id, type == RAFT_CC_ADD_VOTER ? "promote" : "add as a non-voter", id,
	          raft_strerror(rc), idx);
	sim_observe(w, l);
	sim_node_pump(w, l);
	if (at)
		*at = idx;
	return rc;
}

static bool in_nonvoters(const struct raft_membership *m, raft_id id)
{
	for (uint32_t i = 0; i < m->n_nonvoters; i++)
		if (m->nonvoters[i] == id)
			return true;
	return false;
}

static bool removed_id(const struct sim_world *w, raft_id id)
{
	for (unsigned i = 0; i < w->n_removed; i++)
		if (w->removed[i].id == id)
			return true;
	return false;
}

/*
 * A non-voter of leader l's group that answers and holds l's log: one there
 * is, or a node that is no member (nor was removed) added as one and caught
 * up; NULL if there is none or the leadership moved meanwhile.
 */
static struct sim_node *caught_up_nonvoter(struct sim_world *w, struct sim_node *l)
{
	const struct raft_membership *m = raft_membership(l->r);
	raft_term t = l->term;
	struct sim_node *nv = NULL;
	uint64_t start;

	for (uint32_t i = 0; i < m->n_nonvoters && !nv; i++)
		if (m->nonvoters[i] <= w->n && sim_node_ready_for_calls(&w->nodes[m->nonvoters[i]]))
			nv = &w->nodes[m->nonvoters[i]];
	for (unsigned id = 1; id <= w->n && !nv; id++)
		if (!raft_membership_contains(m, id) && !removed_id(w, id) &&
		    !w->nodes[id].retired && !w->nodes[id].retire_pending &&
		    sim_node_ready_for_calls(&w->nodes[id]) &&
		    propose_change(w, l, RAFT_CC_ADD_NONVOTER, id, NULL) == RAFT_OK)
			nv = &w->nodes[id];
	for (start = w->now; !w->failed && nv && l->r && l->role == RAFT_LEADER && l->term == t;
	     sim_step(w)) {
		m = raft_membership(l->r);
		if (nv->r && nv->up && in_nonvoters(m, nv->id) &&
		    nv->st.applied >= raft_last_index(l->r))
			return nv;
		if (w->now - start > (uint64_t)60 * w->p.elect_tick * SIM_TICK_UNITS)
			break;
	}
	return NULL;
}

bool sim_probe_paused_promotion(struct sim_world *w)
{
	const struct raft_membership *m;
	struct sim_node *l = NULL, *nv;
	uint64_t start, extra;
	raft_index idx = 0;
	raft_term t;
	int rc = RAFT_ERR_CONF_CHANGE_PENDING;

	if (w->failed || !w->p.check_quorum)
		return false;
	settle(w);
	/* (the probe before may have left an election going; a change may be pending) */
	for (unsigned try = 0; try < 10 && !w->failed && rc != RAFT_OK; try++) {
		for (start = w->now;
		     !w->failed && !(l = sim_stable_leader(w)) &&
		     w->now - start < (uint64_t)60 * w->p.elect_tick * SIM_TICK_UNITS;)
			sim_step(w);
		if (w->failed || !l || !sim_node_ready_for_calls(l))
			return false;
		m = raft_membership(l->r);
		if (m->n_voters < 2)
			return false; /* a lone voter is its own quorum */
		if (!(nv = caught_up_nonvoter(w, l)) || !sim_node_ready_for_calls(l))
			return false;
		for (uint32_t i = 0; i < m->n_voters; i++)
			if (m->voters[i] != l->id && m->voters[i] <= w->n)
				w->nodes[m->voters[i]].paused = true;
		rc = propose_change(w, l, RAFT_CC_ADD_VOTER, nv->id, &idx);
		if (rc != RAFT_OK) {
			for (unsigned id = 1; id <= w->n; id++)
				w->nodes[id].paused = false;
			run_elections(w, 1);
		}
	}
	if (w->failed || rc != RAFT_OK)
		return false;
	t = l->term;
	sim_trace(w, "probe: leader %" PRIu64 " of term %" PRIu64 ", its other voters paused",
	          l->id, t);
	/* Until it steps down (CheckQuorum), then 0-2 election timeouts more; the
	 * promotion cannot commit meanwhile (only the non-voter answers). */
	start = w->now;
	while (!w->failed && l->up && l->r && l->role == RAFT_LEADER && l->term == t &&
	       w->now - start < (uint64_t)60 * w->p.elect_tick * SIM_TICK_UNITS) {
		sim_step(w);
		if (l->r && raft_commit_index(l->r) >= idx)
			sim_fail(w, "paused-promotion",
			         "leader %" PRIu64 " of term %" PRIu64
			         " committed the promotion at %" PRIu64
			         " while its other voters were paused",
			         l->id, t, idx);
	}
	if (!w->failed && l->up && l->r && l->role == RAFT_LEADER && l->term == t)
		sim_fail(w, "paused-promotion",
		         "leader %" PRIu64 " of term %" PRIu64
		         " still leads 60 election timeouts after its other voters paused",
		         l->id, t);
	extra = sim_rand_below(&w->rng, (uint64_t)2 * w->p.elect_tick * SIM_TICK_UNITS + 1);
	for (start = w->now; !w->failed && w->now - start < extra;)
		sim_step(w);
	sim_trace(w, "probe: the paused voters continue");
	for (unsigned id = 1; id <= w->n; id++)
		w->nodes[id].paused = false;
	return !w->failed;
}
