/*
 * nana_json.h - our own strict JSON: a validator, a tree parser, builders
 * and a compact writer.
 *
 * Big idea: stored values are JSON text written by Python, so we must accept
 * exactly RFC 8259 (plus, on request, Python's NaN/Infinity tokens) and must
 * never lose information: numbers keep their text verbatim (Python integers
 * may be far beyond 64 bits), strings are decoded to UTF-8 bytes. The hot
 * path (checking a value before storing it) uses nana_json_validate(), which
 * never allocates. When a tree is needed, nana_json_parse() builds one inside
 * a nana_json_doc: an arena that owns every node and string of the document
 * and is freed in one call. Nothing in this module recurses on the input, so
 * hostile nesting cannot exhaust the C stack.
 */
#ifndef NANA_JSON_H
#define NANA_JSON_H

#include "util/nana_buf.h"

#include <stddef.h>
#include <stdint.h>

/* Accept the tokens NaN, Infinity and -Infinity (Python's json.dumps writes them). */
enum { NANA_JSON_ALLOW_NONFINITE = 1u };

/* Nesting limit used by callers that have no configured one. */
#define NANA_JSON_DEFAULT_MAX_DEPTH 256

/*
 * Hard ceiling on nesting: a larger max_depth argument is treated as this
 * value. It bounds the validator's fixed on-stack bookkeeping (2 KiB).
 */
#define NANA_JSON_MAX_DEPTH_LIMIT 16384

/*
 * Strict RFC 8259 validation of one complete JSON text: any value at top
 * level, surrounding whitespace allowed, anything after it refused. Checks
 * UTF-8 (no overlongs, no UTF-8-encoded surrogates, nothing above U+10FFFF,
 * no truncated sequences), refuses raw control characters in strings, bad
 * escapes and \u escapes that form lone surrogates, and numbers outside the
 * RFC grammar. More than max_depth nested arrays/objects is refused (depth of
 * "[1]" is 1; max_depth 0 allows only scalars). Never allocates.
 * Returns 0 or NANA_ERR_JSON (detail names the byte offset and the problem).
 */
int nana_json_validate(const char *p, size_t n, unsigned flags, unsigned max_depth);

/*
 * 1 if p[0..n) is valid UTF-8 (no overlongs, no encoded surrogates, nothing
 * above U+10FFFF, no truncated sequence), else 0. NUL bytes are valid.
 */
int nana_utf8_valid(const char *p, size_t n);

typedef enum {
    NANA_JSON_NULL,
    NANA_JSON_FALSE,
    NANA_JSON_TRUE,
    NANA_JSON_NUMBER,
    NANA_JSON_STRING,
    NANA_JSON_ARRAY,
    NANA_JSON_OBJECT
} nana_json_type;

typedef struct nana_json nana_json;

typedef struct nana_json_member {
    const char *key; /* decoded UTF-8, NUL-terminated (may contain NUL) */
    uint32_t keylen; /* bytes in key, excluding the NUL */
    nana_json *val;
} nana_json_member;

struct nana_json {
    nana_json_type type;
    uint32_t n; /* STRING: decoded byte length; NUMBER: text length; ARRAY/OBJECT: element count */
    union {
        /* STRING: decoded UTF-8, NUL-terminated (may contain NUL).
           NUMBER: the number's text exactly as written ("12345678901234567890123", "1.50",
           "NaN"), NUL-terminated. */
        const char *str;
        nana_json **items;         /* ARRAY */
        nana_json_member *members; /* OBJECT, in document order, keys unique */
    } u;
    uint32_t cap; /* internal: capacity for arrays/objects being built (plus an index flag);
                     code that edits items/members directly must keep n <= capacity */
};

/* An arena owning every node and string of one document. */
typedef struct nana_json_doc nana_json_doc;

/* A new empty document, owned by the caller (free with nana_json_doc_free). NULL on OOM. */
nana_json_doc *nana_json_doc_new(void);

/* Frees the document and every node and string in it. NULL-safe. */
void nana_json_doc_free(nana_json_doc *doc);

/*
 * Parses one JSON text into a new document; on success *out_doc (owned by
 * the caller, free with nana_json_doc_free) holds the tree and *out_root its
 * top value. Same strictness as nana_json_validate(). Duplicate object keys
 * keep the LAST value at the position of the FIRST occurrence (like Python's
 * json.loads). Returns 0, NANA_ERR_JSON, NANA_ERR_TOOBIG (a string of 4 GiB
 * or more, a container of 2^31 elements or more) or NANA_ERR_NOMEM; on
 * failure both outputs are set to NULL.
 */
int nana_json_parse(const char *p, size_t n, unsigned flags, unsigned max_depth,
                    nana_json_doc **out_doc, nana_json **out_root);

/*
 * Builders. Nodes live in d's arena and die with it; NULL on failure with
 * the detail set (NANA_ERR_NOMEM unless said otherwise).
 */
nana_json *nana_json_new_null(nana_json_doc *d);
nana_json *nana_json_new_bool(nana_json_doc *d, int b);
nana_json *nana_json_new_int(nana_json_doc *d, int64_t v);
/*
 * NULL + NANA_ERR_INVALID for NaN/infinity. The text is the shortest that
 * round-trips, formatted like Python's repr: 1.0 -> "1.0", 1e16 -> "1e+16",
 * 1e-05 -> "1e-05", -0.0 -> "-0.0".
 */
nana_json *nana_json_new_double(nana_json_doc *d, double v);
/* Copies n bytes of number text; the caller guarantees it is valid JSON number text. */
nana_json *nana_json_new_number_text(nana_json_doc *d, const char *txt, size_t n);
/* Copies n bytes; NULL + NANA_ERR_INVALID if they are not valid UTF-8. */
nana_json *nana_json_new_string(nana_json_doc *d, const char *s, size_t n);
nana_json *nana_json_new_array(nana_json_doc *d);
nana_json *nana_json_new_object(nana_json_doc *d);

/* Appends item to arr (d must own arr). 0, NANA_ERR_TYPE, NANA_ERR_INVALID or NANA_ERR_NOMEM. */
int nana_json_array_append(nana_json_doc *d, nana_json *arr, nana_json *item);

/*
 * Sets obj[key] = val: replaces the value in place if the key exists, else
 * appends a member (key copied into d, which must own obj). Objects with
 * many members carry a hidden hash index (kept in the arena), so lookups
 * and appends stay O(1); deletion is O(n). 0, NANA_ERR_TYPE,
 * NANA_ERR_INVALID (NULL val, key not UTF-8), NANA_ERR_TOOBIG or
 * NANA_ERR_NOMEM.
 */
int nana_json_object_set(nana_json_doc *d, nana_json *obj, const char *key, size_t keylen,
                         nana_json *val);

/* The value stored under key, or NULL if absent (or obj is not an object). Never allocates. */
nana_json *nana_json_object_get(const nana_json *obj, const char *key, size_t keylen);

/* Removes key, keeping the order of the rest. 0, NANA_ERR_NOTFOUND or NANA_ERR_TYPE. */
int nana_json_object_del(nana_json *obj, const char *key, size_t keylen);

/* Deep copy of src (from any document) into d. NULL on OOM. */
nana_json *nana_json_clone(nana_json_doc *d, const nana_json *src);

/* 1 if the number text has no '.', 'e', 'E' and is not NaN/Infinity; else 0. */
int nana_json_number_is_integer(const nana_json *num);

/* 0; NANA_ERR_TYPE if not an integer number; NANA_ERR_TOOBIG if outside int64. */
int nana_json_number_int64(const nana_json *num, int64_t *out);

/*
 * 0 or NANA_ERR_TYPE. NaN/Infinity texts give those doubles; magnitudes
 * beyond double give +-infinity (as Python's float() does).
 */
int nana_json_number_double(const nana_json *num, double *out);

/*
 * Appends v as compact JSON (no spaces). Strings escape only '"', '\\' and
 * control characters (\b \f \n \r \t, else \u00XX); other bytes, including
 * non-ASCII UTF-8, are written raw (like json.dumps(ensure_ascii=False)).
 * Numbers are written as their text. 0 or the nana_buf error; on error the
 * buffer holds a partial text.
 */
int nana_json_write(nana_buf *out, const nana_json *v);

/* Appends s as a quoted JSON string. 0, NANA_ERR_INVALID (not UTF-8) or a nana_buf error. */
int nana_json_write_string(nana_buf *out, const char *s, size_t n);

/*
 * Appends finite v as a JSON number, formatted exactly as
 * nana_json_new_double() would (Python's repr). 0, NANA_ERR_INVALID for
 * NaN/infinity (nothing appended), or a nana_buf error.
 */
int nana_json_write_double(nana_buf *out, double v);

/*
 * 1 if a and b are equal: same type and content, numbers compared by text,
 * objects regardless of member order; else 0 (also 0 if memory for the walk
 * stack of a tree nested deeper than 32 levels runs out).
 */
int nana_json_equal(const nana_json *a, const nana_json *b);

#endif
