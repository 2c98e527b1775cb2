/*
 * round.c - one engine round over the groups with work (the ready set):
 * gather Readys, send the leaders' appends, install received snapshots, ONE
 * storage save for all groups, send the other messages, apply committed
 * entries, advance, then read states, leadership changes, snapshots and
 * compaction, and finally the client callbacks (outside the round, so they
 * may start new operations).
 */
#include <stdio.h>
#include <string.h>

#include "engine/engine_int.h"

/* Sends g's messages that may (early) or may not precede its save; true if any. */
static bool send_msgs(struct engine *e, struct group *g, bool early)
{
	bool any = false;

	for (uint32_t i = 0; i < g->rd.n_messages; i++) {
		const struct raft_message *m = &g->rd.messages[i];

		if (raft_msg_may_precede_persist(m) != early)
			continue;
		any = true;
		if (m->type == RAFT_MSG_SNAPSHOT) {
			eng_send_snapshot(e, g, m);
			continue;
		}
		if (e->net.send(e->net.ctx, m) != ENGINE_OK)
			raft_report_unreachable(g->r, m->to);
		else if (m->type == RAFT_MSG_APPEND)
			for (uint32_t k = 0; k < m->n_entries; k++)
				g->stats.bytes_sent += m->entries[k].len;
	}
	return any;
}

/*
 * Must g's Ready save its commit index before any of its messages leaves?
 * When that index may cover a membership change above the stored one
 * (raft_conf_bound).  A restart takes its configuration from the log up to
 * the stored commit index (save_conf_commit below), so a member that learnt
 * such a commit, crashed and forgot it could count votes with a
 * configuration the group left (review 15 F3).  A leader tells its followers
 * the commit index in its appends, which otherwise leave before its save:
 * a leader of two voters that removed the other would let the removed one
 * learn that its removal committed, apply it and leave for good, then crash
 * before its own save and restart with both voters, waiting for ever for
 * the gone one's vote (simulator --two-remove; review 41).  Usually the
 * apply-only Ready before the round (apply_persisted) has saved that commit
 * already, with the change (save_conf_commit); not while the state machine
 * is busy (hold_if_busy), and then the round's Ready carries it.  Those
 * appends wait for the save, and the save is synced even in a deferred
 * Ready: what tells another member that a membership change committed is
 * sent only once the sender durably knows it too.  Rare (a membership
 * change's commit): one fsync and one round trip's overlap each.
 */
static bool conf_commit_due(struct group *g)
{
	return g->rd.hard_state.commit > g->saved_commit && raft_conf_bound(g->r) > g->saved_commit;
}

/*
 * Membership changes take effect when applied, and a restart applies them
 * again only up to the stored commit index (its configuration is the
 * snapshot's plus the changes in the log up to that index).  A commit index
 * moved alone is not saved (step 3 below): a member could then restart with
 * the configuration before a change and count votes with it (a member of a
 * group grown from one elects itself).  So before a
 * Ready's membership changes are applied, a commit index that covers them is
 * made durable (review 8).  Membership changes are rare: one more fsync each.
 */
static int save_conf_commit(struct engine *e, struct group *g, const struct raft_ready *rd,
                            uint32_t n)
{
	struct engine_update u = {.group_id = g->id, .hard_state_changed = true};
	raft_index hi = 0;
	int rc;

	for (uint32_t i = 0; i < n; i++)
		if (rd->committed[i].type == RAFT_ENTRY_CONF_CHANGE &&
		    rd->committed[i].index > g->applied)
			hi = rd->committed[i].index;
	if (hi == 0)
		return ENGINE_OK;
	u.hard_state = g->hs; /* its term and vote are durable */
	if (u.hard_state.commit < hi)
		u.hard_state.commit = hi; /* persisted here: it is being applied */
	rc = e->st.save(e->st.ctx, &u, 1);
	if (rc != ENGINE_OK)
		return eng_fail_engine(e, rc,
		                       "group %llu: saving the commit index of the membership "
		                       "change at %llu",
		                       (unsigned long long)g->id, (unsigned long long)hi);
	g->hs = u.hard_state;
	g->saved_commit = u.hard_state.commit;
	return ENGINE_OK;
}

/*
 * Apply rd.committed above g->applied: conf changes to the core, the rest to
 * the state machine.  A conf change the core cannot apply for lack of memory
 * stops there (raft.h: it must apply before any later entry): what came
 * before it is applied, and the group holds its Ready until a later round
 * applies the rest (GS_APPLY_RETRY).  One the core cannot decode stops the
 * group there too (its membership is unknown): what came before it is
 * applied first, so that every member stops at the same index however its
 * Readys split the entries.  The address a change's context brings is only
 * a hint for dialing: one that is malformed is not learned (a WARNING), and
 * the change applies all the same (addrbook.c, eng_cc_address).
 */
static void apply(struct engine *e, struct group *g)
{
	const struct raft_ready *rd = &g->rd;
	uint32_t k = 0, n = rd->n_committed;
	char what[64], bad[192] = "";
	int rc;

	if (n == 0)
		return;
	if (eng_reserve(e, (void **)&e->sment, &e->cap_sment, n, sizeof(*e->sment)) != ENGINE_OK)
		n = 0; /* nothing applied: retried like a conf change without memory */
	if (save_conf_commit(e, g, rd, n) != ENGINE_OK)
		return;
	for (uint32_t i = 0; i < n; i++) {
		const struct raft_entry *c = &rd->committed[i];
		struct engine_sm_entry *s = &e->sment[k];

		if (c->index <= g->applied)
			continue; /* covered by an installed snapshot, or applied before a retry */
		s->index = c->index;
		s->term = c->term;
		s->type = c->type;
		s->len = 0;
		s->data = NULL;
		if (c->type == RAFT_ENTRY_CONF_CHANGE) {
			struct raft_conf_change cc;
			struct raft_membership out;
			bool decoded = raft_conf_change_decode(c->data, c->len, &cc) == RAFT_OK;

			snprintf(what, sizeof(what), "applying the membership change at index %llu",
			         (unsigned long long)c->index);
			rc = raft_apply_conf_change(g->r, c, &out);
			if (rc == RAFT_ERR_NOMEM) {
				n = i; /* applied whole or not at all: retried from here */
				break;
			}
			if (rc == RAFT_ERR_INVALID) { /* a malformed entry: every replica stops */
				snprintf(bad, sizeof(bad), "%s (%s)", what, raft_errmsg(g->r));
				n = i;
				break;
			}
			if (rc != RAFT_OK) {
				eng_raft_rc(e, g, rc, what);
				return;
			}
			g->conf = out;
			/* (One the book holds already, applied again at a restart, is not
			 * learned again: a later correction stays.) */
			decoded = decoded && c->index > g->book.index;
			g->book.at = c->index;
			if (decoded && cc.type == RAFT_CC_REMOVE) {
				eng_linger_peer(e, cc.node_id); /* (its bye: addrbook.c) */
				eng_forget_address(e, g, cc.node_id);
			} else if (decoded && cc.context_len > 0) { /* (a malformed one: none) */
				eng_learn_cc_address(e, g, c->index, cc.node_id, cc.context,
				                     cc.context_len);
			}
			g->book.at = 0;
		} else if (c->len >= ENGINE_HEADER_BYTES) {
			s->len = c->len - ENGINE_HEADER_BYTES;
			s->data = c->data + ENGINE_HEADER_BYTES;
		} else {
			s->len = c->len;
			s->data = c->data;
		}
		if (c->index > g->sm_skip)
			k++;
	}
	if (k > 0) {
		/* (Addresses the embedder learns from these entries are current to the last.) */
		g->book.at = e->sment[k - 1].index;
		rc = g->sm.apply(g->sm.ctx, e->sment, k);
		g->book.at = 0;
		if (rc != ENGINE_OK) {
			eng_group_failed(e, g, rc, "apply failed (%s)", engine_strerror(rc));
			return;
		}
		g->stats.entries_applied += k;
	}
	/* Completions: our proposals. */
	for (uint32_t i = 0; i < n; i++) {
		const struct raft_entry *c = &rd->committed[i];
		struct pending *p, op;

		if (c->index <= g->applied || c->type == RAFT_ENTRY_CONF_CHANGE ||
		    c->len < ENGINE_HEADER_BYTES || eng_get64(c->data) != e->client_id)
			continue;
		p = eng_pending_get(&e->pend, eng_get64(c->data + 8));
		if (p == NULL || p->group_id != g->id || p->kind != PK_PROPOSAL)
			continue;
		eng_pending_del(&e->pend, p, &op);
		g->n_pending--;
		eng_complete(e, op.cb, op.ctx, ENGINE_OK, g->id, c->index, 0);
	}
	if (n > 0 && rd->committed[n - 1].index > g->applied) {
		g->applied = rd->committed[n - 1].index;
		g->applied_term = rd->committed[n - 1].term;
		eng_refusal_clear(e, g); /* it catches up by entries */
	}
	if (g->sm_skip < g->applied)
		g->sm_skip = g->applied;
	eng_cc_applied(e, g, rd->committed, n);
	if (bad[0] != '\0') /* (after what came before it) */
		eng_group_failed(e, g, ENGINE_ERR_RAFT, "%s", bad);
	else if (n < rd->n_committed)
		eng_set_state(e, g, GS_APPLY_RETRY);
	else if (g->state == GS_APPLY_RETRY)
		eng_set_state(e, g, GS_ACTIVE);
}

/* Reads whose index is now applied (g->reads holds the keys of those with an index). */
static void resolve_reads(struct engine *e, struct group *g)
{
	size_t k = 0;

	for (size_t i = 0; i < g->n_reads; i++) {
		struct pending *p = eng_pending_get(&e->pend, g->reads[i]), op;

		if (p == NULL)
			continue; /* completed otherwise (group failure) */
		if (p->index > g->applied) {
			g->reads[k++] = g->reads[i];
			continue;
		}
		eng_pending_del(&e->pend, p, &op);
		g->n_pending--;
		eng_complete(e, op.cb, op.ctx, ENGINE_OK, g->id, op.index, 0);
	}
	g->n_reads = k;
}

/* Proposals proven overwritten: their index was applied with another entry. */
static void resolve_overwritten(struct engine *e, struct group *g)
{
	for (size_t i = 0; i < e->pend.cap && g->n_pending > 0; i++) {
		struct pending *p = &e->pend.slots[i], op;

		if (p->key == 0 || p->group_id != g->id || p->kind != PK_PROPOSAL ||
		    p->index == 0 || p->index > g->applied)
			continue;
		eng_pending_del(&e->pend, p, &op);
		g->n_pending--;
		i--; /* backward shift may have moved another entry here */
		eng_complete(e, op.cb, op.ctx, ENGINE_ERR_DROPPED, g->id, op.index, 0);
	}
	g->check_upto = 0;
}

static void read_states(struct engine *e, struct group *g)
{
	for (uint32_t i = 0; i < g->rd.n_read_states; i++) {
		const struct raft_read_state *rs = &g->rd.read_states[i];
		struct pending *p = eng_pending_get(&e->pend, rs->context), op;

		if (p == NULL || p->kind != PK_READ || p->group_id != g->id || p->index != 0)
			continue;
		if (eng_reserve(e, (void **)&g->reads, &g->cap_reads, g->n_reads + 1,
		                sizeof(*g->reads)) != ENGINE_OK) {
			eng_pending_del(&e->pend, p, &op);
			g->n_pending--;
			eng_complete(e, op.cb, op.ctx, ENGINE_ERR_NOMEM, g->id, 0, 0);
			continue;
		}
		p->index = rs->index != 0 ? rs->index : 1;
		g->reads[g->n_reads++] = p->key;
	}
}

/* Leadership or term moved: resolve what depended on it. */
static void watch_leader(struct engine *e, struct group *g)
{
	raft_term term = raft_term_of(g->r);
	raft_id leader = raft_leader(g->r);
	int role = raft_role(g->r);
	uint64_t resets = raft_resets(g->r);

	if (term == g->term && leader == g->leader && role == g->role) {
		/*
		 * The core moved and came back since the last round (a follower
		 * timed out, lost its pre-vote and heard from the same leader
		 * again): what came meanwhile for the state it left was dropped,
		 * its leader's answers to the reads asked here among them (a
		 * pre-candidate takes none).  Proposals went to the leader and
		 * apply as ever; the reads still without an index are asked again.
		 */
		if (resets != g->resets) {
			g->resets = resets;
			eng_reask_reads(e, g);
		}
		return;
	}
	if (term > g->term)
		g->stats.elections++;
	if (leader != 0 && leader != g->leader)
		g->stats.leader_changes++;
	if (role == RAFT_LEADER && (g->role != RAFT_LEADER || g->term != term)) {
		g->noop_index = raft_last_index(g->r);
		g->n_backoff = 0; /* snapshot streams of another term (snapshot.c) */
	}
	if (role != g->role || term != g->term)
		eng_no_room_forget_all(e, g); /* answers to streams of another term */
	g->term = term;
	g->leader = leader;
	g->role = role;
	g->resets = resets;
	e->role_changes++;
	eng_leader_changed(e, g);
}

/*
 * The first index the cache must keep: what is not applied yet, and as leader
 * what a member has not acknowledged (it may have to be sent again), and the
 * last entry whatever it is (the term of the last index is read at every
 * append, as the previous entry of the next one; from the LogDB, that read
 * was most of a busy engine's CPU).  Entries below go: the cache then holds
 * about what is in flight, not a window of entry_cache_bytes per group, and
 * its memory is reused at once.
 */
static raft_index cache_keep(const struct group *g)
{
	raft_index keep = g->applied + 1, peers = raft_peers_match(g->r) + 1;

	if (peers < keep)
		keep = peers;
	if (g->last < keep)
		keep = g->last;
	return keep > g->first ? keep : g->first;
}

/* g's Ready is saved and its messages sent: apply it, then advance. */
static void finish(struct engine *e, struct group *g)
{
	if (g->state == GS_FAILED)
		return; /* sending found a fatal error of the core */
	apply(e, g);
	if (e->failed || (g->state != GS_ACTIVE && g->state != GS_RECOVERED))
		return; /* failed, or a membership change waits for memory */
	read_states(e, g);
	raft_advance(g->r, &g->rd);
	if (eng_raft_rc(e, g, raft_fatal(g->r), "an advance") != ENGINE_OK)
		return;
	if (g->state == GS_RECOVERED)
		eng_set_state(e, g, GS_ACTIVE);
	/*
	 * Entry data storage copied out and cache blocks that left the cache go,
	 * unless messages wait in the core for the next Ready: after an
	 * apply-only Ready, appends that inputs built since the last Ready (to a
	 * follower catching up, from storage) still point into them.  Freed here,
	 * the next Ready sent what malloc put there since, and the follower
	 * saved it under the leader's index and term, checksummed (TAP 093).
	 */
	if (!raft_holds_messages(g->r)) {
		dr_arena_reset(&g->arena.ar);
		eng_cache_release(&g->cache, e->a);
	}
}

/*
 * Committed entries stay out of Readys while the state machine cannot take
 * more.  apply_held is part of the status, so a change of it is a status
 * change (engine_take_changed): engine_sm_resume() lists the group, but the
 * hold ends only here, in the next round, and an embedder may take the
 * changed groups in between.  A group resumed while quiescent then runs an
 * apply-only Ready (apply_persisted) and nothing else: unlisted here, its
 * status copy would say apply_held until the group's next Raft event.
 */
static void hold_if_busy(struct engine *e, struct group *g)
{
	bool held;

	if (g->sm.apply_busy == NULL)
		return;
	held = g->sm.apply_busy(g->sm.ctx);
	if (held != g->apply_held)
		eng_changed(e, g);
	g->apply_held = held;
	raft_hold_apply(g->r, held);
}

/*
 * Before a round: the marked groups' committed entries that this node already
 * persisted are applied and their proposals completed (an apply-only Ready),
 * so that a commit learned while the last round's fsync ran does not also
 * wait for the fsync of the entries proposed after it.  True when any was.
 */
static bool apply_persisted(struct engine *e)
{
	bool any = false;

	e->in_round = true;
	for (size_t i = 0; i < e->n_marked && !e->failed; i++) {
		struct group *g = e->marked[i];

		if (g->state != GS_ACTIVE)
			continue;
		hold_if_busy(e, g);
		if (!raft_has_apply_ready(g->r) ||
		    eng_raft_rc(e, g, raft_ready_apply(g->r, &g->rd), "a Ready") != ENGINE_OK)
			continue;
		finish(e, g); /* a membership change short of memory holds it (GS_APPLY_RETRY) */
		any = true;
	}
	e->in_round = false;
	return any;
}

/* Take the ready set: the groups this round visits go into e->batch; marks made from now on
 * are for the next round. */
static size_t take_marked(struct engine *e)
{
	struct group **b = e->batch;
	size_t n = e->n_marked;

	e->batch = e->marked;
	e->marked = b;
	e->n_marked = 0;
	for (size_t i = 0; i < n; i++)
		e->batch[i]->marked = false;
	return n;
}

/*
 * g's deferred Ready was written (round step 3) up to wr_index: synced
 * (with other groups' Readys, or by a background sync), so durable now, or
 * waiting for the next background sync.  A group whose Ready is still held
 * (a membership change short of memory) takes the report once it is
 * released (engine_run_round); one whose core could not read the entry's
 * term for memory takes it at the next sync.
 */
static void written(struct engine *e, struct group *g, bool synced)
{
	int rc = RAFT_ERR_INVALID;

	if (synced && g->state == GS_ACTIVE)
		rc = raft_durable(g->r, g->wr_index, g->wr_term);
	if (rc == RAFT_ERR_INVALID || rc == RAFT_ERR_NOMEM) {
		/* The latest write of the latest term: a leader that lost its term and
		 * leads again writes below what it wrote before (replaced since). */
		if (g->wr_term > g->dw_term ||
		    (g->wr_term == g->dw_term && g->wr_index > g->dw_index)) {
			g->dw_index = g->wr_index;
			g->dw_term = g->wr_term;
		}
		if (!synced || rc == RAFT_ERR_NOMEM)
			e->sync_wanted = true; /* (NOMEM: the entry's term was unreadable; again) */
	} else {
		(void)eng_raft_rc(e, g, rc, "a durable report");
	}
	g->wr_index = 0;
}

bool engine_sync_wanted(const struct engine *e)
{
	return e->sync_wanted && !e->sync_out && !e->failed;
}

void engine_sync_begin(struct engine *e)
{
	size_t k = 0;

	if (!engine_sync_wanted(e))
		return;
	if (eng_reserve(e, (void **)&e->sy, &e->cap_sy, e->n_groups, sizeof(*e->sy)) != ENGINE_OK)
		return; /* wanted still: the next round's end asks again */
	for (size_t i = 0; i < e->n_groups; i++) {
		struct group *g = e->groups[i];

		if (g->dw_index == 0)
			continue;
		e->sy[k].group_id = g->id;
		e->sy[k].index = g->dw_index;
		e->sy[k].term = g->dw_term;
		k++;
		g->dw_index = 0;
	}
	e->n_sy = k;
	e->sync_wanted = false;
	e->sync_out = true;
	e->sync_began = e->now;
}

/* The voter of g other than this node with most of the log that answered lately
 * (in this CheckQuorum period or the one before: the watch and CheckQuorum both
 * come once an election timeout, and at the tick a period ends no peer has
 * answered in the new one yet), or 0. */
static raft_id handoff_target(const struct engine *e, const struct group *g)
{
	const struct raft_membership *m = raft_membership(g->r);
	raft_index best = 0;
	raft_id target = 0;

	for (uint32_t i = 0; i < m->n_voters; i++) {
		struct raft_peer_progress pp;

		if (m->voters[i] == e->cfg.node_id ||
		    raft_peer_progress(g->r, m->voters[i], &pp) != RAFT_OK ||
		    !(pp.recent_active || pp.heard_before))
			continue;
		if (target == 0 || pp.match > best) {
			best = pp.match;
			target = pp.id;
		}
	}
	return target;
}

/*
 * A background sync that has not ended within an election timeout: this
 * node's disk is stuck or slow.  With synced saves its engine would be
 * waiting in the save, its heartbeats stopped, and its followers would elect
 * another leader; here it goes on heartbeating, and the groups it leads
 * apply nothing above what is synced, so their writes would wait for the
 * disk with no leader change.  So it hands each group it leads to the voter
 * with most of the log (one that answered lately), and again after each
 * further election timeout while the sync is out (a transfer that does not
 * finish in one is given up).  Its own vote for the new leader is a synced
 * save, which may wait for the disk too: the other voters elect without it.
 */
void eng_sync_watch(struct engine *e)
{
	uint64_t out = e->now - e->sync_began;
	size_t handed = 0;

	/* (engine_tick calls it at every tick: each election timeout the sync is out) */
	if (!e->sync_out || out == 0 || out % e->cfg.election_rtt != 0)
		return;
	for (size_t i = 0; i < e->n_groups && !e->failed; i++) {
		struct group *g = e->groups[i];
		raft_id target;

		if (g->state != GS_ACTIVE || raft_role(g->r) != RAFT_LEADER || g->transfer.w.active)
			continue;
		target = handoff_target(e, g);
		if (target == 0)
			continue;
		if (eng_raft_rc(e, g, raft_transfer_leader(g->r, target), "a hand-off") ==
		    ENGINE_OK) {
			eng_mark(e, g);
			handed++;
		}
	}
	if (handed > 0)
		eng_say(e, ENGINE_LOG_INFO,
		        "the Raft log's background sync has not ended for %llu ticks: this node "
		        "hands the %zu groups it leads to other voters",
		        (unsigned long long)out, handed);
}

/*
 * The background sync ended: what it covered is durable.  A group that
 * stopped meanwhile is gone from the table, and one started again under the
 * same id has a new core with nothing deferred (it ignores the report).
 */
void engine_sync_done(struct engine *e, int rc)
{
	if (!e->sync_out)
		return;
	e->sync_out = false;
	if (rc != ENGINE_OK) {
		eng_fail_engine(e, rc, "syncing the raft log in the background");
		eng_flush(e);
		return;
	}
	for (size_t i = 0; i < e->n_sy && !e->failed; i++) {
		struct group *g = eng_group(e, e->sy[i].group_id);

		if (g == NULL || g->state == GS_FAILED)
			continue;
		g->wr_index = e->sy[i].index;
		g->wr_term = e->sy[i].term;
		written(e, g, true);
		eng_mark(e, g); /* its next Ready may commit and apply them */
	}
	e->n_sy = 0;
	eng_flush(e);
}

int engine_run_round(struct engine *e)
{
	size_t nb, n = 0, nu = 0;
	bool early = false, synced = false;
	int rc = ENGINE_OK;

	if (e->in_round || e->in_flush)
		return ENGINE_ERR_INVALID; /* not from inside a round or a callback */
	if (e->failed) {
		eng_flush(e); /* the operations the failure completed */
		return ENGINE_ERR_FAILED;
	}
	if (apply_persisted(e))
		eng_flush(e); /* callbacks may start operations: no Ready is out now */
	if (e->failed) {
		eng_flush(e);
		return ENGINE_ERR_FAILED;
	}
	rc = eng_reserve(e, (void **)&e->ready, &e->cap_ready, e->n_marked, sizeof(*e->ready));
	if (rc == ENGINE_OK)
		rc = eng_reserve(e, (void **)&e->updates, &e->cap_updates, e->n_marked,
		                 sizeof(*e->updates));
	if (rc != ENGINE_OK)
		return rc; /* the ready set stays for the next try */
	e->in_round = true;
	nb = take_marked(e);
	for (size_t i = 0; i < nb && !e->failed; i++) {
		struct group *g = e->batch[i];

		if (g->out != NULL && g->out->state == OUT_SAVED && g->state != GS_FAILED)
			eng_snapshot_saved(e, g); /* a background save ended: ship it */
		if (g->state == GS_RECOVERED) {
			e->ready[n++] = g; /* the held Ready, with the state machine recovered */
			continue;
		}
		if (g->state == GS_APPLY_RETRY) {
			finish(e, g); /* the held Ready was saved and sent: apply the rest */
			if (g->state == GS_ACTIVE && g->dw_index != 0)
				e->sync_wanted = true; /* a report it could not take then */
		}
		if (g->state != GS_ACTIVE)
			continue; /* failed, or frozen with its Ready held */
		hold_if_busy(e, g);
		if (!raft_has_ready(g->r))
			continue;
		/* A failed read of the log stops the engine; an impossible state the group. */
		if (eng_raft_rc(e, g, raft_ready(g->r, &g->rd), "a Ready") != ENGINE_OK)
			continue;
		e->ready[n++] = g;
	}
	if (e->failed)
		goto out; /* nothing of this round leaves */

	/*
	 * 0. A new leader is shown before its messages tell the others
	 * (engine_config.lead_fn): watch_leader below records it after they left.
	 */
	for (size_t i = 0; i < n && e->cfg.lead_fn != NULL; i++) {
		struct group *g = e->ready[i];

		if (g->state != GS_FAILED && raft_role(g->r) == RAFT_LEADER &&
		    (g->role != RAFT_LEADER || g->term != raft_term_of(g->r)))
			e->cfg.lead_fn(e->cfg.lead_ctx, g->id);
	}

	/*
	 * 1. A leader's appends may leave before its own write (thesis 10.2.1),
	 * except those of a Ready whose commit index may cover a membership
	 * change above the stored one (conf_commit_due): they wait for its
	 * synced save (step 4).
	 */
	for (size_t i = 0; i < n; i++) {
		struct group *g = e->ready[i];

		g->conf_commit = conf_commit_due(g);
		if (g->state == GS_ACTIVE && !g->conf_commit && send_msgs(e, g, true))
			early = true;
	}

	/*
	 * 2. Received snapshots go into the state machine before their metadata
	 * is saved.  A recovery that goes on in the background holds its group
	 * out of this round.
	 */
	{
		size_t k = 0;

		for (size_t i = 0; i < n; i++) {
			struct group *g = e->ready[i];

			if (g->rd.has_snapshot && g->state == GS_ACTIVE &&
			    eng_install(e, g) == ENGINE_IN_PROGRESS)
				continue;
			e->ready[k++] = g;
		}
		n = k;
	}
	if (e->failed)
		goto out; /* a recovery marker could not be saved */

	/*
	 * 3. One synced save for every group with entries, a snapshot, or a new
	 * term or vote.  A Ready that only moved the commit index saves nothing
	 * (etcd's MustSync, one step further): the commit index need not be
	 * durable (raft.h), a restart learns it again from the leader and never
	 * applies past what the state machine holds twice; its hard state goes
	 * with the group's next save (every save writes the current one; the
	 * LogDB skips one it holds).  That takes a write off every commit on
	 * the leader and off every follower's learning of it.  Except when the
	 * commit index may cover a membership change above the stored one
	 * (raft_conf_bound): a restart takes its configuration from the log up
	 * to the stored commit index, and a member that learnt such a commit,
	 * crashed and forgot it could count votes with a configuration the
	 * group left (review 15 F3: a removed leader gone for good, the one
	 * other voter waiting for its vote forever).
	 */
	for (size_t i = 0; i < n; i++) {
		struct group *g = e->ready[i];
		struct engine_update *u = &e->updates[nu];

		g->wr_index = 0;
		if (g->state == GS_FAILED ||
		    (g->rd.n_entries == 0 && !g->rd.has_snapshot &&
		     (!g->rd.hard_state_changed || (g->rd.hard_state.term == g->hs.term &&
		                                    g->rd.hard_state.vote == g->hs.vote)) &&
		     !g->conf_commit))
			continue;
		u->group_id = g->id;
		u->hard_state_changed = true;
		u->hard_state = g->rd.hard_state;
		g->saved_commit = u->hard_state.commit; /* (a failed save fails the engine) */
		u->snapshot = g->rd.has_snapshot ? &g->rd.snapshot : NULL;
		u->n_entries = g->rd.n_entries;
		u->entries = g->rd.entries;
		if (g->rd.sync_deferred) {
			g->wr_index = g->rd.entries[g->rd.n_entries - 1].index;
			g->wr_term = g->rd.entries[g->rd.n_entries - 1].term;
		}
		/* (a commit index conf_commit_due asks for is synced now: its appends wait) */
		if (!g->rd.sync_deferred || g->conf_commit)
			synced = true;
		nu++;
	}
	if (nu > 0) {
		/* The appends leave now, not after the fsync (which they need not wait for). */
		if (early && e->net.flush != NULL)
			e->net.flush(e->net.ctx);
		/* Only leaders' entries of their term: written now, synced in the background. */
		rc = synced ? e->st.save(e->st.ctx, e->updates, nu)
		            : e->st.write(e->st.ctx, e->updates, nu);
		if (rc != ENGINE_OK) {
			eng_fail_engine(e, rc,
			                "saving the raft state (%zu groups, group %llu first)", nu,
			                (unsigned long long)e->updates[0].group_id);
			goto out;
		}
	}

	/* 4. Persisted: the rest of the messages, then apply and advance. */
	for (size_t i = 0; i < n && !e->failed; i++) {
		struct group *g = e->ready[i];

		eng_changed(e, g);
		if (g->state == GS_FAILED)
			continue;
		eng_view_persisted(e, g);
		if (g->conf_commit)
			send_msgs(e, g, true); /* the appends held back in step 1 */
		send_msgs(e, g, false);
		finish(e, g);
		if (g->wr_index != 0)
			written(e, g, synced);
	}

	/* 5. The batch's leadership changes, reads, snapshots; what has more work stays marked. */
	for (size_t i = 0; i < nb && !e->failed; i++) {
		struct group *g = e->batch[i];

		if (g->state == GS_APPLY_RETRY)
			eng_mark(e, g); /* the next round applies again */
		if (g->state != GS_ACTIVE)
			continue;
		watch_leader(e, g);
		if (g->n_reads > 0)
			resolve_reads(e, g);
		if (g->check_upto != 0 && g->check_upto <= g->applied)
			resolve_overwritten(e, g);
		eng_snapshot_if_due(e, g);
		eng_no_room_prune(e, g);
		eng_cache_trim(&g->cache, cache_keep(g));
		eng_tick_update(e, g); /* quiesced, or woken by an input */
		if (raft_has_ready(g->r))
			eng_mark(e, g);
	}
out:
	e->in_round = false;
	eng_flush(e);
	return e->failed ? ENGINE_ERR_FAILED : ENGINE_OK;
}
