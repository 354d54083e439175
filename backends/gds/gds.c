/* kvtier — GdsBackend: LMCache's GDS files (layout.h), capped, re-indexed from the
 * .metadata sidecars on restart, through cuFile when it works and honestly without it.
 *
 * The index, the cap and eviction, reads and writes and the restart scan are the
 * file-tier core's (backends/local_disk/filetier.c, shared with LocalDiskBackend); this
 * file is the layout and the choice of I/O:
 * - mode "gds": libcufile.so.0 and libcudart.so.12 loaded (cufile.h), cuFileDriverOpen
 *   succeeded, and GPU bounce buffers of gds_buffer_size MiB allocated and registered
 *   with cuFileBufRegister. Every transfer goes cuFileWrite/cuFileRead through a bounce
 *   buffer, cudaMemcpy to and from the host object from the CPU pool.
 * - mode "compat": the same files through the O_DIRECT io_uring engine on host buffers,
 *   when use_gds is false, gds_path is on tmpfs or overlayfs (unless use_gds was set
 *   explicitly, as in LMCache) or refuses O_DIRECT, or any step above failed. The reason
 *   is logged (event=mode) and kvt__gds_reason() gives it; stats().mode says which. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "backends/gds/cufile.h"
#include "backends/gds/gds.h"
#include "backends/gds/layout.h"
#include "backends/local_disk/filetier.h"
#include "backends/local_disk/local_disk.h"

#define HDR KVT__FT_HDR
#define SIDECAR KVT__GDS_META_SUFFIX
#define DEFAULT_BUFFER_MIB 16
#define NBUF 2 /* bounce buffers: batches in flight at once in gds mode */

#ifndef TMPFS_MAGIC
#define TMPFS_MAGIC 0x01021994
#endif
#ifndef OVERLAYFS_SUPER_MAGIC
#define OVERLAYFS_SUPER_MAGIC 0x794c7630
#endif

const char *kvt__gds_libdir;

struct gds {
    struct kvt__cufile api;
    bool loaded;
    char why[256]; /* "" in gds mode */
    size_t buf_size;
    void *dev[NBUF];
    bool busy[NBUF], registered[NBUF];
    pthread_mutex_t mu;
    pthread_cond_t cv; /* a bounce buffer was returned */
};

static uint64_t pad4k(uint64_t n) { return (n + HDR - 1) / HDR * HDR; }

/* ------------------------------------------------------------------ the layout */

static int gds_name(const kvt_key *key, const char *ks, char *out, size_t cap)
{
    char p[2048];
    (void)ks;
    int rc = kvt__gds_path(".", key, p, sizeof p);
    if (rc == KVT_OK && !kvt__strlcpy(out, p + 2, cap)) /* without the "./" */
        rc = kvt__fail(KVT_ETOOSMALL, "GDS path of a key is too long");
    return rc;
}

/* LMCache's temp name: "{path}.tmp" and 8 hex digits. */
static void gds_tmp_name(const char *name, uint64_t rnd, char *out, size_t cap)
{
    snprintf(out, cap, "%s.tmp%08" PRIx32, name, (uint32_t)rnd);
}

static uint64_t gds_file_size(uint64_t n) { return HDR + n; }
/* The data file with its last page whole, and the sidecar. */
static uint64_t gds_charge(uint64_t n) { return HDR + pad4k(n) + HDR; }

static int gds_header(const char *ks, struct kvt__ft_info *in, unsigned char *h)
{
    (void)ks;
    return kvt__gds_header(&in->meta, in->payload_len, h);
}

/* The data file's own header must still say what the sidecar said. */
static bool gds_verify(const struct kvt__ft_info *in, const unsigned char *head, const void *buf,
                       const char **why)
{
    struct kvt__gds_meta m;
    (void)buf;
    *why = "data file header unparsable";
    if (kvt__gds_parse(head, HDR, &m) != KVT_OK)
        return false;
    *why = "data file header disagrees with its sidecar";
    return m.nbytes == in->payload_len && m.meta.fmt == in->meta.fmt;
}

/* Writes the sidecar: the header alone, to a temp name, then renamed. */
static int gds_committed(kvt__ft *ft, int dfd, const char *name, const unsigned char *h)
{
    char tmp[2100], final[2100];
    snprintf(final, sizeof final, "%s%s", name, SIDECAR);
    snprintf(tmp, sizeof tmp, "%s%s.tmp%08x", name, SIDECAR, (unsigned)getpid());
    int fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644), err = 0;
    if (fd < 0)
        return errno;
    ssize_t w = pwrite(fd, h, HDR, 0);
    if (w != (ssize_t)HDR)
        err = w < 0 ? errno : ENOSPC;
    else if (kvt__ft_fsync(ft) && fdatasync(fd) != 0)
        err = errno;
    if (close(fd) != 0 && !err)
        err = errno;
    if (!err && renameat(dfd, tmp, dfd, final) != 0)
        err = errno;
    if (err)
        unlinkat(dfd, tmp, 0);
    return err;
}

static void gds_removed(int dfd, const char *name, const char *aside)
{
    char side[2100], to[2100];
    snprintf(side, sizeof side, "%s%s", name, SIDECAR);
    if (aside) {
        snprintf(to, sizeof to, "%s%s", aside, SIDECAR);
        if (renameat(dfd, side, dfd, to) == 0)
            return;
    }
    unlinkat(dfd, side, 0);
}

static bool ends_with(const char *s, const char *suf)
{
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && strcmp(s + n - m, suf) == 0;
}

static bool gds_is_tmp(const char *rel)
{
    const char *base = strrchr(rel, '/');
    base = base ? base + 1 : rel;
    return strstr(base, KVT__GDS_SUFFIX ".tmp") != NULL ||
           strstr(base, KVT__GDS_SUFFIX SIDECAR ".tmp") != NULL ||
           (base[0] == '.' && strstr(base, ".tmp.") != NULL);
}

/* One file under {root}/{l1}/{l2}/: a sidecar indexes its data file; a data file without
 * a sidecar (a write that stopped between the two renames) is quarantined. */
static void gds_scan_file(kvt__ft *ft, struct kvt__ft_scan *sc, size_t di, const char *rel)
{
    int dfd = kvt__ft_dir_fd(ft, di);
    char data[2100];
    struct stat st, dst;
    if (ends_with(rel, KVT__GDS_SUFFIX)) {
        snprintf(data, sizeof data, "%s%s", rel, SIDECAR);
        if (fstatat(dfd, data, &st, 0) != 0 && errno == ENOENT &&
            fstatat(dfd, rel, &dst, 0) == 0)
            kvt__ft_scan_bad(ft, sc, di, rel, (uint64_t)dst.st_size, "no .metadata sidecar");
        return;
    }
    if (!ends_with(rel, KVT__GDS_SUFFIX SIDECAR))
        return; /* not a file of this tier */
    size_t dl = strlen(rel) - strlen(SIDECAR);
    snprintf(data, sizeof data, "%.*s", (int)dl, rel);
    unsigned char *h = kvt__ft_scan_page(sc);
    const char *why = NULL, *base = strrchr(rel, '/');
    struct kvt__ft_info in = {0};
    struct kvt__gds_meta m;
    bool have_st, ok = kvt__ft_read_head(ft, di, rel, h, &st, &have_st, &why);
    if (!have_st)
        return;
    bool have_data = fstatat(dfd, data, &dst, 0) == 0 && S_ISREG(dst.st_mode);
    uint64_t bytes = (uint64_t)st.st_size + (have_data ? (uint64_t)dst.st_size : 0);
    if (ok && kvt__gds_key_of(base ? base + 1 : rel, &in.key) != KVT_OK) {
        ok = false;
        why = "sidecar name is not a key";
    }
    if (ok && kvt__gds_parse(h, HDR, &m) != KVT_OK) {
        ok = false;
        why = "sidecar header unparsable";
    }
    if (ok && !have_data) {
        ok = false;
        why = "data file missing";
    }
    if (ok && (uint64_t)dst.st_size != HDR + m.nbytes && (uint64_t)dst.st_size != HDR + pad4k(m.nbytes)) {
        ok = false;
        why = "header lengths disagree with the data file's size";
    }
    if (!ok) {
        kvt__ft_scan_bad(ft, sc, di, data, bytes, why);
        return;
    }
    in.payload_len = m.nbytes;
    in.meta = m.meta;
    kvt__ft_scan_found(ft, sc, di, data, &dst, &in);
}

static const struct kvt__ft_layout gds_layout = {
    .tier = "GdsBackend",
    .name = gds_name,
    .tmp_name = gds_tmp_name,
    .file_size = gds_file_size,
    .charge = gds_charge,
    .header = gds_header,
    .read_header = true,
    .verify = gds_verify,
    .committed = gds_committed,
    .removed = gds_removed,
    .is_tmp = gds_is_tmp,
    .scan_depth = 2,
    .scan_file = gds_scan_file,
};

/* ------------------------------------------------------------------ gds mode I/O */

static int lease_buf(struct gds *g)
{
    pthread_mutex_lock(&g->mu);
    for (;;) {
        for (int i = 0; i < NBUF; i++)
            if (g->dev[i] && !g->busy[i]) {
                g->busy[i] = true;
                pthread_mutex_unlock(&g->mu);
                return i;
            }
        pthread_cond_wait(&g->cv, &g->mu);
    }
}

static void return_buf(struct gds *g, int i)
{
    pthread_mutex_lock(&g->mu);
    g->busy[i] = false;
    pthread_cond_signal(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

/* One transfer through cuFile and the bounce buffer `dev`. */
static int cufile_xfer(struct gds *g, void *dev, kvt__io *io)
{
    const struct kvt__cufile *a = &g->api;
    kvt__cufile_descr d = {.type = KVT__CUFILE_HANDLE_TYPE_OPAQUE_FD, .handle.fd = io->fd};
    kvt__cufile_handle fh = NULL;
    kvt__cufile_error e = a->handle_register(&fh, &d);
    if (e.err != 0)
        return KVT_EIO;
    int res = KVT_OK;
    for (size_t done = 0; done < io->len && res == KVT_OK;) {
        size_t n = io->len - done < g->buf_size ? io->len - done : g->buf_size;
        char *host = (char *)io->buf + done;
        ssize_t r;
        if (io->write) {
            if (a->cuda_memcpy(dev, host, n, KVT__CUDA_MEMCPY_H2D) != 0)
                res = KVT_EIO;
            else if ((r = a->write(fh, dev, n, (off_t)(io->off + done), 0)) <= 0)
                res = r < 0 && r > -4096 ? (int)r : KVT_EIO;
            else
                done += (size_t)r;
            continue;
        }
        r = a->read(fh, dev, n, (off_t)(io->off + done), 0);
        if (r == 0 && io->eof_ok) {
            io->missing = io->len - done;
            break;
        }
        if (r <= 0)
            res = r == 0 ? KVT_ECORRUPT : r > -4096 ? (int)r : KVT_EIO;
        else if (a->cuda_memcpy(host, dev, (size_t)r, KVT__CUDA_MEMCPY_D2H) != 0)
            res = KVT_EIO;
        else
            done += (size_t)r;
    }
    a->handle_deregister(fh);
    return res;
}

static int gds_run(void *ctx, kvt__io *ios, size_t n)
{
    struct gds *g = ctx;
    int b = lease_buf(g), first = KVT_OK;
    for (size_t i = 0; i < n; i++) {
        ios[i].missing = 0;
        ios[i].res = cufile_xfer(g, g->dev[b], &ios[i]);
        if (first == KVT_OK)
            first = ios[i].res;
    }
    return_buf(g, b);
    return first;
}

/* ------------------------------------------------------------------ create */

/* Gives back the bounce buffers and unloads cuFile. */
static void release(struct gds *g)
{
    for (int i = 0; i < NBUF; i++) {
        if (g->registered[i])
            g->api.buf_deregister(g->dev[i]);
        if (g->dev[i])
            g->api.cuda_free(g->dev[i]);
        g->dev[i] = NULL;
        g->registered[i] = false;
    }
    if (g->loaded)
        kvt__cufile_unload(&g->api);
    g->loaded = false;
}

static void gds_free(struct gds *g)
{
    release(g);
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
    free(g);
}

/* Releases what a failed gds setup took and records why; returns false. */
static bool compat(struct gds *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool compat(struct gds *g, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g->why, sizeof g->why, fmt, ap);
    va_end(ap);
    release(g);
    return false;
}

static bool explicitly_set(const kvt_config *cfg, const char *key)
{
    kvt_config_source src = KVT_SRC_DEFAULT;
    return kvt_config_get_source(cfg, key, &src) == KVT_OK && src != KVT_SRC_DEFAULT;
}

/* Tries gds mode: true when every step worked, else false with g->why. */
static bool try_gds(struct gds *g, kvt__ft *ft, bool use_gds, bool explicit_use)
{
    if (!use_gds)
        return compat(g, "use_gds is false");
    for (size_t i = 0; i < kvt__ft_ndirs(ft); i++) {
        const char *p = kvt__ft_dir_path(ft, i);
        struct statfs sf;
        if (!explicit_use && statfs(p, &sf) == 0 &&
            (sf.f_type == TMPFS_MAGIC || sf.f_type == OVERLAYFS_SUPER_MAGIC))
            return compat(g, "gds_path %s is on %s (set use_gds explicitly to try cuFile there)", p,
                          sf.f_type == TMPFS_MAGIC ? "tmpfs" : "overlayfs");
        if (!kvt__ft_dir_direct(ft, i))
            return compat(g, "gds_path %s refuses O_DIRECT", p);
    }
    char why[200];
    if (!kvt__cufile_load(kvt__gds_libdir, &g->api, why, sizeof why))
        return compat(g, "%s", why);
    g->loaded = true;
    for (int i = 0; i < NBUF; i++) {
        int ce = g->api.cuda_malloc(&g->dev[i], g->buf_size);
        if (ce != 0) {
            g->dev[i] = NULL;
            return compat(g, "cudaMalloc of a %zu MiB bounce buffer failed: error %d",
                          g->buf_size >> 20, ce);
        }
        kvt__cufile_error e = g->api.buf_register(g->dev[i], g->buf_size, 0);
        if (e.err != 0)
            return compat(g, "cuFileBufRegister failed: err=%d cu_err=%d", e.err, e.cu_err);
        g->registered[i] = true;
    }
    g->why[0] = '\0';
    return true;
}

static bool gds_wanted(const kvt_config *cfg)
{
    const char *v = NULL;
    return kvt_config_get_str(cfg, "gds_path", &v) == KVT_OK && v && *v;
}

static int gds_create(const kvt_backend_env *env, const kvt_config *cfg, void **state)
{
    const char *csv = NULL;
    double gib = 0;
    int64_t buf_mib = 0;
    bool use_gds = true;
    struct kvt__ft_opts o = {.dirs_key = "gds_path"};
    int rc = kvt_config_get_str(cfg, "gds_path", &csv);
    if (rc == KVT_OK)
        rc = kvt_config_get_float(cfg, "max_gds_size", &gib);
    if (rc == KVT_OK && !(gib > 0))
        return kvt__fail(KVT_ECONFIG, "GdsBackend needs max_gds_size > 0 (GiB): an uncapped GDS "
                         "tier would fill the disk");
    if (rc == KVT_OK)
        rc = kvt_config_get_int(cfg, "gds_buffer_size", &buf_mib);
    if (rc == KVT_OK)
        rc = kvt_config_get_bool(cfg, "use_gds", &use_gds);
    if (rc == KVT_OK)
        rc = kvt__file_tier_opts(cfg, &o);
    if (rc != KVT_OK)
        return rc;
    if (!csv || !*csv)
        return kvt__fail(KVT_ECONFIG, "GdsBackend needs gds_path");
    o.dirs = csv;
    o.cap = (uint64_t)(gib * 1073741824.0);
    o.odirect = true; /* cuFile needs it; compat mode uses it where the filesystem allows */
    struct gds *g = calloc(1, sizeof *g);
    if (!g)
        return kvt__fail(KVT_ENOMEM, "cannot allocate GdsBackend");
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    g->buf_size = (size_t)(buf_mib > 0 ? buf_mib : DEFAULT_BUFFER_MIB) << 20;
    kvt__ft *ft = NULL;
    if ((rc = kvt__ft_open(env, &gds_layout, &o, g, &ft)) != KVT_OK) {
        gds_free(g);
        return rc;
    }
    bool gpu = try_gds(g, ft, use_gds, explicitly_set(cfg, "use_gds"));
    kvt__ft_set_mode(ft, gpu ? "gds" : "compat", gpu ? gds_run : NULL, g);
    if (gpu)
        kvt_backend_log(env, KVT_LOG_INFO, "event=mode mode=gds io=cuFile bounce_mib=%zu buffers=%d",
                        g->buf_size >> 20, NBUF);
    else
        kvt_backend_log(env, KVT_LOG_INFO, "event=mode mode=compat io=%s reason=\"%s\"",
                        kvt__ioeng_mode(kvt__ft_engine(ft)), g->why);
    kvt__ft_created(ft);
    *state = ft;
    return KVT_OK;
}

static void gds_destroy(void *state)
{
    struct gds *g = kvt__ft_layout_ctx(state);
    kvt__ft_destroy(state);
    gds_free(g);
}

const char *kvt__gds_reason(void *state)
{
    const struct gds *g = kvt__ft_layout_ctx(state);
    return g->why;
}

const struct kvt_backend_ops kvt__gds_ops = {
    .abi_version = KVT_BACKEND_ABI_VERSION,
    .struct_size = sizeof(struct kvt_backend_ops),
    .type_name = "GdsBackend",
    .flags = KVT_BACKEND_USES_CPU_BUFFERS,
    .wanted = gds_wanted,
    .create = gds_create,
    .destroy = gds_destroy,
    KVT__FT_OPS,
};
