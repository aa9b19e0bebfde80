/* SPDX-License-Identifier: MIT */
/*
 * seg.h: a topic's segments over their life: creating them sealed
 * (the broker), validating and mapping them (everyone), unmapping. The
 * layout itself (structs, offsets, stamps, limits) is layout.h.
 *
 * Everything read from a segment at run time is untrusted: the geometry
 * is copied out of the header once, checked against fstat() and the
 * seals, and never re-read.
 */
#ifndef ZCBUS_SEG_H
#define ZCBUS_SEG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "layout.h"

/* Size computations; -EINVAL / -E2BIG for bad or oversized parameters. */
int seg_params_check(const struct seg_params *p);
int seg_ring_size(const struct seg_params *p, uint64_t *ret_size);
uint64_t seg_subs_size(uint32_t max_subs, uint32_t slot_count, uint32_t policy);
/* Every byte of a topic: its ring (of ring_size) and its tables. */
uint64_t seg_topic_bytes(const struct seg_params *p, uint64_t ring_size);

/* Create and initialise the ring and p->sub_tables tables, sealed.
 * Returns 0, the ring's fd and the tables' in ret_table_fds[0..sub_tables). */
int seg_create(const struct seg_params *p, int *ret_ring_fd, int *ret_table_fds);

/* The creator's side of a restart: the memfd name of a topic's ring
 * (table < 0; name_tag: the creator's digest of the topic name) or table;
 * whether fd is a segment this uid made (owner, mode, seals) with that
 * name (-EPERM if not). */
void seg_memfd_name(char *buf, size_t len, const uint8_t segment_id[16], int table, const uint8_t name_tag[16]);
int seg_fd_is(int fd, const char *memfd_name, mode_t mode);
/* Create table t of a topic of geometry g, sealed: a fresh one in place of
 * one lost with a broker. */
int seg_create_table(const struct seg_geom *g, uint32_t t, int *ret_fd);
/* Map table t (its size and seals checked) into m; -EEXIST if m has it. */
int seg_map_table(struct seg_map *m, int fd, uint32_t t);

/* Validate and map the ring and ntables tables, table_fds[i] being table
 * first + i (a table's header is not trusted: its subscribers can write
 * it). ring_writable: map the ring read-write (producers and the broker);
 * otherwise read-only. Tables are always mapped read-write. The fds are
 * not consumed. */
int seg_map_fds(int ring_fd, const int *table_fds, uint32_t first, uint32_t ntables, int ring_writable,
                struct seg_map *ret_map);
/* Validate a ring and one table against their mapped sizes; exposed for
 * unit tests. */
int seg_validate(const void *ring, uint64_t ring_size, const void *subs, uint64_t subs_size,
                 struct seg_geom *ret_geom);
/* Unmap both segments (NULL, or an unmapped map: nothing to do). */
void seg_unmap(struct seg_map *m);

#endif
