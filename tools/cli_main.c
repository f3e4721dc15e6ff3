/*
 * cli_main.c - nanasqlite-cli: a NanaSQLite server from the shell.
 *
 * One-shot:     nanasqlite-cli [flags] get KEY      (one call, then exit)
 * Interactive:  nanasqlite-cli [flags]              (a shell, one command per line)
 *
 * Both forms share one command table and one path: a command and its
 * arguments become a method name, a JSON argument array and an optional
 * JSON keyword object, checked here before anything is sent (so a typo in
 * JSON never reaches the server), then one blocking nana_client_call. The
 * result is one line of JSON on stdout; an error is one line on stderr,
 * "error: <ErrorType>: <message>", and the exit status says whose fault it
 * was: 1 the server refused the call, 2 the command line was wrong,
 * 3 the server could not be reached or did not answer in time.
 *
 * With --grpc the calls go to the server's gRPC door (gRPC over HTTP/3,
 * the library's gRPC mode): get, set and del are the typed Get, Set and
 * Delete, every other command a Call of its method, and "health" is
 * grpc.health.v1.Health/Check.
 *
 * `nanasqlite-cli cluster ...` reads and changes a dqlite cluster's
 * membership (cli_cluster.c).
 * `nanasqlite-cli verify-proof ...` checks a server proof offline
 * (cli_proof.c); it takes none of the connection flags.
 *
 * The shell uses libedit on a terminal (line editing, history in
 * ~/.nanasqlite_cli_history, completion of commands and, after "call", of
 * the method names in the server's own method table). With standard input
 * not a terminal it reads plain lines and prints only results and errors,
 * so it can be scripted with a here-document.
 */
#include "cli_aql.h"
#include "cli_cluster.h"
#include "cli_proof.h"
#include "conn_flags.h"
#include "nanasqlite_client.h"
#include "core/nana_core.h"
#include "util/nana_buf.h"
#include "util/nana_err.h"
#include "util/nana_json.h"
#include "util/nana_opt.h"

#include <editline/readline.h>

#include <errno.h>
#include <langinfo.h>
#include <locale.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Exit statuses (and the shell's per-command outcome). */
enum { EXIT_SERVER = 1, EXIT_USAGE = 2, EXIT_CONNECT = 3 };

/* How a shell line's arguments are split after the command word. */
enum {
    SPLIT_WORDS, /* whitespace-separated words ("..." quotes one) */
    SPLIT_REST,  /* one word, then the rest of the line as one argument */
    SPLIT_JSON,  /* one word, then JSON values (an array, an object) */
};

/* Where a command may be used. */
enum { IN_BOTH, IN_SHELL };

static const struct command {
    const char *name;
    const char *method; /* the method it calls; NULL for "call" and local commands */
    int min, max;       /* arguments after the command word */
    int split;
    int where;
    const char *synopsis;
    const char *help;
} commands[] = {
    {"get", "__getitem__", 1, 1, SPLIT_WORDS, IN_BOTH, "get KEY", "the value of KEY"},
    {"set", "__setitem__", 2, 2, SPLIT_REST, IN_BOTH, "set KEY JSON", "store JSON under KEY"},
    {"del", "__delitem__", 1, 1, SPLIT_WORDS, IN_BOTH, "del KEY", "delete KEY"},
    {"has", "__contains__", 1, 1, SPLIT_WORDS, IN_BOTH, "has KEY", "true if KEY is stored"},
    {"keys", "keys", 0, 0, SPLIT_WORDS, IN_BOTH, "keys", "every key of the table"},
    {"len", "__len__", 0, 0, SPLIT_WORDS, IN_BOTH, "len", "how many keys the table holds"},
    {"call", NULL, 1, 3, SPLIT_JSON, IN_BOTH, "call METHOD [ARGS [KWARGS]]",
     "any method; ARGS a JSON array, KWARGS a JSON object"},
    {"health", NULL, 0, 1, SPLIT_WORDS, IN_BOTH, "health [SERVICE]",
     "with --grpc: the gRPC health check of the server (or of SERVICE)"},
    {"aql", NULL, 1, 100000, SPLIT_WORDS, IN_BOTH, "aql SUBCOMMAND ...",
     "AQL queries over gRPC: get, set, delete, range, filter, update, batch (aql --help)"},
    {"methods", NULL, 0, 0, SPLIT_WORDS, IN_BOTH, "methods",
     "the methods the server offers over the network"},
    {"use", NULL, 0, 1, SPLIT_WORDS, IN_SHELL, "use [DB]",
     "call database DB from now on (none: the server's default)"},
    {"table", NULL, 0, 1, SPLIT_WORDS, IN_SHELL, "table [NAME]",
     "use table NAME from now on (none: \"data\")"},
    {"help", NULL, 0, 0, SPLIT_WORDS, IN_BOTH, "help", "this list"},
    {"quit", NULL, 0, 0, SPLIT_WORDS, IN_SHELL, "quit | exit", "leave (so does end of input)"},
    {"exit", NULL, 0, 0, SPLIT_WORDS, IN_SHELL, NULL, NULL},
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

/* Everything one run of the tool works with. */
typedef struct cli {
    nana_client_opts opts;
    nana_client *client; /* NULL until the first call connects */
    char *db, *table;    /* owned; NULL: the server's defaults */
    bool compact;        /* --json-compact */
} cli;

/* The parts of one call, built and checked before anything is sent. */
typedef struct request {
    const char *method;
    nana_buf args;      /* the JSON argument array */
    const char *kwargs; /* a checked JSON object, or NULL */
} request;

/* The command line: the tool's own options, then the connection flags. */
typedef struct cli_args {
    const char *db, *table;
    bool compact, grpc;
} cli_args;

#define AT(member) NANA_OPT_AT(cli_args, member)

static const nana_opt cli_rows[] = {
    {.name = "db",
     .kind = NANA_OPT_STRING,
     AT(db),
     .def_doc = "the server's default",
     .group = "options",
     .arg = "NAME",
     .help = "database file on the server"},
    {.name = "table",
     .kind = NANA_OPT_STRING,
     AT(table),
     .def_doc = "data",
     .group = "options",
     .arg = "NAME",
     .help = "NanaSQLite table"},
    {.name = "json-compact",
     .kind = NANA_OPT_FLAG,
     AT(compact),
     .group = "options",
     .help = "results without spaces after ',' and ':'"},
    {.name = "grpc",
     .kind = NANA_OPT_FLAG,
     AT(grpc),
     .group = "options",
     .help = "call the server's gRPC door (gRPC over HTTP/3, same port): get, set and del "
             "are typed calls (del answers whether the key existed), the others Call; "
             "enables health"},
};

static const char epilog[] =
    "environment: the NANASQLITE_* variables above; NANASQLITE_CLI_HISTORY names the\n"
    "shell's history file [~/.nanasqlite_cli_history].\n"
    "\n"
    "In the shell on a terminal, Ctrl-C clears the line and Ctrl-D (or quit) leaves.\n"
    "\n"
    "nanasqlite-cli cluster list|remove|assign|transfer ... --at HOST:PORT: a server\n"
    "cluster's membership, at a node's cluster address (nanasqlite-cli cluster --help).\n"
    "\n"
    "exit status: 0 success, 1 the server answered with an error, 2 bad usage\n"
    "(flags, commands or JSON; nothing is sent), 3 no answer (cannot connect, log-in\n"
    "refused, timeout, connection lost).\n";

/* The program's description for nana_opt: set up by main, used by "help". */
static nana_opt_prog prog;

/* Writes the paragraph under the usage line: what the tool does, the commands. */
static void describe(char *buf, size_t n)
{
    size_t at = 0;
    int w =
        snprintf(buf, n, "%s",
                 "Calls a NanaSQLite server over QUIC. With a COMMAND it makes that one call and\n"
                 "prints the result as one line of JSON; without one it starts an interactive\n"
                 "shell (commands read line by line; scriptable when standard input is not a\n"
                 "terminal).\n"
                 "\n"
                 "commands:\n");
    for (size_t i = 0; w >= 0 && (at += (size_t)w) < n && i < NCOMMANDS; i++) {
        w = 0;
        if (commands[i].synopsis && commands[i].where == IN_BOTH)
            w = snprintf(buf + at, n - at, "  %-30s %s\n", commands[i].synopsis, commands[i].help);
    }
    if (w >= 0 && at < n)
        snprintf(
            buf + at, n - at, "%s",
            "  A KEY starting with a double quote is read as a JSON string: '\"a\\tb\"' is a,\n"
            "  TAB, b.\n");
}

/* Prints the one-shot usage: commands, options, connection flags, environment. */
static void usage(FILE *out)
{
    nana_opt_help(&prog, out);
}

/* Prints a local (not server) error, "error: TYPE: message"; returns |status|. */
__attribute__((format(printf, 3, 4))) static int fail(int status, const char *type, const char *fmt,
                                                      ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "error: %s: ", type);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return status;
}

/* The exit status for a failed call's nana_client_status. */
static int status_exit(int st)
{
    if (st == NANA_CLIENT_ESERVER) return EXIT_SERVER;
    if (st == NANA_CLIENT_EINVALID) return EXIT_USAGE;
    return EXIT_CONNECT;
}

/* Prints a failed call's (or connection's) error; returns its exit status. */
static int report(const nana_result *r)
{
    const char *type = r->error_type ? r->error_type : nana_client_status_name(r->status);
    fprintf(stderr, "error: %s: %s", type, r->message ? r->message : "(no message)");
    if (r->code) fprintf(stderr, " (code: %s)", r->code);
    fputc('\n', stderr);
    return status_exit(r->status);
}

/*
 * Writes JSON text |j| to stdout on one line (and a newline with
 * |newline|): whitespace outside strings dropped, and unless |compact| a
 * space after each ',' and ':' (the layout of Python's json.dumps).
 * Returns 0, or EXIT_SERVER if stdout fails.
 */
static int write_json(bool compact, const char *j, size_t n, bool newline)
{
    nana_buf b;
    nana_buf_init(&b, 0);
    int rc = nana_buf_reserve(&b, n + n / 4 + 2);
    bool in_str = false;
    for (size_t i = 0; !rc && i < n; i++) {
        char ch = j[i];
        if (in_str) {
            rc = nana_buf_putc(&b, ch);
            if (ch == '\\' && i + 1 < n)
                rc = rc ? rc : nana_buf_putc(&b, j[++i]);
            else if (ch == '"')
                in_str = false;
            continue;
        }
        if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r') continue;
        if (ch == '"') in_str = true;
        rc = nana_buf_putc(&b, ch);
        if (!rc && !compact && (ch == ',' || ch == ':')) rc = nana_buf_putc(&b, ' ');
    }
    if (!rc && newline) rc = nana_buf_putc(&b, '\n');
    if (rc) {
        nana_buf_free(&b);
        return fail(EXIT_SERVER, "MemoryError", "%s", "cannot format the result");
    }
    fwrite(b.data, 1, b.len, stdout);
    nana_buf_free(&b);
    if ((newline && fflush(stdout) != 0) || ferror(stdout))
        return fail(EXIT_SERVER, "OSError", "%s", "cannot write the result to standard output");
    return 0;
}

static int print_line(bool compact, const char *j, size_t n)
{
    return write_json(compact, j, n, true);
}

static int print_part(bool compact, const char *j, size_t n)
{
    return write_json(compact, j, n, false);
}

/* Writes JSON text |j| as one line on stdout in the CLI's layout. */
static int print_json(const cli *c, const char *j, size_t n)
{
    return write_json(c->compact, j, n, true);
}

/*
 * Checks that |text| is one JSON value (of type |want|: '[' an array,
 * '{' an object, 0 anything). |what| names it in the error. Returns 0 or
 * EXIT_USAGE with the error printed.
 */
static int check_json(const char *what, const char *text, char want)
{
    if (nana_json_validate(text, strlen(text), NANA_JSON_ALLOW_NONFINITE,
                           NANA_JSON_DEFAULT_MAX_DEPTH) != 0) {
        /* Echo the start of the text: enough to spot the typo, never a screenful. */
        fprintf(stderr, "error: ValueError: %s is not valid JSON (%s): %.60s%s\n", what,
                nana_errmsg(), text, strlen(text) > 60 ? "..." : "");
        return EXIT_USAGE;
    }
    const char *p = text + strspn(text, " \t\r\n");
    if (want && *p != want)
        return fail(EXIT_USAGE, "ValueError", "%s must be a JSON %s", what,
                    want == '[' ? "array ([...])" : "object ({...})");
    return 0;
}

/*
 * Appends key argument |arg| to |out| as a JSON string. A word starting
 * with '"' is taken as a JSON string already (so a key may hold spaces or
 * escapes); any other word is the key itself. Returns 0 or EXIT_USAGE.
 */
static int put_key(nana_buf *out, const char *arg)
{
    if (arg[0] == '"') {
        if (nana_json_validate(arg, strlen(arg), 0, 0) != 0)
            return fail(EXIT_USAGE, "ValueError", "a quoted key must be one JSON string: %s", arg);
        return nana_buf_puts(out, arg) ? fail(EXIT_USAGE, "MemoryError", "%s", "out of memory") : 0;
    }
    int rc = nana_json_write_string(out, arg, strlen(arg));
    if (rc == NANA_ERR_INVALID)
        return fail(EXIT_USAGE, "ValueError", "%s", "the key is not valid UTF-8");
    return rc ? fail(EXIT_USAGE, "MemoryError", "%s", "out of memory") : 0;
}

/*
 * A name argument (use DB, table NAME): a quoted word is a JSON string,
 * decoded; "" means none. Sets *out to a copy (NULL for none). Returns 0
 * or EXIT_USAGE.
 */
static int name_arg(const char *arg, char **out)
{
    *out = NULL;
    if (arg[0] != '"') {
        *out = strdup(arg);
        return *out ? 0 : fail(EXIT_USAGE, "MemoryError", "%s", "out of memory");
    }
    nana_json_doc *d = NULL;
    nana_json *v = NULL;
    if (nana_json_parse(arg, strlen(arg), 0, 0, &d, &v) != 0 || v->type != NANA_JSON_STRING) {
        if (d) nana_json_doc_free(d);
        return fail(EXIT_USAGE, "ValueError", "a quoted name must be one JSON string: %s", arg);
    }
    if (v->n > 0 && strlen(v->u.str) != v->n) {
        nana_json_doc_free(d);
        return fail(EXIT_USAGE, "ValueError", "%s", "a name cannot contain NUL");
    }
    if (v->n > 0) *out = strdup(v->u.str);
    bool oom = v->n > 0 && !*out;
    nana_json_doc_free(d);
    return oom ? fail(EXIT_USAGE, "MemoryError", "%s", "out of memory") : 0;
}

/* The command called |name|, or NULL. */
static const struct command *find_command(const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0) return &commands[i];
    return NULL;
}

/*
 * Builds the call for command |cmd| with its |argc| arguments into |rq|
 * (rq->args initialised by the caller). Returns 0, or EXIT_USAGE with the
 * error printed.
 */
static int build_request(const struct command *cmd, int argc, char **argv, request *rq)
{
    nana_buf *a = &rq->args;
    rq->kwargs = NULL;
    if (!cmd->method) { /* call METHOD [ARGS [KWARGS]] */
        rq->method = argc > 0 ? argv[0] : NULL;
        if (!rq->method || !rq->method[0])
            return fail(EXIT_USAGE, "UsageError", "%s", "the method name is empty");
        if (argc > 1 && check_json("ARGS", argv[1], '[')) return EXIT_USAGE;
        if (argc > 2 && check_json("KWARGS", argv[2], '{')) return EXIT_USAGE;
        if (argc > 2) rq->kwargs = argv[2];
        if (nana_buf_puts(a, argc > 1 ? argv[1] : "[]"))
            return fail(EXIT_USAGE, "MemoryError", "%s", "out of memory");
        return 0;
    }
    rq->method = cmd->method;
    if (argc == 2 && check_json("the value", argv[1], 0)) return EXIT_USAGE;
    if (nana_buf_putc(a, '[')) return fail(EXIT_USAGE, "MemoryError", "%s", "out of memory");
    if (argc > 0 && put_key(a, argv[0])) return EXIT_USAGE;
    if (argc > 1 && (nana_buf_putc(a, ',') || nana_buf_puts(a, argv[1])))
        return fail(EXIT_USAGE, "MemoryError", "%s", "out of memory");
    if (nana_buf_putc(a, ']')) return fail(EXIT_USAGE, "MemoryError", "%s", "out of memory");
    return 0;
}

/* Connects if not connected yet. Returns 0 or the exit status, error printed. */
static int ensure_connected(cli *c)
{
    if (c->client) return 0;
    nana_result err = {0};
    int st = nana_client_connect(&c->opts, &c->client, &err);
    if (st == NANA_CLIENT_OK) return 0;
    c->client = NULL;
    if (!err.error_type && !err.message) err.status = st;
    int rc = report(&err);
    nana_result_free(&err);
    return rc;
}

/* Sends |rq| and prints its outcome. Returns 0 or the exit status. */
static int send_request(cli *c, const request *rq)
{
    int rc = ensure_connected(c);
    if (rc) return rc;
    nana_call_opts co = {.db = c->db, .table = c->table, .timeout_ms = 0};
    nana_result r = {0};
    int st = nana_client_call(c->client, rq->method, rq->args.data, rq->kwargs, &co, &r);
    if (st == NANA_CLIENT_OK)
        rc = print_json(c, r.json ? r.json : "null", r.json ? r.json_len : 4);
    else
        rc = report(&r);
    nana_result_free(&r);
    return rc;
}

/* Prints the method names a client may call (the table without local-only ones). */
static int list_methods(const cli *c)
{
    nana_buf b;
    nana_buf_init(&b, 0);
    int rc = nana_buf_putc(&b, '[');
    for (size_t i = 0, n = 0; !rc && i < nana_method_count(); i++) {
        const nana_method *m = nana_method_at(i);
        if (nana_method_flags(m) & (NANA_M_LOCAL | NANA_M_INTERNAL)) continue;
        const char *name = nana_method_name(m);
        if (n++) rc = nana_buf_putc(&b, ',');
        if (!rc) rc = nana_json_write_string(&b, name, strlen(name));
    }
    if (!rc) rc = nana_buf_putc(&b, ']');
    if (rc)
        rc = fail(EXIT_SERVER, "MemoryError", "%s", "out of memory");
    else
        rc = print_json(c, b.data, b.len);
    nana_buf_free(&b);
    return rc;
}

/* Prints the shell's help. */
static void shell_help(void)
{
    puts("commands:");
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (commands[i].synopsis) printf("  %-30s %s\n", commands[i].synopsis, commands[i].help);
    puts("A KEY or NAME in double quotes is a JSON string (\"a key\"). After set KEY the\n"
         "rest of the line is the JSON value; after call METHOD, a JSON array of arguments\n"
         "and optionally a JSON object of keyword arguments. Tab completes commands and,\n"
         "after call, method names.");
}

static bool is_grpc(const cli *c)
{
    return c->opts.protocol == NANA_CLIENT_PROTO_GRPC;
}

/*
 * The library's typed calls (gRPC mode): get KEY, set KEY JSON, del KEY,
 * health [SERVICE]. A quoted KEY is a JSON string. Returns 0 or the exit
 * status, the outcome printed.
 */
static int run_typed(cli *c, const struct command *cmd, int argc, char **argv)
{
    if (!is_grpc(c))
        return fail(EXIT_USAGE, "UsageError", "%s", "health is a gRPC call: add --grpc");
    char *key = NULL;
    if (argc > 0 && name_arg(argv[0], &key)) return EXIT_USAGE;
    int rc = argc > 1 ? check_json("the value", argv[1], 0) : 0;
    if (!rc) rc = ensure_connected(c);
    if (rc) {
        free(key);
        return rc;
    }
    nana_call_opts co = {.db = c->db, .table = c->table, .timeout_ms = 0};
    nana_result r = {0};
    const char *k = key ? key : "";
    int st = !strcmp(cmd->name, "get")   ? nana_client_get(c->client, k, &co, &r)
             : !strcmp(cmd->name, "set") ? nana_client_set(c->client, k, argv[1], &co, &r)
             : !strcmp(cmd->name, "del") ? nana_client_delete(c->client, k, &co, &r)
                                         : nana_client_health(c->client, k, &co, &r);
    if (st == NANA_CLIENT_OK)
        rc = print_json(c, r.json ? r.json : "null", r.json ? r.json_len : 4);
    else
        rc = report(&r);
    nana_result_free(&r);
    free(key);
    return rc;
}

/* The aql command's connection: the CLI's client, in gRPC mode. */
static int aql_connect(cli_aql_ctx *x)
{
    cli *c = x->cli;
    int rc = ensure_connected(c);
    x->client = c->client;
    return rc;
}

/* aql SUBCOMMAND ...: one-shot only (its options do not fit the shell's
 * word splitting). The client speaks gRPC (aql implies --grpc). */
static int run_aql(cli *c, int argc, char **argv, bool shell)
{
    if (shell)
        return fail(EXIT_USAGE, "UsageError", "%s",
                    "aql works one-shot only: nanasqlite-cli [flags] aql ...");
    c->opts.protocol = NANA_CLIENT_PROTO_GRPC;
    cli_aql_ctx x = {.co = {.db = c->db},
                     .compact = c->compact,
                     .connect = aql_connect,
                     .print = print_line,
                     .print_inline = print_part,
                     .cli = c};
    return cli_aql_run(&x, argc, argv);
}

/* Replaces the name *slot with name argument |arg| (or none). Returns 0 or EXIT_USAGE. */
static int set_name(char **slot, int argc, char **argv)
{
    char *v = NULL;
    if (argc > 0 && name_arg(argv[0], &v)) return EXIT_USAGE;
    free(*slot);
    *slot = v;
    return 0;
}

/*
 * Runs command |argv[0]| with its arguments (already split). |shell| says
 * whether the interactive shell runs it. Returns 0 or the exit status.
 */
static int run_command(cli *c, int argc, char **argv, bool shell)
{
    const struct command *cmd = find_command(argv[0]);
    if (!cmd) return fail(EXIT_USAGE, "UsageError", "unknown command '%s' (try help)", argv[0]);
    if (cmd->where == IN_SHELL && !shell)
        return fail(EXIT_USAGE, "UsageError",
                    "'%s' works in the interactive shell only "
                    "(one-shot: --db, --table)",
                    argv[0]);
    int n = argc - 1;
    if (n < cmd->min || n > cmd->max) {
        const char *syn = cmd->synopsis ? cmd->synopsis : cmd->name;
        return fail(EXIT_USAGE, "UsageError", "usage: %s", syn);
    }
    if (strcmp(cmd->name, "help") == 0) {
        if (shell)
            shell_help();
        else
            usage(stdout);
        return 0;
    }
    if (strcmp(cmd->name, "methods") == 0) return list_methods(c);
    if (strcmp(cmd->name, "aql") == 0) return run_aql(c, n, argv + 1, shell);
    if (strcmp(cmd->name, "use") == 0) return set_name(&c->db, n, argv + 1);
    if (strcmp(cmd->name, "table") == 0) return set_name(&c->table, n, argv + 1);
    if (strcmp(cmd->name, "health") == 0 ||
        (is_grpc(c) &&
         (!strcmp(cmd->name, "get") || !strcmp(cmd->name, "set") || !strcmp(cmd->name, "del"))))
        return run_typed(c, cmd, n, argv + 1);
    request rq;
    nana_buf_init(&rq.args, 0);
    int rc = build_request(cmd, n, argv + 1, &rq);
    if (!rc) rc = send_request(c, &rq);
    nana_buf_free(&rq.args);
    return rc;
}

/* ---- the shell ------------------------------------------------------------ */

static bool is_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

static char *skip_space(char *p)
{
    while (is_space(*p))
        p++;
    return p;
}

/*
 * Cuts the next word off *p: a "..." JSON string (kept with its quotes,
 * decoded later) or a run of non-blanks. Returns the word (NUL-terminated
 * in place) or NULL at the end of the line; -1 in *bad if a quoted word is
 * unterminated or glued to what follows.
 */
static char *next_word(char **p, int *bad)
{
    char *s = skip_space(*p), *e = s;
    if (!*s) {
        *p = s;
        return NULL;
    }
    if (*e == '"') {
        for (e++; *e && *e != '"'; e++)
            if (*e == '\\' && e[1]) e++;
        if (*e != '"' || (e[1] && !is_space(e[1]))) {
            *bad = -1;
            return NULL;
        }
        e++;
    } else {
        while (*e && !is_space(*e))
            e++;
    }
    *p = *e ? e + 1 : e;
    *e = '\0';
    return s;
}

/*
 * The length of the JSON value at the start of |p| (an array or object by
 * bracket matching, a string, or a bare run up to a blank), so "call m
 * [1, 2] {"a": 1}" splits into its two values. Validation comes later.
 */
static size_t json_extent(const char *p)
{
    size_t i = 0;
    if (p[0] != '[' && p[0] != '{' && p[0] != '"') {
        while (p[i] && !is_space(p[i]))
            i++;
        return i;
    }
    int depth = 0;
    bool in_str = false;
    for (; p[i]; i++) {
        char ch = p[i];
        if (in_str) {
            if (ch == '\\' && p[i + 1])
                i++;
            else if (ch == '"')
                in_str = false;
            if (!in_str && depth == 0) return i + 1;
            continue;
        }
        if (ch == '"')
            in_str = true;
        else if (ch == '[' || ch == '{')
            depth++;
        else if ((ch == ']' || ch == '}') && --depth == 0)
            return i + 1;
    }
    return i;
}

/* Trims blanks off the end of |s| in place. */
static void rtrim(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && is_space(s[n - 1]))
        s[--n] = '\0';
}

/*
 * Splits a shell line into argv (at most 4 entries) the way its command
 * wants (see SPLIT_*). Returns the count, 0 for a blank line, or -1 with
 * the error printed.
 */
static int split_line(char *line, char **argv)
{
    int bad = 0, argc = 0;
    char *p = line;
    char *w = next_word(&p, &bad);
    if (!w && bad) {
        fail(0, "UsageError", "%s", "unterminated or misplaced quote");
        return -1;
    }
    if (!w) return 0;
    argv[argc++] = w;
    const struct command *cmd = find_command(w);
    int split = cmd ? cmd->split : SPLIT_WORDS;
    while (argc < 4) {
        if (split != SPLIT_WORDS && argc == 2) break;
        w = next_word(&p, &bad);
        if (bad) {
            fail(0, "UsageError", "%s", "unterminated or misplaced quote");
            return -1;
        }
        if (!w) return argc;
        argv[argc++] = w;
    }
    p = skip_space(p);
    rtrim(p);
    if (!*p) return argc;
    if (split == SPLIT_REST) {
        argv[argc++] = p;
    } else if (split == SPLIT_JSON) {
        size_t n = json_extent(p);
        char *rest = skip_space(p + n);
        if (*rest) {
            if (rest == p + n) {
                fail(0, "UsageError", "%s", "put a space between ARGS and KWARGS");
                return -1;
            }
            p[n] = '\0'; /* the blank between the two values */
            argv[argc++] = p;
            argv[argc++] = rest;
        } else {
            argv[argc++] = p;
        }
    } else {
        argv[argc++] = p; /* one too many: the count check reports it */
    }
    return argc;
}

/* ---- completion (libedit) ---- */

enum { COMPLETE_COMMAND, COMPLETE_METHOD };
static int complete_kind;

/* libedit generator: the next candidate starting with |text| (state 0 restarts). */
static char *complete_next(const char *text, int state)
{
    static size_t idx;
    size_t len = strlen(text);
    if (state == 0) idx = 0;
    if (complete_kind == COMPLETE_COMMAND) {
        while (idx < NCOMMANDS) {
            const char *name = commands[idx++].name;
            if (strncmp(name, text, len) == 0) return strdup(name);
        }
        return NULL;
    }
    while (idx < nana_method_count()) {
        const nana_method *m = nana_method_at(idx++);
        if (nana_method_flags(m) & (NANA_M_LOCAL | NANA_M_INTERNAL)) continue;
        const char *name = nana_method_name(m);
        if (strncmp(name, text, len) == 0) return strdup(name);
    }
    return NULL;
}

/* libedit hook: completes the command word, or the method after "call". */
static char **complete(const char *text, int start, int end)
{
    (void)end;
    rl_attempted_completion_over = 1; /* never fall back to file names */
    const char *line = rl_line_buffer;
    int i = 0, words = 0;
    while (i < start) { /* count the words before |text| */
        while (i < start && is_space(line[i]))
            i++;
        if (i >= start) break;
        words++;
        while (i < start && !is_space(line[i]))
            i++;
    }
    if (words == 0) {
        complete_kind = COMPLETE_COMMAND;
    } else {
        const char *w = line + strspn(line, " \t");
        if (words != 1 || strncmp(w, "call", 4) != 0 || !is_space(w[4])) return NULL;
        complete_kind = COMPLETE_METHOD;
    }
    return rl_completion_matches(text, complete_next);
}

/* The history file: $NANASQLITE_CLI_HISTORY, else ~/.nanasqlite_cli_history. Owned. */
static char *history_path(void)
{
    const char *e = getenv("NANASQLITE_CLI_HISTORY");
    if (e && *e) return strdup(e);
    const char *home = getenv("HOME");
    if (!home || !*home) {
        const struct passwd *pw = getpwuid(getuid());
        home = pw ? pw->pw_dir : NULL;
    }
    if (!home) return NULL;
    size_t n = strlen(home) + sizeof("/.nanasqlite_cli_history");
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/.nanasqlite_cli_history", home);
    return p;
}

/* The prompt: "nana> ", or with the database and table in use "nana app.db/t> ". */
static void make_prompt(const cli *c, char *buf, size_t n)
{
    if (!c->db && !c->table)
        snprintf(buf, n, "nana> ");
    else
        snprintf(buf, n, "nana %s%s%s> ", c->db ? c->db : "", c->table ? "/" : "",
                 c->table ? c->table : "");
}

/* ---- Ctrl-C at the prompt ---- */

/*
 * Ctrl-C (SIGINT) in the shell on a terminal: the handler only notes it.
 * libedit reads keys through read_key, which gives up the line when it
 * sees the note (readline's convention: Ctrl-C clears the line, Ctrl-D
 * leaves). A Ctrl-C while a command runs is dropped: the command ends by
 * itself within its timeout.
 */
static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

/* One byte of the terminal into *b: 0, or -1 at end of input or on Ctrl-C. */
static int read_byte(int fd, unsigned char *b)
{
    for (;;) {
        if (interrupted) return -1;
        ssize_t n = read(fd, b, 1);
        if (n == 1) return 0;
        if (n < 0 && errno == EINTR) continue; /* the loop looks at |interrupted| */
        return -1;
    }
}

/*
 * libedit's key reader on a terminal (rl_getc_function): the next
 * character as a Unicode code point (UTF-8 decoded; a broken sequence
 * gives U+FFFD), or EOF at end of input and on Ctrl-C.
 */
static int read_key(FILE *in)
{
    int fd = fileno(in);
    unsigned char b;
    if (read_byte(fd, &b)) return EOF;
    int more = b < 0x80             ? 0
               : (b & 0xE0) == 0xC0 ? 1
               : (b & 0xF0) == 0xE0 ? 2
               : (b & 0xF8) == 0xF0 ? 3
                                    : -1;
    if (more < 0) return 0xFFFD;
    int cp = more ? b & (0x3F >> more) : b;
    for (int i = 0; i < more; i++) {
        if (read_byte(fd, &b)) return EOF;
        if ((b & 0xC0) != 0x80) return 0xFFFD;
        cp = (cp << 6) | (b & 0x3F);
    }
    return cp;
}

/*
 * Reads the next line: with libedit on a terminal, else plainly. Returns
 * a malloc'd line without its newline, or NULL at end of input. On a
 * terminal, Ctrl-C drops the line being typed and asks for a new one.
 */
static char *read_line(const cli *c, bool tty)
{
    while (tty) {
        char prompt[256];
        make_prompt(c, prompt, sizeof(prompt));
        interrupted = 0;
        char *l = readline(prompt);
        if (!l && interrupted) {
            fputs("^C\n", stdout);
            fflush(stdout);
            continue;
        }
        if (l && *skip_space(l)) add_history(l);
        return l;
    }
    char *l = NULL;
    size_t cap = 0;
    ssize_t n = getline(&l, &cap, stdin);
    if (n < 0) {
        free(l);
        return NULL;
    }
    while (n > 0 && (l[n - 1] == '\n' || l[n - 1] == '\r'))
        l[--n] = '\0';
    return l;
}

/*
 * The interactive shell: reads commands until quit, exit or end of input.
 * Every error is printed and the shell goes on. Returns 0 if every command
 * succeeded, else the status of the last one that failed.
 */
static int shell(cli *c)
{
    bool tty = isatty(STDIN_FILENO);
    char *hist = NULL;
    if (tty) {
        /* Keys and values are UTF-8 whatever the locale says. */
        const char *cs = setlocale(LC_CTYPE, "") ? nl_langinfo(CODESET) : "";
        if (strcmp(cs, "UTF-8") != 0) setlocale(LC_CTYPE, "C.UTF-8");
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_sigint; /* no SA_RESTART: a read in progress returns */
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
        rl_getc_function = read_key;
        rl_readline_name = "nanasqlite-cli";
        rl_attempted_completion_function = complete;
        using_history();
        stifle_history(1000);
        hist = history_path();
        if (hist) (void)read_history(hist);
        printf("nanasqlite-cli %s: %s port %u. Type help for commands, quit to leave.\n",
               nana_opt_version(), c->opts.host, (unsigned)c->opts.port);
        fflush(stdout);
    }
    int last = 0;
    for (;;) {
        char *line = read_line(c, tty);
        if (!line) {
            if (tty) putchar('\n');
            break;
        }
        char *argv[4] = {NULL, NULL, NULL, NULL};
        char *w = skip_space(line);
        int argc = *w == '#' ? 0 : split_line(line, argv);
        if (argc < 0) {
            last = EXIT_USAGE;
        } else if (argc > 0) {
            if (strcmp(argv[0], "quit") == 0 || strcmp(argv[0], "exit") == 0) {
                free(line);
                break;
            }
            int rc = run_command(c, argc, argv, true);
            if (rc) last = rc;
        }
        free(line);
        fflush(stdout);
    }
    if (hist) {
        /* A history that cannot be written is not worth failing over. */
        mode_t old = umask(077); /* it may hold values: private from the start */
        if (write_history(hist) == 0) (void)chmod(hist, 0600);
        umask(old);
        free(hist);
    }
    return last;
}

/* ---- main ------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "verify-proof") == 0)
        return nana_cli_verify_proof(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "cluster") == 0) return nana_cli_cluster(argc - 1, argv + 1);
    cli c = {0};
    cli_args a = {0};
    nana_conn_flags f;
    nana_opt_table tables[2] = {{cli_rows, sizeof(cli_rows) / sizeof(cli_rows[0]), &a},
                                nana_conn_flags_table(&f)};
    static char about[2048], version[96];
    describe(about, sizeof(about));
    snprintf(version, sizeof(version), "%s (libnanasqlite-client %s)", nana_opt_version(),
             NANA_CLIENT_VERSION);
    prog = (nana_opt_prog){.name = "nanasqlite-cli",
                           .version = version,
                           .usage = "[options] [COMMAND [ARGS...]]",
                           .about = about,
                           .epilog = epilog,
                           .tables = tables,
                           .ntables = 2,
                           .positional = 1};
    int i;
    int rc = nana_opt_parse(&prog, argc, argv, &i);
    if (rc == NANA_OPT_DONE) return 0;
    if (rc) return fail(EXIT_USAGE, "UsageError", "%s (see --help)", nana_errmsg());
    nana_conn_flags_finish(&f);
    c.opts = f.o;
    c.compact = a.compact;
    if (a.grpc) c.opts.protocol = NANA_CLIENT_PROTO_GRPC;
    if ((a.db && !(c.db = strdup(a.db))) || (a.table && !(c.table = strdup(a.table)))) {
        free(c.db);
        return fail(EXIT_USAGE, "MemoryError", "%s", "out of memory");
    }
    rc = i < argc ? run_command(&c, argc - i, argv + i, false) : shell(&c);
    nana_client_close(c.client);
    free(c.db);
    free(c.table);
    return rc;
}
