/* LocalDiskBackend with real files and real failures: round trips through the store with
 * a CPU tier too small for the data, batched gets, restart re-index (cap lowered between
 * runs), corrupt and truncated files, a real full filesystem (a loop-mounted ext4 image;
 * a tmpfs for the buffered fallback), io_uring refused by a seccomp filter in a forked
 * child, the cap under churn, pins, concurrent put/get, a timed close with writes
 * pending, and close/create/recreate under load. Directories live under $KVT_TEST_TMP. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "backends/local_disk/local_disk.h"
#include "src/store.h"
#include "testkit.h"

#define DISK "LocalDiskBackend"
#define LEN (256u * 1024 + 123) /* not a multiple of 4096: the tail page path */
#define FILE_BYTES (4096u + (LEN + 4095) / 4096 * 4096)

static char root[512];

static void rm_rf(const char *path)
{
    DIR *d = opendir(path);
    if (d) {
        for (struct dirent *de; (de = readdir(d));) {
            char p[1024];
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                continue;
            snprintf(p, sizeof p, "%s/%s", path, de->d_name);
            rm_rf(p);
        }
        closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

/* A fresh, empty directory for one test. */
static const char *fresh_dir(const char *name)
{
    static char buf[8][600];
    static int next;
    char *p = buf[next++ % 8];
    snprintf(p, 600, "%s/%s", root, name);
    rm_rf(p);
    assert_int_equal(mkdir(p, 0755), 0);
    return p;
}

static kvt_store *open_disk(const char *dirs, double cpu_mib, double disk_mib, const char *k,
                            const char *v)
{
    kvt_config *cfg = tk_config(cpu_mib);
    kvt_store *s = NULL;
    assert_int_equal(kvt_config_set(cfg, "local_disk", dirs), KVT_OK);
    assert_int_equal(kvt_config_set_float(cfg, "max_local_disk_size", disk_mib / 1024.0), KVT_OK);
    assert_int_equal(kvt_config_set_int(cfg, "write_queue_timeout_ms", 5000), KVT_OK);
    if (k)
        assert_int_equal(kvt_config_set(cfg, k, v), KVT_OK);
    int rc = kvt_store_open(cfg, &tk_quiet, &s);
    if (rc != KVT_OK)
        fail_msg("open: %s: %s", kvt_status_name(rc), kvt_last_error());
    kvt_config_free(cfg);
    return s;
}

static void flush(kvt_store *s) { assert_int_equal(kvt_flush(s, 30000), KVT_OK); }

static void put_h(kvt_store *s, uint64_t h)
{
    static _Thread_local unsigned char buf[LEN];
    kvt_key k = tk_key(h);
    tk_fill(buf, LEN, h);
    int rc = kvt_put(s, &k, buf, LEN, NULL);
    if (rc == KVT_ENOMEM) { /* the small CPU tier is full of chunks still being written */
        flush(s);
        rc = kvt_put(s, &k, buf, LEN, NULL);
    }
    if (rc != KVT_OK)
        fail_msg("put %llu: %s: %s", (unsigned long long)h, kvt_status_name(rc), kvt_last_error());
}

/* KVT_OK with the right bytes, or the miss/error status. Wrong bytes fail the test. */
static int get_h(kvt_store *s, uint64_t h)
{
    static _Thread_local unsigned char got[LEN + 8192], want[LEN];
    size_t len = 0;
    kvt_key k = tk_key(h);
    int rc = kvt_get_into(s, &k, got, sizeof got, &len);
    if (rc == KVT_OK) {
        tk_fill(want, LEN, h);
        assert_int_equal(len, LEN);
        assert_memory_equal(got, want, LEN);
    }
    return rc;
}

static kvt_backend_stats disk_stats(kvt_store *s)
{
    kvt_backend_stats st;
    assert_int_equal(kvt_backend_get_stats(s, DISK, &st), KVT_OK);
    return st;
}

static struct kvt__disk_counters counters(kvt_store *s)
{
    struct kvt__disk_counters c = {0};
    kvt__snap *sn = kvt__snap_get(s);
    kvt__bk *bk = kvt__snap_find(sn, DISK);
    assert_non_null(bk);
    kvt__local_disk_counters(bk->state, &c);
    kvt__snap_put(sn);
    return c;
}

/* Files in `dir` whose name ends with `suffix` (or contains ".tmp." when suffix is NULL);
 * `*bytes` gets their total size. */
static size_t count_files(const char *dir, const char *suffix, uint64_t *bytes)
{
    DIR *d = opendir(dir);
    size_t n = 0;
    if (bytes)
        *bytes = 0;
    assert_non_null(d);
    for (struct dirent *de; (de = readdir(d));) {
        size_t l = strlen(de->d_name);
        bool match = suffix ? l > strlen(suffix) && !strcmp(de->d_name + l - strlen(suffix), suffix)
                            : strstr(de->d_name, ".tmp.") != NULL;
        if (!match)
            continue;
        n++;
        if (bytes) {
            struct stat st;
            char p[1024];
            snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
            if (stat(p, &st) == 0)
                *bytes += (uint64_t)st.st_size;
        }
    }
    closedir(d);
    return n;
}

static void file_of(const char *dir, uint64_t h, char *out, size_t cap)
{
    char ks[KVT_KEY_STRING_MAX];
    kvt_key k = tk_key(h);
    assert_int_equal(kvt_key_to_string(&k, ks, sizeof ks), KVT_OK);
    snprintf(out, cap, "%s/%s.pt", dir, ks);
}

static int ping(kvt_store *s)
{
    kvt__snap *sn = kvt__snap_get(s);
    kvt__bk *bk = kvt__snap_find(sn, DISK);
    assert_non_null(bk);
    int rc = bk->ops->ping(bk->state);
    kvt__snap_put(sn);
    return rc;
}


/* ------------------------------------------------------------------ tests */

static void config_needs_cap(void **state)
{
    (void)state;
    kvt_config *cfg = tk_config(4);
    kvt_store *s = NULL;
    assert_int_equal(kvt_config_set(cfg, "local_disk", fresh_dir("nocap")), KVT_OK);
    assert_int_equal(kvt_store_open(cfg, &tk_quiet, &s), KVT_ECONFIG);
    assert_non_null(strstr(kvt_last_error(), "max_local_disk_size"));
    assert_null(s);
    kvt_config_free(cfg);
}

/* The shared round trip: CPU tier 1 MiB (3 chunks), disk 64 MiB. */
static void round_trip_in(const char *dir, const char *expect_mode)
{
    kvt_store *s = open_disk(dir, 1, 64, NULL, NULL);
    for (uint64_t h = 1; h <= 24; h++)
        put_h(s, h);
    flush(s);
    kvt_backend_stats st = disk_stats(s);
    assert_int_equal(st.objects, 24);
    assert_int_equal(st.bytes_used, 24 * FILE_BYTES);
    if (expect_mode)
        assert_string_equal(st.mode, expect_mode);
    for (uint64_t h = 1; h <= 24; h++)
        assert_int_equal(get_h(s, h), KVT_OK);
    assert_true(disk_stats(s).hits >= 20); /* the CPU tier held at most 3 */
    kvt_obj *obj = NULL; /* kvt_get: from disk, promoted into the CPU tier */
    kvt_key k = tk_key(2);
    assert_int_equal(kvt_get(s, &k, &obj), KVT_OK);
    assert_int_equal(kvt_obj_size(obj), LEN);
    kvt_obj_release(obj);
    assert_int_equal(get_h(s, 999), KVT_ENOENT);
    /* batched get from disk: one batch into the caller's buffers */
    enum { N = 8 };
    kvt_key keys[N];
    void *bufs[N];
    size_t caps[N], lens[N], hits = 0;
    int sts[N];
    for (int i = 0; i < N; i++) {
        keys[i] = tk_key(10 + (uint64_t)i);
        bufs[i] = malloc(LEN);
        caps[i] = LEN;
    }
    assert_int_equal(kvt_batched_get_into(s, N, keys, bufs, caps, lens, sts, &hits), KVT_OK);
    assert_int_equal(hits, N);
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < N; i++) {
            unsigned char *want = malloc(LEN);
            tk_fill(want, LEN, 10 + (uint64_t)i);
            assert_int_equal(sts[i], KVT_OK);
            assert_int_equal(lens[i], LEN);
            assert_memory_equal(bufs[i], want, LEN);
            memset(bufs[i], 0, LEN);
            free(want);
        }
        /* With the CPU tier bypassed nothing keeps the reads: the batch goes straight into
         * the caller's buffers (batched_get_into), unaligned ones included. */
        assert_int_equal(kvt_backend_set_bypass(s, "LocalCPUBackend", true, NULL), KVT_OK);
        assert_int_equal(kvt_batched_get_into(s, N, keys, bufs, caps, lens, sts, &hits), KVT_OK);
        assert_int_equal(hits, N);
    }
    unsigned char *odd = malloc(LEN + 1);
    void *one[1] = {odd + 1};
    size_t short_cap[1] = {LEN - 1};
    assert_int_equal(kvt_batched_get_into(s, 1, keys, one, short_cap, lens, sts, &hits), KVT_OK);
    assert_int_equal(sts[0], KVT_ETOOSMALL);
    assert_int_equal(lens[0], LEN);
    caps[0] = LEN;
    assert_int_equal(kvt_batched_get_into(s, 1, keys, one, caps, lens, sts, &hits), KVT_OK);
    assert_int_equal(sts[0], KVT_OK);
    tk_fill(bufs[0], LEN, 10);
    assert_memory_equal(odd + 1, bufs[0], LEN);
    free(odd);
    assert_int_equal(kvt_backend_set_bypass(s, "LocalCPUBackend", false, NULL), KVT_OK);
    for (int i = 0; i < N; i++)
        free(bufs[i]);
    size_t removed = 0;
    k = tk_key(5);
    assert_int_equal(kvt_remove(s, &k, &removed), KVT_OK);
    assert_int_equal(disk_stats(s).objects, 23);
    assert_int_equal(count_files(dir, ".pt", NULL), 23);
    assert_int_equal(ping(s), KVT_OK);
    assert_int_equal(kvt_store_close(s), KVT_OK);
}

static void round_trip(void **state)
{
    (void)state;
    round_trip_in(fresh_dir("rt"), "io_uring");
}

/* Two directories: chunks spread by hash, both found again. */
static void two_dirs(void **state)
{
    (void)state;
    char csv[1300];
    const char *a = fresh_dir("two_a"), *b = fresh_dir("two_b");
    snprintf(csv, sizeof csv, "file://%s,%s", a, b);
    kvt_store *s = open_disk(csv, 1, 64, NULL, NULL);
    for (uint64_t h = 1; h <= 10; h++)
        put_h(s, h);
    flush(s);
    assert_int_equal(count_files(a, ".pt", NULL) + count_files(b, ".pt", NULL), 10);
    assert_int_equal(count_files(a, ".pt", NULL), 5);
    assert_int_equal(kvt_store_close(s), KVT_OK);
    s = open_disk(csv, 1, 64, NULL, NULL);
    assert_int_equal(disk_stats(s).objects, 10);
    for (uint64_t h = 1; h <= 10; h++)
        assert_int_equal(get_h(s, h), KVT_OK);
    assert_int_equal(kvt_store_close(s), KVT_OK);
}

static void restart_reindex(void **state)
{
    (void)state;
    const char *dir = fresh_dir("reindex");
    char p[1200];
    kvt_store *s = open_disk(dir, 1, 64, NULL, NULL);
    for (uint64_t h = 1; h <= 40; h++)
        put_h(s, h);
    flush(s);
    assert_int_equal(kvt_store_close(s), KVT_OK);
    /* a write a crash interrupted */
    snprintf(p, sizeof p, "%s/.x.pt.tmp.0123456789abcdef", dir);
    int fd = open(p, O_CREAT | O_WRONLY, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "half", 4), 4);
    close(fd);

    s = open_disk(dir, 1, 64, NULL, NULL);
    kvt_backend_stats st = disk_stats(s);
    assert_int_equal(st.objects, 40);
    assert_int_equal(st.bytes_used, 40 * FILE_BYTES);
    assert_int_equal(counters(s).stale_tmp, 1);
    assert_int_equal(count_files(dir, NULL, NULL), 0);
    for (uint64_t h = 1; h <= 40; h++)
        assert_int_equal(get_h(s, h), KVT_OK);
    assert_int_equal(kvt_store_close(s), KVT_OK);

    /* LRU order comes from mtime (coarse: set it), 1..5 most recent; then lower the cap
     * to 10 files. */
    for (uint64_t h = 1; h <= 40; h++) {
        struct timespec ts[2] = {{0, UTIME_OMIT}, {1700000000 + (time_t)(h <= 5 ? 100 + h : h), 0}};
        file_of(dir, h, p, sizeof p);
        assert_int_equal(utimensat(AT_FDCWD, p, ts, 0), 0);
    }
    double mib = 10.0 * FILE_BYTES / (1024.0 * 1024.0) + 0.01;
    s = open_disk(dir, 1, mib, NULL, NULL);
    st = disk_stats(s);
    assert_int_equal(st.objects, 10);
    assert_true(st.bytes_used <= st.capacity_bytes);
    uint64_t bytes;
    assert_int_equal(count_files(dir, ".pt", &bytes), 10);
    assert_true(bytes <= st.capacity_bytes);
    for (uint64_t h = 1; h <= 5; h++) /* the most recent survive */
        assert_int_equal(get_h(s, h), KVT_OK);
    for (uint64_t h = 36; h <= 40; h++)
        assert_int_equal(get_h(s, h), KVT_OK);
    assert_int_equal(get_h(s, 6), KVT_ENOENT);
    assert_int_equal(kvt_store_close(s), KVT_OK);
}

static void flip_byte(const char *path, off_t off)
{
    int fd = open(path, O_RDWR);
    unsigned char c;
    assert_true(fd >= 0);
    assert_int_equal(pread(fd, &c, 1, off), 1);
    c ^= 0x5a;
    assert_int_equal(pwrite(fd, &c, 1, off), 1);
    close(fd);
}

static void corruption(void **state)
{
    (void)state;
    const char *dir = fresh_dir("corrupt");
    char p[1200], q[1300];
    kvt_store *s = open_disk(dir, 1, 64, NULL, NULL);
    for (uint64_t h = 1; h <= 8; h++)
        put_h(s, h);
    flush(s);

    /* At run time: payload flipped, file truncated under the tier. */
    file_of(dir, 7, p, sizeof p);
    flip_byte(p, 4096 + 1000);
    file_of(dir, 8, p, sizeof p);
    assert_int_equal(truncate(p, 4096 + 100), 0);
    kvt_key k7 = tk_key(7), k8 = tk_key(8);
    /* the CPU tier may still hold 7 and 8: read the disk tier alone */
    kvt__snap *sn = kvt__snap_get(s);
    kvt__bk *bk = kvt__snap_find(sn, DISK);
    size_t pad_len = (LEN + 4095) / 4096 * 4096;
    unsigned char *buf = aligned_alloc(4096, pad_len);
    size_t len = 0;
    assert_int_equal(bk->ops->get_into(bk->state, &k7, buf, pad_len, &len), KVT_ENOENT);
    assert_int_equal(bk->ops->get_into(bk->state, &k8, buf, pad_len, &len), KVT_ENOENT);
    assert_int_equal(bk->ops->contains(bk->state, &k7), 0);
    kvt_obj *obj = NULL;
    kvt_key k6 = tk_key(6);
    file_of(dir, 6, p, sizeof p);
    flip_byte(p, 4096 + LEN - 1); /* the last byte: in the tail page */
    assert_int_equal(bk->ops->get(bk->state, &k6, &obj), KVT_ENOENT);
    assert_null(obj);
    free(buf);
    kvt__snap_put(sn);
    struct kvt__disk_counters c = counters(s);
    assert_int_equal(c.corrupt, 3);
    assert_int_equal(c.quarantined, 3);
    snprintf(q, sizeof q, "%s/quarantine", dir);
    assert_int_equal(count_files(q, ".pt", NULL), 3);
    assert_int_equal(disk_stats(s).objects, 5);
    assert_int_equal(kvt_store_close(s), KVT_OK);

    /* At open: a header byte flipped, a file cut inside its header, bad magic, a name
     * that is not its key's. */
    file_of(dir, 1, p, sizeof p);
    flip_byte(p, 70);
    file_of(dir, 2, p, sizeof p);
    assert_int_equal(truncate(p, 100), 0);
    file_of(dir, 3, p, sizeof p);
    flip_byte(p, 0);
    /* A whole file under another chunk's name (an overwrite whose rename a crash lost). */
    char other[1200];
    file_of(dir, 4, p, sizeof p);
    file_of(dir, 99, other, sizeof other);
    assert_int_equal(rename(p, other), 0);
    s = open_disk(dir, 1, 64, NULL, NULL);
    c = counters(s);
    assert_int_equal(c.corrupt, 4);
    assert_int_equal(disk_stats(s).objects, 1);
    assert_int_equal(get_h(s, 1), KVT_ENOENT);
    assert_int_equal(get_h(s, 4), KVT_ENOENT);
    assert_int_equal(get_h(s, 99), KVT_ENOENT);
    assert_int_equal(get_h(s, 5), KVT_OK);
    /* quarantine holds at most 8 files; its bytes count against the cap */
    assert_int_equal(count_files(q, ".pt", NULL), 7);
    assert_true(disk_stats(s).bytes_used > 2 * FILE_BYTES);
    assert_int_equal(kvt_store_close(s), KVT_OK);
}

static void cap_under_churn(void **state)
{
    (void)state;
    const char *dir = fresh_dir("churn");
    double mib = 6.5 * FILE_BYTES / (1024.0 * 1024.0);
    kvt_store *s = open_disk(dir, 1, mib, "write_queue_depth", "4");
    uint64_t cap = disk_stats(s).capacity_bytes;
    for (uint64_t h = 1; h <= 150; h++) {
        put_h(s, h);
        kvt_backend_stats st = disk_stats(s);
        assert_true(st.bytes_used <= cap); /* the tier's count, while writes run */
        if (h % 5)
            continue;
        /* The files themselves, between writes: two directory passes while the writer
         * evicts and creates (preallocated, full-size) temp files could count one file
         * evicted after the first pass and a new one in the second. */
        flush(s);
        uint64_t bytes, tmpb;
        count_files(dir, ".pt", &bytes);
        count_files(dir, NULL, &tmpb);
        assert_true(bytes + tmpb <= cap);
        assert_int_equal(bytes, disk_stats(s).bytes_used);
    }
    flush(s);
    kvt_backend_stats st = disk_stats(s);
    assert_int_equal(st.objects, 6);
    assert_true(st.evictions >= 140);
    assert_int_equal(get_h(s, 150), KVT_OK);
    assert_int_equal(kvt_store_close(s), KVT_OK);
}

/* batched_put of more chunks than the cap holds: every put lands (the batch is cut into
 * slices the cap can hold, so older chunks are evicted rather than puts refused), the cap
 * holds, the newest chunks are the ones kept, and each evicted file was overwritten by a
 * new chunk rather than unlinked. Then a batched read with a corrupt chunk
 * in the middle: that one alone misses and is quarantined. */
static void batches_wider_than_the_cap(void **state)
{
    (void)state;
    const char *dir = fresh_dir("batch");
    kvt_store *s = open_disk(dir, 4, 3.5 * FILE_BYTES / (1024.0 * 1024.0), NULL, NULL);
    kvt__snap *sn = kvt__snap_get(s);
    kvt__bk *bk = kvt__snap_find(sn, DISK);
    kvt_key keys[8];
    kvt_obj *objs[8];
    int sts[8];
    for (uint64_t i = 0; i < 8; i++) {
        keys[i] = tk_key(i + 1);
        assert_int_equal(kvt_obj_alloc(s, LEN, NULL, &objs[i]), KVT_OK);
        tk_fill(kvt_obj_data_mut(objs[i]), LEN, i + 1);
    }
    assert_int_equal(bk->ops->batched_put(bk->state, 8, keys, objs, sts), KVT_OK);
    for (size_t i = 0; i < 8; i++) {
        assert_int_equal(sts[i], KVT_OK);
        kvt_obj_release(objs[i]);
    }
    kvt_backend_stats st = disk_stats(s);
    assert_true(st.bytes_used <= st.capacity_bytes);
    assert_int_equal(st.objects, 3);
    for (uint64_t h = 6; h <= 8; h++)
        assert_int_equal(bk->ops->contains(bk->state, &keys[h - 1]), 1);
    /* Slices of 3, 3 and 2: the last 5 puts each overwrote an evicted chunk's file. */
    assert_int_equal(counters(s).recycled, 5);
    uint64_t bytes = 0;
    assert_int_equal(count_files(dir, ".pt", &bytes), 3);
    assert_int_equal(count_files(dir, NULL, NULL), 0);
    assert_int_equal(bytes, st.bytes_used);

    char p[1200];
    file_of(dir, 7, p, sizeof p);
    flip_byte(p, 4096 + 5000);
    size_t pad = (LEN + 4095) / 4096 * 4096, lens[3], caps[3] = {pad, pad, pad};
    unsigned char *bufs[3], want[LEN];
    for (int i = 0; i < 3; i++)
        bufs[i] = aligned_alloc(4096, pad);
    assert_int_equal(bk->ops->batched_get_into(bk->state, 3, keys + 5, (void *const *)bufs, caps,
                                               lens, sts), KVT_OK);
    assert_int_equal(sts[0], KVT_OK);
    assert_int_equal(sts[1], KVT_ENOENT);
    assert_int_equal(sts[2], KVT_OK);
    for (int i = 0; i < 3; i += 2) {
        tk_fill(want, LEN, (uint64_t)i + 6);
        assert_int_equal(lens[i], LEN);
        assert_memory_equal(bufs[i], want, LEN);
    }
    assert_int_equal(counters(s).quarantined, 1);
    for (int i = 0; i < 3; i++)
        free(bufs[i]);
    kvt__snap_put(sn);
    assert_int_equal(kvt_store_close(s), KVT_OK);
}

static void pins_hold(void **state)
{
    (void)state;
    const char *dir = fresh_dir("pins");
    double mib = 6.5 * FILE_BYTES / (1024.0 * 1024.0);
    kvt_store *s = open_disk(dir, 0.6, mib, NULL, NULL);
    kvt_key keys[3] = {tk_key(1), tk_key(2), tk_key(3)};
    for (uint64_t h = 1; h <= 3; h++)
        put_h(s, h);
    flush(s);
    size_t hits = 0;
    kvt_pin *pin = NULL;
    assert_int_equal(kvt_lookup_prefix(s, keys, 3, &hits, NULL, 0, NULL, &pin), KVT_OK);
    assert_int_equal(hits, 3);
    assert_int_equal(disk_stats(s).pinned, 3);
    for (uint64_t h = 10; h <= 40; h++)
        put_h(s, h);
    flush(s);
    for (uint64_t h = 1; h <= 3; h++)
        assert_int_equal(kvt_contains(s, &keys[h - 1], NULL), KVT_OK);
    assert_int_equal(kvt_unpin(s, pin), KVT_OK);
    assert_int_equal(disk_stats(s).pinned, 0);
    for (uint64_t h = 50; h <= 60; h++)
        put_h(s, h);
    flush(s);
    assert_int_equal(disk_stats(s).objects, 6);
    assert_int_equal(kvt_store_close(s), KVT_OK);
}

/* The library's unlinkat, interposed (the tests link kvtier's objects, not the .so): while
 * `ul_park` is set, an unlink of a temp name waits, as a filesystem slowly freeing a big
 * file's blocks would. */
static pthread_mutex_t ul_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ul_cv = PTHREAD_COND_INITIALIZER;
static bool ul_park;
static int ul_parked;

int unlinkat(int dfd, const char *path, int flags)
{
    pthread_mutex_lock(&ul_mu);
    if (ul_park && strstr(path, ".tmp.")) {
        ul_parked++;
        pthread_cond_broadcast(&ul_cv);
        while (ul_park)
            pthread_cond_wait(&ul_cv, &ul_mu);
    }
    pthread_mutex_unlock(&ul_mu);
    return (int)syscall(SYS_unlinkat, dfd, path, flags);
}

static void unpark(void)
{
    pthread_mutex_lock(&ul_mu);
    ul_park = false;
    pthread_cond_broadcast(&ul_cv);
    pthread_mutex_unlock(&ul_mu);
}

/* The test's teardown too: a failed test leaves no unlink parked for the next ones. */
static int unparked(void **state)
{
    (void)state;
    unpark();
    return 0;
}

struct side {
    kvt_store *s;
    int rc;
    bool exact;
};

static void *remove_one(void *arg)
{
    struct side *x = arg;
    kvt_key k = tk_key(1);
    size_t removed = 0;
    x->rc = kvt_remove(x->s, &k, &removed);
    return NULL;
}

static void *read_two(void *arg)
{
    static unsigned char got[LEN + 8192], want[LEN];
    struct side *x = arg;
    kvt_key k = tk_key(2);
    size_t len = 0;
    x->rc = kvt_get_into(x->s, &k, got, sizeof got, &len);
    tk_fill(want, LEN, 2);
    x->exact = x->rc == KVT_OK && len == LEN && memcmp(got, want, LEN) == 0;
    return NULL;
}

/* A dropped chunk's file is renamed aside under the tier's lock and unlinked outside it:
 * while its unlink is stuck, the tier serves reads, and its bytes stay counted. */
static void unlink_outside_the_lock(void **state)
{
    (void)state;
    const char *dir = fresh_dir("unlink");
    kvt_store *s = open_disk(dir, 0.6, 6.5 * FILE_BYTES / (1024.0 * 1024.0), NULL, NULL);
    for (uint64_t h = 1; h <= 3; h++)
        put_h(s, h);
    flush(s);
    bool was;
    assert_int_equal(kvt_backend_set_bypass(s, "LocalCPUBackend", true, &was), KVT_OK);
    pthread_mutex_lock(&ul_mu);
    ul_park = true;
    ul_parked = 0;
    pthread_mutex_unlock(&ul_mu);
    pthread_t t, r;
    struct side rm = {s, -1, false}, rd = {s, -1, false};
    assert_int_equal(pthread_create(&t, NULL, remove_one, &rm), 0);
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 10;
    pthread_mutex_lock(&ul_mu);
    while (ul_parked == 0 && pthread_cond_timedwait(&ul_cv, &ul_mu, &dl) == 0)
        ;
    int parked = ul_parked;
    pthread_mutex_unlock(&ul_mu);
    assert_int_equal(parked, 1);

    /* a read from disk while the unlink is stuck, in a thread: a regression hangs it */
    assert_int_equal(pthread_create(&r, NULL, read_two, &rd), 0);
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 5;
    if (pthread_timedjoin_np(r, NULL, &dl) != 0) {
        unpark();
        pthread_join(r, NULL);
        pthread_join(t, NULL);
        fail_msg("a read waited for an unlink");
    }
    assert_true(rd.exact);
    assert_int_equal(get_h(s, 1), KVT_ENOENT);
    kvt_backend_stats st = disk_stats(s);
    assert_int_equal(st.objects, 2);
    assert_int_equal(st.bytes_used, 3 * FILE_BYTES); /* still on disk: still counted */
    assert_int_equal(count_files(dir, ".pt", NULL), 2);
    assert_int_equal(count_files(dir, NULL, NULL), 1); /* the file set aside */

    unpark();
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(rm.rc, KVT_OK);
    assert_int_equal(disk_stats(s).bytes_used, 2 * FILE_BYTES);
    assert_int_equal(count_files(dir, NULL, NULL), 0);
    assert_int_equal(kvt_store_close(s), KVT_OK);
}

/* ------------------------------------------------------------------ real faults */

static char mounted[2][600]; /* unmounted at exit too, should a test fail mid-way */

static bool mount_ok(const char *dir, const char *what)
{
    char cmd[2048];
    bool ok;
    if (!strcmp(what, "tmpfs")) {
        ok = mount("tmpfs", dir, "tmpfs", 0, "size=8m") == 0;
    } else {
        snprintf(cmd, sizeof cmd,
                 "truncate -s 16M %s.img && mkfs.ext4 -q -F %s.img >/dev/null 2>&1 && "
                 "mount -o loop %s.img %s 2>/dev/null", dir, dir, dir, dir);
        ok = system(cmd) == 0;
    }
    if (ok)
        kvt__strlcpy(mounted[!strcmp(what, "tmpfs")], dir, sizeof mounted[0]);
    else
        fprintf(stderr, "note: cannot mount a %s here (not root, or no loop devices): "
                        "skipping\n", what);
    return ok;
}

static void unmount(const char *dir)
{
    char img[700];
    umount2(dir, MNT_DETACH);
    snprintf(img, sizeof img, "%s.img", dir);
    unlink(img);
    for (int i = 0; i < 2; i++)
        if (!strcmp(mounted[i], dir))
            mounted[i][0] = '\0';
}

static void full_filesystem(void **state)
{
    (void)state;
    const char *dir = fresh_dir("full");
    if (!mount_ok(dir, "ext4")) {
        unmount(dir);
        skip(); /* cmocka: reported as skipped, not passed */
    }
    /* cap 256 MiB on a 16 MiB filesystem: the filesystem fills first */
    kvt_store *s = open_disk(dir, 1, 256, NULL, NULL);
    assert_string_equal(disk_stats(s).mode, "io_uring");
    for (uint64_t h = 1; h <= 80; h++)
        put_h(s, h); /* the CPU copy is honest; the disk copy fails past ~13 MiB */
    flush(s);
    kvt_backend_stats st = disk_stats(s);
    struct kvt__disk_counters c = counters(s);
    assert_true(st.put_failures > 0);
    assert_true(c.enospc > 0);
    assert_int_equal(count_files(dir, NULL, NULL), 0); /* no temp file left behind */
    uint64_t bytes;
    assert_int_equal(count_files(dir, ".pt", &bytes), st.objects);
    assert_int_equal(bytes, st.bytes_used);
    /* What was stored is whole (get_h checks the bytes). Not necessarily 1..objects: with
     * files preallocated, a put refused at its fallocate may be followed by one that fits. */
    uint64_t whole = 0;
    bool was;
    assert_int_equal(kvt_backend_set_bypass(s, "LocalCPUBackend", true, &was), KVT_OK);
    for (uint64_t h = 1; h <= 80; h++)
        whole += get_h(s, h) == KVT_OK;
    assert_int_equal(kvt_backend_set_bypass(s, "LocalCPUBackend", false, &was), KVT_OK);
    assert_int_equal(whole, st.objects);
    assert_int_equal(counters(s).corrupt, 0);
    /* space returns: puts work again */
    for (uint64_t h = 1; h <= 20; h++) {
        kvt_key k = tk_key(h);
        kvt_remove(s, &k, NULL);
    }
    uint64_t failed = st.put_failures;
    for (uint64_t h = 100; h <= 110; h++)
        put_h(s, h);
    flush(s);
    assert_int_equal(disk_stats(s).put_failures, failed);
    assert_int_equal(get_h(s, 105), KVT_OK);
    assert_int_equal(kvt_store_close(s), KVT_OK);
    unmount(dir);
}

/* tmpfs refuses O_DIRECT: buffered for that directory, the same round trip. */
static void tmpfs_buffered(void **state)
{
    (void)state;
    const char *dir = fresh_dir("tmpfs");
    if (!mount_ok(dir, "tmpfs"))
        skip();
    kvt_store *s = open_disk(dir, 1, 64, NULL, NULL);
    /* Kernels before 6.6 refuse O_DIRECT on tmpfs; newer ones accept it. Either way the
     * mode says what happened; the forced case below always runs buffered. */
    const char *mode = disk_stats(s).mode;
    assert_true(!strcmp(mode, "io_uring+buffered") || !strcmp(mode, "io_uring"));
    if (strcmp(mode, "io_uring") == 0) {
        assert_int_equal(kvt_store_close(s), KVT_OK);
        s = open_disk(dir, 1, 64, "local_disk_odirect", "false");
        assert_string_equal(disk_stats(s).mode, "io_uring+buffered");
    }
    for (uint64_t h = 1; h <= 40; h++)
        put_h(s, h);
    flush(s);
    kvt_backend_stats st = disk_stats(s);
    assert_true(st.put_failures > 0); /* 8 MiB filesystem */
    assert_int_equal(count_files(dir, NULL, NULL), 0);
    for (uint64_t h = 1; h <= st.objects; h++)
        assert_int_equal(get_h(s, h), KVT_OK);
    assert_int_equal(kvt_store_close(s), KVT_OK);
    unmount(dir);
}

/* In a forked child, seccomp makes io_uring_setup fail (EPERM, then ENOSYS); the tier
 * falls back to pread/pwrite and passes the same round trip. */
static void deny_uring_child(int err, const char *dir)
{
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ((unsigned)err & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof f / sizeof f[0], .filter = f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
        _exit(3);
    round_trip_in(dir, "pread");
    _exit(0);
}

static void uring_refused(void **state)
{
    (void)state;
    int errs[2] = {EPERM, ENOSYS};
    for (int i = 0; i < 2; i++) {
        const char *dir = fresh_dir(i ? "nouring2" : "nouring1");
        fflush(stdout);
        fflush(stderr);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0)
            deny_uring_child(errs[i], dir);
        int status = 0;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
}

/* ------------------------------------------------------------------ concurrency */

struct load {
    kvt_store *s;
    atomic_bool stop;
    atomic_long puts, hits, misses;
    unsigned id;
};

static void *putter(void *arg)
{
    struct load *l = arg;
    for (uint64_t i = 0; !atomic_load(&l->stop); i++) {
        uint64_t h = 1000 + (i * 2 + l->id) % 200;
        static _Thread_local unsigned char buf[LEN];
        kvt_key k = tk_key(h);
        tk_fill(buf, LEN, h);
        int rc = kvt_put(l->s, &k, buf, LEN, NULL);
        assert_true(rc == KVT_OK || rc == KVT_ENOMEM);
        atomic_fetch_add(&l->puts, 1);
    }
    return NULL;
}

static void *getter(void *arg)
{
    struct load *l = arg;
    for (uint64_t i = 0; !atomic_load(&l->stop); i++) {
        int rc = get_h(l->s, 1000 + (i * 7 + l->id) % 200); /* checks the bytes of a hit */
        atomic_fetch_add(rc == KVT_OK ? &l->hits : &l->misses, 1);
    }
    return NULL;
}

static void run_load(kvt_store *s, struct load l[4], pthread_t t[4])
{
    for (unsigned i = 0; i < 4; i++) {
        l[i].s = s;
        l[i].id = i;
        atomic_store(&l[i].stop, false);
        assert_int_equal(pthread_create(&t[i], NULL, i < 2 ? putter : getter, &l[i]), 0);
    }
}

static void stop_load(struct load l[4], pthread_t t[4])
{
    for (unsigned i = 0; i < 4; i++)
        atomic_store(&l[i].stop, true);
    for (unsigned i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
}

static void concurrent_put_get(void **state)
{
    (void)state;
    const char *dir = fresh_dir("conc");
    double mib = 40.0 * FILE_BYTES / (1024.0 * 1024.0);
    kvt_store *s = open_disk(dir, 1, mib, NULL, NULL);
    struct load l[4] = {0};
    pthread_t t[4];
    run_load(s, l, t);
    usleep(800 * 1000);
    stop_load(l, t);
    flush(s);
    assert_true(atomic_load(&l[2].hits) + atomic_load(&l[3].hits) > 0);
    kvt_backend_stats st = disk_stats(s);
    assert_true(st.bytes_used <= st.capacity_bytes);
    uint64_t bytes;
    assert_int_equal(count_files(dir, ".pt", &bytes), st.objects);
    assert_int_equal(bytes, st.bytes_used);
    assert_int_equal(kvt_store_close(s), KVT_OK);
}

static void timed_close_pending(void **state)
{
    (void)state;
    const char *dir = fresh_dir("tclose");
    kvt_store *s = open_disk(dir, 64, 256, NULL, NULL);
    for (uint64_t h = 1; h <= 60; h++)
        put_h(s, h);
    int rc = kvt_backend_close_timed(s, DISK, 1, 0);
    assert_true(rc == KVT_ETIMEDOUT || rc == KVT_OK);
    if (rc == KVT_ETIMEDOUT)
        assert_int_equal(kvt_backend_close_timed(s, DISK, 30000, 0), KVT_OK);
    assert_int_equal(kvt_store_close(s), KVT_OK);
    /* Every write that was pending is on disk whole: nothing half-visible. */
    assert_int_equal(count_files(dir, NULL, NULL), 0);
    s = open_disk(dir, 1, 256, NULL, NULL);
    struct kvt__disk_counters c = counters(s);
    assert_int_equal(c.corrupt, 0);
    assert_int_equal(c.stale_tmp, 0);
    assert_int_equal(disk_stats(s).objects, 60);
    for (uint64_t h = 1; h <= 60; h++)
        assert_int_equal(get_h(s, h), KVT_OK);
    assert_int_equal(kvt_store_close(s), KVT_OK);
}

static void lifecycle_under_load(void **state)
{
    (void)state;
    const char *dir = fresh_dir("life");
    double mib = 40.0 * FILE_BYTES / (1024.0 * 1024.0);
    kvt_store *s = open_disk(dir, 1, mib, NULL, NULL);
    struct load l[4] = {0};
    pthread_t t[4];
    run_load(s, l, t);
    for (int round = 0; round < 4; round++) {
        usleep(60 * 1000);
        assert_int_equal(kvt_backend_close(s, DISK), KVT_OK);
        usleep(20 * 1000);
        assert_int_equal(kvt_backends_create(s, NULL, 0, NULL), KVT_OK);
        usleep(60 * 1000);
        assert_int_equal(kvt_backend_recreate(s, DISK), KVT_OK);
    }
    stop_load(l, t);
    flush(s);
    kvt_backend_stats st = disk_stats(s);
    uint64_t bytes;
    assert_int_equal(count_files(dir, ".pt", &bytes), st.objects);
    assert_int_equal(bytes, st.bytes_used);
    assert_true(st.bytes_used <= st.capacity_bytes);
    assert_int_equal(kvt_store_close(s), KVT_OK);
}

int main(void)
{
    const char *tmp = getenv("KVT_TEST_TMP");
    snprintf(root, sizeof root, "%s/local_disk.%d", tmp ? tmp : "/tmp", (int)getpid());
    rm_rf(root);
    if (mkdir(root, 0755) != 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(config_needs_cap),
        cmocka_unit_test(round_trip),
        cmocka_unit_test(two_dirs),
        cmocka_unit_test(restart_reindex),
        cmocka_unit_test(corruption),
        cmocka_unit_test(cap_under_churn),
        cmocka_unit_test(batches_wider_than_the_cap),
        cmocka_unit_test(pins_hold),
        cmocka_unit_test_teardown(unlink_outside_the_lock, unparked),
        cmocka_unit_test(full_filesystem),
        cmocka_unit_test(tmpfs_buffered),
        cmocka_unit_test(uring_refused),
        cmocka_unit_test(concurrent_put_get),
        cmocka_unit_test(timed_close_pending),
        cmocka_unit_test(lifecycle_under_load),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    for (int i = 0; i < 2; i++)
        if (mounted[i][0])
            unmount(mounted[i]);
    rm_rf(root);
    return rc;
}
