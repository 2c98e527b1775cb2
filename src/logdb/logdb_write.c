/*
 * logdb_write.c - everything that changes the LogDB: the per-round save of
 * many groups, bootstrap info, log removal, snapshot records, removal and
 * import of a member's data.
 *
 * Every write goes through one RocksDB write batch, synced (a save may ask
 * for none, see logdb_save), under the lock of the shard it touches, so the
 * member cache (struct member) changes in the same order as the disk.  If a write fails, the cached
 * state of the members it touched is forgotten and reloaded from disk on next use.
 */
#include <inttypes.h>
#include <string.h>

#include "logdb/logdb_int.h"

/*
 * Every write goes through here: none once the LogDB stopped; the batch goes
 * to the shard's journal (fdatasynced if sync), then to RocksDB (no WAL);
 * the first failure stops the LogDB.  Shard lock held.
 */
static int write_to(struct logdb *db, struct shard *s, rocksdb_writebatch_t *b, bool sync,
                    const char *what)
{
	char *err = NULL;
	int rc = logdb_check_stopped(db);
	if (rc || (rc = logdb_journal_append(db, s, b, sync)))
		return rc;
	rocksdb_write(s->db, db->wopts, b, &err);
	atomic_store(&s->busy, BUSY_UNKNOWN);
	if (err)
		return logdb_write_failed(db, err, what);
	return LOGDB_OK;
}

/* A synced write. */
static int write_batch(struct logdb *db, struct shard *s, rocksdb_writebatch_t *b, const char *what)
{
	return write_to(db, s, b, true, what);
}

static void put(rocksdb_writebatch_t *b, const uint8_t *key, size_t klen, const struct logdb_buf *v)
{
	rocksdb_writebatch_put(b, (const char *)key, klen, (const char *)v->p, v->len);
}

/* Delete the keys of kind (entries or snapshots) [lo, hi) of a member: one range tombstone. */
static void delete_indexes(rocksdb_writebatch_t *b, unsigned kind, uint64_t g, uint64_t n,
                           uint64_t lo, uint64_t hi)
{
	uint8_t k1[LOGDB_INDEX_KEY_LEN], k2[LOGDB_INDEX_KEY_LEN];
	logdb_index_key(k1, kind, g, n, lo);
	logdb_index_key(k2, kind, g, n, hi);
	rocksdb_writebatch_delete_range(b, (const char *)k1, sizeof(k1), (const char *)k2,
	                                sizeof(k2));
}

/*
 * Add to b the deletion of the runs that hold only entries <= index; the run
 * that holds index + 1 (if index < last) stays, its head below the new first
 * index unread.  (A run this save has staged but not written is not seen: the
 * deletion then stops lower, which only keeps more.)
 */
static int drop_entries_to(struct logdb *db, struct shard *s, rocksdb_writebatch_t *b, uint64_t g,
                           uint64_t n, uint64_t index, uint64_t last)
{
	uint64_t keep = index + 1;
	if (index < last) {
		int rc = logdb_run_holding(db, s, g, n, index + 1, &keep);
		if (rc)
			return rc;
	}
	delete_indexes(b, LOGDB_KIND_ENTRY, g, n, 0, keep);
	return LOGDB_OK;
}

static int put_range(struct logdb *db, rocksdb_writebatch_t *b, struct logdb_buf *v, uint64_t g,
                     uint64_t n, uint64_t first, uint64_t last)
{
	uint8_t key[LOGDB_KEY_LEN];
	logdb_key(key, LOGDB_KIND_RANGE, g, n);
	int rc = logdb_encode_range(v, key, sizeof(key), first, last);
	if (rc)
		return logdb_fail(db, rc, "out of memory encoding an entry range");
	put(b, key, sizeof(key), v);
	return LOGDB_OK;
}

static int put_state(struct logdb *db, rocksdb_writebatch_t *b, struct logdb_buf *v, uint64_t g,
                     uint64_t n, const struct raft_hard_state *hs)
{
	uint8_t key[LOGDB_KEY_LEN];
	logdb_key(key, LOGDB_KIND_STATE, g, n);
	int rc = logdb_encode_state(v, key, sizeof(key), hs);
	if (rc)
		return logdb_fail(db, rc, "out of memory encoding a hard state");
	put(b, key, sizeof(key), v);
	return LOGDB_OK;
}

static int put_snapshot(struct logdb *db, rocksdb_writebatch_t *b, struct logdb_buf *v, uint64_t g,
                        uint64_t n, const struct logdb_snapshot *snap)
{
	uint8_t key[LOGDB_INDEX_KEY_LEN];
	logdb_index_key(key, LOGDB_KIND_SNAPSHOT, g, n, snap->meta.index);
	int rc = logdb_encode_snapshot(v, key, sizeof(key), snap);
	if (rc)
		return logdb_fail(db, rc,
		                  "cannot encode snapshot %" PRIu64 " of group %" PRIu64
		                  " node %" PRIu64 ": %s",
		                  snap->meta.index, g, n, logdb_strerror(rc));
	put(b, key, sizeof(key), v);
	return LOGDB_OK;
}

static int put_bootstrap(struct logdb *db, rocksdb_writebatch_t *b, struct logdb_buf *v, uint64_t g,
                         uint64_t n, const struct logdb_bootstrap *bs)
{
	uint8_t key[LOGDB_KEY_LEN];
	logdb_key(key, LOGDB_KIND_BOOTSTRAP, g, n);
	int rc = logdb_encode_bootstrap(v, key, sizeof(key), bs);
	if (rc)
		return logdb_fail(db, rc,
		                  "cannot encode bootstrap info of group %" PRIu64 " node %" PRIu64
		                  ": %s",
		                  g, n, logdb_strerror(rc));
	put(b, key, sizeof(key), v);
	logdb_key(key, LOGDB_KIND_NODE, g, n);
	if ((rc = logdb_encode_node(v, key, sizeof(key))))
		return logdb_fail(db, rc, "out of memory encoding node info");
	put(b, key, sizeof(key), v);
	return LOGDB_OK;
}

/* Put entries as runs of at most LOGDB_RUN_MAX_ENTRIES / LOGDB_RUN_MAX_BYTES. */
static int put_runs(struct logdb *db, rocksdb_writebatch_t *b, struct logdb_buf *v, uint64_t g,
                    uint64_t n, const struct raft_entry *ents, uint32_t count)
{
	uint8_t key[LOGDB_INDEX_KEY_LEN];
	for (uint32_t i = 0, k; i < count; i += k) {
		uint64_t bytes = ents[i].len;
		for (k = 1; i + k < count && k < LOGDB_RUN_MAX_ENTRIES &&
		            bytes + ents[i + k].len <= LOGDB_RUN_MAX_BYTES;
		     k++)
			bytes += ents[i + k].len;
		logdb_index_key(key, LOGDB_KIND_ENTRY, g, n, ents[i].index);
		int rc = logdb_encode_run(v, key, sizeof(key), &ents[i], k);
		if (rc)
			return logdb_fail(db, rc,
			                  "out of memory encoding entries from %" PRIu64
			                  " of group %" PRIu64,
			                  ents[i].index, g);
		put(b, key, sizeof(key), v);
	}
	return LOGDB_OK;
}

/* Check an update before anything is written. */
static int validate(struct logdb *db, const struct logdb_update *u)
{
	if (u->n_entries && u->entries == NULL)
		return logdb_fail(db, LOGDB_ERR_INVALID, "group %" PRIu64 ": entries missing",
		                  u->group_id);
	for (uint32_t i = 0; i < u->n_entries; i++) {
		const struct raft_entry *e = &u->entries[i];
		if (e->index == 0 || e->index != u->entries[0].index + i)
			return logdb_fail(db, LOGDB_ERR_INVALID,
			                  "group %" PRIu64 " node %" PRIu64
			                  ": entry %u has index %" PRIu64 ", not consecutive",
			                  u->group_id, u->node_id, i, e->index);
		if (e->len && e->data == NULL)
			return logdb_fail(db, LOGDB_ERR_INVALID,
			                  "group %" PRIu64 " entry %" PRIu64 ": data missing",
			                  u->group_id, e->index);
	}
	if (u->snapshot && (u->snapshot->meta.index == 0 || u->snapshot->meta.index == UINT64_MAX))
		return logdb_fail(db, LOGDB_ERR_INVALID,
		                  "group %" PRIu64 ": snapshot index out of range", u->group_id);
	return LOGDB_OK;
}

/*
 * Add one update to the shard's batch and move the cached member to the state
 * the batch produces.
 */
static int stage(struct logdb_worker *w, struct shard *s, rocksdb_writebatch_t *b,
                 struct logdb_buf *v, const struct logdb_update *u)
{
	struct logdb *db = w->db;
	struct member *m;
	uint64_t g = u->group_id, n = u->node_id;
	int rc = logdb_member(db, s, g, n, &m);
	if (rc)
		return rc;
	uint64_t first = m->first, last = m->last;

	if (u->snapshot) {
		/*
		 * Installing a snapshot at S replaces the whole log, as the Raft
		 * core discards its own: every entry goes (also a conflicting tail
		 * above S, which would otherwise come back at a restart with terms
		 * older than the snapshot's), and so do older snapshot records.
		 * Entries of this update follow at S + 1.
		 */
		uint64_t si = u->snapshot->meta.index;
		delete_indexes(b, LOGDB_KIND_SNAPSHOT, g, n, 0, si);
		if ((rc = put_snapshot(db, b, v, g, n, u->snapshot)))
			return rc;
		delete_indexes(b, LOGDB_KIND_ENTRY, g, n, 0, UINT64_MAX);
		first = si + 1;
		last = si;
		/* the state machine's recovery of it (logdb_save_recovery) is over */
		uint8_t key[LOGDB_KEY_LEN];
		logdb_key(key, LOGDB_KIND_RECOVERY, g, n);
		rocksdb_writebatch_delete(b, (const char *)key, sizeof(key));
	}
	if (u->n_entries) {
		uint64_t lo = u->entries[0].index, hi = u->entries[u->n_entries - 1].index;
		if (lo < first)
			return logdb_fail(db, LOGDB_ERR_COMPACTED,
			                  "group %" PRIu64 " node %" PRIu64
			                  ": cannot write entry %" PRIu64
			                  " below the first stored index %" PRIu64,
			                  g, n, lo, first);
		if (lo > last + 1)
			return logdb_fail(db, LOGDB_ERR_INVALID,
			                  "group %" PRIu64 " node %" PRIu64 ": entry %" PRIu64
			                  " would leave a gap after last index %" PRIu64,
			                  g, n, lo, last);
		/*
		 * Entries at and above lo replace the stored ones: one range
		 * tombstone drops every run that starts at or above lo (a
		 * conflict; rare), and the run that holds lo - 1 keeps its stale
		 * tail, which readers cut at the next run's key, lo.
		 */
		if (lo <= last)
			delete_indexes(b, LOGDB_KIND_ENTRY, g, n, lo, last + 1);
		if ((rc = put_runs(db, b, v, g, n, u->entries, u->n_entries)))
			return rc;
		last = hi;
	}
	if (first != m->first || last != m->last || (!m->stored && u->n_entries)) {
		if ((rc = put_range(db, b, v, g, n, first, last)))
			return rc;
		m->first = first;
		m->last = last;
		m->stored = true;
	}
	if (u->hard_state_changed &&
	    !(m->hs_stored && memcmp(&m->hs, &u->hard_state, sizeof(m->hs)) == 0)) {
		if ((rc = put_state(db, b, v, g, n, &u->hard_state)))
			return rc;
		m->hs = u->hard_state;
		m->hs_stored = true;
		m->stored = true;
	}
	return LOGDB_OK;
}

/* Build and write shard si's batch from the updates that map to it. */
static int save_shard(struct logdb_worker *w, unsigned si, const struct logdb_update *updates,
                      size_t n, bool sync)
{
	struct logdb *db = w->db;
	struct shard *s = &db->shards[si];
	rocksdb_writebatch_t *b = w->batches[si];
	struct logdb_buf *v = &w->vals[si];
	int rc = LOGDB_OK;

	pthread_mutex_lock(&s->lock);
	rocksdb_writebatch_clear(b);
	for (size_t i = 0; i < n && rc == LOGDB_OK; i++)
		if (w->shard_of[i] == si)
			rc = stage(w, s, b, v, &updates[i]);
	if (rc == LOGDB_OK && rocksdb_writebatch_count(b) > 0)
		rc = write_to(db, s, b, sync, "writing a save batch");
	if (rc)
		for (size_t i = 0; i < n; i++)
			if (w->shard_of[i] == si)
				logdb_member_forget(s, updates[i].group_id, updates[i].node_id);
	rocksdb_writebatch_clear(b);
	pthread_mutex_unlock(&s->lock);
	return rc;
}

static void *writer_main(void *arg)
{
	struct shard *s = arg;
	pthread_mutex_lock(&s->job_lock);
	for (;;) {
		while (!s->stop && !(s->job.posted && !s->job.done && s->job.w))
			pthread_cond_wait(&s->job_ready, &s->job_lock);
		if (s->stop)
			break;
		struct shard_job j = s->job;
		pthread_mutex_unlock(&s->job_lock);
		int rc = save_shard(j.w, (unsigned)(s - j.w->db->shards), j.updates, j.n, j.sync);
		pthread_mutex_lock(&s->job_lock);
		s->job.rc = rc;
		s->job.done = true;
		s->job.w = NULL;
		pthread_cond_broadcast(&s->job_done);
	}
	pthread_mutex_unlock(&s->job_lock);
	return NULL;
}

int logdb_writers_start(struct logdb *db)
{
	for (unsigned i = 0; i < db->n; i++) {
		struct shard *s = &db->shards[i];
		pthread_mutex_init(&s->job_lock, NULL);
		pthread_cond_init(&s->job_ready, NULL);
		pthread_cond_init(&s->job_done, NULL);
	}
	if (db->n < 2)
		return LOGDB_OK; /* nothing to overlap */
	for (unsigned i = 0; i < db->n; i++) {
		struct shard *s = &db->shards[i];
		if (pthread_create(&s->thread, NULL, writer_main, s) != 0)
			return logdb_fail(db, LOGDB_ERR_NOMEM,
			                  "cannot start a shard writer thread");
		s->thread_started = true;
	}
	return LOGDB_OK;
}

void logdb_writers_stop(struct logdb *db)
{
	for (unsigned i = 0; i < db->n; i++) {
		struct shard *s = &db->shards[i];
		if (s->thread_started) {
			pthread_mutex_lock(&s->job_lock);
			s->stop = true;
			pthread_cond_signal(&s->job_ready);
			pthread_mutex_unlock(&s->job_lock);
			pthread_join(s->thread, NULL);
			s->thread_started = false;
		}
		pthread_mutex_destroy(&s->job_lock);
		pthread_cond_destroy(&s->job_ready);
		pthread_cond_destroy(&s->job_done);
	}
}

/* Hand shard si's part of a save to its writer thread; false if it is busy. */
static bool post(struct logdb_worker *w, unsigned si, const struct logdb_update *updates, size_t n,
                 bool sync)
{
	struct shard *s = &w->db->shards[si];
	if (!s->thread_started)
		return false;
	pthread_mutex_lock(&s->job_lock);
	bool free_slot = !s->job.posted;
	if (free_slot) {
		s->job = (struct shard_job){
		        .w = w, .updates = updates, .n = n, .sync = sync, .posted = true};
		pthread_cond_signal(&s->job_ready);
	}
	pthread_mutex_unlock(&s->job_lock);
	return free_slot;
}

/* Wait for a posted job and release the slot; its rc. */
static int collect(struct logdb *db, unsigned si)
{
	struct shard *s = &db->shards[si];
	pthread_mutex_lock(&s->job_lock);
	while (!s->job.done)
		pthread_cond_wait(&s->job_done, &s->job_lock);
	int rc = s->job.rc;
	s->job.posted = false;
	s->job.done = false;
	pthread_mutex_unlock(&s->job_lock);
	return rc;
}

/*
 * Each touched shard gets one batch and one fsync.  With several shards, all
 * but the last go to their writer threads and the caller writes the last
 * itself, so the syncs (and the memtable work) overlap; a shard whose thread
 * is busy with another worker's save is written inline instead.  Unsynced
 * saves are cheap and written inline.
 */
int logdb_save(struct logdb_worker *w, const struct logdb_update *updates, size_t n, bool sync)
{
	struct logdb *db = w->db;
	uint64_t touched = 0, posted = 0;
	int rc;

	if (n > w->shard_of_cap) {
		size_t cap = w->shard_of_cap ? w->shard_of_cap : 64;
		while (cap < n)
			cap *= 2;
		unsigned *p = logdb_realloc(db, w->shard_of, cap * sizeof(*p));
		if (p == NULL)
			return logdb_fail(db, LOGDB_ERR_NOMEM, "out of memory for a save");
		w->shard_of = p;
		w->shard_of_cap = cap;
	}
	for (size_t i = 0; i < n; i++) {
		if ((rc = validate(db, &updates[i])))
			return rc;
		w->shard_of[i] = logdb_shard_of(db, updates[i].group_id);
		touched |= 1ull << w->shard_of[i];
	}
	rc = LOGDB_OK;
	while (touched) {
		unsigned si = (unsigned)__builtin_ctzll(touched);
		touched &= touched - 1;
		if (touched && sync && post(w, si, updates, n, sync)) {
			posted |= 1ull << si;
			continue;
		}
		int r = save_shard(w, si, updates, n, sync);
		if (rc == LOGDB_OK)
			rc = r;
	}
	while (posted) {
		unsigned si = (unsigned)__builtin_ctzll(posted);
		posted &= posted - 1;
		int r = collect(db, si);
		if (rc == LOGDB_OK)
			rc = r;
	}
	return rc;
}

/* A one-off batch for the rarer writes below (not on the hot path). */
struct oneoff {
	rocksdb_writebatch_t *b;
	struct logdb_buf v;
};

static void oneoff_init(struct logdb *db, struct oneoff *o)
{
	o->b = rocksdb_writebatch_create();
	memset(&o->v, 0, sizeof(o->v));
	o->v.alloc = db->alloc;
}

static void oneoff_free(struct oneoff *o)
{
	rocksdb_writebatch_destroy(o->b);
	logdb_buf_free(&o->v);
}

/* Write o's batch to group g's shard (synced) unless rc already failed; free o. */
static int oneoff_write(struct logdb *db, uint64_t g, struct oneoff *o, int rc, const char *what)
{
	struct shard *s = logdb_shard(db, g);
	if (rc == LOGDB_OK) {
		pthread_mutex_lock(&s->lock);
		rc = write_batch(db, s, o->b, what);
		pthread_mutex_unlock(&s->lock);
	}
	oneoff_free(o);
	return rc;
}

int logdb_save_bootstrap(struct logdb *db, uint64_t g, raft_id n, const struct logdb_bootstrap *bs)
{
	struct oneoff o;
	oneoff_init(db, &o);
	int rc = put_bootstrap(db, o.b, &o.v, g, n, bs);
	return oneoff_write(db, g, &o, rc, "writing bootstrap info");
}

int logdb_remove_entries_to(struct logdb *db, uint64_t g, raft_id n, raft_index index)
{
	struct shard *s = logdb_shard(db, g);
	struct member *m;
	struct oneoff o;
	oneoff_init(db, &o);
	pthread_mutex_lock(&s->lock);
	int rc = logdb_member(db, s, g, n, &m);
	if (rc)
		goto out;
	if (index < m->first)
		goto out; /* already removed */
	if (index > m->last) {
		rc = logdb_fail(db, LOGDB_ERR_UNAVAILABLE,
		                "group %" PRIu64 " node %" PRIu64
		                ": cannot remove entries to %" PRIu64 " past last index %" PRIu64,
		                g, n, index, m->last);
		goto out;
	}
	if ((rc = drop_entries_to(db, s, o.b, g, n, index, m->last)))
		goto out;
	if ((rc = put_range(db, o.b, &o.v, g, n, index + 1, m->last)))
		goto out;
	if ((rc = write_batch(db, s, o.b, "removing entries"))) {
		m->loaded = false;
		goto out;
	}
	m->first = index + 1;
	m->stored = true;
out:
	pthread_mutex_unlock(&s->lock);
	oneoff_free(&o);
	return rc;
}

/* Record snap in one synced batch, first deleting the older records if replace. */
static int save_snapshot(struct logdb *db, uint64_t g, raft_id n, const struct logdb_snapshot *snap,
                         bool replace)
{
	struct oneoff o;
	if (snap->meta.index == 0 || snap->meta.index == UINT64_MAX)
		return logdb_fail(db, LOGDB_ERR_INVALID, "snapshot index out of range");
	oneoff_init(db, &o);
	if (replace)
		delete_indexes(o.b, LOGDB_KIND_SNAPSHOT, g, n, 0, snap->meta.index);
	int rc = put_snapshot(db, o.b, &o.v, g, n, snap);
	return oneoff_write(db, g, &o, rc, "writing a snapshot record");
}

int logdb_save_snapshot(struct logdb *db, uint64_t g, raft_id n, const struct logdb_snapshot *snap)
{
	return save_snapshot(db, g, n, snap, false);
}

int logdb_replace_snapshot(struct logdb *db, uint64_t g, raft_id n,
                           const struct logdb_snapshot *snap)
{
	return save_snapshot(db, g, n, snap, true);
}

int logdb_save_recovery(struct logdb *db, uint64_t g, raft_id n, raft_index index)
{
	uint8_t key[LOGDB_KEY_LEN];
	struct oneoff o;
	if (index == 0)
		return logdb_fail(db, LOGDB_ERR_INVALID, "recovery marker at index 0");
	oneoff_init(db, &o);
	logdb_key(key, LOGDB_KIND_RECOVERY, g, n);
	int rc = logdb_encode_recovery(&o.v, key, sizeof(key), index);
	if (rc)
		rc = logdb_fail(db, rc, "out of memory encoding a recovery marker");
	else
		put(o.b, key, sizeof(key), &o.v);
	return oneoff_write(db, g, &o, rc, "writing a recovery marker");
}

int logdb_delete_snapshot(struct logdb *db, uint64_t g, raft_id n, raft_index index)
{
	uint8_t key[LOGDB_INDEX_KEY_LEN];
	struct oneoff o;
	oneoff_init(db, &o);
	logdb_index_key(key, LOGDB_KIND_SNAPSHOT, g, n, index);
	rocksdb_writebatch_delete(o.b, (const char *)key, sizeof(key));
	return oneoff_write(db, g, &o, LOGDB_OK, "deleting a snapshot record");
}

/* Add to b the deletion of every key of (g, n). */
static void delete_all(rocksdb_writebatch_t *b, uint64_t g, uint64_t n)
{
	static const unsigned point[] = {LOGDB_KIND_STATE, LOGDB_KIND_RANGE, LOGDB_KIND_NODE,
	                                 LOGDB_KIND_BOOTSTRAP, LOGDB_KIND_RECOVERY};
	static const unsigned ranged[] = {LOGDB_KIND_ENTRY, LOGDB_KIND_SNAPSHOT};
	uint8_t k1[LOGDB_INDEX_KEY_LEN + 1], k2[LOGDB_INDEX_KEY_LEN + 1];
	for (size_t i = 0; i < sizeof(point) / sizeof(point[0]); i++) {
		logdb_key(k1, point[i], g, n);
		rocksdb_writebatch_delete(b, (const char *)k1, LOGDB_KEY_LEN);
	}
	for (size_t i = 0; i < sizeof(ranged) / sizeof(ranged[0]); i++) {
		logdb_key(k1, ranged[i], g, n);
		logdb_range_end(k2, ranged[i], g, n);
		rocksdb_writebatch_delete_range(b, (const char *)k1, LOGDB_KEY_LEN,
		                                (const char *)k2, sizeof(k2));
	}
}

static void compact_all(struct logdb *db, uint64_t g, uint64_t n)
{
	uint8_t k1[LOGDB_KEY_LEN], k2[LOGDB_INDEX_KEY_LEN + 1];
	unsigned si = logdb_shard_of(db, g);
	logdb_key(k1, LOGDB_KIND_ENTRY, g, n);
	logdb_range_end(k2, LOGDB_KIND_ENTRY, g, n);
	logdb_queue_compaction(db, si, k1, sizeof(k1), k2, sizeof(k2));
}

int logdb_remove_node_data(struct logdb *db, uint64_t g, raft_id n)
{
	struct shard *s = logdb_shard(db, g);
	struct member *m;
	struct oneoff o;
	oneoff_init(db, &o);
	delete_all(o.b, g, n);
	/* No load first: a member whose stored state is corrupt can still be removed. */
	pthread_mutex_lock(&s->lock);
	int rc = write_batch(db, s, o.b, "removing a member's data");
	if (rc == LOGDB_OK)
		rc = logdb_member_slot(db, s, g, n, &m);
	if (rc == LOGDB_OK) {
		m->loaded = true;
		m->first = 1;
		m->last = 0;
		m->stored = m->hs_stored = false;
		memset(&m->hs, 0, sizeof(m->hs));
	} else {
		logdb_member_forget(s, g, n);
	}
	pthread_mutex_unlock(&s->lock);
	oneoff_free(&o);
	if (rc == LOGDB_OK)
		compact_all(db, g, n);
	return rc;
}

int logdb_import_snapshot(struct logdb *db, uint64_t g, raft_id n,
                          const struct logdb_snapshot *snap)
{
	struct shard *s = logdb_shard(db, g);
	struct member *m;
	struct oneoff o;
	struct logdb_bootstrap bs;
	struct raft_hard_state hs = {
	        .term = snap->meta.term, .vote = 0, .commit = snap->meta.index};
	uint64_t idx = snap->meta.index;
	if (idx == 0 || idx == UINT64_MAX)
		return logdb_fail(db, LOGDB_ERR_INVALID, "snapshot index out of range");

	/* The member's address book (and state machine type) stays. */
	int rc = logdb_get_bootstrap(db, g, n, &bs);
	if (rc == LOGDB_ERR_NOT_FOUND)
		memset(&bs, 0, sizeof(bs));
	else if (rc)
		return rc;
	bs.join = false;
	bs.membership = snap->meta.membership;
	oneoff_init(db, &o);
	delete_all(o.b, g, n);
	rc = put_bootstrap(db, o.b, &o.v, g, n, &bs);
	if (rc == LOGDB_OK)
		rc = put_snapshot(db, o.b, &o.v, g, n, snap);
	if (rc == LOGDB_OK)
		rc = put_state(db, o.b, &o.v, g, n, &hs);
	if (rc == LOGDB_OK)
		rc = put_range(db, o.b, &o.v, g, n, idx + 1, idx);
	if (rc)
		goto out;
	pthread_mutex_lock(&s->lock);
	rc = write_batch(db, s, o.b, "importing a snapshot");
	if (rc == LOGDB_OK)
		rc = logdb_member_slot(db, s, g, n, &m);
	if (rc == LOGDB_OK) {
		m->loaded = true;
		m->first = idx + 1;
		m->last = idx;
		m->hs = hs;
		m->stored = m->hs_stored = true;
	} else {
		logdb_member_forget(s, g, n);
	}
	pthread_mutex_unlock(&s->lock);
	if (rc == LOGDB_OK)
		compact_all(db, g, n);
out:
	oneoff_free(&o);
	return rc;
}
