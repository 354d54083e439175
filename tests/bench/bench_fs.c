/* bench_fs — the fs:// connector against plain files in the same directory.
 *
 * Per value size (1, 14, 32 MiB), each trial pairs (alternating which goes first):
 *   put  plain: N × (mkstemp, write, close, rename)   kvtier: N kvt_put + kvt_flush
 *   get  plain: N × (open, read into the buffer)      kvtier: N kvt_get_into
 * with the CPU tier bypassed and remote_fs_fsync off on both sides (the page cache is
 * what is measured; fsync cost is the device's). ratio = t(plain) / t(kvtier).
 * Page cache: warm for both. Each trial writes both sets of files just before reading
 * them, same sizes (kvtier's files carry LMCache's 28-byte header too), same directory
 * and filesystem; the plain read is open + read() loop into the caller's buffer, as
 * kvtier's fs get_into does with pread().
 * Usage: bench_fs [--quick] [dir] */
#include <fcntl.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <kvtier/kvtier.h>

#include "benchkit.h"

#define MIB ((size_t)1 << 20)
#define MAX_TRIALS 64

void bench_die(const char *what, int rc)
{
    fprintf(stderr, "bench_fs: %s: %s: %s\n", what, kvt_status_name(rc), kvt_last_error());
    exit(1);
}

static void write_all(int fd, const void *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w <= 0) {
            perror("bench_fs: write");
            exit(1);
        }
        p = (const char *)p + w;
        n -= (size_t)w;
    }
}

static double plain_put(const char *dir, unsigned char **vals, size_t n, size_t len)
{
    char tmp[4200], path[4200];
    double t0 = bench_now();
    for (size_t i = 0; i < n; i++) {
        snprintf(tmp, sizeof tmp, "%s/plain/.p%zu.tmp.XXXXXX", dir, i);
        snprintf(path, sizeof path, "%s/plain/p%zu.data", dir, i);
        int fd = mkstemp(tmp);
        if (fd < 0) {
            perror("bench_fs: mkstemp");
            exit(1);
        }
        write_all(fd, vals[i], len);
        close(fd);
        rename(tmp, path);
    }
    return bench_now() - t0;
}

static double plain_get(const char *dir, unsigned char **outs, size_t n, size_t len)
{
    char path[4200];
    double t0 = bench_now();
    for (size_t i = 0; i < n; i++) {
        snprintf(path, sizeof path, "%s/plain/p%zu.data", dir, i);
        int fd = open(path, O_RDONLY);
        size_t got = 0;
        while (fd >= 0 && got < len) {
            ssize_t r = read(fd, outs[i] + got, len - got);
            if (r <= 0)
                break;
            got += (size_t)r;
        }
        if (fd < 0 || got != len) {
            fprintf(stderr, "bench_fs: plain read failed\n");
            exit(1);
        }
        close(fd);
    }
    return bench_now() - t0;
}

int main(int argc, char **argv)
{
    bool quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    const char *base = argc > (quick ? 2 : 1) ? argv[quick ? 2 : 1] : "/tmp";
    char dir[4096], url[4200], sub[4200];
    snprintf(dir, sizeof dir, "%s/bench_fs.XXXXXX", base);
    if (!mkdtemp(dir)) {
        perror("bench_fs: mkdtemp");
        return 1;
    }
    snprintf(sub, sizeof sub, "%s/plain", dir);
    mkdir(sub, 0755);
    snprintf(url, sizeof url, "fs://%s/kvt", dir);
    static const size_t full_sizes[] = {1, 14, 32}, quick_sizes[] = {1};
    const size_t *sizes = quick ? quick_sizes : full_sizes;
    size_t nsizes = quick ? 1 : 3;
    int trials = quick ? 3 : 15;

    kvt_config *cfg = NULL;
    kvt_store *s = NULL;
    int rc = kvt_config_new(&cfg);
    if (rc == KVT_OK)
        rc = kvt_config_set_float(cfg, "max_local_cpu_size", 64.0 / 1024.0);
    if (rc == KVT_OK)
        rc = kvt_config_set(cfg, "remote_url", url);
    if (rc == KVT_OK)
        rc = kvt_config_set(cfg, "remote_fs_fsync", "false");
    if (rc == KVT_OK)
        rc = kvt_config_set(cfg, "write_queue_timeout_ms", "60000");
    if (rc == KVT_OK)
        rc = kvt_store_open(cfg, &(kvt_log_handler){.min_level = KVT_LOG_WARN}, &s);
    kvt_config_free(cfg);
    if (rc != KVT_OK || (rc = kvt_backend_set_bypass(s, "LocalCPUBackend", true, NULL)) != KVT_OK)
        bench_die("open", rc);
    printf("# page cache: warm for both sides (files written in the same trial)\n");
    for (size_t z = 0; z < nsizes; z++) {
        size_t len = sizes[z] * MIB, n = quick ? 2 : (64 / sizes[z] < 2 ? 2 : 64 / sizes[z]);
        if (n > 16)
            n = 16;
        unsigned char *vals[16], *outs[16];
        for (size_t i = 0; i < n; i++) {
            vals[i] = malloc(len);
            outs[i] = malloc(len);
            memset(vals[i], (int)(i + 1), len);
            memset(outs[i], 0, len);
        }
        double put[MAX_TRIALS], get[MAX_TRIALS];
        for (int t = 0; t < trials; t++) {
            double pp, kp, pg, kg;
            if (t % 2) { /* kvtier and the plain files take turns going first */
                kp = bench_putn(s, vals, n, len);
                pp = plain_put(dir, vals, n, len);
                pg = plain_get(dir, outs, n, len);
                kg = bench_getn(s, outs, n, len);
            } else {
                pp = plain_put(dir, vals, n, len);
                kp = bench_putn(s, vals, n, len);
                kg = bench_getn(s, outs, n, len);
                pg = plain_get(dir, outs, n, len);
            }
            put[t] = pp / kp;
            get[t] = pg / kg;
        }
        char name[64];
        snprintf(name, sizeof name, "fs_put_ratio_%zuMiB", sizes[z]);
        bench_report(name, put, trials);
        snprintf(name, sizeof name, "fs_get_into_ratio_%zuMiB", sizes[z]);
        bench_report(name, get, trials);
        for (size_t i = 0; i < n; i++) {
            free(vals[i]);
            free(outs[i]);
        }
    }
    kvt_store_close(s);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : 1;
}
