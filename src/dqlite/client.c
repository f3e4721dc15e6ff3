/*
 * client.c - a blocking client of dqlite's wire protocol over TCP.
 *
 * One connection is one socket used by one thread at a time: a request is
 * encoded (proto.c) into the connection's out buffer, written, and its
 * response read, all within one deadline (io_timeout_ms) that every wait
 * counts down. Writes use MSG_NOSIGNAL, so a peer that went away is an
 * error, never SIGPIPE.
 *
 * A FAILURE response is an answer, not a broken connection: it comes back as
 * an error with the server's message, and the connection stays usable. Any
 * I/O error, timeout or malformed response leaves the stream in an unknown
 * place, so the connection is marked broken and refuses every later call
 * (NANA_ERR_CLOSED): the caller opens a new one.
 *
 * Statements run through nana_dql_exec and nana_dql_query are prepared once
 * per connection and kept (up to stmt_cache, the least recently used
 * finalized to make room), keyed by their SQL text.
 */
#include "dqlite/nana_dqlite.h"
#include "dqlite/dqlite_int.h"
#include "util/nana_err.h"
#include "util/nana_time.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define ADDRESS_MAX 128

typedef struct stmt_slot {
    char *sql; /* NULL: free slot */
    uint32_t id;
    uint64_t used;
} stmt_slot;

struct nana_dql_conn {
    int fd;
    int broken;
    int db_open;
    uint32_t db;
    uint64_t last_code;
    uint64_t tick;
    nana_dql_opts o;
    char address[ADDRESS_MAX];
    nana_buf out;
    uint8_t *in; /* the last non-ROWS response body */
    size_t in_cap;
    stmt_slot *stmts;
};

void nana_dql_opts_default(nana_dql_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->connect_timeout_ms = NANA_DQL_CONNECT_TIMEOUT_MS_DEFAULT;
    o->io_timeout_ms = NANA_DQL_IO_TIMEOUT_MS_DEFAULT;
    o->leader_timeout_ms = NANA_DQL_LEADER_TIMEOUT_MS_DEFAULT;
    o->stmt_cache = NANA_DQL_STMT_CACHE_DEFAULT;
    nana_dql_limits_default(&o->limits);
}

const char *nana_dql_conn_address(const nana_dql_conn *c)
{
    return c->address;
}

uint64_t nana_dql_last_code(const nana_dql_conn *c)
{
    return c->last_code;
}

int nana_dql_conn_broken(const nana_dql_conn *c)
{
    return c->broken;
}

/* ---- I/O with deadlines ---- */

static uint64_t deadline_in(int ms)
{
    return nana_now_ns() + (uint64_t)(ms > 0 ? ms : 1) * 1000000u;
}

/* Marks the connection unusable and passes |rc| (with its message) on. */
static int broken(nana_dql_conn *c, int rc)
{
    c->broken = 1;
    return rc;
}

/* Waits for |events| on the socket until |deadline|. */
static int wait_io(nana_dql_conn *c, short events, uint64_t deadline)
{
    for (;;) {
        uint64_t now = nana_now_ns();
        if (now >= deadline)
            return nana_err_set(NANA_ERR_TIMEOUT, "dqlite: %s did not answer in time", c->address);
        uint64_t ms = (deadline - now + 999999) / 1000000;
        struct pollfd p = {.fd = c->fd, .events = events};
        int n = poll(&p, 1, ms > 60000 ? 60000 : (int)ms);
        if (n > 0) return 0;
        if (n < 0 && errno != EINTR)
            return nana_err_set(NANA_ERR_IO, "dqlite: poll: %s", strerror(errno));
    }
}

static int send_all(nana_dql_conn *c, const uint8_t *p, size_t n, uint64_t deadline)
{
    while (n) {
        ssize_t k = send(c->fd, p, n, MSG_NOSIGNAL);
        if (k > 0) {
            p += k;
            n -= (size_t)k;
        } else if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int rc = wait_io(c, POLLOUT, deadline);
            if (rc) return rc;
        } else if (k < 0 && errno != EINTR) {
            return nana_err_set(NANA_ERR_IO, "dqlite: sending to %s: %s", c->address,
                                strerror(errno));
        }
    }
    return 0;
}

static int recv_all(nana_dql_conn *c, uint8_t *p, size_t n, uint64_t deadline)
{
    while (n) {
        ssize_t k = recv(c->fd, p, n, 0);
        if (k > 0) {
            p += k;
            n -= (size_t)k;
        } else if (k == 0) {
            return nana_err_set(NANA_ERR_IO, "dqlite: %s closed the connection", c->address);
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            int rc = wait_io(c, POLLIN, deadline);
            if (rc) return rc;
        } else if (errno != EINTR) {
            return nana_err_set(NANA_ERR_IO, "dqlite: reading from %s: %s", c->address,
                                strerror(errno));
        }
    }
    return 0;
}

/* Writes what was encoded into c->out. */
static int send_out(nana_dql_conn *c, uint64_t deadline)
{
    int rc = send_all(c, (const uint8_t *)c->out.data, c->out.len, deadline);
    nana_buf_reset(&c->out);
    return rc ? broken(c, rc) : 0;
}

/* Reads a message header. */
static int read_header(nana_dql_conn *c, nana_dql_header *h, uint64_t deadline)
{
    uint8_t hb[8];
    int rc = recv_all(c, hb, sizeof(hb), deadline);
    if (!rc) rc = nana_dql_header_decode(hb, &c->o.limits, h);
    return rc ? broken(c, rc) : 0;
}

/* Reads a body of |len| bytes into c->in. */
static int read_body(nana_dql_conn *c, size_t len, uint64_t deadline)
{
    if (len > c->in_cap) {
        uint8_t *p = realloc(c->in, len);
        if (!p)
            return broken(c,
                          nana_err_set(NANA_ERR_NOMEM, "dqlite: out of memory for %zu bytes", len));
        c->in = p;
        c->in_cap = len;
    }
    int rc = recv_all(c, c->in, len, deadline);
    return rc ? broken(c, rc) : 0;
}

/* The error a FAILURE response stands for, with the server's message. */
static int failure(nana_dql_conn *c, const nana_dql_response *r)
{
    c->last_code = r->code;
    int code = NANA_ERR_DB;
    if (r->code == NANA_DQL_CODE_NOT_LEADER || r->code == NANA_DQL_CODE_LEADERSHIP_LOST)
        code = NANA_ERR_UNAVAILABLE;
    else if ((r->code & 0xff) == 5 || (r->code & 0xff) == 6) /* SQLITE_BUSY, SQLITE_LOCKED */
        code = NANA_ERR_BUSY;
    return nana_err_set(code, "dqlite: %.180s (code %llu)", r->message,
                        (unsigned long long)r->code);
}

/* Decodes a non-ROWS body already in c->in; a FAILURE becomes its error, a
 * response of another type than |expect| breaks the connection. Strings in
 * |resp| point into c->in (valid until the next read). */
static int decode_in(nana_dql_conn *c, const nana_dql_header *h, uint8_t expect,
                     nana_dql_response *resp)
{
    int rc = nana_dql_response_decode(h->type, c->in, (size_t)h->words * 8, resp);
    if (rc) return broken(c, rc);
    if (h->type == NANA_DQL_RESP_FAILURE) return failure(c, resp);
    if (h->type != expect) {
        nana_dql_response_free(resp);
        return broken(c, nana_err_set(NANA_ERR_INVALID,
                                      "dqlite: %s answered with type %u, expected %u", c->address,
                                      (unsigned)h->type, (unsigned)expect));
    }
    return 0;
}

/* Reads one response (not ROWS) until |deadline|. */
static int read_response(nana_dql_conn *c, uint8_t expect, nana_dql_response *resp,
                         uint64_t deadline)
{
    nana_dql_header h;
    int rc = read_header(c, &h, deadline);
    if (!rc && h.type == NANA_DQL_RESP_ROWS && expect != NANA_DQL_RESP_ROWS)
        return broken(c,
                      nana_err_set(NANA_ERR_INVALID, "dqlite: %s sent rows unasked", c->address));
    if (!rc) rc = read_body(c, (size_t)h.words * 8, deadline);
    if (!rc) rc = decode_in(c, &h, expect, resp);
    return rc;
}

/* Checks the connection can take a request and starts one. */
static int begin(nana_dql_conn *c)
{
    if (c->broken)
        return nana_err_set(NANA_ERR_CLOSED,
                            "dqlite: the connection to %s failed before; open a new one",
                            c->address);
    c->last_code = 0;
    nana_buf_reset(&c->out);
    return 0;
}

/* Sends what is in c->out and reads the response of type |expect|. */
static int roundtrip(nana_dql_conn *c, uint8_t expect, nana_dql_response *resp)
{
    uint64_t deadline = deadline_in(c->o.io_timeout_ms);
    int rc = send_out(c, deadline);
    return rc ? rc : read_response(c, expect, resp, deadline);
}

/* A request answered by EMPTY: the encoding already in c->out. */
static int roundtrip_empty(nana_dql_conn *c)
{
    nana_dql_response r = {0};
    int rc = roundtrip(c, NANA_DQL_RESP_EMPTY, &r);
    nana_dql_response_free(&r);
    return rc;
}

/* ---- connecting ---- */

int nana_dql_connect(const char *address, const nana_dql_opts *o, nana_dql_conn **out)
{
    *out = NULL;
    if (!address || strlen(address) >= ADDRESS_MAX)
        return nana_err_set(NANA_ERR_INVALID, "dqlite: the address is missing or too long");
    nana_dql_conn *c = calloc(1, sizeof(*c));
    if (!c) return nana_err_set(NANA_ERR_NOMEM, "dqlite: out of memory for a connection");
    if (o)
        c->o = *o;
    else
        nana_dql_opts_default(&c->o);
    c->fd = -1;
    snprintf(c->address, sizeof(c->address), "%s", address);
    nana_buf_init(&c->out, 0);
    if (c->o.stmt_cache) {
        c->stmts = calloc(c->o.stmt_cache, sizeof(*c->stmts));
        if (!c->stmts) {
            nana_dql_close(c);
            return nana_err_set(NANA_ERR_NOMEM, "dqlite: out of memory for a connection");
        }
    }
    int rc = dql_sock_connect(address, c->o.connect_timeout_ms, 1, &c->fd);
    if (!rc) rc = nana_dql_enc_handshake(&c->out);
    if (!rc) rc = nana_dql_enc_client(&c->out, c->o.client_id);
    if (!rc) {
        nana_dql_response r = {0};
        rc = roundtrip(c, NANA_DQL_RESP_WELCOME, &r);
        nana_dql_response_free(&r);
    }
    if (rc) {
        nana_dql_close(c);
        return rc;
    }
    *out = c;
    return 0;
}

void nana_dql_close(nana_dql_conn *c)
{
    if (!c) return;
    if (c->fd >= 0) close(c->fd);
    if (c->stmts)
        for (size_t i = 0; i < c->o.stmt_cache; i++)
            free(c->stmts[i].sql);
    free(c->stmts);
    free(c->in);
    nana_buf_free(&c->out);
    free(c);
}

int nana_dql_leader(nana_dql_conn *c, uint64_t *id, char *addr, size_t addrlen)
{
    int rc = begin(c);
    if (!rc) rc = nana_dql_enc_leader(&c->out);
    nana_dql_response r = {0};
    if (!rc) rc = roundtrip(c, NANA_DQL_RESP_SERVER, &r);
    if (rc) return rc;
    if (strlen(r.leader.address) >= addrlen)
        return nana_err_set(NANA_ERR_TOOBIG, "dqlite: the leader's address is %zu bytes",
                            strlen(r.leader.address));
    *id = r.leader.id;
    snprintf(addr, addrlen, "%s", r.leader.address);
    return 0;
}

/* Sleeps |ms| milliseconds (bounded waits between retries). */
static void pause_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Connects to |address| and returns the connection if that node is the
 * leader; else the leader's address it names in |leader| ("" if none). */
static int try_leader(const char *address, const nana_dql_opts *o, nana_dql_conn **out,
                      char *leader, size_t leaderlen)
{
    nana_dql_conn *c;
    uint64_t id;
    leader[0] = 0;
    int rc = nana_dql_connect(address, o, &c);
    if (rc) return rc;
    rc = nana_dql_leader(c, &id, leader, leaderlen);
    if (!rc && !leader[0])
        rc = nana_err_set(NANA_ERR_UNAVAILABLE, "dqlite: %s knows no leader", address);
    if (!rc && strcmp(leader, c->address) == 0) {
        *out = c;
        return 0;
    }
    nana_dql_close(c);
    return rc ? rc : NANA_ERR_NOTFOUND; /* not the leader: try |leader| */
}

int nana_dql_connect_leader(const char *const *addresses, size_t n, const nana_dql_opts *o,
                            nana_dql_conn **out)
{
    nana_dql_opts d;
    if (!o) {
        nana_dql_opts_default(&d);
        o = &d;
    }
    *out = NULL;
    nana_error last = {0};
    nana_error_setf(&last, NANA_ERR_INVALID, "dqlite: no node address given");
    uint64_t deadline = deadline_in(o->leader_timeout_ms);
    for (;;) {
        for (size_t i = 0; i < n; i++) {
            char leader[ADDRESS_MAX];
            int rc = try_leader(addresses[i], o, out, leader, sizeof(leader));
            if (!rc) return 0;
            if (rc == NANA_ERR_NOTFOUND) {
                char named[ADDRESS_MAX];
                rc = try_leader(leader, o, out, named, sizeof(named));
                if (!rc) return 0;
                if (rc == NANA_ERR_NOTFOUND)
                    nana_error_setf(&last, NANA_ERR_UNAVAILABLE,
                                    "dqlite: %.64s named %.64s as leader, which named %.64s",
                                    addresses[i], leader, named);
                else
                    nana_error_capture(&last, rc);
            } else {
                nana_error_capture(&last, rc);
            }
        }
        uint64_t now = nana_now_ns();
        if (now >= deadline)
            return nana_err_set(NANA_ERR_TIMEOUT, "dqlite: no leader found in %d ms (last: %s)",
                                o->leader_timeout_ms, last.msg);
        uint64_t left_ms = (deadline - now) / 1000000;
        pause_ms(left_ms < 50 ? (int)left_ms + 1 : 50);
    }
}

/* ---- databases and statements ---- */

int nana_dql_open(nana_dql_conn *c, const char *name)
{
    int rc = begin(c);
    if (!rc && c->db_open)
        rc = nana_err_set(NANA_ERR_INVALID, "dqlite: this connection has a database open");
    if (!rc) rc = nana_dql_enc_open(&c->out, name);
    nana_dql_response r = {0};
    if (!rc) rc = roundtrip(c, NANA_DQL_RESP_DB, &r);
    if (rc) return rc;
    c->db = r.db;
    c->db_open = 1;
    return 0;
}

static int need_db(nana_dql_conn *c)
{
    int rc = begin(c);
    if (!rc && !c->db_open) rc = nana_err_set(NANA_ERR_INVALID, "dqlite: open a database first");
    return rc;
}

/* Finalizes statement |id| on the server. */
static int finalize(nana_dql_conn *c, uint32_t id)
{
    nana_buf_reset(&c->out);
    int rc = nana_dql_enc_finalize(&c->out, c->db, id);
    return rc ? rc : roundtrip_empty(c);
}

/*
 * The statement id for |sql|: from the cache, or prepared now. *cached 0
 * means the caller finalizes it after use (no cache, or no room).
 */
static int stmt_get(nana_dql_conn *c, const char *sql, uint32_t *id, int *cached)
{
    size_t n = c->o.stmt_cache;
    size_t lru = 0;
    for (size_t i = 0; i < n; i++) {
        stmt_slot *s = &c->stmts[i];
        if (s->sql && strcmp(s->sql, sql) == 0) {
            s->used = ++c->tick;
            *id = s->id;
            *cached = 1;
            return 0;
        }
        if (!s->sql || (c->stmts[lru].sql && s->used < c->stmts[lru].used)) lru = i;
    }
    nana_buf_reset(&c->out);
    int rc = nana_dql_enc_prepare(&c->out, c->db, sql);
    nana_dql_response r = {0};
    if (!rc) rc = roundtrip(c, NANA_DQL_RESP_STMT, &r);
    if (rc) return rc;
    *id = r.stmt;
    *cached = 0;
    if (n == 0) return 0;
    char *copy = strdup(sql);
    if (!copy) return 0; /* used once, then finalized */
    stmt_slot *s = &c->stmts[lru];
    if (s->sql) {
        /* Make room: the server forgets the least recently used one. A
         * FAILURE here is the server's view (already gone); I/O is fatal. */
        rc = finalize(c, s->id);
        free(s->sql);
        s->sql = NULL;
        if (rc && c->broken) {
            free(copy);
            return rc;
        }
        c->last_code = 0;
    }
    s->sql = copy;
    s->id = *id;
    s->used = ++c->tick;
    *cached = 1;
    return 0;
}

/* Finalizes an uncached statement, keeping the error of what went before. */
static int stmt_done(nana_dql_conn *c, uint32_t id, int cached, int rc)
{
    if (cached || c->broken) return rc;
    nana_error saved;
    nana_error_capture(&saved, rc);
    uint64_t code = c->last_code;
    int frc = finalize(c, id);
    if (rc) {
        nana_err_copy(saved.msg);
        c->last_code = code;
        return rc;
    }
    return frc;
}

int nana_dql_exec(nana_dql_conn *c, const char *sql, const nana_dql_value *params, size_t n,
                  nana_dql_result *res)
{
    uint32_t id;
    int cached;
    int rc = need_db(c);
    if (!rc) rc = stmt_get(c, sql, &id, &cached);
    if (rc) return rc;
    nana_buf_reset(&c->out);
    rc = nana_dql_enc_exec(&c->out, c->db, id, params, n);
    nana_dql_response r = {0};
    if (!rc) rc = roundtrip(c, NANA_DQL_RESP_RESULT, &r);
    if (!rc && res) {
        res->last_insert_id = r.last_insert_id;
        res->rows_affected = r.rows_affected;
    }
    return stmt_done(c, id, cached, rc);
}

int nana_dql_exec_sql(nana_dql_conn *c, const char *sql, const nana_dql_value *params, size_t n,
                      nana_dql_result *res)
{
    int rc = need_db(c);
    if (!rc) rc = nana_dql_enc_exec_sql(&c->out, c->db, sql, params, n);
    nana_dql_response r = {0};
    if (!rc) rc = roundtrip(c, NANA_DQL_RESP_RESULT, &r);
    if (!rc && res) {
        res->last_insert_id = r.last_insert_id;
        res->rows_affected = r.rows_affected;
    }
    return rc;
}

/*
 * After a result went past a limit: asks the server to stop the query and
 * reads (and drops) what it still sends, up to its acknowledgement. The
 * error |rc| and its message are what the caller gets.
 */
static int interrupt(nana_dql_conn *c, int rc, uint64_t deadline)
{
    nana_error saved;
    nana_error_capture(&saved, rc);
    nana_buf_reset(&c->out);
    int irc = nana_dql_enc_interrupt(&c->out, c->db);
    if (!irc) irc = send_out(c, deadline);
    while (!irc) {
        nana_dql_header h;
        irc = read_header(c, &h, deadline);
        if (!irc) irc = read_body(c, (size_t)h.words * 8, deadline);
        if (!irc && (h.type == NANA_DQL_RESP_EMPTY || h.type == NANA_DQL_RESP_FAILURE)) break;
        if (!irc && h.type != NANA_DQL_RESP_ROWS)
            irc = broken(c, nana_err_set(NANA_ERR_INVALID, "dqlite: type %u after an interrupt",
                                         (unsigned)h.type));
    }
    nana_err_copy(saved.msg);
    return rc;
}

/* Reads the ROWS messages of a query into |rows|, to the DONE marker. */
static int read_rows(nana_dql_conn *c, nana_dql_rows *rows, uint64_t deadline)
{
    for (;;) {
        nana_dql_header h;
        int rc = read_header(c, &h, deadline);
        if (rc) return rc;
        size_t len = (size_t)h.words * 8;
        if (h.type != NANA_DQL_RESP_ROWS) {
            nana_dql_response r = {0};
            rc = read_body(c, len, deadline);
            if (!rc) rc = decode_in(c, &h, NANA_DQL_RESP_ROWS, &r);
            return rc;
        }
        uint8_t *body = malloc(len ? len : 1);
        if (!body)
            return broken(c,
                          nana_err_set(NANA_ERR_NOMEM, "dqlite: out of memory for %zu bytes", len));
        rc = recv_all(c, body, len, deadline);
        if (rc) {
            free(body);
            return broken(c, rc);
        }
        rc = nana_dql_rows_feed(rows, body, len, &c->o.limits);
        if (rc == NANA_ERR_TOOBIG) return interrupt(c, rc, deadline);
        if (rc) return broken(c, rc);
        if (rows->done) return 0;
    }
}

int nana_dql_query(nana_dql_conn *c, const char *sql, const nana_dql_value *params, size_t n,
                   nana_dql_rows *rows)
{
    uint32_t id;
    int cached;
    nana_dql_rows_init(rows);
    int rc = need_db(c);
    if (!rc) rc = stmt_get(c, sql, &id, &cached);
    if (rc) return rc;
    nana_buf_reset(&c->out);
    uint64_t deadline = deadline_in(c->o.io_timeout_ms);
    rc = nana_dql_enc_query(&c->out, c->db, id, params, n);
    if (!rc) rc = send_out(c, deadline);
    if (!rc) rc = read_rows(c, rows, deadline);
    return stmt_done(c, id, cached, rc);
}

/* ---- the cluster ---- */

int nana_dql_cluster(nana_dql_conn *c, nana_dql_node_info **nodes, size_t *n)
{
    *nodes = NULL;
    *n = 0;
    int rc = begin(c);
    if (!rc) rc = nana_dql_enc_cluster(&c->out);
    nana_dql_response r = {0};
    if (!rc) rc = roundtrip(c, NANA_DQL_RESP_SERVERS, &r);
    if (rc) return rc;
    /* One allocation: the array, then the addresses. */
    size_t size = r.nnodes * sizeof(nana_dql_node_info);
    for (size_t i = 0; i < r.nnodes; i++)
        size += strlen(r.nodes[i].address) + 1;
    nana_dql_node_info *out = malloc(size ? size : 1);
    if (!out) {
        nana_dql_response_free(&r);
        return nana_err_set(NANA_ERR_NOMEM, "dqlite: out of memory for the node list");
    }
    char *str = (char *)(out + r.nnodes);
    for (size_t i = 0; i < r.nnodes; i++) {
        size_t l = strlen(r.nodes[i].address) + 1;
        memcpy(str, r.nodes[i].address, l);
        out[i] = r.nodes[i];
        out[i].address = str;
        str += l;
    }
    *nodes = out;
    *n = r.nnodes;
    nana_dql_response_free(&r);
    return 0;
}

int nana_dql_add(nana_dql_conn *c, uint64_t id, const char *address)
{
    int rc = begin(c);
    if (!rc) rc = nana_dql_enc_add(&c->out, id, address);
    return rc ? rc : roundtrip_empty(c);
}

int nana_dql_assign(nana_dql_conn *c, uint64_t id, uint64_t role)
{
    int rc = begin(c);
    if (!rc) rc = nana_dql_enc_assign(&c->out, id, role);
    return rc ? rc : roundtrip_empty(c);
}

int nana_dql_remove(nana_dql_conn *c, uint64_t id)
{
    int rc = begin(c);
    if (!rc) rc = nana_dql_enc_remove(&c->out, id);
    return rc ? rc : roundtrip_empty(c);
}

int nana_dql_transfer(nana_dql_conn *c, uint64_t id)
{
    int rc = begin(c);
    if (!rc) rc = nana_dql_enc_transfer(&c->out, id);
    return rc ? rc : roundtrip_empty(c);
}
