/*
 * client.c - client operations (propose, read index, membership changes,
 * leadership transfer, snapshot requests), the trackers of the single-slot
 * ones (a membership change, a transfer, a snapshot request per group), and
 * how outcomes are decided when leadership changes or time runs out.
 * Proposals and reads complete at apply time in round.c.
 */
#include <string.h>

#include "engine/engine_int.h"

/*
 * Common checks; *gp receives the group.  Then room in the completion queue
 * for the operation, taken before it can be accepted (each accepted one
 * counts in n_owed until it completes): completing never allocates, so a
 * callback never runs in the middle of a walk of the pending table or the
 * groups (eng_complete).
 */
static int op_group(struct engine *e, uint64_t group_id, struct group **gp)
{
	*gp = NULL;
	if (e->failed)
		return ENGINE_ERR_FAILED;
	if (e->stopping)
		return ENGINE_ERR_STOPPED;
	if (e->in_round)
		return eng_err(e, ENGINE_ERR_INVALID, "client operation inside a round");
	*gp = eng_group(e, group_id);
	if (*gp == NULL)
		return ENGINE_ERR_NO_GROUP;
	if ((*gp)->state == GS_FAILED)
		return ENGINE_ERR_SM;
	if ((*gp)->state != GS_ACTIVE)
		return ENGINE_ERR_BUSY; /* recovering a snapshot: try again later */
	return eng_reserve(e, (void **)&e->done, &e->cap_done, e->n_done + e->n_owed + 1,
	                   sizeof(*e->done));
}

/* The next proposal or read key: never 0, which marks a free slot of the
 * pending table (the keys begin at a random point: engine_create). */
static uint64_t next_key(struct engine *e)
{
	if (++e->series == 0)
		++e->series;
	return e->series;
}

int engine_propose(struct engine *e, uint64_t group_id, const void *data, uint32_t len,
                   engine_done_cb cb, void *ctx)
{
	struct pending p;
	struct group *g;
	raft_index idx = 0;
	int rc;

	rc = op_group(e, group_id, &g);
	if (rc != ENGINE_OK)
		return rc;
	if ((len > 0 && data == NULL) || len > UINT32_MAX - ENGINE_HEADER_BYTES)
		return ENGINE_ERR_INVALID;
	if (len > e->cfg.max_entry_bytes)
		return ENGINE_ERR_TOO_BIG;
	if (raft_role(g->r) != RAFT_LEADER && !e->cfg.forward_proposals)
		return raft_leader(g->r) != 0 ? ENGINE_ERR_NOT_LEADER : ENGINE_ERR_DROPPED;
	if (e->st.busy != NULL && e->st.busy(e->st.ctx, group_id))
		return ENGINE_ERR_BUSY; /* the LogDB shard nears a write stall */
	rc = eng_reserve(e, (void **)&e->scratch, &e->cap_scratch, len + ENGINE_HEADER_BYTES, 1);
	if (rc != ENGINE_OK)
		return rc;
	memset(&p, 0, sizeof(p));
	p.key = next_key(e);
	eng_put64(e->scratch, e->client_id);
	eng_put64(e->scratch + 8, p.key);
	if (len > 0)
		memcpy(e->scratch + ENGINE_HEADER_BYTES, data, len);
	/* Reserve the slot first so that no completion can be lost to ENOMEM. */
	rc = eng_pending_reserve(&e->pend, e->a, 1);
	if (rc != ENGINE_OK)
		return rc;
	rc = eng_raft_rc(e, g, raft_propose(g->r, e->scratch, len + ENGINE_HEADER_BYTES, &idx),
	                 "a proposal");
	if (rc != ENGINE_OK)
		return rc == ENGINE_ERR_REJECTED ? ENGINE_ERR_NOT_LEADER : rc;
	p.group_id = group_id;
	p.kind = PK_PROPOSAL;
	p.index = idx;
	p.term = idx != 0 ? raft_term_of(g->r) : 0;
	p.deadline = e->now + e->cfg.request_timeout_ticks;
	p.cb = cb;
	p.ctx = ctx;
	eng_pending_put(&e->pend, e->a, &p); /* cannot fail: room reserved above */
	e->n_owed++;
	g->n_pending++;
	g->stats.proposals++;
	eng_mark(e, g);
	return ENGINE_OK;
}

/*
 * Ask g's core for read p's index (p's key is the request's context).  A
 * core that knows no leader to ask (a candidate, a follower whose leader is
 * gone or not heard of yet) refuses: the read waits, not asked, for the
 * core's next change of role, term or leader (eng_reask_reads), or its
 * deadline.  Else ENGINE_OK, or the core's refusal: nothing was asked.
 */
static int ask_read(struct engine *e, struct group *g, struct pending *p)
{
	int rc = eng_raft_rc(e, g, raft_read_index(g->r, p->key), "a read index request");

	p->resets = raft_resets(g->r);
	p->unasked = rc == ENGINE_ERR_DROPPED; /* (RAFT_ERR_NO_LEADER) */
	return p->unasked ? ENGINE_OK : rc;
}

int engine_read_index(struct engine *e, uint64_t group_id, engine_done_cb cb, void *ctx)
{
	struct pending p;
	struct group *g;
	int rc;

	rc = op_group(e, group_id, &g);
	if (rc != ENGINE_OK)
		return rc;
	memset(&p, 0, sizeof(p));
	p.key = next_key(e);
	p.group_id = group_id;
	p.kind = PK_READ;
	p.term = raft_term_of(g->r);
	p.deadline = e->now + e->cfg.request_timeout_ticks;
	p.cb = cb;
	p.ctx = ctx;
	/* Room first, so that a read the core took always finds its slot. */
	rc = eng_pending_reserve(&e->pend, e->a, 1);
	if (rc != ENGINE_OK)
		return rc;
	rc = ask_read(e, g, &p);
	if (rc != ENGINE_OK)
		return rc;
	eng_pending_put(&e->pend, e->a, &p); /* cannot fail: room reserved above */
	e->n_owed++;
	g->n_pending++;
	eng_mark(e, g);
	return ENGINE_OK;
}

static int conf_change(struct engine *e, uint64_t group_id, uint32_t type, raft_id node_id,
                       const char *addr, engine_done_cb cb, void *ctx)
{
	struct raft_conf_change cc;
	uint8_t context[ENG_CC_CONTEXT_MAX];
	struct group *g;
	raft_index idx = 0;
	int rc;

	rc = op_group(e, group_id, &g);
	if (rc != ENGINE_OK)
		return rc;
	if (node_id == 0 || (addr != NULL && strlen(addr) >= ENGINE_ADDR_MAX))
		return ENGINE_ERR_INVALID;
	if (g->cc.w.active)
		return ENGINE_ERR_PENDING;
	if (raft_role(g->r) != RAFT_LEADER)
		return raft_leader(g->r) != 0 ? ENGINE_ERR_NOT_LEADER : ENGINE_ERR_DROPPED;
	memset(&cc, 0, sizeof(cc));
	cc.type = type;
	cc.node_id = node_id;
	if (addr != NULL && addr[0] != '\0') {
		/* Stamped as given now: a correction given later wins wherever and
		 * whenever the change is applied (user28). */
		cc.context = context;
		cc.context_len = (uint32_t)eng_cc_context(context, addr, engine_address_stamp(e));
	}
	rc = eng_raft_rc(e, g, raft_propose_conf_change(g->r, &cc, &idx), "a membership change");
	if (rc != ENGINE_OK)
		return rc;
	e->n_owed++;
	g->cc = (struct pending_cc){.w = {true, cb, ctx},
	                            .index = idx,
	                            .term = raft_term_of(g->r),
	                            .deadline = e->now + e->cfg.request_timeout_ticks,
	                            .own_removal =
	                                    type == RAFT_CC_REMOVE && node_id == e->cfg.node_id};
	eng_mark(e, g);
	return ENGINE_OK;
}

int engine_add_member(struct engine *e, uint64_t group_id, raft_id node_id, const char *addr,
                      engine_done_cb cb, void *ctx)
{
	return conf_change(e, group_id, RAFT_CC_ADD_VOTER, node_id, addr, cb, ctx);
}

int engine_add_nonvoter(struct engine *e, uint64_t group_id, raft_id node_id, const char *addr,
                        engine_done_cb cb, void *ctx)
{
	return conf_change(e, group_id, RAFT_CC_ADD_NONVOTER, node_id, addr, cb, ctx);
}

int engine_remove_member(struct engine *e, uint64_t group_id, raft_id node_id, engine_done_cb cb,
                         void *ctx)
{
	return conf_change(e, group_id, RAFT_CC_REMOVE, node_id, NULL, cb, ctx);
}

int engine_transfer_leader(struct engine *e, uint64_t group_id, raft_id target, engine_done_cb cb,
                           void *ctx)
{
	struct group *g;
	int rc;

	rc = op_group(e, group_id, &g);
	if (rc != ENGINE_OK)
		return rc;
	if (target == 0)
		return ENGINE_ERR_INVALID;
	if (g->transfer.w.active)
		return ENGINE_ERR_PENDING;
	if (raft_leader(g->r) == target) {
		e->n_owed++;
		eng_complete(e, cb, ctx, ENGINE_OK, group_id, 0, target);
		return ENGINE_OK;
	}
	rc = eng_raft_rc(e, g, raft_transfer_leader(g->r, target), "a leadership transfer");
	if (rc != ENGINE_OK)
		return rc;
	e->n_owed++;
	g->transfer = (struct pending_transfer){.w = {true, cb, ctx},
	                                        .target = target,
	                                        .deadline = e->now + 2 * e->cfg.election_rtt + 2};
	eng_mark(e, g);
	return ENGINE_OK;
}

int engine_request_snapshot(struct engine *e, uint64_t group_id, engine_done_cb cb, void *ctx)
{
	struct group *g;
	int rc;

	rc = op_group(e, group_id, &g);
	if (rc != ENGINE_OK)
		return rc;
	if (g->snapreq.w.active)
		return ENGINE_ERR_PENDING;
	e->n_owed++;
	g->snapreq = (struct pending_snapshot){.w = {true, cb, ctx},
	                                       .deadline = e->now + e->cfg.request_timeout_ticks};
	eng_mark(e, g);
	return ENGINE_OK;
}

/* ---- trackers, leadership changes and timeouts ---- */

void eng_waiter_done(struct engine *e, struct group *g, struct waiter *w, int rc, raft_index index)
{
	struct waiter op = *w;

	if (!op.active)
		return;
	memset(w, 0, sizeof(*w));
	eng_complete(e, op.cb, op.ctx, rc, g->id, index,
	             rc == ENGINE_ERR_NOT_LEADER ? g->leader : 0);
}

void eng_cc_applied(struct engine *e, struct group *g, const struct raft_entry *ents, uint32_t n)
{
	if (!g->cc.w.active || g->cc.index == 0 || g->cc.index > g->applied)
		return;
	/* Ours if the entry at its index has the term it was appended in. */
	for (uint32_t i = 0; i < n; i++)
		if (ents[i].index == g->cc.index && ents[i].type == RAFT_ENTRY_CONF_CHANGE &&
		    ents[i].term == g->cc.term) {
			eng_waiter_done(e, g, &g->cc.w, ENGINE_OK, g->cc.index);
			return;
		}
	eng_waiter_done(e, g, &g->cc.w, ENGINE_ERR_DROPPED, g->cc.index);
}

void eng_end_unconfirmed_reads(struct engine *e, struct group *g, int rc)
{
	for (size_t i = 0; i < e->pend.cap && g->n_pending > 0; i++) {
		struct pending *p = &e->pend.slots[i], op;

		/* (a read whose index is known waits for its apply: still valid) */
		if (p->key == 0 || p->group_id != g->id || p->kind != PK_READ || p->index != 0)
			continue;
		eng_pending_del(&e->pend, p, &op);
		g->n_pending--;
		i--; /* backward shift may have moved another entry here */
		eng_complete(e, op.cb, op.ctx, rc, g->id, 0, 0);
	}
}

/*
 * Reads still without an index that the core no longer holds.  The core
 * forgets its queue of requests when its role or term changes
 * (raft_ri_reset), this leader's own and those followers forwarded, and
 * answers none of them; a follower's forward went to a leader that is no
 * longer (or, refused as a stale forward, never was) confirming it; a
 * pre-candidate drops its leader's answers.  Nothing was read: each is asked
 * again, of the leader the core knows now, as is one the core did not take
 * for want of a leader.  That is linearizable still: a leader confirms an
 * index at least its commit index when it is asked, so at least the commit
 * index of any write that completed before the read began.  They wait so
 * until their deadline (eng_expire), not the caller: a change of leader
 * fails no read that a leader answers in time.  One asked since the core
 * moved, before this round saw it, went to the new leader and stays
 * (test_read_asked_before_round_sees_leader).
 */
void eng_reask_reads(struct engine *e, struct group *g)
{
	uint64_t resets = raft_resets(g->r);

	for (size_t i = 0; i < e->pend.cap && g->n_pending > 0; i++) {
		struct pending *p = &e->pend.slots[i], op;
		int rc;

		if (p->key == 0 || p->group_id != g->id || p->kind != PK_READ || p->index != 0 ||
		    (!p->unasked && p->resets == resets))
			continue;
		rc = ask_read(e, g, p);
		if (e->failed || g->state == GS_FAILED)
			return; /* (its pending operations completed with the failure) */
		if (rc == ENGINE_OK)
			continue;
		eng_pending_del(&e->pend, p, &op); /* (no memory for the request) */
		g->n_pending--;
		i--; /* backward shift may have moved another entry here */
		eng_complete(e, op.cb, op.ctx, rc, g->id, 0, 0);
	}
}

void eng_leader_changed(struct engine *e, struct group *g)
{
	raft_index commit = raft_commit_index(g->r);
	bool leader = raft_role(g->r) == RAFT_LEADER;

	for (size_t i = 0; i < e->pend.cap && g->n_pending > 0; i++) {
		struct pending *p = &e->pend.slots[i], op;

		if (p->key == 0 || p->group_id != g->id || p->kind != PK_PROPOSAL)
			continue;
		/* Committed already: its fate is known, apply will tell. */
		if (p->index != 0 && p->index <= commit) {
			if (p->index > g->check_upto)
				g->check_upto = p->index;
			continue;
		}
		/* Our own term's entries are still ours while we lead. */
		if (leader && p->index != 0 && p->term == raft_term_of(g->r))
			continue;
		g->stats.unknown_outcomes++;
		eng_pending_del(&e->pend, p, &op);
		g->n_pending--;
		i--;
		eng_complete(e, op.cb, op.ctx, ENGINE_ERR_UNKNOWN, g->id, op.index, 0);
	}
	eng_reask_reads(e, g);
	/*
	 * A change not committed is no longer ours once we stop leading its term.
	 * Except our own removal: a leader of two voters hands over instead of
	 * committing it (raft.h, raft_apply_conf_change), and the next leader
	 * commits it; it waits for its apply here (eng_cc_applied: ours if the
	 * entry there has its term, dropped otherwise) or its deadline.
	 */
	if (g->cc.w.active && g->cc.index > commit &&
	    !(leader && g->cc.term == raft_term_of(g->r)) && !g->cc.own_removal)
		eng_waiter_done(e, g, &g->cc.w, ENGINE_ERR_UNKNOWN, g->cc.index);
	if (g->transfer.w.active && raft_leader(g->r) == g->transfer.target)
		eng_waiter_done(e, g, &g->transfer.w, ENGINE_OK, 0);
}

void eng_fail_group(struct engine *e, struct group *g, int rc)
{
	for (size_t i = 0; i < e->pend.cap && g->n_pending > 0; i++) {
		struct pending *p = &e->pend.slots[i], op;

		if (p->key == 0 || p->group_id != g->id)
			continue;
		eng_pending_del(&e->pend, p, &op);
		g->n_pending--;
		i--; /* backward shift may have moved another entry here */
		eng_complete(e, op.cb, op.ctx, rc, g->id, 0, 0);
	}
	g->n_reads = 0;
	eng_waiter_done(e, g, &g->cc.w, rc, 0);
	eng_waiter_done(e, g, &g->transfer.w, rc, 0);
	eng_waiter_done(e, g, &g->snapreq.w, rc, 0);
}

void eng_expire(struct engine *e)
{
	for (size_t i = 0; i < e->pend.cap && e->pend.n > 0; i++) {
		struct pending *p = &e->pend.slots[i], op;
		struct group *g;

		if (p->key == 0 || p->deadline > e->now)
			continue;
		/*
		 * A committed proposal is about to be applied: let it finish; but
		 * while the state machine holds the group's entries back
		 * (apply_busy: an entry before it fails there, say), it completes
		 * now, committed, so that its caller need not wait for that.  A
		 * leader never abandons a proposal of its own term (DESIGN 4):
		 * it commits, or CheckQuorum makes the leader step down and the
		 * outcome becomes unknown.
		 */
		g = eng_group(e, p->group_id);
		if (g != NULL && p->kind == PK_PROPOSAL && p->index != 0 &&
		    p->index <= raft_commit_index(g->r)) {
			raft_term t;

			if (!g->apply_held || raft_term_at(g->r, p->index, &t) != RAFT_OK ||
			    t != p->term)
				continue;
			eng_pending_del(&e->pend, p, &op);
			g->n_pending--;
			i--;
			eng_complete(e, op.cb, op.ctx, ENGINE_OK, op.group_id, op.index, 0);
			continue;
		}
		if (g != NULL && p->kind == PK_PROPOSAL && p->index != 0 &&
		    raft_role(g->r) == RAFT_LEADER && p->term == raft_term_of(g->r))
			continue;
		/* A read whose index is known waits until this node applied it; but
		 * while the state machine holds the group's entries back it may
		 * never be: it completes at its deadline with that index, and its
		 * caller waits for the state machine itself (which knows whether
		 * its apply fails).  Else a read pending for as long left its caller
		 * deaf to that failure (review 24, TAP 081). */
		if (g != NULL && p->kind == PK_READ && p->index != 0) {
			if (!g->apply_held)
				continue;
			eng_pending_del(&e->pend, p, &op);
			g->n_pending--;
			i--;
			eng_complete(e, op.cb, op.ctx, ENGINE_OK, op.group_id, op.index, 0);
			continue;
		}
		/* A read that waited for a leader to ask is dropped (no leader: nothing
		 * was read); one a leader did not answer in time timed out. */
		eng_pending_del(&e->pend, p, &op);
		if (g != NULL)
			g->n_pending--;
		i--;
		eng_complete(e, op.cb, op.ctx, op.unasked ? ENGINE_ERR_DROPPED : ENGINE_ERR_TIMEOUT,
		             op.group_id, op.index, 0);
	}
	for (size_t i = 0; i < e->n_groups; i++) {
		struct group *g = e->groups[i];

		/* (committed, it applies here only once the state machine takes
		 * the group's entries again: maybe never, review 24) */
		if (g->cc.w.active && g->cc.deadline <= e->now &&
		    (g->cc.index > raft_commit_index(g->r) || g->apply_held))
			eng_waiter_done(e, g, &g->cc.w, ENGINE_ERR_TIMEOUT, g->cc.index);
		if (g->transfer.w.active && g->transfer.deadline <= e->now)
			eng_waiter_done(e, g, &g->transfer.w, ENGINE_ERR_TIMEOUT, 0);
		/* (it waits for the state machine's durable index to reach the
		 * membership it records: maybe never, if its apply is stuck) */
		if (g->snapreq.w.active && g->snapreq.deadline <= e->now)
			eng_waiter_done(e, g, &g->snapreq.w, ENGINE_ERR_TIMEOUT, 0);
	}
}
