/*
 * test_transport_codec.c - CRC32C, frame headers and reassembly, protobuf
 * conversion with its bounds checks, the decode arena, handshake proofs.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "transport/auth.h"
#include "transport/codec.h"
#include "util/crc32c.h"
#include "transport/frame.h"

static void test_crc32c_vectors(void **state)
{
	uint8_t buf[16384];

	(void)state;
	assert_int_equal(dr_crc32c(0, "123456789", 9), 0xE3069283u);
	assert_int_equal(dr_crc32c_sw(0, "123456789", 9), 0xE3069283u);
	memset(buf, 0, 32);
	assert_int_equal(dr_crc32c(0, buf, 32), 0x8A9136AAu);
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 7 + 3);
	/* Hardware and software agree at every length and alignment, and chain. */
	for (size_t off = 0; off < 8; off++)
		for (size_t len = 0; len < 10000; len += len < 300 ? 7 : 997) {
			uint32_t hw = dr_crc32c(0, buf + off, len);
			assert_int_equal(hw, dr_crc32c_sw(0, buf + off, len));
			assert_int_equal(hw, dr_crc32c(dr_crc32c(0, buf + off, len / 2),
			                               buf + off + len / 2, len - len / 2));
		}
}

static void test_frame_header(void **state)
{
	uint8_t hdr[TRANSPORT_FRAME_HDR], payload[10] = "abcdefghi";
	struct transport_frame_header h;

	(void)state;
	transport_frame_header_put(hdr, TF_BATCH, payload, sizeof(payload));
	assert_int_equal(transport_frame_header_check(hdr, 100, &h), TRANSPORT_OK);
	assert_int_equal(h.kind, TF_BATCH);
	assert_int_equal(h.len, sizeof(payload));
	assert_int_equal(transport_frame_crc_check(hdr, payload, sizeof(payload)), TRANSPORT_OK);
	payload[3] ^= 1;
	assert_int_equal(transport_frame_crc_check(hdr, payload, sizeof(payload)), TRANSPORT_ECRC);
	assert_int_equal(transport_frame_header_check(hdr, 9, &h), TRANSPORT_ETOOBIG);
	hdr[0] = 'X';
	assert_int_equal(transport_frame_header_check(hdr, 100, &h), TRANSPORT_EMAGIC);
	hdr[0] = 'D';
	hdr[4] = 1; /* the HMAC-handshake protocol of before */
	assert_int_equal(transport_frame_header_check(hdr, 100, &h), TRANSPORT_EVERSION);
	hdr[4] = TRANSPORT_FRAME_VERSION;
	hdr[5] = TF_KIND_MAX + 1;
	assert_int_equal(transport_frame_header_check(hdr, 100, &h), TRANSPORT_EVERSION);
	/* Control frames have fixed limits whatever the connection's maximum. */
	transport_frame_header_put(hdr, TF_HELLO, payload, sizeof(payload));
	tp_put32(hdr + 8, TRANSPORT_HELLO_LEN + 1);
	assert_int_equal(transport_frame_header_check(hdr, 1 << 20, &h), TRANSPORT_ETOOBIG);
	hdr[5] = TF_SNAP_BEGIN;
	tp_put32(hdr + 8, TRANSPORT_SNAP_BEGIN_MAX + 1);
	assert_int_equal(transport_frame_header_check(hdr, 1 << 20, &h), TRANSPORT_ETOOBIG);
	tp_put32(hdr + 8, TRANSPORT_SNAP_BEGIN_MAX);
	assert_int_equal(transport_frame_header_check(hdr, 1 << 20, &h), TRANSPORT_OK);
}

struct seen {
	int frames;
	uint32_t total;
	uint8_t last[64];
};

static int count_frame(void *arg, const struct transport_frame_header *h, const uint8_t *p,
                       uint32_t len)
{
	struct seen *s = arg;

	(void)h;
	s->frames++;
	s->total += len;
	memcpy(s->last, p, len < 64 ? len : 64);
	return 0;
}

static void test_frame_reader_splits(void **state)
{
	uint8_t stream[3 * (TRANSPORT_FRAME_HDR + 40)];
	size_t n = 0;

	(void)state;
	for (int f = 0; f < 3; f++) {
		uint8_t payload[40];
		uint32_t len = (uint32_t)(f * 20); /* 0, 20, 40 bytes */
		memset(payload, 'a' + f, sizeof(payload));
		transport_frame_header_put(stream + n, TF_BATCH, payload, len);
		memcpy(stream + n + TRANSPORT_FRAME_HDR, payload, len);
		n += TRANSPORT_FRAME_HDR + len;
	}
	/* Every split point into two reads, and byte-by-byte, yields the same frames. */
	for (size_t cut = 0; cut <= n; cut++) {
		struct transport_frame_reader r;
		struct seen s = {0};

		transport_frame_reader_init(&r, 1000);
		assert_int_equal(transport_frame_reader_feed(&r, stream, cut, count_frame, &s), 0);
		assert_int_equal(
		        transport_frame_reader_feed(&r, stream + cut, n - cut, count_frame, &s), 0);
		assert_int_equal(s.frames, 3);
		assert_int_equal(s.total, 60);
		assert_int_equal(s.last[0], 'c');
		transport_frame_reader_free(&r);
	}
	{
		struct transport_frame_reader r;
		struct seen s = {0};

		transport_frame_reader_init(&r, 1000);
		for (size_t i = 0; i < n; i++)
			assert_int_equal(
			        transport_frame_reader_feed(&r, stream + i, 1, count_frame, &s), 0);
		assert_int_equal(s.frames, 3);
		transport_frame_reader_free(&r);
	}
	{
		/* A corrupted byte is a sticky CRC error. */
		struct transport_frame_reader r;
		struct seen s = {0};

		stream[2 * TRANSPORT_FRAME_HDR + 5] ^= 0xff; /* payload of frame 2 */
		transport_frame_reader_init(&r, 1000);
		assert_int_equal(transport_frame_reader_feed(&r, stream, n, count_frame, &s),
		                 TRANSPORT_ECRC);
		assert_int_equal(s.frames, 1);
		assert_int_equal(transport_frame_reader_feed(&r, stream, n, count_frame, &s),
		                 TRANSPORT_ECRC);
		transport_frame_reader_free(&r);
	}
}

static size_t max_alloc;
static void *count_malloc(size_t n)
{
	if (n > max_alloc)
		max_alloc = n;
	return malloc(n);
}
static void *count_realloc(void *p, size_t n)
{
	if (n > max_alloc)
		max_alloc = n;
	return realloc(p, n);
}

static void test_frame_reader_oversize_no_alloc(void **state)
{
	struct transport_alloc_hooks hooks = {count_malloc, count_realloc, free};
	struct transport_frame_reader r;
	uint8_t hdr[TRANSPORT_FRAME_HDR];
	struct seen s = {0};

	(void)state;
	transport_set_alloc_hooks(&hooks);
	max_alloc = 0;
	transport_frame_header_put(hdr, TF_BATCH, NULL, 0);
	tp_put32(hdr + 8, 0xF0000000u); /* claims 3.75 GiB */
	transport_frame_reader_init(&r, TRANSPORT_DEFAULT_MAX_FRAME);
	assert_int_equal(transport_frame_reader_feed(&r, hdr, sizeof(hdr), count_frame, &s),
	                 TRANSPORT_ETOOBIG);
	assert_true(max_alloc == 0);
	transport_frame_reader_free(&r);
	transport_set_alloc_hooks(NULL);
}

static struct raft_membership sample_membership(void)
{
	struct raft_membership m;

	memset(&m, 0, sizeof(m));
	m.config_index = 7;
	m.n_voters = 3;
	m.voters[0] = 1;
	m.voters[1] = 2;
	m.voters[2] = 3;
	m.n_nonvoters = 1;
	m.nonvoters[0] = 4;
	m.n_removed = 1;
	m.removed[0] = 9;
	return m;
}

static void test_roundtrip_all_types(void **state)
{
	struct transport_encoder enc = {0};
	struct transport_buf b = {0};
	struct transport_arena a;
	struct raft_entry ents[3];
	uint8_t data[3][20];
	struct raft_snapshot_meta snap = {.index = 100, .term = 5};
	struct raft_message in[RAFT_MSG_TYPE_MAX];
	struct raft_message *out;
	size_t n;

	(void)state;
	snap.membership = sample_membership();
	for (int i = 0; i < 3; i++) {
		memset(data[i], 'x' + i, sizeof(data[i]));
		ents[i] = (struct raft_entry){.term = 4,
		                              .index = 11 + (uint64_t)i,
		                              .type = (uint32_t)(i == 2),
		                              .len = (uint32_t)(i * 10),
		                              .data = data[i]};
	}
	for (uint32_t t = 1; t <= RAFT_MSG_TYPE_MAX; t++) {
		struct raft_message *m = &in[t - 1];
		memset(m, 0, sizeof(*m));
		m->type = t;
		m->flags = t == RAFT_MSG_VOTE             ? RAFT_MSG_FLAG_TRANSFER
		           : t == RAFT_MSG_HEARTBEAT_RESP ? RAFT_MSG_FLAG_WAKE /* quiescence */
		           : t == RAFT_MSG_APPEND         ? RAFT_MSG_FLAG_COMMIT_ONLY
		                                          : 0;
		m->group_id = 1000 + t;
		m->from = 1;
		m->to = 2;
		m->term = 5;
		m->log_term = 4;
		m->index = 10;
		m->commit = 9;
		m->reject = t == RAFT_MSG_APPEND_RESP;
		m->reject_hint = 8;
		m->hint_term = 3;
		m->context = 0xdeadbeefcafeULL + t;
		if (t == RAFT_MSG_APPEND || t == RAFT_MSG_PROPOSE) {
			m->n_entries = 3;
			m->entries = ents;
		}
		if (t == RAFT_MSG_SNAPSHOT)
			m->snapshot = &snap;
		assert_int_equal(transport_message_check(m), TRANSPORT_OK);
	}
	assert_int_equal(transport_encode_batch(&enc, in, RAFT_MSG_TYPE_MAX, &b), TRANSPORT_OK);
	transport_arena_init(&a, 1 << 20);
	assert_int_equal(transport_decode_batch(&a, b.p, b.len, &out, &n), TRANSPORT_OK);
	assert_int_equal(n, RAFT_MSG_TYPE_MAX);
	for (size_t i = 0; i < n; i++) {
		const struct raft_message *x = &in[i], *y = &out[i];
		assert_int_equal(x->type, y->type);
		assert_int_equal(x->flags, y->flags);
		assert_int_equal(x->group_id, y->group_id);
		assert_int_equal(x->from, y->from);
		assert_int_equal(x->to, y->to);
		assert_int_equal(x->term, y->term);
		assert_int_equal(x->log_term, y->log_term);
		assert_int_equal(x->index, y->index);
		assert_int_equal(x->commit, y->commit);
		assert_int_equal(x->reject, y->reject);
		assert_int_equal(x->reject_hint, y->reject_hint);
		assert_int_equal(x->hint_term, y->hint_term);
		assert_int_equal(x->context, y->context);
		assert_int_equal(x->n_entries, y->n_entries);
		for (uint32_t k = 0; k < x->n_entries; k++) {
			assert_int_equal(x->entries[k].term, y->entries[k].term);
			assert_int_equal(x->entries[k].index, y->entries[k].index);
			assert_int_equal(x->entries[k].type, y->entries[k].type);
			assert_int_equal(x->entries[k].len, y->entries[k].len);
			if (x->entries[k].len > 0)
				assert_memory_equal(x->entries[k].data, y->entries[k].data,
				                    x->entries[k].len);
		}
		assert_true((x->snapshot == NULL) == (y->snapshot == NULL));
		if (x->snapshot != NULL)
			assert_memory_equal(x->snapshot, y->snapshot, sizeof(*x->snapshot));
	}
	transport_arena_reset(&a);
	{
		/* protobuf-c's unpack agrees, and unknown fields (field 99) are skipped. */
		struct raft_message *ref;
		size_t nref;
		uint8_t unknown[] = {0x98, 0x06, 0x05, 0x9a, 0x06, 0x01, 0x00};

		transport_buf_reserve(&b, sizeof(unknown));
		memcpy(b.p + b.len, unknown, sizeof(unknown));
		b.len += sizeof(unknown);
		assert_int_equal(transport_decode_batch(&a, b.p, b.len, &out, &n), TRANSPORT_OK);
		assert_int_equal(transport_decode_batch_pbc(&a, b.p, b.len, &ref, &nref),
		                 TRANSPORT_OK);
		assert_int_equal(n, nref);
		for (size_t i = 0; i < n; i++) {
			assert_int_equal(out[i].context, ref[i].context);
			assert_int_equal(out[i].n_entries, ref[i].n_entries);
		}
		transport_arena_reset(&a);
	}
	/* The arena limit turns a too-large decode into ENOMEM, not a crash. */
	transport_arena_free(&a);
	transport_arena_init(&a, 256);
	assert_int_equal(transport_decode_batch(&a, b.p, b.len, &out, &n), TRANSPORT_ENOMEM);
	transport_arena_free(&a);
	transport_buf_free(&b);
	transport_encoder_free(&enc);
}

/* Encodes one message without checks and expects decode to reject it. */
static void expect_rejected(const struct raft_message *m, const char *what)
{
	struct transport_encoder enc = {0};
	struct transport_buf b = {0};
	struct transport_arena a;
	struct raft_message *out;
	size_t n;
	int rc;

	assert_int_equal(transport_encode_message(&enc, m, &b), TRANSPORT_OK);
	transport_arena_init(&a, 1 << 20);
	rc = transport_decode_batch(&a, b.p, b.len, &out, &n);
	if (rc != TRANSPORT_EDECODE)
		fail_msg("expected EDECODE for %s, got %s", what, transport_strerror(rc));
	rc = transport_decode_batch_pbc(&a, b.p, b.len, &out, &n);
	if (rc != TRANSPORT_EDECODE)
		fail_msg("expected EDECODE from protobuf-c for %s, got %s", what,
		         transport_strerror(rc));
	transport_arena_free(&a);
	transport_buf_free(&b);
	transport_encoder_free(&enc);
}

static void test_decode_bounds(void **state)
{
	struct raft_message base = {
	        .type = RAFT_MSG_HEARTBEAT, .group_id = 1, .from = 1, .to = 2, .term = 3};
	struct raft_message m;
	struct raft_entry ents[2] = {{.term = 3, .index = 5}, {.term = 3, .index = 7}};
	struct raft_snapshot_meta snap = {.index = 1, .term = 1};
	struct transport_arena a;
	struct raft_message *out;
	size_t n;
	uint8_t junk[] = {0x0a, 0x05, 0x08, 0x01, 0xff, 0xff, 0xff};

	(void)state;
	m = base, m.type = 0;
	expect_rejected(&m, "type 0");
	m = base, m.type = RAFT_MSG_TYPE_MAX + 1;
	expect_rejected(&m, "unknown type");
	m = base, m.flags = 0x80;
	expect_rejected(&m, "unknown flag");
	m = base, m.group_id = 0;
	expect_rejected(&m, "zero group");
	m = base, m.from = 0;
	expect_rejected(&m, "zero sender");
	m = base, m.to = 1;
	expect_rejected(&m, "from == to");
	m = base, m.n_entries = 1, m.entries = ents;
	expect_rejected(&m, "entries in a heartbeat");
	m = base, m.type = RAFT_MSG_APPEND, m.index = 4, m.n_entries = 2, m.entries = ents;
	expect_rejected(&m, "non-contiguous entries");
	m = base, m.type = RAFT_MSG_APPEND, m.index = 4, m.term = 2, m.n_entries = 1,
	m.entries = ents;
	expect_rejected(&m, "entry term above message term");
	m = base, m.type = RAFT_MSG_SNAPSHOT;
	expect_rejected(&m, "snapshot message without metadata");
	snap.membership = sample_membership();
	snap.membership.voters[1] = 1;
	m = base, m.type = RAFT_MSG_SNAPSHOT, m.snapshot = &snap;
	expect_rejected(&m, "duplicate voter");
	snap.membership = sample_membership();
	snap.membership.removed[0] = 2;
	expect_rejected(&m, "removed id still a voter");
	snap.membership = sample_membership();
	snap.membership.n_voters = 0;
	snap.membership.n_nonvoters = 0;
	expect_rejected(&m, "snapshot without voters");
	/* Too many voters cannot even be expressed by raft_membership: build it in protobuf. */
	{
		Dragonraft__Message pm = DRAGONRAFT__MESSAGE__INIT;
		Dragonraft__SnapshotMeta ps = DRAGONRAFT__SNAPSHOT_META__INIT;
		Dragonraft__Membership pmb = DRAGONRAFT__MEMBERSHIP__INIT;
		Dragonraft__Message *pms[1] = {&pm};
		Dragonraft__MessageBatch pb = DRAGONRAFT__MESSAGE_BATCH__INIT;
		uint64_t ids[RAFT_MAX_MEMBERS + 1];
		uint8_t buf[1024];
		size_t len;

		for (size_t i = 0; i < RAFT_MAX_MEMBERS + 1; i++)
			ids[i] = i + 1;
		pmb.n_voters = RAFT_MAX_MEMBERS + 1;
		pmb.voters = ids;
		ps.index = ps.term = 1;
		ps.membership = &pmb;
		pm.type = RAFT_MSG_SNAPSHOT;
		pm.group_id = pm.from = 1;
		pm.to = 2;
		pm.snapshot = &ps;
		pb.n_messages = 1;
		pb.messages = pms;
		len = dragonraft__message_batch__pack(&pb, buf);
		transport_arena_init(&a, 1 << 20);
		assert_int_equal(transport_decode_batch(&a, buf, len, &out, &n), TRANSPORT_EDECODE);
		assert_int_equal(transport_decode_batch_pbc(&a, buf, len, &out, &n),
		                 TRANSPORT_EDECODE);
		transport_arena_free(&a);
	}
	transport_arena_init(&a, 1 << 20);
	assert_int_equal(transport_decode_batch(&a, junk, sizeof(junk), &out, &n),
	                 TRANSPORT_EDECODE);
	transport_arena_free(&a);
}

static void test_other_schemas(void **state)
{
	struct raft_hard_state hs = {.term = 9, .vote = 3, .commit = 77}, hs2;
	struct raft_conf_change cc = {.type = RAFT_CC_ADD_NONVOTER,
	                              .node_id = 5,
	                              .context_len = 14,
	                              .context = (const uint8_t *)"127.0.0.1:7405"},
	                        cc2;
	struct transport_snapshot_header sh = {.group_id = 4,
	                                       .from = 1,
	                                       .to = 2,
	                                       .total_size = 1 << 30,
	                                       .crc32c = 0x12345678},
	                                 sh2;
	struct transport_buf b = {0};
	struct transport_arena a;

	(void)state;
	assert_int_equal(transport_encode_hard_state(&hs, &b), TRANSPORT_OK);
	assert_int_equal(transport_decode_hard_state(b.p, b.len, &hs2), TRANSPORT_OK);
	assert_memory_equal(&hs, &hs2, sizeof(hs));
	b.len = 0;
	assert_int_equal(transport_encode_conf_change(&cc, &b), TRANSPORT_OK);
	transport_arena_init(&a, 1 << 16);
	assert_int_equal(transport_decode_conf_change(&a, b.p, b.len, &cc2), TRANSPORT_OK);
	assert_int_equal(cc2.type, cc.type);
	assert_int_equal(cc2.node_id, cc.node_id);
	assert_int_equal(cc2.context_len, cc.context_len);
	assert_memory_equal(cc2.context, cc.context, cc.context_len);
	cc.node_id = 0;
	b.len = 0;
	transport_encode_conf_change(&cc, &b);
	assert_int_equal(transport_decode_conf_change(&a, b.p, b.len, &cc2), TRANSPORT_EDECODE);
	transport_arena_free(&a);
	sh.meta.index = 50;
	sh.meta.term = 2;
	sh.meta.membership = sample_membership();
	b.len = 0;
	assert_int_equal(transport_encode_snapshot_header(&sh, &b), TRANSPORT_OK);
	transport_arena_init(&a, 64 << 10);
	assert_int_equal(transport_decode_snapshot_header(&a, b.p, b.len, &sh2), TRANSPORT_OK);
	assert_memory_equal(&sh, &sh2, sizeof(sh));
	transport_buf_free(&b);
	{
		/* A decode bomb: 4,000 one-byte packed voters (32 KB of protobuf-c arrays) fits
		 * in SNAP_BEGIN's 4 KiB but not in a 16 KiB arena: refused, nothing leaks. */
		uint8_t bomb[TRANSPORT_SNAP_BEGIN_MAX];
		size_t n = 0;

		bomb[n++] = 0x22; /* meta, length-delimited */
		bomb[n++] = 0xa4; /* 4004 as a varint */
		bomb[n++] = 0x1f;
		bomb[n++] = 0x1a; /* membership */
		bomb[n++] = 0xa1; /* 4001 */
		bomb[n++] = 0x1f;
		bomb[n++] = 0x12; /* voters, packed */
		bomb[n++] = 0x9e; /* 3998 */
		bomb[n++] = 0x1f;
		memset(bomb + n, 1, 3998);
		n += 3998;
		transport_arena_free(&a);
		transport_arena_init(&a, 16 << 10);
		assert_int_equal(transport_decode_snapshot_header(&a, bomb, n, &sh2),
		                 TRANSPORT_ENOMEM);
		transport_arena_free(&a);
		transport_arena_init(&a, 64 << 10);
		/* With room, it decodes, and the bounds check refuses 3,998 voters. */
		assert_int_equal(transport_decode_snapshot_header(&a, bomb, n, &sh2),
		                 TRANSPORT_EDECODE);
		/* Larger than SNAP_BEGIN may be: refused before decoding. */
		assert_int_equal(transport_decode_snapshot_header(&a, bomb, sizeof(bomb) + 1, &sh2),
		                 TRANSPORT_EDECODE);
	}
	transport_arena_free(&a);
	assert_string_equal(transport_strerror(TRANSPORT_ECRC), "frame checksum mismatch");
	assert_string_equal(transport_strerror(-1), "unknown error");
}

static void test_hello_and_cert_uri(void **state)
{
	struct transport_hello h = {.client_id = 7, .server_id = 9, .purpose = 2}, h2;
	uint8_t p[TRANSPORT_HELLO_LEN];
	uint64_t id;

	(void)state;
	transport_hello_put(p, &h);
	assert_int_equal(transport_hello_get(p, sizeof(p), &h2), 0);
	assert_int_equal(h2.client_id, 7);
	assert_int_equal(h2.server_id, 9);
	assert_int_equal(h2.purpose, 2);
	assert_int_equal(transport_hello_get(p, sizeof(p) - 1, &h2), TRANSPORT_EDECODE);
	p[16] = 3; /* no such purpose */
	assert_int_equal(transport_hello_get(p, sizeof(p), &h2), TRANSPORT_EDECODE);
#define URI(s) transport_cert_uri_node_id(s, strlen(s), &id)
	assert_int_equal(URI("urn:dragonraft:node:42"), 0);
	assert_int_equal(id, 42);
	assert_int_equal(URI("urn:dragonraft:node:18446744073709551615"), 0);
	assert_int_equal(id, UINT64_MAX);
	assert_int_equal(URI("urn:dragonraft:node:18446744073709551616"), TRANSPORT_EDECODE);
	assert_int_equal(URI("urn:dragonraft:node:042"), TRANSPORT_EDECODE);
	assert_int_equal(URI("urn:dragonraft:node:0"), TRANSPORT_EDECODE);
	assert_int_equal(URI("urn:dragonraft:node:"), TRANSPORT_EDECODE);
	assert_int_equal(URI("urn:dragonraft:node:4x"), TRANSPORT_EDECODE);
	assert_int_equal(URI("urn:dragonraft:nodes:4"), TRANSPORT_EDECODE);
#undef URI
}

static void test_frame_reader_grows_under_budget(void **state)
{
	struct transport_mem_budget budget = {.limit = 300 << 10};
	struct transport_frame_reader r1, r2;
	static uint8_t payload[200 << 10];
	uint8_t hdr[TRANSPORT_FRAME_HDR];
	struct seen s = {0};

	(void)state;
	transport_frame_reader_init(&r1, 1 << 20);
	transport_frame_reader_init(&r2, 1 << 20);
	r1.budget = r2.budget = &budget;
	/* A header declaring 1 MiB allocates nothing; 1 KiB of it takes 64 KiB, not 1 MiB. */
	transport_frame_header_put(hdr, TF_BATCH, NULL, 0);
	tp_put32(hdr + 8, 1 << 20);
	assert_int_equal(transport_frame_reader_feed(&r1, hdr, sizeof(hdr), count_frame, &s), 0);
	assert_int_equal(budget.used, 0);
	assert_int_equal(transport_frame_reader_feed(&r1, payload, 1024, count_frame, &s), 0);
	assert_int_equal(budget.used, 64 << 10);
	/* 200 KiB more: 256 KiB. */
	assert_int_equal(
	        transport_frame_reader_feed(&r1, payload, sizeof(payload), count_frame, &s), 0);
	assert_int_equal(budget.used, 256 << 10);
	/* A second reader may not push the total past the budget. */
	assert_int_equal(transport_frame_reader_feed(&r2, hdr, sizeof(hdr), count_frame, &s), 0);
	assert_int_equal(transport_frame_reader_feed(&r2, payload, 1024, count_frame, &s),
	                 TRANSPORT_EBUDGET);
	transport_frame_reader_free(&r2);
	transport_frame_reader_free(&r1);
	assert_int_equal(budget.used, 0);
	assert_int_equal(s.frames, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_crc32c_vectors),
	        cmocka_unit_test(test_frame_header),
	        cmocka_unit_test(test_frame_reader_splits),
	        cmocka_unit_test(test_frame_reader_oversize_no_alloc),
	        cmocka_unit_test(test_roundtrip_all_types),
	        cmocka_unit_test(test_decode_bounds),
	        cmocka_unit_test(test_other_schemas),
	        cmocka_unit_test(test_hello_and_cert_uri),
	        cmocka_unit_test(test_frame_reader_grows_under_budget),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
