/*
 * wire.c - zero-copy decoder of MessageBatch (raft.proto) into raft structs.
 *
 * protobuf-c's unpack copies every bytes field; for large appends that is
 * one more pass over the data than the receiver needs.  This decoder walks
 * the protobuf wire format directly and leaves entry data pointing into the
 * received frame, allocating only the message, entry and snapshot arrays in
 * the arena.  It accepts a subset of what protobuf-c accepts (it refuses
 * groups, over-long tags and lengths, and a repeated embedded snapshot or
 * membership, which protobuf-c would merge); the fuzz target checks that
 * whatever it accepts, protobuf-c decodes to the same messages.
 */
#include <string.h>

#include "transport/codec.h"

enum { WT_VARINT = 0, WT_I64 = 1, WT_LEN = 2, WT_I32 = 5 };

struct rd {
	const uint8_t *p;
	const uint8_t *end;
};

/* Reads a varint of at most 10 bytes; *nz says whether any payload bit was set. */
static int varint(struct rd *r, uint64_t *v, bool *nz)
{
	uint64_t x = 0;
	bool any = false;

	for (unsigned i = 0; i < 10; i++) {
		uint8_t b;

		if (r->p == r->end)
			return TRANSPORT_EDECODE;
		b = *r->p++;
		any |= (b & 0x7f) != 0;
		x |= (uint64_t)(b & 0x7f) << (7 * i);
		if ((b & 0x80) == 0) {
			*v = x;
			if (nz != NULL)
				*nz = any;
			return TRANSPORT_OK;
		}
	}
	return TRANSPORT_EDECODE;
}

/* Reads a tag: field number and wire type. */
static int tag(struct rd *r, uint32_t *field, unsigned *wt)
{
	const uint8_t *start = r->p;
	uint64_t v;

	if (varint(r, &v, NULL) != TRANSPORT_OK || r->p - start > 5 || (v >> 3) == 0 ||
	    (v >> 3) > 0x1fffffff)
		return TRANSPORT_EDECODE;
	*field = (uint32_t)(v >> 3);
	*wt = (unsigned)(v & 7);
	return TRANSPORT_OK;
}

/* Reads a length prefix and splits off that many bytes into sub. */
static int sub(struct rd *r, struct rd *s)
{
	const uint8_t *start = r->p;
	uint64_t len;

	if (varint(r, &len, NULL) != TRANSPORT_OK || r->p - start > 5 ||
	    len > (uint64_t)(r->end - r->p))
		return TRANSPORT_EDECODE;
	s->p = r->p;
	s->end = r->p + len;
	r->p += len;
	return TRANSPORT_OK;
}

/* Skips one unknown field's value. */
static int skip(struct rd *r, unsigned wt)
{
	uint64_t v;
	struct rd s;

	switch (wt) {
	case WT_VARINT:
		return varint(r, &v, NULL);
	case WT_I64:
		if (r->end - r->p < 8)
			return TRANSPORT_EDECODE;
		r->p += 8;
		return TRANSPORT_OK;
	case WT_I32:
		if (r->end - r->p < 4)
			return TRANSPORT_EDECODE;
		r->p += 4;
		return TRANSPORT_OK;
	case WT_LEN:
		return sub(r, &s);
	default:
		return TRANSPORT_EDECODE; /* groups are not part of proto3 */
	}
}

/* Appends a repeated uint64 (packed or not) to ids[*n], at most max. */
static int ids(struct rd *r, unsigned wt, raft_id *out, uint32_t *n, uint32_t max)
{
	uint64_t v;

	if (wt == WT_VARINT) {
		if (varint(r, &v, NULL) != TRANSPORT_OK || *n >= max)
			return TRANSPORT_EDECODE;
		out[(*n)++] = v;
		return TRANSPORT_OK;
	}
	if (wt == WT_LEN) {
		struct rd s;

		if (sub(r, &s) != TRANSPORT_OK)
			return TRANSPORT_EDECODE;
		while (s.p < s.end) {
			if (varint(&s, &v, NULL) != TRANSPORT_OK || *n >= max)
				return TRANSPORT_EDECODE;
			out[(*n)++] = v;
		}
		return TRANSPORT_OK;
	}
	return TRANSPORT_EDECODE;
}

static int membership(struct rd r, struct raft_membership *m)
{
	while (r.p < r.end) {
		uint32_t f;
		unsigned wt;
		int rc;

		if (tag(&r, &f, &wt) != TRANSPORT_OK)
			return TRANSPORT_EDECODE;
		switch (f) {
		case 1:
			rc = wt == WT_VARINT ? varint(&r, &m->config_index, NULL)
			                     : TRANSPORT_EDECODE;
			break;
		case 2:
			rc = ids(&r, wt, m->voters, &m->n_voters, RAFT_MAX_MEMBERS);
			break;
		case 3:
			rc = ids(&r, wt, m->nonvoters, &m->n_nonvoters, RAFT_MAX_MEMBERS);
			break;
		case 4:
			rc = ids(&r, wt, m->removed, &m->n_removed, RAFT_MAX_REMOVED);
			break;
		default:
			rc = skip(&r, wt);
			break;
		}
		if (rc != TRANSPORT_OK)
			return rc;
	}
	return TRANSPORT_OK;
}

static int snapshot_meta(struct rd r, struct raft_snapshot_meta *s)
{
	bool seen = false;

	while (r.p < r.end) {
		uint32_t f;
		unsigned wt;
		struct rd ms;
		int rc;

		if (tag(&r, &f, &wt) != TRANSPORT_OK)
			return TRANSPORT_EDECODE;
		if ((f == 1 || f == 2) && wt != WT_VARINT)
			return TRANSPORT_EDECODE;
		if (f == 1)
			rc = varint(&r, &s->index, NULL);
		else if (f == 2)
			rc = varint(&r, &s->term, NULL);
		else if (f == 3) {
			if (wt != WT_LEN || seen || sub(&r, &ms) != TRANSPORT_OK)
				return TRANSPORT_EDECODE;
			seen = true;
			rc = membership(ms, &s->membership);
		} else
			rc = skip(&r, wt);
		if (rc != TRANSPORT_OK)
			return rc;
	}
	return TRANSPORT_OK;
}

static int entry(struct rd r, struct raft_entry *e)
{
	memset(e, 0, sizeof(*e));
	while (r.p < r.end) {
		uint32_t f;
		unsigned wt;
		uint64_t v;
		struct rd d;

		if (tag(&r, &f, &wt) != TRANSPORT_OK)
			return TRANSPORT_EDECODE;
		if (f >= 1 && f <= 3) {
			if (wt != WT_VARINT || varint(&r, &v, NULL) != TRANSPORT_OK)
				return TRANSPORT_EDECODE;
			if (f == 1)
				e->term = v;
			else if (f == 2)
				e->index = v;
			else
				e->type = (uint32_t)v;
		} else if (f == 4) {
			if (wt != WT_LEN || sub(&r, &d) != TRANSPORT_OK)
				return TRANSPORT_EDECODE;
			e->len = (uint32_t)(d.end - d.p);
			e->data = e->len > 0 ? d.p : NULL;
		} else if (skip(&r, wt) != TRANSPORT_OK) {
			return TRANSPORT_EDECODE;
		}
	}
	return TRANSPORT_OK;
}

/* Counts the Entry fields (14) of one Message, validating its framing. */
static int count_entries(struct rd r, size_t *n)
{
	*n = 0;
	while (r.p < r.end) {
		uint32_t f;
		unsigned wt;

		if (tag(&r, &f, &wt) != TRANSPORT_OK || skip(&r, wt) != TRANSPORT_OK)
			return TRANSPORT_EDECODE;
		if (f == 14)
			(*n)++;
	}
	return TRANSPORT_OK;
}

static int message(struct transport_arena *a, struct rd r, struct raft_message *m)
{
	struct raft_entry *ents = NULL;
	size_t n_ents;
	uint32_t k = 0;

	memset(m, 0, sizeof(*m));
	if (count_entries(r, &n_ents) != TRANSPORT_OK || n_ents > TRANSPORT_MAX_ENTRIES)
		return TRANSPORT_EDECODE;
	if (n_ents > 0) {
		ents = transport_arena_alloc(a, n_ents * sizeof(*ents));
		if (ents == NULL)
			return TRANSPORT_ENOMEM;
	}
	while (r.p < r.end) {
		uint32_t f;
		unsigned wt;
		uint64_t v;
		bool nz;
		struct rd s;
		struct raft_snapshot_meta *snap;

		if (tag(&r, &f, &wt) != TRANSPORT_OK)
			return TRANSPORT_EDECODE;
		if (f >= 1 && f <= 13) {
			if (wt != WT_VARINT || varint(&r, &v, &nz) != TRANSPORT_OK)
				return TRANSPORT_EDECODE;
			switch (f) {
			case 1:
				m->type = (uint32_t)v;
				break;
			case 2:
				m->flags = (uint32_t)v;
				break;
			case 3:
				m->group_id = v;
				break;
			case 4:
				m->from = v;
				break;
			case 5:
				m->to = v;
				break;
			case 6:
				m->term = v;
				break;
			case 7:
				m->log_term = v;
				break;
			case 8:
				m->index = v;
				break;
			case 9:
				m->commit = v;
				break;
			case 10:
				m->reject = nz;
				break;
			case 11:
				m->reject_hint = v;
				break;
			case 12:
				m->hint_term = v;
				break;
			default:
				m->context = v;
				break;
			}
			continue;
		}
		if (f == 14 || f == 15) {
			int rc;

			if (wt != WT_LEN || sub(&r, &s) != TRANSPORT_OK)
				return TRANSPORT_EDECODE;
			if (f == 14) {
				rc = entry(s, &ents[k++]);
			} else {
				if (m->snapshot != NULL)
					return TRANSPORT_EDECODE;
				snap = transport_arena_alloc(a, sizeof(*snap));
				if (snap == NULL)
					return TRANSPORT_ENOMEM;
				memset(snap, 0, sizeof(*snap));
				rc = snapshot_meta(s, snap);
				m->snapshot = snap;
			}
			if (rc != TRANSPORT_OK)
				return rc;
			continue;
		}
		if (skip(&r, wt) != TRANSPORT_OK)
			return TRANSPORT_EDECODE;
	}
	m->n_entries = (uint32_t)n_ents;
	m->entries = ents;
	return transport_message_check(m);
}

int transport_decode_batch(struct transport_arena *a, const uint8_t *p, size_t len,
                           struct raft_message **msgs, size_t *n)
{
	struct rd r = {p, p + len}, scan = r;
	struct raft_message *out;
	size_t count = 0, i = 0;

	*msgs = NULL;
	*n = 0;
	/* First pass: validate the batch's framing and count its messages. */
	while (scan.p < scan.end) {
		uint32_t f;
		unsigned wt;

		if (tag(&scan, &f, &wt) != TRANSPORT_OK || skip(&scan, wt) != TRANSPORT_OK)
			return TRANSPORT_EDECODE;
		if (f == 1) {
			if (wt != WT_LEN)
				return TRANSPORT_EDECODE;
			count++;
		}
	}
	if (count == 0)
		return TRANSPORT_OK;
	out = transport_arena_alloc(a, count * sizeof(*out));
	if (out == NULL)
		return TRANSPORT_ENOMEM;
	while (r.p < r.end) {
		uint32_t f;
		unsigned wt;
		struct rd s;
		int rc;

		tag(&r, &f, &wt);
		if (f != 1) {
			skip(&r, wt);
			continue;
		}
		sub(&r, &s);
		rc = message(a, s, &out[i++]);
		if (rc != TRANSPORT_OK)
			return rc;
	}
	*msgs = out;
	*n = count;
	return TRANSPORT_OK;
}
