/*
 * fake_net.c - the in-process test network (see the header).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_net.h"

struct qmsg {
	struct raft_message m; /* entries, data and snapshot point into this allocation */
	char *path;            /* snapshot file, or NULL */
};

struct endpoint {
	struct fake_net *net;
	raft_id id;
	bool peers[FAKE_NET_MAX_NODES]; /* declared with add_peer and not removed since */
	char peer_addr[FAKE_NET_MAX_NODES][ENGINE_ADDR_MAX]; /* the address add_peer gave last */
};

struct fake_net {
	char dir[512];
	struct endpoint ep[FAKE_NET_MAX_NODES];
	struct engine *engines[FAKE_NET_MAX_NODES];
	bool isolated[FAKE_NET_MAX_NODES];
	bool strict; /* fake_net_strict_peers */
	bool refuses_snapshots[FAKE_NET_MAX_NODES];
	bool held[FAKE_NET_MAX_NODES];          /* fake_net_hold */
	uint32_t held_type[FAKE_NET_MAX_NODES];
	uint64_t no_room[FAKE_NET_MAX_NODES][3]; /* need, free, min_free its refusals report */
	struct qmsg **q;
	size_t n, cap;
	uint64_t sent, snapshots, seq;
	uint64_t sent_by[FAKE_NET_MAX_NODES];
	raft_term led_in[FAKE_NET_MAX_NODES]; /* fake_net_led_in */
};

int fake_net_create(const char *dir, struct fake_net **out)
{
	struct fake_net *n = calloc(1, sizeof(*n));

	if (n == NULL)
		return ENGINE_ERR_NOMEM;
	snprintf(n->dir, sizeof(n->dir), "%s", dir);
	for (raft_id i = 0; i < FAKE_NET_MAX_NODES; i++) {
		n->ep[i].net = n;
		n->ep[i].id = i;
	}
	*out = n;
	return ENGINE_OK;
}

static void qfree(struct qmsg *q)
{
	if (q->path != NULL) {
		remove(q->path);
		free(q->path);
	}
	free(q);
}

void fake_net_destroy(struct fake_net *n)
{
	if (n == NULL)
		return;
	for (size_t i = 0; i < n->n; i++)
		qfree(n->q[i]);
	free(n->q);
	free(n);
}

static bool up(const struct fake_net *n, raft_id id)
{
	return id > 0 && id < FAKE_NET_MAX_NODES && n->engines[id] != NULL && !n->isolated[id];
}

static int enqueue(struct fake_net *n, const struct raft_message *m, const char *path)
{
	size_t size = sizeof(struct qmsg) + m->n_entries * sizeof(struct raft_entry);
	struct raft_entry *ents;
	struct qmsg *q;
	uint8_t *p;

	for (uint32_t i = 0; i < m->n_entries; i++)
		size += m->entries[i].len;
	if (m->snapshot != NULL)
		size += sizeof(struct raft_snapshot_meta) + 8;
	if (n->n == n->cap) {
		size_t nc = n->cap ? 2 * n->cap : 256;
		struct qmsg **nq = realloc(n->q, nc * sizeof(*nq));

		if (nq == NULL)
			return ENGINE_ERR_NOMEM;
		n->q = nq;
		n->cap = nc;
	}
	q = malloc(size);
	if (q == NULL)
		return ENGINE_ERR_NOMEM;
	q->m = *m;
	q->path = NULL;
	ents = (struct raft_entry *)(q + 1);
	p = (uint8_t *)(ents + m->n_entries);
	if (m->snapshot != NULL) {
		struct raft_snapshot_meta *s = (void *)(((uintptr_t)p + 7) & ~(uintptr_t)7);

		*s = *m->snapshot;
		q->m.snapshot = s;
		p = (uint8_t *)(s + 1);
	}
	for (uint32_t i = 0; i < m->n_entries; i++) {
		ents[i] = m->entries[i];
		if (ents[i].len > 0) {
			memcpy(p, m->entries[i].data, ents[i].len);
			ents[i].data = p;
			p += ents[i].len;
		}
	}
	q->m.entries = m->n_entries > 0 ? ents : NULL;
	if (path != NULL) {
		char np[700];

		snprintf(np, sizeof(np), "%s/net-%llu", n->dir, (unsigned long long)++n->seq);
		if (rename(path, np) != 0 || (q->path = strdup(np)) == NULL) {
			remove(np);
			free(q);
			return ENGINE_ERR_SNAPSHOT;
		}
	}
	n->q[n->n++] = q;
	n->sent++;
	if (m->from < FAKE_NET_MAX_NODES)
		n->sent_by[m->from]++;
	if (m->from < FAKE_NET_MAX_NODES && m->term > n->led_in[m->from] &&
	    (m->type == RAFT_MSG_APPEND || m->type == RAFT_MSG_HEARTBEAT ||
	     m->type == RAFT_MSG_SNAPSHOT))
		n->led_in[m->from] = m->term;
	return ENGINE_OK;
}

static int net_send(void *ctx, const struct raft_message *m)
{
	struct endpoint *ep = ctx;

	if (m->from != ep->id)
		return ENGINE_ERR_INVALID;
	if (ep->net->strict && (m->to >= FAKE_NET_MAX_NODES || !ep->peers[m->to]))
		return ENGINE_ERR_INVALID; /* (the transport: no such peer) */
	return enqueue(ep->net, m, NULL);
}

static int net_send_snapshot(void *ctx, const struct raft_message *m, const char *path)
{
	struct endpoint *ep = ctx;
	int rc;

	rc = enqueue(ep->net, m, path);
	if (rc != ENGINE_OK)
		remove(path);
	return rc;
}

static int net_add_peer(void *ctx, raft_id node_id, const char *addr)
{
	struct endpoint *ep = ctx;

	if (node_id == 0 || node_id >= FAKE_NET_MAX_NODES || node_id == ep->id)
		return ENGINE_ERR_INVALID;
	ep->peers[node_id] = true;
	snprintf(ep->peer_addr[node_id], sizeof(ep->peer_addr[node_id]), "%s", addr);
	return ENGINE_OK;
}

static void net_remove_peer(void *ctx, raft_id node_id)
{
	struct endpoint *ep = ctx;
	struct fake_net *n = ep->net;
	size_t k = 0;

	if (node_id == 0 || node_id >= FAKE_NET_MAX_NODES)
		return;
	ep->peers[node_id] = false;
	if (!n->strict)
		return;
	/* As the transport: what waits for the peer is dropped, its connections close. */
	for (size_t i = 0; i < n->n; i++) {
		struct qmsg *q = n->q[i];

		if (q->path == NULL && ((q->m.from == ep->id && q->m.to == node_id) ||
		                        (q->m.from == node_id && q->m.to == ep->id)))
			qfree(q);
		else
			n->q[k++] = q;
	}
	n->n = k;
}

const char *fake_net_peer_addr(const struct fake_net *n, raft_id id, raft_id peer)
{
	return fake_net_has_peer(n, id, peer) ? n->ep[id].peer_addr[peer] : NULL;
}

bool fake_net_has_peer(const struct fake_net *n, raft_id id, raft_id peer)
{
	return peer > 0 && peer < FAKE_NET_MAX_NODES && n->ep[id].peers[peer];
}

void fake_net_ops(struct fake_net *n, raft_id id, struct engine_network_ops *ops)
{
	memset(ops, 0, sizeof(*ops));
	ops->ctx = &n->ep[id];
	ops->send = net_send;
	ops->send_snapshot = net_send_snapshot;
	ops->add_peer = net_add_peer;
	ops->remove_peer = net_remove_peer;
}

/* Node id goes down or is cut off: the nodes on the other side lose their connections. */
static void disconnect(struct fake_net *n, raft_id id)
{
	for (raft_id x = 1; x < FAKE_NET_MAX_NODES; x++) {
		if (x == id || n->engines[x] == NULL)
			continue;
		engine_report_unreachable(n->engines[x], id, 0);
		if (n->engines[id] != NULL)
			engine_report_unreachable(n->engines[id], x, 0);
	}
}

void fake_net_attach(struct fake_net *n, raft_id id, struct engine *e)
{
	if (e == NULL && up(n, id)) {
		n->engines[id] = NULL;
		disconnect(n, id);
	}
	if (e == NULL) /* its transport went with it */
		memset(n->ep[id].peers, 0, sizeof(n->ep[id].peers));
	n->engines[id] = e;
}

void fake_net_refuse_snapshots(struct fake_net *n, raft_id id, bool refuse)
{
	n->refuses_snapshots[id] = refuse;
}

void fake_net_no_room(struct fake_net *n, raft_id id, uint64_t need, uint64_t free_bytes,
                      uint64_t min_free)
{
	n->no_room[id][0] = need;
	n->no_room[id][1] = free_bytes;
	n->no_room[id][2] = min_free;
}

void fake_net_isolate(struct fake_net *n, raft_id id, bool isolated)
{
	if (isolated && up(n, id))
		disconnect(n, id);
	n->isolated[id] = isolated;
}

/* m->to refuses m's stream for want of room: both ends hear it as from the transport
 * (tp_snap_recv.c); then the stream fails. */
static void say_no_room(struct fake_net *n, const struct raft_message *m)
{
	const uint64_t *r = n->no_room[m->to];
	char why[128];

	snprintf(why, sizeof(why), "no room for the snapshot from node %llu",
	         (unsigned long long)m->from);
	engine_snapshot_refused(n->engines[m->to], m->group_id, m->from, why);
	engine_snapshot_refused_by(n->engines[m->from], m->group_id, m->to, r[0], r[1], r[2]);
}

void fake_net_hold(struct fake_net *n, raft_id id, uint32_t type, bool hold)
{
	n->held[id] = hold;
	n->held_type[id] = type;
}

static bool is_held(const struct fake_net *n, const struct qmsg *q)
{
	raft_id to = q->m.to;

	return to < FAKE_NET_MAX_NODES && n->held[to] && q->m.type == n->held_type[to] &&
	       q->path == NULL;
}

/* Put the messages kept[0..k) back ahead of those queued since. */
static void requeue(struct fake_net *n, struct qmsg **kept, size_t k)
{
	struct qmsg **nq;

	if (k == 0)
		return;
	nq = malloc((k + n->n) * sizeof(*nq));
	if (nq == NULL)
		abort(); /* (a test network) */
	memcpy(nq, kept, k * sizeof(*nq));
	if (n->n > 0)
		memcpy(nq + k, n->q, n->n * sizeof(*nq));
	free(n->q);
	n->q = nq;
	n->n += k;
	n->cap = n->n;
}

size_t fake_net_deliver(struct fake_net *n)
{
	struct qmsg **batch = n->q;
	size_t count = n->n, delivered = 0, k = 0;

	n->q = NULL;
	n->n = n->cap = 0;
	for (size_t i = 0; i < count; i++) {
		struct qmsg *q = batch[i];
		const struct raft_message *m = &q->m;
		/* (a node that is no peer of the receiver is refused there) */
		bool ok = up(n, m->from) && up(n, m->to) && (!n->strict || n->ep[m->to].peers[m->from]);

		if (is_held(n, q)) {
			batch[k++] = q; /* (i >= k: not visited again) */
			continue;
		}
		if (q->path != NULL) {
			if (ok && n->refuses_snapshots[m->to])
				say_no_room(n, m);
			if (ok && !n->refuses_snapshots[m->to]) {
				ok = engine_deliver_snapshot(n->engines[m->to], m, q->path) == ENGINE_OK;
				free(q->path); /* the receiver owns the file now */
				q->path = NULL;
				if (ok) {
					n->snapshots++;
					delivered++;
				}
			} else {
				ok = false;
			}
			if (n->engines[m->from] != NULL)
				engine_snapshot_sent(n->engines[m->from], m->to, m->group_id, !ok);
		} else if (ok) {
			engine_deliver(n->engines[m->to], m, 1);
			delivered++;
		} else if (n->engines[m->from] != NULL) {
			engine_report_unreachable(n->engines[m->from], m->to, m->group_id);
		}
		qfree(q);
	}
	requeue(n, batch, k);
	free(batch);
	return delivered;
}

size_t fake_net_queued(const struct fake_net *n)
{
	size_t k = 0;

	for (size_t i = 0; i < n->n; i++)
		k += !is_held(n, n->q[i]);
	return k;
}

uint64_t fake_net_sent(const struct fake_net *n)
{
	return n->sent;
}

uint64_t fake_net_snapshots(const struct fake_net *n)
{
	return n->snapshots;
}

uint64_t fake_net_sent_by(const struct fake_net *n, raft_id id)
{
	return id < FAKE_NET_MAX_NODES ? n->sent_by[id] : 0;
}

raft_term fake_net_led_in(const struct fake_net *n, raft_id id)
{
	return id < FAKE_NET_MAX_NODES ? n->led_in[id] : 0;
}

void fake_net_strict_peers(struct fake_net *n, bool strict)
{
	n->strict = strict;
}
