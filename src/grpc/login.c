/*
 * login.c - the message a gRPC client signs to log in on the gRPC door
 * (docs/GRPC.md, "Logging in"). Clients and the door build it the same
 * way; it carries no crypto itself (callers sign and verify with their
 * own library), so this layer stays without a crypto dependency.
 */
#include "grpc/nana_grpc.h"

#include <string.h>

size_t nana_grpc_login_message(const uint8_t exporter[32], const char *account, size_t alen,
                               const char *timestamp, size_t tlen, uint8_t *out, size_t cap)
{
    static const char ctx[] = NANA_GRPC_LOGIN_CONTEXT;
    size_t need = sizeof(ctx) + 32 + alen + 1 + tlen; /* sizeof counts the NUL after ctx */
    if (need > cap) return 0;
    uint8_t *p = out;
    memcpy(p, ctx, sizeof(ctx));
    p += sizeof(ctx);
    memcpy(p, exporter, 32);
    p += 32;
    memcpy(p, account, alen);
    p += alen;
    *p++ = 0;
    memcpy(p, timestamp, tlen);
    return need;
}
