/* kvtier benchmarks — the shared helpers (see benchkit.h). */
#include "benchkit.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void bench_report(const char *name, double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp);
    double med = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
    printf("%s=%.3f min=%.3f max=%.3f\n", name, med, v[0], v[n - 1]);
}

kvt_key bench_key(size_t i)
{
    kvt_key k;
    kvt_key_init(&k, "bench", 1, 0, 0x1000 + i, "bfloat16");
    return k;
}

double bench_putn(kvt_store *s, unsigned char **vals, size_t n, size_t len)
{
    double t0 = bench_now();
    for (size_t i = 0; i < n; i++) {
        kvt_key k = bench_key(i);
        int rc = kvt_put(s, &k, vals[i], len, NULL);
        if (rc != KVT_OK)
            bench_die("put", rc);
    }
    int rc = kvt_flush(s, 60000);
    if (rc != KVT_OK)
        bench_die("flush", rc);
    return bench_now() - t0;
}

double bench_getn(kvt_store *s, unsigned char **outs, size_t n, size_t len)
{
    double t0 = bench_now();
    for (size_t i = 0; i < n; i++) {
        kvt_key k = bench_key(i);
        size_t got = 0;
        int rc = kvt_get_into(s, &k, outs[i], len, &got);
        if (rc != KVT_OK || got != len)
            bench_die("get_into", rc);
    }
    return bench_now() - t0;
}
