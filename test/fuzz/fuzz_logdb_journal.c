/*
 * fuzz_logdb_journal.c - libFuzzer target for the LogDB journal's record
 * reader (segment bytes read from disk at open).
 *
 * Input: byte 0 picks the mode.
 *   even: the rest is a segment file that starts at LSN 0; every record the
 *         reader accepts must check out on its own (magic, LSN = offset,
 *         CRC32C over header and body, inside the segment), and the search
 *         for a valid record after the end must return one or nothing (and
 *         one counting moved records: whole at its own LSN).
 *   odd:  the rest describes records (a length byte, then that many body
 *         bytes, repeated); the harness writes them as a segment with
 *         correct headers (the reader must return them all, in order, then
 *         stop), flips the byte that the last input byte picks and checks that
 *         the reader never returns the damaged record and that the record
 *         after it, if any, is found by the search that tells a torn tail
 *         from damage; the end is reported (logdb_jrec_tail) unless the flip hit
 *         the magic.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "logdb/logdb_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_RECS 64

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
	       ((uint32_t)p[3] << 24);
}

static uint64_t le64(const uint8_t *p)
{
	return (uint64_t)le32(p) | ((uint64_t)le32(p + 4) << 32);
}

/* Abort unless the record at off is one on its own terms. */
static void check_valid(const uint8_t *seg, size_t size, size_t off, const uint8_t *body,
                        uint32_t len)
{
	if (off % 8 || off + LOGDB_JREC_HDR + (uint64_t)len > size ||
	    body != seg + off + LOGDB_JREC_HDR || le32(seg + off) != LOGDB_JREC_MAGIC ||
	    le32(seg + off + 4) != len || le64(seg + off + 8) != off || le32(seg + off + 20) != 0 ||
	    le32(seg + off + 16) != dr_crc32c(dr_crc32c(0, seg + off, 16), body, len))
		__builtin_trap();
}

/* Walk the records from 0; their offsets into offs (up to max); the end offset. */
static size_t walk(const uint8_t *seg, size_t size, size_t *offs, int *n, int max)
{
	const uint8_t *body;
	uint32_t len;
	size_t off = 0;
	*n = 0;
	while (logdb_jrec_read(seg, size, 0, off, &body, &len) == LOGDB_JREC_VALID) {
		check_valid(seg, size, off, body, len);
		if (*n < max)
			offs[*n] = off;
		(*n)++;
		off += logdb_jrec_size(len);
	}
	return off;
}

static void raw(const uint8_t *data, size_t size)
{
	uint8_t *seg = malloc(size ? size : 1); /* a copy: ASan sees reads past the end */
	size_t offs[1];
	int n;
	if (size)
		memcpy(seg, data, size);
	size_t end = walk(seg, size, offs, &n, 0);
	size_t v = logdb_jrec_find(seg, size, 0, end + 8, UINT64_MAX);
	if (v < size) {
		const uint8_t *body;
		uint32_t len;
		if (v < end + 8 ||
		    logdb_jrec_read(seg, size, 0, v, &body, &len) != LOGDB_JREC_VALID)
			__builtin_trap();
		check_valid(seg, size, v, body, len);
	} else if (v != size) {
		__builtin_trap();
	}
	/* what the open would report at the end: inside the segment, none when clean */
	struct logdb_jrec_tail t;
	logdb_jrec_tail(seg, size, 0, end, &t);
	if (t.bytes > size - (end < size ? end : size) ||
	    (t.kind == LOGDB_TAIL_CLEAN) != (t.bytes == 0))
		__builtin_trap();
	/* the same bytes as a recycled segment's earlier use (this use starts at LSN 2^20,
	 * review 31): a whole record of it where this use ends is no dropped record, and
	 * whatever is there the report stays inside the segment */
	size_t offs2[MAX_RECS];
	int n2;
	walk(seg, size, offs2, &n2, MAX_RECS);
	for (int r = 0; r < n2 && r < MAX_RECS; r++) {
		logdb_jrec_tail(seg, size, (uint64_t)1 << 20, offs2[r], &t);
		if (t.kind != LOGDB_TAIL_CLEAN)
			__builtin_trap();
	}
	logdb_jrec_tail(seg, size, (uint64_t)1 << 20, end, &t);
	if (t.bytes > size - (end < size ? end : size) ||
	    (t.kind == LOGDB_TAIL_CLEAN) != (t.bytes == 0))
		__builtin_trap();
	/* counting moved records (LSN >= 64) too: whole records at their own LSN */
	v = logdb_jrec_find(seg, size, 0, end + 8, 64);
	if (v < size) {
		const uint8_t *body;
		uint32_t len;
		uint64_t lsn = le64(seg + v + 8);
		if (v < end + 8 || (lsn != v && lsn < 64) ||
		    logdb_jrec_read(seg, size, lsn - v, v, &body, &len) != LOGDB_JREC_VALID)
			__builtin_trap();
	}
	free(seg);
}

static void built(const uint8_t *data, size_t size)
{
	size_t offs[MAX_RECS], lens[MAX_RECS], in[MAX_RECS], cap = 0, pos = 0;
	int nrec = 0;
	if (size < 2)
		return;
	uint8_t pick = data[size - 1];
	size--;
	for (size_t i = 0; i < size && nrec < MAX_RECS;) {
		size_t len = data[i];
		if (i + 1 + len > size)
			break;
		in[nrec] = i + 1;
		lens[nrec++] = len;
		cap += logdb_jrec_size(len);
		i += 1 + len;
	}
	if (nrec == 0)
		return;
	uint8_t *seg = calloc(1, cap);
	for (int r = 0; r < nrec; r++) {
		offs[r] = pos;
		memcpy(seg + pos + LOGDB_JREC_HDR, data + in[r], lens[r]);
		logdb_jrec_header(seg + pos, pos, data + in[r], (uint32_t)lens[r]);
		pos += logdb_jrec_size(lens[r]);
	}
	size_t got[MAX_RECS];
	int n;
	if (walk(seg, cap, got, &n, MAX_RECS) != cap || n != nrec)
		__builtin_trap();
	for (int r = 0; r < nrec; r++)
		if (got[r] != offs[r])
			__builtin_trap();

	/* damage record k (header or body, not its padding) */
	int k = pick % nrec;
	size_t at = offs[k] + (size_t)(pick / nrec) % (LOGDB_JREC_HDR + lens[k]);
	seg[at] ^= (uint8_t)(1u << (pick % 8));
	size_t end = walk(seg, cap, got, &n, MAX_RECS);
	if (n != k || end != offs[k])
		__builtin_trap();
	/* the open reports the damaged record where the journal ends, unless its magic
	 * changed (then it looks like bytes of the segment's earlier use) */
	struct logdb_jrec_tail t;
	logdb_jrec_tail(seg, cap, 0, end, &t);
	if ((t.kind == LOGDB_TAIL_CLEAN) != (at - offs[k] < 4) || t.bytes > cap - end)
		__builtin_trap();
	size_t v = logdb_jrec_find(seg, cap, 0, end + 8, UINT64_MAX);
	/* (a record found inside the damaged one's body is the fuzzer's own bytes) */
	if (k + 1 < nrec ? v > offs[k + 1] : v != cap && v >= offs[k] + logdb_jrec_size(lens[k]))
		__builtin_trap();
	free(seg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (data[0] & 1)
		built(data + 1, size - 1);
	else
		raw(data + 1, size - 1);
	return 0;
}
