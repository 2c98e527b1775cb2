/*
 * frame.h - the transport's framing.
 *
 * A frame is a 16-byte header followed by len payload bytes:
 *
 *   0  magic "DRFT" (big-endian 0x44524654)
 *   4  version (1)
 *   5  kind (enum transport_frame_kind)
 *   6  flags, big-endian u16, must be 0
 *   8  len, big-endian u32: payload length
 *  12  crc, big-endian u32: CRC32C of the payload followed by header bytes 0..11
 *
 * The payload comes first so that both sides can checksum it incrementally
 * while it is still in cache: the sender as it encodes, the receiver as each
 * read lands.
 * The header alone decides whether a frame is acceptable: a length above the
 * configured maximum, or above the fixed limit of its kind (control frames
 * are small), is rejected before any memory is allocated for it.  Payload
 * buffers then grow as the bytes arrive, never from the declared length, and
 * may draw from a memory budget shared by all of a transport's connections.
 *
 * Inside TLS the record layer's AEAD already authenticates every byte, so
 * the sender leaves the payload out of the CRC (payload CRC 0) and the
 * receiver checks none (reader no_crc).
 */
#ifndef DRAGONRAFT_TRANSPORT_FRAME_H
#define DRAGONRAFT_TRANSPORT_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "transport/tp_common.h"

#define TRANSPORT_FRAME_MAGIC       0x44524654u
#define TRANSPORT_FRAME_VERSION     2
#define TRANSPORT_FRAME_HDR         16
#define TRANSPORT_DEFAULT_MAX_FRAME (64u << 20)

enum transport_frame_kind {
	TF_HELLO = 1,       /* client -> server: client id, server id, purpose */
	TF_WELCOME = 2,     /* server -> client: server id; the connection is open */
	TF_BATCH = 3,       /* a protobuf MessageBatch */
	TF_SNAP_BEGIN = 4,  /* a protobuf SnapshotHeader */
	TF_SNAP_RESUME = 5, /* receiver -> sender: u64 offset to continue from */
	TF_SNAP_CHUNK = 6,  /* raw snapshot bytes */
	TF_SNAP_END = 7,    /* sender: no more chunks */
	TF_SNAP_DONE = 8,   /* receiver -> sender: u32 transport_rc; with TRANSPORT_ENOSPACE
	                     * also u64 need, u64 free, u64 min_free (TRANSPORT_SNAP_DONE_MAX) */
	TF_KIND_MAX = 8,
};

/* Largest SNAP_DONE payload (a refusal for want of room, with its numbers). */
#define TRANSPORT_SNAP_DONE_MAX 28

/* Largest SNAP_BEGIN payload (a SnapshotHeader with full memberships is about 1.4 KiB). */
#define TRANSPORT_SNAP_BEGIN_MAX 4096

/* Memory that a transport's frame readers may hold together (payload buffers). */
struct transport_mem_budget {
	size_t used;
	size_t limit;
};

/* A decoded frame header. */
struct transport_frame_header {
	uint8_t kind;
	uint32_t len;
	uint32_t crc;
};

/* Writes a complete header for kind and payload (CRC included) into hdr. */
void transport_frame_header_put(uint8_t hdr[TRANSPORT_FRAME_HDR], uint8_t kind, const void *payload,
                                uint32_t len);

/* Writes a header whose payload's CRC32C (from 0) is already known. */
void transport_frame_header_put_crc(uint8_t hdr[TRANSPORT_FRAME_HDR], uint8_t kind, uint32_t len,
                                    uint32_t payload_crc);

/* Validates magic, version, kind, flags and len <= max_payload and the kind's own limit. */
int transport_frame_header_check(const uint8_t hdr[TRANSPORT_FRAME_HDR], uint32_t max_payload,
                                 struct transport_frame_header *h);

/* Checks the CRC of a complete frame given its header bytes and payload. */
int transport_frame_crc_check(const uint8_t hdr[TRANSPORT_FRAME_HDR], const uint8_t *payload,
                              uint32_t len);

/* Called once per complete, CRC-checked frame; a non-zero return stops the reader. */
typedef int (*transport_frame_cb)(void *arg, const struct transport_frame_header *h,
                                  const uint8_t *payload, uint32_t len);

/*
 * Incremental reassembly of a byte stream into frames.  Payloads that arrive
 * whole in one read are handed out in place; others are gathered in a reused
 * buffer that grows as their bytes arrive (doubling, from 64 KiB), drawing on
 * budget when one is set: a growth past its limit fails with TRANSPORT_EBUDGET.
 */
struct transport_frame_reader {
	uint32_t max_payload;
	int err;     /* sticky: first error, after which feed() refuses input */
	bool no_crc; /* payload CRCs are not checked (the stream is authenticated) */
	struct transport_mem_budget *budget; /* NULL: unlimited */
	uint32_t hdr_have;
	uint8_t hdr[TRANSPORT_FRAME_HDR];
	struct transport_frame_header h;
	uint8_t *buf;
	size_t cap;
	size_t have;
	uint32_t pcrc;   /* CRC32C of the payload bytes received so far */
	uint64_t frames; /* frames delivered */
};

/* Initialises a reader accepting payloads up to max_payload bytes. */
void transport_frame_reader_init(struct transport_frame_reader *r, uint32_t max_payload);

/* Frees the reader's buffer. */
void transport_frame_reader_free(struct transport_frame_reader *r);

/* Consumes n bytes, calling cb per frame; returns 0, a transport_rc, or cb's result. */
int transport_frame_reader_feed(struct transport_frame_reader *r, const uint8_t *data, size_t n,
                                transport_frame_cb cb, void *arg);

/*
 * When the reader is in the middle of a payload, sets *p to where the next
 * bytes of it go and returns how many fit there (the buffer grows first when
 * it is full; 0 and a sticky error if that fails); otherwise returns 0.  A
 * socket may read straight there.
 */
size_t transport_frame_reader_direct(struct transport_frame_reader *r, uint8_t **p);

/* Accounts n bytes written at the pointer from transport_frame_reader_direct. */
int transport_frame_reader_commit(struct transport_frame_reader *r, size_t n, transport_frame_cb cb,
                                  void *arg);

/* Header bytes still missing before the next frame's header is complete (0 inside a payload). */
size_t transport_frame_reader_header_missing(const struct transport_frame_reader *r);

#endif /* DRAGONRAFT_TRANSPORT_FRAME_H */
