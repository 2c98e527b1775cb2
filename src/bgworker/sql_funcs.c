/*
 * sql_funcs.c - SQL-callable functions of the dragonraft schema.
 */
#include "dragonraft.h"

#include "access/htup_details.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(dr_node_status);

static const char *
state_name(DrEngineState s)
{
	switch (s) {
	case DR_ENGINE_OFF:
		return "off";
	case DR_ENGINE_RUNNING:
		return "running";
	case DR_ENGINE_STOPPED:
		return "stopped";
	}
	return "unknown";
}

/* dragonraft.node_status(): this node's id, engine state, pid and start time. */
Datum
dr_node_status(PG_FUNCTION_ARGS)
{
	TupleDesc tupdesc;
	Datum values[4];
	bool nulls[4] = {false, false, false, false};
	DrEngineState state;
	pid_t pid;
	TimestampTz started;

	if (dr_shared == NULL)
		ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("dragonraft is not loaded through shared_preload_libraries"),
			 errhint("Add dragonraft to shared_preload_libraries in postgresql.conf "
				 "and restart the server.")));

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	SpinLockAcquire(&dr_shared->mutex);
	state = dr_shared->engine_state;
	pid = dr_shared->engine_pid;
	started = dr_shared->engine_started;
	SpinLockRelease(&dr_shared->mutex);

	values[0] = Int32GetDatum(dr_node_id);
	values[1] = CStringGetTextDatum(state_name(state));
	values[2] = Int32GetDatum((int32)pid);
	nulls[2] = (pid == 0);
	values[3] = TimestampTzGetDatum(started);
	nulls[3] = (state != DR_ENGINE_RUNNING);

	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
