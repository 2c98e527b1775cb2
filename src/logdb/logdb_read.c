/*
 * logdb_read.c - reading the LogDB: entries, restart state, bootstrap info,
 * node list and snapshot records.  Every value read is checksummed and
 * decoded; a failure is LOGDB_ERR_CORRUPT naming the group, node and index,
 * and a hole in a range of entries that should be there is reported the same
 * way, never returned as a short log.
 */
#include <inttypes.h>
#include <string.h>

#include "logdb/logdb_int.h"

/* An iterator over [lo, hi) of one shard; readoptions are per iterator (bounds). */
struct iter {
	rocksdb_readoptions_t *ro;
	rocksdb_iterator_t *it;
};

static void iter_open(struct iter *i, struct shard *s, const uint8_t *lo, size_t lo_len,
                      const uint8_t *hi, size_t hi_len)
{
	i->ro = rocksdb_readoptions_create();
	rocksdb_readoptions_set_verify_checksums(i->ro, 1);
	rocksdb_readoptions_set_iterate_lower_bound(i->ro, (const char *)lo, lo_len);
	rocksdb_readoptions_set_iterate_upper_bound(i->ro, (const char *)hi, hi_len);
	i->it = rocksdb_create_iterator(s->db, i->ro);
}

static void iter_close(struct iter *i)
{
	rocksdb_iter_destroy(i->it);
	rocksdb_readoptions_destroy(i->ro);
}

/* The iterator's status after it stopped being valid. */
static int iter_status(struct logdb *db, struct iter *i, const char *what)
{
	char *err = NULL;
	rocksdb_iter_get_error(i->it, &err);
	if (err)
		return logdb_io_fail(db, err, what);
	return LOGDB_OK;
}

static int add_entry(struct logdb *db, struct logdb_entries *out, const struct raft_entry *e)
{
	if (out->n == out->cap) {
		uint32_t cap = out->cap ? out->cap * 2 : 64;
		struct raft_entry *p = logdb_realloc(db, out->ents, cap * sizeof(*p));
		if (p == NULL)
			return LOGDB_ERR_NOMEM;
		out->ents = p;
		out->cap = cap;
	}
	if (out->buf_len + e->len > out->buf_cap) {
		size_t cap = out->buf_cap ? out->buf_cap : 4096;
		while (cap < out->buf_len + e->len)
			cap *= 2;
		uint8_t *p = logdb_realloc(db, out->buf, cap);
		if (p == NULL)
			return LOGDB_ERR_NOMEM;
		out->buf = p;
		out->buf_cap = cap;
	}
	if (e->len)
		memcpy(out->buf + out->buf_len, e->data, e->len);
	out->buf_len += e->len;
	out->ents[out->n] = *e;
	out->ents[out->n].data = NULL; /* set once buf stops moving */
	out->n++;
	out->bytes += e->len;
	return LOGDB_OK;
}

/* The current first index of a member (to tell compaction from corruption). */
static uint64_t first_index(struct logdb *db, struct shard *s, uint64_t g, uint64_t n)
{
	struct member *m;
	uint64_t first = 0;
	pthread_mutex_lock(&s->lock);
	if (logdb_member(db, s, g, n, &m) == LOGDB_OK)
		first = m->first;
	pthread_mutex_unlock(&s->lock);
	return first;
}

int logdb_iterate_entries(struct logdb *db, uint64_t g, raft_id n, raft_index low, raft_index high,
                          uint64_t max_bytes, struct logdb_entries *out)
{
	struct shard *s = logdb_shard(db, g);
	struct member *m;
	uint64_t first, last;
	int rc;

	out->n = 0;
	out->buf_len = 0;
	out->bytes = 0;
	if (low > high || low == 0)
		return logdb_fail(db, LOGDB_ERR_INVALID,
		                  "bad entry range [%" PRIu64 ", %" PRIu64 ")", low, high);
	pthread_mutex_lock(&s->lock);
	rc = logdb_member(db, s, g, n, &m);
	first = rc ? 0 : m->first;
	last = rc ? 0 : m->last;
	pthread_mutex_unlock(&s->lock);
	if (rc)
		return rc;
	if (low == high)
		return LOGDB_OK;
	if (low < first)
		return logdb_fail(db, LOGDB_ERR_COMPACTED,
		                  "group %" PRIu64 " node %" PRIu64 ": entry %" PRIu64
		                  " is below first index %" PRIu64,
		                  g, n, low, first);
	if (high > last + 1)
		return logdb_fail(db, LOGDB_ERR_UNAVAILABLE,
		                  "group %" PRIu64 " node %" PRIu64 ": entries up to %" PRIu64
		                  " asked, last index is %" PRIu64,
		                  g, n, high - 1, last);

	/*
	 * Runs from the one holding low (the greatest key <= low) up to the
	 * last that starts below high.  A run's entries are final once the
	 * next key is seen: entries at or above it are stale and dropped.
	 */
	uint8_t lo[LOGDB_INDEX_KEY_LEN], key[LOGDB_INDEX_KEY_LEN], hi[LOGDB_INDEX_KEY_LEN];
	logdb_index_key(lo, LOGDB_KIND_ENTRY, g, n, 0);
	logdb_index_key(key, LOGDB_KIND_ENTRY, g, n, low);
	logdb_index_key(hi, LOGDB_KIND_ENTRY, g, n, high);
	struct iter it;
	iter_open(&it, s, lo, sizeof(lo), hi, sizeof(hi));
	rocksdb_iter_seek_for_prev(it.it, (const char *)key, sizeof(key));
	uint64_t want = low; /* the next index to read */
	bool by_limit = false;
	for (; rocksdb_iter_valid(it.it); rocksdb_iter_next(it.it)) {
		size_t klen, vlen;
		const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it.it, &klen);
		const uint8_t *val = (const uint8_t *)rocksdb_iter_value(it.it, &vlen);
		struct logdb_run run;
		const char *why;
		unsigned kind;
		uint64_t kg, kn, start;
		if (logdb_key_parse(k, klen, &kind, &kg, &kn, &start) || kind != LOGDB_KIND_ENTRY ||
		    kg != g || kn != n || klen != LOGDB_INDEX_KEY_LEN)
			break; /* cannot happen inside the bounds; reported as a hole */
		while (out->n > 0 && out->ents[out->n - 1].index >= start) {
			out->n--; /* stale: written over by this run */
			out->buf_len -= out->ents[out->n].len;
			out->bytes -= out->ents[out->n].len;
			want = start;
		}
		/* The entry at want that hit the byte limit was stale if this run replaces it. */
		if (start <= want)
			by_limit = false;
		if (by_limit || start > want)
			break; /* done, or a hole at want (reported below) */
		/* An entry past the byte limit is not read (its run checked and
		 * decoded: up to max_entry_size), only its length looked at; the
		 * next read starts with it and checks it. */
		uint32_t next_len;
		if (out->n > 0 && logdb_run_peek_len(val, vlen, start, want, &next_len) &&
		    out->bytes + next_len > max_bytes) {
			by_limit = true;
			break;
		}
		if ((rc = logdb_run_open(k, klen, val, vlen, &run, &why))) {
			rc = logdb_fail(db, rc,
			                "corrupt entries: group %" PRIu64 " node %" PRIu64
			                " run at index %" PRIu64 ": %s",
			                g, n, start, why);
			goto out;
		}
		for (uint32_t i = 0; i < run.n && want < high; i++) {
			struct raft_entry e;
			logdb_run_next(&run, &e);
			if (e.index < want)
				continue;
			if (out->n > 0 && out->bytes + e.len > max_bytes) {
				by_limit = true;
				break;
			}
			if ((rc = add_entry(db, out, &e))) {
				rc = logdb_fail(db, rc, "out of memory reading entries");
				goto out;
			}
			want++;
		}
	}
	if ((rc = iter_status(db, &it, "reading entries")))
		goto out;
	if (want < high && !by_limit) {
		/* the range was checked against [first, last]: a missing entry is damage */
		if (want < first_index(db, s, g, n))
			rc = logdb_fail(db, LOGDB_ERR_COMPACTED,
			                "group %" PRIu64 " node %" PRIu64 ": entry %" PRIu64
			                " was compacted while reading",
			                g, n, want);
		else
			rc = logdb_fail(db, LOGDB_ERR_CORRUPT,
			                "corrupt log: group %" PRIu64 " node %" PRIu64
			                " index %" PRIu64 ": entry missing",
			                g, n, want);
		goto out;
	}
	size_t off = 0;
	for (uint32_t i = 0; i < out->n; i++) {
		out->ents[i].data = out->ents[i].len ? out->buf + off : NULL;
		off += out->ents[i].len;
	}
out:
	iter_close(&it);
	if (rc) {
		out->n = 0;
		out->buf_len = 0;
		out->bytes = 0;
	}
	return rc;
}

void logdb_entries_free(struct logdb *db, struct logdb_entries *out)
{
	logdb_free(db, out->ents);
	logdb_free(db, out->buf);
	memset(out, 0, sizeof(*out));
}

int logdb_read_state(struct logdb *db, uint64_t g, raft_id n, struct logdb_raft_state *out)
{
	struct shard *s = logdb_shard(db, g);
	struct member *m;
	pthread_mutex_lock(&s->lock);
	int rc = logdb_member(db, s, g, n, &m);
	if (rc == LOGDB_OK && !m->stored)
		rc = logdb_fail(db, LOGDB_ERR_NOT_FOUND,
		                "no raft state for group %" PRIu64 " node %" PRIu64, g, n);
	if (rc == LOGDB_OK) {
		out->hard_state = m->hs;
		out->first_index = m->first;
		out->entry_count = m->last + 1 - m->first;
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

int logdb_get_bootstrap(struct logdb *db, uint64_t g, raft_id n, struct logdb_bootstrap *bs)
{
	struct shard *s = logdb_shard(db, g);
	uint8_t key[LOGDB_KEY_LEN];
	char *err = NULL;
	size_t vlen;
	const char *why;
	logdb_key(key, LOGDB_KIND_BOOTSTRAP, g, n);
	char *v = rocksdb_get(s->db, db->ropts, (const char *)key, sizeof(key), &vlen, &err);
	if (err)
		return logdb_io_fail(db, err, "reading bootstrap info");
	if (v == NULL)
		return logdb_fail(db, LOGDB_ERR_NOT_FOUND,
		                  "no bootstrap info for group %" PRIu64 " node %" PRIu64, g, n);
	int rc = logdb_decode_bootstrap(key, sizeof(key), (uint8_t *)v, vlen, bs, &why);
	rocksdb_free(v);
	if (rc)
		return logdb_fail(db, rc,
		                  "corrupt bootstrap info: group %" PRIu64 " node %" PRIu64 ": %s",
		                  g, n, why);
	return LOGDB_OK;
}

int logdb_get_recovery(struct logdb *db, uint64_t g, raft_id n, raft_index *index)
{
	struct shard *s = logdb_shard(db, g);
	uint8_t key[LOGDB_KEY_LEN];
	char *err = NULL;
	size_t vlen;
	const char *why;
	*index = 0;
	logdb_key(key, LOGDB_KIND_RECOVERY, g, n);
	char *v = rocksdb_get(s->db, db->ropts, (const char *)key, sizeof(key), &vlen, &err);
	if (err)
		return logdb_io_fail(db, err, "reading a recovery marker");
	if (v == NULL)
		return LOGDB_OK;
	int rc = logdb_decode_recovery(key, sizeof(key), (uint8_t *)v, vlen, index, &why);
	rocksdb_free(v);
	if (rc)
		return logdb_fail(db, rc,
		                  "corrupt recovery marker: group %" PRIu64 " node %" PRIu64 ": %s",
		                  g, n, why);
	return LOGDB_OK;
}

int logdb_list_nodes(struct logdb *db, struct logdb_node_info **out, size_t *count)
{
	static const uint8_t lo[4] = {LOGDB_KIND_NODE >> 8, LOGDB_KIND_NODE & 0xff, 0, 0};
	static const uint8_t hi[4] = {LOGDB_KIND_NODE >> 8, LOGDB_KIND_NODE & 0xff, 0, 1};
	struct logdb_node_info *arr = NULL;
	size_t n = 0, cap = 0;
	int rc = LOGDB_OK;

	for (unsigned si = 0; si < db->n && rc == LOGDB_OK; si++) {
		struct iter it;
		iter_open(&it, &db->shards[si], lo, sizeof(lo), hi, sizeof(hi));
		for (rocksdb_iter_seek(it.it, (const char *)lo, sizeof(lo));
		     rocksdb_iter_valid(it.it); rocksdb_iter_next(it.it)) {
			size_t klen, vlen;
			const uint8_t *key = (const uint8_t *)rocksdb_iter_key(it.it, &klen);
			const uint8_t *val = (const uint8_t *)rocksdb_iter_value(it.it, &vlen);
			unsigned kind;
			uint64_t g, nd, idx;
			const char *why;
			if (logdb_key_parse(key, klen, &kind, &g, &nd, &idx) ||
			    klen != LOGDB_KEY_LEN) {
				rc = logdb_fail(db, LOGDB_ERR_CORRUPT, "malformed node info key");
				break;
			}
			if ((rc = logdb_decode_node(key, klen, val, vlen, &why))) {
				rc = logdb_fail(db, rc,
				                "corrupt node info: group %" PRIu64 " node %" PRIu64
				                ": %s",
				                g, nd, why);
				break;
			}
			if (n == cap) {
				size_t nc = cap ? cap * 2 : 16;
				void *p = logdb_realloc(db, arr, nc * sizeof(*arr));
				if (p == NULL) {
					rc = logdb_fail(db, LOGDB_ERR_NOMEM,
					                "out of memory listing nodes");
					break;
				}
				arr = p;
				cap = nc;
			}
			arr[n].group_id = g;
			arr[n].node_id = nd;
			n++;
		}
		if (rc == LOGDB_OK)
			rc = iter_status(db, &it, "listing nodes");
		iter_close(&it);
	}
	if (rc) {
		logdb_free(db, arr);
		return rc;
	}
	*out = arr;
	*count = n;
	return LOGDB_OK;
}

/* Decode the snapshot at the iterator, naming it on failure. */
static int snap_at(struct logdb *db, struct iter *it, uint64_t g, uint64_t n,
                   struct logdb_snapshot *snap)
{
	size_t klen, vlen;
	const uint8_t *key = (const uint8_t *)rocksdb_iter_key(it->it, &klen);
	const uint8_t *val = (const uint8_t *)rocksdb_iter_value(it->it, &vlen);
	const char *why;
	unsigned kind;
	uint64_t kg, kn, ki = 0;
	if (logdb_key_parse(key, klen, &kind, &kg, &kn, &ki))
		ki = 0;
	int rc = logdb_decode_snapshot(key, klen, val, vlen, snap, &why);
	if (rc)
		return logdb_fail(db, rc,
		                  "corrupt snapshot record: group %" PRIu64 " node %" PRIu64
		                  " index %" PRIu64 ": %s",
		                  g, n, ki, why);
	return LOGDB_OK;
}

int logdb_get_snapshot(struct logdb *db, uint64_t g, raft_id n, struct logdb_snapshot *snap)
{
	uint8_t lo[LOGDB_KEY_LEN], hi[LOGDB_INDEX_KEY_LEN + 1];
	struct iter it;
	logdb_key(lo, LOGDB_KIND_SNAPSHOT, g, n);
	logdb_range_end(hi, LOGDB_KIND_SNAPSHOT, g, n);
	iter_open(&it, logdb_shard(db, g), lo, sizeof(lo), hi, sizeof(hi));
	rocksdb_iter_seek_to_last(it.it);
	int rc;
	if (rocksdb_iter_valid(it.it))
		rc = snap_at(db, &it, g, n, snap);
	else if ((rc = iter_status(db, &it, "reading snapshot records")) == LOGDB_OK)
		rc = logdb_fail(db, LOGDB_ERR_NOT_FOUND,
		                "no snapshot for group %" PRIu64 " node %" PRIu64, g, n);
	iter_close(&it);
	return rc;
}

int logdb_list_snapshots(struct logdb *db, uint64_t g, raft_id n, struct logdb_snapshot **out,
                         size_t *count)
{
	uint8_t lo[LOGDB_KEY_LEN], hi[LOGDB_INDEX_KEY_LEN + 1];
	struct logdb_snapshot *arr = NULL;
	size_t k = 0, cap = 0;
	int rc = LOGDB_OK;
	struct iter it;
	logdb_key(lo, LOGDB_KIND_SNAPSHOT, g, n);
	logdb_range_end(hi, LOGDB_KIND_SNAPSHOT, g, n);
	iter_open(&it, logdb_shard(db, g), lo, sizeof(lo), hi, sizeof(hi));
	for (rocksdb_iter_seek(it.it, (const char *)lo, sizeof(lo)); rocksdb_iter_valid(it.it);
	     rocksdb_iter_next(it.it)) {
		if (k == cap) {
			size_t nc = cap ? cap * 2 : 4;
			void *p = logdb_realloc(db, arr, nc * sizeof(*arr));
			if (p == NULL) {
				rc = logdb_fail(db, LOGDB_ERR_NOMEM,
				                "out of memory listing snapshots");
				break;
			}
			arr = p;
			cap = nc;
		}
		if ((rc = snap_at(db, &it, g, n, &arr[k])))
			break;
		k++;
	}
	if (rc == LOGDB_OK)
		rc = iter_status(db, &it, "listing snapshot records");
	iter_close(&it);
	if (rc) {
		logdb_free(db, arr);
		return rc;
	}
	*out = arr;
	*count = k;
	return LOGDB_OK;
}

int logdb_run_holding(struct logdb *db, struct shard *s, uint64_t g, uint64_t n, uint64_t index,
                      uint64_t *start)
{
	uint8_t lo[LOGDB_INDEX_KEY_LEN], key[LOGDB_INDEX_KEY_LEN], hi[LOGDB_INDEX_KEY_LEN + 1];
	struct iter it;
	logdb_index_key(lo, LOGDB_KIND_ENTRY, g, n, 0);
	logdb_index_key(key, LOGDB_KIND_ENTRY, g, n, index);
	logdb_range_end(hi, LOGDB_KIND_ENTRY, g, n);
	iter_open(&it, s, lo, sizeof(lo), hi, sizeof(hi));
	rocksdb_iter_seek_for_prev(it.it, (const char *)key, sizeof(key));
	*start = 0;
	int rc = LOGDB_OK;
	if (rocksdb_iter_valid(it.it)) {
		size_t klen;
		const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it.it, &klen);
		unsigned kind;
		uint64_t kg, kn;
		if (logdb_key_parse(k, klen, &kind, &kg, &kn, start) || kind != LOGDB_KIND_ENTRY ||
		    klen != LOGDB_INDEX_KEY_LEN)
			rc = logdb_fail(db, LOGDB_ERR_CORRUPT,
			                "malformed entry key in group %" PRIu64 " node %" PRIu64, g,
			                n);
	} else {
		rc = iter_status(db, &it, "finding an entry run");
	}
	iter_close(&it);
	return rc;
}
