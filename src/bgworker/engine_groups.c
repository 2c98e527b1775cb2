/*
 * engine_groups.c - the engine worker's groups (DESIGN §6, §10): restarting
 * the groups stored in the LogDB, refusing members whose LogDB is gone,
 * requests from backends (create_group, transfer_leader), and this node's
 * member info entry (its client address, its database's encoding and
 * locale) in every group.
 *
 * Applied indexes live in a replication origin per group, named
 * dragonraft_<group id>, made right after the member's LogDB record.  A
 * group whose origin exists but which the LogDB does not know lost its
 * LogDB: it is shown as stopped and never started, so it cannot vote or
 * acknowledge anything as if it still had its log.
 */
#include "engine_worker.h"

#include <unistd.h>

#include "engine/engine_uv.h"
#include "access/xact.h"
#include "entry/entry.h"
#include "lib/stringinfo.h"
#include "logdb/logdb.h"
#include "origins.h"
#include "queue.h"
#include "raft/raft.h"
#include "replication/slot.h"
#include "storage/fd.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#define CLIENT_ADDRESS_FILE "client_address"
/* Why a member that lost its LogDB is not started (DESIGN §10); leave_group also ends a
 * leave that was interrupted between its LogDB step and its commit (review 3 #11). */
#define LOST_FMT                                                                                   \
	"this node was a member (replication origin dragonraft_%llu, applied up to %llu) but its " \
	"LogDB has no record of the group; to rejoin, remove node %d on another member, run "      \
	"leave_group(%llu, true) here (it also ends an interrupted leave) and use a new node_id"
/* ... and one whose LogDB holds the group under the node id it had before
 * dragonraft.node_id was changed (the advice above would throw away a good member). */
#define MOVED_FMT                                                                                  \
	"this node's LogDB holds group %llu as node %llu, but dragonraft.node_id is %d now: set "  \
	"dragonraft.node_id back to %llu and restart the server"

/* What CLIENT_ADDRESS_FILE holds: the address, and a line with the encoding
 * and locale (a file of builds that sent no locale has no such line: every
 * group is told them again). */
#define SAID_MAX (ENTRY_CLIENT_ADDR_MAX + 3 * ENTRY_LOCALE_MAX + 64)

/* This node's member info: the address, encoding and locale every group
 * should know. */
static struct {
	char address[ENTRY_CLIENT_ADDR_MAX + 1];
	bool has_locale; /* this database's names fit an entry (printable ASCII) */
	int encoding;
	char provider; /* datlocprovider */
	char collate[ENTRY_LOCALE_MAX + 1], ctype[ENTRY_LOCALE_MAX + 1];
	char icu_locale[ENTRY_LOCALE_MAX + 1]; /* "": none */
	char said[SAID_MAX];                   /* the file's contents once every group knows */
	uint64 generation;                     /* bumped when the address changes */
	dlist_head need;                       /* groups that need an entry with it */
	dlist_head addrs;     /* groups whose leader should propose the members' addresses */
	bool addrs_new;       /* one joined addrs since the last turn proposed them */
	bool file_current;    /* CLIENT_ADDRESS_FILE holds it: every group knows it */
	bool file_stale;      /* a group needs it again: forget_file at the next turn */
	TimestampTz write_at; /* writing it failed: not tried again before then */
} info;

DrSm *dr_engine_groups_find(uint64 group_id)
{
	return hash_search(dr_engine->sms, &group_id, HASH_FIND, NULL);
}

/* The file no longer says what every group knows (a group needs the info). */
static void forget_file(void)
{
	if (info.file_current) {
		char path[MAXPGPATH];

		snprintf(path, sizeof(path), "%s/%s", dr_data_dir, CLIENT_ADDRESS_FILE);
		if (access(path, F_OK) == 0)
			(void)durable_unlink(path, LOG);
	}
	info.file_current = false;
	info.file_stale = false;
}

/* sm's group needs this node's member info; the file goes at the next turn
 * (dr_engine_groups_member_info; an engine callback too: no palloc, no
 * ereport, no file I/O). */
static void need_info_later(DrSm *sm)
{
	if (!sm->info_needed) {
		sm->info_needed = true;
		dlist_push_tail(&info.need, &sm->info_node);
	}
	info.file_stale = true;
}

/*
 * sm's group needs this node's member info.  A file that says every group
 * knows it goes first: a group just made whose info the server did not
 * commit before it stopped was never told it after the restart (the file
 * said so), and its replicate_table() and execute() would wait for it in
 * vain (dr_sql_groups_wait_info).
 */
static void need_info(DrSm *sm)
{
	need_info_later(sm);
	forget_file();
}

/* This node's member info is in g's log: what its backends propose now
 * follows it (an engine callback too: no palloc, no ereport). */
static void set_info_in_log(DrGroup *g)
{
	SpinLockAcquire(&g->mutex);
	g->info_in_log = true;
	SpinLockRelease(&g->mutex);
	ConditionVariableBroadcast(&g->applied_cv);
}

/* ---- starting members ---- */

static DrSm *add_sm(uint64 group_id, DrGroup *g, raft_index durable)
{
	bool found;
	DrSm *sm = hash_search(dr_engine->sms, &group_id, HASH_ENTER, &found);

	memset((char *)sm + sizeof(uint64), 0, sizeof(DrSm) - sizeof(uint64));
	sm->shared = g;
	sm->durable = sm->refreshed = durable;
	sm->role = -1;
	dlist_init(&sm->entries);
	return sm;
}

static void remove_sm(DrSm *sm)
{
	uint64 gid = sm->group_id;

	dr_pg_sm_forget(sm);
	if (sm->info_needed)
		dlist_delete(&sm->info_node);
	if (sm->addresses_needed)
		dlist_delete(&sm->addr_node);
	hash_search(dr_engine->sms, &gid, HASH_REMOVE, NULL);
}

/*
 * Remember the members' addresses in the node pool: the address the engine
 * dials each at (of its groups' addresses for it, the one learned last),
 * which may be another group's.
 */
static void learn_addresses(const struct engine_member *m, uint32 n)
{
	bool full = false;

	LWLockAcquire(dr_shared->groups_lock, LW_EXCLUSIVE);
	for (uint32 i = 0; i < n; i++) {
		const char *dialed = engine_peer_address(dr_engine->e, m[i].node_id);

		if (m[i].node_id != (uint64)dr_node_id &&
		    !dr_shmem_node_set(m[i].node_id, dialed != NULL ? dialed : m[i].addr))
			full = true;
	}
	LWLockRelease(dr_shared->groups_lock);
	if (full)
		ereport(WARNING,
		        (errmsg("dragonraft node address pool is full"),
		         errdetail("The view dragonraft.members shows no address for some nodes."),
		         errhint("Raise dragonraft.max_groups.")));
}

/* The entries' DrGroup.life that an engine worker that ran before left
 * (remove_all_entries), for the groups this one starts again from the LogDB. */
static struct {
	uint64 group_id, life;
} * old_lives;
static int n_old_lives;

/*
 * A group that the engine worker before ran and this one starts again from
 * the LogDB is the same log: its entry keeps DrGroup.life, so that a wait
 * that began before (a COMMIT's turn, execute(), a read barrier,
 * replicate_table, table_digest, join_group) goes on rather than take the
 * engine worker's restart for the group left and made again (rev60).  The
 * caller holds the groups lock, and added g just now.
 */
static void keep_life(DrGroup *g)
{
	for (int i = 0; i < n_old_lives; i++)
		if (old_lives[i].group_id == g->group_id) {
			g->life = old_lives[i].life;
			return;
		}
}

/* A shared entry for group_id, set up for a member that starts; NULL when full.
 * same_log: the LogDB's, that an engine worker before may have run (keep_life). */
static DrGroup *new_entry(uint64 group_id, raft_index applied, RepOriginId origin, bool same_log)
{
	DrGroup *g;

	LWLockAcquire(dr_shared->groups_lock, LW_EXCLUSIVE);
	g = dr_shmem_group_add(group_id);
	if (g != NULL && same_log)
		keep_life(g);
	if (g != NULL) {
		SpinLockAcquire(&g->mutex);
		g->member_state = DR_MEMBER_ACTIVE;
		g->error[0] = '\0';
		g->snapshot_refused = false;
		g->applied = applied;
		g->handed = 0; /* (as the new DrSm's: the engine hands from applied + 1) */
		g->origin = origin;
		g->apply_failures = 0;
		g->apply_retry_at = 0;
		g->apply_corrupt = false;
		g->behind_since = 0;
		g->info_in_log = false; /* (known again once the member starts) */
		/* The engine's counters start again with the member. */
		memset(&g->stats, 0, sizeof(g->stats));
		memset(&g->stats_base, 0, sizeof(g->stats_base));
		g->stats_base.apply_errors = g->apply_errors; /* they add to the engine's */
		g->stats_reset = GetCurrentTimestamp();
		SpinLockRelease(&g->mutex);
	}
	LWLockRelease(dr_shared->groups_lock);
	return g;
}

static void remove_entry(uint64 group_id)
{
	LWLockAcquire(dr_shared->groups_lock, LW_EXCLUSIVE);
	dr_shmem_group_remove(group_id);
	LWLockRelease(dr_shared->groups_lock);
}

/* The entries an engine worker that ran before left: what it knew may be gone. */
static void remove_all_entries(void)
{
	HASH_SEQ_STATUS seq;
	DrGroup *g;

	old_lives = MemoryContextAllocZero(TopMemoryContext, sizeof(*old_lives) * dr_max_groups);
	n_old_lives = 0;
	LWLockAcquire(dr_shared->groups_lock, LW_EXCLUSIVE);
	dr_shmem_group_scan_init(&seq);
	while ((g = hash_seq_search(&seq)) != NULL) {
		if (n_old_lives < dr_max_groups && g->member_state != DR_MEMBER_LOST) {
			old_lives[n_old_lives].group_id = g->group_id;
			old_lives[n_old_lives++].life = g->life;
		}
		dr_shmem_group_remove(g->group_id); /* the current entry: allowed in a scan */
	}
	LWLockRelease(dr_shared->groups_lock);
}

static void set_stopped(DrGroup *g, DrMemberState state, const char *error)
{
	SpinLockAcquire(&g->mutex);
	g->member_state = state;
	strlcpy(g->error, error, sizeof(g->error));
	SpinLockRelease(&g->mutex);
}

/* Start a member: bs NULL restarts a stored one.  On failure engine_errmsg() says why. */
static int start_member(uint64 group_id, const struct engine_bootstrap *bs, DrGroup *g,
                        raft_index durable, DrSm **out)
{
	struct engine_sm_ops ops;
	DrSm *sm = add_sm(group_id, g, durable);
	int rc;

	dr_pg_sm_ops(sm, &ops);
	rc = engine_start_group(dr_engine->e, group_id, bs, &ops);
	if (rc != ENGINE_OK) {
		remove_sm(sm);
		return rc;
	}
	dr_engine->n_running++;
	*out = sm;
	return ENGINE_OK;
}

/*
 * The node id under which this node's LogDB holds group_id when it is not
 * dragonraft.node_id (the setting was changed since the member started), else 0.
 */
static uint64 stored_as(uint64 group_id)
{
	struct logdb_node_info *ni = NULL;
	size_t n = 0;
	uint64 id = 0;

	if (logdb_list_nodes(dr_engine->db, &ni, &n) != LOGDB_OK)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (ni[i].group_id == group_id && ni[i].node_id != (uint64)dr_node_id)
			id = ni[i].node_id;
	logdb_free(dr_engine->db, ni);
	return id;
}

/*
 * This database's encoding and locale (pg_database), for the member info:
 * members whose databases differ would apply a command, a table or its
 * generated columns and CHECKs differently (sql_groups.c refuses those
 * while they do).  Names an entry cannot carry (not printable ASCII, or too
 * long) make it say "not known", once in the log.
 */
/* (a name's length for entry_check_member_locale: one too long stays too long) */
static uint16 locale_len(const char *name)
{
	return (uint16)Min(strlen(name), ENTRY_LOCALE_MAX + 1);
}

static void load_database_locale(void)
{
	bool start = !IsTransactionState();
	struct entry_member_info mi;
	DrDbLocale here;

	if (start)
		StartTransactionCommand();
	dr_database_locale(&here);
	memset(&mi, 0, sizeof(mi));
	mi.has_locale = 1;
	mi.encoding = here.encoding;
	mi.locale_provider = here.provider;
	mi.collate = here.collate;
	mi.collate_len = locale_len(here.collate);
	mi.ctype = here.ctype;
	mi.ctype_len = locale_len(here.ctype);
	mi.icu_locale = here.icu_locale != NULL ? here.icu_locale : "";
	mi.icu_locale_len = locale_len(mi.icu_locale);
	info.has_locale = entry_check_member_locale(&mi) == ENTRY_OK;
	info.encoding = here.encoding;
	info.provider = here.provider;
	strlcpy(info.collate, mi.collate, sizeof(info.collate));
	strlcpy(info.ctype, mi.ctype, sizeof(info.ctype));
	strlcpy(info.icu_locale, mi.icu_locale, sizeof(info.icu_locale));
	if (start)
		CommitTransactionCommand();
	if (!info.has_locale)
		ereport(LOG,
		        (errmsg("dragonraft does not tell the groups the locale of database \"%s\"",
		                dr_database),
		         errdetail("Its locale names are not 1 to %d printable ASCII characters: "
		                   "members cannot check that theirs are the same.",
		                   ENTRY_LOCALE_MAX)));
}

/* What the file says once every group knows this node's member info. */
static void set_said(void)
{
	if (info.has_locale)
		snprintf(info.said, sizeof(info.said),
		         "%s\nencoding %d provider %c collate %s ctype %s icu %s", info.address,
		         info.encoding, info.provider, info.collate, info.ctype, info.icu_locale);
	else
		snprintf(info.said, sizeof(info.said), "%s\nencoding unknown", info.address);
}

/*
 * Why the member of group_id, whose origin says it applied up to applied, is
 * not started: its LogDB was lost, or it is there under the node id this
 * server had before dragonraft.node_id changed.  Sets *moved in that case.
 */
static void lost_reason(char *buf, size_t len, uint64 group_id, uint64 applied, bool *moved)
{
	uint64 old_id = stored_as(group_id);

	*moved = old_id != 0;
	if (*moved)
		snprintf(buf, len, MOVED_FMT, (unsigned long long)group_id,
		         (unsigned long long)old_id, dr_node_id, (unsigned long long)old_id);
	else
		snprintf(buf, len, LOST_FMT, (unsigned long long)group_id,
		         (unsigned long long)applied, dr_node_id, (unsigned long long)group_id);
}

static void warn_lost(uint64 group_id, const char *why, bool moved)
{
	ereport(WARNING,
	        (errmsg("dragonraft group %llu not started: %s", (unsigned long long)group_id, why),
	         moved ? errdetail("A node's id never changes: its votes and log in the LogDB "
	                           "are those of its old id.")
	               : errdetail("Was dragonraft.data_dir deleted?  A member that lost its "
	                           "Raft log must not vote or acknowledge entries as if it "
	                           "still had them.")));
}

void dr_engine_groups_restart(void)
{
	struct logdb_bootstrap *lbs = palloc(sizeof(*lbs));
	struct engine_member *members = palloc(sizeof(struct engine_member) * RAFT_MAX_MEMBERS);
	size_t n = 0, cap = 64;
	uint64 *ids = palloc(cap * sizeof(uint64));
	int not_started = 0;
	DrOrigin *origins;
	int n_origins;
	char path[MAXPGPATH];
	char buf[SAID_MAX];
	FILE *f;

	remove_all_entries();
	dlist_init(&info.need);
	dlist_init(&info.addrs);
	strlcpy(info.address, dr_effective_client_address(), sizeof(info.address));
	load_database_locale();
	set_said();
	snprintf(path, sizeof(path), "%s/%s", dr_data_dir, CLIENT_ADDRESS_FILE);
	f = AllocateFile(path, "r");
	if (f != NULL) {
		size_t len = fread(buf, 1, sizeof(buf) - 1, f);

		buf[len] = '\0';
		info.file_current = strcmp(buf, info.said) == 0;
		FreeFile(f);
	}

	for (;;) {
		if (engine_stored_groups(dr_engine->e, ids, cap, &n) != ENGINE_OK)
			ereport(FATAL, (errmsg("dragonraft cannot list the groups in its LogDB: %s",
			                       engine_errmsg(dr_engine->e))));
		if (n <= cap)
			break;
		cap = n;
		ids = repalloc(ids, cap * sizeof(uint64));
	}
	origins = dr_origins_scan(&n_origins);

	for (size_t i = 0; i < n; i++) {
		RepOriginId origin = InvalidRepOriginId;
		raft_index durable = 0;
		uint32 n_members = 0;
		DrGroup *g;
		DrSm *sm;
		int rc;

		for (int k = 0; k < n_origins; k++)
			if (origins[k].group_id == ids[i])
				origin = origins[k].id;
		if (origin != InvalidRepOriginId)
			durable = replorigin_get_progress(origin, true);
		g = new_entry(ids[i], durable, origin, true);
		if (g == NULL) {
			not_started++;
			ereport(WARNING,
			        (errmsg("dragonraft group %llu not started: dragonraft.max_groups "
			                "(%d) groups exist",
			                (unsigned long long)ids[i], dr_max_groups)));
			continue;
		}
		if (logdb_get_bootstrap(dr_engine->db, ids[i], dr_node_id, lbs) == LOGDB_OK) {
			for (uint32 k = 0; k < lbs->n_addresses && k < RAFT_MAX_MEMBERS; k++) {
				members[k].node_id = lbs->addresses[k].node_id;
				strlcpy(members[k].addr, lbs->addresses[k].addr, ENGINE_ADDR_MAX);
			}
			n_members = Min(lbs->n_addresses, RAFT_MAX_MEMBERS);
		}
		learn_addresses(members, n_members);
		rc = start_member(ids[i], NULL, g, durable, &sm);
		if (rc != ENGINE_OK) {
			ereport(LOG,
			        (errmsg("dragonraft group %llu not started: %s",
			                (unsigned long long)ids[i], engine_errmsg(dr_engine->e))));
			set_stopped(g, DR_MEMBER_FAILED, engine_errmsg(dr_engine->e));
			continue;
		}
		learn_addresses(members, n_members); /* (started: the addresses now dialed) */
		dr_engine_status_publish(sm);
		if (!info.file_current)
			need_info(sm);
		else
			set_info_in_log(g); /* (the file says every group committed it) */
	}

	/* An origin without a LogDB record: refuse to start the member (DESIGN §10). */
	for (int k = 0; k < n_origins; k++) {
		raft_index applied = replorigin_get_progress(origins[k].id, false);
		char msg[DR_ERROR_LEN];
		bool moved;
		DrGroup *g;

		if (dr_engine_groups_find(origins[k].group_id) != NULL)
			continue;
		LWLockAcquire(dr_shared->groups_lock, LW_SHARED);
		g = dr_shmem_group_find(origins[k].group_id);
		LWLockRelease(dr_shared->groups_lock);
		if (g != NULL)
			continue; /* in the LogDB but not started: said above */
		/* (the LogDB's record under another node id says so too: a group
		 * used at once after its creation may have no catalog row yet) */
		if (!dr_origins_applied_here(origins[k].group_id) &&
		    stored_as(origins[k].group_id) == 0) {
			ereport(LOG,
			        (errmsg("replication origin \"dragonraft_%llu\" is not taken for a "
			                "group of this node",
			                (unsigned long long)origins[k].group_id),
			         errdetail("Neither the LogDB nor dragonraft's catalog knows the "
			                   "group; create_group refuses that group id while the "
			                   "origin exists."),
			         errhint("If this node was a member of group %llu and its "
			                 "leave_group was cut short (the server crashed before it "
			                 "ended), run SELECT dragonraft.leave_group(%llu, true) to "
			                 "end it.",
			                 (unsigned long long)origins[k].group_id,
			                 (unsigned long long)origins[k].group_id)));
			continue;
		}
		g = new_entry(origins[k].group_id, applied, origins[k].id, false);
		if (g == NULL)
			continue;
		lost_reason(msg, sizeof(msg), origins[k].group_id, applied, &moved);
		set_stopped(g, DR_MEMBER_LOST, msg);
		warn_lost(origins[k].group_id, msg, moved);
	}
	SpinLockAcquire(&dr_shared->mutex);
	dr_shared->groups_not_started = not_started;
	SpinLockRelease(&dr_shared->mutex);
	if (dlist_is_empty(&info.need))
		info.file_current = true; /* nothing to tell: no group, or all know it */
	pfree(lbs);
	pfree(members);
	pfree(ids);
}

/* ---- requests ---- */

static void complete(const DrTaken *t, int rc, uint64 leader)
{
	DrResult res;

	memset(&res, 0, sizeof(res));
	res.rc = rc;
	res.leader = leader;
	dr_queue_complete(t->slot, t->generation, &res);
}

static void fail(const DrTaken *t, int rc, const char *fmt, ...) pg_attribute_printf(3, 4);

static void fail(const DrTaken *t, int rc, const char *fmt, ...)
{
	DrResult res;
	va_list ap;

	memset(&res, 0, sizeof(res));
	res.rc = rc;
	va_start(ap, fmt);
	vsnprintf(res.errmsg, sizeof(res.errmsg), fmt, ap);
	va_end(ap);
	dr_queue_complete(t->slot, t->generation, &res);
}

/* The members of a running group, as JSON, for an error message. */
static void describe_members(uint64 group_id, StringInfo out)
{
	struct engine_group_status *st = palloc(sizeof(*st));
	const struct raft_membership *m = &st->membership;

	appendStringInfoChar(out, '{');
	if (engine_group_status(dr_engine->e, group_id, st) == ENGINE_OK) {
		LWLockAcquire(dr_shared->groups_lock, LW_SHARED);
		for (uint32 i = 0; i < m->n_voters + m->n_nonvoters; i++) {
			raft_id id = i < m->n_voters ? m->voters[i] : m->nonvoters[i - m->n_voters];
			const char *a = id == (raft_id)dr_node_id ? dr_shared->raft_address
			                                          : dr_shmem_node_address(id);

			appendStringInfo(out, "%s\"%llu\": \"%s\"", i > 0 ? ", " : "",
			                 (unsigned long long)id, a ? a : "?");
		}
		LWLockRelease(dr_shared->groups_lock);
	}
	appendStringInfoChar(out, '}');
	pfree(st);
}

/* Do the running group's members equal the requested ones (ids and addresses)? */
static bool same_members(uint64 group_id, const DrMemberAddr *req, int n)
{
	struct engine_group_status *st = palloc(sizeof(*st));
	const struct raft_membership *m = &st->membership;
	bool same;

	if (engine_group_status(dr_engine->e, group_id, st) != ENGINE_OK)
		return false;
	same = m->n_voters == (uint32)n && m->n_nonvoters == 0;
	LWLockAcquire(dr_shared->groups_lock, LW_SHARED);
	for (int i = 0; i < n && same; i++) {
		const char *a = req[i].node_id == (uint64)dr_node_id
		                        ? dr_shared->raft_address
		                        : dr_shmem_node_address(req[i].node_id);
		bool found = false;

		for (uint32 k = 0; k < m->n_voters; k++)
			found = found || m->voters[k] == req[i].node_id;
		same = found && a != NULL && strcmp(a, req[i].addr) == 0;
	}
	LWLockRelease(dr_shared->groups_lock);
	pfree(st);
	return same;
}

/* Addresses a user gave join_group for a group this node is a member of. */
static void join_addresses(uint64 group_id, const DrMemberAddr *req, int n)
{
	struct engine_member *m = palloc(sizeof(*m) * RAFT_MAX_MEMBERS);
	uint32 k = 0;

	for (int i = 0; i < n; i++) {
		if (req[i].node_id == (uint64)dr_node_id ||
		    engine_learn_address(dr_engine->e, group_id, req[i].node_id, req[i].addr) !=
		            ENGINE_OK)
			continue;
		m[k].node_id = req[i].node_id;
		strlcpy(m[k].addr, req[i].addr, ENGINE_ADDR_MAX);
		k++;
	}
	learn_addresses(m, k);
	pfree(m);
}

static void create_group(DrTaken *t)
{
	struct engine_bootstrap *bs = palloc0(sizeof(*bs));
	DrMemberAddr *req = palloc(sizeof(DrMemberAddr) * RAFT_MAX_MEMBERS);
	uint64 gid = t->group_id;
	RepOriginId origin;
	DrGroup *g;
	DrSm *sm;
	int n = 0, n_origins, rc;
	bool ok;

	ok = dr_queue_decode_members(t->payload, t->len, req, RAFT_MAX_MEMBERS, &n);
	dr_queue_done_with_payload(t);
	if (!ok || n == 0) {
		fail(t, DR_RC_BAD_REQUEST, "malformed member list");
		return;
	}
	if (dr_engine_groups_find(gid) != NULL) {
		StringInfoData s;

		if (t->kind == DR_REQ_JOIN_GROUP) {
			/* Already a member: it learns the addresses it was given (review 3 #4). */
			join_addresses(gid, req, n);
			complete(t, ENGINE_OK, 0);
			return;
		}
		if (same_members(gid, req, n)) {
			complete(t, ENGINE_OK, 0);
			return;
		}
		initStringInfo(&s);
		describe_members(gid, &s);
		fail(t, DR_RC_MEMBERS_DIFFER, "%s", s.data);
		return;
	}
	/*
	 * The origin is made right after the member's LogDB record, so one
	 * without the other means this node was a member and lost its LogDB.
	 * Looked up again each time: the way to rejoin is to drop it.
	 */
	origin = dr_origins_find(gid, false);
	LWLockAcquire(dr_shared->groups_lock, LW_SHARED);
	g = dr_shmem_group_find(gid);
	if (g != NULL) {
		char error[DR_ERROR_LEN];
		DrMemberState state;

		SpinLockAcquire(&g->mutex);
		state = g->member_state;
		strlcpy(error, g->error, sizeof(error));
		SpinLockRelease(&g->mutex);
		LWLockRelease(dr_shared->groups_lock);
		if (state != DR_MEMBER_LOST || origin != InvalidRepOriginId) {
			fail(t, state == DR_MEMBER_LOST ? DR_RC_LOST : ENGINE_ERR_SM, "%s", error);
			return;
		}
		remove_entry(gid); /* its origin was dropped: it may join as new */
	} else
		LWLockRelease(dr_shared->groups_lock);

	if (origin != InvalidRepOriginId) {
		char why[DR_ERROR_LEN];
		bool moved;

		lost_reason(why, sizeof(why), gid, replorigin_get_progress(origin, false), &moved);
		fail(t, DR_RC_LOST, "%s", why);
		return;
	}
	/*
	 * PostgreSQL tracks at most max_replication_slots origins with a
	 * position, and they are the server's, not only dragonraft's: counted
	 * here, where create_group requests are taken one at a time.
	 */
	n_origins = dr_origins_count();
	if (n_origins >= max_replication_slots) {
		fail(t, DR_RC_ORIGINS_FULL, "%d", n_origins);
		return;
	}
	g = new_entry(gid, 0, InvalidRepOriginId, false);
	if (g == NULL) {
		complete(t, DR_RC_GROUPS_FULL, 0);
		return;
	}
	bs->join = t->kind == DR_REQ_JOIN_GROUP;
	bs->n_members = n;
	for (int i = 0; i < n; i++) {
		bs->members[i].node_id = req[i].node_id;
		strlcpy(bs->members[i].addr, req[i].addr, ENGINE_ADDR_MAX);
	}
	/*
	 * The file goes before the member's LogDB record is made: a crash between
	 * the two left a group that the restart took for one with this node's
	 * info (the file said every group had it), and every registration and
	 * command of this node came before its info in the group's log.  (One
	 * that fails from here on is written again at the next turn.)
	 */
	forget_file();
	rc = start_member(gid, bs, g, 0, &sm);
	if (rc != ENGINE_OK) {
		remove_entry(gid);
		fail(t, rc, "%s", engine_errmsg(dr_engine->e));
		return;
	}
	/*
	 * The origin now, a joining member's too (review 3 #6): one taken by
	 * another group before its first entry would leave it unable to apply.
	 * join_group drops it again if it gives up (leave_locally).
	 */
	origin = dr_origins_find(gid, true);
	SpinLockAcquire(&g->mutex);
	g->origin = origin;
	SpinLockRelease(&g->mutex);
	sm->joining = bs->join;
	learn_addresses(bs->members, bs->n_members);
	dr_engine_status_publish(sm); /* visible when create_group returns */
	need_info(sm);
	if (dr_testing_info_delay > 0)
		sm->info_retry_at =
		        TimestampTzPlusMilliseconds(GetCurrentTimestamp(), dr_testing_info_delay);
	complete(t, ENGINE_OK, 0);
	ereport(LOG, (errmsg(bs->join ? "dragonraft group %llu joined by node %d (%d known members)"
	                              : "dragonraft group %llu created on node %d with %d members",
	                     (unsigned long long)gid, dr_node_id, n)));
}

void dr_engine_groups_stop(uint64 group_id)
{
	DrSm *sm = dr_engine_groups_find(group_id);

	if (sm != NULL) {
		remove_sm(sm);
		dr_engine->n_running--;
	}
	remove_entry(group_id);
}

/*
 * Restart a member in place (pg_sm.c heal_later): the engine drops the
 * group, with its received snapshot file, and starts it again from the
 * LogDB exactly as a server restart does (the replication origin's flushed
 * position is what the state machine holds); its leader then sends another
 * snapshot.  Its status entry stays, with the load's error until a snapshot
 * loads; the apply worker forgets that the group is parked.
 */
void dr_engine_groups_heal(DrSm *sm)
{
	uint64 gid = sm->group_id;
	DrGroup *g = sm->shared;
	uint32 heals = sm->heal_failures;
	bool joining = sm->joining, info = sm->info_needed;
	raft_index join_target = sm->join_target;
	RepOriginId origin;
	raft_index durable;
	int rc;

	engine_stop_group(dr_engine->e, gid);
	remove_sm(sm);
	dr_engine->n_running--;
	SpinLockAcquire(&g->mutex);
	origin = g->origin;
	g->handed = 0; /* (as new_entry: the new DrSm hands from its applied + 1) */
	g->apply_failures = 0;
	g->apply_retry_at = 0;
	g->apply_corrupt = false;
	memset(&g->stats, 0, sizeof(g->stats)); /* the engine's counters start again */
	memset(&g->stats_base, 0, sizeof(g->stats_base));
	g->stats_base.apply_errors = g->apply_errors;
	g->stats_reset = GetCurrentTimestamp();
	SpinLockRelease(&g->mutex);
	durable = origin != InvalidRepOriginId ? replorigin_get_progress(origin, true) : 0;
	rc = start_member(gid, NULL, g, durable, &sm);
	if (rc != ENGINE_OK) {
		ereport(LOG, (errmsg("dragonraft group %llu not restarted: %s",
		                     (unsigned long long)gid, engine_errmsg(dr_engine->e))));
		set_stopped(g, DR_MEMBER_FAILED, engine_errmsg(dr_engine->e));
		return;
	}
	sm->heal_failures = heals;
	sm->heal_applied = durable;
	sm->joining = joining;
	sm->join_target = join_target;
	if (info)
		need_info(sm);
	dr_pg_sm_restarted(sm);
	dr_engine_status_publish(sm);
	ereport(LOG, (errmsg("dragonraft group %llu restarted on node %d from its LogDB, "
	                     "applied up to %llu",
	                     (unsigned long long)gid, dr_node_id, (unsigned long long)durable)));
}

/* Engine callback: an operation of a backend's request ended (a proposal:
 * committed and handed to the apply side, or not). */
void dr_engine_groups_op_done(void *ctx, const struct engine_result *res)
{
	DrResult r;
	int slot;
	uint64 gen;

	dr_testing_error(DR_TESTING_ERROR_COMPLETION);
	memset(&r, 0, sizeof(r));
	r.rc = res->rc;
	r.index = res->index;
	r.leader = res->leader;
	dr_queue_from_ctx(ctx, &slot, &gen);
	dr_queue_complete(slot, gen, &r);
}

/*
 * An operation whose backend returns once dragonraft.status and
 * dragonraft.members show its outcome (a transfer's new leader, a
 * membership change's members): its outcome is kept until the main loop
 * published its group's status (dr_engine_groups_shown_done).
 */
typedef struct Shown {
	struct Shown *next;
	void *ctx; /* the request's (dr_queue_ctx) */
	uint64 group_id;
	struct engine_result res;
} Shown;

static Shown *shown_done;

void dr_engine_groups_shown_cb(void *ctx, const struct engine_result *res)
{
	Shown *sh = ctx;

	dr_testing_error(DR_TESTING_ERROR_COMPLETION);
	sh->res = *res;
	sh->next = shown_done;
	shown_done = sh;
}

void *dr_engine_groups_shown_ctx(uint64 group_id, void *queue_ctx)
{
	Shown *sh = malloc(sizeof(*sh));

	if (sh != NULL) {
		sh->ctx = queue_ctx;
		sh->group_id = group_id;
	}
	return sh;
}

static void transfer_leader(DrTaken *t)
{
	DrSm *sm = dr_engine_groups_find(t->group_id);
	void *ctx;
	int rc;

	if (sm == NULL) {
		complete(t, ENGINE_ERR_NO_GROUP, 0);
		return;
	}
	ctx = dr_engine_groups_shown_ctx(t->group_id, dr_queue_ctx(t));
	if (ctx == NULL) {
		complete(t, ENGINE_ERR_NOMEM, 0);
		return;
	}
	rc = engine_transfer_leader(dr_engine->e, t->group_id, t->arg, dr_engine_groups_shown_cb,
	                            ctx);
	if (rc != ENGINE_OK) {
		free(ctx);
		complete(t, rc, sm->leader);
	}
}

void dr_engine_groups_shown_done(void)
{
	while (shown_done != NULL) {
		Shown *sh = shown_done;
		DrSm *sm = dr_engine_groups_find(sh->group_id);

		shown_done = sh->next;
		if (sm != NULL && sh->res.rc == ENGINE_OK)
			dr_engine_status_publish(sm);
		dr_engine_groups_op_done(sh->ctx, &sh->res);
		free(sh);
	}
}

/*
 * A change set, registration or utility command.  With a term (arg), only
 * if this node still leads the group in that term: a backend recorded the
 * term at its first write, and a later term may have seen other writes.
 */
static void propose(DrTaken *t)
{
	DrSm *sm = dr_engine_groups_find(t->group_id);
	static struct engine_group_status st;
	int rc;

	if (sm == NULL) {
		dr_queue_done_with_payload(t);
		complete(t, ENGINE_ERR_NO_GROUP, 0);
		return;
	}
	if (t->arg != 0 && (engine_group_status(dr_engine->e, t->group_id, &st) != ENGINE_OK ||
	                    st.role != RAFT_LEADER || st.term != t->arg)) {
		dr_queue_done_with_payload(t);
		complete(t, DR_RC_TERM_CHANGED, st.leader);
		return;
	}
	/* The engine copies the entry: the payload may go right after. */
	rc = engine_propose(dr_engine->e, t->group_id, t->payload, (uint32)t->len,
	                    dr_engine_groups_op_done, dr_queue_ctx(t));
	dr_queue_done_with_payload(t);
	/* A leadership transfer takes no proposal until it ends (within two
	 * election timeouts): the backend waits and proposes again, as for
	 * backpressure, then commits here or is told the new leader (review 13
	 * F7: 55000, "see the server log"). */
	if (rc == ENGINE_ERR_PENDING)
		rc = ENGINE_ERR_BUSY;
	/* Refused at once: nothing was proposed.  The backend words these itself;
	 * any other reason (the engine failed or stops, the group failed, no
	 * memory) is DR_RC_NOT_TAKEN, never an outcome it has to call unknown. */
	if (rc == ENGINE_ERR_BUSY || rc == ENGINE_ERR_NOT_LEADER || rc == ENGINE_ERR_DROPPED ||
	    rc == ENGINE_ERR_TOO_BIG || rc == ENGINE_ERR_NO_GROUP)
		complete(t, rc, sm->leader);
	else if (rc != ENGINE_OK)
		fail(t, DR_RC_NOT_TAKEN, "%s",
		     engine_failed(dr_engine->e) ? engine_errmsg(dr_engine->e)
		                                 : engine_strerror(rc));
}

void dr_engine_groups_take_requests(void)
{
	DrTaken t;

	while (dr_queue_take(&t)) {
		switch (t.kind) {
		case DR_REQ_CREATE_GROUP:
		case DR_REQ_JOIN_GROUP:
			create_group(&t);
			break;
		case DR_REQ_TRANSFER_LEADER:
			dr_queue_done_with_payload(&t);
			transfer_leader(&t);
			break;
		case DR_REQ_PROPOSE:
			propose(&t);
			break;
		default:
			if (dr_membership_request(&t))
				break;
			dr_queue_done_with_payload(&t);
			fail(&t, DR_RC_BAD_REQUEST, "unknown request kind %d", (int)t.kind);
		}
	}
}

/* ---- member info ---- */

typedef struct InfoCtx {
	DrSm *sm;
	uint64 generation;
} InfoCtx;

/* The room for this node's member info entry. */
#define INFO_ENTRY_MAX (ENTRY_CLIENT_ADDR_MAX + 3 * ENTRY_LOCALE_MAX + 64)
/* Member info proposals that failed in a row double the pause, up to this. */
#define INFO_RETRY_MS     1000
#define INFO_RETRY_MAX_MS 30000

/* This node's member info entry as it proposes it now into buf (INFO_ENTRY_MAX
 * bytes), its length in *len; false: the client address cannot be sent.  (No
 * palloc, no ereport: engine callbacks use it.) */
static bool encode_info(uint8 *buf, size_t *len)
{
	struct entry_member_info mi;

	memset(&mi, 0, sizeof(mi));
	mi.node_id = (uint32)dr_node_id;
	mi.client_addr = info.address;
	mi.client_addr_len = (uint16)strlen(info.address);
	if (info.has_locale) {
		mi.has_locale = 1;
		mi.encoding = info.encoding;
		mi.locale_provider = info.provider;
		mi.collate = info.collate;
		mi.collate_len = (uint16)strlen(info.collate);
		mi.ctype = info.ctype;
		mi.ctype_len = (uint16)strlen(info.ctype);
		mi.icu_locale = info.icu_locale;
		mi.icu_locale_len = (uint16)strlen(info.icu_locale);
	}
	return entry_encode_member_info(buf, INFO_ENTRY_MAX, &mi, len) == ENTRY_OK;
}

/* sm's group has this node's current member info: nothing to propose. */
static void info_known(DrSm *sm)
{
	if (sm->info_needed) {
		sm->info_needed = false;
		dlist_delete(&sm->info_node);
	}
}

/* Engine callback: a member info proposal ended. */
static void info_done(void *ctx, const struct engine_result *res)
{
	InfoCtx *c = ctx;
	DrSm *sm = c->sm;

	sm->info_inflight = false;
	if (res->rc != ENGINE_OK) {
		/* Say, a joiner that receives nothing: no entry every turn (review 3 #14). */
		sm->info_retry_at = TimestampTzPlusMilliseconds(
		        GetCurrentTimestamp(),
		        Min(INFO_RETRY_MS << Min(sm->info_failures, 5), INFO_RETRY_MAX_MS));
		sm->info_failures++;
	} else {
		sm->info_failures = 0;
		/* (an older generation's says the same encoding and locale) */
		set_info_in_log(sm->shared);
	}
	if (res->rc == ENGINE_OK && c->generation == info.generation)
		info_known(sm);
	free(c);
}

/*
 * An entry of sm's group was handed to the apply side (an engine callback:
 * no palloc, no ereport).  Every member must reach every other, so the
 * members' Raft addresses travel in the log (review 3 #4): the bootstrap
 * members' are in no membership change.  When a member's info arrives (a
 * member that starts, or a joiner that caught up), the leader proposes the
 * addresses it knows (propose_addresses), each with when it learned it;
 * every member learns those newer than the ones it dials (user28).
 */
void dr_engine_groups_entry_applied(DrSm *sm, const uint8 *data, uint32 len)
{
	struct entry_address a[ENTRY_ADDRESSES_MAX];
	struct entry_member_info mi;
	struct entry_header h;
	char addr[ENTRY_ADDRESSES_MAX][ENTRY_RAFT_ADDR_MAX + 1];
	size_t n;

	if (entry_decode_header(data, len, &h) != ENTRY_OK)
		return;
	if (entry_is_member_info(h.type)) {
		if (entry_decode_member_info(&h, &mi) != ENTRY_OK)
			return;
		/* This node's own, committed: also when its proposal's outcome was
		 * lost (a timeout, a leader change), whose retry backs off up to
		 * INFO_RETRY_MAX_MS while a replicate_table() waits for it. */
		if (mi.node_id == (uint32)dr_node_id) {
			uint8 now[INFO_ENTRY_MAX];
			size_t now_len;

			set_info_in_log(sm->shared);
			/* The info it proposes now is committed: not again, though
			 * its proposal's outcome may come late or be lost (committed
			 * after its deadline on a loaded host, a leader change): it
			 * was proposed again at each retry, each time with the
			 * leader's addresses after it (TAP 118's rare 13 -> 15).  But
			 * an older info of this node that comes after it (entries
			 * handed again after a restart, an address changed and
			 * changed back: the group's last word on this node is what
			 * counts) needs the current one again (TAP 165). */
			if (encode_info(now, &now_len)) {
				if (now_len == len && memcmp(now, data, len) == 0)
					info_known(sm);
				else
					need_info_later(sm);
			}
		} else if (!sm->addresses_needed) {
			sm->addresses_needed = true;
			dlist_push_tail(&info.addrs, &sm->addr_node);
			info.addrs_new = true;
		}
		return;
	}
	if (!entry_is_addresses(h.type) || entry_decode_addresses(&h, a, &n) != ENTRY_OK)
		return;
	StaticAssertStmt(ENTRY_RAFT_ADDR_MAX < ENGINE_ADDR_MAX, "a Raft address fits the engine's");
	for (size_t i = 0; i < n; i++) {
		int rc;

		memcpy(addr[i], a[i].addr, a[i].addr_len);
		addr[i][a[i].addr_len] = '\0';
		if (a[i].node_id == (uint32)dr_node_id) {
			/* (its own address is its own; the stamps it gives it later go past
			 * this one, from a server whose clock runs ahead too) */
			if (h.type == ENTRY_ADDRESSES)
				engine_address_seen(dr_engine->e, a[i].learned);
			a[i].node_id = 0;
			continue;
		}
		/*
		 * (saved in the LogDB when new: not under the groups lock)  Each
		 * with the leader's stamp: one older than the address this node
		 * dials, say a correction a user gave after the leader learned it,
		 * changes nothing (user28).  An entry of older builds has none: as
		 * new as what the group said of the node before it (learned now, it
		 * undid corrections and later stamped entries: review35).
		 */
		if (h.type == ENTRY_ADDRESSES)
			rc = engine_learn_address_at(dr_engine->e, sm->group_id, a[i].node_id,
			                             addr[i], a[i].learned);
		else
			rc = engine_learn_address_unstamped(dr_engine->e, sm->group_id,
			                                    a[i].node_id, addr[i]);
		if (rc != ENGINE_OK)
			a[i].node_id = 0;
	}
	LWLockAcquire(dr_shared->groups_lock, LW_EXCLUSIVE);
	for (size_t i = 0; i < n; i++) {
		const char *dialed = engine_peer_address(dr_engine->e, a[i].node_id);

		if (a[i].node_id != 0) /* dragonraft.members: the address dialed */
			(void)dr_shmem_node_set(a[i].node_id, dialed != NULL ? dialed : addr[i]);
	}
	LWLockRelease(dr_shared->groups_lock);
}

/* The leader of sm's group proposes its members' addresses (no-op elsewhere). */
static void propose_addresses(DrSm *sm)
{
	static struct engine_group_status st;
	static struct logdb_bootstrap bs;
	struct entry_address a[ENTRY_ADDRESSES_MAX];
	const struct raft_membership *m = &st.membership;
	uint8 buf[ENTRY_ADDRESSES_BYTES(ENTRY_ADDRESSES_MAX, ENTRY_RAFT_ADDR_MAX)];
	size_t n = 0, len;
	char own[DR_ADDR_LEN];

	/* (Kept while this node follows: if it leads later, it proposes them then.) */
	if (sm->role != RAFT_LEADER ||
	    engine_group_status(dr_engine->e, sm->group_id, &st) != ENGINE_OK ||
	    st.role != RAFT_LEADER)
		return;
	if (logdb_get_bootstrap(dr_engine->db, sm->group_id, dr_node_id, &bs) != LOGDB_OK)
		bs.n_addresses = 0;
	SpinLockAcquire(&dr_shared->mutex);
	strlcpy(own, dr_shared->raft_address, sizeof(own));
	SpinLockRelease(&dr_shared->mutex);
	for (uint32 i = 0; i < m->n_voters + m->n_nonvoters && n < ENTRY_ADDRESSES_MAX; i++) {
		raft_id id = i < m->n_voters ? m->voters[i] : m->nonvoters[i - m->n_voters];
		/* (the address this node dials it at: the newest, maybe from another
		 * group; its own: given now) */
		const char *addr =
		        id == (raft_id)dr_node_id ? own : engine_peer_address(dr_engine->e, id);
		uint64 learned = id == (raft_id)dr_node_id ? engine_address_stamp(dr_engine->e)
		                                           : engine_peer_learned(dr_engine->e, id);

		for (uint32 k = 0; addr == NULL && k < bs.n_addresses && k < RAFT_MAX_MEMBERS; k++)
			if (bs.addresses[k].node_id == id) {
				addr = bs.addresses[k].addr;
				learned = bs.addresses[k].learned;
			}
		if (addr == NULL || addr[0] == '\0' || strlen(addr) > ENTRY_RAFT_ADDR_MAX)
			continue;
		a[n].node_id = (uint32)id;
		a[n].addr = addr;
		a[n].addr_len = (uint16)strlen(addr);
		a[n].learned = learned;
		n++;
	}
	if (n > 0 && entry_encode_addresses(buf, sizeof(buf), a, n, &len) == ENTRY_OK &&
	    engine_propose(dr_engine->e, sm->group_id, buf, (uint32)len, NULL, NULL) != ENGINE_OK)
		return; /* busy: the next turn tries again */
	sm->addresses_needed = false;
	dlist_delete(&sm->addr_node);
}

/*
 * Write the address (and encoding and locale) every group knows now, so that
 * a restart proposes nothing.  One that cannot be written (a full disk, a
 * directory in the way) is tried again a minute later: tried at each turn
 * (250 ms), its failure was logged four times a second for as long as it
 * lasted (review 45, TAP 125).  Meanwhile every group knows this node's
 * info; each restart sends it again.
 */
#define ADDRESS_FILE_RETRY_MS 60000

static void write_address_file(TimestampTz now)
{
	char path[MAXPGPATH], tmp[MAXPGPATH];
	int fd;

	info.write_at = TimestampTzPlusMilliseconds(now, ADDRESS_FILE_RETRY_MS);

	snprintf(path, sizeof(path), "%s/%s", dr_data_dir, CLIENT_ADDRESS_FILE);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = OpenTransientFile(tmp, O_WRONLY | O_CREAT | O_TRUNC | PG_BINARY);
	if (fd < 0 || write(fd, info.said, strlen(info.said)) != (ssize_t)strlen(info.said) ||
	    pg_fsync(fd) != 0) {
		ereport(LOG, (errcode_for_file_access(),
		              errmsg("could not write file \"%s\": %m", tmp)));
		if (fd >= 0)
			CloseTransientFile(fd);
		return;
	}
	CloseTransientFile(fd);
	if (durable_rename(tmp, path, LOG) == 0) {
		info.file_current = true;
		info.write_at = 0;
	}
}

/*
 * sm's group is led here now (engine_status.c publish, before the status
 * says so): the addresses kept for it while this node followed are
 * proposed at once, not at the next turn (up to 250 ms later), so that
 * what a client proposes once it sees this leader comes after them (a
 * test's settled() found them after its execute() 2 times in 12 transfers,
 * review 51).
 */
void dr_engine_groups_propose_addresses_of(DrSm *sm)
{
	if (sm->addresses_needed)
		propose_addresses(sm);
}

/*
 * The addresses that member infos just handed over ask for: proposed in the
 * turn that handed them, before the apply side has them, so that once a
 * member's info shows in SQL, a write proposed next comes after them in the
 * log (TAP 046 once found them uncommitted after its followers stopped).
 * Those refused (busy) are tried again with the member info, not each turn.
 */
void dr_engine_groups_propose_addresses(bool retry)
{
	dlist_mutable_iter mit;

	if (!info.addrs_new && !retry)
		return;
	info.addrs_new = false;
	dlist_foreach_modify(mit, &info.addrs)
	{
		propose_addresses(dlist_container(DrSm, addr_node, mit.cur));
	}
}

void dr_engine_groups_member_info(void)
{
	dlist_iter it;
	uint8 buf[INFO_ENTRY_MAX];
	size_t len;
	TimestampTz now = GetCurrentTimestamp();

	dr_engine_groups_propose_addresses(true);
	if (info.file_stale)
		forget_file(); /* (an applied entry asked for the info again) */
	if (info.file_current)
		return;
	if (dlist_is_empty(&info.need)) {
		if (now >= info.write_at)
			write_address_file(now);
		return;
	}
	if (!encode_info(buf, &len)) {
		ereport(WARNING, (errmsg("dragonraft client address \"%s\" cannot be sent to the "
		                         "groups",
		                         info.address),
		                  errdetail("It must be 1 to %d printable ASCII characters.",
		                            ENTRY_CLIENT_ADDR_MAX)));
		info.file_current = true; /* said once */
		/* (nothing for replicate_table() and execute() to wait for) */
		dlist_foreach(it, &info.need)
		{
			set_info_in_log(dlist_container(DrSm, info_node, it.cur)->shared);
		}
		return;
	}
	dlist_foreach(it, &info.need)
	{
		DrSm *sm = dlist_container(DrSm, info_node, it.cur);
		InfoCtx *c;

		if (sm->info_inflight || sm->leader == 0 || now < sm->info_retry_at)
			continue; /* no leader yet, or backing off: later */
		if (sm->joining) {
			/* A joiner proposes it once it caught up (review 3 #14): until then
			 * each try would only time out, and grow the leader's log. */
			static struct engine_group_status st;
			raft_index applied;

			if (sm->join_target == 0 &&
			    engine_group_status(dr_engine->e, sm->group_id, &st) == ENGINE_OK)
				sm->join_target = st.commit; /* the first commit index it knows */
			SpinLockAcquire(&sm->shared->mutex);
			applied = sm->shared->applied;
			SpinLockRelease(&sm->shared->mutex);
			if (sm->join_target == 0 || applied < sm->join_target)
				continue;
			sm->joining = false;
		}
		c = malloc(sizeof(*c));
		if (c == NULL)
			return;
		c->sm = sm;
		c->generation = info.generation;
		if (engine_propose(dr_engine->e, sm->group_id, buf, (uint32)len, info_done, c) ==
		    ENGINE_OK)
			sm->info_inflight = true;
		else
			free(c); /* busy or no leader: the next turn tries again */
	}
}

void dr_engine_groups_reload(void)
{
	char *addr = dr_effective_client_address();
	HASH_SEQ_STATUS seq;
	DrSm *sm;
	char path[MAXPGPATH];

	if (strcmp(addr, info.address) == 0)
		return;
	ereport(LOG,
	        (errmsg("dragonraft client address of node %d is now \"%s\"", dr_node_id, addr)));
	strlcpy(info.address, addr, sizeof(info.address));
	set_said();
	info.generation++;
	snprintf(path, sizeof(path), "%s/%s", dr_data_dir, CLIENT_ADDRESS_FILE);
	if (unlink(path) != 0 && errno != ENOENT)
		ereport(LOG, (errcode_for_file_access(),
		              errmsg("could not remove file \"%s\": %m", path)));
	info.file_current = false;
	info.write_at = 0;
	hash_seq_init(&seq, dr_engine->sms);
	while ((sm = hash_seq_search(&seq)) != NULL)
		need_info(sm);
}
