/*
 * nana_grpc.h - the gRPC layer the gRPC doors share (HTTP/3 on our QUIC
 * endpoint, HTTP/2 over TLS later): everything of gRPC that does not depend
 * on the transport, with no I/O, no clock and no HTTP library.
 *
 * A door drives it from its HTTP library's callbacks:
 *
 *   request header field  -> nana_grpc_head_add()   (one name/value at a time)
 *   end of the header     -> nana_grpc_head_finish() (accept, or the exact answer)
 *   request body piece    -> nana_grpc_deframe()     (in a loop: one message a turn)
 *   end of the request    -> nana_grpc_deframer_end()
 *   answer                -> nana_grpc_resp_*()      (name/value arrays for the
 *                                                     library's submit calls)
 *
 * Statuses (nana_grpc_status) and the mappings onto them (our NANA_ERR_*
 * codes, HTTP/3 and HTTP/2 stream error codes, HTTP statuses a client
 * receives) are here too, with the text codecs gRPC uses in header values
 * (grpc-timeout, percent-encoded grpc-message, base64 for "-bin"
 * metadata), the serialized descriptors of our .proto files for server
 * reflection, and protobuf-c glue that allocates from a call's arena.
 *
 * Memory: nothing here allocates per message on the hot path except from a
 * nana_arena the door gives (a per-call arena, which may start in a block
 * the connection keeps), and the deframer's reassembly buffer, kept per
 * stream and grown only as bytes of a split message arrive.
 */
#ifndef NANA_GRPC_H
#define NANA_GRPC_H

#include "util/nana_arena.h"
#include "util/nana_err.h"

#include <protobuf-c/protobuf-c.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------ */
/* Statuses                                                            */
/* ------------------------------------------------------------------ */

/* The gRPC status codes, with gRPC's numbers (sent as grpc-status). */
typedef enum nana_grpc_status {
    NANA_GRPC_OK = 0,
    NANA_GRPC_CANCELLED = 1,
    NANA_GRPC_UNKNOWN = 2,
    NANA_GRPC_INVALID_ARGUMENT = 3,
    NANA_GRPC_DEADLINE_EXCEEDED = 4,
    NANA_GRPC_NOT_FOUND = 5,
    NANA_GRPC_ALREADY_EXISTS = 6,
    NANA_GRPC_PERMISSION_DENIED = 7,
    NANA_GRPC_RESOURCE_EXHAUSTED = 8,
    NANA_GRPC_FAILED_PRECONDITION = 9,
    NANA_GRPC_ABORTED = 10,
    NANA_GRPC_OUT_OF_RANGE = 11,
    NANA_GRPC_UNIMPLEMENTED = 12,
    NANA_GRPC_INTERNAL = 13,
    NANA_GRPC_UNAVAILABLE = 14,
    NANA_GRPC_DATA_LOSS = 15,
    NANA_GRPC_UNAUTHENTICATED = 16,
} nana_grpc_status;

#define NANA_GRPC_STATUS_COUNT 17

/* The status's name ("NOT_FOUND"); NULL for a number that is not a status. */
const char *nana_grpc_status_name(int status);

/* The status's decimal text for grpc-status ("5"); NULL when not a status. */
const char *nana_grpc_status_digits(int status);

/* Size of a status message we send, including the terminating NUL. */
#define NANA_GRPC_MESSAGE_MAX NANA_ERRMSG_MAX

/*
 * How a call ends when it fails: the status and the message the client is
 * sent (plain UTF-8 here; nana_grpc_resp_trailers percent-encodes it).
 * Fixed size, so it can be filled when memory runs out.
 */
typedef struct nana_grpc_error {
    nana_grpc_status status;
    char message[NANA_GRPC_MESSAGE_MAX];
} nana_grpc_error;

/* Sets |e| to |status| with a formatted message. */
void nana_grpc_error_set(nana_grpc_error *e, nana_grpc_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * The status for one of our error codes (NANA_ERR_*; NANA_OK is OK). Codes
 * that say what the caller did wrong, or what the server refuses, map to
 * the status a gRPC client expects (NOTFOUND -> NOT_FOUND, PERM ->
 * PERMISSION_DENIED, TIMEOUT -> DEADLINE_EXCEEDED, RATE -> RESOURCE_EXHAUSTED,
 * SHUTDOWN -> UNAVAILABLE, ...); codes that are a fault of the server map to
 * INTERNAL (or DATA_LOSS for a damaged database), and a code we do not know
 * to UNKNOWN. docs/PROTOCOL.md has the table.
 */
nana_grpc_status nana_grpc_status_from_err(int code);

/* Whether the message that came with |code| may be sent to the client. False
 * for the server's own faults (IO, NOMEM, INTERNAL, DB, CORRUPT, unknown
 * codes): their messages can name files or statements, so the client gets a
 * fixed text and the detail goes to the log. */
bool nana_grpc_err_is_public(int code);

/*
 * Fills |out| with the status and the client's message for |e|: e->msg when
 * nana_grpc_err_is_public(e->code), else a fixed text naming only the kind
 * of failure and, when |error_id| is not 0, the id the server logged the
 * detail under ("internal error (error id 00000000075bcd15)").
 */
void nana_grpc_error_from(nana_grpc_error *out, const nana_error *e, uint64_t error_id);

/* HTTP/3 error codes (RFC 9114) the gRPC over HTTP/3 mapping names. */
enum {
    NANA_GRPC_H3_NO_ERROR = 0x100,
    NANA_GRPC_H3_GENERAL_PROTOCOL_ERROR = 0x101,
    NANA_GRPC_H3_INTERNAL_ERROR = 0x102,
    NANA_GRPC_H3_STREAM_CREATION_ERROR = 0x103,
    NANA_GRPC_H3_CLOSED_CRITICAL_STREAM = 0x104,
    NANA_GRPC_H3_FRAME_UNEXPECTED = 0x105,
    NANA_GRPC_H3_FRAME_ERROR = 0x106,
    NANA_GRPC_H3_EXCESSIVE_LOAD = 0x107,
    NANA_GRPC_H3_ID_ERROR = 0x108,
    NANA_GRPC_H3_SETTINGS_ERROR = 0x109,
    NANA_GRPC_H3_MISSING_SETTINGS = 0x10a,
    NANA_GRPC_H3_REQUEST_REJECTED = 0x10b,
    NANA_GRPC_H3_REQUEST_CANCELLED = 0x10c,
    NANA_GRPC_H3_REQUEST_INCOMPLETE = 0x10d,
    NANA_GRPC_H3_MESSAGE_ERROR = 0x10e,
    NANA_GRPC_H3_CONNECT_ERROR = 0x10f,
    NANA_GRPC_H3_VERSION_FALLBACK = 0x110,
};

/* HTTP/2 error codes (RFC 9113) of RST_STREAM and GOAWAY. */
enum {
    NANA_GRPC_H2_NO_ERROR = 0x0,
    NANA_GRPC_H2_PROTOCOL_ERROR = 0x1,
    NANA_GRPC_H2_INTERNAL_ERROR = 0x2,
    NANA_GRPC_H2_FLOW_CONTROL_ERROR = 0x3,
    NANA_GRPC_H2_SETTINGS_TIMEOUT = 0x4,
    NANA_GRPC_H2_STREAM_CLOSED = 0x5,
    NANA_GRPC_H2_FRAME_SIZE_ERROR = 0x6,
    NANA_GRPC_H2_REFUSED_STREAM = 0x7,
    NANA_GRPC_H2_CANCEL = 0x8,
    NANA_GRPC_H2_COMPRESSION_ERROR = 0x9,
    NANA_GRPC_H2_CONNECT_ERROR = 0xa,
    NANA_GRPC_H2_ENHANCE_YOUR_CALM = 0xb,
    NANA_GRPC_H2_INADEQUATE_SECURITY = 0xc,
    NANA_GRPC_H2_HTTP_1_1_REQUIRED = 0xd,
};

/*
 * The status of a call whose stream the peer reset (or whose connection it
 * closed) with HTTP/3 error |code|, as gRPC over HTTP/3 maps them:
 * H3_REQUEST_REJECTED -> UNAVAILABLE (nothing was processed: safe to
 * retry), H3_EXCESSIVE_LOAD -> RESOURCE_EXHAUSTED, H3_REQUEST_CANCELLED ->
 * CANCELLED (a client's cancellation, or a server giving up on a call
 * whose request it had not read), everything else -> INTERNAL (H3_NO_ERROR
 * too: a finished call carries an explicit status).
 */
nana_grpc_status nana_grpc_status_from_h3(uint64_t code);

/* The same for an HTTP/2 RST_STREAM code; -1 for STREAM_CLOSED, which has
 * no status (no open stream to report it on: log it). */
int nana_grpc_status_from_h2(uint32_t code);

/*
 * For a client that got an HTTP response without grpc-status: the status
 * gRPC's table gives the HTTP status (400 -> INTERNAL, 401 ->
 * UNAUTHENTICATED, 403 -> PERMISSION_DENIED, 404 -> UNIMPLEMENTED, 429, 502,
 * 503, 504 -> UNAVAILABLE, 431 -> INTERNAL, anything else (200 included) ->
 * UNKNOWN). Never used by a server to choose an HTTP status.
 */
nana_grpc_status nana_grpc_status_from_http(int http_status);

/* ------------------------------------------------------------------ */
/* Text codecs of header values                                        */
/* ------------------------------------------------------------------ */

/*
 * grpc-timeout: 1 to 8 ASCII digits and a unit, H M S m u n (hours,
 * minutes, seconds, milli-, micro-, nanoseconds). Sets *ns, saturating at
 * INT64_MAX (99999999H does not fit 64 bits: as good as no deadline).
 * "0n" and other zeros are accepted (clients send them for a deadline that
 * has already passed). 0, or NANA_ERR_INVALID with a message.
 */
int nana_grpc_timeout_parse(const char *v, size_t n, int64_t *ns);

/* Writes |ns| (> 0 < INT64_MAX) as a grpc-timeout value into |out| (at least
 * 10 bytes; NUL-terminated): the finest unit whose count fits 8 digits,
 * rounded up so the deadline is never shortened. Returns its length. */
size_t nana_grpc_timeout_format(int64_t ns, char *out);

/* The length of |n| bytes percent-encoded for grpc-message. */
size_t nana_grpc_pct_encoded_len(const void *s, size_t n);

/*
 * Percent-encodes |n| bytes for grpc-message: bytes 0x20-0x7E other than '%'
 * stay, every other byte (UTF-8's included) becomes %XX with upper-case hex.
 * Writes at most |cap| - 1 bytes and a NUL (nothing when |cap| is 0) and
 * returns the whole encoded length, like snprintf; a %XX is never cut.
 */
size_t nana_grpc_pct_encode(const void *s, size_t n, char *out, size_t cap);

/*
 * Decodes a grpc-message value into |out| (room for |n| + 1 bytes; NUL
 * added) and returns the decoded length. Never fails, as the protocol asks:
 * a '%' not followed by two hex digits is kept as it is.
 */
size_t nana_grpc_pct_decode(const char *s, size_t n, char *out);

/* The length of |n| bytes in unpadded base64 (RFC 4648 section 4). */
size_t nana_grpc_b64_encoded_len(size_t n);

/* Writes |n| bytes as unpadded base64 and a NUL into |out| (room for
 * nana_grpc_b64_encoded_len(n) + 1 bytes); returns the length. */
size_t nana_grpc_b64_encode(const void *p, size_t n, char *out);

/*
 * Decodes base64 (standard alphabet), padded or not, into |out| (room for
 * n / 4 * 3 + 2 bytes); sets *out_len. 0, or NANA_ERR_INVALID for a
 * character outside the alphabet, a length no encoding has, or padding
 * that is wrong or not at the end.
 */
int nana_grpc_b64_decode(const char *s, size_t n, uint8_t *out, size_t *out_len);

/* ------------------------------------------------------------------ */
/* Limits                                                              */
/* ------------------------------------------------------------------ */

/* The default limits: the request's header fields, counted as HTTP/2's
 * SETTINGS_MAX_HEADER_LIST_SIZE counts them (name + value + 32 each; a
 * "-bin" value by its base64 length), 8 KiB as gRPC suggests; at most 64
 * fields; a message at most 4 MiB, gRPC's default receive limit. */
#define NANA_GRPC_DEFAULT_MAX_HEADER_BYTES  8192u
#define NANA_GRPC_DEFAULT_MAX_HEADER_FIELDS 64u
#define NANA_GRPC_DEFAULT_MAX_MESSAGE_BYTES (4u << 20)

typedef struct nana_grpc_limits {
    uint32_t max_header_bytes;  /* request header size as counted above */
    uint32_t max_header_fields; /* request header fields, pseudo-headers included */
    uint32_t max_message_bytes; /* one request message, without its 5-byte prefix */
} nana_grpc_limits;

/* Fills |l| with the defaults above. */
void nana_grpc_limits_default(nana_grpc_limits *l);

/* ------------------------------------------------------------------ */
/* The request head                                                    */
/* ------------------------------------------------------------------ */

/* The HTTP version under the call: a few header rules differ. */
typedef enum nana_grpc_http {
    NANA_GRPC_HTTP2 = 2,
    NANA_GRPC_HTTP3 = 3,
} nana_grpc_http;

/* The request's content-type (the response echoes it). */
typedef enum nana_grpc_ctype {
    NANA_GRPC_CT_GRPC,       /* application/grpc */
    NANA_GRPC_CT_GRPC_PROTO, /* application/grpc+proto */
} nana_grpc_ctype;

/* One custom metadata entry. Name and value point into the call's arena and
 * are NUL-terminated; a "-bin" entry's value is the decoded bytes. */
typedef struct nana_grpc_meta {
    const char *name;
    size_t name_len;
    const uint8_t *value;
    size_t value_len;
    bool binary; /* the name ends in "-bin" */
} nana_grpc_meta;

/* What the door does with a request once its header has ended. */
typedef enum nana_grpc_verdict_kind {
    NANA_GRPC_ACCEPT,     /* a valid gRPC call: read its body, run it */
    NANA_GRPC_RESET,      /* malformed HTTP: reset the stream (reset_h3 / reset_h2), no answer */
    NANA_GRPC_HTTP_ERROR, /* not gRPC: answer http_status alone (nana_grpc_resp_http_error) */
    NANA_GRPC_REFUSE,     /* a gRPC call refused at once: Trailers-Only with |error| */
} nana_grpc_verdict_kind;

typedef struct nana_grpc_verdict {
    nana_grpc_verdict_kind kind;
    uint64_t reset_h3;     /* RESET: NANA_GRPC_H3_MESSAGE_ERROR */
    uint32_t reset_h2;     /* RESET: NANA_GRPC_H2_PROTOCOL_ERROR */
    int http_status;       /* HTTP_ERROR: 405, 415 or 400 */
    bool accept_encoding;  /* REFUSE: add grpc-accept-encoding: identity */
    nana_grpc_error error; /* REFUSE: the status; every kind: what happened, for the log */
} nana_grpc_verdict;

/*
 * One request's header, fed field by field. After nana_grpc_head_finish
 * says ACCEPT, the public fields describe the call; their strings live in
 * the arena given to nana_grpc_head_init and are NUL-terminated.
 */
typedef struct nana_grpc_head {
    /* The call (valid after ACCEPT). */
    const char *path; /* "/package.Service/Method" */
    size_t path_len;
    const char *service; /* "package.Service" (NUL-terminated copy) */
    size_t service_len;
    const char *method; /* "Method" (points into path) */
    size_t method_len;
    const char *authority;       /* :authority (or host), NULL when absent */
    const char *user_agent;      /* for logs; NULL when absent */
    const char *accept_encoding; /* grpc-accept-encoding as sent, NULL when absent */
    nana_grpc_ctype ctype;
    bool https;                 /* :scheme is https */
    int64_t timeout_ns;         /* grpc-timeout, -1 when none (no deadline) */
    const nana_grpc_meta *meta; /* custom metadata, in arrival order */
    size_t meta_count;

    /* Accounting and state: read through the functions below. */
    nana_grpc_http http;
    nana_grpc_limits lim;
    nana_arena *arena;
    uint32_t fields;
    uint64_t bytes;
    unsigned seen;    /* bit per pseudo-header and call-definition field */
    bool method_post; /* :method is POST */
    bool method_connect;
    bool scheme_ok;   /* :scheme is http or https */
    bool ctype_ok;    /* one content-type, and a gRPC one */
    bool encoding_ok; /* grpc-encoding absent or identity */
    bool over_limit;  /* a field was past a header limit */
    bool done;        /* nana_grpc_head_finish was called */
    const char *host; /* a host field (HTTP/3: must match :authority) */
    size_t meta_cap;
    nana_grpc_meta *meta_buf;
    int problem_rank; /* how bad the worst problem seen so far is (0: none) */
    nana_grpc_verdict verdict;
} nana_grpc_head;

/*
 * Starts |h| for a request under |http|. |lim| NULL means the defaults.
 * Copies of what the head keeps come from |arena| (the call's), which must
 * outlive the call's use of the head.
 */
void nana_grpc_head_init(nana_grpc_head *h, nana_grpc_http http, const nana_grpc_limits *lim,
                         nana_arena *arena);

/*
 * Feeds one header field (names as the HTTP library gives them; HTTP/2 and
 * HTTP/3 send them lower-case; neither needs a NUL). Problems are
 * remembered, not returned: the verdict comes from nana_grpc_head_finish.
 * Returns 0, or a negative NANA_ERR_* once the call can no longer be
 * accepted (the door may stop feeding and finish): NANA_ERR_NOMEM when the
 * arena ran out, NANA_ERR_TOOBIG past a header limit, NANA_ERR_INVALID for
 * any other problem.
 */
int nana_grpc_head_add(nana_grpc_head *h, const char *name, size_t name_len, const char *value,
                       size_t value_len);

/*
 * Ends the header and returns the verdict (also in h->verdict). The rules,
 * worst first: malformed HTTP (RESET); a method other than POST (HTTP 405,
 * with allow: POST); a scheme other than http/https (HTTP 400); a
 * content-type other than application/grpc[+proto] (HTTP 415); then gRPC
 * refusals: a header limit (RESOURCE_EXHAUSTED), HTTP/2 without
 * te: trailers (INTERNAL), a path that is not /Service/Method
 * (UNIMPLEMENTED), a grpc-encoding other than identity (UNIMPLEMENTED),
 * a bad grpc-timeout or binary metadata (INTERNAL). docs/PROTOCOL.md says
 * the same in a table.
 */
nana_grpc_verdict_kind nana_grpc_head_finish(nana_grpc_head *h);

/* The |index|th (0-based) metadata entry named |name| (lower-case), or NULL. */
const nana_grpc_meta *nana_grpc_head_meta(const nana_grpc_head *h, const char *name, size_t index);

/* Whether |name| may be the name of custom metadata: 1+ of 0-9 a-z _ - .,
 * not starting with "grpc-" (reserved). */
bool nana_grpc_meta_name_ok(const char *name, size_t n);

/* ------------------------------------------------------------------ */
/* Messages: the 5-byte prefix and the deframer                        */
/* ------------------------------------------------------------------ */

#define NANA_GRPC_PREFIX 5

/* Writes the prefix of a message of |len| bytes (compressed flag 0 or 1). */
void nana_grpc_frame_prefix(uint8_t out[NANA_GRPC_PREFIX], bool compressed, uint32_t len);

/* One message from the deframer. |data| points into the piece the door fed
 * (when the whole message was in it: no copy) or into the deframer's own
 * buffer; valid until the next call on the deframer or the piece's end,
 * whichever is first. */
typedef struct nana_grpc_msg {
    const uint8_t *data;
    size_t len;
    bool compressed; /* only when compression was allowed (never today) */
} nana_grpc_msg;

typedef struct nana_grpc_deframer {
    uint32_t max_message;
    bool compression_ok; /* a grpc-encoding other than identity was agreed */
    uint8_t hdr[NANA_GRPC_PREFIX];
    uint8_t hdr_have;
    bool compressed;
    uint32_t len; /* the current message's length, once the prefix is in */
    uint8_t *buf; /* reassembly of a message that came in pieces */
    size_t cap;
    size_t have;    /* bytes of the current message in buf */
    uint64_t count; /* messages delivered */
    bool failed;
    int fail_code;         /* the NANA_ERR_* it failed with */
    nana_grpc_error error; /* why it failed: the status to end the call with */
} nana_grpc_deframer;

/* Starts a deframer with a message limit (0: the default 4 MiB). */
void nana_grpc_deframer_init(nana_grpc_deframer *d, uint32_t max_message);

/*
 * Reads from the piece *p / *n (advancing both) up to the end of the next
 * message. Returns 1 with |m| set when a message is complete, 0 when the
 * piece is used up and the message (if any) is not, or a negative
 * NANA_ERR_* with d->error set: NANA_ERR_TOOBIG (RESOURCE_EXHAUSTED: a
 * message over the limit), NANA_ERR_INVALID (INTERNAL: a compressed flag
 * without an agreed encoding, or not 0/1), NANA_ERR_NOMEM (RESOURCE_EXHAUSTED).
 * A failed deframer keeps failing. Call it in a loop until it returns <= 0.
 */
int nana_grpc_deframe(nana_grpc_deframer *d, const uint8_t **p, size_t *n, nana_grpc_msg *m);

/* At the end of the request stream: 0, or NANA_ERR_INVALID with d->error
 * (INTERNAL) when it ended inside a message (a failed deframer: its code). */
int nana_grpc_deframer_end(nana_grpc_deframer *d);

/* Readies |d| for another stream with the same limit, keeping its buffer. */
void nana_grpc_deframer_reset(nana_grpc_deframer *d);

/* Frees the buffer. */
void nana_grpc_deframer_free(nana_grpc_deframer *d);

/* ------------------------------------------------------------------ */
/* Responses                                                           */
/* ------------------------------------------------------------------ */

/* One response header or trailer field. Name and value are not copied:
 * they point at constants or into the arena of the nana_grpc_fields. */
typedef struct nana_grpc_field {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} nana_grpc_field;

/* A list of fields the door hands its HTTP library in one submit call. */
typedef struct nana_grpc_fields {
    nana_grpc_field *v;
    size_t n, cap;
    nana_arena *arena; /* encoded values (grpc-message, -bin metadata) */
} nana_grpc_fields;

/* Starts an empty list over |storage| (|cap| entries). */
void nana_grpc_fields_init(nana_grpc_fields *f, nana_grpc_field *storage, size_t cap,
                           nana_arena *arena);

/* Response-Headers: :status 200 and content-type (the request's form). 0 or
 * NANA_ERR_TOOBIG when the list is full (as every function below). */
int nana_grpc_resp_headers(nana_grpc_fields *f, nana_grpc_ctype ctype);

/*
 * Custom metadata for the headers or trailers. |name| must pass
 * nana_grpc_meta_name_ok (NANA_ERR_INVALID); a "-bin" name's value is
 * encoded as unpadded base64, any other value must be printable ASCII
 * (0x20-0x7E, NANA_ERR_INVALID). |name| is not copied, the value is.
 */
int nana_grpc_resp_meta(nana_grpc_fields *f, const char *name, const void *value, size_t len);

/* Trailers: grpc-status, and grpc-message percent-encoded when |message|
 * is not NULL or empty. */
int nana_grpc_resp_trailers(nana_grpc_fields *f, nana_grpc_status status, const char *message);

/* Adds grpc-retry-pushback-ms: |ms| (gRPC's server pushback: a client's
 * retry policy waits this long before sending the call again). */
int nana_grpc_resp_pushback(nana_grpc_fields *f, unsigned ms);

/* Trailers-Only (an immediate error, the whole answer in one header block):
 * :status 200, content-type, grpc-status, grpc-message. */
int nana_grpc_resp_trailers_only(nana_grpc_fields *f, nana_grpc_ctype ctype,
                                 nana_grpc_status status, const char *message);

/* An HTTP error without gRPC status: :status |http_status|, and for 405 the
 * allow: POST that HTTP asks for. */
int nana_grpc_resp_http_error(nana_grpc_fields *f, int http_status);

/* The answer a verdict asks for (HTTP_ERROR or REFUSE; NANA_ERR_INVALID for
 * the others): nana_grpc_resp_http_error, or Trailers-Only with the error
 * and, for an unsupported encoding, grpc-accept-encoding: identity. */
int nana_grpc_resp_verdict(nana_grpc_fields *f, const nana_grpc_verdict *v, nana_grpc_ctype ctype);

/* ------------------------------------------------------------------ */
/* Logging in by signature (clients)                                   */
/* ------------------------------------------------------------------ */

/*
 * A client logs in on the gRPC door with three metadata fields in its
 * first call: "nana-account", "nana-timestamp" (Unix seconds, decimal)
 * and "nana-signature-bin": the Ed25519 signature, by the account's key,
 * of the message nana_grpc_login_message builds:
 *   NANA_GRPC_LOGIN_CONTEXT, a NUL, the connection's TLS exporter value
 *   (label NANA_GRPC_LOGIN_EXPORTER_LABEL, no context, 32 bytes), the
 *   account name, a NUL, and the timestamp text.
 * Writes it into |out| (|cap| bytes); returns its length, or 0 when it
 * does not fit. Clients and the door both build it here.
 */
#define NANA_GRPC_LOGIN_CONTEXT        "nanasqlite-grpc-login-v1"
#define NANA_GRPC_LOGIN_EXPORTER_LABEL "EXPORTER-nanasqlite-grpc-login"
#define NANA_GRPC_LOGIN_EXPORTER_LEN   32
size_t nana_grpc_login_message(const uint8_t exporter[32], const char *account, size_t alen,
                               const char *timestamp, size_t tlen, uint8_t *out, size_t cap);

/* ------------------------------------------------------------------ */
/* Protobuf: our .proto files and protobuf-c on an arena               */
/* ------------------------------------------------------------------ */

/* One of our .proto files as a serialized FileDescriptorProto, embedded at
 * build time. |name| is its path under proto/ ("grpc/health/v1/health.proto"). */
typedef struct nana_grpc_file {
    const char *name;
    const uint8_t *proto;
    size_t len;
} nana_grpc_file;

/* The embedded files; sets *count. */
const nana_grpc_file *nana_grpc_files(size_t *count);

/* The file named |name|, or NULL. */
const nana_grpc_file *nana_grpc_file_by_name(const char *name, size_t n);

/* The file that declares the fully-qualified |symbol| (a service, a method
 * "pkg.Service.Method", a message at any depth or an enum), or NULL. */
const nana_grpc_file *nana_grpc_file_by_symbol(const char *symbol, size_t n);

/* The full names of the services the files declare ("grpc.health.v1.Health"),
 * copied into |a|: *names gets an array of *count NUL-terminated strings.
 * 0 or NANA_ERR_NOMEM. */
int nana_grpc_service_names(nana_arena *a, const char ***names, size_t *count);

/* A protobuf-c allocator that takes from |a| (freeing is a no-op: the arena
 * goes at the call's end). */
void nana_grpc_pb_allocator(ProtobufCAllocator *out, nana_arena *a);

/* How deep messages may nest inside a request message (the message itself
 * is level 1): a predicate tree of the store's 32 levels fits. */
#define NANA_GRPC_PB_MAX_DEPTH 100

/*
 * Unpacks a message of type |desc| from |data| into the arena. 0 with *out
 * set, or NANA_ERR_INVALID when the bytes are not that message or nest
 * deeper than NANA_GRPC_PB_MAX_DEPTH (the call ends INTERNAL, as gRPC
 * answers a request it cannot parse).
 */
int nana_grpc_pb_unpack(nana_arena *a, const ProtobufCMessageDescriptor *desc, const uint8_t *data,
                        size_t len, ProtobufCMessage **out);

/* Packs |m| after a 5-byte prefix into the arena: *out / *len is the whole
 * framed message, ready to send. 0, NANA_ERR_TOOBIG past 4 GiB, or
 * NANA_ERR_NOMEM. */
int nana_grpc_pb_pack_framed(nana_arena *a, const ProtobufCMessage *m, uint8_t **out, size_t *len);

/*
 * Server reflection (grpc.reflection.v1alpha.ServerReflection/
 * ServerReflectionInfo): answers one serialized ServerReflectionRequest
 * with a serialized ServerReflectionResponse (in |a|): list_services, the
 * files by name or by symbol (with the files they import), and errors as
 * ErrorResponse (NOT_FOUND for an unknown name). 0, NANA_ERR_INVALID when
 * the request does not parse, NANA_ERR_NOMEM.
 */
int nana_grpc_reflect_answer(nana_arena *a, const uint8_t *req, size_t req_len, uint8_t **out,
                             size_t *out_len);

#endif
