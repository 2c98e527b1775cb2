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
	uint64_t max_gap_ms;   /* largest gap between messages while gap_watch */
	bool gap_watch;
	int snap_sent_status; /* -1 until on_snapshot_sent */
	int snap_received;
	char snap_path[512];
	struct raft_snapshot_meta snap_meta;
};

/* Creates node id listening on 127.0.0.1:port (0: any) with the given secret (NULL: none). */
int th_node_start(struct th_node *n, uv_loop_t *loop, uint64_t id, int port, const char *secret,
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

/* Starts a pair with the given secrets (NULL: none) and settings (NULL: defaults). */
int th_pair_start(struct th_pair *p, const char *secret_a, const char *secret_b,
                  const struct transport_config *extra);

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

/* Raw client: a blocking TCP socket to 127.0.0.1:port; returns the fd or -1. */
int th_raw_connect(int port);

/* Writes one frame (header computed, optionally with a corrupted CRC). */
int th_raw_send_frame(int fd, uint8_t kind, const void *payload, uint32_t len, bool bad_crc);

/* Reads one frame while running loop; returns its kind, 0 on EOF, -1 on timeout. */
int th_raw_recv_frame(uv_loop_t *loop, int fd, uint8_t *payload, uint32_t cap, uint32_t *len,
                      uint64_t timeout_ms);

/* Runs loop until the server closes fd (true) or timeout_ms passes (false). */
bool th_raw_wait_closed(uv_loop_t *loop, int fd, uint64_t timeout_ms);

/*
 * Performs a client handshake as node client_id to node server_id with secret;
 * the HELLO and AUTH payloads it sent are copied to hello/auth if not NULL.
 * Returns 0 when the server's proof checked out and AUTH was sent.
 */
int th_raw_handshake(uv_loop_t *loop, int fd, uint64_t client_id, uint64_t server_id,
                     const char *secret, uint8_t *hello, uint8_t *auth);

/* th_raw_handshake for a connection of the given purpose (enum transport_purpose). */
int th_raw_handshake_purpose(uv_loop_t *loop, int fd, uint64_t client_id, uint64_t server_id,
                             const char *secret, uint8_t purpose);

/* A th_run_until predicate: node n has received at least msgs messages. */
struct th_want {
	struct th_node *n;
	uint64_t msgs;
};
/* The predicate itself (arg: struct th_want). */
bool th_got_msgs(void *arg);

#endif /* DRAGONRAFT_TEST_TRANSPORT_HARNESS_H */
