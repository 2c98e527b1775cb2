/*
 * round.c - one engine round over every group: gather Readys, send the
 * leaders' appends, install received snapshots, ONE storage save for all
 * groups, send the other messages, apply committed entries, advance, then
 * read states, leadership changes, snapshots and compaction, and finally the
 * client callbacks (outside the round, so they may start new operations).
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "engine/engine_int.h"

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

/* The storage failed: nothing may be sent or acknowledged any more. */
static int fail_engine(struct engine *e, int rc, const char *what)
{
	e->failed = true;
	return eng_err(e, ENGINE_ERR_FAILED, "%s failed (%s); the engine stopped", what,
	               engine_strerror(rc));
}

/* The state machine failed: the group stops taking part. */
static void fail_group(struct engine *e, struct group *g, int rc, const char *what)
{
	g->failed = true;
	g->stats.apply_errors++;
	eng_changed(e, g);
	eng_err(e, ENGINE_ERR_SM, "group %llu: %s failed (%s); the group stopped",
	        (unsigned long long)g->id, what, engine_strerror(rc));
	snprintf(g->error, sizeof(g->error), "%s", e->errmsg);
}

/* Term of a persisted entry (first - 1 <= i <= last). */
static int term_of(struct engine *e, struct group *g, raft_index i, raft_term *t)
{
	if (i + 1 == g->first) {
		*t = g->prev_term;
		return ENGINE_OK;
	}
	if (eng_cache_term(&g->cache, i, t))
		return ENGINE_OK;
	return e->st.term(e->st.ctx, g->id, i, t);
}

/* Ship the state machine snapshot g->out holds to every follower waiting for it. */
static void ship(struct engine *e, struct group *g)
{
	struct snap_out *o = &g->out;
	struct raft_snapshot_meta meta;
	raft_index idx = o->index;
	int rc = o->rc;
	bool leading = raft_role(g->r) == RAFT_LEADER && raft_term_of(g->r) == o->tmpl.term;

	o->busy = o->done = false;
	/*
	 * Any applied index works (an asynchronous state machine may lag the
	 * engine) as long as its term and membership are known here.
	 */
	if (rc == ENGINE_OK && idx == g->applied)
		meta.term = g->applied_term;
	else if (rc == ENGINE_OK && idx < g->applied && idx + 1 >= g->first && idx <= g->last &&
	         g->conf.config_index <= idx)
		rc = term_of(e, g, idx, &meta.term);
	else if (rc == ENGINE_OK)
		rc = ENGINE_ERR_SNAPSHOT;
	if (rc != ENGINE_OK || idx == 0 || !leading) {
		remove(o->path);
		if (rc != ENGINE_OK || idx == 0)
			eng_err(e, ENGINE_ERR_SNAPSHOT, "group %llu: snapshot for node %llu failed",
			        (unsigned long long)g->id, (unsigned long long)o->to[0]);
		if (leading)
			for (uint32_t k = 0; k < o->n_to; k++)
				raft_report_snapshot(g->r, o->to[k], true);
		return;
	}
	meta.index = idx;
	meta.membership = g->conf;
	for (uint32_t k = 0; k < o->n_to; k++) {
		struct raft_message out = o->tmpl;
		char extra[sizeof(o->path) + 24];
		const char *path = o->path;

		/* The network owns the file it is given (it deletes it when done). */
		if (k + 1 < o->n_to) {
			snprintf(extra, sizeof(extra), "%s.%llu", o->path,
			         (unsigned long long)o->to[k]);
			if (link(o->path, extra) != 0) {
				raft_report_snapshot(g->r, o->to[k], true);
				continue;
			}
			path = extra;
		}
		out.to = o->to[k];
		out.index = idx;
		out.log_term = meta.term;
		out.snapshot = &meta;
		if (e->net.send_snapshot(e->net.ctx, &out, path) != ENGINE_OK)
			raft_report_snapshot(g->r, o->to[k], true);
	}
}

/* m->to needs a snapshot of the state machine (leader side). */
static void send_snapshot(struct engine *e, struct group *g, const struct raft_message *m)
{
	struct snap_out *o = &g->out;
	raft_index idx = 0;
	int rc;

	if (o->busy) {
		/* One state machine snapshot serves every follower that waits. */
		for (uint32_t k = 0; k < o->n_to; k++)
			if (o->to[k] == m->to)
				return;
		if (o->n_to < RAFT_MAX_MEMBERS && m->term == o->tmpl.term)
			o->to[o->n_to++] = m->to;
		else
			raft_report_snapshot(g->r, m->to, true);
		return;
	}
	if (g->sm.save_snapshot == NULL || e->net.send_snapshot == NULL) {
		raft_report_snapshot(g->r, m->to, true);
		return;
	}
	memset(o, 0, sizeof(*o));
	o->busy = true;
	o->tmpl = *m;
	o->tmpl.snapshot = NULL;
	o->tmpl.entries = NULL;
	o->tmpl.n_entries = 0;
	o->to[o->n_to++] = m->to;
	snprintf(o->path, sizeof(o->path), "%s/snap-%llu-%llu-%llu", e->snapdir,
	         (unsigned long long)e->cfg.node_id, (unsigned long long)g->id,
	         (unsigned long long)++e->snap_seq);
	rc = g->sm.save_snapshot(g->sm.ctx, o->path, &idx);
	if (rc == ENGINE_IN_PROGRESS)
		return; /* engine_snapshot_saved() reports the end */
	o->done = true;
	o->rc = rc;
	o->index = idx;
	ship(e, g);
}

static void send_msgs(struct engine *e, struct group *g, bool early)
{
	for (uint32_t i = 0; i < g->rd.n_messages; i++) {
		const struct raft_message *m = &g->rd.messages[i];

		if (raft_msg_may_precede_persist(m) != early)
			continue;
		if (m->type == RAFT_MSG_SNAPSHOT) {
			send_snapshot(e, g, m);
			continue;
		}
		if (e->net.send(e->net.ctx, m) != ENGINE_OK)
			raft_report_unreachable(g->r, m->to);
		else if (m->type == RAFT_MSG_APPEND)
			for (uint32_t k = 0; k < m->n_entries; k++)
				g->stats.bytes_sent += m->entries[k].len;
	}
}

/* Install a snapshot received from the leader into the state machine. */
static int install(struct engine *e, struct group *g)
{
	const struct raft_snapshot_meta *s = &g->rd.snapshot;
	int rc;

	if (g->recv_index != s->index || g->recv_path[0] == '\0' || g->sm.recover == NULL) {
		fail_group(e, g, ENGINE_ERR_SNAPSHOT, "snapshot install (no file)");
		return ENGINE_ERR_SNAPSHOT;
	}
	/* A private name: nothing that arrives while it is read can replace the file. */
	char held[ENGINE_PATH_MAX];
	if (snprintf(held, sizeof(held), "%s.recovering", g->recv_path) < (int)sizeof(held) &&
	    rename(g->recv_path, held) == 0)
		memcpy(g->recv_path, held, sizeof(held));
	rc = g->sm.recover(g->sm.ctx, g->recv_path, s->index);
	if (rc == ENGINE_IN_PROGRESS) {
		g->installing = true; /* hold the Ready until engine_snapshot_recovered() */
		return rc;
	}
	if (rc != ENGINE_OK) {
		fail_group(e, g, rc, "snapshot recovery");
		return rc;
	}
	return ENGINE_OK;
}

/* After the save: the stable log as storage now holds it. */
static void persisted(struct group *g)
{
	const struct raft_ready *rd = &g->rd;

	if (rd->has_snapshot) {
		g->stats.snapshots_received++;
		eng_cache_clear(&g->cache, rd->snapshot.index + 1);
		g->snap = rd->snapshot;
		g->first = rd->snapshot.index + 1;
		g->last = rd->snapshot.index;
		g->prev_term = rd->snapshot.term;
		g->conf = rd->snapshot.membership;
		g->applied = rd->snapshot.index;
		g->applied_term = rd->snapshot.term;
		g->sm_skip = rd->snapshot.index;
		g->last_snap_applied = rd->snapshot.index;
		remove(g->recv_path);
		g->recv_path[0] = '\0';
		g->recv_index = 0;
	}
	if (rd->n_entries > 0) {
		g->last = rd->entries[rd->n_entries - 1].index;
		eng_cache_append(&g->cache, g->e->a, rd->entries, rd->n_entries,
		             g->e->cfg.entry_cache_bytes);
	}
	if (rd->hard_state_changed)
		g->hs = rd->hard_state;
}

/* Apply rd.committed: conf changes to the core, the rest to the state machine. */
static void apply(struct engine *e, struct group *g)
{
	const struct raft_ready *rd = &g->rd;
	uint32_t k = 0;
	int rc;

	if (rd->n_committed == 0)
		return;
	if (eng_reserve(e, (void **)&e->sment, &e->cap_sment, rd->n_committed, sizeof(*e->sment)) !=
	    ENGINE_OK) {
		fail_group(e, g, ENGINE_ERR_NOMEM, "apply");
		return;
	}
	for (uint32_t i = 0; i < rd->n_committed; i++) {
		const struct raft_entry *c = &rd->committed[i];
		struct engine_sm_entry *s = &e->sment[k];

		if (c->index <= g->applied)
			continue; /* covered by an installed snapshot */
		s->index = c->index;
		s->term = c->term;
		s->type = c->type;
		s->len = 0;
		s->data = NULL;
		if (c->type == RAFT_ENTRY_CONF_CHANGE) {
			struct raft_conf_change cc;
			struct raft_membership out;

			if (raft_apply_conf_change(g->r, c, &out) == RAFT_OK)
				g->conf = out;
			if (raft_conf_change_decode(c->data, c->len, &cc) == RAFT_OK &&
			    cc.type != RAFT_CC_REMOVE && cc.context_len > 0)
				eng_learn_address(e, g, cc.node_id, (const char *)cc.context,
				                  cc.context_len);
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
		rc = g->sm.apply(g->sm.ctx, e->sment, k);
		if (rc != ENGINE_OK) {
			fail_group(e, g, rc, "apply");
			return;
		}
		g->stats.entries_applied += k;
	}
	/* Completions: our proposals, the membership change. */
	for (uint32_t i = 0; i < rd->n_committed; i++) {
		const struct raft_entry *c = &rd->committed[i];
		struct pending *p, op;

		if (c->index <= g->applied)
			continue;
		if (c->type == RAFT_ENTRY_CONF_CHANGE) {
			if (g->cc.active && g->cc.index == c->index)
				eng_slot_done(e, g, &g->cc,
				              c->term == g->cc.term ? ENGINE_OK
				                                    : ENGINE_ERR_DROPPED,
				              c->index);
			continue;
		}
		if (c->len < ENGINE_HEADER_BYTES || get64(c->data) != e->client_id)
			continue;
		p = eng_pending_get(&e->pend, get64(c->data + 8));
		if (p == NULL || p->group_id != g->id || p->kind != PK_PROPOSAL)
			continue;
		eng_pending_del(&e->pend, p, &op);
		g->n_pending--;
		eng_complete(e, op.cb, op.ctx, ENGINE_OK, g->id, c->index, 0);
	}
	g->applied = rd->committed[rd->n_committed - 1].index;
	g->applied_term = rd->committed[rd->n_committed - 1].term;
	if (g->sm_skip < g->applied)
		g->sm_skip = g->applied;
	if (g->cc.active && g->cc.index != 0 && g->cc.index <= g->applied)
		eng_slot_done(e, g, &g->cc, ENGINE_ERR_DROPPED, g->cc.index);
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

/* Metadata snapshot at the durable applied index, then compaction (DESIGN 9). */
static int snapshot(struct engine *e, struct group *g)
{
	struct raft_snapshot_meta meta;
	raft_index a, c;
	raft_term t;
	int rc;

	if (!g->snapreq.active && (e->cfg.snapshot_entries == 0 ||
	                           g->applied - g->last_snap_applied < e->cfg.snapshot_entries))
		return ENGINE_OK;
	a = g->sm.durable_applied(g->sm.ctx);
	if (a > g->applied)
		a = g->applied;
	if (a <= g->snap.index) {
		if (g->snapreq.active)
			eng_slot_done(e, g, &g->snapreq, ENGINE_OK, g->snap.index);
		return ENGINE_OK;
	}
	if (g->conf.config_index > a)
		return ENGINE_OK; /* membership as of a unknown: retry later */
	if (a == g->applied) {
		t = g->applied_term;
	} else {
		rc = term_of(e, g, a, &t);
		if (rc != ENGINE_OK)
			return fail_engine(e, rc, "reading a term for a snapshot");
	}
	meta.index = a;
	meta.term = t;
	meta.membership = g->conf;
	rc = e->st.save_snapshot(e->st.ctx, g->id, &meta);
	if (rc != ENGINE_OK)
		return fail_engine(e, rc, "saving snapshot metadata");
	g->snap = meta;
	g->last_snap_applied = g->applied;
	if (g->snapreq.active)
		eng_slot_done(e, g, &g->snapreq, ENGINE_OK, a);

	c = a > e->cfg.compaction_overhead ? a - e->cfg.compaction_overhead : 0;
	if (c < g->first)
		return ENGINE_OK;
	if (c == a) {
		t = meta.term;
	} else {
		rc = term_of(e, g, c, &t);
		if (rc != ENGINE_OK)
			return fail_engine(e, rc, "reading a term for compaction");
	}
	rc = e->st.compact(e->st.ctx, g->id, c);
	if (rc != ENGINE_OK)
		return fail_engine(e, rc, "log compaction");
	g->first = c + 1;
	g->prev_term = t;
	raft_compacted(g->r, c);
	return ENGINE_OK;
}

/* Leadership or term moved: resolve what depended on it. */
static void watch_leader(struct engine *e, struct group *g)
{
	raft_term term = raft_term_of(g->r);
	raft_id leader = raft_leader(g->r);
	int role = raft_role(g->r);

	if (term == g->term && leader == g->leader && role == g->role)
		return;
	if (term > g->term)
		g->stats.elections++;
	if (leader != 0 && leader != g->leader)
		g->stats.leader_changes++;
	if (role == RAFT_LEADER && (g->role != RAFT_LEADER || g->term != term))
		g->noop_index = raft_last_index(g->r);
	g->term = term;
	g->leader = leader;
	g->role = role;
	eng_leader_changed(e, g);
}

/*
 * The first index the cache must keep: what is not applied yet, and as leader
 * what a member has not acknowledged (it may have to be sent again).  Entries
 * below go: the cache then holds about what is in flight, not a window of
 * entry_cache_bytes per group, and its memory is reused at once.
 */
static raft_index cache_keep(const struct group *g)
{
	raft_index keep = g->applied + 1, peers = raft_peers_match(g->r) + 1;

	if (peers < keep)
		keep = peers;
	return keep > g->first ? keep : g->first;
}

/* Background snapshot saves that ended: ship them (outside any Ready). */
static void async_ended(struct engine *e)
{
	e->async_done = 0;
	for (size_t i = 0; i < e->n_groups; i++) {
		struct group *g = e->groups[i];

		if (g->out.done && !g->failed) {
			ship(e, g);
			eng_changed(e, g);
		}
	}
}

int engine_run_round(struct engine *e)
{
	size_t n = 0, nu = 0;
	int rc = ENGINE_OK;

	if (e->failed)
		return ENGINE_ERR_FAILED;
	if (e->in_round || e->in_flush)
		return ENGINE_ERR_INVALID; /* not from inside a round or a callback */
	e->in_round = true;
	e->work = false;
	rc = eng_reserve(e, (void **)&e->ready, &e->cap_ready, e->n_groups, sizeof(*e->ready));
	if (rc == ENGINE_OK)
		rc = eng_reserve(e, (void **)&e->updates, &e->cap_updates, e->n_groups,
		                 sizeof(*e->updates));
	if (rc != ENGINE_OK) {
		e->in_round = false;
		e->work = true;
		return rc;
	}
	if (e->async_done > 0)
		async_ended(e);
	for (size_t i = 0; i < e->n_groups; i++) {
		struct group *g = e->groups[i];

		if (g->failed)
			continue;
		if (g->installing) {
			if (!g->install_done)
				continue; /* frozen: its Ready stays held */
			g->installing = g->install_done = false;
			if (g->install_rc != ENGINE_OK) {
				fail_group(e, g, g->install_rc, "snapshot recovery");
				continue;
			}
			g->resumed = true; /* the held Ready, with the state machine recovered */
			e->ready[n++] = g;
			continue;
		}
		if (g->sm.apply_busy != NULL) {
			g->apply_held = g->sm.apply_busy(g->sm.ctx);
			raft_hold_apply(g->r, g->apply_held);
		}
		if (!raft_has_ready(g->r))
			continue;
		raft_ready(g->r, &g->rd);
		g->in_ready = true;
		e->ready[n++] = g;
	}

	/* 1. A leader's appends may leave before its own write (thesis 10.2.1). */
	for (size_t i = 0; i < n; i++)
		if (!e->ready[i]->resumed)
			send_msgs(e, e->ready[i], true);

	/*
	 * 2. Received snapshots go into the state machine before their metadata
	 * is saved.  A recovery that goes on in the background holds its group
	 * out of this round.
	 */
	{
		size_t k = 0;

		for (size_t i = 0; i < n; i++) {
			struct group *g = e->ready[i];

			if (g->rd.has_snapshot && !g->resumed &&
			    install(e, g) == ENGINE_IN_PROGRESS)
				continue;
			e->ready[k++] = g;
		}
		n = k;
	}

	/* 3. One synced save for every group. */
	for (size_t i = 0; i < n; i++) {
		struct group *g = e->ready[i];
		struct engine_update *u = &e->updates[nu];

		if (g->failed ||
		    (!g->rd.hard_state_changed && g->rd.n_entries == 0 && !g->rd.has_snapshot))
			continue;
		u->group_id = g->id;
		u->hard_state_changed = g->rd.hard_state_changed;
		u->hard_state = g->rd.hard_state;
		u->snapshot = g->rd.has_snapshot ? &g->rd.snapshot : NULL;
		u->n_entries = g->rd.n_entries;
		u->entries = g->rd.entries;
		nu++;
	}
	if (nu > 0) {
		rc = e->st.save(e->st.ctx, e->updates, nu);
		if (rc != ENGINE_OK) {
			rc = fail_engine(e, rc, "saving raft state");
			e->in_round = false;
			eng_flush(e);
			return rc;
		}
	}

	/* 4. Persisted: the rest of the messages, then apply and advance. */
	for (size_t i = 0; i < n; i++) {
		struct group *g = e->ready[i];

		eng_changed(e, g);
		if (g->failed)
			continue;
		persisted(g);
		send_msgs(e, g, false);
		apply(e, g);
		if (g->failed)
			continue;
		read_states(e, g);
		raft_advance(g->r, &g->rd);
		g->in_ready = false;
		g->resumed = false;
		dr_arena_reset(&g->arena.ar);
		eng_cache_release(&g->cache, e->a);
	}

	/* 5. Leadership changes, reads, snapshots. */
	for (size_t i = 0; i < e->n_groups && !e->failed; i++) {
		struct group *g = e->groups[i];

		if (g->failed) {
			if (g->n_pending > 0 || g->cc.active || g->transfer.active ||
			    g->snapreq.active)
				eng_fail_group(e, g, ENGINE_ERR_SM);
			continue;
		}
		if (g->installing)
			continue;
		watch_leader(e, g);
		if (g->n_reads > 0)
			resolve_reads(e, g);
		if (g->check_upto != 0 && g->check_upto <= g->applied)
			resolve_overwritten(e, g);
		rc = snapshot(e, g);
		eng_cache_trim(&g->cache, cache_keep(g));
		g->busy = e->st.busy != NULL && e->st.busy(e->st.ctx, g->id);
	}
	e->in_round = false;
	eng_flush(e);
	if (e->failed)
		return ENGINE_ERR_FAILED;
	for (size_t i = 0; i < e->n_groups && !e->work; i++)
		if (eng_live(e->groups[i]) && raft_has_ready(e->groups[i]->r))
			e->work = true;
	return ENGINE_OK;
}
