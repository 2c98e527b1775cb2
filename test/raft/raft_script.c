/*
 * raft_script.c - scripted tests of the Raft core in the manner of etcd raft's
 * interaction tests (its testdata directory) and cowsql raft's CLUSTER_TRACE: a
 * transcript file holds commands, each followed by "----" and the output it
 * must produce, ended by a blank line:
 *
 *	propose 1 foo
 *	----
 *	n1: index 4
 *
 * The commands drive the unit tests' fixture (test/unit/test_raft_fixture.h)
 * message by message and Ready by Ready, so a rule of the protocol is pinned
 * by name rather than by chance; a regression becomes one more transcript.
 *
 *   raft-script FILE...            check; ends with "N passed, N failed"
 *   raft-script --rewrite FILE...  write the actual outputs into the files
 *
 * Commands (IDs are node ids; k=v arguments are optional):
 *   cluster voters=1,2,3 [nonvoters=4] [prevote] [checkquorum] [quiesce=T] [msgbytes=B]
 *   campaign ID | tick ID [N] | propose ID DATA | read-index ID CTX
 *   propose-conf ID add-voter|add-nonvoter|remove NODE | transfer ID TARGET
 *   ready ID [crash-before-persist]   take one Ready and show it
 *   deliver [from=ID] [to=ID] [type=T] [drop]   the matching queued messages
 *   step ID from=ID type=T term=T [index= logterm= commit= entries=I/T,... commit-only]
 *                                    (a snapshot is at index/logterm)
 *   crash ID | restart ID | isolate ID | heal | stabilize | tick-all N
 *   compact ID INDEX | status | log ID | queue
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "raft/raft.h"
#include "raft/raft_memstorage.h"
#include "test_raft_fixture.h"

#define MAX_ARGS 16

static struct fx *F; /* the cluster of the file being run */
static char *out;    /* output of the current command */
static size_t out_len, out_cap;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(out + out_len, out_cap - out_len, fmt, ap);
		va_end(ap);
		if (n >= 0 && (size_t)n < out_cap - out_len)
			break;
		out_cap = out_cap ? out_cap * 2 : 4096;
		out = realloc(out, out_cap);
		if (out == NULL)
			abort();
	}
	out_len += (size_t)n;
}

typedef unsigned long long ull;

/* ---- arguments ---- */

struct args {
	int n;
	char *v[MAX_ARGS];
};

/* Value of key=value, or NULL. */
static const char *kv(const struct args *a, const char *key)
{
	size_t k = strlen(key);

	for (int i = 1; i < a->n; i++)
		if (strncmp(a->v[i], key, k) == 0 && a->v[i][k] == '=')
			return a->v[i] + k + 1;
	return NULL;
}

/* Is the bare word present? */
static bool flag(const struct args *a, const char *word)
{
	for (int i = 1; i < a->n; i++)
		if (strcmp(a->v[i], word) == 0)
			return true;
	return false;
}

static bool num(const char *s, ull *v)
{
	char *end;

	if (s == NULL || *s == '\0')
		return false;
	errno = 0;
	*v = strtoull(s, &end, 10);
	return errno == 0 && *end == '\0';
}

/* Positional argument i as a node id that exists. */
static raft_id node_arg(const struct args *a, int i)
{
	ull id;

	if (i >= a->n || !num(a->v[i], &id) || id == 0 || id > FX_MAX || F == NULL || id > F->n) {
		say("error: node id expected\n");
		return 0;
	}
	return (raft_id)id;
}

/* ---- formatting ---- */

static const char *const type_names[] = {
        "?",       "APPEND",       "APPEND_RESP",    "VOTE",           "VOTE_RESP",
        "PREVOTE", "PREVOTE_RESP", "HEARTBEAT",      "HEARTBEAT_RESP", "SNAPSHOT",
        "PROPOSE", "READINDEX",    "READINDEX_RESP", "TIMEOUT_NOW",    "TRANSFER_LEADER",
        "QUIESCE",
};

static const char *type_name(uint32_t t)
{
	return t < sizeof(type_names) / sizeof(type_names[0]) ? type_names[t] : "?";
}

static uint32_t type_of(const char *name)
{
	for (uint32_t t = 1; t < sizeof(type_names) / sizeof(type_names[0]); t++)
		if (strcasecmp(name, type_names[t]) == 0)
			return t;
	return 0;
}

static const char *role_name(enum raft_role r)
{
	static const char *names[] = {"follower", "precandidate", "candidate", "leader"};

	return (unsigned)r < 4 ? names[r] : "?";
}

static void say_entry(const struct raft_entry *e)
{
	struct raft_conf_change cc;
	static const char *cc_names[] = {"add-voter", "add-nonvoter", "remove"};

	say("%llu/%llu", (ull)e->index, (ull)e->term);
	if (e->type == RAFT_ENTRY_CONF_CHANGE) {
		if (raft_conf_change_decode(e->data, e->len, &cc) == RAFT_OK)
			say(" %s %llu", cc_names[cc.type], (ull)cc.node_id);
		else
			say(" bad-conf-change");
	} else if (e->len == 0) {
		say(" noop");
	} else {
		say(" \"%.*s\"", (int)e->len, (const char *)e->data);
	}
}

static void say_msg(const struct raft_message *m)
{
	say("%llu->%llu %s term=%llu", (ull)m->from, (ull)m->to, type_name(m->type), (ull)m->term);
	switch (m->type) {
	case RAFT_MSG_APPEND:
		say(" prev=%llu/%llu commit=%llu%s", (ull)m->index, (ull)m->log_term,
		    (ull)m->commit, m->flags & RAFT_MSG_FLAG_COMMIT_ONLY ? " commit-only" : "");
		for (uint32_t i = 0; i < m->n_entries; i++) {
			say(i ? ", " : " [");
			say_entry(&m->entries[i]);
		}
		if (m->n_entries)
			say("]");
		break;
	case RAFT_MSG_APPEND_RESP:
		if (m->reject)
			say(" reject=%llu hint=%llu/%llu", (ull)m->index, (ull)m->reject_hint,
			    (ull)m->hint_term);
		else
			say(" index=%llu", (ull)m->index);
		break;
	case RAFT_MSG_VOTE:
	case RAFT_MSG_PREVOTE:
		say(" last=%llu/%llu commit=%llu%s", (ull)m->index, (ull)m->log_term,
		    (ull)m->commit, m->flags & RAFT_MSG_FLAG_TRANSFER ? " transfer" : "");
		break;
	case RAFT_MSG_TIMEOUT_NOW: /* its sender's last entry and commit index (transfer.c) */
		say(" last=%llu/%llu commit=%llu", (ull)m->index, (ull)m->log_term, (ull)m->commit);
		break;
	case RAFT_MSG_VOTE_RESP:
	case RAFT_MSG_PREVOTE_RESP:
		say(" %s", m->reject ? "rejected" : "granted");
		break;
	case RAFT_MSG_HEARTBEAT:
		say(" commit=%llu ctx=%llu", (ull)m->commit, (ull)m->context);
		break;
	case RAFT_MSG_HEARTBEAT_RESP:
		say(" ctx=%llu%s", (ull)m->context, m->flags & RAFT_MSG_FLAG_WAKE ? " wake" : "");
		break;
	case RAFT_MSG_SNAPSHOT:
		if (m->snapshot)
			say(" snapshot=%llu/%llu", (ull)m->snapshot->index, (ull)m->snapshot->term);
		break;
	case RAFT_MSG_READINDEX:
	case RAFT_MSG_READINDEX_RESP:
		say(" ctx=%llu index=%llu", (ull)m->context, (ull)m->index);
		break;
	default:
		break;
	}
	say("\n");
}

static void say_status(raft_id id)
{
	struct fx_node *nd = &F->nodes[id];
	struct raft *r = nd->r;

	if (nd->down || r == NULL) {
		say("n%llu: down\n", (ull)id);
		return;
	}
	say("n%llu: %s term=%llu lead=%llu commit=%llu last=%llu%s\n", (ull)id,
	    role_name(raft_role(r)), (ull)raft_term_of(r), (ull)raft_leader(r),
	    (ull)raft_commit_index(r), (ull)raft_last_index(r),
	    raft_quiesced(r) ? " quiesced" : "");
}

/* ---- the Ready ---- */

static void say_ready(raft_id id, const struct raft_ready *rd)
{
	bool any = false;

	say("n%llu: Ready\n", (ull)id);
	if (rd->hard_state_changed)
		say("  persist hard state: term=%llu vote=%llu commit=%llu\n",
		    (ull)rd->hard_state.term, (ull)rd->hard_state.vote, (ull)rd->hard_state.commit);
	if (rd->has_snapshot)
		say("  persist snapshot: %llu/%llu\n", (ull)rd->snapshot.index,
		    (ull)rd->snapshot.term);
	for (uint32_t i = 0; i < rd->n_entries; i++) {
		say("  persist entry: ");
		say_entry(&rd->entries[i]);
		say("\n");
	}
	for (uint32_t i = 0; i < rd->n_messages; i++)
		if (raft_msg_may_precede_persist(&rd->messages[i])) {
			say("  send before persisting: ");
			say_msg(&rd->messages[i]);
		}
	for (uint32_t i = 0; i < rd->n_messages; i++)
		if (!raft_msg_may_precede_persist(&rd->messages[i])) {
			say("  send after persisting: ");
			say_msg(&rd->messages[i]);
		}
	for (uint32_t i = 0; i < rd->n_committed; i++) {
		say("  apply: ");
		say_entry(&rd->committed[i]);
		say("\n");
	}
	for (uint32_t i = 0; i < rd->n_read_states; i++)
		say("  read state: ctx=%llu index=%llu\n", (ull)rd->read_states[i].context,
		    (ull)rd->read_states[i].index);
	any = rd->hard_state_changed || rd->has_snapshot || rd->n_entries || rd->n_messages ||
	      rd->n_committed || rd->n_read_states;
	if (!any)
		say("  (soft state only)\n");
}

static void on_ready(struct fx *f, raft_id id, const struct raft_ready *rd)
{
	(void)f;
	say_ready(id, rd);
}

/* The node crashes: its struct raft and anything not persisted are gone;
 * what it already sent stays in flight. */
static void crash(raft_id id)
{
	struct fx_node *nd = &F->nodes[id];

	raft_destroy(nd->r);
	nd->r = NULL;
	nd->down = true;
}

static void cmd_ready(const struct args *a)
{
	raft_id id = node_arg(a, 1);
	struct fx_node *nd;
	struct raft_ready rd;
	int rc;

	if (id == 0)
		return;
	nd = &F->nodes[id];
	if (nd->down || !raft_has_ready(nd->r)) {
		say("n%llu: no Ready\n", (ull)id);
		return;
	}
	if (!flag(a, "crash-before-persist")) {
		F->on_ready = on_ready;
		fx_ready(F, id);
		F->on_ready = NULL;
		return;
	}
	rc = raft_ready(nd->r, &rd);
	if (rc != RAFT_OK) {
		say("n%llu: raft_ready: %s\n", (ull)id, raft_strerror(rc));
		return;
	}
	say_ready(id, &rd);
	for (uint32_t i = 0; i < rd.n_messages; i++)
		if (raft_msg_may_precede_persist(&rd.messages[i]))
			fx_send(F, &rd.messages[i]);
	crash(id);
	say("n%llu: crashed before persisting: only what may precede persisting was sent\n",
	    (ull)id);
}

/* ---- commands ---- */

static bool id_list(const char *s, raft_id *ids, uint32_t *n)
{
	char buf[128], *save = NULL;

	*n = 0;
	if (s == NULL)
		return true;
	snprintf(buf, sizeof(buf), "%s", s);
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		ull id;

		if (!num(t, &id) || id == 0 || id > FX_MAX || *n >= RAFT_MAX_MEMBERS)
			return false;
		ids[(*n)++] = (raft_id)id;
	}
	return true;
}

static void cmd_cluster(const struct args *a)
{
	struct raft_membership m;
	struct raft_config c;
	uint32_t n = 0;
	ull v;

	memset(&m, 0, sizeof(m));
	if (!id_list(kv(a, "voters"), m.voters, &m.n_voters) ||
	    !id_list(kv(a, "nonvoters"), m.nonvoters, &m.n_nonvoters) || m.n_voters == 0) {
		say("error: voters=ID,... [nonvoters=ID,...]\n");
		return;
	}
	for (uint32_t i = 0; i < m.n_voters; i++)
		n = m.voters[i] > n ? (uint32_t)m.voters[i] : n;
	for (uint32_t i = 0; i < m.n_nonvoters; i++)
		n = m.nonvoters[i] > n ? (uint32_t)m.nonvoters[i] : n;
	fx_default_config(&c, 1);
	c.pre_vote = flag(a, "prevote");
	c.check_quorum = flag(a, "checkquorum");
	if (num(kv(a, "quiesce"), &v))
		c.quiesce_tick = (unsigned)v;
	if (num(kv(a, "msgbytes"), &v))
		c.max_msg_bytes = v;
	if (F != NULL)
		fx_destroy(F);
	F = fx_create_stopped(n, &c);
	for (raft_id id = 1; id <= n; id++) {
		raft_memstorage_set_membership(F->nodes[id].ms, &m);
		F->nodes[id].conf = m;
		fx_start(F, id);
	}
	/* The bootstrap Readys (membership entries), as the engine persists them first. */
	for (raft_id id = 1; id <= n; id++)
		fx_ready(F, id);
	for (raft_id id = 1; id <= n; id++)
		say_status(id);
}

static void cmd_deliver(const struct args *a)
{
	ull from = 0, to = 0;
	uint32_t type = 0, n;
	bool drop = flag(a, "drop");

	if ((kv(a, "from") && !num(kv(a, "from"), &from)) ||
	    (kv(a, "to") && !num(kv(a, "to"), &to)) ||
	    (kv(a, "type") && (type = type_of(kv(a, "type"))) == 0)) {
		say("error: deliver [from=ID] [to=ID] [type=T] [drop]\n");
		return;
	}
	/* Only what is queued now: replies go to the end of the queue and wait. */
	n = F->nq;
	for (uint32_t i = 0; i < F->nq && n > 0; n--) {
		const struct raft_message *m = &F->q[i].m;
		int rc;

		if ((from && m->from != from) || (to && m->to != to) || (type && m->type != type)) {
			i++;
			continue;
		}
		say("%s ", drop ? "drop" : "deliver");
		/* say_msg needs the entries, which the queue keeps beside the message */
		{
			struct raft_message copy = *m;

			copy.entries = F->q[i].ents;
			copy.snapshot = copy.type == RAFT_MSG_SNAPSHOT ? &F->q[i].snap : NULL;
			say_msg(&copy);
		}
		rc = fx_deliver_at(F, i, drop);
		if (rc != RAFT_OK)
			say("  refused: %s\n", raft_strerror(rc));
	}
}

/* A message built from arguments (what a forged or faulty peer could send). */
static void cmd_step(const struct args *a)
{
	raft_id id = node_arg(a, 1);
	struct raft_snapshot_meta snap;
	struct raft_entry ents[8];
	struct raft_message m;
	ull v;
	int rc;

	if (id == 0)
		return;
	memset(&m, 0, sizeof(m));
	m.group_id = 7;
	m.to = id;
	if (!num(kv(a, "from"), &v) || (m.type = kv(a, "type") ? type_of(kv(a, "type")) : 0) == 0) {
		say("error: step ID from=ID type=T ...\n");
		return;
	}
	m.from = v;
	if (num(kv(a, "term"), &v))
		m.term = v;
	if (num(kv(a, "index"), &v))
		m.index = v;
	if (num(kv(a, "logterm"), &v))
		m.log_term = v;
	if (num(kv(a, "commit"), &v))
		m.commit = v;
	if (flag(a, "commit-only"))
		m.flags |= RAFT_MSG_FLAG_COMMIT_ONLY;
	if (kv(a, "entries")) {
		char buf[256], *save = NULL;

		snprintf(buf, sizeof(buf), "%s", kv(a, "entries"));
		for (char *t = strtok_r(buf, ",", &save); t && m.n_entries < 8;
		     t = strtok_r(NULL, ",", &save)) {
			ull i = 0, term = 0;

			if (sscanf(t, "%llu/%llu", &i, &term) != 2) {
				say("error: entries=INDEX/TERM,...\n");
				return;
			}
			ents[m.n_entries++] =
			        (struct raft_entry){term, i, RAFT_ENTRY_NORMAL, 0, NULL};
		}
		m.entries = ents;
	}
	if (m.type == RAFT_MSG_SNAPSHOT) {
		/* a snapshot at index/logterm of the node's current membership */
		memset(&snap, 0, sizeof(snap));
		snap.index = m.index;
		snap.term = m.log_term;
		snap.membership = *raft_membership(F->nodes[id].r);
		m.snapshot = &snap;
	}
	say_msg(&m);
	rc = raft_step(F->nodes[id].r, &m);
	if (rc != RAFT_OK)
		say("  refused: %s\n", raft_strerror(rc));
}

static void cmd_log(raft_id id)
{
	struct raft *r = F->nodes[id].r;
	raft_index last = raft_last_index(r);

	say("n%llu: commit=%llu last=%llu:", (ull)id, (ull)raft_commit_index(r), (ull)last);
	for (raft_index i = 1; i <= last; i++) {
		raft_term t;

		if (raft_term_at(r, i, &t) == RAFT_OK)
			say(" %llu/%llu", (ull)i, (ull)t);
	}
	say("\n");
}

static int conf_type(const char *s)
{
	if (s && strcmp(s, "add-voter") == 0)
		return RAFT_CC_ADD_VOTER;
	if (s && strcmp(s, "add-nonvoter") == 0)
		return RAFT_CC_ADD_NONVOTER;
	if (s && strcmp(s, "remove") == 0)
		return RAFT_CC_REMOVE;
	return -1;
}

/* Report rc of a client call on node id (with an index when there is one). */
static void say_rc(raft_id id, int rc, raft_index index)
{
	if (rc != RAFT_OK)
		say("n%llu: %s\n", (ull)id, raft_strerror(rc));
	else if (index)
		say("n%llu: index %llu\n", (ull)id, (ull)index);
	else
		say("n%llu: ok\n", (ull)id);
}

static void run(const struct args *a)
{
	const char *c = a->v[0];
	raft_id id;
	raft_index idx = 0;
	ull v;

	if (strcmp(c, "cluster") == 0) {
		cmd_cluster(a);
		return;
	}
	if (F == NULL) {
		say("error: no cluster\n");
		return;
	}
	if (strcmp(c, "status") == 0) {
		for (raft_id i = 1; i <= F->n; i++)
			say_status(i);
	} else if (strcmp(c, "queue") == 0) {
		for (uint32_t i = 0; i < F->nq; i++) {
			struct raft_message copy = F->q[i].m;

			copy.entries = F->q[i].ents;
			say_msg(&copy);
		}
	} else if (strcmp(c, "heal") == 0) {
		fx_heal(F);
	} else if (strcmp(c, "stabilize") == 0) {
		fx_stabilize(F);
		for (raft_id i = 1; i <= F->n; i++)
			say_status(i);
	} else if (strcmp(c, "tick-all") == 0) {
		fx_tick_all(F, a->n > 1 && num(a->v[1], &v) ? (unsigned)v : 1);
		for (raft_id i = 1; i <= F->n; i++)
			say_status(i);
	} else if (strcmp(c, "deliver") == 0) {
		cmd_deliver(a);
	} else if (strcmp(c, "step") == 0) {
		cmd_step(a);
	} else if (strcmp(c, "ready") == 0) {
		cmd_ready(a);
	} else if ((id = node_arg(a, 1)) == 0) {
		return;
	} else if (strcmp(c, "campaign") == 0) {
		say_rc(id, raft_campaign(F->nodes[id].r), 0);
		say_status(id);
	} else if (strcmp(c, "tick") == 0) {
		ull k = a->n > 2 && num(a->v[2], &v) ? v : 1;

		for (ull i = 0; i < k; i++)
			raft_tick(F->nodes[id].r);
		say_status(id);
	} else if (strcmp(c, "propose") == 0 && a->n > 2) {
		say_rc(id,
		       raft_propose(F->nodes[id].r, (const uint8_t *)a->v[2],
		                    (uint32_t)strlen(a->v[2]), &idx),
		       idx);
	} else if (strcmp(c, "propose-conf") == 0 && a->n > 3 && conf_type(a->v[2]) >= 0 &&
	           num(a->v[3], &v)) {
		struct raft_conf_change cc = {(uint32_t)conf_type(a->v[2]), v, 0, NULL};

		say_rc(id, raft_propose_conf_change(F->nodes[id].r, &cc, &idx), idx);
	} else if (strcmp(c, "read-index") == 0 && a->n > 2 && num(a->v[2], &v)) {
		say_rc(id, raft_read_index(F->nodes[id].r, v), 0);
	} else if (strcmp(c, "transfer") == 0 && a->n > 2 && num(a->v[2], &v)) {
		say_rc(id, raft_transfer_leader(F->nodes[id].r, v), 0);
	} else if (strcmp(c, "crash") == 0) {
		crash(id);
		say_status(id);
	} else if (strcmp(c, "restart") == 0) {
		fx_restart(F, id);
		say_status(id);
	} else if (strcmp(c, "isolate") == 0) {
		fx_isolate(F, id);
	} else if (strcmp(c, "log") == 0) {
		cmd_log(id);
	} else if (strcmp(c, "compact") == 0 && a->n > 2 && num(a->v[2], &v)) {
		struct fx_node *nd = &F->nodes[id];
		int rc = raft_memstorage_create_snapshot(nd->ms, v, raft_membership(nd->r));

		if (rc == RAFT_OK)
			rc = raft_memstorage_compact(nd->ms, v);
		if (rc == RAFT_OK)
			raft_compacted(nd->r, v);
		say_rc(id, rc, 0);
	} else {
		say("error: unknown command or bad arguments: %s\n", c);
	}
}

/* ---- the transcript file ---- */

struct file {
	char **lines;
	size_t n, cap;
};

static bool read_lines(const char *path, struct file *f)
{
	FILE *fp = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;

	if (fp == NULL)
		return false;
	while ((len = getline(&line, &cap, fp)) >= 0) {
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		if (f->n == f->cap) {
			f->cap = f->cap ? 2 * f->cap : 256;
			f->lines = realloc(f->lines, f->cap * sizeof(*f->lines));
		}
		f->lines[f->n++] = strdup(line);
	}
	free(line);
	fclose(fp);
	return true;
}

/* Run one transcript; write the actual transcript to rewrite if not NULL.  Failures counted. */
static unsigned run_file(const char *path, FILE *rewrite)
{
	struct file f = {0};
	unsigned failures = 0;
	size_t i = 0;

	if (!read_lines(path, &f)) {
		printf("%s: cannot read: %s\n", path, strerror(errno));
		return 1;
	}
	while (i < f.n) {
		size_t cmd_line = i, exp_start, exp_end;
		struct args a = {0};
		char *buf, *save = NULL;

		if (f.lines[i][0] == '#' || f.lines[i][0] == '\0') {
			if (rewrite)
				fprintf(rewrite, "%s\n", f.lines[i]);
			i++;
			continue;
		}
		buf = strdup(f.lines[i]);
		for (char *t = strtok_r(buf, " \t", &save); t && a.n < MAX_ARGS;
		     t = strtok_r(NULL, " \t", &save))
			a.v[a.n++] = t;
		i++;
		if (i >= f.n || strcmp(f.lines[i], "----") != 0) {
			printf("%s:%zu: \"----\" expected after the command\n", path, cmd_line + 1);
			free(buf);
			failures++;
			break;
		}
		exp_start = ++i;
		while (i < f.n && f.lines[i][0] != '\0')
			i++;
		exp_end = i;
		out_len = 0;
		say("%s", "");
		run(&a);
		if (rewrite) {
			fprintf(rewrite, "%s\n----\n%s", f.lines[cmd_line], out);
		} else {
			/* compare line by line */
			size_t e = exp_start;
			char *p = out;
			bool same = true;

			while (*p || e < exp_end) {
				char *nl = strchr(p, '\n');
				size_t len = nl ? (size_t)(nl - p) : strlen(p);

				if (e >= exp_end || strlen(f.lines[e]) != len ||
				    strncmp(f.lines[e], p, len) != 0) {
					same = false;
					break;
				}
				e++;
				p += len + (nl ? 1 : 0);
			}
			if (!same) {
				printf("%s:%zu: %s\n  expected:\n", path, cmd_line + 1,
				       f.lines[cmd_line]);
				for (size_t k = exp_start; k < exp_end; k++)
					printf("    %s\n", f.lines[k]);
				printf("  got:\n");
				for (char *q = out, *nl; *q; q = nl + 1) {
					nl = strchr(q, '\n');
					printf("    %.*s\n", (int)(nl ? nl - q : (long)strlen(q)),
					       q);
					if (!nl)
						break;
				}
				failures++;
			}
		}
		free(buf);
	}
	if (rewrite)
		fflush(rewrite);
	if (F != NULL) {
		fx_destroy(F);
		F = NULL;
	}
	for (size_t k = 0; k < f.n; k++)
		free(f.lines[k]);
	free(f.lines);
	return failures;
}

int main(int argc, char **argv)
{
	bool rewrite = argc > 1 && strcmp(argv[1], "--rewrite") == 0;
	unsigned passed = 0, failed = 0;

	for (int i = rewrite ? 2 : 1; i < argc; i++) {
		unsigned bad;

		if (rewrite) {
			char tmp[4096];
			FILE *fp;

			snprintf(tmp, sizeof(tmp), "%s.new", argv[i]);
			fp = fopen(tmp, "w");
			if (fp == NULL) {
				printf("%s: %s\n", tmp, strerror(errno));
				return 2;
			}
			bad = run_file(argv[i], fp);
			fclose(fp);
			if (bad == 0 && rename(tmp, argv[i]) != 0) {
				printf("%s: %s\n", argv[i], strerror(errno));
				return 2;
			}
		} else {
			bad = run_file(argv[i], NULL);
		}
		printf("%s: %s\n", argv[i], bad ? "FAILED" : "ok");
		if (bad)
			failed++;
		else
			passed++;
	}
	free(out);
	printf("%u passed, %u failed\n", passed, failed);
	return failed ? 1 : 0;
}
