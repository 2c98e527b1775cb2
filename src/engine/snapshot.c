/*
 * snapshot.c - snapshots (DESIGN 9): the state machine snapshot a leader
 * makes for followers that need compacted entries (saved, possibly in the
 * background, then streamed to each of them), the install of a received one
 * on a follower (recovered into the state machine, possibly in the
 * background, before its metadata is saved), and the metadata snapshot
 * every snapshot_entries applied entries with the log compaction after it.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "engine/engine_int.h"

/*
 * How long (in election timeouts) the log after a shipped snapshot is kept
 * for a follower that has not caught up to it yet: a member that never
 * loads it must not hold the log for ever.
 */
#define SHIPPED_KEEP_ELECTIONS 600
/* A follower's refusals of one group's snapshots for want of room: one line in this long. */
#define REFUSAL_LOG_MS 60000u

static void note_shipped(struct engine *e, struct group *g, raft_id to, raft_index index)
{
	uint32_t k = 0;

	while (k < g->n_shipped && g->shipped[k].to != to)
		k++;
	if (k == RAFT_MAX_MEMBERS)
		return;
	if (k == g->n_shipped)
		g->n_shipped++;
	g->shipped[k].to = to;
	g->shipped[k].index = index;
	g->shipped[k].until = e->now + (uint64_t)SHIPPED_KEEP_ELECTIONS * e->cfg.election_rtt;
}

/*
 * A follower that receives a snapshot at index i then needs the entries
 * after i: compaction (up to c) stays at or below i until the follower's
 * match reaches it (or the keep expires, or this node no longer leads).
 * Otherwise a follower whose load takes longer than the group needs to
 * write compaction_overhead entries would need one snapshot after another
 * and never catch up (etcd keeps SnapshotCatchUpEntries for the same
 * reason).
 */
static raft_index keep_shipped(struct engine *e, struct group *g, raft_index c)
{
	uint32_t k = 0;

	while (k < g->n_shipped) {
		const struct shipped *s = &g->shipped[k];
		struct raft_peer_progress pr;

		if (e->now >= s->until || raft_peer_progress(g->r, s->to, &pr) != RAFT_OK ||
		    pr.match >= s->index) {
			g->shipped[k] = g->shipped[--g->n_shipped];
			continue;
		}
		if (c > s->index)
			c = s->index;
		k++;
	}
	return c;
}

/* Ship the state machine snapshot g->out holds to every follower waiting for it. */
static void ship(struct engine *e, struct group *g)
{
	struct snap_out *o = g->out;
	struct raft_snapshot_meta meta;
	raft_index idx = o->index;
	int rc = o->rc;
	bool leading = raft_role(g->r) == RAFT_LEADER && raft_term_of(g->r) == o->tmpl.term;

	/*
	 * Any applied index works (an asynchronous state machine may lag the
	 * engine) as long as its term and membership are known here.
	 */
	if (rc == ENGINE_OK && idx == g->applied)
		meta.term = g->applied_term;
	else if (rc == ENGINE_OK && idx < g->applied && idx + 1 >= g->first && idx <= g->last &&
	         g->conf.config_index <= idx)
		rc = eng_view_term(e, g, idx, &meta.term);
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
		goto done;
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
		if (e->net.send_snapshot(e->net.ctx, &out, path) != ENGINE_OK) {
			raft_report_snapshot(g->r, o->to[k], true);
		} else {
			note_shipped(e, g, o->to[k], idx);
			eng_no_room_streaming(e, g, o->to[k]);
		}
	}
done:
	g->out = NULL;
	e->a->free(o);
	eng_raft_rc(e, g, raft_fatal(g->r), "a snapshot report");
}

/*
 * A stream of a snapshot to follower `to` ended (engine_snapshot_sent).  After
 * a failure the next snapshot for it waits an election timeout, doubling up
 * to 32 of them (review 26: a follower that could not take the file, for
 * want of room, had its leader export every table again at once, 84 times
 * in 10 s); a success forgets its failures, and so does a failure that comes
 * the longest pause after the last one's retry (and a new term as leader:
 * round.c), so that old failures do not put a later one off for long.
 */
void eng_snapshot_backoff(struct engine *e, struct group *g, raft_id to, bool failed)
{
	uint32_t k = 0;

	while (k < g->n_backoff && g->backoff[k].to != to)
		k++;
	if (!failed) {
		if (k < g->n_backoff)
			g->backoff[k] = g->backoff[--g->n_backoff];
		return;
	}
	if (k == g->n_backoff) {
		if (k == RAFT_MAX_MEMBERS)
			return;
		g->n_backoff++;
		g->backoff[k].to = to;
		g->backoff[k].failures = 0;
	} else if (e->now >= g->backoff[k].retry + ((uint64_t)e->cfg.election_rtt << 5)) {
		g->backoff[k].failures = 0;
	}
	g->backoff[k].retry =
	        e->now + ((uint64_t)e->cfg.election_rtt
	                  << (g->backoff[k].failures < 5 ? g->backoff[k].failures : 5));
	g->backoff[k].failures++;
}

void eng_send_snapshot(struct engine *e, struct group *g, const struct raft_message *m)
{
	struct snap_out *o = g->out;
	raft_index idx = 0;
	int rc;

	if (o != NULL) {
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
	for (uint32_t k = 0; k < g->n_backoff; k++)
		if (g->backoff[k].to == m->to && e->now < g->backoff[k].retry) {
			/* Its last streams failed: not another snapshot at once. */
			raft_report_snapshot(g->r, m->to, true);
			return;
		}
	if (g->sm.save_snapshot == NULL) {
		g->stats.snapshots_unavailable++; /* status: needs_snapshot */
		eng_changed(e, g);
	}
	if (g->sm.save_snapshot == NULL || e->net.send_snapshot == NULL ||
	    (o = e->a->malloc(sizeof(*o))) == NULL) {
		raft_report_snapshot(g->r, m->to, true);
		return;
	}
	memset(o, 0, sizeof(*o));
	g->out = o;
	o->state = OUT_SAVING;
	o->tmpl = *m;
	o->tmpl.snapshot = NULL;
	o->tmpl.entries = NULL;
	o->tmpl.n_entries = 0;
	o->to[o->n_to++] = m->to;
	snprintf(o->path, sizeof(o->path), "%s/snap-%llu-%llu-%016llx-%llu", e->snapdir,
	         (unsigned long long)e->cfg.node_id, (unsigned long long)g->id,
	         (unsigned long long)e->snap_tag, (unsigned long long)++e->snap_seq);
	rc = g->sm.save_snapshot(g->sm.ctx, o->path, &idx);
	if (rc == ENGINE_IN_PROGRESS)
		return; /* engine_snapshot_saved() reports the end */
	o->rc = rc;
	o->index = idx;
	ship(e, g);
}

void eng_snapshot_saved(struct engine *e, struct group *g)
{
	ship(e, g);
	eng_changed(e, g);
}

int eng_install(struct engine *e, struct group *g)
{
	const struct raft_snapshot_meta *s = &g->rd.snapshot;
	char held[ENGINE_PATH_MAX];
	int rc;

	if (g->recv_index != s->index || g->recv_path == NULL || g->sm.recover == NULL) {
		eng_group_failed(e, g, ENGINE_ERR_SNAPSHOT,
		                 "snapshot install failed (no file for index %llu)",
		                 (unsigned long long)s->index);
		return ENGINE_ERR_SNAPSHOT;
	}
	/* A private name: nothing that arrives while it is read can replace the file. */
	if (snprintf(held, sizeof(held), "%s.recovering", g->recv_path) < (int)sizeof(held) &&
	    rename(g->recv_path, held) == 0)
		memcpy(g->recv_path, held, ENGINE_PATH_MAX);
	/* The state machine goes ahead of the log until the install is saved: say so first. */
	rc = e->st.save_recovery(e->st.ctx, g->id, s->index);
	if (rc != ENGINE_OK)
		return eng_fail_engine(e, rc,
		                       "group %llu: saving the recovery marker of snapshot %llu",
		                       (unsigned long long)g->id, (unsigned long long)s->index);
	rc = g->sm.recover(g->sm.ctx, g->recv_path, s->index);
	if (rc == ENGINE_IN_PROGRESS) {
		/* (The Ready waits for engine_snapshot_recovered(); the reads without
		 * an index end: eng_set_state.) */
		eng_set_state(e, g, GS_RECOVERING);
		return rc;
	}
	if (rc != ENGINE_OK) {
		eng_group_failed(e, g, rc, "snapshot recovery failed (%s)", engine_strerror(rc));
		return rc;
	}
	return ENGINE_OK;
}

bool eng_snapshot_wanted(const struct engine *e, const struct group *g)
{
	return g->snapreq.w.active ||
	       (e->cfg.snapshot_entries != 0 &&
	        g->applied - g->last_snap_applied >= e->cfg.snapshot_entries);
}

int eng_snapshot_if_due(struct engine *e, struct group *g)
{
	struct raft_snapshot_meta meta;
	raft_index a, c;
	raft_term t;
	int rc;

	if (!eng_snapshot_wanted(e, g))
		return ENGINE_OK;
	a = g->sm.durable_applied(g->sm.ctx);
	if (a > g->applied)
		a = g->applied;
	if (a <= g->snap.index) {
		eng_waiter_done(e, g, &g->snapreq.w, ENGINE_OK, g->snap.index);
		return ENGINE_OK;
	}
	if (g->conf.config_index > a)
		return ENGINE_OK; /* membership as of a unknown: retry later */
	if (a == g->applied) {
		t = g->applied_term;
	} else {
		rc = eng_view_term(e, g, a, &t);
		if (rc != ENGINE_OK)
			return rc;
	}
	meta.index = a;
	meta.term = t;
	meta.membership = g->conf;
	rc = e->st.save_snapshot(e->st.ctx, g->id, &meta);
	if (rc != ENGINE_OK)
		return eng_fail_engine(e, rc, "group %llu: saving the snapshot record at %llu",
		                       (unsigned long long)g->id, (unsigned long long)a);
	g->snap = meta;
	g->last_snap_applied = g->applied;
	eng_changed(e, g); /* its status shows the snapshot index */
	eng_waiter_done(e, g, &g->snapreq.w, ENGINE_OK, a);

	c = a > e->cfg.compaction_overhead ? a - e->cfg.compaction_overhead : 0;
	if (g->sm.save_snapshot == NULL) {
		/*
		 * No full snapshot can be made: what a member may still need stays.  The
		 * leader knows what each has; a follower does not know what the others
		 * have, and may lead them one day.
		 */
		raft_index keep = raft_role(g->r) == RAFT_LEADER ? raft_peers_match(g->r) : 0;

		if (c > keep)
			c = keep;
	}
	/* (While a snapshot for a follower is made, its index is not known yet.) */
	if (g->out != NULL)
		return ENGINE_OK;
	c = keep_shipped(e, g, c);
	if (c < g->first)
		return ENGINE_OK;
	if (c == a) {
		t = meta.term;
	} else {
		rc = eng_view_term(e, g, c, &t);
		if (rc != ENGINE_OK)
			return rc;
	}
	rc = e->st.compact(e->st.ctx, g->id, c);
	if (rc != ENGINE_OK)
		return eng_fail_engine(e, rc, "group %llu: compacting the log up to %llu",
		                       (unsigned long long)g->id, (unsigned long long)c);
	g->first = c + 1;
	g->prev_term = t;
	raft_compacted(g->r, c);
	return eng_raft_rc(e, g, raft_fatal(g->r), "a compaction");
}

/* ---- refusals for want of room (review 28 F5, review 31 F10-F12) ---- */

void engine_snapshot_refused(struct engine *e, uint64_t group_id, raft_id from,
                             const char *why)
{
	struct group *g = eng_group(e, group_id);

	if (g == NULL || why == NULL)
		return;
	/* (a former leader's stream: the leader now sends entries or its own snapshot) */
	if (g->r != NULL && raft_leader(g->r) != 0 && raft_leader(g->r) != from)
		return;
	if (g->refusal == NULL && (g->refusal = e->a->malloc(ENGINE_REFUSAL_LEN)) == NULL)
		return;
	snprintf(g->refusal, ENGINE_REFUSAL_LEN, "%s", why);
	eng_changed(e, g);
}

void eng_refusal_clear(struct engine *e, struct group *g)
{
	if (g->refusal == NULL)
		return;
	e->a->free(g->refusal);
	g->refusal = NULL;
	eng_changed(e, g);
}

static struct snap_no_room *no_room_of(struct group *g, raft_id to)
{
	for (uint32_t k = 0; k < g->n_no_room; k++)
		if (g->no_room[k].to == to)
			return &g->no_room[k];
	return NULL;
}

static void no_room_drop(struct engine *e, struct group *g, struct snap_no_room *f)
{
	*f = g->no_room[--g->n_no_room];
	if (g->n_no_room == 0) {
		e->a->free(g->no_room);
		g->no_room = NULL;
	}
	eng_changed(e, g);
}

/*
 * The status shows the refusal while it is the follower's latest answer; the
 * log says so once a minute per follower and group (in engine ticks: never
 * more often), with how many refusals were left out, and once more when it
 * takes a snapshot.
 */
void engine_snapshot_refused_by(struct engine *e, uint64_t group_id, raft_id by, uint64_t need,
                                uint64_t free_bytes, uint64_t min_free)
{
	struct group *g = eng_group(e, group_id);
	uint64_t every = (REFUSAL_LOG_MS + e->cfg.rtt_ms - 1) / e->cfg.rtt_ms; /* (never less) */
	struct snap_no_room *f;
	char left[64] = "";

	/* (A stream of a term this node no longer leads: its next leader sends its own.) */
	if (g == NULL || raft_role(g->r) != RAFT_LEADER ||
	    !raft_membership_contains(raft_membership(g->r), by))
		return;
	if ((f = no_room_of(g, by)) == NULL) {
		if (g->n_no_room == RAFT_MAX_MEMBERS)
			return; /* (one per member: cannot be) */
		if (g->no_room == NULL &&
		    (g->no_room = e->a->malloc(RAFT_MAX_MEMBERS * sizeof(*g->no_room))) == NULL)
			return; /* (out of memory: the refusal is neither shown nor logged) */
		f = &g->no_room[g->n_no_room++];
		memset(f, 0, sizeof(*f));
		f->to = by;
	} else if (e->now - f->logged < every) {
		f->left_out++;
	}
	f->count++;
	f->need = need;
	f->free_bytes = free_bytes;
	f->min_free = min_free;
	f->shown = true;
	eng_changed(e, g);
	if (f->count > 1 && e->now - f->logged < every)
		return;
	if (f->left_out > 0)
		snprintf(left, sizeof(left), " (%llu more refusals since the last line)",
		         (unsigned long long)f->left_out);
	if (need == 0 && free_bytes == 0)
		eng_say(e, ENGINE_LOG_INFO,
		        "dragonraft node %llu refused the snapshot of group %llu: no room in its "
		        "snapshot directory; it is sent again after a pause%s",
		        (unsigned long long)by, (unsigned long long)group_id, left);
	else
		eng_say(e, ENGINE_LOG_INFO,
		        "dragonraft node %llu refused the snapshot of group %llu: no room (%llu "
		        "bytes to come and %llu to stay free, %llu free there); it is sent again "
		        "after a pause%s",
		        (unsigned long long)by, (unsigned long long)group_id,
		        (unsigned long long)need, (unsigned long long)min_free,
		        (unsigned long long)free_bytes, left);
	f->logged = e->now;
	f->left_out = 0;
}

void eng_no_room_took(struct engine *e, struct group *g, raft_id to)
{
	struct snap_no_room *f = no_room_of(g, to);

	if (f == NULL)
		return;
	eng_say(e, ENGINE_LOG_INFO,
	        "dragonraft node %llu took the snapshot of group %llu after %llu refusals for "
	        "want of room",
	        (unsigned long long)to, (unsigned long long)g->id, (unsigned long long)f->count);
	no_room_drop(e, g, f);
}

void eng_no_room_streaming(struct engine *e, struct group *g, raft_id to)
{
	struct snap_no_room *f = no_room_of(g, to);

	if (f != NULL && f->shown) {
		f->shown = false;
		eng_changed(e, g);
	}
}

/*
 * Answers to streams of another term are not shown; the record keeps when
 * its line was said, so that a leadership that goes and comes back says no
 * more than a line a minute per member (review 33).
 */
void eng_no_room_forget_all(struct engine *e, struct group *g)
{
	bool changed = false;

	for (uint32_t k = 0; k < g->n_no_room; k++) {
		changed |= g->no_room[k].shown;
		g->no_room[k].shown = false;
	}
	if (changed)
		eng_changed(e, g);
}

void eng_no_room_prune(struct engine *e, struct group *g)
{
	uint32_t k = 0;

	if (g->n_no_room > 0 && raft_role(g->r) != RAFT_LEADER) {
		eng_no_room_forget_all(e, g); /* (pruned when it leads again) */
		return;
	}
	while (k < g->n_no_room) {
		struct raft_peer_progress pp;

		/* Gone from the group, or it has what the log's first entry needs. */
		if (raft_peer_progress(g->r, g->no_room[k].to, &pp) != RAFT_OK ||
		    pp.match + 1 >= g->first)
			no_room_drop(e, g, &g->no_room[k]);
		else
			k++;
	}
}
