/*
 * fake_storage.h - an in-memory struct engine_storage_ops for engine tests.
 * Everything a save wrote is "durable" (it survives an engine crash, i.e.
 * engine_destroy plus a new engine over the same fake, after
 * fake_storage_lose_unsynced: what write() wrote survives only once a sync()
 * or a synced save followed).  A save interrupted by
 * an injected failure keeps only the updates before the failure point, the
 * way a crash between two LogDB shard batches would.
 */
#ifndef DRAGONRAFT_TEST_FAKE_STORAGE_H
#define DRAGONRAFT_TEST_FAKE_STORAGE_H

#include "engine/engine.h"

struct fake_storage;

/* Create an empty store. */
int fake_storage_create(struct fake_storage **out);
/* A deep copy of fs (a copy of a LogDB directory taken at this moment). */
int fake_storage_clone(const struct fake_storage *fs, struct fake_storage **out);
/* Free the store and everything in it. */
void fake_storage_destroy(struct fake_storage *fs);
/* Fill ops with callbacks over fs. */
void fake_storage_ops(struct fake_storage *fs, struct engine_storage_ops *ops);
/* fn(arg) runs once, inside the first save with an entry of at least min_len bytes
 * (a save that takes long: the test lets time pass elsewhere). */
void fake_storage_on_save(struct fake_storage *fs, uint32_t min_len, void (*fn)(void *arg),
                          void *arg);
/* fn(arg) runs once, inside the first save or write (before it stores anything) of a
 * hard state whose commit index is at least commit. */
void fake_storage_on_commit(struct fake_storage *fs, raft_index commit, void (*fn)(void *arg),
                            void *arg);
/* Make busy() report b for every group. */
void fake_storage_set_busy(struct fake_storage *fs, bool b);
/* The next save persists only its first keep updates, then fails. */
void fake_storage_fail_next_save(struct fake_storage *fs, size_t keep);
/* Faults injected into reads of entries and terms. */
enum fake_read_fault {
	FAKE_READ_OK = 0,
	FAKE_READ_FAIL,      /* every read fails with ENGINE_ERR_STORAGE */
	FAKE_READ_NOMEM,     /* the next n reads fail with ENGINE_ERR_NOMEM */
	FAKE_READ_BAD_INDEX, /* entries come back with wrong indexes */
};
/* Inject fault f into the reads (n: FAKE_READ_NOMEM's count). */
void fake_storage_read_fault(struct fake_storage *fs, enum fake_read_fault f, unsigned n);
/* FAKE_READ_NOMEM: failures not spent yet. */
unsigned fake_storage_nomem_left(const struct fake_storage *fs);
/* Replace the data of stored entry index of a group with 3 bytes of garbage. */
int fake_storage_mangle(struct fake_storage *fs, uint64_t group_id, raft_index index);
/* Flip the lowest bit of byte at of stored entry index's data (a bit rot, or bytes
 * stored that were not the ones sent). */
int fake_storage_flip(struct fake_storage *fs, uint64_t group_id, raft_index index, uint32_t at);
/* A crash: unsynced writes (write(), no sync() or synced save since) are lost. */
void fake_storage_lose_unsynced(struct fake_storage *fs);
/* The next sync() fails. */
void fake_storage_fail_next_sync(struct fake_storage *fs);
/* Number of write() (unsynced) and sync() calls so far. */
uint64_t fake_storage_writes(const struct fake_storage *fs);
uint64_t fake_storage_syncs(const struct fake_storage *fs);
/* Number of save calls so far. */
uint64_t fake_storage_saves(const struct fake_storage *fs);
/* Updates saved that carried no entries, no snapshot, no new term or vote. */
uint64_t fake_storage_commit_only(const struct fake_storage *fs);
/* The commit index of a group's stored hard state (0 when unknown). */
raft_index fake_storage_commit(const struct fake_storage *fs, uint64_t group_id);
/* Number of reads of entries and terms so far. */
uint64_t fake_storage_reads(const struct fake_storage *fs);
/* First stored index of a group (0 when unknown). */
raft_index fake_storage_first(const struct fake_storage *fs, uint64_t group_id);

#endif /* DRAGONRAFT_TEST_FAKE_STORAGE_H */
