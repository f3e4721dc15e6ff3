/*
 * door_int.h - what the NanaSQLite door's files share: a parsed request
 * (request.c), binding its arguments the way Python binds a call
 * (request.c), reply frames (reply.c), queued calls (calls.c) and the door
 * object. Not part of the module's public face (nana_door.h).
 */
#ifndef NANA_DOOR_INT_H
#define NANA_DOOR_INT_H

#include "bind/nana_bind.h"
#include "door_nana/nana_door.h"
#include "proto/nana_frame.h"
#include "proto/nana_mp.h"

/* ---- requests (request.c) --------------------------------------------------- */

/*
 * A parsed request: {"method": str, "args": [...], "kwargs": {...},
 * "db": str?, "table": str?} ("table" is this server's addition). Pointers
 * point into the frame given to nana_request_parse.
 */
typedef struct nana_request {
    const nana_method *m; /* NULL when the name is not in the table */
    const char *method;
    uint32_t mlen;
    nana_mp_reader args; /* at the first element of "args" */
    uint32_t nargs;
    nana_mp_reader kwargs; /* at the first key of "kwargs" */
    uint32_t nkwargs;
    const char *db; /* NULL: none given */
    uint32_t dblen;
    bool db_nil;       /* "db": nil, the default database (absent: the connection's last) */
    const char *table; /* NULL: the default table */
    uint32_t tlen;
} nana_request;

/*
 * Nesting accepted in a request as a whole: a value nested
 * NANA_VALUE_MAX_DEPTH levels sits under at most three levels of the
 * request's own structure (the request map, "args", and a mapping
 * argument such as batch_update's, whose values are the stored values).
 */
#define NANA_REQUEST_MAX_DEPTH (NANA_VALUE_MAX_DEPTH + 3)

/*
 * Parses one request (the msgpack after the length). The whole message must
 * be one well-formed map with the shape above and nothing after it.
 * Errors: NANA_ERR_INVALID (not msgpack, wrong shape, trailing bytes, names
 * not UTF-8), NANA_ERR_TYPE (a field of the wrong type), NANA_ERR_TOOBIG
 * (nested too deep); the detail as the thread's message.
 */
int nana_request_parse(const uint8_t *msg, size_t len, nana_request *out);

/* Moves |r|'s pointers from the frame at |from| to an identical copy at |to|. */
void nana_request_rebase(nana_request *r, const uint8_t *from, const uint8_t *to);

/* True if |msg| is the msgpack string |s| (for "AUTH_START"). */
bool nana_mp_is_str(const uint8_t *msg, size_t len, const char *s);

/* Binds the request's args and kwargs to |spec|'s parameters into |out|
 * (nana_bind_call, which says how). */
int nana_request_bind(const nana_request *r, const nana_bind_spec *spec, unsigned max_depth,
                      nana_arena *arena, nana_args *out);

/* ---- reply frames (reply.c) ---------------------------------------------------- */

/* Appends a frame holding the msgpack string |s| ("AUTH_OK"...). */
int nana_reply_str(nana_buf *out, const char *s);

/* Appends {"type": "challenge", "data": bin(bytes)}. */
int nana_reply_challenge(nana_buf *out, const uint8_t *bytes, size_t n);

/* Appends {"status": "error", "message": msg} (the auth-flow shape, no type). */
int nana_reply_status_error(nana_buf *out, const char *msg);

/* Appends {"status": "error", "error_type": type, "message": msg} and, if
 * |code| is not NULL, "code": code. */
int nana_reply_error(nana_buf *out, const char *type, const char *msg, const char *code);

/* Appends the error frame for |e| (InternalServerError for an unexpected one). */
int nana_reply_from_error(nana_buf *out, const nana_error *e);

/* Appends InternalServerError "An unexpected error occurred". */
int nana_reply_internal(nana_buf *out);

/* Appends {"status": "success", "result": ...} of start, up to its result
 * (what a cached answer's encoded value follows). *at is for nana_frame_end. */
int nana_reply_success_begin(nana_buf *out, size_t *at);

/* Appends the whole reply frame of an answer: its result or its error. */
int nana_reply_answer(nana_buf *out, const nana_core_result *r, const nana_error *e);

/* Appends a stored value (JSON text) as msgpack: the wire form cached values keep. */
int nana_reply_encode_value(nana_buf *out, const char *json, size_t len);

/* The wire form tag of this door's cached values. */
#define NANA_DOOR_FORM_MSGPACK 1

/* The reply to a committed plain write: {"status": "success", "result": None}. */
extern const uint8_t nana_reply_set_ok[28];

/* InternalServerError "An unexpected error occurred", built in advance: the
 * answer when no reply can be built (out of memory). */
extern const uint8_t nana_reply_internal_frame[86];

/* ---- the door ------------------------------------------------------------------ */

struct nana_door {
    nana_door_opts o;
    nana_core *core;
    const nana_door_io *io;
    void *ep;
    nana_door_accounts accounts;
    nana_ban *ban;
    atomic_size_t buffered; /* bytes reserved by unfinished requests, all connections */
    atomic_uint_fast64_t st_auth_ok, st_auth_failed, st_bans, st_unread, st_stalled,
        st_request_timeouts, st_busy;
};

/* Whether a reply of |len| bytes must wait for the client to read earlier
 * ones (max_unread_reply_bytes); then |msg| says so (calls.c). */
bool nana_door_unread_over(nana_door *d, void *conn, size_t len, char *msg, size_t cap);

/* Starts watching the connection's unread replies once it holds some: a
 * client that stops reading is closed after reply_stall_ms (session.c). */
void nana_session_watch(nana_session *s, void *conn);

/* The door's ops for the core (calls.c). */
extern const nana_door_ops nana_door_core_ops;

/*
 * A call of this door: the core's call, and what binding its arguments
 * reads. Sessions fill one on their stack for nana_core_try; a queued call
 * (door_call in calls.c) embeds one.
 */
typedef struct nana_door_req {
    nana_core_call call; /* first */
    nana_request r;
} nana_door_req;

/*
 * Hands a call nana_core_try could not answer to the core: a copy that
 * lives until its reply is gone (|msg| is the request frame's msgpack,
 * copied unless the method binds before this returns). Any answer comes
 * back to connection |handle|'s stream |sid|. Holds the connection's
 * accounts |snap| (a new reference taken). Returns 0, or NANA_ERR_NOMEM
 * (nothing taken: the caller answers).
 */
int nana_door_queue(nana_door *d, const nana_door_req *q, uint64_t handle, int64_t sid,
                    const uint8_t *msg, size_t len, nana_accounts *snap);

#endif
