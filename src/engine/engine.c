/*
 * engine.c - the engine object, its groups (start, restart, join, stop,
 * remove) and their state, the input side (messages, ticks, reports) and
 * status.  See engine_int.h for the other files.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "engine/engine_int.h"

static const struct engine_alloc libc_alloc = {malloc, realloc, free};

const char *engine_strerror(int rc)
{
	switch (rc) {
	case ENGINE_IN_PROGRESS:
		return "in progress";
	case ENGINE_OK:
		return "ok";
	case ENGINE_ERR_NOMEM:
		return "out of memory";
	case ENGINE_ERR_INVALID:
		return "invalid argument";
	case ENGINE_ERR_NO_GROUP:
		return "no such group on this node";
	case ENGINE_ERR_EXISTS:
		return "group already running";
	case ENGINE_ERR_NOT_LEADER:
		return "this node is not the group's leader";
	case ENGINE_ERR_DROPPED:
		return "operation dropped; it can be retried";
	case ENGINE_ERR_UNKNOWN:
		return "outcome unknown: leadership changed, the entry may still commit";
	case ENGINE_ERR_BUSY:
		return "busy: proposals paused by backpressure";
	case ENGINE_ERR_TIMEOUT:
		return "timed out; a proposal may still commit";
	case ENGINE_ERR_TOO_BIG:
		return "entry too big";
	case ENGINE_ERR_PENDING:
		return "another membership change or transfer is in progress";
	case ENGINE_ERR_REJECTED:
		return "rejected by the Raft core";
	case ENGINE_ERR_STORAGE:
		return "storage failure";
	case ENGINE_ERR_SM:
		return "state machine failure";
	case ENGINE_ERR_STOPPED:
		return "group stopped";
	case ENGINE_ERR_RAFT:
		return "Raft core error";
	case ENGINE_ERR_NOT_FOUND:
		return "not found in storage";
	case ENGINE_ERR_SNAPSHOT:
		return "snapshot failure";
	case ENGINE_ERR_FAILED:
		return "the engine stopped after a storage failure; the outcome is unknown";
	case ENGINE_ERR_NOT_HELD:
		return "log entries not held on this node";
	}
	return "unknown error";
}

int eng_err(struct engine *e, int rc, const char *fmt, ...)
{
	va_list ap;

	if (e->failed)
		return rc; /* the failure that stopped the engine stays the message */
	va_start(ap, fmt);
	vsnprintf(e->errmsg, sizeof(e->errmsg), fmt, ap);
	va_end(ap);
	return rc;
}

void eng_say(struct engine *e, int level, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	if (e->cfg.log_fn == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	e->cfg.log_fn(e->cfg.log_ctx, level, line);
}

const char *engine_errmsg(const struct engine *e)
{
	return e->errmsg;
}

int eng_reserve(struct engine *e, void **p, size_t *cap, size_t n, size_t sz)
{
	size_t nc = *cap ? *cap : 16;
	void *np;

	if (n <= *cap)
		return ENGINE_OK;
	while (nc < n)
		nc *= 2;
	np = e->a->realloc(*p, nc * sz);
	if (np == NULL)
		return ENGINE_ERR_NOMEM;
	*p = np;
	*cap = nc;
	return ENGINE_OK;
}

int eng_from_raft(int rc)
{
	switch (rc) {
	case RAFT_OK:
		return ENGINE_OK;
	case RAFT_ERR_NOMEM:
		return ENGINE_ERR_NOMEM;
	case RAFT_ERR_NOT_LEADER:
		return ENGINE_ERR_NOT_LEADER;
	case RAFT_ERR_NO_LEADER:
		return ENGINE_ERR_DROPPED;
	case RAFT_ERR_TOO_MANY_UNCOMMITTED:
		return ENGINE_ERR_BUSY;
	case RAFT_ERR_CONF_CHANGE_PENDING:
	case RAFT_ERR_TRANSFER_IN_PROGRESS:
		return ENGINE_ERR_PENDING;
	case RAFT_ERR_INVALID:
	case RAFT_ERR_REMOVED:
		return ENGINE_ERR_REJECTED;
	case RAFT_ERR_TOO_BIG:
		return ENGINE_ERR_TOO_BIG;
	case RAFT_ERR_STORAGE:
		return ENGINE_ERR_STORAGE;
	}
	return ENGINE_ERR_RAFT;
}

void engine_wait_cb(void *ctx, const struct engine_result *res)
{
	struct engine_wait *w = ctx;

	w->res = *res;
	w->done = true;
}

void eng_complete(struct engine *e, engine_done_cb cb, void *ctx, int rc, uint64_t group,
                  raft_index index, raft_id leader)
{
	struct engine_result res = {rc, group, index, leader};

	e->n_owed--;
	if (cb == NULL)
		return;
	if (e->in_round || e->defer > 0) {
		/* Its room was taken when the operation was accepted (op_group): a
		 * callback run here instead would run inside the walk that completes
		 * it, and one that starts an operation would change what is walked. */
		if (e->n_done >= e->cap_done)
			abort(); /* an operation accepted without room: a bug */
		e->done[e->n_done].cb = cb;
		e->done[e->n_done].ctx = ctx;
		e->done[e->n_done].res = res;
		e->n_done++;
		return;
	}
	cb(ctx, &res);
}

void eng_flush(struct engine *e)
{
	if (e->in_flush || e->in_round || e->defer > 0)
		return; /* the outer flush picks up what was queued */
	e->in_flush = true;
	for (size_t i = 0; i < e->n_done; i++) {
		struct done d = e->done[i];

		d.cb(d.ctx, &d.res);
	}
	e->n_done = 0;
	e->in_flush = false;
}

/* ---- the ready set and the tick set (see struct engine) ---- */

void eng_mark(struct engine *e, struct group *g)
{
	if (g->marked)
		return;
	g->marked = true;
	e->marked[e->n_marked++] = g; /* room for every group */
}

static void tick_add(struct engine *e, struct group *g)
{
	if (g->tick_pos != SIZE_MAX)
		return;
	g->tick_pos = e->n_ticking;
	e->ticking[e->n_ticking++] = g;
}

static void tick_remove(struct engine *e, struct group *g)
{
	struct group *last;

	if (g->tick_pos == SIZE_MAX)
		return;
	last = e->ticking[--e->n_ticking];
	e->ticking[g->tick_pos] = last;
	last->tick_pos = g->tick_pos;
	g->tick_pos = SIZE_MAX;
}

void eng_tick_update(struct engine *e, struct group *g)
{
	bool tick = g->state == GS_ACTIVE && !raft_quiesced(g->r);

	if (tick == (g->tick_pos != SIZE_MAX))
		return;
	if (tick)
		tick_add(e, g);
	else
		tick_remove(e, g);
	eng_changed(e, g); /* quiescent or awake: the status says so */
}

/* Room in the sets for n groups. */
static int sets_reserve(struct engine *e, size_t n)
{
	struct group ***sets[] = {&e->marked, &e->ticking, &e->batch};
	size_t cap = e->cap_sets;

	for (size_t i = 0; i < sizeof(sets) / sizeof(sets[0]); i++) {
		cap = e->cap_sets; /* each grows alike from the same capacity */
		if (eng_reserve(e, (void **)sets[i], &cap, n, sizeof(struct group *)) != ENGINE_OK)
			return ENGINE_ERR_NOMEM;
	}
	e->cap_sets = cap;
	return ENGINE_OK;
}

bool eng_set_state(struct engine *e, struct group *g, enum group_state to)
{
	switch (to) {
	case GS_RECOVERING:
		if (g->state != GS_ACTIVE)
			return false;
		break;
	case GS_RECOVERED:
		if (g->state != GS_RECOVERING)
			return false;
		break;
	case GS_ACTIVE:
		if (g->state != GS_RECOVERED && g->state != GS_APPLY_RETRY)
			return false;
		break;
	case GS_APPLY_RETRY:
		if (g->state != GS_ACTIVE && g->state != GS_RECOVERED)
			return false;
		break;
	case GS_FAILED:
		if (g->state == GS_FAILED)
			return false;
		break;
	}
	g->state = to;
	/*
	 * A frozen group takes no message (engine_deliver drops them: its core
	 * holds a Ready and takes no input until it is advanced), a leader's
	 * answer to a read forwarded from here or the heartbeat responses that
	 * confirm this leader's reads among them.  Such reads end now, as one
	 * asked meanwhile is refused (ENGINE_ERR_BUSY); they waited out the
	 * request timeout.  Those whose index is known stay: they complete once
	 * applied.
	 */
	if (to == GS_RECOVERING || to == GS_APPLY_RETRY)
		eng_end_unconfirmed_reads(e, g, ENGINE_ERR_BUSY);
	eng_tick_update(e, g);
	eng_changed(e, g);
	eng_mark(e, g);
	return true;
}

void eng_group_failed(struct engine *e, struct group *g, int rc, const char *fmt, ...)
{
	char what[192];
	va_list ap;

	if (!eng_set_state(e, g, GS_FAILED))
		return;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (rc != ENGINE_ERR_RAFT)
		g->stats.apply_errors++; /* the state machine's failure (apply, recovery) */
	eng_err(e, ENGINE_ERR_SM, "group %llu: %s; the group stopped", (unsigned long long)g->id,
	        what);
	g->error = e->a->malloc(strlen(e->errmsg) + 1);
	if (g->error != NULL)
		strcpy(g->error, e->errmsg);
	e->defer++; /* completions wait for the next flush: never inside the core or an operation */
	eng_fail_group(e, g, ENGINE_ERR_SM);
	e->defer--;
}

int eng_fail_engine(struct engine *e, int rc, const char *fmt, ...)
{
	const char *detail = e->st.errmsg != NULL ? e->st.errmsg(e->st.ctx) : NULL;
	char what[256];
	va_list ap;

	if (e->failed)
		return ENGINE_ERR_FAILED; /* the first failure is the one reported */
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	eng_err(e, ENGINE_ERR_FAILED, "node %llu: %s failed (%s%s%s); the engine stopped",
	        (unsigned long long)e->cfg.node_id, what, engine_strerror(rc),
	        detail != NULL && detail[0] != '\0' ? ": " : "", detail != NULL ? detail : "");
	e->failed = true; /* a round runs the completions (engine_has_work) */
	e->defer++;
	for (size_t i = 0; i < e->n_groups; i++) {
		eng_fail_group(e, e->groups[i], ENGINE_ERR_FAILED);
		eng_changed(e, e->groups[i]);
	}
	e->defer--;
	return ENGINE_ERR_FAILED;
}

int eng_raft_rc(struct engine *e, struct group *g, int rc, const char *what)
{
	switch (rc) {
	case RAFT_OK:
	case RAFT_ERR_NOMEM:
	case RAFT_ERR_NOT_LEADER:
	case RAFT_ERR_NO_LEADER:
	case RAFT_ERR_TOO_MANY_UNCOMMITTED:
	case RAFT_ERR_CONF_CHANGE_PENDING:
	case RAFT_ERR_TRANSFER_IN_PROGRESS:
	case RAFT_ERR_INVALID:
	case RAFT_ERR_REMOVED:
	case RAFT_ERR_TOO_BIG:
		return eng_from_raft(rc); /* the input was refused; nothing changed */
	case RAFT_ERR_STORAGE:
		/* A failed read was reported by the log view already; this names a log that
		 * contradicts itself (say, entries with wrong indexes). */
		return eng_fail_engine(e, ENGINE_ERR_STORAGE,
		                       "group %llu: the Raft core's storage, during %s (%s),",
		                       (unsigned long long)g->id, what, raft_errmsg(g->r));
	case RAFT_ERR_BUG:
		eng_group_failed(e, g, ENGINE_ERR_RAFT,
		                 "the Raft core found an impossible state during %s (%s)", what,
		                 raft_errmsg(g->r));
		return ENGINE_ERR_RAFT;
	}
	eng_group_failed(e, g, ENGINE_ERR_RAFT, "%s: unexpected result from the Raft core (%d: %s)",
	                 what, rc, raft_strerror(rc));
	return ENGINE_ERR_RAFT;
}

/* ---- groups ---- */

static size_t slot_of(uint64_t id, size_t cap)
{
	id *= 0x9E3779B97F4A7C15ull;
	return (size_t)(id ^ (id >> 29)) & (cap - 1);
}

struct group *eng_group(const struct engine *e, uint64_t id)
{
	if (e->index_cap == 0)
		return NULL;
	for (size_t i = slot_of(id, e->index_cap);; i = (i + 1) & (e->index_cap - 1)) {
		struct group *g = e->index[i];

		if (g == NULL || g->id == id)
			return g;
	}
}

/* Add g to the index (which has room). */
static void index_add(struct engine *e, struct group *g)
{
	size_t i = slot_of(g->id, e->index_cap);

	while (e->index[i] != NULL)
		i = (i + 1) & (e->index_cap - 1);
	e->index[i] = g;
}

/* Fill the index from e->groups (after a removal, or into a larger table). */
static void index_fill(struct engine *e)
{
	memset(e->index, 0, e->index_cap * sizeof(*e->index));
	for (size_t k = 0; k < e->n_groups; k++)
		index_add(e, e->groups[k]);
}

/* Make the index large enough for n groups. */
static int index_reserve(struct engine *e, size_t n)
{
	size_t cap = e->index_cap ? e->index_cap : 16;
	struct group **p;

	while (cap < 2 * n)
		cap *= 2;
	if (cap == e->index_cap)
		return ENGINE_OK;
	p = e->a->malloc(cap * sizeof(*p));
	if (p == NULL)
		return ENGINE_ERR_NOMEM;
	e->a->free(e->index);
	e->index = p;
	e->index_cap = cap;
	index_fill(e);
	return ENGINE_OK;
}

void *engine_arena_alloc(struct engine_arena *a, size_t n)
{
	return dr_arena_alloc(&a->ar, n);
}

static void group_free(struct engine *e, struct group *g)
{
	if (g->recv_path != NULL)
		remove(g->recv_path);
	if (g->out != NULL)
		remove(g->out->path); /* a snapshot that will not be shipped */
	e->a->free(g->recv_path);
	e->a->free(g->out);
	e->a->free(g->error);
	e->a->free(g->refusal);
	e->a->free(g->no_room);
	eng_book_free(e, g);
	if (g->r != NULL)
		raft_destroy(g->r);
	dr_arena_free(&g->arena.ar);
	eng_cache_free(&g->cache, e->a);
	e->a->free(g->reads);
	e->a->free(g);
}

int engine_start_group(struct engine *e, uint64_t group_id, const struct engine_bootstrap *bs,
                       const struct engine_sm_ops *sm)
{
	struct raft_config rc_cfg;
	struct group *g;
	int rc;

	if (group_id == 0 || sm == NULL || sm->apply == NULL || sm->durable_applied == NULL ||
	    (bs != NULL && bs->n_members > RAFT_MAX_MEMBERS))
		return eng_err(e, ENGINE_ERR_INVALID, "bad group id or state machine");
	if (e->failed)
		return ENGINE_ERR_FAILED;
	if (e->stopping)
		return ENGINE_ERR_STOPPED;
	if (e->in_round || e->in_flush)
		return ENGINE_ERR_INVALID;
	if (eng_group(e, group_id) != NULL)
		return eng_err(e, ENGINE_ERR_EXISTS, "group %llu is already running",
		               (unsigned long long)group_id);
	/*
	 * Deferred leader syncs: a group stopped and started again in place may
	 * have written entries (and a commit index over them) that no sync has
	 * covered yet, and a new core takes its whole stored log for durable: it
	 * would apply entries that a crash then takes from its log (its member
	 * could not start again).  So they are synced first.
	 */
	if (e->cfg.defer_leader_sync && (e->sync_wanted || e->sync_out)) {
		rc = e->st.sync(e->st.ctx);
		if (rc != ENGINE_OK)
			return eng_fail_engine(e, rc,
			                       "group %llu: syncing the raft log before it starts",
			                       (unsigned long long)group_id);
	}
	rc = eng_reserve(e, (void **)&e->groups, &e->cap_groups, e->n_groups + 1,
	                 sizeof(*e->groups));
	if (rc == ENGINE_OK)
		rc = eng_reserve(e, (void **)&e->changed, &e->cap_changed, e->n_groups + 1,
		                 sizeof(*e->changed));
	if (rc == ENGINE_OK)
		rc = index_reserve(e, e->n_groups + 1);
	if (rc == ENGINE_OK)
		rc = sets_reserve(e, e->n_groups + 1);
	g = rc == ENGINE_OK ? e->a->malloc(sizeof(*g)) : NULL;
	if (g == NULL)
		return eng_err(e, ENGINE_ERR_NOMEM, "group %llu: out of memory",
		               (unsigned long long)group_id);
	memset(g, 0, sizeof(*g));
	g->id = group_id;
	g->e = e;
	g->sm = *sm;
	g->tick_pos = SIZE_MAX;
	dr_arena_init(&g->arena.ar, e->a->malloc, e->a->free, ARENA_BLOCK);
#ifdef RAFT_DEBUG
	g->arena.ar.strict = true; /* data kept past its round: a use-after-free ASan reports */
#endif
	g->sm_skip = sm->durable_applied(sm->ctx);
	if (bs != NULL && g->sm_skip > 0) {
		/* A new member over a state machine with data: its LogDB was lost. */
		rc = eng_err(e, ENGINE_ERR_INVALID,
		             "group %llu: the state machine already applied %llu but the LogDB "
		             "has no record of this member; refusing to start it as new",
		             (unsigned long long)group_id, (unsigned long long)g->sm_skip);
		goto err_after_alloc;
	}
	rc = eng_view_load(e, g, bs);
	if (rc != ENGINE_OK)
		goto err_after_alloc;
	if (bs != NULL && !bs->join)
		g->conf = *eng_book_initial(g); /* what raft_create's bootstrap produces */

	/*
	 * The state machine already holds what it applied durably.  It may be
	 * ahead of the stored log when a crash came between a received
	 * snapshot's recovery into the state machine and the save of its
	 * metadata (DESIGN 9; eng_view_load refuses any other case).  Raft then
	 * starts from the stored log, the leader brings it up again, and
	 * entries up to sm_skip are not handed to the state machine twice.  (A
	 * LogDB that was lost altogether is caught when the member is started
	 * as new.)
	 */
	g->last_snap_applied = g->snap.index;

	memset(&rc_cfg, 0, sizeof(rc_cfg));
	rc_cfg.group_id = group_id;
	rc_cfg.id = e->cfg.node_id;
	rc_cfg.election_tick = e->cfg.election_rtt;
	rc_cfg.heartbeat_tick = e->cfg.heartbeat_rtt;
	rc_cfg.pre_vote = true;
	rc_cfg.check_quorum = true;
	rc_cfg.max_inflight_msgs = e->cfg.max_inflight_msgs;
	rc_cfg.max_msg_bytes = e->cfg.max_msg_bytes;
	/* The core's 0 means unlimited. */
	rc_cfg.max_uncommitted_bytes =
	        e->cfg.max_uncommitted_bytes == ENGINE_UNLIMITED ? 0 : e->cfg.max_uncommitted_bytes;
	rc_cfg.max_entry_bytes = e->cfg.max_entry_bytes == ENGINE_UNLIMITED
	                                 ? 0
	                                 : e->cfg.max_entry_bytes + ENGINE_HEADER_BYTES;
	rc_cfg.quiesce_tick = e->cfg.quiesce_ticks == ENGINE_QUIESCE_OFF ? 0 : e->cfg.quiesce_ticks;
	rc_cfg.defer_leader_sync = e->cfg.defer_leader_sync;
	rc_cfg.applied = g->applied;
	rc_cfg.seed = e->cfg.seed ^ (group_id * 0x9E3779B97F4A7C15ull);
	eng_view_storage(g, &rc_cfg.storage);
	rc_cfg.alloc = &e->ra;
	rc = raft_create(&rc_cfg, bs != NULL && !bs->join ? eng_book_initial(g) : NULL, &g->r);
	if (rc != RAFT_OK) {
		rc = eng_err(e, eng_from_raft(rc), "group %llu: raft_create failed: %s",
		             (unsigned long long)group_id, raft_strerror(rc));
		goto err_after_alloc;
	}
	g->role = raft_role(g->r);
	g->term = raft_term_of(g->r);
	g->leader = raft_leader(g->r);
	g->resets = raft_resets(g->r);
	eng_book_drop_removed(e, g, &g->conf); /* removals the log no longer holds */
	eng_announce_addresses(e, g);
	e->groups[e->n_groups++] = g;
	index_add(e, g);
	tick_add(e, g);
	eng_changed(e, g);
	eng_mark(e, g);
	return ENGINE_OK;

err_after_alloc:
	group_free(e, g);
	return rc;
}

int engine_stop_group(struct engine *e, uint64_t group_id)
{
	struct group *g = eng_group(e, group_id);

	if (g == NULL)
		return ENGINE_ERR_NO_GROUP;
	if (e->in_round || e->in_flush)
		return ENGINE_ERR_INVALID;
	for (size_t i = 0; i < e->n_groups; i++)
		if (e->groups[i] == g)
			e->groups[i] = e->groups[--e->n_groups];
	index_fill(e);
	tick_remove(e, g);
	for (size_t i = 0; g->marked && i < e->n_marked; i++)
		if (e->marked[i] == g)
			e->marked[i] = e->marked[--e->n_marked];
	for (size_t i = 0; g->changed && i < e->n_changed; i++)
		if (e->changed[i] == g->id) {
			memmove(&e->changed[i], &e->changed[i + 1],
			        (e->n_changed - i - 1) * sizeof(*e->changed));
			e->n_changed--;
			break;
		}
	e->defer++;
	eng_fail_group(e, g, ENGINE_ERR_STOPPED);
	e->defer--;
	for (uint32_t i = 0; i < g->book.n; i++)
		eng_drop_peer_if_unused(e, g->book.m[i].node_id);
	group_free(e, g);
	/* (What the network holds of the group: nothing would take it now.) */
	if (e->net.group_stopped != NULL)
		e->net.group_stopped(e->net.ctx, group_id);
	eng_flush(e);
	return ENGINE_OK;
}

int engine_remove_group_data(struct engine *e, uint64_t group_id)
{
	int rc;

	if (e->in_round || e->in_flush)
		return ENGINE_ERR_INVALID;
	if (eng_group(e, group_id) != NULL)
		engine_stop_group(e, group_id);
	if (e->failed)
		return ENGINE_ERR_FAILED;
	rc = e->st.remove(e->st.ctx, group_id);
	if (rc != ENGINE_OK)
		return eng_fail_engine(e, rc, "group %llu: removing its data",
		                       (unsigned long long)group_id);
	return ENGINE_OK;
}

int engine_stored_groups(struct engine *e, uint64_t *ids, size_t cap, size_t *n)
{
	int rc;

	if (e->failed)
		return ENGINE_ERR_FAILED;
	rc = e->st.list(e->st.ctx, ids, cap, n);
	if (rc != ENGINE_OK && rc != ENGINE_ERR_NOMEM)
		return eng_fail_engine(e, rc, "listing the stored groups");
	return rc;
}

/* ---- engine ---- */

int engine_check_snapshot_dir(const char *dir, char *errmsg, size_t errmsg_len)
{
	size_t len = dir != NULL ? strlen(dir) : 1;

	if (len <= ENGINE_SNAPSHOT_DIR_MAX)
		return ENGINE_OK;
	/* Its file names would be cut short: a received snapshot could never be installed
	 * (its message refused, the leader streaming it again and again). */
	if (errmsg != NULL && errmsg_len > 0)
		snprintf(errmsg, errmsg_len,
		         "the snapshot directory's path is %zu bytes long, more than %d (the "
		         "path of a file in it must fit in %d bytes)",
		         len, ENGINE_SNAPSHOT_DIR_MAX, ENGINE_PATH_MAX);
	return ENGINE_ERR_INVALID;
}

int engine_create(const struct engine_config *cfg, const struct engine_storage_ops *storage,
                  const struct engine_network_ops *net, struct engine **out, char *errmsg,
                  size_t errmsg_len)
{
	const struct engine_alloc *a = cfg != NULL && cfg->alloc != NULL ? cfg->alloc : &libc_alloc;
	const char *why = NULL;
	struct engine *e;
	int rc;

	*out = NULL;
	if (cfg == NULL || cfg->node_id == 0)
		why = "node_id must be > 0";
	else if (storage == NULL || !storage->save_bootstrap || !storage->save || !storage->load ||
	         !storage->list || !storage->entries || !storage->term || !storage->save_snapshot ||
	         !storage->save_recovery || !storage->compact || !storage->remove)
		why = "storage ops incomplete";
	else if (cfg->defer_leader_sync && (!storage->write || !storage->sync))
		why = "defer_leader_sync needs storage write and sync";
	else if (net == NULL || !net->send)
		why = "network ops incomplete";
	else if (engine_check_snapshot_dir(cfg->snapshot_dir, errmsg, errmsg_len) != ENGINE_OK)
		return ENGINE_ERR_INVALID;
	if (why != NULL) {
		if (errmsg != NULL && errmsg_len > 0)
			snprintf(errmsg, errmsg_len, "%s", why);
		return ENGINE_ERR_INVALID;
	}
	e = a->malloc(sizeof(*e));
	if (e == NULL) {
		if (errmsg != NULL && errmsg_len > 0)
			snprintf(errmsg, errmsg_len, "out of memory");
		return ENGINE_ERR_NOMEM;
	}
	memset(e, 0, sizeof(*e));
	e->a = a;
	e->ra.malloc = a->malloc;
	e->ra.realloc = a->realloc;
	e->ra.free = a->free;
	e->cfg = *cfg;
	e->st = *storage;
	e->net = *net;
	if (e->cfg.rtt_ms == 0)
		e->cfg.rtt_ms = 50;
	if (e->cfg.heartbeat_rtt == 0)
		e->cfg.heartbeat_rtt = 1;
	if (e->cfg.election_rtt == 0)
		e->cfg.election_rtt = 10;
	if (e->cfg.election_rtt <= e->cfg.heartbeat_rtt)
		e->cfg.election_rtt = e->cfg.heartbeat_rtt + 1;
	if (e->cfg.max_msg_bytes == 0)
		e->cfg.max_msg_bytes = 1 << 20;
	if (e->cfg.max_uncommitted_bytes == 0)
		e->cfg.max_uncommitted_bytes = ENGINE_DEFAULT_MAX_UNCOMMITTED;
	if (e->cfg.max_entry_bytes == 0)
		e->cfg.max_entry_bytes = ENGINE_DEFAULT_MAX_ENTRY;
	if (e->cfg.max_inflight_msgs == 0)
		e->cfg.max_inflight_msgs = 256;
	if (e->cfg.entry_cache_bytes == 0)
		e->cfg.entry_cache_bytes = 4 << 20;
	if (e->cfg.request_timeout_ticks == 0)
		e->cfg.request_timeout_ticks = 4 * e->cfg.election_rtt;
	if (e->cfg.quiesce_ticks == 0)
		e->cfg.quiesce_ticks = 3 * e->cfg.election_rtt;
	if (e->cfg.seed == 0)
		e->cfg.seed = cfg->node_id;
	snprintf(e->snapdir, sizeof(e->snapdir), "%s",
	         cfg->snapshot_dir != NULL ? cfg->snapshot_dir : ".");
	e->cfg.snapshot_dir = e->snapdir;
	e->now = 1; /* tick 0 means "never" in status */
	e->client_id = cfg->client_id;
	if (e->client_id == 0) {
		/*
		 * New per incarnation: entries an earlier one proposed may still
		 * be applied after a restart, and must not match this one's
		 * proposals (whose series may repeat an earlier one's).  48
		 * random bits under the node id; the clock only if the kernel has
		 * no randomness.
		 */
		uint64_t r = 0;
		struct timespec ts;

		if (getrandom(&r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
			clock_gettime(CLOCK_REALTIME, &ts);
			r = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
		}
		e->client_id = (cfg->node_id << 48) ^ (r & 0xFFFFFFFFFFFFull);
		if (e->client_id == 0)
			e->client_id = 1;
	}
	/*
	 * Keys begin apart per engine too: a read's key is all that its request
	 * and the leader's answer carry, and an answer to an earlier engine's read
	 * (a transport queue outlives a connection) must complete no read of this
	 * one (it carries an older index: a stale read,
	 * test_old_engines_read_answer_ignored).  Proposals carry the client id.
	 * The whole client id places them, times an odd constant (one-to-one):
	 * ids that differ from bit b up begin at least 2^b keys apart, ids of a
	 * counter about 2^64 / count apart.  (client_id << 16 dropped the top
	 * 16 bits, where an embedder's restart counter may be: two engines'
	 * keys began at the same point, test_old_engines_read_answer_ignored_given_ids.)
	 */
	e->series = e->client_id * 0x9E3779B97F4A7C15ull;
	/* (engine_int.h: what names this engine's outgoing snapshot files apart from an
	 * earlier engine's; the clock only if the kernel has no randomness) */
	if (getrandom(&e->snap_tag, sizeof(e->snap_tag), 0) != (ssize_t)sizeof(e->snap_tag)) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		e->snap_tag = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	}
	rc = eng_pending_init(&e->pend, a, 1024);
	if (rc != ENGINE_OK) {
		if (errmsg != NULL && errmsg_len > 0)
			snprintf(errmsg, errmsg_len, "out of memory");
		a->free(e);
		return rc;
	}
	*out = e;
	return ENGINE_OK;
}

void engine_destroy(struct engine *e)
{
	if (e == NULL)
		return;
	/* Nobody may wait forever: what is pending completes first. */
	e->stopping = true;
	e->defer++;
	for (size_t i = 0; i < e->n_groups; i++)
		eng_fail_group(e, e->groups[i], ENGINE_ERR_STOPPED);
	e->defer--;
	eng_flush(e);
	for (size_t i = 0; i < e->n_groups; i++)
		group_free(e, e->groups[i]);
	eng_pending_free(&e->pend, e->a);
	e->a->free(e->groups);
	e->a->free(e->index);
	e->a->free(e->ready);
	e->a->free(e->updates);
	e->a->free(e->sment);
	e->a->free(e->peers);
	e->a->free(e->scratch);
	e->a->free(e->done);
	e->a->free(e->changed);
	e->a->free(e->sy);
	e->a->free(e->marked);
	e->a->free(e->ticking);
	e->a->free(e->batch);
	e->a->free(e);
}

void engine_tick(struct engine *e)
{
	if (e->in_round)
		return;
	if (e->failed) {
		eng_flush(e);
		return;
	}
	e->now++;
	e->defer++;
	/*
	 * Only the tick set: a group that made work (heartbeats, an election)
	 * joins the ready set.  Backwards, as a group that fails leaves the set
	 * by swapping the last one into its place.
	 */
	for (size_t i = e->n_ticking; i-- > 0 && !e->failed;) {
		struct group *g = e->ticking[i];

		eng_raft_rc(e, g, raft_tick(g->r), "a tick");
		if (raft_has_ready(g->r) || eng_snapshot_wanted(e, g))
			eng_mark(e, g);
	}
	/* Timeouts are coarse: scan the table every 4 ticks. */
	if ((e->now & 3) == 0 && !e->failed) {
		eng_expire(e);
		eng_drop_lingering(e);
	}
	if (!e->failed)
		eng_sync_watch(e);
	e->defer--;
	eng_flush(e);
}

/* ---- network input ---- */

/* Remember when m's sender was last heard from in g (status: last contact). */
static void note_contact(struct engine *e, struct group *g, const struct raft_message *m)
{
	uint32_t i, oldest = 0;

	if (m->type == RAFT_MSG_APPEND)
		for (uint32_t k = 0; k < m->n_entries; k++)
			g->stats.bytes_received += m->entries[k].len;
	for (i = 0; i < g->n_contact; i++) {
		if (g->contact[i].id == m->from)
			break;
		if (g->contact[i].tick < g->contact[oldest].tick)
			oldest = i;
	}
	if (i == g->n_contact) {
		if (g->n_contact < RAFT_MAX_MEMBERS)
			g->n_contact++;
		else
			i = oldest; /* a node not heard from for longest makes room */
		g->contact[i].id = m->from;
	}
	g->contact[i].tick = e->now;
}

static uint64_t contact_of(const struct group *g, raft_id id)
{
	for (uint32_t i = 0; i < g->n_contact; i++)
		if (g->contact[i].id == id)
			return g->contact[i].tick;
	return 0;
}

int engine_deliver(struct engine *e, const struct raft_message *msgs, size_t n)
{
	if (e->failed)
		return ENGINE_ERR_FAILED;
	if (e->in_round)
		return eng_err(e, ENGINE_ERR_INVALID, "delivery inside a round");
	e->defer++;
	for (size_t i = 0; i < n && !e->failed; i++) {
		const struct raft_message *m = &msgs[i];
		struct group *g = eng_group(e, m->group_id);

		if (g == NULL || g->state == GS_FAILED || m->to != e->cfg.node_id ||
		    m->type == RAFT_MSG_SNAPSHOT) {
			e->dropped++;
			continue;
		}
		if (g->state != GS_ACTIVE)
			continue; /* frozen; the leader retries what is lost */
		if (eng_raft_rc(e, g, raft_step(g->r, m), "a message") != ENGINE_OK) {
			e->dropped++;
			continue;
		}
		note_contact(e, g, m);
		eng_mark(e, g);
	}
	e->defer--;
	eng_flush(e);
	return e->failed ? ENGINE_ERR_FAILED : ENGINE_OK;
}

/* Whether path is the file that a Ready of g will install (taken by the core). */
static bool recv_pending(const struct group *g, const char *path)
{
	return g != NULL && g->recv_index != 0 && strcmp(g->recv_path, path) == 0;
}

int engine_deliver_snapshot(struct engine *e, const struct raft_message *m, const char *path)
{
	struct group *g = NULL;
	raft_index pending;
	int rc;

	if (path == NULL)
		return ENGINE_ERR_INVALID;
	if (e->failed) {
		rc = ENGINE_ERR_FAILED;
		goto drop;
	}
	if (e->in_round || m == NULL || m->type != RAFT_MSG_SNAPSHOT || m->snapshot == NULL ||
	    strlen(path) >= ENGINE_PATH_MAX) {
		rc = ENGINE_ERR_INVALID;
		goto drop;
	}
	g = eng_group(e, m->group_id);
	if (g == NULL || g->state == GS_FAILED) {
		e->dropped++;
		rc = ENGINE_ERR_NO_GROUP;
		goto drop;
	}
	if (g->state != GS_ACTIVE) {
		rc = ENGINE_ERR_BUSY; /* recovering from another one */
		goto drop;
	}
	if (g->recv_path == NULL && (g->recv_path = e->a->malloc(ENGINE_PATH_MAX)) == NULL) {
		rc = ENGINE_ERR_NOMEM;
		goto drop;
	}
	eng_refusal_clear(e, g);
	pending = raft_snapshot_pending(g->r);
	e->defer++;
	rc = eng_raft_rc(e, g, raft_step(g->r, m), "a snapshot message");
	eng_mark(e, g);
	e->defer--;
	if (raft_snapshot_pending(g->r) == m->snapshot->index && pending != m->snapshot->index) {
		/* The core took it: the next Ready installs this file. */
		if (g->recv_index != 0 && strcmp(g->recv_path, path) != 0)
			remove(g->recv_path); /* an older one the core replaced */
		snprintf(g->recv_path, ENGINE_PATH_MAX, "%s", path);
		g->recv_index = m->snapshot->index;
		path = NULL;
	}
	eng_flush(e);
drop:
	/* Refused (an older term, at or below the commit index, a log that has its
	 * last entry, or no group to take it): no Ready will ask for it.  A file of
	 * the same name that the core took before stays for its Ready. */
	if (path != NULL && !recv_pending(g, path))
		remove(path);
	return rc;
}

void engine_report_unreachable(struct engine *e, raft_id node_id, uint64_t group_id)
{
	struct group *one = group_id != 0 ? eng_group(e, group_id) : NULL;

	if (e->in_round || (group_id != 0 && one == NULL))
		return;
	for (size_t i = 0; i < (one != NULL ? 1 : e->n_groups); i++) {
		struct group *g = one != NULL ? one : e->groups[i];

		if (!eng_live(g))
			continue;
		/* A follower of node_id wakes (the core does it); a quiescent leader of a group
		 * node_id is in too, so that CheckQuorum tells whether it still leads. */
		raft_report_unreachable(g->r, node_id);
		if (raft_quiesced(g->r) && raft_role(g->r) == RAFT_LEADER &&
		    raft_membership_contains(raft_membership(g->r), node_id))
			eng_raft_rc(e, g, raft_wake(g->r), "waking up");
		eng_raft_rc(e, g, raft_fatal(g->r), "an unreachable report");
		eng_mark(e, g);
	}
	eng_flush(e);
}

void engine_snapshot_sent(struct engine *e, raft_id to, uint64_t group_id, bool failed)
{
	struct group *g = eng_group(e, group_id);

	if (g != NULL && !failed) {
		eng_no_room_took(e, g, to);
		g->stats.snapshots_sent++;
	}
	if (g != NULL)
		eng_snapshot_backoff(e, g, to, failed);
	if (g != NULL && !e->in_round && eng_live(g)) {
		raft_report_snapshot(g->r, to, failed);
		eng_raft_rc(e, g, raft_fatal(g->r), "a snapshot report");
		eng_mark(e, g);
	}
	eng_flush(e);
}

int engine_snapshot_saved(struct engine *e, uint64_t group_id, int rc, raft_index index)
{
	struct group *g = eng_group(e, group_id);

	if (g == NULL || g->out == NULL || g->out->state != OUT_SAVING)
		return ENGINE_ERR_NO_GROUP; /* stopped meanwhile: nothing waits for it */
	g->out->state = OUT_SAVED;
	g->out->rc = rc == ENGINE_IN_PROGRESS ? ENGINE_ERR_SNAPSHOT : rc;
	g->out->index = index;
	eng_mark(e, g);
	return ENGINE_OK;
}

int engine_snapshot_recovered(struct engine *e, uint64_t group_id, int rc)
{
	struct group *g = eng_group(e, group_id);

	if (g == NULL || g->state != GS_RECOVERING)
		return ENGINE_ERR_NO_GROUP;
	if (rc == ENGINE_OK)
		eng_set_state(e, g, GS_RECOVERED);
	else
		eng_group_failed(
		        e, g, ENGINE_ERR_SNAPSHOT, "snapshot recovery failed (%s)",
		        engine_strerror(rc == ENGINE_IN_PROGRESS ? ENGINE_ERR_SNAPSHOT : rc));
	return ENGINE_OK;
}

/* ---- status ---- */

bool engine_failed(const struct engine *e)
{
	return e->failed;
}

bool engine_has_work(const struct engine *e)
{
	if (e->failed)
		return e->n_done > 0; /* completions of the failure wait for a round */
	return e->n_marked > 0;
}

int engine_group_status(const struct engine *e, uint64_t group_id, struct engine_group_status *out)
{
	const struct group *g = eng_group(e, group_id);

	if (g == NULL)
		return ENGINE_ERR_NO_GROUP;
	out->group_id = group_id;
	out->role = raft_role(g->r);
	out->term = raft_term_of(g->r);
	out->leader = raft_leader(g->r);
	out->commit = raft_commit_index(g->r);
	out->applied = g->applied;
	out->last_index = raft_last_index(g->r);
	out->snapshot_index = g->snap.index;
	out->first_index = g->first;
	out->writable = out->role == RAFT_LEADER && g->role == RAFT_LEADER &&
	                g->term == out->term && g->applied >= g->noop_index &&
	                g->state != GS_FAILED && !e->failed;
	out->noop_index = out->role == RAFT_LEADER && g->role == RAFT_LEADER && g->term == out->term
	                          ? g->noop_index
	                          : 0;
	out->membership = *raft_membership(g->r);
	out->state = e->failed               ? ENGINE_GROUP_ENGINE_FAILED
	             : g->state == GS_FAILED ? ENGINE_GROUP_FAILED
	             : g->state == GS_RECOVERING || g->state == GS_RECOVERED
	                     ? ENGINE_GROUP_RECOVERING
	                     : ENGINE_GROUP_ACTIVE; /* a retry of an apply is brief */
	out->sending_snapshot = g->out != NULL;
	out->apply_held = g->apply_held;
	out->quiescent = raft_quiesced(g->r);
	out->leader_contact_tick = out->role == RAFT_LEADER ? e->now : contact_of(g, out->leader);
	out->n_peers = 0;
	out->snapshot_needed = false;
	if (out->role == RAFT_LEADER) {
		const struct raft_membership *m = &out->membership;

		for (uint32_t i = 0; i < m->n_voters + m->n_nonvoters; i++) {
			raft_id id = i < m->n_voters ? m->voters[i] : m->nonvoters[i - m->n_voters];
			struct engine_peer_status *p = &out->peers[out->n_peers];
			struct raft_peer_progress pp;

			if (id == e->cfg.node_id || raft_peer_progress(g->r, id, &pp) != RAFT_OK)
				continue;
			p->node_id = id;
			p->voter = pp.voter;
			p->match = pp.match;
			p->contact_tick = contact_of(g, id);
			p->needs_snapshot = pp.next < g->first;
			out->snapshot_needed |= p->needs_snapshot;
			p->refused_no_room = false;
			p->refused_need = p->refused_free = p->refused_min_free = 0;
			for (uint32_t k = 0; k < g->n_no_room && p->needs_snapshot; k++)
				if (g->no_room[k].to == id && g->no_room[k].shown) {
					p->refused_no_room = true;
					p->refused_need = g->no_room[k].need;
					p->refused_free = g->no_room[k].free_bytes;
					p->refused_min_free = g->no_room[k].min_free;
				}
			out->n_peers++;
		}
	}
	snprintf(out->error, sizeof(out->error), "%s",
	         e->failed                                   ? e->errmsg
	         : g->state == GS_FAILED && g->error != NULL ? g->error
	                                                     : "");
	snprintf(out->snapshot_refusal, sizeof(out->snapshot_refusal), "%s",
	         g->refusal != NULL ? g->refusal : "");
	return ENGINE_OK;
}

int engine_group_stats(const struct engine *e, uint64_t group_id, struct engine_group_stats *out)
{
	const struct group *g = eng_group(e, group_id);

	if (g == NULL)
		return ENGINE_ERR_NO_GROUP;
	*out = g->stats;
	return ENGINE_OK;
}

void eng_changed(struct engine *e, struct group *g)
{
	/* Room for every running group was reserved when it started. */
	if (g->changed || e->n_changed >= e->cap_changed)
		return;
	g->changed = true;
	e->changed[e->n_changed++] = g->id;
}

size_t engine_take_changed(struct engine *e, uint64_t *ids, size_t cap)
{
	size_t n = e->n_changed < cap ? e->n_changed : cap;

	for (size_t i = 0; i < n; i++) {
		struct group *g = eng_group(e, e->changed[i]);

		ids[i] = e->changed[i];
		if (g != NULL)
			g->changed = false;
	}
	memmove(e->changed, e->changed + n, (e->n_changed - n) * sizeof(*e->changed));
	e->n_changed -= n;
	return n;
}

uint64_t engine_now(const struct engine *e)
{
	return e->now;
}

void engine_sm_resume(struct engine *e, uint64_t group_id)
{
	struct group *g = eng_group(e, group_id);

	if (g == NULL)
		return;
	eng_changed(e, g);
	eng_mark(e, g);
}

size_t engine_groups(const struct engine *e, uint64_t *ids, size_t cap)
{
	for (size_t i = 0; i < e->n_groups && i < cap; i++)
		ids[i] = e->groups[i]->id;
	return e->n_groups;
}

bool engine_accepts(const struct engine *e, uint64_t group_id, raft_id from)
{
	const struct group *g = eng_group(e, group_id);
	const struct raft_membership *m;

	if (g == NULL || g->state == GS_FAILED || from == 0 || from == e->cfg.node_id)
		return false;
	m = raft_membership(g->r);
	/* A member, one that is being added, or an address we were told about. */
	return m->n_voters + m->n_nonvoters == 0 || raft_membership_contains(m, from) ||
	       eng_knows_address(g, from);
}

bool engine_runs_group(const struct engine *e, uint64_t group_id)
{
	const struct group *g = eng_group(e, group_id);

	return g != NULL && g->state != GS_FAILED;
}

bool engine_snapshot_useful(const struct engine *e, uint64_t group_id, raft_index index)
{
	const struct group *g = eng_group(e, group_id);

	return g != NULL && g->state != GS_FAILED && raft_commit_index(g->r) < index;
}

bool engine_snapshot_held(const struct engine *e, uint64_t group_id, const char *path)
{
	return recv_pending(eng_group(e, group_id), path);
}

size_t engine_pending_count(const struct engine *e)
{
	size_t n = e->pend.n;

	for (size_t i = 0; i < e->n_groups; i++)
		n += e->groups[i]->cc.w.active + e->groups[i]->transfer.w.active +
		     e->groups[i]->snapreq.w.active;
	return n;
}

uint64_t engine_dropped_messages(const struct engine *e)
{
	return e->dropped;
}

uint64_t engine_role_changes(const struct engine *e)
{
	return e->role_changes;
}
