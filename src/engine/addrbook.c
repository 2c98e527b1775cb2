/*
 * addrbook.c - the addresses of a group's members.  The stored bootstrap
 * record doubles as the address book: it is saved again whenever a
 * membership change brings a new address, and every known address is handed
 * to the network (add_peer) when the group starts or learns it.
 */
#include <string.h>

#include "engine/engine_int.h"

void eng_member_add(struct raft_membership *m, raft_id id)
{
	for (uint32_t i = 0; i < m->n_voters; i++)
		if (m->voters[i] == id)
			return;
	if (m->n_voters < RAFT_MAX_MEMBERS)
		m->voters[m->n_voters++] = id;
}

int eng_learn_address(struct engine *e, struct group *g, raft_id id, const char *addr, size_t len)
{
	struct engine_member *m = NULL;
	int rc;

	if (len == 0 || len >= ENGINE_ADDR_MAX || id == 0)
		return ENGINE_OK;
	for (uint32_t i = 0; i < g->bs.n_members; i++)
		if (g->bs.members[i].node_id == id)
			m = &g->bs.members[i];
	if (m != NULL && strlen(m->addr) == len && memcmp(m->addr, addr, len) == 0)
		return ENGINE_OK;
	if (m == NULL) {
		if (g->bs.n_members == RAFT_MAX_MEMBERS)
			return eng_err(e, ENGINE_ERR_INVALID, "group %llu: address book full",
			               (unsigned long long)g->id);
		m = &g->bs.members[g->bs.n_members++];
		m->node_id = id;
	}
	memcpy(m->addr, addr, len);
	m->addr[len] = '\0';
	rc = e->st.save_bootstrap(e->st.ctx, g->id, &g->bs);
	if (rc != ENGINE_OK)
		return eng_fail_engine(e, rc, "group %llu: saving the address of node %llu",
		                       (unsigned long long)g->id, (unsigned long long)id);
	if (id != e->cfg.node_id && e->net.add_peer != NULL)
		e->net.add_peer(e->net.ctx, id, m->addr);
	return ENGINE_OK;
}

void eng_announce_addresses(struct engine *e, struct group *g)
{
	if (e->net.add_peer == NULL)
		return;
	for (uint32_t i = 0; i < g->bs.n_members; i++)
		if (g->bs.members[i].node_id != e->cfg.node_id)
			e->net.add_peer(e->net.ctx, g->bs.members[i].node_id,
			                g->bs.members[i].addr);
}

bool eng_knows_address(const struct group *g, raft_id id)
{
	for (uint32_t i = 0; i < g->bs.n_members; i++)
		if (g->bs.members[i].node_id == id)
			return true;
	return false;
}
