/*
 * node_client.c - spawning and talking to dr-node processes (see the header).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "node_client.h"

double nc_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

bool nc_alive(const struct nc_cluster *c, int idx)
{
	return c->nodes[idx].pid > 0;
}

const char *nc_addr(const struct nc_cluster *c, int idx)
{
	static char buf[4][64];
	static int k;
	char *b = buf[k++ & 3];

	snprintf(b, 64, "127.0.0.1:%d", c->nodes[idx].port);
	return b;
}

static void close_node(struct nc_node *nd)
{
	if (nd->in_fd >= 0)
		close(nd->in_fd);
	if (nd->out_fd >= 0)
		close(nd->out_fd);
	nd->in_fd = nd->out_fd = -1;
	nd->rlen = 0;
}

void nc_kill(struct nc_cluster *c, int idx, int sig)
{
	struct nc_node *nd = &c->nodes[idx];

	if (nd->pid > 0) {
		kill(nd->pid, sig);
		while (waitpid(nd->pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	nd->pid = 0;
	close_node(nd);
}

/* The node's process ended on its own (EOF on its stdout). */
static void lost(struct nc_cluster *c, int idx)
{
	struct nc_node *nd = &c->nodes[idx];
	int status = 0;

	if (nd->pid > 0) {
		while (waitpid(nd->pid, &status, 0) < 0 && errno == EINTR)
			;
		if (!c->quiet)
			fprintf(stderr, "node %d (pid %d) ended unexpectedly (status 0x%x)\n",
			        nd->id, (int)nd->pid, status);
	}
	nd->pid = 0;
	close_node(nd);
}

int nc_start(struct nc_cluster *c, int idx, double timeout_s)
{
	struct nc_node *nd = &c->nodes[idx];
	int in[2], out[2];
	char id[32], listen[64], extra[512];
	char *argv[64];
	int argc = 0;
	double end = nc_now() + timeout_s;
	pid_t pid;

	if (nd->pid > 0)
		return 0;
	if (pipe(in) != 0)
		return -1;
	if (pipe(out) != 0) {
		close(in[0]);
		close(in[1]);
		return -1;
	}
	snprintf(id, sizeof(id), "%d", nd->id);
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", nd->port);
	snprintf(extra, sizeof(extra), "%s", c->extra ? c->extra : "");
	argv[argc++] = (char *)c->bin;
	argv[argc++] = "--id";
	argv[argc++] = id;
	argv[argc++] = "--dir";
	argv[argc++] = nd->dir;
	argv[argc++] = "--listen";
	argv[argc++] = listen;
	for (char *save = NULL, *t = strtok_r(extra, " ", &save); t != NULL && argc < 62;
	     t = strtok_r(NULL, " ", &save))
		argv[argc++] = t;
	argv[argc] = NULL;
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		close(in[0]);
		close(in[1]);
		close(out[0]);
		close(out[1]);
		return -1;
	}
	if (pid == 0) {
		dup2(in[0], 0);
		dup2(out[1], 1);
		/* Only stdin/stdout/stderr stay open in the node. */
		for (int fd = 3; fd < 1024; fd++)
			close(fd);
		execv(c->bin, argv);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	fcntl(in[1], F_SETFD, FD_CLOEXEC);
	fcntl(out[0], F_SETFD, FD_CLOEXEC);
	fcntl(out[0], F_SETFL, O_NONBLOCK);
	nd->pid = pid;
	nd->in_fd = in[1];
	nd->out_fd = out[0];
	nd->rlen = 0;
	/* Wait for "ready PORT". */
	while (nc_now() < end) {
		struct pollfd p = {nd->out_fd, POLLIN, 0};
		ssize_t r;
		char *nl;

		poll(&p, 1, 50);
		r = read(nd->out_fd, nd->rbuf + nd->rlen, sizeof(nd->rbuf) - 1 - nd->rlen);
		if (r == 0) {
			lost(c, idx);
			return -1;
		}
		if (r < 0)
			continue;
		nd->rlen += (size_t)r;
		nd->rbuf[nd->rlen] = '\0';
		nl = strchr(nd->rbuf, '\n');
		if (nl == NULL)
			continue;
		*nl = '\0';
		if (sscanf(nd->rbuf, "ready %d", &nd->port) != 1) {
			fprintf(stderr, "node %d: unexpected first line '%s'\n", nd->id, nd->rbuf);
			nc_kill(c, idx, SIGKILL);
			return -1;
		}
		nd->rlen -= (size_t)(nl + 1 - nd->rbuf);
		memmove(nd->rbuf, nl + 1, nd->rlen);
		return 0;
	}
	fprintf(stderr, "node %d: not ready after %.0f s\n", nd->id, timeout_s);
	nc_kill(c, idx, SIGKILL);
	return -1;
}

int nc_send(struct nc_cluster *c, int idx, const char *fmt, ...)
{
	struct nc_node *nd = &c->nodes[idx];
	char buf[4096];
	va_list ap;
	int n;
	size_t off = 0;

	if (nd->pid <= 0)
		return -1;
	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(buf) - 1)
		return -1;
	buf[n++] = '\n';
	while (off < (size_t)n) {
		ssize_t w = write(nd->in_fd, buf + off, (size_t)n - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1; /* it died; its stdout's EOF reaps it */
		off += (size_t)w;
	}
	return 0;
}

/* Read what node idx has written; hand complete lines to fn (or on_line). */
static void drain(struct nc_cluster *c, int idx, const char *tag, char *out, size_t outlen,
                  bool *found)
{
	struct nc_node *nd = &c->nodes[idx];

	for (;;) {
		ssize_t r;
		char *start, *nl;

		if (nd->pid <= 0)
			return;
		r = read(nd->out_fd, nd->rbuf + nd->rlen, sizeof(nd->rbuf) - 1 - nd->rlen);
		if (r == 0) {
			lost(c, idx);
			return;
		}
		if (r < 0)
			return;
		nd->rlen += (size_t)r;
		nd->rbuf[nd->rlen] = '\0';
		start = nd->rbuf;
		while ((nl = strchr(start, '\n')) != NULL) {
			size_t tl = tag ? strlen(tag) : 0;

			*nl = '\0';
			if (tag != NULL && strncmp(start, tag, tl) == 0 &&
			    (start[tl] == ' ' || start[tl] == '\0')) {
				snprintf(out, outlen, "%s", start[tl] ? start + tl + 1 : "");
				*found = true;
			} else if (c->on_line != NULL) {
				c->on_line(c->arg, idx, start);
			}
			start = nl + 1;
		}
		nd->rlen -= (size_t)(start - nd->rbuf);
		memmove(nd->rbuf, start, nd->rlen);
		if (nd->rlen == sizeof(nd->rbuf) - 1)
			nd->rlen = 0; /* an overlong line: drop it */
	}
}

static void pump(struct nc_cluster *c, int ms, int idx, const char *tag, char *out, size_t outlen,
                 bool *found)
{
	struct pollfd p[64];
	int map[64], n = 0;

	for (int i = 0; i < c->n && n < 64; i++) {
		if (c->nodes[i].pid <= 0)
			continue;
		p[n].fd = c->nodes[i].out_fd;
		p[n].events = POLLIN;
		p[n].revents = 0;
		map[n++] = i;
	}
	if (n == 0) {
		if (ms > 0)
			poll(NULL, 0, ms);
		return;
	}
	if (poll(p, (nfds_t)n, ms) <= 0)
		return;
	for (int k = 0; k < n; k++)
		if (p[k].revents != 0)
			drain(c, map[k], map[k] == idx ? tag : NULL, out, outlen, found);
}

void nc_pump(struct nc_cluster *c, int ms)
{
	pump(c, ms, -1, NULL, NULL, 0, NULL);
}

int nc_call(struct nc_cluster *c, int idx, double timeout_s, char *out, size_t outlen,
            const char *fmt, ...)
{
	char cmd[4096], tag[32];
	double end = nc_now() + timeout_s;
	bool found = false;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	snprintf(tag, sizeof(tag), "c%lu", ++c->next_tag);
	if (nc_send(c, idx, "%s %s", tag, cmd) != 0)
		return -1;
	while (!found && nc_alive(c, idx) && nc_now() < end)
		pump(c, 20, idx, tag, out, outlen, &found);
	return found ? 0 : -1;
}

int nc_status(struct nc_cluster *c, int idx, unsigned long long gid, struct nc_status *st)
{
	char buf[1024];

	memset(st, 0, sizeof(*st));
	if (nc_call(c, idx, 5, buf, sizeof(buf), "status %llu", gid) != 0)
		return -1;
	if (sscanf(buf, "%d", &st->rc) != 1)
		return -1;
	if (st->rc != 0)
		return 0;
	if (sscanf(buf, "%d %d %llu %llu %llu %llu %llu %llu %llu %d %llu %llu %u %255s %d %d",
	           &st->rc, &st->role, &st->term, &st->leader, &st->commit, &st->applied, &st->last,
	           &st->first, &st->snap, &st->writable, &st->count, &st->digest, &st->recoveries,
	           st->voters, &st->state, &st->quiescent) != 16)
		return -1;
	return 0;
}

double nc_cpu_seconds(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long ut = 0, st = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (f == NULL)
		return -1;
	p = fgets(buf, sizeof(buf), f);
	fclose(f);
	if (p == NULL || (p = strrchr(buf, ')')) == NULL ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}
