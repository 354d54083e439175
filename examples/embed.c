/* kvtier-embed — kvtier embedded the way an inference engine uses it.
 *
 * Simulates requests that share prefixes (one system prompt, a few users, follow-up
 * turns). For each request it hashes the tokens into chained chunk keys, asks the store
 * how many leading chunks are cached (pinning them), reads those back (verifying every
 * byte), "computes" the rest and stores them. Then it prints per-tier hits, misses,
 * occupancy and evictions, says why reuse dropped when it did, and the throughput of the
 * puts and gets as ratios to this machine's memcpy, measured in the same run. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <kvtier/kvtier.h>

#define SYSTEM_TOKENS 2048
#define TURN_TOKENS 768
#define MAX_TOKENS 8192
#define CPU_TIER "LocalCPUBackend"
#define FLUSH_TIMEOUT_MS 10000
#define STEADY_MIN 16                  /* puts past the first fill that make a figure */
#define STEADY_PUTS 64                 /* puts timed by the extra steady-state phase */
#define WARMUP_LIMIT (4ull << 30)      /* largest CPU tier the warm-up fills */

static const char usage[] =
    "Usage: kvtier-embed [--requests N] [--kv-bytes-per-token N] [--help]\n"
    "\n"
    "Serves N simulated requests (default 24) that share prefixes through a kvtier store:\n"
    "each one looks up its cached prefix, reads it back (every byte verified), computes\n"
    "and stores the rest. Prints what each request reused, per-tier counters, why reuse\n"
    "dropped (CPU tier evictions) and put/get throughput as ratios to memcpy.\n"
    "\n"
    "  --requests N            requests to serve, 1..10000 (default 24)\n"
    "  --kv-bytes-per-token N  KV cache bytes per token, 1..1048576 (default 8192:\n"
    "                          a chunk of 256 tokens is 2 MiB)\n"
    "  -h, --help              this text\n"
    "\n"
    "Config: $LMCACHE_CONFIG_FILE and LMCACHE_* variables, as for any kvtier program.\n"
    "Without either of LMCACHE_CONFIG_FILE and LMCACHE_MAX_LOCAL_CPU_SIZE the CPU tier is\n"
    "128 MiB, small on purpose, so that eviction shows.\n";

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Exits with the failed call's status and detail (read at once: later calls replace it). */
static void die(const char *what, int rc)
{
    const char *name = kvt_status_name(rc);
    fprintf(stderr, "kvtier-embed: %s: %s (%s)\n", what, name, kvt_last_error());
    exit(1);
}

static void check(int rc, const char *what)
{
    if (rc != KVT_OK)
        die(what, rc);
}

static long parse_num(const char *opt, const char *v, long lo, long hi)
{
    char *end;
    errno = 0;
    long x = v ? strtol(v, &end, 10) : 0;
    if (!v || errno || end == v || *end || x < lo || x > hi) {
        fprintf(stderr, "kvtier-embed: %s needs a number in %ld..%ld, got \"%s\"\n\n%s", opt, lo,
                hi, v ? v : "", usage);
        exit(2);
    }
    return x;
}

/* The "KV cache" of a chunk: bytes derived from its hash, so reads can be verified. */
static void synth_kv(unsigned char *buf, size_t len, uint64_t hash)
{
    uint64_t x = hash | 1;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        memcpy(buf + i, &x, 8);
    }
    for (; i < len; i++)
        buf[i] = (unsigned char)(x >> (8 * (i % 8)));
}

/* Request r: the shared system prompt, then user (r % 4)'s history, then turn-specific
 * tokens, so requests share prefixes of different lengths. */
static size_t make_request(int r, int32_t *tokens)
{
    size_t n = 0;
    for (int i = 0; i < SYSTEM_TOKENS; i++)
        tokens[n++] = 1000 + i;
    int user = r % 4, turn = r / 4;
    for (int t = 0; t <= turn && n + TURN_TOKENS <= MAX_TOKENS; t++)
        for (int i = 0; i < TURN_TOKENS; i++)
            tokens[n++] = 50000 + user * 10000 + t * TURN_TOKENS + i;
    return n;
}

/* The chunks this program stored so far (open addressing; 0 marks a free slot, so hash
 * 0 is kept aside). A request's "expected" reuse is its longest prefix in this set: what
 * it would reuse had nothing been evicted. */
struct hset {
    uint64_t *slot;
    size_t cap, n;
    bool zero;
};

static bool hset_has(const struct hset *h, uint64_t x)
{
    if (x == 0)
        return h->zero;
    if (h->cap == 0)
        return false;
    for (size_t i = (size_t)(x * 0x9e3779b97f4a7c15ull) & (h->cap - 1);; i = (i + 1) & (h->cap - 1))
        if (h->slot[i] == x)
            return true;
        else if (h->slot[i] == 0)
            return false;
}

static void hset_add(struct hset *h, uint64_t x)
{
    if (x == 0) {
        h->zero = true;
        return;
    }
    if (2 * (h->n + 1) > h->cap) {
        struct hset g = {calloc(h->cap ? 2 * h->cap : 1024, sizeof(uint64_t)),
                         h->cap ? 2 * h->cap : 1024, 0, h->zero};
        if (!g.slot)
            die("allocate the chunk set", KVT_ENOMEM);
        for (size_t i = 0; i < h->cap; i++)
            if (h->slot[i])
                hset_add(&g, h->slot[i]);
        free(h->slot);
        *h = g;
    }
    size_t i = (size_t)(x * 0x9e3779b97f4a7c15ull) & (h->cap - 1);
    while (h->slot[i] != 0 && h->slot[i] != x)
        i = (i + 1) & (h->cap - 1);
    if (h->slot[i] == 0)
        h->slot[i] = x, h->n++;
}

struct demo {
    kvt_store *s;
    size_t chunk_tokens, chunk_bytes, max_chunks;
    unsigned char *buf, *want;
    uint64_t *hashes;
    kvt_key *keys;
    struct hset known;
    uint64_t cpu_capacity;   /* bytes; 0 without a CPU tier */
    double fill_s, put_s, get_s; /* puts split: the first cpu_capacity bytes, then the rest */
    uint64_t fill_bytes, put_bytes, get_bytes, chunks_hit, chunks_stored, chunks_lost, bad, vanished;
};

static void serve(struct demo *d, int r)
{
    static int32_t tokens[MAX_TOKENS];
    size_t ntok = make_request(r, tokens), n = 0, hits = 0;
    check(kvt_hash_tokens(tokens, ntok, d->chunk_tokens, false, d->hashes, d->max_chunks, &n),
          "hash tokens");
    for (size_t i = 0; i < n; i++)
        check(kvt_key_init(&d->keys[i], "demo/llama-3-8b", 1, 0, d->hashes[i], "bfloat16"), "key");
    size_t expected = 0;
    while (expected < n && hset_has(&d->known, d->hashes[expected]))
        expected++;

    /* Pinned: the hits stay in the store until read (another thread's puts could evict
     * them otherwise); kvt_unpin drops exactly these pins. */
    kvt_pin *pin = NULL;
    check(kvt_lookup_prefix(d->s, d->keys, n, &hits, NULL, 0, NULL, &pin), "lookup");
    for (size_t i = 0; i < hits; i++) {
        size_t len = 0;
        double t0 = now();
        int rc = kvt_get_into(d->s, &d->keys[i], d->buf, d->chunk_bytes, &len);
        d->get_s += now() - t0;
        if (rc == KVT_ENOENT) { /* not with a pin held; recompute from here if it happens */
            d->vanished++;
            hits = i;
            break;
        }
        check(rc, "get");
        synth_kv(d->want, d->chunk_bytes, d->hashes[i]);
        d->bad += len != d->chunk_bytes || memcmp(d->buf, d->want, d->chunk_bytes) != 0;
        d->get_bytes += len;
    }
    check(kvt_unpin(d->s, pin), "unpin");

    for (size_t i = hits; i < n; i++) {
        synth_kv(d->buf, d->chunk_bytes, d->hashes[i]); /* the engine's prefill would produce this */
        double t0 = now();
        int rc = kvt_put(d->s, &d->keys[i], d->buf, d->chunk_bytes, NULL);
        double dt = now() - t0;
        check(rc, "put");
        if (d->fill_bytes < d->cpu_capacity) /* the pool's pages are touched the first time */
            d->fill_s += dt, d->fill_bytes += d->chunk_bytes;
        else
            d->put_s += dt, d->put_bytes += d->chunk_bytes;
        hset_add(&d->known, d->hashes[i]);
    }
    size_t lost = expected > hits ? expected - hits : 0;
    d->chunks_hit += hits;
    d->chunks_stored += n - hits;
    d->chunks_lost += lost;
    printf("request %2d  tokens %5zu  chunks %2zu  reused %2zu  computed %2zu", r, ntok, n, hits,
           n - hits);
    if (lost)
        printf("  (%zu were stored, then evicted)", lost);
    putchar('\n');
}

/* The machine's own copy speed, for scale: one chunk copied into each of 32 buffers
 * (64 MiB and more, beyond the caches, as the store's pool is), best of three passes. */
static double memcpy_gbps(const unsigned char *src, size_t len)
{
    enum { NBUF = 32 };
    unsigned char *dst[NBUF];
    double best = 1e30;
    for (int i = 0; i < NBUF; i++)
        if (!(dst[i] = malloc(len)) || !memset(dst[i], 1, len))
            die("allocate buffers", KVT_ENOMEM);
    for (int pass = 0; pass < 3; pass++) {
        double t0 = now();
        for (int i = 0; i < NBUF; i++)
            memcpy(dst[i], src, len);
        double dt = now() - t0;
        if (dt < best)
            best = dt;
    }
    for (int i = 0; i < NBUF; i++)
        free(dst[i]);
    return (double)len * NBUF / best / 1e9;
}

static void print_tiers(kvt_store *s)
{
    kvt_backend_info bk[KVT_MAX_BACKENDS];
    size_t n = 0;
    check(kvt_backends_list(s, bk, KVT_MAX_BACKENDS, &n), "list backends");
    printf("\n%-18s %-8s %8s %8s %8s %10s %10s\n", "tier", "state", "hits", "misses", "chunks",
           "MiB used", "evictions");
    for (size_t i = 0; i < n && i < KVT_MAX_BACKENDS; i++) {
        kvt_backend_stats st;
        check(kvt_backend_get_stats(s, bk[i].name, &st), "backend stats");
        printf("%-18s %-8s %8llu %8llu %8llu %10.1f %10llu\n", bk[i].name,
               bk[i].state == KVT_BACKEND_ACTIVE ? "active" : "draining",
               (unsigned long long)st.hits, (unsigned long long)st.misses,
               (unsigned long long)st.objects, (double)st.bytes_used / (1 << 20),
               (unsigned long long)st.evictions);
    }
}

/* Why reuse dropped, from the CPU tier's own counters. */
static void explain_reuse(const struct demo *d)
{
    kvt_backend_stats st;
    int rc = kvt_backend_get_stats(d->s, CPU_TIER, &st);
    if (rc == KVT_ENOENT)
        return; /* no CPU tier in this config */
    check(rc, "CPU tier stats");
    double stored_mib = (double)d->chunks_stored * (double)d->chunk_bytes / (1 << 20);
    double cap_mib = (double)st.capacity_bytes / (1 << 20);
    if (st.evictions == 0) {
        printf("no evictions: the CPU tier (%.0f MiB) still holds every chunk stored (%.0f MiB)\n",
               cap_mib, stored_mib);
        return;
    }
    printf("reuse dropped by eviction: %s (%.0f MiB, max_local_cpu_size) evicted %llu chunks, "
           "oldest first, to take the %.0f MiB stored; %llu chunks were computed again\n",
           CPU_TIER, cap_mib, (unsigned long long)st.evictions, stored_mib,
           (unsigned long long)d->chunks_lost);
}

/* Put throughput once the CPU tier's pool has filled once, for runs whose requests did
 * not fill it: every buffer it hands out then has been used before (no page faults), and
 * each put evicts an old chunk. Warm-up puts fill the tier until it evicts, then
 * STEADY_PUTS puts are timed. */
static void steady_put(struct demo *d, double limit)
{
    kvt_backend_stats st;
    int rc = kvt_backend_get_stats(d->s, CPU_TIER, &st);
    if (rc == KVT_ENOENT) {
        printf("put, steady state    skipped: no %s in this config\n", CPU_TIER);
        return;
    }
    check(rc, "CPU tier stats");
    if (st.capacity_bytes > WARMUP_LIMIT) {
        printf("put, steady state    skipped: the CPU tier (%.1f GiB) is larger than the "
               "warm-up fills (%.1f GiB)\n",
               (double)st.capacity_bytes / (1 << 30), (double)WARMUP_LIMIT / (1 << 30));
        return;
    }
    uint64_t ev0 = st.evictions, h = 1;
    size_t warmup_max = (size_t)(st.capacity_bytes / d->chunk_bytes) + 8, warmup = 0;
    kvt_key k;
    while (warmup < warmup_max) {
        check(kvt_key_init(&k, "demo/steady-state", 1, 0, h++, "bfloat16"), "key");
        synth_kv(d->buf, d->chunk_bytes, h);
        check(kvt_put(d->s, &k, d->buf, d->chunk_bytes, NULL), "warm-up put");
        warmup++;
        check(kvt_backend_get_stats(d->s, CPU_TIER, &st), "CPU tier stats");
        if (st.evictions > ev0)
            break;
    }
    double t = 0;
    for (int i = 0; i < STEADY_PUTS; i++) {
        check(kvt_key_init(&k, "demo/steady-state", 1, 0, h++, "bfloat16"), "key");
        synth_kv(d->buf, d->chunk_bytes, h);
        double t0 = now();
        rc = kvt_put(d->s, &k, d->buf, d->chunk_bytes, NULL);
        t += now() - t0;
        check(rc, "steady-state put");
    }
    if (t > 0 && limit > 0)
        printf("put, steady state    %.2f x memcpy  (%d puts into the full, warmed-up CPU tier, "
               "each evicting an old chunk; %zu warm-up puts first)\n",
               (double)d->chunk_bytes * STEADY_PUTS / t / 1e9 / limit, STEADY_PUTS, warmup);
}

int main(int argc, char **argv)
{
    int requests = 24;
    size_t kv_per_token = 8192;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(usage, stdout);
            return 0;
        } else if (strcmp(argv[i], "--requests") == 0) {
            requests = (int)parse_num(argv[i], argv[i + 1], 1, 10000);
            i++;
        } else if (strcmp(argv[i], "--kv-bytes-per-token") == 0) {
            kv_per_token = (size_t)parse_num(argv[i], argv[i + 1], 1, 1 << 20);
            i++;
        } else {
            fprintf(stderr, "kvtier-embed: unknown argument \"%s\"\n\n%s", argv[i], usage);
            return 2;
        }
    }

    kvt_config *cfg = NULL;
    check(kvt_config_from_sources(NULL, &cfg), "config");
    if (!getenv("LMCACHE_CONFIG_FILE") && !getenv("LMCACHE_MAX_LOCAL_CPU_SIZE"))
        check(kvt_config_set(cfg, "max_local_cpu_size", "0.125"), "config max_local_cpu_size");
    int64_t chunk_tokens = 0;
    check(kvt_config_get_int(cfg, "chunk_size", &chunk_tokens), "config chunk_size");

    struct demo d = {0};
    d.chunk_tokens = (size_t)chunk_tokens;
    d.chunk_bytes = d.chunk_tokens * kv_per_token;
    d.max_chunks = MAX_TOKENS / d.chunk_tokens + 1;
    kvt_log_handler log = {.fn = NULL, .min_level = KVT_LOG_WARN};
    check(kvt_store_open(cfg, &log, &d.s), "open store");
    kvt_config_free(cfg);
    kvt_backend_stats cpu;
    int rc = kvt_backend_get_stats(d.s, CPU_TIER, &cpu);
    if (rc != KVT_ENOENT)
        check(rc, "CPU tier stats");
    d.cpu_capacity = rc == KVT_OK ? cpu.capacity_bytes : 0;
    printf("kvtier %s: %d requests, %zu-token chunks of %.1f MiB\n\n", kvt_version(), requests,
           d.chunk_tokens, (double)d.chunk_bytes / (1 << 20));

    d.buf = malloc(d.chunk_bytes);
    d.want = malloc(d.chunk_bytes);
    d.hashes = calloc(d.max_chunks, sizeof *d.hashes);
    d.keys = calloc(d.max_chunks, sizeof *d.keys);
    if (!d.buf || !d.want || !d.hashes || !d.keys)
        die("allocate buffers", KVT_ENOMEM);
    for (int r = 0; r < requests; r++)
        serve(&d, r);
    check(kvt_flush(d.s, FLUSH_TIMEOUT_MS), "flush");

    print_tiers(d.s);
    printf("\nchunks reused %llu, computed %llu, corrupt reads %llu\n",
           (unsigned long long)d.chunks_hit, (unsigned long long)d.chunks_stored,
           (unsigned long long)d.bad);
    if (d.vanished)
        printf("%llu pinned hits were gone when read (a bug: pins keep them)\n",
               (unsigned long long)d.vanished);
    explain_reuse(&d);

    double limit = memcpy_gbps(d.buf, d.chunk_bytes);
    printf("\n");
    if (d.fill_s > 0 && limit > 0)
        printf("put, first fill      %.2f x memcpy  (the first %.0f MiB stored: the fresh pool's "
               "pages fault in on first use)\n",
               (double)d.fill_bytes / d.fill_s / 1e9 / limit, (double)d.fill_bytes / (1 << 20));
    if (d.put_bytes >= STEADY_MIN * d.chunk_bytes && d.put_s > 0 && limit > 0)
        printf("put, steady state    %.2f x memcpy  (the other %.0f MiB: the CPU tier is full, "
               "each put evicts an old chunk)\n",
               (double)d.put_bytes / d.put_s / 1e9 / limit, (double)d.put_bytes / (1 << 20));
    else
        steady_put(&d, limit);
    if (d.get_s > 0 && limit > 0)
        printf("get                  %.2f x memcpy  (lookup hits copied out with kvt_get_into)\n",
               (double)d.get_bytes / d.get_s / 1e9 / limit);
    printf("memcpy here          %.2f GB/s\n", limit);

    check(kvt_store_close(d.s), "close store");
    free(d.buf);
    free(d.want);
    free(d.hashes);
    free(d.keys);
    free(d.known.slot);
    return d.bad || d.vanished ? 1 : 0;
}
