/* SPDX-License-Identifier: MIT */
/*
 * subset.c: a set of subscriptions from topic names and patterns (subset.h).
 *
 * Receiving takes turns: each call first tries every subscription without
 * waiting, starting after the one that delivered last, so one busy topic
 * cannot starve the others. Only when none has a message does it wait, on
 * the one subscription itself (its own wait mode) or on all of them with
 * zcbus_wait_any, in slices no longer than the next rescan or
 * CLI_WAIT_SLICE_MS, so stop signals and new topics are seen promptly.
 * A rescan lists the broker's topics (zcbus_list_topics, the same call
 * as `zcbus list`) and opens the new ones that match a pattern.
 */
#include <errno.h>
#include <fnmatch.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "zcbus.h"
#include "cli.h"
#include "subset.h"

/* Entries asked for per list request. */
#define LIST_PAGE 64

struct subset_entry {
        char name[ZCBUS_TOPIC_MAX + 1];
        zcbus_sub *sub; /* NULL: left out (reported once) */
};

struct subset {
        const char *cmd;
        zcbus *bus;
        zcbus_sub_opts opts;
        char *const *names;
        unsigned nnames;
        bool patterns;
        int rescan_ms;
        uint64_t next_scan_ns;
        bool first_scan_done;
        bool full_reported;
        struct subset_entry *e; /* every topic seen, open or left out */
        unsigned n, cap;
        zcbus_sub *subs[SUBSET_MAX]; /* the open ones, for zcbus_wait_any */
        unsigned idx[SUBSET_MAX];    /* their entries */
        unsigned nsubs;
        unsigned turn;    /* where the next round of tries starts */
        unsigned current; /* entry of the message out, or UINT32_MAX */
};

bool subset_is_pattern(const char *name) {
        return strpbrk(name, "*?[\\") != NULL;
}

bool subset_has_patterns(const struct subset *s) {
        return s->patterns;
}

static struct subset_entry *find(struct subset *s, const char *name) {
        for (unsigned i = 0; i < s->n; i++)
                if (strcmp(s->e[i].name, name) == 0)
                        return &s->e[i];
        return NULL;
}

/* Add name and open it (opts as given), or note it left out. Returns 0, or
 * a negative errno when an exact name fails (fatal). */
static int add(struct subset *s, const char *name, const zcbus_sub_opts *opts, bool exact) {
        struct subset_entry *e;
        int r;

        if (s->n == s->cap) {
                unsigned cap = s->cap ? s->cap * 2 : 16;
                struct subset_entry *v = realloc(s->e, cap * sizeof(*v));

                if (!v)
                        return -ENOMEM;
                s->e = v;
                s->cap = cap;
        }
        e = &s->e[s->n];
        (void)snprintf(e->name, sizeof(e->name), "%s", name);
        e->sub = NULL;
        if (s->nsubs == SUBSET_MAX) {
                if (exact) {
                        cli_err(s->cmd, "too many topics: at most %u at once", SUBSET_MAX);
                        return -EUSERS;
                }
                if (!s->full_reported)
                        cli_err(s->cmd, "topic '%s' and any further ones left out: at most %u topics at once",
                                name, SUBSET_MAX);
                s->full_reported = true;
                s->n++;
                return 0;
        }
        r = zcbus_sub_open(s->bus, name, opts, &e->sub);
        if (r < 0) {
                (void)cli_fail(s->cmd, s->bus, r, "cannot subscribe to topic '%s'", name);
                if (exact)
                        return r;
                e->sub = NULL; /* reported; left out from now on */
        } else {
                s->idx[s->nsubs] = s->n;
                s->subs[s->nsubs++] = e->sub;
        }
        s->n++;
        return 0;
}

static bool matches(const struct subset *s, const char *topic) {
        for (unsigned i = 0; i < s->nnames; i++)
                if (subset_is_pattern(s->names[i]) && fnmatch(s->names[i], topic, 0) == 0)
                        return true;
        return false;
}

/* List the broker's topics and open the new ones that match. */
static int scan(struct subset *s) {
        zcbus_topic_entry page[LIST_PAGE];
        zcbus_sub_opts o = {
                .size = sizeof(o),
                .history = s->first_scan_done ? UINT32_MAX : s->opts.history,
                .max_holds = s->opts.max_holds,
                .wait_mode = s->opts.wait_mode,
                .spin_us = s->opts.spin_us,
        };
        unsigned start = 0, total = 0;

        s->next_scan_ns = cli_mono_ns() + (uint64_t)s->rescan_ms * 1000000u;
        for (;;) {
                int got = zcbus_list_topics(s->bus, start, page, LIST_PAGE, &total);

                if (got < 0) {
                        (void)cli_fail(s->cmd, s->bus, got, "cannot list topics");
                        return got;
                }
                if (got > (int)LIST_PAGE)
                        return -EBADMSG;
                for (int i = 0; i < got; i++) {
                        int r;

                        page[i].name[ZCBUS_TOPIC_MAX] = '\0';
                        if (!matches(s, page[i].name) || find(s, page[i].name))
                                continue;
                        r = add(s, page[i].name, &o, false);
                        if (r < 0)
                                return r;
                }
                start += (unsigned)got;
                /* Topics may come and go between pages. */
                if (got == 0 || start >= total)
                        break;
        }
        s->first_scan_done = true;
        return 0;
}

int subset_new(const char *cmd, zcbus *bus, const zcbus_sub_opts *opts, char *const *names, unsigned n,
               int rescan_ms, struct subset **ret) {
        _cleanup_(subset_freep) struct subset *s = calloc(1, sizeof(*s));
        int r;

        if (!s)
                return -ENOMEM;
        s->cmd = cmd;
        s->bus = bus;
        s->opts = *opts;
        s->names = names;
        s->nnames = n;
        s->rescan_ms = rescan_ms;
        s->current = UINT32_MAX;
        for (unsigned i = 0; i < n; i++) {
                if (subset_is_pattern(names[i])) {
                        s->patterns = true;
                        continue;
                }
                if (find(s, names[i]))
                        continue;
                r = add(s, names[i], opts, true);
                if (r < 0)
                        return r;
        }
        if (s->patterns) {
                r = scan(s);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(s);
        return 0;
}

void subset_free(struct subset *s) {
        if (!s)
                return;
        for (unsigned i = 0; i < s->n; i++)
                zcbus_sub_close(s->e[i].sub);
        free(s->e);
        free(s);
}

void subset_freep(struct subset **s) {
        subset_free(*s);
}

/* One round of tries without waiting: 1 and the message, 0 if none had
 * one, or a negative errno (reported). */
static int try_all(struct subset *s, zcbus_msg *msg) {
        for (unsigned k = 0; k < s->nsubs; k++) {
                unsigned i = (s->turn + k) % s->nsubs;
                int r = zcbus_sub_recv(s->subs[i], msg, 0);

                if (r == -EAGAIN || r == -EINTR)
                        continue;
                if (r < 0) {
                        (void)cli_fail(s->cmd, s->bus, r, "cannot receive from topic '%s'", s->e[s->idx[i]].name);
                        return r;
                }
                s->turn = i + 1;
                s->current = s->idx[i];
                return 1;
        }
        return 0;
}

int subset_recv(struct subset *s, zcbus_msg *msg, const char **ret_topic, int timeout_ms) {
        uint64_t deadline = timeout_ms > 0 ? cli_mono_ns() + (uint64_t)timeout_ms * 1000000ULL : 0;

        for (;;) {
                int slice, r;

                if (cli_stop_signal)
                        return -EINTR;
                if (s->patterns && s->rescan_ms > 0 && cli_mono_ns() >= s->next_scan_ns) {
                        r = scan(s);
                        if (r < 0)
                                return r;
                }
                r = try_all(s, msg);
                if (r < 0)
                        return r;
                if (r > 0) {
                        *ret_topic = s->e[s->current].name;
                        return 0;
                }
                slice = cli_slice_ms(timeout_ms, deadline);
                if (slice == 0 || slice < 0)
                        return -ETIMEDOUT;
                if (s->patterns && s->rescan_ms > 0) {
                        uint64_t now = cli_mono_ns();
                        uint64_t left = s->next_scan_ns > now ? (s->next_scan_ns - now + 999999) / 1000000 : 0;

                        if (left < (uint64_t)slice)
                                slice = (int)left;
                }
                if (slice == 0)
                        continue; /* a rescan is due */
                if (s->nsubs == 0) {
                        (void)poll(NULL, 0, slice); /* nothing to wait on yet: until the rescan */
                        continue;
                }
                if (s->nsubs == 1) {
                        /* One subscription: its own wait, message and all. */
                        r = zcbus_sub_recv(s->subs[0], msg, slice);
                        if (r >= 0) {
                                s->current = s->idx[0];
                                *ret_topic = s->e[s->current].name;
                                return 0;
                        }
                        if (r != -ETIMEDOUT && r != -EINTR && r != -EAGAIN) {
                                (void)cli_fail(s->cmd, s->bus, r, "cannot receive from topic '%s'",
                                               s->e[s->idx[0]].name);
                                return r;
                        }
                        continue;
                }
                r = zcbus_wait_any(s->subs, s->nsubs, slice);
                if (r >= 0)
                        s->turn = (unsigned)r; /* it tries that one first */
                else if (r != -ETIMEDOUT && r != -EINTR && r != -EAGAIN) {
                        (void)cli_fail(s->cmd, s->bus, r, "cannot wait for messages");
                        return r;
                }
        }
}

int subset_release(struct subset *s, const zcbus_msg *msg) {
        unsigned i = s->current;

        if (i == UINT32_MAX)
                return -EINVAL;
        s->current = UINT32_MAX;
        return zcbus_sub_release(s->e[i].sub, msg);
}
