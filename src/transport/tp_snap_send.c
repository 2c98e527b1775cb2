/*
 * tp_snap_send.c - the sending side of snapshot streaming.
 *
 * The file's CRC32C is computed on libuv's thread pool, then a snapshot
 * connection is dialed; after the handshake it sends SNAP_BEGIN (group, ids,
 * metadata, total size, CRC).  The receiver answers SNAP_RESUME with the
 * offset it already holds (0, or the length of a partial file kept from a
 * broken stream with identical parameters); the sender streams SNAP_CHUNK
 * frames from there, then SNAP_END, and waits for SNAP_DONE.  Exactly one
 * chunk is in flight per stream: it is read on the thread pool
 * (uv_queue_work, through the I/O hooks of tp_common.h), written to the socket, and only when that
 * write completes is the next one read, so the loop thread never touches the disk.  A broken
 * connection is redialed with backoff up to snapshot_retries times; the
 * receiver's SNAP_RESUME decides where the new connection starts.
 * The receiving side is tp_snap_recv.c.
 */
#include <errno.h>
#include <fcntl.h>
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
	uint64_t offset; /* bytes the receiver holds or that were written to this connection */
	uint32_t crc;
	int state;
	struct conn *conn;
	uint32_t attempts;
	bool finished, work_pending, writing, reading, timer_closed;
	bool answered; /* the stream ended with the receiver's SNAP_DONE */
	int work_rc;
	uv_work_t work;
	uv_timer_t retry;
	uint8_t *chunk; /* TRANSPORT_FRAME_HDR + snapshot_chunk bytes */
	uint32_t chunk_len;
	uv_work_t rwork;   /* the chunk read in flight */
	uint64_t read_off; /* file offset of the chunk being read */
	uint32_t read_len;
	ssize_t read_rc; /* bytes read or -errno, set on the thread pool */
	uv_write_t wreq;
	struct conn *wconn; /* the connection the chunk write went to */
};

static void ss_maybe_free(struct snap_send *ss)
{
	struct transport *t = ss->t;

	if (!ss->finished || ss->work_pending || ss->writing || ss->reading || !ss->timer_closed)
		return;
	if (ss->fd >= 0)
		close(ss->fd); /* only now: a thread-pool read may have been using it */
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
		                       status, ss->answered);
	/* Work still queued on the pool need not run; its callback frees ss. */
	if (ss->work_pending)
		uv_cancel((uv_req_t *)&ss->work);
	if (ss->reading)
		uv_cancel((uv_req_t *)&ss->rwork);
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

	ss->work_rc = TRANSPORT_OK;
	while (off < ss->size) {
		uint64_t left = ss->size - off;
		size_t want = left < ss->chunk_len ? (size_t)left : ss->chunk_len;
		ssize_t n =
		        transport_pread_full(ss->fd, ss->chunk + TRANSPORT_FRAME_HDR, want, off);

		if (n != (ssize_t)want) {
			ss->work_rc = TRANSPORT_EIO;
			return;
		}
		crc = dr_crc32c(crc, ss->chunk + TRANSPORT_FRAME_HDR, (size_t)n);
		off += (uint64_t)n;
	}
	ss->crc = crc;
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
	struct conn *c = ss->wconn;

	ss->writing = false;
	ss->wconn = NULL;
	if (status == 0 && c != NULL)
		c->last_active = uv_now(ss->t->loop);
	if (ss->finished) {
		ss_maybe_free(ss);
		return;
	}
	if (ss->conn == NULL || ss->state != SS_SENDING)
		return; /* the next SNAP_RESUME restarts the stream */
	if (ss->conn != c) {
		/* A write to an older connection ended after the new one resumed. */
		send_chunk(ss);
		return;
	}
	if (status != 0) {
		tp_conn_fail(c, TRANSPORT_EIO);
		return;
	}
	ss->offset += tp_get32(ss->chunk + 8);
	send_chunk(ss);
}

/* Writes the chunk just read (ss->chunk) to the stream's connection. */
static void write_chunk(struct snap_send *ss)
{
	uint32_t n = ss->read_len;
	uv_buf_t b;

	/* Inside TLS the record layer authenticates the chunk: no CRC of it. */
	if (ss->conn->ssl != NULL)
		transport_frame_header_put_crc(ss->chunk, TF_SNAP_CHUNK, n, 0);
	else
		transport_frame_header_put(ss->chunk, TF_SNAP_CHUNK,
		                           ss->chunk + TRANSPORT_FRAME_HDR, n);
	b = uv_buf_init((char *)ss->chunk, TRANSPORT_FRAME_HDR + n);
	ss->wreq.data = ss;
	if (tp_conn_write(ss->conn, &ss->wreq, &b, 1, chunk_written) != TRANSPORT_OK) {
		tp_conn_fail(ss->conn, TRANSPORT_EIO);
		return;
	}
	ss->writing = true;
	ss->wconn = ss->conn;
}

static void read_work(uv_work_t *w)
{
	struct snap_send *ss = w->data;

	ss->read_rc = transport_pread_full(ss->fd, ss->chunk + TRANSPORT_FRAME_HDR, ss->read_len,
	                                   ss->read_off);
}

static void chunk_read(uv_work_t *w, int status)
{
	struct snap_send *ss = w->data;

	ss->reading = false;
	ss->t->handles--;
	if (ss->finished) {
		ss_maybe_free(ss);
		return;
	}
	if (status != 0 || ss->read_rc != (ssize_t)ss->read_len) {
		/* An error, or the file shrank under us. */
		tp_errorf(ss->t, "cannot read snapshot for group %llu: %s",
		          (unsigned long long)ss->group_id,
		          ss->read_rc < 0 ? strerror((int)-ss->read_rc) : "unexpected end of file");
		ss_finish(ss, TRANSPORT_EIO);
		return;
	}
	if (ss->conn == NULL || ss->state != SS_SENDING)
		return; /* the connection broke meanwhile: SNAP_RESUME restarts */
	if (ss->read_off != ss->offset) {
		send_chunk(ss); /* a resume moved the offset while we read */
		return;
	}
	write_chunk(ss);
}

/* Starts the chunk at ss->offset (or SNAP_END after the last). */
static void send_chunk(struct snap_send *ss)
{
	uint64_t left = ss->size - ss->offset;
	uint32_t n = left < ss->chunk_len ? (uint32_t)left : ss->chunk_len;

	if (n == 0) {
		if (tp_send_frame(ss->conn, TF_SNAP_END, NULL, 0) != TRANSPORT_OK) {
			tp_conn_fail(ss->conn, TRANSPORT_EIO);
			return;
		}
		ss->state = SS_WAIT_DONE;
		return;
	}
	ss->read_off = ss->offset;
	ss->read_len = n;
	ss->rwork.data = ss;
	if (uv_queue_work(ss->t->loop, &ss->rwork, read_work, chunk_read) != 0) {
		tp_errorf(ss->t, "cannot queue a snapshot read");
		ss_finish(ss, TRANSPORT_EIO);
		return;
	}
	ss->reading = true;
	ss->t->handles++;
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
		/* A read or write still in flight calls send_chunk when it ends. */
		if (!ss->writing && !ss->reading)
			send_chunk(ss);
		return TRANSPORT_OK;
	}
	if (h->kind == TF_SNAP_DONE && (len == 4 || len == TRANSPORT_SNAP_DONE_MAX)) {
		uint32_t status = tp_get32(p);
		struct transport *t = ss->t;

		if (status == TRANSPORT_ENOSPACE && t->cb.on_snapshot_no_room != NULL) {
			struct transport_no_room r = {.node_id = ss->peer->id,
			                              .group_id = ss->group_id};

			if (len == TRANSPORT_SNAP_DONE_MAX) {
				r.need = tp_get64(p + 4);
				r.free_bytes = tp_get64(p + 12);
				r.min_free = tp_get64(p + 20);
			}
			t->cb.on_snapshot_no_room(t->cb.ctx, &r);
		}

		ss->answered = true;
		ss_finish(ss, status < TRANSPORT_RC_COUNT ? (int)status : TRANSPORT_EPROTO);
		return TRANSPORT_ECLOSED;
	}
	return TRANSPORT_EPROTO;
}

void tp_snap_send_conn_closed(struct conn *c)
{
	struct transport *t = c->t;
	struct snap_send *ss = c->ss;
	uint64_t delay;

	if (ss == NULL)
		return;
	c->ss = NULL;
	ss->conn = NULL;
	if (t->closing || ss->finished)
		return;
	if (++ss->attempts > t->cfg.snapshot_retries) {
		ss_finish(ss, TRANSPORT_EUNREACHABLE);
		return;
	}
	delay = ss->attempts > 32 ? t->cfg.backoff_max_ms
	                          : (uint64_t)t->cfg.backoff_min_ms << (ss->attempts - 1);
	if (delay > t->cfg.backoff_max_ms)
		delay = t->cfg.backoff_max_ms;
	ss->state = SS_RETRY_WAIT;
	uv_timer_start(&ss->retry, ss_retry_fire, delay, 0);
}

void tp_snap_send_peer_removed(struct transport *t, struct peer *p)
{
	for (struct snap_send *ss = t->sends; ss != NULL; ss = ss->next) {
		if (ss->peer != p)
			continue;
		if (ss->conn != NULL) {
			struct conn *c = ss->conn;

			ss->conn = NULL;
			c->ss = NULL;
			tp_conn_close(c);
		}
		/* The dial fails now that p has no address: the stream ends from the timer (or
		 * from the checksum's callback), not inside the caller's call. */
		if (ss->state != SS_CRC) {
			ss->state = SS_RETRY_WAIT;
			uv_timer_start(&ss->retry, ss_retry_fire, 0, 0);
		}
	}
}

void tp_snap_send_shutdown(struct transport *t)
{
	while (t->sends != NULL)
		ss_finish(t->sends, TRANSPORT_ECLOSED);
}
