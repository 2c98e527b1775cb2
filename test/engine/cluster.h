/*
 * cluster.h - N engines in one process over fake storage, the fake network
 * and the KV state machine, driven in virtual time (engine_tick), for the
 * engine's unit tests.  Node ids are 1..n; groups are indexed 0..n_groups-1.
 */
#ifndef DRAGONRAFT_TEST_CLUSTER_H
#define DRAGONRAFT_TEST_CLUSTER_H

#include <stdlib.h>
#include <unistd.h>

#include "engine/engine.h"
#include "fake_net.h"
#include "fake_storage.h"
#include "kv_sm.h"

/*
 * The directory a cluster makes its own under: $DR_ENGINE_TEST_ROOT if set
 * (engine_inproc_bench sets /tmp: its fsync figures are the disk's), else
 * /dev/shm (tmpfs) where there is one, else /tmp.  The tests check the
 * engine's logic over the LogDB, not the disk: a process killed between
 * two of their steps loses nothing either way, and the disk's fsyncs made
 * test_engine_logdb four times slower (65 s against 17 s, 46 tests, on a
 * busy machine).  The LogDB's own tests (test_logdb, logdb-crash-check)
 * and engine-procs-check keep the disk.
 */
static inline const char *cl_test_root(void)
{
	const char *root = getenv("DR_ENGINE_TEST_ROOT");
	if (root != NULL && root[0] != '\0')
		return root;
	return access("/dev/shm", W_OK | X_OK) == 0 ? "/dev/shm" : "/tmp";
}

#define CL_MAX_NODES  8
#define CL_MAX_GROUPS 64

struct cl_node {
	raft_id id;
	struct engine *e;                 /* NULL while down */
	struct fake_storage *fs;          /* survives crashes */
	struct kv_sm *sm[CL_MAX_GROUPS];  /* survives crashes (rolled back to durable) */
	uint64_t job_tick[CL_MAX_GROUPS]; /* when a background snapshot op was first seen */
	/* Deferred leader syncs (engine_config.defer_leader_sync): storage's sync, and a sync
	 * begun, which runs at the start of the next cluster_step (rounds go on meanwhile). */
	int (*sync)(void *ctx);
	void *sync_ctx;
	bool sync_out;
};

struct cluster;

/* Optional storage other than the fake: opened at every engine start, closed at a crash. */
struct cluster_storage {
	int (*open)(struct cluster *c, raft_id id, struct engine_storage_ops *ops);
	void (*close)(struct cluster *c, raft_id id);
};

struct cluster {
	const struct cluster_storage *storage; /* NULL = fake_storage */
	void *storage_ctx[CL_MAX_NODES + 1];
	int n_nodes;
	int n_groups;
	uint64_t group_ids[CL_MAX_GROUPS];
	struct cl_node nodes[CL_MAX_NODES + 1]; /* [1..n_nodes] */
	struct fake_net *net;
	struct engine_config cfg;
	uint64_t sm_lag;
	unsigned sm_async_ticks; /* > 0: snapshot ops run in the background this long */
	bool no_full_snapshots;  /* members started from now on have no save_snapshot */
	raft_id hold_syncs;      /* > 0: that node's deferred syncs wait (do not run) */
	char dir[256];
	uint64_t ticks;
	uint64_t incarnations; /* engines started so far (client ids) */
	uint64_t client_id;    /* > 0: the client id of the next engine started (once), as an
	                        * embedder may set it (engine_config.client_id) */
};

/* Nodes 1..n_nodes; groups 1..n_groups with members 1..n_members. */
int cluster_init(struct cluster *c, int n_nodes, int n_members, int n_groups,
                 const struct engine_config *tmpl, uint64_t sm_lag);
/* cluster_init with another storage (st may be NULL). */
int cluster_init_with(struct cluster *c, const struct cluster_storage *st, int n_nodes,
                      int n_members, int n_groups, const struct engine_config *tmpl,
                      uint64_t sm_lag);
/* Free everything and delete the directory. */
void cluster_destroy(struct cluster *c);
/* Kill node id: its engine vanishes without writing anything; its SMs roll back. */
void cluster_crash(struct cluster *c, raft_id id);
/* Start node id's engine again and restart every group it stored. */
int cluster_restart(struct cluster *c, raft_id id);
/* Start node id's (new, empty) member of group gi as a joiner. */
int cluster_join(struct cluster *c, raft_id id, int gi);
/* One round on every live engine, then deliver the network's queue. */
void cluster_step(struct cluster *c);
/* Aborts unless e's count of completions owed (n_owed) matches what is pending in it; called
 * after each round, tick and sync report, and before an engine is destroyed. */
void cluster_check_owed(const struct engine *e);
/* One tick on every live engine (after running rounds until quiet). */
void cluster_tick(struct cluster *c);
/* Run until pred holds, at most max_ticks ticks; true when it held. */
bool cluster_run(struct cluster *c, bool (*pred)(struct cluster *, void *), void *arg,
                 unsigned max_ticks);
/* State machine snapshots in the background, ending after ticks (0 = at once). */
void cluster_async_snapshots(struct cluster *c, unsigned ticks);
/* The leader of group gi among live nodes (highest term), 0 if none. */
raft_id cluster_leader(const struct cluster *c, int gi);
/* Every live member of gi applied the leader's commit index with one digest. */
bool cluster_converged(const struct cluster *c, int gi);
/* Status of gi on node id; false when down or not a member. */
bool cluster_status(const struct cluster *c, raft_id id, int gi, struct engine_group_status *st);

#endif /* DRAGONRAFT_TEST_CLUSTER_H */
