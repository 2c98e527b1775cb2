/*
 * sql_status.c - what a DBA sees (DESIGN §6), after pg_stat_replication and
 * pg_stat_subscription: node_status(), and the set-returning functions
 * behind the views dragonraft.status, dragonraft.members and
 * dragonraft.stat_groups, with stat_reset().  They read shared memory only
 * (shmem.h), so they answer also while the engine worker is down.
 */
#include "dragonraft.h"

#include "access/htup_details.h"
#include "fmgr.h"
#include "funcapi.h"
#include "raft/raft.h"
#include "shmem.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"
#include "write.h"

PG_FUNCTION_INFO_V1(dr_node_status);
PG_FUNCTION_INFO_V1(dr_group_status);
PG_FUNCTION_INFO_V1(dr_group_members);
PG_FUNCTION_INFO_V1(dr_group_stats);
PG_FUNCTION_INFO_V1(dr_stat_reset);
PG_FUNCTION_INFO_V1(dr_node_stats);

/* A member is catching up beyond this many committed entries not yet applied, or
 * while an entry committed this long ago is not applied. */
#define CATCHING_UP_ENTRIES 100
#define LAGGING_MS          1000

static const char *engine_state_name(DrEngineState s)
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

static const char *role_name(int role)
{
	switch (role) {
	case RAFT_FOLLOWER:
		return "follower";
	case RAFT_PRECANDIDATE:
		return "pre-candidate";
	case RAFT_CANDIDATE:
		return "candidate";
	case RAFT_LEADER:
		return "leader";
	}
	return "unknown";
}

/* dragonraft.node_status(): this node, its engine worker and its apply worker. */
Datum dr_node_status(PG_FUNCTION_ARGS)
{
	TupleDesc tupdesc;
	Datum values[8];
	bool nulls[8] = {false};
	DrEngineState state;
	pid_t pid, apply_pid;
	TimestampTz started, retry_at;
	char addr[DR_ADDR_LEN], error[DR_ERROR_LEN];

	dr_shmem_check_loaded();
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	SpinLockAcquire(&dr_shared->mutex);
	state = dr_shared->engine_state;
	pid = dr_shared->engine_pid;
	started = dr_shared->engine_started;
	apply_pid = dr_shared->apply_pid;
	strlcpy(addr, dr_shared->raft_address, sizeof(addr));
	strlcpy(error, dr_shared->engine_error, sizeof(error));
	retry_at = dr_shared->engine_retry_at;
	SpinLockRelease(&dr_shared->mutex);

	values[0] = Int32GetDatum(dr_node_id);
	values[1] = CStringGetTextDatum(engine_state_name(state));
	values[2] = Int32GetDatum((int32)pid);
	nulls[2] = pid == 0;
	values[3] = TimestampTzGetDatum(started);
	nulls[3] = state != DR_ENGINE_RUNNING;
	values[4] = CStringGetTextDatum(addr);
	nulls[4] = addr[0] == '\0';
	values[5] = Int32GetDatum((int32)apply_pid);
	nulls[5] = apply_pid == 0;
	values[6] = CStringGetTextDatum(error);
	nulls[6] = error[0] == '\0';
	values[7] =
	        TimestampTzGetDatum(retry_at); /* a damaged LogDB's next try (engine_worker.c) */
	nulls[7] = state == DR_ENGINE_RUNNING || retry_at == 0;
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/* dragonraft.stat_node: groups not started, the transport's refusals, log digest steps. */
Datum dr_node_stats(PG_FUNCTION_ARGS)
{
	TupleDesc tupdesc;
	Datum values[11];
	bool nulls[11] = {false};
	DrTransportCounters c;
	int not_started, digest_loop_max;
	uint64 digest_steps;

	dr_shmem_check_loaded();
	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	SpinLockAcquire(&dr_shared->mutex);
	not_started = dr_shared->groups_not_started;
	c = dr_shared->transport;
	digest_steps = dr_shared->digest_steps;
	digest_loop_max = dr_shared->digest_steps_loop_max;
	SpinLockRelease(&dr_shared->mutex);
	values[0] = Int32GetDatum(not_started);
	values[1] = Int64GetDatum((int64)c.accepted);
	values[2] = Int64GetDatum((int64)c.refused);
	values[3] = Int64GetDatum((int64)c.tls_failures);
	values[4] = Int64GetDatum((int64)c.auth_refused);
	values[5] = Int64GetDatum((int64)c.messages_rejected);
	values[6] = Int64GetDatum((int64)c.frames_rejected);
	values[7] = Int64GetDatum((int64)c.lines_suppressed);
	values[8] = Int64GetDatum((int64)digest_steps);
	values[9] = Int32GetDatum(digest_loop_max);
	values[10] = Int64GetDatum((int64)c.dropped_no_group);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/* A copy of a group entry, taken under its mutex. */
typedef struct GroupCopy {
	DrGroup g;
	bool engine_running;
	char engine_error[DR_ERROR_LEN];
} GroupCopy;

/* Copy every group entry (and the engine's state) into a palloc'd array. */
static GroupCopy *copy_groups(int *n)
{
	HASH_SEQ_STATUS seq;
	DrGroup *g;
	GroupCopy *out;
	bool running;
	char error[DR_ERROR_LEN];
	int cap;

	SpinLockAcquire(&dr_shared->mutex);
	running = dr_shared->engine_state == DR_ENGINE_RUNNING;
	strlcpy(error, dr_shared->engine_error, sizeof(error));
	SpinLockRelease(&dr_shared->mutex);

	*n = 0;
	LWLockAcquire(dr_shared->groups_lock, LW_SHARED);
	cap = Max(dr_shared->n_groups, 1);
	out = palloc(sizeof(GroupCopy) * cap);
	dr_shmem_group_scan_init(&seq);
	while ((g = hash_seq_search(&seq)) != NULL) {
		GroupCopy *c = &out[*n];

		if (*n == cap) {
			hash_seq_term(&seq);
			break;
		}
		SpinLockAcquire(&g->mutex);
		memcpy(&c->g, g, sizeof(DrGroup));
		SpinLockRelease(&g->mutex);
		c->engine_running = running;
		strlcpy(c->engine_error, error, sizeof(c->engine_error));
		(*n)++;
	}
	LWLockRelease(dr_shared->groups_lock);
	return out;
}

/* The state of a member as dragonraft.status shows it, and its error or NULL. */
static const char *member_state(const GroupCopy *c, TimestampTz now, const char **error)
{
	const DrGroup *g = &c->g;

	*error = g->error[0] ? g->error : NULL;
	if (!c->engine_running) {
		*error = c->engine_error[0] ? c->engine_error : "the engine worker is not running";
		return "stopped";
	}
	if (g->member_state == DR_MEMBER_FAILED || g->member_state == DR_MEMBER_LOST)
		return "stopped";
	if (g->removed) {
		*error = psprintf("node %d was removed from group %llu and can never be its member "
		                  "again; leave_group(%llu, force => true) deletes its data here",
		                  dr_node_id, (unsigned long long)g->group_id,
		                  (unsigned long long)g->group_id);
		return "removed";
	}
	if (g->apply_failures > 0)
		return "apply_failed";
	if (g->member_state == DR_MEMBER_RECOVERING || g->sending_snapshot)
		return "snapshotting";
	if (g->leader == 0)
		return "no_leader";
	if (g->apply_held || g->snapshot_refused || g->commit > g->applied + CATCHING_UP_ENTRIES ||
	    dr_shmem_group_lagging(g, now, LAGGING_MS))
		return "catching_up";
	return "ok";
}

/* dragonraft.status: one row per group on this node. */
Datum dr_group_status(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *)fcinfo->resultinfo;
	TimestampTz now = GetCurrentTimestamp();
	GroupCopy *groups;
	int n;

	dr_shmem_check_loaded();
	InitMaterializedSRF(fcinfo, 0);
	groups = copy_groups(&n);
	for (int i = 0; i < n; i++) {
		const DrGroup *g = &groups[i].g;
		bool running = g->member_state != DR_MEMBER_LOST;
		Datum values[13];
		bool nulls[13] = {false};
		const char *error;
		const char *state = member_state(&groups[i], now, &error);

		values[0] = Int64GetDatum((int64)g->group_id);
		values[1] = Int32GetDatum(dr_node_id);
		values[2] = CStringGetTextDatum(role_name(g->role));
		nulls[2] = !running;
		values[3] = Int64GetDatum((int64)g->term);
		nulls[3] = !running;
		values[4] = Int32GetDatum((int32)g->leader);
		nulls[4] = !running || g->leader == 0;
		/* The apply worker's applied index is fresher than the copied status. */
		values[5] = Int64GetDatum((int64)Max(g->commit, g->applied));
		nulls[5] = !running;
		values[6] = Int64GetDatum((int64)g->applied);
		values[7] = Int64GetDatum((int64)Max(g->last_index, g->applied));
		nulls[7] = !running;
		values[8] = Int64GetDatum((int64)g->snapshot_index);
		nulls[8] = !running;
		values[9] = CStringGetTextDatum(state);
		if (g->role == RAFT_LEADER && running)
			values[10] = TimestampTzGetDatum(now);
		else
			values[10] = TimestampTzGetDatum(g->leader_contact);
		nulls[10] = !running || (g->role != RAFT_LEADER && g->leader_contact == 0);
		values[11] = CStringGetTextDatum(error ? error : "");
		nulls[11] = error == NULL;
		values[12] = BoolGetDatum(g->quiescent);
		nulls[12] = !running;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum)0;
}

/* Members of a group, copied under the groups lock. */
typedef struct MemberCopy {
	uint64 group_id;
	uint64 node_id;
	bool voter;
	bool has_progress;
	bool leader_here; /* this node leads the group */
	uint64 last_index;
	uint64 match;
	TimestampTz last_contact;
	char address[DR_ADDR_LEN];
	bool has_address;
	bool refused_no_room;
	uint64 refused_need, refused_free, refused_min_free;
} MemberCopy;

/* dragonraft.members (without the client address, which the view joins in). */
Datum dr_group_members(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *)fcinfo->resultinfo;
	TimestampTz now = GetCurrentTimestamp();
	HASH_SEQ_STATUS seq;
	DrGroup *g;
	MemberCopy *out;
	char own[DR_ADDR_LEN];
	int n = 0, cap;

	dr_shmem_check_loaded();
	InitMaterializedSRF(fcinfo, 0);
	SpinLockAcquire(&dr_shared->mutex);
	strlcpy(own, dr_shared->raft_address, sizeof(own));
	SpinLockRelease(&dr_shared->mutex);

	LWLockAcquire(dr_shared->groups_lock, LW_SHARED);
	cap = dr_n_members;
	out = palloc(sizeof(MemberCopy) * Min(cap, 64));
	cap = Min(cap, 64);
	dr_shmem_group_scan_init(&seq);
	while ((g = hash_seq_search(&seq)) != NULL) {
		for (int m = g->first_member; m >= 0; m = dr_members[m].next) {
			const DrMember *dm = &dr_members[m];
			MemberCopy *c;
			const char *a;

			if (n == cap) {
				cap *= 2;
				out = repalloc(out, sizeof(MemberCopy) * cap);
			}
			c = &out[n++];
			c->group_id = g->group_id;
			c->node_id = dm->node_id;
			c->voter = dm->voter;
			a = dm->node_id == (uint64)dr_node_id ? own
			                                      : dr_shmem_node_address(dm->node_id);
			c->has_address = a != NULL && a[0] != '\0';
			strlcpy(c->address, c->has_address ? a : "", sizeof(c->address));
			SpinLockAcquire(&g->mutex);
			c->leader_here =
			        g->role == RAFT_LEADER && g->member_state != DR_MEMBER_LOST;
			c->last_index = Max(g->last_index, g->applied); /* as dragonraft.status */
			c->has_progress = dm->has_progress;
			c->match = dm->match;
			c->last_contact = dm->last_contact;
			c->refused_no_room = dm->refused_no_room;
			c->refused_need = dm->refused_need;
			c->refused_free = dm->refused_free;
			c->refused_min_free = dm->refused_min_free;
			SpinLockRelease(&g->mutex);
		}
	}
	LWLockRelease(dr_shared->groups_lock);

	for (int i = 0; i < n; i++) {
		const MemberCopy *c = &out[i];
		bool self = c->node_id == (uint64)dr_node_id;
		bool known = c->leader_here && (self || c->has_progress);
		uint64 match = self ? c->last_index : c->match;
		Datum values[8];
		bool nulls[8] = {false};

		values[0] = Int64GetDatum((int64)c->group_id);
		values[1] = Int32GetDatum((int32)c->node_id);
		values[2] = CStringGetTextDatum(c->address);
		nulls[2] = !c->has_address;
		values[3] = BoolGetDatum(c->voter);
		values[4] = Int64GetDatum((int64)match);
		nulls[4] = !known;
		values[5] =
		        Int64GetDatum((int64)(c->last_index > match ? c->last_index - match : 0));
		nulls[5] = !known;
		values[6] = TimestampTzGetDatum(self ? now : c->last_contact);
		nulls[6] = !known || (!self && c->last_contact == 0);
		/* On the leader: why the member does not catch up (review 28 F5). */
		nulls[7] = !known || self || !c->refused_no_room;
		if (!nulls[7] && c->refused_need == 0 && c->refused_free == 0)
			values[7] = CStringGetTextDatum("it refused the snapshot for want of room "
			                                "in its snapshot directory");
		else if (!nulls[7])
			values[7] = CStringGetTextDatum(
			        psprintf("it refused the snapshot for want of room: %llu bytes to "
			                 "come and %llu "
			                 "to stay free, %llu free there",
			                 (unsigned long long)c->refused_need,
			                 (unsigned long long)c->refused_min_free,
			                 (unsigned long long)c->refused_free));
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum)0;
}

/* The counters shown: since the last reset; apply worker failures count too. */
static void shown_stats(const DrGroup *g, uint64 *out)
{
	DrGroupStats cur = g->stats;
	const uint64 *c = (const uint64 *)&cur, *b = (const uint64 *)&g->stats_base;

	cur.apply_errors += g->apply_errors;
	for (size_t i = 0; i < DR_STATS_FIELDS; i++)
		out[i] = c[i] >= b[i] ? c[i] - b[i] : 0;
}

/* dragonraft.stat_groups. */
Datum dr_group_stats(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *)fcinfo->resultinfo;
	GroupCopy *groups;
	int n;

	dr_shmem_check_loaded();
	InitMaterializedSRF(fcinfo, 0);
	groups = copy_groups(&n);
	for (int i = 0; i < n; i++) {
		uint64 s[DR_STATS_FIELDS];
		Datum values[DR_STATS_FIELDS + 2];
		bool nulls[DR_STATS_FIELDS + 2] = {false};

		shown_stats(&groups[i].g, s);
		values[0] = Int64GetDatum((int64)groups[i].g.group_id);
		for (size_t k = 0; k < DR_STATS_FIELDS; k++)
			values[1 + k] = Int64GetDatum((int64)s[k]);
		values[DR_STATS_FIELDS + 1] = TimestampTzGetDatum(groups[i].g.stats_reset);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum)0;
}

/* dragonraft.stat_reset(group_id): the counters of one group, or of all (NULL). */
Datum dr_stat_reset(PG_FUNCTION_ARGS)
{
	TimestampTz now = GetCurrentTimestamp();
	HASH_SEQ_STATUS seq;
	DrGroup *g;
	bool found = false;

	dr_shmem_check_loaded();
	LWLockAcquire(dr_shared->groups_lock, LW_SHARED);
	dr_shmem_group_scan_init(&seq);
	while ((g = hash_seq_search(&seq)) != NULL) {
		if (!PG_ARGISNULL(0) && g->group_id != (uint64)PG_GETARG_INT64(0))
			continue;
		SpinLockAcquire(&g->mutex);
		g->stats_base = g->stats;
		g->stats_base.apply_errors += g->apply_errors;
		g->stats_reset = now;
		SpinLockRelease(&g->mutex);
		found = true;
	}
	LWLockRelease(dr_shared->groups_lock);
	/* As pg_stat_reset_replication_slot of a slot that is not there (it
	 * returned as if it had reset something). */
	if (!found && !PG_ARGISNULL(0))
		dr_sql_groups_missing(PG_GETARG_INT64(0), NULL);
	PG_RETURN_VOID();
}
