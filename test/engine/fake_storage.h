/*
 * fake_storage.h - an in-memory struct engine_storage_ops for engine tests.
 * Everything a save wrote is "durable" (it survives an engine crash, i.e.
 * engine_destroy plus a new engine over the same fake).  A save interrupted by
 * an injected failure keeps only the updates before the failure point, the
 * way a crash between two LogDB shard batches would.
 */
#ifndef DRAGONRAFT_TEST_FAKE_STORAGE_H
#define DRAGONRAFT_TEST_FAKE_STORAGE_H

#include "engine/engine.h"

struct fake_storage;

/* Create an empty store. */
int fake_storage_create(struct fake_storage **out);
/* Free the store and everything in it. */
void fake_storage_destroy(struct fake_storage *fs);
/* Fill ops with callbacks over fs. */
void fake_storage_ops(struct fake_storage *fs, struct engine_storage_ops *ops);
/* Make busy() report b for every group. */
void fake_storage_set_busy(struct fake_storage *fs, bool b);
/* The next save persists only its first keep updates, then fails. */
void fake_storage_fail_next_save(struct fake_storage *fs, size_t keep);
/* Make every read of entries or terms fail with ENGINE_ERR_STORAGE (or stop that). */
void fake_storage_fail_reads(struct fake_storage *fs, bool on);
/* Replace the data of stored entry index of a group with 3 bytes of garbage. */
int fake_storage_mangle(struct fake_storage *fs, uint64_t group_id, raft_index index);
/* Number of save calls so far. */
uint64_t fake_storage_saves(const struct fake_storage *fs);
/* First stored index of a group (0 when unknown). */
raft_index fake_storage_first(const struct fake_storage *fs, uint64_t group_id);

#endif /* DRAGONRAFT_TEST_FAKE_STORAGE_H */
