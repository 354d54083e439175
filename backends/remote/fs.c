/* kvtier — the fs:// connector: LMCache's FSConnector layout on a (shared) filesystem.
 *
 * One file per key, <base>/<key string with "/" replaced by "-">.data, holding the
 * 28-byte header then the payload. With several base paths (CSV) a key lives under
 * base[hash % n], the hash's magnitude as LMCache's abs(chunk_hash). A write goes to
 * .<name>.tmp.<pid>.<n> in the same directory and is renamed into place, so readers (this
 * process or another engine) see a whole file or none; stale temporaries are deleted at
 * open. Reads check the header against the file size before reserving any memory. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "backends/remote/remote.h"
#include "src/internal.h"

struct fsc {
    const kvt_backend_env *env;
    size_t n;
    char **base;
    bool fsync, save_meta;
    atomic_uint_fast64_t corrupt;
    atomic_uint_fast64_t tmp_seq; /* temp names: pid + this, created O_EXCL */
};

/* ------------------------------------------------------------ paths */

static const char *base_of(const struct fsc *f, const struct kvt__rmt_item *it)
{
    return f->base[it->hash % f->n];
}

/* <base>/<safe key>.data; false when it does not fit PATH_MAX or NAME_MAX. */
static bool data_path(const struct fsc *f, const struct kvt__rmt_item *it, char *buf, size_t cap)
{
    if (it->klen + 5 > NAME_MAX)
        return false;
    int n = snprintf(buf, cap, "%s/%s.data", base_of(f, it), it->key);
    if (n < 0 || (size_t)n >= cap)
        return false;
    for (char *p = buf + strlen(base_of(f, it)) + 1; *p; p++)
        if (*p == '/')
            *p = '-';
    return true;
}

static int mkdirs(char *path)
{
    for (char *p = path + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        int rc = mkdir(path, 0755);
        *p = c;
        if (rc != 0 && errno != EEXIST)
            return -1;
        if (c == '\0')
            return 0;
    }
}

static int errno_status(int e)
{
    switch (e) {
    case ENOENT:
    case ENOTDIR:
    case ENAMETOOLONG:
        return KVT_ENOENT;
    case ENOSPC:
    case EDQUOT:
        return KVT_ENOSPC;
    case ETIMEDOUT:
        return KVT_ETIMEDOUT;
    default:
        return KVT_EIO;
    }
}

/* Logs the errno text (raw detail stays in the log) and fails with a safe detail. */
static int fs_fail(const struct fsc *f, int st, const char *what, int e)
{
    kvt_backend_log(f->env, KVT_LOG_WARN, "event=fs_error op=%s error=\"%s\"", what, strerror(e));
    return kvt__fail(st, "RemoteBackend: fs:// %s failed (%s)", what, kvt_strerror(st));
}

/* ------------------------------------------------------------ open, close */

static void drop_stale(struct fsc *f, const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    size_t n = 0;
    if (!d)
        return;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] == '.' && strstr(e->d_name, ".tmp.") && unlinkat(dirfd(d), e->d_name, 0) == 0)
            n++;
    closedir(d);
    if (n)
        kvt_backend_log(f->env, KVT_LOG_INFO, "event=stale_tmp_removed count=%zu", n);
}

static void fs_close(void *conn)
{
    struct fsc *f = conn;
    for (size_t i = 0; i < f->n; i++)
        free(f->base[i]);
    free(f->base);
    free(f);
}

/* fs://[host:port]/a[,/b...]: host and port mean nothing to a local mount. */
static int fs_open(const struct kvt__rmt_params *p, void **conn)
{
    const char *s = strstr(p->url, "://") + 3;
    if (*s != '/' && !(s = strchr(s, '/')))
        return kvt__fail(KVT_ECONFIG, "RemoteBackend: fs:// URL has no path");
    struct fsc *f = calloc(1, sizeof *f);
    char *list = strdup(s), *save = NULL;
    if (!f || !list) {
        free(f);
        free(list);
        return kvt__fail(KVT_ENOMEM, "cannot allocate fs connector");
    }
    f->env = p->env;
    f->fsync = p->fsync;
    f->save_meta = p->save_meta;
    int rc = KVT_OK;
    for (char *tok = strtok_r(list, ",", &save); tok && rc == KVT_OK;
         tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++;
        size_t len = strlen(tok);
        while (len > 1 && (tok[len - 1] == ' ' || tok[len - 1] == '/'))
            tok[--len] = '\0';
        if (len == 0)
            continue;
        char **nb = realloc(f->base, (f->n + 1) * sizeof *nb);
        if (!nb || !(nb[f->n] = strdup(tok))) {
            f->base = nb ? nb : f->base;
            rc = kvt__fail(KVT_ENOMEM, "cannot allocate fs connector");
            break;
        }
        f->base = nb;
        if (tok[0] != '/')
            rc = kvt__fail(KVT_ECONFIG, "RemoteBackend: fs:// paths must be absolute");
        else if (mkdirs(f->base[f->n]) != 0 || access(f->base[f->n], W_OK | X_OK) != 0)
            rc = fs_fail(f, KVT_EUNAVAIL, "open (path not a writable directory)", errno);
        f->n++;
    }
    free(list);
    if (rc == KVT_OK && f->n == 0)
        rc = kvt__fail(KVT_ECONFIG, "RemoteBackend: fs:// URL has no path");
    if (rc != KVT_OK) {
        fs_close(f);
        return rc;
    }
    for (size_t i = 0; i < f->n; i++)
        drop_stale(f, f->base[i]);
    kvt_backend_log(p->env, KVT_LOG_INFO, "event=fs_open paths=%zu fsync=%d", f->n, f->fsync);
    *conn = f;
    return KVT_OK;
}

/* ------------------------------------------------------------ I/O */

/* Writes the header and the payload with as few system calls as the kernel allows. */
static int write_all(int fd, const void *hdr, size_t hlen, const void *data, size_t len)
{
    struct iovec iov[2] = {{(void *)hdr, hlen}, {(void *)data, len}};
    struct iovec *v = hlen ? iov : iov + 1;
    int nv = hlen ? 2 : 1;
    while (nv > 0) {
        ssize_t n = writev(fd, v, nv);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        v = kvt__rmt_iov_advance(v, &nv, (size_t)n);
    }
    return 0;
}

/* A fresh temp file next to `path`'s name in `dir`, mode 0644 as LMCache's files. */
static int open_tmp(struct fsc *f, const char *dir, const char *name, char *tmp, size_t cap)
{
    for (int tries = 0; tries < 8; tries++) {
        uint64_t seq = atomic_fetch_add(&f->tmp_seq, 1);
        int n = snprintf(tmp, cap, "%s/.%.200s.tmp.%ld.%llu", dir, name, (long)getpid(),
                         (unsigned long long)seq);
        if (n < 0 || (size_t)n >= cap) {
            errno = ENAMETOOLONG;
            return -1;
        }
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd >= 0 || errno != EEXIST)
            return fd;
    }
    return -1;
}

/* Reads exactly len bytes at off; 1 if the file ended first (truncated: a miss). */
static int read_at(int fd, void *buf, size_t len, off_t off)
{
    char *p = buf;
    while (len) {
        ssize_t n = pread(fd, p, len, off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            return 1;
        p += n;
        off += n;
        len -= (size_t)n;
    }
    return 0;
}

static int fs_put(void *conn, const struct kvt__rmt_item *it, const void *hdr, size_t hlen,
                  const void *data, size_t len)
{
    struct fsc *f = conn;
    char path[PATH_MAX], tmp[PATH_MAX];
    if (!data_path(f, it, path, sizeof path))
        return kvt__fail(KVT_EINVAL, "RemoteBackend: key string too long for a file name");
    const char *name = strrchr(path, '/') + 1;
    int fd = open_tmp(f, base_of(f, it), name, tmp, sizeof tmp);
    if (fd < 0 && errno == ENAMETOOLONG)
        return kvt__fail(KVT_EINVAL, "RemoteBackend: fs:// path too long");
    if (fd < 0)
        return fs_fail(f, errno_status(errno) == KVT_ENOENT ? KVT_EIO : errno_status(errno),
                       "create", errno);
    int e = 0;
    if (write_all(fd, hdr, hlen, data, len) != 0 || (f->fsync && fsync(fd) != 0))
        e = errno ? errno : EIO;
    if (close(fd) != 0 && !e)
        e = errno;
    if (!e && rename(tmp, path) != 0)
        e = errno;
    if (e) {
        unlink(tmp);
        int st = errno_status(e);
        return fs_fail(f, st == KVT_ENOENT ? KVT_EIO : st, "write", e);
    }
    if (f->fsync) { /* the rename itself survives a crash only once the directory is synced */
        int dfd = open(base_of(f, it), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
    }
    return KVT_OK;
}

static void corrupt(struct fsc *f, const char *why)
{
    uint64_t n = atomic_fetch_add(&f->corrupt, 1) + 1;
    if ((n & (n - 1)) == 0) /* 1st, 2nd, 4th...: visible, never a flood */
        kvt_backend_log(f->env, KVT_LOG_WARN, "event=corrupt_value reason=%s count=%llu", why,
                        (unsigned long long)n);
}

static int fs_get(void *conn, const struct kvt__rmt_item *it)
{
    struct fsc *f = conn;
    char path[PATH_MAX];
    unsigned char hdr[KVT__RMT_HDR];
    size_t hlen = f->save_meta ? KVT__RMT_HDR : 0;
    struct stat st;
    kvt_chunk_meta meta;
    void *buf = NULL;
    if (!data_path(f, it, path, sizeof path))
        return KVT_ENOENT;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno_status(errno);
    int rc = fstat(fd, &st) == 0 ? KVT_OK : errno_status(errno);
    if (rc == KVT_OK && (size_t)st.st_size < hlen) {
        corrupt(f, "short_file");
        rc = KVT_ENOENT;
    }
    if (rc == KVT_OK && hlen) {
        int r = read_at(fd, hdr, hlen, 0);
        rc = r < 0 ? errno_status(errno) : r ? KVT_ENOENT : KVT_OK;
    }
    size_t len = (size_t)st.st_size - hlen;
    if (rc == KVT_OK && kvt__rmt_hdr_check(hdr, hlen, len, &meta) != KVT_OK) {
        corrupt(f, "length_mismatch");
        rc = KVT_ENOENT;
    }
    if (rc == KVT_OK)
        rc = it->sink->reserve(it->sink, len, &meta, &buf);
    if (rc == KVT_OK) {
        int r = read_at(fd, buf, len, (off_t)hlen);
        rc = r < 0 ? errno_status(errno) : r ? KVT_ENOENT : KVT_OK;
    }
    close(fd);
    return rc;
}

static int fs_get_many(void *conn, size_t n, const struct kvt__rmt_item *items, int *statuses)
{
    for (size_t i = 0; i < n; i++)
        statuses[i] = fs_get(conn, &items[i]);
    return KVT_OK;
}

static int fs_contains(void *conn, const struct kvt__rmt_item *it)
{
    char path[PATH_MAX];
    if (!data_path(conn, it, path, sizeof path))
        return 0;
    if (access(path, F_OK) == 0)
        return 1;
    return errno_status(errno) == KVT_ENOENT ? 0 : errno_status(errno);
}

/* The run of existing files from items[0]: one stat (access) each, stopping at the first
 * missing one, as LMCache's batched_async_contains. An error ends the run. */
static size_t fs_count_prefix(void *conn, size_t n, const struct kvt__rmt_item *items)
{
    size_t hit = 0;
    while (hit < n && fs_contains(conn, &items[hit]) == 1)
        hit++;
    return hit;
}

static int fs_remove(void *conn, const struct kvt__rmt_item *it)
{
    char path[PATH_MAX];
    if (!data_path(conn, it, path, sizeof path))
        return KVT_ENOENT;
    return unlink(path) == 0 ? KVT_OK : errno_status(errno);
}

static int fs_clear(void *conn, uint64_t *chunks)
{
    struct fsc *f = conn;
    int rc = KVT_OK;
    for (size_t i = 0; i < f->n; i++) {
        DIR *d = opendir(f->base[i]);
        struct dirent *e;
        if (!d) {
            rc = errno_status(errno);
            continue;
        }
        while ((e = readdir(d)) != NULL) {
            size_t len = strlen(e->d_name);
            if (e->d_name[0] != '.' && len > 5 && strcmp(e->d_name + len - 5, ".data") == 0 &&
                unlinkat(dirfd(d), e->d_name, 0) == 0)
                (*chunks)++;
        }
        closedir(d);
    }
    return rc;
}

static int fs_ping(void *conn)
{
    struct fsc *f = conn;
    for (size_t i = 0; i < f->n; i++)
        if (access(f->base[i], W_OK | X_OK) != 0)
            return fs_fail(f, errno_status(errno) == KVT_ENOENT ? KVT_EUNAVAIL : KVT_EIO, "ping",
                           errno);
    return KVT_OK;
}

const struct kvt__rmt_connector kvt__rmt_fs = {
    .mode = "fs",
    .open = fs_open,
    .close = fs_close,
    .put = fs_put,
    .get = fs_get,
    .get_many = fs_get_many,
    .contains = fs_contains,
    .count_prefix = fs_count_prefix,
    .remove = fs_remove,
    .clear = fs_clear,
    .ping = fs_ping,
};
