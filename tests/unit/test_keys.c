/*
 * test_keys.c - Ed25519 key files: generated pairs read back and sign and
 * verify; the private key is 0600; OpenSSH lines of other shapes, broken
 * base64 and PEM files of other kinds are refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "test_util.h"

#include "auth/nana_keys.h"
#include "util/nana_err.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[256];

#define path(name) test_path(dir, name)

static void write_text(const char *name, const char *text)
{
    FILE *f = fopen(path(name), "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state)
{
    (void)state;
    const char *tmp = getenv("NANA_TEST_TMP");
    snprintf(dir, sizeof(dir), "%s/keys-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    static const char *names[] = {"a.pem", "a.pub", "x.pub", "x.pem", NULL};
    for (int i = 0; names[i]; i++)
        unlink(path(names[i]));
    rmdir(dir);
    return 0;
}

static void test_generate_and_use(void **state)
{
    (void)state;
    assert_int_equal(nana_ed25519_generate_files(path("a.pem"), path("a.pub"), "alice@test", 0), 0);
    struct stat st;
    assert_int_equal(stat(path("a.pem"), &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    uint8_t pk[32], sk[64];
    assert_int_equal(nana_ed25519_read_public(path("a.pub"), pk), 0);
    assert_int_equal(nana_ed25519_read_private(path("a.pem"), sk), 0);
    assert_memory_equal(sk + 32, pk, 32); /* the pair belongs together */
    uint8_t msg[32] = {1, 2, 3}, sig[64];
    crypto_sign_detached(sig, NULL, msg, sizeof(msg), sk);
    assert_int_equal(crypto_sign_verify_detached(sig, msg, sizeof(msg), pk), 0);
    /* Formatting gives back the same line. */
    char line[256], file[256];
    assert_int_equal(nana_ed25519_format_openssh(pk, "alice@test", line, sizeof(line)), 0);
    FILE *f = fopen(path("a.pub"), "r");
    assert_non_null(fgets(file, sizeof(file), f));
    fclose(f);
    file[strcspn(file, "\n")] = '\0';
    assert_string_equal(line, file);
    assert_int_equal(nana_ed25519_format_openssh(pk, "c", line, 20), NANA_ERR_TOOBIG);
    /* No overwrite without asking; with it, a new pair. */
    assert_int_equal(nana_ed25519_generate_files(path("a.pem"), path("a.pub"), NULL, 0),
                     NANA_ERR_INVALID);
    assert_int_equal(nana_ed25519_generate_files(path("a.pem"), path("a.pub"), NULL, 1), 0);
    uint8_t pk2[32];
    assert_int_equal(nana_ed25519_read_public(path("a.pub"), pk2), 0);
    assert_memory_not_equal(pk, pk2, 32);
}

static void test_openssh_lines(void **state)
{
    (void)state;
    uint8_t pk[32];
    char line[256];
    uint8_t want[32];
    for (int i = 0; i < 32; i++)
        want[i] = (uint8_t)(i * 7);
    assert_int_equal(nana_ed25519_format_openssh(want, NULL, line, sizeof(line)), 0);
    assert_int_equal(nana_ed25519_parse_openssh(line, strlen(line), pk), 0);
    assert_memory_equal(pk, want, 32);
    /* Blanks around and a comment after are fine; a file may start with comments. */
    char padded[300];
    snprintf(padded, sizeof(padded), "  %s  some comment\r\n", line);
    assert_int_equal(nana_ed25519_parse_openssh(padded, strlen(padded), pk), 0);
    char file[400];
    snprintf(file, sizeof(file), "# the server key\n\n%s\n", line);
    write_text("x.pub", file);
    assert_int_equal(nana_ed25519_read_public(path("x.pub"), pk), 0);
    assert_memory_equal(pk, want, 32);
    static const char *bad[] = {
        "",
        "ssh-ed25519",
        "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ",
        "ssh-ed25519 !!!notbase64!!!",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5", /* too short */
        /* a blob naming another type, the right length */
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE4AAAAIHJrti0qDAY6f/je3wDNrrmlMBalDAKspPu8FFVxDLCv",
        "ssh-ed25519x AAAAC3NzaC1lZDI1NTE5AAAAIHJrti0qDAY6f/je3wDNrrmlMBalDAKspPu8FFVxDLCv",
        NULL,
    };
    for (int i = 0; bad[i]; i++)
        assert_int_equal(nana_ed25519_parse_openssh(bad[i], strlen(bad[i]), pk), NANA_ERR_INVALID);
    write_text("x.pub", "# nothing here\n");
    assert_int_equal(nana_ed25519_read_public(path("x.pub"), pk), NANA_ERR_INVALID);
    assert_int_equal(nana_ed25519_read_public(path("missing.pub"), pk), NANA_ERR_NOTFOUND);
    /* Too large to be a key file; empty. */
    static char big[5000];
    memset(big, '#', sizeof(big) - 1);
    write_text("x.pub", big);
    assert_int_equal(nana_ed25519_read_public(path("x.pub"), pk), NANA_ERR_INVALID);
    write_text("x.pub", "");
    assert_int_equal(nana_ed25519_read_public(path("x.pub"), pk), NANA_ERR_INVALID);
}

static void test_private_refusals(void **state)
{
    (void)state;
    uint8_t sk[64];
    write_text("x.pem", "not a key\n");
    assert_int_equal(nana_ed25519_read_private(path("x.pem"), sk), NANA_ERR_INVALID);
    /* An EC (P-256) PKCS#8 key is not an Ed25519 one. */
    write_text("x.pem", "-----BEGIN PRIVATE KEY-----\n"
                        "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgevZzL1gdAFr88hb2\n"
                        "-----END PRIVATE KEY-----\n");
    assert_int_equal(nana_ed25519_read_private(path("x.pem"), sk), NANA_ERR_INVALID);
    /* The message never repeats key material. */
    assert_null(strstr(nana_errmsg(), "MIGH"));
    write_text("x.pem", "-----BEGIN PRIVATE KEY-----\n@@@@\n-----END PRIVATE KEY-----\n");
    assert_int_equal(nana_ed25519_read_private(path("x.pem"), sk), NANA_ERR_INVALID);
}

int main(void)
{
    if (sodium_init() < 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_generate_and_use),
        cmocka_unit_test(test_openssh_lines),
        cmocka_unit_test(test_private_refusals),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
