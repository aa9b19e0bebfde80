/*
 * seg.c: creating, validating and mapping a topic's two segments.
 *
 * The creator (the broker) sizes each memfd once and seals it against
 * shrinking and growing, so no peer can make another take SIGBUS by
 * truncating a mapping. A receiver checks the seals and the size with
 * fstat() before it maps, then checks the header against that size and
 * copies the geometry into a private struct seg_geom, the only copy the
 * data plane ever trusts.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "macro.h"
#include "ring.h"
#include "seg.h"
#include "zcbus.h"

#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U
#endif

#define SEG_SEALS (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)

static uint32_t stride_of(uint32_t slot_size) {
        return ALIGN_UP(SEG_SLOT_DESC + slot_size, SEG_LINE);
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

static uint64_t slots_offset_of(uint32_t max_producers) {
        return ALIGN_UP(SEG_RING_PRODS_OFFSET + (uint64_t)max_producers * SEG_LINE, (uint64_t)4096);
}

int seg_ring_size(const struct seg_params *p, uint64_t *ret_size) {
        int r = seg_params_check(p);
        uint64_t sz;

        if (r < 0)
                return r;
        /* slot_count <= 2^24 and stride <= 2^30 + 128: no 64-bit overflow. */
        sz = slots_offset_of(p->max_producers) + (uint64_t)p->slot_count * stride_of(p->slot_size);
        sz = ALIGN_UP(sz, (uint64_t)4096);
        if (sz > SEG_RING_BYTES_MAX)
                return -E2BIG;
        *ret_size = sz;
        return 0;
}

uint64_t seg_holds_offset(uint32_t max_subs) {
        return SEG_SUBS_TABLE_OFFSET + (uint64_t)max_subs * SEG_LINE;
}

uint64_t seg_subs_size(uint32_t max_subs, uint32_t slot_count) {
        return ALIGN_UP(seg_holds_offset(max_subs) + (uint64_t)slot_count * seg_hold_words(max_subs) * 8,
                        (uint64_t)4096);
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

static void unmap(void *p, uint64_t size) {
        if (p && p != MAP_FAILED)
                (void)munmap(p, size);
}

int seg_create(const struct seg_params *p, int *ret_ring_fd, int *ret_subs_fd) {
        _cleanup_close_ int rfd = -1, sfd = -1;
        uint64_t rsize, ssize;
        uint8_t *ring, *subs;
        int r;

        r = seg_ring_size(p, &rsize);
        if (r < 0)
                return r;
        ssize = seg_subs_size(p->max_subs, p->slot_count);
        r = memfd_sized("zcbus-ring", rsize, &rfd);
        if (r < 0)
                return r;
        r = memfd_sized("zcbus-subs", ssize, &sfd);
        if (r < 0)
                return r;

        ring = mmap(NULL, rsize, PROT_READ | PROT_WRITE, MAP_SHARED, rfd, 0);
        if (ring == MAP_FAILED)
                return negerrno();
        subs = mmap(NULL, ssize, PROT_READ | PROT_WRITE, MAP_SHARED, sfd, 0);
        if (subs == MAP_FAILED) {
                r = negerrno();
                unmap(ring, rsize);
                return r;
        }

        struct seg_ring_hdr *h = (struct seg_ring_hdr *)ring;
        *h = (struct seg_ring_hdr){
                .magic = SEG_RING_MAGIC,
                .version = SEG_VERSION,
                .policy = p->policy,
                .slot_count = p->slot_count,
                .slot_size = p->slot_size,
                .slot_stride = stride_of(p->slot_size),
                .max_producers = p->max_producers,
                .slots_offset = slots_offset_of(p->max_producers),
                .seg_size = rsize,
                .start_seq = p->start_seq,
                .max_subs = p->max_subs,
                .data_word_start = p->data_word_start,
        };
        memcpy(h->segment_id, p->segment_id, 16);
        memcpy(h->topic_id, p->topic_id, 16);

        /* The memory is fresh (zero) and nobody else has it yet: relaxed
         * initialisation is enough; the fd passing that hands it out is
         * the synchronisation. */
        struct seg_ring_head *hd = (struct seg_ring_head *)(ring + 2 * SEG_LINE);
        store_rlx(&hd->head, p->start_seq);
        struct seg_ring_notify *nt = (struct seg_ring_notify *)(ring + 3 * SEG_LINE);
        store_rlx(&nt->data_word, p->data_word_start);
        struct seg_prod *prods = (struct seg_prod *)(ring + SEG_RING_PRODS_OFFSET);
        for (uint32_t i = 0; i < p->max_producers; i++)
                store_rlx(&prods[i].claim, SEG_CLAIM_NONE);
        /* Each slot starts as if the sequence one lap before start_seq had
         * been abandoned in it, so the first producer finds the stamp it
         * expects (ring_prev_stamp) and no reader ever sees it. */
        for (uint64_t t = p->start_seq; t < p->start_seq + p->slot_count; t++) {
                struct seg_slot *s = (struct seg_slot *)(ring + h->slots_offset +
                                                         (t & (p->slot_count - 1)) * (uint64_t)h->slot_stride);
                store_rlx(&s->flags, SEG_SLOT_ABANDONED);
                store_rlx(&s->stamp, ring_prev_stamp(t, p->slot_count));
        }

        struct seg_subs_hdr *sh = (struct seg_subs_hdr *)subs;
        *sh = (struct seg_subs_hdr){
                .magic = SEG_SUBS_MAGIC,
                .version = SEG_VERSION,
                .max_subs = p->max_subs,
                .seg_size = ssize,
                .subs_offset = SEG_SUBS_TABLE_OFFSET,
                .holds_offset = seg_holds_offset(p->max_subs),
                .slot_count = p->slot_count,
        };
        memcpy(sh->segment_id, p->segment_id, 16);
        struct seg_sub *st = (struct seg_sub *)(subs + SEG_SUBS_TABLE_OFFSET);
        for (uint32_t i = 0; i < p->max_subs; i++)
                store_rlx(&st[i].floor, SEG_FLOOR_NONE);

        unmap(ring, rsize);
        unmap(subs, ssize);

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
        uint64_t want;

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
        if (seg_ring_size(&p, &want) < 0)
                return -EBADMSG;
        if (h.slot_stride != stride_of(h.slot_size) || h.slots_offset != slots_offset_of(h.max_producers))
                return -EBADMSG;
        if (h.seg_size != want || ring_size != want)
                return -EBADMSG;
        if (sh.max_subs != h.max_subs || sh.slot_count != h.slot_count || sh.subs_offset != SEG_SUBS_TABLE_OFFSET ||
            sh.holds_offset != seg_holds_offset(sh.max_subs) ||
            sh.seg_size != seg_subs_size(sh.max_subs, sh.slot_count) || subs_size != sh.seg_size)
                return -EBADMSG;
        if (memcmp(sh.segment_id, h.segment_id, 16) != 0)
                return -EBADMSG;

        *ret_geom = (struct seg_geom){
                .slot_count = h.slot_count,
                .mask = h.slot_count - 1,
                .slot_size = h.slot_size,
                .slot_stride = h.slot_stride,
                .policy = h.policy,
                .max_producers = h.max_producers,
                .max_subs = h.max_subs,
                .slots_offset = h.slots_offset,
                .holds_offset = sh.holds_offset,
                .hold_words = seg_hold_words(h.max_subs),
                .ring_size = ring_size,
                .subs_size = subs_size,
                .start_seq = h.start_seq,
        };
        memcpy(ret_geom->segment_id, h.segment_id, 16);
        memcpy(ret_geom->topic_id, h.topic_id, 16);
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
        uint64_t rsize, ssize;
        void *ring, *subs;
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
        ring = mmap(NULL, rsize, PROT_READ | (ring_writable ? PROT_WRITE : 0), MAP_SHARED, ring_fd, 0);
        if (ring == MAP_FAILED)
                return negerrno();
        subs = mmap(NULL, ssize, PROT_READ | PROT_WRITE, MAP_SHARED, subs_fd, 0);
        if (subs == MAP_FAILED) {
                r = negerrno();
                unmap(ring, rsize);
                return r;
        }
        r = seg_validate(ring, rsize, subs, ssize, &g);
        if (r < 0) {
                unmap(ring, rsize);
                unmap(subs, ssize);
                return r;
        }
        *ret_map = (struct seg_map){.g = g, .ring = ring, .subs = subs, .ring_writable = ring_writable};
        return 0;
}

void seg_unmap(struct seg_map *m) {
        if (!m)
                return;
        unmap(m->ring, m->g.ring_size);
        unmap(m->subs, m->g.subs_size);
        m->ring = m->subs = NULL;
}
