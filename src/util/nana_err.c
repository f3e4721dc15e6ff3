/*
 * nana_err.c - error names and the per-thread detail message.
 */
#include "util/nana_err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char tls_errmsg[NANA_ERRMSG_MAX];

const char *nana_strerror(int code)
{
    switch (code) {
    case NANA_OK:
        return "NANA_OK";
    case NANA_ERR_NOTFOUND:
        return "NANA_ERR_NOTFOUND";
    case NANA_ERR_INVALID:
        return "NANA_ERR_INVALID";
    case NANA_ERR_TYPE:
        return "NANA_ERR_TYPE";
    case NANA_ERR_JSON:
        return "NANA_ERR_JSON";
    case NANA_ERR_TOOBIG:
        return "NANA_ERR_TOOBIG";
    case NANA_ERR_VALIDATION:
        return "NANA_ERR_VALIDATION";
    case NANA_ERR_TXN:
        return "NANA_ERR_TXN";
    case NANA_ERR_BUSY:
        return "NANA_ERR_BUSY";
    case NANA_ERR_DB:
        return "NANA_ERR_DB";
    case NANA_ERR_CORRUPT:
        return "NANA_ERR_CORRUPT";
    case NANA_ERR_READONLY:
        return "NANA_ERR_READONLY";
    case NANA_ERR_FULL:
        return "NANA_ERR_FULL";
    case NANA_ERR_IO:
        return "NANA_ERR_IO";
    case NANA_ERR_NOMEM:
        return "NANA_ERR_NOMEM";
    case NANA_ERR_CLOSED:
        return "NANA_ERR_CLOSED";
    case NANA_ERR_TIMEOUT:
        return "NANA_ERR_TIMEOUT";
    case NANA_ERR_INTERNAL:
        return "NANA_ERR_INTERNAL";
    case NANA_ERR_PERM:
        return "NANA_ERR_PERM";
    case NANA_ERR_TOOEARLY:
        return "NANA_ERR_TOOEARLY";
    case NANA_ERR_UNAVAILABLE:
        return "NANA_ERR_UNAVAILABLE";
    case NANA_ERR_OVERLOAD:
        return "NANA_ERR_OVERLOAD";
    case NANA_ERR_RATE:
        return "NANA_ERR_RATE";
    case NANA_ERR_SHUTDOWN:
        return "NANA_ERR_SHUTDOWN";
    case NANA_ERR_NOLEADER:
        return "NANA_ERR_NOLEADER";
    case NANA_ERR_OUTCOME:
        return "NANA_ERR_OUTCOME";
    default:
        return "NANA_ERR_UNKNOWN";
    }
}

void nana_err_format(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tls_errmsg, sizeof(tls_errmsg), fmt, ap);
    va_end(ap);
}

void nana_err_copy(const char *msg)
{
    size_t n = strlen(msg);
    if (n >= sizeof(tls_errmsg)) n = sizeof(tls_errmsg) - 1;
    memmove(tls_errmsg, msg, n);
    tls_errmsg[n] = '\0';
}

const char *nana_errmsg(void)
{
    return tls_errmsg;
}

int nana_error_capture(nana_error *e, int code)
{
    e->code = code;
    snprintf(e->msg, sizeof(e->msg), "%s", nana_errmsg());
    return code;
}

int nana_error_setf(nana_error *e, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
    va_end(ap);
    e->code = code;
    return code;
}
