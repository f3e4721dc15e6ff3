/*
 * nana_buf.c - growable byte buffer with a hard limit.
 */
#include "util/nana_buf.h"

#include "util/nana_err.h"
#include "util/nana_mem.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void nana_buf_init(nana_buf *b, size_t limit)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->limit = limit;
}

void nana_buf_free(nana_buf *b)
{
    if (!b) return;
    nana_free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

void nana_buf_reset(nana_buf *b)
{
    b->len = 0;
    if (b->data) b->data[0] = '\0';
}

int nana_buf_reserve(nana_buf *b, size_t extra)
{
    if (extra > SIZE_MAX - b->len - 1) return nana_err_set(NANA_ERR_TOOBIG, "buffer size overflow");
    size_t need = b->len + extra;
    if (b->limit && need > b->limit)
        return nana_err_set(NANA_ERR_TOOBIG, "buffer would exceed its limit of %zu bytes",
                            b->limit);
    if (need + 1 <= b->cap) return NANA_OK;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need + 1) {
        if (cap > SIZE_MAX / 2) {
            cap = need + 1;
            break;
        }
        cap *= 2;
    }
    char *p = nana_realloc(b->data, cap);
    if (!p) return nana_err_set(NANA_ERR_NOMEM, "out of memory growing a buffer to %zu bytes", cap);
    b->data = p;
    b->cap = cap;
    return NANA_OK;
}

int nana_buf_append(nana_buf *b, const void *p, size_t n)
{
    int rc = nana_buf_reserve(b, n);
    if (rc) return rc;
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return NANA_OK;
}

int nana_buf_puts(nana_buf *b, const char *s)
{
    return nana_buf_append(b, s, strlen(s));
}

int nana_buf_putc(nana_buf *b, char c)
{
    if (b->len + 1 < b->cap && (!b->limit || b->len < b->limit)) {
        b->data[b->len++] = c;
        b->data[b->len] = '\0';
        return NANA_OK;
    }
    return nana_buf_append(b, &c, 1);
}

int nana_buf_printf(nana_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return nana_err_set(NANA_ERR_INTERNAL, "format error");
    int rc = nana_buf_reserve(b, (size_t)n);
    if (rc) return rc;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return NANA_OK;
}

char *nana_buf_detach(nana_buf *b, size_t *len)
{
    char *p = b->data;
    size_t n = b->len;
    if (!p) {
        p = nana_malloc(1);
        if (!p) return NULL;
        p[0] = '\0';
        n = 0;
    }
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    if (len) *len = n;
    return p;
}
