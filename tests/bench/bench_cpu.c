/* bench_cpu — CPU-tier cost of kvtier against the machine's own memcpy limit.
 *
 * Public API only. Built for a shared, noisy machine: every figure is the median of many
 * short trials, printed with the min and max over the trials, and every ratio pairs a
 * kvtier trial with a baseline trial taken right next to it (the two alternate which
 * goes first), so a noisy moment hits both sides of one trial instead of skewing the
 * comparison.
 *
 *  1. Copy paths, per chunk size (LMCache chunks are 2-80 MiB). The baseline is memcpy of
 *     the same size into a warm (pre-faulted) destination; ratio = t(memcpy) / t(kvtier),
 *     so 1.0 means "as fast as one memcpy":
 *       put        kvt_put of a new key (copies; the tier is full, so it also evicts)
 *       put_obj    zero-copy put: kvt_obj_alloc + fill + kvt_put_obj. The fill is the
 *                  engine's one copy (GPU -> pool), so the ratio shows what the store adds
 *                  on top of one copy.
 *       get_into   kvt_get_into of a stored chunk; baseline copies the same stored bytes
 *       batched    kvt_batched_get_into of BATCH chunks vs BATCH memcpys of the same
 *                  stored bytes into the same destinations
 *     A 2 MiB memcpy into one warm buffer runs from the last-level cache, which no store
 *     can do (each chunk gets its own pool buffer: the one the oldest chunk gave up), so
 *     put and put_obj are also compared with memcpy into a cold destination, cycling over
 *     COLD_BYTES of pre-faulted buffers (*_colddst_ratio_*): that one is the store's
 *     own overhead.
 *  2. kvt_lookup_prefix of 1,000 keys (µs) and zero-copy kvt_get + release (ns), absolute.
 *  3. Eviction cost vs pinned / held entries (issue 6 §3): full CPU tiers of 4 KiB chunks
 *     (1 GiB = 262,144 chunks), with 0, 10,000 or 200,000 of their oldest entries pinned
 *     by one kvt_lookup_prefix(..., &pin), or 200,000 held as kvt_get references. Each
 *     timed kvt_put stores a new 4 KiB chunk and evicts exactly one (checked, as are the
 *     survival of every pinned/held entry and the unpin). The 0-pinned tier stays open
 *     and is paired with each other tier in turn (peak memory: two tiers); the two
 *     alternate inside every trial and ratio = cost(N) / cost(0) per trial, so it should
 *     stay ~1.0 however many entries are pinned or held.
 *
 * Output: a readable table, then one `name=median min=.. max=..` line per figure.
 * Any kvtier failure ends the run with a non-zero exit: a benchmark that skips errors
 * reports fiction.
 *
 * Usage: bench_cpu [--quick]   (--quick: small sizes and few trials, for the smoke test) */
#include <inttypes.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <kvtier/kvtier.h>

#define KIB ((size_t)1 << 10)
#define MIB ((size_t)1 << 20)
#define GIB_F (1024.0 * 1024.0 * 1024.0)
#define SMALL_CHUNK ((size_t)4096)
#define LOOKUP_KEYS 1000
#define BATCH 16
#define COLD_BYTES (64 * MIB) /* > the last-level cache (32 MiB on the reference box) */
#define MAX_TRIALS 64
#define CPU_TIER "LocalCPUBackend"

/* Compiler barrier: the copies into dst must happen, in order, inside the timed region. */
#define BARRIER() __asm__ volatile("" ::: "memory")

typedef struct mode {
    int trials;                 /* per figure; odd, so the median is one trial */
    const size_t *sizes;        /* copy-path chunk sizes */
    size_t nsizes;
    size_t bytes_per_trial;     /* copy-path ops per trial: max(1, this / size) */
    size_t tier_chunks;         /* 4 KiB chunks the eviction bench's tiers hold */
    size_t pinned[3];           /* 0, medium, large */
    size_t puts_per_trial;      /* eviction bench: puts per store per trial, at most */
    double put_trial_budget;    /* ... or this many seconds, whichever comes first */
} mode;

static const size_t full_sizes[] = {2 * MIB, 32 * MIB};
static const size_t quick_sizes[] = {256 * KIB, 2 * MIB};

static const mode full_mode = {
    .trials = 31,
    .sizes = full_sizes,
    .nsizes = 2,
    .bytes_per_trial = 8 * MIB,
    .tier_chunks = 262144, /* 1 GiB of 4 KiB chunks: 200,000 pinned + 62,144 evictable */
    .pinned = {0, 10000, 200000},
    .puts_per_trial = 1000,
    .put_trial_budget = 0.025,
};

static const mode quick_mode = {
    .trials = 5,
    .sizes = quick_sizes,
    .nsizes = 2,
    .bytes_per_trial = 2 * MIB,
    .tier_chunks = 4096, /* 16 MiB */
    .pinned = {0, 256, 3072},
    .puts_per_trial = 200,
    .put_trial_budget = 0.01,
};

static const mode *M = &full_mode;

/* ---------------------------------------------------------------- helpers */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

__attribute__((format(printf, 1, 2), noreturn)) static void die(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "bench_cpu: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

static void check(int rc, const char *what)
{
    if (rc == KVT_OK)
        return;
    fprintf(stderr, "bench_cpu: %s: %s (%s): %s\n", what, kvt_strerror(rc), kvt_status_name(rc),
            kvt_last_error());
    exit(1);
}

static void *xalloc(size_t n)
{
    void *p = calloc(1, n);
    if (p == NULL)
        die("out of memory for %zu bytes", n);
    return p;
}

/* Page-aligned and written once, so no measurement pays for first-touch faults. */
static unsigned char *buffer(size_t n, int fill)
{
    unsigned char *p = aligned_alloc(4096, (n + 4095) & ~(size_t)4095);
    if (p == NULL)
        die("out of memory for %zu bytes", n);
    memset(p, fill, n);
    return p;
}

/* Varied pages, so a tier that special-cased uniform or zero pages could not flatter itself. */
static void vary(unsigned char *p, size_t n, uint64_t seed)
{
    for (size_t i = 0; i < n; i += 4096)
        memcpy(p + i, &seed, sizeof seed), seed++;
}

static kvt_key key_template;

/* A copy of a kvt_key_init()-built key with another hash: unused bytes stay zero. */
static kvt_key key_of(uint64_t hash)
{
    kvt_key k = key_template;
    k.chunk_hash = hash;
    return k;
}

static const char *size_label(size_t n, char *buf, size_t cap)
{
    if (n % MIB == 0)
        snprintf(buf, cap, "%zuMiB", n / MIB);
    else
        snprintf(buf, cap, "%zuKiB", n / KIB);
    return buf;
}

static kvt_store *open_store(double gib)
{
    kvt_config *cfg = NULL;
    kvt_store *s = NULL;
    char v[64];
    /* Warnings and errors only: INFO lines would interleave with the table. */
    kvt_log_handler log = {.fn = NULL, .ud = NULL, .min_level = KVT_LOG_WARN};
    snprintf(v, sizeof v, "%.17g", gib);
    check(kvt_config_new(&cfg), "kvt_config_new");
    check(kvt_config_set(cfg, "max_local_cpu_size", v), "kvt_config_set max_local_cpu_size");
    check(kvt_store_open(cfg, &log, &s), "kvt_store_open");
    kvt_config_free(cfg);
    return s;
}

static kvt_backend_stats cpu_stats(kvt_store *s)
{
    kvt_backend_stats st;
    check(kvt_backend_get_stats(s, CPU_TIER, &st), "kvt_backend_get_stats");
    return st;
}

/* ---------------------------------------------------------------- statistics */

typedef struct stat3 {
    double med, min, max;
} stat3;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static stat3 summarize(const double *v, int n)
{
    double tmp[3 * MAX_TRIALS];
    memcpy(tmp, v, (size_t)n * sizeof *v);
    qsort(tmp, (size_t)n, sizeof *tmp, cmp_double);
    stat3 r = {n % 2 ? tmp[n / 2] : (tmp[n / 2 - 1] + tmp[n / 2]) / 2, tmp[0], tmp[n - 1]};
    return r;
}

static void print_line(const char *name, stat3 s, const char *fmt)
{
    char line[256];
    int k = snprintf(line, sizeof line, "%s=", name);
    k += snprintf(line + k, sizeof line - (size_t)k, fmt, s.med);
    k += snprintf(line + k, sizeof line - (size_t)k, " min=");
    k += snprintf(line + k, sizeof line - (size_t)k, fmt, s.min);
    k += snprintf(line + k, sizeof line - (size_t)k, " max=");
    snprintf(line + k, sizeof line - (size_t)k, fmt, s.max);
    puts(line);
}

/* ---------------------------------------------------------------- copy paths */

typedef struct copy_ctx {
    kvt_store *s;
    size_t n, ops; /* chunk size, ops per trial */
    const unsigned char *src;
    unsigned char *dst;
    unsigned char **cold; /* ncold pre-faulted destinations, together >= COLD_BYTES */
    size_t ncold, next_cold;
    uint64_t next_hash; /* new keys for puts */
    kvt_key keys[BATCH]; /* stored chunks for the gets */
    unsigned char *bufs[BATCH];
    size_t caps[BATCH], lens[BATCH];
    int statuses[BATCH];
} copy_ctx;

typedef double (*trial_fn)(copy_ctx *c); /* seconds for one trial's work */

/* memcpy of c->ops chunks from the caller's source into a warm destination. */
static double base_memcpy(copy_ctx *c)
{
    double t0 = now();
    for (size_t i = 0; i < c->ops; i++) {
        memcpy(c->dst, c->src, c->n);
        BARRIER();
    }
    return now() - t0;
}

/* memcpy into a different pre-faulted destination each time, cycling over more memory
 * than the last-level cache holds: what a put into the pool (each chunk its own buffer,
 * the one the oldest chunk just gave up) can reach at best. */
static double base_memcpy_cold(copy_ctx *c)
{
    double t0 = now();
    for (size_t i = 0; i < c->ops; i++) {
        memcpy(c->cold[c->next_cold], c->src, c->n);
        BARRIER();
        c->next_cold = (c->next_cold + 1) % c->ncold;
    }
    return now() - t0;
}

static double run_put(copy_ctx *c)
{
    kvt_key keys[64];
    size_t ops = c->ops < 64 ? c->ops : 64;
    for (size_t i = 0; i < ops; i++)
        keys[i] = key_of(c->next_hash++);
    double t0 = now();
    for (size_t i = 0; i < ops; i++)
        check(kvt_put(c->s, &keys[i], c->src, c->n, NULL), "kvt_put");
    return now() - t0;
}

static double run_put_obj(copy_ctx *c)
{
    kvt_key keys[64];
    size_t ops = c->ops < 64 ? c->ops : 64;
    for (size_t i = 0; i < ops; i++)
        keys[i] = key_of(c->next_hash++);
    double t0 = now();
    for (size_t i = 0; i < ops; i++) {
        kvt_obj *o = NULL;
        check(kvt_obj_alloc(c->s, c->n, NULL, &o), "kvt_obj_alloc");
        void *p = kvt_obj_data_mut(o);
        if (p == NULL)
            check(KVT_EINVAL, "kvt_obj_data_mut of a fresh object");
        memcpy(p, c->src, c->n); /* the engine's copy (GPU -> pool) */
        BARRIER();
        int rc = kvt_put_obj(c->s, &keys[i], o);
        kvt_obj_release(o);
        check(rc, "kvt_put_obj");
    }
    return now() - t0;
}

/* memcpy of the stored bytes of keys[0..nkeys) (references taken and dropped untimed). */
static double base_stored(copy_ctx *c, size_t nkeys, size_t reps)
{
    kvt_obj *objs[BATCH];
    for (size_t j = 0; j < nkeys; j++)
        check(kvt_get(c->s, &c->keys[j], &objs[j]), "kvt_get");
    double t0 = now();
    for (size_t r = 0; r < reps; r++)
        for (size_t j = 0; j < nkeys; j++) {
            memcpy(c->bufs[j], kvt_obj_data(objs[j]), c->n);
            BARRIER();
        }
    double dt = now() - t0;
    for (size_t j = 0; j < nkeys; j++)
        kvt_obj_release(objs[j]);
    return dt;
}

static double base_get_into(copy_ctx *c) { return base_stored(c, 1, c->ops); }
static double base_batched(copy_ctx *c) { return base_stored(c, BATCH, 1); }

static double run_get_into(copy_ctx *c)
{
    size_t len = 0;
    double t0 = now();
    for (size_t i = 0; i < c->ops; i++)
        check(kvt_get_into(c->s, &c->keys[0], c->bufs[0], c->n, &len), "kvt_get_into");
    double dt = now() - t0;
    if (len != c->n)
        die("kvt_get_into returned %zu of %zu bytes", len, c->n);
    return dt;
}

static double run_batched(copy_ctx *c)
{
    size_t hits = 0;
    double t0 = now();
    check(kvt_batched_get_into(c->s, BATCH, c->keys, (void *const *)c->bufs, c->caps, c->lens,
                               c->statuses, &hits),
          "kvt_batched_get_into");
    double dt = now() - t0;
    for (size_t j = 0; j < BATCH; j++) {
        check(c->statuses[j], "kvt_batched_get_into (per-key status)");
        if (c->lens[j] != c->n)
            die("kvt_batched_get_into returned %zu of %zu bytes", c->lens[j], c->n);
    }
    if (hits != BATCH)
        die("kvt_batched_get_into hit %zu of %d keys", hits, BATCH);
    return dt;
}

typedef struct copy_result {
    stat3 ratio;
    double base_gbps, kvt_gbps; /* medians, for the table */
} copy_result;

/* M->trials trials; each runs the baseline and kvtier back to back, alternating which
 * goes first. ratio = t(base) / t(kvtier). */
static copy_result interleave(copy_ctx *c, trial_fn base, trial_fn kvt, size_t bytes)
{
    double ratio[MAX_TRIALS], bg[MAX_TRIALS], kg[MAX_TRIALS];
    base(c); /* untimed warm-up of both sides */
    kvt(c);
    for (int t = 0; t < M->trials; t++) {
        double tb, tk;
        if (t % 2 == 0) {
            tb = base(c);
            tk = kvt(c);
        } else {
            tk = kvt(c);
            tb = base(c);
        }
        ratio[t] = tb / tk;
        bg[t] = (double)bytes / tb / 1e9;
        kg[t] = (double)bytes / tk / 1e9;
    }
    copy_result r = {summarize(ratio, M->trials), summarize(bg, M->trials).med,
                     summarize(kg, M->trials).med};
    return r;
}

enum { B_PUT, B_PUT_OBJ, B_GET_INTO, B_BATCHED, B_PUT_COLD, B_PUT_OBJ_COLD, NBENCH };
static const char *const bench_names[NBENCH] = {"put",      "put_obj",         "get_into",
                                                "batched_get_into", "put_colddst",
                                                "put_obj_colddst"};

static void bench_size(size_t n, const unsigned char *src, unsigned char *dst, size_t idx,
                       copy_result out[NBENCH])
{
    /* Room for BATCH chunks plus slack; puts of new keys keep the tier full and evicting. */
    size_t slots = BATCH + 4;
    kvt_store *s = open_store((double)(slots * n) / GIB_F);
    copy_ctx *c = xalloc(sizeof *c);
    c->s = s;
    c->n = n;
    c->ops = M->bytes_per_trial / n ? M->bytes_per_trial / n : 1;
    if (c->ops > 64)
        c->ops = 64;
    c->src = src;
    c->dst = dst;
    c->next_hash = ((uint64_t)(idx + 1) << 48);

    /* Fill the tier past its capacity untimed, so every pool buffer is faulted in and the
     * timed puts run in steady state (each evicts the oldest chunk and reuses its buffer). */
    for (size_t i = 0; i < slots + 2; i++) {
        kvt_key k = key_of(c->next_hash++);
        check(kvt_put(s, &k, src, n, NULL), "kvt_put (warm-up)");
    }
    c->ncold = (COLD_BYTES + n - 1) / n;
    if (c->ncold < 2)
        c->ncold = 2;
    c->cold = xalloc(c->ncold * sizeof *c->cold);
    for (size_t j = 0; j < c->ncold; j++)
        c->cold[j] = buffer(n, 0);
    out[B_PUT] = interleave(c, base_memcpy, run_put, c->ops * n);
    out[B_PUT_OBJ] = interleave(c, base_memcpy, run_put_obj, c->ops * n);
    out[B_PUT_COLD] = interleave(c, base_memcpy_cold, run_put, c->ops * n);
    out[B_PUT_OBJ_COLD] = interleave(c, base_memcpy_cold, run_put_obj, c->ops * n);
    for (size_t j = 0; j < c->ncold; j++)
        free(c->cold[j]);
    free(c->cold);
    if (cpu_stats(s).evictions == 0)
        die("put: no eviction at %zu bytes", n);

    /* Gets: BATCH stored chunks, each with its own warm destination. */
    check(kvt_clear(s, NULL), "kvt_clear");
    for (size_t j = 0; j < BATCH; j++) {
        c->keys[j] = key_of(((uint64_t)0xb0 << 56) | (idx << 8) | j);
        c->bufs[j] = buffer(n, 0);
        c->caps[j] = n;
        vary(c->bufs[j], n, (uint64_t)j << 32); /* stored content differs per chunk */
        check(kvt_put(s, &c->keys[j], c->bufs[j], n, NULL), "kvt_put (gets)");
        memset(c->bufs[j], 0, n);
    }
    out[B_GET_INTO] = interleave(c, base_get_into, run_get_into, c->ops * n);
    out[B_BATCHED] = interleave(c, base_batched, run_batched, (size_t)BATCH * n);

    /* The bytes read back are the bytes stored. */
    memset(c->bufs[0], 0, n);
    check(kvt_get_into(s, &c->keys[0], c->bufs[0], n, NULL), "kvt_get_into (verify)");
    check(kvt_batched_get_into(s, BATCH, c->keys, (void *const *)c->bufs, c->caps, c->lens,
                               c->statuses, NULL),
          "kvt_batched_get_into (verify)");
    for (size_t j = 0; j < BATCH; j++) {
        unsigned char *want = buffer(n, 0);
        vary(want, n, (uint64_t)j << 32);
        check(c->statuses[j], "kvt_batched_get_into (verify status)");
        if (memcmp(want, c->bufs[j], n) != 0)
            die("batched_get_into: chunk %zu of %zu bytes reads back wrong", j, n);
        free(want);
        free(c->bufs[j]);
    }
    free(c);
    check(kvt_store_close(s), "kvt_store_close");
}

/* ---------------------------------------------------------------- lookup and get */

typedef struct small_result {
    stat3 lookup_us, get_ns;
} small_result;

static small_result bench_small(void)
{
    const int lookups_per_trial = 10, gets_rounds = 2;
    kvt_store *s = open_store(64.0 * (double)MIB / GIB_F);
    kvt_key *keys = xalloc(LOOKUP_KEYS * sizeof *keys);
    unsigned char *chunk = buffer(SMALL_CHUNK, 0x5a);
    double lu[MAX_TRIALS], gn[MAX_TRIALS];

    for (size_t i = 0; i < LOOKUP_KEYS; i++) {
        keys[i] = key_of(((uint64_t)0xbe << 48) | i);
        memcpy(chunk, &i, sizeof i);
        check(kvt_put(s, &keys[i], chunk, SMALL_CHUNK, NULL), "kvt_put (4 KiB)");
    }
    for (int t = -1; t < M->trials; t++) { /* t = -1: warm-up */
        double t0 = now();
        for (int c = 0; c < lookups_per_trial; c++) {
            size_t hits = 0;
            check(kvt_lookup_prefix(s, keys, LOOKUP_KEYS, &hits, NULL, 0, NULL, NULL),
                  "kvt_lookup_prefix");
            if (hits != LOOKUP_KEYS)
                die("kvt_lookup_prefix hit %zu of %d keys", hits, LOOKUP_KEYS);
        }
        double t1 = now();
        for (int r = 0; r < gets_rounds; r++)
            for (size_t i = 0; i < LOOKUP_KEYS; i++) {
                kvt_obj *o = NULL;
                check(kvt_get(s, &keys[i], &o), "kvt_get");
                if (kvt_obj_size(o) != SMALL_CHUNK)
                    die("kvt_get returned %zu of %zu bytes", kvt_obj_size(o), SMALL_CHUNK);
                kvt_obj_release(o);
            }
        double t2 = now();
        if (t >= 0) {
            lu[t] = (t1 - t0) * 1e6 / lookups_per_trial;
            gn[t] = (t2 - t1) * 1e9 / (gets_rounds * LOOKUP_KEYS);
        }
    }
    small_result r = {summarize(lu, M->trials), summarize(gn, M->trials)};
    free(chunk);
    free(keys);
    check(kvt_store_close(s), "kvt_store_close");
    return r;
}

/* ---------------------------------------------------------------- eviction vs pinned/held */

enum { E_PIN0, E_PIN1, E_PIN2, E_HELD, NEVICT };

typedef struct evict_store {
    kvt_store *s;
    size_t pinned, held;
    kvt_pin *pin;
    kvt_obj **objs;
    uint64_t next_hash, puts, evictions0; /* puts: every put since setup, warm-ups too */
    double us[MAX_TRIALS];
} evict_store;

static void evict_setup(evict_store *e, const kvt_key *old, unsigned char *chunk)
{
    size_t n = M->tier_chunks;
    e->s = open_store((double)(n * SMALL_CHUNK) / GIB_F);
    kvt_backend_stats st = cpu_stats(e->s);
    if (st.capacity_bytes < n * SMALL_CHUNK)
        die("evict setup: CPU tier holds %" PRIu64 " bytes, want %zu", st.capacity_bytes,
            n * SMALL_CHUNK);
    /* Fill the tier exactly; old[0..] are the oldest, those get pinned or held. */
    for (size_t i = 0; i < n; i++) {
        memcpy(chunk, &i, sizeof i);
        check(kvt_put(e->s, &old[i], chunk, SMALL_CHUNK, NULL), "kvt_put (fill)");
    }
    st = cpu_stats(e->s);
    if (st.evictions != 0 || st.objects != n)
        die("evict setup: filling evicted %" PRIu64 " chunks (holds %" PRIu64 ")", st.evictions,
            st.objects);
    if (e->pinned) {
        size_t hits = 0;
        check(kvt_lookup_prefix(e->s, old, e->pinned, &hits, NULL, 0, NULL, &e->pin),
              "kvt_lookup_prefix (pin)");
        if (hits != e->pinned || e->pin == NULL)
            die("kvt_lookup_prefix pinned %zu of %zu keys", hits, e->pinned);
        if (cpu_stats(e->s).pinned != e->pinned)
            die("pin: tier reports %" PRIu64 " pinned, want %zu", cpu_stats(e->s).pinned, e->pinned);
    }
    if (e->held) {
        e->objs = xalloc(e->held * sizeof *e->objs);
        for (size_t i = 0; i < e->held; i++)
            check(kvt_get(e->s, &old[i], &e->objs[i]), "kvt_get (hold)");
    }
    e->evictions0 = cpu_stats(e->s).evictions;
}

/* One trial on one store: mean µs per kvt_put of a new 4 KiB chunk. */
static double evict_trial(evict_store *e, kvt_key *keys, unsigned char *chunk)
{
    size_t k = M->puts_per_trial, done = 0;
    for (size_t i = 0; i < k; i++)
        keys[i] = key_of(e->next_hash++);
    double t0 = now(), dt = 0;
    while (done < k) {
        memcpy(chunk, &done, sizeof done);
        check(kvt_put(e->s, &keys[done], chunk, SMALL_CHUNK, NULL), "kvt_put (evicting)");
        done++;
        /* A slow store (a walk past every pinned entry) must not stretch the run. */
        if (done % 16 == 0 && (dt = now() - t0) > M->put_trial_budget)
            break;
    }
    dt = now() - t0;
    e->next_hash -= k - done; /* unused keys are reused next trial */
    e->puts += done;
    return dt * 1e6 / (double)done;
}

static void evict_teardown(evict_store *e, const kvt_key *old)
{
    kvt_backend_stats st = cpu_stats(e->s);
    if (st.evictions - e->evictions0 != e->puts)
        die("evict: %" PRIu64 " evictions for %" PRIu64 " puts (each should evict one)",
            st.evictions - e->evictions0, e->puts);
    size_t keep = e->pinned > e->held ? e->pinned : e->held;
    if (keep) {
        size_t hits = 0;
        check(kvt_lookup_prefix(e->s, old, keep, &hits, NULL, 0, NULL, NULL),
              "kvt_lookup_prefix (survivors)");
        if (hits != keep)
            die("evict: %zu of %zu pinned/held chunks survived", hits, keep);
    }
    check(kvt_unpin(e->s, e->pin), "kvt_unpin");
    for (size_t i = 0; i < e->held; i++)
        kvt_obj_release(e->objs[i]);
    free(e->objs);
    if (cpu_stats(e->s).pinned != 0)
        die("evict: %" PRIu64 " pins left after kvt_unpin", cpu_stats(e->s).pinned);
    check(kvt_store_close(e->s), "kvt_store_close");
}

typedef struct evict_result {
    stat3 us[NEVICT];
    stat3 ratio[NEVICT]; /* cost / cost with 0 pinned, per trial */
    size_t n[NEVICT];
    double setup_s;
} evict_result;

/* Peak memory is two tiers: the 0-pinned one stays open and is paired in turn with each
 * other configuration; the trials of a pair alternate which store goes first. */
static evict_result bench_evict(void)
{
    evict_result r;
    evict_store *es = xalloc(NEVICT * sizeof *es);
    size_t nold = M->tier_chunks;
    kvt_key *old = xalloc(nold * sizeof *old);
    kvt_key *keys = xalloc(M->puts_per_trial * sizeof *keys);
    unsigned char *chunk = buffer(SMALL_CHUNK, 0x3c);
    double zero_us[3 * MAX_TRIALS], ratio[MAX_TRIALS];
    int nzero = 0;

    r.setup_s = 0;
    for (size_t i = 0; i < nold; i++)
        old[i] = key_of(((uint64_t)0xa0 << 56) | i);
    for (int j = 0; j < NEVICT; j++) {
        es[j].pinned = j < E_HELD ? M->pinned[j] : 0;
        es[j].held = j == E_HELD ? M->pinned[2] : 0;
        es[j].next_hash = (uint64_t)0xa1 << 56;
        r.n[j] = es[j].pinned + es[j].held;
    }
    evict_store *z = &es[E_PIN0];
    double t0 = now();
    evict_setup(z, old, chunk);
    r.setup_s += now() - t0;
    for (int j = E_PIN1; j < NEVICT; j++) {
        evict_store *x = &es[j];
        t0 = now();
        evict_setup(x, old, chunk);
        r.setup_s += now() - t0;
        evict_trial(z, keys, chunk); /* warm-up, untimed */
        evict_trial(x, keys, chunk);
        for (int t = 0; t < M->trials; t++) {
            double uz, ux;
            if (t % 2 == 0) {
                uz = evict_trial(z, keys, chunk);
                ux = evict_trial(x, keys, chunk);
            } else {
                ux = evict_trial(x, keys, chunk);
                uz = evict_trial(z, keys, chunk);
            }
            x->us[t] = ux;
            zero_us[nzero++] = uz;
            ratio[t] = ux / uz;
        }
        r.us[j] = summarize(x->us, M->trials);
        r.ratio[j] = summarize(ratio, M->trials);
        evict_teardown(x, old);
    }
    evict_teardown(z, old);
    r.us[E_PIN0] = summarize(zero_us, nzero);
    r.ratio[E_PIN0] = (stat3){1, 1, 1};
    free(chunk);
    free(keys);
    free(old);
    free(es);
    return r;
}

/* ---------------------------------------------------------------- main */

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            M = &quick_mode;
        } else {
            fprintf(stderr, "usage: %s [--quick]\n", argv[0]);
            return 2;
        }
    }
#ifdef __GLIBC__
    /* Faults are slow on VMs (~10 us per 4 KiB page here): keep freed heap memory mapped,
     * so a tier opened after another one closed reuses pages already faulted in. */
    mallopt(M_TRIM_THRESHOLD, INT32_MAX);
#endif
    check(kvt_key_init(&key_template, "bench-model", 1, 0, 0, "bfloat16"), "kvt_key_init");
    double t_start = now();

    size_t max = 0;
    for (size_t i = 0; i < M->nsizes; i++)
        if (M->sizes[i] > max)
            max = M->sizes[i];
    unsigned char *src = buffer(max, 0xa5), *dst = buffer(max, 0);
    vary(src, max, 1);

    copy_result cr[8][NBENCH];
    for (size_t i = 0; i < M->nsizes; i++)
        bench_size(M->sizes[i], src, dst, i, cr[i]);
    free(src);
    free(dst);
    small_result sr = bench_small();
    evict_result er = bench_evict();

    char lab[32], name[96];
    printf("kvtier %s CPU tier%s: median of %d interleaved trials [min..max]\n", kvt_version(),
           M == &quick_mode ? " (--quick)" : "", M->trials);
    printf("ratio = t(memcpy) / t(kvtier); 1.00 = as fast as memcpy into a warm buffer\n\n");
    printf("%-20s %8s %12s %12s %8s %16s\n", "op", "size", "memcpy GB/s", "kvtier GB/s",
           "ratio", "[min..max]");
    for (int b = 0; b < NBENCH; b++)
        for (size_t i = 0; i < M->nsizes; i++) {
            const copy_result *x = &cr[i][b];
            char what[40];
            snprintf(what, sizeof what, "%s%s", bench_names[b],
                     b == B_BATCHED ? " x16" : b >= B_PUT_COLD ? "*" : "");
            printf("%-20s %8s %12.2f %12.2f %8.2f %7.2f..%-7.2f\n", what,
                   size_label(M->sizes[i], lab, sizeof lab), x->base_gbps, x->kvt_gbps,
                   x->ratio.med, x->ratio.min, x->ratio.max);
        }
    printf("* baseline: memcpy into a cold destination (cycling over %zu MiB of pre-faulted\n"
           "  buffers, as puts cycle over pool buffers), not one cache-hot buffer\n",
           COLD_BYTES / MIB);
    printf("\nlookup_prefix of %d keys: %.2f us [%.2f..%.2f]\n", LOOKUP_KEYS, sr.lookup_us.med,
           sr.lookup_us.min, sr.lookup_us.max);
    printf("zero-copy get + release (4 KiB): %.0f ns [%.0f..%.0f] = %.0f ops/s\n",
           sr.get_ns.med, sr.get_ns.min, sr.get_ns.max, 1e9 / sr.get_ns.med);
    printf("\nput of a new 4 KiB chunk into a full tier of %zu chunks (each evicts one);\n"
           "the 0-pinned tier is paired with each other one in turn, trials alternating;\n"
           "setup (fills) took %.1f s\n",
           M->tier_chunks, er.setup_s);
    printf("%-24s %10s %18s %8s %16s\n", "entries kept", "us/put", "[min..max]", "vs 0",
           "[min..max]");
    for (int j = 0; j < NEVICT; j++) {
        snprintf(name, sizeof name, "%zu %s", er.n[j], j == E_HELD ? "held" : "pinned");
        printf("%-24s %10.3f %8.3f..%-8.3f %8.2f %7.2f..%-7.2f\n", name, er.us[j].med,
               er.us[j].min, er.us[j].max, er.ratio[j].med, er.ratio[j].min, er.ratio[j].max);
    }
    printf("\n");

    for (int b = 0; b < NBENCH; b++)
        for (size_t i = 0; i < M->nsizes; i++) {
            snprintf(name, sizeof name, "%s_ratio_%s", bench_names[b],
                     size_label(M->sizes[i], lab, sizeof lab));
            print_line(name, cr[i][b].ratio, "%.3f");
        }
    for (size_t i = 0; i < M->nsizes; i++)
        printf("memcpy_gbps_%s=%.3f\n", size_label(M->sizes[i], lab, sizeof lab),
               cr[i][B_PUT].base_gbps);
    print_line("lookup_1000_us", sr.lookup_us, "%.3f");
    print_line("get_ns", sr.get_ns, "%.1f");
    printf("get_ops_per_sec=%.0f\n", 1e9 / sr.get_ns.med);
    for (int j = 0; j < NEVICT; j++) {
        snprintf(name, sizeof name, "put_us_%s_%zu", j == E_HELD ? "held" : "pinned", er.n[j]);
        print_line(name, er.us[j], "%.3f");
    }
    snprintf(name, sizeof name, "put_pinned_ratio_%zu", er.n[E_PIN1]);
    print_line(name, er.ratio[E_PIN1], "%.3f");
    snprintf(name, sizeof name, "put_pinned_ratio_%zu", er.n[E_PIN2]);
    print_line(name, er.ratio[E_PIN2], "%.3f");
    snprintf(name, sizeof name, "put_held_ratio_%zu", er.n[E_HELD]);
    print_line(name, er.ratio[E_HELD], "%.3f");
    printf("bench_seconds=%.1f\n", now() - t_start);
    return 0;
}
