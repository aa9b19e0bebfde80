/* SPDX-License-Identifier: MIT */
/*
 * layout.h: the layout of a topic's shared segments: structs, named
 * offsets, the stamp encoding and the limits. Shared by the broker (which
 * creates segments, seg.c) and the library (which maps them); it depends
 * on nothing but the atomics vocabulary, so the ring, the segment code and
 * the measurement lab's shm floor all take their geometry from here.
 *
 * A topic has one ring memfd and one subscriber table memfd per
 * subscriber uid (sub_tables of them, made at creation and bound to a uid
 * when that uid's first subscriber comes), all sealed against shrink and
 * grow:
 *
 *  ring segment  producers map it read-write, subscribers read-only, so a
 *                subscriber cannot forge data. It holds:
 *                  line 0-1   immutable header (struct seg_ring_hdr)
 *                  line 2     claim counter `head` (producers only)
 *                  line 3     notification words written by producers
 *                             and the broker (struct seg_ring_notify)
 *                  lines 4..  producer table, one line per producer
 *                  states     per subscriber entry, its state, table and
 *                             pid (the broker writes them)
 *                  masks      per table, a bitmap of the entries live in
 *                             it (the broker writes them)
 *                  slots      slot_count x slot_stride: a 32-byte
 *                             descriptor, then the payload
 *  table segment the state a subscriber must write, one per uid: that
 *                uid's subscribers and the topic's producers map it
 *                read-write, nobody else maps it. It holds:
 *                  line 0     immutable header (struct seg_subs_hdr)
 *                  line 1     notification words (arms, room futex)
 *                  lines 2..  one line per subscriber entry (every entry
 *                             has a line in every table; only the table
 *                             an entry is bound to counts)
 *                  holds      LATEST: per slot, a bitmap of the entries
 *                             that hold its message
 *
 * Why so many: write permission belongs to a mapping's file description,
 * so "subscribers cannot write the data" needs a separate object for what
 * they must write, and "one uid's subscribers cannot change what another
 * uid's receive" needs one such object per uid. What the producers and the
 * broker read from a table is filtered through broker-written memory in
 * the ring (the states and masks): bits and floors of entries not live in
 * that table are ignored. Clients close every fd once mapped, so a topic
 * costs a process no descriptor at all.
 *
 * Everything read from these segments at run time is untrusted: geometry
 * is copied out of the header once, checked against fstat() and the seals,
 * and never re-read; lengths are checked against the slot size; indexes
 * are masked.
 *
 * Slot stamps: stamp = (seq + 1) | (writing ? SEG_STAMP_WRITING : 0);
 * 0 means "never written" (seg_stamp, seg_prev_stamp, seg_stamp_state
 * below). See docs/design.md.
 */
#ifndef ZCBUS_LAYOUT_H
#define ZCBUS_LAYOUT_H

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "atomics.h"
#include "macro.h"

#define SEG_LINE 64u
#define SEG_RING_MAGIC UINT64_C(0x474e525355424353) /* "SCBUSRNG" little endian */
#define SEG_SUBS_MAGIC UINT64_C(0x4255535355424353) /* "SCBUSSUB" little endian */
#define SEG_VERSION 3u

#define SEG_STAMP_WRITING (UINT64_C(1) << 63)
#define SEG_STAMP_SEQ_MASK (~SEG_STAMP_WRITING)
/* Largest sequence a ring hands out; past it claims fail (-EOVERFLOW). At
 * a billion messages a second that is 292 years. */
#define SEG_SEQ_LIMIT (SEG_STAMP_SEQ_MASK - 1)

/* Slot descriptor flags. */
#define SEG_SLOT_ABANDONED 1u /* claimed by a producer that gave up or died: skip */
#define SEG_SLOT_SKIPPED 2u   /* LATEST: the slot was held, the producer moved on */

/* Producer claim word: SEG_CLAIM_NONE when idle; SEG_CLAIM_PENDING | h
 * while claiming (h: head before the fetch-add, a lower bound of the
 * claim); the claimed sequence itself once known. */
#define SEG_CLAIM_NONE UINT64_MAX
#define SEG_CLAIM_PENDING (UINT64_C(1) << 63)

/* Table entry states. */
enum {
        SEG_ENTRY_FREE = 0,
        SEG_ENTRY_ACTIVE = 1,  /* handed to a live client */
        SEG_ENTRY_CLOSING = 2, /* client let go; broker will free it */
        SEG_ENTRY_EVICTED = 3, /* subscriber: broker evicted it under the stall
                                  policy; it gates nothing, its owner's next
                                  receive fails (-ESTALE) */
};

/* Floor of a subscriber that gates nothing. */
#define SEG_FLOOR_NONE UINT64_MAX

/* Limits checked at creation and at mapping. */
#define SEG_SLOT_COUNT_MAX (UINT32_C(1) << 24)
#define SEG_SLOT_SIZE_MAX (UINT32_C(1) << 30)
#define SEG_RING_BYTES_MAX (UINT64_C(1) << 40)
#define SEG_PRODUCERS_MAX 1024u
#define SEG_SUBS_MAX 4096u
#define SEG_TABLES_MAX 16u /* subscriber tables (uids) per topic */

struct seg_ring_hdr {
        uint64_t magic;
        uint32_t version;
        uint32_t policy;
        uint8_t segment_id[16];
        uint8_t topic_id[16];
        uint32_t slot_count;
        uint32_t slot_size;   /* payload capacity of a slot */
        uint32_t slot_stride; /* ALIGN_UP(SEG_SLOT_DESC + slot_size, SEG_LINE) */
        uint32_t max_producers;
        uint64_t slots_offset;
        uint64_t seg_size;
        uint64_t start_seq; /* first sequence handed out */
        uint32_t max_subs;
        uint32_t data_word_start; /* initial value of the data futex word */
        uint32_t sub_tables;      /* subscriber tables, 1..SEG_TABLES_MAX */
        uint32_t reserved0;
        uint64_t states_offset;   /* subscriber entry states */
        uint64_t masks_offset;    /* per-table live-entry bitmaps */
        uint8_t reserved[8];
};
static_assert(sizeof(struct seg_ring_hdr) == 2 * SEG_LINE, "ring header is two lines");

struct seg_ring_head {
        au64 head; /* next sequence to claim */
        uint8_t pad[SEG_LINE - 8];
};
static_assert(sizeof(struct seg_ring_head) == SEG_LINE, "one line");

struct seg_ring_notify {
        au32 data_word;    /* futex: bumped when a commit wakes sleepers */
        au32 prod_armed;   /* a producer sleeps on data_word (for another
                              producer's publish): a waker takes it */
        au32 gen;          /* bumped (by the broker) when a subscriber
                              registers: producers drop their cached gate */
        au32 tables_bound; /* tables bound to a uid so far (0..sub_tables,
                              in order; the broker writes it) */
        uint8_t pad[SEG_LINE - 16];
};
static_assert(sizeof(struct seg_ring_notify) == SEG_LINE, "one line");

struct seg_prod {
        au32 state;     /* SEG_ENTRY_* (broker writes) */
        au32 pid;       /* owner (broker writes) */
        au64 claim;     /* SEG_CLAIM_* (owner writes) */
        au64 published; /* statistics, owner writes */
        au64 waits;
        au64 wakeups;
        au64 abandoned; /* slots abandoned on this producer's behalf */
        au64 skipped;   /* LATEST: slots found held and stepped over */
        au32 claim_n;   /* how many sequences from `claim` (owner writes) */
        uint8_t pad[SEG_LINE - 60];
};
static_assert(sizeof(struct seg_prod) == SEG_LINE, "one line");

struct seg_slot {
        au64 stamp; /* (seq + 1) | WRITING */
        /* Descriptor words are atomics (relaxed): a LATEST reader reads
         * them before it knows its hold stands, seqlock-style. */
        au32 len;   /* payload bytes, <= slot_size */
        au32 flags; /* SEG_SLOT_* */
        au64 ts_ns; /* CLOCK_MONOTONIC at commit */
        uint32_t producer;
        uint32_t pad;
        /* The payload follows at once, 32-byte aligned, so that a small
         * message shares its cache line with the stamp: one line moves
         * from producer to reader, not two. Slots start on a line. */
};
#define SEG_SLOT_DESC 32u
static_assert(sizeof(struct seg_slot) == SEG_SLOT_DESC, "half a line");

/* Named offsets of the ring segment's fixed lines. */
#define SEG_RING_HEAD_OFFSET ((uint64_t)sizeof(struct seg_ring_hdr))
#define SEG_RING_NOTIFY_OFFSET (SEG_RING_HEAD_OFFSET + sizeof(struct seg_ring_head))
#define SEG_RING_PRODS_OFFSET (SEG_RING_NOTIFY_OFFSET + sizeof(struct seg_ring_notify))
static_assert(SEG_RING_HEAD_OFFSET == 2 * SEG_LINE && SEG_RING_PRODS_OFFSET == 4 * SEG_LINE, "ring lines");
static_assert(offsetof(struct seg_ring_hdr, reserved) + 8 == 128, "header packed");

struct seg_subs_hdr {
        uint64_t magic;
        uint32_t version;
        uint32_t max_subs;
        uint8_t segment_id[16]; /* same as the ring's: binds the pair */
        uint64_t seg_size;
        uint64_t subs_offset;
        uint64_t holds_offset;
        uint32_t slot_count; /* same as the ring's */
        uint16_t table;      /* this table's index */
        uint16_t sub_tables; /* same as the ring's */
};
static_assert(sizeof(struct seg_subs_hdr) == SEG_LINE, "one line");

struct seg_subs_notify {
        au32 data_armed; /* 1: a sleeper of this table on the ring's
                            data_word wants a wake-up; a waker takes it
                            (exchange to 0) and wakes once */
        au32 room_armed; /* a producer sleeps on room_word */
        au32 room_word;  /* futex: bumped when a release wakes producers */
        au32 data_word;  /* futex this table's readers sleep on: a producer
                            bumps it and wakes two; the first woken wakes
                            the rest (the relay) */
        au32 relayed;    /* the last data_word value a reader relayed */
        uint8_t pad[SEG_LINE - 20];
};
static_assert(sizeof(struct seg_subs_notify) == SEG_LINE, "one line");

/* A subscriber entry's broker-written word pair, in the ring. */
struct seg_sub_state {
        au32 state; /* SEG_ENTRY_* | table << 8 (seg_sub_state_word) */
        au32 pid;   /* owner */
};
static inline uint32_t seg_sub_state_word(uint32_t state, uint32_t table) {
        return state | table << 8;
}

/* A subscriber entry's own words, in its table (its owner writes). */
struct seg_sub {
        au32 reserved0;
        au32 reserved1;
        au64 floor; /* lowest sequence this subscriber still needs, or
                       SEG_FLOOR_NONE; gates producers */
        au64 next;  /* next sequence it will read (statistics) */
        au64 received;
        au64 lost;
        au64 sleeps;
        au32 held;
        uint8_t pad[SEG_LINE - 52];
};
static_assert(sizeof(struct seg_sub) == SEG_LINE, "one line");

/* Named offsets of the subs segment's fixed lines. */
#define SEG_SUBS_NOTIFY_OFFSET ((uint64_t)sizeof(struct seg_subs_hdr))
#define SEG_SUBS_TABLE_OFFSET (SEG_SUBS_NOTIFY_OFFSET + sizeof(struct seg_subs_notify))
static_assert(SEG_SUBS_TABLE_OFFSET == 2 * SEG_LINE, "subs lines");


/* ---------------------------------------------------------- geometry */

/* Bytes from one slot to the next: the descriptor, then the payload,
 * rounded up to whole lines. */
static inline uint32_t seg_slot_stride(uint32_t slot_size) {
        return ALIGN_UP(SEG_SLOT_DESC + slot_size, SEG_LINE);
}
/* 64-bit words of hold bitmap per slot (and of a table's mask). */
static inline uint32_t seg_hold_words(uint32_t max_subs) {
        return (max_subs + 63) / 64;
}
/* Where the hold bitmaps start: after the subscriber table. */
static inline uint64_t seg_holds_offset(uint32_t max_subs) {
        return SEG_SUBS_TABLE_OFFSET + (uint64_t)max_subs * SEG_LINE;
}
/* Ring: where the subscriber states start (after the producer table), and
 * the live-entry masks (after the states). */
static inline uint64_t seg_states_offset(uint32_t max_producers) {
        return SEG_RING_PRODS_OFFSET + (uint64_t)max_producers * SEG_LINE;
}
static inline uint64_t seg_masks_offset(uint32_t max_producers, uint32_t max_subs) {
        return ALIGN_UP(seg_states_offset(max_producers) + (uint64_t)max_subs * sizeof(struct seg_sub_state),
                        (uint64_t)SEG_LINE);
}
/* Where the slots start: after the masks, page aligned. */
static inline uint64_t seg_slots_offset(uint32_t max_producers, uint32_t max_subs, uint32_t sub_tables) {
        return ALIGN_UP(seg_masks_offset(max_producers, max_subs) +
                                (uint64_t)sub_tables * seg_hold_words(max_subs) * sizeof(uint64_t),
                        (uint64_t)4096);
}

/* ------------------------------------------------------ stamp encoding */

/* The stamp of a slot that holds seq, published. */
static inline uint64_t seg_stamp(uint64_t seq) {
        return seq + 1;
}
/* The stamp the slot of seq must show before seq may be written into it. */
static inline uint64_t seg_prev_stamp(uint64_t seq, uint32_t slot_count) {
        return seq >= slot_count ? seq - slot_count + 1 : 0;
}
/* What a slot's stamp v says to one who wants seq there. */
enum seg_stamp_state {
        SEG_STAMP_NOT_YET, /* an older lap, or seq being written */
        SEG_STAMP_READY,   /* seq, published */
        SEG_STAMP_LAPPED,  /* a later lap: seq is gone */
};
static inline enum seg_stamp_state seg_stamp_state(uint64_t v, uint64_t seq) {
        uint64_t want = seg_stamp(seq);
        if (v == want)
                return SEG_STAMP_READY;
        if ((v & SEG_STAMP_SEQ_MASK) > want)
                return SEG_STAMP_LAPPED;
        return SEG_STAMP_NOT_YET;
}

/* Geometry a creator asks for. */
struct seg_params {
        uint32_t slot_count; /* power of two, 2..SEG_SLOT_COUNT_MAX */
        uint32_t slot_size;  /* 1..SEG_SLOT_SIZE_MAX */
        uint32_t policy;     /* ZCBUS_POLICY_RELIABLE or _LATEST */
        uint32_t max_producers;
        uint32_t max_subs;
        uint8_t segment_id[16];
        uint8_t topic_id[16];
        uint64_t start_seq;
        uint32_t data_word_start;
        uint32_t sub_tables; /* 1..SEG_TABLES_MAX */
        uint8_t name_tag[16]; /* the broker's digest of the topic's name
                                 (a SHA-1 uuid): part of the ring memfd's
                                 name, which the kernel keeps */
};

/* Geometry as validated at mapping time: the only copy the data plane
 * trusts. */
struct seg_geom {
        uint32_t slot_count;
        uint32_t mask;
        uint32_t slot_size;
        uint32_t slot_stride;
        uint32_t policy;
        uint32_t max_producers;
        uint32_t max_subs;
        uint32_t sub_tables;
        uint64_t slots_offset;
        uint64_t states_offset;
        uint64_t masks_offset;
        uint64_t holds_offset;
        uint32_t hold_words;
        uint64_t ring_size;
        uint64_t subs_size; /* of each table */
        uint64_t start_seq;
        uint8_t segment_id[16];
        uint8_t topic_id[16];
};

/* A topic's segments as one process maps them: the ring, and the tables
 * it was given (a subscriber: its own; producers and the broker: all). */
struct seg_map {
        struct seg_geom g;
        uint8_t *ring;                    /* ring segment base */
        uint8_t *tables[SEG_TABLES_MAX];  /* table segment bases, NULL: not mapped */
        int ring_writable;
};

/* Accessors on a mapped pair (geometry validated, or just created). */
static inline struct seg_ring_head *seg_head(const struct seg_map *m) {
        return (struct seg_ring_head *)(m->ring + SEG_RING_HEAD_OFFSET);
}
static inline struct seg_ring_notify *seg_ring_notify(const struct seg_map *m) {
        return (struct seg_ring_notify *)(m->ring + SEG_RING_NOTIFY_OFFSET);
}
static inline struct seg_prod *seg_prod(const struct seg_map *m, uint32_t i) {
        return (struct seg_prod *)(m->ring + SEG_RING_PRODS_OFFSET) + (i % m->g.max_producers);
}
static inline struct seg_slot *seg_slot(const struct seg_map *m, uint64_t seq) {
        return (struct seg_slot *)(m->ring + m->g.slots_offset +
                                   (uint64_t)(seq & m->g.mask) * m->g.slot_stride);
}
static inline uint8_t *seg_payload(struct seg_slot *s) {
        return (uint8_t *)s + SEG_SLOT_DESC;
}
/* The broker-written state of subscriber entry i (in the ring). */
static inline struct seg_sub_state *seg_sub_state(const struct seg_map *m, uint32_t i) {
        return (struct seg_sub_state *)(m->ring + m->g.states_offset) + (i % m->g.max_subs);
}
/* Table t's live-entry mask (hold_words words, in the ring). */
static inline au64 *seg_table_mask(const struct seg_map *m, uint32_t t) {
        return (au64 *)(m->ring + m->g.masks_offset) + (uint64_t)(t % m->g.sub_tables) * m->g.hold_words;
}
/* Is table t mapped here? */
static inline bool seg_has_table(const struct seg_map *m, uint32_t t) {
        return t < m->g.sub_tables && m->tables[t];
}
/* Tables bound to a uid so far: the broker's count (untrusted: clamped).
 * A process may lack some of them: callers skip those it has not mapped. */
static inline uint32_t seg_tables_bound(const struct seg_map *m) {
        uint32_t n = load_rlx(&seg_ring_notify(m)->tables_bound);
        return n < m->g.sub_tables ? n : m->g.sub_tables;
}
/* Table t's notification line, entry i, and (LATEST) the hold bitmap of
 * seq's slot (hold_words words; bit i is entry i). Only for a mapped t. */
static inline struct seg_subs_notify *seg_subs_notify(const struct seg_map *m, uint32_t t) {
        return (struct seg_subs_notify *)(m->tables[t % SEG_TABLES_MAX] + SEG_SUBS_NOTIFY_OFFSET);
}
static inline struct seg_sub *seg_sub(const struct seg_map *m, uint32_t t, uint32_t i) {
        return (struct seg_sub *)(m->tables[t % SEG_TABLES_MAX] + SEG_SUBS_TABLE_OFFSET) + (i % m->g.max_subs);
}
static inline au64 *seg_holds(const struct seg_map *m, uint32_t t, uint64_t seq) {
        return (au64 *)(m->tables[t % SEG_TABLES_MAX] + m->g.holds_offset) + (seq & m->g.mask) * m->g.hold_words;
}

#endif
