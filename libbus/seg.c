/* SPDX-License-Identifier: MIT */
/*
 * seg.c: creating, validating and mapping a topic's segments: its ring and its
 * subscriber tables.
 *
 * The creator (the broker) sizes each memfd once and seals it against
 * shrinking and growing, so no peer can make another take SIGBUS by
 * truncating a mapping. A receiver checks the seals and the size with
 * fstat() before it maps, then checks the header against that size and
 * copies the geometry into a private struct seg_geom, the only copy the
 * data plane ever trusts. Creator and receiver derive the geometry from
 * the parameters the same way (geom_of), and reach every part of a
 * segment through layout.h's accessors.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "macro.h"
#include "seg.h"
#include "zcbus.h"

#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U
#endif

#define SEG_SEALS (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)

/* A mapping that unmaps itself at the end of its scope unless taken. */
struct mapping {
        void *p;
        uint64_t size;
};

static void mapping_release(struct mapping *x) {
        if (x->p && x->p != MAP_FAILED)
                (void)munmap(x->p, x->size);
        x->p = NULL;
}
#define _cleanup_mapping_ _cleanup_(mapping_release)

static int mapping_new(int fd, uint64_t size, int prot, struct mapping *ret) {
        void *p = mmap(NULL, size, prot, MAP_SHARED, fd, 0);

        if (p == MAP_FAILED)
                return negerrno();
        *ret = (struct mapping){.p = p, .size = size};
        return 0;
}

int seg_params_check(const struct seg_params *p) {
        if (!p)
                return -EINVAL;
        if (!is_pow2_u32(p->slot_count) || p->slot_count < 2 || p->slot_count > SEG_SLOT_COUNT_MAX)
                return -EINVAL;
        if (p->slot_size == 0 || p->slot_size > SEG_SLOT_SIZE_MAX)
                return -EINVAL;
        if (p->policy != ZCBUS_POLICY_RELIABLE && p->policy != ZCBUS_POLICY_LATEST)
                return -EINVAL;
        if (p->max_producers == 0 || p->max_producers > SEG_PRODUCERS_MAX)
                return -EINVAL;
        if (p->max_subs == 0 || p->max_subs > SEG_SUBS_MAX)
                return -EINVAL;
        if (p->sub_tables == 0 || p->sub_tables > SEG_TABLES_MAX)
                return -EINVAL;
        if (p->start_seq > SEG_SEQ_LIMIT - (UINT64_C(1) << 40))
                return -EINVAL;
        return 0;
}

int seg_ring_size(const struct seg_params *p, uint64_t *ret_size) {
        int r = seg_params_check(p);
        uint64_t sz;

        if (r < 0)
                return r;
        /* slot_count <= 2^24 and stride <= 2^30 + 128: no 64-bit overflow. */
        sz = seg_slots_offset(p->max_producers, p->max_subs, p->sub_tables) +
             (uint64_t)p->slot_count * seg_slot_stride(p->slot_size);
        sz = ALIGN_UP(sz, (uint64_t)4096);
        if (sz > SEG_RING_BYTES_MAX)
                return -E2BIG;
        *ret_size = sz;
        return 0;
}

uint64_t seg_subs_size(uint32_t max_subs, uint32_t slot_count, uint32_t policy) {
        /* Only LATEST topics hold slots. */
        uint64_t holds = policy == ZCBUS_POLICY_LATEST ? (uint64_t)slot_count * seg_hold_words(max_subs) * 8 : 0;
        return ALIGN_UP(seg_holds_offset(max_subs) + holds, (uint64_t)4096);
}

uint64_t seg_topic_bytes(const struct seg_params *p, uint64_t ring_size) {
        return ring_size + (uint64_t)p->sub_tables * seg_subs_size(p->max_subs, p->slot_count, p->policy);
}

/* The geometry of checked parameters: what the creator lays out and what
 * a receiver accepts, derived once. */
static int geom_of(const struct seg_params *p, struct seg_geom *ret) {
        uint64_t rsize;
        int r = seg_ring_size(p, &rsize);

        if (r < 0)
                return r;
        *ret = (struct seg_geom){
                .slot_count = p->slot_count,
                .mask = p->slot_count - 1,
                .slot_size = p->slot_size,
                .slot_stride = seg_slot_stride(p->slot_size),
                .policy = p->policy,
                .max_producers = p->max_producers,
                .max_subs = p->max_subs,
                .sub_tables = p->sub_tables,
                .slots_offset = seg_slots_offset(p->max_producers, p->max_subs, p->sub_tables),
                .states_offset = seg_states_offset(p->max_producers),
                .masks_offset = seg_masks_offset(p->max_producers, p->max_subs),
                .holds_offset = seg_holds_offset(p->max_subs),
                .hold_words = seg_hold_words(p->max_subs),
                .ring_size = rsize,
                .subs_size = seg_subs_size(p->max_subs, p->slot_count, p->policy),
                .start_seq = p->start_seq,
        };
        memcpy(ret->segment_id, p->segment_id, 16);
        memcpy(ret->topic_id, p->topic_id, 16);
        return 0;
}

/* A memfd of the given size and mode. The mode matters because anyone
 * who holds any fd of a memfd can open it again through /proc/self/fd/N
 * with whatever access the inode's mode grants their uid: a read-only fd
 * of a 0666 memfd is a writable one for everybody. */
static int memfd_sized(const char *name, uint64_t size, mode_t mode, int *ret_fd) {
        _cleanup_close_ int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_NOEXEC_SEAL);

        if (fd < 0 && errno == EINVAL) /* kernel without MFD_NOEXEC_SEAL */
                fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0)
                return negerrno();
        if (ftruncate(fd, (off_t)size) < 0 || fchmod(fd, mode) < 0)
                return negerrno();
        *ret_fd = TAKE_FD(fd);
        return 0;
}

/* Write the ring's header and initial words (fresh memory reads zero). */
static void ring_init(const struct seg_map *m, const struct seg_params *p) {
        const struct seg_geom *g = &m->g;
        struct seg_ring_hdr *h = (struct seg_ring_hdr *)m->ring;

        *h = (struct seg_ring_hdr){
                .magic = SEG_RING_MAGIC,
                .version = SEG_VERSION,
                .policy = g->policy,
                .slot_count = g->slot_count,
                .slot_size = g->slot_size,
                .slot_stride = g->slot_stride,
                .max_producers = g->max_producers,
                .slots_offset = g->slots_offset,
                .seg_size = g->ring_size,
                .start_seq = g->start_seq,
                .max_subs = g->max_subs,
                .data_word_start = p->data_word_start,
                .sub_tables = g->sub_tables,
                .states_offset = g->states_offset,
                .masks_offset = g->masks_offset,
        };
        memcpy(h->segment_id, g->segment_id, 16);
        memcpy(h->topic_id, g->topic_id, 16);

        /* Nobody else has the memory yet: relaxed initialisation is
         * enough; the fd passing that hands it out is the synchronisation. */
        store_rlx(&seg_head(m)->head, g->start_seq);
        store_rlx(&seg_ring_notify(m)->data_word, p->data_word_start);
        for (uint32_t i = 0; i < g->max_producers; i++)
                store_rlx(&seg_prod(m, i)->claim, SEG_CLAIM_NONE);
        /* Each slot starts as if the sequence one lap before start_seq had
         * been abandoned in it, so the first producer finds the stamp it
         * expects (seg_prev_stamp) and no reader ever sees it. A fresh
         * memfd reads zero, which is that stamp for every sequence of the
         * first lap: a ring starting at 0 is ready without touching a
         * slot, so creating even a huge topic faults in no slot page. */
        for (uint64_t t = MAX(g->start_seq, (uint64_t)g->slot_count); t < g->start_seq + g->slot_count; t++) {
                struct seg_slot *s = seg_slot(m, t);
                store_rlx(&s->flags, SEG_SLOT_ABANDONED);
                store_rlx(&s->stamp, seg_prev_stamp(t, g->slot_count));
        }
}

/* Write table t's header and initial words. */
static void table_init(const struct seg_map *m, uint32_t t, uint32_t data_word_start) {
        const struct seg_geom *g = &m->g;
        struct seg_subs_hdr *sh = (struct seg_subs_hdr *)m->tables[t];

        *sh = (struct seg_subs_hdr){
                .magic = SEG_SUBS_MAGIC,
                .version = SEG_VERSION,
                .max_subs = g->max_subs,
                .seg_size = g->subs_size,
                .subs_offset = SEG_SUBS_TABLE_OFFSET,
                .holds_offset = g->holds_offset,
                .slot_count = g->slot_count,
                .table = (uint16_t)t,
                .sub_tables = (uint16_t)g->sub_tables,
        };
        memcpy(sh->segment_id, g->segment_id, 16);
        for (uint32_t i = 0; i < g->max_subs; i++)
                store_rlx(&seg_sub(m, t, i)->floor, SEG_FLOOR_NONE);
        store_rlx(&seg_subs_notify(m, t)->data_word, data_word_start);
        store_rlx(&seg_subs_notify(m, t)->relayed, data_word_start);
}

static int check_fd(int fd, uint64_t *ret_size);

static void hex16(char out[33], const uint8_t b[16]) {
        for (int i = 0; i < 16; i++)
                snprintf(out + 2 * i, 3, "%02x", b[i]);
}

void seg_memfd_name(char *buf, size_t len, const uint8_t segment_id[16], int table, const uint8_t name_tag[16]) {
        char id[33], tag[33];

        hex16(id, segment_id);
        if (table < 0) {
                hex16(tag, name_tag);
                snprintf(buf, len, "zcbus-ring-%s-%s", id, tag);
        } else {
                snprintf(buf, len, "zcbus-subs-%s-%d", id, table);
        }
}

int seg_fd_is(int fd, const char *memfd_name, mode_t mode) {
        char path[64], link[128], want[128];
        struct stat st;
        ssize_t n;
        int seals;

        if (fstat(fd, &st) < 0)
                return negerrno();
        /* Made by this uid (the broker's: no one else can make a memfd of
         * its uid), with the mode the broker gives it, sealed... */
        if (!S_ISREG(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 07777) != mode)
                return -EPERM;
        seals = fcntl(fd, F_GET_SEALS);
        if (seals < 0 || (seals & SEG_SEALS) != SEG_SEALS)
                return -EPERM;
        /* ... and with the name it gave it, which the kernel keeps. */
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        n = readlink(path, link, sizeof(link) - 1);
        if (n < 0)
                return negerrno();
        link[n] = 0;
        snprintf(want, sizeof(want), "/memfd:%s (deleted)", memfd_name);
        return strcmp(link, want) == 0 ? 0 : -EPERM;
}

static void close_fds(int *fds, uint32_t n) {
        for (uint32_t i = 0; i < n; i++)
                closep(&fds[i]);
}

/* Create, initialise and seal table t of a topic of geometry g. */
static int table_create(const struct seg_geom *g, uint32_t t, uint32_t data_word_start, int *ret_fd) {
        _cleanup_close_ int fd = -1;
        _cleanup_mapping_ struct mapping x = {0};
        struct seg_map m = {.g = *g};
        char name[96];
        int r;

        seg_memfd_name(name, sizeof(name), g->segment_id, (int)t, NULL);
        r = memfd_sized(name, g->subs_size, 0600, &fd);
        if (r == 0)
                r = mapping_new(fd, g->subs_size, PROT_READ | PROT_WRITE, &x);
        if (r < 0)
                return r;
        m.tables[t] = x.p;
        table_init(&m, t, data_word_start);
        if (fcntl(fd, F_ADD_SEALS, SEG_SEALS) < 0)
                return negerrno();
        *ret_fd = TAKE_FD(fd);
        return 0;
}

int seg_create_table(const struct seg_geom *g, uint32_t t, int *ret_fd) {
        if (t >= g->sub_tables)
                return -EINVAL;
        return table_create(g, t, 0, ret_fd);
}

int seg_map_table(struct seg_map *m, int fd, uint32_t t) {
        struct mapping x = {0};
        uint64_t size;
        int r;

        if (t >= m->g.sub_tables)
                return -EINVAL;
        if (m->tables[t])
                return -EEXIST;
        r = check_fd(fd, &size);
        if (r == 0 && size != m->g.subs_size)
                r = -EBADMSG;
        if (r == 0)
                r = mapping_new(fd, size, PROT_READ | PROT_WRITE, &x);
        if (r < 0)
                return r;
        m->tables[t] = TAKE_PTR(x.p);
        return 0;
}

int seg_create(const struct seg_params *p, int *ret_ring_fd, int *ret_table_fds) {
        _cleanup_close_ int rfd = -1;
        _cleanup_mapping_ struct mapping ring = {0};
        int tfds[SEG_TABLES_MAX];
        struct seg_map m = {0};
        char name[96];
        uint32_t n = 0;
        int r;

        r = geom_of(p, &m.g);
        if (r < 0)
                return r;
        /* The ring: the creator's uid may reopen it read-only (the
         * subscribers' fd), nobody else may open it at all; producers get
         * the creator's writable fd itself. Each table is handed out
         * writable to those who need it; reopening grants no one more.
         * The names bind them to the topic for a restarted broker. */
        seg_memfd_name(name, sizeof(name), m.g.segment_id, -1, p->name_tag);
        r = memfd_sized(name, m.g.ring_size, 0400, &rfd);
        if (r < 0)
                return r;
        r = mapping_new(rfd, m.g.ring_size, PROT_READ | PROT_WRITE, &ring);
        if (r < 0)
                return r;
        m.ring = ring.p;
        m.ring_writable = 1;
        ring_init(&m, p);
        for (; n < m.g.sub_tables; n++) {
                r = table_create(&m.g, n, p->data_word_start, &tfds[n]);
                if (r < 0)
                        goto fail;
        }
        if (fcntl(rfd, F_ADD_SEALS, SEG_SEALS) < 0) {
                r = negerrno();
                goto fail;
        }
        memcpy(ret_table_fds, tfds, n * sizeof(tfds[0]));
        *ret_ring_fd = TAKE_FD(rfd);
        return 0;
fail:
        close_fds(tfds, n);
        return r;
}

/* Check a ring header against the mapped size; the geometry it implies. */
static int validate_ring(const void *ring, uint64_t ring_size, struct seg_geom *ret_geom) {
        struct seg_ring_hdr h;
        struct seg_params p;
        struct seg_geom g;

        if (!ring || ring_size < sizeof(h))
                return -EBADMSG;
        /* One copy of the header; everything below checks the copy. */
        memcpy(&h, ring, sizeof(h));
        if (h.magic != SEG_RING_MAGIC)
                return -EBADMSG;
        if (h.version != SEG_VERSION)
                return -EPROTO;
        p = (struct seg_params){
                .slot_count = h.slot_count,
                .slot_size = h.slot_size,
                .policy = h.policy,
                .max_producers = h.max_producers,
                .max_subs = h.max_subs,
                .start_seq = h.start_seq,
                .sub_tables = h.sub_tables,
        };
        memcpy(p.segment_id, h.segment_id, 16);
        memcpy(p.topic_id, h.topic_id, 16);
        if (geom_of(&p, &g) < 0)
                return -EBADMSG;
        /* Every derived field the header repeats must be the derived one. */
        if (h.slot_stride != g.slot_stride || h.slots_offset != g.slots_offset ||
            h.states_offset != g.states_offset || h.masks_offset != g.masks_offset)
                return -EBADMSG;
        if (h.seg_size != g.ring_size || ring_size != g.ring_size)
                return -EBADMSG;
        *ret_geom = g;
        return 0;
}

/* Check a table header against the ring's geometry; its index. */
static int validate_table(const struct seg_geom *g, const void *subs, uint64_t subs_size, uint32_t *ret_table) {
        struct seg_subs_hdr sh;

        if (!subs || subs_size < sizeof(sh))
                return -EBADMSG;
        memcpy(&sh, subs, sizeof(sh));
        if (sh.magic != SEG_SUBS_MAGIC)
                return -EBADMSG;
        if (sh.version != SEG_VERSION)
                return -EPROTO;
        if (sh.max_subs != g->max_subs || sh.slot_count != g->slot_count || sh.subs_offset != SEG_SUBS_TABLE_OFFSET ||
            sh.holds_offset != g->holds_offset || sh.seg_size != g->subs_size || subs_size != g->subs_size ||
            sh.sub_tables != g->sub_tables || sh.table >= g->sub_tables)
                return -EBADMSG;
        if (memcmp(sh.segment_id, g->segment_id, 16) != 0)
                return -EBADMSG;
        *ret_table = sh.table;
        return 0;
}

int seg_validate(const void *ring, uint64_t ring_size, const void *subs, uint64_t subs_size,
                 struct seg_geom *ret_geom) {
        struct seg_geom g;
        uint32_t t;
        int r = validate_ring(ring, ring_size, &g);

        if (r < 0)
                return r;
        r = validate_table(&g, subs, subs_size, &t);
        if (r < 0)
                return r;
        *ret_geom = g;
        return 0;
}

static int check_fd(int fd, uint64_t *ret_size) {
        struct stat st;
        int seals;

        if (fstat(fd, &st) < 0)
                return negerrno();
        if (!S_ISREG(st.st_mode) || st.st_size <= 0)
                return -EBADMSG;
        seals = fcntl(fd, F_GET_SEALS);
        if (seals < 0)
                return negerrno();
        if ((seals & (F_SEAL_SHRINK | F_SEAL_GROW)) != (F_SEAL_SHRINK | F_SEAL_GROW))
                return -EBADMSG;
        *ret_size = (uint64_t)st.st_size;
        return 0;
}

int seg_map_fds(int ring_fd, const int *table_fds, uint32_t first, uint32_t ntables, int ring_writable,
                struct seg_map *ret_map) {
        _cleanup_mapping_ struct mapping ring = {0};
        struct seg_map m = {0};
        uint64_t rsize;
        int r;

        if (!table_fds || ntables == 0 || ntables > SEG_TABLES_MAX || first >= SEG_TABLES_MAX)
                return -EINVAL;
        r = check_fd(ring_fd, &rsize);
        if (r < 0)
                return r;
        if (rsize > SEG_RING_BYTES_MAX)
                return -EBADMSG;
        r = mapping_new(ring_fd, rsize, PROT_READ | (ring_writable ? PROT_WRITE : 0), &ring);
        if (r < 0)
                return r;
        r = validate_ring(ring.p, rsize, &m.g);
        if (r < 0)
                return r;
        if (first + ntables > m.g.sub_tables)
                return -EBADMSG;
        /* A table's header is written by the broker once, but the table's
         * subscribers can write it too: nothing in it is trusted, the
         * geometry is the ring's and the index is the position. */
        for (uint32_t i = 0; r == 0 && i < ntables; i++)
                r = seg_map_table(&m, table_fds[i], first + i);
        if (r < 0) {
                for (uint32_t t = 0; t < SEG_TABLES_MAX; t++) {
                        struct mapping x = {m.tables[t], m.g.subs_size};
                        mapping_release(&x);
                }
                return r;
        }
        m.ring = TAKE_PTR(ring.p);
        m.ring_writable = ring_writable;
        *ret_map = m;
        return 0;
}

void seg_unmap(struct seg_map *m) {
        if (!m)
                return;
        struct mapping ring = {m->ring, m->g.ring_size};
        mapping_release(&ring);
        for (uint32_t t = 0; t < SEG_TABLES_MAX; t++) {
                struct mapping x = {m->tables[t], m->g.subs_size};
                mapping_release(&x);
                m->tables[t] = NULL;
        }
        m->ring = NULL;
}
