/* SPDX-License-Identifier: MIT */
/*
 * test_bridge_conf.c: Check suite "bridge_conf", the bridge's config
 * parser (bridge/conf.c): every key sets what it says, defaults hold,
 * and each kind of bad line is refused with a reason, never applied.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf.h"

static struct bconf c;
static char err[2048];

static void setup(void) {
        bconf_init(&c);
        err[0] = '\0';
}

static void teardown(void) {
        bconf_deinit(&c);
}

static int line(const char *l) {
        return bconf_parse_line(&c, l, 7, err, sizeof(err));
}

START_TEST(test_defaults_bridge_nothing) {
        ck_assert_uint_eq(c.nout, 0);
        ck_assert_uint_eq(c.nin, 0);
        ck_assert_uint_eq(c.replicas, 1);
        ck_assert_uint_eq(c.buffer, 1024);
        ck_assert_uint_eq(c.window, 256);
        ck_assert_uint_eq(c.window_bytes, 8u << 20);
        ck_assert_uint_eq(c.reorder, 4096);
        ck_assert_uint_eq(c.reorder_bytes, 64u << 20);
        ck_assert_uint_eq(c.reorder_ms, 10000);
        ck_assert_uint_eq(c.test_withhold, 0);
        ck_assert(c.send_asap);
        ck_assert_ptr_null(c.prefix);
}
END_TEST

START_TEST(test_keys_set_their_fields) {
        ck_assert_int_eq(line("nats = nats://127.0.0.1:4222, nats://10.0.0.2:4222"), 0);
        ck_assert_int_eq(line("  prefix=site1.zcbus   # comment"), 0);
        ck_assert_int_eq(line("state_dir = /tmp/x"), 0);
        ck_assert_int_eq(line("replicas = 3"), 0);
        ck_assert_int_eq(line("buffer_bytes = 8M"), 0);
        ck_assert_int_eq(line("slot_size = 64K"), 0);
        ck_assert_int_eq(line("send_asap = no"), 0);
        ck_assert_int_eq(line("window = 64"), 0);
        ck_assert_int_eq(line("window_bytes = 1M"), 0);
        ck_assert_int_eq(line("reorder = 0"), 0);
        ck_assert_int_eq(line("reorder_bytes = 4M"), 0);
        ck_assert_int_eq(line("reorder_ms = 2500"), 0);
        ck_assert_int_eq(line("test_withhold = 5"), 0);
        ck_assert_int_eq(line("bus_id = 6f1c1e2a-1b2c-4d5e-8f90-0123456789ab"), 0);
        ck_assert_int_eq(line("out = cam.*"), 0);
        ck_assert_int_eq(line("out = tele.* batch"), 0);
        ck_assert_int_eq(line("in = cam.calib reliable slots=64 slot_size=4K"), 0);
        ck_assert_int_eq(line("in = sensors.>"), 0);
        ck_assert_int_eq(line(""), 0);
        ck_assert_int_eq(line("   # only a comment"), 0);
        ck_assert(!c.out[0].batch && c.out[1].batch);
        ck_assert_uint_eq(c.nservers, 2);
        ck_assert_str_eq(c.servers[1], "nats://10.0.0.2:4222");
        ck_assert_str_eq(c.prefix, "site1.zcbus");
        ck_assert_str_eq(c.state_dir, "/tmp/x");
        ck_assert_uint_eq(c.replicas, 3);
        ck_assert_uint_eq(c.buffer_bytes, 8u << 20);
        ck_assert_uint_eq(c.slot_size, 64u << 10);
        ck_assert(!c.send_asap);
        ck_assert_uint_eq(c.window, 64);
        ck_assert_uint_eq(c.window_bytes, 1u << 20);
        ck_assert_uint_eq(c.reorder, 0);
        ck_assert_uint_eq(c.reorder_bytes, 4u << 20);
        ck_assert_uint_eq(c.reorder_ms, 2500);
        ck_assert_uint_eq(c.test_withhold, 5);
        ck_assert(c.have_bus_id);
        ck_assert_uint_eq(c.bus_id[0], 0x6f);
        ck_assert_uint_eq(c.nout, 2);
        ck_assert_str_eq(c.out[0].pattern, "cam.*");
        ck_assert_uint_eq(c.out[0].line, 7);
        ck_assert_uint_eq(c.nin, 2);
        ck_assert_uint_eq(c.in[0].policy, BCONF_RELIABLE);
        ck_assert_uint_eq(c.in[0].slot_count, 64);
        ck_assert_uint_eq(c.in[0].slot_size, 4096);
        ck_assert_uint_eq(c.in[1].policy, BCONF_LATEST);
}
END_TEST

static void refused(const char *l, const char *why) {
        ck_assert_int_eq(line(l), -EINVAL);
        ck_assert_msg(strstr(err, why), "'%s': got '%s', want '%s'", l, err, why);
}

START_TEST(test_bad_lines_are_refused_with_a_reason) {
        refused("frobnicate = 1", "unknown key 'frobnicate'");
        refused("out cam", "expected 'key = value'");
        refused("out =", "needs a topic pattern");
        refused("out = a..b", "empty token");
        refused("out = cam.* latest", "unexpected 'latest'");
        refused("out = cam.* batch batch", "unexpected 'batch'");
        refused("in = a.* reliable", "names one topic");
        refused("in = a sometimes", "unknown word 'sometimes'");
        refused("in = a slots=3", "power of two");
        refused("in = a slot_size=0", "slot_size");
        refused("replicas = 0", "'replicas'");
        refused("replicas = 3x", "'replicas'");
        refused("replicas = -1", "'replicas'");
        refused("slot_count = 3", "power of two");
        refused("scan_ms = 99999999999999999999", "'scan_ms'");
        refused("nats = tcp://x", "not a nats://HOST:PORT URL");
        refused("nats = ", "at least one");
        refused("prefix = a.*", "'prefix'");
        refused("bus_id = nope", "not a uuid");
        refused("send_asap = maybe", "yes or no");
        refused("window = 0", "'window': '0' is not a number from 1 to 65536");
        refused("window = 100000", "'window'");
        refused("window_bytes = 1K", "'window_bytes'");
        refused("reorder = 2M", "'reorder'");
        refused("reorder_bytes = 10", "'reorder_bytes'");
        refused("reorder_ms = 5", "'reorder_ms': '5' is not a number from 10");
        refused("test_withhold = -1", "'test_withhold'");
        ck_assert_uint_eq(c.nout, 0);
        ck_assert_uint_eq(c.nin, 0);
}
END_TEST

START_TEST(test_keys_set_twice_are_refused) {
        ck_assert_int_eq(line("state_dir = /a"), 0);
        refused("state_dir = /b", "set twice");
        ck_assert_int_eq(line("nats = nats://a:1"), 0);
        refused("nats = nats://b:1", "set twice");
        ck_assert_int_eq(line("window = 16"), 0);
        refused("window = 32", "'window' is set twice");
        ck_assert_uint_eq(c.window, 16);
        ck_assert_int_eq(line("reorder_bytes = 1M"), 0);
        refused("reorder_bytes = 2M", "'reorder_bytes' is set twice");
        ck_assert_int_eq(line("send_asap = no"), 0);
        refused("send_asap = yes", "'send_asap' is set twice");
        ck_assert(!c.send_asap);
}
END_TEST

START_TEST(test_a_file_error_names_file_and_line) {
        char path[] = "/tmp/zcbus-bridge-conf-XXXXXX";
        int fd = mkstemp(path);
        FILE *f;

        ck_assert_int_ge(fd, 0);
        f = fdopen(fd, "w");
        ck_assert_ptr_nonnull(f);
        (void)fputs("# bridge\nout = cam.*\n\nin = x.* reliable\n", f);
        (void)fclose(f);
        ck_assert_int_eq(bconf_load_file(&c, path, err, sizeof(err)), -EINVAL);
        (void)unlink(path);
        ck_assert_msg(strncmp(err, path, strlen(path)) == 0 && strncmp(err + strlen(path), ":4: ", 4) == 0,
                      "got '%s'", err);
}
END_TEST

START_TEST(test_the_same_reliable_topic_twice_is_refused) {
        ck_assert_int_eq(line("in = t reliable"), 0);
        ck_assert_int_eq(bconf_parse_line(&c, "in = t reliable", 9, err, sizeof(err)), 0);
        ck_assert_int_eq(bconf_check(&c, "f.conf", err, sizeof(err)), -EINVAL);
        ck_assert_msg(strstr(err, "f.conf:9: reliable topic 't' already comes in at line 7"), "got '%s'", err);
}
END_TEST

static Suite *bridge_conf_suite(void) {
        Suite *s = suite_create("bridge_conf");
        TCase *tc = tcase_create("parse");

        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, test_defaults_bridge_nothing);
        tcase_add_test(tc, test_keys_set_their_fields);
        tcase_add_test(tc, test_bad_lines_are_refused_with_a_reason);
        tcase_add_test(tc, test_keys_set_twice_are_refused);
        tcase_add_test(tc, test_a_file_error_names_file_and_line);
        tcase_add_test(tc, test_the_same_reliable_topic_twice_is_refused);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        SRunner *sr = srunner_create(bridge_conf_suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? 1 : 0;
}
