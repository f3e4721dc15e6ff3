/*
 * fuzz_dqlite.c - libFuzzer harness for the dqlite response decoder
 * (src/dqlite/proto.c and rows.c), which reads bytes a server sent.
 *
 * The input is a stream of messages as they arrive on a connection: each an
 * 8-byte header (body words, type, schema) and its body, decoded as the
 * client decodes them. ROWS bodies accumulate into one result until DONE
 * or an error; every other type goes through nana_dql_response_decode. A
 * header past the body limit (small here, so the limit is reached) or a
 * body shorter than its header says ends the stream, as it ends a
 * connection. Each body is an exact-size copy, so ASan sees any read past
 * its end.
 *
 * Checks on what decodes: every text ends with a NUL at its length inside
 * the body it points into, every blob lies inside a body, a node list is no
 * longer than the body could hold, the values a result holds fit the bytes
 * it keeps, and the result never keeps more than its limit.
 */
#include "dqlite/nana_dqlite.h"
#include "fuzz_check.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_rows(const nana_dql_rows *r, const size_t *lens)
{
    CHECK(r->nrows == 0 || r->ncols > 0);
    CHECK(r->nrows * r->ncols * 8 <= r->kept);
    for (size_t i = 0; i < r->ncols; i++) {
        const char *nm = r->names[i];
        const uint8_t *b0 = r->bodies[0];
        CHECK((const uint8_t *)nm >= b0 && (const uint8_t *)nm + strlen(nm) < b0 + lens[0]);
    }
    for (size_t k = 0; k < r->nrows * r->ncols; k++) {
        const nana_dql_value *v = &r->values[k];
        if (v->type != NANA_DQL_TEXT && v->type != NANA_DQL_ISO8601 && v->type != NANA_DQL_BLOB)
            continue;
        int found = 0;
        for (size_t j = 0; j < r->nbodies && !found; j++) {
            const uint8_t *b = r->bodies[j];
            const uint8_t *p = (const uint8_t *)v->p;
            size_t need = v->len + (v->type == NANA_DQL_BLOB ? 0 : 1);
            if (p >= b && p <= b + lens[j] && need <= (size_t)(b + lens[j] - p)) found = 1;
        }
        CHECK(found);
        if (v->type != NANA_DQL_BLOB) CHECK(v->p[v->len] == 0 && strlen(v->p) == v->len);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    nana_dql_limits lim;
    nana_dql_limits_default(&lim);
    lim.body_max = 4096;
    lim.columns_max = 64;
    lim.result_max = 8192;
    nana_dql_rows rows;
    nana_dql_rows_init(&rows);
    size_t lens[64];
    size_t nlens = 0;
    while (size >= 8) {
        nana_dql_header h;
        if (nana_dql_header_decode(data, &lim, &h) != 0) break;
        size_t len = (size_t)h.words * 8;
        data += 8;
        size -= 8;
        if (len > size) break;
        uint8_t *body = malloc(len ? len : 1);
        if (!body) break;
        if (len) memcpy(body, data, len);
        data += len;
        size -= len;
        if (h.type == NANA_DQL_RESP_ROWS) {
            if (rows.done || nlens == 64) {
                nana_dql_rows_free(&rows);
                nana_dql_rows_init(&rows);
                nlens = 0;
            }
            size_t before = rows.nbodies;
            int rc = nana_dql_rows_feed(&rows, body, len, &lim); /* takes body */
            CHECK(rc == 0 || rc == NANA_ERR_INVALID || rc == NANA_ERR_TOOBIG ||
                  rc == NANA_ERR_NOMEM);
            if (rc == 0) {
                CHECK(rows.nbodies == before + 1);
                lens[nlens++] = len;
                CHECK(rows.kept <= lim.result_max);
                check_rows(&rows, lens);
            } else {
                CHECK(rows.nbodies == before);
            }
            continue;
        }
        nana_dql_response r;
        int rc = nana_dql_response_decode(h.type, body, len, &r);
        CHECK(rc == 0 || rc == NANA_ERR_INVALID || rc == NANA_ERR_INTERNAL || rc == NANA_ERR_NOMEM);
        if (rc == 0) {
            CHECK(r.nnodes * 24 <= len);
            for (size_t i = 0; i < r.nnodes; i++) {
                const uint8_t *a = (const uint8_t *)r.nodes[i].address;
                CHECK(a >= body && a + strlen(r.nodes[i].address) < body + len);
                CHECK(r.nodes[i].role <= NANA_DQL_SPARE);
            }
            if (h.type == NANA_DQL_RESP_FAILURE) {
                const uint8_t *m = (const uint8_t *)r.message;
                CHECK(m >= body && m + strlen(r.message) < body + len);
            }
        } else {
            CHECK(r.nodes == NULL);
        }
        nana_dql_response_free(&r);
        free(body);
    }
    nana_dql_rows_free(&rows);
    return 0;
}
