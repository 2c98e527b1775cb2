/*
 * loglimit.c - a rate limit of repeated log lines (see loglimit.h).
 */
#include <string.h>

#include "engine/loglimit.h"

void loglimit_init(struct loglimit *l, uint64_t window_ms)
{
	memset(l, 0, sizeof(*l));
	l->window_ms = window_ms;
}

/*
 * A key without a slot takes its line's oldest, unless that one was logged
 * within the window too (more keys than slots): then it is counted in the
 * line's left_out, said with its next line.  So is what the slot's key left
 * out since its last line, when its slot is taken (before, that count went
 * with the slot and was never said).
 */
bool loglimit_due(struct loglimit *l, enum loglimit_line line, uint64_t now_ms, uint64_t group_id,
                  uint64_t node, int kind, uint64_t *left_out, uint64_t *others)
{
	struct loglimit_slot *slots = l->lines[line].slots, *f = NULL, *oldest = &slots[0];
	uint64_t now = now_ms + 1; /* (0 marks a free slot) */

	for (int k = 0; k < LOGLIMIT_SLOTS && f == NULL; k++) {
		struct loglimit_slot *s = &slots[k];

		if (s->logged != 0 && s->group_id == group_id && s->node == node && s->kind == kind)
			f = s;
		else if (s->logged < oldest->logged)
			oldest = s;
	}
	if (f != NULL && now - f->logged < l->window_ms) {
		f->left_out++;
		return false;
	}
	if (f == NULL) {
		if (oldest->logged != 0 && now - oldest->logged < l->window_ms) {
			l->lines[line].left_out++;
			return false;
		}
		f = oldest; /* (a free one, or one unused for a window) */
		l->lines[line].left_out += f->left_out;
		memset(f, 0, sizeof(*f));
		f->group_id = group_id;
		f->node = node;
		f->kind = kind;
	}
	*left_out = f->left_out;
	*others = l->lines[line].left_out;
	f->logged = now;
	f->left_out = 0;
	l->lines[line].left_out = 0;
	return true;
}
