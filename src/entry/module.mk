# src/entry: the encoding of dragonraft's application entries (entry.h), the
# one place that knows their bytes; plain C so that the decoder is fuzzed.
MODULES += entry
entry_SRCS := src/entry/entry.c

UNIT_TESTS += test_entry
$(B)/test/test_entry: $(B)/lib/libdr_entry.a

FUZZ_TARGETS += fuzz_entry
$(FZ)/fuzz_entry: $(call fuzz_objs,$(entry_SRCS))
