/*
 * ring.c: the data plane. One ring of slots per topic; many producers
 * claim sequences with one fetch-add and publish each slot with a stamp;
 * every subscriber has its own cursor and reads slots in place.
 *
 * Ordering points (docs/design.md has the table and the arguments):
 *   A  producer: payload + descriptor, then stamp = seq+1 (release/SC)
 *   B  reader: stamp (acquire), then descriptor + payload       [pairs A]
 *   C  reader about to sleep: data_waiters++ (SC), load data_word (SC),
 *      re-load the stamp (SC)                                 [pairs D]
 *   D  producer after publishing: full fence, load data_waiters; if set
 *      (and armed, K), bump data_word and FUTEX_WAKE          [pairs C]
 *   E  reader releasing: floor = new floor (release) and a full fence
 *      (LATEST: the SC clear of its hold bit), then load room_waiters;
 *      if set (and armed, K), bump room_word and FUTEX_WAKE  [pairs F]
 *   F  producer about to sleep for room: room_waiters++ (SC), load
 *      room_word (SC), re-scan floors (SC)                   [pairs E]
 *   G  new subscriber: floor = f (SC), gen++ (SC), load head (SC);
 *      producer: head fetch-add (SC), load gen (SC): a producer that
 *      missed the new floor claimed below the head the subscriber read,
 *      and the subscriber raises its floor past what it can overwrite
 *   H  LATEST reader taking a hold: hold[slot]++ (SC), re-load stamp (SC)
 *   I  LATEST producer reusing a slot: stamp = WRITING|seq+1 (SC), then
 *      load hold[slot] (SC): one of H/I sees the other; a held slot is
 *      not written but stamped SKIPPED, and the producer moves on [pairs H]
 *   K  sleepers arm (armed = 1, SC) after reading the futex word and
 *      before re-checking; wakers wake only if they take the arm
 *      (exchange to 0, SC) after their store and fence [pairs C-F]
 *   J  producer claim record: claim = PENDING|head (release) before the
 *      fetch-add, the sequence after; the broker reads head, then the
 *      claims, then the stamps, so a dead producer's hole is found
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <string.h>

#include "futex.h"
#include "macro.h"
#include "ring.h"

static inline uint64_t floor_plus_n(uint64_t floor, uint32_t n) {
        /* floor + n, saturating: SEG_FLOOR_NONE gates nothing. */
        return floor > UINT64_MAX - n ? UINT64_MAX : floor + n;
}

void ring_wait_init(struct ring_wait *w, uint32_t mode, uint32_t spin_us) {
        w->mode = (mode == ZCBUS_WAIT_DEFAULT || mode > ZCBUS_WAIT_FUTEX) ? ZCBUS_WAIT_ADAPTIVE : mode;
        w->spin_us = spin_us ? spin_us : RING_SPIN_US_DEFAULT;
}

/*
 * The one waiting engine: spin (per mode), then announce on *waiters,
 * re-check, sleep on *word; the waker side checks *waiters after making
 * its change (points C/D and E/F). ready() must load with seq_cst what the
 * waker stores.
 */
typedef bool (*ready_fn)(void *ctx);

static int wait_until(const struct ring_wait *w, au32 *waiters, au32 *armed, au32 *word, uint64_t deadline,
                      ready_fn ready, void *ctx, uint64_t *sleeps) {
        if (w->mode != ZCBUS_WAIT_FUTEX) {
                bool spin_only = w->mode == ZCBUS_WAIT_SPIN;
                uint64_t spin_end = spin_only ? UINT64_MAX : now_ns() + (uint64_t)w->spin_us * 1000u;
                for (unsigned i = 1;; i++) {
                        if (ready(ctx))
                                return 0;
                        cpu_relax();
                        /* The clock only when something can end the spin. */
                        if ((i & 127) == 0 && (deadline || !spin_only)) {
                                uint64_t t = now_ns();
                                if (deadline && t >= deadline)
                                        return -ETIMEDOUT;
                                if (t >= spin_end)
                                        break;
                                /* Past the first few microseconds a prompt
                                 * answer is not coming: let whoever shares
                                 * this CPU (another subscriber, the producer)
                                 * run instead of burning the slice. */
                                if (!spin_only)
                                        (void)sched_yield();
                        }
                }
        }
        for (;;) {
                int r = 0;

                (void)faa_sc(waiters, 1);           /* C / F */
                uint32_t v = load_sc(word);
                /* Arm after reading the word: a waker that takes the arm
                 * bumps the word after we read it, so the sleep below
                 * cannot miss that wake-up (K). */
                store_sc(armed, 1);
                if (!ready(ctx)) {
                        if (sleeps)
                                (*sleeps)++;
                        r = futex_wait(word, v, deadline);
                }
                (void)fas_sc(waiters, 1);
                if (ready(ctx))
                        return 0;
                if (r < 0)
                        return r;
                if (deadline && now_ns() >= deadline)
                        return -ETIMEDOUT;
        }
}

static void wake_all(au32 *word) {
        (void)faa_sc(word, 1);
        (void)futex_wake(word, INT_MAX);
}

/* The hot side's wake-up (after its store and full fence, D / E): only if
 * someone sleeps, and only once per arming (K): sleepers that were woken
 * but have not run yet do not cost every later publish a system call. */
static bool wake_armed(au32 *waiters, au32 *armed, au32 *word) {
        if (load_rlx(waiters) == 0 || atomic_exchange_explicit(armed, 0, memory_order_seq_cst) == 0)
                return false;
        wake_all(word);
        return true;
}

/* ---------------------------------------------------------------- producer */

void ring_pub_init(struct ring_pub *p, const struct seg_map *m, uint32_t index, struct ring_wait wait) {
        *p = (struct ring_pub){
                .m = m,
                .me = seg_prod(m, index),
                .index = index % m->g.max_producers,
                .wait = wait,
                .room_end = 0,
                .gen = load_sc(&seg_subs_notify(m)->gen) - 1, /* force a first scan */
                .claim = SEG_CLAIM_NONE,
                .reliable = m->g.policy != ZCBUS_POLICY_LATEST,
        };
}

/* Lowest floor over all subscriber entries (SC loads: point F/I). */
static uint64_t scan_floors(const struct seg_map *m) {
        uint64_t g = SEG_FLOOR_NONE;
        for (uint32_t i = 0; i < m->g.max_subs; i++) {
                uint64_t f = load_sc(&seg_sub(m, i)->floor);
                if (f < g)
                        g = f;
        }
        return g;
}

/* Re-compute the cached gate from the floors. */
static void rescan(struct ring_pub *p) {
        p->room_end = floor_plus_n(scan_floors(p->m), p->m->g.slot_count);
}

/* Is the slot of seq free to be written, as far as subscribers go? Uses
 * the cached gate and re-scans only when the gate says no. */
static bool room_for(struct ring_pub *p, uint64_t seq) {
        if (seq < p->room_end)
                return true;
        rescan(p);
        return seq < p->room_end;
}

/* ... then take the new gen and re-scan under it. */
static void regate(struct ring_pub *p) {
        p->gen = load_sc(&seg_subs_notify(p->m)->gen);
        rescan(p);
}

enum room_kind {
        ROOM_PREV, /* the previous lap's producer has published the slot */
        ROOM_GATE, /* every subscriber is less than a ring behind seq */
};

struct room_ctx {
        struct ring_pub *p;
        uint64_t seq;
        enum room_kind kind;
};

static bool room_ready(void *c) {
        struct room_ctx *x = c;
        const struct seg_map *m = x->p->m;

        switch (x->kind) {
        case ROOM_PREV:
                return ring_prev_done(m, x->seq);
        case ROOM_GATE:
        default:
                return room_for(x->p, x->seq);
        }
}

static int wait_room(struct ring_pub *p, uint64_t seq, enum room_kind kind, uint64_t deadline, bool may_wait) {
        struct room_ctx x = {.p = p, .seq = seq, .kind = kind};
        struct seg_subs_notify *sn = seg_subs_notify(p->m);
        uint64_t dummy = 0;

        if (room_ready(&x))
                return 0;
        if (!may_wait)
                return -EAGAIN;
        stat_inc(&p->me->waits, 1);
        /* Waiting for another producer's publish is waiting for data: it
         * wakes data sleepers (D). Room and holds are freed by readers (E). */
        if (kind == ROOM_PREV)
                return wait_until(&p->wait, &sn->data_waiters, &sn->data_armed, &seg_ring_notify(p->m)->data_word,
                                  deadline, room_ready, &x, &dummy);
        return wait_until(&p->wait, &sn->room_waiters, &sn->room_armed, &sn->room_word, deadline, room_ready, &x,
                          &dummy);
}

/* Stamp seq's slot as a marker readers step over (ABANDONED: its
 * producer gave up on it; SKIPPED: a reader held the old message). Only
 * the descriptor is written, never the payload, so it is safe while a
 * LATEST reader holds the old message. */
static void mark_slot(const struct seg_map *m, uint64_t seq, uint32_t producer, uint32_t flag) {
        struct seg_slot *s = seg_slot(m, seq);
        /* I: a LATEST reader may be reading the descriptor of the lap
         * before; WRITING first makes its re-check fail. */
        if (load_rlx(&s->stamp) != (SEG_STAMP_WRITING | ring_stamp(seq)))
                store_sc(&s->stamp, SEG_STAMP_WRITING | ring_stamp(seq));
        store_rlx(&s->len, 0);
        store_rlx(&s->flags, flag);
        s->producer = producer;
        store_sc(&s->stamp, ring_stamp(seq)); /* A */
}

/* Wait until the claimed seq's slot may be stamped: the lap before is
 * published, and (RELIABLE) every subscriber is past it. */
static int wait_slot(struct ring_pub *p, uint64_t t, uint64_t deadline, bool may_wait) {
        int r = wait_room(p, t, ROOM_PREV, deadline, may_wait);
        if (r < 0 || p->m->g.policy == ZCBUS_POLICY_LATEST)
                return r;
        return wait_room(p, t, ROOM_GATE, deadline, may_wait);
}

/* Settle a claim left over from a timed-out call: its slots are written
 * off as abandoned once they are free. */
static int settle_claim(struct ring_pub *p, uint64_t deadline, bool may_wait) {
        while (p->nwritten < p->nclaim) {
                uint64_t t = p->claim + p->nwritten;
                int r = wait_slot(p, t, deadline, may_wait);
                if (r < 0)
                        return r;
                mark_slot(p->m, t, p->index, SEG_SLOT_ABANDONED);
                stat_inc(&p->me->abandoned, 1);
                p->nwritten++;
        }
        p->claim = SEG_CLAIM_NONE;
        p->nclaim = p->nwritten = 0;
        store_rel(&p->me->claim, SEG_CLAIM_NONE);
        return 0;
}

/* RELIABLE: get each claimed slot ready to be written. */
static int prepare_slots(struct ring_pub *p, uint64_t deadline, bool may_wait) {
        for (uint32_t i = p->nwritten; i < p->nclaim; i++) {
                int r = wait_slot(p, p->claim + i, deadline, may_wait);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Is any slot of the ring free of holds? (SC loads: point F) */
static bool some_slot_unheld(void *c) {
        const struct seg_map *m = ((struct ring_pub *)c)->m;
        for (uint64_t i = 0; i < m->g.slot_count; i++)
                if (!seg_held(m, i))
                        return true;
        return false;
}

/* LATEST: claim one sequence whose slot nobody holds. A held slot is
 * stamped SKIPPED (readers step over it) and the producer claims again:
 * it waits for readers only if they hold every slot. */
static int claim_latest(struct ring_pub *p, uint64_t deadline, bool may_wait, uint64_t *ret_seq) {
        const struct seg_map *m = p->m;
        struct seg_ring_head *hd = seg_head(m);
        struct seg_subs_notify *sn = seg_subs_notify(m);
        uint32_t skips = 0;

        for (;;) {
                if (skips >= m->g.slot_count) {
                        /* A whole lap of held slots. Holds come and go (a
                         * reader's hold on a slot that turned out to be
                         * overwritten lasts an instant), so only if every
                         * slot is held right now is there nothing to do but
                         * wait for a release, within the timeout. */
                        skips = 0;
                        if (!some_slot_unheld(p)) {
                                uint64_t dummy = 0;
                                if (!may_wait)
                                        return -EAGAIN;
                                stat_inc(&p->me->waits, 1);
                                int r = wait_until(&p->wait, &sn->room_waiters, &sn->room_armed, &sn->room_word,
                                                   deadline, some_slot_unheld, p, &dummy);
                                if (r < 0)
                                        return r;
                        }
                }
                uint64_t h = load_rlx(&hd->head);
                if (_unlikely_(h > SEG_SEQ_LIMIT))
                        return -EOVERFLOW;
                uint64_t t = ring_take_seqs(p, h, 1);
                store_rel(&p->me->claim, t); /* J */
                p->claim = t;
                p->nclaim = 1;
                p->nwritten = 0;
                if (_unlikely_(t > SEG_SEQ_LIMIT))
                        return -EOVERFLOW;
                int r = wait_room(p, t, ROOM_PREV, deadline, may_wait);
                if (r < 0)
                        return r; /* kept: settled by the next call */
                struct seg_slot *sl = seg_slot(m, t);
                store_sc(&sl->stamp, SEG_STAMP_WRITING | ring_stamp(t)); /* I */
                if (!seg_held(m, t)) {                                   /* I */
                        *ret_seq = t;
                        return 0;
                }
                mark_slot(m, t, p->index, SEG_SLOT_SKIPPED);
                stat_inc(&p->me->skipped, 1);
                p->claim = SEG_CLAIM_NONE;
                p->nclaim = 0;
                store_rel(&p->me->claim, SEG_CLAIM_NONE);
                ring_pub_notify(p); /* readers may wait at t */
                skips++;
                if (may_wait && deadline && now_ns() >= deadline)
                        return -ETIMEDOUT;
        }
}

/* RELIABLE, the fetch-add handed out s..s+n-1: record them, then wait
 * until each slot may be written. */
int ring_pub_claim_taken(struct ring_pub *p, uint64_t s, uint32_t n, uint64_t deadline, bool may_wait,
                         uint64_t *ret_seq) {
        int r;

        store_rel(&p->me->claim, s); /* J */
        if (_unlikely_(s > SEG_SEQ_LIMIT + 1 - n))
                /* Unreachable in practice (2^63 messages); the claim stays
                 * recorded for the broker, which writes it off. */
                return -EOVERFLOW;
        p->claim = s;
        p->nclaim = n;
        p->nwritten = 0;
        if (ring_gen_moved(p)) /* G */
                regate(p);
        r = prepare_slots(p, deadline, may_wait);
        if (r < 0)
                return r; /* the claim is kept and settled by the next call */
        *ret_seq = s;
        return 0;
}

int ring_pub_claim_slow(struct ring_pub *p, uint32_t n, int timeout_ms, uint64_t *ret_seq) {
        const struct seg_map *m = p->m;
        uint64_t deadline = deadline_from_ms(timeout_ms);
        bool may_wait = timeout_ms != 0;
        uint64_t h;
        int r;

        if (n == 0 || n > m->g.slot_count)
                return -EINVAL;
        if (p->claim != SEG_CLAIM_NONE) {
                r = settle_claim(p, deadline, may_wait);
                ring_pub_notify(p); /* readers may wait at the sequences written off */
                if (r < 0)
                        return r == -ETIMEDOUT && !may_wait ? -EAGAIN : r;
        }
        if (!p->reliable) {
                if (n != 1)
                        return -EINVAL;
                return claim_latest(p, deadline, may_wait, ret_seq);
        }

        /* Look before claiming: with one producer this check is exact, so
         * a timeout never leaves a claim behind. */
        h = load_rlx(&seg_head(m)->head);
        if (_unlikely_(h > SEG_SEQ_LIMIT + 1 - n))
                return -EOVERFLOW; /* the sequence space is used up */
        if (ring_gen_moved(p))
                regate(p);
        r = wait_room(p, h + n - 1, ROOM_GATE, deadline, may_wait);
        if (r < 0)
                return r;
        return ring_pub_claim_taken(p, ring_take_seqs(p, h, n), n, deadline, may_wait, ret_seq);
}

/* The wake-up half of ring_pub_notify: once per arming (K). */
void ring_pub_wake(struct ring_pub *p) {
        struct seg_subs_notify *sn = seg_subs_notify(p->m);
        if (wake_armed(&sn->data_waiters, &sn->data_armed, &seg_ring_notify(p->m)->data_word))
                stat_inc(&p->me->wakeups, 1);
}

void ring_pub_deinit(struct ring_pub *p) {
        if (!p || !p->m)
                return;
        if (p->claim != SEG_CLAIM_NONE && settle_claim(p, 0, false) < 0) {
                /* Slots not free yet: the claim stays recorded and the
                 * broker writes it off when they are. */
                ring_pub_notify(p);
                store_rel(&p->me->state, SEG_ENTRY_CLOSING);
                p->m = NULL;
                return;
        }
        ring_pub_notify(p);
        store_rel(&p->me->state, SEG_ENTRY_CLOSING);
        p->m = NULL;
}

/* -------------------------------------------------------------- subscriber */

/* The wake-up half of ring_sub_publish_floor (E, K). */
void ring_sub_wake_room(struct ring_sub *s) {
        struct seg_subs_notify *sn = seg_subs_notify(s->m);
        (void)wake_armed(&sn->room_waiters, &sn->room_armed, &sn->room_word);
}

int ring_sub_init(struct ring_sub *s, const struct seg_map *m, uint32_t index, uint32_t history,
                  uint32_t max_holds, uint64_t *held, struct ring_wait wait) {
        struct seg_subs_notify *sn = seg_subs_notify(m);
        uint32_t n = m->g.slot_count;
        uint64_t h, f;

        if (max_holds == 0 || max_holds > RING_MAX_HOLDS_LIMIT || !held)
                return -EINVAL;
        *s = (struct ring_sub){
                .m = m,
                .me = seg_sub(m, index),
                .index = index % m->g.max_subs,
                .wait = wait,
                .held = held,
                .max_holds = max_holds,
                .reliable = m->g.policy != ZCBUS_POLICY_LATEST,
        };
        /* Untrusted head: clamp into [start_seq, SEG_SEQ_LIMIT]. */
        h = load_acq(&seg_head(m)->head);
        if (h < m->g.start_seq || h > SEG_SEQ_LIMIT)
                h = m->g.start_seq;
        history = MIN(history, n);
        f = h - MIN((uint64_t)history, h - m->g.start_seq);

        if (m->g.policy != ZCBUS_POLICY_LATEST) {
                /* G: publish the floor, tell producers to re-scan, then see
                 * how far they may have claimed without seeing it. */
                store_sc(&s->me->floor, f);
                (void)faa_sc(&sn->gen, 1);
                h = load_sc(&seg_head(m)->head);
                if (h <= SEG_SEQ_LIMIT && h >= n && f < h - n)
                        f = h - n;
                /* A raise: a producer may already sleep on the first value. */
                ring_sub_publish_floor(s, f);
        }
        s->next = f;
        store_rlx(&s->me->next, f);
        return 0;
}

/* What the slot at the cursor says. */
enum slot_state { SLOT_EMPTY, SLOT_READY, SLOT_LAPPED };

static inline enum slot_state slot_state_of(uint64_t v, uint64_t seq) {
        uint64_t want = ring_stamp(seq);
        if (v == want)
                return SLOT_READY;
        if ((v & SEG_STAMP_SEQ_MASK) > want)
                return SLOT_LAPPED;
        return SLOT_EMPTY; /* older, or being written */
}

bool ring_sub_ready(struct ring_sub *s) {
        uint64_t v = load_sc(&seg_slot(s->m, s->next)->stamp); /* C */
        return slot_state_of(v, s->next) != SLOT_EMPTY;
}

/* Lapped under LATEST: jump to the newest message. */
static void skip_ahead(struct ring_sub *s, uint64_t *lost) {
        uint64_t h = load_acq(&seg_head(s->m)->head);
        uint64_t to;

        if (h > SEG_SEQ_LIMIT || h <= s->next)
                to = s->next + 1; /* nonsense head: step one at a time */
        else
                to = h - 1;
        if (to <= s->next)
                to = s->next + 1;
        *lost += to - s->next;
        s->next = to;
}

/* Take whatever is at the cursor without waiting. Returns 1 with *msg
 * filled, 0 if nothing is there, or a negative errno. */
static int take_one(struct ring_sub *s, zcbus_msg *msg) {
        const struct seg_map *m = s->m;
        bool latest = m->g.policy == ZCBUS_POLICY_LATEST;

        for (unsigned guard = 0; guard < 1024; guard++) {
                uint64_t c = s->next;
                struct seg_slot *sl = seg_slot(m, c);
                uint64_t v = load_acq(&sl->stamp); /* B */

                switch (slot_state_of(v, c)) {
                case SLOT_EMPTY:
                        return 0;
                case SLOT_LAPPED:
                        skip_ahead(s, &s->pending_lost);
                        continue;
                case SLOT_READY:
                        break;
                }
                uint32_t len = load_rlx(&sl->len), flags = load_rlx(&sl->flags);
                uint64_t ts = load_rlx(&sl->ts_ns);
                bool had = false;
                if (latest) {
                        /* H: take the hold, then make sure the slot still
                         * holds c; the descriptor read above is then c's
                         * (every writer marks WRITING before touching it).
                         * If this subscriber held the slot already (an older
                         * message under markers), the hold stays. */
                        had = seg_hold_take(m, c, s->index);
                        if (load_sc(&sl->stamp) != v) {
                                if (!had)
                                        seg_hold_drop(m, c, s->index);
                                continue; /* overwritten meanwhile: look again */
                        }
                }
                if (flags & (SEG_SLOT_ABANDONED | SEG_SLOT_SKIPPED) || len > m->g.slot_size) {
                        /* A marker, or nonsense from a producer (refused with
                         * -EBADMSG): step over it. */
                        if (latest && !had)
                                seg_hold_drop(m, c, s->index);
                        s->next = c + 1;
                        s->skipped++;
                        if (flags & (SEG_SLOT_ABANDONED | SEG_SLOT_SKIPPED))
                                continue;
                        return -EBADMSG;
                }
                *msg = (zcbus_msg){
                        .data = seg_payload(sl),
                        .len = len,
                        .seq = c,
                        .timestamp_ns = ts,
                        .lost = s->pending_lost,
                };
                s->lost += s->pending_lost;
                s->pending_lost = 0;
                s->held[s->nheld++] = c;
                s->next = c + 1;
                /* Pull a later slot's first line in ahead of time: when the
                 * producer is ahead, its lines are ready and the miss is
                 * hidden behind this message's processing. */
                __builtin_prefetch(seg_slot(m, c + 3), 0, 3);
                return 1;
        }
        return 0;
}

static bool sub_ready_cb(void *c) {
        return ring_sub_ready(c);
}

int ring_sub_recv_slow(struct ring_sub *s, zcbus_msg *msgs, uint32_t n, int timeout_ms) {
        uint64_t deadline = 0;
        uint32_t got = 0;
        int r;

        if (n == 0)
                return -EINVAL;
        for (;;) {
                while (got < n) {
                        if (s->nheld >= s->max_holds) {
                                if (got)
                                        break;
                                return -ENOBUFS;
                        }
                        r = take_one(s, &msgs[got]);
                        if (r < 0) {
                                if (got)
                                        break;
                                if (s->m->g.policy != ZCBUS_POLICY_LATEST && ring_floor_of(s) != s->pub_floor)
                                        ring_sub_publish_floor(s, ring_floor_of(s));
                                return r;
                        }
                        if (r == 0)
                                break;
                        got++;
                }
                if (got) {
                        s->received += got;
                        store_rlx(&s->me->lost, s->lost);
                        store_rlx(&s->me->received, s->received);
                        store_rlx(&s->me->next, s->next);
                        store_rlx(&s->me->held, s->nheld);
                        return (int)got;
                }
                /* RELIABLE: markers stepped over moved the cursor without a
                 * release; before waiting, let producers see it, or a lap
                 * of markers could leave both sides waiting. */
                if (s->m->g.policy != ZCBUS_POLICY_LATEST && ring_floor_of(s) != s->pub_floor)
                        ring_sub_publish_floor(s, ring_floor_of(s));
                if (timeout_ms == 0)
                        return -EAGAIN;
                if (!deadline && timeout_ms > 0)
                        deadline = deadline_from_ms(timeout_ms);
                r = wait_until(&s->wait, &seg_subs_notify(s->m)->data_waiters, &seg_subs_notify(s->m)->data_armed,
                               &seg_ring_notify(s->m)->data_word, deadline, sub_ready_cb, s, &s->sleeps);
                if (s->sleeps)
                        store_rlx(&s->me->sleeps, s->sleeps);
                if (r < 0)
                        return r;
                /* Woken for a message: the short way, when it applies. */
                if (ring_recv_fast_ok(s, n) && ring_take_fast(s, msgs))
                        return 1;
        }
}

int ring_sub_release_slow(struct ring_sub *s, const void *seqs, size_t stride, uint32_t n) {
        bool latest = s->m->g.policy == ZCBUS_POLICY_LATEST;
        uint64_t after;

        /* Fast path: the oldest holds, in the order received (recv then
         * release, or a batch released whole): O(n). */
        uint32_t k0 = 0;
        while (k0 < n && k0 < s->nheld && s->held[k0] == ring_seq_at(seqs, stride, k0))
                k0++;
        if (k0 == n) {
                if (latest)
                        for (uint32_t k = 0; k < n; k++)
                                seg_hold_drop(s->m, ring_seq_at(seqs, stride, k), s->index); /* H; E */
                memmove(s->held, s->held + n, (s->nheld - n) * sizeof(s->held[0]));
                s->nheld -= n;
                goto released;
        }
        /* All or nothing: every sequence must be held, once. */
        for (uint32_t k = 0; k < n; k++) {
                uint32_t count = 0;
                for (uint32_t i = 0; i < s->nheld; i++)
                        count += s->held[i] == ring_seq_at(seqs, stride, k);
                for (uint32_t j = 0; j < k; j++)
                        count -= count && ring_seq_at(seqs, stride, j) == ring_seq_at(seqs, stride, k);
                if (count == 0)
                        return -ENOENT;
        }
        for (uint32_t k = 0; k < n; k++) {
                uint32_t i;
                for (i = 0; i < s->nheld; i++)
                        if (s->held[i] == ring_seq_at(seqs, stride, k))
                                break;
                /* Keep the rest in the order received. */
                memmove(s->held + i, s->held + i + 1, (s->nheld - i - 1) * sizeof(s->held[0]));
                s->nheld--;
                if (latest)
                        seg_hold_drop(s->m, ring_seq_at(seqs, stride, k), s->index); /* H: payload reads done; E */
        }
released:
        store_rlx(&s->me->held, s->nheld);
        if (latest) {
                struct seg_subs_notify *sn = seg_subs_notify(s->m);
                /* E (the hold drops above were SC): a producer may wait
                 * because it found every slot held. */
                (void)wake_armed(&sn->room_waiters, &sn->room_armed, &sn->room_word);
                return 0;
        }
        after = ring_floor_of(s);
        if (after != s->pub_floor)
                ring_sub_publish_floor(s, after);
        return 0;
}

void ring_sub_announce(struct ring_sub *s, au32 **ret_word, uint32_t *ret_val) {
        struct seg_subs_notify *sn = seg_subs_notify(s->m);
        (void)faa_sc(&sn->data_waiters, 1); /* C */
        *ret_word = &seg_ring_notify(s->m)->data_word;
        *ret_val = load_sc(*ret_word);
        store_sc(&sn->data_armed, 1); /* K: after reading the word */
}

void ring_sub_unannounce(struct ring_sub *s) {
        (void)fas_sc(&seg_subs_notify(s->m)->data_waiters, 1);
}

void ring_sub_deinit(struct ring_sub *s) {
        if (!s || !s->m)
                return;
        if (s->m->g.policy == ZCBUS_POLICY_LATEST)
                for (uint32_t i = 0; i < s->nheld; i++)
                        seg_hold_drop(s->m, s->held[i], s->index);
        s->nheld = 0;
        ring_sub_publish_floor(s, SEG_FLOOR_NONE);
        store_rel(&s->me->state, SEG_ENTRY_CLOSING);
        s->m = NULL;
}

/* ------------------------------------------------------------------ broker */

void ring_prod_activate(const struct seg_map *m, uint32_t index, uint32_t pid) {
        struct seg_prod *e = seg_prod(m, index);
        store_rlx(&e->claim, SEG_CLAIM_NONE);
        store_rlx(&e->claim_n, 0);
        store_rlx(&e->published, 0);
        store_rlx(&e->waits, 0);
        store_rlx(&e->wakeups, 0);
        store_rlx(&e->abandoned, 0);
        store_rlx(&e->skipped, 0);
        store_rlx(&e->pid, pid);
        store_rel(&e->state, SEG_ENTRY_ACTIVE);
}

void ring_sub_activate(const struct seg_map *m, uint32_t index, uint32_t pid) {
        struct seg_sub *e = seg_sub(m, index);
        store_sc(&e->floor, SEG_FLOOR_NONE);
        store_rlx(&e->next, 0);
        store_rlx(&e->received, 0);
        store_rlx(&e->lost, 0);
        store_rlx(&e->sleeps, 0);
        store_rlx(&e->held, 0);
        store_rlx(&e->pid, pid);
        store_rel(&e->state, SEG_ENTRY_ACTIVE);
}

void ring_sub_evict(const struct seg_map *m, uint32_t index) {
        struct seg_sub *e = seg_sub(m, index);
        /* Give back any LATEST holds it left: its bit in every slot. */
        for (uint64_t i = 0; i < m->g.slot_count; i++)
                seg_hold_drop(m, i, index);
        store_sc(&e->floor, SEG_FLOOR_NONE); /* E */
        store_rlx(&e->held, 0);
        store_rel(&e->state, SEG_ENTRY_FREE);
        wake_all(&seg_subs_notify(m)->room_word);
}

uint64_t ring_head(const struct seg_map *m) {
        return load_acq(&seg_head(m)->head);
}

/* Broker: write off seq if its slot is free. 0 done, -EAGAIN not yet. */
static int broker_abandon(const struct seg_map *m, uint64_t seq, uint32_t producer) {
        struct seg_slot *s = seg_slot(m, seq);
        uint64_t v = load_sc(&s->stamp);
        uint64_t want = ring_stamp(seq);

        if (v == want || (v & SEG_STAMP_SEQ_MASK) > want)
                return 0; /* published, or the slot has moved on */
        if (v != ring_prev_stamp(seq, m->g.slot_count) && v != (SEG_STAMP_WRITING | want))
                return -EAGAIN; /* the lap before is not done yet */
        if (m->g.policy != ZCBUS_POLICY_LATEST && floor_plus_n(scan_floors(m), m->g.slot_count) <= seq)
                return -EAGAIN; /* a subscriber still needs the old message */
        mark_slot(m, seq, producer, SEG_SLOT_ABANDONED);
        wake_all(&seg_ring_notify(m)->data_word);
        return 0;
}

static bool claimed_by_other(const struct seg_map *m, uint32_t self, uint64_t seq) {
        for (uint32_t i = 0; i < m->g.max_producers; i++) {
                if (i == self)
                        continue;
                struct seg_prod *e = seg_prod(m, i);
                uint64_t c;
                uint32_t k;
                do { /* claim_n belongs to the claim read around it */
                        c = load_sc(&e->claim);
                        k = load_sc(&e->claim_n);
                } while (load_sc(&e->claim) != c);
                if (c == SEG_CLAIM_NONE || (c & SEG_CLAIM_PENDING))
                        continue;
                if (seq >= c && seq - c < k)
                        return true;
        }
        return false;
}

int ring_prod_evict(const struct seg_map *m, uint32_t index) {
        struct seg_prod *e = seg_prod(m, index);
        uint64_t c = load_sc(&e->claim);
        uint32_t k = load_rlx(&e->claim_n);
        int r;

        /* Not live any more: another eviction must not wait for this one
         * to leave its claim window. */
        store_sc(&e->state, SEG_ENTRY_CLOSING);

        if (c == SEG_CLAIM_NONE)
                goto done;
        if (!(c & SEG_CLAIM_PENDING)) {
                if (k == 0 || k > m->g.slot_count)
                        k = 1; /* untrusted: a claim covers at least its first seq */
                for (uint32_t i = 0; i < k; i++) {
                        r = broker_abandon(m, c + i, index);
                        if (r < 0)
                                return r;
                }
                goto done;
        }

        /* J: it died between recording its intent and recording the
         * sequence. Look for holes from its lower bound to the head:
         * uncommitted sequences nobody else has recorded. A live producer
         * still between the two steps might own one: wait for it. */
        uint64_t lo = c & ~SEG_CLAIM_PENDING;
        uint64_t h = load_sc(&seg_head(m)->head);
        uint64_t span = (uint64_t)m->g.slot_count * (m->g.max_producers + 1u);
        for (uint32_t i = 0; i < m->g.max_producers; i++) {
                struct seg_prod *o = seg_prod(m, i);
                if (i == index || load_sc(&o->state) != SEG_ENTRY_ACTIVE)
                        continue;
                uint64_t oc = load_sc(&o->claim);
                if (oc != SEG_CLAIM_NONE && (oc & SEG_CLAIM_PENDING))
                        return -EAGAIN;
        }
        if (h > SEG_SEQ_LIMIT)
                goto done;
        if (h > span && lo < h - span)
                lo = h - span;
        for (uint64_t t = lo; t < h; t++) {
                uint64_t v = load_sc(&seg_slot(m, t)->stamp);
                if (v == ring_stamp(t) || (v & SEG_STAMP_SEQ_MASK) > ring_stamp(t))
                        continue;
                if (claimed_by_other(m, index, t))
                        continue;
                r = broker_abandon(m, t, index);
                if (r < 0)
                        return r;
        }
done:
        store_rel(&e->claim, SEG_CLAIM_NONE);
        store_rel(&e->state, SEG_ENTRY_FREE);
        return 0;
}
