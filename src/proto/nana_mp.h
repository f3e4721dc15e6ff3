/*
 * nana_mp.h - msgpack, strictly: a reader that never allocates, a writer
 * into nana_buf, and transcoding between msgpack and the JSON text the
 * store keeps.
 *
 * Why not msgpack-c (Debian's libmsgpack)? Its decoder builds a tree and
 * sizes each array and map by the count the sender claims before it has
 * seen the elements: a 5-byte frame can make it allocate hundreds of
 * megabytes. This reader refuses any count larger than the bytes left (each
 * element takes at least one), any length past the end, nesting deeper than
 * the caller allows, and the reserved byte 0xc1; and the JSON transcoder
 * writes text directly from the bytes, with no tree at all. The writer
 * emits the smallest encoding, like Python's msgpack, with str for text,
 * bin for bytes and float64 for every float.
 *
 * Errors: 0 or a negative NANA_ERR_* (util/nana_err.h) with a detail in
 * nana_errmsg().
 */
#ifndef NANA_MP_H
#define NANA_MP_H

#include "util/nana_buf.h"
#include "util/nana_json.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    NANA_MP_NIL,
    NANA_MP_BOOL,
    NANA_MP_INT,   /* v.i: every integer that fits in int64 */
    NANA_MP_UINT,  /* v.u: only integers above INT64_MAX */
    NANA_MP_FLOAT, /* v.f (float32 widened) */
    NANA_MP_STR,   /* v.s: bytes as sent (not yet checked as UTF-8) */
    NANA_MP_BIN,   /* v.s */
    NANA_MP_ARRAY, /* v.count elements follow */
    NANA_MP_MAP,   /* v.count key/value pairs follow */
    NANA_MP_EXT,   /* v.s, ext_type */
} nana_mp_type;

typedef struct nana_mp_item {
    nana_mp_type type;
    int8_t ext_type;
    union {
        bool b;
        int64_t i;
        uint64_t u;
        double f;
        struct {
            const uint8_t *p; /* points into the reader's buffer */
            uint32_t n;
        } s;
        uint32_t count;
    } v;
} nana_mp_item;

/* A cursor over one buffer; the buffer must outlive it. */
typedef struct nana_mp_reader {
    const uint8_t *p, *end;
} nana_mp_reader;

static inline void nana_mp_reader_init(nana_mp_reader *r, const void *data, size_t len)
{
    r->p = (const uint8_t *)data;
    r->end = r->p + len;
}

/* Bytes not read yet. */
static inline size_t nana_mp_left(const nana_mp_reader *r)
{
    return (size_t)(r->end - r->p);
}

/*
 * Reads the next item's header (for a container: its count; the elements
 * follow). NANA_ERR_INVALID for a truncated item, the reserved byte 0xc1,
 * or a container count larger than the bytes left. The reader does not
 * move on error.
 */
int nana_mp_read(nana_mp_reader *r, nana_mp_item *it);

/* Python's name of a msgpack type ("NoneType", "int", "str", "bytes", "list",
 * "dict"...), for TypeError messages. Static storage. */
const char *nana_mp_type_name(nana_mp_type t);

/*
 * Nesting, as every depth limit here counts it: the number of arrays and
 * maps on the deepest path through a value, the value itself included and
 * empty ones too. A scalar nests 0 levels, [] and [1] 1, {"a": [[]]} 3;
 * nana_json_validate counts JSON text the same way.
 *
 * The deepest nana_mp_skip and nana_mp_to_json go, whatever |max_depth|
 * asks: both walk without recursion on a fixed stack of this many levels
 * (2 KiB and 4 KiB), and refuse deeper containers with NANA_ERR_TOOBIG.
 */
#define NANA_MP_MAX_DEPTH 256

/* Skips one whole value, containers included, nested no deeper than
 * |max_depth| (NANA_ERR_TOOBIG beyond). */
int nana_mp_skip(nana_mp_reader *r, unsigned max_depth);

/* Writers: append the smallest encoding; 0 or the nana_buf error. */
int nana_mp_put_nil(nana_buf *b);
int nana_mp_put_bool(nana_buf *b, bool v);
int nana_mp_put_int(nana_buf *b, int64_t v);
int nana_mp_put_uint(nana_buf *b, uint64_t v);
int nana_mp_put_double(nana_buf *b, double v);
int nana_mp_put_str(nana_buf *b, const char *s, size_t n);
int nana_mp_put_cstr(nana_buf *b, const char *s);
int nana_mp_put_bin(nana_buf *b, const void *p, size_t n);
int nana_mp_put_array(nana_buf *b, uint32_t n);
int nana_mp_put_map(nana_buf *b, uint32_t n);

/*
 * Reads one value and appends it to |out| as compact JSON text, the way the
 * store keeps values (strings raw UTF-8, floats like Python's repr). Refuses
 * what JSON cannot hold, with Python's wording: NANA_ERR_TYPE for bin
 * ("Object of type bytes is not JSON serializable"), ext and maps whose keys
 * are not strings; NANA_ERR_INVALID for NaN or infinity ("Out of range float
 * values are not JSON compliant", Python's ValueError) and for strings that
 * are not UTF-8 or malformed msgpack; NANA_ERR_TOOBIG nested deeper than
 * |max_depth| (at most NANA_MP_MAX_DEPTH), with the message "nested deeper
 * than N levels". On error |out| may hold a partial text.
 */
int nana_mp_to_json(nana_mp_reader *r, nana_buf *out, unsigned max_depth);

/*
 * Appends a JSON value as msgpack. Integers go as int/uint, other numbers
 * as float64 (NaN and infinity too, as Python's msgpack would); integers
 * beyond 64 bits are refused with NANA_ERR_TOOBIG (msgpack has none).
 */
int nana_mp_from_json(nana_buf *out, const nana_json *v);

/* Parses JSON text and appends it as msgpack (nana_json_parse's errors, or
 * nana_mp_from_json's). */
int nana_mp_from_json_text(nana_buf *out, const char *text, size_t n);

#endif
