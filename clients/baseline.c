/*
 * baseline.c: the kernel and raw-shared-memory references of `zcbus lat`
 * and `zcbus perf` (see baseline.h for what each one is). It owns their
 * fds, mappings and buffers, and the one word-waiting engine of the shm
 * reference.
 *
 * The shm reference is deliberately minimal, so that it is a floor and not
 * a second bus: a message is "the word changed"; the payload lives at a
 * fixed place next to it. In lat, like zcbus, it writes only the 8-byte
 * counter of a SIZE-byte payload; in perf it is a plain single-producer
 * ring with one head word and one tail word per subscriber, and the
 * producer memsets every slot it fills exactly as the zcbus producer does.
 * uds and pipe copy the whole payload both ways and always block in the
 * kernel (--wait does not apply to them).
 *
 * Waiting (shm): spin loads the word with cpu_relax(); futex sleeps at
 * once; adaptive spins for the budget, then announces itself in a waiter
 * count, re-checks and sleeps; its waker stores the word and looks at the
 * count (both seq_cst: "store mine, then look at yours", so one of the two
 * always sees the other) and calls FUTEX_WAKE only if someone sleeps. In
 * lat, futex mode wakes unconditionally, as the plain futex reference; in
 * perf it uses the waiter count too, or the reference would measure one
 * FUTEX_WAKE per message instead of the floor.
 */

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "baseline.h"
#include "futex.h"
#include "macro.h"
#include "zcbus.h"

#define IDLE_SLICE_NS (UINT64_C(100) * 1000000u)      /* perf: re-check "done" this often */
#define SOCK_BATCH_BYTES (UINT64_C(16) << 20)         /* perf: most bytes per batched call */

/* ------------------------------------------------- one word, each way */

struct shm_line {
        au32 word;    /* the message counter (or ring index) */
        au32 waiters; /* sleepers announced on word */
        uint8_t pad[56];
};
static_assert(sizeof(struct shm_line) == 64, "one cache line");

struct waiter {
        uint64_t spin_ns; /* before sleeping; 0: sleep at once; UINT64_MAX: never sleep */
        bool announce;    /* sleepers count themselves; wakers wake only if counted */
};

static struct waiter waiter_for(uint32_t mode, uint32_t spin_us, bool wake_always) {
        switch (mode) {
        case ZCBUS_WAIT_SPIN:
                return (struct waiter){.spin_ns = UINT64_MAX};
        case ZCBUS_WAIT_FUTEX:
                return (struct waiter){.spin_ns = 0, .announce = !wake_always};
        default:
                return (struct waiter){.spin_ns = (uint64_t)spin_us * 1000u, .announce = true};
        }
}

/* Publish v in l->word and wake per the mode. Payload written before is
 * visible to whoever sees v (release, or seq_cst, store). */
static inline void line_post(struct shm_line *l, uint32_t v, const struct waiter *w, int nwake) {
        if (w->spin_ns == UINT64_MAX) {
                store_rel(&l->word, v); /* pairs with line_wait's load_acq */
                return;
        }
        if (!w->announce) {
                store_rel(&l->word, v); /* pairs with line_wait's load_acq */
                (void)futex_wake(&l->word, nwake);
                return;
        }
        store_sc(&l->word, v);      /* store mine ... */
        if (load_sc(&l->waiters))   /* ... then look at yours: pairs with line_wait */
                (void)futex_wake(&l->word, nwake);
}

/* Wait until l->word != old (then the payload behind it is visible), at
 * most timeout_ns (0: no limit). The clock is read only when there is a
 * spin budget or a limit, and then every 128 spins, as zcbus does. */
static int line_wait(struct shm_line *l, uint32_t old, const struct waiter *w, uint64_t timeout_ns) {
        uint64_t deadline = 0;

        if (load_acq(&l->word) != old) /* pairs with line_post's store */
                return 0;
        if (w->spin_ns) {
                bool budget = w->spin_ns != UINT64_MAX;
                uint64_t t = budget || timeout_ns ? now_ns() : 0;
                uint64_t spin_end = budget ? t + w->spin_ns : UINT64_MAX;
                deadline = timeout_ns ? t + timeout_ns : UINT64_MAX;
                for (unsigned i = 1;; i++) {
                        if (load_acq(&l->word) != old)
                                return 0;
                        cpu_relax();
                        if ((i & 127) == 0 && (budget || timeout_ns)) {
                                t = now_ns();
                                if (t >= deadline)
                                        return -ETIMEDOUT;
                                if (t >= spin_end)
                                        break;
                        }
                }
                if (!timeout_ns)
                        deadline = 0;
        } else if (timeout_ns)
                deadline = now_ns() + timeout_ns;
        for (;;) {
                int r = 0;
                if (w->announce)
                        (void)faa_sc(&l->waiters, 1); /* store mine ... */
                if (load_sc(&l->word) == old)         /* ... then look at yours */
                        r = futex_wait(&l->word, old, deadline);
                if (w->announce)
                        (void)fas_sc(&l->waiters, 1);
                if (load_acq(&l->word) != old)
                        return 0;
                if (r < 0 && r != -EINTR)
                        return r;
        }
}

/* A zeroed shared mapping of *len bytes of a sealed-size memfd: what both
 * processes of a run map, made before the fork. On failure *len is 0, so
 * that shm_unmap() has nothing to do. */
static int shm_map(const char *name, size_t *len, uint8_t **ret) {
        _cleanup_close_ int fd = memfd_create(name, MFD_CLOEXEC);
        void *p = MAP_FAILED;

        if (fd >= 0 && ftruncate(fd, (off_t)*len) == 0)
                p = mmap(NULL, *len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) {
                int r = negerrno();
                *len = 0;
                return r;
        }
        *ret = p;
        return 0;
}

static void shm_unmap(uint8_t **p, size_t *len) {
        if (*p)
                (void)munmap(*p, *len);
        *p = NULL;
        *len = 0;
}

/* ------------------------------------------------------- fd helpers */

static int write_full(int fd, const uint8_t *p, size_t len) {
        while (len) {
                ssize_t r = write(fd, p, len);
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        return negerrno();
                }
                p += r;
                len -= (size_t)r;
        }
        return 0;
}

/* Read exactly len bytes: 0, -EPIPE at end of file before any byte,
 * -EBADMSG at end of file in the middle. */
static int read_full(int fd, uint8_t *p, size_t len) {
        size_t got = 0;

        while (got < len) {
                ssize_t r = read(fd, p + got, len - got);
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        return negerrno();
                }
                if (r == 0)
                        return got ? -EBADMSG : -EPIPE;
                got += (size_t)r;
        }
        return 0;
}

/* writev all of iov (which it may modify). */
static int writev_full(int fd, struct iovec *iov, int n) {
        while (n > 0) {
                ssize_t r = writev(fd, iov, MIN(n, IOV_MAX));
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        return negerrno();
                }
                while (n > 0 && (size_t)r >= iov->iov_len) {
                        r -= (ssize_t)iov->iov_len;
                        iov++;
                        n--;
                }
                if (n > 0) {
                        iov->iov_base = (uint8_t *)iov->iov_base + r;
                        iov->iov_len -= (size_t)r;
                }
        }
        return 0;
}

static int send_one(int fd, const uint8_t *p, size_t len) {
        for (;;) {
                ssize_t r = send(fd, p, len, MSG_NOSIGNAL);
                if (r >= 0)
                        return (size_t)r == len ? 0 : -EMSGSIZE;
                if (errno != EINTR)
                        return negerrno();
        }
}

/* One SEQPACKET message of exactly len bytes into p (cap bytes of room). */
static int recv_one(int fd, uint8_t *p, size_t cap, size_t len) {
        for (;;) {
                ssize_t r = recv(fd, p, cap, 0);
                if (r > 0)
                        return (size_t)r == len ? 0 : -EBADMSG;
                if (r == 0)
                        return -EPIPE;
                if (errno != EINTR)
                        return negerrno();
        }
}

/* Let a socket take messages of up to max bytes (root may exceed
 * wmem_max with SO_SNDBUFFORCE); returns the buffer the kernel set. */
static int sock_room(int fd, size_t max) {
        int want = (int)MIN((uint64_t)max * 2 + 65536, (uint64_t)INT_MAX / 2), got = 0;
        socklen_t len = sizeof(got);

        if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &want, sizeof(want)) < 0)
                (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &want, sizeof(want));
        if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &got, &len) < 0)
                return negerrno();
        return got;
}

static void pipe_room(int fd, size_t max) {
        int want = (int)MIN((uint64_t)MAX(max, (size_t)65536), (uint64_t)1 << 30);

        /* Best effort: a smaller pipe only means more system calls. */
        if (fcntl(fd, F_SETPIPE_SZ, want) < 0)
                (void)fcntl(fd, F_SETPIPE_SZ, 1 << 20);
}

/* ================================================================ lat */

/* --- shm: one word each way, the counter at the start of a SIZE-byte
 * payload area next to it. */

struct lat_shm {
        struct waiter w;
        uint8_t *map;
        size_t len, max;
        struct shm_line *ping, *pong; /* ping: written by the ping side */
        uint8_t *ping_buf, *pong_buf;
        uint32_t seq;
};

static void lat_shm_attach(void *st, enum bench_side side) {
}

static int lat_shm_begin(void *st, enum bench_side side, int step, size_t size) {
        struct lat_shm *x = st;

        return size <= x->max ? 0 : -EMSGSIZE;
}

static int lat_shm_ping(void *st, uint64_t ctr) {
        struct lat_shm *x = st;
        uint32_t s = ++x->seq;
        uint64_t echo;
        int r;

        memcpy(x->ping_buf, &ctr, sizeof(ctr));
        line_post(x->ping, s, &x->w, 1);
        r = line_wait(x->pong, s - 1, &x->w, 0);
        if (r < 0)
                return r;
        memcpy(&echo, x->pong_buf, sizeof(echo));
        return echo == ctr ? 0 : -EBADMSG;
}

static int lat_shm_pong(void *st, uint64_t *ret_ctr) {
        struct lat_shm *x = st;
        uint64_t ctr;
        int r = line_wait(x->ping, x->seq, &x->w, 0);

        if (r < 0)
                return r;
        x->seq++;
        memcpy(&ctr, x->ping_buf, sizeof(ctr));
        memcpy(x->pong_buf, &ctr, sizeof(ctr));
        line_post(x->pong, x->seq, &x->w, 1);
        *ret_ctr = ctr;
        return 0;
}

static void lat_shm_end(void *st, enum bench_side side) {
}

static void lat_shm_free(void *st) {
        struct lat_shm *x = st;

        if (!x)
                return;
        shm_unmap(&x->map, &x->len);
        free(x);
}

static void lat_shm_freep(struct lat_shm **p) {
        lat_shm_free(*p);
}

static const struct lat_ops lat_shm_ops = {
        .attach = lat_shm_attach,
        .begin = lat_shm_begin,
        .ping = lat_shm_ping,
        .pong = lat_shm_pong,
        .end = lat_shm_end,
        .free = lat_shm_free,
};

static int lat_shm_new(const struct lat_cfg *cfg, struct lat_xp *ret) {
        _cleanup_(lat_shm_freep) struct lat_shm *x = calloc(1, sizeof(*x));
        size_t area = ALIGN_UP(cfg->com.max_size, (size_t)64);
        int r;

        if (!x)
                return -ENOMEM;
        x->w = waiter_for(cfg->com.wait, cfg->com.spin_us, true);
        x->max = cfg->com.max_size;
        x->len = 2 * sizeof(struct shm_line) + 2 * area;
        r = shm_map("zcbus-lat-shm", &x->len, &x->map);
        if (r < 0)
                return r;
        x->ping = (struct shm_line *)x->map;
        x->pong = x->ping + 1;
        x->ping_buf = x->map + 2 * sizeof(struct shm_line);
        x->pong_buf = x->ping_buf + area;
        *ret = (struct lat_xp){.ops = &lat_shm_ops, .st = TAKE_PTR(x), .kind = BENCH_XP_SHM};
        return 0;
}

/* --- uds and pipe: the whole payload copied each way. */

struct lat_sock {
        unsigned kind;
        int ping_rd, ping_wr, pong_rd, pong_wr; /* uds: one socket per side */
        int rd, wr;                             /* this side's, after attach */
        size_t max, size;
        int sndbuf; /* uds */
        uint8_t *buf;
};

static void lat_sock_attach(void *st, enum bench_side side) {
        struct lat_sock *x = st;

        if (side == BENCH_PING) {
                x->rd = x->ping_rd;
                x->wr = x->ping_wr;
                bench_fd_close(&x->pong_rd);
                if (x->pong_wr != x->rd)
                        bench_fd_close(&x->pong_wr);
                else
                        x->pong_wr = -1;
        } else {
                x->rd = x->pong_rd;
                x->wr = x->pong_wr;
                bench_fd_close(&x->ping_rd);
                if (x->ping_wr != x->rd)
                        bench_fd_close(&x->ping_wr);
                else
                        x->ping_wr = -1;
        }
}

static int lat_sock_begin(void *st, enum bench_side side, int step, size_t size) {
        struct lat_sock *x = st;

        if (size > x->max || (x->kind == BENCH_XP_UDS && size + 64 > (size_t)x->sndbuf))
                return -EMSGSIZE;
        x->size = size;
        return 0;
}

static int lat_sock_send(struct lat_sock *x) {
        return x->kind == BENCH_XP_UDS ? send_one(x->wr, x->buf, x->size) : write_full(x->wr, x->buf, x->size);
}

static int lat_sock_recv(struct lat_sock *x) {
        return x->kind == BENCH_XP_UDS ? recv_one(x->rd, x->buf, x->max, x->size) : read_full(x->rd, x->buf, x->size);
}

static int lat_sock_ping(void *st, uint64_t ctr) {
        struct lat_sock *x = st;
        uint64_t echo;
        int r;

        memcpy(x->buf, &ctr, sizeof(ctr));
        if ((r = lat_sock_send(x)) < 0 || (r = lat_sock_recv(x)) < 0)
                return r;
        memcpy(&echo, x->buf, sizeof(echo));
        return echo == ctr ? 0 : -EBADMSG;
}

static int lat_sock_pong(void *st, uint64_t *ret_ctr) {
        struct lat_sock *x = st;
        int r;

        if ((r = lat_sock_recv(x)) < 0)
                return r;
        memcpy(ret_ctr, x->buf, sizeof(*ret_ctr));
        return lat_sock_send(x);
}

static void lat_sock_end(void *st, enum bench_side side) {
}

static void lat_sock_free(void *st) {
        struct lat_sock *x = st;

        if (!x)
                return;
        if (x->ping_wr == x->ping_rd)
                x->ping_wr = -1;
        if (x->pong_wr == x->pong_rd)
                x->pong_wr = -1;
        bench_fd_close(&x->ping_rd);
        bench_fd_close(&x->ping_wr);
        bench_fd_close(&x->pong_rd);
        bench_fd_close(&x->pong_wr);
        free(x->buf);
        free(x);
}

static void lat_sock_freep(struct lat_sock **p) {
        lat_sock_free(*p);
}

/* uds and pipe alike: x->kind tells them apart. */
static const struct lat_ops lat_sock_ops = {
        .attach = lat_sock_attach,
        .begin = lat_sock_begin,
        .ping = lat_sock_ping,
        .pong = lat_sock_pong,
        .end = lat_sock_end,
        .free = lat_sock_free,
};

static int lat_sock_new(unsigned kind, const struct lat_cfg *cfg, struct lat_xp *ret) {
        _cleanup_(lat_sock_freep) struct lat_sock *x = calloc(1, sizeof(*x));
        int fds[2];

        if (!x)
                return -ENOMEM;
        x->kind = kind;
        x->ping_rd = x->ping_wr = x->pong_rd = x->pong_wr = x->rd = x->wr = -1;
        x->max = cfg->com.max_size;
        x->buf = calloc(1, x->max);
        if (!x->buf)
                return -ENOMEM;
        if (kind == BENCH_XP_UDS) {
                int b0, b1;
                if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) < 0)
                        return negerrno();
                x->ping_rd = x->ping_wr = fds[0];
                x->pong_rd = x->pong_wr = fds[1];
                b0 = sock_room(fds[0], x->max);
                b1 = sock_room(fds[1], x->max);
                if (b0 < 0 || b1 < 0)
                        return b0 < 0 ? b0 : b1;
                x->sndbuf = MIN(b0, b1);
        } else {
                if (pipe2(fds, O_CLOEXEC) < 0) /* ping -> pong */
                        return negerrno();
                x->pong_rd = fds[0];
                x->ping_wr = fds[1];
                if (pipe2(fds, O_CLOEXEC) < 0) /* pong -> ping */
                        return negerrno();
                x->ping_rd = fds[0];
                x->pong_wr = fds[1];
                pipe_room(x->ping_wr, x->max);
                pipe_room(x->pong_wr, x->max);
        }
        *ret = (struct lat_xp){
                .ops = &lat_sock_ops,
                .st = TAKE_PTR(x),
                .kind = kind,
        };
        return 0;
}

int baseline_lat_new(unsigned kind, const struct lat_cfg *cfg, struct lat_xp *ret) {
        switch (kind) {
        case BENCH_XP_SHM:
                return lat_shm_new(cfg, ret);
        case BENCH_XP_UDS:
        case BENCH_XP_PIPE:
                return lat_sock_new(kind, cfg, ret);
        default:
                return -EINVAL;
        }
}

/* =============================================================== perf */

/* --- shm: a single-producer ring; head word, one tail word per
 * subscriber, slots of the same geometry as the zcbus topic. */

struct perf_shm {
        const struct perf_cfg *cfg;
        struct waiter w;
        uint8_t *map;
        size_t len, size;
        struct shm_line *head, *done, *tails;
        uint8_t *slots;
        uint32_t n, mask;
        uint64_t stride;
};

static int perf_shm_prepare(void *st, size_t size) {
        struct perf_shm *x = st;
        const struct perf_cfg *cfg = x->cfg;
        size_t lines = (2 + (size_t)cfg->subscribers) * sizeof(struct shm_line);
        int r;

        shm_unmap(&x->map, &x->len);
        x->size = size;
        x->n = bench_perf_slots(size, cfg->com.slots);
        x->mask = x->n - 1;
        x->stride = bench_slot_stride(size);
        x->len = ALIGN_UP(lines, (size_t)4096) + (size_t)x->n * x->stride;
        r = shm_map("zcbus-perf-shm", &x->len, &x->map);
        if (r < 0)
                return r;
        x->head = (struct shm_line *)x->map;
        x->done = x->head + 1;
        x->tails = x->head + 2;
        /* Like a zcbus slot: a descriptor line, then the payload. */
        x->slots = x->map + ALIGN_UP(lines, (size_t)4096) + 64;
        return 0;
}

static int perf_shm_attach(void *st, enum perf_role role, unsigned idx) {
        return 0;
}

static void perf_shm_detach(void *st) {
        struct perf_shm *x = st;

        shm_unmap(&x->map, &x->len);
}

static inline uint8_t *perf_shm_slot(const struct perf_shm *x, uint32_t i) {
        return x->slots + (uint64_t)(i & x->mask) * x->stride;
}

/* Wait until the slowest subscriber leaves room for batch more slots
 * after head; min_tail caches its position. false: time to stop. */
static bool perf_shm_room(struct perf_shm *x, struct perf_ctl *ctl, uint32_t head, uint32_t batch,
                          uint32_t *min_tail, uint64_t *waits) {
        unsigned nsub = x->cfg->subscribers;

        while ((uint32_t)(head + batch - *min_tail) > x->n) {
                unsigned slow = 0;
                uint32_t m = head;
                for (unsigned c = 0; c < nsub; c++) {
                        uint32_t t = load_acq(&x->tails[c].word); /* pairs with the reader's line_post */
                        if ((uint32_t)(head - t) > (uint32_t)(head - m)) {
                                m = t;
                                slow = c;
                        }
                }
                *min_tail = m;
                if ((uint32_t)(head + batch - m) <= x->n)
                        break;
                (*waits)++;
                (void)line_wait(&x->tails[slow], m, &x->w, IDLE_SLICE_NS);
                if (load_rlx(&ctl->stop))
                        return false;
        }
        return true;
}

static int perf_shm_produce(struct perf_shm *x, struct perf_ctl *ctl, struct perf_result *res) {
        uint32_t batch = MIN(x->cfg->batch, x->n), head = 0, min_tail = 0;
        size_t size = x->size;
        uint64_t waits = 0;

        while (!load_rlx(&ctl->stop) && perf_shm_room(x, ctl, head, batch, &min_tail, &waits)) {
                for (uint32_t i = 0; i < batch; i++) {
                        uint8_t *p = perf_shm_slot(x, head + i);
                        uint64_t tag = perf_tag(0, res->count + i);
                        memset(p + 8, 0xa5, size - 8); /* every byte written once */
                        memcpy(p, &tag, 8);
                }
                head += batch;
                res->count += batch;
                line_post(x->head, head, &x->w, INT_MAX);
        }
        res->t_end = now_ns();
        res->waits = waits;
        store_sc(&x->done->word, 1);
        if (x->w.spin_ns != UINT64_MAX)
                (void)futex_wake(&x->head->word, INT_MAX);
        return 0;
}

static int perf_shm_consume(struct perf_shm *x, unsigned idx, struct perf_result *res) {
        uint32_t batch = x->cfg->batch, tail = 0;
        size_t size = x->size;
        uint64_t sink = 0, count = 0, idle_count = UINT64_MAX;

        for (;;) {
                uint32_t h = load_acq(&x->head->word), n; /* pairs with the producer's post */

                if (h == tail) {
                        /* Idle: the only place a subscriber reads the clock. */
                        if (idle_count != count) {
                                res->t_end = now_ns();
                                idle_count = count;
                        }
                        if (load_acq(&x->done->word)) {
                                if (load_acq(&x->head->word) == tail)
                                        break;
                                continue;
                        }
                        (void)line_wait(x->head, tail, &x->w, IDLE_SLICE_NS);
                        continue;
                }
                n = MIN(h - tail, batch);
                for (uint32_t i = 0; i < n; i++) {
                        const uint8_t *p = perf_shm_slot(x, tail + i);
                        uint64_t v, last;
                        memcpy(&v, p, 8);
                        memcpy(&last, p + size - 8, 8);
                        if (_unlikely_(v != perf_tag(0, count)))
                                return -EBADMSG;
                        sink ^= last;
                        count++;
                }
                tail += n;
                line_post(&x->tails[idx], tail, &x->w, 1);
        }
        res->count = count;
        res->sink = sink;
        return 0;
}

static int perf_shm_run(void *st, enum perf_role role, unsigned idx, struct perf_ctl *ctl, struct perf_result *r) {
        struct perf_shm *x = st;

        if (role == PERF_PROD)
                return perf_shm_produce(x, ctl, r);
        return perf_shm_consume(x, idx, r);
}

static void perf_shm_free(void *st) {
        struct perf_shm *x = st;

        if (!x)
                return;
        shm_unmap(&x->map, &x->len);
        free(x);
}

static const struct perf_ops perf_shm_ops = {
        .prepare = perf_shm_prepare,
        .attach = perf_shm_attach,
        .run = perf_shm_run,
        .detach = perf_shm_detach,
        .free = perf_shm_free,
};

/* --- uds and pipe: one connection per subscriber; the producer copies
 * every message into each (that is what fan-out costs over the kernel).
 * Batches: sendmmsg/recvmmsg of whole messages, writev/read of whole
 * batches on a pipe. The stream ends with one batch of end marks. */

struct perf_sock {
        unsigned kind;
        const struct perf_cfg *cfg;
        size_t size;
        unsigned batch;
        int (*fds)[2]; /* per subscriber: [0] producer end, [1] subscriber end */
        uint8_t *pbuf; /* producer: size + 8 * batch bytes, messages overlap */
        uint8_t *sbuf; /* subscriber: batch * size */
        struct iovec *iov;
        struct mmsghdr *mm;
};

static void perf_sock_close_all(struct perf_sock *x) {
        if (!x->fds)
                return;
        for (unsigned c = 0; c < x->cfg->subscribers; c++) {
                bench_fd_close(&x->fds[c][0]);
                bench_fd_close(&x->fds[c][1]);
        }
}

/* The buffers of one size (prepare makes them anew for each). */
static void perf_sock_free_bufs(struct perf_sock *x) {
        free(x->pbuf);
        free(x->sbuf);
        free(x->iov);
        free(x->mm);
        x->pbuf = x->sbuf = NULL;
        x->iov = NULL;
        x->mm = NULL;
}

static int perf_sock_prepare(void *st, size_t size) {
        struct perf_sock *x = st;
        unsigned nsub = x->cfg->subscribers;

        perf_sock_close_all(x);
        x->size = size;
        x->batch = (unsigned)MIN((uint64_t)x->cfg->batch, MAX(UINT64_C(1), SOCK_BATCH_BYTES / size));
        perf_sock_free_bufs(x);
        x->pbuf = malloc(size + 8u * x->batch);
        x->sbuf = malloc(size * x->batch);
        x->iov = calloc(x->batch, sizeof(*x->iov));
        x->mm = calloc(x->batch, sizeof(*x->mm));
        if (!x->pbuf || !x->sbuf || !x->iov || !x->mm)
                return -ENOMEM;
        memset(x->pbuf, 0xa5, size + 8u * x->batch);
        for (unsigned c = 0; c < nsub; c++) {
                int fds[2];
                if (x->kind == BENCH_XP_UDS) {
                        int b;
                        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) < 0)
                                return negerrno();
                        x->fds[c][0] = fds[0];
                        x->fds[c][1] = fds[1];
                        b = sock_room(fds[0], size * x->batch);
                        if (b < 0)
                                return b;
                        if (size + 64 > (size_t)b)
                                return -EMSGSIZE;
                } else {
                        if (pipe2(fds, O_CLOEXEC) < 0)
                                return negerrno();
                        x->fds[c][0] = fds[1];
                        x->fds[c][1] = fds[0];
                        pipe_room(fds[1], size * x->batch);
                }
        }
        return 0;
}

static int perf_sock_attach(void *st, enum perf_role role, unsigned idx) {
        struct perf_sock *x = st;

        for (unsigned c = 0; c < x->cfg->subscribers; c++) {
                if (role != PERF_PROD)
                        bench_fd_close(&x->fds[c][0]);
                if (role != PERF_SUB || c != idx)
                        bench_fd_close(&x->fds[c][1]);
        }
        return 0;
}

static void perf_sock_detach(void *st) {
        perf_sock_close_all(st);
}

/* Send the batch described by pbuf (message i at pbuf + 8 i) to fd. */
static int perf_sock_send(struct perf_sock *x, int fd) {
        unsigned n = x->batch;

        if (n == 1)
                return x->kind == BENCH_XP_UDS ? send_one(fd, x->pbuf, x->size) : write_full(fd, x->pbuf, x->size);
        for (unsigned i = 0; i < n; i++)
                x->iov[i] = (struct iovec){.iov_base = x->pbuf + 8u * i, .iov_len = x->size};
        if (x->kind == BENCH_XP_PIPE)
                return writev_full(fd, x->iov, (int)n);
        for (unsigned i = 0; i < n; i++)
                x->mm[i] = (struct mmsghdr){.msg_hdr = {.msg_iov = &x->iov[i], .msg_iovlen = 1}};
        for (unsigned done = 0; done < n;) {
                int r = sendmmsg(fd, x->mm + done, n - done, MSG_NOSIGNAL);
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        return negerrno();
                }
                done += (unsigned)r;
        }
        return 0;
}

static int perf_sock_produce(struct perf_sock *x, struct perf_ctl *ctl, struct perf_result *res) {
        unsigned nsub = x->cfg->subscribers;
        int r;

        while (!load_rlx(&ctl->stop)) {
                for (unsigned i = 0; i < x->batch; i++) {
                        uint64_t tag = perf_tag(0, res->count + i);
                        memcpy(x->pbuf + 8u * i, &tag, 8);
                }
                for (unsigned c = 0; c < nsub; c++)
                        if ((r = perf_sock_send(x, x->fds[c][0])) < 0)
                                return r;
                res->count += x->batch;
        }
        res->t_end = now_ns();
        for (unsigned i = 0; i < x->batch; i++) {
                uint64_t mark = BENCH_MARK_DONE;
                memcpy(x->pbuf + 8u * i, &mark, 8);
        }
        /* A subscriber leaves at the first mark it reads, so the rest of
         * the batch may find its end closed: that is fine. */
        for (unsigned c = 0; c < nsub; c++)
                if ((r = perf_sock_send(x, x->fds[c][0])) < 0 && r != -EPIPE && r != -ECONNRESET)
                        return r;
        return 0;
}

/* Receive up to a batch into sbuf; returns the message count. */
static int perf_sock_recv(struct perf_sock *x, int fd) {
        unsigned n = x->batch;
        int r;

        if (x->kind == BENCH_XP_PIPE) {
                r = read_full(fd, x->sbuf, x->size * n);
                return r < 0 ? r : (int)n;
        }
        if (n == 1) {
                r = recv_one(fd, x->sbuf, x->size, x->size);
                return r < 0 ? r : 1;
        }
        for (unsigned i = 0; i < n; i++) {
                x->iov[i] = (struct iovec){.iov_base = x->sbuf + x->size * i, .iov_len = x->size};
                x->mm[i] = (struct mmsghdr){.msg_hdr = {.msg_iov = &x->iov[i], .msg_iovlen = 1}};
        }
        for (;;) {
                r = recvmmsg(fd, x->mm, n, MSG_WAITFORONE, NULL);
                if (r > 0)
                        break;
                if (r == 0)
                        return -EPIPE;
                if (errno != EINTR)
                        return negerrno();
        }
        for (int i = 0; i < r; i++)
                if (x->mm[i].msg_len != x->size || (x->mm[i].msg_hdr.msg_flags & MSG_TRUNC))
                        return -EBADMSG;
        return r;
}

static int perf_sock_consume(struct perf_sock *x, unsigned idx, struct perf_result *res) {
        int fd = x->fds[idx][1];
        uint64_t sink = 0, count = 0;

        for (;;) {
                int n = perf_sock_recv(x, fd);
                if (n < 0)
                        return n;
                for (int i = 0; i < n; i++) {
                        const uint8_t *p = x->sbuf + x->size * (size_t)i;
                        uint64_t v, last;
                        memcpy(&v, p, 8);
                        memcpy(&last, p + x->size - 8, 8);
                        if (v == BENCH_MARK_DONE) {
                                res->t_end = now_ns();
                                res->count = count;
                                res->sink = sink;
                                return 0;
                        }
                        if (_unlikely_(v != perf_tag(0, count)))
                                return -EBADMSG;
                        sink ^= last;
                        count++;
                }
        }
}

static int perf_sock_run(void *st, enum perf_role role, unsigned idx, struct perf_ctl *ctl, struct perf_result *r) {
        struct perf_sock *x = st;

        if (role == PERF_PROD)
                return perf_sock_produce(x, ctl, r);
        return perf_sock_consume(x, idx, r);
}

static void perf_sock_free(void *st) {
        struct perf_sock *x = st;

        if (!x)
                return;
        perf_sock_close_all(x);
        free(x->fds);
        perf_sock_free_bufs(x);
        free(x);
}

static void perf_sock_freep(struct perf_sock **p) {
        perf_sock_free(*p);
}

/* uds and pipe alike: x->kind tells them apart. */
static const struct perf_ops perf_sock_ops = {
        .prepare = perf_sock_prepare,
        .attach = perf_sock_attach,
        .run = perf_sock_run,
        .detach = perf_sock_detach,
        .free = perf_sock_free,
};

int baseline_perf_new(unsigned kind, const struct perf_cfg *cfg, struct perf_xp *ret) {
        if (cfg->producers != 1)
                return -EOPNOTSUPP;
        if (kind == BENCH_XP_SHM) {
                struct perf_shm *x = calloc(1, sizeof(*x));
                if (!x)
                        return -ENOMEM;
                x->cfg = cfg;
                x->w = waiter_for(cfg->com.wait, cfg->com.spin_us, false);
                *ret = (struct perf_xp){.ops = &perf_shm_ops, .st = x, .kind = kind};
                return 0;
        }
        if (kind == BENCH_XP_UDS || kind == BENCH_XP_PIPE) {
                _cleanup_(perf_sock_freep) struct perf_sock *x = calloc(1, sizeof(*x));
                if (!x)
                        return -ENOMEM;
                x->kind = kind;
                x->cfg = cfg;
                x->fds = malloc(cfg->subscribers * sizeof(*x->fds));
                if (!x->fds)
                        return -ENOMEM;
                for (unsigned c = 0; c < cfg->subscribers; c++)
                        x->fds[c][0] = x->fds[c][1] = -1;
                *ret = (struct perf_xp){
                        .ops = &perf_sock_ops,
                        .st = TAKE_PTR(x),
                        .kind = kind,
                };
                return 0;
        }
        return -EINVAL;
}
