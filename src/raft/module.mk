# src/raft: the pure-C Raft protocol core (one struct raft per group); uses src/util's arena.
MODULES += raft
raft_SRCS := src/raft/raft.c src/raft/log.c src/raft/progress.c src/raft/election.c \
	src/raft/replication.c src/raft/readindex.c src/raft/transfer.c \
	src/raft/membership.c src/raft/snapshot.c src/raft/quiesce.c src/raft/ready.c \
	src/raft/raft_memstorage.c

# Debug checks (RAFT_DEBUG: an impossible state aborts, arenas free every block
# on reset) in the sanitizer build and the fuzz target; the simulator's
# sanitizer build sets it for its own copy of the core (test/sim/module.mk).
ifeq ($(SANITIZE),1)
  CORE_CFLAGS += -DRAFT_DEBUG
endif
$(FZ)/obj/src/raft/%.o: FUZZ_CFLAGS += -DRAFT_DEBUG

UNIT_TESTS += test_raft test_raft_paper test_raft_quiesce test_raft_errors
RAFT_TEST_DEPS := $(call objs,test/unit/test_raft_fixture.c) $(B)/lib/libdr_raft.a $(B)/lib/libdr_util.a
$(B)/test/test_raft: $(RAFT_TEST_DEPS)
$(B)/test/test_raft_paper: $(RAFT_TEST_DEPS)
$(B)/test/test_raft_quiesce: $(RAFT_TEST_DEPS)
$(B)/test/test_raft_errors: $(RAFT_TEST_DEPS)
$(B)/bench/raft_bench: $(B)/lib/libdr_raft.a $(B)/lib/libdr_util.a

.PHONY: bench-raft
BENCH_STEPS += bench-raft
bench-raft: $(B)/bench/raft_bench
	$(B)/bench/raft_bench

# Fuzz target: forged messages, ticks, proposals and conf change decoding.
FUZZ_TARGETS += fuzz_raft_step
$(FZ)/fuzz_raft_step: $(call fuzz_objs,$(raft_SRCS) src/util/arena.c)
