# test/sim: the deterministic Raft simulator (dragonraft-sim) and the
# mutation suite.
#
#   make sim               builds test/sim/dragonraft-sim
#   make sim-check         self-test, >= 1,000 seeds over 3 and 5 nodes, reproducibility
#   make sim-san-check     seeds under ASan + UBSan with the core's debug checks (RAFT_DEBUG)
#   make soak              100,000 seeds (SOAK_SEEDS, split over SOAK_JOBS processes)
#
# The simulator compiles src/raft itself, in its own object trees under
# build/sim/VARIANT, so it never races the core's build:
#   rel          the core as written (an impossible state is reported as property "bug")
#   san          ASan + UBSan, RAFT_DEBUG (an impossible state aborts; strict arenas)
#   bug-vote     -DRAFT_PLANT_BUG_VOTE_NO_UPTODATE
#   bug-persist  -DRAFT_PLANT_BUG_LEADER_COUNTS_UNPERSISTED

SIM_DIR := build/sim
SIM_SRCS := test/sim/sim_main.c test/sim/sim_run.c test/sim/sim_node.c test/sim/sim_check.c \
	test/sim/sim_net.c test/sim/sim_store.c test/sim/sim_util.c test/sim/sim_probe.c
SIM_RAFT_SRCS := $(or $(raft_SRCS),$(wildcard src/raft/*.c)) src/util/arena.c
SIM_CFLAGS := -std=gnu11 -O2 -g $(WARN) -Isrc -Itest/sim -MMD -MP
SIM_SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined \
	-DRAFT_DEBUG
SIM_SEEDS3 ?= 600
SIM_SEEDS5 ?= 400
SIM_SAN_SEEDS ?= 60
SIM_BUG_SEEDS ?= 100
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
$(eval $(call sim_variant,bug-vote,-DRAFT_PLANT_BUG_VOTE_NO_UPTODATE))
$(eval $(call sim_variant,bug-persist,-DRAFT_PLANT_BUG_LEADER_COUNTS_UNPERSISTED))
$(eval $(call sim_variant,san,$(SIM_SAN)))

# The simulator's own parts (PRNG, disk, network, each checker) under cmocka.
SIM_SELFTEST_OBJS := $(filter-out %/sim_main.o,$(call sim_objs,rel)) \
	$(SIM_DIR)/rel/obj/test/sim/sim_selftest.o
$(SIM_DIR)/rel/sim-selftest: $(SIM_SELFTEST_OBJS)
	$(CC) -o $@ $^ -lcmocka -lm

test/sim/dragonraft-sim: $(SIM_DIR)/rel/dragonraft-sim
	cp $< $@

sim: test/sim/dragonraft-sim
PROGRAMS += test/sim/dragonraft-sim

.PHONY: sim-check sim-san-check soak
sim-check: test/sim/dragonraft-sim $(SIM_DIR)/rel/sim-selftest \
		$(SIM_DIR)/bug-vote/dragonraft-sim $(SIM_DIR)/bug-persist/dragonraft-sim
	@bash test/sim/sim-check.sh $(SIM_SEEDS3) $(SIM_SEEDS5) $(SIM_BUG_SEEDS)

sim-san-check: $(SIM_DIR)/san/dragonraft-sim
	@bash test/sim/sim-san-check.sh $(SIM_SAN_SEEDS)

soak: test/sim/dragonraft-sim
	@bash test/sim/soak.sh $(SOAK_SEEDS) $(SOAK_JOBS)

CHECK_STEPS += sim-check sim-san-check

-include $(shell find $(SIM_DIR) -name '*.d' 2>/dev/null)
