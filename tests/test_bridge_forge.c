/* SPDX-License-Identifier: MIT */
/*
 * test_bridge_forge.c: what anyone on a NATS server can do to a bridge,
 * for tests/test_bridge.sh: store one message in a JetStream stream with
 * a Zcbus-Origin header of the caller's choosing (forged), so that the
 * test can drive a receiving bridge with origins, sequences and
 * predecessors no sending bridge would produce.
 *
 *   test_bridge_forge URL SUBJECT ORIGIN PAYLOAD [ORIGIN PAYLOAD]...
 *
 * ORIGIN is the header's whole value ("" for none). Several pairs are
 * stored in order from one connection, within milliseconds. Exits 0 once
 * JetStream acknowledged every message, 1 otherwise.
 */
#include "config.h"

#include <nats/nats.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
        natsConnection *nc = NULL;
        jsCtx *js = NULL;
        natsMsg *m = NULL;
        jsPubAck *ack = NULL;
        jsErrCode jerr = 0;
        natsStatus s;

        if (argc < 5 || (argc - 3) % 2) {
                (void)fprintf(stderr, "usage: test_bridge_forge URL SUBJECT ORIGIN PAYLOAD [ORIGIN PAYLOAD]...\n");
                return 2;
        }
        s = natsConnection_ConnectTo(&nc, argv[1]);
        if (s == NATS_OK)
                s = natsConnection_JetStream(&js, nc, NULL);
        for (int i = 3; s == NATS_OK && i + 1 < argc; i += 2) {
                s = natsMsg_Create(&m, argv[2], NULL, argv[i + 1], (int)strlen(argv[i + 1]));
                if (s == NATS_OK && argv[i][0])
                        s = natsMsgHeader_Set(m, "Zcbus-Origin", argv[i]);
                if (s == NATS_OK)
                        s = js_PublishMsg(&ack, js, m, NULL, &jerr);
                jsPubAck_Destroy(ack);
                ack = NULL;
                natsMsg_Destroy(m);
                m = NULL;
        }
        if (s != NATS_OK)
                (void)fprintf(stderr, "test_bridge_forge: %s (%d)\n", natsStatus_GetText(s), (int)jerr);
        jsCtx_Destroy(js);
        natsConnection_Destroy(nc);
        nats_Close();
        return s == NATS_OK ? 0 : 1;
}
