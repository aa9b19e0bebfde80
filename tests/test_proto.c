/* SPDX-License-Identifier: MIT */
/*
 * test_proto.c: Check suite "proto", the control protocol codec.
 *
 * Every message type survives encode + decode unchanged; every kind of
 * malformed datagram is refused with -EBADMSG (-EPROTO for a version we do
 * not speak); and a seeded fuzz loop shows that proto_decode, fed any bytes
 * at all, reads only inside them (each input sits in its own heap block of
 * exactly its length, so ASan sees a one-byte over-read) and answers only
 * 0, -EBADMSG or -EPROTO, with a message that keeps its invariants.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h" /* FAST_CHECK, RUN_SUITE */
#include "proto.h"
#include "zcbus.h"

#define HDR sizeof(struct proto_hdr)

/* Decode from a heap copy of exactly len bytes (ASan catches over-reads). */
static int decode_exact(const void *buf, size_t len, struct proto_msg *m) {
        uint8_t *c = malloc(len ? len : 1);
        struct proto_msg tmp;
        int r;

        ck_assert_ptr_nonnull(c);
        if (len)
                memcpy(c, buf, len);
        r = proto_decode(c, len, m ? m : &tmp);
        free(c);
        return r;
}

/* An encoder's result n: exactly want_len bytes that decode, as a message
 * of the given type, into *m. */
static void check_encoded(const uint8_t *buf, int n, size_t want_len, uint16_t type, struct proto_msg *m) {
        ck_assert_int_eq(n, (int)want_len);
        ck_assert_int_eq(decode_exact(buf, (size_t)n, m), 0);
        ck_assert_uint_eq(m->hdr.type, type);
}

/* Assemble header + body by hand; hdr.len = blen unless told otherwise. */
static size_t raw_msg(uint8_t *buf, uint16_t type, const void *body, size_t blen) {
        struct proto_hdr h = {
                .magic = PROTO_MAGIC,
                .version = PROTO_VERSION,
                .type = type,
                .len = (uint32_t)blen,
                .req_id = 7,
        };
        memcpy(buf, &h, HDR);
        if (blen)
                memcpy(buf + HDR, body, blen);
        return HDR + blen;
}

static void set_hdr_len(uint8_t *buf, uint32_t len) {
        memcpy(buf + offsetof(struct proto_hdr, len), &len, sizeof(len));
}

/* The body of an OPEN with a given name (name bytes copied verbatim). */
static size_t open_body(uint8_t *body, uint32_t role, uint32_t policy, uint32_t flags, uint32_t name_len,
                        const void *name, size_t name_bytes) {
        struct proto_open o = {
                .role = role,
                .policy = policy,
                .slot_count = 64,
                .slot_size = 256,
                .flags = flags,
                .name_len = name_len,
        };
        memcpy(body, &o, sizeof(o));
        memcpy(body + sizeof(o), name, name_bytes);
        return sizeof(o) + name_bytes;
}

static int decode_open(uint32_t role, uint32_t policy, uint32_t flags, uint32_t name_len, const void *name,
                       size_t name_bytes) {
        uint8_t body[1024], buf[1100];
        size_t bl = open_body(body, role, policy, flags, name_len, name, name_bytes);
        size_t n = raw_msg(buf, PROTO_OPEN, body, bl);
        return decode_exact(buf, n, NULL);
}

static struct proto_list_entry entry(const char *name, uint32_t i) {
        struct proto_list_entry e;
        memset(&e, 0, sizeof(e));
        strcpy(e.name, name);
        for (int k = 0; k < 16; k++)
                e.topic_id[k] = (uint8_t)(i * 16 + (uint32_t)k);
        e.slot_count = 1u << (i % 20 + 1);
        e.slot_size = 64 + i;
        e.policy = ZCBUS_POLICY_RELIABLE + i % 2;
        e.producers = i;
        e.subscribers = 2 * i;
        e.published = UINT64_C(1) << 40 | i;
        return e;
}

/* ------------------------------------------------------------ round trips */

START_TEST(test_hello_round_trips) {
        uint8_t buf[PROTO_MSG_MAX];
        struct proto_msg m;
        int n = proto_enc_hello(buf, sizeof(buf), 0xdeadbeef);

        ck_assert_int_eq(n, (int)(HDR + sizeof(struct proto_hello)));
        ck_assert_int_eq(decode_exact(buf, (size_t)n, &m), 0);
        ck_assert_uint_eq(m.hdr.magic, PROTO_MAGIC);
        ck_assert_uint_eq(m.hdr.version, PROTO_VERSION);
        ck_assert_uint_eq(m.hdr.type, PROTO_HELLO);
        ck_assert_uint_eq(m.hdr.len, sizeof(struct proto_hello));
        ck_assert_uint_eq(m.hdr.req_id, 0xdeadbeef);
        ck_assert_uint_eq(m.u.hello.client_version, PROTO_VERSION);
        ck_assert_uint_eq(m.u.hello.flags, 0);
        ck_assert_str_eq(proto_type_name(PROTO_HELLO), "HELLO");
}
END_TEST

START_TEST(test_hello_reply_round_trips) {
        uint8_t buf[PROTO_MSG_MAX];
        struct proto_msg m;
        struct proto_hello_reply r = {.broker_version = PROTO_VERSION, .max_topics = 4096};
        for (int i = 0; i < 16; i++)
                r.session_id[i] = (uint8_t)(0xa0 + i);
        int n = proto_enc_hello_reply(buf, sizeof(buf), 1, &r);

        check_encoded(buf, n, HDR + sizeof(r), PROTO_HELLO_REPLY, &m);
        ck_assert_uint_eq(m.hdr.req_id, 1);
        ck_assert_mem_eq(m.u.hello_reply.session_id, r.session_id, 16);
        ck_assert_uint_eq(m.u.hello_reply.broker_version, PROTO_VERSION);
        ck_assert_uint_eq(m.u.hello_reply.max_topics, 4096);
}
END_TEST

START_TEST(test_open_round_trips_for_every_role_policy_and_name_length) {
        static const uint32_t roles[] = {PROTO_ROLE_PUB, PROTO_ROLE_SUB};
        static const uint32_t policies[] = {ZCBUS_POLICY_DEFAULT, ZCBUS_POLICY_RELIABLE, ZCBUS_POLICY_LATEST};
        char longest[PROTO_NAME_MAX + 1];
        const char *names[] = {"a", "camera/front-left.raw", "~!@#$%^&*()_+{}|:\"<>?`-=[]\\;',./", longest};

        memset(longest, 'x', PROTO_NAME_MAX);
        longest[PROTO_NAME_MAX] = '\0';
        for (size_t ri = 0; ri < 2; ri++)
                for (size_t pi = 0; pi < 3; pi++)
                        for (size_t ni = 0; ni < 4; ni++) {
                                uint8_t buf[PROTO_MSG_MAX];
                                struct proto_msg m;
                                struct proto_open o = {
                                        .role = roles[ri],
                                        .policy = policies[pi],
                                        .slot_count = 1024,
                                        .slot_size = 1u << 20,
                                        .name_len = 9999, /* the encoder sets it */
                                };
                                size_t nl = strlen(names[ni]);
                                int n = proto_enc_open(buf, sizeof(buf), 42, &o, names[ni]);
                                check_encoded(buf, n, HDR + sizeof(o) + nl, PROTO_OPEN, &m);
                                ck_assert_uint_eq(m.hdr.req_id, 42);
                                ck_assert_uint_eq(m.u.open.role, roles[ri]);
                                ck_assert_uint_eq(m.u.open.policy, policies[pi]);
                                ck_assert_uint_eq(m.u.open.slot_count, 1024);
                                ck_assert_uint_eq(m.u.open.slot_size, 1u << 20);
                                ck_assert_uint_eq(m.u.open.flags, 0);
                                ck_assert_uint_eq(m.u.open.name_len, nl);
                                ck_assert_str_eq(m.name, names[ni]);
                        }
}
END_TEST

START_TEST(test_open_reply_round_trips) {
        uint8_t buf[PROTO_MSG_MAX];
        struct proto_msg m;
        struct proto_open_reply r = {
                .slot_count = 1u << 24,
                .slot_size = 1u << 30,
                .policy = ZCBUS_POLICY_LATEST,
                .index = 4095,
                .table = PROTO_FDS_MAX - 2,
                .ntables = PROTO_FDS_MAX - 1,
                .start = UINT64_C(1) << 62,
                .ring_size = UINT64_C(1) << 40,
                .subs_size = 4096,
        };
        for (int i = 0; i < 16; i++) {
                r.topic_id[i] = (uint8_t)i;
                r.segment_id[i] = (uint8_t)(255 - i);
        }
        int n = proto_enc_open_reply(buf, sizeof(buf), 3, &r);

        check_encoded(buf, n, HDR + sizeof(r), PROTO_OPEN_REPLY, &m);
        ck_assert_mem_eq(&m.u.open_reply, &r, sizeof(r));
}
END_TEST

START_TEST(test_close_round_trips) {
        uint8_t buf[PROTO_MSG_MAX];
        struct proto_msg m;
        struct proto_close c = {.role = PROTO_ROLE_SUB, .index = 17};
        memset(c.topic_id, 0x5a, 16);
        int n = proto_enc_close(buf, sizeof(buf), 9, &c);

        check_encoded(buf, n, HDR + sizeof(c), PROTO_CLOSE, &m);
        ck_assert_mem_eq(&m.u.close, &c, sizeof(c));
}
END_TEST

START_TEST(test_ok_round_trips) {
        uint8_t buf[PROTO_MSG_MAX];
        struct proto_msg m;
        int n = proto_enc_ok(buf, sizeof(buf), 77);

        check_encoded(buf, n, HDR, PROTO_OK, &m);
        ck_assert_uint_eq(m.hdr.len, 0);
        ck_assert_uint_eq(m.hdr.req_id, 77);
}
END_TEST

START_TEST(test_error_round_trips_with_and_without_text) {
        uint8_t buf[PROTO_MSG_MAX];
        struct proto_msg m;
        int n;

        n = proto_enc_error(buf, sizeof(buf), 5, -EEXIST, "topic \"cam\" exists with slot_size 64");
        ck_assert_int_gt(n, (int)HDR);
        ck_assert_int_eq(decode_exact(buf, (size_t)n, &m), 0);
        ck_assert_uint_eq(m.hdr.type, PROTO_ERROR);
        ck_assert_int_eq(m.u.error.err, -EEXIST);
        ck_assert_str_eq(m.errmsg, "topic \"cam\" exists with slot_size 64");

        n = proto_enc_error(buf, sizeof(buf), 5, -EPERM, NULL);
        ck_assert_int_eq(n, (int)(HDR + sizeof(struct proto_error)));
        ck_assert_int_eq(decode_exact(buf, (size_t)n, &m), 0);
        ck_assert_int_eq(m.u.error.err, -EPERM);
        ck_assert_str_eq(m.errmsg, "");

        /* A text longer than the protocol allows is cut, never sent long. */
        char longmsg[PROTO_ERRMSG_MAX * 2];
        memset(longmsg, 'e', sizeof(longmsg) - 1);
        longmsg[sizeof(longmsg) - 1] = '\0';
        n = proto_enc_error(buf, sizeof(buf), 5, -EINVAL, longmsg);
        ck_assert_int_eq(n, (int)(HDR + sizeof(struct proto_error) + PROTO_ERRMSG_MAX));
        ck_assert_int_eq(decode_exact(buf, (size_t)n, &m), 0);
        ck_assert_uint_eq(strlen(m.errmsg), PROTO_ERRMSG_MAX);
}
END_TEST

START_TEST(test_list_round_trips) {
        uint8_t buf[PROTO_MSG_MAX];
        struct proto_msg m;
        int n = proto_enc_list(buf, sizeof(buf), 11, 128, PROTO_LIST_MAX);

        check_encoded(buf, n, HDR + sizeof(struct proto_list), PROTO_LIST, &m);
        ck_assert_uint_eq(m.u.list.start, 128);
        ck_assert_uint_eq(m.u.list.max, PROTO_LIST_MAX);
}
END_TEST

START_TEST(test_list_reply_round_trips_for_zero_one_and_max_entries) {
        static struct proto_list_entry es[PROTO_LIST_MAX];
        static const uint32_t counts[] = {0, 1, PROTO_LIST_MAX};
        char name[32];

        for (uint32_t i = 0; i < PROTO_LIST_MAX; i++) {
                snprintf(name, sizeof(name), "topic.%u", i);
                es[i] = entry(name, i);
        }
        for (size_t k = 0; k < 3; k++) {
                uint8_t *buf = malloc(PROTO_MSG_MAX);
                struct proto_msg m;
                uint32_t c = counts[k];
                int n = proto_enc_list_reply(buf, PROTO_MSG_MAX, 12, 1000, es, c);

                ck_assert_int_eq(n, (int)(HDR + sizeof(struct proto_list_reply) + c * sizeof(es[0])));
                /* Decode in place: entries point into the buffer. */
                ck_assert_int_eq(proto_decode(buf, (size_t)n, &m), 0);
                ck_assert_uint_eq(m.hdr.type, PROTO_LIST_REPLY);
                ck_assert_uint_eq(m.u.list_reply.total, 1000);
                ck_assert_uint_eq(m.u.list_reply.count, c);
                if (c) {
                        ck_assert_ptr_nonnull(m.entries);
                        ck_assert_ptr_eq((const void *)m.entries, buf + HDR + sizeof(struct proto_list_reply));
                }
                for (uint32_t i = 0; i < c; i++)
                        ck_assert_mem_eq(&m.entries[i], &es[i], sizeof(es[i]));
                free(buf);
        }
}
END_TEST

START_TEST(test_stat_and_topic_rm_round_trip) {
        uint8_t buf[PROTO_MSG_MAX];
        struct proto_msg m;
        int n = proto_enc_stat(buf, sizeof(buf), 21, 7, PROTO_STAT_MAX, "a.topic");

        check_encoded(buf, n, HDR + sizeof(struct proto_stat) + 7, PROTO_STAT, &m);
        ck_assert_uint_eq(m.u.stat.start, 7);
        ck_assert_uint_eq(m.u.stat.max, PROTO_STAT_MAX);
        ck_assert_str_eq(m.name, "a.topic");
        n = proto_enc_topic_rm(buf, sizeof(buf), 22, "b");
        check_encoded(buf, n, HDR + sizeof(struct proto_topic_rm) + 1, PROTO_TOPIC_RM, &m);
        ck_assert_str_eq(m.name, "b");
        ck_assert_int_eq(proto_enc_stat(buf, sizeof(buf), 1, 0, 0, "x"), -EINVAL);
        ck_assert_int_eq(proto_enc_stat(buf, sizeof(buf), 1, 0, PROTO_STAT_MAX + 1, "x"), -EINVAL);
        ck_assert_int_eq(proto_enc_stat(buf, sizeof(buf), 1, 0, 1, "a b"), -EINVAL);
        ck_assert_int_eq(proto_enc_topic_rm(buf, sizeof(buf), 1, ""), -EINVAL);
        ck_assert_int_eq(proto_enc_topic_rm(buf, sizeof(buf), 1, NULL), -EINVAL);
}
END_TEST

START_TEST(test_stat_reply_round_trips_a_full_page_and_refuses_bad_entries) {
        static struct proto_stat_entry es[PROTO_STAT_MAX];
        struct proto_stat_reply r = {.policy = ZCBUS_POLICY_RELIABLE, .total = 5000, .count = PROTO_STAT_MAX};
        uint8_t *buf = malloc(PROTO_MSG_MAX);
        struct proto_msg m;

        for (uint32_t i = 0; i < PROTO_STAT_MAX; i++)
                es[i] = (struct proto_stat_entry){.role = i % 2 ? PROTO_ROLE_SUB : PROTO_ROLE_PUB, .index = i,
                                                  .state = PROTO_ENTRY_LIVE, .pid = i, .comm = "zcbus",
                                                  .flags = i % 2 ? PROTO_ENTRY_GATING : 0};
        int n = proto_enc_stat_reply(buf, PROTO_MSG_MAX, 3, &r, es);
        ck_assert_int_eq(n, (int)(HDR + sizeof(r) + PROTO_STAT_MAX * sizeof(es[0])));
        ck_assert_int_eq(proto_decode(buf, (size_t)n, &m), 0);
        ck_assert_uint_eq(m.u.stat_reply.total, 5000);
        ck_assert_ptr_eq((const void *)m.stat_entries, buf + HDR + sizeof(r));
        ck_assert_mem_eq(m.stat_entries, es, sizeof(es));

        /* Each of these makes the reply malformed. */
        struct proto_stat_entry bad[] = {
                {.role = 3, .state = PROTO_ENTRY_LIVE},
                {.role = PROTO_ROLE_SUB, .state = 0},
                {.role = PROTO_ROLE_SUB, .state = PROTO_ENTRY_STATE_MAX_ + 1},
                {.role = PROTO_ROLE_SUB, .state = PROTO_ENTRY_LIVE, .flags = 2},
                {.role = PROTO_ROLE_PUB, .state = PROTO_ENTRY_LIVE, .flags = PROTO_ENTRY_GATING},
                {.role = PROTO_ROLE_SUB, .state = PROTO_ENTRY_LIVE, .table = PROTO_FDS_MAX - 1},
                {.role = PROTO_ROLE_SUB, .state = PROTO_ENTRY_LIVE, .comm = "0123456789abcdef"},
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                struct proto_stat_reply one = {.policy = ZCBUS_POLICY_RELIABLE, .total = 1, .count = 1};
                n = proto_enc_stat_reply(buf, PROTO_MSG_MAX, 3, &one, &bad[i]);
                ck_assert_int_gt(n, 0);
                ck_assert_msg(proto_decode(buf, (size_t)n, &m) == -EBADMSG, "bad entry %zu accepted", i);
        }
        /* A count the bytes do not cover, and a count above the total. */
        struct proto_stat_reply over = {.policy = ZCBUS_POLICY_LATEST, .total = 1, .count = 1};
        n = proto_enc_stat_reply(buf, PROTO_MSG_MAX, 3, &over, es);
        ck_assert_int_gt(n, 0);
        ck_assert_int_eq(proto_decode(buf, (size_t)n - 1, &m), -EBADMSG);
        over.total = 0;
        ck_assert_int_eq(proto_enc_stat_reply(buf, PROTO_MSG_MAX, 3, &over, es), -EINVAL);
        /* A gating subscriber on a LATEST topic makes no sense. */
        struct proto_stat_entry g = {.role = PROTO_ROLE_SUB, .state = PROTO_ENTRY_LIVE, .flags = PROTO_ENTRY_GATING};
        over.total = 1;
        n = proto_enc_stat_reply(buf, PROTO_MSG_MAX, 3, &over, &g);
        ck_assert_int_eq(proto_decode(buf, (size_t)n, &m), -EBADMSG);
        free(buf);
}
END_TEST

static struct proto_counter counter(const char *name, uint64_t v) {
        struct proto_counter c;

        memset(&c, 0, sizeof(c));
        strcpy(c.name, name);
        c.value = v;
        return c;
}

START_TEST(test_info_round_trips_and_refuses_bad_labels_and_names) {
        struct proto_counter cs[PROTO_COUNTERS_MAX];
        uint8_t buf[4096];
        struct proto_msg m;
        char name[PROTO_COUNTER_NAME_MAX];
        int n;

        for (unsigned i = 0; i < PROTO_COUNTERS_MAX; i++) {
                (void)snprintf(name, sizeof(name), "c%u.x-y_%u", i, i * 7);
                cs[i] = counter(name, UINT64_MAX - i);
        }
        n = proto_enc_info(buf, sizeof(buf), 5, "nats bridge nats://127.0.0.1:4222 as zcbus", cs,
                           PROTO_COUNTERS_MAX);
        check_encoded(buf, n, HDR + sizeof(struct proto_info) + sizeof(cs), PROTO_INFO, &m);
        /* (again in place: m.counters points into what was decoded) */
        ck_assert_int_eq(proto_decode(buf, (size_t)n, &m), 0);
        ck_assert_str_eq(m.u.info.label, "nats bridge nats://127.0.0.1:4222 as zcbus");
        ck_assert_uint_eq(m.u.info.count, PROTO_COUNTERS_MAX);
        ck_assert_mem_eq(m.counters, cs, sizeof(cs));
        /* No label, no counters. */
        n = proto_enc_info(buf, sizeof(buf), 5, NULL, NULL, 0);
        check_encoded(buf, n, HDR + sizeof(struct proto_info), PROTO_INFO, &m);
        ck_assert_str_eq(m.u.info.label, "");
        ck_assert_ptr_null(m.counters);

        /* The encoder refuses what the decoder would. */
        char longl[PROTO_LABEL_MAX + 1];
        memset(longl, 'a', PROTO_LABEL_MAX);
        longl[PROTO_LABEL_MAX] = 0;
        ck_assert_int_eq(proto_enc_info(buf, sizeof(buf), 5, longl, NULL, 0), -EINVAL);
        ck_assert_int_eq(proto_enc_info(buf, sizeof(buf), 5, "tab\there", NULL, 0), -EINVAL);
        ck_assert_int_eq(proto_enc_info(buf, sizeof(buf), 5, "x", cs, PROTO_COUNTERS_MAX + 1), -EINVAL);
        ck_assert_int_eq(proto_enc_info(buf, sizeof(buf), 5, "x", NULL, 1), -EINVAL);
        static const char *const bad_names[] = {"", "with space", "slash/no", "caf\xc3\xa9",
                                                "a23456789012345678901234"};
        for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
                struct proto_counter c;
                memset(&c, 0, sizeof(c));
                memcpy(c.name, bad_names[i], strlen(bad_names[i]) < sizeof(c.name) ? strlen(bad_names[i]) : sizeof(c.name));
                ck_assert_msg(proto_enc_info(buf, sizeof(buf), 5, "x", &c, 1) == -EINVAL, "name %zu accepted", i);
        }
        struct proto_counter twice[2] = {counter("same", 1), counter("same", 2)};
        ck_assert_int_eq(proto_enc_info(buf, sizeof(buf), 5, "x", twice, 2), -EINVAL);

        /* Forged by hand: garbage after a label's NUL, an unterminated
         * label, a name with bytes after its NUL, a repeated name, a count
         * the bytes do not cover, flags. */
        struct {
                struct proto_info i;
                struct proto_counter c[2];
        } body;
        for (int k = 0; k < 7; k++) {
                memset(&body, 0, sizeof(body));
                strcpy(body.i.label, "ok");
                body.i.count = 2;
                body.c[0] = counter("a", 1);
                body.c[1] = counter("b", 2);
                size_t bl = sizeof(body);
                switch (k) {
                case 0: break; /* the control: valid */
                case 1: body.i.label[10] = 'x'; break;
                case 2: memset(body.i.label, 'x', sizeof(body.i.label)); break;
                case 3: body.c[1].name[5] = 'z'; break;
                case 4: body.c[1] = counter("a", 3); break;
                case 5: bl -= 1; break;
                case 6: body.i.flags = 1; break;
                }
                size_t len = raw_msg(buf, PROTO_INFO, &body, bl);
                ck_assert_msg(decode_exact(buf, len, NULL) == (k == 0 ? 0 : -EBADMSG), "forgery %d", k);
        }
}
END_TEST

START_TEST(test_peers_round_trip_a_full_page_and_refuse_bad_entries) {
        static struct proto_peer_entry es[PROTO_PEERS_MAX];
        uint8_t *buf = malloc(PROTO_MSG_MAX);
        struct proto_msg m;
        int n;

        n = proto_enc_peers(buf, PROTO_MSG_MAX, 9, UINT64_MAX - 3, PROTO_PEERS_MAX);
        check_encoded(buf, n, HDR + sizeof(struct proto_peers), PROTO_PEERS, &m);
        ck_assert_uint_eq(m.u.peers.after, UINT64_MAX - 3);
        ck_assert_uint_eq(m.u.peers.max, PROTO_PEERS_MAX);
        ck_assert_int_eq(proto_enc_peers(buf, PROTO_MSG_MAX, 9, 0, 0), -EINVAL);
        ck_assert_int_eq(proto_enc_peers(buf, PROTO_MSG_MAX, 9, 0, PROTO_PEERS_MAX + 1), -EINVAL);

        for (uint32_t i = 0; i < PROTO_PEERS_MAX; i++) {
                memset(&es[i], 0, sizeof(es[i]));
                es[i].session_id[0] = (uint8_t)i;
                strcpy(es[i].comm, "zcbus-bridge");
                (void)snprintf(es[i].label, sizeof(es[i].label), "peer %u", i);
                es[i].pid = 100 + i;
                es[i].serial = UINT64_C(1) << 40 | (2 * i + 1);
                es[i].ncounters = i % (PROTO_COUNTERS_MAX + 1);
                for (uint32_t k = 0; k < es[i].ncounters; k++) {
                        char nm[PROTO_COUNTER_NAME_MAX];
                        (void)snprintf(nm, sizeof(nm), "n%u", k);
                        es[i].counters[k] = counter(nm, k);
                }
        }
        n = proto_enc_peers_reply(buf, PROTO_MSG_MAX, 9, 1000, es, PROTO_PEERS_MAX);
        check_encoded(buf, n, HDR + sizeof(struct proto_peers_reply) + sizeof(es), PROTO_PEERS_REPLY, &m);
        ck_assert_int_eq(proto_decode(buf, (size_t)n, &m), 0);
        ck_assert_uint_eq(m.u.peers_reply.total, 1000);
        ck_assert_mem_eq(m.peer_entries, es, sizeof(es));
        ck_assert_int_eq(proto_enc_peers_reply(buf, PROTO_MSG_MAX, 9, 1, es, 2), -EINVAL);

        for (int k = 0; k < 9; k++) {
                struct proto_peer_entry e = es[5]; /* 5 counters */
                switch (k) {
                case 0: memset(e.comm, 'x', sizeof(e.comm)); break;
                case 1: e.label[sizeof(e.label) - 1] = 'x'; break;
                case 2: e.label[0] = '\n'; break;
                case 3: e.ncounters = PROTO_COUNTERS_MAX + 1; break;
                case 4: e.counters[4] = e.counters[0]; break;
                case 5: e.counters[10].value = 1; break;       /* past ncounters: must be zero */
                case 6: e.counters[5].name[0] = 'q'; break;
                case 7: e.serial = 0; break;
                case 8: e.label[5] = 0x7f; break;
                }
                n = proto_enc_peers_reply(buf, PROTO_MSG_MAX, 9, 1, &e, 1);
                ck_assert_int_gt(n, 0);
                ck_assert_msg(proto_decode(buf, (size_t)n, &m) == -EBADMSG, "bad peer entry %d accepted", k);
        }
        /* A count the bytes do not cover; serials that do not rise. */
        n = proto_enc_peers_reply(buf, PROTO_MSG_MAX, 9, 2, es, 2);
        ck_assert_int_eq(proto_decode(buf, (size_t)n - 1, &m), -EBADMSG);
        struct proto_peer_entry two[2] = {es[3], es[2]};
        n = proto_enc_peers_reply(buf, PROTO_MSG_MAX, 9, 2, two, 2);
        ck_assert_int_eq(proto_decode(buf, (size_t)n, &m), -EBADMSG);
        two[1] = es[3];
        n = proto_enc_peers_reply(buf, PROTO_MSG_MAX, 9, 2, two, 2);
        ck_assert_int_eq(proto_decode(buf, (size_t)n, &m), -EBADMSG);

        /* Forged by hand (the encoders refuse these): a PEERS with flags,
         * trailing bytes, max 0 or above a page; a reply with count above
         * its total or above a page (65 entries still fit a datagram); an
         * INFO label with DEL or a byte >= 0x80. */
        uint8_t *body = malloc(PROTO_MSG_MAX);
        for (int k = 0; k < 5; k++) {
                struct {
                        struct proto_peers p;
                        uint32_t extra;
                } b = {.p = {.after = 0, .max = 1}};
                size_t bl = sizeof(b.p);
                switch (k) {
                case 0: break; /* the control */
                case 1: b.p.flags = 1; break;
                case 2: bl += 4; break;
                case 3: b.p.max = 0; break;
                case 4: b.p.max = PROTO_PEERS_MAX + 1; break;
                }
                size_t len = raw_msg(buf, PROTO_PEERS, &b, bl);
                ck_assert_msg(proto_decode(buf, len, &m) == (k == 0 ? 0 : -EBADMSG), "PEERS forgery %d", k);
        }
        static struct proto_peer_entry more[PROTO_PEERS_MAX + 1];
        for (uint32_t i = 0; i <= PROTO_PEERS_MAX; i++) {
                memset(&more[i], 0, sizeof(more[i]));
                more[i].serial = i + 1;
        }
        for (int k = 0; k < 3; k++) {
                struct proto_peers_reply r = {.total = 100, .count = 1};
                switch (k) {
                case 0: break;
                case 1: r.total = 0; break;
                case 2: r.count = PROTO_PEERS_MAX + 1; break;
                }
                memcpy(body, &r, sizeof(r));
                memcpy(body + sizeof(r), more, r.count * sizeof(more[0]));
                size_t len = raw_msg(buf, PROTO_PEERS_REPLY, body, sizeof(r) + r.count * sizeof(more[0]));
                ck_assert_msg(proto_decode(buf, len, &m) == (k == 0 ? 0 : -EBADMSG), "PEERS_REPLY forgery %d", k);
        }
        for (int k = 0; k < 3; k++) {
                struct proto_info i = {.count = 0};
                strcpy(i.label, "ok");
                if (k == 1)
                        i.label[1] = 0x7f;
                if (k == 2)
                        i.label[1] = (char)0x9b;
                size_t len = raw_msg(buf, PROTO_INFO, &i, sizeof(i));
                ck_assert_msg(proto_decode(buf, len, &m) == (k == 0 ? 0 : -EBADMSG), "INFO label %d", k);
        }
        free(body);
        free(buf);
}
END_TEST

START_TEST(test_encoders_refuse_bad_input_and_small_buffers) {
        uint8_t buf[PROTO_MSG_MAX];
        struct proto_open o = {.role = PROTO_ROLE_PUB};
        struct proto_hello_reply hr = {0};
        struct proto_open_reply orp = {.policy = ZCBUS_POLICY_RELIABLE, .ntables = 1};
        struct proto_close cl = {.role = PROTO_ROLE_PUB};
        static struct proto_list_entry es[PROTO_LIST_MAX + 1];
        char toolong[PROTO_NAME_MAX + 2];

        memset(toolong, 'n', sizeof(toolong) - 1);
        toolong[sizeof(toolong) - 1] = '\0';
        ck_assert_int_eq(proto_enc_open(buf, sizeof(buf), 1, &o, toolong), -ENAMETOOLONG);
        ck_assert_int_eq(proto_enc_open(buf, sizeof(buf), 1, &o, ""), -EINVAL);
        ck_assert_int_eq(proto_enc_open(buf, sizeof(buf), 1, &o, "has space"), -EINVAL);
        ck_assert_int_eq(proto_enc_open(buf, sizeof(buf), 1, &o, "tab\there"), -EINVAL);
        ck_assert_int_eq(proto_enc_open(buf, sizeof(buf), 1, &o, NULL), -EINVAL);
        ck_assert_int_eq(proto_enc_list(buf, sizeof(buf), 1, 0, 0), -EINVAL);
        ck_assert_int_eq(proto_enc_list(buf, sizeof(buf), 1, 0, PROTO_LIST_MAX + 1), -EINVAL);
        ck_assert_int_eq(proto_enc_list_reply(buf, sizeof(buf), 1, 100, es, PROTO_LIST_MAX + 1), -EINVAL);
        ck_assert_int_eq(proto_enc_error(buf, sizeof(buf), 1, 0, "x"), -EINVAL);
        ck_assert_int_eq(proto_enc_error(buf, sizeof(buf), 1, EPERM, "x"), -EINVAL);

        /* One byte short of what each message needs. */
        ck_assert_int_eq(proto_enc_hello(buf, HDR + sizeof(struct proto_hello) - 1, 1), -EMSGSIZE);
        ck_assert_int_eq(proto_enc_hello_reply(buf, HDR + sizeof(hr) - 1, 1, &hr), -EMSGSIZE);
        ck_assert_int_eq(proto_enc_open(buf, HDR + sizeof(o) + 2, 1, &o, "abc"), -EMSGSIZE);
        ck_assert_int_eq(proto_enc_open_reply(buf, HDR + sizeof(orp) - 1, 1, &orp), -EMSGSIZE);
        ck_assert_int_eq(proto_enc_close(buf, HDR + sizeof(cl) - 1, 1, &cl), -EMSGSIZE);
        ck_assert_int_eq(proto_enc_ok(buf, HDR - 1, 1), -EMSGSIZE);
        ck_assert_int_eq(proto_enc_error(buf, HDR + sizeof(struct proto_error) + 2, 1, -EIO, "abc"), -EMSGSIZE);
        ck_assert_int_eq(proto_enc_list(buf, HDR + sizeof(struct proto_list) - 1, 1, 0, 1), -EMSGSIZE);
        es[0] = entry("a", 0);
        ck_assert_int_eq(proto_enc_list_reply(buf, HDR + sizeof(struct proto_list_reply) + sizeof(es[0]) - 1, 1,
                                              1, es, 1),
                         -EMSGSIZE);
        ck_assert_int_eq(proto_enc_ok(NULL, 0, 1), -EMSGSIZE);
}
END_TEST

START_TEST(test_name_valid_accepts_printable_and_rejects_space_control_and_nul) {
        char longest[PROTO_NAME_MAX + 1];

        memset(longest, 'z', sizeof(longest));
        ck_assert_int_eq(proto_name_valid("a", 1), 1);
        ck_assert_int_eq(proto_name_valid("sensors/imu.0~raw", 17), 1);
        ck_assert_int_eq(proto_name_valid(longest, PROTO_NAME_MAX), 1);
        ck_assert_int_eq(proto_name_valid(longest, PROTO_NAME_MAX + 1), 0);
        ck_assert_int_eq(proto_name_valid("", 0), 0);
        ck_assert_int_eq(proto_name_valid(NULL, 3), 0);
        ck_assert_int_eq(proto_name_valid("a b", 3), 0);
        ck_assert_int_eq(proto_name_valid("a\0b", 3), 0);
        ck_assert_int_eq(proto_name_valid("a\tb", 3), 0);
        ck_assert_int_eq(proto_name_valid("a\nb", 3), 0);
        ck_assert_int_eq(proto_name_valid("a\x01" "b", 3), 0);
        ck_assert_int_eq(proto_name_valid("a\x7f" "b", 3), 0);
        ck_assert_int_eq(proto_name_valid("a\x1b" "b", 3), 0);
}
END_TEST

/* ------------------------------------------------------------- malformed */

START_TEST(test_datagram_shorter_than_header_is_rejected) {
        uint8_t buf[PROTO_MSG_MAX];
        int n = proto_enc_ok(buf, sizeof(buf), 1);

        ck_assert_int_eq(n, (int)HDR);
        for (size_t len = 0; len < HDR; len++)
                ck_assert_msg(decode_exact(buf, len, NULL) == -EBADMSG, "%zu-byte datagram not rejected", len);
        ck_assert_int_eq(proto_decode(NULL, 0, &(struct proto_msg){0}), -EBADMSG);
}
END_TEST

START_TEST(test_wrong_magic_is_rejected) {
        uint8_t buf[PROTO_MSG_MAX];
        int n = proto_enc_hello(buf, sizeof(buf), 1);
        static const uint32_t bad[] = {0, PROTO_MAGIC ^ 1, PROTO_MAGIC ^ 0x80000000u, 0x315a4342 /* swapped */,
                                       UINT32_MAX};

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                memcpy(buf, &bad[i], 4);
                ck_assert_msg(decode_exact(buf, (size_t)n, NULL) == -EBADMSG, "magic %#x accepted", bad[i]);
        }
}
END_TEST

START_TEST(test_wrong_version_is_eproto) {
        uint8_t buf[PROTO_MSG_MAX];
        int n = proto_enc_hello(buf, sizeof(buf), 1);
        static const uint16_t bad[] = {0, PROTO_VERSION + 1, 0x100, UINT16_MAX};

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                memcpy(buf + offsetof(struct proto_hdr, version), &bad[i], 2);
                int r = decode_exact(buf, (size_t)n, NULL);
                ck_assert_msg(r == -EPROTO, "version %u: got %d, want -EPROTO", bad[i], r);
        }
}
END_TEST

START_TEST(test_unknown_type_is_rejected) {
        uint8_t buf[PROTO_MSG_MAX];
        static const uint16_t bad[] = {0, PROTO_TYPE_MAX_, PROTO_TYPE_MAX_ + 1, 0x100, UINT16_MAX};

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                uint8_t body[8] = {0};
                /* Empty and 8-byte bodies: neither may pass for any type. */
                size_t n = raw_msg(buf, bad[i], NULL, 0);
                ck_assert_msg(decode_exact(buf, n, NULL) == -EBADMSG, "type %u accepted", bad[i]);
                n = raw_msg(buf, bad[i], body, sizeof(body));
                ck_assert_msg(decode_exact(buf, n, NULL) == -EBADMSG, "type %u accepted", bad[i]);
        }
        ck_assert_str_eq(proto_type_name(0), "UNKNOWN");
        ck_assert_str_eq(proto_type_name(UINT16_MAX), "UNKNOWN");
}
END_TEST

START_TEST(test_header_length_disagreeing_with_datagram_is_rejected) {
        uint8_t buf[PROTO_MSG_MAX + 64];
        struct proto_close c = {.role = PROTO_ROLE_PUB};
        int n = proto_enc_close(buf, sizeof(buf), 1, &c);
        uint32_t body = (uint32_t)n - (uint32_t)HDR;
        static const int64_t deltas[] = {-(int64_t)sizeof(struct proto_close), -1, 1, 8, 4096};

        ck_assert_int_gt(n, 0);
        /* hdr.len says more or less than the datagram carries. */
        for (size_t i = 0; i < sizeof(deltas) / sizeof(deltas[0]); i++) {
                set_hdr_len(buf, (uint32_t)((int64_t)body + deltas[i]));
                ck_assert_msg(decode_exact(buf, (size_t)n, NULL) == -EBADMSG, "hdr.len %+lld accepted",
                              (long long)deltas[i]);
        }
        set_hdr_len(buf, UINT32_MAX);
        ck_assert_int_eq(decode_exact(buf, (size_t)n, NULL), -EBADMSG);
        set_hdr_len(buf, UINT32_MAX - (uint32_t)HDR + 1); /* wraps to n if added carelessly */
        ck_assert_int_eq(decode_exact(buf, (size_t)n, NULL), -EBADMSG);
        /* The datagram carries more or less than hdr.len says. */
        set_hdr_len(buf, body);
        ck_assert_int_eq(decode_exact(buf, (size_t)n, NULL), 0);
        ck_assert_int_eq(decode_exact(buf, (size_t)n - 1, NULL), -EBADMSG);
        memset(buf + n, 0, 16);
        ck_assert_int_eq(decode_exact(buf, (size_t)n + 1, NULL), -EBADMSG);
        ck_assert_int_eq(decode_exact(buf, (size_t)n + 16, NULL), -EBADMSG);
}
END_TEST

START_TEST(test_datagram_larger_than_protocol_maximum_is_rejected) {
        uint8_t *buf = calloc(1, PROTO_MSG_MAX + 1);
        ck_assert_ptr_nonnull(buf);
        size_t n = raw_msg(buf, PROTO_LIST_REPLY, NULL, 0);
        (void)n;
        set_hdr_len(buf, PROTO_MSG_MAX + 1 - (uint32_t)HDR);
        ck_assert_int_eq(decode_exact(buf, PROTO_MSG_MAX + 1, NULL), -EBADMSG);
        free(buf);
}
END_TEST

START_TEST(test_body_shorter_than_fixed_part_is_rejected) {
        static const struct {
                uint16_t type;
                size_t fixed;
        } t[] = {
                {PROTO_HELLO, sizeof(struct proto_hello)},
                {PROTO_HELLO_REPLY, sizeof(struct proto_hello_reply)},
                {PROTO_OPEN, sizeof(struct proto_open)},
                {PROTO_OPEN_REPLY, sizeof(struct proto_open_reply)},
                {PROTO_CLOSE, sizeof(struct proto_close)},
                {PROTO_ERROR, sizeof(struct proto_error)},
                {PROTO_LIST, sizeof(struct proto_list)},
                {PROTO_LIST_REPLY, sizeof(struct proto_list_reply)},
                {PROTO_STAT, sizeof(struct proto_stat)},
                {PROTO_STAT_REPLY, sizeof(struct proto_stat_reply)},
                {PROTO_TOPIC_RM, sizeof(struct proto_topic_rm)},
                {PROTO_INFO, sizeof(struct proto_info)},
                {PROTO_PEERS, sizeof(struct proto_peers)},
                {PROTO_PEERS_REPLY, sizeof(struct proto_peers_reply)},
        };
        uint8_t body[256], buf[512];

        /* A body of plausible values (role 1, policy 1, max 1 ...), cut short. */
        for (size_t i = 0; i < sizeof(body) / 4; i++)
                memcpy(body + 4 * i, &(uint32_t){1}, 4);
        for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
                for (size_t bl = 0; bl < t[i].fixed; bl++) {
                        size_t n = raw_msg(buf, t[i].type, body, bl);
                        ck_assert_msg(decode_exact(buf, n, NULL) == -EBADMSG, "%s with a %zu-byte body accepted",
                                      proto_type_name(t[i].type), bl);
                }
}
END_TEST

START_TEST(test_fixed_size_body_with_trailing_bytes_is_rejected) {
        uint8_t buf[PROTO_MSG_MAX];
        struct proto_hello_reply hr = {0};
        struct proto_open_reply orp = {.policy = ZCBUS_POLICY_RELIABLE, .ntables = 1};
        struct proto_close cl = {.role = PROTO_ROLE_SUB};
        int lens[6];

        lens[0] = proto_enc_hello(buf, sizeof(buf), 1);
        uint8_t b0[64];
        memcpy(b0, buf, (size_t)lens[0]);
        lens[1] = proto_enc_hello_reply(buf, sizeof(buf), 1, &hr);
        uint8_t b1[64];
        memcpy(b1, buf, (size_t)lens[1]);
        lens[2] = proto_enc_open_reply(buf, sizeof(buf), 1, &orp);
        uint8_t b2[128];
        memcpy(b2, buf, (size_t)lens[2]);
        lens[3] = proto_enc_close(buf, sizeof(buf), 1, &cl);
        uint8_t b3[64];
        memcpy(b3, buf, (size_t)lens[3]);
        lens[4] = proto_enc_list(buf, sizeof(buf), 1, 0, 1);
        uint8_t b4[64];
        memcpy(b4, buf, (size_t)lens[4]);
        lens[5] = proto_enc_ok(buf, sizeof(buf), 1);
        uint8_t b5[64];
        memcpy(b5, buf, (size_t)lens[5]);
        uint8_t *bs[6] = {b0, b1, b2, b3, b4, b5};

        for (int i = 0; i < 6; i++) {
                uint8_t big[256];
                ck_assert_int_gt(lens[i], 0);
                ck_assert_int_eq(decode_exact(bs[i], (size_t)lens[i], NULL), 0);
                memset(big, 0, sizeof(big));
                memcpy(big, bs[i], (size_t)lens[i]);
                set_hdr_len(big, (uint32_t)lens[i] - (uint32_t)HDR + 4);
                ck_assert_msg(decode_exact(big, (size_t)lens[i] + 4, NULL) == -EBADMSG,
                              "%s with 4 trailing bytes accepted", proto_type_name(((struct proto_hdr *)big)->type));
        }
}
END_TEST

START_TEST(test_open_name_len_zero_is_rejected) {
        ck_assert_int_eq(decode_open(PROTO_ROLE_PUB, 0, 0, 0, "", 0), -EBADMSG);
        /* name_len 0 while name bytes follow anyway */
        ck_assert_int_eq(decode_open(PROTO_ROLE_PUB, 0, 0, 0, "abc", 3), -EBADMSG);
}
END_TEST

START_TEST(test_open_name_len_above_maximum_is_rejected) {
        char name[PROTO_NAME_MAX + 2];

        memset(name, 'q', sizeof(name));
        ck_assert_int_eq(decode_open(PROTO_ROLE_SUB, 0, 0, PROTO_NAME_MAX, name, PROTO_NAME_MAX), 0);
        ck_assert_int_eq(decode_open(PROTO_ROLE_SUB, 0, 0, PROTO_NAME_MAX + 1, name, PROTO_NAME_MAX + 1), -EBADMSG);
        ck_assert_int_eq(decode_open(PROTO_ROLE_SUB, 0, 0, UINT32_MAX, name, PROTO_NAME_MAX + 1), -EBADMSG);
}
END_TEST

START_TEST(test_open_name_len_disagreeing_with_the_bytes_is_rejected) {
        /* Past the end of the datagram ... */
        ck_assert_int_eq(decode_open(PROTO_ROLE_PUB, 0, 0, 4, "abc", 3), -EBADMSG);
        ck_assert_int_eq(decode_open(PROTO_ROLE_PUB, 0, 0, 200, "abc", 3), -EBADMSG);
        ck_assert_int_eq(decode_open(PROTO_ROLE_PUB, 0, 0, 0x80000003u, "abc", 3), -EBADMSG);
        ck_assert_int_eq(decode_open(PROTO_ROLE_PUB, 0, 0, 1, "", 0), -EBADMSG);
        /* ... or short of it. */
        ck_assert_int_eq(decode_open(PROTO_ROLE_PUB, 0, 0, 2, "abc", 3), -EBADMSG);
        ck_assert_int_eq(decode_open(PROTO_ROLE_PUB, 0, 0, 3, "abc", 3), 0);
}
END_TEST

START_TEST(test_open_name_with_nul_inside_is_rejected) {
        ck_assert_int_eq(decode_open(PROTO_ROLE_PUB, 0, 0, 3, "a\0c", 3), -EBADMSG);
        ck_assert_int_eq(decode_open(PROTO_ROLE_PUB, 0, 0, 3, "ab\0", 3), -EBADMSG);
        ck_assert_int_eq(decode_open(PROTO_ROLE_PUB, 0, 0, 1, "\0", 1), -EBADMSG);
}
END_TEST

START_TEST(test_open_name_with_space_or_control_bytes_is_rejected) {
        static const char bad[] = {' ', '\t', '\n', '\r', '\x01', '\x1f', '\x7f'};

        for (size_t i = 0; i < sizeof(bad); i++) {
                char name[3] = {'a', bad[i], 'b'};
                ck_assert_msg(decode_open(PROTO_ROLE_SUB, 0, 0, 3, name, 3) == -EBADMSG, "byte %#x accepted",
                              (unsigned char)bad[i]);
                char first[2] = {bad[i], 'z'};
                ck_assert_msg(decode_open(PROTO_ROLE_SUB, 0, 0, 2, first, 2) == -EBADMSG, "leading %#x accepted",
                              (unsigned char)bad[i]);
        }
}
END_TEST

START_TEST(test_open_with_nonzero_flags_is_rejected) {
        ck_assert_int_eq(decode_open(PROTO_ROLE_PUB, 0, 0, 3, "abc", 3), 0);
        ck_assert_int_eq(decode_open(PROTO_ROLE_PUB, 0, 1, 3, "abc", 3), -EBADMSG);
        ck_assert_int_eq(decode_open(PROTO_ROLE_PUB, 0, 0x80000000u, 3, "abc", 3), -EBADMSG);
}
END_TEST

START_TEST(test_hello_with_nonzero_flags_is_rejected) {
        uint8_t buf[64];
        struct proto_hello h = {.client_version = PROTO_VERSION, .flags = 1};
        size_t n = raw_msg(buf, PROTO_HELLO, &h, sizeof(h));

        ck_assert_int_eq(decode_exact(buf, n, NULL), -EBADMSG);
        h.flags = 0x80000000u;
        n = raw_msg(buf, PROTO_HELLO, &h, sizeof(h));
        ck_assert_int_eq(decode_exact(buf, n, NULL), -EBADMSG);
        h.flags = 0;
        n = raw_msg(buf, PROTO_HELLO, &h, sizeof(h));
        ck_assert_int_eq(decode_exact(buf, n, NULL), 0);
}
END_TEST

START_TEST(test_role_other_than_pub_or_sub_is_rejected) {
        static const uint32_t bad[] = {0, 3, 0x101, UINT32_MAX};
        uint8_t buf[128];

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                ck_assert_msg(decode_open(bad[i], 0, 0, 3, "abc", 3) == -EBADMSG, "OPEN role %u accepted", bad[i]);
                struct proto_close c = {.role = bad[i]};
                size_t n = raw_msg(buf, PROTO_CLOSE, &c, sizeof(c));
                ck_assert_msg(decode_exact(buf, n, NULL) == -EBADMSG, "CLOSE role %u accepted", bad[i]);
        }
}
END_TEST

START_TEST(test_policy_out_of_range_is_rejected) {
        static const uint32_t bad[] = {3, 4, 0x10000, UINT32_MAX};
        uint8_t buf[128];

        for (uint32_t p = 0; p <= ZCBUS_POLICY_LATEST; p++)
                ck_assert_int_eq(decode_open(PROTO_ROLE_PUB, p, 0, 3, "abc", 3), 0);
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                ck_assert_msg(decode_open(PROTO_ROLE_PUB, bad[i], 0, 3, "abc", 3) == -EBADMSG,
                              "OPEN policy %u accepted", bad[i]);
                struct proto_open_reply r = {.policy = bad[i], .ntables = 1};
                size_t n = raw_msg(buf, PROTO_OPEN_REPLY, &r, sizeof(r));
                ck_assert_msg(decode_exact(buf, n, NULL) == -EBADMSG, "OPEN_REPLY policy %u accepted", bad[i]);
        }
        /* A topic always has a concrete policy. */
        struct proto_open_reply r = {.policy = ZCBUS_POLICY_DEFAULT, .ntables = 1};
        size_t n = raw_msg(buf, PROTO_OPEN_REPLY, &r, sizeof(r));
        ck_assert_int_eq(decode_exact(buf, n, NULL), -EBADMSG);
        /* Tables: one at least, no more than the fds a message carries
         * besides the ring, each index below that. */
        static const struct {
                uint32_t ntables, table;
                int want;
        } tabs[] = {{0, 0, -EBADMSG},
                    {1, 0, 0},
                    {PROTO_FDS_MAX - 1, PROTO_FDS_MAX - 2, 0},
                    {PROTO_FDS_MAX, 0, -EBADMSG},
                    {1, PROTO_FDS_MAX - 1, -EBADMSG},
                    {UINT32_MAX, 0, -EBADMSG}};
        for (size_t i = 0; i < sizeof(tabs) / sizeof(tabs[0]); i++) {
                r = (struct proto_open_reply){
                        .policy = ZCBUS_POLICY_RELIABLE, .ntables = tabs[i].ntables, .table = tabs[i].table};
                n = raw_msg(buf, PROTO_OPEN_REPLY, &r, sizeof(r));
                ck_assert_msg(decode_exact(buf, n, NULL) == tabs[i].want, "OPEN_REPLY ntables %u table %u",
                              tabs[i].ntables, tabs[i].table);
        }
}
END_TEST

static size_t error_msg(uint8_t *buf, int32_t err, uint32_t msg_len, const char *text, size_t text_bytes) {
        uint8_t body[1024];
        struct proto_error e = {.err = err, .msg_len = msg_len};
        memcpy(body, &e, sizeof(e));
        memcpy(body + sizeof(e), text, text_bytes);
        return raw_msg(buf, PROTO_ERROR, body, sizeof(e) + text_bytes);
}

START_TEST(test_error_text_too_long_or_mismatched_is_rejected) {
        uint8_t buf[1200];
        char text[PROTO_ERRMSG_MAX + 8];
        size_t n;

        memset(text, 'm', sizeof(text));
        n = error_msg(buf, -EIO, PROTO_ERRMSG_MAX, text, PROTO_ERRMSG_MAX);
        ck_assert_int_eq(decode_exact(buf, n, NULL), 0);
        n = error_msg(buf, -EIO, PROTO_ERRMSG_MAX + 1, text, PROTO_ERRMSG_MAX + 1);
        ck_assert_int_eq(decode_exact(buf, n, NULL), -EBADMSG);
        n = error_msg(buf, -EIO, 5, text, 4); /* past the end */
        ck_assert_int_eq(decode_exact(buf, n, NULL), -EBADMSG);
        n = error_msg(buf, -EIO, 3, text, 4); /* short of the end */
        ck_assert_int_eq(decode_exact(buf, n, NULL), -EBADMSG);
        n = error_msg(buf, -EIO, UINT32_MAX, text, 4);
        ck_assert_int_eq(decode_exact(buf, n, NULL), -EBADMSG);
        n = error_msg(buf, -EIO, 3, "a\0b", 3); /* NUL inside */
        ck_assert_int_eq(decode_exact(buf, n, NULL), -EBADMSG);
}
END_TEST

START_TEST(test_error_code_not_a_negative_errno_is_rejected) {
        uint8_t buf[128];
        static const int32_t bad[] = {0, 1, EPERM, INT32_MAX, -4096, INT32_MIN};

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                size_t n = error_msg(buf, bad[i], 0, "", 0);
                ck_assert_msg(decode_exact(buf, n, NULL) == -EBADMSG, "ERROR err %d accepted", bad[i]);
        }
}
END_TEST

START_TEST(test_list_max_zero_or_above_limit_is_rejected) {
        uint8_t buf[64];
        static const uint32_t bad[] = {0, PROTO_LIST_MAX + 1, UINT32_MAX};

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                struct proto_list l = {.start = 0, .max = bad[i]};
                size_t n = raw_msg(buf, PROTO_LIST, &l, sizeof(l));
                ck_assert_msg(decode_exact(buf, n, NULL) == -EBADMSG, "LIST max %u accepted", bad[i]);
        }
        struct proto_list l = {.start = UINT32_MAX, .max = 1};
        size_t n = raw_msg(buf, PROTO_LIST, &l, sizeof(l));
        ck_assert_int_eq(decode_exact(buf, n, NULL), 0);
}
END_TEST

/* A LIST_REPLY body: header {total, count} then `entries` entries. */
static size_t list_reply(uint8_t *buf, uint32_t total, uint32_t count, uint32_t entries) {
        static uint8_t body[sizeof(struct proto_list_reply) + (PROTO_LIST_MAX + 2) * sizeof(struct proto_list_entry)];
        struct proto_list_reply r = {.total = total, .count = count};
        char name[32];

        memcpy(body, &r, sizeof(r));
        for (uint32_t i = 0; i < entries; i++) {
                snprintf(name, sizeof(name), "t%u", i);
                struct proto_list_entry e = entry(name, i);
                memcpy(body + sizeof(r) + i * sizeof(e), &e, sizeof(e));
        }
        return raw_msg(buf, PROTO_LIST_REPLY, body, sizeof(r) + entries * sizeof(struct proto_list_entry));
}

START_TEST(test_list_reply_count_disagreeing_with_length_is_rejected) {
        uint8_t *buf = malloc(PROTO_MSG_MAX);
        size_t n;

        ck_assert_ptr_nonnull(buf);
        n = list_reply(buf, 10, 2, 2);
        ck_assert_int_eq(decode_exact(buf, n, NULL), 0);
        n = list_reply(buf, 10, 3, 2);
        ck_assert_int_eq(decode_exact(buf, n, NULL), -EBADMSG);
        n = list_reply(buf, 10, 1, 2);
        ck_assert_int_eq(decode_exact(buf, n, NULL), -EBADMSG);
        n = list_reply(buf, 10, 0, 1);
        ck_assert_int_eq(decode_exact(buf, n, NULL), -EBADMSG);
        n = list_reply(buf, 10, UINT32_MAX, 1);
        ck_assert_int_eq(decode_exact(buf, n, NULL), -EBADMSG);
        /* count * sizeof(entry) overflowing 32 bits must not wrap to "fits" */
        n = list_reply(buf, UINT32_MAX, (uint32_t)((UINT64_C(1) << 32) / sizeof(struct proto_list_entry)) + 1, 0);
        ck_assert_int_eq(decode_exact(buf, n, NULL), -EBADMSG);
        /* more than one reply may carry, even if the length agrees */
        n = list_reply(buf, 1000, PROTO_LIST_MAX + 1, PROTO_LIST_MAX + 1);
        ck_assert_int_eq(decode_exact(buf, n, NULL), -EBADMSG);
        /* a partial entry */
        n = list_reply(buf, 10, 1, 1);
        set_hdr_len(buf, (uint32_t)(n - HDR - 1));
        ck_assert_int_eq(decode_exact(buf, n - 1, NULL), -EBADMSG);
        free(buf);
}
END_TEST

START_TEST(test_list_reply_entry_name_unterminated_or_invalid_is_rejected) {
        uint8_t *buf = malloc(PROTO_MSG_MAX);
        const size_t first = HDR + sizeof(struct proto_list_reply);
        const size_t name_off = first + offsetof(struct proto_list_entry, name);
        size_t n;

        ck_assert_ptr_nonnull(buf);
        n = list_reply(buf, 2, 2, 2);
        memset(buf + name_off, 'x', PROTO_NAME_MAX + 1); /* no NUL in the whole field */
        ck_assert_int_eq(decode_exact(buf, n, NULL), -EBADMSG);
        n = list_reply(buf, 2, 2, 2);
        buf[name_off] = '\0'; /* empty name */
        ck_assert_int_eq(decode_exact(buf, n, NULL), -EBADMSG);
        n = list_reply(buf, 2, 2, 2);
        buf[name_off + 1] = ' ';
        ck_assert_int_eq(decode_exact(buf, n, NULL), -EBADMSG);
        /* the second entry too, not only the first */
        n = list_reply(buf, 2, 2, 2);
        memset(buf + name_off + sizeof(struct proto_list_entry), 'y', PROTO_NAME_MAX + 1);
        ck_assert_int_eq(decode_exact(buf, n, NULL), -EBADMSG);
        free(buf);
}
END_TEST

/* ------------------------------------------------------------------ fuzz */

static uint64_t rng_state;

static uint64_t rnd(void) {
        /* xorshift64*: deterministic across platforms. */
        rng_state ^= rng_state >> 12;
        rng_state ^= rng_state << 25;
        rng_state ^= rng_state >> 27;
        return rng_state * UINT64_C(2685821657736338717);
}

static uint32_t rnd_below(uint32_t n) {
        return (uint32_t)(rnd() % n);
}

/* Valid seeds of every type, for mutation. */
static size_t make_seed(uint8_t *buf, size_t cap, unsigned kind) {
        struct proto_hello_reply hr = {.broker_version = 1, .max_topics = 9};
        struct proto_open o = {.role = PROTO_ROLE_SUB, .policy = 2, .slot_count = 8, .slot_size = 64};
        struct proto_open_reply orp = {.slot_count = 8, .slot_size = 64, .policy = 1, .index = 3, .ntables = 1, .ring_size = 8192,
                                       .subs_size = 4096};
        struct proto_close c = {.role = PROTO_ROLE_PUB, .index = 1};
        static struct proto_list_entry es[4];
        int n;

        for (unsigned i = 0; i < 4; i++)
                es[i] = entry(i % 2 ? "bb" : "a.topic", i);
        struct proto_counter cs[3] = {counter("forwarded", 7), counter("x.y", 0), counter("Z-9_", 1)};
        static struct proto_peer_entry pe[2];
        memset(pe, 0, sizeof(pe));
        strcpy(pe[0].label, "a bridge");
        pe[0].serial = 1;
        pe[1].serial = 7;
        pe[0].ncounters = 3;
        memcpy(pe[0].counters, cs, sizeof(cs));
        strcpy(pe[1].comm, "zcbus");
        switch (kind % 11) {
        case 0: n = proto_enc_hello(buf, cap, 1); break;
        case 1: n = proto_enc_hello_reply(buf, cap, 2, &hr); break;
        case 2: n = proto_enc_open(buf, cap, 3, &o, kind & 16 ? "x" : "some/topic.name"); break;
        case 3: n = proto_enc_open_reply(buf, cap, 4, &orp); break;
        case 4: n = proto_enc_close(buf, cap, 5, &c); break;
        case 5: n = proto_enc_ok(buf, cap, 6); break;
        case 6: n = proto_enc_error(buf, cap, 7, -ENOENT, kind & 16 ? "" : "no such topic"); break;
        case 7: n = proto_enc_list(buf, cap, 8, 3, 5); break;
        case 8: n = proto_enc_info(buf, cap, 10, kind & 16 ? "" : "label", cs, kind & 16 ? 0 : 3); break;
        case 9: n = proto_enc_peers_reply(buf, cap, 11, 5, pe, kind & 16 ? 1 : 2); break;
        default: n = proto_enc_list_reply(buf, cap, 9, 10, es, kind & 16 ? 1 : 4); break;
        }
        ck_assert_int_gt(n, 0);
        return (size_t)n;
}

static void check_decoded(const struct proto_msg *m, const uint8_t *buf, size_t len) {
        FAST_EQ(m->hdr.magic, PROTO_MAGIC);
        FAST_EQ(m->hdr.version, PROTO_VERSION);
        FAST_EQ((size_t)m->hdr.len + HDR, len);
        FAST_CHECK(m->hdr.type >= PROTO_HELLO && m->hdr.type < PROTO_TYPE_MAX_, "m->hdr.type >= PROTO_HELLO && m->hdr.type < PROTO_TYPE_MAX_ failed");
        switch (m->hdr.type) {
        case PROTO_OPEN:
                FAST_CHECK(m->u.open.role == PROTO_ROLE_PUB || m->u.open.role == PROTO_ROLE_SUB, "m->u.open.role == PROTO_ROLE_PUB || m->u.open.role == PROTO_ROLE_SUB failed");
                FAST_CHECK(m->u.open.policy <= ZCBUS_POLICY_LATEST, "m->u.open.policy <= ZCBUS_POLICY_LATEST failed");
                FAST_EQ(m->u.open.flags, 0);
                FAST_EQ(strlen(m->name), m->u.open.name_len);
                FAST_CHECK(proto_name_valid(m->name, m->u.open.name_len), "proto_name_valid(m->name, m->u.open.name_len) failed");
                break;
        case PROTO_ERROR:
                FAST_CHECK(m->u.error.err < 0, "m->u.error.err < 0 failed");
                FAST_CHECK(m->u.error.msg_len <= PROTO_ERRMSG_MAX, "m->u.error.msg_len <= PROTO_ERRMSG_MAX failed");
                FAST_EQ(strlen(m->errmsg), m->u.error.msg_len);
                break;
        case PROTO_LIST:
                FAST_CHECK(m->u.list.max >= 1 && m->u.list.max <= PROTO_LIST_MAX, "m->u.list.max >= 1 && m->u.list.max <= PROTO_LIST_MAX failed");
                break;
        case PROTO_LIST_REPLY: {
                uint32_t c = m->u.list_reply.count;
                FAST_CHECK(c <= PROTO_LIST_MAX, "c <= PROTO_LIST_MAX failed");
                FAST_EQ(HDR + sizeof(struct proto_list_reply) + c * sizeof(struct proto_list_entry), len);
                for (uint32_t i = 0; i < c; i++) {
                        const struct proto_list_entry *e = &m->entries[i];
                        FAST_CHECK((const uint8_t *)e >= buf && (const uint8_t *)(e + 1) <= buf + len, "(const uint8_t *)e >= buf && (const uint8_t *)(e + 1) <= buf + len failed");
                        size_t nl = strnlen(e->name, sizeof(e->name));
                        FAST_CHECK(nl < sizeof(e->name), "nl < sizeof(e->name) failed");
                }
                break;
        }
        case PROTO_INFO:
                FAST_CHECK(m->u.info.count <= PROTO_COUNTERS_MAX, "INFO count %u", m->u.info.count);
                FAST_CHECK(proto_label_valid(m->u.info.label), "INFO label invalid");
                FAST_EQ(HDR + sizeof(struct proto_info) + m->u.info.count * sizeof(struct proto_counter), len);
                for (uint32_t i = 0; i < m->u.info.count; i++)
                        FAST_CHECK(proto_counter_name_valid(m->counters[i].name), "INFO counter %u invalid", i);
                break;
        case PROTO_PEERS_REPLY: {
                uint32_t c = m->u.peers_reply.count;
                FAST_CHECK(c <= PROTO_PEERS_MAX, "PEERS_REPLY count %u", c);
                FAST_EQ(HDR + sizeof(struct proto_peers_reply) + c * sizeof(struct proto_peer_entry), len);
                for (uint32_t i = 0; i < c; i++) {
                        const struct proto_peer_entry *e = &m->peer_entries[i];
                        FAST_CHECK(e->ncounters <= PROTO_COUNTERS_MAX, "peer %u counters", i);
                        FAST_CHECK(proto_label_valid(e->label), "peer %u label", i);
                        FAST_CHECK(strnlen(e->comm, sizeof(e->comm)) < sizeof(e->comm), "peer %u comm", i);
                }
                break;
        }
        default:
                break;
        }
}

START_TEST(test_fuzzed_datagrams_never_read_out_of_bounds) {
        enum { ITER = 200000, CAP = 2 * sizeof(struct proto_list_entry) * 4 + 1024 };
        static uint8_t work[CAP + PROTO_MSG_MAX];
        unsigned counts[3] = {0};

        rng_state = UINT64_C(0x2545f4914f6cdd1d);
        for (unsigned it = 0; it < ITER; it++) {
                size_t len;
                unsigned how = rnd_below(8);

                if (how == 0) {
                        /* Pure noise, any length up to a few hundred bytes. */
                        len = rnd_below(400);
                        for (size_t i = 0; i < len; i++)
                                work[i] = (uint8_t)rnd();
                } else if (how == 1) {
                        /* Noise behind a valid magic and version, type in or near range. */
                        len = HDR + rnd_below(400);
                        for (size_t i = 0; i < len; i++)
                                work[i] = (uint8_t)rnd();
                        struct proto_hdr h = {.magic = PROTO_MAGIC, .version = PROTO_VERSION,
                                              .type = (uint16_t)rnd_below(PROTO_TYPE_MAX_ + 2),
                                              .len = (uint32_t)(len - HDR)};
                        memcpy(work, &h, HDR);
                } else {
                        /* A valid message, then a few mutations. */
                        len = make_seed(work, CAP, rnd_below(32));
                        unsigned nmut = 1 + rnd_below(4);
                        for (unsigned k = 0; k < nmut; k++) {
                                unsigned op = rnd_below(7);
                                if (op == 0 && len) { /* flip a bit */
                                        size_t i = rnd_below((uint32_t)len);
                                        work[i] ^= (uint8_t)(1u << rnd_below(8));
                                } else if (op == 1 && len) { /* set a byte */
                                        work[rnd_below((uint32_t)len)] = (uint8_t)rnd();
                                } else if (op == 2) { /* truncate */
                                        len = rnd_below((uint32_t)len + 1);
                                } else if (op == 3 && len + 64 < CAP) { /* extend */
                                        size_t add = 1 + rnd_below(64);
                                        for (size_t i = 0; i < add; i++)
                                                work[len + i] = (uint8_t)rnd();
                                        len += add;
                                } else if (op == 4 && len >= HDR) { /* keep hdr.len honest */
                                        set_hdr_len(work, (uint32_t)(len - HDR));
                                } else if (op == 5 && len >= HDR + 8) { /* an interesting 32-bit value */
                                        static const uint32_t v[] = {0, 1, 2, 3, 255, 256, 65, 64, 0x7fffffff,
                                                                     0x80000000u, UINT32_MAX, 4095};
                                        size_t at = HDR + 4 * rnd_below((uint32_t)(len - HDR) / 4);
                                        if (at + 4 <= len)
                                                memcpy(work + at, &v[rnd_below(12)], 4);
                                } else if (op == 6 && len > HDR) { /* a NUL or space somewhere */
                                        work[HDR + rnd_below((uint32_t)(len - HDR))] = rnd() & 1 ? 0 : ' ';
                                }
                        }
                }

                uint8_t *c = malloc(len ? len : 1);
                struct proto_msg m;
                FAST_CHECK(c != NULL, "c != NULL failed");
                memcpy(c, work, len);
                int r = proto_decode(c, len, &m);
                FAST_CHECK(r == 0 || r == -EBADMSG || r == -EPROTO, "iteration %u: proto_decode returned %d", it,
                           r);
                if (r == 0)
                        check_decoded(&m, c, len);
                counts[r == 0 ? 0 : r == -EBADMSG ? 1 : 2]++;
                free(c);
        }
        /* The mix must reach both outcomes, or the fuzzer tests nothing. */
        FAST_CHECK(counts[0] > ITER / 50, "only %u of %u inputs decoded", counts[0], ITER);
        FAST_CHECK(counts[1] > ITER / 50, "only %u of %u inputs rejected", counts[1], ITER);
}
END_TEST

static Suite *proto_suite(void) {
        Suite *s = suite_create("proto");
        TCase *tc;

        tc = tcase_create("round_trip");
        tcase_set_timeout(tc, 30);
        tcase_add_test(tc, test_hello_round_trips);
        tcase_add_test(tc, test_hello_reply_round_trips);
        tcase_add_test(tc, test_open_round_trips_for_every_role_policy_and_name_length);
        tcase_add_test(tc, test_open_reply_round_trips);
        tcase_add_test(tc, test_close_round_trips);
        tcase_add_test(tc, test_ok_round_trips);
        tcase_add_test(tc, test_error_round_trips_with_and_without_text);
        tcase_add_test(tc, test_list_round_trips);
        tcase_add_test(tc, test_list_reply_round_trips_for_zero_one_and_max_entries);
        tcase_add_test(tc, test_stat_and_topic_rm_round_trip);
        tcase_add_test(tc, test_stat_reply_round_trips_a_full_page_and_refuses_bad_entries);
        tcase_add_test(tc, test_info_round_trips_and_refuses_bad_labels_and_names);
        tcase_add_test(tc, test_peers_round_trip_a_full_page_and_refuse_bad_entries);
        tcase_add_test(tc, test_encoders_refuse_bad_input_and_small_buffers);
        tcase_add_test(tc, test_name_valid_accepts_printable_and_rejects_space_control_and_nul);
        suite_add_tcase(s, tc);

        tc = tcase_create("malformed");
        tcase_set_timeout(tc, 30);
        tcase_add_test(tc, test_datagram_shorter_than_header_is_rejected);
        tcase_add_test(tc, test_wrong_magic_is_rejected);
        tcase_add_test(tc, test_wrong_version_is_eproto);
        tcase_add_test(tc, test_unknown_type_is_rejected);
        tcase_add_test(tc, test_header_length_disagreeing_with_datagram_is_rejected);
        tcase_add_test(tc, test_datagram_larger_than_protocol_maximum_is_rejected);
        tcase_add_test(tc, test_body_shorter_than_fixed_part_is_rejected);
        tcase_add_test(tc, test_fixed_size_body_with_trailing_bytes_is_rejected);
        tcase_add_test(tc, test_open_name_len_zero_is_rejected);
        tcase_add_test(tc, test_open_name_len_above_maximum_is_rejected);
        tcase_add_test(tc, test_open_name_len_disagreeing_with_the_bytes_is_rejected);
        tcase_add_test(tc, test_open_name_with_nul_inside_is_rejected);
        tcase_add_test(tc, test_open_name_with_space_or_control_bytes_is_rejected);
        tcase_add_test(tc, test_open_with_nonzero_flags_is_rejected);
        tcase_add_test(tc, test_hello_with_nonzero_flags_is_rejected);
        tcase_add_test(tc, test_role_other_than_pub_or_sub_is_rejected);
        tcase_add_test(tc, test_policy_out_of_range_is_rejected);
        tcase_add_test(tc, test_error_text_too_long_or_mismatched_is_rejected);
        tcase_add_test(tc, test_error_code_not_a_negative_errno_is_rejected);
        tcase_add_test(tc, test_list_max_zero_or_above_limit_is_rejected);
        tcase_add_test(tc, test_list_reply_count_disagreeing_with_length_is_rejected);
        tcase_add_test(tc, test_list_reply_entry_name_unterminated_or_invalid_is_rejected);
        suite_add_tcase(s, tc);

        tc = tcase_create("fuzz");
        tcase_set_timeout(tc, 120);
        tcase_add_test(tc, test_fuzzed_datagrams_never_read_out_of_bounds);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        return RUN_SUITE(proto_suite()) ? 1 : 0;
}
