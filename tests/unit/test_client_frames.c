/*
 * test_client_frames.c - the client library's wire codec on plain bytes:
 * the frames it builds are byte-for-byte the frames the Python
 * NanaSQLite-Server client sent in the captured session
 * (../shared/wire-samples-nanasqlite.txt), and it reads the captured server
 * replies (challenge, AUTH_OK, results, errors) as the Python client does.
 * Also: the login steps (challenge, or AUTH_OK at once for a certificate
 * login), the stream-id map under churn, and hostile reply frames.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "client/client_int.h"
#include "proto/nana_frame.h"
#include "test_util.h"

/* Builds a call frame and returns its hex. */
static const char *call_hex(const char *method, const char *args, const char *kwargs)
{
    nana_buf b;
    nana_buf_init(&b, 0);
    nana_result err = {0};
    assert_int_equal(nc_build_call(&b, method, args, kwargs, NULL, &err), 0);
    const char *h = test_hex(b.data, b.len);
    nana_buf_free(&b);
    return h;
}

static void test_request_frames_match_python_client(void **state)
{
    (void)state;
    assert_string_equal(
        call_hex("__setitem__", "[\"hello\", \"world\"]", NULL),
        "0000002e83a66d6574686f64ab5f5f7365746974656d5f5fa46172677392a568656c6c6fa5776f726c64a66b77"
        "6172677380");
    assert_string_equal(call_hex("__getitem__", "[\"hello\"]", "{}"),
                        "0000002883a66d6574686f64ab5f5f6765746974656d5f5fa46172677391a568656c6c6fa6"
                        "6b776172677380");
    assert_string_equal(call_hex("__len__", NULL, NULL),
                        "0000001e83a66d6574686f64a75f5f6c656e5f5fa46172677390a66b776172677380");
    assert_string_equal(
        call_hex("__setitem__",
                 "[\"nested\", {\"a\": [1, 2.5, null, true], \"b\": \"\xe3\x81\x82\"}]", NULL),
        "0000003f83a66d6574686f64ab5f5f7365746974656d5f5fa46172677392a66e657374656482a1619401cb4004"
        "000000000000c0c3a162a3e38182a66b776172677380");
    assert_string_equal(call_hex("execute", "[\"SELECT 1\"]", NULL),
                        "0000002783a66d6574686f64a765786563757465a46172677391a853454c4543542031a66b"
                        "776172677380");
}

static void test_auth_frames_match_python_client(void **state)
{
    (void)state;
    nana_buf b;
    nana_buf_init(&b, 0);
    assert_int_equal(nana_frame_string(&b, "AUTH_START"), 0);
    assert_string_equal(test_hex(b.data, b.len), "0000000baa415554485f5354415254");
    /* The captured response, rebuilt from its own signature. */
    static const char resp[] =
        "0000005682a474797065a8726573706f6e7365a464617461c44071a042fb7a95a45f0f15b1eba187ba8605d6f7"
        "2959e18e72a97f9a28cd6250b05fed438bb40680779e79c8a69784219c77b4a8aed8940e8731b2d295fe15720"
        "2";
    unsigned char frame[128];
    size_t n = test_unhex(resp, frame);
    assert_int_equal(n, 90);
    nana_buf_reset(&b);
    assert_int_equal(nana_frame_auth_response(&b, frame + n - 64, NULL), 0);
    assert_string_equal(test_hex(b.data, b.len), resp);
    /* With an account name: one more key. */
    nana_buf_reset(&b);
    assert_int_equal(nana_frame_auth_response(&b, frame + n - 64, "alice"), 0);
    assert_int_equal(b.len, 90 + 8 + 6);
    nana_buf_free(&b);
}

/* Parses a captured server frame. */
static int reply_of(const char *hexs, nana_result *r)
{
    unsigned char frame[256];
    size_t n = test_unhex(hexs, frame);
    nana_result_free(r);
    return nc_parse_reply(frame, n, r);
}

static void test_replies_read_like_python_client(void **state)
{
    (void)state;
    nana_result r = {0};
    assert_int_equal(reply_of("0000001882a6737461747573a773756363657373a6726573756c74c0", &r), 0);
    assert_string_equal(r.json, "null");
    assert_int_equal(
        reply_of("0000001d82a6737461747573a773756363657373a6726573756c74a5776f726c64", &r), 0);
    assert_string_equal(r.json, "\"world\"");
    assert_int_equal(reply_of("0000001a82a6737461747573a773756363657373a6726573756c74cd0af6", &r),
                     0);
    assert_string_equal(r.json, "2806");
    assert_int_equal(reply_of("0000002d82a6737461747573a773756363657373a6726573756c7482a161940"
                              "1cb4004000000000000c0c3a162a3e38182",
                              &r),
                     0);
    assert_string_equal(r.json, "{\"a\":[1,2.5,null,true],\"b\":\"\xe3\x81\x82\"}");
    assert_int_equal(reply_of("0000003883a6737461747573a56572726f72aa6572726f725f74797065a84b65794"
                              "572726f72a76d657373616765ad276e6f2d737563682d6b657927",
                              &r),
                     NANA_CLIENT_ESERVER);
    assert_string_equal(r.error_type, "KeyError");
    assert_string_equal(r.message, "'no-such-key'");
    assert_null(r.code);
    nana_result_free(&r);
}

static void test_auth_replies(void **state)
{
    (void)state;
    unsigned char frame[128], ch[32];
    char msg[256];
    size_t n = test_unhex("0000003782a474797065a96368616c6c656e6765a464617461c420106d087731068c43"
                          "8dcd2f5990a27d94bfe56c6dfb64807dc64b31b2134d07d4",
                          frame);
    assert_int_equal(nana_frame_auth_reply(frame, n, ch, msg, sizeof(msg)), NANA_AUTH_CHALLENGE);
    assert_memory_equal(ch, frame + n - 32, 32);
    n = test_unhex("00000008a7415554485f4f4b", frame);
    assert_int_equal(nana_frame_auth_reply(frame, n, ch, msg, sizeof(msg)), NANA_AUTH_OK);
    nana_buf b;
    nana_buf_init(&b, 0);
    assert_int_equal(nana_frame_string(&b, "AUTH_FAILED"), 0);
    assert_int_equal(nana_frame_auth_reply((const uint8_t *)b.data, b.len, ch, msg, sizeof(msg)),
                     NANA_AUTH_FAILED);
    nana_buf_reset(&b);
    assert_int_equal(nana_frame_string(&b, "AUTH_BANNED"), 0);
    assert_int_equal(nana_frame_auth_reply((const uint8_t *)b.data, b.len, ch, msg, sizeof(msg)),
                     NANA_AUTH_BANNED);
    nana_buf_reset(&b);
    assert_int_equal(nana_frame_string(&b, "SOMETHING"), 0);
    assert_int_equal(nana_frame_auth_reply((const uint8_t *)b.data, b.len, ch, msg, sizeof(msg)),
                     NANA_AUTH_ERROR);
    assert_non_null(strstr(msg, "SOMETHING"));
    nana_buf_free(&b);
}

/*
 * The login steps the client takes on each authentication reply, after
 * AUTH_START and after the signed response. AUTH_OK straight after
 * AUTH_START is a certificate login: done, no challenge signed, and no
 * key needed. A challenge without a key, a second challenge, refusals and
 * junk fail with a status and a message.
 */
static void test_auth_steps(void **state)
{
    (void)state;
    unsigned char challenge_frame[128], ok_frame[16], ch[32];
    char msg[256];
    int status = -1;
    size_t nch = test_unhex("0000003782a474797065a96368616c6c656e6765a464617461c420106d087731068c"
                            "438dcd2f5990a27d94bfe56c6dfb64807dc64b31b2134d07d4",
                            challenge_frame);
    size_t nok = test_unhex("00000008a7415554485f4f4b", ok_frame);

    /* Certificate login: AUTH_START answered AUTH_OK, with or without a key. */
    assert_int_equal(nc_auth_next(ok_frame, nok, false, false, ch, &status, msg, sizeof(msg)),
                     NC_AUTH_DONE);
    assert_int_equal(nc_auth_next(ok_frame, nok, false, true, ch, &status, msg, sizeof(msg)),
                     NC_AUTH_DONE);
    /* Key login: a challenge to sign, then AUTH_OK. */
    memset(ch, 0, sizeof(ch));
    assert_int_equal(nc_auth_next(challenge_frame, nch, false, true, ch, &status, msg, sizeof(msg)),
                     NC_AUTH_SIGN);
    assert_memory_equal(ch, challenge_frame + nch - 32, 32);
    assert_int_equal(nc_auth_next(ok_frame, nok, true, true, ch, &status, msg, sizeof(msg)),
                     NC_AUTH_DONE);
    /* A challenge but no key: the account wants one. */
    assert_int_equal(
        nc_auth_next(challenge_frame, nch, false, false, ch, &status, msg, sizeof(msg)),
        NC_AUTH_FAIL);
    assert_int_equal(status, NANA_CLIENT_EAUTH);
    assert_non_null(strstr(msg, "no private key was loaded"));
    /* A second challenge after the response: a protocol error. */
    assert_int_equal(nc_auth_next(challenge_frame, nch, true, true, ch, &status, msg, sizeof(msg)),
                     NC_AUTH_FAIL);
    assert_int_equal(status, NANA_CLIENT_EPROTOCOL);
    assert_non_null(strstr(msg, "second challenge"));
    /* Refusals, at either step. */
    nana_buf b;
    nana_buf_init(&b, 0);
    for (int responded = 0; responded < 2; responded++) {
        nana_buf_reset(&b);
        assert_int_equal(nana_frame_string(&b, "AUTH_FAILED"), 0);
        status = -1;
        assert_int_equal(nc_auth_next((const uint8_t *)b.data, b.len, responded, true, ch, &status,
                                      msg, sizeof(msg)),
                         NC_AUTH_FAIL);
        assert_int_equal(status, NANA_CLIENT_EAUTH);
        assert_non_null(strstr(msg, "authentication failed"));
        nana_buf_reset(&b);
        assert_int_equal(nana_frame_string(&b, "AUTH_BANNED"), 0);
        status = -1;
        assert_int_equal(nc_auth_next((const uint8_t *)b.data, b.len, responded, false, ch, &status,
                                      msg, sizeof(msg)),
                         NC_AUTH_FAIL);
        assert_int_equal(status, NANA_CLIENT_EAUTH);
        assert_non_null(strstr(msg, "banned"));
    }
    /* Junk and error maps: failures that say what came. */
    nana_buf_reset(&b);
    assert_int_equal(nana_frame_string(&b, "AUTH_MAYBE"), 0);
    assert_int_equal(
        nc_auth_next((const uint8_t *)b.data, b.len, false, true, ch, &status, msg, sizeof(msg)),
        NC_AUTH_FAIL);
    assert_int_equal(status, NANA_CLIENT_EAUTH);
    assert_non_null(strstr(msg, "AUTH_MAYBE"));
    nana_buf_free(&b);
    static const char *junk[] = {"", "00000008a7415554485f4f", "00000009a7415554485f4f4bc0",
                                 "00000001c0"};
    for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
        unsigned char f[64];
        size_t n = test_unhex(junk[i], f);
        status = -1;
        assert_int_equal(nc_auth_next(f, n, false, true, ch, &status, msg, sizeof(msg)),
                         NC_AUTH_FAIL);
        assert_int_equal(status, NANA_CLIENT_EAUTH);
        assert_non_null(strstr(msg, "malformed"));
    }
}

/* Hostile or broken replies are protocol errors, never crashes. */
static void test_bad_replies(void **state)
{
    (void)state;
    static const char *bad[] = {
        "",                                   /* nothing */
        "000000",                             /* short length */
        "00000005c0",                         /* length beyond the bytes */
        "00000001c1",                         /* reserved byte */
        "00000001c0",                         /* nil */
        "0000000181",                         /* map with a missing entry */
        "0000000381a17801",                   /* map without status */
        "0000000a81a6737461747573c3",         /* status not a string, wrong length */
        "0000000d81a6737461747573a4787878",   /* unknown status, length off */
        "0000000c81a6737461747573a46f6b6f6b", /* trailing bytes */
        "0000000282c0c0",                     /* non-string key */
        "00000007a6737461747573",             /* a bare string */
    };
    nana_result r = {0};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(reply_of(bad[i], &r), NANA_CLIENT_EPROTOCOL);
        assert_string_equal(r.error_type, "ProtocolError");
    }
    /* A result JSON cannot show (bin) is a protocol error too. */
    assert_int_equal(reply_of("0000001782a6737461747573a773756363657373a6726573756c74c40101", &r),
                     NANA_CLIENT_EPROTOCOL);
    nana_result_free(&r);
}

static void test_bad_requests(void **state)
{
    (void)state;
    nana_buf b;
    nana_buf_init(&b, 0);
    nana_result err = {0};
    assert_int_equal(nc_build_call(&b, "", NULL, NULL, NULL, &err), NANA_CLIENT_EINVALID);
    nana_buf_reset(&b);
    assert_int_equal(nc_build_call(&b, "get", "[1,", NULL, NULL, &err), NANA_CLIENT_EINVALID);
    assert_non_null(strstr(err.message, "not valid JSON"));
    nana_buf_reset(&b);
    assert_int_equal(nc_build_call(&b, "get", "{}", NULL, NULL, &err), NANA_CLIENT_EINVALID);
    nana_buf_reset(&b);
    assert_int_equal(nc_build_call(&b, "get", NULL, "[]", NULL, &err), NANA_CLIENT_EINVALID);
    nana_buf_reset(&b);
    assert_int_equal(nc_build_call(&b, "get", "[1e999999]", NULL, NULL, &err), NANA_CLIENT_OK);
    nana_buf_reset(&b);
    assert_int_equal(nc_build_call(&b, "get", "[123456789012345678901234567890]", NULL, NULL, &err),
                     NANA_CLIENT_EINVALID);
    /* Too deep for the server: refused here. */
    char deep[700];
    memset(deep, '[', 300);
    memset(deep + 300, ']', 300);
    deep[600] = 0;
    nana_buf_reset(&b);
    assert_int_equal(nc_build_call(&b, "get", deep, NULL, NULL, &err), NANA_CLIENT_EINVALID);
    nana_call_opts co = {.db = "x.db", .table = "t"};
    nana_buf_reset(&b);
    assert_int_equal(nc_build_call(&b, "get", NULL, NULL, &co, &err), NANA_CLIENT_OK);
    assert_non_null(memmem(b.data, b.len,
                           "\xa2"
                           "db\xa4x.db\xa5table\xa1t",
                           16));
    nana_result_free(&err);
    nana_buf_free(&b);
}

static void test_sidmap_churn(void **state)
{
    (void)state;
    nc_sidmap m = {0};
    static nc_call calls[4096];
    /* Streams come and go out of order, as replies do. */
    for (int round = 0; round < 20; round++) {
        for (int i = 0; i < 4096; i++)
            assert_int_equal(nc_sidmap_put(&m, (int64_t)(round * 4096 + i) * 4, &calls[i]), 0);
        for (int i = 0; i < 4096; i += 2)
            assert_ptr_equal(nc_sidmap_del(&m, (int64_t)(round * 4096 + i) * 4), &calls[i]);
        for (int i = 1; i < 4096; i += 2)
            assert_ptr_equal(nc_sidmap_get(&m, (int64_t)(round * 4096 + i) * 4), &calls[i]);
        for (int i = 4095; i > 0; i -= 2)
            assert_ptr_equal(nc_sidmap_del(&m, (int64_t)(round * 4096 + i) * 4), &calls[i]);
        assert_int_equal(m.len, 0);
        assert_null(nc_sidmap_get(&m, 4));
    }
    nc_sidmap_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_frames_match_python_client),
        cmocka_unit_test(test_auth_frames_match_python_client),
        cmocka_unit_test(test_replies_read_like_python_client),
        cmocka_unit_test(test_auth_replies),
        cmocka_unit_test(test_auth_steps),
        cmocka_unit_test(test_bad_replies),
        cmocka_unit_test(test_bad_requests),
        cmocka_unit_test(test_sidmap_churn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
