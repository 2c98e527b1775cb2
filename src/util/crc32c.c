/*
 * crc32c.c - CRC-32C: hardware (SSE4.2) with a slicing-by-8 fallback.
 *
 * The polynomial is 0x1EDC6F41, reflected 0x82F63B78; the CRC is
 * pre- and post-inverted, so dr_crc32c("123456789") = 0xE3069283.
 */
#include "util/crc32c.h"

#include <pthread.h>
#include <string.h>

#define POLY 0x82F63B78u

static uint32_t table[8][256];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void build_table(void)
{
	for (uint32_t n = 0; n < 256; n++) {
		uint32_t c = n;
		for (int k = 0; k < 8; k++)
			c = (c & 1) ? (c >> 1) ^ POLY : c >> 1;
		table[0][n] = c;
	}
	for (uint32_t n = 0; n < 256; n++)
		for (int k = 1; k < 8; k++)
			table[k][n] = (table[k - 1][n] >> 8) ^ table[0][table[k - 1][n] & 0xff];
}

uint32_t dr_crc32c_sw(uint32_t crc, const void *p, size_t len)
{
	const uint8_t *b = p;

	pthread_once(&table_once, build_table);
	crc = ~crc;
	while (len > 0 && ((uintptr_t)b & 7) != 0) {
		crc = (crc >> 8) ^ table[0][(crc ^ *b++) & 0xff];
		len--;
	}
	while (len >= 8) {
		uint32_t lo, hi;
		memcpy(&lo, b, 4);
		memcpy(&hi, b + 4, 4);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
		lo = __builtin_bswap32(lo);
		hi = __builtin_bswap32(hi);
#endif
		lo ^= crc;
		crc = table[7][lo & 0xff] ^ table[6][(lo >> 8) & 0xff] ^
		      table[5][(lo >> 16) & 0xff] ^ table[4][lo >> 24] ^ table[3][hi & 0xff] ^
		      table[2][(hi >> 8) & 0xff] ^ table[1][(hi >> 16) & 0xff] ^ table[0][hi >> 24];
		b += 8;
		len -= 8;
	}
	while (len-- > 0)
		crc = (crc >> 8) ^ table[0][(crc ^ *b++) & 0xff];
	return ~crc;
}

#if defined(__x86_64__)
#include <nmmintrin.h>

/*
 * Three interleaved streams of 8-byte crc32 instructions hide the
 * instruction's 3-cycle latency.  The streams' registers are merged with
 * precomputed "shift by STRIDE zero bytes" tables: the raw (un-inverted) CRC
 * register is linear, so crc(A || B) = shift_|B|(crc(A)) ^ crc_from_zero(B).
 */
#define STRIDE 1024

static uint32_t shift1[4][256]; /* v -> v advanced over STRIDE zero bytes, per byte lane */
static uint32_t shift2[4][256]; /* ... over 2 * STRIDE zero bytes */
static pthread_once_t shift_once = PTHREAD_ONCE_INIT;

static uint32_t zeros_sw(uint32_t crc, size_t n)
{
	while (n-- > 0)
		crc = (crc >> 8) ^ table[0][crc & 0xff];
	return crc;
}

static void build_shift(void)
{
	uint32_t img1[32], img2[32];

	pthread_once(&table_once, build_table);
	for (int bit = 0; bit < 32; bit++) {
		img1[bit] = zeros_sw(1u << bit, STRIDE);
		img2[bit] = zeros_sw(img1[bit], STRIDE);
	}
	for (int lane = 0; lane < 4; lane++)
		for (uint32_t v = 0; v < 256; v++) {
			uint32_t a = 0, b = 0;
			for (int k = 0; k < 8; k++)
				if (v & (1u << k)) {
					a ^= img1[lane * 8 + k];
					b ^= img2[lane * 8 + k];
				}
			shift1[lane][v] = a;
			shift2[lane][v] = b;
		}
}

static inline uint32_t apply(const uint32_t t[4][256], uint32_t v)
{
	return t[0][v & 0xff] ^ t[1][(v >> 8) & 0xff] ^ t[2][(v >> 16) & 0xff] ^ t[3][v >> 24];
}

__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t crc, const void *p, size_t len)
{
	const uint8_t *b = p;
	uint64_t c = ~crc;

	while (len > 0 && ((uintptr_t)b & 7) != 0) {
		c = _mm_crc32_u8((uint32_t)c, *b++);
		len--;
	}
	if (len >= 3 * STRIDE)
		pthread_once(&shift_once, build_shift);
	while (len >= 3 * STRIDE) {
		uint64_t c1 = 0, c2 = 0;
		for (size_t i = 0; i < STRIDE; i += 8) {
			uint64_t w0, w1, w2;
			memcpy(&w0, b + i, 8);
			memcpy(&w1, b + STRIDE + i, 8);
			memcpy(&w2, b + 2 * STRIDE + i, 8);
			c = _mm_crc32_u64(c, w0);
			c1 = _mm_crc32_u64(c1, w1);
			c2 = _mm_crc32_u64(c2, w2);
		}
		c = apply(shift2, (uint32_t)c) ^ apply(shift1, (uint32_t)c1) ^ (uint32_t)c2;
		b += 3 * STRIDE;
		len -= 3 * STRIDE;
	}
	while (len >= 8) {
		uint64_t w;
		memcpy(&w, b, 8);
		c = _mm_crc32_u64(c, w);
		b += 8;
		len -= 8;
	}
	while (len-- > 0)
		c = _mm_crc32_u8((uint32_t)c, *b++);
	return ~(uint32_t)c;
}

static int have_hw = -1;

uint32_t dr_crc32c(uint32_t crc, const void *p, size_t len)
{
	int hw = __atomic_load_n(&have_hw, __ATOMIC_RELAXED);

	if (__builtin_expect(hw < 0, 0)) {
		__builtin_cpu_init();
		hw = __builtin_cpu_supports("sse4.2") ? 1 : 0;
		__atomic_store_n(&have_hw, hw, __ATOMIC_RELAXED);
	}
	return hw ? crc_hw(crc, p, len) : dr_crc32c_sw(crc, p, len);
}
#else
uint32_t dr_crc32c(uint32_t crc, const void *p, size_t len)
{
	return dr_crc32c_sw(crc, p, len);
}
#endif
