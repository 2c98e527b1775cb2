/*
 * test_raft_fixture.h - a tiny in-process cluster for the Raft unit tests:
 * nodes over raft_memstorage, a message queue with deep copies, partitions,
 * and a record of what each node applied.
 */
#ifndef DRAGONRAFT_TEST_RAFT_FIXTURE_H
#define DRAGONRAFT_TEST_RAFT_FIXTURE_H

#include "raft/raft.h"
#include "raft/raft_memstorage.h"

#define FX_MAX 8

/* An applied entry as the state machine saw it. */
struct fx_applied {
	raft_index index;
	raft_term term;
	uint32_t type;
	uint32_t len;
	uint8_t data[32];
};

/* A queued message with its own copies of entries and snapshot. */
struct fx_msg {
	struct raft_message m;
	struct raft_entry *ents;
	uint8_t *data;
	struct raft_snapshot_meta snap;
};

struct fx_node {
	raft_id id;
	struct raft *r;
	struct raft_memstorage *ms;
	bool down;
	struct fx_applied *applied;
	uint32_t n_applied;
	uint32_t cap_applied;
	struct raft_read_state reads[64];
	uint32_t n_reads;
	struct raft_membership conf;
};

struct fx {
	uint32_t n;
	struct fx_node nodes[FX_MAX + 1]; /* by id, 1..n */
	struct fx_msg *q;
	uint32_t nq;
	uint32_t capq;
	bool cut[FX_MAX + 1][FX_MAX + 1]; /* cut[a][b]: messages a -> b dropped */
	struct raft_config base;
	uint64_t delivered;
	/* Called with each Ready fx_ready takes, before it is persisted. */
	void (*on_ready)(struct fx *f, raft_id id, const struct raft_ready *rd);
};

/* Default config for node id (election 10, heartbeat 1). */
void fx_default_config(struct raft_config *c, raft_id id);
/* A cluster of n voters (1..n), each with cfg like base (storage/id filled in). */
struct fx *fx_create(uint32_t n, const struct raft_config *base);
/* Like fx_create but nodes are not started: fill their storage, then fx_start. */
struct fx *fx_create_stopped(uint32_t n, const struct raft_config *base);
/* Start node id from whatever its storage holds (no bootstrap). */
void fx_start(struct fx *f, raft_id id);
/* Free everything. */
void fx_destroy(struct fx *f);
/* Add a node id with empty storage and no membership (joins via the leader). */
void fx_add_node(struct fx *f, raft_id id);
/* Queue a message (deep copy) for delivery. */
void fx_send(struct fx *f, const struct raft_message *m);
/* Step (or drop) queued message i; the rc of raft_step (RAFT_OK if not delivered). */
int fx_deliver_at(struct fx *f, uint32_t i, bool drop);
/* Run node id's Ready cycle once: persist, queue messages, apply, advance. */
bool fx_ready(struct fx *f, raft_id id);
/* Deliver queued messages and run Ready cycles until quiet (bounded). */
void fx_stabilize(struct fx *f);
/* Like fx_stabilize but at most max_rounds steps; false if still busy. */
bool fx_run(struct fx *f, int max_rounds);
/* Tick node id k times (running Ready cycles in between). */
void fx_tick(struct fx *f, raft_id id, unsigned k);
/* Tick every live node k times, stabilizing after each tick. */
void fx_tick_all(struct fx *f, unsigned k);
/* Make id campaign and stabilize. */
void fx_elect(struct fx *f, raft_id id);
/* Isolate id from everyone (both directions). */
void fx_isolate(struct fx *f, raft_id id);
/* Heal all partitions. */
void fx_heal(struct fx *f);
/* Propose a string on node id; returns the rc. */
int fx_propose(struct fx *f, raft_id id, const char *s);
/* Leader id among live nodes (0 if none or several in the highest term). */
raft_id fx_leader(struct fx *f);
/* Crash node id (drop its raft, keep its storage) and drop its queued messages. */
void fx_crash(struct fx *f, raft_id id);
/* Restart node id from its storage with applied = what it applied. */
void fx_restart(struct fx *f, raft_id id);
/* Drop every queued message. */
void fx_drop_all(struct fx *f);
/* Does node id's applied sequence contain data s? */
bool fx_applied_has(const struct fx *f, raft_id id, const char *s);

#endif /* DRAGONRAFT_TEST_RAFT_FIXTURE_H */
