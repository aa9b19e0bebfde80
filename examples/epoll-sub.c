/* SPDX-License-Identifier: MIT */
/*
 * epoll-sub.c: many zcbus topics on one descriptor, in a plain epoll
 * loop. It subscribes to every TOPIC given, puts the subscriptions in a
 * wait set, and prints each message as "TOPIC: PAYLOAD", until SIGINT or
 * SIGTERM (a signalfd in the same epoll set), or -n COUNT messages.
 *
 * The contract of a wait set (zcbus.h): when zcbus_waitset_fd() polls
 * readable, call zcbus_waitset_next() until it returns -EAGAIN, and for
 * each subscription it gives, zcbus_sub_recv(..., 0) until -EAGAIN; then
 * epoll_wait() again. No message that arrives after those -EAGAINs is
 * missed, and the descriptor is level-triggered (EPOLLET is not needed and
 * gains nothing). zcbus_waitset_next() takes the members in turn, so a
 * busy topic does not starve the others.
 *
 * Build against an installed libzcbus:
 *
 *     cc epoll-sub.c $(pkg-config --cflags --libs zcbus) -o epoll-sub
 *     ./epoll-sub -n 4 cam imu gps &
 *     zcbus pub cam frame1 frame2; zcbus pub imu x; zcbus pub gps fix
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <zcbus.h>

#define TOPICS_MAX 64

struct input {
        const char *topic;
        zcbus_sub *sub;
};

static struct input inputs[TOPICS_MAX];
static unsigned ninputs;

static const char *topic_of(const zcbus_sub *sub) {
        for (unsigned i = 0; i < ninputs; i++)
                if (inputs[i].sub == sub)
                        return inputs[i].topic;
        return "?";
}

static void usage(FILE *f) {
        fprintf(f, "Usage: epoll-sub [-s SOCKET] [-n COUNT] TOPIC...\n"
                   "Prints each message on the TOPICs as 'TOPIC: PAYLOAD', until SIGINT or\n"
                   "SIGTERM, or COUNT messages. SOCKET: the broker's (default $ZCBUS_SOCKET).\n");
}

/* Everything the wait set has, until -EAGAIN. Returns 1 once limit
 * messages came (0: no limit), 0 when drained, or a negative errno. */
static int drain(zcbus_waitset *ws, unsigned long long limit, unsigned long long *received) {
        zcbus_sub *sub;
        int r;

        while ((r = zcbus_waitset_next(ws, &sub)) == 0) {
                zcbus_msg m;
                while ((r = zcbus_sub_recv(sub, &m, 0)) == 0) {
                        /* m.data points into the shared ring, valid until
                         * released; payloads here are text. */
                        printf("%s: %.*s\n", topic_of(sub), (int)m.len, (const char *)m.data);
                        (void)zcbus_sub_release(sub, &m);
                        if (++*received == limit)
                                return 1;
                }
                if (r != -EAGAIN) {
                        fprintf(stderr, "epoll-sub: cannot receive from '%s': %s\n", topic_of(sub),
                                zcbus_strerror(r));
                        return r;
                }
        }
        fflush(stdout);
        return r == -EAGAIN ? 0 : r;
}

int main(int argc, char **argv) {
        unsigned long long limit = 0, received = 0;
        const char *sock = NULL;
        zcbus_waitset *ws = NULL;
        zcbus *bus;
        sigset_t sigs;
        int opt, r, ep = -1, sfd = -1, status = 1;

        while ((opt = getopt(argc, argv, "s:n:h")) != -1) {
                switch (opt) {
                case 's':
                        sock = optarg;
                        break;
                case 'n': {
                        char *end;
                        errno = 0;
                        limit = strtoull(optarg, &end, 10);
                        if (errno || end == optarg || *end || optarg[0] == '-') {
                                fprintf(stderr, "epoll-sub: -n wants a count, not '%s'\n", optarg);
                                return 2;
                        }
                        break;
                }
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
        }
        if (optind == argc || argc - optind > TOPICS_MAX) {
                usage(stderr);
                return 2;
        }

        /* SIGINT and SIGTERM as events in the loop: block them, read them
         * from a signalfd. */
        sigemptyset(&sigs);
        sigaddset(&sigs, SIGINT);
        sigaddset(&sigs, SIGTERM);
        if (sigprocmask(SIG_BLOCK, &sigs, NULL) < 0 || (sfd = signalfd(-1, &sigs, SFD_CLOEXEC)) < 0) {
                perror("epoll-sub: signalfd");
                return 1;
        }

        r = zcbus_connect(sock, &bus); /* NULL: $ZCBUS_SOCKET, else the default */
        if (r < 0) {
                fprintf(stderr, "epoll-sub: cannot connect to the broker: %s\n", zcbus_strerror(r));
                close(sfd);
                return 1;
        }
        r = zcbus_waitset_new(&ws);
        for (int i = optind; r >= 0 && i < argc; i++) {
                struct input *in = &inputs[ninputs];
                in->topic = argv[i];
                r = zcbus_sub_open(bus, in->topic, NULL, &in->sub);
                if (r < 0) {
                        fprintf(stderr, "epoll-sub: cannot subscribe to '%s': %s %s\n", in->topic,
                                zcbus_strerror(r), zcbus_last_error(bus));
                        break;
                }
                ninputs++;
                r = zcbus_waitset_add(ws, in->sub); /* -EBUSY: already in a set */
                if (r < 0)
                        fprintf(stderr, "epoll-sub: cannot watch '%s': %s\n", in->topic, zcbus_strerror(r));
        }

        ep = r < 0 ? -1 : epoll_create1(EPOLL_CLOEXEC);
        if (ep >= 0) {
                struct epoll_event bus_ev = {.events = EPOLLIN, .data.fd = zcbus_waitset_fd(ws)};
                struct epoll_event sig_ev = {.events = EPOLLIN, .data.fd = sfd};
                if (epoll_ctl(ep, EPOLL_CTL_ADD, bus_ev.data.fd, &bus_ev) < 0 ||
                    epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &sig_ev) < 0) {
                        perror("epoll-sub: epoll_ctl");
                        close(ep);
                        ep = -1;
                }
        }
        if (ep >= 0) {
                /* Subscribed: from now on nothing published is missed. */
                fprintf(stderr, "epoll-sub: subscribed to %u topics\n", ninputs);
                for (;;) {
                        struct epoll_event ev[2];
                        int n = epoll_wait(ep, ev, 2, -1);
                        if (n < 0 && errno == EINTR)
                                continue;
                        if (n < 0) {
                                perror("epoll-sub: epoll_wait");
                                break;
                        }
                        bool stop = false;
                        for (int k = 0; k < n; k++) {
                                if (ev[k].data.fd == sfd) {
                                        struct signalfd_siginfo si;
                                        (void)!read(sfd, &si, sizeof(si));
                                        stop = true;
                                        status = 0;
                                } else if ((r = drain(ws, limit, &received)) != 0) {
                                        stop = true;
                                        status = r < 0;
                                }
                        }
                        if (stop)
                                break;
                }
                fflush(stdout);
                fprintf(stderr, "epoll-sub: %llu messages\n", received);
                close(ep);
        }

        /* zcbus_waitset_free() takes every subscription out of the set;
         * then each is closed on its own. */
        zcbus_waitset_free(ws);
        for (unsigned i = 0; i < ninputs; i++)
                zcbus_sub_close(inputs[i].sub);
        zcbus_disconnect(bus);
        close(sfd);
        return status;
}
