/*
 * fuzz_entry.c - libFuzzer target for the application entry decoders
 * (src/entry): entry payloads come from the Raft log, written by other
 * nodes.  No input may crash, an accepted change set or registration can be
 * walked to its end, and an entry that decodes must encode back to the same
 * bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "entry/entry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void same_or_trap(const struct entry_buf *b, const uint8_t *want, size_t size)
{
	if (b->failed || b->len != size || memcmp(b->data, want, size) != 0)
		__builtin_trap();
}

static char *dup_name(const char *p, size_t len)
{
	char *s = malloc(len + 1);

	if (s == NULL)
		abort();
	memcpy(s, p, len);
	s[len] = '\0';
	return s;
}

/* Walk every section of an accepted change set and encode it again. */
/* registration: 0 a change set, 1 a registration, 2 one sent again;
 * encoding: the header's (-1: not said). */
static void change_set(const struct entry_change_set *cs, int registration, int encoding,
                       const uint8_t *in, size_t size)
{
	struct entry_table_in *tables = calloc(cs->n_tables + 1, sizeof(*tables));
	struct entry_seq *seqs = calloc(cs->n_seqs + 1, sizeof(*seqs));
	struct entry_register_in reg;
	struct entry_buf out = {0};
	struct entry_reader r;
	char *schema = NULL, *name = NULL, *def = NULL, *extras = NULL;

	if (tables == NULL || seqs == NULL)
		abort();
	r = cs->tables;
	for (uint32_t i = 0; i < cs->n_tables; i++) {
		struct entry_table t;
		char **cols;

		if (entry_next_table(&r, &t) != ENTRY_OK)
			__builtin_trap();
		cols = calloc(t.n_cols + 1, sizeof(char *));
		if (cols == NULL)
			abort();
		for (unsigned c = 0; c < t.n_cols; c++) {
			const char *n;
			uint16_t len;

			if (entry_next_name(&t.cols, &n, &len) != ENTRY_OK)
				__builtin_trap();
			cols[c] = dup_name(n, len);
		}
		tables[i].table_id = t.table_id;
		tables[i].n_cols = t.n_cols;
		tables[i].cols = (const char *const *)cols;
	}
	r = cs->seqs;
	for (uint32_t i = 0; i < cs->n_seqs; i++)
		if (entry_next_seq(&r, &seqs[i]) != ENTRY_OK)
			__builtin_trap();
	r = cs->ops;
	for (uint32_t i = 0; i < cs->n_ops; i++) {
		struct entry_op op;
		struct entry_tuple *tu[2];

		if (entry_next_op(&r, &op) != ENTRY_OK)
			__builtin_trap();
		tu[0] = op.has_old ? &op.old_tuple : NULL;
		tu[1] = op.kind == ENTRY_OP_INSERT || op.kind == ENTRY_OP_UPDATE ? &op.new_tuple
		                                                                 : NULL;
		for (int k = 0; k < 2; k++)
			for (unsigned c = 0; tu[k] != NULL && c < tu[k]->n_cols; c++) {
				const uint8_t *d;
				uint32_t len;
				unsigned kind;

				if (entry_next_value(&tu[k]->values, &kind, &d, &len) != ENTRY_OK)
					__builtin_trap();
			}
	}
	if (registration) {
		reg.schema = schema = dup_name(cs->schema, cs->schema_len);
		reg.name = name = dup_name(cs->name, cs->name_len);
		reg.def = def = dup_name(cs->def, cs->def_len);
		reg.resend = registration > 1;
		reg.extras = extras =
		        cs->extras != NULL ? dup_name(cs->extras, cs->extras_len) : NULL;
	}
	/* A registration's definition is any text: longer than a name is fine. */
	if (entry_encode_change_set(&out, &cs->owner, cs->schema_index, registration ? &reg : NULL,
	                            tables, cs->n_tables, seqs, cs->n_seqs, cs->ops.p,
	                            (size_t)(cs->ops.end - cs->ops.p), cs->n_ops) != ENTRY_OK ||
	    (encoding >= 0 && entry_set_encoding(out.data, out.len, encoding) != ENTRY_OK))
		__builtin_trap();
	if (in != NULL)
		same_or_trap(&out, in, size);
	free(out.data);
	for (uint32_t i = 0; i < cs->n_tables; i++) {
		for (unsigned c = 0; c < tables[i].n_cols; c++)
			free((char *)tables[i].cols[c]);
		free((char **)tables[i].cols);
	}
	free(tables);
	free(seqs);
	free(schema);
	free(name);
	free(def);
	free(extras);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct entry_member_info mi;
	struct entry_address addrs[ENTRY_ADDRESSES_MAX];
	struct entry_change_set cs;
	struct entry_ddl ddl;
	struct entry_header h;
	uint8_t *copy, *again;
	size_t len;

	/* A copy of exactly size bytes: ASan sees any read past the end. */
	copy = malloc(size ? size : 1);
	if (copy == NULL)
		return 0;
	memcpy(copy, data, size);
	if (entry_decode_header(copy, size, &h) != ENTRY_OK) {
		free(copy);
		return 0;
	}
	if (entry_is_member_info(h.type) && entry_decode_member_info(&h, &mi) == ENTRY_OK) {
		again = malloc(size);
		if (again == NULL ||
		    (h.type == ENTRY_MEMBER_INFO
		             ? entry_encode_member_info(again, size, &mi, &len)
		             : entry_encode_member_info_v1(again, size, &mi, &len)) != ENTRY_OK ||
		    len != size || memcmp(again, copy, size) != 0)
			__builtin_trap();
		free(again);
	} else if (entry_is_addresses(h.type) &&
	           entry_decode_addresses(&h, addrs, &len) == ENTRY_OK) {
		size_t n = len;
		int rc;

		again = malloc(size);
		if (again == NULL)
			__builtin_trap();
		rc = h.type == ENTRY_ADDRESSES
		             ? entry_encode_addresses(again, size, addrs, n, &len)
		             : entry_encode_addresses_v1(again, size, addrs, n, &len);
		if (rc != ENTRY_OK || len != size || memcmp(again, copy, size) != 0)
			__builtin_trap();
		free(again);
	} else if (h.type == ENTRY_CHANGE_SET && entry_decode_change_set(&h, &cs) == ENTRY_OK) {
		change_set(&cs, 0, h.encoding, copy, size);
	} else if ((h.type == ENTRY_REGISTER_TABLE || h.type == ENTRY_RESEND_TABLE ||
	            h.type == ENTRY_REGISTER_TABLE_V2 || h.type == ENTRY_REGISTER_TABLE_V1 ||
	            h.type == ENTRY_RESEND_TABLE_V1) &&
	           entry_decode_register(&h, &cs) == ENTRY_OK) {
		/* No encoder writes the types of older builds: walked, not compared. */
		change_set(&cs,
		           h.type == ENTRY_RESEND_TABLE || h.type == ENTRY_RESEND_TABLE_V1 ? 2 : 1,
		           h.encoding,
		           h.type == ENTRY_REGISTER_TABLE || h.type == ENTRY_RESEND_TABLE ? copy
		                                                                          : NULL,
		           size);
	} else if (entry_is_ddl(h.type) && entry_decode_ddl(&h, &ddl) == ENTRY_OK) {
		/* (all still encoded: an ENTRY_DDL_V2 without has_schema_index, an
		 * ENTRY_DDL_V1 when search_path is NULL too) */
		struct entry_buf out = {0};

		if (entry_encode_ddl(&out, &ddl) != ENTRY_OK ||
		    (h.encoding >= 0 &&
		     entry_set_encoding(out.data, out.len, h.encoding) != ENTRY_OK))
			__builtin_trap();
		same_or_trap(&out, copy, size);
		free(out.data);
	}
	free(copy);
	return 0;
}
