/*
 * reflect.c - answers of the server reflection service
 * (grpc.reflection.v1alpha): one serialized request in, one serialized
 * response out, all in the call's arena. The door runs it for each message
 * of a ServerReflectionInfo stream.
 *
 * Only our own files are known: list_services names the services they
 * declare, file_by_filename and file_containing_symbol send a file with
 * the files it imports, and as none declares extensions, extension
 * questions about a known message get an empty list and the rest NOT_FOUND.
 * The generated messages are initialised with their __init functions (the
 * INIT macros cast a constant away, which our warnings refuse).
 */
#include "grpc/grpc_int.h"
#include "grpc/reflection/v1alpha/reflection.pb-c.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

typedef Grpc__Reflection__V1alpha__ServerReflectionRequest refl_req;
typedef Grpc__Reflection__V1alpha__ServerReflectionResponse refl_resp;

#define REQ(x)  GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_##x
#define RESP(x) GRPC__REFLECTION__V1ALPHA__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_##x

/* The most files one answer carries (a file and what it imports). */
#define MAX_FILES 16

/* Sets |r| to an ErrorResponse. */
__attribute__((format(printf, 4, 5))) static int
error_answer(nana_arena *a, refl_resp *r, nana_grpc_status status, const char *fmt, ...)
{
    Grpc__Reflection__V1alpha__ErrorResponse *e = nana_arena_alloc(a, sizeof(*e));
    char *msg = nana_arena_alloc(a, NANA_GRPC_MESSAGE_MAX);
    if (!e || !msg) return nana_err_set(NANA_ERR_NOMEM, "out of memory for a reflection answer");
    grpc__reflection__v1alpha__error_response__init(e);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, NANA_GRPC_MESSAGE_MAX, fmt, ap);
    va_end(ap);
    e->error_code = (int32_t)status;
    e->error_message = msg;
    r->message_response_case = RESP(ERROR_RESPONSE);
    r->error_response = e;
    return 0;
}

/* Sets |r| to |f| and every file it imports, each once, |f| first. */
static int files_answer(nana_arena *a, refl_resp *r, const nana_grpc_file *f)
{
    const nana_grpc_file *files[MAX_FILES];
    size_t n = 0;
    files[n++] = f;
    for (size_t i = 0; i < n; i++) {
        const nana_grpc_file *deps[MAX_FILES];
        size_t nd = nana_grpc_file_deps(files[i], deps, MAX_FILES);
        for (size_t j = 0; j < nd && n < MAX_FILES; j++) {
            bool have = false;
            for (size_t k = 0; k < n; k++)
                have = have || files[k] == deps[j];
            if (!have) files[n++] = deps[j];
        }
    }
    Grpc__Reflection__V1alpha__FileDescriptorResponse *fr = nana_arena_alloc(a, sizeof(*fr));
    ProtobufCBinaryData *bin = nana_arena_alloc(a, n * sizeof(*bin));
    if (!fr || !bin) return nana_err_set(NANA_ERR_NOMEM, "out of memory for a reflection answer");
    grpc__reflection__v1alpha__file_descriptor_response__init(fr);
    for (size_t i = 0; i < n; i++) {
        bin[i].len = files[i]->len;
        bin[i].data = (uint8_t *)(uintptr_t)files[i]->proto; /* only read by pack */
    }
    fr->n_file_descriptor_proto = n;
    fr->file_descriptor_proto = bin;
    r->message_response_case = RESP(FILE_DESCRIPTOR_RESPONSE);
    r->file_descriptor_response = fr;
    return 0;
}

static int services_answer(nana_arena *a, refl_resp *r)
{
    const char **names;
    size_t n;
    int rc = nana_grpc_service_names(a, &names, &n);
    if (rc) return rc;
    Grpc__Reflection__V1alpha__ListServiceResponse *ls = nana_arena_alloc(a, sizeof(*ls));
    Grpc__Reflection__V1alpha__ServiceResponse **v = nana_arena_alloc(a, (n + 1) * sizeof(*v));
    if (!ls || !v) return nana_err_set(NANA_ERR_NOMEM, "out of memory for a reflection answer");
    grpc__reflection__v1alpha__list_service_response__init(ls);
    for (size_t i = 0; i < n; i++) {
        v[i] = nana_arena_alloc(a, sizeof(*v[i]));
        if (!v[i]) return nana_err_set(NANA_ERR_NOMEM, "out of memory for a reflection answer");
        grpc__reflection__v1alpha__service_response__init(v[i]);
        v[i]->name = (char *)(uintptr_t)names[i];
    }
    ls->n_service = n;
    ls->service = v;
    r->message_response_case = RESP(LIST_SERVICES_RESPONSE);
    r->list_services_response = ls;
    return 0;
}

static int extensions_answer(nana_arena *a, refl_resp *r, char *type)
{
    if (!nana_grpc_file_by_symbol(type, strlen(type)))
        return error_answer(a, r, NANA_GRPC_NOT_FOUND, "no type named '%.128s'", type);
    Grpc__Reflection__V1alpha__ExtensionNumberResponse *en = nana_arena_alloc(a, sizeof(*en));
    if (!en) return nana_err_set(NANA_ERR_NOMEM, "out of memory for a reflection answer");
    grpc__reflection__v1alpha__extension_number_response__init(en);
    en->base_type_name = type;
    r->message_response_case = RESP(ALL_EXTENSION_NUMBERS_RESPONSE);
    r->all_extension_numbers_response = en;
    return 0;
}

/* Fills |r| with the answer to |q|. */
static int answer(nana_arena *a, refl_req *q, refl_resp *r)
{
    const nana_grpc_file *f;
    switch (q->message_request_case) {
    case REQ(FILE_BY_FILENAME):
        f = nana_grpc_file_by_name(q->file_by_filename, strlen(q->file_by_filename));
        if (!f)
            return error_answer(a, r, NANA_GRPC_NOT_FOUND, "no file named '%.128s'",
                                q->file_by_filename);
        return files_answer(a, r, f);
    case REQ(FILE_CONTAINING_SYMBOL):
        f = nana_grpc_file_by_symbol(q->file_containing_symbol, strlen(q->file_containing_symbol));
        if (!f)
            return error_answer(a, r, NANA_GRPC_NOT_FOUND, "no symbol named '%.128s'",
                                q->file_containing_symbol);
        return files_answer(a, r, f);
    case REQ(FILE_CONTAINING_EXTENSION):
        return error_answer(a, r, NANA_GRPC_NOT_FOUND, "this server declares no extensions");
    case REQ(ALL_EXTENSION_NUMBERS_OF_TYPE):
        return extensions_answer(a, r, q->all_extension_numbers_of_type);
    case REQ(LIST_SERVICES):
        return services_answer(a, r);
    default:
        return error_answer(a, r, NANA_GRPC_INVALID_ARGUMENT, "the request asks no question");
    }
}

int nana_grpc_reflect_answer(nana_arena *a, const uint8_t *req, size_t req_len, uint8_t **out,
                             size_t *out_len)
{
    ProtobufCMessage *m;
    int rc = nana_grpc_pb_unpack(
        a, &grpc__reflection__v1alpha__server_reflection_request__descriptor, req, req_len, &m);
    if (rc) return rc;
    refl_req *q = (refl_req *)m;
    refl_resp r;
    grpc__reflection__v1alpha__server_reflection_response__init(&r);
    r.valid_host = q->host;
    r.original_request = q;
    rc = answer(a, q, &r);
    if (rc) return rc;
    size_t size = grpc__reflection__v1alpha__server_reflection_response__get_packed_size(&r);
    uint8_t *buf = nana_arena_alloc(a, size);
    if (!buf) return nana_err_set(NANA_ERR_NOMEM, "out of memory for a reflection answer");
    *out_len = grpc__reflection__v1alpha__server_reflection_response__pack(&r, buf);
    *out = buf;
    return 0;
}
