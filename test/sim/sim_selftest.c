/*
 * sim_selftest.c - tests of the simulator's own parts (cmocka): the PRNG, the
 * disk model, the network queue, and each invariant checker fed a forged
 * violation, so a silent checker cannot make the seed runs pass vacuously.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sim.h"

static void test_rand_reproducible(void **state)
{
	struct sim_rand a, b, c;
	bool differ = false;

	(void)state;
	sim_rand_seed(&a, 42);
	sim_rand_seed(&b, 42);
	sim_rand_seed(&c, 43);
	for (int i = 0; i < 1000; i++) {
		uint64_t x = sim_rand_next(&a);

		assert_int_equal(x, sim_rand_next(&b));
		differ |= x != sim_rand_next(&c);
	}
	for (int i = 0; i < 1000; i++)
		assert_true(sim_rand_below(&a, 7) < 7);
	assert_true(differ); /* another seed gives another sequence */
	assert_int_equal(sim_rand_below(&a, 0), 0);
	assert_false(sim_rand_permille(&a, 0));
	assert_true(sim_rand_permille(&a, 1000));
}

static void append_terms(struct sim_store *s, raft_index lo, const raft_term *terms, uint32_t n)
{
	struct raft_entry e[16];
	uint8_t data[SIM_PROP_MIN];

	sim_prop_encode(lo, data, SIM_PROP_MIN);
	for (uint32_t i = 0; i < n; i++) {
		e[i].index = lo + i;
		e[i].term = terms[i];
		e[i].type = RAFT_ENTRY_NORMAL;
		e[i].len = SIM_PROP_MIN;
		e[i].data = data;
	}
	assert_int_equal(sim_store_append(s, e, n), 0);
}

static void test_store_log(void **state)
{
	struct sim_store s;
	struct raft_storage st;
	struct raft_entry out[8];
	raft_term t1[] = {1, 1, 2, 2, 2}, t2[] = {3, 3};
	raft_term t;
	uint32_t n;

	(void)state;
	sim_store_init(&s);
	st = sim_store_iface(&s);
	append_terms(&s, 1, t1, 5);
	assert_int_equal(sim_store_last(&s), 5);
	append_terms(&s, 4, t2, 2); /* replaces 4 and 5 */
	assert_int_equal(sim_store_term(&s, 5, &t), RAFT_OK);
	assert_int_equal(t, 3);
	assert_int_equal(sim_store_term(&s, 0, &t), RAFT_OK);
	assert_int_equal(t, 0);
	assert_int_equal(sim_store_term(&s, 6, &t), RAFT_ERR_UNAVAILABLE);
	{
		struct raft_entry gap = {.index = 8, .term = 3};

		assert_int_equal(sim_store_append(&s, &gap, 1), -1); /* a gap is refused */
	}
	/* max_bytes bounds the batch, but at least one entry comes back */
	assert_int_equal(st.entries(st.ctx, 1, 6, SIM_PROP_MIN * 2, out, &n), RAFT_OK);
	assert_int_equal(n, 2);
	assert_int_equal(st.entries(st.ctx, 1, 6, 1, out, &n), RAFT_OK);
	assert_int_equal(n, 1);
	assert_int_equal(out[0].index, 1);
	/* snapshot + compaction */
	s.applied = 4;
	for (raft_index i = 1; i <= 4; i++)
		sim_u64s_set(&s.sm, i, i);
	assert_false(sim_store_take_snapshot(&s, 5)); /* not applied */
	assert_true(sim_store_take_snapshot(&s, 4));
	assert_false(sim_store_take_snapshot(&s, 4)); /* nothing new */
	assert_int_equal(s.snap.index, 4);
	assert_int_equal(s.snap.term, 3);
	sim_store_compact(&s, 3);
	assert_int_equal(st.first_index(st.ctx), 4);
	assert_int_equal(sim_store_term(&s, 3, &t), RAFT_OK);
	assert_int_equal(t, 2);
	assert_int_equal(sim_store_term(&s, 2, &t), RAFT_ERR_COMPACTED);
	assert_int_equal(st.entries(st.ctx, 3, 5, 100, out, &n), RAFT_ERR_COMPACTED);
	sim_store_flush_grave(&s);
	sim_store_free(&s);
}

/* Deferred syncs: unsynced writes are a journal; a crash keeps a prefix of them. */
static void test_store_unsynced(void **state)
{
	struct sim_store s;
	raft_term t1[] = {1, 1, 1}, t2[] = {2, 2}, t3[] = {2};
	raft_index idx;
	raft_term t;
	uint64_t a, b;

	(void)state;
	sim_store_init(&s);
	append_terms(&s, 1, t1, 3);
	s.hs = (struct raft_hard_state){.term = 2, .vote = 1, .commit = 1};
	sim_store_synced(&s);
	assert_int_equal(sim_store_durable_last(&s), 3);
	sim_store_defer_begin(&s);
	append_terms(&s, 4, t2, 2);
	s.hs.commit = 3;
	a = sim_store_defer_end(&s);
	sim_store_defer_begin(&s);
	append_terms(&s, 6, t3, 1);
	s.hs.commit = 5;
	b = sim_store_defer_end(&s);
	assert_int_equal(sim_store_durable_last(&s), 3);
	/* The sync that started after write a completes: b stays unsynced. */
	assert_true(sim_store_sync_done(&s, a, &idx, &t));
	assert_int_equal(idx, 5);
	assert_int_equal(t, 2);
	assert_int_equal(sim_store_durable_last(&s), 5);
	/* A crash keeping nothing more: back to after a, its hard state with it. */
	assert_int_equal(sim_store_crash(&s, 0), 1);
	assert_int_equal(sim_store_last(&s), 5);
	assert_int_equal(s.hs.commit, 3);
	assert_int_equal(s.n_wrec, 0);
	sim_store_flush_grave(&s);

	/* Two unsynced writes, a crash keeps the first. */
	sim_store_defer_begin(&s);
	append_terms(&s, 6, t3, 1);
	s.hs.commit = 4;
	(void)sim_store_defer_end(&s);
	sim_store_defer_begin(&s);
	append_terms(&s, 7, t3, 1);
	s.hs.commit = 6;
	b = sim_store_defer_end(&s);
	assert_int_equal(sim_store_crash(&s, 1), 1);
	assert_int_equal(sim_store_last(&s), 6);
	assert_int_equal(s.hs.commit, 4);
	sim_store_flush_grave(&s);

	/* A synced save makes earlier unsynced writes durable; their sync then finds nothing. */
	sim_store_defer_begin(&s);
	append_terms(&s, 7, t3, 1);
	b = sim_store_defer_end(&s);
	sim_store_synced(&s);
	assert_int_equal(sim_store_durable_last(&s), 7);
	assert_false(sim_store_sync_done(&s, b, &idx, &t));
	assert_int_equal(sim_store_crash(&s, 0), 0);
	assert_int_equal(sim_store_last(&s), 7);

	/* Compacted past what a crash keeps: reported. */
	sim_store_defer_begin(&s);
	append_terms(&s, 8, t3, 1);
	(void)sim_store_defer_end(&s);
	s.snap.index = 8;
	sim_store_compact(&s, 8);
	assert_int_equal(sim_store_crash(&s, 0), -1);
	sim_store_free(&s);
}

static void test_net_order(void **state)
{
	struct sim_net net;
	uint64_t at[] = {5, 3, 5, 1, 3};
	struct sim_item *it;
	uint64_t last_at = 0, last_seq = 0;
	unsigned got = 0;

	(void)state;
	memset(&net, 0, sizeof(net));
	for (unsigned i = 0; i < 5; i++) {
		struct raft_message m = {.type = RAFT_MSG_HEARTBEAT, .from = 1, .to = 2};

		it = sim_item_from_msg(&m);
		it->at = at[i];
		sim_net_push(&net, it);
	}
	assert_null(sim_net_pop_due(&net, 0));
	while ((it = sim_net_pop_due(&net, 10))) {
		/* (at, seq) never goes backwards */
		assert_true(it->at > last_at || (it->at == last_at && it->seq > last_seq));
		last_at = it->at;
		last_seq = it->seq;
		got++;
		sim_item_free(it);
	}
	assert_int_equal(got, 5);
	sim_net_free(&net);
}

static struct sim_world *world(unsigned n)
{
	struct sim_world *w = calloc(1, sizeof(*w));

	assert_non_null(w);
	w->n = n;
	for (unsigned id = 1; id <= n; id++) {
		w->nodes[id].id = id;
		sim_store_init(&w->nodes[id].st);
	}
	sim_rand_seed(&w->rng, 1);
	w->p.elect_tick = 10;
	w->p.hb_tick = 1;
	w->p.max_delay = 1;
	w->p.max_inflight = 16;
	w->p.max_msg_bytes = 1 << 20;
	return w;
}

static void world_free(struct sim_world *w)
{
	for (unsigned id = 1; id <= w->n; id++) {
		if (w->nodes[id].r)
			raft_destroy(w->nodes[id].r);
		sim_store_free(&w->nodes[id].st);
	}
	sim_net_free(&w->net);
	free(w->props);
	free(w->reads);
	sim_check_free(w);
	free(w);
}

static uint64_t add_prop(struct sim_world *w, raft_id node)
{
	w->props = realloc(w->props, (w->n_props + 1) * sizeof(*w->props));
	memset(&w->props[w->n_props], 0, sizeof(*w->props));
	w->props[w->n_props].node = node;
	w->props[w->n_props].status = SIM_PROP_PENDING;
	return ++w->n_props;
}

/* nd applies content c at index i (term t) as the Ready cycle would. */
static void apply(struct sim_world *w, unsigned node, raft_index i, raft_term t, uint64_t c)
{
	struct sim_node *nd = &w->nodes[node];

	sim_check_apply(w, nd, i, t, c);
	sim_u64s_set(&nd->st.sm, i, c);
	nd->st.applied = i;
}

static void test_check_state_machine_safety(void **state)
{
	struct sim_world *w = world(2);

	(void)state;
	apply(w, 1, 1, 1, 0);
	apply(w, 2, 1, 1, 0);
	assert_false(w->failed); /* same entry: fine */
	apply(w, 1, 2, 1, 1ull << 63 | 5);
	apply(w, 2, 2, 1, 1ull << 63 | 6);
	assert_true(w->failed);
	assert_string_equal(w->prop, "state-machine-safety");
	world_free(w);
}

static void test_check_lost_ack_and_double_apply(void **state)
{
	struct sim_world *w = world(2);
	uint64_t p = add_prop(w, 1), q = add_prop(w, 2);

	(void)state;
	apply(w, 1, 1, 1, p);
	assert_int_equal(w->props[p - 1].status, SIM_PROP_ACKED);
	assert_int_equal(w->max_acked, 1);
	apply(w, 2, 1, 2, q); /* another entry where an acknowledged one was */
	assert_true(w->failed);
	assert_string_equal(w->prop, "lost-ack");
	world_free(w);

	w = world(1);
	p = add_prop(w, 1);
	apply(w, 1, 1, 1, p);
	apply(w, 1, 2, 1, p);
	assert_true(w->failed);
	assert_string_equal(w->prop, "double-apply");
	world_free(w);
}

static void test_check_apply_durable(void **state)
{
	struct sim_world *w = world(1);
	struct sim_node *nd = &w->nodes[1];
	raft_term t1[] = {1, 1};

	(void)state;
	append_terms(&nd->st, 1, t1, 1);
	sim_check_apply_durable(w, nd, 1);
	assert_false(w->failed);
	sim_store_defer_begin(&nd->st);
	append_terms(&nd->st, 2, t1, 1);
	(void)sim_store_defer_end(&nd->st);
	sim_check_apply_durable(w, nd, 2); /* stored, not synced */
	assert_true(w->failed);
	assert_string_equal(w->prop, "apply-durable");
	world_free(w);
}

static void test_check_apply_order(void **state)
{
	struct sim_world *w = world(1);

	(void)state;
	apply(w, 1, 2, 1, 0);
	assert_true(w->failed);
	assert_string_equal(w->prop, "apply-order");
	world_free(w);
}

static void persist(struct sim_world *w, unsigned node, raft_index lo, const raft_term *terms,
                    const uint64_t *ids, uint32_t n)
{
	struct raft_entry e[8];
	uint8_t data[8][SIM_PROP_MIN];

	for (uint32_t i = 0; i < n; i++) {
		sim_prop_encode(ids[i], data[i], SIM_PROP_MIN);
		e[i].index = lo + i;
		e[i].term = terms[i];
		e[i].type = RAFT_ENTRY_NORMAL;
		e[i].len = SIM_PROP_MIN;
		e[i].data = data[i];
	}
	sim_check_append(w, &w->nodes[node], e, n);
	if (!w->failed)
		assert_int_equal(sim_store_append(&w->nodes[node].st, e, n), 0);
}

static void test_check_log_matching(void **state)
{
	struct sim_world *w = world(2);
	raft_term t[] = {1, 1};
	uint64_t a[] = {1, 2}, b[] = {1, 3};

	(void)state;
	persist(w, 1, 1, t, a, 2);
	persist(w, 2, 1, t, a, 1);
	assert_false(w->failed);
	persist(w, 2, 2, t, b + 1, 1); /* (2, term 1) with other content */
	assert_true(w->failed);
	assert_string_equal(w->prop, "log-matching");
	world_free(w);

	/* same (index, term) after a different predecessor term */
	w = world(2);
	{
		raft_term t1[] = {1, 2}, t2[] = {2, 2};
		uint64_t ids[] = {1, 2};

		persist(w, 1, 1, t1, ids, 2);
		persist(w, 2, 1, t2, ids, 2);
		assert_true(w->failed);
		assert_string_equal(w->prop, "log-matching");
	}
	world_free(w);
}

static void test_check_committed_overwrite(void **state)
{
	struct sim_world *w = world(1);
	raft_term t1[] = {1, 1}, t2[] = {2};
	uint64_t ids[] = {1, 2};

	(void)state;
	persist(w, 1, 1, t1, ids, 2);
	w->nodes[1].st.hs.commit = 2;
	persist(w, 1, 2, t2, ids, 1);
	assert_true(w->failed);
	assert_string_equal(w->prop, "leader-completeness");
	world_free(w);

	/* re-appending a matching prefix must not drop committed entries after it */
	w = world(1);
	persist(w, 1, 1, t1, ids, 2);
	w->nodes[1].st.hs.commit = 2;
	persist(w, 1, 1, t1, ids, 1);
	assert_true(w->failed);
	assert_string_equal(w->prop, "leader-completeness");
	world_free(w);
}

static void test_check_hard_state(void **state)
{
	struct sim_world *w = world(1);
	struct raft_hard_state hs = {.term = 3, .vote = 2, .commit = 0};

	(void)state;
	w->nodes[1].st.hs = hs;
	hs.vote = 3;
	sim_check_hard_state(w, &w->nodes[1], &hs);
	assert_true(w->failed);
	assert_string_equal(w->prop, "election-safety");
	world_free(w);
}

static void test_check_read(void **state)
{
	struct sim_world *w = world(1);
	uint64_t p = add_prop(w, 1);

	(void)state;
	apply(w, 1, 1, 1, 0);
	apply(w, 1, 2, 1, p); /* acknowledged at 2 */
	w->reads = calloc(2, sizeof(*w->reads));
	w->n_reads = 2;
	w->reads[0].node = w->reads[1].node = 1;
	w->reads[0].min_index = w->reads[1].min_index = w->max_acked;
	sim_check_read(w, &w->nodes[1], 1, 2);
	assert_false(w->failed);
	sim_check_read(w, &w->nodes[1], 2, 1); /* misses the acknowledged write */
	assert_true(w->failed);
	assert_string_equal(w->prop, "read-linearizability");
	world_free(w);
}

/* A real single-voter replica elected leader, for the election checks. */
static struct sim_world *world_with_leader(void)
{
	struct sim_world *w = world(1);
	struct raft_membership boot;
	struct sim_node *nd = &w->nodes[1];

	memset(&boot, 0, sizeof(boot));
	boot.n_voters = 1;
	boot.voters[0] = 1;
	sim_node_start(w, nd, &boot);
	assert_false(w->failed);
	for (int i = 0; i < 100 && nd->role != RAFT_LEADER; i++) {
		raft_tick(nd->r);
		sim_observe(w, nd);
		sim_node_pump(w, nd);
	}
	assert_int_equal(nd->role, RAFT_LEADER);
	assert_false(w->failed);
	return w;
}

static void test_check_election_safety(void **state)
{
	struct sim_world *w = world_with_leader();

	(void)state;
	sim_u64s_set(&w->leader_of_term, w->nodes[1].term, 2); /* someone else led this term */
	sim_observe(w, &w->nodes[1]);
	assert_true(w->failed);
	assert_string_equal(w->prop, "election-safety");
	world_free(w);
}

/* A leadership lost in a crash before its term was saved is forgotten only if
 * no message of its term left the node. */
static void test_check_crashed_leader(void **state)
{
	struct sim_world *w = world_with_leader();
	struct sim_node *nd = &w->nodes[1];
	raft_term t = nd->term;

	(void)state;
	assert_int_equal(sim_u64s_get(&w->leader_of_term, t), 1);
	nd->st.hs.term = t - 1; /* the save of term t did not reach the disk */
	nd->sent_term = t;      /* ... but a message of term t left */
	sim_check_crashed(w, nd);
	assert_int_equal(sim_u64s_get(&w->leader_of_term, t), 1);
	nd->sent_term = t - 1;
	sim_check_crashed(w, nd);
	assert_int_equal(sim_u64s_get(&w->leader_of_term, t), 0);
	nd->st.hs.term = t; /* saved: never forgotten */
	sim_u64s_set(&w->leader_of_term, t, 1);
	sim_check_crashed(w, nd);
	assert_int_equal(sim_u64s_get(&w->leader_of_term, t), 1);
	assert_false(w->failed);
	world_free(w);
}

static void test_check_leader_completeness(void **state)
{
	struct sim_world *w = world_with_leader();
	struct sim_node *nd = &w->nodes[1];

	(void)state;
	/* pretend index 1000 was committed in the term before: this leader lacks it */
	sim_u64s_set(&w->committed_term, 1000, nd->term - 1);
	sim_u64s_set(&w->committed_in, 1000, nd->term - 1);
	nd->lc_term = 0;
	sim_observe(w, nd);
	assert_true(w->failed);
	assert_string_equal(w->prop, "leader-completeness");
	world_free(w);
}

/* An entry of an earlier term committed in a later one need not be there. */
static void test_check_leader_completeness_commit_term(void **state)
{
	struct sim_world *w = world_with_leader();
	struct sim_node *nd = &w->nodes[1];

	(void)state;
	sim_u64s_set(&w->committed_term, 1000, nd->term - 1);
	sim_u64s_set(&w->committed_in, 1000, nd->term + 1);
	nd->lc_term = 0;
	sim_observe(w, nd);
	assert_false(w->failed);
	world_free(w);
}

static void test_check_commit_safety(void **state)
{
	struct sim_world *w = world_with_leader();
	struct sim_node *nd = &w->nodes[1];
	raft_index c = raft_commit_index(nd->r);

	(void)state;
	/* another term was committed at this leader's commit index */
	sim_u64s_set(&w->committed_term, c, nd->term + 5);
	nd->commit_seen = c - 1;
	sim_observe(w, nd);
	assert_true(w->failed);
	assert_string_equal(w->prop, "commit-safety");
	world_free(w);
}

static void test_prop_payload(void **state)
{
	static uint8_t buf[3 * 65536];
	struct raft_entry e = {1, 1, RAFT_ENTRY_NORMAL, sizeof(buf), buf};

	(void)state;
	sim_prop_encode(77, buf, sizeof(buf));
	assert_int_equal(sim_content(e.type, buf, e.len), 77);
	assert_true(sim_entry_intact(&e));
	/* one byte far from the id: no longer the proposal */
	buf[100000] ^= 1;
	assert_false(sim_entry_intact(&e));
	assert_false(sim_content_is_prop(sim_content(e.type, buf, e.len)));
	e.len = 0;
	assert_true(sim_entry_intact(&e)); /* the leader's no-op */
}

static void test_check_intact(void **state)
{
	struct sim_world *w = world(1);
	uint8_t data[SIM_PROP_MIN + 8];
	struct raft_entry e = {1, 5, RAFT_ENTRY_NORMAL, sizeof(data), data};

	(void)state;
	sim_prop_encode(3, data, sizeof(data));
	sim_check_intact(w, &w->nodes[1], &e, 1, "append");
	assert_false(w->failed);
	data[SIM_PROP_MIN + 3] ^= 0xff; /* as if read from reused memory */
	sim_check_intact(w, &w->nodes[1], &e, 1, "append");
	assert_true(w->failed);
	assert_string_equal(w->prop, "integrity");
	world_free(w);
}

static void test_check_membership(void **state)
{
	struct sim_world *w = world(1);
	struct raft_membership m;

	(void)state;
	memset(&m, 0, sizeof(m));
	m.n_voters = 2;
	m.voters[0] = 1;
	m.voters[1] = 3;
	w->removed[0].id = 3;
	w->removed[0].at = 10;
	w->n_removed = 1;
	m.config_index = 9; /* before the removal: fine */
	sim_check_membership(w, &w->nodes[1], &m);
	assert_false(w->failed);
	m.config_index = 12; /* after it, 3 is back */
	sim_check_membership(w, &w->nodes[1], &m);
	assert_true(w->failed);
	assert_string_equal(w->prop, "membership");
	world_free(w);
}

static void test_run_reproducible(void **state)
{
	struct sim_opts o = {.seed = 3, .nodes = 3, .steps = 4000};
	char p1[64], w1[640], p2[64], w2[640];
	bool ok1, ok2;

	(void)state;
	ok1 = sim_run(&o, p1, sizeof(p1), w1, sizeof(w1));
	ok2 = sim_run(&o, p2, sizeof(p2), w2, sizeof(w2));
	assert_int_equal(ok1, ok2);
	assert_string_equal(p1, p2);
	assert_string_equal(w1, w2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_rand_reproducible),
	        cmocka_unit_test(test_store_log),
	        cmocka_unit_test(test_store_unsynced),
	        cmocka_unit_test(test_net_order),
	        cmocka_unit_test(test_check_state_machine_safety),
	        cmocka_unit_test(test_check_lost_ack_and_double_apply),
	        cmocka_unit_test(test_check_apply_durable),
	        cmocka_unit_test(test_check_apply_order),
	        cmocka_unit_test(test_check_log_matching),
	        cmocka_unit_test(test_check_committed_overwrite),
	        cmocka_unit_test(test_check_hard_state),
	        cmocka_unit_test(test_check_read),
	        cmocka_unit_test(test_check_election_safety),
	        cmocka_unit_test(test_check_crashed_leader),
	        cmocka_unit_test(test_check_leader_completeness),
	        cmocka_unit_test(test_check_leader_completeness_commit_term),
	        cmocka_unit_test(test_check_commit_safety),
	        cmocka_unit_test(test_prop_payload),
	        cmocka_unit_test(test_check_intact),
	        cmocka_unit_test(test_check_membership),
	        cmocka_unit_test(test_run_reproducible),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
