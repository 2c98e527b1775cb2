/*
 * logdb_codec.h - LogDB keys and values on disk (internal to src/logdb, and
 * used by its tests and fuzz target to write or decode raw records).
 *
 * Keys (DESIGN §7): a 2-byte kind, 2 zero bytes, the big-endian group id and
 * node id, and for entries and snapshots the big-endian index, so the keys of
 * one member's entries sort by index and form one contiguous range.
 *
 * Values: an 8-byte header (format version, kind, 2 zero bytes, CRC32C) and a
 * little-endian body.  The CRC32C covers the key and the body, so a flipped
 * byte, a truncated value or a value stored under the wrong key is detected.
 */
#ifndef DRAGONRAFT_LOGDB_CODEC_H
#define DRAGONRAFT_LOGDB_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "util/crc32c.h"

#include "logdb/logdb.h"

enum logdb_kind {
	LOGDB_KIND_ENTRY = 0x0101,
	LOGDB_KIND_STATE = 0x0202,
	LOGDB_KIND_RANGE = 0x0303, /* Dragonboat's "max index" key: first and last index */
	LOGDB_KIND_NODE = 0x0404,
	LOGDB_KIND_BOOTSTRAP = 0x0505,
	LOGDB_KIND_SNAPSHOT = 0x0606,
	LOGDB_KIND_RECOVERY = 0x0707, /* a received snapshot being recovered: its index */
	LOGDB_KIND_CKPT = 0x0808,     /* group 0, node 0: the shard's last journal checkpoint */
};

#define LOGDB_KEY_LEN         20 /* kind, zeros, group, node */
#define LOGDB_INDEX_KEY_LEN   28 /* ... and index */
#define LOGDB_VALUE_VERSION   2  /* 2: entries stored as runs */
#define LOGDB_HDR_LEN         8
#define LOGDB_RUN_ENTRY_HDR   13 /* per entry of a run: term (8), type (1), len (4) */
#define LOGDB_RUN_MAX_ENTRIES 512
#define LOGDB_RUN_MAX_BYTES   (256u << 10) /* payload; a larger entry is a run of one */

/* Write the 20-byte key of kind for (group, node) into key. */
void logdb_key(uint8_t *key, unsigned kind, uint64_t group_id, uint64_t node_id);
/* Write the 28-byte key of kind for (group, node, index) into key. */
void logdb_index_key(uint8_t *key, unsigned kind, uint64_t group_id, uint64_t node_id,
                     uint64_t index);
/* Parse a key: kind, group, node and (28-byte keys) index; -1 if malformed. */
int logdb_key_parse(const uint8_t *key, size_t len, unsigned *kind, uint64_t *group_id,
                    uint64_t *node_id, uint64_t *index);

/* A growable byte buffer that is reused (its memory is kept across resets). */
struct logdb_buf {
	uint8_t *p;
	size_t len, cap;
	const struct logdb_alloc *alloc;
};

/* Make room for need more bytes; LOGDB_ERR_NOMEM on failure. */
int logdb_buf_reserve(struct logdb_buf *b, size_t need);
/* Release the memory of b. */
void logdb_buf_free(struct logdb_buf *b);

/*
 * Encoders: replace b's content with the value for key (klen bytes).
 *
 * Entries are stored as runs: the entries of one group that one save writes
 * (up to LOGDB_RUN_MAX_ENTRIES / LOGDB_RUN_MAX_BYTES) share one value under
 * the key of the run's first index, body: count (4), then per entry term (8),
 * type (1), len (4), data.  One key per run instead of one per entry is what
 * makes a save of many groups cheap (RocksDB's cost is per key: memtable
 * insert, WAL record, flush).  A run's entries at or above the key of the
 * next run of the same member are stale (a conflicting append wrote over
 * them); readers bound each run by the next key.
 */
int logdb_encode_run(struct logdb_buf *b, const uint8_t *key, size_t klen,
                     const struct raft_entry *ents, uint32_t n);
/* Encode a hard state value. */
int logdb_encode_state(struct logdb_buf *b, const uint8_t *key, size_t klen,
                       const struct raft_hard_state *hs);
/* Encode the entry range (first, last) value. */
int logdb_encode_range(struct logdb_buf *b, const uint8_t *key, size_t klen, uint64_t first,
                       uint64_t last);
/* Encode a node info value (header only). */
int logdb_encode_node(struct logdb_buf *b, const uint8_t *key, size_t klen);
/* Encode a bootstrap value. */
int logdb_encode_bootstrap(struct logdb_buf *b, const uint8_t *key, size_t klen,
                           const struct logdb_bootstrap *bs);
/* Encode a recovery marker value: the index of the snapshot being recovered. */
int logdb_encode_recovery(struct logdb_buf *b, const uint8_t *key, size_t klen, uint64_t index);
/* Encode a journal checkpoint marker: the checkpoint's LSN. */
int logdb_encode_ckpt(struct logdb_buf *b, const uint8_t *key, size_t klen, uint64_t lsn);
/* Encode a snapshot value (its index is in the key). */
int logdb_encode_snapshot(struct logdb_buf *b, const uint8_t *key, size_t klen,
                          const struct logdb_snapshot *s);

/*
 * Decoders: check the header and CRC against key, then parse.  Return 0, or
 * LOGDB_ERR_CORRUPT with *why set to a static reason.
 */

/* A checked run being read: entries first .. first + n - 1. */
struct logdb_run {
	uint64_t first, next; /* index of the first entry, of the next one to read */
	uint32_t n;
	const uint8_t *p; /* the next entry's encoding (inside the value) */
};
/* Check a whole run value (header, CRC, layout); then logdb_run_next() n times. */
int logdb_run_open(const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                   struct logdb_run *run, const char **why);
/* The length of entry index of the run at first as its value says, unchecked (no CRC):
 * false if the value is too short to say.  Only to stop before an entry, never to read it. */
bool logdb_run_peek_len(const uint8_t *val, size_t vlen, uint64_t first, uint64_t index,
                        uint32_t *len);
/* The next entry of an opened run; its data points into the value. */
void logdb_run_next(struct logdb_run *run, struct raft_entry *e);
/* Decode a hard state value. */
int logdb_decode_state(const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                       struct raft_hard_state *hs, const char **why);
/* Decode an entry range value. */
int logdb_decode_range(const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                       uint64_t *first, uint64_t *last, const char **why);
/* Decode a node info value. */
int logdb_decode_node(const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                      const char **why);
/* Decode a bootstrap value. */
int logdb_decode_bootstrap(const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                           struct logdb_bootstrap *bs, const char **why);
/* Decode a recovery marker value. */
int logdb_decode_recovery(const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                          uint64_t *index, const char **why);
/* Decode a journal checkpoint marker value. */
int logdb_decode_ckpt(const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                      uint64_t *lsn, const char **why);
/* Decode a snapshot value. */
int logdb_decode_snapshot(const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                          struct logdb_snapshot *s, const char **why);

/*
 * Journal records (logdb_journal.c): a 24-byte header (magic, body length,
 * LSN, CRC32C over the header's first 16 bytes and the body, 4 zero bytes),
 * the body (a RocksDB write batch) and zeros up to a multiple of 8 bytes.
 * The LSN is the record's byte position in the endless journal, so a record
 * left from a segment file's earlier use (another LSN at that offset) is
 * told apart from the current one.
 */
#define LOGDB_JREC_HDR   24
#define LOGDB_JREC_MAGIC 0x4a52444cu /* "LDRJ" */

/* Bytes a record with a body of len takes (header, body, padding to 8). */
uint64_t logdb_jrec_size(uint64_t len);
/* Fill hdr for a record at lsn with body[0..len). */
void logdb_jrec_header(uint8_t *hdr, uint64_t lsn, const void *body, uint32_t len);

enum logdb_jrec_state {
	LOGDB_JREC_VALID = 0, /* a whole record of this segment's generation */
	LOGDB_JREC_END = 1,   /* zeros, a record of an earlier use, or not a header */
	LOGDB_JREC_TORN = 2,  /* this generation's header with a short body or a bad CRC */
};
/*
 * Classify the bytes at seg[off..size) of a segment that starts at LSN
 * start; for a valid record *body and *len give its body.  off is a multiple
 * of 8.
 */
int logdb_jrec_read(const uint8_t *seg, size_t size, uint64_t start, size_t off,
                    const uint8_t **body, uint32_t *len);
/*
 * The offset of the first valid record at or after from (8-aligned), or size
 * if none.  A record that is whole but whose LSN is not its position counts
 * too when that LSN is at least moved_min (a record that cannot be of the
 * segment's earlier use: moved or renamed); UINT64_MAX counts none of them.
 */
size_t logdb_jrec_find(const uint8_t *seg, size_t size, uint64_t start, size_t from,
                       uint64_t moved_min);

/* What the bytes are where a segment's records end (logdb_jrec_tail). */
enum logdb_jrec_tail_kind {
	LOGDB_TAIL_CLEAN = 0,  /* no header: zeros or bytes of the segment's earlier use
	                        * (mid-record), or a whole record of that earlier use */
	LOGDB_TAIL_SHORT = 1,  /* this use's header whose body runs past the end of the file */
	LOGDB_TAIL_CRC = 2,    /* this use's header whose body is there but fails the CRC */
	LOGDB_TAIL_HEADER = 3, /* the magic, but neither this use's header nor a whole
	                        * record of an earlier use (a damaged or torn header) */
};
#define LOGDB_JREC_SECTOR 512 /* the unit a write cut short by a power loss keeps or loses */
struct logdb_jrec_tail {
	int kind;         /* enum logdb_jrec_tail_kind */
	uint32_t len;     /* the header's body length (SHORT, CRC) */
	size_t bytes;     /* bytes dropped: the record's extent within the file (0 if CLEAN) */
	bool all_sectors; /* CRC: every 512-byte sector of the file that the record covers
	                   * holds a non-zero byte of it */
};
/*
 * Classify seg[off..size), where the segment (starting at LSN start) stops
 * holding valid records, into *t.  off is a multiple of 8.
 */
void logdb_jrec_tail(const uint8_t *seg, size_t size, uint64_t start, size_t off,
                     struct logdb_jrec_tail *t);

#endif /* DRAGONRAFT_LOGDB_CODEC_H */
