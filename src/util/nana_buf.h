/*
 * nana_buf.h - a growable byte buffer with an optional hard size limit.
 *
 * The buffer owns its memory. Growth doubles capacity; a limit makes
 * every append that would pass it fail with NANA_ERR_TOOBIG, so a buffer
 * fed by the network can never grow without bound. The bytes are always
 * followed by a NUL (not counted in len) once anything was appended.
 */
#ifndef NANA_BUF_H
#define NANA_BUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct nana_buf {
    char *data;   /* bytes; NULL until the first append */
    size_t len;   /* bytes in use */
    size_t cap;   /* bytes allocated (len + 1 <= cap once allocated) */
    size_t limit; /* largest len allowed; 0 means no limit */
} nana_buf;

/* Prepares an empty buffer; |limit| 0 means unlimited. Allocates nothing. */
void nana_buf_init(nana_buf *b, size_t limit);

/* Frees the bytes and leaves the buffer empty and reusable. NULL-safe. */
void nana_buf_free(nana_buf *b);

/* Forgets the contents but keeps the allocation. */
void nana_buf_reset(nana_buf *b);

/* Makes room for |extra| more bytes. NANA_ERR_TOOBIG or NANA_ERR_NOMEM. */
int nana_buf_reserve(nana_buf *b, size_t extra);

/* Appends |n| bytes. NANA_ERR_TOOBIG or NANA_ERR_NOMEM. */
int nana_buf_append(nana_buf *b, const void *p, size_t n);

/* Appends a NUL-terminated string. */
int nana_buf_puts(nana_buf *b, const char *s);

/* Appends one byte. */
int nana_buf_putc(nana_buf *b, char c);

/* Appends printf-formatted text. */
int nana_buf_printf(nana_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Hands the bytes to the caller (who frees them with free()) and leaves the
 * buffer empty. Returns a valid empty string's copy if nothing was
 * appended; NULL only when out of memory. |len| may be NULL.
 */
char *nana_buf_detach(nana_buf *b, size_t *len);

#endif
