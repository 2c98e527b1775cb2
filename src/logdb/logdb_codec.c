/*
 * logdb_codec.c - encoding and checked decoding of LogDB keys and values
 * (layout in logdb_codec.h).
 */
#include <stdlib.h>
#include <string.h>

#include "logdb/logdb_codec.h"

/* ---- keys -------------------------------------------------------------- */

static void put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

static uint64_t get_be64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = (v << 8) | p[i];
	return v;
}

void logdb_key(uint8_t *key, unsigned kind, uint64_t group_id, uint64_t node_id)
{
	key[0] = (uint8_t)(kind >> 8);
	key[1] = (uint8_t)kind;
	key[2] = 0;
	key[3] = 0;
	put_be64(key + 4, group_id);
	put_be64(key + 12, node_id);
}

void logdb_index_key(uint8_t *key, unsigned kind, uint64_t group_id, uint64_t node_id,
                     uint64_t index)
{
	logdb_key(key, kind, group_id, node_id);
	put_be64(key + 20, index);
}

int logdb_key_parse(const uint8_t *key, size_t len, unsigned *kind, uint64_t *group_id,
                    uint64_t *node_id, uint64_t *index)
{
	if ((len != LOGDB_KEY_LEN && len != LOGDB_INDEX_KEY_LEN) || key[2] != 0 || key[3] != 0)
		return -1;
	*kind = ((unsigned)key[0] << 8) | key[1];
	*group_id = get_be64(key + 4);
	*node_id = get_be64(key + 12);
	*index = len == LOGDB_INDEX_KEY_LEN ? get_be64(key + 20) : 0;
	return 0;
}

/* ---- buffers ----------------------------------------------------------- */

int logdb_buf_reserve(struct logdb_buf *b, size_t need)
{
	if (b->len + need <= b->cap)
		return LOGDB_OK;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < b->len + need)
		cap *= 2;
	void *p = b->alloc ? b->alloc->realloc(b->p, cap) : realloc(b->p, cap);
	if (p == NULL)
		return LOGDB_ERR_NOMEM;
	b->p = p;
	b->cap = cap;
	return LOGDB_OK;
}

void logdb_buf_free(struct logdb_buf *b)
{
	if (b->alloc)
		b->alloc->free(b->p);
	else
		free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
	       ((uint32_t)p[3] << 24);
}

/* Append helpers: the caller reserved room. */
static void add64(struct logdb_buf *b, uint64_t v)
{
	put_le64(b->p + b->len, v);
	b->len += 8;
}

static void add32(struct logdb_buf *b, uint32_t v)
{
	put_le32(b->p + b->len, v);
	b->len += 4;
}

static void add_bytes(struct logdb_buf *b, const void *p, size_t n)
{
	if (n)
		memcpy(b->p + b->len, p, n);
	b->len += n;
}

/* Start a value of kind: reset b, reserve header + body bytes, write the header. */
static int begin(struct logdb_buf *b, unsigned kind, size_t body)
{
	b->len = 0;
	int rc = logdb_buf_reserve(b, LOGDB_HDR_LEN + body);
	if (rc)
		return rc;
	b->p[0] = LOGDB_VALUE_VERSION;
	b->p[1] = (uint8_t)kind;
	b->p[2] = 0;
	b->p[3] = 0;
	put_le32(b->p + 4, 0);
	b->len = LOGDB_HDR_LEN;
	return LOGDB_OK;
}

static uint32_t value_crc(const uint8_t *key, size_t klen, const uint8_t *body, size_t blen)
{
	return dr_crc32c(dr_crc32c(0, key, klen), body, blen);
}

/* Seal the value: CRC32C over key and body. */
static void seal(struct logdb_buf *b, const uint8_t *key, size_t klen)
{
	put_le32(b->p + 4, value_crc(key, klen, b->p + LOGDB_HDR_LEN, b->len - LOGDB_HDR_LEN));
}

static size_t membership_size(const struct raft_membership *m)
{
	return 8 + 12 + 8 * ((size_t)m->n_voters + m->n_nonvoters + m->n_removed);
}

static int check_membership(const struct raft_membership *m)
{
	if (m->n_voters > RAFT_MAX_MEMBERS || m->n_nonvoters > RAFT_MAX_MEMBERS ||
	    m->n_removed > RAFT_MAX_REMOVED)
		return LOGDB_ERR_INVALID;
	return LOGDB_OK;
}

static void add_membership(struct logdb_buf *b, const struct raft_membership *m)
{
	add64(b, m->config_index);
	add32(b, m->n_voters);
	add32(b, m->n_nonvoters);
	add32(b, m->n_removed);
	for (uint32_t i = 0; i < m->n_voters; i++)
		add64(b, m->voters[i]);
	for (uint32_t i = 0; i < m->n_nonvoters; i++)
		add64(b, m->nonvoters[i]);
	for (uint32_t i = 0; i < m->n_removed; i++)
		add64(b, m->removed[i]);
}

int logdb_encode_run(struct logdb_buf *b, const uint8_t *key, size_t klen,
                     const struct raft_entry *ents, uint32_t n)
{
	size_t body = 4;
	for (uint32_t i = 0; i < n; i++)
		body += LOGDB_RUN_ENTRY_HDR + (size_t)ents[i].len;
	int rc = begin(b, LOGDB_KIND_ENTRY, body);
	if (rc)
		return rc;
	add32(b, n);
	for (uint32_t i = 0; i < n; i++) {
		add64(b, ents[i].term);
		b->p[b->len++] = (uint8_t)ents[i].type;
		add32(b, ents[i].len);
		add_bytes(b, ents[i].data, ents[i].len);
	}
	seal(b, key, klen);
	return LOGDB_OK;
}

int logdb_encode_state(struct logdb_buf *b, const uint8_t *key, size_t klen,
                       const struct raft_hard_state *hs)
{
	int rc = begin(b, LOGDB_KIND_STATE, 24);
	if (rc)
		return rc;
	add64(b, hs->term);
	add64(b, hs->vote);
	add64(b, hs->commit);
	seal(b, key, klen);
	return LOGDB_OK;
}

int logdb_encode_range(struct logdb_buf *b, const uint8_t *key, size_t klen, uint64_t first,
                       uint64_t last)
{
	int rc = begin(b, LOGDB_KIND_RANGE, 16);
	if (rc)
		return rc;
	add64(b, first);
	add64(b, last);
	seal(b, key, klen);
	return LOGDB_OK;
}

/* A value of kind that holds one u64. */
static int encode_u64(struct logdb_buf *b, unsigned kind, const uint8_t *key, size_t klen,
                      uint64_t v)
{
	int rc = begin(b, kind, 8);
	if (rc)
		return rc;
	add64(b, v);
	seal(b, key, klen);
	return LOGDB_OK;
}

int logdb_encode_recovery(struct logdb_buf *b, const uint8_t *key, size_t klen, uint64_t index)
{
	return encode_u64(b, LOGDB_KIND_RECOVERY, key, klen, index);
}

int logdb_encode_ckpt(struct logdb_buf *b, const uint8_t *key, size_t klen, uint64_t lsn)
{
	return encode_u64(b, LOGDB_KIND_CKPT, key, klen, lsn);
}

int logdb_encode_node(struct logdb_buf *b, const uint8_t *key, size_t klen)
{
	int rc = begin(b, LOGDB_KIND_NODE, 0);
	if (rc)
		return rc;
	seal(b, key, klen);
	return LOGDB_OK;
}

int logdb_encode_bootstrap(struct logdb_buf *b, const uint8_t *key, size_t klen,
                           const struct logdb_bootstrap *bs)
{
	if (bs->n_addresses > RAFT_MAX_MEMBERS || check_membership(&bs->membership))
		return LOGDB_ERR_INVALID;
	size_t body = 12 + membership_size(&bs->membership) + 8 + 8 * (size_t)bs->n_addresses;
	for (uint32_t i = 0; i < bs->n_addresses; i++) {
		size_t n = strnlen(bs->addresses[i].addr, LOGDB_ADDR_MAX);
		if (n == LOGDB_ADDR_MAX)
			return LOGDB_ERR_TOO_BIG;
		body += 12 + n;
	}
	int rc = begin(b, LOGDB_KIND_BOOTSTRAP, body);
	if (rc)
		return rc;
	add32(b, bs->join ? 1 : 0);
	add32(b, bs->sm_type);
	add32(b, bs->n_addresses);
	for (uint32_t i = 0; i < bs->n_addresses; i++) {
		uint32_t n = (uint32_t)strlen(bs->addresses[i].addr);
		add64(b, bs->addresses[i].node_id);
		add32(b, n);
		add_bytes(b, bs->addresses[i].addr, n);
	}
	add_membership(b, &bs->membership);
	/* Appended later (a record without them reads as 0s): addr_index, each learned. */
	add64(b, bs->addr_index);
	for (uint32_t i = 0; i < bs->n_addresses; i++)
		add64(b, bs->addresses[i].learned);
	seal(b, key, klen);
	return LOGDB_OK;
}

int logdb_encode_snapshot(struct logdb_buf *b, const uint8_t *key, size_t klen,
                          const struct logdb_snapshot *s)
{
	if (check_membership(&s->meta.membership))
		return LOGDB_ERR_INVALID;
	size_t n = strnlen(s->file, LOGDB_PATH_MAX);
	if (n == LOGDB_PATH_MAX)
		return LOGDB_ERR_TOO_BIG;
	int rc = begin(b, LOGDB_KIND_SNAPSHOT, 28 + n + membership_size(&s->meta.membership));
	if (rc)
		return rc;
	add64(b, s->meta.term);
	add64(b, s->size);
	add64(b, s->checksum);
	add32(b, (uint32_t)n);
	add_bytes(b, s->file, n);
	add_membership(b, &s->meta.membership);
	seal(b, key, klen);
	return LOGDB_OK;
}

/* ---- decoding ---------------------------------------------------------- */

/* A bounds-checked reader over a value body. */
struct rd {
	const uint8_t *p;
	size_t left;
	bool bad;
};

static uint64_t r64(struct rd *r)
{
	if (r->left < 8) {
		r->bad = true;
		return 0;
	}
	uint64_t v = get_le64(r->p);
	r->p += 8;
	r->left -= 8;
	return v;
}

static uint32_t r32(struct rd *r)
{
	if (r->left < 4) {
		r->bad = true;
		return 0;
	}
	uint32_t v = get_le32(r->p);
	r->p += 4;
	r->left -= 4;
	return v;
}

static const uint8_t *rbytes(struct rd *r, size_t n)
{
	if (r->left < n) {
		r->bad = true;
		return NULL;
	}
	const uint8_t *p = r->p;
	r->p += n;
	r->left -= n;
	return p;
}

static int fail(const char **why, const char *reason)
{
	*why = reason;
	return LOGDB_ERR_CORRUPT;
}

/* Check the header and CRC of a value of kind stored under key. */
static int open_value(const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                      unsigned kind, struct rd *r, const char **why)
{
	if (vlen < LOGDB_HDR_LEN)
		return fail(why, "value shorter than its header");
	if (val[0] != LOGDB_VALUE_VERSION)
		return fail(why, "unknown value format version");
	if (val[1] != (uint8_t)kind || val[2] != 0 || val[3] != 0)
		return fail(why, "value header names another record kind");
	if (get_le32(val + 4) != value_crc(key, klen, val + LOGDB_HDR_LEN, vlen - LOGDB_HDR_LEN))
		return fail(why, "checksum mismatch");
	r->p = val + LOGDB_HDR_LEN;
	r->left = vlen - LOGDB_HDR_LEN;
	r->bad = false;
	return LOGDB_OK;
}

static int done(struct rd *r, const char **why)
{
	if (r->bad)
		return fail(why, "value truncated");
	if (r->left != 0)
		return fail(why, "trailing bytes after value");
	return LOGDB_OK;
}

static int get_ids(struct rd *r, raft_id *ids, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		ids[i] = r64(r);
	return r->bad ? -1 : 0;
}

static int get_membership(struct rd *r, struct raft_membership *m, const char **why)
{
	memset(m, 0, sizeof(*m));
	m->config_index = r64(r);
	m->n_voters = r32(r);
	m->n_nonvoters = r32(r);
	m->n_removed = r32(r);
	if (r->bad)
		return fail(why, "value truncated");
	if (check_membership(m)) {
		m->n_voters = m->n_nonvoters = m->n_removed = 0;
		return fail(why, "membership counts out of range");
	}
	if (get_ids(r, m->voters, m->n_voters) || get_ids(r, m->nonvoters, m->n_nonvoters) ||
	    get_ids(r, m->removed, m->n_removed))
		return fail(why, "value truncated");
	return LOGDB_OK;
}

int logdb_run_open(const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                   struct logdb_run *run, const char **why)
{
	struct rd r;
	unsigned kind;
	uint64_t g, n, first;
	if (logdb_key_parse(key, klen, &kind, &g, &n, &first) || kind != LOGDB_KIND_ENTRY ||
	    klen != LOGDB_INDEX_KEY_LEN || first == 0)
		return fail(why, "malformed entry key");
	int rc = open_value(key, klen, val, vlen, LOGDB_KIND_ENTRY, &r, why);
	if (rc)
		return rc;
	uint32_t count = r32(&r);
	if (r.bad || count == 0)
		return fail(why, "entry run without entries");
	if (count > r.left / LOGDB_RUN_ENTRY_HDR || first > UINT64_MAX - count)
		return fail(why, "entry run count out of range");
	run->first = first;
	run->n = count;
	run->next = first;
	run->p = r.p;
	/* Check the whole layout once, so logdb_run_next() cannot fail. */
	for (uint32_t i = 0; i < count; i++) {
		r64(&r);
		const uint8_t *type = rbytes(&r, 1);
		uint32_t len = r32(&r);
		rbytes(&r, len);
		if (r.bad)
			return fail(why, "value truncated");
		if (*type > RAFT_ENTRY_CONF_CHANGE)
			return fail(why, "unknown entry type");
	}
	return done(&r, why);
}

bool logdb_run_peek_len(const uint8_t *val, size_t vlen, uint64_t first, uint64_t index,
                        uint32_t *len)
{
	struct rd r;

	if (vlen < LOGDB_HDR_LEN || index < first)
		return false;
	r.p = val + LOGDB_HDR_LEN;
	r.left = vlen - LOGDB_HDR_LEN;
	r.bad = false;
	if ((uint64_t)r32(&r) <= index - first)
		return false;
	for (uint64_t i = first;; i++) {
		r64(&r);
		rbytes(&r, 1);
		*len = r32(&r);
		if (r.bad)
			return false;
		if (i == index)
			return true;
		rbytes(&r, *len);
	}
}

void logdb_run_next(struct logdb_run *run, struct raft_entry *e)
{
	const uint8_t *p = run->p;
	e->index = run->next++;
	e->term = get_le64(p);
	e->type = p[8];
	e->len = get_le32(p + 9);
	e->data = e->len ? p + LOGDB_RUN_ENTRY_HDR : NULL;
	run->p = p + LOGDB_RUN_ENTRY_HDR + e->len;
}

int logdb_decode_state(const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                       struct raft_hard_state *hs, const char **why)
{
	struct rd r;
	int rc = open_value(key, klen, val, vlen, LOGDB_KIND_STATE, &r, why);
	if (rc)
		return rc;
	hs->term = r64(&r);
	hs->vote = r64(&r);
	hs->commit = r64(&r);
	return done(&r, why);
}

int logdb_decode_recovery(const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                          uint64_t *index, const char **why)
{
	struct rd r;
	int rc = open_value(key, klen, val, vlen, LOGDB_KIND_RECOVERY, &r, why);
	if (rc)
		return rc;
	*index = r64(&r);
	if ((rc = done(&r, why)))
		return rc;
	if (*index == 0)
		return fail(why, "recovery marker at index 0");
	return LOGDB_OK;
}

int logdb_decode_ckpt(const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                      uint64_t *lsn, const char **why)
{
	struct rd r;
	int rc = open_value(key, klen, val, vlen, LOGDB_KIND_CKPT, &r, why);
	if (rc)
		return rc;
	*lsn = r64(&r);
	return done(&r, why);
}

int logdb_decode_range(const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                       uint64_t *first, uint64_t *last, const char **why)
{
	struct rd r;
	int rc = open_value(key, klen, val, vlen, LOGDB_KIND_RANGE, &r, why);
	if (rc)
		return rc;
	*first = r64(&r);
	*last = r64(&r);
	if ((rc = done(&r, why)))
		return rc;
	if (*first == 0 || *first > *last + 1)
		return fail(why, "entry range with first index past last index + 1");
	return LOGDB_OK;
}

int logdb_decode_node(const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                      const char **why)
{
	struct rd r;
	int rc = open_value(key, klen, val, vlen, LOGDB_KIND_NODE, &r, why);
	if (rc)
		return rc;
	return done(&r, why);
}

int logdb_decode_bootstrap(const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                           struct logdb_bootstrap *bs, const char **why)
{
	struct rd r;
	int rc = open_value(key, klen, val, vlen, LOGDB_KIND_BOOTSTRAP, &r, why);
	if (rc)
		return rc;
	memset(bs, 0, sizeof(*bs));
	uint32_t join = r32(&r);
	bs->sm_type = r32(&r);
	uint32_t na = r32(&r);
	if (r.bad)
		return fail(why, "value truncated");
	if (join > 1)
		return fail(why, "bad join flag");
	if (na > RAFT_MAX_MEMBERS)
		return fail(why, "too many member addresses");
	bs->join = join;
	for (uint32_t i = 0; i < na; i++) {
		bs->addresses[i].node_id = r64(&r);
		uint32_t n = r32(&r);
		if (r.bad)
			return fail(why, "value truncated");
		if (n >= LOGDB_ADDR_MAX)
			return fail(why, "member address too long");
		const uint8_t *p = rbytes(&r, n);
		if (p == NULL)
			return fail(why, "value truncated");
		memcpy(bs->addresses[i].addr, p, n);
		bs->addresses[i].addr[n] = '\0';
	}
	bs->n_addresses = na;
	if ((rc = get_membership(&r, &bs->membership, why)))
		return rc;
	if (r.left > 0) { /* absent from records written before they were kept */
		bs->addr_index = r64(&r);
		for (uint32_t i = 0; i < na; i++)
			bs->addresses[i].learned = r64(&r);
	}
	return done(&r, why);
}

int logdb_decode_snapshot(const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                          struct logdb_snapshot *s, const char **why)
{
	struct rd r;
	unsigned kind;
	uint64_t g, n, idx;
	if (logdb_key_parse(key, klen, &kind, &g, &n, &idx) || kind != LOGDB_KIND_SNAPSHOT ||
	    klen != LOGDB_INDEX_KEY_LEN)
		return fail(why, "malformed snapshot key");
	int rc = open_value(key, klen, val, vlen, LOGDB_KIND_SNAPSHOT, &r, why);
	if (rc)
		return rc;
	memset(s, 0, sizeof(*s));
	s->meta.index = idx;
	s->meta.term = r64(&r);
	s->size = r64(&r);
	s->checksum = r64(&r);
	uint32_t fl = r32(&r);
	if (r.bad)
		return fail(why, "value truncated");
	if (fl >= LOGDB_PATH_MAX)
		return fail(why, "snapshot file path too long");
	const uint8_t *p = rbytes(&r, fl);
	if (p == NULL)
		return fail(why, "value truncated");
	memcpy(s->file, p, fl);
	s->file[fl] = '\0';
	if ((rc = get_membership(&r, &s->meta.membership, why)))
		return rc;
	return done(&r, why);
}

/* ---- journal records --------------------------------------------------- */

uint64_t logdb_jrec_size(uint64_t len)
{
	return (LOGDB_JREC_HDR + len + 7) & ~(uint64_t)7;
}

static uint32_t jrec_crc(const uint8_t *hdr, const void *body, uint32_t len)
{
	return dr_crc32c(dr_crc32c(0, hdr, 16), body, len);
}

void logdb_jrec_header(uint8_t *hdr, uint64_t lsn, const void *body, uint32_t len)
{
	put_le32(hdr, LOGDB_JREC_MAGIC);
	put_le32(hdr + 4, len);
	put_le64(hdr + 8, lsn);
	put_le32(hdr + 16, jrec_crc(hdr, body, len));
	put_le32(hdr + 20, 0);
}

int logdb_jrec_read(const uint8_t *seg, size_t size, uint64_t start, size_t off,
                    const uint8_t **body, uint32_t *len)
{
	if (off > size || size - off < LOGDB_JREC_HDR)
		return LOGDB_JREC_END;
	const uint8_t *h = seg + off;
	if (get_le32(h) != LOGDB_JREC_MAGIC || get_le64(h + 8) != start + off ||
	    get_le32(h + 20) != 0)
		return LOGDB_JREC_END;
	uint32_t n = get_le32(h + 4);
	if (n > size - off - LOGDB_JREC_HDR ||
	    get_le32(h + 16) != jrec_crc(h, h + LOGDB_JREC_HDR, n))
		return LOGDB_JREC_TORN;
	*body = h + LOGDB_JREC_HDR;
	*len = n;
	return LOGDB_JREC_VALID;
}

size_t logdb_jrec_find(const uint8_t *seg, size_t size, uint64_t start, size_t from,
                       uint64_t moved_min)
{
	const uint8_t *body;
	uint32_t len;
	for (size_t off = (from + 7) & ~(size_t)7; off < size && size - off >= LOGDB_JREC_HDR;
	     off += 8) {
		if (get_le32(seg + off) != LOGDB_JREC_MAGIC)
			continue;
		/* read it as a record of the segment whose start puts its LSN here */
		uint64_t lsn = get_le64(seg + off + 8);
		bool moved = moved_min != UINT64_MAX && lsn >= moved_min && lsn != start + off &&
		             lsn >= off;
		uint64_t at = moved ? lsn - off : start;
		if (logdb_jrec_read(seg, size, at, off, &body, &len) == LOGDB_JREC_VALID)
			return off;
	}
	return size;
}

/* Whether seg[a..b) is all zeros. */
static bool all_zero(const uint8_t *seg, size_t a, size_t b)
{
	for (; a < b; a++)
		if (seg[a] != 0)
			return false;
	return true;
}

void logdb_jrec_tail(const uint8_t *seg, size_t size, uint64_t start, size_t off,
                     struct logdb_jrec_tail *t)
{
	const uint8_t *body;
	uint32_t len;
	memset(t, 0, sizeof(*t));
	if (off >= size || size - off < 4 || get_le32(seg + off) != LOGDB_JREC_MAGIC)
		return; /* CLEAN */
	if (size - off < LOGDB_JREC_HDR) {
		t->kind = LOGDB_TAIL_SHORT;
		t->bytes = size - off;
		return;
	}
	const uint8_t *h = seg + off;
	uint64_t lsn = get_le64(h + 8);
	if (lsn != start + off || get_le32(h + 20) != 0) {
		/* a whole record of the segment's earlier use (its LSN below this use's) */
		if (lsn < start && lsn >= off &&
		    logdb_jrec_read(seg, size, lsn - off, off, &body, &len) == LOGDB_JREC_VALID)
			return; /* CLEAN */
		t->kind = LOGDB_TAIL_HEADER;
		t->bytes = LOGDB_JREC_HDR;
		return;
	}
	t->len = get_le32(h + 4);
	if (t->len > size - off - LOGDB_JREC_HDR) {
		t->kind = LOGDB_TAIL_SHORT;
		t->bytes = size - off;
		return;
	}
	t->kind = LOGDB_TAIL_CRC;
	t->bytes = LOGDB_JREC_HDR + (size_t)t->len;
	/* each sector the record covers: its part of the record not all zeros */
	size_t end = off + t->bytes;
	t->all_sectors = true;
	for (size_t a = off; a < end && t->all_sectors;) {
		size_t b = (a / LOGDB_JREC_SECTOR + 1) * LOGDB_JREC_SECTOR;
		if (b > end)
			b = end;
		t->all_sectors = !all_zero(seg, a, b);
		a = b;
	}
}
