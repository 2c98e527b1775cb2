# src/util: small plain-C pieces shared by the lower layers (CRC-32C, arena).
MODULES += util
util_SRCS := src/util/crc32c.c src/util/arena.c
