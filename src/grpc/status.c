/*
 * status.c - gRPC status codes: their names and digits, and the mapping
 * from our error codes (NANA_ERR_*) to the status a gRPC client gets.
 *
 * The big idea: a status tells a gRPC client what to do next (fix the
 * request, log in, retry later, give up), so each of our codes maps by
 * that meaning, not by name. Faults of the server itself never show their
 * message: the client gets a fixed text and an id to quote, the log gets
 * the detail.
 */
#include "grpc/nana_grpc.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const status_names[NANA_GRPC_STATUS_COUNT] = {
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
};

static const char *const status_digits[NANA_GRPC_STATUS_COUNT] = {
    "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16",
};

const char *nana_grpc_status_name(int status)
{
    return status >= 0 && status < NANA_GRPC_STATUS_COUNT ? status_names[status] : NULL;
}

const char *nana_grpc_status_digits(int status)
{
    return status >= 0 && status < NANA_GRPC_STATUS_COUNT ? status_digits[status] : NULL;
}

void nana_grpc_error_set(nana_grpc_error *e, nana_grpc_status status, const char *fmt, ...)
{
    va_list ap;
    e->status = status;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
}

nana_grpc_status nana_grpc_status_from_err(int code)
{
    switch (code) {
    case NANA_OK:
        return NANA_GRPC_OK;
    case NANA_ERR_NOTFOUND:
        return NANA_GRPC_NOT_FOUND;
    /* The request's own arguments: retrying the same call cannot help. A
     * size limit is one too (a key or value too long for the store). */
    case NANA_ERR_INVALID:
    case NANA_ERR_TYPE:
    case NANA_ERR_JSON:
    case NANA_ERR_TOOBIG:
    case NANA_ERR_VALIDATION:
        return NANA_GRPC_INVALID_ARGUMENT;
    /* The system is not in the state the call needs. */
    case NANA_ERR_TXN:
    case NANA_ERR_READONLY:
        return NANA_GRPC_FAILED_PRECONDITION;
    /* Transient: the same call may succeed later (a lock, a store that is
     * closing, 0-RTT data, a server that is stopping). */
    case NANA_ERR_BUSY:
    case NANA_ERR_CLOSED:
    case NANA_ERR_TOOEARLY:
    case NANA_ERR_SHUTDOWN:
    case NANA_ERR_NOLEADER: /* a cluster choosing a new leader: nothing was applied */
        return NANA_GRPC_UNAVAILABLE;
    /* A clustered write whose commit lost its leader: it may have been
     * applied. Not UNAVAILABLE: clients retry that on their own. */
    case NANA_ERR_OUTCOME:
        return NANA_GRPC_UNKNOWN;
    /* Out of a resource: a full disk, memory, the server's queues, the
     * caller's rate. */
    case NANA_ERR_FULL:
    case NANA_ERR_NOMEM:
    case NANA_ERR_OVERLOAD:
    case NANA_ERR_RATE:
        return NANA_GRPC_RESOURCE_EXHAUSTED;
    case NANA_ERR_TIMEOUT:
        return NANA_GRPC_DEADLINE_EXCEEDED;
    case NANA_ERR_PERM:
        return NANA_GRPC_PERMISSION_DENIED;
    /* A method that exists but is not offered over the network. */
    case NANA_ERR_UNAVAILABLE:
        return NANA_GRPC_UNIMPLEMENTED;
    case NANA_ERR_CORRUPT:
        return NANA_GRPC_DATA_LOSS;
    case NANA_ERR_DB:
    case NANA_ERR_IO:
    case NANA_ERR_INTERNAL:
        return NANA_GRPC_INTERNAL;
    default:
        return NANA_GRPC_UNKNOWN;
    }
}

bool nana_grpc_err_is_public(int code)
{
    switch (code) {
    case NANA_ERR_NOMEM:
    case NANA_ERR_DB:
    case NANA_ERR_IO:
    case NANA_ERR_INTERNAL:
    case NANA_ERR_CORRUPT:
        return false;
    case NANA_ERR_OUTCOME:
        return true;
    default:
        return nana_grpc_status_from_err(code) != NANA_GRPC_UNKNOWN;
    }
}

/* The fixed text a client gets for a code whose message stays in the log. */
static const char *private_text(int code)
{
    switch (code) {
    case NANA_ERR_NOMEM:
        return "the server is out of memory";
    case NANA_ERR_CORRUPT:
        return "the database is damaged";
    default:
        return "internal error";
    }
}

void nana_grpc_error_from(nana_grpc_error *out, const nana_error *e, uint64_t error_id)
{
    out->status = nana_grpc_status_from_err(e->code);
    if (nana_grpc_err_is_public(e->code)) {
        snprintf(out->message, sizeof(out->message), "%s", e->msg);
    } else if (error_id) {
        snprintf(out->message, sizeof(out->message), "%s (error id %016llx)", private_text(e->code),
                 (unsigned long long)error_id);
    } else {
        snprintf(out->message, sizeof(out->message), "%s", private_text(e->code));
    }
}
