/* SPDX-License-Identifier: MIT */
/*
 * seg.c: creating, validating and mapping a topic's two segments.
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
        sz = seg_slots_offset(p->max_producers) + (uint64_t)p->slot_count * seg_slot_stride(p->slot_size);
        sz = ALIGN_UP(sz, (uint64_t)4096);
        if (sz > SEG_RING_BYTES_MAX)
                return -E2BIG;
        *ret_size = sz;
        return 0;
}

uint64_t seg_subs_size(uint32_t max_subs, uint32_t slot_count) {
        return ALIGN_UP(seg_holds_offset(max_subs) + (uint64_t)slot_count * seg_hold_words(max_subs) * 8,
                        (uint64_t)4096);
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
                .slots_offset = seg_slots_offset(p->max_producers),
                .holds_offset = seg_holds_offset(p->max_subs),
                .hold_words = seg_hold_words(p->max_subs),
                .ring_size = rsize,
                .subs_size = seg_subs_size(p->max_subs, p->slot_count),
                .start_seq = p->start_seq,
        };
        memcpy(ret->segment_id, p->segment_id, 16);
        memcpy(ret->topic_id, p->topic_id, 16);
        return 0;
}

static int memfd_sized(const char *name, uint64_t size, int *ret_fd) {
        _cleanup_close_ int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_NOEXEC_SEAL);

        if (fd < 0 && errno == EINVAL) /* kernel without MFD_NOEXEC_SEAL */
                fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0)
                return negerrno();
        if (ftruncate(fd, (off_t)size) < 0)
                return negerrno();
        *ret_fd = TAKE_FD(fd);
        return 0;
}

/* Write the headers and the initial words of a fresh (zero) pair. */
static void seg_init(const struct seg_map *m, const struct seg_params *p) {
        const struct seg_geom *g = &m->g;
        struct seg_ring_hdr *h = (struct seg_ring_hdr *)m->ring;
        struct seg_subs_hdr *sh = (struct seg_subs_hdr *)m->subs;

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
         * expects (seg_prev_stamp) and no reader ever sees it. */
        for (uint64_t t = g->start_seq; t < g->start_seq + g->slot_count; t++) {
                struct seg_slot *s = seg_slot(m, t);
                store_rlx(&s->flags, SEG_SLOT_ABANDONED);
                store_rlx(&s->stamp, seg_prev_stamp(t, g->slot_count));
        }

        *sh = (struct seg_subs_hdr){
                .magic = SEG_SUBS_MAGIC,
                .version = SEG_VERSION,
                .max_subs = g->max_subs,
                .seg_size = g->subs_size,
                .subs_offset = SEG_SUBS_TABLE_OFFSET,
                .holds_offset = g->holds_offset,
                .slot_count = g->slot_count,
        };
        memcpy(sh->segment_id, g->segment_id, 16);
        for (uint32_t i = 0; i < g->max_subs; i++)
                store_rlx(&seg_sub(m, i)->floor, SEG_FLOOR_NONE);
}

int seg_create(const struct seg_params *p, int *ret_ring_fd, int *ret_subs_fd) {
        _cleanup_close_ int rfd = -1, sfd = -1;
        _cleanup_mapping_ struct mapping ring = {0}, subs = {0};
        struct seg_map m;
        int r;

        r = geom_of(p, &m.g);
        if (r < 0)
                return r;
        r = memfd_sized("zcbus-ring", m.g.ring_size, &rfd);
        if (r < 0)
                return r;
        r = memfd_sized("zcbus-subs", m.g.subs_size, &sfd);
        if (r < 0)
                return r;
        r = mapping_new(rfd, m.g.ring_size, PROT_READ | PROT_WRITE, &ring);
        if (r < 0)
                return r;
        r = mapping_new(sfd, m.g.subs_size, PROT_READ | PROT_WRITE, &subs);
        if (r < 0)
                return r;
        m.ring = ring.p;
        m.subs = subs.p;
        m.ring_writable = 1;
        seg_init(&m, p);

        if (fcntl(rfd, F_ADD_SEALS, SEG_SEALS) < 0 || fcntl(sfd, F_ADD_SEALS, SEG_SEALS) < 0)
                return negerrno();
        *ret_ring_fd = TAKE_FD(rfd);
        *ret_subs_fd = TAKE_FD(sfd);
        return 0;
}

int seg_validate(const void *ring, uint64_t ring_size, const void *subs, uint64_t subs_size,
                 struct seg_geom *ret_geom) {
        struct seg_ring_hdr h;
        struct seg_subs_hdr sh;
        struct seg_params p;
        struct seg_geom g;

        if (!ring || !subs || ring_size < sizeof(h) || subs_size < sizeof(sh))
                return -EBADMSG;
        /* One copy of each header; everything below checks the copy. */
        memcpy(&h, ring, sizeof(h));
        memcpy(&sh, subs, sizeof(sh));
        if (h.magic != SEG_RING_MAGIC || sh.magic != SEG_SUBS_MAGIC)
                return -EBADMSG;
        if (h.version != SEG_VERSION || sh.version != SEG_VERSION)
                return -EPROTO;
        p = (struct seg_params){
                .slot_count = h.slot_count,
                .slot_size = h.slot_size,
                .policy = h.policy,
                .max_producers = h.max_producers,
                .max_subs = h.max_subs,
                .start_seq = h.start_seq,
        };
        memcpy(p.segment_id, h.segment_id, 16);
        memcpy(p.topic_id, h.topic_id, 16);
        if (geom_of(&p, &g) < 0)
                return -EBADMSG;
        /* Every derived field the header repeats must be the derived one. */
        if (h.slot_stride != g.slot_stride || h.slots_offset != g.slots_offset)
                return -EBADMSG;
        if (h.seg_size != g.ring_size || ring_size != g.ring_size)
                return -EBADMSG;
        if (sh.max_subs != g.max_subs || sh.slot_count != g.slot_count || sh.subs_offset != SEG_SUBS_TABLE_OFFSET ||
            sh.holds_offset != g.holds_offset || sh.seg_size != g.subs_size || subs_size != g.subs_size)
                return -EBADMSG;
        if (memcmp(sh.segment_id, h.segment_id, 16) != 0)
                return -EBADMSG;
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

int seg_map_fds(int ring_fd, int subs_fd, int ring_writable, struct seg_map *ret_map) {
        _cleanup_mapping_ struct mapping ring = {0}, subs = {0};
        uint64_t rsize, ssize;
        struct seg_geom g;
        int r;

        r = check_fd(ring_fd, &rsize);
        if (r < 0)
                return r;
        r = check_fd(subs_fd, &ssize);
        if (r < 0)
                return r;
        if (rsize > SEG_RING_BYTES_MAX || ssize > seg_subs_size(SEG_SUBS_MAX, SEG_SLOT_COUNT_MAX))
                return -EBADMSG;
        r = mapping_new(ring_fd, rsize, PROT_READ | (ring_writable ? PROT_WRITE : 0), &ring);
        if (r < 0)
                return r;
        r = mapping_new(subs_fd, ssize, PROT_READ | PROT_WRITE, &subs);
        if (r < 0)
                return r;
        r = seg_validate(ring.p, rsize, subs.p, ssize, &g);
        if (r < 0)
                return r;
        *ret_map = (struct seg_map){
                .g = g,
                .ring = TAKE_PTR(ring.p),
                .subs = TAKE_PTR(subs.p),
                .ring_writable = ring_writable,
        };
        return 0;
}

void seg_unmap(struct seg_map *m) {
        if (!m)
                return;
        struct mapping ring = {m->ring, m->g.ring_size}, subs = {m->subs, m->g.subs_size};
        mapping_release(&ring);
        mapping_release(&subs);
        m->ring = m->subs = NULL;
}
