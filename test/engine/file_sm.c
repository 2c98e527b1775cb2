/*
 * file_sm.c - the durable file-backed test state machine (see the header).
 *
 * Record layout (little-endian, as the host writes it): u64 index, u64 term,
 * u32 type, u32 len, len bytes of data, u32 CRC-32C of everything before it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "file_sm.h"
#include "util/crc32c.h"

#define HDR_BYTES 24

struct file_sm {
	int fd;
	char path[ENGINE_PATH_MAX];
	raft_index applied;
	uint64_t count, digest;
	unsigned recoveries;
	uint8_t *buf; /* one batch of records */
	size_t cap;
};

static uint64_t mix(uint64_t h, uint64_t v)
{
	h ^= v + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
	h *= 0xBF58476D1CE4E5B9ull;
	return h ^ (h >> 31);
}

static uint64_t chain(uint64_t d, const struct file_sm_record *r)
{
	uint64_t h = 1469598103934665603ull;

	for (uint32_t i = 0; i < r->len; i++)
		h = (h ^ r->data[i]) * 1099511628211ull;
	return mix(mix(mix(mix(d, r->index), r->term), r->type), h);
}

int file_sm_scan(const char *path, file_sm_visit_fn fn, void *arg, uint64_t *valid,
                 raft_index *last, uint64_t *count, uint64_t *digest)
{
	FILE *f = fopen(path, "rb");
	uint8_t hdr[HDR_BYTES], *data = NULL;
	uint64_t off = 0, n = 0, d = 0;
	raft_index prev = 0;
	int rc = ENGINE_OK;

	if (f == NULL)
		return errno == ENOENT ? ENGINE_ERR_NOT_FOUND : ENGINE_ERR_SM;
	data = malloc(FILE_SM_MAX_DATA + 4);
	if (data == NULL) {
		fclose(f);
		return ENGINE_ERR_NOMEM;
	}
	for (;;) {
		struct file_sm_record r;
		uint32_t crc, want;

		if (fread(hdr, HDR_BYTES, 1, f) != 1)
			break;
		memcpy(&r.index, hdr, 8);
		memcpy(&r.term, hdr + 8, 8);
		memcpy(&r.type, hdr + 16, 4);
		memcpy(&r.len, hdr + 20, 4);
		if (r.len > FILE_SM_MAX_DATA || r.index != prev + 1)
			break;
		if (fread(data, (size_t)r.len + 4, 1, f) != 1)
			break;
		memcpy(&want, data + r.len, 4);
		crc = dr_crc32c(dr_crc32c(0, hdr, HDR_BYTES), data, r.len);
		if (crc != want)
			break;
		r.data = data;
		d = chain(d, &r);
		if (r.len > 0)
			n++;
		prev = r.index;
		off += HDR_BYTES + (uint64_t)r.len + 4;
		if (fn != NULL && (rc = fn(arg, &r)) != 0)
			break;
	}
	free(data);
	fclose(f);
	if (valid != NULL)
		*valid = off;
	if (last != NULL)
		*last = prev;
	if (count != NULL)
		*count = n;
	if (digest != NULL)
		*digest = d;
	return rc;
}

int file_sm_open(const char *path, struct file_sm **out)
{
	struct file_sm *fs = calloc(1, sizeof(*fs));
	uint64_t valid = 0;
	int rc;

	if (fs == NULL)
		return ENGINE_ERR_NOMEM;
	snprintf(fs->path, sizeof(fs->path), "%s", path);
	rc = file_sm_scan(path, NULL, NULL, &valid, &fs->applied, &fs->count, &fs->digest);
	if (rc != ENGINE_OK && rc != ENGINE_ERR_NOT_FOUND)
		goto free_fs;
	fs->fd = open(path, O_RDWR | O_CREAT, 0644);
	if (fs->fd < 0) {
		rc = ENGINE_ERR_SM;
		goto free_fs;
	}
	/* Cut a torn tail off so that appends continue after the last good record. */
	if (ftruncate(fs->fd, (off_t)valid) != 0 || lseek(fs->fd, 0, SEEK_END) < 0 ||
	    fdatasync(fs->fd) != 0) {
		rc = ENGINE_ERR_SM;
		goto close_fd;
	}
	*out = fs;
	return ENGINE_OK;
close_fd:
	close(fs->fd);
free_fs:
	free(fs);
	return rc;
}

void file_sm_close(struct file_sm *fs)
{
	if (fs == NULL)
		return;
	close(fs->fd);
	free(fs->buf);
	free(fs);
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return ENGINE_ERR_SM;
		p += w;
		n -= (size_t)w;
	}
	return ENGINE_OK;
}

static int fsm_apply(void *ctx, const struct engine_sm_entry *ents, uint32_t n)
{
	struct file_sm *fs = ctx;
	size_t need = 0, off = 0;
	raft_index prev = fs->applied;

	for (uint32_t i = 0; i < n; i++) {
		if (ents[i].len > FILE_SM_MAX_DATA || ents[i].index != prev + 1) {
			fprintf(stderr, "file_sm: applied %llu then %llu (len %u)\n",
			        (unsigned long long)prev, (unsigned long long)ents[i].index,
			        ents[i].len);
			return ENGINE_ERR_INVALID;
		}
		prev = ents[i].index;
		need += HDR_BYTES + (size_t)ents[i].len + 4;
	}
	if (need > fs->cap) {
		uint8_t *nb = realloc(fs->buf, need * 2);

		if (nb == NULL)
			return ENGINE_ERR_NOMEM;
		fs->buf = nb;
		fs->cap = need * 2;
	}
	for (uint32_t i = 0; i < n; i++) {
		struct file_sm_record r = {ents[i].index, ents[i].term, ents[i].type, ents[i].len,
		                           ents[i].data};
		uint8_t *h = fs->buf + off;
		uint32_t crc;

		memcpy(h, &r.index, 8);
		memcpy(h + 8, &r.term, 8);
		memcpy(h + 16, &r.type, 4);
		memcpy(h + 20, &r.len, 4);
		if (r.len > 0)
			memcpy(h + HDR_BYTES, r.data, r.len);
		crc = dr_crc32c(0, h, HDR_BYTES + (size_t)r.len);
		memcpy(h + HDR_BYTES + r.len, &crc, 4);
		off += HDR_BYTES + (size_t)r.len + 4;
		fs->digest = chain(fs->digest, &r);
		if (r.len > 0)
			fs->count++;
	}
	if (write_all(fs->fd, fs->buf, off) != ENGINE_OK || fdatasync(fs->fd) != 0)
		return ENGINE_ERR_SM;
	fs->applied = prev;
	return ENGINE_OK;
}

static raft_index fsm_durable(void *ctx)
{
	return ((struct file_sm *)ctx)->applied;
}

/* Copy the first len bytes of src_fd (from offset 0) into a new file at path, synced. */
static int copy_to(int src_fd, uint64_t len, const char *path)
{
	uint8_t buf[65536];
	uint64_t off = 0;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	int rc = ENGINE_ERR_SNAPSHOT;

	if (fd < 0)
		return ENGINE_ERR_SNAPSHOT;
	while (off < len) {
		size_t want = len - off < sizeof(buf) ? (size_t)(len - off) : sizeof(buf);
		ssize_t r = pread(src_fd, buf, want, (off_t)off);

		if (r <= 0 || write_all(fd, buf, (size_t)r) != ENGINE_OK)
			goto close_fd;
		off += (uint64_t)r;
	}
	if (fsync(fd) == 0)
		rc = ENGINE_OK;
close_fd:
	close(fd);
	return rc;
}

static int fsm_save(void *ctx, const char *path, raft_index *index)
{
	struct file_sm_save sv;
	int rc = file_sm_save_begin(ctx, &sv);

	if (rc != ENGINE_OK)
		return rc;
	*index = sv.index;
	return file_sm_save_run(&sv, path);
}

/* fsync the directory holding path (makes a rename in it durable). */
static int sync_dir(const char *path)
{
	char dir[ENGINE_PATH_MAX];
	char *slash;
	int fd, rc;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash == NULL)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	fd = open(dir, O_RDONLY | O_DIRECTORY);
	if (fd < 0)
		return ENGINE_ERR_SNAPSHOT;
	rc = fsync(fd) == 0 ? ENGINE_OK : ENGINE_ERR_SNAPSHOT;
	close(fd);
	return rc;
}

int file_sm_save_begin(struct file_sm *fs, struct file_sm_save *sv)
{
	off_t len = lseek(fs->fd, 0, SEEK_END);

	if (len < 0)
		return ENGINE_ERR_SNAPSHOT;
	sv->fd = dup(fs->fd); /* the records up to len never change: appends go after */
	if (sv->fd < 0)
		return ENGINE_ERR_SNAPSHOT;
	sv->len = (uint64_t)len;
	sv->index = fs->applied;
	return ENGINE_OK;
}

int file_sm_save_run(struct file_sm_save *sv, const char *path)
{
	int rc = copy_to(sv->fd, sv->len, path);

	close(sv->fd);
	sv->fd = -1;
	return rc;
}

int file_sm_recover_stage(const char *sm_path, const char *path, raft_index index,
                          struct file_sm_recovery *rv)
{
	char tmp[ENGINE_PATH_MAX + 8];
	uint64_t valid;
	int src, rc;

	rc = file_sm_scan(path, NULL, NULL, &valid, &rv->last, &rv->count, &rv->digest);
	if (rc != ENGINE_OK || rv->last != index)
		return ENGINE_ERR_SNAPSHOT;
	src = open(path, O_RDONLY);
	if (src < 0)
		return ENGINE_ERR_SNAPSHOT;
	snprintf(tmp, sizeof(tmp), "%s.tmp", sm_path);
	rc = copy_to(src, valid, tmp);
	close(src);
	return rc;
}

int file_sm_recover_finish(struct file_sm *fs, const struct file_sm_recovery *rv)
{
	char tmp[ENGINE_PATH_MAX + 8];
	int fd;

	snprintf(tmp, sizeof(tmp), "%s.tmp", fs->path);
	if (rename(tmp, fs->path) != 0 || sync_dir(fs->path) != ENGINE_OK)
		return ENGINE_ERR_SNAPSHOT;
	fd = open(fs->path, O_RDWR);
	if (fd < 0 || lseek(fd, 0, SEEK_END) < 0) {
		if (fd >= 0)
			close(fd);
		return ENGINE_ERR_SNAPSHOT;
	}
	close(fs->fd);
	fs->fd = fd;
	fs->applied = rv->last;
	fs->count = rv->count;
	fs->digest = rv->digest;
	fs->recoveries++;
	return ENGINE_OK;
}

const char *file_sm_path(const struct file_sm *fs)
{
	return fs->path;
}

static int fsm_recover(void *ctx, const char *path, raft_index index)
{
	struct file_sm *fs = ctx;
	struct file_sm_recovery rv;
	int rc = file_sm_recover_stage(fs->path, path, index, &rv);

	return rc == ENGINE_OK ? file_sm_recover_finish(fs, &rv) : rc;
}

void file_sm_ops(struct file_sm *fs, struct engine_sm_ops *ops)
{
	memset(ops, 0, sizeof(*ops));
	ops->ctx = fs;
	ops->apply = fsm_apply;
	ops->durable_applied = fsm_durable;
	ops->save_snapshot = fsm_save;
	ops->recover = fsm_recover;
}

raft_index file_sm_applied(const struct file_sm *fs)
{
	return fs->applied;
}

uint64_t file_sm_count(const struct file_sm *fs)
{
	return fs->count;
}

uint64_t file_sm_digest(const struct file_sm *fs)
{
	return fs->digest;
}

unsigned file_sm_recoveries(const struct file_sm *fs)
{
	return fs->recoveries;
}
