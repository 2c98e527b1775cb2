/*
 * logview.c - a group's view of its stable log: what storage holds (hard
 * state, first and last index, the term before the first, the latest
 * snapshot), loaded when the group starts and moved forward after each save
 * and compaction.  The group's Raft core reads the log through it (struct
 * raft_storage); entries come from the entry cache when they are there, else
 * from storage.
 */
#include <stdio.h>
#include <string.h>

#include "engine/engine_int.h"

static int st_initial(void *ctx, struct raft_hard_state *hs, struct raft_membership *m)
{
	struct group *g = ctx;

	*hs = g->hs;
	*m = g->conf;
	return RAFT_OK;
}

static int st_entries(void *ctx, raft_index lo, raft_index hi, uint64_t max_bytes,
                      struct raft_entry *out, uint32_t *n)
{
	struct group *g = ctx;
	struct engine *e = g->e;
	int rc;

	if (lo < g->first)
		return RAFT_ERR_COMPACTED;
	if (hi > g->last + 1)
		return RAFT_ERR_UNAVAILABLE;
	if (eng_cache_entries(&g->cache, lo, hi, max_bytes, out, n))
		return RAFT_OK;
	rc = e->st.entries(e->st.ctx, g->id, lo, hi, max_bytes, out, n, &g->arena);
	if (rc == ENGINE_OK)
		return RAFT_OK;
	if (rc == ENGINE_ERR_NOMEM)
		return RAFT_ERR_NOMEM;
	/* Never a short or retried read: the engine stops. */
	eng_fail_engine(e, rc, "group %llu: reading entries %llu..%llu", (unsigned long long)g->id,
	                (unsigned long long)lo, (unsigned long long)hi - 1);
	return RAFT_ERR_STORAGE;
}

static int st_term(void *ctx, raft_index i, raft_term *t)
{
	struct group *g = ctx;

	if (i + 1 < g->first)
		return RAFT_ERR_COMPACTED;
	if (i > g->last)
		return RAFT_ERR_UNAVAILABLE;
	switch (eng_view_term(g->e, g, i, t)) {
	case ENGINE_OK:
		return RAFT_OK;
	case ENGINE_ERR_NOMEM:
		return RAFT_ERR_NOMEM;
	}
	return RAFT_ERR_STORAGE;
}

static raft_index st_first(void *ctx)
{
	return ((struct group *)ctx)->first;
}

static raft_index st_last(void *ctx)
{
	return ((struct group *)ctx)->last;
}

static int st_snapshot(void *ctx, struct raft_snapshot_meta *meta)
{
	*meta = ((struct group *)ctx)->snap;
	return RAFT_OK;
}

void eng_view_storage(struct group *g, struct raft_storage *st)
{
	st->ctx = g;
	st->initial_state = st_initial;
	st->entries = st_entries;
	st->term = st_term;
	st->first_index = st_first;
	st->last_index = st_last;
	st->snapshot = st_snapshot;
}

int eng_view_term(struct engine *e, struct group *g, raft_index i, raft_term *t)
{
	int rc;

	if (i + 1 == g->first) {
		*t = g->prev_term;
		return ENGINE_OK;
	}
	if (eng_cache_term(&g->cache, i, t))
		return ENGINE_OK;
	rc = e->st.term(e->st.ctx, g->id, i, t);
	if (rc != ENGINE_OK && rc != ENGINE_ERR_NOMEM)
		return eng_fail_engine(e, rc, "group %llu: reading the term of entry %llu",
		                       (unsigned long long)g->id, (unsigned long long)i);
	return rc;
}

int eng_view_load(struct engine *e, struct group *g, const struct engine_bootstrap *bs)
{
	struct engine_stored_state *ss;
	int rc;

	ss = e->a->malloc(sizeof(*ss));
	if (ss == NULL)
		return eng_err(e, ENGINE_ERR_NOMEM, "group %llu: out of memory",
		               (unsigned long long)g->id);
	rc = e->st.load(e->st.ctx, g->id, ss);
	if (rc != ENGINE_OK && rc != ENGINE_ERR_NOT_FOUND) {
		e->a->free(ss);
		if (rc == ENGINE_ERR_NOMEM)
			return eng_err(e, rc, "group %llu: out of memory",
			               (unsigned long long)g->id);
		return eng_fail_engine(e, rc, "group %llu: loading its stored state",
		                       (unsigned long long)g->id);
	}
	if (bs != NULL) {
		e->a->free(ss);
		if (rc == ENGINE_OK)
			return eng_err(
			        e, ENGINE_ERR_EXISTS,
			        "group %llu already has data on this node; restart it instead",
			        (unsigned long long)g->id);
		rc = eng_book_init(e, g, bs, true);
		if (rc != ENGINE_OK)
			return rc;
		rc = eng_book_save(e, g);
		if (rc == ENGINE_ERR_NOMEM)
			return eng_err(e, rc, "group %llu: out of memory",
			               (unsigned long long)g->id);
		if (rc != ENGINE_OK)
			return eng_fail_engine(e, rc, "group %llu: saving its bootstrap record",
			                       (unsigned long long)g->id);
		g->first = 1;
		g->last = 0;
		return ENGINE_OK;
	}
	if (rc != ENGINE_OK) {
		e->a->free(ss);
		return eng_err(e, rc, "group %llu: nothing stored for it",
		               (unsigned long long)g->id);
	}
	rc = eng_book_init(e, g, &ss->bootstrap, false);
	if (rc != ENGINE_OK) {
		e->a->free(ss);
		return rc;
	}
	g->hs = ss->hard_state;
	g->saved_commit = ss->hard_state.commit;
	g->first = ss->first_index;
	g->last = ss->last_index;
	g->prev_term = ss->prev_term;
	g->snap = ss->snapshot;
	/* Raft replays the log from the snapshot; membership as of it. */
	g->conf = g->snap.index > 0 ? g->snap.membership : *eng_book_initial(g);
	g->applied = g->snap.index;
	g->applied_term = g->snap.term;
	/*
	 * A state machine ahead of the whole stored log: legitimate only when
	 * a received snapshot's recovery started (its marker is there) and the
	 * crash came before its metadata was saved.  Otherwise this LogDB is an
	 * older copy: it would vote and acknowledge as if it had never seen
	 * what this member did (a vote twice in one term), so the member stays
	 * down.
	 */
	if (g->sm_skip > g->last && ss->recovery < g->sm_skip) {
		rc = eng_err(e, ENGINE_ERR_INVALID,
		             "group %llu: the state machine applied %llu but the LogDB ends at "
		             "%llu with no snapshot that covers it (an older copy of the LogDB?); "
		             "refusing to start the member, which could vote twice",
		             (unsigned long long)g->id, (unsigned long long)g->sm_skip,
		             (unsigned long long)g->last);
		e->a->free(ss);
		return rc;
	}
	/*
	 * An entry the state machine applied was committed, and the log holds
	 * it as applied (entries up to a commit index are never replaced).  The
	 * commit index starts there when the stored one is behind (a commit
	 * moved alone is not saved, round.c): the core then applies the
	 * membership changes up to it again, and status, joins and their waits
	 * never see a commit index below the applied one until the leader is
	 * heard from.  Not while a received snapshot's recovery may have run
	 * (its marker above the saved snapshot): the state machine may hold the
	 * snapshot's entries, which the log need not.
	 */
	if (g->sm_skip > g->hs.commit && g->sm_skip <= g->last && ss->recovery <= g->snap.index)
		g->hs.commit = g->sm_skip;
	e->a->free(ss);
	if (g->first == 0 || g->first > g->last + 1 || g->snap.index + 1 < g->first ||
	    g->hs.commit > g->last)
		return eng_fail_engine(
		        e, ENGINE_ERR_STORAGE,
		        "group %llu: loading its stored state (inconsistent: entries "
		        "%llu..%llu, snapshot %llu, commit %llu)",
		        (unsigned long long)g->id, (unsigned long long)g->first,
		        (unsigned long long)g->last, (unsigned long long)g->snap.index,
		        (unsigned long long)g->hs.commit);
	return ENGINE_OK;
}

void eng_view_persisted(struct engine *e, struct group *g)
{
	const struct raft_ready *rd = &g->rd;

	if (rd->has_snapshot) {
		/* An installed snapshot replaced the whole log (and the state machine). */
		g->stats.snapshots_received++;
		eng_cache_clear(&g->cache, rd->snapshot.index + 1);
		g->snap = rd->snapshot;
		g->first = rd->snapshot.index + 1;
		g->last = rd->snapshot.index;
		g->prev_term = rd->snapshot.term;
		g->conf = rd->snapshot.membership;
		eng_book_drop_removed(e, g, &g->conf);
		g->applied = rd->snapshot.index;
		g->applied_term = rd->snapshot.term;
		g->sm_skip = rd->snapshot.index;
		g->last_snap_applied = rd->snapshot.index;
		remove(g->recv_path);
		e->a->free(g->recv_path);
		g->recv_path = NULL;
		g->recv_index = 0;
	}
	if (rd->n_entries > 0) {
		eng_refusal_clear(e, g); /* entries came: the leader has the log it needs */
		g->last = rd->entries[rd->n_entries - 1].index;
		eng_cache_append(&g->cache, e->a, rd->entries, rd->n_entries,
		                 e->cfg.entry_cache_bytes);
	}
	if (rd->hard_state_changed)
		g->hs = rd->hard_state;
}
