/* Concurrency, run under TSan and ASan by the test command.
 *
 * 1. Four threads put (two of them in plugged pairs, kvt_batched_put) and get while
 *    another thread loops close / create / recreate of one tier 1,000 times.
 *
 * The CPU tier is small, so gets and lookups also reach the lower tiers (and read into
 * CPU buffers through kvt_backend_alloc) while one of them churns. Pins down: no crash
 * or use-after-free (sanitizers), every read returns the right bytes, every backend
 * instance created is destroyed exactly once (no leak), a flush in the middle of the
 * churn has written each thread's last chunk to TestTierA, and no committed chunk is
 * lost from the tier that was never closed: each put that returned KVT_OK is, at the
 * end, in TestTierA with the right bytes. Write-through accounting balances too: items
 * queued to the tier being closed were all written, none dropped.
 *
 * 2. A tier whose put hangs (and then whose get hangs): puts keep returning within
 *    write_queue_timeout_ms plus a margin, a timed close returns KVT_ETIMEDOUT on time and
 *    leaves the tier DRAINING, other registry operations, flush and remove proceed
 *    meanwhile, and a forced close completes once the hung call returns. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "testkit.h"

#define WORKERS 4
#define ADMIN_CYCLES 1000
#define MAX_PUTS 4000 /* per worker */
#define CPU_MIB 2.0   /* 512 chunks: far fewer than are put, so the CPU tier evicts */
#define LEN 1024

struct worker {
    kvt_store *s;
    pthread_t thread;
    unsigned id;
    atomic_bool *stop;
    uint64_t committed[MAX_PUTS];
    size_t ncommitted;
    size_t bad_reads, bad_flushes, ops;
};

static uint64_t key_hash(unsigned id, size_t i) { return ((uint64_t)id << 32) | (i + 1); }

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    unsigned char buf[LEN], got[LEN];
    unsigned seed = w->id;
    while (!atomic_load(w->stop)) {
        if (w->id % 2 && w->ncommitted + 2 <= MAX_PUTS) { /* odd workers: plugged pairs */
            static _Thread_local unsigned char two[2][LEN];
            uint64_t hs[2] = {key_hash(w->id, w->ncommitted), key_hash(w->id, w->ncommitted + 1)};
            kvt_key ks[2] = {tk_key(hs[0]), tk_key(hs[1])};
            const void *data[2] = {two[0], two[1]};
            size_t lens[2] = {LEN, LEN}, stored = 0;
            tk_fill(two[0], LEN, hs[0]);
            tk_fill(two[1], LEN, hs[1]);
            kvt_batched_put(w->s, 2, ks, data, lens, NULL, &stored);
            for (size_t i = 0; i < stored; i++)
                w->committed[w->ncommitted++] = hs[i];
        } else if (w->ncommitted < MAX_PUTS) {
            uint64_t h = key_hash(w->id, w->ncommitted);
            kvt_key k = tk_key(h);
            tk_fill(buf, sizeof buf, h);
            if (kvt_put(w->s, &k, buf, sizeof buf, NULL) == KVT_OK)
                w->committed[w->ncommitted++] = h;
        }
        if (w->ncommitted == 0)
            continue;
        uint64_t h = w->committed[(size_t)rand_r(&seed) % w->ncommitted];
        kvt_key k = tk_key(h);
        size_t len = 0;
        tk_fill(buf, sizeof buf, h);
        if (kvt_get_into(w->s, &k, got, sizeof got, &len) != KVT_OK || len != LEN ||
            memcmp(got, buf, LEN) != 0)
            w->bad_reads++;
        kvt_key seq[4];
        size_t hits = 0;
        for (size_t i = 0; i < 4; i++)
            seq[i] = tk_key(w->committed[i < w->ncommitted ? i : 0]);
        kvt_lookup_prefix(w->s, seq, 4, &hits, NULL, 0, NULL, NULL);
        if (hits != 4)
            w->bad_reads++;
        if (++w->ops % 64 == 0) {
            h = w->committed[w->ncommitted - 1];
            k = tk_key(h);
            tk_fill(buf, sizeof buf, h);
            kvt_flush(w->s, -1);
            w->bad_flushes += !tk_holds(&tk_a, &k, buf, sizeof buf);
            char *text = NULL;
            if (kvt_metrics_render(w->s, &text) == KVT_OK)
                kvt_free(text);
        }
    }
    return NULL;
}

static void registry_churn_loses_no_committed_chunk(void **state)
{
    (void)state;
    tk_register();
    tk_reset(&tk_a);
    tk_reset(&tk_b);
    atomic_store(&tk_a.wanted, true);
    atomic_store(&tk_b.wanted, true);
    atomic_store(&tk_b.put_delay_us, 20); /* keeps TestTierB's queue busy while it closes */
    kvt_config *cfg = tk_config(CPU_MIB);
    kvt_store *s = NULL;
    /* This test pins "nothing committed is lost", so no put may skip a slow tier. */
    assert_int_equal(kvt_config_set(cfg, "write_queue_timeout_ms", "60000"), KVT_OK);
    assert_int_equal(kvt_config_set(cfg, "backend_close_timeout_ms", "3600000"), KVT_OK);
    assert_int_equal(kvt_store_open(cfg, &tk_quiet, &s), KVT_OK);
    kvt_config_free(cfg);

    atomic_bool stop = false;
    struct worker *w = calloc(WORKERS, sizeof *w);
    for (unsigned i = 0; i < WORKERS; i++) {
        w[i] = (struct worker){.s = s, .id = i + 1, .stop = &stop};
        assert_int_equal(pthread_create(&w[i].thread, NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < ADMIN_CYCLES; i++) {
        switch (i % 3) {
        case 0:
            assert_int_equal(kvt_backend_close(s, "TestTierB"), KVT_OK);
            break;
        case 1:
            assert_int_equal(kvt_backends_create(s, NULL, 0, NULL), KVT_OK);
            break;
        default:
            assert_int_equal(kvt_backend_recreate(s, "TestTierB"), KVT_OK);
            /* The CPU tier cannot be closed under its dependants, even mid-churn. */
            assert_int_equal(kvt_backend_close(s, "LocalCPUBackend"), KVT_EBUSY);
        }
    }
    atomic_store(&stop, true);
    for (unsigned i = 0; i < WORKERS; i++)
        pthread_join(w[i].thread, NULL);
    assert_int_equal(kvt_flush(s, -1), KVT_OK);

    size_t total = 0;
    unsigned char buf[LEN];
    for (unsigned i = 0; i < WORKERS; i++) {
        assert_int_equal(w[i].bad_reads, 0);
        assert_int_equal(w[i].bad_flushes, 0);
        total += w[i].ncommitted;
        for (size_t j = 0; j < w[i].ncommitted; j++) {
            uint64_t h = w[i].committed[j];
            kvt_key k = tk_key(h);
            assert_int_equal(kvt_contains(s, &k, NULL), KVT_OK);
            tk_fill(buf, sizeof buf, h);
            assert_true(tk_holds(&tk_a, &k, buf, sizeof buf));
        }
    }
    assert_true(total > 0);
    kvt_store_stats st;
    kvt_store_get_stats(s, &st);
    assert_int_equal(st.wt_failed, 0);
    assert_true(st.promotions > 0); /* reads did come from the lower tiers */
    assert_int_equal(st.wt_enqueued, st.wt_done);
    assert_int_equal(st.wt_cancelled, 0);
    kvt_backend_stats a;
    assert_int_equal(kvt_backend_get_stats(s, "TestTierA", &a), KVT_OK);
    assert_int_equal(a.skipped, 0); /* only a put racing a close of TestTierB may skip it */
    assert_int_equal(st.stored_chunks, total);
    kvt_store_close(s);
    assert_int_equal(atomic_load(&tk_b.live), 0);
    assert_int_equal(atomic_load(&tk_b.created), atomic_load(&tk_b.destroyed));
    assert_int_equal(atomic_load(&tk_b.created), 1 + 2 * ADMIN_CYCLES / 3);
    print_message("%zu chunks committed during %d registry operations\n", total, ADMIN_CYCLES);
    free(w);
    tk_reset(&tk_a);
    tk_reset(&tk_b);
}

#define HUNG_QUEUE_MS 20
#define HUNG_CLOSE_MS 100
#define MARGIN_MS 400 /* sanitizers on a loaded 2-core machine */

struct putter {
    kvt_store *s;
    pthread_t thread;
    unsigned id;
    atomic_bool *stop;
    double worst_ms;
    size_t puts, failed;
};

static void *putter_main(void *arg)
{
    struct putter *p = arg;
    unsigned char buf[LEN];
    for (size_t i = 0; !atomic_load(p->stop); i++) {
        uint64_t h = key_hash(100 + p->id, i);
        kvt_key k = tk_key(h);
        tk_fill(buf, sizeof buf, h);
        double t0 = tk_now_ms();
        p->failed += kvt_put(p->s, &k, buf, sizeof buf, NULL) != KVT_OK;
        double took = tk_now_ms() - t0;
        p->worst_ms = took > p->worst_ms ? took : p->worst_ms;
        p->puts++;
    }
    return NULL;
}

static void *get_parked(void *arg)
{
    kvt_store *s = arg;
    kvt_key k = tk_key(7);
    kvt_obj *o = NULL;
    assert_int_equal(kvt_get(s, &k, &o), KVT_OK);
    kvt_obj_release(o);
    return NULL;
}

/* Waits (bounded by alarm) until `name` is no longer listed. */
static void wait_gone(kvt_store *s, const char *name)
{
    alarm(30);
    for (bool listed = true; listed;) {
        kvt_backend_info bk[KVT_MAX_BACKENDS];
        size_t n = 0;
        assert_int_equal(kvt_backends_list(s, bk, KVT_MAX_BACKENDS, &n), KVT_OK);
        listed = false;
        for (size_t i = 0; i < n; i++)
            listed |= strcmp(bk[i].name, name) == 0;
        if (listed)
            usleep(1000);
    }
    alarm(0);
}

static double timed_close(kvt_store *s, const char *name, int64_t ms, unsigned flags, int want)
{
    double t0 = tk_now_ms();
    assert_int_equal(kvt_backend_close_timed(s, name, ms, flags), want);
    return tk_now_ms() - t0;
}

static void hung_tier_never_wedges_the_engine(void **state)
{
    (void)state;
    tk_register();
    tk_reset(&tk_a);
    tk_reset(&tk_b);
    atomic_store(&tk_a.wanted, true);
    atomic_store(&tk_b.wanted, true);
    kvt_config *cfg = tk_config(CPU_MIB);
    kvt_store *s = NULL;
    assert_int_equal(kvt_config_set(cfg, "write_queue_depth", "2"), KVT_OK);
    assert_int_equal(kvt_config_set_int(cfg, "write_queue_timeout_ms", HUNG_QUEUE_MS), KVT_OK);
    assert_int_equal(kvt_config_set_int(cfg, "backend_close_timeout_ms", HUNG_CLOSE_MS), KVT_OK);
    assert_int_equal(kvt_store_open(cfg, &tk_quiet, &s), KVT_OK);
    kvt_config_free(cfg);
    tk_gate(&tk_a, true, true); /* TestTierA's writes hang from now on */

    atomic_bool stop = false;
    struct putter p[3];
    for (unsigned i = 0; i < 3; i++) {
        p[i] = (struct putter){.s = s, .id = i, .stop = &stop};
        assert_int_equal(pthread_create(&p[i].thread, NULL, putter_main, &p[i]), 0);
    }
    tk_wait_parked(&tk_a, true, 1);
    usleep(50000); /* puts run into the full queue */

    /* The timed close returns on time; the tier stays listed as DRAINING. */
    double took = timed_close(s, "TestTierA", HUNG_CLOSE_MS, 0, KVT_ETIMEDOUT);
    assert_true(took >= HUNG_CLOSE_MS - 5 && took < HUNG_CLOSE_MS + MARGIN_MS);
    kvt_backend_info bk[KVT_MAX_BACKENDS];
    size_t n = 0;
    assert_int_equal(kvt_backends_list(s, bk, KVT_MAX_BACKENDS, &n), KVT_OK);
    assert_int_equal(n, 3);
    assert_string_equal(bk[1].name, "TestTierA");
    assert_int_equal(bk[1].state, KVT_BACKEND_DRAINING);
    assert_true(bk[1].pending >= 1);

    /* Everything else proceeds meanwhile, each in bounded time. */
    double t0 = tk_now_ms();
    assert_int_equal(kvt_backend_recreate(s, "TestTierB"), KVT_OK);
    assert_int_equal(kvt_backend_set_bypass(s, "TestTierB", true, NULL), KVT_OK);
    assert_int_equal(kvt_backend_set_bypass(s, "TestTierB", false, NULL), KVT_OK);
    assert_int_equal(kvt_backends_create(s, NULL, 0, NULL), KVT_EBUSY); /* A is draining */
    kvt_key k = tk_key(key_hash(100, 0));
    assert_int_equal(kvt_remove(s, &k, NULL), KVT_OK);
    assert_int_equal(kvt_clear(s, NULL), KVT_OK);
    const char *keys[] = {"blocking_timeout_secs"}, *vals[] = {"11"};
    assert_int_equal(kvt_store_conf_update(s, 1, keys, vals, NULL), KVT_OK);
    assert_int_equal(kvt_flush(s, 30), KVT_ETIMEDOUT);
    assert_non_null(strstr(kvt_last_error(), "TestTierA"));
    assert_true(tk_now_ms() - t0 < 2 * MARGIN_MS);

    /* Forced: the queue goes at once; the instance goes when the hung call returns. */
    timed_close(s, "TestTierA", 20, KVT_CLOSE_FORCE, KVT_ETIMEDOUT);
    assert_int_equal(atomic_load(&tk_a.live), 1);
    tk_gate(&tk_a, true, false);
    wait_gone(s, "TestTierA");
    assert_int_equal(atomic_load(&tk_a.live), 0);
    atomic_store(&stop, true);
    for (unsigned i = 0; i < 3; i++) {
        pthread_join(p[i].thread, NULL);
        assert_true(p[i].puts > 0);
        assert_int_equal(p[i].failed, 0); /* the CPU tier took every chunk */
        assert_true(p[i].worst_ms < HUNG_QUEUE_MS + MARGIN_MS);
        print_message("putter %u: %zu puts, worst %.1f ms\n", i, p[i].puts, p[i].worst_ms);
    }
    assert_int_equal(kvt_flush(s, -1), KVT_OK);
    kvt_store_stats st;
    assert_int_equal(kvt_store_get_stats(s, &st), KVT_OK);
    assert_true(st.wt_skipped > 0);
    assert_true(st.wt_cancelled > 0); /* the clear dropped what was queued to TestTierA */
    assert_int_equal(st.wt_enqueued, st.wt_done + st.wt_failed + st.wt_cancelled);

    /* A hung get: the close waits for it, then completes by itself when it returns. */
    assert_int_equal(kvt_backends_create(s, NULL, 0, NULL), KVT_OK);
    unsigned char buf[LEN] = {0};
    assert_int_equal(kvt_backend_set_bypass(s, "LocalCPUBackend", true, NULL), KVT_OK);
    k = tk_key(7);
    assert_int_equal(kvt_put(s, &k, buf, sizeof buf, NULL), KVT_OK);
    assert_int_equal(kvt_flush(s, -1), KVT_OK);
    tk_gate(&tk_a, false, true);
    pthread_t g;
    assert_int_equal(pthread_create(&g, NULL, get_parked, s), 0);
    tk_wait_parked(&tk_a, false, 1);
    took = timed_close(s, "TestTierA", HUNG_CLOSE_MS, KVT_CLOSE_FORCE, KVT_ETIMEDOUT);
    assert_true(took < HUNG_CLOSE_MS + MARGIN_MS);
    tk_gate(&tk_a, false, false);
    pthread_join(g, NULL);
    wait_gone(s, "TestTierA");
    assert_int_equal(atomic_load(&tk_a.live), 0);
    kvt_store_close(s);
    assert_int_equal(atomic_load(&tk_a.created), atomic_load(&tk_a.destroyed));
    tk_reset(&tk_a);
    tk_reset(&tk_b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(registry_churn_loses_no_committed_chunk),
        cmocka_unit_test(hung_tier_never_wedges_the_engine),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
