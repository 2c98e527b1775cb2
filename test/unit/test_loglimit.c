/*
 * test_loglimit.c - engine_uv's rate limit of repeated log lines
 * (src/engine/loglimit.c): once a window per key, what was left out counted
 * and said with the next line; one line's keys never keep another line
 * silent (review 73: more than 64 senders of stopped groups, whose dropped
 * messages take a key each, kept a failed snapshot stream out of the log).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "engine/loglimit.h"

#define WINDOW 60000

static bool due(struct loglimit *l, enum loglimit_line line, uint64_t now, uint64_t group,
                uint64_t node, int kind, uint64_t *left_out, uint64_t *others)
{
	*left_out = *others = 12345; /* (set only when due) */
	return loglimit_due(l, line, now, group, node, kind, left_out, others);
}

/* One key: once a window, with the count of what it left out. */
static void test_once_a_window(void **state)
{
	struct loglimit l;
	uint64_t left_out, others;

	(void)state;
	loglimit_init(&l, WINDOW);
	assert_true(due(&l, LOGLIMIT_STREAM_FAILED, 0, 7, 2, 3, &left_out, &others));
	assert_int_equal(left_out, 0);
	assert_int_equal(others, 0);
	for (uint64_t t = 1; t < WINDOW; t += 1000)
		assert_false(due(&l, LOGLIMIT_STREAM_FAILED, t, 7, 2, 3, &left_out, &others));
	/* another cause of the same group and member is a key of its own */
	assert_true(due(&l, LOGLIMIT_STREAM_FAILED, 10, 7, 2, 4, &left_out, &others));
	assert_true(due(&l, LOGLIMIT_STREAM_FAILED, WINDOW, 7, 2, 3, &left_out, &others));
	assert_int_equal(left_out, 60);
	assert_int_equal(others, 0);
}

/*
 * More keys of one line than slots within a window: the ones without a slot
 * are counted and said with the line's next line; the other line's keys
 * still log at once, and do not take that count for theirs.
 */
static void test_lines_apart(void **state)
{
	struct loglimit l;
	uint64_t left_out, others;

	(void)state;
	loglimit_init(&l, WINDOW);
	/* 100 senders of stopped groups, their heartbeats every 100 ms for a window
	 * and a half: 64 of them logged once a window, the rest left out. */
	for (uint64_t t = 0; t < WINDOW * 3 / 2; t += 100) {
		for (uint64_t g = 1; g <= 100; g++)
			(void)due(&l, LOGLIMIT_NO_GROUP, t, g, 9, 0, &left_out, &others);
		/* a stream that fails every 5 s meanwhile: logged at once, then once a
		 * window */
		if (t % 5000 == 0) {
			bool logged =
			        due(&l, LOGLIMIT_STREAM_FAILED, t, 500, 3, 1, &left_out, &others);

			if (t == 0 || t == WINDOW) {
				if (!logged)
					fail_msg("the failed stream was not logged at %llu ms: the "
					         "dropped messages' keys took its room",
					         (unsigned long long)t);
				assert_int_equal(left_out, t == 0 ? 0 : WINDOW / 5000 - 1);
				assert_int_equal(others, 0);
			} else
				assert_false(logged);
		}
	}
	/* The dropped messages' next line says how many of theirs were left out. */
	{
		uint64_t t = WINDOW * 3, g;

		for (g = 1; g <= 100 && !due(&l, LOGLIMIT_NO_GROUP, t, g, 9, 0, &left_out, &others);
		     g++)
			;
		assert_true(g <= 100);
		assert_true(others > 0);
		assert_false(due(&l, LOGLIMIT_NO_GROUP, t, g, 9, 0, &left_out, &others));
		assert_true(due(&l, LOGLIMIT_NO_GROUP, t, g + 1, 9, 0, &left_out, &others));
		assert_int_equal(others, 0); /* (said once) */
	}
}

/* A full line: a key without a slot waits until the oldest slot's window
 * ended, and the count of lines left out is exact. */
static void test_full_count(void **state)
{
	struct loglimit l;
	uint64_t left_out, others;

	(void)state;
	loglimit_init(&l, WINDOW);
	for (uint64_t g = 1; g <= LOGLIMIT_SLOTS; g++)
		assert_true(due(&l, LOGLIMIT_NO_GROUP, g, g, 1, 0, &left_out, &others));
	for (int i = 0; i < 5; i++)
		assert_false(due(&l, LOGLIMIT_NO_GROUP, 1000, 999, 1, 0, &left_out, &others));
	assert_false(due(&l, LOGLIMIT_NO_GROUP, WINDOW, 999, 1, 0, &left_out, &others));
	/* slot of group 1 (logged at 1) is free from 1 + WINDOW on */
	assert_true(due(&l, LOGLIMIT_NO_GROUP, WINDOW + 1, 999, 1, 0, &left_out, &others));
	assert_int_equal(left_out, 0);
	assert_int_equal(others, 6);
}

/*
 * A key's slot taken by another key after its window: what the key left out
 * since its last line is said with the line's next one (the taker's), not
 * lost.  Before, its count went with the slot: a key logged once, then left
 * out 3 times, then quiet while other keys came, was never said again.
 */
static void test_taken_slot_counted(void **state)
{
	struct loglimit l;
	uint64_t left_out, others;

	(void)state;
	loglimit_init(&l, WINDOW);
	for (uint64_t g = 1; g <= LOGLIMIT_SLOTS; g++)
		assert_true(due(&l, LOGLIMIT_NO_GROUP, 0, g, 1, 0, &left_out, &others));
	for (int i = 0; i < 3; i++)
		assert_false(due(&l, LOGLIMIT_NO_GROUP, 10, 1, 1, 0, &left_out, &others));
	/* keys 2.. again after the window: their own slots */
	for (uint64_t g = 2; g <= LOGLIMIT_SLOTS; g++) {
		assert_true(due(&l, LOGLIMIT_NO_GROUP, WINDOW, g, 1, 0, &left_out, &others));
		assert_int_equal(others, 0);
	}
	/* a new key takes group 1's slot, the oldest: its 3 are said */
	assert_true(due(&l, LOGLIMIT_NO_GROUP, WINDOW + 5, 999, 1, 0, &left_out, &others));
	assert_int_equal(left_out, 0);
	assert_int_equal(others, 3);
	/* and once */
	assert_true(due(&l, LOGLIMIT_NO_GROUP, 2 * WINDOW + 5, 1, 1, 0, &left_out, &others));
	assert_int_equal(left_out, 0);
	assert_int_equal(others, 0);
}

/* A clock that goes back (the caller's now_ms below a key's last line) makes
 * the key due, never silent for good. */
static void test_clock_back(void **state)
{
	struct loglimit l;
	uint64_t left_out, others;

	(void)state;
	loglimit_init(&l, WINDOW);
	assert_true(due(&l, LOGLIMIT_STREAM_FAILED, 5 * WINDOW, 1, 2, 3, &left_out, &others));
	assert_false(due(&l, LOGLIMIT_STREAM_FAILED, 5 * WINDOW + 1, 1, 2, 3, &left_out, &others));
	assert_true(due(&l, LOGLIMIT_STREAM_FAILED, 1000, 1, 2, 3, &left_out, &others));
	assert_int_equal(left_out, 1);
	assert_false(due(&l, LOGLIMIT_STREAM_FAILED, 1001, 1, 2, 3, &left_out, &others));
	assert_true(due(&l, LOGLIMIT_STREAM_FAILED, 1000 + WINDOW, 1, 2, 3, &left_out, &others));
	assert_int_equal(left_out, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_once_a_window),
	        cmocka_unit_test(test_lines_apart),
	        cmocka_unit_test(test_full_count),
	        cmocka_unit_test(test_taken_slot_counted),
	        cmocka_unit_test(test_clock_back),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
