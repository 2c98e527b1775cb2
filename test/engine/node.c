/*
 * node.c - dr-node: one engine in its own process, for the multi-process
 * tests (test/engine/procs_test.c) and the loopback benchmark
 * (bench/engine_bench.c).  engine_uv drives the engine over a libuv loop and
 * the TCP transport; the log lives in a LogDB under DIR/logdb; each group's
 * state machine is a durable file_sm at DIR/sm-GROUP (or, with --mem, the
 * in-memory kv_sm, for benchmarks).  Groups stored in the LogDB restart at
 * once.  With --async-snapshots the file_sm's snapshot saves and recoveries
 * run on libuv's thread pool and report back to the engine (as the
 * PostgreSQL state machine's exports and loads will).
 *
 * Usage: dr-node --id N --dir DIR --listen 127.0.0.1:PORT [--mem] [--async-snapshots]
 *                [--rtt MS] [--election TICKS] [--heartbeat TICKS] [--snapshot-entries N]
 *                [--overhead N] [--shards N] [--quiesce TICKS (0: never)]
 *
 * Control protocol: one command per line on stdin, one reply line per
 * command on stdout, both starting with the caller's tag (a word).  Replies
 * to asynchronous commands come when the operation completes, so many may be
 * outstanding; rc is an engine_rc (0 = OK).  On start the node prints
 * "ready PORT".  End of stdin ends the process (as a crash would: everything
 * acknowledged is already durable).
 *
 *   T start G ID=ADDR ...     new group with these members   -> T rc
 *   T join G ID=ADDR ...      join a group (known members)   -> T rc
 *   T propose G KEY [PAD]     16 bytes: KEY, ~KEY (u64 LE), then PAD zero bytes
 *                                                            -> T rc index leader   (async)
 *   T add G ID ADDR           add a voter                    -> T rc index leader   (async)
 *   T remove G ID             remove a member                -> T rc index leader   (async)
 *   T transfer G ID           hand leadership to ID          -> T rc index leader   (async)
 *   T snapshot G              snapshot + compaction now      -> T rc index leader   (async)
 *   T status G                -> T rc role term leader commit applied last first snap
 *                                 writable count digest recoveries voters(a,b,c) state
 *                                 quiescent(0/1)
 *   T engine                  -> T failed(0/1) engine_errmsg
 *   T groups                  -> T 0 running with-a-leader led-here quiescent
 *   T bench SECS OUT          propose 16-byte entries with OUT in flight on every
 *                             group this node leads, for SECS -> T 0 committed failed
 *                             then "b:count" latency buckets (see BENCH_BUCKETS)
 */
#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "engine/engine_logdb.h"
#include "engine/engine_uv.h"
#include "file_sm.h"
#include "kv_sm.h"
#include "logdb/logdb.h"
#include "node_proto.h"
#include "raft/raft.h"

#define LINE_MAX_BYTES 4096
#define MAX_PAD        (1u << 20)

struct gsm {
	uint64_t gid;
	struct file_sm *f;
	struct kv_sm *k;
	unsigned deficit;           /* bench proposals refused as busy, to issue again */
	struct engine_sm_ops inner; /* file_sm's own ops (--async-snapshots wraps them) */
};

/* A snapshot save or recovery on libuv's thread pool (--async-snapshots). */
struct snap_job {
	uv_work_t w;
	struct gsm *s;
	bool save;
	int rc;
	raft_index index;
	struct file_sm_save sv;
	struct file_sm_recovery rv;
	char path[ENGINE_PATH_MAX + 128];
	char sm_path[ENGINE_PATH_MAX];
};

/* An asynchronous command waiting for its outcome. */
struct op {
	char tag[32];
	uint64_t t0_ns;
	uint64_t gid;
	bool bench;
};

static struct {
	uv_loop_t loop;
	uv_pipe_t in;
	uv_timer_t bench_timer;
	uv_timer_t refill_timer;
	struct logdb *db;
	struct engine_logdb *el;
	struct engine_uv *u;
	struct engine *e;
	const char *dir;
	bool mem;
	bool async_snapshots; /* file_sm snapshots on the thread pool */
	unsigned shards;      /* LogDB shards (fixed once the LogDB exists) */
	raft_id id;
	struct gsm **g; /* every group's state machine (no cap on groups) */
	size_t ng, cap;
	struct gsm **idx; /* open addressing by group id */
	size_t idx_cap;
	char line[LINE_MAX_BYTES];
	size_t line_len;
	/* bench */
	bool bench_on;
	char bench_tag[32];
	uint64_t bench_end_ns, bench_key;
	unsigned bench_out;
	uint64_t bench_ok, bench_failed, bench_inflight, bench_busy;
	uint64_t hist[NODE_BENCH_BUCKETS];
} N;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
	fprintf(stderr, "dr-node %llu: %s\n", (unsigned long long)N.id, what);
	_exit(2);
}

/* Write one reply line (blocking: the driver always reads). */
static void reply(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void reply(const char *fmt, ...)
{
	char buf[8192];
	va_list ap;
	int n;
	size_t off = 0;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(buf) - 2)
		n = (int)sizeof(buf) - 2;
	buf[n++] = '\n';
	while (off < (size_t)n) {
		ssize_t w = write(1, buf + off, (size_t)n - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			_exit(0); /* the driver went away */
		off += (size_t)w;
	}
}

static size_t gslot(uint64_t gid, size_t cap)
{
	gid *= 0x9E3779B97F4A7C15ull;
	return (size_t)(gid ^ (gid >> 29)) & (cap - 1);
}

static struct gsm *find_sm(uint64_t gid)
{
	if (N.idx_cap == 0)
		return NULL;
	for (size_t i = gslot(gid, N.idx_cap); N.idx[i] != NULL; i = (i + 1) & (N.idx_cap - 1))
		if (N.idx[i]->gid == gid)
			return N.idx[i];
	return NULL;
}

/* Add s to the list and the index (growing both). */
static void add_sm(struct gsm *s)
{
	if (N.ng == N.cap) {
		N.cap = N.cap ? 2 * N.cap : 64;
		N.g = realloc(N.g, N.cap * sizeof(*N.g));
		if (N.g == NULL)
			die("out of memory");
	}
	N.g[N.ng++] = s;
	if (2 * N.ng > N.idx_cap) {
		free(N.idx);
		N.idx_cap = N.idx_cap ? 2 * N.idx_cap : 128;
		N.idx = calloc(N.idx_cap, sizeof(*N.idx));
		if (N.idx == NULL)
			die("out of memory");
		for (size_t k = 0; k < N.ng; k++) {
			size_t i = gslot(N.g[k]->gid, N.idx_cap);

			while (N.idx[i] != NULL)
				i = (i + 1) & (N.idx_cap - 1);
			N.idx[i] = N.g[k];
		}
		return;
	}
	size_t i = gslot(s->gid, N.idx_cap);

	while (N.idx[i] != NULL)
		i = (i + 1) & (N.idx_cap - 1);
	N.idx[i] = s;
}

static void job_work(uv_work_t *w)
{
	struct snap_job *j = w->data;

	if (j->save)
		j->rc = file_sm_save_run(&j->sv, j->path);
	else
		j->rc = file_sm_recover_stage(j->sm_path, j->path, j->index, &j->rv);
}

static void job_after(uv_work_t *w, int status)
{
	struct snap_job *j = w->data;
	int rc = status == 0 ? j->rc : ENGINE_ERR_SNAPSHOT;

	if (j->save) {
		engine_snapshot_saved(N.e, j->s->gid, rc, j->index);
	} else {
		if (rc == ENGINE_OK)
			rc = file_sm_recover_finish(j->s->f, &j->rv);
		engine_snapshot_recovered(N.e, j->s->gid, rc);
	}
	free(j);
}

static int queue_job(struct snap_job *j)
{
	j->w.data = j;
	if (uv_queue_work(&N.loop, &j->w, job_work, job_after) != 0) {
		if (j->save)
			close(j->sv.fd);
		free(j);
		return ENGINE_ERR_SNAPSHOT;
	}
	return ENGINE_IN_PROGRESS;
}

static int async_apply(void *ctx, const struct engine_sm_entry *ents, uint32_t n)
{
	struct gsm *s = ctx;

	return s->inner.apply(s->inner.ctx, ents, n);
}

static raft_index async_durable(void *ctx)
{
	struct gsm *s = ctx;

	return s->inner.durable_applied(s->inner.ctx);
}

static int async_save(void *ctx, const char *path, raft_index *index)
{
	struct gsm *s = ctx;
	struct snap_job *j = calloc(1, sizeof(*j));
	int rc;

	(void)index; /* reported by engine_snapshot_saved() */
	if (j == NULL || strlen(path) >= sizeof(j->path)) {
		free(j);
		return ENGINE_ERR_SNAPSHOT;
	}
	rc = file_sm_save_begin(s->f, &j->sv);
	if (rc != ENGINE_OK) {
		free(j);
		return rc;
	}
	j->s = s;
	j->save = true;
	j->index = j->sv.index;
	snprintf(j->path, sizeof(j->path), "%s", path);
	return queue_job(j);
}

static int async_recover(void *ctx, const char *path, raft_index index)
{
	struct gsm *s = ctx;
	struct snap_job *j = calloc(1, sizeof(*j));

	if (j == NULL || strlen(path) >= sizeof(j->path)) {
		free(j);
		return ENGINE_ERR_SNAPSHOT;
	}
	j->s = s;
	j->index = index;
	snprintf(j->path, sizeof(j->path), "%s", path);
	snprintf(j->sm_path, sizeof(j->sm_path), "%s", file_sm_path(s->f));
	return queue_job(j);
}

/* A state machine for gid (opened from its file unless --mem). */
static int open_sm(uint64_t gid, struct engine_sm_ops *ops)
{
	struct gsm *s = find_sm(gid);
	char path[ENGINE_PATH_MAX];
	int rc;

	if (s == NULL) {
		s = calloc(1, sizeof(*s));
		if (s == NULL)
			return ENGINE_ERR_NOMEM;
		s->gid = gid;
		if (N.mem) {
			rc = kv_sm_create(0, &s->k);
		} else {
			snprintf(path, sizeof(path), "%s/sm-%" PRIu64, N.dir, gid);
			rc = file_sm_open(path, &s->f);
		}
		if (rc != ENGINE_OK) {
			free(s);
			return rc;
		}
		add_sm(s);
	}
	if (N.mem) {
		kv_sm_ops(s->k, ops);
	} else if (N.async_snapshots) {
		file_sm_ops(s->f, &s->inner);
		memset(ops, 0, sizeof(*ops));
		ops->ctx = s;
		ops->apply = async_apply;
		ops->durable_applied = async_durable;
		ops->save_snapshot = async_save;
		ops->recover = async_recover;
	} else {
		file_sm_ops(s->f, ops);
	}
	return ENGINE_OK;
}

static void op_done(void *ctx, const struct engine_result *res)
{
	struct op *o = ctx;

	reply("%s %d %" PRIu64 " %" PRIu64, o->tag, res->rc, res->index, res->leader);
	free(o);
}

static struct op *new_op(const char *tag)
{
	struct op *o = calloc(1, sizeof(*o));

	if (o == NULL)
		die("out of memory");
	snprintf(o->tag, sizeof(o->tag), "%s", tag);
	return o;
}

/* Parse "ID=ADDR" words into a bootstrap record. */
static int parse_members(char **words, int n, struct engine_bootstrap *bs)
{
	for (int i = 0; i < n; i++) {
		char *eq = strchr(words[i], '=');
		struct engine_member *m;

		if (eq == NULL || bs->n_members == RAFT_MAX_MEMBERS)
			return ENGINE_ERR_INVALID;
		m = &bs->members[bs->n_members++];
		*eq = '\0';
		m->node_id = strtoull(words[i], NULL, 10);
		if (m->node_id == 0 || strlen(eq + 1) >= sizeof(m->addr))
			return ENGINE_ERR_INVALID;
		snprintf(m->addr, sizeof(m->addr), "%s", eq + 1);
	}
	return ENGINE_OK;
}

static void cmd_start(const char *tag, uint64_t gid, char **words, int n, bool join)
{
	struct engine_bootstrap bs;
	struct engine_sm_ops sm;
	int rc;

	memset(&bs, 0, sizeof(bs));
	bs.join = join;
	rc = parse_members(words, n, &bs);
	if (rc == ENGINE_OK)
		rc = open_sm(gid, &sm);
	if (rc == ENGINE_OK)
		rc = engine_start_group(N.e, gid, &bs, &sm);
	reply("%s %d", tag, rc);
}

static void cmd_status(const char *tag, uint64_t gid)
{
	struct engine_group_status st;
	struct gsm *s = find_sm(gid);
	char voters[256] = "";
	size_t off = 0;
	int rc = engine_group_status(N.e, gid, &st);

	if (rc != ENGINE_OK || s == NULL) {
		reply("%s %d", tag, rc != ENGINE_OK ? rc : ENGINE_ERR_NO_GROUP);
		return;
	}
	for (uint32_t i = 0; i < st.membership.n_voters && off < sizeof(voters) - 24; i++)
		off += (size_t)snprintf(voters + off, sizeof(voters) - off, "%s%" PRIu64,
		                        i ? "," : "", st.membership.voters[i]);
	reply("%s 0 %d %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64
	      " %" PRIu64 " %d %" PRIu64 " %" PRIu64 " %u %s %d %d",
	      tag, st.role, st.term, st.leader, st.commit, st.applied, st.last_index,
	      st.first_index, st.snapshot_index, st.writable ? 1 : 0,
	      N.mem ? kv_sm_count(s->k) : file_sm_count(s->f),
	      N.mem ? kv_sm_digest(s->k) : file_sm_digest(s->f),
	      N.mem ? kv_sm_recoveries(s->k) : file_sm_recoveries(s->f), off ? voters : "-",
	      st.state, st.quiescent ? 1 : 0);
}

/* ---- bench ---- */

static void bench_issue(uint64_t gid);
static void refill_cb(uv_timer_t *t);

static void bench_finish(void)
{
	char buf[8000];
	size_t off = 0;

	for (int b = 0; b < NODE_BENCH_BUCKETS && off < sizeof(buf) - 40; b++)
		if (N.hist[b] != 0)
			off += (size_t)snprintf(buf + off, sizeof(buf) - off, " %d:%" PRIu64, b,
			                        N.hist[b]);
	buf[off] = '\0';
	reply("%s 0 %" PRIu64 " %" PRIu64 "%s", N.bench_tag, N.bench_ok, N.bench_failed, buf);
	N.bench_on = false;
}

static void bench_done(void *ctx, const struct engine_result *res)
{
	struct op *o = ctx;
	uint64_t t = now_ns();

	if (res->rc == ENGINE_OK) {
		N.bench_ok++;
		N.hist[node_bench_bucket((t - o->t0_ns) / 1000)]++;
	} else {
		N.bench_failed++;
	}
	N.bench_inflight--;
	if (t < N.bench_end_ns && res->rc != ENGINE_ERR_NOT_LEADER)
		bench_issue(o->gid);
	free(o);
	if (N.bench_inflight == 0 && t >= N.bench_end_ns)
		bench_finish();
}

static void bench_issue(uint64_t gid)
{
	struct op *o = new_op("b");
	uint8_t data[16];
	/* keys cycle over 64 Ki (updates), the value tells proposals apart */
	uint64_t k = ++N.bench_key & 0xFFFF, nk = N.bench_key;
	int rc;

	o->gid = gid;
	o->bench = true;
	o->t0_ns = now_ns();
	memcpy(data, &k, 8);
	memcpy(data + 8, &nk, 8);
	rc = engine_propose(N.e, gid, data, sizeof(data), bench_done, o);
	if (rc != ENGINE_OK) {
		struct gsm *s = find_sm(gid);

		free(o);
		if (rc == ENGINE_ERR_BUSY && s != NULL) {
			/* Backpressure: the refill timer proposes it again shortly. */
			s->deficit++;
			N.bench_busy++;
			if (!uv_is_active((uv_handle_t *)&N.refill_timer))
				uv_timer_start(&N.refill_timer, refill_cb, 2, 2);
		} else {
			N.bench_failed++;
		}
		return;
	}
	N.bench_inflight++;
}

static void refill_cb(uv_timer_t *t)
{
	bool more = false;

	if (!N.bench_on || now_ns() >= N.bench_end_ns) {
		for (size_t i = 0; i < N.ng; i++)
			N.g[i]->deficit = 0;
		uv_timer_stop(t);
		return;
	}
	for (size_t i = 0; i < N.ng; i++) {
		unsigned d = N.g[i]->deficit;

		N.g[i]->deficit = 0;
		while (d-- > 0)
			bench_issue(N.g[i]->gid);
		more = more || N.g[i]->deficit > 0;
	}
	if (!more)
		uv_timer_stop(t);
	engine_uv_run_nowait(N.u);
}

static void bench_timer_cb(uv_timer_t *t)
{
	(void)t;
	if (N.bench_on && N.bench_inflight == 0)
		bench_finish();
}

/* The running groups' ids (malloc'd; *n of them). */
static uint64_t *running_groups(size_t *n)
{
	size_t k = engine_groups(N.e, NULL, 0);
	uint64_t *ids = malloc((k ? k : 1) * sizeof(*ids));

	if (ids == NULL)
		die("out of memory");
	*n = engine_groups(N.e, ids, k);
	return ids;
}

static void cmd_bench(const char *tag, double secs, unsigned out)
{
	size_t n;
	uint64_t *ids = running_groups(&n);

	if (N.bench_on) {
		free(ids);
		reply("%s %d", tag, ENGINE_ERR_PENDING);
		return;
	}
	memset(N.hist, 0, sizeof(N.hist));
	snprintf(N.bench_tag, sizeof(N.bench_tag), "%s", tag);
	N.bench_on = true;
	N.bench_ok = N.bench_failed = N.bench_busy = 0;
	N.bench_end_ns = now_ns() + (uint64_t)(secs * 1e9);
	for (size_t i = 0; i < n; i++) {
		struct engine_group_status st;

		if (engine_group_status(N.e, ids[i], &st) != ENGINE_OK || !st.writable)
			continue;
		for (unsigned j = 0; j < out; j++)
			bench_issue(ids[i]);
	}
	free(ids);
	/* Reports (also when this node leads nothing) once the time is up. */
	uv_timer_start(&N.bench_timer, bench_timer_cb, (uint64_t)(secs * 1000) + 1, 0);
	engine_uv_run_nowait(N.u);
}

/* ---- commands ---- */

static void cmd_groups(const char *tag)
{
	size_t n, led = 0, leading = 0, quiescent = 0;
	uint64_t *ids = running_groups(&n);

	for (size_t i = 0; i < n; i++) {
		struct engine_group_status st;

		if (engine_group_status(N.e, ids[i], &st) != ENGINE_OK)
			continue;
		quiescent += st.quiescent;
		if (st.leader == 0)
			continue;
		led++;
		leading += st.leader == N.id;
	}
	free(ids);
	reply("%s 0 %zu %zu %zu %zu", tag, n, led, leading, quiescent);
}

static void command(char *line)
{
	char *w[64];
	int n = 0;
	char *save = NULL;
	struct op *o;
	uint64_t gid;
	int rc = ENGINE_ERR_INVALID;

	for (char *t = strtok_r(line, " \t\r", &save); t != NULL && n < 64;
	     t = strtok_r(NULL, " \t\r", &save))
		w[n++] = t;
	if (n < 2)
		return;
	if (strcmp(w[1], "bench") == 0 && n == 4) {
		cmd_bench(w[0], atof(w[2]), (unsigned)strtoul(w[3], NULL, 10));
		return;
	}
	if (strcmp(w[1], "engine") == 0) {
		reply("%s %d %s", w[0], engine_failed(N.e) ? 1 : 0, engine_errmsg(N.e));
		return;
	}
	if (strcmp(w[1], "groups") == 0) {
		cmd_groups(w[0]);
		return;
	}
	if (n < 3) {
		reply("%s %d", w[0], ENGINE_ERR_INVALID);
		return;
	}
	gid = strtoull(w[2], NULL, 10);
	if (strcmp(w[1], "start") == 0 || strcmp(w[1], "join") == 0) {
		cmd_start(w[0], gid, w + 3, n - 3, w[1][0] == 'j');
		return;
	}
	if (strcmp(w[1], "status") == 0) {
		cmd_status(w[0], gid);
		return;
	}
	o = new_op(w[0]);
	o->gid = gid;
	if (strcmp(w[1], "propose") == 0 && (n == 4 || n == 5)) {
		static uint8_t data[16 + MAX_PAD];
		uint64_t k = strtoull(w[3], NULL, 10), nk = ~k;
		unsigned long pad = n == 5 ? strtoul(w[4], NULL, 10) : 0;

		memcpy(data, &k, 8);
		memcpy(data + 8, &nk, 8);
		if (pad <= MAX_PAD)
			rc = engine_propose(N.e, gid, data, 16 + (uint32_t)pad, op_done, o);
	} else if (strcmp(w[1], "add") == 0 && n == 5) {
		rc = engine_add_member(N.e, gid, strtoull(w[3], NULL, 10), w[4], op_done, o);
	} else if (strcmp(w[1], "remove") == 0 && n == 4) {
		rc = engine_remove_member(N.e, gid, strtoull(w[3], NULL, 10), op_done, o);
	} else if (strcmp(w[1], "transfer") == 0 && n == 4) {
		rc = engine_transfer_leader(N.e, gid, strtoull(w[3], NULL, 10), op_done, o);
	} else if (strcmp(w[1], "snapshot") == 0 && n == 3) {
		rc = engine_request_snapshot(N.e, gid, op_done, o);
	}
	if (rc != ENGINE_OK) {
		struct engine_group_status st;
		raft_id leader = 0;

		if (rc == ENGINE_ERR_NOT_LEADER && engine_group_status(N.e, gid, &st) == ENGINE_OK)
			leader = st.leader;
		reply("%s %d 0 %" PRIu64, w[0], rc, leader);
		free(o);
	}
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	static char mem[65536];

	(void)h;
	(void)suggested;
	buf->base = mem;
	buf->len = sizeof(mem);
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	(void)s;
	if (nread < 0)
		_exit(0); /* stdin closed: the driver is done with us */
	for (ssize_t i = 0; i < nread; i++) {
		char c = buf->base[i];

		if (c == '\n') {
			N.line[N.line_len] = '\0';
			command(N.line);
			N.line_len = 0;
		} else if (N.line_len < sizeof(N.line) - 1) {
			N.line[N.line_len++] = c;
		}
	}
	if (nread > 0)
		engine_uv_run_nowait(N.u);
}

static void restart_groups(void)
{
	uint64_t *ids;
	size_t n = 0, k;

	if (engine_stored_groups(N.e, NULL, 0, &n) != ENGINE_OK)
		die(engine_errmsg(N.e));
	ids = malloc((n ? n : 1) * sizeof(*ids));
	if (ids == NULL || engine_stored_groups(N.e, ids, n, &k) != ENGINE_OK || k != n)
		die("cannot list stored groups");
	for (size_t i = 0; i < n; i++) {
		struct engine_sm_ops sm;
		int rc = open_sm(ids[i], &sm);

		if (rc == ENGINE_OK)
			rc = engine_start_group(N.e, ids[i], NULL, &sm);
		if (rc != ENGINE_OK) {
			fprintf(stderr, "dr-node %llu: restart group %" PRIu64 ": %s (%s)\n",
			        (unsigned long long)N.id, ids[i], engine_strerror(rc),
			        engine_errmsg(N.e));
			_exit(2);
		}
	}
	free(ids);
}

/* Transport log lines go to stderr. */
static void node_log(void *ctx, int level, const char *msg)
{
	(void)ctx;
	fprintf(stderr, "dr-node %llu: %s%s\n", (unsigned long long)N.id,
	        level == TRANSPORT_LOG_WARNING ? "WARNING: " : "", msg);
}

static void usage(void)
{
	fprintf(stderr,
	        "usage: dr-node --id N --dir DIR --listen IP:PORT [--mem] "
	        "[--async-snapshots] [--rtt MS]\n"
	        "               [--election TICKS] [--heartbeat TICKS] [--snapshot-entries N] "
	        "[--overhead N] [--shards N]\n"
	        "               [--quiesce TICKS (idle ticks before a group quiesces; 0: "
	        "never)]\n"
	        "               [--tls-dir DIR (ca.crt, nodeN.crt/.key, crl.pem of "
	        "scripts/make-certs.sh; default $DRNODE_TLS_DIR)]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	struct engine_config cfg;
	struct transport_config tc;
	struct logdb_config lc;
	struct engine_storage_ops st;
	const char *listen = NULL, *tls_dir = getenv("DRNODE_TLS_DIR");
	char path[ENGINE_PATH_MAX], snapdir[ENGINE_PATH_MAX], err[256], tls[4][ENGINE_PATH_MAX];

	memset(&cfg, 0, sizeof(cfg));
	cfg.rtt_ms = 10;
	cfg.election_rtt = 20;
	cfg.heartbeat_rtt = 2;
	cfg.snapshot_entries = 1000;
	cfg.compaction_overhead = 200;
	N.shards = 2;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--mem") == 0) {
			N.mem = true;
			continue;
		}
		if (strcmp(a, "--async-snapshots") == 0) {
			N.async_snapshots = true;
			continue;
		}
		if (v == NULL)
			usage();
		i++;
		if (strcmp(a, "--id") == 0)
			cfg.node_id = strtoull(v, NULL, 10);
		else if (strcmp(a, "--dir") == 0)
			N.dir = v;
		else if (strcmp(a, "--listen") == 0)
			listen = v;
		else if (strcmp(a, "--shards") == 0)
			N.shards = (unsigned)strtoul(v, NULL, 10);
		else if (strcmp(a, "--rtt") == 0)
			cfg.rtt_ms = (unsigned)strtoul(v, NULL, 10);
		else if (strcmp(a, "--election") == 0)
			cfg.election_rtt = (unsigned)strtoul(v, NULL, 10);
		else if (strcmp(a, "--heartbeat") == 0)
			cfg.heartbeat_rtt = (unsigned)strtoul(v, NULL, 10);
		else if (strcmp(a, "--snapshot-entries") == 0)
			cfg.snapshot_entries = strtoull(v, NULL, 10);
		else if (strcmp(a, "--overhead") == 0)
			cfg.compaction_overhead = strtoull(v, NULL, 10);
		else if (strcmp(a, "--quiesce") == 0)
			cfg.quiesce_ticks = strtoul(v, NULL, 10) > 0
			                            ? (unsigned)strtoul(v, NULL, 10)
			                            : ENGINE_QUIESCE_OFF;
		else if (strcmp(a, "--tls-dir") == 0)
			tls_dir = v;
		else
			usage();
	}
	if (cfg.node_id == 0 || N.dir == NULL || listen == NULL || cfg.rtt_ms == 0)
		usage();
	N.id = cfg.node_id;
	signal(SIGPIPE, SIG_IGN);
	snprintf(snapdir, sizeof(snapdir), "%s/snap", N.dir);
	if ((mkdir(N.dir, 0755) != 0 && errno != EEXIST) ||
	    (mkdir(snapdir, 0755) != 0 && errno != EEXIST))
		die("cannot create the data directory");
	cfg.snapshot_dir = snapdir;

	memset(&lc, 0, sizeof(lc));
	snprintf(path, sizeof(path), "%s/logdb", N.dir);
	lc.dir = path;
	lc.shards = N.shards;
	if (logdb_open(&lc, &N.db, err, sizeof(err)) != LOGDB_OK)
		die(err);
	if (engine_logdb_create(N.db, cfg.node_id, &N.el) != ENGINE_OK)
		die("engine_logdb_create failed");
	engine_logdb_ops(N.el, &st);

	if (uv_loop_init(&N.loop) != 0)
		die("uv_loop_init failed");
	memset(&tc, 0, sizeof(tc));
	tc.node_id = cfg.node_id;
	tc.listen_addr = listen;
	tc.snapshot_dir = snapdir;
	tc.backoff_min_ms = 20;
	tc.backoff_max_ms = 200;
	if (tls_dir != NULL && tls_dir[0] != '\0') {
		snprintf(tls[0], sizeof(tls[0]), "%s/node%llu.crt", tls_dir,
		         (unsigned long long)cfg.node_id);
		snprintf(tls[1], sizeof(tls[1]), "%s/node%llu.key", tls_dir,
		         (unsigned long long)cfg.node_id);
		snprintf(tls[2], sizeof(tls[2]), "%s/ca.crt", tls_dir);
		snprintf(tls[3], sizeof(tls[3]), "%s/crl.pem", tls_dir);
		tc.tls_cert_file = tls[0];
		tc.tls_key_file = tls[1];
		tc.tls_ca_file = tls[2];
		if (access(tls[3], R_OK) == 0)
			tc.tls_crl_file = tls[3];
	}
	tc.log_fn = node_log;
	if (engine_uv_create(&N.loop, &cfg, &st, &tc, &N.u, err, sizeof(err)) != ENGINE_OK)
		die(err);
	N.e = engine_uv_engine(N.u);
	restart_groups();

	uv_timer_init(&N.loop, &N.bench_timer);
	uv_timer_init(&N.loop, &N.refill_timer);
	if (uv_pipe_init(&N.loop, &N.in, 0) != 0 || uv_pipe_open(&N.in, 0) != 0 ||
	    uv_read_start((uv_stream_t *)&N.in, alloc_cb, read_cb) != 0)
		die("cannot read stdin (it must be a pipe)");
	reply("ready %d", transport_listen_port(engine_uv_transport(N.u)));
	uv_run(&N.loop, UV_RUN_DEFAULT);
	return 0;
}
