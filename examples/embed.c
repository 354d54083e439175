/* kvtier-embed — kvtier embedded the way an inference engine uses it.
 *
 * Simulates requests that share prefixes (one system prompt, a few users, follow-up
 * turns). For each request it hashes the tokens into chained chunk keys, asks the store
 * how many leading chunks are cached, reads those back (verifying every byte), "computes"
 * the rest and stores them. Then it prints per-tier hits, misses and occupancy, and the
 * throughput of the puts and gets it made.
 *
 * Usage: kvtier-embed [--requests N] [--kv-bytes-per-token N]
 * Config: $LMCACHE_CONFIG_FILE and LMCACHE_* variables, as any kvtier program; without
 * them a 128 MiB CPU tier (small, so that eviction shows). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <kvtier/kvtier.h>

#define SYSTEM_TOKENS 2048
#define MAX_TOKENS 8192

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, int rc)
{
    fprintf(stderr, "kvtier-embed: %s: %s (%s)\n", what, kvt_strerror(rc), kvt_last_error());
    exit(1);
}

/* The "KV cache" of a chunk: bytes derived from its hash, so reads can be verified. */
static void synth_kv(unsigned char *buf, size_t len, uint64_t hash)
{
    uint64_t x = hash | 1;
    for (size_t i = 0; i + 8 <= len; i += 8) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        memcpy(buf + i, &x, 8);
    }
}

/* Request r: the shared system prompt, then user (r % 4)'s history, then turn-specific
 * tokens, so requests share prefixes of different lengths. */
static size_t make_request(int r, int32_t *tokens)
{
    size_t n = 0;
    for (int i = 0; i < SYSTEM_TOKENS; i++)
        tokens[n++] = 1000 + i;
    int user = r % 4, turn = r / 4;
    for (int t = 0; t <= turn && n + 768 <= MAX_TOKENS; t++)
        for (int i = 0; i < 768; i++)
            tokens[n++] = 50000 + user * 10000 + t * 768 + i;
    return n;
}

struct totals {
    double put_s, get_s;
    uint64_t put_bytes, get_bytes, chunks_hit, chunks_stored, bad;
};

static void serve(kvt_store *s, int r, size_t chunk_tokens, size_t chunk_bytes, unsigned char *buf,
                  unsigned char *want, struct totals *t)
{
    static int32_t tokens[MAX_TOKENS];
    uint64_t hashes[MAX_TOKENS / 16];
    kvt_key keys[MAX_TOKENS / 16];
    size_t ntok = make_request(r, tokens), nchunks = 0, hits = 0;
    int rc = kvt_hash_tokens(tokens, ntok, chunk_tokens, false, hashes, MAX_TOKENS / 16, &nchunks);
    if (rc != KVT_OK)
        die("hash tokens", rc);
    for (size_t i = 0; i < nchunks; i++)
        if ((rc = kvt_key_init(&keys[i], "demo/llama-3-8b", 1, 0, hashes[i], "bfloat16")) != KVT_OK)
            die("key", rc);
    if ((rc = kvt_lookup_prefix(s, keys, nchunks, 0, &hits, NULL, 0, NULL)) != KVT_OK)
        die("lookup", rc);
    for (size_t i = 0; i < hits; i++) {
        size_t len = 0;
        double t0 = now();
        rc = kvt_get_into(s, &keys[i], buf, chunk_bytes, &len);
        t->get_s += now() - t0;
        if (rc != KVT_OK) {
            hits = i; /* evicted since the lookup: recompute from here */
            break;
        }
        synth_kv(want, chunk_bytes, hashes[i]);
        t->bad += len != chunk_bytes || memcmp(buf, want, chunk_bytes) != 0;
        t->get_bytes += len;
    }
    for (size_t i = hits; i < nchunks; i++) {
        synth_kv(buf, chunk_bytes, hashes[i]); /* the engine's prefill would produce this */
        double t0 = now();
        rc = kvt_put(s, &keys[i], buf, chunk_bytes, NULL);
        t->put_s += now() - t0;
        if (rc != KVT_OK)
            die("put", rc);
        t->put_bytes += chunk_bytes;
    }
    t->chunks_hit += hits;
    t->chunks_stored += nchunks - hits;
    printf("request %2d  tokens %5zu  chunks %2zu  reused %2zu  computed %2zu\n", r, ntok, nchunks,
           hits, nchunks - hits);
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
    kvt_backends_list(s, bk, KVT_MAX_BACKENDS, &n);
    printf("\n%-18s %8s %8s %8s %10s %10s\n", "tier", "hits", "misses", "chunks", "MiB used",
           "evictions");
    for (size_t i = 0; i < n && i < KVT_MAX_BACKENDS; i++) {
        kvt_backend_stats st;
        if (kvt_backend_get_stats(s, bk[i].name, &st) != KVT_OK)
            continue;
        printf("%-18s %8llu %8llu %8llu %10.1f %10llu\n", bk[i].name,
               (unsigned long long)st.hits, (unsigned long long)st.misses,
               (unsigned long long)st.objects, (double)st.bytes_used / (1 << 20),
               (unsigned long long)st.evictions);
    }
}

int main(int argc, char **argv)
{
    int requests = 24;
    size_t kv_per_token = 8192;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--requests") == 0)
            requests = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--kv-bytes-per-token") == 0)
            kv_per_token = (size_t)strtoull(argv[i + 1], NULL, 10);
    }
    kvt_config *cfg = NULL;
    int rc = kvt_config_from_sources(NULL, &cfg);
    if (rc == KVT_OK && !getenv("LMCACHE_CONFIG_FILE") && !getenv("LMCACHE_MAX_LOCAL_CPU_SIZE"))
        rc = kvt_config_set(cfg, "max_local_cpu_size", "0.125");
    if (rc != KVT_OK)
        die("config", rc);
    int64_t chunk_tokens = 256;
    kvt_config_get_int(cfg, "chunk_size", &chunk_tokens);
    size_t chunk_bytes = (size_t)chunk_tokens * kv_per_token;

    kvt_log_handler log = {.fn = NULL, .min_level = KVT_LOG_WARN};
    kvt_store *s = NULL;
    if ((rc = kvt_store_open(cfg, &log, &s)) != KVT_OK)
        die("open store", rc);
    kvt_config_free(cfg);
    printf("kvtier %s: %d requests, %lld-token chunks of %.1f MiB\n\n", kvt_version(), requests,
           (long long)chunk_tokens, (double)chunk_bytes / (1 << 20));

    unsigned char *buf = malloc(chunk_bytes), *want = malloc(chunk_bytes);
    struct totals t = {0};
    if (!buf || !want)
        die("allocate buffers", KVT_ENOMEM);
    for (int r = 0; r < requests; r++)
        serve(s, r, (size_t)chunk_tokens, chunk_bytes, buf, want, &t);
    kvt_flush(s);
    print_tiers(s);
    printf("\nchunks reused %llu, computed %llu, corrupt reads %llu\n",
           (unsigned long long)t.chunks_hit, (unsigned long long)t.chunks_stored,
           (unsigned long long)t.bad);
    double limit = memcpy_gbps(buf, chunk_bytes);
    if (t.put_s > 0 && limit > 0)
        printf("put throughput  %.2f x memcpy (copy into the CPU tier, whose fresh pages fault in "
               "while it fills; bench_cpu measures the steady state)\n",
               (double)t.put_bytes / t.put_s / 1e9 / limit);
    if (t.get_s > 0 && limit > 0)
        printf("get throughput  %.2f x memcpy (lookup hits copied out with kvt_get_into)\n",
               (double)t.get_bytes / t.get_s / 1e9 / limit);
    printf("memcpy here     %.2f GB/s\n", limit);
    free(buf);
    free(want);
    kvt_store_close(s);
    return t.bad ? 1 : 0;
}
