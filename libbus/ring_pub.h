/* SPDX-License-Identifier: MIT */
/*
 * ring_pub.h: the producer side of a mapped topic: claiming sequences,
 * writing slots in place, publishing them and waking readers. The hot
 * path (one message, RELIABLE, room by the cached gate) is inline here
 * and costs no call into ring_pub.c; anything else takes the general
 * code there (the *_slow functions), which makes the same checks in the
 * same order, plus the waiting.
 */
#ifndef ZCBUS_RING_PUB_H
#define ZCBUS_RING_PUB_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "futex.h"
#include "ring.h"

/* Private state of one producer handle. */
struct ring_pub {
        const struct seg_map *m;
        struct seg_prod *me;
        uint32_t index;
        struct wait_how wait;
        uint64_t room_end; /* cached gate: sequences below it fit (lowest
                              subscriber floor + slot_count, saturating) */
        uint32_t gen;      /* subs gen room_end was computed under */
        uint64_t claim;    /* first claimed, unpublished sequence, or SEG_CLAIM_NONE */
        uint32_t nclaim;   /* how many claimed from `claim` */
        uint32_t nwritten;
        bool reliable;     /* topic policy RELIABLE: the fast claim applies */
        bool stamp;        /* timestamp each commit (ZCBUS_PUB_TIMESTAMP) */
        /* Where data sleepers arm: the producers' word, then each table's
         * (a table this producer lacks: a word that is always 0). */
        au32 *prod_armed;
        au32 *tables_bound;
        au32 *data_armed[SEG_TABLES_MAX];
};

void ring_pub_init(struct ring_pub *p, const struct seg_map *m, uint32_t index, struct wait_how wait);
/* Give up unpublished claims: publish them as abandoned if the slots are
 * free, else leave them recorded for the broker; wake readers. */
void ring_pub_deinit(struct ring_pub *p);

/* Copy n messages in and publish them with one notification: one claim
 * of n under RELIABLE (n <= slot_count), one slot at a time under LATEST
 * (later ones without waiting). Lengths must fit (the caller checked).
 * Returns how many were sent (>= 1) or a negative errno. */

/* Would a claim find room right now? Read-only (another thread may ask,
 * for zcbus_pub_fd): RELIABLE, the slot of head is free of subscribers
 * and its lap before is published; LATEST, some slot is free of holds. */
bool ring_pub_room_now(const struct seg_map *m);

/* The general paths behind the inline ones below. */
int ring_pub_claim_slow(struct ring_pub *p, uint32_t n, int timeout_ms, uint64_t *ret_seq);
int ring_pub_claim_taken(struct ring_pub *p, uint64_t s, uint32_t n, uint64_t deadline, bool may_wait,
                         uint64_t *ret_seq);
void ring_pub_wake(struct ring_pub *p);

/* The commit timestamp, if this producer stamps. */
static _always_inline_ uint64_t ring_pub_now(const struct ring_pub *p) {
        return p->stamp ? now_ns() : 0;
}

/* Did a subscriber register (and maybe lower the lowest floor) since the
 * cached gate was computed? (SC load: point G) */
static _always_inline_ bool ring_gen_moved(const struct ring_pub *p) {
        return load_sc(&seg_ring_notify(p->m)->gen) != p->gen;
}

/* Take n sequences from head: the claim record goes first (J), so the
 * broker can tell a producer that died here from one that never came. */
static _always_inline_ uint64_t ring_take_seqs(struct ring_pub *p, uint64_t h, uint32_t n) {
        /* J: the fetch-add (seq_cst, so a release) publishes the intent to
         * whoever reads head, as the broker does first; the intent is a
         * release store itself (a plain MOV on x86, as a relaxed one), so
         * that a broker reading it also sees this producer's earlier
         * stamps, published before its claim went back to NONE. */
        /* The count is written after a release fence, so a broker that
         * reads a claim, then the count, then (after an acquire fence) the
         * claim again, never pairs it with the next claim's count. */
        release_fence();
        store_rlx(&p->me->claim_n, n);
        store_rel(&p->me->claim, SEG_CLAIM_PENDING | h);
        KILL_POINT(KP_CLAIM_INTENT);
        uint64_t s = faa_sc(&seg_head(p->m)->head, n); /* G, J */
        KILL_POINT(KP_CLAIM_TAKEN);
        return s;
}

/* Record the claim of s..s+n-1 (J: the sequence after the intent). */
static _always_inline_ void ring_claim_set(struct ring_pub *p, uint64_t s, uint32_t n) {
        store_rel(&p->me->claim, s); /* J */
        KILL_POINT(KP_CLAIM_RECORDED);
        p->claim = s;
        p->nclaim = n;
        p->nwritten = 0;
}

/* Every claimed sequence is published or written off: no claim. */
static _always_inline_ void ring_claim_clear(struct ring_pub *p) {
        p->claim = SEG_CLAIM_NONE;
        p->nclaim = p->nwritten = 0;
        store_rel(&p->me->claim, SEG_CLAIM_NONE);
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
                                ring_claim_set(p, s, 1);
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
        KILL_POINT(KP_BEFORE_STAMP);
        store_rel(&s->stamp, seg_stamp(seq)); /* A; the fence in ring_pub_notify makes it D's store */
        KILL_POINT(KP_AFTER_STAMP);
        stat_inc(&p->me->published, 1);
        if (++p->nwritten == p->nclaim)
                ring_claim_clear(p);
}

/* Write off claimed sequence seq without a message: readers step over
 * it. */
static _always_inline_ void ring_pub_write_off(struct ring_pub *p, uint64_t seq) {
        ring_mark_slot(p->m, seq, p->index, SEG_SLOT_ABANDONED);
        stat_inc(&p->me->abandoned, 1);
        if (++p->nwritten == p->nclaim)
                ring_claim_clear(p);
}

/* Wake sleeping readers if one armed. D: one full fence orders every
 * stamp published since the last notify before the look at the arms
 * (C11 fence rules: a reader's SC re-load that follows this fence in S
 * sees the stamps). One fence per batch, not one locked store per slot;
 * one arm per bound table (one per subscriber uid), plus the producers'. */
static _always_inline_ void ring_pub_notify(struct ring_pub *p) {
        full_fence();
        uint32_t n = load_rlx(p->tables_bound), a = load_rlx(p->prod_armed);
        if (_likely_(n == 1)) {
                a |= load_rlx(p->data_armed[0]);
        } else {
                n = n < SEG_TABLES_MAX ? n : SEG_TABLES_MAX; /* untrusted */
                for (uint32_t t = 0; t < n; t++)
                        a |= load_rlx(p->data_armed[t]);
        }
        if (_unlikely_(a != 0))
                ring_pub_wake(p);
}

static _always_inline_ int ring_pub_send_iov(struct ring_pub *p, const zcbus_iov *msgs, uint32_t n, int timeout_ms) {
        uint64_t seq, ts;
        uint32_t done = 0;
        int r = -EINVAL;

        if (!p->reliable) {
                /* LATEST claims one slot at a time (a held slot is stepped
                 * over); the batch still costs one notification. */
                for (; done < n; done++) {
                        r = ring_pub_claim(p, 1, done ? 0 : timeout_ms, &seq);
                        if (r < 0)
                                break;
                        if (msgs[done].len)
                                memcpy(ring_pub_payload(p, seq), msgs[done].data, msgs[done].len);
                        ring_pub_publish(p, seq, (uint32_t)msgs[done].len, ring_pub_now(p));
                }
                if (done == 0)
                        return r;
                ring_pub_notify(p);
                return (int)done;
        }
        r = ring_pub_claim(p, n, timeout_ms, &seq);
        if (r < 0)
                return r;
        ts = ring_pub_now(p);
        for (uint32_t i = 0; i < n; i++) {
                if (msgs[i].len)
                        memcpy(ring_pub_payload(p, seq + i), msgs[i].data, msgs[i].len);
                ring_pub_publish(p, seq + i, (uint32_t)msgs[i].len, ts);
        }
        ring_pub_notify(p);
        return (int)n;
}


#endif
