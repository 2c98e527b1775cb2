/*
 * readindex.c - linearizable reads without log writes (thesis 6.4): the
 * leader records its commit index, confirms it is still leader with a round
 * of heartbeats acknowledged by a majority, then releases the read.
 *
 * Each confirmation round has a sequence number carried in the heartbeat's
 * context; an acknowledgement of sequence s confirms every request <= s.
 */
#include "raft/raft_int.h"

int raft_ri_push_state(struct raft *r, uint64_t context, raft_index index)
{
	int rc;

	RAFT_ASSERT(r, !r->in_ready); /* it would never be handed out */
	rc = raft_grow(r, (void **)&r->rs, &r->cap_rs, r->n_rs + 1, sizeof(*r->rs));
	if (rc != RAFT_OK)
		return rc;
	r->rs[r->n_rs].context = context;
	r->rs[r->n_rs].index = index;
	r->n_rs++;
	return RAFT_OK;
}

/* Thesis 6.4 step 1: the leader must have committed an entry of its term. */
static bool committed_in_term(struct raft *r)
{
	raft_term t;

	return raft_log_term(&r->log, r->log.committed, &t) == RAFT_OK && t == r->term;
}

/* Answer a confirmed request. */
static int release(struct raft *r, const struct read_req *q)
{
	struct raft_message *m;

	if (q->from == r->id)
		return raft_ri_push_state(r, q->context, q->index);
	m = raft_send(r, q->from, RAFT_MSG_READINDEX_RESP);
	if (m == NULL)
		return RAFT_ERR_NOMEM;
	m->context = q->context;
	m->index = q->index;
	return RAFT_OK;
}

/* Release every request whose sequence a majority of voters acknowledged. */
static int release_acked(struct raft *r)
{
	uint64_t acks[RAFT_MAX_MEMBERS], confirmed;
	uint32_t n = 0, done = 0;
	int rc = RAFT_OK;

	for (uint32_t i = 0; i < r->n_prs; i++) {
		const struct progress *pr = &r->prs[i];
		uint64_t v;
		uint32_t j;

		if (!pr->voter)
			continue;
		v = pr->id == r->id ? r->read_seq : pr->read_ack;
		for (j = n++; j > 0 && acks[j - 1] < v; j--)
			acks[j] = acks[j - 1];
		acks[j] = v;
	}
	if (n == 0)
		return RAFT_OK;
	confirmed = acks[n / 2];
	while (done < r->n_rq && r->rq[done].seq != 0 && r->rq[done].seq <= confirmed) {
		rc = release(r, &r->rq[done]);
		if (rc != RAFT_OK)
			break;
		done++;
	}
	if (done > 0) {
		for (uint32_t i = done; i < r->n_rq; i++)
			r->rq[i - done] = r->rq[i];
		r->n_rq -= done;
	}
	return rc;
}

/* Give waiting requests the current commit index and start a confirmation round. */
static int start_round(struct raft *r)
{
	bool any = false;
	int rc;

	for (uint32_t i = 0; i < r->n_rq; i++) {
		if (r->rq[i].seq == 0) {
			if (!any)
				r->read_seq++;
			any = true;
			r->rq[i].seq = r->read_seq;
			r->rq[i].index = r->log.committed;
		}
	}
	if (!any)
		return RAFT_OK;
	rc = release_acked(r); /* a single voter confirms itself */
	if (rc != RAFT_OK || r->n_rq == 0)
		return rc;
	return raft_repl_bcast_heartbeat(r, r->read_seq);
}

int raft_ri_request(struct raft *r, raft_id from, uint64_t context)
{
	int rc;

	if (r->role != RAFT_LEADER)
		return RAFT_ERR_NOT_LEADER;
	rc = raft_grow(r, (void **)&r->rq, &r->cap_rq, r->n_rq + 1, sizeof(*r->rq));
	if (rc != RAFT_OK)
		return rc;
	r->rq[r->n_rq].seq = 0;
	r->rq[r->n_rq].from = from;
	r->rq[r->n_rq].context = context;
	r->rq[r->n_rq].index = 0;
	r->n_rq++;
	if (!committed_in_term(r))
		return RAFT_OK; /* waits for the no-op of this term to commit */
	return start_round(r);
}

int raft_ri_on_commit_in_term(struct raft *r)
{
	if (r->n_rq == 0 || !committed_in_term(r))
		return RAFT_OK;
	return start_round(r);
}

int raft_ri_ack(struct raft *r, struct progress *pr, uint64_t seq)
{
	if (!pr->voter || seq > r->read_seq || seq <= pr->read_ack)
		return RAFT_OK;
	pr->read_ack = seq;
	return release_acked(r);
}

int raft_ri_handle_resp(struct raft *r, const struct raft_message *m)
{
	return raft_ri_push_state(r, m->context, m->index);
}

void raft_ri_reset(struct raft *r)
{
	r->n_rq = 0;
	r->read_seq = 0;
}
