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
