/*
 * tp_tls.c - TLS 1.3 on the transport's connections (OpenSSL libssl).
 *
 * Modes (transport_security): with certificates, mutual TLS: each side
 * presents its certificate from the cluster CA (optionally checked against a
 * CRL) and verifies the other's, whose subjectAltName URI
 * "urn:dragonraft:node:<id>" must name the node dialed (client side) or the
 * id its HELLO claims (server side, transport.c).  With a cluster secret, TLS
 * 1.3 with an external PSK: the key is SHA-256 of the secret (at least 32
 * random bytes, so guessing it offline from a recorded handshake's binder is
 * hopeless); every holder of the secret may claim any node id, as with any
 * shared secret.  Either way the handshake uses (EC)DHE, so recorded traffic
 * stays secret if a key leaks later.  No session tickets, no resumption.
 *
 * The kernel here has no kTLS (CONFIG_TLS is not set), so records are made
 * and opened in user space through a BIO of our own over the connection's
 * buffers: the ciphertext libuv read is handed to OpenSSL from the read
 * buffer, and decrypted payload bytes go straight into the frame reader's
 * buffer (where a large payload lands without another copy, as in clear
 * text); ciphertext is gathered in 256 KiB pieces, each written as soon as it
 * is full, so it leaves while still in cache: what the socket takes at once
 * directly, the rest with uv_write.
 */
#include "transport/tp_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

/* Ciphertext gathered before it is written. */
#define TLS_PIECE (256u << 10)
/* A written ciphertext buffer up to this size is kept for the next write. */
#define TLS_SPARE_MAX (1u << 20)
#define PSK_IDENTITY  "dragonraft-cluster-secret"
#define PSK_DOMAIN    "dragonraft-psk-v1"
#define CIPHERSUITES  "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"

/* One piece of ciphertext being written. */
struct tls_write {
	uv_write_t req;
	struct conn *c;
	uv_write_t *user; /* the caller's request, completed with the last piece */
	uv_write_cb cb;
	struct transport_buf ct;
};

static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

/* ---- the BIO over the connection's buffers -------------------------------- */

static int bio_read(BIO *b, char *out, int n)
{
	struct conn *c = BIO_get_data(b);
	size_t k = c->tin_len < (size_t)n ? c->tin_len : (size_t)n;

	BIO_clear_retry_flags(b);
	if (k == 0) {
		BIO_set_retry_read(b);
		return -1;
	}
	memcpy(out, c->tin, k);
	c->tin += k;
	c->tin_len -= k;
	return (int)k;
}

static int emit(struct conn *c, uv_write_t *user, uv_write_cb cb);

static int bio_write(BIO *b, const char *in, int n)
{
	struct conn *c = BIO_get_data(b);

	BIO_clear_retry_flags(b);
	if (transport_buf_reserve(&c->tout, (size_t)n) != TRANSPORT_OK)
		return -1;
	memcpy(c->tout.p + c->tout.len, in, (size_t)n);
	c->tout.len += (size_t)n;
	if (c->tout.len >= TLS_PIECE && emit(c, NULL, NULL) != TRANSPORT_OK)
		return -1;
	return n;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	(void)b;
	(void)num;
	(void)ptr;
	return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static void bio_init_method(void)
{
	BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "dragonraft");

	if (m != NULL &&
	    (BIO_meth_set_read(m, bio_read) != 1 || BIO_meth_set_write(m, bio_write) != 1 ||
	     BIO_meth_set_ctrl(m, bio_ctrl) != 1)) {
		BIO_meth_free(m);
		m = NULL;
	}
	bio_method = m;
}

/* ---- writing ---------------------------------------------------------------- */

static void tls_written(uv_write_t *req, int status)
{
	struct tls_write *w = (struct tls_write *)req;
	struct conn *c = w->c;
	uv_write_t *user = w->user;
	uv_write_cb cb = w->cb;

	if (status == 0)
		c->last_active = uv_now(c->t->loop);
	if (c->spare.p == NULL && w->ct.cap <= TLS_SPARE_MAX) {
		c->spare = w->ct;
		c->spare.len = 0;
	} else {
		transport_buf_free(&w->ct);
	}
	transport_free(w);
	if (cb != NULL)
		cb(user, status);
}

/*
 * Writes the ciphertext gathered so far: what the socket takes at once (a
 * caller's request only with now), the rest with uv_write.  cb (if any) runs
 * when it is written; unless it was all written at once with now: TP_WRITTEN.
 */
static int emit_now(struct conn *c, uv_write_t *user, uv_write_cb cb, bool now)
{
	struct tls_write *w;
	uv_buf_t b;
	size_t done = 0;

	if (c->tout.len == 0 && cb == NULL)
		return TRANSPORT_OK;
	if (!c->tcp_live)
		return TRANSPORT_EIO;
	if (c->tout.len > 0 && (now || cb == NULL)) {
		/* UV_EAGAIN also while earlier writes are queued: they go first.  An
		 * error is left to uv_write, which reports it as before. */
		uv_buf_t all = uv_buf_init((char *)c->tout.p, (unsigned int)c->tout.len);
		int r = uv_try_write((uv_stream_t *)&c->tcp, &all, 1);

		if (r > 0) {
			c->last_active = uv_now(c->t->loop);
			done = (size_t)r;
		}
		if (done == c->tout.len) {
			c->tout.len = 0;
			return cb != NULL ? TP_WRITTEN : TRANSPORT_OK;
		}
	}
	w = transport_malloc(sizeof(*w));
	if (w == NULL)
		return TRANSPORT_ENOMEM;
	w->c = c;
	w->user = user;
	w->cb = cb;
	w->ct = c->tout;
	c->tout = c->spare;
	memset(&c->spare, 0, sizeof(c->spare));
	b = uv_buf_init((char *)w->ct.p + done, (unsigned int)(w->ct.len - done));
	if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, tls_written) != 0) {
		transport_buf_free(&w->ct);
		transport_free(w);
		return TRANSPORT_EIO;
	}
	return TRANSPORT_OK;
}

static int emit(struct conn *c, uv_write_t *user, uv_write_cb cb)
{
	return emit_now(c, user, cb, false);
}

int tp_tls_write(struct conn *c, uv_write_t *req, const uv_buf_t *bufs, unsigned n, uv_write_cb cb,
                 bool now)
{
	ERR_clear_error();
	for (unsigned i = 0; i < n; i++) {
		size_t off = 0;

		while (off < bufs[i].len) {
			size_t k = bufs[i].len - off;
			int r = SSL_write(c->ssl, bufs[i].base + off,
			                  k > INT_MAX ? INT_MAX : (int)k);

			if (r <= 0)
				return TRANSPORT_ETLS;
			off += (size_t)r;
		}
	}
	return emit_now(c, req, cb, now);
}

/* ---- identity ------------------------------------------------------------- */

/* The node id a certificate names: exactly one URI "urn:dragonraft:node:<id>". */
static int cert_node_id(X509 *x, uint64_t *id)
{
	GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	const size_t pl = sizeof(TRANSPORT_CERT_URI_PREFIX) - 1;
	int rc = TRANSPORT_EDECODE, n = gens != NULL ? sk_GENERAL_NAME_num(gens) : 0;
	bool found = false;

	for (int i = 0; i < n; i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		const char *s;
		size_t len;
		uint64_t v;

		if (g->type != GEN_URI)
			continue;
		s = (const char *)ASN1_STRING_get0_data(g->d.uniformResourceIdentifier);
		len = (size_t)ASN1_STRING_length(g->d.uniformResourceIdentifier);
		if (len < pl || memcmp(s, TRANSPORT_CERT_URI_PREFIX, pl) != 0)
			continue;
		if (found || transport_cert_uri_node_id(s, len, &v) != TRANSPORT_OK) {
			rc = TRANSPORT_EDECODE; /* two node names, or a malformed one */
			found = false;
			break;
		}
		found = true;
		*id = v;
		rc = TRANSPORT_OK;
	}
	GENERAL_NAMES_free(gens);
	return found ? rc : TRANSPORT_EDECODE;
}

/* After the handshake: the certificate must name a node, the dialed one for a client. */
static int check_peer(struct conn *c)
{
	X509 *x;

	if (c->t->security != TRANSPORT_SEC_CERT)
		return TRANSPORT_OK;
	x = SSL_get0_peer_certificate(c->ssl);
	if (x == NULL || cert_node_id(x, &c->cert_id) != TRANSPORT_OK) {
		tp_log_refusal(c->t, c, "certificate names no node (subjectAltName URI %s<id>)",
		               TRANSPORT_CERT_URI_PREFIX);
		return TRANSPORT_ENODEID;
	}
	if (c->client && c->cert_id != c->peer->id) {
		tp_log_refusal(c->t, c, "node %llu presented the certificate of node %llu",
		               (unsigned long long)c->peer->id, (unsigned long long)c->cert_id);
		return TRANSPORT_ENODEID;
	}
	return TRANSPORT_OK;
}

/* Logs why a TLS handshake or record failed (rate-limited). */
static void log_tls_error(struct conn *c, const char *what)
{
	long vr = SSL_get_verify_result(c->ssl);
	unsigned long e = ERR_peek_last_error();
	char buf[256];

	if (vr != X509_V_OK)
		snprintf(buf, sizeof(buf), "certificate verify failed: %s",
		         X509_verify_cert_error_string(vr));
	else if (e != 0)
		ERR_error_string_n(e, buf, sizeof(buf));
	else
		snprintf(buf, sizeof(buf), "connection closed");
	tp_log_refusal(c->t, c, "%s: %s", what, buf);
	ERR_clear_error();
}

/* ---- reading -------------------------------------------------------------- */

int tp_tls_read(struct conn *c, const uint8_t *p, size_t n)
{
	int rc = TRANSPORT_OK, r;

	c->tin = p;
	c->tin_len = n;
	ERR_clear_error();
	if (c->state == CS_TLS) {
		r = SSL_do_handshake(c->ssl);
		if (emit(c, NULL, NULL) != TRANSPORT_OK)
			return TRANSPORT_EIO;
		if (r != 1) {
			if (SSL_get_error(c->ssl, r) == SSL_ERROR_WANT_READ)
				return TRANSPORT_OK;
			log_tls_error(c, "TLS handshake failed");
			return TRANSPORT_EAUTH;
		}
		rc = check_peer(c);
		if (rc != TRANSPORT_OK)
			return rc;
		tp_handshake_done(c);
		if (c->state == CS_CLOSING)
			return TRANSPORT_ECLOSED;
	}
	/* Until the bytes read and what OpenSSL holds are used up (a last SSL_read would only
	 * say SSL_ERROR_WANT_READ). */
	while (c->tin_len > 0 || SSL_has_pending(c->ssl)) {
		uint8_t hdr[TRANSPORT_FRAME_HDR], *dst;
		size_t room = transport_frame_reader_direct(&c->rd, &dst);

		if (room == 0) {
			if (c->rd.err != TRANSPORT_OK)
				return c->rd.err;
			/* At a frame boundary: read just its header, so the payload can land in
			 * place. */
			dst = hdr;
			room = transport_frame_reader_header_missing(&c->rd);
		}
		r = SSL_read(c->ssl, dst, room > INT_MAX ? INT_MAX : (int)room);
		if (r <= 0) {
			int e = SSL_get_error(c->ssl, r);

			if (e == SSL_ERROR_WANT_READ)
				break;
			if (e == SSL_ERROR_ZERO_RETURN)
				return TRANSPORT_ECLOSED;
			log_tls_error(c, "TLS record error");
			return TRANSPORT_ETLS;
		}
		if (dst == hdr)
			rc = transport_frame_reader_feed(&c->rd, hdr, (size_t)r, tp_on_frame, c);
		else
			rc = transport_frame_reader_commit(&c->rd, (size_t)r, tp_on_frame, c);
		if (rc != TRANSPORT_OK)
			return rc;
	}
	/* Reading may produce output (an alert, a key update): send it. */
	return emit(c, NULL, NULL) == TRANSPORT_OK ? TRANSPORT_OK : TRANSPORT_EIO;
}

/* ---- connections ------------------------------------------------------------ */

int tp_tls_start(struct conn *c)
{
	BIO *b;
	int r;

	c->ssl = SSL_new(c->t->ssl_ctx);
	b = c->ssl != NULL ? BIO_new(bio_method) : NULL;
	if (b == NULL) {
		tp_errorf(c->t, "out of memory for a TLS connection");
		return TRANSPORT_ENOMEM;
	}
	BIO_set_data(b, c);
	BIO_set_init(b, 1);
	SSL_set_bio(c->ssl, b, b);
	c->state = CS_TLS;
	c->rd.no_crc = true;
	if (!c->client) {
		SSL_set_accept_state(c->ssl);
		return TRANSPORT_OK;
	}
	SSL_set_connect_state(c->ssl);
	ERR_clear_error();
	r = SSL_do_handshake(c->ssl); /* writes the ClientHello */
	if (r != 1 && SSL_get_error(c->ssl, r) != SSL_ERROR_WANT_READ) {
		log_tls_error(c, "TLS handshake failed");
		return TRANSPORT_EAUTH;
	}
	return emit(c, NULL, NULL);
}

void tp_tls_conn_free(struct conn *c)
{
	SSL_free(c->ssl);
	c->ssl = NULL;
	transport_buf_free(&c->tout);
	transport_buf_free(&c->spare);
}

/* ---- the context ------------------------------------------------------------ */

static const SSL_CIPHER *psk_cipher(SSL *ssl)
{
	static const unsigned char aes128gcm_sha256[] = {0x13, 0x01};

	return SSL_CIPHER_find(ssl, aes128gcm_sha256);
}

static SSL_SESSION *psk_session(SSL *ssl)
{
	struct transport *t = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
	const SSL_CIPHER *cipher = psk_cipher(ssl);
	SSL_SESSION *s = cipher != NULL ? SSL_SESSION_new() : NULL;

	if (s != NULL && (SSL_SESSION_set1_master_key(s, t->psk, sizeof(t->psk)) != 1 ||
	                  SSL_SESSION_set_cipher(s, cipher) != 1 ||
	                  SSL_SESSION_set_protocol_version(s, TLS1_3_VERSION) != 1)) {
		SSL_SESSION_free(s);
		s = NULL;
	}
	return s;
}

/* Client: offers the cluster PSK. */
static int psk_use(SSL *ssl, const EVP_MD *md, const unsigned char **id, size_t *idlen,
                   SSL_SESSION **sess)
{
	const SSL_CIPHER *cipher = psk_cipher(ssl);

	*sess = NULL;
	if (cipher == NULL)
		return 0;
	if (md != NULL && md != SSL_CIPHER_get_handshake_digest(cipher))
		return 1; /* a HelloRetryRequest chose another hash: no PSK */
	*sess = psk_session(ssl);
	*id = (const unsigned char *)PSK_IDENTITY;
	*idlen = sizeof(PSK_IDENTITY) - 1;
	return *sess != NULL;
}

/* Server: accepts the cluster PSK's identity only. */
static int psk_find(SSL *ssl, const unsigned char *id, size_t idlen, SSL_SESSION **sess)
{
	*sess = NULL;
	if (idlen != sizeof(PSK_IDENTITY) - 1 || memcmp(id, PSK_IDENTITY, idlen) != 0)
		return 1; /* unknown identity: the handshake fails */
	*sess = psk_session(ssl);
	return *sess != NULL;
}

/* Records OpenSSL's first error (the cause: "No such file or directory") in t->errmsg. */
static int ssl_error(struct transport *t, const char *what, const char *file)
{
	char buf[200];

	ERR_error_string_n(ERR_peek_error(), buf, sizeof(buf));
	ERR_clear_error();
	tp_errorf(t, "%s \"%s\": %s", what, file != NULL ? file : "", buf);
	return TRANSPORT_EINVAL;
}

/*
 * PostgreSQL's own rule for ssl_key_file (be-secure-common.c): a regular file,
 * owned by this user with no group or world access (0600 or less), or by root
 * with at most group read (0640).  A key others can read is refused, not used.
 */
static int check_key_file(struct transport *t, const char *path)
{
	struct stat st;

	if (stat(path, &st) != 0) {
		tp_errorf(t, "cannot access private key file \"%s\": %s", path, strerror(errno));
		return TRANSPORT_EINVAL;
	}
	if (!S_ISREG(st.st_mode)) {
		tp_errorf(t, "private key file \"%s\" is not a regular file", path);
		return TRANSPORT_EINVAL;
	}
	if (st.st_uid != geteuid() && st.st_uid != 0) {
		tp_errorf(t, "private key file \"%s\" must be owned by this server's user or root",
		          path);
		return TRANSPORT_EINVAL;
	}
	if ((st.st_uid == geteuid() && (st.st_mode & (S_IRWXG | S_IRWXO)) != 0) ||
	    (st.st_uid == 0 && (st.st_mode & (S_IWGRP | S_IXGRP | S_IRWXO)) != 0)) {
		tp_errorf(
		        t,
		        "private key file \"%s\" has group or world access: it must be mode 0600 "
		        "or less when owned by this server's user, 0640 or less when owned by root",
		        path);
		return TRANSPORT_EINVAL;
	}
	return TRANSPORT_OK;
}

static int load_certs(struct transport *t, SSL_CTX *ctx, const struct transport_tls_files *f)
{
	uint64_t id;

	if (SSL_CTX_use_certificate_chain_file(ctx, f->cert) != 1)
		return ssl_error(t, "cannot load certificate", f->cert);
	if (check_key_file(t, f->key) != TRANSPORT_OK)
		return TRANSPORT_EINVAL;
	if (SSL_CTX_use_PrivateKey_file(ctx, f->key, SSL_FILETYPE_PEM) != 1)
		return ssl_error(t, "cannot load private key", f->key);
	if (SSL_CTX_check_private_key(ctx) != 1)
		return ssl_error(t, "private key does not match certificate", f->key);
	if (SSL_CTX_load_verify_locations(ctx, f->ca, NULL) != 1)
		return ssl_error(t, "cannot load CA certificates", f->ca);
	if (f->crl != NULL) {
		X509_STORE *st = SSL_CTX_get_cert_store(ctx);
		X509_LOOKUP *lk = X509_STORE_add_lookup(st, X509_LOOKUP_file());

		if (lk == NULL || X509_load_crl_file(lk, f->crl, X509_FILETYPE_PEM) < 1)
			return ssl_error(t, "cannot load CRL", f->crl);
		X509_STORE_set_flags(st, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
	}
	if (cert_node_id(SSL_CTX_get0_certificate(ctx), &id) != TRANSPORT_OK ||
	    id != t->cfg.node_id) {
		tp_errorf(t,
		          "certificate \"%s\" does not name node %llu (subjectAltName URI %s%llu)",
		          f->cert, (unsigned long long)t->cfg.node_id, TRANSPORT_CERT_URI_PREFIX,
		          (unsigned long long)t->cfg.node_id);
		return TRANSPORT_EINVAL;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	return TRANSPORT_OK;
}

static int setup_psk(struct transport *t, SSL_CTX *ctx)
{
	const struct transport_config *cfg = &t->cfg;
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned int len = 0;
	bool ok;

	if (cfg->secret_len < 32) {
		tp_errorf(t,
		          "the cluster secret has %zu bytes; at least 32 random bytes are needed",
		          cfg->secret_len);
		EVP_MD_CTX_free(md);
		return TRANSPORT_EINVAL;
	}
	ok = md != NULL && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
	     EVP_DigestUpdate(md, PSK_DOMAIN, sizeof(PSK_DOMAIN) - 1) == 1 &&
	     EVP_DigestUpdate(md, cfg->secret, cfg->secret_len) == 1 &&
	     EVP_DigestFinal_ex(md, t->psk, &len) == 1 && len == sizeof(t->psk);
	EVP_MD_CTX_free(md);
	if (!ok)
		return ssl_error(t, "cannot derive the PSK", NULL);
	SSL_CTX_set_psk_use_session_callback(ctx, psk_use);
	SSL_CTX_set_psk_find_session_callback(ctx, psk_find);
	return TRANSPORT_OK;
}

/* A TLS 1.3 context with certificates from f (f NULL: the cluster PSK). */
static int new_ctx(struct transport *t, const struct transport_tls_files *f, SSL_CTX **out)
{
	SSL_CTX *ctx;
	int rc;

	pthread_once(&bio_once, bio_init_method);
	ctx = bio_method != NULL ? SSL_CTX_new(TLS_method()) : NULL;
	if (ctx == NULL)
		return ssl_error(t, "cannot create a TLS context", NULL);
	SSL_CTX_set_app_data(ctx, t);
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
	    SSL_CTX_set_ciphersuites(ctx, CIPHERSUITES) != 1 ||
	    SSL_CTX_set_num_tickets(ctx, 0) != 1) {
		rc = ssl_error(t, "cannot configure TLS 1.3", NULL);
		goto err_free_ctx;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	rc = f != NULL ? load_certs(t, ctx, f) : setup_psk(t, ctx);
	if (rc != TRANSPORT_OK)
		goto err_free_ctx;
	*out = ctx;
	return TRANSPORT_OK;

err_free_ctx:
	SSL_CTX_free(ctx);
	return rc;
}

int tp_tls_setup(struct transport *t)
{
	const struct transport_config *cfg = &t->cfg;
	struct transport_tls_files f = {cfg->tls_cert_file, cfg->tls_key_file, cfg->tls_ca_file,
	                                cfg->tls_crl_file};
	bool certs = f.cert != NULL || f.key != NULL || f.ca != NULL;

	if (certs && (f.cert == NULL || f.key == NULL || f.ca == NULL)) {
		tp_errorf(t, "TLS needs a certificate, its key and the CA file together");
		return TRANSPORT_EINVAL;
	}
	if (certs && cfg->secret != NULL) {
		tp_errorf(t, "configure certificates or a cluster secret, not both");
		return TRANSPORT_EINVAL;
	}
	if (!certs && f.crl != NULL) {
		tp_errorf(t, "a CRL needs certificates");
		return TRANSPORT_EINVAL;
	}
	if (!certs && cfg->secret == NULL) {
		t->security = TRANSPORT_SEC_NONE;
		return TRANSPORT_OK;
	}
	t->security = certs ? TRANSPORT_SEC_CERT : TRANSPORT_SEC_PSK;
	return new_ctx(t, certs ? &f : NULL, &t->ssl_ctx);
}

/* Does the peer's certificate of ssl still verify against ctx's CA and CRL?  Why not in *err. */
static bool peer_still_valid(SSL_CTX *ctx, SSL *ssl, int *err)
{
	X509 *leaf = SSL_get0_peer_certificate(ssl);
	X509_STORE_CTX *sc = X509_STORE_CTX_new();
	bool ok = false;

	*err = X509_V_ERR_UNSPECIFIED;
	if (leaf != NULL && sc != NULL &&
	    X509_STORE_CTX_init(sc, SSL_CTX_get_cert_store(ctx), leaf,
	                        SSL_get_peer_cert_chain(ssl)) == 1) {
		ok = X509_verify_cert(sc) == 1;
		*err = X509_STORE_CTX_get_error(sc);
	}
	X509_STORE_CTX_free(sc);
	ERR_clear_error();
	return ok;
}

int transport_reload_tls(struct transport *t, const struct transport_tls_files *f)
{
	SSL_CTX *ctx, *old = t->ssl_ctx;
	struct conn *c, *next;
	int rc, err;

	if (t->closing)
		return TRANSPORT_ECLOSED;
	if (t->security != TRANSPORT_SEC_CERT) {
		tp_errorf(t, "only a transport that started with certificates can reload them");
		return TRANSPORT_EINVAL;
	}
	if (f == NULL || f->cert == NULL || f->key == NULL || f->ca == NULL) {
		tp_errorf(t, "TLS needs a certificate, its key and the CA file together");
		return TRANSPORT_EINVAL;
	}
	rc = new_ctx(t, f, &ctx);
	if (rc != TRANSPORT_OK)
		return rc; /* the files in use stay */
	t->ssl_ctx = ctx;
	SSL_CTX_free(old); /* each connection holds a reference to the context it started with */
	for (c = t->conns; c != NULL; c = next) {
		next = c->next;
		if (c->ssl == NULL || c->state == CS_CLOSING)
			continue;
		if (c->state == CS_TLS) {
			tp_conn_close(c); /* its handshake began with the old files: redial */
		} else if (!peer_still_valid(ctx, c->ssl, &err)) {
			t->st.tls_reload_closed++;
			tp_log_refusal(t, c, "certificate no longer valid after a TLS reload: %s",
			               X509_verify_cert_error_string(err));
			tp_conn_close(c);
		}
	}
	return TRANSPORT_OK;
}

void tp_tls_free(struct transport *t)
{
	SSL_CTX_free(t->ssl_ctx);
	t->ssl_ctx = NULL;
	OPENSSL_cleanse(t->psk, sizeof(t->psk));
}

/* ---- the cluster secret file ---------------------------------------------- */

static int hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

int transport_read_secret_file(const char *path, uint8_t *out, size_t cap, size_t *len,
                               char *errmsg, size_t errmsg_len)
{
	char buf[4097];
	struct stat st;
	ssize_t n;
	size_t digits;
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	int rc = TRANSPORT_EINVAL;

	*len = 0;
	if (fd < 0) {
		snprintf(errmsg, errmsg_len, "cannot open cluster secret file \"%s\": %s", path,
		         strerror(errno));
		return TRANSPORT_EIO;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		snprintf(errmsg, errmsg_len, "cluster secret file \"%s\" is not a regular file",
		         path);
		goto out_close;
	}
	if (st.st_uid != geteuid() || (st.st_mode & 077) != 0) {
		snprintf(errmsg, errmsg_len,
		         "cluster secret file \"%s\" must belong to this user and be readable by "
		         "nobody else (chmod 600)",
		         path);
		goto out_close;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	if (n < 0) {
		snprintf(errmsg, errmsg_len, "cannot read cluster secret file \"%s\": %s", path,
		         strerror(errno));
		rc = TRANSPORT_EIO;
		goto out_close;
	}
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	digits = (size_t)n;
	for (size_t i = 0; i < digits; i++)
		if (hexval((unsigned char)buf[i]) < 0)
			digits = 0;
	if (digits < 64 || digits % 2 != 0 || digits / 2 > cap) {
		snprintf(errmsg, errmsg_len,
		         "cluster secret file \"%s\" must hold 64 to %zu hex digits (32 random "
		         "bytes or more: openssl rand -hex 32)",
		         path, 2 * cap);
		goto out_close;
	}
	for (size_t i = 0; i < digits / 2; i++)
		out[i] = (uint8_t)(hexval((unsigned char)buf[2 * i]) << 4 |
		                   hexval((unsigned char)buf[2 * i + 1]));
	*len = digits / 2;
	rc = TRANSPORT_OK;
out_close:
	OPENSSL_cleanse(buf, sizeof(buf));
	close(fd);
	return rc;
}
