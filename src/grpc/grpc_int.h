/*
 * grpc_int.h - what the files of src/grpc share and nothing outside uses:
 * storing custom metadata for head.c, the table of embedded descriptors that
 * the build generates, a file's imports for reflect.c, and the symbol walk.
 */
#ifndef NANA_GRPC_INT_H
#define NANA_GRPC_INT_H

#include "grpc/nana_grpc.h"

/*
 * Adds one custom-metadata field to |h| (meta.c): names outside gRPC's
 * grammar and ASCII values with bytes outside 0x20-0x7E are dropped (0);
 * a "-bin" value is split on ',' and each piece base64-decoded. 0,
 * NANA_ERR_INVALID for a "-bin" value that is not base64, NANA_ERR_NOMEM.
 */
int nana_grpc_meta_store(nana_grpc_head *h, const char *name, size_t name_len, const char *value,
                         size_t value_len);

/* Our .proto files' FileDescriptorProtos, generated into the build
 * directory by embed_descriptors.cmake. */
extern const nana_grpc_file nana_grpc_embedded_files[];
extern const size_t nana_grpc_embedded_count;

/* The embedded files that |f| imports, at most |max| of them, into |out|;
 * returns how many (descriptors.c). */
size_t nana_grpc_file_deps(const nana_grpc_file *f, const nana_grpc_file **out, size_t max);

/* Whether |f| declares the fully-qualified |symbol| (descriptors.c; its
 * tests use it on descriptors of their own). */
bool nana_grpc_file_declares(const nana_grpc_file *f, const char *symbol, size_t n);

#endif
