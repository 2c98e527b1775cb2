/*
 * fuzz_logdb_value.c - libFuzzer target for the LogDB value decoders (bytes
 * read from disk).
 *
 * Input: byte 0 picks the record kind (low 3 bits) and, with bit 0x80, asks
 * the harness to fix the value's CRC32C so the fuzzer reaches the parsers
 * behind the checksum; bytes 1..24 are the group, node and index of the key;
 * the rest is the stored value.  A value that decodes must re-encode to the
 * same bytes (entry runs, hard state, range, recovery marker, node info), and
 * no input may crash.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "logdb/logdb_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const unsigned kinds[8] = {
        LOGDB_KIND_ENTRY,     LOGDB_KIND_STATE,    LOGDB_KIND_RANGE,    LOGDB_KIND_NODE,
        LOGDB_KIND_BOOTSTRAP, LOGDB_KIND_SNAPSHOT, LOGDB_KIND_RECOVERY, LOGDB_KIND_SNAPSHOT,
};

static uint64_t get64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

/* Abort unless b holds exactly val[0..vlen). */
static void same(const struct logdb_buf *b, const uint8_t *val, size_t vlen)
{
	if (b->len != vlen || memcmp(b->p, val, vlen) != 0)
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 25)
		return 0;
	unsigned kind = kinds[data[0] & 7];
	bool fix_crc = data[0] & 0x80;
	uint8_t key[LOGDB_INDEX_KEY_LEN];
	size_t klen = (kind == LOGDB_KIND_ENTRY || kind == LOGDB_KIND_SNAPSHOT)
	                      ? LOGDB_INDEX_KEY_LEN
	                      : LOGDB_KEY_LEN;
	if (klen == LOGDB_INDEX_KEY_LEN)
		logdb_index_key(key, kind, get64(data + 1), get64(data + 9), get64(data + 17));
	else
		logdb_key(key, kind, get64(data + 1), get64(data + 9));

	size_t vlen = size - 25;
	uint8_t *val = malloc(vlen ? vlen : 1); /* a copy: ASan sees reads past the end */
	if (vlen)
		memcpy(val, data + 25, vlen);
	if (fix_crc && vlen >= LOGDB_HDR_LEN) {
		uint32_t c = dr_crc32c(dr_crc32c(0, key, klen), val + LOGDB_HDR_LEN,
		                       vlen - LOGDB_HDR_LEN);
		for (int i = 0; i < 4; i++)
			val[4 + i] = (uint8_t)(c >> (8 * i));
	}

	struct logdb_buf b = {0};
	const char *why = NULL;
	int rc;
	switch (kind) {
	case LOGDB_KIND_ENTRY: {
		struct logdb_run run;
		uint32_t plen;
		/* an unchecked value: lengths peeked without reading past its end */
		bool peeked = logdb_run_peek_len(val, vlen, 1, 1 + data[1] % 8, &plen);
		rc = logdb_run_open(key, klen, val, vlen, &run, &why);
		if (rc == 0) {
			struct raft_entry *e = malloc(run.n * sizeof(*e));
			for (uint32_t i = 0; i < run.n; i++) {
				logdb_run_next(&run, &e[i]);
				if (e[i].len &&
				    (e[i].data < val || e[i].data + e[i].len > val + vlen))
					__builtin_trap();
			}
			/* a checked run: the peeked length is the entry's */
			if (data[1] % 8 < run.n && (!peeked || plen != e[data[1] % 8].len))
				__builtin_trap();
			if (logdb_encode_run(&b, key, klen, e, run.n) == 0)
				same(&b, val, vlen);
			free(e);
		}
		break;
	}
	case LOGDB_KIND_STATE: {
		struct raft_hard_state hs;
		rc = logdb_decode_state(key, klen, val, vlen, &hs, &why);
		if (rc == 0 && logdb_encode_state(&b, key, klen, &hs) == 0)
			same(&b, val, vlen);
		break;
	}
	case LOGDB_KIND_RANGE: {
		uint64_t first, last;
		rc = logdb_decode_range(key, klen, val, vlen, &first, &last, &why);
		if (rc == 0 && logdb_encode_range(&b, key, klen, first, last) == 0)
			same(&b, val, vlen);
		break;
	}
	case LOGDB_KIND_RECOVERY: {
		uint64_t index;
		rc = logdb_decode_recovery(key, klen, val, vlen, &index, &why);
		if (rc == 0 && logdb_encode_recovery(&b, key, klen, index) == 0)
			same(&b, val, vlen);
		break;
	}
	case LOGDB_KIND_NODE:
		rc = logdb_decode_node(key, klen, val, vlen, &why);
		if (rc == 0 && logdb_encode_node(&b, key, klen) == 0)
			same(&b, val, vlen);
		break;
	case LOGDB_KIND_BOOTSTRAP: {
		struct logdb_bootstrap *bs = malloc(sizeof(*bs));
		rc = logdb_decode_bootstrap(key, klen, val, vlen, bs, &why);
		if (rc == 0 && logdb_encode_bootstrap(&b, key, klen, bs) != 0)
			__builtin_trap(); /* what decodes must encode */
		free(bs);
		break;
	}
	default: {
		struct logdb_snapshot *s = malloc(sizeof(*s));
		rc = logdb_decode_snapshot(key, klen, val, vlen, s, &why);
		if (rc == 0 && logdb_encode_snapshot(&b, key, klen, s) != 0)
			__builtin_trap();
		free(s);
		break;
	}
	}
	if (rc != 0 && (rc != LOGDB_ERR_CORRUPT || why == NULL))
		__builtin_trap(); /* every failure is a corruption with a reason */
	logdb_buf_free(&b);
	free(val);
	return 0;
}
