/*
 * tp_internal.h - structures shared by transport.c, tp_dial.c, tp_snap_send.c and tp_snap_recv.c.
 */
#ifndef DRAGONRAFT_TRANSPORT_TP_INTERNAL_H
#define DRAGONRAFT_TRANSPORT_TP_INTERNAL_H

#include <sys/socket.h>

#include "transport/auth.h"
#include "transport/codec.h"
#include "transport/frame.h"
#include "transport/transport.h"

#define TP_READ_BUF    (64u << 10)
#define TP_DIRECT_MAX  (256u << 10)
#define TP_REPLAY_RING 1024
#define TP_UNREACH_MAX 4096
#define TP_MAX_ADDRS   8 /* resolved addresses of a host name tried per dial */

enum conn_state {
	CS_RESOLVING = 1, /* client: host name lookup on the thread pool */
	CS_CONNECTING,    /* client: TCP connect pending */
	CS_HELLO_SENT,    /* client: waiting for CHALLENGE */
	CS_WAIT_HELLO,    /* server: waiting for HELLO */
	CS_WAIT_AUTH,     /* server: waiting for AUTH */
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
	int n_addrs, addr_idx; /* client: addresses to try, the one being tried */
	struct sockaddr_storage addrs[TP_MAX_ADDRS];
	uint64_t remote_id;
	uint8_t cnonce[TRANSPORT_NONCE_LEN];
	uint8_t snonce[TRANSPORT_NONCE_LEN];
	struct transport_frame_reader rd;
	struct transport_arena arena;
	uint8_t *rbuf;
};

/* A remote node: address, send queue, outgoing connection and counters. */
struct peer {
	struct peer *next;
	uint64_t id;
	bool has_addr;                /* an address was declared */
	char *host;                   /* host name to resolve at each dial, or NULL */
	uint16_t port;                /* with host */
	struct sockaddr_storage addr; /* numeric address, when host is NULL */
	struct conn *conn;            /* outgoing message connection */
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

struct transport {
	uv_loop_t *loop;
	struct transport_config cfg;
	struct transport_callbacks cb;
	uint8_t *secret;
	size_t secret_len;
	char *snapshot_dir;
	uv_tcp_t listener;
	bool listening;
	uv_prepare_t prepare;
	uv_check_t check;
	uv_timer_t expiry; /* ages out partial snapshot files */
	int handles;       /* transport-level handles not yet closed */
	int conns_open;    /* connections not yet freed */
	bool closing;
	struct conn *conns;
	struct peer *peers;
	struct snap_send *sends;
	struct snap_recv *recvs;
	struct transport_encoder enc;
	uint8_t replay[TP_REPLAY_RING][16]; /* prefixes of recent client nonces */
	uint32_t replay_next;
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

/* Whether ss is 127.0.0.0/8, ::1 or v4-mapped 127/8. */
bool tp_is_loopback(const struct sockaddr_storage *ss);

/* A new connection (tcp handle and deadline timer initialised), or NULL (errmsg set). */
struct conn *tp_conn_new(struct transport *t, bool client, uint8_t purpose);

/* Drops one of c's handles (or its lookup); frees c after the last. */
void tp_conn_unref(struct conn *c);

/* Starts c's handshake deadline (handshake_timeout_ms). */
void tp_conn_arm_deadline(struct conn *c);

/* Starts reading frames from c. */
int tp_conn_start_reading(struct conn *c);

/* Opens a client connection of purpose to p; NULL on failure (errmsg set). */
struct conn *tp_dial(struct transport *t, struct peer *p, uint8_t purpose);

/* Sends one small frame (copied). */
int tp_send_frame(struct conn *c, uint8_t kind, const void *payload, uint32_t len);

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
/* Snapshot sender: abort every stream (transport closing). */
void tp_snap_send_shutdown(struct transport *t);
/* Snapshot receiver: stop the expiry timer, free idle streams (transport closing). */
void tp_snap_recv_shutdown(struct transport *t);

#endif /* DRAGONRAFT_TRANSPORT_TP_INTERNAL_H */
