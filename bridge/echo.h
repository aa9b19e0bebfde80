/* SPDX-License-Identifier: MIT */
/*
 * echo.h: the echo filter. A topic bridged both ways is read by the
 * bridge's outbound route, which must not send back what its inbound route
 * published. The public API does not say who published a message, so the
 * inbound side records a fingerprint (hash, length) of each message before
 * it commits it, and the outbound reader drops a message that matches.
 *
 * A window holds the entries for every message of the topic's ring that
 * the outbound route may still read: slot_count of them (under reliable
 * the producer, our inbound side too, cannot get further ahead of the
 * route; under latest an older message has been overwritten) plus the
 * route's queue (buffer). So an echo can never be pushed out of the window
 * before the route sees it.
 *
 * The windows are files of the state directory (echo-HASH), mapped
 * shared, so that they outlive the bridge: a restarted bridge re-reads a
 * reliable topic's ring from its position and must recognise the echoes in
 * it again. So on a reliable topic a match only marks the entry with the
 * sequence it matched, and the entry goes once the route's position has
 * passed that sequence (echo_release); on a latest topic (never re-read) a
 * match removes it. Either way, entries older than a match are dropped or
 * marked with it: the reader has passed their place in the ring.
 */
#ifndef ZCBUS_BRIDGE_ECHO_H
#define ZCBUS_BRIDGE_ECHO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The largest window, in entries (24 bytes each): a topic bridged both
 * ways with a larger ring gets this many (zcbus-bridge(1), BUGS). */
#define ECHO_MAX_ENTRIES (1u << 20)

struct bridge;
struct echo;

/* The window of local topic name, of room for at least slot_count +
 * the route queue's entries: found (in this process or in the state
 * directory, where a smaller one is made afresh), or made if create.
 * NULL if none (create false), or on an error (logged once). */
struct echo *echo_find(struct bridge *b, const char *name, uint32_t slot_count, bool create);
void echo_free_all(struct bridge *b);

/* Inbound: before the commit, and undone if the publish failed. */
void echo_push(struct echo *e, const void *data, size_t len);
void echo_pop_last(struct echo *e);
/* Outbound: is the message at seq an echo? keep: a reliable route's
 * (entries stay until echo_release). */
bool echo_match(struct echo *e, uint64_t seq, const void *data, size_t len, bool keep);
/* Outbound, reliable: the route's position moved to pos (every sequence
 * below is done with). */
void echo_release(struct echo *e, uint64_t pos);

#endif
