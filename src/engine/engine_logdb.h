/*
 * engine_logdb.h - struct engine_storage_ops over the LogDB (src/logdb): the
 * adapter that lets the engine persist into RocksDB.  One adapter per engine
 * (node); it owns a LogDB worker (the engine saves from one thread).
 */
#ifndef DRAGONRAFT_ENGINE_LOGDB_H
#define DRAGONRAFT_ENGINE_LOGDB_H

#include "engine/engine.h"
#include "logdb/logdb.h"

struct engine_logdb;

/* Wrap db (which stays owned by the caller) for node node_id. */
int engine_logdb_create(struct logdb *db, raft_id node_id, struct engine_logdb **out);
/* End el's use of the LogDB from other threads: a sync running on one (engine_uv's
 * deferred sync, on libuv's thread pool) ends first, and later ones fail
 * (ENGINE_ERR_STOPPED) without touching the LogDB; el gives back the LogDB's
 * memory it held, and the LogDB may then be closed while el stays allocated
 * (engine_logdb_destroy may still free it).  For an embedder that exits without
 * running its loop again (the engine worker after an error inside the engine:
 * engine_worker.c); the engine may not save through el any more. */
void engine_logdb_stop(struct engine_logdb *el);
/* Free the adapter (not the LogDB). */
void engine_logdb_destroy(struct engine_logdb *el);
/* Has a read found the LogDB damaged (LOGDB_ERR_CORRUPT: a failed checksum,
 * or a log that contradicts itself)?  A restart meets the damage again. */
bool engine_logdb_damaged(const struct engine_logdb *el);
/* Bytes of entry data that el's read buffer keeps between reads (for tests). */
size_t engine_logdb_read_buffer(const struct engine_logdb *el);
/* Fill ops with callbacks over el. */
void engine_logdb_ops(struct engine_logdb *el, struct engine_storage_ops *ops);

#endif /* DRAGONRAFT_ENGINE_LOGDB_H */
