/* SPDX-License-Identifier: MIT */
/*
 * fdwait.h: pollable descriptors for event loops (zcbus_sub_fd,
 * zcbus_waitset_fd). Linux has no descriptor that becomes readable when a
 * futex word changes (FUTEX_FD is long gone, io_uring's futex wait is
 * newer than Debian 12's kernel), so one thread per process, the
 * notifier, sleeps on the data words of every subscription that has a
 * descriptor (futex_waitv), as any sleeper does (armed, with the relay),
 * and writes the eventfd of each that a message is waiting for.
 *
 * A watch is either waiting (its owner saw -EAGAIN and went back to its
 * loop: the notifier may signal it) or not (its owner is receiving: the
 * notifier leaves it alone). The owner's thread re-arms it when a receive
 * finds nothing, which costs no system call unless a message came in
 * meanwhile; a message costs the notifier a wake-up only when the watch
 * waits, and the producer nothing more than for any sleeper (point R).
 */
#ifndef ZCBUS_FDWAIT_H
#define ZCBUS_FDWAIT_H

#include <stdbool.h>
#include <stdint.h>

#include "atomics.h"
#include "ring_pub.h"
#include "ring_sub.h"

/* Where a watch's signal goes: an eventfd, its own or a wait set's. */
struct fdwait_sink {
        int efd;
        /* Signals begun (before the write) and done (after it). A drain
         * reads the eventfd when either moved since the last drain: a
         * signal caught between its two counts is drained then or, if its
         * write came after the read, at the next drain, with one more turn
         * of the owner's loop. Never a loop that polls readable and finds
         * nothing to drain while the signaler is off the CPU. */
        au32 begun, done;
        uint32_t seen_begun, seen_done; /* the owner's, at its last drain */
};

struct fdwait_watch {
        struct fdwait_watch *prev, *next; /* the notifier's list */
        const struct ring_sub *rs;        /* a subscription (its map and entry) */
        const struct seg_map *pm;         /* or a producer's topic: room */
        struct fdwait_sink *sink;
        au64 seq;      /* the cursor its owner will read next, while waiting */
        au32 waiting;  /* 1: the owner sleeps in its loop; signal it when ready */
};

/* A sink with a fresh eventfd (non-blocking, close-on-exec). */
int fdwait_sink_init(struct fdwait_sink *k);
void fdwait_sink_close(struct fdwait_sink *k);

/* Start watching rs into sink (starting the notifier thread on first
 * use): -EMFILE when the notifier watches as many words as it can. The
 * watch starts waiting. */
int fdwait_add(struct fdwait_watch *w, const struct ring_sub *rs, struct fdwait_sink *sink);
/* Watch a producer's topic for room (zcbus_pub_fd). */
int fdwait_add_room(struct fdwait_watch *w, const struct seg_map *m, struct fdwait_sink *sink);
/* Stop watching; once it returns, the notifier no longer touches rs. */
void fdwait_remove(struct fdwait_watch *w);

/* The owner found nothing (-EAGAIN): drain the sink if it was signaled
 * (drain: a wait set drains once all its members found nothing), then wait
 * again from cursor seq, signaling at once if a message is there already.
 * No system call unless one of those is needed. */
void fdwait_drain(struct fdwait_sink *k);
void fdwait_rearm(struct fdwait_watch *w, uint64_t seq);
/* The owner is about to receive: the notifier leaves the watch alone. */
void fdwait_busy(struct fdwait_watch *w);

#endif
