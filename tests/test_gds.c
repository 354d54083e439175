/* GdsBackend with real files, in compat mode (this suite needs no GPU): round trip through
 * the store with a CPU tier too small for the data, batched get, restart re-index with the
 * cap lowered, a file built here byte for byte in LMCache's layout (contract §9.4) read
 * back, a kvtier-written file checked against that layout, corrupt sidecar / data header /
 * lengths → miss + quarantine, the cap under churn, the LocalDisk → GDS switch under
 * traffic through the C API, and the mode choice against the stand-in libraries of
 * tests/stub (missing library or symbol, failing cuFileDriverOpen, use_gds false), each
 * giving compat mode with its reason. The "works" stand-ins drive the gds-mode code path
 * (bounce buffers, cuFileRead/Write calls) with host memory: that exercises our code, and
 * is not a test of GPU I/O. Directories live under $KVT_TEST_TMP. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cmocka.h>

#include "backends/gds/gds.h"
#include "backends/local_disk/filetier.h"
#include "src/store.h"
#include "testkit.h"

#define GDS "GdsBackend"
#define LEN (256u * 1024 + 123) /* not a multiple of 4096: LMCache's files are not padded */
#define CHARGE (4096u + (LEN + 4095) / 4096 * 4096 + 4096) /* data file, whole pages, sidecar */

static char root[512];

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
    (void)sb, (void)flag, (void)f;
    return remove(p);
}

static const char *fresh(const char *name)
{
    static char buf[8][600];
    static int next;
    char *p = buf[next++ % 8];
    snprintf(p, 600, "%s/%s", root, name);
    nftw(p, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    assert_int_equal(mkdir(p, 0755), 0);
    return p;
}

/* A store with a CPU tier of cpu_mib and a GDS tier on `dir` capped at gds_mib; extra
 * key/value pairs after that, NULL-terminated. NULL when the open fails (status in *rc). */
static kvt_store *try_open(const char *dir, double cpu_mib, double gds_mib, int *rc, ...)
{
    kvt_config *cfg = tk_config(cpu_mib);
    kvt_store *s = NULL;
    va_list ap;
    assert_int_equal(kvt_config_set(cfg, "gds_path", dir), KVT_OK);
    assert_int_equal(kvt_config_set_float(cfg, "max_gds_size", gds_mib / 1024.0), KVT_OK);
    assert_int_equal(kvt_config_set_int(cfg, "write_queue_timeout_ms", 5000), KVT_OK);
    va_start(ap, rc);
    for (const char *k; (k = va_arg(ap, const char *));)
        assert_int_equal(kvt_config_set(cfg, k, va_arg(ap, const char *)), KVT_OK);
    va_end(ap);
    *rc = kvt_store_open(cfg, &tk_quiet, &s);
    kvt_config_free(cfg);
    return s;
}

#define open_gds(dir, cpu, gds, ...)                                                              \
    ({                                                                                            \
        int rc_;                                                                                  \
        kvt_store *s_ = try_open(dir, cpu, gds, &rc_, ##__VA_ARGS__, NULL);                       \
        if (!s_)                                                                                  \
            fail_msg("open: %s: %s", kvt_status_name(rc_), kvt_last_error());                     \
        s_;                                                                                       \
    })

static void flush(kvt_store *s) { assert_int_equal(kvt_flush(s, 30000), KVT_OK); }

/* Zero-copy puts: the chunk is built in a pool buffer and handed over. */
static void put_h(kvt_store *s, uint64_t h)
{
    kvt_key k = tk_key(h);
    kvt_obj *obj = NULL;
    int rc;
    for (int tries = 0; (rc = kvt_obj_alloc(s, LEN, NULL, &obj)) == KVT_ENOMEM && tries < 2; tries++)
        flush(s); /* the small CPU tier is full of chunks still being written */
    if (rc == KVT_OK) {
        tk_fill(kvt_obj_data_mut(obj), LEN, h);
        rc = kvt_put_obj(s, &k, obj);
        kvt_obj_release(obj);
    }
    if (rc != KVT_OK)
        fail_msg("put %" PRIu64 ": %s: %s", h, kvt_status_name(rc), kvt_last_error());
}

/* KVT_OK with the right bytes (a zero-copy get: the read lands in a pool object), or the
 * miss/error status. Wrong bytes fail the test. */
static int get_h(kvt_store *s, uint64_t h)
{
    static _Thread_local unsigned char want[LEN];
    kvt_key k = tk_key(h);
    kvt_obj *obj = NULL;
    int rc = kvt_get(s, &k, &obj);
    if (rc != KVT_OK)
        return rc;
    tk_fill(want, LEN, h);
    assert_int_equal(kvt_obj_size(obj), LEN);
    assert_memory_equal(kvt_obj_data(obj), want, LEN);
    kvt_obj_release(obj);
    return KVT_OK;
}

static kvt_backend_stats gstats(kvt_store *s)
{
    kvt_backend_stats st;
    assert_int_equal(kvt_backend_get_stats(s, GDS, &st), KVT_OK);
    return st;
}

/* The GDS instance's state, for the internal counters and the mode's reason. */
static void *gstate(kvt_store *s, kvt__snap **sn)
{
    *sn = kvt__snap_get(s);
    kvt__bk *bk = kvt__snap_find(*sn, GDS);
    assert_non_null(bk);
    return bk->state;
}

static struct kvt__ft_counters counters(kvt_store *s)
{
    struct kvt__ft_counters c;
    kvt__snap *sn;
    kvt__ft_counters(gstate(s, &sn), &c);
    kvt__snap_put(sn);
    return c;
}

static void reason(kvt_store *s, char *out, size_t cap)
{
    kvt__snap *sn;
    snprintf(out, cap, "%s", kvt__gds_reason(gstate(s, &sn)));
    kvt__snap_put(sn);
}

/* Python's urllib.parse.quote(s, safe=""), written here from the contract (not layout.c). */
static void quote(const char *s, char *out)
{
    for (; *s; s++)
        if ((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
            strchr("_.-~", *s))
            *out++ = *s;
        else
            out += sprintf(out, "%%%02X", (unsigned char)*s);
    *out = '\0';
}

/* LMCache's data file path of tk_key(h) under `dir`: {dir}/{h[:2]}/{h[2:4]}/{quote}... */
static void lmc_path(const char *dir, uint64_t h, char *out, size_t cap, bool mkdirs)
{
    char ks[KVT_KEY_STRING_MAX], q[512], dec[24], d[700];
    kvt_key k = tk_key(h);
    assert_int_equal(kvt_key_to_string(&k, ks, sizeof ks), KVT_OK);
    quote(ks, q);
    snprintf(dec, sizeof dec, "%" PRIu64, k.chunk_hash);
    snprintf(d, sizeof d, "%s/%.2s", dir, dec);
    if (mkdirs)
        mkdir(d, 0755);
    if (strlen(dec) > 2) { /* os.path.join of an empty h[2:4] adds nothing */
        snprintf(d + strlen(d), sizeof d - strlen(d), "/%.2s", dec + 2);
        if (mkdirs)
            mkdir(d, 0755);
    }
    assert_true((size_t)snprintf(out, cap, "%s/%.400s.kvcache.safetensors", d, q) < cap);
}

/* LMCache's 4096-byte header: u64 LE JSON length (LMCache counts the padding), json.dumps()
 * text, spaces. */
static void lmc_header(unsigned char h[4096], const char *dtype, const char *shape, uint64_t n,
                       int fmt)
{
    memset(h, ' ', 4096);
    uint64_t len = 4088;
    memcpy(h, &len, 8);
    int w = snprintf((char *)h + 8, 4088,
                     "{\"kvcache\": {\"dtype\": \"%s\", \"shape\": [%s], \"data_offsets\": [0, %" PRIu64
                     "], \"fmt\": %d, \"__metadata__\": {\"lmcache_version\": \"1\"}}}",
                     dtype, shape, n, fmt);
    h[8 + w] = ' '; /* snprintf's NUL */
}

static void write_file(const char *path, const void *a, size_t an, const void *b, size_t bn)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, a, an), (ssize_t)an);
    if (bn)
        assert_int_equal(write(fd, b, bn), (ssize_t)bn);
    close(fd);
}

static size_t read_file(const char *path, void *buf, size_t cap)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, cap);
    close(fd);
    return n < 0 ? 0 : (size_t)n;
}

static off_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

/* Files under `dir` (any depth, quarantine/ excluded) ending with `suffix`. */
static size_t nfiles_n;
static uint64_t nfiles_bytes;
static const char *nfiles_suffix;
static int count_entry(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
    (void)f;
    size_t l = strlen(p), sl = strlen(nfiles_suffix);
    if (flag == FTW_F && !strstr(p, "/quarantine/") && l > sl && !strcmp(p + l - sl, nfiles_suffix)) {
        nfiles_n++;
        nfiles_bytes += (uint64_t)sb->st_size;
    }
    return 0;
}
static size_t count_files(const char *dir, const char *suffix)
{
    nfiles_n = 0;
    nfiles_bytes = 0;
    nfiles_suffix = suffix;
    nftw(dir, count_entry, 16, FTW_PHYS);
    return nfiles_n;
}

/* ------------------------------------------------------------------ tests */

static void config_needs_cap(void **state)
{
    (void)state;
    int rc;
    kvt_store *s = try_open(fresh("cap0"), 4, 0, &rc, NULL);
    assert_null(s);
    assert_int_equal(rc, KVT_ECONFIG);
    assert_non_null(strstr(kvt_last_error(), "max_gds_size"));
}

static void round_trip_and_batch(void **state)
{
    (void)state;
    const char *dir = fresh("rt");
    kvt_store *s = open_gds(dir, 1, 64);
    kvt_backend_stats st = gstats(s);
    char why[256];
    assert_string_equal(st.mode, "compat"); /* no GPU, no libcufile here */
    reason(s, why, sizeof why);
    assert_true(why[0] != '\0');
    for (uint64_t h = 1; h <= 12; h++)
        put_h(s, h);
    flush(s);
    st = gstats(s);
    assert_int_equal(st.objects, 12);
    assert_int_equal(st.bytes_used, 12ull * CHARGE);
    assert_int_equal(count_files(dir, ".kvcache.safetensors"), 12);
    assert_int_equal(count_files(dir, ".kvcache.safetensors.metadata"), 12);
    for (uint64_t h = 1; h <= 12; h++) /* the 1 MiB CPU tier holds few: most come from GDS */
        assert_int_equal(get_h(s, h), KVT_OK);
    assert_true(gstats(s).hits > 0);

    /* batched get, CPU tier bypassed: one batch from GDS */
    enum { N = 6 };
    kvt_key keys[N];
    void *bufs[N];
    size_t caps[N], lens[N], hits = 0;
    int sts[N];
    bool was;
    assert_int_equal(kvt_backend_set_bypass(s, "LocalCPUBackend", true, &was), KVT_OK);
    for (int i = 0; i < N; i++) {
        keys[i] = tk_key((uint64_t)i + 1);
        bufs[i] = malloc(LEN);
        caps[i] = LEN;
    }
    keys[N - 1] = tk_key(999); /* a miss in the batch */
    assert_int_equal(kvt_batched_get_into(s, N, keys, bufs, caps, lens, sts, &hits), KVT_OK);
    assert_int_equal(hits, N - 1);
    unsigned char *want = malloc(LEN);
    for (int i = 0; i < N - 1; i++) {
        assert_int_equal(sts[i], KVT_OK);
        tk_fill(want, LEN, (uint64_t)i + 1);
        assert_memory_equal(bufs[i], want, LEN);
    }
    assert_int_equal(sts[N - 1], KVT_ENOENT);
    for (int i = 0; i < N; i++)
        free(bufs[i]);
    free(want);
    /* remove takes the data file and its sidecar */
    kvt_key k = tk_key(3);
    assert_int_equal(kvt_remove(s, &k, NULL), KVT_OK);
    flush(s);
    assert_int_equal(get_h(s, 3), KVT_ENOENT);
    assert_int_equal(count_files(dir, ".kvcache.safetensors.metadata"), 11);
    assert_int_equal(count_files(dir, ".kvcache.safetensors"), 11);
    kvt__snap *sn;
    assert_int_equal(kvt__gds_ops.ping(gstate(s, &sn)), KVT_OK);
    kvt__snap_put(sn);
    assert_int_equal(kvt_store_close(s), KVT_OK);
}

/* A file LMCache wrote (built here from the contract) is found at open and read back; a
 * file kvtier writes has LMCache's path, header and sidecar, byte for byte. */
static void lmcache_layout_both_ways(void **state)
{
    (void)state;
    const char *dir = fresh("lmc");
    char path[1024], side[1100];
    unsigned char h[4096], got[4096];
    enum { N = 10000 }; /* not a multiple of 4096: the file ends mid-page */
    unsigned char *payload = malloc(N);
    tk_fill(payload, N, 77);
    lmc_path(dir, 123456789, path, sizeof path, true);
    lmc_header(h, "U8", "10000", N, 1);
    write_file(path, h, 4096, payload, N);
    snprintf(side, sizeof side, "%s.metadata", path);
    write_file(side, h, 4096, NULL, 0);

    kvt_store *s = open_gds(dir, 1, 64);
    assert_int_equal(counters(s).indexed, 1);
    kvt_key k = tk_key(123456789);
    unsigned char *buf = malloc(N + 4096);
    size_t len = 0;
    assert_int_equal(kvt_get_into(s, &k, buf, N + 4096, &len), KVT_OK);
    assert_int_equal(len, N);
    assert_memory_equal(buf, payload, N);
    kvt_obj *obj = NULL; /* and through a pool object (O_DIRECT, whole pages) */
    bool was;
    assert_int_equal(kvt_backend_set_bypass(s, "LocalCPUBackend", true, &was), KVT_OK);
    assert_int_equal(kvt_get(s, &k, &obj), KVT_OK);
    assert_int_equal(kvt_obj_size(obj), N);
    assert_memory_equal(kvt_obj_data(obj), payload, N);
    assert_int_equal(kvt_obj_meta(obj)->fmt, 1);
    kvt_obj_release(obj);
    assert_int_equal(kvt_backend_set_bypass(s, "LocalCPUBackend", false, &was), KVT_OK);

    /* kvtier's file for tk_key(5): LMCache's path, header, sidecar and size */
    put_h(s, 5);
    flush(s);
    assert_int_equal(kvt_store_close(s), KVT_OK);
    char shape[32];
    snprintf(shape, sizeof shape, "%u", LEN);
    lmc_header(h, "U8", shape, LEN, 0);
    lmc_path(dir, 5, path, sizeof path, false);
    snprintf(side, sizeof side, "%s.metadata", path);
    assert_int_equal(file_size(path), 4096 + LEN);
    assert_int_equal(read_file(path, got, 4096), 4096);
    assert_memory_equal(got, h, 4096);
    assert_int_equal(file_size(side), 4096);
    assert_int_equal(read_file(side, got, 4096), 4096);
    assert_memory_equal(got, h, 4096);
    unsigned char *data = malloc(4096 + LEN), *want = malloc(LEN);
    assert_int_equal(read_file(path, data, 4096 + LEN), 4096 + LEN);
    tk_fill(want, LEN, 5);
    assert_memory_equal(data + 4096, want, LEN);
    assert_int_equal(count_files(dir, ""), 4); /* two files and their sidecars, no temp file */
    free(data), free(want), free(buf), free(payload);
}

/* Restart: the sidecars rebuild the index and the byte count; a lower cap holds at once. */
static void restart_reindex(void **state)
{
    (void)state;
    const char *dir = fresh("restart");
    kvt_store *s = open_gds(dir, 1, 64);
    for (uint64_t h = 1; h <= 20; h++)
        put_h(s, h);
    flush(s);
    assert_int_equal(kvt_store_close(s), KVT_OK);
    /* a stale temp file from an interrupted write goes */
    char path[1024], tmp[1100];
    lmc_path(dir, 1, path, sizeof path, false);
    snprintf(tmp, sizeof tmp, "%s.tmp0badf00d", path);
    write_file(tmp, "x", 1, NULL, 0);

    s = open_gds(dir, 1, 64);
    struct kvt__ft_counters c = counters(s);
    assert_int_equal(c.indexed, 20);
    assert_int_equal(c.stale_tmp, 1);
    assert_int_equal(gstats(s).bytes_used, 20ull * CHARGE);
    for (uint64_t h = 1; h <= 20; h++)
        assert_int_equal(get_h(s, h), KVT_OK);
    assert_int_equal(kvt_store_close(s), KVT_OK);

    double mib = 8.0 * CHARGE / (1024.0 * 1024.0); /* room for 8 */
    s = open_gds(dir, 1, mib);
    kvt_backend_stats st = gstats(s);
    assert_int_equal(st.objects, 8);
    assert_true(st.bytes_used <= st.capacity_bytes);
    assert_int_equal(counters(s).evictions, 12);
    assert_int_equal(count_files(dir, ".kvcache.safetensors"), 8);
    assert_int_equal(count_files(dir, ".metadata"), 8);
    assert_int_equal(kvt_store_close(s), KVT_OK);
}

/* Inverts the byte at `off` of `path`. */
static void flip_byte(const char *path, long off)
{
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    assert_int_equal(fseek(f, off, SEEK_SET), 0);
    int c = fgetc(f);
    assert_true(c != EOF);
    assert_int_equal(fseek(f, off, SEEK_SET), 0);
    assert_int_equal(fputc(c ^ 0xff, f), c ^ 0xff);
    assert_int_equal(fclose(f), 0);
}

/* A corrupt sidecar (at open), a corrupt data header (on read) and a data file whose size
 * disagrees with the header (at open): each a miss, quarantined, counted. */
static void corruption(void **state)
{
    (void)state;
    const char *dir = fresh("corrupt");
    kvt_store *s = open_gds(dir, 1, 64);
    for (uint64_t h = 1; h <= 4; h++)
        put_h(s, h);
    flush(s);
    assert_int_equal(kvt_store_close(s), KVT_OK);
    char p1[1024], p2[1024], p3[1024], side[1100];
    lmc_path(dir, 1, p1, sizeof p1, false);
    lmc_path(dir, 2, p2, sizeof p2, false);
    lmc_path(dir, 3, p3, sizeof p3, false);
    snprintf(side, sizeof side, "%s.metadata", p1);
    flip_byte(side, 8); /* the sidecar's JSON: '{' is no longer there */
    flip_byte(p2, 20);  /* the data file's header */
    assert_int_equal(truncate(p3, 4096 + LEN - 100), 0);

    s = open_gds(dir, 1, 64);
    struct kvt__ft_counters c = counters(s);
    assert_int_equal(c.indexed, 2);
    assert_int_equal(c.corrupt, 2); /* sidecar of 1, lengths of 3 */
    assert_int_equal(get_h(s, 1), KVT_ENOENT);
    assert_int_equal(get_h(s, 3), KVT_ENOENT);
    assert_int_equal(get_h(s, 2), KVT_ENOENT); /* header checked on read */
    assert_int_equal(get_h(s, 4), KVT_OK);
    c = counters(s);
    assert_int_equal(c.corrupt, 3);
    assert_int_equal(c.quarantined, 3);
    assert_int_equal(gstats(s).objects, 1);
    assert_true(file_size(p1) < 0 && file_size(p2) < 0 && file_size(p3) < 0);
    char q[700];
    snprintf(q, sizeof q, "%s/quarantine", dir);
    assert_true(count_files(q, ".kvcache.safetensors") == 0); /* count_files skips quarantine/ */
    struct stat st;
    assert_int_equal(stat(q, &st), 0);
    /* the quarantine's bytes stay counted, and a put still works */
    put_h(s, 9);
    flush(s);
    assert_int_equal(get_h(s, 9), KVT_OK);
    assert_int_equal(kvt_store_close(s), KVT_OK);
}

/* The cap holds at every sample while chunks churn through a tier with room for 6. */
static void cap_and_eviction(void **state)
{
    (void)state;
    const char *dir = fresh("churn");
    double mib = 6.0 * CHARGE / (1024.0 * 1024.0);
    kvt_store *s = open_gds(dir, 1, mib);
    for (uint64_t h = 1; h <= 40; h++) {
        put_h(s, h);
        kvt_backend_stats st = gstats(s);
        assert_true(st.bytes_used <= st.capacity_bytes);
    }
    flush(s);
    kvt_backend_stats st = gstats(s);
    assert_int_equal(st.objects, 6);
    assert_true(st.evictions >= 34);
    assert_int_equal(count_files(dir, ".kvcache.safetensors"), 6);
    assert_int_equal(count_files(dir, ".metadata"), 6);
    /* Each put evicted one chunk of its size and overwrote its file (after making the
     * rename durable: LMCache's files carry no payload checksum); the kept chunks read
     * back exact from their files, and no temp file is left. */
    assert_int_equal(counters(s).recycled, st.evictions);
    assert_int_equal(count_files(dir, ""), 12); /* 6 files and their sidecars, no temp file */
    bool was;
    assert_int_equal(kvt_backend_set_bypass(s, "LocalCPUBackend", true, &was), KVT_OK);
    for (uint64_t h = 35; h <= 40; h++)
        assert_int_equal(get_h(s, h), KVT_OK);
    /* pinned chunks are not evicted */
    kvt_key keys[2] = {tk_key(39), tk_key(40)};
    kvt_pin *pin = NULL;
    size_t hit = 0;
    assert_int_equal(kvt_lookup_prefix(s, keys, 2, &hit, NULL, 0, NULL, &pin), KVT_OK);
    assert_int_equal(hit, 2);
    assert_int_equal(kvt_backend_set_bypass(s, "LocalCPUBackend", false, &was), KVT_OK);
    for (uint64_t h = 100; h <= 110; h++)
        put_h(s, h);
    flush(s);
    assert_int_equal(get_h(s, 39), KVT_OK);
    assert_int_equal(get_h(s, 40), KVT_OK);
    kvt_unpin(s, pin);
    assert_int_equal(kvt_store_close(s), KVT_OK);
}

/* The library's fsync, interposed (the tests link kvtier's objects): while set, a
 * directory refuses to sync, as some filesystems do (EINVAL). */
static atomic_bool dirs_refuse_fsync;

static int fsync_again(void **state)
{
    (void)state;
    atomic_store(&dirs_refuse_fsync, false);
    return 0;
}

int fsync(int fd)
{
    struct stat st;
    if (atomic_load(&dirs_refuse_fsync) && fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        errno = EINVAL;
        return -1;
    }
    return (int)syscall(SYS_fsync, fd);
}

/* Where the rename of an evicted file cannot be made durable, a put into a full tier
 * writes a fresh file instead of overwriting the evicted one; the chunks stay exact. */
static void recycling_needs_a_durable_rename(void **state)
{
    (void)state;
    const char *dir = fresh("nosync");
    kvt_store *s = open_gds(dir, 1, 2.5 * CHARGE / (1024.0 * 1024.0));
    bool was;
    assert_int_equal(kvt_backend_set_bypass(s, "LocalCPUBackend", true, &was), KVT_OK);
    put_h(s, 1), put_h(s, 2);
    flush(s);
    atomic_store(&dirs_refuse_fsync, true);
    put_h(s, 3), put_h(s, 4);
    flush(s);
    atomic_store(&dirs_refuse_fsync, false);
    assert_int_equal(counters(s).recycled, 0);
    assert_int_equal(gstats(s).evictions, 2);
    assert_int_equal(count_files(dir, ""), 4); /* two files and their sidecars, no temp file */
    assert_int_equal(get_h(s, 3), KVT_OK);
    assert_int_equal(get_h(s, 4), KVT_OK);
    put_h(s, 5); /* and once directories sync again, it overwrites */
    flush(s);
    assert_int_equal(counters(s).recycled, 1);
    assert_int_equal(get_h(s, 5), KVT_OK);
    assert_int_equal(kvt_store_close(s), KVT_OK);
}

struct load {
    kvt_store *s;
    atomic_bool stop;
    atomic_long puts, hits, misses, errors;
    unsigned id;
};

static void *putter(void *arg)
{
    struct load *l = arg;
    static _Thread_local unsigned char buf[LEN];
    for (uint64_t i = 0; !atomic_load(&l->stop); i++) {
        uint64_t h = 5000 + (i * 2 + l->id) % 400;
        kvt_key k = tk_key(h);
        tk_fill(buf, LEN, h);
        int rc = kvt_put(l->s, &k, buf, LEN, NULL);
        atomic_fetch_add(rc == KVT_OK || rc == KVT_ENOMEM ? &l->puts : &l->errors, 1);
        usleep(500);
    }
    return NULL;
}

static void *getter(void *arg)
{
    struct load *l = arg;
    for (uint64_t i = 0; !atomic_load(&l->stop); i++) {
        int rc = get_h(l->s, 5000 + (i * 7 + l->id) % 400); /* checks the bytes of a hit */
        atomic_fetch_add(rc == KVT_OK ? &l->hits : rc == KVT_ENOENT ? &l->misses : &l->errors, 1);
    }
    return NULL;
}

/* The operator's switch, through the C API, with data flowing from other threads: close
 * LocalDiskBackend, unset local_disk, set gds_path and max_gds_size, create. */
static void disk_to_gds_switch(void **state)
{
    (void)state;
    const char *disk = fresh("switch-disk"), *gds = fresh("switch-gds");
    kvt_config *cfg = tk_config(2);
    kvt_store *s = NULL;
    assert_int_equal(kvt_config_set(cfg, "local_disk", disk), KVT_OK);
    assert_int_equal(kvt_config_set_float(cfg, "max_local_disk_size", 0.25), KVT_OK);
    assert_int_equal(kvt_store_open(cfg, &tk_quiet, &s), KVT_OK);
    kvt_config_free(cfg);
    struct load l[4] = {0};
    pthread_t t[4];
    for (unsigned i = 0; i < 4; i++) {
        l[i].s = s;
        l[i].id = i;
        assert_int_equal(pthread_create(&t[i], NULL, i < 2 ? putter : getter, &l[i]), 0);
    }
    usleep(150 * 1000);
    long hits_disk = atomic_load(&l[2].hits) + atomic_load(&l[3].hits);
    assert_int_equal(kvt_backend_close(s, "LocalDiskBackend"), KVT_OK);
    const char *keys[] = {"local_disk", "gds_path", "max_gds_size"};
    const char *vals[] = {"", gds, "0.25"};
    size_t bad = 99;
    assert_int_equal(kvt_store_conf_update(s, 3, keys, vals, &bad), KVT_OK);
    size_t n = 0;
    kvt_backend_info made[4];
    assert_int_equal(kvt_backends_create(s, made, 4, &n), KVT_OK);
    assert_int_equal(n, 1);
    assert_string_equal(made[0].name, GDS);
    long puts_before = atomic_load(&l[0].puts) + atomic_load(&l[1].puts);
    usleep(250 * 1000);
    for (unsigned i = 0; i < 4; i++)
        atomic_store(&l[i].stop, true);
    for (unsigned i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    flush(s);
    assert_true(hits_disk > 0);
    assert_true(atomic_load(&l[0].puts) + atomic_load(&l[1].puts) > puts_before);
    for (unsigned i = 0; i < 4; i++)
        assert_int_equal(atomic_load(&l[i].errors), 0);
    kvt_backend_stats st = gstats(s);
    assert_true(st.objects > 0);
    assert_int_equal(count_files(gds, ".kvcache.safetensors"), st.objects);
    assert_int_equal(kvt_backend_get_stats(s, "LocalDiskBackend", &st), KVT_ENOENT);
    /* what GDS holds is readable with the CPU tier out of the way */
    bool was;
    assert_int_equal(kvt_backend_set_bypass(s, "LocalCPUBackend", true, &was), KVT_OK);
    size_t got = 0;
    for (uint64_t h = 5000; h < 5400; h++)
        got += get_h(s, h) == KVT_OK;
    assert_int_equal(got, gstats(s).objects);
    assert_int_equal(kvt_store_close(s), KVT_OK);
}

/* The mode and its reason for the stand-in library directory `sub` (NULL: the loader's
 * own search path), with extra config. */
static void expect_mode(const char *sub, const char *mode, const char *why_has, const char *k,
                        const char *v)
{
    static char lib[700];
    const char *stubs = getenv("KVT_STUB_DIR");
    if (sub && !stubs)
        skip();
    snprintf(lib, sizeof lib, "%s/%s", stubs ? stubs : "", sub ? sub : "");
    kvt__gds_libdir = sub ? lib : NULL;
    const char *dir = fresh("mode");
    kvt_store *s = k ? open_gds(dir, 1, 16, k, v) : open_gds(dir, 1, 16);
    char why[256];
    reason(s, why, sizeof why);
    assert_string_equal(gstats(s).mode, mode);
    if (why_has && !strstr(why, why_has))
        fail_msg("reason \"%s\" lacks \"%s\"", why, why_has);
    /* whatever the mode, the files round-trip */
    for (uint64_t h = 1; h <= 5; h++)
        put_h(s, h);
    flush(s);
    bool was;
    assert_int_equal(kvt_backend_set_bypass(s, "LocalCPUBackend", true, &was), KVT_OK);
    for (uint64_t h = 1; h <= 5; h++)
        assert_int_equal(get_h(s, h), KVT_OK);
    unsigned char *b = malloc(LEN + 1), *want = malloc(LEN); /* an unaligned caller buffer */
    kvt_key key4 = tk_key(4);
    size_t len = 0;
    assert_int_equal(kvt_get_into(s, &key4, b + 1, LEN, &len), KVT_OK);
    tk_fill(want, LEN, 4);
    assert_int_equal(len, LEN);
    assert_memory_equal(b + 1, want, LEN);
    free(b), free(want);
    assert_int_equal(kvt_store_close(s), KVT_OK);
    kvt__gds_libdir = NULL;
}

struct mode_case {
    const char *libdir, *mode, *why, *key, *value;
};

static const struct mode_case modes[] = {
    {"none", "compat", "libcufile.so.0 not found", NULL, NULL},
    {"noread", "compat", "lacks cuFileRead", NULL, NULL},
    {"openfails", "compat", "cuFileDriverOpen failed", NULL, NULL},
    {"nocudart", "compat", "libcudart.so.12 not found", NULL, NULL},
    {"works", "compat", "use_gds is false", "use_gds", "false"},
    /* The gds-mode code path with host-memory stand-ins and a 1 MiB bounce buffer, smaller
     * than a chunk: never a claim of GPU I/O, only of our chunking and bookkeeping. */
    {"works", "gds", NULL, "gds_buffer_size", "1"},
};

static void mode_case(void **state)
{
    const struct mode_case *c = *state;
    expect_mode(c->libdir, c->mode, c->why, c->key, c->value);
}

int main(void)
{
    const char *tmp = getenv("KVT_TEST_TMP");
    snprintf(root, sizeof root, "%s/gds", tmp ? tmp : "/tmp/kvtier-test");
    mkdir(tmp ? tmp : "/tmp/kvtier-test", 0755);
    nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    mkdir(root, 0755);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(config_needs_cap),
        cmocka_unit_test(round_trip_and_batch),
        cmocka_unit_test(lmcache_layout_both_ways),
        cmocka_unit_test(restart_reindex),
        cmocka_unit_test(corruption),
        cmocka_unit_test(cap_and_eviction),
        cmocka_unit_test_teardown(recycling_needs_a_durable_rename, fsync_again),
        cmocka_unit_test(disk_to_gds_switch),
        cmocka_unit_test_prestate(mode_case, (void *)&modes[0]),
        cmocka_unit_test_prestate(mode_case, (void *)&modes[1]),
        cmocka_unit_test_prestate(mode_case, (void *)&modes[2]),
        cmocka_unit_test_prestate(mode_case, (void *)&modes[3]),
        cmocka_unit_test_prestate(mode_case, (void *)&modes[4]),
        cmocka_unit_test_prestate(mode_case, (void *)&modes[5]),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
