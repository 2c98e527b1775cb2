/*
 * raft_memstorage.h - an in-memory struct raft_storage for unit tests, the
 * simulator and benchmarks.  Nothing is durable; "persisting" a Ready means
 * calling the setters below.  Not thread-safe.
 */
#ifndef DRAGONRAFT_RAFT_MEMSTORAGE_H
#define DRAGONRAFT_RAFT_MEMSTORAGE_H

#include "raft/raft.h"

struct raft_memstorage; /* opaque */

/* Create an empty storage (no entries, term 0, no membership); alloc NULL = libc. */
int raft_memstorage_create(const struct raft_alloc *alloc, struct raft_memstorage **out);
/* Free the storage and every entry it holds. */
void raft_memstorage_destroy(struct raft_memstorage *ms);
/* Fill st with callbacks reading ms. */
void raft_memstorage_storage(struct raft_memstorage *ms, struct raft_storage *st);

/* Append entries (copied), replacing any stored suffix from e[0].index. */
int raft_memstorage_append(struct raft_memstorage *ms, const struct raft_entry *e, uint32_t n);
/* Record the hard state. */
void raft_memstorage_set_hard_state(struct raft_memstorage *ms, const struct raft_hard_state *hs);
/* Record the membership returned by initial_state (as of the applied index). */
void raft_memstorage_set_membership(struct raft_memstorage *ms, const struct raft_membership *m);
/* Install a snapshot received from the leader: the log is replaced by it. */
int raft_memstorage_apply_snapshot(struct raft_memstorage *ms, const struct raft_snapshot_meta *s);
/* Record a snapshot of our own state at index (<= last index), with its membership. */
int raft_memstorage_create_snapshot(struct raft_memstorage *ms, raft_index index,
                                    const struct raft_membership *m);
/* Drop entries up to and including index (index <= last index). */
int raft_memstorage_compact(struct raft_memstorage *ms, raft_index index);
/* Persist a whole Ready: snapshot, entries and hard state. */
int raft_memstorage_save_ready(struct raft_memstorage *ms, const struct raft_ready *rd);

/* Read access for tests. */
const struct raft_hard_state *raft_memstorage_hard_state(const struct raft_memstorage *ms);
/* First index still stored. */
raft_index raft_memstorage_first_index(const struct raft_memstorage *ms);
/* Last index stored. */
raft_index raft_memstorage_last_index(const struct raft_memstorage *ms);
/* Entry i (first <= i <= last) or NULL. */
const struct raft_entry *raft_memstorage_entry(const struct raft_memstorage *ms, raft_index i);

#endif /* DRAGONRAFT_RAFT_MEMSTORAGE_H */
