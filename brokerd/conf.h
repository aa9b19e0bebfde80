/* SPDX-License-Identifier: MIT */
/*
 * conf.h: zcbusd's settings (defaults, config file, limits) and its log
 * sink. See conf.c.
 */
#ifndef ZCBUS_BROKERD_CONF_H
#define ZCBUS_BROKERD_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/un.h>
#include <syslog.h>

#define CONF_LINE_MAX 1024u          /* longest config line, without the newline */
#define CONF_FILE_MAX (1024u * 1024) /* largest config file we read */
#define CONF_SOCKET_MAX (sizeof(((struct sockaddr_un *)0)->sun_path))

struct conf {
        char socket[CONF_SOCKET_MAX]; /* "" = not set */
        uint32_t slot_count;          /* topic defaults */
        uint32_t slot_size;
        uint32_t policy; /* ZCBUS_POLICY_RELIABLE or _LATEST */
        uint32_t max_producers; /* per topic */
        uint32_t max_subscribers;
        uint32_t max_topics;
        uint32_t max_sessions;
        uint64_t max_segment_bytes; /* ring + subs segment of one topic */
        uint64_t max_total_bytes;   /* over all topics */
        bool verbose;
};

/* Built-in defaults. */
void conf_init(struct conf *c);
/* Apply one line (without its newline). Blank and '#' lines are no-ops.
 * Returns 0, or -EINVAL with a message in err (no "FILE:LINE:" prefix). */
int conf_parse_line(struct conf *c, const char *line, char *err, size_t errlen);
/* Apply a whole buffer of lines. name is used for the "NAME:LINE: "
 * prefix of the message in err. */
int conf_parse(struct conf *c, const char *buf, size_t len, const char *name, char *err, size_t errlen);
/* Read and apply a file. Returns 0 or a negative errno with err filled
 * ("PATH:LINE: ..." or "PATH: <errno text>"). c is untouched on error. */
int conf_load_file(const char *path, struct conf *c, char *err, size_t errlen);
/* Cross-field checks once everything is applied (the default topic must
 * fit the byte limits). Returns 0 or -EINVAL with err filled. */
int conf_check(const struct conf *c, char *err, size_t errlen);
/* Strict number: decimal digits only, optional K/M/G (x1024) suffix, within
 * [min, max]. Returns 0, -EINVAL or -ERANGE. */
int conf_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *ret);

/* Logging: stderr (foreground) or syslog (daemon). Debug messages only
 * when verbose. The last error message is kept so a daemonizing child can
 * hand it to its parent. */
void conf_log_setup(bool use_syslog, bool verbose);
void conf_log_set_verbose(bool verbose);
bool conf_log_verbose(void);
void conf_log(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *conf_log_last_error(void);

#define log_err(...) conf_log(LOG_ERR, __VA_ARGS__)
#define log_warn(...) conf_log(LOG_WARNING, __VA_ARGS__)
#define log_notice(...) conf_log(LOG_NOTICE, __VA_ARGS__)
#define log_info(...) conf_log(LOG_INFO, __VA_ARGS__)
#define log_debug(...) conf_log(LOG_DEBUG, __VA_ARGS__)

#endif
