/* bench_cpu — CPU-tier throughput of kvtier against the machine's memcpy limit.
 *
 * Public API only. For each chunk size it measures memcpy (the ceiling any copy into or
 * out of the CPU tier can reach), kvt_put and kvt_get_into, each as the best of several
 * repetitions over pre-faulted buffers, so the figures show kvtier's own overhead and
 * not page-fault or scheduler noise. Then single-thread zero-copy get rate and a
 * 1,000-key kvt_lookup_prefix against fixed targets.
 *
 * Output: a readable table, then one `name=value` line per figure for scripts. Ratios
 * are named *_ratio_*; 1.0 means "as fast as memcpy" (or "exactly on target").
 *
 * Usage: bench_cpu [--quick]   (--quick: fewer repetitions, for smoke tests) */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <kvtier/kvtier.h>

#define MIB ((size_t)1 << 20)
#define SMALL_CHUNK ((size_t)4096)
#define LOOKUP_KEYS 1000
#define GET_OPS_TARGET 1000000.0 /* zero-copy gets per second, one thread */
#define LOOKUP_US_TARGET 100.0   /* µs per 1,000-key lookup_prefix */

static const size_t sizes_mib[] = {1, 14, 32, 80};
#define NSIZES (sizeof sizes_mib / sizeof sizes_mib[0])

typedef struct result {
    double memcpy_gbps, put_gbps, get_into_gbps;
} result;

static int reps = 10;          /* best-of repetitions per size */
static double rate_secs = 1.0; /* duration of the ops/s loop */
static int lookup_batches = 10;

/* ---------------------------------------------------------------- helpers */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Any failure ends the run: a benchmark that skips errors reports fiction. */
static void check(int rc, const char *what)
{
    if (rc == KVT_OK)
        return;
    fprintf(stderr, "bench_cpu: %s: %s (%s): %s\n", what, kvt_strerror(rc), kvt_status_name(rc),
            kvt_last_error());
    exit(1);
}

/* Page-aligned and written once, so no measurement pays for first-touch faults. */
static unsigned char *buffer(size_t n, int fill)
{
    unsigned char *p = aligned_alloc(4096, n);
    if (p == NULL) {
        fprintf(stderr, "bench_cpu: out of memory for %zu bytes\n", n);
        exit(1);
    }
    memset(p, fill, n);
    return p;
}

static kvt_key key_of(uint64_t hash)
{
    kvt_key k;
    check(kvt_key_init(&k, "bench-model", 1, 0, hash, "bfloat16"), "kvt_key_init");
    return k;
}

/* Distinct hash spaces per phase, so no phase ever finds another's entries. */
static uint64_t hash_for(size_t size_idx, int round, int rep)
{
    return ((uint64_t)(size_idx + 1) << 40) | ((uint64_t)round << 20) | (uint64_t)rep;
}

static double gbps(size_t bytes, double secs) { return (double)bytes / secs / 1e9; }

/* ---------------------------------------------------------------- per-size phases */

/* The machine's limit is the best memcpy seen at this size. It is also timed between
 * the store's reps (time_memcpy), so a noisy moment cannot leave the baseline low and
 * flatter the ratios: the reported ratio is the conservative one. */
static double best_memcpy;

static void time_memcpy(unsigned char *dst, const unsigned char *src, size_t n)
{
    double t0 = now();
    memcpy(dst, src, n);
    double dt = now() - t0;
    if (dt < best_memcpy)
        best_memcpy = dt;
    /* Keep the copies observable so the compiler cannot drop them. */
    if (dst[n / 2] != src[n / 2])
        exit(2);
}

static void bench_memcpy(unsigned char *dst, const unsigned char *src, size_t n)
{
    best_memcpy = 1e30;
    memcpy(dst, src, n); /* warm caches and TLB */
    for (int r = 0; r < reps; r++)
        time_memcpy(dst, src, n);
}

/* Each rep stores a new key: a put of an existing key may legitimately copy nothing.
 * A first untimed round, then cleared, lets the CPU tier fault in its pool pages. */
static double bench_put(kvt_store *s, size_t idx, const unsigned char *src, unsigned char *dst,
                        size_t n)
{
    double best = 1e30;
    for (int round = 0; round < 2; round++) {
        for (int r = 0; r < reps; r++) {
            kvt_key k = key_of(hash_for(idx, round, r));
            double t0 = now();
            check(kvt_put(s, &k, src, n, NULL), "kvt_put");
            double dt = now() - t0;
            if (round == 1 && dt < best)
                best = dt;
            if (round == 1)
                time_memcpy(dst, src, n);
        }
        check(kvt_clear(s, NULL), "kvt_clear");
    }
    return gbps(n, best);
}

static double bench_get_into(kvt_store *s, size_t idx, const unsigned char *src,
                             unsigned char *dst, size_t n)
{
    kvt_key k = key_of(hash_for(idx, 2, 0));
    size_t len = 0;
    double best = 1e30;
    check(kvt_put(s, &k, src, n, NULL), "kvt_put");
    check(kvt_get_into(s, &k, dst, n, &len), "kvt_get_into"); /* warm-up */
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        check(kvt_get_into(s, &k, dst, n, &len), "kvt_get_into");
        double dt = now() - t0;
        if (dt < best)
            best = dt;
        time_memcpy(dst, src, n);
    }
    if (len != n || memcmp(dst, src, n) != 0) {
        fprintf(stderr, "bench_cpu: get_into returned wrong bytes for %zu MiB\n", n / MIB);
        exit(1);
    }
    check(kvt_clear(s, NULL), "kvt_clear");
    return gbps(n, best);
}

/* ---------------------------------------------------------------- small-key phases */

static void put_small_keys(kvt_store *s, kvt_key *keys)
{
    unsigned char *chunk = buffer(SMALL_CHUNK, 0x5a);
    for (size_t i = 0; i < LOOKUP_KEYS; i++) {
        keys[i] = key_of(((uint64_t)0xbe << 48) | i);
        check(kvt_put(s, &keys[i], chunk, SMALL_CHUNK, NULL), "kvt_put (4 KiB)");
    }
    free(chunk);
}

/* Zero-copy get + release round-robin over the small keys, on this thread only. */
static double bench_get_ops(kvt_store *s, const kvt_key *keys)
{
    uint64_t ops = 0;
    double t0 = now(), dt;
    do {
        for (size_t i = 0; i < LOOKUP_KEYS; i++) {
            kvt_obj *o = NULL;
            check(kvt_get(s, &keys[i], &o), "kvt_get");
            if (kvt_obj_size(o) != SMALL_CHUNK) {
                fprintf(stderr, "bench_cpu: kvt_get returned %zu bytes\n", kvt_obj_size(o));
                exit(1);
            }
            kvt_obj_release(o);
        }
        ops += LOOKUP_KEYS;
        dt = now() - t0;
    } while (dt < rate_secs);
    return (double)ops / dt;
}

/* µs per kvt_lookup_prefix() of all LOOKUP_KEYS keys: best batch mean. */
static double bench_lookup(kvt_store *s, const kvt_key *keys)
{
    const int calls = 100;
    double best = 1e30;
    for (int b = 0; b < lookup_batches; b++) {
        double t0 = now();
        for (int c = 0; c < calls; c++) {
            size_t hits = 0;
            check(kvt_lookup_prefix(s, keys, LOOKUP_KEYS, 0, &hits, NULL, 0, NULL),
                  "kvt_lookup_prefix");
            if (hits != LOOKUP_KEYS) {
                fprintf(stderr, "bench_cpu: lookup_prefix hit %zu of %d keys\n", hits,
                        LOOKUP_KEYS);
                exit(1);
            }
        }
        double us = (now() - t0) * 1e6 / calls;
        if (us < best)
            best = us;
    }
    return best;
}

/* ---------------------------------------------------------------- main */

static kvt_store *open_store(void)
{
    kvt_config *cfg = NULL;
    kvt_store *s = NULL;
    /* Warnings and errors only: INFO lines would interleave with the table. */
    kvt_log_handler log = {.fn = NULL, .ud = NULL, .min_level = KVT_LOG_WARN};
    check(kvt_config_new(&cfg), "kvt_config_new");
    check(kvt_config_set(cfg, "max_local_cpu_size", "4"), "kvt_config_set max_local_cpu_size");
    check(kvt_store_open(cfg, &log, &s), "kvt_store_open");
    kvt_config_free(cfg);
    return s;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            reps = 3;
            rate_secs = 0.1;
            lookup_batches = 2;
        } else {
            fprintf(stderr, "usage: %s [--quick]\n", argv[0]);
            return 2;
        }
    }

    kvt_store *s = open_store();
    size_t max = sizes_mib[NSIZES - 1] * MIB;
    unsigned char *src = buffer(max, 0xa5), *dst = buffer(max, 0);
    /* Vary the pages, so a tier that special-cased uniform or zero pages could not flatter itself. */
    for (size_t i = 0; i < max; i += 4096)
        src[i] = (unsigned char)(i >> 12);

    result res[NSIZES];
    for (size_t i = 0; i < NSIZES; i++) {
        size_t n = sizes_mib[i] * MIB;
        bench_memcpy(dst, src, n);
        res[i].put_gbps = bench_put(s, i, src, dst, n);
        res[i].get_into_gbps = bench_get_into(s, i, src, dst, n);
        res[i].memcpy_gbps = gbps(n, best_memcpy);
    }

    kvt_key *keys = calloc(LOOKUP_KEYS, sizeof *keys);
    if (keys == NULL) {
        fprintf(stderr, "bench_cpu: out of memory\n");
        return 1;
    }
    put_small_keys(s, keys);
    double get_ops = bench_get_ops(s, keys);
    double lookup_us = bench_lookup(s, keys);

    printf("kvtier %s CPU tier (GB/s = 1e9 bytes/s, best of %d)\n", kvt_version(), reps);
    printf("%8s %12s %12s %8s %12s %8s\n", "size", "memcpy", "put", "ratio", "get_into",
           "ratio");
    for (size_t i = 0; i < NSIZES; i++) {
        const result *r = &res[i];
        printf("%5zuMiB %12.2f %12.2f %8.2f %12.2f %8.2f\n", sizes_mib[i], r->memcpy_gbps,
               r->put_gbps, r->put_gbps / r->memcpy_gbps, r->get_into_gbps,
               r->get_into_gbps / r->memcpy_gbps);
    }
    printf("zero-copy get: %.0f ops/s (target %.0f)\n", get_ops, GET_OPS_TARGET);
    printf("lookup_prefix of %d keys: %.2f us (target %.0f us)\n\n", LOOKUP_KEYS, lookup_us,
           LOOKUP_US_TARGET);

    for (size_t i = 0; i < NSIZES; i++) {
        const result *r = &res[i];
        size_t m = sizes_mib[i];
        printf("memcpy_gbps_%zuMiB=%.3f\n", m, r->memcpy_gbps);
        printf("put_gbps_%zuMiB=%.3f\n", m, r->put_gbps);
        printf("put_ratio_%zuMiB=%.3f\n", m, r->put_gbps / r->memcpy_gbps);
        printf("get_into_gbps_%zuMiB=%.3f\n", m, r->get_into_gbps);
        printf("get_into_ratio_%zuMiB=%.3f\n", m, r->get_into_gbps / r->memcpy_gbps);
    }
    printf("get_ops_per_sec=%.0f\n", get_ops);
    printf("get_ops_ratio_target=%.3f\n", get_ops / GET_OPS_TARGET);
    printf("lookup_1000_us=%.3f\n", lookup_us);
    printf("lookup_ratio_target=%.3f\n", LOOKUP_US_TARGET / lookup_us);

    free(keys);
    free(src);
    free(dst);
    check(kvt_store_close(s), "kvt_store_close");
    return 0;
}
