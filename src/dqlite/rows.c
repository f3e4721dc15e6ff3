/*
 * rows.c - decoding ROWS responses: a query's columns and rows, over as
 * many messages as the server splits them into.
 *
 * A ROWS body is the column count, each column's name (a text), then rows,
 * then an end marker word: DONE when the result is complete, PART when
 * another ROWS message follows. A row is a header of 4-bit type codes (the
 * first column in the low nibble), zero-padded to a word, then one value
 * per column. No valid row header starts with a marker's bytes (0xe and
 * 0xf are no type), so a word equal to a marker at a row's start is the
 * end; it must be the body's last word.
 *
 * Nothing is copied: values point into the message bodies, which the rows
 * keep until nana_dql_rows_free. What a query may hold is bounded by
 * result_max (the bodies' bytes) and the columns by columns_max; values
 * take at least a word each, so the value array is bounded too.
 */
#include "dqlite/nana_dqlite.h"
#include "dqlite/dqlite_int.h"
#include "util/nana_err.h"

#include <stdlib.h>
#include <string.h>

void nana_dql_rows_init(nana_dql_rows *r)
{
    memset(r, 0, sizeof(*r));
}

void nana_dql_rows_free(nana_dql_rows *r)
{
    if (!r) return;
    for (size_t i = 0; i < r->nbodies; i++)
        free(r->bodies[i]);
    free(r->bodies);
    free(r->names);
    free(r->values);
    nana_dql_rows_init(r);
}

/* Room for one more row of values. */
static int grow_values(nana_dql_rows *r)
{
    size_t need = (r->nrows + 1) * r->ncols; /* bounded by result_max / 8 */
    if (need <= r->values_cap) return 0;
    size_t cap = r->values_cap ? r->values_cap * 2 : 64;
    while (cap < need)
        cap *= 2;
    nana_dql_value *v = realloc(r->values, cap * sizeof(*v));
    if (!v) return nana_err_set(NANA_ERR_NOMEM, "dqlite: out of memory for %zu values", cap);
    r->values = v;
    r->values_cap = cap;
    return 0;
}

/* Keeps |body| with the rows (their values point into it). */
static int keep_body(nana_dql_rows *r, uint8_t *body)
{
    if (r->nbodies == r->bodies_cap) {
        size_t cap = r->bodies_cap ? r->bodies_cap * 2 : 4;
        uint8_t **b = realloc(r->bodies, cap * sizeof(*b));
        if (!b) return nana_err_set(NANA_ERR_NOMEM, "dqlite: out of memory for a result");
        r->bodies = b;
        r->bodies_cap = cap;
    }
    r->bodies[r->nbodies++] = body;
    return 0;
}

/* The column count and names; the first message sets them, later ones
 * must repeat them. */
static int read_columns(nana_dql_rows *r, dql_rd *rd, const nana_dql_limits *lim, int first)
{
    uint64_t n;
    int rc = dql_rd_u64(rd, &n, "the column count");
    if (rc) return rc;
    if (n > lim->columns_max)
        return nana_err_set(NANA_ERR_TOOBIG, "dqlite: %llu columns, the limit is %zu",
                            (unsigned long long)n, lim->columns_max);
    if (n > rd->left / 8)
        return nana_err_set(NANA_ERR_INVALID, "dqlite: %llu columns in a message of %zu bytes",
                            (unsigned long long)n, rd->left);
    if (first) {
        r->names = calloc(n ? (size_t)n : 1, sizeof(*r->names));
        if (!r->names) return nana_err_set(NANA_ERR_NOMEM, "dqlite: out of memory for columns");
        r->ncols = (size_t)n;
    } else if ((size_t)n != r->ncols) {
        return nana_err_set(NANA_ERR_INVALID,
                            "dqlite: a later batch of rows has %llu columns, the first had %zu",
                            (unsigned long long)n, r->ncols);
    }
    for (size_t i = 0; i < (size_t)n; i++) {
        const char *name;
        rc = dql_rd_text(rd, &name, NULL, "a column name");
        if (rc) return rc;
        if (first)
            r->names[i] = name;
        else if (strcmp(name, r->names[i]) != 0)
            return nana_err_set(NANA_ERR_INVALID,
                                "dqlite: a later batch of rows names column %zu differently",
                                i + 1);
    }
    return 0;
}

/* One row: its header of type nibbles, then its values. */
static int read_row(nana_dql_rows *r, dql_rd *rd)
{
    size_t head = dql_pad8((r->ncols + 1) / 2);
    if (head > rd->left)
        return nana_err_set(NANA_ERR_INVALID, "dqlite: the message ends inside a row header");
    const uint8_t *types = rd->p;
    rd->p += head;
    rd->left -= head;
    int rc = grow_values(r);
    if (rc) return rc;
    nana_dql_value *row = &r->values[r->nrows * r->ncols];
    for (size_t i = 0; i < r->ncols; i++) {
        int type = (i % 2 == 0) ? (types[i / 2] & 0x0f) : (types[i / 2] >> 4);
        rc = dql_rd_value(rd, type, &row[i]);
        if (rc) return rc;
    }
    r->nrows++;
    return 0;
}

/* The rows of one body up to and including its end marker. */
static int read_rows(nana_dql_rows *r, dql_rd *rd, int *done)
{
    for (;;) {
        if (rd->left >= 8) {
            uint64_t w = dql_le64(rd->p);
            if (w == NANA_DQL_ROWS_DONE || w == NANA_DQL_ROWS_PART) {
                if (rd->left != 8)
                    return nana_err_set(NANA_ERR_INVALID,
                                        "dqlite: %zu bytes after the end of the rows",
                                        rd->left - 8);
                *done = w == NANA_DQL_ROWS_DONE;
                return 0;
            }
        }
        if (rd->left == 0)
            return nana_err_set(NANA_ERR_INVALID, "dqlite: rows without an end marker");
        if (r->ncols == 0) return nana_err_set(NANA_ERR_INVALID, "dqlite: a row of no columns");
        int rc = read_row(r, rd);
        if (rc) return rc;
    }
}

int nana_dql_rows_feed(nana_dql_rows *r, uint8_t *body, size_t len, const nana_dql_limits *lim)
{
    size_t rows_before = r->nrows;
    int first = r->nbodies == 0;
    int rc = 0;
    int done = 0;
    if (r->done)
        rc = nana_err_set(NANA_ERR_INVALID, "dqlite: rows after the end of a result");
    else if (len % 8)
        rc = nana_err_set(NANA_ERR_INVALID, "dqlite: a body of %zu bytes, not whole words", len);
    else if (len > lim->result_max || r->kept > lim->result_max - len)
        rc = nana_err_set(NANA_ERR_TOOBIG, "dqlite: a result past %zu bytes", lim->result_max);
    if (rc) {
        free(body);
        return rc;
    }
    dql_rd rd = {body, len};
    rc = read_columns(r, &rd, lim, first);
    if (!rc) rc = read_rows(r, &rd, &done);
    if (!rc) rc = keep_body(r, body);
    if (rc) {
        r->nrows = rows_before;
        if (first) {
            free(r->names);
            r->names = NULL;
            r->ncols = 0;
        }
        free(body);
        return rc;
    }
    r->kept += len;
    r->done = done;
    return 0;
}
