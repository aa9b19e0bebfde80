/* SPDX-License-Identifier: MIT */
/*
 * broker.h: zcbusd's listening socket, sessions and request dispatch. See
 * broker.c.
 */
#ifndef ZCBUS_BROKERD_BROKER_H
#define ZCBUS_BROKERD_BROKER_H

#include <ev.h>

#include "conf.h"

#define BROKER_ACCEPT_BATCH 64u     /* connections accepted per wake-up */
#define BROKER_ACCEPT_PAUSE 0.1     /* seconds to stop accepting when out of fds */

struct broker;

/* Listen on path (refusing if a live broker has it, replacing a stale
 * socket) and start serving on loop. conf must outlive the broker. Logs
 * its own errors. */
int broker_new(struct ev_loop *loop, const struct conf *conf, const char *path, struct broker **ret);
/* Stop accepting, close every session (clients see EOF), free all
 * topics, remove the socket file if it is still ours. Accepts NULL. */
void broker_free(struct broker *b);

#endif
