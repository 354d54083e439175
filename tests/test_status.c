/* Status codes: values (checked at compile time), text and names, and the per-thread
 * error detail. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <pthread.h>

#include <cmocka.h>

#include "internal.h"

/* Codes equal -errno where one exists, and kvtier-only codes keep their values: they are
 * ABI (never renumbered or reused), so a change here fails the build, not a test run. */
_Static_assert(KVT_OK == 0, "KVT_OK is 0");
_Static_assert(KVT_EPERM == -EPERM, "KVT_EPERM is -EPERM");
_Static_assert(KVT_ENOENT == -ENOENT, "KVT_ENOENT is -ENOENT");
_Static_assert(KVT_EIO == -EIO, "KVT_EIO is -EIO");
_Static_assert(KVT_ENOMEM == -ENOMEM, "KVT_ENOMEM is -ENOMEM");
_Static_assert(KVT_EBUSY == -EBUSY, "KVT_EBUSY is -EBUSY");
_Static_assert(KVT_EEXIST == -EEXIST, "KVT_EEXIST is -EEXIST");
_Static_assert(KVT_EINVAL == -EINVAL, "KVT_EINVAL is -EINVAL");
_Static_assert(KVT_ENOSPC == -ENOSPC, "KVT_ENOSPC is -ENOSPC");
_Static_assert(KVT_ERANGE == -ERANGE, "KVT_ERANGE is -ERANGE");
_Static_assert(KVT_ENOTSUP == -ENOTSUP, "KVT_ENOTSUP is -ENOTSUP");
_Static_assert(KVT_ETIMEDOUT == -ETIMEDOUT, "KVT_ETIMEDOUT is -ETIMEDOUT");
_Static_assert(KVT_ECLOSED == -4000, "KVT_ECLOSED keeps -4000");
_Static_assert(KVT_ECORRUPT == -4001, "KVT_ECORRUPT keeps -4001");
_Static_assert(KVT_EUNAVAIL == -4002, "KVT_EUNAVAIL keeps -4002");
_Static_assert(KVT_ECONFIG == -4003, "KVT_ECONFIG keeps -4003");
_Static_assert(KVT_ETOOSMALL == -4004, "KVT_ETOOSMALL keeps -4004");
_Static_assert(KVT_ENOTIER == -4005, "KVT_ENOTIER keeps -4005");

/* Every code is 0 or negative; a duplicate value in the table would be a duplicate case
 * label in distinct_values(), which does not compile either. */
#define ROW_CHECK(name, value, text) _Static_assert((value) <= 0, "KVT_" #name " is 0 or negative");
KVT_STATUS_MAP(ROW_CHECK)
#undef ROW_CHECK

static int distinct_values(int code)
{
    switch (code) {
#define ROW_CASE(name, value, text)                                                        \
    case value:                                                                            \
        return 1;
        KVT_STATUS_MAP(ROW_CASE)
#undef ROW_CASE
    }
    return 0;
}

/* The expected text and name of every code, written out (not generated from the table,
 * so a changed message or a code missing from kvt_strerror()/kvt_status_name() shows). */
static const struct {
    int code;
    const char *name, *text;
} expected[] = {
    {KVT_OK, "KVT_OK", "success"},
    {KVT_EPERM, "KVT_EPERM", "operation not permitted"},
    {KVT_ENOENT, "KVT_ENOENT", "not found"},
    {KVT_EIO, "KVT_EIO", "input/output error"},
    {KVT_ENOMEM, "KVT_ENOMEM", "out of memory"},
    {KVT_EBUSY, "KVT_EBUSY", "in use"},
    {KVT_EEXIST, "KVT_EEXIST", "already exists"},
    {KVT_EINVAL, "KVT_EINVAL", "invalid argument"},
    {KVT_ENOSPC, "KVT_ENOSPC", "no space left"},
    {KVT_ERANGE, "KVT_ERANGE", "value out of range"},
    {KVT_ENOTSUP, "KVT_ENOTSUP", "not supported"},
    {KVT_ETIMEDOUT, "KVT_ETIMEDOUT", "timed out"},
    {KVT_ECLOSED, "KVT_ECLOSED", "backend is closing"},
    {KVT_ECORRUPT, "KVT_ECORRUPT", "stored entry failed verification"},
    {KVT_EUNAVAIL, "KVT_EUNAVAIL", "backend not available on this host"},
    {KVT_ECONFIG, "KVT_ECONFIG", "invalid configuration"},
    {KVT_ETOOSMALL, "KVT_ETOOSMALL", "buffer too small"},
    {KVT_ENOTIER, "KVT_ENOTIER", "no tier took the chunk"},
};

static void every_code_has_its_text_and_name(void **state)
{
    (void)state;
    for (size_t i = 0; i < KVT__ARRAY_LEN(expected); i++) {
        assert_true(distinct_values(expected[i].code));
        assert_string_equal(kvt_status_name(expected[i].code), expected[i].name);
        assert_string_equal(kvt_strerror(expected[i].code), expected[i].text);
    }
}

/* The written-out list above covers the whole table: every row of KVT_STATUS_MAP has its
 * entry, with the same name (a row added to status.h without a test entry fails). */
static void the_list_covers_every_code(void **state)
{
    (void)state;
    size_t rows = 0;
#define ROW_FIND(id, value, text)                                                        \
    do {                                                                                   \
        size_t j = 0;                                                                      \
        while (j < KVT__ARRAY_LEN(expected) && expected[j].code != (value))                \
            j++;                                                                           \
        assert_true(j < KVT__ARRAY_LEN(expected));                                         \
        assert_string_equal(expected[j].name, "KVT_" #id);                                 \
        rows++;                                                                            \
    } while (0);
    KVT_STATUS_MAP(ROW_FIND)
#undef ROW_FIND
    assert_int_equal(rows, KVT__ARRAY_LEN(expected));
}

static void unknown_codes_have_fallbacks(void **state)
{
    (void)state;
    const int unknown[] = {12345, 1, -4006, -3999, -1000000};
    for (size_t i = 0; i < KVT__ARRAY_LEN(unknown); i++) {
        assert_string_equal(kvt_strerror(unknown[i]), "unknown error");
        assert_string_equal(kvt_status_name(unknown[i]), "KVT_UNKNOWN");
    }
}

static void *other_thread(void *arg)
{
    (void)arg;
    return (void *)(uintptr_t)(unsigned char)kvt_last_error()[0];
}

static void error_detail_is_per_thread(void **state)
{
    (void)state;
    assert_int_equal(kvt__fail(KVT_EINVAL, "unknown config key \"%s\"", "module_path"), KVT_EINVAL);
    assert_string_equal(kvt_last_error(), "unknown config key \"module_path\"");
    pthread_t t;
    void *first = (void *)1;
    pthread_create(&t, NULL, other_thread, NULL);
    pthread_join(t, &first);
    assert_null(first); /* the other thread sees an empty detail */
}

static void success_leaves_the_detail(void **state)
{
    (void)state;
    kvt_key k;
    assert_int_equal(kvt__fail(KVT_ENOTIER, "no tier is open to puts"), KVT_ENOTIER);
    assert_int_equal(kvt_key_init(&k, "m", 1, 0, 1, "bfloat16"), KVT_OK);
    assert_string_equal(kvt_last_error(), "no tier is open to puts");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_code_has_its_text_and_name),
        cmocka_unit_test(the_list_covers_every_code),
        cmocka_unit_test(unknown_codes_have_fallbacks),
        cmocka_unit_test(error_detail_is_per_thread),
        cmocka_unit_test(success_leaves_the_detail),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
