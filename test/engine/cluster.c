/*
 * cluster.c - the in-process engine cluster for tests (see the header).
 */
#define _GNU_SOURCE /* nftw */
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster.h"
#include "engine/engine_int.h"
#include "raft/raft.h"

/*
 * Every operation the engine accepted and has not completed holds its room in
 * the completion queue (engine_int.h, n_owed): the count must match what is
 * pending (the pending table and the groups' waiters) whenever control is
 * back with the embedder.  A count above leaks room at each operation; one
 * below wraps (every later operation fails with ENGINE_ERR_NOMEM) or lets
 * eng_complete abort on a full queue.
 */
void cluster_check_owed(const struct engine *e)
{
	if (e == NULL || e->n_owed == engine_pending_count(e))
		return;
	fprintf(stderr, "engine of node %llu owes %zu completions, %zu pending\n",
	        (unsigned long long)e->cfg.node_id, e->n_owed, engine_pending_count(e));
	abort();
}

/* The state machine ops of node id's member of group g. */
static void sm_ops(const struct cluster *c, raft_id id, int g, struct engine_sm_ops *sm)
{
	kv_sm_ops(c->nodes[id].sm[g], sm);
	if (c->no_full_snapshots)
		sm->save_snapshot = NULL;
}

static int start_engine(struct cluster *c, raft_id id)
{
	struct cl_node *n = &c->nodes[id];
	struct engine_storage_ops st;
	struct engine_network_ops net;
	struct engine_config cfg = c->cfg;
	char err[256];
	int rc;

	cfg.node_id = id;
	cfg.snapshot_dir = c->dir;
	cfg.seed = id * 7919 + c->ticks;
	/* a new client id per incarnation (a restart may come in the same tick) */
	cfg.client_id = (id << 48) + ++c->incarnations;
	if (c->client_id != 0) {
		cfg.client_id = c->client_id;
		c->client_id = 0;
	}
	if (c->storage != NULL) {
		rc = c->storage->open(c, id, &st);
		if (rc != ENGINE_OK)
			return rc;
	} else {
		fake_storage_ops(n->fs, &st);
	}
	fake_net_ops(c->net, id, &net);
	n->sync = st.sync;
	n->sync_ctx = st.ctx;
	n->sync_out = false;
	rc = engine_create(&cfg, &st, &net, &n->e, err, sizeof(err));
	if (rc != ENGINE_OK) {
		fprintf(stderr, "engine_create(%llu): %s\n", (unsigned long long)id, err);
		return rc;
	}
	fake_net_attach(c->net, id, n->e);
	return ENGINE_OK;
}

static int node_init(struct cluster *c, raft_id id)
{
	struct cl_node *n = &c->nodes[id];
	int rc;

	n->id = id;
	rc = fake_storage_create(&n->fs);
	for (int g = 0; g < c->n_groups && rc == ENGINE_OK; g++)
		rc = kv_sm_create(c->sm_lag, &n->sm[g]);
	if (rc == ENGINE_OK)
		rc = start_engine(c, id);
	return rc;
}

int cluster_init(struct cluster *c, int n_nodes, int n_members, int n_groups,
                 const struct engine_config *tmpl, uint64_t sm_lag)
{
	return cluster_init_with(c, NULL, n_nodes, n_members, n_groups, tmpl, sm_lag);
}

int cluster_init_with(struct cluster *c, const struct cluster_storage *st, int n_nodes,
                      int n_members, int n_groups, const struct engine_config *tmpl,
                      uint64_t sm_lag)
{
	struct engine_bootstrap bs;
	int rc;

	memset(c, 0, sizeof(*c));
	c->storage = st;
	if (n_nodes > CL_MAX_NODES || n_groups > CL_MAX_GROUPS || n_members > n_nodes)
		return ENGINE_ERR_INVALID;
	c->n_nodes = n_nodes;
	c->n_groups = n_groups;
	c->cfg = *tmpl;
	c->sm_lag = sm_lag;
	snprintf(c->dir, sizeof(c->dir), "%s/dr-engine-test-XXXXXX", cl_test_root());
	if (mkdtemp(c->dir) == NULL)
		return ENGINE_ERR_INVALID;
	rc = fake_net_create(c->dir, &c->net);
	if (rc != ENGINE_OK)
		return rc;
	for (int g = 0; g < n_groups; g++)
		c->group_ids[g] = 100 + (uint64_t)g;
	for (raft_id id = 1; id <= (raft_id)n_nodes; id++) {
		rc = node_init(c, id);
		if (rc != ENGINE_OK)
			return rc;
	}
	memset(&bs, 0, sizeof(bs));
	bs.n_members = (uint32_t)n_members;
	for (int i = 0; i < n_members; i++) {
		bs.members[i].node_id = (raft_id)i + 1;
		snprintf(bs.members[i].addr, sizeof(bs.members[i].addr), "127.0.0.1:%d",
		         7400 + i + 1);
	}
	for (raft_id id = 1; id <= (raft_id)n_members; id++) {
		for (int g = 0; g < n_groups; g++) {
			struct engine_sm_ops sm;

			sm_ops(c, id, g, &sm);
			rc = engine_start_group(c->nodes[id].e, c->group_ids[g], &bs, &sm);
			if (rc != ENGINE_OK) {
				fprintf(stderr, "start_group: %s\n", engine_errmsg(c->nodes[id].e));
				return rc;
			}
		}
	}
	return ENGINE_OK;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

void cluster_destroy(struct cluster *c)
{
	for (raft_id id = 1; id <= (raft_id)c->n_nodes; id++) {
		struct cl_node *n = &c->nodes[id];

		cluster_check_owed(n->e);
		engine_destroy(n->e);
		if (c->storage != NULL && n->e != NULL)
			c->storage->close(c, id);
		fake_storage_destroy(n->fs);
		for (int g = 0; g < c->n_groups; g++)
			kv_sm_destroy(n->sm[g]);
	}
	fake_net_destroy(c->net);
	if (c->dir[0] != '\0')
		nftw(c->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	memset(c, 0, sizeof(*c));
}

void cluster_crash(struct cluster *c, raft_id id)
{
	struct cl_node *n = &c->nodes[id];

	fake_net_attach(c->net, id, NULL);
	cluster_check_owed(n->e);
	engine_destroy(n->e);
	if (c->storage != NULL && n->e != NULL)
		c->storage->close(c, id);
	else
		fake_storage_lose_unsynced(n->fs);
	n->e = NULL;
	n->sync_out = false;
	for (int g = 0; g < c->n_groups; g++)
		kv_sm_crash(n->sm[g]);
}

static int group_index(const struct cluster *c, uint64_t gid)
{
	for (int g = 0; g < c->n_groups; g++)
		if (c->group_ids[g] == gid)
			return g;
	return -1;
}

int cluster_restart(struct cluster *c, raft_id id)
{
	struct cl_node *n = &c->nodes[id];
	uint64_t ids[CL_MAX_GROUPS];
	size_t k = 0;
	int rc;

	rc = start_engine(c, id);
	if (rc != ENGINE_OK)
		return rc;
	rc = engine_stored_groups(n->e, ids, CL_MAX_GROUPS, &k);
	if (rc != ENGINE_OK)
		return rc;
	for (size_t i = 0; i < k && i < CL_MAX_GROUPS; i++) {
		struct engine_sm_ops sm;
		int g = group_index(c, ids[i]);

		if (g < 0)
			return ENGINE_ERR_INVALID;
		sm_ops(c, id, g, &sm);
		rc = engine_start_group(n->e, ids[i], NULL, &sm);
		if (rc != ENGINE_OK) {
			fprintf(stderr, "restart group %llu on %llu: %s\n",
			        (unsigned long long)ids[i], (unsigned long long)id,
			        engine_errmsg(n->e));
			return rc;
		}
	}
	return ENGINE_OK;
}

int cluster_join(struct cluster *c, raft_id id, int gi)
{
	struct engine_bootstrap bs;
	struct engine_sm_ops sm;

	memset(&bs, 0, sizeof(bs));
	bs.join = true;
	sm_ops(c, id, gi, &sm);
	return engine_start_group(c->nodes[id].e, c->group_ids[gi], &bs, &sm);
}

/*
 * A step: the syncs begun in the last step end, each node runs a round and
 * begins a sync if it wrote unsynced, and the network delivers.  So a sync
 * covers what was written before it began, and a step's messages and
 * proposals meet the leader while it runs.
 */
void cluster_step(struct cluster *c)
{
	for (raft_id id = 1; id <= (raft_id)c->n_nodes; id++) {
		struct cl_node *n = &c->nodes[id];

		if (n->e != NULL && n->sync_out && c->hold_syncs != id) {
			n->sync_out = false;
			engine_sync_done(n->e, n->sync(n->sync_ctx));
			cluster_check_owed(n->e);
		}
	}
	for (raft_id id = 1; id <= (raft_id)c->n_nodes; id++) {
		struct cl_node *n = &c->nodes[id];

		if (n->e == NULL)
			continue;
		engine_run_round(n->e);
		cluster_check_owed(n->e);
		if (!n->sync_out && engine_sync_wanted(n->e)) {
			engine_sync_begin(n->e);
			n->sync_out = true;
		}
	}
	fake_net_deliver(c->net);
}

static bool busy(const struct cluster *c)
{
	if (fake_net_queued(c->net) > 0)
		return true;
	for (raft_id id = 1; id <= (raft_id)c->n_nodes; id++)
		if (c->nodes[id].e != NULL &&
		    (engine_has_work(c->nodes[id].e) ||
		     (c->nodes[id].sync_out && c->hold_syncs != id)))
			return true;
	return false;
}

void cluster_async_snapshots(struct cluster *c, unsigned ticks)
{
	c->sm_async_ticks = ticks;
	for (raft_id id = 1; id <= (raft_id)c->n_nodes; id++)
		for (int g = 0; g < c->n_groups; g++)
			if (c->nodes[id].sm[g] != NULL)
				kv_sm_set_async(c->nodes[id].sm[g], ticks > 0);
}

/* Background snapshot ops that have run long enough end and are reported. */
static void finish_jobs(struct cluster *c)
{
	for (raft_id id = 1; id <= (raft_id)c->n_nodes; id++) {
		struct cl_node *n = &c->nodes[id];

		for (int g = 0; g < c->n_groups && n->e != NULL; g++) {
			enum kv_job job = n->sm[g] != NULL ? kv_sm_job(n->sm[g]) : KV_JOB_NONE;
			raft_index idx;
			int rc;

			if (job == KV_JOB_NONE) {
				n->job_tick[g] = 0;
				continue;
			}
			if (n->job_tick[g] == 0)
				n->job_tick[g] = c->ticks;
			if (c->ticks - n->job_tick[g] < c->sm_async_ticks)
				continue;
			n->job_tick[g] = 0;
			rc = kv_sm_finish(n->sm[g], &idx);
			if (job == KV_JOB_SAVE)
				engine_snapshot_saved(n->e, c->group_ids[g], rc, idx);
			else
				engine_snapshot_recovered(n->e, c->group_ids[g], rc);
		}
	}
}

void cluster_tick(struct cluster *c)
{
	for (int i = 0; i < 64 && busy(c); i++)
		cluster_step(c);
	c->ticks++;
	if (c->sm_async_ticks > 0)
		finish_jobs(c);
	for (raft_id id = 1; id <= (raft_id)c->n_nodes; id++)
		if (c->nodes[id].e != NULL) {
			engine_tick(c->nodes[id].e);
			cluster_check_owed(c->nodes[id].e);
		}
}

bool cluster_run(struct cluster *c, bool (*pred)(struct cluster *, void *), void *arg,
                 unsigned max_ticks)
{
	for (unsigned t = 0; t <= max_ticks; t++) {
		for (int i = 0; i < 64; i++) {
			if (pred(c, arg))
				return true;
			if (!busy(c))
				break;
			cluster_step(c);
		}
		if (pred(c, arg))
			return true;
		cluster_tick(c);
	}
	return pred(c, arg);
}

bool cluster_status(const struct cluster *c, raft_id id, int gi, struct engine_group_status *st)
{
	if (id == 0 || id > (raft_id)c->n_nodes || c->nodes[id].e == NULL)
		return false;
	return engine_group_status(c->nodes[id].e, c->group_ids[gi], st) == ENGINE_OK;
}

raft_id cluster_leader(const struct cluster *c, int gi)
{
	struct engine_group_status st;
	raft_term best = 0;
	raft_id lead = 0;

	for (raft_id id = 1; id <= (raft_id)c->n_nodes; id++) {
		if (!cluster_status(c, id, gi, &st))
			continue;
		if (st.role == 3 /* RAFT_LEADER */ && st.term >= best) {
			best = st.term;
			lead = id;
		}
	}
	return lead;
}

bool cluster_converged(const struct cluster *c, int gi)
{
	struct engine_group_status ls, st;
	raft_id lead = cluster_leader(c, gi);
	uint64_t digest;

	if (lead == 0 || !cluster_status(c, lead, gi, &ls) || ls.applied != ls.commit)
		return false;
	digest = kv_sm_digest(c->nodes[lead].sm[gi]);
	for (raft_id id = 1; id <= (raft_id)c->n_nodes; id++) {
		if (!raft_membership_contains(&ls.membership, id))
			continue;
		if (!cluster_status(c, id, gi, &st) || st.applied != ls.commit)
			return false;
		if (kv_sm_applied(c->nodes[id].sm[gi]) != ls.commit ||
		    kv_sm_digest(c->nodes[id].sm[gi]) != digest)
			return false;
	}
	return true;
}
