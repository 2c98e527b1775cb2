/*
 * fuzz_raft_step.c - libFuzzer target for the Raft core's input side: the
 * bytes drive one replica of a 3-voter group through ticks, proposals,
 * wake-ups, unreachable and snapshot reports, Ready cycles and raft_step()
 * with messages whose every field comes from the input (as a forged or
 * corrupt peer would send), and through raft_conf_change_decode() (entry
 * data read back from disk).
 *
 * The replica must never crash or reach an impossible state (the core is
 * built with RAFT_DEBUG: assertions abort, and arenas free every block on
 * reset so that a payload kept past its lifetime is a use-after-free that
 * ASan reports; it may stop with "logs diverged" when a forged append
 * contradicts a committed entry); its term and commit index never go back; and every entry it
 * hands out (to persist, to send, to apply) is readable and, if application
 * data, holds the bytes that were proposed: 'p' locally, 'x' from peers.
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

/* Every byte of every entry is readable (ASan checks) and, for application
 * data, what was proposed (conf change bytes from peers may be anything). */
static void check_entries(const struct raft_entry *e, uint32_t n)
{
	volatile uint8_t sink = 0;

	for (uint32_t i = 0; i < n; i++)
		for (uint32_t k = 0; k < e[i].len; k++) {
			sink ^= e[i].data[k];
			if (e[i].type == RAFT_ENTRY_NORMAL && e[i].data[k] != 'p' &&
			    e[i].data[k] != 'x')
				abort();
		}
	(void)sink;
}

/* Persist, send (check), apply and advance one Ready, as an engine would. */
static void cycle(struct raft *r, struct raft_memstorage *ms)
{
	struct raft_ready rd;

	if (!raft_has_ready(r))
		return;
	if (raft_ready(r, &rd) != RAFT_OK)
		abort(); /* memstorage never fails, and there is no Ready out */
	check_entries(rd.entries, rd.n_entries);
	for (uint32_t i = 0; i < rd.n_messages; i++)
		check_entries(rd.messages[i].entries, rd.messages[i].n_entries);
	check_entries(rd.committed, rd.n_committed);
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

/* A message whose every field comes from the input. */
static void forge(struct raft *r, struct input *in)
{
	struct raft_message m;
	struct raft_entry ents[4];
	struct raft_snapshot_meta snap;
	struct raft_conf_change cc;
	uint8_t payload[4][16];

	memset(&m, 0, sizeof(m));
	m.type = (uint32_t)take(in, 1) % (RAFT_MSG_TYPE_MAX + 2);
	m.flags = (uint32_t)take(in, 1) % 4;
	m.group_id = 7;
	m.from = take(in, 1) % 5;
	m.to = 1;
	m.term = take(in, 1) % 8;
	m.log_term = take(in, 1) % 8;
	m.index = take(in, 1) % 16;
	m.commit = take(in, 1) % 16;
	m.reject = take(in, 1) & 1;
	m.reject_hint = take(in, 1) % 16;
	m.hint_term = take(in, 1) % 8;
	m.context = take(in, 1);
	m.n_entries = (uint32_t)take(in, 1) % 5;
	for (uint32_t i = 0; i < m.n_entries; i++) {
		size_t len = (size_t)take(in, 1) % sizeof(payload[i]);

		memset(payload[i], 'x', sizeof(payload[i]));
		ents[i].term = take(in, 1) % 8;
		ents[i].index = m.index + 1 + i;
		ents[i].type = (uint32_t)take(in, 1) % 3;
		ents[i].len = (uint32_t)len;
		ents[i].data = payload[i];
		if (ents[i].type == RAFT_ENTRY_CONF_CHANGE) {
			memset(&cc, 0, sizeof(cc));
			cc.type = (uint32_t)take(in, 1) % 3;
			cc.node_id = take(in, 1) % 6;
			ents[i].len = (uint32_t)raft_conf_change_encode(&cc, payload[i],
			                                                sizeof(payload[i]));
		}
	}
	m.entries = m.n_entries ? ents : NULL;
	if (m.type == RAFT_MSG_SNAPSHOT && take(in, 1) % 2) {
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
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t ps[8] = "pppppppp";
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
	cfg.quiesce_tick = 3;
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
		unsigned op = (unsigned)take(&in, 1) % 8;
		struct raft_conf_change cc;

		switch (op) {
		case 0:
			raft_tick(r);
			break;
		case 1:
			raft_propose(r, ps, 1 + (uint32_t)take(&in, 1) % sizeof(ps), NULL);
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
		case 4:
			raft_wake(r);
			break;
		case 5:
			raft_report_unreachable(r, take(&in, 1) % 5);
			break;
		case 6:
			raft_report_snapshot(r, take(&in, 1) % 5, take(&in, 1) & 1);
			break;
		default:
			forge(r, &in);
			break;
		}
		/* Forged input is refused, never an impossible state; but a forged append
		 * that contradicts a committed entry is proof of divergence: the replica
		 * stops for good, and this input has nothing more to test. */
		if (raft_fatal(r) != 0) {
			if (strstr(raft_errmsg(r), "diverged") == NULL)
				abort();
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
