/*
 * fuzz_batch.c - libFuzzer target for protobuf decode plus conversion to raft
 * structs (MessageBatch, SnapshotHeader, HardState, ConfChange).  Whatever
 * decodes must pass the bounds checks and survive an encode/decode round trip,
 * and whatever the zero-copy decoder accepts, protobuf-c's unpack must decode
 * to the same messages.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "transport/codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct transport_arena a, a2, a3;
	struct transport_encoder enc = {0};
	struct transport_buf b = {0};
	struct raft_message *msgs, *again, *ref;
	struct transport_snapshot_header sh;
	struct raft_hard_state hs;
	struct raft_conf_change cc;
	size_t n, n2, n3;

	transport_arena_init(&a, 2 * size + (1u << 20));
	if (transport_decode_batch(&a, data, size, &msgs, &n) == TRANSPORT_OK) {
		for (size_t i = 0; i < n; i++)
			if (transport_message_check(&msgs[i]) != TRANSPORT_OK)
				__builtin_trap();
		if (transport_encode_batch(&enc, msgs, n, &b) != TRANSPORT_OK)
			__builtin_trap();
		transport_arena_init(&a2, 4 * b.len + (1u << 20));
		if (transport_decode_batch(&a2, b.p, b.len, &again, &n2) != TRANSPORT_OK || n2 != n)
			__builtin_trap();
		for (size_t i = 0; i < n; i++) {
			if (again[i].type != msgs[i].type || again[i].context != msgs[i].context ||
			    again[i].n_entries != msgs[i].n_entries)
				__builtin_trap();
			for (uint32_t k = 0; k < msgs[i].n_entries; k++)
				if (again[i].entries[k].len != msgs[i].entries[k].len ||
				    (msgs[i].entries[k].len > 0 &&
				     memcmp(again[i].entries[k].data, msgs[i].entries[k].data,
				            msgs[i].entries[k].len) != 0))
					__builtin_trap();
		}
		transport_arena_free(&a2);
		transport_arena_init(&a3, 64 * size + (1u << 20));
		if (transport_decode_batch_pbc(&a3, data, size, &ref, &n3) != TRANSPORT_OK ||
		    n3 != n)
			__builtin_trap();
		for (size_t i = 0; i < n; i++) {
			const struct raft_message *x = &msgs[i], *y = &ref[i];

			if (x->type != y->type || x->flags != y->flags ||
			    x->group_id != y->group_id || x->from != y->from || x->to != y->to ||
			    x->term != y->term || x->log_term != y->log_term ||
			    x->index != y->index || x->commit != y->commit ||
			    x->reject != y->reject || x->reject_hint != y->reject_hint ||
			    x->hint_term != y->hint_term || x->context != y->context ||
			    x->n_entries != y->n_entries ||
			    (x->snapshot == NULL) != (y->snapshot == NULL))
				__builtin_trap();
			if (x->snapshot != NULL &&
			    memcmp(x->snapshot, y->snapshot, sizeof(*x->snapshot)) != 0)
				__builtin_trap();
			for (uint32_t k = 0; k < x->n_entries; k++) {
				const struct raft_entry *e = &x->entries[k], *f = &y->entries[k];
				if (e->term != f->term || e->index != f->index ||
				    e->type != f->type || e->len != f->len ||
				    (e->len > 0 && memcmp(e->data, f->data, e->len) != 0))
					__builtin_trap();
			}
		}
		transport_arena_free(&a3);
	}
	transport_arena_reset(&a);
	a.limit = 64 << 10; /* as for SNAP_BEGIN */
	(void)transport_decode_snapshot_header(&a, data, size, &sh);
	a.limit = 2 * size + (1 << 20);
	(void)transport_decode_hard_state(data, size, &hs);
	(void)transport_decode_conf_change(&a, data, size, &cc);
	transport_arena_free(&a);
	transport_buf_free(&b);
	transport_encoder_free(&enc);
	return 0;
}
