/*
 * cli_aql.c - `nanasqlite-cli aql SUBCOMMAND ...`: AQL queries on the
 * server's gRPC door (the library's nana_client_aql_* calls), one JSON
 * document per command on stdout.
 *
 *   aql get KEY                 aql set KEY VALUE        aql delete KEY
 *   aql range START END         aql filter [PREDICATE]   aql update
 *   aql batch [QUERY-JSON ...]  (else JSON lines from standard input)
 *
 * Options go anywhere after the subcommand (`--` ends them): the
 * collection, limit and offset, the predicate (--where), an update's
 * changes (--set/--add/--mul FIELD=JSON, repeatable), --stream (range and
 * filter read through the stream iterator and print rows as they come),
 * --base64 (VALUE is base64 bytes) and --raw-values (every value as
 * {"$bytes": ...}). Answers print as nana_client_aql_answer_json writes
 * them; a query the server refuses (EQUERY) is an error line on stderr
 * with exit status 1, as any other server error.
 */
#include "cli_aql.h"

#include "grpc/nana_grpc.h"
#include "util/nana_buf.h"
#include "util/nana_err.h"
#include "util/nana_json.h"
#include "util/nana_opt.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { EXIT_SERVER = 1, EXIT_USAGE = 2, EXIT_CONNECT = 3 };

#define MAX_CHANGES    NANA_AQL_MAX_UPDATES
#define LINE_MAX_BYTES (1u << 20) /* one batch line */

/* An update's changes as the command line gives them. */
typedef struct changes {
    nana_aql_update u[MAX_CHANGES];
    char *text[MAX_CHANGES]; /* the FIELD=JSON copies the fields point into */
    size_t n;
} changes;

typedef struct aql_args {
    const char *collection, *where;
    uint64_t limit, offset;
    bool has_limit, has_offset; /* set by their readers */
    bool stream, base64, raw;
    changes ch;
} aql_args;

/* --set/--add/--mul FIELD=JSON: one change, collected (repeatable). */
static int add_change(int op, const char *text, changes *ch)
{
    if (ch->n >= MAX_CHANGES)
        return nana_err_set(NANA_ERR_INVALID, "more than %d changes", MAX_CHANGES);
    const char *eq = strchr(text, '=');
    if (!eq || eq == text)
        return nana_err_set(NANA_ERR_INVALID, "\"%.60s\" is not FIELD=JSON", text);
    if (nana_json_validate(eq + 1, strlen(eq + 1), 0, NANA_JSON_DEFAULT_MAX_DEPTH))
        return nana_err_set(NANA_ERR_INVALID, "the value after '=' is not JSON (%s)",
                            nana_errmsg());
    char *copy = strdup(text);
    if (!copy) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    copy[eq - text] = '\0';
    ch->text[ch->n] = copy;
    ch->u[ch->n] = (nana_aql_update){.op = op, .field = copy, .value_json = copy + (eq - text) + 1};
    ch->n++;
    return 0;
}

static int read_set(const nana_opt *row, const char *text, void *field)
{
    (void)row;
    return add_change(NANA_AQL_UPDATE_SET, text, field);
}

static int read_add(const nana_opt *row, const char *text, void *field)
{
    (void)row;
    return add_change(NANA_AQL_UPDATE_ADD, text, field);
}

static int read_mul(const nana_opt *row, const char *text, void *field)
{
    (void)row;
    return add_change(NANA_AQL_UPDATE_MUL, text, field);
}

/* A count up to 2^32-1 from |text|. */
static int read_u32(const char *text, uint64_t *out)
{
    char *end = NULL;
    if (!*text || *text == '-' || *text == '+')
        return nana_err_set(NANA_ERR_INVALID, "\"%.30s\" is not a number (0..4294967295)", text);
    unsigned long long v = strtoull(text, &end, 10);
    if (*end || v > UINT32_MAX)
        return nana_err_set(NANA_ERR_INVALID, "\"%.30s\" is not a number (0..4294967295)", text);
    *out = v;
    return 0;
}

/* --limit N: the field is aql_args.limit; has_limit says it was given. */
static int read_limit(const nana_opt *row, const char *text, void *field)
{
    (void)row;
    aql_args *a = (aql_args *)(void *)((char *)field - offsetof(aql_args, limit));
    int rc = read_u32(text, &a->limit);
    if (!rc) a->has_limit = true;
    return rc;
}

/* --offset N, as --limit. */
static int read_offset(const nana_opt *row, const char *text, void *field)
{
    (void)row;
    aql_args *a = (aql_args *)(void *)((char *)field - offsetof(aql_args, offset));
    int rc = read_u32(text, &a->offset);
    if (!rc) a->has_offset = true;
    return rc;
}

#define AT(member) NANA_OPT_AT(aql_args, member)

static const nana_opt aql_rows[] = {
    {.name = "collection",
     .kind = NANA_OPT_STRING,
     AT(collection),
     .def = "data",
     .group = "aql options",
     .arg = "NAME",
     .help = "the collection (a NanaSQLite table)"},
    {.name = "limit",
     .kind = NANA_OPT_CUSTOM,
     AT(limit),
     .parse = read_limit,
     .def_doc = "none",
     .group = "aql options",
     .arg = "N",
     .help = "range, filter: at most N rows"},
    {.name = "offset",
     .kind = NANA_OPT_CUSTOM,
     AT(offset),
     .parse = read_offset,
     .def_doc = "none",
     .group = "aql options",
     .arg = "N",
     .help = "filter: skip the first N matching rows"},
    {.name = "where",
     .kind = NANA_OPT_STRING,
     AT(where),
     .group = "aql options",
     .arg = "PREDICATE",
     .help = "filter, update: which values ('age >= 30 and city = \"Tokyo\"')"},
    {.name = "set",
     .kind = NANA_OPT_CUSTOM,
     AT(ch),
     .parse = read_set,
     .group = "aql options",
     .arg = "FIELD=JSON",
     .help = "update: set FIELD to the JSON value (repeatable)"},
    {.name = "add",
     .kind = NANA_OPT_CUSTOM,
     AT(ch),
     .parse = read_add,
     .group = "aql options",
     .arg = "FIELD=NUMBER",
     .help = "update: add to FIELD (a missing field counts as 0; repeatable)"},
    {.name = "mul",
     .kind = NANA_OPT_CUSTOM,
     AT(ch),
     .parse = read_mul,
     .group = "aql options",
     .arg = "FIELD=NUMBER",
     .help = "update: multiply FIELD (repeatable)"},
    {.name = "stream",
     .kind = NANA_OPT_FLAG,
     AT(stream),
     .group = "aql options",
     .help = "range, filter: read the answer as a stream (ExecuteStream), rows printed as "
             "they come"},
    {.name = "base64",
     .kind = NANA_OPT_FLAG,
     AT(base64),
     .group = "aql options",
     .help = "set: VALUE is base64 of the bytes to store"},
    {.name = "raw-values",
     .kind = NANA_OPT_FLAG,
     AT(raw),
     .group = "aql options",
     .help = "print every value as {\"$bytes\": base64}, also JSON ones"},
};

#define NROWS (sizeof(aql_rows) / sizeof(aql_rows[0]))

static const char aql_about[] =
    "AQL queries on the server's gRPC door (amaters.aql.AqlService over HTTP/3; the\n"
    "connection flags and --db of nanasqlite-cli apply). One JSON document per command.\n"
    "\n"
    "subcommands:\n"
    "  get KEY                     {\"value\": V} or {\"value\": null, \"found\": false}\n"
    "  set KEY VALUE               store VALUE (its bytes; JSON text is stored as JSON)\n"
    "  delete KEY                  {\"affected\": 1} or 0 when KEY did not exist\n"
    "  range START END             keys from START up to END (END excluded)\n"
    "  filter [PREDICATE]          values matching PREDICATE (or --where)\n"
    "  update                      --where PREDICATE and --set/--add/--mul changes\n"
    "  batch [QUERY ...]           one query per JSON argument, else per line of stdin\n"
    "\n"
    "A value V prints as itself when it is JSON text, else as {\"$bytes\": base64}.\n"
    "Predicates: comparisons PATH OP VALUE (OP = != > < >= <=; PATH like age,\n"
    "address.city, tags[0]; VALUE a JSON number, \"string\", true, false or null)\n"
    "joined by and, or, not and parentheses.\n"
    "Batch queries: {\"op\": \"get\"|\"set\"|\"delete\"|\"range\"|\"filter\"|\"update\", ...}\n"
    "with key, value (any JSON) or value_base64, start, end, limit, offset, where,\n"
    "set/add/mul ({field: JSON}) and collection, as the options above.\n";

/* Prints a failed call's error line; returns its exit status. */
static int report(const nana_result *r)
{
    const char *type = r->error_type ? r->error_type : nana_client_status_name(r->status);
    fprintf(stderr, "error: %s: %s", type, r->message ? r->message : "(no message)");
    if (r->code) fprintf(stderr, " (code: %s)", r->code);
    fputc('\n', stderr);
    if (r->status == NANA_CLIENT_ESERVER || r->status == NANA_CLIENT_EQUERY) return EXIT_SERVER;
    if (r->status == NANA_CLIENT_EINVALID) return EXIT_USAGE;
    return EXIT_CONNECT;
}

__attribute__((format(printf, 2, 3))) static int usage_error(int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("error: UsageError: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return status;
}

/* The bytes of a base64 argument (*out malloc'd). */
static int decode_b64(const char *s, uint8_t **out, size_t *n)
{
    size_t len = strlen(s);
    *out = malloc(len / 4 * 3 + 3);
    if (!*out) return usage_error(EXIT_USAGE, "%s", "out of memory");
    if (nana_grpc_b64_decode(s, len, *out, n)) {
        free(*out);
        *out = NULL;
        return usage_error(EXIT_USAGE, "%s", "the value is not base64");
    }
    return 0;
}

/* Runs a built query |q| (freed here) and prints its answer. */
static int run_query(cli_aql_ctx *x, const aql_args *a, uint8_t *q, size_t qlen)
{
    nana_result r = {0};
    uint8_t *req = NULL, *resp = NULL;
    size_t rlen = 0, resplen = 0;
    int st = nana_client_aql_request(q, qlen, 0, &req, &rlen, &r);
    nana_client_aql_free(q);
    if (!st) st = nana_client_aql_execute(x->client, req, rlen, &x->co, &resp, &resplen, &r);
    nana_client_aql_free(req);
    int rc;
    if (st == NANA_CLIENT_OK) {
        char *json = NULL;
        size_t jl = 0;
        nana_result_free(&r);
        st = nana_client_aql_answer_json(resp, resplen, 0, a->raw, &json, &jl, &r);
        rc = st ? report(&r) : x->print(x->compact, json, jl);
        nana_client_aql_free(json);
    } else {
        rc = report(&r);
    }
    nana_client_aql_free(resp);
    nana_result_free(&r);
    return rc;
}

/* Streams query |q| (freed here): {"rows": [...], "count": N} written as it comes. */
static int stream_query(cli_aql_ctx *x, const aql_args *a, uint8_t *q, size_t qlen)
{
    nana_result r = {0};
    uint8_t *req = NULL;
    size_t rlen = 0;
    nana_aql_stream *it = NULL;
    int st = nana_client_aql_request(q, qlen, 0, &req, &rlen, &r);
    nana_client_aql_free(q);
    if (!st) st = nana_client_aql_stream_open(x->client, req, rlen, &x->co, &it, &r);
    nana_client_aql_free(req);
    if (st) {
        int rc = report(&r);
        nana_result_free(&r);
        return rc;
    }
    const char *sep = x->compact ? "," : ", ";
    fputs(x->compact ? "{\"rows\":[" : "{\"rows\": [", stdout);
    size_t n = 0;
    int got, rc = 0;
    const uint8_t *k, *v;
    size_t kl, vl;
    while ((got = nana_client_aql_stream_next(it, &k, &kl, &v, &vl, &r)) == 1) {
        char *json = NULL;
        size_t jl = 0;
        nana_result e = {0};
        if (nana_client_aql_row_json(k, kl, v, vl, a->raw, &json, &jl, &e)) {
            rc = report(&e);
            nana_result_free(&e);
            break;
        }
        if (n++) fputs(sep, stdout);
        rc = x->print_inline(x->compact, json, jl);
        nana_client_aql_free(json);
        if (rc) break;
    }
    if (!rc && got < 0) {
        fputs("]}\n", stdout); /* the document stays whole; the error follows on stderr */
        fflush(stdout);
        rc = report(&r);
    } else if (!rc) {
        printf(x->compact ? "],\"count\":%zu}\n" : "], \"count\": %zu}\n", n);
        if (fflush(stdout) || ferror(stdout)) rc = EXIT_SERVER;
    }
    nana_client_aql_stream_close(it);
    nana_result_free(&r);
    return rc;
}

/* ---- batch lines -------------------------------------------------------------- */

/* A string member of |o| (NULL when absent); *bad when present and not a string. */
static const char *str_member(const nana_json *o, const char *name, bool *bad)
{
    const nana_json *v = nana_json_object_get(o, name, strlen(name));
    if (!v) return NULL;
    if (v->type != NANA_JSON_STRING) {
        *bad = true;
        return NULL;
    }
    return v->u.str;
}

/* A count member (-1 when absent); *bad when not a whole number 0..2^32-1. */
static int64_t count_member(const nana_json *o, const char *name, bool *bad)
{
    const nana_json *v = nana_json_object_get(o, name, strlen(name));
    int64_t n = -1;
    if (!v) return -1;
    if (v->type != NANA_JSON_NUMBER || nana_json_number_int64(v, &n) || n < 0 || n > UINT32_MAX)
        *bad = true;
    return n;
}

/* The changes of an update line: its "set", "add" and "mul" objects. */
static int line_changes(const nana_json *o, changes *ch, nana_buf *texts)
{
    static const char *const ops[] = {"set", "add", "mul"};
    for (int k = 0; k < 3; k++) {
        const nana_json *m = nana_json_object_get(o, ops[k], 3);
        if (!m) continue;
        if (m->type != NANA_JSON_OBJECT) return -1;
        for (uint32_t i = 0; i < m->n; i++) {
            if (ch->n >= MAX_CHANGES) return -1;
            nana_buf *t = &texts[ch->n];
            nana_buf_init(t, 0);
            if (nana_json_write(t, m->u.members[i].val) || nana_buf_putc(t, '\0')) return -1;
            ch->u[ch->n++] =
                (nana_aql_update){.op = k + 1, .field = m->u.members[i].key, .value_json = t->data};
        }
    }
    return 0;
}

/*
 * One batch line (a JSON object) into a serialized Query (*q, the
 * caller's). Returns 0, or EXIT_USAGE with the error printed (|lineno|
 * names it).
 */
static int line_query(const aql_args *a, const char *line, size_t len, size_t lineno, uint8_t **q,
                      size_t *qlen)
{
    nana_json_doc *doc = NULL;
    nana_json *o = NULL;
    if (nana_json_parse(line, len, 0, NANA_JSON_DEFAULT_MAX_DEPTH, &doc, &o) ||
        o->type != NANA_JSON_OBJECT) {
        nana_json_doc_free(doc);
        return usage_error(EXIT_USAGE, "query %zu is not a JSON object", lineno);
    }
    bool bad = false;
    const char *op = str_member(o, "op", &bad);
    const char *coll = str_member(o, "collection", &bad);
    if (!coll) coll = a->collection;
    const char *key = str_member(o, "key", &bad);
    const char *where = str_member(o, "where", &bad);
    const char *start = str_member(o, "start", &bad);
    const char *end = str_member(o, "end", &bad);
    const char *vb64 = str_member(o, "value_base64", &bad);
    int64_t limit = count_member(o, "limit", &bad), offset = count_member(o, "offset", &bad);
    const nana_json *value = nana_json_object_get(o, "value", 5);
    nana_result r = {0};
    int st = -1;
    changes ch = {.n = 0};
    nana_buf texts[MAX_CHANGES];
    nana_buf vtext;
    nana_buf_init(&vtext, 0);
    uint8_t *bytes = NULL;
    size_t blen = 0;
    if (bad || !op) {
        st = -1;
    } else if (!strcmp(op, "get") && key) {
        st = nana_client_aql_build_get(coll, (const uint8_t *)key, strlen(key), q, qlen, &r);
    } else if (!strcmp(op, "delete") && key) {
        st = nana_client_aql_build_delete(coll, (const uint8_t *)key, strlen(key), q, qlen, &r);
    } else if (!strcmp(op, "set") && key && (value || vb64)) {
        if (vb64) {
            if (decode_b64(vb64, &bytes, &blen)) {
                nana_json_doc_free(doc);
                return EXIT_USAGE;
            }
        } else if (nana_json_write(&vtext, value)) {
            st = -1;
            goto out;
        } else {
            bytes = (uint8_t *)vtext.data;
            blen = vtext.len;
        }
        st = nana_client_aql_build_set(coll, (const uint8_t *)key, strlen(key), bytes, blen, q,
                                       qlen, &r);
        if (vb64) free(bytes);
    } else if (!strcmp(op, "range") && start && end) {
        st = nana_client_aql_build_range(coll, (const uint8_t *)start, strlen(start),
                                         (const uint8_t *)end, strlen(end), limit, q, qlen, &r);
    } else if (!strcmp(op, "filter") && where) {
        st = nana_client_aql_build_filter(coll, where, NULL, 0, limit, offset, q, qlen, &r);
    } else if (!strcmp(op, "update") && where) {
        if (line_changes(o, &ch, texts) == 0)
            st = nana_client_aql_build_update(coll, where, NULL, 0, ch.u, ch.n, q, qlen, &r);
        for (size_t i = 0; i < ch.n; i++)
            nana_buf_free(&texts[i]);
    }
out:
    nana_buf_free(&vtext);
    nana_json_doc_free(doc);
    if (st < 0) {
        nana_result_free(&r);
        return usage_error(EXIT_USAGE,
                           "query %zu: needs \"op\" (get, set, delete, range, filter, update) and "
                           "its members (key, value, start, end, where, set/add/mul) of the "
                           "right types",
                           lineno);
    }
    if (st) {
        fprintf(stderr, "error: ValueError: query %zu: %s\n", lineno, r.message);
        nana_result_free(&r);
        return EXIT_USAGE;
    }
    return 0;
}

/* Reads one line of |in| into |b| (without its newline); 1 got one, 0 at the end, -1 too long. */
static int read_line(FILE *in, nana_buf *b)
{
    nana_buf_reset(b);
    int ch;
    bool any = false;
    while ((ch = fgetc(in)) != EOF) {
        any = true;
        if (ch == '\n') break;
        if (b->len >= LINE_MAX_BYTES) return -1;
        if (nana_buf_putc(b, (char)ch)) return -1;
    }
    return any ? 1 : 0;
}

static bool blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') return false;
    return true;
}

/* aql batch: queries from |args| (or stdin's lines), one ExecuteBatch. */
static int run_batch(cli_aql_ctx *x, const aql_args *a, int argc, char **argv)
{
    uint8_t *qs[NANA_AQL_MAX_BATCH] = {0};
    size_t lens[NANA_AQL_MAX_BATCH] = {0};
    size_t n = 0;
    int rc = 0;
    nana_buf line;
    nana_buf_init(&line, 0);
    if (argc > 0) {
        for (int i = 0; i < argc && !rc; i++) {
            if (n >= NANA_AQL_MAX_BATCH) {
                rc = usage_error(EXIT_USAGE, "more than %d queries", NANA_AQL_MAX_BATCH);
                break;
            }
            rc = line_query(a, argv[i], strlen(argv[i]), (size_t)i + 1, &qs[n], &lens[n]);
            if (!rc) n++;
        }
    } else {
        size_t lineno = 0;
        int got;
        while (!rc && (got = read_line(stdin, &line)) != 0) {
            lineno++;
            if (got < 0) {
                rc = usage_error(EXIT_USAGE, "line %zu is longer than %u bytes", lineno,
                                 LINE_MAX_BYTES);
                break;
            }
            if (blank(line.data ? line.data : "", line.len)) continue;
            if (n >= NANA_AQL_MAX_BATCH) {
                rc = usage_error(EXIT_USAGE, "more than %d queries", NANA_AQL_MAX_BATCH);
                break;
            }
            rc = line_query(a, line.data, line.len, lineno, &qs[n], &lens[n]);
            if (!rc) n++;
        }
    }
    nana_buf_free(&line);
    if (!rc && !n) rc = usage_error(EXIT_USAGE, "%s", "a batch needs at least one query");
    if (!rc) {
        nana_result r = {0};
        uint8_t *resp = NULL;
        size_t rlen = 0;
        int st = nana_client_aql_batch(x->client, (const uint8_t *const *)qs, lens, n, &x->co,
                                       &resp, &rlen, &r);
        if (st == NANA_CLIENT_OK) {
            char *json = NULL;
            size_t jl = 0;
            nana_result_free(&r);
            st = nana_client_aql_answer_json(resp, rlen, 1, a->raw, &json, &jl, &r);
            rc = st ? report(&r) : x->print(x->compact, json, jl);
            nana_client_aql_free(json);
        } else {
            rc = report(&r);
        }
        nana_client_aql_free(resp);
        nana_result_free(&r);
    }
    for (size_t i = 0; i < n; i++)
        nana_client_aql_free(qs[i]);
    return rc;
}

/* ---- the subcommands ------------------------------------------------------------ */

static nana_opt_table aql_table(aql_args *a)
{
    return (nana_opt_table){aql_rows, NROWS, a};
}

/*
 * Splits the arguments after the subcommand into options (moved to the
 * front of |opts|, in order) and positional ones (|pos|), so options may
 * follow them. "--" ends the options. Returns the number of options'
 * words.
 */
static int split_args(int argc, char **argv, char **opts, char **pos, int *npos)
{
    int no = 0;
    *npos = 0;
    bool done = false;
    for (int i = 0; i < argc; i++) {
        if (done || strncmp(argv[i], "--", 2) != 0 || argv[i][2] == '\0') {
            if (!done && !strcmp(argv[i], "--")) {
                done = true;
                continue;
            }
            pos[(*npos)++] = argv[i];
            continue;
        }
        opts[no++] = argv[i];
        const char *name = argv[i] + 2;
        const nana_opt *row = NULL;
        for (size_t k = 0; k < NROWS; k++)
            if (strncmp(name, aql_rows[k].name, strlen(aql_rows[k].name)) == 0 &&
                name[strlen(aql_rows[k].name)] == '\0')
                row = &aql_rows[k];
        if (row && row->kind != NANA_OPT_FLAG && i + 1 < argc) opts[no++] = argv[++i];
    }
    return no;
}

void cli_aql_help(FILE *out)
{
    aql_args a = {0};
    nana_opt_table t = aql_table(&a);
    nana_opt_prog p = {.name = "nanasqlite-cli [options] aql",
                       .usage = "SUBCOMMAND [aql options] [ARGS...]",
                       .about = aql_about,
                       .tables = &t,
                       .ntables = 1,
                       .positional = 1};
    nana_opt_help(&p, out);
}

int cli_aql_run(cli_aql_ctx *x, int argc, char **argv)
{
    if (argc < 1) {
        cli_aql_help(stderr);
        return EXIT_USAGE;
    }
    if (!strcmp(argv[0], "help")) {
        cli_aql_help(stdout);
        return 0;
    }
    char **opts = calloc((size_t)argc + 2, sizeof(char *));
    char **pos = calloc((size_t)argc + 1, sizeof(char *));
    if (!opts || !pos) {
        free(opts);
        free(pos);
        return usage_error(EXIT_USAGE, "%s", "out of memory");
    }
    int npos = 0;
    opts[0] = (char *)(uintptr_t) "aql";
    int no = split_args(argc, argv, opts + 1, pos, &npos);
    char **pos_all = pos;
    const char *sub = npos ? pos[0] : NULL; /* options may come before it too */
    if (npos) {
        pos++;
        npos--;
    }
    aql_args a = {0};
    nana_opt_table t = aql_table(&a);
    nana_opt_prog p = {.name = "nanasqlite-cli aql",
                       .usage = "SUBCOMMAND [aql options] [ARGS...]",
                       .about = aql_about,
                       .tables = &t,
                       .ntables = 1,
                       .positional = 0};
    int first = 0;
    int rc = nana_opt_parse(&p, no + 1, opts, &first);
    free(opts);
    if (rc == NANA_OPT_DONE) {
        free(pos_all);
        return 0;
    }
    if (!rc && !sub) {
        rc = usage_error(EXIT_USAGE, "%s", "aql needs a subcommand (see aql --help)");
        goto done;
    }
    if (rc) {
        rc = usage_error(EXIT_USAGE, "%s (see aql --help)", nana_errmsg());
        goto done;
    }
    int64_t limit = a.has_limit ? (int64_t)a.limit : -1;
    int64_t offset = a.has_offset ? (int64_t)a.offset : -1;
    struct {
        const char *name;
        int min, max;
        const char *syn;
    } subs[] = {{"get", 1, 1, "get KEY"},
                {"set", 2, 2, "set KEY VALUE"},
                {"delete", 1, 1, "delete KEY"},
                {"range", 2, 2, "range START END"},
                {"filter", 0, 1, "filter [PREDICATE]"},
                {"update", 0, 0, "update --where P --set F=J"},
                {"batch", 0, NANA_AQL_MAX_BATCH, "batch [QUERY-JSON ...]"}};
    int which = -1;
    for (int i = 0; i < (int)(sizeof(subs) / sizeof(subs[0])); i++)
        if (!strcmp(sub, subs[i].name)) which = i;
    if (which < 0) {
        rc = usage_error(EXIT_USAGE, "unknown aql subcommand '%s' (see aql --help)", sub);
        goto done;
    }
    if (npos < subs[which].min || npos > subs[which].max) {
        rc = usage_error(EXIT_USAGE, "usage: aql %s", subs[which].syn);
        goto done;
    }
    if (a.stream && which != 3 && which != 4) {
        rc = usage_error(EXIT_USAGE, "%s", "--stream is for range and filter");
        goto done;
    }
    if (a.ch.n && which != 5) {
        rc = usage_error(EXIT_USAGE, "%s", "--set, --add and --mul are for update");
        goto done;
    }
    const char *where = a.where;
    if (which == 4 && npos == 1) {
        if (where) {
            rc = usage_error(EXIT_USAGE, "%s",
                             "give the predicate once: as --where or as PREDICATE");
            goto done;
        }
        where = pos[0];
    }
    if ((which == 4 || which == 5) && !where) {
        rc = usage_error(EXIT_USAGE, "aql %s needs a predicate (--where)", sub);
        goto done;
    }
    if (which == 5 && !a.ch.n) {
        rc = usage_error(EXIT_USAGE, "%s", "aql update needs changes (--set, --add, --mul)");
        goto done;
    }
    if ((rc = x->connect(x))) goto done;
    if (which == 6) {
        rc = run_batch(x, &a, npos, pos);
        goto done;
    }
    uint8_t *q = NULL, *bytes = NULL;
    size_t qlen = 0, blen = 0;
    nana_result r = {0};
    int st = 0;
    const char *coll = a.collection;
    const uint8_t *k0 = npos > 0 ? (const uint8_t *)pos[0] : NULL;
    size_t k0l = npos > 0 ? strlen(pos[0]) : 0;
    switch (which) {
    case 0:
        st = nana_client_aql_build_get(coll, k0, k0l, &q, &qlen, &r);
        break;
    case 1:
        if (a.base64) {
            if ((rc = decode_b64(pos[1], &bytes, &blen))) goto done;
        } else {
            bytes = (uint8_t *)pos[1];
            blen = strlen(pos[1]);
        }
        st = nana_client_aql_build_set(coll, k0, k0l, bytes, blen, &q, &qlen, &r);
        if (a.base64) free(bytes);
        break;
    case 2:
        st = nana_client_aql_build_delete(coll, k0, k0l, &q, &qlen, &r);
        break;
    case 3:
        st = nana_client_aql_build_range(coll, k0, k0l, (const uint8_t *)pos[1], strlen(pos[1]),
                                         limit, &q, &qlen, &r);
        break;
    case 4:
        st = nana_client_aql_build_filter(coll, where, NULL, 0, limit, offset, &q, &qlen, &r);
        break;
    default:
        st = nana_client_aql_build_update(coll, where, NULL, 0, a.ch.u, a.ch.n, &q, &qlen, &r);
        break;
    }
    if (st) {
        rc = report(&r);
        nana_result_free(&r);
        goto done;
    }
    rc = a.stream ? stream_query(x, &a, q, qlen) : run_query(x, &a, q, qlen);
done:
    for (size_t i = 0; i < a.ch.n; i++)
        free(a.ch.text[i]);
    free(pos_all);
    return rc;
}
