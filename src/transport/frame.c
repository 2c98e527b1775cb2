/*
 * frame.c - frame headers and incremental frame reassembly.
 */
#include "transport/frame.h"

#include <string.h>

#include "util/crc32c.h"

/* Above this size, a reassembly buffer is released after its frame. */
#define KEEP_BUF_MAX (16u << 20)

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
	if (h->len > max_payload)
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

void transport_frame_reader_free(struct transport_frame_reader *r)
{
	transport_free(r->buf);
	r->buf = NULL;
	r->cap = 0;
}

/* Checks and hands out one complete frame, then readies the reader for the next. */
static int deliver(struct transport_frame_reader *r, const uint8_t *payload, transport_frame_cb cb,
                   void *arg)
{
	int rc = transport_frame_crc_check(r->hdr, payload, r->h.len);

	if (rc == TRANSPORT_OK) {
		r->frames++;
		r->hdr_have = 0;
		r->have = 0;
		r->pcrc = 0;
		rc = cb(arg, &r->h, payload, r->h.len);
	}
	if (r->cap > KEEP_BUF_MAX && payload == r->buf) {
		transport_free(r->buf);
		r->buf = NULL;
		r->cap = 0;
	}
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

				r->pcrc = len > 0 ? dr_crc32c(0, data, len) : 0;
				rc = deliver(r, data, cb, arg);
				if (rc != TRANSPORT_OK)
					return rc;
				data += len;
				n -= len;
				continue;
			}
			if (r->cap < r->h.len) {
				uint8_t *p = transport_realloc(r->buf, r->h.len);

				if (p == NULL) {
					r->err = TRANSPORT_ENOMEM;
					return r->err;
				}
				r->buf = p;
				r->cap = r->h.len;
			}
			continue;
		}
		{
			size_t k = r->h.len - r->have;

			if (k > n)
				k = n;
			memcpy(r->buf + r->have, data, k);
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
	if (r->err || r->hdr_have < TRANSPORT_FRAME_HDR || r->have >= r->h.len || r->cap < r->h.len)
		return 0;
	*p = r->buf + r->have;
	return r->h.len - r->have;
}

int transport_frame_reader_commit(struct transport_frame_reader *r, size_t n, transport_frame_cb cb,
                                  void *arg)
{
	if (r->err)
		return r->err;
	if (r->hdr_have < TRANSPORT_FRAME_HDR || n > r->h.len - r->have)
		return r->err = TRANSPORT_EINVAL;
	r->pcrc = dr_crc32c(r->pcrc, r->buf + r->have, n); /* just read: still in cache */
	r->have += n;
	if (r->have == r->h.len)
		return deliver(r, r->buf, cb, arg);
	return TRANSPORT_OK;
}
