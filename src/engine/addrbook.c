/*
 * addrbook.c - the addresses of a group's members.  The stored bootstrap
 * record doubles as the address book: it is saved again whenever a
 * membership change brings a new address, and known addresses are handed
 * to the network (add_peer) when the group starts or learns one (from a
 * membership change, or from the embedder: engine_learn_address).  A member's
 * removal takes its address out of the book (saved again), and once no group
 * here has a node any more, as a member or in its book, the network forgets
 * it (remove_peer); so does stopping a group here.  A removal applied from
 * the log lets the network keep the node for an election timeout first
 * (eng_linger_peer): the new leader of a group of two that commits the old
 * leader's removal tells it so in a heartbeat after that apply (raft's
 * bye_to), which a network that forgot the node dropped, and the removed
 * node never learned that it was out.  A removal this member
 * learns from a snapshot (its membership's removed ids) prunes the book too,
 * at the install and at each start.  In memory
 * it is kept compact (struct addrbook): a group has a few members, where the
 * public record has room for RAFT_MAX_MEMBERS of them.
 *
 * The network dials a node at one address for all groups.  Each book entry
 * records when it was learned (a stamp ordered across this node's groups,
 * saved), and the network dials the address learned last, whichever group
 * learned it and in whatever order the groups start (e->peers holds what it
 * was told).  The book also records up to which log index it holds what the
 * log's membership changes taught (saved): a restart applies the changes
 * above the last snapshot again, and one at or below that index does not
 * teach its address again over a later correction (engine_learn_address).
 * An address another group's leader replicates comes with that leader's
 * stamp for it (engine_learn_address_at): older than the one dialed, say a
 * correction a user gave since, it changes nothing, in whatever group and
 * order it arrives; the engine's clock goes past every stamp it is given (a
 * stamp after 2200, ENGINE_STAMP_MAX, counts as absent: only a corrupt or
 * hostile one is).
 * So does the address a membership change brings: stamped by its proposer
 * when given (eng_cc_context), learned as of then wherever and however
 * late the change applies (eng_learn_cc_address).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "engine/engine_int.h"

static const struct raft_membership no_voters;

/* This server's wall clock, in microseconds (as address stamps). */
static uint64_t wall_now(const struct engine *e)
{
	struct timespec ts;

	if (e->wall_us != NULL)
		return e->wall_us();
	if (clock_gettime(CLOCK_REALTIME, &ts) == 0)
		return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
	return 0;
}

/*
 * A new learned stamp: wall-clock microseconds, above every stamp handed out
 * or read (those are at most ENGINE_STAMP_MAX: clock_past).  It never wraps
 * (an entry stamped UINT64_MAX made it 0: review35).  Every stamp this
 * node gives an address (an addition's, engine_add_member; a correction's,
 * engine_learn_address; its own in the leader's ENTRY_ADDRESSES,
 * engine_address_stamp) comes from here: so it is above every stamp this
 * node learned for that node, from a proposer whose clock runs ahead too,
 * and the correction wins wherever it goes.  (Not over a stamp this node had
 * not seen when it gave it: README, clock skew.)
 */
static uint64_t learn_stamp(struct engine *e)
{
	uint64_t now = wall_now(e);

	if (now > e->addr_clock)
		e->addr_clock = now;
	else if (e->addr_clock < UINT64_MAX)
		e->addr_clock++;
	return e->addr_clock;
}

/*
 * A stamp read: the clock goes past it (what this node stamps later is newer).
 * Every stamp read is at most ENGINE_STAMP_MAX (one above counts as absent:
 * engine_learn_address_at, eng_cc_address, eng_book_init, engine_address_seen),
 * so the clock stays far below UINT64_MAX and a later stamp is a larger one.
 */
static uint64_t clock_past(struct engine *e, uint64_t learned)
{
	if (learned > e->addr_clock)
		e->addr_clock = learned;
	return learned;
}

static struct eng_peer *find_peer(const struct engine *e, raft_id id)
{
	for (size_t i = 0; i < e->n_peers; i++)
		if (e->peers[i].id == id)
			return &e->peers[i];
	return NULL;
}

/* Node id is at addr, learned then: the network dials it unless it has a later one. */
static void peer_offer(struct engine *e, raft_id id, const char *addr, uint64_t learned)
{
	struct eng_peer *p;

	if (id == e->cfg.node_id)
		return;
	p = find_peer(e, id);
	if (p != NULL && learned < p->learned)
		return;
	if (p == NULL && eng_reserve(e, (void **)&e->peers, &e->cap_peers, e->n_peers + 1,
	                             sizeof(*e->peers)) == ENGINE_OK) {
		p = &e->peers[e->n_peers++];
		p->id = id;
		p->linger = 0;
	}
	if (p != NULL) { /* (out of memory: not kept, the network is told all the same) */
		p->learned = learned;
		snprintf(p->addr, sizeof(p->addr), "%s", addr);
	}
	if (e->net.add_peer != NULL)
		e->net.add_peer(e->net.ctx, id, addr);
}

const char *engine_peer_address(const struct engine *e, raft_id node_id)
{
	const struct eng_peer *p = find_peer(e, node_id);

	return p != NULL ? p->addr : NULL;
}

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
	bool resave = false;
	int rc;

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
	b->index = bs->addr_index;
	for (uint32_t i = 0; i < b->n; i++) {
		struct engine_member *m = &b->m[i];

		m->addr[ENGINE_ADDR_MAX - 1] = '\0';
		if (fresh) {
			m->learned = learn_stamp(e);
		} else if (m->learned > ENGINE_STAMP_MAX) {
			/* (a book saved by a build without the bound, or corrupt: saved
			 * without it below, so said once) */
			eng_say(e, ENGINE_LOG_WARNING,
			        "dragonraft group %llu: the address book keeps node %llu at %s "
			        "stamped %llu, past the latest plausible stamp (%llu, 2200-01-01): "
			        "kept unstamped",
			        (unsigned long long)g->id, (unsigned long long)m->node_id, m->addr,
			        (unsigned long long)m->learned,
			        (unsigned long long)ENGINE_STAMP_MAX);
			m->learned = 0;
			resave = true;
		} else {
			(void)clock_past(e, m->learned);
		}
	}
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
	if (resave && (rc = eng_book_save(e, g)) != ENGINE_OK)
		return eng_fail_engine(e, rc, "group %llu: saving its address book",
		                       (unsigned long long)g->id);
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
	/* Whatever the log taught up to the index being applied is in the book now. */
	if (g->book.at > g->book.index)
		g->book.index = g->book.at;
	if (g->applied > g->book.index)
		g->book.index = g->applied;
	bs->addr_index = g->book.index;
	rc = e->st.save_bootstrap(e->st.ctx, g->id, bs);
	e->a->free(bs);
	return rc;
}

/* g's book entry for id, or NULL. */
static struct engine_member *book_find(struct group *g, raft_id id)
{
	for (uint32_t i = 0; i < g->book.n; i++)
		if (g->book.m[i].node_id == id)
			return &g->book.m[i];
	return NULL;
}

/*
 * A new entry for id in g's book (*out).  A full book (RAFT_MAX_MEMBERS
 * addresses: of nodes that are not members too, as a corrupt or hostile
 * ENTRY_ADDRESSES may list) makes room for a member's address: the entry of
 * the lowest node id that is not a member leaves it (a WARNING); for a node
 * that is not a member, none does (a WARNING): strangers do not take a
 * member's place.
 */
static int book_add(struct engine *e, struct group *g, raft_id id, struct engine_member **out)
{
	struct addrbook *b = &g->book;
	struct engine_member *nm;
	uint32_t v = b->n;
	raft_id stranger;

	if (b->n == RAFT_MAX_MEMBERS) {
		for (uint32_t i = 0; raft_membership_contains(&g->conf, id) && i < b->n; i++)
			if (!raft_membership_contains(&g->conf, b->m[i].node_id) &&
			    b->m[i].node_id != e->cfg.node_id &&
			    (v == b->n || b->m[i].node_id < b->m[v].node_id))
				v = i;
		if (v == b->n) {
			eng_say(e, ENGINE_LOG_WARNING,
			        "dragonraft group %llu: node %llu's address is not kept: the "
			        "address book is full (%d addresses) and the node is not a member",
			        (unsigned long long)g->id, (unsigned long long)id,
			        RAFT_MAX_MEMBERS);
			return eng_err(e, ENGINE_ERR_INVALID, "group %llu: address book full",
			               (unsigned long long)g->id);
		}
		eng_say(e, ENGINE_LOG_WARNING,
		        "dragonraft group %llu: node %llu (not a member) leaves the address book, "
		        "full (%d addresses), for member %llu's address",
		        (unsigned long long)g->id, (unsigned long long)b->m[v].node_id,
		        RAFT_MAX_MEMBERS, (unsigned long long)id);
		stranger = b->m[v].node_id;
		*out = &b->m[v]; /* (saved with its new node: book_set) */
		(*out)->node_id = id;
		eng_drop_peer_if_unused(e, stranger);
		return ENGINE_OK;
	}
	nm = e->a->realloc(b->m, (b->n + 1) * sizeof(*b->m));
	if (nm == NULL)
		return eng_err(e, ENGINE_ERR_NOMEM, "group %llu: out of memory",
		               (unsigned long long)g->id);
	b->m = nm;
	*out = &b->m[b->n++];
	(*out)->node_id = id;
	return ENGINE_OK;
}

/* m (in g's book) is at addr, learned then: saved, and offered to the network. */
static int book_set(struct engine *e, struct group *g, struct engine_member *m, const char *addr,
                    size_t len, uint64_t learned)
{
	int rc;

	memcpy(m->addr, addr, len);
	m->addr[len] = '\0';
	m->learned = learned;
	rc = eng_book_save(e, g);
	if (rc != ENGINE_OK)
		return eng_fail_engine(e, rc, "group %llu: saving the address of node %llu",
		                       (unsigned long long)g->id, (unsigned long long)m->node_id);
	peer_offer(e, m->node_id, m->addr, m->learned);
	return ENGINE_OK;
}

/*
 * Whether a group here other than g keeps id in its book at addr (stamped
 * learned; any stamp when 0): `same`; or at another address: !same.
 */
static bool held_elsewhere(const struct engine *e, const struct group *g, raft_id id,
                           const char *addr, size_t len, uint64_t learned, bool same)
{
	for (size_t i = 0; i < e->n_groups; i++) {
		const struct group *h = e->groups[i];

		for (uint32_t k = 0; h != g && k < h->book.n; k++) {
			const struct engine_member *m = &h->book.m[k];
			bool at = strlen(m->addr) == len && memcmp(m->addr, addr, len) == 0 &&
			          (learned == 0 || m->learned == learned);

			if (m->node_id == id && at == same)
				return true;
		}
	}
	return false;
}

/*
 * id is at addr, as a user gives it (join_group here): kept in g's book and
 * learned now (the network dials the address learned last).  One the book
 * holds already is learned again when another is dialed: a user gives it
 * back (review 29 F1: join_group putting back an address that a typo in
 * another group's change had replaced left the typo dialed).
 *
 * A node's address is the node's, not a group's: every other group's book
 * here that keeps id takes it too, with the same stamp, so that no stale
 * book brings the old one back (review 35 N1: removed from the corrected
 * group, the node was dialed at the address another group's book still
 * held).
 */
static int learn(struct engine *e, struct group *g, raft_id id, const char *addr, size_t len)
{
	struct engine_member *m;
	const char *dialed;
	uint64_t stamp;
	int rc;

	if (len == 0 || len >= ENGINE_ADDR_MAX || id == 0)
		return ENGINE_OK;
	m = book_find(g, id);
	if (m != NULL && strlen(m->addr) == len && memcmp(m->addr, addr, len) == 0 &&
	    (id == e->cfg.node_id ||
	     (((dialed = engine_peer_address(e, id)) == NULL || strcmp(dialed, m->addr) == 0) &&
	      !held_elsewhere(e, g, id, addr, len, 0, false))))
		return ENGINE_OK;
	if (m == NULL && (rc = book_add(e, g, id, &m)) != ENGINE_OK)
		return rc;
	stamp = learn_stamp(e);
	rc = book_set(e, g, m, addr, len, stamp);
	for (size_t i = 0; rc == ENGINE_OK && i < e->n_groups; i++) {
		struct group *h = e->groups[i];
		struct engine_member *hm = h != g ? book_find(h, id) : NULL;

		if (hm != NULL)
			rc = book_set(e, h, hm, addr, len, stamp);
	}
	return rc;
}

/*
 * id is at addr, learned at stamp `learned` where it comes from (the leader
 * that replicated it).  Nothing changes when the network dials the node at a
 * newer address already, whichever group brought it (an older address that
 * another group replicates late does not undo a correction: user28), or when
 * the book holds a newer one or this one; else the book keeps it with its
 * stamp and the network dials it.  A node the book lacks is kept all the
 * same (the group accepts the node's messages), at the address dialed if
 * that one is newer.  The
 * engine's clock goes past the stamp: what this node learns later is newer.
 */
static int learn_at(struct engine *e, struct group *g, raft_id id, const char *addr, size_t len,
                    uint64_t learned)
{
	const struct eng_peer *p = find_peer(e, id);
	struct engine_member *m;
	int rc;

	if (len == 0 || len >= ENGINE_ADDR_MAX || id == 0)
		return ENGINE_OK;
	learned = clock_past(e, learned);
	m = book_find(g, id);
	if (m != NULL &&
	    ((p != NULL && p->learned > learned) || m->learned > learned ||
	     (m->learned == learned && strlen(m->addr) == len && memcmp(m->addr, addr, len) == 0)))
		return ENGINE_OK;
	if (m == NULL && (rc = book_add(e, g, id, &m)) != ENGINE_OK)
		return rc;
	/* A book that lacked the node takes the newer address dialed, not this
	 * older one, which a removal from the other groups would fall back to (a
	 * node's address is the node's: review 35 N1). */
	if (p != NULL && p->learned > learned)
		return book_set(e, g, m, p->addr, strlen(p->addr), p->learned);
	return book_set(e, g, m, addr, len, learned);
}

/*
 * id is at addr, replicated without a stamp: as new as what g's book held
 * for id before (0 when nothing), so it is learned in g's log order but
 * never over a newer address from elsewhere; a book address that another
 * group's book holds with the same stamp (a correction given there: learn)
 * counts as just newer.
 */
static int learn_unstamped(struct engine *e, struct group *g, raft_id id, const char *addr,
                           size_t len)
{
	const struct engine_member *m = book_find(g, id);
	uint64_t learned = 0;

	if (m != NULL) {
		learned = m->learned;
		if (learned > 0 && (strlen(m->addr) != len || memcmp(m->addr, addr, len) != 0) &&
		    held_elsewhere(e, g, id, m->addr, strlen(m->addr), learned, true))
			learned--;
	}
	return learn_at(e, g, id, addr, len, learned);
}

size_t eng_cc_context(uint8_t *buf, const char *addr, uint64_t learned)
{
	size_t len = strlen(addr);

	memcpy(buf, addr, len);
	buf[len] = '\0';
	buf[len + 1] = ENG_CC_STAMPED;
	eng_put64(buf + len + 2, learned);
	return len + 10;
}

/*
 * The address part of a context: its bytes up to the first NUL (all of them
 * without one: an older build's) must be an address, 1 to ENGINE_ADDR_MAX - 1
 * bytes with no control byte (nobody dials one).  After the NUL, the version
 * byte: 1 is followed by the stamp (8 bytes, not 0) and nothing more; a later
 * version keeps "address NUL version" and may only append after its version
 * byte (what it appends is its own), so this build learns its address
 * unstamped; 0 was never written.  A version-1 stamp above ENGINE_STAMP_MAX
 * counts as absent (out->far): the address is learned unstamped too.  A
 * context that breaks these rules brings no address (why); the change
 * applies all the same (round.c).
 */
int eng_cc_address(const uint8_t *ctx, size_t len, struct eng_cc_address *out, char *why,
                   size_t cap)
{
	const uint8_t *nul = len > 0 ? memchr(ctx, '\0', len) : NULL;
	size_t alen = nul != NULL ? (size_t)(nul - ctx) : len;

	memset(out, 0, sizeof(*out));
	if (nul == NULL && len >= ENGINE_ADDR_MAX) {
		snprintf(why, cap, "%zu bytes with no NUL (an address alone has at most %d)", len,
		         ENGINE_ADDR_MAX - 1);
		return ENGINE_ERR_INVALID;
	}
	if (alen == 0 || alen >= ENGINE_ADDR_MAX) {
		snprintf(why, cap, "an address of %zu bytes (1 to %d)", alen, ENGINE_ADDR_MAX - 1);
		return ENGINE_ERR_INVALID;
	}
	for (size_t i = 0; i < alen; i++)
		if (ctx[i] < 0x20 || ctx[i] == 0x7f) {
			snprintf(why, cap, "a control byte (0x%02x) at byte %zu of the address",
			         ctx[i], i + 1);
			return ENGINE_ERR_INVALID;
		}
	if (nul != NULL && len == alen + 1) {
		snprintf(why, cap, "a NUL after the address and no version byte");
		return ENGINE_ERR_INVALID;
	}
	out->version = nul != NULL ? ctx[alen + 1] : 0;
	if (nul != NULL && out->version == 0) {
		snprintf(why, cap, "version 0 after the address (versions start at 1)");
		return ENGINE_ERR_INVALID;
	}
	if (out->version == ENG_CC_STAMPED && len != alen + 10) {
		snprintf(why, cap, "%zu bytes after version 1, not its stamp's 8", len - alen - 2);
		return ENGINE_ERR_INVALID;
	}
	if (out->version == ENG_CC_STAMPED && (out->learned = eng_get64(ctx + alen + 2)) == 0) {
		snprintf(why, cap, "an address stamped 0");
		return ENGINE_ERR_INVALID;
	}
	if (out->learned > ENGINE_STAMP_MAX) {
		out->far = out->learned;
		out->learned = 0;
	}
	out->addr = (const char *)ctx;
	out->len = alen;
	return ENGINE_OK;
}

/*
 * A change said in a WARNING is saved as held in g's book (g->book.at, as a
 * learned address is): a restart does not apply it again (round.c), so the
 * WARNING comes once.  What it taught (nothing, or an address learned
 * unstamped) is in the book already.
 */
static int book_holds_change(struct engine *e, struct group *g)
{
	int rc;

	if (g->book.at <= g->book.index || (rc = eng_book_save(e, g)) == ENGINE_OK)
		return ENGINE_OK;
	return eng_fail_engine(e, rc, "group %llu: saving its address book",
	                       (unsigned long long)g->id);
}

int eng_learn_cc_address(struct engine *e, struct group *g, raft_index index, raft_id id,
                         const uint8_t *ctx, size_t len)
{
	struct eng_cc_address a;
	char why[128];
	int rc;

	if (eng_cc_address(ctx, len, &a, why, sizeof(why)) != ENGINE_OK) {
		eng_say(e, ENGINE_LOG_WARNING,
		        "dragonraft group %llu: the membership change at index %llu (node %llu) "
		        "brings no address: %s; it is applied without one (a node not reached "
		        "then: give its address with join_group on the leader)",
		        (unsigned long long)g->id, (unsigned long long)index,
		        (unsigned long long)id, why);
		return book_holds_change(e, g);
	}
	if (a.version > ENG_CC_STAMPED)
		eng_say(e, ENGINE_LOG_WARNING,
		        "dragonraft group %llu: the membership change at index %llu (node %llu) "
		        "brings its address %.*s in a context of version %u, newer than this "
		        "build's (%d): the address is learned without its stamp",
		        (unsigned long long)g->id, (unsigned long long)index,
		        (unsigned long long)id, (int)a.len, a.addr, a.version, ENG_CC_STAMPED);
	if (a.far != 0)
		eng_say(e, ENGINE_LOG_WARNING,
		        "dragonraft group %llu: the membership change at index %llu (node %llu) "
		        "brings its address %.*s stamped %llu, past the latest plausible stamp "
		        "(%llu, 2200-01-01): the address is learned without its stamp",
		        (unsigned long long)g->id, (unsigned long long)index,
		        (unsigned long long)id, (int)a.len, a.addr, (unsigned long long)a.far,
		        (unsigned long long)ENGINE_STAMP_MAX);
	if (a.learned != 0)
		return learn_at(e, g, id, a.addr, a.len, a.learned);
	rc = learn_unstamped(e, g, id, a.addr, a.len);
	return rc == ENGINE_OK ? book_holds_change(e, g) : rc;
}

int engine_learn_address(struct engine *e, uint64_t group_id, raft_id node_id, const char *addr)
{
	struct group *g = eng_group(e, group_id);

	if (g == NULL)
		return eng_err(e, ENGINE_ERR_NO_GROUP, "group %llu is not here",
		               (unsigned long long)group_id);
	return learn(e, g, node_id, addr, strlen(addr));
}

int engine_learn_address_at(struct engine *e, uint64_t group_id, raft_id node_id, const char *addr,
                            uint64_t learned)
{
	struct group *g = eng_group(e, group_id);

	if (g == NULL)
		return eng_err(e, ENGINE_ERR_NO_GROUP, "group %llu is not here",
		               (unsigned long long)group_id);
	if (learned <= ENGINE_STAMP_MAX)
		return learn_at(e, g, node_id, addr, strlen(addr), learned);
	eng_say(e, ENGINE_LOG_WARNING,
	        "dragonraft group %llu: node %llu's address %s comes stamped %llu, past the "
	        "latest plausible stamp (%llu, 2200-01-01): it is learned without its stamp",
	        (unsigned long long)group_id, (unsigned long long)node_id, addr,
	        (unsigned long long)learned, (unsigned long long)ENGINE_STAMP_MAX);
	return learn_unstamped(e, g, node_id, addr, strlen(addr));
}

int engine_learn_address_unstamped(struct engine *e, uint64_t group_id, raft_id node_id,
                                   const char *addr)
{
	struct group *g = eng_group(e, group_id);

	if (g == NULL)
		return eng_err(e, ENGINE_ERR_NO_GROUP, "group %llu is not here",
		               (unsigned long long)group_id);
	return learn_unstamped(e, g, node_id, addr, strlen(addr));
}

uint64_t engine_peer_learned(const struct engine *e, raft_id node_id)
{
	const struct eng_peer *p = find_peer(e, node_id);

	return p != NULL ? p->learned : 0;
}

uint64_t engine_address_stamp(struct engine *e)
{
	return learn_stamp(e);
}

/*
 * A stamp read for this node's own address.  One ahead of the wall clock (a
 * server whose clock runs ahead gave it) is kept too, as the stamp of this
 * node's own entry in every book that has one (saved; nothing dials it): the
 * clock a restart rebuilds from the books is past it, and the address this
 * node proposes after a restart (another listen_address, say) is newer than
 * the one the others keep.  One behind the wall clock a restart passes anyway.
 */
void engine_address_seen(struct engine *e, uint64_t learned)
{
	if (learned > ENGINE_STAMP_MAX) {
		eng_say(e, ENGINE_LOG_WARNING,
		        "dragonraft: this node's own address comes stamped %llu, past the latest "
		        "plausible stamp (%llu, 2200-01-01): the stamp is ignored",
		        (unsigned long long)learned, (unsigned long long)ENGINE_STAMP_MAX);
		return;
	}
	(void)clock_past(e, learned);
	if (learned <= wall_now(e))
		return;
	for (size_t i = 0; i < e->n_groups; i++) {
		struct group *g = e->groups[i];
		struct engine_member *m = book_find(g, e->cfg.node_id);
		int rc;

		if (m == NULL || m->learned >= learned)
			continue;
		m->learned = learned;
		rc = eng_book_save(e, g);
		if (rc != ENGINE_OK) {
			eng_fail_engine(e, rc, "group %llu: saving its address book",
			                (unsigned long long)g->id);
			return;
		}
	}
}

void eng_announce_addresses(struct engine *e, struct group *g)
{
	for (uint32_t i = 0; i < g->book.n; i++)
		peer_offer(e, g->book.m[i].node_id, g->book.m[i].addr, g->book.m[i].learned);
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
	struct eng_peer *p = find_peer(e, id);
	const struct engine_member *best = NULL;

	if (id == e->cfg.node_id)
		return;
	if (!peer_needed(e, id)) {
		if (p != NULL && p->linger > e->now)
			return; /* eng_drop_lingering forgets it */
		if (p != NULL)
			*p = e->peers[--e->n_peers];
		if (e->net.remove_peer != NULL)
			e->net.remove_peer(e->net.ctx, id);
		return;
	}
	/* Still known: if the address dialed was the one forgotten, the latest one left. */
	for (size_t i = 0; i < e->n_groups; i++)
		for (uint32_t k = 0; k < e->groups[i]->book.n; k++) {
			const struct engine_member *m = &e->groups[i]->book.m[k];

			if (m->node_id == id && (best == NULL || m->learned >= best->learned))
				best = m;
		}
	if (p != NULL && best != NULL && strcmp(best->addr, p->addr) != 0 &&
	    best->learned <= p->learned) {
		p->learned = 0; /* (whatever the stamp, the best one left is dialed) */
		peer_offer(e, id, best->addr, best->learned);
	}
}

void eng_linger_peer(struct engine *e, raft_id id)
{
	struct eng_peer *p = find_peer(e, id);

	if (p != NULL)
		p->linger = e->now + e->cfg.election_rtt;
}

void eng_drop_lingering(struct engine *e)
{
	for (size_t i = e->n_peers; i-- > 0;) /* (a drop moves the last one to i) */
		if (e->peers[i].linger != 0 && e->peers[i].linger <= e->now) {
			e->peers[i].linger = 0;
			eng_drop_peer_if_unused(e, e->peers[i].id);
		}
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
