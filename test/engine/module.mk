# test/engine: dr-node (one engine per process, node.c) and the multi-process
# tests and benchmark that drive it (issue 6).
#
#   make BUILD_DIR=build/dev-procs engine-procs-check   the multi-process test
#   make BUILD_DIR=build/dev-procs bench-engine         the loopback benchmark
#   make bench-idle                                     idle groups: CPU, RSS, creation

NODE_CLIENT_OBJS := $(call objs,test/engine/node_client.c)

PROGRAMS += $(B)/test/dr-node
$(B)/test/dr-node: $(call objs,test/engine/node.c test/engine/file_sm.c test/engine/kv_sm.c) \
	$(B)/lib/libdr_engine.a $(B)/lib/libdr_logdb.a $(B)/lib/libdr_transport.a \
	$(B)/lib/libdr_raft.a $(B)/lib/libdr_util.a
	@mkdir -p $(@D)
	$(CC) $(CORE_CFLAGS) -o $@ $(filter %.o,$^) $(filter %.a,$^) $(CORE_LDLIBS)

PROGRAMS += $(B)/test/dr-procs-test
$(B)/test/dr-procs-test: $(call objs,test/engine/procs_test.c test/engine/file_sm.c) \
	$(NODE_CLIENT_OBJS) $(B)/lib/libdr_util.a
	@mkdir -p $(@D)
	$(CC) $(CORE_CFLAGS) -o $@ $(filter %.o,$^) $(filter %.a,$^) $(CORE_LDLIBS)

# The storage fault test: dr-node over a preloaded shim that fills the disk or
# fails an fsync (built without sanitizers: it is preloaded into dr-node).
$(B)/test/libdr_faultfs.so: test/engine/faultfs.c
	@mkdir -p $(@D)
	$(CC) -shared -fPIC -O2 -g $(WARN) -o $@ $< -ldl

PROGRAMS += $(B)/test/dr-fault-test $(B)/test/libdr_faultfs.so
$(B)/test/dr-fault-test: $(call objs,test/engine/fault_test.c test/engine/file_sm.c) \
	$(NODE_CLIENT_OBJS) $(B)/lib/libdr_util.a
	@mkdir -p $(@D)
	$(CC) $(CORE_CFLAGS) -o $@ $(filter %.o,$^) $(filter %.a,$^) $(CORE_LDLIBS)

.PHONY: engine-fault-check
CHECK_STEPS += engine-fault-check
engine-fault-check: $(B)/test/dr-fault-test $(B)/test/dr-node $(B)/test/libdr_faultfs.so
	$(B)/test/dr-fault-test $(B)/test/dr-node $(abspath $(B)/test/libdr_faultfs.so)

# The processes talk mutual TLS: a cluster CA and certificates for nodes 1..4.
PROCS_CERTS := $(B)/test/procs-certs
$(PROCS_CERTS)/node4.crt: scripts/make-certs.sh
	bash scripts/make-certs.sh $(PROCS_CERTS) 4 >/dev/null

.PHONY: engine-procs-check
CHECK_STEPS += engine-procs-check
engine-procs-check: $(B)/test/dr-procs-test $(B)/test/dr-node $(PROCS_CERTS)/node4.crt
	DRNODE_TLS_DIR=$(abspath $(PROCS_CERTS)) $(B)/test/dr-procs-test $(B)/test/dr-node

$(B)/bench/engine_bench: $(NODE_CLIENT_OBJS)
$(B)/bench/idle_bench: $(NODE_CLIENT_OBJS)

.PHONY: bench-engine
BENCH_STEPS += bench-engine
bench-engine: $(B)/bench/engine_bench $(B)/test/dr-node
	$(B)/bench/engine_bench $(B)/test/dr-node

# What idle groups cost: 3 dr-node processes, 1,000 then 10,000 groups, 60 s idle.
.PHONY: bench-idle
BENCH_STEPS += bench-idle
bench-idle: $(B)/bench/idle_bench $(B)/test/dr-node
	$(B)/bench/idle_bench $(B)/test/dr-node
