/*
 * sim_check.c - the invariants, checked incrementally as events happen:
 *
 *   election-safety       at most one leader per term; one vote per term
 *   term-durable          no message of a term leaves before its sender saved
 *                         that term (sim_node.c send; pre-votes aside)
 *   log-matching          same index and term => same entry and same prefix
 *   commit-safety         one term committed at each index (any node's commit index)
 *   leader-completeness   a leader of term T holds every entry committed before T
 *   state-machine-safety  no two nodes apply different entries at one index
 *   apply-durable         nothing applied above the node's durable log (deferred syncs)
 *   lost-ack / double-apply  acknowledged proposals stay, nothing applied twice
 *   read-linearizability  a ReadIndex covers every commit index seen before it
 *   membership            a removed id never comes back
 *   integrity             every entry leaving a node is one the simulation wrote
 *   bug                   the core reported an impossible state (RAFT_ERR_BUG)
 *
 * Log matching by induction (Raft paper 5.3): the registry remembers, for each
 * (index, term), the entry's content and the term of its predecessor; if every
 * node agrees on both, equal (index, term) pairs have equal prefixes.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

void sim_fail(struct sim_world *w, const char *prop, const char *fmt, ...)
{
	va_list ap;

	if (w->failed)
		return;
	w->failed = true;
	snprintf(w->prop, sizeof(w->prop), "%s", prop);
	va_start(ap, fmt);
	vsnprintf(w->why, sizeof(w->why), fmt, ap);
	va_end(ap);
	if (w->trace)
		printf("[%8" PRIu64 "] VIOLATION %s: %s\n", w->now, w->prop, w->why);
}

void sim_trace(struct sim_world *w, const char *fmt, ...)
{
	va_list ap;

	if (!w->trace)
		return;
	printf("[%8" PRIu64 "] ", w->now);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

static const char *role_name(enum raft_role r)
{
	switch (r) {
	case RAFT_FOLLOWER:
		return "follower";
	case RAFT_PRECANDIDATE:
		return "precandidate";
	case RAFT_CANDIDATE:
		return "candidate";
	case RAFT_LEADER:
		return "leader";
	}
	return "?";
}

/* Term of entry i in nd's log as the core sees it; injected read failures off. */
static int term_at(struct sim_node *nd, raft_index i, raft_term *t)
{
	unsigned fail = nd->st.fail;
	int rc;

	nd->st.fail = 0;
	rc = raft_term_at(nd->r, i, t);
	nd->st.fail = fail;
	return rc;
}

/* nd's commit index rose: the entries it covers are committed, in nd's terms. */
static void register_committed(struct sim_world *w, struct sim_node *nd, raft_index commit)
{
	for (raft_index i = nd->commit_seen + 1; i <= commit && !w->failed; i++) {
		raft_term t, ct = sim_u64s_get(&w->committed_term, i);

		if (term_at(nd, i, &t) != RAFT_OK)
			continue; /* compacted: registered when it was committed */
		if (ct == 0) {
			sim_u64s_set(&w->committed_term, i, t);
			sim_u64s_set(&w->committed_in, i, nd->term);
		} else if (ct != t)
			sim_fail(w, "commit-safety",
			         "node %" PRIu64 " commits term %" PRIu64 " at index %" PRIu64
			         ", where term %" PRIu64 " was committed",
			         nd->id, t, i, ct);
	}
	nd->commit_seen = commit;
}

/*
 * Leader completeness (Raft paper 5.4.1) for nd, just elected leader of term
 * t: it holds every entry committed in an earlier term.  The term an entry
 * was committed in, not its own: a candidate of term t whose last vote
 * arrives late may win t after a leader of t + 1 committed an entry of term
 * t - 1 that it lacks (seed 200480, 3 nodes); it can commit nothing in t.
 */
static void check_new_leader(struct sim_world *w, struct sim_node *nd, raft_term t)
{
	raft_index last = raft_last_index(nd->r);

	nd->lc_term = t;
	for (raft_index i = 1; i < w->committed_term.n && !w->failed; i++) {
		raft_term have, ct = w->committed_term.v[i];
		int rc;

		if (ct == 0 || sim_u64s_get(&w->committed_in, i) >= t)
			continue; /* paper 5.4: only entries committed in earlier terms */
		if (i > last) {
			sim_fail(w, "leader-completeness",
			         "node %" PRIu64 " elected leader of term %" PRIu64
			         " with last index %" PRIu64 " but index %" PRIu64 " was committed",
			         nd->id, t, last, i);
			return;
		}
		rc = term_at(nd, i, &have);
		if (rc == RAFT_ERR_COMPACTED)
			continue;
		if (rc != RAFT_OK || have != ct)
			sim_fail(w, "leader-completeness",
			         "node %" PRIu64 " elected leader of term %" PRIu64
			         " holds term %" PRIu64 " at index %" PRIu64
			         ", but the committed entry there has term %" PRIu64,
			         nd->id, t, rc == RAFT_OK ? have : 0, i, ct);
	}
}

void sim_observe(struct sim_world *w, struct sim_node *nd)
{
	enum raft_role role;
	raft_term term;
	raft_index commit;
	int fatal;

	if (!nd->up || !nd->r || nd->stopped)
		return;
	fatal = raft_fatal(nd->r);
	if (fatal == RAFT_ERR_BUG) {
		sim_fail(w, "bug", "node %" PRIu64 ": %s", nd->id, raft_errmsg(nd->r));
		return;
	}
	if (fatal != 0) {
		/* Fail-stop: nothing may leave; the engine stops the group until restart. */
		if (raft_has_ready(nd->r))
			sim_fail(w, "api", "node %" PRIu64 " stopped (%s) but has a Ready", nd->id,
			         raft_errmsg(nd->r));
		sim_trace(w, "node %" PRIu64 " stops: %s", nd->id, raft_errmsg(nd->r));
		nd->stopped = true;
		w->n_stops++;
		return;
	}
	role = raft_role(nd->r);
	term = raft_term_of(nd->r);
	commit = raft_commit_index(nd->r);
	if (commit > w->max_commit)
		w->max_commit = commit;
	if (role != nd->role || term != nd->term)
		sim_trace(w, "node %" PRIu64 " %s term %" PRIu64 " (commit %" PRIu64 ")", nd->id,
		          role_name(role), term, commit);
	else if (commit > nd->commit)
		sim_trace(w, "node %" PRIu64 " commits up to %" PRIu64, nd->id, commit);
	nd->role = role;
	nd->term = term;
	nd->commit = commit;
	if (commit > nd->commit_seen)
		register_committed(w, nd, commit);
	if (role != RAFT_LEADER || w->failed)
		return;
	if (sim_u64s_get(&w->leader_of_term, term) == 0) {
		sim_u64s_set(&w->leader_of_term, term, nd->id);
		w->n_elections++;
	} else if (sim_u64s_get(&w->leader_of_term, term) != nd->id) {
		sim_fail(w, "election-safety",
		         "nodes %" PRIu64 " and %" PRIu64 " both leaders of term %" PRIu64,
		         sim_u64s_get(&w->leader_of_term, term), nd->id, term);
		return;
	}
	if (nd->lc_term != term)
		check_new_leader(w, nd, term);
}

/*
 * A leader elected alone (a single voter) leads in memory before its Ready
 * saves the new term; a crash during that save (seed 3:260174
 * --two-remove --defer) leaves it at the term before, and the term may be
 * led again by another node that it then votes for.  That is no second
 * leader: nothing of the first left the node (a Ready with a new term is
 * saved synced before its messages go out).  So the record is forgotten,
 * but only if no message of that term left it (sent_term): a core that
 * sent one before its term was durable still fails here.
 */
void sim_check_crashed(struct sim_world *w, struct sim_node *nd)
{
	for (raft_term t = nd->st.hs.term + 1; t <= nd->term; t++)
		if (sim_u64s_get(&w->leader_of_term, t) == nd->id && nd->sent_term < t) {
			sim_trace(w,
			          "node %" PRIu64 "'s leadership of term %" PRIu64 " left no trace",
			          nd->id, t);
			sim_u64s_set(&w->leader_of_term, t, 0);
		}
}

void sim_check_hard_state(struct sim_world *w, struct sim_node *nd,
                          const struct raft_hard_state *hs)
{
	const struct raft_hard_state *old = &nd->st.hs;

	if (hs->term < old->term)
		sim_fail(w, "hard-state",
		         "node %" PRIu64 " term went back from %" PRIu64 " to %" PRIu64, nd->id,
		         old->term, hs->term);
	else if (hs->term == old->term && old->vote != 0 && hs->vote != old->vote)
		sim_fail(w, "election-safety",
		         "node %" PRIu64 " voted for %" PRIu64 " and then %" PRIu64
		         " in term %" PRIu64,
		         nd->id, old->vote, hs->vote, hs->term);
	else if (hs->commit < old->commit)
		sim_fail(w, "hard-state",
		         "node %" PRIu64 " persisted commit %" PRIu64 " after %" PRIu64, nd->id,
		         hs->commit, old->commit);
}

static struct sim_reg *reg_at(struct sim_world *w, raft_index i)
{
	if (i >= w->n_reg) {
		size_t n = w->n_reg ? w->n_reg : 256;

		while (n <= i)
			n *= 2;
		w->reg = sim_xrealloc(w->reg, n * sizeof(*w->reg));
		memset(w->reg + w->n_reg, 0, (n - w->n_reg) * sizeof(*w->reg));
		w->n_reg = n;
	}
	return &w->reg[i];
}

/* Log matching for one entry (index i, term t, content c) preceded by term pt. */
static void register_entry(struct sim_world *w, struct sim_node *nd, raft_index i, raft_term t,
                           raft_term pt, uint64_t c)
{
	struct sim_reg *r = reg_at(w, i);

	if (t < pt) {
		sim_fail(w, "log-matching",
		         "node %" PRIu64 " log has term %" PRIu64 " at index %" PRIu64
		         " after term %" PRIu64,
		         nd->id, t, i, pt);
		return;
	}
	for (uint32_t k = 0; k < r->n; k++) {
		struct sim_reg_ent *e = &r->e[k];

		if (e->term != t)
			continue;
		if (e->content != c || e->prev_term != pt)
			sim_fail(w, "log-matching",
			         "index %" PRIu64 " term %" PRIu64 ": node %" PRIu64
			         " has content %" PRIx64 " after term %" PRIu64 ", node %" PRIu64
			         " has content %" PRIx64 " after term %" PRIu64,
			         i, t, e->node, e->content, e->prev_term, nd->id, c, pt);
		return;
	}
	if (r->n == r->cap) {
		r->cap = r->cap ? 2 * r->cap : 2;
		r->e = sim_xrealloc(r->e, r->cap * sizeof(*r->e));
	}
	r->e[r->n].term = t;
	r->e[r->n].prev_term = pt;
	r->e[r->n].content = c;
	r->e[r->n].node = nd->id;
	r->n++;
}

void sim_check_append(struct sim_world *w, struct sim_node *nd, const struct raft_entry *e,
                      uint32_t n)
{
	struct sim_store *s = &nd->st;
	raft_term pt;
	raft_index lo;

	if (n == 0)
		return;
	lo = e[0].index;
	if (lo < s->first || sim_store_term(s, lo - 1, &pt) != RAFT_OK) {
		sim_fail(w, "api",
		         "node %" PRIu64 " asked to persist entries from %" PRIu64
		         " but its log holds [%" PRIu64 ", %" PRIu64 "]",
		         nd->id, lo, s->first, sim_store_last(s));
		return;
	}
	/* An entry this node already knew committed must never be replaced. */
	for (raft_index i = lo; i <= s->hs.commit && i <= sim_store_last(s); i++) {
		raft_term old = s->ents[i - s->first].term;

		if (i >= lo + n) {
			sim_fail(w, "leader-completeness",
			         "node %" PRIu64 " truncates its log at %" PRIu64
			         " below its commit index %" PRIu64,
			         nd->id, lo + n, s->hs.commit);
			return;
		}
		if (old != e[i - lo].term) {
			sim_fail(w, "leader-completeness",
			         "node %" PRIu64 " overwrites committed index %" PRIu64
			         " (term %" PRIu64 ") with term %" PRIu64,
			         nd->id, i, old, e[i - lo].term);
			return;
		}
	}
	for (uint32_t k = 0; k < n && !w->failed; k++) {
		raft_index i = e[k].index;
		uint64_t c = sim_content(e[k].type, e[k].data, e[k].len);

		if (i != lo + k) {
			sim_fail(w, "api",
			         "node %" PRIu64 " Ready entries not contiguous at %" PRIu64,
			         nd->id, i);
			return;
		}
		register_entry(w, nd, i, e[k].term, k ? e[k - 1].term : pt, c);
	}
}

void sim_check_intact(struct sim_world *w, struct sim_node *nd, const struct raft_entry *e,
                      uint32_t n, const char *where)
{
	for (uint32_t k = 0; k < n && !w->failed; k++)
		if (!sim_entry_intact(&e[k]))
			sim_fail(w, "integrity",
			         "node %" PRIu64 " %s: entry %" PRIu64 " (term %" PRIu64
			         ", type %u, %u bytes) is not what was proposed",
			         nd->id, where, e[k].index, e[k].term, e[k].type, e[k].len);
}

void sim_check_membership(struct sim_world *w, struct sim_node *nd, const struct raft_membership *m)
{
	/* Configurations after a removal descend from it. */
	for (unsigned i = 0; i < w->n_removed; i++)
		if (w->removed[i].at < m->config_index &&
		    raft_membership_contains(m, w->removed[i].id))
			sim_fail(w, "membership",
			         "node %" PRIu64 " applies a membership (index %" PRIu64
			         ") with node %" PRIu64 ", removed at index %" PRIu64,
			         nd->id, m->config_index, w->removed[i].id, w->removed[i].at);
}

static struct sim_prop *prop_of(struct sim_world *w, uint64_t c)
{
	if (!sim_content_is_prop(c) || c > w->n_props)
		return NULL;
	return &w->props[c - 1];
}

/* nd's state machine now holds proposal c at index i. */
static void note_prop(struct sim_world *w, struct sim_node *nd, raft_index i, uint64_t c)
{
	struct sim_prop *p = prop_of(w, c);

	if (!p)
		return;
	if (p->applied_at && p->applied_at != i) {
		sim_fail(w, "double-apply",
		         "proposal %" PRIu64 " applied at index %" PRIu64 " and at index %" PRIu64
		         " (node %" PRIu64 ")",
		         c, p->applied_at, i, nd->id);
		return;
	}
	p->applied_at = i;
	if (p->node == nd->id && p->status != SIM_PROP_ACKED) {
		p->status = SIM_PROP_ACKED;
		p->index = i;
		w->n_acked++;
		if (i > w->max_acked)
			w->max_acked = i;
		sim_trace(w, "ack proposal %" PRIu64 " at index %" PRIu64 " on node %" PRIu64, c, i,
		          nd->id);
	}
}

static void check_same(struct sim_world *w, struct sim_node *nd, raft_index i, raft_term t,
                       uint64_t c, const char *how)
{
	raft_term at = sim_u64s_get(&w->applied_term, i);
	uint64_t ac = sim_u64s_get(&w->applied_content, i);
	struct sim_prop *p;

	if (at == 0) {
		if (t) {
			sim_u64s_set(&w->applied_term, i, t);
			sim_u64s_set(&w->applied_content, i, c);
		}
		return;
	}
	if (ac == c && (t == 0 || t == at))
		return;
	p = prop_of(w, ac);
	if (p && p->status == SIM_PROP_ACKED && p->index == i)
		sim_fail(w, "lost-ack",
		         "proposal %" PRIu64 " acknowledged at index %" PRIu64 " but node %" PRIu64
		         " %s %" PRIx64 " (term %" PRIu64 ") there",
		         ac, i, nd->id, how, c, t);
	else
		sim_fail(w, "state-machine-safety",
		         "index %" PRIu64 ": applied %" PRIx64 " (term %" PRIu64
		         ") before, node %" PRIu64 " %s %" PRIx64 " (term %" PRIu64 ")",
		         i, ac, at, nd->id, how, c, t);
}

void sim_check_apply_durable(struct sim_world *w, struct sim_node *nd, raft_index i)
{
	raft_index d = sim_store_durable_last(&nd->st);

	if (i > d)
		sim_fail(w, "apply-durable",
		         "node %" PRIu64 " applies %" PRIu64 " past its durable log (%" PRIu64
		         "): a crash may take it from the log",
		         nd->id, i, d);
}

void sim_check_apply(struct sim_world *w, struct sim_node *nd, raft_index i, raft_term t,
                     uint64_t c)
{
	if (i != nd->st.applied + 1) {
		sim_fail(w, "apply-order",
		         "node %" PRIu64 " asked to apply index %" PRIu64 " after %" PRIu64, nd->id,
		         i, nd->st.applied);
		return;
	}
	check_same(w, nd, i, t, c, "applies");
	if (!w->failed)
		note_prop(w, nd, i, c);
}

void sim_check_snapshot(struct sim_world *w, struct sim_node *nd, const struct sim_snapshot *s)
{
	if (s->meta.index < nd->st.applied) {
		sim_fail(w, "snapshot",
		         "node %" PRIu64 " asked to install snapshot %" PRIu64
		         " below its applied index %" PRIu64,
		         nd->id, s->meta.index, nd->st.applied);
		return;
	}
	for (raft_index i = 1; i <= s->meta.index && !w->failed; i++) {
		uint64_t c = sim_u64s_get(&s->sm, i);

		check_same(w, nd, i, i == s->meta.index ? s->meta.term : 0, c, "installs");
		if (!w->failed)
			note_prop(w, nd, i, c);
	}
}

void sim_check_read(struct sim_world *w, struct sim_node *nd, uint64_t ctx, raft_index index)
{
	struct sim_read *r;

	if (ctx == 0 || ctx > w->n_reads)
		return;
	r = &w->reads[ctx - 1];
	if (r->done)
		return;
	r->done = true;
	w->n_reads_ok++;
	sim_trace(w,
	          "read %" PRIu64 " on node %" PRIu64 " -> index %" PRIu64 " (needs >= %" PRIu64
	          ")",
	          ctx, nd->id, index, r->min_index);
	/* Thesis 6.4: a read sees every write that completed (committed) before it began. */
	if (index < r->min_index)
		sim_fail(w, "read-linearizability",
		         "read %" PRIu64 " issued on node %" PRIu64 " returned index %" PRIu64
		         " but index %" PRIu64 " was committed (or read) before it was issued",
		         ctx, r->node, index, r->min_index);
	if (index > w->max_read)
		w->max_read = index;
}

void sim_check_final(struct sim_world *w, const struct raft_membership *m)
{
	for (size_t k = 0; k < w->n_props && !w->failed; k++) {
		struct sim_prop *p = &w->props[k];

		if (p->status != SIM_PROP_ACKED)
			continue;
		for (unsigned id = 1; id <= w->n; id++) {
			struct sim_node *nd = &w->nodes[id];

			if (!nd->up || !raft_membership_contains(m, id) ||
			    nd->st.applied < p->index)
				continue;
			if (sim_u64s_get(&nd->st.sm, p->index) != k + 1) {
				sim_fail(w, "lost-ack",
				         "proposal %zu acknowledged at index %" PRIu64
				         " is not in node %u's state machine (holds %" PRIx64 ")",
				         k + 1, p->index, id, sim_u64s_get(&nd->st.sm, p->index));
				return;
			}
		}
	}
}

void sim_check_free(struct sim_world *w)
{
	for (size_t i = 0; i < w->n_reg; i++)
		free(w->reg[i].e);
	free(w->reg);
	w->reg = NULL;
	w->n_reg = 0;
	sim_u64s_free(&w->leader_of_term);
	sim_u64s_free(&w->committed_term);
	sim_u64s_free(&w->committed_in);
	sim_u64s_free(&w->applied_term);
	sim_u64s_free(&w->applied_content);
}
