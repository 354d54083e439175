/* kvtier — LocalDiskBackend: one checksummed file per chunk, re-indexed on restart.
 *
 * File `{dir}/{name}.pt` (docs/local-disk.md has the long form): a 4096-byte header
 * (magic "KVT1", version, payload length, chunk metadata, the full key string, xxh3-64 of
 * the payload and of the header) and the payload padded to 4096, so every payload byte
 * is read and written with O_DIRECT at aligned offsets. Writes go to a temp name
 * `.{name}.tmp.{16 hex}`, optionally fdatasync'ed, are renamed into place, and the
 * directory is fsynced when durable.
 *
 * This file is the format only (a struct kvt__ft_layout); the index, the cap and
 * eviction, reads, writes and the restart scan are the file-tier core's (filetier.c),
 * shared with GdsBackend. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "backends/local_disk/filetier.h"
#include "backends/local_disk/local_disk.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the LocalDisk file format is little-endian; add byte swapping for this target"
#endif

#define HDR KVT__FT_HDR
#define VERSION 1u
#define NAME_LIMIT 200 /* longest file name stem; the temp name adds 22 bytes */

/* Header field offsets. */
enum {
    H_MAGIC = 0,     /* "KVT1" */
    H_VERSION = 4,   /* u16 */
    H_HDRLEN = 6,    /* u16: 4096 */
    H_FLAGS = 8,     /* u32: 0 */
    H_KEYLEN = 12,   /* u32 */
    H_PAYLEN = 16,   /* u64, unpadded */
    H_META = 24,     /* u32 fmt, u32 dtype_code, i32 shape[4], u32 num_tokens: 28 bytes */
    H_PAYSUM = 56,   /* u64 xxh3-64 of the payload */
    H_KEY = 64,      /* key string, key_len bytes, then zeroes */
    H_HDRSUM = HDR - 8 /* u64 xxh3-64 of bytes [0, H_HDRSUM) */
};

static inline void put16(unsigned char *p, uint16_t v) { memcpy(p, &v, 2); }
static inline void put32(unsigned char *p, uint32_t v) { memcpy(p, &v, 4); }
static inline void put64(unsigned char *p, uint64_t v) { memcpy(p, &v, 8); }
static inline uint16_t get16(const unsigned char *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline uint32_t get32(const unsigned char *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline uint64_t get64(const unsigned char *p) { uint64_t v; memcpy(&v, p, 8); return v; }

static uint64_t pad4k(uint64_t n) { return (n + HDR - 1) / HDR * HDR; }

/* ------------------------------------------------------------------ names and headers */

/* LMCache's name, key string with '/' -> '-', when that is lossless and short; else a
 * prefix of it, "@@" (which no key string contains) and the xxh3 of the key string. */
static void file_name(const char *ks, char out[NAME_LIMIT + 4])
{
    size_t n = strlen(ks);
    bool lossless = n <= NAME_LIMIT && !strchr(ks, '/') && ks[0] != '.';
    if (lossless) {
        snprintf(out, NAME_LIMIT + 4, "%s.pt", ks);
        return;
    }
    char stem[160];
    snprintf(stem, sizeof stem, "%.150s", ks);
    for (char *p = stem; *p; p++)
        if (*p == '/')
            *p = '-';
    if (stem[0] == '.') /* would read as a temp file */
        stem[0] = '_';
    snprintf(out, NAME_LIMIT + 4, "%s@@%016" PRIx64 ".pt", stem, (uint64_t)XXH3_64bits(ks, n));
}

static void header_build(unsigned char *h, const char *ks, uint64_t payload_len,
                         const kvt_chunk_meta *m, uint64_t sum)
{
    size_t klen = strlen(ks);
    memset(h, 0, HDR);
    memcpy(h + H_MAGIC, "KVT1", 4);
    put16(h + H_VERSION, VERSION);
    put16(h + H_HDRLEN, HDR);
    put32(h + H_FLAGS, 0);
    put32(h + H_KEYLEN, (uint32_t)klen);
    put64(h + H_PAYLEN, payload_len);
    put32(h + H_META, m->fmt);
    put32(h + H_META + 4, m->dtype_code);
    for (int i = 0; i < 4; i++)
        put32(h + H_META + 8 + 4 * i, (uint32_t)m->shape[i]);
    put32(h + H_META + 24, m->num_tokens);
    put64(h + H_PAYSUM, sum);
    memcpy(h + H_KEY, ks, klen);
    put64(h + H_HDRSUM, XXH3_64bits(h, H_HDRSUM));
}

/* Checks a header read from a file of `fsize` bytes and fills `e` (key, length, meta,
 * checksum). Never trusts a length before checking it against the file size. */
static bool header_parse(const unsigned char *h, uint64_t fsize, struct kvt__ft_info *e,
                         const char **why)
{
    char ks[KVT_KEY_STRING_MAX];
    uint32_t klen = get32(h + H_KEYLEN);
    uint64_t plen = get64(h + H_PAYLEN);
    *why = "bad magic";
    if (memcmp(h + H_MAGIC, "KVT1", 4) != 0)
        return false;
    *why = "unknown format version";
    if (get16(h + H_VERSION) != VERSION || get16(h + H_HDRLEN) != HDR)
        return false;
    *why = "header checksum mismatch";
    if (get64(h + H_HDRSUM) != XXH3_64bits(h, H_HDRSUM))
        return false;
    *why = "bad key length";
    if (klen == 0 || klen >= sizeof ks || H_KEY + klen > H_HDRSUM)
        return false;
    *why = "payload length does not match the file size";
    if (plen == 0 || plen > fsize || fsize - HDR != pad4k(plen) || fsize < HDR)
        return false;
    memcpy(ks, h + H_KEY, klen);
    ks[klen] = '\0';
    *why = "unparsable key string";
    if (kvt_key_parse(ks, &e->key) != KVT_OK)
        return false;
    e->payload_len = plen;
    e->sum = get64(h + H_PAYSUM);
    e->meta.fmt = get32(h + H_META);
    e->meta.dtype_code = get32(h + H_META + 4);
    for (int i = 0; i < 4; i++)
        e->meta.shape[i] = (int32_t)get32(h + H_META + 8 + 4 * i);
    e->meta.num_tokens = get32(h + H_META + 24);
    return true;
}

/* ------------------------------------------------------------------ the layout */

static int ld_name(const kvt_key *key, const char *ks, char *out, size_t cap)
{
    (void)key;
    char n[NAME_LIMIT + 4];
    file_name(ks, n);
    return kvt__strlcpy(out, n, cap) ? KVT_OK : kvt__fail(KVT_ETOOSMALL, "file name too long");
}

static void ld_tmp_name(const char *name, uint64_t rnd, char *out, size_t cap)
{
    snprintf(out, cap, ".%s.tmp.%016" PRIx64, name, rnd);
}

static uint64_t ld_file_size(uint64_t n) { return HDR + pad4k(n); }

static int ld_header(const char *ks, struct kvt__ft_info *in, unsigned char *h)
{
    header_build(h, ks, in->payload_len, &in->meta, 0);
    return KVT_OK;
}

/* The payload's checksum, and the header's own over it. */
static void ld_seal(const struct kvt__ft_info *in, unsigned char *h)
{
    put64(h + H_PAYSUM, in->sum);
    put64(h + H_HDRSUM, XXH3_64bits(h, H_HDRSUM));
}

static bool ld_is_tmp(const char *n) { return n[0] == '.' && strstr(n, ".tmp.") != NULL; }

static bool ends_with(const char *s, const char *suf)
{
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && strcmp(s + n - m, suf) == 0;
}

/* Reads one file's header; quarantines it when bad. */
static void ld_scan_file(kvt__ft *ft, struct kvt__ft_scan *sc, size_t di, const char *name)
{
    unsigned char *h = kvt__ft_scan_page(sc);
    struct kvt__ft_info in;
    struct stat st;
    const char *why;
    bool have_st;
    if (!ends_with(name, ".pt") || strlen(name) > NAME_LIMIT + 3)
        return; /* not a name this tier makes */
    bool ok = kvt__ft_read_head(ft, di, name, h, &st, &have_st, &why) &&
              header_parse(h, (uint64_t)st.st_size, &in, &why);
    if (ok) { /* a file under another chunk's name: an overwrite whose rename a crash lost */
        char ks[KVT_KEY_STRING_MAX], want[NAME_LIMIT + 4];
        ok = kvt_key_to_string(&in.key, ks, sizeof ks) == KVT_OK;
        if (ok)
            file_name(ks, want);
        if (!(ok = ok && strcmp(want, name) == 0))
            why = "file name does not match its key";
    }
    if (ok)
        kvt__ft_scan_found(ft, sc, di, name, &st, &in);
    else if (have_st)
        kvt__ft_scan_bad(ft, sc, di, name, (uint64_t)st.st_size, why);
}

static const struct kvt__ft_layout ld_layout = {
    .tier = "LocalDiskBackend",
    .name = ld_name,
    .tmp_name = ld_tmp_name,
    .file_size = ld_file_size,
    .charge = ld_file_size,
    .header = ld_header,
    .seal = ld_seal,
    .xxh3_sum = true,
    .is_tmp = ld_is_tmp,
    .scan_depth = 0,
    .scan_file = ld_scan_file,
};

/* ------------------------------------------------------------------ create */

static bool ld_wanted(const kvt_config *cfg)
{
    const char *v = NULL;
    return kvt_config_get_str(cfg, "local_disk", &v) == KVT_OK && v && *v;
}

static bool explicitly_set(const kvt_config *cfg, const char *key)
{
    kvt_config_source src = KVT_SRC_DEFAULT;
    return kvt_config_get_source(cfg, key, &src) == KVT_OK && src != KVT_SRC_DEFAULT;
}

int kvt__file_tier_opts(const kvt_config *cfg, struct kvt__ft_opts *o)
{
    int64_t depth = 32, req_kib = 2048, threads = 4;
    bool odirect = true, xodirect = false, fsync_on = false, uring = true;
    int rc = kvt_config_get_int(cfg, "local_disk_queue_depth", &depth);
    if (rc == KVT_OK)
        rc = kvt_config_get_int(cfg, "local_disk_request_kib", &req_kib);
    if (rc == KVT_OK)
        rc = kvt_config_get_bool(cfg, "local_disk_odirect", &odirect);
    if (rc == KVT_OK)
        rc = kvt_config_get_bool(cfg, "extra_config.use_odirect", &xodirect);
    if (rc == KVT_OK)
        rc = kvt_config_get_bool(cfg, "local_disk_fsync", &fsync_on);
    if (rc == KVT_OK)
        rc = kvt_config_get_bool(cfg, "local_disk_io_uring", &uring);
    if (rc == KVT_OK)
        rc = kvt_config_get_int(cfg, "extra_config.disk_io_threads", &threads);
    if (rc != KVT_OK)
        return rc;
    /* Our key wins when set; else LMCache's extra_config.use_odirect when set; else on. */
    if (!explicitly_set(cfg, "local_disk_odirect") && explicitly_set(cfg, "extra_config.use_odirect"))
        odirect = xodirect;
    o->depth = (unsigned)depth;
    o->req_size = (size_t)(req_kib + 3) / 4 * 4 * 1024;
    o->threads = (unsigned)threads;
    o->io_uring = uring;
    o->odirect = odirect;
    o->fsync = fsync_on;
    o->fallocate = KVT__FT_FALLOCATE;
    return KVT_OK;
}

static int ld_create(const kvt_backend_env *env, const kvt_config *cfg, void **state)
{
    const char *csv = NULL;
    double gib = 0;
    struct kvt__ft_opts o = {.dirs_key = "local_disk"};
    int rc = kvt_config_get_str(cfg, "local_disk", &csv);
    if (rc == KVT_OK)
        rc = kvt_config_get_float(cfg, "max_local_disk_size", &gib);
    if (rc == KVT_OK && !(gib > 0))
        return kvt__fail(KVT_ECONFIG, "LocalDiskBackend needs max_local_disk_size > 0 (GiB): an "
                         "uncapped disk tier would fill the disk");
    if (rc == KVT_OK)
        rc = kvt__file_tier_opts(cfg, &o);
    if (rc != KVT_OK)
        return rc;
    if (!csv || !*csv)
        return kvt__fail(KVT_ECONFIG, "LocalDiskBackend needs local_disk");
    o.dirs = csv;
    o.cap = (uint64_t)(gib * 1073741824.0);
    kvt__ft *ft = NULL;
    if ((rc = kvt__ft_open(env, &ld_layout, &o, NULL, &ft)) != KVT_OK)
        return rc;
    kvt__ft_created(ft);
    *state = ft;
    return KVT_OK;
}

void kvt__local_disk_counters(void *state, struct kvt__disk_counters *out)
{
    kvt__ft_counters(state, out);
}

const struct kvt_backend_ops kvt__local_disk_ops = {
    .abi_version = KVT_BACKEND_ABI_VERSION,
    .struct_size = sizeof(struct kvt_backend_ops),
    .type_name = "LocalDiskBackend",
    .flags = KVT_BACKEND_USES_CPU_BUFFERS,
    .wanted = ld_wanted,
    .create = ld_create,
    .destroy = kvt__ft_destroy,
    KVT__FT_OPS,
};
