/*
 * nana_aql.h - the AmateRS query language (AQL) over the store: what the
 * gRPC doors share to serve amaters.aql.AqlService and the design's
 * AmateRS service, whatever HTTP carries them.
 *
 * Big idea: an AQL query (amaters.query.Query, unpacked by protobuf-c)
 * becomes a plan: which call of the call core runs it (get, set and
 * delete are the NanaSQLite door's own __getitem__, __setitem__ and
 * __delitem__, so the cache and the group-commit writer serve them the
 * same; range and filter are aql_select, update aql_update, a batch
 * aql_batch) and the store structures it passes (nana_select, nana_pred,
 * nana_update, nana_mop), all in the call's arena. The core's answer
 * becomes an amaters.query.QueryResult, or an amaters.errors.ErrorResponse
 * with the code and category a client acts on. No I/O, no clock, no
 * threads: a door calls these on whichever thread holds the call.
 *
 * Values: a CipherBlob's bytes that are one JSON text are stored as that
 * text, byte for byte (the NanaSQLite door reads that JSON); any other
 * bytes are stored as {"$bytes":"<unpadded standard base64>"} and read
 * back as the bytes (so is a JSON text that is itself such an object).
 * Keys must be UTF-8: a NanaSQLite key is text.
 */
#ifndef NANA_AQL_H
#define NANA_AQL_H

#include "core/nana_core.h"
#include "store/nana_store.h"
#include "util/nana_arena.h"
#include "util/nana_buf.h"
#include "util/nana_err.h"

#include "amaters/aql.pb-c.h"
#include "amaters/errors.pb-c.h"
#include "amaters/query.pb-c.h"
#include "amaters/types.pb-c.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* An error inside an answer (amaters.errors.ErrorResponse). */
typedef struct nana_aql_err {
    uint32_t code;        /* Amaters__Errors__ErrorCode */
    uint32_t category;    /* Amaters__Errors__ErrorCategory */
    uint32_t retry_after; /* seconds; 0: none */
    char message[256];
} nana_aql_err;

/* Sets |e| and returns -1 (for "return nana_aql_fail(...)"). */
int nana_aql_fail(nana_aql_err *e, uint32_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * The AQL error for the call core's error |err| (a store's or the core's
 * refusal). Faults of the server (nana_core_error_expected false) get a
 * fixed message: the detail stays in the server's log.
 */
void nana_aql_err_from(const nana_error *err, nana_aql_err *out);

/* What a query does. */
typedef enum nana_aql_kind {
    NANA_AQL_GET,
    NANA_AQL_SET,
    NANA_AQL_DELETE,
    NANA_AQL_FILTER,
    NANA_AQL_UPDATE,
    NANA_AQL_RANGE,
    NANA_AQL_BATCH,
} nana_aql_kind;

/* A query made ready for the call core (everything in the call's arena). */
typedef struct nana_aql_plan {
    nana_aql_kind kind;
    const char *method;     /* the core method it runs as */
    const char *collection; /* NULL: the default table */
    size_t clen;
    const char *key; /* GET, SET, DELETE */
    size_t klen;
    const char *json; /* SET: the stored JSON text */
    size_t jlen;
    nana_select sel;       /* RANGE, FILTER (the predicate in sel.pred) */
    const nana_pred *pred; /* UPDATE (NULL: every object) */
    nana_update *upd;      /* UPDATE */
    size_t nupd;
    nana_mop *ops;        /* BATCH: one per query, results filled by the store */
    nana_key *colls;      /* BATCH: each op's collection ("" = default) */
    nana_aql_kind *kinds; /* BATCH: each query's kind */
    size_t nops;
    bool streams; /* RANGE or FILTER: ExecuteStream may page it */
} nana_aql_plan;

/* Limits of one query, beyond the store's own. */
#define NANA_AQL_MAX_BATCH 1000 /* queries in one ExecuteBatch */

/*
 * Makes the plan of |q| in |arena|: 0, or -1 with the refusal in |err|
 * (a missing field, a key that is not UTF-8, a bad collection name, a
 * value the store cannot keep, a predicate the store refuses).
 */
int nana_aql_plan_query(nana_arena *arena, const Amaters__Query__Query *q, nana_aql_plan *out,
                        nana_aql_err *err);

/* The plan of a batch of queries (one transaction). As nana_aql_plan_query;
 * a refusal names the query ("query 3: ..."). */
int nana_aql_plan_batch(nana_arena *arena, Amaters__Query__Query *const *qs, size_t n,
                        nana_aql_plan *out, nana_aql_err *err);

/* The core's arguments for |p| (its door binds them): a[] of the method. */
void nana_aql_bind(const nana_aql_plan *p, nana_args *out);

/* The JSON text a value's bytes are stored as (in |arena| when wrapped):
 * 0, or NANA_ERR_NOMEM. */
int nana_aql_stored_json(nana_arena *arena, const uint8_t *data, size_t len, const char **json,
                         size_t *jlen);

/*
 * The stored JSON text |json| as a value's bytes (a "$bytes" wrapper is
 * decoded into |arena|): 0, or NANA_ERR_NOMEM.
 */
int nana_aql_value_bytes(nana_arena *arena, const char *json, size_t len, const uint8_t **out,
                         size_t *olen);

/* CRC-32 (the one zlib and PNG use) of |n| bytes. */
uint32_t nana_aql_crc32(const void *p, size_t n);

/*
 * A whole amaters.aql.QueryResponse: the result (a packed QueryResult) or
 * the error, the echoed request_id (NULL: none) and the time.
 */
int nana_aql_response(nana_buf *out, const uint8_t *result, size_t rlen, const nana_aql_err *err,
                      const char *request_id, uint64_t exec_ms);

/*
 * The QueryResponse of a plan's answer (|res| as the core gave it; a
 * NOTFOUND error of GET and DELETE is no error: |not_found|, found nothing,
 * changed nothing), its QueryResult packed in place. |arena| holds what
 * encoding needs. 0, or NANA_ERR_NOMEM.
 */
int nana_aql_response_of(nana_arena *arena, const nana_aql_plan *p, const nana_core_result *res,
                         bool not_found, const char *request_id, uint64_t exec_ms, nana_buf *out);

/* An amaters.aql.BatchResponse: the results of a batch's plan, or the error. */
int nana_aql_batch_response(nana_arena *arena, const nana_aql_plan *p, const nana_aql_err *err,
                            const char *request_id, uint64_t exec_ms, nana_buf *out);

/* An amaters.aql.StreamResponse carrying |rows| as a StreamBatch. */
int nana_aql_stream_batch(nana_arena *arena, const nana_rows *rows, bool has_more, uint64_t seq,
                          nana_buf *out);
/* ... the closing StreamEnd, or an error. */
int nana_aql_stream_end(uint64_t total, uint64_t seq, nana_buf *out);
int nana_aql_stream_error(const nana_aql_err *err, uint64_t seq, nana_buf *out);

/* Serialized bytes of any protobuf-c message, appended to |out|. */
int nana_aql_pack(const ProtobufCMessage *m, nana_buf *out);

#endif
