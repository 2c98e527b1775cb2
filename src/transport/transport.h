/*
 * transport.h - libuv TCP transport between dragonraft nodes.
 *
 * One transport per node, embedded in the caller's libuv loop.  Messages to
 * a node are queued by transport_send() and leave as one MessageBatch frame
 * per peer per loop turn (a uv_prepare and a uv_check handle flush the
 * queues, or call transport_flush()).  One outgoing connection per remote
 * node, opened on demand, redialled with exponential backoff.  Snapshots
 * stream on their own connection.  Snapshot file I/O and host-name lookups
 * run on libuv's thread pool, never on the loop thread.  Every connection starts with a mutual
 * HMAC-SHA256 handshake (auth.h); without a cluster secret only loopback
 * peers are accepted.
 *
 * Memory: the messages given to on_message_batch, their entry arrays and
 * snapshot metadata live in a per-connection decode arena, and entry data
 * point straight into the connection's receive buffer (no copy); both are
 * reused once the callback returns, so copy what must outlive it.  transport_send()
 * encodes the message at once, so the caller's buffers may be reused as soon
 * as it returns.
 *
 * Callbacks are never called from inside transport_send() or
 * transport_send_snapshot(): unreachable reports are deferred to the next
 * flush.  All functions must be called on the loop's thread.
 */
#ifndef DRAGONRAFT_TRANSPORT_TRANSPORT_H
#define DRAGONRAFT_TRANSPORT_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "raft/raft_msg.h"
#include "transport/tp_common.h"

struct transport;

/* Settings; zero fields take the defaults in brackets. */
struct transport_config {
	uint64_t node_id; /* this node, > 0 */
	const char
	        *listen_addr;  /* "ip:port" or "[ipv6]:port"; port 0 picks one; NULL: no listener */
	const uint8_t *secret; /* cluster secret; NULL: loopback peers only */
	size_t secret_len;
	uint32_t max_frame;            /* largest frame payload accepted [64 MiB] */
	uint32_t queue_max_msgs;       /* per-peer send queue, messages [16384] */
	uint32_t queue_max_bytes;      /* per-peer send queue, bytes [32 MiB, at most max_frame] */
	uint32_t snapshot_chunk;       /* snapshot chunk size [2 MiB] */
	const char *snapshot_dir;      /* where received snapshots are written ["."] */
	uint32_t backoff_min_ms;       /* first redial delay [100] */
	uint32_t backoff_max_ms;       /* longest redial delay [5000] */
	uint32_t handshake_timeout_ms; /* handshake must finish within [5000] */
	uint32_t snapshot_retries;     /* reconnections a snapshot stream may use [5] */
	uint32_t snapshot_part_max_age_ms; /* a partial received snapshot not extended for this
	                                    * long is deleted, here and at start [600000] */
};

/* What the transport calls; any may be NULL.  ctx is passed back. */
struct transport_callbacks {
	void *ctx;
	/* A batch from node `from`, already checked; valid until return. */
	void (*on_message_batch)(void *ctx, uint64_t from, const struct raft_message *msgs,
	                         size_t n);
	/* Messages to node_id were dropped; group_id 0 means every group. */
	void (*on_unreachable)(void *ctx, uint64_t node_id, uint64_t group_id);
	/* A snapshot file arrived complete and verified at path (owned by the caller now). */
	void (*on_snapshot_received)(void *ctx, uint64_t from, uint64_t group_id,
	                             const struct raft_snapshot_meta *meta, const char *path);
	/* A snapshot stream ended; status is 0 or a transport_rc. */
	void (*on_snapshot_sent)(void *ctx, uint64_t to, uint64_t group_id, raft_index index,
	                         int status);
	/* Whether `from` may send for group_id; false drops the message (counted). */
	bool (*membership_check)(void *ctx, uint64_t group_id, uint64_t from);
	/* transport_close() finished: every handle is closed and memory freed. */
	void (*on_closed)(void *ctx);
};

/* Counters for one remote node. */
struct transport_peer_stats {
	uint64_t msgs_sent, bytes_sent, batches_sent;
	uint64_t msgs_recv, bytes_recv, batches_recv;
	uint64_t msgs_dropped;  /* sent side: queue overflow, unreachable; receive side: rejected */
	uint64_t bytes_dropped; /* encoded bytes of dropped queued messages and undecodable batches
	                         */
	uint64_t connects;      /* outgoing connections that completed the handshake */
	uint32_t queued_msgs;   /* waiting in the send queue now */
	uint64_t queued_bytes;
	bool connected; /* an outgoing message connection is open */
};

/* Counters for the whole transport. */
struct transport_stats {
	uint64_t conns_accepted;
	uint64_t frames_bad_header, frames_oversize, frames_bad_crc;
	uint64_t decode_errors; /* batches that failed protobuf decode or bounds checks */
	uint64_t auth_bad_secret, auth_bad_node_id, auth_replayed, auth_not_loopback;
	uint64_t handshake_timeouts, protocol_errors;
	uint64_t msgs_rejected_sender; /* from/to do not match the authenticated connection */
	uint64_t msgs_rejected_member; /* membership_check said no (unknown group, non-member) */
	uint64_t snapshots_sent, snapshots_received, snapshot_resumes, snapshot_failures;
	uint64_t snapshot_parts_expired; /* partial snapshot files deleted for age */
	uint64_t resolve_failures;       /* host names of peers that did not resolve */
};

/* Creates a transport on loop and starts listening; *out on success (on failure, nothing is
 * called back and what was allocated is released as the loop runs). */
int transport_create(uv_loop_t *loop, const struct transport_config *cfg,
                     const struct transport_callbacks *cb, struct transport **out);

/* The port the listener is bound to (useful with port 0), or -1. */
int transport_listen_port(const struct transport *t);

/* Declares where node_id listens ("ip:port", "[ipv6]:port" or "host:port"; a host name is
 * resolved on libuv's thread pool at each dial); replaces any older address. */
int transport_add_peer(struct transport *t, uint64_t node_id, const char *addr);

/* Queues m for m->to; TRANSPORT_EQUEUEFULL / EUNREACHABLE when dropped (reported via
 * on_unreachable). */
int transport_send(struct transport *t, const struct raft_message *m);

/* Sends every peer's queued messages now (one batch per peer). */
void transport_flush(struct transport *t);

/* Streams the file at path to node_id on its own connection; on_snapshot_sent reports the end. */
int transport_send_snapshot(struct transport *t, uint64_t node_id, uint64_t group_id,
                            const struct raft_snapshot_meta *meta, const char *path);

/* Copies node_id's counters into *out; TRANSPORT_ENOPEER if never seen. */
int transport_peer_stats(const struct transport *t, uint64_t node_id,
                         struct transport_peer_stats *out);

/* Copies the transport-wide counters into *out. */
void transport_stats(const struct transport *t, struct transport_stats *out);

/* The last error's human description. */
const char *transport_errmsg(const struct transport *t);

/* Closes every connection and handle; memory is freed (and on_closed called) as the loop runs. */
void transport_close(struct transport *t);

/* Test hook: abruptly closes every snapshot connection (streams then resume). */
void transport_break_snapshot_conns(struct transport *t);

#endif /* DRAGONRAFT_TRANSPORT_TRANSPORT_H */
