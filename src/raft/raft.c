/*
 * raft.c - creating a replica, dispatching input (tick, step, propose, ...),
 * the error plumbing and the accessors.  The Ready record is in ready.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raft/raft_int.h"

static const struct raft_alloc libc_alloc = {malloc, realloc, free};

const char *raft_strerror(int rc)
{
	switch (rc) {
	case RAFT_OK:
		return "ok";
	case RAFT_ERR_NOMEM:
		return "out of memory";
	case RAFT_ERR_NOT_LEADER:
		return "not the leader";
	case RAFT_ERR_NO_LEADER:
		return "no known leader";
	case RAFT_ERR_TOO_MANY_UNCOMMITTED:
		return "too many uncommitted bytes";
	case RAFT_ERR_CONF_CHANGE_PENDING:
		return "a membership change is pending";
	case RAFT_ERR_TRANSFER_IN_PROGRESS:
		return "leadership transfer in progress";
	case RAFT_ERR_INVALID:
		return "invalid argument";
	case RAFT_ERR_REMOVED:
		return "node id was removed from the group";
	case RAFT_ERR_COMPACTED:
		return "index compacted";
	case RAFT_ERR_UNAVAILABLE:
		return "index unavailable";
	case RAFT_ERR_STORAGE:
		return "storage failure";
	case RAFT_ERR_TOO_BIG:
		return "entry too big";
	case RAFT_ERR_BUG:
		return "internal error (impossible state)";
	default:
		return "unknown error";
	}
}

/* ---- plumbing ---- */

#ifdef RAFT_DEBUG
void raft_abort(const char *cond, const char *file, int line)
{
	fprintf(stderr, "raft: impossible state: %s (%s:%d)\n", cond, file, line);
	abort();
}
#else
void raft_bug(struct raft *r, const char *cond, const char *file, int line)
{
	if (r->fatal != 0)
		return;
	r->fatal = RAFT_ERR_BUG;
	snprintf(r->errmsg, sizeof(r->errmsg), "impossible state: %s (%s:%d)", cond, file, line);
}
#endif

int raft_done(struct raft *r, int rc)
{
	if (r->fatal == 0 && r->log.failed != 0) {
		r->fatal = RAFT_ERR_STORAGE;
		snprintf(r->errmsg, sizeof(r->errmsg), "storage read failed at index %llu: %s",
		         (unsigned long long)r->log.failed_at, raft_strerror(r->log.failed));
	}
	if (r->fatal != 0)
		return r->fatal;
	raft_check_invariants(r);
	return rc;
}

/* Before a local input: a stopped replica or an outstanding Ready refuses it; a quiescent one
 * wakes. */
int raft_begin_input(struct raft *r)
{
	if (r->fatal != 0)
		return r->fatal;
	if (r->in_ready)
		return RAFT_ERR_INVALID;
	raft_quiesce_wake(r);
	return RAFT_OK;
}

int raft_grow(struct raft *r, void **p, uint32_t *cap, uint32_t need, size_t elsz)
{
	uint32_t ncap;
	void *np;

	if (need <= *cap)
		return RAFT_OK;
	ncap = *cap ? *cap : 16;
	while (ncap < need)
		ncap *= 2;
	np = r->a->realloc(*p, (size_t)ncap * elsz);
	if (np == NULL)
		return RAFT_ERR_NOMEM;
	*p = np;
	*cap = ncap;
	return RAFT_OK;
}

struct raft_message *raft_send(struct raft *r, raft_id to, uint32_t type)
{
	struct raft_message *m;
	uint32_t cap = r->cap_msgs;

	/* Everything queued goes out with the next Ready, never the one handed out. */
	RAFT_ASSERT_RET(r, !r->in_ready, NULL);
	if (r->n_msgs == cap) {
		if (raft_grow(r, (void **)&r->msgs, &cap, r->n_msgs + 1, sizeof(*r->msgs)))
			return NULL;
		cap = r->cap_msgs;
		if (raft_grow(r, (void **)&r->msg_eoff, &cap, r->n_msgs + 1, sizeof(uint32_t)))
			return NULL;
		cap = r->cap_msgs;
		if (raft_grow(r, (void **)&r->msg_soff, &cap, r->n_msgs + 1, sizeof(uint32_t)))
			return NULL;
		r->cap_msgs = cap;
	}
	m = &r->msgs[r->n_msgs];
	memset(m, 0, sizeof(*m));
	r->msg_eoff[r->n_msgs] = UINT32_MAX;
	r->msg_soff[r->n_msgs] = UINT32_MAX;
	r->n_msgs++;
	m->type = type;
	m->group_id = r->cfg.group_id;
	m->from = r->id;
	m->to = to;
	/* Forwarded requests carry no term (like etcd's MsgProp / MsgReadIndex). */
	if (type != RAFT_MSG_PROPOSE && type != RAFT_MSG_READINDEX &&
	    type != RAFT_MSG_TRANSFER_LEADER)
		m->term = r->term;
	return m;
}

int raft_msg_attach_entries(struct raft *r, const struct raft_entry *e, uint32_t n)
{
	int rc;

	rc = raft_grow(r, (void **)&r->ments, &r->cap_ments, r->n_ments + n, sizeof(*r->ments));
	if (rc != RAFT_OK)
		return rc;
	memcpy(r->ments + r->n_ments, e, n * sizeof(*e));
	r->msg_eoff[r->n_msgs - 1] = r->n_ments;
	r->msgs[r->n_msgs - 1].n_entries = n;
	r->n_ments += n;
	return RAFT_OK;
}

int raft_msg_attach_snapshot(struct raft *r, const struct raft_snapshot_meta *meta)
{
	int rc;

	rc = raft_grow(r, (void **)&r->msnaps, &r->cap_msnaps, r->n_msnaps + 1, sizeof(*r->msnaps));
	if (rc != RAFT_OK)
		return rc;
	r->msnaps[r->n_msnaps] = *meta;
	r->msg_soff[r->n_msgs - 1] = r->n_msnaps;
	r->n_msnaps++;
	return RAFT_OK;
}

const uint8_t *raft_msg_copy_data(struct raft *r, const uint8_t *d, uint32_t len)
{
	return dr_arena_copy(&r->mdata, d, len);
}

struct progress *raft_pr(struct raft *r, raft_id id)
{
	for (uint32_t i = 0; i < r->n_prs; i++)
		if (r->prs[i].id == id)
			return &r->prs[i];
	return NULL;
}

bool raft_is_voter(const struct raft *r, raft_id id)
{
	for (uint32_t i = 0; i < r->conf.n_voters; i++)
		if (r->conf.voters[i] == id)
			return true;
	return false;
}

bool raft_is_removed(const struct raft *r, raft_id id)
{
	for (uint32_t i = 0; i < r->conf.n_removed; i++)
		if (r->conf.removed[i] == id)
			return true;
	return false;
}

uint32_t raft_quorum(const struct raft *r)
{
	return r->conf.n_voters / 2 + 1;
}

/* splitmix64: deterministic per seed and replica. */
static uint64_t next_rand(struct raft *r)
{
	uint64_t z = (r->rng += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

void raft_reset_randomized_timeout(struct raft *r)
{
	/* Paper 5.2: election timeouts are chosen randomly from a fixed interval. */
	r->randomized_timeout =
	        r->cfg.election_tick + (unsigned)(next_rand(r) % r->cfg.election_tick);
}

#ifdef RAFT_DEBUG
#define INV(cond)                                                                                  \
	do {                                                                                       \
		if (!(cond))                                                                       \
			raft_abort("invariant: " #cond, __FILE__, __LINE__);                       \
	} while (0)

void raft_check_invariants(struct raft *r)
{
	const struct raft_log *l = &r->log;
	raft_index last = raft_log_last(l);

	INV(l->applied <= l->committed && l->committed <= last);
	INV(!l->has_snap || l->offset == l->snap.index + 1);
	for (uint32_t i = 0; i < l->n; i++) {
		const struct raft_entry *e = &l->ents[i];

		INV(e->index == l->offset + i);
		INV(e->len == 0 || dr_arena_owns(&l->arena, e->data, e->len));
	}
	INV(r->n_prs == r->conf.n_voters + r->conf.n_nonvoters);
	INV(r->role != RAFT_LEADER || raft_pr(r, r->id) != NULL);
	INV(!r->quiesced || r->role == RAFT_LEADER || r->role == RAFT_FOLLOWER);
	for (uint32_t i = 0; i < r->n_prs; i++) {
		const struct progress *pr = &r->prs[i];

		INV(raft_membership_contains(&r->conf, pr->id));
		INV(pr->match < pr->next);
		INV(r->role != RAFT_LEADER || pr->match <= last);
		INV(pr->ifl.count <= pr->ifl.cap);
		INV(pr->state != PR_SNAPSHOT || pr->pending_snapshot != 0);
	}
	for (uint32_t i = 0; i < r->n_msgs; i++)
		INV(r->msg_eoff[i] == UINT32_MAX ||
		    r->msg_eoff[i] + r->msgs[i].n_entries <= r->n_ments);
}
#endif

/* ---- create / destroy ---- */

static int check_config(const struct raft_config *c)
{
	const struct raft_storage *s = &c->storage;

	if (c->id == 0 || c->heartbeat_tick == 0 || c->election_tick <= c->heartbeat_tick)
		return RAFT_ERR_INVALID;
	if (c->max_inflight_msgs == 0 || c->max_msg_bytes == 0)
		return RAFT_ERR_INVALID;
	if (!s->initial_state || !s->entries || !s->term || !s->first_index || !s->last_index ||
	    !s->snapshot)
		return RAFT_ERR_INVALID;
	return RAFT_OK;
}

/*
 * A new group's log starts with one committed conf change entry per member
 * (term 1, indexes 1..n, like etcd's bootstrap), so a member that joins later
 * and replays the log from index 1 learns the initial configuration.
 */
static int bootstrap_log(struct raft *r)
{
	struct raft_membership m = r->conf;
	uint32_t total = m.n_voters + m.n_nonvoters;
	uint8_t buf[32];
	int rc;

	for (uint32_t i = 0; i < total; i++) {
		struct raft_conf_change cc = {
		        i < m.n_voters ? RAFT_CC_ADD_VOTER : RAFT_CC_ADD_NONVOTER,
		        i < m.n_voters ? m.voters[i] : m.nonvoters[i - m.n_voters], 0, NULL};
		struct raft_entry e = {1, i + 1, RAFT_ENTRY_CONF_CHANGE, 0, buf};

		e.len = (uint32_t)raft_conf_change_encode(&cc, buf, sizeof(buf));
		rc = raft_log_append(r, &e, 1);
		if (rc != RAFT_OK)
			return rc;
	}
	r->term = 1;
	r->log.committed = total;
	r->conf.config_index = total;
	return RAFT_OK;
}

int raft_create(const struct raft_config *cfg, const struct raft_membership *bootstrap,
                struct raft **out)
{
	const struct raft_alloc *a = cfg->alloc ? cfg->alloc : &libc_alloc;
	struct raft_hard_state hs;
	struct raft *r;
	int rc;

	*out = NULL;
	rc = check_config(cfg);
	if (rc != RAFT_OK)
		return rc;
	r = a->malloc(sizeof(*r));
	if (r == NULL)
		return RAFT_ERR_NOMEM;
	memset(r, 0, sizeof(*r));
	r->cfg = *cfg;
	r->a = a;
	r->id = cfg->id;
	r->rng = cfg->seed ^ (cfg->id * 0x2545f4914f6cdd1dull);
	r->log.st = cfg->storage;
	dr_arena_init(&r->log.arena, a->malloc, a->free, RAFT_ARENA_BLOCK);
	dr_arena_init(&r->mdata, a->malloc, a->free, RAFT_ARENA_BLOCK);
#ifdef RAFT_DEBUG
	/* Data kept past its lifetime becomes a use-after-free that ASan reports. */
	r->log.arena.strict = r->mdata.strict = true;
#endif

	rc = cfg->storage.initial_state(cfg->storage.ctx, &hs, &r->conf);
	if (rc != RAFT_OK)
		goto err_after_alloc;
	rc = raft_log_init(r);
	if (rc != RAFT_OK)
		goto err_after_alloc;
	if (bootstrap == NULL && raft_log_last(&r->log) == 0 && hs.term == 0 && hs.vote == 0 &&
	    r->conf.n_voters > 0 && r->conf.config_index == 0) {
		/*
		 * Configured as an initial member but the bootstrap entries never
		 * became durable (crash before the first Ready was persisted):
		 * bootstrap again from the stored membership; the entries are the
		 * same on every initial member.
		 */
		bootstrap = &r->conf;
	}
	if (bootstrap != NULL) {
		/* A brand new group: the storage must be empty. */
		if (raft_log_last(&r->log) != 0 || hs.term != 0 || !raft_memb_valid(bootstrap) ||
		    bootstrap->n_voters == 0) {
			rc = RAFT_ERR_INVALID;
			goto err_after_alloc;
		}
		if (bootstrap != &r->conf)
			r->conf = *bootstrap;
	} else if (!raft_memb_valid(&r->conf)) {
		rc = RAFT_ERR_STORAGE;
		goto err_after_alloc;
	}
	if (hs.commit > raft_log_last(&r->log) || cfg->applied > raft_log_last(&r->log) ||
	    (cfg->applied + 1 < raft_log_first(&r->log) && cfg->applied < hs.commit)) {
		/* A log that lost entries it acknowledged must not take part. */
		rc = RAFT_ERR_STORAGE;
		goto err_after_alloc;
	}
	/* What was applied was committed; a commit index need not be durable. */
	if (hs.commit < cfg->applied)
		hs.commit = cfg->applied;
	r->term = hs.term;
	r->vote = hs.vote;
	r->log.committed = hs.commit;
	r->log.applied = cfg->applied;
	if (r->log.applied + 1 < raft_log_first(&r->log))
		r->log.applied = raft_log_first(&r->log) - 1;
	r->prev_hs = hs;
	if (bootstrap != NULL) {
		rc = bootstrap_log(r);
		if (rc != RAFT_OK)
			goto err_after_log;
	}
	rc = raft_pr_sync_conf(r, &r->conf);
	if (rc != RAFT_OK)
		goto err_after_log;
	raft_become_follower(r, r->term, 0);
	r->prev_ss.leader = 0;
	r->prev_ss.role = RAFT_FOLLOWER;
	*out = r;
	return RAFT_OK;

err_after_log:
	for (uint32_t i = 0; i < r->n_prs; i++)
		raft_pr_free(r, &r->prs[i]);
	raft_log_free(r);
err_after_alloc:
	a->free(r);
	return rc;
}

void raft_destroy(struct raft *r)
{
	const struct raft_alloc *a;

	if (r == NULL)
		return;
	a = r->a;
	for (uint32_t i = 0; i < r->n_prs; i++)
		raft_pr_free(r, &r->prs[i]);
	raft_log_free(r);
	dr_arena_free(&r->mdata);
	a->free(r->msgs);
	a->free(r->msg_eoff);
	a->free(r->msg_soff);
	a->free(r->ments);
	a->free(r->msnaps);
	a->free(r->cents);
	a->free(r->fetch);
	a->free(r->rs);
	a->free(r->rq);
	a->free(r);
}

/* ---- input ---- */

static int tick(struct raft *r)
{
	int rc;

	r->ticks++;
	r->election_elapsed++;
	if (r->role != RAFT_LEADER) {
		if (r->election_elapsed < r->randomized_timeout)
			return RAFT_OK;
		if (raft_promotable(r)) {
			r->election_elapsed = 0;
			return raft_do_campaign(r, r->cfg.pre_vote, false);
		}
		/* A non-voter with no leader: the leader may be quiescent (raft.h). */
		if (r->lead == 0 && r->cfg.quiesce_tick > 0) {
			r->election_elapsed = 0;
			return raft_quiesce_seek(r);
		}
		return RAFT_OK;
	}
	r->heartbeat_elapsed++;
	if (r->election_elapsed >= r->cfg.election_tick) {
		r->election_elapsed = 0;
		/* Thesis 6.2: a leader that cannot reach a quorum steps down. */
		if (r->cfg.check_quorum && !raft_pr_quorum_active(r)) {
			raft_become_follower(r, r->term, 0);
			return RAFT_OK;
		}
	}
	/* Thesis 3.10: abandon a transfer that did not finish in an election timeout. */
	if (r->transferee != 0 && ++r->transfer_elapsed >= r->cfg.election_tick)
		raft_xfer_abort(r);
	if (r->cfg.quiesce_tick > 0) {
		rc = raft_quiesce_tick(r);
		if (rc != RAFT_OK || r->quiesced)
			return rc;
	}
	if (r->heartbeat_elapsed >= r->cfg.heartbeat_tick) {
		r->heartbeat_elapsed = 0;
		/* A leader of two holding back its own removal whose hand-over was lost or
		 * timed out hands over again (replication.c cap_self_removal). */
		if (r->transferee == 0 && raft_pr_quorum_match(r) > r->log.committed &&
		    raft_repl_maybe_commit(r))
			r->pending_bcast = true;
		return raft_repl_bcast_heartbeat(r, r->read_seq);
	}
	return RAFT_OK;
}

int raft_tick(struct raft *r)
{
	if (r->fatal != 0)
		return r->fatal;
	if (r->in_ready)
		return RAFT_ERR_INVALID;
	if (r->quiesced)
		return RAFT_OK; /* no timer runs while quiescent */
	return raft_done(r, tick(r));
}

/* Refuse input with a reason kept in r->errmsg. */
static int refuse(struct raft *r, const char *why, const struct raft_message *m)
{
	snprintf(r->errmsg, sizeof(r->errmsg), "message type %u from %llu refused: %s", m->type,
	         (unsigned long long)m->from, why);
	return RAFT_ERR_INVALID;
}

/* Is this a request a follower forwards (they carry no term)? */
static bool forwarded(uint32_t type)
{
	return type == RAFT_MSG_PROPOSE || type == RAFT_MSG_READINDEX ||
	       type == RAFT_MSG_TRANSFER_LEADER;
}

/* Reject malformed input before it can touch any state. */
static int check_msg(struct raft *r, const struct raft_message *m)
{
	if (m->type == 0 || m->type > RAFT_MSG_TYPE_MAX)
		return refuse(r, "unknown type", m);
	if (m->from == 0 || m->from == r->id || m->to != r->id)
		return refuse(r, "bad sender or recipient", m);
	if (m->group_id != r->cfg.group_id)
		return refuse(r, "wrong group", m);
	if (forwarded(m->type) != (m->term == 0))
		return refuse(r, "bad term", m);
	if (m->n_entries > 0) {
		if (m->entries == NULL ||
		    (m->type != RAFT_MSG_APPEND && m->type != RAFT_MSG_PROPOSE))
			return refuse(r, "unexpected entries", m);
		for (uint32_t i = 0; i < m->n_entries; i++) {
			const struct raft_entry *e = &m->entries[i];

			if (e->type > RAFT_ENTRY_CONF_CHANGE || (e->len > 0 && e->data == NULL))
				return refuse(r, "bad entry", m);
			if (m->type == RAFT_MSG_APPEND &&
			    (e->index != m->index + 1 + i || e->term > m->term ||
			     (i == 0 ? e->term < m->log_term : e->term < e[-1].term)))
				return refuse(r, "entries out of order", m);
		}
	}
	if (m->type == RAFT_MSG_SNAPSHOT && (m->snapshot == NULL || m->snapshot->index == 0 ||
	                                     !raft_memb_valid(&m->snapshot->membership)))
		return refuse(r, "bad snapshot", m);
	return RAFT_OK;
}

/* Handle messages whose term is higher or lower than ours (paper 5.1). */
static int step_term(struct raft *r, const struct raft_message *m, bool *drop)
{
	*drop = false;
	if (m->term == 0 || m->term == r->term)
		return RAFT_OK;
	if (m->term > r->term) {
		if (m->type == RAFT_MSG_VOTE || m->type == RAFT_MSG_PREVOTE) {
			bool force = (m->flags & RAFT_MSG_FLAG_TRANSFER) != 0;
			bool in_lease = r->cfg.check_quorum && r->lead != 0 &&
			                r->election_elapsed < r->cfg.election_tick;

			/* Thesis 4.2.3: ignore votes while we hear from a current leader. */
			if (!force && in_lease) {
				*drop = true;
				return RAFT_OK;
			}
		}
		if (m->type == RAFT_MSG_PREVOTE)
			return RAFT_OK; /* a pre-vote never changes our term (thesis 9.6) */
		if (m->type == RAFT_MSG_PREVOTE_RESP && !m->reject)
			return RAFT_OK; /* counted at the future term */
		/* Paper 5.1: a higher term makes us a follower of that term. */
		if (m->type == RAFT_MSG_APPEND || m->type == RAFT_MSG_HEARTBEAT ||
		    m->type == RAFT_MSG_SNAPSHOT || m->type == RAFT_MSG_QUIESCE)
			raft_become_follower(r, m->term, m->from);
		else
			raft_become_follower(r, m->term, 0);
		return RAFT_OK;
	}
	/* Paper 5.1: a request with a stale term is rejected. */
	*drop = true;
	if ((r->cfg.check_quorum || r->cfg.pre_vote) &&
	    (m->type == RAFT_MSG_HEARTBEAT || m->type == RAFT_MSG_APPEND)) {
		/* Tell a stale leader about our term so it steps down. */
		if (raft_send(r, m->from, RAFT_MSG_APPEND_RESP) == NULL)
			return RAFT_ERR_NOMEM;
	} else if (m->type == RAFT_MSG_PREVOTE || m->type == RAFT_MSG_VOTE) {
		/*
		 * Paper Figure 2: RequestVote returns currentTerm, so a candidate
		 * of a stale term learns ours (else a candidate that cannot win
		 * and one that cannot hear about the higher term may never meet).
		 */
		struct raft_message *o = raft_send(
		        r, m->from,
		        m->type == RAFT_MSG_VOTE ? RAFT_MSG_VOTE_RESP : RAFT_MSG_PREVOTE_RESP);

		if (o == NULL)
			return RAFT_ERR_NOMEM;
		o->reject = true;
	}
	return RAFT_OK;
}

static int step_leader(struct raft *r, const struct raft_message *m)
{
	struct progress *pr = raft_pr(r, m->from);

	int rc;

	/*
	 * Forwarded requests that the leader refuses (limits, transfer, pending
	 * change, ...) are dropped: the message itself was fine, and the origin
	 * learns the outcome by not seeing its entry commit.
	 */
	switch (m->type) {
	case RAFT_MSG_PROPOSE:
		rc = raft_repl_propose(r, m->entries, m->n_entries, NULL);
		return rc == RAFT_ERR_NOMEM ? rc : RAFT_OK;
	case RAFT_MSG_READINDEX:
		rc = raft_ri_request(r, m->from, m->context);
		return rc == RAFT_ERR_NOMEM ? rc : RAFT_OK;
	case RAFT_MSG_TRANSFER_LEADER:
		if (pr == NULL || !pr->voter)
			return RAFT_OK;
		return raft_xfer_start(r, m->from);
	default:
		break;
	}
	if (pr == NULL)
		return RAFT_OK; /* not a member (any more) */
	pr->recent_active = true;
	switch (m->type) {
	case RAFT_MSG_APPEND_RESP:
		if (!m->reject && m->commit > pr->commit)
			pr->commit = m->commit;
		return raft_repl_handle_append_resp(r, m);
	case RAFT_MSG_HEARTBEAT_RESP:
		if (m->commit > pr->commit)
			pr->commit = m->commit;
		return raft_repl_handle_heartbeat_resp(r, m);
	default:
		return RAFT_OK;
	}
}

static int step_candidate(struct raft *r, const struct raft_message *m)
{
	uint32_t want = r->role == RAFT_PRECANDIDATE ? RAFT_MSG_PREVOTE_RESP : RAFT_MSG_VOTE_RESP;

	switch (m->type) {
	case RAFT_MSG_APPEND:
		raft_become_follower(r, m->term, m->from);
		return raft_repl_handle_append(r, m);
	case RAFT_MSG_HEARTBEAT:
		raft_become_follower(r, m->term, m->from);
		return raft_repl_handle_heartbeat(r, m);
	case RAFT_MSG_SNAPSHOT:
		raft_become_follower(r, m->term, m->from);
		return raft_snap_handle(r, m);
	case RAFT_MSG_QUIESCE:
		raft_become_follower(r, m->term, m->from);
		return raft_quiesce_follow(r, m);
	default:
		if (m->type == want)
			return raft_handle_vote_resp(r, m);
		return RAFT_OK;
	}
}

static int forward(struct raft *r, const struct raft_message *m)
{
	struct raft_message *o;

	if (r->lead == 0)
		return RAFT_ERR_NO_LEADER;
	o = raft_send(r, r->lead, m->type);
	if (o == NULL)
		return RAFT_ERR_NOMEM;
	o->context = m->context;
	o->from = m->from; /* keep the origin: the leader answers it directly */
	return RAFT_OK;
}

static int step_follower(struct raft *r, const struct raft_message *m)
{
	switch (m->type) {
	case RAFT_MSG_APPEND:
		r->election_elapsed = 0;
		r->lead = m->from;
		return raft_repl_handle_append(r, m);
	case RAFT_MSG_HEARTBEAT:
		r->election_elapsed = 0;
		r->lead = m->from;
		return raft_repl_handle_heartbeat(r, m);
	case RAFT_MSG_SNAPSHOT:
		r->election_elapsed = 0;
		r->lead = m->from;
		return raft_snap_handle(r, m);
	case RAFT_MSG_QUIESCE:
		r->lead = m->from;
		return raft_quiesce_follow(r, m);
	case RAFT_MSG_TIMEOUT_NOW:
		/* Thesis 3.10: the transferee campaigns at once, skipping pre-vote. */
		if (raft_promotable(r)) {
			int rc = raft_do_campaign(r, false, true);

			if (rc != RAFT_OK)
				return rc;
		}
		/* Then its commit index: it may commit the removal of its sender, a
		 * leader that then leaves (raft_learn_commit).  Taken first, it would
		 * keep a target that has not applied a committed membership change
		 * from campaigning, and the transfer would fail. */
		return raft_learn_commit(r, m);
	case RAFT_MSG_READINDEX_RESP:
		return raft_ri_handle_resp(r, m);
	case RAFT_MSG_PROPOSE:
	case RAFT_MSG_READINDEX:
		return RAFT_OK; /* a stale forward from when we were leader: the origin retries */
	default:
		return RAFT_OK;
	}
}

/*
 * Does m wake a quiescent replica?  Not QUIESCE; a heartbeat response only a
 * leader, and only one that asks to (not a late answer to its heartbeats).
 */
static bool wakes(const struct raft *r, const struct raft_message *m)
{
	if (m->type == RAFT_MSG_QUIESCE)
		return false;
	if (m->type == RAFT_MSG_HEARTBEAT_RESP)
		return r->role == RAFT_LEADER && (m->flags & RAFT_MSG_FLAG_WAKE) != 0;
	return true;
}

static int step(struct raft *r, const struct raft_message *m)
{
	bool drop;
	int rc;

	rc = step_term(r, m, &drop);
	if (rc != RAFT_OK || drop)
		return rc;
	if (m->type == RAFT_MSG_VOTE || m->type == RAFT_MSG_PREVOTE)
		return raft_handle_vote(r, m);
	switch (r->role) {
	case RAFT_LEADER:
		return step_leader(r, m);
	case RAFT_CANDIDATE:
	case RAFT_PRECANDIDATE:
		return step_candidate(r, m);
	default:
		return step_follower(r, m);
	}
}

int raft_step(struct raft *r, const struct raft_message *m)
{
	int rc;

	if (r->fatal != 0)
		return r->fatal;
	if (r->in_ready)
		return RAFT_ERR_INVALID;
	rc = check_msg(r, m);
	if (rc != RAFT_OK)
		return rc;
	if (raft_is_removed(r, m->from))
		return RAFT_OK; /* a removed id is never accepted again */
	/* Wake before the term rules: a woken follower hears its leader as of now. */
	if (r->quiesced && wakes(r, m))
		raft_quiesce_wake(r);
	return raft_done(r, step(r, m));
}

static int propose(struct raft *r, const uint8_t *data, uint32_t len, raft_index *index)
{
	struct raft_entry e = {0, 0, RAFT_ENTRY_NORMAL, len, data};

	if (len > 0 && data == NULL)
		return RAFT_ERR_INVALID;
	if (r->cfg.max_entry_bytes > 0 && len > r->cfg.max_entry_bytes)
		return RAFT_ERR_TOO_BIG;
	if (r->role == RAFT_LEADER)
		return raft_repl_propose(r, &e, 1, index);
	if (r->lead == 0 || r->role != RAFT_FOLLOWER)
		return RAFT_ERR_NO_LEADER;
	return raft_repl_propose(r, &e, 1, NULL); /* forwards */
}

int raft_propose(struct raft *r, const uint8_t *data, uint32_t len, raft_index *index)
{
	int rc;

	if (index != NULL)
		*index = 0;
	rc = raft_begin_input(r);
	if (rc != RAFT_OK)
		return rc;
	return raft_done(r, propose(r, data, len, index));
}

static int read_index(struct raft *r, uint64_t context)
{
	struct raft_message m;

	if (r->role == RAFT_LEADER)
		return raft_ri_request(r, r->id, context);
	if (r->lead == 0 || r->role != RAFT_FOLLOWER)
		return RAFT_ERR_NO_LEADER;
	memset(&m, 0, sizeof(m));
	m.type = RAFT_MSG_READINDEX;
	m.from = r->id;
	m.context = context;
	return forward(r, &m);
}

int raft_read_index(struct raft *r, uint64_t context)
{
	int rc = raft_begin_input(r);

	if (rc != RAFT_OK)
		return rc;
	return raft_done(r, read_index(r, context));
}

static int transfer_leader(struct raft *r, raft_id target)
{
	if (r->role == RAFT_LEADER)
		return raft_xfer_start(r, target);
	if (r->lead == 0 || r->role != RAFT_FOLLOWER)
		return RAFT_ERR_NO_LEADER;
	/* Only the transferee itself may be asked for through forwarding. */
	if (target != r->id)
		return RAFT_ERR_NOT_LEADER;
	return raft_send(r, r->lead, RAFT_MSG_TRANSFER_LEADER) == NULL ? RAFT_ERR_NOMEM : RAFT_OK;
}

int raft_transfer_leader(struct raft *r, raft_id target)
{
	int rc = raft_begin_input(r);

	if (rc != RAFT_OK)
		return rc;
	return raft_done(r, transfer_leader(r, target));
}

int raft_campaign(struct raft *r)
{
	int rc = raft_begin_input(r);

	if (rc != RAFT_OK)
		return rc;
	if (r->role == RAFT_LEADER)
		return RAFT_OK;
	if (!raft_promotable(r))
		return RAFT_ERR_INVALID;
	return raft_done(r, raft_do_campaign(r, r->cfg.pre_vote, false));
}

int raft_wake(struct raft *r)
{
	return raft_begin_input(r);
}

bool raft_quiesced(const struct raft *r)
{
	return r->quiesced;
}

void raft_report_unreachable(struct raft *r, raft_id peer)
{
	struct progress *pr = raft_pr(r, peer);

	if (r->fatal != 0 || peer == r->id)
		return;
	/* A quiescent follower cut off from its leader wakes, to elect another. */
	if (r->role != RAFT_LEADER) {
		if (peer == r->lead)
			raft_quiesce_wake(r);
		return;
	}
	/* Appends in flight are probably lost: fall back to probing. */
	if (pr != NULL && pr->state == PR_REPLICATE)
		raft_pr_become_probe(pr);
	/* So is a probe: the next heartbeat response re-sends it, entries or not. */
	if (pr != NULL && pr->state == PR_PROBE)
		pr->probe_hold = 0;
}

void raft_report_snapshot(struct raft *r, raft_id peer, bool failed)
{
	struct progress *pr = raft_pr(r, peer);

	if (r->role != RAFT_LEADER || pr == NULL || pr->state != PR_SNAPSHOT)
		return;
	if (failed)
		pr->pending_snapshot = 0;
	raft_pr_become_probe(pr);
	/* Wait for a heartbeat response before probing again. */
	pr->probe_sent = true;
}

void raft_compacted(struct raft *r, raft_index index)
{
	/* Followers that still need compacted entries get a snapshot at the next Ready. */
	if (r->role != RAFT_LEADER)
		return;
	for (uint32_t i = 0; i < r->n_prs; i++)
		if (r->prs[i].id != r->id && r->prs[i].state != PR_SNAPSHOT &&
		    r->prs[i].next <= index)
			r->pending_bcast = true;
}

/* ---- accessors ---- */

enum raft_role raft_role(const struct raft *r)
{
	return r->role;
}

raft_id raft_leader(const struct raft *r)
{
	return r->lead;
}

uint64_t raft_resets(const struct raft *r)
{
	return r->resets;
}

raft_term raft_term_of(const struct raft *r)
{
	return r->term;
}

raft_index raft_conf_bound(const struct raft *r)
{
	return r->log.conf_bound;
}

raft_index raft_commit_index(const struct raft *r)
{
	return r->log.committed;
}

raft_index raft_snapshot_pending(const struct raft *r)
{
	return r->log.has_snap ? r->log.snap.index : 0;
}

raft_index raft_last_index(const struct raft *r)
{
	return raft_log_last(&r->log);
}

int raft_term_at(const struct raft *r, raft_index i, raft_term *t)
{
	bool stored;

	return raft_log_lookup(&r->log, i, t, &stored);
}

raft_index raft_peers_match(const struct raft *r)
{
	raft_index m = raft_log_last(&r->log);

	if (r->role != RAFT_LEADER)
		return m;
	for (uint32_t i = 0; i < r->n_prs; i++)
		if (r->prs[i].id != r->id && r->prs[i].match < m)
			m = r->prs[i].match;
	return m;
}

void raft_hold_apply(struct raft *r, bool hold)
{
	r->hold_apply = hold;
}

int raft_peer_progress(const struct raft *r, raft_id id, struct raft_peer_progress *out)
{
	if (r->role != RAFT_LEADER)
		return RAFT_ERR_NOT_LEADER;
	for (uint32_t i = 0; i < r->n_prs; i++) {
		const struct progress *pr = &r->prs[i];

		if (pr->id != id)
			continue;
		out->id = pr->id;
		out->voter = pr->voter;
		out->match = pr->match;
		out->next = pr->next;
		out->recent_active = pr->recent_active;
		out->heard_before = pr->heard_before;
		return RAFT_OK;
	}
	return RAFT_ERR_INVALID;
}

const struct raft_membership *raft_membership(const struct raft *r)
{
	return &r->conf;
}

const char *raft_errmsg(const struct raft *r)
{
	return r->errmsg;
}

int raft_fatal(const struct raft *r)
{
	return r->fatal;
}
