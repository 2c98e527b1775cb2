# src/util: small plain-C pieces shared by the lower layers (CRC-32C).
MODULES += util
util_SRCS := src/util/crc32c.c
