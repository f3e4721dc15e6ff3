/*
 * key_gen.c - nanasqlite-key-gen: writes an Ed25519 key pair in the files
 * NanaSQLite uses, in the current directory: PREFIX_private.pem (PKCS#8
 * PEM, 0600, for the client) and PREFIX_public.pub (an OpenSSH line, for
 * the server's nana_public.pub or an accounts file).
 */
#include "auth/nana_keys.h"
#include "util/nana_err.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char usage[] =
    "usage: nanasqlite-key-gen [--prefix NAME] [--comment TEXT] [--force]\n"
    "  writes NAME_private.pem (0600) and NAME_public.pub in the current directory;\n"
    "  NAME defaults to nana. --force replaces existing files.\n";

int main(int argc, char **argv)
{
    const char *prefix = "nana", *comment = NULL;
    int force = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--force")) {
            force = 1;
        } else if (!strcmp(argv[i], "--prefix") && i + 1 < argc) {
            prefix = argv[++i];
        } else if (!strcmp(argv[i], "--comment") && i + 1 < argc) {
            comment = argv[++i];
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(usage, stdout);
            return 0;
        } else {
            fprintf(stderr, "nanasqlite-key-gen: unknown option %s\n%s", argv[i], usage);
            return 2;
        }
    }
    if (!*prefix || strchr(prefix, '/') || strlen(prefix) > 200) {
        fprintf(stderr, "nanasqlite-key-gen: --prefix must be a plain file name prefix\n");
        return 2;
    }
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
                force ? "" : " (use --force to replace it)");
        return 1;
    }
    printf("wrote %s (private key, keep it secret) and %s (public key)\n", priv, pub);
    return 0;
}
