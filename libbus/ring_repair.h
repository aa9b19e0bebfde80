/* SPDX-License-Identifier: MIT */
/*
 * ring_repair.h: what only the broker does to a ring: hand table entries
 * to new peers, and free them after their owners closed or died,
 * abandoning a dead producer's claimed, unpublished sequences so readers
 * step over them. Linked into zcbusd (libzcbus-broker), never into
 * libzcbus.
 */
#ifndef ZCBUS_RING_REPAIR_H
#define ZCBUS_RING_REPAIR_H

#include <stdbool.h>
#include <stdint.h>

#include "ring.h"

/* A producer repair in progress, owned by the broker: zero-initialised
 * before the first step. */
enum {
        RING_REPAIR_NEW = 0, /* the claim is not read yet */
        RING_REPAIR_CLAIM,   /* writing off a recorded claim */
        RING_REPAIR_HOLES,   /* J: looking for the holes of a pending claim */
};
struct ring_repair {
        uint64_t next, end; /* sequences [next, end) still to look at */
        uint32_t stage;     /* RING_REPAIR_* */
};

void ring_prod_activate(const struct seg_map *m, uint32_t index, uint32_t pid);
/* Bind table (the next in order) to a uid: producers look at it from now
 * on. Idempotent. */
void ring_bind_table(const struct seg_map *m, uint32_t table);
/* Register subscriber entry index in table (binding the table), with up
 * to history messages still in the ring: its floor, then the entry live,
 * then the gen bump producers watch, then the look at head (point G).
 * Returns the sequence it starts at. */
uint64_t ring_sub_register(const struct seg_map *m, uint32_t index, uint32_t table, uint32_t pid,
                           uint32_t history);
/* Free a subscriber entry (dead or closed): it stops gating at once and
 * blocked producers are woken. */
void ring_sub_evict(const struct seg_map *m, uint32_t index, uint32_t table);
/* The stall policy: evict a live subscriber that holds producers back.
 * Like ring_sub_evict, but the entry is EVICTED, not FREE: its owner still
 * holds it (the broker does not hand it out again until the owner closes
 * or dies), and its next receive fails with -ESTALE. */
void ring_sub_stall_evict(const struct seg_map *m, uint32_t index, uint32_t table);
/* RELIABLE: does live subscriber index hold producers back: the ring is
 * full from its floor (returned, untrusted, in *ret_floor), and the
 * message there is published, so the subscriber could move on and does
 * not? */
bool ring_sub_gating(const struct seg_map *m, uint32_t index, uint32_t table, uint64_t *ret_floor);
/* Put an entry the broker holds FREE or EVICTED (in table) back in that
 * state, live in no table's mask, if the ring says otherwise (producers
 * write the ring). Returns whether it had to; the caller then wakes
 * producers (ring_wake_room). */
bool ring_sub_entry_reset(const struct seg_map *m, uint32_t index, uint32_t table, uint32_t state);
/* LATEST: how many of the slots [from, to) entry index of table holds. */
uint64_t ring_sub_count_holds(const struct seg_map *m, uint32_t index, uint32_t table, uint64_t from, uint64_t to);
/* Wake every producer asleep for room, on every table. */
void ring_wake_room(const struct seg_map *m);
/* Free a producer entry whose owner is gone, abandoning any sequence it
 * claimed and never published so readers step over it. Wakes every
 * sleeper on both words first (the owner may have died inside a wake-up).
 * Returns 0 when done, -EAGAIN when ring_prod_repair must be retried
 * later (a slot is not free yet, or a live producer is between claim and
 * record). */
int ring_prod_evict(const struct seg_map *m, uint32_t index);
/* The first half of ring_prod_evict: mark the entry closing and wake
 * every sleeper; then repair it step by step (ring_prod_repair_step). */
void ring_prod_close(const struct seg_map *m, uint32_t index);
/* One whole repair attempt from scratch (no budget). */
int ring_prod_repair(const struct seg_map *m, uint32_t index);
/* One bounded step of a resumable repair: spends at most about *budget
 * units (one per sequence examined or claim compared, plus one pass over
 * each table) and decreases it. Returns 0 when done (the entry is free),
 * -EAGAIN when a slot is not free yet because a subscriber still needs the
 * lap before (an honest wait, which the stall policy bounds; retry later,
 * st remembers where), -EBUSY when it waits for another producer (the lap
 * before unfinished, or a producer between its intent and its claim:
 * honest only briefly), -EINPROGRESS when the budget ran out (go on soon). */
int ring_prod_repair_step(const struct seg_map *m, uint32_t index, struct ring_repair *st, uint64_t *budget);
/* Give up on a repair: free the entry whatever it left behind, and wake
 * every sleeper. Readers of a reliable topic may then wait at a hole
 * until a producer times out; that is what a hostile producer bought. */
void ring_prod_forget(const struct seg_map *m, uint32_t index);

#endif
