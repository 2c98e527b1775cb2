/*
 * test_raft_paper.c - the rules of the Raft paper, sections 5.1-5.4, each
 * checked on one replica fed messages by hand (in the manner of etcd's
 * raft_paper_test.go, written here from the paper).
 *
 * Logs are preset in storage without bootstrap entries, so indexes match the
 * paper's figures.  Node 1 is the replica under test; peers 2..n never run.
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

#define R1(f) ((f)->nodes[1].r)

/* A cluster of n where node ids in `start` get the preset log and run. */
static struct fx *setup(uint32_t n, const raft_term *terms, uint32_t nterms, raft_term term,
                        raft_index commit)
{
	struct fx *f = fx_create_stopped(n, NULL);
	struct raft_hard_state hs = {term, 0, commit};

	for (uint32_t i = 0; i < nterms; i++) {
		struct raft_entry e = {terms[i], i + 1, RAFT_ENTRY_NORMAL, 0, NULL};

		assert_int_equal(raft_memstorage_append(f->nodes[1].ms, &e, 1), RAFT_OK);
	}
	raft_memstorage_set_hard_state(f->nodes[1].ms, &hs);
	fx_start(f, 1);
	return f;
}

/* Preset node id's storage (before fx_start). */
static void preset(struct fx *f, raft_id id, const raft_term *terms, uint32_t nterms,
                   raft_term term, raft_index commit)
{
	struct raft_hard_state hs = {term, 0, commit};

	for (uint32_t i = 0; i < nterms; i++) {
		struct raft_entry e = {terms[i], i + 1, RAFT_ENTRY_NORMAL, 0, NULL};

		assert_int_equal(raft_memstorage_append(f->nodes[id].ms, &e, 1), RAFT_OK);
	}
	raft_memstorage_set_hard_state(f->nodes[id].ms, &hs);
}

static struct raft_message msg(uint32_t type, raft_id from, raft_id to, raft_term term)
{
	struct raft_message m;

	memset(&m, 0, sizeof(m));
	m.type = type;
	m.group_id = 7;
	m.from = from;
	m.to = to;
	m.term = term;
	return m;
}

static void step(struct fx *f, raft_id id, struct raft_message m)
{
	int rc = raft_step(f->nodes[id].r, &m);

	if (rc != RAFT_OK)
		fail_msg("step of message type %u: %s", m.type, raft_strerror(rc));
}

/* Run node 1's Ready cycles; its output lands in f->q. */
static void flush(struct fx *f)
{
	while (fx_ready(f, 1))
		;
}

/* The first queued message of type to `to` (0: any), or NULL. */
static struct fx_msg *qfind(struct fx *f, uint32_t type, raft_id to)
{
	for (uint32_t i = 0; i < f->nq; i++)
		if (f->q[i].m.type == type && (to == 0 || f->q[i].m.to == to))
			return &f->q[i];
	return NULL;
}

static uint32_t qcount(struct fx *f, uint32_t type)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < f->nq; i++)
		n += f->q[i].m.type == type;
	return n;
}

/* Make node 1 leader: campaign and receive grants from a majority. */
static void make_leader(struct fx *f)
{
	raft_campaign(R1(f));
	flush(f);
	for (raft_id id = 2; id <= f->n / 2 + 1; id++) {
		struct raft_message m = msg(RAFT_MSG_VOTE_RESP, id, 1, raft_term_of(R1(f)));

		step(f, 1, m);
	}
	assert_int_equal(raft_role(R1(f)), RAFT_LEADER);
	flush(f);
	fx_drop_all(f);
}

/* Paper 5.1: a server seeing a larger term updates its term and becomes follower. */
static void test_update_term_from_message(void **state)
{
	for (int role = 0; role < 3; role++) {
		struct fx *f = setup(3, NULL, 0, 1, 0);
		struct raft_message m = msg(RAFT_MSG_APPEND, 2, 1, 5);

		(void)state;
		if (role == 1) {
			raft_campaign(R1(f));
			assert_int_equal(raft_role(R1(f)), RAFT_CANDIDATE);
		} else if (role == 2) {
			make_leader(f);
		}
		step(f, 1, m);
		assert_int_equal(raft_term_of(R1(f)), 5);
		assert_int_equal(raft_role(R1(f)), RAFT_FOLLOWER);
		assert_int_equal(raft_leader(R1(f)), 2);
		fx_destroy(f);
	}
}

/* Paper 5.1: a request with a stale term is rejected (ignored). */
static void test_reject_stale_term_message(void **state)
{
	const raft_term terms[] = {1, 2};
	struct fx *f = setup(3, terms, 2, 2, 0);
	struct raft_message m = msg(RAFT_MSG_APPEND, 2, 1, 1);
	struct raft_entry e = {1, 3, 0, 0, NULL};

	(void)state;
	m.index = 2;
	m.log_term = 1;
	m.entries = &e;
	m.n_entries = 1;
	step(f, 1, m);
	assert_int_equal(raft_term_of(R1(f)), 2);
	assert_int_equal(raft_last_index(R1(f)), 2);
	flush(f);
	assert_int_equal(qcount(f, RAFT_MSG_APPEND_RESP), 0);
	/* Figure 2: RequestVote returns currentTerm, so a stale candidate learns it. */
	m = msg(RAFT_MSG_VOTE, 3, 1, 1);
	m.index = 9;
	m.log_term = 1;
	step(f, 1, m);
	flush(f);
	assert_non_null(qfind(f, RAFT_MSG_VOTE_RESP, 3));
	assert_true(qfind(f, RAFT_MSG_VOTE_RESP, 3)->m.reject);
	assert_int_equal(qfind(f, RAFT_MSG_VOTE_RESP, 3)->m.term, 2);
	assert_int_equal(raft_memstorage_hard_state(f->nodes[1].ms)->vote, 0);
	fx_destroy(f);
}

/* Paper 5.2: servers start as followers. */
static void test_start_as_follower(void **state)
{
	struct fx *f = setup(3, NULL, 0, 1, 0);

	(void)state;
	assert_int_equal(raft_role(R1(f)), RAFT_FOLLOWER);
	assert_int_equal(raft_leader(R1(f)), 0);
	fx_destroy(f);
}

/* Paper 5.2: the leader sends heartbeats to all followers every heartbeat interval. */
static void test_leader_bcast_beat(void **state)
{
	struct fx *f = setup(3, NULL, 0, 1, 0);
	raft_term t;

	(void)state;
	make_leader(f);
	t = raft_term_of(R1(f));
	raft_tick(R1(f)); /* heartbeat_tick is 1 */
	flush(f);
	assert_int_equal(qcount(f, RAFT_MSG_HEARTBEAT), 2);
	assert_non_null(qfind(f, RAFT_MSG_HEARTBEAT, 2));
	assert_non_null(qfind(f, RAFT_MSG_HEARTBEAT, 3));
	assert_int_equal(qfind(f, RAFT_MSG_HEARTBEAT, 2)->m.term, t);
	fx_destroy(f);
}

/* Paper 5.2: after an election timeout a follower (or candidate) starts an election. */
static void test_nonleader_starts_election(void **state)
{
	for (int candidate = 0; candidate < 2; candidate++) {
		struct fx *f = setup(3, NULL, 0, 1, 0);
		raft_term t0;

		(void)state;
		if (candidate) {
			raft_campaign(R1(f));
			flush(f);
			fx_drop_all(f);
		}
		t0 = raft_term_of(R1(f));
		for (int i = 0; i < 20; i++)
			raft_tick(R1(f));
		flush(f);
		assert_int_equal(raft_term_of(R1(f)), t0 + 1);
		assert_int_equal(raft_role(R1(f)), RAFT_CANDIDATE);
		assert_int_equal(raft_memstorage_hard_state(f->nodes[1].ms)->vote, 1);
		assert_int_equal(qcount(f, RAFT_MSG_VOTE), 2);
		assert_int_equal(qfind(f, RAFT_MSG_VOTE, 2)->m.term, t0 + 1);
		assert_int_equal(qfind(f, RAFT_MSG_VOTE, 3)->m.term, t0 + 1);
		fx_destroy(f);
	}
}

/* Paper 5.2: a candidate wins with a majority, loses with a majority of rejections. */
static void test_election_in_one_round(void **state)
{
	static const struct {
		uint32_t size;
		int votes[5]; /* per peer id 2..: 1 grant, -1 reject, 0 silent */
		enum raft_role want;
	} tt[] = {
	        {1, {0}, RAFT_LEADER},
	        {3, {1, 1}, RAFT_LEADER},
	        {3, {1, 0}, RAFT_LEADER},
	        {5, {1, 1, 1, 1}, RAFT_LEADER},
	        {5, {1, 1, 1, 0}, RAFT_LEADER},
	        {5, {1, 1, 0, 0}, RAFT_LEADER},
	        {3, {0, 0}, RAFT_CANDIDATE},
	        {5, {1, 0, 0, 0}, RAFT_CANDIDATE},
	        {5, {1, -1, -1, 0}, RAFT_CANDIDATE},
	        {3, {-1, -1}, RAFT_FOLLOWER},
	        {5, {-1, -1, -1, 0}, RAFT_FOLLOWER},
	        {5, {1, -1, -1, -1}, RAFT_FOLLOWER},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(tt) / sizeof(tt[0]); i++) {
		struct fx *f = setup(tt[i].size, NULL, 0, 1, 0);

		raft_campaign(R1(f));
		for (uint32_t p = 0; p + 1 < tt[i].size; p++) {
			struct raft_message m =
			        msg(RAFT_MSG_VOTE_RESP, p + 2, 1, raft_term_of(R1(f)));

			if (tt[i].votes[p] == 0)
				continue;
			m.reject = tt[i].votes[p] < 0;
			step(f, 1, m);
		}
		if (raft_role(R1(f)) != tt[i].want)
			fail_msg("case %zu: role %d, want %d", i, raft_role(R1(f)), tt[i].want);
		fx_destroy(f);
	}
}

/* Paper 5.2: each server votes for at most one candidate per term, first come first served. */
static void test_follower_vote(void **state)
{
	static const struct {
		raft_id vote, nvote;
		bool reject;
	} tt[] = {
	        {0, 2, false}, {0, 3, false}, {2, 2, false},
	        {3, 3, false}, {2, 3, true},  {3, 2, true},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(tt) / sizeof(tt[0]); i++) {
		struct fx *f = fx_create_stopped(3, NULL);
		struct raft_hard_state hs = {1, tt[i].vote, 0};
		struct raft_message m = msg(RAFT_MSG_VOTE, tt[i].nvote, 1, 1);
		struct fx_msg *resp;

		raft_memstorage_set_hard_state(f->nodes[1].ms, &hs);
		fx_start(f, 1);
		step(f, 1, m);
		flush(f);
		resp = qfind(f, RAFT_MSG_VOTE_RESP, tt[i].nvote);
		assert_non_null(resp);
		if (resp->m.reject != tt[i].reject)
			fail_msg("case %zu: reject %d, want %d", i, resp->m.reject, tt[i].reject);
		fx_destroy(f);
	}
}

/* Paper 5.2: a candidate that hears from a leader of its term or later steps down. */
static void test_candidate_fallback(void **state)
{
	for (int later = 0; later < 2; later++) {
		struct fx *f = setup(3, NULL, 0, 1, 0);
		struct raft_message m;
		raft_term t;

		(void)state;
		raft_campaign(R1(f));
		t = raft_term_of(R1(f)) + (raft_term)later;
		m = msg(RAFT_MSG_APPEND, 2, 1, t);
		step(f, 1, m);
		assert_int_equal(raft_role(R1(f)), RAFT_FOLLOWER);
		assert_int_equal(raft_term_of(R1(f)), t);
		assert_int_equal(raft_leader(R1(f)), 2);
		fx_destroy(f);
	}
}

/* Paper 5.2: election timeouts are chosen at random in [T, 2T). */
static void test_election_timeout_randomized(void **state)
{
	bool seen[20] = {false};
	uint32_t distinct = 0;

	(void)state;
	for (uint64_t seed = 1; seed <= 60; seed++) {
		struct raft_config c;
		struct fx *f;
		int ticks = 0;

		fx_default_config(&c, 1);
		c.seed = seed;
		f = fx_create_stopped(3, &c);
		fx_start(f, 1);
		while (raft_role(R1(f)) == RAFT_FOLLOWER && ticks < 100) {
			raft_tick(R1(f));
			ticks++;
		}
		if (ticks < 10 || ticks >= 20)
			fail_msg("seed %llu: election after %d ticks, want [10, 20)",
			         (unsigned long long)seed, ticks);
		if (!seen[ticks]) {
			seen[ticks] = true;
			distinct++;
		}
		fx_destroy(f);
	}
	assert_true(distinct > 3);
}

/* Paper 5.3: the leader appends a proposal and sends it in AppendEntries to every follower. */
static void test_leader_start_replication(void **state)
{
	struct fx *f = setup(3, NULL, 0, 1, 0);
	raft_index li;
	raft_term t;

	(void)state;
	make_leader(f);
	li = raft_last_index(R1(f));
	t = raft_term_of(R1(f));
	/* Followers acknowledge the no-op so the leader replicates in order. */
	for (raft_id id = 2; id <= 3; id++) {
		struct raft_message m = msg(RAFT_MSG_APPEND_RESP, id, 1, t);

		m.index = li;
		step(f, 1, m);
	}
	flush(f);
	fx_drop_all(f);
	assert_int_equal(fx_propose(f, 1, "some data"), RAFT_OK);
	flush(f);
	for (raft_id id = 2; id <= 3; id++) {
		struct fx_msg *a = qfind(f, RAFT_MSG_APPEND, id);

		assert_non_null(a);
		assert_int_equal(a->m.index, li);
		assert_int_equal(a->m.log_term, t);
		assert_int_equal(a->m.n_entries, 1);
		assert_int_equal(a->ents[0].index, li + 1);
		assert_int_equal(a->ents[0].term, t);
		assert_memory_equal(a->ents[0].data, "some data", 9);
		assert_int_equal(a->m.commit, li);
	}
	assert_int_equal(raft_last_index(R1(f)), li + 1);
	fx_destroy(f);
}

/* Paper 5.3: an entry replicated on a majority commits; later appends carry the commit. */
static void test_leader_commit_entry(void **state)
{
	struct fx *f = setup(3, NULL, 0, 1, 0);
	raft_index li;
	raft_term t;

	(void)state;
	make_leader(f);
	t = raft_term_of(R1(f));
	fx_propose(f, 1, "x");
	flush(f);
	li = raft_last_index(R1(f));
	fx_drop_all(f);
	{
		struct raft_message m = msg(RAFT_MSG_APPEND_RESP, 2, 1, t);

		m.index = li;
		step(f, 1, m);
	}
	assert_int_equal(raft_commit_index(R1(f)), li);
	flush(f);
	assert_true(fx_applied_has(f, 1, "x"));
	/* Node 2 (replicating) hears the new commit at once; node 3 is still probing. */
	{
		struct fx_msg *a = qfind(f, RAFT_MSG_APPEND, 2);

		assert_non_null(a);
		assert_int_equal(a->m.commit, li);
	}
	raft_tick(R1(f));
	flush(f);
	assert_int_equal(qfind(f, RAFT_MSG_HEARTBEAT, 3)->m.commit, 0); /* match unknown */
	fx_destroy(f);
}

/* Paper 5.3: the leader commits once a majority (itself included) holds the entry. */
static void test_leader_acknowledge_commit(void **state)
{
	static const struct {
		uint32_t size;
		uint32_t acks; /* peers 2..acks+1 acknowledge */
		bool commit;
	} tt[] = {
	        {1, 0, true},  {3, 0, false}, {3, 1, true}, {3, 2, true},
	        {5, 0, false}, {5, 1, false}, {5, 2, true}, {5, 4, true},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(tt) / sizeof(tt[0]); i++) {
		struct fx *f = setup(tt[i].size, NULL, 0, 1, 0);
		raft_index li;

		if (tt[i].size == 1) {
			raft_campaign(R1(f));
			flush(f);
		} else {
			make_leader(f);
		}
		fx_propose(f, 1, "y");
		flush(f);
		li = raft_last_index(R1(f));
		for (uint32_t p = 0; p < tt[i].acks; p++) {
			struct raft_message m =
			        msg(RAFT_MSG_APPEND_RESP, p + 2, 1, raft_term_of(R1(f)));

			m.index = li;
			step(f, 1, m);
		}
		if ((raft_commit_index(R1(f)) == li) != tt[i].commit)
			fail_msg("case %zu: commit %llu, last %llu, want committed=%d", i,
			         (unsigned long long)raft_commit_index(R1(f)),
			         (unsigned long long)li, tt[i].commit);
		fx_destroy(f);
	}
}

/* Paper 5.3: committing an entry commits all preceding ones, old terms included. */
static void test_leader_commit_preceding_entries(void **state)
{
	const raft_term terms[] = {2, 2};
	struct fx *f = setup(3, terms, 2, 2, 0);
	raft_index li;

	(void)state;
	make_leader(f); /* term 3, no-op at 3 */
	fx_propose(f, 1, "z");
	flush(f);
	li = raft_last_index(R1(f));
	assert_int_equal(li, 4);
	{
		struct raft_message m = msg(RAFT_MSG_APPEND_RESP, 2, 1, raft_term_of(R1(f)));

		m.index = li;
		step(f, 1, m);
	}
	flush(f);
	assert_int_equal(raft_commit_index(R1(f)), 4);
	assert_int_equal(f->nodes[1].n_applied, 4);
	assert_int_equal(f->nodes[1].applied[0].index, 1);
	assert_int_equal(f->nodes[1].applied[0].term, 2);
	fx_destroy(f);
}

/* Paper 5.3: a follower applies entries up to the leader's commit index. */
static void test_follower_commit_entry(void **state)
{
	struct fx *f = setup(3, NULL, 0, 1, 0);
	struct raft_entry e[2] = {{1, 1, 0, 4, (const uint8_t *)"one!"},
	                          {1, 2, 0, 4, (const uint8_t *)"two!"}};
	struct raft_message m = msg(RAFT_MSG_APPEND, 2, 1, 1);

	(void)state;
	m.entries = e;
	m.n_entries = 2;
	m.commit = 1;
	step(f, 1, m);
	flush(f);
	assert_int_equal(raft_commit_index(R1(f)), 1);
	assert_true(fx_applied_has(f, 1, "one!"));
	assert_false(fx_applied_has(f, 1, "two!"));
	fx_drop_all(f);
	m.entries = NULL;
	m.n_entries = 0;
	m.index = 2;
	m.log_term = 1;
	m.commit = 2;
	step(f, 1, m);
	flush(f);
	assert_true(fx_applied_has(f, 1, "two!"));
	fx_destroy(f);
}

/* Paper 5.3: a follower refuses entries when it has no entry at prev with prev's term. */
static void test_follower_check_append(void **state)
{
	static const struct {
		raft_term log_term;
		raft_index index;
		bool reject;
		raft_index hint;
	} tt[] = {
	        {0, 0, false, 0}, {1, 1, false, 0}, {2, 2, false, 0},
	        {1, 2, true, 1},  {3, 3, true, 2},
	};
	const raft_term terms[] = {1, 2};

	(void)state;
	for (size_t i = 0; i < sizeof(tt) / sizeof(tt[0]); i++) {
		struct fx *f = setup(3, terms, 2, 2, 1);
		struct raft_message m = msg(RAFT_MSG_APPEND, 2, 1, 2);
		struct fx_msg *resp;

		m.index = tt[i].index;
		m.log_term = tt[i].log_term;
		m.commit = 1;
		step(f, 1, m);
		flush(f);
		resp = qfind(f, RAFT_MSG_APPEND_RESP, 2);
		assert_non_null(resp);
		if (resp->m.reject != tt[i].reject)
			fail_msg("case %zu: reject %d, want %d", i, resp->m.reject, tt[i].reject);
		if (tt[i].reject)
			assert_int_equal(resp->m.reject_hint, tt[i].hint);
		fx_destroy(f);
	}
}

/* Paper 5.3: a conflicting entry and all after it are deleted, new ones appended. */
static void test_follower_append_entries(void **state)
{
	static const struct {
		raft_index index;
		raft_term log_term;
		raft_term ents[2];
		uint32_t n;
		raft_term want[3];
		uint32_t nwant;
	} tt[] = {
	        {2, 2, {3}, 1, {1, 2, 3}, 3},
	        {1, 1, {3, 4}, 2, {1, 3, 4}, 3},
	        {0, 0, {1}, 1, {1, 2}, 2},
	        {0, 0, {3}, 1, {3}, 1},
	};
	const raft_term terms[] = {1, 2};

	(void)state;
	for (size_t i = 0; i < sizeof(tt) / sizeof(tt[0]); i++) {
		struct fx *f = setup(3, terms, 2, 2, 0);
		struct raft_message m = msg(RAFT_MSG_APPEND, 2, 1, 4);
		struct raft_entry e[2];

		for (uint32_t k = 0; k < tt[i].n; k++) {
			memset(&e[k], 0, sizeof(e[k]));
			e[k].term = tt[i].ents[k];
			e[k].index = tt[i].index + 1 + k;
		}
		m.index = tt[i].index;
		m.log_term = tt[i].log_term;
		m.entries = e;
		m.n_entries = tt[i].n;
		step(f, 1, m);
		flush(f);
		assert_int_equal(raft_memstorage_last_index(f->nodes[1].ms), tt[i].nwant);
		for (uint32_t k = 0; k < tt[i].nwant; k++) {
			const struct raft_entry *got = raft_memstorage_entry(f->nodes[1].ms, k + 1);

			if (got == NULL || got->term != tt[i].want[k])
				fail_msg("case %zu: entry %u term %llu, want %llu", i, k + 1,
				         got ? (unsigned long long)got->term : 0ull,
				         (unsigned long long)tt[i].want[k]);
		}
		fx_destroy(f);
	}
}

/* Paper 5.3, Figure 7: the leader brings any follower log into agreement with its own. */
static void test_leader_sync_follower_log(void **state)
{
	static const raft_term lead[] = {1, 1, 1, 4, 4, 5, 5, 6, 6, 6};
	static const struct {
		raft_term t[12];
		uint32_t n;
	} followers[] = {
	        {{1, 1, 1, 4, 4, 5, 5, 6, 6}, 9},
	        {{1, 1, 1, 4}, 4},
	        {{1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6}, 11},
	        {{1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7}, 12},
	        {{1, 1, 1, 4, 4, 4, 4}, 7},
	        {{1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3}, 11},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(followers) / sizeof(followers[0]); i++) {
		struct fx *f = fx_create_stopped(3, NULL);
		struct raft_message m;
		raft_index last;

		preset(f, 1, lead, 10, 8, 10);
		preset(f, 2, followers[i].t, followers[i].n, 7, 0);
		fx_start(f, 1);
		fx_start(f, 2);
		/* Node 3 never runs; it grants node 1 its vote by hand. */
		raft_campaign(R1(f));
		flush(f);
		fx_drop_all(f);
		m = msg(RAFT_MSG_VOTE_RESP, 3, 1, raft_term_of(R1(f)));
		step(f, 1, m);
		assert_int_equal(raft_role(R1(f)), RAFT_LEADER);
		fx_propose(f, 1, "sync");
		fx_tick_all(f, 5);
		last = raft_memstorage_last_index(f->nodes[1].ms);
		assert_int_equal(raft_memstorage_last_index(f->nodes[2].ms), last);
		for (raft_index k = 1; k <= last; k++)
			if (raft_memstorage_entry(f->nodes[1].ms, k)->term !=
			    raft_memstorage_entry(f->nodes[2].ms, k)->term)
				fail_msg("follower %zu: entry %llu differs", i,
				         (unsigned long long)k);
		assert_int_equal(raft_commit_index(f->nodes[2].r), last);
		fx_destroy(f);
	}
}

/* Paper 5.4.1: RequestVote carries the candidate's last log index and term. */
static void test_vote_request(void **state)
{
	const raft_term terms[] = {1, 2, 2};
	struct fx *f = setup(3, terms, 3, 2, 0);

	(void)state;
	raft_campaign(R1(f));
	flush(f);
	for (raft_id id = 2; id <= 3; id++) {
		struct fx_msg *v = qfind(f, RAFT_MSG_VOTE, id);

		assert_non_null(v);
		assert_int_equal(v->m.term, 3);
		assert_int_equal(v->m.index, 3);
		assert_int_equal(v->m.log_term, 2);
	}
	fx_destroy(f);
}

/* Paper 5.4.1: a vote goes only to a candidate whose log is at least as up-to-date. */
static void test_voter_up_to_date_check(void **state)
{
	static const struct {
		raft_term log[2];
		uint32_t n;
		raft_term cand_term;
		raft_index cand_index;
		bool reject;
	} tt[] = {
	        {{1, 1}, 2, 1, 1, true},  /* same last term, shorter */
	        {{1, 1}, 2, 1, 2, false}, /* same */
	        {{1, 1}, 2, 1, 3, false}, /* longer */
	        {{1, 1}, 2, 2, 1, false}, /* later last term wins even if shorter */
	        {{2}, 1, 1, 5, true},     /* earlier last term loses even if longer */
	        {{2}, 1, 2, 1, false},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(tt) / sizeof(tt[0]); i++) {
		struct fx *f = setup(3, tt[i].log, tt[i].n, 2, 0);
		struct raft_message m = msg(RAFT_MSG_VOTE, 2, 1, 3);
		struct fx_msg *resp;

		m.index = tt[i].cand_index;
		m.log_term = tt[i].cand_term;
		step(f, 1, m);
		flush(f);
		resp = qfind(f, RAFT_MSG_VOTE_RESP, 2);
		assert_non_null(resp);
		if (resp->m.reject != tt[i].reject)
			fail_msg("case %zu: reject %d, want %d", i, resp->m.reject, tt[i].reject);
		fx_destroy(f);
	}
}

/* Paper 5.4.2: only current-term entries commit by counting replicas. */
static void test_leader_only_commits_current_term(void **state)
{
	static const struct {
		raft_index ack;
		raft_index want_commit;
	} tt[] = {{1, 0}, {2, 0}, {3, 3}};
	const raft_term terms[] = {1, 2};

	(void)state;
	for (size_t i = 0; i < sizeof(tt) / sizeof(tt[0]); i++) {
		struct fx *f = setup(3, terms, 2, 2, 0);
		struct raft_message m;

		make_leader(f); /* term 3, no-op at index 3, persisted */
		m = msg(RAFT_MSG_APPEND_RESP, 2, 1, raft_term_of(R1(f)));
		m.index = tt[i].ack;
		step(f, 1, m);
		if (raft_commit_index(R1(f)) != tt[i].want_commit)
			fail_msg("case %zu: commit %llu, want %llu", i,
			         (unsigned long long)raft_commit_index(R1(f)),
			         (unsigned long long)tt[i].want_commit);
		fx_destroy(f);
	}
}

/* Paper 5.2 + 5.4: a follower that voted in a term keeps that vote after restart. */
static void test_vote_survives_restart(void **state)
{
	struct fx *f = setup(3, NULL, 0, 1, 0);
	struct raft_message m = msg(RAFT_MSG_VOTE, 2, 1, 2);
	struct fx_msg *resp;

	(void)state;
	step(f, 1, m);
	flush(f);
	assert_int_equal(raft_memstorage_hard_state(f->nodes[1].ms)->vote, 2);
	fx_crash(f, 1);
	fx_restart(f, 1);
	m = msg(RAFT_MSG_VOTE, 3, 1, 2);
	step(f, 1, m);
	flush(f);
	resp = qfind(f, RAFT_MSG_VOTE_RESP, 3);
	assert_non_null(resp);
	assert_true(resp->m.reject);
	fx_destroy(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_update_term_from_message),
	        cmocka_unit_test(test_reject_stale_term_message),
	        cmocka_unit_test(test_start_as_follower),
	        cmocka_unit_test(test_leader_bcast_beat),
	        cmocka_unit_test(test_nonleader_starts_election),
	        cmocka_unit_test(test_election_in_one_round),
	        cmocka_unit_test(test_follower_vote),
	        cmocka_unit_test(test_candidate_fallback),
	        cmocka_unit_test(test_election_timeout_randomized),
	        cmocka_unit_test(test_leader_start_replication),
	        cmocka_unit_test(test_leader_commit_entry),
	        cmocka_unit_test(test_leader_acknowledge_commit),
	        cmocka_unit_test(test_leader_commit_preceding_entries),
	        cmocka_unit_test(test_follower_commit_entry),
	        cmocka_unit_test(test_follower_check_append),
	        cmocka_unit_test(test_follower_append_entries),
	        cmocka_unit_test(test_leader_sync_follower_log),
	        cmocka_unit_test(test_vote_request),
	        cmocka_unit_test(test_voter_up_to_date_check),
	        cmocka_unit_test(test_leader_only_commits_current_term),
	        cmocka_unit_test(test_vote_survives_restart),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
