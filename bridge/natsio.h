/* SPDX-License-Identifier: MIT */
/*
 * natsio.h: a thread of the bridge's own that drives a libnats connection
 * in libnats's event-loop mode, so that the bridge decides when its
 * publishes are written (natsio.c).
 *
 * A thread that is about to publish several messages in a row corks
 * (natsio_cork): its publishes then only fill the connection's buffer,
 * and natsio_flush writes them, whatever else is buffered with them, in
 * one system call on the calling thread. A publish made uncorked (libnats's
 * own PINGs and PONGs, subscriptions, requests) is written by the
 * connection's thread at once. A lone message therefore goes out as soon
 * as send_asap's would, and a burst in as many writes as it has flushes.
 */
#ifndef ZCBUS_BRIDGE_NATSIO_H
#define ZCBUS_BRIDGE_NATSIO_H

#include <nats/nats.h>

struct natsio;

/* A driver for one connection, set into o as its event loop: the
 * connection made with o (and each reconnection of it) is then read and
 * written by the driver's thread. One driver per connection: connect
 * again with the same driver only after the last connection is
 * destroyed. */
int natsio_new(natsOptions *o, struct natsio **ret);
/* After the connection is destroyed (or never made). */
void natsio_free(struct natsio *io);

/* This thread's publishes on io's connection stay buffered until
 * natsio_flush (several at once: one write). */
void natsio_cork(struct natsio *io);
/* Write what this thread's corked publishes left in the buffer, and
 * uncork; what the socket does not take now, io's thread writes when it
 * can. */
void natsio_flush(struct natsio *io);

/* Write until at most below bytes wait in the connection's buffer,
 * waiting for the socket up to timeout_ms: 0, or -ETIMEDOUT. Uncorks
 * this thread first. */
int natsio_drain(struct natsio *io, size_t below, int timeout_ms);

#endif
