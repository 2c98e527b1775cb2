/*
 * addrbook.c - the addresses of a group's members.  The stored bootstrap
 * record doubles as the address book: it is saved again whenever a
 * membership change brings a new address, and every known address is handed
 * to the network (add_peer) when the group starts or learns it (from a
 * membership change, or from the embedder: engine_learn_address).  A member's
 * removal takes its address out of the book (saved again), and once no group
 * here has a node any more, as a member or in its book, the network forgets
 * it (remove_peer); so does stopping a group here.  A removal this member
 * learns from a snapshot (its membership's removed ids) prunes the book too,
 * at the install and at each start.  In memory
 * it is kept compact (struct addrbook): a group has a few members, where the
 * public record has room for RAFT_MAX_MEMBERS of them.
 */
#include <string.h>

#include "engine/engine_int.h"

static const struct raft_membership no_voters;

/* Add id to m's voters. */
static void member_add(struct raft_membership *m, raft_id id)
{
	for (uint32_t i = 0; i < m->n_voters; i++)
		if (m->voters[i] == id)
			return;
	if (m->n_voters < RAFT_MAX_MEMBERS)
		m->voters[m->n_voters++] = id;
}

int eng_book_init(struct engine *e, struct group *g, const struct engine_bootstrap *bs, bool fresh)
{
	struct addrbook *b = &g->book;

	if (bs->n_members > RAFT_MAX_MEMBERS)
		return eng_err(e, ENGINE_ERR_INVALID, "group %llu: too many members",
		               (unsigned long long)g->id);
	b->join = bs->join;
	b->m = bs->n_members > 0 ? e->a->malloc(bs->n_members * sizeof(*b->m)) : NULL;
	b->initial = bs->join ? NULL : e->a->malloc(sizeof(*b->initial));
	if ((bs->n_members > 0 && b->m == NULL) || (!bs->join && b->initial == NULL)) {
		eng_book_free(e, g);
		return eng_err(e, ENGINE_ERR_NOMEM, "group %llu: out of memory",
		               (unsigned long long)g->id);
	}
	b->n = bs->n_members;
	if (b->n > 0)
		memcpy(b->m, bs->members, b->n * sizeof(*b->m));
	for (uint32_t i = 0; i < b->n; i++)
		b->m[i].addr[ENGINE_ADDR_MAX - 1] = '\0';
	if (b->initial != NULL && fresh) {
		/* A new group: its members are its voters. */
		memset(b->initial, 0, sizeof(*b->initial));
		for (uint32_t i = 0; i < b->n; i++)
			member_add(b->initial, b->m[i].node_id);
		if (b->initial->n_voters == 0)
			return eng_err(e, ENGINE_ERR_INVALID, "group %llu: no members",
			               (unsigned long long)g->id);
	} else if (b->initial != NULL) {
		*b->initial = bs->membership;
	}
	return ENGINE_OK;
}

void eng_book_free(struct engine *e, struct group *g)
{
	e->a->free(g->book.m);
	e->a->free(g->book.initial);
	memset(&g->book, 0, sizeof(g->book));
}

const struct raft_membership *eng_book_initial(const struct group *g)
{
	return g->book.initial != NULL ? g->book.initial : &no_voters;
}

int eng_book_save(struct engine *e, struct group *g)
{
	struct engine_bootstrap *bs = e->a->malloc(sizeof(*bs));
	int rc;

	if (bs == NULL)
		return ENGINE_ERR_NOMEM;
	memset(bs, 0, sizeof(*bs));
	bs->join = g->book.join;
	bs->n_members = g->book.n;
	if (g->book.n > 0)
		memcpy(bs->members, g->book.m, g->book.n * sizeof(*g->book.m));
	bs->membership = *eng_book_initial(g);
	rc = e->st.save_bootstrap(e->st.ctx, g->id, bs);
	e->a->free(bs);
	return rc;
}

int eng_learn_address(struct engine *e, struct group *g, raft_id id, const char *addr, size_t len)
{
	struct addrbook *b = &g->book;
	struct engine_member *m = NULL;
	int rc;

	if (len == 0 || len >= ENGINE_ADDR_MAX || id == 0)
		return ENGINE_OK;
	for (uint32_t i = 0; i < b->n; i++)
		if (b->m[i].node_id == id)
			m = &b->m[i];
	if (m != NULL && strlen(m->addr) == len && memcmp(m->addr, addr, len) == 0)
		return ENGINE_OK;
	if (m == NULL) {
		struct engine_member *nm;

		if (b->n == RAFT_MAX_MEMBERS)
			return eng_err(e, ENGINE_ERR_INVALID, "group %llu: address book full",
			               (unsigned long long)g->id);
		nm = e->a->realloc(b->m, (b->n + 1) * sizeof(*b->m));
		if (nm == NULL)
			return eng_err(e, ENGINE_ERR_NOMEM, "group %llu: out of memory",
			               (unsigned long long)g->id);
		b->m = nm;
		m = &b->m[b->n++];
		m->node_id = id;
	}
	memcpy(m->addr, addr, len);
	m->addr[len] = '\0';
	rc = eng_book_save(e, g);
	if (rc != ENGINE_OK)
		return eng_fail_engine(e, rc, "group %llu: saving the address of node %llu",
		                       (unsigned long long)g->id, (unsigned long long)id);
	if (id != e->cfg.node_id && e->net.add_peer != NULL)
		e->net.add_peer(e->net.ctx, id, m->addr);
	return ENGINE_OK;
}

int engine_learn_address(struct engine *e, uint64_t group_id, raft_id node_id, const char *addr)
{
	struct group *g = eng_group(e, group_id);

	if (g == NULL)
		return eng_err(e, ENGINE_ERR_NO_GROUP, "group %llu is not here",
		               (unsigned long long)group_id);
	return eng_learn_address(e, g, node_id, addr, strlen(addr));
}

void eng_announce_addresses(struct engine *e, struct group *g)
{
	if (e->net.add_peer == NULL)
		return;
	for (uint32_t i = 0; i < g->book.n; i++)
		if (g->book.m[i].node_id != e->cfg.node_id)
			e->net.add_peer(e->net.ctx, g->book.m[i].node_id, g->book.m[i].addr);
}

bool eng_knows_address(const struct group *g, raft_id id)
{
	for (uint32_t i = 0; i < g->book.n; i++)
		if (g->book.m[i].node_id == id)
			return true;
	return false;
}

/* Whether a group here still has node id, as a member or in its address book. */
static bool peer_needed(const struct engine *e, raft_id id)
{
	for (size_t i = 0; i < e->n_groups; i++) {
		const struct group *g = e->groups[i];

		if (eng_knows_address(g, id) || raft_membership_contains(raft_membership(g->r), id))
			return true;
	}
	return false;
}

void eng_drop_peer_if_unused(struct engine *e, raft_id id)
{
	if (id != e->cfg.node_id && e->net.remove_peer != NULL && !peer_needed(e, id))
		e->net.remove_peer(e->net.ctx, id);
}

int eng_forget_address(struct engine *e, struct group *g, raft_id id)
{
	struct addrbook *b = &g->book;
	int rc;

	for (uint32_t i = 0; i < b->n; i++) {
		if (b->m[i].node_id != id)
			continue;
		memmove(&b->m[i], &b->m[i + 1], (b->n - i - 1) * sizeof(*b->m));
		b->n--;
		rc = eng_book_save(e, g);
		if (rc != ENGINE_OK)
			return eng_fail_engine(
			        e, rc, "group %llu: saving the address book without node %llu",
			        (unsigned long long)g->id, (unsigned long long)id);
		break;
	}
	eng_drop_peer_if_unused(e, id);
	return ENGINE_OK;
}

void eng_book_drop_removed(struct engine *e, struct group *g, const struct raft_membership *m)
{
	for (uint32_t i = 0; i < m->n_removed; i++)
		if (eng_knows_address(g, m->removed[i]))
			eng_forget_address(e, g, m->removed[i]);
}
