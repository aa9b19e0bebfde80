/* SPDX-License-Identifier: MIT */
/*
 * proto.c: encoding and decoding of control messages. Encoding is plain
 * memcpy of fixed bodies plus trailing strings; decoding checks every
 * length before the bytes it covers and every value before it is used, so
 * that nothing a peer sends can make us read outside the datagram.
 */
#include "config.h"

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "macro.h"
#include "proto.h"
#include "zcbus.h"

static int enc(void *buf, size_t cap, uint16_t type, uint32_t req_id, const void *body, size_t blen,
               const void *tail, size_t tlen) {
        struct proto_hdr h = {
                .magic = PROTO_MAGIC,
                .version = PROTO_VERSION,
                .type = type,
                .len = (uint32_t)(blen + tlen),
                .req_id = req_id,
        };
        size_t total = sizeof(h) + blen + tlen;

        if (!buf || total > cap || total > PROTO_MSG_MAX)
                return -EMSGSIZE;
        memcpy(buf, &h, sizeof(h));
        if (blen)
                memcpy((uint8_t *)buf + sizeof(h), body, blen);
        if (tlen)
                memcpy((uint8_t *)buf + sizeof(h) + blen, tail, tlen);
        return (int)total;
}

int proto_name_valid(const char *name, size_t len) {
        if (!name || len == 0 || len > PROTO_NAME_MAX)
                return 0;
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char)name[i];
                if (c <= 0x20 || c == 0x7f)
                        return 0;
        }
        return 1;
}

int proto_enc_hello(void *buf, size_t cap, uint32_t req_id) {
        struct proto_hello b = {.client_version = PROTO_VERSION};
        return enc(buf, cap, PROTO_HELLO, req_id, &b, sizeof(b), NULL, 0);
}

int proto_enc_hello_reply(void *buf, size_t cap, uint32_t req_id, const struct proto_hello_reply *r) {
        return enc(buf, cap, PROTO_HELLO_REPLY, req_id, r, sizeof(*r), NULL, 0);
}

static int enc_named(void *buf, size_t cap, uint16_t type, uint32_t req_id, void *body, size_t blen,
                     uint32_t *name_len, const char *name) {
        size_t n;

        if (!name)
                return -EINVAL;
        n = strnlen(name, PROTO_NAME_MAX + 1);
        if (n > PROTO_NAME_MAX)
                return -ENAMETOOLONG;
        if (!proto_name_valid(name, n))
                return -EINVAL;
        *name_len = (uint32_t)n;
        return enc(buf, cap, type, req_id, body, blen, name, n);
}

int proto_enc_open(void *buf, size_t cap, uint32_t req_id, const struct proto_open *o, const char *name) {
        struct proto_open b;

        if (!o)
                return -EINVAL;
        b = *o;
        return enc_named(buf, cap, PROTO_OPEN, req_id, &b, sizeof(b), &b.name_len, name);
}

int proto_enc_adopt(void *buf, size_t cap, uint32_t req_id, const struct proto_adopt *a, const char *name) {
        struct proto_adopt b;

        if (!a)
                return -EINVAL;
        b = *a;
        return enc_named(buf, cap, PROTO_ADOPT, req_id, &b, sizeof(b), &b.name_len, name);
}

int proto_enc_open_reply(void *buf, size_t cap, uint32_t req_id, const struct proto_open_reply *r) {
        return enc(buf, cap, PROTO_OPEN_REPLY, req_id, r, sizeof(*r), NULL, 0);
}

int proto_enc_close(void *buf, size_t cap, uint32_t req_id, const struct proto_close *c) {
        return enc(buf, cap, PROTO_CLOSE, req_id, c, sizeof(*c), NULL, 0);
}

int proto_enc_ok(void *buf, size_t cap, uint32_t req_id) {
        return enc(buf, cap, PROTO_OK, req_id, NULL, 0, NULL, 0);
}

int proto_enc_error(void *buf, size_t cap, uint32_t req_id, int err, const char *msg) {
        struct proto_error b = {.err = err};
        size_t n = msg ? strnlen(msg, PROTO_ERRMSG_MAX) : 0;

        if (err >= 0)
                return -EINVAL;
        b.msg_len = (uint32_t)n;
        return enc(buf, cap, PROTO_ERROR, req_id, &b, sizeof(b), msg, n);
}

int proto_enc_list(void *buf, size_t cap, uint32_t req_id, uint32_t start, uint32_t max) {
        struct proto_list b = {.start = start, .max = max};
        if (max == 0 || max > PROTO_LIST_MAX)
                return -EINVAL;
        return enc(buf, cap, PROTO_LIST, req_id, &b, sizeof(b), NULL, 0);
}

int proto_enc_list_reply(void *buf, size_t cap, uint32_t req_id, uint32_t total,
                         const struct proto_list_entry *entries, uint32_t count) {
        struct proto_list_reply b = {.total = total, .count = count};
        if (count > PROTO_LIST_MAX || (count && !entries))
                return -EINVAL;
        return enc(buf, cap, PROTO_LIST_REPLY, req_id, &b, sizeof(b), entries,
                   (size_t)count * sizeof(*entries));
}

/* A fixed body followed by a topic name (checked like OPEN's). */

int proto_enc_stat(void *buf, size_t cap, uint32_t req_id, uint32_t start, uint32_t max, const char *name) {
        struct proto_stat b = {.start = start, .max = max};

        if (max == 0 || max > PROTO_STAT_MAX)
                return -EINVAL;
        return enc_named(buf, cap, PROTO_STAT, req_id, &b, sizeof(b), &b.name_len, name);
}

int proto_enc_stat_reply(void *buf, size_t cap, uint32_t req_id, const struct proto_stat_reply *r,
                         const struct proto_stat_entry *entries) {
        if (!r || r->count > PROTO_STAT_MAX || r->count > r->total || (r->count && !entries))
                return -EINVAL;
        return enc(buf, cap, PROTO_STAT_REPLY, req_id, r, sizeof(*r), entries,
                   (size_t)r->count * sizeof(*entries));
}

int proto_enc_topic_rm(void *buf, size_t cap, uint32_t req_id, const char *name) {
        struct proto_topic_rm b = {0};

        return enc_named(buf, cap, PROTO_TOPIC_RM, req_id, &b, sizeof(b), &b.name_len, name);
}

int proto_label_valid(const char label[PROTO_LABEL_MAX]) {
        size_t n = strnlen(label, PROTO_LABEL_MAX);

        if (n == PROTO_LABEL_MAX)
                return 0;
        for (size_t i = 0; i < PROTO_LABEL_MAX; i++) {
                unsigned char c = (unsigned char)label[i];
                if (i < n ? c < 0x20 || c >= 0x7f : c != 0)
                        return 0;
        }
        return 1;
}

int proto_counter_name_valid(const char name[PROTO_COUNTER_NAME_MAX]) {
        size_t n = strnlen(name, PROTO_COUNTER_NAME_MAX);

        if (n == 0 || n == PROTO_COUNTER_NAME_MAX)
                return 0;
        for (size_t i = 0; i < PROTO_COUNTER_NAME_MAX; i++) {
                unsigned char c = (unsigned char)name[i];
                bool ok = i < n ? (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                                          c == '_' || c == '.' || c == '-'
                                : c == 0;
                if (!ok)
                        return 0;
        }
        return 1;
}

/* Valid names, none twice (at most PROTO_COUNTERS_MAX: 120 compares). */
static int counters_valid(const struct proto_counter *c, uint32_t n) {
        if (n > PROTO_COUNTERS_MAX)
                return 0;
        for (uint32_t i = 0; i < n; i++) {
                if (!proto_counter_name_valid(c[i].name))
                        return 0;
                for (uint32_t j = 0; j < i; j++)
                        if (memcmp(c[i].name, c[j].name, PROTO_COUNTER_NAME_MAX) == 0)
                                return 0;
        }
        return 1;
}

int proto_enc_info(void *buf, size_t cap, uint32_t req_id, const char *label, const struct proto_counter *counters,
                   uint32_t count) {
        struct proto_info b = {.count = count};
        size_t n = label ? strnlen(label, PROTO_LABEL_MAX) : 0;

        if (n == PROTO_LABEL_MAX || (count && !counters))
                return -EINVAL;
        memcpy(b.label, label ? label : "", n);
        if (!proto_label_valid(b.label) || !counters_valid(counters, count))
                return -EINVAL;
        return enc(buf, cap, PROTO_INFO, req_id, &b, sizeof(b), counters, (size_t)count * sizeof(*counters));
}

int proto_enc_peers(void *buf, size_t cap, uint32_t req_id, uint64_t after, uint32_t max) {
        struct proto_peers b = {.after = after, .max = max};

        if (max == 0 || max > PROTO_PEERS_MAX)
                return -EINVAL;
        return enc(buf, cap, PROTO_PEERS, req_id, &b, sizeof(b), NULL, 0);
}

int proto_enc_peers_reply(void *buf, size_t cap, uint32_t req_id, uint32_t total,
                          const struct proto_peer_entry *entries, uint32_t count) {
        struct proto_peers_reply b = {.total = total, .count = count};

        if (count > PROTO_PEERS_MAX || count > total || (count && !entries))
                return -EINVAL;
        return enc(buf, cap, PROTO_PEERS_REPLY, req_id, &b, sizeof(b), entries, (size_t)count * sizeof(*entries));
}

static int valid_peer_entry(const struct proto_peer_entry *e) {
        static const struct proto_counter zero;
        size_t n = strnlen(e->comm, sizeof(e->comm));

        if (n == sizeof(e->comm) || !proto_label_valid(e->label) || !counters_valid(e->counters, e->ncounters))
                return 0;
        for (uint32_t k = e->ncounters; k < PROTO_COUNTERS_MAX; k++)
                if (memcmp(&e->counters[k], &zero, sizeof(zero)) != 0)
                        return 0;
        return 1;
}

/* Fixed body size of each type; 0 for an unknown type. Types with no body
 * use SIZE_MAX as "exactly empty". */
static size_t body_size(uint16_t type) {
        switch (type) {
        case PROTO_HELLO:
                return sizeof(struct proto_hello);
        case PROTO_HELLO_REPLY:
                return sizeof(struct proto_hello_reply);
        case PROTO_OPEN:
                return sizeof(struct proto_open);
        case PROTO_OPEN_REPLY:
                return sizeof(struct proto_open_reply);
        case PROTO_CLOSE:
                return sizeof(struct proto_close);
        case PROTO_OK:
                return SIZE_MAX;
        case PROTO_ERROR:
                return sizeof(struct proto_error);
        case PROTO_LIST:
                return sizeof(struct proto_list);
        case PROTO_LIST_REPLY:
                return sizeof(struct proto_list_reply);
        case PROTO_ADOPT:
                return sizeof(struct proto_adopt);
        case PROTO_STAT:
                return sizeof(struct proto_stat);
        case PROTO_STAT_REPLY:
                return sizeof(struct proto_stat_reply);
        case PROTO_TOPIC_RM:
                return sizeof(struct proto_topic_rm);
        case PROTO_INFO:
                return sizeof(struct proto_info);
        case PROTO_PEERS:
                return sizeof(struct proto_peers);
        case PROTO_PEERS_REPLY:
                return sizeof(struct proto_peers_reply);
        default:
                return 0;
        }
}

static int valid_role(uint32_t r) {
        return r == PROTO_ROLE_PUB || r == PROTO_ROLE_SUB;
}

/* A trailing name of name_len bytes that must be the whole tail. */
static int take_name(const uint8_t *tail_p, size_t tail, uint32_t name_len, char *name) {
        if (name_len == 0 || name_len > PROTO_NAME_MAX || name_len != tail)
                return -EBADMSG;
        if (!proto_name_valid((const char *)tail_p, tail))
                return -EBADMSG;
        memcpy(name, tail_p, tail);
        name[tail] = 0;
        return 0;
}

static int valid_stat_entry(const struct proto_stat_entry *e, uint32_t policy) {
        size_t n = strnlen(e->comm, sizeof(e->comm));

        if (n == sizeof(e->comm) || !valid_role(e->role) || e->state == 0 || e->state > PROTO_ENTRY_STATE_MAX_ ||
            (e->flags & ~(uint32_t)PROTO_ENTRY_FLAGS_) || e->table >= PROTO_FDS_MAX - 1)
                return 0;
        /* Only a reliable topic's subscriber gates. */
        if ((e->flags & PROTO_ENTRY_GATING) && (e->role != PROTO_ROLE_SUB || policy != ZCBUS_POLICY_RELIABLE))
                return 0;
        return 1;
}

int proto_decode(const void *buf, size_t len, struct proto_msg *ret) {
        const uint8_t *p = buf;
        struct proto_msg m;
        size_t fixed, blen, tail;
        const uint8_t *body;

        if (!buf || !ret || len < sizeof(struct proto_hdr) || len > PROTO_MSG_MAX)
                return -EBADMSG;
        memset(&m, 0, sizeof(m));
        memcpy(&m.hdr, p, sizeof(m.hdr));
        if (m.hdr.magic != PROTO_MAGIC)
                return -EBADMSG;
        if (m.hdr.version != PROTO_VERSION)
                return -EPROTO;
        if ((size_t)m.hdr.len != len - sizeof(struct proto_hdr))
                return -EBADMSG;
        fixed = body_size(m.hdr.type);
        if (fixed == 0)
                return -EBADMSG;
        blen = m.hdr.len;
        body = p + sizeof(struct proto_hdr);
        if (fixed == SIZE_MAX) {
                if (blen != 0)
                        return -EBADMSG;
                *ret = m;
                return 0;
        }
        if (blen < fixed)
                return -EBADMSG;
        memcpy(&m.u, body, fixed);
        tail = blen - fixed;

        switch (m.hdr.type) {
        case PROTO_HELLO:
                if (tail || m.u.hello.flags)
                        return -EBADMSG;
                break;
        case PROTO_HELLO_REPLY:
        case PROTO_OPEN_REPLY:
                if (tail)
                        return -EBADMSG;
                if (m.hdr.type == PROTO_OPEN_REPLY &&
                    (m.u.open_reply.policy < ZCBUS_POLICY_RELIABLE || m.u.open_reply.policy > ZCBUS_POLICY_LATEST ||
                     m.u.open_reply.ntables == 0 || m.u.open_reply.ntables > PROTO_FDS_MAX - 1 ||
                     m.u.open_reply.table >= PROTO_FDS_MAX - 1))
                        return -EBADMSG;
                break;
        case PROTO_OPEN: {
                const struct proto_open *o = &m.u.open;
                if (!valid_role(o->role) || o->flags || o->reserved || o->policy > ZCBUS_POLICY_LATEST)
                        return -EBADMSG;
                if (o->name_len == 0 || o->name_len > PROTO_NAME_MAX || o->name_len != tail)
                        return -EBADMSG;
                if (!proto_name_valid((const char *)body + fixed, tail))
                        return -EBADMSG;
                memcpy(m.name, body + fixed, tail);
                m.name[tail] = 0;
                break;
        }
        case PROTO_CLOSE:
                if (tail || !valid_role(m.u.close.role))
                        return -EBADMSG;
                break;
        case PROTO_ADOPT: {
                const struct proto_adopt *a = &m.u.adopt;
                if (!valid_role(a->role) || a->flags || a->reserved || a->ntables == 0 ||
                    a->ntables > PROTO_FDS_MAX - 1 || a->table >= PROTO_FDS_MAX - 1)
                        return -EBADMSG;
                if (a->name_len == 0 || a->name_len > PROTO_NAME_MAX || a->name_len != tail)
                        return -EBADMSG;
                if (!proto_name_valid((const char *)body + fixed, tail))
                        return -EBADMSG;
                memcpy(m.name, body + fixed, tail);
                m.name[tail] = 0;
                break;
        }
        case PROTO_ERROR:
                if (m.u.error.err >= 0 || m.u.error.err < -4095)
                        return -EBADMSG;
                if (m.u.error.msg_len > PROTO_ERRMSG_MAX || m.u.error.msg_len != tail)
                        return -EBADMSG;
                memcpy(m.errmsg, body + fixed, tail);
                m.errmsg[tail] = 0;
                if (strlen(m.errmsg) != tail) /* NUL inside */
                        return -EBADMSG;
                break;
        case PROTO_LIST:
                if (tail || m.u.list.max == 0 || m.u.list.max > PROTO_LIST_MAX)
                        return -EBADMSG;
                break;
        case PROTO_LIST_REPLY: {
                uint32_t c = m.u.list_reply.count;
                if (c > PROTO_LIST_MAX || c > m.u.list_reply.total ||
                    tail != (size_t)c * sizeof(struct proto_list_entry))
                        return -EBADMSG;
                m.entries = c ? (const struct proto_list_entry *)(body + fixed) : NULL;
                for (uint32_t i = 0; i < c; i++) {
                        const struct proto_list_entry *e = &m.entries[i];
                        size_t n = strnlen(e->name, sizeof(e->name));
                        if (n == sizeof(e->name) || !proto_name_valid(e->name, n))
                                return -EBADMSG;
                }
                break;
        }
        case PROTO_STAT:
                if (m.u.stat.flags || m.u.stat.max == 0 || m.u.stat.max > PROTO_STAT_MAX ||
                    take_name(body + fixed, tail, m.u.stat.name_len, m.name) < 0)
                        return -EBADMSG;
                break;
        case PROTO_TOPIC_RM:
                if (m.u.topic_rm.flags || take_name(body + fixed, tail, m.u.topic_rm.name_len, m.name) < 0)
                        return -EBADMSG;
                break;
        case PROTO_STAT_REPLY: {
                const struct proto_stat_reply *s = &m.u.stat_reply;
                uint32_t c = s->count;
                if (s->policy < ZCBUS_POLICY_RELIABLE || s->policy > ZCBUS_POLICY_LATEST ||
                    (s->flags & ~(uint32_t)PROTO_STAT_FLAGS_) || c > PROTO_STAT_MAX || c > s->total ||
                    tail != (size_t)c * sizeof(struct proto_stat_entry))
                        return -EBADMSG;
                m.stat_entries = c ? (const struct proto_stat_entry *)(body + fixed) : NULL;
                for (uint32_t i = 0; i < c; i++)
                        if (!valid_stat_entry(&m.stat_entries[i], s->policy))
                                return -EBADMSG;
                break;
        }
        case PROTO_INFO: {
                uint32_t c = m.u.info.count;
                if (m.u.info.flags || c > PROTO_COUNTERS_MAX || tail != (size_t)c * sizeof(struct proto_counter) ||
                    !proto_label_valid(m.u.info.label))
                        return -EBADMSG;
                m.counters = c ? (const struct proto_counter *)(body + fixed) : NULL;
                if (!counters_valid(m.counters, c))
                        return -EBADMSG;
                break;
        }
        case PROTO_PEERS:
                if (tail || m.u.peers.flags || m.u.peers.max == 0 || m.u.peers.max > PROTO_PEERS_MAX)
                        return -EBADMSG;
                break;
        case PROTO_PEERS_REPLY: {
                uint32_t c = m.u.peers_reply.count;
                if (c > PROTO_PEERS_MAX || c > m.u.peers_reply.total ||
                    tail != (size_t)c * sizeof(struct proto_peer_entry))
                        return -EBADMSG;
                m.peer_entries = c ? (const struct proto_peer_entry *)(body + fixed) : NULL;
                for (uint32_t i = 0; i < c; i++)
                        if (!valid_peer_entry(&m.peer_entries[i]) || m.peer_entries[i].serial == 0 ||
                            (i && m.peer_entries[i].serial <= m.peer_entries[i - 1].serial))
                                return -EBADMSG;
                break;
        }
        default:
                return -EBADMSG;
        }
        *ret = m;
        return 0;
}

const char *proto_type_name(uint16_t type) {
        static const char *const names[] = {
                [PROTO_HELLO] = "HELLO",       [PROTO_HELLO_REPLY] = "HELLO_REPLY",
                [PROTO_OPEN] = "OPEN",         [PROTO_OPEN_REPLY] = "OPEN_REPLY",
                [PROTO_CLOSE] = "CLOSE",       [PROTO_OK] = "OK",
                [PROTO_ERROR] = "ERROR",       [PROTO_LIST] = "LIST",
                [PROTO_LIST_REPLY] = "LIST_REPLY", [PROTO_ADOPT] = "ADOPT",
                [PROTO_STAT] = "STAT",         [PROTO_STAT_REPLY] = "STAT_REPLY",
                [PROTO_TOPIC_RM] = "TOPIC_RM", [PROTO_INFO] = "INFO",
                [PROTO_PEERS] = "PEERS",       [PROTO_PEERS_REPLY] = "PEERS_REPLY",
        };
        if (type < ARRAY_SIZE(names) && names[type])
                return names[type];
        return "UNKNOWN";
}

uint32_t proto_peek_req_id(const void *buf, size_t len) {
        uint32_t id = 0;

        if (buf && len >= sizeof(struct proto_hdr))
                memcpy(&id, (const uint8_t *)buf + offsetof(struct proto_hdr, req_id), sizeof(id));
        return id;
}

static_assert(sizeof(struct proto_stat) == 16, "STAT body");
static_assert(sizeof(struct proto_stat_reply) == 120, "STAT_REPLY body");
static_assert(sizeof(struct proto_stat_entry) == 128, "STAT entry");
static_assert(sizeof(struct proto_stat_reply) + PROTO_STAT_MAX * sizeof(struct proto_stat_entry) +
                      sizeof(struct proto_hdr) <= PROTO_MSG_MAX,
              "a full STAT page fits one datagram");
static_assert(sizeof(struct proto_info) == 72, "INFO body");
static_assert(sizeof(struct proto_counter) == 32, "counter");
static_assert(sizeof(struct proto_peer_entry) == 640, "PEERS entry");
static_assert(sizeof(struct proto_peers_reply) + PROTO_PEERS_MAX * sizeof(struct proto_peer_entry) +
                      sizeof(struct proto_hdr) <= PROTO_MSG_MAX,
              "a full PEERS page fits one datagram");
static_assert(sizeof(struct proto_info) + PROTO_COUNTERS_MAX * sizeof(struct proto_counter) +
                      sizeof(struct proto_hdr) <= PROTO_MSG_MAX,
              "a full INFO fits one datagram");
