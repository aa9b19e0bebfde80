/* SPDX-License-Identifier: MIT */
/*
 * subject.h: topic names <-> NATS subjects, the patterns of the config
 * file, and JetStream stream names.
 *
 * A topic "a.b.c" is the subject "PREFIX.a.b.c": dots separate tokens on
 * both sides. A byte other than A-Z a-z 0-9 '_' '-' is written %XX (hex,
 * upper case), and so is a dot that would make an empty token (leading,
 * trailing or doubled), because NATS allows neither wildcards ('*', '>')
 * nor empty tokens in a subject it delivers. The mapping is one-to-one, so
 * the other side decodes the exact topic name.
 */
#ifndef ZCBUS_BRIDGE_SUBJECT_H
#define ZCBUS_BRIDGE_SUBJECT_H

#include <stdbool.h>
#include <stddef.h>

#define SUBJ_MAX 1024
#define STREAM_NAME_MAX 128

/* Return 0, -ENAMETOOLONG, or -EINVAL (not a subject of ours). */
int subj_from_topic(const char *prefix, const char *topic, char *buf, size_t len);
int subj_to_topic(const char *prefix, const char *subject, char *buf, size_t len);
/* A config pattern ("camera.*", "sensors.>", "exact.name") as a NATS
 * subscription subject under prefix. */
int subj_from_pattern(const char *prefix, const char *pattern, char *buf, size_t len);
/* Is pattern valid? 0, or -EINVAL with the reason in err. */
int subj_check_pattern(const char *pattern, char *err, size_t errlen);
bool subj_has_wildcard(const char *pattern);
/* Is a prefix valid (tokens of A-Z a-z 0-9 _ -, dot separated)? */
bool subj_prefix_ok(const char *prefix);
/* NATS matching: subject against a subscription subject with '*', '>'. */
bool subj_match(const char *pattern, const char *subject);
/* The stream of a reliable topic's subject: "ZCBUS_" + the subject with
 * other bytes as '_', cut to fit, + '_' + 8 hex digits of its hash (so
 * "a.b" and "a_b" get different streams). */
void subj_stream_name(const char *subject, char *buf, size_t len);

#endif
