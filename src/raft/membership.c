/*
 * membership.c - single-server membership changes (thesis 4.1): add a voter,
 * add a non-voting member, promote a non-voter, remove a member.
 *
 * A change takes effect when the caller applies its committed entry
 * (raft_apply_conf_change), as in etcd.  Safety with one change at a time:
 * the leader refuses a new change while an earlier one is not applied
 * (pending_conf_index > applied), and a replica does not campaign while a
 * committed change is unapplied, so two majorities of consecutive
 * configurations always overlap (thesis 4.1).
 */
#include <stdio.h>
#include <string.h>

#include "raft/raft_int.h"

#define CC_VERSION 1
#define CC_HEADER  14 /* version, type, node id (8), context length (4) */

static void put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_u64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

size_t raft_conf_change_encode(const struct raft_conf_change *cc, uint8_t *buf, size_t cap)
{
	size_t need = CC_HEADER + (size_t)cc->context_len;

	if (buf == NULL || cap < need)
		return need;
	buf[0] = CC_VERSION;
	buf[1] = (uint8_t)cc->type;
	put_u64(buf + 2, cc->node_id);
	for (int i = 0; i < 4; i++)
		buf[10 + i] = (uint8_t)(cc->context_len >> (8 * i));
	if (cc->context_len > 0)
		memcpy(buf + CC_HEADER, cc->context, cc->context_len);
	return need;
}

int raft_conf_change_decode(const uint8_t *buf, size_t len, struct raft_conf_change *cc)
{
	uint32_t clen = 0;

	if (buf == NULL || len < CC_HEADER || buf[0] != CC_VERSION || buf[1] > RAFT_CC_REMOVE)
		return RAFT_ERR_INVALID;
	for (int i = 3; i >= 0; i--)
		clen = (clen << 8) | buf[10 + i];
	if (len - CC_HEADER != clen)
		return RAFT_ERR_INVALID;
	cc->type = buf[1];
	cc->node_id = get_u64(buf + 2);
	if (cc->node_id == 0)
		return RAFT_ERR_INVALID;
	cc->context_len = clen;
	cc->context = clen > 0 ? buf + CC_HEADER : NULL;
	return RAFT_OK;
}

/* Position of id in ids, or -1. */
static int find(const raft_id *ids, uint32_t n, raft_id id)
{
	for (uint32_t i = 0; i < n; i++)
		if (ids[i] == id)
			return (int)i;
	return -1;
}

bool raft_memb_valid(const struct raft_membership *m)
{
	if (m->n_voters > RAFT_MAX_MEMBERS || m->n_nonvoters > RAFT_MAX_MEMBERS ||
	    m->n_voters + m->n_nonvoters > RAFT_MAX_MEMBERS || m->n_removed > RAFT_MAX_REMOVED)
		return false;
	for (uint32_t i = 0; i < m->n_voters + m->n_nonvoters; i++) {
		raft_id id = i < m->n_voters ? m->voters[i] : m->nonvoters[i - m->n_voters];

		if (id == 0 || find(m->removed, m->n_removed, id) >= 0)
			return false;
		if (find(m->voters, i < m->n_voters ? i : m->n_voters, id) >= 0)
			return false;
		if (i > m->n_voters && find(m->nonvoters, i - m->n_voters, id) >= 0)
			return false;
	}
	return true;
}

int raft_memb_validate(struct raft *r, const struct raft_conf_change *cc)
{
	const struct raft_membership *c = &r->conf;
	bool voter = find(c->voters, c->n_voters, cc->node_id) >= 0;
	bool nonvoter = find(c->nonvoters, c->n_nonvoters, cc->node_id) >= 0;
	bool full = c->n_voters + c->n_nonvoters >= RAFT_MAX_MEMBERS;

	if (cc->node_id == 0 || cc->type > RAFT_CC_REMOVE)
		return RAFT_ERR_INVALID;
	if (raft_is_removed(r, cc->node_id))
		return RAFT_ERR_REMOVED;
	switch (cc->type) {
	case RAFT_CC_ADD_VOTER:
		if (voter || (full && !nonvoter))
			return RAFT_ERR_INVALID;
		return RAFT_OK;
	case RAFT_CC_ADD_NONVOTER:
		if (voter || nonvoter || full)
			return RAFT_ERR_INVALID;
		return RAFT_OK;
	default:
		if (!voter && !nonvoter)
			return RAFT_ERR_INVALID;
		if (voter && c->n_voters == 1)
			return RAFT_ERR_INVALID; /* a group keeps at least one voter */
		/* Removed ids are remembered forever; refuse rather than forget one. */
		if (c->n_removed >= RAFT_MAX_REMOVED) {
			snprintf(r->errmsg, sizeof(r->errmsg),
			         "group has removed %u members, the most it can remember",
			         (unsigned)RAFT_MAX_REMOVED);
			return RAFT_ERR_INVALID;
		}
		return RAFT_OK;
	}
}

/* Remove id from ids. */
static void drop(raft_id *ids, uint32_t *n, raft_id id)
{
	int at = find(ids, *n, id);

	if (at < 0)
		return;
	memmove(ids + at, ids + at + 1, (*n - (uint32_t)at - 1) * sizeof(*ids));
	(*n)--;
}

void raft_memb_change(struct raft_membership *c, const struct raft_conf_change *cc)
{
	bool member = find(c->voters, c->n_voters, cc->node_id) >= 0 ||
	              find(c->nonvoters, c->n_nonvoters, cc->node_id) >= 0;

	switch (cc->type) {
	case RAFT_CC_ADD_VOTER:
		if (find(c->voters, c->n_voters, cc->node_id) >= 0)
			break;
		drop(c->nonvoters, &c->n_nonvoters, cc->node_id);
		if (c->n_voters + c->n_nonvoters < RAFT_MAX_MEMBERS)
			c->voters[c->n_voters++] = cc->node_id;
		break;
	case RAFT_CC_ADD_NONVOTER:
		if (!member && c->n_voters + c->n_nonvoters < RAFT_MAX_MEMBERS)
			c->nonvoters[c->n_nonvoters++] = cc->node_id;
		break;
	default:
		drop(c->voters, &c->n_voters, cc->node_id);
		drop(c->nonvoters, &c->n_nonvoters, cc->node_id);
		/* A removed id is never accepted again (validate keeps room). */
		if (c->n_removed < RAFT_MAX_REMOVED)
			c->removed[c->n_removed++] = cc->node_id;
		break;
	}
}

/* The voter with the highest match, other than us (0 if none). */
static raft_id best_successor(struct raft *r)
{
	raft_id best = 0;
	raft_index m = 0;

	for (uint32_t i = 0; i < r->n_prs; i++) {
		const struct progress *pr = &r->prs[i];

		if (pr->voter && pr->id != r->id && (best == 0 || pr->match > m)) {
			best = pr->id;
			m = pr->match;
		}
	}
	return best;
}

int raft_memb_apply(struct raft *r, const struct raft_conf_change *cc, raft_index index)
{
	struct raft_membership c = r->conf;
	raft_id bye = 0;
	raft_index bye_commit = 0;
	int rc;

	raft_memb_change(&c, cc);
	c.config_index = index;
	/*
	 * A leader that removes the other of two voters tells it that the removal
	 * committed, at the next Ready (a heartbeat: its progress goes now, and it
	 * hears nothing from us after): that voter's own removal by the leader of
	 * two handed over to us (replication.c cap_self_removal), and without
	 * this it would often never learn it was removed (its request to remove
	 * itself would never complete).  The commit index is durable here
	 * (applied), and within its match, so it holds those entries.
	 */
	if (r->role == RAFT_LEADER && cc->type == RAFT_CC_REMOVE && cc->node_id != r->id &&
	    r->conf.n_voters == 2 && raft_is_voter(r, cc->node_id)) {
		const struct progress *pr = raft_pr(r, cc->node_id);

		bye = cc->node_id;
		bye_commit = pr->match < index ? pr->match : index;
	}
	/* All or nothing: on failure the configuration is as before and a retry applies it. */
	rc = raft_pr_sync_conf(r, &c);
	if (rc != RAFT_OK)
		return rc;
	if (bye != 0) {
		r->bye_to = bye;
		r->bye_commit = bye_commit;
	}
	if (r->role != RAFT_LEADER)
		return RAFT_OK;
	if (r->transferee != 0 && !raft_is_voter(r, r->transferee))
		raft_xfer_abort(r);
	if (raft_pr(r, r->id) == NULL) {
		/* The leader removed itself (of three or more voters: a leader of two
		 * never commits its own removal, replication.c cap_self_removal): step
		 * down and hand over quickly. */
		raft_id next = best_successor(r);

		raft_become_follower(r, r->term, 0);
		r->handoff_to = next;
		return RAFT_OK;
	}
	/*
	 * The quorum changed: commit may advance and new members need appends.
	 * Both happen at the next Ready (this runs while one is out).
	 */
	r->pending_bcast = true;
	return RAFT_OK;
}

int raft_apply_conf_change(struct raft *r, const struct raft_entry *e, struct raft_membership *out)
{
	struct raft_conf_change cc;
	int rc;

	if (r->fatal != 0)
		return r->fatal;
	if (e == NULL || e->type != RAFT_ENTRY_CONF_CHANGE)
		return RAFT_ERR_INVALID;
	rc = raft_conf_change_decode(e->data, e->len, &cc);
	if (rc != RAFT_OK)
		return rc;
	/* Already part of the configuration (replay after restart), or not valid
	 * any more: every replica decides the same, so it is a no-op. */
	if (e->index > r->conf.config_index && raft_memb_validate(r, &cc) == RAFT_OK) {
		rc = raft_memb_apply(r, &cc, e->index);
		if (rc != RAFT_OK)
			return raft_done(r, rc);
	}
	if (out != NULL)
		*out = r->conf;
	return raft_done(r, RAFT_OK);
}

int raft_propose_conf_change(struct raft *r, const struct raft_conf_change *cc, raft_index *index)
{
	uint8_t small[128], *buf = small;
	struct raft_entry e;
	size_t need;
	int rc;

	if (index != NULL)
		*index = 0;
	rc = raft_begin_input(r);
	if (rc != RAFT_OK)
		return rc;
	if (cc == NULL || (cc->context_len > 0 && cc->context == NULL))
		return RAFT_ERR_INVALID;
	if (r->role != RAFT_LEADER && (r->role != RAFT_FOLLOWER || r->lead == 0))
		return RAFT_ERR_NO_LEADER;
	need = raft_conf_change_encode(cc, NULL, 0);
	if (need > sizeof(small)) {
		buf = r->a->malloc(need);
		if (buf == NULL)
			return RAFT_ERR_NOMEM;
	}
	raft_conf_change_encode(cc, buf, need);
	memset(&e, 0, sizeof(e));
	e.type = RAFT_ENTRY_CONF_CHANGE;
	e.len = (uint32_t)need;
	e.data = buf;
	rc = raft_repl_propose(r, &e, 1, r->role == RAFT_LEADER ? index : NULL);
	if (buf != small)
		r->a->free(buf);
	return raft_done(r, rc);
}

bool raft_membership_contains(const struct raft_membership *m, raft_id id)
{
	return find(m->voters, m->n_voters, id) >= 0 || find(m->nonvoters, m->n_nonvoters, id) >= 0;
}
