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
 *	byte 2     the encoding of the entry's text plus 1, or 0: not said.  Only
 *	           ENTRY_CHANGE_SET, ENTRY_REGISTER_TABLE, ENTRY_RESEND_TABLE and
 *	           ENTRY_DDL say it (their values, names, definitions and
 *	           commands are in the proposer's database encoding: a
 *	           PostgreSQL encoding id); builds before 2026-12-04 wrote 0 and
 *	           refuse any other value (a malformed entry)
 *	byte 3     zero (reserved)
 *
 * followed by the type's body; integers are little-endian.  An empty entry
 * (length 0) is Raft's own no-op and is not an application entry.
 *
 * Version 1 bodies:
 *
 *	ENTRY_MEMBER_INFO   u32 node id, u16 length, client address (no NUL;
 *	                    printable ASCII, 1..ENTRY_CLIENT_ADDR_MAX bytes),
 *	                    u8 encoding, u8 locale provider, u16 length, LC_COLLATE,
 *	                    u16 length, LC_CTYPE, u16 length, ICU locale: the
 *	                    member's database encoding (a PostgreSQL encoding id,
 *	                    0..ENTRY_ENCODING_MAX) and locale (pg_database's
 *	                    datlocprovider, a printable ASCII character, and
 *	                    datcollate, datctype, daticulocale: printable ASCII,
 *	                    0..ENTRY_LOCALE_MAX bytes each, no ICU locale: 0
 *	                    bytes), so that a member refuses commands and tables
 *	                    that a member with another would apply otherwise.
 *	                    Encoding ENTRY_ENCODING_UNKNOWN: not said (then the
 *	                    provider is 0 and the lengths 0): a member whose
 *	                    locale names are not printable ASCII (builds before
 *	                    2026-12-04 refuse it)
 *	ENTRY_MEMBER_INFO_V1  as ENTRY_MEMBER_INFO without encoding and locale
 *	                    (not known): written by older builds, still decoded,
 *	                    never written
 *
 *	ENTRY_ADDRESSES     u16 count (1..ENTRY_ADDRESSES_MAX), each: u32 node id
 *	                    (not 0), u64 stamp, u16 length, Raft address (no NUL;
 *	                    printable ASCII, 1..ENTRY_RAFT_ADDR_MAX bytes): the
 *	                    members' Raft addresses as the leader that proposed
 *	                    it knows them, so that every member can reach every
 *	                    other, each with when the leader learned it
 *	                    (wall-clock microseconds; its own: when it proposed;
 *	                    0: not known).  A member keeps, for each node, the
 *	                    address with the newest stamp, whichever group
 *	                    brings it (builds before 2026-12-03 refuse it)
 *	ENTRY_ADDRESSES_V1  as ENTRY_ADDRESSES without the stamps: written by
 *	                    older builds, still decoded (each address as new as
 *	                    the one its group held for that node), never written
 *
 *	ENTRY_CHANGE_SET    owner, sections (one committed transaction's changes)
 *	ENTRY_DDL           u32 node id, name(role), u32 length, command (UTF-8
 *	                    text, no NUL), u32 length, search_path (text, no NUL,
 *	                    may be empty), u64 schema index: the role that
 *	                    proposed it runs it with that search_path, unless
 *	                    another command of the group lies between the schema
 *	                    index (the group's last command its try saw) and its
 *	                    own: then every member skips it
 *	ENTRY_DDL_V2        as ENTRY_DDL without the schema index (never skipped):
 *	                    written by builds before 2026-12-02, still decoded,
 *	                    never written
 *	ENTRY_DDL_V1        as ENTRY_DDL_V2 without the search_path: written by
 *	                    older builds, still decoded
 *	ENTRY_REGISTER_TABLE owner, u64 schema index, name(schema), name(table),
 *	                    u32 length, definition (text, no NUL), u32 length,
 *	                    extras (text, no NUL: what the table has besides its
 *	                    definition, as the statements that give it: owner,
 *	                    privileges, row level security, policies, triggers,
 *	                    comments), sections (the table and its rows as
 *	                    INSERTs; exactly one table)
 *	ENTRY_RESEND_TABLE  as ENTRY_REGISTER_TABLE; the table's id is its first
 *	                    registration's (resend_table: for members that do not
 *	                    replicate it)
 *	ENTRY_REGISTER_TABLE_V2  as ENTRY_REGISTER_TABLE without the extras:
 *	                    written by builds before 2026-12-01, still decoded,
 *	                    never written
 *	ENTRY_RESEND_TABLE_V1  as ENTRY_RESEND_TABLE without the extras: written
 *	                    by builds before 2026-12-01, still decoded, never
 *	                    written
 *	ENTRY_REGISTER_TABLE_V1  as ENTRY_REGISTER_TABLE_V2 without the schema
 *	                    index: written by builds before 2026-11-30, still
 *	                    decoded (a log may hold one), never written
 *
 * where
 *
 *	owner     u32 node id, u64 incarnation, u32 slot, u64 generation: who
 *	          proposed it (node, that node's postmaster start, the backend's
 *	          commit slot and its use), so that the proposing backend applies
 *	          it itself and the apply worker knows to leave it to it
 *	name      u16 length, bytes (1..ENTRY_NAME_MAX, no NUL)
 *	sections  u32 tables, each: u64 table id (the log index of the table's
 *	          registration), u16 columns, each a name;
 *	          u32 sequences, each: u32 table, u16 column (indexes into the
 *	          tables and their columns), i64 last value; or u32
 *	          ENTRY_SEQ_NAMED, u16 0, name(schema), name(sequence), i64 last
 *	          value: a sequence tied to no column of the tables, made by the
 *	          group's commands (builds before 2026-12-02 refuse it);
 *	          u32 ops, each: u8 kind (enum entry_op_kind), u32 table, then
 *	          INSERT: tuple; UPDATE: u8 has old (0|1), [old tuple], new tuple;
 *	          DELETE: old tuple; TRUNCATE: nothing
 *	tuple     u16 columns, each: u8 enum entry_value_kind, and for
 *	          ENTRY_VALUE_BINARY u32 length and the value in its type's
 *	          binary send format
 *
 * Columns travel by name and tables by their group-wide id, never by a local
 * OID.  A decoder never trusts its input: a short body, trailing bytes, an
 * unknown version or type, or a field out of range (an index past the
 * tables) is an error, never a crash.  Whether a tuple has as many values as
 * its table has columns, and a sequence's column index, are the applier's checks
 * (it holds the tables in an array; the decoder allocates nothing).  Once entry_decode_change_set()
 *or entry_decode_register() accepted an entry, walking it with the entry_next_*() functions cannot
 *fail.
 */
#ifndef DRAGONRAFT_ENTRY_H
#define DRAGONRAFT_ENTRY_H

#include <stddef.h>
#include <stdint.h>

#define ENTRY_VERSION         1
#define ENTRY_HEADER_BYTES    4
#define ENTRY_CLIENT_ADDR_MAX 1024 /* bytes of a client address (libpq conninfo) */
#define ENTRY_NAME_MAX        63   /* bytes of a schema, table or column name */
#define ENTRY_RAFT_ADDR_MAX   255  /* bytes of a Raft address (host:port) */
#define ENTRY_ADDRESSES_MAX   64   /* addresses in one ENTRY_ADDRESSES entry */
#define ENTRY_LOCALE_MAX      255  /* bytes of a locale name (member info) */

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
	ENTRY_MEMBER_INFO_V1 = 1,    /* ENTRY_MEMBER_INFO of older builds (no locale) */
	ENTRY_CHANGE_SET = 2,        /* the row changes of one committed transaction */
	ENTRY_DDL_V1 = 3,            /* ENTRY_DDL of older builds (no search_path) */
	ENTRY_REGISTER_TABLE_V1 = 4, /* ENTRY_REGISTER_TABLE of older builds */
	ENTRY_ADDRESSES_V1 = 5,      /* ENTRY_ADDRESSES of older builds (no stamps) */
	ENTRY_RESEND_TABLE_V1 = 6,   /* ENTRY_RESEND_TABLE of older builds */
	ENTRY_REGISTER_TABLE_V2 = 7, /* ENTRY_REGISTER_TABLE of older builds (no extras) */
	ENTRY_RESEND_TABLE = 8,      /* a registration sent again */
	ENTRY_REGISTER_TABLE = 9,    /* a table joins the group: its definition, extras, rows */
	ENTRY_DDL_V2 = 10,           /* ENTRY_DDL of older builds (no schema index) */
	ENTRY_DDL = 11,              /* a utility command run on every member (execute) */
	ENTRY_ADDRESSES = 12,        /* the members' Raft addresses, stamped */
	ENTRY_MEMBER_INFO = 13,      /* a member's node id, client address, encoding, locale */
};

/* Is type a member info (ENTRY_MEMBER_INFO or its older type)? */
int entry_is_member_info(unsigned type);

/* Is type a members' addresses entry (ENTRY_ADDRESSES or its older type)? */
int entry_is_addresses(unsigned type);

/* Is type a utility command (ENTRY_DDL or one of its older types)? */
int entry_is_ddl(unsigned type);

/* Static name of a type ("member info"), or NULL when unknown. */
const char *entry_type_name(unsigned type);

/* A decoded header: the type and where its body is (inside the input). */
struct entry_header {
	unsigned version;
	unsigned type;
	int encoding; /* of the entry's text (a PostgreSQL encoding id), -1: not said */
	const uint8_t *body;
	size_t body_len;
};

/* Check the header of an entry of len bytes and find its body. */
int entry_decode_header(const uint8_t *p, size_t len, struct entry_header *out);

/* The highest encoding id a header can say. */
#define ENTRY_ENCODING_MAX 254

/* Does an entry of type say the encoding of its text (header byte 2)? */
int entry_says_encoding(unsigned type);

/* Say in an encoded entry of len bytes (of a type that says it) that its text
 * is in encoding (0..ENTRY_ENCODING_MAX); ENTRY_ERR_FORMAT otherwise. */
int entry_set_encoding(uint8_t *entry, size_t len, int encoding);

/* A member info's encoding byte when it says no encoding nor locale. */
#define ENTRY_ENCODING_UNKNOWN 255

/*
 * ENTRY_MEMBER_INFO: the strings point into the decoded input (not
 * NUL-terminated).  has_locale 0: encoding and locale not known (an
 * ENTRY_MEMBER_INFO_V1, or a member that could not say them); the other
 * fields are then 0.
 */
struct entry_member_info {
	uint32_t node_id;
	const char *client_addr;
	uint16_t client_addr_len;
	int has_locale;
	int encoding;         /* a PostgreSQL encoding id, 0..ENTRY_ENCODING_MAX */
	char locale_provider; /* datlocprovider: 'c' libc, 'i' ICU */
	const char *collate;
	uint16_t collate_len;
	const char *ctype;
	uint16_t ctype_len;
	const char *icu_locale; /* 0 bytes: none */
	uint16_t icu_locale_len;
};

/* Is mi's encoding and locale part one an ENTRY_MEMBER_INFO can say
 * (ENTRY_OK; ENTRY_ERR_FORMAT: a name longer than ENTRY_LOCALE_MAX or not
 * printable ASCII, an encoding or provider out of range)? */
int entry_check_member_locale(const struct entry_member_info *mi);
/* Bytes mi takes encoded as an ENTRY_MEMBER_INFO. */
size_t entry_member_info_size(const struct entry_member_info *mi);
/* Encode mi into buf (cap bytes) as an ENTRY_MEMBER_INFO; *len receives the
 * bytes written. */
int entry_encode_member_info(uint8_t *buf, size_t cap, const struct entry_member_info *mi,
                             size_t *len);
/* The same as an ENTRY_MEMBER_INFO_V1 (no locale): tests of older logs only. */
int entry_encode_member_info_v1(uint8_t *buf, size_t cap, const struct entry_member_info *mi,
                                size_t *len);
/* Decode the body of a member info entry of either type (h from
 * entry_decode_header). */
int entry_decode_member_info(const struct entry_header *h, struct entry_member_info *out);

/* ENTRY_ADDRESSES: one member's node id, Raft address (not NUL-terminated) and stamp. */
struct entry_address {
	uint32_t node_id;
	const char *addr;
	uint16_t addr_len;
	uint64_t learned; /* when the proposer learned it (0: not known; ENTRY_ADDRESSES_V1) */
};

/* Bytes an ENTRY_ADDRESSES entry of n addresses of at most addr_max bytes takes at most. */
#define ENTRY_ADDRESSES_BYTES(n, addr_max) (ENTRY_HEADER_BYTES + 2 + (n) * (14 + (addr_max)))

/* Encode n addresses into buf (cap bytes); *len receives the bytes written. */
int entry_encode_addresses(uint8_t *buf, size_t cap, const struct entry_address *a, size_t n,
                           size_t *len);
/* The same as an ENTRY_ADDRESSES_V1 (no stamps): tests of older logs only. */
int entry_encode_addresses_v1(uint8_t *buf, size_t cap, const struct entry_address *a, size_t n,
                              size_t *len);
/* Decode the body of an addresses entry of either type into out (room for
 * ENTRY_ADDRESSES_MAX; the addresses point into the input; learned 0 in an
 * ENTRY_ADDRESSES_V1); *n receives how many. */
int entry_decode_addresses(const struct entry_header *h, struct entry_address *out, size_t *n);

/* ---- change sets and table registrations ---- */

enum entry_op_kind {
	ENTRY_OP_INSERT = 1,
	ENTRY_OP_UPDATE = 2,
	ENTRY_OP_DELETE = 3,
	ENTRY_OP_TRUNCATE = 4,
};

enum entry_value_kind {
	ENTRY_VALUE_NULL = 0,
	ENTRY_VALUE_BINARY = 1, /* u32 length, bytes */
	ENTRY_VALUE_ABSENT = 2, /* not shipped: an old tuple's non-key column */
};

/* Who proposed an entry (see the format above). */
struct entry_owner {
	uint32_t node_id;
	uint64_t incarnation;
	uint32_t slot;
	uint64_t generation;
};

/*
 * A growing output buffer.  grow (NULL: realloc) returns a block of at least
 * size bytes holding the old contents, or NULL; after a failure the buffer
 * is marked failed and takes nothing more.
 */
struct entry_buf {
	uint8_t *data;
	size_t len;
	size_t cap;
	void *(*grow)(void *old, size_t size);
	int failed;
};

void entry_put_u8(struct entry_buf *b, uint8_t v);
void entry_put_u16(struct entry_buf *b, uint16_t v);
void entry_put_u32(struct entry_buf *b, uint32_t v);
void entry_put_u64(struct entry_buf *b, uint64_t v);
void entry_put_bytes(struct entry_buf *b, const void *p, size_t len);
/* Overwrite 4 bytes at offset off (a count reserved with entry_put_u32). */
void entry_patch_u32(struct entry_buf *b, size_t off, uint32_t v);

/* Op encoders: append to an ops buffer (the caller counts its ops). */
void entry_put_op(struct entry_buf *b, unsigned kind, uint32_t table);
/* A tuple: entry_put_tuple(n), then n values. */
void entry_put_tuple(struct entry_buf *b, uint16_t n_cols);
void entry_put_value(struct entry_buf *b, unsigned kind, const void *data, uint32_t len);

/* A table as an encoder takes it. */
struct entry_table_in {
	uint64_t table_id;
	uint16_t n_cols;
	const char *const *cols; /* NUL-terminated names */
};

/* A sequence's last value, by the column that owns it, or (table
 * ENTRY_SEQ_NAMED) by its schema and name. */
#define ENTRY_SEQ_NAMED UINT32_MAX
struct entry_seq {
	uint32_t table;  /* index into the tables, or ENTRY_SEQ_NAMED */
	uint16_t column; /* index into that table's columns (0 when named) */
	int64_t value;
	const char *schema; /* ENTRY_SEQ_NAMED: not NUL-terminated */
	const char *name;
	uint16_t schema_len, name_len;
};

/* What a registration adds to the sections. */
struct entry_register_in {
	const char *schema;
	const char *name;
	const char *def;    /* canonical definition (CREATE statements) */
	int resend;         /* ENTRY_RESEND_TABLE, not ENTRY_REGISTER_TABLE */
	const char *extras; /* the table's owner, privileges, ... (NULL: none) */
};

/*
 * Encode a change set (reg NULL) or a registration into out (from its
 * current length): ops/ops_len/n_ops are the ops encoded with the op
 * encoders.  schema_index is the index of the group's last utility command
 * the writer had seen applied when it first wrote: a change set (or a
 * resend) with a utility command of its group changing its tables between
 * that index and its own was built against another schema, and every member
 * skips it; so does a registration with any utility command there (the
 * table is not replicated yet: which commands change it is not known).  ENTRY_ERR_FORMAT for a name
 * out of range or a registration without exactly one table, ENTRY_ERR_SPACE when the buffer failed.
 */
int entry_encode_change_set(struct entry_buf *out, const struct entry_owner *owner,
                            uint64_t schema_index, const struct entry_register_in *reg,
                            const struct entry_table_in *tables, uint32_t n_tables,
                            const struct entry_seq *seqs, uint32_t n_seqs, const uint8_t *ops,
                            size_t ops_len, uint32_t n_ops);

/* A bounded cursor over decoded input. */
struct entry_reader {
	const uint8_t *p;
	const uint8_t *end;
};

/* A decoded change set or registration; pointers into the input. */
struct entry_change_set {
	struct entry_owner owner;
	uint64_t schema_index; /* see entry_encode_change_set; 0 in ENTRY_REGISTER_TABLE_V1 */
	/* registration only */
	const char *schema;
	uint16_t schema_len;
	const char *name;
	uint16_t name_len;
	const char *def;
	uint32_t def_len;
	const char *extras; /* ENTRY_REGISTER_TABLE and ENTRY_RESEND_TABLE (else NULL) */
	uint32_t extras_len;
	/* the sections */
	uint32_t n_tables;
	struct entry_reader tables;
	uint32_t n_seqs;
	struct entry_reader seqs;
	uint32_t n_ops;
	struct entry_reader ops;
};

/* Only the owner of a change set or registration (a cheap look, no check of
 * the rest). */
int entry_decode_owner(const struct entry_header *h, struct entry_owner *out);

/* Decode and check the whole body of a change set / a registration (either kind). */
int entry_decode_change_set(const struct entry_header *h, struct entry_change_set *out);
int entry_decode_register(const struct entry_header *h, struct entry_change_set *out);

/* A table of the sections; its column names are read with entry_next_name(). */
struct entry_table {
	uint64_t table_id;
	uint16_t n_cols;
	struct entry_reader cols;
};

/* A tuple; its values are read with entry_next_value(). */
struct entry_tuple {
	uint16_t n_cols;
	struct entry_reader values;
};

struct entry_op {
	unsigned kind;
	uint32_t table;
	int has_old;
	struct entry_tuple old_tuple; /* UPDATE with has_old, DELETE */
	struct entry_tuple new_tuple; /* INSERT, UPDATE */
};

/* Walk the sections (r starts as a copy of cs->tables, ->seqs, ->ops). */
int entry_next_table(struct entry_reader *r, struct entry_table *t);
int entry_next_name(struct entry_reader *r, const char **name, uint16_t *len);
int entry_next_seq(struct entry_reader *r, struct entry_seq *s);
int entry_next_op(struct entry_reader *r, struct entry_op *op);
int entry_next_value(struct entry_reader *r, unsigned *kind, const uint8_t **data, uint32_t *len);

/* ---- replicated utility commands ---- */

struct entry_ddl {
	uint32_t node_id;
	const char *role; /* the proposing role's name; not NUL-terminated when decoded */
	uint16_t role_len;
	const char *command; /* not NUL-terminated */
	uint32_t len;
	const char *search_path; /* not NUL-terminated; NULL in an ENTRY_DDL_V1 */
	uint32_t search_path_len;
	int has_schema_index;  /* ENTRY_DDL (0 in the types of older builds) */
	uint64_t schema_index; /* the group's last command the try saw (0: none yet) */
};

/* Encode a DDL entry into out (from its current length): ENTRY_DDL, or
 * (tests of older entries) ENTRY_DDL_V2 without has_schema_index and
 * ENTRY_DDL_V1 when search_path is NULL too. */
int entry_encode_ddl(struct entry_buf *out, const struct entry_ddl *d);
int entry_decode_ddl(const struct entry_header *h, struct entry_ddl *out);

#endif /* DRAGONRAFT_ENTRY_H */
