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

#include "seg.h"
#include "zcbus.h"

#define RING_SPIN_US_DEFAULT 50u
#define RING_MAX_HOLDS_DEFAULT 16u
#define RING_MAX_HOLDS_LIMIT 4096u

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
        uint64_t gate;   /* cached: min floor over subscribers (and head) */
        uint32_t gen;    /* subs gen the gate was computed under */
        uint64_t claim;  /* first claimed, unpublished sequence, or SEG_CLAIM_NONE */
        uint32_t nclaim; /* how many claimed from `claim` */
        uint32_t nwritten;
        bool single; /* topic has one producer slot: no fetch-add needed */
};

void ring_wait_init(struct ring_wait *w, uint32_t mode, uint32_t spin_us);

void ring_pub_init(struct ring_pub *p, const struct seg_map *m, uint32_t index, struct ring_wait wait);
/* Claim n consecutive sequences (1 <= n <= slot_count), waiting for room
 * per timeout_ms. A claim that timed out after the sequence was taken is
 * kept and resumed by the next call. */
int ring_pub_claim(struct ring_pub *p, uint32_t n, int timeout_ms, uint64_t *ret_seq);
/* Payload of a claimed sequence. */
void *ring_pub_payload(struct ring_pub *p, uint64_t seq);
/* Publish claimed sequence seq with len bytes (len <= slot_size). Does
 * not wake anyone: call ring_pub_notify() once after a batch. */
void ring_pub_publish(struct ring_pub *p, uint64_t seq, uint32_t len, uint64_t ts_ns);
/* Wake sleeping readers if any announced themselves. */
void ring_pub_notify(struct ring_pub *p);
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
};

/* held: caller-provided array of max_holds entries. history: start with up
 * to that many messages still in the ring. */
int ring_sub_init(struct ring_sub *s, const struct seg_map *m, uint32_t index, uint32_t history,
                  uint32_t max_holds, uint64_t *held, struct ring_wait wait);
/* Receive up to n messages, waiting per timeout_ms for the first. Returns
 * the count (>= 1), -EAGAIN, -ETIMEDOUT, -EINTR, -ENOBUFS (holds full),
 * or -EBADMSG when the segment holds an impossible length. */
int ring_sub_recv(struct ring_sub *s, zcbus_msg *msgs, uint32_t n, int timeout_ms);
/* Release held sequences; -ENOENT for one not held. */
int ring_sub_release(struct ring_sub *s, const uint64_t *seqs, uint32_t n);
/* The same over the seq fields of n records stride bytes apart (e.g.
 * &msgs[0].seq, sizeof(zcbus_msg)): all or nothing, whatever n. */
int ring_sub_release_strided(struct ring_sub *s, const void *seqs, size_t stride, uint32_t n);
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

#endif
