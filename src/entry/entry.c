/*
 * entry.c - encoders and decoders of dragonraft's application entries (see
 * entry.h for the format).
 */
#include <string.h>

#include "entry/entry.h"

const char *entry_strerror(int rc)
{
	switch (rc) {
	case ENTRY_OK:
		return "ok";
	case ENTRY_ERR_SHORT:
		return "entry is truncated";
	case ENTRY_ERR_VERSION:
		return "entry has an unknown format version";
	case ENTRY_ERR_TYPE:
		return "entry has an unknown type";
	case ENTRY_ERR_FORMAT:
		return "entry is malformed";
	case ENTRY_ERR_SPACE:
		return "buffer too small for the entry";
	}
	return "unknown error";
}

const char *entry_type_name(unsigned type)
{
	switch (type) {
	case ENTRY_MEMBER_INFO:
		return "member info";
	}
	return NULL;
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_header(uint8_t *p, unsigned type)
{
	p[0] = ENTRY_VERSION;
	p[1] = (uint8_t)type;
	p[2] = 0;
	p[3] = 0;
}

int entry_decode_header(const uint8_t *p, size_t len, struct entry_header *out)
{
	if (len < ENTRY_HEADER_BYTES)
		return ENTRY_ERR_SHORT;
	if (p[0] != ENTRY_VERSION)
		return ENTRY_ERR_VERSION;
	if (p[2] != 0 || p[3] != 0)
		return ENTRY_ERR_FORMAT;
	if (entry_type_name(p[1]) == NULL)
		return ENTRY_ERR_TYPE;
	out->version = p[0];
	out->type = p[1];
	out->body = p + ENTRY_HEADER_BYTES;
	out->body_len = len - ENTRY_HEADER_BYTES;
	return ENTRY_OK;
}

/* A client address is printable ASCII: it is shown in views and error messages. */
static int check_client_addr(const char *a, size_t len)
{
	if (len == 0 || len > ENTRY_CLIENT_ADDR_MAX)
		return ENTRY_ERR_FORMAT;
	for (size_t i = 0; i < len; i++)
		if (a[i] < 0x20 || a[i] > 0x7e)
			return ENTRY_ERR_FORMAT;
	return ENTRY_OK;
}

size_t entry_member_info_size(size_t addr_len)
{
	return ENTRY_HEADER_BYTES + 4 + 2 + addr_len;
}

int entry_encode_member_info(uint8_t *buf, size_t cap, const struct entry_member_info *mi,
                             size_t *len)
{
	size_t n = entry_member_info_size(mi->client_addr_len);
	int rc;

	*len = 0;
	if (mi->node_id == 0)
		return ENTRY_ERR_FORMAT;
	rc = check_client_addr(mi->client_addr, mi->client_addr_len);
	if (rc != ENTRY_OK)
		return rc;
	if (cap < n)
		return ENTRY_ERR_SPACE;
	put_header(buf, ENTRY_MEMBER_INFO);
	put32(buf + 4, mi->node_id);
	put16(buf + 8, mi->client_addr_len);
	memcpy(buf + 10, mi->client_addr, mi->client_addr_len);
	*len = n;
	return ENTRY_OK;
}

int entry_decode_member_info(const struct entry_header *h, struct entry_member_info *out)
{
	const uint8_t *b = h->body;
	size_t alen;

	if (h->type != ENTRY_MEMBER_INFO)
		return ENTRY_ERR_TYPE;
	if (h->body_len < 6)
		return ENTRY_ERR_SHORT;
	out->node_id = get32(b);
	out->client_addr_len = get16(b + 4);
	out->client_addr = (const char *)b + 6;
	alen = out->client_addr_len;
	if (h->body_len < 6 + alen)
		return ENTRY_ERR_SHORT;
	if (h->body_len > 6 + alen || out->node_id == 0)
		return ENTRY_ERR_FORMAT;
	return check_client_addr(out->client_addr, alen);
}
