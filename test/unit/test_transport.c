/*
 * test_transport.c - loopback tests of the transport in one process: order
 * and volume, peer restart, every handshake and framing rejection, the
 * membership filter, and a 100 MiB snapshot streamed beside heartbeats.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "../transport/harness.h"
#include "transport/auth.h"
#include "transport/codec.h"
#include "util/crc32c.h"
#include "transport/frame.h"

#define SECRET "correct horse battery staple"

struct pair {
	uv_loop_t loop;
	struct th_node a, b; /* node 1 and node 2 */
};

static void pair_start(struct pair *p, const char *secret_a, const char *secret_b)
{
	char addr[64];

	uv_loop_init(&p->loop);
	assert_int_equal(th_node_start(&p->a, &p->loop, 1, 0, secret_a, NULL), 0);
	assert_int_equal(th_node_start(&p->b, &p->loop, 2, 0, secret_b, NULL), 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", p->b.port);
	assert_int_equal(transport_add_peer(p->a.t, 2, addr), 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", p->a.port);
	assert_int_equal(transport_add_peer(p->b.t, 1, addr), 0);
}

static void pair_stop(struct pair *p)
{
	th_node_stop(&p->a);
	th_node_stop(&p->b);
	uv_run(&p->loop, UV_RUN_NOWAIT);
	assert_int_equal(uv_loop_close(&p->loop), 0);
}

static struct raft_message heartbeat(uint64_t from, uint64_t to, uint64_t group, uint64_t ctx)
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

struct want {
	struct th_node *n;
	uint64_t msgs;
};

static bool got_msgs(void *arg)
{
	struct want *w = arg;
	return w->n->msgs >= w->msgs;
}

static void test_100k_messages_in_order(void **state)
{
	struct pair p;
	const uint64_t total = 100000;
	uint64_t sent = 0, deadline;
	uint8_t data[3][200];
	struct want w;

	(void)state;
	pair_start(&p, SECRET, SECRET);
	deadline = th_now_ms() + 30000;
	while (sent < total && th_now_ms() < deadline) {
		struct transport_peer_stats ps;

		transport_peer_stats(p.a.t, 2, &ps);
		/* Stay below the queue limit: overflow would (correctly) drop. */
		for (int k = 0; k < 2000 && sent < total && ps.queued_msgs + k < 8000; k++) {
			uint64_t ctx = sent + 1;
			struct raft_message m = heartbeat(1, 2, 1 + ctx % 8, ctx);
			struct raft_entry ents[3];

			if (ctx % 100 == 0) {
				/* Every hundredth is an append with entries whose bytes are
				 * checked. */
				m.type = RAFT_MSG_APPEND;
				m.term = 2;
				m.index = ctx * 10;
				for (int e = 0; e < 3; e++) {
					th_fill_pattern(data[e], sizeof(data[e]),
					                m.index + 1 + (uint64_t)e);
					ents[e] = (struct raft_entry){.term = 2,
					                              .index = m.index + 1 +
					                                       (uint64_t)e,
					                              .len = sizeof(data[e]),
					                              .data = data[e]};
				}
				m.n_entries = 3;
				m.entries = ents;
			}
			assert_int_equal(transport_send(p.a.t, &m), TRANSPORT_OK);
			sent++;
		}
		uv_run(&p.loop, UV_RUN_NOWAIT);
	}
	assert_int_equal(sent, total);
	w.n = &p.b;
	w.msgs = total;
	if (!th_run_until(&p.loop, got_msgs, &w, 20000))
		fail_msg("expected %llu messages, received %llu", (unsigned long long)total,
		         (unsigned long long)p.b.msgs);
	assert_int_equal(p.b.order_errors, 0);
	assert_int_equal(p.b.entry_errors, 0);
	for (int g = 1; g <= 8; g++)
		assert_int_equal(p.b.per_group[g], total / 8);
	{
		struct transport_peer_stats sa, sb;
		transport_peer_stats(p.a.t, 2, &sa);
		transport_peer_stats(p.b.t, 1, &sb);
		assert_int_equal(sa.msgs_sent, total);
		assert_int_equal(sb.msgs_recv, total);
		assert_int_equal(sa.msgs_dropped, 0);
		assert_int_equal(sa.bytes_sent, sb.bytes_recv);
		assert_true(sa.batches_sent < total / 10); /* batched, not one frame per message */
		assert_int_equal(sa.connects, 1);
	}
	pair_stop(&p);
}

struct restart {
	struct pair *p;
	uint64_t ctx;
	uint64_t want;
};

static bool sent_until_received(void *arg)
{
	struct restart *r = arg;
	struct raft_message m = heartbeat(1, 2, 1, 0);

	if (r->p->b.t != NULL && r->p->b.msgs >= r->want)
		return true;
	m.context = ++r->ctx;
	transport_send(r->p->a.t, &m);
	return false;
}

static bool saw_unreachable(void *arg)
{
	struct restart *r = arg;
	struct raft_message m = heartbeat(1, 2, 1, ++r->ctx);

	transport_send(r->p->a.t, &m);
	return r->p->a.unreachable > 0;
}

static void test_peer_restart(void **state)
{
	struct pair p;
	struct restart r = {.p = &p, .want = 1};
	int port;

	(void)state;
	pair_start(&p, SECRET, SECRET);
	assert_true(th_run_until(&p.loop, sent_until_received, &r, 5000));
	port = p.b.port;
	th_node_stop(&p.b);
	assert_true(p.b.closed);
	/* Messages to the stopped node are dropped and reported unreachable. */
	if (!th_run_until(&p.loop, saw_unreachable, &r, 5000))
		fail_msg("expected an unreachable report for the stopped peer");
	assert_int_equal(th_node_start(&p.b, &p.loop, 2, port, SECRET, NULL), 0);
	r.want = 1;
	if (!th_run_until(&p.loop, sent_until_received, &r, 10000))
		fail_msg("expected traffic to resume after the peer restarted");
	{
		struct transport_peer_stats sa;
		transport_peer_stats(p.a.t, 2, &sa);
		assert_true(sa.connects >= 2);
		assert_true(sa.msgs_dropped > 0);
	}
	pair_stop(&p);
}

struct stat_wait {
	struct transport *t;
	size_t offset; /* of a uint64_t in struct transport_stats */
	uint64_t min;
};

static bool stat_reached(void *arg)
{
	struct stat_wait *w = arg;
	struct transport_stats st;
	uint64_t v;

	transport_stats(w->t, &st);
	memcpy(&v, (const uint8_t *)&st + w->offset, sizeof(v));
	return v >= w->min;
}

#define WAIT_STAT(tp, field, n, ms)                                                                \
	do {                                                                                       \
		struct stat_wait w_ = {(tp), offsetof(struct transport_stats, field), (n)};        \
		if (!th_run_until(&p.loop, stat_reached, &w_, (ms)))                               \
			fail_msg("expected counter " #field " to reach %d", (int)(n));             \
	} while (0)

static void test_wrong_secret(void **state)
{
	struct pair p;
	struct raft_message m = heartbeat(1, 2, 1, 1);
	uint8_t hello[TRANSPORT_HELLO_LEN];
	int fd;

	(void)state;
	pair_start(&p, "secret one", "secret two");
	assert_int_equal(transport_send(p.a.t, &m), TRANSPORT_OK);
	/* The dialer finds the server's proof wrong and hangs up. */
	WAIT_STAT(p.a.t, auth_bad_secret, 1, 5000);
	assert_int_equal(p.b.msgs, 0);
	/* A raw client with the wrong secret: the server rejects its AUTH proof. */
	fd = th_raw_connect(p.b.port);
	assert_true(fd >= 0);
	{
		struct transport_hello h = {
		        .client_id = 1, .server_id = 2, .purpose = TRANSPORT_PURPOSE_MSG};
		uint8_t in[128], proof[TRANSPORT_PROOF_LEN];
		uint32_t len;

		transport_random(h.nonce, sizeof(h.nonce));
		transport_hello_put(hello, &h);
		assert_int_equal(th_raw_send_frame(fd, TF_HELLO, hello, sizeof(hello), false), 0);
		assert_int_equal(th_raw_recv_frame(&p.loop, fd, in, sizeof(in), &len, 5000),
		                 TF_CHALLENGE);
		transport_auth_proof((const uint8_t *)"secret one", 10, 'C', 1, 2, h.nonce, in + 8,
		                     proof);
		assert_int_equal(th_raw_send_frame(fd, TF_AUTH, proof, sizeof(proof), false), 0);
		m = heartbeat(1, 2, 1, 1);
	}
	WAIT_STAT(p.b.t, auth_bad_secret, 1, 5000);
	assert_true(th_raw_wait_closed(&p.loop, fd, 5000));
	close(fd);
	assert_int_equal(p.b.msgs, 0);
	pair_stop(&p);
}

static void test_wrong_node_id(void **state)
{
	struct pair p;
	struct raft_message m = heartbeat(1, 3, 1, 1);
	char addr[64];
	int fd;

	(void)state;
	pair_start(&p, SECRET, SECRET);
	/* Node 1 believes node 3 lives at node 2's address. */
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", p.b.port);
	assert_int_equal(transport_add_peer(p.a.t, 3, addr), 0);
	assert_int_equal(transport_send(p.a.t, &m), TRANSPORT_OK);
	WAIT_STAT(p.b.t, auth_bad_node_id, 1, 5000);
	/* A client claiming to be the server itself is refused too. */
	fd = th_raw_connect(p.b.port);
	assert_true(fd >= 0);
	assert_int_not_equal(th_raw_handshake(&p.loop, fd, 2, 2, SECRET, NULL, NULL), 0);
	WAIT_STAT(p.b.t, auth_bad_node_id, 2, 5000);
	assert_true(th_raw_wait_closed(&p.loop, fd, 5000));
	close(fd);
	assert_int_equal(p.b.msgs, 0);
	pair_stop(&p);
}

/* Sends one encoded heartbeat batch on a raw connection. */
static int raw_batch(int fd, uint64_t from, uint64_t ctx, bool bad_crc)
{
	struct transport_encoder enc = {0};
	struct transport_buf b = {0};
	struct raft_message m = heartbeat(from, 2, 1, ctx);
	int rc;

	transport_encode_message(&enc, &m, &b);
	rc = th_raw_send_frame(fd, TF_BATCH, b.p, (uint32_t)b.len, bad_crc);
	transport_buf_free(&b);
	transport_encoder_free(&enc);
	return rc;
}

static void test_replayed_handshake(void **state)
{
	struct pair p;
	uint8_t hello[TRANSPORT_HELLO_LEN], auth[TRANSPORT_AUTH_LEN], in[128];
	struct want w = {&p.b, 1};
	uint32_t len;
	int fd;

	(void)state;
	pair_start(&p, SECRET, SECRET);
	fd = th_raw_connect(p.b.port);
	assert_int_equal(th_raw_handshake(&p.loop, fd, 1, 2, SECRET, hello, auth), 0);
	assert_int_equal(raw_batch(fd, 1, 1, false), 0);
	assert_true(th_run_until(&p.loop, got_msgs, &w, 5000));
	close(fd);
	/* Replaying the recorded HELLO: same client nonce. */
	fd = th_raw_connect(p.b.port);
	assert_int_equal(th_raw_send_frame(fd, TF_HELLO, hello, sizeof(hello), false), 0);
	assert_int_equal(th_raw_send_frame(fd, TF_AUTH, auth, sizeof(auth), false), 0);
	assert_int_equal(raw_batch(fd, 1, 2, false), 0);
	WAIT_STAT(p.b.t, auth_replayed, 1, 5000);
	assert_true(th_raw_wait_closed(&p.loop, fd, 5000));
	close(fd);
	/* Replaying the recorded AUTH proof against a fresh server nonce. */
	fd = th_raw_connect(p.b.port);
	{
		struct transport_hello h = {
		        .client_id = 1, .server_id = 2, .purpose = TRANSPORT_PURPOSE_MSG};
		transport_random(h.nonce, sizeof(h.nonce));
		transport_hello_put(hello, &h);
	}
	assert_int_equal(th_raw_send_frame(fd, TF_HELLO, hello, sizeof(hello), false), 0);
	assert_int_equal(th_raw_recv_frame(&p.loop, fd, in, sizeof(in), &len, 5000), TF_CHALLENGE);
	assert_int_equal(th_raw_send_frame(fd, TF_AUTH, auth, sizeof(auth), false), 0);
	assert_int_equal(raw_batch(fd, 1, 2, false), 0);
	WAIT_STAT(p.b.t, auth_bad_secret, 1, 5000);
	assert_true(th_raw_wait_closed(&p.loop, fd, 5000));
	close(fd);
	assert_int_equal(p.b.msgs, 1);
	pair_stop(&p);
}

static size_t max_alloc;
static void *count_malloc(size_t n)
{
	if (n > max_alloc)
		max_alloc = n;
	return malloc(n);
}
static void *count_realloc(void *q, size_t n)
{
	if (n > max_alloc)
		max_alloc = n;
	return realloc(q, n);
}

static void test_oversize_and_bad_crc(void **state)
{
	struct transport_alloc_hooks hooks = {count_malloc, count_realloc, free};
	struct pair p;
	uint8_t hdr[TRANSPORT_FRAME_HDR];
	struct want w = {&p.b, 1};
	int fd;

	(void)state;
	transport_set_alloc_hooks(&hooks);
	pair_start(&p, SECRET, SECRET);
	/* Before the handshake: a header claiming 1 GiB. */
	max_alloc = 0;
	fd = th_raw_connect(p.b.port);
	transport_frame_header_put(hdr, TF_HELLO, NULL, 0);
	tp_put32(hdr + 8, 1u << 30);
	assert_int_equal(send(fd, hdr, sizeof(hdr), 0), (ssize_t)sizeof(hdr));
	WAIT_STAT(p.b.t, frames_oversize, 1, 5000);
	assert_true(th_raw_wait_closed(&p.loop, fd, 5000));
	close(fd);
	/* After the handshake: 64 MiB + 1 (one above the default maximum). */
	fd = th_raw_connect(p.b.port);
	assert_int_equal(th_raw_handshake(&p.loop, fd, 1, 2, SECRET, NULL, NULL), 0);
	transport_frame_header_put(hdr, TF_BATCH, NULL, 0);
	tp_put32(hdr + 8, TRANSPORT_DEFAULT_MAX_FRAME + 1);
	assert_int_equal(send(fd, hdr, sizeof(hdr), 0), (ssize_t)sizeof(hdr));
	WAIT_STAT(p.b.t, frames_oversize, 2, 5000);
	assert_true(th_raw_wait_closed(&p.loop, fd, 5000));
	close(fd);
	if (max_alloc >= (16u << 20))
		fail_msg("expected no large allocation for rejected frames, saw %zu bytes",
		         max_alloc);
	/* A good batch is delivered; the same batch with a bad CRC closes the connection. */
	fd = th_raw_connect(p.b.port);
	assert_int_equal(th_raw_handshake(&p.loop, fd, 1, 2, SECRET, NULL, NULL), 0);
	assert_int_equal(raw_batch(fd, 1, 1, false), 0);
	assert_true(th_run_until(&p.loop, got_msgs, &w, 5000));
	assert_int_equal(raw_batch(fd, 1, 2, true), 0);
	WAIT_STAT(p.b.t, frames_bad_crc, 1, 5000);
	assert_true(th_raw_wait_closed(&p.loop, fd, 5000));
	close(fd);
	assert_int_equal(p.b.msgs, 1);
	/* Garbage instead of a header. */
	fd = th_raw_connect(p.b.port);
	assert_int_equal(send(fd, "GET / HTTP/1.1\r\n\r\n", 18, 0), 18);
	WAIT_STAT(p.b.t, frames_bad_header, 1, 5000);
	assert_true(th_raw_wait_closed(&p.loop, fd, 5000));
	close(fd);
	pair_stop(&p);
	transport_set_alloc_hooks(NULL);
}

static void test_membership_and_sender_checks(void **state)
{
	struct pair p;
	struct want w = {&p.b, 2};
	int fd;

	(void)state;
	pair_start(&p, SECRET, SECRET);
	p.b.reject_group = 7;
	{
		struct raft_message m1 = heartbeat(1, 2, 7, 1); /* group 7: not a member */
		struct raft_message m2 = heartbeat(1, 2, 3, 1);
		struct raft_message m3 = heartbeat(1, 2, 4, 2);
		assert_int_equal(transport_send(p.a.t, &m1), 0);
		assert_int_equal(transport_send(p.a.t, &m2), 0);
		assert_int_equal(transport_send(p.a.t, &m3), 0);
	}
	assert_true(th_run_until(&p.loop, got_msgs, &w, 5000));
	WAIT_STAT(p.b.t, msgs_rejected_member, 1, 5000);
	assert_int_equal(p.b.per_group[7], 0);
	/* An authenticated node 1 that claims messages from node 3 is dropped. */
	fd = th_raw_connect(p.b.port);
	assert_int_equal(th_raw_handshake(&p.loop, fd, 1, 2, SECRET, NULL, NULL), 0);
	assert_int_equal(raw_batch(fd, 3, 3, false), 0);
	WAIT_STAT(p.b.t, msgs_rejected_sender, 1, 5000);
	/* An intact frame with an undecodable payload drops that batch only. */
	{
		static const uint8_t junk[] = {0x0a, 0x04, 0x08, 0x63, 0x18, 0x01};
		assert_int_equal(th_raw_send_frame(fd, TF_BATCH, junk, sizeof(junk), false), 0);
	}
	WAIT_STAT(p.b.t, decode_errors, 1, 5000);
	assert_int_equal(raw_batch(fd, 1, 3, false), 0);
	w.msgs = 3;
	assert_true(th_run_until(&p.loop, got_msgs, &w, 5000));
	close(fd);
	assert_int_equal(p.b.msgs, 3);
	{
		struct transport_peer_stats sb;
		transport_peer_stats(p.b.t, 1, &sb);
		assert_int_equal(sb.msgs_dropped, 3);
		assert_true(sb.bytes_dropped > 0);
	}
	pair_stop(&p);
}

static void test_no_secret_loopback_only(void **state)
{
	struct pair p;
	struct want w = {&p.b, 1};
	struct raft_message m = heartbeat(1, 2, 1, 1);
	struct transport_stats st;

	(void)state;
	pair_start(&p, NULL, NULL);
	assert_int_equal(transport_send(p.a.t, &m), 0);
	assert_true(th_run_until(&p.loop, got_msgs, &w, 5000));
	/* Without a secret, a non-loopback peer is never dialed. */
	assert_int_equal(transport_add_peer(p.a.t, 5, "192.0.2.1:7400"), 0);
	m = heartbeat(1, 5, 1, 1);
	assert_int_equal(transport_send(p.a.t, &m), TRANSPORT_EUNREACHABLE);
	transport_stats(p.a.t, &st);
	assert_int_equal(st.auth_not_loopback, 1);
	/* A node with a secret and one without cannot talk. */
	pair_stop(&p);
	pair_start(&p, SECRET, NULL);
	m = heartbeat(1, 2, 1, 1);
	assert_int_equal(transport_send(p.a.t, &m), 0);
	WAIT_STAT(p.a.t, auth_bad_secret, 1, 5000);
	assert_int_equal(p.b.msgs, 0);
	pair_stop(&p);
}

static void test_queue_overflow_and_handshake_timeout(void **state)
{
	struct transport_config cfg = {.queue_max_msgs = 10, .handshake_timeout_ms = 100};
	struct pair p;
	struct transport_peer_stats sa;
	char addr[64];
	int fd, full = 0;

	(void)state;
	uv_loop_init(&p.loop);
	assert_int_equal(th_node_start(&p.a, &p.loop, 1, 0, SECRET, &cfg), 0);
	assert_int_equal(th_node_start(&p.b, &p.loop, 2, 0, SECRET, &cfg), 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", p.b.port);
	assert_int_equal(transport_add_peer(p.a.t, 2, addr), 0);
	/* Twenty messages in one turn: ten fit, ten are dropped and reported. */
	for (uint64_t i = 1; i <= 20; i++) {
		struct raft_message m = heartbeat(1, 2, 1, i);
		if (transport_send(p.a.t, &m) == TRANSPORT_EQUEUEFULL)
			full++;
	}
	assert_int_equal(full, 10);
	assert_int_equal(p.a.unreachable, 0); /* never from inside transport_send */
	{
		struct want w = {&p.b, 10};
		assert_true(th_run_until(&p.loop, got_msgs, &w, 5000));
	}
	assert_true(p.a.unreachable >= 1);
	assert_int_equal(p.b.order_errors, 0);
	transport_peer_stats(p.a.t, 2, &sa);
	assert_int_equal(sa.msgs_dropped, 10);
	assert_int_equal(sa.msgs_sent, 10);
	/* A client that connects and says nothing is cut off. */
	fd = th_raw_connect(p.b.port);
	WAIT_STAT(p.b.t, handshake_timeouts, 1, 5000);
	assert_true(th_raw_wait_closed(&p.loop, fd, 5000));
	close(fd);
	pair_stop(&p);
}

static void test_snapshot_checksum_mismatch(void **state)
{
	struct transport_config cfg = {0};
	struct pair p;
	char dir[] = "/tmp/dr-transport-XXXXXX";
	struct transport_snapshot_header sh = {
	        .group_id = 5, .from = 1, .to = 2, .total_size = 1000, .crc32c = 0x1234};
	struct transport_buf b = {0};
	uint8_t data[1000], in[64];
	uint32_t len;
	int fd;

	(void)state;
	assert_non_null(mkdtemp(dir));
	cfg.snapshot_dir = dir;
	uv_loop_init(&p.loop);
	assert_int_equal(th_node_start(&p.a, &p.loop, 1, 0, SECRET, &cfg), 0);
	assert_int_equal(th_node_start(&p.b, &p.loop, 2, 0, SECRET, &cfg), 0);
	sh.meta.index = 10;
	sh.meta.term = 2;
	sh.meta.membership.n_voters = 1;
	sh.meta.membership.voters[0] = 1;
	transport_encode_snapshot_header(&sh, &b);
	fd = th_raw_connect(p.b.port);
	assert_int_equal(
	        th_raw_handshake_purpose(&p.loop, fd, 1, 2, SECRET, TRANSPORT_PURPOSE_SNAP), 0);
	assert_int_equal(th_raw_send_frame(fd, TF_SNAP_BEGIN, b.p, (uint32_t)b.len, false), 0);
	assert_int_equal(th_raw_recv_frame(&p.loop, fd, in, sizeof(in), &len, 5000),
	                 TF_SNAP_RESUME);
	assert_int_equal(len, 8);
	assert_int_equal(tp_get64(in), 0);
	memset(data, 'z', sizeof(data));
	assert_int_equal(th_raw_send_frame(fd, TF_SNAP_CHUNK, data, sizeof(data), false), 0);
	assert_int_equal(th_raw_send_frame(fd, TF_SNAP_END, NULL, 0, false), 0);
	assert_int_equal(th_raw_recv_frame(&p.loop, fd, in, sizeof(in), &len, 5000), TF_SNAP_DONE);
	assert_int_equal(tp_get32(in), TRANSPORT_ECHECKSUM);
	close(fd);
	assert_int_equal(p.b.snap_received, 0);
	transport_buf_free(&b);
	pair_stop(&p);
	assert_int_equal(rmdir(dir), 0); /* the partial file was removed */
}

static void test_create_errors(void **state)
{
	struct pair p;
	struct th_node n3;
	struct transport *t;
	struct transport_config cfg = {.node_id = 3, .listen_addr = "not-an-address"};

	(void)state;
	pair_start(&p, SECRET, SECRET);
	/* The port is taken: creation fails, calls nothing back, frees itself as the loop runs. */
	assert_int_equal(th_node_start(&n3, &p.loop, 3, p.a.port, SECRET, NULL), TRANSPORT_EIO);
	assert_int_equal(transport_create(&p.loop, &cfg, NULL, &t), TRANSPORT_EINVAL);
	assert_null(t);
	cfg.node_id = 0;
	assert_int_equal(transport_create(&p.loop, &cfg, NULL, &t), TRANSPORT_EINVAL);
	assert_int_equal(transport_add_peer(p.a.t, 9, "nonsense"), TRANSPORT_EINVAL);
	assert_int_equal(transport_add_peer(p.a.t, 1, "127.0.0.1:1"), TRANSPORT_EINVAL);
	{
		struct raft_message m = heartbeat(1, 9, 1, 1);
		assert_int_equal(transport_send(p.a.t, &m), TRANSPORT_ENOPEER);
	}
	th_run_for(&p.loop, 20);
	assert_false(n3.closed);
	pair_stop(&p);
}

/* ---- 100 MiB snapshot beside heartbeats ---------------------------------- */

struct snapctx {
	struct pair *p;
	uv_timer_t hb;
	uint64_t ctx;
	char part_prefix[512];
	bool broke;
};

static void send_heartbeat(uv_timer_t *h)
{
	struct snapctx *s = h->data;
	struct raft_message m = heartbeat(1, 2, 1, ++s->ctx);

	transport_send(s->p->a.t, &m);
}

static bool snapshot_done(void *arg)
{
	struct snapctx *s = arg;

	if (!s->broke) {
		/* Once 20 MiB have landed, break the stream once: it must resume. */
		char path[600];
		struct stat st;
		snprintf(path, sizeof(path), "%s.part", s->part_prefix);
		if (stat(path, &st) == 0 && st.st_size > (20 << 20)) {
			transport_break_snapshot_conns(s->p->b.t);
			s->broke = true;
		}
	}
	return s->p->a.snap_sent_status >= 0;
}

/* Deletes every file in dir, then dir. */
static void remove_dir(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char path[600];

	while (d != NULL && (de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		unlink(path);
	}
	if (d != NULL)
		closedir(d);
	rmdir(dir);
}

static void test_snapshot_100mib_with_heartbeats(void **state)
{
	struct pair p;
	struct snapctx s = {.p = &p};
	char dir[] = "/tmp/dr-transport-XXXXXX", src[600];
	struct raft_snapshot_meta meta = {.index = 500, .term = 3};
	const size_t size = 100u << 20;
	uint32_t crc = 0, crc2 = 0;
	uint8_t *buf = malloc(1 << 20);
	struct transport_config cfg = {0};
	struct transport_stats sa, sb;
	FILE *f;
	size_t got = 0;
	bool done;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(src, sizeof(src), "%s/source.snap", dir);
	f = fopen(src, "wb");
	for (size_t off = 0; off < size; off += 1 << 20) {
		for (size_t k = 0; k < (1 << 20); k += 8) {
			uint64_t v = (off + k) * 0x9E3779B97F4A7C15ULL;
			memcpy(buf + k, &v, 8);
		}
		crc = crc32c(crc, buf, 1 << 20);
		assert_int_equal(fwrite(buf, 1, 1 << 20, f), 1 << 20);
	}
	fclose(f);
	uv_loop_init(&p.loop);
	cfg.snapshot_dir = dir;
	assert_int_equal(th_node_start(&p.a, &p.loop, 1, 0, SECRET, &cfg), 0);
	assert_int_equal(th_node_start(&p.b, &p.loop, 2, 0, SECRET, &cfg), 0);
	{
		char addr[64];
		snprintf(addr, sizeof(addr), "127.0.0.1:%d", p.b.port);
		transport_add_peer(p.a.t, 2, addr);
	}
	meta.membership.n_voters = 2;
	meta.membership.voters[0] = 1;
	meta.membership.voters[1] = 2;
	snprintf(s.part_prefix, sizeof(s.part_prefix), "%s/snap-g9-n1-i500-t3", dir);
	/* Heartbeats every 5 ms for the whole transfer. */
	uv_timer_init(&p.loop, &s.hb);
	s.hb.data = &s;
	uv_timer_start(&s.hb, send_heartbeat, 5, 5);
	{
		struct want w = {&p.b, 5};
		assert_true(th_run_until(&p.loop, got_msgs, &w, 5000));
	}
	p.b.gap_watch = true;
	assert_int_equal(transport_send_snapshot(p.a.t, 2, 9, &meta, src), 0);
	done = th_run_until(&p.loop, snapshot_done, &s, 60000);
	p.b.gap_watch = false;
	uv_timer_stop(&s.hb);
	uv_close((uv_handle_t *)&s.hb, NULL);
	/* Gather the outcome, then delete the 200 MiB of files before asserting. */
	f = p.b.snap_received == 1 ? fopen(p.b.snap_path, "rb") : NULL;
	if (f != NULL) {
		size_t n;
		while ((n = fread(buf, 1, 1 << 20, f)) > 0) {
			crc2 = crc32c(crc2, buf, n);
			got += n;
		}
		fclose(f);
	}
	transport_stats(p.a.t, &sa);
	transport_stats(p.b.t, &sb);
	pair_stop(&p);
	remove_dir(dir);
	free(buf);
	if (!done)
		fail_msg("snapshot did not finish within 60 s");
	assert_int_equal(p.a.snap_sent_status, TRANSPORT_OK);
	assert_int_equal(p.b.snap_received, 1);
	assert_int_equal(p.b.snap_meta.index, 500);
	assert_int_equal(p.b.snap_meta.membership.n_voters, 2);
	/* The received file has the source's size and checksum. */
	assert_int_equal(got, size);
	assert_int_equal(crc2, crc);
	assert_true(s.broke);
	assert_int_equal(sb.snapshot_resumes, 1);
	assert_int_equal(sa.snapshots_sent, 1);
	printf("snapshot: %llu heartbeats during transfer, largest gap %llu ms\n",
	       (unsigned long long)p.b.msgs, (unsigned long long)p.b.max_gap_ms);
	if (p.b.max_gap_ms > 200)
		fail_msg("expected heartbeats every few ms, saw a %llu ms gap",
		         (unsigned long long)p.b.max_gap_ms);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_100k_messages_in_order),
	        cmocka_unit_test(test_peer_restart),
	        cmocka_unit_test(test_wrong_secret),
	        cmocka_unit_test(test_wrong_node_id),
	        cmocka_unit_test(test_replayed_handshake),
	        cmocka_unit_test(test_oversize_and_bad_crc),
	        cmocka_unit_test(test_membership_and_sender_checks),
	        cmocka_unit_test(test_no_secret_loopback_only),
	        cmocka_unit_test(test_queue_overflow_and_handshake_timeout),
	        cmocka_unit_test(test_create_errors),
	        cmocka_unit_test(test_snapshot_checksum_mismatch),
	        cmocka_unit_test(test_snapshot_100mib_with_heartbeats),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
