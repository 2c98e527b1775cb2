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
 * A leader's Ready that says sync_deferred is written unsynced; a background
 * sync (one at a time, as the engine's) later makes the writes made before it
 * started durable and reports them with raft_durable(); a crash before that
 * keeps only a prefix of them (sim_store.c).
 * In batch mode inputs (messages, ticks, client calls) pile up between
 * Readys, as when an engine steps a whole batch before its next round.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

/* ---- allocation failures ---- */

static struct sim_world *alloc_world; /* the run being simulated, if any */

void sim_alloc_bind(struct sim_world *w)
{
	alloc_world = w;
}

static bool alloc_fails(void)
{
	struct sim_world *w = alloc_world;

	if (w == NULL || w->p.nomem == 0 || !sim_rand_permille(&w->fault_rng, w->p.nomem))
		return false;
	w->n_nomem++;
	return true;
}

static void *sim_malloc(size_t n)
{
	return alloc_fails() ? NULL : malloc(n);
}

static void *sim_realloc(void *p, size_t n)
{
	return alloc_fails() ? NULL : realloc(p, n);
}

const struct raft_alloc sim_alloc = {sim_malloc, sim_realloc, free};

static const char *msg_name(uint32_t t)
{
	static const char *names[] = {"?",         "append",      "append-resp",  "vote",
	                              "vote-resp", "prevote",     "prevote-resp", "heartbeat",
	                              "hb-resp",   "snapshot",    "propose",      "readindex",
	                              "ri-resp",   "timeout-now", "transfer",     "quiesce"};

	return t < sizeof(names) / sizeof(names[0]) ? names[t] : "?";
}

bool sim_node_ready_for_calls(const struct sim_node *nd)
{
	return nd->up && nd->r && !nd->busy && !nd->stopped && !nd->paused;
}

/*
 * What the core starts from, as the engine restarts a group (logview.c
 * eng_view_load, engine_start_group): the membership of the snapshot, or of
 * the bootstrap record, and the changes in the log up to the commit index
 * applied again; the core's applied index is the snapshot's; the state
 * machine is at its durable applied index and skips what it holds (sm_skip),
 * but the membership changes among those entries go to the core.  An entry
 * the state machine applied was committed: the commit index starts there
 * if it was saved lower (a commit-only Ready saves nothing).
 */
static void restart_view(struct sim_world *w, struct sim_node *nd, struct raft_config *cfg)
{
	struct sim_store *s = &nd->st;

	s->membership = s->snap.index > 0 ? s->snap.membership : s->boot;
	cfg->applied = nd->applied = s->snap.index;
	nd->replay_upto = s->applied;
	if (s->applied > sim_store_last(s))
		sim_fail(w, "api",
		         "node %" PRIu64 ": the state machine applied %" PRIu64
		         " past the log's end %" PRIu64,
		         nd->id, s->applied, sim_store_last(s));
	else if (!w->o.stale_commit && s->hs.commit < s->applied)
		s->hs.commit = s->applied;
	nd->hs = s->hs;
}

void sim_node_start(struct sim_world *w, struct sim_node *nd, const struct raft_membership *boot)
{
	struct raft_config cfg;
	int rc;

	memset(&cfg, 0, sizeof(cfg));
	cfg.group_id = 1;
	cfg.id = nd->id;
	cfg.election_tick = w->p.elect_tick;
	cfg.heartbeat_tick = w->p.hb_tick;
	cfg.pre_vote = w->p.pre_vote;
	cfg.check_quorum = w->p.check_quorum;
	cfg.max_inflight_msgs = w->p.max_inflight;
	cfg.max_inflight_bytes = w->p.max_inflight_bytes;
	cfg.max_msg_bytes = w->p.max_msg_bytes;
	cfg.max_uncommitted_bytes = w->p.max_uncommitted;
	/* The slow node applies one entry per Ready: its applied index lags. */
	cfg.max_committed_bytes = nd->id == w->p.slow ? 1 : w->p.max_committed;
	cfg.quiesce_tick = w->p.quiesce_tick;
	cfg.defer_leader_sync = w->p.defer;
	cfg.seed = sim_rand_next(&w->rng);
	cfg.storage = sim_store_iface(&nd->st);
	cfg.alloc = &sim_alloc;
	/*
	 * The engine records the bootstrap membership first.  Usually it also
	 * persists the first Ready before reporting the group created; with
	 * lazy_boot that Ready is an ordinary one and a crash may lose it, and
	 * the restarted core re-bootstraps from the stored membership.
	 */
	if (boot)
		nd->st.boot = *boot;
	restart_view(w, nd, &cfg);
	rc = raft_create(&cfg, boot, &nd->r);
	if (rc == RAFT_ERR_NOMEM) {
		sim_trace(w, "node %" PRIu64 " cannot start: out of memory", nd->id);
		nd->r = NULL;
		nd->restart_at = w->now + 1;
		return;
	}
	if (rc != RAFT_OK) {
		sim_fail(w, "api", "raft_create on node %" PRIu64 " (applied %" PRIu64 "): %s",
		         nd->id, nd->st.applied, raft_strerror(rc));
		nd->r = NULL;
		return;
	}
	nd->booting = boot != NULL && !w->p.lazy_boot;
	nd->up = true;
	nd->busy = false;
	nd->stopped = false;
	nd->dirty = false;
	nd->unreach_at = 0;
	nd->inc++;
	nd->role = raft_role(nd->r);
	nd->term = raft_term_of(nd->r);
	nd->commit = nd->commit_seen = raft_commit_index(nd->r);
	nd->lc_term = 0;
	sim_trace(w,
	          "node %" PRIu64 " %s (term %" PRIu64 ", applied %" PRIu64 ", log [%" PRIu64
	          ", %" PRIu64 "])",
	          nd->id, boot ? "bootstraps" : "starts", nd->term, nd->st.applied, nd->st.first,
	          sim_store_last(&nd->st));
	sim_observe(w, nd);
	sim_node_pump(w, nd);
}

void sim_node_drop_snapshots(struct sim_node *nd)
{
	for (unsigned i = 0; i < nd->n_in_snap; i++)
		sim_snapshot_free(&nd->in_snap[i]);
	nd->n_in_snap = 0;
}

/* Keep the data of a snapshot message (the core may take any one received). */
static void keep_snapshot(struct sim_node *nd, const struct sim_item *it)
{
	unsigned n = sizeof(nd->in_snap) / sizeof(nd->in_snap[0]);

	if (nd->n_in_snap == n) { /* forget the oldest */
		sim_snapshot_free(&nd->in_snap[0]);
		memmove(nd->in_snap, nd->in_snap + 1, (n - 1) * sizeof(nd->in_snap[0]));
		nd->n_in_snap--;
	}
	memset(&nd->in_snap[nd->n_in_snap], 0, sizeof(nd->in_snap[0]));
	nd->in_snap[nd->n_in_snap].meta = *it->m.snapshot;
	sim_u64s_copy(&nd->in_snap[nd->n_in_snap].sm, &it->sm, it->sm.n);
	nd->n_in_snap++;
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
	nd->stopped = false;
	nd->dirty = false;
	nd->crash_on_fsync = false;
	nd->syncing = nd->report_retry = nd->owe = false; /* the sync dies with the process */
	if (nd->st.n_wrec > 0) {
		/* A journal: a prefix of the unsynced writes may have reached the disk. */
		size_t n = nd->st.n_wrec, keep = 0;
		long lost;

		if (sim_rand_permille(&w->sync_rng, w->p.crash_keep))
			keep = sim_rand_below(&w->sync_rng, n + 1);
		lost = sim_store_crash(&nd->st, keep);
		if (lost < 0)
			sim_fail(w, "apply-durable",
			         "node %" PRIu64 " compacted its log past what a crash keeps",
			         nd->id);
		else
			w->n_lost_writes += (uint64_t)lost;
		sim_trace(w,
		          "node %" PRIu64 " keeps %zu of %zu unsynced writes: log back to %" PRIu64
		          ", term %" PRIu64 " commit %" PRIu64,
		          nd->id, keep, n, sim_store_last(&nd->st), nd->st.hs.term,
		          nd->st.hs.commit);
	}
	sim_store_flush_grave(&nd->st);
	nd->st.applied = nd->st.durable;
	sim_node_drop_snapshots(nd);
	sim_check_crashed(w, nd);
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
	/* The transport may also report a failure after the data arrived. */
	it->failed = failed || sim_rand_permille(&w->rng, w->p.snap_fail);
	it->at = w->now + 1 + sim_rand_below(&w->rng, w->p.snap_delay);
	sim_net_push(&w->net, it);
}

/*
 * As the engine ships a snapshot (src/engine/snapshot.c eng_send_snapshot,
 * ship): the core's message names the stored snapshot, but the follower gets
 * a state machine snapshot made now, at the state machine's applied index,
 * with the membership as of that index; the engine reports it failed when
 * that index is past the core's applied index (a replay after a restart) or,
 * below it, when its term or membership is not known here.  The state
 * machine's applied index may lag the engine's (PostgreSQL's apply worker):
 * per seed, some snapshots are made at the durable applied index.
 */
static bool make_snapshot(struct sim_world *w, struct sim_node *nd, struct sim_item *it)
{
	struct sim_store *s = &nd->st;
	raft_index at = s->applied;

	if (s->durable < at && sim_rand_permille(&w->rng, w->p.sm_lag))
		at = s->durable;
	if (at == 0 || at > nd->applied || s->membership.config_index > at ||
	    sim_store_term(s, at, &it->meta.term) != RAFT_OK)
		return false;
	it->meta.index = at;
	it->meta.membership = s->membership;
	it->m.index = at;
	it->m.log_term = it->meta.term;
	sim_u64s_copy(&it->sm, &s->sm, at + 1);
	return true;
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
	sim_check_intact(w, nd, m->entries, m->n_entries, msg_name(m->type));
	if (w->failed)
		return;
	/* No message of a term leaves before that term is saved (a pre-vote
	 * carries the term it asks for, not the sender's): a leader elected
	 * alone sends its appends from the Ready after the one that saves its
	 * term (ready.c), so that a crash in that save leaves no trace of the
	 * leadership (sim_check_crashed). */
	if (m->type != RAFT_MSG_PREVOTE && m->type != RAFT_MSG_PREVOTE_RESP &&
	    m->term > nd->sent_term) {
		nd->sent_term = m->term;
		if (nd->st.hs.term < m->term)
			sim_fail(w, "term-durable",
			         "node %" PRIu64 " sends %s of term %" PRIu64 " with term %" PRIu64
			         " saved",
			         nd->id, msg_name(m->type), m->term, nd->st.hs.term);
	}
	it = sim_item_from_msg(m);
	it->from = nd->id;
	it->from_inc = nd->inc;
	if (m->type == RAFT_MSG_SNAPSHOT && !make_snapshot(w, nd, it)) {
		sim_trace(w, "node %" PRIu64 " cannot make a snapshot for %" PRIu64 " now", nd->id,
		          m->to);
		raft_report_snapshot(nd->r, m->to, true);
		sim_item_free(it);
		return;
	}
	if (m->to == w->net.lose_acks_to && m->type == RAFT_MSG_APPEND_RESP && !m->reject) {
		sim_trace(w, "drop %s %" PRIu64 "->%" PRIu64 " (probe: acks lost)",
		          msg_name(m->type), nd->id, m->to);
		sim_item_free(it);
		return;
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
	else if (m->type == RAFT_MSG_APPEND && sim_rand_permille(&w->rng, w->p.reorder_appends))
		delay += 2 +
		         sim_rand_below(&w->rng, 8 * w->p.max_delay); /* overtaken by later ones */
	it->at = w->now + delay;
	if (m->type != RAFT_MSG_PROPOSE &&
	    sim_rand_permille(&w->rng,
	                      m->type == RAFT_MSG_SNAPSHOT ? w->p.dup + w->p.dup_snap : w->p.dup)) {
		struct sim_item *d = sim_item_dup(it);

		d->at = w->now + 1 + sim_rand_below(&w->rng, w->p.max_delay + 20);
		sim_net_push(&w->net, d);
	}
	sim_net_push(&w->net, it);
}

/* Remember an id removed by the conf change at index at (it must never come back). */
static void note_removed(struct sim_world *w, raft_id id, raft_index at)
{
	for (unsigned i = 0; i < w->n_removed; i++)
		if (w->removed[i].id == id)
			return;
	if (w->n_removed < sizeof(w->removed) / sizeof(w->removed[0])) {
		w->removed[w->n_removed].id = id;
		w->removed[w->n_removed++].at = at;
	}
}

static void apply_conf_change(struct sim_world *w, struct sim_node *nd, const struct raft_entry *e)
{
	struct raft_membership m;
	struct raft_conf_change cc;
	int rc, tries = 0;

	memset(&m, 0, sizeof(m));
	/* Out of memory changes nothing: the engine retries before applying more. */
	do
		rc = raft_apply_conf_change(nd->r, e, &m);
	while (rc == RAFT_ERR_NOMEM && ++tries < 1000);
	sim_trace(w, "node %" PRIu64 " applies conf change at %" PRIu64 ": %s (%u voters)", nd->id,
	          e->index, raft_strerror(rc), m.n_voters);
	if (rc != RAFT_OK) {
		sim_observe(w, nd);
		if (!w->failed && !nd->stopped)
			sim_fail(w, "api",
			         "node %" PRIu64 " cannot apply conf change %" PRIu64 ": %s",
			         nd->id, e->index, raft_strerror(rc));
		return;
	}
	nd->st.membership = m;
	sim_check_membership(w, nd, &m);
	/* Until its next write, a restart may not see the change (its commit index is
	 * saved only with it, and the state machine may not hold it durably): crash then. */
	if (!w->healed && e->index > nd->replay_upto && sim_rand_permille(&w->rng, w->p.kill))
		nd->crash_on_fsync = true;
	if (raft_conf_change_decode(e->data, e->len, &cc) != RAFT_OK || cc.type != RAFT_CC_REMOVE ||
	    raft_membership_contains(&m, cc.node_id))
		return;
	note_removed(w, cc.node_id, e->index);
	/* A removed node stops (and deletes its data) once it learns, not before. */
	if (cc.node_id == nd->id)
		nd->retire_pending = true;
}

static void apply_entry(struct sim_world *w, struct sim_node *nd, const struct raft_entry *e)
{
	uint64_t c = sim_content(e->type, e->data, e->len);

	if (e->index > nd->replay_upto) {
		sim_check_apply_durable(w, nd, e->index);
		if (!w->failed)
			sim_check_apply(w, nd, e->index, e->term, c);
	} else if (e->index != nd->applied + 1)
		sim_fail(w, "apply-order",
		         "node %" PRIu64 " asked to apply index %" PRIu64 " after %" PRIu64
		         " (again after a restart)",
		         nd->id, e->index, nd->applied);
	if (w->failed)
		return;
	if (e->type == RAFT_ENTRY_CONF_CHANGE)
		apply_conf_change(w, nd, e);
	nd->applied = e->index;
	if (e->index <= nd->replay_upto)
		return; /* the state machine has it (sm_skip) */
	sim_u64s_set(&nd->st.sm, e->index, c);
	nd->st.applied = e->index;
}

/*
 * As round.c's save_conf_commit: before membership changes are applied, the
 * commit index that covers them is saved (a restart applies them again only
 * up to the saved commit index).
 */
static void save_conf_commit(struct sim_world *w, struct sim_node *nd, const struct raft_ready *rd)
{
	raft_index hi = 0;

	for (uint32_t i = 0; i < rd->n_committed; i++)
		if (rd->committed[i].type == RAFT_ENTRY_CONF_CHANGE &&
		    rd->committed[i].index > nd->applied)
			hi = rd->committed[i].index;
	if (hi == 0 || w->o.no_conf_commit)
		return;
	if (nd->hs.commit < hi)
		nd->hs.commit = hi;
	nd->st.hs = nd->hs;
	/* A synced save: it makes unsynced writes durable, which the engine's next
	 * background sync reports (their dw_index stays); report them (owe, next step:
	 * not inside this Ready), or nothing would once the sync in flight, started
	 * before the last of them, ended (sim --two-remove --defer 5:12981). */
	if (nd->st.n_wrec > 0 &&
	    sim_store_term(&nd->st, sim_store_last(&nd->st), &nd->owe_term) == RAFT_OK) {
		nd->owe = true;
		nd->owe_index = sim_store_last(&nd->st);
	}
	sim_store_synced(&nd->st);
}

static void apply_committed(struct sim_world *w, struct sim_node *nd, const struct raft_ready *rd)
{
	sim_check_intact(w, nd, rd->committed, rd->n_committed, "committed entries");
	if (!w->failed)
		save_conf_commit(w, nd, rd);
	for (uint32_t i = 0; i < rd->n_committed && !w->failed && !nd->stopped; i++)
		apply_entry(w, nd, &rd->committed[i]);
}

/*
 * Does rd write anything (round.c step 3)?  Entries, a snapshot, a new term
 * or vote, all synced, with the current hard state.  A Ready that only moved
 * the commit index saves nothing (its commit index goes with the next save),
 * unless that index may cover a membership change above the stored one
 * (raft_conf_bound; w->o.lazy_conf_commit: it does not, as before review 15).
 */
static bool conf_commit_due(const struct sim_world *w, const struct sim_node *nd,
                            const struct raft_ready *rd)
{
	return !w->o.lazy_conf_commit && rd->hard_state.commit > nd->st.hs.commit &&
	       raft_conf_bound(nd->r) > nd->st.hs.commit;
}

static bool saves(const struct sim_world *w, const struct sim_node *nd, const struct raft_ready *rd)
{
	return rd->n_entries || rd->has_snapshot ||
	       (rd->hard_state_changed &&
	        (rd->hard_state.term != nd->st.hs.term || rd->hard_state.vote != nd->st.hs.vote)) ||
	       conf_commit_due(w, nd, rd);
}

/* Start the background sync of the deferred writes made so far (none in flight). */
static void sync_start(struct sim_world *w, struct sim_node *nd)
{
	const struct sim_store *s = &nd->st;
	uint64_t x = sim_rand_below(&w->sync_rng, 1000);

	if (nd->syncing || nd->report_retry || s->n_wrec == 0)
		return;
	nd->syncing = true;
	nd->sync_seq = s->wrec[s->n_wrec - 1].seq;
	nd->sync_index = s->wrec[s->n_wrec - 1].last;
	nd->sync_term = s->wrec[s->n_wrec - 1].term;
	if (x < w->p.sync_zero)
		nd->sync_at = w->now;
	else if ((x -= w->p.sync_zero) < w->p.sync_never && !w->healed)
		nd->sync_at = UINT64_MAX;
	else if (x < w->p.sync_never + w->p.sync_long)
		nd->sync_at = w->now + 1 +
		              sim_rand_below(&w->sync_rng, 3ULL * SIM_TICK_UNITS * w->p.elect_tick);
	else
		nd->sync_at = w->now + 1 + sim_rand_below(&w->sync_rng, w->p.sync_max);
}

/* Report the sync done to the core; false if it must be reported again (out of memory). */
static bool sync_report(struct sim_world *w, struct sim_node *nd, bool found)
{
	raft_term have = 0;
	unsigned fail = nd->st.fail;
	int rc;

	/* (what the core holds there now, for the trace: no injected read failure for the
	 * harness's look; compacted is not replaced) */
	nd->st.fail = 0;
	rc = raft_term_at(nd->r, nd->sync_index, &have);
	if (rc != RAFT_OK)
		have = rc == RAFT_ERR_COMPACTED ? nd->sync_term : 0;
	nd->st.fail = fail;
	rc = raft_durable(nd->r, nd->sync_index, nd->sync_term);
	sim_trace(w, "node %" PRIu64 " sync done: durable to %" PRIu64 " term %" PRIu64 "%s%s: %s",
	          nd->id, nd->sync_index, nd->sync_term,
	          found ? "" : " (overtaken by a synced save)",
	          have != nd->sync_term ? " (replaced since)" : "", raft_strerror(rc));
	nd->report_retry = rc == RAFT_ERR_NOMEM; /* storage could not read the term now */
	if (nd->report_retry)
		return false;
	w->n_sync_stale += have != nd->sync_term;
	sim_observe(w, nd);
	if (rc != RAFT_OK && !w->failed && !nd->stopped)
		sim_fail(w, "api", "raft_durable on node %" PRIu64 ": %s", nd->id,
		         raft_strerror(rc));
	return true;
}

/* The sync in flight is done: the writes made before it started are durable. */
static void sync_complete(struct sim_world *w, struct sim_node *nd)
{
	raft_index index;
	raft_term term;
	bool found;

	nd->syncing = false;
	found = sim_store_sync_done(&nd->st, nd->sync_seq, &index, &term);
	w->n_syncs++;
	w->n_sync_overtaken += !found;
	if (!sync_report(w, nd, found) || w->failed || nd->stopped)
		return;
	sync_start(w, nd); /* what was written after this one started */
	if (nd->syncing && nd->sync_at <= w->now)
		sync_complete(w, nd);
}

/*
 * A synced save made unsynced writes durable: report it, as the engine must
 * when the core does not count that save itself (one that only stores the
 * commit index: save_conf_commit, or a commit raft_conf_bound covers); for the
 * others the report is one the core knows already.  Out of memory: next step.
 */
static void report_owed(struct sim_world *w, struct sim_node *nd)
{
	int rc = raft_durable(nd->r, nd->owe_index, nd->owe_term);

	sim_trace(w, "node %" PRIu64 " synced save: durable to %" PRIu64 " term %" PRIu64 ": %s",
	          nd->id, nd->owe_index, nd->owe_term, raft_strerror(rc));
	if (rc == RAFT_ERR_NOMEM)
		return;
	nd->owe = false;
	sim_observe(w, nd);
	if (rc != RAFT_OK && !w->failed && !nd->stopped)
		sim_fail(w, "api", "raft_durable on node %" PRIu64 ": %s", nd->id,
		         raft_strerror(rc));
}

void sim_node_sync_due(struct sim_world *w, struct sim_node *nd)
{
	if (!nd->up || !nd->r || nd->busy || nd->paused || nd->stopped)
		return;
	if (nd->owe) {
		report_owed(w, nd);
		sim_node_pump(w, nd);
		if (w->failed || nd->stopped)
			return;
	}
	if (nd->report_retry) {
		if (!sync_report(w, nd, true) || w->failed || nd->stopped)
			return;
		sync_start(w, nd);
		sim_node_pump(w, nd);
		return;
	}
	if (!nd->syncing || nd->sync_at > w->now)
		return;
	sync_complete(w, nd);
	sim_node_pump(w, nd);
}

static void ready_finish(struct sim_world *w, struct sim_node *nd)
{
	struct raft_ready *rd = &nd->rd;
	bool io = saves(w, nd, rd), unsynced = nd->st.n_wrec > 0;
	/* (a commit round.c's conf_commit_due asks for is synced, deferred Ready or not) */
	bool deferred = rd->sync_deferred && !nd->conf_commit;

	if (rd->sync_deferred &&
	    (!rd->n_entries || rd->has_snapshot ||
	     rd->entries[0].index != sim_store_last(&nd->st) + 1 ||
	     (rd->hard_state_changed &&
	      (rd->hard_state.term != nd->st.hs.term || rd->hard_state.vote != nd->st.hs.vote)))) {
		sim_fail(w, "api",
		         "node %" PRIu64 ": a deferred Ready that does not only append entries",
		         nd->id);
		return;
	}
	if (rd->has_snapshot) {
		struct sim_snapshot *in = NULL;

		for (unsigned i = 0; i < nd->n_in_snap; i++)
			if (nd->in_snap[i].meta.index == rd->snapshot.index &&
			    nd->in_snap[i].meta.term == rd->snapshot.term)
				in = &nd->in_snap[i];
		if (in == NULL) {
			sim_fail(w, "snapshot",
			         "node %" PRIu64 " told to install snapshot %" PRIu64
			         " it never received",
			         nd->id, rd->snapshot.index);
			return;
		}
		in->meta = rd->snapshot;
		sim_check_snapshot(w, nd, in);
		if (w->failed)
			return;
		sim_store_install(&nd->st, in);
		nd->applied = rd->snapshot.index;
		nd->replay_upto = 0; /* the snapshot replaced the state machine */
		sim_node_drop_snapshots(nd);
		w->n_snapshots++;
		sim_trace(w, "node %" PRIu64 " installs snapshot %" PRIu64 " term %" PRIu64, nd->id,
		          rd->snapshot.index, rd->snapshot.term);
	}
	if (rd->n_entries) {
		sim_check_intact(w, nd, rd->entries, rd->n_entries, "Ready entries");
		sim_check_append(w, nd, rd->entries, rd->n_entries);
		if (w->failed)
			return;
	}
	if (rd->hard_state_changed) {
		sim_check_hard_state(w, nd, &rd->hard_state);
		nd->hs = rd->hard_state;
	}
	/* (before review 15, a save stored the hard state only when it changed) */
	if (saves(w, nd, rd) && (rd->hard_state_changed || !w->o.lazy_conf_commit))
		nd->st.hs = rd->hard_state;
	if (deferred)
		sim_store_defer_begin(&nd->st);
	if (rd->n_entries && sim_store_append(&nd->st, rd->entries, rd->n_entries) != 0) {
		sim_fail(w, "api", "node %" PRIu64 " cannot append entries from %" PRIu64, nd->id,
		         rd->entries[0].index);
		return;
	}
	if (deferred)
		(void)sim_store_defer_end(&nd->st);
	else if (io)
		sim_store_synced(&nd->st);
	for (uint32_t i = 0; i < rd->n_messages && !w->failed; i++)
		if (!raft_msg_may_precede_persist(&rd->messages[i]) || nd->conf_commit)
			send(w, nd, &rd->messages[i]);
	apply_committed(w, nd, rd);
	if (sim_rand_permille(&w->rng, w->p.sm_flush))
		nd->st.durable = nd->st.applied;
	for (uint32_t i = 0; i < rd->n_read_states && !w->failed; i++)
		sim_check_read(w, nd, rd->read_states[i].context, rd->read_states[i].index);
	if (w->failed)
		return;
	raft_advance(nd->r, rd);
	nd->busy = false;
	sim_store_flush_grave(&nd->st);
	sim_observe(w, nd);
	/* (a deferred Ready saved synced for its commit index, as round.c's written():
	 * the core waits for the report of its entries) */
	if ((unsynced || (rd->sync_deferred && !deferred)) && nd->st.n_wrec == 0 && !w->failed &&
	    !nd->stopped) {
		nd->owe = true;
		nd->owe_index = sim_store_last(&nd->st);
		if (sim_store_term(&nd->st, nd->owe_index, &nd->owe_term) == RAFT_OK)
			report_owed(w, nd);
		else
			nd->owe = false;
	}
	if (deferred && !w->failed && !nd->stopped) {
		w->n_deferred++;
		sync_start(w, nd);
		if (nd->syncing && nd->sync_at <= w->now)
			sync_complete(w, nd);
	}
}

/*
 * An apply-only Ready (raft_ready_apply), as the engine takes one before
 * each round: on every other step of the clock (not from the random stream,
 * so that seeds keep their runs).  It may only hold committed entries this
 * node already stored.
 */
static void apply_early(struct sim_world *w, struct sim_node *nd)
{
	struct raft_ready *rd = &nd->rd;
	int rc;

	if ((w->now + nd->id) % 2 != 0 || !raft_has_apply_ready(nd->r))
		return;
	rc = raft_ready_apply(nd->r, rd);
	if (rc != RAFT_OK) {
		sim_observe(w, nd);
		if (!w->failed && !nd->stopped)
			sim_fail(w, "api", "raft_ready_apply on node %" PRIu64 ": %s", nd->id,
			         raft_strerror(rc));
		return;
	}
	if (rd->n_entries || rd->n_messages || rd->hard_state_changed || rd->has_snapshot ||
	    rd->n_read_states ||
	    (rd->n_committed &&
	     rd->committed[rd->n_committed - 1].index > sim_store_last(&nd->st))) {
		sim_fail(w, "api",
		         "node %" PRIu64 ": an apply-only Ready holds more than stored "
		         "committed entries",
		         nd->id);
		return;
	}
	apply_committed(w, nd, rd);
	if (w->failed)
		return;
	raft_advance(nd->r, rd);
	sim_observe(w, nd);
}

/* Take a Ready; returns false if there was none or its persistence was delayed. */
static bool ready_begin(struct sim_world *w, struct sim_node *nd)
{
	struct raft_ready *rd = &nd->rd;
	bool io;
	int rc;

	rc = raft_ready(nd->r, rd);
	if (rc != RAFT_OK) {
		sim_observe(w, nd); /* a fatal rc stops the node */
		if (!w->failed && !nd->stopped)
			sim_fail(w, "api", "raft_ready on node %" PRIu64 ": %s", nd->id,
			         raft_strerror(rc));
		return false;
	}
	if (rd->n_entries)
		sim_trace(w,
		          "node %" PRIu64 " ready: entries [%" PRIu64 ", %" PRIu64
		          "] commit %" PRIu64 " msgs %u apply %u",
		          nd->id, rd->entries[0].index, rd->entries[rd->n_entries - 1].index,
		          rd->hard_state.commit, rd->n_messages, rd->n_committed);
	/* As round.c: not before a save of a commit index that may cover a membership
	 * change (conf_commit_due; w->o.early_conf_appends: as before review 41). */
	nd->conf_commit = conf_commit_due(w, nd, rd) && !w->o.early_conf_appends;
	for (uint32_t i = 0; i < rd->n_messages && !w->failed && !nd->conf_commit; i++)
		if (raft_msg_may_precede_persist(&rd->messages[i]))
			send(w, nd, &rd->messages[i]);
	io = saves(w, nd, rd);
	if (nd->booting) {
		nd->booting = false;
		ready_finish(w, nd);
		return true;
	}
	/* Any Ready that writes may be slow to sync, and a crash then loses all of it. */
	if (io && (nd->crash_on_fsync || sim_rand_permille(&w->rng, w->p.fsync_delay))) {
		nd->busy = true;
		nd->persist_at = w->now + 1 + sim_rand_below(&w->rng, w->p.fsync_max);
		return false;
	}
	ready_finish(w, nd);
	return true;
}

void sim_node_loop(struct sim_world *w, struct sim_node *nd, bool one)
{
	/* Bounded: a few Readys, plus one per entry to apply (max_committed may be
	 * tiny), counted from the commit index now: a single voter elected in the
	 * loop commits its whole log at once (seed 3:264778 --two-remove --defer,
	 * 1,461 entries, where a bound taken before the loop allowed 1,000). */
	raft_index applied0 = nd->applied;

	nd->dirty = false;
	for (uint64_t guard = 0;
	     sim_node_ready_for_calls(nd) && !w->failed && raft_has_ready(nd->r); guard++) {
		if (one && guard > 0) {
			nd->dirty = true; /* the rest waits for the next loop */
			return;
		}
		raft_index commit = raft_commit_index(nd->r);

		if (guard > 1000 + (commit > applied0 ? commit - applied0 : 0)) {
			sim_fail(w, "api", "node %" PRIu64 " keeps having a Ready", nd->id);
			return;
		}
		apply_early(w, nd);
		if (w->failed || !sim_node_ready_for_calls(nd) || !raft_has_ready(nd->r))
			return;
		if (!ready_begin(w, nd))
			return;
	}
}

void sim_node_pump(struct sim_world *w, struct sim_node *nd)
{
	if (w->p.batch || (nd->id == w->p.slow && !w->healed))
		nd->dirty = true;
	else
		sim_node_loop(w, nd, false);
}

void sim_node_persist_due(struct sim_world *w, struct sim_node *nd)
{
	if (!nd->up || !nd->busy || nd->persist_at > w->now || nd->paused)
		return;
	if (nd->crash_on_fsync) {
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
	bool down = !nd->up || nd->stopped;
	int rc;

	if (nd->up && nd->paused) { /* it waits in the socket */
		it->at = w->now + 1;
		sim_net_push(&w->net, it);
		return;
	}
	if (it->kind == SIM_ITEM_SNAP_REPORT) {
		if (nd->up && !nd->stopped && nd->inc == it->from_inc) {
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
	if (down || w->net.blocked[it->from][it->to]) {
		sim_trace(w, "drop %s %" PRIu64 "->%" PRIu64 " (%s)", msg_name(it->m.type),
		          it->from, it->to, down ? "node down" : "partition");
		if (it->m.type == RAFT_MSG_SNAPSHOT)
			queue_report(w, it->from, it->from_inc, it->to, true);
		/*
		 * The sender's transport notices the peer is unreachable; the engine
		 * also wakes a quiescent leader of a group it is in
		 * (engine_report_unreachable), so a QUIESCE that did not arrive wakes it.
		 */
		if (sim_node_ready_for_calls(from) && from->inc == it->from_inc) {
			raft_report_unreachable(from->r, it->to);
			if (raft_quiesced(from->r) && raft_role(from->r) == RAFT_LEADER &&
			    raft_membership_contains(raft_membership(from->r), it->to))
				sim_trace(w, "node %" PRIu64 " woken: %s", from->id,
				          raft_strerror(raft_wake(from->r)));
			sim_observe(w, from);
			sim_node_pump(w, from);
		}
		sim_item_free(it);
		return;
	}
	if (nd->busy) {
		postpone(w, nd, it);
		return;
	}
	if (it->m.type == RAFT_MSG_SNAPSHOT && it->m.snapshot)
		keep_snapshot(nd, it);
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
	/* A deposed leader's old sync may finish now, after an append that replaced
	 * its tail and before the Ready that writes the new one. */
	if (nd->syncing && it->m.type == RAFT_MSG_APPEND && sim_rand_permille(&w->sync_rng, 300))
		nd->sync_at = w->now;
	if (!w->failed && nd->syncing && !nd->report_retry && nd->sync_at <= w->now && nd->r &&
	    !nd->stopped)
		sync_complete(w, nd);
	sim_node_pump(w, nd);
	sim_item_free(it);
}
