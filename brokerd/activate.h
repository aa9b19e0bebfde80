/* SPDX-License-Identifier: MIT */
/*
 * activate.h: taking the listening socket from a service manager
 * (socket activation, LISTEN_FDS/LISTEN_PID). See activate.c.
 */
#ifndef ZCBUS_BROKERD_ACTIVATE_H
#define ZCBUS_BROKERD_ACTIVATE_H

#include <stddef.h>

#define ACTIVATE_FD_START 3 /* SD_LISTEN_FDS_START */

/* If LISTEN_PID is our pid and LISTEN_FDS is at least 1, check that
 * descriptor 3 is a listening AF_UNIX SOCK_SEQPACKET socket, make it
 * close-on-exec and non-blocking, and hand it out with its address in
 * ret_path ("@name" for an abstract one). Descriptors after the first
 * are made close-on-exec and closed. The LISTEN_* variables are unset
 * whatever they said, so nothing we start inherits them.
 *
 * Returns the number of descriptors passed (LISTEN_FDS, at least 1) with
 * *ret_fd set, 0 (and *ret_fd -1) if none was passed to us, or a negative
 * errno with a message in err. */
int activate_listen_fd(int *ret_fd, char *ret_path, size_t pathlen, char *err, size_t errlen);

#endif
