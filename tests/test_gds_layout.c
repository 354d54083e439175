/* GdsBackend's file layout against LMCache's (contract §9.4), built byte for byte by the
 * test itself, and the cuFile loader's failure paths against stand-in libraries: each
 * gives a reason, which the backend reports with compat mode. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "backends/gds/cufile.h"
#include "backends/gds/layout.h"

static kvt_key key_of(const char *model, uint64_t h, bool neg)
{
    kvt_key k;
    assert_int_equal(kvt_key_init(&k, model, 2, 1, h, "bfloat16"), KVT_OK);
    k.hash_negative = neg;
    return k;
}

static void paths_follow_lmcache(void **state)
{
    (void)state;
    char p[4096];
    kvt_key k = key_of("meta-llama/Llama-3-8B", 1234567, false);
    assert_int_equal(kvt__gds_path("/g", &k, p, sizeof p), KVT_OK);
    /* str(1234567) = "1234567": dirs "12"/"34"; quote() keeps -._~, encodes @ and /. */
    assert_string_equal(p, "/g/12/34/meta-llama%2FLlama-3-8B%402%401%4012d687%40bfloat16"
                           ".kvcache.safetensors");
    k = key_of("m", 0x10, true); /* -16 */
    assert_int_equal(kvt__gds_path("/g", &k, p, sizeof p), KVT_OK);
    assert_string_equal(p, "/g/-1/6/m%402%401%40-10%40bfloat16.kvcache.safetensors");
    k = key_of("m", 7, false); /* os.path.join skips the empty h[2:4] */
    assert_int_equal(kvt__gds_dir("/g", &k, p, sizeof p), KVT_OK);
    assert_string_equal(p, "/g/7");
    assert_int_equal(kvt__gds_path("/g", &k, p, 10), KVT_ETOOSMALL);
}

/* LMCache's pack_metadata(): struct.pack("<Q", 4088) + json.dumps(meta) padded with spaces. */
static void lmcache_header(unsigned char out[4096], const char *json)
{
    memset(out, ' ', 4096);
    uint64_t n = 4088;
    memcpy(out, &n, 8);
    memcpy(out + 8, json, strlen(json));
}

static void header_matches_lmcache_byte_for_byte(void **state)
{
    (void)state;
    unsigned char ours[4096], theirs[4096];
    kvt_chunk_meta m = {.fmt = 1, .dtype_code = 3, .shape = {2, 32, 256, 1024}};
    assert_int_equal(kvt__gds_header(&m, 33554432, ours), KVT_OK);
    lmcache_header(theirs, "{\"kvcache\": {\"dtype\": \"BF16\", \"shape\": [2, 32, 256, 1024], "
                           "\"data_offsets\": [0, 33554432], \"fmt\": 1, \"__metadata__\": "
                           "{\"lmcache_version\": \"1\"}}}");
    assert_memory_equal(ours, theirs, 4096);
    struct kvt__gds_meta got;
    assert_int_equal(kvt__gds_parse(theirs, sizeof theirs, &got), KVT_OK);
    assert_int_equal(got.nbytes, 33554432);
    assert_int_equal(got.meta.fmt, 1);
    assert_int_equal(got.meta.dtype_code, 3);
    assert_int_equal(got.meta.shape[3], 1024);
    /* float16 is written with code 2's name; LMCache's F16 reads back as 2. */
    m.dtype_code = 1;
    assert_int_equal(kvt__gds_header(&m, 16, ours), KVT_OK);
    assert_int_equal(kvt__gds_parse(ours, sizeof ours, &got), KVT_OK);
    assert_int_equal(got.meta.dtype_code, 2);
    m.dtype_code = 99;
    assert_int_equal(kvt__gds_header(&m, 16, ours), KVT_EINVAL);
}

static void bad_headers_are_corrupt(void **state)
{
    (void)state;
    unsigned char h[4096];
    struct kvt__gds_meta got;
    static const char *const bad[] = {
        "not json",
        "{\"kvcache\": {\"dtype\": \"BF16\", \"shape\": [1], \"data_offsets\": [8, 4], \"fmt\": 1, "
        "\"__metadata__\": {\"lmcache_version\": \"1\"}}}",
        "{\"kvcache\": {\"dtype\": \"BF16\", \"shape\": [1], \"data_offsets\": [0, 4], \"fmt\": 1, "
        "\"__metadata__\": {\"lmcache_version\": \"2\"}}}",
        "{\"kvcache\": {\"dtype\": \"BF16\", \"shape\": [-1], \"data_offsets\": [0, 4], \"fmt\": 1, "
        "\"__metadata__\": {\"lmcache_version\": \"1\"}}}",
        "{\"other\": 1}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        lmcache_header(h, bad[i]);
        assert_int_equal(kvt__gds_parse(h, sizeof h, &got), KVT_ECORRUPT);
    }
    uint64_t huge = UINT64_MAX;
    memcpy(h, &huge, 8); /* a length past the header: never trusted */
    assert_int_equal(kvt__gds_parse(h, sizeof h, &got), KVT_ECORRUPT);
    assert_int_equal(kvt__gds_parse(h, 4, &got), KVT_ECORRUPT);
}

static void sidecar_names_give_back_the_key(void **state)
{
    (void)state;
    kvt_key k = key_of("org/model", 99, false), got;
    char p[4096];
    assert_int_equal(kvt_key_add_tag(&k, "user", "a/b"), KVT_OK);
    assert_int_equal(kvt__gds_path("/g", &k, p, sizeof p), KVT_OK);
    strcat(p, ".metadata");
    assert_int_equal(kvt__gds_key_of(strrchr(p, '/') + 1, &got), KVT_OK);
    assert_true(kvt_key_equal(&k, &got));
    assert_int_equal(kvt__gds_key_of("x.kvcache.safetensors", &got), KVT_EINVAL);
    assert_int_equal(kvt__gds_key_of("m%4.kvcache.safetensors.metadata", &got), KVT_EINVAL);
}

static void loader_reports_why_gds_is_unavailable(void **state)
{
    (void)state;
    const char *dir = getenv("KVT_STUB_DIR");
    assert_non_null(dir);
    struct kvt__cufile api;
    char why[256], path[1024];
    snprintf(path, sizeof path, "%s/none", dir);
    assert_false(kvt__cufile_load(path, &api, why, sizeof why));
    assert_non_null(strstr(why, "libcufile.so.0 not found"));
    snprintf(path, sizeof path, "%s/noread", dir);
    assert_false(kvt__cufile_load(path, &api, why, sizeof why));
    assert_string_equal(why, "libcufile.so.0 lacks cuFileRead");
    snprintf(path, sizeof path, "%s/openfails", dir);
    assert_false(kvt__cufile_load(path, &api, why, sizeof why));
    assert_string_equal(why, "cuFileDriverOpen failed: err=5001 cu_err=0");
    snprintf(path, sizeof path, "%s/nocudart", dir);
    assert_false(kvt__cufile_load(path, &api, why, sizeof why));
    assert_non_null(strstr(why, "libcudart.so.12 not found"));
    assert_null(api.lib); /* nothing stays loaded */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(paths_follow_lmcache),
        cmocka_unit_test(header_matches_lmcache_byte_for_byte),
        cmocka_unit_test(bad_headers_are_corrupt),
        cmocka_unit_test(sidecar_names_give_back_the_key),
        cmocka_unit_test(loader_reports_why_gds_is_unavailable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
