/*
 * fuzz_entry.c - libFuzzer target for the application entry decoders
 * (src/entry): entry payloads come from the Raft log, written by other
 * nodes.  No input may crash, and an entry that decodes must encode back to
 * the same bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "entry/entry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct entry_member_info mi;
	struct entry_header h;
	uint8_t *copy, *again;
	size_t len;

	/* A copy of exactly size bytes: ASan sees any read past the end. */
	copy = malloc(size ? size : 1);
	if (copy == NULL)
		return 0;
	memcpy(copy, data, size);
	if (entry_decode_header(copy, size, &h) == ENTRY_OK && h.type == ENTRY_MEMBER_INFO &&
	    entry_decode_member_info(&h, &mi) == ENTRY_OK) {
		again = malloc(size);
		if (again == NULL || entry_encode_member_info(again, size, &mi, &len) != ENTRY_OK ||
		    len != size || memcmp(again, copy, size) != 0)
			__builtin_trap();
		free(again);
	}
	free(copy);
	return 0;
}
