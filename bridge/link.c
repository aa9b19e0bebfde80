/* SPDX-License-Identifier: MIT */
/*
 * link.c: the bridge's NATS connections and its JetStream context.
 *
 * The main connection carries subscriptions, core publishes and stream
 * management. When there are "out" routes, a second one carries the
 * pipelined JetStream publishes of reliable topics (out.c) and their
 * acks, so that a burst of them goes out corked, in a write per burst
 * (natsio.h), and never waits behind core traffic. It starts on
 * the server the main one is connected to, then goes through the list.
 * Both use NoEcho, so the server never hands a connection its own
 * publications (one of the publishing connection's reaching a subscription
 * of the main one is dropped as a loop by its origin); both reconnect for
 * ever (every 200 ms, through the whole server list); reconnections of
 * the main one are counted. A stream is made on demand,
 * by whichever side of a reliable topic comes first, with one config that
 * both derive from the subject, so "already exists" is success.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "bridge.h"
#include "util.h"

static _Atomic uint64_t errors_said; /* on_error: a bit per natsStatus below 64 */

static const char *conn_name(struct bridge *b, natsConnection *nc) {
        return nc == b->nc ? "NATS connection" : "NATS connection for JetStream publishes";
}

static void on_disconnected(natsConnection *nc, void *closure) {
        struct bridge *b = closure;

        if (!atomic_load(&b->stopping))
                log_msg("%s lost; reconnecting", conn_name(b, nc));
}

static void on_reconnected(natsConnection *nc, void *closure) {
        struct bridge *b = closure;
        char url[256] = "";

        if (nc == b->nc)
                STAT_ADD(b, reconnects, 1);
        atomic_store(&errors_said, 0);
        (void)natsConnection_GetConnectedUrl(nc, url, sizeof(url));
        log_msg("%s reconnected to %s", conn_name(b, nc), url);
}

/* Each kind of asynchronous error is logged once until the next
 * reconnection (a dead cluster reports missed heartbeats and timeouts
 * every second). Slow consumers are counted from the subscriptions. */
static void on_error(natsConnection *nc, natsSubscription *sub, natsStatus err, void *closure) {
        uint64_t bit = (unsigned)err < 64 ? 1ull << (unsigned)err : 0;

        if (err == NATS_SLOW_CONSUMER || (atomic_fetch_or(&errors_said, bit) & bit))
                return;
        log_msg("NATS: %s (said once until reconnected)", natsStatus_GetText(err));
}

/* The options of a connection: servers (first, if not NULL, then the
 * config's), asap: SendAsap, driven by a natsio of its own (*io). */
static natsStatus make_opts(struct bridge *b, const char *first, bool asap, struct natsio **io, natsOptions **ret) {
        const struct bconf *c = b->conf;
        const char *def = "nats://127.0.0.1:4222";
        const char *servers[BCONF_SERVERS_MAX + 1];
        natsOptions *o = NULL;
        char name[128];
        int n = 0;
        natsStatus s;

        if (first)
                servers[n++] = first;
        for (unsigned i = 0; i < c->nservers; i++)
                servers[n++] = c->servers[i];
        if (c->nservers == 0)
                servers[n++] = def;
        (void)snprintf(name, sizeof(name), "%s %s%s", c->name ? c->name : "zcbus-bridge", b->bus_id_str,
                       first ? " (publishing)" : "");
        s = natsOptions_Create(&o);
        if (s == NATS_OK)
                s = natsOptions_SetServers(o, servers, n);
        if (s == NATS_OK && first)
                s = natsOptions_SetNoRandomize(o, true); /* the main one's server first */
        if (s == NATS_OK)
                s = natsOptions_SetName(o, name);
        if (s == NATS_OK)
                s = natsOptions_SetNoEcho(o, true);
        if (s == NATS_OK)
                s = natsOptions_SetMaxReconnect(o, -1);
        if (s == NATS_OK)
                s = natsOptions_SetReconnectWait(o, 200);
        if (s == NATS_OK)
                s = natsOptions_SetTimeout(o, 2000);
        /* libnats batches publishes for its flusher thread, which sleeps
         * 1 ms before each write: a millisecond per hop. send_asap (the
         * default) writes at once instead, a burst corked into one write
         * (natsio.h; zcbus-bridge(1), send_asap). */
        if (s == NATS_OK)
                s = natsOptions_SetSendAsap(o, asap);
        if (s == NATS_OK && asap && natsio_new(o, io) < 0)
                s = NATS_NO_MEMORY;
        /* Reads and the write buffer in pieces of 256 KiB, not libnats's
         * 32: a 64 KiB message is then one read, not three and a copy. */
        if (s == NATS_OK)
                s = natsOptions_SetIOBufSize(o, 256 << 10);
        if (s == NATS_OK)
                s = natsOptions_SetDisconnectedCB(o, on_disconnected, b);
        if (s == NATS_OK)
                s = natsOptions_SetReconnectedCB(o, on_reconnected, b);
        if (s == NATS_OK)
                s = natsOptions_SetErrorHandler(o, on_error, b);
        if (s != NATS_OK) {
                natsOptions_Destroy(o);
                return s;
        }
        *ret = o;
        return NATS_OK;
}

/* Connect with o (destroyed after), every 100 ms until deadline_ms. */
static natsStatus connect_until(struct bridge *b, natsConnection **nc, natsOptions *o, uint64_t deadline_ms) {
        natsStatus s;

        for (;;) {
                s = natsConnection_Connect(nc, o);
                if (s == NATS_OK || now_ms() >= deadline_ms || atomic_load(&b->stopping))
                        break;
                (void)usleep(100 * 1000);
        }
        natsOptions_Destroy(o);
        return s;
}

int link_connect(struct bridge *b, int timeout_ms) {
        const struct bconf *c = b->conf;
        const char *def = "nats://127.0.0.1:4222";
        natsOptions *o = NULL;
        natsStatus s;
        jsOptions jo;
        char url[256];
        uint64_t deadline = now_ms() + (uint64_t)timeout_ms;

        s = make_opts(b, NULL, c->send_asap, &b->nio, &o);
        if (s != NATS_OK) {
                log_msg("NATS options: %s", natsStatus_GetText(s));
                return -EINVAL;
        }
        s = connect_until(b, &b->nc, o, deadline);
        if (s != NATS_OK) {
                log_msg("cannot connect to NATS (%s%s): %s", c->nservers ? c->servers[0] : def,
                        c->nservers > 1 ? ", ..." : "", natsStatus_GetText(s));
                return -ECONNREFUSED;
        }
        b->max_payload = (int)natsConnection_GetMaxPayload(b->nc);
        (void)jsOptions_Init(&jo);
        jo.Wait = 2000;
        s = natsConnection_JetStream(&b->js, b->nc, &jo);
        if (s != NATS_OK) {
                log_msg("NATS JetStream context: %s", natsStatus_GetText(s));
                return -EINVAL;
        }
        if (c->nout == 0)
                return 0;
        link_server(b, url, sizeof(url));
        s = make_opts(b, url[0] ? url : NULL, c->send_asap, &b->pnio, &o);
        if (s == NATS_OK)
                s = connect_until(b, &b->pnc, o, deadline);
        if (s != NATS_OK) {
                log_msg("cannot make the NATS connection for JetStream publishes: %s", natsStatus_GetText(s));
                return -ECONNREFUSED;
        }
        return 0;
}

void link_close(struct bridge *b) {
        if (b->pnc && natsConnection_Status(b->pnc) == NATS_CONN_STATUS_CONNECTED)
                (void)natsConnection_FlushTimeout(b->pnc, 1000);
        natsConnection_Destroy(b->pnc);
        b->pnc = NULL;
        natsio_free(b->pnio);
        b->pnio = NULL;
        if (b->nc && natsConnection_Status(b->nc) == NATS_CONN_STATUS_CONNECTED)
                (void)natsConnection_FlushTimeout(b->nc, 1000);
        jsCtx_Destroy(b->js);
        b->js = NULL;
        natsConnection_Destroy(b->nc);
        b->nc = NULL;
        natsio_free(b->nio); /* after the connection: its detach ended the thread */
        b->nio = NULL;
}

void link_server(struct bridge *b, char *buf, size_t len) {
        if (len == 0)
                return;
        buf[0] = '\0';
        if (!b->nc || natsConnection_GetConnectedUrl(b->nc, buf, len) != NATS_OK)
                buf[0] = '\0';
}

int link_ensure_stream(struct bridge *b, const char *stream, const char *subject, uint64_t deadline_ms) {
        const struct bconf *c = b->conf;
        const char *subjects[1] = {subject};
        jsStreamConfig sc;
        bool said = false;

        for (;;) {
                jsStreamInfo *si = NULL;
                jsErrCode jerr = 0;
                natsStatus s;

                (void)jsStreamConfig_Init(&sc);
                sc.Name = stream;
                sc.Subjects = subjects;
                sc.SubjectsLen = 1;
                sc.Storage = js_FileStorage;
                sc.Replicas = c->replicas;
                sc.Duplicates = (int64_t)c->dup_window_ms * 1000000;
                sc.MaxAge = (int64_t)c->max_age_s * 1000000000;
                s = js_AddStream(&si, b->js, &sc, NULL, &jerr);
                jsStreamInfo_Destroy(si);
                if (s == NATS_OK || jerr == JSStreamNameExistErr) {
                        if (said)
                                log_msg("stream %s for '%s' is ready", stream, subject);
                        return 0;
                }
                if (now_ms() >= deadline_ms || atomic_load(&b->stopping)) {
                        log_msg("cannot create JetStream stream %s for '%s': %s (error %d)", stream, subject,
                                natsStatus_GetText(s), (int)jerr);
                        return -EIO;
                }
                if (!said)
                        log_debug("stream %s: %s (error %d); JetStream not ready yet, retrying", stream,
                                  natsStatus_GetText(s), (int)jerr);
                said = true;
                (void)usleep(200 * 1000);
        }
}
