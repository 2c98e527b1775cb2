/*
 * loglimit.h - a rate limit of repeated log lines (engine_uv's): a line
 * about one group and node, of one cause, once per window; each line (a
 * failed snapshot stream, the dropped messages of a group that does not
 * run here) with a table of its own, so that the keys of one never take
 * the room of another's (review 73: more than 64 senders of stopped
 * groups kept a failed stream silent); what a full table leaves out is
 * counted, said with that line's next one, as is what a key left out
 * when another key takes its slot.
 */
#ifndef DR_ENGINE_LOGLIMIT_H
#define DR_ENGINE_LOGLIMIT_H

#include <stdbool.h>
#include <stdint.h>

#define LOGLIMIT_SLOTS 64 /* keys of one line within one window */

/* The lines limited. */
enum loglimit_line {
	LOGLIMIT_STREAM_FAILED, /* a snapshot stream to a member failed (kind: its cause) */
	LOGLIMIT_NO_GROUP,      /* messages of a group that does not run here dropped */
	LOGLIMIT_LINES
};

struct loglimit_slot {
	uint64_t group_id;
	uint64_t node;     /* the stream's member, the messages' sender */
	int kind;          /* the line's cause */
	uint64_t logged;   /* the time of the key's last line, + 1; 0: free */
	uint64_t left_out; /* the key's events since that line, not logged */
};

struct loglimit {
	uint64_t window_ms;
	struct {
		struct loglimit_slot slots[LOGLIMIT_SLOTS];
		uint64_t left_out; /* keys without a slot: lines not logged */
	} lines[LOGLIMIT_LINES];
};

/* A limit of once per window_ms for every key. */
void loglimit_init(struct loglimit *l, uint64_t window_ms);

/* Whether line about (group_id, node, kind) is due at now_ms: once per window
 * for each key, *left_out set to how many of the key were not logged since its
 * last one and *others to the line's events that found its table full (then
 * zeroed: the caller says both). */
bool loglimit_due(struct loglimit *l, enum loglimit_line line, uint64_t now_ms, uint64_t group_id,
                  uint64_t node, int kind, uint64_t *left_out, uint64_t *others);

#endif
