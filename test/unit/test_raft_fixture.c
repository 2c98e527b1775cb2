/*
 * test_raft_fixture.c - the in-process cluster used by the Raft unit tests.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_raft_fixture.h"

static void die(const char *what, int rc)
{
	fprintf(stderr, "fixture: %s: %s\n", what, raft_strerror(rc));
	abort();
}

void fx_default_config(struct raft_config *c, raft_id id)
{
	memset(c, 0, sizeof(*c));
	c->group_id = 7;
	c->id = id;
	c->election_tick = 10;
	c->heartbeat_tick = 1;
	c->max_inflight_msgs = 256;
	c->max_msg_bytes = 1 << 20;
	c->seed = 42;
}

static void start_node(struct fx *f, raft_id id, const struct raft_membership *boot,
                       raft_index applied)
{
	struct fx_node *nd = &f->nodes[id];
	struct raft_config c = f->base;
	int rc;

	c.id = id;
	c.applied = applied;
	raft_memstorage_storage(nd->ms, &c.storage);
	rc = raft_create(&c, boot, &nd->r);
	if (rc != RAFT_OK)
		die("raft_create", rc);
	nd->down = false;
}

static struct fx *create(uint32_t n, const struct raft_config *base, bool start)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct raft_membership m;

	memset(&m, 0, sizeof(m));
	for (uint32_t i = 0; i < n; i++)
		m.voters[m.n_voters++] = i + 1;
	f->n = n;
	if (base != NULL)
		f->base = *base;
	else
		fx_default_config(&f->base, 1);
	for (raft_id id = 1; id <= n; id++) {
		struct fx_node *nd = &f->nodes[id];

		nd->id = id;
		if (raft_memstorage_create(NULL, &nd->ms) != RAFT_OK)
			die("memstorage", RAFT_ERR_NOMEM);
		raft_memstorage_set_membership(nd->ms, &m);
		nd->conf = m;
		if (start)
			start_node(f, id, &m, 0);
		else
			nd->down = true;
	}
	return f;
}

struct fx *fx_create(uint32_t n, const struct raft_config *base)
{
	return create(n, base, true);
}

struct fx *fx_create_stopped(uint32_t n, const struct raft_config *base)
{
	return create(n, base, false);
}

void fx_start(struct fx *f, raft_id id)
{
	start_node(f, id, NULL, 0);
}

void fx_add_node(struct fx *f, raft_id id)
{
	struct fx_node *nd = &f->nodes[id];

	nd->id = id;
	if (raft_memstorage_create(NULL, &nd->ms) != RAFT_OK)
		die("memstorage", RAFT_ERR_NOMEM);
	if (id > f->n)
		f->n = (uint32_t)id;
	start_node(f, id, NULL, 0);
}

static void free_msg(struct fx_msg *q)
{
	free(q->ents);
	free(q->data);
}

void fx_drop_all(struct fx *f)
{
	for (uint32_t i = 0; i < f->nq; i++)
		free_msg(&f->q[i]);
	f->nq = 0;
}

void fx_destroy(struct fx *f)
{
	fx_drop_all(f);
	free(f->q);
	for (raft_id id = 1; id <= f->n; id++) {
		raft_destroy(f->nodes[id].r);
		raft_memstorage_destroy(f->nodes[id].ms);
		free(f->nodes[id].applied);
	}
	free(f);
}

void fx_send(struct fx *f, const struct raft_message *m)
{
	struct fx_msg *q;
	size_t total = 0, off = 0;

	if (f->nq == f->capq) {
		f->capq = f->capq ? f->capq * 2 : 64;
		f->q = realloc(f->q, f->capq * sizeof(*f->q));
	}
	q = &f->q[f->nq++];
	memset(q, 0, sizeof(*q));
	q->m = *m;
	if (m->n_entries > 0) {
		q->ents = malloc(m->n_entries * sizeof(*q->ents));
		for (uint32_t i = 0; i < m->n_entries; i++)
			total += m->entries[i].len;
		q->data = malloc(total + 1);
		for (uint32_t i = 0; i < m->n_entries; i++) {
			q->ents[i] = m->entries[i];
			if (m->entries[i].len > 0) {
				memcpy(q->data + off, m->entries[i].data, m->entries[i].len);
				q->ents[i].data = q->data + off;
				off += m->entries[i].len;
			}
		}
	}
	q->m.entries = NULL;
	if (m->snapshot != NULL)
		q->snap = *m->snapshot;
}

static void record_applied(struct fx_node *nd, const struct raft_entry *e)
{
	struct fx_applied *a;

	if (nd->n_applied == nd->cap_applied) {
		nd->cap_applied = nd->cap_applied ? nd->cap_applied * 2 : 64;
		nd->applied = realloc(nd->applied, nd->cap_applied * sizeof(*nd->applied));
	}
	a = &nd->applied[nd->n_applied++];
	memset(a, 0, sizeof(*a));
	a->index = e->index;
	a->term = e->term;
	a->type = e->type;
	a->len = e->len;
	if (e->len > 0)
		memcpy(a->data, e->data, e->len < sizeof(a->data) ? e->len : sizeof(a->data));
}

bool fx_ready(struct fx *f, raft_id id)
{
	struct fx_node *nd = &f->nodes[id];
	struct raft_ready rd;
	raft_index last_i = 0;
	raft_term last_t = 0;
	int rc;

	if (nd->down || nd->r == NULL || !raft_has_ready(nd->r))
		return false;
	rc = raft_ready(nd->r, &rd);
	if (rc != RAFT_OK)
		die("raft_ready", rc);
	if (f->on_ready != NULL)
		f->on_ready(f, id, &rd);
	rc = raft_memstorage_save_ready(nd->ms, &rd);
	if (rc != RAFT_OK)
		die("save_ready", rc);
	if (rd.has_snapshot) {
		/* The state machine becomes the snapshot: forget what we applied. */
		nd->n_applied = 0;
		nd->conf = rd.snapshot.membership;
	}
	for (uint32_t i = 0; i < rd.n_messages; i++)
		fx_send(f, &rd.messages[i]);
	for (uint32_t i = 0; i < rd.n_committed; i++) {
		const struct raft_entry *e = &rd.committed[i];

		if (e->type == RAFT_ENTRY_CONF_CHANGE) {
			rc = raft_apply_conf_change(nd->r, e, &nd->conf);
			if (rc != RAFT_OK)
				die("apply_conf_change", rc);
			raft_memstorage_set_membership(nd->ms, &nd->conf);
		}
		record_applied(nd, e);
	}
	for (uint32_t i = 0; i < rd.n_read_states && nd->n_reads < 64; i++)
		nd->reads[nd->n_reads++] = rd.read_states[i];
	if (rd.sync_deferred) {
		last_i = rd.entries[rd.n_entries - 1].index;
		last_t = rd.entries[rd.n_entries - 1].term;
	}
	raft_advance(nd->r, &rd);
	/* (memstorage is durable at once: a deferred sync is reported now) */
	if (rd.sync_deferred) {
		rc = raft_durable(nd->r, last_i, last_t);
		if (rc != RAFT_OK)
			die("raft_durable", rc);
	}
	return true;
}

int fx_deliver_at(struct fx *f, uint32_t i, bool drop)
{
	struct fx_msg q = f->q[i];
	struct fx_node *to;
	int rc = RAFT_OK;

	memmove(f->q + i, f->q + i + 1, (f->nq - i - 1) * sizeof(*f->q));
	f->nq--;
	q.m.entries = q.ents;
	q.m.snapshot = q.m.type == RAFT_MSG_SNAPSHOT ? &q.snap : NULL;
	to = q.m.to <= FX_MAX ? &f->nodes[q.m.to] : NULL;
	if (!drop && to != NULL && to->r != NULL && !to->down && !f->cut[q.m.from][q.m.to]) {
		rc = raft_step(to->r, &q.m);
		f->delivered++;
	}
	free_msg(&q);
	return rc;
}

/* Deliver the oldest queued message; false if none. */
static bool deliver_one(struct fx *f)
{
	if (f->nq == 0)
		return false;
	fx_deliver_at(f, 0, false);
	return true;
}

bool fx_run(struct fx *f, int max_rounds)
{
	for (int round = 0; round < max_rounds; round++) {
		bool any = false;

		for (raft_id id = 1; id <= f->n; id++)
			if (fx_ready(f, id))
				any = true;
		if (deliver_one(f))
			any = true;
		if (!any)
			return true;
	}
	return false;
}

void fx_stabilize(struct fx *f)
{
	for (int round = 0; round < 100000; round++) {
		bool any = false;

		for (raft_id id = 1; id <= f->n; id++)
			while (fx_ready(f, id))
				any = true;
		while (deliver_one(f))
			any = true;
		if (!any)
			return;
	}
	fprintf(stderr, "fixture: cluster did not quiesce; queued:\n");
	for (uint32_t i = 0; i < f->nq && i < 12; i++)
		fprintf(stderr,
		        "  type %u %llu->%llu term %llu index %llu logterm %llu reject %d hint "
		        "%llu/%llu n %u\n",
		        f->q[i].m.type, (unsigned long long)f->q[i].m.from,
		        (unsigned long long)f->q[i].m.to, (unsigned long long)f->q[i].m.term,
		        (unsigned long long)f->q[i].m.index, (unsigned long long)f->q[i].m.log_term,
		        f->q[i].m.reject, (unsigned long long)f->q[i].m.reject_hint,
		        (unsigned long long)f->q[i].m.hint_term, f->q[i].m.n_entries);
	for (raft_id id = 1; id <= f->n; id++)
		if (f->nodes[id].r != NULL)
			fprintf(stderr, "  node %llu role %d term %llu last %llu commit %llu\n",
			        (unsigned long long)id, raft_role(f->nodes[id].r),
			        (unsigned long long)raft_term_of(f->nodes[id].r),
			        (unsigned long long)raft_last_index(f->nodes[id].r),
			        (unsigned long long)raft_commit_index(f->nodes[id].r));

	abort();
}

void fx_tick(struct fx *f, raft_id id, unsigned k)
{
	for (unsigned i = 0; i < k; i++) {
		if (f->nodes[id].r != NULL && !f->nodes[id].down)
			raft_tick(f->nodes[id].r);
		fx_ready(f, id);
	}
}

void fx_tick_all(struct fx *f, unsigned k)
{
	for (unsigned i = 0; i < k; i++) {
		for (raft_id id = 1; id <= f->n; id++)
			if (f->nodes[id].r != NULL && !f->nodes[id].down)
				raft_tick(f->nodes[id].r);
		fx_stabilize(f);
	}
}

void fx_elect(struct fx *f, raft_id id)
{
	raft_campaign(f->nodes[id].r);
	fx_stabilize(f);
}

void fx_isolate(struct fx *f, raft_id id)
{
	for (raft_id j = 0; j <= FX_MAX; j++) {
		f->cut[id][j] = true;
		f->cut[j][id] = true;
	}
}

void fx_heal(struct fx *f)
{
	memset(f->cut, 0, sizeof(f->cut));
}

int fx_propose(struct fx *f, raft_id id, const char *s)
{
	raft_index idx;

	return raft_propose(f->nodes[id].r, (const uint8_t *)s, (uint32_t)strlen(s), &idx);
}

raft_id fx_leader(struct fx *f)
{
	raft_id lead = 0;
	raft_term best = 0;

	for (raft_id id = 1; id <= f->n; id++) {
		struct fx_node *nd = &f->nodes[id];

		if (nd->r == NULL || nd->down || raft_role(nd->r) != RAFT_LEADER)
			continue;
		if (raft_term_of(nd->r) > best) {
			best = raft_term_of(nd->r);
			lead = id;
		}
	}
	return lead;
}

void fx_crash(struct fx *f, raft_id id)
{
	struct fx_node *nd = &f->nodes[id];
	uint32_t k = 0;

	raft_destroy(nd->r);
	nd->r = NULL;
	nd->down = true;
	for (uint32_t i = 0; i < f->nq; i++) {
		if (f->q[i].m.from == id || f->q[i].m.to == id)
			free_msg(&f->q[i]);
		else
			f->q[k++] = f->q[i];
	}
	f->nq = k;
}

void fx_restart(struct fx *f, raft_id id)
{
	struct fx_node *nd = &f->nodes[id];
	raft_index applied = nd->n_applied ? nd->applied[nd->n_applied - 1].index : 0;
	raft_index first = raft_memstorage_first_index(nd->ms);

	if (applied + 1 < first)
		applied = first - 1;
	start_node(f, id, NULL, applied);
}

bool fx_applied_has(const struct fx *f, raft_id id, const char *s)
{
	const struct fx_node *nd = &f->nodes[id];
	size_t len = strlen(s);

	for (uint32_t i = 0; i < nd->n_applied; i++)
		if (nd->applied[i].len == len && memcmp(nd->applied[i].data, s, len) == 0)
			return true;
	return false;
}
