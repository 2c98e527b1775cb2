/*
 * kv_sm.h - a small key-value state machine for engine tests and benchmarks.
 * An entry's first 8 bytes (fewer: zero-padded) are the key, the rest the
 * value.  It keeps a digest chained over every applied entry (index, term,
 * type, data), so replicas that applied the same sequence have the same
 * digest at the same index.  Snapshots go to and from a checksummed file.
 *
 * Durability is simulated: with a lag L > 0, the durable state is a checkpoint
 * taken every L applied entries, and kv_sm_crash() rolls back to it, as an
 * on-disk state machine that had not flushed its latest batches would; its
 * snapshots then export that checkpoint (an index below the applied one).
 */
#ifndef DRAGONRAFT_TEST_KV_SM_H
#define DRAGONRAFT_TEST_KV_SM_H

#include "engine/engine.h"

struct kv_sm;

/* Create an empty state machine; lag as above (0 = every apply durable). */
int kv_sm_create(uint64_t lag, struct kv_sm **out);
/* Free it. */
void kv_sm_destroy(struct kv_sm *kv);
/* Fill ops with callbacks over kv. */
void kv_sm_ops(struct kv_sm *kv, struct engine_sm_ops *ops);
/* apply_busy answers busy (the engine holds committed entries back while true). */
void kv_sm_set_busy(struct kv_sm *kv, bool busy);
/* Lose everything after the durable checkpoint. */
void kv_sm_crash(struct kv_sm *kv);
/* Last applied index. */
raft_index kv_sm_applied(const struct kv_sm *kv);
/* Digest of the applied sequence. */
uint64_t kv_sm_digest(const struct kv_sm *kv);
/* Entries with data applied so far (including those taken over by a snapshot). */
uint64_t kv_sm_count(const struct kv_sm *kv);
/* Index of the last entry that wrote key (0 = never); *value_hash its value's hash. */
raft_index kv_sm_get(const struct kv_sm *kv, uint64_t key, uint64_t *value_hash);
/* Snapshots recovered so far. */
unsigned kv_sm_recoveries(const struct kv_sm *kv);
/* Snapshots asked of it (save_snapshot calls). */
unsigned kv_sm_saves(const struct kv_sm *kv);
/* The file the last of them was to write ("" before the first). */
const char *kv_sm_save_path(const struct kv_sm *kv);

/*
 * Background snapshots: with async on, save_snapshot() captures the state at
 * once but reports ENGINE_IN_PROGRESS, and recover() only records its file;
 * each waits for kv_sm_finish(), whose caller reports the end to the engine
 * (engine_snapshot_saved / engine_snapshot_recovered).  A crash loses the op.
 */
enum kv_job { KV_JOB_NONE, KV_JOB_SAVE, KV_JOB_RECOVER };
/* Turn background snapshots on or off. */
void kv_sm_set_async(struct kv_sm *kv, bool on);
/* The op that waits for kv_sm_finish(). */
enum kv_job kv_sm_job(const struct kv_sm *kv);
/* Finish it: its rc; *index the index the saved file holds (saves). */
int kv_sm_finish(struct kv_sm *kv, raft_index *index);

#endif /* DRAGONRAFT_TEST_KV_SM_H */
