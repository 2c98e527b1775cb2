/*
 * test_raft_quiesce.c - quiescence of the Raft core: an idle group stops
 * ticking; proposals, reads, messages and raft_wake() wake it without a
 * spurious election; a quiescent leader that dies or is cut off is replaced
 * once its followers are woken.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "test_raft_fixture.h"

#define NODE(f, i) ((f)->nodes[i].r)
#define QUIESCE    20 /* ticks; two election timeouts */

/* Three voters (pre-vote, check-quorum, as the engine runs them), node 1 leading. */
static struct fx *quiet_cluster(uint32_t n)
{
	struct raft_config c;
	struct fx *f;

	fx_default_config(&c, 1);
	c.pre_vote = true;
	c.check_quorum = true;
	c.quiesce_tick = QUIESCE;
	f = fx_create(n, &c);
	fx_elect(f, 1);
	assert_int_equal(fx_propose(f, 1, "first"), RAFT_OK);
	fx_stabilize(f);
	return f;
}

static void expect_quiet(struct fx *f, bool quiet)
{
	for (raft_id id = 1; id <= f->n; id++) {
		if (f->nodes[id].down)
			continue;
		if (raft_quiesced(NODE(f, id)) != quiet)
			fail_msg("node %llu should %sbe quiescent", (unsigned long long)id,
			         quiet ? "" : "not ");
		if (quiet && raft_has_ready(NODE(f, id)))
			fail_msg("quiescent node %llu has a Ready", (unsigned long long)id);
	}
}

static void test_idle_group_quiesces_and_stays_quiet(void **state)
{
	struct fx *f = quiet_cluster(3);
	raft_term t = raft_term_of(NODE(f, 1));
	uint64_t delivered;

	(void)state;
	fx_tick_all(f, QUIESCE - 2);
	expect_quiet(f, false);
	fx_tick_all(f, 3);
	expect_quiet(f, true);
	/* Ten election timeouts: no message, no election, no Ready. */
	delivered = f->delivered;
	fx_tick_all(f, 100);
	expect_quiet(f, true);
	assert_int_equal(f->delivered, delivered);
	assert_int_equal(fx_leader(f), 1);
	assert_int_equal(raft_term_of(NODE(f, 2)), t);
	fx_destroy(f);
}

static void test_proposal_wakes_the_group(void **state)
{
	struct fx *f = quiet_cluster(3);
	raft_term t = raft_term_of(NODE(f, 1));

	(void)state;
	fx_tick_all(f, QUIESCE + 1);
	expect_quiet(f, true);
	/* On the leader. */
	assert_int_equal(fx_propose(f, 1, "on-leader"), RAFT_OK);
	fx_stabilize(f);
	expect_quiet(f, false);
	assert_true(fx_applied_has(f, 3, "on-leader"));
	fx_tick_all(f, QUIESCE + 1);
	expect_quiet(f, true);
	/* On a follower: forwarded, and the leader wakes the others. */
	assert_int_equal(fx_propose(f, 2, "on-follower"), RAFT_OK);
	fx_stabilize(f);
	expect_quiet(f, false);
	assert_true(fx_applied_has(f, 1, "on-follower") && fx_applied_has(f, 3, "on-follower"));
	fx_tick_all(f, QUIESCE + 1);
	expect_quiet(f, true);
	assert_int_equal(raft_term_of(NODE(f, 3)), t);
	fx_destroy(f);
}

static void test_read_index_wakes_the_group(void **state)
{
	struct fx *f = quiet_cluster(3);

	(void)state;
	fx_tick_all(f, QUIESCE + 1);
	expect_quiet(f, true);
	assert_int_equal(raft_read_index(NODE(f, 3), 77), RAFT_OK);
	fx_stabilize(f);
	assert_int_equal(f->nodes[3].n_reads, 1);
	assert_int_equal(f->nodes[3].reads[0].context, 77);
	assert_int_equal(f->nodes[3].reads[0].index, raft_commit_index(NODE(f, 1)));
	fx_destroy(f);
}

/* A heartbeat response to node 1, plain (a late answer) or flagged as a wake-up notice. */
static int hb_resp(struct fx *f, raft_id from, uint32_t flags)
{
	struct raft_message m;

	memset(&m, 0, sizeof(m));
	m.type = RAFT_MSG_HEARTBEAT_RESP;
	m.group_id = 7;
	m.from = from;
	m.to = 1;
	m.term = raft_term_of(NODE(f, 1));
	m.flags = flags;
	return raft_step(NODE(f, 1), &m);
}

static void test_late_heartbeat_response_does_not_wake_the_leader(void **state)
{
	struct fx *f = quiet_cluster(3);

	(void)state;
	fx_tick_all(f, QUIESCE + 1);
	expect_quiet(f, true);
	assert_int_equal(hb_resp(f, 2, 0), RAFT_OK);
	assert_true(raft_quiesced(NODE(f, 1)));
	assert_false(raft_has_ready(NODE(f, 1)));
	/* The notice of a follower that woke up does wake it, and it heartbeats. */
	assert_int_equal(hb_resp(f, 2, RAFT_MSG_FLAG_WAKE), RAFT_OK);
	assert_false(raft_quiesced(NODE(f, 1)));
	assert_true(raft_has_ready(NODE(f, 1)));
	fx_stabilize(f);
	expect_quiet(f, false);
	fx_destroy(f);
}

static void test_woken_follower_wakes_its_leader_without_an_election(void **state)
{
	struct fx *f = quiet_cluster(3);
	raft_term t = raft_term_of(NODE(f, 1));

	(void)state;
	fx_tick_all(f, QUIESCE + 1);
	expect_quiet(f, true);
	assert_int_equal(raft_wake(NODE(f, 2)), RAFT_OK);
	assert_false(raft_quiesced(NODE(f, 2)));
	fx_stabilize(f);
	expect_quiet(f, false);
	/* Timers restarted everywhere: the group stays as it was, then quiesces again. */
	fx_tick_all(f, QUIESCE + 1);
	expect_quiet(f, true);
	assert_int_equal(fx_leader(f), 1);
	for (raft_id id = 1; id <= 3; id++)
		assert_int_equal(raft_term_of(NODE(f, id)), t);
	fx_destroy(f);
}

/* Lose the QUIESCE messages queued for node to. */
static void drop_quiesce_to(struct fx *f, raft_id to)
{
	uint32_t k = 0;

	for (uint32_t i = 0; i < f->nq; i++) {
		if (f->q[i].m.type == RAFT_MSG_QUIESCE && f->q[i].m.to == to)
			continue; /* carries no entries: nothing to free */
		f->q[k++] = f->q[i];
	}
	f->nq = k;
}

static void test_follower_that_missed_quiesce_wakes_the_group(void **state)
{
	struct fx *f = quiet_cluster(3);
	raft_term t = raft_term_of(NODE(f, 1));

	(void)state;
	/* Tick the leader alone until it quiesces; lose its QUIESCE to node 3. */
	for (int i = 0; i < 2 * QUIESCE && !raft_quiesced(NODE(f, 1)); i++) {
		fx_tick(f, 1, 1);
		drop_quiesce_to(f, 3);
		fx_stabilize(f);
	}
	assert_true(raft_quiesced(NODE(f, 1)) && raft_quiesced(NODE(f, 2)));
	assert_false(raft_quiesced(NODE(f, 3)));
	/* Node 3 hears nothing, times out and pre-votes: that wakes the others,
	 * the leader heartbeats, and nobody's term moves. */
	fx_tick_all(f, 30);
	assert_int_equal(fx_leader(f), 1);
	for (raft_id id = 1; id <= 3; id++)
		assert_int_equal(raft_term_of(NODE(f, id)), t);
	fx_tick_all(f, 2 * QUIESCE);
	expect_quiet(f, true);
	fx_destroy(f);
}

static void test_quiescent_leader_crash_is_replaced(void **state)
{
	struct fx *f = quiet_cluster(3);
	raft_term t = raft_term_of(NODE(f, 1));
	raft_id lead = 0;

	(void)state;
	fx_tick_all(f, QUIESCE + 1);
	expect_quiet(f, true);
	fx_crash(f, 1);
	/* Nobody notices by itself... */
	fx_tick_all(f, 50);
	assert_true(raft_quiesced(NODE(f, 2)) && raft_quiesced(NODE(f, 3)));
	/* ...until the transport reports the leader unreachable to one follower. */
	raft_report_unreachable(NODE(f, 2), 1);
	assert_false(raft_quiesced(NODE(f, 2)));
	for (int i = 0; i < 100 && lead == 0; i++) {
		fx_tick_all(f, 1);
		lead = fx_leader(f);
	}
	assert_true(lead == 2 || lead == 3);
	assert_true(raft_term_of(NODE(f, lead)) > t);
	assert_int_equal(fx_propose(f, lead, "after"), RAFT_OK);
	fx_stabilize(f);
	assert_true(fx_applied_has(f, 2, "after") && fx_applied_has(f, 3, "after"));
	/* The old leader comes back as a follower and catches up.  The new
	 * leader's first append to it was lost: the engine's transport reports it
	 * unreachable (a probe with entries, unreported, waits an election
	 * timeout: replication.c, raft_repl_handle_heartbeat_resp). */
	raft_report_unreachable(NODE(f, lead), 1);
	fx_restart(f, 1);
	fx_tick_all(f, 5);
	assert_int_equal(fx_leader(f), lead);
	assert_true(fx_applied_has(f, 1, "after"));
	fx_destroy(f);
}

static void test_partitioned_quiescent_leader_is_superseded(void **state)
{
	struct fx *f = quiet_cluster(3);
	raft_term t = raft_term_of(NODE(f, 1));
	raft_id lead = 0;

	(void)state;
	fx_tick_all(f, QUIESCE + 1);
	expect_quiet(f, true);
	fx_isolate(f, 1);
	raft_report_unreachable(NODE(f, 2), 1);
	raft_report_unreachable(NODE(f, 3), 1);
	for (int i = 0; i < 100 && (lead == 0 || lead == 1); i++) {
		fx_tick_all(f, 1);
		lead = raft_leader(NODE(f, 2));
	}
	assert_true(lead == 2 || lead == 3);
	assert_int_equal(fx_propose(f, lead, "new"), RAFT_OK);
	fx_stabilize(f);
	/* The old leader wakes on a proposal in its old term: it cannot commit it. */
	assert_true(raft_quiesced(NODE(f, 1)));
	assert_int_equal(raft_role(NODE(f, 1)), RAFT_LEADER);
	assert_int_equal(fx_propose(f, 1, "stale"), RAFT_OK);
	assert_int_equal(raft_term_of(NODE(f, 1)), t);
	fx_tick_all(f, 5);
	assert_false(fx_applied_has(f, 1, "stale"));
	/* Healed, it learns the new term and steps down; its entry is replaced. */
	fx_heal(f);
	fx_tick_all(f, 30);
	assert_int_equal(raft_role(NODE(f, 1)), RAFT_FOLLOWER);
	assert_int_equal(fx_leader(f), lead);
	assert_true(fx_applied_has(f, 1, "new"));
	for (raft_id id = 1; id <= 3; id++)
		assert_false(fx_applied_has(f, id, "stale"));
	fx_destroy(f);
}

static void test_healed_node_does_not_raise_the_term(void **state)
{
	struct fx *f = quiet_cluster(3);
	raft_term t = raft_term_of(NODE(f, 1));

	(void)state;
	fx_tick_all(f, QUIESCE + 1);
	expect_quiet(f, true);
	/* Node 3 loses the leader, wakes, and campaigns in vain (pre-vote). */
	fx_isolate(f, 3);
	raft_report_unreachable(NODE(f, 3), 1);
	fx_tick_all(f, 60);
	assert_int_equal(raft_term_of(NODE(f, 3)), t);
	fx_heal(f);
	fx_tick_all(f, 60);
	assert_int_equal(fx_leader(f), 1);
	for (raft_id id = 1; id <= 3; id++)
		assert_int_equal(raft_term_of(NODE(f, id)), t);
	fx_destroy(f);
}

static void test_no_quiescence_while_a_member_lags(void **state)
{
	struct fx *f = quiet_cluster(3);

	(void)state;
	fx_crash(f, 3);
	assert_int_equal(fx_propose(f, 1, "two-of-three"), RAFT_OK);
	fx_stabilize(f);
	fx_tick_all(f, 3 * QUIESCE);
	assert_false(raft_quiesced(NODE(f, 1)));
	/* Back and caught up: now the group goes quiet. */
	fx_restart(f, 3);
	fx_tick_all(f, QUIESCE + 5);
	expect_quiet(f, true);
	assert_true(fx_applied_has(f, 3, "two-of-three"));
	fx_destroy(f);
}

static void test_quiescence_off_by_default(void **state)
{
	struct fx *f = fx_create(3, NULL);

	(void)state;
	fx_elect(f, 1);
	fx_tick_all(f, 200);
	expect_quiet(f, false);
	fx_destroy(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_idle_group_quiesces_and_stays_quiet),
	        cmocka_unit_test(test_proposal_wakes_the_group),
	        cmocka_unit_test(test_read_index_wakes_the_group),
	        cmocka_unit_test(test_late_heartbeat_response_does_not_wake_the_leader),
	        cmocka_unit_test(test_woken_follower_wakes_its_leader_without_an_election),
	        cmocka_unit_test(test_follower_that_missed_quiesce_wakes_the_group),
	        cmocka_unit_test(test_quiescent_leader_crash_is_replaced),
	        cmocka_unit_test(test_partitioned_quiescent_leader_is_superseded),
	        cmocka_unit_test(test_healed_node_does_not_raise_the_term),
	        cmocka_unit_test(test_no_quiescence_while_a_member_lags),
	        cmocka_unit_test(test_quiescence_off_by_default),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
