/* Concurrency: four threads put and get while another thread loops close / create /
 * recreate of one tier 1,000 times. Run under TSan by the test command.
 *
 * The CPU tier is small, so gets and lookups also reach the lower tiers (and read into
 * CPU buffers through kvt_backend_alloc) while one of them churns. Pins down: no crash
 * or use-after-free (sanitizers), every read returns the right bytes, every backend
 * instance created is destroyed exactly once (no leak), a flush in the middle of the
 * churn has written each thread's last chunk to TestTierA, and no committed chunk is
 * lost from the tier that was never closed: each put that returned KVT_OK is, at the
 * end, in TestTierA with the right bytes. Write-through accounting balances too: items
 * queued to the tier being closed were all written, none dropped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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
        if (w->ncommitted < MAX_PUTS) {
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
        kvt_lookup_prefix(w->s, seq, 4, 0, &hits, NULL, 0, NULL);
        if (hits != 4)
            w->bad_reads++;
        if (++w->ops % 64 == 0) {
            h = w->committed[w->ncommitted - 1];
            k = tk_key(h);
            tk_fill(buf, sizeof buf, h);
            kvt_flush(w->s);
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
    assert_int_equal(kvt_flush(s), KVT_OK);

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
    kvt_store_close(s);
    assert_int_equal(atomic_load(&tk_b.live), 0);
    assert_int_equal(atomic_load(&tk_b.created), atomic_load(&tk_b.destroyed));
    assert_int_equal(atomic_load(&tk_b.created), 1 + 2 * ADMIN_CYCLES / 3);
    print_message("%zu chunks committed during %d registry operations\n", total, ADMIN_CYCLES);
    free(w);
    tk_reset(&tk_a);
    tk_reset(&tk_b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(registry_churn_loses_no_committed_chunk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
