/* SPDX-License-Identifier: MIT */
/*
 * harness.h: helpers for tests that run a real zcbusd and real peer
 * processes (test_integration.c), plus a few header-only helpers any test
 * may use (payload patterns, the ZCBUS_TEST_SCALE knob).
 *
 * The rules it enforces (STYLE.md, Tests):
 *  - the broker runs on a private socket in a private directory, and the
 *    harness waits on its readiness pipe (--ready-fd), never sleeps;
 *  - every process it forks, the broker included, gets
 *    PR_SET_PDEATHSIG(SIGKILL) so nothing outlives the test process;
 *  - fd_count() and memfd_map_count() let a test fail on leaked
 *    descriptors or zcbus mappings.
 *
 * Check runs each test in a forked child (CK_FORK=yes). ck_assert is only
 * used in that child; processes forked by spawn() report through their exit
 * status (and one line on stderr when something is wrong), never through
 * Check, whose failure channel they must not touch.
 */
#ifndef ZCBUS_TEST_HARNESS_H
#define ZCBUS_TEST_HARNESS_H

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

/* Exit status that makes automake's test driver report SKIP. */
#define EXIT_SKIP 77

struct broker {
        pid_t pid;    /* 0 when not running */
        char dir[96]; /* private directory (mkdtemp) */
        char sock[sizeof(((struct sockaddr_un *)0)->sun_path)];
        char log[128]; /* the broker's stdout+stderr */
};

/* Call from main() before running the suite: creates the base directory
 * every broker lives under (removed by harness_cleanup()), and exits 77
 * when $ZCBUSD is unset. */
void harness_init(void);
void harness_cleanup(void);
/* A new empty directory under the base directory (for sockets that are
 * not a broker's). */
void harness_mkdtemp(char *buf, size_t len);

/* Start zcbusd -f -s DIR/sock --ready-fd N [extra args...] (NULL-terminated)
 * in a new private directory and wait until it says READY. Returns 0, or a
 * negative errno when it could not start (its log is copied to stderr). */
int broker_start(struct broker *b, ...) __attribute__((sentinel));
/* Start it again in the same directory, on the same socket path. */
int broker_restart(struct broker *b, ...) __attribute__((sentinel));
/* SIGTERM, wait; ck_asserts a clean exit (status 0) and that the socket
 * file is gone. */
void broker_stop(struct broker *b);
/* SIGKILL, wait. The socket file stays behind, as after a crash. */
void broker_kill(struct broker *b);
/* Kill if still running, remove the socket, log and directory. */
void broker_destroy(struct broker *b);

/* Fork a peer: PR_SET_PDEATHSIG(SIGKILL), then _exit(fn(arg)). */
pid_t spawn(int (*fn)(void *), void *arg);
/* Wait for a child: its exit status, or 128 + signal number. */
int wait_exit(pid_t pid);

/* Descriptors open in this process, and lines of /proc/self/maps that map
 * a zcbus memfd. */
/* A bare SOCK_SEQPACKET connection to path, no HELLO: what a garbage or
 * silent peer starts from. Fails the test if it cannot connect. */
int harness_raw_connect(const char *path);
int fd_count(void);
int memfd_map_count(void);

struct leak_check {
        int fds;
        int maps;
};
void leak_begin(struct leak_check *lc);
/* ck_asserts both counts are back where leak_begin() found them. */
void leak_end(const struct leak_check *lc);

/* One-byte signals over pipes between the test and its peers. */
struct chan {
        int r, w;
};
void chan_open(struct chan *c);
void chan_close(struct chan *c);
/* Close the read end (in the writer) or the write end (in the reader). */
void chan_keep_write(struct chan *c);
void chan_keep_read(struct chan *c);
int chan_send(struct chan *c, char byte);
/* The byte, or -1 on EOF (the writer is gone). Waits as long as it takes. */
int chan_recv(struct chan *c);

/* Report a failure from a forked peer: one line on stderr. */
void peer_fail(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* In a peer function returning int: fail with exit status 1 unless cond. */
#define PEER_CHECK(cond, ...)                                           \
        do {                                                            \
                if (!(cond)) {                                          \
                        peer_fail(__FILE__, __LINE__, __VA_ARGS__);     \
                        return 1;                                       \
                }                                                       \
        } while (0)

/* ------------------------------------------------------------------------
 * Header-only helpers (usable without linking harness.c).
 */

/* Assertions for hot loops and threads. Check's ck_assert_* record a
 * "last good line" on every call (a locked write to the runner's pipe),
 * which serialises threads and costs a system call per message; these
 * only call into Check when they fail. Use them in files that include
 * <check.h>. */
#define FAST_CHECK(cond, ...)                           \
        do {                                            \
                if (__builtin_expect(!(cond), 0))       \
                        ck_abort_msg(__VA_ARGS__);      \
        } while (0)
#define FAST_EQ(a, b)                                                                           \
        do {                                                                                    \
                long long fa_ = (long long)(a), fb_ = (long long)(b);                           \
                if (__builtin_expect(fa_ != fb_, 0))                                            \
                        ck_abort_msg("Assertion '%s == %s' failed: %lld != %lld", #a, #b, fa_, fb_); \
        } while (0)

/* Run a Check suite (CK_NORMAL output) and give the number of tests that
 * failed. For main() in files that include <check.h>. */
#define RUN_SUITE(suite)                                                \
        __extension__({                                                 \
                SRunner *rs_sr_ = srunner_create(suite);                \
                srunner_run_all(rs_sr_, CK_NORMAL);                     \
                int rs_failed_ = srunner_ntests_failed(rs_sr_);         \
                srunner_free(rs_sr_);                                   \
                rs_failed_;                                             \
        })

/* The main() of a suite run against a real broker (suite_fn returns the
 * Suite): exits 77 without $ZCBUSD, without sealable memfds, or, when
 * needs_root, without root (the suite forks peers of other uids). */
#define HARNESS_MAIN(suite_fn, needs_root)                                                   \
        int main(void) {                                                                     \
                int failed_;                                                                 \
                harness_init();                                                              \
                if ((needs_root) && geteuid() != 0) {                                        \
                        fprintf(stderr, "%s needs root (it forks peers of other uids): skipping\n", \
                                program_invocation_short_name);                              \
                        harness_cleanup();                                                   \
                        return EXIT_SKIP;                                                    \
                }                                                                            \
                require_memfd_sealing();                                                     \
                (void)signal(SIGPIPE, SIG_IGN);                                              \
                failed_ = RUN_SUITE(suite_fn());                                             \
                harness_cleanup();                                                           \
                return failed_ ? 1 : 0;                                                      \
        }

/* Call from main(): exit 77 (skip) on a kernel without sealable memfds,
 * which every zcbus segment is. */
static inline void require_memfd_sealing(void) {
        int fd = memfd_create("zcbus-probe", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0) {
                fprintf(stderr, "memfd_create(MFD_ALLOW_SEALING): %s: skipping\n", strerror(errno));
                exit(EXIT_SKIP);
        }
        (void)close(fd);
}

/* ZCBUS_TEST_SCALE (default 1, may be fractional, e.g. 0.25 under
 * sanitizers): multiplies heavy iteration counts. Never below 1. */
static inline uint64_t test_scaled(uint64_t n) {
        const char *e = getenv("ZCBUS_TEST_SCALE");
        double s = 1.0;
        if (e && *e) {
                char *end = NULL;
                double v = strtod(e, &end);
                if (end && *end == '\0' && v > 0.0 && v <= 1000.0)
                        s = v;
        }
        double r = (double)n * s;
        return r < 1.0 ? 1 : (uint64_t)r;
}

static inline uint64_t test_mix64(uint64_t x) {
        x += UINT64_C(0x9e3779b97f4a7c15);
        x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
        x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
        return x ^ (x >> 31);
}

/* Every byte of a message derives from its key, so a message mixed from two
 * (a torn read) or overwritten in place is detected by pattern_check(). */
static inline void pattern_fill(void *buf, size_t len, uint64_t key) {
        uint8_t *p = (uint8_t *)buf;
        uint64_t h = test_mix64(key);
        size_t i = 0;
        for (; i + 8 <= len; i += 8) {
                uint64_t w = h + i * UINT64_C(0x9e3779b97f4a7c15);
                memcpy(p + i, &w, 8);
        }
        if (i < len) {
                uint64_t w = h + i * UINT64_C(0x9e3779b97f4a7c15);
                memcpy(p + i, &w, len - i);
        }
}

/* Returns -1 when buf matches, else the offset of the first bad byte. */
static inline long pattern_check(const void *buf, size_t len, uint64_t key) {
        const uint8_t *p = (const uint8_t *)buf;
        uint64_t h = test_mix64(key);
        size_t i = 0;
        for (; i < len; i += 8) {
                uint64_t w = h + i * UINT64_C(0x9e3779b97f4a7c15);
                size_t n = len - i < 8 ? len - i : 8;
                if (memcmp(p + i, &w, n) != 0) {
                        for (size_t j = 0; j < n; j++)
                                if (p[i + j] != ((const uint8_t *)&w)[j])
                                        return (long)(i + j);
                }
        }
        return -1;
}

/* A message length that also derives from the key, in [min, max]. */
static inline size_t pattern_len(uint64_t key, size_t min, size_t max) {
        return min + (size_t)(test_mix64(key ^ UINT64_C(0x5bd1e995)) % (max - min + 1));
}

#endif
