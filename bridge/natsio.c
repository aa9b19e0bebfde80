/* SPDX-License-Identifier: MIT */
/*
 * natsio.c: a libnats connection read and written by a thread of ours
 * (natsio.h), through the event-loop interface libnats offers for
 * libevent and libuv (natsOptions_SetEventLoop): libnats tells us when
 * it wants to read (attach, read ADD/REMOVE) and when its buffer holds
 * something to write (write ADD, once per filling: the next ADD comes only
 * after a write emptied it and said REMOVE), and we call
 * natsConnection_ProcessReadEvent / ProcessWriteEvent.
 *
 * The thread polls the socket and an eventfd that wakes it. Reading is
 * always its job (libnats's parser is not to be entered twice at once).
 * Writing is its job unless the thread that filled the buffer corked:
 * then the write ADD only marks this thread as owing a flush, and its
 * natsio_flush writes (ProcessWriteEvent, under the connection's lock, is
 * safe from any thread). What a flush leaves (the socket full), the
 * thread writes on POLLOUT.
 *
 * Every callback only stores flags and wakes the thread: they run under
 * the connection's lock, which ProcessReadEvent and ProcessWriteEvent
 * take. Every write goes through write_now, which never lets libnats
 * write an empty buffer (it would take send's 0 for a closed
 * connection and reconnect). On a disconnection libnats removes both
 * interests, then closes the socket and later attaches the new one: the
 * thread may poll a stale descriptor for a moment, and what it then calls
 * is harmless (both Process calls check the connection's own socket,
 * which is non-blocking).
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "natsio.h"
#include "util.h"

struct natsio {
        _Atomic(natsConnection *) nc; /* set at attach, before the thread starts or is woken */
        _Atomic int fd;     /* the socket, -1 while detached */
        atomic_bool want_read;
        atomic_bool want_write; /* the thread is to write when the socket takes it */
        atomic_bool added;      /* libnats's write interest: something buffered */
        int efd;                /* wakes the thread */
        pthread_mutex_t wlock;  /* one ProcessWriteEvent at a time (write_now) */

        pthread_mutex_t lock; /* running, the thread's start and end */
        pthread_t thr;
        bool running;
        bool orphan; /* the thread ended itself (detach on it): wait for exited */
        atomic_bool stop, exited;
};

/* The connection this thread corked, and whether one of its publishes
 * asked for a write since. */
static _Thread_local struct natsio *corked;
static _Thread_local bool owed;

/* Write what libnats buffered, if anything: libnats sends an empty
 * buffer too, and takes the 0 that send returns for a closed connection.
 * Under wlock, so that two writers never both find it non-empty and the
 * second then writes nothing (only a writer removes bytes). */
static void write_now(struct natsio *io, natsConnection *nc) {
        (void)pthread_mutex_lock(&io->wlock);
        if (natsConnection_Buffered(nc) > 0)
                natsConnection_ProcessWriteEvent(nc);
        (void)pthread_mutex_unlock(&io->wlock);
}

static void wake(struct natsio *io) {
        uint64_t one = 1;

        (void)!write(io->efd, &one, sizeof(one));
}

static void *io_main(void *arg) {
        struct natsio *io = arg;

        while (!atomic_load(&io->stop)) {
                int fd = atomic_load(&io->fd);
                bool r = atomic_load(&io->want_read), w = atomic_load(&io->want_write);
                struct pollfd p[2] = {
                        {.fd = io->efd, .events = POLLIN},
                        {.fd = fd >= 0 && (r || w) ? fd : -1,
                         .events = (short)((r ? POLLIN : 0) | (w ? POLLOUT : 0))},
                };

                if (poll(p, 2, 1000) < 0)
                        continue; /* EINTR */
                if (p[0].revents & POLLIN) {
                        uint64_t v;

                        (void)!read(io->efd, &v, sizeof(v));
                }
                if (atomic_load(&io->stop))
                        break;
                if (p[1].revents & POLLNVAL) {
                        /* Closed under us (a disconnection): the next look
                         * sees the flags libnats left. */
                        (void)usleep(1000);
                        continue;
                }
                if (r && (p[1].revents & (POLLIN | POLLHUP | POLLERR)))
                        natsConnection_ProcessReadEvent(atomic_load(&io->nc));
                if (w && (p[1].revents & (POLLOUT | POLLHUP | POLLERR))) {
                        /* Cleared first: a request after this is seen on
                         * the next round. */
                        atomic_store(&io->want_write, false);
                        write_now(io, atomic_load(&io->nc));
                        if (atomic_load(&io->added))
                                atomic_store(&io->want_write, true); /* the socket took part of it */
                }
        }
        atomic_store(&io->exited, true); /* the thread's last touch of io */
        return NULL;
}

/* Wait for a thread that ended itself to be gone. Under lock. */
static void reap_orphan(struct natsio *io) {
        if (!io->orphan)
                return;
        while (!atomic_load(&io->exited))
                (void)usleep(1000);
        io->orphan = false;
}

static natsStatus on_attach(void **userdata, void *loop, natsConnection *nc, natsSock sock) {
        struct natsio *io = loop;
        natsStatus s = NATS_OK;

        atomic_store(&io->nc, nc);
        atomic_store(&io->fd, (int)sock);
        atomic_store(&io->want_read, true); /* attaching starts reading */
        (void)pthread_mutex_lock(&io->lock);
        reap_orphan(io);
        if (!io->running) {
                sigset_t all, old;

                atomic_store(&io->stop, false);
                atomic_store(&io->exited, false);
                /* No signals: the bridge's main loop takes them. */
                (void)sigfillset(&all);
                (void)pthread_sigmask(SIG_BLOCK, &all, &old);
                if (pthread_create(&io->thr, NULL, io_main, io) == 0)
                        io->running = true;
                else
                        s = NATS_NO_MEMORY;
                (void)pthread_sigmask(SIG_SETMASK, &old, NULL);
        }
        (void)pthread_mutex_unlock(&io->lock);
        wake(io);
        *userdata = io;
        return s;
}

static natsStatus on_read(void *userdata, bool add) {
        struct natsio *io = userdata;

        /* REMOVE comes only before libnats closes the socket (a
         * disconnection): no more polling of it, until the next attach. */
        if (!add)
                atomic_store(&io->fd, -1);
        atomic_store(&io->want_read, add);
        wake(io);
        return NATS_OK;
}

static natsStatus on_write(void *userdata, bool add) {
        struct natsio *io = userdata;

        atomic_store(&io->added, add);
        if (!add) {
                atomic_store(&io->want_write, false);
                return NATS_OK;
        }
        if (corked == io) {
                owed = true; /* its natsio_flush writes */
                return NATS_OK;
        }
        atomic_store(&io->want_write, true);
        wake(io);
        return NATS_OK;
}

static natsStatus on_detach(void *userdata) {
        struct natsio *io = userdata;

        atomic_store(&io->fd, -1);
        atomic_store(&io->want_read, false);
        atomic_store(&io->want_write, false);
        (void)pthread_mutex_lock(&io->lock);
        if (io->running) {
                atomic_store(&io->stop, true);
                wake(io);
                if (pthread_equal(io->thr, pthread_self())) {
                        /* The connection closed from the thread's own
                         * read: it ends when that returns. */
                        (void)pthread_detach(io->thr);
                        io->orphan = true;
                } else {
                        (void)pthread_join(io->thr, NULL);
                }
                io->running = false;
        }
        (void)pthread_mutex_unlock(&io->lock);
        return NATS_OK;
}

int natsio_new(natsOptions *o, struct natsio **ret) {
        struct natsio *io = calloc(1, sizeof(*io));

        if (!io)
                return -ENOMEM;
        atomic_init(&io->fd, -1);
        io->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (io->efd < 0) {
                int r = -errno;

                free(io);
                return r;
        }
        (void)pthread_mutex_init(&io->lock, NULL);
        (void)pthread_mutex_init(&io->wlock, NULL);
        if (natsOptions_SetEventLoop(o, io, on_attach, on_read, on_write, on_detach) != NATS_OK) {
                natsio_free(io);
                return -EINVAL;
        }
        *ret = io;
        return 0;
}

void natsio_free(struct natsio *io) {
        if (!io)
                return;
        (void)on_detach(io); /* a thread still running (a connect that failed after attach) */
        (void)pthread_mutex_lock(&io->lock);
        reap_orphan(io);
        (void)pthread_mutex_unlock(&io->lock);
        (void)pthread_mutex_destroy(&io->lock);
        (void)pthread_mutex_destroy(&io->wlock);
        (void)close(io->efd);
        free(io);
}

void natsio_cork(struct natsio *io) {
        if (corked && corked != io)
                natsio_flush(corked);
        corked = io;
}

void natsio_flush(struct natsio *io) {
        natsConnection *nc;

        if (!io || corked != io)
                return;
        corked = NULL;
        /* Owed, or buffered by another corked thread that has not flushed
         * yet (its publish found the interest added): written now. */
        nc = atomic_load(&io->nc);
        if ((!owed && !atomic_load(&io->added)) || !nc)
                return;
        owed = false;
        write_now(io, nc);
        if (atomic_load(&io->added)) { /* the socket did not take it all */
                atomic_store(&io->want_write, true);
                wake(io);
        }
}

int natsio_drain(struct natsio *io, size_t below, int timeout_ms) {
        natsConnection *nc = atomic_load(&io->nc);
        uint64_t deadline = now_ms() + (uint64_t)timeout_ms;

        natsio_flush(io);
        while (nc) {
                int buffered, fd;
                uint64_t now;

                write_now(io, nc);
                buffered = natsConnection_Buffered(nc);
                if (buffered < 0 || (size_t)buffered <= below)
                        break;
                now = now_ms();
                if (now >= deadline)
                        return -ETIMEDOUT;
                /* The socket full (or being replaced: a short sleep). */
                fd = atomic_load(&io->fd);
                if (fd >= 0) {
                        struct pollfd p = {.fd = fd, .events = POLLOUT};

                        (void)poll(&p, 1, (int)(deadline - now));
                } else {
                        (void)usleep(1000);
                }
        }
        return 0;
}
