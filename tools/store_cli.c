/*
 * store_cli.c - nanasqlite-store: the store on a local file, from a shell.
 *
 * One-shot:     nanasqlite-store [--db FILE] [--table T] COMMAND [ARGS...]
 * Interactive:  nanasqlite-store [--db FILE]   (commands read line by line)
 *
 * Results are JSON on stdout; errors go to stderr as "error: CODE: detail"
 * and make a one-shot run exit with status 1. This tool is how the README
 * runs the store before the network server exists, and how the
 * compatibility tests read and write files from outside the library.
 */
#include "store/nana_store.h"
#include "util/nana_json.h"
#include "util/nana_opt.h"
#include "util/nana_parse.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char about[] =
    "Opens FILE (default ./server_db.sqlite) as a NanaSQLite database and runs one\n"
    "COMMAND, or reads commands line by line from standard input when none is given.\n"
    "\n"
    "commands:\n"
    "  get KEY              value of KEY (error if absent)\n"
    "  set KEY JSON         store JSON under KEY\n"
    "  del KEY              delete KEY (error if absent)\n"
    "  has KEY              true or false\n"
    "  len | keys | values | items | dump\n"
    "  pop KEY [DEFAULT]    remove KEY and print its value\n"
    "  incr KEY [AMOUNT]    add AMOUNT (default 1) to a number\n"
    "  patch KEY JSON       merge a JSON object into the stored object\n"
    "  path KEY PATH        part of the value at a JSON path ($.a.b)\n"
    "  clear                delete every key of the table\n"
    "  tables               list the tables of the file\n"
    "  query WHERE [PARAMS] rows of the table matching WHERE (PARAMS: JSON array)\n"
    "  demo                 write a few sample keys and print them\n"
    "  help | quit\n";

static const char epilog[] =
    "Results are JSON on stdout; errors go to stderr as \"error: CODE: detail\".\n"
    "exit status: 0 success, 1 an error, 2 bad command line.\n";

/* The command line. */
typedef struct store_args {
    const char *path, *table;
    nana_store_opts so;
} store_args;

static int parse_cache(const nana_opt *row, const char *arg, void *field);

#define AT(member) NANA_OPT_AT(store_args, member)

static const char *const sync_words[] = {"normal", "full", NULL};
static const int sync_values[] = {NANA_SYNC_NORMAL, NANA_SYNC_FULL};

static const nana_opt rows[] = {
    {.name = "db",
     .kind = NANA_OPT_PATH,
     AT(path),
     .def = "server_db.sqlite",
     .help = "the database file"},
    {.name = "table",
     .kind = NANA_OPT_STRING,
     AT(table),
     .def_doc = "data",
     .arg = "NAME",
     .help = "NanaSQLite table"},
    {.name = "cache",
     .kind = NANA_OPT_CUSTOM,
     AT(so.cache),
     .parse = parse_cache,
     .def = "unbounded",
     .arg = "KIND",
     .help = "lru:N | ttl:SECONDS | none | unbounded"},
    {.name = "sync",
     .kind = NANA_OPT_ENUM,
     AT(so.sync),
     .words = sync_words,
     .values = sync_values,
     .def = "normal",
     .arg = "MODE",
     .help = "full: a committed write survives power loss"},
};

/* Prints an error for the last failed call; returns 1. */
static int report(int rc)
{
    fprintf(stderr, "error: %s: %s\n", nana_strerror(rc), nana_errmsg());
    return 1;
}

/* Prints a result value and releases it. */
static int print_val(nana_val *v)
{
    fwrite(v->data, 1, v->len, stdout);
    fputc('\n', stdout);
    fflush(stdout);
    nana_val_unref(v);
    return 0;
}

/* A key argument: a JSON string ("a b") when quoted, else the bare word. */
static int key_arg(const char *arg, char **key, size_t *klen)
{
    *key = NULL;
    if (arg[0] != '"') {
        *key = strdup(arg);
        *klen = strlen(arg);
        return *key ? 0 : NANA_ERR_NOMEM;
    }
    nana_json_doc *d;
    nana_json *v;
    int rc = nana_json_parse(arg, strlen(arg), 0, 1, &d, &v);
    if (rc) return rc;
    if (v->type != NANA_JSON_STRING) {
        nana_json_doc_free(d);
        return nana_err_set(NANA_ERR_INVALID, "a quoted key must be a JSON string");
    }
    *key = malloc(v->n + 1);
    if (*key) {
        memcpy(*key, v->u.str, v->n + 1);
        *klen = v->n;
    }
    nana_json_doc_free(d);
    return *key ? 0 : NANA_ERR_NOMEM;
}

/* Writes the demo keys and prints them back. */
static int demo(nana_table *t)
{
    static const char *const pairs[][2] = {
        {"hello", "\"world\""},
        {"user:1", "{\"name\": \"Nana\", \"tags\": [\"sqlite\", \"quic\"], \"visits\": 1}"},
        {"counter", "0"},
        {"キー", "\"値\""},
    };
    for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
        int rc = nana_kv_set(t, pairs[i][0], strlen(pairs[i][0]), pairs[i][1], strlen(pairs[i][1]));
        if (rc) return report(rc);
    }
    nana_val *v;
    int rc = nana_kv_increment(t, "counter", 7, "1", 1, NULL, 0, NULL, 0, &v);
    if (rc) return report(rc);
    nana_val_unref(v);
    rc = nana_kv_to_dict(t, &v);
    return rc ? report(rc) : print_val(v);
}

/*
 * Runs one command with its arguments. |argv[0]| is the command. Returns
 * 0 on success, 1 on a reported error, 2 on a usage error.
 */
static int run(nana_store *s, nana_table *t, int argc, char **argv)
{
    const char *cmd = argv[0];
    nana_val *v = NULL;
    int rc;
    char *key = NULL;
    size_t klen = 0;
    static const struct {
        const char *name;
        int min, max; /* argument counts after the command */
    } spec[] = {{"get", 1, 1},  {"set", 2, 2},   {"del", 1, 1},    {"has", 1, 1},
                {"len", 0, 0},  {"keys", 0, 0},  {"values", 0, 0}, {"items", 0, 0},
                {"dump", 0, 0}, {"pop", 1, 2},   {"incr", 1, 2},   {"patch", 2, 2},
                {"path", 2, 2}, {"clear", 0, 0}, {"tables", 0, 0}, {"query", 1, 2},
                {"demo", 0, 0}, {"help", 0, 0}};
    int found = -1;
    for (size_t i = 0; i < sizeof(spec) / sizeof(spec[0]); i++)
        if (strcmp(spec[i].name, cmd) == 0) found = (int)i;
    if (found < 0) {
        fprintf(stderr, "error: unknown command '%s' (try help)\n", cmd);
        return 2;
    }
    if (argc - 1 < spec[found].min || argc - 1 > spec[found].max) {
        fprintf(stderr, "error: wrong number of arguments for '%s' (try help)\n", cmd);
        return 2;
    }
    if (strcmp(cmd, "help") == 0) {
        fputs(about, stdout);
        return 0;
    }
    if (strcmp(cmd, "demo") == 0) return demo(t);
    if (argc > 1 && strcmp(cmd, "query") != 0 && (rc = key_arg(argv[1], &key, &klen)))
        return report(rc);

    if (strcmp(cmd, "get") == 0) {
        rc = nana_kv_get(t, key, klen, &v);
    } else if (strcmp(cmd, "set") == 0) {
        rc = nana_kv_set(t, key, klen, argv[2], strlen(argv[2]));
        if (!rc) v = nana_val_new("null", 4);
    } else if (strcmp(cmd, "del") == 0) {
        rc = nana_kv_delete(t, key, klen);
        if (!rc) v = nana_val_new("null", 4);
    } else if (strcmp(cmd, "has") == 0) {
        rc = nana_kv_contains(t, key, klen);
        if (rc >= 0) v = nana_val_new(rc ? "true" : "false", rc ? 4 : 5), rc = 0;
    } else if (strcmp(cmd, "len") == 0) {
        int64_t n;
        rc = nana_kv_len(t, &n);
        if (!rc) {
            char b[32];
            snprintf(b, sizeof(b), "%lld", (long long)n);
            v = nana_val_new(b, strlen(b));
        }
    } else if (strcmp(cmd, "keys") == 0) {
        rc = nana_kv_keys(t, &v);
    } else if (strcmp(cmd, "values") == 0) {
        rc = nana_kv_values(t, &v);
    } else if (strcmp(cmd, "items") == 0) {
        rc = nana_kv_items(t, &v);
    } else if (strcmp(cmd, "dump") == 0) {
        rc = nana_kv_to_dict(t, &v);
    } else if (strcmp(cmd, "pop") == 0) {
        const char *def = argc > 2 ? argv[2] : NULL;
        rc = nana_kv_pop(t, key, klen, def, def ? strlen(def) : 0, &v);
    } else if (strcmp(cmd, "incr") == 0) {
        const char *amount = argc > 2 ? argv[2] : "1";
        rc = nana_kv_increment(t, key, klen, amount, strlen(amount), NULL, 0, NULL, 0, &v);
    } else if (strcmp(cmd, "patch") == 0) {
        rc = nana_kv_patch(t, key, klen, argv[2], strlen(argv[2]), 1, &v);
    } else if (strcmp(cmd, "path") == 0) {
        rc = nana_kv_get_by_path(t, key, klen, argv[2], strlen(argv[2]), &v);
    } else if (strcmp(cmd, "clear") == 0) {
        rc = nana_kv_clear(t);
        if (!rc) v = nana_val_new("null", 4);
    } else if (strcmp(cmd, "tables") == 0) {
        rc = nana_sql_list_tables(s, &v);
    } else { /* query */
        nana_query q;
        nana_query_init(&q);
        q.table = nana_table_name(t);
        q.where = argv[1];
        q.params = argc > 2 ? argv[2] : NULL;
        rc = nana_sql_query(s, &q, &v);
    }
    free(key);
    if (rc) return report(rc);
    if (!v) return report(NANA_ERR_NOMEM);
    return print_val(v);
}

/* Splits an interactive line: command, key, and the rest as one argument
 * (so JSON with spaces needs no quoting). Returns the argument count. */
static int split_line(char *line, char **argv)
{
    int argc = 0;
    char *p = line;
    for (int i = 0; i < 2; i++) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p) return argc;
        argv[argc++] = p;
        if (*p == '"') { /* quoted key: up to the closing quote */
            p++;
            while (*p && *p != '"') {
                if (*p == '\\' && p[1]) p++;
                p++;
            }
            if (*p) p++;
        } else {
            while (*p && *p != ' ' && *p != '\t')
                p++;
        }
        if (!*p) return argc;
        *p++ = '\0';
    }
    while (*p == ' ' || *p == '\t')
        p++;
    if (!*p) return argc;
    argv[argc++] = p;
    /* "pop KEY DEFAULT", "incr KEY AMOUNT" and "query WHERE PARAMS" take the rest too. */
    return argc;
}

/*
 * The shell's query line: "query WHERE [PARAMS]". The WHERE clause may hold
 * spaces, so PARAMS is the trailing " [...]" when that parses as a JSON
 * array, and everything before it is the clause.
 */
static int shell_query(nana_store *s, nana_table *t, int argc, char **argv)
{
    char rest[8192];
    snprintf(rest, sizeof(rest), "%s%s%s", argv[1], argc > 2 ? " " : "", argc > 2 ? argv[2] : "");
    char *qa[3] = {argv[0], rest, NULL};
    for (char *lb = strrchr(rest, '['); lb && lb > rest; lb = NULL) {
        if (lb[-1] != ' ' || nana_json_validate(lb, strlen(lb), 0, 8) != 0) break;
        lb[-1] = '\0';
        qa[2] = lb;
    }
    return run(s, t, qa[2] ? 3 : 2, qa);
}

/* Reads commands from stdin until EOF or quit. Returns 0 if all succeeded. */
static int shell(nana_store *s, nana_table *t, const char *path)
{
    bool tty = isatty(STDIN_FILENO);
    if (tty)
        printf("nanasqlite-store on %s, table \"%s\". Type help for commands, quit to leave.\n",
               path, nana_table_name(t));
    char *line = NULL;
    size_t cap = 0;
    int status = 0;
    for (;;) {
        if (tty) {
            fputs("nana> ", stdout);
            fflush(stdout);
        }
        ssize_t n = getline(&line, &cap, stdin);
        if (n < 0) break;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        char *argv[3];
        int argc = split_line(line, argv);
        if (argc == 0 || argv[0][0] == '#') continue;
        if (strcmp(argv[0], "quit") == 0 || strcmp(argv[0], "exit") == 0) break;
        if (strcmp(argv[0], "query") == 0 && argc >= 2) {
            status |= shell_query(s, t, argc, argv);
            continue;
        }
        status |= run(s, t, argc, argv);
    }
    free(line);
    return status ? 1 : 0;
}

/* Reads --cache lru:N | ttl:SECONDS | none | unbounded into a nana_cache_opts. */
static int parse_cache(const nana_opt *row, const char *arg, void *field)
{
    (void)row;
    nana_cache_opts *c = field;
    nana_cache_opts v;
    memset(&v, 0, sizeof(v));
    uint64_t n = 0;
    if (strcmp(arg, "none") == 0) {
        v.kind = NANA_CACHE_NONE;
    } else if (strcmp(arg, "unbounded") == 0) {
        v.kind = NANA_CACHE_UNBOUNDED;
    } else if (strncmp(arg, "lru:", 4) == 0 && nana_parse_u64(arg + 4, 1, SIZE_MAX, &n) == 0) {
        v.kind = NANA_CACHE_LRU;
        v.size = (size_t)n;
    } else if (strncmp(arg, "ttl:", 4) == 0 &&
               nana_parse_double(arg + 4, 0.001, 1e9, &v.ttl_seconds) == 0) {
        v.kind = NANA_CACHE_TTL;
    } else {
        return nana_err_set(NANA_ERR_INVALID,
                            "\"%.64s\" is not lru:N (N >= 1), ttl:SECONDS (0.001..1e9), none or "
                            "unbounded",
                            arg);
    }
    *c = v;
    return 0;
}

int main(int argc, char **argv)
{
    store_args a;
    memset(&a, 0, sizeof(a));
    nana_store_opts_init(&a.so);
    nana_opt_table table = {rows, sizeof(rows) / sizeof(rows[0]), &a};
    nana_opt_prog prog = {.name = "nanasqlite-store",
                          .usage = "[options] [COMMAND [ARGS...]]",
                          .about = about,
                          .epilog = epilog,
                          .tables = &table,
                          .ntables = 1,
                          .positional = 1};
    int i;
    int status = nana_opt_report(&prog, nana_opt_parse(&prog, argc, argv, &i));
    if (status >= 0) return status;
    const char *path = a.path, *table_name = a.table;
    nana_store_opts o = a.so;
    o.readers = 2;
    nana_store *s;
    int rc = nana_store_open(path, &o, &s);
    if (rc) {
        fprintf(stderr, "error: cannot open %s: %s: %s\n", path, nana_strerror(rc), nana_errmsg());
        return 1;
    }
    nana_table *t = nana_store_default_table(s);
    if (table_name && (rc = nana_store_table(s, table_name, NULL, &t))) {
        report(rc);
        nana_store_close(s);
        return 1;
    }
    status = i < argc ? run(s, t, argc - i, argv + i) : shell(s, t, path);
    nana_store_close(s);
    return status;
}
