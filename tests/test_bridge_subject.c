/* SPDX-License-Identifier: MIT */
/*
 * test_bridge_subject.c: Check suite "bridge_subject", the bridge's name
 * mapping (bridge/subject.c): topic names survive topic -> subject ->
 * topic unchanged, whatever their bytes; the subjects are ones NATS
 * delivers (no wildcard, no empty token); patterns, matching and stream
 * names behave as zcbus-bridge(1) says.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"
#include "subject.h"

static void round_trip(const char *topic, const char *want_subject) {
        char subj[SUBJ_MAX], back[512];

        ck_assert_int_eq(subj_from_topic("zcbus", topic, subj, sizeof(subj)), 0);
        if (want_subject)
                ck_assert_str_eq(subj, want_subject);
        /* A subject NATS delivers: no wildcard, no empty token, no blank. */
        ck_assert_ptr_null(strpbrk(subj, "*> \t"));
        ck_assert_ptr_null(strstr(subj, ".."));
        ck_assert_int_ne(subj[strlen(subj) - 1], '.');
        ck_assert_int_eq(subj_to_topic("zcbus", subj, back, sizeof(back)), 0);
        ck_assert_str_eq(back, topic);
}

START_TEST(test_plain_names_map_dot_for_dot) {
        round_trip("cam.front.raw", "zcbus.cam.front.raw");
        round_trip("a_b-c", "zcbus.a_b-c");
}
END_TEST

START_TEST(test_wildcards_percent_and_other_bytes_are_escaped) {
        round_trip("cam*1", "zcbus.cam%2A1");
        round_trip("a>b", "zcbus.a%3Eb");
        round_trip("100%", "zcbus.100%25");
        round_trip("caf\xc3\xa9", "zcbus.caf%C3%A9");
}
END_TEST

START_TEST(test_dots_that_would_make_empty_tokens_are_escaped) {
        round_trip(".x", "zcbus.%2Ex");
        round_trip("x.", "zcbus.x%2E");
        round_trip("a..b", "zcbus.a%2E%2Eb"); /* one token */
        round_trip(".", "zcbus.%2E");
        round_trip("...", "zcbus.%2E%2E%2E");
}
END_TEST

START_TEST(test_every_printable_byte_round_trips) {
        char topic[3] = {0};

        for (int c = 0x21; c < 0x7f; c++)
                for (int d = 0x21; d < 0x7f; d += 7) {
                        topic[0] = (char)c;
                        topic[1] = (char)d;
                        round_trip(topic, NULL);
                }
}
END_TEST

START_TEST(test_foreign_or_malformed_subjects_are_refused) {
        char t[64];

        ck_assert_int_eq(subj_to_topic("zcbus", "other.x", t, sizeof(t)), -EINVAL);
        ck_assert_int_eq(subj_to_topic("zcbus", "zcbusx.y", t, sizeof(t)), -EINVAL);
        ck_assert_int_eq(subj_to_topic("zcbus", "zcbus.", t, sizeof(t)), -EINVAL);
        ck_assert_int_eq(subj_to_topic("zcbus", "zcbus.%G1", t, sizeof(t)), -EINVAL);
        ck_assert_int_eq(subj_to_topic("zcbus", "zcbus.%2", t, sizeof(t)), -EINVAL);
        ck_assert_int_eq(subj_to_topic("zcbus", "zcbus.%00", t, sizeof(t)), -EINVAL);
        ck_assert_int_eq(subj_to_topic("zcbus", "zcbus.abcdef", t, 4), -ENAMETOOLONG);
        ck_assert_int_eq(subj_from_topic("zcbus", "abcdef", t, 8), -ENAMETOOLONG);
        ck_assert_int_eq(subj_from_topic("zcbus", "", t, sizeof(t)), -EINVAL);
}
END_TEST

START_TEST(test_patterns_are_checked) {
        char err[512];

        ck_assert_int_eq(subj_check_pattern("cam.*", err, sizeof(err)), 0);
        ck_assert_int_eq(subj_check_pattern("cam.>", err, sizeof(err)), 0);
        ck_assert_int_eq(subj_check_pattern(">", err, sizeof(err)), 0);
        ck_assert_int_eq(subj_check_pattern("a.>.b", err, sizeof(err)), -EINVAL);
        ck_assert_int_eq(subj_check_pattern("a..b", err, sizeof(err)), -EINVAL);
        ck_assert_int_eq(subj_check_pattern("a.", err, sizeof(err)), -EINVAL);
        ck_assert_int_eq(subj_check_pattern(".a", err, sizeof(err)), -EINVAL);
        ck_assert_int_eq(subj_check_pattern("fr*nt", err, sizeof(err)), -EINVAL);
        ck_assert_int_eq(subj_check_pattern("a b", err, sizeof(err)), -EINVAL);
        ck_assert_int_eq(subj_check_pattern("", err, sizeof(err)), -EINVAL);
        ck_assert(subj_has_wildcard("a.*"));
        ck_assert(subj_has_wildcard(">"));
        ck_assert(!subj_has_wildcard("a.b*"));
        ck_assert(subj_prefix_ok("zcbus.site-1"));
        ck_assert(!subj_prefix_ok("zcbus.*"));
        ck_assert(!subj_prefix_ok("a%b"));
}
END_TEST

static bool matches(const char *pattern, const char *topic) {
        char pat[SUBJ_MAX], subj[SUBJ_MAX];

        ck_assert_int_eq(subj_from_pattern("zcbus", pattern, pat, sizeof(pat)), 0);
        ck_assert_int_eq(subj_from_topic("zcbus", topic, subj, sizeof(subj)), 0);
        return subj_match(pat, subj);
}

START_TEST(test_patterns_match_as_in_nats) {
        ck_assert(matches("cam.*", "cam.front"));
        ck_assert(!matches("cam.*", "cam.front.raw"));
        ck_assert(!matches("cam.*", "cam"));
        ck_assert(matches("cam.>", "cam.front.raw"));
        ck_assert(!matches("cam.>", "cam"));
        ck_assert(matches(">", "anything.at.all"));
        ck_assert(matches("exact", "exact"));
        ck_assert(!matches("exact", "exactly"));
        ck_assert(matches("caf\xc3\xa9.a:b", "caf\xc3\xa9.a:b")); /* literals escaped alike */
        ck_assert(!matches("cam.*", "cam*1"));
}
END_TEST

START_TEST(test_stream_names_are_valid_and_distinct) {
        char a[STREAM_NAME_MAX], b[STREAM_NAME_MAX], big[SUBJ_MAX];

        subj_stream_name("zcbus.a.b", a, sizeof(a));
        subj_stream_name("zcbus.a_b", b, sizeof(b));
        ck_assert_str_ne(a, b);
        ck_assert_int_eq(strncmp(a, "ZCBUS_zcbus_a_b_", 16), 0);
        memset(big, 'x', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        subj_stream_name(big, a, sizeof(a));
        ck_assert_uint_lt(strlen(a), STREAM_NAME_MAX);
        ck_assert_ptr_null(strpbrk(a, ".*> \t/\\"));
}
END_TEST


/* ---- batch.h: the records of a batched message ---------------------------- */

START_TEST(test_batch_round_trips) {
        unsigned char buf[256];
        size_t len = 0;
        struct batch_rd rd;
        const void *d;
        size_t l;
        uint64_t seq;

        len += batch_put(buf + len, 0, "a", 1);
        len += batch_put(buf + len, 1, "", 0);
        len += batch_put(buf + len, 5, "xyz", 3);
        ck_assert(batch_valid(buf, len, 3, 100));
        batch_rd_init(&rd, buf, len, 3, 100);
        ck_assert_int_eq(batch_next(&rd, &d, &l, &seq), 1);
        ck_assert(l == 1 && memcmp(d, "a", 1) == 0 && seq == 100);
        ck_assert_int_eq(batch_next(&rd, &d, &l, &seq), 1);
        ck_assert(l == 0 && seq == 101);
        ck_assert_int_eq(batch_next(&rd, &d, &l, &seq), 1);
        ck_assert(l == 3 && memcmp(d, "xyz", 3) == 0 && seq == 106);
        ck_assert_int_eq(batch_next(&rd, &d, &l, &seq), 0);
}
END_TEST

START_TEST(test_batch_malformed_is_refused_whole) {
        unsigned char buf[256], bad[256];
        size_t len = 0;

        len += batch_put(buf + len, 0, "ab", 2);
        len += batch_put(buf + len, 2, "cd", 2);
        ck_assert(batch_valid(buf, len, 2, 7));
        ck_assert(!batch_valid(buf, len, 3, 7));        /* fewer records than said */
        ck_assert(!batch_valid(buf, len, 1, 7));        /* bytes after the last */
        ck_assert(!batch_valid(buf, len - 1, 2, 7));    /* a record cut short */
        ck_assert(!batch_valid(buf, 5, 2, 7));          /* a record header cut short */
        ck_assert(!batch_valid(buf, len, 2, UINT64_MAX - 1)); /* the sequence would wrap */
        memcpy(bad, buf, len);
        bad[4] = 1; /* the first record's step is not 0 */
        ck_assert(!batch_valid(bad, len, 2, 7));
        memcpy(bad, buf, len);
        bad[10 + 4] = 0; /* a later step of 0: sequences must rise */
        ck_assert(!batch_valid(bad, len, 2, 7));
        memcpy(bad, buf, len);
        bad[3] = 0x80; /* a length far past the payload */
        ck_assert(!batch_valid(bad, len, 2, 7));
        /* Every cut and every flipped byte of a valid payload: never read
         * past it (ASan), and a cut is always refused. */
        for (size_t cut = 0; cut < len; cut++)
                ck_assert(!batch_valid(buf, cut, 2, 7));
        for (size_t i = 0; i < len; i++)
                for (unsigned v = 0; v < 256; v += 17) {
                        memcpy(bad, buf, len);
                        bad[i] = (unsigned char)v;
                        (void)batch_valid(bad, len, 2, 7);
                }
}
END_TEST

START_TEST(test_batch_counts) {
        ck_assert_uint_eq(batch_count("2"), 2);
        ck_assert_uint_eq(batch_count("64"), 64);
        ck_assert_uint_eq(batch_count("64"), BATCH_MAX);
        ck_assert_uint_eq(batch_count("1"), 0);
        ck_assert_uint_eq(batch_count("0"), 0);
        ck_assert_uint_eq(batch_count("65"), 0);
        ck_assert_uint_eq(batch_count("4096"), 0);
        ck_assert_uint_eq(batch_count("99999999999999999999"), 0);
        ck_assert_uint_eq(batch_count(""), 0);
        ck_assert_uint_eq(batch_count(NULL), 0);
        ck_assert_uint_eq(batch_count(" 3"), 0);
        ck_assert_uint_eq(batch_count("3x"), 0);
        ck_assert_uint_eq(batch_count("-3"), 0);
        ck_assert_uint_eq(batch_count("06"), 0);
}
END_TEST

static Suite *bridge_subject_suite(void) {
        Suite *s = suite_create("bridge_subject");
        TCase *tc = tcase_create("mapping");

        tcase_add_test(tc, test_plain_names_map_dot_for_dot);
        tcase_add_test(tc, test_wildcards_percent_and_other_bytes_are_escaped);
        tcase_add_test(tc, test_dots_that_would_make_empty_tokens_are_escaped);
        tcase_add_test(tc, test_every_printable_byte_round_trips);
        tcase_add_test(tc, test_foreign_or_malformed_subjects_are_refused);
        tcase_add_test(tc, test_patterns_are_checked);
        tcase_add_test(tc, test_patterns_match_as_in_nats);
        tcase_add_test(tc, test_stream_names_are_valid_and_distinct);
        suite_add_tcase(s, tc);
        tc = tcase_create("batch");
        tcase_add_test(tc, test_batch_round_trips);
        tcase_add_test(tc, test_batch_malformed_is_refused_whole);
        tcase_add_test(tc, test_batch_counts);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        SRunner *sr = srunner_create(bridge_subject_suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? 1 : 0;
}
