/*
 * logdb_test_util.h - helpers the LogDB's unit tests share (test_logdb.c,
 * test_logdb_journal.c).  Include after <cmocka.h> and logdb/logdb.h.
 */
#ifndef DRAGONRAFT_LOGDB_TEST_UTIL_H
#define DRAGONRAFT_LOGDB_TEST_UTIL_H

#include <dirent.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The segment files of journal directory jdir (start LSNs, ascending); their count. */
static inline int journal_segments(const char *jdir, uint64_t *starts, int max)
{
	struct dirent *d;
	int n = 0;
	DIR *dp = opendir(jdir);
	assert_non_null(dp);
	while ((d = readdir(dp)) != NULL)
		if (strlen(d->d_name) == 20 && strcmp(d->d_name + 16, ".jnl") == 0) {
			assert_true(n < max);
			starts[n++] = strtoull(d->d_name, NULL, 16);
		}
	closedir(dp);
	for (int i = 1; i < n; i++)
		for (int k = i; k > 0 && starts[k - 1] > starts[k]; k--) {
			uint64_t t = starts[k];
			starts[k] = starts[k - 1];
			starts[k - 1] = t;
		}
	return n;
}

/* Opening cfg fails with LOGDB_ERR_CORRUPT and a message holding a and b. */
static inline void expect_open_corrupt(const struct logdb_config *cfg, const char *a, const char *b)
{
	struct logdb *db;
	char err[512] = "";
	int rc = logdb_open(cfg, &db, err, sizeof(err));
	if (rc == LOGDB_OK)
		logdb_close(db);
	if (rc != LOGDB_ERR_CORRUPT || strstr(err, a) == NULL || strstr(err, b) == NULL)
		fail_msg("expected LOGDB_ERR_CORRUPT naming \"%s\" and \"%s\", got %s: %s", a, b,
		         logdb_strerror(rc), err);
}

#endif
