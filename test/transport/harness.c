/*
 * harness.c - see harness.h.
 */
#include "harness.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "transport/auth.h"
#include "transport/frame.h"

uint64_t th_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void tick(uv_timer_t *h)
{
	(void)h;
}

bool th_run_until(uv_loop_t *loop, bool (*cond)(void *arg), void *arg, uint64_t timeout_ms)
{
	uint64_t deadline = th_now_ms() + timeout_ms;
	uv_timer_t timer;
	bool ok;

	/* A short repeating timer bounds each loop turn, so cond is re-checked. */
	uv_timer_init(loop, &timer);
	uv_timer_start(&timer, tick, 2, 2);
	while (!(ok = cond(arg)) && th_now_ms() < deadline)
		uv_run(loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&timer, NULL);
	uv_run(loop, UV_RUN_NOWAIT);
	return ok;
}

static bool never(void *arg)
{
	(void)arg;
	return false;
}

void th_run_for(uv_loop_t *loop, uint64_t ms)
{
	th_run_until(loop, never, NULL, ms);
}

static void on_batch(void *ctx, uint64_t from, const struct raft_message *msgs, size_t n)
{
	struct th_node *nd = ctx;
	uint64_t now = th_now_ms();

	(void)from;
	nd->batches++;
	if (nd->gap_watch && nd->last_msg_ms != 0 && now - nd->last_msg_ms > nd->max_gap_ms)
		nd->max_gap_ms = now - nd->last_msg_ms;
	nd->last_msg_ms = now;
	for (size_t i = 0; i < n; i++) {
		const struct raft_message *m = &msgs[i];

		if (m->context != nd->last_context + 1)
			nd->order_errors++;
		nd->last_context = m->context;
		nd->per_group[m->group_id % 16]++;
		for (uint32_t k = 0; k < m->n_entries; k++) {
			uint8_t want[256];
			const struct raft_entry *e = &m->entries[k];
			size_t len = e->len < sizeof(want) ? e->len : sizeof(want);

			th_fill_pattern(want, len, e->index);
			if (memcmp(want, e->data, len) != 0)
				nd->entry_errors++;
		}
	}
	nd->msgs += n;
}

static void on_unreachable(void *ctx, uint64_t node, uint64_t group)
{
	struct th_node *nd = ctx;

	(void)node;
	(void)group;
	nd->unreachable++;
}

static bool on_member(void *ctx, uint64_t group, uint64_t from)
{
	struct th_node *nd = ctx;

	(void)from;
	return nd->reject_group == 0 || group != nd->reject_group;
}

static void on_snap_sent(void *ctx, uint64_t to, uint64_t group, raft_index index, int status)
{
	struct th_node *nd = ctx;

	(void)to;
	(void)group;
	(void)index;
	nd->snap_sent_status = status;
}

static void on_snap_received(void *ctx, uint64_t from, uint64_t group,
                             const struct raft_snapshot_meta *meta, const char *path)
{
	struct th_node *nd = ctx;

	(void)from;
	(void)group;
	nd->snap_received++;
	nd->snap_meta = *meta;
	snprintf(nd->snap_path, sizeof(nd->snap_path), "%s", path);
}

static void on_closed(void *ctx)
{
	struct th_node *nd = ctx;

	nd->closed = true;
}

int th_node_start(struct th_node *n, uv_loop_t *loop, uint64_t id, int port, const char *secret,
                  const struct transport_config *extra)
{
	struct transport_config cfg;
	struct transport_callbacks cb = {
	        .ctx = n,
	        .on_message_batch = on_batch,
	        .on_unreachable = on_unreachable,
	        .on_snapshot_received = on_snap_received,
	        .on_snapshot_sent = on_snap_sent,
	        .membership_check = on_member,
	        .on_closed = on_closed,
	};
	char addr[64];
	int rc;

	memset(n, 0, sizeof(*n));
	n->loop = loop;
	n->id = id;
	n->snap_sent_status = -1;
	if (extra != NULL)
		cfg = *extra;
	else
		memset(&cfg, 0, sizeof(cfg));
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	cfg.node_id = id;
	cfg.listen_addr = addr;
	if (secret != NULL) {
		cfg.secret = (const uint8_t *)secret;
		cfg.secret_len = strlen(secret);
	}
	if (cfg.backoff_min_ms == 0)
		cfg.backoff_min_ms = 10;
	if (cfg.backoff_max_ms == 0)
		cfg.backoff_max_ms = 100;
	rc = transport_create(loop, &cfg, &cb, &n->t);
	if (rc != TRANSPORT_OK)
		return rc;
	n->port = transport_listen_port(n->t);
	return TRANSPORT_OK;
}

static bool node_closed(void *arg)
{
	return ((struct th_node *)arg)->closed;
}

void th_node_stop(struct th_node *n)
{
	if (n->t == NULL)
		return;
	transport_close(n->t);
	th_run_until(n->loop, node_closed, n, 5000);
	n->t = NULL;
}

void th_fill_pattern(uint8_t *p, size_t len, uint64_t seed)
{
	for (size_t k = 0; k < len; k++)
		p[k] = (uint8_t)(seed + k * 31);
}

int th_raw_connect(int port)
{
	struct sockaddr_in sin;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int one = 1;

	if (fd < 0)
		return -1;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0) {
		close(fd);
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

static int write_all(int fd, const void *p, size_t n)
{
	const uint8_t *b = p;

	while (n > 0) {
		ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

int th_raw_send_frame(int fd, uint8_t kind, const void *payload, uint32_t len, bool bad_crc)
{
	uint8_t hdr[TRANSPORT_FRAME_HDR];

	transport_frame_header_put(hdr, kind, payload, len);
	if (bad_crc)
		hdr[15] ^= 0x5a;
	if (write_all(fd, hdr, sizeof(hdr)) != 0)
		return -1;
	return len > 0 ? write_all(fd, payload, len) : 0;
}

/* Non-blocking read of exactly n bytes while the loop runs. */
static int read_exact(uv_loop_t *loop, int fd, uint8_t *p, size_t n, uint64_t deadline)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = recv(fd, p + got, n - got, MSG_DONTWAIT);
		if (r == 0)
			return 0;
		if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			return 0;
		if (r > 0) {
			got += (size_t)r;
			continue;
		}
		if (th_now_ms() > deadline)
			return -1;
		uv_run(loop, UV_RUN_NOWAIT);
	}
	return 1;
}

int th_raw_recv_frame(uv_loop_t *loop, int fd, uint8_t *payload, uint32_t cap, uint32_t *len,
                      uint64_t timeout_ms)
{
	uint64_t deadline = th_now_ms() + timeout_ms;
	uint8_t hdr[TRANSPORT_FRAME_HDR];
	struct transport_frame_header h;
	int rc = read_exact(loop, fd, hdr, sizeof(hdr), deadline);

	if (rc <= 0)
		return rc;
	if (transport_frame_header_check(hdr, cap, &h) != TRANSPORT_OK)
		return -1;
	rc = read_exact(loop, fd, payload, h.len, deadline);
	if (rc <= 0)
		return rc;
	if (transport_frame_crc_check(hdr, payload, h.len) != TRANSPORT_OK)
		return -1;
	*len = h.len;
	return h.kind;
}

bool th_raw_wait_closed(uv_loop_t *loop, int fd, uint64_t timeout_ms)
{
	uint64_t deadline = th_now_ms() + timeout_ms;
	uint8_t b[4096];

	for (;;) {
		ssize_t r = recv(fd, b, sizeof(b), MSG_DONTWAIT);
		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
			return true;
		if (r > 0)
			continue;
		if (th_now_ms() > deadline)
			return false;
		uv_run(loop, UV_RUN_NOWAIT);
	}
}

static int handshake(uv_loop_t *loop, int fd, uint64_t client_id, uint64_t server_id,
                     const char *secret, uint8_t purpose, uint8_t *hello, uint8_t *auth)
{
	struct transport_hello h = {
	        .client_id = client_id, .server_id = server_id, .purpose = purpose};
	uint8_t out[TRANSPORT_HELLO_LEN], in[256], proof[TRANSPORT_PROOF_LEN];
	size_t slen = secret != NULL ? strlen(secret) : 0;
	uint32_t len;

	transport_random(h.nonce, sizeof(h.nonce));
	transport_hello_put(out, &h);
	if (hello != NULL)
		memcpy(hello, out, sizeof(out));
	if (th_raw_send_frame(fd, TF_HELLO, out, sizeof(out), false) != 0)
		return -1;
	if (th_raw_recv_frame(loop, fd, in, sizeof(in), &len, 5000) != TF_CHALLENGE ||
	    len != TRANSPORT_CHALLENGE_LEN)
		return -1;
	if (transport_auth_verify((const uint8_t *)secret, slen, 'S', client_id, server_id, h.nonce,
	                          in + 8, in + 8 + TRANSPORT_NONCE_LEN) != TRANSPORT_OK)
		return -1;
	transport_auth_proof((const uint8_t *)secret, slen, 'C', client_id, server_id, h.nonce,
	                     in + 8, proof);
	if (auth != NULL)
		memcpy(auth, proof, sizeof(proof));
	return th_raw_send_frame(fd, TF_AUTH, proof, sizeof(proof), false);
}

int th_raw_handshake(uv_loop_t *loop, int fd, uint64_t client_id, uint64_t server_id,
                     const char *secret, uint8_t *hello, uint8_t *auth)
{
	return handshake(loop, fd, client_id, server_id, secret, TRANSPORT_PURPOSE_MSG, hello,
	                 auth);
}

int th_raw_handshake_purpose(uv_loop_t *loop, int fd, uint64_t client_id, uint64_t server_id,
                             const char *secret, uint8_t purpose)
{
	return handshake(loop, fd, client_id, server_id, secret, purpose, NULL, NULL);
}

int th_pair_start(struct th_pair *p, const char *secret_a, const char *secret_b,
                  const struct transport_config *extra)
{
	char addr[64];
	int rc;

	uv_loop_init(&p->loop);
	rc = th_node_start(&p->a, &p->loop, 1, 0, secret_a, extra);
	if (rc == TRANSPORT_OK)
		rc = th_node_start(&p->b, &p->loop, 2, 0, secret_b, extra);
	if (rc != TRANSPORT_OK)
		return rc;
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", p->b.port);
	rc = transport_add_peer(p->a.t, 2, addr);
	if (rc != TRANSPORT_OK)
		return rc;
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", p->a.port);
	return transport_add_peer(p->b.t, 1, addr);
}

bool th_pair_stop(struct th_pair *p)
{
	th_node_stop(&p->a);
	th_node_stop(&p->b);
	uv_run(&p->loop, UV_RUN_NOWAIT);
	return uv_loop_close(&p->loop) == 0;
}

struct raft_message th_heartbeat(uint64_t from, uint64_t to, uint64_t group, uint64_t ctx)
{
	struct raft_message m = {.type = RAFT_MSG_HEARTBEAT,
	                         .group_id = group,
	                         .from = from,
	                         .to = to,
	                         .term = 1,
	                         .commit = ctx,
	                         .context = ctx};
	return m;
}

void th_remove_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char path[600];

	while (d != NULL && (de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (unlink(path) != 0)
			rmdir(path);
	}
	if (d != NULL)
		closedir(d);
	rmdir(dir);
}

/* ---- thread-pool blocker ------------------------------------------------- */

#define POOL_MAX 1024 /* libuv's largest pool */

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int running, done, n;
	bool released;
	uv_work_t works[POOL_MAX];
} pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, false, {{0}}};

static void block_work(uv_work_t *w)
{
	(void)w;
	pthread_mutex_lock(&pool.mu);
	pool.running++;
	pthread_cond_broadcast(&pool.cv);
	while (!pool.released)
		pthread_cond_wait(&pool.cv, &pool.mu);
	pthread_mutex_unlock(&pool.mu);
}

static void block_done(uv_work_t *w, int status)
{
	(void)w;
	(void)status;
	pool.done++;
}

bool th_pool_block(uv_loop_t *loop)
{
	const char *env = getenv("UV_THREADPOOL_SIZE");
	int n = env != NULL ? atoi(env) : 4;
	struct timespec deadline;
	bool ok = true;

	if (n <= 0)
		n = 1;
	if (n > POOL_MAX)
		n = POOL_MAX;
	pool.running = 0;
	pool.done = 0;
	pool.released = false;
	pool.n = n;
	for (int i = 0; i < n; i++)
		if (uv_queue_work(loop, &pool.works[i], block_work, block_done) != 0)
			return false;
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += 10;
	pthread_mutex_lock(&pool.mu);
	while (pool.running < n && ok)
		ok = pthread_cond_timedwait(&pool.cv, &pool.mu, &deadline) == 0;
	ok = pool.running >= n;
	pthread_mutex_unlock(&pool.mu);
	return ok;
}

static bool pool_drained(void *arg)
{
	(void)arg;
	return pool.done >= pool.n;
}

void th_pool_unblock(void)
{
	pthread_mutex_lock(&pool.mu);
	pool.released = true;
	pthread_cond_broadcast(&pool.cv);
	pthread_mutex_unlock(&pool.mu);
}

void th_pool_release(uv_loop_t *loop)
{
	th_pool_unblock();
	th_run_until(loop, pool_drained, NULL, 10000);
}

bool th_got_msgs(void *arg)
{
	struct th_want *w = arg;
	return w->n->msgs >= w->msgs;
}
