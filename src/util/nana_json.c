/*
 * nana_json.c - strict JSON validator, arena-backed tree parser, builders,
 * writer and comparison.
 *
 * Big idea: one iterative state machine (run()) implements the grammar for
 * both validation and parsing. In validation mode it keeps only a bit per
 * open container (array or object) in a fixed on-stack array, so it never
 * allocates and nesting is bounded by max_depth, not by the C stack. In
 * parse mode the same machine also drives a builder: children of open
 * containers collect on one growable scratch vector and are copied into an
 * exact-size arena array when the container closes, so building is linear.
 * Keys are found with a linear scan in small objects; an object with more
 * than SMALL_OBJECT members carries a seeded hash index in a hidden header
 * just before its member array, built while parsing (duplicate detection)
 * and kept by the builders, so a 100k-member object is never quadratic.
 *
 * Strings are scanned eight bytes at a time (SWAR) until a byte that needs a
 * closer look ('"', '\\', a control character or non-ASCII), which keeps
 * validation of plain text fast. The writer, clone and equality walk trees
 * with explicit heap stacks for the same no-recursion reason.
 */
#include "util/nana_json.h"

#include "util/nana_err.h"

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* ------------------------------------------------------------------------ */
/* Arena                                                                     */
/* ------------------------------------------------------------------------ */

#define ARENA_FIRST_CHUNK 4096u
#define ARENA_MAX_CHUNK   (1u << 20)

struct chunk {
    struct chunk *next;
    size_t used;
    size_t cap;
    max_align_t data[]; /* cap bytes */
};

struct nana_json_doc {
    struct chunk *head; /* chunk small allocations are carved from */
    size_t next_chunk;  /* size of the next regular chunk */
};

static int oom(void)
{
    return nana_err_set(NANA_ERR_NOMEM, "out of memory building a JSON document");
}

static char *chunk_bytes(struct chunk *c)
{
    return (char *)c->data;
}

/*
 * Slow path of arena_alloc(): gets a new chunk. Requests larger than a
 * quarter of a regular chunk get a dedicated chunk linked behind the head,
 * so the head's free space is not thrown away.
 */
static void *arena_alloc_slow(nana_json_doc *d, size_t size)
{
    if (size > SIZE_MAX - sizeof(struct chunk) - 64) return NULL;
    int big = size > d->next_chunk / 4;
    size_t cap = big ? size : d->next_chunk;
    struct chunk *c = malloc(sizeof(struct chunk) + cap);
    if (!c) return NULL;
    c->cap = cap;
    c->used = size;
    if (big && d->head) {
        c->next = d->head->next;
        d->head->next = c;
    } else {
        c->next = d->head;
        d->head = c;
        if (!big && d->next_chunk < ARENA_MAX_CHUNK) d->next_chunk *= 2;
    }
    return chunk_bytes(c);
}

/* Memory for size bytes aligned to align (a power of two <= max_align_t), owned by d. */
static void *arena_alloc(nana_json_doc *d, size_t size, size_t align)
{
    struct chunk *c = d->head;
    if (c) {
        size_t off = (c->used + align - 1) & ~(align - 1);
        if (off <= c->cap && size <= c->cap - off) {
            c->used = off + size;
            return chunk_bytes(c) + off;
        }
    }
    return arena_alloc_slow(d, size);
}

/*
 * Grows an arena block from oldsize to newsize bytes, in place when it is
 * the last block of the head chunk, else by copying (the old block is
 * wasted until the document is freed).
 */
static void *arena_grow(nana_json_doc *d, void *old, size_t oldsize, size_t newsize, size_t align)
{
    struct chunk *c = d->head;
    if (old && c && (char *)old + oldsize == chunk_bytes(c) + c->used &&
        newsize - oldsize <= c->cap - c->used) {
        c->used += newsize - oldsize;
        return old;
    }
    void *p = arena_alloc(d, newsize, align);
    if (p && old && oldsize) memcpy(p, old, oldsize);
    return p;
}

/* Copies n bytes into d as a NUL-terminated string. NULL on OOM. */
static char *arena_strdup(nana_json_doc *d, const char *s, size_t n)
{
    if (n == SIZE_MAX) return NULL;
    char *p = arena_alloc(d, n + 1, 1);
    if (!p) return NULL;
    if (n) memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

nana_json_doc *nana_json_doc_new(void)
{
    nana_json_doc *d = malloc(sizeof(*d));
    if (!d) {
        oom();
        return NULL;
    }
    d->head = NULL;
    d->next_chunk = ARENA_FIRST_CHUNK;
    return d;
}

void nana_json_doc_free(nana_json_doc *doc)
{
    if (!doc) return;
    struct chunk *c = doc->head;
    while (c) {
        struct chunk *next = c->next;
        free(c);
        c = next;
    }
    free(doc);
}

/* ------------------------------------------------------------------------ */
/* Key hash index (parser duplicate detection, equality of big objects)     */
/* ------------------------------------------------------------------------ */

/* Objects with more members than this get a hash index instead of linear scans. */
#define SMALL_OBJECT 16

static uint64_t process_seed;
static pthread_once_t process_seed_once = PTHREAD_ONCE_INIT;

/* Draws the process's random hash seed from the kernel (once). */
static void init_process_seed(void)
{
    uint64_t s = 0;
    if (getrandom(&s, sizeof(s), GRND_NONBLOCK) != (ssize_t)sizeof(s))
        s = (uint64_t)(uintptr_t)&s * 0x2545f4914f6cdd1du; /* ASLR as a fallback */
    process_seed = s;
}

/* Seeded hash of a key. The seed is random per process and varies per index,
 * so a client cannot precompute keys that collide (hash flooding). */
static uint64_t hash_key(const char *s, size_t n, uint64_t seed)
{
    uint64_t h = seed ^ ((uint64_t)n * 0x9e3779b97f4a7c15u);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdu;
        h ^= h >> 29;
        s += 8;
        n -= 8;
    }
    uint64_t w = 0;
    if (n) memcpy(&w, s, n);
    h = (h ^ w) * 0xc4ceb9fe1a85ec53u;
    h ^= h >> 32;
    h *= 0x9e3779b97f4a7c15u;
    h ^= h >> 29;
    return h;
}

/*
 * Open-addressing table of member positions (+1; 0 marks an empty slot),
 * kept at load <= 1/2. The table lives in a document's arena.
 */
struct keyindex {
    uint32_t *tab; /* NULL when there is no index */
    size_t mask;   /* table size - 1 */
    uint64_t seed;
};

static int key_eq(const nana_json_member *m, const char *key, size_t keylen)
{
    return m->keylen == keylen && (keylen == 0 || memcmp(m->key, key, keylen) == 0);
}

/* Position of key among members m (which the index describes), or SIZE_MAX. */
static size_t keyindex_find(const struct keyindex *ix, const nana_json_member *m, const char *key,
                            size_t keylen)
{
    size_t i = (size_t)hash_key(key, keylen, ix->seed) & ix->mask;
    for (;;) {
        uint32_t e = ix->tab[i];
        if (e == 0) return SIZE_MAX;
        if (key_eq(&m[e - 1], key, keylen)) return e - 1;
        i = (i + 1) & ix->mask;
    }
}

static void keyindex_put(struct keyindex *ix, const nana_json_member *m, size_t pos)
{
    size_t i = (size_t)hash_key(m[pos].key, m[pos].keylen, ix->seed) & ix->mask;
    while (ix->tab[i])
        i = (i + 1) & ix->mask;
    ix->tab[i] = (uint32_t)(pos + 1);
}

/* Empties the index and enters members m[0..count) (unique keys, count <= half the table). */
static void keyindex_fill(struct keyindex *ix, const nana_json_member *m, size_t count)
{
    memset(ix->tab, 0, (ix->mask + 1) * sizeof(uint32_t));
    for (size_t i = 0; i < count; i++)
        keyindex_put(ix, m, i);
}

/* Gives ix an empty table in d with room for room keys. 0 or NANA_ERR_NOMEM. */
static int keyindex_alloc(nana_json_doc *d, struct keyindex *ix, size_t room)
{
    size_t size = 64;
    while (size < room * 2)
        size *= 2;
    uint32_t *tab = arena_alloc(d, size * sizeof(uint32_t), alignof(uint32_t));
    if (!tab) return oom();
    memset(tab, 0, size * sizeof(uint32_t));
    ix->tab = tab;
    ix->mask = size - 1;
    pthread_once(&process_seed_once, init_process_seed);
    ix->seed = process_seed ^ ((uint64_t)(uintptr_t)tab * 0x2545f4914f6cdd1du);
    return NANA_OK;
}

/*
 * Member arrays of objects with more than SMALL_OBJECT slots are preceded
 * in the arena by this header, and the object's cap has CAP_INDEXED set.
 * The index is trusted only while it describes the current array and count
 * (code that edits members directly just loses the fast path).
 */
struct objhdr {
    nana_json_member *members; /* the array right after this header */
    size_t count;              /* members entered in the index */
    struct keyindex ix;
};

#define CAP_INDEXED 0x80000000u
#define CAP_MASK    0x7fffffffu
#define MAX_ELEMS   0x7ffffffeu /* elements per array/object */

/* The header of an object's member array, in sync or not; NULL if it has none. */
static struct objhdr *obj_hdr_raw(const nana_json *obj)
{
    if (obj->type != NANA_JSON_OBJECT || !(obj->cap & CAP_INDEXED) || !obj->u.members) return NULL;
    struct objhdr *h = (struct objhdr *)(void *)((char *)obj->u.members - sizeof(struct objhdr));
    return h->members == obj->u.members ? h : NULL;
}

/* The index of object obj if it is in sync with the members, else NULL. */
static struct objhdr *obj_index(const nana_json *obj)
{
    struct objhdr *h = obj_hdr_raw(obj);
    return h && h->count == obj->n ? h : NULL;
}

/*
 * A member array with room for cap members, owned by d. Beyond SMALL_OBJECT
 * it gets a header with an empty index (*hdr; else NULL); adopt, if given,
 * is an existing table with room for cap keys to use instead of a new one.
 * NULL on OOM.
 */
static nana_json_member *members_alloc(nana_json_doc *d, size_t cap, const struct keyindex *adopt,
                                       struct objhdr **hdr)
{
    *hdr = NULL;
    if (cap <= SMALL_OBJECT)
        return arena_alloc(d, cap * sizeof(nana_json_member), alignof(nana_json_member));
    char *blk = arena_alloc(d, sizeof(struct objhdr) + cap * sizeof(nana_json_member),
                            alignof(struct objhdr));
    if (!blk) return NULL;
    struct objhdr *h = (struct objhdr *)(void *)blk;
    h->members = (nana_json_member *)(void *)(blk + sizeof(struct objhdr));
    h->count = 0;
    if (adopt && adopt->tab && adopt->mask + 1 >= cap * 2)
        h->ix = *adopt;
    else if (keyindex_alloc(d, &h->ix, cap))
        return NULL;
    *hdr = h;
    return h->members;
}

/* Position of key in object obj, or SIZE_MAX: hashed when indexed, else a linear scan. */
static size_t member_find(const nana_json *obj, const char *key, size_t keylen)
{
    struct objhdr *h = obj_index(obj);
    if (h) return keyindex_find(&h->ix, obj->u.members, key, keylen);
    for (size_t i = 0; i < obj->n; i++)
        if (key_eq(&obj->u.members[i], key, keylen)) return i;
    return SIZE_MAX;
}

/* ------------------------------------------------------------------------ */
/* UTF-8 and string scanning                                                */
/* ------------------------------------------------------------------------ */

/*
 * Length (2..4) of the valid UTF-8 sequence starting at s (s[0] >= 0x80),
 * with avail bytes readable; 0 if it is invalid (stray continuation byte,
 * overlong form, encoded surrogate, above U+10FFFF or truncated).
 */
static size_t utf8_seq(const unsigned char *s, size_t avail)
{
    unsigned c = s[0];
    if (c < 0xC2) return 0;
    if (c < 0xE0) return avail >= 2 && (s[1] & 0xC0) == 0x80 ? 2 : 0;
    unsigned lo = 0x80, hi = 0xBF;
    if (c < 0xF0) {
        if (c == 0xE0) lo = 0xA0; /* overlong below U+0800 */
        if (c == 0xED) hi = 0x9F; /* U+D800..U+DFFF */
        if (avail < 3 || s[1] < lo || s[1] > hi || (s[2] & 0xC0) != 0x80) return 0;
        return 3;
    }
    if (c < 0xF5) {
        if (c == 0xF0) lo = 0x90; /* overlong below U+10000 */
        if (c == 0xF4) hi = 0x8F; /* above U+10FFFF */
        if (avail < 4 || s[1] < lo || s[1] > hi || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80)
            return 0;
        return 4;
    }
    return 0;
}

/* Offset of the first invalid UTF-8 byte in s[0..n), or n if all valid. */
static size_t utf8_check(const unsigned char *s, size_t n);

int nana_utf8_valid(const char *p, size_t n)
{
    return utf8_check((const unsigned char *)p, n) == n;
}

static size_t utf8_check(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (n - i >= 8) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (!(w & 0x8080808080808080u)) {
                i += 8;
                continue;
            }
        }
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        size_t k = utf8_seq(s + i, n - i);
        if (!k) return i;
        i += k;
    }
    return n;
}

#define ONES 0x0101010101010101u
#define HIGH 0x8080808080808080u

/*
 * Nonzero if any of the 8 bytes in w is '"', '\\', below 0x20 or at least
 * 0x80: the bytes a JSON string scanner must look at individually.
 */
static uint64_t swar_special(uint64_t w)
{
    uint64_t q = w ^ (ONES * '"');
    uint64_t b = w ^ (ONES * '\\');
    return (((q - ONES) & ~q) | ((b - ONES) & ~b) | (w - ONES * 0x20) | w) & HIGH;
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* The 4 hex digits at s as a code unit, or -1. s must have 4 readable bytes. */
static long hex4(const unsigned char *s)
{
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(s[i]);
        if (h < 0) return -1;
        v = v * 16 + h;
    }
    return v;
}

static int json_err(size_t pos, const char *what)
{
    return nana_err_set(NANA_ERR_JSON, "invalid JSON at byte %zu: %s", pos, what);
}

/*
 * Scans the string whose opening quote is at p[*pos]; on success *pos is
 * just past the closing quote and *escaped tells whether it holds escapes
 * (so the raw bytes between the quotes are not its decoded form). Checks
 * everything: UTF-8, control characters, escapes, surrogate pairing.
 */
static int scan_string(const char *p, size_t n, size_t *pos, int *escaped)
{
    const unsigned char *s = (const unsigned char *)p;
    size_t i = *pos + 1;
    int esc = 0;
    for (;;) {
        while (n - i >= 8) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (swar_special(w)) break;
            i += 8;
        }
        if (i >= n) return json_err(*pos, "unterminated string");
        unsigned c = s[i];
        if (c == '"') {
            *pos = i + 1;
            *escaped = esc;
            return NANA_OK;
        }
        if (c == '\\') {
            esc = 1;
            if (i + 1 >= n) return json_err(*pos, "unterminated string");
            unsigned e = s[i + 1];
            if (e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n' || e == 'r' ||
                e == 't') {
                i += 2;
                continue;
            }
            if (e != 'u') return json_err(i, "invalid escape in string");
            if (n - i < 6) return json_err(i, "truncated \\u escape");
            long u = hex4(s + i + 2);
            if (u < 0) return json_err(i, "invalid \\u escape (need 4 hex digits)");
            if (u >= 0xDC00 && u <= 0xDFFF) return json_err(i, "lone low surrogate in \\u escape");
            if (u >= 0xD800 && u <= 0xDBFF) {
                long lo = -1;
                if (n - i >= 12 && s[i + 6] == '\\' && s[i + 7] == 'u') lo = hex4(s + i + 8);
                if (lo < 0xDC00 || lo > 0xDFFF)
                    return json_err(i, "high surrogate in \\u escape not followed by a low one");
                i += 12;
                continue;
            }
            i += 6;
            continue;
        }
        if (c < 0x20) {
            char msg[64];
            snprintf(msg, sizeof(msg), "raw control character 0x%02x in string", c);
            return json_err(i, msg);
        }
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t k = utf8_seq(s + i, n - i);
        if (!k) return json_err(i, "invalid UTF-8 in string");
        i += k;
    }
}

/* Appends code point cp as UTF-8 at d; returns the bytes written. */
static size_t put_utf8(char *d, unsigned long cp)
{
    if (cp < 0x80) {
        d[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        d[0] = (char)(0xC0 | (cp >> 6));
        d[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        d[0] = (char)(0xE0 | (cp >> 12));
        d[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        d[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    d[0] = (char)(0xF0 | (cp >> 18));
    d[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    d[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    d[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/*
 * Decodes the already-validated string body s[0..n) (between the quotes)
 * into out, which has room for n bytes (decoding never grows). Returns the
 * decoded length.
 */
static size_t decode_string(const unsigned char *s, size_t n, char *out)
{
    size_t i = 0, o = 0;
    while (i < n) {
        const unsigned char *bs = memchr(s + i, '\\', n - i);
        size_t run = bs ? (size_t)(bs - s) : n;
        memcpy(out + o, s + i, run - i);
        o += run - i;
        i = run;
        if (i >= n) break;
        unsigned e = s[i + 1];
        i += 2;
        switch (e) {
        case 'b':
            out[o++] = '\b';
            break;
        case 'f':
            out[o++] = '\f';
            break;
        case 'n':
            out[o++] = '\n';
            break;
        case 'r':
            out[o++] = '\r';
            break;
        case 't':
            out[o++] = '\t';
            break;
        case 'u': {
            unsigned long cp = (unsigned long)hex4(s + i);
            i += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                unsigned long lo = (unsigned long)hex4(s + i + 2);
                i += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            o += put_utf8(out + o, cp);
            break;
        }
        default: /* '"', '\\', '/' stand for themselves */
            out[o++] = (char)e;
            break;
        }
    }
    return o;
}

/* ------------------------------------------------------------------------ */
/* The grammar machine                                                      */
/* ------------------------------------------------------------------------ */

/* One open container while parsing into a tree. */
struct frame {
    nana_json *node; /* the array or object being filled */
    size_t start;    /* its first child in builder.slots */
    const char *key; /* object: key of the value about to be parsed */
    uint32_t keylen;
    struct keyindex ix; /* object with many members: index over its slots (in the arena) */
};

/* Tree-building state (parse mode only). Scratch memory is malloc'd and freed by the parser. */
struct builder {
    nana_json_doc *doc;
    nana_json *root;
    nana_json_member *slots; /* children of all open containers, innermost last */
    size_t nslots, slots_cap;
    struct frame *frames; /* frames[depth - 1] is the innermost open container */
    size_t frames_cap;
};

struct machine {
    const char *p;
    size_t n;
    unsigned flags;
    unsigned max_depth;
    unsigned depth;
    uint64_t kinds[NANA_JSON_MAX_DEPTH_LIMIT / 64]; /* bit set: that level is an object */
    struct builder *b;                              /* NULL when only validating */
};

static int top_is_object(const struct machine *m)
{
    unsigned k = m->depth - 1;
    return (int)((m->kinds[k / 64] >> (k % 64)) & 1u);
}

static size_t skip_ws(const char *p, size_t n, size_t i)
{
    while (i < n && (p[i] == ' ' || p[i] == '\n' || p[i] == '\r' || p[i] == '\t'))
        i++;
    return i;
}

static nana_json *node_new(nana_json_doc *d, nana_json_type t)
{
    nana_json *v = arena_alloc(d, sizeof(*v), alignof(nana_json));
    if (!v) {
        oom();
        return NULL;
    }
    v->type = t;
    v->n = 0;
    v->u.str = NULL;
    v->cap = 0;
    return v;
}

/* Adds one child slot to the builder's scratch vector. */
static int slots_push(struct builder *b, const char *key, uint32_t keylen, nana_json *v)
{
    if (b->nslots == b->slots_cap) {
        size_t cap = b->slots_cap ? b->slots_cap * 2 : 64;
        nana_json_member *s = realloc(b->slots, cap * sizeof(*s));
        if (!s) return oom();
        b->slots = s;
        b->slots_cap = cap;
    }
    b->slots[b->nslots].key = key;
    b->slots[b->nslots].keylen = keylen;
    b->slots[b->nslots].val = v;
    b->nslots++;
    return NANA_OK;
}

/*
 * Attaches a freshly created value to the innermost open container (or
 * makes it the root). For objects, a repeated key replaces the earlier
 * value in place.
 */
static int attach(struct machine *m, nana_json *v, size_t pos)
{
    struct builder *b = m->b;
    if (m->depth == 0) {
        b->root = v;
        return NANA_OK;
    }
    struct frame *f = &b->frames[m->depth - 1];
    size_t count = b->nslots - f->start;
    if (count >= MAX_ELEMS)
        return nana_err_set(NANA_ERR_TOOBIG, "JSON container at byte %zu has too many elements",
                            pos);
    if (!top_is_object(m)) return slots_push(b, NULL, 0, v);

    nana_json_member *mem = count ? b->slots + f->start : NULL;
    size_t at = SIZE_MAX;
    if (f->ix.tab) {
        at = keyindex_find(&f->ix, mem, f->key, f->keylen);
    } else {
        for (size_t i = 0; i < count; i++)
            if (key_eq(&mem[i], f->key, f->keylen)) {
                at = i;
                break;
            }
    }
    if (at != SIZE_MAX) {
        mem[at].val = v;
        return NANA_OK;
    }
    int rc = slots_push(b, f->key, f->keylen, v);
    if (rc) return rc;
    count++;
    mem = b->slots + f->start;
    if (count <= SMALL_OBJECT) return NANA_OK;
    if (f->ix.tab && count * 2 <= f->ix.mask + 1) {
        keyindex_put(&f->ix, mem, count - 1);
        return NANA_OK;
    }
    /* (Re)build with room to double; an outgrown table stays in the arena unused. */
    if ((rc = keyindex_alloc(m->b->doc, &f->ix, count * 2))) return rc;
    keyindex_fill(&f->ix, mem, count);
    return NANA_OK;
}

/* Opens a container at p[pos]: depth check, and in parse mode a node and a frame. */
static int open_container(struct machine *m, int is_object, size_t pos)
{
    if (m->depth >= m->max_depth) {
        char msg[80];
        snprintf(msg, sizeof(msg), "nesting too deep (limit %u)", m->max_depth);
        return json_err(pos, msg);
    }
    struct builder *b = m->b;
    if (b) {
        nana_json *v = node_new(b->doc, is_object ? NANA_JSON_OBJECT : NANA_JSON_ARRAY);
        if (!v) return NANA_ERR_NOMEM;
        int rc = attach(m, v, pos);
        if (rc) return rc;
        if (m->depth == b->frames_cap) {
            size_t cap = b->frames_cap ? b->frames_cap * 2 : 16;
            struct frame *fr = realloc(b->frames, cap * sizeof(*fr));
            if (!fr) return oom();
            b->frames = fr;
            b->frames_cap = cap;
        }
        struct frame *f = &b->frames[m->depth];
        f->node = v;
        f->start = b->nslots;
        f->key = NULL;
        f->keylen = 0;
        f->ix.tab = NULL;
        f->ix.mask = 0;
    }
    /* The first level of each 64-bit word assigns it whole, so no bit is read unset. */
    unsigned k = m->depth++;
    uint64_t bit = (uint64_t)1 << (k % 64);
    if (k % 64 == 0)
        m->kinds[k / 64] = is_object ? bit : 0;
    else if (is_object)
        m->kinds[k / 64] |= bit;
    else
        m->kinds[k / 64] &= ~bit;
    return NANA_OK;
}

/* Closes the innermost container; in parse mode copies its children into the arena. */
static int close_container(struct machine *m)
{
    struct builder *b = m->b;
    if (b) {
        if (!b->frames || m->depth == 0) return NANA_ERR_INTERNAL;
        struct frame *f = &b->frames[m->depth - 1];
        size_t count = b->nslots - f->start;
        nana_json *v = f->node;
        v->cap = (uint32_t)count;
        if (count) {
            if (v->type == NANA_JSON_OBJECT) {
                struct objhdr *h;
                nana_json_member *mem = members_alloc(b->doc, count, &f->ix, &h);
                if (!mem) return oom();
                memcpy(mem, b->slots + f->start, count * sizeof(*mem));
                v->u.members = mem;
                if (h) {
                    /* The parse-time index holds positions, so it is still right. */
                    if (h->ix.tab != f->ix.tab) keyindex_fill(&h->ix, mem, count);
                    h->count = count;
                    v->cap |= CAP_INDEXED;
                }
            } else {
                nana_json **items =
                    arena_alloc(b->doc, count * sizeof(*items), alignof(nana_json *));
                if (!items) return oom();
                for (size_t i = 0; i < count; i++)
                    items[i] = b->slots[f->start + i].val;
                v->u.items = items;
            }
        }
        v->n = (uint32_t)count;
        b->nslots = f->start;
    }
    m->depth--;
    return NANA_OK;
}

/*
 * Parses the object key string at p[*pos] plus the following ':' and
 * whitespace; in parse mode decodes it into the arena as the pending key.
 */
static int parse_key(struct machine *m, size_t *pos)
{
    size_t i = *pos;
    if (i >= m->n || m->p[i] != '"') return json_err(i, "expected a string key");
    int escaped;
    int rc = scan_string(m->p, m->n, &i, &escaped);
    if (rc) return rc;
    if (m->b) {
        size_t raw = i - *pos - 2;
        if (raw > UINT32_MAX - 1)
            return nana_err_set(NANA_ERR_TOOBIG, "JSON key at byte %zu is too long", *pos);
        char *k = arena_alloc(m->b->doc, raw + 1, 1);
        if (!k) return oom();
        const unsigned char *body = (const unsigned char *)m->p + *pos + 1;
        size_t len = raw;
        if (escaped)
            len = decode_string(body, raw, k);
        else if (raw)
            memcpy(k, body, raw);
        k[len] = '\0';
        struct frame *f = &m->b->frames[m->depth - 1];
        f->key = k;
        f->keylen = (uint32_t)len;
    }
    i = skip_ws(m->p, m->n, i);
    if (i >= m->n || m->p[i] != ':') return json_err(i, "expected ':'");
    *pos = skip_ws(m->p, m->n, i + 1);
    return NANA_OK;
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Scans a number (RFC grammar, or NaN/Infinity with the flag) starting at p[*pos]. */
static int scan_number(const struct machine *m, size_t *pos)
{
    const char *p = m->p;
    size_t n = m->n, i = *pos;
    if (p[i] == '-') i++;
    if (i < n && (p[i] == 'I' || p[i] == 'N')) {
        int neg = i > *pos;
        const char *word = p[i] == 'I' ? "Infinity" : "NaN";
        size_t wl = strlen(word);
        if ((neg && p[i] == 'N') || n - i < wl || memcmp(p + i, word, wl) != 0)
            return json_err(*pos, "expected a value");
        if (!(m->flags & NANA_JSON_ALLOW_NONFINITE))
            return json_err(*pos, "NaN and Infinity are not allowed here");
        *pos = i + wl;
        return NANA_OK;
    }
    if (i >= n || !is_digit(p[i])) return json_err(i, "expected a digit after '-'");
    if (p[i] == '0') {
        i++;
        if (i < n && is_digit(p[i])) return json_err(*pos, "leading zeros are not allowed");
    } else {
        while (i < n && is_digit(p[i]))
            i++;
    }
    if (i < n && p[i] == '.') {
        i++;
        if (i >= n || !is_digit(p[i])) return json_err(i, "expected a digit after '.'");
        while (i < n && is_digit(p[i]))
            i++;
    }
    if (i < n && (p[i] == 'e' || p[i] == 'E')) {
        i++;
        if (i < n && (p[i] == '+' || p[i] == '-')) i++;
        if (i >= n || !is_digit(p[i])) return json_err(i, "expected a digit in the exponent");
        while (i < n && is_digit(p[i]))
            i++;
    }
    *pos = i;
    return NANA_OK;
}

/* Creates and attaches a scalar node (parse mode). txt is copied when given. */
static int emit_scalar(struct machine *m, nana_json_type t, const char *txt, size_t len, size_t pos)
{
    nana_json *v = node_new(m->b->doc, t);
    if (!v) return NANA_ERR_NOMEM;
    if (t == NANA_JSON_NUMBER) {
        if (len > UINT32_MAX - 1)
            return nana_err_set(NANA_ERR_TOOBIG, "JSON number at byte %zu is too long", pos);
        char *s = arena_strdup(m->b->doc, txt, len);
        if (!s) return oom();
        v->u.str = s;
        v->n = (uint32_t)len;
    }
    return attach(m, v, pos);
}

/* Creates and attaches a string node for the string token p[start..end) (parse mode). */
static int emit_string(struct machine *m, size_t start, size_t end, int escaped)
{
    size_t raw = end - start - 2;
    if (raw > UINT32_MAX - 1)
        return nana_err_set(NANA_ERR_TOOBIG, "JSON string at byte %zu is too long", start);
    nana_json *v = node_new(m->b->doc, NANA_JSON_STRING);
    if (!v) return NANA_ERR_NOMEM;
    char *s = arena_alloc(m->b->doc, raw + 1, 1);
    if (!s) return oom();
    const unsigned char *body = (const unsigned char *)m->p + start + 1;
    size_t len = raw;
    if (escaped)
        len = decode_string(body, raw, s);
    else if (raw)
        memcpy(s, body, raw);
    s[len] = '\0';
    v->u.str = s;
    v->n = (uint32_t)len;
    return attach(m, v, start);
}

static int match_word(const char *p, size_t n, size_t i, const char *w, size_t wl)
{
    return n - i >= wl && memcmp(p + i, w, wl) == 0;
}

/*
 * The grammar: reads one complete JSON text, validating it and, in parse
 * mode, building the tree. Iterative; nesting lives in m->kinds (and in the
 * builder's frames).
 */
static int run(struct machine *m)
{
    const char *p = m->p;
    size_t n = m->n;
    size_t i = skip_ws(p, n, 0);
    int rc;
    for (;;) {
        /* A value starts at p[i]. */
        if (i >= n) return json_err(i, "expected a value");
        size_t start = i;
        char c = p[i];
        switch (c) {
        case '{':
        case '[':
            if ((rc = open_container(m, c == '{', i))) return rc;
            i = skip_ws(p, n, i + 1);
            if (i < n && p[i] == (c == '{' ? '}' : ']')) {
                if ((rc = close_container(m))) return rc;
                i++;
                break;
            }
            if (c == '{' && (rc = parse_key(m, &i))) return rc;
            continue;
        case '"': {
            int escaped = 0;
            if ((rc = scan_string(p, n, &i, &escaped))) return rc;
            if (m->b && (rc = emit_string(m, start, i, escaped))) return rc;
            break;
        }
        case 't':
        case 'f':
        case 'n': {
            const char *w = c == 't' ? "true" : c == 'f' ? "false" : "null";
            size_t wl = strlen(w);
            if (!match_word(p, n, i, w, wl)) return json_err(i, "invalid literal");
            i += wl;
            nana_json_type t = c == 't'   ? NANA_JSON_TRUE
                               : c == 'f' ? NANA_JSON_FALSE
                                          : NANA_JSON_NULL;
            if (m->b && (rc = emit_scalar(m, t, NULL, 0, start))) return rc;
            break;
        }
        default:
            if (c != '-' && !is_digit(c) && c != 'N' && c != 'I')
                return json_err(i, "expected a value");
            if ((rc = scan_number(m, &i))) return rc;
            if (m->b && (rc = emit_scalar(m, NANA_JSON_NUMBER, p + start, i - start, start)))
                return rc;
            break;
        }

        /* After a value: close containers or move to the next element. */
        for (;;) {
            if (m->depth == 0) {
                i = skip_ws(p, n, i);
                if (i != n) return json_err(i, "unexpected data after the JSON value");
                return NANA_OK;
            }
            i = skip_ws(p, n, i);
            int obj = top_is_object(m);
            if (i < n && p[i] == ',') {
                i = skip_ws(p, n, i + 1);
                if (obj && (rc = parse_key(m, &i))) return rc;
                break;
            }
            if (i < n && p[i] == (obj ? '}' : ']')) {
                if ((rc = close_container(m))) return rc;
                i++;
                continue;
            }
            return json_err(i, obj ? "expected ',' or '}'" : "expected ',' or ']'");
        }
    }
}

static unsigned clamp_depth(unsigned max_depth)
{
    return max_depth > NANA_JSON_MAX_DEPTH_LIMIT ? NANA_JSON_MAX_DEPTH_LIMIT : max_depth;
}

int nana_json_validate(const char *p, size_t n, unsigned flags, unsigned max_depth)
{
    struct machine m;
    m.p = p;
    m.n = n;
    m.flags = flags;
    m.max_depth = clamp_depth(max_depth);
    m.depth = 0;
    m.b = NULL;
    return run(&m);
}

int nana_json_parse(const char *p, size_t n, unsigned flags, unsigned max_depth,
                    nana_json_doc **out_doc, nana_json **out_root)
{
    *out_doc = NULL;
    *out_root = NULL;
    struct builder b;
    memset(&b, 0, sizeof(b));
    b.doc = nana_json_doc_new();
    if (!b.doc) return NANA_ERR_NOMEM;
    struct machine m;
    m.p = p;
    m.n = n;
    m.flags = flags;
    m.max_depth = clamp_depth(max_depth);
    m.depth = 0;
    m.b = &b;
    int rc = run(&m);
    free(b.slots);
    free(b.frames);
    if (rc) {
        nana_json_doc_free(b.doc);
        return rc;
    }
    *out_doc = b.doc;
    *out_root = b.root;
    return NANA_OK;
}

/* ------------------------------------------------------------------------ */
/* Builders                                                                 */
/* ------------------------------------------------------------------------ */

nana_json *nana_json_new_null(nana_json_doc *d)
{
    return node_new(d, NANA_JSON_NULL);
}

nana_json *nana_json_new_bool(nana_json_doc *d, int b)
{
    return node_new(d, b ? NANA_JSON_TRUE : NANA_JSON_FALSE);
}

nana_json *nana_json_new_number_text(nana_json_doc *d, const char *txt, size_t n)
{
    if (n > UINT32_MAX - 1) {
        (void)nana_err_set(NANA_ERR_TOOBIG, "number text of %zu bytes is too long", n);
        return NULL;
    }
    nana_json *v = node_new(d, NANA_JSON_NUMBER);
    if (!v) return NULL;
    char *s = arena_strdup(d, txt, n);
    if (!s) {
        oom();
        return NULL;
    }
    v->u.str = s;
    v->n = (uint32_t)n;
    return v;
}

nana_json *nana_json_new_int(nana_json_doc *d, int64_t v)
{
    char buf[32];
    int len = snprintf(buf, sizeof(buf), "%" PRId64, v);
    return nana_json_new_number_text(d, buf, (size_t)len);
}

/*
 * Formats finite, non-negative v as the shortest decimal that reads back as
 * v, in Python's repr layout, into out (at least 32 bytes). Returns the length.
 */
static size_t format_double_abs(double v, char *out)
{
    char tmp[40];
    char digits[24] = {0};
    int exp10 = 0;
    size_t nd = 0;
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*e", prec - 1, v);
        /* tmp is "d.ddde+XX" or "de+XX": split into digits and exponent. */
        char *e = strchr(tmp, 'e');
        nd = 0;
        for (char *q = tmp; q < e; q++)
            if (*q != '.') digits[nd++] = *q;
        exp10 = (int)strtol(e + 1, NULL, 10);
        if (strtod(tmp, NULL) == v) break;
        /*
         * Where v is a power of two its rounding interval is narrower below
         * than above, so the nearest prec-digit decimal can miss while the
         * next one up still reads back as v. Try it before adding a digit.
         */
        char up[24] = {0};
        memcpy(up, digits, nd);
        int upexp = exp10;
        size_t k = nd;
        while (k > 0 && up[k - 1] == '9')
            up[--k] = '0';
        if (k == 0) {
            up[0] = '1';
            upexp++;
        } else {
            up[k - 1]++;
        }
        snprintf(tmp, sizeof(tmp), "%c.%.*se%d", up[0], (int)(nd - 1), up + 1, upexp);
        if (strtod(tmp, NULL) == v) {
            memcpy(digits, up, nd);
            exp10 = upexp;
            break;
        }
    }
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;

    size_t o = 0;
    if (exp10 < -4 || exp10 >= 16) {
        out[o++] = digits[0];
        if (nd > 1) {
            out[o++] = '.';
            memcpy(out + o, digits + 1, nd - 1);
            o += nd - 1;
        }
        o += (size_t)sprintf(out + o, "e%c%02d", exp10 < 0 ? '-' : '+', abs(exp10));
    } else if (exp10 >= 0) {
        size_t ip = (size_t)exp10 + 1; /* digits before the point */
        for (size_t k = 0; k < ip; k++)
            out[o++] = k < nd ? digits[k] : '0';
        out[o++] = '.';
        if (nd > ip) {
            memcpy(out + o, digits + ip, nd - ip);
            o += nd - ip;
        } else {
            out[o++] = '0';
        }
    } else {
        out[o++] = '0';
        out[o++] = '.';
        for (int k = 0; k < -exp10 - 1; k++)
            out[o++] = '0';
        memcpy(out + o, digits, nd);
        o += nd;
    }
    out[o] = '\0';
    return o;
}

/*
 * Formats v like Python's repr into buf (at least 40 bytes) and returns the
 * length, or NANA_ERR_INVALID (negative) for NaN/infinity.
 */
static int format_double(double v, char *buf)
{
    if (isnan(v) || isinf(v))
        return nana_err_set(NANA_ERR_INVALID, "NaN and infinity cannot be stored as JSON numbers");
    size_t o = 0;
    if (signbit(v)) buf[o++] = '-';
    o += format_double_abs(fabs(v), buf + o);
    return (int)o;
}

nana_json *nana_json_new_double(nana_json_doc *d, double v)
{
    char buf[40];
    int len = format_double(v, buf);
    if (len < 0) return NULL;
    return nana_json_new_number_text(d, buf, (size_t)len);
}

int nana_json_write_double(nana_buf *out, double v)
{
    char buf[40];
    int len = format_double(v, buf);
    if (len < 0) return len;
    return nana_buf_append(out, buf, (size_t)len);
}

nana_json *nana_json_new_string(nana_json_doc *d, const char *s, size_t n)
{
    if (n > UINT32_MAX - 1) {
        (void)nana_err_set(NANA_ERR_TOOBIG, "string of %zu bytes is too long", n);
        return NULL;
    }
    size_t bad = utf8_check((const unsigned char *)s, n);
    if (bad != n) {
        (void)nana_err_set(NANA_ERR_INVALID, "string is not valid UTF-8 (byte %zu)", bad);
        return NULL;
    }
    nana_json *v = node_new(d, NANA_JSON_STRING);
    if (!v) return NULL;
    char *c = arena_strdup(d, s, n);
    if (!c) {
        oom();
        return NULL;
    }
    v->u.str = c;
    v->n = (uint32_t)n;
    return v;
}

nana_json *nana_json_new_array(nana_json_doc *d)
{
    return node_new(d, NANA_JSON_ARRAY);
}

nana_json *nana_json_new_object(nana_json_doc *d)
{
    return node_new(d, NANA_JSON_OBJECT);
}

int nana_json_array_append(nana_json_doc *d, nana_json *arr, nana_json *item)
{
    if (!arr || arr->type != NANA_JSON_ARRAY)
        return nana_err_set(NANA_ERR_TYPE, "append target is not a JSON array");
    if (!item) return nana_err_set(NANA_ERR_INVALID, "cannot append a NULL JSON value");
    if (arr->n >= arr->cap) {
        if (arr->n >= MAX_ELEMS) return nana_err_set(NANA_ERR_TOOBIG, "JSON array is full");
        size_t cap = arr->cap < 4 ? 4 : (size_t)arr->cap * 2;
        if (cap > MAX_ELEMS) cap = MAX_ELEMS;
        nana_json **items = arena_grow(d, arr->u.items, arr->n * sizeof(nana_json *),
                                       cap * sizeof(nana_json *), alignof(nana_json *));
        if (!items) return oom();
        arr->u.items = items;
        arr->cap = (uint32_t)cap;
    }
    arr->u.items[arr->n++] = item;
    return NANA_OK;
}

/* Re-enters every member into obj's index (after members moved). No allocation. */
static void obj_reindex(nana_json *obj)
{
    struct objhdr *h = obj_hdr_raw(obj);
    if (!h) return;
    keyindex_fill(&h->ix, obj->u.members, obj->n);
    h->count = obj->n;
}

int nana_json_object_set(nana_json_doc *d, nana_json *obj, const char *key, size_t keylen,
                         nana_json *val)
{
    if (!obj || obj->type != NANA_JSON_OBJECT)
        return nana_err_set(NANA_ERR_TYPE, "set target is not a JSON object");
    if (!val) return nana_err_set(NANA_ERR_INVALID, "cannot store a NULL JSON value");
    size_t at = member_find(obj, key, keylen);
    if (at != SIZE_MAX) {
        obj->u.members[at].val = val;
        return NANA_OK;
    }
    if (keylen > UINT32_MAX - 1) return nana_err_set(NANA_ERR_TOOBIG, "JSON key is too long");
    size_t bad = utf8_check((const unsigned char *)key, keylen);
    if (bad != keylen)
        return nana_err_set(NANA_ERR_INVALID, "JSON key is not valid UTF-8 (byte %zu)", bad);
    if (obj->n >= MAX_ELEMS) return nana_err_set(NANA_ERR_TOOBIG, "JSON object is full");
    char *k = arena_strdup(d, key, keylen);
    if (!k) return oom();
    size_t cap = obj->cap & CAP_MASK;
    if (obj->n >= cap) {
        cap = cap < 4 ? 4 : cap * 2;
        if (cap > MAX_ELEMS) cap = MAX_ELEMS;
        struct objhdr *h;
        nana_json_member *mem = members_alloc(d, cap, NULL, &h);
        if (!mem) return oom();
        if (obj->n) memcpy(mem, obj->u.members, obj->n * sizeof(*mem));
        obj->u.members = mem;
        obj->cap = (uint32_t)cap | (h ? CAP_INDEXED : 0);
        if (h) h->count = SIZE_MAX; /* filled below */
    }
    size_t pos = obj->n++;
    nana_json_member *m = &obj->u.members[pos];
    m->key = k;
    m->keylen = (uint32_t)keylen;
    m->val = val;
    struct objhdr *h = obj_hdr_raw(obj);
    if (h && h->count == pos) {
        keyindex_put(&h->ix, obj->u.members, pos);
        h->count = obj->n;
    } else if (h) {
        obj_reindex(obj);
    }
    return NANA_OK;
}

nana_json *nana_json_object_get(const nana_json *obj, const char *key, size_t keylen)
{
    if (!obj || obj->type != NANA_JSON_OBJECT) return NULL;
    size_t at = member_find(obj, key, keylen);
    return at == SIZE_MAX ? NULL : obj->u.members[at].val;
}

int nana_json_object_del(nana_json *obj, const char *key, size_t keylen)
{
    if (!obj || obj->type != NANA_JSON_OBJECT)
        return nana_err_set(NANA_ERR_TYPE, "delete target is not a JSON object");
    size_t at = member_find(obj, key, keylen);
    if (at == SIZE_MAX) return nana_err_set(NANA_ERR_NOTFOUND, "key not found in JSON object");
    memmove(&obj->u.members[at], &obj->u.members[at + 1],
            (obj->n - at - 1) * sizeof(nana_json_member));
    obj->n--;
    obj_reindex(obj);
    return NANA_OK;
}

/* ------------------------------------------------------------------------ */
/* Explicit stacks for tree walks                                           */
/* ------------------------------------------------------------------------ */

#define INLINE_FRAMES 32

/*
 * Doubles a walk stack whose storage starts in an inline (on-stack) array.
 * *base is replaced by heap memory that the caller frees when it differs
 * from inline_buf. 0 or NANA_ERR_NOMEM.
 */
static int stack_grow(void **base, size_t *cap, size_t elem, const void *inline_buf)
{
    size_t ncap = *cap * 2;
    void *p;
    if (*base == inline_buf) {
        p = malloc(ncap * elem);
        if (p) memcpy(p, *base, *cap * elem);
    } else {
        p = realloc(*base, ncap * elem);
    }
    if (!p) return oom();
    *base = p;
    *cap = ncap;
    return NANA_OK;
}

/* ------------------------------------------------------------------------ */
/* Clone                                                                    */
/* ------------------------------------------------------------------------ */

/* Copies src's own data into a new node of d; containers get an exact-size child array. */
static nana_json *clone_shallow(nana_json_doc *d, const nana_json *src)
{
    nana_json *v = node_new(d, src->type);
    if (!v) return NULL;
    v->n = src->n;
    switch (src->type) {
    case NANA_JSON_NUMBER:
    case NANA_JSON_STRING: {
        char *s = arena_strdup(d, src->u.str, src->n);
        if (!s) goto nomem;
        v->u.str = s;
        break;
    }
    case NANA_JSON_ARRAY:
        if (src->n) {
            v->u.items = arena_alloc(d, src->n * sizeof(nana_json *), alignof(nana_json *));
            if (!v->u.items) goto nomem;
        }
        v->cap = src->n;
        break;
    case NANA_JSON_OBJECT:
        v->cap = src->n;
        if (src->n) {
            struct objhdr *h;
            nana_json_member *m = members_alloc(d, src->n, NULL, &h);
            if (!m) goto nomem;
            for (uint32_t i = 0; i < src->n; i++) {
                char *k = arena_strdup(d, src->u.members[i].key, src->u.members[i].keylen);
                if (!k) goto nomem;
                m[i].key = k;
                m[i].keylen = src->u.members[i].keylen;
                m[i].val = NULL;
            }
            v->u.members = m;
            if (h) {
                keyindex_fill(&h->ix, m, src->n);
                h->count = src->n;
                v->cap |= CAP_INDEXED;
            }
        }
        break;
    default:
        break;
    }
    return v;
nomem:
    oom();
    return NULL;
}

struct clone_frame {
    const nana_json *src;
    nana_json *dst;
    uint32_t i;
};

nana_json *nana_json_clone(nana_json_doc *d, const nana_json *src)
{
    if (!src) {
        (void)nana_err_set(NANA_ERR_INVALID, "cannot clone a NULL JSON value");
        return NULL;
    }
    nana_json *root = clone_shallow(d, src);
    if (!root || !root->n || (src->type != NANA_JSON_ARRAY && src->type != NANA_JSON_OBJECT))
        return root;
    struct clone_frame inl[INLINE_FRAMES];
    void *base = inl;
    size_t cap = INLINE_FRAMES, depth = 0;
    struct clone_frame *st = base;
    st[depth++] = (struct clone_frame){src, root, 0};
    while (depth) {
        struct clone_frame *f = &st[depth - 1];
        if (f->i == f->src->n) {
            depth--;
            continue;
        }
        uint32_t i = f->i++;
        int obj = f->src->type == NANA_JSON_OBJECT;
        const nana_json *cs = obj ? f->src->u.members[i].val : f->src->u.items[i];
        nana_json *cd = clone_shallow(d, cs);
        if (!cd) {
            root = NULL;
            break;
        }
        if (obj)
            f->dst->u.members[i].val = cd;
        else
            f->dst->u.items[i] = cd;
        if ((cs->type == NANA_JSON_ARRAY || cs->type == NANA_JSON_OBJECT) && cs->n) {
            if (depth == cap) {
                if (stack_grow(&base, &cap, sizeof(*st), inl)) {
                    root = NULL;
                    break;
                }
                st = base;
            }
            st[depth++] = (struct clone_frame){cs, cd, 0};
        }
    }
    if (base != inl) free(base);
    return root;
}

/* ------------------------------------------------------------------------ */
/* Numbers                                                                  */
/* ------------------------------------------------------------------------ */

int nana_json_number_is_integer(const nana_json *num)
{
    if (!num || num->type != NANA_JSON_NUMBER || num->n == 0) return 0;
    const char *s = num->u.str;
    size_t i = s[0] == '-' ? 1 : 0;
    if (i >= num->n || !is_digit(s[i])) return 0; /* NaN, Infinity */
    for (; i < num->n; i++)
        if (s[i] == '.' || s[i] == 'e' || s[i] == 'E') return 0;
    return 1;
}

int nana_json_number_int64(const nana_json *num, int64_t *out)
{
    if (!nana_json_number_is_integer(num))
        return nana_err_set(NANA_ERR_TYPE, "JSON value is not an integer");
    const char *s = num->u.str;
    size_t i = 0;
    int neg = s[0] == '-';
    if (neg) i++;
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    uint64_t acc = 0;
    for (; i < num->n; i++) {
        if (!is_digit(s[i])) return nana_err_set(NANA_ERR_TYPE, "JSON value is not an integer");
        unsigned dgt = (unsigned)(s[i] - '0');
        if (acc > (limit - dgt) / 10)
            return nana_err_set(NANA_ERR_TOOBIG, "integer %.40s%s does not fit in 64 bits", s,
                                num->n > 40 ? "..." : "");
        acc = acc * 10 + dgt;
    }
    if (neg)
        *out = acc == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)acc;
    else
        *out = (int64_t)acc;
    return NANA_OK;
}

int nana_json_number_double(const nana_json *num, double *out)
{
    if (!num || num->type != NANA_JSON_NUMBER || num->n == 0)
        return nana_err_set(NANA_ERR_TYPE, "JSON value is not a number");
    const char *s = num->u.str;
    if (strcmp(s, "NaN") == 0) {
        *out = (double)NAN;
        return NANA_OK;
    }
    if (strcmp(s, "Infinity") == 0 || strcmp(s, "-Infinity") == 0) {
        *out = s[0] == '-' ? -(double)INFINITY : (double)INFINITY;
        return NANA_OK;
    }
    if (s[0] != '-' && !is_digit(s[0]))
        return nana_err_set(NANA_ERR_TYPE, "JSON number text is malformed");
    char *end;
    double v = strtod(s, &end);
    if (end != s + num->n) return nana_err_set(NANA_ERR_TYPE, "JSON number text is malformed");
    *out = v;
    return NANA_OK;
}

/* ------------------------------------------------------------------------ */
/* Writer                                                                   */
/* ------------------------------------------------------------------------ */

/*
 * Appends s[0..n) as a quoted JSON string; when check is set, refuses bytes
 * that are not valid UTF-8 (NANA_ERR_INVALID).
 */
static int write_str(nana_buf *out, const char *s, size_t n, int check)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *u = (const unsigned char *)s;
    int rc = nana_buf_putc(out, '"');
    if (rc) return rc;
    size_t run = 0, i = 0; /* u[run..i) is pending raw output */
    while (i < n) {
        if (n - i >= 8) {
            uint64_t w;
            memcpy(&w, u + i, 8);
            if (!swar_special(w)) {
                i += 8;
                continue;
            }
        }
        unsigned c = u[i];
        if (c >= 0x80) {
            size_t k = 1;
            if (check) {
                k = utf8_seq(u + i, n - i);
                if (!k)
                    return nana_err_set(NANA_ERR_INVALID, "string is not valid UTF-8 (byte %zu)",
                                        i);
            }
            i += k;
            continue;
        }
        if (c >= 0x20 && c != '"' && c != '\\') {
            i++;
            continue;
        }
        if ((rc = nana_buf_append(out, u + run, i - run))) return rc;
        char esc[6] = {'\\', 0, 0, 0, 0, 0};
        size_t el = 2;
        switch (c) {
        case '"':
            esc[1] = '"';
            break;
        case '\\':
            esc[1] = '\\';
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            el = 6;
            break;
        }
        if ((rc = nana_buf_append(out, esc, el))) return rc;
        run = ++i;
    }
    if ((rc = nana_buf_append(out, u + run, n - run))) return rc;
    return nana_buf_putc(out, '"');
}

int nana_json_write_string(nana_buf *out, const char *s, size_t n)
{
    return write_str(out, s, n, 1);
}

/* Writes v if it is a scalar or an empty container, else just its opening bracket. */
static int write_open(nana_buf *out, const nana_json *v)
{
    switch (v->type) {
    case NANA_JSON_NULL:
        return nana_buf_append(out, "null", 4);
    case NANA_JSON_FALSE:
        return nana_buf_append(out, "false", 5);
    case NANA_JSON_TRUE:
        return nana_buf_append(out, "true", 4);
    case NANA_JSON_NUMBER:
        return nana_buf_append(out, v->u.str, v->n);
    case NANA_JSON_STRING:
        return write_str(out, v->u.str, v->n, 0);
    case NANA_JSON_ARRAY:
        return v->n ? nana_buf_putc(out, '[') : nana_buf_append(out, "[]", 2);
    case NANA_JSON_OBJECT:
        return v->n ? nana_buf_putc(out, '{') : nana_buf_append(out, "{}", 2);
    }
    return nana_err_set(NANA_ERR_INVALID, "JSON node has an unknown type %d", (int)v->type);
}

static int is_open_container(const nana_json *v)
{
    return (v->type == NANA_JSON_ARRAY || v->type == NANA_JSON_OBJECT) && v->n;
}

struct write_frame {
    const nana_json *v;
    uint32_t i;
};

int nana_json_write(nana_buf *out, const nana_json *v)
{
    if (!v) return nana_err_set(NANA_ERR_INVALID, "cannot write a NULL JSON value");
    int rc = write_open(out, v);
    if (rc || !is_open_container(v)) return rc;
    struct write_frame inl[INLINE_FRAMES];
    void *base = inl;
    size_t cap = INLINE_FRAMES, depth = 0;
    struct write_frame *st = base;
    st[depth++] = (struct write_frame){v, 0};
    while (depth) {
        struct write_frame *f = &st[depth - 1];
        int obj = f->v->type == NANA_JSON_OBJECT;
        if (f->i == f->v->n) {
            if ((rc = nana_buf_putc(out, obj ? '}' : ']'))) break;
            depth--;
            continue;
        }
        uint32_t i = f->i++;
        if (i && (rc = nana_buf_putc(out, ','))) break;
        const nana_json *c;
        if (obj) {
            const nana_json_member *m = &f->v->u.members[i];
            if ((rc = write_str(out, m->key, m->keylen, 0))) break;
            if ((rc = nana_buf_putc(out, ':'))) break;
            c = m->val;
        } else {
            c = f->v->u.items[i];
        }
        if ((rc = write_open(out, c))) break;
        if (is_open_container(c)) {
            if (depth == cap) {
                if ((rc = stack_grow(&base, &cap, sizeof(*st), inl))) break;
                st = base;
            }
            st[depth++] = (struct write_frame){c, 0};
        }
    }
    if (base != inl) free(base);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Equality                                                                 */
/* ------------------------------------------------------------------------ */

/* Compares a and b without looking at children. */
static int equal_shallow(const nana_json *a, const nana_json *b)
{
    if (a->type != b->type) return 0;
    switch (a->type) {
    case NANA_JSON_NUMBER:
    case NANA_JSON_STRING:
        return a->n == b->n && (a->n == 0 || memcmp(a->u.str, b->u.str, a->n) == 0);
    case NANA_JSON_ARRAY:
    case NANA_JSON_OBJECT:
        return a->n == b->n;
    default:
        return 1;
    }
}

struct equal_frame {
    const nana_json *a, *b;
    uint32_t i;
};

int nana_json_equal(const nana_json *a, const nana_json *b)
{
    if (!a || !b) return a == b;
    if (!equal_shallow(a, b)) return 0;
    if (!is_open_container(a)) return 1;
    struct equal_frame inl[INLINE_FRAMES];
    void *base = inl;
    size_t cap = INLINE_FRAMES, depth = 0;
    struct equal_frame *st = base;
    st[depth++] = (struct equal_frame){a, b, 0};
    int result = 1;
    while (depth && result) {
        struct equal_frame *f = &st[depth - 1];
        if (f->i == f->a->n) {
            depth--;
            continue;
        }
        uint32_t i = f->i++;
        const nana_json *ca, *cb;
        if (f->a->type == NANA_JSON_OBJECT) {
            const nana_json_member *m = &f->a->u.members[i];
            ca = m->val;
            size_t at = member_find(f->b, m->key, m->keylen);
            if (at == SIZE_MAX) {
                result = 0;
                break;
            }
            cb = f->b->u.members[at].val;
        } else {
            ca = f->a->u.items[i];
            cb = f->b->u.items[i];
        }
        if (!equal_shallow(ca, cb)) {
            result = 0;
            break;
        }
        if (is_open_container(ca)) {
            if (depth == cap) {
                if (stack_grow(&base, &cap, sizeof(*st), inl)) {
                    result = 0;
                    break;
                }
                st = base;
            }
            st[depth++] = (struct equal_frame){ca, cb, 0};
        }
    }
    if (base != inl) free(base);
    return result;
}
