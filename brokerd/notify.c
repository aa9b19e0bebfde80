/* SPDX-License-Identifier: MIT */
/*
 * notify.c: what zcbusd tells a service manager: READY=1 once it listens,
 * STATUS= with its topics and sessions, RELOADING=1 and READY=1 around a
 * SIGHUP, STOPPING=1 at shutdown, MAINPID= when it forked. It owns the
 * datagram socket to $NOTIFY_SOCKET and the rate limit of STATUS=.
 *
 * The protocol is the one of sd_notify(3): one AF_UNIX datagram of
 * newline-separated KEY=value lines, sent to the path in $NOTIFY_SOCKET,
 * or to the abstract address it names when it starts with '@'. It is
 * small enough to write here, so zcbusd needs no libsystemd, and works
 * under any manager that speaks it. Every datagram is sent to the address
 * anew (sendto), so a manager that re-executes itself and binds its
 * socket again still hears us. A send waits at most NOTIFY_SEND_TIMEOUT:
 * a manager that does not read must not stall the broker.
 *
 * STATUS= changes whenever a session or topic comes or goes, which a busy
 * bus does all the time: it is sent at most once per
 * NOTIFY_STATUS_INTERVAL, the newest text winning, by one libev timer
 * that runs only while an update waits.
 */
#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>

#include "conf.h"
#include "macro.h"
#include "notify.h"

#define NOTIFY_SEND_TIMEOUT_MS 1000

struct notify {
        struct ev_loop *loop;
        int fd;
        struct sockaddr_un sa;
        socklen_t salen;
        bool failed_logged; /* a failed send is logged once per episode */
        ev_timer status_timer;
        ev_tstamp status_sent_at; /* when the last STATUS= went out; 0: never */
        char status_sent[NOTIFY_STATUS_MAX];
        char status_next[NOTIFY_STATUS_MAX];
        bool status_pending;
};

static void notify_status_cb(struct ev_loop *loop, ev_timer *w, int revents);

int notify_new(struct ev_loop *loop, struct notify **ret) {
        const char *e = getenv("NOTIFY_SOCKET");
        _cleanup_free_ struct notify *n = NULL;
        struct timeval tv = {.tv_sec = NOTIFY_SEND_TIMEOUT_MS / 1000,
                             .tv_usec = NOTIFY_SEND_TIMEOUT_MS % 1000 * 1000};
        size_t len;

        *ret = NULL;
        if (!e || !*e)
                return 0;
        if (e[0] != '/' && e[0] != '@')
                return -EINVAL; /* relative, or vsock: which we do not speak */
        len = strlen(e);
        n = calloc(1, sizeof(*n));
        if (!n)
                return -ENOMEM;
        if (len > sizeof(n->sa.sun_path) || (e[0] == '/' && len == sizeof(n->sa.sun_path)))
                return -ENAMETOOLONG;
        n->sa.sun_family = AF_UNIX;
        memcpy(n->sa.sun_path, e, len);
        if (e[0] == '@') {
                n->sa.sun_path[0] = '\0'; /* abstract: the length says where it ends */
                n->salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
        } else {
                n->salen = (socklen_t)sizeof(n->sa);
        }
        n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (n->fd < 0)
                return negerrno();
        (void)setsockopt(n->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        n->loop = loop;
        ev_timer_init(&n->status_timer, notify_status_cb, NOTIFY_STATUS_INTERVAL, 0.);
        n->status_timer.data = n;
        *ret = TAKE_PTR(n);
        return 0;
}

void notify_free(struct notify *n) {
        if (!n)
                return;
        ev_timer_stop(n->loop, &n->status_timer);
        closep(&n->fd);
        free(n);
}

int notify_send(struct notify *n, const char *msg) {
        size_t len = strlen(msg);
        ssize_t r;

        if (!n)
                return 0;
        do
                r = sendto(n->fd, msg, len, MSG_NOSIGNAL, (const struct sockaddr *)&n->sa, n->salen);
        while (r < 0 && errno == EINTR);
        if (r < 0) {
                int err = negerrno();
                if (!n->failed_logged)
                        log_warn("telling the service manager '%.*s' failed: %s", (int)strcspn(msg, "\n"), msg,
                                 strerror(-err));
                n->failed_logged = true;
                return err;
        }
        n->failed_logged = false;
        return 0;
}

static void status_send_now(struct notify *n) {
        char msg[NOTIFY_STATUS_MAX + 8];

        n->status_pending = false;
        if (strcmp(n->status_next, n->status_sent) == 0)
                return;
        (void)snprintf(msg, sizeof(msg), "STATUS=%s", n->status_next);
        (void)notify_send(n, msg);
        memcpy(n->status_sent, n->status_next, sizeof(n->status_sent));
        n->status_sent_at = ev_now(n->loop);
}

static void notify_status_cb(struct ev_loop *loop, ev_timer *w, int revents) {
        struct notify *n = w->data;

        if (n->status_pending)
                status_send_now(n);
}

void notify_status(struct notify *n, const char *status) {
        ev_tstamp wait;

        if (!n)
                return;
        (void)snprintf(n->status_next, sizeof(n->status_next), "%s", status);
        n->status_pending = true;
        if (ev_is_active(&n->status_timer))
                return; /* the timer sends the newest text */
        wait = n->status_sent_at + NOTIFY_STATUS_INTERVAL - ev_now(n->loop);
        if (n->status_sent_at == 0. || wait <= 0.) {
                status_send_now(n);
                return;
        }
        ev_timer_set(&n->status_timer, wait, 0.);
        ev_timer_start(n->loop, &n->status_timer);
}

void notify_status_flush(struct notify *n) {
        if (!n)
                return;
        ev_timer_stop(n->loop, &n->status_timer);
        if (n->status_pending)
                status_send_now(n);
}
