/*
 * test_engine_logdb_defer.c - the engine scenarios over a real LogDB with
 * deferred leader syncs (logdb_sync).
 */
#define TEST_ENGINE_DEFER 1
#include "../engine/engine_logdb_scenarios.h"
