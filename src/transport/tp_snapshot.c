/*
 * tp_snapshot.c - snapshot streaming on dedicated connections.
 *
 * Sender: the file's CRC32C is computed on libuv's thread pool, then a
 * snapshot connection is dialed; after the handshake it sends SNAP_BEGIN
 * (group, ids, metadata, total size, CRC).  The receiver answers
 * SNAP_RESUME with the offset it already holds (0, or the length of a
 * partial file kept from a broken stream with identical parameters); the
 * sender streams SNAP_CHUNK frames from there, one in flight at a time, then
 * SNAP_END.  The receiver checks size and CRC, fdatasyncs on the thread
 * pool, renames the .part file to .snap and answers SNAP_DONE with a status.
 * A broken connection is redialed with backoff up to snapshot_retries times.
 * Message connections are separate, so heartbeats never queue behind chunks.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/crc32c.h"
#include "transport/tp_internal.h"

enum snap_send_state {
	SS_CRC = 1,     /* checksum pass on the thread pool */
	SS_HANDSHAKE,   /* connection being opened */
	SS_WAIT_RESUME, /* BEGIN sent */
	SS_SENDING,     /* chunks flowing */
	SS_WAIT_DONE,   /* END sent */
	SS_RETRY_WAIT,  /* connection broke; timer pending */
};

struct snap_send {
	struct snap_send *next;
	struct transport *t;
	struct peer *peer;
	uint64_t group_id;
	struct raft_snapshot_meta meta;
	int fd;
	uint64_t size;
	uint64_t offset;
	uint32_t crc;
	int state;
	struct conn *conn;
	uint32_t attempts;
	bool finished, work_pending, writing, timer_closed;
	int work_rc;
	uv_work_t work;
	uv_timer_t retry;
	uint8_t *chunk; /* TRANSPORT_FRAME_HDR + snapshot_chunk bytes */
	uint32_t chunk_len;
	uv_write_t wreq;
};

struct snap_recv {
	struct snap_recv *next;
	struct transport *t;
	uint64_t from;
	uint64_t group_id;
	struct raft_snapshot_meta meta;
	uint64_t size;
	uint32_t want_crc;
	int fd;
	uint64_t offset;
	uint32_t crc;
	struct conn *conn;
	bool syncing;
	uv_fs_t fsreq;
	char part[PATH_MAX];
	char final[PATH_MAX];
};

/* ---- sender --------------------------------------------------------------- */

static void ss_maybe_free(struct snap_send *ss)
{
	struct transport *t = ss->t;

	if (!ss->finished || ss->work_pending || ss->writing || !ss->timer_closed)
		return;
	if (ss->fd >= 0)
		close(ss->fd); /* only now: the checksum pass may have been reading it */
	transport_free(ss->chunk);
	transport_free(ss);
	tp_maybe_finish(t);
}

static void ss_timer_closed(uv_handle_t *h)
{
	struct snap_send *ss = h->data;

	ss->t->handles--;
	ss->timer_closed = true;
	ss_maybe_free(ss);
}

static void ss_finish(struct snap_send *ss, int status)
{
	struct transport *t = ss->t;
	struct snap_send **pp;

	if (ss->finished)
		return;
	ss->finished = true;
	for (pp = &t->sends; *pp != NULL; pp = &(*pp)->next)
		if (*pp == ss) {
			*pp = ss->next;
			break;
		}
	if (ss->conn != NULL) {
		struct conn *c = ss->conn;
		ss->conn = NULL;
		c->ss = NULL;
		tp_conn_close(c);
	}
	if (status == TRANSPORT_OK)
		t->st.snapshots_sent++;
	else
		t->st.snapshot_failures++;
	if (!t->closing && t->cb.on_snapshot_sent != NULL)
		t->cb.on_snapshot_sent(t->cb.ctx, ss->peer->id, ss->group_id, ss->meta.index,
		                       status);
	uv_timer_stop(&ss->retry);
	uv_close((uv_handle_t *)&ss->retry, ss_timer_closed);
}

static void ss_dial(struct snap_send *ss)
{
	struct conn *c = tp_dial(ss->t, ss->peer, TRANSPORT_PURPOSE_SNAP);

	ss->state = SS_HANDSHAKE;
	if (c == NULL) {
		ss_finish(ss, TRANSPORT_EUNREACHABLE);
		return;
	}
	c->ss = ss;
	ss->conn = c;
}

static void ss_retry_fire(uv_timer_t *h)
{
	ss_dial(h->data);
}

static void crc_work(uv_work_t *w)
{
	struct snap_send *ss = w->data;
	uint32_t crc = 0;
	uint64_t off = 0;

	while (off < ss->size) {
		ssize_t n =
		        pread(ss->fd, ss->chunk + TRANSPORT_FRAME_HDR, ss->chunk_len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			ss->work_rc = TRANSPORT_EIO;
			return;
		}
		crc = crc32c(crc, ss->chunk + TRANSPORT_FRAME_HDR, (size_t)n);
		off += (uint64_t)n;
	}
	ss->crc = crc;
	ss->work_rc = TRANSPORT_OK;
}

static void crc_done(uv_work_t *w, int status)
{
	struct snap_send *ss = w->data;
	struct transport *t = ss->t;

	ss->work_pending = false;
	t->handles--;
	if (ss->finished) {
		ss_maybe_free(ss);
		return;
	}
	if (status != 0 || ss->work_rc != TRANSPORT_OK) {
		tp_errorf(t, "cannot read snapshot for group %llu",
		          (unsigned long long)ss->group_id);
		ss_finish(ss, TRANSPORT_EIO);
		return;
	}
	ss_dial(ss);
}

int transport_send_snapshot(struct transport *t, uint64_t node_id, uint64_t group_id,
                            const struct raft_snapshot_meta *meta, const char *path)
{
	struct snap_send *ss;
	struct peer *p;
	struct stat stbuf;
	int rc = TRANSPORT_ENOMEM;

	if (t->closing)
		return TRANSPORT_ECLOSED;
	if (group_id == 0 || meta == NULL || path == NULL ||
	    transport_membership_check(&meta->membership) != TRANSPORT_OK)
		return TRANSPORT_EINVAL;
	p = tp_peer_find(t, node_id);
	if (p == NULL || !p->has_addr)
		return TRANSPORT_ENOPEER;
	ss = transport_malloc(sizeof(*ss));
	if (ss == NULL)
		return TRANSPORT_ENOMEM;
	memset(ss, 0, sizeof(*ss));
	ss->t = t;
	ss->peer = p;
	ss->group_id = group_id;
	ss->meta = *meta;
	ss->chunk_len = t->cfg.snapshot_chunk;
	ss->chunk = transport_malloc(TRANSPORT_FRAME_HDR + (size_t)ss->chunk_len);
	if (ss->chunk == NULL)
		goto err_free_ss;
	ss->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (ss->fd < 0 || fstat(ss->fd, &stbuf) != 0) {
		tp_errorf(t, "cannot open snapshot \"%s\": %s", path, strerror(errno));
		rc = TRANSPORT_EIO;
		goto err_close_fd;
	}
	ss->size = (uint64_t)stbuf.st_size;
	uv_timer_init(t->loop, &ss->retry);
	ss->retry.data = ss;
	t->handles++;
	ss->work.data = ss;
	ss->state = SS_CRC;
	if (uv_queue_work(t->loop, &ss->work, crc_work, crc_done) != 0) {
		tp_errorf(t, "cannot queue snapshot checksum work");
		ss->next = NULL;
		ss_finish(ss, TRANSPORT_EIO);
		return TRANSPORT_OK;
	}
	ss->work_pending = true;
	t->handles++;
	ss->next = t->sends;
	t->sends = ss;
	return TRANSPORT_OK;

err_close_fd:
	if (ss->fd >= 0)
		close(ss->fd);
	transport_free(ss->chunk);
err_free_ss:
	transport_free(ss);
	return rc;
}

void tp_snap_client_open(struct conn *c)
{
	struct snap_send *ss = c->ss;
	struct transport_snapshot_header h;
	struct transport_buf b = {0};
	int rc;

	if (ss == NULL) {
		tp_conn_close(c);
		return;
	}
	h.group_id = ss->group_id;
	h.from = ss->t->cfg.node_id;
	h.to = ss->peer->id;
	h.meta = ss->meta;
	h.total_size = ss->size;
	h.crc32c = ss->crc;
	rc = transport_encode_snapshot_header(&h, &b);
	if (rc == TRANSPORT_OK)
		rc = tp_send_frame(c, TF_SNAP_BEGIN, b.p, (uint32_t)b.len);
	transport_buf_free(&b);
	if (rc != TRANSPORT_OK) {
		tp_conn_fail(c, rc);
		return;
	}
	ss->state = SS_WAIT_RESUME;
}

static void send_chunk(struct snap_send *ss);

static void chunk_written(uv_write_t *req, int status)
{
	struct snap_send *ss = req->data;
	ss->writing = false;
	if (ss->finished) {
		ss_maybe_free(ss);
		return;
	}
	if (status != 0 || ss->conn == NULL || ss->state != SS_SENDING)
		return;
	ss->offset += tp_get32(ss->chunk + 8);
	send_chunk(ss);
}

static void send_chunk(struct snap_send *ss)
{
	uint64_t left = ss->size - ss->offset;
	uint32_t n = left < ss->chunk_len ? (uint32_t)left : ss->chunk_len;
	uint32_t got = 0;
	uv_buf_t b;

	if (n == 0) {
		if (tp_send_frame(ss->conn, TF_SNAP_END, NULL, 0) != TRANSPORT_OK) {
			tp_conn_fail(ss->conn, TRANSPORT_EIO);
			return;
		}
		ss->state = SS_WAIT_DONE;
		return;
	}
	while (got < n) {
		ssize_t r = pread(ss->fd, ss->chunk + TRANSPORT_FRAME_HDR + got, n - got,
		                  (off_t)(ss->offset + got));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			ss_finish(ss, TRANSPORT_EIO);
			return;
		}
		got += (uint32_t)r;
	}
	transport_frame_header_put(ss->chunk, TF_SNAP_CHUNK, ss->chunk + TRANSPORT_FRAME_HDR, n);
	b = uv_buf_init((char *)ss->chunk, TRANSPORT_FRAME_HDR + n);
	ss->wreq.data = ss;
	if (uv_write(&ss->wreq, (uv_stream_t *)&ss->conn->tcp, &b, 1, chunk_written) != 0) {
		tp_conn_fail(ss->conn, TRANSPORT_EIO);
		return;
	}
	ss->writing = true;
}

int tp_snap_client_frame(struct conn *c, const struct transport_frame_header *h, const uint8_t *p,
                         uint32_t len)
{
	struct snap_send *ss = c->ss;

	if (ss == NULL)
		return TRANSPORT_EPROTO;
	if (h->kind == TF_SNAP_RESUME && ss->state == SS_WAIT_RESUME && len == 8) {
		uint64_t off = tp_get64(p);

		if (off > ss->size)
			return TRANSPORT_EPROTO;
		if (off > 0)
			ss->t->st.snapshot_resumes++;
		ss->offset = off;
		ss->state = SS_SENDING;
		if (!ss->writing)
			send_chunk(ss);
		return TRANSPORT_OK;
	}
	if (h->kind == TF_SNAP_DONE && len == 4) {
		uint32_t status = tp_get32(p);

		ss_finish(ss, status < TRANSPORT_RC_COUNT ? (int)status : TRANSPORT_EPROTO);
		return TRANSPORT_ECLOSED;
	}
	return TRANSPORT_EPROTO;
}

/* ---- receiver ------------------------------------------------------------- */

static void sr_free(struct snap_recv *sr, bool unlink_part)
{
	struct transport *t = sr->t;
	struct snap_recv **pp;

	for (pp = &t->recvs; *pp != NULL; pp = &(*pp)->next)
		if (*pp == sr) {
			*pp = sr->next;
			break;
		}
	if (sr->conn != NULL)
		sr->conn->sr = NULL;
	if (sr->fd >= 0)
		close(sr->fd);
	if (unlink_part)
		unlink(sr->part);
	transport_free(sr);
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
	return sr->meta.index == h->meta.index && sr->meta.term == h->meta.term &&
	       sr->size == h->total_size && sr->want_crc == h->crc32c;
}

static int on_begin(struct conn *c, const uint8_t *p, uint32_t len)
{
	struct transport *t = c->t;
	struct transport_snapshot_header h;
	struct snap_recv *sr;
	uint8_t b[8];

	if (c->sr != NULL)
		return TRANSPORT_EPROTO;
	if (transport_decode_snapshot_header(p, len, &h) != TRANSPORT_OK)
		return TRANSPORT_EDECODE;
	if (h.from != c->remote_id || h.to != t->cfg.node_id) {
		t->st.msgs_rejected_sender++;
		return TRANSPORT_EPROTO;
	}
	if (t->cb.membership_check != NULL &&
	    !t->cb.membership_check(t->cb.ctx, h.group_id, h.from)) {
		t->st.msgs_rejected_member++;
		return reply_done(c, TRANSPORT_EINVAL);
	}
	for (sr = t->recvs; sr != NULL; sr = sr->next)
		if (sr->from == h.from && sr->group_id == h.group_id)
			break;
	if (sr != NULL && (sr->syncing || sr->conn != NULL))
		return reply_done(c, TRANSPORT_EPROTO); /* one stream per group and sender */
	if (sr != NULL && same_stream(sr, &h)) {
		sr->fd = open(sr->part, O_WRONLY | O_CLOEXEC);
		if (sr->fd < 0) {
			sr_free(sr, true);
			sr = NULL;
		} else {
			t->st.snapshot_resumes++;
		}
	} else if (sr != NULL) {
		sr_free(sr, true);
		sr = NULL;
	}
	if (sr == NULL) {
		sr = transport_malloc(sizeof(*sr));
		if (sr == NULL)
			return TRANSPORT_ENOMEM;
		memset(sr, 0, sizeof(*sr));
		sr->t = t;
		sr->from = h.from;
		sr->group_id = h.group_id;
		sr->meta = h.meta;
		sr->size = h.total_size;
		sr->want_crc = h.crc32c;
		snprintf(sr->part, sizeof(sr->part), "%s/snap-g%llu-n%llu-i%llu-t%llu.part",
		         t->snapshot_dir, (unsigned long long)h.group_id,
		         (unsigned long long)h.from, (unsigned long long)h.meta.index,
		         (unsigned long long)h.meta.term);
		snprintf(sr->final, sizeof(sr->final), "%s/snap-g%llu-n%llu-i%llu-t%llu.snap",
		         t->snapshot_dir, (unsigned long long)h.group_id,
		         (unsigned long long)h.from, (unsigned long long)h.meta.index,
		         (unsigned long long)h.meta.term);
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
	c->sr = sr;
	tp_put64(b, sr->offset);
	return tp_send_frame(c, TF_SNAP_RESUME, b, sizeof(b));
}

static void synced(uv_fs_t *req)
{
	struct snap_recv *sr = req->data;
	struct transport *t = sr->t;
	int status = req->result < 0 ? TRANSPORT_EIO : TRANSPORT_OK;

	uv_fs_req_cleanup(req);
	t->handles--;
	sr->syncing = false;
	if (t->closing) {
		sr_free(sr, false);
		tp_maybe_finish(t);
		return;
	}
	close(sr->fd);
	sr->fd = -1;
	if (status == TRANSPORT_OK && rename(sr->part, sr->final) != 0)
		status = TRANSPORT_EIO;
	reply_done(sr->conn, status);
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

static int on_end(struct conn *c, struct snap_recv *sr)
{
	struct transport *t = c->t;

	if (sr->offset != sr->size || sr->crc != sr->want_crc) {
		tp_errorf(t, "snapshot of group %llu from node %llu: size or checksum mismatch",
		          (unsigned long long)sr->group_id, (unsigned long long)sr->from);
		t->st.snapshot_failures++;
		sr_free(sr, true);
		return reply_done(c, TRANSPORT_ECHECKSUM);
	}
	sr->syncing = true;
	sr->fsreq.data = sr;
	if (uv_fs_fdatasync(t->loop, &sr->fsreq, sr->fd, synced) != 0) {
		sr->syncing = false;
		sr_free(sr, true);
		return reply_done(c, TRANSPORT_EIO);
	}
	t->handles++;
	return TRANSPORT_OK;
}

int tp_snap_server_frame(struct conn *c, const struct transport_frame_header *h, const uint8_t *p,
                         uint32_t len)
{
	struct snap_recv *sr = c->sr;

	if (h->kind == TF_SNAP_BEGIN)
		return on_begin(c, p, len);
	if (sr == NULL || sr->syncing)
		return TRANSPORT_EPROTO;
	if (h->kind == TF_SNAP_CHUNK) {
		uint32_t done = 0;

		if (len > sr->size - sr->offset) {
			sr_free(sr, true);
			return reply_done(c, TRANSPORT_ECHECKSUM);
		}
		while (done < len) {
			ssize_t n =
			        pwrite(sr->fd, p + done, len - done, (off_t)(sr->offset + done));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				tp_errorf(c->t, "cannot write \"%s\": %s", sr->part,
				          strerror(errno));
				sr_free(sr, true);
				return reply_done(c, TRANSPORT_EIO);
			}
			done += (uint32_t)n;
		}
		sr->crc = crc32c(sr->crc, p, len);
		sr->offset += len;
		return TRANSPORT_OK;
	}
	if (h->kind == TF_SNAP_END && len == 0)
		return on_end(c, sr);
	return TRANSPORT_EPROTO;
}

void tp_snap_conn_closed(struct conn *c)
{
	struct transport *t = c->t;

	if (c->sr != NULL) {
		struct snap_recv *sr = c->sr;

		c->sr = NULL;
		sr->conn = NULL;
		if (!sr->syncing && sr->fd >= 0) {
			/* Keep the partial file: the sender may resume it. */
			close(sr->fd);
			sr->fd = -1;
		}
	}
	if (c->ss != NULL) {
		struct snap_send *ss = c->ss;
		uint64_t delay;

		c->ss = NULL;
		ss->conn = NULL;
		if (t->closing || ss->finished)
			return;
		if (++ss->attempts > t->cfg.snapshot_retries) {
			ss_finish(ss, TRANSPORT_EUNREACHABLE);
			return;
		}
		delay = (uint64_t)t->cfg.backoff_min_ms << (ss->attempts - 1);
		if (delay > t->cfg.backoff_max_ms)
			delay = t->cfg.backoff_max_ms;
		ss->state = SS_RETRY_WAIT;
		uv_timer_start(&ss->retry, ss_retry_fire, delay, 0);
	}
}

void tp_snap_shutdown(struct transport *t)
{
	while (t->sends != NULL)
		ss_finish(t->sends, TRANSPORT_ECLOSED);
	for (struct snap_recv *sr = t->recvs, *next; sr != NULL; sr = next) {
		next = sr->next;
		if (!sr->syncing)
			sr_free(sr, false);
	}
}
