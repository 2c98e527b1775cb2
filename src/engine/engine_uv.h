/*
 * engine_uv.h - drives an engine from a libuv loop with the TCP transport:
 * a timer ticks every rtt_ms, a check handle runs engine rounds whenever
 * there is work (after the loop polled, so a round takes every message read
 * in its turn; then it flushes the transport), and transport callbacks feed
 * messages, snapshots and unreachable reports to the engine.
 *
 * Embedding in another event loop (the PostgreSQL engine worker): wait on
 * engine_uv_fd() with engine_uv_timeout(), then call engine_uv_run_nowait();
 * after client operations (engine_propose, ...) call engine_uv_run_nowait()
 * too, so the round that carries them runs.
 *
 * Snapshots: the state machine's file streams on the transport's snapshot
 * connection; the RAFT_MSG_SNAPSHOT message follows once the file arrived,
 * and the receiver hands both to the engine together.
 */
#ifndef DRAGONRAFT_ENGINE_UV_H
#define DRAGONRAFT_ENGINE_UV_H

#include <uv.h>

#include "engine/engine.h"
#include "transport/transport.h"

struct engine_uv;

/*
 * Create the transport on loop and an engine over storage; node id and
 * snapshot directory come from ecfg.  On error the reason is in errmsg (the
 * transport's own, e.g. a certificate that cannot be loaded).
 */
int engine_uv_create(uv_loop_t *loop, const struct engine_config *ecfg,
                     const struct engine_storage_ops *storage, const struct transport_config *tcfg,
                     struct engine_uv **out, char *errmsg, size_t errmsg_len);
/*
 * Read the transport's TLS files again (transport_reload_tls: new connections
 * use them, connections of peers whose certificates no longer verify close).
 * On error nothing changed and the reason is in errmsg.
 */
int engine_uv_reload_tls(struct engine_uv *u, const struct transport_tls_files *f, char *errmsg,
                         size_t errmsg_len);
/* The engine (for groups and client operations). */
struct engine *engine_uv_engine(struct engine_uv *u);
/* The transport (for its listen port and counters). */
struct transport *engine_uv_transport(struct engine_uv *u);
/* The fd to wait on when embedding (uv_backend_fd). */
int engine_uv_fd(struct engine_uv *u);
/* Milliseconds until the loop needs to run again; -1 = no timeout. */
int engine_uv_timeout(struct engine_uv *u);
/* Run the loop once without blocking; returns uv_run's result. */
int engine_uv_run_nowait(struct engine_uv *u);
/*
 * Stop: handles and the transport close as the loop runs, then the engine
 * and u are freed (the caller keeps running the loop until it is not alive).
 */
void engine_uv_close(struct engine_uv *u);

#endif /* DRAGONRAFT_ENGINE_UV_H */
