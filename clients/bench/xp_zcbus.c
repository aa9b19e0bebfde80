/* SPDX-License-Identifier: MIT */
/*
 * xp_zcbus.c: zcbus as the lab's transport (xp_zcbus.h).
 *
 * The round trip (lat): the ping side loans a SIZE-byte slot on
 * "<prefix>.<size>.ping", writes only the 8-byte counter there (zero copy:
 * a 1 MiB round trip should cost what a 64-byte one does) and commits;
 * the pong side receives it in place, releases it and answers the same way
 * on "<prefix>.<size>.pong". Each side opens its producer first (creating
 * its topic with the right geometry), then its subscriber.
 *
 * Throughput (perf): the producer writes each message in place (loan,
 * memset of the payload so every byte is written once, the 8-byte tag
 * "producer index, counter" at the start, commit), or with --batch N
 * copies N messages per zcbus_pub_send_batch(). Subscribers read in
 * place: the tag (checked: in order per producer, without gaps under
 * RELIABLE) and the last 8 bytes, then release (zcbus_sub_recv_batch +
 * zcbus_sub_release_batch with --batch). A subscriber's clock stops when
 * it last ran dry, so its rate does not include the time it waited for a
 * producer that had stopped.
 */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_util.h"
#include "futex.h"
#include "macro.h"
#include "xp_zcbus.h"

#define IDLE_WAIT_MS 100

/* ------------------------------------------------------------ broker */

void bench_broker_path(const char *sock, char *buf, size_t len) {
        if (sock)
                (void)snprintf(buf, len, "%s", sock);
        else if (zcbus_default_socket(buf, len) < 0)
                (void)snprintf(buf, len, "(default)");
}

int bench_broker_check(const char *cmd, const char *sock) {
        char path[256];
        zcbus *bus = NULL;
        int r = zcbus_connect(sock, &bus);

        if (r >= 0) {
                zcbus_disconnect(bus);
                return 0;
        }
        bench_broker_path(sock, path, sizeof(path));
        /* The same words as the other commands (clients/main.c). */
        cli_err(cmd, "cannot connect to broker at '%s': %s%s", path, zcbus_strerror(r),
                r == -ENOENT || r == -ECONNREFUSED ? " (is zcbusd running?)" : "");
        return r;
}

/* ------------------------------------------------------------ shared */

/* Delete a topic the lab used, once idle: whichever side lets go last
 * does it (-EBUSY while the other side still has it, -ENOENT once it is
 * gone: both fine), so a run leaves no topic behind. */
static void zc_forget(zcbus *bus, const char *topic) {
        if (bus && topic[0])
                (void)zcbus_topic_remove(bus, topic);
}

/* why: "WHAT 'TOPIC': strerror (the broker's explanation)"; returns r. */
static int zc_fail(char *why, size_t len, zcbus *bus, int r, const char *what, const char *topic) {
        const char *detail = bus ? zcbus_last_error(bus) : "";

        (void)snprintf(why, len, "%s '%s': %s%s%s%s", what, topic, zcbus_strerror(r), *detail ? " (" : "",
                       detail, *detail ? ")" : "");
        return r;
}

/* Our own connection (made in this process, after the fork), once. */
static int zc_connect(const char *sock, zcbus **bus, char *why, size_t len) {
        int r;

        if (*bus)
                return 0;
        r = zcbus_connect(sock, bus);
        if (r < 0) {
                char path[256];
                bench_broker_path(sock, path, sizeof(path));
                (void)snprintf(why, len, "cannot connect to broker at '%s': %s", path, zcbus_strerror(r));
        }
        return r;
}

/* A producer on topic, creating it with the lab's geometry if new, its
 * waits as wait says (a --wait mode). */
static int zc_pub_open(zcbus *bus, const char *topic, const struct bench_common *c, uint32_t wait, uint32_t slots,
                       size_t size, uint32_t flags, zcbus_pub **ret) {
        zcbus_topic_opts o = {
                .size = sizeof(o),
                .slot_count = slots,
                .slot_size = (uint32_t)size,
                .policy = c->policy,
                .wait_mode = bench_zcbus_wait(wait),
                .spin_us = c->spin_us,
                .flags = flags,
        };

        return zcbus_pub_open(bus, topic, &o, ret);
}

/* A subscriber waiting as wait (a --wait mode) says; max_holds 0: the
 * default. */
static int zc_sub_open(zcbus *bus, const char *topic, const struct bench_common *c, uint32_t wait,
                       uint32_t max_holds, zcbus_sub **ret) {
        zcbus_sub_opts o = {
                .size = sizeof(o),
                .max_holds = max_holds,
                .wait_mode = bench_zcbus_wait(wait),
                .spin_us = c->spin_us,
        };

        return zcbus_sub_open(bus, topic, &o, ret);
}

/* ----------------------------------------------------------- latency */

static const char *zc_why(void *st) {
        return ((struct xp_zc_lat *)st)->why;
}

static int zc_lat_pub(struct xp_zc_lat *x, const char *topic, size_t slot_size, zcbus_pub **ret) {
        int r = zc_pub_open(x->bus, topic, &x->cfg->com, x->wait, bench_lat_slots(slot_size, x->cfg->com.slots),
                            slot_size, x->cfg->timestamp ? ZCBUS_PUB_TIMESTAMP : 0, ret);

        return r < 0 ? zc_fail(x->why, sizeof(x->why), x->bus, r, "cannot publish on", topic) : 0;
}

static int zc_lat_sub(struct xp_zc_lat *x, const char *topic) {
        int r = zc_sub_open(x->bus, topic, &x->cfg->com, x->wait, 0, &x->sub);

        if (r >= 0 && x->wait == BENCH_WAIT_FD) {
                r = zcbus_sub_fd(x->sub); /* owned by the subscription */
                if (r < 0)
                        return zc_fail(x->why, sizeof(x->why), NULL, r, "no descriptor for", topic);
                x->fd = r;
        }
        return r < 0 ? zc_fail(x->why, sizeof(x->why), x->bus, r, "cannot subscribe to", topic) : 0;
}

/* "<prefix>.<size>.<dir>", or "<prefix>.<size>.<wait>.<dir>" with a
 * --wait list: a topic pair per mode, each created with its mode. */
static void zc_topic(const struct xp_zc_lat *x, size_t size, const char *dir, char *buf, size_t len) {
        if (x->cfg->com.nwaits > 1)
                (void)snprintf(buf, len, "%s.%zu.%s.%s", x->cfg->com.prefix, size, bench_wait_name(x->wait), dir);
        else
                (void)snprintf(buf, len, "%s.%zu.%s", x->cfg->com.prefix, size, dir);
}

static int zc_begin(void *st, enum bench_side side, int step, size_t size) {
        struct xp_zc_lat *x = st;
        char topic[ZCBUS_TOPIC_MAX + 1];
        int r;

        x->size = size;
        if (step == 0) {
                /* Our own connection, made in this process after the fork. */
                if ((r = zc_connect(x->cfg->sock, &x->bus, x->why, sizeof(x->why))) < 0)
                        return r;
                zc_topic(x, size, side == BENCH_PING ? "ping" : "pong", topic, sizeof(topic));
                return zc_lat_pub(x, topic, size, &x->pub);
        }
        zc_topic(x, size, side == BENCH_PING ? "pong" : "ping", topic, sizeof(topic));
        return zc_lat_sub(x, topic);
}

/* Send ctr in a len-byte message: loan, write the first 8 bytes, commit. */
static inline int zc_send(struct xp_zc_lat *x, uint64_t ctr, size_t len) {
        void *buf;
        int r = zcbus_pub_loan(x->pub, len, &buf);

        if (_unlikely_(r < 0))
                return r;
        memcpy(buf, &ctr, sizeof(ctr));
        return zcbus_pub_commit(x->pub, len);
}

/* --wait fd: as an event loop does, receive with timeout 0 and, on
 * -EAGAIN, poll() the subscription's descriptor and try again (zcbus.h's
 * contract: poll only after -EAGAIN). A message costs one poll() when it
 * was not there yet; the eventfd write is the pong's (or the notifier
 * thread's) system call. */
static int zc_recv_fd(struct xp_zc_lat *x, zcbus_msg *m) {
        int r;

        while ((r = zcbus_sub_recv(x->sub, m, 0)) == -EAGAIN) {
                struct pollfd p = {.fd = x->fd, .events = POLLIN};
                int n = poll(&p, 1, x->timeout_ms);
                if (n == 0)
                        return -ETIMEDOUT;
                if (n < 0 && errno != EINTR)
                        return -errno;
        }
        return r;
}

/* Receive one message in place; its counter and length. */
static inline int zc_recv(struct xp_zc_lat *x, uint64_t *ret_ctr, size_t *ret_len) {
        zcbus_msg m;
        int r = x->fd >= 0 ? zc_recv_fd(x, &m) : zcbus_sub_recv(x->sub, &m, x->timeout_ms);

        if (_unlikely_(r < 0))
                return r;
        if (_unlikely_(m.len < sizeof(uint64_t))) {
                (void)zcbus_sub_release(x->sub, &m);
                return -EBADMSG;
        }
        memcpy(ret_ctr, m.data, sizeof(*ret_ctr));
        *ret_len = m.len;
        return zcbus_sub_release(x->sub, &m);
}

static int zc_ping(void *st, uint64_t ctr) {
        struct xp_zc_lat *x = st;
        uint64_t echo;
        size_t len;
        int r;

        if ((r = zc_send(x, ctr, x->size)) < 0 || (r = zc_recv(x, &echo, &len)) < 0)
                return r;
        return echo == ctr && len == x->size ? 0 : -EBADMSG;
}

static int zc_pong(void *st, uint64_t *ret_ctr) {
        struct xp_zc_lat *x = st;
        size_t len;
        int r;

        if ((r = zc_recv(x, ret_ctr, &len)) < 0)
                return r;
        return zc_send(x, *ret_ctr, len);
}

static void zc_end(void *st, enum bench_side side) {
        struct xp_zc_lat *x = st;
        bool had = x->sub || x->pub;
        char topic[ZCBUS_TOPIC_MAX + 1];

        zcbus_sub_close(x->sub); /* closes x->fd */
        zcbus_pub_close(x->pub);
        x->sub = NULL;
        x->pub = NULL;
        x->fd = -1;
        if (!had || x->size == 0)
                return;
        zc_topic(x, x->size, "ping", topic, sizeof(topic));
        zc_forget(x->bus, topic);
        zc_topic(x, x->size, "pong", topic, sizeof(topic));
        zc_forget(x->bus, topic);
}

static void zc_free(void *st) {
        struct xp_zc_lat *x = st;

        if (!x)
                return;
        zc_end(x, BENCH_PING);
        zcbus_disconnect(x->bus);
        free(x);
}

static const struct lat_ops zc_lat_ops = {.begin = zc_begin, .ping = zc_ping, .pong = zc_pong, .end = zc_end,
                                         .free = zc_free, .why = zc_why};

int xp_zc_lat_new(const struct lat_cfg *cfg, uint32_t wait, struct lat_xp *ret) {
        struct xp_zc_lat *x = calloc(1, sizeof(*x));

        if (!x)
                return -ENOMEM;
        x->cfg = cfg;
        x->wait = wait;
        x->fd = -1;
        x->timeout_ms = -1; /* the driver's watchdog guards the ping side */
        *ret = (struct lat_xp){.ops = &zc_lat_ops, .st = x, .kind = BENCH_XP_ZCBUS};
        return 0;
}

int xp_zc_lat_ext_open(struct xp_zc_lat *x, const char *mine, const char *theirs) {
        zcbus_pub *tmp = NULL;
        int r;

        if ((r = zc_connect(x->cfg->sock, &x->bus, x->why, sizeof(x->why))) < 0 ||
            (r = zc_lat_pub(x, mine, x->cfg->com.max_size, &x->pub)) < 0 ||
            (r = zc_lat_pub(x, theirs, x->cfg->com.max_size, &tmp)) < 0)
                return r;
        zcbus_pub_close(tmp);
        return zc_lat_sub(x, theirs);
}

int xp_zc_lat_send(struct xp_zc_lat *x, uint64_t ctr, size_t len) {
        return zc_send(x, ctr, len);
}

int xp_zc_lat_recv(struct xp_zc_lat *x, uint64_t *ret_ctr, size_t *ret_len) {
        return zc_recv(x, ret_ctr, ret_len);
}

/* -------------------------------------------------------- throughput */

struct xp_zc_perf {
        const struct perf_cfg *cfg;
        size_t size;
        char topic[ZCBUS_TOPIC_MAX + 1];
        zcbus *bus;
        zcbus_pub *pub;
        zcbus_sub *sub;
        /* Peer-side buffers, made at attach, never in the loops. */
        uint8_t *pbuf;
        zcbus_iov *iov;
        void **bufs;  /* --zero-copy: the loaned slots */
        size_t *lens; /* --zero-copy: every message is size bytes */
        zcbus_msg *msgs;
        char why[320];
};

static const char *pzc_why(void *st) {
        return ((struct xp_zc_perf *)st)->why;
}

static int pzc_prepare(void *st, size_t size) {
        struct xp_zc_perf *x = st;

        x->size = size;
        (void)snprintf(x->topic, sizeof(x->topic), "%s.%zu", x->cfg->com.prefix, size);
        return 0;
}

/* A peer's run is over (its counts taken): let go, and delete the topic
 * if it was the last to. */
static void pzc_done(struct xp_zc_perf *x) {
        zcbus_sub_close(x->sub);
        zcbus_pub_close(x->pub);
        x->sub = NULL;
        x->pub = NULL;
        zc_forget(x->bus, x->topic);
}

static int pzc_fail(struct xp_zc_perf *x, int r, const char *what) {
        return zc_fail(x->why, sizeof(x->why), x->bus, r, what, x->topic);
}

static int pzc_attach(void *st, enum perf_role role, unsigned idx) {
        struct xp_zc_perf *x = st;
        const struct perf_cfg *c = x->cfg;
        unsigned batch = c->batch;
        int r;

        r = zc_connect(c->sock, &x->bus, x->why, sizeof(x->why));
        if (r < 0)
                return r;
        if (role == PERF_PROD) {
                r = zc_pub_open(x->bus, x->topic, &c->com, c->com.wait, bench_perf_slots(x->size, c->com.slots),
                                x->size, 0, &x->pub);
                if (r < 0)
                        return pzc_fail(x, r, "cannot publish on");
                if (batch > 1 && c->zero_copy) {
                        x->bufs = calloc(batch, sizeof(*x->bufs));
                        x->lens = calloc(batch, sizeof(*x->lens));
                        if (!x->bufs || !x->lens)
                                return -ENOMEM;
                        for (unsigned i = 0; i < batch; i++)
                                x->lens[i] = x->size;
                } else if (batch > 1) {
                        /* Message i starts at pbuf + 8 i: distinct tags, one
                         * buffer of size + 8 batch bytes even for 1 MiB. */
                        x->pbuf = malloc(x->size + 8u * batch);
                        x->iov = calloc(batch, sizeof(*x->iov));
                        if (!x->pbuf || !x->iov)
                                return -ENOMEM;
                        memset(x->pbuf, 0xa5, x->size + 8u * batch);
                        for (unsigned i = 0; i < batch; i++)
                                x->iov[i] = (zcbus_iov){.data = x->pbuf + 8u * i, .len = x->size};
                }
                return 0;
        }
        r = zc_sub_open(x->bus, x->topic, &c->com, c->com.wait, MAX(batch, 16u), &x->sub);
        if (r < 0)
                return pzc_fail(x, r, "cannot subscribe to");
        x->msgs = calloc(batch, sizeof(*x->msgs));
        return x->msgs ? 0 : -ENOMEM;
}

static int pzc_produce(void *st, unsigned idx, struct perf_ctl *ctl, struct perf_result *res) {
        struct xp_zc_perf *x = st;
        unsigned batch = x->cfg->batch;
        size_t size = x->size;
        uint64_t count = 0;
        zcbus_pub_stats stats = {.size = sizeof(stats)};
        int r;

        if (batch == 1) {
                while (!load_rlx(&ctl->stop)) {
                        uint64_t tag = perf_tag(idx, count);
                        void *buf;
                        r = zcbus_pub_loan(x->pub, size, &buf);
                        if (_unlikely_(r < 0))
                                return pzc_fail(x, r, "loan on");
                        memset((uint8_t *)buf + 8, 0xa5, size - 8); /* every byte written once */
                        memcpy(buf, &tag, 8);
                        r = zcbus_pub_commit(x->pub, size);
                        if (_unlikely_(r < 0))
                                return pzc_fail(x, r, "commit on");
                        count++;
                }
        } else if (x->cfg->zero_copy) {
                while (!load_rlx(&ctl->stop)) {
                        int k = zcbus_pub_loan_batch(x->pub, batch, x->bufs, -1);
                        if (_unlikely_(k < 0))
                                return pzc_fail(x, k, "batch loan on");
                        for (int i = 0; i < k; i++) {
                                uint64_t tag = perf_tag(idx, count + (unsigned)i);
                                memset((uint8_t *)x->bufs[i] + 8, 0xa5, size - 8); /* every byte written once */
                                memcpy(x->bufs[i], &tag, 8);
                        }
                        r = zcbus_pub_commit_batch(x->pub, x->lens, (unsigned)k);
                        if (_unlikely_(r < 0))
                                return pzc_fail(x, r, "batch commit on");
                        count += (unsigned)k;
                }
        } else {
                while (!load_rlx(&ctl->stop)) {
                        for (unsigned i = 0; i < batch; i++) {
                                uint64_t tag = perf_tag(idx, count + i);
                                memcpy(x->pbuf + 8u * i, &tag, 8);
                        }
                        r = zcbus_pub_send_batch(x->pub, x->iov, batch, -1);
                        if (_unlikely_(r < 0))
                                return pzc_fail(x, r, "batch send on");
                        count += (unsigned)r;
                }
        }
        res->t_end = now_ns();
        res->count = count;
        if (zcbus_pub_stats_get(x->pub, &stats) == 0)
                res->waits = stats.waits;
        pzc_done(x);
        return 0;
}

struct sub_check {
        uint64_t expect[PERF_PRODUCERS_MAX];
        unsigned producers;
        bool reliable;
        size_t size;
        uint64_t sink;
};

/* Read one message in place: tag in order, first and last 8 bytes. */
static inline int check_msg(struct sub_check *k, const zcbus_msg *m) {
        const uint8_t *p = m->data;
        uint64_t tag, last, ctr;
        unsigned prod;

        if (_unlikely_(m->len != k->size))
                return -EBADMSG;
        memcpy(&tag, p, 8);
        memcpy(&last, p + m->len - 8, 8);
        prod = (unsigned)(tag >> PERF_TAG_SHIFT);
        ctr = tag & PERF_CTR_MASK;
        if (_unlikely_(prod >= k->producers || ctr < k->expect[prod] || (k->reliable && ctr != k->expect[prod])))
                return -EBADMSG;
        k->expect[prod] = ctr + 1;
        k->sink ^= last;
        return 0;
}

static int pzc_consume(void *st, unsigned idx, struct perf_ctl *ctl, struct perf_result *res) {
        struct xp_zc_perf *x = st;
        const struct perf_cfg *c = x->cfg;
        unsigned batch = c->batch;
        struct sub_check k = {
                .producers = c->producers,
                .reliable = c->com.policy != ZCBUS_POLICY_LATEST,
                .size = x->size,
        };
        zcbus_sub_stats stats = {.size = sizeof(stats)};
        uint64_t count = 0, idle_count = UINT64_MAX;
        int n, r;

        for (;;) {
                n = batch == 1 ? zcbus_sub_recv(x->sub, x->msgs, 0) : zcbus_sub_recv_batch(x->sub, x->msgs, batch, 0);
                if (n == -EAGAIN) {
                        /* Dry: the only place a subscriber reads the clock. */
                        if (idle_count != count) {
                                res->t_end = now_ns();
                                idle_count = count;
                        }
                        if (load_acq(&ctl->prod_done) == c->producers) { /* pairs with the producers' faa */
                                n = batch == 1 ? zcbus_sub_recv(x->sub, x->msgs, 0)
                                               : zcbus_sub_recv_batch(x->sub, x->msgs, batch, 0);
                                if (n == -EAGAIN)
                                        break;
                        } else
                                n = batch == 1 ? zcbus_sub_recv(x->sub, x->msgs, IDLE_WAIT_MS)
                                               : zcbus_sub_recv_batch(x->sub, x->msgs, batch, IDLE_WAIT_MS);
                        if (n == -EAGAIN || n == -ETIMEDOUT)
                                continue;
                }
                if (_unlikely_(n < 0))
                        return pzc_fail(x, n, "receive on");
                if (batch == 1)
                        n = 1;
                for (int i = 0; i < n; i++)
                        if (_unlikely_(check_msg(&k, &x->msgs[i]) < 0))
                                return -EBADMSG;
                r = batch == 1 ? zcbus_sub_release(x->sub, x->msgs)
                               : zcbus_sub_release_batch(x->sub, x->msgs, (unsigned)n);
                if (_unlikely_(r < 0))
                        return pzc_fail(x, r, "release on");
                count += (unsigned)n;
        }
        res->count = count;
        res->sink = k.sink;
        if (zcbus_sub_stats_get(x->sub, &stats) == 0)
                res->lost = stats.lost;
        pzc_done(x);
        return 0;
}

static void pzc_free(void *st) {
        struct xp_zc_perf *x = st;

        if (!x)
                return;
        zcbus_sub_close(x->sub);
        zcbus_pub_close(x->pub);
        zc_forget(x->bus, x->topic);
        zcbus_disconnect(x->bus);
        free(x->pbuf);
        free(x->iov);
        free(x->bufs);
        free(x->lens);
        free(x->msgs);
        free(x);
}

static const struct perf_ops pzc_ops = {.prepare = pzc_prepare, .attach = pzc_attach, .produce = pzc_produce,
                                       .consume = pzc_consume, .free = pzc_free, .why = pzc_why};

int xp_zc_perf_new(const struct perf_cfg *cfg, struct perf_xp *ret) {
        struct xp_zc_perf *x = calloc(1, sizeof(*x));

        if (!x)
                return -ENOMEM;
        x->cfg = cfg;
        *ret = (struct perf_xp){.ops = &pzc_ops, .st = x, .kind = BENCH_XP_ZCBUS};
        return 0;
}

/* ----------------------------------------------------------- fan-out */

/* One producer on "<prefix>.fan<point>.<size>" (a topic per point: a
 * late joiner of an old one would start at its end marker), created with
 * ZCBUS_PUB_TIMESTAMP, so each message carries the commit's clock; it
 * writes in place as perf does. Subscribers receive in place, read the
 * clock at once, and release. */
struct xp_zc_fan {
        struct fan_point p;
        char topic[ZCBUS_TOPIC_MAX + 1];
        zcbus *bus;
        zcbus_pub *pub;
        zcbus_sub *sub;
        char why[320];
};

static const char *fzc_why(void *st) {
        return ((struct xp_zc_fan *)st)->why;
}

static int fzc_prepare(void *st, const struct fan_point *p) {
        struct xp_zc_fan *x = st;

        x->p = *p;
        (void)snprintf(x->topic, sizeof(x->topic), "%s.fan%u.%zu", p->prefix, p->idx, p->size);
        return 0;
}

static int fzc_attach(void *st, enum perf_role role, unsigned idx) {
        struct xp_zc_fan *x = st;
        struct bench_common c = {.policy = x->p.policy, .wait = x->p.wait, .spin_us = x->p.spin_us};
        int r = zc_connect(x->p.sock, &x->bus, x->why, sizeof(x->why));

        if (r < 0)
                return r;
        if (role == PERF_PROD) {
                r = zc_pub_open(x->bus, x->topic, &c, c.wait, x->p.slots, x->p.size, ZCBUS_PUB_TIMESTAMP, &x->pub);
                return r < 0 ? zc_fail(x->why, sizeof(x->why), x->bus, r, "cannot publish on", x->topic) : 0;
        }
        r = zc_sub_open(x->bus, x->topic, &c, c.wait, 0, &x->sub);
        return r < 0 ? zc_fail(x->why, sizeof(x->why), x->bus, r, "cannot subscribe to", x->topic) : 0;
}

static int fzc_publish(void *st, uint64_t ctr) {
        struct xp_zc_fan *x = st;
        uint64_t tag = perf_tag(0, ctr);
        size_t size = x->p.size;
        void *buf;
        int r = zcbus_pub_loan(x->pub, size, &buf);

        if (_unlikely_(r < 0))
                return zc_fail(x->why, sizeof(x->why), x->bus, r, "loan on", x->topic);
        memset((uint8_t *)buf + 8, 0xa5, size - 8); /* every byte written once */
        memcpy(buf, &tag, 8);
        r = zcbus_pub_commit(x->pub, size);
        if (_unlikely_(r < 0))
                return zc_fail(x->why, sizeof(x->why), x->bus, r, "commit on", x->topic);
        if (ctr == FAN_END) { /* the producer's last act: let go (see zc_forget) */
                zcbus_pub_close(x->pub);
                x->pub = NULL;
                zc_forget(x->bus, x->topic);
        }
        return 0;
}

static int fzc_receive(void *st, unsigned idx, int timeout_ms, struct fan_rx *ret) {
        struct xp_zc_fan *x = st;
        zcbus_msg m;
        uint64_t tag;
        int r = zcbus_sub_recv(x->sub, &m, timeout_ms);

        if (r == -ETIMEDOUT || r == -EAGAIN)
                return 0;
        if (_unlikely_(r < 0))
                return zc_fail(x->why, sizeof(x->why), x->bus, r, "receive on", x->topic);
        ret->now = now_ns();
        if (_unlikely_(m.len != x->p.size)) {
                (void)zcbus_sub_release(x->sub, &m);
                return -EBADMSG;
        }
        memcpy(&tag, m.data, 8);
        ret->ctr = tag & PERF_CTR_MASK;
        ret->ts_ns = m.timestamp_ns;
        ret->lost = m.lost;
        r = zcbus_sub_release(x->sub, &m);
        return _unlikely_(r < 0) ? zc_fail(x->why, sizeof(x->why), x->bus, r, "release on", x->topic) : 1;
}

static void fzc_pub_counts(void *st, uint64_t *ret_waits, uint64_t *ret_wakeups) {
        struct xp_zc_fan *x = st;
        zcbus_pub_stats s = {.size = sizeof(s)};

        if (zcbus_pub_stats_get(x->pub, &s) == 0) {
                *ret_waits = s.waits;
                *ret_wakeups = s.wakeups;
        }
}

static void fzc_sub_counts(void *st, uint64_t *ret_sleeps) {
        struct xp_zc_fan *x = st;
        zcbus_sub_stats s = {.size = sizeof(s)};

        if (zcbus_sub_stats_get(x->sub, &s) == 0)
                *ret_sleeps = s.sleeps;
        /* The subscriber's last act: let go (see zc_forget). */
        zcbus_sub_close(x->sub);
        x->sub = NULL;
        zc_forget(x->bus, x->topic);
}

static void fzc_free(void *st) {
        struct xp_zc_fan *x = st;

        if (!x)
                return;
        zcbus_sub_close(x->sub);
        zcbus_pub_close(x->pub);
        zc_forget(x->bus, x->topic);
        zcbus_disconnect(x->bus);
        free(x);
}

static const struct fan_ops fzc_ops = {.prepare = fzc_prepare, .attach = fzc_attach, .publish = fzc_publish,
                                      .receive = fzc_receive, .pub_counts = fzc_pub_counts,
                                      .sub_counts = fzc_sub_counts, .free = fzc_free, .why = fzc_why};

int xp_zc_fan_new(struct fan_xp *ret) {
        struct xp_zc_fan *x = calloc(1, sizeof(*x));

        if (!x)
                return -ENOMEM;
        *ret = (struct fan_xp){.ops = &fzc_ops, .st = x, .kind = BENCH_XP_ZCBUS};
        return 0;
}
