/* SPDX-License-Identifier: MIT */
/*
 * cmd_peers.c: `zcbus peers`, the broker's sessions (the ones this uid
 * may see: its own, or all of them for root and the broker's uid) with
 * what each said about itself through zcbus_set_info: a label and named
 * counters (a bridge's forwarded, received, dropped...). `zcbus stat`
 * prints the same for the sessions that hold entries in its topic.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uuid/uuid.h>

#include "zcbus.h"
#include "cli.h"
#include "json.h"

/* An answer is untrusted: never hold more than this many sessions. */
#define PEERS_HELD_MAX 65536u
#define PEERS_FIRST 256u

enum { OPT_JSON = 0x100 };

int cli_peers_fetch(zcbus *bus, zcbus_peer **ret_v, unsigned *ret_n) {
        _cleanup_free_ zcbus_peer *v = NULL;
        unsigned cap = PEERS_FIRST, total = 0;
        int r;

        /* Once, or again with room for the total if more came than there
         * was room for (a few tries: sessions come and go). */
        for (int tries = 0;; tries++) {
                zcbus_peer *nv = realloc(v, cap * sizeof(*v));
                if (!nv)
                        return -ENOMEM;
                v = nv;
                r = zcbus_list_peers(bus, v, cap, &total);
                if (r < 0)
                        return r;
                if ((unsigned)r < cap || cap >= PEERS_HELD_MAX || tries == 3)
                        break;
                cap = MIN(MAX(total, 2 * cap), PEERS_HELD_MAX);
        }
        *ret_v = TAKE_PTR(v);
        *ret_n = (unsigned)r;
        return 0;
}

static int by_session(const void *a, const void *b) {
        return memcmp((*(const zcbus_peer *const *)a)->session_id, (*(const zcbus_peer *const *)b)->session_id, 16);
}

const zcbus_peer **cli_peers_index(const zcbus_peer *v, unsigned n) {
        const zcbus_peer **ix = malloc((n ? n : 1) * sizeof(*ix));

        if (!ix)
                return NULL;
        for (unsigned i = 0; i < n; i++)
                ix[i] = &v[i];
        qsort(ix, n, sizeof(*ix), by_session);
        return ix;
}

const zcbus_peer *cli_peer_find(const zcbus_peer *const *ix, unsigned n, const uint8_t session_id[16]) {
        zcbus_peer key;
        const zcbus_peer *kp = &key, *const *hit;

        memcpy(key.session_id, session_id, 16);
        hit = bsearch(&kp, ix, n, sizeof(*ix), by_session);
        return hit ? *hit : NULL;
}

/* "name=value name=value" (the library checked the names). */
static void counters_text(const zcbus_peer *p, FILE *f) {
        for (uint32_t k = 0; k < p->ncounters && k < ZCBUS_COUNTERS_MAX; k++)
                (void)fprintf(f, "%s%s=%" PRIu64, k ? " " : "", p->counters[k].name, p->counters[k].value);
}

void cli_peer_print(const zcbus_peer *p, bool indent_counters) {
        char sess[37], comm[4 * ZCBUS_COMM_MAX + 1];

        uuid_unparse_lower(p->session_id, sess);
        if (p->comm[0])
                cli_name_text(p->comm, comm);
        else
                (void)snprintf(comm, sizeof(comm), "-");
        (void)printf("%-36s %8" PRIu32 " %6" PRIu32 " %-15s %4" PRIu32 " %4" PRIu32 " %s\n", sess, p->pid, p->uid,
                     comm, p->producers, p->subscribers, p->label[0] ? p->label : "-");
        if (p->ncounters) {
                (void)fputs(indent_counters ? "    " : "", stdout);
                counters_text(p, stdout);
                (void)putchar('\n');
        }
}

void cli_peer_header(void) {
        (void)printf("%-36s %8s %6s %-15s %4s %4s %s\n", "SESSION", "PID", "UID", "COMM", "PUBS", "SUBS", "LABEL");
}

void cli_peer_json(const zcbus_peer *p) {
        char sess[37];

        uuid_unparse_lower(p->session_id, sess);
        (void)printf("{\"session\": \"%s\", \"serial\": %" PRIu64 ", \"pid\": %" PRIu32 ", \"uid\": %" PRIu32
                     ", \"gid\": %" PRIu32 ", \"comm\": ",
                     sess, p->serial, p->pid, p->uid, p->gid);
        if (p->comm[0])
                json_str(stdout, p->comm);
        else
                (void)fputs("null", stdout);
        (void)fputs(", \"label\": ", stdout);
        json_str(stdout, p->label);
        (void)printf(", \"producers\": %" PRIu32 ", \"subscribers\": %" PRIu32 ", \"counters\": {", p->producers,
                     p->subscribers);
        for (uint32_t k = 0; k < p->ncounters && k < ZCBUS_COUNTERS_MAX; k++) {
                (void)fputs(k ? ", " : "", stdout);
                json_str(stdout, p->counters[k].name);
                (void)printf(": %" PRIu64, p->counters[k].value);
        }
        (void)fputs("}}", stdout);
}

int cmd_peers(int argc, char **argv, const char *sock) {
        static const struct option longopts[] = {
                { "json", no_argument, NULL, OPT_JSON },
                { "help", no_argument, NULL, 'h' },
                { NULL, 0, NULL, 0 },
        };
        _cleanup_(cli_disconnectp) zcbus *bus = NULL;
        _cleanup_free_ zcbus_peer *v = NULL;
        unsigned n = 0;
        int o, r;
        bool json = false;

        opterr = 0;
        while ((o = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
                switch (o) {
                case OPT_JSON:
                        json = true;
                        break;
                case 'h':
                        (void)printf("Usage: zcbus peers [OPTIONS]\n"
                                     "\n"
                                     "Show the broker's sessions: pid, uid, command, the entries each holds,\n"
                                     "and what it says about itself (a label and counters: a bridge's\n"
                                     "forwarded, received, dropped...). A uid sees its own sessions; root and\n"
                                     "the broker's uid see every one.\n"
                                     "\n"
                                     "Options:\n"
                                     "      --json  print one JSON object instead of a table\n"
                                     "  -h, --help  show this help and exit\n");
                        return 0;
                default:
                        return cli_bad_option("peers", argv, o);
                }
        }
        if (optind < argc) {
                cli_err("peers", "unexpected argument '%s' (try 'zcbus peers --help')", argv[optind]);
                return 2;
        }
        if (cli_connect("peers", sock, &bus) < 0)
                return 1;
        r = cli_peers_fetch(bus, &v, &n);
        if (r < 0)
                return cli_fail("peers", bus, r, "cannot list sessions");
        if (json) {
                (void)fputs("{\"peers\": [", stdout);
                for (unsigned i = 0; i < n; i++) {
                        (void)fputs(i ? ",\n  " : "\n  ", stdout);
                        cli_peer_json(&v[i]);
                }
                (void)fputs(n ? "\n]}\n" : "]}\n", stdout);
        } else {
                cli_peer_header();
                for (unsigned i = 0; i < n; i++)
                        cli_peer_print(&v[i], true);
        }
        return cli_flush_stdout("peers");
}
