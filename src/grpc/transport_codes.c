/*
 * transport_codes.c - the statuses of calls that the transport ended: a
 * stream reset or a connection closed with an HTTP/3 or HTTP/2 error code
 * (the tables of gRPC over HTTP/2 and of the gRPC over HTTP/3 proposal),
 * and, for clients, a response that came without grpc-status.
 */
#include "grpc/nana_grpc.h"

nana_grpc_status nana_grpc_status_from_h3(uint64_t code)
{
    switch (code) {
    case NANA_GRPC_H3_REQUEST_REJECTED:
        return NANA_GRPC_UNAVAILABLE; /* nothing was processed: retry */
    case NANA_GRPC_H3_EXCESSIVE_LOAD:
        return NANA_GRPC_RESOURCE_EXHAUSTED;
    case NANA_GRPC_H3_REQUEST_CANCELLED:
        return NANA_GRPC_CANCELLED;
    default:
        /* H3_NO_ERROR included: a call that ended well has a status, so a
         * reset without one is a fault; unknown codes count the same. */
        return NANA_GRPC_INTERNAL;
    }
}

int nana_grpc_status_from_h2(uint32_t code)
{
    switch (code) {
    case NANA_GRPC_H2_STREAM_CLOSED:
        return -1;
    case NANA_GRPC_H2_REFUSED_STREAM:
        return NANA_GRPC_UNAVAILABLE;
    case NANA_GRPC_H2_CANCEL:
        return NANA_GRPC_CANCELLED;
    case NANA_GRPC_H2_ENHANCE_YOUR_CALM:
        return NANA_GRPC_RESOURCE_EXHAUSTED;
    case NANA_GRPC_H2_INADEQUATE_SECURITY:
        return NANA_GRPC_PERMISSION_DENIED;
    default:
        return NANA_GRPC_INTERNAL;
    }
}

nana_grpc_status nana_grpc_status_from_http(int http_status)
{
    switch (http_status) {
    case 400:
    case 431:
        return NANA_GRPC_INTERNAL;
    case 401:
        return NANA_GRPC_UNAUTHENTICATED;
    case 403:
        return NANA_GRPC_PERMISSION_DENIED;
    case 404:
        return NANA_GRPC_UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
        return NANA_GRPC_UNAVAILABLE;
    default:
        return NANA_GRPC_UNKNOWN;
    }
}
