/*
 * engine_status.c - what a DBA sees of the engine (DESIGN §6): each group's
 * status and counters copied into shared memory for the views, the LOG lines
 * when this node becomes leader or follower of a group, and when another
 * node becomes unreachable and is back.
 *
 * Only groups whose status may have changed are copied (engine_take_changed),
 * so a thousand idle groups cost nothing here.
 */
#include "engine_worker.h"

#include "engine/engine_uv.h"
#include "logdb/logdb.h"
#include "raft/raft.h"
#include "transport/transport.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#define CHANGED_BATCH 256

/* dr_engine_status_lead: a copy made inside an engine round; one was made. */
static bool in_round = false;
static bool led = false;

/* An engine tick as wall-clock time, given the tick and time of now. */
static TimestampTz tick_time(uint64 tick, uint64 now_tick, TimestampTz now)
{
	if (tick == 0)
		return 0;
	return now - (TimestampTz)(now_tick - tick) * dr_rtt_ms * 1000;
}

/* A cheap signature of who is a member, and how. */
static uint64 membership_sig(const struct raft_membership *m)
{
	uint64 h = 1469598103934665603ULL;

	for (uint32 i = 0; i < m->n_voters + m->n_nonvoters; i++) {
		raft_id id = i < m->n_voters ? m->voters[i] : m->nonvoters[i - m->n_voters];

		h = (h ^ (id * 2 + (i < m->n_voters))) * 1099511628211ULL;
	}
	return h ^ m->n_voters;
}

/* The membership changed: a new member chain, and addresses of new members. */
static void set_members(DrSm *sm, const struct raft_membership *m)
{
	uint64 ids[2 * RAFT_MAX_MEMBERS];
	bool voter[2 * RAFT_MAX_MEMBERS];
	int n = 0;
	bool unknown = false, ok = true;

	LWLockAcquire(dr_shared->groups_lock, LW_EXCLUSIVE);
	for (uint32 i = 0; i < m->n_voters + m->n_nonvoters; i++) {
		const char *dialed, *shown;

		ids[n] = i < m->n_voters ? m->voters[i] : m->nonvoters[i - m->n_voters];
		voter[n] = i < m->n_voters;
		/* dragonraft.members shows the address the engine dials (a membership
		 * change may have brought another one). */
		dialed = ids[n] != (uint64)dr_node_id ? engine_peer_address(dr_engine->e, ids[n])
		                                      : NULL;
		shown = ids[n] != (uint64)dr_node_id ? dr_shmem_node_address(ids[n]) : NULL;
		if (dialed != NULL && (shown == NULL || strcmp(shown, dialed) != 0))
			ok = dr_shmem_node_set(ids[n], dialed) && ok;
		else if (ids[n] != (uint64)dr_node_id && shown == NULL)
			unknown = true;
		n++;
	}
	ok = dr_shmem_group_set_members(sm->shared, ids, voter, n) && ok;
	if (unknown) {
		/* The engine keeps the addresses it learns in the member's bootstrap record. */
		struct logdb_bootstrap *bs = palloc(sizeof(*bs));

		if (logdb_get_bootstrap(dr_engine->db, sm->group_id, dr_node_id, bs) == LOGDB_OK)
			for (uint32 i = 0; i < bs->n_addresses && i < RAFT_MAX_MEMBERS; i++)
				if (bs->addresses[i].node_id != (uint64)dr_node_id &&
				    dr_shmem_node_address(bs->addresses[i].node_id) == NULL)
					ok = dr_shmem_node_set(bs->addresses[i].node_id,
					                       bs->addresses[i].addr) &&
					     ok;
		pfree(bs);
	}
	LWLockRelease(dr_shared->groups_lock);
	if (!ok)
		ereport(WARNING,
		        (errmsg("dragonraft member pool is full"),
		         errdetail("The view dragonraft.members does not show every member of "
		                   "group %llu.",
		                   (unsigned long long)sm->group_id),
		         errhint("Raise dragonraft.max_groups.")));
	sm->members_sig = membership_sig(m);
}

/*
 * One LOG line when this node starts to lead or to follow a (new) leader, or
 * stops leading with no leader known (CheckQuorum: a step-down that a
 * failed membership change or write blames on "the leadership changed").
 */
static void log_role(DrSm *sm, const struct engine_group_status *st)
{
	bool was_following = sm->role == RAFT_FOLLOWER && sm->leader != 0;

	if (st->role == RAFT_LEADER && (sm->role != RAFT_LEADER || sm->term != st->term))
		ereport(LOG, (errmsg("dragonraft node %d became leader of group %llu in term %llu",
		                     dr_node_id, (unsigned long long)st->group_id,
		                     (unsigned long long)st->term)));
	else if (st->role == RAFT_FOLLOWER && st->leader != 0 &&
	         (!was_following || sm->leader != st->leader))
		ereport(LOG,
		        (errmsg("dragonraft node %d follows node %llu in group %llu in term %llu",
		                dr_node_id, (unsigned long long)st->leader,
		                (unsigned long long)st->group_id, (unsigned long long)st->term)));
	else if (sm->role == RAFT_LEADER && st->role != RAFT_LEADER)
		ereport(LOG, (errmsg("dragonraft node %d no longer leads group %llu (term %llu), "
		                     "no leader known",
		                     dr_node_id, (unsigned long long)st->group_id,
		                     (unsigned long long)st->term)));
	if (st->state == ENGINE_GROUP_FAILED && sm->shared->member_state != DR_MEMBER_FAILED)
		ereport(LOG, (errmsg("dragonraft group %llu stopped on node %d: %s",
		                     (unsigned long long)st->group_id, dr_node_id, st->error)));
	if (st->snapshot_needed && !sm->snapshot_needed)
		for (uint32 i = 0; i < st->n_peers; i++)
			if (st->peers[i].needs_snapshot)
				ereport(LOG, (errmsg("dragonraft node %llu is behind the log of group %llu "
				                     "and needs a full snapshot",
				                     (unsigned long long)st->peers[i].node_id,
				                     (unsigned long long)st->group_id),
				              errdetail("The leader exports its tables for it "
				                        "(dragonraft.stat_progress_snapshot).")));
	sm->snapshot_needed = st->snapshot_needed;
	sm->role = st->role;
	sm->term = st->term;
	sm->leader = st->leader;
	if (st->leader != 0 && st->leader != (raft_id)dr_node_id)
		sm->last_leader = st->leader;
}

static void publish(DrSm *sm, const struct engine_group_status *st,
                    const struct engine_group_stats *stats)
{
	DrGroup *g = sm->shared;
	uint64 now_tick = engine_now(dr_engine->e);
	TimestampTz now = GetCurrentTimestamp();
	bool failed, noop_shown;

	log_role(sm, st);
	if (st->role == RAFT_LEADER && !in_round)
		dr_engine_groups_propose_addresses_of(sm);
	if (membership_sig(&st->membership) != sm->members_sig)
		set_members(sm, &st->membership);

	LWLockAcquire(dr_shared->groups_lock, LW_SHARED);
	SpinLockAcquire(&g->mutex);
	failed = st->state == ENGINE_GROUP_FAILED || st->state == ENGINE_GROUP_ENGINE_FAILED;
	g->member_state = failed                                 ? DR_MEMBER_FAILED
	                  : st->state == ENGINE_GROUP_RECOVERING ? DR_MEMBER_RECOVERING
	                                                         : DR_MEMBER_ACTIVE;
	if (failed && !(sm->recover_failed && g->error[0] != '\0'))
		strlcpy(g->error, st->error, sizeof(g->error)); /* (the load's own error stays) */
	/*
	 * A refused snapshot: shown while no other error is, and cleared when it is
	 * over unless another took its place (review 28 F5).  After a restart in
	 * place (heal) it takes the place of the failed load's error: that file is
	 * gone, and this is why no other loads (review 31 F12).
	 */
	if (failed) {
		g->snapshot_refused = false; /* the failure's error replaced it */
	} else if (st->snapshot_refusal[0] != '\0' && g->apply_failures == 0 &&
	           (g->error[0] == '\0' || g->snapshot_refused || sm->heal_failures > 0)) {
		snprintf(g->error, sizeof(g->error), "%s (or lower dragonraft.snapshot_min_free)",
		         st->snapshot_refusal);
		g->snapshot_refused = true;
	} else if (st->snapshot_refusal[0] == '\0' && g->snapshot_refused) {
		if (g->apply_failures == 0)
			g->error[0] = '\0';
		g->snapshot_refused = false;
	}
	noop_shown = st->role == RAFT_LEADER && st->noop_index != 0 &&
	             (g->role != RAFT_LEADER || g->noop_index != st->noop_index);
	g->role = (uint8)st->role;
	g->term = st->term;
	g->leader = st->leader;
	g->noop_index = st->noop_index;
	g->commit = st->commit;
	g->last_index = st->last_index;
	g->snapshot_index = st->snapshot_index;
	g->apply_held = st->apply_held;
	g->sending_snapshot = st->sending_snapshot;
	g->quiescent = st->quiescent;
	g->removed = false;
	for (uint32 i = 0; i < st->membership.n_removed; i++)
		g->removed = g->removed || st->membership.removed[i] == (raft_id)dr_node_id;
	g->leader_contact = tick_time(st->leader_contact_tick, now_tick, now);
	dr_shmem_group_track_lag(g, now);
	g->stats.proposals = stats->proposals;
	g->stats.commits = stats->entries_applied;
	g->stats.unknown_outcomes = stats->unknown_outcomes;
	g->stats.elections = stats->elections;
	g->stats.leader_changes = stats->leader_changes;
	g->stats.snapshots_sent = stats->snapshots_sent;
	g->stats.snapshots_received = stats->snapshots_received;
	g->stats.bytes_sent = stats->bytes_sent;
	g->stats.bytes_received = stats->bytes_received;
	g->stats.apply_errors = stats->apply_errors;
	for (int m = g->first_member; m >= 0; m = dr_members[m].next) {
		DrMember *dm = &dr_members[m];

		dm->has_progress = false;
		dm->refused_no_room = false;
		for (uint32 i = 0; i < st->n_peers; i++) {
			if (st->peers[i].node_id != dm->node_id)
				continue;
			dm->has_progress = true;
			dm->match = st->peers[i].match;
			dm->last_contact = tick_time(st->peers[i].contact_tick, now_tick, now);
			dm->refused_no_room = st->peers[i].refused_no_room;
			dm->refused_need = st->peers[i].refused_need;
			dm->refused_free = st->peers[i].refused_free;
			dm->refused_min_free = st->peers[i].refused_min_free;
		}
	}
	SpinLockRelease(&g->mutex);
	LWLockRelease(dr_shared->groups_lock);
	/* Its backends now wait for this node's applied index (the term's no-op,
	 * their turns), which the apply worker may hold in a batch it began as
	 * a follower, maybe with the no-op: handed before this status, which
	 * lags the engine (up to STATUS_ROLE_MS).  Asked, it commits at once,
	 * not after apply_batch_delay (review 37).  (Once the no-op's index is
	 * shown: not at the role's copy inside the round, dr_engine_status_lead,
	 * before the no-op could be handed.) */
	if (noop_shown)
		dr_shmem_want_applied(sm->group_id, 0);
}

/*
 * Engine hook (engine_config.lead_fn): this node leads group_id in a new
 * term, and the messages that tell the other members so are about to leave.
 * Shown now: a transfer_leader on the old leader returns once it heard from
 * this node, and this node's dragonraft.status, copied after the round and
 * at most every STATUS_ROLE_MS, still said candidate or follower: a write
 * sent here at once failed with 25006 (TAP 158: 7 of 30 transfers).  Its
 * writers wait for the term's no-op, whose index the next copy shows; that
 * copy, right after the round (dr_engine_status_led) and before any request
 * is taken, proposes the members' addresses kept for the group (no engine
 * call inside a round), still before what a client sends once it sees this.
 */
void dr_engine_status_lead(void *ctx, uint64_t group_id)
{
	DrSm *sm = dr_engine_groups_find(group_id);

	(void)ctx;
	if (sm == NULL)
		return;
	in_round = true;
	dr_testing_error(DR_TESTING_ERROR_LEAD);
	dr_engine_status_publish(sm);
	in_round = false;
	led = true;
}

/* Did dr_engine_status_lead show a new leader since the last call? */
bool dr_engine_status_led(void)
{
	bool was = led;

	led = false;
	return was;
}

void dr_engine_status_publish(DrSm *sm)
{
	static struct engine_group_status st;
	struct engine_group_stats stats;

	if (engine_group_status(dr_engine->e, sm->group_id, &st) == ENGINE_OK &&
	    engine_group_stats(dr_engine->e, sm->group_id, &stats) == ENGINE_OK)
		publish(sm, &st, &stats);
}

void dr_engine_status_refresh(void)
{
	static uint64 ids[CHANGED_BATCH];
	size_t n;

	while ((n = engine_take_changed(dr_engine->e, ids, CHANGED_BATCH)) > 0) {
		for (size_t i = 0; i < n; i++) {
			DrSm *sm = dr_engine_groups_find(ids[i]);

			if (sm != NULL)
				dr_engine_status_publish(sm);
		}
		if (n < CHANGED_BATCH)
			break;
	}
}

/* ---- the node ---- */

void dr_engine_status_node(void)
{
	struct transport_stats ts;
	DrTransportCounters c;

	transport_stats(dr_engine->t, &ts);
	c.accepted = ts.conns_accepted;
	c.refused = ts.conns_refused_limit + ts.conns_refused_per_addr + ts.snap_conns_refused;
	c.tls_failures = ts.tls_handshake_failures + ts.tls_record_errors;
	c.auth_refused = ts.auth_bad_node_id + ts.auth_unknown_node + ts.auth_not_loopback;
	c.messages_rejected = ts.decode_errors + ts.msgs_rejected_sender + ts.msgs_rejected_member;
	c.frames_rejected =
	        ts.frames_bad_header + ts.frames_oversize + ts.frames_bad_crc + ts.frames_over_budget;
	c.lines_suppressed = ts.log_lines_suppressed;
	c.dropped_no_group = ts.msgs_dropped_no_group;
	SpinLockAcquire(&dr_shared->mutex);
	dr_shared->transport = c;
	SpinLockRelease(&dr_shared->mutex);
}

/* ---- other nodes: unreachable and back ---- */

typedef enum PeerState { PEER_UNKNOWN, PEER_UP, PEER_DOWN } PeerState;

/* What the transport told of a node at the last look. */
typedef struct Peer {
	uint64 node_id;
	PeerState state;
	TimestampTz failing_since; /* first failed send with no sign of life since; 0 = none */
	uint64 msgs_recv;
	uint64 msgs_dropped;
} Peer;

static Peer *peers = NULL; /* one per place in the node pool */

/*
 * A node is alive while a connection to it is open or messages from it
 * arrive; it is unreachable once sends to it have failed, with no sign of
 * life, for an election timeout.  A node this one has nothing to send to
 * (a follower, to the other followers) gives no news either way.
 */
void dr_engine_status_peers(void)
{
	TimestampTz now = GetCurrentTimestamp();
	int timeout_ms = dr_election_rtt * dr_rtt_ms;

	if (peers == NULL)
		peers = MemoryContextAllocZero(TopMemoryContext, sizeof(Peer) * dr_n_nodes);
	/* Only this process changes the node pool: it reads it without the lock. */
	for (int i = 0; i < dr_n_nodes; i++) {
		struct transport_peer_stats ps;
		Peer *p = &peers[i];
		bool alive, failing;

		if (dr_nodes[i].node_id != p->node_id) {
			memset(p, 0, sizeof(*p));
			p->node_id = dr_nodes[i].node_id;
		}
		if (p->node_id == 0 ||
		    transport_peer_stats(dr_engine->t, p->node_id, &ps) != TRANSPORT_OK)
			continue;
		alive = ps.connected || ps.msgs_recv != p->msgs_recv;
		failing = !ps.connected && ps.msgs_dropped != p->msgs_dropped;
		p->msgs_recv = ps.msgs_recv;
		p->msgs_dropped = ps.msgs_dropped;
		if (alive) {
			if (p->state == PEER_DOWN)
				ereport(LOG,
				        (errmsg("dragonraft node %llu at %s is reachable again",
				                (unsigned long long)p->node_id,
				                dr_nodes[i].address)));
			p->state = PEER_UP;
			p->failing_since = 0;
			continue;
		}
		if (!failing)
			continue;
		if (p->failing_since == 0)
			p->failing_since = now;
		if (p->state != PEER_DOWN &&
		    TimestampDifferenceExceeds(p->failing_since, now, timeout_ms)) {
			ereport(LOG,
			        (errmsg("dragonraft node %llu at %s is unreachable",
			                (unsigned long long)p->node_id, dr_nodes[i].address),
			         errdetail("Messages to it have failed for %d ms; its groups go on "
			                   "without it while a majority of their members is "
			                   "reachable.",
			                   timeout_ms)));
			p->state = PEER_DOWN;
		}
	}
}
