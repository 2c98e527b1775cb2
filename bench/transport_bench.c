/*
 * transport_bench.c - transport throughput between two processes on loopback.
 *
 *   small: heartbeat-sized raft messages, batched by the transport (messages/s)
 *   bulk:  appends carrying 4 x 64 KiB entries (MB/s of entry data)
 *   plain: a blocking send()/recv() copy of the same number of bytes in the
 *          same run, the ceiling bulk is compared with
 *
 * The parent sends, a forked child receives and acknowledges each phase on a
 * pipe with what it counted.  Plain and bulk rounds alternate so that both
 * see the same machine load.
 *
 *   snapshot: a 256 MiB snapshot streamed between two transports sharing one
 *          loop in the parent, with a heartbeat every millisecond beside it;
 *          reports MB/s and the largest gap between heartbeats received
 *          (anything the loop thread blocks on shows up there)
 *
 * Every phase runs twice, in clear text and with mutual TLS 1.3 (the test
 * PKI's certificates, AES-128-GCM), each against the same plain socket copy.
 * The last line states the headline figures of both: best small-message
 * rate, the median over rounds of bulk/plain measured back to back, best
 * bulk and plain rates, and the snapshot rate and median largest heartbeat gap.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../test/transport/harness.h"
#include "transport/transport.h"

#define ROUNDS          3
#define BULK_ROUNDS     5
#define SMALL_MSGS      2000000ull
#define BULK_BYTES      (1024ull << 20)
#define ENTRY_LEN       (64u << 10)
#define ENTRIES_PER_MSG 4
#define PLAIN_CHUNK     (1u << 20)
#define END_CONTEXT     UINT64_MAX
#define SNAP_ROUNDS     3
#define SNAP_BYTES      (256ull << 20)

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
	perror(what);
	exit(1);
}

/* Certificate files of node id for cfg when tls (the test PKI; names kept in files). */
static void secure(struct transport_config *cfg, bool tls, char files[3][600])
{
	char name[32];

	if (!tls)
		return;
	snprintf(name, sizeof(name), "n%llu.crt", (unsigned long long)cfg->node_id);
	cfg->tls_cert_file = th_pki_path(files[0], sizeof(files[0]), name);
	snprintf(name, sizeof(name), "n%llu.key", (unsigned long long)cfg->node_id);
	cfg->tls_key_file = th_pki_path(files[1], sizeof(files[1]), name);
	cfg->tls_ca_file = th_pki_path(files[2], sizeof(files[2]), "ca.crt");
}

static void write_u64(int fd, uint64_t v)
{
	if (write(fd, &v, sizeof(v)) != sizeof(v))
		die("pipe write");
}

static uint64_t read_u64(int fd)
{
	uint64_t v;
	ssize_t n;

	do
		n = read(fd, &v, sizeof(v));
	while (n < 0 && errno == EINTR);
	if (n != sizeof(v))
		die("pipe read");
	return v;
}

/* ---- child: receiver ------------------------------------------------------ */

struct rx {
	int ack_fd;
	uint64_t msgs;
	uint64_t bytes;
	bool stop;
};

static void rx_batch(void *ctx, uint64_t from, const struct raft_message *msgs, size_t n)
{
	struct rx *rx = ctx;

	(void)from;
	for (size_t i = 0; i < n; i++) {
		if (msgs[i].context == END_CONTEXT) {
			/* End of a phase: report what arrived, then start counting afresh. */
			write_u64(rx->ack_fd,
			          msgs[i].type == RAFT_MSG_APPEND ? rx->bytes : rx->msgs);
			rx->msgs = 0;
			rx->bytes = 0;
			if (msgs[i].commit == 1)
				rx->stop = true;
			continue;
		}
		rx->msgs++;
		for (uint32_t k = 0; k < msgs[i].n_entries; k++)
			rx->bytes += msgs[i].entries[k].len;
	}
}

struct plain_rx {
	int fd;
	int ack_fd;
	uint64_t got;
	char *buf;
};

/* The plain copy's receiving side, polled from the same loop as the transport. */
static void plain_readable(uv_poll_t *h, int status, int events)
{
	struct plain_rx *pr = h->data;

	(void)status;
	(void)events;
	for (;;) {
		ssize_t n = recv(pr->fd, pr->buf, PLAIN_CHUNK, MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		pr->got += (uint64_t)n;
		if (pr->got == BULK_BYTES) {
			write_u64(pr->ack_fd, pr->got);
			pr->got = 0;
		}
	}
}

static int child_main(int lfd, int ack_fd, bool tls)
{
	uv_loop_t loop;
	struct rx rx = {.ack_fd = ack_fd};
	struct transport_callbacks cb = {.ctx = &rx, .on_message_batch = rx_batch};
	struct transport_config cfg = {.node_id = 2, .listen_addr = "127.0.0.1:0"};
	struct plain_rx pr = {.ack_fd = ack_fd, .buf = malloc(PLAIN_CHUNK)};
	struct transport *t;
	uv_poll_t poll;
	char files[3][600];

	pr.fd = accept(lfd, NULL, NULL);
	if (pr.fd < 0 || pr.buf == NULL)
		die("accept");
	close(lfd);
	uv_loop_init(&loop);
	secure(&cfg, tls, files);
	if (transport_create(&loop, &cfg, &cb, &t) != 0)
		die("transport_create");
	transport_add_peer(t, 1, "127.0.0.1:1"); /* the sender may connect; never dialed */
	write_u64(ack_fd, (uint64_t)transport_listen_port(t));
	uv_poll_init(&loop, &poll, pr.fd);
	poll.data = &pr;
	uv_poll_start(&poll, UV_READABLE, plain_readable);
	while (!rx.stop)
		uv_run(&loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&poll, NULL);
	transport_close(t);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	close(pr.fd);
	free(pr.buf);
	return 0;
}

/* ---- parent: sender ------------------------------------------------------- */

struct tx;
static void wait_ack(struct tx *tx);
static uint64_t ack_value(struct tx *tx);

static double plain_round(int fd, struct tx *tx, const char *buf)
{
	double t0 = now_s();
	uint64_t sent = 0;

	while (sent < BULK_BYTES) {
		ssize_t n = send(fd, buf, PLAIN_CHUNK, 0);
		if (n <= 0)
			die("send");
		sent += (uint64_t)n;
	}
	wait_ack(tx);
	if (ack_value(tx) != BULK_BYTES) {
		fprintf(stderr, "plain copy lost bytes\n");
		exit(1);
	}
	return (double)BULK_BYTES / (now_s() - t0) / 1e6;
}

struct tx {
	uv_loop_t loop;
	struct transport *t;
	uv_poll_t ack_poll;
	int ack_fd;
	bool acked;
	uint64_t ack_value;
};

static void on_ack(uv_poll_t *h, int status, int events)
{
	struct tx *tx = h->data;

	(void)status;
	(void)events;
	tx->ack_value = read_u64(tx->ack_fd);
	tx->acked = true;
}

static void wait_ack(struct tx *tx)
{
	while (!tx->acked)
		uv_run(&tx->loop, UV_RUN_ONCE);
	tx->acked = false;
}

static uint64_t ack_value(struct tx *tx)
{
	return tx->ack_value;
}

static void send_or_die(struct tx *tx, const struct raft_message *m)
{
	int rc = transport_send(tx->t, m);

	if (rc != 0) {
		fprintf(stderr, "transport_send: %s\n", transport_strerror(rc));
		exit(1);
	}
}

static void send_end(struct tx *tx, uint32_t type, bool last)
{
	struct raft_message m = {.type = type,
	                         .group_id = 1,
	                         .from = 1,
	                         .to = 2,
	                         .term = 1,
	                         .context = END_CONTEXT,
	                         .commit = last ? 1 : 0};
	send_or_die(tx, &m);
}

/* Keeps the queue below a high-water mark, blocking in the loop while above it. */
static void throttle(struct tx *tx, uint32_t max_msgs, uint64_t max_bytes)
{
	struct transport_peer_stats ps;

	for (;;) {
		transport_peer_stats(tx->t, 2, &ps);
		if (ps.queued_msgs < max_msgs && ps.queued_bytes < max_bytes)
			return;
		uv_run(&tx->loop, UV_RUN_ONCE);
	}
}

static double small_round(struct tx *tx)
{
	double t0 = now_s();
	struct raft_message m = {.type = RAFT_MSG_HEARTBEAT, .from = 1, .to = 2, .term = 7};

	for (uint64_t i = 0; i < SMALL_MSGS; i++) {
		if ((i & 1023) == 0)
			throttle(tx, 48000, 16u << 20);
		m.group_id = 1 + i % 64;
		m.commit = 1000 + i;
		m.context = i + 1;
		send_or_die(tx, &m);
	}
	send_end(tx, RAFT_MSG_HEARTBEAT, false);
	wait_ack(tx);
	if (tx->ack_value != SMALL_MSGS) {
		fprintf(stderr, "small: %llu of %llu messages arrived\n",
		        (unsigned long long)tx->ack_value, SMALL_MSGS);
		exit(1);
	}
	return (double)SMALL_MSGS / (now_s() - t0);
}

static double bulk_round(struct tx *tx, const uint8_t *data, bool last)
{
	const uint64_t per_msg = (uint64_t)ENTRY_LEN * ENTRIES_PER_MSG;
	struct raft_entry ents[ENTRIES_PER_MSG];
	struct raft_message m = {.type = RAFT_MSG_APPEND,
	                         .group_id = 1,
	                         .from = 1,
	                         .to = 2,
	                         .term = 5,
	                         .n_entries = ENTRIES_PER_MSG,
	                         .entries = ents};
	double t0 = now_s();
	uint64_t index = 1;

	for (uint64_t sent = 0; sent < BULK_BYTES; sent += per_msg) {
		throttle(tx, 100000, 512u << 10);
		m.index = index - 1;
		for (int e = 0; e < ENTRIES_PER_MSG; e++)
			ents[e] = (struct raft_entry){.term = 5,
			                              .index = index++,
			                              .len = ENTRY_LEN,
			                              .data = data + (size_t)e * ENTRY_LEN};
		send_or_die(tx, &m);
	}
	send_end(tx, RAFT_MSG_APPEND, last);
	wait_ack(tx);
	if (tx->ack_value != BULK_BYTES) {
		fprintf(stderr, "bulk: %llu of %llu bytes arrived\n",
		        (unsigned long long)tx->ack_value, BULK_BYTES);
		exit(1);
	}
	return (double)BULK_BYTES / (now_s() - t0) / 1e6;
}

/* ---- snapshot beside heartbeats, one process --------------------------- */

struct snap_bench {
	uv_loop_t loop;
	struct transport *tx, *rx;
	uv_timer_t hb;
	uint64_t ctx;
	double last_hb, max_gap;
	bool watching;
	int sent_status;
	char path[600];
};

static void sb_batch(void *ctx, uint64_t from, const struct raft_message *msgs, size_t n)
{
	struct snap_bench *b = ctx;
	double t = now_s();

	(void)from;
	(void)msgs;
	(void)n;
	if (b->watching && b->last_hb > 0 && t - b->last_hb > b->max_gap)
		b->max_gap = t - b->last_hb;
	b->last_hb = t;
}

static void sb_sent(void *ctx, uint64_t to, uint64_t group, raft_index index, int status,
                    bool by_receiver)
{
	struct snap_bench *b = ctx;

	(void)to;
	(void)group;
	(void)index;
	(void)by_receiver;
	b->sent_status = status;
}

static void sb_received(void *ctx, uint64_t from, uint64_t group,
                        const struct raft_snapshot_meta *meta, const char *path)
{
	struct snap_bench *b = ctx;

	(void)from;
	(void)group;
	(void)meta;
	/* Deleted after the round: unlinking 256 MiB here would stall the loop we measure. */
	snprintf(b->path, sizeof(b->path), "%s", path);
}

static void sb_heartbeat(uv_timer_t *h)
{
	struct snap_bench *b = h->data;
	struct raft_message m = {.type = RAFT_MSG_HEARTBEAT,
	                         .group_id = 1,
	                         .from = 3,
	                         .to = 4,
	                         .term = 1,
	                         .context = ++b->ctx};

	transport_send(b->tx, &m);
}

/* Streams the SNAP_BYTES file at src SNAP_ROUNDS times; fills MB/s and largest gaps (ms). */
static void snapshot_phase(const char *dir, const char *src, bool tls, double *mbs, double *gaps)
{
	struct snap_bench b;
	struct transport_config cfg = {.snapshot_dir = dir};
	char files[2][3][600];
	struct transport_callbacks cb = {.on_message_batch = sb_batch,
	                                 .on_snapshot_sent = sb_sent,
	                                 .on_snapshot_received = sb_received};
	struct raft_snapshot_meta meta = {.term = 1};
	char addr[64];

	memset(&b, 0, sizeof(b));
	cb.ctx = &b;
	uv_loop_init(&b.loop);
	cfg.node_id = 3;
	cfg.listen_addr = "127.0.0.1:0";
	secure(&cfg, tls, files[0]);
	if (transport_create(&b.loop, &cfg, &cb, &b.tx) != 0)
		die("snapshot sender");
	cfg.node_id = 4;
	secure(&cfg, tls, files[1]);
	if (transport_create(&b.loop, &cfg, &cb, &b.rx) != 0)
		die("snapshot receiver");
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", transport_listen_port(b.rx));
	transport_add_peer(b.tx, 4, addr);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", transport_listen_port(b.tx));
	transport_add_peer(b.rx, 3, addr);
	meta.membership.n_voters = 2;
	meta.membership.voters[0] = 3;
	meta.membership.voters[1] = 4;
	uv_timer_init(&b.loop, &b.hb);
	b.hb.data = &b;
	uv_timer_start(&b.hb, sb_heartbeat, 1, 1);
	for (int r = 0; r < SNAP_ROUNDS; r++) {
		double t0;

		b.sent_status = -1;
		b.max_gap = 0;
		meta.index = 100 + (raft_index)r;
		/* Let the heartbeat connection settle first. */
		for (double until = now_s() + 0.05; now_s() < until;)
			uv_run(&b.loop, UV_RUN_ONCE);
		b.watching = true;
		t0 = now_s();
		if (transport_send_snapshot(b.tx, 4, 1, &meta, src) != 0)
			die("transport_send_snapshot");
		while (b.sent_status < 0)
			uv_run(&b.loop, UV_RUN_ONCE);
		b.watching = false;
		if (b.sent_status != 0)
			die("snapshot stream failed");
		unlink(b.path);
		mbs[r] = (double)SNAP_BYTES / (now_s() - t0) / 1e6;
		gaps[r] = b.max_gap * 1e3;
		printf("%s snapshot round %d: %6.0f MB/s, largest heartbeat gap %5.1f ms\n",
		       tls ? "TLS" : "plain", r + 1, mbs[r], gaps[r]);
	}
	uv_close((uv_handle_t *)&b.hb, NULL);
	transport_close(b.tx);
	transport_close(b.rx);
	uv_run(&b.loop, UV_RUN_DEFAULT);
	uv_loop_close(&b.loop);
}

/* Writes SNAP_BYTES of data to dir/source.snap; its path goes to src. */
static void write_snapshot_source(const char *dir, char *src, size_t cap, const char *buf)
{
	FILE *f;

	snprintf(src, cap, "%s/source.snap", dir);
	f = fopen(src, "wb");
	if (f == NULL)
		die("snapshot source");
	for (uint64_t off = 0; off < SNAP_BYTES; off += PLAIN_CHUNK)
		if (fwrite(buf, 1, PLAIN_CHUNK, f) != PLAIN_CHUNK)
			die("snapshot source write");
	fclose(f);
}

/* The figures of one mode. */
struct result {
	double small, bulk, plain, ratio, snap, gap;
};

/* Runs every phase in one mode (clear text or TLS). */
static void run_mode(bool tls, bool bulk_only, const char *snap_src, const char *snap_dir,
                     char *buf, struct result *res)
{
	const char *mode = tls ? "TLS" : "plain";
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t slen = sizeof(sin);
	int lfd, fd, pipefd[2], status, one = 1;
	struct transport_config cfg = {
	        .node_id = 1, .queue_max_msgs = 65536, .queue_max_bytes = 32u << 20};
	double ratios[BULK_ROUNDS], snap_mbs[SNAP_ROUNDS], snap_gaps[SNAP_ROUNDS];
	char files[3][600];
	struct tx tx;
	char addr[64];
	pid_t pid;

	memset(res, 0, sizeof(*res));
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) != 0 ||
	    listen(lfd, 1) != 0 || getsockname(lfd, (struct sockaddr *)&sin, &slen) != 0)
		die("listen");
	if (pipe(pipefd) != 0)
		die("pipe");
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		close(pipefd[0]);
		_exit(child_main(lfd, pipefd[1], tls));
	}
	close(pipefd[1]);
	close(lfd);

	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0)
		die("connect");
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));

	memset(&tx, 0, sizeof(tx));
	tx.ack_fd = pipefd[0];
	uv_loop_init(&tx.loop);
	secure(&cfg, tls, files);
	if (transport_create(&tx.loop, &cfg, NULL, &tx.t) != 0)
		die("transport_create");
	snprintf(addr, sizeof(addr), "127.0.0.1:%llu", (unsigned long long)read_u64(pipefd[0]));
	transport_add_peer(tx.t, 2, addr);
	uv_poll_init(&tx.loop, &tx.ack_poll, pipefd[0]);
	tx.ack_poll.data = &tx;
	uv_poll_start(&tx.ack_poll, UV_READABLE, on_ack);

	for (int r = 0; r < ROUNDS && !bulk_only; r++) {
		double v = small_round(&tx);
		printf("%s small msgs   round %d: %8.0f msgs/s\n", mode, r + 1, v);
		if (v > res->small)
			res->small = v;
	}
	/* Plain copy and bulk alternate, so both see the same machine load. */
	for (int r = 0; r < BULK_ROUNDS; r++) {
		double v = plain_round(fd, &tx, buf);
		double w = bulk_round(&tx, (const uint8_t *)buf, r == BULK_ROUNDS - 1);

		printf("%s round %d: plain socket copy %6.0f MB/s, bulk append %6.0f MB/s "
		       "(%3.0f%%)\n",
		       mode, r + 1, v, w, 100.0 * w / v);
		ratios[r] = w / v;
		if (v > res->plain)
			res->plain = v;
		if (w > res->bulk)
			res->bulk = w;
	}
	close(fd);
	uv_close((uv_handle_t *)&tx.ack_poll, NULL);
	transport_close(tx.t);
	uv_run(&tx.loop, UV_RUN_DEFAULT);
	uv_loop_close(&tx.loop);
	close(pipefd[0]);
	waitpid(pid, &status, 0);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		die("receiver process failed");
	snapshot_phase(snap_dir, snap_src, tls, snap_mbs, snap_gaps);
	qsort(ratios, BULK_ROUNDS, sizeof(ratios[0]), cmp_double);
	qsort(snap_mbs, SNAP_ROUNDS, sizeof(snap_mbs[0]), cmp_double);
	qsort(snap_gaps, SNAP_ROUNDS, sizeof(snap_gaps[0]), cmp_double);
	res->ratio = ratios[BULK_ROUNDS / 2];
	res->snap = snap_mbs[SNAP_ROUNDS - 1];
	res->gap = snap_gaps[SNAP_ROUNDS / 2];
}

int main(int argc, char **argv)
{
	char snap_dir[] = "/tmp/dr-transport-bench-XXXXXX", snap_src[600];
	struct result res[2];
	char *buf;
	bool bulk_only;

	/* "transport_bench bulk" skips the small-message phase (for profiling). */
	bulk_only = argc > 1 && strcmp(argv[1], "bulk") == 0;
	signal(SIGPIPE, SIG_IGN);
	th_pki_dir();
	buf = malloc(PLAIN_CHUNK > ENTRY_LEN * ENTRIES_PER_MSG ? PLAIN_CHUNK
	                                                       : ENTRY_LEN * ENTRIES_PER_MSG);
	memset(buf, 0xa5, PLAIN_CHUNK);
	if (mkdtemp(snap_dir) == NULL)
		die("mkdtemp");
	write_snapshot_source(snap_dir, snap_src, sizeof(snap_src), buf);
	for (int m = 0; m < 2; m++)
		run_mode(m == 1, bulk_only, snap_src, snap_dir, buf, &res[m]);
	unlink(snap_src);
	rmdir(snap_dir);
	free(buf);
	for (int m = 0; m < 2; m++)
		printf("%s: small %.2fM msgs/s; bulk %.0f MB/s vs plain socket copy %.0f MB/s "
		       "(best "
		       "rounds), bulk/copy per round median %.0f%%; snapshot %.0f MB/s (best), "
		       "largest heartbeat gap median %.1f ms\n",
		       m ? "TLS" : "plain", res[m].small / 1e6, res[m].bulk, res[m].plain,
		       100.0 * res[m].ratio, res[m].snap, res[m].gap);
	printf("transport_bench: plain: small %.2fM msgs/s, bulk %.0f%% of socket copy; TLS: "
	       "small %.2fM msgs/s, bulk %.0f%% of socket copy; snapshot plain %.0f MB/s, TLS "
	       "%.0f MB/s (heartbeat gap median %.1f / %.1f ms)\n",
	       res[0].small / 1e6, 100.0 * res[0].ratio, res[1].small / 1e6, 100.0 * res[1].ratio,
	       res[0].snap, res[1].snap, res[0].gap, res[1].gap);
	return 0;
}
