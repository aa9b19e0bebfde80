/* SPDX-License-Identifier: MIT */
/*
 * echo.c: the echo windows of echo.h: one mapped file each, guarded in the
 * process by one mutex each. The stores into a window are plain: after a
 * kill -9 the page cache has every one made; an entry half-written by a
 * dying bridge can only cost one echo sent or one identical message taken
 * for an echo. A file is trusted no further than its bounds: a bad header
 * makes it empty.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "bridge.h"
#include "echo.h"
#include "util.h"

#define ECHO_MAGIC "ZCBECH1"

struct echo_ent {
        uint64_t hash;
        uint32_t len;
        uint32_t reserved;
        uint64_t matched; /* seq + 1 of the message it matched; 0: not yet */
};

struct echo_file {
        char magic[8];
        char name[ZCBUS_TOPIC_MAX + 1];
        uint32_t cap;      /* entries */
        uint32_t head, n;  /* a ring of n entries from head */
        uint32_t nmatched; /* the first nmatched are matched */
        struct echo_ent e[];
};

struct echo {
        struct echo *next;
        char name[ZCBUS_TOPIC_MAX + 1];
        pthread_mutex_t lock;
        struct echo_file *w;
        size_t map_len;
        _Atomic unsigned any; /* w->n != 0, read without the lock */
};

static struct echo_ent *ent(struct echo_file *w, uint32_t i) {
        return &w->e[(w->head + i) % w->cap];
}

/* Map the window file of name with at least cap entries; a missing,
 * smaller or foreign one is made afresh. */
static int map_window(struct bridge *b, const char *name, uint32_t cap, bool create, struct echo_file **ret,
                      size_t *ret_len) {
        char path[4096];
        _cleanup_close_ int fd = -1;
        struct stat st;
        struct echo_file *w;
        size_t len;

        (void)snprintf(path, sizeof(path), "%s/echo-%016" PRIx64, b->conf->state_dir, hash64(name, strlen(name)));
        fd = open(path, O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0600);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        len = st.st_size >= (off_t)sizeof(*w) ? (size_t)st.st_size : 0;
        if (len) {
                w = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
                if (w == MAP_FAILED)
                        return -errno;
                if (memcmp(w->magic, ECHO_MAGIC, sizeof(w->magic)) == 0 &&
                    strncmp(w->name, name, sizeof(w->name)) == 0 && w->cap >= cap &&
                    len >= sizeof(*w) + (size_t)w->cap * sizeof(w->e[0])) {
                        if (w->n > w->cap || w->head >= w->cap || w->nmatched > w->n)
                                w->head = w->n = w->nmatched = 0;
                        *ret = w;
                        *ret_len = len;
                        return 0;
                }
                (void)munmap(w, len);
                if (!create)
                        return -ENOENT;
        }
        if (!create)
                return -ENOENT;
        len = sizeof(*w) + (size_t)cap * sizeof(w->e[0]);
        if (ftruncate(fd, 0) < 0 || ftruncate(fd, (off_t)len) < 0)
                return -errno;
        w = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (w == MAP_FAILED)
                return -errno;
        (void)snprintf(w->name, sizeof(w->name), "%s", name);
        w->cap = cap;
        memcpy(w->magic, ECHO_MAGIC, sizeof(w->magic));
        *ret = w;
        *ret_len = len;
        return 0;
}

struct echo *echo_find(struct bridge *b, const char *name, uint32_t slot_count, bool create) {
        uint64_t want = (uint64_t)slot_count + b->conf->buffer + 64;
        uint32_t cap = want > ECHO_MAX_ENTRIES ? ECHO_MAX_ENTRIES : (uint32_t)want;
        struct echo *e;
        int r;

        (void)pthread_mutex_lock(&b->lock);
        for (e = b->echos; e; e = e->next)
                if (strcmp(e->name, name) == 0)
                        break;
        if (e || (e = calloc(1, sizeof(*e))) == NULL) {
                (void)pthread_mutex_unlock(&b->lock);
                return e;
        }
        r = map_window(b, name, cap, create, &e->w, &e->map_len);
        if (r < 0) {
                if (create)
                        log_msg("cannot keep the echo window of '%s' in '%s': %s; its echoes may be sent back",
                                name, b->conf->state_dir, strerror(-r));
                free(e);
                (void)pthread_mutex_unlock(&b->lock);
                return NULL;
        }
        if (want > cap)
                log_msg("topic '%s': a ring of %u slots, but echo windows hold %u entries: an echo may be sent "
                        "back when the outbound route is more than that behind",
                        name, slot_count, ECHO_MAX_ENTRIES);
        (void)snprintf(e->name, sizeof(e->name), "%s", name);
        (void)pthread_mutex_init(&e->lock, NULL);
        atomic_store(&e->any, e->w->n != 0);
        e->next = b->echos;
        b->echos = e;
        (void)pthread_mutex_unlock(&b->lock);
        return e;
}

void echo_free_all(struct bridge *b) {
        struct echo *e, *next;

        for (e = b->echos; e; e = next) {
                next = e->next;
                (void)munmap(e->w, e->map_len);
                (void)pthread_mutex_destroy(&e->lock);
                free(e);
        }
        b->echos = NULL;
}

void echo_push(struct echo *e, const void *data, size_t len) {
        uint64_t h = hash64(data, len);
        struct echo_file *w = e->w;

        (void)pthread_mutex_lock(&e->lock);
        if (w->n == w->cap) {
                /* Only past the ring's capacity (echo.h): the oldest goes. */
                w->head = (w->head + 1) % w->cap;
                w->n--;
                if (w->nmatched)
                        w->nmatched--;
        }
        *ent(w, w->n) = (struct echo_ent){.hash = h, .len = (uint32_t)len};
        w->n++;
        /* Pairs with the acquire in echo_match: the entry is stored before
         * the message is committed, and the commit's release and the
         * reader's receive order it before the message. */
        atomic_store_explicit(&e->any, 1, memory_order_release);
        (void)pthread_mutex_unlock(&e->lock);
}

void echo_pop_last(struct echo *e) {
        struct echo_file *w = e->w;

        (void)pthread_mutex_lock(&e->lock);
        if (w->n > w->nmatched)
                w->n--;
        if (!w->n)
                atomic_store_explicit(&e->any, 0, memory_order_relaxed);
        (void)pthread_mutex_unlock(&e->lock);
}

bool echo_match(struct echo *e, uint64_t seq, const void *data, size_t len, bool keep) {
        struct echo_file *w = e->w;
        uint64_t h;
        bool match = false;

        if (!atomic_load_explicit(&e->any, memory_order_acquire))
                return false;
        h = hash64(data, len);
        (void)pthread_mutex_lock(&e->lock);
        /* Seen before a restart: an entry already marked with this seq. */
        for (uint32_t i = 0; keep && i < w->nmatched && !match; i++) {
                const struct echo_ent *x = ent(w, i);

                match = x->matched == seq + 1 && x->hash == h && x->len == len;
        }
        for (uint32_t i = w->nmatched; i < w->n && !match; i++) {
                struct echo_ent *x = ent(w, i);

                if (x->hash != h || x->len != len)
                        continue;
                match = true;
                if (keep) {
                        for (uint32_t j = w->nmatched; j <= i; j++)
                                ent(w, j)->matched = seq + 1;
                        w->nmatched = i + 1;
                } else {
                        w->head = (w->head + i + 1) % w->cap;
                        w->n -= i + 1;
                        w->nmatched = 0;
                }
        }
        if (!w->n)
                atomic_store_explicit(&e->any, 0, memory_order_relaxed);
        (void)pthread_mutex_unlock(&e->lock);
        return match;
}

void echo_release(struct echo *e, uint64_t pos) {
        struct echo_file *w = e->w;

        (void)pthread_mutex_lock(&e->lock);
        while (w->nmatched && ent(w, 0)->matched <= pos) {
                w->head = (w->head + 1) % w->cap;
                w->n--;
                w->nmatched--;
        }
        if (!w->n)
                atomic_store_explicit(&e->any, 0, memory_order_relaxed);
        (void)pthread_mutex_unlock(&e->lock);
}
