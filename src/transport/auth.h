/*
 * auth.h - the transport's opening frames and who may open a connection.
 *
 * Every connection starts, inside TLS when TLS is configured (tp_tls.c), with
 * HELLO from the dialing side (client): its node id, the node id it expects
 * to reach and the connection's purpose.  The server checks them (the client
 * id must be the one its certificate names, a peer of this node, not itself;
 * the server id must be its own) and answers WELCOME with its node id; only
 * then is any other frame accepted.  Because both frames travel inside TLS,
 * the ids and the purpose are authenticated data.
 *
 * Certificates name their node in a subjectAltName URI:
 * "urn:dragonraft:node:<id>" (decimal, no leading zeros), exactly one.
 */
#ifndef DRAGONRAFT_TRANSPORT_AUTH_H
#define DRAGONRAFT_TRANSPORT_AUTH_H

#include <stddef.h>
#include <stdint.h>

#define TRANSPORT_HELLO_LEN   (8 + 8 + 1)
#define TRANSPORT_WELCOME_LEN 8
/* The subjectAltName URI prefix that names a node in its certificate. */
#define TRANSPORT_CERT_URI_PREFIX "urn:dragonraft:node:"

/* What a connection carries, stated in HELLO. */
enum transport_purpose {
	TRANSPORT_PURPOSE_MSG = 1,  /* message batches */
	TRANSPORT_PURPOSE_SNAP = 2, /* one snapshot stream */
};

/* The HELLO frame's fields. */
struct transport_hello {
	uint64_t client_id;
	uint64_t server_id;
	uint8_t purpose;
};

/* Encodes a HELLO payload (TRANSPORT_HELLO_LEN bytes). */
void transport_hello_put(uint8_t *p, const struct transport_hello *h);

/* Decodes a HELLO payload; TRANSPORT_EDECODE if its length or fields are wrong. */
int transport_hello_get(const uint8_t *p, size_t len, struct transport_hello *h);

/* Parses the node id of a certificate's URI "urn:dragonraft:node:<id>"; 0 or TRANSPORT_EDECODE. */
int transport_cert_uri_node_id(const char *uri, size_t len, uint64_t *id);

#endif /* DRAGONRAFT_TRANSPORT_AUTH_H */
