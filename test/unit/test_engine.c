/*
 * test_engine.c - the engine scenarios (test/engine/engine_scenarios.h) over
 * the in-memory fake storage.
 */
#include "../engine/engine_scenarios.h"
