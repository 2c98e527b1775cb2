# src/engine: the multi-group engine (NodeHost) over storage/network/state
# machine ops; test/engine holds its in-memory fakes.
MODULES += engine
engine_SRCS := src/engine/engine.c src/engine/logview.c src/engine/addrbook.c src/engine/client.c \
	src/engine/round.c src/engine/snapshot.c src/engine/pending.c src/engine/cache.c \
	src/engine/engine_logdb.c src/engine/engine_uv.c src/engine/logdigest.c \
	src/engine/loglimit.c

ENGINE_FAKES := $(call objs,test/engine/fake_storage.c test/engine/fake_net.c \
	test/engine/kv_sm.c test/engine/cluster.c)

UNIT_TESTS += test_engine
$(B)/test/test_engine: $(ENGINE_FAKES) $(B)/lib/libdr_engine.a $(B)/lib/libdr_raft.a $(B)/lib/libdr_util.a

# The same scenarios over a real LogDB.
UNIT_TESTS += test_engine_logdb
$(B)/test/test_engine_logdb: $(ENGINE_FAKES) $(B)/lib/libdr_engine.a $(B)/lib/libdr_logdb.a \
	$(B)/lib/libdr_raft.a $(B)/lib/libdr_util.a

# Both again with deferred leader syncs (engine_config.defer_leader_sync).
UNIT_TESTS += test_engine_defer test_engine_logdb_defer
$(B)/test/test_engine_defer: $(ENGINE_FAKES) $(B)/lib/libdr_engine.a $(B)/lib/libdr_raft.a $(B)/lib/libdr_util.a
$(B)/test/test_engine_logdb_defer: $(ENGINE_FAKES) $(B)/lib/libdr_engine.a $(B)/lib/libdr_logdb.a \
	$(B)/lib/libdr_raft.a $(B)/lib/libdr_util.a

# engine_uv's rate limit of repeated log lines.
UNIT_TESTS += test_loglimit
$(B)/test/test_loglimit: $(B)/lib/libdr_engine.a

# Engines over the real TCP transport on loopback, driven by engine_uv.
UNIT_TESTS += test_engine_uv
$(B)/test/test_engine_uv: $(call objs,test/engine/fake_storage.c test/engine/kv_sm.c) $(B)/lib/libdr_engine.a \
	$(B)/lib/libdr_transport.a $(B)/lib/libdr_raft.a $(B)/lib/libdr_util.a

# In-process benchmark of the engine path alone (3 engines in one process, fake
# network; fake storage and LogDB).  The multi-process loopback benchmark is
# bench/engine_bench (test/engine/module.mk).
$(B)/bench/engine_inproc_bench: test/engine/engine_inproc_bench.c $(ENGINE_FAKES) $(B)/lib/libdr_engine.a $(B)/lib/libdr_logdb.a $(B)/lib/libdr_raft.a $(B)/lib/libdr_util.a
	@mkdir -p $(@D)
	$(CC) $(CORE_CFLAGS) -o $@ $(filter %.c %.o,$^) $(filter %.a,$^) $(CORE_LDLIBS)

.PHONY: bench-engine-inproc
BENCH_STEPS += bench-engine-inproc
bench-engine-inproc: $(B)/bench/engine_inproc_bench
	$(B)/bench/engine_inproc_bench
