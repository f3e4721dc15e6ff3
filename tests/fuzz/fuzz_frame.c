/*
 * fuzz_frame.c - libFuzzer harness for the NanaSQLite frame and the
 * authentication messages (src/proto/nana_frame.c): the bytes a server
 * sends a client during authentication, and the frame every message
 * travels in.
 *
 * Any bytes: nana_frame_open accepts exactly the inputs whose length prefix
 * counts the rest; nana_frame_auth_reply never reads past the frame (the
 * copy is exactly its size), always leaves a terminated message within the
 * buffer however small, and gives the same verdict twice; a challenge it
 * reports is the map's 32-byte "data", and any other verdict than an
 * error comes from a whole, well-formed frame. nana_frame_fields on a
 * top-level map leaves the reader at the frame's end when it succeeds, and
 * each field it found reads again the same from where it points. And the client's own auth
 * response, built from the input's bytes (signature, account name), reads back field for field.
 */
#include "fuzz_check.h"
#include "proto/nana_frame.h"
#include "proto/nana_mp.h"
#include "util/nana_buf.h"
#include "util/nana_err.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The authentication reply, with a message buffer of |cap| bytes. */
static void check_auth_reply(const uint8_t *p, size_t n, size_t cap)
{
    char *msg = malloc(cap);
    char *again = malloc(cap);
    CHECK(msg && again);
    uint8_t ch[32], ch2[32];
    memset(msg, 'x', cap);
    nana_auth_reply a = nana_frame_auth_reply(p, n, ch, msg, cap);
    CHECK(a >= NANA_AUTH_CHALLENGE && a <= NANA_AUTH_ERROR);
    CHECK(memchr(msg, 0, cap) != NULL);
    nana_auth_reply b = nana_frame_auth_reply(p, n, ch2, again, cap);
    CHECK(a == b);
    CHECK(strcmp(msg, again) == 0);
    if (a == NANA_AUTH_CHALLENGE) CHECK(memcmp(ch, ch2, 32) == 0);
    if (a != NANA_AUTH_ERROR) {
        /* Anything but an error is a whole, well-formed frame. */
        nana_mp_reader r;
        CHECK(nana_frame_open(p, n, &r) == 0);
        CHECK(nana_mp_skip(&r, 64) == 0);
        CHECK(nana_mp_left(&r) == 0);
    }
    free(msg);
    free(again);
}

/* A top-level map read with nana_frame_fields. */
static void check_fields(const uint8_t *p, size_t n, unsigned depth)
{
    nana_mp_reader r;
    nana_mp_item top;
    if (nana_frame_open(p, n, &r) || nana_mp_read(&r, &top) || top.type != NANA_MP_MAP) return;
    nana_mp_field f[] = {{.name = "type"}, {.name = "data"}, {.name = "account"}, {.name = ""}};
    if (nana_frame_fields(&r, top.v.count, f, 4, depth) != 0) return;
    CHECK(nana_mp_left(&r) == 0);
    for (size_t i = 0; i < 4; i++) {
        if (!f[i].found) continue;
        /* The value read again from where the field says it starts. */
        nana_mp_reader at = f[i].at;
        nana_mp_item it;
        CHECK(nana_mp_read(&at, &it) == 0);
        CHECK(it.type == f[i].item.type);
    }
}

/* The client's response frame built from input bytes reads back. */
static void check_response(const uint8_t *data, size_t size)
{
    if (size < 64) return;
    uint8_t sig[64];
    memcpy(sig, data, 64);
    char account[65];
    size_t alen = size - 64 < 64 ? size - 64 : 64;
    memcpy(account, data + 64, alen);
    account[alen] = 0;
    alen = strlen(account); /* up to the first NUL, as a C string */
    bool with_account = alen > 0;
    nana_buf b;
    nana_buf_init(&b, 0);
    CHECK(nana_frame_auth_response(&b, sig, with_account ? account : NULL) == 0);
    nana_mp_reader r;
    nana_mp_item top;
    CHECK(nana_frame_open((const uint8_t *)b.data, b.len, &r) == 0);
    CHECK(nana_mp_read(&r, &top) == 0 && top.type == NANA_MP_MAP);
    nana_mp_field f[] = {{.name = "type"}, {.name = "data"}, {.name = "account"}};
    CHECK(nana_frame_fields(&r, top.v.count, f, 3, 4) == 0);
    CHECK(f[0].found && nana_mp_item_is(&f[0].item, "response"));
    CHECK(f[1].found && f[1].item.type == NANA_MP_BIN && f[1].item.v.s.n == 64);
    CHECK(memcmp(f[1].item.v.s.p, sig, 64) == 0);
    CHECK(f[2].found == with_account);
    if (with_account) {
        CHECK(f[2].item.type == NANA_MP_STR && f[2].item.v.s.n == alen);
        CHECK(memcmp(f[2].item.v.s.p, account, alen) == 0);
    }
    nana_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *copy = malloc(size ? size : 1); /* exact size: ASan catches over-reads */
    if (!copy) return 0;
    memcpy(copy, data, size);
    nana_mp_reader r;
    int open = nana_frame_open(copy, size, &r);
    bool counts_rest = size >= 4 && (((uint32_t)copy[0] << 24) | ((uint32_t)copy[1] << 16) |
                                     ((uint32_t)copy[2] << 8) | copy[3]) == size - 4;
    CHECK((open == 0) == counts_rest);
    check_auth_reply(copy, size, 256);
    check_auth_reply(copy, size, 1 + (size ? copy[size - 1] % 40 : 0));
    check_fields(copy, size, size ? copy[size / 2] % 10 : 0);
    check_response(copy, size);
    free(copy);
    return 0;
}
