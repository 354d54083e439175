/* RemoteBackend under concurrent traffic while it is closed, switched and recreated
 * (label "stress"; tests/run.sh runs it under TSan). A real redis-server
 * (tests/redis_fixture) and a temporary directory: writers put, readers kvt_get,
 * kvt_get_into, kvt_batched_get_into and kvt_lookup_prefix (with pins) through the
 * redis:// (TCP), unix:// and fs:// connectors, while a controller thread cycles
 * close -> remote_url change -> create, and kvt_backend_recreate. Every byte a read
 * returns must be the chunk's; every status must be a hit or a miss; nothing may race. */
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "redis_fixture.h"
#include "testkit.h"

#define LEN (64 * 1024)
#define KEYS 48 /* per writer */
#define BATCH 8

static struct rf srv;

struct worker {
    kvt_store *s;
    unsigned id;
    atomic_bool *stop;
    atomic_long ops, hits, bad;
    int last_bad; /* the status of the last unexpected result, for the failure message */
};

static kvt_key key_of(unsigned writer, unsigned i)
{
    kvt_key k;
    kvt_key_init(&k, "stress", 1, 0, (uint64_t)(writer + 1) << 32 | i, "bfloat16");
    return k;
}

static void bad(struct worker *w, int rc)
{
    w->last_bad = rc;
    atomic_fetch_add(&w->bad, 1);
}

/* A read status: a hit or a miss. A circuit breaker opened by a close is a miss too. */
static bool ok_status(int rc) { return rc == KVT_OK || rc == KVT_ENOENT; }

static void *writer_main(void *arg)
{
    struct worker *w = arg;
    unsigned char *buf = malloc(LEN);
    for (unsigned i = 0; buf && !atomic_load(w->stop); i++) {
        kvt_key k = key_of(w->id, i % KEYS);
        tk_fill(buf, LEN, k.chunk_hash);
        int rc = kvt_put(w->s, &k, buf, LEN, NULL);
        /* With the CPU tier bypassed, a put lands nowhere while the remote is closed
         * (ENOTIER) or closing (ECLOSED), or waits out a queue kept full (ETIMEDOUT). */
        if (rc != KVT_OK && rc != KVT_ENOTIER && rc != KVT_ECLOSED && rc != KVT_ETIMEDOUT)
            bad(w, rc);
        atomic_fetch_add(&w->ops, 1);
    }
    free(buf);
    return NULL;
}

/* Reads chunks of writer (id % 2) in the four ways the store offers. */
static void *reader_main(void *arg)
{
    struct worker *w = arg;
    unsigned char *want = malloc(LEN), *got = malloc((size_t)BATCH * LEN);
    for (unsigned i = 0; want && got && !atomic_load(w->stop); i++) {
        unsigned writer = w->id % 2, base = (i * 7) % KEYS;
        kvt_key k = key_of(writer, base);
        tk_fill(want, LEN, k.chunk_hash);
        size_t n = 0;
        int rc;
        switch (i % 4) {
        case 0:
            rc = kvt_get_into(w->s, &k, got, LEN, &n);
            if (rc == KVT_OK && (n != LEN || memcmp(got, want, LEN) != 0))
                bad(w, KVT_ECORRUPT);
            else if (!ok_status(rc))
                bad(w, rc);
            atomic_fetch_add(&w->hits, rc == KVT_OK);
            break;
        case 1: {
            kvt_obj *obj = NULL;
            rc = kvt_get(w->s, &k, &obj);
            if (rc == KVT_OK && (kvt_obj_size(obj) != LEN ||
                                 memcmp(kvt_obj_data(obj), want, LEN) != 0))
                bad(w, KVT_ECORRUPT);
            else if (!ok_status(rc))
                bad(w, rc);
            atomic_fetch_add(&w->hits, rc == KVT_OK);
            kvt_obj_release(obj);
            break;
        }
        case 2: {
            kvt_key keys[BATCH];
            void *bufs[BATCH];
            size_t caps[BATCH], lens[BATCH], hits = 0;
            int sts[BATCH];
            for (unsigned j = 0; j < BATCH; j++) {
                keys[j] = key_of(writer, (base + j) % KEYS);
                bufs[j] = got + (size_t)j * LEN;
                caps[j] = LEN;
            }
            rc = kvt_batched_get_into(w->s, BATCH, keys, bufs, caps, lens, sts, &hits);
            if (rc != KVT_OK)
                bad(w, rc);
            for (unsigned j = 0; rc == KVT_OK && j < BATCH; j++) {
                tk_fill(want, LEN, keys[j].chunk_hash);
                if (sts[j] == KVT_OK && (lens[j] != LEN || memcmp(bufs[j], want, LEN) != 0))
                    bad(w, KVT_ECORRUPT);
                else if (!ok_status(sts[j]))
                    bad(w, sts[j]);
            }
            atomic_fetch_add(&w->hits, (long)hits);
            break;
        }
        default: {
            kvt_key keys[BATCH];
            kvt_tier_span spans[4];
            size_t hits = 0, nspans = 0;
            kvt_pin *pin = NULL;
            for (unsigned j = 0; j < BATCH; j++)
                keys[j] = key_of(writer, (base + j) % KEYS);
            rc = kvt_lookup_prefix(w->s, keys, BATCH, &hits, spans, 4, &nspans, &pin);
            if (rc != KVT_OK || hits > BATCH)
                bad(w, rc != KVT_OK ? rc : KVT_EINVAL);
            if (pin && kvt_unpin(w->s, pin) != KVT_OK)
                bad(w, KVT_EINVAL);
            break;
        }
        }
        atomic_fetch_add(&w->ops, 1);
    }
    free(want);
    free(got);
    return NULL;
}

static void set_url(kvt_store *s, const char *url)
{
    const char *keys[] = {"remote_url"}, *vals[] = {url};
    assert_int_equal(kvt_store_conf_update(s, 1, keys, vals, NULL), KVT_OK);
}

static void traffic_through_close_switch_recreate(void **state)
{
    (void)state;
    char dir[PATH_MAX / 2], fs_url[PATH_MAX + 16], tcp[128], unix_url[PATH_MAX + 32];
    const char *tmp = getenv("KVT_TEST_TMP") ? getenv("KVT_TEST_TMP") : "/tmp";
    snprintf(dir, sizeof dir, "%s/remote_stress.XXXXXX", tmp);
    assert_non_null(mkdtemp(dir));
    snprintf(fs_url, sizeof fs_url, "fs://%s/a,%s/b", dir, dir);
    rf_url(&srv, 0, tcp, sizeof tcp);
    snprintf(unix_url, sizeof unix_url, "unix://%s", srv.sock);
    const char *urls[] = {tcp, fs_url, unix_url, tcp};

    kvt_config *cfg = tk_config(32); /* bypassed every other cycle: reads reach the remote */
    kvt_store *s = NULL;
    assert_int_equal(kvt_config_set(cfg, "remote_url", tcp), KVT_OK);
    assert_int_equal(kvt_config_set(cfg, "remote_pool_size", "3"), KVT_OK);
    assert_int_equal(kvt_config_set(cfg, "remote_op_timeout_ms", "2000"), KVT_OK);
    assert_int_equal(kvt_config_set(cfg, "remote_connect_timeout_ms", "1000"), KVT_OK);
    assert_int_equal(kvt_config_set(cfg, "remote_reconnect_interval_ms", "50"), KVT_OK);
    assert_int_equal(kvt_config_set(cfg, "backend_close_timeout_ms", "5000"), KVT_OK);
    assert_int_equal(kvt_config_set(cfg, "write_queue_timeout_ms", "100"), KVT_OK);
    assert_int_equal(kvt_store_open(cfg, &tk_quiet, &s), KVT_OK);
    kvt_config_free(cfg);

    atomic_bool stop;
    atomic_init(&stop, false);
    enum { NW = 2, NR = 3 };
    struct worker w[NW + NR];
    pthread_t th[NW + NR];
    for (unsigned i = 0; i < NW + NR; i++) {
        w[i] = (struct worker){.s = s, .id = i < NW ? i : i - NW, .stop = &stop};
        atomic_init(&w[i].ops, 0);
        atomic_init(&w[i].hits, 0);
        atomic_init(&w[i].bad, 0);
        pthread_create(&th[i], NULL, i < NW ? writer_main : reader_main, &w[i]);
    }
    struct timespec pause = {0, 60 * 1000 * 1000};
    long hits_before = 0;
    for (unsigned cycle = 0; cycle < 8; cycle++) {
        nanosleep(&pause, NULL);
        /* half the time the CPU tier is bypassed, so every read goes to the remote */
        assert_int_equal(kvt_backend_set_bypass(s, "LocalCPUBackend", cycle % 2 == 0, NULL),
                         KVT_OK);
        if (cycle % 3 == 2) {
            assert_int_equal(kvt_backend_recreate(s, "RemoteBackend"), KVT_OK);
            continue;
        }
        assert_int_equal(kvt_backend_close(s, "RemoteBackend"), KVT_OK);
        nanosleep(&pause, NULL); /* traffic without the tier */
        set_url(s, urls[(cycle + 1) % 4]);
        size_t n = 0;
        assert_int_equal(kvt_backends_create(s, NULL, 0, &n), KVT_OK);
        assert_int_equal(n, 1);
        if (cycle == 4)
            for (unsigned i = NW; i < NW + NR; i++)
                hits_before += atomic_load(&w[i].hits);
    }
    nanosleep(&pause, NULL);
    atomic_store(&stop, true);
    long hits = 0;
    for (unsigned i = 0; i < NW + NR; i++) {
        pthread_join(th[i], NULL);
        if (atomic_load(&w[i].bad))
            fprintf(stderr, "worker %u: %ld unexpected results, last %s\n", i,
                    atomic_load(&w[i].bad), kvt_status_name(w[i].last_bad));
        assert_int_equal(atomic_load(&w[i].bad), 0);
        assert_true(atomic_load(&w[i].ops) > 0);
        if (i >= NW)
            hits += atomic_load(&w[i].hits);
    }
    assert_true(hits > hits_before); /* reads kept hitting after the later switches */
    assert_int_equal(kvt_flush(s, 10000), KVT_OK);
    kvt_backend_stats st;
    assert_int_equal(kvt_backend_get_stats(s, "RemoteBackend", &st), KVT_OK);
    assert_string_equal(st.mode, "redis");
    kvt_store_close(s);
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

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

int main(void)
{
    if (!rf_available()) {
        fprintf(stderr, "redis-server not found: skipping\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(traffic_through_close_switch_recreate),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
