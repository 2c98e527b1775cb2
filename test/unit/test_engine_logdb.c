/*
 * test_engine_logdb.c - the engine scenarios (engine_scenarios.h), with every
 * node persisting into a real LogDB (RocksDB) through engine_logdb.c.  A crash
 * closes the node's LogDB; a restart opens it again and reloads from disk.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "engine/engine_logdb.h"
#include "logdb/logdb.h"
#include "../engine/cluster.h"

struct node_db {
	struct logdb *db;
	struct engine_logdb *el;
};

static struct node_db dbs[CL_MAX_NODES + 1];

static int open_db(struct cluster *c, raft_id id, struct engine_storage_ops *ops)
{
	struct logdb_config cfg = {0};
	char dir[512], err[256];
	int rc;

	snprintf(dir, sizeof(dir), "%s/logdb-%llu", c->dir, (unsigned long long)id);
	cfg.dir = dir;
	cfg.shards = 2;
	cfg.no_sync = true; /* a crash here is a process exit: the OS keeps written data */
	cfg.write_buffer_size = 4 << 20;
	rc = logdb_open(&cfg, &dbs[id].db, err, sizeof(err));
	if (rc != LOGDB_OK) {
		fprintf(stderr, "logdb_open(%s): %s\n", dir, err);
		return ENGINE_ERR_STORAGE;
	}
	rc = engine_logdb_create(dbs[id].db, id, &dbs[id].el);
	if (rc != ENGINE_OK) {
		logdb_close(dbs[id].db);
		return rc;
	}
	engine_logdb_ops(dbs[id].el, ops);
	return ENGINE_OK;
}

/* The engine keeps only the newest snapshot record of each member. */
static void check_snapshot_records(raft_id id)
{
	struct logdb_node_info *nodes;
	size_t n;

	if (logdb_list_nodes(dbs[id].db, &nodes, &n) != LOGDB_OK)
		return; /* the scenario itself reports storage trouble */
	for (size_t i = 0; i < n; i++) {
		struct logdb_snapshot *snaps;
		size_t k;

		if (logdb_list_snapshots(dbs[id].db, nodes[i].group_id, nodes[i].node_id, &snaps,
		                         &k) != LOGDB_OK)
			continue;
		logdb_free(dbs[id].db, snaps);
		if (k > 1)
			fail_msg("node %llu group %llu: %zu snapshot records kept, expected at "
			         "most 1",
			         (unsigned long long)id, (unsigned long long)nodes[i].group_id, k);
	}
	logdb_free(dbs[id].db, nodes);
}

static void close_db(struct cluster *c, raft_id id)
{
	(void)c;
	check_snapshot_records(id);
	engine_logdb_destroy(dbs[id].el);
	logdb_close(dbs[id].db);
	dbs[id].el = NULL;
	dbs[id].db = NULL;
}

static const struct cluster_storage logdb_storage = {open_db, close_db};

#define TEST_ENGINE_STORAGE (&logdb_storage)
#include "../engine/engine_scenarios.h"
