/* SPDX-License-Identifier: MIT */
/*
 * fuzz_batch.c: libFuzzer target for the bridge's batch records
 * (bridge/batch.c), which a receiving bridge reads from any NATS
 * publisher under its prefix. Built and run by scripts/fuzz.sh.
 *
 * The input is a record count (1 byte), a first sequence (8 bytes) and
 * the payload. Properties checked on every input:
 *  - batch_valid and batch_next never read outside the payload (ASan);
 *  - batch_valid agrees with a walk of batch_next to its end;
 *  - an accepted payload has strictly rising sequences from the first,
 *    and re-encodes with batch_put to exactly the same bytes;
 *  - batch_count accepts exactly the decimals 2 to BATCH_MAX.
 */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "batch.h"

static unsigned char out[1 << 17];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct batch_rd rd;
        const void *d;
        size_t l, len, olen = 0;
        uint64_t seq0 = 0, seq, prev = 0;
        unsigned n, got = 0;
        bool valid;
        int k;
        char txt[16];

        if (size < 9 || size - 9 > sizeof(out))
                return 0;
        n = data[0] % (BATCH_MAX + 3);
        memcpy(&seq0, data + 1, 8);
        len = size - 9;
        valid = batch_valid(data + 9, len, n, seq0);
        batch_rd_init(&rd, data + 9, len, n, seq0);
        while ((k = batch_next(&rd, &d, &l, &seq)) == 1) {
                if ((got == 0 && seq != seq0) || (got > 0 && seq <= prev))
                        abort();
                if ((const uint8_t *)d < data + 9 || (const uint8_t *)d + l > data + size)
                        abort();
                olen += batch_put(out + olen, got ? (uint32_t)(seq - prev) : 0, d, (uint32_t)l);
                prev = seq;
                got++;
        }
        if (valid != (k == 0))
                abort();
        if (valid && (got != n || olen != len || memcmp(out, data + 9, len) != 0))
                abort();
        /* The count header, from the first bytes as text. */
        l = size < sizeof(txt) ? size : sizeof(txt) - 1;
        memcpy(txt, data, l);
        txt[l] = '\0';
        n = batch_count(txt);
        if (n) {
                char back[16];
                unsigned v = n, i = sizeof(back) - 1;

                back[i] = '\0';
                do {
                        back[--i] = (char)('0' + v % 10);
                        v /= 10;
                } while (v);
                if (n < 2 || n > BATCH_MAX || strcmp(back + i, txt) != 0)
                        abort();
        }
        return 0;
}
