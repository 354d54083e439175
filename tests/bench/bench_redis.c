/* bench_redis — kvtier's redis tier against raw hiredis on the same server.
 *
 * A private redis-server (tests/redis_fixture.c). Per value size (1, 14, 32 MiB), each
 * trial runs a raw hiredis baseline and the kvtier path next to each other (alternating
 * which goes first), over the same number of connections (one: the tier's write-through
 * worker owns one connection, a reading thread one more):
 *   put      raw: N pipelined SET of the values   kvtier: N kvt_put + kvt_flush (CPU tier
 *            bypassed, so the cost is the redis tier's; kvtier also writes the 28-byte header)
 *   get      raw: N pipelined GET                 kvtier: N kvt_get_into, one by one
 *   batched  raw: N pipelined GET                 kvtier: one kvt_batched_get_into of N
 * ratio = t(raw) / t(kvtier): 1.0 is "as fast as hiredis". Then the aggregate read
 * throughput of 1, 2 and 4 stores (one thread each) sharing the server.
 * Output: `name=median min=.. max=..` lines over the trials.
 * Usage: bench_redis [--quick] */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <kvtier/kvtier.h>

#include "benchkit.h"

#include "redis_fixture.h"

#define MIB ((size_t)1 << 20)
#define MAX_TRIALS 64

static int trials = 15;
static struct rf srv;

void bench_die(const char *what, int rc)
{
    fprintf(stderr, "bench_redis: %s: %s: %s\n", what, kvt_status_name(rc), kvt_last_error());
    rf_stop(&srv);
    exit(1);
}

static kvt_store *open_store(size_t cpu_mib)
{
    char url[128];
    kvt_config *cfg = NULL;
    kvt_store *s = NULL;
    int rc = kvt_config_new(&cfg);
    if (rc == KVT_OK)
        rc = kvt_config_set_float(cfg, "max_local_cpu_size", (double)cpu_mib / 1024.0);
    if (rc == KVT_OK)
        rc = kvt_config_set(cfg, "remote_url", rf_url(&srv, 0, url, sizeof url));
    if (rc == KVT_OK)
        rc = kvt_config_set(cfg, "remote_pool_size", "4");
    if (rc == KVT_OK)
        rc = kvt_config_set(cfg, "write_queue_timeout_ms", "60000");
    if (rc == KVT_OK)
        rc = kvt_store_open(cfg, &(kvt_log_handler){.min_level = KVT_LOG_WARN}, &s);
    kvt_config_free(cfg);
    if (rc != KVT_OK)
        bench_die("open", rc);
    if ((rc = kvt_backend_set_bypass(s, "LocalCPUBackend", true, NULL)) != KVT_OK)
        bench_die("bypass", rc);
    return s;
}

static void keystr(char *buf, size_t cap, const char *tag, size_t i)
{
    snprintf(buf, cap, "raw@1@0@%s%zx@bfloat16kv_bytes", tag, i);
}

static double raw_set(redisContext *c, unsigned char **vals, size_t n, size_t len)
{
    char k[96];
    double t0 = bench_now();
    for (size_t i = 0; i < n; i++) {
        keystr(k, sizeof k, "s", i);
        redisAppendCommand(c, "SET %s %b", k, vals[i], len);
    }
    for (size_t i = 0; i < n; i++) {
        void *r = NULL;
        if (redisGetReply(c, &r) != REDIS_OK || !r) {
            fprintf(stderr, "bench_redis: raw SET failed: %s\n", c->errstr);
            exit(1);
        }
        freeReplyObject(r);
    }
    return bench_now() - t0;
}

static double raw_get(redisContext *c, unsigned char **outs, size_t n, size_t len)
{
    char k[96];
    double t0 = bench_now();
    for (size_t i = 0; i < n; i++) {
        keystr(k, sizeof k, "s", i);
        redisAppendCommand(c, "GET %s", k);
    }
    for (size_t i = 0; i < n; i++) {
        redisReply *r = NULL;
        if (redisGetReply(c, (void **)&r) != REDIS_OK || !r || r->len != len) {
            fprintf(stderr, "bench_redis: raw GET failed\n");
            exit(1);
        }
        (void)outs;
        freeReplyObject(r);
    }
    return bench_now() - t0;
}

static double kvt_batchn(kvt_store *s, unsigned char **outs, size_t n, size_t len)
{
    kvt_key keys[64];
    size_t caps[64], hits = 0;
    int sts[64];
    for (size_t i = 0; i < n; i++) {
        keys[i] = bench_key(i);
        caps[i] = len;
    }
    double t0 = bench_now();
    int rc = kvt_batched_get_into(s, n, keys, (void *const *)outs, caps, NULL, sts, &hits);
    if (rc != KVT_OK || hits != n)
        bench_die("batched_get_into", rc != KVT_OK ? rc : sts[0]);
    return bench_now() - t0;
}

struct shared {
    kvt_store *s;
    size_t n, len;
    unsigned char **outs;
    double secs;
};

static void *shared_main(void *arg)
{
    struct shared *w = arg;
    w->secs = kvt_batchn(w->s, w->outs, w->n, w->len);
    return NULL;
}

int main(int argc, char **argv)
{
    bool quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    static const size_t full_sizes[] = {1, 14, 32}, quick_sizes[] = {1};
    const size_t *sizes = quick ? quick_sizes : full_sizes;
    size_t nsizes = quick ? 1 : 3;
    if (quick)
        trials = 3;
    if (!rf_available()) {
        fprintf(stderr, "bench_redis: redis-server not found: skipping\n");
        return 77;
    }
    if (rf_start(&srv, NULL) != 0) {
        fprintf(stderr, "bench_redis: cannot start redis-server\n");
        return 1;
    }
    redisContext *c = rf_client(&srv);
    kvt_store *s = open_store(64);
    for (size_t z = 0; z < nsizes; z++) {
        size_t len = sizes[z] * MIB, n = quick ? 2 : (64 / sizes[z] < 2 ? 2 : 64 / sizes[z]);
        if (n > 16)
            n = 16;
        unsigned char *vals[16], *outs[16];
        for (size_t i = 0; i < n; i++) {
            vals[i] = malloc(len);
            outs[i] = malloc(len);
            memset(vals[i], (int)(i + 1), len);
            memset(outs[i], 0, len); /* pre-faulted destinations, as an engine's would be */
        }
        double put[MAX_TRIALS], get[MAX_TRIALS], bat[MAX_TRIALS];
        for (int t = 0; t < trials; t++) {
            double rs, ks, rg1, rg2, kg, kb;
            if (t % 2) {
                ks = bench_putn(s, vals, n, len);
                rs = raw_set(c, vals, n, len);
            } else {
                rs = raw_set(c, vals, n, len);
                ks = bench_putn(s, vals, n, len);
            }
            if (t % 2) {
                kg = bench_getn(s, outs, n, len);
                rg1 = raw_get(c, outs, n, len);
                kb = kvt_batchn(s, outs, n, len);
                rg2 = raw_get(c, outs, n, len);
            } else {
                rg1 = raw_get(c, outs, n, len);
                kg = bench_getn(s, outs, n, len);
                rg2 = raw_get(c, outs, n, len);
                kb = kvt_batchn(s, outs, n, len);
            }
            put[t] = rs / ks;
            get[t] = rg1 / kg;
            bat[t] = rg2 / kb;
        }
        char name[64];
        snprintf(name, sizeof name, "redis_put_ratio_%zuMiB", sizes[z]);
        bench_report(name, put, trials);
        snprintf(name, sizeof name, "redis_get_into_ratio_%zuMiB", sizes[z]);
        bench_report(name, get, trials);
        snprintf(name, sizeof name, "redis_batched_get_ratio_%zuMiB", sizes[z]);
        bench_report(name, bat, trials);
        for (size_t i = 0; i < n; i++) {
            free(vals[i]);
            free(outs[i]);
        }
    }
    kvt_store_close(s);

    /* Aggregate reads: 1, 2, 4 stores, one thread each, sharing the server. */
    size_t len = (quick ? 1 : 14) * MIB, n = 4;
    unsigned char *vals[4];
    kvt_store *seed = open_store(64);
    for (size_t i = 0; i < n; i++) {
        vals[i] = malloc(len);
        memset(vals[i], (int)(i + 7), len);
    }
    bench_putn(seed, vals, n, len);
    kvt_store_close(seed);
    for (size_t i = 0; i < n; i++)
        free(vals[i]);
    static const int nstores[] = {1, 2, 4};
    for (int k = 0; k < 3; k++) {
        int m = nstores[k];
        struct shared w[4];
        double gbps[MAX_TRIALS];
        for (int i = 0; i < m; i++) {
            w[i] = (struct shared){.s = open_store(64), .n = n, .len = len};
            w[i].outs = malloc(n * sizeof *w[i].outs);
            for (size_t j = 0; j < n; j++) {
                w[i].outs[j] = malloc(len);
                memset(w[i].outs[j], 0, len);
            }
        }
        for (int t = 0; t < trials; t++) {
            pthread_t th[4];
            double t0 = bench_now();
            for (int i = 0; i < m; i++)
                pthread_create(&th[i], NULL, shared_main, &w[i]);
            for (int i = 0; i < m; i++)
                pthread_join(th[i], NULL);
            gbps[t] = (double)m * (double)n * (double)len / (bench_now() - t0) / 1e9;
        }
        char name[64];
        snprintf(name, sizeof name, "redis_shared_get_GBps_stores%d", m);
        bench_report(name, gbps, trials);
        for (int i = 0; i < m; i++) {
            for (size_t j = 0; j < n; j++)
                free(w[i].outs[j]);
            free(w[i].outs);
            kvt_store_close(w[i].s);
        }
    }
    redisFree(c);
    rf_stop(&srv);
    return 0;
}
