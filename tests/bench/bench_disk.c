/* bench_disk: LocalDiskBackend against fio on the same filesystem, in the same run.
 *
 * For 14 and 32 MiB chunks, interleaved trials of: fio at the tier's request size and
 * queue depth (O_DIRECT, io_uring) writing then reading B chunks' worth; kvtier putting B
 * chunks (zero-copy kvt_put_obj + kvt_flush); kvt_get_into of each (CPU tier too small to
 * stage: the get_into slot reads straight into the caller's buffer); kvt_batched_get_into
 * of all B (CPU tier bypassed: one batch through the pool). Medians printed as
 *   disk_put_ratio_14MiB=0.93 min=.. max=..
 * plus the best fio configuration found (the device ceiling) and the re-index time of
 * 10,000 and 100,000 files (page cache dropped first when we may).
 *
 * Usage: bench_disk [--quick] [--dir DIR] [--trials N]. --quick is the ctest smoke run:
 * small chunks, one trial, no fio, 300-file re-index. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <kvtier/kvtier.h>

#define MiB (1024.0 * 1024.0)

static bool quick;
static char dir[512] = "/tmp/kvt-bench-disk";
static int trials = 15;
static const int depth = 32, req_kib = 512;
static double ceiling_mibps;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void die(const char *what, int rc)
{
    fprintf(stderr, "bench_disk: %s: %s: %s\n", what, kvt_status_name(rc), kvt_last_error());
    exit(1);
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void report(const char *name, double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    double med = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
    printf("%s=%.3f min=%.3f max=%.3f\n", name, med, v[0], v[n - 1]);
}

/* Warnings and errors only: the figures are the output. */
static const kvt_log_handler quiet = {.fn = NULL, .ud = NULL, .min_level = KVT_LOG_WARN};

static kvt_store *open_store(const char *sub, double cpu_gib, double disk_gib)
{
    char path[700];
    kvt_config *cfg = NULL;
    kvt_store *s = NULL;
    snprintf(path, sizeof path, "%s/%s", dir, sub);
    int rc = kvt_config_new(&cfg);
    if (rc == KVT_OK)
        rc = kvt_config_set_float(cfg, "max_local_cpu_size", cpu_gib);
    if (rc == KVT_OK)
        rc = kvt_config_set(cfg, "local_disk", path);
    if (rc == KVT_OK)
        rc = kvt_config_set_float(cfg, "max_local_disk_size", disk_gib);
    if (rc == KVT_OK)
        rc = kvt_config_set_int(cfg, "local_disk_queue_depth", depth);
    if (rc == KVT_OK)
        rc = kvt_config_set_int(cfg, "local_disk_request_kib", req_kib);
    if (rc == KVT_OK)
        rc = kvt_config_set_int(cfg, "write_queue_timeout_ms", 60000);
    if (rc == KVT_OK)
        rc = kvt_store_open(cfg, &quiet, &s);
    kvt_config_free(cfg);
    if (rc != KVT_OK)
        die("open", rc);
    return s;
}

static kvt_key key_of(uint64_t h)
{
    kvt_key k;
    if (kvt_key_init(&k, "bench-model", 1, 0, h, "bfloat16") != KVT_OK)
        abort();
    return k;
}

/* MiB/s fio reports for one job; 0 when fio is missing or fails. */
static double fio(const char *rw, size_t bytes, int bs_kib, int iodepth)
{
    char cmd[1400], line[8192];
    snprintf(cmd, sizeof cmd,
             "fio --name=b --filename=%s/fio.dat --size=%zu --bs=%dk --iodepth=%d --direct=1 "
             "--ioengine=io_uring --rw=%s --output-format=terse --terse-version=3 2>/dev/null",
             dir, bytes, bs_kib, iodepth, rw);
    FILE *p = popen(cmd, "r");
    double bw = 0;
    if (!p)
        return 0;
    if (fgets(line, sizeof line, p)) {
        int field = 0;
        for (char *tok = strtok(line, ";"); tok; tok = strtok(NULL, ";")) {
            field++; /* terse v3: 7 = read KiB/s, 48 = write KiB/s */
            if ((field == 7 && rw[0] == 'r') || (field == 48 && rw[0] == 'w'))
                bw = atof(tok) / 1024.0;
        }
    }
    pclose(p);
    return bw;
}

static void bench_chunk(size_t chunk, int batch)
{
    int n = quick ? 1 : trials;
    double *put = calloc((size_t)n, sizeof *put), *get = calloc((size_t)n, sizeof *get),
           *bat = calloc((size_t)n, sizeof *bat), *fw = calloc((size_t)n, sizeof *fw),
           *fr = calloc((size_t)n, sizeof *fr);
    void **bufs = calloc((size_t)batch, sizeof *bufs);
    size_t *caps = calloc((size_t)batch, sizeof *caps), *lens = calloc((size_t)batch, sizeof *lens);
    int *sts = calloc((size_t)batch, sizeof *sts);
    kvt_key *keys = calloc((size_t)batch, sizeof *keys);
    double total = (double)chunk * batch / MiB;
    for (int i = 0; i < batch; i++) {
        bufs[i] = aligned_alloc(4096, chunk);
        caps[i] = chunk;
        memset(bufs[i], i + 1, chunk);
    }
    for (int t = 0; t < n; t++) {
        if (!quick) {
            fw[t] = fio("write", chunk * (size_t)batch, req_kib, depth);
            fr[t] = fio("read", chunk * (size_t)batch, req_kib, depth);
        }
        /* put: a store whose CPU tier stages the batch */
        kvt_store *s = open_store("tier", (double)chunk * (batch + 2) / (MiB * 1024), 64);
        double t0 = now_s();
        for (int i = 0; i < batch; i++) {
            kvt_obj *obj = NULL;
            int rc = kvt_obj_alloc(s, chunk, NULL, &obj);
            if (rc != KVT_OK)
                die("obj_alloc", rc);
            memset(kvt_obj_data_mut(obj), t + i, 4096); /* touch: the rest is pool memory */
            keys[i] = key_of((uint64_t)t * 1000 + (uint64_t)i + chunk);
            if ((rc = kvt_put_obj(s, &keys[i], obj)) != KVT_OK)
                die("put_obj", rc);
            kvt_obj_release(obj);
        }
        int rc = kvt_flush(s, 600000);
        if (rc != KVT_OK)
            die("flush", rc);
        put[t] = total / (now_s() - t0);
        /* batched get: CPU tier bypassed, one batch */
        bool was;
        kvt_backend_set_bypass(s, "LocalCPUBackend", true, &was);
        size_t hits = 0;
        t0 = now_s();
        rc = kvt_batched_get_into(s, (size_t)batch, keys, bufs, caps, lens, sts, &hits);
        bat[t] = total / (now_s() - t0);
        if (rc != KVT_OK || hits != (size_t)batch)
            die("batched_get_into", rc ? rc : KVT_ENOENT);
        kvt_store_close(s);
        /* get_into: a CPU tier too small to stage a chunk, so reads go straight in */
        s = open_store("tier", 1.0 / 1024, 64);
        t0 = now_s();
        for (int i = 0; i < batch; i++) {
            size_t len = 0;
            if ((rc = kvt_get_into(s, &keys[i], bufs[i], chunk, &len)) != KVT_OK)
                die("get_into", rc);
        }
        get[t] = total / (now_s() - t0);
        uint64_t tokens = 0;
        kvt_clear(s, &tokens);
        kvt_store_close(s);
    }
    char name[96];
    int mib = (int)(chunk / (1024 * 1024));
    if (!quick && fw[0] > 0) {
        double r[64];
        for (int t = 0; t < n; t++)
            r[t] = put[t] / fw[t];
        snprintf(name, sizeof name, "disk_put_ratio_%dMiB", mib);
        report(name, r, n);
        for (int t = 0; t < n; t++)
            r[t] = get[t] / fr[t];
        snprintf(name, sizeof name, "disk_get_into_ratio_%dMiB", mib);
        report(name, r, n);
        for (int t = 0; t < n; t++)
            r[t] = bat[t] / fr[t];
        snprintf(name, sizeof name, "disk_batched_get_ratio_%dMiB", mib);
        report(name, r, n);
        for (int t = 0; t < n && ceiling_mibps > 0; t++)
            r[t] = bat[t] / ceiling_mibps;
        snprintf(name, sizeof name, "disk_batched_get_ceiling_ratio_%dMiB", mib);
        if (ceiling_mibps > 0)
            report(name, r, n);
        snprintf(name, sizeof name, "fio_write_MiBps_%dMiB_bs%dk_qd%d", mib, req_kib, depth);
        report(name, fw, n);
        snprintf(name, sizeof name, "fio_read_MiBps_%dMiB_bs%dk_qd%d", mib, req_kib, depth);
        report(name, fr, n);
    }
    snprintf(name, sizeof name, "kvtier_put_MiBps_%dMiB", mib);
    report(name, put, n);
    snprintf(name, sizeof name, "kvtier_get_into_MiBps_%dMiB", mib);
    report(name, get, n);
    snprintf(name, sizeof name, "kvtier_batched_get_MiBps_%dMiB", mib);
    report(name, bat, n);
    fflush(stdout);
    for (int i = 0; i < batch; i++)
        free(bufs[i]);
    free(bufs), free(caps), free(lens), free(sts), free(keys);
    free(put), free(get), free(bat), free(fw), free(fr);
}

/* Best read bandwidth over a few fio shapes: the device ceiling. */
static double ceiling(void)
{
    static const int bs[] = {512, 1024, 4096, 8192};
    static const int qd[] = {32, 64};
    double best = 0;
    for (size_t i = 0; i < sizeof bs / sizeof bs[0]; i++)
        for (size_t j = 0; j < sizeof qd / sizeof qd[0]; j++) {
            double bw = fio("read", 1024u << 20, bs[i], qd[j]);
            if (bw > best) {
                best = bw;
                printf("# fio read bs=%dk qd=%d: %.0f MiB/s\n", bs[i], qd[j], bw);
            }
        }
    printf("fio_read_ceiling_MiBps=%.0f\n", best);
    return best;
}

static void reindex(int nfiles)
{
    char sub[64];
    snprintf(sub, sizeof sub, "reindex%d", nfiles);
    kvt_store *s = open_store(sub, 0.25, 64);
    static unsigned char chunk[4096];
    for (int i = 0; i < nfiles; i++) {
        kvt_key k = key_of((uint64_t)i);
        memset(chunk, i, sizeof chunk);
        int rc = kvt_put(s, &k, chunk, sizeof chunk, NULL);
        if (rc == KVT_ENOMEM) {
            kvt_flush(s, -1);
            rc = kvt_put(s, &k, chunk, sizeof chunk, NULL);
        }
        if (rc != KVT_OK)
            die("put", rc);
    }
    kvt_flush(s, -1);
    kvt_store_close(s);
    sync();
    int fd = open("/proc/sys/vm/drop_caches", O_WRONLY);
    bool cold = fd >= 0 && write(fd, "3", 1) == 1;
    if (fd >= 0)
        close(fd);
    double t0 = now_s();
    s = open_store(sub, 0.25, 64);
    double dt = now_s() - t0;
    kvt_backend_stats st;
    kvt_backend_get_stats(s, "LocalDiskBackend", &st);
    printf("disk_reindex_%d_s=%.3f objects=%llu cold_cache=%d\n", nfiles, dt,
           (unsigned long long)st.objects, cold);
    uint64_t tokens = 0;
    kvt_clear(s, &tokens);
    kvt_store_close(s);
}

int main(int argc, char **argv)
{
    const char *env = getenv("KVT_BENCH_DIR");
    if (env)
        snprintf(dir, sizeof dir, "%s", env);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quick"))
            quick = true;
        else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
            snprintf(dir, sizeof dir, "%s", argv[++i]);
        else if (!strcmp(argv[i], "--trials") && i + 1 < argc)
            trials = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_disk [--quick] [--dir DIR] [--trials N]\n");
            return 2;
        }
    }
    trials = trials < 1 ? 1 : trials > 64 ? 64 : trials;
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        perror(dir);
        return 1;
    }
    printf("# dir=%s request_kib=%d depth=%d trials=%d\n", dir, req_kib, depth, quick ? 1 : trials);
    if (quick) {
        bench_chunk(1u << 20, 4);
        reindex(300);
        return 0;
    }
    if (fio("read", 64u << 20, 512, 32) <= 0)
        printf("# fio not found: ratios omitted (tests/install-deps.sh installs it)\n");
    else
        ceiling_mibps = ceiling();
    bench_chunk(14u << 20, 8);
    bench_chunk(32u << 20, 8);
    reindex(10000);
    reindex(100000);
    char f[600];
    snprintf(f, sizeof f, "%s/fio.dat", dir);
    unlink(f);
    return 0;
}
