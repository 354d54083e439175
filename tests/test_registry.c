/* Registry operations and their error cases: LMCache's list/close/create/recreate
 * behaviours at the C level, plus kvtier's stricter rules (recreate keeps the tier
 * position, LocalCPU cannot be closed under its dependants, create is all or nothing). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "testkit.h"

static int setup(void **state)
{
    tk_register();
    tk_reset(&tk_a);
    tk_reset(&tk_b);
    atomic_store(&tk_a.wanted, true);
    atomic_store(&tk_b.wanted, true);
    kvt_config *cfg = tk_config(4.0);
    kvt_store *s = NULL;
    assert_int_equal(kvt_store_open(cfg, &tk_quiet, &s), KVT_OK);
    kvt_config_free(cfg);
    *state = s;
    return 0;
}

static int teardown(void **state)
{
    tk_gate(&tk_a, true, false); /* a failed test may leave a call parked */
    tk_gate(&tk_b, true, false);
    kvt_store_close(*state);
    assert_int_equal(atomic_load(&tk_a.live), 0);
    assert_int_equal(atomic_load(&tk_b.live), 0);
    return 0;
}

/* "A,B,C" of the current tier order. */
static const char *order(kvt_store *s)
{
    static char buf[256];
    kvt_backend_info bk[KVT_MAX_BACKENDS];
    size_t n = 0;
    assert_int_equal(kvt_backends_list(s, bk, KVT_MAX_BACKENDS, &n), KVT_OK);
    buf[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(bk[i].name, bk[i].class_name);
        strcat(buf, i ? "," : "");
        strcat(buf, bk[i].name);
    }
    return buf;
}

static void list_gives_names_in_tier_order(void **state)
{
    assert_string_equal(order(*state), "LocalCPUBackend,TestTierA,TestTierB");
    kvt_backend_info one;
    size_t n = 0;
    assert_int_equal(kvt_backends_list(*state, &one, 1, &n), KVT_OK);
    assert_int_equal(n, 3); /* the count even when `max` is smaller */
    assert_string_equal(one.name, "LocalCPUBackend");
}

/* Puts chunks 1..n of 512 bytes. */
static void put_chunks(kvt_store *s, uint64_t n)
{
    unsigned char buf[512];
    for (uint64_t h = 1; h <= n; h++) {
        kvt_key k = tk_key(h);
        tk_fill(buf, sizeof buf, h);
        assert_int_equal(kvt_put(s, &k, buf, sizeof buf, NULL), KVT_OK);
    }
}

static void close_removes_and_drains(void **state)
{
    kvt_store *s = *state;
    atomic_store(&tk_a.put_delay_us, 1000);
    put_chunks(s, 8);
    assert_int_equal(kvt_backend_close(s, "TestTierA"), KVT_OK);
    /* Returned only after the queue was written out and the instance destroyed. */
    assert_int_equal(tk_count(&tk_a), 8);
    assert_int_equal(atomic_load(&tk_a.live), 0);
    assert_string_equal(order(s), "LocalCPUBackend,TestTierB");
}

static void *close_b(void *arg)
{
    assert_int_equal(kvt_backend_close_timed(arg, "TestTierB", -1, 0), KVT_OK);
    return NULL;
}

/* Deterministic: TestTierB's first write parks at its gate, so its close is certainly
 * draining while the flush runs; the flush returns only once the queue is written. */
static void flush_waits_for_a_tier_closing_meanwhile(void **state)
{
    kvt_store *s = *state;
    tk_gate(&tk_b, true, true);
    put_chunks(s, 10);
    tk_wait_parked(&tk_b, true, 1);
    pthread_t t;
    pthread_create(&t, NULL, close_b, s);
    kvt_backend_info bk[4];
    size_t n = 0;
    do { /* until the close has unpublished it */
        assert_int_equal(kvt_backends_list(s, bk, 4, &n), KVT_OK);
    } while (bk[n - 1].state != KVT_BACKEND_DRAINING);
    assert_int_equal(kvt_flush(s, 20), KVT_ETIMEDOUT);
    assert_non_null(strstr(kvt_last_error(), "TestTierB"));
    tk_gate(&tk_b, true, false);
    assert_int_equal(kvt_flush(s, -1), KVT_OK);
    assert_int_equal(tk_count(&tk_b), 10);
    pthread_join(t, NULL);
}

static void set_timeouts(kvt_store *s, const char *queue_ms, const char *close_ms)
{
    const char *keys[] = {"write_queue_timeout_ms", "backend_close_timeout_ms"};
    const char *vals[] = {queue_ms, close_ms};
    assert_int_equal(kvt_store_conf_update(s, 2, keys, vals, NULL), KVT_OK);
}

/* A hung tier: its close times out on time, it stays DRAINING (listed, with its items
 * left), no new instance of it is created, and everything else keeps working. */
static void timed_close_of_a_hung_tier_leaves_it_draining(void **state)
{
    kvt_store *s = *state;
    set_timeouts(s, "0", "50");
    tk_gate(&tk_a, true, true);
    put_chunks(s, 3); /* one parked in the write, two queued */
    tk_wait_parked(&tk_a, true, 1);
    double t0 = tk_now_ms();
    assert_int_equal(kvt_backend_close(s, "TestTierA"), KVT_ETIMEDOUT);
    double took = tk_now_ms() - t0;
    assert_true(took >= 45 && took < 2000);
    assert_non_null(strstr(kvt_last_error(), "still draining"));
    kvt_backend_info bk[4];
    size_t n = 0;
    assert_int_equal(kvt_backends_list(s, bk, 4, &n), KVT_OK);
    assert_int_equal(n, 3);
    assert_string_equal(bk[1].name, "TestTierA");
    assert_int_equal(bk[1].state, KVT_BACKEND_DRAINING);
    assert_int_equal(bk[1].pending, 3);
    assert_int_equal(bk[0].state, KVT_BACKEND_ACTIVE);
    /* Meanwhile: registry ops, remove, flush of other tiers, config, puts all proceed. */
    assert_int_equal(kvt_backends_create(s, NULL, 0, NULL), KVT_EBUSY);
    assert_non_null(strstr(kvt_last_error(), "TestTierA is still draining"));
    assert_int_equal(kvt_backend_set_bypass(s, "TestTierB", true, NULL), KVT_OK);
    assert_int_equal(kvt_backend_set_bypass(s, "TestTierB", false, NULL), KVT_OK);
    kvt_key k9 = tk_key(9);
    assert_int_equal(kvt_remove(s, &k9, NULL), KVT_OK);
    set_timeouts(s, "0", "50");
    assert_int_equal(kvt_backend_recreate(s, "TestTierB"), KVT_OK);
    put_chunks(s, 2);
    kvt_backend_stats st;
    assert_int_equal(kvt_backend_get_stats(s, "TestTierA", &st), KVT_OK);
    assert_int_equal(st.queued, 3);
    /* A second close resumes the wait; once the call returns, the queue is written. */
    tk_gate(&tk_a, true, false);
    assert_int_equal(kvt_backend_close_timed(s, "TestTierA", -1, 0), KVT_OK);
    assert_int_equal(tk_count(&tk_a), 3);
    assert_int_equal(atomic_load(&tk_a.live), 0);
    assert_string_equal(order(s), "LocalCPUBackend,TestTierB");
    assert_int_equal(kvt_backend_close(s, "TestTierA"), KVT_ENOENT);
    size_t made = 0;
    assert_int_equal(kvt_backends_create(s, NULL, 0, &made), KVT_OK);
    assert_int_equal(made, 1);
}

/* KVT_CLOSE_FORCE drops what is queued (counted failed) and frees the instance as soon
 * as the call inside it returns. */
static void forced_close_abandons_the_queue(void **state)
{
    kvt_store *s = *state;
    set_timeouts(s, "0", "10000");
    tk_gate(&tk_a, true, true);
    put_chunks(s, 4);
    tk_wait_parked(&tk_a, true, 1);
    kvt_store_stats before, after;
    assert_int_equal(kvt_flush(s, 0), KVT_ETIMEDOUT);
    assert_int_equal(kvt_store_get_stats(s, &before), KVT_OK);
    assert_int_equal(kvt_backend_close_timed(s, "TestTierA", 30, KVT_CLOSE_FORCE), KVT_ETIMEDOUT);
    assert_int_equal(atomic_load(&tk_a.live), 1); /* the hung put is still inside */
    kvt_backend_info bk[4];
    size_t n = 0;
    assert_int_equal(kvt_backends_list(s, bk, 4, &n), KVT_OK);
    assert_int_equal(bk[1].state, KVT_BACKEND_DRAINING);
    assert_int_equal(bk[1].pending, 1); /* only the write in progress is left */
    tk_gate(&tk_a, true, false);
    alarm(20);
    while (n == 3) /* nobody waits: the worker frees it when the call returns */
        assert_int_equal(kvt_backends_list(s, bk, 4, &n), KVT_OK);
    alarm(0);
    assert_int_equal(atomic_load(&tk_a.live), 0);
    assert_int_equal(tk_count(&tk_a), 1);
    assert_int_equal(kvt_flush(s, -1), KVT_OK);
    assert_int_equal(kvt_store_get_stats(s, &after), KVT_OK);
    assert_int_equal(after.wt_failed - before.wt_failed, 3);
    assert_int_equal(after.wt_enqueued, after.wt_done + after.wt_failed + after.wt_cancelled);
}

/* Recreate goes through the same timed close: a hung tier is not replaced. */
static void recreate_of_a_hung_tier_times_out(void **state)
{
    kvt_store *s = *state;
    set_timeouts(s, "0", "20");
    tk_gate(&tk_a, true, true);
    put_chunks(s, 1);
    tk_wait_parked(&tk_a, true, 1);
    assert_int_equal(kvt_backend_recreate(s, "TestTierA"), KVT_ETIMEDOUT);
    assert_int_equal(atomic_load(&tk_a.created), 1);
    assert_int_equal(kvt_backend_recreate(s, "TestTierA"), KVT_ETIMEDOUT); /* resumes, still hung */
    tk_gate(&tk_a, true, false);
    set_timeouts(s, "0", "10000");
    alarm(20);
    while (atomic_load(&tk_a.live) != 0) /* closes by itself once the call returns */
        usleep(1000);
    alarm(0);
    size_t made = 0;
    assert_int_equal(kvt_backends_create(s, NULL, 0, &made), KVT_OK);
    assert_int_equal(made, 1);
    assert_int_equal(atomic_load(&tk_a.created), 2);
    assert_string_equal(order(s), "LocalCPUBackend,TestTierA,TestTierB");
}

struct relog {
    kvt_store *s;
    int calls;
};

static void list_from_log(void *ud, kvt_log_level level, const char *component, const char *msg)
{
    struct relog *r = ud;
    (void)level, (void)component, (void)msg;
    size_t n = 0;
    if (r->s && kvt_backends_list(r->s, NULL, 0, &n) == KVT_OK)
        r->calls++;
}

/* A log handler may call back into kvtier: no line is emitted under a kvtier lock, not
 * even those a backend logs while it is created. alarm() turns a deadlock into a failure. */
static void log_handler_may_call_back_into_kvtier(void **state)
{
    (void)state;
    struct relog r = {NULL, 0};
    kvt_log_handler h = {.fn = list_from_log, .ud = &r, .min_level = KVT_LOG_DEBUG};
    kvt_config *cfg = tk_config(4.0);
    kvt_store *s = NULL;
    atomic_store(&tk_a.wanted, false);
    atomic_store(&tk_b.wanted, false);
    alarm(20);
    assert_int_equal(kvt_store_open(cfg, &h, &s), KVT_OK);
    kvt_config_free(cfg);
    r.s = s;
    assert_int_equal(kvt_backend_recreate(s, "LocalCPUBackend"), KVT_OK); /* logs in create */
    atomic_store(&tk_a.wanted, true);
    assert_int_equal(kvt_backends_create(s, NULL, 0, NULL), KVT_OK);
    assert_int_equal(kvt_backend_close(s, "TestTierA"), KVT_OK);
    assert_true(r.calls >= 4);
    r.s = NULL;
    kvt_store_close(s);
    alarm(0);
}

static void close_unknown_is_not_found(void **state)
{
    assert_int_equal(kvt_backend_close(*state, "RemoteBackend"), KVT_ENOENT);
    assert_string_equal(kvt_last_error(), "Backend RemoteBackend not found");
    assert_string_equal(order(*state), "LocalCPUBackend,TestTierA,TestTierB");
}

static void create_skips_existing_backends(void **state)
{
    kvt_store *s = *state;
    kvt_backend_info made[4];
    size_t n = 99;
    assert_int_equal(kvt_backends_create(s, made, 4, &n), KVT_OK);
    assert_int_equal(n, 0);
    assert_int_equal(atomic_load(&tk_a.created), 1);
    assert_int_equal(kvt_backend_close(s, "TestTierA"), KVT_OK);
    assert_int_equal(kvt_backends_create(s, made, 4, &n), KVT_OK);
    assert_int_equal(n, 1);
    assert_string_equal(made[0].name, "TestTierA");
    /* Back at its tier position, not appended. */
    assert_string_equal(order(s), "LocalCPUBackend,TestTierA,TestTierB");
}

static void create_follows_config_changes(void **state)
{
    kvt_store *s = *state;
    assert_int_equal(kvt_backend_close(s, "TestTierB"), KVT_OK);
    atomic_store(&tk_b.wanted, false); /* as if the config no longer asked for it */
    size_t n = 9;
    assert_int_equal(kvt_backends_create(s, NULL, 0, &n), KVT_OK);
    assert_int_equal(n, 0);
    assert_string_equal(order(s), "LocalCPUBackend,TestTierA");
}

static void recreate_keeps_tier_position(void **state)
{
    kvt_store *s = *state;
    assert_int_equal(kvt_backend_recreate(s, "TestTierA"), KVT_OK);
    assert_string_equal(order(s), "LocalCPUBackend,TestTierA,TestTierB");
    assert_int_equal(atomic_load(&tk_a.created), 2);
    assert_int_equal(atomic_load(&tk_a.destroyed), 1);
    assert_int_equal(atomic_load(&tk_b.created), 1); /* no other backend touched */
}

static void recreate_unknown_is_not_found(void **state)
{
    assert_int_equal(kvt_backend_recreate(*state, "GdsBackend"), KVT_ENOENT);
    assert_string_equal(order(*state), "LocalCPUBackend,TestTierA,TestTierB");
}

static void recreate_failure_leaves_the_slot_empty(void **state)
{
    kvt_store *s = *state;
    atomic_store(&tk_a.fail_create, KVT_EIO);
    assert_int_equal(kvt_backend_recreate(s, "TestTierA"), KVT_EIO);
    assert_string_equal(order(s), "LocalCPUBackend,TestTierB");
    atomic_store(&tk_a.fail_create, 0);
    assert_int_equal(kvt_backends_create(s, NULL, 0, NULL), KVT_OK);
    assert_string_equal(order(s), "LocalCPUBackend,TestTierA,TestTierB");
}

static void closing_cpu_under_dependants_is_refused(void **state)
{
    kvt_store *s = *state;
    assert_int_equal(kvt_backend_close(s, "LocalCPUBackend"), KVT_EBUSY);
    assert_string_equal(kvt_last_error(), "Backend LocalCPUBackend is in use by TestTierA, TestTierB");
    assert_int_equal(kvt_backend_recreate(s, "LocalCPUBackend"), KVT_EBUSY);
    assert_string_equal(order(s), "LocalCPUBackend,TestTierA,TestTierB");
    assert_int_equal(kvt_backend_close(s, "TestTierA"), KVT_OK);
    assert_int_equal(kvt_backend_close(s, "TestTierB"), KVT_OK);
    assert_int_equal(kvt_backend_close(s, "LocalCPUBackend"), KVT_OK);
    assert_string_equal(order(s), "");
}

static void create_is_all_or_nothing(void **state)
{
    kvt_store *s = *state;
    assert_int_equal(kvt_backend_close(s, "TestTierA"), KVT_OK);
    assert_int_equal(kvt_backend_close(s, "TestTierB"), KVT_OK);
    atomic_store(&tk_b.fail_create, KVT_EIO);
    size_t n = 9;
    assert_int_equal(kvt_backends_create(s, NULL, 0, &n), KVT_EIO);
    assert_int_equal(n, 0);
    assert_string_equal(order(s), "LocalCPUBackend"); /* TestTierA was rolled back */
    assert_int_equal(atomic_load(&tk_a.live), 0);
}

/* Every built-in tier is built now, so an open fails for a tier only when its create
 * does: the open returns that status, no store, and nothing it built stays open. */
static void store_open_fails_when_a_tier_cannot_be_created(void **state)
{
    (void)state;
    kvt_config *cfg = tk_config(4.0);
    kvt_store *s = (kvt_store *)0x1;
    long live_a = atomic_load(&tk_a.live), live_b = atomic_load(&tk_b.live);
    atomic_store(&tk_b.fail_create, KVT_EIO);
    assert_int_equal(kvt_store_open(cfg, &tk_quiet, &s), KVT_EIO);
    assert_null(s);
    atomic_store(&tk_b.fail_create, 0);
    assert_int_equal(atomic_load(&tk_a.live), live_a); /* TestTierA was built, then undone */
    assert_int_equal(atomic_load(&tk_b.live), live_b);
    kvt_config_free(cfg);
}

static void dependant_tier_without_cpu_is_refused(void **state)
{
    (void)state;
    kvt_config *cfg = tk_config(0.0);
    kvt_store *s = NULL;
    tk_register();
    atomic_store(&tk_a.wanted, true);
    assert_int_equal(kvt_store_open(cfg, &tk_quiet, &s), KVT_ECONFIG);
    assert_non_null(strstr(kvt_last_error(), "TestTierA needs LocalCPUBackend"));
    kvt_config_free(cfg);
}

static void bypass_list_follows_bypass(void **state)
{
    kvt_store *s = *state;
    kvt_backend_info bk[4];
    size_t n = 9;
    assert_int_equal(kvt_backend_set_bypass(s, "TestTierB", true, NULL), KVT_OK);
    assert_int_equal(kvt_bypass_list(s, bk, 4, &n), KVT_OK);
    assert_int_equal(n, 1);
    assert_string_equal(bk[0].name, "TestTierB");
    /* The bypass is by name: it survives a recreate. */
    assert_int_equal(kvt_backend_recreate(s, "TestTierB"), KVT_OK);
    assert_int_equal(kvt_bypass_list(s, bk, 4, &n), KVT_OK);
    assert_int_equal(n, 1);
}

static void type_registration_rejects_bad_tables(void **state)
{
    (void)state;
    struct kvt_backend_ops t = tk_a_ops;
    assert_int_equal(kvt_register_backend_type(&tk_a_ops), KVT_EEXIST);
    t.type_name = "LocalCPUBackend";
    assert_int_equal(kvt_register_backend_type(&t), KVT_EEXIST);
    t.type_name = "Future";
    t.abi_version = KVT_BACKEND_ABI_VERSION + 1;
    assert_int_equal(kvt_register_backend_type(&t), KVT_EINVAL);
    t.abi_version = KVT_BACKEND_ABI_VERSION;
    t.struct_size = offsetof(struct kvt_backend_ops, get);
    assert_int_equal(kvt_register_backend_type(&t), KVT_EINVAL);
    t.struct_size = sizeof t;
    t.get = NULL;
    assert_int_equal(kvt_register_backend_type(&t), KVT_EINVAL);
    t.get = tk_a_ops.get;
    t.type_name = "bad name/with slash";
    assert_int_equal(kvt_register_backend_type(&t), KVT_EINVAL);
}

static void runtime_config_update_is_validated_and_atomic(void **state)
{
    kvt_store *s = *state;
    const char *keys[] = {"blocking_timeout_secs", "chunk_size"};
    const char *vals[] = {"20", "512"};
    size_t bad = 9;
    assert_int_equal(kvt_store_conf_update(s, 2, keys, vals, &bad), KVT_ECONFIG);
    assert_int_equal(bad, 1);
    assert_non_null(strstr(kvt_last_error(), "Config is not mutable at runtime"));
    kvt_config *cfg = NULL;
    int64_t v = 0;
    assert_int_equal(kvt_store_conf_dup(s, &cfg), KVT_OK);
    assert_int_equal(kvt_config_get_int(cfg, "blocking_timeout_secs", &v), KVT_OK);
    assert_int_equal(v, 10); /* untouched */
    kvt_config_free(cfg);
    assert_int_equal(kvt_store_conf_update(s, 1, keys, vals, NULL), KVT_OK);
    assert_int_equal(kvt_store_conf_dup(s, &cfg), KVT_OK);
    assert_int_equal(kvt_config_get_int(cfg, "blocking_timeout_secs", &v), KVT_OK);
    assert_int_equal(v, 20);
    kvt_config_free(cfg);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(list_gives_names_in_tier_order),
        T(close_removes_and_drains),
        T(flush_waits_for_a_tier_closing_meanwhile),
        T(timed_close_of_a_hung_tier_leaves_it_draining),
        T(forced_close_abandons_the_queue),
        T(recreate_of_a_hung_tier_times_out),
        T(log_handler_may_call_back_into_kvtier),
        T(close_unknown_is_not_found),
        T(create_skips_existing_backends),
        T(create_follows_config_changes),
        T(recreate_keeps_tier_position),
        T(recreate_unknown_is_not_found),
        T(recreate_failure_leaves_the_slot_empty),
        T(closing_cpu_under_dependants_is_refused),
        T(create_is_all_or_nothing),
        T(bypass_list_follows_bypass),
        T(runtime_config_update_is_validated_and_atomic),
        T(store_open_fails_when_a_tier_cannot_be_created),
        cmocka_unit_test(dependant_tier_without_cpu_is_refused),
        cmocka_unit_test(type_registration_rejects_bad_tables),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
