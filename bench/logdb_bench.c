/*
 * logdb_bench.c - LogDB throughput and latency with synced writes.
 *
 *   logdb_bench [dir]     (default: a temporary directory under /tmp)
 *
 * 1. One synced small write (one group, one 16-byte entry plus hard state)
 *    beside the disk's limit, a write(192 bytes) + fdatasync appended to a file
 *    in the same directory (about the WAL record of one small save); the two
 *    alternate, so both meet the same disk (it is shared with other work).
 *    Also the process CPU time (all threads) spent during the saves, per save.
 * 2. Throughput: saves of 1, 16 and 256 groups with 16 entries each, 16-byte
 *    and 1-KiB entries, every save synced; entries/s and MB/s of payload.
 * The last line states the headline figures.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "logdb/logdb.h"

#define RAW_BYTES  192
#define LAT_ROUNDS 300
#define PER_GROUP  16

static double clock_us(clockid_t clk)
{
	struct timespec ts;
	clock_gettime(clk, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static double now_us(void)
{
	return clock_us(CLOCK_MONOTONIC);
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double pct(double *v, int n, double p)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_d);
	int i = (int)(p * (n - 1) + 0.5);
	return v[i];
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void die(const char *what, struct logdb *db, int rc)
{
	char err[512] = "";
	if (db)
		logdb_errmsg(db, err, sizeof(err));
	fprintf(stderr, "logdb_bench: %s: %s: %s\n", what, logdb_strerror(rc), err);
	exit(1);
}

static struct logdb *open_db(const char *dir, const char *name)
{
	char path[4096], err[512];
	struct logdb *db;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	struct logdb_config cfg = {.dir = path};
	int rc = logdb_open(&cfg, &db, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "logdb_bench: open %s: %s\n", path, err);
		exit(1);
	}
	return db;
}

/*
 * One synced save of one 16-byte entry with its hard state, interleaved with
 * a raw write(RAW_BYTES) + fdatasync appended to a file in the same directory,
 * so that both see the same disk at the same moments (the disk is shared).
 * Fills p50 and p99 of each.
 */
static void small_write(const char *dir, double *w50, double *w99, double *r50, double *r99,
                        double *cpu)
{
	static double lat[LAT_ROUNDS], raw[LAT_ROUNDS];
	uint8_t data[16], buf[RAW_BYTES];
	char path[4096 + 16];
	struct logdb *db = open_db(dir, "lat");
	struct logdb_worker *w;
	int rc;
	memset(data, 0x5a, sizeof(data));
	memset(buf, 0xa5, sizeof(buf));
	snprintf(path, sizeof(path), "%s/raw.dat", dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0) {
		perror(path);
		exit(1);
	}
	if ((rc = logdb_worker_create(db, &w)))
		die("worker", db, rc);
	*cpu = 0;
	for (int i = 0; i < LAT_ROUNDS + 20; i++) {
		struct raft_entry e = {
		        .term = 1, .index = (uint64_t)i + 1, .len = 16, .data = data};
		struct logdb_update u = {
		        .group_id = 1,
		        .node_id = 1,
		        .hard_state_changed = true,
		        .hard_state = {.term = 1, .vote = 1, .commit = (uint64_t)i},
		        .n_entries = 1,
		        .entries = &e};
		double t = now_us();
		if (write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf) || fdatasync(fd) != 0) {
			perror("raw write");
			exit(1);
		}
		double t2 = now_us(), c = clock_us(CLOCK_PROCESS_CPUTIME_ID);
		if ((rc = logdb_save(w, &u, 1, true)))
			die("save", db, rc);
		if (i >= 20) { /* warm-up excluded */
			raw[i - 20] = t2 - t;
			lat[i - 20] = now_us() - t2;
			*cpu += clock_us(CLOCK_PROCESS_CPUTIME_ID) - c;
		}
	}
	close(fd);
	unlink(path);
	logdb_worker_destroy(w);
	logdb_close(db);
	*w50 = pct(lat, LAT_ROUNDS, 0.5);
	*w99 = pct(lat, LAT_ROUNDS, 0.99);
	*r50 = pct(raw, LAT_ROUNDS, 0.5);
	*r99 = pct(raw, LAT_ROUNDS, 0.99);
	*cpu /= LAT_ROUNDS;
}

/* Saves of `groups` groups x PER_GROUP entries of `size` bytes for about secs seconds. */
static double throughput(const char *dir, unsigned groups, uint32_t size, double secs, double *mbs,
                         double *save_ms)
{
	char name[64];
	snprintf(name, sizeof(name), "tp-%u-%u", groups, size);
	struct logdb *db = open_db(dir, name);
	struct logdb_worker *w;
	int rc;
	if ((rc = logdb_worker_create(db, &w)))
		die("worker", db, rc);
	uint8_t *data = malloc(size);
	memset(data, 0x3c, size);
	struct raft_entry *ents = calloc((size_t)groups * PER_GROUP, sizeof(*ents));
	struct logdb_update *ups = calloc(groups, sizeof(*ups));
	uint64_t next = 1, n_entries = 0, saves = 0;
	double t0 = now_us(), t;
	do {
		for (unsigned g = 0; g < groups; g++) {
			for (unsigned k = 0; k < PER_GROUP; k++)
				ents[g * PER_GROUP + k] = (struct raft_entry){
				        .term = 1, .index = next + k, .len = size, .data = data};
			ups[g] = (struct logdb_update){
			        .group_id = g + 1,
			        .node_id = 1,
			        .hard_state_changed = true,
			        .hard_state = {.term = 1, .vote = 1, .commit = next},
			        .n_entries = PER_GROUP,
			        .entries = &ents[g * PER_GROUP]};
		}
		if ((rc = logdb_save(w, ups, groups, true)))
			die("save", db, rc);
		next += PER_GROUP;
		n_entries += (uint64_t)groups * PER_GROUP;
		saves++;
		t = now_us();
	} while (t - t0 < secs * 1e6);
	double s = (t - t0) / 1e6;
	*mbs = (double)n_entries * size / s / 1e6;
	*save_ms = (t - t0) / 1e3 / (double)saves;
	logdb_worker_destroy(w);
	logdb_close(db);
	free(data);
	free(ents);
	free(ups);
	return (double)n_entries / s;
}

int main(int argc, char **argv)
{
	char dir[4096];
	bool own = argc < 2;
	if (own) {
		snprintf(dir, sizeof(dir), "/tmp/logdb_bench.XXXXXX");
		if (mkdtemp(dir) == NULL) {
			perror("mkdtemp");
			return 1;
		}
	} else {
		snprintf(dir, sizeof(dir), "%s", argv[1]);
	}
	double raw50, raw99, w50, w99, cpu;
	printf("logdb_bench in %s (%d shards, synced writes)\n", dir, LOGDB_DEFAULT_SHARDS);
	small_write(dir, &w50, &w99, &raw50, &raw99, &cpu);
	printf("raw write(%d B)+fdatasync:                              p50 %5.0f us, p99 %5.0f "
	       "us\n",
	       RAW_BYTES, raw50, raw99);
	printf("logdb synced save (1 group, 1 x 16 B entry + hard state): p50 %5.0f us, p99 %5.0f "
	       "us"
	       " (%.2fx raw p50), CPU %.0f us per save\n",
	       w50, w99, w50 / raw50, cpu);

	static const unsigned groups[] = {1, 16, 256};
	static const uint32_t sizes[] = {16, 1024};
	double eps_256_16 = 0;
	for (size_t si = 0; si < 2; si++)
		for (size_t gi = 0; gi < 3; gi++) {
			double mbs, ms;
			double eps = throughput(dir, groups[gi], sizes[si], 1.5, &mbs, &ms);
			printf("%3u groups x %2d entries x %4u B per save: %9.0f entries/s %7.1f "
			       "MB/s"
			       " (%.2f ms per save)\n",
			       groups[gi], PER_GROUP, sizes[si], eps, mbs, ms);
			if (groups[gi] == 256 && sizes[si] == 16)
				eps_256_16 = eps;
		}
	if (own)
		nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	printf("logdb_bench: sync small write p50 %.0f us (raw fdatasync %.0f us, ratio %.2f), "
	       "CPU %.0f us; 256 groups x 16B: %.0f entries/s\n",
	       w50, raw50, w50 / raw50, cpu, eps_256_16);
	return 0;
}
