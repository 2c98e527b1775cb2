/*
 * faultfs.c - libdr_faultfs.so, an LD_PRELOAD shim for the storage fault
 * tests: it makes the files under one directory behave like a disk that
 * fills up or loses a sync, without root or a real small file system.
 *
 *   DR_FAULT_DIR=/abs/dir        files opened under this directory are watched
 *   DR_FAULT_WRITE_BYTES=N       after N bytes written to them, writes fail with
 *                                ENOSPC (a full disk; the write that crosses N is short)
 *   DR_FAULT_SYNCS=N             the (N+1)th sync of them (fsync, fdatasync, a write
 *                                with RWF_DSYNC or RWF_SYNC) fails with EIO,
 *                                the later ones succeed again (as Linux reports a lost
 *                                writeback once), so a caller that retries is fooled
 *   DR_FAULT_FREE_BYTES=N        statvfs of a path under the directory reports N bytes
 *                                available (a file system short of room before any write)
 *
 * Only calls through the dynamic symbols are seen (RocksDB's open, write,
 * fdatasync, fallocate: what its POSIX file system uses; the LogDB journal's
 * pwritev and pwritev2); stdio is not.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <unistd.h>

#define MAX_FDS 65536

static atomic_bool watched[MAX_FDS];
static char dir[PATH_MAX];
static size_t dir_len;
static long long write_budget = -1; /* bytes left; -1 = unlimited */
static long long sync_budget = -1;  /* syncs left before the failing one; -1 = never */
static long long free_bytes = -1;   /* what statvfs reports available; -1 = the truth */
static atomic_llong written, syncs;
static atomic_int sync_failed;

static void init(void) __attribute__((constructor));
static void init(void)
{
	const char *d = getenv("DR_FAULT_DIR"), *w = getenv("DR_FAULT_WRITE_BYTES"),
	           *s = getenv("DR_FAULT_SYNCS");

	if (d != NULL && d[0] == '/' && strlen(d) < sizeof(dir)) {
		strcpy(dir, d);
		dir_len = strlen(dir);
	}
	if (w != NULL)
		write_budget = atoll(w);
	if (s != NULL)
		sync_budget = atoll(s);
	if (getenv("DR_FAULT_FREE_BYTES") != NULL)
		free_bytes = atoll(getenv("DR_FAULT_FREE_BYTES"));
}

#define REAL(name) ((__typeof__(&name))dlsym(RTLD_NEXT, #name))

/* Is path (relative to dirfd) under the watched directory? */
static bool under(int dirfd, const char *path)
{
	char abs[PATH_MAX * 2];

	if (dir_len == 0 || path == NULL)
		return false;
	if (path[0] != '/') {
		char base[PATH_MAX];
		ssize_t n;

		if (dirfd == AT_FDCWD) {
			if (getcwd(base, sizeof(base)) == NULL)
				return false;
		} else {
			char link[64];

			snprintf(link, sizeof(link), "/proc/self/fd/%d", dirfd);
			n = readlink(link, base, sizeof(base) - 1);
			if (n <= 0)
				return false;
			base[n] = '\0';
		}
		snprintf(abs, sizeof(abs), "%s/%s", base, path);
		path = abs;
	}
	return strncmp(path, dir, dir_len) == 0 && (path[dir_len] == '/' || path[dir_len] == '\0');
}

static int track(int fd, int dirfd, const char *path)
{
	if (fd >= 0 && fd < MAX_FDS)
		atomic_store(&watched[fd], under(dirfd, path));
	return fd;
}

static bool is_watched(int fd)
{
	return fd >= 0 && fd < MAX_FDS && atomic_load(&watched[fd]);
}

static mode_t mode_arg(int flags, va_list ap)
{
	return (flags & (O_CREAT | O_TMPFILE)) ? (mode_t)va_arg(ap, int) : 0;
}

int open(const char *path, int flags, ...)
{
	va_list ap;
	mode_t m;

	va_start(ap, flags);
	m = mode_arg(flags, ap);
	va_end(ap);
	return track(REAL(open)(path, flags, m), AT_FDCWD, path);
}

int open64(const char *path, int flags, ...)
{
	va_list ap;
	mode_t m;

	va_start(ap, flags);
	m = mode_arg(flags, ap);
	va_end(ap);
	return track(REAL(open64)(path, flags, m), AT_FDCWD, path);
}

int openat(int dirfd, const char *path, int flags, ...)
{
	va_list ap;
	mode_t m;

	va_start(ap, flags);
	m = mode_arg(flags, ap);
	va_end(ap);
	return track(REAL(openat)(dirfd, path, flags, m), dirfd, path);
}

int openat64(int dirfd, const char *path, int flags, ...)
{
	va_list ap;
	mode_t m;

	va_start(ap, flags);
	m = mode_arg(flags, ap);
	va_end(ap);
	return track(REAL(openat64)(dirfd, path, flags, m), dirfd, path);
}

int creat(const char *path, mode_t m)
{
	return track(REAL(creat)(path, m), AT_FDCWD, path);
}

int creat64(const char *path, mode_t m)
{
	return track(REAL(creat64)(path, m), AT_FDCWD, path);
}

int close(int fd)
{
	if (fd >= 0 && fd < MAX_FDS)
		atomic_store(&watched[fd], false);
	return REAL(close)(fd);
}

/* How many of n bytes fd may write now; 0 with errno ENOSPC when none. */
static size_t allow(int fd, size_t n)
{
	long long before;

	if (!is_watched(fd) || write_budget < 0)
		return n;
	before = atomic_fetch_add(&written, (long long)n);
	if (before >= write_budget) {
		errno = ENOSPC;
		return 0;
	}
	return before + (long long)n > write_budget ? (size_t)(write_budget - before) : n;
}

ssize_t write(int fd, const void *buf, size_t n)
{
	size_t k = n ? allow(fd, n) : 0;

	if (n && k == 0)
		return -1;
	return REAL(write)(fd, buf, k);
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	size_t k = n ? allow(fd, n) : 0;

	if (n && k == 0)
		return -1;
	return REAL(pwrite)(fd, buf, k, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
{
	size_t k = n ? allow(fd, n) : 0;

	if (n && k == 0)
		return -1;
	return REAL(pwrite64)(fd, buf, k, off);
}

/* Vectored writes: all or nothing (enough for a test's full disk). */
static bool allow_iov(int fd, const struct iovec *iov, int cnt)
{
	size_t n = 0;

	for (int i = 0; i < cnt; i++)
		n += iov[i].iov_len;
	return n == 0 || allow(fd, n) == n;
}

ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
	if (!allow_iov(fd, iov, cnt)) {
		errno = ENOSPC;
		return -1;
	}
	return REAL(writev)(fd, iov, cnt);
}

ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off)
{
	if (!allow_iov(fd, iov, cnt)) {
		errno = ENOSPC;
		return -1;
	}
	return REAL(pwritev)(fd, iov, cnt, off);
}

static bool sync_fails(int fd);

/* A write with RWF_DSYNC or RWF_SYNC is also a sync (the LogDB journal's
 * synced records): the one that fails writes its bytes, unsynced, and
 * reports EIO, as a lost writeback would. */
ssize_t pwritev2(int fd, const struct iovec *iov, int cnt, off_t off, int flags)
{
	if (!allow_iov(fd, iov, cnt)) {
		errno = ENOSPC;
		return -1;
	}
	if ((flags & (RWF_DSYNC | RWF_SYNC)) && sync_fails(fd)) {
		REAL(pwritev2)(fd, iov, cnt, off, flags & ~(RWF_DSYNC | RWF_SYNC));
		errno = EIO;
		return -1;
	}
	return REAL(pwritev2)(fd, iov, cnt, off, flags);
}

int fallocate(int fd, int mode, off_t off, off_t len)
{
	if (is_watched(fd) && write_budget >= 0 && atomic_load(&written) >= write_budget) {
		errno = ENOSPC;
		return -1;
	}
	return REAL(fallocate)(fd, mode, off, len);
}

int fallocate64(int fd, int mode, off_t off, off_t len)
{
	return fallocate(fd, mode, off, len);
}

/* True when this sync is the one that fails. */
static bool sync_fails(int fd)
{
	if (!is_watched(fd) || sync_budget < 0)
		return false;
	if (atomic_fetch_add(&syncs, 1) != sync_budget)
		return false;
	atomic_store(&sync_failed, 1);
	errno = EIO;
	return true;
}

int fsync(int fd)
{
	return sync_fails(fd) ? -1 : REAL(fsync)(fd);
}

int fdatasync(int fd)
{
	return sync_fails(fd) ? -1 : REAL(fdatasync)(fd);
}

int statvfs(const char *path, struct statvfs *buf)
{
	int rc = REAL(statvfs)(path, buf);

	if (rc == 0 && free_bytes >= 0 && under(AT_FDCWD, path) && buf->f_frsize > 0)
		buf->f_bavail = buf->f_bfree = (fsblkcnt_t)(free_bytes / (long long)buf->f_frsize);
	return rc;
}
