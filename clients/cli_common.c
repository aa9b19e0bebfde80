/* SPDX-License-Identifier: MIT */
/*
 * cli_common.c: what the commands that move data (pub, sub, record,
 * replay) share and that needs no broker: option values (timeouts, the
 * topic's shape), the topic name check that says why a name is refused,
 * the readiness line of --ready-fd, the stop signals, the slices of a
 * wait and a message as a JSON line. Declared in cli.h.
 *
 * Waits are sliced (CLI_WAIT_SLICE_MS) so SIGINT and SIGTERM end a command
 * promptly whatever the wait mode: a spinning wait never sees EINTR, and a
 * signal landing just before a futex sleep would otherwise be missed.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "zcbus.h"
#include "cli.h"
#include "json.h"

volatile sig_atomic_t cli_stop_signal;

void cli_on_stop(int sig) {
        cli_stop_signal = sig;
}

void cli_catch_stop(void) {
        /* No SA_RESTART: a blocking wait returns -EINTR. SA_RESETHAND: a
         * second signal acts at once should the first not be seen. */
        struct sigaction sa = { .sa_handler = cli_on_stop, .sa_flags = SA_RESETHAND };

        (void)sigemptyset(&sa.sa_mask);
        (void)sigaction(SIGINT, &sa, NULL);
        (void)sigaction(SIGTERM, &sa, NULL);
        (void)signal(SIGPIPE, SIG_IGN);
}

int cli_bad_value(const char *cmd, const char *opt, const char *val, const char *want) {
        cli_err(cmd, "invalid %s '%s' (expected %s; try 'zcbus %s --help')", opt, val, want, cmd);
        return 2;
}

int cli_parse_timeout(const char *s, int *ret) {
        unsigned long long v;

        if (strcmp(s, "-1") == 0) {
                *ret = -1;
                return 0;
        }
        if (cli_parse_u64(s, 0, INT_MAX, 0, &v) < 0)
                return -EINVAL;
        *ret = (int)v;
        return 0;
}

int cli_check_topic(const char *cmd, const char *topic) {
        size_t n = strlen(topic);

        if (n == 0 || n > ZCBUS_TOPIC_MAX) {
                cli_err(cmd, "invalid topic name '%s' (1 to %d bytes; try 'zcbus %s --help')", topic,
                        ZCBUS_TOPIC_MAX, cmd);
                return -EINVAL;
        }
        /* What the broker accepts (docs/protocol.md): bytes above space, no
         * DEL. Said here with the reason, rather than as the library's
         * bare -EINVAL. */
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char)topic[i];
                if (c <= 0x20 || c == 0x7f) {
                        cli_err(cmd, "invalid topic name '%s': byte %zu is a space or a control character (try "
                                "'zcbus %s --help')", topic, i + 1, cmd);
                        return -EINVAL;
                }
        }
        return 0;
}

int cli_topic_opt(const char *cmd, int o, const char *arg, uint32_t *slot_count, uint32_t *slot_size,
                  uint32_t *policy) {
        unsigned long long v;

        switch (o) {
        case CLI_OPT_SLOT_SIZE:
                if (cli_parse_u64(arg, 1, UINT32_MAX, 1, &v) < 0)
                        return cli_bad_value(cmd, "slot size", arg, "1 to 4294967295 bytes, K/M/G allowed");
                *slot_size = (uint32_t)v;
                return 0;
        case CLI_OPT_SLOTS:
                /* 16M: the ring's limit (SEG_SLOT_COUNT_MAX); the broker
                 * refuses more. */
                if (cli_parse_u64(arg, 2, 1ULL << 24, 1, &v) < 0 || !is_pow2_u32((uint32_t)v))
                        return cli_bad_value(cmd, "slot count", arg, "a power of two from 2 to 16M");
                *slot_count = (uint32_t)v;
                return 0;
        default:
                if (strcmp(arg, "reliable") == 0)
                        *policy = ZCBUS_POLICY_RELIABLE;
                else if (strcmp(arg, "latest") == 0)
                        *policy = ZCBUS_POLICY_LATEST;
                else
                        return cli_bad_value(cmd, "policy", arg, "reliable or latest");
                return 0;
        }
}

int cli_parse_ready_fd(const char *cmd, const char *arg, int *ret_fd) {
        unsigned long long v;

        /* Not stdout (it may carry the messages), and it must be open now,
         * before connecting could reuse it. */
        if (cli_parse_u64(arg, 0, INT_MAX, 0, &v) < 0 || v == STDOUT_FILENO)
                return cli_bad_value(cmd, "ready fd", arg, "an open descriptor other than 1");
        if (fcntl((int)v, F_GETFD) < 0) {
                cli_err(cmd, "--ready-fd %llu: %s (try 'zcbus %s --help')", v, strerror(errno), cmd);
                return 2;
        }
        *ret_fd = (int)v;
        return 0;
}

void cli_signal_ready(int fd) {
        static const char ready[] = "READY\n";
        size_t off = 0;

        if (fd < 0)
                return;
        while (off < sizeof(ready) - 1) {
                ssize_t n = write(fd, ready + off, sizeof(ready) - 1 - off);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break; /* nobody listening: not our problem */
                off += (size_t)n;
        }
        (void)close(fd);
}

uint64_t cli_mono_ns(void) {
        struct timespec ts;

        (void)clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

int cli_slice_ms(int timeout_ms, uint64_t deadline_ns) {
        uint64_t now, left_ms;

        if (timeout_ms == 0)
                return 0;
        if (timeout_ms < 0)
                return CLI_WAIT_SLICE_MS;
        now = cli_mono_ns();
        if (now >= deadline_ns)
                return -1;
        left_ms = (deadline_ns - now + 999999) / 1000000;
        return left_ms < CLI_WAIT_SLICE_MS ? (int)left_ms : CLI_WAIT_SLICE_MS;
}

void cli_json_msg(FILE *f, const char *topic, const zcbus_msg *m, const char *ts_source) {
        bool text = json_utf8_valid(m->data, m->len);

        (void)fputs("{\"topic\":", f);
        json_str(f, topic);
        (void)fprintf(f, ",\"seq\":%" PRIu64 ",\"len\":%zu,\"lost\":%" PRIu64 ",\"ts_ns\":", m->seq, m->len,
                      m->lost);
        if (m->timestamp_ns)
                (void)fprintf(f, "%" PRIu64, m->timestamp_ns);
        else
                (void)fputs("null", f);
        if (ts_source)
                (void)fprintf(f, ",\"ts_source\":\"%s\"", ts_source);
        (void)fprintf(f, ",\"encoding\":\"%s\",\"payload\":", text ? "utf-8" : "base64");
        if (text)
                json_strn(f, m->data, m->len);
        else
                json_base64(f, m->data, m->len);
        (void)fputs("}\n", f);
}
