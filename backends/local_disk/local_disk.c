/* kvtier — LocalDiskBackend: one checksummed file per chunk, re-indexed on restart.
 *
 * File `{dir}/{name}.pt` (docs/local-disk.md has the long form): a 4096-byte header
 * (magic "KVT1", version, payload length, chunk metadata, the full key string, xxh3-64 of
 * the payload and of the header) and the payload padded to 4096, so every payload byte
 * is read and written with O_DIRECT at aligned offsets. Writes go to a temp name
 * `.{name}.tmp.{16 hex}`, optionally fdatasync'ed, are renamed into place, and the
 * directory is fsynced when durable.
 *
 * The index lives in memory (a hash over keys plus an LRU list of evictable entries) and
 * is rebuilt at create from the headers alone. `used` counts every byte this tier has on
 * its directories: live files, reservations for writes in progress, evicted files a
 * reader still holds open, and the quarantine. A write reserves its whole file size
 * before its first byte, evicting first, so `used <= cap` holds at every moment.
 *
 * Eviction and remove are two-phase: the entry leaves the index and its name is unlinked
 * at once (a reader that opened the file keeps reading it: unlinking an open file keeps
 * its data), but its bytes stay counted until the last such reader closes it; a write
 * that needs those bytes waits for that, bounded. Files are opened and unlinked under
 * `mu`, so a name is never unlinked after a later write reused it.
 *
 * Lock order: `mu` only; nothing is logged and no store call is made with it held. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "backends/local_disk/local_disk.h"
#include "src/ioeng.h"
#include "src/store.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the LocalDisk file format is little-endian; add byte swapping for this target"
#endif

#define HDR 4096u
#define VERSION 1u
#define NAME_LIMIT 200       /* longest file name stem; the temp name adds 22 bytes */
#define QUARANTINE_MAX 8     /* files kept aside per directory for post-mortems */
#define READER_WAIT_MS 2000  /* how long a write waits for readers of evicted files */

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

enum { ST_WRITING, ST_LIVE, ST_GONE };

struct lnode {
    struct lnode *prev, *next;
};

struct ent {
    struct lnode lru; /* first: an lnode * of a listed entry is its ent * */
    struct ent *hnext;
    kvt_key key;
    uint64_t hash, payload_len, file_bytes, sum;
    int64_t mtime_ns; /* scan only */
    kvt_chunk_meta meta;
    uint32_t pins, readers;
    uint16_t dir;
    uint8_t state;
    bool cancelled, in_lru;
    char name[NAME_LIMIT + 4];
};

struct dir {
    char *path;
    int fd;
    bool direct;         /* O_DIRECT works here */
    unsigned nquarantine; /* files in quarantine/ */
};

struct ld {
    const kvt_backend_env *env;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* bytes of an evicted file were released; monotonic clock */
    struct dir *dirs;
    size_t ndirs;
    struct ent **buckets;
    size_t nbuckets, count, pinned;
    struct lnode lru; /* next = least recently used */
    uint64_t cap, used, gone_bytes;
    kvt__ioeng *eng;
    bool fsync, want_direct;
    char mode[32];
    unsigned char *scratch; /* 2 * HDR, aligned: the writer's header and tail pages */
    /* counters (mu) */
    uint64_t evictions, quarantined, corrupt, enospc, eio, cancelled, stale_tmp, indexed;
    atomic_bool warned_corrupt;
};

/* ------------------------------------------------------------------ small helpers */

static inline void put16(unsigned char *p, uint16_t v) { memcpy(p, &v, 2); }
static inline void put32(unsigned char *p, uint32_t v) { memcpy(p, &v, 4); }
static inline void put64(unsigned char *p, uint64_t v) { memcpy(p, &v, 8); }
static inline uint16_t get16(const unsigned char *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline uint32_t get32(const unsigned char *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline uint64_t get64(const unsigned char *p) { uint64_t v; memcpy(&v, p, 8); return v; }

static uint64_t pad4k(uint64_t n) { return (n + HDR - 1) / HDR * HDR; }

static int errno_status(int err)
{
    switch (err) {
    case ENOSPC:
    case EDQUOT:
    case EFBIG: /* RLIMIT_FSIZE or the filesystem's file size limit: no room for this file */
        return KVT_ENOSPC;
    case ENOMEM:
        return KVT_ENOMEM;
    case ENOENT:
        return KVT_ENOENT;
    default:
        return KVT_EIO;
    }
}

static bool aligned(const void *p) { return ((uintptr_t)p & (HDR - 1)) == 0; }

static void lru_unlink(struct ld *ld, struct ent *e)
{
    (void)ld;
    if (!e->in_lru)
        return;
    e->lru.prev->next = e->lru.next;
    e->lru.next->prev = e->lru.prev;
    e->in_lru = false;
}

static void lru_append(struct ld *ld, struct ent *e)
{
    if (e->in_lru || e->pins || e->state != ST_LIVE)
        return;
    e->lru.prev = ld->lru.prev;
    e->lru.next = &ld->lru;
    ld->lru.prev->next = &e->lru;
    ld->lru.prev = &e->lru;
    e->in_lru = true;
}

static struct ent **find_slot(struct ld *ld, const kvt_key *key, uint64_t h)
{
    struct ent **pp = &ld->buckets[h & (ld->nbuckets - 1)];
    while (*pp && !((*pp)->hash == h && kvt_key_equal(&(*pp)->key, key)))
        pp = &(*pp)->hnext;
    return pp;
}

static struct ent *find(struct ld *ld, const kvt_key *key)
{
    return *find_slot(ld, key, kvt_key_hash(key));
}

static struct ent *find_live(struct ld *ld, const kvt_key *key)
{
    struct ent *e = find(ld, key);
    return e && e->state == ST_LIVE ? e : NULL;
}

static void grow(struct ld *ld)
{
    size_t n = ld->nbuckets * 2;
    struct ent **b = calloc(n, sizeof *b);
    if (!b)
        return; /* longer chains, still correct */
    for (size_t i = 0; i < ld->nbuckets; i++)
        for (struct ent *e = ld->buckets[i], *next; e; e = next) {
            next = e->hnext;
            e->hnext = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    free(ld->buckets);
    ld->buckets = b;
    ld->nbuckets = n;
}

static void index_add(struct ld *ld, struct ent *e)
{
    struct ent **pp = find_slot(ld, &e->key, e->hash);
    e->hnext = *pp;
    *pp = e;
    if (++ld->count > ld->nbuckets)
        grow(ld);
}

static void index_del(struct ld *ld, struct ent *e)
{
    struct ent **pp = find_slot(ld, &e->key, e->hash);
    if (*pp == e) {
        *pp = e->hnext;
        ld->count--;
    }
    lru_unlink(ld, e);
    if (e->pins)
        ld->pinned--;
    e->pins = 0;
}

/* Frees a GONE entry's bytes once no reader holds its file. mu held. */
static void reap(struct ld *ld, struct ent *e)
{
    if (e->state != ST_GONE || e->readers)
        return;
    ld->used -= e->file_bytes;
    ld->gone_bytes -= e->file_bytes;
    free(e);
    pthread_cond_broadcast(&ld->cv);
}

/* Takes a LIVE entry off the index and unlinks its file; its bytes go when its readers do.
 * mu held (see the header comment: names are unlinked under mu). */
static void drop(struct ld *ld, struct ent *e)
{
    index_del(ld, e);
    if (unlinkat(ld->dirs[e->dir].fd, e->name, 0) != 0 && errno != ENOENT)
        ld->eio++; /* the bytes stay counted: the cap stays honest */
    e->state = ST_GONE;
    ld->gone_bytes += e->file_bytes;
    reap(ld, e);
}

/* Moves a LIVE entry's file aside (or unlinks it when the quarantine is full). mu held. */
static void quarantine(struct ld *ld, struct ent *e)
{
    struct dir *d = &ld->dirs[e->dir];
    char to[NAME_LIMIT + 32];
    index_del(ld, e);
    e->state = ST_GONE;
    ld->quarantined++;
    snprintf(to, sizeof to, "quarantine/%s", e->name);
    if (d->nquarantine < QUARANTINE_MAX && (mkdirat(d->fd, "quarantine", 0755) == 0 || errno == EEXIST) &&
        renameat(d->fd, e->name, d->fd, to) == 0) {
        d->nquarantine++; /* its bytes stay in `used`, as quarantine bytes */
        e->file_bytes = 0;
    } else {
        unlinkat(d->fd, e->name, 0);
    }
    ld->gone_bytes += e->file_bytes;
    reap(ld, e);
}

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

/* Checks a header read from a file of `fsize` bytes and fills `e` (key, lengths, meta,
 * checksum). Never trusts a length before checking it against the file size. */
static bool header_parse(const unsigned char *h, uint64_t fsize, struct ent *e, const char **why)
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
    e->hash = kvt_key_hash(&e->key);
    e->payload_len = plen;
    e->file_bytes = fsize;
    e->sum = get64(h + H_PAYSUM);
    e->meta.fmt = get32(h + H_META);
    e->meta.dtype_code = get32(h + H_META + 4);
    for (int i = 0; i < 4; i++)
        e->meta.shape[i] = (int32_t)get32(h + H_META + 8 + 4 * i);
    e->meta.num_tokens = get32(h + H_META + 24);
    return true;
}

/* ------------------------------------------------------------------ capacity */

static void deadline_after(struct timespec *ts, long ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* An LRU victim, preferring one nobody is reading (its bytes free at once). mu held. */
static struct ent *victim(struct ld *ld)
{
    struct lnode *n = ld->lru.next;
    for (int i = 0; i < 16 && n != &ld->lru; i++, n = n->next)
        if (((struct ent *)n)->readers == 0)
            return (struct ent *)n;
    return ld->lru.next != &ld->lru ? (struct ent *)ld->lru.next : NULL;
}

/* Reserves `need` bytes, evicting LRU entries first, so used never passes cap. mu held. */
static int reserve(struct ld *ld, uint64_t need)
{
    struct timespec dl;
    bool waited = false;
    if (need > ld->cap)
        return KVT_ENOSPC;
    while (ld->used + need > ld->cap) {
        struct ent *v = victim(ld);
        if (v) {
            drop(ld, v);
            ld->evictions++;
            continue;
        }
        if (ld->gone_bytes == 0)
            return KVT_ENOSPC; /* everything left is pinned or being written */
        if (!waited) {
            deadline_after(&dl, READER_WAIT_MS);
            waited = true;
        }
        if (pthread_cond_timedwait(&ld->cv, &ld->mu, &dl) == ETIMEDOUT &&
            ld->used + need > ld->cap)
            return KVT_EBUSY;
    }
    ld->used += need;
    return KVT_OK;
}

/* ------------------------------------------------------------------ I/O */

static int open_file(struct ld *ld, const struct ent *e, bool direct)
{
    struct dir *d = &ld->dirs[e->dir];
    return openat(d->fd, e->name, O_RDONLY | O_CLOEXEC | (direct && d->direct ? O_DIRECT : 0));
}

/* A reader's lease on a LIVE entry: the file is opened under mu (see the header). */
struct lease {
    struct ent *e;
    int fd;
    bool direct;
};

/* mu held. KVT_ENOENT when absent or its file is gone. */
static int lease_get(struct ld *ld, const kvt_key *key, bool direct, struct lease *l)
{
    struct ent *e = find_live(ld, key);
    l->e = NULL;
    l->fd = -1;
    if (!e)
        return KVT_ENOENT;
    l->direct = direct && ld->dirs[e->dir].direct;
    l->fd = open_file(ld, e, direct);
    if (l->fd < 0) {
        if (errno != ENOENT)
            return kvt__fail(errno_status(errno), "LocalDiskBackend: cannot open %s: %s", e->name,
                             strerror(errno));
        drop(ld, e); /* deleted behind our back */
        return KVT_ENOENT;
    }
    e->readers++;
    if (e->in_lru) { /* most recently used now */
        lru_unlink(ld, e);
        lru_append(ld, e);
    }
    l->e = e;
    return KVT_OK;
}

/* mu held. `bad`: the file failed verification. */
static void lease_end(struct ld *ld, struct lease *l, bool bad)
{
    if (l->fd >= 0)
        close(l->fd);
    if (!l->e)
        return;
    l->e->readers--;
    if (bad && l->e->state == ST_LIVE) {
        ld->corrupt++;
        quarantine(ld, l->e);
    } else {
        reap(ld, l->e);
    }
    l->e = NULL;
}

static void warn_corrupt(struct ld *ld, const struct ent *e, int res)
{
    if (!atomic_exchange(&ld->warned_corrupt, true))
        kvt_backend_log(ld->env, KVT_LOG_WARN,
                        "event=corrupt file=%s reason=%s action=quarantine note=\"logged once\"",
                        e->name, res == KVT_ECORRUPT ? "truncated" : "payload_checksum");
}

/* The transfers that read `e`'s payload into `buf` (`cap` bytes, 4096-aligned when the
 * lease is direct); a short last page goes through `tail`. Returns how many. */
static size_t read_ios(const struct lease *l, void *buf, size_t cap, void *tail, kvt__io io[2])
{
    uint64_t plen = l->e->payload_len, padded = pad4k(plen);
    if (!l->direct || cap >= padded) {
        io[0] = (kvt__io){l->fd, false, buf, l->direct ? padded : plen, HDR, 0};
        return 1;
    }
    size_t body = plen / HDR * HDR, n = 0;
    if (body)
        io[n++] = (kvt__io){l->fd, false, buf, body, HDR, 0};
    io[n++] = (kvt__io){l->fd, false, tail, HDR, HDR + body, 0};
    return n;
}

/* Checks a finished read; copies the tail page in. KVT_OK or KVT_ENOENT (corrupt). */
static int read_done(struct ld *ld, const struct lease *l, void *buf, const void *tail,
                     const kvt__io *io, size_t nio, bool *bad)
{
    int res = KVT_OK;
    for (size_t i = 0; i < nio; i++)
        if (io[i].res != KVT_OK && res == KVT_OK)
            res = io[i].res;
    *bad = false;
    if (res == KVT_OK && nio == 2 && io[1].buf == tail)
        memcpy((char *)buf + io[0].len, tail, l->e->payload_len - io[0].len);
    else if (res == KVT_OK && nio == 1 && io[0].buf == tail)
        memcpy(buf, tail, l->e->payload_len);
    if (res == KVT_OK && XXH3_64bits(buf, l->e->payload_len) != l->e->sum)
        res = KVT_ECORRUPT;
    if (res == KVT_ECORRUPT) {
        *bad = true;
        warn_corrupt(ld, l->e, res);
        return kvt__fail(KVT_ENOENT, "LocalDiskBackend: %s failed verification (quarantined)",
                         l->e->name);
    }
    return res == KVT_OK ? KVT_OK : kvt__fail(errno_status(-res), "LocalDiskBackend: read of %s failed: %s",
                                              l->e->name, strerror(-res));
}

/* ------------------------------------------------------------------ data path */

static int ld_put(void *state, const kvt_key *key, kvt_obj *obj)
{
    struct ld *ld = state;
    char ks[KVT_KEY_STRING_MAX], tmp[NAME_LIMIT + 32];
    const unsigned char *data = kvt_obj_data(obj);
    size_t size = kvt_obj_size(obj);
    int rc = kvt_key_to_string(key, ks, sizeof ks);
    if (rc != KVT_OK)
        return rc;
    struct ent *e = calloc(1, sizeof *e);
    if (!e)
        return kvt__fail(KVT_ENOMEM, "cannot allocate a LocalDiskBackend entry");
    e->key = *key;
    e->hash = kvt_key_hash(key);
    e->payload_len = size;
    e->file_bytes = HDR + pad4k(size);
    e->meta = *kvt_obj_meta(obj);
    e->dir = (uint16_t)(key->chunk_hash % ld->ndirs);
    e->state = ST_WRITING;
    file_name(ks, e->name);
    struct dir *d = &ld->dirs[e->dir];

    pthread_mutex_lock(&ld->mu);
    if (find(ld, key)) {
        pthread_mutex_unlock(&ld->mu);
        free(e);
        return KVT_OK; /* stored already: LMCache keeps the first copy */
    }
    rc = reserve(ld, e->file_bytes);
    if (rc == KVT_OK)
        index_add(ld, e);
    else
        ld->enospc++;
    pthread_mutex_unlock(&ld->mu);
    if (rc == KVT_EBUSY) {
        free(e);
        return kvt__fail(KVT_ENOSPC, "LocalDiskBackend: readers held evicted files past %d ms",
                         READER_WAIT_MS);
    }
    if (rc != KVT_OK) {
        free(e);
        return kvt__fail(rc, "LocalDiskBackend: no eviction candidates for a %zu-byte chunk "
                         "(the rest is pinned or being written). Disk space under pressure.", size);
    }

    /* Write: header page, the aligned body straight from the object, the last partial
     * page through the scratch tail (zero padded: no stale bytes reach the file). */
    e->sum = XXH3_64bits(data, size);
    unsigned char *h = ld->scratch, *tail = ld->scratch + HDR;
    header_build(h, ks, size, &e->meta, e->sum);
    size_t body = aligned(data) ? size / HDR * HDR : 0, rest = size - body;
    unsigned char *bounce = NULL;
    if (!aligned(data) && posix_memalign((void **)&bounce, HDR, pad4k(size)) == 0) {
        memcpy(bounce, data, size); /* not from our pool: cannot happen today, stay correct */
        memset(bounce + size, 0, pad4k(size) - size);
        data = bounce;
        body = pad4k(size);
        rest = 0;
    }
    int fd = -1, err = 0;
    bool renamed = false;
    uint64_t rnd = XXH3_64bits_withSeed(ks, strlen(ks), (uint64_t)time(NULL) ^ (uintptr_t)e);
    for (int tries = 0; fd < 0 && tries < 8; tries++, rnd = rnd * 6364136223846793005ull + 1) {
        snprintf(tmp, sizeof tmp, ".%s.tmp.%016" PRIx64, e->name, rnd);
        fd = openat(d->fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | (d->direct ? O_DIRECT : 0),
                    0644);
        if (fd < 0 && errno != EEXIST)
            break;
    }
    if (fd < 0 || (!aligned(data) && !bounce))
        err = fd < 0 ? errno : ENOMEM;
    if (!err) {
        kvt__io io[3];
        size_t n = 0;
        io[n++] = (kvt__io){fd, true, h, HDR, 0, 0};
        if (body)
            io[n++] = (kvt__io){fd, true, (void *)data, body, HDR, 0};
        if (rest) {
            memset(tail, 0, HDR);
            memcpy(tail, data + body, rest);
            io[n++] = (kvt__io){fd, true, tail, HDR, HDR + body, 0};
        }
        int r = kvt__ioeng_run(ld->eng, io, n);
        if (r != KVT_OK)
            err = r < 0 && r > -4000 ? -r : EIO;
        else if (ld->fsync && fdatasync(fd) != 0)
            err = errno;
    }
    free(bounce);
    if (fd >= 0 && close(fd) != 0 && !err)
        err = errno;
    if (!err && renameat(d->fd, tmp, d->fd, e->name) != 0)
        err = errno;
    renamed = !err;
    if (!err && ld->fsync && fsync(d->fd) != 0)
        err = errno; /* renamed but not durable: reported, and the file goes */
    if (err && !renamed && fd >= 0)
        unlinkat(d->fd, tmp, 0);

    pthread_mutex_lock(&ld->mu);
    if (err || e->cancelled) {
        if (renamed) /* removed or cleared while it was written, or not durable */
            unlinkat(d->fd, e->name, 0);
        index_del(ld, e);
        ld->used -= e->file_bytes;
        pthread_cond_broadcast(&ld->cv);
        if (e->cancelled && !err)
            ld->cancelled++;
        if (err)
            *(errno_status(err) == KVT_ENOSPC ? &ld->enospc : &ld->eio) += 1;
        free(e);
    } else {
        e->state = ST_LIVE;
        lru_append(ld, e);
    }
    pthread_mutex_unlock(&ld->mu);
    if (err)
        return kvt__fail(errno_status(err), "LocalDiskBackend: writing %s failed: %s",
                         d->path, strerror(err));
    return KVT_OK;
}

static int ld_get(void *state, const kvt_key *key, kvt_obj **out)
{
    struct ld *ld = state;
    struct lease l;
    kvt_obj *obj = NULL;
    _Alignas(4096) unsigned char tail[HDR];
    kvt__io io[2];
    bool bad = false;
    *out = NULL;
    pthread_mutex_lock(&ld->mu);
    int rc = lease_get(ld, key, true, &l);
    pthread_mutex_unlock(&ld->mu);
    if (rc != KVT_OK)
        return rc;
    rc = kvt_backend_alloc(ld->env, l.e->payload_len, &l.e->meta, &obj);
    if (rc == KVT_OK) {
        void *buf = kvt_obj_data_mut(obj);
        size_t n = read_ios(&l, buf, pad4k(l.e->payload_len), tail, io);
        kvt__ioeng_run(ld->eng, io, n);
        rc = read_done(ld, &l, buf, tail, io, n, &bad);
    }
    pthread_mutex_lock(&ld->mu);
    lease_end(ld, &l, bad);
    pthread_mutex_unlock(&ld->mu);
    if (rc != KVT_OK) {
        kvt_obj_release(obj);
        return rc;
    }
    *out = obj;
    return KVT_OK;
}

static int ld_get_into(void *state, const kvt_key *key, void *buf, size_t cap, size_t *len)
{
    struct ld *ld = state;
    struct lease l;
    _Alignas(4096) unsigned char tail[HDR];
    kvt__io io[2];
    bool bad = false;
    pthread_mutex_lock(&ld->mu);
    int rc = lease_get(ld, key, aligned(buf), &l); /* unaligned buffers read buffered */
    pthread_mutex_unlock(&ld->mu);
    if (rc != KVT_OK)
        return rc;
    *len = l.e->payload_len;
    if (cap < l.e->payload_len) {
        rc = kvt__fail(KVT_ETOOSMALL, "chunk is %" PRIu64 " bytes, buffer %zu", l.e->payload_len, cap);
    } else {
        size_t n = read_ios(&l, buf, cap, tail, io);
        kvt__ioeng_run(ld->eng, io, n);
        rc = read_done(ld, &l, buf, tail, io, n, &bad);
    }
    pthread_mutex_lock(&ld->mu);
    lease_end(ld, &l, bad);
    pthread_mutex_unlock(&ld->mu);
    return rc;
}

/* All `n` reads as one engine batch (one io_uring submission stream at the tier's depth). */
static int ld_batched_get(void *state, size_t n, const kvt_key *keys, kvt_obj **outs, int *sts)
{
    struct ld *ld = state;
    struct lease *ls = calloc(n ? n : 1, sizeof *ls);
    kvt__io *io = calloc(2 * n + 1, sizeof *io);
    size_t *first = calloc(n + 1, sizeof *first), nio = 0;
    unsigned char *tails = NULL;
    if (!ls || !io || !first || posix_memalign((void **)&tails, HDR, (n ? n : 1) * HDR) != 0) {
        free(ls);
        free(io);
        free(first);
        return kvt__fail(KVT_ENOMEM, "cannot allocate a LocalDiskBackend batch");
    }
    pthread_mutex_lock(&ld->mu);
    for (size_t i = 0; i < n; i++)
        sts[i] = lease_get(ld, &keys[i], true, &ls[i]);
    pthread_mutex_unlock(&ld->mu);
    for (size_t i = 0; i < n; i++) {
        outs[i] = NULL;
        first[i] = nio;
        if (sts[i] != KVT_OK)
            continue;
        sts[i] = kvt_backend_alloc(ld->env, ls[i].e->payload_len, &ls[i].e->meta, &outs[i]);
        if (sts[i] == KVT_OK)
            nio += read_ios(&ls[i], kvt_obj_data_mut(outs[i]), pad4k(ls[i].e->payload_len),
                            tails + i * HDR, io + nio);
    }
    first[n] = nio;
    kvt__ioeng_run(ld->eng, io, nio);
    bool *bad = calloc(n ? n : 1, sizeof *bad);
    for (size_t i = 0; i < n; i++)
        if (sts[i] == KVT_OK) {
            bool b = false;
            sts[i] = read_done(ld, &ls[i], kvt_obj_data_mut(outs[i]), tails + i * HDR,
                               io + first[i], first[i + 1] - first[i], &b);
            if (bad)
                bad[i] = b;
            if (sts[i] != KVT_OK) {
                kvt_obj_release(outs[i]);
                outs[i] = NULL;
            }
        }
    pthread_mutex_lock(&ld->mu);
    for (size_t i = 0; i < n; i++)
        lease_end(ld, &ls[i], bad && bad[i]);
    pthread_mutex_unlock(&ld->mu);
    free(bad);
    free(tails);
    free(ls);
    free(io);
    free(first);
    return KVT_OK;
}

static int ld_contains(void *state, const kvt_key *key)
{
    struct ld *ld = state;
    pthread_mutex_lock(&ld->mu);
    bool found = find_live(ld, key) != NULL;
    pthread_mutex_unlock(&ld->mu);
    return found;
}

/* Removes `e` whatever its state (a write in progress is cancelled). mu held. */
static bool remove_ent(struct ld *ld, struct ent *e)
{
    if (e->state == ST_WRITING) {
        bool was = !e->cancelled;
        e->cancelled = true;
        return was;
    }
    drop(ld, e);
    return true;
}

static int ld_remove(void *state, const kvt_key *key)
{
    struct ld *ld = state;
    pthread_mutex_lock(&ld->mu);
    struct ent *e = find(ld, key);
    bool removed = e && remove_ent(ld, e);
    pthread_mutex_unlock(&ld->mu);
    return removed ? KVT_OK : KVT_ENOENT;
}

static int ld_clear(void *state, uint64_t *tokens)
{
    struct ld *ld = state;
    pthread_mutex_lock(&ld->mu);
    for (size_t b = 0; b < ld->nbuckets; b++)
        for (struct ent *e = ld->buckets[b], *next; e; e = next) {
            next = e->hnext;
            if (e->state == ST_LIVE)
                *tokens += e->meta.num_tokens;
            remove_ent(ld, e);
        }
    pthread_mutex_unlock(&ld->mu);
    return KVT_OK;
}

static size_t ld_count_prefix(void *state, const kvt_key *keys, size_t n, bool pin)
{
    struct ld *ld = state;
    size_t i = 0;
    pthread_mutex_lock(&ld->mu);
    for (struct ent *e; i < n && (e = find_live(ld, &keys[i])); i++)
        if (pin && e->pins++ == 0) {
            ld->pinned++;
            lru_unlink(ld, e);
        }
    pthread_mutex_unlock(&ld->mu);
    return i;
}

static int ld_unpin(void *state, const kvt_key *key)
{
    struct ld *ld = state;
    pthread_mutex_lock(&ld->mu);
    struct ent *e = find_live(ld, key);
    bool ok = e && e->pins > 0;
    if (ok && --e->pins == 0) {
        ld->pinned--;
        lru_append(ld, e);
    }
    pthread_mutex_unlock(&ld->mu);
    return ok ? KVT_OK : KVT_ENOENT;
}

static void ld_stats(void *state, kvt_backend_stats *out)
{
    struct ld *ld = state;
    pthread_mutex_lock(&ld->mu);
    out->bytes_used = ld->used;
    out->capacity_bytes = ld->cap;
    out->objects = ld->count;
    out->evictions = ld->evictions;
    out->pinned = ld->pinned;
    pthread_mutex_unlock(&ld->mu);
    kvt__strlcpy(out->mode, ld->mode, sizeof out->mode);
}

/* Writes and removes a one-page probe file in every directory, as a put would. */
static int ld_ping(void *state)
{
    struct ld *ld = state;
    unsigned char *page = NULL;
    if (posix_memalign((void **)&page, HDR, HDR) != 0)
        return kvt__fail(KVT_ENOMEM, "LocalDiskBackend ping: no memory");
    memset(page, 0, HDR);
    int rc = KVT_OK;
    for (size_t i = 0; i < ld->ndirs && rc == KVT_OK; i++) {
        struct dir *d = &ld->dirs[i];
        char name[64];
        snprintf(name, sizeof name, ".kvtier-ping.tmp.%d.%zu", (int)getpid(), i);
        int fd = openat(d->fd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | (d->direct ? O_DIRECT : 0), 0644);
        ssize_t w = fd >= 0 ? pwrite(fd, page, HDR, 0) : -1;
        int err = w == (ssize_t)HDR ? 0 : w < 0 ? errno : EIO;
        if (fd >= 0) {
            close(fd);
            unlinkat(d->fd, name, 0);
        }
        if (err)
            rc = kvt__fail(KVT_EIO, "LocalDiskBackend ping: cannot write in directory %zu: %s", i,
                           strerror(err));
    }
    free(page);
    return rc;
}

/* ------------------------------------------------------------------ create, scan */

static int cmp_mtime(const void *a, const void *b)
{
    int64_t x = (*(struct ent *const *)a)->mtime_ns, y = (*(struct ent *const *)b)->mtime_ns;
    return (x > y) - (x < y);
}

static bool is_tmp(const char *n) { return n[0] == '.' && strstr(n, ".tmp.") != NULL; }

static bool ends_with(const char *s, const char *suf)
{
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && strcmp(s + n - m, suf) == 0;
}

struct scan {
    struct ent **v;
    size_t n, cap;
    uint64_t bad;
    const char *why; /* the first bad file's reason, logged once */
    char name[NAME_LIMIT + 4];
};

/* Reads one file's header; quarantines it when bad. */
static void scan_file(struct ld *ld, size_t di, const char *name, unsigned char *h, struct scan *sc)
{
    struct dir *d = &ld->dirs[di];
    struct stat st;
    const char *why = "unreadable";
    if (strlen(name) > NAME_LIMIT + 3)
        return; /* not a name this tier makes */
    int fd = openat(d->fd, name, O_RDONLY | O_CLOEXEC | (d->direct ? O_DIRECT : 0));
    if (fd < 0)
        return;
    struct ent *e = calloc(1, sizeof *e);
    if (!e || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        free(e);
        return;
    }
    bool ok = false;
    if (st.st_size < (off_t)HDR) {
        why = "shorter than a header";
    } else {
        ssize_t r = pread(fd, h, HDR, 0);
        ok = r == (ssize_t)HDR && header_parse(h, (uint64_t)st.st_size, e, &why);
    }
    close(fd);
    if (!ok) {
        if (!sc->why) {
            sc->why = why;
            kvt__strlcpy(sc->name, name, sizeof sc->name);
        }
        /* Quarantined like a read-time failure; its bytes count while it is kept aside. */
        memset(e, 0, sizeof *e);
        e->file_bytes = (uint64_t)st.st_size;
        kvt__strlcpy(e->name, name, sizeof e->name);
        e->dir = (uint16_t)di;
        e->state = ST_LIVE;
        ld->used += e->file_bytes;
        sc->bad++;
        quarantine(ld, e);
        return;
    }
    (void)why;
    kvt__strlcpy(e->name, name, sizeof e->name);
    e->dir = (uint16_t)di;
    e->state = ST_LIVE;
    e->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
    if (sc->n == sc->cap) {
        size_t c = sc->cap ? 2 * sc->cap : 1024;
        struct ent **v = realloc(sc->v, c * sizeof *v);
        if (!v) {
            free(e);
            return;
        }
        sc->v = v;
        sc->cap = c;
    }
    sc->v[sc->n++] = e;
}

/* Counts (and trims) a directory's quarantine. */
static void scan_quarantine(struct ld *ld, struct dir *d)
{
    int qfd = openat(d->fd, "quarantine", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *dp = qfd >= 0 ? fdopendir(qfd) : NULL;
    if (!dp) {
        if (qfd >= 0)
            close(qfd);
        return;
    }
    for (struct dirent *de; (de = readdir(dp));) {
        struct stat st;
        if (de->d_name[0] == '.' || fstatat(qfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
            !S_ISREG(st.st_mode))
            continue;
        if (d->nquarantine >= QUARANTINE_MAX) {
            unlinkat(qfd, de->d_name, 0);
            continue;
        }
        d->nquarantine++;
        ld->used += (uint64_t)st.st_size;
    }
    closedir(dp);
}

static int scan(struct ld *ld)
{
    struct scan sc = {0};
    unsigned char *h = NULL;
    if (posix_memalign((void **)&h, HDR, HDR) != 0)
        return kvt__fail(KVT_ENOMEM, "LocalDiskBackend: no memory to scan");
    for (size_t di = 0; di < ld->ndirs; di++) {
        struct dir *d = &ld->dirs[di];
        scan_quarantine(ld, d);
        int fd = openat(d->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        DIR *dp = fd >= 0 ? fdopendir(fd) : NULL;
        if (!dp) {
            if (fd >= 0)
                close(fd);
            free(h);
            free(sc.v);
            return kvt__fail(KVT_EIO, "LocalDiskBackend: cannot list %s: %s", d->path, strerror(errno));
        }
        for (struct dirent *de; (de = readdir(dp));) {
            if (de->d_type != DT_REG && de->d_type != DT_UNKNOWN)
                continue;
            if (is_tmp(de->d_name)) { /* a write a crash or kill interrupted */
                if (unlinkat(d->fd, de->d_name, 0) == 0)
                    ld->stale_tmp++;
            } else if (ends_with(de->d_name, ".pt")) {
                scan_file(ld, di, de->d_name, h, &sc);
            }
        }
        closedir(dp);
    }
    free(h);
    if (sc.n)
        qsort(sc.v, sc.n, sizeof *sc.v, cmp_mtime); /* oldest first: LRU order */
    pthread_mutex_lock(&ld->mu);
    for (size_t i = 0; i < sc.n; i++) {
        struct ent *e = sc.v[i], *old = find(ld, &e->key);
        if (old) { /* two files for one key (names changed between versions): newest wins */
            drop(ld, old);
        }
        index_add(ld, e);
        lru_append(ld, e);
        ld->used += e->file_bytes;
        ld->indexed++;
    }
    while (ld->used > ld->cap && ld->lru.next != &ld->lru) { /* a lowered cap holds at once */
        drop(ld, (struct ent *)ld->lru.next);
        ld->evictions++;
    }
    pthread_mutex_unlock(&ld->mu);
    ld->corrupt += sc.bad;
    free(sc.v);
    if (sc.bad)
        kvt_backend_log(ld->env, KVT_LOG_WARN, "event=quarantine_at_open files=%" PRIu64
                        " first=\"%s\" reason=\"%s\"", sc.bad, sc.name, sc.why);
    return KVT_OK;
}

/* Can this directory do O_DIRECT? tmpfs answers EINVAL at open or at the first write. */
static bool probe_direct(int dfd)
{
    char name[64];
    unsigned char *page = NULL;
    snprintf(name, sizeof name, ".kvtier-probe.tmp.%d", (int)getpid());
    int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_DIRECT | O_CLOEXEC, 0644);
    bool ok = fd >= 0 && posix_memalign((void **)&page, HDR, HDR) == 0;
    if (ok) {
        memset(page, 0, HDR);
        ok = pwrite(fd, page, HDR, 0) == (ssize_t)HDR;
    }
    free(page);
    if (fd >= 0) {
        close(fd);
        unlinkat(dfd, name, 0);
    }
    return ok;
}

static int mkdirs(char *path)
{
    for (char *p = path + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            int rc = mkdir(path, 0755);
            *p = '/';
            if (rc != 0 && errno != EEXIST)
                return -1;
        }
    return mkdir(path, 0755) == 0 || errno == EEXIST ? 0 : -1;
}

static void ld_destroy(void *state);

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

static int open_dirs(struct ld *ld, const char *csv)
{
    char *copy = strdup(csv), *save = NULL;
    size_t n = 1;
    if (!copy)
        return kvt__fail(KVT_ENOMEM, "cannot allocate LocalDiskBackend");
    for (const char *p = csv; *p; p++)
        n += *p == ',';
    if (!(ld->dirs = calloc(n, sizeof *ld->dirs))) {
        free(copy);
        return kvt__fail(KVT_ENOMEM, "cannot allocate LocalDiskBackend");
    }
    int rc = KVT_OK;
    for (char *tok = strtok_r(copy, ",", &save); tok && rc == KVT_OK; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++;
        if (strncmp(tok, "file://", 7) == 0)
            tok += 7;
        size_t len = strlen(tok);
        while (len > 1 && (tok[len - 1] == '/' || tok[len - 1] == ' '))
            tok[--len] = '\0';
        if (!*tok)
            continue;
        struct dir *d = &ld->dirs[ld->ndirs];
        d->fd = -1;
        if (!(d->path = strdup(tok)))
            rc = kvt__fail(KVT_ENOMEM, "cannot allocate LocalDiskBackend");
        else if (mkdirs(d->path) != 0 ||
                 (d->fd = open(d->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
            rc = kvt__fail(KVT_EIO, "local_disk: cannot use directory \"%s\": %s", d->path,
                           strerror(errno));
        else if (faccessat(d->fd, ".", W_OK, AT_EACCESS) != 0)
            rc = kvt__fail(KVT_EIO, "local_disk: directory \"%s\" is not writable", d->path);
        else
            d->direct = ld->want_direct && probe_direct(d->fd);
        ld->ndirs++;
    }
    free(copy);
    if (rc == KVT_OK && ld->ndirs == 0)
        rc = kvt__fail(KVT_ECONFIG, "local_disk names no directory");
    for (size_t i = 0; rc == KVT_OK && i < ld->ndirs; i++)
        for (size_t j = 0; j < i; j++)
            if (strcmp(ld->dirs[i].path, ld->dirs[j].path) == 0)
                rc = kvt__fail(KVT_ECONFIG, "local_disk names \"%s\" twice", ld->dirs[i].path);
    return rc;
}

static int ld_create(const kvt_backend_env *env, const kvt_config *cfg, void **state)
{
    const char *csv = NULL;
    double gib = 0;
    int64_t depth = 32, req_kib = 512, threads = 4;
    bool odirect = true, xodirect = false, fsync_on = false, uring = true;
    int rc = kvt_config_get_str(cfg, "local_disk", &csv);
    if (rc == KVT_OK)
        rc = kvt_config_get_float(cfg, "max_local_disk_size", &gib);
    if (rc == KVT_OK && !(gib > 0))
        return kvt__fail(KVT_ECONFIG, "LocalDiskBackend needs max_local_disk_size > 0 (GiB): an "
                         "uncapped disk tier would fill the disk");
    if (rc == KVT_OK)
        rc = kvt_config_get_int(cfg, "local_disk_queue_depth", &depth);
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
    if (!csv || !*csv)
        return kvt__fail(KVT_ECONFIG, "LocalDiskBackend needs local_disk");
    /* Our key wins when set; else LMCache's extra_config.use_odirect when set; else on. */
    if (!explicitly_set(cfg, "local_disk_odirect") && explicitly_set(cfg, "extra_config.use_odirect"))
        odirect = xodirect;

    struct ld *ld = calloc(1, sizeof *ld);
    if (!ld)
        return kvt__fail(KVT_ENOMEM, "cannot allocate LocalDiskBackend");
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&ld->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&ld->mu, NULL);
    ld->env = env;
    ld->lru.next = ld->lru.prev = &ld->lru;
    ld->cap = (uint64_t)(gib * 1073741824.0);
    ld->fsync = fsync_on;
    ld->want_direct = odirect;
    ld->nbuckets = 1024;
    if (!(ld->buckets = calloc(ld->nbuckets, sizeof *ld->buckets)) ||
        posix_memalign((void **)&ld->scratch, HDR, 2 * HDR) != 0) {
        ld_destroy(ld);
        return kvt__fail(KVT_ENOMEM, "cannot allocate LocalDiskBackend");
    }
    rc = open_dirs(ld, csv);
    if (rc == KVT_OK) {
        struct kvt__ioeng_opts o = {(unsigned)depth, (size_t)(req_kib + 3) / 4 * 4 * 1024,
                                    (unsigned)threads, !uring};
        rc = kvt__ioeng_new(&o, &ld->eng);
    }
    if (rc == KVT_OK)
        rc = scan(ld);
    if (rc != KVT_OK) {
        ld_destroy(ld);
        return rc;
    }
    size_t nbuffered = 0;
    for (size_t i = 0; i < ld->ndirs; i++)
        if (!ld->dirs[i].direct) {
            nbuffered++;
            if (odirect)
                kvt_backend_log(env, KVT_LOG_INFO, "event=odirect_refused dir=\"%s\" io=buffered",
                                ld->dirs[i].path);
        }
    snprintf(ld->mode, sizeof ld->mode, "%s%s", kvt__ioeng_mode(ld->eng),
             nbuffered ? "+buffered" : "");
    if (kvt__ioeng_refused(ld->eng))
        kvt_backend_log(env, KVT_LOG_INFO, "event=io_uring_refused err=%s engine=pread",
                        strerror(-kvt__ioeng_refused(ld->eng)));
    kvt_backend_log(env, KVT_LOG_INFO,
                    "event=created dirs=%zu mode=%s capacity_bytes=%" PRIu64 " indexed=%" PRIu64
                    " bytes_used=%" PRIu64 " evicted_at_open=%" PRIu64 " quarantined=%" PRIu64
                    " stale_tmp=%" PRIu64 " depth=%" PRId64 " request_kib=%" PRId64 " fsync=%d",
                    ld->ndirs, ld->mode, ld->cap, ld->indexed, ld->used, ld->evictions,
                    ld->quarantined, ld->stale_tmp, depth, req_kib, fsync_on);
    *state = ld;
    return KVT_OK;
}

static void ld_destroy(void *state)
{
    struct ld *ld = state;
    if (ld->env && ld->eng)
        kvt_backend_log(ld->env, KVT_LOG_INFO,
                        "event=destroyed objects=%zu bytes_used=%" PRIu64 " evictions=%" PRIu64
                        " quarantined=%" PRIu64 " corrupt=%" PRIu64 " enospc=%" PRIu64
                        " eio=%" PRIu64 " cancelled=%" PRIu64,
                        ld->count, ld->used, ld->evictions, ld->quarantined, ld->corrupt,
                        ld->enospc, ld->eio, ld->cancelled);
    for (size_t b = 0; ld->buckets && b < ld->nbuckets; b++)
        for (struct ent *e = ld->buckets[b], *next; e; e = next) {
            next = e->hnext;
            free(e);
        }
    kvt__ioeng_free(ld->eng);
    for (size_t i = 0; i < ld->ndirs; i++) {
        if (ld->dirs[i].fd >= 0)
            close(ld->dirs[i].fd);
        free(ld->dirs[i].path);
    }
    free(ld->dirs);
    free(ld->buckets);
    free(ld->scratch);
    pthread_cond_destroy(&ld->cv);
    pthread_mutex_destroy(&ld->mu);
    free(ld);
}

void kvt__local_disk_counters(void *state, struct kvt__disk_counters *out)
{
    struct ld *ld = state;
    pthread_mutex_lock(&ld->mu);
    *out = (struct kvt__disk_counters){ld->evictions, ld->quarantined, ld->corrupt, ld->enospc,
                                       ld->eio, ld->cancelled, ld->stale_tmp, ld->indexed,
                                       ld->used};
    pthread_mutex_unlock(&ld->mu);
}

const struct kvt_backend_ops kvt__local_disk_ops = {
    .abi_version = KVT_BACKEND_ABI_VERSION,
    .struct_size = sizeof(struct kvt_backend_ops),
    .type_name = "LocalDiskBackend",
    .flags = KVT_BACKEND_USES_CPU_BUFFERS,
    .wanted = ld_wanted,
    .create = ld_create,
    .destroy = ld_destroy,
    .put = ld_put,
    .get = ld_get,
    .contains = ld_contains,
    .remove = ld_remove,
    .clear = ld_clear,
    .count_prefix = ld_count_prefix,
    .unpin = ld_unpin,
    .stats = ld_stats,
    .batched_get = ld_batched_get,
    .get_into = ld_get_into,
    .ping = ld_ping,
};
