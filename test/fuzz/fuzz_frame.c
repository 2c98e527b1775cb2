/*
 * fuzz_frame.c - libFuzzer target for the frame decoder: header checks, CRC,
 * and incremental stream reassembly with both the copying path (feed) and
 * the direct-read path (direct + commit), split at input-chosen points, with
 * buffers growing under a memory budget and, when chosen, without CRCs.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "transport/frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct sink {
	uint64_t bytes;
};

static int on_frame(void *arg, const struct transport_frame_header *h, const uint8_t *p,
                    uint32_t len)
{
	struct sink *s = arg;
	volatile uint8_t x = 0;

	if (h->len != len || h->kind == 0 || h->kind > TF_KIND_MAX)
		__builtin_trap();
	for (uint32_t i = 0; i < len; i++)
		x ^= p[i]; /* touch every byte: ASan checks the bounds */
	s->bytes += len;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct transport_frame_reader r;
	struct transport_frame_header h;
	struct sink s = {0};
	struct transport_mem_budget budget = {.limit = 96u << 10};
	size_t step, off = 0;
	int rc = 0;

	if (size < 2)
		return 0;
	/* The first byte picks the read size, the second the payload limit. */
	step = (size_t)data[0] % 64 + 1;
	transport_frame_reader_init(&r, (uint32_t)data[1] << 8);
	/* The top bit of the first byte: the stream is authenticated (no CRC), as inside TLS. */
	r.no_crc = (data[0] & 0x80) != 0;
	r.budget = &budget;
	data += 2;
	size -= 2;
	if (size >= TRANSPORT_FRAME_HDR && transport_frame_header_check(data, 1 << 16, &h) == 0 &&
	    h.len <= size - TRANSPORT_FRAME_HDR)
		(void)transport_frame_crc_check(data, data + TRANSPORT_FRAME_HDR, h.len);
	while (off < size && rc == 0) {
		uint8_t *dst;
		size_t want = transport_frame_reader_direct(&r, &dst);
		size_t n = size - off < step ? size - off : step;

		if (want > 0 && (off & 1)) {
			if (n > want)
				n = want;
			memcpy(dst, data + off, n);
			rc = transport_frame_reader_commit(&r, n, on_frame, &s);
		} else {
			rc = transport_frame_reader_feed(&r, data + off, n, on_frame, &s);
		}
		off += n;
	}
	transport_frame_reader_free(&r);
	if (budget.used != 0)
		__builtin_trap(); /* every buffer byte went back to the budget */
	return 0;
}
