/*
 * key_gen.c - nanasqlite-key-gen: writes an Ed25519 key pair in the files
 * NanaSQLite uses, in the current directory: PREFIX_private.pem (PKCS#8
 * PEM, 0600, for the client) and PREFIX_public.pub (an OpenSSH line, for
 * the server's nana_public.pub or an accounts file).
 */
#include "auth/nana_keys.h"
#include "util/nana_err.h"
#include "util/nana_opt.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* The command line. */
typedef struct key_args {
    const char *prefix, *comment;
    bool force;
} key_args;

/* Reads --prefix: a plain file name prefix (no '/'), 1 to 200 bytes. */
static int parse_prefix(const nana_opt *row, const char *v, void *field)
{
    (void)row;
    if (!*v || strchr(v, '/') || strlen(v) > 200)
        return nana_err_set(NANA_ERR_INVALID,
                            "\"%.64s\" is not a plain file name prefix (1 to 200 bytes, no '/')",
                            v);
    memcpy(field, &v, sizeof(v));
    return 0;
}

#define AT(member) NANA_OPT_AT(key_args, member)

static const nana_opt rows[] = {
    {.name = "prefix",
     .kind = NANA_OPT_CUSTOM,
     AT(prefix),
     .parse = parse_prefix,
     .def = "nana",
     .arg = "NAME",
     .help = "the files are NAME_private.pem and NAME_public.pub"},
    {.name = "comment",
     .kind = NANA_OPT_STRING,
     AT(comment),
     .def_doc = "NAME@this host",
     .arg = "TEXT",
     .help = "the public key's comment"},
    {.name = "force", .kind = NANA_OPT_FLAG, AT(force), .help = "replace existing files"},
};

/* True if the last error says a file is in the way (nana_file: "... exists"). */
static bool error_is_exists(void)
{
    const char *m = nana_errmsg();
    size_t n = strlen(m);
    return n > 7 && strcmp(m + n - 7, " exists") == 0;
}

int main(int argc, char **argv)
{
    key_args a;
    memset(&a, 0, sizeof(a));
    nana_opt_table table = {rows, sizeof(rows) / sizeof(rows[0]), &a};
    nana_opt_prog prog = {
        .name = "nanasqlite-key-gen",
        .about = "Writes an Ed25519 key pair in the current directory: NAME_private.pem (PKCS#8\n"
                 "PEM, 0600, for the client) and NAME_public.pub (an OpenSSH line, for the\n"
                 "server). Existing files are kept unless --force.\n",
        .epilog = "exit status: 0 written, 1 not written (the reason on stderr), 2 bad command "
                  "line.\n",
        .tables = &table,
        .ntables = 1};
    int first;
    int status = nana_opt_report(&prog, nana_opt_parse(&prog, argc, argv, &first));
    if (status >= 0) return status;
    const char *prefix = a.prefix, *comment = a.comment;
    int force = a.force;
    char priv[256], pub[256], host[64] = "localhost", who[128];
    snprintf(priv, sizeof(priv), "%s_private.pem", prefix);
    snprintf(pub, sizeof(pub), "%s_public.pub", prefix);
    if (!comment) {
        gethostname(host, sizeof(host) - 1);
        host[sizeof(host) - 1] = '\0';
        snprintf(who, sizeof(who), "%s@%s", prefix, host);
        comment = who;
    }
    if (nana_ed25519_generate_files(priv, pub, comment, force)) {
        fprintf(stderr, "nanasqlite-key-gen: %s%s\n", nana_errmsg(),
                !force && error_is_exists() ? " (use --force to replace it)" : "");
        return 1;
    }
    printf("wrote %s (private key, keep it secret) and %s (public key)\n", priv, pub);
    return 0;
}
