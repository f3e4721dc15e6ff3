/*
 * reply.c - reply frames of the NanaSQLite door (errors carry the Python
 * exception names of nana_core_error_type).
 *
 * A frame is written in place: four bytes are reserved for the length,
 * the msgpack map follows, and the length is patched at the end, so a
 * reply costs one buffer and no copy.
 */
#include "door_nana/door_int.h"

#include <string.h>

int nana_reply_str(nana_buf *out, const char *s)
{
    size_t at;
    int rc = nana_frame_begin(out, &at);
    if (!rc) rc = nana_mp_put_cstr(out, s);
    if (!rc) rc = nana_frame_end(out, at);
    return rc;
}

int nana_reply_challenge(nana_buf *out, const uint8_t *bytes, size_t n)
{
    size_t at;
    int rc = nana_frame_begin(out, &at);
    if (!rc) rc = nana_mp_put_map(out, 2);
    if (!rc) rc = nana_mp_put_cstr(out, "type");
    if (!rc) rc = nana_mp_put_cstr(out, "challenge");
    if (!rc) rc = nana_mp_put_cstr(out, "data");
    if (!rc) rc = nana_mp_put_bin(out, bytes, n);
    if (!rc) rc = nana_frame_end(out, at);
    return rc;
}

int nana_reply_status_error(nana_buf *out, const char *msg)
{
    size_t at;
    int rc = nana_frame_begin(out, &at);
    if (!rc) rc = nana_mp_put_map(out, 2);
    if (!rc) rc = nana_mp_put_cstr(out, "status");
    if (!rc) rc = nana_mp_put_cstr(out, "error");
    if (!rc) rc = nana_mp_put_cstr(out, "message");
    if (!rc) rc = nana_mp_put_cstr(out, msg);
    if (!rc) rc = nana_frame_end(out, at);
    return rc;
}

int nana_reply_error(nana_buf *out, const char *type, const char *msg, const char *code)
{
    size_t at;
    int rc = nana_frame_begin(out, &at);
    if (!rc) rc = nana_mp_put_map(out, code ? 4 : 3);
    if (!rc) rc = nana_mp_put_cstr(out, "status");
    if (!rc) rc = nana_mp_put_cstr(out, "error");
    if (!rc) rc = nana_mp_put_cstr(out, "error_type");
    if (!rc) rc = nana_mp_put_cstr(out, type);
    if (!rc) rc = nana_mp_put_cstr(out, "message");
    if (!rc) rc = nana_mp_put_cstr(out, msg);
    if (!rc && code) rc = nana_mp_put_cstr(out, "code");
    if (!rc && code) rc = nana_mp_put_cstr(out, code);
    if (!rc) rc = nana_frame_end(out, at);
    return rc;
}

int nana_reply_internal(nana_buf *out)
{
    return nana_reply_error(out, "InternalServerError", "An unexpected error occurred", NULL);
}

int nana_reply_from_error(nana_buf *out, const nana_error *e)
{
    bool expected;
    const char *code;
    const char *type = nana_core_error_type(e->code, &code, &expected);
    if (!expected) return nana_reply_internal(out);
    return nana_reply_error(out, type, e->msg, code);
}

int nana_reply_success_begin(nana_buf *out, size_t *at)
{
    int rc = nana_frame_begin(out, at);
    if (!rc) rc = nana_mp_put_map(out, 2);
    if (!rc) rc = nana_mp_put_cstr(out, "status");
    if (!rc) rc = nana_mp_put_cstr(out, "success");
    if (!rc) rc = nana_mp_put_cstr(out, "result");
    return rc;
}

int nana_reply_encode_value(nana_buf *out, const char *json, size_t len)
{
    return nana_mp_from_json_text(out, json, len);
}

int nana_reply_answer(nana_buf *out, const nana_core_result *r, const nana_error *e)
{
    if (e && e->code) return nana_reply_from_error(out, e);
    size_t start = out->len, at;
    int rc = nana_reply_success_begin(out, &at);
    if (!rc) {
        switch (r->kind) {
        case NANA_RES_NIL:
        case NANA_RES_ENCODED: /* not here: the caller's buffer has it */
        case NANA_RES_ROWS:    /* only AQL's internal methods give rows */
            rc = nana_mp_put_nil(out);
            break;
        case NANA_RES_BOOL:
            rc = nana_mp_put_bool(out, r->b);
            break;
        case NANA_RES_INT:
            rc = nana_mp_put_int(out, r->i);
            break;
        case NANA_RES_VAL: {
            nana_val *alt = nana_val_alt(r->v);
            rc = alt && alt->form == NANA_DOOR_FORM_MSGPACK
                     ? nana_buf_append(out, alt->data, alt->len)
                     : nana_mp_from_json_text(out, r->v->data, r->v->len);
            break;
        }
        }
    }
    if (!rc) rc = nana_frame_end(out, at);
    if (rc) { /* a value that does not convert, or no memory: an error reply instead */
        out->len = start;
        if (out->data) out->data[start] = 0;
        nana_error err;
        nana_error_capture(&err, rc);
        rc = nana_reply_from_error(out, &err);
    }
    return rc;
}

/* InternalServerError "An unexpected error occurred", for when even an
 * error reply cannot be built (out of memory). */
const uint8_t nana_reply_internal_frame[86] = {
    0x00, 0x00, 0x00, 0x52, 0x83, 0xa6, 0x73, 0x74, 0x61, 0x74, 0x75, 0x73, 0xa5, 0x65, 0x72,
    0x72, 0x6f, 0x72, 0xaa, 0x65, 0x72, 0x72, 0x6f, 0x72, 0x5f, 0x74, 0x79, 0x70, 0x65, 0xb3,
    0x49, 0x6e, 0x74, 0x65, 0x72, 0x6e, 0x61, 0x6c, 0x53, 0x65, 0x72, 0x76, 0x65, 0x72, 0x45,
    0x72, 0x72, 0x6f, 0x72, 0xa7, 0x6d, 0x65, 0x73, 0x73, 0x61, 0x67, 0x65, 0xbc, 0x41, 0x6e,
    0x20, 0x75, 0x6e, 0x65, 0x78, 0x70, 0x65, 0x63, 0x74, 0x65, 0x64, 0x20, 0x65, 0x72, 0x72,
    0x6f, 0x72, 0x20, 0x6f, 0x63, 0x63, 0x75, 0x72, 0x72, 0x65, 0x64};

/* {"status": "success", "result": None}: the reply to a committed plain write. */
const uint8_t nana_reply_set_ok[28] = {0x00, 0x00, 0x00, 0x18, 0x82, 0xa6, 's', 't', 'a', 't',
                                       'u',  's',  0xa7, 's',  'u',  'c',  'c', 'e', 's', 's',
                                       0xa6, 'r',  'e',  's',  'u',  'l',  't', 0xc0};
