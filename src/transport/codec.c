/*
 * codec.c - raft structs <-> protobuf-c wire schema, with bounds checks.
 */
#include "transport/codec.h"

#include <string.h>

#define ALIGN        16
#define BLOCK_MIN    (64u << 10)
#define SHRINK_ABOVE (16u << 20)

struct dr_arena_block {
	struct dr_arena_block *next;
	size_t size;
	uint8_t data[];
};

static void *pb_alloc(void *data, size_t size)
{
	return transport_arena_alloc(data, size);
}

static void pb_free(void *data, void *p)
{
	(void)data;
	(void)p; /* freed by transport_arena_reset */
}

void transport_arena_init(struct transport_arena *a, size_t limit)
{
	memset(a, 0, sizeof(*a));
	a->limit = limit;
	a->pb.alloc = pb_alloc;
	a->pb.free = pb_free;
	a->pb.allocator_data = a;
}

void *transport_arena_alloc(struct transport_arena *a, size_t n)
{
	struct dr_arena_block *b;
	void *p;

	n = n == 0 ? ALIGN : (n + ALIGN - 1) & ~(size_t)(ALIGN - 1);
	if (n > a->limit || a->total > a->limit - n) {
		a->failed = 1;
		return NULL;
	}
	if (a->cap - a->used >= n) {
		p = a->base + a->used;
		a->used += n;
		a->total += n;
		return p;
	}
	b = a->extra;
	if (b == NULL || b->size - a->extra_used < n) {
		size_t size = n > BLOCK_MIN ? n : BLOCK_MIN;

		b = transport_malloc(sizeof(*b) + size);
		if (b == NULL) {
			a->failed = 1;
			return NULL;
		}
		b->size = size;
		b->next = a->extra;
		a->extra = b;
		a->extra_used = 0;
	}
	p = b->data + a->extra_used;
	a->extra_used += n;
	a->total += n;
	return p;
}

void transport_arena_reset(struct transport_arena *a)
{
	int grow = a->extra != NULL;
	size_t want = a->total;

	while (a->extra != NULL) {
		struct dr_arena_block *next = a->extra->next;
		transport_free(a->extra);
		a->extra = next;
	}
	if (grow || (a->cap > SHRINK_ABOVE && want < a->cap / 4)) {
		size_t cap = BLOCK_MIN;

		while (cap < want)
			cap *= 2;
		transport_free(a->base);
		a->base = transport_malloc(cap);
		a->cap = a->base != NULL ? cap : 0;
	}
	a->used = 0;
	a->total = 0;
	a->extra_used = 0;
	a->failed = 0;
}

void transport_arena_free(struct transport_arena *a)
{
	transport_arena_reset(a);
	transport_free(a->base);
	a->base = NULL;
	a->cap = 0;
}

void transport_encoder_free(struct transport_encoder *e)
{
	transport_free(e->ents);
	transport_free(e->ptrs);
	memset(e, 0, sizeof(*e));
}

static size_t put_varint(uint8_t *p, uint64_t v)
{
	size_t n = 0;

	while (v >= 0x80) {
		p[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (uint8_t)v;
	return n;
}

static void membership_to_pb(const struct raft_membership *m, Dragonraft__Membership *pb)
{
	dragonraft__membership__init(pb);
	pb->config_index = m->config_index;
	pb->n_voters = m->n_voters <= RAFT_MAX_MEMBERS ? m->n_voters : RAFT_MAX_MEMBERS;
	pb->voters = (uint64_t *)m->voters;
	pb->n_nonvoters = m->n_nonvoters <= RAFT_MAX_MEMBERS ? m->n_nonvoters : RAFT_MAX_MEMBERS;
	pb->nonvoters = (uint64_t *)m->nonvoters;
	pb->n_removed = m->n_removed <= RAFT_MAX_REMOVED ? m->n_removed : RAFT_MAX_REMOVED;
	pb->removed = (uint64_t *)m->removed;
}

static int reserve_entries(struct transport_encoder *e, size_t n)
{
	Dragonraft__Entry *ents;
	Dragonraft__Entry **ptrs;
	size_t cap = e->cap ? e->cap : 64;

	if (n <= e->cap)
		return TRANSPORT_OK;
	while (cap < n)
		cap *= 2;
	ents = transport_malloc(cap * sizeof(*ents));
	ptrs = transport_malloc(cap * sizeof(*ptrs));
	if (ents == NULL || ptrs == NULL) {
		transport_free(ents);
		transport_free(ptrs);
		return TRANSPORT_ENOMEM;
	}
	transport_free(e->ents);
	transport_free(e->ptrs);
	e->ents = ents;
	e->ptrs = ptrs;
	e->cap = cap;
	return TRANSPORT_OK;
}

int transport_encode_message(struct transport_encoder *e, const struct raft_message *m,
                             struct transport_buf *out)
{
	Dragonraft__Message pm;
	Dragonraft__SnapshotMeta ps;
	Dragonraft__Membership pmb;
	size_t size;
	int rc;

	dragonraft__message__init(&pm);
	pm.type = m->type;
	pm.flags = m->flags;
	pm.group_id = m->group_id;
	pm.from = m->from;
	pm.to = m->to;
	pm.term = m->term;
	pm.log_term = m->log_term;
	pm.index = m->index;
	pm.commit = m->commit;
	pm.reject = m->reject;
	pm.reject_hint = m->reject_hint;
	pm.hint_term = m->hint_term;
	pm.context = m->context;
	if (m->n_entries > 0) {
		if (m->entries == NULL)
			return TRANSPORT_EINVAL;
		rc = reserve_entries(e, m->n_entries);
		if (rc != TRANSPORT_OK)
			return rc;
		for (uint32_t i = 0; i < m->n_entries; i++) {
			const struct raft_entry *re = &m->entries[i];
			Dragonraft__Entry *pe = &e->ents[i];

			dragonraft__entry__init(pe);
			pe->term = re->term;
			pe->index = re->index;
			pe->type = re->type;
			pe->data.len = re->len;
			pe->data.data = (uint8_t *)re->data;
			e->ptrs[i] = pe;
		}
		pm.n_entries = m->n_entries;
		pm.entries = e->ptrs;
	}
	if (m->snapshot != NULL) {
		dragonraft__snapshot_meta__init(&ps);
		ps.index = m->snapshot->index;
		ps.term = m->snapshot->term;
		membership_to_pb(&m->snapshot->membership, &pmb);
		ps.membership = &pmb;
		pm.snapshot = &ps;
	}
	size = dragonraft__message__get_packed_size(&pm);
	rc = transport_buf_reserve(out, size + 11);
	if (rc != TRANSPORT_OK)
		return rc;
	out->p[out->len++] = 0x0a; /* field 1 (messages), wire type 2 */
	out->len += put_varint(out->p + out->len, size);
	out->len += dragonraft__message__pack(&pm, out->p + out->len);
	return TRANSPORT_OK;
}

int transport_encode_batch(struct transport_encoder *e, const struct raft_message *msgs, size_t n,
                           struct transport_buf *out)
{
	for (size_t i = 0; i < n; i++) {
		int rc = transport_encode_message(e, &msgs[i], out);
		if (rc != TRANSPORT_OK)
			return rc;
	}
	return TRANSPORT_OK;
}

int transport_membership_check(const struct raft_membership *m)
{
	if (m->n_voters > RAFT_MAX_MEMBERS || m->n_nonvoters > RAFT_MAX_MEMBERS ||
	    m->n_voters + m->n_nonvoters > RAFT_MAX_MEMBERS || m->n_removed > RAFT_MAX_REMOVED)
		return TRANSPORT_EDECODE;
	for (uint32_t i = 0; i < m->n_voters + m->n_nonvoters; i++) {
		raft_id id = i < m->n_voters ? m->voters[i] : m->nonvoters[i - m->n_voters];

		if (id == 0)
			return TRANSPORT_EDECODE;
		for (uint32_t j = 0; j < i; j++) {
			raft_id other =
			        j < m->n_voters ? m->voters[j] : m->nonvoters[j - m->n_voters];
			if (other == id)
				return TRANSPORT_EDECODE;
		}
		for (uint32_t j = 0; j < m->n_removed; j++)
			if (m->removed[j] == id)
				return TRANSPORT_EDECODE;
	}
	for (uint32_t i = 0; i < m->n_removed; i++) {
		if (m->removed[i] == 0)
			return TRANSPORT_EDECODE;
		for (uint32_t j = 0; j < i; j++)
			if (m->removed[j] == m->removed[i])
				return TRANSPORT_EDECODE;
	}
	return TRANSPORT_OK;
}

static int snapshot_meta_check(const struct raft_snapshot_meta *s)
{
	if (s->index == 0 || s->term == 0 || s->membership.n_voters == 0)
		return TRANSPORT_EDECODE;
	return transport_membership_check(&s->membership);
}

int transport_message_check(const struct raft_message *m)
{
	bool has_entries = m->type == RAFT_MSG_APPEND || m->type == RAFT_MSG_PROPOSE;

	if (m->type == 0 || m->type > RAFT_MSG_TYPE_MAX)
		return TRANSPORT_EDECODE;
	if ((m->flags &
	     ~(RAFT_MSG_FLAG_TRANSFER | RAFT_MSG_FLAG_WAKE | RAFT_MSG_FLAG_COMMIT_ONLY)) != 0)
		return TRANSPORT_EDECODE;
	if (m->group_id == 0 || m->from == 0 || m->to == 0 || m->from == m->to)
		return TRANSPORT_EDECODE;
	if (m->n_entries > TRANSPORT_MAX_ENTRIES || (m->n_entries > 0 && !has_entries) ||
	    (m->n_entries > 0 && m->entries == NULL))
		return TRANSPORT_EDECODE;
	if ((m->type == RAFT_MSG_SNAPSHOT) != (m->snapshot != NULL))
		return TRANSPORT_EDECODE;
	if (m->snapshot != NULL && snapshot_meta_check(m->snapshot) != TRANSPORT_OK)
		return TRANSPORT_EDECODE;
	for (uint32_t i = 0; i < m->n_entries; i++) {
		const struct raft_entry *e = &m->entries[i];

		if (e->type > RAFT_ENTRY_CONF_CHANGE || (e->len > 0 && e->data == NULL))
			return TRANSPORT_EDECODE;
		if (m->type != RAFT_MSG_APPEND)
			continue;
		/* An append carries entries prev+1, prev+2, ... with terms that never decrease
		 * and never exceed the leader's term (Raft paper 5.3, Log Matching). */
		if (e->index != m->index + 1 + i || e->index == 0 || e->term == 0 ||
		    e->term > m->term || (i > 0 && e->term < m->entries[i - 1].term))
			return TRANSPORT_EDECODE;
	}
	return TRANSPORT_OK;
}

static int membership_from_pb(const Dragonraft__Membership *pb, struct raft_membership *m)
{
	memset(m, 0, sizeof(*m));
	if (pb == NULL)
		return TRANSPORT_OK;
	if (pb->n_voters > RAFT_MAX_MEMBERS || pb->n_nonvoters > RAFT_MAX_MEMBERS ||
	    pb->n_removed > RAFT_MAX_REMOVED)
		return TRANSPORT_EDECODE;
	m->config_index = pb->config_index;
	m->n_voters = (uint32_t)pb->n_voters;
	m->n_nonvoters = (uint32_t)pb->n_nonvoters;
	m->n_removed = (uint32_t)pb->n_removed;
	if (pb->n_voters)
		memcpy(m->voters, pb->voters, pb->n_voters * sizeof(raft_id));
	if (pb->n_nonvoters)
		memcpy(m->nonvoters, pb->nonvoters, pb->n_nonvoters * sizeof(raft_id));
	if (pb->n_removed)
		memcpy(m->removed, pb->removed, pb->n_removed * sizeof(raft_id));
	return transport_membership_check(m);
}

static int snapshot_meta_from_pb(const Dragonraft__SnapshotMeta *pb, struct raft_snapshot_meta *s)
{
	int rc;

	s->index = pb->index;
	s->term = pb->term;
	rc = membership_from_pb(pb->membership, &s->membership);
	if (rc != TRANSPORT_OK)
		return rc;
	return snapshot_meta_check(s);
}

static int convert(struct transport_arena *a, const Dragonraft__Message *pm, struct raft_message *m)
{
	memset(m, 0, sizeof(*m));
	if (pm->type == 0 || pm->type > RAFT_MSG_TYPE_MAX || pm->n_entries > TRANSPORT_MAX_ENTRIES)
		return TRANSPORT_EDECODE;
	m->type = pm->type;
	m->flags = pm->flags;
	m->group_id = pm->group_id;
	m->from = pm->from;
	m->to = pm->to;
	m->term = pm->term;
	m->log_term = pm->log_term;
	m->index = pm->index;
	m->commit = pm->commit;
	m->reject = pm->reject != 0;
	m->reject_hint = pm->reject_hint;
	m->hint_term = pm->hint_term;
	m->context = pm->context;
	if (pm->n_entries > 0) {
		struct raft_entry *ents = transport_arena_alloc(a, pm->n_entries * sizeof(*ents));

		if (ents == NULL)
			return TRANSPORT_ENOMEM;
		for (size_t i = 0; i < pm->n_entries; i++) {
			const Dragonraft__Entry *pe = pm->entries[i];

			if (pe->data.len > UINT32_MAX)
				return TRANSPORT_EDECODE;
			ents[i].term = pe->term;
			ents[i].index = pe->index;
			ents[i].type = pe->type;
			ents[i].len = (uint32_t)pe->data.len;
			ents[i].data = pe->data.len > 0 ? pe->data.data : NULL;
		}
		m->n_entries = (uint32_t)pm->n_entries;
		m->entries = ents;
	}
	if (pm->snapshot != NULL) {
		struct raft_snapshot_meta *s = transport_arena_alloc(a, sizeof(*s));

		if (s == NULL)
			return TRANSPORT_ENOMEM;
		if (snapshot_meta_from_pb(pm->snapshot, s) != TRANSPORT_OK)
			return TRANSPORT_EDECODE;
		m->snapshot = s;
	}
	return transport_message_check(m);
}

int transport_decode_batch_pbc(struct transport_arena *a, const uint8_t *p, size_t len,
                               struct raft_message **msgs, size_t *n)
{
	Dragonraft__MessageBatch *b;
	struct raft_message *out;

	*msgs = NULL;
	*n = 0;
	b = dragonraft__message_batch__unpack(&a->pb, len, p);
	if (b == NULL)
		return a->failed ? TRANSPORT_ENOMEM : TRANSPORT_EDECODE;
	if (b->n_messages == 0)
		return TRANSPORT_OK;
	out = transport_arena_alloc(a, b->n_messages * sizeof(*out));
	if (out == NULL)
		return TRANSPORT_ENOMEM;
	for (size_t i = 0; i < b->n_messages; i++) {
		int rc = convert(a, b->messages[i], &out[i]);
		if (rc != TRANSPORT_OK)
			return rc;
	}
	*msgs = out;
	*n = b->n_messages;
	return TRANSPORT_OK;
}

int transport_encode_snapshot_header(const struct transport_snapshot_header *h,
                                     struct transport_buf *out)
{
	Dragonraft__SnapshotHeader ph;
	Dragonraft__SnapshotMeta ps;
	Dragonraft__Membership pmb;
	size_t size;
	int rc;

	dragonraft__snapshot_header__init(&ph);
	dragonraft__snapshot_meta__init(&ps);
	membership_to_pb(&h->meta.membership, &pmb);
	ps.index = h->meta.index;
	ps.term = h->meta.term;
	ps.membership = &pmb;
	ph.group_id = h->group_id;
	ph.from = h->from;
	ph.to = h->to;
	ph.meta = &ps;
	ph.total_size = h->total_size;
	ph.crc32c = h->crc32c;
	size = dragonraft__snapshot_header__get_packed_size(&ph);
	rc = transport_buf_reserve(out, size);
	if (rc != TRANSPORT_OK)
		return rc;
	out->len += dragonraft__snapshot_header__pack(&ph, out->p + out->len);
	return TRANSPORT_OK;
}

int transport_decode_snapshot_header(struct transport_arena *a, const uint8_t *p, size_t len,
                                     struct transport_snapshot_header *h)
{
	Dragonraft__SnapshotHeader *ph;
	int rc = TRANSPORT_EDECODE;

	memset(h, 0, sizeof(*h));
	if (len > TRANSPORT_SNAP_BEGIN_MAX)
		return TRANSPORT_EDECODE;
	ph = dragonraft__snapshot_header__unpack(&a->pb, len, p);
	if (ph == NULL)
		rc = a->failed ? TRANSPORT_ENOMEM : TRANSPORT_EDECODE;
	else if (ph->group_id != 0 && ph->from != 0 && ph->to != 0 && ph->from != ph->to &&
	         ph->meta != NULL) {
		h->group_id = ph->group_id;
		h->from = ph->from;
		h->to = ph->to;
		h->total_size = ph->total_size;
		h->crc32c = ph->crc32c;
		rc = snapshot_meta_from_pb(ph->meta, &h->meta);
	}
	transport_arena_reset(a);
	return rc;
}

int transport_encode_hard_state(const struct raft_hard_state *hs, struct transport_buf *out)
{
	Dragonraft__HardState ph;
	int rc;

	dragonraft__hard_state__init(&ph);
	ph.term = hs->term;
	ph.vote = hs->vote;
	ph.commit = hs->commit;
	rc = transport_buf_reserve(out, dragonraft__hard_state__get_packed_size(&ph));
	if (rc != TRANSPORT_OK)
		return rc;
	out->len += dragonraft__hard_state__pack(&ph, out->p + out->len);
	return TRANSPORT_OK;
}

int transport_decode_hard_state(const uint8_t *p, size_t len, struct raft_hard_state *hs)
{
	Dragonraft__HardState *ph = dragonraft__hard_state__unpack(NULL, len, p);

	memset(hs, 0, sizeof(*hs));
	if (ph == NULL)
		return TRANSPORT_EDECODE;
	hs->term = ph->term;
	hs->vote = ph->vote;
	hs->commit = ph->commit;
	dragonraft__hard_state__free_unpacked(ph, NULL);
	/* Raft never commits past its term's start without a term (Figure 2). */
	return hs->commit > 0 && hs->term == 0 ? TRANSPORT_EDECODE : TRANSPORT_OK;
}

int transport_encode_conf_change(const struct raft_conf_change *cc, struct transport_buf *out)
{
	Dragonraft__ConfChange ph;
	int rc;

	dragonraft__conf_change__init(&ph);
	ph.type = cc->type;
	ph.node_id = cc->node_id;
	ph.context.len = cc->context_len;
	ph.context.data = (uint8_t *)cc->context;
	rc = transport_buf_reserve(out, dragonraft__conf_change__get_packed_size(&ph));
	if (rc != TRANSPORT_OK)
		return rc;
	out->len += dragonraft__conf_change__pack(&ph, out->p + out->len);
	return TRANSPORT_OK;
}

int transport_decode_conf_change(struct transport_arena *a, const uint8_t *p, size_t len,
                                 struct raft_conf_change *cc)
{
	Dragonraft__ConfChange *ph = dragonraft__conf_change__unpack(&a->pb, len, p);

	memset(cc, 0, sizeof(*cc));
	if (ph == NULL)
		return a->failed ? TRANSPORT_ENOMEM : TRANSPORT_EDECODE;
	if (ph->type > RAFT_CC_REMOVE || ph->node_id == 0 || ph->context.len > UINT32_MAX)
		return TRANSPORT_EDECODE;
	cc->type = ph->type;
	cc->node_id = ph->node_id;
	cc->context_len = (uint32_t)ph->context.len;
	cc->context = ph->context.len > 0 ? ph->context.data : NULL;
	return TRANSPORT_OK;
}
