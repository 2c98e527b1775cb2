/*
 * crc32c.h - CRC-32C (Castagnoli), as used by iSCSI, ext4 and RocksDB.
 *
 * SSE4.2 crc32 instructions when the CPU has them (detected at run time),
 * otherwise a table-driven slicing-by-8 loop.  Both give identical results.
 */
#ifndef DRAGONRAFT_UTIL_CRC32C_H
#define DRAGONRAFT_UTIL_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Extends crc (0 to start) with len bytes at p; returns the new CRC-32C. */
uint32_t dr_crc32c(uint32_t crc, const void *p, size_t len);

/* The portable slicing-by-8 implementation (exposed for tests). */
uint32_t dr_crc32c_sw(uint32_t crc, const void *p, size_t len);

#endif /* DRAGONRAFT_UTIL_CRC32C_H */
