/*
 * test_raft_errors.c - the Raft core's error contract (raft.h, "Errors") and
 * the ownership of entry data: entry data outlives every message that
 * carries it; running out of memory changes nothing (a conf change applies
 * all or nothing); a storage failure or an impossible state stops the
 * replica for good, and nothing computed after it leaves.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "raft/raft_int.h"
#include "test_raft_fixture.h"

#define NODE(f, i) ((f)->nodes[i].r)

/* Allocation hooks that fail once the budget is spent (budget < 0: never). */
static long alloc_budget = -1;
static bool spend(void)
{
	if (alloc_budget < 0)
		return true;
	return alloc_budget-- > 0;
}
static void *fail_malloc(size_t n)
{
	return spend() ? malloc(n) : NULL;
}
static void *fail_realloc(void *p, size_t n)
{
	return spend() ? realloc(p, n) : NULL;
}
static const struct raft_alloc failing = {fail_malloc, fail_realloc, free};

static struct raft_message msg(struct fx *f, uint32_t type, raft_id from, raft_id to,
                               raft_term term)
{
	struct raft_message m;

	(void)f;
	memset(&m, 0, sizeof(m));
	m.type = type;
	m.group_id = 7;
	m.from = from;
	m.to = to;
	m.term = term;
	return m;
}

/*
 * Issue 10, fix 1: a leader queues an append carrying its unpersisted entry X;
 * before its next Ready a snapshot of a newer term replaces its log and a new
 * entry Y of the same size arrives.  The queued append must still carry X's
 * bytes (it once carried Y's: the log's arena was reset on restore).
 */
static void test_restore_keeps_data_of_queued_appends(void **state)
{
	struct fx *f = fx_create(3, NULL);
	struct raft *r;
	struct raft_snapshot_meta snap;
	struct raft_message m;
	struct raft_entry y;
	struct raft_ready rd;
	raft_term t;
	raft_index x_index;
	bool seen = false;

	(void)state;
	fx_elect(f, 1);
	r = NODE(f, 1);
	t = raft_term_of(r);
	assert_int_equal(raft_propose(r, (const uint8_t *)"XXXXXXXX", 8, &x_index), RAFT_OK);
	/* A heartbeat response from a lagging node 2 queues an append with X. */
	m = msg(f, RAFT_MSG_HEARTBEAT_RESP, 2, 1, t);
	assert_int_equal(raft_step(r, &m), RAFT_OK);
	/* Node 3 leads term t + 1 and installs a snapshot on node 1. */
	memset(&snap, 0, sizeof(snap));
	snap.index = 50;
	snap.term = t + 1;
	snap.membership = *raft_membership(r);
	m = msg(f, RAFT_MSG_SNAPSHOT, 3, 1, t + 1);
	m.index = 50;
	m.log_term = t + 1;
	m.snapshot = &snap;
	assert_int_equal(raft_step(r, &m), RAFT_OK);
	assert_int_equal(raft_role(r), RAFT_FOLLOWER);
	y = (struct raft_entry){t + 1, 51, RAFT_ENTRY_NORMAL, 8, (const uint8_t *)"YYYYYYYY"};
	m = msg(f, RAFT_MSG_APPEND, 3, 1, t + 1);
	m.index = 50;
	m.log_term = t + 1;
	m.n_entries = 1;
	m.entries = &y;
	assert_int_equal(raft_step(r, &m), RAFT_OK);
	assert_int_equal(raft_ready(r, &rd), RAFT_OK);
	for (uint32_t i = 0; i < rd.n_messages; i++) {
		const struct raft_message *o = &rd.messages[i];

		for (uint32_t k = 0; k < o->n_entries; k++) {
			char got[8];

			if (o->entries[k].index != x_index)
				continue;
			assert_int_equal(o->entries[k].len, 8);
			memcpy(got, o->entries[k].data, 8); /* a read ASan checks */
			assert_memory_equal(got, "XXXXXXXX", 8);
			seen = true;
		}
	}
	assert_true(seen);
	assert_int_equal(rd.n_entries, 1);
	assert_memory_equal(rd.entries[0].data, "YYYYYYYY", 8);
	raft_advance(r, &rd);
	fx_destroy(f);
}

/* Issue 10, fix 2: a membership change that runs out of memory changes nothing. */
static void test_conf_change_applies_all_or_nothing(void **state)
{
	struct raft_conf_change cc = {RAFT_CC_ADD_NONVOTER, 2, 0, NULL};
	struct raft_membership out;
	const struct raft_entry *e = NULL;
	struct raft_config c;
	struct raft_ready rd;
	struct fx *f;
	struct raft *r;
	raft_index idx;

	(void)state;
	fx_default_config(&c, 1);
	c.alloc = &failing;
	f = fx_create(1, &c);
	fx_elect(f, 1);
	r = NODE(f, 1);
	assert_int_equal(raft_propose_conf_change(r, &cc, &idx), RAFT_OK);
	/* Persist it; the next Ready hands it out committed. */
	while (e == NULL) {
		assert_int_equal(raft_ready(r, &rd), RAFT_OK);
		assert_int_equal(raft_memstorage_save_ready(f->nodes[1].ms, &rd), RAFT_OK);
		for (uint32_t i = 0; i < rd.n_committed; i++)
			if (rd.committed[i].index == idx)
				e = &rd.committed[i];
		if (e == NULL)
			raft_advance(r, &rd);
	}
	/* The new member's in-flight ring cannot be allocated. */
	alloc_budget = 0;
	assert_int_equal(raft_apply_conf_change(r, e, &out), RAFT_ERR_NOMEM);
	assert_int_equal(raft_membership(r)->n_nonvoters, 0);
	assert_true(raft_membership(r)->config_index < idx);
	/* The retry applies it. */
	alloc_budget = -1;
	assert_int_equal(raft_apply_conf_change(r, e, &out), RAFT_OK);
	assert_int_equal(out.n_nonvoters, 1);
	assert_int_equal(out.config_index, idx);
	raft_memstorage_set_membership(f->nodes[1].ms, &out);
	f->nodes[1].conf = out;
	raft_advance(r, &rd);
	/* And the leader replicates to the new member. */
	fx_add_node(f, 2);
	assert_int_equal(fx_propose(f, 1, "to-2"), RAFT_OK);
	fx_stabilize(f);
	assert_true(fx_applied_has(f, 2, "to-2"));
	fx_destroy(f);
}

/* Issue 10, fix 2: a follower's append that runs out of memory leaves its log as it was. */
static void test_log_append_all_or_nothing(void **state)
{
	static uint8_t big[200 << 10]; /* needs a new arena block */
	struct raft_entry e[2];
	struct raft_config c;
	struct raft_message m;
	struct fx *f;
	struct raft *r;
	raft_term t, before[3];
	raft_index last;

	(void)state;
	fx_default_config(&c, 1);
	c.alloc = &failing;
	f = fx_create(3, &c);
	fx_elect(f, 1);
	r = NODE(f, 2);
	t = raft_term_of(r);
	/* Node 2 takes two unpersisted entries. */
	last = raft_last_index(r);
	e[0] = (struct raft_entry){t, last + 1, RAFT_ENTRY_NORMAL, 1, (const uint8_t *)"a"};
	e[1] = (struct raft_entry){t, last + 2, RAFT_ENTRY_NORMAL, 1, (const uint8_t *)"b"};
	m = msg(f, RAFT_MSG_APPEND, 1, 2, t);
	m.index = last;
	raft_term_at(r, last, &m.log_term);
	m.n_entries = 2;
	m.entries = e;
	assert_int_equal(raft_step(r, &m), RAFT_OK);
	for (int i = 0; i < 3; i++)
		assert_int_equal(raft_term_at(r, last + (raft_index)i, &before[i]), RAFT_OK);
	/* A newer leader's entry replacing the second one does not fit in memory. */
	memset(big, 'z', sizeof(big));
	e[0] = (struct raft_entry){t + 1, last + 2, RAFT_ENTRY_NORMAL, sizeof(big), big};
	m = msg(f, RAFT_MSG_APPEND, 3, 2, t + 1);
	m.index = last + 1;
	m.log_term = t;
	m.n_entries = 1;
	m.entries = e;
	/* Every allocation in turn fails; each failure leaves the log as it was. */
	for (long budget = 0;; budget++) {
		raft_term now;
		int rc;

		alloc_budget = budget;
		rc = raft_step(r, &m);
		alloc_budget = -1;
		if (rc == RAFT_OK)
			break;
		assert_int_equal(rc, RAFT_ERR_NOMEM);
		assert_int_equal(raft_last_index(r), last + 2);
		for (int i = 0; i < 3; i++) {
			assert_int_equal(raft_term_at(r, last + (raft_index)i, &now), RAFT_OK);
			assert_int_equal(now, before[i]);
		}
	}
	assert_int_equal(raft_term_at(r, last + 2, &before[0]), RAFT_OK);
	assert_int_equal(before[0], t + 1);
	fx_destroy(f);
}

/* A storage that fails its reads on demand (with this rc). */
static int storage_broken;
static struct raft_storage real;
static int broken_term(void *ctx, raft_index i, raft_term *t)
{
	return storage_broken ? storage_broken : real.term(ctx, i, t);
}

static void test_storage_failure_stops_the_replica(void **state)
{
	struct fx *f = fx_create(3, NULL);
	struct raft_message m;
	struct raft_ready rd;
	struct raft *r;
	raft_term t;

	(void)state;
	fx_elect(f, 1);
	fx_propose(f, 1, "x");
	fx_stabilize(f);
	r = NODE(f, 2);
	t = raft_term_of(r);
	/* Node 2 must read the term of its last entry to judge a vote request. */
	real = r->log.st;
	r->log.st.term = broken_term;
	m = msg(f, RAFT_MSG_VOTE, 3, 2, t + 1);
	m.index = raft_last_index(r);
	m.log_term = t;
	/* Out of memory in storage is transient: no vote this time, nothing fatal. */
	storage_broken = RAFT_ERR_NOMEM;
	assert_int_equal(raft_step(r, &m), RAFT_OK);
	assert_int_equal(raft_fatal(r), 0);
	assert_int_equal(raft_ready(r, &rd), RAFT_OK);
	assert_int_equal(rd.n_messages, 1);
	assert_true(rd.messages[0].reject);
	raft_advance(r, &rd);
	/* Any other failure is fatal. */
	storage_broken = RAFT_ERR_STORAGE;
	m.term = t + 2;
	assert_int_equal(raft_step(r, &m), RAFT_ERR_STORAGE);
	assert_int_equal(raft_fatal(r), RAFT_ERR_STORAGE);
	assert_non_null(strstr(raft_errmsg(r), "storage"));
	/* Sticky: no vote (nor anything else) ever leaves. */
	storage_broken = 0;
	assert_false(raft_has_ready(r));
	assert_int_equal(raft_ready(r, &rd), RAFT_ERR_STORAGE);
	assert_int_equal(rd.n_messages, 0);
	assert_false(rd.hard_state_changed);
	assert_int_equal(raft_tick(r), RAFT_ERR_STORAGE);
	assert_int_equal(raft_step(r, &m), RAFT_ERR_STORAGE);
	assert_int_equal(raft_propose(r, (const uint8_t *)"y", 1, NULL), RAFT_ERR_STORAGE);
	assert_int_equal(raft_campaign(r), RAFT_ERR_STORAGE);
	assert_int_equal(raft_wake(r), RAFT_ERR_STORAGE);
	fx_destroy(f);
}

/* A term storage cannot read now (out of memory) is never taken for a
 * mismatch: that would truncate entries this replica acknowledged. */
static void test_unreadable_term_is_no_conflict(void **state)
{
	struct fx *f = fx_create(3, NULL);
	struct raft_entry e[3];
	struct raft_snapshot_meta snap;
	struct raft_message m;
	struct raft *r;
	raft_index last;
	raft_term t;

	(void)state;
	fx_elect(f, 1);
	r = NODE(f, 2);
	t = raft_term_of(r);
	last = raft_last_index(r);
	for (int i = 0; i < 3; i++)
		e[i] = (struct raft_entry){t, last + 1 + (raft_index)i, RAFT_ENTRY_NORMAL, 0, NULL};
	m = msg(f, RAFT_MSG_APPEND, 1, 2, t);
	m.index = last;
	raft_term_at(r, last, &m.log_term);
	m.n_entries = 3;
	m.entries = e;
	assert_int_equal(raft_step(r, &m), RAFT_OK);
	fx_ready(f, 2); /* persisted: their terms now come from storage */
	real = r->log.st;
	r->log.st.term = broken_term;
	storage_broken = RAFT_ERR_NOMEM;
	/* A duplicate of the first two entries: dropped, the third one stays. */
	m.n_entries = 2;
	assert_int_equal(raft_step(r, &m), RAFT_ERR_NOMEM);
	assert_int_equal(raft_last_index(r), last + 3);
	/* A snapshot at the second one: dropped, the log is not discarded. */
	memset(&snap, 0, sizeof(snap));
	snap.index = last + 2;
	snap.term = t;
	snap.membership = *raft_membership(r);
	m = msg(f, RAFT_MSG_SNAPSHOT, 1, 2, t);
	m.index = snap.index;
	m.log_term = t;
	m.snapshot = &snap;
	assert_int_equal(raft_step(r, &m), RAFT_ERR_NOMEM);
	assert_int_equal(raft_last_index(r), last + 3);
	assert_int_equal(raft_fatal(r), 0);
	storage_broken = 0;
	fx_destroy(f);
}

/* Deferred syncs: a report whose entry's term storage cannot read now is not
 * dropped as if replaced (the leader would wait for a later one, idle forever):
 * it says out of memory and a retry takes it. */
static void test_durable_report_unreadable_term(void **state)
{
	struct raft_config c;
	struct raft_ready rd;
	struct fx *f;
	struct raft *r;
	raft_index idx;
	raft_term t;

	(void)state;
	fx_default_config(&c, 1);
	c.defer_leader_sync = true;
	f = fx_create(1, &c);
	r = NODE(f, 1);
	fx_elect(f, 1);
	fx_stabilize(f);
	t = raft_term_of(r);
	assert_int_equal(raft_propose(r, (const uint8_t *)"p", 1, &idx), RAFT_OK);
	assert_int_equal(raft_ready(r, &rd), RAFT_OK);
	assert_true(rd.sync_deferred);
	assert_int_equal(raft_memstorage_save_ready(f->nodes[1].ms, &rd), RAFT_OK);
	raft_advance(r, &rd);
	assert_int_equal(raft_commit_index(r), idx - 1);
	real = r->log.st;
	r->log.st.term = broken_term;
	storage_broken = RAFT_ERR_NOMEM;
	assert_int_equal(raft_durable(r, idx, t), RAFT_ERR_NOMEM);
	assert_int_equal(raft_fatal(r), 0);
	assert_int_equal(raft_commit_index(r), idx - 1);
	storage_broken = 0;
	assert_int_equal(raft_durable(r, idx, t), RAFT_OK);
	assert_int_equal(raft_commit_index(r), idx);
	fx_destroy(f);
}

static void test_impossible_state_stops_the_replica(void **state)
{
#ifdef RAFT_DEBUG
	(void)state;
	skip(); /* debug builds abort on an impossible state */
#else
	struct fx *f = fx_create(3, NULL);
	struct raft_entry gap = {1, 0, RAFT_ENTRY_NORMAL, 0, NULL};
	struct raft_ready rd;
	struct raft *r;

	(void)state;
	fx_elect(f, 1);
	r = NODE(f, 1);
	/* The core never appends with a gap: that would be its own bug. */
	gap.index = raft_last_index(r) + 5;
	assert_int_equal(raft_log_append(r, &gap, 1), RAFT_ERR_BUG);
	assert_int_equal(raft_fatal(r), RAFT_ERR_BUG);
	assert_non_null(strstr(raft_errmsg(r), "impossible state"));
	assert_int_equal(raft_propose(r, (const uint8_t *)"p", 1, NULL), RAFT_ERR_BUG);
	assert_false(raft_has_ready(r));
	assert_int_equal(raft_ready(r, &rd), RAFT_ERR_BUG);
	assert_int_equal(rd.n_messages + rd.n_entries + rd.n_committed, 0);
	fx_destroy(f);
#endif
}

/*
 * A leader whose log contradicts an entry committed here (a replica lost its
 * state and voted again): the follower stops with a message instead of
 * rejecting the append for ever, whether the append starts at the committed
 * entry or before it.  A mismatch above the commit index is an ordinary reject.
 */
static void test_diverged_committed_entry_stops_the_replica(void **state)
{
	for (int early = 0; early < 2; early++) {
		struct fx *f = fx_create(3, NULL);
		struct raft_entry e[2];
		struct raft_message m;
		struct raft *r;
		raft_index c;
		raft_term t;

		(void)state;
		fx_elect(f, 1);
		fx_stabilize(f);
		r = NODE(f, 2);
		c = raft_commit_index(r);
		t = raft_term_of(r) + 1;
		assert_true(c >= 2);
		m = msg(f, RAFT_MSG_APPEND, 3, 2, t);
		/* Above the commit index: a reject, nothing fatal. */
		m.index = c + 1;
		m.log_term = t;
		assert_int_equal(raft_step(r, &m), RAFT_OK);
		assert_int_equal(raft_fatal(r), 0);
		e[0] = (struct raft_entry){t, c, RAFT_ENTRY_NORMAL, 0, NULL};
		e[1] = (struct raft_entry){t, c + 1, RAFT_ENTRY_NORMAL, 0, NULL};
		m.index = c - early;
		m.log_term = t;
		m.entries = early ? e : &e[1];
		m.n_entries = early ? 2 : 1;
		if (early)
			assert_int_equal(raft_term_at(r, c - 1, &m.log_term), RAFT_OK);
		assert_int_equal(raft_step(r, &m), RAFT_ERR_BUG);
		assert_int_equal(raft_fatal(r), RAFT_ERR_BUG);
		assert_non_null(strstr(raft_errmsg(r), "diverged"));
		assert_int_equal(raft_commit_index(r), c);
		assert_false(raft_has_ready(r));
		fx_destroy(f);
	}
}

/* Forged input is refused and counted, never an impossible state. */
static void test_forged_ack_beyond_the_log_is_refused(void **state)
{
	struct fx *f = fx_create(3, NULL);
	struct raft_message m;
	raft_index match;

	(void)state;
	fx_elect(f, 1);
	fx_stabilize(f);
	match = raft_peers_match(NODE(f, 1));
	m = msg(f, RAFT_MSG_APPEND_RESP, 2, 1, raft_term_of(NODE(f, 1)));
	m.index = raft_last_index(NODE(f, 1)) + 5;
	assert_int_equal(raft_step(NODE(f, 1), &m), RAFT_ERR_INVALID);
	assert_int_equal(raft_fatal(NODE(f, 1)), 0);
	assert_int_equal(raft_peers_match(NODE(f, 1)), match);
	fx_destroy(f);
}

/* Inside a Ready nothing can be queued (it would never be handed out). */
static void test_inputs_refused_inside_a_ready(void **state)
{
	struct fx *f = fx_create(3, NULL);
	struct raft_message m;
	struct raft_ready rd, rd2;
	struct raft *r;

	(void)state;
	fx_elect(f, 1);
	r = NODE(f, 1);
	fx_propose(f, 1, "q");
	assert_int_equal(raft_ready(r, &rd), RAFT_OK);
	m = msg(f, RAFT_MSG_HEARTBEAT_RESP, 2, 1, raft_term_of(r));
	assert_int_equal(raft_step(r, &m), RAFT_ERR_INVALID);
	assert_int_equal(raft_tick(r), RAFT_ERR_INVALID);
	assert_int_equal(raft_propose(r, (const uint8_t *)"p", 1, NULL), RAFT_ERR_INVALID);
	assert_int_equal(raft_read_index(r, 1), RAFT_ERR_INVALID);
	assert_int_equal(raft_wake(r), RAFT_ERR_INVALID);
	assert_int_equal(raft_ready(r, &rd2), RAFT_ERR_INVALID);
	assert_false(raft_has_ready(r));
	raft_memstorage_save_ready(f->nodes[1].ms, &rd);
	raft_advance(r, &rd);
	fx_destroy(f);
}

static void test_committed_bytes_per_ready(void **state)
{
	struct raft_config c;
	struct raft_ready rd;
	struct fx *f;
	struct raft *r;
	uint32_t readys = 0;

	(void)state;
	fx_default_config(&c, 1);
	c.max_committed_bytes = 10;
	f = fx_create(1, &c);
	fx_elect(f, 1);
	r = NODE(f, 1);
	for (int i = 0; i < 4; i++)
		assert_int_equal(raft_propose(r, (const uint8_t *)"12345678", 8, NULL), RAFT_OK);
	while (raft_has_ready(r)) {
		uint64_t bytes = 0;

		assert_int_equal(raft_ready(r, &rd), RAFT_OK);
		raft_memstorage_save_ready(f->nodes[1].ms, &rd);
		for (uint32_t i = 0; i < rd.n_committed; i++)
			bytes += rd.committed[i].len;
		/* At least one entry, and no more than fits the bound. */
		assert_true(rd.n_committed <= 1 || bytes <= 10);
		readys += rd.n_committed > 0;
		raft_advance(r, &rd);
	}
	assert_int_equal(raft_commit_index(r), raft_last_index(r));
	assert_true(readys >= 4);
	fx_destroy(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_restore_keeps_data_of_queued_appends),
	        cmocka_unit_test(test_conf_change_applies_all_or_nothing),
	        cmocka_unit_test(test_log_append_all_or_nothing),
	        cmocka_unit_test(test_storage_failure_stops_the_replica),
	        cmocka_unit_test(test_unreadable_term_is_no_conflict),
	        cmocka_unit_test(test_durable_report_unreadable_term),
	        cmocka_unit_test(test_impossible_state_stops_the_replica),
	        cmocka_unit_test(test_diverged_committed_entry_stops_the_replica),
	        cmocka_unit_test(test_forged_ack_beyond_the_log_is_refused),
	        cmocka_unit_test(test_inputs_refused_inside_a_ready),
	        cmocka_unit_test(test_committed_bytes_per_ready),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
