# test/sim: the deterministic Raft simulator (dragonraft-sim) and the
# mutation suite.
#
#   make sim               builds test/sim/dragonraft-sim
#   make sim-check         self-test, >= 1,000 seeds over 3 and 5 nodes, reproducibility
#   make sim-san-check     seeds under ASan + UBSan with the core's debug checks (RAFT_DEBUG)
#   make sim-mutants       every mutant against 2,000 seeds (SIM_MUTANT_SEEDS): how many catch it
#   make sim-mutants-check every mutant caught within SIM_MUTANT_CHECK_SEEDS seeds (stops at the first)
#   make soak              100,000 seeds (SOAK_SEEDS, split over SOAK_JOBS processes)
#
# The simulator compiles src/raft itself, in its own object trees under
# build/sim/VARIANT, so it never races the core's build:
#   rel          the core as written (an impossible state is reported as property "bug")
#   san          ASan + UBSan, RAFT_DEBUG (an impossible state aborts; strict arenas)
#   mut/NAME     test/sim/mutants/NAME.patch applied to a copy of src/raft

SIM_DIR := build/sim
SIM_SRCS := test/sim/sim_main.c test/sim/sim_run.c test/sim/sim_node.c test/sim/sim_check.c \
	test/sim/sim_net.c test/sim/sim_store.c test/sim/sim_util.c test/sim/sim_probe.c
SIM_RAFT_SRCS := $(or $(raft_SRCS),$(wildcard src/raft/*.c)) src/util/arena.c
SIM_CFLAGS := -std=gnu11 -O2 -g $(WARN) -Isrc -Itest/sim -MMD -MP
SIM_SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined \
	-DRAFT_DEBUG
SIM_SEEDS3 ?= 600
SIM_SEEDS5 ?= 400
SIM_SAN_SEEDS ?= 150
SIM_MUTANT_SEEDS ?= 2000
SIM_MUTANT_CHECK_SEEDS ?= 2000
SOAK_SEEDS ?= 100000
SOAK_JOBS ?= 2

sim_objs = $(patsubst %.c,$(SIM_DIR)/$(1)/obj/%.o,$(SIM_SRCS) $(SIM_RAFT_SRCS))

define sim_variant
$(SIM_DIR)/$(1)/obj/%.o: %.c
	@mkdir -p $$(@D)
	$(CC) $(SIM_CFLAGS) $(2) -c $$< -o $$@

$(SIM_DIR)/$(1)/dragonraft-sim: $(call sim_objs,$(1))
	@mkdir -p $$(@D)
	$(CC) $(2) -o $$@ $$^ -lm
endef
$(eval $(call sim_variant,rel,))
$(eval $(call sim_variant,san,$(SIM_SAN)))

# Mutants: the simulator's own objects (rel) linked with a patched copy of
# the core.  A patch names the rule it breaks in its header.  Only the files
# a patch changes are compiled again (the whole core and the transcript
# runner when it changes a header); the rest are the rel variant's objects.
SIM_MUTANTS := $(sort $(basename $(notdir $(wildcard test/sim/mutants/*.patch))))
SIM_HARNESS_OBJS := $(patsubst %.c,$(SIM_DIR)/rel/obj/%.o,$(SIM_SRCS) src/util/arena.c)
SIM_CORE_ALL := $(filter src/raft/%,$(SIM_RAFT_SRCS))
SIM_CORE_SRCS := $(filter-out %/raft_memstorage.c,$(SIM_CORE_ALL))
SIM_SCRIPT_SRCS := test/raft/raft_script.c test/unit/test_raft_fixture.c
SIM_SCRIPT_OBJS := $(patsubst %.c,$(SIM_DIR)/script/%.o,$(SIM_SCRIPT_SRCS))
SIM_MUT_CFLAGS := $(filter-out -MMD -MP,$(SIM_CFLAGS))

$(SIM_DIR)/script/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(SIM_CFLAGS) -Itest/unit -c $< -o $@

# the files patch $(1) changes; those of them mutant $(1) compiles (.c, or every core file)
sim_mut_patched = $(shell sed -n 's|^+++ b/\(src/raft/[^[:space:]]*\).*|\1|p' test/sim/mutants/$(1).patch)
sim_mut_srcs = $(if $(filter %.h,$(2)),$(SIM_CORE_ALL),$(filter %.c,$(2)))
# mutant $(1)'s objects for sources $(2), compiling $(3)
sim_mut_objs = $(foreach f,$(2),$(if $(filter $(f),$(3)),$(SIM_DIR)/mut/$(1)/obj/$(notdir $(f:.c=.o)),$(SIM_DIR)/rel/obj/$(f:.c=.o)))
define sim_mutant_body
$(SIM_DIR)/mut/$(1)/dragonraft-sim: test/sim/mutants/$(1).patch $(wildcard src/raft/*.c src/raft/*.h) \
		$(SIM_HARNESS_OBJS) $(patsubst %.c,$(SIM_DIR)/rel/obj/%.o,$(SIM_CORE_ALL)) \
		$(if $(filter %.h,$(2)),$(SIM_SCRIPT_SRCS),$(SIM_SCRIPT_OBJS))
	@rm -rf $(SIM_DIR)/mut/$(1) && mkdir -p $(SIM_DIR)/mut/$(1)/src $(SIM_DIR)/mut/$(1)/obj
	@cp -r src/raft $(SIM_DIR)/mut/$(1)/src/
	@patch -s -p1 -d $(SIM_DIR)/mut/$(1) < test/sim/mutants/$(1).patch
	$(foreach f,$(3),$(CC) -I$(SIM_DIR)/mut/$(1)/src $(SIM_MUT_CFLAGS) -c $(SIM_DIR)/mut/$(1)/$(f) \
		-o $(SIM_DIR)/mut/$(1)/obj/$(notdir $(f:.c=.o)) &&) true
	$(CC) -o $$@ $(call sim_mut_objs,$(1),$(SIM_CORE_SRCS),$(3)) $(SIM_HARNESS_OBJS) -lm
	$(CC) -o $(SIM_DIR)/mut/$(1)/raft-script $(call sim_mut_objs,$(1),$(SIM_CORE_ALL),$(3)) \
		$(SIM_DIR)/rel/obj/src/util/arena.o \
		$(if $(filter %.h,$(2)),-I$(SIM_DIR)/mut/$(1)/src $(SIM_MUT_CFLAGS) -Itest/unit $(SIM_SCRIPT_SRCS),$(SIM_SCRIPT_OBJS))
endef
sim_mutant = $(call sim_mutant_body,$(1),$(call sim_mut_patched,$(1)),$(call sim_mut_srcs,$(1),$(call sim_mut_patched,$(1))))
$(foreach m,$(SIM_MUTANTS),$(eval $(call sim_mutant,$(m))))
SIM_MUTANT_BINS := $(patsubst %,$(SIM_DIR)/mut/%/dragonraft-sim,$(SIM_MUTANTS))

# The simulator's own parts (PRNG, disk, network, each checker) under cmocka.
SIM_SELFTEST_OBJS := $(filter-out %/sim_main.o,$(call sim_objs,rel)) \
	$(SIM_DIR)/rel/obj/test/sim/sim_selftest.o
$(SIM_DIR)/rel/sim-selftest: $(SIM_SELFTEST_OBJS)
	$(CC) -o $@ $^ -lcmocka -lm

test/sim/dragonraft-sim: $(SIM_DIR)/rel/dragonraft-sim
	cp $< $@

sim: test/sim/dragonraft-sim
PROGRAMS += test/sim/dragonraft-sim

.PHONY: sim-check sim-san-check sim-mutants sim-mutants-check soak
sim-check: test/sim/dragonraft-sim $(SIM_DIR)/rel/sim-selftest
	@bash test/sim/sim-check.sh $(SIM_SEEDS3) $(SIM_SEEDS5)

sim-san-check: $(SIM_DIR)/san/dragonraft-sim
	@bash test/sim/sim-san-check.sh $(SIM_SAN_SEEDS)

sim-mutants: $(SIM_MUTANT_BINS)
	@bash test/sim/mutants.sh full $(SIM_MUTANT_SEEDS) 2

sim-mutants-check: $(SIM_MUTANT_BINS)
	@bash test/sim/mutants.sh check $(SIM_MUTANT_CHECK_SEEDS) 2

soak: test/sim/dragonraft-sim
	@bash test/sim/soak.sh $(SOAK_SEEDS) $(SOAK_JOBS)

CHECK_STEPS += sim-check sim-san-check sim-mutants-check

-include $(shell find $(SIM_DIR) -name '*.d' 2>/dev/null)
