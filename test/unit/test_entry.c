/*
 * test_entry.c - the application entry encoding (src/entry): round trips,
 * and every kind of bad input refused with its code.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "entry/entry.h"

static size_t encode(uint8_t *buf, size_t cap, uint32_t node, const char *addr)
{
	struct entry_member_info mi = {
	        .node_id = node, .client_addr = addr, .client_addr_len = (uint16_t)strlen(addr)};
	size_t len = 0;

	assert_int_equal(entry_encode_member_info(buf, cap, &mi, &len), ENTRY_OK);
	assert_int_equal(len, entry_member_info_size(&mi));
	return len;
}

/* A member info of node 5 with an encoding and a locale. */
static struct entry_member_info with_locale(void)
{
	struct entry_member_info mi = {.node_id = 5, .client_addr = "host=b", .client_addr_len = 6};

	mi.has_locale = 1;
	mi.encoding = 6; /* PG_UTF8 */
	mi.locale_provider = 'i';
	mi.collate = "en_US.UTF-8";
	mi.collate_len = 11;
	mi.ctype = "C";
	mi.ctype_len = 1;
	mi.icu_locale = "und-x-icu";
	mi.icu_locale_len = 9;
	return mi;
}

static void test_member_info_locale(void **state)
{
	struct entry_member_info mi = with_locale(), out;
	struct entry_header h;
	uint8_t buf[128];
	size_t len = 0;

	(void)state;
	assert_int_equal(entry_encode_member_info(buf, sizeof(buf), &mi, &len), ENTRY_OK);
	assert_int_equal(len, entry_member_info_size(&mi));
	assert_int_equal(entry_decode_header(buf, len, &h), ENTRY_OK);
	assert_int_equal(h.type, ENTRY_MEMBER_INFO);
	assert_int_equal(h.encoding, -1); /* (in the body: no check_encoding stop) */
	assert_int_equal(entry_decode_member_info(&h, &out), ENTRY_OK);
	assert_int_equal(out.node_id, 5);
	assert_int_equal(out.has_locale, 1);
	assert_int_equal(out.encoding, 6);
	assert_int_equal(out.locale_provider, 'i');
	assert_int_equal(out.collate_len, 11);
	assert_memory_equal(out.collate, "en_US.UTF-8", 11);
	assert_int_equal(out.ctype_len, 1);
	assert_memory_equal(out.ctype, "C", 1);
	assert_int_equal(out.icu_locale_len, 9);
	assert_memory_equal(out.icu_locale, "und-x-icu", 9);
	assert_ptr_equal(out.icu_locale, (const char *)buf + len - 9);
	/* Every truncation is short. */
	for (size_t n = ENTRY_HEADER_BYTES; n < len; n++) {
		assert_int_equal(entry_decode_header(buf, n, &h), ENTRY_OK);
		assert_int_equal(entry_decode_member_info(&h, &out), ENTRY_ERR_SHORT);
	}
	/* Encoding 254 is the highest; the provider printable; no ICU locale. */
	mi.encoding = ENTRY_ENCODING_MAX;
	mi.icu_locale_len = 0;
	mi.locale_provider = 'c';
	assert_int_equal(entry_encode_member_info(buf, sizeof(buf), &mi, &len), ENTRY_OK);
	assert_int_equal(entry_decode_header(buf, len, &h), ENTRY_OK);
	assert_int_equal(entry_decode_member_info(&h, &out), ENTRY_OK);
	assert_int_equal(out.encoding, ENTRY_ENCODING_MAX);
	assert_int_equal(out.icu_locale_len, 0);
}

/* Not known: the old type, and the new one that says so. */
static void test_member_info_unknown(void **state)
{
	struct entry_member_info mi = {.node_id = 9, .client_addr = "host=c", .client_addr_len = 6},
	                         out;
	struct entry_header h;
	uint8_t buf[64];
	size_t len = 0;

	(void)state;
	assert_int_equal(entry_encode_member_info_v1(buf, sizeof(buf), &mi, &len), ENTRY_OK);
	assert_int_equal(len, ENTRY_HEADER_BYTES + 6 + 6);
	assert_int_equal(buf[1], ENTRY_MEMBER_INFO_V1);
	assert_true(entry_is_member_info(ENTRY_MEMBER_INFO_V1));
	assert_string_equal(entry_type_name(ENTRY_MEMBER_INFO_V1), "member info");
	assert_int_equal(entry_decode_header(buf, len, &h), ENTRY_OK);
	out.has_locale = 1;
	assert_int_equal(entry_decode_member_info(&h, &out), ENTRY_OK);
	assert_int_equal(out.node_id, 9);
	assert_int_equal(out.has_locale, 0);
	assert_int_equal(out.client_addr_len, 6);
	/* A V1 with the new tail is malformed (trailing bytes). */
	assert_int_equal(entry_encode_member_info(buf, sizeof(buf), &mi, &len), ENTRY_OK);
	assert_int_equal(len, ENTRY_HEADER_BYTES + 6 + 6 + 8);
	assert_int_equal(buf[ENTRY_HEADER_BYTES + 12], ENTRY_ENCODING_UNKNOWN);
	assert_int_equal(entry_decode_header(buf, len, &h), ENTRY_OK);
	assert_int_equal(entry_decode_member_info(&h, &out), ENTRY_OK);
	assert_int_equal(out.has_locale, 0);
	buf[1] = ENTRY_MEMBER_INFO_V1;
	assert_int_equal(entry_decode_header(buf, len, &h), ENTRY_OK);
	assert_int_equal(entry_decode_member_info(&h, &out), ENTRY_ERR_FORMAT);
	buf[1] = ENTRY_MEMBER_INFO;
	/* Not known, but a provider or a locale: malformed. */
	buf[ENTRY_HEADER_BYTES + 13] = 'c';
	assert_int_equal(entry_decode_header(buf, len, &h), ENTRY_OK);
	assert_int_equal(entry_decode_member_info(&h, &out), ENTRY_ERR_FORMAT);
	mi.locale_provider = 'c';
	assert_int_equal(entry_encode_member_info(buf, sizeof(buf), &mi, &len), ENTRY_ERR_FORMAT);
	mi.locale_provider = 0;
	mi.collate = "C";
	mi.collate_len = 1;
	assert_int_equal(entry_encode_member_info(buf, sizeof(buf), &mi, &len), ENTRY_ERR_FORMAT);
}

static void test_member_info_locale_refuses(void **state)
{
	char big[ENTRY_LOCALE_MAX + 1];
	struct entry_member_info mi = with_locale(), out;
	struct entry_header h;
	uint8_t buf[2 * ENTRY_LOCALE_MAX + 64];
	size_t len = 0, at;

	(void)state;
	/* Too small a buffer, by one byte. */
	assert_int_equal(entry_encode_member_info(buf, entry_member_info_size(&mi) - 1, &mi, &len),
	                 ENTRY_ERR_SPACE);
	/* Encodings past the highest, providers not printable, names too long or
	 * not printable ASCII. */
	mi.encoding = ENTRY_ENCODING_MAX + 1;
	assert_int_equal(entry_encode_member_info(buf, sizeof(buf), &mi, &len), ENTRY_ERR_FORMAT);
	mi.encoding = -1;
	assert_int_equal(entry_encode_member_info(buf, sizeof(buf), &mi, &len), ENTRY_ERR_FORMAT);
	mi = with_locale();
	mi.locale_provider = ' ';
	assert_int_equal(entry_encode_member_info(buf, sizeof(buf), &mi, &len), ENTRY_ERR_FORMAT);
	mi.locale_provider = 0;
	assert_int_equal(entry_encode_member_info(buf, sizeof(buf), &mi, &len), ENTRY_ERR_FORMAT);
	mi = with_locale();
	memset(big, 'a', sizeof(big));
	mi.ctype = big;
	mi.ctype_len = ENTRY_LOCALE_MAX + 1;
	assert_int_equal(entry_encode_member_info(buf, sizeof(buf), &mi, &len), ENTRY_ERR_FORMAT);
	mi.ctype_len = ENTRY_LOCALE_MAX;
	assert_int_equal(entry_encode_member_info(buf, sizeof(buf), &mi, &len), ENTRY_OK);
	mi = with_locale();
	mi.icu_locale = "und\x01";
	mi.icu_locale_len = 4;
	assert_int_equal(entry_encode_member_info(buf, sizeof(buf), &mi, &len), ENTRY_ERR_FORMAT);
	mi.icu_locale = "und\xc3";
	assert_int_equal(entry_encode_member_info(buf, sizeof(buf), &mi, &len), ENTRY_ERR_FORMAT);

	/* The decoder refuses the same. */
	mi = with_locale();
	assert_int_equal(entry_encode_member_info(buf, sizeof(buf), &mi, &len), ENTRY_OK);
	at = ENTRY_HEADER_BYTES + 6 + 6; /* the encoding byte */
	buf[at + 1] = 0x7f;
	assert_int_equal(entry_decode_header(buf, len, &h), ENTRY_OK);
	assert_int_equal(entry_decode_member_info(&h, &out), ENTRY_ERR_FORMAT);
	buf[at + 1] = 'i';
	buf[at + 4] = '\n'; /* LC_COLLATE's first byte */
	assert_int_equal(entry_decode_member_info(&h, &out), ENTRY_ERR_FORMAT);
	buf[at + 4] = 'e';
	assert_int_equal(entry_decode_member_info(&h, &out), ENTRY_OK);
	/* A length past the end is short; a trailing byte malformed. */
	buf[at + 2] = 0xff;
	assert_int_equal(entry_decode_member_info(&h, &out), ENTRY_ERR_SHORT);
	buf[at + 2] = 11;
	buf[len] = 'x';
	assert_int_equal(entry_decode_header(buf, len + 1, &h), ENTRY_OK);
	assert_int_equal(entry_decode_member_info(&h, &out), ENTRY_ERR_FORMAT);
	/* A name too long: refused though the bytes are there. */
	mi.ctype = big;
	mi.ctype_len = ENTRY_LOCALE_MAX;
	assert_int_equal(entry_encode_member_info(buf, sizeof(buf), &mi, &len), ENTRY_OK);
	at = ENTRY_HEADER_BYTES + 6 + 6 + 2 + 2 + 11; /* LC_CTYPE's length */
	assert_int_equal(buf[at], ENTRY_LOCALE_MAX & 0xff);
	memmove(buf + at + 3, buf + at + 2, len - at - 2);
	buf[at] = (ENTRY_LOCALE_MAX + 1) & 0xff;
	buf[at + 1] = (ENTRY_LOCALE_MAX + 1) >> 8;
	buf[at + 2] = 'a';
	assert_int_equal(entry_decode_header(buf, len + 1, &h), ENTRY_OK);
	assert_int_equal(entry_decode_member_info(&h, &out), ENTRY_ERR_FORMAT);
}

static void test_member_info_round_trip(void **state)
{
	const char *addr = "host=10.0.0.1 port=5432";
	struct entry_member_info out;
	struct entry_header h;
	uint8_t buf[128];
	size_t len = encode(buf, sizeof(buf), 7, addr);

	(void)state;
	assert_int_equal(entry_decode_header(buf, len, &h), ENTRY_OK);
	assert_int_equal(h.version, ENTRY_VERSION);
	assert_int_equal(h.type, ENTRY_MEMBER_INFO);
	assert_string_equal(entry_type_name(h.type), "member info");
	assert_int_equal(entry_decode_member_info(&h, &out), ENTRY_OK);
	assert_int_equal(out.node_id, 7);
	assert_int_equal(out.client_addr_len, strlen(addr));
	assert_memory_equal(out.client_addr, addr, strlen(addr));
	/* The address points into the input: no copy, no allocation. */
	assert_ptr_equal(out.client_addr, (const char *)buf + ENTRY_HEADER_BYTES + 6);
}

static void test_encode_refuses(void **state)
{
	char big[ENTRY_CLIENT_ADDR_MAX + 2];
	struct entry_member_info mi = {.node_id = 1, .client_addr = "host=a", .client_addr_len = 6};
	uint8_t buf[ENTRY_CLIENT_ADDR_MAX + 64];
	size_t len = 99;

	(void)state;
	/* Too small a buffer, by one byte. */
	assert_int_equal(entry_encode_member_info(buf, entry_member_info_size(&mi) - 1, &mi, &len),
	                 ENTRY_ERR_SPACE);
	assert_int_equal(len, 0);
	mi.node_id = 0;
	assert_int_equal(entry_encode_member_info(buf, sizeof(buf), &mi, &len), ENTRY_ERR_FORMAT);
	mi.node_id = 1;
	mi.client_addr_len = 0;
	assert_int_equal(entry_encode_member_info(buf, sizeof(buf), &mi, &len), ENTRY_ERR_FORMAT);
	mi.client_addr = "host=a\nport=1";
	mi.client_addr_len = 13;
	assert_int_equal(entry_encode_member_info(buf, sizeof(buf), &mi, &len), ENTRY_ERR_FORMAT);
	memset(big, 'a', sizeof(big));
	mi.client_addr = big;
	mi.client_addr_len = ENTRY_CLIENT_ADDR_MAX + 1;
	assert_int_equal(entry_encode_member_info(buf, sizeof(buf), &mi, &len), ENTRY_ERR_FORMAT);
	mi.client_addr_len = ENTRY_CLIENT_ADDR_MAX;
	assert_int_equal(entry_encode_member_info(buf, sizeof(buf), &mi, &len), ENTRY_OK);
}

/* buf (len bytes) is an addresses entry of type holding node 1 and node 42 at "[::1]:7402". */
static void decode_two(const uint8_t *buf, size_t len, unsigned type, struct entry_address *out)
{
	struct entry_header h;
	size_t n;

	assert_int_equal(entry_decode_header(buf, len, &h), ENTRY_OK);
	assert_int_equal(h.type, type);
	assert_string_equal(entry_type_name(h.type), "member addresses");
	assert_true(entry_is_addresses(h.type));
	assert_int_equal(entry_decode_addresses(&h, out, &n), ENTRY_OK);
	assert_int_equal(n, 2);
	assert_int_equal(out[0].node_id, 1);
	assert_int_equal(out[1].node_id, 42);
	assert_int_equal(out[1].addr_len, 10);
	assert_memory_equal(out[1].addr, "[::1]:7402", 10);
}

static void test_addresses(void **state)
{
	struct entry_address in[2] = {{1, "10.0.0.1:7400", 13, 0x0102030405060708u},
	                              {42, "[::1]:7402", 10, UINT64_MAX}};
	struct entry_address out[ENTRY_ADDRESSES_MAX], bad;
	struct entry_header h;
	uint8_t buf[128];
	size_t len, n, a0 = ENTRY_HEADER_BYTES + 2; /* where the first address starts */

	(void)state;
	assert_int_equal(entry_encode_addresses(buf, sizeof(buf), in, 2, &len), ENTRY_OK);
	assert_int_equal(len, ENTRY_HEADER_BYTES + 2 + 14 + 13 + 14 + 10);
	assert_true(len <= ENTRY_ADDRESSES_BYTES(2, 13));
	decode_two(buf, len, ENTRY_ADDRESSES, out);
	assert_int_equal(out[0].learned, 0x0102030405060708u);
	assert_true(out[1].learned == UINT64_MAX);
	/* Every shorter body is truncated; a byte more is left over. */
	for (size_t k = ENTRY_HEADER_BYTES; k < len; k++) {
		assert_int_equal(entry_decode_header(buf, k, &h), ENTRY_OK);
		assert_int_equal(entry_decode_addresses(&h, out, &n), ENTRY_ERR_SHORT);
	}
	buf[len] = 'x';
	assert_int_equal(entry_decode_header(buf, len + 1, &h), ENTRY_OK);
	assert_int_equal(entry_decode_addresses(&h, out, &n), ENTRY_ERR_FORMAT);
	/* A node id 0, a control character, a count of 0 or over the most. */
	assert_int_equal(entry_decode_header(buf, len, &h), ENTRY_OK);
	buf[a0] = 0;
	assert_int_equal(entry_decode_addresses(&h, out, &n), ENTRY_ERR_FORMAT);
	buf[a0] = 1;
	buf[a0 + 14] = '\n';
	assert_int_equal(entry_decode_addresses(&h, out, &n), ENTRY_ERR_FORMAT);
	buf[a0 + 14] = '1';
	buf[ENTRY_HEADER_BYTES] = 0;
	assert_int_equal(entry_decode_addresses(&h, out, &n), ENTRY_ERR_FORMAT);
	buf[ENTRY_HEADER_BYTES] = ENTRY_ADDRESSES_MAX + 1;
	assert_int_equal(entry_decode_addresses(&h, out, &n), ENTRY_ERR_FORMAT);
	/* The encoder refuses the same, and a buffer one byte short. */
	assert_int_equal(entry_encode_addresses(buf, len - 1, in, 2, &len), ENTRY_ERR_SPACE);
	assert_int_equal(entry_encode_addresses(buf, sizeof(buf), in, 0, &len), ENTRY_ERR_FORMAT);
	bad = in[0];
	bad.addr_len = 0;
	assert_int_equal(entry_encode_addresses(buf, sizeof(buf), &bad, 1, &len), ENTRY_ERR_FORMAT);
	bad = in[0];
	bad.node_id = 0;
	assert_int_equal(entry_encode_addresses(buf, sizeof(buf), &bad, 1, &len), ENTRY_ERR_FORMAT);
}

/*
 * A corrupt or hostile ENTRY_ADDRESSES: the longest address decodes; one byte
 * more, or a NUL in it, does not (the whole entry: nothing of it is learned).
 */
static void test_addresses_longest(void **state)
{
	uint8_t buf[ENTRY_ADDRESSES_BYTES(1, ENTRY_RAFT_ADDR_MAX + 1)];
	size_t a0 = ENTRY_HEADER_BYTES + 2, len, n; /* where the first address starts */
	struct entry_address in = {7, NULL, ENTRY_RAFT_ADDR_MAX, 1}, out[ENTRY_ADDRESSES_MAX];
	char addr[ENTRY_RAFT_ADDR_MAX + 1];
	struct entry_header h;

	(void)state;
	memset(addr, 'a', sizeof(addr));
	in.addr = addr;
	assert_int_equal(entry_encode_addresses(buf, sizeof(buf), &in, 1, &len), ENTRY_OK);
	assert_int_equal(entry_decode_header(buf, len, &h), ENTRY_OK);
	assert_int_equal(entry_decode_addresses(&h, out, &n), ENTRY_OK);
	assert_true(n == 1 && out[0].addr_len == ENTRY_RAFT_ADDR_MAX && out[0].node_id == 7);
	/* A byte more (its length said too). */
	buf[a0 + 12] = (ENTRY_RAFT_ADDR_MAX + 1) & 0xff;
	buf[a0 + 13] = (ENTRY_RAFT_ADDR_MAX + 1) >> 8;
	buf[len] = 'a';
	assert_int_equal(entry_decode_header(buf, len + 1, &h), ENTRY_OK);
	assert_int_equal(entry_decode_addresses(&h, out, &n), ENTRY_ERR_FORMAT);
	assert_int_equal(n, 0);
	in.addr_len = ENTRY_RAFT_ADDR_MAX + 1;
	assert_int_equal(entry_encode_addresses(buf, sizeof(buf), &in, 1, &len), ENTRY_ERR_FORMAT);
	/* A NUL in the address. */
	in.addr_len = ENTRY_RAFT_ADDR_MAX;
	assert_int_equal(entry_encode_addresses(buf, sizeof(buf), &in, 1, &len), ENTRY_OK);
	buf[a0 + 14 + 3] = '\0';
	assert_int_equal(entry_decode_header(buf, len, &h), ENTRY_OK);
	assert_int_equal(entry_decode_addresses(&h, out, &n), ENTRY_ERR_FORMAT);
}

/* An ENTRY_ADDRESSES_V1 of older builds (no stamps) is still decoded, learned 0. */
static void test_addresses_v1(void **state)
{
	struct entry_address in[2] = {{1, "10.0.0.1:7400", 13, 99}, {42, "[::1]:7402", 10, 7}};
	struct entry_address out[ENTRY_ADDRESSES_MAX];
	struct entry_header h;
	uint8_t buf[128];
	size_t len, n;

	(void)state;
	assert_int_equal(entry_encode_addresses_v1(buf, sizeof(buf), in, 2, &len), ENTRY_OK);
	/* The layout older builds wrote, byte for byte. */
	assert_int_equal(len, ENTRY_HEADER_BYTES + 2 + 6 + 13 + 6 + 10);
	assert_int_equal(buf[1], 5);
	assert_int_equal(buf[ENTRY_HEADER_BYTES], 2);
	assert_int_equal(buf[ENTRY_HEADER_BYTES + 2], 1);
	assert_int_equal(buf[ENTRY_HEADER_BYTES + 2 + 4], 13);
	assert_memory_equal(buf + ENTRY_HEADER_BYTES + 2 + 6, "10.0.0.1:7400", 13);
	decode_two(buf, len, ENTRY_ADDRESSES_V1, out);
	assert_int_equal(out[0].learned, 0);
	assert_int_equal(out[1].learned, 0);
	for (size_t k = ENTRY_HEADER_BYTES; k < len; k++) {
		assert_int_equal(entry_decode_header(buf, k, &h), ENTRY_OK);
		assert_int_equal(entry_decode_addresses(&h, out, &n), ENTRY_ERR_SHORT);
	}
	/* Another type is not an addresses entry. */
	buf[1] = ENTRY_MEMBER_INFO;
	assert_int_equal(entry_decode_header(buf, len, &h), ENTRY_OK);
	assert_int_equal(entry_decode_addresses(&h, out, &n), ENTRY_ERR_TYPE);
	assert_false(entry_is_addresses(ENTRY_MEMBER_INFO));
}

static void test_header_refuses(void **state)
{
	struct entry_header h;
	uint8_t buf[64];
	size_t len = encode(buf, sizeof(buf), 3, "host=x port=1");

	(void)state;
	for (size_t n = 0; n < ENTRY_HEADER_BYTES; n++)
		assert_int_equal(entry_decode_header(buf, n, &h), ENTRY_ERR_SHORT);
	buf[0] = ENTRY_VERSION + 1;
	assert_int_equal(entry_decode_header(buf, len, &h), ENTRY_ERR_VERSION);
	buf[0] = 0;
	assert_int_equal(entry_decode_header(buf, len, &h), ENTRY_ERR_VERSION);
	buf[0] = ENTRY_VERSION;
	buf[1] = 200;
	assert_int_equal(entry_decode_header(buf, len, &h), ENTRY_ERR_TYPE);
	assert_null(entry_type_name(200));
	buf[1] = ENTRY_MEMBER_INFO;
	buf[3] = 1;
	assert_int_equal(entry_decode_header(buf, len, &h), ENTRY_ERR_FORMAT);
	buf[3] = 0;
	assert_int_equal(entry_decode_header(buf, len, &h), ENTRY_OK);
}

static void test_member_info_refuses(void **state)
{
	struct entry_member_info out;
	struct entry_header h;
	uint8_t buf[64];
	size_t len = encode(buf, sizeof(buf) - 1, 3, "host=x port=1");

	(void)state;
	/* Every truncation is short, never read past the end. */
	for (size_t n = ENTRY_HEADER_BYTES; n < len; n++) {
		assert_int_equal(entry_decode_header(buf, n, &h), ENTRY_OK);
		assert_int_equal(entry_decode_member_info(&h, &out), ENTRY_ERR_SHORT);
	}
	/* A trailing byte. */
	buf[len] = 'x';
	assert_int_equal(entry_decode_header(buf, len + 1, &h), ENTRY_OK);
	assert_int_equal(entry_decode_member_info(&h, &out), ENTRY_ERR_FORMAT);
	/* Node id 0. */
	memset(buf + 4, 0, 4);
	assert_int_equal(entry_decode_header(buf, len, &h), ENTRY_OK);
	assert_int_equal(entry_decode_member_info(&h, &out), ENTRY_ERR_FORMAT);
	/* A control character in the address. */
	len = encode(buf, sizeof(buf), 3, "host=x port=1");
	buf[10 + 12] = '\0';
	assert_int_equal(entry_decode_header(buf, len, &h), ENTRY_OK);
	assert_int_equal(entry_decode_member_info(&h, &out), ENTRY_ERR_FORMAT);
	/* An empty address. */
	len = encode(buf, sizeof(buf), 3, "h");
	buf[8] = 0;
	memmove(buf + 10, buf + 11, len - 11);
	assert_int_equal(entry_decode_header(buf, len - 1, &h), ENTRY_OK);
	assert_int_equal(entry_decode_member_info(&h, &out), ENTRY_ERR_FORMAT);
}

static void test_strerror(void **state)
{
	(void)state;
	for (int rc = ENTRY_ERR_SPACE; rc <= ENTRY_OK; rc++)
		assert_string_not_equal(entry_strerror(rc), "unknown error");
	assert_string_equal(entry_strerror(-100), "unknown error");
}

/* A change set with two tables, a sequence and one op of each kind. */
static void encode_change_set(struct entry_buf *out, const struct entry_register_in *reg)
{
	static const char *cols_a[] = {"id", "owner", "balance"};
	static const char *cols_b[] = {"k"};
	struct entry_table_in tables[] = {{5, 3, cols_a}, {9, 1, cols_b}};
	struct entry_seq seq = {.table = 0, .column = 0, .value = 42};
	struct entry_owner owner = {3, 0x1122334455667788ull, 17, 99};
	struct entry_buf ops = {0};
	uint32_t n_ops = 0;

	entry_put_op(&ops, ENTRY_OP_INSERT, 0);
	entry_put_tuple(&ops, 3);
	entry_put_value(&ops, ENTRY_VALUE_BINARY, "\0\0\0\1", 4);
	entry_put_value(&ops, ENTRY_VALUE_BINARY, "ann", 3);
	entry_put_value(&ops, ENTRY_VALUE_NULL, NULL, 0);
	n_ops++;
	if (reg == NULL) {
		entry_put_op(&ops, ENTRY_OP_UPDATE, 0);
		entry_put_u8(&ops, 1);
		entry_put_tuple(&ops, 3);
		entry_put_value(&ops, ENTRY_VALUE_BINARY, "\0\0\0\1", 4);
		entry_put_value(&ops, ENTRY_VALUE_ABSENT, NULL, 0);
		entry_put_value(&ops, ENTRY_VALUE_ABSENT, NULL, 0);
		entry_put_tuple(&ops, 3);
		entry_put_value(&ops, ENTRY_VALUE_BINARY, "\0\0\0\2", 4);
		entry_put_value(&ops, ENTRY_VALUE_BINARY, "", 0);
		entry_put_value(&ops, ENTRY_VALUE_NULL, NULL, 0);
		entry_put_op(&ops, ENTRY_OP_DELETE, 1);
		entry_put_tuple(&ops, 1);
		entry_put_value(&ops, ENTRY_VALUE_BINARY, "x", 1);
		entry_put_op(&ops, ENTRY_OP_TRUNCATE, 1);
		n_ops += 3;
	}
	assert_false(ops.failed);
	assert_int_equal(entry_encode_change_set(out, &owner, 77, reg, tables, reg ? 1 : 2, &seq, 1,
	                                         ops.data, ops.len, n_ops),
	                 ENTRY_OK);
	free(ops.data);
}

static void expect_name(struct entry_reader *r, const char *want)
{
	const char *name;
	uint16_t len;

	assert_int_equal(entry_next_name(r, &name, &len), ENTRY_OK);
	assert_int_equal(len, strlen(want));
	assert_memory_equal(name, want, len);
}

static void expect_val(struct entry_reader *r, unsigned kind, const char *data, uint32_t len)
{
	const uint8_t *d;
	uint32_t l;
	unsigned k;

	assert_int_equal(entry_next_value(r, &k, &d, &l), ENTRY_OK);
	assert_int_equal(k, kind);
	assert_int_equal(l, len);
	if (len > 0)
		assert_memory_equal(d, data, len);
}

/* A sequence tied to no column travels by schema and name (review 21 F4). */
static void test_change_set_named_seq(void **state)
{
	static const char *cols[] = {"id"};
	struct entry_table_in tables[] = {{5, 1, cols}};
	struct entry_seq seqs[] = {{.table = 0, .column = 0, .value = 7},
	                           {.table = ENTRY_SEQ_NAMED,
	                            .value = -3,
	                            .schema = "public",
	                            .schema_len = 6,
	                            .name = "inv_no",
	                            .name_len = 6}};
	struct entry_owner owner = {3, 1, 2, 3};
	struct entry_buf b = {0};
	struct entry_change_set cs;
	struct entry_header h;
	struct entry_reader r;
	struct entry_seq s;

	(void)state;
	assert_int_equal(
	        entry_encode_change_set(&b, &owner, 0, NULL, tables, 1, seqs, 2, NULL, 0, 0),
	        ENTRY_OK);
	assert_int_equal(entry_decode_header(b.data, b.len, &h), ENTRY_OK);
	assert_int_equal(entry_decode_change_set(&h, &cs), ENTRY_OK);
	assert_int_equal(cs.n_seqs, 2);
	r = cs.seqs;
	assert_int_equal(entry_next_seq(&r, &s), ENTRY_OK);
	assert_true(s.table == 0 && s.column == 0 && s.value == 7 && s.schema == NULL);
	assert_int_equal(entry_next_seq(&r, &s), ENTRY_OK);
	assert_true(s.table == ENTRY_SEQ_NAMED && s.value == -3);
	assert_true(s.schema_len == 6 && memcmp(s.schema, "public", 6) == 0);
	assert_true(s.name_len == 6 && memcmp(s.name, "inv_no", 6) == 0);
	free(b.data);

	/* an empty name is refused; so is a column table index past the tables */
	memset(&b, 0, sizeof(b));
	seqs[1].name_len = 0;
	assert_int_equal(
	        entry_encode_change_set(&b, &owner, 0, NULL, tables, 1, seqs, 2, NULL, 0, 0),
	        ENTRY_ERR_FORMAT);
	seqs[1].name_len = 6;
	seqs[0].table = 1;
	assert_int_equal(
	        entry_encode_change_set(&b, &owner, 0, NULL, tables, 1, seqs, 2, NULL, 0, 0),
	        ENTRY_ERR_FORMAT);
	free(b.data);
}

static void test_change_set_round_trip(void **state)
{
	struct entry_buf b = {0};
	struct entry_change_set cs;
	struct entry_header h;
	struct entry_reader r;
	struct entry_table t;
	struct entry_seq s;
	struct entry_op op;

	(void)state;
	encode_change_set(&b, NULL);
	assert_int_equal(entry_decode_header(b.data, b.len, &h), ENTRY_OK);
	assert_int_equal(h.type, ENTRY_CHANGE_SET);
	assert_string_equal(entry_type_name(h.type), "change set");
	assert_int_equal(entry_decode_change_set(&h, &cs), ENTRY_OK);
	assert_int_equal(cs.owner.node_id, 3);
	assert_true(cs.owner.incarnation == 0x1122334455667788ull);
	assert_int_equal(cs.owner.slot, 17);
	assert_int_equal(cs.owner.generation, 99);
	assert_int_equal(cs.schema_index, 77);
	{
		struct entry_owner o;

		assert_int_equal(entry_decode_owner(&h, &o), ENTRY_OK);
		/* field by field: the struct has padding */
		assert_true(o.node_id == cs.owner.node_id &&
		            o.incarnation == cs.owner.incarnation && o.slot == cs.owner.slot &&
		            o.generation == cs.owner.generation);
	}
	assert_int_equal(cs.n_tables, 2);
	r = cs.tables;
	assert_int_equal(entry_next_table(&r, &t), ENTRY_OK);
	assert_int_equal(t.table_id, 5);
	assert_int_equal(t.n_cols, 3);
	expect_name(&t.cols, "id");
	expect_name(&t.cols, "owner");
	expect_name(&t.cols, "balance");
	assert_int_equal(entry_next_table(&r, &t), ENTRY_OK);
	assert_int_equal(t.table_id, 9);
	assert_int_equal(cs.n_seqs, 1);
	r = cs.seqs;
	assert_int_equal(entry_next_seq(&r, &s), ENTRY_OK);
	assert_true(s.table == 0 && s.column == 0 && s.value == 42);
	assert_int_equal(cs.n_ops, 4);
	r = cs.ops;
	assert_int_equal(entry_next_op(&r, &op), ENTRY_OK);
	assert_int_equal(op.kind, ENTRY_OP_INSERT);
	assert_int_equal(op.new_tuple.n_cols, 3);
	expect_val(&op.new_tuple.values, ENTRY_VALUE_BINARY, "\0\0\0\1", 4);
	expect_val(&op.new_tuple.values, ENTRY_VALUE_BINARY, "ann", 3);
	expect_val(&op.new_tuple.values, ENTRY_VALUE_NULL, NULL, 0);
	assert_int_equal(entry_next_op(&r, &op), ENTRY_OK);
	assert_int_equal(op.kind, ENTRY_OP_UPDATE);
	assert_true(op.has_old);
	expect_val(&op.old_tuple.values, ENTRY_VALUE_BINARY, "\0\0\0\1", 4);
	expect_val(&op.old_tuple.values, ENTRY_VALUE_ABSENT, NULL, 0);
	expect_val(&op.new_tuple.values, ENTRY_VALUE_BINARY, "\0\0\0\2", 4);
	expect_val(&op.new_tuple.values, ENTRY_VALUE_BINARY, "", 0);
	assert_int_equal(entry_next_op(&r, &op), ENTRY_OK);
	assert_int_equal(op.kind, ENTRY_OP_DELETE);
	assert_int_equal(op.table, 1);
	expect_val(&op.old_tuple.values, ENTRY_VALUE_BINARY, "x", 1);
	assert_int_equal(entry_next_op(&r, &op), ENTRY_OK);
	assert_int_equal(op.kind, ENTRY_OP_TRUNCATE);
	assert_ptr_equal(r.p, r.end);
	free(b.data);
}

static void test_change_set_refuses(void **state)
{
	struct entry_buf b = {0};
	struct entry_change_set cs;
	struct entry_header h;

	(void)state;
	encode_change_set(&b, NULL);
	/* Every truncation is refused without reading past the end. */
	for (size_t n = ENTRY_HEADER_BYTES; n < b.len; n++) {
		assert_int_equal(entry_decode_header(b.data, n, &h), ENTRY_OK);
		assert_int_not_equal(entry_decode_change_set(&h, &cs), ENTRY_OK);
	}
	/* A trailing byte. */
	entry_put_u8(&b, 0);
	assert_int_equal(entry_decode_header(b.data, b.len, &h), ENTRY_OK);
	assert_int_equal(entry_decode_change_set(&h, &cs), ENTRY_ERR_FORMAT);
	b.len--;
	/* The wrong decoder for the type. */
	assert_int_equal(entry_decode_register(&h, &cs), ENTRY_ERR_TYPE);
	/* An op naming a table past the tables: the TRUNCATE at the end. */
	b.data[b.len - 4] = 2;
	assert_int_equal(entry_decode_header(b.data, b.len, &h), ENTRY_OK);
	assert_int_equal(entry_decode_change_set(&h, &cs), ENTRY_ERR_FORMAT);
	/* An unknown op kind. */
	b.data[b.len - 5] = 9;
	assert_int_equal(entry_decode_change_set(&h, &cs), ENTRY_ERR_FORMAT);
	free(b.data);

	/* Encoders refuse what decoders would. */
	{
		static const char *bad[] = {""};
		struct entry_table_in t = {1, 1, bad};
		struct entry_owner o = {1, 1, 1, 1};
		struct entry_buf out = {0};

		assert_int_equal(
		        entry_encode_change_set(&out, &o, 0, NULL, &t, 1, NULL, 0, NULL, 0, 0),
		        ENTRY_ERR_FORMAT);
		o.node_id = 0;
		assert_int_equal(
		        entry_encode_change_set(&out, &o, 0, NULL, NULL, 0, NULL, 0, NULL, 0, 0),
		        ENTRY_ERR_FORMAT);
		free(out.data);
	}
}

/* A registration cut anywhere after its header does not decode; b is freed. */
static void refuses_every_cut(struct entry_buf *b)
{
	struct entry_change_set cs;
	struct entry_header h;

	for (size_t n = ENTRY_HEADER_BYTES; n < b->len; n++) {
		assert_int_equal(entry_decode_header(b->data, n, &h), ENTRY_OK);
		assert_int_not_equal(entry_decode_register(&h, &cs), ENTRY_OK);
	}
	free(b->data);
}

/* Where a registration's extras (their u32 length) begin: after the owner, the schema
 * index, the names "public" and "accounts", and the definition. */
static size_t extras_at(const struct entry_register_in *reg)
{
	return ENTRY_HEADER_BYTES + 4 + 8 + 4 + 8 + 8 + 2 + 6 + 2 + 8 + 4 + strlen(reg->def);
}

/* Take n bytes out of b at offset at. */
static void cut_out(struct entry_buf *b, size_t at, size_t n)
{
	memmove(b->data + at, b->data + at + n, b->len - at - n);
	b->len -= n;
}

/* Encode reg and check that it decodes, as an entry of the given type, to reg's fields
 * and the sections of encode_change_set; every cut of it is refused.  b is freed. */
static void round_trip(const struct entry_register_in *reg, unsigned type)
{
	struct entry_buf b = {0};
	struct entry_change_set cs;
	struct entry_owner o;
	struct entry_header h;
	const char *extras = reg->extras != NULL ? reg->extras : "";

	encode_change_set(&b, reg);
	assert_int_equal(entry_decode_header(b.data, b.len, &h), ENTRY_OK);
	assert_int_equal(h.type, type);
	assert_int_equal(entry_decode_owner(&h, &o), ENTRY_OK);
	assert_int_equal(o.slot, 17);
	assert_int_equal(entry_decode_change_set(&h, &cs), ENTRY_ERR_TYPE);
	assert_int_equal(entry_decode_register(&h, &cs), ENTRY_OK);
	assert_int_equal(cs.schema_index, 77);
	assert_int_equal(cs.schema_len, 6);
	assert_memory_equal(cs.schema, "public", 6);
	assert_int_equal(cs.name_len, 8);
	assert_memory_equal(cs.name, "accounts", 8);
	assert_int_equal(cs.def_len, strlen(reg->def));
	assert_memory_equal(cs.def, reg->def, strlen(reg->def));
	assert_non_null(cs.extras);
	assert_int_equal(cs.extras_len, strlen(extras));
	assert_memory_equal(cs.extras, extras, strlen(extras));
	assert_int_equal(cs.n_tables, 1);
	assert_int_equal(cs.n_ops, 1);
	refuses_every_cut(&b);
}

/* A registration carries the writer's schema index and the table's extras (owner,
 * privileges, ...), as a resend does; without extras (NULL), an empty text. */
static void test_register_round_trip(void **state)
{
	struct entry_register_in reg = {"public", "accounts", "CREATE TABLE x (id int)", 0,
	                                "ALTER TABLE x OWNER TO alice;\nGRANT SELECT ON x TO bob;"};

	(void)state;
	assert_int_equal(ENTRY_REGISTER_TABLE, 9);
	assert_string_equal(entry_type_name(ENTRY_REGISTER_TABLE), "table registration");
	round_trip(&reg, ENTRY_REGISTER_TABLE);
	reg.extras = NULL;
	round_trip(&reg, ENTRY_REGISTER_TABLE);
}

/* Bad extras do not decode (a registration's and a resend's): a NUL in them, a length
 * past the end or one short, bytes after the sections. */
static void test_register_refuses(void **state)
{
	struct entry_register_in reg = {"public", "accounts", "CREATE TABLE x (id int)", 0, "ab"};
	const size_t at = extras_at(&reg);

	(void)state;
	for (reg.resend = 0; reg.resend <= 1; reg.resend++) {
		struct entry_buf b = {0};
		struct entry_change_set cs;
		struct entry_header h;

		encode_change_set(&b, &reg);
		assert_int_equal(b.data[at], 2); /* the length of "ab" */
		assert_memory_equal(b.data + at + 4, "ab", 2);
		b.data[at + 5] = '\0';
		assert_int_equal(entry_decode_header(b.data, b.len, &h), ENTRY_OK);
		assert_int_equal(entry_decode_register(&h, &cs), ENTRY_ERR_FORMAT);
		b.data[at + 5] = 'b';
		/* A length that runs past the end of the entry. */
		b.data[at + 3] = 0x7f;
		assert_int_equal(entry_decode_register(&h, &cs), ENTRY_ERR_SHORT);
		b.data[at + 3] = 0;
		/* A length one short: the sections are read one byte early. */
		b.data[at] = 1;
		assert_int_not_equal(entry_decode_register(&h, &cs), ENTRY_OK);
		b.data[at] = 2;
		assert_int_equal(entry_decode_register(&h, &cs), ENTRY_OK);
		/* A trailing byte. */
		entry_put_u8(&b, 0);
		assert_int_equal(entry_decode_header(b.data, b.len, &h), ENTRY_OK);
		assert_int_equal(entry_decode_register(&h, &cs), ENTRY_ERR_FORMAT);
		free(b.data);
	}
	assert_string_equal(entry_strerror(ENTRY_ERR_FORMAT), "entry is malformed");
	assert_string_equal(entry_strerror(ENTRY_ERR_SHORT), "entry is truncated");
}

/* A registration of the build before (type 7: no extras) is still decoded. */
static void test_register_v2(void **state)
{
	struct entry_register_in reg = {"public", "accounts", "CREATE TABLE x (id int)", 0, "ab"};
	struct entry_buf b = {0};
	struct entry_change_set cs;
	struct entry_owner o;
	struct entry_header h;

	(void)state;
	encode_change_set(&b, &reg);
	/* The V2 layout: the same bytes without the extras. */
	cut_out(&b, extras_at(&reg), 4 + 2);
	b.data[1] = ENTRY_REGISTER_TABLE_V2;
	assert_int_equal(b.data[1], 7);
	assert_int_equal(entry_decode_header(b.data, b.len, &h), ENTRY_OK);
	assert_string_equal(entry_type_name(h.type), "table registration");
	assert_int_equal(entry_decode_owner(&h, &o), ENTRY_OK);
	assert_int_equal(o.slot, 17);
	assert_int_equal(entry_decode_register(&h, &cs), ENTRY_OK);
	assert_int_equal(cs.schema_index, 77);
	assert_memory_equal(cs.name, "accounts", 8);
	assert_int_equal(cs.def_len, strlen(reg.def));
	assert_null(cs.extras);
	assert_int_equal(cs.extras_len, 0);
	assert_int_equal(cs.n_tables, 1);
	assert_int_equal(cs.n_ops, 1);
	/* Read as the new type, the V2 bytes do not decode. */
	b.data[1] = ENTRY_REGISTER_TABLE;
	assert_int_equal(entry_decode_header(b.data, b.len, &h), ENTRY_OK);
	assert_int_not_equal(entry_decode_register(&h, &cs), ENTRY_OK);
	b.data[1] = ENTRY_REGISTER_TABLE_V2;
	refuses_every_cut(&b);
}

/* A registration of an older build (no schema index, no extras) is still decoded. */
static void test_register_v1(void **state)
{
	struct entry_register_in reg = {"public", "accounts", "CREATE TABLE x (id int)", 0, NULL};
	struct entry_buf b = {0};
	struct entry_change_set cs;
	struct entry_owner o;
	struct entry_header h;
	const size_t owner_end = ENTRY_HEADER_BYTES + 4 + 8 + 4 + 8;

	(void)state;
	encode_change_set(&b, &reg);
	/* The V1 layout: the same bytes without the extras' (empty) length and the u64
	 * after the owner. */
	cut_out(&b, extras_at(&reg), 4);
	cut_out(&b, owner_end, 8);
	b.data[1] = ENTRY_REGISTER_TABLE_V1;
	assert_int_equal(entry_decode_header(b.data, b.len, &h), ENTRY_OK);
	assert_string_equal(entry_type_name(h.type), "table registration");
	assert_int_equal(entry_decode_owner(&h, &o), ENTRY_OK);
	assert_int_equal(o.slot, 17);
	assert_int_equal(entry_decode_register(&h, &cs), ENTRY_OK);
	assert_int_equal(cs.schema_index, 0);
	assert_memory_equal(cs.name, "accounts", 8);
	assert_int_equal(cs.def_len, strlen(reg.def));
	assert_null(cs.extras);
	assert_int_equal(cs.n_ops, 1);
	refuses_every_cut(&b);
}

/* A registration sent again carries the writer's schema index and the table's extras. */
static void test_resend_round_trip(void **state)
{
	struct entry_register_in reg = {"public", "accounts", "CREATE TABLE x (id int)", 1,
	                                "ALTER TABLE x OWNER TO alice;"};

	(void)state;
	assert_string_equal(entry_type_name(ENTRY_RESEND_TABLE), "table registration sent again");
	round_trip(&reg, ENTRY_RESEND_TABLE);
}

/* A resend of an older build (no extras) is still decoded. */
static void test_resend_v1(void **state)
{
	struct entry_register_in reg = {"public", "accounts", "CREATE TABLE x (id int)", 1, "ab"};
	struct entry_buf b = {0};
	struct entry_change_set cs;
	struct entry_header h;
	const size_t at = extras_at(&reg);

	(void)state;
	encode_change_set(&b, &reg);
	/* The V1 layout: the same bytes without the extras. */
	cut_out(&b, at, 4 + 2);
	b.data[1] = ENTRY_RESEND_TABLE_V1;
	assert_int_equal(entry_decode_header(b.data, b.len, &h), ENTRY_OK);
	assert_string_equal(entry_type_name(h.type), "table registration sent again");
	assert_int_equal(entry_decode_register(&h, &cs), ENTRY_OK);
	assert_int_equal(cs.schema_index, 77);
	assert_null(cs.extras);
	assert_int_equal(cs.def_len, strlen(reg.def));
	assert_int_equal(cs.n_ops, 1);
	refuses_every_cut(&b);
}

static void test_ddl(void **state)
{
	struct entry_ddl d = {2,
	                      "alice",
	                      5,
	                      "CREATE TABLE t (a int)",
	                      22,
	                      "app, public",
	                      11,
	                      1,
	                      0x0102030405060708ULL},
	                 out;
	struct entry_buf b = {0};
	struct entry_header h;
	size_t len;

	(void)state;
	assert_int_equal(entry_encode_ddl(&b, &d), ENTRY_OK);
	assert_int_equal(entry_decode_header(b.data, b.len, &h), ENTRY_OK);
	assert_int_equal(h.type, ENTRY_DDL);
	assert_true(entry_is_ddl(h.type));
	assert_string_equal(entry_type_name(h.type), "utility command");
	assert_int_equal(entry_decode_ddl(&h, &out), ENTRY_OK);
	assert_int_equal(out.node_id, 2);
	assert_int_equal(out.role_len, 5);
	assert_memory_equal(out.role, "alice", 5);
	assert_int_equal(out.len, 22);
	assert_memory_equal(out.command, d.command, 22);
	assert_int_equal(out.search_path_len, 11);
	assert_memory_equal(out.search_path, "app, public", 11);
	assert_true(out.has_schema_index);
	assert_true(out.schema_index == 0x0102030405060708ULL);
	/* The schema index closes the body, little-endian. */
	assert_int_equal(b.data[b.len - 8], 0x08);
	assert_int_equal(b.data[b.len - 1], 0x01);
	for (size_t n = ENTRY_HEADER_BYTES; n < b.len; n++) {
		assert_int_equal(entry_decode_header(b.data, n, &h), ENTRY_OK);
		assert_int_not_equal(entry_decode_ddl(&h, &out), ENTRY_OK);
	}
	/* Nothing may follow it. */
	entry_put_u8(&b, 0);
	assert_int_equal(entry_decode_header(b.data, b.len, &h), ENTRY_OK);
	assert_int_equal(entry_decode_ddl(&h, &out), ENTRY_ERR_FORMAT);
	/* A schema index of 0 (no command yet) is one. */
	d.schema_index = 0;
	b.len = 0;
	assert_int_equal(entry_encode_ddl(&b, &d), ENTRY_OK);
	len = b.len;
	assert_int_equal(entry_decode_header(b.data, b.len, &h), ENTRY_OK);
	assert_int_equal(entry_decode_ddl(&h, &out), ENTRY_OK);
	assert_true(out.has_schema_index);
	assert_true(out.schema_index == 0);
	/* An older build's ENTRY_DDL_V2 (type 10) carries none: decoded without it, as
	 * the same bytes less the schema index, and never skipped for it. */
	d.has_schema_index = 0;
	b.len = 0;
	assert_int_equal(entry_encode_ddl(&b, &d), ENTRY_OK);
	assert_int_equal(b.len, len - 8);
	assert_int_equal(entry_decode_header(b.data, b.len, &h), ENTRY_OK);
	assert_int_equal(h.type, ENTRY_DDL_V2);
	assert_int_equal(h.type, 10);
	assert_true(entry_is_ddl(h.type));
	assert_string_equal(entry_type_name(h.type), "utility command");
	assert_int_equal(entry_decode_ddl(&h, &out), ENTRY_OK);
	assert_false(out.has_schema_index);
	assert_true(out.schema_index == 0);
	assert_int_equal(out.search_path_len, 11);
	assert_memory_equal(out.search_path, "app, public", 11);
	for (size_t n = ENTRY_HEADER_BYTES; n < b.len; n++) {
		assert_int_equal(entry_decode_header(b.data, n, &h), ENTRY_OK);
		assert_int_not_equal(entry_decode_ddl(&h, &out), ENTRY_OK);
	}
	/* Bytes of an ENTRY_DDL_V2 read as an ENTRY_DDL are short. */
	b.data[1] = ENTRY_DDL;
	assert_int_equal(entry_decode_header(b.data, b.len, &h), ENTRY_OK);
	assert_int_equal(entry_decode_ddl(&h, &out), ENTRY_ERR_SHORT);
	b.data[1] = ENTRY_DDL_V2;
	/* A NUL inside the search_path. */
	b.data[b.len - 1] = 0;
	assert_int_equal(entry_decode_header(b.data, b.len, &h), ENTRY_OK);
	assert_int_equal(entry_decode_ddl(&h, &out), ENTRY_ERR_FORMAT);
	/* An empty search_path is one. */
	d.search_path_len = 0;
	b.len = 0;
	assert_int_equal(entry_encode_ddl(&b, &d), ENTRY_OK);
	assert_int_equal(entry_decode_header(b.data, b.len, &h), ENTRY_OK);
	assert_int_equal(entry_decode_ddl(&h, &out), ENTRY_OK);
	assert_non_null(out.search_path);
	assert_int_equal(out.search_path_len, 0);
	/* An ENTRY_DDL_V1 carries no search_path: decoded without it. */
	d.search_path = NULL;
	b.len = 0;
	assert_int_equal(entry_encode_ddl(&b, &d), ENTRY_OK);
	assert_int_equal(entry_decode_header(b.data, b.len, &h), ENTRY_OK);
	assert_int_equal(h.type, ENTRY_DDL_V1);
	assert_int_equal(entry_decode_ddl(&h, &out), ENTRY_OK);
	assert_null(out.search_path);
	assert_false(out.has_schema_index);
	assert_memory_equal(out.command, d.command, 22);
	for (size_t n = ENTRY_HEADER_BYTES; n < b.len; n++) {
		assert_int_equal(entry_decode_header(b.data, n, &h), ENTRY_OK);
		assert_int_not_equal(entry_decode_ddl(&h, &out), ENTRY_OK);
	}
	/* A NUL inside the command. */
	b.data[b.len - 1] = 0;
	assert_int_equal(entry_decode_header(b.data, b.len, &h), ENTRY_OK);
	assert_int_equal(entry_decode_ddl(&h, &out), ENTRY_ERR_FORMAT);
	/* ... nor a schema index: the encoder refuses one without a search_path. */
	d.has_schema_index = 1;
	b.len = 0;
	assert_int_equal(entry_encode_ddl(&b, &d), ENTRY_ERR_FORMAT);
	d.has_schema_index = 0;
	d.len = 0;
	assert_int_equal(entry_encode_ddl(&b, &d), ENTRY_ERR_FORMAT);
	/* A role name is 1 to ENTRY_NAME_MAX bytes. */
	d.len = 22;
	d.role_len = 0;
	assert_int_equal(entry_encode_ddl(&b, &d), ENTRY_ERR_FORMAT);
	d.role = "a_role_name_longer_than_sixty_three_bytes_is_not_a_postgres_name";
	d.role_len = (uint16_t)strlen(d.role);
	assert_int_equal(entry_encode_ddl(&b, &d), ENTRY_ERR_FORMAT);
	free(b.data);
}

/* Header byte 2: the encoding of an entry's text, said by the types that
 * carry text (the entry of a build before it says none: -1). */
static void test_encoding(void **state)
{
	static const char *cols[] = {"id"};
	struct entry_table_in tables[] = {{5, 1, cols}};
	struct entry_owner owner = {3, 1, 2, 3};
	struct entry_ddl d = {2, "alice", 5, "VACUUM", 6, "", 0, 1, 7};
	struct entry_buf b = {0};
	struct entry_header h;
	uint8_t mi[64];
	size_t len = encode(mi, sizeof(mi), 3, "host=x port=1");

	(void)state;
	assert_int_equal(entry_encode_ddl(&b, &d), ENTRY_OK);
	assert_int_equal(entry_decode_header(b.data, b.len, &h), ENTRY_OK);
	assert_int_equal(h.encoding, -1);
	assert_int_equal(entry_set_encoding(b.data, b.len, 6), ENTRY_OK);
	assert_int_equal(b.data[2], 7);
	assert_int_equal(entry_decode_header(b.data, b.len, &h), ENTRY_OK);
	assert_int_equal(h.encoding, 6);
	assert_int_equal(entry_set_encoding(b.data, b.len, 0), ENTRY_OK);
	assert_int_equal(entry_decode_header(b.data, b.len, &h), ENTRY_OK);
	assert_int_equal(h.encoding, 0);
	assert_int_equal(entry_set_encoding(b.data, b.len, ENTRY_ENCODING_MAX), ENTRY_OK);
	assert_int_equal(entry_decode_header(b.data, b.len, &h), ENTRY_OK);
	assert_int_equal(h.encoding, ENTRY_ENCODING_MAX);
	assert_int_equal(entry_set_encoding(b.data, b.len, ENTRY_ENCODING_MAX + 1),
	                 ENTRY_ERR_FORMAT);
	assert_int_equal(entry_set_encoding(b.data, b.len, -1), ENTRY_ERR_FORMAT);
	assert_int_equal(entry_set_encoding(b.data, 3, 6), ENTRY_ERR_FORMAT);
	/* The types of older builds, and those without text, say none. */
	b.data[1] = ENTRY_DDL_V2;
	assert_int_equal(entry_decode_header(b.data, b.len, &h), ENTRY_ERR_FORMAT);
	assert_int_equal(entry_set_encoding(b.data, b.len, 6), ENTRY_ERR_FORMAT);
	assert_int_equal(entry_set_encoding(mi, len, 6), ENTRY_ERR_FORMAT);
	mi[2] = 7;
	assert_int_equal(entry_decode_header(mi, len, &h), ENTRY_ERR_FORMAT);
	/* Change sets, registrations and resends say it. */
	for (int reg = 0; reg < 3; reg++) {
		struct entry_register_in r = {"public", "t", "CREATE TABLE t ()", reg == 2, NULL};

		b.len = 0;
		assert_int_equal(entry_encode_change_set(&b, &owner, 0, reg ? &r : NULL, tables, 1,
		                                         NULL, 0, NULL, 0, 0),
		                 ENTRY_OK);
		assert_true(entry_says_encoding(b.data[1]));
		assert_int_equal(entry_set_encoding(b.data, b.len, 8), ENTRY_OK);
		assert_int_equal(entry_decode_header(b.data, b.len, &h), ENTRY_OK);
		assert_int_equal(h.encoding, 8);
	}
	free(b.data);
}

/* A buffer whose allocation fails is marked failed and reported as such. */
static void *no_memory(void *old, size_t size)
{
	(void)old;
	(void)size;
	return NULL;
}

static void test_buf_failure(void **state)
{
	struct entry_ddl d = {2, "alice", 5, "VACUUM", 6, "", 0, 1, 7};
	struct entry_buf b = {0};

	(void)state;
	b.grow = no_memory;
	assert_int_equal(entry_encode_ddl(&b, &d), ENTRY_ERR_SPACE);
	assert_true(b.failed);
	assert_int_equal(b.len, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_member_info_round_trip),
	        cmocka_unit_test(test_encode_refuses),
	        cmocka_unit_test(test_header_refuses),
	        cmocka_unit_test(test_addresses),
	        cmocka_unit_test(test_addresses_longest),
	        cmocka_unit_test(test_addresses_v1),
	        cmocka_unit_test(test_member_info_refuses),
	        cmocka_unit_test(test_member_info_locale),
	        cmocka_unit_test(test_member_info_unknown),
	        cmocka_unit_test(test_member_info_locale_refuses),
	        cmocka_unit_test(test_strerror),
	        cmocka_unit_test(test_change_set_round_trip),
	        cmocka_unit_test(test_change_set_named_seq),
	        cmocka_unit_test(test_change_set_refuses),
	        cmocka_unit_test(test_register_round_trip),
	        cmocka_unit_test(test_register_refuses),
	        cmocka_unit_test(test_register_v2),
	        cmocka_unit_test(test_register_v1),
	        cmocka_unit_test(test_resend_round_trip),
	        cmocka_unit_test(test_resend_v1),
	        cmocka_unit_test(test_ddl),
	        cmocka_unit_test(test_encoding),
	        cmocka_unit_test(test_buf_failure),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
