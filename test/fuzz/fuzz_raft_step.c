/*
 * fuzz_raft_step.c - libFuzzer target for the Raft core's input side: the
 * bytes drive one replica of a 3-voter group through ticks, proposals,
 * Ready cycles and raft_step() with messages whose every field comes from
 * the input (as a forged or corrupt peer would send), and through
 * raft_conf_change_decode() (entry data read back from disk).  The replica
 * must never crash, and its term and commit index must never go back.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "raft/raft.h"
#include "raft/raft_memstorage.h"

struct input {
	const uint8_t *p;
	size_t n;
};

static uint64_t take(struct input *in, unsigned bytes)
{
	uint64_t v = 0;

	while (bytes-- > 0 && in->n > 0) {
		v = (v << 8) | *in->p++;
		in->n--;
	}
	return v;
}

/* Persist, apply and advance one Ready, as an engine would. */
static void cycle(struct raft *r, struct raft_memstorage *ms)
{
	struct raft_ready rd;

	if (!raft_has_ready(r))
		return;
	raft_ready(r, &rd);
	if (raft_memstorage_save_ready(ms, &rd) != RAFT_OK)
		abort();
	for (uint32_t i = 0; i < rd.n_committed; i++) {
		struct raft_membership m;

		if (rd.committed[i].type == RAFT_ENTRY_CONF_CHANGE &&
		    raft_apply_conf_change(r, &rd.committed[i], &m) == RAFT_OK)
			raft_memstorage_set_membership(ms, &m);
	}
	raft_advance(r, &rd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = {data, size};
	struct raft_memstorage *ms;
	struct raft_config cfg;
	struct raft_membership boot;
	struct raft *r;
	raft_term term = 0;
	raft_index commit = 0;

	if (raft_memstorage_create(NULL, &ms) != RAFT_OK)
		return 0;
	memset(&cfg, 0, sizeof(cfg));
	cfg.group_id = 7;
	cfg.id = 1;
	cfg.election_tick = 10;
	cfg.heartbeat_tick = 1;
	cfg.pre_vote = true;
	cfg.check_quorum = true;
	cfg.max_inflight_msgs = 16;
	cfg.max_msg_bytes = 1 << 20;
	cfg.max_uncommitted_bytes = 1 << 20;
	cfg.seed = 1;
	raft_memstorage_storage(ms, &cfg.storage);
	memset(&boot, 0, sizeof(boot));
	boot.n_voters = 3;
	boot.voters[0] = 1;
	boot.voters[1] = 2;
	boot.voters[2] = 3;
	if (raft_create(&cfg, &boot, &r) != RAFT_OK) {
		raft_memstorage_destroy(ms);
		return 0;
	}

	while (in.n > 0) {
		unsigned op = (unsigned)take(&in, 1) % 5;
		struct raft_message m;
		struct raft_entry ents[4];
		struct raft_snapshot_meta snap;
		struct raft_conf_change cc;
		uint8_t payload[16];

		switch (op) {
		case 0:
			raft_tick(r);
			break;
		case 1:
			raft_propose(r, (const uint8_t *)"p", 1, NULL);
			break;
		case 2: {
			size_t len = (size_t)take(&in, 1) % 24;

			if (len > in.n)
				len = in.n;
			raft_conf_change_decode(in.p, len, &cc);
			in.p += len;
			in.n -= len;
			break;
		}
		case 3:
			cycle(r, ms);
			break;
		default:
			memset(&m, 0, sizeof(m));
			m.type = (uint32_t)take(&in, 1) % (RAFT_MSG_TYPE_MAX + 2);
			m.flags = (uint32_t)take(&in, 1) % 2;
			m.group_id = 7;
			m.from = take(&in, 1) % 5;
			m.to = 1;
			m.term = take(&in, 1) % 8;
			m.log_term = take(&in, 1) % 8;
			m.index = take(&in, 1) % 16;
			m.commit = take(&in, 1) % 16;
			m.reject = take(&in, 1) & 1;
			m.reject_hint = take(&in, 1) % 16;
			m.hint_term = take(&in, 1) % 8;
			m.context = take(&in, 1);
			m.n_entries = (uint32_t)take(&in, 1) % 5;
			for (uint32_t i = 0; i < m.n_entries; i++) {
				size_t len = (size_t)take(&in, 1) % sizeof(payload);

				memset(payload, 'x', sizeof(payload));
				ents[i].term = take(&in, 1) % 8;
				ents[i].index = m.index + 1 + i;
				ents[i].type = (uint32_t)take(&in, 1) % 3;
				ents[i].len = (uint32_t)len;
				ents[i].data = payload;
				if (ents[i].type == RAFT_ENTRY_CONF_CHANGE) {
					memset(&cc, 0, sizeof(cc));
					cc.type = (uint32_t)take(&in, 1) % 3;
					cc.node_id = take(&in, 1) % 6;
					ents[i].len = (uint32_t)raft_conf_change_encode(
						&cc, payload, sizeof(payload));
				}
			}
			m.entries = m.n_entries ? ents : NULL;
			if (m.type == RAFT_MSG_SNAPSHOT && take(&in, 1) % 2) {
				memset(&snap, 0, sizeof(snap));
				snap.index = m.index;
				snap.term = m.log_term;
				snap.membership.n_voters = 3;
				snap.membership.voters[0] = 1;
				snap.membership.voters[1] = 2;
				snap.membership.voters[2] = 3;
				m.snapshot = &snap;
			}
			raft_step(r, &m);
			break;
		}
		if (raft_term_of(r) < term || raft_commit_index(r) < commit)
			abort(); /* term and commit never go back */
		term = raft_term_of(r);
		commit = raft_commit_index(r);
	}
	raft_destroy(r);
	raft_memstorage_destroy(ms);
	return 0;
}
