/*
 * auth.h - the transport's mutual challenge/response handshake.
 *
 * The dialing side (client) sends HELLO: its node id, the node id it expects
 * to reach, the connection's purpose and a fresh client nonce.  The server
 * checks the ids and answers CHALLENGE: its node id, a fresh server nonce and
 * its proof.  The client checks the server's proof and sends AUTH with its
 * own proof; only then does the server accept any other frame.
 *
 *   proof(role) = HMAC-SHA256(secret, "dragonraft-v1" || role ||
 *                 client_id || server_id || client_nonce || server_nonce)
 *
 * role is 'C' or 'S'; ids are big-endian u64.  Both nonces are fresh per
 * connection, so a recorded handshake replayed to a server fails: its AUTH
 * proof was made for another server nonce.  Servers also remember recent
 * client nonces and reject a repeated one as a replay.
 */
#ifndef DRAGONRAFT_TRANSPORT_AUTH_H
#define DRAGONRAFT_TRANSPORT_AUTH_H

#include <stddef.h>
#include <stdint.h>

#define TRANSPORT_NONCE_LEN     32
#define TRANSPORT_PROOF_LEN     32
#define TRANSPORT_HELLO_LEN     (8 + 8 + 1 + TRANSPORT_NONCE_LEN)
#define TRANSPORT_CHALLENGE_LEN (8 + TRANSPORT_NONCE_LEN + TRANSPORT_PROOF_LEN)
#define TRANSPORT_AUTH_LEN      TRANSPORT_PROOF_LEN

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
	uint8_t nonce[TRANSPORT_NONCE_LEN];
};

/* Computes proof(role) for the given ids and nonces; 0 or TRANSPORT_EAUTH. */
int transport_auth_proof(const uint8_t *secret, size_t secret_len, char role, uint64_t client_id,
                         uint64_t server_id, const uint8_t cnonce[TRANSPORT_NONCE_LEN],
                         const uint8_t snonce[TRANSPORT_NONCE_LEN],
                         uint8_t out[TRANSPORT_PROOF_LEN]);

/* Checks proof(role) in constant time; 0 when it matches, TRANSPORT_EAUTH otherwise. */
int transport_auth_verify(const uint8_t *secret, size_t secret_len, char role, uint64_t client_id,
                          uint64_t server_id, const uint8_t cnonce[TRANSPORT_NONCE_LEN],
                          const uint8_t snonce[TRANSPORT_NONCE_LEN],
                          const uint8_t proof[TRANSPORT_PROOF_LEN]);

/* Fills p with n cryptographically random bytes; 0 or TRANSPORT_EIO. */
int transport_random(uint8_t *p, size_t n);

/* Encodes a HELLO payload (TRANSPORT_HELLO_LEN bytes). */
void transport_hello_put(uint8_t *p, const struct transport_hello *h);

/* Decodes a HELLO payload; TRANSPORT_EDECODE if its length or fields are wrong. */
int transport_hello_get(const uint8_t *p, size_t len, struct transport_hello *h);

#endif /* DRAGONRAFT_TRANSPORT_AUTH_H */
