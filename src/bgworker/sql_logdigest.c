/*
 * sql_logdigest.c - dragonraft.log_digest(group_id, from_index, to_index): a
 * digest of the Raft log that this node's LogDB holds for a group, so that
 * members can be compared (Raft's Log Matching: logs that hold an entry with
 * the same index and term hold identical entries up to it; nothing else
 * checks that the bytes a member stored under an index and term are the
 * leader's).
 *
 * The LogDB belongs to the engine worker: the backend asks it through the
 * request queue (queue.c), one bounded step at a time (membership.c), and
 * carries the digest's state (struct engine_log_digest, a SHA-256 chain)
 * from one step to the next, so a long log never holds the engine's rounds
 * for long and the call can be cancelled between steps.
 */
#include "dragonraft.h"

#include "access/htup_details.h"
#include "engine/engine.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "queue.h"
#include "shmem.h"
#include "utils/builtins.h"
#include "write.h"

PG_FUNCTION_INFO_V1(dr_log_digest);

/* The shared status of the group must say that it runs here. */
static void check_group(int64 group_id)
{
	uint8 state = DR_MEMBER_ACTIVE;
	uint32 failures;
	char error[DR_ERROR_LEN] = "";

	dr_sql_groups_state(group_id, &state, &failures, error);
	if (state == DR_MEMBER_LOST)
		dr_sql_groups_stopped(group_id, error, NULL);
}

static void digest_failed(int64 group_id, const struct engine_log_digest *asked,
                          const DrResult *res)
{
	if (res->rc == ENGINE_ERR_NOT_HELD)
		ereport(ERROR,
		        (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		         errmsg("the log of group %lld on this node does not hold the entries "
		                "asked "
		                "for",
		                (long long)group_id),
		         errdetail("%s", dr_sentence(res->errmsg)),
		         errhint("Compare a range that every member holds: a member's log starts "
		                 "after its last compaction (see snapshot_index in "
		                 "dragonraft.status) and ends at its last_index.")));
	if (res->rc == ENGINE_ERR_NO_GROUP) /* (stopped, failed, or gone since check_group) */
		dr_sql_groups_not_run(group_id, NULL);
	if (res->rc == ENGINE_ERR_FAILED)
		ereport(ERROR,
		        (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		         errmsg("dragonraft engine worker stopped: it cannot digest the log of "
		                "group %lld",
		                (long long)group_id),
		         res->errmsg[0] ? errdetail("%s", dr_sentence(res->errmsg)) : 0,
		         errhint("See dragonraft.node_status() and the server log.")));
	if (res->rc == DR_RC_ENGINE_EXITED)
		ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		                errmsg("dragonraft engine worker exited before the log digest of "
		                       "group %lld "
		                       "completed",
		                       (long long)group_id),
		                errhint("See dragonraft.node_status() and the server log.")));
	ereport(ERROR, (errcode(dr_sql_groups_errcode(res->rc)),
	                errmsg("could not digest the log of group %lld from entry %llu: %s",
	                       (long long)group_id, (unsigned long long)asked->next,
	                       res->rc > -100 ? engine_strerror(res->rc) : "request refused"),
	                res->errmsg[0] ? errdetail("%s", dr_sentence(res->errmsg)) : 0));
}

/*
 * dragonraft.log_digest(group_id, from_index, to_index): one row over the
 * entries held in [max(from, first held), min(to, last held)]; NULL bounds:
 * all that is held.
 */
Datum dr_log_digest(PG_FUNCTION_ARGS)
{
	struct engine_log_digest d;
	TupleDesc tupdesc;
	Datum values[6];
	bool nulls[6] = {false};
	int64 group_id, from = 0, to = 0;
	bool has_from = !PG_ARGISNULL(1), has_to = !PG_ARGISNULL(2);
	char hex[2 * sizeof(d.sum) + 1];
	DrResult res;

	if (PG_ARGISNULL(0) || PG_GETARG_INT64(0) < 1)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
		                errmsg("group id must be a positive integer")));
	group_id = PG_GETARG_INT64(0);
	if (has_from)
		from = PG_GETARG_INT64(1);
	if (has_to)
		to = PG_GETARG_INT64(2);
	if (from < 0 || to < 0)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
		                errmsg("log indexes must not be negative"),
		                errhint("Pass NULL for no bound.")));
	if (has_from && has_to && from > to)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
		                errmsg("from_index %lld is above to_index %lld", (long long)from,
		                       (long long)to)));
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	dr_sql_groups_check_engine();
	check_group(group_id);

	/* The engine reads 0 as "no bound"; the log starts at index 1. */
	memset(&d, 0, sizeof(d));
	d.first = (uint64)from;
	d.last = (uint64)to;
	if (has_to && to == 0) {
		memset(&res, 0, sizeof(res));
		res.rc = ENGINE_ERR_NOT_HELD;
		strlcpy(res.errmsg, "No log holds an entry at index 0", sizeof(res.errmsg));
		digest_failed(group_id, &d, &res);
	}
	for (uint64 arg = 0;; arg = 1) {
		CHECK_FOR_INTERRUPTS();
		dr_queue_call(DR_REQ_LOG_DIGEST, (uint64)group_id, arg, &d, sizeof(d), &res);
		if (res.rc != ENGINE_OK)
			digest_failed(group_id, &d, &res);
		memcpy(&d, res.out, sizeof(d));
		if (d.next > d.last)
			break;
	}

	for (size_t i = 0; i < sizeof(d.sum); i++)
		snprintf(hex + 2 * i, 3, "%02x", d.sum[i]);
	values[0] = Int64GetDatum(group_id);
	values[1] = Int64GetDatum((int64)d.first);
	nulls[1] = d.entries == 0;
	values[2] = Int64GetDatum((int64)d.last);
	nulls[2] = d.entries == 0;
	values[3] = Int64GetDatum((int64)d.last_term);
	nulls[3] = d.entries == 0;
	values[4] = Int64GetDatum((int64)d.entries);
	values[5] = CStringGetTextDatum(hex);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
