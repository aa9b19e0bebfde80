/* SPDX-License-Identifier: MIT */
/*
 * cmd_list.c: `zcbus list [PATTERN...]`, the broker's topics (those whose
 * names match a glob pattern, if any is given) as a table or as JSON.
 *
 * Topics are fetched in pages with zcbus_list_topics until the broker's
 * total is reached, then printed in one go so column widths fit. Names are
 * bytes from the broker: the table shows control bytes escaped (\xNN) and
 * JSON escapes them per RFC 8259, with bytes outside valid UTF-8 as \u00XX
 * (json.c), so the output is always one line per topic and always valid
 * JSON.
 */
#include <errno.h>
#include <fnmatch.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uuid/uuid.h>

#include "zcbus.h"
#include "cli.h"
#include "json.h"

/* Entries asked for per request. */
#define LIST_PAGE 64
/* Never hold more than this many entries (a broker's answer is untrusted). */
#define LIST_MAX (1U << 20)

enum { OPT_JSON = 0x100 };

static void usage(void) {
        (void)printf("Usage: zcbus list [OPTIONS] [PATTERN...]\n"
                     "\n"
                     "List the broker's topics: NAME, POLICY, SLOTS, SLOT_SIZE, PRODUCERS,\n"
                     "SUBSCRIBERS, PUBLISHED, TOPIC_ID. With PATTERNs (globs, as in 'sensors.*'),\n"
                     "only the topics whose names match one of them.\n"
                     "\n"
                     "Options:\n"
                     "      --json  print a JSON array of objects instead of a table\n"
                     "  -h, --help  show this help and exit\n");
}

int cli_list_fetch(zcbus *bus, zcbus_topic_entry **ret_v, unsigned *ret_n) {
        _cleanup_free_ zcbus_topic_entry *v = NULL;
        unsigned n = 0, cap = 0, total = 0;

        for (;;) {
                int r;

                if (cap - n < LIST_PAGE) {
                        zcbus_topic_entry *nv;

                        if (cap >= LIST_MAX)
                                return -E2BIG;
                        cap = cap ? cap * 2 : LIST_PAGE;
                        nv = realloc(v, (size_t)cap * sizeof(*v));
                        if (!nv)
                                return -ENOMEM;
                        v = nv;
                }
                r = zcbus_list_topics(bus, n, v + n, LIST_PAGE, &total);
                if (r < 0)
                        return r;
                if (r > LIST_PAGE)
                        return -EBADMSG;
                n += (unsigned)r;
                /* Topics may come and go between pages: stop at a short or
                 * empty page as well as at the total. */
                if (r == 0 || n >= total)
                        break;
        }
        for (unsigned i = 0; i < n; i++)
                v[i].name[ZCBUS_TOPIC_MAX] = '\0';
        *ret_v = TAKE_PTR(v);
        *ret_n = n;
        return 0;
}

unsigned cli_filter_topics(zcbus_topic_entry *v, unsigned n, char *const *patterns, int npatterns) {
        unsigned k = 0;

        if (npatterns <= 0)
                return n;
        for (unsigned i = 0; i < n; i++) {
                bool match = false;
                for (int j = 0; j < npatterns && !match; j++)
                        match = fnmatch(patterns[j], v[i].name, 0) == 0;
                if (match)
                        v[k++] = v[i];
        }
        return k;
}

static void id_text(const uint8_t id[16], char out[37]) {
        uuid_unparse_lower(id, out);
}

/* A name for a table (a topic's, a process's: anybody's words): printable
 * ASCII and UTF-8 as is; control bytes, DEL, the C1 controls (U+0080 to
 * U+009F, which terminals obey) and bytes outside valid UTF-8 as \xNN each;
 * backslash doubled. out holds 4 * strlen(name) + 1. */
void cli_name_text(const char *name, char *out) {
        const unsigned char *p = (const unsigned char *)name;
        size_t k = 0, left = strlen(name);

        while (left) {
                size_t n = *p < 0x80 ? 1 : json_utf8_len(p, left);
                bool c1 = n == 2 && p[0] == 0xc2 && p[1] < 0xa0;

                if (*p < 0x20 || *p == 0x7f || n == 0 || c1) {
                        n = c1 ? 2 : 1;
                        for (size_t i = 0; i < n; i++)
                                k += (size_t)sprintf(out + k, "\\x%02x", p[i]);
                } else if (*p == '\\') {
                        out[k++] = '\\';
                        out[k++] = '\\';
                } else {
                        memcpy(out + k, p, n);
                        k += n;
                }
                p += n;
                left -= n;
        }
        out[k] = '\0';
}

size_t cli_text_width(const char *s) {
        size_t w = 0;

        for (; *s; s++)
                if (((unsigned char)*s & 0xc0) != 0x80)
                        w++;
        return w;
}

static int num_width(uint64_t v, const char *header) {
        char buf[24];
        int n = snprintf(buf, sizeof(buf), "%" PRIu64, v);
        int h = (int)strlen(header);

        return MAX(n, h);
}

/* Columns are as wide as their widest cell: NAME and POLICY to the left,
 * numbers to the right, the uuid last. */
static void print_table(const zcbus_topic_entry *v, unsigned n) {
        char name[4 * ZCBUS_TOPIC_MAX + 1];
        int w_name = (int)strlen("NAME"), w_pol = (int)strlen("POLICY");
        int w_slots = num_width(0, "SLOTS"), w_size = num_width(0, "SLOT_SIZE");
        int w_prod = num_width(0, "PRODUCERS"), w_subs = num_width(0, "SUBSCRIBERS");
        int w_pubd = num_width(0, "PUBLISHED");
        for (unsigned i = 0; i < n; i++) {
                cli_name_text(v[i].name, name);
                w_name = MAX(w_name, (int)cli_text_width(name));
                w_pol = MAX(w_pol, (int)strlen(zcbus_policy_name(v[i].policy)));
                w_slots = MAX(w_slots, num_width(v[i].slot_count, "SLOTS"));
                w_size = MAX(w_size, num_width(v[i].slot_size, "SLOT_SIZE"));
                w_prod = MAX(w_prod, num_width(v[i].producers, "PRODUCERS"));
                w_subs = MAX(w_subs, num_width(v[i].subscribers, "SUBSCRIBERS"));
                w_pubd = MAX(w_pubd, num_width(v[i].published, "PUBLISHED"));
        }
        (void)printf("%-*s  %-*s  %*s  %*s  %*s  %*s  %*s  %s\n", w_name, "NAME", w_pol, "POLICY", w_slots,
                     "SLOTS", w_size, "SLOT_SIZE", w_prod, "PRODUCERS", w_subs, "SUBSCRIBERS", w_pubd,
                     "PUBLISHED", "TOPIC_ID");
        for (unsigned i = 0; i < n; i++) {
                char id[37];

                cli_name_text(v[i].name, name);
                id_text(v[i].topic_id, id);
                /* %-*s counts bytes: pad UTF-8 names by hand. */
                (void)printf("%s%*s  %-*s  %*" PRIu32 "  %*" PRIu32 "  %*" PRIu32 "  %*" PRIu32 "  %*" PRIu64
                             "  %s\n",
                             name, w_name - (int)cli_text_width(name), "", w_pol, zcbus_policy_name(v[i].policy),
                             w_slots, v[i].slot_count, w_size, v[i].slot_size, w_prod, v[i].producers, w_subs,
                             v[i].subscribers, w_pubd, v[i].published, id);
        }
}

static void print_json(const zcbus_topic_entry *v, unsigned n) {
        (void)putchar('[');
        for (unsigned i = 0; i < n; i++) {
                char id[37];

                id_text(v[i].topic_id, id);
                (void)fputs(i ? ",\n  {" : "\n  {", stdout);
                (void)fputs("\"name\": ", stdout);
                json_str(stdout, v[i].name);
                (void)printf(", \"policy\": \"%s\", \"slots\": %" PRIu32 ", \"slot_size\": %" PRIu32
                             ", \"producers\": %" PRIu32 ", \"subscribers\": %" PRIu32
                             ", \"published\": %" PRIu64 ", \"topic_id\": \"%s\"}",
                             zcbus_policy_name(v[i].policy), v[i].slot_count, v[i].slot_size,
                             v[i].producers, v[i].subscribers, v[i].published, id);
        }
        (void)fputs(n ? "\n]\n" : "]\n", stdout);
}

int cmd_list(int argc, char **argv, const char *sock) {
        static const struct option longopts[] = {
                { "json", no_argument, NULL, OPT_JSON },
                { "help", no_argument, NULL, 'h' },
                { NULL, 0, NULL, 0 },
        };
        _cleanup_(cli_disconnectp) zcbus *bus = NULL;
        _cleanup_free_ zcbus_topic_entry *v = NULL;
        unsigned n = 0;
        int o, r, json = 0;

        opterr = 0;
        while ((o = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
                switch (o) {
                case OPT_JSON:
                        json = 1;
                        break;
                case 'h':
                        usage();
                        return 0;
                default:
                        return cli_bad_option("list", argv, o);
                }
        }
        if (cli_connect("list", sock, &bus) < 0)
                return 1;
        r = cli_list_fetch(bus, &v, &n);
        if (r < 0)
                return cli_fail("list", bus, r, "cannot list topics");
        n = cli_filter_topics(v, n, argv + optind, argc - optind);

        if (json)
                print_json(v, n);
        else
                print_table(v, n);
        return cli_flush_stdout("list");
}
