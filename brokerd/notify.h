/* SPDX-License-Identifier: MIT */
/*
 * notify.h: readiness and status for a service manager, the datagram
 * protocol of sd_notify(3) written directly. See notify.c.
 */
#ifndef ZCBUS_BROKERD_NOTIFY_H
#define ZCBUS_BROKERD_NOTIFY_H

#include <ev.h>

#define NOTIFY_STATUS_INTERVAL 1.0 /* seconds: STATUS= at most this often */
#define NOTIFY_STATUS_MAX 256u      /* bytes of one STATUS= text */

struct notify;

/* Open the socket $NOTIFY_SOCKET names (a path, or '@' for the abstract
 * namespace). Without the variable, *ret is NULL and every call below is
 * a no-op. Returns 0, or -EINVAL/-ENAMETOOLONG for a variable that names
 * no usable address, or the socket(2) error. */
int notify_new(struct ev_loop *loop, struct notify **ret);
/* Accepts NULL. */
void notify_free(struct notify *n);
/* Send one datagram of "KEY=value" lines, as is. Returns 0 or a negative
 * errno (also logged, once). */
int notify_send(struct notify *n, const char *msg);
/* Make status the STATUS= text: sent now if the last STATUS= went out at
 * least NOTIFY_STATUS_INTERVAL ago, else once that much time has passed
 * (the newest text wins; one that changes nothing is not sent). */
void notify_status(struct notify *n, const char *status);
/* Send a pending STATUS= now (before READY=1 or STOPPING=1). */
void notify_status_flush(struct notify *n);

#endif
