/* SPDX-License-Identifier: MIT */
/*
 * libev-service.c: a zcbus service on one libev loop. It subscribes to two
 * topics of numbers (text, as `zcbus pub` sends them), keeps a running
 * total, and publishes one line per number it receives to a third topic:
 *
 *     TOPIC VALUE total TOTAL
 *
 * Each subscription's descriptor (zcbus_sub_fd) gets an ev_io watcher.
 * The contract (zcbus.h): when the descriptor polls readable, receive with
 * timeout 0 until -EAGAIN, then go back to the loop; no message that
 * arrives after that -EAGAIN is missed, and a receive that gets a message
 * makes no system call. ev_signal watchers end the loop on SIGINT and
 * SIGTERM, and -n COUNT ends it after COUNT messages.
 *
 * Build against an installed libzcbus (Debian's libev has no pkg-config
 * file, hence the plain -lev):
 *
 *     cc libev-service.c $(pkg-config --cflags --libs zcbus) -lev -o libev-service
 *     ./libev-service -n 6 in.a in.b out &
 *     zcbus sub out -n 6 &
 *     zcbus pub in.a 1 2 3; zcbus pub in.b 10 20 30
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ev.h>
#include <zcbus.h>

/* How long a publish may wait for room. zcbus.h has no descriptor for
 * "room in the ring" yet, so a full output ring (its slowest subscriber a
 * whole ring behind, on a reliable topic) blocks this loop for up to this
 * long; then the line is dropped and counted. */
#define SEND_TIMEOUT_MS 1000

struct service;

/* One input topic: its subscription and the loop's watcher on it. */
struct input {
        ev_io io; /* first: the callback gets &io and casts back */
        struct service *svc;
        const char *topic;
        zcbus_sub *sub;
};

struct service {
        struct ev_loop *loop;
        struct input in[2];
        const char *out_topic;
        zcbus_pub *out;
        uint64_t limit;    /* stop after this many messages; 0: never */
        uint64_t received; /* numbers received, both inputs */
        uint64_t dropped;  /* output lines that found no room in time */
        int64_t total;
        int status; /* exit status: 0, or 1 after a failure */
};

static void fail(struct service *svc, const char *what, const char *topic, int r) {
        fprintf(stderr, "libev-service: %s '%s': %s\n", what, topic, zcbus_strerror(r));
        svc->status = 1;
        ev_break(svc->loop, EVBREAK_ALL);
}

/* One message: parse, add up, publish the line. Returns 0 or a negative
 * errno from the output. */
static int handle(struct service *svc, const struct input *in, const zcbus_msg *m) {
        char text[32], line[ZCBUS_TOPIC_MAX + 64];
        long long v;
        char *end;
        int n, r;

        /* m->data points into the shared ring and is not NUL-terminated:
         * copy the few bytes we parse. */
        if (m->len == 0 || m->len >= sizeof(text)) {
                fprintf(stderr, "libev-service: '%s': skipping a %zu-byte message\n", in->topic, m->len);
                return 0;
        }
        memcpy(text, m->data, m->len);
        text[m->len] = '\0';
        errno = 0;
        v = strtoll(text, &end, 10);
        if (errno || end == text || *end) {
                fprintf(stderr, "libev-service: '%s': skipping '%s', not a number\n", in->topic, text);
                return 0;
        }
        svc->total += v;
        n = snprintf(line, sizeof(line), "%s %lld total %" PRId64, in->topic, v, svc->total);
        if (n < 0 || (size_t)n >= sizeof(line)) /* cannot happen: topics have at most 255 bytes */
                return -EINVAL;
        r = zcbus_pub_send(svc->out, line, (size_t)n, SEND_TIMEOUT_MS);
        if (r == -ETIMEDOUT) {
                svc->dropped++;
                return 0;
        }
        return r;
}

/* The descriptor of in->sub is readable: receive until -EAGAIN. */
static void on_input(struct ev_loop *loop, ev_io *w, int revents) {
        struct input *in = (struct input *)w;
        struct service *svc = in->svc;
        zcbus_msg m;
        int r;

        (void)loop;
        (void)revents;
        while ((r = zcbus_sub_recv(in->sub, &m, 0)) == 0) {
                int h = handle(svc, in, &m);
                /* Release as soon as we are done with it: a reliable
                 * topic's producers wait for the slowest release. */
                (void)zcbus_sub_release(in->sub, &m);
                if (h < 0) {
                        fail(svc, "cannot publish to", svc->out_topic, h);
                        return;
                }
                if (++svc->received == svc->limit) {
                        ev_break(svc->loop, EVBREAK_ALL);
                        return;
                }
        }
        /* -EAGAIN: drained, back to the loop. Anything else is the end of
         * this subscription (-ESTALE: the broker evicted it as stalled). */
        if (r != -EAGAIN)
                fail(svc, "cannot receive from", in->topic, r);
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents) {
        (void)w;
        (void)revents;
        ev_break(loop, EVBREAK_ALL);
}

static void usage(FILE *f) {
        fprintf(f, "Usage: libev-service [-s SOCKET] [-n COUNT] IN1 IN2 OUT\n"
                   "Adds up the numbers published on IN1 and IN2 and publishes\n"
                   "'TOPIC VALUE total TOTAL' for each on OUT, until SIGINT or SIGTERM,\n"
                   "or COUNT numbers. SOCKET: the broker's (default $ZCBUS_SOCKET).\n");
}

int main(int argc, char **argv) {
        struct service svc = {0};
        const char *sock = NULL;
        ev_signal sigint, sigterm;
        zcbus *bus;
        int opt, r;

        while ((opt = getopt(argc, argv, "s:n:h")) != -1) {
                switch (opt) {
                case 's':
                        sock = optarg;
                        break;
                case 'n': {
                        char *end;
                        errno = 0;
                        svc.limit = strtoull(optarg, &end, 10);
                        if (errno || end == optarg || *end || optarg[0] == '-') {
                                fprintf(stderr, "libev-service: -n wants a count, not '%s'\n", optarg);
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
        if (argc - optind != 3) {
                usage(stderr);
                return 2;
        }
        svc.in[0].topic = argv[optind];
        svc.in[1].topic = argv[optind + 1];
        svc.out_topic = argv[optind + 2];

        r = zcbus_connect(sock, &bus); /* NULL: $ZCBUS_SOCKET, else the default */
        if (r < 0) {
                fprintf(stderr, "libev-service: cannot connect to the broker: %s\n", zcbus_strerror(r));
                return 1;
        }
        svc.loop = EV_DEFAULT; /* the default loop: the one ev_signal works in */

        /* NULL options: the topic's shape if it exists, else the broker's
         * defaults (whichever opener comes first creates the topic). */
        r = zcbus_pub_open(bus, svc.out_topic, NULL, &svc.out);
        if (r < 0) {
                fprintf(stderr, "libev-service: cannot publish to '%s': %s %s\n", svc.out_topic,
                        zcbus_strerror(r), zcbus_last_error(bus));
                zcbus_disconnect(bus);
                return 1;
        }
        for (int i = 0; i < 2; i++) {
                struct input *in = &svc.in[i];
                in->svc = &svc;
                r = zcbus_sub_open(bus, in->topic, NULL, &in->sub);
                if (r >= 0)
                        r = zcbus_sub_fd(in->sub); /* owned by the subscription */
                if (r < 0) {
                        fprintf(stderr, "libev-service: cannot subscribe to '%s': %s %s\n", in->topic,
                                zcbus_strerror(r), zcbus_last_error(bus));
                        svc.status = 1;
                        break;
                }
                /* Level-triggered, as the descriptor is: libev calls us
                 * again while it stays readable. */
                ev_io_init(&in->io, on_input, r, EV_READ);
                ev_io_start(svc.loop, &in->io);
        }

        if (svc.status == 0) {
                ev_signal_init(&sigint, on_signal, SIGINT);
                ev_signal_init(&sigterm, on_signal, SIGTERM);
                ev_signal_start(svc.loop, &sigint);
                ev_signal_start(svc.loop, &sigterm);
                /* Subscribed: from now on nothing published is missed. */
                fprintf(stderr, "libev-service: adding up '%s' and '%s' into '%s'\n", svc.in[0].topic,
                        svc.in[1].topic, svc.out_topic);
                ev_run(svc.loop, 0);
                ev_signal_stop(svc.loop, &sigint);
                ev_signal_stop(svc.loop, &sigterm);
                fprintf(stderr, "libev-service: %" PRIu64 " numbers, total %" PRId64 ", %" PRIu64 " lines dropped\n",
                       svc.received, svc.total, svc.dropped);
        }

        /* Stop watching a descriptor before closing the subscription,
         * which closes it. */
        for (int i = 0; i < 2; i++) {
                if (ev_is_active(&svc.in[i].io))
                        ev_io_stop(svc.loop, &svc.in[i].io);
                zcbus_sub_close(svc.in[i].sub);
        }
        zcbus_pub_close(svc.out);
        zcbus_disconnect(bus);
        return svc.status;
}
