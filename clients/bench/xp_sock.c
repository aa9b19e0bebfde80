/* SPDX-License-Identifier: MIT */
/*
 * xp_sock.c: the kernel references of the lab (xp_sock.h), uds and pipe,
 * for lat and perf. They copy the whole payload into the kernel and out
 * again, and always block there (--wait does not apply to them). All fds
 * are made in the parent before the fork, so both processes share them;
 * attach() drops the other side's ends.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "futex.h"
#include "macro.h"
#include "procs.h"
#include "xp_sock.h"

#define SOCK_BATCH_BYTES (UINT64_C(16) << 20) /* perf: most bytes per batched call */

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
static const struct lat_ops lat_sock_ops = {.attach = lat_sock_attach, .begin = lat_sock_begin,
                                           .ping = lat_sock_ping, .pong = lat_sock_pong, .free = lat_sock_free};

int xp_sock_lat_new(unsigned kind, const struct lat_cfg *cfg, struct lat_xp *ret) {
        _cleanup_(lat_sock_freep) struct lat_sock *x = calloc(1, sizeof(*x));
        int fds[2];

        if (kind != BENCH_XP_UDS && kind != BENCH_XP_PIPE)
                return -EINVAL;
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

/* =============================================================== perf */

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

static int perf_sock_produce(void *st, unsigned idx, struct perf_ctl *ctl, struct perf_result *res) {
        struct perf_sock *x = st;
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

static int perf_sock_consume(void *st, unsigned idx, struct perf_ctl *ctl, struct perf_result *res) {
        struct perf_sock *x = st;
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
static const struct perf_ops perf_sock_ops = {.prepare = perf_sock_prepare, .attach = perf_sock_attach,
                                             .produce = perf_sock_produce, .consume = perf_sock_consume,
                                             .detach = perf_sock_detach, .free = perf_sock_free};

int xp_sock_perf_new(unsigned kind, const struct perf_cfg *cfg, struct perf_xp *ret) {
        _cleanup_(perf_sock_freep) struct perf_sock *x = NULL;

        if (cfg->producers != 1)
                return -EOPNOTSUPP;
        if (kind != BENCH_XP_UDS && kind != BENCH_XP_PIPE)
                return -EINVAL;
        x = calloc(1, sizeof(*x));
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
