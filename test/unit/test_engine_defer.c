/*
 * test_engine_defer.c - the engine scenarios over the fake storage with
 * deferred leader syncs: a leader's entries of its term are written without
 * a sync, synced a cluster step later (test/engine/cluster.c), and a crash
 * loses what no sync covered.
 */
#define TEST_ENGINE_DEFER 1
#include "../engine/engine_scenarios.h"
