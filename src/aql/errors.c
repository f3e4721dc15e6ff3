/*
 * errors.c - AQL's error codes and categories (amaters.errors) for the
 * call core's and the store's errors.
 */
#include "aql/nana_aql.h"

#include <stdarg.h>
#include <stdio.h>

int nana_aql_fail(nana_aql_err *e, uint32_t code, const char *fmt, ...)
{
    e->code = code;
    switch (code / 1000) {
    case 3:
        e->category = AMATERS__ERRORS__ERROR_CATEGORY__CATEGORY_AUTH;
        break;
    case 7:
        e->category = AMATERS__ERRORS__ERROR_CATEGORY__CATEGORY_SERVER_ERROR;
        break;
    default:
        e->category = AMATERS__ERRORS__ERROR_CATEGORY__CATEGORY_CLIENT_ERROR;
        break;
    }
    e->retry_after = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
    return -1;
}

void nana_aql_err_from(const nana_error *err, nana_aql_err *out)
{
    uint32_t code = AMATERS__ERRORS__ERROR_CODE__ERROR_SERVER_INTERNAL;
    uint32_t cat = AMATERS__ERRORS__ERROR_CATEGORY__CATEGORY_SERVER_ERROR;
    uint32_t retry = 0;
    switch (err->code) {
    case NANA_ERR_NOTFOUND:
        code = AMATERS__ERRORS__ERROR_CODE__ERROR_STORAGE_NOT_FOUND;
        cat = AMATERS__ERRORS__ERROR_CATEGORY__CATEGORY_CLIENT_ERROR;
        break;
    case NANA_ERR_INVALID:
        code = AMATERS__ERRORS__ERROR_CODE__ERROR_PROTOCOL_INVALID_REQUEST;
        cat = AMATERS__ERRORS__ERROR_CATEGORY__CATEGORY_CLIENT_ERROR;
        break;
    case NANA_ERR_JSON:
        code = AMATERS__ERRORS__ERROR_CODE__ERROR_VALIDATION_INVALID_VALUE;
        cat = AMATERS__ERRORS__ERROR_CATEGORY__CATEGORY_CLIENT_ERROR;
        break;
    case NANA_ERR_TOOBIG:
        code = AMATERS__ERRORS__ERROR_CODE__ERROR_VALIDATION_SIZE_EXCEEDED;
        cat = AMATERS__ERRORS__ERROR_CATEGORY__CATEGORY_CLIENT_ERROR;
        break;
    case NANA_ERR_VALIDATION:
        code = AMATERS__ERRORS__ERROR_CODE__ERROR_PROTOCOL_INVALID_REQUEST;
        cat = AMATERS__ERRORS__ERROR_CATEGORY__CATEGORY_CLIENT_ERROR;
        break;
    case NANA_ERR_TYPE:
        code = AMATERS__ERRORS__ERROR_CODE__ERROR_COMPUTE_INVALID_OPERATION;
        cat = AMATERS__ERRORS__ERROR_CATEGORY__CATEGORY_CLIENT_ERROR;
        break;
    case NANA_ERR_DB:
    case NANA_ERR_TXN:
        code = AMATERS__ERRORS__ERROR_CODE__ERROR_COMPUTE_FAILED;
        cat = AMATERS__ERRORS__ERROR_CATEGORY__CATEGORY_NON_RETRYABLE;
        break;
    case NANA_ERR_PERM:
        code = AMATERS__ERRORS__ERROR_CODE__ERROR_AUTH_INSUFFICIENT_PERMISSIONS;
        cat = AMATERS__ERRORS__ERROR_CATEGORY__CATEGORY_AUTH;
        break;
    case NANA_ERR_TIMEOUT:
        code = AMATERS__ERRORS__ERROR_CODE__ERROR_COMPUTE_TIMEOUT;
        cat = AMATERS__ERRORS__ERROR_CATEGORY__CATEGORY_RETRYABLE;
        break;
    case NANA_ERR_BUSY:
    case NANA_ERR_OVERLOAD:
    case NANA_ERR_RATE:
        code = AMATERS__ERRORS__ERROR_CODE__ERROR_SERVER_OVERLOADED;
        cat = AMATERS__ERRORS__ERROR_CATEGORY__CATEGORY_RETRYABLE;
        retry = 1;
        break;
    case NANA_ERR_SHUTDOWN:
        code = AMATERS__ERRORS__ERROR_CODE__ERROR_SERVER_SHUTTING_DOWN;
        cat = AMATERS__ERRORS__ERROR_CATEGORY__CATEGORY_RETRYABLE;
        retry = 1;
        break;
    case NANA_ERR_TOOEARLY:
    case NANA_ERR_CLOSED:
    case NANA_ERR_NOLEADER:
        code = AMATERS__ERRORS__ERROR_CODE__ERROR_SERVER_UNAVAILABLE;
        cat = AMATERS__ERRORS__ERROR_CATEGORY__CATEGORY_RETRYABLE;
        retry = 1;
        break;
    case NANA_ERR_READONLY:
    case NANA_ERR_UNAVAILABLE:
        code = AMATERS__ERRORS__ERROR_CODE__ERROR_SERVER_UNAVAILABLE;
        cat = AMATERS__ERRORS__ERROR_CATEGORY__CATEGORY_NON_RETRYABLE;
        break;
    case NANA_ERR_FULL:
        code = AMATERS__ERRORS__ERROR_CODE__ERROR_STORAGE_FULL;
        break;
    case NANA_ERR_CORRUPT:
        code = AMATERS__ERRORS__ERROR_CODE__ERROR_STORAGE_CORRUPTED;
        break;
    case NANA_ERR_IO:
        code = AMATERS__ERRORS__ERROR_CODE__ERROR_STORAGE_IO;
        break;
    default:
        break;
    }
    out->code = code;
    out->category = cat;
    out->retry_after = retry;
    if (nana_core_error_expected(err->code))
        snprintf(out->message, sizeof(out->message), "%s", err->msg);
    else
        snprintf(out->message, sizeof(out->message), "the server failed (%s); see its log",
                 nana_strerror(err->code));
}
