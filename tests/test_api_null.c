/* Every public function survives NULL: a pointer parameter that must not be NULL gives
 * KVT_EINVAL with a fresh kvt_last_error() detail, never a crash. One table over the whole
 * API (status.h, config.h, key.h, obj.h, backend.h, kvtier.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "testkit.h"

static kvt_store *s;

/* Sets the detail to a known text, so a call that fails without setting one is caught. */
static void stale_detail(void) { kvt_backend_close(s, "sentinel"); }

#define EINVAL_FOR(call)                                                                          \
    do {                                                                                          \
        stale_detail();                                                                           \
        int rc_ = (call);                                                                         \
        if (rc_ != KVT_EINVAL || strstr(kvt_last_error(), "sentinel") || !*kvt_last_error())      \
            fail_msg("%s gave %s, detail \"%s\"", #call, kvt_status_name(rc_), kvt_last_error()); \
    } while (0)

static void every_pointer_parameter_is_checked(void **state)
{
    (void)state;
    kvt_config *cfg = tk_config(4.0), *c2 = NULL;
    assert_int_equal(kvt_store_open(cfg, &tk_quiet, &s), KVT_OK);
    kvt_key k = tk_key(1), keys[1] = {tk_key(1)};
    kvt_obj *o = NULL;
    char buf[64];
    size_t n = 0, cap = sizeof buf;
    void *bufs[1] = {buf};
    int sts[1];
    bool b;
    int64_t i64;

    const char *str;
    const char *const *items;
    uint64_t u64, hashes[4];
    int32_t tokens[4] = {1, 2, 3, 4};
    kvt_config_source src;
    kvt_config_key_info info;
    kvt_config_ignored_key ik;
    kvt_backend_info bi;
    kvt_backend_stats bst;
    kvt_store_stats sst;
    char *text = NULL;
    const char *ck[1] = {"chunk_size"}, *cv[1] = {"256"};

    /* config.h */
    EINVAL_FOR(kvt_config_new(NULL));
    EINVAL_FOR(kvt_config_dup(NULL, &c2));
    EINVAL_FOR(kvt_config_dup(cfg, NULL));
    EINVAL_FOR(kvt_config_load_file(NULL, "/x.yaml"));
    EINVAL_FOR(kvt_config_load_file(cfg, NULL));
    EINVAL_FOR(kvt_config_load_env(NULL));
    EINVAL_FOR(kvt_config_from_sources(NULL, NULL));
    EINVAL_FOR(kvt_config_set(NULL, "chunk_size", "1"));
    EINVAL_FOR(kvt_config_set(cfg, NULL, "1"));
    EINVAL_FOR(kvt_config_set(cfg, "chunk_size", NULL));
    EINVAL_FOR(kvt_config_set_bool(NULL, "local_cpu", true));
    EINVAL_FOR(kvt_config_set_int(cfg, NULL, 1));
    EINVAL_FOR(kvt_config_set_float(NULL, "max_local_cpu_size", 1.0));
    EINVAL_FOR(kvt_config_patch(NULL, 1, ck, cv, false, NULL));
    EINVAL_FOR(kvt_config_patch(cfg, 1, NULL, cv, false, NULL));
    EINVAL_FOR(kvt_config_patch(cfg, 1, ck, NULL, false, NULL));
    EINVAL_FOR(kvt_config_get_bool(NULL, "local_cpu", &b));
    EINVAL_FOR(kvt_config_get_int(cfg, NULL, &i64));
    EINVAL_FOR(kvt_config_get_str(NULL, "local_disk", &str));
    EINVAL_FOR(kvt_config_get_list(NULL, "retrieve_locations", &items, &n));
    EINVAL_FOR(kvt_config_get_bool(cfg, NULL, &b));
    EINVAL_FOR(kvt_config_get_float(NULL, "max_local_cpu_size", NULL));
    EINVAL_FOR(kvt_config_get_text(cfg, "chunk_size", false, NULL, 8));
    EINVAL_FOR(kvt_config_get_text(NULL, "chunk_size", false, buf, sizeof buf));
    EINVAL_FOR(kvt_config_get_source(cfg, NULL, &src));
    EINVAL_FOR(kvt_config_key_at(0, NULL));
    EINVAL_FOR(kvt_config_ignored_key_at(0, NULL));
    (void)info, (void)ik;
    kvt_config_free(NULL);

    /* key.h */
    EINVAL_FOR(kvt_key_init(NULL, "m", 1, 0, 1, "half"));
    EINVAL_FOR(kvt_key_init(&k, NULL, 1, 0, 1, "half"));
    EINVAL_FOR(kvt_key_init(&k, "m", 1, 0, 1, NULL));
    EINVAL_FOR(kvt_key_add_tag(NULL, "a", "b"));
    EINVAL_FOR(kvt_key_add_tag(&k, NULL, "b"));
    EINVAL_FOR(kvt_key_to_string(NULL, buf, sizeof buf));
    EINVAL_FOR(kvt_key_to_string(&k, NULL, 8));
    EINVAL_FOR(kvt_key_parse(NULL, &k));
    EINVAL_FOR(kvt_key_parse("m@1@0@1@half", NULL));
    EINVAL_FOR(kvt_hash_tokens(NULL, 4, 2, false, hashes, 4, &n));
    EINVAL_FOR(kvt_hash_tokens(tokens, 4, 2, false, NULL, 4, &n));
    assert_false(kvt_key_equal(NULL, &k));
    k = tk_key(1);

    /* obj.h: accessors of NULL */
    assert_null(kvt_obj_data(NULL));
    assert_int_equal(kvt_obj_size(NULL), 0);
    assert_null(kvt_obj_meta(NULL));
    assert_null(kvt_obj_data_mut(NULL));
    kvt_obj_retain(NULL);
    kvt_obj_release(NULL);

    /* backend.h */
    EINVAL_FOR(kvt_backend_alloc(NULL, 8, NULL, &o));
    EINVAL_FOR(kvt_backend_alloc(NULL, 8, NULL, NULL));
    EINVAL_FOR(kvt_register_backend_type(NULL));
    kvt_backend_log(NULL, KVT_LOG_INFO, "x");
    assert_non_null(kvt_backend_name(NULL));

    /* kvtier.h: the store */
    kvt_store *none = NULL;
    EINVAL_FOR(kvt_store_open(NULL, NULL, &none));
    EINVAL_FOR(kvt_store_open(cfg, NULL, NULL));
    assert_int_equal(kvt_store_close(NULL), KVT_OK);
    EINVAL_FOR(kvt_put(NULL, &k, buf, 1, NULL));
    EINVAL_FOR(kvt_put(s, NULL, buf, 1, NULL));
    EINVAL_FOR(kvt_put(s, &k, NULL, 1, NULL));
    EINVAL_FOR(kvt_batched_put(NULL, 1, keys, (const void *const *)bufs, &cap, NULL, &n));
    EINVAL_FOR(kvt_batched_put(s, 1, NULL, (const void *const *)bufs, &cap, NULL, &n));
    EINVAL_FOR(kvt_batched_put(s, 1, keys, NULL, &cap, NULL, &n));
    EINVAL_FOR(kvt_batched_put(s, 1, keys, (const void *const *)bufs, NULL, NULL, &n));
    EINVAL_FOR(kvt_obj_alloc(NULL, 8, NULL, &o));
    EINVAL_FOR(kvt_obj_alloc(s, 8, NULL, NULL));
    EINVAL_FOR(kvt_put_obj(NULL, &k, o));
    EINVAL_FOR(kvt_put_obj(s, &k, NULL));
    EINVAL_FOR(kvt_put_obj(s, NULL, o));
    kvt_obj *no_obj[1] = {NULL};
    EINVAL_FOR(kvt_batched_put_obj(NULL, 1, keys, no_obj, &n));
    EINVAL_FOR(kvt_batched_put_obj(s, 1, NULL, no_obj, &n));
    EINVAL_FOR(kvt_batched_put_obj(s, 1, keys, NULL, &n));
    EINVAL_FOR(kvt_batched_put_obj(s, 1, keys, no_obj, &n)); /* a NULL object in the batch */
    assert_int_equal(n, 0);
    EINVAL_FOR(kvt_get(NULL, &k, &o));
    EINVAL_FOR(kvt_get(s, NULL, &o));
    EINVAL_FOR(kvt_get(s, &k, NULL));
    EINVAL_FOR(kvt_get_into(NULL, &k, buf, cap, &n));
    EINVAL_FOR(kvt_get_into(s, NULL, buf, cap, &n));
    EINVAL_FOR(kvt_get_into(s, &k, NULL, cap, &n));
    EINVAL_FOR(kvt_batched_get_into(NULL, 1, keys, bufs, &cap, NULL, sts, &n));
    EINVAL_FOR(kvt_batched_get_into(s, 1, NULL, bufs, &cap, NULL, sts, &n));
    EINVAL_FOR(kvt_batched_get_into(s, 1, keys, NULL, &cap, NULL, sts, &n));
    EINVAL_FOR(kvt_batched_get_into(s, 1, keys, bufs, NULL, NULL, sts, &n));
    EINVAL_FOR(kvt_batched_get_into(s, 1, keys, bufs, &cap, NULL, NULL, &n));
    EINVAL_FOR(kvt_contains(NULL, &k, NULL));
    EINVAL_FOR(kvt_contains(s, NULL, NULL));
    EINVAL_FOR(kvt_lookup_prefix(NULL, keys, 1, &n, NULL, 0, NULL, NULL));
    EINVAL_FOR(kvt_lookup_prefix(s, NULL, 1, &n, NULL, 0, NULL, NULL));
    EINVAL_FOR(kvt_lookup_prefix(s, keys, 1, NULL, NULL, 0, NULL, NULL));
    EINVAL_FOR(kvt_lookup_prefix(s, keys, 1, &n, NULL, 2, NULL, NULL));
    EINVAL_FOR(kvt_unpin(NULL, NULL));
    EINVAL_FOR(kvt_remove(NULL, &k, NULL));
    EINVAL_FOR(kvt_remove(s, NULL, NULL));
    EINVAL_FOR(kvt_clear(NULL, &u64));
    EINVAL_FOR(kvt_flush(NULL, 0));
    EINVAL_FOR(kvt_backends_list(NULL, &bi, 1, &n));
    EINVAL_FOR(kvt_backends_list(s, NULL, 1, &n));
    EINVAL_FOR(kvt_backend_close_timed(NULL, "LocalCPUBackend", 0, 0));
    EINVAL_FOR(kvt_backend_close_timed(s, NULL, 0, 0));
    EINVAL_FOR(kvt_backend_close_timed(s, "LocalCPUBackend", 0, 0x80));
    EINVAL_FOR(kvt_backend_close(NULL, "LocalCPUBackend"));
    EINVAL_FOR(kvt_backend_close(s, NULL));
    EINVAL_FOR(kvt_backends_create(NULL, NULL, 0, &n));
    EINVAL_FOR(kvt_backends_create(s, NULL, 1, &n));
    EINVAL_FOR(kvt_backend_recreate(NULL, "LocalCPUBackend"));
    EINVAL_FOR(kvt_backend_recreate(s, NULL));
    EINVAL_FOR(kvt_backend_set_bypass(NULL, "LocalCPUBackend", true, NULL));
    EINVAL_FOR(kvt_backend_set_bypass(s, NULL, true, NULL));
    EINVAL_FOR(kvt_bypass_list(NULL, &bi, 1, &n));
    EINVAL_FOR(kvt_bypass_list(s, NULL, 1, &n));
    EINVAL_FOR(kvt_store_set_freeze(NULL, true));
    assert_false(kvt_store_frozen(NULL));
    EINVAL_FOR(kvt_backend_get_stats(NULL, "LocalCPUBackend", &bst));
    EINVAL_FOR(kvt_backend_get_stats(s, "LocalCPUBackend", NULL));
    EINVAL_FOR(kvt_store_get_stats(NULL, &sst));
    EINVAL_FOR(kvt_store_get_stats(s, NULL));
    EINVAL_FOR(kvt_store_conf_update(NULL, 1, ck, cv, NULL));
    EINVAL_FOR(kvt_store_conf_update(s, 1, NULL, cv, NULL));
    EINVAL_FOR(kvt_store_conf_dup(NULL, &c2));
    EINVAL_FOR(kvt_store_conf_dup(s, NULL));
    EINVAL_FOR(kvt_metrics_render(NULL, &text));
    EINVAL_FOR(kvt_metrics_render(s, NULL));
    EINVAL_FOR(kvt_metrics_reset(NULL));
    EINVAL_FOR(kvt_backend_get_health(NULL, "LocalCPUBackend", NULL));
    EINVAL_FOR(kvt_store_conf_update_if(NULL, 1, 1, ck, cv, NULL));
    kvt_free(NULL);

    /* A NULL name is "not found" where names are looked up, as LMCache answers. */
    assert_int_equal(kvt_backend_get_stats(s, NULL, &bst), KVT_ENOENT);
    assert_string_equal(kvt_last_error(), "Backend (null) not found");
    assert_int_equal(kvt_contains(s, &k, NULL), KVT_ENOENT); /* nothing was stored */
    kvt_config_free(cfg);
    kvt_store_close(s);
}

int main(void)
{
    tk_register();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_pointer_parameter_is_checked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
