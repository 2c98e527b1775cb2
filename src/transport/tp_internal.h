/*
 * tp_internal.h - structures shared by transport.c, tp_dial.c, tp_snap_send.c and tp_snap_recv.c.
 */
#ifndef DRAGONRAFT_TRANSPORT_TP_INTERNAL_H
#define DRAGONRAFT_TRANSPORT_TP_INTERNAL_H

#include <sys/socket.h>

#include <openssl/ssl.h>

#include "transport/auth.h"
#include "transport/codec.h"
#include "transport/frame.h"
#include "transport/transport.h"

#define TP_READ_BUF    (64u << 10)
#define TP_DIRECT_MAX  (256u << 10)
#define TP_UNREACH_MAX 4096
#define TP_MAX_ADDRS   8  /* resolved addresses of a host name tried per dial */
#define TP_LOG_SLOTS   64 /* sources (IPv4 /24, IPv6 /64) with a line in this log window */

enum conn_state {
	CS_RESOLVING = 1, /* client: host name lookup on the thread pool */
	CS_CONNECTING,    /* client: TCP connect pending */
	CS_TLS,           /* TLS handshake in progress (either side) */
	CS_HELLO_SENT,    /* client: waiting for WELCOME */
	CS_WAIT_HELLO,    /* server: waiting for HELLO */
	CS_OPEN,          /* authenticated */
	CS_CLOSING,
};

struct peer;
struct snap_send;
struct snap_recv;

/* One TCP connection, either direction, either purpose. */
struct conn {
	uv_tcp_t tcp;
	uv_timer_t timer; /* handshake deadline */
	uv_connect_t connect_req;
	uv_getaddrinfo_t gai; /* client: lookup of the peer's host name */
	struct transport *t;
	struct conn *next, *prev;
	struct peer *peer;    /* client: dialed peer; server: set once authenticated */
	struct snap_send *ss; /* client snapshot connection */
	struct snap_recv *sr; /* server snapshot connection, once BEGIN arrived */
	bool client;
	uint8_t purpose;
	int state;
	int handles;           /* initialised handles not yet closed, plus a lookup in flight */
	bool resolving;        /* gai in flight */
	bool tcp_live;         /* tcp initialised and not being closed */
	bool paused;           /* reading stopped (snapshot receiver's write backpressure) */
	bool in_hs;            /* server: counted in the handshake limits */
	bool sr_ended;         /* server: the receiver ended the stream with SNAP_DONE (the group
	                        * stopped, a failed write): the chunks (up to sr_unsent bytes)
	                        * and the END still on their way are discarded, until that END
	                        * or a new SNAP_BEGIN */
	uint64_t sr_unsent;    /* bytes of the stream the sender had not sent then */
	int n_addrs, addr_idx; /* client: addresses to try, the one being tried */
	struct sockaddr_storage addrs[TP_MAX_ADDRS]; /* server: addrs[0] is the remote address */
	uint64_t remote_id;
	uint64_t cert_id;     /* node id named by the peer's certificate (0: none) */
	uint64_t last_active; /* uv_now() of the last byte read or written */
	SSL *ssl;             /* NULL without TLS */
	const uint8_t *tin;   /* ciphertext not yet consumed by OpenSSL (points into rbuf) */
	size_t tin_len;
	struct transport_buf tout;  /* ciphertext produced and not yet handed to uv_write */
	struct transport_buf spare; /* a written ciphertext buffer kept for reuse */
	struct transport_frame_reader rd;
	struct transport_arena arena;
	uint8_t *rbuf;
};

/* A remote node: address, send queue, outgoing connection and counters. */
struct peer {
	struct peer *next;       /* hash chain */
	struct peer *dirty_next; /* list of peers with messages queued since the last flush */
	bool dirty;
	uint64_t id;
	bool has_addr;                /* an address was declared */
	char *host;                   /* host name to resolve at each dial, or NULL */
	uint16_t port;                /* with host */
	struct sockaddr_storage addr; /* numeric address, when host is NULL */
	struct conn *conn;            /* outgoing message connection */
	struct conn *in_msg;          /* incoming message connection */
	uint32_t in_snaps;            /* incoming open snapshot connections */
	struct transport_buf q;       /* TRANSPORT_FRAME_HDR bytes of room, then encoded messages */
	uint32_t q_msgs;
	uint32_t q_crc;            /* CRC32C of the queued payload so far */
	struct transport_buf wbuf; /* the batch being written */
	uv_write_t wreq;
	bool inflight;
	uint64_t backoff_ms;
	uint64_t retry_at; /* uv_now() before which no dial is attempted */
	struct transport_peer_stats st;
};

/* A source (its IPv4 /24 or IPv6 /64) that had its line in a log window. */
struct tp_log_slot {
	uint8_t key[16]; /* the address, IPv4 mapped, masked to its prefix */
	uint64_t window; /* the window it is for (t->log_window) */
};

struct transport {
	uv_loop_t *loop;
	struct transport_config cfg;
	struct transport_callbacks cb;
	int security;     /* enum transport_security */
	SSL_CTX *ssl_ctx; /* NULL without TLS */
	uint8_t psk[32];  /* TRANSPORT_SEC_PSK: the key derived from the cluster secret */
	char *snapshot_dir;
	uv_tcp_t listener;
	bool listening;
	/* The listen address with port 0, when it names one address: outgoing
	 * connections start from it too (ss_family AF_UNSPEC: any address). */
	struct sockaddr_storage local_addr;
	uv_prepare_t prepare;
	uv_check_t check;
	uv_timer_t expiry; /* ages out partial snapshot files */
	int handles;       /* transport-level handles not yet closed */
	int conns_open;    /* connections not yet freed */
	bool closing;
	struct conn *conns;
	struct peer **buckets; /* peers by node id (hash table, chained) */
	uint32_t n_buckets, n_peers;
	struct peer *dirty; /* peers with messages queued since the last flush */
	uint32_t hs_conns;  /* accepted connections still in the handshake */
	struct transport_mem_budget budget;
	/*
	 * The refusal log (tp_log_refusal): one line per source per window of
	 * log_window_ms, at most log_max_lines in all; what is left out is
	 * counted and told in one summary line when the window ends.
	 */
	struct tp_log_slot log[TP_LOG_SLOTS];
	uint64_t log_window; /* uv_now() + 1 when the current window started; 0 = none yet */
	uint32_t log_lines;  /* lines written in this window */
	uint64_t log_unsaid; /* refusals left out in this window (the summary tells) */
	struct snap_send *sends;
	struct snap_recv *recvs;
	struct transport_encoder enc;
	struct {
		uint64_t node, group;
	} unreach[TP_UNREACH_MAX];
	uint32_t n_unreach;
	struct transport_stats st;
	char errmsg[256];
};

/* Records a printf-style message in t->errmsg. */
void tp_errorf(struct transport *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Finds a peer by node id, or NULL. */
struct peer *tp_peer_find(const struct transport *t, uint64_t id);

/* Splits "ip:port", "[ipv6]:port" or "host:port" into host (NUL-terminated, cap bytes) and port. */
int tp_split_addr(const char *s, char *host, size_t cap, uint16_t *port);

/* Fills ss when host is a numeric IPv4 or IPv6 address (no lookup). */
bool tp_numeric_addr(const char *host, uint16_t port, struct sockaddr_storage *ss);

/* Parses the listen address; a host name is resolved here, synchronously (create only). */
int tp_parse_listen_addr(const char *s, struct sockaddr_storage *ss);
/* Remembers the listen address as the one outgoing connections start from,
 * unless it is a wildcard (0.0.0.0, ::). */
void tp_set_local_addr(struct transport *t, const struct sockaddr_storage *listen);

/* Whether ss is 127.0.0.0/8, ::1 or v4-mapped 127/8. */
bool tp_is_loopback(const struct sockaddr_storage *ss);

/* A new connection (tcp handle and deadline timer initialised), or NULL (errmsg set). */
struct conn *tp_conn_new(struct transport *t, bool client, uint8_t purpose);

/* Drops one of c's handles (or its lookup); frees c after the last. */
void tp_conn_unref(struct conn *c);

/* Sets TCP_NODELAY, keepalive and TCP_USER_TIMEOUT on c's socket. */
void tp_conn_tune(struct conn *c);

/* Client: sends HELLO (state CS_HELLO_SENT). */
int tp_send_hello(struct conn *c);

/* Starts c's handshake deadline (handshake_timeout_ms). */
void tp_conn_arm_deadline(struct conn *c);

/* Starts reading frames from c. */
int tp_conn_start_reading(struct conn *c);

/* Opens a client connection of purpose to p; NULL on failure (errmsg set). */
struct conn *tp_dial(struct transport *t, struct peer *p, uint8_t purpose);

/* Sends one small frame (copied). */
int tp_send_frame(struct conn *c, uint8_t kind, const void *payload, uint32_t len);

/*
 * Writes bufs to c like uv_write (cb(req, status) once written); with TLS they are encrypted
 * now, so the caller's bytes may change as soon as this returns.
 */
int tp_conn_write(struct conn *c, uv_write_t *req, const uv_buf_t *bufs, unsigned n,
                  uv_write_cb cb);

/* tp_conn_write_now: every byte went to the socket at once; cb does not run. */
#define TP_WRITTEN (-1)

/*
 * As tp_conn_write, but what the socket takes at once is written now, without
 * a write request: when that is every byte it returns TP_WRITTEN and cb never
 * runs.  (A request that libuv completes costs a callback in the loop's next
 * turn and the socket's re-registration with epoll.)
 */
int tp_conn_write_now(struct conn *c, uv_write_t *req, const uv_buf_t *buf, uv_write_cb cb);

/*
 * Logs a refusal or failure concerning c: at most one line per source (IPv4
 * /24, IPv6 /64) per log window and log_max_lines in all, then one summary.
 */
void tp_log_refusal(struct transport *t, const struct conn *c, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* Ends the refusal log's window once it is over, with its summary line (cheap to call often). */
void tp_log_window(struct transport *t, uint64_t now);

/* Calls log_fn at level with a formatted line. */
void tp_log(struct transport *t, int level, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* Iterates over every peer: for (p = tp_peer_first(t, &i); p; p = tp_peer_next(t, p, &i)). */
struct peer *tp_peer_first(const struct transport *t, uint32_t *i);
struct peer *tp_peer_next(const struct transport *t, const struct peer *p, uint32_t *i);

/* ---- TLS (tp_tls.c) ---- */

/* Sets t->security and, with TLS, t->ssl_ctx from the configuration; errmsg on failure. */
int tp_tls_setup(struct transport *t);
/* Frees t->ssl_ctx. */
void tp_tls_free(struct transport *t);
/* Starts c's TLS handshake (client or server side as c->client says). */
int tp_tls_start(struct conn *c);
/* Feeds n bytes of ciphertext: handshake, then decrypted frames to the frame reader. */
int tp_tls_read(struct conn *c, const uint8_t *p, size_t n);
/* Encrypts bufs into c's output and writes it (see tp_conn_write; with now, tp_conn_write_now). */
int tp_tls_write(struct conn *c, uv_write_t *req, const uv_buf_t *bufs, unsigned n, uv_write_cb cb,
                 bool now);
/* Frees c's TLS state. */
void tp_tls_conn_free(struct conn *c);

/* transport.c: the TLS handshake of c completed and the peer's identity checked. */
void tp_handshake_done(struct conn *c);
/* transport.c: the frame callback of connections (for tp_tls_read). */
int tp_on_frame(void *arg, const struct transport_frame_header *h, const uint8_t *p, uint32_t len);

/* Counts rc against the transport and closes c. */
void tp_conn_fail(struct conn *c, int rc);

/* Closes c (not an error). */
void tp_conn_close(struct conn *c);

/* Queues an on_unreachable(node, group) report for the next flush. */
void tp_report_unreachable(struct transport *t, uint64_t node, uint64_t group);

/* Frees the transport once closing and every handle and request has finished. */
void tp_maybe_finish(struct transport *t);

/* Stops (on = false) or restarts reading from c. */
void tp_conn_read(struct conn *c, bool on);

/* Snapshot: deletes stale partial files in snapshot_dir and starts the expiry timer. */
void tp_snap_start(struct transport *t);
/* Snapshot: client connection authenticated. */
void tp_snap_client_open(struct conn *c);
/* Snapshot: a frame on an open client snapshot connection. */
int tp_snap_client_frame(struct conn *c, const struct transport_frame_header *h, const uint8_t *p,
                         uint32_t len);
/* Snapshot: a frame on an open server snapshot connection. */
int tp_snap_server_frame(struct conn *c, const struct transport_frame_header *h, const uint8_t *p,
                         uint32_t len);
/* Snapshot sender: c is closing; the stream redials with backoff. */
void tp_snap_send_conn_closed(struct conn *c);
/* Snapshot receiver: c is closing; the partial file stays for a resume. */
void tp_snap_recv_conn_closed(struct conn *c);
/* Snapshot sender: p was removed; its streams end (unreachable) in the loop's next turn. */
void tp_snap_send_peer_removed(struct transport *t, struct peer *p);
/* Snapshot sender: abort every stream (transport closing). */
void tp_snap_send_shutdown(struct transport *t);
/* Snapshot receiver: stop the expiry timer, free idle streams (transport closing). */
void tp_snap_recv_shutdown(struct transport *t);
/* Whether `from` may send for group_id (membership_check); a refusal is counted, as
 * rejected or, for a group not run here, as dropped. */
static inline bool tp_member_ok(struct transport *t, uint64_t group_id, uint64_t from)
{
	if (t->cb.membership_check == NULL || t->cb.membership_check(t->cb.ctx, group_id, from))
		return true;
	if (t->cb.group_runs != NULL && !t->cb.group_runs(t->cb.ctx, group_id, from))
		t->st.msgs_dropped_no_group++;
	else
		t->st.msgs_rejected_member++;
	return false;
}

#endif /* DRAGONRAFT_TRANSPORT_TP_INTERNAL_H */
