/*
 * engine_uv.c - the libuv driver of the engine (see engine_uv.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine_uv.h"
#include "engine/loglimit.h"

#define MAX_ROUNDS_PER_TURN 8

/* A RAFT_MSG_SNAPSHOT waiting for its file's stream to finish. */
struct snap_out {
	struct snap_out *next;
	struct raft_message m;
	struct raft_snapshot_meta meta;
	char path[ENGINE_PATH_MAX + 96]; /* deleted once the stream ended */
};

/* A received snapshot file waiting for its message (one per group and sender, as the
 * transport's streams). */
struct snap_in {
	struct snap_in *next;
	uint64_t group_id;
	uint64_t from;
	raft_index index;
	raft_term term;
	char path[ENGINE_PATH_MAX];
};

/* How often a line of one cause about one group and node is logged (log_due): a stream
 * that failed the same way to the same member, messages dropped from one sender. */
#define LOG_LIMIT_MS 60000

struct engine_uv {
	uv_loop_t *loop;
	struct engine *e;
	struct transport *t;
	uv_timer_t tick;
	uv_prepare_t prep;
	uv_check_t check;
	uv_idle_t idle;
	unsigned open_handles;
	bool transport_open;
	bool closing;
	struct snap_out *outs;
	struct snap_in *ins;
	uv_work_t sync_work; /* the background sync of deferred leader writes */
	bool sync_running;
	int sync_rc;
	int (*sync)(void *ctx); /* storage's */
	void *sync_ctx;
	void (*log_fn)(void *ctx, int level, const char *msg); /* the embedder's */
	void *log_ctx;
	char tp_error[512]; /* the transport's last error line (for engine_uv_create) */
	uint64_t node_id;   /* this node's */
	struct loglimit limits;
};

static void maybe_free(struct engine_uv *u)
{
	if (!u->closing || u->open_handles > 0 || u->transport_open || u->sync_running)
		return;
	while (u->outs != NULL) {
		struct snap_out *o = u->outs;

		u->outs = o->next;
		remove(o->path);
		free(o);
	}
	while (u->ins != NULL) {
		struct snap_in *i = u->ins;

		u->ins = i->next;
		remove(i->path);
		free(i);
	}
	engine_destroy(u->e);
	free(u);
}

/* ---- network ops for the engine ---- */

static int net_send(void *ctx, const struct raft_message *m)
{
	struct engine_uv *u = ctx;
	int rc = transport_send(u->t, m);

	/* Dropped messages are reported through on_unreachable by the transport. */
	if (rc == TRANSPORT_OK || rc == TRANSPORT_EQUEUEFULL || rc == TRANSPORT_EUNREACHABLE)
		return ENGINE_OK;
	return ENGINE_ERR_INVALID;
}

static int net_send_snapshot(void *ctx, const struct raft_message *m, const char *path)
{
	struct engine_uv *u = ctx;
	struct snap_out *o = calloc(1, sizeof(*o));
	int rc;

	if (o == NULL) {
		remove(path);
		return ENGINE_ERR_NOMEM;
	}
	o->m = *m;
	o->meta = *m->snapshot;
	o->m.snapshot = &o->meta;
	o->m.entries = NULL;
	o->m.n_entries = 0;
	snprintf(o->path, sizeof(o->path), "%s", path);
	rc = transport_send_snapshot(u->t, m->to, m->group_id, &o->meta, path);
	if (rc != TRANSPORT_OK) {
		free(o);
		remove(path);
		return ENGINE_ERR_SNAPSHOT;
	}
	o->next = u->outs;
	u->outs = o;
	return ENGINE_OK;
}

static void net_flush(void *ctx)
{
	transport_write_queued(((struct engine_uv *)ctx)->t);
}

static int net_add_peer(void *ctx, raft_id node_id, const char *addr)
{
	struct engine_uv *u = ctx;

	return transport_add_peer(u->t, node_id, addr) == TRANSPORT_OK ? ENGINE_OK
	                                                               : ENGINE_ERR_INVALID;
}

static void net_remove_peer(void *ctx, raft_id node_id)
{
	transport_remove_peer(((struct engine_uv *)ctx)->t, node_id);
}

/* The file of group_id from node `from` (any sender: from 0) waiting for its message; or
 * where to link one. */
static struct snap_in **find_in(struct engine_uv *u, uint64_t group_id, uint64_t from)
{
	struct snap_in **pp;

	for (pp = &u->ins; *pp != NULL; pp = &(*pp)->next)
		if ((*pp)->group_id == group_id && (from == 0 || (*pp)->from == from))
			return pp;
	return pp;
}

/*
 * The group stopped here: a received file waiting for its message is deleted
 * (the message would be refused now: the transport drops messages of groups
 * the engine does not run, so the file stayed until the next snapshot of the
 * group, or the close), and so are the streams being received for it.
 */
static void net_group_stopped(void *ctx, uint64_t group_id)
{
	struct engine_uv *u = ctx;
	struct snap_in **pp, *in;

	while ((in = *(pp = find_in(u, group_id, 0))) != NULL) {
		*pp = in->next;
		remove(in->path);
		free(in);
	}
	transport_drop_group_snapshots(u->t, group_id);
}

/* ---- transport callbacks ---- */

static void on_batch(void *ctx, uint64_t from, const struct raft_message *msgs, size_t n)
{
	struct engine_uv *u = ctx;
	size_t i = 0;

	(void)from;
	if (u->closing)
		return;
	while (i < n) {
		size_t j = i;

		while (j < n && msgs[j].type != RAFT_MSG_SNAPSHOT)
			j++;
		if (j > i)
			engine_deliver(u->e, msgs + i, j - i);
		if (j < n) {
			/* The file came first (the sender waits for the stream's end); it must be
			 * the one this sender streamed for this very snapshot. */
			struct snap_in **pp = find_in(u, msgs[j].group_id, msgs[j].from), *in = *pp;

			if (in != NULL && msgs[j].snapshot != NULL &&
			    in->index == msgs[j].snapshot->index &&
			    in->term == msgs[j].snapshot->term) {
				/* (the engine takes the file, whatever the outcome) */
				*pp = in->next;
				engine_deliver_snapshot(u->e, &msgs[j], in->path);
				free(in);
			}
			j++;
		}
		i = j;
	}
}

static void on_unreachable(void *ctx, uint64_t node_id, uint64_t group_id)
{
	struct engine_uv *u = ctx;

	if (!u->closing)
		engine_report_unreachable(u->e, node_id, group_id);
}

static void on_snapshot_received(void *ctx, uint64_t from, uint64_t group_id,
                                 const struct raft_snapshot_meta *meta, const char *path)
{
	struct engine_uv *u = ctx;
	struct snap_in **pp = find_in(u, group_id, from), *in = *pp;

	/* Its message would be refused: the group stopped while the file came in, or
	 * committed that far meanwhile (from a newer leader's snapshot or entries).
	 * Unless the core took this very snapshot from an earlier stream of it and
	 * its Ready has not run yet: the file under this name is the one it installs
	 * (this stream renamed its copy over it). */
	if (u->closing || !engine_accepts(u->e, group_id, from) ||
	    !engine_snapshot_useful(u->e, group_id, meta->index)) {
		if (!engine_snapshot_held(u->e, group_id, path))
			remove(path);
		return;
	}
	if (in == NULL) {
		in = calloc(1, sizeof(*in));
		if (in == NULL) {
			remove(path);
			return;
		}
		in->group_id = group_id;
		*pp = in;
	} else if (strcmp(in->path, path) != 0) {
		remove(in->path); /* superseded by the same sender's next stream */
	}
	in->from = from;
	in->index = meta->index;
	in->term = meta->term;
	snprintf(in->path, sizeof(in->path), "%s", path);
}

/* Why a stream failed, for the operator: the receiver's answer (by_receiver), or what
 * failed here or on the way. */
static const char *stream_failure_why(int status, bool by_receiver)
{
	if (!by_receiver) {
		switch (status) {
		case TRANSPORT_EIO:
			return "it could not read its snapshot file (see the transport's line "
			       "before)";
		case TRANSPORT_EUNREACHABLE:
			return "the member could not be reached (the connection broke more often "
			       "than the stream's retries, or it is no peer of this node any more)";
		default:
			return transport_strerror(status);
		}
	}
	switch (status) {
	case TRANSPORT_EINVAL:
		return "it does not run the group, or does not take this node for a member of it";
	case TRANSPORT_ETOOBIG:
		return "the snapshot is larger than it takes";
	case TRANSPORT_EPROTO:
		return "it took the stream for a protocol violation (a stream of the group still "
		       "being completed there?)";
	case TRANSPORT_EIO:
		return "it could not write the file (see its server log)";
	case TRANSPORT_ECHECKSUM:
		return "the file it received had the wrong size or checksum";
	default:
		return transport_strerror(status);
	}
}

/*
 * Whether a line about (group_id, node, kind) is due (loglimit.h: once a
 * minute for each, a table per line); *left_out and *others set to what it
 * left out, for log_limited.
 */
static bool log_due(struct engine_uv *u, enum loglimit_line line, uint64_t group_id, uint64_t node,
                    int kind, uint64_t *left_out, uint64_t *others)
{
	return u->log_fn != NULL && loglimit_due(&u->limits, line, uv_now(u->loop), group_id, node,
	                                         kind, left_out, others);
}

/* Logs line with what log_due left out: of its key, and of other keys of the line. */
static void log_limited(struct engine_uv *u, const char *line, uint64_t left_out, uint64_t others)
{
	char buf[768], more[160] = "";
	int n = 0;

	if (left_out > 0)
		n = snprintf(more, sizeof(more), " (%llu more since the last line)",
		             (unsigned long long)left_out);
	if (others > 0 && n >= 0 && (size_t)n < sizeof(more))
		snprintf(more + n, sizeof(more) - (size_t)n,
		         " (%llu lines like it of other groups or nodes left out)",
		         (unsigned long long)others);
	snprintf(buf, sizeof(buf), "%s%s", line, more);
	u->log_fn(u->log_ctx, TRANSPORT_LOG_INFO, buf);
}

/*
 * A stream to a member failed or was refused: said once a minute per group,
 * member and cause, with how many were left out (review 57: nothing was
 * logged, and an operator could not tell why a member lagged), and on which
 * side it failed (review 69: a file this node could not read read as the
 * member's failure).  A refusal for want of room has its own line
 * (engine_snapshot_refused_by).
 */
static void log_stream_failure(struct engine_uv *u, uint64_t to, uint64_t group_id, int status,
                               bool by_receiver)
{
	char line[512], side[64];
	uint64_t left_out, others;

	if (status == TRANSPORT_ENOSPACE ||
	    !log_due(u, LOGLIMIT_STREAM_FAILED, group_id, to, status * 2 + (by_receiver ? 1 : 0),
	             &left_out, &others))
		return;
	if (by_receiver)
		snprintf(side, sizeof(side), "on node %llu", (unsigned long long)to);
	else
		snprintf(side, sizeof(side), "%s",
		         status == TRANSPORT_EUNREACHABLE ? "on the way" : "on this node");
	snprintf(line, sizeof(line),
	         "the snapshot of dragonraft group %llu to node %llu failed %s: %s; it is sent "
	         "again after a pause",
	         (unsigned long long)group_id, (unsigned long long)to, side,
	         stream_failure_why(status, by_receiver));
	log_limited(u, line, left_out, others);
}

static void on_snapshot_sent(void *ctx, uint64_t to, uint64_t group_id, raft_index index,
                             int status, bool by_receiver)
{
	struct engine_uv *u = ctx;
	struct snap_out **pp, *o = NULL;

	for (pp = &u->outs; *pp != NULL; pp = &(*pp)->next) {
		if ((*pp)->m.to == to && (*pp)->m.group_id == group_id &&
		    (*pp)->meta.index == index) {
			o = *pp;
			*pp = o->next;
			break;
		}
	}
	if (o != NULL)
		remove(o->path);
	if (!u->closing && status != TRANSPORT_OK)
		log_stream_failure(u, to, group_id, status, by_receiver);
	if (!u->closing) {
		if (status == TRANSPORT_OK && o != NULL &&
		    transport_send(u->t, &o->m) == TRANSPORT_OK)
			engine_snapshot_sent(u->e, to, group_id, false);
		else
			engine_snapshot_sent(u->e, to, group_id, true);
	}
	free(o);
}

/*
 * A snapshot refused for want of room (review 28 F5).  Here: the group's
 * status says so until a snapshot arrives or it catches up (the transport
 * logged it).  There: the follower refused this node's stream; the engine
 * keeps the one record of it, for the status and the log line.
 */
static void on_snapshot_no_room(void *ctx, const struct transport_no_room *r)
{
	struct engine_uv *u = ctx;
	char msg[512];

	if (u->closing)
		return;
	if (!r->here) {
		engine_snapshot_refused_by(u->e, r->group_id, r->node_id, r->need, r->free_bytes,
		                           r->min_free);
		return;
	}
	snprintf(msg, sizeof(msg),
	         "no room for the snapshot of group %llu from node %llu: %llu bytes to come "
	         "and %llu to stay free, %llu free in \"%s\"; make room there, and the "
	         "leader sends it again",
	         (unsigned long long)r->group_id, (unsigned long long)r->node_id,
	         (unsigned long long)r->need, (unsigned long long)r->min_free,
	         (unsigned long long)r->free_bytes, r->dir != NULL ? r->dir : "");
	engine_snapshot_refused(u->e, r->group_id, r->node_id, msg);
}

static bool membership_check(void *ctx, uint64_t group_id, uint64_t from)
{
	struct engine_uv *u = ctx;

	return !u->closing && engine_accepts(u->e, group_id, from);
}

/*
 * The transport drops (msgs_dropped_no_group) messages of a group that does
 * not run here: a member that stopped the group (a lost or damaged log, a
 * failed start), left it while the leader still counts it in, did not start
 * it (beyond max_groups) or has not joined it yet.  Said once a minute per
 * group and sender (review 69: only the counter showed them).
 */
static bool group_runs(void *ctx, uint64_t group_id, uint64_t from)
{
	struct engine_uv *u = ctx;
	char line[512];
	uint64_t left_out, others;

	if (u->closing)
		return false;
	if (engine_runs_group(u->e, group_id))
		return true;
	if (log_due(u, LOGLIMIT_NO_GROUP, group_id, from, 0, &left_out, &others)) {
		snprintf(line, sizeof(line),
		         "dragonraft node %llu drops the messages of group %llu from node %llu: "
		         "the "
		         "group does not run here (not joined yet, stopped, left, or beyond "
		         "dragonraft.max_groups: see dragonraft.status, dragonraft.left_groups and "
		         "dragonraft.stat_node); if this node left it for good, run "
		         "dragonraft.remove_member(%llu, %llu) on the group's leader",
		         (unsigned long long)u->node_id, (unsigned long long)group_id,
		         (unsigned long long)from, (unsigned long long)group_id,
		         (unsigned long long)u->node_id);
		log_limited(u, line, left_out, others);
	}
	return false;
}

/* The engine's lines (refused snapshots, addresses not learned) go to the embedder. */
static void on_engine_log(void *ctx, int level, const char *line)
{
	struct engine_uv *u = ctx;

	if (u->log_fn != NULL)
		u->log_fn(u->log_ctx,
		          level == ENGINE_LOG_WARNING ? TRANSPORT_LOG_WARNING : TRANSPORT_LOG_INFO,
		          line);
}

/* Transport log lines go to the embedder; an error line is kept to say why create failed. */
static void on_log(void *ctx, int level, const char *msg)
{
	struct engine_uv *u = ctx;

	if (level == TRANSPORT_LOG_ERROR)
		snprintf(u->tp_error, sizeof(u->tp_error), "transport: %s",
		         strncmp(msg, "dragonraft transport: ", 22) == 0 ? msg + 22 : msg);
	if (u->log_fn != NULL)
		u->log_fn(u->log_ctx, level, msg);
}

static void on_closed(void *ctx)
{
	struct engine_uv *u = ctx;

	u->transport_open = false;
	maybe_free(u);
}

/* ---- loop handles ---- */

/* An active idle handle makes the loop poll without blocking; nothing to do here. */
static void on_idle(uv_idle_t *h)
{
	(void)h;
}

/* On a thread of libuv's pool. */
static void on_sync_work(uv_work_t *w)
{
	struct engine_uv *u = w->data;

	u->sync_rc = u->sync(u->sync_ctx);
}

static void on_sync_done(uv_work_t *w, int status)
{
	struct engine_uv *u = w->data;

	u->sync_running = false;
	if (u->closing) {
		maybe_free(u);
		return;
	}
	/* (In the loop's poll phase: the check handle runs the round this marks, and
	 * starts the next sync.) */
	engine_sync_done(u->e, status == 0 ? u->sync_rc : ENGINE_ERR_STORAGE);
}

static void run_rounds(struct engine_uv *u)
{
	for (int i = 0; i < MAX_ROUNDS_PER_TURN && engine_has_work(u->e); i++)
		if (engine_run_round(u->e) != ENGINE_OK)
			break;
	/* Deferred leader writes: one background sync at a time (engine.h). */
	if (!u->sync_running && engine_sync_wanted(u->e)) {
		engine_sync_begin(u->e);
		u->sync_work.data = u;
		if (uv_queue_work(u->loop, &u->sync_work, on_sync_work, on_sync_done) == 0)
			u->sync_running = true;
		else
			engine_sync_done(u->e, ENGINE_ERR_STORAGE);
	}
	transport_flush(u->t);
	/* More work: keep the loop from blocking in poll. */
	if (engine_has_work(u->e))
		uv_idle_start(&u->idle, on_idle);
	else
		uv_idle_stop(&u->idle);
}

/*
 * Rounds run after the loop polled (a check handle), so that a round takes
 * every message read in this turn: acknowledgements that arrived while the
 * engine waited are applied before the next entries' save (apply_persisted
 * in round.c), not after it.  Before the poll, work that timers or
 * callbacks made only keeps the poll from blocking.
 */
static void on_prepare(uv_prepare_t *h)
{
	struct engine_uv *u = h->data;

	if (!u->closing && engine_has_work(u->e))
		uv_idle_start(&u->idle, on_idle);
}

static void on_check(uv_check_t *h)
{
	struct engine_uv *u = h->data;

	if (!u->closing)
		run_rounds(u);
}

/*
 * A received file whose message has not come, once its group committed past
 * it, is deleted: the message would be refused now, and it may never come (its
 * sender crashed, or lost the connection, after the stream ended).
 */
static void drop_outrun_ins(struct engine_uv *u)
{
	struct snap_in **pp = &u->ins;

	while (*pp != NULL) {
		struct snap_in *in = *pp;

		if (engine_snapshot_useful(u->e, in->group_id, in->index)) {
			pp = &in->next;
			continue;
		}
		*pp = in->next;
		if (!engine_snapshot_held(u->e, in->group_id, in->path))
			remove(in->path);
		free(in);
	}
}

static bool stream_outrun(void *ctx, uint64_t group_id, uint64_t index)
{
	return !engine_snapshot_useful(((struct engine_uv *)ctx)->e, group_id, index);
}

static void on_tick(uv_timer_t *h)
{
	struct engine_uv *u = h->data;

	if (u->closing)
		return;
	engine_tick(u->e);
	drop_outrun_ins(u);
	/* And so are the partial files of broken streams it passed, kept for a
	 * resume (an old leader that crashed or lost its connection midway): they
	 * stayed until they aged out (snapshot_part_max_age_ms, 10 minutes by
	 * default), their remaining bytes counted against the room that a newer
	 * leader's stream needs. */
	transport_drop_outrun_snapshots(u->t, stream_outrun, u);
}

static void on_handle_closed(uv_handle_t *h)
{
	struct engine_uv *u = h->data;

	u->open_handles--;
	maybe_free(u);
}

int engine_uv_create(uv_loop_t *loop, const struct engine_config *ecfg,
                     const struct engine_storage_ops *storage, const struct transport_config *tcfg,
                     struct engine_uv **out, char *errmsg, size_t errmsg_len)
{
	struct transport_callbacks cb;
	struct transport_config tc = *tcfg;
	struct engine_config ec = *ecfg;
	struct engine_network_ops net;
	struct engine_uv *u;
	int rc;

	*out = NULL;
	/* (Before the transport, which would scan and write that directory.) */
	rc = engine_check_snapshot_dir(tcfg->snapshot_dir != NULL ? tcfg->snapshot_dir
	                                                          : ecfg->snapshot_dir,
	                               errmsg, errmsg_len);
	if (rc != ENGINE_OK)
		return rc;
	u = calloc(1, sizeof(*u));
	if (u == NULL)
		return ENGINE_ERR_NOMEM;
	u->loop = loop;
	memset(&cb, 0, sizeof(cb));
	cb.ctx = u;
	cb.on_message_batch = on_batch;
	cb.on_unreachable = on_unreachable;
	cb.on_snapshot_received = on_snapshot_received;
	cb.on_snapshot_sent = on_snapshot_sent;
	cb.on_snapshot_no_room = on_snapshot_no_room;
	cb.membership_check = membership_check;
	cb.group_runs = group_runs;
	cb.on_closed = on_closed;
	tc.node_id = ecfg->node_id;
	u->node_id = ecfg->node_id;
	loglimit_init(&u->limits, LOG_LIMIT_MS);
	if (tc.snapshot_dir == NULL)
		tc.snapshot_dir = ecfg->snapshot_dir;
	u->log_fn = tcfg->log_fn;
	u->log_ctx = tcfg->log_ctx;
	tc.log_fn = on_log;
	tc.log_ctx = u;
	rc = transport_create(loop, &tc, &cb, &u->t);
	if (rc != TRANSPORT_OK) {
		if (errmsg != NULL && errmsg_len > 0)
			snprintf(errmsg, errmsg_len, "%s",
			         u->tp_error[0] != '\0' ? u->tp_error : transport_strerror(rc));
		free(u);
		return ENGINE_ERR_INVALID;
	}
	u->transport_open = true;
	memset(&net, 0, sizeof(net));
	net.ctx = u;
	net.send = net_send;
	net.send_snapshot = net_send_snapshot;
	net.add_peer = net_add_peer;
	net.flush = net_flush;
	net.remove_peer = net_remove_peer;
	net.group_stopped = net_group_stopped;
	if (ec.log_fn == NULL) {
		ec.log_fn = on_engine_log;
		ec.log_ctx = u;
	}
	u->sync = storage->sync;
	u->sync_ctx = storage->ctx;
	rc = engine_create(&ec, storage, &net, &u->e, errmsg, errmsg_len);
	if (rc != ENGINE_OK)
		goto err_after_transport;
	uv_timer_init(loop, &u->tick);
	uv_prepare_init(loop, &u->prep);
	uv_check_init(loop, &u->check);
	uv_idle_init(loop, &u->idle);
	u->tick.data = u->prep.data = u->check.data = u->idle.data = u;
	u->open_handles = 4;
	uv_timer_start(&u->tick, on_tick, ecfg->rtt_ms ? ecfg->rtt_ms : 50,
	               ecfg->rtt_ms ? ecfg->rtt_ms : 50);
	uv_prepare_start(&u->prep, on_prepare);
	uv_check_start(&u->check, on_check);
	*out = u;
	return ENGINE_OK;

err_after_transport:
	/* The transport frees itself as the loop runs; u goes with it. */
	u->closing = true;
	transport_close(u->t);
	return rc;
}

int engine_uv_reload_tls(struct engine_uv *u, const struct transport_tls_files *f, char *errmsg,
                         size_t errmsg_len)
{
	if (transport_reload_tls(u->t, f) == TRANSPORT_OK)
		return ENGINE_OK;
	if (errmsg != NULL && errmsg_len > 0)
		snprintf(errmsg, errmsg_len, "%s", transport_errmsg(u->t));
	return ENGINE_ERR_INVALID;
}

struct engine *engine_uv_engine(struct engine_uv *u)
{
	return u->e;
}

struct transport *engine_uv_transport(struct engine_uv *u)
{
	return u->t;
}

int engine_uv_fd(struct engine_uv *u)
{
	return uv_backend_fd(u->loop);
}

int engine_uv_timeout(struct engine_uv *u)
{
	return uv_backend_timeout(u->loop);
}

int engine_uv_run_nowait(struct engine_uv *u)
{
	return uv_run(u->loop, UV_RUN_NOWAIT);
}

void engine_uv_close(struct engine_uv *u)
{
	if (u->closing)
		return;
	u->closing = true;
	uv_close((uv_handle_t *)&u->tick, on_handle_closed);
	uv_close((uv_handle_t *)&u->prep, on_handle_closed);
	uv_close((uv_handle_t *)&u->check, on_handle_closed);
	uv_close((uv_handle_t *)&u->idle, on_handle_closed);
	transport_close(u->t);
}
