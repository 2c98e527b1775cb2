/*
 * auth.c - HMAC-SHA256 proofs for the transport handshake (OpenSSL libcrypto).
 */
#include "transport/auth.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "transport/tp_common.h"

#define DOMAIN "dragonraft-v1"

int transport_auth_proof(const uint8_t *secret, size_t secret_len, char role, uint64_t client_id,
                         uint64_t server_id, const uint8_t cnonce[TRANSPORT_NONCE_LEN],
                         const uint8_t snonce[TRANSPORT_NONCE_LEN],
                         uint8_t out[TRANSPORT_PROOF_LEN])
{
	static const uint8_t empty[1];
	uint8_t msg[sizeof(DOMAIN) - 1 + 1 + 16 + 2 * TRANSPORT_NONCE_LEN];
	unsigned int outlen = 0;
	size_t n = 0;

	memcpy(msg, DOMAIN, sizeof(DOMAIN) - 1);
	n += sizeof(DOMAIN) - 1;
	msg[n++] = (uint8_t)role;
	tp_put64(msg + n, client_id);
	n += 8;
	tp_put64(msg + n, server_id);
	n += 8;
	memcpy(msg + n, cnonce, TRANSPORT_NONCE_LEN);
	n += TRANSPORT_NONCE_LEN;
	memcpy(msg + n, snonce, TRANSPORT_NONCE_LEN);
	n += TRANSPORT_NONCE_LEN;
	if (secret == NULL || secret_len == 0) {
		secret = empty;
		secret_len = 0;
	}
	if (HMAC(EVP_sha256(), secret, (int)secret_len, msg, n, out, &outlen) == NULL ||
	    outlen != TRANSPORT_PROOF_LEN)
		return TRANSPORT_EAUTH;
	return TRANSPORT_OK;
}

int transport_auth_verify(const uint8_t *secret, size_t secret_len, char role, uint64_t client_id,
                          uint64_t server_id, const uint8_t cnonce[TRANSPORT_NONCE_LEN],
                          const uint8_t snonce[TRANSPORT_NONCE_LEN],
                          const uint8_t proof[TRANSPORT_PROOF_LEN])
{
	uint8_t want[TRANSPORT_PROOF_LEN];
	int rc = transport_auth_proof(secret, secret_len, role, client_id, server_id, cnonce,
	                              snonce, want);

	if (rc != TRANSPORT_OK)
		return rc;
	return CRYPTO_memcmp(want, proof, TRANSPORT_PROOF_LEN) == 0 ? TRANSPORT_OK
	                                                            : TRANSPORT_EAUTH;
}

int transport_random(uint8_t *p, size_t n)
{
	return RAND_bytes(p, (int)n) == 1 ? TRANSPORT_OK : TRANSPORT_EIO;
}

void transport_hello_put(uint8_t *p, const struct transport_hello *h)
{
	tp_put64(p, h->client_id);
	tp_put64(p + 8, h->server_id);
	p[16] = h->purpose;
	memcpy(p + 17, h->nonce, TRANSPORT_NONCE_LEN);
}

int transport_hello_get(const uint8_t *p, size_t len, struct transport_hello *h)
{
	if (len != TRANSPORT_HELLO_LEN)
		return TRANSPORT_EDECODE;
	h->client_id = tp_get64(p);
	h->server_id = tp_get64(p + 8);
	h->purpose = p[16];
	memcpy(h->nonce, p + 17, TRANSPORT_NONCE_LEN);
	if (h->client_id == 0 || h->server_id == 0 ||
	    (h->purpose != TRANSPORT_PURPOSE_MSG && h->purpose != TRANSPORT_PURPOSE_SNAP))
		return TRANSPORT_EDECODE;
	return TRANSPORT_OK;
}
