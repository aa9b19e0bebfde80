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
 * socket), or, if listen_fd >= 0, serve the listening socket a service
 * manager passed (path is then only its name, for messages; the broker
 * neither binds nor removes it), and start serving on loop. conf must
 * outlive the broker. Takes listen_fd whatever happens. Logs its own
 * errors. */
int broker_new(struct ev_loop *loop, const struct conf *conf, const char *path, int listen_fd,
               struct broker **ret);
/* Called when the number of topics or sessions may have changed. */
typedef void (*broker_changed_fn)(struct broker *b, void *userdata);
void broker_set_changed(struct broker *b, broker_changed_fn fn, void *userdata);
uint32_t broker_topics(const struct broker *b);
uint32_t broker_sessions(const struct broker *b);
/* Stop accepting, close every session (clients see EOF), free all
 * topics, remove the socket file if it is still ours. Accepts NULL. */
void broker_free(struct broker *b);

#endif
