/*
 * transport.h - libuv TCP transport between dragonraft nodes.
 *
 * One transport per node, embedded in the caller's libuv loop.  Messages to
 * a node are queued by transport_send() and leave as one MessageBatch frame
 * per peer per loop turn (a uv_prepare and a uv_check handle flush the
 * queues, or call transport_flush()).  One outgoing connection per remote
 * node, opened on demand, redialled with exponential backoff (ended at once
 * when that node's own message connection to us opens: it is up).  Snapshots
 * stream on their own connection.  Snapshot file I/O and host-name lookups
 * run on libuv's thread pool, never on the loop thread.
 *
 * Security (tp_tls.c): with certificates every connection is mutual TLS 1.3,
 * each node's certificate naming its node id; with a cluster secret (at
 * least 32 random bytes) it is TLS 1.3 with that external PSK; with neither,
 * frames travel in clear and only loopback peers are dialed or accepted, and
 * log_fn receives a WARNING at create that every local user can act as a peer.
 * Only node ids declared with transport_add_peer() (members of a group here,
 * or being added) may connect; connections still in the handshake are capped,
 * globally and per source address, and every connection has a handshake
 * deadline, TCP keepalive with TCP_USER_TIMEOUT and an idle timeout.  Each
 * refusal is counted (transport_stats) and logged through log_fn at most once
 * a minute per source address (IPv4 /24, IPv6 /64) and 20 times a minute in
 * all, with a summary line of what was left out.
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

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "raft/raft_msg.h"
#include "transport/tp_common.h"

struct transport;

/* The longest name of a received file, its slash included:
 * "/snap-g<group>-n<from>-i<index>-t<term>.part" (or .snap), numbers of up to 20 digits. */
#define TRANSPORT_SNAPSHOT_NAME_MAX 98
/* The longest snapshot directory transport_create() takes (bytes, NUL excluded). */
#define TRANSPORT_SNAPSHOT_DIR_MAX (PATH_MAX - 1 - TRANSPORT_SNAPSHOT_NAME_MAX)

/* Settings; zero fields take the defaults in brackets. */
struct transport_config {
	uint64_t node_id; /* this node, > 0 */
	const char
	        *listen_addr; /* "ip:port" or "[ipv6]:port"; port 0 picks one; NULL: no listener */
	/* Mutual TLS: all three, or none.  The certificate's subjectAltName URI
	 * "urn:dragonraft:node:<id>" must name node_id; peers' certificates must chain to the CA.
	 */
	const char *tls_cert_file; /* this node's certificate chain (PEM) */
	const char *tls_key_file;  /* its private key (PEM) */
	const char *tls_ca_file;   /* the cluster CA certificate(s) (PEM) */
	const char *tls_crl_file;  /* optional: revoked certificates (PEM CRL) */
	/* Without certificates: TLS 1.3 with this external PSK, at least 32 random bytes (see
	 * transport_read_secret_file); NULL with no certificates: loopback peers only. */
	const uint8_t *secret;
	size_t secret_len;
	uint32_t max_frame;            /* largest frame payload accepted [64 MiB] */
	uint32_t queue_max_msgs;       /* per-peer send queue, messages [16384] */
	uint32_t queue_max_bytes;      /* per-peer send queue, bytes [32 MiB, at most max_frame] */
	uint32_t snapshot_chunk;       /* snapshot chunk size [2 MiB] */
	const char *snapshot_dir;      /* where received snapshots are written ["."]; at most
	                                * TRANSPORT_SNAPSHOT_DIR_MAX bytes */
	uint32_t backoff_min_ms;       /* first redial delay [100] */
	uint32_t backoff_max_ms;       /* longest redial delay [5000] */
	uint32_t handshake_timeout_ms; /* connect (lookup included) and handshake within [3000] */
	uint32_t snapshot_retries;     /* reconnections a snapshot stream may use [5] */
	uint32_t snapshot_part_max_age_ms; /* a partial received snapshot not extended for this
	                                    * long is deleted, here and at start [600000] */
	/* The snapshot directory is this transport's alone (the embedder holds a lock that
	 * keeps any other process out of it): at create, the partial files an earlier
	 * process left are deleted whatever their age, not aged out.  They are never
	 * resumed, and their bytes count against the room a new stream needs.  false: the
	 * directory may be shared, and a file younger than snapshot_part_max_age_ms may be
	 * another process's stream. */
	bool snapshot_dir_private;
	uint32_t max_handshakes;           /* accepted connections in the handshake at once [64] */
	uint32_t max_handshakes_per_addr;  /* ... from one IPv4 address or IPv6 /64 [8] */
	uint32_t max_snapshot_conns;       /* open snapshot connections from one node [4] */
	uint32_t idle_timeout_ms;    /* a connection with no byte read or written for this long
	                              * is closed; an outgoing message connection sends an
	                              * empty batch after a third of it [60000] */
	uint32_t keepalive_ms;       /* TCP keepalive probes after this long idle; TCP_USER_TIMEOUT
	                              * is three times it [10000] */
	uint64_t recv_memory_max;    /* frame reassembly buffers of all connections together
	                              * [256 MiB, at least 2 x max_frame] */
	uint64_t snapshot_max_bytes; /* largest snapshot accepted [1 TiB] */
	uint64_t snapshot_min_free_bytes; /* free space a received snapshot must leave [256 MiB] */
	uint32_t log_max_lines; /* refusal lines per log window in all (at most 64); then one
	                         * summary [20] */
	uint32_t log_window_ms; /* ... and at most one per source (IPv4 /24, IPv6 /64) [60000] */
	/* Lines for the server log (enum transport_log_level, no trailing newline), also from
	 * inside transport_create; NULL: none. */
	void (*log_fn)(void *log_ctx, int level, const char *msg);
	void *log_ctx;
};

/* How a transport authenticates its peers. */
enum transport_security {
	TRANSPORT_SEC_NONE = 0, /* clear text, loopback peers only */
	TRANSPORT_SEC_PSK,      /* TLS 1.3, external PSK (cluster secret) */
	TRANSPORT_SEC_CERT,     /* mutual TLS 1.3 with certificates */
};

/* Levels of on_log lines. */
enum transport_log_level {
	TRANSPORT_LOG_INFO = 1, /* refused or failed connections (rate-limited) */
	TRANSPORT_LOG_WARNING,  /* insecure configuration */
	TRANSPORT_LOG_ERROR,    /* transport_create failed: the reason */
};

/*
 * A snapshot refused for want of room on the receiver's disk (on_snapshot_no_room):
 * here, this node refused node_id's stream; otherwise node_id refused this node's.
 * The receiver's SNAP_DONE carries the numbers (an older receiver's does not: all 0).
 */
struct transport_no_room {
	uint64_t node_id;
	uint64_t group_id;
	bool here;
	uint64_t need;       /* bytes the stream (and the others in progress) still needs */
	uint64_t free_bytes; /* bytes free in the receiver's snapshot directory */
	uint64_t min_free;   /* bytes the receiver keeps free (snapshot_min_free_bytes) */
	const char *dir;     /* here: the snapshot directory; otherwise NULL */
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
	/* A snapshot stream ended; status is 0 or a transport_rc: the receiver's answer when
	 * by_receiver, else what failed here (reading the file) or on the way (unreachable). */
	void (*on_snapshot_sent)(void *ctx, uint64_t to, uint64_t group_id, raft_index index,
	                         int status, bool by_receiver);
	/* A snapshot stream was refused for want of room (see struct transport_no_room); on
	 * the sending side on_snapshot_sent follows with TRANSPORT_ENOSPACE. */
	void (*on_snapshot_no_room)(void *ctx, const struct transport_no_room *r);
	/* Whether `from` may send for group_id; false drops the message (counted). */
	bool (*membership_check)(void *ctx, uint64_t group_id, uint64_t from);
	/* Optional, asked once membership_check said no: whether group_id runs here.  A
	 * message of a group that does not (a member that stopped or left it, or has not
	 * started it yet, hears its leader's heartbeats) is counted apart
	 * (msgs_dropped_no_group), not as rejected; from is its sender. */
	bool (*group_runs)(void *ctx, uint64_t group_id, uint64_t from);
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
	uint64_t keepalives_sent; /* empty batches on an idle outgoing message connection */
	uint32_t queued_msgs;     /* waiting in the send queue now */
	uint64_t queued_bytes;
	bool connected; /* an outgoing message connection is open */
};

/* Counters for the whole transport; every refusal has one. */
struct transport_stats {
	uint64_t conns_accepted;
	uint64_t conns_refused_limit;    /* over max_handshakes */
	uint64_t conns_refused_per_addr; /* over max_handshakes_per_addr */
	uint64_t frames_bad_header, frames_oversize, frames_bad_crc;
	uint64_t frames_over_budget;     /* a frame buffer would have exceeded recv_memory_max */
	uint64_t decode_errors;          /* batches that failed protobuf decode or bounds checks */
	uint64_t tls_handshake_failures; /* certificate, CA, CRL, PSK or not TLS at all */
	uint64_t tls_record_errors;      /* altered or forged bytes after the handshake */
	uint64_t tls_reload_closed;  /* connections closed at a TLS reload: the peer's certificate
	                              * no longer verifies (revoked, expired, another CA) */
	uint64_t auth_bad_node_id;   /* ids in HELLO/WELCOME not those of the certificate
	                              * or of this node */
	uint64_t auth_unknown_node;  /* HELLO from a node id that is not a peer here */
	uint64_t auth_not_loopback;  /* no TLS configured and not on loopback */
	uint64_t snap_conns_refused; /* over max_snapshot_conns from one node */
	uint64_t conns_replaced;     /* an older connection of the same node and purpose */
	uint64_t handshake_timeouts, idle_timeouts, protocol_errors;
	uint64_t msgs_rejected_sender;  /* from/to do not match the authenticated connection */
	uint64_t msgs_rejected_member;  /* membership_check said no: a non-member of a group run
	                                 * here (every refusal without group_runs) */
	uint64_t msgs_dropped_no_group; /* ... for a group not run here (group_runs said so) */
	uint64_t snapshots_sent, snapshots_received, snapshot_resumes, snapshot_failures;
	uint64_t snapshots_refused_size;  /* declared size above snapshot_max_bytes */
	uint64_t snapshots_refused_space; /* not enough free disk space */
	uint64_t snapshot_takeovers;      /* a new BEGIN from the same sender replaced a stream */
	uint64_t snapshot_parts_expired;  /* partial snapshot files deleted for age */
	uint64_t resolve_failures;        /* host names of peers that did not resolve */
	uint64_t log_lines_suppressed;    /* refusals not logged (see log_max_lines) */
	uint64_t recv_memory;             /* bytes held by frame reassembly buffers now */
	/* chunks and ENDs that came after the receiver ended their stream (SNAP_DONE on its
	 * way to the sender: the group stopped, a failed write), discarded */
	uint64_t snapshot_frames_discarded;
};

/* Creates a transport on loop and starts listening; *out on success (on failure, only log_fn
 * is called, with the reason at TRANSPORT_LOG_ERROR, and what was allocated is released as
 * the loop runs). */
int transport_create(uv_loop_t *loop, const struct transport_config *cfg,
                     const struct transport_callbacks *cb, struct transport **out);

/* How this transport authenticates peers (the embedder warns at start when NONE). */
int transport_security(const struct transport *t);

/*
 * Reads a cluster secret file: it must be a regular file owned by this
 * process's user, readable by nobody else (mode 0600 or 0400), holding at
 * least 64 hex digits (32 bytes; `openssl rand -hex 32`), optionally
 * followed by a newline.  Fills out (cap >= 64) and *len; on error returns
 * TRANSPORT_EINVAL or TRANSPORT_EIO with the reason in errmsg.
 */
int transport_read_secret_file(const char *path, uint8_t *out, size_t cap, size_t *len,
                               char *errmsg, size_t errmsg_len);

/* The port the listener is bound to (useful with port 0), or -1. */
int transport_listen_port(const struct transport *t);

/* Declares where node_id listens ("ip:port", "[ipv6]:port" or "host:port"; a host name is
 * resolved on libuv's thread pool at each dial); replaces any older address.  Only declared
 * nodes may connect to this node. */
int transport_add_peer(struct transport *t, uint64_t node_id, const char *addr);

/*
 * Forgets node_id (no group here has it any more): its address is cleared, its
 * connections both ways are closed, its queued messages are dropped (reported
 * unreachable at the next flush, as at a disconnect), its snapshot streams end
 * with TRANSPORT_EUNREACHABLE in a later loop turn, and it is neither dialed nor
 * let in again until transport_add_peer() declares it anew (its counters then
 * go on).  Calls nothing back from inside.  TRANSPORT_ENOPEER if it is not a peer.
 */
int transport_remove_peer(struct transport *t, uint64_t node_id);

/* Queues m for m->to; TRANSPORT_EQUEUEFULL / EUNREACHABLE when dropped (reported via
 * on_unreachable). */
int transport_send(struct transport *t, const struct raft_message *m);

/* Sends every peer's queued messages now (one batch per peer). */
void transport_flush(struct transport *t);
/* The same without calling back (no on_unreachable): callable from inside the embedder's
 * work, such as a leader's appends sent in an engine round before its own fsync. */
void transport_write_queued(struct transport *t);

/* Streams the file at path to node_id on its own connection; on_snapshot_sent reports the end. */
int transport_send_snapshot(struct transport *t, uint64_t node_id, uint64_t group_id,
                            const struct raft_snapshot_meta *meta, const char *path);

/*
 * group_id stopped on this node: its streams being received end (the sender
 * gets TRANSPORT_EINVAL, as for a group this node does not run) and their
 * partial files, kept for a resume, are deleted at once, or once a write or
 * sync in flight ends.  Partial files an earlier process left (which only
 * age out) stay.  Calls nothing back from inside.
 */
void transport_drop_group_snapshots(struct transport *t, uint64_t group_id);
/*
 * The same for each stream kept for a resume (its connection gone: a sender
 * that crashed or lost it midway) for which outrun(ctx, group_id, index)
 * holds (its group committed that far here: its message would be refused).
 * A stream still connected goes on: its file is the embedder's to judge when
 * it arrives.  Partial files an earlier process left stay (they age out).
 */
void transport_drop_outrun_snapshots(struct transport *t,
                                     bool (*outrun)(void *ctx, uint64_t group_id, uint64_t index),
                                     void *ctx);

/* The free space a received snapshot must leave from now on (snapshot_min_free_bytes, 0
 * allowed here: none). */
void transport_set_snapshot_min_free(struct transport *t, uint64_t bytes);

/* Copies node_id's counters into *out; TRANSPORT_ENOPEER if not a peer (never declared, or
 * removed). */
int transport_peer_stats(const struct transport *t, uint64_t node_id,
                         struct transport_peer_stats *out);

/* Copies the transport-wide counters into *out. */
void transport_stats(const struct transport *t, struct transport_stats *out);

/* The last error's human description. */
const char *transport_errmsg(const struct transport *t);

/* The TLS files of a node with certificates (as transport_config's tls_* fields). */
struct transport_tls_files {
	const char *cert, *key, *ca;
	const char *crl; /* optional */
};
/*
 * Reads the certificate, key, CA and CRL again (say, a CRL that now revokes a
 * node): connections made from now on use them, an open connection whose
 * peer's certificate no longer verifies is closed (tls_reload_closed,
 * logged), and one still in its handshake is closed so that it starts again
 * with the new files.  Only for a transport created with certificates.  On
 * error nothing changes (the reason in transport_errmsg).
 */
int transport_reload_tls(struct transport *t, const struct transport_tls_files *f);

/* Closes every connection and handle; memory is freed (and on_closed called) as the loop runs. */
void transport_close(struct transport *t);

/* Test hook: abruptly closes every snapshot connection (streams then resume). */
void transport_break_snapshot_conns(struct transport *t);

#endif /* DRAGONRAFT_TRANSPORT_TRANSPORT_H */
