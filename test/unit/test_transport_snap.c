/*
 * test_transport_snap.c - snapshot streaming on loopback in one process: a
 * checksum mismatch, a 100 MiB snapshot beside heartbeats with a broken
 * connection resumed, partial files aged out (live and at start), chunk
 * file I/O kept off the loop thread, and a failing disk write.
 */
#include <errno.h>
#include <pthread.h>
#include <dirent.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "../transport/harness.h"
#include "transport/auth.h"
#include "transport/codec.h"
#include "transport/frame.h"
#include "util/crc32c.h"

#define SECRET TH_CERT

static bool snap_sent(void *arg)
{
	return ((struct th_node *)arg)->snap_sent_status >= 0;
}

/* Writes size bytes of a position-dependent pattern to path; returns their CRC32C. */
static uint32_t write_source(const char *path, size_t size)
{
	uint8_t *buf = malloc(1 << 20);
	uint32_t crc = 0;
	FILE *f = fopen(path, "wb");

	assert_non_null(buf);
	assert_non_null(f);
	for (size_t off = 0; off < size; off += 1 << 20) {
		size_t n = size - off < (1 << 20) ? size - off : (1 << 20);

		for (size_t k = 0; k < n; k += 8) {
			uint64_t v = (off + k) * 0x9E3779B97F4A7C15ULL;
			memcpy(buf + k, &v, n - k < 8 ? n - k : 8);
		}
		crc = dr_crc32c(crc, buf, n);
		assert_int_equal(fwrite(buf, 1, n, f), n);
	}
	fclose(f);
	free(buf);
	return crc;
}

/* Size and CRC32C of the file at path; false if it cannot be read. */
static bool file_crc(const char *path, uint64_t *size, uint32_t *crc)
{
	uint8_t *buf = malloc(1 << 20);
	FILE *f = fopen(path, "rb");
	size_t n;

	*size = 0;
	*crc = 0;
	if (f == NULL || buf == NULL) {
		free(buf);
		if (f != NULL)
			fclose(f);
		return false;
	}
	while ((n = fread(buf, 1, 1 << 20, f)) > 0) {
		*crc = dr_crc32c(*crc, buf, n);
		*size += n;
	}
	fclose(f);
	free(buf);
	return true;
}

static struct raft_snapshot_meta test_meta(void)
{
	struct raft_snapshot_meta meta = {.index = 500, .term = 3};

	meta.membership.n_voters = 2;
	meta.membership.voters[0] = 1;
	meta.membership.voters[1] = 2;
	return meta;
}

/* ---- checksum mismatch --------------------------------------------------- */

static void test_snapshot_checksum_mismatch(void **state)
{
	struct transport_config cfg = {0};
	struct th_pair p;
	char dir[] = "/tmp/dr-transport-XXXXXX";
	struct transport_snapshot_header sh = {
	        .group_id = 5, .from = 1, .to = 2, .total_size = 1000, .crc32c = 0x1234};
	struct transport_buf b = {0};
	uint8_t data[1000], in[64];
	uint32_t len;
	struct th_raw r;

	(void)state;
	assert_non_null(mkdtemp(dir));
	cfg.snapshot_dir = dir;
	assert_int_equal(th_pair_start(&p, SECRET, SECRET, &cfg), 0);
	sh.meta.index = 10;
	sh.meta.term = 2;
	sh.meta.membership.n_voters = 1;
	sh.meta.membership.voters[0] = 1;
	transport_encode_snapshot_header(&sh, &b);
	assert_int_equal(th_raw_connect(&r, &p.loop, p.b.port, NULL, TH_CERT, "n1"), 0);
	assert_int_equal(th_raw_hello(&r, 1, 2, TRANSPORT_PURPOSE_SNAP), 0);
	assert_int_equal(th_raw_send_frame(&r, TF_SNAP_BEGIN, b.p, (uint32_t)b.len, false), 0);
	assert_int_equal(th_raw_recv_frame(&r, in, sizeof(in), &len, 5000), TF_SNAP_RESUME);
	assert_int_equal(len, 8);
	assert_int_equal(tp_get64(in), 0);
	memset(data, 'z', sizeof(data));
	assert_int_equal(th_raw_send_frame(&r, TF_SNAP_CHUNK, data, sizeof(data), false), 0);
	assert_int_equal(th_raw_send_frame(&r, TF_SNAP_END, NULL, 0, false), 0);
	assert_int_equal(th_raw_recv_frame(&r, in, sizeof(in), &len, 5000), TF_SNAP_DONE);
	assert_int_equal(tp_get32(in), TRANSPORT_ECHECKSUM);
	th_raw_close(&r);
	assert_int_equal(p.b.snap_received, 0);
	transport_buf_free(&b);
	assert_true(th_pair_stop(&p));
	assert_int_equal(rmdir(dir), 0); /* the partial file was removed */
}

/* ---- 100 MiB snapshot beside heartbeats ---------------------------------- */

struct snapctx {
	struct th_pair *p;
	uv_timer_t hb;
	uint64_t ctx;
	char part[600];
	off_t break_at; /* break the stream once the partial file is larger [20 MiB] */
	bool broke;
};

static void send_heartbeat(uv_timer_t *h)
{
	struct snapctx *s = h->data;
	struct raft_message m = th_heartbeat(1, 2, 1, ++s->ctx);

	transport_send(s->p->a.t, &m);
}

static void heartbeats_start(struct snapctx *s)
{
	uv_timer_init(&s->p->loop, &s->hb);
	s->hb.data = s;
	uv_timer_start(&s->hb, send_heartbeat, 5, 5);
}

static void heartbeats_stop(struct snapctx *s)
{
	uv_timer_stop(&s->hb);
	uv_close((uv_handle_t *)&s->hb, NULL);
}

static bool snapshot_done(void *arg)
{
	struct snapctx *s = arg;

	if (!s->broke) {
		/* Once 20 MiB have landed, break the stream once: it must resume. */
		struct stat st;
		off_t at = s->break_at != 0 ? s->break_at : (20 << 20);
		if (stat(s->part, &st) == 0 && st.st_size > at) {
			transport_break_snapshot_conns(s->p->b.t);
			s->broke = true;
		}
	}
	return s->p->a.snap_sent_status >= 0;
}

static void test_snapshot_100mib_with_heartbeats(void **state)
{
	struct th_pair p;
	struct snapctx s = {.p = &p};
	char dir[] = "/tmp/dr-transport-XXXXXX", src[600];
	struct raft_snapshot_meta meta = test_meta();
	const size_t size = 100u << 20;
	uint32_t crc, crc2 = 0;
	uint64_t got = 0;
	struct transport_config cfg = {0};
	struct transport_stats sa, sb;
	bool done;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(src, sizeof(src), "%s/source.snap", dir);
	crc = write_source(src, size);
	cfg.snapshot_dir = dir;
	assert_int_equal(th_pair_start(&p, SECRET, SECRET, &cfg), 0);
	snprintf(s.part, sizeof(s.part), "%s/snap-g9-n1-i500-t3.part", dir);
	/* Heartbeats every 5 ms for the whole transfer. */
	heartbeats_start(&s);
	{
		struct th_want w = {&p.b, 5};
		assert_true(th_run_until(&p.loop, th_got_msgs, &w, 5000));
	}
	p.b.gap_watch = true;
	assert_int_equal(transport_send_snapshot(p.a.t, 2, 9, &meta, src), 0);
	done = th_run_until(&p.loop, snapshot_done, &s, 60000);
	p.b.gap_watch = false;
	heartbeats_stop(&s);
	/* Gather the outcome, then delete the 200 MiB of files before asserting. */
	if (p.b.snap_received == 1)
		file_crc(p.b.snap_path, &got, &crc2);
	transport_stats(p.a.t, &sa);
	transport_stats(p.b.t, &sb);
	assert_true(th_pair_stop(&p));
	th_remove_dir(dir);
	if (!done)
		fail_msg("snapshot did not finish within 60 s");
	assert_int_equal(p.a.snap_sent_status, TRANSPORT_OK);
	assert_int_equal(p.b.snap_received, 1);
	assert_int_equal(p.b.snap_meta.index, 500);
	assert_int_equal(p.b.snap_meta.membership.n_voters, 2);
	/* The received file has the source's size and checksum. */
	assert_int_equal(got, size);
	assert_int_equal(crc2, crc);
	assert_true(s.broke);
	assert_int_equal(sb.snapshot_resumes, 1);
	assert_int_equal(sa.snapshots_sent, 1);
	printf("snapshot: %llu heartbeats during transfer, largest gap %llu ms (less run-queue "
	       "waits)\n",
	       (unsigned long long)p.b.msgs, (unsigned long long)p.b.max_gap_ms);
	if (p.b.max_gap_ms > 200)
		fail_msg("expected heartbeats every few ms, saw a %llu ms gap",
		         (unsigned long long)p.b.max_gap_ms);
}

/* ---- partial files age out ----------------------------------------------- */

static bool path_gone(void *arg)
{
	struct stat st;

	return stat(arg, &st) != 0 && errno == ENOENT;
}

struct size_wait {
	const char *path;
	off_t size;
};

static bool path_has_size(void *arg)
{
	struct size_wait *w = arg;
	struct stat st;

	return stat(w->path, &st) == 0 && st.st_size == w->size;
}

/* A raw sender (node 1): handshake and BEGIN into r; returns the frame kind answered
 * (SNAP_RESUME with its offset in *value, or SNAP_DONE with its status). */
/* The last SNAP_DONE payload raw_begin read, and its length. */
static uint8_t last_done[64];
static uint32_t last_done_len;

/* Sends SNAP_BEGIN on r, open already, and returns the kind of the answer; *value its
 * offset (RESUME) or status (DONE). */
static int raw_send_begin(struct th_raw *r, const struct transport_snapshot_header *sh,
                          uint64_t *value)
{
	struct transport_buf b = {0};
	uint8_t in[64];
	uint32_t len = 0;
	int kind;

	assert_int_equal(transport_encode_snapshot_header(sh, &b), 0);
	assert_int_equal(th_raw_send_frame(r, TF_SNAP_BEGIN, b.p, (uint32_t)b.len, false), 0);
	transport_buf_free(&b);
	kind = th_raw_recv_frame(r, in, sizeof(in), &len, 5000);
	if (kind == TF_SNAP_DONE && len <= sizeof(last_done)) {
		memcpy(last_done, in, len);
		last_done_len = len;
	}
	if (kind == TF_SNAP_RESUME && len == 8)
		*value = tp_get64(in);
	else if (kind == TF_SNAP_DONE && (len == 4 || len == TRANSPORT_SNAP_DONE_MAX))
		*value = tp_get32(in);
	else
		fail_msg("expected SNAP_RESUME or SNAP_DONE after BEGIN, got kind %d", kind);
	return kind;
}

static int raw_begin(struct th_pair *p, struct th_raw *r,
                     const struct transport_snapshot_header *sh, uint64_t *value)
{
	assert_int_equal(th_raw_connect(r, &p->loop, p->b.port, NULL, TH_CERT, "n1"), 0);
	assert_int_equal(th_raw_hello(r, 1, 2, TRANSPORT_PURPOSE_SNAP), 0);
	return raw_send_begin(r, sh, value);
}

static void test_partial_expires_then_full_resend(void **state)
{
	/* A sender that lost its connection comes back after 1 s; partial files live 300 ms. */
	struct transport_config cfg = {
	        .snapshot_part_max_age_ms = 300, .backoff_min_ms = 1000, .backoff_max_ms = 1000};
	struct th_pair p;
	struct snapctx s = {.p = &p, .break_at = 4 << 20};
	char dir[] = "/tmp/dr-transport-XXXXXX", src[600];
	const size_t size = (32u << 20) + 123;
	struct transport_snapshot_header sh = {.group_id = 9, .from = 1, .to = 2};
	struct raft_snapshot_meta meta = test_meta();
	struct transport_stats sa, sb;
	uint8_t *first = malloc(64 << 10), in[64];
	uint64_t resume, got;
	uint32_t crc, crc2, len;
	FILE *f;
	struct th_raw r;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(src, sizeof(src), "%s/source.snap", dir);
	snprintf(s.part, sizeof(s.part), "%s/snap-g9-n1-i500-t3.part", dir);
	crc = write_source(src, size);
	f = fopen(src, "rb");
	assert_int_equal(fread(first, 1, 64 << 10, f), 64 << 10);
	fclose(f);
	cfg.snapshot_dir = dir;
	assert_int_equal(th_pair_start(&p, SECRET, SECRET, &cfg), 0);
	sh.meta = meta;
	sh.total_size = size;
	sh.crc32c = crc;
	/* A raw sender delivers 64 KiB of the stream, then vanishes. */
	assert_int_equal(raw_begin(&p, &r, &sh, &resume), TF_SNAP_RESUME);
	assert_int_equal(resume, 0);
	assert_int_equal(th_raw_send_frame(&r, TF_SNAP_CHUNK, first, 64 << 10, false), 0);
	{
		struct size_wait w = {s.part, 64 << 10};
		if (!th_run_until(&p.loop, path_has_size, &w, 5000))
			fail_msg("expected %s to hold the first 64 KiB", s.part);
	}
	th_raw_close(&r);
	/* It does not come back within the age limit: the partial file is deleted. */
	if (!th_run_until(&p.loop, path_gone, s.part, 5000))
		fail_msg("expected the partial file %s to expire after 300 ms", s.part);
	transport_stats(p.b.t, &sb);
	assert_int_equal(sb.snapshot_parts_expired, 1);
	/* A later BEGIN of the same stream starts from 0, not from the lost 64 KiB. */
	assert_int_equal(raw_begin(&p, &r, &sh, &resume), TF_SNAP_RESUME);
	assert_int_equal(resume, 0);
	assert_int_equal(th_raw_send_frame(&r, TF_SNAP_END, NULL, 0, false), 0);
	assert_int_equal(th_raw_recv_frame(&r, in, sizeof(in), &len, 5000), TF_SNAP_DONE);
	assert_int_equal(tp_get32(in), TRANSPORT_ECHECKSUM); /* 0 bytes of 32 MiB */
	th_raw_close(&r);
	/* The real sender: its connection breaks after 4 MiB and the redial comes 1 s later,
	 * after the partial file expired; it must start over from 0 and deliver the whole file. */
	assert_int_equal(transport_send_snapshot(p.a.t, 2, 9, &meta, src), 0);
	if (!th_run_until(&p.loop, snapshot_done, &s, 30000))
		fail_msg("expected the snapshot to finish within 30 s");
	transport_stats(p.a.t, &sa);
	transport_stats(p.b.t, &sb);
	assert_true(s.broke);
	assert_int_equal(p.a.snap_sent_status, TRANSPORT_OK);
	assert_int_equal(p.b.snap_received, 1);
	assert_true(file_crc(p.b.snap_path, &got, &crc2));
	assert_int_equal(got, size);
	assert_int_equal(crc2, crc);
	assert_int_equal(sb.snapshot_parts_expired, 2);
	assert_int_equal(sa.snapshot_resumes, 0); /* RESUME said 0 both times */
	assert_true(th_pair_stop(&p));
	th_remove_dir(dir);
	free(first);
}

/* Creates an empty file at dir/name whose modification time is age_s seconds ago. */
static void make_file(const char *dir, const char *name, int age_s)
{
	char path[600];
	struct timeval tv[2];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	assert_non_null(f);
	fputs("partial", f);
	fclose(f);
	gettimeofday(&tv[0], NULL);
	tv[0].tv_sec -= age_s;
	tv[1] = tv[0];
	assert_int_equal(utimes(path, tv), 0);
}

static bool exists(const char *dir, const char *name)
{
	char path[600];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return lstat(path, &st) == 0;
}

struct gone_wait {
	const char *dir, *name;
};

static bool name_gone(void *arg)
{
	struct gone_wait *w = arg;
	return !exists(w->dir, w->name);
}

static void test_stale_parts_deleted_at_start(void **state)
{
	static const char *const others[] = {
	        "snap-g1-n2-i3-t4.snap",
	        "snap-g01-n2-i3-t4.part",
	        "snap-g1-n2-i3-t4.part.bak",
	        "snap-g1-n2-i3-t4.partx",
	        "notes.part",
	        "snap-g1-n2-i3.part",
	        "snap-g1-n2-i3-t4-x.part",
	        "snap-gx-n2-i3-t4.part",
	        "source.snap",
	        "snap-g1-n2-i3-t99999999999999999999999.part",
	};
	struct transport_config cfg = {.snapshot_part_max_age_ms = 2000};
	struct th_pair p;
	char dir[] = "/tmp/dr-transport-XXXXXX", sub[600];
	struct gone_wait w;
	struct transport_stats sb;

	(void)state;
	assert_non_null(mkdtemp(dir));
	make_file(dir, "snap-g1-n2-i3-t4.part", 3600); /* an hour old: deleted at start */
	make_file(dir, "snap-g1-n2-i5-t4.part", 1);    /* young: deleted once 2 s old */
	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++)
		make_file(dir, others[i], 3600);
	snprintf(sub, sizeof(sub), "%s/snap-g7-n2-i3-t4.part", dir); /* a directory */
	assert_int_equal(mkdir(sub, 0700), 0);
	cfg.snapshot_dir = dir;
	assert_int_equal(th_pair_start(&p, SECRET, SECRET, &cfg), 0);
	/* Both nodes scanned the directory at create, before the loop ran. */
	assert_false(exists(dir, "snap-g1-n2-i3-t4.part"));
	assert_true(exists(dir, "snap-g1-n2-i5-t4.part"));
	w.dir = dir;
	w.name = "snap-g1-n2-i5-t4.part";
	if (!th_run_until(&p.loop, name_gone, &w, 10000))
		fail_msg("expected the young partial file to be deleted once 2 s old");
	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++)
		if (!exists(dir, others[i]))
			fail_msg("expected %s (not a partial-file name) to be left alone",
			         others[i]);
	assert_true(exists(dir, "snap-g7-n2-i3-t4.part"));
	transport_stats(p.a.t, &sb);
	{
		uint64_t a = sb.snapshot_parts_expired;
		transport_stats(p.b.t, &sb);
		/* Two files, each deleted by exactly one of the two nodes sharing the dir. */
		assert_int_equal(a + sb.snapshot_parts_expired, 2);
	}
	assert_true(th_pair_stop(&p));
	th_remove_dir(dir);
}

/*
 * A directory that is the transport's alone (snapshot_dir_private: the
 * engine worker's, behind its LogDB's lock): the partial files of an earlier
 * process are deleted at create whatever their age (review 57: a young one
 * stayed up to 10 minutes, never resumed, its bytes counted against the room
 * a new stream needs).  Other names are still left alone.
 */
static void test_private_dir_parts_deleted_at_start(void **state)
{
	static const char *const others[] = {
	        "snap-g1-n2-i3-t4.snap",
	        "snap-g01-n2-i3-t4.part",
	        "snap-g1-n2-i3-t4.partx",
	        "notes.part",
	};
	struct transport_config cfg = {.snapshot_part_max_age_ms = 600000,
	                               .snapshot_dir_private = true};
	struct th_pair p;
	char dir[] = "/tmp/dr-transport-XXXXXX";
	struct transport_stats sa, sb;

	(void)state;
	assert_non_null(mkdtemp(dir));
	make_file(dir, "snap-g1-n2-i5-t4.part", 1); /* a second old */
	make_file(dir, "snap-g2-n3-i9-t1.part", 0); /* just written */
	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++)
		make_file(dir, others[i], 0);
	cfg.snapshot_dir = dir;
	assert_int_equal(th_pair_start(&p, SECRET, SECRET, &cfg), 0);
	/* Deleted by the scan at create, before the loop ran. */
	assert_false(exists(dir, "snap-g1-n2-i5-t4.part"));
	assert_false(exists(dir, "snap-g2-n3-i9-t1.part"));
	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++)
		if (!exists(dir, others[i]))
			fail_msg("expected %s (not a partial-file name) to be left alone",
			         others[i]);
	transport_stats(p.a.t, &sa);
	transport_stats(p.b.t, &sb);
	assert_int_equal(sa.snapshot_parts_expired + sb.snapshot_parts_expired, 2);
	assert_true(th_pair_stop(&p));
	th_remove_dir(dir);
}

/* ---- chunk file I/O off the loop thread ---------------------------------- */

static struct {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t loop_thread;
	int calls, on_loop;
	bool stall_next_write, stalled, released;
	int fail_errno; /* writes fail with this when non-zero */
} io = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void io_note(void)
{
	pthread_mutex_lock(&io.mu);
	io.calls++;
	if (pthread_equal(pthread_self(), io.loop_thread))
		io.on_loop++;
	pthread_mutex_unlock(&io.mu);
}

static ssize_t hook_pread(int fd, void *buf, size_t n, off_t off)
{
	io_note();
	return pread(fd, buf, n, off);
}

static ssize_t hook_pwrite(int fd, const void *buf, size_t n, off_t off)
{
	struct timespec deadline;

	io_note();
	pthread_mutex_lock(&io.mu);
	if (io.stall_next_write) {
		/* Stuck disk: wait for the test (bounded, so a loop-thread caller cannot hang it).
		 */
		io.stall_next_write = false;
		io.stalled = true;
		clock_gettime(CLOCK_REALTIME, &deadline);
		deadline.tv_sec += 10;
		while (!io.released &&
		       pthread_cond_timedwait(&io.cv, &io.mu, &deadline) != ETIMEDOUT)
			;
	}
	if (io.fail_errno != 0) { /* (a stalled write too, once released) */
		pthread_mutex_unlock(&io.mu);
		errno = io.fail_errno;
		return -1;
	}
	pthread_mutex_unlock(&io.mu);
	return pwrite(fd, buf, n, off);
}

static const struct transport_io_hooks hooks = {hook_pread, hook_pwrite, NULL};

static bool io_stalled(void *arg)
{
	bool s;

	(void)arg;
	pthread_mutex_lock(&io.mu);
	s = io.stalled;
	pthread_mutex_unlock(&io.mu);
	return s;
}

/* ---- attacks on the receiver ------------------------------------------------ */

struct stat_min {
	struct transport *t;
	size_t offset;
	uint64_t min;
};

static bool stat_at_least(void *arg)
{
	struct stat_min *w = arg;
	struct transport_stats st;
	uint64_t v;

	transport_stats(w->t, &st);
	memcpy(&v, (const uint8_t *)&st + w->offset, sizeof(v));
	return v >= w->min;
}

#define WAIT_STAT(tp, field, n)                                                                    \
	do {                                                                                       \
		struct stat_min w_ = {(tp), offsetof(struct transport_stats, field), (n)};         \
		if (!th_run_until(&p.loop, stat_at_least, &w_, 5000))                              \
			fail_msg("expected counter " #field " to reach %d", (int)(n));             \
	} while (0)

/* Whether dir holds no file. */
static bool dir_empty(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	bool empty = true;

	while (d != NULL && (de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			empty = false;
	if (d != NULL)
		closedir(d);
	return empty;
}

static void test_oversize_snapshots_refused(void **state)
{
	struct transport_config cfg = {.snapshot_max_bytes = 1ull << 30};
	struct th_pair p;
	char dir[] = "/tmp/dr-transport-XXXXXX";
	struct transport_snapshot_header sh = {.group_id = 5, .from = 1, .to = 2, .crc32c = 1};
	struct transport_stats st;
	struct th_raw r;
	uint64_t status;
	uint8_t big[TRANSPORT_SNAP_BEGIN_MAX + 1];

	(void)state;
	assert_non_null(mkdtemp(dir));
	cfg.snapshot_dir = dir;
	assert_int_equal(th_pair_start(&p, SECRET, SECRET, &cfg), 0);
	sh.meta = test_meta();
	/* 4 EiB declared: refused before a byte is written. */
	sh.total_size = 4ull << 60;
	assert_int_equal(raw_begin(&p, &r, &sh, &status), TF_SNAP_DONE);
	assert_int_equal(status, TRANSPORT_ETOOBIG);
	th_raw_close(&r);
	/* Within the limit, but more than the disk has free. */
	sh.total_size = 1ull << 30;
	th_node_stop(&p.b);
	cfg.snapshot_min_free_bytes = 1ull << 60;
	assert_int_equal(th_node_start(&p.b, &p.loop, 2, 0, SECRET, &cfg), 0);
	assert_int_equal(transport_add_peer(p.b.t, 1, "127.0.0.1:1"), 0);
	assert_int_equal(raw_begin(&p, &r, &sh, &status), TF_SNAP_DONE);
	assert_int_equal(status, TRANSPORT_ENOSPACE);
	/* The answer carries the numbers (review 28 F5): needed, free, to stay free. */
	assert_int_equal(last_done_len, TRANSPORT_SNAP_DONE_MAX);
	assert_int_equal(tp_get64(last_done + 4), 1ull << 30);
	assert_true(tp_get64(last_done + 12) > 0);
	assert_int_equal(tp_get64(last_done + 20), 1ull << 60);
	/* ... and the receiver's embedder hears of it, for its status. */
	assert_int_equal(p.b.no_room, 1);
	assert_true(p.b.last_no_room.here);
	assert_int_equal(p.b.last_no_room.node_id, 1);
	assert_int_equal(p.b.last_no_room.group_id, sh.group_id);
	assert_int_equal(p.b.last_no_room.need, 1ull << 30);
	assert_int_equal(p.b.last_no_room.min_free, 1ull << 60);
	assert_int_equal(p.b.last_no_room.free_bytes, tp_get64(last_done + 12));
	transport_stats(p.b.t, &st);
	assert_int_equal(st.snapshots_refused_space, 1);
	assert_true(dir_empty(dir));
	/* A SNAP_BEGIN larger than any header (a decode bomb) is refused from its frame header. */
	memset(big, 0x12, sizeof(big));
	assert_int_equal(th_raw_send_frame(&r, TF_SNAP_BEGIN, big, sizeof(big), false), 0);
	WAIT_STAT(p.b.t, frames_oversize, 1);
	assert_true(th_raw_wait_closed(&r, 5000));
	th_raw_close(&r);
	assert_true(dir_empty(dir));
	assert_int_equal(p.b.snap_received, 0);
	assert_true(th_pair_stop(&p));
	assert_int_equal(rmdir(dir), 0);
}

/* A stream of sh's group begun on a raw connection, then the group dropped on the receiver:
 * the sender is told SNAP_DONE(EINVAL). */
static void begin_dropped(struct th_pair *p, struct th_raw *r,
                          const struct transport_snapshot_header *sh)
{
	uint8_t in[64];
	uint32_t len = 0;
	uint64_t v;

	assert_int_equal(raw_begin(p, r, sh, &v), TF_SNAP_RESUME);
	assert_int_equal(v, 0);
	transport_drop_group_snapshots(p->b.t, sh->group_id);
	assert_int_equal(th_raw_recv_frame(r, in, sizeof(in), &len, 5000), TF_SNAP_DONE);
	assert_int_equal(len, 4);
	assert_int_equal(tp_get32(in), TRANSPORT_EINVAL);
}

/*
 * A stream the receiver drops (its group stopped here) after SNAP_RESUME: the
 * sender, told by SNAP_DONE(EINVAL), may still have the rest of the stream and
 * its END on the way, which are discarded on a connection that stays open
 * (review 53: a protocol violation that closed it); a chunk past the rest of
 * the stream is one still.
 */
static void test_dropped_stream_rest_discarded(void **state)
{
	struct transport_config cfg = {0};
	struct th_pair p;
	char dir[] = "/tmp/dr-transport-XXXXXX";
	struct transport_snapshot_header sh = {
	        .group_id = 5, .from = 1, .to = 2, .total_size = 3 * 4096, .crc32c = 1};
	struct transport_stats st;
	struct th_raw r;
	uint8_t chunk[4096];

	(void)state;
	assert_non_null(mkdtemp(dir));
	cfg.snapshot_dir = dir;
	assert_int_equal(th_pair_start(&p, SECRET, SECRET, &cfg), 0);
	sh.meta = test_meta();
	begin_dropped(&p, &r, &sh);
	assert_true(dir_empty(dir));
	/* What the sender wrote before it read the answer: the three chunks and END. */
	th_fill_pattern(chunk, sizeof(chunk), 7);
	for (int k = 0; k < 3; k++)
		assert_int_equal(th_raw_send_frame(&r, TF_SNAP_CHUNK, chunk, sizeof(chunk), false),
		                 0);
	assert_int_equal(th_raw_send_frame(&r, TF_SNAP_END, NULL, 0, false), 0);
	WAIT_STAT(p.b.t, snapshot_frames_discarded, 4);
	transport_stats(p.b.t, &st);
	assert_int_equal(st.protocol_errors, 0);
	assert_int_equal(st.snapshot_failures, 0); /* (dropped, not failed) */
	/* More than the stream had left: a protocol violation, the connection closed. */
	assert_int_equal(th_raw_send_frame(&r, TF_SNAP_CHUNK, chunk, 1, false), 0);
	WAIT_STAT(p.b.t, protocol_errors, 1);
	assert_true(th_raw_wait_closed(&r, 5000));
	th_raw_close(&r);
	transport_stats(p.b.t, &st);
	assert_int_equal(st.snapshot_frames_discarded, 4);
	assert_true(dir_empty(dir));
	assert_int_equal(p.b.snap_received, 0);
	assert_true(th_pair_stop(&p));
	assert_int_equal(rmdir(dir), 0);
}

/* Sends one frame after which the receiver must see a protocol violation (protocol_errors
 * one more than before, the connection closed) and nothing discarded. */
static void expect_violation(struct th_pair *p, struct th_raw *r, int kind, const uint8_t *b,
                             uint32_t n)
{
	struct transport_stats before, st;
	struct stat_min w;

	transport_stats(p->b.t, &before);
	assert_int_equal(th_raw_send_frame(r, kind, b, n, false), 0);
	w.t = p->b.t;
	w.offset = offsetof(struct transport_stats, protocol_errors);
	w.min = before.protocol_errors + 1;
	assert_true(th_run_until(&p->loop, stat_at_least, &w, 5000));
	assert_true(th_raw_wait_closed(r, 5000));
	th_raw_close(r);
	transport_stats(p->b.t, &st);
	assert_int_equal(st.snapshot_frames_discarded, before.snapshot_frames_discarded);
}

/* The discard of an ended stream's rest lasts until that stream's END and no longer
 * (review 56): a chunk after a later stream on the same connection completed, a chunk after
 * the ended stream's END, an END after an END that failed the stream's check are protocol
 * violations, not frames quietly read and thrown away. */
static void test_ended_stream_discard_bounded(void **state)
{
	struct transport_config cfg = {0};
	struct th_pair p;
	char dir[] = "/tmp/dr-transport-XXXXXX";
	struct transport_snapshot_header sh = {
	        .group_id = 5, .from = 1, .to = 2, .total_size = 3 * 4096, .crc32c = 1};
	struct transport_snapshot_header one = {
	        .group_id = 5, .from = 1, .to = 2, .total_size = 4096};
	struct transport_stats st;
	uint64_t discarded;
	struct th_raw r;
	uint64_t v;
	uint8_t chunk[4096], in[64];
	uint32_t len = 0;
	char part[600];

	(void)state;
	assert_non_null(mkdtemp(dir));
	cfg.snapshot_dir = dir;
	assert_int_equal(th_pair_start(&p, SECRET, SECRET, &cfg), 0);
	sh.meta = test_meta();
	one.meta = test_meta();
	th_fill_pattern(chunk, sizeof(chunk), 7);
	one.crc32c = dr_crc32c(0, chunk, sizeof(chunk));

	/* 1. An ended stream, one chunk of its rest discarded, then a new stream on the same
	 * connection, completed: the old rest (two chunks) lets nothing through after it. */
	begin_dropped(&p, &r, &sh);
	assert_int_equal(th_raw_send_frame(&r, TF_SNAP_CHUNK, chunk, sizeof(chunk), false), 0);
	WAIT_STAT(p.b.t, snapshot_frames_discarded, 1);
	assert_int_equal(raw_send_begin(&r, &one, &v), TF_SNAP_RESUME);
	assert_int_equal(v, 0);
	assert_int_equal(th_raw_send_frame(&r, TF_SNAP_CHUNK, chunk, sizeof(chunk), false), 0);
	assert_int_equal(th_raw_send_frame(&r, TF_SNAP_END, NULL, 0, false), 0);
	assert_int_equal(th_raw_recv_frame(&r, in, sizeof(in), &len, 5000), TF_SNAP_DONE);
	assert_int_equal(tp_get32(in), TRANSPORT_OK);
	assert_int_equal(p.b.snap_received, 1);
	expect_violation(&p, &r, TF_SNAP_CHUNK, chunk, sizeof(chunk));

	/* 2. An ended stream's first chunk and its END discarded: a chunk after the END, within
	 * what the stream had left, is a violation. */
	begin_dropped(&p, &r, &sh);
	assert_int_equal(th_raw_send_frame(&r, TF_SNAP_CHUNK, chunk, sizeof(chunk), false), 0);
	assert_int_equal(th_raw_send_frame(&r, TF_SNAP_END, NULL, 0, false), 0);
	WAIT_STAT(p.b.t, snapshot_frames_discarded, 3);
	expect_violation(&p, &r, TF_SNAP_CHUNK, chunk, sizeof(chunk));

	/* 3. A stream failed by its END's check (wrong CRC): a second END is a violation. */
	one.crc32c ^= 1;
	one.meta.index++; /* (another stream than the one received) */
	assert_int_equal(raw_begin(&p, &r, &one, &v), TF_SNAP_RESUME);
	assert_int_equal(th_raw_send_frame(&r, TF_SNAP_CHUNK, chunk, sizeof(chunk), false), 0);
	assert_int_equal(th_raw_send_frame(&r, TF_SNAP_END, NULL, 0, false), 0);
	assert_int_equal(th_raw_recv_frame(&r, in, sizeof(in), &len, 5000), TF_SNAP_DONE);
	assert_int_equal(tp_get32(in), TRANSPORT_ECHECKSUM);
	expect_violation(&p, &r, TF_SNAP_END, NULL, 0);
	/* Its chunk's write may still be in flight (a slow disk): until it ends, a BEGIN of
	 * the group from node 1 is refused (EPROTO), and the record deletes its file then. */
	snprintf(part, sizeof(part), "%s/snap-g5-n1-i%llu-t%llu.part", dir,
	         (unsigned long long)one.meta.index, (unsigned long long)one.meta.term);
	assert_true(th_run_until(&p.loop, path_gone, part, 5000));

	/* 4. An END with a body after an ended stream: refused by the frame header's check
	 * (END carries nothing) before any discard, the connection closed. */
	begin_dropped(&p, &r, &sh);
	transport_stats(p.b.t, &st);
	assert_int_equal(th_raw_send_frame(&r, TF_SNAP_END, chunk, 1, false), 0);
	WAIT_STAT(p.b.t, frames_oversize, st.frames_oversize + 1);
	assert_true(th_raw_wait_closed(&r, 5000));
	th_raw_close(&r);
	discarded = st.snapshot_frames_discarded;
	transport_stats(p.b.t, &st);
	assert_int_equal(st.snapshot_frames_discarded, discarded);

	assert_int_equal(p.b.snap_received, 1);
	assert_true(th_pair_stop(&p));
	th_remove_dir(dir);
}

static bool sender_done(void *arg)
{
	struct th_pair *p = arg;

	return p->a.snap_sent_status >= 0;
}

/* A receiver without room refuses a real stream: the sender's embedder hears the numbers
 * before on_snapshot_sent ends it with TRANSPORT_ENOSPACE; once less must stay free
 * (transport_set_snapshot_min_free, as at a reload), the same file goes through. */
static void test_no_room_told_to_sender(void **state)
{
	struct transport_config cfg = {0};
	struct th_pair p;
	char dir[] = "/tmp/dr-transport-XXXXXX", src[600];
	struct raft_snapshot_meta meta = test_meta();
	const size_t size = (1u << 20) + 5;
	struct transport_stats sb;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(src, sizeof(src), "%s/source.snap", dir);
	write_source(src, size);
	cfg.snapshot_dir = dir;
	cfg.snapshot_min_free_bytes = 1ull << 60;
	assert_int_equal(th_pair_start(&p, SECRET, SECRET, &cfg), 0);
	assert_int_equal(transport_send_snapshot(p.a.t, 2, 7, &meta, src), 0);
	assert_true(th_run_until(&p.loop, sender_done, &p, 10000));
	assert_int_equal(p.a.snap_sent_status, TRANSPORT_ENOSPACE);
	assert_int_equal(p.a.no_room, 1);
	assert_false(p.a.last_no_room.here);
	assert_int_equal(p.a.last_no_room.node_id, 2);
	assert_int_equal(p.a.last_no_room.group_id, 7);
	assert_int_equal(p.a.last_no_room.need, size);
	assert_int_equal(p.a.last_no_room.min_free, 1ull << 60);
	assert_true(p.a.last_no_room.free_bytes > 0);
	assert_int_equal(p.b.no_room, 1);
	assert_true(p.b.last_no_room.here);
	assert_int_equal(p.b.last_no_room.free_bytes, p.a.last_no_room.free_bytes);
	assert_int_equal(p.b.snap_received, 0);
	/* Nothing need stay free now: the same file goes through. */
	transport_set_snapshot_min_free(p.b.t, 0);
	p.a.snap_sent_status = -1;
	assert_int_equal(transport_send_snapshot(p.a.t, 2, 7, &meta, src), 0);
	assert_true(th_run_until(&p.loop, sender_done, &p, 10000));
	assert_int_equal(p.a.snap_sent_status, TRANSPORT_OK);
	assert_int_equal(p.a.no_room, 1);
	assert_int_equal(p.b.snap_received, 1);
	transport_stats(p.b.t, &sb);
	assert_int_equal(sb.snapshots_refused_space, 1);
	assert_true(th_pair_stop(&p));
	th_remove_dir(dir);
}

static void test_stalled_stream_taken_over(void **state)
{
	struct transport_config cfg = {0};
	struct th_pair p;
	char dir[] = "/tmp/dr-transport-XXXXXX", src[600];
	const size_t size = (8u << 20) + 77;
	struct transport_snapshot_header sh = {.group_id = 6, .from = 1, .to = 2};
	struct raft_snapshot_meta meta = test_meta();
	struct transport_stats sb;
	uint8_t *first = malloc(64 << 10);
	uint64_t resume, got;
	uint32_t crc, crc2;
	struct th_raw r;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(src, sizeof(src), "%s/source.snap", dir);
	crc = write_source(src, size);
	f = fopen(src, "rb");
	assert_int_equal(fread(first, 1, 64 << 10, f), 64 << 10);
	fclose(f);
	cfg.snapshot_dir = dir;
	assert_int_equal(th_pair_start(&p, SECRET, SECRET, &cfg), 0);
	/* A stream of node 1 for group 6 sends 64 KiB, then holds its connection silently. */
	sh.meta = meta;
	sh.total_size = size;
	sh.crc32c = crc;
	assert_int_equal(raw_begin(&p, &r, &sh, &resume), TF_SNAP_RESUME);
	assert_int_equal(th_raw_send_frame(&r, TF_SNAP_CHUNK, first, 64 << 10, false), 0);
	th_run_for(&p.loop, 50);
	/* Node 1's real BEGIN for the group takes the stream over and completes it. */
	assert_int_equal(transport_send_snapshot(p.a.t, 2, 6, &meta, src), 0);
	if (!th_run_until(&p.loop, sender_done, &p, 10000))
		fail_msg("expected the snapshot to complete");
	assert_int_equal(p.a.snap_sent_status, 0);
	assert_int_equal(p.b.snap_received, 1);
	assert_true(file_crc(p.b.snap_path, &got, &crc2));
	assert_int_equal(got, size);
	assert_int_equal(crc2, crc);
	transport_stats(p.b.t, &sb);
	assert_int_equal(sb.snapshot_takeovers, 1);
	assert_int_equal(sb.snapshot_resumes, 1); /* it kept the 64 KiB */
	assert_true(th_raw_wait_closed(&r, 5000));
	th_raw_close(&r);
	unlink(p.b.snap_path);
	unlink(src);
	free(first);
	assert_true(th_pair_stop(&p));
	th_remove_dir(dir);
}

static int io_reset(void **state)
{
	(void)state;
	pthread_mutex_lock(&io.mu);
	io.released = true;
	pthread_cond_broadcast(&io.cv);
	pthread_mutex_unlock(&io.mu);
	transport_set_io_hooks(NULL);
	return 0;
}

static void test_messages_flow_while_chunk_write_stalls(void **state)
{
	struct transport_config cfg = {.snapshot_chunk = 256 << 10};
	struct th_pair p;
	struct snapctx s = {.p = &p};
	char dir[] = "/tmp/dr-transport-XXXXXX", src[600];
	struct raft_snapshot_meta meta = test_meta();
	const size_t size = 4u << 20;
	uint64_t got, before;
	uint32_t crc, crc2;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(src, sizeof(src), "%s/source.snap", dir);
	crc = write_source(src, size);
	io.loop_thread = pthread_self();
	io.calls = io.on_loop = 0;
	io.stalled = io.released = false;
	io.stall_next_write = true;
	io.fail_errno = 0;
	transport_set_io_hooks(&hooks);
	cfg.snapshot_dir = dir;
	assert_int_equal(th_pair_start(&p, SECRET, SECRET, &cfg), 0);
	heartbeats_start(&s);
	assert_int_equal(transport_send_snapshot(p.a.t, 2, 9, &meta, src), 0);
	/* The receiver's first chunk write hangs on the "disk"... */
	if (!th_run_until(&p.loop, io_stalled, NULL, 10000))
		fail_msg("expected the first chunk write to start");
	/* ...while heartbeats keep arriving: the loop thread is not the one waiting. */
	before = p.b.msgs;
	{
		struct th_want w = {&p.b, before + 20};
		if (!th_run_until(&p.loop, th_got_msgs, &w, 5000))
			fail_msg("expected 20 heartbeats during the stalled write, got %llu",
			         (unsigned long long)(p.b.msgs - before));
	}
	assert_int_equal(p.a.snap_sent_status, -1); /* the snapshot is still in progress */
	pthread_mutex_lock(&io.mu);
	io.released = true;
	pthread_cond_broadcast(&io.cv);
	pthread_mutex_unlock(&io.mu);
	if (!th_run_until(&p.loop, snap_sent, &p.a, 20000))
		fail_msg("expected the snapshot to finish once the write was released");
	heartbeats_stop(&s);
	assert_int_equal(p.a.snap_sent_status, TRANSPORT_OK);
	assert_true(file_crc(p.b.snap_path, &got, &crc2));
	assert_int_equal(got, size);
	assert_int_equal(crc2, crc);
	assert_true(th_pair_stop(&p));
	transport_set_io_hooks(NULL);
	th_remove_dir(dir);
	/* Every chunk read and write (and the checksum pass) ran on the thread pool. */
	assert_true(io.calls >= 2 * (int)(size / (256 << 10)));
	if (io.on_loop != 0)
		fail_msg("expected no snapshot file I/O on the loop thread, saw %d of %d calls",
		         io.on_loop, io.calls);
}

/*
 * A peer removed while a stream to it is under way, or while its checksum
 * pass runs: the stream ends with TRANSPORT_EUNREACHABLE in a later loop
 * turn, never from inside transport_remove_peer().  Declared again, a new
 * stream gets through.
 */
static void test_remove_peer_ends_stream(void **state)
{
	struct transport_config cfg = {.snapshot_chunk = 256 << 10};
	struct th_pair p;
	char dir[] = "/tmp/dr-transport-XXXXXX", src[600], addr[64];
	struct raft_snapshot_meta meta = test_meta();
	const size_t size = 4u << 20;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(src, sizeof(src), "%s/source.snap", dir);
	write_source(src, size);
	io.loop_thread = pthread_self();
	io.calls = io.on_loop = 0;
	io.stalled = io.released = false;
	io.stall_next_write = true;
	io.fail_errno = 0;
	transport_set_io_hooks(&hooks);
	cfg.snapshot_dir = dir;
	assert_int_equal(th_pair_start(&p, SECRET, SECRET, &cfg), 0);
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", p.b.port);
	assert_int_equal(transport_send_snapshot(p.a.t, 2, 9, &meta, src), 0);
	if (!th_run_until(&p.loop, io_stalled, NULL, 10000))
		fail_msg("expected the first chunk write to start");
	assert_int_equal(transport_remove_peer(p.a.t, 2), TRANSPORT_OK);
	assert_int_equal(p.a.snap_sent_status, -1);
	pthread_mutex_lock(&io.mu);
	io.released = true;
	pthread_cond_broadcast(&io.cv);
	pthread_mutex_unlock(&io.mu);
	if (!th_run_until(&p.loop, snap_sent, &p.a, 20000))
		fail_msg("expected the stream to end");
	assert_int_equal(p.a.snap_sent_status, TRANSPORT_EUNREACHABLE);
	assert_false(p.a.snap_sent_by_receiver); /* (the engine's line says "on the way") */
	/* Removed during the checksum pass. */
	assert_int_equal(transport_add_peer(p.a.t, 2, addr), TRANSPORT_OK);
	p.a.snap_sent_status = -1;
	assert_int_equal(transport_send_snapshot(p.a.t, 2, 9, &meta, src), 0);
	assert_int_equal(transport_remove_peer(p.a.t, 2), TRANSPORT_OK);
	assert_int_equal(transport_send_snapshot(p.a.t, 2, 9, &meta, src), TRANSPORT_ENOPEER);
	if (!th_run_until(&p.loop, snap_sent, &p.a, 20000))
		fail_msg("expected the stream to end");
	assert_int_equal(p.a.snap_sent_status, TRANSPORT_EUNREACHABLE);
	assert_int_equal(p.b.snap_received, 0);
	/* Declared again: the next stream is delivered. */
	assert_int_equal(transport_add_peer(p.a.t, 2, addr), TRANSPORT_OK);
	p.a.snap_sent_status = -1;
	assert_int_equal(transport_send_snapshot(p.a.t, 2, 9, &meta, src), 0);
	if (!th_run_until(&p.loop, snap_sent, &p.a, 20000))
		fail_msg("expected the stream to end");
	assert_int_equal(p.a.snap_sent_status, TRANSPORT_OK);
	assert_int_equal(p.b.snap_received, 1);
	assert_true(th_pair_stop(&p));
	transport_set_io_hooks(NULL);
	th_remove_dir(dir);
}

static bool io_calls_at_least(void *arg)
{
	bool r;

	pthread_mutex_lock(&io.mu);
	r = io.calls >= *(int *)arg;
	pthread_mutex_unlock(&io.mu);
	return r;
}

/*
 * The receiver's first chunk write fails (ENOSPC) while the next chunks are on
 * their way: SNAP_DONE(EIO) ends the stream on the sender, and the chunks it
 * wrote before reading that are discarded, not taken for a protocol violation
 * (that closed the connection, logged it as refused and counted a protocol
 * error: review 53).
 */
static void test_write_error_fails_stream(void **state)
{
	struct transport_config cfg = {0};
	struct th_pair p;
	char dir[] = "/tmp/dr-transport-XXXXXX", src[600], part[600];
	struct raft_snapshot_meta meta = test_meta();
	struct transport_stats sb;
	int calls = 16 + 1 + 4;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(src, sizeof(src), "%s/source.snap", dir);
	snprintf(part, sizeof(part), "%s/snap-g9-n1-i500-t3.part", dir);
	write_source(src, 1u << 20);
	io.loop_thread = pthread_self();
	io.stall_next_write = true;
	io.stalled = io.released = false;
	io.fail_errno = 0;
	io.calls = 0;
	transport_set_io_hooks(&hooks);
	cfg.snapshot_dir = dir;
	cfg.snapshot_chunk = 64u << 10; /* 16 chunks */
	assert_int_equal(th_pair_start(&p, SECRET, SECRET, &cfg), 0);
	assert_int_equal(transport_send_snapshot(p.a.t, 2, 9, &meta, src), 0);
	if (!th_run_until(&p.loop, io_stalled, NULL, 10000))
		fail_msg("expected the first chunk write");
	/* Chunk 2 is staged, chunk 3 waits in the socket once the sender reads chunk 4 (after
	 * the checksum pass's 16 reads and the held write). */
	if (!th_run_until(&p.loop, io_calls_at_least, &calls, 10000))
		fail_msg("expected the sender to write its third chunk");
	pthread_mutex_lock(&io.mu);
	io.fail_errno = ENOSPC;
	io.released = true;
	pthread_cond_broadcast(&io.cv);
	pthread_mutex_unlock(&io.mu);
	if (!th_run_until(&p.loop, snap_sent, &p.a, 10000))
		fail_msg("expected the stream to end when the receiver cannot write");
	assert_int_equal(p.a.snap_sent_status, TRANSPORT_EIO);
	assert_true(p.a.snap_sent_by_receiver); /* (the engine's line names the receiver) */
	assert_int_equal(p.b.snap_received, 0);
	assert_true(path_gone(part));
	transport_stats(p.b.t, &sb);
	assert_int_equal(sb.snapshot_failures, 1);
	assert_int_equal(sb.protocol_errors, 0);
	assert_true(sb.snapshot_frames_discarded > 0);
	assert_true(th_pair_stop(&p));
	transport_set_io_hooks(NULL);
	th_remove_dir(dir);
}

/*
 * A stream dropped while its chunk write is stuck on the disk (doomed: freed and its file
 * deleted when the write ends), its connection closed meanwhile: the rest the sender wrote
 * before the status is discarded, a new BEGIN of the group answers EPROTO while the write
 * is in flight (nothing to resume), and once it ends the file is gone and a new stream on
 * that same connection goes through (review 56; ASan checks the frees).
 */
static void test_doomed_stream_conn_closed(void **state)
{
	struct transport_config cfg = {0};
	struct th_pair p;
	char dir[] = "/tmp/dr-transport-XXXXXX", part[600];
	struct transport_snapshot_header sh = {
	        .group_id = 5, .from = 1, .to = 2, .total_size = 3 * 4096, .crc32c = 1};
	struct transport_stats st;
	struct th_raw r, r2;
	uint64_t v;
	uint8_t chunk[4096], in[64];
	uint32_t len = 0;

	(void)state;
	assert_non_null(mkdtemp(dir));
	cfg.snapshot_dir = dir;
	sh.meta = test_meta();
	snprintf(part, sizeof(part), "%s/snap-g5-n1-i%llu-t%llu.part", dir,
	         (unsigned long long)sh.meta.index, (unsigned long long)sh.meta.term);
	th_fill_pattern(chunk, sizeof(chunk), 7);
	io.loop_thread = pthread_self();
	io.stall_next_write = true;
	io.stalled = io.released = false;
	io.fail_errno = 0;
	transport_set_io_hooks(&hooks);
	assert_int_equal(th_pair_start(&p, SECRET, SECRET, &cfg), 0);
	assert_int_equal(raw_begin(&p, &r, &sh, &v), TF_SNAP_RESUME);
	assert_int_equal(th_raw_send_frame(&r, TF_SNAP_CHUNK, chunk, sizeof(chunk), false), 0);
	if (!th_run_until(&p.loop, io_stalled, NULL, 10000))
		fail_msg("expected the first chunk write");
	transport_drop_group_snapshots(p.b.t, 5);
	assert_int_equal(th_raw_recv_frame(&r, in, sizeof(in), &len, 5000), TF_SNAP_DONE);
	assert_int_equal(tp_get32(in), TRANSPORT_EINVAL);
	assert_int_equal(th_raw_send_frame(&r, TF_SNAP_CHUNK, chunk, sizeof(chunk), false), 0);
	WAIT_STAT(p.b.t, snapshot_frames_discarded, 1);
	th_raw_close(&r);
	/* The write still in flight: a new BEGIN of the stream cannot take it over. */
	assert_int_equal(raw_begin(&p, &r2, &sh, &v), TF_SNAP_DONE);
	assert_int_equal(v, TRANSPORT_EPROTO);
	assert_false(path_gone(part));
	pthread_mutex_lock(&io.mu);
	io.released = true;
	pthread_cond_broadcast(&io.cv);
	pthread_mutex_unlock(&io.mu);
	if (!th_run_until(&p.loop, path_gone, part, 10000))
		fail_msg("expected the doomed stream's file deleted once its write ended");
	/* Now the same BEGIN on the same connection starts afresh, and completes. */
	sh.total_size = sizeof(chunk);
	sh.crc32c = dr_crc32c(0, chunk, sizeof(chunk));
	assert_int_equal(raw_send_begin(&r2, &sh, &v), TF_SNAP_RESUME);
	assert_int_equal(v, 0);
	assert_int_equal(th_raw_send_frame(&r2, TF_SNAP_CHUNK, chunk, sizeof(chunk), false), 0);
	assert_int_equal(th_raw_send_frame(&r2, TF_SNAP_END, NULL, 0, false), 0);
	assert_int_equal(th_raw_recv_frame(&r2, in, sizeof(in), &len, 5000), TF_SNAP_DONE);
	assert_int_equal(tp_get32(in), TRANSPORT_OK);
	assert_int_equal(p.b.snap_received, 1);
	th_raw_close(&r2);
	transport_stats(p.b.t, &st);
	assert_int_equal(st.protocol_errors, 0);
	assert_int_equal(st.snapshot_frames_discarded, 1);
	assert_true(th_pair_stop(&p));
	transport_set_io_hooks(NULL);
	th_remove_dir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	        cmocka_unit_test(test_snapshot_checksum_mismatch),
	        cmocka_unit_test(test_snapshot_100mib_with_heartbeats),
	        cmocka_unit_test(test_partial_expires_then_full_resend),
	        cmocka_unit_test(test_stale_parts_deleted_at_start),
	        cmocka_unit_test(test_private_dir_parts_deleted_at_start),
	        cmocka_unit_test_teardown(test_messages_flow_while_chunk_write_stalls, io_reset),
	        cmocka_unit_test_teardown(test_write_error_fails_stream, io_reset),
	        cmocka_unit_test_teardown(test_remove_peer_ends_stream, io_reset),
	        cmocka_unit_test(test_oversize_snapshots_refused),
	        cmocka_unit_test(test_dropped_stream_rest_discarded),
	        cmocka_unit_test(test_ended_stream_discard_bounded),
	        cmocka_unit_test_teardown(test_doomed_stream_conn_closed, io_reset),
	        cmocka_unit_test(test_no_room_told_to_sender),
	        cmocka_unit_test(test_stalled_stream_taken_over),
	};
	signal(SIGPIPE, SIG_IGN); /* as every embedder does (PostgreSQL, dr-node) */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
