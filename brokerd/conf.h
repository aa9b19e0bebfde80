/* SPDX-License-Identifier: MIT */
/*
 * conf.h: zcbusd's settings (defaults, config file, limits) and its log
 * sink. See conf.c.
 */
#ifndef ZCBUS_BROKERD_CONF_H
#define ZCBUS_BROKERD_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <limits.h>
#include <stdint.h>
#include <sys/un.h>
#include <syslog.h>

#define CONF_LINE_MAX 1024u          /* longest config line, without the newline */
#define CONF_FILE_MAX (1024u * 1024) /* largest config file we read */
#define CONF_SOCKET_MAX (sizeof(((struct sockaddr_un *)0)->sun_path))
#define CONF_PIDFILE_MAX PATH_MAX
#define CONF_RULES_MAX 1024u    /* rule lines in one file */
#define CONF_RULE_NAME_MAX 63u  /* bytes of a rule's name */
#define CONF_RULE_PATTERN_MAX 255u /* bytes of a rule's topic pattern (= PROTO_NAME_MAX) */
#define CONF_RULE_WHO_MAX 64u   /* uids and gids in one action's list */
#define CONF_GROUP_UNSET UINT32_MAX

/* What a rule lets a peer do with a topic. */
enum conf_action {
        CONF_ACT_PUBLISH,
        CONF_ACT_SUBSCRIBE,
        CONF_ACT_CREATE,
        CONF_ACT_COUNT,
};

enum conf_who_kind {
        CONF_WHO_ANY,
        CONF_WHO_UID,
        CONF_WHO_GID,
};

struct conf_who {
        uint32_t n;
        struct {
                uint8_t kind; /* CONF_WHO_* */
                uint32_t id;
        } v[CONF_RULE_WHO_MAX];
};

/* One `rule = NAME PATTERN action=who,...` line. The first rule whose
 * pattern matches a topic decides for it. */
struct conf_rule {
        char name[CONF_RULE_NAME_MAX + 1];
        char pattern[CONF_RULE_PATTERN_MAX + 1]; /* fnmatch(3) glob */
        struct conf_who who[CONF_ACT_COUNT];
};

/* One `stall = PATTERN MS` line: the stall timeout of RELIABLE topics
 * whose name matches (the first matching line decides; otherwise
 * stall_timeout_ms). 0: never evict. */
#define CONF_STALLS_MAX 64
struct conf_stall {
        char pattern[CONF_RULE_PATTERN_MAX + 1];
        uint32_t ms;
};

/* A conf is copied by value; only `rules` is owned memory (conf_deinit,
 * conf_rules_take). */
struct conf {
        char socket[CONF_SOCKET_MAX]; /* "" = not set */
        char pidfile[CONF_PIDFILE_MAX]; /* absolute; "" = none */
        uint32_t socket_mode;         /* permission bits of the socket file */
        uint32_t socket_group;        /* CONF_GROUP_UNSET: the broker's gid */
        uint32_t slot_count;          /* topic defaults */
        uint32_t slot_size;
        uint32_t policy; /* ZCBUS_POLICY_RELIABLE or _LATEST */
        uint32_t max_producers; /* per topic */
        uint32_t max_subscribers;
        uint32_t sub_uids; /* subscriber tables per topic: uids that may subscribe to it at once */
        uint32_t max_topics;
        uint32_t max_sessions;
        uint64_t max_segment_bytes; /* ring + subs segment of one topic */
        uint64_t max_total_bytes;   /* over all topics */
        uint32_t hello_timeout_ms;    /* a connection must say HELLO within it */
        uint32_t max_unauthenticated; /* connections waiting for HELLO, oldest dropped */
        uint32_t repair_timeout_ms;   /* give up on a dead producer's repair after it */
        uint32_t stall_timeout_ms;    /* evict a subscriber that holds a reliable topic
                                         back this long without progress; 0: never */
        struct conf_stall stalls[CONF_STALLS_MAX]; /* per-topic overrides */
        uint32_t nstalls;
        uint32_t uid_max_sessions;    /* quotas per uid */
        uint32_t uid_max_topics;
        uint32_t uid_max_entries;
        uint64_t uid_max_bytes;
        uint32_t session_max_topics; /* quotas per session */
        uint32_t session_max_entries;
        uint64_t session_max_bytes;
        bool verbose;
        struct conf_rule *rules; /* owned */
        uint32_t nrules, rules_cap;
};

/* Built-in defaults (no rules). */
void conf_init(struct conf *c);
/* Free the rules. The conf stays usable (with no rules). */
void conf_deinit(struct conf *c);
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
/* May uid/gid do action on topic? Root and the broker's own uid may do
 * anything; everyone else needs the first rule whose pattern matches the
 * topic to list them for the action (default deny). Returns 0, or
 * -EACCES with a message naming the rule in err. */
int conf_access(const struct conf *c, uint32_t uid, uint32_t gid, const char *topic, enum conf_action action,
                char *err, size_t errlen);
const char *conf_action_name(enum conf_action a);
/* The stall timeout of topic (ms; 0: never evict). */
uint32_t conf_stall_ms(const struct conf *c, const char *topic);
/* Call fn for every setting whose value differs between a and b, with
 * its key and both values as text; all `rule` lines count as one
 * setting, all `stall` lines as another. */
void conf_diff(const struct conf *a, const struct conf *b,
               void (*fn)(const char *key, const char *was, const char *now, void *userdata), void *userdata);
/* Strict number: decimal digits only, optional K/M/G (x1024) suffix, within
 * [min, max]. Returns 0, -EINVAL or -ERANGE. */
int conf_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *ret);

/* Logging: stderr (foreground) or syslog (daemon). Debug messages only
 * when verbose. On stderr each line starts with "zcbusd: ", or, when
 * stderr is the journal ($JOURNAL_STREAM names its device and inode), with
 * the priority as "<N>" (sd-daemon(3)), so that journald keeps the level.
 * The last error message is kept so a daemonizing child can hand it to
 * its parent. */
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
