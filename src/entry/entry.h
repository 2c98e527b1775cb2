/*
 * entry.h - the encoding of dragonraft's application entries: the payload
 * of every Raft log entry that the PostgreSQL side proposes and the apply
 * worker decodes.  Plain C, no PostgreSQL, so that the decoder can be
 * unit-tested and fuzzed (bytes from the log come from other nodes).
 *
 * Every entry starts with a 4-byte header:
 *
 *	byte 0     format version (ENTRY_VERSION)
 *	byte 1     type (enum entry_type)
 *	bytes 2-3  zero (reserved)
 *
 * followed by the type's body; integers are little-endian.  An empty entry
 * (length 0) is Raft's own no-op and is not an application entry.
 *
 * Version 1 bodies:
 *
 *	ENTRY_MEMBER_INFO   u32 node id, u16 length, client address (no NUL;
 *	                    printable ASCII, 1..ENTRY_CLIENT_ADDR_MAX bytes)
 *
 * A decoder never trusts its input: a short body, trailing bytes, an unknown
 * version or type, or a field out of range is an error, never a crash.
 * Later types (change sets, replicated DDL, table registration) are added
 * here, with their encoder and decoder side by side.
 */
#ifndef DRAGONRAFT_ENTRY_H
#define DRAGONRAFT_ENTRY_H

#include <stddef.h>
#include <stdint.h>

#define ENTRY_VERSION         1
#define ENTRY_HEADER_BYTES    4
#define ENTRY_CLIENT_ADDR_MAX 1024 /* bytes of a client address (libpq conninfo) */

/* Return codes: 0 is success, errors are negative. */
enum entry_rc {
	ENTRY_OK = 0,
	ENTRY_ERR_SHORT = -1,   /* fewer bytes than the header or body needs */
	ENTRY_ERR_VERSION = -2, /* written by a newer (or unknown) format version */
	ENTRY_ERR_TYPE = -3,    /* unknown entry type */
	ENTRY_ERR_FORMAT = -4,  /* a field is out of range, or bytes are left over */
	ENTRY_ERR_SPACE = -5,   /* the encoder's buffer is too small */
};

/* Static description of an rc. */
const char *entry_strerror(int rc);

enum entry_type {
	ENTRY_MEMBER_INFO = 1, /* a member's node id and client address */
};

/* Static name of a type ("member info"), or NULL when unknown. */
const char *entry_type_name(unsigned type);

/* A decoded header: the type and where its body is (inside the input). */
struct entry_header {
	unsigned version;
	unsigned type;
	const uint8_t *body;
	size_t body_len;
};

/* Check the header of an entry of len bytes and find its body. */
int entry_decode_header(const uint8_t *p, size_t len, struct entry_header *out);

/* ENTRY_MEMBER_INFO: the client address points into the decoded input. */
struct entry_member_info {
	uint32_t node_id;
	const char *client_addr; /* not NUL-terminated */
	uint16_t client_addr_len;
};

/* Bytes an encoded member info entry with an address of addr_len bytes takes. */
size_t entry_member_info_size(size_t addr_len);
/* Encode into buf (cap bytes); *len receives the bytes written. */
int entry_encode_member_info(uint8_t *buf, size_t cap, const struct entry_member_info *mi,
                             size_t *len);
/* Decode the body of a member info entry (h from entry_decode_header). */
int entry_decode_member_info(const struct entry_header *h, struct entry_member_info *out);

#endif /* DRAGONRAFT_ENTRY_H */
