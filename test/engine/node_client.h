/*
 * node_client.h - the driver's side of dr-node (node.c): spawn node
 * processes with their stdin/stdout on pipes, send commands, read reply
 * lines, kill -9 and restart.  Used by the multi-process test and the
 * loopback benchmark.  Every wait has a deadline.
 */
#ifndef DRAGONRAFT_TEST_NODE_CLIENT_H
#define DRAGONRAFT_TEST_NODE_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define NC_LINE_MAX 16384

/* One node process. */
struct nc_node {
	int id;     /* raft node id */
	pid_t pid;  /* 0 when not running */
	int in_fd;  /* its stdin (we write commands) */
	int out_fd; /* its stdout (we read replies) */
	int port;   /* listen port (0 until the first start reported it) */
	char dir[512];
	char rbuf[NC_LINE_MAX];
	size_t rlen;
};

/* Receives every reply line not claimed by nc_call(); idx indexes the node array. */
typedef void (*nc_line_fn)(void *arg, int idx, char *line);

/* A whole cluster of node processes. */
struct nc_cluster {
	const char *bin;   /* the dr-node program */
	const char *extra; /* extra arguments (space separated), or NULL */
	int n;
	struct nc_node *nodes;
	nc_line_fn on_line; /* may be NULL */
	void *arg;
	unsigned long next_tag;
	bool quiet; /* no message when a node dies */
};

/* Seconds on the monotonic clock. */
double nc_now(void);
/* CPU seconds (user + system) process pid has used so far; -1 if unknown. */
double nc_cpu_seconds(pid_t pid);
/* Start node idx (again, on its port once known) and wait up to timeout_s for "ready". */
int nc_start(struct nc_cluster *c, int idx, double timeout_s);
/* Send sig (SIGKILL) to node idx and reap it. */
void nc_kill(struct nc_cluster *c, int idx, int sig);
/* Is node idx running? */
bool nc_alive(const struct nc_cluster *c, int idx);
/* Send one command line to node idx (a newline is added); -1 if it is not running. */
int nc_send(struct nc_cluster *c, int idx, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
/* Read whatever arrives within ms milliseconds and hand lines to on_line. */
void nc_pump(struct nc_cluster *c, int ms);
/*
 * Send "TAG cmd" to node idx and wait up to timeout_s for the reply with TAG;
 * the reply (after the tag) is copied into out.  Returns 0, or -1 on timeout
 * or when the node is down.
 */
int nc_call(struct nc_cluster *c, int idx, double timeout_s, char *out, size_t outlen,
            const char *fmt, ...) __attribute__((format(printf, 6, 7)));
/* "host:port" of node idx. */
const char *nc_addr(const struct nc_cluster *c, int idx);

/* A group's status on one node, parsed from the status reply. */
struct nc_status {
	int rc, role;
	unsigned long long term, leader, commit, applied, last, first, snap;
	int writable;
	unsigned long long count, digest;
	unsigned recoveries;
	char voters[256];
	int state;     /* enum engine_group_state */
	int quiescent; /* 1: the group is quiescent on that node */
};
/* Ask node idx for group gid's status; -1 when no reply (rc in st->rc otherwise). */
int nc_status(struct nc_cluster *c, int idx, unsigned long long gid, struct nc_status *st);

#endif /* DRAGONRAFT_TEST_NODE_CLIENT_H */
