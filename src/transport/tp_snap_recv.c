/*
 * tp_snap_recv.c - the receiving side of snapshot streaming.
 *
 * SNAP_BEGIN creates snap-g<group>-n<from>-i<index>-t<term>.part in the
 * snapshot directory (or reopens the one kept from a broken stream with the
 * same parameters) and answers SNAP_RESUME with the bytes already held.
 * Chunks are checksummed as they arrive and written on libuv's thread pool
 * (uv_queue_work), one write in flight per stream: a chunk that arrives while
 * the previous one is being written is staged and the socket is not read
 * until that write ends.  SNAP_END checks size and CRC; once the writes have
 * drained the file is fdatasynced (thread pool), renamed to .snap (the
 * directory synced) and SNAP_DONE carries the status.
 *
 * A partial file stays after a broken connection so the sender can resume;
 * one not extended for snapshot_part_max_age_ms is deleted by a timer, and
 * at start the directory's partial files (only names of exactly the form
 * above) left by an earlier process are deleted once that old, or at once
 * when the directory is ours alone (snapshot_dir_private).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "util/crc32c.h"
#include "transport/tp_internal.h"

/* Longest interval between two expiry scans. */
#define EXPIRY_TICK_MAX_MS 60000u
/* Decode memory for one SNAP_BEGIN (protobuf-c structures of at most 4 KiB of input). */
#define BEGIN_DECODE_MAX (64u << 10)

struct snap_recv {
	struct snap_recv *next;
	struct transport *t;
	uint64_t from;
	uint64_t group_id;
	struct raft_snapshot_meta meta;
	uint64_t size;
	uint32_t want_crc;
	int fd;
	uint64_t offset; /* bytes received and checksummed (written or staged) */
	uint32_t crc;
	struct conn *conn;
	bool orphan;      /* a partial file found at start: never resumed, only aged out */
	bool writing;     /* wreq in flight */
	bool syncing;     /* fsreq in flight */
	bool end_pending; /* SNAP_END checked: sync once the writes drain */
	bool doomed;      /* dropped while a request was in flight: free when it ends */
	bool doomed_unlink;
	uint64_t touched;          /* uv_now() when the file was last extended */
	uint64_t woff;             /* file offset of wbuf */
	struct transport_buf wbuf; /* being written */
	struct transport_buf pend; /* received while wbuf was being written */
	uv_work_t wwork;           /* the write of wbuf, through the I/O hooks of tp_common.h */
	ssize_t write_rc;          /* bytes written or -errno, set on the thread pool */
	uv_work_t swork;           /* the fdatasync of the complete file, through the hooks */
	int sync_rc;               /* 0 or -errno, set on the thread pool */
	char part[PATH_MAX];
	char final[PATH_MAX];
};

static bool sr_busy(const struct snap_recv *sr)
{
	return sr->writing || sr->syncing || sr->end_pending || sr->doomed;
}

/* Detaches sr from its connection, which may read again. */
static void sr_detach(struct snap_recv *sr)
{
	struct conn *c = sr->conn;

	if (c == NULL)
		return;
	sr->conn = NULL;
	c->sr = NULL;
	tp_conn_read(c, true);
}

/* Frees sr now; no request may be in flight. */
static void sr_free(struct snap_recv *sr, bool unlink_part)
{
	struct transport *t = sr->t;
	struct snap_recv **pp;

	for (pp = &t->recvs; *pp != NULL; pp = &(*pp)->next)
		if (*pp == sr) {
			*pp = sr->next;
			break;
		}
	sr_detach(sr);
	if (sr->fd >= 0)
		close(sr->fd);
	if (unlink_part)
		unlink(sr->part);
	transport_buf_free(&sr->wbuf);
	transport_buf_free(&sr->pend);
	transport_free(sr);
}

/* Frees sr, or once its write or sync ends; its connection is released at once. */
static void sr_drop(struct snap_recv *sr, bool unlink_part)
{
	if (!sr->writing && !sr->syncing) {
		sr_free(sr, unlink_part);
		return;
	}
	sr->doomed = true;
	sr->doomed_unlink = unlink_part;
	sr_detach(sr);
}

/* No connection and nothing in flight: release the descriptor and buffers until a resume. */
static void sr_idle(struct snap_recv *sr)
{
	if (sr->fd >= 0)
		close(sr->fd);
	sr->fd = -1;
	transport_buf_free(&sr->wbuf);
	transport_buf_free(&sr->pend);
}

static int reply_done(struct conn *c, int status)
{
	uint8_t b[4];

	if (c == NULL)
		return TRANSPORT_OK;
	tp_put32(b, (uint32_t)status);
	return tp_send_frame(c, TF_SNAP_DONE, b, sizeof(b));
}

static bool same_stream(const struct snap_recv *sr, const struct transport_snapshot_header *h)
{
	return !sr->orphan && sr->meta.index == h->meta.index && sr->meta.term == h->meta.term &&
	       sr->size == h->total_size && sr->want_crc == h->crc32c;
}

/* A new stream record for (from, group, index, term), not yet listed. */
static struct snap_recv *sr_new(struct transport *t, uint64_t from, uint64_t group, uint64_t index,
                                uint64_t term)
{
	struct snap_recv *sr = transport_malloc(sizeof(*sr));

	if (sr == NULL)
		return NULL;
	memset(sr, 0, sizeof(*sr));
	sr->t = t;
	sr->fd = -1;
	sr->from = from;
	sr->group_id = group;
	sr->meta.index = index;
	sr->meta.term = term;
	sr->touched = uv_now(t->loop);
	snprintf(sr->part, sizeof(sr->part), "%s/snap-g%llu-n%llu-i%llu-t%llu.part",
	         t->snapshot_dir, (unsigned long long)group, (unsigned long long)from,
	         (unsigned long long)index, (unsigned long long)term);
	snprintf(sr->final, sizeof(sr->final), "%s/snap-g%llu-n%llu-i%llu-t%llu.snap",
	         t->snapshot_dir, (unsigned long long)group, (unsigned long long)from,
	         (unsigned long long)index, (unsigned long long)term);
	return sr;
}

/* Whether the file system of the snapshot directory has room for need bytes more; *avail
 * the bytes free there. */
static bool have_space(struct transport *t, uint64_t need, uint64_t *avail)
{
	struct statvfs vfs;

	*avail = 0;
	if (statvfs(t->snapshot_dir, &vfs) != 0)
		return true; /* creating the file reports a missing directory */
	*avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;
	return *avail >= need && *avail - need >= t->cfg.snapshot_min_free_bytes;
}

/* Refuses a stream for want of room: told to the embedder here and, numbers included, to
 * the sender in SNAP_DONE. */
static int reply_no_room(struct conn *c, const struct transport_no_room *r)
{
	struct transport *t = c->t;
	uint8_t b[TRANSPORT_SNAP_DONE_MAX];

	if (t->cb.on_snapshot_no_room != NULL)
		t->cb.on_snapshot_no_room(t->cb.ctx, r);
	tp_put32(b, (uint32_t)TRANSPORT_ENOSPACE);
	tp_put64(b + 4, r->need);
	tp_put64(b + 12, r->free_bytes);
	tp_put64(b + 20, r->min_free);
	return tp_send_frame(c, TF_SNAP_DONE, b, sizeof(b));
}

static int on_begin(struct conn *c, const uint8_t *p, uint32_t len)
{
	struct transport *t = c->t;
	struct transport_snapshot_header h;
	struct snap_recv *sr, *next, *found = NULL;
	uint64_t need, avail;
	uint8_t b[8];

	if (c->sr != NULL)
		return TRANSPORT_EPROTO;
	/* A stream ended here earlier is over: the sender sent its END before this BEGIN, and
	 * a chunk or END that comes after this stream is a protocol violation again. */
	c->sr_ended = false;
	c->sr_unsent = 0;
	c->arena.limit = BEGIN_DECODE_MAX;
	if (transport_decode_snapshot_header(&c->arena, p, len, &h) != TRANSPORT_OK)
		return TRANSPORT_EDECODE;
	if (h.from != c->remote_id || h.to != t->cfg.node_id) {
		t->st.msgs_rejected_sender++;
		return TRANSPORT_EPROTO;
	}
	if (!tp_member_ok(t, h.group_id, h.from))
		return reply_done(c, TRANSPORT_EINVAL);
	if (h.total_size > t->cfg.snapshot_max_bytes) {
		t->st.snapshots_refused_size++;
		tp_log_refusal(t, c, "snapshot of group %llu declares %llu bytes, more than %llu",
		               (unsigned long long)h.group_id, (unsigned long long)h.total_size,
		               (unsigned long long)t->cfg.snapshot_max_bytes);
		return reply_done(c, TRANSPORT_ETOOBIG);
	}
	/* A new BEGIN from the same sender takes over a stream of the group stuck on another
	 * connection (the sender redialed; the old connection is dead or stalled). */
	for (sr = t->recvs; sr != NULL; sr = sr->next)
		if (sr->from == h.from && sr->group_id == h.group_id && sr->conn != NULL) {
			t->st.snapshot_takeovers++;
			tp_conn_close(sr->conn); /* detaches sr; its partial file stays */
			break;
		}
	/* One stream per group and sender; a record still writing may only be resumed, one
	 * being completed answers on this connection. */
	for (sr = t->recvs; sr != NULL; sr = sr->next) {
		if (sr->from != h.from || sr->group_id != h.group_id)
			continue;
		if ((sr->syncing || sr->end_pending) && same_stream(sr, &h) && !sr->doomed) {
			sr->conn = c;
			c->sr = sr;
			return TRANSPORT_OK; /* SNAP_DONE follows */
		}
		if (sr->syncing || sr->end_pending || sr->doomed ||
		    (sr->writing && !same_stream(sr, &h)))
			return reply_done(c, TRANSPORT_EPROTO);
	}
	/* Keep the partial file of this very stream; any other of the pair is stale. */
	for (sr = t->recvs; sr != NULL; sr = next) {
		next = sr->next;
		if (sr->from != h.from || sr->group_id != h.group_id)
			continue;
		if (found == NULL && same_stream(sr, &h))
			found = sr;
		else
			sr_free(sr, true);
	}
	/* Room for the rest of this stream beside the rest of every other one. */
	need = h.total_size - (found != NULL ? found->offset : 0);
	for (sr = t->recvs; sr != NULL; sr = sr->next)
		if (sr != found && !sr->orphan)
			need += sr->size - sr->offset;
	if (!have_space(t, need, &avail)) {
		struct transport_no_room r = {.node_id = c->remote_id,
		                              .group_id = h.group_id,
		                              .here = true,
		                              .need = need,
		                              .free_bytes = avail,
		                              .min_free = t->cfg.snapshot_min_free_bytes,
		                              .dir = t->snapshot_dir};

		/* Always logged, not as a refused connection (one line a source a
		 * minute, which a refusal at the start of a join had taken): the
		 * member waits for this room, and the sender's pause between tries
		 * bounds the lines (review 28 F3). */
		t->st.snapshots_refused_space++;
		tp_log(t, TRANSPORT_LOG_INFO,
		       "dragonraft transport: no room for the snapshot of group %llu from node "
		       "%llu "
		       "in \"%s\": %llu bytes to come and %llu to stay free, %llu free; make room "
		       "there, and the leader sends it again",
		       (unsigned long long)h.group_id, (unsigned long long)c->remote_id,
		       t->snapshot_dir, (unsigned long long)need,
		       (unsigned long long)t->cfg.snapshot_min_free_bytes,
		       (unsigned long long)avail);
		return reply_no_room(c, &r);
	}
	sr = found;
	if (sr != NULL && sr->fd < 0) {
		sr->fd = open(sr->part, O_WRONLY | O_CLOEXEC);
		if (sr->fd < 0) {
			sr_free(sr, true); /* gone (expired elsewhere?): start over */
			sr = NULL;
		}
	}
	if (sr != NULL) {
		t->st.snapshot_resumes++;
	} else {
		sr = sr_new(t, h.from, h.group_id, h.meta.index, h.meta.term);
		if (sr == NULL)
			return TRANSPORT_ENOMEM;
		sr->meta = h.meta;
		sr->size = h.total_size;
		sr->want_crc = h.crc32c;
		sr->fd = open(sr->part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (sr->fd < 0) {
			tp_errorf(t, "cannot create \"%s\": %s", sr->part, strerror(errno));
			transport_free(sr);
			return reply_done(c, TRANSPORT_EIO);
		}
		sr->next = t->recvs;
		t->recvs = sr;
	}
	sr->conn = c;
	sr->touched = uv_now(t->loop);
	c->sr = sr;
	tp_put64(b, sr->offset);
	return tp_send_frame(c, TF_SNAP_RESUME, b, sizeof(b));
}

/*
 * Ends sr before it is complete: dropped (its file deleted now or when its
 * request in flight ends), SNAP_DONE(status) to the sender if connected.  The
 * sender keeps writing until that reaches it: what it wrote meanwhile (no
 * more than the rest of the stream) is discarded (tp_snap_server_frame), not
 * taken for a protocol violation, which closed the connection, logged a
 * refused connection and counted a protocol error for the receiver's own
 * decision (review 53); the sender closes the connection once it reads the
 * status.  A stream whose END has arrived (being completed, or failed by its
 * check) has nothing more on its way: nothing is discarded after it.
 */
static void end_stream(struct snap_recv *sr, int status)
{
	struct conn *c = sr->conn;

	if (c != NULL && !sr->end_pending && !sr->syncing) {
		c->sr_ended = true;
		c->sr_unsent = sr->size - sr->offset;
	}
	sr_drop(sr, true);
	reply_done(c, status);
}

/* Fails the stream: counted, file removed, status to the sender if still connected. */
static void sr_fail(struct snap_recv *sr, int status)
{
	sr->t->st.snapshot_failures++;
	end_stream(sr, status);
}

/* The rename made durable: a member that crashes after SNAP_DONE, whose engine
 * then records the snapshot as received, must find the file under its name. */
static int sync_dir(struct transport *t)
{
	int fd = open(t->snapshot_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc;

	if (fd < 0)
		return -1;
	rc = fsync(fd);
	close(fd);
	return rc;
}

static void sync_work(uv_work_t *w)
{
	struct snap_recv *sr = w->data;

	sr->sync_rc = transport_fdatasync(sr->fd);
}

static void synced(uv_work_t *w, int req_status)
{
	struct snap_recv *sr = w->data;
	struct transport *t = sr->t;
	int status = req_status != 0 || sr->sync_rc < 0 ? TRANSPORT_EIO : TRANSPORT_OK;
	struct conn *c;

	errno = req_status != 0 ? ECANCELED : -sr->sync_rc; /* (for the line below) */

	t->handles--;
	sr->syncing = false;
	if (t->closing || sr->doomed) {
		sr_free(sr, sr->doomed && sr->doomed_unlink);
		tp_maybe_finish(t);
		return;
	}
	close(sr->fd);
	sr->fd = -1;
	if (status == TRANSPORT_OK && rename(sr->part, sr->final) != 0) {
		status = TRANSPORT_EIO;
	} else if (status == TRANSPORT_OK && sync_dir(t) != 0) {
		unlink(sr->final); /* (sr_free removes only the partial file) */
		status = TRANSPORT_EIO;
	}
	if (status != TRANSPORT_OK)
		tp_errorf(t, "cannot complete \"%s\": %s", sr->part, strerror(errno));
	c = sr->conn;
	sr_detach(sr);
	reply_done(c, status);
	if (status == TRANSPORT_OK) {
		t->st.snapshots_received++;
		if (t->cb.on_snapshot_received != NULL)
			t->cb.on_snapshot_received(t->cb.ctx, sr->from, sr->group_id, &sr->meta,
			                           sr->final);
	} else {
		t->st.snapshot_failures++;
	}
	sr_free(sr, status != TRANSPORT_OK);
}

static int start_sync(struct snap_recv *sr)
{
	sr->swork.data = sr;
	if (uv_queue_work(sr->t->loop, &sr->swork, sync_work, synced) != 0)
		return TRANSPORT_EIO;
	sr->syncing = true;
	sr->t->handles++;
	return TRANSPORT_OK;
}

static void write_work(uv_work_t *w)
{
	struct snap_recv *sr = w->data;

	sr->write_rc = transport_pwrite_full(sr->fd, sr->wbuf.p, sr->wbuf.len, sr->woff);
}

static void written(uv_work_t *w, int status);

/* Moves the staged bytes to wbuf and writes them on the thread pool. */
static int start_write(struct snap_recv *sr)
{
	struct transport_buf tmp = sr->wbuf;

	sr->wbuf = sr->pend;
	sr->pend = tmp;
	sr->pend.len = 0;
	sr->wwork.data = sr;
	if (uv_queue_work(sr->t->loop, &sr->wwork, write_work, written) != 0) {
		tp_errorf(sr->t, "cannot queue a write to \"%s\"", sr->part);
		return TRANSPORT_EIO;
	}
	sr->writing = true;
	sr->t->handles++;
	if (sr->conn != NULL)
		tp_conn_read(sr->conn, true); /* room to stage the next chunk */
	return TRANSPORT_OK;
}

static void written(uv_work_t *w, int status)
{
	struct snap_recv *sr = w->data;
	struct transport *t = sr->t;
	int rc = TRANSPORT_OK;

	t->handles--;
	sr->writing = false;
	if (t->closing || sr->doomed) {
		sr_free(sr, sr->doomed && sr->doomed_unlink);
		tp_maybe_finish(t);
		return;
	}
	if (status != 0 || sr->write_rc != (ssize_t)sr->wbuf.len) {
		tp_errorf(t, "cannot write \"%s\": %s", sr->part,
		          sr->write_rc < 0 ? strerror((int)-sr->write_rc) : "cancelled");
		sr_fail(sr, TRANSPORT_EIO);
		return;
	}
	sr->touched = uv_now(t->loop);
	sr->woff += sr->wbuf.len;
	sr->wbuf.len = 0;
	if (sr->pend.len > 0)
		rc = start_write(sr);
	else if (sr->end_pending)
		rc = start_sync(sr);
	else if (sr->conn == NULL)
		sr_idle(sr);
	if (rc != TRANSPORT_OK)
		sr_fail(sr, rc);
}

/* Checksums a chunk and queues it for writing. */
static int on_chunk(struct conn *c, struct snap_recv *sr, const uint8_t *p, uint32_t len)
{
	int rc;

	if (len > sr->size - sr->offset) {
		tp_errorf(c->t, "snapshot of group %llu from node %llu: chunk past the end",
		          (unsigned long long)sr->group_id, (unsigned long long)sr->from);
		sr_fail(sr, TRANSPORT_ECHECKSUM);
		return TRANSPORT_OK;
	}
	rc = transport_buf_reserve(&sr->pend, len);
	if (rc != TRANSPORT_OK) {
		sr_fail(sr, rc);
		return TRANSPORT_OK;
	}
	memcpy(sr->pend.p + sr->pend.len, p, len);
	sr->pend.len += len;
	sr->crc = dr_crc32c(sr->crc, p, len);
	sr->offset += len;
	if (sr->writing) {
		/* One write in flight: hold further chunks in the socket until it ends. */
		tp_conn_read(c, false);
		return TRANSPORT_OK;
	}
	rc = start_write(sr);
	if (rc != TRANSPORT_OK)
		sr_fail(sr, rc);
	return TRANSPORT_OK;
}

static int on_end(struct conn *c, struct snap_recv *sr)
{
	struct transport *t = c->t;

	if (sr->offset != sr->size || sr->crc != sr->want_crc) {
		tp_errorf(t, "snapshot of group %llu from node %llu: size or checksum mismatch",
		          (unsigned long long)sr->group_id, (unsigned long long)sr->from);
		/* The END is here: nothing of the stream is discarded after it. */
		sr->end_pending = true;
		sr_fail(sr, TRANSPORT_ECHECKSUM);
		return TRANSPORT_OK;
	}
	sr->end_pending = true;
	if (!sr->writing && start_sync(sr) != TRANSPORT_OK)
		sr_fail(sr, TRANSPORT_EIO);
	return TRANSPORT_OK;
}

int tp_snap_server_frame(struct conn *c, const struct transport_frame_header *h, const uint8_t *p,
                         uint32_t len)
{
	struct snap_recv *sr = c->sr;

	if (h->kind == TF_SNAP_BEGIN)
		return on_begin(c, p, len);
	if (sr == NULL && c->sr_ended &&
	    ((h->kind == TF_SNAP_CHUNK && len <= c->sr_unsent) ||
	     (h->kind == TF_SNAP_END && len == 0))) {
		if (h->kind == TF_SNAP_CHUNK) {
			c->sr_unsent -= len;
		} else {
			/* The stream's last frame: anything after it is a violation. */
			c->sr_ended = false;
			c->sr_unsent = 0;
		}
		c->t->st.snapshot_frames_discarded++;
		return TRANSPORT_OK;
	}
	if (sr == NULL || sr->syncing || sr->end_pending)
		return TRANSPORT_EPROTO;
	if (h->kind == TF_SNAP_CHUNK)
		return on_chunk(c, sr, p, len);
	if (h->kind == TF_SNAP_END && len == 0)
		return on_end(c, sr);
	return TRANSPORT_EPROTO;
}

void tp_snap_recv_conn_closed(struct conn *c)
{
	struct snap_recv *sr = c->sr;

	if (sr == NULL)
		return;
	c->sr = NULL;
	sr->conn = NULL;
	sr->touched = uv_now(c->t->loop);
	/* Keep the partial file: the sender may resume it. */
	if (!sr->writing && !sr->syncing && !sr->end_pending)
		sr_idle(sr);
}

void transport_drop_group_snapshots(struct transport *t, uint64_t group_id)
{
	for (struct snap_recv *sr = t->recvs, *next; sr != NULL; sr = next) {
		next = sr->next;
		if (sr->group_id != group_id || sr->orphan || sr->doomed)
			continue;
		/* (A stream being completed too: its file would not be handed to anyone.) */
		end_stream(sr, TRANSPORT_EINVAL);
	}
}

void transport_drop_outrun_snapshots(struct transport *t,
                                     bool (*outrun)(void *ctx, uint64_t group_id, uint64_t index),
                                     void *ctx)
{
	for (struct snap_recv *sr = t->recvs, *next; sr != NULL; sr = next) {
		next = sr->next;
		if (sr->orphan || sr->doomed || sr->conn != NULL ||
		    !outrun(ctx, sr->group_id, sr->meta.index))
			continue;
		end_stream(sr, TRANSPORT_EINVAL);
	}
}

/* ---- partial file expiry ------------------------------------------------- */

/* Milliseconds since the file at path was last modified; false if it is not a regular file. */
static bool file_age_ms(const char *path, uint64_t *age)
{
	struct timespec now;
	struct stat st;
	int64_t ms;

	if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode))
		return false;
	clock_gettime(CLOCK_REALTIME, &now);
	ms = ((int64_t)now.tv_sec - (int64_t)st.st_mtim.tv_sec) * 1000 +
	     ((int64_t)now.tv_nsec - (int64_t)st.st_mtim.tv_nsec) / 1000000;
	*age = ms > 0 ? (uint64_t)ms : 0;
	return true;
}

/* Whether name is exactly "snap-g<n>-n<n>-i<n>-t<n>.part" (decimal, no leading zeros). */
static bool parse_part_name(const char *name, uint64_t v[4])
{
	static const char *const lead[4] = {"snap-g", "-n", "-i", "-t"};
	const char *s = name;
	char *end;

	for (int k = 0; k < 4; k++) {
		size_t l = strlen(lead[k]);

		if (strncmp(s, lead[k], l) != 0)
			return false;
		s += l;
		if (*s < '0' || *s > '9' || (s[0] == '0' && s[1] >= '0' && s[1] <= '9'))
			return false;
		errno = 0;
		v[k] = strtoull(s, &end, 10);
		if (errno != 0)
			return false;
		s = end;
	}
	return strcmp(s, ".part") == 0;
}

/* The loop time at which a file age_ms old was last extended. */
static uint64_t touched_at(struct transport *t, uint64_t age_ms)
{
	uint64_t now = uv_now(t->loop);

	return age_ms < now ? now - age_ms : 0;
}

/* Deletes the old partial files in the snapshot directory (all of them in a private
 * one); remembers the younger ones. */
static void scan_dir(struct transport *t)
{
	DIR *d = opendir(t->snapshot_dir);
	struct dirent *de;
	char path[PATH_MAX];
	uint64_t v[4], age;

	if (d == NULL)
		return; /* nothing to clean; BEGIN reports a missing directory */
	while ((de = readdir(d)) != NULL) {
		struct snap_recv *sr;

		if (!parse_part_name(de->d_name, v))
			continue;
		snprintf(path, sizeof(path), "%s/%s", t->snapshot_dir, de->d_name);
		if (!file_age_ms(path, &age))
			continue;
		if (t->cfg.snapshot_dir_private || age >= t->cfg.snapshot_part_max_age_ms) {
			if (unlink(path) == 0)
				t->st.snapshot_parts_expired++;
			continue;
		}
		/* An earlier process's stream: it cannot be resumed, only aged out. */
		sr = sr_new(t, v[1], v[0], v[2], v[3]);
		if (sr == NULL)
			continue; /* kept; the next start looks again */
		sr->orphan = true;
		sr->touched = touched_at(t, age);
		sr->next = t->recvs;
		t->recvs = sr;
	}
	closedir(d);
}

static void expire_tick(uv_timer_t *h)
{
	struct transport *t = h->data;
	uint64_t now = uv_now(t->loop), max = t->cfg.snapshot_part_max_age_ms, age;

	for (struct snap_recv *sr = t->recvs, *next; sr != NULL; sr = next) {
		next = sr->next;
		if (sr->conn != NULL || sr_busy(sr) || now - sr->touched < max)
			continue;
		if (sr->orphan) {
			/* Another process may share the directory: trust the file's own age. */
			if (!file_age_ms(sr->part, &age)) {
				sr_free(sr, false);
				continue;
			}
			if (age < max) {
				sr->touched = touched_at(t, age);
				continue;
			}
		}
		t->st.snapshot_parts_expired++;
		sr_free(sr, true);
	}
}

static void expiry_closed(uv_handle_t *h)
{
	struct transport *t = h->data;

	t->handles--;
	tp_maybe_finish(t);
}

void tp_snap_start(struct transport *t)
{
	uint64_t tick = t->cfg.snapshot_part_max_age_ms / 4;

	if (tick == 0)
		tick = 1;
	if (tick > EXPIRY_TICK_MAX_MS)
		tick = EXPIRY_TICK_MAX_MS;
	uv_timer_init(t->loop, &t->expiry);
	t->expiry.data = t;
	t->handles++;
	uv_timer_start(&t->expiry, expire_tick, tick, tick);
	uv_unref((uv_handle_t *)&t->expiry); /* must not keep the loop alive on its own */
	scan_dir(t);
}

void tp_snap_recv_shutdown(struct transport *t)
{
	uv_close((uv_handle_t *)&t->expiry, expiry_closed);
	for (struct snap_recv *sr = t->recvs, *next; sr != NULL; sr = next) {
		next = sr->next;
		if (sr->writing)
			uv_cancel((uv_req_t *)&sr->wwork); /* if still queued; written() frees sr */
		else if (sr->syncing)
			uv_cancel((uv_req_t *)&sr->swork);
		else
			sr_free(sr, false); /* the file stays for the next start's scan */
	}
}
