/* SPDX-License-Identifier: MIT */
/*
 * bench.c: zcbus-bridge-bench, round-trip latency across two bridges
 * beside the same round trip through NATS alone, in one run (a benchmark,
 * not a test; scripts/bridge-bench.sh sets up the servers and bridges).
 *
 *   bridge: a ping thread publishes on bus A's topic bench.ping and waits
 *           for bench.pong on A; a pong thread on bus B answers each ping
 *           it receives on B with a pong on B. Each way crosses A's
 *           bridge, NATS and B's bridge (and back): 2 x (zcbus hop, bridge,
 *           NATS, bridge, zcbus hop).
 *   nats:   the same with two libnats connections to the same server,
 *           publishing and subscribing the way the bridge does (core
 *           NATS, callbacks on libnats threads): 2 x NATS hop.
 *
 * With --tput N: throughput instead, core NATS alone, JetStream alone (one
 * publish at a time, pipelined, and pipelined end to end through an
 * ordered consumer: what a reliable topic's two bridges ask of NATS), and
 * the bridges (a latest and a reliable topic).
 *
 * Every ping carries its index; a pong for an older ping (a ping the
 * warm-up gave up on) is skipped. Output: one line per (transport, size)
 * with p50/p90/p99/max round trip in microseconds, or JSON with --json.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <nats/nats.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "zcbus.h"

static uint64_t now_ns(void) {
        struct timespec ts;

        (void)clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

        return x < y ? -1 : x > y;
}

struct result {
        const char *transport;
        size_t size;
        unsigned n;
        double p50, p90, p99, max; /* us */
};

static void summarize(uint64_t *rtt, unsigned n, struct result *r) {
        qsort(rtt, n, sizeof(*rtt), cmp_u64);
        r->n = n;
        r->p50 = (double)rtt[n / 2] / 1e3;
        r->p90 = (double)rtt[(uint64_t)n * 90 / 100] / 1e3;
        r->p99 = (double)rtt[(uint64_t)n * 99 / 100] / 1e3;
        r->max = (double)rtt[n - 1] / 1e3;
}

/* ---- through the bridges ---------------------------------------------- */

struct bus_pong {
        const char *sock;
        size_t slot_size;
        atomic_bool stop;
        int err;
};

static void *bus_pong_main(void *arg) {
        struct bus_pong *p = arg;
        zcbus *bus = NULL;
        zcbus_sub *sub = NULL;
        zcbus_pub *pub = NULL;
        zcbus_sub_opts so = {.size = sizeof(so), .slot_count = 64, .slot_size = (uint32_t)p->slot_size,
                             .policy = ZCBUS_POLICY_LATEST};
        zcbus_topic_opts po = {.size = sizeof(po), .slot_count = 64, .slot_size = (uint32_t)p->slot_size,
                               .policy = ZCBUS_POLICY_LATEST};
        int r = zcbus_connect(p->sock, &bus);

        if (r >= 0)
                r = zcbus_sub_open(bus, "bench.ping", &so, &sub);
        if (r >= 0)
                r = zcbus_pub_open(bus, "bench.pong", &po, &pub);
        while (r >= 0 && !atomic_load(&p->stop)) {
                zcbus_msg m;

                r = zcbus_sub_recv(sub, &m, 100);
                if (r == -ETIMEDOUT) {
                        r = 0;
                        continue;
                }
                if (r < 0)
                        break;
                r = zcbus_pub_send(pub, m.data, m.len, 0);
                (void)zcbus_sub_release(sub, &m);
                if (r == -EAGAIN)
                        r = 0;
        }
        p->err = r < 0 ? r : 0;
        zcbus_pub_close(pub);
        zcbus_sub_close(sub);
        zcbus_disconnect(bus);
        return NULL;
}

static int bus_run(const char *sock_a, const char *sock_b, size_t size, size_t slot, unsigned n, unsigned warmup,
                   struct result *res) {
        struct bus_pong pong = {.sock = sock_b, .slot_size = slot};
        zcbus *bus = NULL;
        zcbus_sub *sub = NULL;
        zcbus_pub *pub = NULL;
        zcbus_sub_opts so = {.size = sizeof(so), .slot_count = 64, .slot_size = (uint32_t)slot,
                             .policy = ZCBUS_POLICY_LATEST};
        zcbus_topic_opts po = {.size = sizeof(po), .slot_count = 64, .slot_size = (uint32_t)slot,
                               .policy = ZCBUS_POLICY_LATEST};
        unsigned char *buf = calloc(1, size < 8 ? 8 : size);
        uint64_t *rtt = calloc(n, sizeof(*rtt));
        pthread_t thr;
        int r;

        if (!buf || !rtt)
                return -ENOMEM;
        r = zcbus_connect(sock_a, &bus);
        if (r >= 0)
                r = zcbus_sub_open(bus, "bench.pong", &so, &sub);
        if (r >= 0)
                r = zcbus_pub_open(bus, "bench.ping", &po, &pub);
        if (r < 0) {
                (void)fprintf(stderr, "zcbus-bridge-bench: bus A: %s\n", zcbus_strerror(r));
                return r;
        }
        r = -pthread_create(&thr, NULL, bus_pong_main, &pong);
        for (uint64_t i = 0; r >= 0 && i < (uint64_t)warmup + n; i++) {
                /* During warm-up a ping may be lost (the bridges have not
                 * found the topics yet): try again after 200 ms. */
                int tries = i < warmup ? 100 : 1;
                uint64_t t0 = 0;
                bool got = false;

                for (int t = 0; t < tries && !got && r >= 0; t++) {
                        uint64_t deadline;

                        memcpy(buf, &i, sizeof(i));
                        t0 = now_ns();
                        r = zcbus_pub_send(pub, buf, size < 8 ? 8 : size, 0);
                        deadline = t0 + (i < warmup ? 200000000ull : 5000000000ull);
                        while (r >= 0 && !got) {
                                zcbus_msg m;
                                uint64_t now = now_ns(), idx;

                                if (now >= deadline)
                                        break;
                                r = zcbus_sub_recv(sub, &m, (int)((deadline - now) / 1000000 + 1));
                                if (r == -ETIMEDOUT) {
                                        r = 0;
                                        break;
                                }
                                if (r < 0)
                                        break;
                                memcpy(&idx, m.data, sizeof(idx));
                                got = idx == i;
                                (void)zcbus_sub_release(sub, &m);
                        }
                }
                if (r >= 0 && !got) {
                        (void)fprintf(stderr, "zcbus-bridge-bench: no pong for ping %" PRIu64 "\n", i);
                        r = -ETIMEDOUT;
                }
                if (r >= 0 && i >= warmup)
                        rtt[i - warmup] = now_ns() - t0;
        }
        atomic_store(&pong.stop, true);
        (void)pthread_join(thr, NULL);
        zcbus_pub_close(pub);
        zcbus_sub_close(sub);
        zcbus_disconnect(bus);
        if (r >= 0 && pong.err < 0)
                r = pong.err;
        if (r >= 0) {
                res->transport = "bridge";
                res->size = size;
                summarize(rtt, n, res);
        }
        free(buf);
        free(rtt);
        return r;
}

/* ---- NATS alone ----------------------------------------------------------- */

static void nats_pong_cb(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *closure) {
        (void)natsConnection_Publish(nc, "bench.npong", natsMsg_GetData(m), natsMsg_GetDataLength(m));
        natsMsg_Destroy(m);
}

static natsStatus connect_to(natsConnection **nc, const char *url, bool asap) {
        natsOptions *o = NULL;
        natsStatus s = natsOptions_Create(&o);

        if (s == NATS_OK)
                s = natsOptions_SetURL(o, url);
        if (s == NATS_OK)
                s = natsOptions_SetSendAsap(o, asap);
        if (s == NATS_OK)
                s = natsConnection_Connect(nc, o);
        natsOptions_Destroy(o);
        return s;
}

static int nats_run(const char *url, bool asap, size_t size, unsigned n, unsigned warmup, struct result *res) {
        natsConnection *ping = NULL, *pong = NULL;
        natsSubscription *psub = NULL, *rsub = NULL;
        size_t len = size < 8 ? 8 : size;
        unsigned char *buf = calloc(1, len);
        uint64_t *rtt = calloc(n, sizeof(*rtt));
        natsStatus s;

        if (!buf || !rtt)
                return -ENOMEM;
        s = connect_to(&ping, url, asap);
        if (s == NATS_OK)
                s = connect_to(&pong, url, asap);
        if (s == NATS_OK)
                s = natsConnection_Subscribe(&psub, pong, "bench.nping", nats_pong_cb, NULL);
        if (s == NATS_OK)
                s = natsConnection_SubscribeSync(&rsub, ping, "bench.npong");
        if (s == NATS_OK)
                s = natsConnection_Flush(pong);
        if (s == NATS_OK)
                s = natsConnection_Flush(ping);
        for (uint64_t i = 0; s == NATS_OK && i < (uint64_t)warmup + n; i++) {
                uint64_t t0, idx = UINT64_MAX;

                memcpy(buf, &i, sizeof(i));
                t0 = now_ns();
                s = natsConnection_Publish(ping, "bench.nping", buf, (int)len);
                while (s == NATS_OK && idx != i) {
                        natsMsg *m = NULL;

                        s = natsSubscription_NextMsg(&m, rsub, 5000);
                        if (s == NATS_OK) {
                                memcpy(&idx, natsMsg_GetData(m), sizeof(idx));
                                natsMsg_Destroy(m);
                        }
                }
                if (s == NATS_OK && i >= warmup)
                        rtt[i - warmup] = now_ns() - t0;
        }
        natsSubscription_Destroy(psub);
        natsSubscription_Destroy(rsub);
        natsConnection_Destroy(ping);
        natsConnection_Destroy(pong);
        if (s != NATS_OK) {
                (void)fprintf(stderr, "zcbus-bridge-bench: NATS: %s\n", natsStatus_GetText(s));
                free(buf);
                free(rtt);
                return -EIO;
        }
        res->transport = "nats";
        res->size = size;
        summarize(rtt, n, res);
        free(buf);
        free(rtt);
        return 0;
}

/* ---- throughput ------------------------------------------------------------ */

struct tput {
        const char *what;
        size_t size;
        uint64_t sent, got;
        double secs; /* first send to last receipt */
};

struct bus_count {
        const char *sock, *topic;
        uint32_t policy;
        size_t slot;
        uint64_t want;
        atomic_bool ready, stop;
        uint64_t got, t_last;
        int err;
};

static void *bus_count_main(void *arg) {
        struct bus_count *c = arg;
        zcbus *bus = NULL;
        zcbus_sub *sub = NULL;
        zcbus_sub_opts so = {.size = sizeof(so), .slot_count = 4096, .slot_size = (uint32_t)c->slot,
                             .policy = c->policy};
        int r = zcbus_connect(c->sock, &bus);

        if (r >= 0)
                r = zcbus_sub_open(bus, c->topic, &so, &sub);
        atomic_store(&c->ready, true);
        while (r >= 0 && c->got < c->want && !atomic_load(&c->stop)) {
                zcbus_msg m[64];

                r = zcbus_sub_recv_batch(sub, m, 64, 100);
                if (r == -ETIMEDOUT) {
                        r = 0;
                        continue;
                }
                if (r > 0) {
                        c->got += (uint64_t)r;
                        c->t_last = now_ns();
                        r = zcbus_sub_release_batch(sub, m, (unsigned)r);
                }
        }
        c->err = r < 0 ? r : 0;
        zcbus_sub_close(sub);
        zcbus_disconnect(bus);
        return NULL;
}

/* n messages from bus A's topic to bus B's, through the bridges. Latest:
 * the producer never waits and what arrives within 2 s of the last send
 * counts; reliable: all must arrive. */
static int bus_tput(const char *sock_a, const char *sock_b, const char *topic, uint32_t policy, size_t size,
                    size_t slot, uint64_t n, struct tput *t) {
        struct bus_count c = {.sock = sock_b, .topic = topic, .policy = policy, .slot = slot,
                              .want = policy == ZCBUS_POLICY_LATEST ? UINT64_MAX : n};
        zcbus *bus = NULL;
        zcbus_pub *pub = NULL;
        zcbus_topic_opts po = {.size = sizeof(po), .slot_count = 4096, .slot_size = (uint32_t)slot, .policy = policy};
        unsigned char *buf = calloc(1, size);
        pthread_t thr;
        uint64_t t0, deadline;
        int r;

        if (!buf)
                return -ENOMEM;
        r = zcbus_connect(sock_a, &bus);
        if (r >= 0)
                r = zcbus_pub_open(bus, topic, &po, &pub);
        if (r >= 0)
                r = -pthread_create(&thr, NULL, bus_count_main, &c);
        if (r < 0) {
                (void)fprintf(stderr, "zcbus-bridge-bench: %s: %s\n", topic, zcbus_strerror(r));
                return r;
        }
        while (!atomic_load(&c.ready))
                (void)usleep(1000);
        (void)usleep(300 * 1000); /* the bridges' scan finds the topics (scan_ms 50) */
        t0 = now_ns();
        if (policy == ZCBUS_POLICY_LATEST) {
                /* The producer never waits: it offers messages for 2 s
                 * at a steady rate, a million a second or 1 GiB/s,
                 * whichever is fewer (more than NATS alone carries here,
                 * without a CPU of its own taken from the bridges and the
                 * server), and what arrives counts. */
                uint64_t end = t0 + 2000000000ull;
                double rate = size > 1024 ? (double)(1u << 30) / (double)size : 1e6; /* messages per second */

                n = 0;
                while (r >= 0) {
                        uint64_t now = now_ns();
                        uint64_t due = (uint64_t)(rate * (double)(now - t0) / 1e9);

                        if (now >= end)
                                break;
                        for (unsigned k = 0; r >= 0 && n < due && k < 256; k++, n++) {
                                memcpy(buf, &n, size < sizeof(n) ? size : sizeof(n));
                                r = zcbus_pub_send(pub, buf, size, -1);
                        }
                        if (n >= due)
                                (void)usleep(50);
                }
        }
        for (uint64_t i = 0; policy == ZCBUS_POLICY_RELIABLE && r >= 0 && i < n; i++) {
                memcpy(buf, &i, size < sizeof(i) ? size : sizeof(i));
                r = zcbus_pub_send(pub, buf, size, -1);
        }
        deadline = now_ns() + (policy == ZCBUS_POLICY_RELIABLE ? 120000000000ull : 2000000000ull);
        while (c.got < n && now_ns() < deadline)
                (void)usleep(1000);
        atomic_store(&c.stop, true);
        (void)pthread_join(thr, NULL);
        zcbus_pub_close(pub);
        zcbus_disconnect(bus);
        free(buf);
        *t = (struct tput){.what = policy == ZCBUS_POLICY_RELIABLE ? "bridge-reliable" : "bridge-latest",
                           .size = size, .sent = n, .got = c.got,
                           .secs = c.got ? (double)(c.t_last - t0) / 1e9 : 0};
        return r < 0 ? r : c.err;
}

struct nats_count {
        _Atomic uint64_t got;
        _Atomic uint64_t t_last;
};

static void nats_count_cb(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *closure) {
        struct nats_count *c = closure;

        atomic_fetch_add(&c->got, 1);
        atomic_store(&c->t_last, now_ns());
        natsMsg_Destroy(m);
}

/* Core NATS alone: n messages from one connection to a subscriber on
 * another; what arrives within 2 s of the last publish counts. */
static int nats_tput(const char *url, bool asap, size_t size, uint64_t n, struct tput *t) {
        natsConnection *pc = NULL, *sc = NULL;
        natsSubscription *sub = NULL;
        struct nats_count c = {0};
        unsigned char *buf = calloc(1, size);
        uint64_t t0, deadline;
        natsStatus s;

        if (!buf)
                return -ENOMEM;
        s = connect_to(&pc, url, asap);
        if (s == NATS_OK)
                s = connect_to(&sc, url, asap);
        if (s == NATS_OK)
                s = natsConnection_Subscribe(&sub, sc, "bench.ntput", nats_count_cb, &c);
        if (s == NATS_OK)
                s = natsSubscription_SetPendingLimits(sub, -1, -1);
        if (s == NATS_OK)
                s = natsConnection_Flush(sc);
        t0 = now_ns();
        for (uint64_t i = 0; s == NATS_OK && i < n; i++)
                s = natsConnection_Publish(pc, "bench.ntput", buf, (int)size);
        if (s == NATS_OK)
                s = natsConnection_Flush(pc);
        deadline = now_ns() + 2000000000ull;
        while (atomic_load(&c.got) < n && now_ns() < deadline)
                (void)usleep(1000);
        natsSubscription_Destroy(sub);
        natsConnection_Destroy(pc);
        natsConnection_Destroy(sc);
        free(buf);
        if (s != NATS_OK) {
                (void)fprintf(stderr, "zcbus-bridge-bench: NATS: %s\n", natsStatus_GetText(s));
                return -EIO;
        }
        *t = (struct tput){.what = "nats-core", .size = size, .sent = n, .got = atomic_load(&c.got),
                           .secs = (double)(atomic_load(&c.t_last) - t0) / 1e9};
        return 0;
}

/* JetStream alone: n publishes to a stream, each waiting for its ack (as
 * the bridge does), and n asynchronous ones (what a pipelining bridge
 * could reach). */
static int js_tput(const char *url, size_t size, uint64_t n, bool async, struct tput *t) {
        natsConnection *nc = NULL;
        jsCtx *js = NULL;
        jsStreamConfig sc;
        jsStreamInfo *si = NULL;
        const char *subj[1] = {"bench.js"};
        unsigned char *buf = calloc(1, size);
        uint64_t t0;
        natsStatus s;
        jsErrCode jerr = 0;

        if (!buf)
                return -ENOMEM;
        s = connect_to(&nc, url, false);
        if (s == NATS_OK)
                s = natsConnection_JetStream(&js, nc, NULL);
        (void)jsStreamConfig_Init(&sc);
        sc.Name = "BENCH_JS";
        sc.Subjects = subj;
        sc.SubjectsLen = 1;
        sc.Storage = js_FileStorage;
        if (s == NATS_OK)
                s = js_AddStream(&si, js, &sc, NULL, &jerr);
        jsStreamInfo_Destroy(si);
        if (s != NATS_OK && jerr == JSStreamNameExistErr)
                s = NATS_OK;
        t0 = now_ns();
        for (uint64_t i = 0; s == NATS_OK && i < n; i++) {
                if (async) {
                        s = js_PublishAsync(js, "bench.js", buf, (int)size, NULL);
                } else {
                        jsPubAck *ack = NULL;

                        s = js_Publish(&ack, js, "bench.js", buf, (int)size, NULL, &jerr);
                        jsPubAck_Destroy(ack);
                }
        }
        if (s == NATS_OK && async)
                s = js_PublishAsyncComplete(js, NULL);
        *t = (struct tput){.what = async ? "js-async" : "js-sync", .size = size, .sent = n, .got = n,
                           .secs = (double)(now_ns() - t0) / 1e9};
        jsCtx_Destroy(js);
        natsConnection_Destroy(nc);
        free(buf);
        if (s != NATS_OK) {
                (void)fprintf(stderr, "zcbus-bridge-bench: JetStream: %s (%d)\n", natsStatus_GetText(s), (int)jerr);
                return -EIO;
        }
        return 0;
}

/* JetStream end to end, the whole of what a reliable topic's bridges do
 * on NATS: n asynchronous publishes to a stream with a Nats-Msg-Id each
 * on one connection, an ordered push consumer (as the receiving bridge
 * has) on another; from the first publish to the last receipt. */
static int js_e2e_tput(const char *url, size_t size, uint64_t n, struct tput *t) {
        natsConnection *pc = NULL, *sc = NULL;
        natsSubscription *sub = NULL;
        jsCtx *pjs = NULL, *sjs = NULL;
        jsStreamConfig cfg;
        jsStreamInfo *si = NULL;
        jsSubOptions so;
        const char *subj[1] = {"bench.e2e"};
        struct nats_count c = {0};
        unsigned char *buf = calloc(1, size);
        uint64_t t0, deadline;
        jsErrCode jerr = 0;
        natsStatus s;

        if (!buf)
                return -ENOMEM;
        s = connect_to(&pc, url, false);
        if (s == NATS_OK)
                s = connect_to(&sc, url, false);
        if (s == NATS_OK)
                s = natsConnection_JetStream(&pjs, pc, NULL);
        if (s == NATS_OK)
                s = natsConnection_JetStream(&sjs, sc, NULL);
        (void)jsStreamConfig_Init(&cfg);
        cfg.Name = "BENCH_E2E";
        cfg.Subjects = subj;
        cfg.SubjectsLen = 1;
        cfg.Storage = js_FileStorage;
        if (s == NATS_OK)
                s = js_AddStream(&si, pjs, &cfg, NULL, &jerr);
        jsStreamInfo_Destroy(si);
        if (s != NATS_OK && jerr == JSStreamNameExistErr)
                s = NATS_OK;
        (void)jsSubOptions_Init(&so);
        so.Stream = "BENCH_E2E";
        so.Ordered = true;
        so.Config.DeliverPolicy = js_DeliverNew;
        if (s == NATS_OK)
                s = js_Subscribe(&sub, sjs, "bench.e2e", nats_count_cb, &c, NULL, &so, &jerr);
        if (s == NATS_OK)
                s = natsSubscription_SetPendingLimits(sub, -1, -1);
        t0 = now_ns();
        for (uint64_t i = 0; s == NATS_OK && i < n; i++) {
                char id[64];
                jsPubOptions po;

                (void)snprintf(id, sizeof(id), "bench:%" PRIu64 ":%" PRIu64, t0, i);
                (void)jsPubOptions_Init(&po);
                po.MsgId = id;
                s = js_PublishAsync(pjs, "bench.e2e", buf, (int)size, &po);
        }
        if (s == NATS_OK)
                s = js_PublishAsyncComplete(pjs, NULL);
        deadline = now_ns() + 60000000000ull;
        while (s == NATS_OK && atomic_load(&c.got) < n && now_ns() < deadline)
                (void)usleep(1000);
        *t = (struct tput){.what = "js-e2e", .size = size, .sent = n, .got = atomic_load(&c.got),
                           .secs = c.got ? (double)(atomic_load(&c.t_last) - t0) / 1e9 : 0};
        natsSubscription_Destroy(sub);
        jsCtx_Destroy(pjs);
        jsCtx_Destroy(sjs);
        natsConnection_Destroy(pc);
        natsConnection_Destroy(sc);
        free(buf);
        if (s != NATS_OK) {
                (void)fprintf(stderr, "zcbus-bridge-bench: JetStream end to end: %s (%d)\n", natsStatus_GetText(s),
                              (int)jerr);
                return -EIO;
        }
        return 0;
}

/* Is what in the comma-separated list only (NULL: everything)? */
static bool want(const char *only, const char *what) {
        size_t n = strlen(what);

        for (const char *p = only; p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
                if (strncmp(p, what, n) == 0 && (p[n] == ',' || p[n] == '\0'))
                        return true;
        return !only;
}

static void print_tput(const struct tput *t, bool json, bool first) {
        double rate = t->secs > 0 ? (double)t->got / t->secs : 0;

        if (json)
                (void)printf("%s{\"transport\":\"%s\",\"size\":%zu,\"sent\":%" PRIu64 ",\"received\":%" PRIu64
                             ",\"msgs_per_s\":%.0f,\"mib_per_s\":%.1f}",
                             first ? "" : ",\n ", t->what, t->size, t->sent, t->got, rate,
                             rate * (double)t->size / 1048576.0);
        else
                (void)printf("%-16s %8zu %9" PRIu64 " %9" PRIu64 " %12.0f %10.1f\n", t->what, t->size, t->sent, t->got,
                             rate, rate * (double)t->size / 1048576.0);
}

static void print(const struct result *r, bool json, bool first) {
        if (json)
                (void)printf("%s{\"transport\":\"%s\",\"size\":%zu,\"n\":%u,\"rtt_us\":{\"p50\":%.1f,\"p90\":%.1f,"
                             "\"p99\":%.1f,\"max\":%.1f}}",
                             first ? "" : ",\n ", r->transport, r->size, r->n, r->p50, r->p90, r->p99, r->max);
        else
                (void)printf("%-8s %8zu %8u %10.1f %10.1f %10.1f %10.1f\n", r->transport, r->size, r->n, r->p50,
                             r->p90, r->p99, r->max);
}

int main(int argc, char **argv) {
        static const struct option longopts[] = {
                {"nats", required_argument, NULL, 'u'},  {"bus-a", required_argument, NULL, 'a'},
                {"bus-b", required_argument, NULL, 'b'}, {"count", required_argument, NULL, 'n'},
                {"size", required_argument, NULL, 's'},  {"warmup", required_argument, NULL, 'w'},
                {"json", no_argument, NULL, 'j'},        {"help", no_argument, NULL, 'h'},
                {"asap", no_argument, NULL, 'A'},
                {"tput", required_argument, NULL, 'T'},
                {"only", required_argument, NULL, 'o'},
                {},
        };
        const char *url = "nats://127.0.0.1:4222", *sock_a = NULL, *sock_b = NULL;
        size_t sizes[8] = {64};
        unsigned nsizes = 1, n = 2000, warmup = 200;
        size_t max_size = 4096; /* the topics' slot size: the largest message */
        bool json = false, first = true, asap = false;
        uint64_t tput_n = 0; /* --tput N: throughput instead of latency */
        const char *only = NULL; /* --only LIST: these throughput runs */
        int c, rc = 0;

        while ((c = getopt_long(argc, argv, "n:h", longopts, NULL)) != -1) {
                switch (c) {
                case 'u':
                        url = optarg;
                        break;
                case 'a':
                        sock_a = optarg;
                        break;
                case 'b':
                        sock_b = optarg;
                        break;
                case 'n':
                        n = (unsigned)strtoul(optarg, NULL, 10);
                        break;
                case 'w':
                        warmup = (unsigned)strtoul(optarg, NULL, 10);
                        break;
                case 's': {
                        char *save = NULL;

                        nsizes = 0;
                        for (char *t = strtok_r(optarg, ",", &save); t && nsizes < 8; t = strtok_r(NULL, ",", &save)) {
                                char *end;
                                size_t v = strtoul(t, &end, 10);

                                if (*end == 'K')
                                        v <<= 10;
                                sizes[nsizes++] = v;
                        }
                        break;
                }
                case 'j':
                        json = true;
                        break;
                case 'A':
                        asap = true;
                        break;
                case 'T':
                        tput_n = strtoull(optarg, NULL, 10);
                        break;
                case 'o':
                        only = optarg;
                        break;
                case 'h':
                        (void)printf("Usage: zcbus-bridge-bench [--nats URL] [--bus-a SOCK --bus-b SOCK] [-n N] "
                                     "[--warmup N] [--size 64,64K] [--asap] [--json]\n"
                                     "  --asap: NATS alone with libnats' SendAsap (as the bridges' send_asap)\n"
                                     "  --tput N: throughput of N messages (reliable and JetStream: N/10)\n"
                                     "  --only LIST: of those, only these (nats-core, js-sync, js-async, js-e2e,\n"
                                     "               bridge-latest, bridge-batch, bridge-reliable; comma-separated)\n"
                                     "  bridge-batch: a latest topic that A's bridge sends with 'batch' (bench.tputb)\n");
                        return 0;
                default:
                        return 2;
                }
        }
        if (n < 2 || nsizes == 0) {
                (void)fprintf(stderr, "zcbus-bridge-bench: -n must be at least 2, --size a list\n");
                return 2;
        }
        for (unsigned i = 0; i < nsizes; i++)
                if (sizes[i] > max_size)
                        max_size = sizes[i];
        if (tput_n) {
                if (json)
                        (void)printf("[");
                else
                        (void)printf("%-16s %8s %9s %9s %12s %10s\n", "WHAT", "SIZE", "SENT", "RECEIVED", "MSGS/S",
                                     "MIB/S");
                for (unsigned i = 0; i < nsizes && rc == 0; i++) {
                        struct tput t;
                        /* At most 256 MiB a run. */
                        uint64_t nn = tput_n < (256u << 20) / sizes[i] ? tput_n : (256u << 20) / sizes[i];

                        if (want(only, "nats-core")) {
                                if (nats_tput(url, asap, sizes[i], nn, &t) < 0)
                                        return 1;
                                print_tput(&t, json, first);
                                first = false;
                        }
                        if (want(only, "js-sync")) {
                                if (js_tput(url, sizes[i], nn / 10, false, &t) < 0)
                                        return 1;
                                print_tput(&t, json, first);
                                first = false;
                        }
                        if (want(only, "js-async")) {
                                if (js_tput(url, sizes[i], nn / 10, true, &t) < 0)
                                        return 1;
                                print_tput(&t, json, first);
                                first = false;
                        }
                        if (want(only, "js-e2e")) {
                                if (js_e2e_tput(url, sizes[i], nn / 10, &t) < 0)
                                        return 1;
                                print_tput(&t, json, first);
                                first = false;
                        }
                        if (sock_a && sock_b && want(only, "bridge-latest")) {
                                if (bus_tput(sock_a, sock_b, "bench.tput", ZCBUS_POLICY_LATEST, sizes[i], max_size, nn, &t) < 0)
                                        return 1;
                                print_tput(&t, json, first);
                                first = false;
                        }
                        if (sock_a && sock_b && want(only, "bridge-batch")) {
                                if (bus_tput(sock_a, sock_b, "bench.tputb", ZCBUS_POLICY_LATEST, sizes[i], max_size, nn, &t) < 0)
                                        return 1;
                                t.what = "bridge-batch";
                                print_tput(&t, json, first);
                                first = false;
                        }
                        if (sock_a && sock_b && want(only, "bridge-reliable")) {
                                if (bus_tput(sock_a, sock_b, "bench.rel", ZCBUS_POLICY_RELIABLE, sizes[i], max_size, nn / 10,
                                             &t) < 0)
                                        return 1;
                                print_tput(&t, json, first);
                                first = false;
                        }
                }
                if (json)
                        (void)printf("]\n");
                nats_Close();
                return rc;
        }
        if (json)
                (void)printf("[");
        else
                (void)printf("%-8s %8s %8s %10s %10s %10s %10s\n", "WHAT", "SIZE", "N", "RTT_P50us", "RTT_P90us",
                             "RTT_P99us", "RTT_MAXus");
        for (unsigned i = 0; i < nsizes && rc == 0; i++) {
                struct result nr, br;

                if (nats_run(url, asap, sizes[i], n, warmup, &nr) < 0) {
                        rc = 1;
                        break;
                }
                print(&nr, json, first);
                first = false;
                if (sock_a && sock_b) {
                        if (bus_run(sock_a, sock_b, sizes[i], max_size, n, warmup, &br) < 0) {
                                rc = 1;
                                break;
                        }
                        print(&br, json, false);
                        if (!json)
                                (void)printf("ratio bridge/nats %zu: p50 %.2f p99 %.2f\n", sizes[i], br.p50 / nr.p50,
                                             br.p99 / nr.p99);
                }
        }
        if (json)
                (void)printf("]\n");
        nats_Close();
        return rc;
}
