/*
 * tp_common.c - result strings, allocation hooks, byte buffers.
 */
#include "transport/tp_common.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct transport_alloc_hooks hooks = {malloc, realloc, free};
static struct transport_io_hooks io_hooks = {pread, pwrite, fdatasync};

static const char *const messages[TRANSPORT_RC_COUNT] = {
        [TRANSPORT_OK] = "ok",
        [TRANSPORT_ENOMEM] = "out of memory",
        [TRANSPORT_EINVAL] = "invalid argument",
        [TRANSPORT_EMAGIC] = "bad frame magic",
        [TRANSPORT_EVERSION] = "unsupported frame version, kind or flags",
        [TRANSPORT_ETOOBIG] = "frame larger than the configured maximum",
        [TRANSPORT_ECRC] = "frame checksum mismatch",
        [TRANSPORT_EDECODE] = "malformed message",
        [TRANSPORT_EAUTH] = "TLS handshake failed",
        [TRANSPORT_ENODEID] = "unexpected node id in handshake",
        [TRANSPORT_ENOTLOOPBACK] = "no TLS configured and peer is not on loopback",
        [TRANSPORT_EPROTO] = "protocol violation",
        [TRANSPORT_EQUEUEFULL] = "send queue full",
        [TRANSPORT_EUNREACHABLE] = "peer unreachable",
        [TRANSPORT_ENOPEER] = "unknown peer",
        [TRANSPORT_EIO] = "i/o error",
        [TRANSPORT_ECHECKSUM] = "snapshot size or checksum mismatch",
        [TRANSPORT_ECLOSED] = "transport closed",
        [TRANSPORT_ETIMEOUT] = "timed out",
        [TRANSPORT_ETLS] = "TLS record error",
        [TRANSPORT_EUNKNOWN] = "node is not a peer of this node",
        [TRANSPORT_ELIMIT] = "connection limit reached",
        [TRANSPORT_EBUDGET] = "receive memory budget exhausted",
        [TRANSPORT_EIDLE] = "connection idle too long",
        [TRANSPORT_ENOSPACE] = "not enough free disk space",
};

const char *transport_strerror(int rc)
{
	if (rc < 0 || rc >= TRANSPORT_RC_COUNT || messages[rc] == NULL)
		return "unknown error";
	return messages[rc];
}

void transport_set_alloc_hooks(const struct transport_alloc_hooks *h)
{
	if (h == NULL) {
		hooks.malloc_fn = malloc;
		hooks.realloc_fn = realloc;
		hooks.free_fn = free;
		return;
	}
	hooks = *h;
}

void *transport_malloc(size_t size)
{
	return hooks.malloc_fn(size);
}

void *transport_realloc(void *p, size_t size)
{
	return hooks.realloc_fn(p, size);
}

void transport_free(void *p)
{
	if (p != NULL)
		hooks.free_fn(p);
}

int transport_buf_reserve(struct transport_buf *b, size_t extra)
{
	size_t want = b->len + extra;
	size_t cap = b->cap ? b->cap : 4096;
	uint8_t *p;

	if (want < b->len)
		return TRANSPORT_ENOMEM;
	if (want <= b->cap)
		return TRANSPORT_OK;
	while (cap < want)
		cap = cap * 2 > cap ? cap * 2 : want;
	p = transport_realloc(b->p, cap);
	if (p == NULL)
		return TRANSPORT_ENOMEM;
	b->p = p;
	b->cap = cap;
	return TRANSPORT_OK;
}

void transport_buf_free(struct transport_buf *b)
{
	transport_free(b->p);
	memset(b, 0, sizeof(*b));
}

void transport_set_io_hooks(const struct transport_io_hooks *h)
{
	io_hooks.pread_fn = h != NULL && h->pread_fn != NULL ? h->pread_fn : pread;
	io_hooks.pwrite_fn = h != NULL && h->pwrite_fn != NULL ? h->pwrite_fn : pwrite;
	io_hooks.fdatasync_fn = h != NULL && h->fdatasync_fn != NULL ? h->fdatasync_fn : fdatasync;
}

int transport_fdatasync(int fd)
{
	return io_hooks.fdatasync_fn(fd) == 0 ? 0 : errno > 0 ? -errno : -EIO;
}

ssize_t transport_pread_full(int fd, void *buf, size_t n, uint64_t off)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r =
		        io_hooks.pread_fn(fd, (uint8_t *)buf + got, n - got, (off_t)(off + got));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return errno > 0 ? -errno : -EIO;
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

ssize_t transport_pwrite_full(int fd, const void *buf, size_t n, uint64_t off)
{
	size_t done = 0;

	while (done < n) {
		ssize_t r = io_hooks.pwrite_fn(fd, (const uint8_t *)buf + done, n - done,
		                               (off_t)(off + done));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return errno > 0 ? -errno : -EIO;
		if (r == 0)
			return -ENOSPC;
		done += (size_t)r;
	}
	return (ssize_t)done;
}
