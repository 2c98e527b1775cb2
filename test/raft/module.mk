# test/raft: scripted tests of the Raft core, after etcd raft's interaction
# tests: each test/raft/testdata/*.txt transcript is a list of commands and
# the output each must produce (test/raft/raft_script.c says which commands).
#
#   make raft-script-check     run every transcript (part of make check)
#   make raft-script-rewrite   write the current outputs into the transcripts
#                              (review the diff before committing it)
RAFT_SCRIPTS := $(sort $(wildcard test/raft/testdata/*.txt))

$(B)/test/raft-script: test/raft/raft_script.c $(call objs,test/unit/test_raft_fixture.c) \
		$(B)/lib/libdr_raft.a $(B)/lib/libdr_util.a
	@mkdir -p $(@D)
	$(CC) $(CORE_CFLAGS) -Itest/unit -o $@ $(filter %.c %.o %.a,$^)

.PHONY: raft-script-check raft-script-rewrite
raft-script-check: $(B)/test/raft-script
	@$(B)/test/raft-script $(RAFT_SCRIPTS)

raft-script-rewrite: $(B)/test/raft-script
	@$(B)/test/raft-script --rewrite $(RAFT_SCRIPTS)

PROGRAMS += $(B)/test/raft-script
CHECK_STEPS += raft-script-check
