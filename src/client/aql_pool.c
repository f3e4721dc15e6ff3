/*
 * aql_pool.c - the AQL calls on a pool: the client's (aql.c) with the
 * pool's submit, which picks the least-loaded connection.
 */
#include "client_int.h"

int nana_pool_aql_execute(nana_pool *p, const uint8_t *req, size_t len, const nana_call_opts *co,
                          uint8_t **resp, size_t *rlen, nana_result *out)
{
    return ncq_run(nc_pool_submit, p, NC_AQL_QUERY, req, len, co, resp, rlen, out);
}

int nana_pool_aql_batch(nana_pool *p, const uint8_t *const *queries, const size_t *lens, size_t n,
                        const nana_call_opts *co, uint8_t **resp, size_t *rlen, nana_result *out)
{
    return ncq_run_batch(nc_pool_submit, p, queries, lens, n, co, resp, rlen, out);
}

int nana_pool_aql_stream_open(nana_pool *p, const uint8_t *req, size_t len,
                              const nana_call_opts *co, nana_aql_stream **it, nana_result *out)
{
    return ncq_stream_open(nc_pool_submit, p, req, len, co, it, out);
}
