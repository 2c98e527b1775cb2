/*
 * test_logdb_crash.c - crash test for src/logdb (a check step, not a cmocka
 * test): a child process saves batches of many groups with sync and reports
 * each acknowledged batch on a pipe; the parent SIGKILLs it at random moments,
 * reopens the LogDB and checks it against a model: every acknowledged batch is
 * there whole, the one batch in flight is in each shard all or nothing, nothing
 * else is visible, and the next child goes on writing.
 *
 *   test_logdb_crash [rounds [seed]]        parent (at least 60 rounds, more
 *                                           until every journal was recycled)
 *   test_logdb_crash --child DIR SEED START  child (run by the parent)
 *
 * Everything a batch writes is a function of (seed, batch id), so the parent
 * can replay it: batch b picks groups; per group it may install a snapshot at
 * or just below the last index (which replaces the whole log, the entries after
 * the snapshot included, as a follower's Raft core discards its log) or
 * overwrite the last one or two entries (a conflict), appends 1..6 entries of
 * random size whose data names (b, group, index), and sets hard state
 * {term b, vote group, commit last}.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "logdb/logdb.h"

#define GROUPS        64
#define SHARDS        4
#define MAX_PER_GROUP 6
#define MAX_LEN       4096
#define MAX_BATCHES   (1 << 20)
/* what a child reports once it has opened the LogDB, before its first batch */
#define OPENED UINT64_MAX
/* small journal segments: switched, checkpointed and recycled in most rounds */
#define SEGMENT (64u << 10)

static uint64_t mix(uint64_t x)
{
	x += 0x9E3779B97F4A7C15ull;
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
	return x ^ (x >> 31);
}

static uint64_t h4(uint64_t seed, uint64_t a, uint64_t b, uint64_t c)
{
	return mix(mix(mix(seed ^ a) ^ b) ^ c);
}

/* The groups of batch b (distinct), their count returned. */
static unsigned batch_groups(uint64_t seed, uint64_t b, uint64_t *out)
{
	uint64_t perm[GROUPS];
	for (unsigned i = 0; i < GROUPS; i++)
		perm[i] = i + 1;
	unsigned n = 1 + (unsigned)(h4(seed, b, 0, 1) % 24);
	for (unsigned i = 0; i < n; i++) {
		unsigned j = i + (unsigned)(h4(seed, b, i, 2) % (GROUPS - i));
		uint64_t t = perm[i];
		perm[i] = perm[j];
		perm[j] = t;
		out[i] = perm[i];
	}
	return n;
}

/* Entries batch b appends to g: 1..6, or 0..6 with a snapshot (an install alone). */
static unsigned batch_count(uint64_t seed, uint64_t b, uint64_t g, uint64_t snap)
{
	uint64_t r = h4(seed, b, g, 3);
	return snap ? (unsigned)(r % (MAX_PER_GROUP + 1)) : 1 + (unsigned)(r % MAX_PER_GROUP);
}

/* Entries of the group's log that batch b replaces (before clamping to the log). */
static unsigned batch_overwrite(uint64_t seed, uint64_t b, uint64_t g)
{
	uint64_t r = h4(seed, b, g, 4);
	return (r % 8 == 0) ? 1 + (unsigned)((r >> 8) % 2) : 0;
}

/* Does batch b install a snapshot at group g's last index (a follower catching up)? */
static bool batch_snapshot(uint64_t seed, uint64_t b, uint64_t g)
{
	return h4(seed, b, g, 6) % 10 == 0;
}

/*
 * What batch b does to group g whose log is [first, last]: *snap gets the
 * snapshot index it installs (0 for none), and the return value is the index
 * of its first new entry.  Child and model both plan with this.
 */
static uint64_t plan(uint64_t seed, uint64_t b, uint64_t g, uint64_t first, uint64_t last,
                     uint64_t *snap)
{
	*snap = 0;
	if (batch_snapshot(seed, b, g) && last >= first) {
		/* at the last index or 1..3 below it: the log goes, new entries
		 * follow the snapshot */
		uint64_t back = h4(seed, b, g, 7) % 4;
		if (back > last - first)
			back = last - first;
		*snap = last - back;
		return *snap + 1;
	}
	uint64_t ow = batch_overwrite(seed, b, g);
	if (ow > last + 1 - first)
		ow = last + 1 - first; /* never below the first stored entry */
	return last - ow + 1;
}

/* Data of the entry batch b writes at index idx of group g; returns its length. */
static uint32_t entry_data(uint64_t seed, uint64_t b, uint64_t g, uint64_t idx, uint8_t *p)
{
	uint64_t r = h4(seed, b, g, idx * 16 + 5);
	uint32_t len = (r % 16 == 0) ? 1024 + (uint32_t)((r >> 8) % (MAX_LEN - 1024))
	                             : 24 + (uint32_t)((r >> 8) % 300);
	memcpy(p, &b, 8);
	memcpy(p + 8, &g, 8);
	memcpy(p + 16, &idx, 8);
	uint64_t x = r | 1;
	for (uint32_t i = 24; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (uint8_t)x;
	}
	return len;
}

/* ---- child ----------------------------------------------------------------- */

static int child(const char *dir, uint64_t seed, uint64_t start)
{
	struct logdb_config cfg = {.dir = dir, .shards = SHARDS, .journal_segment = SEGMENT};
	struct logdb *db;
	struct logdb_worker *w;
	char err[512];
	uint64_t last[GROUPS + 1] = {0}, first[GROUPS + 1];
	static struct logdb_snapshot snaps[GROUPS];
	static uint8_t data[GROUPS * MAX_PER_GROUP][MAX_LEN];
	struct raft_entry ents[GROUPS][MAX_PER_GROUP];
	struct logdb_update ups[GROUPS];
	uint64_t groups[GROUPS];

	signal(SIGPIPE, SIG_IGN);
	int rc = logdb_open(&cfg, &db, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "child: logdb_open: %s\n", err);
		return 2;
	}
	if (logdb_worker_create(db, &w))
		return 2;
	for (uint64_t g = 1; g <= GROUPS; g++) {
		struct logdb_raft_state rs;
		rc = logdb_read_state(db, g, 1, &rs);
		if (rc != LOGDB_OK && rc != LOGDB_ERR_NOT_FOUND)
			return 2;
		first[g] = rc == LOGDB_OK ? rs.first_index : 1;
		last[g] = rc == LOGDB_OK ? rs.first_index + rs.entry_count - 1 : 0;
	}
	uint64_t opened = OPENED;
	if (write(1, &opened, sizeof(opened)) != sizeof(opened))
		return 0;
	for (uint64_t b = start;; b++) {
		unsigned n = batch_groups(seed, b, groups), used = 0;
		for (unsigned i = 0; i < n; i++) {
			uint64_t g = groups[i];
			uint64_t si;
			uint64_t lo = plan(seed, b, g, first[g], last[g], &si);
			unsigned k = batch_count(seed, b, g, si);
			for (unsigned j = 0; j < k; j++) {
				uint8_t *p = data[used++];
				ents[i][j] = (struct raft_entry){
				        .term = b,
				        .index = lo + j,
				        .type = RAFT_ENTRY_NORMAL,
				        .len = entry_data(seed, b, g, lo + j, p),
				        .data = p};
			}
			last[g] = lo + k - 1;
			ups[i] = (struct logdb_update){
			        .group_id = g,
			        .node_id = 1,
			        .hard_state_changed = true,
			        .hard_state = {.term = b, .vote = g, .commit = last[g]},
			        .n_entries = k,
			        .entries = ents[i]};
			if (si) {
				memset(&snaps[i], 0, sizeof(snaps[i]));
				snaps[i].meta.index = si;
				snaps[i].meta.term = b;
				snaps[i].meta.membership.n_voters = 1;
				snaps[i].meta.membership.voters[0] = 1;
				snaps[i].checksum = g;
				ups[i].snapshot = &snaps[i];
				first[g] = si + 1;
			}
		}
		if ((rc = logdb_save(w, ups, n, true))) {
			fprintf(stderr, "child: save %" PRIu64 ": %s\n", b,
			        logdb_errmsg(db, err, sizeof(err)));
			return 2;
		}
		if (write(1, &b, sizeof(b)) != sizeof(b))
			return 0; /* the parent is gone */
	}
}

/* ---- parent ---------------------------------------------------------------- */

/*
 * The model: per group, the batch id of each index (1-based; entries below
 * first are gone), the last batch's term, and the latest snapshot (index and
 * the batch that installed it).
 */
struct model {
	uint64_t *log[GROUPS + 1];
	uint64_t len[GROUPS + 1], cap[GROUPS + 1];
	uint64_t first[GROUPS + 1];
	uint64_t term[GROUPS + 1];
	uint64_t snap[GROUPS + 1], snap_term[GROUPS + 1];
};

static void model_apply(struct model *m, uint64_t seed, uint64_t b, int only_shard)
{
	uint64_t groups[GROUPS];
	unsigned n = batch_groups(seed, b, groups);
	for (unsigned i = 0; i < n; i++) {
		uint64_t g = groups[i];
		if (only_shard >= 0 && (int)(g % SHARDS) != only_shard)
			continue;
		uint64_t si, first = m->first[g] ? m->first[g] : 1;
		m->len[g] = plan(seed, b, g, first, m->len[g], &si) - 1;
		if (si) {
			m->first[g] = si + 1;
			m->snap[g] = si;
			m->snap_term[g] = b;
		}
		unsigned k = batch_count(seed, b, g, si);
		if (m->len[g] + k > m->cap[g]) {
			m->cap[g] = (m->len[g] + k) * 2;
			m->log[g] = realloc(m->log[g], m->cap[g] * sizeof(uint64_t));
		}
		for (unsigned j = 0; j < k; j++)
			m->log[g][m->len[g]++] = b;
		m->term[g] = b;
	}
}

static void group_copy(struct model *dst, const struct model *src, uint64_t g)
{
	dst->len[g] = src->len[g];
	dst->first[g] = src->first[g];
	dst->term[g] = src->term[g];
	dst->snap[g] = src->snap[g];
	dst->snap_term[g] = src->snap_term[g];
	if (dst->cap[g] < src->cap[g]) {
		dst->cap[g] = src->cap[g];
		dst->log[g] = realloc(dst->log[g], dst->cap[g] * sizeof(uint64_t));
	}
	if (src->len[g])
		memcpy(dst->log[g], src->log[g], src->len[g] * sizeof(uint64_t));
}

static void model_copy(struct model *dst, const struct model *src)
{
	for (uint64_t g = 1; g <= GROUPS; g++)
		group_copy(dst, src, g);
}

/* Does group g on disk equal the model?  Reasons go to why. */
static bool group_matches(struct logdb *db, struct logdb_entries *ents, const struct model *m,
                          uint64_t seed, uint64_t g, char *why, size_t whylen)
{
	static uint8_t want[MAX_LEN];
	struct logdb_raft_state rs;
	char err[512];
	int rc = logdb_read_state(db, g, 1, &rs);
	if (rc == LOGDB_ERR_NOT_FOUND) {
		if (m->len[g] == 0)
			return true;
		snprintf(why, whylen, "group %" PRIu64 ": no state, model has %" PRIu64 " entries",
		         g, m->len[g]);
		return false;
	}
	if (rc) {
		snprintf(why, whylen, "group %" PRIu64 ": read_state: %s", g,
		         logdb_errmsg(db, err, sizeof(err)));
		return false;
	}
	uint64_t first = m->first[g] ? m->first[g] : 1;
	if (rs.first_index != first || rs.entry_count != m->len[g] + 1 - first ||
	    rs.hard_state.term != m->term[g] || rs.hard_state.commit != m->len[g] ||
	    rs.hard_state.vote != g) {
		snprintf(why, whylen,
		         "group %" PRIu64 ": disk has entries from %" PRIu64 " x %" PRIu64
		         ", term %" PRIu64 " commit %" PRIu64 "; model from %" PRIu64 " to %" PRIu64
		         ", term %" PRIu64,
		         g, rs.first_index, rs.entry_count, rs.hard_state.term,
		         rs.hard_state.commit, first, m->len[g], m->term[g]);
		return false;
	}
	struct logdb_snapshot snap;
	rc = logdb_get_snapshot(db, g, 1, &snap);
	if (m->snap[g] == 0 ? rc != LOGDB_ERR_NOT_FOUND
	                    : (rc != LOGDB_OK || snap.meta.index != m->snap[g] ||
	                       snap.meta.term != m->snap_term[g] || snap.checksum != g)) {
		snprintf(why, whylen,
		         "group %" PRIu64 ": expected snapshot %" PRIu64 " of batch %" PRIu64
		         ", found rc %d index %" PRIu64 " term %" PRIu64,
		         g, m->snap[g], m->snap_term[g], rc, rc ? 0 : snap.meta.index,
		         rc ? 0 : snap.meta.term);
		return false;
	}
	for (uint64_t lo = first; lo <= m->len[g];) {
		rc = logdb_iterate_entries(db, g, 1, lo, m->len[g] + 1, 1 << 20, ents);
		if (rc || ents->n == 0) {
			snprintf(why, whylen, "group %" PRIu64 ": iterate from %" PRIu64 ": %s", g,
			         lo, logdb_errmsg(db, err, sizeof(err)));
			return false;
		}
		for (uint32_t i = 0; i < ents->n; i++) {
			const struct raft_entry *e = &ents->ents[i];
			uint64_t b = m->log[g][e->index - 1];
			uint32_t len = entry_data(seed, b, g, e->index, want);
			if (e->index != lo + i || e->term != b || e->len != len ||
			    memcmp(e->data, want, len) != 0) {
				snprintf(why, whylen,
				         "group %" PRIu64 " index %" PRIu64
				         ": expected batch %" PRIu64
				         " (%u bytes), found term %" PRIu64 " (%u bytes)",
				         g, lo + i, b, len, e->term, e->len);
				return false;
			}
		}
		lo += ents->n;
	}
	return true;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/*
 * Run one child from batch start; kill it kill_ms after it opened the LogDB
 * (after it started if during_open: its recovery may be cut short too), or
 * once it acked min_acks batches, if min_acks > 0.  Returns the number of
 * batches acked (consecutive from start) or -1 when the child misbehaved.
 */
static long run_child(const char *self, const char *dir, uint64_t seed, uint64_t start,
                      uint64_t kill_ms, bool during_open, long min_acks)
{
	int fds[2];
	if (pipe(fds) != 0)
		return -1;
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		char s1[32], s2[32];
		snprintf(s1, sizeof(s1), "%" PRIu64, seed);
		snprintf(s2, sizeof(s2), "%" PRIu64, start);
		dup2(fds[1], 1);
		close(fds[0]);
		close(fds[1]);
		execl(self, self, "--child", dir, s1, s2, (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	long n = 0;
	/* (not during_open: the deadline is set once the child opened the LogDB) */
	uint64_t deadline = now_ms() + (during_open ? kill_ms : 30000);
	bool killed = false, bad = false;
	uint8_t buf[8];
	size_t have = 0;
	for (;;) {
		if (!killed) {
			uint64_t t = now_ms();
			if ((min_acks == 0 && t >= deadline) || (min_acks > 0 && n >= min_acks) ||
			    t >= deadline + 20000) {
				kill(pid, SIGKILL);
				killed = true;
			}
		}
		struct pollfd p = {.fd = fds[0], .events = POLLIN};
		int wait = killed ? 1000 : (int)(deadline > now_ms() ? deadline - now_ms() : 1);
		if (min_acks > 0 && !killed)
			wait = 100;
		if (poll(&p, 1, wait) < 0 && errno != EINTR)
			break;
		if (!(p.revents & (POLLIN | POLLHUP)))
			continue;
		ssize_t r = read(fds[0], buf + have, sizeof(buf) - have);
		if (r <= 0)
			break; /* EOF: the child is gone */
		have += (size_t)r;
		if (have < sizeof(buf))
			continue;
		have = 0;
		uint64_t b;
		memcpy(&b, buf, 8);
		if (b == OPENED && n == 0) {
			/* A loaded machine may take longer to open it than to kill it. */
			if (!during_open && !killed)
				deadline = now_ms() + kill_ms;
		} else if (b != start + (uint64_t)n || b >= MAX_BATCHES) {
			fprintf(stderr, "child acked batch %" PRIu64 ", expected %" PRIu64 "\n", b,
			        start + n);
			bad = true;
		} else {
			n++;
		}
	}
	close(fds[0]);
	int status;
	waitpid(pid, &status, 0);
	if (!killed && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
		fprintf(stderr, "child died on its own (status 0x%x)\n", status);
		bad = true;
	}
	return bad ? -1 : n;
}

/* Reopen, fold the round's batches into the model, compare every group. */
static bool verify(const char *dir, uint64_t seed, struct model *m, struct model *tmp,
                   uint64_t start, long acked, char *why, size_t whylen)
{
	struct logdb_config cfg = {.dir = dir, .shards = SHARDS, .journal_segment = SEGMENT};
	struct logdb *db;
	struct logdb_entries ents = {0};
	char err[512];
	bool ok = true;
	if (logdb_open(&cfg, &db, err, sizeof(err))) {
		snprintf(why, whylen, "reopen: %s", err);
		return false;
	}
	for (long i = 0; i < acked; i++)
		model_apply(m, seed, start + (uint64_t)i, -1);
	/* The batch in flight: in each shard, all of it or none of it. */
	uint64_t inflight = start + (uint64_t)acked;
	for (int s = 0; s < SHARDS && ok; s++) {
		model_copy(tmp, m);
		model_apply(tmp, seed, inflight, s);
		bool without = true, with = true;
		for (uint64_t g = 1; g <= GROUPS; g++) {
			if ((int)(g % SHARDS) != s)
				continue;
			char w1[256] = "", w2[256] = "";
			if (without && !group_matches(db, &ents, m, seed, g, w1, sizeof(w1)))
				without = false;
			if (with && !group_matches(db, &ents, tmp, seed, g, w2, sizeof(w2)))
				with = false;
			if (!with && !without) {
				snprintf(why, whylen,
				         "shard %d matches neither the acknowledged batches (%s) "
				         "nor them plus in-flight batch %" PRIu64 " (%s)",
				         s, w1, inflight, w2);
				ok = false;
				break;
			}
		}
		if (ok && with && !without)
			for (uint64_t g = s ? (uint64_t)s : SHARDS; g <= GROUPS; g += SHARDS)
				group_copy(m, tmp, g);
	}
	logdb_entries_free(db, &ents);
	logdb_close(db);
	return ok;
}

/* Shard s's journal checkpoint LSN (0 if none yet). */
static unsigned long long checkpoint_lsn(const char *dir, int s)
{
	char path[256];
	unsigned long long lsn = 0;
	snprintf(path, sizeof(path), "%s/journal-%d/CHECKPOINT", dir, s);
	FILE *f = fopen(path, "r");
	if (f != NULL) {
		if (fscanf(f, "dragonraft-journal %*u lsn=%llu", &lsn) != 1)
			lsn = 0;
		fclose(f);
	}
	return lsn;
}

/* Every shard's journal went round its segments several times (recycling,
 * checkpoints): what the test is for. */
#define RECYCLED_LSN (16ull * SEGMENT)
static bool journals_recycled(const char *dir)
{
	for (int s = 0; s < SHARDS; s++)
		if (checkpoint_lsn(dir, s) < RECYCLED_LSN)
			return false;
	return true;
}

int main(int argc, char **argv)
{
	if (argc == 5 && strcmp(argv[1], "--child") == 0)
		return child(argv[2], strtoull(argv[3], NULL, 10), strtoull(argv[4], NULL, 10));

	int rounds = argc > 1 ? atoi(argv[1]) : 60;
	uint64_t seed = argc > 2 ? strtoull(argv[2], NULL, 10)
	                         : ((uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20));
	char dir[] = "/tmp/test_logdb_crash.XXXXXX";
	char self[4096], why[1024];
	ssize_t sl = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (sl <= 0 || mkdtemp(dir) == NULL) {
		perror("setup");
		return 1;
	}
	self[sl] = '\0';
	printf("logdb crash test: seed %" PRIu64 ", %d rounds, dir %s\n", seed, rounds, dir);
	fflush(stdout);

	static struct model m, tmp;
	uint64_t start = 1, rng = seed;
	int passed = 0, failed = 0;
	long total = 0;
	/* At least rounds kills; on a loaded machine a child writes less before
	 * its kill, so more rounds follow until every journal was recycled (at
	 * most 10 times as many). */
	int max_rounds = rounds * 10, r;
	for (r = 0;; r++) {
		/* the last child must go on writing */
		bool final = r >= max_rounds || (r >= rounds && journals_recycled(dir));
		rng = mix(rng);
		uint64_t kill_ms = 5 + rng % 150;
		bool during_open = (rng >> 32) % 4 == 0;
		long n = run_child(self, dir, seed, start, kill_ms, during_open, final ? 5 : 0);
		bool ok = n >= 0;
		if (!ok)
			snprintf(why, sizeof(why), "the child misbehaved");
		if (ok && final && n < 5) {
			snprintf(why, sizeof(why), "writing did not go on: %ld batches acked", n);
			ok = false;
		}
		if (ok)
			ok = verify(dir, seed, &m, &tmp, start, n, why, sizeof(why));
		if (ok) {
			passed++;
		} else {
			failed++;
			printf("round %d (kill after %" PRIu64 " ms, batches %" PRIu64
			       "..): FAIL: %s\n",
			       r, kill_ms, start, why);
			break; /* the model no longer describes the disk */
		}
		total += n;
		start += (uint64_t)(n > 0 ? n : 0) + 1; /* skip the id of the batch in flight */
		if (final)
			break;
	}
	uint64_t entries = 0;
	for (int g = 1; g <= GROUPS; g++) {
		entries += m.len[g] + 1 - (m.first[g] ? m.first[g] : 1);
		free(m.log[g]);
		free(tmp.log[g]);
	}
	printf("%ld batches acknowledged over %d kills, %" PRIu64 " entries in the final log\n",
	       total, r, entries);
	for (int s = 0; s < SHARDS && failed == 0; s++) {
		unsigned long long lsn = checkpoint_lsn(dir, s);
		if (lsn < RECYCLED_LSN) {
			printf("FAIL: shard %d's journal ended at LSN %llu after %d rounds, not "
			       "recycled\n",
			       s, lsn, r);
			failed++;
		} else {
			printf("shard %d: journal checkpoint at %.1f MiB\n", s, lsn / 1048576.0);
		}
	}
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
