/* SPDX-License-Identifier: MIT */
/*
 * test_seg.c: Check suite "seg", the shared segment layout.
 *
 * Proves: geometry limits are enforced before anything is sized; created
 * memfds are sealed against shrink, grow and further seals and have the
 * exact sizes the header claims; mapping checks the fds (seals, size) and
 * then the headers, so a corrupt or foreign segment is refused field by
 * field (each corruption is tried on a private heap copy of a valid pair,
 * so ASan would see any read past the given sizes); and a subscriber's
 * read-only mapping really cannot write the ring.
 */
#include "config.h"

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h" /* header-only helpers */
#include "ring_repair.h"
#include "seg.h"
#include "zcbus.h"

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif

static struct seg_params valid_params(void) {
        struct seg_params p = {
                .slot_count = 16,
                .slot_size = 100,
                .policy = ZCBUS_POLICY_RELIABLE,
                .max_producers = 4,
                .max_subs = 8,
                .start_seq = 1000,
                .data_word_start = 77,
                .sub_tables = 1,
        };
        for (int i = 0; i < 16; i++) {
                p.segment_id[i] = (uint8_t)(0x10 + i);
                p.topic_id[i] = (uint8_t)(0x80 + i);
        }
        return p;
}

static int count_fds(void) {
        DIR *d = opendir("/proc/self/fd");
        struct dirent *e;
        int n = 0;

        ck_assert_ptr_nonnull(d);
        while ((e = readdir(d)))
                if (e->d_name[0] != '.')
                        n++;
        (void)closedir(d);
        return n - 1;
}

static int count_memfd_maps(void) {
        FILE *f = fopen("/proc/self/maps", "re");
        char line[4096];
        int n = 0;

        ck_assert_ptr_nonnull(f);
        while (fgets(line, sizeof(line), f))
                if (strstr(line, "memfd:zcbus"))
                        n++;
        (void)fclose(f);
        return n;
}

/* seg_create (main() skips the suite on kernels without sealable memfds). */
static void create_segments(const struct seg_params *p, int *rfd, int *sfd) {
        int r = seg_create(p, rfd, sfd);
        ck_assert_msg(r == 0, "seg_create: %s", strerror(-r));
}

/* Shared words, read through functions so that failed assertions print
 * the expression as written rather than the expansion of an atomic. */
static uint32_t ld32(const au32 *w) {
        return load_sc(w);
}
static uint64_t ld64(const au64 *w) {
        return load_sc(w);
}

static uint64_t fd_size(int fd) {
        struct stat st;
        ck_assert_int_eq(fstat(fd, &st), 0);
        return (uint64_t)st.st_size;
}

/* ---------------------------------------------------------------- params */

START_TEST(test_params_at_the_limits_are_accepted) {
        struct seg_params p = valid_params();
        uint64_t sz;

        ck_assert_int_eq(seg_params_check(&p), 0);
        p.slot_count = 2;
        ck_assert_int_eq(seg_params_check(&p), 0);
        p.slot_count = SEG_SLOT_COUNT_MAX;
        p.slot_size = 1;
        ck_assert_int_eq(seg_params_check(&p), 0);
        ck_assert_int_eq(seg_ring_size(&p, &sz), 0);
        p.slot_count = 2;
        p.slot_size = SEG_SLOT_SIZE_MAX;
        ck_assert_int_eq(seg_params_check(&p), 0);
        ck_assert_int_eq(seg_ring_size(&p, &sz), 0);
        p = valid_params();
        p.policy = ZCBUS_POLICY_LATEST;
        p.max_producers = SEG_PRODUCERS_MAX;
        p.max_subs = SEG_SUBS_MAX;
        ck_assert_int_eq(seg_params_check(&p), 0);
        p.max_producers = 1;
        p.max_subs = 1;
        ck_assert_int_eq(seg_params_check(&p), 0);
        ck_assert_int_eq(seg_params_check(NULL), -EINVAL);
}
END_TEST

START_TEST(test_slot_count_zero_one_non_power_of_two_or_too_big_is_rejected) {
        static const uint32_t bad[] = {0, 1, 3, 6, 12, 1000, (1u << 20) + 1, SEG_SLOT_COUNT_MAX + 1,
                                       SEG_SLOT_COUNT_MAX << 1, 1u << 31, UINT32_MAX};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                struct seg_params p = valid_params();
                uint64_t sz = 12345;
                p.slot_count = bad[i];
                ck_assert_msg(seg_params_check(&p) < 0, "slot_count %u accepted", bad[i]);
                ck_assert_msg(seg_ring_size(&p, &sz) < 0, "slot_count %u sized", bad[i]);
                ck_assert_msg(sz == 12345, "seg_ring_size set its out-parameter on failure");
        }
}
END_TEST

START_TEST(test_slot_size_zero_or_too_big_is_rejected) {
        static const uint32_t bad[] = {0, SEG_SLOT_SIZE_MAX + 1, UINT32_MAX - 63, UINT32_MAX};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                struct seg_params p = valid_params();
                uint64_t sz;
                p.slot_size = bad[i];
                ck_assert_msg(seg_params_check(&p) < 0, "slot_size %u accepted", bad[i]);
                ck_assert_msg(seg_ring_size(&p, &sz) < 0, "slot_size %u sized", bad[i]);
        }
}
END_TEST

START_TEST(test_policy_and_table_sizes_out_of_range_are_rejected) {
        struct seg_params p;

        p = valid_params(), p.policy = ZCBUS_POLICY_DEFAULT;
        ck_assert_int_lt(seg_params_check(&p), 0);
        p = valid_params(), p.policy = 3;
        ck_assert_int_lt(seg_params_check(&p), 0);
        p = valid_params(), p.max_producers = 0;
        ck_assert_int_lt(seg_params_check(&p), 0);
        p = valid_params(), p.max_producers = SEG_PRODUCERS_MAX + 1;
        ck_assert_int_lt(seg_params_check(&p), 0);
        p = valid_params(), p.max_subs = 0;
        ck_assert_int_lt(seg_params_check(&p), 0);
        p = valid_params(), p.max_subs = SEG_SUBS_MAX + 1;
        ck_assert_int_lt(seg_params_check(&p), 0);
        p = valid_params(), p.start_seq = SEG_SEQ_LIMIT;
        ck_assert_int_lt(seg_params_check(&p), 0);
        p = valid_params(), p.start_seq = UINT64_MAX;
        ck_assert_int_lt(seg_params_check(&p), 0);
}
END_TEST

START_TEST(test_ring_size_covers_every_part_and_refuses_oversized_totals) {
        struct seg_params p = valid_params();
        uint64_t sz, stride = ((SEG_SLOT_DESC + p.slot_size + SEG_LINE - 1) / SEG_LINE) * SEG_LINE;

        ck_assert_int_eq(seg_ring_size(&p, &sz), 0);
        ck_assert_uint_ge(sz, SEG_RING_PRODS_OFFSET + (uint64_t)p.max_producers * SEG_LINE +
                                      (uint64_t)p.slot_count * stride);
        ck_assert_uint_le(sz, SEG_RING_BYTES_MAX);
        ck_assert_uint_ge(seg_subs_size(8, 16, ZCBUS_POLICY_LATEST), SEG_SUBS_TABLE_OFFSET + 8 * SEG_LINE);
        ck_assert_uint_ge(seg_subs_size(SEG_SUBS_MAX, 16, ZCBUS_POLICY_LATEST), SEG_SUBS_TABLE_OFFSET + (uint64_t)SEG_SUBS_MAX * SEG_LINE);

        /* Each limit alone is fine; the product is not (2^54 > 2^40). */
        p.slot_count = SEG_SLOT_COUNT_MAX;
        p.slot_size = SEG_SLOT_SIZE_MAX;
        sz = 999;
        ck_assert_int_eq(seg_ring_size(&p, &sz), -E2BIG);
        ck_assert_uint_eq(sz, 999);
        /* Just over 2^40 (2^24 slots of 2^16 + a descriptor line). */
        p.slot_size = 1u << 16;
        ck_assert_int_eq(seg_ring_size(&p, &sz), -E2BIG);
        /* Just under: 2^24 slots of 2^16 - 128 bytes. */
        p.slot_size = (1u << 16) - 128;
        ck_assert_int_eq(seg_ring_size(&p, &sz), 0);
        ck_assert_uint_le(sz, SEG_RING_BYTES_MAX);
}
END_TEST

/* ---------------------------------------------------------------- create */

START_TEST(test_created_memfds_are_sealed_sized_and_cloexec) {
        struct seg_params p = valid_params();
        int rfd = -1, sfd = -1;
        uint64_t want;
        const int need = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;

        create_segments(&p, &rfd, &sfd);
        ck_assert_int_eq(seg_ring_size(&p, &want), 0);
        ck_assert_uint_eq(fd_size(rfd), want);
        ck_assert_uint_eq(fd_size(sfd), seg_subs_size(p.max_subs, p.slot_count, p.policy));

        int fds[2] = {rfd, sfd};
        for (int i = 0; i < 2; i++) {
                int fd = fds[i];
                int seals = fcntl(fd, F_GET_SEALS);
                uint64_t size = fd_size(fd);
                char link[64], target[256];

                ck_assert_msg(seals >= 0, "F_GET_SEALS: %s", strerror(errno));
                ck_assert_msg((seals & need) == need, "seals %#x lack shrink|grow|seal", seals);
                ck_assert_msg(!(seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)), "seals %#x forbid writing", seals);
                ck_assert_msg(fcntl(fd, F_GETFD) & FD_CLOEXEC, "memfd is not close-on-exec");
                errno = 0;
                ck_assert_msg(ftruncate(fd, (off_t)size * 2) < 0 && errno == EPERM, "grow: %s", strerror(errno));
                errno = 0;
                ck_assert_msg(ftruncate(fd, (off_t)size / 2) < 0 && errno == EPERM, "shrink: %s", strerror(errno));
                errno = 0;
                ck_assert_msg(fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE) < 0 && errno == EPERM, "new seal: %s",
                              strerror(errno));
                ck_assert_uint_eq(fd_size(fd), size);
                /* The name the integration tests count mappings by. */
                snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
                ssize_t n = readlink(link, target, sizeof(target) - 1);
                ck_assert_int_gt(n, 0);
                target[n] = '\0';
                ck_assert_msg(strncmp(target, "/memfd:zcbus", 12) == 0, "memfd named \"%s\"", target);
        }
        (void)close(rfd);
        (void)close(sfd);
}
END_TEST

START_TEST(test_create_refuses_bad_params_without_leaking) {
        struct seg_params p = valid_params();
        int rfd = -7, sfd = -7;
        int before = count_fds();

        p.slot_count = 3;
        ck_assert_int_lt(seg_create(&p, &rfd, &sfd), 0);
        p = valid_params();
        p.slot_count = SEG_SLOT_COUNT_MAX;
        p.slot_size = SEG_SLOT_SIZE_MAX;
        ck_assert_int_eq(seg_create(&p, &rfd, &sfd), -E2BIG);
        ck_assert_int_eq(rfd, -7);
        ck_assert_int_eq(sfd, -7);
        ck_assert_int_eq(count_fds(), before);
}
END_TEST

START_TEST(test_mapped_geometry_and_initial_state_match_the_params) {
        struct seg_params p = valid_params();
        struct seg_map m;
        int rfd, sfd;
        int fds0 = count_fds(), maps0 = count_memfd_maps();

        create_segments(&p, &rfd, &sfd);
        ck_assert_int_eq(seg_map_fds(rfd, &sfd, 0, 1, 1, &m), 0);
        ck_assert_int_eq(count_memfd_maps(), maps0 + 2);

        ck_assert_uint_eq(m.g.slot_count, 16);
        ck_assert_uint_eq(m.g.mask, 15);
        ck_assert_uint_eq(m.g.slot_size, 100);
        ck_assert_uint_eq(m.g.slot_stride, SEG_LINE + 128);
        ck_assert_uint_eq(m.g.policy, ZCBUS_POLICY_RELIABLE);
        ck_assert_uint_eq(m.g.max_producers, 4);
        ck_assert_uint_eq(m.g.max_subs, 8);
        ck_assert_uint_eq(m.g.ring_size, fd_size(rfd));
        ck_assert_uint_eq(m.g.subs_size, fd_size(sfd));
        ck_assert_uint_eq(m.g.start_seq, 1000);
        ck_assert_mem_eq(m.g.segment_id, p.segment_id, 16);
        ck_assert_mem_eq(m.g.topic_id, p.topic_id, 16);
        ck_assert_int_eq(m.ring_writable, 1);
        /* Slots lie inside the segment, after the producer table, aligned. */
        ck_assert_uint_ge(m.g.slots_offset, SEG_RING_PRODS_OFFSET + 4 * SEG_LINE);
        ck_assert_uint_eq(m.g.slots_offset % SEG_LINE, 0);
        ck_assert_uint_le(m.g.slots_offset + (uint64_t)m.g.slot_count * m.g.slot_stride, m.g.ring_size);

        const struct seg_ring_hdr *h = (const struct seg_ring_hdr *)m.ring;
        ck_assert_uint_eq(h->magic, SEG_RING_MAGIC);
        ck_assert_uint_eq(h->version, SEG_VERSION);
        ck_assert_uint_eq(h->seg_size, m.g.ring_size);
        const struct seg_subs_hdr *sh = (const struct seg_subs_hdr *)m.tables[0];
        ck_assert_uint_eq(sh->magic, SEG_SUBS_MAGIC);
        ck_assert_mem_eq(sh->segment_id, p.segment_id, 16);

        ck_assert_uint_eq(ld64(&seg_head(&m)->head), 1000);
        ck_assert_uint_eq(ld32(&seg_ring_notify(&m)->data_word), 77);
        for (uint32_t i = 0; i < 4; i++) {
                ck_assert_uint_eq(ld32(&seg_prod(&m, i)->state), SEG_ENTRY_FREE);
                ck_assert_uint_eq(ld64(&seg_prod(&m, i)->claim), SEG_CLAIM_NONE);
        }
        for (uint32_t i = 0; i < 8; i++) {
                ck_assert_uint_eq(ld32(&seg_sub_state(&m, i)->state), SEG_ENTRY_FREE);
                ck_assert_uint_eq(ld64(&seg_sub(&m, 0, i)->floor), SEG_FLOOR_NONE);
        }
        /* The LATEST hold bitmaps: one per slot, after the subscriber
         * table, inside the subs segment, all clear. */
        ck_assert_uint_eq(m.g.hold_words, seg_hold_words(8));
        ck_assert_uint_ge(m.g.holds_offset, SEG_SUBS_TABLE_OFFSET + 8 * SEG_LINE);
        ck_assert_uint_le(m.g.holds_offset + 16 * (uint64_t)m.g.hold_words * 8, m.g.subs_size);
        for (uint64_t s = 0; s < 16; s++)
                ck_assert_msg(!ring_held(&m, s), "slot %llu held in a new segment", (unsigned long long)s);
        ck_assert_ptr_eq(seg_holds(&m, 0, 16), seg_holds(&m, 0, 0));
        ck_assert_ptr_eq(seg_holds(&m, 0, 1), seg_holds(&m, 0, 0) + m.g.hold_words);
        const struct seg_subs_notify *sn = seg_subs_notify(&m, 0);
        ck_assert_uint_eq(ld32(&sn->data_armed), 0);
        ck_assert_uint_eq(ld32(&sn->room_armed), 0);
        /* No slot holds a message a reader could take for sequence >= start. */
        for (uint64_t s = 1000; s < 1016; s++) {
                uint64_t st = load_rlx(&seg_slot(&m, s)->stamp);
                ck_assert_msg((st & SEG_STAMP_SEQ_MASK) <= s, "slot of %llu stamped %#llx", (unsigned long long)s,
                              (unsigned long long)st);
        }

        /* The fds are not needed once mapped, and unmapping frees all. */
        (void)close(rfd);
        (void)close(sfd);
        ck_assert_uint_eq(ld64(&seg_head(&m)->head), 1000);
        seg_unmap(&m);
        seg_unmap(&m); /* twice is harmless */
        seg_unmap(NULL);
        ck_assert_int_eq(count_memfd_maps(), maps0);
        ck_assert_int_eq(count_fds(), fds0);
}
END_TEST

START_TEST(test_hold_bitmaps_grow_with_the_subscriber_table) {
        static const uint32_t subs[] = {1, 64, 65, 128, 129, SEG_SUBS_MAX};
        for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
                struct seg_params p = valid_params();
                struct seg_map m;
                int rfd, sfd;

                p.max_subs = subs[i];
                p.policy = ZCBUS_POLICY_LATEST; /* only LATEST tables have holds */
                create_segments(&p, &rfd, &sfd);
                ck_assert_int_eq(seg_map_fds(rfd, &sfd, 0, 1, 1, &m), 0);
                (void)close(rfd);
                (void)close(sfd);
                ck_assert_uint_eq(m.g.hold_words, (subs[i] + 63) / 64);
                ck_assert_uint_ge(m.g.holds_offset, SEG_SUBS_TABLE_OFFSET + (uint64_t)subs[i] * SEG_LINE);
                ck_assert_uint_le(m.g.holds_offset + (uint64_t)p.slot_count * m.g.hold_words * 8, m.g.subs_size);
                /* The last subscriber's bit in the last slot is inside, and
                 * visible to ring_held once the entry is live in the table
                 * (before, nothing a table's writers set counts). */
                ring_hold_take(&m, 0, 15, subs[i] - 1);
                ck_assert(!ring_held(&m, 15));
                (void)ring_sub_register(&m, subs[i] - 1, 0, 1, 0);
                ck_assert(ring_held(&m, 15));
                ck_assert(!ring_held(&m, 14));
                ring_hold_drop(&m, 0, 15, subs[i] - 1);
                ck_assert(!ring_held(&m, 15));
                seg_unmap(&m);
        }
}
END_TEST

/* A memfd with the same bytes as fd but without seals. */
static int unsealed_copy(int fd) {
        uint64_t size = fd_size(fd);
        int c = memfd_create("zcbus-copy", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        void *src, *dst;

        ck_assert_int_ge(c, 0);
        ck_assert_int_eq(ftruncate(c, (off_t)size), 0);
        src = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
        dst = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, c, 0);
        ck_assert(src != MAP_FAILED && dst != MAP_FAILED);
        memcpy(dst, src, size);
        (void)munmap(src, size);
        (void)munmap(dst, size);
        return c;
}

START_TEST(test_map_refuses_unsealed_foreign_or_swapped_fds) {
        struct seg_params p = valid_params();
        struct seg_map m;
        int rfd, sfd, p2[2];
        int maps0 = count_memfd_maps();

        create_segments(&p, &rfd, &sfd);
        int urfd = unsealed_copy(rfd), usfd = unsealed_copy(sfd);
        ck_assert_int_lt(seg_map_fds(urfd, &sfd, 0, 1, 1, &m), 0);
        ck_assert_int_lt(seg_map_fds(rfd, &usfd, 0, 1, 1, &m), 0);
        /* Sealed against shrink and grow only: still a fine segment. */
        ck_assert_int_eq(fcntl(urfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW), 0);
        ck_assert_int_eq(seg_map_fds(urfd, &sfd, 0, 1, 0, &m), 0);
        seg_unmap(&m);

        ck_assert_int_eq(pipe2(p2, O_CLOEXEC), 0);
        ck_assert_int_lt(seg_map_fds(p2[0], &sfd, 0, 1, 0, &m), 0);
        ck_assert_int_lt(seg_map_fds(rfd, &p2[1], 0, 1, 0, &m), 0);
        ck_assert_int_lt(seg_map_fds(-1, &sfd, 0, 1, 0, &m), 0);
        ck_assert_int_lt(seg_map_fds(sfd, &rfd, 0, 1, 0, &m), 0);
        ck_assert_int_lt(seg_map_fds(rfd, &rfd, 0, 1, 0, &m), 0);
        ck_assert_int_lt(seg_map_fds(sfd, &sfd, 0, 1, 0, &m), 0);

        /* A ring of another topic with this topic's table: a table's
         * header cannot bind it to its ring (its subscribers can write
         * it), so the pair is the broker's word; what is checked is its
         * size, its seals and the index it is given. */
        struct seg_params q = valid_params();
        q.segment_id[0] ^= 1;
        int rfd2, sfd2;
        create_segments(&q, &rfd2, &sfd2);
        ck_assert_int_eq(seg_map_fds(rfd2, &sfd, 0, 1, 0, &m), 0);
        seg_unmap(&m);
        ck_assert_int_eq(seg_map_fds(rfd2, &sfd2, 0, 1, 0, &m), 0);
        seg_unmap(&m);
        ck_assert_int_lt(seg_map_fds(rfd2, &sfd2, 1, 1, 0, &m), 0); /* the topic has one table */
        q.max_subs = 64;
        int rfd3, sfd3;
        create_segments(&q, &rfd3, &sfd3);
        ck_assert_int_lt(seg_map_fds(rfd2, &sfd3, 0, 1, 0, &m), 0); /* another size */
        (void)close(rfd3);
        (void)close(sfd3);

        /* A sealed memfd of the right size with nothing in it. */
        int z = memfd_create("zcbus-zero", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        ck_assert_int_ge(z, 0);
        ck_assert_int_eq(ftruncate(z, (off_t)fd_size(rfd)), 0);
        ck_assert_int_eq(fcntl(z, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL), 0);
        ck_assert_int_lt(seg_map_fds(z, &sfd, 0, 1, 0, &m), 0);

        int all[] = {rfd, sfd, urfd, usfd, p2[0], p2[1], rfd2, sfd2, z};
        for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
                (void)close(all[i]);
        ck_assert_int_eq(count_memfd_maps(), maps0);
}
END_TEST

/* -------------------------------------------------------------- validate */

struct copy {
        uint8_t *ring, *subs;
        uint64_t ring_size, subs_size;
};

static void valid_copy(struct copy *c) {
        struct seg_params p = valid_params();
        struct seg_map m;
        int rfd, sfd;

        create_segments(&p, &rfd, &sfd);
        ck_assert_int_eq(seg_map_fds(rfd, &sfd, 0, 1, 0, &m), 0);
        (void)close(rfd);
        (void)close(sfd);
        c->ring_size = m.g.ring_size;
        c->subs_size = m.g.subs_size;
        c->ring = malloc(c->ring_size);
        c->subs = malloc(c->subs_size);
        ck_assert(c->ring && c->subs);
        memcpy(c->ring, m.ring, c->ring_size);
        memcpy(c->subs, m.tables[0], c->subs_size);
        seg_unmap(&m);
}

static void free_copy(struct copy *c) {
        free(c->ring);
        free(c->subs);
}

static struct seg_ring_hdr *RH(struct copy *c) {
        return (struct seg_ring_hdr *)c->ring;
}
static struct seg_subs_hdr *SH(struct copy *c) {
        return (struct seg_subs_hdr *)c->subs;
}

/* One corruption each; the sizes passed to seg_validate may be adjusted. */
static const char *corrupt(unsigned i, struct copy *c, uint64_t *rsz, uint64_t *ssz) {
        switch (i) {
        case 0: RH(c)->magic ^= 1; return "ring magic";
        case 1: RH(c)->magic = SEG_SUBS_MAGIC; return "ring magic = subs magic";
        case 2: SH(c)->magic = SEG_RING_MAGIC; return "subs magic = ring magic";
        case 3: RH(c)->version = SEG_VERSION + 1; return "ring version";
        case 4: SH(c)->version = 0; return "subs version";
        case 5: RH(c)->slot_count = 15; return "slot_count not a power of two";
        case 6: RH(c)->slot_count = 0; return "slot_count 0";
        case 7: RH(c)->slot_count = 1; return "slot_count 1";
        case 8: RH(c)->slot_count = 32; return "slot_count doubled (slots beyond the segment)";
        case 9: RH(c)->slot_count = 1u << 31; return "slot_count 2^31";
        case 10: RH(c)->slot_stride = SEG_LINE; return "slot_stride without payload room";
        case 11: RH(c)->slot_stride += SEG_LINE; return "slot_stride one line too big";
        case 12: RH(c)->slot_stride = 0; return "slot_stride 0";
        case 13: RH(c)->slot_stride -= 1; return "slot_stride unaligned";
        case 14: RH(c)->slot_size = 0; return "slot_size 0";
        case 15: RH(c)->slot_size = RH(c)->slot_stride; return "slot_size above the stride's payload room";
        case 16: RH(c)->slot_size = UINT32_MAX; return "slot_size huge";
        case 17: RH(c)->slots_offset += 4096; return "slots_offset past room for the slots";
        case 18: RH(c)->slots_offset = c->ring_size; return "slots_offset at the end";
        case 19: RH(c)->slots_offset = UINT64_MAX - 64; return "slots_offset wrapping";
        case 20: RH(c)->slots_offset = SEG_LINE * 2; return "slots_offset over the header and tables";
        case 21: RH(c)->slots_offset -= SEG_LINE; return "slots_offset one line early";
        case 22: SH(c)->segment_id[7] ^= 0x40; return "subs segment of another ring";
        case 23: RH(c)->segment_id[0] ^= 1; return "ring segment of another subs";
        case 24: SH(c)->max_subs = RH(c)->max_subs * 2; return "subs max_subs above the ring's";
        case 25: RH(c)->max_subs = SH(c)->max_subs / 2; return "ring max_subs below the subs'";
        case 26: SH(c)->max_subs = 1u << 30; return "subs max_subs huge";
        case 27: RH(c)->seg_size += 4096; return "ring seg_size above the real size";
        case 28: RH(c)->seg_size -= 4096; return "ring seg_size below the real size";
        case 29: *rsz -= 4096; return "ring mapped smaller than its header says";
        case 30: SH(c)->seg_size += 4096; return "subs seg_size above the real size";
        case 31: *ssz = 64; return "subs mapped smaller than its header says";
        case 32: SH(c)->subs_offset = 0; return "subs_offset over the header";
        case 33: SH(c)->subs_offset = c->subs_size; return "subs_offset at the end";
        case 34: RH(c)->policy = 0; return "policy 0";
        case 35: RH(c)->policy = 3; return "policy 3";
        case 36: RH(c)->max_producers = 0; return "max_producers 0";
        case 37: RH(c)->max_producers = 1000; return "producer table over the slots";
        case 38: RH(c)->max_producers = UINT32_MAX; return "max_producers huge";
        case 39: *rsz = sizeof(struct seg_ring_hdr) - 1; return "ring shorter than its header";
        case 40: *ssz = sizeof(struct seg_subs_hdr) - 1; return "subs shorter than its header";
        case 41: *rsz = 0; return "ring size 0";
        case 42: RH(c)->start_seq = UINT64_MAX; return "start_seq beyond the sequence space";
        case 43: SH(c)->holds_offset = 0; return "holds table over the header";
        case 44: SH(c)->holds_offset = c->subs_size; return "holds table past the end";
        case 45: SH(c)->holds_offset -= SEG_LINE; return "holds table over the last subscriber";
        case 46: SH(c)->slot_count = RH(c)->slot_count * 2; return "subs slot_count above the ring's";
        case 47: SH(c)->slot_count = RH(c)->slot_count / 2; return "subs slot_count below the ring's";
        default: return NULL;
        }
}
#define CORRUPTIONS 48

START_TEST(test_validate_accepts_an_intact_copy) {
        struct copy c;
        struct seg_geom g;

        valid_copy(&c);
        ck_assert_int_eq(seg_validate(c.ring, c.ring_size, c.subs, c.subs_size, &g), 0);
        ck_assert_uint_eq(g.slot_count, 16);
        ck_assert_uint_eq(g.ring_size, c.ring_size);
        ck_assert_int_lt(seg_validate(NULL, c.ring_size, c.subs, c.subs_size, &g), 0);
        ck_assert_int_lt(seg_validate(c.ring, c.ring_size, NULL, c.subs_size, &g), 0);
        free_copy(&c);
}
END_TEST

START_TEST(test_validate_rejects_each_corrupt_field) {
        struct copy c;
        struct seg_geom g, untouched;
        uint64_t rsz, ssz;

        valid_copy(&c);
        rsz = c.ring_size;
        ssz = c.subs_size;
        const char *what = corrupt((unsigned)_i, &c, &rsz, &ssz);
        ck_assert_ptr_nonnull(what);
        /* Hand seg_validate exactly rsz/ssz bytes of heap, so that a read
         * past them is an ASan error, not luck. */
        uint8_t *r = malloc(rsz ? rsz : 1), *s = malloc(ssz ? ssz : 1);
        ck_assert(r && s);
        memcpy(r, c.ring, rsz < c.ring_size ? rsz : c.ring_size);
        memcpy(s, c.subs, ssz < c.subs_size ? ssz : c.subs_size);
        memset(&g, 0xa5, sizeof(g));
        untouched = g;
        int ret = seg_validate(r, rsz, s, ssz, &g);
        ck_assert_msg(ret < 0, "seg_validate accepted a segment with %s", what);
        ck_assert_msg(memcmp(&g, &untouched, sizeof(g)) == 0, "geometry written despite %s", what);
        free(r);
        free(s);
        free_copy(&c);
}
END_TEST

/* ------------------------------------------------------------- read-only */

static int reopen_rdonly(int fd) {
        char path[64];
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        int r = open(path, O_RDONLY | O_CLOEXEC);
        ck_assert_msg(r >= 0, "reopen %s: %s", path, strerror(errno));
        return r;
}

START_TEST(test_subscriber_readonly_ring_map_reads_but_cannot_write) {
        struct seg_params p = valid_params();
        struct seg_map rw, ro;
        int rfd, sfd;

        create_segments(&p, &rfd, &sfd);
        int rofd = reopen_rdonly(rfd);
        ck_assert_int_eq(seg_map_fds(rfd, &sfd, 0, 1, 1, &rw), 0);
        /* Asking for a writable ring through a read-only fd fails. */
        ck_assert_int_eq(seg_map_fds(rofd, &sfd, 0, 1, 1, &ro), -EACCES);
        ck_assert_int_eq(seg_map_fds(rofd, &sfd, 0, 1, 0, &ro), 0);
        (void)close(rofd);
        (void)close(rfd);
        (void)close(sfd);
        ck_assert_int_eq(ro.ring_writable, 0);
        ck_assert_uint_eq(ro.g.slot_count, rw.g.slot_count);
        ck_assert_uint_eq(ro.g.slot_stride, rw.g.slot_stride);
        ck_assert_uint_eq(ro.g.slots_offset, rw.g.slots_offset);
        ck_assert_uint_eq(ro.g.ring_size, rw.g.ring_size);

        /* Reads see what the writable side writes. */
        struct seg_slot *w = seg_slot(&rw, 1003);
        w->len = 42;
        seg_payload(w)[0] = 0xab;
        store_rel(&w->stamp, 1004);
        struct seg_slot *r = seg_slot(&ro, 1003);
        ck_assert_uint_eq(ld64(&r->stamp), 1004);
        ck_assert_uint_eq(r->len, 42);
        ck_assert_uint_eq(seg_payload(r)[0], 0xab);
        /* The subscriber table stays writable for the subscriber. */
        store_rlx(&seg_sub(&ro, 0, 0)->next, 5);
        ck_assert_uint_eq(ld64(&seg_sub(&rw, 0, 0)->next), 5);

        /* The mapping cannot be made writable after the fact. */
        errno = 0;
        ck_assert_msg(mprotect(ro.ring, ro.g.ring_size, PROT_READ | PROT_WRITE) < 0 && errno == EACCES,
                      "mprotect of the read-only ring to RW: %s", strerror(errno));

        /* A write faults: try it in a child, which must die of SIGSEGV. */
        fflush(NULL);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                struct rlimit no_core = {0, 0};
                struct sigaction dfl = {.sa_handler = SIG_DFL};
                (void)setrlimit(RLIMIT_CORE, &no_core);
                (void)sigaction(SIGSEGV, &dfl, NULL);
                (void)sigaction(SIGBUS, &dfl, NULL);
                volatile uint8_t *pay = seg_payload(seg_slot(&ro, 1003));
                pay[0] = 0x11;
                _exit(0);
        }
        int st;
        ck_assert_int_eq(waitpid(pid, &st, 0), pid);
        ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV, "write through the read-only map: status %#x", st);
        ck_assert_uint_eq(seg_payload(w)[0], 0xab);

        seg_unmap(&ro);
        seg_unmap(&rw);
}
END_TEST

/* Defect: the ring memfd had mode 0666, so any uid holding the read-only
 * fd could reopen it O_RDWR through /proc/self/fd and forge messages. */
START_TEST(test_ring_memfd_cannot_be_reopened_writable_by_another_uid) {
        struct seg_params p = valid_params();
        int rfd, sfd;

        if (geteuid() != 0) {
                fprintf(stderr, "seg: not root, cannot switch uid: cross-uid reopen not tested\n");
                return;
        }
        create_segments(&p, &rfd, &sfd);
        int rofd = reopen_rdonly(rfd);
        fflush(NULL);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                char path[64];
                int bad = 0;
                if (setresgid(65534, 65534, 65534) < 0 || setresuid(65534, 65534, 65534) < 0)
                        _exit(90);
                /* Keep /proc/self/fd reachable after the uid change. */
                (void)prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
                int fds[3] = {rofd, rfd, sfd};
                for (int i = 0; i < 3; i++) {
                        snprintf(path, sizeof(path), "/proc/self/fd/%d", fds[i]);
                        int fd = open(path, O_RDWR | O_CLOEXEC);
                        if (fd >= 0 || errno != EACCES)
                                bad |= 1 << i;
                        if (fd >= 0)
                                (void)close(fd);
                        if (fchmod(fds[i], 0666) == 0)
                                bad |= 8 << i;
                }
                _exit(bad);
        }
        int st;
        ck_assert_int_eq(waitpid(pid, &st, 0), pid);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
                      "another uid reopened or re-moded a segment (status %#x: bits 1,2,4 opened ro/ring/subs "
                      "O_RDWR, 8,16,32 chmod)", st);
        (void)close(rofd);
        (void)close(rfd);
        (void)close(sfd);
}
END_TEST

/* Defect: creating a topic stamped every slot, touching all of a huge
 * ring's memory inside the broker's event loop (seconds for 1 GiB). A ring
 * that starts at sequence 0 must need no write to any slot page. */
START_TEST(test_creating_a_large_ring_touches_no_slot_page) {
        struct seg_params p = valid_params();
        struct stat st;
        int rfd, sfd;

        p.slot_count = 1u << 16;
        p.slot_size = 4096 - SEG_SLOT_DESC; /* one page a slot: 256 MiB */
        p.start_seq = 0;
        create_segments(&p, &rfd, &sfd);
        ck_assert_int_eq(fstat(rfd, &st), 0);
        ck_assert_uint_ge((uint64_t)st.st_size, (uint64_t)p.slot_count * 4096);
        /* Header, head, notify and producer lines: a page or two. */
        ck_assert_msg((uint64_t)st.st_blocks * 512 <= (UINT64_C(1) << 20),
                      "creating a %llu-byte ring allocated %llu bytes", (unsigned long long)st.st_size,
                      (unsigned long long)st.st_blocks * 512);
        (void)close(rfd);
        (void)close(sfd);
}
END_TEST

static Suite *seg_suite(void) {
        Suite *s = suite_create("seg");
        TCase *tc;

        tc = tcase_create("params");
        tcase_set_timeout(tc, 30);
        tcase_add_test(tc, test_params_at_the_limits_are_accepted);
        tcase_add_test(tc, test_slot_count_zero_one_non_power_of_two_or_too_big_is_rejected);
        tcase_add_test(tc, test_slot_size_zero_or_too_big_is_rejected);
        tcase_add_test(tc, test_policy_and_table_sizes_out_of_range_are_rejected);
        tcase_add_test(tc, test_ring_size_covers_every_part_and_refuses_oversized_totals);
        suite_add_tcase(s, tc);

        tc = tcase_create("create");
        tcase_set_timeout(tc, 30);
        tcase_add_test(tc, test_created_memfds_are_sealed_sized_and_cloexec);
        tcase_add_test(tc, test_create_refuses_bad_params_without_leaking);
        tcase_add_test(tc, test_mapped_geometry_and_initial_state_match_the_params);
        tcase_add_test(tc, test_map_refuses_unsealed_foreign_or_swapped_fds);
        tcase_add_test(tc, test_hold_bitmaps_grow_with_the_subscriber_table);
        tcase_add_test(tc, test_creating_a_large_ring_touches_no_slot_page);
        suite_add_tcase(s, tc);

        tc = tcase_create("validate");
        tcase_set_timeout(tc, 30);
        tcase_add_test(tc, test_validate_accepts_an_intact_copy);
        tcase_add_loop_test(tc, test_validate_rejects_each_corrupt_field, 0, CORRUPTIONS);
        suite_add_tcase(s, tc);

        tc = tcase_create("readonly");
        tcase_set_timeout(tc, 30);
        tcase_add_test(tc, test_subscriber_readonly_ring_map_reads_but_cannot_write);
        tcase_add_test(tc, test_ring_memfd_cannot_be_reopened_writable_by_another_uid);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        require_memfd_sealing(); /* exits 77 without it */
        return RUN_SUITE(seg_suite()) ? 1 : 0;
}
