/*
 * harness.h - helpers for transport tests and the benchmark: driving a libuv
 * loop until a condition holds, test nodes that record what they receive,
 * and a raw blocking-socket client that speaks the wire protocol by hand.
 */
#ifndef DRAGONRAFT_TEST_TRANSPORT_HARNESS_H
#define DRAGONRAFT_TEST_TRANSPORT_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>
#include <uv.h>

#include "transport/transport.h"

/* Milliseconds on a monotonic clock. */
uint64_t th_now_ms(void);

/* Runs loop until cond(arg) is true or timeout_ms passes; returns cond's last value. */
bool th_run_until(uv_loop_t *loop, bool (*cond)(void *arg), void *arg, uint64_t timeout_ms);

/* Runs loop for about ms milliseconds (for letting traffic drain, never for correctness). */
void th_run_for(uv_loop_t *loop, uint64_t ms);

/* A test node: a transport plus what its callbacks saw. */
struct th_node {
	uv_loop_t *loop;
	struct transport *t;
	uint64_t id;
	int port;
	bool closed;
	uint64_t msgs; /* messages received */
	uint64_t batches;
	uint64_t last_context; /* context of the last message received */
	uint64_t order_errors; /* messages whose context was not last_context + 1 */
	uint64_t per_group[16];
	uint64_t entry_errors; /* entries whose data did not match the pattern */
	uint64_t unreachable;
	uint64_t reject_group; /* membership_check refuses this group */
	uint64_t last_msg_ms;  /* th_now_ms() of the last message */
	uint64_t last_runq_ms; /* th_runq_ms() then */
	uint64_t max_gap_ms;   /* largest gap between messages while gap_watch, less the
	                        * time this thread waited for a CPU meanwhile */
	bool gap_watch;
	int snap_sent_status;                  /* -1 until on_snapshot_sent */
	bool snap_sent_by_receiver;            /* ... and whether the receiver said it */
	int no_room;                           /* on_snapshot_no_room calls */
	struct transport_no_room last_no_room; /* (its dir is not kept) */
	int snap_received;
	char snap_path[512];
	struct raft_snapshot_meta snap_meta;
	int log_lines[4]; /* on_log lines per level */
	char last_log[512];
	char files[4][600]; /* TLS file names given to the transport */
};

/* How a test node secures its connections. */
enum th_sec {
	TH_NONE = 0, /* clear text, loopback only */
	TH_CERT,     /* mutual TLS with the test PKI's certificate of the node (th_pki_dir) */
	TH_PSK,      /* TLS with the test cluster secret TH_PSK_SECRET */
};
#define TH_PSK_SECRET "0123456789abcdef0123456789abcdef" /* 32 bytes */

/*
 * The test PKI, made once per process in a temporary directory (removed at exit):
 * ca.crt/.key; n1..n9.crt/.key for nodes 1..9 from that CA; other-ca.crt and
 * other-n1.crt/.key (node 1 from another CA); expired-n1.crt/.key; nouri-n1.crt/.key
 * (no node URI); crl.pem (the CA revoking node 3's certificate).  Returns the directory.
 */
const char *th_pki_dir(void);

/* Fills buf with th_pki_dir()/name. */
const char *th_pki_path(char *buf, size_t cap, const char *name);

/*
 * Creates node id listening on 127.0.0.1:port (0: any) secured as sec says; TLS file
 * names and a listen address set in extra win over the defaults.
 */
int th_node_start(struct th_node *n, uv_loop_t *loop, uint64_t id, int port, int sec,
                  const struct transport_config *extra);

/* Closes the node's transport and runs the loop until it is freed. */
void th_node_stop(struct th_node *n);

/* The byte pattern entry data carry in tests: data[k] = (seed + k * 31) & 0xff. */
void th_fill_pattern(uint8_t *p, size_t len, uint64_t seed);

/* Two nodes on one loop: a (node 1) and b (node 2), each knowing the other's address. */
struct th_pair {
	uv_loop_t loop;
	struct th_node a, b;
};

/* Starts a pair secured as sec_a and sec_b say, with settings extra (NULL: defaults). */
int th_pair_start(struct th_pair *p, int sec_a, int sec_b, const struct transport_config *extra);

/* Stops both nodes and closes the loop; false if the loop still had handles or requests. */
bool th_pair_stop(struct th_pair *p);

/* A heartbeat from -> to for group whose commit and context are ctx. */
struct raft_message th_heartbeat(uint64_t from, uint64_t to, uint64_t group, uint64_t ctx);

/* Deletes every file in dir, then dir. */
void th_remove_dir(const char *dir);

/* Occupies every thread of libuv's pool (queued work that waits); returns once all run. */
bool th_pool_block(uv_loop_t *loop);

/* Lets the blocking work of th_pool_block end (test teardown: the loop may be gone). */
void th_pool_unblock(void);

/* Lets the blocking work of th_pool_block end and runs loop until its callbacks ran. */
void th_pool_release(uv_loop_t *loop);

/* A raw client that speaks the wire protocol by hand, in clear or inside TLS. */
struct th_raw {
	uv_loop_t *loop; /* run while the client waits */
	int fd;
	SSL_CTX *ctx;
	SSL *ssl;
};

/*
 * Connects to 127.0.0.1:port (from source address src, NULL: any) and, unless sec is
 * TH_NONE, completes a TLS handshake presenting th_pki_dir()/cert.crt and .key (TH_CERT)
 * or the test PSK.  0 on success.
 */
int th_raw_connect(struct th_raw *r, uv_loop_t *loop, int port, const char *src, int sec,
                   const char *cert);

/* Writes n bytes as they are (through TLS when it is on); 0 on success. */
int th_raw_write(struct th_raw *r, const void *p, size_t n);

/* Writes one frame (header computed, optionally with a corrupted CRC). */
int th_raw_send_frame(struct th_raw *r, uint8_t kind, const void *payload, uint32_t len,
                      bool bad_crc);

/* Reads one frame while running the loop; returns its kind, 0 on EOF, -1 on timeout. */
int th_raw_recv_frame(struct th_raw *r, uint8_t *payload, uint32_t cap, uint32_t *len,
                      uint64_t timeout_ms);

/* Runs the loop until the server closes the connection (true) or timeout_ms passes. */
bool th_raw_wait_closed(struct th_raw *r, uint64_t timeout_ms);

/* Sends HELLO as client_id to server_id for purpose and waits for WELCOME; 0 on success. */
int th_raw_hello(struct th_raw *r, uint64_t client_id, uint64_t server_id, uint8_t purpose);

/* Closes the client. */
void th_raw_close(struct th_raw *r);

/* A th_run_until predicate: node n has received at least msgs messages. */
struct th_want {
	struct th_node *n;
	uint64_t msgs;
};
/* The predicate itself (arg: struct th_want). */
bool th_got_msgs(void *arg);

#endif /* DRAGONRAFT_TEST_TRANSPORT_HARNESS_H */
