/*
 * fuzz_mp.c - libFuzzer harness for the strict msgpack codec.
 *
 * Any bytes: nana_mp_skip and nana_mp_to_json must never read past the
 * end (ASan) and must agree on where a well-formed value ends. Whatever
 * transcodes to JSON must be valid JSON, and JSON -> msgpack -> JSON must
 * give the same text back (a fixed point after one round). Both walk to
 * their full depth cap, and at a small limit (from the input's length)
 * they and the JSON validator must agree on whether the value nests too
 * deep: the three count nesting the same way.
 */
#include "proto/nana_mp.h"
#include "fuzz_check.h"
#include "util/nana_err.h"
#include "util/nana_json.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *copy = malloc(size ? size : 1); /* exact size: ASan catches over-reads */
    if (!copy) return 0;
    memcpy(copy, data, size);
    nana_mp_reader a, b;
    nana_mp_reader_init(&a, copy, size);
    nana_mp_reader_init(&b, copy, size);
    nana_buf j;
    nana_buf_init(&j, 1 << 20);
    int rs = nana_mp_skip(&a, NANA_MP_MAX_DEPTH);
    int rj = nana_mp_to_json(&b, &j, NANA_MP_MAX_DEPTH);
    if (rj == 0) {
        CHECK(rs == 0);
        CHECK(a.p == b.p);
        CHECK(nana_json_validate(j.data, j.len, 0, NANA_MP_MAX_DEPTH) == 0);
        unsigned lim = (unsigned)(size % 6);
        nana_mp_reader_init(&a, copy, size);
        nana_mp_reader_init(&b, copy, size);
        nana_buf j3;
        nana_buf_init(&j3, 1 << 20);
        int small_s = nana_mp_skip(&a, lim), small_j = nana_mp_to_json(&b, &j3, lim);
        CHECK((small_s == 0) == (small_j == 0));
        CHECK((small_j == 0) == (nana_json_validate(j.data, j.len, 0, lim) == 0));
        nana_buf_free(&j3);
        nana_buf m, j2;
        nana_buf_init(&m, 0);
        nana_buf_init(&j2, 0);
        int rc = nana_mp_from_json_text(&m, j.data, j.len);
        if (rc == 0) {
            nana_mp_reader c;
            nana_mp_reader_init(&c, m.data, m.len);
            CHECK(nana_mp_to_json(&c, &j2, NANA_MP_MAX_DEPTH) == 0);
            CHECK(j2.len == j.len && memcmp(j2.data, j.data, j.len) == 0);
        } else {
            CHECK(rc == NANA_ERR_TOOBIG); /* only integers wider than 64 bits */
        }
        nana_buf_free(&m);
        nana_buf_free(&j2);
    }
    nana_buf_free(&j);
    free(copy);
    return 0;
}
