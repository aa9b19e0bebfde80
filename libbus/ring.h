/*
 * ring.h: the data plane on a mapped topic (struct seg_map): claiming and
 * publishing slots, receiving and releasing them, waiting and waking, and
 * the broker's repairs after a peer dies. No allocation, no lock, no
 * system call unless a side sleeps or wakes a sleeper.
 *
 * The algorithm and its ordering argument are in docs/design.md; the
 * lettered ordering points (A, B, ...) named in ring.c are tabled there.
 */
#ifndef ZCBUS_RING_H
#define ZCBUS_RING_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "futex.h"
#include "macro.h"
#include "seg.h"
#include "zcbus.h"

#define RING_SPIN_US_DEFAULT 50u
#define RING_MAX_HOLDS_DEFAULT 16u
#define RING_MAX_HOLDS_LIMIT 4096u
/* Spins the inline receive path makes before the general wait. */
#define RING_SPIN_INLINE 64u

struct ring_wait {
        uint32_t mode; /* enum zcbus_wait_mode, never DEFAULT */
        uint32_t spin_us;
};

/* Producer side: private state of one producer handle. */
struct ring_pub {
        const struct seg_map *m;
        struct seg_prod *me;
        uint32_t index;
        struct ring_wait wait;
        uint64_t room_end; /* cached gate: sequences below it fit (lowest
                              subscriber floor + slot_count, saturating) */
        uint32_t gen;      /* subs gen room_end was computed under */
        uint64_t claim;    /* first claimed, unpublished sequence, or SEG_CLAIM_NONE */
        uint32_t nclaim;   /* how many claimed from `claim` */
        uint32_t nwritten;
        bool reliable;     /* topic policy RELIABLE: the fast claim applies */
};

void ring_wait_init(struct ring_wait *w, uint32_t mode, uint32_t spin_us);

void ring_pub_init(struct ring_pub *p, const struct seg_map *m, uint32_t index, struct ring_wait wait);
/* ring_pub_claim, ring_pub_payload, ring_pub_publish, ring_pub_notify:
 * inline, at the end of this header. */
/* Give up unpublished claims: publish them as abandoned if the slots are
 * free, else leave them recorded for the broker. */
void ring_pub_deinit(struct ring_pub *p);

/* Subscriber side: private state of one subscription. */
struct ring_sub {
        const struct seg_map *m;
        struct seg_sub *me;
        uint32_t index;
        struct ring_wait wait;
        uint64_t next;      /* next sequence to read */
        uint64_t *held;     /* sequences received and not released */
        uint32_t nheld;
        uint32_t max_holds;
        uint64_t received;  /* local mirrors of the shared counters */
        uint64_t lost;      /* total missed, counted when reported */
        uint64_t pending_lost; /* missed since the last delivered message */
        uint64_t skipped;   /* markers stepped over (abandoned, skipped) */
        uint64_t pub_floor; /* RELIABLE: the floor last published */
        uint64_t sleeps;
        bool reliable;      /* topic policy RELIABLE: the fast paths apply */
};

/* held: caller-provided array of max_holds entries. history: start with up
 * to that many messages still in the ring. */
int ring_sub_init(struct ring_sub *s, const struct seg_map *m, uint32_t index, uint32_t history,
                  uint32_t max_holds, uint64_t *held, struct ring_wait wait);
/* ring_sub_recv, ring_sub_release, ring_sub_release_strided: inline, at
 * the end of this header. */
/* Is a message (or a skip) ready at the cursor? Non-blocking. */
bool ring_sub_ready(struct ring_sub *s);
/* For wait-any: announce a sleeper and return the word and value to wait
 * on; ring_sub_unannounce undoes it. */
void ring_sub_announce(struct ring_sub *s, au32 **ret_word, uint32_t *ret_val);
void ring_sub_unannounce(struct ring_sub *s);
/* Stop gating producers and mark the entry CLOSING. */
void ring_sub_deinit(struct ring_sub *s);

/* Broker side. */
void ring_prod_activate(const struct seg_map *m, uint32_t index, uint32_t pid);
void ring_sub_activate(const struct seg_map *m, uint32_t index, uint32_t pid);
/* Free a subscriber entry (dead or closed): it stops gating at once and
 * blocked producers are woken. */
void ring_sub_evict(const struct seg_map *m, uint32_t index);
/* Free a producer entry whose owner is gone, abandoning any sequence it
 * claimed and never published so readers step over it. Returns 0 when
 * done, -EAGAIN when it must be retried later (a slot is not free yet, or
 * a live producer is between claim and record). */
int ring_prod_evict(const struct seg_map *m, uint32_t index);
/* Sequences claimed so far on the topic. */
uint64_t ring_head(const struct seg_map *m);

/* Index arithmetic, exposed for unit tests. */
static inline uint64_t ring_stamp(uint64_t seq) {
        return seq + 1;
}
/* The stamp the slot of seq must show before seq may be written into it. */
static inline uint64_t ring_prev_stamp(uint64_t seq, uint32_t slot_count) {
        return seq >= slot_count ? seq - slot_count + 1 : 0;
}

/* ------------------------------------------------------------------
 * The hot paths, inline: one message sent, one received and released,
 * with nothing in the way, costs no call into ring.c. Each falls back on
 * the general code in ring.c (the *_slow functions) for anything else;
 * the fast paths make the same checks in the same order (the lettered
 * points are those of ring.c), minus the waiting.
 */

int ring_pub_claim_slow(struct ring_pub *p, uint32_t n, int timeout_ms, uint64_t *ret_seq);
int ring_pub_claim_taken(struct ring_pub *p, uint64_t s, uint32_t n, uint64_t deadline, bool may_wait,
                         uint64_t *ret_seq);
void ring_pub_wake(struct ring_pub *p);
int ring_sub_recv_slow(struct ring_sub *s, zcbus_msg *msgs, uint32_t n, int timeout_ms);
int ring_sub_release_slow(struct ring_sub *s, const void *seqs, size_t stride, uint32_t n);
void ring_sub_wake_room(struct ring_sub *s);

/* Has the previous lap's occupant of seq's slot been published? (Or has
 * the claimant of seq, the only one who may, already marked it?) */
static _always_inline_ bool ring_prev_done(const struct seg_map *m, uint64_t seq) {
        uint64_t v = load_acq(&seg_slot(m, seq)->stamp); /* B: previous writer is done */
        return v == ring_prev_stamp(seq, m->g.slot_count) || v == (SEG_STAMP_WRITING | ring_stamp(seq));
}

/* Did a subscriber register (and maybe lower the lowest floor) since the
 * cached gate was computed? (SC load: point G) */
static _always_inline_ bool ring_gen_moved(const struct ring_pub *p) {
        return load_sc(&seg_subs_notify(p->m)->gen) != p->gen;
}

/* Take n sequences from head: the claim record goes first (J), so the
 * broker can tell a producer that died here from one that never came. */
static _always_inline_ uint64_t ring_take_seqs(struct ring_pub *p, uint64_t h, uint32_t n) {
        /* J: the fetch-add (seq_cst, so a release) publishes the intent to
         * whoever reads head, as the broker does first; the intent is a
         * release store itself (a plain MOV on x86, as a relaxed one), so
         * that a broker reading it also sees this producer's earlier
         * stamps, published before its claim went back to NONE. */
        store_rlx(&p->me->claim_n, n);
        store_rel(&p->me->claim, SEG_CLAIM_PENDING | h);
        return faa_sc(&seg_head(p->m)->head, n); /* G, J */
}

/* Claim n consecutive sequences (1 <= n <= slot_count), waiting for room
 * per timeout_ms. A claim that timed out after the sequence was taken is
 * kept and resumed by the next call. */
static _always_inline_ int ring_pub_claim(struct ring_pub *p, uint32_t n, int timeout_ms, uint64_t *ret_seq) {
        const struct seg_map *m = p->m;

        /* One sequence, RELIABLE, no claim left over, room by the cached
         * gate, no new subscriber, the slot's lap before published. */
        if (_likely_(n == 1 && p->reliable && p->claim == SEG_CLAIM_NONE)) {
                uint64_t h = load_rlx(&seg_head(m)->head);
                /* Ask for the slot's line for writing now: its previous lap
                 * was read by subscribers, and a plain load first would
                 * cost a second coherence round trip to upgrade. */
                __builtin_prefetch(seg_slot(m, h), 1, 3);
                if (_likely_(h < p->room_end && h <= SEG_SEQ_LIMIT && !ring_gen_moved(p))) {
                        uint64_t s = ring_take_seqs(p, h, 1);
                        if (_likely_(s < p->room_end && s <= SEG_SEQ_LIMIT && !ring_gen_moved(p) &&
                                     ring_prev_done(m, s))) {
                                store_rel(&p->me->claim, s); /* J */
                                p->claim = s;
                                p->nclaim = 1;
                                p->nwritten = 0;
                                *ret_seq = s;
                                return 0;
                        }
                        return ring_pub_claim_taken(p, s, 1, deadline_from_ms(timeout_ms), timeout_ms != 0,
                                                    ret_seq);
                }
        }
        return ring_pub_claim_slow(p, n, timeout_ms, ret_seq);
}

/* Payload of a claimed sequence. */
static _always_inline_ void *ring_pub_payload(struct ring_pub *p, uint64_t seq) {
        return seg_payload(seg_slot(p->m, seq));
}

/* Publish claimed sequence seq with len bytes (len <= slot_size). Does
 * not wake anyone: call ring_pub_notify() once after a batch. */
static _always_inline_ void ring_pub_publish(struct ring_pub *p, uint64_t seq, uint32_t len, uint64_t ts_ns) {
        struct seg_slot *s = seg_slot(p->m, seq);

        store_rlx(&s->len, len);
        store_rlx(&s->flags, 0);
        store_rlx(&s->ts_ns, ts_ns);
        s->producer = p->index;
        store_rel(&s->stamp, ring_stamp(seq)); /* A; the fence in ring_pub_notify makes it D's store */
        stat_inc(&p->me->published, 1);
        if (++p->nwritten == p->nclaim) {
                p->claim = SEG_CLAIM_NONE;
                p->nclaim = p->nwritten = 0;
                store_rel(&p->me->claim, SEG_CLAIM_NONE);
        }
}

/* Wake sleeping readers if any announced themselves. D: one full fence
 * orders every stamp published since the last notify before the look at
 * data_waiters (C11 fence rules: a reader's SC re-load that follows this
 * fence in S sees the stamps). One fence per batch, not one locked store
 * per slot. */
static _always_inline_ void ring_pub_notify(struct ring_pub *p) {
        full_fence();
        if (_unlikely_(load_rlx(&seg_subs_notify(p->m)->data_waiters) != 0))
                ring_pub_wake(p);
}

/* RELIABLE: the floor this subscriber must publish: its oldest hold
 * (holds are kept in the order received, which is sequence order), else
 * its cursor. */
static _always_inline_ uint64_t ring_floor_of(const struct ring_sub *s) {
        return s->nheld && s->held[0] < s->next ? s->held[0] : s->next;
}

/* Does the short way of receiving apply: one message, RELIABLE, room for
 * one more hold, no loss to report? */
static _always_inline_ bool ring_recv_fast_ok(const struct ring_sub *s, uint32_t n) {
        return n == 1 && s->reliable && s->nheld < s->max_holds && s->pending_lost == 0;
}

/* RELIABLE, a plain message at the cursor, room for one more hold,
 * nothing to report: deliver it. The checks are those of the general
 * path (stamp, B, then descriptor); anything else goes that way. */
static _always_inline_ bool ring_take_fast(struct ring_sub *s, zcbus_msg *msg) {
        const struct seg_map *m = s->m;
        uint64_t c = s->next;
        struct seg_slot *sl = seg_slot(m, c);

        if (load_acq(&sl->stamp) != ring_stamp(c)) /* B */
                return false;
        uint32_t len = load_rlx(&sl->len);
        if (_unlikely_(load_rlx(&sl->flags) != 0 || len > m->g.slot_size))
                return false;
        *msg = (zcbus_msg){.data = seg_payload(sl), .len = len, .seq = c, .timestamp_ns = load_rlx(&sl->ts_ns)};
        s->held[s->nheld++] = c;
        s->next = c + 1;
        s->received++;
        /* Pull a later slot's first line in ahead of time: when the
         * producer is ahead, its lines are ready and the miss is hidden
         * behind this message's processing. */
        __builtin_prefetch(seg_slot(m, c + 3), 0, 3);
        store_rlx(&s->me->received, s->received);
        store_rlx(&s->me->next, s->next);
        store_rlx(&s->me->held, s->nheld);
        return true;
}

/* Receive up to n messages, waiting per timeout_ms for the first. Returns
 * the count (>= 1), -EAGAIN, -ETIMEDOUT, -EINTR, -ENOBUFS (holds full),
 * or -EBADMSG when the segment holds an impossible length. */
static _always_inline_ int ring_sub_recv(struct ring_sub *s, zcbus_msg *msgs, uint32_t n, int timeout_ms) {
        if (_likely_(ring_recv_fast_ok(s, n))) {
                if (ring_take_fast(s, msgs))
                        return 1;
                /* A prompt answer comes within a few hundred nanoseconds:
                 * watch the slot here for a little while (when the mode
                 * spins at all, and nothing needs doing before a wait),
                 * then take the general way, which spins on for the rest
                 * of the budget and sleeps. */
                if (timeout_ms != 0 && s->wait.mode != ZCBUS_WAIT_FUTEX && ring_floor_of(s) == s->pub_floor) {
                        const au64 *stamp = &seg_slot(s->m, s->next)->stamp;
                        uint64_t old = load_rlx(stamp), want = ring_stamp(s->next);
                        /* Spin only while the slot is not yet ours: a marker,
                         * a bad length or a lap are final already. */
                        bool pending = old != want && (old & SEG_STAMP_SEQ_MASK) <= want;
                        for (unsigned i = 0; pending && i < RING_SPIN_INLINE; i++) {
                                cpu_relax();
                                if (load_rlx(stamp) != old) {
                                        if (ring_take_fast(s, msgs))
                                                return 1;
                                        break;
                                }
                        }
                }
        }
        return ring_sub_recv_slow(s, msgs, n, timeout_ms);
}

/* Publish a higher floor and wake producers waiting for it (E). Every
 * raise of a floor goes through here: a producer may be asleep on the
 * old value. */
static _always_inline_ void ring_sub_publish_floor(struct ring_sub *s, uint64_t f) {
        s->pub_floor = f;
        store_rel(&s->me->floor, f); /* E: payload reads done before the floor moves */
        full_fence();                /* E: the floor before the look at room_waiters */
        if (_unlikely_(load_rlx(&seg_subs_notify(s->m)->room_waiters) != 0))
                ring_sub_wake_room(s);
}

/* The i-th sequence of an array of n records stride bytes apart. */
static _always_inline_ uint64_t ring_seq_at(const void *base, size_t stride, uint32_t i) {
        uint64_t v;
        memcpy(&v, (const uint8_t *)base + (size_t)i * stride, sizeof(v));
        return v;
}

/* Release held sequences given as the seq fields of n records stride
 * bytes apart (e.g. &msgs[0].seq, sizeof(zcbus_msg)): all or nothing,
 * whatever n; -ENOENT for one not held. */
static _always_inline_ int ring_sub_release_strided(struct ring_sub *s, const void *seqs, size_t stride, uint32_t n) {
        /* RELIABLE, the oldest hold alone (recv, then release). */
        if (_likely_(n == 1 && s->reliable && s->nheld && s->held[0] == ring_seq_at(seqs, stride, 0))) {
                if (_unlikely_(--s->nheld))
                        memmove(s->held, s->held + 1, s->nheld * sizeof(s->held[0]));
                store_rlx(&s->me->held, s->nheld);
                uint64_t f = ring_floor_of(s);
                if (f != s->pub_floor)
                        ring_sub_publish_floor(s, f);
                return 0;
        }
        return ring_sub_release_slow(s, seqs, stride, n);
}

static _always_inline_ int ring_sub_release(struct ring_sub *s, const uint64_t *seqs, uint32_t n) {
        return ring_sub_release_strided(s, seqs, sizeof(*seqs), n);
}

#endif
