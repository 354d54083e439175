/* kvtier-server: a store behind the admin HTTP server, for operators, tests and the demo.
 *
 *   kvtier-server --config FILE [--host ADDR] [--port N] [--kv-bytes-per-token N] [--simulate]
 *
 * Opens a store from an LMCache-style YAML file (and LMCACHE_* variables), creating
 * missing tier directories, starts the admin server and prints "listening on URL".
 * --port 0 picks a free port. --simulate runs synthetic engine traffic (requests that
 * share prefixes) and prints a progress line each second. SIGINT/SIGTERM: flush pending
 * writes, stop, exit 0. Uses only the public API. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <kvtier/admin.h>
#include <kvtier/kvtier.h>

#define SIM_PREFIXES 8    /* "system prompts" requests share */
#define SIM_PREFIX_CHUNKS 4
#define SIM_MAX_CHUNKS 12

static void usage(FILE *f)
{
    fprintf(f, "usage: kvtier-server --config FILE [--host ADDR] [--port N] "
               "[--kv-bytes-per-token N] [--simulate]\n");
}

static int fail(const char *what, int rc)
{
    fprintf(stderr, "kvtier-server: %s: %s: %s\n", what, kvt_status_name(rc), kvt_last_error());
    return 1;
}

/* mkdir -p */
static void mkdirs(const char *path)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(buf, 0755);
            *p = '/';
        }
    mkdir(buf, 0755);
}

/* Creates the directories the config names: local_disk, gds_path (CSV), fs:// remote. */
static void make_tier_dirs(const kvt_config *cfg)
{
    static const char *const keys[] = {"local_disk", "gds_path", "remote_url"};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        const char *v = NULL;
        char buf[4096], *save = NULL;
        if (kvt_config_get_str(cfg, keys[k], &v) != KVT_OK || !v)
            continue;
        if (k == 2 && strncmp(v, "fs://", 5) != 0)
            continue;
        snprintf(buf, sizeof buf, "%s", k == 2 ? v + 5 : v);
        for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            if (strncmp(t, "file://", 7) == 0)
                t += 7;
            if (t[0] == '/')
                mkdirs(t);
        }
    }
}

/* ------------------------------------------------------------ --simulate */

struct sim {
    kvt_store *s;
    size_t chunk_tokens, chunk_bytes;
    atomic_bool stop;
    atomic_ullong requests, chunks, hit_chunks, bad;
    pthread_mutex_t mu; /* guards the per-tier table */
    struct { char name[KVT_NAME_MAX]; unsigned long long hits; } tier[KVT_MAX_BACKENDS];
    size_t ntiers;
};

static void fill(unsigned char *p, size_t len, uint64_t h)
{
    uint64_t x = h ^ 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < len; i += 8) {
        x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
        uint64_t v = x * 0x2545f4914f6cdd1dull;
        memcpy(p + i, &v, len - i < 8 ? len - i : 8);
    }
}

static void sim_count_tier(struct sim *m, const char *name, size_t n)
{
    size_t i;
    pthread_mutex_lock(&m->mu);
    for (i = 0; i < m->ntiers && strcmp(m->tier[i].name, name) != 0; i++)
        ;
    if (i == m->ntiers && i < KVT_MAX_BACKENDS)
        snprintf(m->tier[m->ntiers++].name, KVT_NAME_MAX, "%s", name);
    if (i < KVT_MAX_BACKENDS)
        m->tier[i].hits += n;
    pthread_mutex_unlock(&m->mu);
}

/* One synthetic request: a shared prefix plus a suffix drawn from a small pool, so that
 * later requests hit what earlier ones stored. */
static void sim_request(struct sim *m, unsigned *seed, int32_t *tokens, unsigned char *kv,
                        unsigned char *want)
{
    size_t nchunks = SIM_PREFIX_CHUNKS + 1 + (size_t)(rand_r(seed) % (SIM_MAX_CHUNKS - SIM_PREFIX_CHUNKS));
    size_t ntok = nchunks * m->chunk_tokens, n = 0, hit = 0, i, nspans = 0;
    int32_t prefix = (int32_t)(rand_r(seed) % SIM_PREFIXES), suffix = (int32_t)(rand_r(seed) % 64);
    uint64_t hashes[SIM_MAX_CHUNKS];
    kvt_key keys[SIM_MAX_CHUNKS];
    kvt_tier_span spans[KVT_MAX_BACKENDS];
    for (i = 0; i < ntok; i++)
        tokens[i] = i < SIM_PREFIX_CHUNKS * m->chunk_tokens ? prefix * 100000 + (int32_t)i
                                                             : suffix * 100000 + (int32_t)i + 50000000;
    if (kvt_hash_tokens(tokens, ntok, m->chunk_tokens, false, hashes, SIM_MAX_CHUNKS, &n) != KVT_OK)
        return;
    for (i = 0; i < n; i++)
        kvt_key_init(&keys[i], "kvtier-sim", 1, 0, hashes[i], "bfloat16");
    if (kvt_lookup_prefix(m->s, keys, n, &hit, spans, KVT_MAX_BACKENDS, &nspans, NULL) != KVT_OK)
        hit = 0;
    for (i = 0; i < hit; i++) {
        size_t len = 0;
        if (kvt_get_into(m->s, &keys[i], kv, m->chunk_bytes, &len) != KVT_OK)
            break; /* evicted since the lookup: compute it again */
        fill(want, m->chunk_bytes, hashes[i]);
        if (len != m->chunk_bytes || memcmp(kv, want, len) != 0) {
            atomic_fetch_add(&m->bad, 1);
            break;
        }
    }
    for (size_t k = 0; k < nspans && k < KVT_MAX_BACKENDS; k++) {
        size_t end = spans[k].start + spans[k].count, upto = end < i ? end : i;
        size_t got = upto > spans[k].start ? upto - spans[k].start : 0; /* verified part */
        if (got)
            sim_count_tier(m, spans[k].backend, got);
    }
    atomic_fetch_add(&m->hit_chunks, i);
    atomic_fetch_add(&m->chunks, n);
    for (; i < n; i++) { /* "prefill" the rest, then store it */
        fill(kv, m->chunk_bytes, hashes[i]);
        kvt_put(m->s, &keys[i], kv, m->chunk_bytes, NULL);
    }
    atomic_fetch_add(&m->requests, 1);
}

static void *sim_run(void *p)
{
    struct sim *m = p;
    unsigned seed = 12345;
    int32_t *tokens = malloc(SIM_MAX_CHUNKS * m->chunk_tokens * sizeof *tokens);
    unsigned char *kv = malloc(m->chunk_bytes), *want = malloc(m->chunk_bytes);
    if (!tokens || !kv || !want) {
        fprintf(stderr, "kvtier-server: simulate: out of memory\n");
    } else {
        while (!atomic_load(&m->stop)) {
            sim_request(m, &seed, tokens, kv, want);
            usleep(2000); /* an engine between requests; keeps the demo machine usable */
        }
    }
    free(tokens);
    free(kv);
    free(want);
    return NULL;
}

/* One line per second: rates over the last interval, so a tier switch shows at once. */
struct sim_last {
    unsigned long long req, chunks, hits, tier[KVT_MAX_BACKENDS];
};

static void sim_progress(struct sim *m, struct sim_last *l, double dt)
{
    unsigned long long req = atomic_load(&m->requests), chunks = atomic_load(&m->chunks);
    unsigned long long hits = atomic_load(&m->hit_chunks), dc = chunks - l->chunks;
    char line[1024];
    int k = snprintf(line, sizeof line, "simulate: %.1f req/s, %llu requests, hit rate %.1f%%",
                     (double)(req - l->req) / dt, req,
                     dc ? 100.0 * (double)(hits - l->hits) / (double)dc : 0.0);
    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; i < m->ntiers && k > 0 && (size_t)k < sizeof line; i++) {
        k += snprintf(line + k, sizeof line - (size_t)k, "%s%s %.1f%%", i ? ", " : " (",
                      m->tier[i].name,
                      dc ? 100.0 * (double)(m->tier[i].hits - l->tier[i]) / (double)dc : 0.0);
        l->tier[i] = m->tier[i].hits;
    }
    if (m->ntiers && k > 0 && (size_t)k < sizeof line)
        snprintf(line + k, sizeof line - (size_t)k, ")");
    pthread_mutex_unlock(&m->mu);
    printf("%s%s\n", line, atomic_load(&m->bad) ? " CONTENT MISMATCH" : "");
    fflush(stdout);
    l->req = req;
    l->chunks = chunks;
    l->hits = hits;
}

/* ------------------------------------------------------------ main */

int main(int argc, char **argv)
{
    const char *config = NULL, *host = NULL, *conf_host = NULL;
    long port = -1, bpt = 4096;
    bool simulate = false;
    kvt_config *cfg = NULL;
    kvt_store *s = NULL;
    kvt_admin *srv = NULL;
    kvt_admin_options o;
    struct sim m = {.mu = PTHREAD_MUTEX_INITIALIZER};
    pthread_t sim_thread;
    sigset_t sigs;
    int64_t chunk = 256;
    int rc, sig = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        if (!strcmp(a, "--simulate")) {
            simulate = true;
            continue;
        }
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!v)
            goto bad;
        i++;
        if (!strcmp(a, "--config"))
            config = v;
        else if (!strcmp(a, "--host"))
            host = v;
        else if (!strcmp(a, "--port") && (port = strtol(v, &end, 10), *end == '\0') && port >= 0 &&
                 port <= 65535)
            ;
        else if (!strcmp(a, "--kv-bytes-per-token") && (bpt = strtol(v, &end, 10), *end == '\0') &&
                 bpt > 0 && bpt <= (1 << 20))
            ;
        else
            goto bad;
    }
    /* Signals are taken synchronously by the main thread: block them before any thread
     * (the admin server's, the store's) starts, so all of them inherit the mask. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    if ((rc = kvt_config_from_sources(config, &cfg)) != KVT_OK)
        return fail("config", rc);
    make_tier_dirs(cfg);
    kvt_config_get_int(cfg, "chunk_size", &chunk);
    if (!host && kvt_config_get_str(cfg, "internal_api_server_host", &conf_host) == KVT_OK &&
        conf_host)
        conf_host = strdup(conf_host); /* outlives cfg */
    if ((rc = kvt_store_open(cfg, NULL, &s)) != KVT_OK) {
        kvt_config_free(cfg);
        return fail("open", rc);
    }
    kvt_config_free(cfg);
    kvt_admin_options_init(&o);
    o.host = host;
    o.port = port < 0 ? KVT_ADMIN_PORT_CONFIG : (int)port;
    o.kv_bytes_per_token = (uint32_t)bpt;
    if ((rc = kvt_admin_start(s, &o, &srv)) != KVT_OK || !srv) {
        fprintf(stderr, "kvtier-server: the admin server did not start (%s)\n",
                rc == KVT_OK ? "this worker index is not in internal_api_server_include_index_list"
                             : kvt_status_name(rc));
        free((char *)conf_host);
        kvt_store_close(s);
        return 1;
    }
    if (kvt_admin_port(srv))
        printf("listening on http://%s:%d\n", host ? host : conf_host ? conf_host : "127.0.0.1",
               kvt_admin_port(srv));
    else
        printf("listening on a Unix socket (internal_api_server_socket_path_prefix)\n");
    fflush(stdout);

    if (simulate) {
        m.s = s;
        m.chunk_tokens = (size_t)chunk;
        m.chunk_bytes = (size_t)chunk * (size_t)bpt;
        if (pthread_create(&sim_thread, NULL, sim_run, &m) != 0)
            simulate = false;
    }
    {
        struct timespec tick = {.tv_sec = 1};
        struct sim_last last = {0};
        while (sig != SIGINT && sig != SIGTERM) {
            sig = sigtimedwait(&sigs, NULL, &tick);
            if (sig < 0 && simulate && errno == EAGAIN)
                sim_progress(&m, &last, 1.0);
        }
    }
    fprintf(stderr, "kvtier-server: %s: flushing and stopping\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    if (simulate) {
        atomic_store(&m.stop, true);
        pthread_join(sim_thread, NULL);
    }
    kvt_admin_stop(srv);
    if ((rc = kvt_flush(s, 30000)) != KVT_OK)
        fail("flush", rc);
    free((char *)conf_host);
    if ((rc = kvt_store_close(s)) != KVT_OK)
        return fail("close", rc);
    return 0;
bad:
    usage(stderr);
    return 2;
}
