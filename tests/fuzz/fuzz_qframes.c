/*
 * fuzz_qframes.c - libFuzzer harness for the walk over a decrypted QUIC
 * packet's frames (src/quic/frames.c) that finds STOP_SENDING frames. The
 * bytes come from the peer (authenticated, but the peer may be hostile):
 * the walk must never read past the payload, whatever the lengths say,
 * and every stream ID and code it reports is a QUIC varint (< 2^62).
 */
#include "quic/quic_int.h"

#include <stdint.h>
#include <stdlib.h>

static void on_stop(void *arg, int64_t sid, uint64_t code)
{
    (void)arg;
    if (sid < 0 || (uint64_t)sid >= ((uint64_t)1 << 62) || code >= ((uint64_t)1 << 62)) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly |size| bytes, so ASan sees any read past the end. */
    uint8_t *p = malloc(size ? size : 1);
    if (!p) return 0;
    for (size_t i = 0; i < size; i++)
        p[i] = data[i];
    (void)nana_quic_frames_scan(p, size, on_stop, NULL);
    free(p);
    return 0;
}
