/*
 * nana_err.h - the project's one error space.
 *
 * Every fallible function returns 0 (NANA_OK) or a negative NANA_ERR_* code.
 * A code says what class of failure happened; the human-readable detail
 * ("key is 5000 bytes, the limit is 4096") is kept per thread, like errno,
 * and read with nana_errmsg() right after the failing call. The message
 * never contains secrets: callers set it only from facts about the request.
 */
#ifndef NANA_ERR_H
#define NANA_ERR_H

#include <stdarg.h>
#include <stddef.h>

enum {
    NANA_OK = 0,
    NANA_ERR_NOTFOUND = -1,     /* key, table or row does not exist */
    NANA_ERR_INVALID = -2,      /* bad argument value (ValueError) */
    NANA_ERR_TYPE = -3,         /* argument or stored value of the wrong type */
    NANA_ERR_JSON = -4,         /* text is not valid JSON */
    NANA_ERR_TOOBIG = -5,       /* a size limit was exceeded */
    NANA_ERR_VALIDATION = -6,   /* identifier or SQL clause refused */
    NANA_ERR_TXN = -7,          /* transaction state error (nesting, none open) */
    NANA_ERR_BUSY = -8,         /* queue full or database locked: try again */
    NANA_ERR_DB = -9,           /* SQLite reported an error */
    NANA_ERR_CORRUPT = -10,     /* file is not a database or is corrupt */
    NANA_ERR_READONLY = -11,    /* database or file is read-only */
    NANA_ERR_FULL = -12,        /* disk or database size limit full */
    NANA_ERR_IO = -13,          /* operating-system I/O error */
    NANA_ERR_NOMEM = -14,       /* out of memory */
    NANA_ERR_CLOSED = -15,      /* object already closed */
    NANA_ERR_TIMEOUT = -16,     /* a deadline passed */
    NANA_ERR_INTERNAL = -17,    /* a bug or an unexpected condition */
    NANA_ERR_PERM = -18,        /* operation not permitted */
    NANA_ERR_TOOEARLY = -19,    /* not allowed from replayable (0-RTT) data: send again later */
    NANA_ERR_UNAVAILABLE = -20, /* exists, but not offered here (a method needing a local caller) */
    NANA_ERR_OVERLOAD = -21,    /* the server is busy (a full queue or budget): try again */
    NANA_ERR_RATE = -22,        /* the caller's rate limit was passed */
    NANA_ERR_SHUTDOWN = -23,    /* the server is stopping */
    NANA_ERR_NOLEADER = -24,    /* a cluster has no reachable leader now: try again later */
    NANA_ERR_OUTCOME = -25,     /* a cluster lost its leader while committing a write: it may or
                                   may not have been applied (never retried silently) */
};

/* Short fixed name of an error code ("NANA_ERR_NOTFOUND"); never NULL. */
const char *nana_strerror(int code);

/* Formats the calling thread's detail message (see nana_err_set). */
void nana_err_format(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Copies |msg| verbatim as the calling thread's detail message. */
void nana_err_copy(const char *msg);

/*
 * nana_err_set(code, fmt, ...): records the detail message for the calling
 * thread and evaluates to |code|, so callers can write
 * `return nana_err_set(NANA_ERR_INVALID, "...", ...);`. A macro so that
 * static analysis sees which code comes back. Used as a statement, cast
 * it to void.
 */
#define nana_err_set(code, ...) (nana_err_format(__VA_ARGS__), (int)(code))

/* Copies |msg| verbatim as the calling thread's detail message; returns |code|. */
static inline int nana_err_set_str(int code, const char *msg)
{
    nana_err_copy(msg);
    return code;
}

/*
 * The calling thread's last detail message. Owned by the thread's storage:
 * valid until the next nana_err_set*() on the same thread. Never NULL.
 */
const char *nana_errmsg(void);

/* Size of the per-thread detail buffer, including the terminating NUL. */
#define NANA_ERRMSG_MAX 256

/*
 * An error as a value: its code and its message together, so the message
 * travels with the error to where it is reported (a reply to a client, a
 * log line) and nothing called in between can overwrite it. Fixed size: no
 * allocation, so even running out of memory can be reported.
 */
typedef struct nana_error {
    int code; /* NANA_OK when there is no error */
    char msg[NANA_ERRMSG_MAX];
} nana_error;

/* Sets |e| to |code| with the calling thread's current detail message
 * (call it right after the failing call); returns |code|. */
int nana_error_capture(nana_error *e, int code);

/* Sets |e| to |code| with a formatted message; returns |code|. */
int nana_error_setf(nana_error *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Clears |e| (no error). */
static inline void nana_error_clear(nana_error *e)
{
    e->code = 0;
    e->msg[0] = 0;
}

#endif
