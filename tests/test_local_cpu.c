/* LocalCPUBackend: capacity bound, LRU order, references and pins block eviction,
 * staging-only mode, stats. Driven through the public store API. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "testkit.h"

#define CHUNK (256u * 1024u) /* four fit in 1 MiB */

static kvt_store *open_cpu(double mib, bool store_enabled)
{
    kvt_config *cfg = tk_config(mib);
    kvt_store *s = NULL;
    assert_int_equal(kvt_config_set_bool(cfg, "local_cpu", store_enabled), KVT_OK);
    assert_int_equal(kvt_store_open(cfg, &tk_quiet, &s), KVT_OK);
    kvt_config_free(cfg);
    return s;
}

static void put_n(kvt_store *s, uint64_t first, uint64_t n)
{
    static unsigned char buf[CHUNK];
    for (uint64_t h = first; h < first + n; h++) {
        kvt_key k = tk_key(h);
        tk_fill(buf, sizeof buf, h);
        assert_int_equal(kvt_put(s, &k, buf, sizeof buf, NULL), KVT_OK);
    }
}

static bool stored(kvt_store *s, uint64_t h)
{
    kvt_key k = tk_key(h);
    return kvt_contains(s, &k, NULL) == KVT_OK;
}

static void cpu_stats(kvt_store *s, kvt_backend_stats *st)
{
    assert_int_equal(kvt_backend_get_stats(s, "LocalCPUBackend", st), KVT_OK);
}

static void capacity_bound_evicts_least_recently_used(void **state)
{
    (void)state;
    kvt_store *s = open_cpu(1.0, true);
    put_n(s, 1, 4);
    /* Touch 1: 2 becomes the least recently used. */
    kvt_obj *o;
    kvt_key k1 = tk_key(1);
    assert_int_equal(kvt_get(s, &k1, &o), KVT_OK);
    kvt_obj_release(o);
    put_n(s, 5, 1);
    assert_true(stored(s, 1));
    assert_false(stored(s, 2));
    assert_true(stored(s, 3) && stored(s, 4) && stored(s, 5));
    kvt_backend_stats st;
    cpu_stats(s, &st);
    assert_int_equal(st.objects, 4);
    assert_int_equal(st.bytes_used, 4 * CHUNK);
    assert_true(st.bytes_used <= st.capacity_bytes);
    assert_int_equal(st.capacity_bytes, 1024 * 1024);
    assert_int_equal(st.evictions, 1);
    kvt_store_close(s);
}

static void eviction_never_frees_a_referenced_object(void **state)
{
    (void)state;
    kvt_store *s = open_cpu(1.0, true);
    put_n(s, 1, 4);
    kvt_obj *held[4];
    for (uint64_t h = 1; h <= 4; h++) {
        kvt_key k = tk_key(h);
        assert_int_equal(kvt_get(s, &k, &held[h - 1]), KVT_OK);
    }
    /* Every entry is referenced: a fifth chunk cannot be stored, and nothing is lost. */
    unsigned char buf[64];
    kvt_key k5 = tk_key(5);
    assert_int_equal(kvt_put(s, &k5, buf, sizeof buf, NULL), KVT_ENOMEM);
    assert_non_null(strstr(kvt_last_error(), "LocalCPUBackend is full"));
    for (uint64_t h = 1; h <= 4; h++)
        assert_true(stored(s, h));
    /* Held objects stay readable and intact. */
    unsigned char *want = malloc(CHUNK);
    tk_fill(want, CHUNK, 1);
    assert_memory_equal(kvt_obj_data(held[0]), want, CHUNK);
    /* Releasing one makes exactly that one evictable. */
    kvt_obj_release(held[2]);
    assert_int_equal(kvt_put(s, &k5, buf, sizeof buf, NULL), KVT_OK);
    assert_false(stored(s, 3));
    assert_true(stored(s, 1) && stored(s, 2) && stored(s, 4) && stored(s, 5));
    kvt_obj_release(held[0]);
    kvt_obj_release(held[1]);
    kvt_obj_release(held[3]);
    free(want);
    kvt_store_close(s);
}

static void chunk_larger_than_the_tier_evicts_nothing(void **state)
{
    (void)state;
    kvt_store *s = open_cpu(1.0, true);
    put_n(s, 1, 4);
    size_t big = 2u << 20;
    unsigned char *buf = calloc(1, big);
    kvt_key k = tk_key(99);
    assert_int_equal(kvt_put(s, &k, buf, big, NULL), KVT_ENOMEM);
    for (uint64_t h = 1; h <= 4; h++)
        assert_true(stored(s, h));
    kvt_backend_stats st;
    cpu_stats(s, &st);
    assert_int_equal(st.evictions, 0);
    free(buf);
    kvt_store_close(s);
}

static void pinned_entries_are_not_evicted_until_unpinned(void **state)
{
    (void)state;
    kvt_store *s = open_cpu(1.0, true);
    put_n(s, 1, 4);
    kvt_key keys[2] = {tk_key(1), tk_key(2)};
    size_t hits = 0;
    kvt_pin *pin = NULL;
    assert_int_equal(kvt_lookup_prefix(s, keys, 2, &hits, NULL, 0, NULL, &pin), KVT_OK);
    assert_non_null(pin);
    assert_int_equal(hits, 2);
    kvt_backend_stats st;
    cpu_stats(s, &st);
    assert_int_equal(st.pinned, 2);
    put_n(s, 5, 2); /* must evict 3 and 4, the oldest unpinned */
    assert_true(stored(s, 1) && stored(s, 2));
    assert_false(stored(s, 3) || stored(s, 4));
    assert_int_equal(kvt_unpin(s, pin), KVT_OK);
    cpu_stats(s, &st);
    assert_int_equal(st.pinned, 0);
    put_n(s, 7, 4); /* the lookup used 1 and 2 last: they go after 5 and 6 */
    assert_false(stored(s, 1) || stored(s, 2));
    kvt_store_close(s);
}

static void buffers_are_4096_aligned(void **state)
{
    (void)state;
    kvt_store *s = open_cpu(1.0, true);
    unsigned char buf[100];
    kvt_key k = tk_key(9);
    tk_fill(buf, sizeof buf, 9);
    assert_int_equal(kvt_put(s, &k, buf, sizeof buf, NULL), KVT_OK);
    kvt_obj *o;
    assert_int_equal(kvt_get(s, &k, &o), KVT_OK);
    assert_int_equal((uintptr_t)kvt_obj_data(o) % 4096, 0);
    assert_int_equal(kvt_obj_size(o), sizeof buf);
    assert_memory_equal(kvt_obj_data(o), buf, sizeof buf);
    kvt_obj_release(o);
    kvt_store_close(s);
}

static void staging_only_mode_stores_nothing(void **state)
{
    (void)state;
    kvt_store *s = open_cpu(1.0, false);
    size_t n = 0;
    kvt_backend_info bk[4];
    assert_int_equal(kvt_backends_list(s, bk, 4, &n), KVT_OK);
    assert_int_equal(n, 1); /* it still exists: it lends buffers */
    static unsigned char buf[CHUNK];
    kvt_key k = tk_key(1);
    /* No tier took it: an honest status, not KVT_OK, and not counted as stored. */
    assert_int_equal(kvt_put(s, &k, buf, sizeof buf, NULL), KVT_ENOTIER);
    assert_false(stored(s, 1));
    kvt_store_stats ss;
    assert_int_equal(kvt_store_get_stats(s, &ss), KVT_OK);
    assert_int_equal(ss.stored_chunks, 0);
    assert_int_equal(ss.puts_unstored, 1);
    uint64_t tokens = 99;
    assert_int_equal(kvt_clear(s, &tokens), KVT_OK);
    assert_int_equal(tokens, 0);
    kvt_store_close(s);
}

static void stats_count_hits_and_misses(void **state)
{
    (void)state;
    kvt_store *s = open_cpu(1.0, true);
    put_n(s, 1, 1);
    kvt_obj *o;
    kvt_key k1 = tk_key(1), k2 = tk_key(2);
    assert_int_equal(kvt_get(s, &k1, &o), KVT_OK);
    kvt_obj_release(o);
    assert_int_equal(kvt_get(s, &k2, &o), KVT_ENOENT);
    assert_null(o);
    kvt_backend_stats st;
    cpu_stats(s, &st);
    assert_int_equal(st.hits, 1);
    assert_int_equal(st.misses, 1);
    assert_int_equal(st.puts, 1);
    kvt_store_close(s);
}

static void objects_outlive_a_closed_store(void **state)
{
    (void)state;
    kvt_store *s = open_cpu(1.0, true);
    put_n(s, 1, 1);
    kvt_obj *o;
    kvt_key k1 = tk_key(1);
    assert_int_equal(kvt_get(s, &k1, &o), KVT_OK);
    kvt_store_close(s);
    unsigned char want[CHUNK];
    tk_fill(want, sizeof want, 1);
    assert_memory_equal(kvt_obj_data(o), want, sizeof want);
    kvt_obj_release(o); /* frees the pool last (ASan checks it) */
}

static void reserve_caps_the_pool_below_host_memory(void **state)
{
    (void)state;
    double ram = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
    double gib = 1024.0 * 1024.0 * 1024.0;
    kvt_config *cfg = tk_config(64.0);
    char reserve[64];
    snprintf(reserve, sizeof reserve, "%.9f", (ram - 8.0 * 1024 * 1024) / gib);
    assert_int_equal(kvt_config_set(cfg, "reserve_local_cpu_size", reserve), KVT_OK);
    kvt_store *s = NULL;
    assert_int_equal(kvt_store_open(cfg, &tk_quiet, &s), KVT_OK);
    kvt_backend_stats st;
    cpu_stats(s, &st);
    /* About 8 MiB of host memory is left for the pool, not the 64 MiB asked for. */
    assert_true(st.capacity_bytes > 7u << 20 && st.capacity_bytes < 9u << 20);
    kvt_store_close(s);
    kvt_config_free(cfg);
}


/* B pinned K1; A's handle covers only what A pinned, so A's unpin leaves B's pin. */
static void unpin_drops_only_the_pins_of_its_handle(void **state)
{
    (void)state;
    kvt_store *s = open_cpu(1.0, true);
    put_n(s, 1, 2);
    kvt_key k0 = tk_key(1), k1 = tk_key(2), both[2] = {tk_key(1), tk_key(2)};
    size_t hits = 0;
    kvt_pin *b = NULL, *a = NULL;
    assert_int_equal(kvt_lookup_prefix(s, &k1, 1, &hits, NULL, 0, NULL, &b), KVT_OK);
    assert_int_equal(kvt_lookup_prefix(s, both, 2, &hits, NULL, 0, NULL, NULL), KVT_OK);
    assert_int_equal(kvt_lookup_prefix(s, &k0, 1, &hits, NULL, 0, NULL, &a), KVT_OK);
    assert_int_equal(kvt_unpin(s, a), KVT_OK);
    put_n(s, 3, 4); /* fills the tier: everything unpinned goes */
    assert_true(stored(s, 2));
    assert_false(stored(s, 1));
    assert_int_equal(kvt_unpin(s, b), KVT_OK);
    put_n(s, 7, 4);
    assert_false(stored(s, 2));
    kvt_store_close(s);
}

/* A handle taken before remove + re-put names the old entry: unpin leaves the new one's
 * pin count alone (here: the new entry is pinned by someone else and stays). */
static void stale_pin_handle_does_nothing(void **state)
{
    (void)state;
    kvt_store *s = open_cpu(1.0, true);
    put_n(s, 1, 1);
    kvt_key k = tk_key(1);
    size_t hits = 0, removed = 0;
    kvt_pin *old = NULL, *fresh = NULL;
    assert_int_equal(kvt_lookup_prefix(s, &k, 1, &hits, NULL, 0, NULL, &old), KVT_OK);
    assert_int_equal(kvt_remove(s, &k, &removed), KVT_OK);
    put_n(s, 1, 1);
    assert_int_equal(kvt_lookup_prefix(s, &k, 1, &hits, NULL, 0, NULL, &fresh), KVT_OK);
    assert_int_equal(kvt_unpin(s, old), KVT_OK);
    kvt_backend_stats st;
    cpu_stats(s, &st);
    assert_int_equal(st.pinned, 1);
    put_n(s, 2, 4);
    assert_true(stored(s, 1));
    assert_int_equal(kvt_unpin(s, fresh), KVT_OK);
    assert_int_equal(kvt_lookup_prefix(s, &k, 1, &hits, NULL, 0, NULL, NULL), KVT_OK);
    kvt_store_close(s);
}

/* A lookup that pins nothing hands out no handle. */
static void lookup_without_hits_gives_no_pin_handle(void **state)
{
    (void)state;
    kvt_store *s = open_cpu(1.0, true);
    kvt_key k = tk_key(9);
    size_t hits = 7;
    kvt_pin *pin = (kvt_pin *)&hits;
    assert_int_equal(kvt_lookup_prefix(s, &k, 1, &hits, NULL, 0, NULL, &pin), KVT_OK);
    assert_int_equal(hits, 0);
    assert_null(pin);
    assert_int_equal(kvt_unpin(s, NULL), KVT_OK);
    kvt_store_close(s);
}

/* Objects a caller still holds from a closed CPU tier count against the new one: the
 * budget is the store's, not the instance's. */
static void cpu_budget_holds_across_recreate(void **state)
{
    (void)state;
    kvt_store *s = open_cpu(1.0, true);
    put_n(s, 1, 4);
    kvt_obj *held[4];
    for (uint64_t h = 1; h <= 4; h++) {
        kvt_key k = tk_key(h);
        assert_int_equal(kvt_get(s, &k, &held[h - 1]), KVT_OK);
    }
    assert_int_equal(kvt_backend_recreate(s, "LocalCPUBackend"), KVT_OK);
    static unsigned char buf[CHUNK];
    kvt_key k = tk_key(5);
    assert_int_equal(kvt_put(s, &k, buf, sizeof buf, NULL), KVT_ENOMEM);
    kvt_backend_stats st;
    cpu_stats(s, &st);
    assert_true(st.bytes_used <= st.capacity_bytes);
    for (int i = 0; i < 4; i++)
        kvt_obj_release(held[i]);
    put_n(s, 5, 4);
    kvt_store_close(s);
}

/* Once committed or returned by a get, nobody may write an object's bytes. */
static void shared_objects_are_read_only(void **state)
{
    (void)state;
    kvt_store *s = open_cpu(1.0, true);
    kvt_obj *o = NULL, *got = NULL;
    kvt_key k = tk_key(1);
    assert_int_equal(kvt_obj_alloc(s, CHUNK, NULL, &o), KVT_OK);
    unsigned char *w = kvt_obj_data_mut(o);
    assert_non_null(w);
    assert_int_equal((uintptr_t)w % 4096, 0);
    tk_fill(w, CHUNK, 1);
    assert_int_equal(kvt_put_obj(s, &k, o), KVT_OK);
    assert_null(kvt_obj_data_mut(o));
    assert_int_equal(kvt_get(s, &k, &got), KVT_OK);
    assert_ptr_equal(kvt_obj_data(got), w); /* zero-copy both ways */
    assert_null(kvt_obj_data_mut(got));
    kvt_obj_release(got);
    kvt_obj_release(o);
    kvt_store_close(s);
}

/* One object stored under two keys: the second entry gets a copy, so both stay evictable
 * (one object in two entries was never evictable again: its count never fell to one). */
static void one_object_under_two_keys_stays_evictable(void **state)
{
    (void)state;
    kvt_store *s = open_cpu(1.0, true);
    kvt_obj *o = NULL;
    kvt_key k1 = tk_key(1), k2 = tk_key(2);
    assert_int_equal(kvt_obj_alloc(s, CHUNK, NULL, &o), KVT_OK);
    tk_fill(kvt_obj_data_mut(o), CHUNK, 1);
    assert_int_equal(kvt_put_obj(s, &k1, o), KVT_OK);
    assert_int_equal(kvt_put_obj(s, &k2, o), KVT_OK);
    kvt_obj_release(o);
    kvt_obj *g = NULL;
    assert_int_equal(kvt_get(s, &k2, &g), KVT_OK);
    unsigned char want[CHUNK];
    tk_fill(want, sizeof want, 1);
    assert_memory_equal(kvt_obj_data(g), want, CHUNK);
    kvt_obj_release(g);
    put_n(s, 10, 4); /* the tier holds four: both must be evicted to make room */
    assert_false(stored(s, 1) || stored(s, 2));
    kvt_store_close(s);
}

/* Sizes that cannot be rounded or budgeted fail cleanly (SIZE_MAX used to wrap to a
 * 1-byte buffer and overflow on release). */
static void absurd_sizes_fail_cleanly(void **state)
{
    (void)state;
    kvt_store *s = open_cpu(1.0, true);
    kvt_obj *o = (kvt_obj *)s;
    assert_int_equal(kvt_obj_alloc(s, SIZE_MAX, NULL, &o), KVT_EINVAL);
    assert_null(o);
    assert_int_equal(kvt_obj_alloc(s, SIZE_MAX - 4095, NULL, &o), KVT_ENOMEM);
    assert_int_equal(kvt_obj_alloc(s, 0, NULL, &o), KVT_EINVAL);
    assert_int_equal(kvt_obj_alloc(s, (size_t)2 << 20, NULL, &o), KVT_ENOMEM); /* > tier */
    kvt_key k = tk_key(1);
    unsigned char b = 0;
    assert_int_equal(kvt_put(s, &k, &b, 0, NULL), KVT_EINVAL); /* used to poison the key */
    put_n(s, 1, 1);
    assert_true(stored(s, 1));
    kvt_store_close(s);
}

/* Entries that cannot be evicted cost eviction nothing: with most of the tier pinned or
 * held, puts still evict exactly the unpinned, unheld ones in LRU order. */
static void eviction_skips_pinned_and_held_without_scanning(void **state)
{
    (void)state;
    kvt_config *cfg = tk_config(4.0); /* 1024 chunks of 4 KiB */
    kvt_store *s = NULL;
    assert_int_equal(kvt_store_open(cfg, &tk_quiet, &s), KVT_OK);
    kvt_config_free(cfg);
    unsigned char buf[4096];
    kvt_key keys[1024];
    for (uint64_t h = 0; h < 1024; h++) {
        keys[h] = tk_key(h);
        assert_int_equal(kvt_put(s, &keys[h], buf, sizeof buf, NULL), KVT_OK);
    }
    size_t hits = 0;
    kvt_pin *pin = NULL;
    kvt_obj *held = NULL;
    assert_int_equal(kvt_lookup_prefix(s, keys, 1000, &hits, NULL, 0, NULL, &pin), KVT_OK);
    assert_int_equal(hits, 1000);
    assert_int_equal(kvt_get(s, &keys[1000], &held), KVT_OK);
    for (uint64_t h = 2000; h < 2023; h++) { /* 23 evictable: 1001..1023 */
        kvt_key k = tk_key(h);
        assert_int_equal(kvt_put(s, &k, buf, sizeof buf, NULL), KVT_OK);
    }
    for (uint64_t h = 1001; h < 1024; h++)
        assert_false(stored(s, h));
    assert_true(stored(s, 1000) && stored(s, 0) && stored(s, 999));
    kvt_key k = tk_key(3000), fresh[23];
    kvt_pin *p2 = NULL;
    for (uint64_t h = 2000; h < 2023; h++) /* make the newcomers unevictable too */
        fresh[h - 2000] = tk_key(h);
    assert_int_equal(kvt_lookup_prefix(s, fresh, 23, &hits, NULL, 0, NULL, &p2), KVT_OK);
    assert_int_equal(hits, 23);
    assert_int_equal(kvt_put(s, &k, buf, sizeof buf, NULL), KVT_ENOMEM);
    kvt_obj_release(held);
    assert_int_equal(kvt_put(s, &k, buf, sizeof buf, NULL), KVT_OK); /* 1000 went */
    assert_false(stored(s, 1000));
    assert_int_equal(kvt_unpin(s, pin), KVT_OK);
    assert_int_equal(kvt_unpin(s, p2), KVT_OK);
    kvt_store_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(capacity_bound_evicts_least_recently_used),
        cmocka_unit_test(eviction_never_frees_a_referenced_object),
        cmocka_unit_test(chunk_larger_than_the_tier_evicts_nothing),
        cmocka_unit_test(pinned_entries_are_not_evicted_until_unpinned),
        cmocka_unit_test(buffers_are_4096_aligned),
        cmocka_unit_test(staging_only_mode_stores_nothing),
        cmocka_unit_test(stats_count_hits_and_misses),
        cmocka_unit_test(objects_outlive_a_closed_store),
        cmocka_unit_test(reserve_caps_the_pool_below_host_memory),
        cmocka_unit_test(unpin_drops_only_the_pins_of_its_handle),
        cmocka_unit_test(stale_pin_handle_does_nothing),
        cmocka_unit_test(lookup_without_hits_gives_no_pin_handle),
        cmocka_unit_test(cpu_budget_holds_across_recreate),
        cmocka_unit_test(shared_objects_are_read_only),
        cmocka_unit_test(absurd_sizes_fail_cleanly),
        cmocka_unit_test(one_object_under_two_keys_stays_evictable),
        cmocka_unit_test(eviction_skips_pinned_and_held_without_scanning),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
