/*
 * test_jwt.c - bearer tokens: only an HS256 token signed with the
 * account's secret, strictly encoded, with well-typed claims and not
 * expired, passes; every other kind is refused with a reason.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "auth/nana_jwt.h"
#include "util/nana_err.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#define NOW 1700000000

static const uint8_t secret[32] = "0123456789abcdef0123456789abcdef";

/* base64url without padding of s[0..n) into out; its length. */
static size_t b64(const void *s, size_t n, char *out, size_t cap)
{
    sodium_bin2base64(out, cap, s, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    return strlen(out);
}

/* A token of any header and claims, signed with |key| (32 bytes). */
static const char *token(const char *header, const char *claims, const uint8_t *key)
{
    static char out[16384];
    size_t h = b64(header, strlen(header), out, sizeof(out));
    out[h] = '.';
    size_t c = b64(claims, strlen(claims), out + h + 1, sizeof(out) - h - 1);
    size_t at = h + 1 + c;
    uint8_t mac[32];
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, key, 32);
    crypto_auth_hmacsha256_update(&st, (const uint8_t *)out, at);
    crypto_auth_hmacsha256_final(&st, mac);
    out[at] = '.';
    b64(mac, 32, out + at + 1, sizeof(out) - at - 1);
    return out;
}

static const char HS256[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";

/* Parses and verifies |t| at NOW with |secret|; the first error or 0. */
static int check(const char *t, nana_jwt *j)
{
    int rc = nana_jwt_parse(t, strlen(t), j);
    return rc ? rc : nana_jwt_verify(j, secret, sizeof(secret), NOW);
}

static void test_good(void **state)
{
    (void)state;
    nana_jwt j;
    const char *t =
        token(HS256, "{\"sub\":\"alice\",\"exp\":1700000060,\"iat\":1699999999}", secret);
    assert_int_equal(check(t, &j), 0);
    assert_string_equal(j.sub, "alice");
    assert_int_equal(j.exp, 1700000060);
    assert_false(j.has_roles);
    /* No "typ" is fine; the library's own writer agrees with the test's. */
    assert_int_equal(
        check(token("{\"alg\":\"HS256\"}", "{\"sub\":\"a\",\"exp\":1700000001}", secret), &j), 0);
    char mine[512];
    assert_true(
        nana_jwt_sign("{\"sub\":\"bob\",\"exp\":1700000100}", secret, 32, mine, sizeof(mine)) > 0);
    assert_int_equal(check(mine, &j), 0);
    assert_string_equal(j.sub, "bob");
    assert_int_equal(nana_jwt_sign("{\"sub\":\"bob\",\"exp\":1}", secret, 32, mine, 20), 0);
}

static void test_times(void **state)
{
    (void)state;
    nana_jwt j;
    /* exp == now is expired: no leeway. */
    assert_int_equal(check(token(HS256, "{\"sub\":\"a\",\"exp\":1700000000}", secret), &j),
                     NANA_ERR_TIMEOUT);
    assert_int_equal(check(token(HS256, "{\"sub\":\"a\",\"exp\":1700000001}", secret), &j), 0);
    assert_int_equal(check(token(HS256, "{\"sub\":\"a\",\"exp\":-5}", secret), &j),
                     NANA_ERR_TIMEOUT);
    /* nbf in the future, and nbf == now. */
    assert_int_equal(
        check(token(HS256, "{\"sub\":\"a\",\"exp\":1700000100,\"nbf\":1700000001}", secret), &j),
        NANA_ERR_TOOEARLY);
    assert_int_equal(
        check(token(HS256, "{\"sub\":\"a\",\"exp\":1700000100,\"nbf\":1700000000}", secret), &j),
        0);
    /* Times must be JSON integers. */
    const char *bad[] = {
        "{\"sub\":\"a\",\"exp\":1700000100.0}",
        "{\"sub\":\"a\",\"exp\":\"1700000100\"}",
        "{\"sub\":\"a\",\"exp\":1.7e9}",
        "{\"sub\":\"a\",\"exp\":99999999999999999999}",
        "{\"sub\":\"a\",\"exp\":null}",
        "{\"sub\":\"a\"}",
        "{\"sub\":\"a\",\"exp\":1700000100,\"nbf\":true}",
        "{\"sub\":\"a\",\"exp\":1700000100,\"iat\":1.5}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(check(token(HS256, bad[i], secret), &j), NANA_ERR_INVALID);
}

static void test_wrong_secret_and_alg(void **state)
{
    (void)state;
    nana_jwt j;
    uint8_t other[32];
    memcpy(other, secret, 32);
    other[31] ^= 1;
    const char *claims = "{\"sub\":\"a\",\"exp\":1700000100}";
    assert_int_equal(check(token(HS256, claims, other), &j), NANA_ERR_PERM);
    /* An empty secret never verifies. */
    assert_int_equal(
        nana_jwt_parse(token(HS256, claims, secret), strlen(token(HS256, claims, secret)), &j), 0);
    assert_int_equal(nana_jwt_verify(&j, secret, 0, NOW), NANA_ERR_PERM);
    const char *heads[] = {
        "{\"alg\":\"none\"}",
        "{\"alg\":\"HS512\"}",
        "{\"alg\":\"HS384\"}",
        "{\"alg\":\"RS256\"}",
        "{\"alg\":\"hs256\"}",
        "{\"typ\":\"JWT\"}",
        "{\"alg\":\"HS256\",\"typ\":\"JOSE+JSON\"}",
        "{\"alg\":\"HS256\",\"crit\":[\"exp\"]}",
        "{\"alg\":[\"HS256\"]}",
        "[\"HS256\"]",
        "not json",
    };
    for (size_t i = 0; i < sizeof(heads) / sizeof(heads[0]); i++)
        assert_int_equal(check(token(heads[i], claims, secret), &j), NANA_ERR_INVALID);
    /* alg none with an empty signature. */
    char t[256];
    size_t h = b64("{\"alg\":\"none\"}", 14, t, sizeof(t));
    t[h] = '.';
    size_t c = b64(claims, strlen(claims), t + h + 1, sizeof(t) - h - 1);
    snprintf(t + h + 1 + c, sizeof(t) - h - 1 - c, ".");
    assert_int_equal(check(t, &j), NANA_ERR_INVALID);
}

/* |t| with byte |at| replaced by |c|. */
static const char *with(const char *t, size_t at, char c)
{
    static char out[16384];
    snprintf(out, sizeof(out), "%s", t);
    out[at] = c;
    return out;
}

static void test_encoding(void **state)
{
    (void)state;
    nana_jwt j;
    const char *t = token(HS256, "{\"sub\":\"a\",\"exp\":1700000100}", secret);
    size_t n = strlen(t);
    char buf[1024];
    /* Padding anywhere, '+', '/', a space: refused. */
    snprintf(buf, sizeof(buf), "%s=", t);
    assert_int_equal(check(buf, &j), NANA_ERR_INVALID);
    const char *dot = strchr(t, '.');
    snprintf(buf, sizeof(buf), "%.*s=%s", (int)(dot - t), t, dot);
    assert_int_equal(check(buf, &j), NANA_ERR_INVALID);
    assert_int_equal(check(with(t, 3, '+'), &j), NANA_ERR_INVALID);
    assert_int_equal(check(with(t, 3, '/'), &j), NANA_ERR_INVALID);
    assert_int_equal(check(with(t, n - 5, ' '), &j), NANA_ERR_INVALID);
    /* Two parts, four parts, empty parts. */
    snprintf(buf, sizeof(buf), "%.*s", (int)(strrchr(t, '.') - t), t);
    assert_int_equal(check(buf, &j), NANA_ERR_INVALID);
    snprintf(buf, sizeof(buf), "%s.x", t);
    assert_int_equal(check(buf, &j), NANA_ERR_INVALID);
    assert_int_equal(check("..", &j), NANA_ERR_INVALID);
    assert_int_equal(check("", &j), NANA_ERR_INVALID);
    /* A signature that decodes to other than 32 bytes. */
    snprintf(buf, sizeof(buf), "%.*sAAAA", (int)(strrchr(t, '.') - t + 1), t);
    assert_int_equal(check(buf, &j), NANA_ERR_INVALID);
    /* Any one character of the signed part changed: refused. */
    for (size_t i = 0; i < (size_t)(strrchr(t, '.') - t); i++) {
        if (t[i] == '.') continue;
        int rc = check(with(t, i, t[i] == 'A' ? 'B' : 'A'), &j);
        assert_true(rc == NANA_ERR_INVALID || rc == NANA_ERR_PERM);
    }
}

static void test_claims(void **state)
{
    (void)state;
    nana_jwt j;
    const char *bad[] = {
        "{\"exp\":1700000100}",
        "{\"sub\":\"\",\"exp\":1700000100}",
        "{\"sub\":\"no spaces\",\"exp\":1700000100}",
        "{\"sub\":7,\"exp\":1700000100}",
        "{\"sub\":\"a\",\"exp\":1700000100,\"roles\":\"admin\"}",
        "{\"sub\":\"a\",\"exp\":1700000100,\"roles\":[\"read\",1]}",
        "{\"sub\":\"a\",\"exp\":1700000100,\"roles\":[[\"admin\"]]}",
        "[1]",
        "{\"sub\":\"a\",\"exp\":1700000100",
        "{\"sub\":\"a\",\"exp\":1700000100}x",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(check(token(HS256, bad[i], secret), &j), NANA_ERR_INVALID);
    /* Roles: only write and admin count; an empty list grants neither. */
    assert_int_equal(
        check(token(HS256, "{\"sub\":\"a\",\"exp\":1700000100,\"roles\":[]}", secret), &j), 0);
    assert_true(j.has_roles);
    assert_int_equal(j.roles, 0);
    assert_int_equal(
        check(token(HS256, "{\"sub\":\"a\",\"exp\":1700000100,\"roles\":[\"read\",\"write\"]}",
                    secret),
              &j),
        0);
    assert_int_equal(j.roles, NANA_JWT_ROLE_WRITE);
    assert_int_equal(
        check(token(HS256,
                    "{\"sub\":\"a\",\"exp\":1700000100,\"roles\":[\"admin\",\"x\",\"Admin\"]}",
                    secret),
              &j),
        0);
    assert_int_equal(j.roles, NANA_JWT_ROLE_ADMIN);
    /* "aud" and unknown claims are not checked. */
    assert_int_equal(
        check(token(HS256, "{\"sub\":\"a\",\"exp\":1700000100,\"aud\":[1],\"x\":{}}", secret), &j),
        0);
}

static void test_limit(void **state)
{
    (void)state;
    nana_jwt j;
    /* A token of 8193 bytes is refused before anything is decoded; 8192 is read. */
    static char claims[8000], big[9000];
    int hit = 0;
    for (size_t pad = 5800; pad < 6200; pad++) {
        snprintf(claims, sizeof(claims), "{\"sub\":\"a\",\"exp\":1700000100,\"p\":\"%*s\"}",
                 (int)pad, "");
        const char *t = token(HS256, claims, secret);
        size_t n = strlen(t);
        if (n == NANA_JWT_MAX_BYTES) {
            assert_int_equal(check(t, &j), 0);
            hit |= 1;
        }
        if (n == NANA_JWT_MAX_BYTES + 1) {
            assert_int_equal(check(t, &j), NANA_ERR_TOOBIG);
            hit |= 2;
        }
    }
    assert_int_equal(hit, 3);
    memset(big, 'A', sizeof(big) - 1);
    assert_int_equal(nana_jwt_parse(big, sizeof(big) - 1, &j), NANA_ERR_TOOBIG);
}

int main(void)
{
    if (sodium_init() < 0) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good),
        cmocka_unit_test(test_times),
        cmocka_unit_test(test_wrong_secret_and_alg),
        cmocka_unit_test(test_encoding),
        cmocka_unit_test(test_claims),
        cmocka_unit_test(test_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
