/*
 * sim_node.c - one simulated node: start/restart over its disk, crash, the
 * Ready cycle, sending into and receiving from the simulated network.
 *
 * The Ready cycle, as an engine runs it (raft.h):
 *   raft_ready -> send the messages that may precede persistence (a leader's
 *   appends) -> persist snapshot, hard state, entries (this may take virtual
 *   time; a crash meanwhile loses the whole Ready) -> send the other messages
 *   -> apply committed entries -> raft_advance.
 * No other raft_* call reaches a node between raft_ready and raft_advance.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "sim.h"

static const char *msg_name(uint32_t t)
{
	static const char *names[] = {"?",         "append",      "append-resp",  "vote",
	                              "vote-resp", "prevote",     "prevote-resp", "heartbeat",
	                              "hb-resp",   "snapshot",    "propose",      "readindex",
	                              "ri-resp",   "timeout-now", "transfer"};

	return t <= RAFT_MSG_TYPE_MAX ? names[t] : "?";
}

bool sim_node_ready_for_calls(const struct sim_node *nd)
{
	return nd->up && nd->r && !nd->busy;
}

void sim_node_start(struct sim_world *w, struct sim_node *nd, const struct raft_membership *boot)
{
	struct raft_config cfg;
	int rc;

	memset(&cfg, 0, sizeof(cfg));
	cfg.group_id = 1;
	cfg.id = nd->id;
	cfg.election_tick = SIM_ELECTION_TICK;
	cfg.heartbeat_tick = SIM_HEARTBEAT_TICK;
	cfg.pre_vote = w->p.pre_vote;
	cfg.check_quorum = w->p.check_quorum;
	cfg.max_inflight_msgs = w->p.max_inflight;
	cfg.max_inflight_bytes = w->p.max_inflight_bytes;
	cfg.max_msg_bytes = w->p.max_msg_bytes;
	cfg.max_uncommitted_bytes = w->p.max_uncommitted;
	cfg.applied = nd->st.applied;
	cfg.seed = sim_rand_next(&w->rng);
	cfg.storage = sim_store_iface(&nd->st);
	rc = raft_create(&cfg, boot, &nd->r);
	if (rc != RAFT_OK) {
		sim_fail(w, "api", "raft_create on node %" PRIu64 " (applied %" PRIu64 "): %s",
		         nd->id, nd->st.applied, raft_strerror(rc));
		nd->r = NULL;
		return;
	}
	/*
	 * The engine records the bootstrap membership first.  Usually it also
	 * persists the first Ready before reporting the group created; with
	 * lazy_boot that Ready is an ordinary one and a crash may lose it, and
	 * the restarted core re-bootstraps from the stored membership.
	 */
	if (boot)
		nd->st.membership = *boot;
	nd->booting = boot != NULL && !w->p.lazy_boot;
	nd->up = true;
	nd->busy = false;
	nd->inc++;
	nd->role = raft_role(nd->r);
	nd->term = raft_term_of(nd->r);
	nd->lc_term = 0;
	sim_trace(w,
	          "node %" PRIu64 " %s (term %" PRIu64 ", applied %" PRIu64 ", log [%" PRIu64
	          ", %" PRIu64 "])",
	          nd->id, boot ? "bootstraps" : "starts", nd->term, nd->st.applied, nd->st.first,
	          sim_store_last(&nd->st));
	sim_observe(w, nd);
	sim_node_pump(w, nd);
}

void sim_node_crash(struct sim_world *w, struct sim_node *nd, uint64_t down_for)
{
	if (!nd->up)
		return;
	sim_trace(w,
	          "node %" PRIu64 " CRASHES%s (durable: term %" PRIu64 " last %" PRIu64
	          " applied %" PRIu64 ")",
	          nd->id, nd->busy ? " during fsync" : "", nd->st.hs.term, sim_store_last(&nd->st),
	          nd->st.applied);
	raft_destroy(nd->r);
	nd->r = NULL;
	nd->up = false;
	nd->busy = false;
	nd->crash_on_fsync = false;
	sim_store_flush_grave(&nd->st);
	if (nd->have_in_snap)
		sim_snapshot_free(&nd->in_snap);
	nd->have_in_snap = false;
	nd->restart_at = w->now + down_for;
	w->n_crashes++;
}

static void queue_report(struct sim_world *w, raft_id sender, uint32_t sender_inc, raft_id peer,
                         bool failed)
{
	struct sim_item *it = sim_xmalloc(sizeof(*it));

	memset(it, 0, sizeof(*it));
	it->kind = SIM_ITEM_SNAP_REPORT;
	it->from = peer;
	it->to = sender;
	it->from_inc = sender_inc;
	it->failed = failed;
	it->at = w->now + 1;
	sim_net_push(&w->net, it);
}

static void send(struct sim_world *w, struct sim_node *nd, const struct raft_message *m)
{
	struct sim_item *it;
	uint64_t delay;

	if (m->to < 1 || m->to > w->n || m->to == nd->id) {
		sim_fail(w, "api", "node %" PRIu64 " sends %s to node %" PRIu64, nd->id,
		         msg_name(m->type), m->to);
		return;
	}
	it = sim_item_from_msg(m);
	it->from = nd->id;
	it->from_inc = nd->inc;
	if (m->type == RAFT_MSG_SNAPSHOT) {
		const struct sim_snapshot *s = NULL;

		if (m->snapshot && nd->st.snap.meta.index == m->snapshot->index)
			s = &nd->st.snap;
		else if (m->snapshot && nd->st.old_snap.meta.index == m->snapshot->index)
			s = &nd->st.old_snap;
		if (!s || s->meta.index == 0) {
			sim_trace(w,
			          "node %" PRIu64 " snapshot for %" PRIu64
			          " has no data here; dropped",
			          nd->id, m->to);
			queue_report(w, nd->id, nd->inc, m->to, true);
			sim_item_free(it);
			return;
		}
		sim_u64s_copy(&it->sm, &s->sm, s->meta.index + 1);
	}
	if (sim_rand_permille(&w->rng, w->p.drop)) {
		sim_trace(w, "drop %s %" PRIu64 "->%" PRIu64 " (lost)", msg_name(m->type), nd->id,
		          m->to);
		if (m->type == RAFT_MSG_SNAPSHOT)
			queue_report(w, nd->id, nd->inc, m->to, true);
		sim_item_free(it);
		return;
	}
	delay = 1 + sim_rand_below(&w->rng, w->p.max_delay);
	if (sim_rand_permille(&w->rng, w->p.reorder))
		delay += sim_rand_below(&w->rng, sim_rand_below(&w->rng, 10) ? 40 : 400);
	it->at = w->now + delay;
	if (m->type != RAFT_MSG_PROPOSE && sim_rand_permille(&w->rng, w->p.dup)) {
		struct sim_item *d = sim_item_dup(it);

		d->at = w->now + 1 + sim_rand_below(&w->rng, w->p.max_delay + 20);
		sim_net_push(&w->net, d);
	}
	sim_net_push(&w->net, it);
}

static void apply_entry(struct sim_world *w, struct sim_node *nd, const struct raft_entry *e)
{
	uint64_t c = sim_content(e->type, e->data, e->len);

	sim_check_apply(w, nd, e->index, e->term, c);
	if (w->failed)
		return;
	if (e->type == RAFT_ENTRY_CONF_CHANGE) {
		struct raft_membership m;
		struct raft_conf_change cc;
		int rc;

		memset(&m, 0, sizeof(m));
		rc = raft_apply_conf_change(nd->r, e, &m);

		if (rc == RAFT_OK) {
			nd->st.membership = m;
			if (raft_conf_change_decode(e->data, e->len, &cc) == RAFT_OK &&
			    cc.type == RAFT_CC_REMOVE && cc.node_id >= 1 && cc.node_id <= w->n)
				w->nodes[cc.node_id].retire_pending = true;
		}
		sim_trace(w, "node %" PRIu64 " applies conf change at %" PRIu64 ": %s (%u voters)",
		          nd->id, e->index, raft_strerror(rc), m.n_voters);
	}
	sim_u64s_set(&nd->st.sm, e->index, c);
	nd->st.applied = e->index;
}

static void ready_finish(struct sim_world *w, struct sim_node *nd)
{
	struct raft_ready *rd = &nd->rd;

	if (rd->has_snapshot) {
		if (!nd->have_in_snap || nd->in_snap.meta.index != rd->snapshot.index) {
			sim_fail(w, "snapshot",
			         "node %" PRIu64 " told to install snapshot %" PRIu64
			         " it never received",
			         nd->id, rd->snapshot.index);
			return;
		}
		nd->in_snap.meta = rd->snapshot;
		sim_check_snapshot(w, nd, &nd->in_snap);
		if (w->failed)
			return;
		sim_store_install(&nd->st, &nd->in_snap);
		sim_snapshot_free(&nd->in_snap);
		nd->have_in_snap = false;
		w->n_snapshots++;
		sim_trace(w, "node %" PRIu64 " installs snapshot %" PRIu64 " term %" PRIu64, nd->id,
		          rd->snapshot.index, rd->snapshot.term);
	}
	if (rd->n_entries) {
		sim_check_append(w, nd, rd->entries, rd->n_entries);
		if (w->failed)
			return;
	}
	if (rd->hard_state_changed) {
		sim_check_hard_state(w, nd, &rd->hard_state);
		nd->st.hs = rd->hard_state;
	}
	if (rd->n_entries && sim_store_append(&nd->st, rd->entries, rd->n_entries) != 0) {
		sim_fail(w, "api", "node %" PRIu64 " cannot append entries from %" PRIu64, nd->id,
		         rd->entries[0].index);
		return;
	}
	for (uint32_t i = 0; i < rd->n_messages && !w->failed; i++)
		if (!raft_msg_may_precede_persist(&rd->messages[i]))
			send(w, nd, &rd->messages[i]);
	for (uint32_t i = 0; i < rd->n_committed && !w->failed; i++)
		apply_entry(w, nd, &rd->committed[i]);
	for (uint32_t i = 0; i < rd->n_read_states && !w->failed; i++)
		sim_check_read(w, nd, rd->read_states[i].context, rd->read_states[i].index);
	if (w->failed)
		return;
	raft_advance(nd->r, rd);
	nd->busy = false;
	sim_store_flush_grave(&nd->st);
	sim_observe(w, nd);
}

/* Take a Ready; returns false if its persistence was delayed. */
static bool ready_begin(struct sim_world *w, struct sim_node *nd)
{
	struct raft_ready *rd = &nd->rd;
	bool io;

	raft_ready(nd->r, rd);
	if (rd->n_entries)
		sim_trace(w,
		          "node %" PRIu64 " ready: entries [%" PRIu64 ", %" PRIu64
		          "] commit %" PRIu64 " msgs %u apply %u",
		          nd->id, rd->entries[0].index, rd->entries[rd->n_entries - 1].index,
		          rd->hard_state.commit, rd->n_messages, rd->n_committed);
	for (uint32_t i = 0; i < rd->n_messages && !w->failed; i++)
		if (raft_msg_may_precede_persist(&rd->messages[i]))
			send(w, nd, &rd->messages[i]);
	io = rd->n_entries || rd->hard_state_changed || rd->has_snapshot;
	if (nd->booting) {
		nd->booting = false;
		ready_finish(w, nd);
		return true;
	}
	if ((io && sim_rand_permille(&w->rng, w->p.fsync_delay)) ||
	    (nd->crash_on_fsync && rd->n_entries)) {
		nd->busy = true;
		nd->persist_at = w->now + 1 + sim_rand_below(&w->rng, w->p.fsync_max);
		return false;
	}
	ready_finish(w, nd);
	return true;
}

void sim_node_pump(struct sim_world *w, struct sim_node *nd)
{
	for (int guard = 0; sim_node_ready_for_calls(nd) && !w->failed && raft_has_ready(nd->r);
	     guard++) {
		if (guard > 1000) {
			sim_fail(w, "api", "node %" PRIu64 " keeps having a Ready", nd->id);
			return;
		}
		if (!ready_begin(w, nd))
			return;
	}
}

void sim_node_persist_due(struct sim_world *w, struct sim_node *nd)
{
	if (!nd->up || !nd->busy || nd->persist_at > w->now)
		return;
	if (nd->crash_on_fsync && nd->rd.n_entries) {
		sim_node_crash(w, nd, SIM_TICK_UNITS * (5 + sim_rand_below(&w->rng, 40)));
		return;
	}
	ready_finish(w, nd);
	sim_node_pump(w, nd);
}

/* Put an item back until the node's persist is done. */
static void postpone(struct sim_world *w, struct sim_node *nd, struct sim_item *it)
{
	it->at = nd->persist_at > w->now ? nd->persist_at : w->now + 1;
	sim_net_push(&w->net, it);
}

void sim_node_deliver(struct sim_world *w, struct sim_item *it)
{
	struct sim_node *nd = &w->nodes[it->to];
	struct sim_node *from = &w->nodes[it->from];
	int rc;

	if (it->kind == SIM_ITEM_SNAP_REPORT) {
		if (nd->up && nd->inc == it->from_inc) {
			if (nd->busy) {
				postpone(w, nd, it);
				return;
			}
			raft_report_snapshot(nd->r, it->from, it->failed);
			sim_observe(w, nd);
			sim_node_pump(w, nd);
		}
		sim_item_free(it);
		return;
	}
	if (!nd->up || w->net.blocked[it->from][it->to]) {
		sim_trace(w, "drop %s %" PRIu64 "->%" PRIu64 " (%s)", msg_name(it->m.type),
		          it->from, it->to, nd->up ? "partition" : "node down");
		if (it->m.type == RAFT_MSG_SNAPSHOT)
			queue_report(w, it->from, it->from_inc, it->to, true);
		if (nd->up && sim_node_ready_for_calls(from) && from->inc == it->from_inc) {
			raft_report_unreachable(from->r, it->to);
			sim_node_pump(w, from);
		}
		sim_item_free(it);
		return;
	}
	if (nd->busy) {
		postpone(w, nd, it);
		return;
	}
	if (it->m.type == RAFT_MSG_SNAPSHOT && it->m.snapshot) {
		if (nd->have_in_snap)
			sim_snapshot_free(&nd->in_snap);
		nd->in_snap.meta = *it->m.snapshot;
		sim_u64s_copy(&nd->in_snap.sm, &it->sm, it->sm.n);
		nd->have_in_snap = true;
	}
	if (w->trace && it->m.type != RAFT_MSG_HEARTBEAT && it->m.type != RAFT_MSG_HEARTBEAT_RESP)
		sim_trace(w,
		          "deliver %s %" PRIu64 "->%" PRIu64 " term %" PRIu64 " idx %" PRIu64
		          " logterm %" PRIu64 " commit %" PRIu64 " n %u%s",
		          msg_name(it->m.type), it->from, it->to, it->m.term, it->m.index,
		          it->m.log_term, it->m.commit, it->m.n_entries,
		          it->m.reject ? " reject" : "");
	rc = raft_step(nd->r, &it->m);
	if (rc != RAFT_OK)
		sim_trace(w, "node %" PRIu64 " step %s: %s", nd->id, msg_name(it->m.type),
		          raft_strerror(rc));
	if (it->m.type == RAFT_MSG_SNAPSHOT)
		queue_report(w, it->from, it->from_inc, it->to, false);
	sim_observe(w, nd);
	sim_node_pump(w, nd);
	sim_item_free(it);
}
