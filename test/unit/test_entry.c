/*
 * test_entry.c - the application entry encoding (src/entry): round trips,
 * and every kind of bad input refused with its code.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "entry/entry.h"

static size_t encode(uint8_t *buf, size_t cap, uint32_t node, const char *addr)
{
	struct entry_member_info mi = {node, addr, (uint16_t)strlen(addr)};
	size_t len = 0;

	assert_int_equal(entry_encode_member_info(buf, cap, &mi, &len), ENTRY_OK);
	assert_int_equal(len, entry_member_info_size(strlen(addr)));
	return len;
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
	assert_ptr_equal(out.client_addr, (const char *)buf + len - strlen(addr));
}

static void test_encode_refuses(void **state)
{
	char big[ENTRY_CLIENT_ADDR_MAX + 2];
	struct entry_member_info mi = {1, "host=a", 6};
	uint8_t buf[ENTRY_CLIENT_ADDR_MAX + 64];
	size_t len = 99;

	(void)state;
	/* Too small a buffer, by one byte. */
	assert_int_equal(entry_encode_member_info(buf, entry_member_info_size(6) - 1, &mi, &len),
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
	buf[len - 1] = '\0';
	assert_int_equal(entry_decode_header(buf, len, &h), ENTRY_OK);
	assert_int_equal(entry_decode_member_info(&h, &out), ENTRY_ERR_FORMAT);
	/* An empty address. */
	len = encode(buf, sizeof(buf), 3, "h");
	buf[8] = 0;
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

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_member_info_round_trip),
	        cmocka_unit_test(test_encode_refuses),
	        cmocka_unit_test(test_header_refuses),
	        cmocka_unit_test(test_member_info_refuses),
	        cmocka_unit_test(test_strerror),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
