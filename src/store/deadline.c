/*
 * deadline.c - query_timeout_ms: a statement that runs too long is stopped.
 *
 * SQLite calls a progress handler every 1000 virtual machine steps; ours
 * looks at the monotonic clock and, once the deadline passed, asks SQLite
 * to interrupt the statement. The caller turns the interrupt into
 * NANA_ERR_TIMEOUT when it disarms. Used by the SQL helpers (sqlrun.c) and
 * the queries over JSON fields (select.c, update_where.c, multi.c).
 */
#include "store/store_int.h"

/* SQLite progress handler: interrupts the statement once the deadline passed. */
static int deadline_check(void *arg)
{
    nana_deadline *d = arg;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (now.tv_sec > d->at.tv_sec || (now.tv_sec == d->at.tv_sec && now.tv_nsec >= d->at.tv_nsec))
        d->hit = true;
    return d->hit;
}

void nana_deadline_arm(nana_conn *c, nana_deadline *d, unsigned ms)
{
    d->hit = false;
    if (!ms || !c->db) return;
    clock_gettime(CLOCK_MONOTONIC, &d->at);
    uint64_t ns = (uint64_t)d->at.tv_nsec + (uint64_t)ms * 1000000ull;
    d->at.tv_sec += (time_t)(ns / 1000000000ull);
    d->at.tv_nsec = (long)(ns % 1000000000ull);
    sqlite3_progress_handler(c->db, 1000, deadline_check, d);
}

int nana_deadline_disarm(nana_conn *c, nana_deadline *d, int rc, unsigned ms)
{
    if (c->db) sqlite3_progress_handler(c->db, 0, NULL, NULL);
    if (d->hit && rc)
        return nana_err_set(NANA_ERR_TIMEOUT, "the statement ran longer than %u ms and was stopped",
                            ms);
    return rc;
}
