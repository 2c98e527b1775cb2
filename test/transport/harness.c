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

#include <fcntl.h>
#include <sys/stat.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "transport/auth.h"
#include "transport/frame.h"

uint64_t th_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* How long this thread has waited on a run queue (/proc/thread-self/schedstat's
 * second field), 0 if the kernel does not say: on a loaded machine a gap
 * between messages may be the scheduler's, not the transport's. */
static uint64_t th_runq_ms(void)
{
	unsigned long long run, wait = 0;
	FILE *f = fopen("/proc/thread-self/schedstat", "r");

	if (f != NULL) {
		if (fscanf(f, "%llu %llu", &run, &wait) != 2)
			wait = 0;
		fclose(f);
	}
	return wait / 1000000;
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
	uint64_t now = th_now_ms(), runq = 0;

	(void)from;
	nd->batches++;
	if (nd->gap_watch) {
		runq = th_runq_ms();
		if (nd->last_msg_ms != 0) {
			uint64_t gap = now - nd->last_msg_ms, waited = runq - nd->last_runq_ms;

			gap = gap > waited ? gap - waited : 0;
			if (gap > nd->max_gap_ms)
				nd->max_gap_ms = gap;
		}
	}
	nd->last_msg_ms = now;
	nd->last_runq_ms = runq;
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

static void on_snap_sent(void *ctx, uint64_t to, uint64_t group, raft_index index, int status,
                         bool by_receiver)
{
	struct th_node *nd = ctx;

	(void)to;
	(void)group;
	(void)index;
	nd->snap_sent_status = status;
	nd->snap_sent_by_receiver = by_receiver;
}

static void on_no_room(void *ctx, const struct transport_no_room *r)
{
	struct th_node *nd = ctx;

	nd->no_room++;
	nd->last_no_room = *r;
	nd->last_no_room.dir = NULL;
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

static void on_log(void *ctx, int level, const char *msg)
{
	struct th_node *nd = ctx;

	if (level >= 0 && level < 4)
		nd->log_lines[level]++;
	snprintf(nd->last_log, sizeof(nd->last_log), "%s", msg);
}

int th_node_start(struct th_node *n, uv_loop_t *loop, uint64_t id, int port, int sec,
                  const struct transport_config *extra)
{
	struct transport_config cfg;
	struct transport_callbacks cb = {
	        .ctx = n,
	        .on_message_batch = on_batch,
	        .on_unreachable = on_unreachable,
	        .on_snapshot_received = on_snap_received,
	        .on_snapshot_sent = on_snap_sent,
	        .on_snapshot_no_room = on_no_room,
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
	if (cfg.listen_addr == NULL)
		cfg.listen_addr = addr;
	cfg.log_fn = on_log;
	cfg.log_ctx = n;
	if (sec == TH_PSK && cfg.secret == NULL) {
		cfg.secret = (const uint8_t *)TH_PSK_SECRET;
		cfg.secret_len = strlen(TH_PSK_SECRET);
	}
	if (sec == TH_CERT && cfg.tls_cert_file == NULL) {
		char name[32];

		snprintf(name, sizeof(name), "n%llu.crt", (unsigned long long)id);
		cfg.tls_cert_file = th_pki_path(n->files[0], sizeof(n->files[0]), name);
		snprintf(name, sizeof(name), "n%llu.key", (unsigned long long)id);
		cfg.tls_key_file = th_pki_path(n->files[1], sizeof(n->files[1]), name);
	}
	if (sec == TH_CERT && cfg.tls_ca_file == NULL)
		cfg.tls_ca_file = th_pki_path(n->files[2], sizeof(n->files[2]), "ca.crt");
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

/* ---- the test PKI -------------------------------------------------------- */

static char pki_dir[64];

static void pki_remove(void)
{
	th_remove_dir(pki_dir);
}

static void pki_die(const char *what)
{
	fprintf(stderr, "test PKI: %s\n", what);
	ERR_print_errors_fp(stderr);
	abort();
}

static void add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *e;

	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (e == NULL || X509_add_ext(x, e, -1) != 1)
		pki_die("extension");
	X509_EXTENSION_free(e);
}

static void write_pem(const char *name, X509 *x, EVP_PKEY *k)
{
	char path[600];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s.crt", pki_dir, name);
	f = fopen(path, "w");
	if (f == NULL || PEM_write_X509(f, x) != 1)
		pki_die(path);
	fclose(f);
	snprintf(path, sizeof(path), "%s/%s.key", pki_dir, name);
	f = fopen(path, "w");
	if (f == NULL || PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) != 1)
		pki_die(path);
	fclose(f);
	if (chmod(path, 0600) != 0) /* the transport refuses a key others can read */
		pki_die(path);
}

/* A certificate: a CA when id is 0, else node id's (no URI when uri is false). */
static X509 *make_cert(const char *name, uint64_t id, bool uri, long from_days, long to_days,
                       X509 *ca, EVP_PKEY *ca_key, EVP_PKEY **key_out)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	char cn[64], san[64];

	if (k == NULL || x == NULL)
		pki_die("key");
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), id == 0 ? 1000 : (long)id);
	X509_gmtime_adj(X509_getm_notBefore(x), from_days * 86400);
	X509_gmtime_adj(X509_getm_notAfter(x), to_days * 86400);
	snprintf(cn, sizeof(cn), "dragonraft test %s", name);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
	                           (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(ca != NULL ? ca : x));
	X509_set_pubkey(x, k);
	if (id == 0) {
		add_ext(x, x, NID_basic_constraints, "critical,CA:TRUE");
		add_ext(x, x, NID_key_usage, "critical,keyCertSign,cRLSign");
	} else {
		add_ext(x, ca, NID_basic_constraints, "critical,CA:FALSE");
		add_ext(x, ca, NID_key_usage, "critical,digitalSignature");
		add_ext(x, ca, NID_ext_key_usage, "serverAuth,clientAuth");
		snprintf(san, sizeof(san), "URI:%s%llu", TRANSPORT_CERT_URI_PREFIX,
		         (unsigned long long)id);
		if (uri)
			add_ext(x, ca, NID_subject_alt_name, san);
	}
	if (X509_sign(x, ca_key != NULL ? ca_key : k, EVP_sha256()) == 0)
		pki_die("sign");
	write_pem(name, x, k);
	*key_out = k;
	return x;
}

static void make_crl(X509 *ca, EVP_PKEY *ca_key, long serial)
{
	X509_CRL *crl = X509_CRL_new();
	X509_REVOKED *r = X509_REVOKED_new();
	ASN1_INTEGER *sn = ASN1_INTEGER_new();
	ASN1_TIME *now = X509_gmtime_adj(NULL, 0), *next = X509_gmtime_adj(NULL, 86400);
	char path[600];
	FILE *f;

	ASN1_INTEGER_set(sn, serial);
	X509_CRL_set_version(crl, 1);
	X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca));
	X509_CRL_set1_lastUpdate(crl, now);
	X509_CRL_set1_nextUpdate(crl, next);
	X509_REVOKED_set_serialNumber(r, sn);
	X509_REVOKED_set_revocationDate(r, now);
	X509_CRL_add0_revoked(crl, r);
	X509_CRL_sort(crl);
	if (X509_CRL_sign(crl, ca_key, EVP_sha256()) == 0)
		pki_die("crl");
	snprintf(path, sizeof(path), "%s/crl.pem", pki_dir);
	f = fopen(path, "w");
	if (f == NULL || PEM_write_X509_CRL(f, crl) != 1)
		pki_die(path);
	fclose(f);
	ASN1_INTEGER_free(sn);
	ASN1_TIME_free(now);
	ASN1_TIME_free(next);
	X509_CRL_free(crl);
}

const char *th_pki_dir(void)
{
	EVP_PKEY *ca_key, *other_key, *k;
	X509 *ca, *other, *x;
	char name[16];

	if (pki_dir[0] != '\0')
		return pki_dir;
	snprintf(pki_dir, sizeof(pki_dir), "/tmp/dr-test-pki-XXXXXX");
	if (mkdtemp(pki_dir) == NULL)
		pki_die("mkdtemp");
	atexit(pki_remove);
	ca = make_cert("ca", 0, false, -1, 3650, NULL, NULL, &ca_key);
	for (uint64_t id = 1; id <= 9; id++) {
		snprintf(name, sizeof(name), "n%llu", (unsigned long long)id);
		x = make_cert(name, id, true, -1, 365, ca, ca_key, &k);
		X509_free(x);
		EVP_PKEY_free(k);
	}
	x = make_cert("expired-n1", 1, true, -30, -1, ca, ca_key, &k);
	X509_free(x);
	EVP_PKEY_free(k);
	x = make_cert("nouri-n1", 1, false, -1, 365, ca, ca_key, &k);
	X509_free(x);
	EVP_PKEY_free(k);
	make_crl(ca, ca_key, 3);
	other = make_cert("other-ca", 0, false, -1, 3650, NULL, NULL, &other_key);
	x = make_cert("other-n1", 1, true, -1, 365, other, other_key, &k);
	X509_free(x);
	EVP_PKEY_free(k);
	X509_free(other);
	EVP_PKEY_free(other_key);
	X509_free(ca);
	EVP_PKEY_free(ca_key);
	return pki_dir;
}

const char *th_pki_path(char *buf, size_t cap, const char *name)
{
	snprintf(buf, cap, "%s/%s", th_pki_dir(), name);
	return buf;
}

/* ---- the raw client ------------------------------------------------------- */

static const unsigned char psk_id[] = "dragonraft-cluster-secret";

static int raw_psk_use(SSL *ssl, const EVP_MD *md, const unsigned char **id, size_t *idlen,
                       SSL_SESSION **sess)
{
	static const unsigned char aes128gcm[] = {0x13, 0x01};
	const SSL_CIPHER *cipher = SSL_CIPHER_find(ssl, aes128gcm);
	unsigned char key[32];
	unsigned int len = 0;
	EVP_MD_CTX *m = EVP_MD_CTX_new();
	SSL_SESSION *s = SSL_SESSION_new();

	(void)md;
	/* The transport's derivation: SHA-256("dragonraft-psk-v1" || secret). */
	EVP_DigestInit_ex(m, EVP_sha256(), NULL);
	EVP_DigestUpdate(m, "dragonraft-psk-v1", 17);
	EVP_DigestUpdate(m, TH_PSK_SECRET, strlen(TH_PSK_SECRET));
	EVP_DigestFinal_ex(m, key, &len);
	EVP_MD_CTX_free(m);
	SSL_SESSION_set1_master_key(s, key, sizeof(key));
	SSL_SESSION_set_cipher(s, cipher);
	SSL_SESSION_set_protocol_version(s, TLS1_3_VERSION);
	*sess = s;
	*id = psk_id;
	*idlen = sizeof(psk_id) - 1;
	return 1;
}

/* Runs the loop once without blocking, then waits a little for the socket. */
static void pump(struct th_raw *r)
{
	uv_run(r->loop, UV_RUN_NOWAIT);
}

/* Retries an SSL call that wants I/O until it succeeds, fails or the deadline passes. */
static int ssl_wait(struct th_raw *r, int ret, uint64_t deadline)
{
	int e = SSL_get_error(r->ssl, ret);

	if ((e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) || th_now_ms() > deadline)
		return -1;
	pump(r);
	return 0;
}

int th_raw_connect(struct th_raw *r, uv_loop_t *loop, int port, const char *src, int sec,
                   const char *cert)
{
	struct sockaddr_in sin;
	uint64_t deadline = th_now_ms() + 5000;
	char path[600];
	int one = 1, rc;

	memset(r, 0, sizeof(*r));
	r->loop = loop;
	r->fd = socket(AF_INET, SOCK_STREAM, 0);
	if (r->fd < 0)
		return -1;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	if (src != NULL) {
		inet_pton(AF_INET, src, &sin.sin_addr);
		if (bind(r->fd, (struct sockaddr *)&sin, sizeof(sin)) != 0)
			return -1;
	}
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(r->fd, (struct sockaddr *)&sin, sizeof(sin)) != 0)
		return -1;
	setsockopt(r->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	fcntl(r->fd, F_SETFL, fcntl(r->fd, F_GETFL) | O_NONBLOCK);
	if (sec == TH_NONE)
		return 0;
	r->ctx = SSL_CTX_new(TLS_client_method());
	SSL_CTX_set_min_proto_version(r->ctx, TLS1_3_VERSION);
	SSL_CTX_set_num_tickets(r->ctx, 0);
	if (sec == TH_CERT) {
		snprintf(path, sizeof(path), "%s/%s.crt", th_pki_dir(), cert);
		if (SSL_CTX_use_certificate_file(r->ctx, path, SSL_FILETYPE_PEM) != 1)
			return -1;
		snprintf(path, sizeof(path), "%s/%s.key", th_pki_dir(), cert);
		if (SSL_CTX_use_PrivateKey_file(r->ctx, path, SSL_FILETYPE_PEM) != 1)
			return -1;
	} else {
		SSL_CTX_set_psk_use_session_callback(r->ctx, raw_psk_use);
	}
	r->ssl = SSL_new(r->ctx);
	SSL_set_fd(r->ssl, r->fd);
	while ((rc = SSL_connect(r->ssl)) != 1)
		if (ssl_wait(r, rc, deadline) != 0)
			return -1;
	return 0;
}

int th_raw_write(struct th_raw *r, const void *p, size_t n)
{
	const uint8_t *b = p;
	uint64_t deadline = th_now_ms() + 10000;

	while (n > 0) {
		ssize_t w;

		if (r->ssl != NULL) {
			int k = SSL_write(r->ssl, b, n > (1u << 20) ? 1 << 20 : (int)n);

			if (k <= 0) {
				if (ssl_wait(r, k, deadline) != 0)
					return -1;
				continue;
			}
			w = k;
		} else {
			w = send(r->fd, b, n, MSG_NOSIGNAL);
			if (w < 0 && (errno == EAGAIN || errno == EINTR) &&
			    th_now_ms() < deadline) {
				pump(r);
				continue;
			}
			if (w <= 0)
				return -1;
		}
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

int th_raw_send_frame(struct th_raw *r, uint8_t kind, const void *payload, uint32_t len,
                      bool bad_crc)
{
	uint8_t hdr[TRANSPORT_FRAME_HDR];

	transport_frame_header_put(hdr, kind, payload, len);
	if (bad_crc)
		hdr[15] ^= 0x5a;
	if (th_raw_write(r, hdr, sizeof(hdr)) != 0)
		return -1;
	return len > 0 ? th_raw_write(r, payload, len) : 0;
}

/* Reads exactly n bytes while the loop runs: 1, 0 on EOF or error, -1 on timeout. */
static int read_exact(struct th_raw *r, uint8_t *p, size_t n, uint64_t deadline)
{
	size_t got = 0;

	while (got < n) {
		ssize_t k;

		if (r->ssl != NULL) {
			int v = SSL_read(r->ssl, p + got, (int)(n - got));

			if (v <= 0) {
				int e = SSL_get_error(r->ssl, v);

				if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
					return 0;
				if (th_now_ms() > deadline)
					return -1;
				pump(r);
				continue;
			}
			k = v;
		} else {
			k = recv(r->fd, p + got, n - got, 0);
			if (k == 0)
				return 0;
			if (k < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				return 0;
			if (k < 0) {
				if (th_now_ms() > deadline)
					return -1;
				pump(r);
				continue;
			}
		}
		got += (size_t)k;
	}
	return 1;
}

int th_raw_recv_frame(struct th_raw *r, uint8_t *payload, uint32_t cap, uint32_t *len,
                      uint64_t timeout_ms)
{
	uint64_t deadline = th_now_ms() + timeout_ms;
	uint8_t hdr[TRANSPORT_FRAME_HDR];
	struct transport_frame_header h;
	int rc = read_exact(r, hdr, sizeof(hdr), deadline);

	if (rc <= 0)
		return rc;
	if (transport_frame_header_check(hdr, cap, &h) != TRANSPORT_OK)
		return -1;
	rc = read_exact(r, payload, h.len, deadline);
	if (rc <= 0)
		return rc;
	if (r->ssl == NULL && transport_frame_crc_check(hdr, payload, h.len) != TRANSPORT_OK)
		return -1;
	*len = h.len;
	return h.kind;
}

bool th_raw_wait_closed(struct th_raw *r, uint64_t timeout_ms)
{
	uint64_t deadline = th_now_ms() + timeout_ms;
	uint8_t b[4096];

	for (;;) {
		int rc = read_exact(r, b, sizeof(b), deadline);

		if (rc == 0)
			return true;
		if (rc < 0)
			return false;
	}
}

int th_raw_hello(struct th_raw *r, uint64_t client_id, uint64_t server_id, uint8_t purpose)
{
	struct transport_hello h = {
	        .client_id = client_id, .server_id = server_id, .purpose = purpose};
	uint8_t out[TRANSPORT_HELLO_LEN], in[64];
	uint32_t len;

	transport_hello_put(out, &h);
	if (th_raw_send_frame(r, TF_HELLO, out, sizeof(out), false) != 0)
		return -1;
	if (th_raw_recv_frame(r, in, sizeof(in), &len, 5000) != TF_WELCOME ||
	    len != TRANSPORT_WELCOME_LEN || tp_get64(in) != server_id)
		return -1;
	return 0;
}

void th_raw_close(struct th_raw *r)
{
	SSL_free(r->ssl);
	SSL_CTX_free(r->ctx);
	if (r->fd >= 0)
		close(r->fd);
	memset(r, 0, sizeof(*r));
	r->fd = -1;
}

int th_pair_start(struct th_pair *p, int sec_a, int sec_b, const struct transport_config *extra)
{
	char addr[64];
	int rc;

	uv_loop_init(&p->loop);
	rc = th_node_start(&p->a, &p->loop, 1, 0, sec_a, extra);
	if (rc == TRANSPORT_OK)
		rc = th_node_start(&p->b, &p->loop, 2, 0, sec_b, extra);
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
