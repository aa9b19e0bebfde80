/* SPDX-License-Identifier: MIT */
/*
 * state.c: the mapped state file of state.h. Its layout is fixed and
 * versioned by its magic; a file of another size or magic is refused
 * rather than guessed at.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <uuid/uuid.h>

#include "state.h"
#include "util.h"

#define STATE_MAGIC "ZCBRST1"

struct state_file {
        char magic[8];
        uint8_t bus_id[16];
        uint64_t reserved[5];
        struct state_slot slots[STATE_SLOTS];
};

struct state {
        int fd;
        struct state_file *f;
        pthread_mutex_t lock; /* making slots */
};

int state_open(const char *dir, const uint8_t *bus_id, struct state **ret, char *err, size_t errlen) {
        char path[4096];
        _cleanup_close_ int fd = -1;
        struct stat st;
        struct state *s;
        void *m;

        if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
                int r = -errno;

                (void)snprintf(err, errlen, "cannot create state directory '%s': %s", dir, strerror(-r));
                return r;
        }
        (void)snprintf(path, sizeof(path), "%s/state", dir);
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0 || fstat(fd, &st) < 0) {
                int r = -errno;

                (void)snprintf(err, errlen, "cannot open '%s': %s", path, strerror(-r));
                return r;
        }
        if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
                int r = -errno;

                (void)snprintf(err, errlen, "state directory '%s' is in use by another zcbus-bridge (%s)", dir,
                               strerror(-r));
                return r;
        }
        if (st.st_size != 0 && st.st_size != (off_t)sizeof(struct state_file)) {
                (void)snprintf(err, errlen, "'%s' is not a zcbus-bridge state file (size %lld)", path,
                               (long long)st.st_size);
                return -EINVAL;
        }
        if (st.st_size == 0 && ftruncate(fd, sizeof(struct state_file)) < 0) {
                int r = -errno;

                (void)snprintf(err, errlen, "cannot size '%s': %s", path, strerror(-r));
                return r;
        }
        m = mmap(NULL, sizeof(struct state_file), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (m == MAP_FAILED) {
                int r = -errno;

                (void)snprintf(err, errlen, "cannot map '%s': %s", path, strerror(-r));
                return r;
        }
        s = calloc(1, sizeof(*s));
        if (!s) {
                (void)munmap(m, sizeof(struct state_file));
                return -ENOMEM;
        }
        s->f = m;
        if (st.st_size == 0) {
                uuid_generate(s->f->bus_id);
                memcpy(s->f->magic, STATE_MAGIC, sizeof(s->f->magic));
        } else if (memcmp(s->f->magic, STATE_MAGIC, sizeof(s->f->magic)) != 0) {
                (void)munmap(m, sizeof(struct state_file));
                free(s);
                (void)snprintf(err, errlen, "'%s' is not a zcbus-bridge state file (bad magic)", path);
                return -EINVAL;
        }
        if (bus_id)
                memcpy(s->f->bus_id, bus_id, 16);
        s->fd = TAKE_FD(fd);
        (void)pthread_mutex_init(&s->lock, NULL);
        *ret = s;
        return 0;
}

void state_close(struct state *s) {
        if (!s)
                return;
        (void)munmap(s->f, sizeof(struct state_file));
        (void)close(s->fd);
        (void)pthread_mutex_destroy(&s->lock);
        free(s);
}

void state_bus_id(const struct state *s, uint8_t id[16]) {
        memcpy(id, s->f->bus_id, 16);
}

struct state_slot *state_slot(struct state *s, const char *key) {
        struct state_slot *found = NULL, *free_slot = NULL;

        if (strlen(key) >= STATE_KEY_MAX)
                return NULL;
        (void)pthread_mutex_lock(&s->lock);
        for (unsigned i = 0; i < STATE_SLOTS && !found; i++) {
                struct state_slot *sl = &s->f->slots[i];

                /* The key is written once, by us, under the lock; a torn
                 * one from a crash mid-write is never NUL-less (the
                 * buffer is zeroed and the last byte stays 0). */
                sl->key[STATE_KEY_MAX - 1] = '\0';
                if (sl->key[0] == '\0') {
                        if (!free_slot)
                                free_slot = sl;
                } else if (strcmp(sl->key, key) == 0) {
                        found = sl;
                }
        }
        if (!found && free_slot) {
                memset(free_slot->topic_id, 0, sizeof(free_slot->topic_id));
                atomic_store_explicit(&free_slot->seq, 0, memory_order_relaxed);
                atomic_store_explicit(&free_slot->aux, 0, memory_order_relaxed);
                strcpy(free_slot->key, key);
                found = free_slot;
        }
        (void)pthread_mutex_unlock(&s->lock);
        return found;
}
