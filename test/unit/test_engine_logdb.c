/*
 * test_engine_logdb.c - the engine scenarios over a real LogDB
 * (test/engine/engine_logdb_scenarios.h).
 */
#include "../engine/engine_logdb_scenarios.h"
