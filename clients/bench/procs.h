/* SPDX-License-Identifier: MIT */
/*
 * procs.h: the lab's peer processes (fork, CPU pinning, reaping on every
 * path), the pipes their start-up handshakes run over, and the shared
 * memory a parent and the peers it forks see alike.
 */
#ifndef ZCBUS_BENCH_PROCS_H
#define ZCBUS_BENCH_PROCS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define BENCH_PROCS_MAX 1024u
#define BENCH_PEER_TIMEOUT_MS 10000 /* a peer that says nothing this long is broken */

struct bench_procs {
        unsigned n;
        pid_t pid[BENCH_PROCS_MAX]; /* 0 once reaped */
        int status[BENCH_PROCS_MAX];
};

void bench_procs_init(struct bench_procs *ps);
/* Fork a peer pinned to cpu (-1: not pinned) that runs fn(arg) and exits
 * with its return value. The peer dies with us (PR_SET_PDEATHSIG). */
int bench_spawn(struct bench_procs *ps, int cpu, int (*fn)(void *arg), void *arg);
/* SIGKILL and reap every peer still running. Safe to call twice. */
void bench_procs_kill(struct bench_procs *ps);
/* Reap every peer, waiting at most timeout_ms; then kill the rest.
 * Returns 0 if all exited with status 0, -ECHILD otherwise (after saying
 * which, unless it exited 1: a peer reports its own errors). */
int bench_procs_reap(struct bench_procs *ps, const char *cmd, int timeout_ms);
/* A peer went missing while we waited for its token (r from
 * bench_wait_tokens): report what is known for cmd, about what ("ping-
 * pong", a transport's name), and kill the rest. */
void bench_peer_lost(const char *cmd, const char *what, struct bench_procs *ps, int r);
/* Pin the calling process; cpu < 0 is a no-op. */
int bench_pin(int cpu);

/* A pipe as two named ends. Closing an end twice is harmless. */
struct bench_pipe {
        int rd, wr;
};
int bench_pipe_open(struct bench_pipe *p);
void bench_pipe_close(struct bench_pipe *p);
void bench_fd_close(int *fd);
int bench_put_byte(int fd, char c);
/* Blocking read of one byte; -EPIPE at end of file. */
int bench_get_byte(int fd, char *ret);
/* Read n bytes from fd (peers' "ready"/"done" tokens), failing with
 * -ECHILD when a peer exits early or -ETIMEDOUT after timeout_ms. Any
 * 'E' byte is a peer reporting failure: -ECHILD. */
int bench_wait_tokens(struct bench_procs *ps, int fd, unsigned n, int timeout_ms);
/* Block until the other end is closed (a one-shot broadcast). */
int bench_wait_eof(int fd);

/* Zeroed memory shared with the peers forked after it (MAP_SHARED). */
void *bench_shared_new(size_t len);
void bench_shared_free(void *p, size_t len);

#endif
