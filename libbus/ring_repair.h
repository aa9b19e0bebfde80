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

#include <stdint.h>

#include "ring.h"

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

#endif
