/*
 * applybench.c - the apply worker's transaction, two ways of recording its
 * applied index (bench/applied_index.sh, DESIGN §4).  A C procedure, so that
 * it runs the same code path as src/bgworker/apply_worker.c in one backend
 * (begin, the entries' effects through a prepared SPI plan, the applied
 * index, commit), with none of pgbench's per-statement costs:
 *
 *   CALL applybench(method, first_group, groups, batches, batch_size, effects)
 *
 * method 'origin': the group's replication origin (bench_<group>) is set up for the batch,
 * the index goes into the commit record (an XID forced), and the origin is
 * released after the commit, as the apply worker does; 'row': an UPDATE of
 * the group's row in group_state; 'none': nothing (the floor).  Batches go to
 * the groups first_group.. in turn; each entry upserts one row of table effect when
 * effects is true (otherwise entries are no-ops: Raft's own, membership).
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "replication/origin.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

PG_MODULE_MAGIC;

PG_FUNCTION_INFO_V1(applybench);

Datum applybench(PG_FUNCTION_ARGS)
{
	char *method = text_to_cstring(PG_GETARG_TEXT_PP(0));
	int first = PG_GETARG_INT32(1), groups = PG_GETARG_INT32(2);
	int batches = PG_GETARG_INT32(3), size = PG_GETARG_INT32(4);
	bool effects = PG_GETARG_BOOL(5);
	bool origin = strcmp(method, "origin") == 0, row = strcmp(method, "row") == 0;
	RepOriginId *ids = palloc(sizeof(RepOriginId) * (groups + 1));
	Oid types[2] = {INT4OID, INT8OID};
	SPIPlanPtr upsert, update;
	int64 index = 0;

	if (SPI_connect_ext(SPI_OPT_NONATOMIC) != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect_ext failed");
	upsert = SPI_prepare("INSERT INTO effect VALUES ($1, $2) "
	                     "ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v",
	                     2, types);
	update = SPI_prepare("UPDATE group_state SET applied_index = $2 WHERE group_id = $1", 2,
	                     types);
	if (upsert == NULL || update == NULL || SPI_keepplan(upsert) || SPI_keepplan(update))
		elog(ERROR, "SPI_prepare failed");
	for (int g = 1; g <= groups; g++) {
		char name[NAMEDATALEN];

		snprintf(name, sizeof(name), "bench_%d", first + g - 1);
		ids[g] = origin ? replorigin_by_name(name, false) : InvalidRepOriginId;
	}

	for (int b = 0; b < batches; b++) {
		int g = b % groups + 1, gid = first + g - 1;

		if (origin) {
			replorigin_session_setup(ids[g]);
			replorigin_session_origin = ids[g];
		}
		for (int i = 0; i < size; i++) {
			Datum v[2] = {Int32GetDatum(gid * 100000 + i % 1000),
			              Int64GetDatum(++index)};

			if (effects && SPI_execute_plan(upsert, v, NULL, false, 0) != SPI_OK_INSERT)
				elog(ERROR, "upsert failed");
		}
		if (row) {
			Datum v[2] = {Int32GetDatum(gid), Int64GetDatum(index)};

			if (SPI_execute_plan(update, v, NULL, false, 0) != SPI_OK_UPDATE ||
			    SPI_processed != 1)
				elog(ERROR, "update of group_state failed");
		}
		if (origin) {
			replorigin_session_origin_lsn = index;
			replorigin_session_origin_timestamp = GetCurrentTimestamp();
			(void)GetTopTransactionId();
		}
		SPI_commit();
		if (origin) {
			replorigin_session_reset();
			replorigin_session_origin = InvalidRepOriginId;
			replorigin_session_origin_lsn = InvalidXLogRecPtr;
			replorigin_session_origin_timestamp = 0;
		}
	}
	SPI_finish();
	PG_RETURN_VOID();
}
