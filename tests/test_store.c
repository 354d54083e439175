/* Store data path: write-through, promotion, tiered lookup, filters, remove/clear, and
 * the backend vtable's version rule. The second tier is TestTierA/B (testkit.c),
 * registered through the public vtable. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "testkit.h"

#define LEN 8192u

static atomic_bool old_wanted;

static int setup(void **state)
{
    (void)state;
    atomic_store(&old_wanted, false);
    tk_register();
    tk_reset(&tk_a);
    tk_reset(&tk_b);
    return 0;
}

static kvt_store *open_with(bool a, bool b, const char *key, const char *value)
{
    kvt_config *cfg = tk_config(4.0);
    kvt_store *s = NULL;
    atomic_store(&tk_a.wanted, a);
    atomic_store(&tk_b.wanted, b);
    if (key)
        assert_int_equal(kvt_config_set(cfg, key, value), KVT_OK);
    assert_int_equal(kvt_store_open(cfg, &tk_quiet, &s), KVT_OK);
    kvt_config_free(cfg);
    return s;
}

static void put_h(kvt_store *s, uint64_t h)
{
    unsigned char buf[LEN];
    kvt_key k = tk_key(h);
    tk_fill(buf, sizeof buf, h);
    assert_int_equal(kvt_put(s, &k, buf, sizeof buf, NULL), KVT_OK);
}

static bool tier_holds(struct tk_world *w, uint64_t h)
{
    unsigned char buf[LEN];
    kvt_key k = tk_key(h);
    tk_fill(buf, sizeof buf, h);
    return tk_holds(w, &k, buf, sizeof buf);
}

static void put_writes_through_to_every_tier(void **state)
{
    (void)state;
    kvt_store *s = open_with(true, true, NULL, NULL);
    for (uint64_t h = 1; h <= 20; h++)
        put_h(s, h);
    assert_int_equal(kvt_flush(s, -1), KVT_OK);
    for (uint64_t h = 1; h <= 20; h++) {
        assert_true(tier_holds(&tk_a, h));
        assert_true(tier_holds(&tk_b, h));
    }
    kvt_store_stats st;
    kvt_store_get_stats(s, &st);
    assert_int_equal(st.wt_enqueued, 40);
    assert_int_equal(st.wt_done, 40);
    kvt_store_close(s);
}

static void close_flushes_pending_write_through(void **state)
{
    (void)state;
    kvt_store *s = open_with(true, false, NULL, NULL);
    atomic_store(&tk_a.put_delay_us, 2000);
    for (uint64_t h = 1; h <= 10; h++)
        put_h(s, h);
    kvt_store_close(s); /* no flush: close must write the queue out */
    for (uint64_t h = 1; h <= 10; h++)
        assert_true(tier_holds(&tk_a, h));
}

static void get_from_lower_tier_promotes_into_cpu(void **state)
{
    (void)state;
    kvt_store *s = open_with(true, false, NULL, NULL);
    put_h(s, 7);
    kvt_flush(s, -1);
    kvt_key k = tk_key(7);
    size_t removed = 0;
    /* Drop it from the CPU tier only, by closing and re-creating that tier. */
    assert_int_equal(kvt_backend_close(s, "TestTierA"), KVT_OK);
    assert_int_equal(kvt_remove(s, &k, &removed), KVT_OK);
    assert_int_equal(removed, 1);
    assert_int_equal(kvt_backends_create(s, NULL, 0, NULL), KVT_OK);
    const char *tier = NULL;
    assert_int_equal(kvt_contains(s, &k, &tier), KVT_OK);
    assert_string_equal(tier, "TestTierA");

    unsigned char want[LEN], got[LEN];
    size_t len = 0;
    tk_fill(want, sizeof want, 7);
    assert_int_equal(kvt_get_into(s, &k, got, sizeof got, &len), KVT_OK);
    assert_int_equal(len, LEN);
    assert_memory_equal(got, want, LEN);
    assert_int_equal(kvt_contains(s, &k, &tier), KVT_OK);
    assert_string_equal(tier, "LocalCPUBackend");
    kvt_store_stats st;
    kvt_store_get_stats(s, &st);
    assert_int_equal(st.promotions, 1);
    long gets = atomic_load(&tk_a.gets);
    kvt_obj *o;
    assert_int_equal(kvt_get(s, &k, &o), KVT_OK); /* now a CPU hit */
    kvt_obj_release(o);
    assert_int_equal(atomic_load(&tk_a.gets), gets);
    kvt_store_close(s);
}

static void get_into_refuses_a_short_buffer(void **state)
{
    (void)state;
    kvt_store *s = open_with(false, false, NULL, NULL);
    put_h(s, 3);
    unsigned char small[16];
    size_t len = 0;
    kvt_key k = tk_key(3);
    assert_int_equal(kvt_get_into(s, &k, small, sizeof small, &len), KVT_ETOOSMALL);
    assert_int_equal(len, LEN);
    kvt_store_close(s);
}

static void lookup_prefix_spans_tiers_in_order(void **state)
{
    (void)state;
    kvt_store *s = open_with(true, false, NULL, NULL);
    kvt_key keys[6];
    for (uint64_t h = 0; h < 6; h++) {
        keys[h] = tk_key(100 + h);
        put_h(s, 100 + h);
    }
    kvt_flush(s, -1);
    /* CPU keeps 0..2; the lower tier has all six; 5 is gone everywhere. */
    size_t removed;
    assert_int_equal(kvt_remove(s, &keys[5], &removed), KVT_OK);
    assert_int_equal(removed, 2);
    assert_int_equal(kvt_backend_close(s, "TestTierA"), KVT_OK);
    for (int i = 3; i < 5; i++)
        kvt_remove(s, &keys[i], NULL);
    assert_int_equal(kvt_backends_create(s, NULL, 0, NULL), KVT_OK);
    size_t hits = 0, nspans = 0;
    kvt_tier_span spans[4];
    assert_int_equal(kvt_lookup_prefix(s, keys, 6, &hits, spans, 4, &nspans, NULL), KVT_OK);
    assert_int_equal(hits, 5);
    assert_int_equal(nspans, 2);
    assert_string_equal(spans[0].backend, "LocalCPUBackend");
    assert_int_equal(spans[0].start, 0);
    assert_int_equal(spans[0].count, 3);
    assert_string_equal(spans[1].backend, "TestTierA");
    assert_int_equal(spans[1].start, 3);
    assert_int_equal(spans[1].count, 2);
    /* A tier with no hit passes on: CPU lacks 3 and 4, TestTierA has them. */
    assert_int_equal(kvt_lookup_prefix(s, keys + 3, 2, &hits, spans, 4, &nspans, NULL), KVT_OK);
    assert_int_equal(hits, 2);
    assert_int_equal(nspans, 1);
    assert_string_equal(spans[0].backend, "TestTierA");
    assert_int_equal(spans[0].start, 0);
    /* A miss at the first key in every tier: nothing. */
    assert_int_equal(kvt_lookup_prefix(s, keys + 5, 1, &hits, NULL, 0, NULL, NULL), KVT_OK);
    assert_int_equal(hits, 0);
    kvt_store_close(s);
}

static void bypassed_tier_gets_no_puts_and_serves_no_gets(void **state)
{
    (void)state;
    kvt_store *s = open_with(true, false, NULL, NULL);
    bool was = true;
    assert_int_equal(kvt_backend_set_bypass(s, "TestTierA", true, &was), KVT_OK);
    assert_false(was);
    put_h(s, 1);
    kvt_flush(s, -1);
    assert_false(tier_holds(&tk_a, 1));
    assert_int_equal(kvt_backend_set_bypass(s, "TestTierA", false, &was), KVT_OK);
    assert_true(was);
    put_h(s, 2);
    kvt_flush(s, -1);
    assert_true(tier_holds(&tk_a, 2));
    assert_int_equal(kvt_backend_set_bypass(s, "NoSuchBackend", true, NULL), KVT_ENOENT);
    kvt_store_close(s);
}

static void frozen_store_skips_puts_and_reads_cpu_only(void **state)
{
    (void)state;
    kvt_store *s = open_with(true, false, NULL, NULL);
    put_h(s, 1);
    kvt_flush(s, -1);
    assert_int_equal(kvt_backend_close(s, "TestTierA"), KVT_OK);
    kvt_key k1 = tk_key(1), k2 = tk_key(2);
    kvt_remove(s, &k1, NULL);
    assert_int_equal(kvt_backends_create(s, NULL, 0, NULL), KVT_OK);
    assert_int_equal(kvt_store_set_freeze(s, true), KVT_OK);
    assert_true(kvt_store_frozen(s));
    assert_int_equal(kvt_contains(s, &k1, NULL), KVT_ENOENT); /* only in TestTierA */
    put_h(s, 2);
    assert_int_equal(kvt_contains(s, &k2, NULL), KVT_ENOENT);
    kvt_store_set_freeze(s, false);
    kvt_flush(s, -1);
    assert_false(tier_holds(&tk_a, 2)); /* the frozen put reached no tier */
    assert_int_equal(kvt_contains(s, &k2, NULL), KVT_ENOENT);
    assert_int_equal(kvt_contains(s, &k1, NULL), KVT_OK);
    kvt_store_close(s);
}

static void store_location_restricts_puts(void **state)
{
    (void)state;
    kvt_store *s = open_with(true, true, "store_location", "TestTierB");
    put_h(s, 1);
    kvt_flush(s, -1);
    assert_true(tier_holds(&tk_b, 1));
    assert_false(tier_holds(&tk_a, 1));
    kvt_key k = tk_key(1);
    const char *tier = NULL;
    assert_int_equal(kvt_contains(s, &k, &tier), KVT_OK);
    assert_string_equal(tier, "TestTierB");
    kvt_store_close(s);
}

static void retrieve_locations_restricts_gets(void **state)
{
    (void)state;
    kvt_store *s = open_with(true, false, "retrieve_locations", "TestTierA");
    put_h(s, 1);
    kvt_flush(s, -1);
    kvt_key k = tk_key(1);
    const char *tier = NULL;
    assert_int_equal(kvt_contains(s, &k, &tier), KVT_OK);
    assert_string_equal(tier, "TestTierA");
    kvt_store_close(s);
}

static void remove_and_clear_reach_every_tier(void **state)
{
    (void)state;
    kvt_store *s = open_with(true, false, NULL, NULL);
    for (uint64_t h = 1; h <= 5; h++)
        put_h(s, h);
    assert_int_equal(kvt_flush(s, -1), KVT_OK);
    kvt_key k1 = tk_key(1);
    size_t removed = 0;
    assert_int_equal(kvt_remove(s, &k1, &removed), KVT_OK);
    assert_int_equal(removed, 2);
    assert_false(tier_holds(&tk_a, 1));
    uint64_t tokens = 0;
    assert_int_equal(kvt_clear(s, &tokens), KVT_OK);
    assert_int_equal(tokens, 2 * 4 * 256); /* 4 chunks in each of 2 tiers */
    assert_int_equal(tk_count(&tk_a), 0);
    kvt_store_close(s);
}

/* A write of the key still queued when remove runs is cancelled, not waited for and not
 * written afterwards; writes of other keys are not waited for at all. */
static void remove_cancels_queued_writes_without_waiting_for_others(void **state)
{
    (void)state;
    kvt_store *s = open_with(true, false, NULL, NULL);
    tk_gate(&tk_a, true, true);
    put_h(s, 1); /* parks in TestTierA's put */
    tk_wait_parked(&tk_a, true, 1);
    put_h(s, 2);
    put_h(s, 3);
    kvt_key k2 = tk_key(2), k9 = tk_key(9);
    size_t removed = 9;
    assert_int_equal(kvt_remove(s, &k9, &removed), KVT_OK); /* returns with the gate shut */
    assert_int_equal(removed, 0);
    assert_int_equal(kvt_remove(s, &k2, &removed), KVT_OK);
    assert_int_equal(removed, 1); /* the CPU copy; the queued one was cancelled */
    tk_gate(&tk_a, true, false);
    assert_int_equal(kvt_flush(s, -1), KVT_OK);
    assert_true(tier_holds(&tk_a, 1) && tier_holds(&tk_a, 3));
    assert_false(tier_holds(&tk_a, 2));
    kvt_store_stats st;
    assert_int_equal(kvt_store_get_stats(s, &st), KVT_OK);
    assert_int_equal(st.wt_cancelled, 1);
    assert_int_equal(st.wt_enqueued, st.wt_done + st.wt_failed + st.wt_cancelled);
    kvt_store_close(s);
}

/* Ends a test that must not have promoted anything. */
static void close_without_promotions(kvt_store *s)
{
    kvt_store_stats st;
    assert_int_equal(kvt_store_get_stats(s, &st), KVT_OK);
    assert_int_equal(st.promotions, 0);
    kvt_store_close(s);
}

struct getter {
    kvt_store *s;
    uint64_t h;
    int rc;
};

static void *get_one(void *arg)
{
    struct getter *g = arg;
    kvt_obj *o = NULL;
    kvt_key k = tk_key(g->h);
    g->rc = kvt_get(g->s, &k, &o);
    kvt_obj_release(o);
    return NULL;
}

/* Puts h into TestTierA only (the CPU tier bypassed meanwhile). */
static void put_below_cpu(kvt_store *s, uint64_t h)
{
    assert_int_equal(kvt_backend_set_bypass(s, "LocalCPUBackend", true, NULL), KVT_OK);
    put_h(s, h);
    assert_int_equal(kvt_flush(s, -1), KVT_OK);
    assert_int_equal(kvt_backend_set_bypass(s, "LocalCPUBackend", false, NULL), KVT_OK);
}

/* A get in flight on a lower tier while remove runs returns what it read, but does not
 * promote the removed chunk back into the CPU tier. */
static void get_in_flight_does_not_reinstate_a_removed_chunk(void **state)
{
    (void)state;
    kvt_store *s = open_with(true, false, NULL, NULL);
    put_below_cpu(s, 1);
    tk_gate(&tk_a, false, true);
    struct getter g = {s, 1, -1};
    pthread_t t;
    pthread_create(&t, NULL, get_one, &g);
    tk_wait_parked(&tk_a, false, 1); /* read done, not yet returned */
    kvt_key k = tk_key(1);
    size_t removed = 0;
    assert_int_equal(kvt_remove(s, &k, &removed), KVT_OK);
    assert_int_equal(removed, 1);
    tk_gate(&tk_a, false, false);
    pthread_join(t, NULL);
    assert_int_equal(g.rc, KVT_OK);
    assert_int_equal(kvt_contains(s, &k, NULL), KVT_ENOENT);
    kvt_obj *o = NULL;
    assert_int_equal(kvt_get(s, &k, &o), KVT_ENOENT);
    close_without_promotions(s);
}

struct remover {
    kvt_store *s;
    uint64_t h;
};

static void *remove_one_key(void *arg)
{
    struct remover *r = arg;
    kvt_key k = tk_key(r->h);
    assert_int_equal(kvt_remove(r->s, &k, NULL), KVT_OK);
    return NULL;
}

/* A get that starts while a remove is half done (the CPU copy gone, the lower tier's not
 * yet) finds the chunk below, but must not promote it back into the CPU tier. */
static void get_during_a_remove_does_not_reinstate_it(void **state)
{
    (void)state;
    kvt_store *s = open_with(true, false, NULL, NULL);
    put_h(s, 1);
    assert_int_equal(kvt_flush(s, -1), KVT_OK);
    tk_gate_at(&tk_a, TK_REMOVE, true);
    struct remover r = {s, 1};
    pthread_t t;
    pthread_create(&t, NULL, remove_one_key, &r);
    tk_wait_parked_at(&tk_a, TK_REMOVE, 1); /* the CPU tier is done, TestTierA is next */
    kvt_key k = tk_key(1);
    kvt_obj *o = NULL;
    assert_int_equal(kvt_get(s, &k, &o), KVT_OK); /* served from TestTierA, not promoted */
    kvt_obj_release(o);
    tk_gate_at(&tk_a, TK_REMOVE, false);
    pthread_join(t, NULL);
    assert_int_equal(kvt_contains(s, &k, NULL), KVT_ENOENT);
    close_without_promotions(s);
}

/* A bypassed CPU tier takes no puts, promotions included. */
static void promotion_skips_a_bypassed_cpu_tier(void **state)
{
    (void)state;
    kvt_store *s = open_with(true, false, NULL, NULL);
    put_below_cpu(s, 1);
    assert_int_equal(kvt_backend_set_bypass(s, "LocalCPUBackend", true, NULL), KVT_OK);
    kvt_key k = tk_key(1);
    kvt_obj *o = NULL;
    assert_int_equal(kvt_get(s, &k, &o), KVT_OK);
    kvt_obj_release(o);
    kvt_backend_stats cpu;
    assert_int_equal(kvt_backend_get_stats(s, "LocalCPUBackend", &cpu), KVT_OK);
    assert_int_equal(cpu.objects, 0);
    close_without_promotions(s);
}

/* The same for clear. */
static void get_in_flight_does_not_reinstate_after_clear(void **state)
{
    (void)state;
    kvt_store *s = open_with(true, false, NULL, NULL);
    put_below_cpu(s, 1);
    tk_gate(&tk_a, false, true);
    struct getter g = {s, 1, -1};
    pthread_t t;
    pthread_create(&t, NULL, get_one, &g);
    tk_wait_parked(&tk_a, false, 1);
    assert_int_equal(kvt_clear(s, NULL), KVT_OK);
    tk_gate(&tk_a, false, false);
    pthread_join(t, NULL);
    kvt_key k = tk_key(1);
    assert_int_equal(kvt_contains(s, &k, NULL), KVT_ENOENT);
    kvt_store_close(s);
}

/* Pins 4 chunks of the CPU tier (1 MiB) so it has no room left for a promotion. */
static kvt_pin *fill_cpu_with_pins(kvt_store *s, size_t chunk)
{
    unsigned char *buf = calloc(1, chunk);
    kvt_key keys[4];
    for (uint64_t i = 0; i < 4; i++) {
        keys[i] = tk_key(100 + i);
        assert_int_equal(kvt_put(s, &keys[i], buf, chunk, NULL), KVT_OK);
    }
    free(buf);
    size_t hits = 0;
    kvt_pin *pin = NULL;
    assert_int_equal(kvt_lookup_prefix(s, keys, 4, &hits, NULL, 0, NULL, &pin), KVT_OK);
    assert_int_equal(hits, 4);
    return pin;
}

/* get_into of a chunk held only below a full CPU tier reads into the caller's buffer,
 * through the tier's get_into slot (TestTierB) or a heap buffer (TestTierA), and skips
 * the promotion; kvt_get gets a heap object. */
static void get_into_never_fails_for_lack_of_cpu_room(void **state)
{
    (void)state;
    const size_t chunk = 256 * 1024;
    kvt_config *cfg = tk_config(1.0);
    kvt_store *s = NULL;
    atomic_store(&tk_a.wanted, true);
    atomic_store(&tk_b.wanted, true);
    assert_int_equal(kvt_store_open(cfg, &tk_quiet, &s), KVT_OK);
    kvt_config_free(cfg);
    put_below_cpu(s, 1);
    assert_int_equal(kvt_backend_set_bypass(s, "TestTierA", true, NULL), KVT_OK);
    kvt_pin *pin = fill_cpu_with_pins(s, chunk);
    unsigned char got[LEN], want[LEN];
    tk_fill(want, sizeof want, 1);
    size_t len = 0;
    kvt_key k = tk_key(1);
    const char *tier = NULL;
    assert_int_equal(kvt_contains(s, &k, &tier), KVT_OK);
    assert_string_equal(tier, "TestTierB");
    assert_int_equal(kvt_get_into(s, &k, got, sizeof got, &len), KVT_OK);
    assert_int_equal(len, LEN);
    assert_memory_equal(got, want, LEN);
    assert_int_equal(atomic_load(&tk_b.get_into_calls), 1);
    assert_int_equal(kvt_backend_set_bypass(s, "TestTierB", true, NULL), KVT_OK);
    assert_int_equal(kvt_backend_set_bypass(s, "TestTierA", false, NULL), KVT_OK);
    memset(got, 0, sizeof got);
    assert_int_equal(kvt_get_into(s, &k, got, sizeof got, &len), KVT_OK); /* no slot: heap */
    assert_memory_equal(got, want, LEN);
    kvt_obj *o = NULL;
    assert_int_equal(kvt_get(s, &k, &o), KVT_OK);
    assert_memory_equal(kvt_obj_data(o), want, LEN);
    kvt_obj_release(o);
    kvt_store_stats st;
    assert_int_equal(kvt_store_get_stats(s, &st), KVT_OK);
    assert_int_equal(st.get_unstaged, 3);
    assert_int_equal(st.promotions, 0);
    assert_int_equal(kvt_unpin(s, pin), KVT_OK);
    kvt_store_close(s);
}

/* A read no CPU tier would keep (it is bypassed) goes straight into the caller's buffer
 * through the tier's get_into slot: no staging copy, no promotion. */
static void unkept_reads_go_straight_into_the_buffer(void **state)
{
    (void)state;
    kvt_store *s = open_with(false, true, NULL, NULL);
    assert_int_equal(kvt_backend_set_bypass(s, "LocalCPUBackend", true, NULL), KVT_OK);
    put_h(s, 1);
    assert_int_equal(kvt_flush(s, -1), KVT_OK);
    unsigned char got[LEN], want[LEN];
    tk_fill(want, sizeof want, 1);
    kvt_key k = tk_key(1);
    size_t len = 0;
    long gets = atomic_load(&tk_b.gets);
    assert_int_equal(kvt_get_into(s, &k, got, sizeof got, &len), KVT_OK);
    assert_memory_equal(got, want, LEN);
    assert_int_equal(atomic_load(&tk_b.get_into_calls), 1);
    assert_int_equal(atomic_load(&tk_b.gets), gets); /* get() was not asked */
    assert_int_equal(kvt_get_into(s, &k, got, 10, &len), KVT_ETOOSMALL);
    assert_int_equal(len, LEN);
    /* A batch of such reads: one batched_get_into call, no staging. */
    kvt_key keys[2] = {tk_key(1), tk_key(2)};
    static unsigned char b0[LEN], b1[LEN];
    void *ptrs[2] = {b0, b1};
    size_t caps[2] = {LEN, LEN}, lens[2] = {0, 0}, hits = 0;
    int sts[2];
    assert_int_equal(kvt_batched_get_into(s, 2, keys, ptrs, caps, lens, sts, &hits), KVT_OK);
    assert_int_equal(hits, 1);
    assert_int_equal(sts[0], KVT_OK);
    assert_int_equal(lens[0], LEN);
    assert_memory_equal(b0, want, LEN);
    assert_int_equal(sts[1], KVT_ENOENT);
    assert_int_equal(atomic_load(&tk_b.batched_get_into_calls), 1);
    assert_int_equal(atomic_load(&tk_b.batched_get_calls), 0);
    close_without_promotions(s);
}

/* batched get: each tier reads the keys still missing as one batch (TestTierB's slot),
 * hits are copied out and promoted, misses and short buffers reported per key. */
static void batched_get_into_reads_each_tier_as_one_batch(void **state)
{
    (void)state;
    kvt_store *s = open_with(false, true, NULL, NULL);
    put_h(s, 0);
    put_h(s, 1);
    assert_int_equal(kvt_backend_set_bypass(s, "LocalCPUBackend", true, NULL), KVT_OK);
    for (uint64_t h = 2; h <= 5; h++)
        put_h(s, h);
    assert_int_equal(kvt_flush(s, -1), KVT_OK);
    assert_int_equal(kvt_backend_set_bypass(s, "LocalCPUBackend", false, NULL), KVT_OK);
    kvt_key keys[7];
    static unsigned char bufs[7][LEN];
    void *ptrs[7];
    size_t caps[7], lens[7] = {0}, hits = 0;
    int sts[7];
    for (uint64_t i = 0; i < 7; i++) {
        keys[i] = tk_key(i);
        ptrs[i] = bufs[i];
        caps[i] = LEN;
    }
    caps[5] = LEN - 1; /* short */
    assert_int_equal(kvt_batched_get_into(s, 7, keys, ptrs, caps, lens, sts, &hits), KVT_OK);
    assert_int_equal(hits, 5);
    for (int i = 0; i < 5; i++) {
        unsigned char want[LEN];
        tk_fill(want, sizeof want, (uint64_t)i);
        assert_int_equal(sts[i], KVT_OK);
        assert_int_equal(lens[i], LEN);
        assert_memory_equal(bufs[i], want, LEN);
    }
    assert_int_equal(sts[5], KVT_ETOOSMALL);
    assert_int_equal(lens[5], LEN);
    assert_int_equal(sts[6], KVT_ENOENT);
    assert_int_equal(atomic_load(&tk_b.batched_get_calls), 1); /* keys 2..6 in one call */
    kvt_key k3 = tk_key(3);
    const char *tier = NULL;
    assert_int_equal(kvt_contains(s, &k3, &tier), KVT_OK);
    assert_string_equal(tier, "LocalCPUBackend"); /* promoted */
    kvt_store_close(s);
}

/* A table built with ABI v1's struct_size keeps working; the v2 slots it happens to
 * carry past its size are never called. */
static bool want_v1(const kvt_config *cfg) { (void)cfg; return atomic_load(&old_wanted); }

static void v1_table_never_gets_v2_slots_called(void **state)
{
    (void)state;
    static struct kvt_backend_ops v1;
    v1 = tk_b_ops;
    v1.abi_version = 1;
    v1.type_name = "TestTierV1";
    v1.wanted = want_v1;
    v1.struct_size = offsetof(struct kvt_backend_ops, batched_get);
    assert_int_equal(kvt_register_backend_type(&v1), KVT_OK);
    atomic_store(&old_wanted, true);
    kvt_store *s = open_with(false, false, NULL, NULL);
    assert_int_equal(kvt_backend_set_bypass(s, "LocalCPUBackend", true, NULL), KVT_OK);
    put_h(s, 1);
    put_h(s, 2);
    assert_int_equal(kvt_flush(s, -1), KVT_OK);
    assert_int_equal(kvt_backend_set_bypass(s, "LocalCPUBackend", false, NULL), KVT_OK);
    kvt_key keys[2] = {tk_key(1), tk_key(2)};
    static unsigned char b0[LEN], b1[LEN];
    void *ptrs[2] = {b0, b1};
    size_t caps[2] = {LEN, LEN}, hits = 0;
    int sts[2];
    assert_int_equal(kvt_batched_get_into(s, 2, keys, ptrs, caps, NULL, sts, &hits), KVT_OK);
    assert_int_equal(hits, 2);
    assert_int_equal(atomic_load(&tk_b.batched_get_calls), 0);
    assert_int_equal(atomic_load(&tk_b.get_into_calls), 0);
    assert_int_equal(kvt_backend_set_bypass(s, "LocalCPUBackend", true, NULL), KVT_OK);
    assert_int_equal(kvt_batched_get_into(s, 2, keys, ptrs, caps, NULL, sts, &hits), KVT_OK);
    assert_int_equal(hits, 2);
    assert_int_equal(atomic_load(&tk_b.batched_get_into_calls), 0); /* past its struct_size */
    kvt_store_close(s);
}

/* Puts that no tier took do not say KVT_OK and are not counted as stored. */
static void put_results_are_honest(void **state)
{
    (void)state;
    unsigned char b[16] = {0};
    kvt_key k = tk_key(1);
    kvt_config *cfg = NULL;
    kvt_store *s = NULL;
    kvt_store_stats st;
    assert_int_equal(kvt_config_new(&cfg), KVT_OK);
    assert_int_equal(kvt_config_set(cfg, "max_local_cpu_size", "0"), KVT_OK);
    assert_int_equal(kvt_store_open(cfg, &tk_quiet, &s), KVT_OK);
    assert_int_equal(kvt_put(s, &k, b, sizeof b, NULL), KVT_ENOTIER);
    assert_non_null(strstr(kvt_last_error(), "no tier took the chunk"));
    assert_int_equal(kvt_store_get_stats(s, &st), KVT_OK);
    assert_int_equal(st.stored_chunks, 0);
    kvt_store_close(s);
    kvt_config_free(cfg);
    s = open_with(false, false, "store_location", "TestTierA"); /* a type, not open */
    assert_int_equal(kvt_put(s, &k, b, sizeof b, NULL), KVT_ENOTIER);
    assert_int_equal(kvt_store_set_freeze(s, true), KVT_OK);
    assert_int_equal(kvt_put(s, &k, b, sizeof b, NULL), KVT_OK); /* LMCache's frozen OK */
    assert_int_equal(kvt_store_get_stats(s, &st), KVT_OK);
    assert_int_equal(st.puts_frozen, 1);
    assert_int_equal(st.puts_unstored, 1);
    assert_int_equal(st.stored_chunks, 0);
    kvt_store_close(s);
}

/* Location names that are no backend type are a config error naming them: a typo used
 * to open a store whose every put "succeeded" into nothing. */
static void unknown_location_names_fail_the_open(void **state)
{
    (void)state;
    kvt_config *cfg = tk_config(4.0);
    kvt_store *s = NULL;
    assert_int_equal(kvt_config_set(cfg, "store_location", "LocalCpuBackend"), KVT_OK);
    assert_int_equal(kvt_store_open(cfg, &tk_quiet, &s), KVT_ECONFIG);
    assert_null(s);
    assert_non_null(strstr(kvt_last_error(), "store_location names \"LocalCpuBackend\""));
    kvt_config_free(cfg);
    cfg = tk_config(4.0);
    assert_int_equal(kvt_config_set(cfg, "retrieve_locations", "LocalCPUBackend,NoSuch"), KVT_OK);
    assert_int_equal(kvt_store_open(cfg, &tk_quiet, &s), KVT_ECONFIG);
    assert_non_null(strstr(kvt_last_error(), "\"NoSuch\""));
    kvt_config_free(cfg);
}

/* A buggy tier that answers OK without an object is a miss, not a crash. */
static void get_ok_without_object_is_an_error(void **state)
{
    (void)state;
    kvt_store *s = open_with(true, false, NULL, NULL);
    put_below_cpu(s, 1);
    atomic_store(&tk_a.get_returns_null, true);
    kvt_key k = tk_key(1);
    kvt_obj *o = NULL;
    assert_int_equal(kvt_get(s, &k, &o), KVT_ENOENT);
    assert_null(o);
    kvt_backend_stats st;
    assert_int_equal(kvt_backend_get_stats(s, "TestTierA", &st), KVT_OK);
    assert_int_equal(st.misses, 1);
    kvt_store_close(s);
}

/* A put that finds a hung tier's queue full waits at most write_queue_timeout_ms, then
 * skips that tier's copy (counted); the CPU copy is made anyway. Bypassing the tier
 * releases puts waiting on it at once. */
static void *put_two(void *arg)
{
    kvt_store *s = arg;
    put_h(s, 20);
    return NULL;
}

static void full_queue_costs_a_put_at_most_its_timeout(void **state)
{
    (void)state;
    kvt_config *cfg = tk_config(4.0);
    kvt_store *s = NULL;
    atomic_store(&tk_a.wanted, true);
    assert_int_equal(kvt_config_set(cfg, "write_queue_depth", "1"), KVT_OK);
    assert_int_equal(kvt_config_set(cfg, "write_queue_timeout_ms", "50"), KVT_OK);
    assert_int_equal(kvt_store_open(cfg, &tk_quiet, &s), KVT_OK);
    kvt_config_free(cfg);
    tk_gate(&tk_a, true, true);
    put_h(s, 1);
    tk_wait_parked(&tk_a, true, 1);
    put_h(s, 2); /* fills the queue */
    double t0 = tk_now_ms();
    put_h(s, 3);
    double took = tk_now_ms() - t0;
    assert_true(took >= 45 && took < 1000);
    kvt_key k3 = tk_key(3);
    const char *tier = NULL;
    assert_int_equal(kvt_contains(s, &k3, &tier), KVT_OK);
    assert_string_equal(tier, "LocalCPUBackend");
    kvt_backend_stats bst;
    kvt_store_stats st;
    assert_int_equal(kvt_backend_get_stats(s, "TestTierA", &bst), KVT_OK);
    assert_int_equal(bst.skipped, 1);
    assert_int_equal(kvt_store_get_stats(s, &st), KVT_OK);
    assert_int_equal(st.wt_skipped, 1);
    const char *keys[] = {"write_queue_timeout_ms"}, *vals[] = {"60000"};
    assert_int_equal(kvt_store_conf_update(s, 1, keys, vals, NULL), KVT_OK);
    pthread_t t;
    t0 = tk_now_ms();
    pthread_create(&t, NULL, put_two, s);
    usleep(20000); /* let it start waiting on the full queue */
    assert_int_equal(kvt_backend_set_bypass(s, "TestTierA", true, NULL), KVT_OK);
    pthread_join(t, NULL);
    assert_true(tk_now_ms() - t0 < 5000); /* released by the bypass, not the 60 s */
    tk_gate(&tk_a, true, false);
    assert_int_equal(kvt_flush(s, -1), KVT_OK);
    assert_true(tier_holds(&tk_a, 1) && tier_holds(&tk_a, 2));
    assert_false(tier_holds(&tk_a, 3) || tier_holds(&tk_a, 20));
    kvt_store_close(s);
}

static kvt_backend_health health_of(kvt_store *s, const char *name)
{
    kvt_backend_health h;
    assert_int_equal(kvt_backend_get_health(s, name, &h), KVT_OK);
    return h;
}

/* Waits (bounded) until the breaker of `name` is in state `want`. */
static kvt_backend_health wait_breaker(kvt_store *s, const char *name, kvt_breaker_state want)
{
    alarm(20);
    kvt_backend_health h = health_of(s, name);
    while (h.breaker != want) {
        usleep(2000);
        h = health_of(s, name);
    }
    alarm(0);
    return h;
}

/* Consecutive failures open a tier's breaker: the data path skips it and serves from the
 * CPU tier; failed probes back off longer; once the tier works again a probe closes it
 * by itself. The operator's manual bypass is separate and survives all of it. */
static void breaker_opens_on_failures_and_recovers_by_itself(void **state)
{
    (void)state;
    kvt_store *s = open_with(true, false, "breaker_backoff_ms", "40");
    const char *keys[] = {"breaker_failures"}, *vals[] = {"3"};
    assert_int_equal(kvt_store_conf_update(s, 1, keys, vals, NULL), KVT_OK);
    put_below_cpu(s, 1);
    put_h(s, 2); /* in the CPU tier too */
    assert_int_equal(kvt_flush(s, -1), KVT_OK);
    atomic_store(&tk_a.fail_io, KVT_EIO);
    kvt_key k1 = tk_key(1), k2 = tk_key(2);
    kvt_obj *o = NULL;
    for (int i = 0; i < 3; i++)
        assert_int_equal(kvt_get(s, &k1, &o), KVT_ENOENT); /* a failing tier is a miss */
    kvt_backend_health h = health_of(s, "TestTierA");
    assert_true(h.breaker != KVT_BREAKER_CLOSED);
    assert_true(h.bypass_breaker);
    assert_false(h.bypass_manual);
    assert_int_equal(h.opens, 1);
    assert_int_equal(h.last_status, KVT_EIO);
    long gets = atomic_load(&tk_a.gets);
    assert_int_equal(kvt_get(s, &k1, &o), KVT_ENOENT); /* skipped, not asked */
    assert_int_equal(kvt_get(s, &k2, &o), KVT_OK);     /* the CPU tier keeps serving */
    kvt_obj_release(o);
    assert_int_equal(atomic_load(&tk_a.gets), gets);
    wait_breaker(s, "TestTierA", KVT_BREAKER_OPEN);
    /* Probes keep failing while the tier does: the back-off grows. */
    alarm(20);
    while (health_of(s, "TestTierA").opens < 3)
        usleep(2000);
    alarm(0);
    h = health_of(s, "TestTierA");
    assert_true(h.ping_ms >= 0);
    /* Meanwhile the operator bypasses it by hand; recovery must not undo that. */
    assert_int_equal(kvt_backend_set_bypass(s, "TestTierA", true, NULL), KVT_OK);
    atomic_store(&tk_a.fail_io, 0);
    h = wait_breaker(s, "TestTierA", KVT_BREAKER_CLOSED);
    assert_true(h.bypass_manual);
    assert_false(h.bypass_breaker);
    assert_int_equal(h.consecutive_failures, 0);
    assert_int_equal(kvt_get(s, &k1, &o), KVT_ENOENT); /* still bypassed by hand */
    assert_int_equal(kvt_backend_set_bypass(s, "TestTierA", false, NULL), KVT_OK);
    assert_int_equal(kvt_get(s, &k1, &o), KVT_OK);
    kvt_obj_release(o);
    kvt_store_close(s);
}

/* The config's version moves with every change; an update against a stale version
 * changes nothing. */
static void conf_update_if_refuses_a_stale_version(void **state)
{
    (void)state;
    kvt_store *s = open_with(false, false, NULL, NULL);
    uint64_t v = kvt_store_conf_version(s);
    assert_int_equal(v, 1);
    const char *keys[] = {"blocking_timeout_secs"}, *a[] = {"20"}, *b[] = {"30"};
    assert_int_equal(kvt_store_conf_update_if(s, v, 1, keys, a, NULL), KVT_OK);
    assert_int_equal(kvt_store_conf_version(s), v + 1);
    assert_int_equal(kvt_store_conf_update_if(s, v, 1, keys, b, NULL), KVT_EBUSY);
    assert_non_null(strstr(kvt_last_error(), "changed since version 1"));
    kvt_config *cfg = NULL;
    int64_t t = 0;
    assert_int_equal(kvt_store_conf_dup(s, &cfg), KVT_OK);
    assert_int_equal(kvt_config_get_int(cfg, "blocking_timeout_secs", &t), KVT_OK);
    assert_int_equal(t, 20);
    kvt_config_free(cfg);
    assert_int_equal(kvt_store_conf_version(NULL), 0);
    kvt_store_close(s);
}

/* An LMCache file with max_local_cpu_size: 0 and no other tier opens, and says that
 * nothing will be stored. */
static void capture(void *ud, kvt_log_level level, const char *component, const char *msg);
struct captured;

static void batched_put_stops_at_the_first_failure(void **state)
{
    (void)state;
    kvt_store *s = open_with(false, false, NULL, NULL); /* a 4 MiB CPU tier */
    kvt_key keys[3] = {tk_key(1), tk_key(2), tk_key(3)};
    size_t big = 8u << 20;
    unsigned char *b = calloc(1, big);
    const void *data[3] = {b, b, b};
    size_t lens[3] = {64, big, 64}, stored = 9;
    assert_int_equal(kvt_batched_put(s, 3, keys, data, lens, NULL, &stored), KVT_ENOMEM);
    assert_int_equal(stored, 1);
    assert_int_equal(kvt_contains(s, &keys[0], NULL), KVT_OK);
    assert_int_equal(kvt_contains(s, &keys[2], NULL), KVT_ENOENT);
    free(b);
    kvt_store_close(s);
}

static void batched_put_stores_every_chunk(void **state)
{
    (void)state;
    kvt_store *s = open_with(false, false, NULL, NULL);
    kvt_key keys[3] = {tk_key(1), tk_key(2), tk_key(3)};
    unsigned char b[3][64];
    const void *data[3] = {b[0], b[1], b[2]};
    size_t lens[3] = {64, 64, 64}, stored = 0;
    assert_int_equal(kvt_batched_put(s, 3, keys, data, lens, NULL, &stored), KVT_OK);
    assert_int_equal(stored, 3);
    size_t hits;
    assert_int_equal(kvt_lookup_prefix(s, keys, 3, &hits, NULL, 0, NULL, NULL), KVT_OK);
    assert_int_equal(hits, 3);
    kvt_store_close(s);
}

/* A table built for an older ABI (struct_size ending before count_prefix) must not have
 * its count_prefix called, even though the pointer is set. */
/* Parks TestTierB's write-through worker on chunk 100 (put gate closed), then queues
 * chunks 1..n behind it: the worker's next call gets them all. */
static void queue_behind_parked_put(kvt_store *s, uint64_t n)
{
    tk_gate_at(&tk_b, TK_PUT, true);
    put_h(s, 100);
    tk_wait_parked_at(&tk_b, TK_PUT, 1);
    for (uint64_t h = 1; h <= n; h++)
        put_h(s, h);
}

/* Registers a copy of TestTierB's table cut to `size` bytes (an older ABI's table). */
static void register_short_b(struct kvt_backend_ops *t, const char *name,
                             bool (*wanted)(const kvt_config *), size_t size)
{
    *t = tk_b_ops;
    t->type_name = name;
    t->wanted = wanted;
    t->struct_size = (uint32_t)size;
    assert_int_equal(kvt_register_backend_type(t), KVT_OK);
}

/* Write-through hands what is queued to batched_put at once (TestTierB's slot); an item
 * that fails there fails alone, and is counted once. */
static void write_through_batches_queued_items(void **state)
{
    (void)state;
    kvt_store *s = open_with(false, true, NULL, NULL);
    atomic_store(&tk_b.fail_put_hash, 3);
    queue_behind_parked_put(s, 5);
    tk_gate_at(&tk_b, TK_PUT, false);
    assert_int_equal(kvt_flush(s, -1), KVT_OK);
    assert_int_equal(atomic_load(&tk_b.batched_put_calls), 1);
    assert_int_equal(atomic_load(&tk_b.batched_put_max), 5);
    for (uint64_t h = 1; h <= 5; h++)
        assert_int_equal(tier_holds(&tk_b, h), h != 3);
    kvt_backend_stats st;
    assert_int_equal(kvt_backend_get_stats(s, "TestTierB", &st), KVT_OK);
    assert_int_equal(st.puts, 5);
    assert_int_equal(st.put_failures, 1);
    kvt_store_close(s);
}

/* Stores chunks 1..20 (keys[] out) with one kvt_batched_put, which must store them all. */
static void batched_put_20(kvt_store *s, kvt_key keys[20])
{
    static unsigned char bufs[20][LEN];
    const void *data[20];
    size_t lens[20], stored = 0;
    for (uint64_t h = 1; h <= 20; h++) {
        keys[h - 1] = tk_key(h);
        tk_fill(bufs[h - 1], LEN, h);
        data[h - 1] = bufs[h - 1];
        lens[h - 1] = LEN;
    }
    assert_int_equal(kvt_batched_put(s, 20, keys, data, lens, NULL, &stored), KVT_OK);
    assert_int_equal(stored, 20);
}

/* kvt_batched_put and kvt_batched_put_obj plug the tiers' queues: the chunks of one call
 * reach a tier as whole batches (8, 8, then the rest at the unplug), never the first alone. */
static void batched_puts_reach_a_tier_together(void **state)
{
    (void)state;
    kvt_store *s = open_with(false, true, NULL, NULL);
    kvt_key keys[20];
    batched_put_20(s, keys);
    assert_int_equal(kvt_flush(s, -1), KVT_OK);
    assert_int_equal(atomic_load(&tk_b.batched_put_calls), 3);
    assert_int_equal(atomic_load(&tk_b.batched_put_max), 8);
    for (uint64_t h = 1; h <= 20; h++)
        assert_true(tier_holds(&tk_b, h));

    kvt_obj *objs[5];
    for (uint64_t h = 21; h <= 25; h++) {
        keys[h - 21] = tk_key(h);
        assert_int_equal(kvt_obj_alloc(s, LEN, NULL, &objs[h - 21]), KVT_OK);
        tk_fill(kvt_obj_data_mut(objs[h - 21]), LEN, h);
    }
    size_t stored = 0;
    assert_int_equal(kvt_batched_put_obj(s, 5, keys, objs, &stored), KVT_OK);
    assert_int_equal(stored, 5);
    for (int i = 0; i < 5; i++)
        kvt_obj_release(objs[i]);
    assert_int_equal(kvt_flush(s, -1), KVT_OK);
    assert_int_equal(atomic_load(&tk_b.batched_put_calls), 4);
    assert_int_equal(atomic_load(&tk_b.batched_put_max), 8);
    for (uint64_t h = 21; h <= 25; h++)
        assert_true(tier_holds(&tk_b, h));
    kvt_store_close(s);
}

/* A plugged batch holds its queued chunks, which the CPU tier cannot evict: with a pool of
 * 4 chunks, the fifth put lets them go, waits for them and goes on; all 20 are stored. */
static void batched_put_larger_than_the_pool(void **state)
{
    (void)state;
    kvt_store *s = open_with(false, true, "max_local_cpu_size", "0.0000306");
    kvt_key keys[20];
    batched_put_20(s, keys);
    assert_int_equal(kvt_flush(s, -1), KVT_OK);
    for (uint64_t h = 1; h <= 20; h++)
        assert_true(tier_holds(&tk_b, h));
    kvt_store_close(s);
}

/* A remove of one key of the batch being written undoes that key alone. */
static void remove_during_a_batch_undoes_only_its_key(void **state)
{
    (void)state;
    kvt_store *s = open_with(false, true, NULL, NULL);
    queue_behind_parked_put(s, 3);
    tk_gate_pass(&tk_b, TK_PUT, 1); /* 100 goes; the batch 1..3 parks on its first put */
    while (atomic_load(&tk_b.batched_put_calls) == 0)
        usleep(1000);
    tk_wait_parked_at(&tk_b, TK_PUT, 1);
    kvt_key k2 = tk_key(2);
    assert_int_equal(kvt_remove(s, &k2, NULL), KVT_OK); /* gives up waiting: marks the undo */
    tk_gate_at(&tk_b, TK_PUT, false);
    assert_int_equal(kvt_flush(s, -1), KVT_OK);
    assert_true(tier_holds(&tk_b, 1));
    assert_false(tier_holds(&tk_b, 2));
    assert_true(tier_holds(&tk_b, 3));
    kvt_store_close(s);
}

struct flusher {
    kvt_store *s;
    atomic_bool returned;
    int rc;
};

static void *flush_main(void *arg)
{
    struct flusher *f = arg;
    f->rc = kvt_flush(f->s, 10000);
    atomic_store(&f->returned, true);
    return NULL;
}

/* A flush waits for every write up to its mark, even when the batch that holds the last
 * of them also holds writes cancelled after the mark was taken. */
static void flush_waits_for_a_batch_with_cancelled_items(void **state)
{
    (void)state;
    kvt_store *s = open_with(false, true, NULL, NULL);
    queue_behind_parked_put(s, 1);
    struct flusher f = {.s = s};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, flush_main, &f), 0);
    usleep(100 * 1000); /* its mark: chunks 100 and 1 */
    put_h(s, 2);
    kvt_key k2 = tk_key(2);
    assert_int_equal(kvt_remove(s, &k2, NULL), KVT_OK); /* cancels the queued write */
    put_h(s, 3);
    tk_gate_pass(&tk_b, TK_PUT, 1); /* 100 goes; the batch 1, (2), 3 parks on chunk 1 */
    while (atomic_load(&tk_b.batched_put_calls) == 0)
        usleep(1000);
    tk_wait_parked_at(&tk_b, TK_PUT, 1);
    usleep(100 * 1000);
    assert_false(atomic_load(&f.returned)); /* chunk 1 is not written yet */
    tk_gate_at(&tk_b, TK_PUT, false);
    pthread_join(th, NULL);
    assert_int_equal(f.rc, KVT_OK);
    assert_true(tier_holds(&tk_b, 1));
    kvt_store_close(s);
}

static atomic_bool v4_wanted;
static bool want_v4(const kvt_config *cfg) { (void)cfg; return atomic_load(&v4_wanted); }

/* A table built before ABI v5 keeps one put at a time, though its memory past the end
 * would hold a batched_put. */
static void v4_table_gets_single_puts(void **state)
{
    (void)state;
    static struct kvt_backend_ops v4;
    register_short_b(&v4, "TestTierV4", want_v4, offsetof(struct kvt_backend_ops, batched_put));
    atomic_store(&v4_wanted, true);
    kvt_store *s = open_with(false, false, NULL, NULL);
    queue_behind_parked_put(s, 4);
    tk_gate_at(&tk_b, TK_PUT, false);
    assert_int_equal(kvt_flush(s, -1), KVT_OK);
    for (uint64_t h = 1; h <= 4; h++)
        assert_true(tier_holds(&tk_b, h));
    assert_int_equal(atomic_load(&tk_b.batched_put_calls), 0);
    kvt_store_close(s);
    atomic_store(&v4_wanted, false);
}

/* The extra types stay registered: wanted only in their own test (old_wanted). */
static bool want_old(const kvt_config *cfg) { (void)cfg; return atomic_load(&old_wanted); }

static void short_vtable_slot_is_never_called(void **state)
{
    (void)state;
    static struct kvt_backend_ops old;
    register_short_b(&old, "TestTierOld", want_old, offsetof(struct kvt_backend_ops, count_prefix));
    assert_non_null(old.count_prefix);
    atomic_store(&old_wanted, true);
    kvt_store *s = open_with(false, true, NULL, NULL);
    kvt_key keys[2] = {tk_key(1), tk_key(2)};
    for (uint64_t h = 1; h <= 2; h++)
        put_h(s, h);
    kvt_flush(s, -1);
    assert_int_equal(kvt_backend_close(s, "LocalCPUBackend"), KVT_EBUSY);
    kvt_backend_info bk[4];
    size_t n = 0;
    kvt_backends_list(s, bk, 4, &n);
    assert_int_equal(n, 3);
    assert_string_equal(bk[2].name, "TestTierOld");
    assert_int_equal(kvt_backend_set_bypass(s, "LocalCPUBackend", true, NULL), KVT_OK);
    assert_int_equal(kvt_backend_set_bypass(s, "TestTierB", true, NULL), KVT_OK);
    long before = atomic_load(&tk_b.count_prefix_calls);
    size_t hits = 0;
    assert_int_equal(kvt_lookup_prefix(s, keys, 2, &hits, NULL, 0, NULL, NULL), KVT_OK);
    assert_int_equal(hits, 2); /* answered through contains() */
    assert_int_equal(atomic_load(&tk_b.count_prefix_calls), before);
    /* The full-size TestTierB does use its count_prefix. */
    assert_int_equal(kvt_backend_set_bypass(s, "TestTierB", false, NULL), KVT_OK);
    assert_int_equal(kvt_lookup_prefix(s, keys, 2, &hits, NULL, 0, NULL, NULL), KVT_OK);
    assert_int_equal(atomic_load(&tk_b.count_prefix_calls), before + 1);
    kvt_store_close(s);
}

struct captured {
    char lines[16][512];
    size_t n;
};

static void capture(void *ud, kvt_log_level level, const char *component, const char *msg)
{
    struct captured *c = ud;
    if (c->n < 16)
        snprintf(c->lines[c->n++], sizeof c->lines[0], "%d %s %s", level, component, msg);
}

static void log_lines_reach_the_handler_as_logfmt(void **state)
{
    (void)state;
    struct captured c = {0};
    kvt_log_handler h = {.fn = capture, .ud = &c, .min_level = KVT_LOG_INFO};
    kvt_config *cfg = tk_config(4.0);
    kvt_store *s = NULL;
    atomic_store(&tk_a.wanted, true);
    assert_int_equal(kvt_store_open(cfg, &h, &s), KVT_OK);
    kvt_config_free(cfg);
    size_t before = c.n;
    assert_int_equal(kvt_backend_close(s, "TestTierA"), KVT_OK);
    assert_int_equal(c.n, before + 1);
    assert_string_equal(c.lines[before], "1 store event=backend_closed backend=TestTierA");
    kvt_store_close(s);
    assert_string_equal(c.lines[c.n - 1], "1 store event=store_closed flush=KVT_OK");
    /* Below the handler's level nothing arrives. */
    struct captured quiet = {0};
    h = (kvt_log_handler){.fn = capture, .ud = &quiet, .min_level = KVT_LOG_ERROR};
    cfg = tk_config(4.0);
    assert_int_equal(kvt_store_open(cfg, &h, &s), KVT_OK);
    kvt_config_free(cfg);
    kvt_store_close(s);
    assert_int_equal(quiet.n, 0);
}

/* The default sink: logfmt lines on stderr, checked in a child whose stderr is a pipe. */
static void default_log_is_logfmt_on_stderr(void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], STDERR_FILENO);
        close(fds[0]);
        kvt_config *cfg = tk_config(1.0);
        kvt_store *s = NULL;
        int rc = kvt_store_open(cfg, NULL, &s);
        kvt_store_close(s);
        kvt_config_free(cfg);
        _exit(rc == KVT_OK ? 0 : 1);
    }
    close(fds[1]);
    char out[4096] = "";
    size_t n = 0;
    ssize_t r;
    while (n < sizeof out - 1 && (r = read(fds[0], out + n, sizeof out - 1 - n)) > 0)
        n += (size_t)r;
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_non_null(strstr(out, "level=info component=store event=store_opened version="));
    assert_non_null(strstr(out, "level=info component=LocalCPUBackend event=created"));
    assert_true(strncmp(out, "ts=", 3) == 0);
}

static void metrics_render_lmcache_names(void **state)
{
    (void)state;
    kvt_store *s = open_with(true, false, NULL, NULL);
    put_h(s, 1);
    kvt_flush(s, -1);
    char *text = NULL;
    assert_int_equal(kvt_metrics_render(s, &text), KVT_OK);
    assert_non_null(strstr(text, "lmcache:num_store_requests 1\n"));
    assert_non_null(strstr(text, "lmcache:local_cache_usage 8192\n"));
    assert_non_null(strstr(text, "kvtier_backend_puts_total{backend=\"TestTierA\"} 1\n"));
    assert_non_null(strstr(text, "# TYPE lmcache:num_retrieve_requests counter\n"));
    kvt_free(text);
    kvt_store_close(s);
}

/* What config loading noticed (an unknown LMCACHE_* variable) reaches the store's log. */
static void config_notices_are_logged_at_open(void **state)
{
    (void)state;
    struct captured c = {0};
    kvt_log_handler h = {.fn = capture, .ud = &c, .min_level = KVT_LOG_WARN};
    kvt_config *cfg = NULL;
    kvt_store *s = NULL;
    setenv("LMCACHE_CHUNKSIZE", "512", 1);
    assert_int_equal(kvt_config_from_sources(NULL, &cfg), KVT_OK);
    unsetenv("LMCACHE_CHUNKSIZE");
    assert_int_equal(kvt_store_open(cfg, &h, &s), KVT_OK);
    bool seen = false;
    for (size_t i = 0; i < c.n; i++)
        seen |= strstr(c.lines[i], "2 config event=unknown_env name=LMCACHE_CHUNKSIZE "
                                   "nearest=LMCACHE_CHUNK_SIZE") != NULL;
    assert_true(seen);
    kvt_store_close(s);
    kvt_config_free(cfg);
}

static void nothing_stored_is_said_at_open(void **state)
{
    (void)state;
    struct captured c = {0};
    kvt_log_handler h = {.fn = capture, .ud = &c, .min_level = KVT_LOG_WARN};
    kvt_config *cfg = NULL;
    kvt_store *s = NULL;
    assert_int_equal(kvt_config_new(&cfg), KVT_OK);
    assert_int_equal(kvt_config_set(cfg, "max_local_cpu_size", "0"), KVT_OK);
    assert_int_equal(kvt_store_open(cfg, &h, &s), KVT_OK);
    assert_int_equal(c.n, 1);
    assert_non_null(strstr(c.lines[0], "event=nothing_stored"));
    kvt_store_close(s);
    kvt_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(put_writes_through_to_every_tier, setup),
        cmocka_unit_test_setup(close_flushes_pending_write_through, setup),
        cmocka_unit_test_setup(get_from_lower_tier_promotes_into_cpu, setup),
        cmocka_unit_test_setup(get_into_refuses_a_short_buffer, setup),
        cmocka_unit_test_setup(lookup_prefix_spans_tiers_in_order, setup),
        cmocka_unit_test_setup(bypassed_tier_gets_no_puts_and_serves_no_gets, setup),
        cmocka_unit_test_setup(frozen_store_skips_puts_and_reads_cpu_only, setup),
        cmocka_unit_test_setup(store_location_restricts_puts, setup),
        cmocka_unit_test_setup(retrieve_locations_restricts_gets, setup),
        cmocka_unit_test_setup(remove_and_clear_reach_every_tier, setup),
        cmocka_unit_test_setup(batched_put_stores_every_chunk, setup),
        cmocka_unit_test_setup(batched_put_stops_at_the_first_failure, setup),
        cmocka_unit_test_setup(short_vtable_slot_is_never_called, setup),
        cmocka_unit_test_setup(write_through_batches_queued_items, setup),
        cmocka_unit_test_setup(batched_puts_reach_a_tier_together, setup),
        cmocka_unit_test_setup(batched_put_larger_than_the_pool, setup),
        cmocka_unit_test_setup(remove_during_a_batch_undoes_only_its_key, setup),
        cmocka_unit_test_setup(flush_waits_for_a_batch_with_cancelled_items, setup),
        cmocka_unit_test_setup(v4_table_gets_single_puts, setup),
        cmocka_unit_test_setup(metrics_render_lmcache_names, setup),
        cmocka_unit_test_setup(log_lines_reach_the_handler_as_logfmt, setup),
        cmocka_unit_test(default_log_is_logfmt_on_stderr),
        cmocka_unit_test_setup(remove_cancels_queued_writes_without_waiting_for_others, setup),
        cmocka_unit_test_setup(get_in_flight_does_not_reinstate_a_removed_chunk, setup),
        cmocka_unit_test_setup(get_in_flight_does_not_reinstate_after_clear, setup),
        cmocka_unit_test_setup(get_during_a_remove_does_not_reinstate_it, setup),
        cmocka_unit_test_setup(promotion_skips_a_bypassed_cpu_tier, setup),
        cmocka_unit_test_setup(get_into_never_fails_for_lack_of_cpu_room, setup),
        cmocka_unit_test_setup(batched_get_into_reads_each_tier_as_one_batch, setup),
        cmocka_unit_test_setup(unkept_reads_go_straight_into_the_buffer, setup),
        cmocka_unit_test_setup(put_results_are_honest, setup),
        cmocka_unit_test_setup(unknown_location_names_fail_the_open, setup),
        cmocka_unit_test_setup(get_ok_without_object_is_an_error, setup),
        cmocka_unit_test_setup(full_queue_costs_a_put_at_most_its_timeout, setup),
        cmocka_unit_test_setup(nothing_stored_is_said_at_open, setup),
        cmocka_unit_test_setup(config_notices_are_logged_at_open, setup),
        cmocka_unit_test_setup(breaker_opens_on_failures_and_recovers_by_itself, setup),
        cmocka_unit_test_setup(conf_update_if_refuses_a_stale_version, setup),
        cmocka_unit_test_setup(v1_table_never_gets_v2_slots_called, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
