/* SPDX-License-Identifier: MIT */
/*
 * macro.h: the small helpers every zcbus module uses: scope-bound cleanup
 * (_cleanup_), ownership hand-off (TAKE_PTR, TAKE_FD), and a few
 * arithmetic helpers. One style of error handling everywhere: negative
 * errno passed up unchanged, resources released by cleanup attributes.
 */
#ifndef ZCBUS_MACRO_H
#define ZCBUS_MACRO_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _likely_(x) __builtin_expect(!!(x), 1)
#define _unlikely_(x) __builtin_expect(!!(x), 0)
#define _public_ __attribute__((visibility("default")))
#define _always_inline_ inline __attribute__((always_inline))

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define ALIGN_UP(x, a) (((x) + ((a) - 1)) & ~((__typeof__(x))(a) - 1))

/* Take ownership of a pointer or fd out of a cleanup-guarded variable. */
#define TAKE_PTR(p)                             \
        ({                                      \
                __typeof__(p) _tp_ = (p);       \
                (p) = NULL;                     \
                _tp_;                           \
        })
#define TAKE_FD(fd)                             \
        ({                                      \
                int _tf_ = (fd);                \
                (fd) = -1;                      \
                _tf_;                           \
        })

static inline void closep(int *fd) {
        if (*fd >= 0) {
                int saved = errno;
                (void)close(*fd);
                errno = saved;
        }
}
#define _cleanup_close_ _cleanup_(closep)

static inline void freep(void *p) {
        free(*(void **)p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline int negerrno(void) {
        return errno > 0 ? -errno : -EIO;
}

static inline int is_pow2_u32(uint32_t x) {
        return x && !(x & (x - 1));
}

/* Intrusive doubly linked lists: items with prev and next members. */
#define LIST_PREPEND(head, item)                        \
        do {                                            \
                (item)->prev = NULL;                    \
                (item)->next = (head);                  \
                if (head)                               \
                        (head)->prev = (item);          \
                (head) = (item);                        \
        } while (0)
#define LIST_REMOVE(head, item)                                 \
        do {                                                    \
                if ((item)->prev)                               \
                        (item)->prev->next = (item)->next;      \
                else                                            \
                        (head) = (item)->next;                  \
                if ((item)->next)                               \
                        (item)->next->prev = (item)->prev;      \
                (item)->prev = (item)->next = NULL;             \
        } while (0)

#endif
