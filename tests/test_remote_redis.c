/* RemoteBackend over redis:// and unix:// against a real redis-server (tests/redis_fixture):
 * LMCache's two-key layout read back raw, big values and pipelined batches, corrupt
 * headers, a hung server (SIGSTOP), a crashed one (SIGKILL + restart on the same port), a
 * timed close while it hangs, authentication, the fs:// -> redis:// switch under traffic,
 * and two stores sharing one server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "redis_fixture.h"
#include "testkit.h"

#define MIB (1024u * 1024u)

static struct rf srv;

static int group_setup(void **state)
{
    (void)state;
    return rf_start(&srv, NULL);
}

static int group_teardown(void **state)
{
    (void)state;
    rf_stop(&srv);
    return 0;
}

static void flushall(void)
{
    redisContext *c = rf_client(&srv);
    assert_non_null(c);
    redisReply *r = redisCommand(c, "FLUSHALL");
    assert_non_null(r);
    freeReplyObject(r);
    redisFree(c);
}

static int each_setup(void **state)
{
    (void)state;
    if (srv.stopped)
        rf_sigcont(&srv);
    if (srv.pid == 0)
        assert_int_equal(rf_restart(&srv), 0);
    flushall();
    return 0;
}

/* CPU tier of `cpu_mib` plus a RemoteBackend at `url`, with short test timeouts. */
static kvt_store *open_store(const char *url, double cpu_mib)
{
    kvt_config *cfg = tk_config(cpu_mib);
    kvt_store *s = NULL;
    assert_int_equal(kvt_config_set(cfg, "remote_url", url), KVT_OK);
    assert_int_equal(kvt_config_set(cfg, "remote_op_timeout_ms", "300"), KVT_OK);
    assert_int_equal(kvt_config_set(cfg, "remote_connect_timeout_ms", "200"), KVT_OK);
    assert_int_equal(kvt_config_set(cfg, "remote_reconnect_interval_ms", "100"), KVT_OK);
    assert_int_equal(kvt_config_set(cfg, "backend_close_timeout_ms", "1000"), KVT_OK);
    assert_int_equal(kvt_config_set(cfg, "write_queue_timeout_ms", "1000"), KVT_OK);
    assert_int_equal(kvt_store_open(cfg, &tk_quiet, &s), KVT_OK);
    kvt_config_free(cfg);
    return s;
}

static kvt_store *open_default(void)
{
    char url[128];
    return open_store(rf_url(&srv, 0, url, sizeof url), 256);
}

static void cpu_bypass(kvt_store *s, bool on)
{
    assert_int_equal(kvt_backend_set_bypass(s, "LocalCPUBackend", on, NULL), KVT_OK);
}

static redisReply *raw(redisContext *c, const char *fmt, const char *key, const char *suffix)
{
    char full[1024];
    snprintf(full, sizeof full, "%s%s", key, suffix);
    redisReply *r = redisCommand(c, fmt, full, strlen(full));
    assert_non_null(r);
    return r;
}

static int32_t le32(const char *p)
{
    const unsigned char *u = (const unsigned char *)p;
    return (int32_t)((uint32_t)u[0] | (uint32_t)u[1] << 8 | (uint32_t)u[2] << 16 |
                     (uint32_t)u[3] << 24);
}

/* ------------------------------------------------------------ tests */

static void round_trip_uses_lmcache_keys(void **state)
{
    (void)state;
    kvt_store *s = open_default();
    kvt_chunk_meta meta = {.fmt = 1, .dtype_code = 3, .shape = {2, 4, 256, 1024}};
    kvt_key small = tk_model_key("org/model", 0xabc), big = tk_model_key("org/model", 0xdef);
    tk_put_chunk(s, &small, MIB, 1, &meta);
    tk_put_chunk(s, &big, 32 * MIB, 2, &meta);
    assert_int_equal(kvt_flush(s, 10000), KVT_OK);

    char ks[KVT_KEY_STRING_MAX];
    assert_int_equal(kvt_key_to_string(&big, ks, sizeof ks), KVT_OK);
    assert_string_equal(ks, "org/model@1@0@def@bfloat16");
    redisContext *c = rf_client(&srv);
    redisReply *m = raw(c, "GET %b", ks, "metadata");
    assert_int_equal(m->type, REDIS_REPLY_STRING);
    assert_int_equal(m->len, 28);
    int32_t want[7] = {32 * MIB, 1, 3, 2, 4, 256, 1024};
    for (int i = 0; i < 7; i++)
        assert_int_equal(le32(m->str + 4 * i), want[i]);
    freeReplyObject(m);
    redisReply *v = raw(c, "GET %b", ks, "kv_bytes");
    assert_int_equal(v->type, REDIS_REPLY_STRING);
    assert_int_equal(v->len, 32 * MIB);
    unsigned char *bytes = malloc(32 * MIB);
    tk_fill(bytes, 32 * MIB, 2);
    assert_memory_equal(v->str, bytes, 32 * MIB);
    free(bytes);
    freeReplyObject(v);
    redisFree(c);

    cpu_bypass(s, true); /* read from redis, not from the CPU copy */
    tk_expect_chunk(s, &small, MIB, 1);
    tk_expect_chunk(s, &big, 32 * MIB, 2);
    kvt_obj *obj = NULL;
    assert_int_equal(kvt_get(s, &big, &obj), KVT_OK);
    assert_int_equal(kvt_obj_meta(obj)->dtype_code, 3);
    assert_int_equal(kvt_obj_meta(obj)->shape[2], 256);
    kvt_obj_release(obj);
    const char *tier = NULL;
    assert_int_equal(kvt_contains(s, &small, &tier), KVT_OK);
    assert_string_equal(tier, "RemoteBackend");
    kvt_backend_stats st;
    assert_int_equal(kvt_backend_get_stats(s, "RemoteBackend", &st), KVT_OK);
    assert_string_equal(st.mode, "redis");
    size_t removed = 0;
    assert_int_equal(kvt_remove(s, &small, &removed), KVT_OK);
    assert_int_equal(kvt_contains(s, &small, NULL), KVT_ENOENT);
    kvt_store_close(s);
}

static void batched_get_of_64_chunks(void **state)
{
    (void)state;
    enum { N = 64, LEN = 256 * 1024 };
    kvt_store *s = open_default();
    kvt_key keys[N];
    void *bufs[N];
    size_t caps[N], lens[N], hits = 0;
    int sts[N];
    for (size_t i = 0; i < N; i++) {
        keys[i] = tk_model_key("m", 1000 + i);
        if (i != 17) /* one miss in the middle */
            tk_put_chunk(s, &keys[i], LEN, 1000 + i, NULL);
        bufs[i] = malloc(LEN);
        caps[i] = LEN;
    }
    assert_int_equal(kvt_flush(s, 10000), KVT_OK);
    cpu_bypass(s, true);
    assert_int_equal(kvt_batched_get_into(s, N, keys, bufs, caps, lens, sts, &hits), KVT_OK);
    assert_int_equal(hits, N - 1);
    unsigned char *want = malloc(LEN);
    for (size_t i = 0; i < N; i++) {
        if (i == 17) {
            assert_int_equal(sts[i], KVT_ENOENT);
        } else {
            assert_int_equal(sts[i], KVT_OK);
            assert_int_equal(lens[i], LEN);
            tk_fill(want, LEN, 1000 + i);
            assert_memory_equal(bufs[i], want, LEN);
        }
        free(bufs[i]);
    }
    free(want);
    kvt_store_close(s);
}

static void corrupt_or_foreign_values(void **state)
{
    (void)state;
    kvt_store *s = open_default();
    cpu_bypass(s, true);
    redisContext *c = rf_client(&srv);
    unsigned char hdr[28] = {0}, payload[100];
    memset(payload, 7, sizeof payload);

    /* Written by LMCache (dtype code 1 = float16): readable, code normalised to 2. */
    kvt_key k = tk_model_key("m", 0x10);
    char ks[KVT_KEY_STRING_MAX];
    kvt_key_to_string(&k, ks, sizeof ks);
    hdr[0] = 100;
    hdr[4] = 4;
    hdr[8] = 1;
    hdr[12] = 100;
    freeReplyObject(redisCommand(c, "SET %s%s %b", ks, "kv_bytes", payload, sizeof payload));
    freeReplyObject(redisCommand(c, "SET %s%s %b", ks, "metadata", hdr, sizeof hdr));
    kvt_obj *obj = NULL;
    assert_int_equal(kvt_get(s, &k, &obj), KVT_OK);
    assert_int_equal(kvt_obj_size(obj), 100);
    assert_int_equal(kvt_obj_meta(obj)->fmt, 4);
    assert_int_equal(kvt_obj_meta(obj)->dtype_code, 2);
    assert_int_equal(kvt_obj_meta(obj)->shape[0], 100);
    kvt_obj_release(obj);

    /* A header claiming more than the payload (or a huge length): a miss. */
    kvt_key bad = tk_model_key("m", 0x11);
    kvt_key_to_string(&bad, ks, sizeof ks);
    hdr[0] = 0xff;
    hdr[1] = 0xff;
    hdr[2] = 0xff;
    hdr[3] = 0x7f;
    freeReplyObject(redisCommand(c, "SET %s%s %b", ks, "kv_bytes", payload, sizeof payload));
    freeReplyObject(redisCommand(c, "SET %s%s %b", ks, "metadata", hdr, sizeof hdr));
    unsigned char buf[128];
    assert_int_equal(kvt_get_into(s, &bad, buf, sizeof buf, NULL), KVT_ENOENT);
    hdr[0] = 101;
    hdr[1] = hdr[2] = hdr[3] = 0;
    freeReplyObject(redisCommand(c, "SET %s%s %b", ks, "metadata", hdr, sizeof hdr));
    assert_int_equal(kvt_get(s, &bad, &obj), KVT_ENOENT);
    /* A short header: a miss too. */
    freeReplyObject(redisCommand(c, "SET %s%s %b", ks, "metadata", hdr, (size_t)27));
    assert_int_equal(kvt_get(s, &bad, &obj), KVT_ENOENT);

    /* A header without its payload: contains deletes it (LMCache) and misses. */
    kvt_key orphan = tk_model_key("m", 0x12);
    kvt_key_to_string(&orphan, ks, sizeof ks);
    freeReplyObject(redisCommand(c, "SET %s%s %b", ks, "metadata", hdr, sizeof hdr));
    assert_int_equal(kvt_contains(s, &orphan, NULL), KVT_ENOENT);
    redisReply *e = redisCommand(c, "EXISTS %s%s", ks, "metadata");
    assert_int_equal(e->integer, 0);
    freeReplyObject(e);
    redisFree(c);
    kvt_store_close(s);
}

/* Payloads that are not delivered (a corrupt header, a caller buffer too small) are
 * skipped on the wire: the replies after them in the same pipeline still arrive whole. */
static void skipped_payloads_keep_the_pipeline_in_sync(void **state)
{
    (void)state;
    enum { LEN = 2 * MIB };
    kvt_store *s = open_default();
    cpu_bypass(s, true);
    kvt_key keys[4] = {tk_model_key("p", 1), tk_model_key("p", 2), tk_model_key("p", 3), tk_model_key("p", 4)};
    for (int i = 0; i < 4; i++)
        tk_put_chunk(s, &keys[i], LEN, 50 + (uint64_t)i, NULL);
    assert_int_equal(kvt_flush(s, 10000), KVT_OK);
    /* keys[1]: a header claiming one byte more than its 2 MiB payload */
    char ks[KVT_KEY_STRING_MAX];
    unsigned char hdr[28] = {0};
    uint32_t bad = LEN + 1;
    memcpy(hdr, &bad, 4);
    kvt_key_to_string(&keys[1], ks, sizeof ks);
    redisContext *c = rf_client(&srv);
    freeReplyObject(redisCommand(c, "SET %s%s %b", ks, "metadata", hdr, sizeof hdr));
    redisFree(c);
    void *bufs[4];
    size_t caps[4] = {LEN, LEN, LEN / 2, LEN}, lens[4] = {0}, hits = 0;
    int sts[4];
    for (int i = 0; i < 4; i++)
        assert_non_null(bufs[i] = malloc(LEN));
    assert_int_equal(kvt_batched_get_into(s, 4, keys, bufs, caps, lens, sts, &hits), KVT_OK);
    assert_int_equal(sts[0], KVT_OK);
    assert_int_equal(sts[1], KVT_ENOENT);
    assert_int_equal(sts[2], KVT_ETOOSMALL);
    assert_int_equal(lens[2], LEN);
    assert_int_equal(sts[3], KVT_OK);
    assert_int_equal(hits, 2);
    unsigned char *want = malloc(LEN);
    tk_fill(want, LEN, 53);
    assert_memory_equal(bufs[3], want, LEN);
    free(want);
    /* a get_into with a short buffer, then full reads on the same connections */
    size_t n = 0;
    assert_int_equal(kvt_get_into(s, &keys[0], bufs[0], LEN - 1, &n), KVT_ETOOSMALL);
    assert_int_equal(n, LEN);
    for (int round = 0; round < 3; round++) {
        tk_expect_chunk(s, &keys[0], LEN, 50);
        tk_expect_chunk(s, &keys[3], LEN, 53);
    }
    for (int i = 0; i < 4; i++)
        free(bufs[i]);
    kvt_store_close(s);
}

/* kvt_lookup_prefix through the tier's count_prefix (one pipeline of EXISTS): the run
 * stops at the first missing chunk; pins are not taken remotely. */
static void lookup_prefix_counts_remote_run(void **state)
{
    (void)state;
    kvt_store *s = open_default();
    kvt_key keys[8];
    for (int i = 0; i < 8; i++) {
        keys[i] = tk_model_key("lk", 100 + (uint64_t)i);
        if (i != 5)
            tk_put_chunk(s, &keys[i], 4096, 100 + (uint64_t)i, NULL);
    }
    assert_int_equal(kvt_flush(s, 10000), KVT_OK);
    cpu_bypass(s, true);
    size_t hits = 0, nspans = 0;
    kvt_tier_span spans[4];
    kvt_pin *pin = (kvt_pin *)&hits; /* overwritten */
    assert_int_equal(kvt_lookup_prefix(s, keys, 8, &hits, spans, 4, &nspans, &pin), KVT_OK);
    assert_int_equal(hits, 5);
    assert_int_equal(nspans, 1);
    assert_string_equal(spans[0].backend, "RemoteBackend");
    assert_null(pin); /* nothing pinned: remote pins are a no-op */
    /* an orphan header at keys[5] ends the run and is deleted, as contains() does */
    char ks[KVT_KEY_STRING_MAX];
    unsigned char hdr[28] = {0};
    kvt_key_to_string(&keys[5], ks, sizeof ks);
    redisContext *c = rf_client(&srv);
    freeReplyObject(redisCommand(c, "SET %s%s %b", ks, "metadata", hdr, sizeof hdr));
    assert_int_equal(kvt_lookup_prefix(s, keys, 8, &hits, NULL, 0, NULL, NULL), KVT_OK);
    assert_int_equal(hits, 5);
    redisReply *e = redisCommand(c, "EXISTS %s%s", ks, "metadata");
    assert_int_equal(e->integer, 0);
    freeReplyObject(e);
    redisFree(c);
    kvt_store_close(s);
}

static void stopped_server_gives_bounded_misses(void **state)
{
    (void)state;
    kvt_store *s = open_default();
    kvt_key keys[8];
    for (size_t i = 0; i < 8; i++) {
        keys[i] = tk_model_key("m", 0x500 + i);
        tk_put_chunk(s, &keys[i], 64 * 1024, i, NULL);
    }
    assert_int_equal(kvt_flush(s, 5000), KVT_OK);
    cpu_bypass(s, true);
    tk_expect_chunk(s, &keys[0], 64 * 1024, 0);

    rf_sigstop(&srv);
    unsigned char buf[64 * 1024];
    for (size_t i = 0; i < 8; i++) {
        double t0 = tk_now_ms();
        assert_int_equal(kvt_get_into(s, &keys[i], buf, sizeof buf, NULL), KVT_ENOENT);
        double dt = tk_now_ms() - t0;
        if (dt > 300 + 250) /* the 300 ms operation timeout, plus scheduling slack */
            fail_msg("get %zu took %.0f ms while redis was stopped", i, dt);
    }
    kvt_backend_health h;
    assert_int_equal(kvt_backend_get_health(s, "RemoteBackend", &h), KVT_OK);
    assert_int_not_equal(h.breaker, KVT_BREAKER_CLOSED);
    assert_true(h.bypass_breaker);
    assert_false(h.bypass_manual);
    rf_sigcont(&srv);
    /* Recovers by itself: within a few reconnect intervals (and breaker back-offs). */
    double t0 = tk_now_ms();
    int rc = KVT_ENOENT;
    while (rc != KVT_OK && tk_now_ms() - t0 < 10000) {
        rc = kvt_get_into(s, &keys[1], buf, sizeof buf, NULL);
        if (rc != KVT_OK)
            usleep(20000);
    }
    assert_int_equal(rc, KVT_OK);
    kvt_store_close(s);
}

static void killed_server_restarts_and_tier_recovers(void **state)
{
    (void)state;
    kvt_store *s = open_default();
    cpu_bypass(s, true);
    kvt_key k = tk_model_key("m", 0x600);
    tk_put_chunk(s, &k, 4096, 1, NULL);
    assert_int_equal(kvt_flush(s, 5000), KVT_OK);
    tk_expect_chunk(s, &k, 4096, 1);
    rf_kill(&srv);
    unsigned char buf[4096];
    for (int i = 0; i < 6; i++) /* fails fast: EOF, refused connects, then no attempts */
        assert_int_equal(kvt_get_into(s, &k, buf, sizeof buf, NULL), KVT_ENOENT);
    assert_int_equal(rf_restart(&srv), 0); /* empty: no persistence */
    kvt_key k2 = tk_model_key("m", 0x601);
    double t0 = tk_now_ms();
    int rc = KVT_ENOENT;
    while (rc != KVT_OK && tk_now_ms() - t0 < 10000) {
        unsigned char data[4096];
        tk_fill(data, sizeof data, 2);
        int prc = kvt_put(s, &k2, data, sizeof data, NULL); /* only the remote copy: may fail */
        assert_true(prc == KVT_OK || prc == KVT_ENOTIER);
        kvt_flush(s, 2000);
        rc = kvt_get_into(s, &k2, buf, sizeof buf, NULL);
        if (rc != KVT_OK)
            usleep(50000);
    }
    assert_int_equal(rc, KVT_OK);
    kvt_backend_health h;
    assert_int_equal(kvt_backend_get_health(s, "RemoteBackend", &h), KVT_OK);
    assert_int_equal(h.breaker, KVT_BREAKER_CLOSED);
    kvt_store_close(s);
}

static void timed_close_while_stopped_returns_on_time(void **state)
{
    (void)state;
    kvt_store *s = open_default();
    rf_sigstop(&srv);
    for (uint64_t i = 0; i < 32; i++) { /* a queue of writes that cannot reach redis */
        kvt_key k = tk_model_key("m", 0x700 + i);
        tk_put_chunk(s, &k, 256 * 1024, i, NULL);
    }
    double t0 = tk_now_ms();
    int rc = kvt_backend_close_timed(s, "RemoteBackend", 800, 0);
    double dt = tk_now_ms() - t0;
    assert_true(rc == KVT_OK || rc == KVT_ETIMEDOUT);
    if (dt > 800 + 400)
        fail_msg("close took %.0f ms with an 800 ms timeout", dt);
    t0 = tk_now_ms();
    kvt_store_close(s); /* backend_close_timeout_ms = 1000 */
    dt = tk_now_ms() - t0;
    if (dt > 1000 + 600)
        fail_msg("store close took %.0f ms while redis was stopped", dt);
    rf_sigcont(&srv);
}

static void wrong_password_is_a_clear_error(void **state)
{
    (void)state;
    struct rf locked;
    assert_int_equal(rf_start(&locked, "s3cret"), 0);
    char url[160];
    kvt_store *s = NULL;
    kvt_config *cfg = tk_config(64);
    snprintf(url, sizeof url, "redis://:nope@127.0.0.1:%d", locked.port);
    assert_int_equal(kvt_config_set(cfg, "remote_url", url), KVT_OK);
    assert_int_equal(kvt_store_open(cfg, &tk_quiet, &s), KVT_EPERM);
    assert_null(s);
    assert_non_null(strstr(kvt_last_error(), "AUTH failed"));
    assert_null(strstr(kvt_last_error(), "nope")); /* never echoes the secret */
    snprintf(url, sizeof url, "redis://default:s3cret@127.0.0.1:%d/2", locked.port);
    assert_int_equal(kvt_config_set(cfg, "remote_url", url), KVT_OK);
    assert_int_equal(kvt_store_open(cfg, &tk_quiet, &s), KVT_OK);
    kvt_key k = tk_model_key("m", 0x800);
    tk_put_chunk(s, &k, 1000, 3, NULL);
    assert_int_equal(kvt_flush(s, 5000), KVT_OK);
    redisContext *c = rf_client(&locked);
    freeReplyObject(redisCommand(c, "SELECT 2"));
    char ks[KVT_KEY_STRING_MAX];
    kvt_key_to_string(&k, ks, sizeof ks);
    redisReply *e = redisCommand(c, "EXISTS %s%s", ks, "kv_bytes");
    assert_int_equal(e->integer, 1); /* in database 2, as the URL says */
    freeReplyObject(e);
    redisFree(c);
    kvt_store_close(s);
    kvt_config_free(cfg);
    rf_stop(&locked);
}

static void unix_socket_round_trip(void **state)
{
    (void)state;
    char url[sizeof srv.sock + 8];
    snprintf(url, sizeof url, "unix://%s", srv.sock);
    kvt_store *s = open_store(url, 64);
    kvt_key k = tk_model_key("m", 0x900);
    tk_put_chunk(s, &k, 3 * MIB, 9, NULL);
    assert_int_equal(kvt_flush(s, 5000), KVT_OK);
    cpu_bypass(s, true);
    tk_expect_chunk(s, &k, 3 * MIB, 9);
    kvt_store_close(s);
}

static void two_stores_share_one_redis(void **state)
{
    (void)state;
    kvt_store *a = open_default(), *b = open_default();
    for (uint64_t i = 0; i < 16; i++) {
        kvt_key k = tk_model_key("shared", i);
        tk_put_chunk(a, &k, 128 * 1024, 100 + i, NULL);
        kvt_key k2 = tk_model_key("shared", 1000 + i);
        tk_put_chunk(b, &k2, 128 * 1024, 200 + i, NULL);
    }
    assert_int_equal(kvt_flush(a, 5000), KVT_OK);
    assert_int_equal(kvt_flush(b, 5000), KVT_OK);
    for (uint64_t i = 0; i < 16; i++) {
        kvt_key k = tk_model_key("shared", i), k2 = tk_model_key("shared", 1000 + i);
        tk_expect_chunk(b, &k, 128 * 1024, 100 + i);  /* b never had it: from redis */
        tk_expect_chunk(a, &k2, 128 * 1024, 200 + i);
    }
    kvt_store_close(a);
    kvt_store_close(b);
}

/* ------------------------------------------------------------ fs:// -> redis:// */

struct traffic {
    kvt_store *s;
    atomic_bool stop;
    atomic_long ops, bad;
    unsigned id;
};

static void *traffic_main(void *arg)
{
    struct traffic *t = arg;
    unsigned char buf[16384], out[16384];
    for (uint64_t i = 0; !atomic_load(&t->stop); i++) {
        kvt_key k = tk_model_key("sw", (uint64_t)t->id << 32 | (i % 200));
        tk_fill(buf, sizeof buf, k.chunk_hash);
        int rc = kvt_put(t->s, &k, buf, sizeof buf, NULL);
        if (rc != KVT_OK)
            atomic_fetch_add(&t->bad, 1);
        size_t n = 0;
        rc = kvt_get_into(t->s, &k, out, sizeof out, &n);
        if (rc == KVT_OK && (n != sizeof buf || memcmp(out, buf, n) != 0))
            atomic_fetch_add(&t->bad, 1); /* a wrong chunk: never acceptable */
        else if (rc != KVT_OK && rc != KVT_ENOENT)
            atomic_fetch_add(&t->bad, 1);
        atomic_fetch_add(&t->ops, 1);
    }
    return NULL;
}

static void switch_fs_to_redis_under_traffic(void **state)
{
    (void)state;
    char dir[PATH_MAX], url[PATH_MAX + 8], rurl[128];
    snprintf(dir, sizeof dir, "%s/switch.XXXXXX", getenv("KVT_TEST_TMP") ? getenv("KVT_TEST_TMP") : "/tmp");
    assert_non_null(mkdtemp(dir));
    snprintf(url, sizeof url, "fs://%s", dir);
    kvt_store *s = open_store(url, 8); /* small CPU tier: reads reach the remote too */
    /* The close drains what the writers queued (fsynced files): give it time on a slow disk. */
    const char *ck[] = {"backend_close_timeout_ms"}, *cv[] = {"60000"};
    assert_int_equal(kvt_store_conf_update(s, 1, ck, cv, NULL), KVT_OK);
    struct traffic t[4];
    pthread_t th[4];
    for (unsigned i = 0; i < 4; i++) {
        t[i] = (struct traffic){.s = s, .id = i};
        atomic_init(&t[i].stop, false);
        pthread_create(&th[i], NULL, traffic_main, &t[i]);
    }
    usleep(150000);
    assert_int_equal(kvt_backend_close(s, "RemoteBackend"), KVT_OK);
    const char *keys[] = {"remote_url"}, *vals[] = {rf_url(&srv, 0, rurl, sizeof rurl)};
    assert_int_equal(kvt_store_conf_update(s, 1, keys, vals, NULL), KVT_OK);
    size_t n = 0;
    assert_int_equal(kvt_backends_create(s, NULL, 0, &n), KVT_OK);
    assert_int_equal(n, 1);
    long before = atomic_load(&t[0].ops);
    usleep(200000);
    for (unsigned i = 0; i < 4; i++) {
        atomic_store(&t[i].stop, true);
        pthread_join(th[i], NULL);
        assert_int_equal(atomic_load(&t[i].bad), 0);
    }
    assert_true(atomic_load(&t[0].ops) > before); /* traffic kept flowing after the switch */
    assert_int_equal(kvt_flush(s, 5000), KVT_OK);
    kvt_backend_stats st;
    assert_int_equal(kvt_backend_get_stats(s, "RemoteBackend", &st), KVT_OK);
    assert_string_equal(st.mode, "redis");
    assert_true(st.puts > 0);
    redisContext *c = rf_client(&srv);
    redisReply *r = redisCommand(c, "KEYS sw@*kv_bytes");
    assert_true(r->elements > 0);
    freeReplyObject(r);
    redisFree(c);
    kvt_store_close(s);
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    if (!rf_available()) {
        fprintf(stderr, "redis-server not found: skipping\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(round_trip_uses_lmcache_keys, each_setup),
        cmocka_unit_test_setup(batched_get_of_64_chunks, each_setup),
        cmocka_unit_test_setup(corrupt_or_foreign_values, each_setup),
        cmocka_unit_test_setup(skipped_payloads_keep_the_pipeline_in_sync, each_setup),
        cmocka_unit_test_setup(lookup_prefix_counts_remote_run, each_setup),
        cmocka_unit_test_setup(stopped_server_gives_bounded_misses, each_setup),
        cmocka_unit_test_setup(killed_server_restarts_and_tier_recovers, each_setup),
        cmocka_unit_test_setup(timed_close_while_stopped_returns_on_time, each_setup),
        cmocka_unit_test_setup(wrong_password_is_a_clear_error, each_setup),
        cmocka_unit_test_setup(unix_socket_round_trip, each_setup),
        cmocka_unit_test_setup(two_stores_share_one_redis, each_setup),
        cmocka_unit_test_setup(switch_fs_to_redis_under_traffic, each_setup),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
