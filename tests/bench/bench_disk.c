/* bench_disk: LocalDiskBackend against fio and a raw io_uring loop on the same
 * filesystem, in the same run (bench_gds.c builds this file for GdsBackend in compat mode).
 *
 * For 14 and 32 MiB chunks, interleaved trials of:
 * - fio at the tier's request size and queue depth (O_DIRECT, io_uring) writing then
 *   reading B chunks' worth in one laid-out file (what fio measures), and writing B fresh
 *   files of one chunk each (laid out by fio untimed: the tier's put, minus the naming);
 * - the raw loop: O_DIRECT io_uring at the same request size and depth doing what the
 *   tier does per chunk: create a file, lay it out (fallocate), write a 4096-byte header
 *   and the chunk, close, rename; then open each and read it back (the equivalent baseline);
 * - kvtier putting B chunks (zero-copy kvt_batched_put_obj + kvt_flush, the objects filled
 *   before the clock starts, as the raw loop's buffers are); kvt_get_into of each
 *   (CPU tier too small to stage: the get_into slot reads straight into the caller's
 *   buffer); kvt_batched_get_into of all B (CPU tier bypassed: one batch through the pool);
 *   and putting B chunks into a tier full of B older ones (each put evicts one), against
 *   fio's overwrite of its laid-out file (*_put_full_fio_ratio_*).
 * Medians printed as
 *   disk_put_ratio_14MiB=0.93 min=.. max=..      (vs the raw loop, get_into vs the raw loop
 *                                                 one chunk at a time; *_fio_ratio_* vs fio,
 *                                                 *_fio_fresh_ratio_* vs fio's fresh files)
 * plus the best fio read shape found (the device ceiling: fio reads the batch's bytes just
 * after writing them, next to every trial's batched get, *_batched_get_ceiling_ratio_*
 * against it) and the re-index time of
 * 10,000 and 100,000 files (page cache dropped first when we may).
 *
 * Usage: bench_disk [--quick] [--dir DIR] [--trials N] [--request-kib N] [--depth N]
 *                   [--no-reindex] (request size and depth: the tier's defaults).
 * --quick is the ctest smoke run: small chunks, one trial, no fio, 300-file re-index. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <liburing.h>

#include <kvtier/kvtier.h>

#include "benchkit.h"

#ifdef BENCH_GDS
#define TIER "GdsBackend"
#define PFX "gds"
#define DIR_KEY "gds_path"
#define CAP_KEY "max_gds_size"
#else
#define TIER "LocalDiskBackend"
#define PFX "disk"
#define DIR_KEY "local_disk"
#define CAP_KEY "max_local_disk_size"
#endif

#define MiB (1024.0 * 1024.0)

static bool quick, no_reindex;
static char dir[512] = "/tmp/kvt-bench-" PFX;
static int trials = 15;
static int depth = 0, req_kib = 0; /* 0: the tier's default queue depth, request size */
static int ceil_bs, ceil_qd; /* the fio read shape found best: the device ceiling */

void bench_die(const char *what, int rc)
{
    fprintf(stderr, "bench_disk: %s: %s: %s\n", what, kvt_status_name(rc), kvt_last_error());
    exit(1);
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
        rc = kvt_config_set(cfg, DIR_KEY, path);
    if (rc == KVT_OK)
        rc = kvt_config_set_float(cfg, CAP_KEY, disk_gib);
    if (rc == KVT_OK)
        rc = kvt_config_set_int(cfg, "local_disk_queue_depth", depth);
    if (rc == KVT_OK && req_kib)
        rc = kvt_config_set_int(cfg, "local_disk_request_kib", req_kib);
    if (rc == KVT_OK)
        rc = kvt_config_set_int(cfg, "write_queue_timeout_ms", 60000);
    if (rc == KVT_OK)
        rc = kvt_store_open(cfg, &quiet, &s);
    kvt_config_free(cfg);
    if (rc != KVT_OK)
        bench_die("open", rc);
    return s;
}

static kvt_key key_of(uint64_t h)
{
    kvt_key k;
    if (kvt_key_init(&k, "bench-model", 1, 0, h, "bfloat16") != KVT_OK)
        abort();
    return k;
}

/* MiB/s fio reports for one job; 0 when fio is missing or fails. `files` = 0: one
 * laid-out file, overwritten or read in place; else that many fresh files of bytes/files
 * each (laid out by fio before the clock starts, written round-robin, then deleted). */
static double fio(const char *rw, size_t bytes, int bs_kib, int iodepth, int files)
{
    char cmd[1400], line[8192], where[700];
    if (files)
        snprintf(where, sizeof where, "--directory=%s --nrfiles=%d --filesize=%zu --unlink=1", dir,
                 files, bytes / (size_t)files);
    else
        snprintf(where, sizeof where, "--filename=%s/fio.dat", dir);
    snprintf(cmd, sizeof cmd,
             "fio --name=b %s --size=%zu --bs=%dk --iodepth=%d --direct=1 "
             "--ioengine=io_uring --rw=%s --output-format=terse --terse-version=3 2>/dev/null",
             where, bytes, bs_kib, iodepth, rw);
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

/* The raw baseline: per chunk, what the tier's I/O is, without the tier. `write`: create
 * `{dir}/raw/.c{i}.tmp`, write a header page and the chunk, close, rename to `c{i}`;
 * else open each `c{i}` and read the chunk. All chunks' requests (req_kib each) go through
 * one ring, `depth` in flight; with `one`, a chunk's requests start only once the chunk
 * before is in (what one kvt_get_into call at a time can do). Returns MiB/s of payload. */
static double raw_loop(bool write, bool one, void **bufs, size_t chunk, int batch)
{
    char d[600], p[700], q[700];
    struct io_uring ring;
    size_t req = (size_t)req_kib * 1024, per = (chunk + req - 1) / req + (write ? 1 : 0);
    size_t total = per * (size_t)batch, next = 0, done = 0, upto = one ? per : total;
    int *fds = calloc((size_t)batch, sizeof *fds), inflight = 0;
    static unsigned char *hdr;
    if (!hdr && posix_memalign((void **)&hdr, 4096, 4096) == 0)
        memset(hdr, ' ', 4096);
    snprintf(d, sizeof d, "%s/raw", dir);
    mkdir(d, 0755);
    if (io_uring_queue_init((unsigned)depth, &ring, 0) != 0)
        return 0;
    for (int i = 0; write && i < batch; i++) { /* as the tier's trial, which starts cleared */
        snprintf(p, sizeof p, "%s/c%d", d, i);
        unlink(p);
    }
    double t0 = bench_now();
    for (int i = 0; i < batch; i++) {
        snprintf(p, sizeof p, write ? "%s/.c%d.tmp" : "%s/c%d", d, i);
        fds[i] = open(p, write ? O_WRONLY | O_CREAT | O_TRUNC | O_DIRECT : O_RDONLY | O_DIRECT, 0644);
        if (fds[i] < 0)
            bench_die("raw open", KVT_EIO);
        if (write) /* laid out first, as the tiers do (and fio's file is) */
            fallocate(fds[i], 0, 0, (off_t)(4096 + (chunk + 4095) / 4096 * 4096));
    }
    while (done < total) {
        if (done == upto) /* one: the next chunk starts when this one is in */
            upto += per;
        while (next < upto && inflight < depth) {
            size_t c = next / per, k = next % per;
            struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
            if (write && k == per - 1)
                io_uring_prep_write(sqe, fds[c], hdr, 4096, 0);
            else {
                size_t off = k * req, len = chunk - off < req ? chunk - off : req;
                if (write)
                    io_uring_prep_write(sqe, fds[c], (char *)bufs[c] + off, (unsigned)len, 4096 + off);
                else
                    io_uring_prep_read(sqe, fds[c], (char *)bufs[c] + off, (unsigned)len, 4096 + off);
            }
            next++;
            inflight++;
        }
        io_uring_submit_and_wait(&ring, 1);
        struct io_uring_cqe *cqe;
        while (io_uring_peek_cqe(&ring, &cqe) == 0) {
            if (cqe->res < 0)
                bench_die("raw io", cqe->res);
            io_uring_cqe_seen(&ring, cqe);
            inflight--;
            done++;
        }
    }
    for (int i = 0; i < batch; i++) {
        close(fds[i]);
        if (write) {
            snprintf(p, sizeof p, "%s/.c%d.tmp", d, i);
            snprintf(q, sizeof q, "%s/c%d", d, i);
            rename(p, q);
        }
    }
    double mibps = (double)chunk * batch / MiB / (bench_now() - t0);
    io_uring_queue_exit(&ring);
    free(fds);
    return mibps;
}

/* Prints the median, min and max of a[t] / b[t] as `{what}_{mib}MiB=..`. */
static void ratios(const char *what, int mib, const double *a, const double *b, int n)
{
    double r[64];
    char name[96];
    for (int t = 0; t < n; t++)
        r[t] = a[t] / b[t];
    snprintf(name, sizeof name, "%s_%dMiB", what, mib);
    bench_report(name, r, n);
}

/* Prints the median, min and max of v[] as `{what}_MiBps_{mib}MiB`, with the request
 * shape appended for the baselines that run at the tier's request size and depth. */
static void bandwidth(const char *what, int mib, bool shape, double *v, int n)
{
    char name[128];
    int k = snprintf(name, sizeof name, "%s_MiBps_%dMiB", what, mib);
    if (shape)
        snprintf(name + k, sizeof name - (size_t)k, "_bs%dk_qd%d", req_kib, depth);
    bench_report(name, v, n);
}

/* Puts `batch` chunks under keys key_of(first + i), filled from bufs[i] before the clock
 * starts (the engine's side: it fills the chunks first), in one kvt_batched_put_obj (the
 * chunks of one request), then flushes; MiB/s. */
static double put_batch(kvt_store *s, size_t chunk, int batch, void **bufs, uint64_t first,
                        kvt_key *keys)
{
    kvt_obj **objs = calloc((size_t)batch, sizeof *objs);
    for (int i = 0; i < batch; i++) {
        int rc = kvt_obj_alloc(s, chunk, NULL, &objs[i]);
        if (rc != KVT_OK)
            bench_die("obj_alloc", rc);
        memcpy(kvt_obj_data_mut(objs[i]), bufs[i], chunk);
        keys[i] = key_of(first + (uint64_t)i);
    }
    double t0 = bench_now();
    int rc = kvt_batched_put_obj(s, (size_t)batch, keys, objs, NULL);
    if (rc != KVT_OK)
        bench_die("batched_put_obj", rc);
    for (int i = 0; i < batch; i++)
        kvt_obj_release(objs[i]);
    rc = kvt_flush(s, 600000);
    if (rc != KVT_OK)
        bench_die("flush", rc);
    double mibps = (double)chunk * batch / MiB / (bench_now() - t0);
    free(objs);
    return mibps;
}

/* MiB/s of putting `batch` new chunks (+ flush) into a tier that is full of `batch` older
 * ones, so each put evicts one: a cache's steady state, where the tier overwrites evicted
 * files instead of allocating new ones. The tier under `{dir}/full` keeps its chunks from
 * trial to trial; the first trial fills it first. */
static double put_full(int t, size_t chunk, int batch, void **bufs)
{
    double cap_gib = (batch + 0.5) * (double)(chunk + 8192) / (MiB * 1024);
    kvt_store *s = open_store("full", (double)chunk * (batch + 2) / (MiB * 1024), cap_gib);
    kvt_key *keys = calloc((size_t)batch, sizeof *keys);
    double mibps = 0;
    for (int round = t == 0 ? 0 : 1; round < 2; round++) {
        uint64_t first = 1000000 + ((uint64_t)t * 2 + (uint64_t)round) * 1000 + chunk;
        mibps = put_batch(s, chunk, batch, bufs, first, keys);
    }
    kvt_store_close(s);
    free(keys);
    return mibps;
}

/* MiB/s of fio reading `bytes` it has just written, in read shape bs x qd: the state the
 * tier's reads meet (chunks just written). Data read again reads faster on this VM (in one
 * check, 0.8-0.9 GB/s for the first read after a write, 1.2-2.4 for the next ones). */
static double fresh_read(size_t bytes, int bs, int qd)
{
    fio("write", bytes, req_kib, depth, 0);
    return fio("read", bytes, bs, qd, 0);
}

/* The device ceiling for `bytes` (0 without fio): the best read shape found. */
static double ceiling_read(size_t bytes)
{
    return !quick && ceil_bs ? fresh_read(bytes, ceil_bs, ceil_qd) : 0;
}

static void bench_chunk(size_t chunk, int batch)
{
    int n = quick ? 1 : trials;
    double *put = calloc((size_t)n, sizeof *put), *get = calloc((size_t)n, sizeof *get),
           *bat = calloc((size_t)n, sizeof *bat), *fw = calloc((size_t)n, sizeof *fw),
           *fr = calloc((size_t)n, sizeof *fr), *ff = calloc((size_t)n, sizeof *ff),
           *cl = calloc((size_t)n, sizeof *cl), *rw = calloc((size_t)n, sizeof *rw),
           *rr = calloc((size_t)n, sizeof *rr), *r1 = calloc((size_t)n, sizeof *r1),
           *pf = calloc((size_t)n, sizeof *pf);
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
    for (int k = 0; k < 2; k++) { /* what an earlier run left */
        kvt_store *s0 = open_store(k ? "full" : "tier", 1.0 / 1024, 64);
        uint64_t gone = 0;
        kvt_clear(s0, &gone);
        kvt_store_close(s0);
    }
    for (int t = 0; t < n; t++) {
        if (!quick) {
            fw[t] = fio("write", chunk * (size_t)batch, req_kib, depth, 0);
            ff[t] = fio("write", chunk * (size_t)batch, req_kib, depth, batch);
            fr[t] = fio("read", chunk * (size_t)batch, req_kib, depth, 0);
        }
        /* The raw loop and kvtier take turns going first: neither always meets the
         * device just after the other's writes. */
        for (int half = 0; half < 2; half++) {
            if ((half == 0) == (t % 2 == 0)) {
                rw[t] = raw_loop(true, false, bufs, chunk, batch);
                rr[t] = raw_loop(false, false, bufs, chunk, batch);
                r1[t] = raw_loop(false, true, bufs, chunk, batch);
                continue;
            }
            /* put: a store whose CPU tier stages the batch */
            kvt_store *s = open_store("tier", (double)chunk * (batch + 2) / (MiB * 1024), 64);
            put[t] = put_batch(s, chunk, batch, bufs, (uint64_t)t * 1000 + chunk, keys);
            /* batched get: CPU tier bypassed, one batch */
            bool was;
            kvt_backend_set_bypass(s, "LocalCPUBackend", true, &was);
            if (t == 0) {
                kvt_backend_stats st;
                kvt_backend_get_stats(s, TIER, &st);
                printf("# %s mode=%s\n", TIER, st.mode);
            }
            /* The ceiling is read next to the batched get, before it and after it in
             * turn: this disk's speed drifts from second to second. */
            if (t % 2 == 0)
                cl[t] = ceiling_read(chunk * (size_t)batch);
            size_t hits = 0;
            double t0 = bench_now();
            int rc = kvt_batched_get_into(s, (size_t)batch, keys, bufs, caps, lens, sts, &hits);
            bat[t] = total / (bench_now() - t0);
            if (rc != KVT_OK || hits != (size_t)batch)
                bench_die("batched_get_into", rc ? rc : KVT_ENOENT);
            if (t % 2 == 1)
                cl[t] = ceiling_read(chunk * (size_t)batch);
            kvt_store_close(s);
            /* get_into: a CPU tier too small to stage a chunk, so reads go straight in */
            s = open_store("tier", 1.0 / 1024, 64);
            t0 = bench_now();
            for (int i = 0; i < batch; i++) {
                size_t len = 0;
                if ((rc = kvt_get_into(s, &keys[i], bufs[i], chunk, &len)) != KVT_OK)
                    bench_die("get_into", rc);
            }
            get[t] = total / (bench_now() - t0);
            uint64_t tokens = 0;
            kvt_clear(s, &tokens);
            kvt_store_close(s);
            pf[t] = put_full(t, chunk, batch, bufs);
        }
    }
    int mib = (int)(chunk / (1024 * 1024));
    ratios(PFX "_put_ratio", mib, put, rw, n);
    ratios(PFX "_get_into_ratio", mib, get, r1, n);
    ratios(PFX "_batched_get_ratio", mib, bat, rr, n);
    if (!quick && fw[0] > 0) {
        ratios(PFX "_put_fio_ratio", mib, put, fw, n);
        ratios(PFX "_put_fio_fresh_ratio", mib, put, ff, n);
        ratios(PFX "_put_full_fio_ratio", mib, pf, fw, n);
        ratios(PFX "_get_into_fio_ratio", mib, get, fr, n);
        ratios(PFX "_batched_get_fio_ratio", mib, bat, fr, n);
        if (ceil_bs) {
            ratios(PFX "_batched_get_ceiling_ratio", mib, bat, cl, n);
            char name[96];
            snprintf(name, sizeof name, "fio_read_ceiling_MiBps_%dMiB_trials", mib);
            bench_report(name, cl, n);
        }
        bandwidth("fio_write", mib, true, fw, n);
        bandwidth("fio_fresh_write", mib, true, ff, n);
        bandwidth("fio_read", mib, true, fr, n);
    }
    bandwidth("raw_write", mib, true, rw, n);
    bandwidth("raw_read", mib, true, rr, n);
    bandwidth("raw_read_one_at_a_time", mib, true, r1, n);
    bandwidth("kvtier_put", mib, false, put, n);
    bandwidth("kvtier_put_full_tier", mib, false, pf, n);
    bandwidth("kvtier_get_into", mib, false, get, n);
    bandwidth("kvtier_batched_get", mib, false, bat, n);
    fflush(stdout);
    for (int i = 0; i < batch; i++)
        free(bufs[i]);
    free(bufs), free(caps), free(lens), free(sts), free(keys);
    free(put), free(get), free(bat), free(fw), free(ff), free(cl), free(fr), free(rw), free(rr);
    free(r1), free(pf);
}

/* Finds the fio read shape with the best bandwidth (the device ceiling), which each trial
 * then measures again, interleaved with the others. */
static void ceiling(void)
{
    static const int bs[] = {512, 1024, 4096, 8192};
    static const int qd[] = {32, 64};
    double best = 0;
    for (size_t i = 0; i < sizeof bs / sizeof bs[0]; i++)
        for (size_t j = 0; j < sizeof qd / sizeof qd[0]; j++) {
            double bw = fresh_read(256u << 20, bs[i], qd[j]);
            if (bw > best) {
                best = bw;
                ceil_bs = bs[i];
                ceil_qd = qd[j];
                printf("# fio read bs=%dk qd=%d: %.0f MiB/s\n", bs[i], qd[j], bw);
            }
        }
    printf("# ceiling shape: bs=%dk qd=%d, read again next to every batched get\n", ceil_bs, ceil_qd);
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
            bench_die("put", rc);
    }
    kvt_flush(s, -1);
    kvt_store_close(s);
    sync();
    int fd = open("/proc/sys/vm/drop_caches", O_WRONLY);
    bool cold = fd >= 0 && write(fd, "3", 1) == 1;
    if (fd >= 0)
        close(fd);
    double t0 = bench_now();
    s = open_store(sub, 0.25, 64);
    double dt = bench_now() - t0;
    kvt_backend_stats st;
    kvt_backend_get_stats(s, TIER, &st);
    printf(PFX "_reindex_%d_s=%.3f objects=%llu cold_cache=%d\n", nfiles, dt,
           (unsigned long long)st.objects, cold);
    uint64_t tokens = 0;
    kvt_clear(s, &tokens);
    kvt_store_close(s);
}

/* A key's default from the config table: the shape the tier runs at unless told. */
static int64_t tier_default(const char *key)
{
    kvt_config *cfg = NULL;
    int64_t v = 0;
    if (kvt_config_new(&cfg) != KVT_OK || kvt_config_get_int(cfg, key, &v) != KVT_OK)
        bench_die(key, KVT_EINVAL);
    kvt_config_free(cfg);
    return v;
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
        else if (!strcmp(argv[i], "--request-kib") && i + 1 < argc)
            req_kib = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--depth") && i + 1 < argc)
            depth = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-reindex"))
            no_reindex = true;
        else {
            fprintf(stderr, "usage: bench_" PFX " [--quick] [--dir DIR] [--trials N] "
                            "[--request-kib N] [--depth N] [--no-reindex]\n");
            return 2;
        }
    }
    trials = trials < 1 ? 1 : trials > 64 ? 64 : trials;
    req_kib = req_kib > 0 ? req_kib : (int)tier_default("local_disk_request_kib");
    depth = depth > 0 ? depth : (int)tier_default("local_disk_queue_depth");
    req_kib = (req_kib + 3) / 4 * 4;
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
    if (fio("read", 64u << 20, 512, 32, 0) <= 0)
        printf("# fio not found: ratios omitted (tests/install-deps.sh installs it)\n");
    else
        ceiling();
    bench_chunk(14u << 20, 8);
    bench_chunk(32u << 20, 8);
    if (!no_reindex) {
        reindex(10000);
        reindex(100000);
    }
    char f[600];
    snprintf(f, sizeof f, "%s/fio.dat", dir);
    unlink(f);
    return 0;
}
