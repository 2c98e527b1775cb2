/*
 * frame.c - frame headers and incremental frame reassembly.
 */
#include "transport/frame.h"

#include <string.h>

#include "util/crc32c.h"

/* Above this size, a reassembly buffer is released after its frame. */
#define KEEP_BUF_MAX (4u << 20)
/* First size of a reassembly buffer; it doubles as bytes arrive. */
#define BUF_START (64u << 10)

/* Fixed payload limits of the control kinds (UINT32_MAX: max_payload only). */
static const uint32_t kind_max[TF_KIND_MAX + 1] = {
        [TF_HELLO] = 17,         [TF_WELCOME] = 8,
        [TF_BATCH] = UINT32_MAX, [TF_SNAP_BEGIN] = TRANSPORT_SNAP_BEGIN_MAX,
        [TF_SNAP_RESUME] = 8,    [TF_SNAP_CHUNK] = UINT32_MAX,
        [TF_SNAP_END] = 0,       [TF_SNAP_DONE] = TRANSPORT_SNAP_DONE_MAX,
};

static void fill(uint8_t *hdr, uint8_t kind, uint32_t len)
{
	tp_put32(hdr, TRANSPORT_FRAME_MAGIC);
	hdr[4] = TRANSPORT_FRAME_VERSION;
	hdr[5] = kind;
	hdr[6] = 0;
	hdr[7] = 0;
	tp_put32(hdr + 8, len);
}

void transport_frame_header_put(uint8_t hdr[TRANSPORT_FRAME_HDR], uint8_t kind, const void *payload,
                                uint32_t len)
{
	uint32_t crc = len > 0 ? dr_crc32c(0, payload, len) : 0;

	transport_frame_header_put_crc(hdr, kind, len, crc);
}

void transport_frame_header_put_crc(uint8_t hdr[TRANSPORT_FRAME_HDR], uint8_t kind, uint32_t len,
                                    uint32_t payload_crc)
{
	fill(hdr, kind, len);
	tp_put32(hdr + 12, dr_crc32c(payload_crc, hdr, 12));
}

int transport_frame_header_check(const uint8_t hdr[TRANSPORT_FRAME_HDR], uint32_t max_payload,
                                 struct transport_frame_header *h)
{
	if (tp_get32(hdr) != TRANSPORT_FRAME_MAGIC)
		return TRANSPORT_EMAGIC;
	if (hdr[4] != TRANSPORT_FRAME_VERSION || hdr[5] == 0 || hdr[5] > TF_KIND_MAX ||
	    hdr[6] != 0 || hdr[7] != 0)
		return TRANSPORT_EVERSION;
	h->kind = hdr[5];
	h->len = tp_get32(hdr + 8);
	h->crc = tp_get32(hdr + 12);
	if (h->len > max_payload || h->len > kind_max[h->kind])
		return TRANSPORT_ETOOBIG;
	return TRANSPORT_OK;
}

int transport_frame_crc_check(const uint8_t hdr[TRANSPORT_FRAME_HDR], const uint8_t *payload,
                              uint32_t len)
{
	uint32_t crc = len > 0 ? dr_crc32c(0, payload, len) : 0;

	crc = dr_crc32c(crc, hdr, 12);
	return crc == tp_get32(hdr + 12) ? TRANSPORT_OK : TRANSPORT_ECRC;
}

void transport_frame_reader_init(struct transport_frame_reader *r, uint32_t max_payload)
{
	memset(r, 0, sizeof(*r));
	r->max_payload = max_payload;
}

/* Frees the reassembly buffer and returns its bytes to the budget. */
static void release(struct transport_frame_reader *r)
{
	if (r->budget != NULL)
		r->budget->used -= r->cap;
	transport_free(r->buf);
	r->buf = NULL;
	r->cap = 0;
}

void transport_frame_reader_free(struct transport_frame_reader *r)
{
	release(r);
}

/* Grows the buffer toward the frame's length: doubling, at least to BUF_START. */
static int grow(struct transport_frame_reader *r)
{
	size_t cap = r->cap < BUF_START ? BUF_START : r->cap * 2;
	uint8_t *p;

	if (cap > r->h.len)
		cap = r->h.len;
	if (r->budget != NULL && r->budget->used + (cap - r->cap) > r->budget->limit)
		return r->err = TRANSPORT_EBUDGET;
	p = transport_realloc(r->buf, cap);
	if (p == NULL)
		return r->err = TRANSPORT_ENOMEM;
	if (r->budget != NULL)
		r->budget->used += cap - r->cap;
	r->buf = p;
	r->cap = cap;
	return TRANSPORT_OK;
}

/* Checks and hands out one complete frame, then readies the reader for the next. */
static int deliver(struct transport_frame_reader *r, const uint8_t *payload, transport_frame_cb cb,
                   void *arg)
{
	int rc = TRANSPORT_OK;

	/* pcrc already covers the payload: it was summed as the bytes arrived. */
	if (!r->no_crc && dr_crc32c(r->pcrc, r->hdr, 12) != tp_get32(r->hdr + 12))
		rc = TRANSPORT_ECRC;

	if (rc == TRANSPORT_OK) {
		r->frames++;
		r->hdr_have = 0;
		r->have = 0;
		r->pcrc = 0;
		rc = cb(arg, &r->h, payload, r->h.len);
	}
	if (r->cap > KEEP_BUF_MAX && payload == r->buf)
		release(r);
	if (rc != TRANSPORT_OK)
		r->err = rc;
	return rc;
}

int transport_frame_reader_feed(struct transport_frame_reader *r, const uint8_t *data, size_t n,
                                transport_frame_cb cb, void *arg)
{
	int rc;

	if (r->err)
		return r->err;
	while (n > 0) {
		if (r->hdr_have < TRANSPORT_FRAME_HDR) {
			size_t k = TRANSPORT_FRAME_HDR - r->hdr_have;

			if (k > n)
				k = n;
			memcpy(r->hdr + r->hdr_have, data, k);
			r->hdr_have += (uint32_t)k;
			data += k;
			n -= k;
			if (r->hdr_have < TRANSPORT_FRAME_HDR)
				break;
			rc = transport_frame_header_check(r->hdr, r->max_payload, &r->h);
			if (rc != TRANSPORT_OK) {
				r->err = rc;
				return rc;
			}
			r->have = 0;
			r->pcrc = 0;
			if (n >= r->h.len) {
				/* The whole payload is here: no copy. */
				size_t len = r->h.len;

				if (!r->no_crc && len > 0)
					r->pcrc = dr_crc32c(0, data, len);
				rc = deliver(r, data, cb, arg);
				if (rc != TRANSPORT_OK)
					return rc;
				data += len;
				n -= len;
				continue;
			}
			continue;
		}
		{
			size_t k = r->h.len - r->have;

			if (r->have == r->cap && grow(r) != TRANSPORT_OK)
				return r->err;
			if (k > r->cap - r->have)
				k = r->cap - r->have;
			if (k > n)
				k = n;
			memcpy(r->buf + r->have, data, k);
			if (!r->no_crc)
				r->pcrc = dr_crc32c(r->pcrc, r->buf + r->have, k);
			r->have += k;
			data += k;
			n -= k;
			if (r->have == r->h.len) {
				rc = deliver(r, r->buf, cb, arg);
				if (rc != TRANSPORT_OK)
					return rc;
			}
		}
	}
	return TRANSPORT_OK;
}

size_t transport_frame_reader_direct(struct transport_frame_reader *r, uint8_t **p)
{
	size_t room;

	if (r->err || r->hdr_have < TRANSPORT_FRAME_HDR || r->have >= r->h.len)
		return 0;
	if (r->have == r->cap && grow(r) != TRANSPORT_OK)
		return 0;
	room = r->cap - r->have;
	*p = r->buf + r->have;
	return room < r->h.len - r->have ? room : r->h.len - r->have;
}

size_t transport_frame_reader_header_missing(const struct transport_frame_reader *r)
{
	return TRANSPORT_FRAME_HDR - r->hdr_have;
}

int transport_frame_reader_commit(struct transport_frame_reader *r, size_t n, transport_frame_cb cb,
                                  void *arg)
{
	if (r->err)
		return r->err;
	if (r->hdr_have < TRANSPORT_FRAME_HDR || n > r->h.len - r->have || n > r->cap - r->have)
		return r->err = TRANSPORT_EINVAL;
	if (!r->no_crc)
		r->pcrc = dr_crc32c(r->pcrc, r->buf + r->have, n); /* just read: still in cache */
	r->have += n;
	if (r->have == r->h.len)
		return deliver(r, r->buf, cb, arg);
	return TRANSPORT_OK;
}
