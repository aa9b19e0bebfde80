/* SPDX-License-Identifier: MIT */
/*
 * glib-sub.c: a zcbus subscriber in a GLib main loop. It prints every
 * message on one topic as a line of text, until SIGINT or SIGTERM, or
 * -n COUNT messages.
 *
 * g_unix_fd_add() watches the subscription's descriptor (zcbus_sub_fd).
 * The contract (zcbus.h): when it polls readable, receive with timeout 0
 * until -EAGAIN, then return to the loop; no message that arrives after
 * that -EAGAIN is missed. The descriptor is level-triggered, as GLib
 * expects, and owned by the subscription: zcbus_sub_close() closes it, so
 * remove the source first. Many topics on one descriptor: see the wait set
 * in epoll-sub.c; the same g_unix_fd_add() works on zcbus_waitset_fd().
 *
 * Build against an installed libzcbus:
 *
 *     cc glib-sub.c $(pkg-config --cflags --libs zcbus glib-2.0) -o glib-sub
 *     ./glib-sub -n 3 greetings &
 *     zcbus pub greetings hello zero-copy world
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <glib.h>
#include <glib-unix.h>
#include <zcbus.h>

struct app {
        GMainLoop *loop;
        const char *topic;
        zcbus_sub *sub;
        guint source; /* the fd source's id; 0 once removed */
        guint64 limit; /* stop after this many messages; 0: never */
        guint64 received;
        int status; /* exit status: 0, or 1 after a failure */
};

/* The descriptor is readable: receive until -EAGAIN. Returning
 * G_SOURCE_REMOVE drops the watch. */
static gboolean on_readable(gint fd, GIOCondition cond, gpointer data) {
        struct app *app = data;
        zcbus_msg m;
        int r;

        (void)fd;
        (void)cond;
        while ((r = zcbus_sub_recv(app->sub, &m, 0)) == 0) {
                /* m.data points into the shared ring; it stays valid and
                 * unchanged until we release it. */
                printf("%.*s\n", (int)m.len, (const char *)m.data);
                (void)zcbus_sub_release(app->sub, &m);
                if (++app->received == app->limit) {
                        g_main_loop_quit(app->loop);
                        app->source = 0;
                        return G_SOURCE_REMOVE;
                }
        }
        fflush(stdout);
        if (r == -EAGAIN) /* drained: wait for the next wake */
                return G_SOURCE_CONTINUE;
        /* The subscription is over (-ESTALE: evicted as stalled, ...). */
        fprintf(stderr, "glib-sub: cannot receive from '%s': %s\n", app->topic, zcbus_strerror(r));
        app->status = 1;
        g_main_loop_quit(app->loop);
        app->source = 0;
        return G_SOURCE_REMOVE;
}

static gboolean on_signal(gpointer data) {
        struct app *app = data;

        g_main_loop_quit(app->loop);
        return G_SOURCE_CONTINUE;
}

static void usage(FILE *f) {
        fprintf(f, "Usage: glib-sub [-s SOCKET] [-n COUNT] TOPIC\n"
                   "Prints each message on TOPIC as a line, until SIGINT or SIGTERM, or\n"
                   "COUNT messages. SOCKET: the broker's (default $ZCBUS_SOCKET).\n");
}

int main(int argc, char **argv) {
        struct app app = {0};
        const char *sock = NULL;
        guint sigint, sigterm;
        zcbus *bus;
        int opt, fd, r;

        while ((opt = getopt(argc, argv, "s:n:h")) != -1) {
                switch (opt) {
                case 's':
                        sock = optarg;
                        break;
                case 'n': {
                        char *end;
                        errno = 0;
                        app.limit = strtoull(optarg, &end, 10);
                        if (errno || end == optarg || *end || optarg[0] == '-') {
                                fprintf(stderr, "glib-sub: -n wants a count, not '%s'\n", optarg);
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
        if (argc - optind != 1) {
                usage(stderr);
                return 2;
        }
        app.topic = argv[optind];

        r = zcbus_connect(sock, &bus); /* NULL: $ZCBUS_SOCKET, else the default */
        if (r < 0) {
                fprintf(stderr, "glib-sub: cannot connect to the broker: %s\n", zcbus_strerror(r));
                return 1;
        }
        r = zcbus_sub_open(bus, app.topic, NULL, &app.sub);
        fd = r < 0 ? r : zcbus_sub_fd(app.sub);
        if (fd < 0) {
                fprintf(stderr, "glib-sub: cannot subscribe to '%s': %s %s\n", app.topic, zcbus_strerror(fd),
                        zcbus_last_error(bus));
                zcbus_sub_close(app.sub);
                zcbus_disconnect(bus);
                return 1;
        }

        app.loop = g_main_loop_new(NULL, FALSE);
        app.source = g_unix_fd_add(fd, G_IO_IN, on_readable, &app);
        sigint = g_unix_signal_add(SIGINT, on_signal, &app);
        sigterm = g_unix_signal_add(SIGTERM, on_signal, &app);
        fprintf(stderr, "glib-sub: subscribed to '%s'\n", app.topic); /* publish now */
        g_main_loop_run(app.loop);

        /* Remove the watch before zcbus_sub_close() closes the descriptor. */
        if (app.source)
                g_source_remove(app.source);
        g_source_remove(sigint);
        g_source_remove(sigterm);
        g_main_loop_unref(app.loop);
        fprintf(stderr, "glib-sub: %" G_GUINT64_FORMAT " messages\n", app.received);
        zcbus_sub_close(app.sub);
        zcbus_disconnect(bus);
        return app.status;
}
