/*
 * codec.h - conversion between src/raft's structs and the protobuf-c wire
 * schema (raft.proto), with a bounds check on every decoded field.
 *
 * Decoding allocates the raft_message array, entry arrays and snapshot
 * metadata from a transport_arena, so one reset frees a whole batch; entry
 * data point into the decoded bytes (transport_decode_batch, wire.c) or, for
 * the protobuf-c reference decoder, into arena copies.  The transport keeps
 * one arena per connection: decoded messages live until the receive
 * callback returns.
 */
#ifndef DRAGONRAFT_TRANSPORT_CODEC_H
#define DRAGONRAFT_TRANSPORT_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "raft/raft_msg.h"
#include "transport/frame.h"
#include "transport/raft.pb-c.h"
#include "transport/tp_common.h"

/* Most entries one decoded message may carry. */
#define TRANSPORT_MAX_ENTRIES (1u << 20)

/* A bump allocator reset once per decoded frame. */
struct transport_arena {
	uint8_t *base;                /* main block, reused across resets */
	size_t cap;                   /* size of base */
	size_t used;                  /* bytes used in base */
	size_t total;                 /* bytes handed out since the last reset */
	size_t limit;                 /* most bytes handed out between resets */
	int failed;                   /* an allocation hit the limit since the last reset */
	struct dr_arena_block *extra; /* overflow blocks, freed on reset */
	size_t extra_used;            /* bytes used in the newest overflow block */
	ProtobufCAllocator pb;        /* protobuf-c allocator drawing from this arena */
};

/* Initialises an empty arena that hands out at most limit bytes per reset. */
void transport_arena_init(struct transport_arena *a, size_t limit);

/* Returns n bytes aligned to 16, or NULL once the limit would be exceeded. */
void *transport_arena_alloc(struct transport_arena *a, size_t n);

/* Frees everything handed out; keeps one block sized for the last use. */
void transport_arena_reset(struct transport_arena *a);

/* Releases all the arena's memory. */
void transport_arena_free(struct transport_arena *a);

/* Reusable scratch space for encoding messages (avoids one malloc per message). */
struct transport_encoder {
	Dragonraft__Entry *ents;
	Dragonraft__Entry **ptrs;
	size_t cap;
};

/* Frees the encoder's scratch space. */
void transport_encoder_free(struct transport_encoder *e);

/*
 * Appends m to out as one element of a MessageBatch (field 1: tag, length,
 * Message), so a buffer of appended messages is a valid MessageBatch.
 */
int transport_encode_message(struct transport_encoder *e, const struct raft_message *m,
                             struct transport_buf *out);

/* Appends a MessageBatch of n messages to out. */
int transport_encode_batch(struct transport_encoder *e, const struct raft_message *msgs, size_t n,
                           struct transport_buf *out);

/*
 * Decodes a MessageBatch into raft messages without copying entry data:
 * entries point into p, everything else is allocated in arena a.  Every field
 * is checked (message type and flags, non-zero ids, entry types and
 * contiguity, membership sizes and ids, fields a type does not use).  Returns
 * TRANSPORT_EDECODE for any malformed input, TRANSPORT_ENOMEM when the arena
 * limit is reached.  (wire.c)
 */
int transport_decode_batch(struct transport_arena *a, const uint8_t *p, size_t len,
                           struct raft_message **msgs, size_t *n);

/*
 * The same through protobuf-c's unpack (entry data copied into the arena):
 * the reference the fast decoder is fuzzed against.
 */
int transport_decode_batch_pbc(struct transport_arena *a, const uint8_t *p, size_t len,
                               struct raft_message **msgs, size_t *n);

/* Validates one raft message as transport_decode_batch does. */
int transport_message_check(const struct raft_message *m);

/* Validates a membership: sizes within limits, ids non-zero and unique. */
int transport_membership_check(const struct raft_membership *m);

/* Snapshot stream header (SnapshotHeader in raft.proto). */
struct transport_snapshot_header {
	uint64_t group_id;
	uint64_t from;
	uint64_t to;
	struct raft_snapshot_meta meta;
	uint64_t total_size;
	uint32_t crc32c;
};

/* Appends an encoded SnapshotHeader to out. */
int transport_encode_snapshot_header(const struct transport_snapshot_header *h,
                                     struct transport_buf *out);

/*
 * Decodes and checks a SnapshotHeader of at most TRANSPORT_SNAP_BEGIN_MAX bytes, protobuf-c's
 * structures drawn from arena a (and its limit), which is reset before returning.
 */
int transport_decode_snapshot_header(struct transport_arena *a, const uint8_t *p, size_t len,
                                     struct transport_snapshot_header *h);

/* Appends an encoded HardState to out. */
int transport_encode_hard_state(const struct raft_hard_state *hs, struct transport_buf *out);

/* Decodes a HardState. */
int transport_decode_hard_state(const uint8_t *p, size_t len, struct raft_hard_state *hs);

/* Appends an encoded ConfChange to out. */
int transport_encode_conf_change(const struct raft_conf_change *cc, struct transport_buf *out);

/* Decodes and checks a ConfChange; context points into arena a. */
int transport_decode_conf_change(struct transport_arena *a, const uint8_t *p, size_t len,
                                 struct raft_conf_change *cc);

#endif /* DRAGONRAFT_TRANSPORT_CODEC_H */
