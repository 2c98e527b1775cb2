# src/logdb: the LogDB on RocksDB's C API (DESIGN §7).
MODULES += logdb
logdb_SRCS := src/logdb/logdb_codec.c src/logdb/logdb.c \
	src/logdb/logdb_write.c src/logdb/logdb_read.c src/logdb/logdb_journal.c

UNIT_TESTS += test_logdb
$(B)/test/test_logdb: $(B)/lib/libdr_logdb.a $(B)/lib/libdr_util.a

# Damage to the journal that is not a torn tail fails the open.
UNIT_TESTS += test_logdb_journal
$(B)/test/test_logdb_journal: $(B)/lib/libdr_logdb.a $(B)/lib/libdr_util.a

# Crash test: SIGKILL a writing child at random moments, check what survives.
$(B)/test/test_logdb_crash: $(B)/lib/libdr_logdb.a $(B)/lib/libdr_util.a
.PHONY: logdb-crash-check
logdb-crash-check: $(B)/test/test_logdb_crash
	@$(B)/test/test_logdb_crash 60
CHECK_STEPS += logdb-crash-check

# Benchmark: synced LogDB writes beside raw write+fdatasync on the same disk.
$(B)/bench/logdb_bench: $(B)/lib/libdr_logdb.a $(B)/lib/libdr_util.a
.PHONY: bench-logdb
bench-logdb: $(B)/bench/logdb_bench
	@$(B)/bench/logdb_bench
BENCH_STEPS += bench-logdb

# Fuzz target for the on-disk value decoders.
FUZZ_TARGETS += fuzz_logdb_value
$(FZ)/fuzz_logdb_value: $(call fuzz_objs,$(logdb_SRCS) $(util_SRCS))

# Fuzz target for the journal's record reader.
FUZZ_TARGETS += fuzz_logdb_journal
$(FZ)/fuzz_logdb_journal: $(call fuzz_objs,$(logdb_SRCS) $(util_SRCS))
