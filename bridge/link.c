/* SPDX-License-Identifier: MIT */
/*
 * link.c: the bridge's one NATS connection and its JetStream context.
 *
 * The connection uses NoEcho, so the server never hands the bridge its own
 * publications; it reconnects for ever (every 200 ms, through the whole
 * server list), and counts each reconnection. A stream is made on demand,
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

static void on_disconnected(natsConnection *nc, void *closure) {
        struct bridge *b = closure;

        if (!atomic_load(&b->stopping))
                log_msg("NATS connection lost; reconnecting");
}

static void on_reconnected(natsConnection *nc, void *closure) {
        struct bridge *b = closure;
        char url[256];

        STAT_ADD(b, reconnects, 1);
        atomic_store(&errors_said, 0);
        link_server(b, url, sizeof(url));
        log_msg("NATS reconnected to %s", url);
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

int link_connect(struct bridge *b, int timeout_ms) {
        const struct bconf *c = b->conf;
        const char *def = "nats://127.0.0.1:4222";
        natsOptions *o = NULL;
        natsStatus s;
        jsOptions jo;
        char name[128];
        uint64_t deadline = now_ms() + (uint64_t)timeout_ms;

        (void)snprintf(name, sizeof(name), "%s %s", c->name ? c->name : "zcbus-bridge", b->bus_id_str);
        s = natsOptions_Create(&o);
        if (s == NATS_OK)
                s = c->nservers ? natsOptions_SetServers(o, (const char **)c->servers, (int)c->nservers)
                                : natsOptions_SetServers(o, &def, 1);
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
         * default) writes each publish at once instead, a system call per
         * message (zcbus-bridge(1), send_asap). */
        if (s == NATS_OK)
                s = natsOptions_SetSendAsap(o, c->send_asap);
        if (s == NATS_OK)
                s = natsOptions_SetDisconnectedCB(o, on_disconnected, b);
        if (s == NATS_OK)
                s = natsOptions_SetReconnectedCB(o, on_reconnected, b);
        if (s == NATS_OK)
                s = natsOptions_SetErrorHandler(o, on_error, b);
        if (s != NATS_OK) {
                log_msg("NATS options: %s", natsStatus_GetText(s));
                natsOptions_Destroy(o);
                return -EINVAL;
        }
        for (;;) {
                s = natsConnection_Connect(&b->nc, o);
                if (s == NATS_OK || now_ms() >= deadline || atomic_load(&b->stopping))
                        break;
                (void)usleep(100 * 1000);
        }
        natsOptions_Destroy(o);
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
        return 0;
}

void link_close(struct bridge *b) {
        if (b->nc && natsConnection_Status(b->nc) == NATS_CONN_STATUS_CONNECTED)
                (void)natsConnection_FlushTimeout(b->nc, 1000);
        jsCtx_Destroy(b->js);
        b->js = NULL;
        natsConnection_Destroy(b->nc);
        b->nc = NULL;
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
