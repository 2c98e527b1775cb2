# dragonraft build.
#
# The plain-C layers (src/raft, src/logdb, src/transport, src/engine) build
# into $(B)/libdrcore.a with our own flags and are tested, fuzzed and
# benchmarked outside PostgreSQL.  The extension (src/bgworker) builds through
# PGXS in pg.mk and links build/rel/libdrcore.a.
#
# Each module adds itself in its own module.mk (src/*/module.mk,
# test/*/module.mk, bench/module.mk) by appending to the variables below, so
# modules never edit this file to add a source, a test or a benchmark.
#
#   make            build dragonraft.so (and the plain-C library)
#   make check      install dependencies, then every test layer (scripts/check.sh)
#   make demo       local 3-node cluster (scripts/demo.sh)
#   make unit       C unit tests only       make SANITIZE=1 unit: under ASan+UBSan
#   make sim        the deterministic Raft simulator
#   make bench      every benchmark         make fuzz: libFuzzer targets

PG_CONFIG ?= /usr/lib/postgresql/15/bin/pg_config
SANITIZE ?= 0
CC ?= gcc
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 30

# BUILD_DIR lets concurrent developers keep separate object trees.
ifeq ($(SANITIZE),1)
  B := $(or $(BUILD_DIR),build/san)
  SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else
  B := $(or $(BUILD_DIR),build/rel)
  SAN :=
endif
GEN := build/gen

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
ifeq ($(WERROR),1)
  WARN += -Werror
endif
CORE_CFLAGS := -std=gnu11 -O2 -g -fPIC -fvisibility=hidden $(WARN) -Isrc -I$(GEN) -MMD -MP $(SAN)
CORE_LDLIBS := -lrocksdb -luv -lprotobuf-c -lssl -lcrypto -lpthread -lm
TEST_LDLIBS := -lcmocka

# ---- what modules append to ------------------------------------------------
# A module NAME (raft, logdb, transport, engine) says `MODULES += NAME` and
# `NAME_SRCS := ...`; it gets $(B)/lib/libdr_NAME.a, and all modules together
# make $(B)/libdrcore.a, which the extension links.  A test or benchmark lists
# the module archives it needs as prerequisites, dependents first, e.g.
#   $(B)/test/test_engine: $(B)/lib/libdr_engine.a $(B)/lib/libdr_raft.a
MODULES :=
GEN_SRCS :=           # generated sources (e.g. protobuf-c); a module lists them in NAME_SRCS
GEN_HDRS :=           # generated headers; every core object waits for them
TEST_SUPPORT_SRCS :=  # helpers shared by tests and benchmarks (libdrtest.a)
UNIT_TESTS :=         # names NAME of test/unit/NAME.c (cmocka), run by `make unit`
CHECK_STEPS :=        # extra make targets run by `make check` after the unit tests;
                      # each prints one final line "N passed, N failed"
BENCH_STEPS :=        # make targets run by `make bench`
FUZZ_TARGETS :=       # names NAME of test/fuzz/NAME.c (libFuzzer entry point)
PROGRAMS :=           # other binaries `make all-c` builds

.DEFAULT_GOAL := all
# Fuzz targets build in their own object tree; a module.mk lists a target's
# objects as e.g. $(FZ)/fuzz_frame: $(call fuzz_objs,$(transport_SRCS))
FZ := build/fuzz
fuzz_objs = $(patsubst %.c,$(FZ)/obj/%.o,$(1))
# Objects of extra sources a test or benchmark links (each gets its own .d):
#   $(B)/test/test_raft: $(call objs,test/unit/test_raft_fixture.c) $(B)/lib/libdr_raft.a
objs = $(patsubst %.c,$(B)/obj/%.o,$(1))

# Lower layers first, so a module.mk may use the source lists of those below it.
LAYERS := util raft logdb transport engine
include $(wildcard $(patsubst %,src/%/module.mk,$(LAYERS)))
include $(filter-out $(patsubst %,src/%/module.mk,$(LAYERS)),$(sort $(wildcard src/*/module.mk)))
include $(sort $(wildcard test/*/module.mk)) $(wildcard bench/module.mk)

CORE_SRCS := $(foreach m,$(MODULES),$($(m)_SRCS))
CORE_OBJS := $(patsubst %.c,$(B)/obj/%.o,$(CORE_SRCS))
SUPPORT_OBJS := $(patsubst %.c,$(B)/obj/%.o,$(TEST_SUPPORT_SRCS))
UNIT_BINS := $(addprefix $(B)/test/,$(UNIT_TESTS))

.PHONY: all all-c core ext install deps check unit sim bench fuzz fuzz-check demo clean format

all: ext

core: $(B)/libdrcore.a

all-c: core $(UNIT_BINS) $(PROGRAMS)

ext:
	@$(MAKE) --no-print-directory SANITIZE=0 build/rel/libdrcore.a
	@$(MAKE) --no-print-directory -f pg.mk PG_CONFIG=$(PG_CONFIG) WERROR=$(WERROR)

install: ext
	@$(MAKE) --no-print-directory -f pg.mk PG_CONFIG=$(PG_CONFIG) install

deps:
	@bash scripts/install-deps.sh

check:
	@bash scripts/check.sh

demo:
	@bash scripts/demo.sh

# Under ASan+UBSan the engine's chaos scenarios (test_chaos, test_chaos_async)
# run 3 seeds, the plain layer the 6 of their default: over a real LogDB they
# were 70% of the sanitizer layer (test_engine_logdb 302 s, chaos 209 s, on a
# loaded machine), and each seed checks the same things.  ENGINE_CHAOS_SEEDS
# set by hand wins.
ifeq ($(SANITIZE),1)
  ENGINE_CHAOS_SEEDS ?= 3
  export ENGINE_CHAOS_SEEDS
endif

unit: $(UNIT_BINS)
	@bash scripts/run-unit.sh $(UNIT_BINS)

bench: $(BENCH_STEPS)

format:
	clang-format -i $$(git ls-files 'src/*.c' 'src/*.h' 'test/*.c' 'test/*.h' 'bench/*.c' 'bench/*.h')

$(B)/libdrcore.a: $(CORE_OBJS)
	@mkdir -p $(@D)
	@rm -f $@
	ar rcs $@ $^

define module_archive
$(B)/lib/libdr_$(1).a: $(patsubst %.c,$(B)/obj/%.o,$($(1)_SRCS))
	@mkdir -p $$(@D)
	@rm -f $$@
	ar rcs $$@ $$^
endef
$(foreach m,$(MODULES),$(eval $(call module_archive,$(m))))

$(B)/libdrtest.a: $(SUPPORT_OBJS)
	@mkdir -p $(@D)
	@rm -f $@
	ar rcs $@ $^

$(B)/obj/%.o: %.c | $(GEN_HDRS)
	@mkdir -p $(@D)
	$(CC) $(CORE_CFLAGS) -c $< -o $@

# A unit test: test/unit/NAME.c plus the objects and archives its module.mk
# lists as prerequisites.
$(B)/test/%: test/unit/%.c $(B)/libdrtest.a
	@mkdir -p $(@D)
	$(CC) $(CORE_CFLAGS) -o $@ $(filter %.c %.o,$^) $(filter-out $(B)/libdrtest.a,$(filter %.a,$^)) $(B)/libdrtest.a $(TEST_LDLIBS) $(CORE_LDLIBS)

# A benchmark: bench/NAME.c plus the prerequisites its module.mk lists.
$(B)/bench/%: bench/%.c $(B)/libdrtest.a
	@mkdir -p $(@D)
	$(CC) $(CORE_CFLAGS) -o $@ $(filter %.c %.o,$^) $(filter-out $(B)/libdrtest.a,$(filter %.a,$^)) $(B)/libdrtest.a $(CORE_LDLIBS)

# ---- fuzzing: libFuzzer with ASan + UBSan, its own object tree ----------------
FUZZ_CFLAGS := -std=gnu11 -O1 -g -fPIC -Isrc -I$(GEN) -MMD -MP \
	-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer
FUZZ_BINS := $(addprefix $(FZ)/,$(FUZZ_TARGETS))

$(FZ)/obj/%.o: %.c | $(GEN_HDRS)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c $< -o $@

# A fuzz target: test/fuzz/NAME.c plus the $(FZ)/obj/... objects its module.mk
# lists as prerequisites (see fuzz_objs above).
$(FZ)/%: test/fuzz/%.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(filter %.o,$^) $(CORE_LDLIBS)

fuzz: $(FUZZ_BINS)

# Runs every fuzz target FUZZ_SECONDS from its committed corpus (test/fuzz/corpus/NAME).
fuzz-check: $(FUZZ_BINS)
	@bash scripts/run-fuzz.sh $(FUZZ_SECONDS) $(FUZZ_BINS)

print-%:
	@echo $($*)

clean:
	rm -rf build results tmp_check log regression.diffs regression.out
	@$(MAKE) --no-print-directory -f pg.mk PG_CONFIG=$(PG_CONFIG) clean >/dev/null 2>&1 || true

-include $(shell find $(B) $(FZ) -name '*.d' 2>/dev/null)
