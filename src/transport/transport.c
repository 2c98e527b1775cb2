/*
 * transport.c - connections, handshake, send queues and message batches.
 * Addresses and dialing are in tp_dial.c, snapshot streaming in
 * tp_snap_send.c and tp_snap_recv.c.
 */
#include "transport/tp_internal.h"

#include "util/crc32c.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEF_QUEUE_MSGS    16384u
#define DEF_QUEUE_BYTES   (32u << 20)
#define DEF_CHUNK         (2u << 20)
#define DEF_BACKOFF_MIN   100u
#define DEF_BACKOFF_MAX   5000u
#define DEF_HS_TIMEOUT    3000u
#define DEF_SNAP_RETRIES  5u
#define DEF_PART_MAX_AGE  (600u * 1000u)
#define DEF_MAX_HS        64u
#define DEF_MAX_HS_ADDR   8u
#define DEF_MAX_SNAP_CONN 4u
#define DEF_IDLE          60000u
#define DEF_KEEPALIVE     10000u
#define DEF_RECV_MEMORY   (256ull << 20)
#define DEF_SNAP_MAX      (1ull << 40)
#define DEF_SNAP_MIN_FREE (256ull << 20)
#define DEF_LOG_LINES     20u
#define DEF_LOG_WINDOW    60000u
/* Decode memory allowed per frame beyond twice its length (protobuf-c structures). */
#define DECODE_SLACK (16u << 20)
/* Largest frame accepted before the handshake completes (HELLO and WELCOME are smaller). */
#define HS_MAX_FRAME 64u

struct ctrl_write {
	uv_write_t req;
	uint8_t data[];
};

void tp_errorf(struct transport *t, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(t->errmsg, sizeof(t->errmsg), fmt, ap);
	va_end(ap);
}

const char *transport_errmsg(const struct transport *t)
{
	return t->errmsg;
}

void tp_log(struct transport *t, int level, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	if (t->cfg.log_fn == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	t->cfg.log_fn(t->cfg.log_ctx, level, line);
}

/* The remote address of c as 16 bytes (IPv4 mapped) into key. */
static void remote_key(const struct conn *c, uint8_t key[16])
{
	const struct sockaddr_storage *ss = &c->addrs[c->addr_idx];

	memset(key, 0, 16);
	if (ss->ss_family == AF_INET) {
		key[10] = key[11] = 0xff;
		memcpy(key + 12, &((const struct sockaddr_in *)ss)->sin_addr, 4);
	} else if (ss->ss_family == AF_INET6) {
		memcpy(key, &((const struct sockaddr_in6 *)ss)->sin6_addr, 16);
	}
}

/* The remote address of c as text. */
static void remote_text(const struct conn *c, char *s, size_t cap)
{
	const struct sockaddr_storage *ss = &c->addrs[c->addr_idx];

	snprintf(s, cap, "?");
	if (ss->ss_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, s, (socklen_t)cap);
	else if (ss->ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, s,
		          (socklen_t)cap);
}

static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* Mask key (from remote_key) to its source prefix: IPv4 /24 or IPv6 /64. */
static void source_prefix(uint8_t key[16])
{
	if (memcmp(key, v4mapped, 12) == 0)
		key[15] = 0;
	else
		memset(key + 8, 0, 8);
}

void tp_log_window(struct transport *t, uint64_t now)
{
	uint64_t len = t->cfg.log_window_ms;

	if (t->log_window != 0 && now - (t->log_window - 1) < len)
		return;
	if (t->log_unsaid > 0)
		tp_log(t, TRANSPORT_LOG_INFO,
		       "dragonraft transport: %llu more refused or failed connections in the last "
		       "%llu s were not logged (at most %u lines, one per source address /24 or "
		       "/64)",
		       (unsigned long long)t->log_unsaid, (unsigned long long)((len + 999) / 1000),
		       t->cfg.log_max_lines);
	t->log_window = now + 1;
	t->log_lines = 0;
	t->log_unsaid = 0;
}

void tp_log_refusal(struct transport *t, const struct conn *c, const char *fmt, ...)
{
	struct tp_log_slot *slot = NULL, *free_slot = NULL;
	uint8_t key[16];
	char addr[64], what[320];
	va_list ap;

	if (t->cfg.log_fn == NULL)
		return;
	tp_log_window(t, uv_now(t->loop));
	remote_key(c, key);
	source_prefix(key);
	for (int i = 0; i < TP_LOG_SLOTS && slot == NULL; i++) {
		if (t->log[i].window != t->log_window)
			free_slot = free_slot != NULL ? free_slot : &t->log[i];
		else if (memcmp(t->log[i].key, key, sizeof(key)) == 0)
			slot = &t->log[i];
	}
	if (slot == NULL && t->log_lines < t->cfg.log_max_lines && free_slot != NULL) {
		slot = free_slot;
		memcpy(slot->key, key, sizeof(key));
		slot->window = t->log_window;
		t->log_lines++;
		remote_text(c, addr, sizeof(addr));
		va_start(ap, fmt);
		vsnprintf(what, sizeof(what), fmt, ap);
		va_end(ap);
		tp_log(t, TRANSPORT_LOG_INFO, "dragonraft transport: %s %s (node %llu): %s",
		       c->client ? "connection to" : "refused connection from", addr,
		       (unsigned long long)c->remote_id, what);
		return;
	}
	t->log_unsaid++;
	t->st.log_lines_suppressed++;
}

/* ---- peers: a hash table by node id ---------------------------------------- */

static uint32_t bucket_of(const struct transport *t, uint64_t id)
{
	return (uint32_t)((id * 0x9e3779b97f4a7c15ull) >> 32) & (t->n_buckets - 1);
}

struct peer *tp_peer_find(const struct transport *t, uint64_t id)
{
	if (t->n_buckets == 0)
		return NULL;
	for (struct peer *p = t->buckets[bucket_of(t, id)]; p != NULL; p = p->next)
		if (p->id == id)
			return p;
	return NULL;
}

struct peer *tp_peer_first(const struct transport *t, uint32_t *i)
{
	for (*i = 0; *i < t->n_buckets; (*i)++)
		if (t->buckets[*i] != NULL)
			return t->buckets[*i];
	return NULL;
}

struct peer *tp_peer_next(const struct transport *t, const struct peer *p, uint32_t *i)
{
	if (p->next != NULL)
		return p->next;
	while (++*i < t->n_buckets)
		if (t->buckets[*i] != NULL)
			return t->buckets[*i];
	return NULL;
}

/* Doubles the table (at least 16 buckets). */
static int peers_grow(struct transport *t)
{
	uint32_t old_n = t->n_buckets, n = old_n ? old_n * 2 : 16;
	struct peer **old = t->buckets, **b = transport_malloc(n * sizeof(*b));

	if (b == NULL)
		return TRANSPORT_ENOMEM;
	memset(b, 0, n * sizeof(*b));
	t->buckets = b;
	t->n_buckets = n;
	for (uint32_t i = 0; i < old_n; i++)
		for (struct peer *p = old[i], *next; p != NULL; p = next) {
			uint32_t k = bucket_of(t, p->id);

			next = p->next;
			p->next = b[k];
			b[k] = p;
		}
	transport_free(old);
	return TRANSPORT_OK;
}

static struct peer *peer_get(struct transport *t, uint64_t id)
{
	struct peer *p = tp_peer_find(t, id);
	uint32_t k;

	if (p != NULL)
		return p;
	if (t->n_peers >= t->n_buckets && peers_grow(t) != TRANSPORT_OK)
		return NULL;
	p = transport_malloc(sizeof(*p));
	if (p == NULL)
		return NULL;
	memset(p, 0, sizeof(*p));
	p->id = id;
	p->backoff_ms = t->cfg.backoff_min_ms;
	k = bucket_of(t, id);
	p->next = t->buckets[k];
	t->buckets[k] = p;
	t->n_peers++;
	return p;
}

/* Drops p's queued messages, counted as dropped (their senders hear "unreachable"). */
static void drop_queue(struct peer *p)
{
	if (p->q_msgs == 0)
		return;
	p->st.msgs_dropped += p->q_msgs;
	p->st.bytes_dropped += p->q.len - TRANSPORT_FRAME_HDR;
	p->q_msgs = 0;
	p->q.len = 0;
	p->q_crc = 0;
}

void tp_report_unreachable(struct transport *t, uint64_t node, uint64_t group)
{
	for (uint32_t i = 0; i < t->n_unreach; i++)
		if (t->unreach[i].node == node &&
		    (t->unreach[i].group == group || t->unreach[i].group == 0))
			return;
	if (t->n_unreach == TP_UNREACH_MAX)
		return;
	t->unreach[t->n_unreach].node = node;
	t->unreach[t->n_unreach].group = group;
	t->n_unreach++;
}

static void deliver_unreachable(struct transport *t)
{
	for (uint32_t i = 0; i < t->n_unreach && !t->closing; i++)
		if (t->cb.on_unreachable != NULL)
			t->cb.on_unreachable(t->cb.ctx, t->unreach[i].node, t->unreach[i].group);
	t->n_unreach = 0;
}

/* ---- connections ---------------------------------------------------------- */

void tp_maybe_finish(struct transport *t)
{
	void (*on_closed)(void *) = t->cb.on_closed;
	void *ctx = t->cb.ctx;

	if (!t->closing || t->handles > 0 || t->conns_open > 0)
		return;
	for (uint32_t i = 0; i < t->n_buckets; i++)
		while (t->buckets[i] != NULL) {
			struct peer *p = t->buckets[i];

			t->buckets[i] = p->next;
			transport_buf_free(&p->q);
			transport_buf_free(&p->wbuf);
			transport_free(p->host);
			transport_free(p);
		}
	transport_free(t->buckets);
	transport_encoder_free(&t->enc);
	tp_tls_free(t);
	transport_free(t->snapshot_dir);
	transport_free(t);
	if (on_closed != NULL)
		on_closed(ctx);
}

void tp_conn_unref(struct conn *c)
{
	struct transport *t = c->t;

	if (--c->handles > 0)
		return;
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		t->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	tp_tls_conn_free(c);
	transport_frame_reader_free(&c->rd);
	transport_arena_free(&c->arena);
	transport_free(c->rbuf);
	transport_free(c);
	t->conns_open--;
	tp_maybe_finish(t);
}

static void conn_handle_closed(uv_handle_t *h)
{
	tp_conn_unref(h->data);
}

struct conn *tp_conn_new(struct transport *t, bool client, uint8_t purpose)
{
	struct conn *c = transport_malloc(sizeof(*c));
	if (c == NULL) {
		tp_errorf(t, "out of memory for a connection");
		return NULL;
	}
	memset(c, 0, sizeof(*c));
	c->t = t;
	c->client = client;
	c->purpose = purpose;
	if (uv_tcp_init(t->loop, &c->tcp) != 0) {
		transport_free(c);
		tp_errorf(t, "uv_tcp_init failed");
		return NULL;
	}
	uv_timer_init(t->loop, &c->timer);
	c->tcp.data = c;
	c->timer.data = c;
	c->handles = 2;
	c->tcp_live = true;
	c->last_active = uv_now(t->loop);
	transport_frame_reader_init(&c->rd, HS_MAX_FRAME);
	c->rd.budget = &t->budget;
	transport_arena_init(&c->arena, DECODE_SLACK);
	c->next = t->conns;
	if (t->conns != NULL)
		t->conns->prev = c;
	t->conns = c;
	t->conns_open++;
	return c;
}

static void count_failure(struct transport *t, int rc)
{
	switch (rc) {
	case TRANSPORT_EMAGIC:
	case TRANSPORT_EVERSION:
		t->st.frames_bad_header++;
		break;
	case TRANSPORT_ETOOBIG:
		t->st.frames_oversize++;
		break;
	case TRANSPORT_ECRC:
		t->st.frames_bad_crc++;
		break;
	case TRANSPORT_EDECODE:
		t->st.decode_errors++;
		break;
	case TRANSPORT_EAUTH:
		t->st.tls_handshake_failures++;
		break;
	case TRANSPORT_ETLS:
		t->st.tls_record_errors++;
		break;
	case TRANSPORT_ENODEID:
		t->st.auth_bad_node_id++;
		break;
	case TRANSPORT_EUNKNOWN:
		t->st.auth_unknown_node++;
		break;
	case TRANSPORT_ENOTLOOPBACK:
		t->st.auth_not_loopback++;
		break;
	case TRANSPORT_ELIMIT:
		t->st.snap_conns_refused++;
		break;
	case TRANSPORT_EBUDGET:
		t->st.frames_over_budget++;
		break;
	case TRANSPORT_ETIMEOUT:
		t->st.handshake_timeouts++;
		break;
	case TRANSPORT_EIDLE:
		t->st.idle_timeouts++;
		break;
	case TRANSPORT_EPROTO:
		t->st.protocol_errors++;
		break;
	default:
		break;
	}
}

void tp_conn_close(struct conn *c)
{
	struct transport *t = c->t;
	struct peer *p = c->peer;
	int was = c->state;

	if (was == CS_CLOSING)
		return;
	c->state = CS_CLOSING;
	if (c->in_hs) {
		c->in_hs = false;
		t->hs_conns--;
	}
	if (!c->client && p != NULL) {
		if (p->in_msg == c)
			p->in_msg = NULL;
		if (c->purpose == TRANSPORT_PURPOSE_SNAP && was == CS_OPEN)
			p->in_snaps--;
	}
	if (c->client && c->purpose == TRANSPORT_PURPOSE_MSG && p != NULL && p->conn == c) {
		p->conn = NULL;
		p->st.connected = false;
		drop_queue(p);
		if (was != CS_OPEN) {
			/* Never got through: wait before the next attempt. */
			uint64_t max = t->cfg.backoff_max_ms;
			p->retry_at = uv_now(t->loop) + p->backoff_ms;
			p->backoff_ms = p->backoff_ms * 2 > max ? max : p->backoff_ms * 2;
		}
		if (!t->closing)
			tp_report_unreachable(t, p->id, 0);
	}
	tp_snap_send_conn_closed(c);
	tp_snap_recv_conn_closed(c);
	if (c->resolving)
		uv_cancel((uv_req_t *)&c->gai); /* on_resolved still runs, with an error */
	if (c->tcp_live) {
		c->tcp_live = false;
		uv_read_stop((uv_stream_t *)&c->tcp);
		uv_close((uv_handle_t *)&c->tcp, conn_handle_closed);
	}
	uv_timer_stop(&c->timer);
	uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
}

void tp_conn_fail(struct conn *c, int rc)
{
	if (c->state == CS_CLOSING)
		return;
	count_failure(c->t, rc);
	tp_errorf(c->t, "connection %s node %llu closed: %s", c->client ? "to" : "from",
	          (unsigned long long)c->remote_id, transport_strerror(rc));
	/* TLS failures were logged with OpenSSL's reason already. */
	if (rc != TRANSPORT_EAUTH && rc != TRANSPORT_ETLS)
		tp_log_refusal(c->t, c, "%s", transport_strerror(rc));
	tp_conn_close(c);
}

static void on_written(struct conn *c, int status);

static void ctrl_written(uv_write_t *req, int status)
{
	on_written(req->data, status); /* a failed write shows up as a read error */
	transport_free(req);
}

static void on_written(struct conn *c, int status)
{
	if (status == 0)
		c->last_active = uv_now(c->t->loop);
}

int tp_conn_write(struct conn *c, uv_write_t *req, const uv_buf_t *bufs, unsigned n, uv_write_cb cb)
{
	if (!c->tcp_live)
		return TRANSPORT_EIO;
	if (c->ssl != NULL)
		return tp_tls_write(c, req, bufs, n, cb, false);
	return uv_write(req, (uv_stream_t *)&c->tcp, bufs, n, cb) != 0 ? TRANSPORT_EIO
	                                                               : TRANSPORT_OK;
}

int tp_conn_write_now(struct conn *c, uv_write_t *req, const uv_buf_t *buf, uv_write_cb cb)
{
	uv_buf_t rest = *buf;
	int r;

	if (!c->tcp_live)
		return TRANSPORT_EIO;
	if (c->ssl != NULL)
		return tp_tls_write(c, req, buf, 1, cb, true);
	/* UV_EAGAIN also while earlier writes are queued: they go first.  An
	 * error is left to uv_write, which reports it as before. */
	r = uv_try_write((uv_stream_t *)&c->tcp, buf, 1);
	if (r > 0) {
		c->last_active = uv_now(c->t->loop);
		if ((size_t)r == buf->len)
			return TP_WRITTEN;
		rest = uv_buf_init(buf->base + r, (unsigned int)(buf->len - (size_t)r));
	}
	return uv_write(req, (uv_stream_t *)&c->tcp, &rest, 1, cb) != 0 ? TRANSPORT_EIO
	                                                                : TRANSPORT_OK;
}

int tp_send_frame(struct conn *c, uint8_t kind, const void *payload, uint32_t len)
{
	struct ctrl_write *w = transport_malloc(sizeof(*w) + TRANSPORT_FRAME_HDR + len);
	uv_buf_t b;
	int rc;

	if (w == NULL)
		return TRANSPORT_ENOMEM;
	if (len > 0)
		memcpy(w->data + TRANSPORT_FRAME_HDR, payload, len);
	transport_frame_header_put(w->data, kind, w->data + TRANSPORT_FRAME_HDR, len);
	b = uv_buf_init((char *)w->data, TRANSPORT_FRAME_HDR + len);
	w->req.data = c;
	rc = tp_conn_write_now(c, &w->req, &b, ctrl_written);
	if (rc == TRANSPORT_OK)
		return rc;
	transport_free(w);
	return rc == TP_WRITTEN ? TRANSPORT_OK : rc;
}

/* ---- sending batches ----------------------------------------------------- */

static void flush_peer(struct peer *p);

static void batch_written(uv_write_t *req, int status)
{
	struct peer *p = req->data;

	p->inflight = false;
	if (!p->has_addr)
		transport_buf_free(&p->wbuf); /* removed while the batch was written */
	if (p->conn != NULL)
		on_written(p->conn, status);
	if (status == 0 && p->conn != NULL)
		flush_peer(p);
}

static void flush_peer(struct peer *p)
{
	struct conn *c = p->conn;
	struct transport_buf tmp;
	uint32_t len;
	uv_buf_t b;
	int rc;

	if (p->inflight || p->q_msgs == 0 || c == NULL || c->state != CS_OPEN)
		return;
	tmp = p->wbuf;
	p->wbuf = p->q;
	p->q = tmp;
	p->q.len = 0;
	len = (uint32_t)(p->wbuf.len - TRANSPORT_FRAME_HDR);
	transport_frame_header_put_crc(p->wbuf.p, TF_BATCH, len, p->q_crc);
	p->q_crc = 0;
	b = uv_buf_init((char *)p->wbuf.p, (unsigned int)p->wbuf.len);
	p->wreq.data = p;
	rc = tp_conn_write_now(c, &p->wreq, &b, batch_written);
	if (rc != TRANSPORT_OK && rc != TP_WRITTEN) {
		p->st.msgs_dropped += p->q_msgs;
		p->st.bytes_dropped += len;
		p->q_msgs = 0;
		tp_conn_fail(c, TRANSPORT_EIO);
		return;
	}
	p->inflight = rc == TRANSPORT_OK; /* else written: the next batch may go at once */
	p->st.msgs_sent += p->q_msgs;
	p->st.bytes_sent += p->wbuf.len;
	p->st.batches_sent++;
	p->q_msgs = 0;
}

void transport_write_queued(struct transport *t)
{
	uint64_t now;
	struct peer *p;

	if (t->closing)
		return;
	now = uv_now(t->loop);
	/* Only peers queued to since the last flush; a peer still waiting for its connection
	 * or for a write is flushed again by that callback. */
	while ((p = t->dirty) != NULL) {
		t->dirty = p->dirty_next;
		p->dirty = false;
		if (p->q_msgs == 0)
			continue;
		if (p->conn == NULL && p->has_addr && now >= p->retry_at)
			tp_dial(t, p, TRANSPORT_PURPOSE_MSG);
		flush_peer(p);
	}
}

void transport_flush(struct transport *t)
{
	if (t->closing)
		return;
	if (t->log_unsaid > 0)
		tp_log_window(t, uv_now(t->loop)); /* the summary of a window that ended */
	transport_write_queued(t);
	deliver_unreachable(t);
}

static void on_prepare(uv_prepare_t *h)
{
	transport_flush(h->data);
}

static void on_check(uv_check_t *h)
{
	transport_flush(h->data);
}

static int drop(struct transport *t, struct peer *p, const struct raft_message *m, int rc)
{
	p->st.msgs_dropped++;
	tp_report_unreachable(t, p->id, m->group_id);
	return rc;
}

int transport_send(struct transport *t, const struct raft_message *m)
{
	struct peer *p;
	size_t before;
	int rc;

	if (t->closing)
		return TRANSPORT_ECLOSED;
	if (m->to == t->cfg.node_id || m->to == 0)
		return TRANSPORT_EINVAL;
	p = tp_peer_find(t, m->to);
	if (p == NULL || !p->has_addr)
		return TRANSPORT_ENOPEER;
	if (p->conn == NULL && uv_now(t->loop) < p->retry_at)
		return drop(t, p, m, TRANSPORT_EUNREACHABLE);
	if (p->q_msgs >= t->cfg.queue_max_msgs)
		return drop(t, p, m, TRANSPORT_EQUEUEFULL);
	if (p->q.len == 0) {
		rc = transport_buf_reserve(&p->q, TRANSPORT_FRAME_HDR);
		if (rc != TRANSPORT_OK)
			return drop(t, p, m, rc);
		p->q.len = TRANSPORT_FRAME_HDR;
	}
	before = p->q.len;
	rc = transport_encode_message(&t->enc, m, &p->q);
	if (rc == TRANSPORT_OK && p->q.len - TRANSPORT_FRAME_HDR > t->cfg.queue_max_bytes)
		rc = TRANSPORT_EQUEUEFULL;
	if (rc != TRANSPORT_OK) {
		if (p->q.len > before)
			p->st.bytes_dropped += p->q.len - before;
		p->q.len = before;
		if (p->q_msgs == 0)
			p->q.len = 0;
		p->q_crc = 0;
		return drop(t, p, m, rc);
	}
	/* Checksum the new bytes while they are in cache (TLS authenticates them instead). */
	if (t->ssl_ctx == NULL)
		p->q_crc = dr_crc32c(p->q_crc, p->q.p + before, p->q.len - before);
	p->q_msgs++;
	if (!p->dirty) {
		p->dirty = true;
		p->dirty_next = t->dirty;
		t->dirty = p;
	}
	if (p->conn == NULL && tp_dial(t, p, TRANSPORT_PURPOSE_MSG) == NULL) {
		drop_queue(p); /* (a connection that failed to start dropped it already) */
		tp_report_unreachable(t, p->id, m->group_id);
		return TRANSPORT_EUNREACHABLE;
	}
	return TRANSPORT_OK;
}

/* ---- receiving ------------------------------------------------------------ */

static int on_batch(struct conn *c, const uint8_t *payload, uint32_t len)
{
	struct transport *t = c->t;
	struct peer *p = c->peer;
	struct raft_message *msgs;
	size_t n, kept = 0;
	int rc;

	p->st.batches_recv++;
	p->st.bytes_recv += len + TRANSPORT_FRAME_HDR;
	/* protobuf-c's structures may outweigh the bytes: bound them per frame. */
	c->arena.limit = 2 * (size_t)len + DECODE_SLACK;
	rc = transport_decode_batch(&c->arena, payload, len, &msgs, &n);
	if (rc != TRANSPORT_OK) {
		/* The frame was intact, so the stream is still in sync: drop only this batch. */
		t->st.decode_errors++;
		p->st.msgs_dropped++;
		p->st.bytes_dropped += len + TRANSPORT_FRAME_HDR;
		tp_errorf(t, "batch from node %llu dropped: %s", (unsigned long long)c->remote_id,
		          transport_strerror(rc));
		transport_arena_reset(&c->arena);
		return TRANSPORT_OK;
	}
	for (size_t i = 0; i < n; i++) {
		if (msgs[i].from != c->remote_id || msgs[i].to != t->cfg.node_id) {
			t->st.msgs_rejected_sender++;
			p->st.msgs_dropped++;
			continue;
		}
		if (!tp_member_ok(t, msgs[i].group_id, msgs[i].from)) {
			p->st.msgs_dropped++;
			continue;
		}
		if (kept != i)
			msgs[kept] = msgs[i];
		kept++;
	}
	p->st.msgs_recv += kept;
	if (kept > 0 && t->cb.on_message_batch != NULL)
		t->cb.on_message_batch(t->cb.ctx, c->remote_id, msgs, kept);
	transport_arena_reset(&c->arena);
	return TRANSPORT_OK;
}

/* c completed its handshake: from now on it carries frames and is watched for idleness. */
static void on_timer(uv_timer_t *h);

static void conn_open(struct conn *c)
{
	struct transport *t = c->t;

	c->state = CS_OPEN;
	c->rd.max_payload = t->cfg.max_frame;
	if (c->in_hs) {
		c->in_hs = false;
		t->hs_conns--;
	}
	c->last_active = uv_now(t->loop);
	uv_timer_start(&c->timer, on_timer, 0, 0); /* arms the idle check (and keepalive) */
}

int tp_send_hello(struct conn *c)
{
	struct transport_hello h = {
	        .client_id = c->t->cfg.node_id, .server_id = c->peer->id, .purpose = c->purpose};
	uint8_t out[TRANSPORT_HELLO_LEN];

	transport_hello_put(out, &h);
	c->state = CS_HELLO_SENT;
	return tp_send_frame(c, TF_HELLO, out, sizeof(out));
}

void tp_handshake_done(struct conn *c)
{
	if (!c->client)
		c->state = CS_WAIT_HELLO;
	else if (tp_send_hello(c) != TRANSPORT_OK)
		tp_conn_fail(c, TRANSPORT_EIO);
}

static int on_hello(struct conn *c, const uint8_t *p, uint32_t len)
{
	struct transport *t = c->t;
	struct transport_hello h;
	uint8_t out[TRANSPORT_WELCOME_LEN];
	struct peer *pr;
	int rc;

	if (transport_hello_get(p, len, &h) != TRANSPORT_OK)
		return TRANSPORT_EPROTO;
	c->remote_id = h.client_id;
	if (h.server_id != t->cfg.node_id || h.client_id == t->cfg.node_id ||
	    (t->security == TRANSPORT_SEC_CERT && h.client_id != c->cert_id))
		return TRANSPORT_ENODEID;
	/* Only members of our groups (or nodes being added) get in. */
	pr = tp_peer_find(t, h.client_id);
	if (pr == NULL || !pr->has_addr)
		return TRANSPORT_EUNKNOWN;
	c->purpose = h.purpose;
	if (h.purpose == TRANSPORT_PURPOSE_SNAP && pr->in_snaps >= t->cfg.max_snapshot_conns)
		return TRANSPORT_ELIMIT;
	tp_put64(out, t->cfg.node_id);
	rc = tp_send_frame(c, TF_WELCOME, out, sizeof(out));
	if (rc != TRANSPORT_OK)
		return rc;
	c->peer = pr;
	if (h.purpose == TRANSPORT_PURPOSE_SNAP) {
		pr->in_snaps++;
	} else {
		/* One live message connection per node: the newer replaces the older. */
		if (pr->in_msg != NULL) {
			t->st.conns_replaced++;
			tp_conn_close(pr->in_msg);
		}
		pr->in_msg = c;
		/* The node is up (it dialled in): a redial of ours that waits out its
		 * back-off goes at the next send, not up to backoff_max_ms later.
		 * Else a node back from a restart heard nothing from us meanwhile: a
		 * follower no heartbeat of its leader, a candidate no vote. */
		if (pr->conn == NULL) {
			pr->retry_at = 0;
			pr->backoff_ms = t->cfg.backoff_min_ms;
		}
	}
	conn_open(c);
	return TRANSPORT_OK;
}

static int on_welcome(struct conn *c, const uint8_t *p, uint32_t len)
{
	struct transport *t = c->t;

	if (len != TRANSPORT_WELCOME_LEN)
		return TRANSPORT_EPROTO;
	if (tp_get64(p) != c->peer->id)
		return TRANSPORT_ENODEID;
	conn_open(c);
	if (c->purpose == TRANSPORT_PURPOSE_MSG) {
		c->peer->backoff_ms = t->cfg.backoff_min_ms;
		c->peer->st.connects++;
		c->peer->st.connected = true;
		flush_peer(c->peer);
	} else {
		tp_snap_client_open(c);
	}
	return TRANSPORT_OK;
}

int tp_on_frame(void *arg, const struct transport_frame_header *h, const uint8_t *p, uint32_t len)
{
	struct conn *c = arg;
	int rc;

	switch (c->state) {
	case CS_WAIT_HELLO:
		rc = h->kind == TF_HELLO ? on_hello(c, p, len) : TRANSPORT_EPROTO;
		break;
	case CS_HELLO_SENT:
		rc = h->kind == TF_WELCOME ? on_welcome(c, p, len) : TRANSPORT_EPROTO;
		break;
	case CS_OPEN:
		if (c->client)
			rc = c->purpose == TRANSPORT_PURPOSE_SNAP
			             ? tp_snap_client_frame(c, h, p, len)
			             : TRANSPORT_EPROTO;
		else if (c->purpose == TRANSPORT_PURPOSE_MSG)
			rc = h->kind == TF_BATCH ? on_batch(c, p, len) : TRANSPORT_EPROTO;
		else
			rc = tp_snap_server_frame(c, h, p, len);
		break;
	case CS_CLOSING:
		rc = TRANSPORT_ECLOSED;
		break;
	default:
		rc = TRANSPORT_EPROTO;
		break;
	}
	if (rc == TRANSPORT_OK && c->state == CS_CLOSING)
		rc = TRANSPORT_ECLOSED;
	return rc;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct conn *c = h->data;
	uint8_t *p;
	size_t n = c->ssl != NULL ? 0 : transport_frame_reader_direct(&c->rd, &p);

	(void)suggested;
	if (n >= TP_READ_BUF) {
		/*
		 * Large payload in progress: read straight into the frame buffer, in
		 * pieces small enough that the reader's CRC finds them in cache.
		 */
		*buf = uv_buf_init((char *)p, n > TP_DIRECT_MAX ? TP_DIRECT_MAX : (unsigned int)n);
		return;
	}
	if (c->rbuf == NULL)
		c->rbuf = transport_malloc(TP_READ_BUF);
	*buf = uv_buf_init((char *)c->rbuf, c->rbuf != NULL ? TP_READ_BUF : 0);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct conn *c = s->data;
	int rc;

	if (nread == 0 || c->state == CS_CLOSING)
		return;
	if (nread < 0) {
		if (nread == UV_ENOBUFS)
			tp_conn_fail(c, TRANSPORT_ENOMEM);
		else
			tp_conn_close(c);
		return;
	}
	c->last_active = uv_now(c->t->loop);
	if (c->ssl != NULL)
		rc = tp_tls_read(c, c->rbuf, (size_t)nread);
	else if ((uint8_t *)buf->base == c->rbuf)
		rc = transport_frame_reader_feed(&c->rd, c->rbuf, (size_t)nread, tp_on_frame, c);
	else
		rc = transport_frame_reader_commit(&c->rd, (size_t)nread, tp_on_frame, c);
	if (rc != TRANSPORT_OK && rc != TRANSPORT_ECLOSED)
		tp_conn_fail(c, rc);
	else if (rc == TRANSPORT_ECLOSED)
		tp_conn_close(c);
}

/*
 * The handshake deadline before the connection opens; after, the idle check
 * and, on an outgoing message connection, a keepalive: an empty batch once
 * nothing was written for a third of the idle timeout.  A node with nothing
 * to say (its groups quiescent) so keeps its connections, the receiver's
 * idle timeout closes only those of peers that went silent, and a peer that
 * died is noticed (a reset, or TCP_USER_TIMEOUT on the unacknowledged
 * keepalive) and reported unreachable.
 */
static void on_timer(uv_timer_t *h)
{
	struct conn *c = h->data;
	uint64_t now = uv_now(c->t->loop), idle = c->t->cfg.idle_timeout_ms, next;

	if (c->state != CS_OPEN) {
		tp_conn_fail(c, TRANSPORT_ETIMEOUT);
		return;
	}
	if (c->paused)
		c->last_active = now; /* waiting for our own disk, not for the peer */
	if (now - c->last_active >= idle) {
		tp_conn_fail(c, TRANSPORT_EIDLE);
		return;
	}
	next = c->last_active + idle - now;
	if (c->client && c->purpose == TRANSPORT_PURPOSE_MSG) {
		uint64_t ka = idle / 3 > 0 ? idle / 3 : 1;

		if (now - c->last_active < ka) {
			next = c->last_active + ka - now;
		} else {
			next = ka;
			if (!c->peer->inflight &&
			    tp_send_frame(c, TF_BATCH, NULL, 0) != TRANSPORT_OK) {
				tp_conn_fail(c, TRANSPORT_EIO);
				return;
			}
			c->peer->st.keepalives_sent++;
		}
	}
	uv_timer_start(&c->timer, on_timer, next, 0);
}

void tp_conn_arm_deadline(struct conn *c)
{
	uv_timer_start(&c->timer, on_timer, c->t->cfg.handshake_timeout_ms, 0);
}

void tp_conn_tune(struct conn *c)
{
	const struct transport_config *cfg = &c->t->cfg;
	unsigned idle_s = cfg->keepalive_ms < 1000 ? 1 : cfg->keepalive_ms / 1000;
	int intvl = idle_s / 3 > 0 ? (int)(idle_s / 3) : 1, cnt = 3;
	unsigned int user_timeout = 3 * cfg->keepalive_ms;
	uv_os_fd_t fd;

	uv_tcp_nodelay(&c->tcp, 1);
	uv_tcp_keepalive(&c->tcp, 1, idle_s);
	if (uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0)
		return;
	/* Dead peers are noticed within keepalive_ms + 3 probes, unacknowledged data within
	 * TCP_USER_TIMEOUT; the idle timeout covers peers that are alive but silent. */
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
	setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout, sizeof(user_timeout));
}

int tp_conn_start_reading(struct conn *c)
{
	return uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0 ? TRANSPORT_EIO
	                                                                     : TRANSPORT_OK;
}

void tp_conn_read(struct conn *c, bool on)
{
	if (!c->tcp_live || c->state == CS_CLOSING || c->paused == !on)
		return;
	c->paused = !on;
	if (!on)
		uv_read_stop((uv_stream_t *)&c->tcp);
	else if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0)
		tp_conn_fail(c, TRANSPORT_EIO);
}

/* Whether a and b are one source for the handshake limits: one IPv4 address or IPv6 /64. */
static bool same_source(const uint8_t a[16], const uint8_t b[16])
{
	if (memcmp(a, v4mapped, 12) == 0)
		return memcmp(a, b, 16) == 0;
	return memcmp(a, b, 8) == 0;
}

/* Whether one more connection in the handshake from c's address is allowed (counted). */
static bool admit(struct transport *t, struct conn *c)
{
	uint8_t key[16], other[16];
	uint32_t same = 0;

	if (t->hs_conns >= t->cfg.max_handshakes) {
		t->st.conns_refused_limit++;
		tp_log_refusal(t, c, "%u connections are in the handshake already", t->hs_conns);
		return false;
	}
	remote_key(c, key);
	for (struct conn *o = t->conns; o != NULL; o = o->next) {
		if (!o->in_hs)
			continue;
		remote_key(o, other);
		if (same_source(key, other))
			same++;
	}
	if (same >= t->cfg.max_handshakes_per_addr) {
		t->st.conns_refused_per_addr++;
		tp_log_refusal(t, c,
		               "%u connections from this address are in the handshake already",
		               same);
		return false;
	}
	return true;
}

static void on_connection(uv_stream_t *server, int status)
{
	struct transport *t = server->data;
	int sslen = sizeof(struct sockaddr_storage);
	struct conn *c;
	int rc;

	if (status != 0 || t->closing)
		return;
	c = tp_conn_new(t, false, 0);
	if (c == NULL)
		return;
	if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 ||
	    uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&c->addrs[0], &sslen) != 0) {
		tp_conn_close(c);
		return;
	}
	t->st.conns_accepted++;
	if (!admit(t, c)) {
		tp_conn_close(c); /* the descriptor is released at once */
		return;
	}
	if (t->security == TRANSPORT_SEC_NONE && !tp_is_loopback(&c->addrs[0])) {
		tp_conn_fail(c, TRANSPORT_ENOTLOOPBACK);
		return;
	}
	c->in_hs = true;
	t->hs_conns++;
	tp_conn_tune(c);
	tp_conn_arm_deadline(c);
	c->state = CS_WAIT_HELLO;
	rc = t->ssl_ctx != NULL ? tp_tls_start(c) : TRANSPORT_OK;
	if (rc == TRANSPORT_OK)
		rc = tp_conn_start_reading(c);
	if (rc != TRANSPORT_OK)
		tp_conn_fail(c, rc);
}

/* ---- lifecycle ------------------------------------------------------------ */

static void handle_closed(uv_handle_t *h)
{
	struct transport *t = h->data;

	t->handles--;
	tp_maybe_finish(t);
}

static int start_listening(struct transport *t, const char *addr)
{
	struct sockaddr_storage ss;
	int rc = tp_parse_listen_addr(addr, &ss);

	if (rc != TRANSPORT_OK) {
		tp_errorf(t, "bad listen address \"%s\"", addr);
		return rc;
	}
	uv_tcp_init(t->loop, &t->listener);
	t->listener.data = t;
	t->handles++;
	t->listening = true;
	rc = uv_tcp_bind(&t->listener, (const struct sockaddr *)&ss, 0);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&t->listener, 128, on_connection);
	if (rc != 0) {
		tp_errorf(t, "cannot listen on %s: %s", addr, uv_strerror(rc));
		return TRANSPORT_EIO;
	}
	tp_set_local_addr(t, &ss);
	return TRANSPORT_OK;
}

static void apply_defaults(struct transport_config *c)
{
	if (c->max_frame == 0)
		c->max_frame = TRANSPORT_DEFAULT_MAX_FRAME;
	if (c->queue_max_msgs == 0)
		c->queue_max_msgs = DEF_QUEUE_MSGS;
	if (c->queue_max_bytes == 0)
		c->queue_max_bytes = DEF_QUEUE_BYTES;
	if (c->queue_max_bytes > c->max_frame)
		c->queue_max_bytes = c->max_frame;
	if (c->snapshot_chunk == 0)
		c->snapshot_chunk = DEF_CHUNK;
	if (c->snapshot_chunk > c->max_frame)
		c->snapshot_chunk = c->max_frame;
	if (c->backoff_min_ms == 0)
		c->backoff_min_ms = DEF_BACKOFF_MIN;
	if (c->backoff_max_ms < c->backoff_min_ms)
		c->backoff_max_ms =
		        c->backoff_min_ms > DEF_BACKOFF_MAX ? c->backoff_min_ms : DEF_BACKOFF_MAX;
	if (c->handshake_timeout_ms == 0)
		c->handshake_timeout_ms = DEF_HS_TIMEOUT;
	if (c->snapshot_retries == 0)
		c->snapshot_retries = DEF_SNAP_RETRIES;
	if (c->snapshot_part_max_age_ms == 0)
		c->snapshot_part_max_age_ms = DEF_PART_MAX_AGE;
	if (c->max_handshakes == 0)
		c->max_handshakes = DEF_MAX_HS;
	if (c->max_handshakes_per_addr == 0)
		c->max_handshakes_per_addr = DEF_MAX_HS_ADDR;
	if (c->max_snapshot_conns == 0)
		c->max_snapshot_conns = DEF_MAX_SNAP_CONN;
	if (c->idle_timeout_ms == 0)
		c->idle_timeout_ms = DEF_IDLE;
	if (c->keepalive_ms == 0)
		c->keepalive_ms = DEF_KEEPALIVE;
	if (c->recv_memory_max == 0)
		c->recv_memory_max = DEF_RECV_MEMORY;
	if (c->recv_memory_max < 2ull * c->max_frame)
		c->recv_memory_max = 2ull * c->max_frame;
	if (c->snapshot_max_bytes == 0)
		c->snapshot_max_bytes = DEF_SNAP_MAX;
	if (c->snapshot_min_free_bytes == 0)
		c->snapshot_min_free_bytes = DEF_SNAP_MIN_FREE;
	if (c->log_max_lines == 0)
		c->log_max_lines = DEF_LOG_LINES;
	if (c->log_max_lines > TP_LOG_SLOTS)
		c->log_max_lines = TP_LOG_SLOTS;
	if (c->log_window_ms == 0)
		c->log_window_ms = DEF_LOG_WINDOW;
}

int transport_create(uv_loop_t *loop, const struct transport_config *cfg,
                     const struct transport_callbacks *cb, struct transport **out)
{
	struct transport *t;
	const char *dir;
	int rc;

	*out = NULL;
	if (loop == NULL || cfg == NULL || cfg->node_id == 0)
		return TRANSPORT_EINVAL;
	t = transport_malloc(sizeof(*t));
	if (t == NULL)
		return TRANSPORT_ENOMEM;
	memset(t, 0, sizeof(*t));
	t->loop = loop;
	t->cfg = *cfg;
	apply_defaults(&t->cfg);
	if (cb != NULL)
		t->cb = *cb;
	dir = cfg->snapshot_dir != NULL ? cfg->snapshot_dir : ".";
	t->snapshot_dir = transport_malloc(strlen(dir) + 1);
	rc = TRANSPORT_ENOMEM;
	if (t->snapshot_dir == NULL)
		goto err_free_t;
	strcpy(t->snapshot_dir, dir);
	t->cfg.snapshot_dir = t->snapshot_dir;
	if (strlen(dir) > TRANSPORT_SNAPSHOT_DIR_MAX) {
		/* A stream's file name would be cut short (its .part and .snap one file). */
		tp_log(t, TRANSPORT_LOG_ERROR,
		       "dragonraft transport: the snapshot directory's path is %zu bytes long, "
		       "more than %d",
		       strlen(dir), TRANSPORT_SNAPSHOT_DIR_MAX);
		rc = TRANSPORT_EINVAL;
		goto err_free_dir;
	}
	t->budget.limit = t->cfg.recv_memory_max;
	rc = tp_tls_setup(t);
	if (rc != TRANSPORT_OK) {
		tp_log(t, TRANSPORT_LOG_ERROR, "dragonraft transport: %s", t->errmsg);
		goto err_free_dir;
	}
	/* The file names are not kept: nothing below reads them after setup. */
	t->cfg.secret = NULL;
	t->cfg.tls_cert_file = t->cfg.tls_key_file = t->cfg.tls_ca_file = t->cfg.tls_crl_file =
	        NULL;
	t->cfg.listen_addr = NULL;
	if (t->security == TRANSPORT_SEC_NONE)
		tp_log(t, TRANSPORT_LOG_WARNING,
		       "dragonraft transport: no certificates and no cluster secret are "
		       "configured: "
		       "only peers on loopback are accepted, and every local user of this host can "
		       "act as a peer");
	uv_prepare_init(loop, &t->prepare);
	uv_check_init(loop, &t->check);
	t->prepare.data = t;
	t->check.data = t;
	t->handles += 2;
	uv_prepare_start(&t->prepare, on_prepare);
	uv_check_start(&t->check, on_check);
	/* These handles must not keep uv_run(UV_RUN_DEFAULT) alive on their own. */
	uv_unref((uv_handle_t *)&t->prepare);
	uv_unref((uv_handle_t *)&t->check);
	tp_snap_start(t);
	if (cfg->listen_addr != NULL) {
		rc = start_listening(t, cfg->listen_addr);
		if (rc != TRANSPORT_OK) {
			/* Handles exist now: they are released as the loop runs, with no callback.
			 */
			tp_log(t, TRANSPORT_LOG_ERROR, "dragonraft transport: %s", t->errmsg);
			memset(&t->cb, 0, sizeof(t->cb));
			t->cfg.log_fn = NULL;
			transport_close(t);
			return rc;
		}
	}
	*out = t;
	return TRANSPORT_OK;

err_free_dir:
	transport_free(t->snapshot_dir);
err_free_t:
	transport_free(t);
	return rc;
}

int transport_security(const struct transport *t)
{
	return t->security;
}

int transport_listen_port(const struct transport *t)
{
	struct sockaddr_storage ss;
	int len = sizeof(ss);

	if (!t->listening || uv_tcp_getsockname(&t->listener, (struct sockaddr *)&ss, &len) != 0)
		return -1;
	if (ss.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&ss)->sin_port);
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return -1;
}

int transport_add_peer(struct transport *t, uint64_t node_id, const char *addr)
{
	struct sockaddr_storage ss;
	char host[256], *name = NULL;
	uint16_t port = 0;
	struct peer *p;
	bool changed;

	if (t->closing)
		return TRANSPORT_ECLOSED;
	if (node_id == 0 || node_id == t->cfg.node_id ||
	    tp_split_addr(addr, host, sizeof(host), &port) != TRANSPORT_OK || port == 0) {
		tp_errorf(t, "bad peer %llu address \"%s\"", (unsigned long long)node_id,
		          addr != NULL ? addr : "(null)");
		return TRANSPORT_EINVAL;
	}
	if (!tp_numeric_addr(host, port, &ss)) {
		if (addr[0] == '[') {
			tp_errorf(t, "bad peer %llu address \"%s\"", (unsigned long long)node_id,
			          addr);
			return TRANSPORT_EINVAL;
		}
		name = transport_malloc(strlen(host) + 1);
		if (name == NULL)
			return TRANSPORT_ENOMEM;
		strcpy(name, host);
	}
	p = peer_get(t, node_id);
	if (p == NULL) {
		transport_free(name);
		return TRANSPORT_ENOMEM;
	}
	if (name != NULL)
		changed = p->host == NULL || strcmp(p->host, name) != 0 || p->port != port;
	else
		changed = p->host != NULL || memcmp(&p->addr, &ss, sizeof(ss)) != 0;
	if (p->has_addr && changed && p->conn != NULL)
		tp_conn_close(p->conn);
	transport_free(p->host);
	p->host = name;
	p->port = port;
	if (name == NULL)
		p->addr = ss;
	p->has_addr = true;
	p->retry_at = 0;
	p->backoff_ms = t->cfg.backoff_min_ms;
	return TRANSPORT_OK;
}

int transport_remove_peer(struct transport *t, uint64_t node_id)
{
	struct peer *p = tp_peer_find(t, node_id);

	if (t->closing)
		return TRANSPORT_ECLOSED;
	if (p == NULL || !p->has_addr)
		return TRANSPORT_ENOPEER;
	/*
	 * The struct stays (connections closing, a batch write and snapshot
	 * streams still point to it) but without an address it is no peer: it
	 * is not dialed, its HELLO is refused, sends to it fail.
	 */
	p->has_addr = false;
	transport_free(p->host);
	p->host = NULL;
	tp_snap_send_peer_removed(t, p); /* first: their connections close without a retry */
	for (struct conn *c = t->conns; c != NULL; c = c->next)
		if (c->peer == p)
			tp_conn_close(c);
	drop_queue(p);
	transport_buf_free(&p->q);
	if (!p->inflight)
		transport_buf_free(&p->wbuf); /* else batch_written frees it */
	return TRANSPORT_OK;
}

int transport_peer_stats(const struct transport *t, uint64_t node_id,
                         struct transport_peer_stats *out)
{
	const struct peer *p = tp_peer_find(t, node_id);

	memset(out, 0, sizeof(*out));
	if (p == NULL || !p->has_addr)
		return TRANSPORT_ENOPEER;
	*out = p->st;
	out->queued_msgs = p->q_msgs;
	out->queued_bytes = p->q_msgs > 0 ? p->q.len - TRANSPORT_FRAME_HDR : 0;
	return TRANSPORT_OK;
}

void transport_set_snapshot_min_free(struct transport *t, uint64_t bytes)
{
	t->cfg.snapshot_min_free_bytes = bytes;
}

void transport_stats(const struct transport *t, struct transport_stats *out)
{
	*out = t->st;
	out->recv_memory = t->budget.used;
}

void transport_close(struct transport *t)
{
	if (t->closing)
		return;
	t->closing = true;
	tp_snap_send_shutdown(t);
	tp_snap_recv_shutdown(t);
	for (struct conn *c = t->conns; c != NULL; c = c->next)
		tp_conn_close(c);
	if (t->listening)
		uv_close((uv_handle_t *)&t->listener, handle_closed);
	uv_close((uv_handle_t *)&t->prepare, handle_closed);
	uv_close((uv_handle_t *)&t->check, handle_closed);
}

void transport_break_snapshot_conns(struct transport *t)
{
	for (struct conn *c = t->conns; c != NULL; c = c->next)
		if (c->purpose == TRANSPORT_PURPOSE_SNAP)
			tp_conn_close(c);
}
