/*
 * store_fixture.h - what the store tests share: a fixture that opens a
 * fresh store on a scratch file, and assertions on returned values.
 * Include after <cmocka.h>.
 */
#ifndef NANA_STORE_FIXTURE_H
#define NANA_STORE_FIXTURE_H

#include "store/nana_store.h"
#include "test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A string literal or variable as (pointer, length) arguments. */
#define K(s) (s), strlen(s)

typedef struct fixture {
    char path[512];
    nana_store *s;
    nana_table *t; /* the default table */
} fixture;

/* Opens a store with default options on a fresh file named after |name|. */
static inline int fixture_open(void **state, const char *name)
{
    fixture *f = calloc(1, sizeof(*f));
    if (!f) return -1;
    test_db_path(f->path, sizeof(f->path), name);
    if (nana_store_open(f->path, NULL, &f->s) != 0) {
        fprintf(stderr, "open %s: %s\n", f->path, nana_errmsg());
        free(f);
        return -1;
    }
    f->t = nana_store_default_table(f->s);
    *state = f;
    return 0;
}

/* Closes the fixture's store (which must succeed) and removes its files. */
static inline int fixture_close(void **state)
{
    fixture *f = *state;
    assert_int_equal(nana_store_close(f->s), 0);
    test_db_remove(f->path);
    free(f);
    return 0;
}

/* Asserts that |v| holds exactly |json|, then releases it. */
static inline void expect_val(nana_val *v, const char *json)
{
    assert_non_null(v);
    if (strcmp(v->data, json) != 0) fail_msg("got %s\nwant %s", v->data, json);
    assert_int_equal(v->len, strlen(json));
    nana_val_unref(v);
}

/* Asserts that get(key) succeeds with exactly |json|. */
static inline void expect_get(nana_table *t, const char *key, const char *json)
{
    nana_val *v = NULL;
    int rc = nana_kv_get(t, K(key), &v);
    if (rc) fail_msg("get %s: %s", key, nana_errmsg());
    expect_val(v, json);
}

#endif
