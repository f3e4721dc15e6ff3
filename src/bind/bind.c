/*
 * bind.c - binding a call's arguments (msgpack, positional and keyword) to
 * a method's parameters the way CPython binds a call to a bound method:
 * positional first, then keywords; missing, repeated and unknown names are
 * TypeErrors worded as Python words them. Values become JSON text in the
 * call's arena; keys stay pointers into the caller's bytes.
 */
#include "bind/nana_bind.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- binding ------------------------------------------------------------- */

/* The name CPython puts in a method's TypeErrors: "NanaSQLite.get". */
/* A method's qualified name for its messages, made only when a message
 * needs it (a call that binds never formats it). */
typedef struct qualname_lazy {
    const nana_bind_spec *spec;
    char s[96];
} qualname_lazy;

static const char *qual_str(qualname_lazy *q)
{
    if (!q->s[0])
        snprintf(q->s, sizeof(q->s), "%s.%s", q->spec->owner ? q->spec->owner : "NanaSQLite",
                 q->spec->name);
    return q->s;
}

/* Reads a value into JSON text in the arena. */
static int bind_json(nana_mp_reader *r, unsigned max_depth, nana_arena *arena, nana_arg *a)
{
    nana_buf tmp;
    nana_buf_init(&tmp, 0);
    /* Room for most values at once (a small value's JSON is rarely more
     * than twice its msgpack): one allocation instead of a few. */
    size_t left = nana_mp_left(r);
    int rc = nana_buf_reserve(&tmp, (left < 4096 ? left : 4096) * 2 + 32);
    if (!rc) rc = nana_mp_to_json(r, &tmp, max_depth);
    if (!rc) {
        a->s = nana_arena_dup(arena, tmp.data ? tmp.data : "", tmp.len);
        a->n = tmp.len;
        if (!a->s) rc = nana_err_set(NANA_ERR_NOMEM, "out of memory");
    }
    nana_buf_free(&tmp);
    return rc;
}

/* The TypeError for an argument of the wrong type. */
static int wrong_type(qualname_lazy *qn, const nana_param *p, const char *want, nana_mp_type got)
{
    return nana_err_set(NANA_ERR_TYPE, "%s() argument '%s' must be %s, not %s", qual_str(qn),
                        p->name, want, nana_mp_type_name(got));
}

/* Reads a str that must be valid UTF-8. */
static int read_text(qualname_lazy *qn, const nana_param *p, nana_mp_reader *r, const char **s,
                     uint32_t *n)
{
    nana_mp_item it;
    int rc = nana_mp_read(r, &it);
    if (rc) return rc;
    if (it.type != NANA_MP_STR) return wrong_type(qn, p, "str", it.type);
    if (!nana_utf8_valid((const char *)it.v.s.p, it.v.s.n))
        return nana_err_set(NANA_ERR_INVALID, "%s() argument '%s' is not valid UTF-8", qual_str(qn),
                            p->name);
    *s = (const char *)it.v.s.p;
    *n = it.v.s.n;
    return NANA_OK;
}

/* Reads a map of str -> value into pairs (values as JSON text). */
static int bind_pairs(qualname_lazy *qn, const nana_param *p, nana_mp_reader *r, uint32_t count,
                      unsigned max_depth, nana_arena *arena, nana_arg *a)
{
    a->pairs = nana_arena_alloc(arena, (count ? count : 1) * sizeof(nana_kv_pair));
    if (!a->pairs) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    for (uint32_t i = 0; i < count; i++) {
        const char *k;
        uint32_t kn;
        int rc = read_text(qn, p, r, &k, &kn);
        if (rc == NANA_ERR_TYPE)
            return nana_err_set(NANA_ERR_TYPE, "%s() keys of '%s' must be str", qual_str(qn),
                                p->name);
        if (rc) return rc;
        nana_arg v = {0};
        if ((rc = bind_json(r, max_depth, arena, &v))) return rc;
        a->pairs[i] = (nana_kv_pair){.key = k, .klen = kn, .value = v.s, .vlen = v.n};
    }
    a->count = count;
    return NANA_OK;
}

/* Reads one argument for parameter |p|. */
static int bind_one(qualname_lazy *qn, const nana_param *p, nana_mp_reader *r, unsigned max_depth,
                    nana_arena *arena, nana_arg *a)
{
    nana_mp_reader peek = *r;
    nana_mp_item it;
    int rc = nana_mp_read(&peek, &it);
    if (rc) return rc;
    if (it.type == NANA_MP_NIL && (p->flags & P_NONE)) {
        *r = peek;
        return NANA_OK; /* None: as if left out */
    }
    a->set = true;
    switch ((nana_ptype)p->type) {
    case P_KEY:
    case P_STR: {
        const char *s;
        uint32_t n;
        if ((rc = read_text(qn, p, r, &s, &n))) return rc;
        if (p->type == P_KEY) {
            a->s = s;
            a->n = n;
            return NANA_OK;
        }
        if (memchr(s, 0, n)) return nana_err_set(NANA_ERR_INVALID, "embedded null character");
        a->s = nana_arena_dup(arena, s, n);
        a->n = n;
        return a->s ? NANA_OK : nana_err_set(NANA_ERR_NOMEM, "out of memory");
    }
    case P_BOOL:
        *r = peek;
        if (it.type == NANA_MP_BOOL)
            a->b = it.v.b;
        else if (it.type == NANA_MP_INT)
            a->b = it.v.i != 0;
        else if (it.type == NANA_MP_NIL)
            a->b = false;
        else
            return wrong_type(qn, p, "bool", it.type);
        return NANA_OK;
    case P_INT:
        *r = peek;
        if (it.type != NANA_MP_INT) return wrong_type(qn, p, "int", it.type);
        a->i = it.v.i;
        return NANA_OK;
    case P_VALUE:
        return bind_json(r, max_depth, arena, a);
    case P_LIST:
        if (it.type != NANA_MP_ARRAY) return wrong_type(qn, p, "list", it.type);
        return bind_json(r, max_depth, arena, a);
    case P_OBJECT:
        if (it.type != NANA_MP_MAP) return wrong_type(qn, p, "dict", it.type);
        return bind_json(r, max_depth, arena, a);
    case P_KEYS:
        if (it.type != NANA_MP_ARRAY) return wrong_type(qn, p, "list", it.type);
        *r = peek;
        a->keys = nana_arena_alloc(arena, (it.v.count ? it.v.count : 1) * sizeof(nana_key));
        if (!a->keys) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
        for (uint32_t i = 0; i < it.v.count; i++) {
            const char *s;
            uint32_t n;
            if ((rc = read_text(qn, p, r, &s, &n)))
                return rc == NANA_ERR_TYPE
                           ? nana_err_set(NANA_ERR_TYPE, "%s() items of '%s' must be str",
                                          qual_str(qn), p->name)
                           : rc;
            a->keys[i] = (nana_key){.key = s, .klen = n};
        }
        a->count = it.v.count;
        return NANA_OK;
    case P_PAIRS:
        if (it.type != NANA_MP_MAP) return wrong_type(qn, p, "dict", it.type);
        *r = peek;
        return bind_pairs(qn, p, r, it.v.count, max_depth, arena, a);
    case P_PTR: /* a door's own structure: no wire value binds to it */
        return nana_err_set(NANA_ERR_TYPE, "%s() takes no '%s' from a client", qual_str(qn),
                            p->name);
    }
    return nana_err_set(NANA_ERR_INTERNAL, "unknown parameter type");
}

/* The shape of a parameter list (see call_int.h for its order). */
typedef struct sig {
    unsigned npos;   /* positional-or-keyword parameters */
    unsigned ndef;   /* ... of which have a default */
    int varargs;     /* index of the *args parameter, or -1 */
    unsigned kwonly; /* index of the first keyword-only parameter */
} sig;

static sig sig_of(const nana_bind_spec *spec)
{
    sig g = {0, 0, -1, spec->nparams};
    for (unsigned j = 0; j < spec->nparams; j++) {
        unsigned fl = spec->params[j].flags;
        if (fl & P_KWONLY) {
            if (g.kwonly == spec->nparams) g.kwonly = j;
        } else if (fl & P_VARARGS) {
            g.varargs = (int)j;
        } else {
            g.npos++;
            if (fl & P_OPT) g.ndef++;
        }
    }
    return g;
}

/* The parameter a keyword names (any but *args), or nparams. */
static unsigned param_named(const nana_bind_spec *spec, const char *name, size_t n)
{
    for (unsigned j = 0; j < spec->nparams; j++) {
        const nana_param *p = &spec->params[j];
        if (!(p->flags & P_VARARGS) && strlen(p->name) == n && memcmp(p->name, name, n) == 0)
            return j;
    }
    return spec->nparams;
}

/* Reads a keyword's name: a str (Python's keywords are strings) in UTF-8. */
static int read_keyword(qualname_lazy *qn, nana_mp_reader *r, const char **kp, size_t *kn)
{
    nana_mp_item k;
    int rc = nana_mp_read(r, &k);
    if (rc) return rc;
    if (k.type != NANA_MP_STR)
        return nana_err_set(NANA_ERR_TYPE, "%s() keywords must be strings", qual_str(qn));
    if (!nana_utf8_valid((const char *)k.v.s.p, k.v.s.n))
        return nana_err_set(NANA_ERR_INVALID, "%s() keyword is not valid UTF-8", qual_str(qn));
    *kp = (const char *)k.v.s.p;
    *kn = k.v.s.n;
    return NANA_OK;
}

/*
 * The missing-arguments TypeError: "f() missing 2 required positional
 * arguments: 'a' and 'b'" (three or more: "'a', 'b', and 'c'"), naming the
 * parameters in [from, to) that are required and not given.
 */
static int missing(qualname_lazy *qn, const nana_bind_spec *spec, const bool *given, unsigned from,
                   unsigned to, const char *kind)
{
    unsigned idx[NANA_MAX_PARAMS], n = 0;
    for (unsigned j = from; j < to; j++)
        if (!(spec->params[j].flags & (P_OPT | P_VARARGS)) && !given[j]) idx[n++] = j;
    if (!n) return NANA_OK;
    char names[NANA_MAX_PARAMS * 40] = "";
    size_t at = 0;
    for (unsigned i = 0; i < n && at < sizeof(names); i++) {
        const char *sep = i == 0 ? "" : n == 2 ? " and " : i + 1 == n ? ", and " : ", ";
        int w = snprintf(names + at, sizeof(names) - at, "%s'%s'", sep, spec->params[idx[i]].name);
        if (w < 0) break;
        at += (size_t)w;
    }
    return nana_err_set(NANA_ERR_TYPE, "%s() missing %u required %s argument%s: %s", qual_str(qn),
                        n, kind, n == 1 ? "" : "s", names);
}

/*
 * The too-many-positional TypeError, counting self as CPython does for a
 * bound method: "f() takes from 2 to 3 positional arguments but 4 were
 * given", with "(and 1 keyword-only argument)" when some were given.
 */
static int too_many(qualname_lazy *qn, sig g, uint32_t nargs, unsigned kwonly_given)
{
    unsigned argc = g.npos + 1, given = nargs + 1;
    char takes[48], extra[80] = "";
    bool plural = true;
    if (g.ndef)
        snprintf(takes, sizeof(takes), "from %u to %u", argc - g.ndef, argc);
    else {
        snprintf(takes, sizeof(takes), "%u", argc);
        plural = argc != 1;
    }
    if (kwonly_given)
        snprintf(extra, sizeof(extra), " positional argument%s (and %u keyword-only argument%s)",
                 given != 1 ? "s" : "", kwonly_given, kwonly_given != 1 ? "s" : "");
    return nana_err_set(NANA_ERR_TYPE, "%s() takes %s positional argument%s but %u%s %s given",
                        qual_str(qn), takes, plural ? "s" : "", given, extra,
                        given == 1 && !kwonly_given ? "was" : "were");
}

/*
 * The arity check, before any value is converted: which parameters the
 * call gives, and CPython's TypeError if it does not bind. Sets given[]
 * and *nextra_kw (keywords that go to **kwargs).
 */
static int check_arity(const nana_bind_src *c, const nana_bind_spec *spec, qualname_lazy *qn, sig g,
                       bool *given, uint32_t *nextra_kw)
{
    uint32_t bound = c->nargs < g.npos ? c->nargs : g.npos;
    for (uint32_t i = 0; i < bound; i++)
        given[i] = true;
    *nextra_kw = 0;
    nana_mp_reader r = c->kwargs;
    for (uint32_t i = 0; i < c->nkwargs; i++) {
        const char *kp;
        size_t kn;
        int rc = read_keyword(qn, &r, &kp, &kn);
        if (rc) return rc;
        int shown = kn > 64 ? 64 : (int)kn;
        unsigned j = param_named(spec, kp, kn);
        if (j == spec->nparams) {
            if (!spec->var_kwargs)
                return nana_err_set(NANA_ERR_TYPE, "%s() got an unexpected keyword argument '%.*s'",
                                    qual_str(qn), shown, kp);
            (*nextra_kw)++;
        } else if (given[j]) {
            return nana_err_set(NANA_ERR_TYPE, "%s() got multiple values for argument '%.*s'",
                                qual_str(qn), shown, kp);
        } else {
            given[j] = true;
        }
        if ((rc = nana_mp_skip(&r, NANA_MP_MAX_DEPTH))) return rc;
    }
    if (c->nargs > g.npos && g.varargs < 0) {
        unsigned kwonly_given = 0;
        for (unsigned j = g.kwonly; j < spec->nparams; j++)
            kwonly_given += given[j];
        return too_many(qn, g, c->nargs, kwonly_given);
    }
    /* Every positional parameter given and no keyword-only one: nothing can
     * be missing (the common call: all arguments by position). */
    if (c->nargs >= g.npos && g.kwonly == spec->nparams) return NANA_OK;
    int rc = missing(qn, spec, given, 0, g.kwonly, "positional");
    if (!rc) rc = missing(qn, spec, given, g.kwonly, spec->nparams, "keyword-only");
    return rc;
}

int nana_bind_call(const nana_bind_src *c, const nana_bind_spec *spec, unsigned max_depth,
                   nana_arena *arena, nana_args *args)
{
    nana_arg *out = args->a;
    nana_kv_pair **extra = &args->extra;
    size_t *nextra = &args->nextra;
    memset(args->a, 0, spec->nparams * sizeof(args->a[0])); /* the rest is never read */
    *extra = NULL;
    *nextra = 0;
    qualname_lazy q = {spec, ""};
    sig g = sig_of(spec);
    bool given[NANA_MAX_PARAMS] = {0}; /* given, even as None (then .set stays false) */
    uint32_t nextra_kw = 0;
    int rc = check_arity(c, spec, &q, g, given, &nextra_kw);
    if (rc) return rc;

    /* The call binds: convert its values, positional ones first. */
    nana_mp_reader r = c->args;
    for (uint32_t i = 0; i < c->nargs; i++) {
        if (i < g.npos)
            rc = bind_one(&q, &spec->params[i], &r, max_depth, arena, &out[i]);
        else if (i == g.npos && g.varargs >= 0) /* the first of *args */
            rc = bind_one(&q, &spec->params[g.varargs], &r, max_depth, arena, &out[g.varargs]);
        else /* the rest of *args: the method ignores them, as NanaSQLite's does */
            rc = nana_mp_skip(&r, NANA_MP_MAX_DEPTH);
        if (rc) return rc;
    }
    if (nextra_kw) {
        *extra = nana_arena_alloc(arena, nextra_kw * sizeof(nana_kv_pair));
        if (!*extra) return nana_err_set(NANA_ERR_NOMEM, "out of memory");
    }
    r = c->kwargs;
    for (uint32_t i = 0; i < c->nkwargs; i++) {
        const char *kp;
        size_t kn;
        if ((rc = read_keyword(&q, &r, &kp, &kn))) return rc;
        unsigned j = param_named(spec, kp, kn);
        if (j < spec->nparams) {
            rc = bind_one(&q, &spec->params[j], &r, max_depth, arena, &out[j]);
        } else if (*extra && *nextra < nextra_kw) {
            nana_arg v = {0};
            rc = bind_json(&r, max_depth, arena, &v);
            if (!rc)
                (*extra)[(*nextra)++] =
                    (nana_kv_pair){.key = kp, .klen = kn, .value = v.s, .vlen = v.n};
        } else {
            rc = nana_err_set(NANA_ERR_INTERNAL, "a keyword the arity check did not count");
        }
        if (rc) return rc;
    }
    return NANA_OK;
}
