/*
 * tp_common.h - what every file of src/transport shares: result codes,
 * swappable allocation hooks and a growable byte buffer.
 */
#ifndef DRAGONRAFT_TRANSPORT_TP_COMMON_H
#define DRAGONRAFT_TRANSPORT_TP_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Result codes of every transport_* function (0 is success). */
enum transport_rc {
	TRANSPORT_OK = 0,
	TRANSPORT_ENOMEM,       /* allocation failed (or hit a decode memory cap) */
	TRANSPORT_EINVAL,       /* bad argument or configuration */
	TRANSPORT_EMAGIC,       /* frame header does not start with the magic */
	TRANSPORT_EVERSION,     /* unknown frame version, kind or flags */
	TRANSPORT_ETOOBIG,      /* frame length above the configured maximum */
	TRANSPORT_ECRC,         /* frame CRC32C mismatch */
	TRANSPORT_EDECODE,      /* payload is not a valid message (protobuf or bounds) */
	TRANSPORT_EAUTH,        /* TLS handshake failed: certificate, CA, CRL or key not accepted */
	TRANSPORT_ENODEID,      /* handshake named an unexpected node id */
	TRANSPORT_ENOTLOOPBACK, /* no TLS configured and the peer is not on loopback */
	TRANSPORT_EPROTO,       /* frame not allowed in this connection state */
	TRANSPORT_EQUEUEFULL,   /* the peer's send queue is full: message dropped */
	TRANSPORT_EUNREACHABLE, /* the peer could not be reached */
	TRANSPORT_ENOPEER,      /* node id not added with transport_add_peer */
	TRANSPORT_EIO,          /* socket or file error (see errmsg) */
	TRANSPORT_ECHECKSUM,    /* snapshot size or checksum mismatch */
	TRANSPORT_ECLOSED,      /* transport is closing */
	TRANSPORT_ETIMEOUT,     /* handshake did not finish in time */
	TRANSPORT_ETLS,         /* TLS record error: bytes altered in transit, or a TLS alert */
	TRANSPORT_EUNKNOWN,     /* node id is not a peer of this node (member or being added) */
	TRANSPORT_ELIMIT,       /* a connection limit was reached (snapshot connections of a node) */
	TRANSPORT_EBUDGET,      /* the receive memory budget is exhausted */
	TRANSPORT_EIDLE,        /* nothing received or sent for idle_timeout_ms */
	TRANSPORT_ENOSPACE,     /* not enough free disk space for a snapshot */
	TRANSPORT_RC_COUNT,
};

/* Static description of a transport_rc code. */
const char *transport_strerror(int rc);

/* Allocation functions used for every buffer the transport allocates. */
struct transport_alloc_hooks {
	void *(*malloc_fn)(size_t size);
	void *(*realloc_fn)(void *p, size_t size);
	void (*free_fn)(void *p);
};

/* Installs allocation hooks (NULL restores malloc/realloc/free); not thread-safe. */
void transport_set_alloc_hooks(const struct transport_alloc_hooks *hooks);

/* malloc through the hooks. */
void *transport_malloc(size_t size);
/* realloc through the hooks. */
void *transport_realloc(void *p, size_t size);
/* free through the hooks. */
void transport_free(void *p);

/* File I/O of snapshot chunks and the received file's sync, called on libuv's thread pool;
 * tests inject failures and delays.  A NULL member is the plain call. */
struct transport_io_hooks {
	ssize_t (*pread_fn)(int fd, void *buf, size_t n, off_t off);
	ssize_t (*pwrite_fn)(int fd, const void *buf, size_t n, off_t off);
	int (*fdatasync_fn)(int fd);
};

/* Installs file I/O hooks (NULL restores the plain calls); only while no snapshot streams. */
void transport_set_io_hooks(const struct transport_io_hooks *hooks);

/* Reads n bytes at off through the hooks, retrying EINTR: bytes read (< n at EOF) or -errno. */
ssize_t transport_pread_full(int fd, void *buf, size_t n, uint64_t off);

/* Writes n bytes at off through the hooks, retrying EINTR and short writes: n or -errno. */
ssize_t transport_pwrite_full(int fd, const void *buf, size_t n, uint64_t off);

/* fdatasync through the hooks: 0 or -errno. */
int transport_fdatasync(int fd);

/* A growable byte buffer. */
struct transport_buf {
	uint8_t *p;
	size_t len;
	size_t cap;
};

/* Makes room for extra more bytes after len; TRANSPORT_ENOMEM on failure. */
int transport_buf_reserve(struct transport_buf *b, size_t extra);
/* Frees the buffer's memory and zeroes it. */
void transport_buf_free(struct transport_buf *b);

/* Big-endian stores and loads. */
static inline void tp_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline uint32_t tp_get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void tp_put64(uint8_t *p, uint64_t v)
{
	tp_put32(p, (uint32_t)(v >> 32));
	tp_put32(p + 4, (uint32_t)v);
}

static inline uint64_t tp_get64(const uint8_t *p)
{
	return (uint64_t)tp_get32(p) << 32 | tp_get32(p + 4);
}

#endif /* DRAGONRAFT_TRANSPORT_TP_COMMON_H */
