/* SPDX-License-Identifier: MIT */
/*
 * conf.h: what zcbus-bridge is told: where NATS and the local broker are,
 * which local topics go out, which remote subjects come in, and the
 * limits. Nothing is bridged unless a line of the file says so.
 */
#ifndef ZCBUS_BRIDGE_CONF_H
#define ZCBUS_BRIDGE_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BCONF_LINE_MAX 1024
#define BCONF_ROUTES_MAX 64
#define BCONF_SERVERS_MAX 16
#define BCONF_PATTERN_MAX 256

enum bconf_policy {
        BCONF_LATEST = 2,   /* == ZCBUS_POLICY_LATEST */
        BCONF_RELIABLE = 1, /* == ZCBUS_POLICY_RELIABLE */
};

struct bconf_out {
        char pattern[BCONF_PATTERN_MAX]; /* over topic names, '*' and '>' */
        bool batch; /* latest topics: what waits together goes as one NATS message (batch.h) */
        unsigned line;
};

struct bconf_in {
        char pattern[BCONF_PATTERN_MAX];
        uint32_t policy;     /* BCONF_LATEST or BCONF_RELIABLE */
        uint32_t slot_count; /* of a local topic this route creates; 0: default */
        uint32_t slot_size;
        unsigned line;
};

struct bconf {
        char *servers[BCONF_SERVERS_MAX];
        unsigned nservers;
        char *socket;    /* NULL: $ZCBUS_SOCKET or the default */
        char *prefix;    /* subject prefix, default "zcbus" */
        char *state_dir; /* default /var/lib/zcbus-bridge */
        char *name;      /* NATS connection name; default zcbus-bridge */
        bool have_bus_id;
        uint8_t bus_id[16];
        struct bconf_out out[BCONF_ROUTES_MAX];
        unsigned nout;
        struct bconf_in in[BCONF_ROUTES_MAX];
        unsigned nin;
        uint32_t replicas;      /* JetStream stream replicas */
        uint32_t buffer;        /* reliable outbound queue, messages */
        uint64_t buffer_bytes;  /* and bytes */
        uint32_t window;        /* reliable outbound: JetStream publishes in flight, messages */
        uint64_t window_bytes;  /* and payload bytes */
        uint32_t reorder;       /* reliable inbound: messages held ahead of their predecessor */
        uint64_t reorder_bytes; /* and bytes */
        uint32_t reorder_ms;    /* how long a predecessor is waited for */
        uint32_t test_withhold; /* tests only: hold back every Nth publish's first try; 0 off */
        uint32_t scan_ms;       /* how often the local topic list is read */
        uint32_t stats_ms;      /* how often the stats file is written */
        uint32_t dup_window_ms; /* JetStream de-duplication window */
        uint32_t max_age_s;     /* stream retention; 0: no limit */
        bool send_asap;         /* core publishes written at once, not batched */
        uint32_t slot_count;    /* defaults of topics created by "in" lines */
        uint32_t slot_size;
        uint32_t num_set;       /* the number keys set so far, a bit each (conf.c) */
        bool send_asap_set;
};

void bconf_init(struct bconf *c);
void bconf_deinit(struct bconf *c);
/* Parse one line (no newline). Returns 0, or -EINVAL with a reason in err. */
int bconf_parse_line(struct bconf *c, const char *line, unsigned lineno, char *err, size_t errlen);
/* Read and apply a file; errors as "FILE:LINE: reason" in err. */
int bconf_load_file(struct bconf *c, const char *path, char *err, size_t errlen);
/* Checks that need the whole file (e.g. a reliable "in" without
 * wildcards). err as bconf_load_file's. */
int bconf_check(const struct bconf *c, const char *path, char *err, size_t errlen);

#endif
