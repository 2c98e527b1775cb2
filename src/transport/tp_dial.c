/*
 * tp_dial.c - peer addresses and outgoing connections.
 *
 * Addresses are "ip:port", "[ipv6]:port" or "host:port".  Numeric ones are
 * parsed in place; a host name is looked up with uv_getaddrinfo on libuv's
 * thread pool at every dial and the connect starts in its callback, trying
 * each address in turn on a fresh socket.  A connection closed during the
 * lookup cancels it and lives on until the lookup's callback has run.
 */
#include "transport/tp_internal.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int tp_split_addr(const char *s, char *host, size_t cap, uint16_t *port)
{
	const char *colon, *ps;
	char *end;
	unsigned long v;
	size_t hl;

	if (s == NULL)
		return TRANSPORT_EINVAL;
	if (s[0] == '[') {
		const char *rbr = strchr(s, ']');
		if (rbr == NULL || rbr[1] != ':')
			return TRANSPORT_EINVAL;
		hl = (size_t)(rbr - s - 1);
		if (hl >= cap)
			return TRANSPORT_EINVAL;
		memcpy(host, s + 1, hl);
		ps = rbr + 2;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL)
			return TRANSPORT_EINVAL;
		hl = (size_t)(colon - s);
		if (hl >= cap)
			return TRANSPORT_EINVAL;
		memcpy(host, s, hl);
		ps = colon + 1;
	}
	host[hl] = '\0';
	if (hl == 0 || *ps < '0' || *ps > '9')
		return TRANSPORT_EINVAL;
	errno = 0;
	v = strtoul(ps, &end, 10);
	if (errno != 0 || *end != '\0' || v > 65535)
		return TRANSPORT_EINVAL;
	*port = (uint16_t)v;
	for (const char *h = host; *h != '\0'; h++)
		if (*h <= ' ' || *h >= 0x7f)
			return TRANSPORT_EINVAL;
	return TRANSPORT_OK;
}

bool tp_numeric_addr(const char *host, uint16_t port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0)
		return true;
	memset(ss, 0, sizeof(*ss));
	return uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0;
}

int tp_parse_listen_addr(const char *s, struct sockaddr_storage *ss)
{
	char host[256], port[8];
	struct addrinfo hints, *res = NULL;
	uint16_t pn;

	if (tp_split_addr(s, host, sizeof(host), &pn) != TRANSPORT_OK)
		return TRANSPORT_EINVAL;
	if (tp_numeric_addr(host, pn, ss))
		return TRANSPORT_OK;
	snprintf(port, sizeof(port), "%u", (unsigned)pn);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	if (getaddrinfo(host, port, &hints, &res) != 0 || res == NULL)
		return TRANSPORT_EINVAL;
	memset(ss, 0, sizeof(*ss));
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	freeaddrinfo(res);
	return TRANSPORT_OK;
}

void tp_set_local_addr(struct transport *t, const struct sockaddr_storage *listen)
{
	struct sockaddr_storage *ss = &t->local_addr;

	*ss = *listen;
	if (ss->ss_family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)ss;
		in->sin_port = 0;
		if (in->sin_addr.s_addr == htonl(INADDR_ANY))
			ss->ss_family = AF_UNSPEC;
	} else if (ss->ss_family == AF_INET6) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
		in6->sin6_port = 0;
		if (IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr))
			ss->ss_family = AF_UNSPEC;
	} else
		ss->ss_family = AF_UNSPEC;
}

bool tp_is_loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
		return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
	}
	if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
		const uint8_t *a = in6->sin6_addr.s6_addr;
		static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
		if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
			return true;
		return memcmp(a, v4mapped, 12) == 0 && a[12] == 127;
	}
	return false;
}

static void on_connect(uv_connect_t *req, int status);

/* Starts connecting to c->addrs[c->addr_idx]; false (connection closed) on failure. */
static bool connect_addr(struct conn *c)
{
	struct transport *t = c->t;
	int rc;

	c->state = CS_CONNECTING;
	/* From the address this node listens on, when the peer's family is
	 * the same: a peer (and a firewall) sees the node's own address. */
	rc = 0;
	if (t->local_addr.ss_family == c->addrs[c->addr_idx].ss_family)
		rc = uv_tcp_bind(&c->tcp, (const struct sockaddr *)&t->local_addr, 0);
	if (rc == 0)
		rc = uv_tcp_connect(&c->connect_req, &c->tcp,
		                    (const struct sockaddr *)&c->addrs[c->addr_idx], on_connect);
	if (rc != 0) {
		tp_errorf(t, "cannot start connecting to node %llu: %s",
		          (unsigned long long)c->peer->id, uv_strerror(rc));
		tp_conn_close(c);
		return false;
	}
	return true;
}

/* The failed attempt's socket is closed: try the next address on a fresh handle. */
static void tcp_reopened(uv_handle_t *h)
{
	struct conn *c = h->data;

	if (c->state == CS_CLOSING) {
		tp_conn_unref(c);
		return;
	}
	if (uv_tcp_init(c->t->loop, &c->tcp) != 0) {
		tp_conn_close(c); /* closes the timer; c lives on until our unref */
		tp_conn_unref(c);
		return;
	}
	c->tcp.data = c;
	c->tcp_live = true;
	connect_addr(c);
}

static void on_connect(uv_connect_t *req, int status)
{
	struct conn *c = req->data;
	struct transport *t = c->t;
	int rc;

	if (c->state == CS_CLOSING)
		return;
	if (status != 0 && c->addr_idx + 1 < c->n_addrs) {
		/* A host name with several addresses: the next one may answer. */
		c->addr_idx++;
		c->tcp_live = false;
		uv_close((uv_handle_t *)&c->tcp, tcp_reopened);
		return;
	}
	if (status != 0) {
		tp_errorf(t, "connect to node %llu: %s", (unsigned long long)c->peer->id,
		          uv_strerror(status));
		tp_conn_close(c);
		return;
	}
	tp_conn_tune(c);
	rc = t->ssl_ctx != NULL ? tp_tls_start(c) : tp_send_hello(c);
	if (rc == TRANSPORT_OK)
		rc = tp_conn_start_reading(c);
	if (rc != TRANSPORT_OK)
		tp_conn_fail(c, rc);
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	struct conn *c = req->data;
	struct transport *t = c->t;
	bool any = false;

	c->resolving = false;
	c->n_addrs = 0;
	for (struct addrinfo *ai = status == 0 ? res : NULL; ai != NULL; ai = ai->ai_next) {
		struct sockaddr_storage *ss = &c->addrs[c->n_addrs];

		if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
		    ai->ai_addrlen > sizeof(*ss))
			continue;
		any = true;
		memset(ss, 0, sizeof(*ss));
		memcpy(ss, ai->ai_addr, ai->ai_addrlen);
		/* Without TLS, only loopback addresses may be dialed. */
		if (t->security == TRANSPORT_SEC_NONE && !tp_is_loopback(ss))
			continue;
		if (++c->n_addrs == TP_MAX_ADDRS)
			break;
	}
	uv_freeaddrinfo(res);
	if (c->state == CS_CLOSING) {
		tp_conn_unref(c); /* closed (or cancelled) while the lookup ran */
		return;
	}
	c->handles--; /* the tcp handle and timer are still open */
	if (c->n_addrs == 0) {
		if (any) {
			t->st.auth_not_loopback++;
			tp_errorf(t, "node %llu (%s) is not on loopback and no TLS is configured",
			          (unsigned long long)c->peer->id, c->peer->host);
		} else {
			t->st.resolve_failures++;
			tp_errorf(t, "cannot resolve node %llu's host \"%s\": %s",
			          (unsigned long long)c->peer->id, c->peer->host,
			          status != 0 ? uv_strerror(status) : "no address");
		}
		tp_conn_close(c); /* a failed connect: backoff, unreachable */
		return;
	}
	connect_addr(c);
}

/* Starts the lookup of p's host name for c. */
static bool resolve(struct conn *c, struct peer *p)
{
	struct addrinfo hints;
	char port[8];
	int rc;

	snprintf(port, sizeof(port), "%u", (unsigned)p->port);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	c->gai.data = c;
	c->state = CS_RESOLVING;
	rc = uv_getaddrinfo(c->t->loop, &c->gai, on_resolved, p->host, port, &hints);
	if (rc != 0) {
		tp_errorf(c->t, "cannot start resolving \"%s\": %s", p->host, uv_strerror(rc));
		tp_conn_close(c);
		return false;
	}
	c->resolving = true;
	c->handles++;
	return true;
}

struct conn *tp_dial(struct transport *t, struct peer *p, uint8_t purpose)
{
	struct conn *c;
	bool started;

	if (t->closing || !p->has_addr)
		return NULL;
	if (p->host == NULL && t->security == TRANSPORT_SEC_NONE && !tp_is_loopback(&p->addr)) {
		tp_errorf(t, "node %llu is not on loopback and no TLS is configured",
		          (unsigned long long)p->id);
		t->st.auth_not_loopback++;
		return NULL;
	}
	c = tp_conn_new(t, true, purpose);
	if (c == NULL)
		return NULL;
	c->peer = p;
	c->remote_id = p->id;
	c->connect_req.data = c;
	if (purpose == TRANSPORT_PURPOSE_MSG)
		p->conn = c;
	/* The deadline covers the lookup, the connect and the handshake. */
	tp_conn_arm_deadline(c);
	if (p->host != NULL) {
		started = resolve(c, p);
	} else {
		c->addrs[0] = p->addr;
		c->n_addrs = 1;
		started = connect_addr(c);
	}
	return started ? c : NULL;
}
