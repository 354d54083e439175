/* kvtier — tests of the configuration: table, sources, precedence, validation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "config_internal.h" /* the notices */
#include "kvtier/kvtier.h"

/* ------------------------------------------------------------ helpers */

/* Every test starts from an environment without any LMCACHE_* variable: the config reads
 * them all (unknown ones become notices). unsetenv() changes environ, so each removal
 * starts the walk again. */
static void env_clear(void)
{
    char name[256];
    for (bool again = true; again;) {
        again = false;
        for (char **e = environ; e && *e && !again; e++) {
            size_t len = strcspn(*e, "=");
            if (strncmp(*e, "LMCACHE_", 8) == 0 && len < sizeof name) {
                memcpy(name, *e, len);
                name[len] = '\0';
                unsetenv(name);
                again = true;
            }
        }
    }
}

static int setup(void **state)
{
    kvt_config *cfg;
    env_clear();
    if (kvt_config_new(&cfg) != KVT_OK)
        return -1;
    *state = cfg;
    return 0;
}

static int teardown(void **state)
{
    kvt_config_free(*state);
    env_clear();
    return 0;
}

/* Writes `text` to a fresh temporary file whose name ends in `suffix`; the caller unlinks. */
static char *tmp_file(const char *suffix, const char *text)
{
    const char *dir = getenv("KVT_TEST_TMP");
    char *path = malloc(4096);
    assert_non_null(path);
    snprintf(path, 4096, "%s/kvt_config_XXXXXX%s", dir && dir[0] ? dir : "/tmp", suffix);
    int fd = mkstemps(path, (int)strlen(suffix));
    assert_true(fd >= 0);
    size_t len = strlen(text);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    close(fd);
    return path;
}

static void drop_file(char *path)
{
    unlink(path);
    free(path);
}

static int load_text(kvt_config *cfg, const char *suffix, const char *text)
{
    char *path = tmp_file(suffix, text);
    int rc = kvt_config_load_file(cfg, path);
    drop_file(path);
    return rc;
}

static const char *text_of(const kvt_config *cfg, const char *key)
{
    static char buf[512];
    assert_int_equal(kvt_config_get_text(cfg, key, false, buf, sizeof buf), KVT_OK);
    return buf;
}

static int64_t int_of(const kvt_config *cfg, const char *key)
{
    int64_t v = -1;
    assert_int_equal(kvt_config_get_int(cfg, key, &v), KVT_OK);
    return v;
}

static kvt_config_source source_of(const kvt_config *cfg, const char *key)
{
    kvt_config_source s;
    assert_int_equal(kvt_config_get_source(cfg, key, &s), KVT_OK);
    return s;
}

/* The error detail names everything in `parts` (NULL-terminated). */
static void error_names(const char *first, ...)
{
    va_list ap;
    va_start(ap, first);
    for (const char *p = first; p; p = va_arg(ap, const char *)) {
        if (!strstr(kvt_last_error(), p))
            fail_msg("error \"%s\" does not contain \"%s\"", kvt_last_error(), p);
    }
    va_end(ap);
}

/* Every value of `cfg` as text, to check that a failed call changed nothing. */
static char *snapshot(const kvt_config *cfg)
{
    size_t cap = 65536, at = 0;
    char *out = calloc(1, cap);
    assert_non_null(out);
    for (size_t i = 0; i < kvt_config_key_count(); i++) {
        kvt_config_key_info info;
        kvt_config_source src;
        char buf[1024];
        kvt_config_key_at(i, &info);
        assert_int_equal(kvt_config_get_text(cfg, info.name, false, buf, sizeof buf), KVT_OK);
        assert_int_equal(kvt_config_get_source(cfg, info.name, &src), KVT_OK);
        at += (size_t)snprintf(out + at, cap - at, "%s=%s@%d\n", info.name, buf, (int)src);
    }
    return out;
}

static void assert_unchanged(const char *before, const kvt_config *cfg)
{
    char *after = snapshot(cfg);
    assert_string_equal(before, after);
    free(after);
}

/* How many of the config's notices are exactly `text` at `level`. */
static size_t notices_of(const kvt_config *cfg, kvt_log_level level, const char *text)
{
    size_t hits = 0;
    for (size_t i = 0; i < kvt__conf_notice_count(cfg); i++) {
        kvt_log_level l = (kvt_log_level)-1;
        const char *t = kvt__conf_notice(cfg, i, &l);
        assert_non_null(t);
        hits += l == level && strcmp(t, text) == 0;
    }
    return hits;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ------------------------------------------------------------ defaults and table */

static void defaults_match_the_contract(void **state)
{
    kvt_config *cfg = *state;
    bool b;
    double f;
    const char *s;
    const char *const *items;
    size_t n = 99;
    assert_int_equal(int_of(cfg, "chunk_size"), 256);
    assert_int_equal(kvt_config_get_bool(cfg, "local_cpu", &b), KVT_OK);
    assert_true(b);
    assert_int_equal(kvt_config_get_float(cfg, "max_local_cpu_size", &f), KVT_OK);
    assert_true(f == 5.0);
    assert_int_equal(kvt_config_get_str(cfg, "local_disk", &s), KVT_OK);
    assert_null(s);
    assert_int_equal(kvt_config_get_str(cfg, "remote_serde", &s), KVT_OK);
    assert_string_equal(s, "naive");
    assert_int_equal(kvt_config_get_str(cfg, "internal_api_server_host", &s), KVT_OK);
    assert_string_equal(s, "127.0.0.1");
    assert_int_equal(kvt_config_get_list(cfg, "retrieve_locations", &items, &n), KVT_OK);
    assert_int_equal(n, 0);
    assert_int_equal(int_of(cfg, "extra_config.disk_io_threads"), 4);
    assert_int_equal(int_of(cfg, "write_queue_depth"), 64);
    assert_string_equal(text_of(cfg, "extra_config.allocation_attempt_delay_secs"), "0.1");
    assert_string_equal(text_of(cfg, "max_local_cpu_size"), "5.0");
    assert_string_equal(text_of(cfg, "cache_policy"), "LRU");
    assert_string_equal(text_of(cfg, "use_gds"), "true");
    assert_string_equal(text_of(cfg, "remote_url"), "");
    assert_int_equal(source_of(cfg, "chunk_size"), KVT_SRC_DEFAULT);
}

static void key_table_rows_have_docs_env_names_and_valid_defaults(void **state)
{
    (void)state;
    assert_true(kvt_config_key_count() > 35);
    for (size_t i = 0; i < kvt_config_key_count(); i++) {
        kvt_config_key_info info;
        kvt_config *fresh;
        assert_int_equal(kvt_config_key_at(i, &info), KVT_OK);
        assert_non_null(info.name);
        assert_non_null(info.doc);
        assert_true(strlen(info.doc) > 5);
        assert_non_null(info.default_text);
        if (strncmp(info.name, "extra_config.", 13) == 0) {
            assert_null(info.env);
            assert_true(info.runtime_mutable);
        } else {
            char want[128] = "LMCACHE_";
            for (size_t k = 0; info.name[k]; k++)
                want[8 + k] = (char)(info.name[k] >= 'a' && info.name[k] <= 'z'
                                         ? info.name[k] - 'a' + 'A'
                                         : info.name[k]);
            assert_non_null(info.env);
            assert_string_equal(info.env, want);
        }
        /* The default text parses back and reads back unchanged. */
        assert_int_equal(kvt_config_new(&fresh), KVT_OK);
        assert_int_equal(kvt_config_set(fresh, info.name, info.default_text), KVT_OK);
        assert_string_equal(text_of(fresh, info.name), info.default_text);
        kvt_config_free(fresh);
        for (size_t j = 0; j < i; j++) {
            kvt_config_key_info other;
            kvt_config_key_at(j, &other);
            assert_string_not_equal(other.name, info.name);
        }
    }
    kvt_config_key_info info;
    assert_int_equal(kvt_config_key_at(kvt_config_key_count(), &info), KVT_ERANGE);
}

static void runtime_mutable_set_is_the_allowlist(void **state)
{
    /* Contract 13.4's list, and kvtier's own keys read when a tier is created or closed. */
    static const char *const allow[] = { "remote_url",   "blocking_timeout_secs", "local_disk",
                                         "max_local_disk_size", "gds_path", "gds_buffer_size",
                                         "use_gds",      "cache_policy", "max_gds_size",
                                         "write_queue_timeout_ms", "backend_close_timeout_ms",
                                         "breaker_failures", "breaker_backoff_ms",
                                         "breaker_backoff_max_ms", "remote_op_timeout_ms",
                                         "remote_connect_timeout_ms",
                                         "remote_reconnect_interval_ms", "remote_pool_size",
                                         "remote_fs_fsync" };
    (void)state;
    for (size_t i = 0; i < kvt_config_key_count(); i++) {
        kvt_config_key_info info;
        kvt_config_key_at(i, &info);
        bool want = strncmp(info.name, "extra_config.", 13) == 0;
        for (size_t k = 0; k < sizeof allow / sizeof allow[0]; k++)
            want |= strcmp(info.name, allow[k]) == 0;
        if (info.runtime_mutable != want)
            fail_msg("%s: runtime_mutable is %d", info.name, info.runtime_mutable);
    }
}

/* ------------------------------------------------------------ getters */

static void getters_report_unknown_keys_and_wrong_types(void **state)
{
    kvt_config *cfg = *state;
    int64_t i;
    bool b;
    const char *s = "x";
    char buf[4];
    assert_int_equal(kvt_config_get_int(cfg, "no_such_key", &i), KVT_ENOENT);
    error_names("no_such_key", NULL);
    assert_int_equal(kvt_config_get_bool(cfg, "chunk_size", &b), KVT_EINVAL);
    assert_int_equal(kvt_config_get_int(cfg, "max_local_cpu_size", &i), KVT_EINVAL);
    assert_int_equal(kvt_config_get_str(cfg, "chunk_size", &s), KVT_EINVAL);
    assert_null(s);
    assert_int_equal(kvt_config_get_text(cfg, "internal_api_server_host", false, buf, sizeof buf),
                     KVT_ETOOSMALL);
    assert_string_equal(buf, "127");
    assert_int_equal(kvt_config_get_text(cfg, "chunk_size", false, buf, sizeof buf), KVT_OK);
    assert_string_equal(buf, "256");
}

static void text_form_of_floats_round_trips(void **state)
{
    kvt_config *cfg = *state;
    double f;
    assert_int_equal(kvt_config_set_float(cfg, "max_local_cpu_size", 5), KVT_OK);
    assert_string_equal(text_of(cfg, "max_local_cpu_size"), "5.0");
    assert_int_equal(kvt_config_set_float(cfg, "max_local_cpu_size", 0.1 + 0.2), KVT_OK);
    assert_int_equal(kvt_config_set(cfg, "max_local_disk_size", text_of(cfg, "max_local_cpu_size")),
                     KVT_OK);
    assert_int_equal(kvt_config_get_float(cfg, "max_local_disk_size", &f), KVT_OK);
    assert_true(f == 0.1 + 0.2);
    assert_int_equal(kvt_config_set(cfg, "max_local_cpu_size", "1e-5"), KVT_OK);
    assert_string_equal(text_of(cfg, "max_local_cpu_size"), "1e-05");
    assert_int_equal(kvt_config_set(cfg, "max_local_cpu_size", "1048576"), KVT_OK);
    assert_string_equal(text_of(cfg, "max_local_cpu_size"), "1048576.0");
    assert_int_equal(kvt_config_set(cfg, "max_local_cpu_size", "0.00012345678901234567"), KVT_OK);
    assert_int_equal(kvt_config_set(cfg, "max_local_disk_size", text_of(cfg, "max_local_cpu_size")),
                     KVT_OK);
    assert_int_equal(kvt_config_get_float(cfg, "max_local_disk_size", &f), KVT_OK);
    assert_true(f == 0.00012345678901234567);
    assert_int_equal(kvt_config_set_int(cfg, "max_local_cpu_size", 3), KVT_OK);
    assert_string_equal(text_of(cfg, "max_local_cpu_size"), "3.0");
    assert_int_equal(kvt_config_set_float(cfg, "extra_config.allocation_attempt_delay_secs", 10),
                     KVT_OK);
    assert_string_equal(text_of(cfg, "extra_config.allocation_attempt_delay_secs"), "10.0");
}

/* ------------------------------------------------------------ text conversion */

static void set_converts_booleans_in_any_case(void **state)
{
    static const char *const yes[] = { "true", "TRUE", "1", "yes", "Yes" };
    static const char *const no[] = { "false", "False", "0", "no", "NO" };
    kvt_config *cfg = *state;
    bool b;
    for (size_t k = 0; k < 5; k++) {
        assert_int_equal(kvt_config_set(cfg, "save_unfull_chunk", yes[k]), KVT_OK);
        assert_int_equal(kvt_config_get_bool(cfg, "save_unfull_chunk", &b), KVT_OK);
        assert_true(b);
        assert_int_equal(kvt_config_set(cfg, "save_unfull_chunk", no[k]), KVT_OK);
        assert_int_equal(kvt_config_get_bool(cfg, "save_unfull_chunk", &b), KVT_OK);
        assert_false(b);
    }
    assert_int_equal(kvt_config_set(cfg, "save_unfull_chunk", "maybe"), KVT_ECONFIG);
    error_names("save_unfull_chunk", "\"maybe\"", NULL);
}

static void set_rejects_ints_that_are_not_whole_decimal_numbers(void **state)
{
    static const char *const bad[] = { "12x", "1e3", "", "0x10", "1.5", "99999999999999999999",
                                       "abc" };
    kvt_config *cfg = *state;
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        assert_int_equal(kvt_config_set(cfg, "chunk_size", bad[k]), KVT_ECONFIG);
        error_names("chunk_size", bad[k], NULL);
    }
    assert_int_equal(kvt_config_set(cfg, "chunk_size", "abc"), KVT_ECONFIG);
    assert_string_equal(kvt_last_error(),
                        "invalid value \"abc\" for chunk_size: expected an integer");
    assert_int_equal(kvt_config_set(cfg, "chunk_size", "0"), KVT_ECONFIG);
    error_names("chunk_size", "\"0\"", "1048576", NULL);
    assert_int_equal(kvt_config_set(cfg, "chunk_size", " 512 "), KVT_OK);
    assert_int_equal(int_of(cfg, "chunk_size"), 512);
    assert_int_equal(kvt_config_set_int(cfg, "chunk_size", 2000000), KVT_ECONFIG);
    assert_int_equal(int_of(cfg, "chunk_size"), 512);
    assert_int_equal(kvt_config_set_bool(cfg, "chunk_size", true), KVT_EINVAL);
}

static void set_rejects_floats_that_are_not_finite_or_negative(void **state)
{
    kvt_config *cfg = *state;
    assert_int_equal(kvt_config_set(cfg, "max_local_cpu_size", "inf"), KVT_ECONFIG);
    error_names("max_local_cpu_size", "inf", NULL);
    assert_int_equal(kvt_config_set(cfg, "max_local_cpu_size", "nan"), KVT_ECONFIG);
    assert_int_equal(kvt_config_set(cfg, "max_local_cpu_size", "-1"), KVT_ECONFIG);
    error_names("max_local_cpu_size", "-1", NULL);
    assert_int_equal(kvt_config_set(cfg, "max_local_cpu_size", "2GB"), KVT_ECONFIG);
    error_names("max_local_cpu_size", "2GB", NULL);
    assert_int_equal(kvt_config_set_float(cfg, "chunk_size", 1.0), KVT_EINVAL);
}

static void set_converts_lists_from_csv_and_null_unsets(void **state)
{
    kvt_config *cfg = *state;
    const char *const *items;
    size_t n;
    const char *s;
    assert_int_equal(kvt_config_set(cfg, "retrieve_locations", " LocalCPUBackend , ,Remote "),
                     KVT_OK);
    assert_int_equal(kvt_config_get_list(cfg, "retrieve_locations", &items, &n), KVT_OK);
    assert_int_equal(n, 2);
    assert_string_equal(items[0], "LocalCPUBackend");
    assert_string_equal(items[1], "Remote");
    assert_null(items[2]);
    assert_string_equal(text_of(cfg, "retrieve_locations"), "LocalCPUBackend,Remote");
    assert_int_equal(kvt_config_set(cfg, "retrieve_locations", "NULL"), KVT_OK);
    assert_int_equal(kvt_config_get_list(cfg, "retrieve_locations", &items, &n), KVT_OK);
    assert_int_equal(n, 0);
    assert_int_equal(kvt_config_set(cfg, "retrieve_locations", "a b"), KVT_ECONFIG);
    error_names("retrieve_locations", "a b", NULL);
    assert_int_equal(kvt_config_set(cfg, "local_disk", "/tmp/a"), KVT_OK);
    assert_int_equal(kvt_config_set(cfg, "local_disk", "null"), KVT_OK);
    assert_int_equal(kvt_config_get_str(cfg, "local_disk", &s), KVT_OK);
    assert_null(s);
    assert_int_equal(source_of(cfg, "local_disk"), KVT_SRC_API);
    /* A required string cannot be cleared. */
    assert_int_equal(kvt_config_set(cfg, "remote_serde", ""), KVT_ECONFIG);
    error_names("remote_serde", NULL);
}

static void paths_must_be_absolute(void **state)
{
    kvt_config *cfg = *state;
    assert_int_equal(kvt_config_set(cfg, "local_disk", "file:///var/cache/kv"), KVT_OK);
    assert_int_equal(kvt_config_set(cfg, "local_disk", "/a, file:///b"), KVT_OK);
    assert_int_equal(kvt_config_set(cfg, "local_disk", "/a,relative"), KVT_ECONFIG);
    error_names("local_disk", "relative", NULL);
    assert_int_equal(kvt_config_set(cfg, "gds_path", "/mnt/gds0,/mnt/gds1"), KVT_OK);
    assert_int_equal(kvt_config_set(cfg, "gds_path", "gds"), KVT_ECONFIG);
    error_names("gds_path", "gds", NULL);
    assert_int_equal(kvt_config_set(cfg, "internal_api_server_socket_path_prefix", "sock"),
                     KVT_ECONFIG);
    assert_int_equal(kvt_config_set(cfg, "internal_api_server_include_index_list", "0, 2"),
                     KVT_OK);
    assert_int_equal(kvt_config_set(cfg, "internal_api_server_include_index_list", "0,-1"),
                     KVT_ECONFIG);
    error_names("internal_api_server_include_index_list", "-1", NULL);
    assert_int_equal(kvt_config_set(cfg, "store_location", "LocalDiskBackend"), KVT_OK);
    assert_int_equal(kvt_config_set(cfg, "store_location", "bad/name"), KVT_ECONFIG);
}

static void local_disk_and_gds_path_may_not_share_a_directory(void **state)
{
    kvt_config *cfg = *state;
    const char *s;
    assert_int_equal(kvt_config_set(cfg, "local_disk", "file:///data/kv/"), KVT_OK);
    assert_int_equal(kvt_config_set(cfg, "gds_path", "/other,/data/kv"), KVT_ECONFIG);
    error_names("local_disk", "gds_path", "/data/kv", NULL);
    assert_int_equal(kvt_config_get_str(cfg, "gds_path", &s), KVT_OK);
    assert_null(s);
}

/* ------------------------------------------------------------ precedence */

static void precedence_api_over_env_over_file_over_default_in_any_order(void **state)
{
    (void)state;
    /* Every order of the three writers gives the same answer. */
    static const int orders[6][3] = { { 0, 1, 2 }, { 0, 2, 1 }, { 1, 0, 2 },
                                      { 1, 2, 0 }, { 2, 0, 1 }, { 2, 1, 0 } };
    char *path = tmp_file(".yaml", "chunk_size: 16\nwrite_queue_depth: 8\n"
                                   "max_local_cpu_size: 1.5\n");
    setenv("LMCACHE_CHUNK_SIZE", "32", 1);
    setenv("LMCACHE_WRITE_QUEUE_DEPTH", "9", 1);
    for (size_t o = 0; o < 6; o++) {
        kvt_config *cfg;
        assert_int_equal(kvt_config_new(&cfg), KVT_OK);
        for (size_t k = 0; k < 3; k++) {
            switch (orders[o][k]) {
            case 0:
                assert_int_equal(kvt_config_load_file(cfg, path), KVT_OK);
                break;
            case 1:
                assert_int_equal(kvt_config_load_env(cfg), KVT_OK);
                break;
            case 2:
                assert_int_equal(kvt_config_set(cfg, "chunk_size", "64"), KVT_OK);
                break;
            }
        }
        assert_int_equal(int_of(cfg, "chunk_size"), 64);
        assert_int_equal(source_of(cfg, "chunk_size"), KVT_SRC_API);
        assert_int_equal(int_of(cfg, "write_queue_depth"), 9);
        assert_int_equal(source_of(cfg, "write_queue_depth"), KVT_SRC_ENV);
        assert_string_equal(text_of(cfg, "max_local_cpu_size"), "1.5");
        assert_int_equal(source_of(cfg, "max_local_cpu_size"), KVT_SRC_FILE);
        assert_int_equal(int_of(cfg, "blocking_timeout_secs"), 10);
        assert_int_equal(source_of(cfg, "blocking_timeout_secs"), KVT_SRC_DEFAULT);
        kvt_config_free(cfg);
    }
    drop_file(path);
}

static void lower_source_values_are_still_validated(void **state)
{
    kvt_config *cfg = *state;
    assert_int_equal(kvt_config_set(cfg, "chunk_size", "64"), KVT_OK);
    setenv("LMCACHE_CHUNK_SIZE", "abc", 1);
    assert_int_equal(kvt_config_load_env(cfg), KVT_ECONFIG);
    error_names("LMCACHE_CHUNK_SIZE", "chunk_size", "abc", NULL);
    assert_int_equal(load_text(cfg, ".yaml", "chunk_size: 0\n"), KVT_ECONFIG);
    error_names("chunk_size", NULL);
    assert_int_equal(int_of(cfg, "chunk_size"), 64);
}

static void from_sources_reads_the_file_named_by_lmcache_config_file(void **state)
{
    (void)state;
    kvt_config *cfg;
    char *path = tmp_file(".yaml", "chunk_size: 128\nblocking_timeout_secs: 20\n");
    setenv("LMCACHE_CONFIG_FILE", path, 1);
    setenv("LMCACHE_BLOCKING_TIMEOUT_SECS", "30", 1);
    assert_int_equal(kvt_config_from_sources(NULL, &cfg), KVT_OK);
    assert_int_equal(int_of(cfg, "chunk_size"), 128);
    assert_int_equal(int_of(cfg, "blocking_timeout_secs"), 30);
    kvt_config_free(cfg);
    unsetenv("LMCACHE_CONFIG_FILE");
    assert_int_equal(kvt_config_from_sources(NULL, &cfg), KVT_OK);
    assert_int_equal(int_of(cfg, "chunk_size"), 256);
    kvt_config_free(cfg);
    setenv("LMCACHE_BLOCKING_TIMEOUT_SECS", "0", 1);
    cfg = (kvt_config *)1;
    assert_int_equal(kvt_config_from_sources(path, &cfg), KVT_ECONFIG);
    assert_null(cfg);
    drop_file(path);
}

/* ------------------------------------------------------------ environment */

static void env_parses_every_type(void **state)
{
    kvt_config *cfg = *state;
    bool b;
    double f;
    const char *const *items;
    size_t n;
    setenv("LMCACHE_LOCAL_CPU", "No", 1);
    setenv("LMCACHE_CHUNK_SIZE", "512", 1);
    setenv("LMCACHE_MAX_LOCAL_CPU_SIZE", "2.5", 1);
    setenv("LMCACHE_RETRIEVE_LOCATIONS", "LocalCPUBackend,LocalDiskBackend", 1);
    setenv("LMCACHE_REMOTE_URL", "redis://localhost:6379", 1);
    setenv("LMCACHE_MODULE_PATH", "evil", 1); /* not a key: only noted */
    assert_int_equal(kvt_config_load_env(cfg), KVT_OK);
    assert_int_equal(kvt_config_get_bool(cfg, "local_cpu", &b), KVT_OK);
    assert_false(b);
    assert_int_equal(int_of(cfg, "chunk_size"), 512);
    assert_int_equal(kvt_config_get_float(cfg, "max_local_cpu_size", &f), KVT_OK);
    assert_true(f == 2.5);
    assert_int_equal(kvt_config_get_list(cfg, "retrieve_locations", &items, &n), KVT_OK);
    assert_int_equal(n, 2);
    assert_string_equal(items[1], "LocalDiskBackend");
    assert_string_equal(text_of(cfg, "remote_url"), "redis://localhost:6379");
    assert_int_equal(source_of(cfg, "remote_url"), KVT_SRC_ENV);
    assert_int_equal(kvt__conf_notice_count(cfg), 1); /* event=unknown_env LMCACHE_MODULE_PATH */
    unsetenv("LMCACHE_MODULE_PATH");
}

static void env_errors_name_variable_key_and_value(void **state)
{
    kvt_config *cfg = *state;
    char *before = snapshot(cfg);
    setenv("LMCACHE_CHUNK_SIZE", "512", 1);
    setenv("LMCACHE_USE_GDS", "perhaps", 1);
    assert_int_equal(kvt_config_load_env(cfg), KVT_ECONFIG);
    error_names("LMCACHE_USE_GDS", "use_gds", "perhaps", NULL);
    assert_unchanged(before, cfg); /* chunk_size was fine but is not applied either */
    unsetenv("LMCACHE_USE_GDS");
    setenv("LMCACHE_MAX_LOCAL_DISK_SIZE", "1e3x", 1);
    assert_int_equal(kvt_config_load_env(cfg), KVT_ECONFIG);
    error_names("max_local_disk_size", "1e3x", NULL);
    assert_unchanged(before, cfg);
    free(before);
}

static void env_extra_config_json_merges_per_subkey(void **state)
{
    kvt_config *cfg = *state;
    bool b;
    const char *s;
    assert_int_equal(kvt_config_set(cfg, "extra_config.ping_interval", "60"), KVT_OK);
    setenv("LMCACHE_EXTRA_CONFIG",
           "{\"disk_io_threads\": 8, \"use_odirect\": true, \"fallback_policy\": \"local_cpu\","
           " \"local_cpu.evict_batch_candidates\": \"32\", \"ping_interval\": 5}",
           1);
    assert_int_equal(kvt_config_load_env(cfg), KVT_OK);
    assert_int_equal(int_of(cfg, "extra_config.disk_io_threads"), 8);
    assert_int_equal(kvt_config_get_bool(cfg, "extra_config.use_odirect", &b), KVT_OK);
    assert_true(b);
    assert_int_equal(kvt_config_get_str(cfg, "extra_config.fallback_policy", &s), KVT_OK);
    assert_string_equal(s, "local_cpu");
    assert_int_equal(int_of(cfg, "extra_config.local_cpu.evict_batch_candidates"), 32);
    assert_int_equal(int_of(cfg, "extra_config.ping_interval"), 60); /* API wins */
    assert_int_equal(int_of(cfg, "extra_config.ping_timeout"), 5);   /* untouched */
}

static void env_extra_config_errors(void **state)
{
    kvt_config *cfg = *state;
    char *before = snapshot(cfg);
    setenv("LMCACHE_EXTRA_CONFIG", "{\"disk_io_threads\": 8, \"bogus_knob\": 1}", 1);
    assert_int_equal(kvt_config_load_env(cfg), KVT_ECONFIG);
    error_names("LMCACHE_EXTRA_CONFIG", "bogus_knob", NULL);
    setenv("LMCACHE_EXTRA_CONFIG", "{\"disk_io_threads\": 2.5}", 1);
    assert_int_equal(kvt_config_load_env(cfg), KVT_ECONFIG);
    error_names("disk_io_threads", "2.5", NULL);
    setenv("LMCACHE_EXTRA_CONFIG", "{\"disk_io_threads\": 1, \"disk_io_threads\": 2}", 1);
    assert_int_equal(kvt_config_load_env(cfg), KVT_ECONFIG);
    error_names("duplicate", "disk_io_threads", NULL);
    setenv("LMCACHE_EXTRA_CONFIG", "{disk_io_threads: 8}", 1);
    assert_int_equal(kvt_config_load_env(cfg), KVT_ECONFIG);
    error_names("LMCACHE_EXTRA_CONFIG", "JSON", NULL);
    setenv("LMCACHE_EXTRA_CONFIG", "[1]", 1);
    assert_int_equal(kvt_config_load_env(cfg), KVT_ECONFIG);
    setenv("LMCACHE_EXTRA_CONFIG", "{\"fallback_policy\": 3}", 1);
    assert_int_equal(kvt_config_load_env(cfg), KVT_ECONFIG);
    error_names("fallback_policy", NULL);
    setenv("LMCACHE_EXTRA_CONFIG", "{\"storage_plugin.x.module_path\": \"os\"}", 1);
    assert_int_equal(kvt_config_load_env(cfg), KVT_ECONFIG);
    error_names("storage_plugin.x.module_path", "never loads code", NULL);
    assert_unchanged(before, cfg);
    free(before);
}

/* ------------------------------------------------------------ files */

static void yaml_file_loads_scalars_lists_nulls_and_extra_config(void **state)
{
    kvt_config *cfg = *state;
    const char *const *items;
    size_t n;
    const char *s;
    bool b;
    assert_int_equal(kvt_config_set(cfg, "local_disk", "/x"), KVT_OK);
    assert_int_equal(kvt_config_set(cfg, "store_location", "X"), KVT_OK);
    assert_int_equal(load_text(cfg, ".yaml",
                               "# kvtier\n"
                               "chunk_size: 128\n"
                               "local_cpu: False\n"
                               "max_local_cpu_size: 2\n"
                               "remote_url: \"fs:///srv/kv\"\n"
                               "retrieve_locations:\n  - LocalCPUBackend\n  - RemoteBackend\n"
                               "internal_api_server_include_index_list: 0, 1\n"
                               "gds_path: ~\n"
                               "enable_pd: false\n"
                               "storage_plugins: []\n"
                               "extra_config:\n"
                               "  disk_io_threads: 2\n"
                               "  local_cpu.evict_batch_candidates: 8\n"
                               "  save_chunk_meta: no\n"),
                     KVT_OK);
    assert_int_equal(int_of(cfg, "chunk_size"), 128);
    assert_int_equal(kvt_config_get_bool(cfg, "local_cpu", &b), KVT_OK);
    assert_false(b);
    assert_string_equal(text_of(cfg, "max_local_cpu_size"), "2.0");
    assert_string_equal(text_of(cfg, "remote_url"), "fs:///srv/kv");
    assert_int_equal(kvt_config_get_list(cfg, "retrieve_locations", &items, &n), KVT_OK);
    assert_int_equal(n, 2);
    assert_string_equal(items[0], "LocalCPUBackend");
    assert_int_equal(kvt_config_get_list(cfg, "internal_api_server_include_index_list", &items,
                                         &n),
                     KVT_OK);
    assert_int_equal(n, 2);
    assert_string_equal(items[1], "1");
    assert_int_equal(kvt_config_get_str(cfg, "gds_path", &s), KVT_OK);
    assert_null(s);
    assert_int_equal(source_of(cfg, "gds_path"), KVT_SRC_FILE);
    assert_int_equal(int_of(cfg, "extra_config.disk_io_threads"), 2);
    assert_int_equal(int_of(cfg, "extra_config.local_cpu.evict_batch_candidates"), 8);
    assert_int_equal(kvt_config_get_bool(cfg, "extra_config.save_chunk_meta", &b), KVT_OK);
    assert_false(b);
    assert_string_equal(text_of(cfg, "local_disk"), "/x"); /* API value kept */
    assert_string_equal(text_of(cfg, "store_location"), "X");
    /* An empty file, or one of comments only, is fine. */
    assert_int_equal(load_text(cfg, ".yaml", ""), KVT_OK);
    assert_int_equal(load_text(cfg, ".yml", "# nothing\n"), KVT_OK);
    assert_int_equal(load_text(cfg, ".yaml", "extra_config:\n"), KVT_OK);
}

static void yaml_file_errors_name_the_key(void **state)
{
    kvt_config *cfg = *state;
    char *before = snapshot(cfg);
    assert_int_equal(load_text(cfg, ".yaml", "chunk_size: 1\nchunk_size: 2\n"), KVT_ECONFIG);
    error_names("duplicate", "chunk_size", NULL);
    assert_int_equal(load_text(cfg, ".yaml", "chunk_size: {a: 1}\n"), KVT_ECONFIG);
    error_names("chunk_size", NULL);
    assert_int_equal(load_text(cfg, ".yaml", "chunk_size: [1]\n"), KVT_ECONFIG);
    error_names("chunk_size", NULL);
    assert_int_equal(load_text(cfg, ".yaml", "chunk_size: ~\n"), KVT_ECONFIG);
    error_names("chunk_size", "null", NULL);
    assert_int_equal(load_text(cfg, ".yaml", "extra_config:\n  local_cpu:\n    x: 1\n"),
                     KVT_ECONFIG);
    error_names("extra_config.local_cpu", NULL);
    assert_int_equal(load_text(cfg, ".yaml", "extra_config: 3\n"), KVT_ECONFIG);
    error_names("extra_config", NULL);
    assert_int_equal(load_text(cfg, ".yaml", "extra_config.disk_io_threads: 3\n"), KVT_ECONFIG);
    error_names("extra_config.disk_io_threads", NULL);
    assert_int_equal(load_text(cfg, ".yaml", "- a\n- b\n"), KVT_ECONFIG);
    assert_int_equal(load_text(cfg, ".yaml", "chunk_size: [1\n"), KVT_ECONFIG);
    error_names("YAML", "line", NULL);
    assert_int_equal(load_text(cfg, ".yaml", "chunk_size: 64\n---\nchunk_size: 8\n"),
                     KVT_ECONFIG);
    assert_unchanged(before, cfg);
    free(before);
}

static void json_file_loads_typed_values(void **state)
{
    kvt_config *cfg = *state;
    const char *const *items;
    size_t n;
    bool b;
    assert_int_equal(load_text(cfg, ".json",
                               "{\"chunk_size\": 64, \"max_local_cpu_size\": 1,"
                               " \"save_unfull_chunk\": true, \"local_disk\": null,"
                               " \"retrieve_locations\": [\"LocalCPUBackend\"],"
                               " \"internal_api_server_include_index_list\": [0, 3],"
                               " \"blocking_timeout_secs\": \"7\","
                               " \"extra_config\": {\"use_exists_sync\": true,"
                               "   \"allocation_attempt_delay_secs\": 0.5}}"),
                     KVT_OK);
    assert_int_equal(int_of(cfg, "chunk_size"), 64);
    assert_string_equal(text_of(cfg, "max_local_cpu_size"), "1.0");
    assert_int_equal(kvt_config_get_bool(cfg, "save_unfull_chunk", &b), KVT_OK);
    assert_true(b);
    assert_int_equal(kvt_config_get_list(cfg, "retrieve_locations", &items, &n), KVT_OK);
    assert_int_equal(n, 1);
    assert_string_equal(text_of(cfg, "internal_api_server_include_index_list"), "0,3");
    assert_int_equal(int_of(cfg, "blocking_timeout_secs"), 7);
    assert_string_equal(text_of(cfg, "extra_config.allocation_attempt_delay_secs"), "0.5");
    assert_int_equal(kvt_config_get_bool(cfg, "extra_config.use_exists_sync", &b), KVT_OK);
    assert_true(b);
}

static void json_file_errors_name_the_key(void **state)
{
    kvt_config *cfg = *state;
    char *before = snapshot(cfg);
    assert_int_equal(load_text(cfg, ".json", "{\"chunk_size\": 64, \"chunk_size\": 32}"),
                     KVT_ECONFIG);
    error_names("duplicate", "chunk_size", NULL);
    assert_int_equal(load_text(cfg, ".json", "{\"chunk_size\": 64.5}"), KVT_ECONFIG);
    error_names("chunk_size", "64.5", NULL);
    assert_int_equal(load_text(cfg, ".json", "{\"chunk_size\": 1e30}"), KVT_ECONFIG);
    error_names("chunk_size", NULL);
    assert_int_equal(load_text(cfg, ".json", "{\"remote_serde\": 5}"), KVT_ECONFIG);
    error_names("remote_serde", "5", NULL);
    assert_int_equal(load_text(cfg, ".json", "{\"local_cpu\": \"x\"}"), KVT_ECONFIG);
    error_names("local_cpu", "\"x\"", NULL);
    assert_int_equal(load_text(cfg, ".json", "{\"chunk_size\": 64} trailing"), KVT_ECONFIG);
    error_names("JSON", NULL);
    assert_int_equal(load_text(cfg, ".json", "{\"chunk_size\": }"), KVT_ECONFIG);
    error_names("JSON", "line 1", NULL);
    assert_int_equal(load_text(cfg, ".json", "[]"), KVT_ECONFIG);
    assert_int_equal(load_text(cfg, ".json",
                               "{\"extra_config\": {}, \"extra_config\": {}}"),
                     KVT_ECONFIG);
    error_names("duplicate", "extra_config", NULL);
    assert_unchanged(before, cfg);
    free(before);
}

static void unknown_key_errors_name_the_key(void **state)
{
    kvt_config *cfg = *state;
    assert_int_equal(kvt_config_set(cfg, "module_path", "os"), KVT_ECONFIG);
    assert_string_equal(kvt_last_error(), "unknown config key \"module_path\"");
    assert_int_equal(load_text(cfg, ".yaml", "module_path: os\n"), KVT_ECONFIG);
    error_names("module_path", NULL);
    assert_int_equal(load_text(cfg, ".json", "{\"module_path\": \"os\"}"), KVT_ECONFIG);
    error_names("module_path", NULL);
    assert_int_equal(load_text(cfg, ".yaml", "extra_config:\n  module_path: os\n"), KVT_ECONFIG);
    error_names("extra_config.module_path", NULL);
}

static void failed_file_load_leaves_config_unchanged(void **state)
{
    kvt_config *cfg = *state;
    char *before;
    assert_int_equal(kvt_config_set(cfg, "write_queue_depth", "5"), KVT_OK);
    before = snapshot(cfg);
    /* The good keys come first and would apply if the load were not all-or-nothing. */
    assert_int_equal(load_text(cfg, ".yaml", "chunk_size: 32\nlocal_disk: /d\nuse_gds: maybe\n"),
                     KVT_ECONFIG);
    error_names("config file", "use_gds", "maybe", NULL);
    assert_unchanged(before, cfg);
    assert_int_equal(kvt_config_load_file(cfg, "/nonexistent/kvtier.yaml"), KVT_ECONFIG);
    assert_string_equal(kvt_last_error(),
                        "cannot read config file /nonexistent/kvtier.yaml: No such file or "
                        "directory");
    assert_int_equal(kvt_config_load_file(cfg, "/"), KVT_ECONFIG);
    error_names("cannot read config file /", NULL);
    assert_unchanged(before, cfg);
    free(before);
}

/* ------------------------------------------------------------ features kvtier lacks */

static void forbidden_features_fail_and_disabled_values_pass(void **state)
{
    kvt_config *cfg = *state;
    assert_int_equal(kvt_config_set(cfg, "storage_plugins", ""), KVT_OK);
    assert_int_equal(kvt_config_set(cfg, "storage_plugins", "mine"), KVT_ECONFIG);
    error_names("storage_plugins", "never loads code", NULL);
    assert_int_equal(kvt_config_set(cfg, "external_backends", "x"), KVT_ECONFIG);
    error_names("external_backends", NULL);
    assert_int_equal(kvt_config_set(cfg, "remote_storage_plugins", "x"), KVT_ECONFIG);
    assert_int_equal(kvt_config_set(cfg, "enable_pd", "false"), KVT_OK);
    assert_int_equal(kvt_config_set(cfg, "enable_pd", "true"), KVT_ECONFIG);
    error_names("enable_pd", "not supported", NULL);
    assert_int_equal(kvt_config_set_bool(cfg, "enable_p2p", true), KVT_ECONFIG);
    error_names("enable_p2p", NULL);
    assert_int_equal(kvt_config_set(cfg, "maru_path", "null"), KVT_OK);
    assert_int_equal(kvt_config_set(cfg, "maru_path", "/dev/maru"), KVT_ECONFIG);
    error_names("maru_path", NULL);
    assert_int_equal(kvt_config_set(cfg, "extra_config.storage_plugin.x.module_path", "os"),
                     KVT_ECONFIG);
    error_names("storage_plugin.x.module_path", "never loads code", NULL);
    assert_int_equal(kvt_config_set(cfg, "extra_config.remote_storage_plugin.y", "1"),
                     KVT_ECONFIG);
    assert_int_equal(kvt_config_set(cfg, "extra_config.external_backend.z", "1"), KVT_ECONFIG);
    assert_int_equal(load_text(cfg, ".yaml",
                               "storage_plugins:\n  - evil\n"),
                     KVT_ECONFIG);
    error_names("storage_plugins", "evil", NULL);
    assert_int_equal(load_text(cfg, ".yaml",
                               "enable_pd: false\nenable_p2p: no\nstorage_plugins: []\n"
                               "maru_path: null\n"),
                     KVT_OK);
    assert_int_equal(load_text(cfg, ".yaml",
                               "extra_config:\n  storage_plugin.p.module_path: os\n"),
                     KVT_ECONFIG);
    error_names("never loads code", NULL);
}

static void remote_url_schemes_are_checked(void **state)
{
    static const char *const ok[] = { "fs:///srv/kv", "fs://host:1234/a,/b",
                                      "redis://localhost:6379", "REDIS://h:1/0",
                                      "unix:///run/redis.sock", "" };
    kvt_config *cfg = *state;
    for (size_t k = 0; k < sizeof ok / sizeof ok[0]; k++)
        assert_int_equal(kvt_config_set(cfg, "remote_url", ok[k]), KVT_OK);
    assert_int_equal(kvt_config_set(cfg, "remote_url", "localhost:6379"), KVT_ECONFIG);
    error_names("remote_url", "No adapter found for URL", NULL);
    assert_int_equal(kvt_config_set(cfg, "remote_url", "rediss://h:6380"), KVT_ECONFIG);
    error_names("remote_url", "TLS (rediss://) is not supported", NULL);
    assert_int_equal(kvt_config_set(cfg, "remote_url", "plugin://mine"), KVT_ECONFIG);
    error_names("remote_url", "never loads code", NULL);
    assert_int_equal(kvt_config_set(cfg, "remote_url", "external://h:0/mod/?connector_name=C"),
                     KVT_ECONFIG);
    error_names("never loads code", NULL);
    assert_int_equal(kvt_config_set(cfg, "remote_url", "s3://bucket/x"), KVT_ECONFIG);
    error_names("remote_url", "\"s3\"", "not implemented", NULL);
    assert_int_equal(kvt_config_set(cfg, "remote_url", "redis://u:hunter2@h/0x"), KVT_OK);
    assert_int_equal(kvt_config_set(cfg, "remote_url", "valkey://u:hunter2@h"), KVT_ECONFIG);
    assert_null(strstr(kvt_last_error(), "hunter2"));
}

static void other_string_keys_accept_only_what_kvtier_implements(void **state)
{
    kvt_config *cfg = *state;
    assert_int_equal(kvt_config_set(cfg, "cache_policy", "lru"), KVT_OK);
    assert_string_equal(text_of(cfg, "cache_policy"), "LRU");
    assert_int_equal(kvt_config_set(cfg, "cache_policy", "LFU"), KVT_ECONFIG);
    error_names("cache_policy", "LFU", "not implemented in kvtier", NULL);
    assert_int_equal(kvt_config_set(cfg, "cache_policy", "random"), KVT_ECONFIG);
    error_names("cache_policy", "random", NULL);
    assert_int_equal(kvt_config_set(cfg, "remote_serde", "cachegen"), KVT_ECONFIG);
    error_names("remote_serde", "cachegen", NULL);
    assert_int_equal(kvt_config_set(cfg, "pre_caching_hash_algorithm", "sha256_cbor"),
                     KVT_ECONFIG);
    error_names("pre_caching_hash_algorithm", "sha256_cbor", "kvt_hash_tokens", NULL);
    assert_int_equal(kvt_config_set(cfg, "extra_config.fallback_policy", "drop"), KVT_ECONFIG);
}

/* ------------------------------------------------------------ patch */

static void patch_is_all_or_nothing(void **state)
{
    kvt_config *cfg = *state;
    const char *keys[] = { "remote_url", "blocking_timeout_secs", "use_gds" };
    const char *vals[] = { "fs:///a", "x", "false" };
    size_t bad = 99;
    char *before = snapshot(cfg);
    assert_int_equal(kvt_config_patch(cfg, 3, keys, vals, true, &bad), KVT_ECONFIG);
    assert_int_equal(bad, 1);
    error_names("blocking_timeout_secs", "\"x\"", NULL);
    assert_unchanged(before, cfg);
    vals[1] = "20";
    assert_int_equal(kvt_config_patch(cfg, 3, keys, vals, true, &bad), KVT_OK);
    assert_string_equal(text_of(cfg, "remote_url"), "fs:///a");
    assert_int_equal(int_of(cfg, "blocking_timeout_secs"), 20);
    assert_string_equal(text_of(cfg, "use_gds"), "false");
    assert_int_equal(source_of(cfg, "use_gds"), KVT_SRC_API);
    free(before);
    /* A cross-key failure blames the key involved. */
    const char *k2[] = { "use_gds", "local_disk", "gds_path" };
    const char *v2[] = { "true", "/same", "/same/" };
    before = snapshot(cfg);
    assert_int_equal(kvt_config_patch(cfg, 3, k2, v2, false, &bad), KVT_ECONFIG);
    assert_int_equal(bad, 1);
    assert_unchanged(before, cfg);
    free(before);
}

static void patch_runtime_only_refuses_with_lmcache_texts(void **state)
{
    kvt_config *cfg = *state;
    size_t bad = 99;
    const char *k1[] = { "cache_policy", "chunk_size" }, *v1[] = { "LRU", "512" };
    assert_int_equal(kvt_config_patch(cfg, 2, k1, v1, true, &bad), KVT_ECONFIG);
    assert_int_equal(bad, 1);
    assert_string_equal(kvt_last_error(), "chunk_size: Config is not mutable at runtime");
    const char *k2[] = { "foo" }, *v2[] = { "1" };
    assert_int_equal(kvt_config_patch(cfg, 1, k2, v2, true, &bad), KVT_ECONFIG);
    assert_int_equal(bad, 0);
    assert_string_equal(kvt_last_error(), "foo: Unknown config key");
    /* LMCache-only features count as unknown on a running store (contract 13.4, 13.9). */
    const char *k3[] = { "use_gds", "storage_plugins" }, *v3[] = { "false", "x" };
    assert_int_equal(kvt_config_patch(cfg, 2, k3, v3, true, &bad), KVT_ECONFIG);
    assert_int_equal(bad, 1);
    error_names("storage_plugins", "Unknown config", NULL);
    const char *k4[] = { "extra_config.storage_plugin.x.module_path" }, *v4[] = { "os" };
    assert_int_equal(kvt_config_patch(cfg, 1, k4, v4, true, &bad), KVT_ECONFIG);
    error_names("Unknown config", NULL);
    /* The same keys are fine at setup time. */
    assert_int_equal(kvt_config_patch(cfg, 2, k1, v1, false, &bad), KVT_OK);
    assert_int_equal(int_of(cfg, "chunk_size"), 512);
    assert_int_equal(kvt_config_patch(cfg, 0, NULL, NULL, true, NULL), KVT_OK);
    const char *k5[] = { "extra_config.ping_interval" }, *v5[] = { "45" };
    assert_int_equal(kvt_config_patch(cfg, 1, k5, v5, true, NULL), KVT_OK);
    assert_int_equal(int_of(cfg, "extra_config.ping_interval"), 45);
}

/* ------------------------------------------------------------ redaction */

static void get_text_redacts_token_and_url_password(void **state)
{
    kvt_config *cfg = *state;
    char buf[256];
    assert_int_equal(kvt_config_get_text(cfg, "internal_api_server_auth_token", true, buf,
                                         sizeof buf),
                     KVT_OK);
    assert_string_equal(buf, "");
    assert_int_equal(kvt_config_set(cfg, "internal_api_server_auth_token", "s3cr3t"), KVT_OK);
    assert_int_equal(kvt_config_get_text(cfg, "internal_api_server_auth_token", true, buf,
                                         sizeof buf),
                     KVT_OK);
    assert_string_equal(buf, "***");
    assert_string_equal(text_of(cfg, "internal_api_server_auth_token"), "s3cr3t");
    assert_int_equal(kvt_config_set(cfg, "internal_api_server_auth_token", "bad token"),
                     KVT_ECONFIG);
    assert_null(strstr(kvt_last_error(), "bad token"));
    error_names("internal_api_server_auth_token", NULL);

    assert_int_equal(kvt_config_set(cfg, "remote_url", "redis://user:pw@host:6379/0"), KVT_OK);
    assert_int_equal(kvt_config_get_text(cfg, "remote_url", true, buf, sizeof buf), KVT_OK);
    assert_string_equal(buf, "redis://user:***@host:6379/0");
    assert_int_equal(kvt_config_set(cfg, "remote_url", "redis://:pw@host:6379"), KVT_OK);
    assert_int_equal(kvt_config_get_text(cfg, "remote_url", true, buf, sizeof buf), KVT_OK);
    assert_string_equal(buf, "redis://:***@host:6379");
    assert_int_equal(kvt_config_set(cfg, "remote_url", "unix:///run/r.sock?db=0&password=pw"),
                     KVT_OK);
    assert_int_equal(kvt_config_get_text(cfg, "remote_url", true, buf, sizeof buf), KVT_OK);
    assert_string_equal(buf, "unix:///run/r.sock?db=0&password=***");
    assert_int_equal(kvt_config_set(cfg, "remote_url", "redis://host:6379"), KVT_OK);
    assert_int_equal(kvt_config_get_text(cfg, "remote_url", true, buf, sizeof buf), KVT_OK);
    assert_string_equal(buf, "redis://host:6379");
    kvt_config_key_info info;
    for (size_t i = 0; i < kvt_config_key_count(); i++) {
        kvt_config_key_at(i, &info);
        if (strcmp(info.name, "internal_api_server_auth_token") == 0 ||
            strcmp(info.name, "remote_url") == 0)
            assert_true(info.secret);
    }
}

static void dup_copies_everything(void **state)
{
    kvt_config *cfg = *state, *copy;
    assert_int_equal(kvt_config_set(cfg, "retrieve_locations", "a,b"), KVT_OK);
    assert_int_equal(kvt_config_set(cfg, "remote_url", "fs:///x"), KVT_OK);
    assert_int_equal(kvt_config_dup(cfg, &copy), KVT_OK);
    char *a = snapshot(cfg);
    assert_int_equal(kvt_config_set(cfg, "retrieve_locations", "c"), KVT_OK);
    assert_unchanged(a, copy);
    kvt_config_free(copy);
    free(a);
    kvt_config_free(NULL);
}


/* ------------------------------------------------------------ issue 6: config edges */

static void timeout_keys_have_defaults_bounds_and_change_at_runtime(void **state)
{
    kvt_config *cfg = *state;
    const char *keys[] = { "write_queue_timeout_ms", "backend_close_timeout_ms" };
    const char *vals[] = { "0", "3600000" };
    assert_int_equal(int_of(cfg, "write_queue_timeout_ms"), 10);
    assert_int_equal(int_of(cfg, "backend_close_timeout_ms"), 10000);
    assert_int_equal(kvt_config_set(cfg, "write_queue_timeout_ms", "60000"), KVT_OK);
    assert_int_equal(kvt_config_set(cfg, "write_queue_timeout_ms", "60001"), KVT_ECONFIG);
    error_names("write_queue_timeout_ms", "\"60001\"", "60000", NULL);
    assert_int_equal(kvt_config_set(cfg, "backend_close_timeout_ms", "-1"), KVT_ECONFIG);
    error_names("backend_close_timeout_ms", "\"-1\"", "3600000", NULL);
    assert_int_equal(kvt_config_patch(cfg, 2, keys, vals, true, NULL), KVT_OK);
    assert_int_equal(int_of(cfg, "write_queue_timeout_ms"), 0);
    assert_int_equal(int_of(cfg, "backend_close_timeout_ms"), 3600000);
    setenv("LMCACHE_WRITE_QUEUE_TIMEOUT_MS", "25", 1);
    setenv("LMCACHE_BACKEND_CLOSE_TIMEOUT_MS", "500", 1);
    kvt_config *fresh;
    assert_int_equal(kvt_config_from_sources(NULL, &fresh), KVT_OK);
    assert_int_equal(int_of(fresh, "write_queue_timeout_ms"), 25);
    assert_int_equal(int_of(fresh, "backend_close_timeout_ms"), 500);
    assert_int_equal(kvt__conf_notice_count(fresh), 0);
    kvt_config_free(fresh);
}

/* 1e30 GiB passed validation and then overflowed the byte count (UB in the conversion). */
static void size_keys_have_a_bound_that_keeps_bytes_in_uint64(void **state)
{
    static const char *const gib[] = { "max_local_cpu_size", "reserve_local_cpu_size",
                                       "max_local_disk_size", "max_gds_size" };
    kvt_config *cfg = *state;
    double f = -1;
    assert_int_equal(kvt_config_get_float(cfg, "max_gds_size", &f), KVT_OK);
    assert_true(f == 0.0);
    for (size_t k = 0; k < sizeof gib / sizeof gib[0]; k++) {
        assert_int_equal(kvt_config_set(cfg, gib[k], "1048576"), KVT_OK);
        assert_int_equal(kvt_config_get_float(cfg, gib[k], &f), KVT_OK);
        assert_true(f * 1073741824.0 <= (double)UINT64_MAX);
        assert_int_equal(kvt_config_set(cfg, gib[k], "1e30"), KVT_ECONFIG);
        error_names(gib[k], "\"1e30\"", "1048576", NULL);
        assert_int_equal(kvt_config_set_float(cfg, gib[k], 1048576.5), KVT_ECONFIG);
        assert_int_equal(kvt_config_set(cfg, gib[k], "nan"), KVT_ECONFIG);
        assert_int_equal(kvt_config_set(cfg, gib[k], "-inf"), KVT_ECONFIG);
        error_names(gib[k], "-inf", NULL);
    }
    /* Every size key of the table: the largest value it takes fits a uint64 byte count. */
    for (size_t i = 0; i < kvt_config_key_count(); i++) {
        kvt_config_key_info info;
        kvt_config_key_at(i, &info);
        if (info.type != KVT_CONF_FLOAT || !strstr(info.name, "_size"))
            continue;
        assert_int_equal(kvt_config_set(cfg, info.name, "1048576.0001"), KVT_ECONFIG);
    }
    assert_int_equal(kvt_config_set(cfg, "gds_buffer_size", "9223372036854775807"), KVT_ECONFIG);
    assert_int_equal(load_text(cfg, ".yaml", "max_local_cpu_size: 1e30\n"), KVT_ECONFIG);
    error_names("max_local_cpu_size", "\"1e30\"", NULL);
    assert_int_equal(load_text(cfg, ".json", "{\"max_local_disk_size\": 1e30}"), KVT_ECONFIG);
    error_names("max_local_disk_size", NULL);
    setenv("LMCACHE_MAX_GDS_SIZE", "2e6", 1);
    assert_int_equal(kvt_config_load_env(cfg), KVT_ECONFIG);
    error_names("LMCACHE_MAX_GDS_SIZE", "max_gds_size", "\"2e6\"", NULL);
    setenv("LMCACHE_MAX_GDS_SIZE", "64", 1);
    kvt_config *fresh;
    assert_int_equal(kvt_config_from_sources(NULL, &fresh), KVT_OK);
    assert_string_equal(text_of(fresh, "max_gds_size"), "64.0");
    kvt_config_free(fresh);
}

/* One LMCache file with all of them off loads at once (it used to fail on the first). */
static void lmcache_keys_kvtier_lacks_load_at_their_disabled_values(void **state)
{
    kvt_config *cfg = *state;
    assert_int_equal(load_text(cfg, ".yaml",
                               "chunk_size: 256\n"
                               "save_decode_cache: False\n"
                               "use_layerwise: false\n"
                               "enable_blending: no\n"
                               "blend_special_str: \" # # \"\n"
                               "blend_min_tokens: 256\n"
                               "blend_recompute_ratios: ~\n"
                               "enable_scheduler_bypass_lookup: off\n"
                               "lmcache_instance_id: vllm-instance-7\n"
                               "enable_async_loading: false\n"
                               "enable_controller: False\n"
                               "controller_url: null\n"
                               "lmcache_worker_ports: []\n"
                               "enable_pd: false\n"
                               "enable_xpyd: false\n"
                               "pd_buffer_size: ~\n"
                               "nixl_role: null\n"
                               "priority_limit: null\n"
                               "py_enable_gc: true\n"
                               "numa_mode: null\n"
                               "storage_plugins: []\n"),
                     KVT_OK);
    assert_int_equal(notices_of(cfg, KVT_LOG_INFO, "event=ignored_key key=use_layerwise"), 1);
    assert_int_equal(notices_of(cfg, KVT_LOG_INFO, "event=ignored_key key=pd_buffer_size"), 1);
    assert_int_equal(notices_of(cfg, KVT_LOG_INFO, "event=ignored_key key=py_enable_gc"), 1);
    size_t n = kvt__conf_notice_count(cfg);
    assert_int_equal(n, 20); /* one per key but chunk_size */
    /* Once per key: again from the environment, a setter and JSON, no new notice. */
    setenv("LMCACHE_USE_LAYERWISE", "False", 1);
    assert_int_equal(kvt_config_load_env(cfg), KVT_OK);
    assert_int_equal(kvt_config_set_bool(cfg, "use_layerwise", false), KVT_OK);
    assert_int_equal(load_text(cfg, ".json",
                               "{\"use_layerwise\": false, \"pd_buffer_size\": null,"
                               " \"blend_min_tokens\": 256, \"nixl_backends\": []}"),
                     KVT_OK);
    assert_int_equal(kvt__conf_notice_count(cfg), n + 1); /* nixl_backends is new */
    /* The keys have no value slot and are not in the public key table. */
    bool b;
    assert_int_equal(kvt_config_get_bool(cfg, "use_layerwise", &b), KVT_ENOENT);
    /* Copied with the config, gone with it. */
    kvt_config *copy;
    assert_int_equal(kvt_config_dup(cfg, &copy), KVT_OK);
    assert_int_equal(kvt__conf_notice_count(copy), n + 1);
    kvt_log_level lvl;
    assert_string_equal(kvt__conf_notice(copy, 0, &lvl), kvt__conf_notice(cfg, 0, NULL));
    assert_null(kvt__conf_notice(copy, n + 1, &lvl));
    kvt_config_free(copy);
    assert_int_equal(kvt__conf_notice_count(NULL), 0);
}

static void lmcache_keys_kvtier_lacks_fail_when_they_ask_for_the_feature(void **state)
{
    kvt_config *cfg = *state;
    char *before = snapshot(cfg);
    assert_int_equal(load_text(cfg, ".yaml", "use_layerwise: true\n"), KVT_ECONFIG);
    error_names("use_layerwise", "\"true\"", "layer-wise", "only false", NULL);
    assert_int_equal(load_text(cfg, ".yaml", "enable_blending: on\n"), KVT_ECONFIG);
    error_names("enable_blending", "\"on\"", "CacheBlend", NULL);
    assert_int_equal(load_text(cfg, ".yaml", "blend_min_tokens: 128\n"), KVT_ECONFIG);
    error_names("blend_min_tokens", "\"128\"", "only 256", NULL);
    assert_int_equal(load_text(cfg, ".yaml", "controller_url: localhost:9000\n"), KVT_ECONFIG);
    error_names("controller_url", "localhost:9000", "leave it unset", NULL);
    assert_int_equal(load_text(cfg, ".yaml", "lmcache_worker_ports: [8500]\n"), KVT_ECONFIG);
    error_names("lmcache_worker_ports", "8500", NULL);
    assert_int_equal(load_text(cfg, ".json", "{\"pd_buffer_size\": 1024}"), KVT_ECONFIG);
    error_names("pd_buffer_size", "\"1024\"", "disaggregated prefill", NULL);
    assert_int_equal(load_text(cfg, ".json", "{\"use_layerwise\": \"maybe\"}"), KVT_ECONFIG);
    error_names("use_layerwise", "maybe", "boolean", NULL);
    assert_int_equal(load_text(cfg, ".yaml", "use_layerwise: false\nuse_layerwise: false\n"),
                     KVT_ECONFIG);
    error_names("duplicate", "use_layerwise", NULL);
    setenv("LMCACHE_SAVE_DECODE_CACHE", "1", 1);
    assert_int_equal(kvt_config_load_env(cfg), KVT_ECONFIG);
    error_names("LMCACHE_SAVE_DECODE_CACHE", "save_decode_cache", "\"1\"", NULL);
    unsetenv("LMCACHE_SAVE_DECODE_CACHE");
    assert_int_equal(kvt_config_set(cfg, "blend_special_str", "##"), KVT_ECONFIG);
    error_names("blend_special_str", "only \" # # \"", NULL);
    /* A running store calls them unknown, as LMCache's own POST /conf does. */
    const char *k[] = { "use_layerwise" }, *v[] = { "false" };
    assert_int_equal(kvt_config_patch(cfg, 1, k, v, true, NULL), KVT_ECONFIG);
    error_names("use_layerwise", "Unknown config", NULL);
    assert_unchanged(before, cfg);
    assert_int_equal(kvt__conf_notice_count(cfg), 0); /* failed loads note nothing */
    free(before);
}

static void ignored_key_table_rows_are_consistent(void **state)
{
    (void)state;
    assert_true(kvt_config_ignored_key_count() >= 40);
    for (size_t i = 0; i < kvt_config_ignored_key_count(); i++) {
        kvt_config_ignored_key g;
        kvt_config *fresh;
        size_t idx;
        assert_int_equal(kvt_config_ignored_key_at(i, &g), KVT_OK);
        assert_non_null(g.name);
        assert_non_null(g.feature);
        assert_true(strlen(g.feature) > 3);
        /* Its disabled value passes (for "any", a value of its type) and is noted. */
        const char *off = g.disabled_text ? g.disabled_text
                                          : g.type == KVT_CONF_BOOL ? "false" : "anything";
        char want[128];
        assert_int_equal(kvt_config_new(&fresh), KVT_OK);
        assert_int_equal(kvt_config_set(fresh, g.name, off), KVT_OK);
        snprintf(want, sizeof want, "event=ignored_key key=%s", g.name);
        assert_int_equal(notices_of(fresh, KVT_LOG_INFO, want), 1);
        kvt_config_free(fresh);
        assert_int_equal(kvt__conf_lookup(g.name, &idx), KVT_OK);
        assert_true(idx >= kvt_config_key_count());
        for (size_t j = 0; j < kvt_config_key_count(); j++) {
            kvt_config_key_info info;
            kvt_config_key_at(j, &info);
            assert_string_not_equal(info.name, g.name);
        }
        for (size_t j = 0; j < i; j++) {
            kvt_config_ignored_key other;
            kvt_config_ignored_key_at(j, &other);
            assert_string_not_equal(other.name, g.name);
        }
    }
    kvt_config_ignored_key g;
    assert_int_equal(kvt_config_ignored_key_at(kvt_config_ignored_key_count(), &g), KVT_ERANGE);
    assert_int_equal(kvt_config_ignored_key_at(0, NULL), KVT_EINVAL);
}

static void yaml_plain_scalars_are_typed_as_yaml_1_1(void **state)
{
    static const char *const yes[] = { "on", "On", "ON", "yes", "Yes", "YES",
                                       "true", "True", "TRUE" };
    static const char *const no[] = { "off", "Off", "OFF", "no", "No", "NO",
                                      "false", "False", "FALSE" };
    kvt_config *cfg = *state;
    char text[128];
    bool b;
    double f;
    for (size_t k = 0; k < sizeof yes / sizeof yes[0]; k++) {
        snprintf(text, sizeof text, "save_unfull_chunk: %s\n", yes[k]);
        assert_int_equal(load_text(cfg, ".yaml", text), KVT_OK);
        assert_int_equal(kvt_config_get_bool(cfg, "save_unfull_chunk", &b), KVT_OK);
        assert_true(b);
        snprintf(text, sizeof text, "save_unfull_chunk: %s\n", no[k]);
        assert_int_equal(load_text(cfg, ".yaml", text), KVT_OK);
        assert_int_equal(kvt_config_get_bool(cfg, "save_unfull_chunk", &b), KVT_OK);
        assert_false(b);
    }
    /* PyYAML leaves y/n strings: refused by name, not read as LMCache would (false). */
    assert_int_equal(load_text(cfg, ".yaml", "save_unfull_chunk: y\n"), KVT_ECONFIG);
    assert_non_null(strstr(kvt_last_error(), "\"y\""));
    assert_int_equal(load_text(cfg, ".yaml", "chunk_size: 0400\n"), KVT_OK); /* octal */
    assert_int_equal(int_of(cfg, "chunk_size"), 256);
    assert_int_equal(load_text(cfg, ".yaml", "chunk_size: 0x1F\n"), KVT_OK);
    assert_int_equal(int_of(cfg, "chunk_size"), 31);
    assert_int_equal(load_text(cfg, ".yaml", "chunk_size: 0b101\n"), KVT_OK);
    assert_int_equal(int_of(cfg, "chunk_size"), 5);
    assert_int_equal(load_text(cfg, ".yaml", "chunk_size: 1_000\n"), KVT_OK);
    assert_int_equal(int_of(cfg, "chunk_size"), 1000);
    assert_int_equal(load_text(cfg, ".yaml", "chunk_size: +0_12\n"), KVT_OK);
    assert_int_equal(int_of(cfg, "chunk_size"), 10);
    assert_int_equal(load_text(cfg, ".yaml", "chunk_size: 09\n"), KVT_OK); /* no octal: text */
    assert_int_equal(int_of(cfg, "chunk_size"), 9);
    assert_int_equal(load_text(cfg, ".yaml", "max_local_cpu_size: 0400\n"), KVT_OK);
    assert_int_equal(kvt_config_get_float(cfg, "max_local_cpu_size", &f), KVT_OK);
    assert_true(f == 256.0);
    assert_int_equal(load_text(cfg, ".yaml", "max_local_cpu_size: 1_024.5\n"), KVT_OK);
    assert_string_equal(text_of(cfg, "max_local_cpu_size"), "1024.5");
    assert_int_equal(load_text(cfg, ".yaml", "max_local_cpu_size: .5\n"), KVT_OK);
    assert_string_equal(text_of(cfg, "max_local_cpu_size"), "0.5");
    assert_int_equal(load_text(cfg, ".yaml", "max_local_cpu_size: 1e1\n"), KVT_OK); /* text */
    assert_string_equal(text_of(cfg, "max_local_cpu_size"), "10.0");
    assert_int_equal(load_text(cfg, ".yaml", "max_local_cpu_size: .inf\n"), KVT_ECONFIG);
    error_names("max_local_cpu_size", "\".inf\"", "finite", NULL);
    assert_int_equal(load_text(cfg, ".yaml", "chunk_size: 0x8000000000000000\n"), KVT_ECONFIG);
    error_names("chunk_size", "0x8000000000000000", "out of range", NULL);
    assert_int_equal(load_text(cfg, ".yaml", "chunk_size: 0b\n"), KVT_ECONFIG);
    assert_int_equal(load_text(cfg, ".yaml", "chunk_size: on\n"), KVT_ECONFIG);
    /* Quoted scalars are strings, converted as text (decimal, contract booleans). */
    assert_int_equal(load_text(cfg, ".yaml", "chunk_size: \"0400\"\n"), KVT_OK);
    assert_int_equal(int_of(cfg, "chunk_size"), 400);
    assert_int_equal(load_text(cfg, ".yaml", "save_unfull_chunk: 'on'\n"), KVT_ECONFIG);
    error_names("save_unfull_chunk", "\"on\"", NULL);
    assert_int_equal(load_text(cfg, ".yaml", "save_unfull_chunk: 'yes'\n"), KVT_OK);
    /* String keys keep the text of a plain scalar that YAML would type. */
    assert_int_equal(load_text(cfg, ".yaml", "store_location: 0400\n"), KVT_OK);
    assert_string_equal(text_of(cfg, "store_location"), "0400");
    /* The environment keeps the contract's rules. */
    setenv("LMCACHE_CHUNK_SIZE", "0400", 1);
    setenv("LMCACHE_SAVE_UNFULL_CHUNK", "YES", 1);
    assert_int_equal(kvt_config_load_env(cfg), KVT_OK);
    assert_int_equal(int_of(cfg, "chunk_size"), 400);
    setenv("LMCACHE_SAVE_UNFULL_CHUNK", "on", 1);
    assert_int_equal(kvt_config_load_env(cfg), KVT_ECONFIG);
    error_names("LMCACHE_SAVE_UNFULL_CHUNK", "\"on\"", NULL);
}

static void unknown_lmcache_env_is_noted_once_with_the_nearest_key(void **state)
{
    kvt_config *cfg = *state, *c2;
    setenv("LMCACHE_CHUNKSIZE", "512", 1);
    setenv("LMCACHE_MAX_LOCAL_CPU_SIZ", "1", 1);
    setenv("LMCACHE_LOG_LEVEL", "INFO", 1);    /* LMCache's, sets no key: not noted */
    setenv("LMCACHE_TRACK_USAGE", "false", 1);
    setenv("LMCACHE_CONFIG_FIL", "x.yaml", 1);
    assert_int_equal(kvt_config_load_env(cfg), KVT_OK);
    assert_int_equal(int_of(cfg, "chunk_size"), 256);
    assert_int_equal(notices_of(cfg, KVT_LOG_WARN,
                                "event=unknown_env name=LMCACHE_CHUNKSIZE "
                                "nearest=LMCACHE_CHUNK_SIZE"),
                     1);
    assert_int_equal(notices_of(cfg, KVT_LOG_WARN,
                                "event=unknown_env name=LMCACHE_MAX_LOCAL_CPU_SIZ "
                                "nearest=LMCACHE_MAX_LOCAL_CPU_SIZE"),
                     1);
    assert_int_equal(notices_of(cfg, KVT_LOG_WARN,
                                "event=unknown_env name=LMCACHE_CONFIG_FIL "
                                "nearest=LMCACHE_CONFIG_FILE"),
                     1);
    assert_int_equal(kvt__conf_notice_count(cfg), 3);
    /* Once per variable: a second load of the same environment adds nothing. */
    assert_int_equal(kvt_config_load_env(cfg), KVT_OK);
    assert_int_equal(kvt__conf_notice_count(cfg), 3);
    /* kvt_config_from_sources() carries them to the config it returns. */
    unsetenv("LMCACHE_CONFIG_FIL");
    assert_int_equal(kvt_config_from_sources(NULL, &c2), KVT_OK);
    assert_int_equal(kvt__conf_notice_count(c2), 2);
    kvt_config_free(c2);
    /* A name may hold anything but '=': it stays one logfmt token. */
    kvt_config *fresh;
    env_clear();
    setenv("LMCACHE_A B\"", "1", 1);
    assert_int_equal(kvt_config_from_sources(NULL, &fresh), KVT_OK);
    assert_int_equal(kvt__conf_notice_count(fresh), 1);
    const char *t = kvt__conf_notice(fresh, 0, NULL);
    assert_non_null(strstr(t, "event=unknown_env name=LMCACHE_A?B? nearest=LMCACHE_"));
    assert_null(strchr(strstr(t, "nearest="), ' '));
    kvt_config_free(fresh);
    unsetenv("LMCACHE_A B\"");
    /* A load that fails notes nothing. */
    assert_int_equal(kvt_config_new(&fresh), KVT_OK);
    setenv("LMCACHE_CHUNK_SIZE", "x", 1);
    assert_int_equal(kvt_config_load_env(fresh), KVT_ECONFIG);
    assert_int_equal(kvt__conf_notice_count(fresh), 0);
    kvt_config_free(fresh);
}

static void errors_quote_values_as_written(void **state)
{
    kvt_config *cfg = *state;
    assert_int_equal(kvt_config_set(cfg, "max_local_cpu_size", "-10"), KVT_ECONFIG);
    assert_string_equal(kvt_last_error(), "invalid value \"-10\" for max_local_cpu_size: "
                                          "expected a number in [0.0, 1048576.0]");
    assert_int_equal(load_text(cfg, ".yaml", "max_local_cpu_size: -10\n"), KVT_ECONFIG);
    error_names("\"-10\"", NULL);
    assert_null(strstr(kvt_last_error(), "e+01"));
    assert_int_equal(load_text(cfg, ".json", "{\"max_local_disk_size\": -10}"), KVT_ECONFIG);
    error_names("\"-10\"", "max_local_disk_size", NULL);
    assert_int_equal(load_text(cfg, ".json", "{\"max_local_disk_size\": -0.5}"), KVT_ECONFIG);
    error_names("\"-0.5\"", NULL);
    assert_int_equal(kvt_config_set_float(cfg, "max_local_cpu_size", -10.0), KVT_ECONFIG);
    error_names("\"-10.0\"", NULL);
    assert_int_equal(kvt_config_set_int(cfg, "max_local_cpu_size", -10), KVT_ECONFIG);
    error_names("\"-10\"", NULL);
    assert_int_equal(load_text(cfg, ".yaml", "chunk_size: 0x0\n"), KVT_ECONFIG);
    error_names("\"0x0\"", "chunk_size", NULL);
    setenv("LMCACHE_RESERVE_LOCAL_CPU_SIZE", " -2.50 ", 1);
    assert_int_equal(kvt_config_load_env(cfg), KVT_ECONFIG);
    error_names("\" -2.50 \"", NULL);
    const char *k[] = { "max_local_disk_size" }, *v[] = { "-1.0" };
    assert_int_equal(kvt_config_patch(cfg, 1, k, v, true, NULL), KVT_ECONFIG);
    error_names("\"-1.0\"", NULL);
}

/* `open_with`, then `levels` opening brackets. */
static char *nested(const char *open_with, size_t levels)
{
    size_t cap = levels + 64, at = 0;
    char *text = malloc(cap);
    assert_non_null(text);
    at += (size_t)snprintf(text, cap, "%s", open_with);
    for (size_t k = 0; k < levels; k++)
        text[at++] = '[';
    text[at] = '\0';
    return text;
}

static void deeply_nested_files_are_refused_in_milliseconds(void **state)
{
    kvt_config *cfg = *state;
    char *yaml = nested("chunk_size: ", 200000);
    char *json = nested("{\"chunk_size\": ", 200000);
    double t0 = now_s();
    assert_int_equal(load_text(cfg, ".yaml", yaml), KVT_ECONFIG);
    error_names("config file", "YAML nested deeper than 32 levels", "line 1", NULL);
    assert_int_equal(load_text(cfg, ".json", json), KVT_ECONFIG);
    error_names("config file", "JSON nested deeper than 32 levels", "line 1, column 47", NULL);
    assert_true(now_s() - t0 < 2.0); /* the YAML took 30 s */
    free(yaml);
    free(json);
    /* 32 levels are within the cap: the error is about the value, not the depth. */
    char *ok = nested("storage_plugins: ", 31);
    yaml = malloc(strlen(ok) + 64);
    assert_non_null(yaml);
    sprintf(yaml, "%s%.31s\n", ok, "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]");
    assert_int_equal(load_text(cfg, ".yaml", yaml), KVT_ECONFIG);
    assert_null(strstr(kvt_last_error(), "deeper"));
    free(ok);
    free(yaml);
    /* The environment's JSON has the same cap; brackets in strings do not count. */
    setenv("LMCACHE_EXTRA_CONFIG",
           "{\"fallback_policy\": \"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\\"[[[[\"}", 1);
    assert_int_equal(kvt_config_load_env(cfg), KVT_ECONFIG);
    error_names("fallback_policy", "expected recompute", NULL);
    json = nested("", 40);
    setenv("LMCACHE_EXTRA_CONFIG", json, 1);
    assert_int_equal(kvt_config_load_env(cfg), KVT_ECONFIG);
    error_names("LMCACHE_EXTRA_CONFIG", "nested deeper than 32 levels", NULL);
    free(json);
}

static void files_over_1_mib_are_refused(void **state)
{
    kvt_config *cfg = *state;
    size_t cap = (1u << 20) + 2;
    char *text = malloc(cap);
    assert_non_null(text);
    /* Exactly 1 MiB of comments is a valid (empty) config. */
    memset(text, ' ', cap);
    text[0] = '#';
    text[(1u << 20) - 1] = '\n';
    text[1u << 20] = '\0';
    assert_int_equal(load_text(cfg, ".yaml", text), KVT_OK);
    text[1u << 20] = '\n';
    text[(1u << 20) + 1] = '\0';
    assert_int_equal(load_text(cfg, ".yaml", text), KVT_ECONFIG);
    error_names("config file", "larger than 1 MiB", NULL);
    free(text);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(defaults_match_the_contract),
        T(key_table_rows_have_docs_env_names_and_valid_defaults),
        T(runtime_mutable_set_is_the_allowlist),
        T(getters_report_unknown_keys_and_wrong_types),
        T(text_form_of_floats_round_trips),
        T(set_converts_booleans_in_any_case),
        T(set_rejects_ints_that_are_not_whole_decimal_numbers),
        T(set_rejects_floats_that_are_not_finite_or_negative),
        T(set_converts_lists_from_csv_and_null_unsets),
        T(paths_must_be_absolute),
        T(local_disk_and_gds_path_may_not_share_a_directory),
        T(precedence_api_over_env_over_file_over_default_in_any_order),
        T(lower_source_values_are_still_validated),
        T(from_sources_reads_the_file_named_by_lmcache_config_file),
        T(env_parses_every_type),
        T(env_errors_name_variable_key_and_value),
        T(env_extra_config_json_merges_per_subkey),
        T(env_extra_config_errors),
        T(yaml_file_loads_scalars_lists_nulls_and_extra_config),
        T(yaml_file_errors_name_the_key),
        T(json_file_loads_typed_values),
        T(json_file_errors_name_the_key),
        T(unknown_key_errors_name_the_key),
        T(failed_file_load_leaves_config_unchanged),
        T(forbidden_features_fail_and_disabled_values_pass),
        T(remote_url_schemes_are_checked),
        T(other_string_keys_accept_only_what_kvtier_implements),
        T(patch_is_all_or_nothing),
        T(patch_runtime_only_refuses_with_lmcache_texts),
        T(get_text_redacts_token_and_url_password),
        T(dup_copies_everything),
        T(timeout_keys_have_defaults_bounds_and_change_at_runtime),
        T(size_keys_have_a_bound_that_keeps_bytes_in_uint64),
        T(lmcache_keys_kvtier_lacks_load_at_their_disabled_values),
        T(lmcache_keys_kvtier_lacks_fail_when_they_ask_for_the_feature),
        T(ignored_key_table_rows_are_consistent),
        T(yaml_plain_scalars_are_typed_as_yaml_1_1),
        T(unknown_lmcache_env_is_noted_once_with_the_nearest_key),
        T(errors_quote_values_as_written),
        T(deeply_nested_files_are_refused_in_milliseconds),
        T(files_over_1_mib_are_refused),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
