/*
 * entry.c - encoders and decoders of dragonraft's application entries (see
 * entry.h for the format).
 */
#include <stdlib.h>
#include <string.h>

#include "entry/entry.h"

const char *entry_strerror(int rc)
{
	switch (rc) {
	case ENTRY_OK:
		return "ok";
	case ENTRY_ERR_SHORT:
		return "entry is truncated";
	case ENTRY_ERR_VERSION:
		return "entry has an unknown format version";
	case ENTRY_ERR_TYPE:
		return "entry has an unknown type";
	case ENTRY_ERR_FORMAT:
		return "entry is malformed";
	case ENTRY_ERR_SPACE:
		return "buffer too small for the entry";
	}
	return "unknown error";
}

const char *entry_type_name(unsigned type)
{
	switch (type) {
	case ENTRY_MEMBER_INFO:
	case ENTRY_MEMBER_INFO_V1:
		return "member info";
	case ENTRY_CHANGE_SET:
		return "change set";
	case ENTRY_DDL:
	case ENTRY_DDL_V2:
	case ENTRY_DDL_V1:
		return "utility command";
	case ENTRY_REGISTER_TABLE:
	case ENTRY_REGISTER_TABLE_V2:
	case ENTRY_REGISTER_TABLE_V1:
		return "table registration";
	case ENTRY_ADDRESSES:
	case ENTRY_ADDRESSES_V1:
		return "member addresses";
	case ENTRY_RESEND_TABLE:
	case ENTRY_RESEND_TABLE_V1:
		return "table registration sent again";
	}
	return NULL;
}

int entry_is_ddl(unsigned type)
{
	return type == ENTRY_DDL || type == ENTRY_DDL_V2 || type == ENTRY_DDL_V1;
}

int entry_is_member_info(unsigned type)
{
	return type == ENTRY_MEMBER_INFO || type == ENTRY_MEMBER_INFO_V1;
}

int entry_is_addresses(unsigned type)
{
	return type == ENTRY_ADDRESSES || type == ENTRY_ADDRESSES_V1;
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static void put_header(uint8_t *p, unsigned type)
{
	p[0] = ENTRY_VERSION;
	p[1] = (uint8_t)type;
	p[2] = 0;
	p[3] = 0;
}

int entry_decode_header(const uint8_t *p, size_t len, struct entry_header *out)
{
	if (len < ENTRY_HEADER_BYTES)
		return ENTRY_ERR_SHORT;
	if (p[0] != ENTRY_VERSION)
		return ENTRY_ERR_VERSION;
	if (entry_type_name(p[1]) == NULL)
		return ENTRY_ERR_TYPE;
	if ((p[2] != 0 && !entry_says_encoding(p[1])) || p[3] != 0)
		return ENTRY_ERR_FORMAT;
	out->version = p[0];
	out->type = p[1];
	out->encoding = (int)p[2] - 1;
	out->body = p + ENTRY_HEADER_BYTES;
	out->body_len = len - ENTRY_HEADER_BYTES;
	return ENTRY_OK;
}

int entry_says_encoding(unsigned type)
{
	return type == ENTRY_CHANGE_SET || type == ENTRY_REGISTER_TABLE ||
	       type == ENTRY_RESEND_TABLE || type == ENTRY_DDL;
}

int entry_set_encoding(uint8_t *entry, size_t len, int encoding)
{
	if (len < ENTRY_HEADER_BYTES || !entry_says_encoding(entry[1]) || encoding < 0 ||
	    encoding > ENTRY_ENCODING_MAX)
		return ENTRY_ERR_FORMAT;
	entry[2] = (uint8_t)(encoding + 1);
	return ENTRY_OK;
}

/* A client address is printable ASCII: it is shown in views and error messages. */
static int check_client_addr(const char *a, size_t len)
{
	if (len == 0 || len > ENTRY_CLIENT_ADDR_MAX)
		return ENTRY_ERR_FORMAT;
	for (size_t i = 0; i < len; i++)
		if (a[i] < 0x20 || a[i] > 0x7e)
			return ENTRY_ERR_FORMAT;
	return ENTRY_OK;
}

/* A locale name is printable ASCII too (views, error messages, logs); it
 * may be empty. */
static int check_locale(const char *a, size_t len)
{
	if (len > ENTRY_LOCALE_MAX)
		return ENTRY_ERR_FORMAT;
	for (size_t i = 0; i < len; i++)
		if (a[i] < 0x20 || a[i] > 0x7e)
			return ENTRY_ERR_FORMAT;
	return ENTRY_OK;
}

int entry_check_member_locale(const struct entry_member_info *mi)
{
	int rc;

	if (!mi->has_locale)
		return mi->encoding == 0 && mi->locale_provider == 0 && mi->collate_len == 0 &&
		                       mi->ctype_len == 0 && mi->icu_locale_len == 0
		               ? ENTRY_OK
		               : ENTRY_ERR_FORMAT;
	if (mi->encoding < 0 || mi->encoding > ENTRY_ENCODING_MAX || mi->locale_provider <= 0x20 ||
	    mi->locale_provider > 0x7e)
		return ENTRY_ERR_FORMAT;
	if ((rc = check_locale(mi->collate, mi->collate_len)) != ENTRY_OK ||
	    (rc = check_locale(mi->ctype, mi->ctype_len)) != ENTRY_OK)
		return rc;
	return check_locale(mi->icu_locale, mi->icu_locale_len);
}

size_t entry_member_info_size(const struct entry_member_info *mi)
{
	return ENTRY_HEADER_BYTES + 4 + 2 + mi->client_addr_len + 2 + 2 + mi->collate_len + 2 +
	       mi->ctype_len + 2 + mi->icu_locale_len;
}

static size_t put_string(uint8_t *p, const char *s, uint16_t len)
{
	put16(p, len);
	if (len > 0)
		memcpy(p + 2, s, len);
	return 2 + (size_t)len;
}

static int encode_member_info(uint8_t *buf, size_t cap, unsigned type,
                              const struct entry_member_info *mi, size_t *len)
{
	size_t n = type == ENTRY_MEMBER_INFO
	                   ? entry_member_info_size(mi)
	                   : (size_t)ENTRY_HEADER_BYTES + 4 + 2 + mi->client_addr_len;
	size_t off;
	int rc;

	*len = 0;
	if (mi->node_id == 0)
		return ENTRY_ERR_FORMAT;
	rc = check_client_addr(mi->client_addr, mi->client_addr_len);
	if (rc == ENTRY_OK && type == ENTRY_MEMBER_INFO)
		rc = entry_check_member_locale(mi);
	if (rc != ENTRY_OK)
		return rc;
	if (cap < n)
		return ENTRY_ERR_SPACE;
	put_header(buf, type);
	put32(buf + 4, mi->node_id);
	off = 8 + put_string(buf + 8, mi->client_addr, mi->client_addr_len);
	if (type == ENTRY_MEMBER_INFO) {
		buf[off++] = mi->has_locale ? (uint8_t)mi->encoding : ENTRY_ENCODING_UNKNOWN;
		buf[off++] = (uint8_t)mi->locale_provider;
		off += put_string(buf + off, mi->collate, mi->collate_len);
		off += put_string(buf + off, mi->ctype, mi->ctype_len);
		off += put_string(buf + off, mi->icu_locale, mi->icu_locale_len);
	}
	*len = off;
	return ENTRY_OK;
}

int entry_encode_member_info(uint8_t *buf, size_t cap, const struct entry_member_info *mi,
                             size_t *len)
{
	return encode_member_info(buf, cap, ENTRY_MEMBER_INFO, mi, len);
}

int entry_encode_member_info_v1(uint8_t *buf, size_t cap, const struct entry_member_info *mi,
                                size_t *len)
{
	return encode_member_info(buf, cap, ENTRY_MEMBER_INFO_V1, mi, len);
}

/* A u16 length and that many bytes at *off of a body of len bytes. */
static int get_string(const uint8_t *b, size_t len, size_t *off, const char **s, uint16_t *n)
{
	if (len - *off < 2)
		return ENTRY_ERR_SHORT;
	*n = get16(b + *off);
	*off += 2;
	if (len - *off < *n)
		return ENTRY_ERR_SHORT;
	*s = (const char *)b + *off;
	*off += *n;
	return ENTRY_OK;
}

int entry_decode_member_info(const struct entry_header *h, struct entry_member_info *out)
{
	const uint8_t *b = h->body;
	size_t off = 4;
	int rc;

	if (!entry_is_member_info(h->type))
		return ENTRY_ERR_TYPE;
	memset(out, 0, sizeof(*out));
	if (h->body_len < 4)
		return ENTRY_ERR_SHORT;
	out->node_id = get32(b);
	if ((rc = get_string(b, h->body_len, &off, &out->client_addr, &out->client_addr_len)) !=
	    ENTRY_OK)
		return rc;
	if (h->type == ENTRY_MEMBER_INFO) {
		uint8_t enc;

		if (h->body_len - off < 2)
			return ENTRY_ERR_SHORT;
		enc = b[off];
		out->has_locale = enc != ENTRY_ENCODING_UNKNOWN;
		out->encoding = out->has_locale ? enc : 0;
		out->locale_provider = (char)b[off + 1];
		off += 2;
		if ((rc = get_string(b, h->body_len, &off, &out->collate, &out->collate_len)) !=
		            ENTRY_OK ||
		    (rc = get_string(b, h->body_len, &off, &out->ctype, &out->ctype_len)) !=
		            ENTRY_OK ||
		    (rc = get_string(b, h->body_len, &off, &out->icu_locale,
		                     &out->icu_locale_len)) != ENTRY_OK)
			return rc;
	}
	if (h->body_len > off || out->node_id == 0)
		return ENTRY_ERR_FORMAT;
	if ((rc = check_client_addr(out->client_addr, out->client_addr_len)) != ENTRY_OK)
		return rc;
	return h->type == ENTRY_MEMBER_INFO ? entry_check_member_locale(out) : ENTRY_OK;
}

/* A Raft address is printable ASCII too (views, error messages, logs). */
static int check_raft_addr(const char *a, size_t len)
{
	if (len == 0 || len > ENTRY_RAFT_ADDR_MAX)
		return ENTRY_ERR_FORMAT;
	for (size_t i = 0; i < len; i++)
		if (a[i] < 0x20 || a[i] > 0x7e)
			return ENTRY_ERR_FORMAT;
	return ENTRY_OK;
}

/* Encode n addresses as an entry of type (stamped: ENTRY_ADDRESSES). */
static int encode_addresses(uint8_t *buf, size_t cap, unsigned type, const struct entry_address *a,
                            size_t n, size_t *len)
{
	size_t off = ENTRY_HEADER_BYTES + 2, stamp = type == ENTRY_ADDRESSES ? 8 : 0;

	*len = 0;
	if (n == 0 || n > ENTRY_ADDRESSES_MAX)
		return ENTRY_ERR_FORMAT;
	for (size_t i = 0; i < n; i++) {
		if (a[i].node_id == 0 || check_raft_addr(a[i].addr, a[i].addr_len) != ENTRY_OK)
			return ENTRY_ERR_FORMAT;
		if (cap < off + 6 + stamp + a[i].addr_len)
			return ENTRY_ERR_SPACE;
		put32(buf + off, a[i].node_id);
		if (stamp > 0)
			put64(buf + off + 4, a[i].learned);
		put16(buf + off + 4 + stamp, a[i].addr_len);
		memcpy(buf + off + 6 + stamp, a[i].addr, a[i].addr_len);
		off += 6 + stamp + a[i].addr_len;
	}
	put_header(buf, type);
	put16(buf + ENTRY_HEADER_BYTES, (uint16_t)n);
	*len = off;
	return ENTRY_OK;
}

int entry_encode_addresses(uint8_t *buf, size_t cap, const struct entry_address *a, size_t n,
                           size_t *len)
{
	return encode_addresses(buf, cap, ENTRY_ADDRESSES, a, n, len);
}

int entry_encode_addresses_v1(uint8_t *buf, size_t cap, const struct entry_address *a, size_t n,
                              size_t *len)
{
	return encode_addresses(buf, cap, ENTRY_ADDRESSES_V1, a, n, len);
}

int entry_decode_addresses(const struct entry_header *h, struct entry_address *out, size_t *n)
{
	const uint8_t *b = h->body;
	size_t off = 2, count, stamp = h->type == ENTRY_ADDRESSES ? 8 : 0;

	*n = 0;
	if (!entry_is_addresses(h->type))
		return ENTRY_ERR_TYPE;
	if (h->body_len < 2)
		return ENTRY_ERR_SHORT;
	count = get16(b);
	if (count == 0 || count > ENTRY_ADDRESSES_MAX)
		return ENTRY_ERR_FORMAT;
	for (size_t i = 0; i < count; i++) {
		int rc;

		if (h->body_len < off + 6 + stamp)
			return ENTRY_ERR_SHORT;
		out[i].node_id = get32(b + off);
		out[i].learned = stamp > 0 ? get64(b + off + 4) : 0;
		out[i].addr_len = get16(b + off + 4 + stamp);
		out[i].addr = (const char *)b + off + 6 + stamp;
		off += 6 + stamp + out[i].addr_len;
		if (h->body_len < off)
			return ENTRY_ERR_SHORT;
		rc = check_raft_addr(out[i].addr, out[i].addr_len);
		if (rc != ENTRY_OK || out[i].node_id == 0)
			return ENTRY_ERR_FORMAT;
	}
	if (h->body_len != off)
		return ENTRY_ERR_FORMAT;
	*n = count;
	return ENTRY_OK;
}

/* ---- output buffers ---- */

static int reserve(struct entry_buf *b, size_t n)
{
	size_t cap;
	void *p;

	if (b->failed)
		return 0;
	if (b->cap - b->len >= n)
		return 1;
	cap = b->cap ? b->cap : 256;
	while (cap - b->len < n) {
		if (cap > SIZE_MAX / 2) {
			b->failed = 1;
			return 0;
		}
		cap *= 2;
	}
	p = b->grow ? b->grow(b->data, cap) : realloc(b->data, cap);
	if (p == NULL) {
		b->failed = 1;
		return 0;
	}
	b->data = p;
	b->cap = cap;
	return 1;
}

void entry_put_bytes(struct entry_buf *b, const void *p, size_t len)
{
	if (len > 0 && reserve(b, len)) {
		memcpy(b->data + b->len, p, len);
		b->len += len;
	}
}

void entry_put_u8(struct entry_buf *b, uint8_t v)
{
	entry_put_bytes(b, &v, 1);
}

void entry_put_u16(struct entry_buf *b, uint16_t v)
{
	uint8_t p[2];

	put16(p, v);
	entry_put_bytes(b, p, 2);
}

void entry_put_u32(struct entry_buf *b, uint32_t v)
{
	uint8_t p[4];

	put32(p, v);
	entry_put_bytes(b, p, 4);
}

void entry_put_u64(struct entry_buf *b, uint64_t v)
{
	uint8_t p[8];

	put32(p, (uint32_t)v);
	put32(p + 4, (uint32_t)(v >> 32));
	entry_put_bytes(b, p, 8);
}

void entry_patch_u32(struct entry_buf *b, size_t off, uint32_t v)
{
	if (!b->failed && off + 4 <= b->len)
		put32(b->data + off, v);
}

void entry_put_op(struct entry_buf *b, unsigned kind, uint32_t table)
{
	entry_put_u8(b, (uint8_t)kind);
	entry_put_u32(b, table);
}

void entry_put_tuple(struct entry_buf *b, uint16_t n_cols)
{
	entry_put_u16(b, n_cols);
}

void entry_put_value(struct entry_buf *b, unsigned kind, const void *data, uint32_t len)
{
	entry_put_u8(b, (uint8_t)kind);
	if (kind == ENTRY_VALUE_BINARY) {
		entry_put_u32(b, len);
		entry_put_bytes(b, data, len);
	}
}

/* ---- readers ---- */

static int need(const struct entry_reader *r, size_t n)
{
	return (size_t)(r->end - r->p) >= n;
}

static int get_u8(struct entry_reader *r, uint8_t *v)
{
	if (!need(r, 1))
		return ENTRY_ERR_SHORT;
	*v = *r->p++;
	return ENTRY_OK;
}

static int get_u16(struct entry_reader *r, uint16_t *v)
{
	if (!need(r, 2))
		return ENTRY_ERR_SHORT;
	*v = get16(r->p);
	r->p += 2;
	return ENTRY_OK;
}

static int get_u32(struct entry_reader *r, uint32_t *v)
{
	if (!need(r, 4))
		return ENTRY_ERR_SHORT;
	*v = get32(r->p);
	r->p += 4;
	return ENTRY_OK;
}

static int get_u64(struct entry_reader *r, uint64_t *v)
{
	if (!need(r, 8))
		return ENTRY_ERR_SHORT;
	*v = get64(r->p);
	r->p += 8;
	return ENTRY_OK;
}

/* len bytes of text without NUL, between min and max bytes long. */
static int check_text(const char *s, size_t len, size_t min, size_t max)
{
	if (len < min || len > max || memchr(s, '\0', len) != NULL)
		return ENTRY_ERR_FORMAT;
	return ENTRY_OK;
}

/* A text that may be empty: u32 length and bytes, no NUL. */
static int get_text(struct entry_reader *r, const char **text, uint32_t *len)
{
	int rc = get_u32(r, len);

	if (rc != ENTRY_OK)
		return rc;
	if (!need(r, *len))
		return ENTRY_ERR_SHORT;
	*text = (const char *)r->p;
	r->p += *len;
	return check_text(*text, *len, 0, UINT32_MAX);
}

/* A name: u16 length and bytes. */
int entry_next_name(struct entry_reader *r, const char **name, uint16_t *len)
{
	int rc = get_u16(r, len);

	if (rc != ENTRY_OK)
		return rc;
	if (!need(r, *len))
		return ENTRY_ERR_SHORT;
	*name = (const char *)r->p;
	r->p += *len;
	return check_text(*name, *len, 1, ENTRY_NAME_MAX);
}

int entry_next_table(struct entry_reader *r, struct entry_table *t)
{
	int rc;

	if ((rc = get_u64(r, &t->table_id)) != ENTRY_OK ||
	    (rc = get_u16(r, &t->n_cols)) != ENTRY_OK)
		return rc;
	t->cols.p = r->p;
	for (unsigned i = 0; i < t->n_cols; i++) {
		const char *name;
		uint16_t len;

		if ((rc = entry_next_name(r, &name, &len)) != ENTRY_OK)
			return rc;
	}
	t->cols.end = r->p;
	return t->table_id == 0 ? ENTRY_ERR_FORMAT : ENTRY_OK;
}

int entry_next_seq(struct entry_reader *r, struct entry_seq *s)
{
	uint64_t v;
	int rc;

	s->schema = s->name = NULL;
	s->schema_len = s->name_len = 0;
	if ((rc = get_u32(r, &s->table)) != ENTRY_OK || (rc = get_u16(r, &s->column)) != ENTRY_OK)
		return rc;
	if (s->table == ENTRY_SEQ_NAMED &&
	    (s->column != 0 || (rc = entry_next_name(r, &s->schema, &s->schema_len)) != ENTRY_OK ||
	     (rc = entry_next_name(r, &s->name, &s->name_len)) != ENTRY_OK))
		return rc != ENTRY_OK ? rc : ENTRY_ERR_FORMAT;
	if ((rc = get_u64(r, &v)) != ENTRY_OK)
		return rc;
	s->value = (int64_t)v;
	return ENTRY_OK;
}

int entry_next_value(struct entry_reader *r, unsigned *kind, const uint8_t **data, uint32_t *len)
{
	uint8_t k;
	int rc = get_u8(r, &k);

	if (rc != ENTRY_OK)
		return rc;
	*kind = k;
	*data = NULL;
	*len = 0;
	if (k == ENTRY_VALUE_NULL || k == ENTRY_VALUE_ABSENT)
		return ENTRY_OK;
	if (k != ENTRY_VALUE_BINARY)
		return ENTRY_ERR_FORMAT;
	if ((rc = get_u32(r, len)) != ENTRY_OK)
		return rc;
	if (!need(r, *len))
		return ENTRY_ERR_SHORT;
	*data = r->p;
	r->p += *len;
	return ENTRY_OK;
}

static int next_tuple(struct entry_reader *r, struct entry_tuple *t)
{
	int rc = get_u16(r, &t->n_cols);

	if (rc != ENTRY_OK)
		return rc;
	t->values.p = r->p;
	for (unsigned i = 0; i < t->n_cols; i++) {
		const uint8_t *data;
		uint32_t len;
		unsigned kind;

		if ((rc = entry_next_value(r, &kind, &data, &len)) != ENTRY_OK)
			return rc;
	}
	t->values.end = r->p;
	return ENTRY_OK;
}

int entry_next_op(struct entry_reader *r, struct entry_op *op)
{
	uint8_t kind, has_old = 0;
	int rc;

	memset(op, 0, sizeof(*op));
	if ((rc = get_u8(r, &kind)) != ENTRY_OK || (rc = get_u32(r, &op->table)) != ENTRY_OK)
		return rc;
	op->kind = kind;
	switch (kind) {
	case ENTRY_OP_INSERT:
		return next_tuple(r, &op->new_tuple);
	case ENTRY_OP_UPDATE:
		if ((rc = get_u8(r, &has_old)) != ENTRY_OK)
			return rc;
		if (has_old > 1)
			return ENTRY_ERR_FORMAT;
		op->has_old = has_old;
		if (has_old && (rc = next_tuple(r, &op->old_tuple)) != ENTRY_OK)
			return rc;
		return next_tuple(r, &op->new_tuple);
	case ENTRY_OP_DELETE:
		op->has_old = 1;
		return next_tuple(r, &op->old_tuple);
	case ENTRY_OP_TRUNCATE:
		return ENTRY_OK;
	}
	return ENTRY_ERR_FORMAT;
}

/* ---- change sets and registrations ---- */

static void put_name(struct entry_buf *b, const char *s)
{
	size_t len = strlen(s);

	entry_put_u16(b, (uint16_t)len);
	entry_put_bytes(b, s, len);
}

static int check_name(const char *s)
{
	return check_text(s, strlen(s), 1, ENTRY_NAME_MAX);
}

int entry_encode_change_set(struct entry_buf *out, const struct entry_owner *owner,
                            uint64_t schema_index, const struct entry_register_in *reg,
                            const struct entry_table_in *tables, uint32_t n_tables,
                            const struct entry_seq *seqs, uint32_t n_seqs, const uint8_t *ops,
                            size_t ops_len, uint32_t n_ops)
{
	uint8_t hdr[ENTRY_HEADER_BYTES];

	if (owner->node_id == 0 || (reg != NULL && n_tables != 1))
		return ENTRY_ERR_FORMAT;
	for (uint32_t i = 0; i < n_tables; i++) {
		if (tables[i].table_id == 0)
			return ENTRY_ERR_FORMAT;
		for (unsigned c = 0; c < tables[i].n_cols; c++)
			if (check_name(tables[i].cols[c]) != ENTRY_OK)
				return ENTRY_ERR_FORMAT;
	}
	for (uint32_t i = 0; i < n_seqs; i++)
		if (seqs[i].table == ENTRY_SEQ_NAMED
		            ? check_text(seqs[i].schema, seqs[i].schema_len, 1, ENTRY_NAME_MAX) !=
		                              ENTRY_OK ||
		                      check_text(seqs[i].name, seqs[i].name_len, 1,
		                                 ENTRY_NAME_MAX) != ENTRY_OK
		            : seqs[i].table >= n_tables)
			return ENTRY_ERR_FORMAT;
	if (reg != NULL && (check_name(reg->schema) != ENTRY_OK ||
	                    check_name(reg->name) != ENTRY_OK || strlen(reg->def) > UINT32_MAX ||
	                    (reg->extras != NULL && strlen(reg->extras) > UINT32_MAX)))
		return ENTRY_ERR_FORMAT;

	put_header(hdr, reg == NULL   ? ENTRY_CHANGE_SET
	                : reg->resend ? ENTRY_RESEND_TABLE
	                              : ENTRY_REGISTER_TABLE);
	entry_put_bytes(out, hdr, sizeof(hdr));
	entry_put_u32(out, owner->node_id);
	entry_put_u64(out, owner->incarnation);
	entry_put_u32(out, owner->slot);
	entry_put_u64(out, owner->generation);
	entry_put_u64(out, schema_index);
	if (reg != NULL) {
		put_name(out, reg->schema);
		put_name(out, reg->name);
		entry_put_u32(out, (uint32_t)strlen(reg->def));
		entry_put_bytes(out, reg->def, strlen(reg->def));
		entry_put_u32(out, reg->extras != NULL ? (uint32_t)strlen(reg->extras) : 0);
		if (reg->extras != NULL)
			entry_put_bytes(out, reg->extras, strlen(reg->extras));
	}
	entry_put_u32(out, n_tables);
	for (uint32_t i = 0; i < n_tables; i++) {
		entry_put_u64(out, tables[i].table_id);
		entry_put_u16(out, tables[i].n_cols);
		for (unsigned c = 0; c < tables[i].n_cols; c++)
			put_name(out, tables[i].cols[c]);
	}
	entry_put_u32(out, n_seqs);
	for (uint32_t i = 0; i < n_seqs; i++) {
		entry_put_u32(out, seqs[i].table);
		if (seqs[i].table == ENTRY_SEQ_NAMED) {
			entry_put_u16(out, 0);
			entry_put_u16(out, seqs[i].schema_len);
			entry_put_bytes(out, seqs[i].schema, seqs[i].schema_len);
			entry_put_u16(out, seqs[i].name_len);
			entry_put_bytes(out, seqs[i].name, seqs[i].name_len);
		} else
			entry_put_u16(out, seqs[i].column);
		entry_put_u64(out, (uint64_t)seqs[i].value);
	}
	entry_put_u32(out, n_ops);
	entry_put_bytes(out, ops, ops_len);
	return out->failed ? ENTRY_ERR_SPACE : ENTRY_OK;
}

static int decode_owner(struct entry_reader *r, struct entry_owner *o)
{
	int rc;

	if ((rc = get_u32(r, &o->node_id)) != ENTRY_OK ||
	    (rc = get_u64(r, &o->incarnation)) != ENTRY_OK ||
	    (rc = get_u32(r, &o->slot)) != ENTRY_OK ||
	    (rc = get_u64(r, &o->generation)) != ENTRY_OK)
		return rc;
	return o->node_id == 0 ? ENTRY_ERR_FORMAT : ENTRY_OK;
}

static int decode_sections(struct entry_reader *r, struct entry_change_set *out, int registration)
{
	int rc;

	if ((rc = get_u32(r, &out->n_tables)) != ENTRY_OK)
		return rc;
	if (registration && out->n_tables != 1)
		return ENTRY_ERR_FORMAT;
	out->tables.p = r->p;
	for (uint32_t i = 0; i < out->n_tables; i++) {
		struct entry_table t;

		if ((rc = entry_next_table(r, &t)) != ENTRY_OK)
			return rc;
	}
	out->tables.end = r->p;

	if ((rc = get_u32(r, &out->n_seqs)) != ENTRY_OK)
		return rc;
	out->seqs.p = r->p;
	for (uint32_t i = 0; i < out->n_seqs; i++) {
		struct entry_seq s;

		if ((rc = entry_next_seq(r, &s)) != ENTRY_OK)
			return rc;
		if (s.table >= out->n_tables && s.table != ENTRY_SEQ_NAMED)
			return ENTRY_ERR_FORMAT;
	}
	out->seqs.end = r->p;

	if ((rc = get_u32(r, &out->n_ops)) != ENTRY_OK)
		return rc;
	out->ops.p = r->p;
	for (uint32_t i = 0; i < out->n_ops; i++) {
		struct entry_op op;

		if ((rc = entry_next_op(r, &op)) != ENTRY_OK)
			return rc;
		if (op.table >= out->n_tables || (registration && op.kind != ENTRY_OP_INSERT))
			return ENTRY_ERR_FORMAT;
	}
	out->ops.end = r->p;
	return r->p == r->end ? ENTRY_OK : ENTRY_ERR_FORMAT;
}

/* A table registration of any build (sent again or not). */
static int registration(unsigned type)
{
	return type == ENTRY_REGISTER_TABLE || type == ENTRY_RESEND_TABLE ||
	       type == ENTRY_REGISTER_TABLE_V2 || type == ENTRY_REGISTER_TABLE_V1 ||
	       type == ENTRY_RESEND_TABLE_V1;
}

int entry_decode_owner(const struct entry_header *h, struct entry_owner *out)
{
	struct entry_reader r = {h->body, h->body + h->body_len};

	if (h->type != ENTRY_CHANGE_SET && !registration(h->type))
		return ENTRY_ERR_TYPE;
	return decode_owner(&r, out);
}

int entry_decode_change_set(const struct entry_header *h, struct entry_change_set *out)
{
	struct entry_reader r = {h->body, h->body + h->body_len};
	int rc;

	memset(out, 0, sizeof(*out));
	if (h->type != ENTRY_CHANGE_SET)
		return ENTRY_ERR_TYPE;
	if ((rc = decode_owner(&r, &out->owner)) != ENTRY_OK ||
	    (rc = get_u64(&r, &out->schema_index)) != ENTRY_OK)
		return rc;
	return decode_sections(&r, out, 0);
}

int entry_decode_register(const struct entry_header *h, struct entry_change_set *out)
{
	struct entry_reader r = {h->body, h->body + h->body_len};
	int rc;

	memset(out, 0, sizeof(*out));
	if (!registration(h->type))
		return ENTRY_ERR_TYPE;
	if ((rc = decode_owner(&r, &out->owner)) != ENTRY_OK ||
	    (h->type != ENTRY_REGISTER_TABLE_V1 &&
	     (rc = get_u64(&r, &out->schema_index)) != ENTRY_OK) ||
	    (rc = entry_next_name(&r, &out->schema, &out->schema_len)) != ENTRY_OK ||
	    (rc = entry_next_name(&r, &out->name, &out->name_len)) != ENTRY_OK ||
	    (rc = get_u32(&r, &out->def_len)) != ENTRY_OK)
		return rc;
	if (!need(&r, out->def_len))
		return ENTRY_ERR_SHORT;
	out->def = (const char *)r.p;
	r.p += out->def_len;
	if ((rc = check_text(out->def, out->def_len, 1, UINT32_MAX)) != ENTRY_OK)
		return rc;
	/* The types of older builds carry no extras. */
	if (h->type == ENTRY_REGISTER_TABLE || h->type == ENTRY_RESEND_TABLE) {
		if ((rc = get_text(&r, &out->extras, &out->extras_len)) != ENTRY_OK)
			return rc;
	}
	return decode_sections(&r, out, 1);
}

/* ---- replicated utility commands ---- */

int entry_encode_ddl(struct entry_buf *out, const struct entry_ddl *d)
{
	uint8_t hdr[ENTRY_HEADER_BYTES];

	if (d->node_id == 0 || check_text(d->role, d->role_len, 1, ENTRY_NAME_MAX) != ENTRY_OK ||
	    check_text(d->command, d->len, 1, UINT32_MAX) != ENTRY_OK ||
	    (d->search_path != NULL &&
	     check_text(d->search_path, d->search_path_len, 0, UINT32_MAX) != ENTRY_OK) ||
	    (d->search_path == NULL && d->has_schema_index))
		return ENTRY_ERR_FORMAT;
	put_header(hdr, d->search_path == NULL ? ENTRY_DDL_V1
	                : d->has_schema_index  ? ENTRY_DDL
	                                       : ENTRY_DDL_V2);
	entry_put_bytes(out, hdr, sizeof(hdr));
	entry_put_u32(out, d->node_id);
	entry_put_u16(out, d->role_len);
	entry_put_bytes(out, d->role, d->role_len);
	entry_put_u32(out, d->len);
	entry_put_bytes(out, d->command, d->len);
	if (d->search_path != NULL) {
		entry_put_u32(out, d->search_path_len);
		entry_put_bytes(out, d->search_path, d->search_path_len);
	}
	if (d->has_schema_index)
		entry_put_u64(out, d->schema_index);
	return out->failed ? ENTRY_ERR_SPACE : ENTRY_OK;
}

int entry_decode_ddl(const struct entry_header *h, struct entry_ddl *out)
{
	struct entry_reader r = {h->body, h->body + h->body_len};
	int rc;

	if (!entry_is_ddl(h->type))
		return ENTRY_ERR_TYPE;
	if ((rc = get_u32(&r, &out->node_id)) != ENTRY_OK ||
	    (rc = entry_next_name(&r, &out->role, &out->role_len)) != ENTRY_OK ||
	    (rc = get_u32(&r, &out->len)) != ENTRY_OK)
		return rc;
	if (!need(&r, out->len))
		return ENTRY_ERR_SHORT;
	out->command = (const char *)r.p;
	r.p += out->len;
	out->search_path = NULL;
	out->search_path_len = 0;
	out->has_schema_index = h->type == ENTRY_DDL;
	out->schema_index = 0;
	if (h->type != ENTRY_DDL_V1 &&
	    (rc = get_text(&r, &out->search_path, &out->search_path_len)) != ENTRY_OK)
		return rc;
	if (out->has_schema_index && (rc = get_u64(&r, &out->schema_index)) != ENTRY_OK)
		return rc;
	if (r.p != r.end || out->node_id == 0)
		return ENTRY_ERR_FORMAT;
	return check_text(out->command, out->len, 1, UINT32_MAX);
}
