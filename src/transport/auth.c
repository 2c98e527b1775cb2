/*
 * auth.c - HELLO encoding and the node id of a certificate URI (see auth.h).
 */
#include "transport/auth.h"

#include <string.h>

#include "transport/tp_common.h"

void transport_hello_put(uint8_t *p, const struct transport_hello *h)
{
	tp_put64(p, h->client_id);
	tp_put64(p + 8, h->server_id);
	p[16] = h->purpose;
}

int transport_hello_get(const uint8_t *p, size_t len, struct transport_hello *h)
{
	if (len != TRANSPORT_HELLO_LEN)
		return TRANSPORT_EDECODE;
	h->client_id = tp_get64(p);
	h->server_id = tp_get64(p + 8);
	h->purpose = p[16];
	if (h->client_id == 0 || h->server_id == 0 ||
	    (h->purpose != TRANSPORT_PURPOSE_MSG && h->purpose != TRANSPORT_PURPOSE_SNAP))
		return TRANSPORT_EDECODE;
	return TRANSPORT_OK;
}

int transport_cert_uri_node_id(const char *uri, size_t len, uint64_t *id)
{
	const size_t pl = sizeof(TRANSPORT_CERT_URI_PREFIX) - 1;
	uint64_t v = 0;

	if (len <= pl || len > pl + 20 || memcmp(uri, TRANSPORT_CERT_URI_PREFIX, pl) != 0 ||
	    uri[pl] == '0')
		return TRANSPORT_EDECODE;
	for (size_t i = pl; i < len; i++) {
		unsigned d = (unsigned char)uri[i] - '0';

		if (d > 9 || v > (UINT64_MAX - d) / 10)
			return TRANSPORT_EDECODE;
		v = v * 10 + d;
	}
	*id = v;
	return TRANSPORT_OK;
}
