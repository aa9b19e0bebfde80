/* SPDX-License-Identifier: MIT */
/*
 * fdwait.c: the notifier thread behind zcbus_sub_fd and zcbus_waitset_fd
 * (fdwait.h). Its loop, under the list's lock:
 *   1. load every watched data word (SC),
 *   2. for every waiting watch, look at the slot of its cursor: if a
 *      message (or anything final) is there, or the entry was evicted,
 *      take the watch (waiting 1 -> 0) and write its eventfd,
 *   3. arm each table's data word (the same arm as any sleeper: K), and
 *      sleep on all of them and on the control word (futex_waitv),
 *      unlocked; then relay (R) every word that moved.
 * A producer's bump after step 1 ends the sleep of step 3; one before it
 * was preceded by the message's stamp, which step 2 sees (C / D, with the
 * notifier as the sleeper). The owner re-arms a watch by publishing its
 * cursor, then waiting = 1 (SC), then looking at the slot itself (SC):
 * either it sees the message and signals, or the notifier's step 2 that
 * follows sees waiting = 1 and the message; the arm it does not raise
 * itself is the notifier's, raised before every sleep.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "fdwait.h"
#include "futex.h"
#include "macro.h"
#include "wait.h"

#define FDWAIT_WORDS_MAX (WAIT_ANY_MAX - 1) /* one is the control word */

static struct {
        pthread_mutex_t lock;
        pthread_once_t once;
        bool started;
        struct fdwait_watch *head;
        unsigned n;
        au32 control; /* bumped when the list changes */
} nt = {.lock = PTHREAD_MUTEX_INITIALIZER, .once = PTHREAD_ONCE_INIT};

int fdwait_sink_init(struct fdwait_sink *k) {
        k->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        store_rlx(&k->begun, 0);
        store_rlx(&k->done, 0);
        k->seen_begun = k->seen_done = 0;
        return k->efd < 0 ? negerrno() : 0;
}

void fdwait_sink_close(struct fdwait_sink *k) {
        closep(&k->efd);
        k->efd = -1; /* closed once: a second close must not hit a reused number */
}

/* From the notifier, or from the owner's own re-arm. */
static void sink_signal(struct fdwait_sink *k) {
        uint64_t one = 1;
        atomic_fetch_add_explicit(&k->begun, 1, memory_order_seq_cst);
        (void)!write(k->efd, &one, sizeof(one));
        atomic_fetch_add_explicit(&k->done, 1, memory_order_seq_cst);
}

/* The owner's. */
void fdwait_drain(struct fdwait_sink *k) {
        uint32_t b = load_sc(&k->begun), d = load_sc(&k->done);
        uint64_t v;

        if (b == k->seen_begun && d == k->seen_done)
                return;
        k->seen_begun = b;
        k->seen_done = d;
        (void)!read(k->efd, &v, sizeof(v));
}

/* Would a receive from the watch's cursor return at once? (SC stamp load:
 * the re-check of C.) A marker or a bad slot counts: the receive then
 * steps over it or says so. A producer's watch: is there room? */
static bool watch_ready(const struct fdwait_watch *w) {
        const struct ring_sub *rs = w->rs;
        uint64_t seq;

        if (w->pm)
                return ring_pub_room_now(w->pm);
        seq = load_acq(&w->seq);
        if (seg_stamp_state(load_sc(&seg_slot(rs->m, seq)->stamp), seq) != SEG_STAMP_NOT_YET)
                return true;
        return load_acq(&rs->st->state) == seg_sub_state_word(SEG_ENTRY_EVICTED, rs->table);
}

/* The words a watch waits on: a subscription's data word; a producer's
 * room words (every bound table) and the producers' data word. */
static unsigned watch_words(const struct fdwait_watch *w, struct wait_words *ww) {
        if (!w->pm) {
                ww[0] = ring_sub_words(w->rs);
                return 1;
        }
        unsigned n = ring_room_words_all(w->pm, ww);
        ww[n++] = ring_prod_data_words(w->pm);
        return n;
}

/* Raise the arms of a waiting watch (K), so that its wakers wake. Only a
 * waiting one: an arm left up would cost a waker a system call for
 * nobody. */
static void watch_arm(const struct fdwait_watch *w) {
        struct wait_words ww[SEG_TABLES_MAX + 1];
        unsigned n = watch_words(w, ww);
        for (unsigned k = 0; k < n; k++)
                store_sc(ww[k].armed, 1);
}

/* Take a waiting watch that is ready, and signal it. */
static void watch_poke(struct fdwait_watch *w) {
        if (load_sc(&w->waiting) && watch_ready(w) &&
            atomic_exchange_explicit(&w->waiting, 0, memory_order_seq_cst))
                sink_signal(w->sink);
}

static void *notifier_main(void *arg) {
        struct wait_words ww[FDWAIT_WORDS_MAX + 1];
        au32 *words[FDWAIT_WORDS_MAX + 1];
        uint32_t vals[FDWAIT_WORDS_MAX + 1];
        sigset_t all;

        (void)arg;
        /* Signals are the application's threads' business. */
        sigfillset(&all);
        (void)pthread_sigmask(SIG_BLOCK, &all, NULL);
        for (;;) {
                unsigned n = 0;

                (void)pthread_mutex_lock(&nt.lock);
                vals[n] = load_sc(&nt.control);
                words[n++] = &nt.control;
                /* 1: every watch's words, each once (asleep on a word
                 * costs nobody anything)... */
                for (struct fdwait_watch *w = nt.head; w; w = w->next) {
                        struct wait_words x[SEG_TABLES_MAX + 1];
                        unsigned nx = watch_words(w, x);
                        for (unsigned j = 0; j < nx && n < FDWAIT_WORDS_MAX + 1; j++) {
                                bool seen = false;
                                for (unsigned k = 1; k < n && !seen; k++)
                                        seen = words[k] == x[j].word;
                                if (seen)
                                        continue;
                                ww[n] = x[j];
                                words[n] = x[j].word;
                                vals[n++] = load_sc(x[j].word);
                        }
                }
                /* ... armed (K, after the loads) only for waiting ones,
                 * 2: then whoever is ready now. */
                for (struct fdwait_watch *w = nt.head; w; w = w->next)
                        if (load_sc(&w->waiting))
                                watch_arm(w);
                for (struct fdwait_watch *w = nt.head; w; w = w->next)
                        watch_poke(w);
                (void)pthread_mutex_unlock(&nt.lock);

                /* 3: capped, for a relay whose relayer stopped (R). */
                int r = futex_waitv_words(words, vals, n, now_ns() + WAIT_RELAY_SLICE_NS);
                if (r == -ENOSYS) {
                        /* No futex_waitv: look again every millisecond. */
                        (void)futex_wait(&nt.control, vals[0], now_ns() + 1000000u);
                }
                (void)pthread_mutex_lock(&nt.lock);
                /* The notifier matches every tag: the word it was woken on
                 * is relayed even unchanged (R), if still watched. */
                if (r > 0 && (unsigned)r < n && ww[r].relayed && load_sc(&nt.control) == vals[0])
                        wait_relay_woken(ww[r]);
                /* Relay (R) the words that moved, if they are still watched
                 * (a watch removed meanwhile may be unmapped). */
                for (unsigned k = 1; k < n; k++) {
                        if (!ww[k].relayed)
                                continue;
                        bool still = load_sc(&nt.control) == vals[0];
                        for (struct fdwait_watch *w = nt.head; w && !still; w = w->next)
                                still = !w->pm && ring_sub_words(w->rs).word == ww[k].word;
                        if (still && load_rlx(ww[k].word) != vals[k])
                                wait_relay(ww[k], vals[k]);
                }
                (void)pthread_mutex_unlock(&nt.lock);
        }
        return NULL;
}

static int start_err;

static void notifier_start(void) {
        pthread_attr_t a;
        pthread_t t;

        start_err = -pthread_attr_init(&a);
        if (start_err)
                return;
        (void)pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        (void)pthread_attr_setstacksize(&a, 64 * 1024 + sizeof(struct wait_words) * WAIT_ANY_MAX * 2);
        start_err = -pthread_create(&t, &a, notifier_main, NULL);
        (void)pthread_attr_destroy(&a);
}

static void control_bump(void) {
        wait_wake_all(&nt.control);
}

static int watch_add(struct fdwait_watch *w, unsigned words) {
        (void)pthread_once(&nt.once, notifier_start);
        if (start_err)
                return start_err;
        (void)pthread_mutex_lock(&nt.lock);
        if (nt.n + words > FDWAIT_WORDS_MAX) {
                (void)pthread_mutex_unlock(&nt.lock);
                return -EMFILE;
        }
        LIST_PREPEND(nt.head, w);
        nt.n += words;
        control_bump();
        (void)pthread_mutex_unlock(&nt.lock);
        return 0;
}

int fdwait_add(struct fdwait_watch *w, const struct ring_sub *rs, struct fdwait_sink *sink) {
        *w = (struct fdwait_watch){.rs = rs, .sink = sink};
        store_rlx(&w->seq, rs->next);
        store_rlx(&w->waiting, 1);
        int r = watch_add(w, 1);
        if (r < 0)
                w->rs = NULL;
        return r;
}

int fdwait_add_room(struct fdwait_watch *w, const struct seg_map *m, struct fdwait_sink *sink) {
        *w = (struct fdwait_watch){.pm = m, .sink = sink};
        store_rlx(&w->waiting, 1);
        int r = watch_add(w, m->g.sub_tables + 1);
        if (r < 0)
                w->pm = NULL;
        return r;
}

void fdwait_remove(struct fdwait_watch *w) {
        if (!w->rs && !w->pm)
                return;
        (void)pthread_mutex_lock(&nt.lock);
        LIST_REMOVE(nt.head, w);
        nt.n -= w->pm ? w->pm->g.sub_tables + 1 : 1;
        control_bump();
        (void)pthread_mutex_unlock(&nt.lock);
        w->rs = NULL;
        w->pm = NULL;
}

void fdwait_busy(struct fdwait_watch *w) {
        if (w->rs || w->pm)
                store_rlx(&w->waiting, 0);
}

void fdwait_rearm(struct fdwait_watch *w, uint64_t seq) {
        if (!w->rs && !w->pm)
                return;
        store_rel(&w->seq, seq);
        store_sc(&w->waiting, 1);
        /* The notifier did not arm this watch's words while it was not
         * waiting: raise them (K), then look (C). */
        watch_arm(w);
        watch_poke(w);
}
