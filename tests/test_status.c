/* Status codes: text, names, -errno equality and the per-thread error detail. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <pthread.h>

#include <cmocka.h>

#include "internal.h"

static void codes_equal_negative_errno(void **state)
{
    (void)state;
    assert_int_equal(KVT_ENOENT, -ENOENT);
    assert_int_equal(KVT_EBUSY, -EBUSY);
    assert_true(KVT_ECLOSED < -1000);
}

static void every_code_has_text_and_a_name(void **state)
{
    (void)state;
    assert_string_equal(kvt_strerror(KVT_OK), "success");
    assert_string_equal(kvt_strerror(KVT_ENOENT), "not found");
    assert_string_equal(kvt_status_name(KVT_ECONFIG), "KVT_ECONFIG");
    assert_string_equal(kvt_strerror(12345), "unknown error");
    assert_string_equal(kvt_status_name(12345), "KVT_UNKNOWN");
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(codes_equal_negative_errno),
        cmocka_unit_test(every_code_has_text_and_a_name),
        cmocka_unit_test(error_detail_is_per_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
