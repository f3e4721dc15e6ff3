/*
 * aql_pred.h - the readable text form of an AQL predicate (aql_pred.c):
 * its limits and its parser. Pure C, no I/O; the client library, its
 * tools and the fuzz harness use it.
 */
#ifndef NANA_AQL_PRED_H
#define NANA_AQL_PRED_H

#include "util/nana_buf.h"

#include <stddef.h>

/* The limits: bytes of text, comparisons, levels of "not" and
 * parentheses, depth of the tree sent, bytes of one field path. */
#define NCQ_PRED_MAX_TEXT  65536
#define NCQ_PRED_MAX_TERMS 1024
#define NCQ_PRED_MAX_NEST  32
#define NCQ_PRED_MAX_DEPTH 64
#define NCQ_PRED_MAX_PATH  1024

/*
 * Parses predicate text |text|/|n| into a serialized
 * amaters.types.Predicate in |out| (reset first). 0, or NANA_ERR_INVALID
 * (the message names the 1-based column), NANA_ERR_TOOBIG (a limit) or
 * NANA_ERR_NOMEM, with nana_errmsg() set.
 */
int ncq_pred_parse(const char *text, size_t n, nana_buf *out);

#endif
