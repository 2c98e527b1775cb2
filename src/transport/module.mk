# src/transport: libuv TCP transport and the protobuf-c wire schema.
MODULES += transport

# protoc-c generates the schema's C code at build time (not committed).
$(GEN)/transport/raft.pb-c.c $(GEN)/transport/raft.pb-c.h &: src/transport/raft.proto
	@mkdir -p $(GEN)/transport
	protoc-c --proto_path=src --c_out=$(GEN) src/transport/raft.proto
GEN_HDRS += $(GEN)/transport/raft.pb-c.h
GEN_SRCS += $(GEN)/transport/raft.pb-c.c

transport_SRCS := src/transport/tp_common.c src/transport/frame.c \
	src/transport/codec.c src/transport/wire.c src/transport/auth.c src/transport/transport.c src/transport/tp_dial.c \
	src/transport/tp_tls.c \
	src/transport/tp_snap_send.c src/transport/tp_snap_recv.c $(GEN)/transport/raft.pb-c.c

UNIT_TESTS += test_transport_codec test_transport test_transport_snap
$(B)/test/test_transport_codec: $(B)/lib/libdr_transport.a $(B)/lib/libdr_util.a
$(B)/test/test_transport: $(call objs,test/transport/harness.c) $(B)/lib/libdr_transport.a $(B)/lib/libdr_util.a
$(B)/test/test_transport_snap: $(call objs,test/transport/harness.c) $(B)/lib/libdr_transport.a $(B)/lib/libdr_util.a

FUZZ_TARGETS += fuzz_frame fuzz_batch
$(FZ)/fuzz_frame: $(call fuzz_objs,$(transport_SRCS) $(util_SRCS))
$(FZ)/fuzz_batch: $(call fuzz_objs,$(transport_SRCS) $(util_SRCS))

.PHONY: bench-transport
BENCH_STEPS += bench-transport
bench-transport: $(B)/bench/transport_bench
	$(B)/bench/transport_bench
$(B)/bench/transport_bench: $(call objs,test/transport/harness.c) $(B)/lib/libdr_transport.a $(B)/lib/libdr_util.a
