/* RemoteBackend over fs://: LMCache's FSConnector layout checked with plain file reads,
 * big values, a 64-chunk batched get, several base paths, corrupt and foreign files,
 * stale temporaries, reads past a full CPU tier, and the scheme errors. */
#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "testkit.h"

#define MIB (1024u * 1024u)

struct fx {
    char dir[512];
    char url[1100];
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    const char *tmp = getenv("KVT_TEST_TMP");
    snprintf(f->dir, sizeof f->dir, "%s/fs.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->url, sizeof f->url, "fs://%s", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static kvt_store *open_fs(const char *url, double cpu_mib)
{
    kvt_config *cfg = tk_config(cpu_mib);
    kvt_store *s = NULL;
    assert_int_equal(kvt_config_set(cfg, "remote_url", url), KVT_OK);
    assert_int_equal(kvt_config_set(cfg, "remote_fs_fsync", "false"), KVT_OK);
    assert_int_equal(kvt_config_set(cfg, "write_queue_timeout_ms", "1000"), KVT_OK);
    assert_int_equal(kvt_store_open(cfg, &tk_quiet, &s), KVT_OK);
    kvt_config_free(cfg);
    return s;
}

/* The whole file, read plainly. */
static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    *len = (size_t)ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *p = malloc(*len + 1);
    assert_int_equal(fread(p, 1, *len, fp), *len);
    fclose(fp);
    return p;
}

static void spit(const char *path, const void *a, size_t an, const void *b, size_t bn)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(a, 1, an, fp), an);
    if (bn)
        assert_int_equal(fwrite(b, 1, bn, fp), bn);
    fclose(fp);
}

static int32_t le32(const unsigned char *u)
{
    return (int32_t)((uint32_t)u[0] | (uint32_t)u[1] << 8 | (uint32_t)u[2] << 16 |
                     (uint32_t)u[3] << 24);
}

static void round_trip_uses_lmcache_layout(void **state)
{
    struct fx *f = *state;
    kvt_store *s = open_fs(f->url, 128);
    kvt_chunk_meta meta = {.fmt = 1, .dtype_code = 1, .shape = {2, 32, 256, 1024}};
    kvt_key small = tk_model_key("org/sub/model", 0x1f), big = tk_model_key("org/sub/model", 0x2e);
    tk_put_chunk(s, &small, 1000, 1, &meta);
    tk_put_chunk(s, &big, 32 * MIB, 2, &meta);
    assert_int_equal(kvt_flush(s, 20000), KVT_OK);

    char path[1200];
    size_t len = 0;
    snprintf(path, sizeof path, "%s/org-sub-model@1@0@2e@bfloat16.data", f->dir);
    unsigned char *file = slurp(path, &len);
    assert_int_equal(len, 28 + 32 * MIB);
    int32_t want[7] = {32 * MIB, 1, 2 /* float16 written as 2 */, 2, 32, 256, 1024};
    for (int i = 0; i < 7; i++)
        assert_int_equal(le32(file + 4 * i), want[i]);
    unsigned char *bytes = malloc(32 * MIB);
    tk_fill(bytes, 32 * MIB, 2);
    assert_memory_equal(file + 28, bytes, 32 * MIB);
    free(bytes);
    free(file);

    assert_int_equal(kvt_backend_set_bypass(s, "LocalCPUBackend", true, NULL), KVT_OK);
    tk_expect_chunk(s, &small, 1000, 1);
    tk_expect_chunk(s, &big, 32 * MIB, 2);
    const char *tier = NULL;
    assert_int_equal(kvt_contains(s, &big, &tier), KVT_OK);
    assert_string_equal(tier, "RemoteBackend");
    kvt_backend_stats st;
    assert_int_equal(kvt_backend_get_stats(s, "RemoteBackend", &st), KVT_OK);
    assert_string_equal(st.mode, "fs");
    size_t removed = 0;
    assert_int_equal(kvt_remove(s, &small, &removed), KVT_OK);
    assert_int_equal(removed, 2);
    assert_int_equal(access(path, F_OK), 0);
    uint64_t tokens = 0;
    assert_int_equal(kvt_clear(s, &tokens), KVT_OK);
    assert_int_equal(access(path, F_OK), -1);
    kvt_store_close(s);
}

static void batched_get_of_64_chunks(void **state)
{
    struct fx *f = *state;
    enum { N = 64, LEN = 100 * 1024 };
    kvt_store *s = open_fs(f->url, 64);
    kvt_key keys[N];
    void *bufs[N];
    size_t caps[N], lens[N], hits = 0;
    int sts[N];
    for (size_t i = 0; i < N; i++) {
        keys[i] = tk_model_key("m", 5000 + i);
        if (i != 40)
            tk_put_chunk(s, &keys[i], LEN, i, NULL);
        bufs[i] = malloc(LEN);
        caps[i] = LEN;
    }
    assert_int_equal(kvt_flush(s, 10000), KVT_OK);
    assert_int_equal(kvt_backend_set_bypass(s, "LocalCPUBackend", true, NULL), KVT_OK);
    assert_int_equal(kvt_batched_get_into(s, N, keys, bufs, caps, lens, sts, &hits), KVT_OK);
    assert_int_equal(hits, N - 1);
    unsigned char *want = malloc(LEN);
    for (size_t i = 0; i < N; i++) {
        if (i == 40) {
            assert_int_equal(sts[i], KVT_ENOENT);
        } else {
            assert_int_equal(sts[i], KVT_OK);
            tk_fill(want, LEN, i);
            assert_memory_equal(bufs[i], want, LEN);
        }
        free(bufs[i]);
    }
    free(want);
    kvt_store_close(s);
}

static void several_paths_spread_by_hash(void **state)
{
    struct fx *f = *state;
    char url[1400], a[600], b[600];
    snprintf(a, sizeof a, "%s/a", f->dir);
    snprintf(b, sizeof b, "%s/b/deep", f->dir);
    snprintf(url, sizeof url, "fs://host:1234%s,%s", a, b); /* host:port is ignored */
    kvt_store *s = open_fs(url, 64);
    for (uint64_t h = 10; h < 14; h++) {
        kvt_key k = tk_model_key("m", h);
        tk_put_chunk(s, &k, 512, h, NULL);
    }
    assert_int_equal(kvt_flush(s, 5000), KVT_OK);
    for (uint64_t h = 10; h < 14; h++) {
        char path[1300];
        snprintf(path, sizeof path, "%s/m@1@0@%llx@bfloat16.data", h % 2 ? b : a,
                 (unsigned long long)h);
        assert_int_equal(access(path, F_OK), 0);
    }
    kvt_store_close(s);
}

static void corrupt_and_foreign_files(void **state)
{
    struct fx *f = *state;
    kvt_store *s = open_fs(f->url, 64);
    assert_int_equal(kvt_backend_set_bypass(s, "LocalCPUBackend", true, NULL), KVT_OK);
    unsigned char hdr[28] = {0}, payload[300], buf[512];
    memset(payload, 5, sizeof payload);
    char path[1200];

    /* An LMCache-written file. */
    hdr[0] = 0x2c; /* 300 */
    hdr[1] = 0x01;
    hdr[4] = 4;
    hdr[8] = 3;
    snprintf(path, sizeof path, "%s/m@1@0@77@bfloat16.data", f->dir);
    spit(path, hdr, sizeof hdr, payload, sizeof payload);
    kvt_key k = tk_model_key("m", 0x77);
    size_t n = 0;
    assert_int_equal(kvt_get_into(s, &k, buf, sizeof buf, &n), KVT_OK);
    assert_int_equal(n, 300);
    assert_memory_equal(buf, payload, 300);

    /* Length larger than the payload, a negative one, a truncated header: misses. */
    hdr[0] = 0xff;
    hdr[1] = 0xff;
    hdr[2] = 0xff;
    hdr[3] = 0x7f;
    spit(path, hdr, sizeof hdr, payload, sizeof payload);
    assert_int_equal(kvt_get_into(s, &k, buf, sizeof buf, &n), KVT_ENOENT);
    kvt_obj *obj = NULL;
    assert_int_equal(kvt_get(s, &k, &obj), KVT_ENOENT);
    hdr[3] = 0xff;
    spit(path, hdr, sizeof hdr, payload, sizeof payload);
    assert_int_equal(kvt_get(s, &k, &obj), KVT_ENOENT);
    spit(path, hdr, 20, NULL, 0);
    assert_int_equal(kvt_get(s, &k, &obj), KVT_ENOENT);
    /* Too small a buffer: KVT_ETOOSMALL with the size. */
    hdr[0] = 0x2c;
    hdr[1] = 0x01;
    hdr[2] = hdr[3] = 0;
    spit(path, hdr, sizeof hdr, payload, sizeof payload);
    assert_int_equal(kvt_get_into(s, &k, buf, 100, &n), KVT_ETOOSMALL);
    assert_int_equal(n, 300);
    kvt_store_close(s);
}

static void stale_temporaries_are_removed(void **state)
{
    struct fx *f = *state;
    char path[1200];
    snprintf(path, sizeof path, "%s/.m@1@0@1@bfloat16.data.tmp.AbCdEf", f->dir);
    spit(path, "x", 1, NULL, 0);
    kvt_store *s = open_fs(f->url, 64);
    assert_int_equal(access(path, F_OK), -1);
    kvt_store_close(s);
}

static void read_past_a_full_cpu_tier(void **state)
{
    struct fx *f = *state;
    kvt_store *s = open_fs(f->url, 2); /* 2 MiB CPU tier, 4 MiB chunk: cannot be staged */
    kvt_key k = tk_model_key("m", 0x99);
    unsigned char *buf = malloc(4 * MIB);
    tk_fill(buf, 4 * MIB, 9);
    char path[1200];
    snprintf(path, sizeof path, "%s/m@1@0@99@bfloat16.data", f->dir);
    unsigned char hdr[28] = {0};
    hdr[2] = 0x40; /* 4 MiB */
    spit(path, hdr, sizeof hdr, buf, 4 * MIB);
    tk_expect_chunk(s, &k, 4 * MIB, 9);
    kvt_store_stats st;
    assert_int_equal(kvt_store_get_stats(s, &st), KVT_OK);
    assert_int_equal(st.get_unstaged, 1);
    free(buf);
    kvt_store_close(s);
}

static void unsupported_schemes_are_named(void **state)
{
    (void)state;
    kvt_config *cfg = NULL;
    assert_int_equal(kvt_config_new(&cfg), KVT_OK);
    static const char *const bad[] = {"rediss://h:6380", "s3://bucket", "redis-sentinel://a:1",
                                      "valkey://h:1", "lm://h:1", "plugin://x"};
    static const char *const name[] = {"rediss", "s3", "redis-sentinel", "valkey", "lm", "plugin"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char want[64];
        assert_int_equal(kvt_config_set(cfg, "remote_url", bad[i]), KVT_ECONFIG);
        snprintf(want, sizeof want, "unsupported scheme %s", name[i]);
        if (!strstr(kvt_last_error(), want))
            fail_msg("\"%s\" does not name the scheme: %s", bad[i], kvt_last_error());
    }
    kvt_config_free(cfg);
}

static void relative_or_missing_path_fails_create(void **state)
{
    (void)state;
    kvt_config *cfg = tk_config(16);
    kvt_store *s = NULL;
    assert_int_equal(kvt_config_set(cfg, "remote_url", "fs://host:1"), KVT_OK);
    assert_int_not_equal(kvt_store_open(cfg, &tk_quiet, &s), KVT_OK);
    assert_null(s);
    assert_non_null(strstr(kvt_last_error(), "no path"));
    kvt_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(round_trip_uses_lmcache_layout, setup, teardown),
        cmocka_unit_test_setup_teardown(batched_get_of_64_chunks, setup, teardown),
        cmocka_unit_test_setup_teardown(several_paths_spread_by_hash, setup, teardown),
        cmocka_unit_test_setup_teardown(corrupt_and_foreign_files, setup, teardown),
        cmocka_unit_test_setup_teardown(stale_temporaries_are_removed, setup, teardown),
        cmocka_unit_test_setup_teardown(read_past_a_full_cpu_tier, setup, teardown),
        cmocka_unit_test(unsupported_schemes_are_named),
        cmocka_unit_test(relative_or_missing_path_fails_create),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
