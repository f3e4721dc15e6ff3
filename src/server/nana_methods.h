/*
 * nana_methods.h - the NanaSQLite door's calls: parsing a request, the one
 * method table, policy, running a call against the store, and the reply
 * frames. This is the module's whole public face; it knows nothing of
 * QUIC, sessions or threads (the session layer calls it), so every part
 * of it is testable on plain bytes.
 *
 * A request is the msgpack map {"method": str, "args": [...], "kwargs":
 * {...}, "db": str?, "table": str?} ("table" is this server's addition:
 * the NanaSQLite table a dict method works on, default "data"). A reply
 * frame is a u32 big-endian length and one msgpack map:
 * {"status": "success", "result": v} or {"status": "error", "error_type":
 * name, "message": text[, "code": "busy"|"timeout"|"rate_limited"|
 * "shutdown"]}.
 *
 * Every method NanaSQLite offers is in the table, marked with what it
 * does (read, write), whether it is refused unless an account lists it
 * (admin, caller-written SQL), and whether it can run over the network at
 * all (transactions and connection handling cannot: they are bound to one
 * Python object's thread, which a shared server does not have).
 */
#ifndef NANA_METHODS_H
#define NANA_METHODS_H

#include "auth/nana_accounts.h"
#include "proto/nana_mp.h"
#include "store/nana_store.h"
#include "util/nana_buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a method is (flags of nana_method_flags). */
enum {
    NANA_M_READ = 1u << 0,  /* reads only */
    NANA_M_WRITE = 1u << 1, /* changes data: refused to read-only accounts */
    NANA_M_ADMIN = 1u << 2, /* refused unless the account's allowed_methods lists it */
    NANA_M_SQL = 1u << 3,   /* takes caller-written SQL fragments: likewise refused unless listed */
    NANA_M_LOCAL = 1u << 4, /* NanaSQLite has it, but it cannot run over the network */
    NANA_M_DICT = 1u << 5,  /* works on the request's NanaSQLite table */
    NANA_M_CACHED = 1u << 6, /* a cache hit can answer it without the store's threads */
};

typedef struct nana_method nana_method;

/* The method called |name|, or NULL if the table has none. */
const nana_method *nana_method_find(const char *name, size_t len);
const char *nana_method_name(const nana_method *m);
unsigned nana_method_flags(const nana_method *m);

/* The table, in order (for listings and completion). */
size_t nana_method_count(void);
const nana_method *nana_method_at(size_t i);

/* A parsed request. Pointers point into the frame given to nana_call_parse. */
typedef struct nana_call {
    const nana_method *m; /* NULL when the name is not in the table */
    const char *method;
    uint32_t mlen;
    nana_mp_reader args; /* at the first element of "args" */
    uint32_t nargs;
    nana_mp_reader kwargs; /* at the first key of "kwargs" */
    uint32_t nkwargs;
    const char *db; /* NULL: the default database */
    uint32_t dblen;
    bool db_nil;       /* "db": nil, the default database (absent: the connection's last) */
    const char *table; /* NULL: the default table */
    uint32_t tlen;
} nana_call;

/*
 * Value nesting: how deep one value may nest (arrays and maps on its
 * deepest path, the value itself and empty ones included, as nana_mp.h
 * counts). It is the store's own limit on stored values, so a value the
 * transcoder accepts is never refused by the store's check: 128.
 */
#define NANA_VALUE_MAX_DEPTH NANA_DEFAULT_JSON_DEPTH

/*
 * Nesting accepted in a request as a whole: a value nested
 * NANA_VALUE_MAX_DEPTH levels sits under at most three levels of the
 * request's own structure (the request map, "args", and a mapping
 * argument such as batch_update's, whose values are the stored values).
 */
#define NANA_CALL_MAX_DEPTH (NANA_VALUE_MAX_DEPTH + 3)

/*
 * Parses one request (the msgpack after the length). The whole message must
 * be one well-formed map with the shape above and nothing after it.
 * Errors: NANA_ERR_INVALID (not msgpack, wrong shape, trailing bytes, names
 * not UTF-8), NANA_ERR_TYPE (a field of the wrong type), NANA_ERR_TOOBIG
 * (nested too deep); nana_errmsg() says which.
 */
int nana_call_parse(const uint8_t *msg, size_t len, nana_call *out);

/* Moves |c|'s pointers from the frame at |from| to an identical copy at |to|. */
void nana_call_rebase(nana_call *c, const uint8_t *from, const uint8_t *to);

/* True if |msg| is the msgpack string |s| (for "AUTH_START"). */
bool nana_mp_is_str(const uint8_t *msg, size_t len, const char *s);

/*
 * May |a| call c->m on database |dbname| (the name the account's
 * allowed_dbs uses)? 0, or NANA_ERR_PERM with the message the client gets.
 * Checks the name rules ("_" names other than the five dunders), the
 * method table's defaults, the account's lists, read_only and allowed_dbs.
 * Table allow-lists are checked when the call runs (nana_call_run), where
 * the table argument is known. |a| NULL means an unrestricted account.
 */
int nana_call_allowed(const nana_call *c, const nana_account *a, const char *dbname);

/* What nana_call_run needs besides the call. */
typedef struct nana_run_env {
    nana_store *store;
    nana_table *table;        /* the request's table (NANA_M_DICT methods) */
    const nana_account *acct; /* NULL: unrestricted */
    const char *dbname;       /* for the account's table allow-list */
    const char *backup_dir;   /* relative backup/restore paths are taken inside it */
    unsigned max_depth;       /* nesting of values, default NANA_VALUE_MAX_DEPTH */
} nana_run_env;

/*
 * Binds the arguments of |c| (c->m must be set) to the method's parameters
 * and runs it, appending the whole reply frame (length included) to |out|:
 * a success frame, or an error frame for a deliberate error. Returns 0 when
 * a frame was written (success or a deliberate error), or a negative code
 * for an unexpected failure (then |out| is unchanged beyond its old length
 * and the caller answers with nana_reply_internal and logs the detail).
 */
int nana_call_run(const nana_call *c, const nana_run_env *env, nana_buf *out);

/*
 * Tries to answer a NANA_M_CACHED call from the table's cache alone.
 * Returns 1 with the reply frame appended to |out|, 0 when the store's
 * threads must answer (a miss, or arguments this path does not handle), or
 * a negative code for an unexpected failure.
 */
int nana_call_try_cached(const nana_call *c, nana_table *t, nana_buf *out);

/* ---- reply frames ---------------------------------------------------- */

/* Appends a frame holding the msgpack string |s| ("AUTH_OK"...). */
int nana_reply_str(nana_buf *out, const char *s);

/* Appends {"type": "challenge", "data": bin(bytes)}. */
int nana_reply_challenge(nana_buf *out, const uint8_t *bytes, size_t n);

/* Appends {"status": "error", "message": msg} (the auth-flow shape, no type). */
int nana_reply_status_error(nana_buf *out, const char *msg);

/*
 * Appends {"status": "error", "error_type": type, "message": msg} and, if
 * |code| is not NULL, "code": code.
 */
int nana_reply_error(nana_buf *out, const char *type, const char *msg, const char *code);

/* Appends the error frame for store/argument error |rc| with detail |msg|. */
int nana_reply_from_rc(nana_buf *out, int rc, const char *msg);

/* Appends InternalServerError "An unexpected error occurred". */
int nana_reply_internal(nana_buf *out);

/*
 * The error_type the client gets for error |rc|; *expected is false for
 * codes that mean a bug or an environment failure (the caller then answers
 * InternalServerError and logs the detail instead of sending it).
 */
const char *nana_error_type(int rc, bool *expected);

/* Appends Python's repr() of the str |s| (UTF-8), for KeyError messages. */
int nana_py_repr_str(nana_buf *out, const char *s, size_t n);

#endif
