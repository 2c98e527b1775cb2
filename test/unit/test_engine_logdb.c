/*
 * test_engine_logdb.c - the engine scenarios (engine_scenarios.h), with every
 * node persisting into a real LogDB (RocksDB) through engine_logdb.c.  A crash
 * closes the node's LogDB; a restart opens it again and reloads from disk.
 */
#include <stdio.h>
#include <stdlib.h>

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

static void close_db(struct cluster *c, raft_id id)
{
	(void)c;
	engine_logdb_destroy(dbs[id].el);
	logdb_close(dbs[id].db);
	dbs[id].el = NULL;
	dbs[id].db = NULL;
}

static const struct cluster_storage logdb_storage = {open_db, close_db};

#define TEST_ENGINE_STORAGE (&logdb_storage)
#include "../engine/engine_scenarios.h"
