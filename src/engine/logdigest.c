/*
 * logdigest.c - a digest of a range of a group's stored log, so that members
 * can be compared (engine.h: struct engine_log_digest).  Raft's Log Matching
 * property says two logs that hold an entry with the same index and term are
 * identical up to it; nothing else checks that the bytes stored under an
 * index and term are the ones the leader sent.
 *
 * SHA-256 chained per entry: OpenSSL is linked already (the transport's
 * TLS) and computes it at hardware speed where the CPU has SHA extensions;
 * reading the entries from the LogDB costs more than hashing them.  The
 * chain's state is 32 bytes, so a range is digested in short steps between
 * the engine's rounds (the caller carries the state) and the result does not
 * depend on where the steps cut the range.
 */
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "engine/engine_int.h"

int engine_log_digest_start(struct engine *e, uint64_t group_id, raft_index lo, raft_index hi,
                            struct engine_log_digest *d)
{
	struct group *g = eng_group(e, group_id);
	bool bounded = lo != 0 || hi != 0;

	memset(d, 0, sizeof(*d));
	if (e->failed)
		return ENGINE_ERR_FAILED; /* (engine_errmsg: why) */
	if (g == NULL)
		return eng_err(e, ENGINE_ERR_NO_GROUP, "group %llu does not run on this node",
		               (unsigned long long)group_id);
	if (hi != 0 && lo > hi)
		return eng_err(e, ENGINE_ERR_INVALID, "the range %llu..%llu is empty",
		               (unsigned long long)lo, (unsigned long long)hi);
	d->first = lo > g->first ? lo : g->first;
	d->last = hi != 0 && hi < g->last ? hi : g->last;
	d->next = d->first;
	if (bounded && d->first > d->last) {
		char asked[64];

		if (hi != 0)
			snprintf(asked, sizeof(asked), "%llu..%llu", (unsigned long long)lo,
			         (unsigned long long)hi);
		else
			snprintf(asked, sizeof(asked), "from %llu on", (unsigned long long)lo);
		return eng_err(e, ENGINE_ERR_NOT_HELD,
		               "No entry %s of group %llu is held here: it holds %llu..%llu", asked,
		               (unsigned long long)group_id, (unsigned long long)g->first,
		               (unsigned long long)g->last);
	}
	return ENGINE_OK;
}

static void be(uint8_t *p, uint64_t v, int n)
{
	for (int i = n - 1; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

/* sum = SHA-256(sum || index || term || type || len || data). */
static bool chain(EVP_MD_CTX *ctx, const EVP_MD *md, uint8_t *sum, const struct raft_entry *en)
{
	uint8_t hdr[24];

	be(hdr, en->index, 8);
	be(hdr + 8, en->term, 8);
	be(hdr + 16, en->type, 4);
	be(hdr + 20, en->len, 4);
	return EVP_DigestInit_ex(ctx, md, NULL) == 1 && EVP_DigestUpdate(ctx, sum, 32) == 1 &&
	       EVP_DigestUpdate(ctx, hdr, sizeof(hdr)) == 1 &&
	       (en->len == 0 || EVP_DigestUpdate(ctx, en->data, en->len) == 1) &&
	       EVP_DigestFinal_ex(ctx, sum, NULL) == 1;
}

int engine_log_digest_step(struct engine *e, uint64_t group_id, struct engine_log_digest *d,
                           uint32_t max_entries, uint64_t max_bytes)
{
	struct group *g = eng_group(e, group_id);
	struct engine_arena arena;
	struct raft_entry *out = NULL;
	EVP_MD_CTX *ctx = NULL;
	EVP_MD *md = NULL;
	raft_index hi;
	uint32_t n = 0;
	int rc;

	if (e->failed)
		return ENGINE_ERR_FAILED;
	if (g == NULL)
		return eng_err(e, ENGINE_ERR_NO_GROUP, "group %llu does not run on this node",
		               (unsigned long long)group_id);
	if (d->next > d->last)
		return ENGINE_OK;
	if (d->next < g->first || d->last > g->last)
		return eng_err(
		        e, ENGINE_ERR_NOT_HELD,
		        "Entries %llu..%llu of group %llu are no longer held here (compacted "
		        "or replaced while they were digested): it holds %llu..%llu now",
		        (unsigned long long)d->next, (unsigned long long)d->last,
		        (unsigned long long)group_id, (unsigned long long)g->first,
		        (unsigned long long)g->last);
	/* Entries digested already may have been replaced since (a new leader's
	 * overwrite a cut-off leader's): the chain would be of a log that never
	 * was.  Log Matching: if the last entry digested still has its term, every
	 * entry up to it is the one digested. */
	if (d->next > d->first) {
		raft_term t;

		rc = eng_view_term(e, g, d->next - 1, &t);
		if (rc != ENGINE_OK)
			return rc == ENGINE_ERR_NOMEM
			               ? eng_err(e, rc, "group %llu: no memory to read a term",
			                         (unsigned long long)group_id)
			               : rc;
		if (t != d->last_term)
			return eng_err(
			        e, ENGINE_ERR_NOT_HELD,
			        "Entries %llu..%llu of group %llu were replaced while they were "
			        "digested (entry %llu has term %llu now, %llu before)",
			        (unsigned long long)d->first, (unsigned long long)d->next - 1,
			        (unsigned long long)group_id, (unsigned long long)d->next - 1,
			        (unsigned long long)t, (unsigned long long)d->last_term);
	}
	if (max_entries == 0)
		max_entries = 1;
	hi = d->last - d->next + 1 > max_entries ? d->next + max_entries : d->last + 1;
	dr_arena_init(&arena.ar, e->a->malloc, e->a->free, ARENA_BLOCK);
	out = e->a->malloc(sizeof(*out) * (size_t)(hi - d->next));
	ctx = EVP_MD_CTX_new();
	md = EVP_MD_fetch(NULL, "SHA256", NULL);
	if (out == NULL || ctx == NULL || md == NULL) {
		rc = eng_err(e, ENGINE_ERR_NOMEM, "group %llu: no memory to digest its log",
		             (unsigned long long)group_id);
		goto out_free;
	}
	/* A failed or short read stops the engine, as every read of the log does. */
	rc = e->st.entries(e->st.ctx, group_id, d->next, hi, max_bytes, out, &n, &arena);
	if (rc == ENGINE_ERR_NOMEM) {
		rc = eng_err(e, rc,
		             "group %llu: no memory to read entries %llu..%llu to digest them",
		             (unsigned long long)group_id, (unsigned long long)d->next,
		             (unsigned long long)hi - 1);
		goto out_free;
	}
	if (rc != ENGINE_OK) {
		rc = eng_fail_engine(e, rc, "group %llu: reading entries %llu..%llu to digest them",
		                     (unsigned long long)group_id, (unsigned long long)d->next,
		                     (unsigned long long)hi - 1);
		goto out_free;
	}
	for (uint32_t i = 0; i < n; i++) {
		if (out[i].index != d->next) {
			rc = eng_fail_engine(
			        e, ENGINE_ERR_STORAGE,
			        "group %llu: storage returned entry %llu where %llu was expected",
			        (unsigned long long)group_id, (unsigned long long)out[i].index,
			        (unsigned long long)d->next);
			goto out_free;
		}
		if (!chain(ctx, md, d->sum, &out[i])) {
			rc = eng_err(e, ENGINE_ERR_NOMEM, "group %llu: SHA-256 failed",
			             (unsigned long long)group_id);
			goto out_free;
		}
		d->last_term = out[i].term;
		d->entries++;
		d->next++;
	}
	rc = n > 0 ? ENGINE_OK
	           : eng_fail_engine(e, ENGINE_ERR_STORAGE,
	                             "group %llu: storage returned no entry at %llu",
	                             (unsigned long long)group_id, (unsigned long long)d->next);
out_free:
	EVP_MD_free(md);
	EVP_MD_CTX_free(ctx);
	e->a->free(out);
	dr_arena_free(&arena.ar);
	return rc;
}
