/* SPDX-License-Identifier: MIT */
/*
 * xp_shm.c: the shm floor of the lab (xp_shm.h): raw shared memory (a
 * memfd mapped by both processes) with one atomic word each way and no
 * bus logic at all, the floor of this machine for handing a message to
 * another core. It owns its mappings and its layout; the waiting and the
 * slot geometry are zcbus's own (libbus/wait.h, libbus/layout.h), so the
 * floor differs from zcbus only in what a bus adds, and cannot drift.
 *
 * Deliberately minimal, so that it is a floor and not a second bus: a
 * message is "the word changed"; the payload lives in a zcbus-shaped slot
 * (a SEG_SLOT_DESC-byte descriptor, left unused, then the payload in the
 * same cache line, stride seg_slot_stride()). In lat, like zcbus, it
 * writes only the 8-byte counter of a SIZE-byte payload; in perf it is a
 * plain single-producer ring with one head word and one tail word per
 * subscriber, and the producer memsets every slot it fills exactly as the
 * zcbus producer does.
 *
 * Waiting, as --wait says, through wait_until(): spin never sleeps;
 * adaptive spins for the budget, then arms and sleeps, and its waker
 * (after its store and a full fence) makes a system call only when it
 * takes the arm; futex sleeps at once. In lat, the futex waker wakes
 * unconditionally (wait_wake_all), as the plain futex reference; in perf
 * it uses the arm discipline too, or
 * the reference would measure one FUTEX_WAKE per message instead of the
 * floor.
 */
#include <assert.h>
#include <limits.h>
#include <sched.h>
#include <time.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "futex.h"
#include "layout.h"
#include "macro.h"
#include "wait.h"
#include "xp_shm.h"
#include "zcbus.h"

#define IDLE_SLICE_NS (UINT64_C(100) * 1000000u) /* perf: re-check "done" this often */

/* ------------------------------------------------- one word, each way */

/* One direction of notification on one line: the value the waker
 * publishes and the wait engine's words for it. */
struct shm_line {
        au32 value; /* the message counter (or ring index) */
        au32 armed; /* wait.h: a sleeper wants a wake-up */
        au32 word;  /* wait.h: the futex word, bumped by each wake */
        uint8_t pad[SEG_LINE - 12];
};
static_assert(sizeof(struct shm_line) == SEG_LINE, "one cache line");

struct shm_wait {
        struct wait_how how;
        bool wake_all; /* lat --wait futex: wake at every post, announced or not */
};

static struct shm_wait shm_wait_for(uint32_t mode, uint32_t spin_us, bool futex_wakes_all) {
        struct shm_wait w = {.wake_all = futex_wakes_all && mode == ZCBUS_WAIT_FUTEX};

        wait_how_init(&w.how, mode, spin_us);
        return w;
}

static inline struct wait_words line_words(struct shm_line *l) {
        return (struct wait_words){.armed = &l->armed, .word = &l->word};
}

/* Publish v in l->value and wake per the mode. What was written before is
 * visible to whoever sees v. */
static inline void line_post(struct shm_line *l, uint32_t v, const struct shm_wait *w) {
        store_rel(&l->value, v); /* pairs with line_wait's loads */
        if (w->how.mode == ZCBUS_WAIT_SPIN)
                return; /* nobody sleeps */
        if (w->wake_all) {
                wait_wake_all(&l->word); /* its SC bump orders after the store */
                return;
        }
        full_fence(); /* store mine, then look at yours: pairs with wait_until's arm */
        (void)wait_wake_armed(line_words(l));
}

struct line_until {
        au32 *value;
        uint32_t old;
        au32 *done; /* NULL, or a word that ends the wait too */
};

static bool line_changed(void *ctx) {
        const struct line_until *u = ctx;

        return load_sc(u->value) != u->old || (u->done && load_sc(u->done));
}

/* Wait until l->value != old (then the payload behind it is visible) or
 * *done is set (done may be NULL), at most slice_ns (0: no limit). The
 * clock is read only when there is a spin budget or a limit. */
static int line_wait(struct shm_line *l, uint32_t old, au32 *done, const struct shm_wait *w, uint64_t slice_ns) {
        struct line_until u = {.value = &l->value, .old = old, .done = done};

        if (load_acq(&l->value) != old) /* pairs with line_post's store */
                return 0;
        return wait_until(&w->how, line_words(l), slice_ns ? now_ns() + slice_ns : 0, line_changed, &u, NULL);
}

/* The payload of slot i of a ring of zcbus-shaped slots at base. */
static inline uint8_t *shm_payload(uint8_t *base, uint64_t stride, uint64_t i) {
        return seg_payload((struct seg_slot *)(base + i * stride));
}

/* A zeroed shared mapping of *len bytes of a sealed-size memfd: what both
 * processes of a run map, made before the fork. On failure *len is 0, so
 * that shm_unmap() has nothing to do. */
static int shm_map(const char *name, size_t *len, uint8_t **ret) {
        _cleanup_close_ int fd = memfd_create(name, MFD_CLOEXEC);
        void *p = MAP_FAILED;

        if (fd >= 0 && ftruncate(fd, (off_t)*len) == 0)
                p = mmap(NULL, *len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) {
                int r = negerrno();
                *len = 0;
                return r;
        }
        *ret = p;
        return 0;
}

static void shm_unmap(uint8_t **p, size_t *len) {
        if (*p)
                (void)munmap(*p, *len);
        *p = NULL;
        *len = 0;
}

/* ================================================================ lat */

/* --- lat: one word each way, the counter at the start of a SIZE-byte
 * payload in a slot of its own. */

struct lat_shm {
        struct shm_wait w;
        uint8_t *map;
        size_t len, max;
        struct shm_line *ping, *pong; /* ping: written by the ping side */
        uint8_t *ping_buf, *pong_buf;
        uint32_t seq;
};

static int lat_shm_begin(void *st, enum bench_side side, int step, size_t size) {
        struct lat_shm *x = st;

        return size <= x->max ? 0 : -EMSGSIZE;
}

static int lat_shm_ping(void *st, uint64_t ctr) {
        struct lat_shm *x = st;
        uint32_t s = ++x->seq;
        uint64_t echo;
        int r;

        memcpy(x->ping_buf, &ctr, sizeof(ctr));
        line_post(x->ping, s, &x->w);
        r = line_wait(x->pong, s - 1, NULL, &x->w, 0);
        if (r < 0)
                return r;
        memcpy(&echo, x->pong_buf, sizeof(echo));
        return echo == ctr ? 0 : -EBADMSG;
}

static int lat_shm_pong(void *st, uint64_t *ret_ctr) {
        struct lat_shm *x = st;
        uint64_t ctr;
        int r = line_wait(x->ping, x->seq, NULL, &x->w, 0);

        if (r < 0)
                return r;
        x->seq++;
        memcpy(&ctr, x->ping_buf, sizeof(ctr));
        memcpy(x->pong_buf, &ctr, sizeof(ctr));
        line_post(x->pong, x->seq, &x->w);
        *ret_ctr = ctr;
        return 0;
}

static void lat_shm_free(void *st) {
        struct lat_shm *x = st;

        if (!x)
                return;
        shm_unmap(&x->map, &x->len);
        free(x);
}

static void lat_shm_freep(struct lat_shm **p) {
        lat_shm_free(*p);
}

static const struct lat_ops lat_shm_ops = {.begin = lat_shm_begin, .ping = lat_shm_ping, .pong = lat_shm_pong,
                                          .free = lat_shm_free};

int xp_shm_lat_new(const struct lat_cfg *cfg, struct lat_xp *ret) {
        _cleanup_(lat_shm_freep) struct lat_shm *x = calloc(1, sizeof(*x));
        uint64_t stride = seg_slot_stride((uint32_t)cfg->com.max_size);
        int r;

        if (!x)
                return -ENOMEM;
        x->w = shm_wait_for(cfg->shm_wait, cfg->com.spin_us, true);
        x->max = cfg->com.max_size;
        x->len = 2 * sizeof(struct shm_line) + 2 * stride;
        r = shm_map("zcbus-lat-shm", &x->len, &x->map);
        if (r < 0)
                return r;
        x->ping = (struct shm_line *)x->map;
        x->pong = x->ping + 1;
        x->ping_buf = shm_payload(x->map + 2 * sizeof(struct shm_line), stride, 0);
        x->pong_buf = shm_payload(x->map + 2 * sizeof(struct shm_line), stride, 1);
        *ret = (struct lat_xp){.ops = &lat_shm_ops, .st = TAKE_PTR(x), .kind = BENCH_XP_SHM};
        return 0;
}

/* =============================================================== perf */

/* --- perf: a single-producer ring; head word, one tail word per
 * subscriber, slots of the same geometry as the zcbus topic. */

struct perf_shm {
        const struct perf_cfg *cfg;
        struct shm_wait w;
        uint8_t *map;
        size_t len, size;
        struct shm_line *head, *done, *tails;
        uint8_t *slots;
        uint32_t n, mask;
        uint64_t stride;
};

static int perf_shm_prepare(void *st, size_t size) {
        struct perf_shm *x = st;
        const struct perf_cfg *cfg = x->cfg;
        size_t lines = (2 + (size_t)cfg->subscribers) * sizeof(struct shm_line);
        int r;

        shm_unmap(&x->map, &x->len);
        x->size = size;
        x->n = bench_perf_slots(size, cfg->com.slots);
        x->mask = x->n - 1;
        x->stride = seg_slot_stride((uint32_t)size);
        x->len = ALIGN_UP(lines, (size_t)4096) + (size_t)x->n * x->stride;
        r = shm_map("zcbus-perf-shm", &x->len, &x->map);
        if (r < 0)
                return r;
        x->head = (struct shm_line *)x->map;
        x->done = x->head + 1;
        x->tails = x->head + 2;
        x->slots = x->map + ALIGN_UP(lines, (size_t)4096);
        return 0;
}

static void perf_shm_detach(void *st) {
        struct perf_shm *x = st;

        shm_unmap(&x->map, &x->len);
}

static inline uint8_t *perf_shm_slot(const struct perf_shm *x, uint32_t i) {
        return shm_payload(x->slots, x->stride, i & x->mask);
}

/* Wait until the slowest subscriber leaves room for batch more slots
 * after head; min_tail caches its position. false: time to stop. */
static bool perf_shm_room(struct perf_shm *x, struct perf_ctl *ctl, uint32_t head, uint32_t batch,
                          uint32_t *min_tail, uint64_t *waits) {
        unsigned nsub = x->cfg->subscribers;

        while ((uint32_t)(head + batch - *min_tail) > x->n) {
                unsigned slow = 0;
                uint32_t m = head;
                for (unsigned c = 0; c < nsub; c++) {
                        uint32_t t = load_acq(&x->tails[c].value); /* pairs with the reader's line_post */
                        if ((uint32_t)(head - t) > (uint32_t)(head - m)) {
                                m = t;
                                slow = c;
                        }
                }
                *min_tail = m;
                if ((uint32_t)(head + batch - m) <= x->n)
                        break;
                (*waits)++;
                (void)line_wait(&x->tails[slow], m, NULL, &x->w, IDLE_SLICE_NS);
                if (load_rlx(&ctl->stop))
                        return false;
        }
        return true;
}

static int perf_shm_produce(void *st, unsigned idx, struct perf_ctl *ctl, struct perf_result *res) {
        struct perf_shm *x = st;
        uint32_t batch = MIN(x->cfg->batch, x->n), head = 0, min_tail = 0;
        size_t size = x->size;
        uint64_t waits = 0;

        while (!load_rlx(&ctl->stop) && perf_shm_room(x, ctl, head, batch, &min_tail, &waits)) {
                for (uint32_t i = 0; i < batch; i++) {
                        uint8_t *p = perf_shm_slot(x, head + i);
                        uint64_t tag = perf_tag(0, res->count + i);
                        memset(p + 8, 0xa5, size - 8); /* every byte written once */
                        memcpy(p, &tag, 8);
                }
                head += batch;
                res->count += batch;
                line_post(x->head, head, &x->w);
        }
        res->t_end = now_ns();
        res->waits = waits;
        store_sc(&x->done->value, 1);
        if (x->w.how.mode != ZCBUS_WAIT_SPIN)
                wait_wake_all(&x->head->word); /* subscribers asleep on head wait for done too */
        return 0;
}

static int perf_shm_consume(void *st, unsigned idx, struct perf_ctl *ctl, struct perf_result *res) {
        struct perf_shm *x = st;
        uint32_t batch = x->cfg->batch, tail = 0;
        size_t size = x->size;
        uint64_t sink = 0, count = 0, idle_count = UINT64_MAX;

        for (;;) {
                uint32_t h = load_acq(&x->head->value), n; /* pairs with the producer's post */

                if (h == tail) {
                        /* Idle: the only place a subscriber reads the clock. */
                        if (idle_count != count) {
                                res->t_end = now_ns();
                                idle_count = count;
                        }
                        if (load_acq(&x->done->value)) {
                                if (load_acq(&x->head->value) == tail)
                                        break;
                                continue;
                        }
                        (void)line_wait(x->head, tail, &x->done->value, &x->w, IDLE_SLICE_NS);
                        continue;
                }
                n = MIN(h - tail, batch);
                for (uint32_t i = 0; i < n; i++) {
                        const uint8_t *p = perf_shm_slot(x, tail + i);
                        uint64_t v, last;
                        memcpy(&v, p, 8);
                        memcpy(&last, p + size - 8, 8);
                        if (_unlikely_(v != perf_tag(0, count)))
                                return -EBADMSG;
                        sink ^= last;
                        count++;
                }
                tail += n;
                line_post(&x->tails[idx], tail, &x->w);
        }
        res->count = count;
        res->sink = sink;
        return 0;
}

static void perf_shm_free(void *st) {
        struct perf_shm *x = st;

        if (!x)
                return;
        shm_unmap(&x->map, &x->len);
        free(x);
}

static const struct perf_ops perf_shm_ops = {.prepare = perf_shm_prepare, .produce = perf_shm_produce,
                                            .consume = perf_shm_consume, .detach = perf_shm_detach,
                                            .free = perf_shm_free};

int xp_shm_perf_new(const struct perf_cfg *cfg, struct perf_xp *ret) {
        struct perf_shm *x;

        if (cfg->producers != 1)
                return -EOPNOTSUPP;
        x = calloc(1, sizeof(*x));
        if (!x)
                return -ENOMEM;
        x->cfg = cfg;
        x->w = shm_wait_for(cfg->com.wait, cfg->com.spin_us, false);
        *ret = (struct perf_xp){.ops = &perf_shm_ops, .st = x, .kind = BENCH_XP_SHM};
        return 0;
}

/* ============================================================ fan-out */

/* --- fan-out: the raw ring of perf with the plain scheme zcbus is
 * measured against: one arm word that any sleeper raises, and a producer
 * that, after its store and a full fence, takes the arm and wakes every
 * sleeper (FUTEX_WAKE INT_MAX) whenever it finds it raised. Its waiting
 * is written out here, on futex.h alone, rather than taken from wait.h:
 * the reference must stay the plain scheme whatever zcbus's wait engine
 * becomes. A subscriber spins as --wait says (spin: only; adaptive: for
 * the budget, yielding between checks past the first microseconds, as
 * zcbus does; futex: not at all), then reads the futex word, arms,
 * re-checks the head and sleeps.
 *
 * Under reliable the producer gates on the slowest subscriber's tail
 * (rescanned only when its cached minimum says the ring is full; a full
 * ring is polled in 20 us naps and counted as a wait); under latest it
 * never waits, and a subscriber lapped (or overwritten while it read,
 * which it sees from the head after an acquire fence) skips ahead and
 * counts the loss. Each slot holds the tag, then the producer's clock. */

#define FAN_SHM_NAP_NS 20000u

struct fan_shm_line {
        au32 head;  /* messages published */
        au32 armed; /* a sleeper wants a wake-up */
        au32 word;  /* the futex word, bumped by each wake */
        uint8_t pad[SEG_LINE - 12];
};
static_assert(sizeof(struct fan_shm_line) == SEG_LINE, "one cache line");

struct fan_shm_tail {
        au32 tail; /* subscriber: messages it is done with */
        uint8_t pad[SEG_LINE - 4];
};

struct fan_shm {
        struct fan_point p;
        uint8_t *map;
        size_t len;
        struct fan_shm_line *line;
        struct fan_shm_tail *tails;
        uint8_t *slots;
        uint32_t n, mask;
        uint64_t stride;
        /* producer */
        uint32_t head, min_tail;
        uint64_t waits, wakeups;
        /* subscriber */
        uint32_t tail;
        uint64_t sleeps, lost;
};

static int fan_shm_prepare(void *st, const struct fan_point *p) {
        struct fan_shm *x = st;
        size_t lines = sizeof(struct fan_shm_line) + (size_t)p->subs * sizeof(struct fan_shm_tail);

        shm_unmap(&x->map, &x->len);
        x->p = *p;
        x->n = p->slots;
        x->mask = x->n - 1;
        x->stride = seg_slot_stride((uint32_t)p->size);
        x->len = ALIGN_UP(lines, (size_t)4096) + (size_t)x->n * x->stride;
        x->head = x->min_tail = x->tail = 0;
        x->waits = x->wakeups = x->sleeps = x->lost = 0;
        if (p->size < 16)
                return -EMSGSIZE; /* the tag and the clock */
        int r = shm_map("zcbus-fanout-shm", &x->len, &x->map);
        if (r < 0)
                return r;
        x->line = (struct fan_shm_line *)x->map;
        x->tails = (struct fan_shm_tail *)(x->map + sizeof(struct fan_shm_line));
        x->slots = x->map + ALIGN_UP(lines, (size_t)4096);
        return 0;
}

static void fan_shm_detach(void *st) {
        struct fan_shm *x = st;

        shm_unmap(&x->map, &x->len);
}

/* Reliable: room for one more after head, or wait for the slowest. */
static void fan_shm_room(struct fan_shm *x) {
        while ((uint32_t)(x->head + 1 - x->min_tail) > x->n) {
                uint32_t m = x->head;
                for (unsigned c = 0; c < x->p.subs; c++) {
                        uint32_t t = load_acq(&x->tails[c].tail); /* pairs with the subscriber's store */
                        if ((uint32_t)(x->head - t) > (uint32_t)(x->head - m))
                                m = t;
                }
                x->min_tail = m;
                if ((uint32_t)(x->head + 1 - m) <= x->n)
                        break;
                x->waits++;
                struct timespec ts = {.tv_nsec = FAN_SHM_NAP_NS};
                (void)nanosleep(&ts, NULL);
        }
}

static int fan_shm_publish(void *st, uint64_t ctr) {
        struct fan_shm *x = st;
        uint64_t tag = perf_tag(0, ctr), ts;
        uint8_t *p;

        if (x->p.policy != ZCBUS_POLICY_LATEST)
                fan_shm_room(x);
        p = shm_payload(x->slots, x->stride, x->head & x->mask);
        memset(p + 16, 0xa5, x->p.size - 16); /* every byte written once */
        memcpy(p, &tag, 8);
        ts = now_ns();
        memcpy(p + 8, &ts, 8);
        x->head++;
        store_rel(&x->line->head, x->head); /* pairs with the subscriber's load_acq */
        if (x->p.wait == ZCBUS_WAIT_SPIN)
                return 0; /* nobody sleeps */
        full_fence(); /* store the head, then look at the arm: pairs with the sleeper's arm, re-check */
        if (load_rlx(&x->line->armed) &&
            atomic_exchange_explicit(&x->line->armed, 0, memory_order_seq_cst)) {
                (void)faa_sc(&x->line->word, 1);
                (void)futex_wake(&x->line->word, INT_MAX);
                x->wakeups++;
        }
        return 0;
}

/* Wait until the head moves past tail, at most until deadline. */
static bool fan_shm_wait(struct fan_shm *x, uint64_t deadline) {
        struct fan_shm_line *l = x->line;
        uint32_t mode = x->p.wait;

        if (mode != ZCBUS_WAIT_FUTEX) {
                uint64_t spin_end = mode == ZCBUS_WAIT_SPIN ? deadline : now_ns() + (uint64_t)x->p.spin_us * 1000u;
                for (unsigned i = 1;; i++) {
                        if (load_acq(&l->head) != x->tail)
                                return true;
                        cpu_relax();
                        if ((i & 127) == 0) {
                                uint64_t t = now_ns();
                                if (t >= deadline)
                                        return false;
                                if (t >= spin_end)
                                        break;
                                if (mode != ZCBUS_WAIT_SPIN)
                                        (void)sched_yield();
                        }
                }
        }
        for (;;) {
                uint32_t v = load_sc(&l->word);
                store_sc(&l->armed, 1); /* arm, then re-check: pairs with the producer's fence */
                if (load_sc(&l->head) != x->tail)
                        return true;
                x->sleeps++;
                (void)futex_wait(&l->word, v, deadline);
                if (load_acq(&l->head) != x->tail)
                        return true;
                if (now_ns() >= deadline)
                        return false;
        }
}

static int fan_shm_receive(void *st, unsigned idx, int timeout_ms, struct fan_rx *ret) {
        struct fan_shm *x = st;
        bool latest = x->p.policy == ZCBUS_POLICY_LATEST;
        uint64_t tag, ts;
        uint32_t h;

        for (;;) {
                const uint8_t *p;
                h = load_acq(&x->line->head); /* pairs with the producer's store_rel */
                if (h == x->tail) {
                        if (!fan_shm_wait(x, now_ns() + (uint64_t)timeout_ms * 1000000u))
                                return 0;
                        continue;
                }
                ret->now = now_ns();
                if (latest && (uint32_t)(h - x->tail) > x->n) {
                        x->lost += (uint32_t)(h - x->n - x->tail);
                        x->tail = h - x->n;
                }
                p = shm_payload(x->slots, x->stride, x->tail & x->mask);
                memcpy(&tag, p, 8);
                memcpy(&ts, p + 8, 8);
                if (latest) {
                        /* Overwritten while we read? The producer stores the
                         * head after writing the slot that laps ours. */
                        atomic_thread_fence(memory_order_acquire);
                        if ((uint32_t)(load_acq(&x->line->head) - x->tail) >= x->n) {
                                x->lost++;
                                x->tail++;
                                continue;
                        }
                }
                break;
        }
        x->tail++;
        if (!latest)
                store_rel(&x->tails[idx].tail, x->tail); /* pairs with the producer's load_acq */
        ret->ctr = tag & PERF_CTR_MASK;
        ret->ts_ns = ts;
        ret->lost = x->lost;
        x->lost = 0;
        return 1;
}

static void fan_shm_pub_counts(void *st, uint64_t *ret_waits, uint64_t *ret_wakeups) {
        struct fan_shm *x = st;

        *ret_waits = x->waits;
        *ret_wakeups = x->wakeups;
}

static void fan_shm_sub_counts(void *st, uint64_t *ret_sleeps) {
        *ret_sleeps = ((struct fan_shm *)st)->sleeps;
}

static void fan_shm_free(void *st) {
        struct fan_shm *x = st;

        if (!x)
                return;
        shm_unmap(&x->map, &x->len);
        free(x);
}

static const struct fan_ops fan_shm_ops = {.prepare = fan_shm_prepare, .publish = fan_shm_publish,
                                          .receive = fan_shm_receive, .pub_counts = fan_shm_pub_counts,
                                          .sub_counts = fan_shm_sub_counts, .detach = fan_shm_detach,
                                          .free = fan_shm_free};

int xp_shm_fan_new(struct fan_xp *ret) {
        struct fan_shm *x = calloc(1, sizeof(*x));

        if (!x)
                return -ENOMEM;
        *ret = (struct fan_xp){.ops = &fan_shm_ops, .st = x, .kind = BENCH_XP_SHM};
        return 0;
}
