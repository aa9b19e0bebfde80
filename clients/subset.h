/* SPDX-License-Identifier: MIT */
/*
 * subset.h: a set of subscriptions named by topics and patterns, for
 * `zcbus sub` and `zcbus record`. A name is a pattern when it holds one of
 * '*', '?', '[' or '\\' (fnmatch(3) syntax, no flags: '*' also matches
 * dots); any other name is one topic, opened (and created if new) as given.
 *
 * Patterns are matched against the broker's topic list when the set is
 * made and again every rescan_ms while it is read, so that a topic created
 * later joins the set. A topic found by a later scan did not exist at the
 * scan before, so it is read from its oldest message still in the ring:
 * nothing published between its creation and its discovery is missed.
 * Topics found by the first scan start as opts->history says.
 *
 * At most SUBSET_MAX subscriptions (zcbus_wait_any's limit); a matching
 * topic beyond that, or one that cannot be opened, is reported once on
 * stderr and left out.
 */
#ifndef ZCBUS_CLI_SUBSET_H
#define ZCBUS_CLI_SUBSET_H

#include <stdbool.h>

#include "zcbus.h"

#define SUBSET_MAX 128u
#define SUBSET_RESCAN_MS_DEFAULT 500

struct subset;

/* Is name a pattern rather than a topic? */
bool subset_is_pattern(const char *name);

/* Open the set on bus (which it borrows): exact names at once, patterns by
 * a first scan. opts gives the topic shape for exact names that are new
 * (pattern matches are opened with none: they exist). rescan_ms 0: no
 * rescans. Errors are reported for cmd; returns 0 or a negative errno. */
int subset_new(const char *cmd, zcbus *bus, const zcbus_sub_opts *opts, char *const *names, unsigned n,
               int rescan_ms, struct subset **ret);
void subset_free(struct subset *s);
void subset_freep(struct subset **s);

/* Has the set any pattern? */
bool subset_has_patterns(const struct subset *s);

/* The next message of any subscription, in turn, with cli_recv's timeout
 * semantics (-EINTR on a stop signal, -ETIMEDOUT). *ret_topic names its
 * topic (valid while the set lives). Release it with subset_release before
 * the next call. Other errors are reported for cmd. */
int subset_recv(struct subset *s, zcbus_msg *msg, const char **ret_topic, int timeout_ms);
int subset_release(struct subset *s, const zcbus_msg *msg);

#endif
