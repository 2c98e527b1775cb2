/*
 * fake_net.h - an in-process network between N engines for tests: send()
 * deep-copies the message into one queue; fake_net_deliver() hands queued
 * messages to their destination engines.  A node that is down (no engine
 * attached) or isolated loses what is sent to it or by it, and the sender
 * hears "unreachable".  When a node goes down or is cut off, the nodes on
 * the other side hear it at once (engine_report_unreachable with group 0),
 * as a transport hears of a lost connection.  Each node's declared peers
 * (add_peer, remove_peer) are recorded, and forgotten when it goes down.
 * Snapshot files are moved into the network directory and handed to the
 * receiver, then the sender hears the outcome.
 */
#ifndef DRAGONRAFT_TEST_FAKE_NET_H
#define DRAGONRAFT_TEST_FAKE_NET_H

#include "engine/engine.h"

#define FAKE_NET_MAX_NODES 16

struct fake_net;

/* Create a network; received snapshot files are placed in dir. */
int fake_net_create(const char *dir, struct fake_net **out);
/* Free the network and every queued message. */
void fake_net_destroy(struct fake_net *n);
/* ops for node id (1..FAKE_NET_MAX_NODES-1). */
void fake_net_ops(struct fake_net *n, raft_id id, struct engine_network_ops *ops);
/* Attach node id's engine (NULL: the node is down). */
void fake_net_attach(struct fake_net *n, raft_id id, struct engine *e);
/* Cut node id off (or reconnect it). */
void fake_net_isolate(struct fake_net *n, raft_id id, bool isolated);
/* Node id takes no snapshot stream (a receiver without room for it): each fails, and both
 * ends hear why as from the transport (engine_snapshot_refused, _refused_by). */
void fake_net_refuse_snapshots(struct fake_net *n, raft_id id, bool refuse);
/* The numbers node id's refusals give its leader (need, free, min_free; all 0 at first). */
void fake_net_no_room(struct fake_net *n, raft_id id, uint64_t need, uint64_t free_bytes,
                      uint64_t min_free);
/* Peers as the transport has them (off at first: the tests declare no addresses for many
 * members): a send to a node that is no peer of the sender fails, a message from a node that
 * is no peer of the receiver is dropped, remove_peer drops what waits between the two. */
void fake_net_strict_peers(struct fake_net *n, bool strict);
/* Hold messages of `type` to node id in the queue, in order, neither delivered nor lost
 * while the node is down or cut off, until called again with hold false (then the next
 * delivery takes them as any other message: dropped if the node is still cut off): a
 * transport whose queue outlives a connection and reaches the node's next engine.  One type
 * per node (a call replaces the last); under fake_net_strict_peers a remove_peer drops
 * them as the others. */
void fake_net_hold(struct fake_net *n, raft_id id, uint32_t type, bool hold);
/* Deliver everything queued so far (but what is held); returns the number delivered. */
size_t fake_net_deliver(struct fake_net *n);
/* Whether node id's network knows peer (add_peer, and no remove_peer since). */
bool fake_net_has_peer(const struct fake_net *n, raft_id id, raft_id peer);
/* The address node id's network was last given for peer (NULL: no such peer). */
const char *fake_net_peer_addr(const struct fake_net *n, raft_id id, raft_id peer);
/* Messages waiting. */
size_t fake_net_queued(const struct fake_net *n);
/* Messages sent so far. */
uint64_t fake_net_sent(const struct fake_net *n);
/* Messages node id sent so far. */
uint64_t fake_net_sent_by(const struct fake_net *n, raft_id id);
/* The last term in which node id sent a leader's message (append, heartbeat, snapshot). */
raft_term fake_net_led_in(const struct fake_net *n, raft_id id);
/* Snapshots delivered so far. */
uint64_t fake_net_snapshots(const struct fake_net *n);

#endif /* DRAGONRAFT_TEST_FAKE_NET_H */
