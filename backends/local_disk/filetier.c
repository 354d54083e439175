/* kvtier — the file-tier core (see filetier.h).
 *
 * Files are opened and renamed under `mu`, so a name is never unlinked after a later
 * write reused it: a dropped chunk's file is renamed to a temp name under `mu` and
 * unlinked outside it (struct doomed). A reader's lease opens the file under `mu`;
 * eviction may set it aside and unlink it while the reader reads (an open file keeps its
 * data), and its bytes stay in `used` (as `gone_bytes`) until it is unlinked and that
 * reader ends its lease; a write that needs those bytes waits for that, bounded. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "backends/local_disk/filetier.h"
#include "src/clock.h"

#define HDR KVT__FT_HDR
#define NAME_MAX_REL 1024   /* longest relative name */
#define QUARANTINE_MAX 8    /* files kept aside per directory for post-mortems */
#define READER_WAIT_MS 2000 /* how long a write waits for readers of evicted files */
#define PUT_BATCH 8         /* puts written as one engine run: the write queue's batch */

enum { ST_WRITING, ST_LIVE, ST_GONE };

struct lnode {
    struct lnode *prev, *next;
};

struct ent {
    struct lnode lru; /* first: an lnode * of a listed entry is its ent * */
    struct ent *hnext;
    struct kvt__ft_info info; /* key, payload_len, sum, meta */
    uint64_t hash, file_bytes, file_size; /* charged to the cap; the data file's size */
    int64_t mtime_ns;                     /* scan only */
    uint32_t pins, readers;
    uint16_t dir;
    uint8_t state;
    bool cancelled, in_lru, unlinking; /* unlinking: its file is on the doomed list */
    char name[]; /* relative to its directory */
};

/* A dropped chunk's file, renamed to a temp name under mu and unlinked outside it: freeing
 * a big file's blocks takes milliseconds (8 ms for 32 MiB here), which must not stall the
 * tier's readers, and the temp name cannot be taken by a new put of the same key. Its bytes
 * stay counted until the unlink is done; a crash leaves a stale temp file for the next open
 * to delete. */
struct doomed {
    struct doomed *next;
    struct ent *e;
    char name[];
};

struct dir {
    char *path;
    int fd;
    bool direct;          /* O_DIRECT works here */
    unsigned nquarantine; /* files in quarantine/ */
};

struct kvt__ft {
    const kvt_backend_env *env;
    const struct kvt__ft_layout *lay;
    void *lctx;
    struct kvt__ft_opts o;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* bytes of an evicted file were released; monotonic clock */
    pthread_mutex_t wmu; /* the writer's scratch pages (puts come one batch at a time) */
    struct dir *dirs;
    size_t ndirs;
    struct ent **buckets;
    size_t nbuckets, count, pinned;
    struct lnode lru; /* next = least recently used */
    uint64_t cap, used, gone_bytes;
    struct doomed *doomed; /* files set aside, to unlink once mu is released */
    uint64_t doomed_bytes;
    kvt__ioeng *eng;
    kvt__ft_runner run;
    void *run_ctx;
    char mode[32];
    unsigned char *scratch; /* 2 * HDR per put of a batch, aligned: header and tail pages */
    XXH3_state_t *wsum;     /* the writer's payload checksum (wmu) */
    /* counters (mu) */
    uint64_t evictions, quarantined, corrupt, enospc, eio, cancelled, stale_tmp, indexed, recycled;
    atomic_bool warned_corrupt;
};

/* ------------------------------------------------------------------ small helpers */

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

static const char *base_name(const char *rel)
{
    const char *s = strrchr(rel, '/');
    return s ? s + 1 : rel;
}

static struct ent *ent_new(const char *name)
{
    size_t n = strlen(name);
    struct ent *e = calloc(1, sizeof *e + n + 1);
    if (e)
        memcpy(e->name, name, n + 1);
    return e;
}

static void lru_unlink(struct ent *e)
{
    if (!e->in_lru)
        return;
    e->lru.prev->next = e->lru.next;
    e->lru.next->prev = e->lru.prev;
    e->in_lru = false;
}

static void lru_append(kvt__ft *ft, struct ent *e)
{
    if (e->in_lru || e->pins || e->state != ST_LIVE)
        return;
    e->lru.prev = ft->lru.prev;
    e->lru.next = &ft->lru;
    ft->lru.prev->next = &e->lru;
    ft->lru.prev = &e->lru;
    e->in_lru = true;
}

static struct ent **find_slot(kvt__ft *ft, const kvt_key *key, uint64_t h)
{
    struct ent **pp = &ft->buckets[h & (ft->nbuckets - 1)];
    while (*pp && !((*pp)->hash == h && kvt_key_equal(&(*pp)->info.key, key)))
        pp = &(*pp)->hnext;
    return pp;
}

static struct ent *find(kvt__ft *ft, const kvt_key *key)
{
    return *find_slot(ft, key, kvt_key_hash(key));
}

static struct ent *find_live(kvt__ft *ft, const kvt_key *key)
{
    struct ent *e = find(ft, key);
    return e && e->state == ST_LIVE ? e : NULL;
}

static void grow(kvt__ft *ft)
{
    size_t n = ft->nbuckets * 2;
    struct ent **b = calloc(n, sizeof *b);
    if (!b)
        return; /* longer chains, still correct */
    for (size_t i = 0; i < ft->nbuckets; i++)
        for (struct ent *e = ft->buckets[i], *next; e; e = next) {
            next = e->hnext;
            e->hnext = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    free(ft->buckets);
    ft->buckets = b;
    ft->nbuckets = n;
}

static void index_add(kvt__ft *ft, struct ent *e)
{
    struct ent **pp = find_slot(ft, &e->info.key, e->hash);
    e->hnext = *pp;
    *pp = e;
    if (++ft->count > ft->nbuckets)
        grow(ft);
}

static void index_del(kvt__ft *ft, struct ent *e)
{
    struct ent **pp = find_slot(ft, &e->info.key, e->hash);
    if (*pp == e) {
        *pp = e->hnext;
        ft->count--;
    }
    lru_unlink(e);
    if (e->pins)
        ft->pinned--;
    e->pins = 0;
}

/* Frees a GONE entry's bytes once no reader holds its file and it is unlinked. mu held. */
static void reap(kvt__ft *ft, struct ent *e)
{
    if (e->state != ST_GONE || e->readers || e->unlinking)
        return;
    ft->used -= e->file_bytes;
    ft->gone_bytes -= e->file_bytes;
    free(e);
    pthread_cond_broadcast(&ft->cv);
}

/* False: the file is still there (counted). */
static bool unlink_name(kvt__ft *ft, int dfd, const char *name)
{
    bool ok = unlinkat(dfd, name, 0) == 0 || errno == ENOENT;
    if (!ok)
        ft->eio++;
    if (ft->lay->removed)
        ft->lay->removed(dfd, name, NULL);
    return ok;
}

/* e's file could not be unlinked: its bytes stay in `used` for good (the next open deletes
 * or re-indexes the file), so the cap stays honest. mu held. */
static void keep_bytes(kvt__ft *ft, struct ent *e)
{
    ft->gone_bytes -= e->file_bytes;
    e->file_bytes = 0;
}

/* A random-enough start for e's temp names (the names only need to differ). */
static uint64_t tmp_seed(const struct ent *e, const void *salt)
{
    return XXH3_64bits_withSeed(e->name, strlen(e->name), (uint64_t)time(NULL) ^ (uintptr_t)salt);
}

/* Takes an entry off the index and sets its file aside for unlink_doomed() (unlinked here
 * and now when that cannot be done); its bytes go when it is unlinked and its readers are
 * done. mu held; the caller runs unlink_doomed() before releasing it. */
static void drop(kvt__ft *ft, struct ent *e)
{
    int dfd = ft->dirs[e->dir].fd;
    char tmp[NAME_MAX_REL + 40];
    index_del(ft, e);
    e->state = ST_GONE;
    ft->gone_bytes += e->file_bytes;
    ft->lay->tmp_name(e->name, tmp_seed(e, e), tmp, sizeof tmp);
    struct doomed *d = malloc(sizeof *d + strlen(tmp) + 1);
    if (d && renameat2(dfd, e->name, dfd, tmp, RENAME_NOREPLACE) == 0) {
        if (ft->lay->removed)
            ft->lay->removed(dfd, e->name, NULL);
        *d = (struct doomed){.next = ft->doomed, .e = e};
        strcpy(d->name, tmp);
        ft->doomed = d;
        ft->doomed_bytes += e->file_bytes;
        e->unlinking = true;
        return;
    }
    free(d); /* no memory, a taken name, or the file is gone already */
    if (!unlink_name(ft, dfd, e->name))
        keep_bytes(ft, e);
    reap(ft, e);
}

/* Unlinks the files drop() set aside, one at a time with mu released, and frees each
 * one's bytes as it goes (a put waiting for room wakes at each), so a clear of thousands
 * of files never holds back a put for longer than one unlink. mu held on entry and on
 * return. */
static void unlink_doomed(kvt__ft *ft)
{
    struct doomed *list = ft->doomed;
    ft->doomed = NULL;
    for (struct doomed *d = list, *next; d; d = next) {
        next = d->next;
        pthread_mutex_unlock(&ft->mu);
        bool failed = unlinkat(ft->dirs[d->e->dir].fd, d->name, 0) != 0 && errno != ENOENT;
        pthread_mutex_lock(&ft->mu);
        ft->doomed_bytes -= d->e->file_bytes;
        d->e->unlinking = false;
        if (failed) {
            ft->eio++;
            keep_bytes(ft, d->e);
        }
        reap(ft, d->e);
        pthread_cond_broadcast(&ft->cv); /* doomed_bytes changed, even when a reader holds it */
        free(d);
    }
}

/* Moves a LIVE entry's file aside (or unlinks it when the quarantine is full). mu held. */
static void quarantine(kvt__ft *ft, struct ent *e)
{
    struct dir *d = &ft->dirs[e->dir];
    char to[NAME_MAX_REL + 16];
    index_del(ft, e);
    e->state = ST_GONE;
    ft->quarantined++;
    snprintf(to, sizeof to, "quarantine/%s", base_name(e->name));
    if (d->nquarantine < QUARANTINE_MAX &&
        (mkdirat(d->fd, "quarantine", 0755) == 0 || errno == EEXIST) &&
        renameat(d->fd, e->name, d->fd, to) == 0) {
        d->nquarantine++; /* its bytes stay in `used`, as quarantine bytes */
        e->file_bytes = 0;
        if (ft->lay->removed)
            ft->lay->removed(d->fd, e->name, to);
    } else if (!unlink_name(ft, d->fd, e->name)) {
        e->file_bytes = 0; /* still there: its bytes stay in `used` */
    }
    ft->gone_bytes += e->file_bytes;
    reap(ft, e);
}

/* ------------------------------------------------------------------ capacity */

/* One put of a batch on its way to disk. The batch goes through three passes: begin
 * (index entry, cap reservation, header page), open (temp file laid out), then one engine
 * run for every put's header and payload, and finish (rename into place, commit hook,
 * LIVE or undone). A put that failed in a pass skips the rest. */
struct wput {
    struct ent *e; /* NULL: nothing to write (stored already, or failed in begin) */
    const unsigned char *data;
    unsigned char *h, *tail, *bounce; /* header and tail pages (scratch); a copy if unaligned */
    size_t body, rest, io0, nio;      /* aligned payload bytes, the tail's; its ios */
    size_t hio;                       /* its header's io */
    int fd, err;                      /* err: an errno once open or I/O failed */
    bool queued, renamed;             /* queued: its ios are in the engine run */
    bool recycled, have_tmp;          /* tmp is an evicted chunk's file; tmp exists */
    char tmp[NAME_MAX_REL + 40];
    char was[NAME_MAX_REL]; /* the recycled file's name before */
};

/* An LRU victim, preferring one nobody is reading (its bytes free at once). mu held. */
static struct ent *victim(kvt__ft *ft)
{
    struct lnode *n = ft->lru.next;
    for (int i = 0; i < 16 && n != &ft->lru; i++, n = n->next)
        if (((struct ent *)n)->readers == 0)
            return (struct ent *)n;
    return ft->lru.next != &ft->lru ? (struct ent *)ft->lru.next : NULL;
}

/* Makes the directories `rel` lies in (under dfd). */
static int make_parents(int dfd, const char *rel)
{
    char p[NAME_MAX_REL];
    snprintf(p, sizeof p, "%s", rel);
    for (char *s = strchr(p, '/'); s; s = strchr(s + 1, '/')) {
        *s = '\0';
        int rc = mkdirat(dfd, p, 0755);
        *s = '/';
        if (rc != 0 && errno != EEXIST)
            return errno;
    }
    return 0;
}

/* Makes `v`'s file the temp file w->tmp of a write of `e` instead of unlinking it: the
 * write then overwrites blocks the filesystem laid out long ago, as an overwrite of a
 * pre-laid-out file does, instead of allocating new ones and freeing old ones (a full tier
 * evicts one chunk per put; freeing a 32 MiB file's blocks takes about 8 ms here). Only a
 * file no reader holds, in e's directory, no larger than e's, and the last victim e needs
 * (so the disk never holds more than is counted). The rename must reach the disk before
 * the first byte is overwritten, or a crash could keep the old name over new bytes:
 * put_open makes it durable unless the layout's payload checksum catches that case.
 * False: drop it as usual. mu held. */
static bool recycle(kvt__ft *ft, struct ent *v, const struct ent *e, struct wput *w)
{
    int dfd = ft->dirs[e->dir].fd;
    /* Buffered overwrites without fdatasync are not ordered before the rename into
     * place: a crash could keep the victim's bytes under the new name, which only a
     * payload checksum would catch. */
    if (!ft->lay->xxh3_sum && !ft->dirs[e->dir].direct && !ft->o.fsync)
        return false;
    if (v->readers || v->dir != e->dir || v->file_bytes > e->file_bytes ||
        ft->used - ft->doomed_bytes - v->file_bytes + e->file_bytes > ft->cap ||
        make_parents(dfd, e->name) != 0)
        return false;
    ft->lay->tmp_name(e->name, tmp_seed(e, v), w->tmp, sizeof w->tmp);
    if (renameat2(dfd, v->name, dfd, w->tmp, RENAME_NOREPLACE) != 0)
        return false; /* a taken name, or no RENAME_NOREPLACE here */
    snprintf(w->was, sizeof w->was, "%s", v->name);
    if (ft->lay->removed)
        ft->lay->removed(dfd, v->name, NULL);
    index_del(ft, v);
    ft->used -= v->file_bytes;
    free(v);
    return true;
}

/* Reserves `need` bytes for `e`, evicting LRU entries first, so used never passes cap; the
 * first victim's file may become e's temp file (w->recycled). mu held. */
static int reserve(kvt__ft *ft, uint64_t need, const struct ent *e, struct wput *w)
{
    struct timespec dl;
    bool waited = false;
    if (need > ft->cap)
        return KVT_ENOSPC;
    while (ft->used + need > ft->cap) {
        struct ent *v;
        /* Files set aside count as free: they are unlinked before this returns. */
        while (ft->used - ft->doomed_bytes + need > ft->cap && (v = victim(ft))) {
            if (w->recycled || !(w->recycled = recycle(ft, v, e, w)))
                drop(ft, v);
            ft->evictions++;
        }
        if (ft->doomed) {
            unlink_doomed(ft);
            continue;
        }
        if (ft->used + need <= ft->cap)
            break;
        if (ft->gone_bytes == 0)
            return KVT_ENOSPC; /* everything left is pinned or being written */
        if (!waited) {
            dl = kvt__deadline(READER_WAIT_MS);
            waited = true;
        }
        if (pthread_cond_timedwait(&ft->cv, &ft->mu, &dl) == ETIMEDOUT &&
            ft->used + need > ft->cap)
            return KVT_EBUSY;
    }
    ft->used += need;
    return KVT_OK;
}

/* ------------------------------------------------------------------ reads */

/* A reader's lease on a LIVE entry: the file is opened under mu. */
struct lease {
    struct ent *e;
    int fd;
    bool direct, bad_size;
};

/* mu held. KVT_ENOENT when absent or its file is gone. A file whose size disagrees with
 * its header is leased with bad_size set: the caller misses and quarantines it. */
static int lease_get(kvt__ft *ft, const kvt_key *key, bool direct, struct lease *l)
{
    struct ent *e = find_live(ft, key);
    struct dir *d;
    struct stat st;
    *l = (struct lease){NULL, -1, false, false};
    if (!e)
        return KVT_ENOENT;
    d = &ft->dirs[e->dir];
    l->direct = direct && d->direct;
    l->fd = openat(d->fd, e->name, O_RDONLY | O_CLOEXEC | (l->direct ? O_DIRECT : 0));
    if (l->fd < 0) {
        if (errno != ENOENT)
            return kvt__fail(errno_status(errno), "%s: cannot open %s: %s", ft->lay->tier, e->name,
                             strerror(errno));
        drop(ft, e); /* deleted behind our back: nothing to set aside */
        return KVT_ENOENT;
    }
    l->bad_size = fstat(l->fd, &st) != 0 || (uint64_t)st.st_size != e->file_size;
    e->readers++;
    if (e->in_lru) { /* most recently used now */
        lru_unlink(e);
        lru_append(ft, e);
    }
    l->e = e;
    return KVT_OK;
}

/* mu held. `bad`: the file failed verification. */
static void lease_end(kvt__ft *ft, struct lease *l, bool bad)
{
    if (l->fd >= 0)
        close(l->fd);
    if (!l->e)
        return;
    l->e->readers--;
    if (bad && l->e->state == ST_LIVE) {
        ft->corrupt++;
        quarantine(ft, l->e);
    } else {
        reap(ft, l->e);
    }
    l->e = NULL;
}

static void warn_corrupt(kvt__ft *ft, const struct ent *e, const char *why)
{
    if (!atomic_exchange(&ft->warned_corrupt, true))
        kvt_backend_log(ft->env, KVT_LOG_WARN,
                        "event=corrupt file=%s reason=\"%s\" action=quarantine note=\"logged once\"",
                        e->name, why);
}

/* Per-read pages: the header page (layouts that check it) and the short last page. */
struct pages {
    unsigned char head[HDR], tail[HDR];
};

/* Most transfers read_ios() makes for a payload of `plen` bytes. */
static size_t read_nios(const kvt__ft *ft, uint64_t plen)
{
    return 2 + (size_t)((pad4k(plen) + ft->o.req_size - 1) / ft->o.req_size);
}

/* Appends to `io` the transfers that read [off, off + len) of the file into `buf`: one per
 * request when the layout's checksum is fed as they land, else one. */
static size_t pieces(const kvt__ft *ft, int fd, char *buf, uint64_t off, size_t len, kvt__io *io)
{
    size_t n = 0, step = ft->lay->xxh3_sum ? ft->o.req_size : len;
    for (size_t at = 0; at < len; at += step)
        io[n++] = (kvt__io){.fd = fd, .buf = buf + at, .off = off + at, .eof_ok = true,
                            .len = len - at < step ? len - at : step};
    return n;
}

/* The transfers that read the lease's payload into `buf` (`cap` bytes, 4096-aligned when
 * the lease is direct), in file order, after the header page when the layout checks it.
 * A file that is not padded ends early: every payload read is eof_ok. */
static size_t read_ios(kvt__ft *ft, const struct lease *l, void *buf, size_t cap,
                       struct pages *pg, kvt__io *io)
{
    uint64_t plen = l->e->info.payload_len, padded = pad4k(plen);
    size_t n = 0;
    if (ft->lay->read_header)
        io[n++] = (kvt__io){.fd = l->fd, .buf = pg->head, .len = HDR, .off = 0};
    if (!l->direct || cap >= padded)
        return n + pieces(ft, l->fd, buf, HDR, l->direct ? padded : plen, io + n);
    size_t body = plen / HDR * HDR;
    n += pieces(ft, l->fd, buf, HDR, body, io + n);
    /* The last page: may end at the end of a file that is not padded (LMCache's GDS). */
    io[n++] = (kvt__io){.fd = l->fd, .buf = pg->tail, .len = HDR, .off = HDR + body, .eof_ok = true};
    return n;
}

/* The payload bytes transfer `io` holds that arrived (none for the header page). */
static size_t payload_bytes(const struct kvt__ft_info *in, const kvt__io *io)
{
    if (io->off < HDR || io->off - HDR >= in->payload_len || io->res != KVT_OK)
        return 0;
    uint64_t at = io->off - HDR, want = in->payload_len - at, got = io->len - io->missing;
    return (size_t)(want < got ? want : got);
}

/* Checks a finished read; copies the tail page in. KVT_OK, KVT_ENOENT (corrupt: *bad),
 * or the I/O error. */
static int read_done(kvt__ft *ft, const struct lease *l, void *buf, const struct pages *pg,
                     const kvt__io *io, size_t nio, XXH3_state_t *sum, bool *bad)
{
    const struct kvt__ft_info *in = &l->e->info;
    const char *why = NULL;
    int res = KVT_OK;
    for (size_t i = 0; i < nio; i++)
        if (io[i].res != KVT_OK && res == KVT_OK)
            res = io[i].res;
    *bad = false;
    if (l->bad_size) {
        res = KVT_ECORRUPT;
        why = "file size disagrees with its header";
    }
    for (size_t i = 0; res == KVT_OK && i < nio; i++) { /* every payload byte arrived */
        if (io[i].off < HDR)
            continue;
        uint64_t at = io[i].off - HDR, want = in->payload_len - at;
        if (want > io[i].len)
            want = io[i].len;
        if (io[i].len - io[i].missing < want) {
            res = KVT_ECORRUPT;
            why = "truncated";
        } else if (io[i].buf == pg->tail) {
            memcpy((char *)buf + at, pg->tail, want);
        }
    }
    if (res == KVT_OK && sum && XXH3_64bits_digest(sum) != in->sum) {
        res = KVT_ECORRUPT;
        why = "payload checksum mismatch";
    }
    if (res == KVT_OK && ft->lay->verify &&
        !ft->lay->verify(in, ft->lay->read_header ? pg->head : NULL, buf, &why))
        res = KVT_ECORRUPT;
    if (res == KVT_ECORRUPT) {
        *bad = true;
        warn_corrupt(ft, l->e, why ? why : "truncated");
        return kvt__fail(KVT_ENOENT, "%s: %s failed verification (quarantined)", ft->lay->tier,
                         l->e->name);
    }
    return res == KVT_OK ? KVT_OK
                         : kvt__fail(errno_status(-res), "%s: read of %s failed: %s",
                                     ft->lay->tier, l->e->name, strerror(-res));
}

/* One batch of transfers through the engine, or the runner set by kvt__ft_set_mode
 * (which gets the hooks around its run). */
static int run_hooked(kvt__ft *ft, kvt__io *ios, size_t n, const struct kvt__ioeng_hooks *h)
{
    if (!ft->run)
        return kvt__ioeng_run_hooked(ft->eng, ios, n, h);
    while (h->ready && !h->ready(h->ctx))
        ;
    int rc = n ? ft->run(ft->run_ctx, ios, n) : KVT_OK;
    for (size_t i = 0; h->done && i < n; i++)
        h->done(h->ctx, i);
    return rc;
}

/* The errno a failed transfer's result stands for. */
static int io_errno(int res) { return res < 0 && res > -4000 ? -res : EIO; }

/* ------------------------------------------------------------------ data path */

int kvt__ft_fsync_parent(int dirfd, const char *rel)
{
    const char *slash = strrchr(rel, '/');
    if (!slash)
        return fsync(dirfd) == 0 ? 0 : errno;
    char p[NAME_MAX_REL];
    snprintf(p, sizeof p, "%.*s", (int)(slash - rel), rel);
    int fd = openat(dirfd, p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int err = fd < 0 || fsync(fd) != 0 ? errno : 0;
    if (fd >= 0)
        close(fd);
    return err;
}

/* Gives back an entry that never reached disk. mu held. */
static void unreserve(kvt__ft *ft, struct ent *e)
{
    index_del(ft, e);
    ft->used -= e->file_bytes;
    pthread_cond_broadcast(&ft->cv);
    free(e);
}

/* Indexes `key` as being written, reserves its bytes, builds its header page in w->h.
 * KVT_OK with w->e NULL when the key is stored already. */
static int put_begin(kvt__ft *ft, const kvt_key *key, kvt_obj *obj, struct wput *w)
{
    char ks[KVT_KEY_STRING_MAX], name[NAME_MAX_REL];
    size_t size = kvt_obj_size(obj);
    w->data = kvt_obj_data(obj);
    int rc = kvt_key_to_string(key, ks, sizeof ks);
    if (rc == KVT_OK)
        rc = ft->lay->name(key, ks, name, sizeof name);
    if (rc != KVT_OK)
        return rc;
    struct ent *e = ent_new(name);
    if (!e)
        return kvt__fail(KVT_ENOMEM, "cannot allocate a %s entry", ft->lay->tier);
    e->info.key = *key;
    e->info.payload_len = size;
    e->info.meta = *kvt_obj_meta(obj);
    e->hash = kvt_key_hash(key);
    e->file_size = ft->lay->file_size(size);
    e->file_bytes = ft->lay->charge(size);
    e->dir = (uint16_t)(key->chunk_hash % ft->ndirs);
    e->state = ST_WRITING;
    if ((rc = ft->lay->header(ks, &e->info, w->h)) != KVT_OK) {
        free(e);
        return rc;
    }

    pthread_mutex_lock(&ft->mu);
    if (find(ft, key)) {
        pthread_mutex_unlock(&ft->mu);
        free(e);
        return KVT_OK; /* stored already: LMCache keeps the first copy */
    }
    rc = reserve(ft, e->file_bytes, e, w);
    if (rc == KVT_OK)
        index_add(ft, e);
    else
        ft->enospc++;
    pthread_mutex_unlock(&ft->mu);
    if (rc != KVT_OK && w->recycled) /* an evicted file taken before the rest ran out */
        unlinkat(ft->dirs[e->dir].fd, w->tmp, 0);
    if (rc == KVT_EBUSY) {
        free(e);
        return kvt__fail(KVT_ENOSPC, "%s: readers held evicted files past %d ms", ft->lay->tier,
                         READER_WAIT_MS);
    }
    if (rc != KVT_OK) {
        free(e);
        return kvt__fail(rc, "%s: no eviction candidates for a %zu-byte chunk "
                         "(the rest is pinned or being written). Disk space under pressure.",
                         ft->lay->tier, size);
    }
    w->e = e;
    return KVT_OK;
}

/* Creates w's temp file and lays it out; w->err on failure. */
static void put_open(kvt__ft *ft, struct wput *w)
{
    struct ent *e = w->e;
    struct dir *d = &ft->dirs[e->dir];
    size_t size = e->info.payload_len;
    w->body = aligned(w->data) ? size / HDR * HDR : 0;
    w->rest = size - w->body;
    w->have_tmp = w->recycled;
    if ((w->err = make_parents(d->fd, e->name)) != 0)
        return;
    if (!aligned(w->data)) { /* not from our pool: cannot happen today, stay correct */
        if (posix_memalign((void **)&w->bounce, HDR, pad4k(size)) != 0) {
            w->err = ENOMEM;
            return;
        }
        memcpy(w->bounce, w->data, size);
        memset(w->bounce + size, 0, pad4k(size) - size);
        w->data = w->bounce;
        w->body = pad4k(size);
        w->rest = 0;
    }
    int direct = d->direct ? O_DIRECT : 0;
    /* A recycled file's rename reaches the disk before its first byte is overwritten (the
     * old name's directory is the one that matters); where directories cannot be synced,
     * the put writes a fresh file instead. */
    if (w->recycled && !ft->lay->xxh3_sum) {
        int err = kvt__ft_fsync_parent(d->fd, w->was);
        if (!err)
            err = kvt__ft_fsync_parent(d->fd, w->tmp);
        if (err == EINVAL || err == ENOTSUP) {
            unlinkat(d->fd, w->tmp, 0);
            w->recycled = w->have_tmp = false;
        } else if ((w->err = err) != 0) {
            return;
        }
    }
    if (w->recycled && (w->fd = openat(d->fd, w->tmp, O_WRONLY | O_CLOEXEC | direct)) < 0) {
        w->err = errno;
        return;
    }
    uint64_t rnd = tmp_seed(e, e);
    for (int tries = 0; w->fd < 0 && tries < 8; tries++, rnd = rnd * 6364136223846793005ull + 1) {
        ft->lay->tmp_name(e->name, rnd, w->tmp, sizeof w->tmp);
        w->fd = openat(d->fd, w->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | direct, 0644);
        w->have_tmp = w->fd >= 0;
        if (w->fd < 0 && errno != EEXIST) {
            w->err = errno;
            return;
        }
    }
    if (w->fd < 0)
        w->err = EEXIST;
    /* Lay the file out first: the filesystem allocates its extents once, as for a
     * preallocated file, instead of growing it request by request. */
    else if (ft->o.fallocate && fallocate(w->fd, 0, 0, (off_t)(HDR + pad4k(size))) != 0 &&
             errno != EOPNOTSUPP)
        w->err = errno;
}

/* Appends w's payload transfers (aligned body, tail page) to `io`. */
static size_t payload_ios(struct wput *w, kvt__io *io, size_t n)
{
    w->io0 = n;
    if (w->body)
        io[n++] = (kvt__io){.fd = w->fd, .write = true, .buf = (void *)w->data, .len = w->body,
                            .off = HDR};
    if (w->rest) {
        memset(w->tail, 0, HDR);
        memcpy(w->tail, w->data + w->body, w->rest);
        io[n++] = (kvt__io){.fd = w->fd, .write = true, .buf = w->tail, .len = HDR,
                            .off = HDR + w->body};
    }
    w->nio = n - w->io0;
    return n;
}

/* The engine's ready hook of a slice: seals the headers while the payloads go out. */
struct slice {
    kvt__ft *ft;
    struct wput *w;
    size_t n, i; /* the put being hashed */
    uint64_t off; /* its bytes hashed */
};

#define SEAL_STEP (2u << 20) /* xxh3 per step: about 0.1 ms, against 0.7 ms per request */

/* One step: hashes the next SEAL_STEP bytes of the slice's payloads (a batch of 8 32 MiB
 * chunks takes 15 ms to hash, in which the device would drain half the ring), sealing
 * each header as its payload is done. True once every header is sealed. */
static bool seal_headers(void *arg)
{
    struct slice *sl = arg;
    kvt__ft *ft = sl->ft;
    while (sl->i < sl->n && (!sl->w[sl->i].e || sl->w[sl->i].err)) {
        sl->i++;
        sl->off = 0;
    }
    if (!ft->lay->seal || sl->i == sl->n)
        return true;
    struct wput *w = &sl->w[sl->i];
    uint64_t len = w->e->info.payload_len, step = len - sl->off;
    step = step < SEAL_STEP ? step : SEAL_STEP;
    if (sl->off == 0)
        XXH3_64bits_reset(ft->wsum);
    XXH3_64bits_update(ft->wsum, w->data + sl->off, step);
    if ((sl->off += step) == len) {
        w->e->info.sum = XXH3_64bits_digest(ft->wsum);
        ft->lay->seal(&w->e->info, w->h);
        sl->i++;
        sl->off = 0;
    }
    return false;
}

/* After the I/O: the exact size, durability, close, rename into place, the commit hook;
 * the temp file goes on failure. */
static void put_close(kvt__ft *ft, struct wput *w)
{
    struct ent *e = w->e;
    struct dir *d = &ft->dirs[e->dir];
    int err = w->err;
    if (!err && e->file_size != HDR + w->body + (w->rest ? HDR : 0) &&
        ftruncate(w->fd, (off_t)e->file_size) != 0)
        err = errno;
    else if (!err && ft->o.fsync && fdatasync(w->fd) != 0)
        err = errno;
    if (w->fd >= 0 && close(w->fd) != 0 && !err)
        err = errno;
    if (!err && renameat(d->fd, w->tmp, d->fd, e->name) != 0)
        err = errno;
    w->renamed = !err;
    if (!err && ft->o.fsync)
        err = kvt__ft_fsync_parent(d->fd, e->name); /* renamed but not durable: the file goes */
    if (!err && ft->lay->committed)
        err = ft->lay->committed(ft, d->fd, e->name, w->h);
    if (err && !w->renamed && w->have_tmp)
        unlinkat(d->fd, w->tmp, 0);
    free(w->bounce);
    w->err = err;
}

/* The entry goes LIVE, or is undone (failed, or removed or cleared while written). */
static int put_end(kvt__ft *ft, struct wput *w)
{
    struct ent *e = w->e;
    struct dir *d = &ft->dirs[e->dir];
    int err = w->err;
    pthread_mutex_lock(&ft->mu);
    if (err || e->cancelled) {
        if (e->cancelled && !err)
            ft->cancelled++;
        if (err)
            *(errno_status(err) == KVT_ENOSPC ? &ft->enospc : &ft->eio) += 1;
        if (w->renamed)
            drop(ft, e);
        else
            unreserve(ft, e);
        unlink_doomed(ft);
    } else {
        e->state = ST_LIVE;
        lru_append(ft, e);
        ft->recycled += w->recycled;
    }
    pthread_mutex_unlock(&ft->mu);
    if (err)
        return kvt__fail(errno_status(err), "%s: writing %s failed: %s", ft->lay->tier, d->path,
                         strerror(err));
    return KVT_OK;
}

/* Writes up to PUT_BATCH puts whose bytes fit the cap together, as one engine run: every
 * payload first, then every header (sealed while the payloads are in flight). */
static void put_slice(kvt__ft *ft, size_t n, const kvt_key *keys, kvt_obj *const *objs,
                      int *sts)
{
    struct wput w[PUT_BATCH];
    kvt__io io[3 * PUT_BATCH];
    size_t nio = 0, hold;
    for (size_t i = 0; i < n; i++) {
        unsigned char *pages = ft->scratch + 2 * i * HDR;
        w[i] = (struct wput){.h = pages, .tail = pages + HDR, .fd = -1};
        sts[i] = put_begin(ft, &keys[i], objs[i], &w[i]);
    }
    /* Opened after every reservation: the first directory fsync of a recycled file (see
     * put_open) then commits the whole slice's renames, and the rest find them done. */
    for (size_t i = 0; i < n; i++) {
        if (w[i].e)
            put_open(ft, &w[i]);
        if (w[i].e && !w[i].err)
            nio = payload_ios(&w[i], io, nio);
    }
    hold = nio;
    for (size_t i = 0; i < n; i++)
        if ((w[i].queued = w[i].e && !w[i].err)) {
            w[i].hio = nio;
            io[nio++] = (kvt__io){.fd = w[i].fd, .write = true, .buf = w[i].h, .len = HDR};
        }
    struct slice sl = {ft, w, n, 0, 0};
    struct kvt__ioeng_hooks hk = {.hold = hold, .ready = seal_headers, .ctx = &sl};
    run_hooked(ft, io, nio, &hk); /* each io has its own result */
    for (size_t i = 0; i < n; i++) {
        if (!w[i].e)
            continue;
        for (size_t k = w[i].io0; w[i].queued && k < w[i].io0 + w[i].nio; k++)
            if (io[k].res != KVT_OK && !w[i].err)
                w[i].err = io_errno(io[k].res);
        if (w[i].queued && io[w[i].hio].res != KVT_OK && !w[i].err)
            w[i].err = io_errno(io[w[i].hio].res);
        put_close(ft, &w[i]);
        sts[i] = put_end(ft, &w[i]);
    }
    for (size_t i = 1; i < n; i++) /* a second copy in the slice shares the first's fate */
        for (size_t j = 0; !w[i].e && sts[i] == KVT_OK && j < i; j++)
            if (w[j].e && kvt_key_equal(&keys[i], &keys[j])) {
                sts[i] = sts[j];
                break;
            }
}

int kvt__ft_batched_put(void *state, size_t n, const kvt_key *keys, kvt_obj *const *objs,
                        int *sts)
{
    kvt__ft *ft = state;
    pthread_mutex_lock(&ft->wmu);
    for (size_t i = 0, k; i < n; i = k) {
        /* A slice never holds more than the cap, so its reservations can always evict
         * older chunks rather than fail for bytes its own puts hold. */
        uint64_t bytes = ft->lay->charge(kvt_obj_size(objs[i]));
        for (k = i + 1; k < n && k - i < PUT_BATCH; k++) {
            uint64_t more = ft->lay->charge(kvt_obj_size(objs[k]));
            if (bytes + more > ft->cap)
                break;
            bytes += more;
        }
        put_slice(ft, k - i, keys + i, objs + i, sts + i);
    }
    pthread_mutex_unlock(&ft->wmu);
    return KVT_OK;
}

int kvt__ft_put(void *state, const kvt_key *key, kvt_obj *obj)
{
    int st;
    kvt__ft_batched_put(state, 1, key, &obj, &st);
    return st;
}

/* Where one read of a batch lands: a pool object made for it (`outs`), or the caller's
 * buffer. Sets sts[i] when it cannot (no room, a short buffer). */
static void *batch_dest(kvt__ft *ft, const struct lease *l, size_t i, kvt_obj **outs,
                        void *const *bufs, const size_t *caps, size_t *lens, int *sts,
                        size_t *cap)
{
    const struct kvt__ft_info *in = &l->e->info;
    if (outs) {
        sts[i] = kvt_backend_alloc(ft->env, in->payload_len, &in->meta, &outs[i]);
        *cap = pad4k(in->payload_len);
        return sts[i] == KVT_OK ? kvt_obj_data_mut(outs[i]) : NULL;
    }
    lens[i] = in->payload_len;
    if (caps[i] < in->payload_len) {
        sts[i] = kvt__fail(KVT_ETOOSMALL, "chunk is %" PRIu64 " bytes, buffer %zu",
                           in->payload_len, caps[i]);
        return NULL;
    }
    *cap = caps[i];
    return bufs[i];
}

/* A batch read in progress: chunk i owns transfers first[i]..first[i+1], in file order;
 * `left[i]` of them are unfinished. The engine's done hook feeds each landed transfer to
 * its chunk's running checksum (in order: `next[i]` is the first one not yet fed) and
 * checks the chunk as soon as its last transfer ends, while the device reads the next. */
struct rbatch {
    kvt__ft *ft;
    struct lease *ls;
    kvt__io *io;
    size_t *first, *left, *next, *owner;
    bool *bad, *landed;
    void **dst;
    struct pages *pg;
    XXH3_state_t **sum; /* NULL entries unless the layout's check value is xxh3 */
    kvt_obj **outs;
    int *sts;
};

/* Chunk i has all its bytes (or failed): its status. */
static void chunk_done(struct rbatch *b, size_t i)
{
    b->sts[i] = read_done(b->ft, &b->ls[i], b->dst[i], &b->pg[i], b->io + b->first[i],
                          b->first[i + 1] - b->first[i], b->sum[i], &b->bad[i]);
    if (b->sts[i] != KVT_OK && b->outs) {
        kvt_obj_release(b->outs[i]);
        b->outs[i] = NULL;
    }
}

static void chunk_read(void *arg, size_t k)
{
    struct rbatch *b = arg;
    size_t i = b->owner[k];
    const struct kvt__ft_info *in = &b->ls[i].e->info;
    b->landed[k] = true;
    for (; b->sum[i] && b->next[i] < b->first[i + 1] && b->landed[b->next[i]]; b->next[i]++) {
        const kvt__io *io = &b->io[b->next[i]];
        XXH3_64bits_update(b->sum[i], io->buf, payload_bytes(in, io));
    }
    if (--b->left[i] == 0)
        chunk_done(b, i);
}

static void rbatch_free(struct rbatch *b, size_t n)
{
    for (size_t i = 0; b->sum && i < n; i++)
        XXH3_freeState(b->sum[i]);
    free(b->ls), free(b->io), free(b->first), free(b->left), free(b->next), free(b->owner);
    free(b->bad), free(b->landed), free(b->dst), free(b->pg), free(b->sum);
}

/* All `n` reads as one engine batch (one io_uring submission stream at the tier's depth),
 * into pool objects (`outs`) or the caller's buffers. KVT_OK unless the batch could not
 * start (then no status is set). */
static int read_batch(kvt__ft *ft, size_t n, const kvt_key *keys, kvt_obj **outs,
                      void *const *bufs, const size_t *caps, size_t *lens, int *sts)
{
    size_t m = n ? n : 1, nio = 0, most = 0;
    struct rbatch b = {.ft = ft, .outs = outs, .sts = sts};
    if (!(b.ls = calloc(m, sizeof *b.ls)) || !(b.first = calloc(m + 1, sizeof *b.first)) ||
        !(b.left = calloc(m, sizeof *b.left)) || !(b.next = calloc(m, sizeof *b.next)) ||
        !(b.bad = calloc(m, sizeof *b.bad)) || !(b.dst = calloc(m, sizeof *b.dst)) ||
        !(b.sum = calloc(m, sizeof *b.sum)) ||
        posix_memalign((void **)&b.pg, HDR, m * sizeof *b.pg) != 0) {
        rbatch_free(&b, 0);
        return kvt__fail(KVT_ENOMEM, "cannot allocate a %s batch", ft->lay->tier);
    }
    pthread_mutex_lock(&ft->mu);
    for (size_t i = 0; i < n; i++) { /* unaligned buffers read buffered, unless a runner copies */
        sts[i] = lease_get(ft, &keys[i], outs || aligned(bufs[i]) || ft->run, &b.ls[i]);
        most += sts[i] == KVT_OK ? read_nios(ft, b.ls[i].e->info.payload_len) : 0;
    }
    pthread_mutex_unlock(&ft->mu);
    int rc = KVT_OK;
    if (!(b.io = calloc(most + 1, sizeof *b.io)) ||
        !(b.owner = calloc(most + 1, sizeof *b.owner)) ||
        !(b.landed = calloc(most + 1, sizeof *b.landed)))
        rc = kvt__fail(KVT_ENOMEM, "cannot allocate a %s batch", ft->lay->tier);
    for (size_t i = 0; i < n; i++) {
        size_t cap = 0;
        if (outs)
            outs[i] = NULL;
        b.first[i] = b.next[i] = nio;
        if (rc != KVT_OK)
            sts[i] = rc;
        else if (sts[i] == KVT_OK &&
                 (b.dst[i] = batch_dest(ft, &b.ls[i], i, outs, bufs, caps, lens, sts, &cap))) {
            if (ft->lay->xxh3_sum && (!(b.sum[i] = XXH3_createState()) ||
                                      XXH3_64bits_reset(b.sum[i]) != XXH_OK)) {
                sts[i] = kvt__fail(KVT_ENOMEM, "cannot allocate a checksum state");
                b.dst[i] = NULL;
                if (outs) {
                    kvt_obj_release(outs[i]);
                    outs[i] = NULL;
                }
            } else {
                nio += read_ios(ft, &b.ls[i], b.dst[i], cap, &b.pg[i], b.io + nio);
            }
        }
        b.left[i] = nio - b.first[i];
        for (size_t k = b.first[i]; k < nio; k++)
            b.owner[k] = i;
    }
    b.first[n] = nio;
    struct kvt__ioeng_hooks hk = {.done = chunk_read, .ctx = &b};
    run_hooked(ft, b.io, nio, &hk); /* each transfer carries its own result */
    for (size_t i = 0; i < n; i++) /* nothing to read (an empty payload): checked here */
        if (b.dst[i] && b.first[i] == b.first[i + 1])
            chunk_done(&b, i);
    pthread_mutex_lock(&ft->mu);
    for (size_t i = 0; i < n; i++)
        lease_end(ft, &b.ls[i], b.bad[i]);
    pthread_mutex_unlock(&ft->mu);
    rbatch_free(&b, n);
    return KVT_OK;
}

int kvt__ft_get(void *state, const kvt_key *key, kvt_obj **out)
{
    *out = NULL;
    int st, rc = read_batch(state, 1, key, out, NULL, NULL, NULL, &st);
    return rc != KVT_OK ? rc : st;
}

int kvt__ft_get_into(void *state, const kvt_key *key, void *buf, size_t cap, size_t *len)
{
    int st, rc = read_batch(state, 1, key, NULL, &buf, &cap, len, &st);
    return rc != KVT_OK ? rc : st;
}

int kvt__ft_batched_get(void *state, size_t n, const kvt_key *keys, kvt_obj **outs, int *sts)
{
    return read_batch(state, n, keys, outs, NULL, NULL, NULL, sts);
}

int kvt__ft_batched_get_into(void *state, size_t n, const kvt_key *keys, void *const *bufs,
                             const size_t *caps, size_t *lens, int *sts)
{
    return read_batch(state, n, keys, NULL, bufs, caps, lens, sts);
}

int kvt__ft_contains(void *state, const kvt_key *key)
{
    kvt__ft *ft = state;
    pthread_mutex_lock(&ft->mu);
    bool found = find_live(ft, key) != NULL;
    pthread_mutex_unlock(&ft->mu);
    return found;
}

/* Removes `e` whatever its state (a write in progress is cancelled). mu held. */
static bool remove_ent(kvt__ft *ft, struct ent *e)
{
    if (e->state == ST_WRITING) {
        bool was = !e->cancelled;
        e->cancelled = true;
        return was;
    }
    drop(ft, e);
    return true;
}

int kvt__ft_remove(void *state, const kvt_key *key)
{
    kvt__ft *ft = state;
    pthread_mutex_lock(&ft->mu);
    struct ent *e = find(ft, key);
    bool removed = e && remove_ent(ft, e);
    unlink_doomed(ft);
    pthread_mutex_unlock(&ft->mu);
    return removed ? KVT_OK : KVT_ENOENT;
}

int kvt__ft_clear(void *state, uint64_t *tokens)
{
    kvt__ft *ft = state;
    pthread_mutex_lock(&ft->mu);
    for (size_t b = 0; b < ft->nbuckets; b++)
        for (struct ent *e = ft->buckets[b], *next; e; e = next) {
            next = e->hnext;
            if (e->state == ST_LIVE)
                *tokens += e->info.meta.num_tokens;
            remove_ent(ft, e);
        }
    unlink_doomed(ft);
    pthread_mutex_unlock(&ft->mu);
    return KVT_OK;
}

size_t kvt__ft_count_prefix(void *state, const kvt_key *keys, size_t n, bool pin)
{
    kvt__ft *ft = state;
    size_t i = 0;
    pthread_mutex_lock(&ft->mu);
    for (struct ent *e; i < n && (e = find_live(ft, &keys[i])); i++)
        if (pin && e->pins++ == 0) {
            ft->pinned++;
            lru_unlink(e);
        }
    pthread_mutex_unlock(&ft->mu);
    return i;
}

int kvt__ft_unpin(void *state, const kvt_key *key)
{
    kvt__ft *ft = state;
    pthread_mutex_lock(&ft->mu);
    struct ent *e = find_live(ft, key);
    bool ok = e && e->pins > 0;
    if (ok && --e->pins == 0) {
        ft->pinned--;
        lru_append(ft, e);
    }
    pthread_mutex_unlock(&ft->mu);
    return ok ? KVT_OK : KVT_ENOENT;
}

void kvt__ft_stats(void *state, kvt_backend_stats *out)
{
    kvt__ft *ft = state;
    pthread_mutex_lock(&ft->mu);
    out->bytes_used = ft->used;
    out->capacity_bytes = ft->cap;
    out->objects = ft->count;
    out->evictions = ft->evictions;
    out->pinned = ft->pinned;
    pthread_mutex_unlock(&ft->mu);
    kvt__strlcpy(out->mode, ft->mode, sizeof out->mode);
}

/* Writes and removes a one-page probe file in every directory, as a put would. */
int kvt__ft_ping(void *state)
{
    kvt__ft *ft = state;
    unsigned char *page = NULL;
    if (posix_memalign((void **)&page, HDR, HDR) != 0)
        return kvt__fail(KVT_ENOMEM, "%s ping: no memory", ft->lay->tier);
    memset(page, 0, HDR);
    int rc = KVT_OK;
    for (size_t i = 0; i < ft->ndirs && rc == KVT_OK; i++) {
        struct dir *d = &ft->dirs[i];
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
            rc = kvt__fail(KVT_EIO, "%s ping: cannot write in directory %zu: %s", ft->lay->tier, i,
                           strerror(err));
    }
    free(page);
    return rc;
}

/* ------------------------------------------------------------------ restart scan */

struct kvt__ft_scan {
    struct ent **v;
    size_t n, cap;
    uint64_t bad;
    const char *why; /* the first bad file's reason, logged once */
    char name[NAME_MAX_REL];
    unsigned char *page;
};

unsigned char *kvt__ft_scan_page(struct kvt__ft_scan *sc) { return sc->page; }

bool kvt__ft_read_head(kvt__ft *ft, size_t di, const char *rel, unsigned char *h, struct stat *st,
                       bool *have_st, const char **why)
{
    struct dir *d = &ft->dirs[di];
    *have_st = false;
    *why = "unreadable";
    int fd = openat(d->fd, rel, O_RDONLY | O_CLOEXEC | (d->direct ? O_DIRECT : 0));
    if (fd < 0)
        return false;
    bool ok = fstat(fd, st) == 0 && S_ISREG(st->st_mode);
    *have_st = ok;
    if (ok && st->st_size < (off_t)HDR) {
        *why = "shorter than a header";
        ok = false;
    }
    ok = ok && pread(fd, h, HDR, 0) == (ssize_t)HDR;
    close(fd);
    return ok;
}

void kvt__ft_scan_bad(kvt__ft *ft, struct kvt__ft_scan *sc, size_t di, const char *rel,
                      uint64_t bytes, const char *why)
{
    struct ent *e = ent_new(rel);
    if (!sc->why) {
        sc->why = why;
        kvt__strlcpy(sc->name, rel, sizeof sc->name);
    }
    sc->bad++;
    if (!e)
        return;
    /* Quarantined like a read-time failure; its bytes count while it is kept aside. */
    e->file_bytes = bytes;
    e->dir = (uint16_t)di;
    e->state = ST_LIVE;
    ft->used += bytes;
    quarantine(ft, e);
}

void kvt__ft_scan_found(kvt__ft *ft, struct kvt__ft_scan *sc, size_t di, const char *rel,
                        const struct stat *st, const struct kvt__ft_info *info)
{
    struct ent *e = ent_new(rel);
    if (!e)
        return;
    e->info = *info;
    e->hash = kvt_key_hash(&info->key);
    e->file_size = (uint64_t)st->st_size;
    e->file_bytes = ft->lay->charge(info->payload_len);
    e->dir = (uint16_t)di;
    e->state = ST_LIVE;
    e->mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
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

static int cmp_mtime(const void *a, const void *b)
{
    int64_t x = (*(struct ent *const *)a)->mtime_ns, y = (*(struct ent *const *)b)->mtime_ns;
    return (x > y) - (x < y);
}

/* Counts (and trims) a directory's quarantine. */
static void scan_quarantine(kvt__ft *ft, struct dir *d)
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
        ft->used += (uint64_t)st.st_size;
    }
    closedir(dp);
}

/* Walks `rel` (a subdirectory of directory di, "." for itself) and `depth` more levels
 * below it; every regular file met is a temp file or goes to the layout's scan_file. */
static int walk(kvt__ft *ft, struct kvt__ft_scan *sc, size_t di, const char *rel, unsigned depth)
{
    struct dir *d = &ft->dirs[di];
    int fd = openat(d->fd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *dp = fd >= 0 ? fdopendir(fd) : NULL;
    if (!dp) {
        if (fd >= 0)
            close(fd);
        return errno;
    }
    bool top = strcmp(rel, ".") == 0;
    for (struct dirent *de; (de = readdir(dp));) {
        char path[NAME_MAX_REL];
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        if (snprintf(path, sizeof path, "%s%s%s", top ? "" : rel, top ? "" : "/", de->d_name) >=
            (int)sizeof path)
            continue;
        unsigned char t = de->d_type;
        if (t == DT_UNKNOWN) {
            struct stat st;
            t = fstatat(d->fd, path, &st, AT_SYMLINK_NOFOLLOW) != 0 ? DT_UNKNOWN
                : S_ISDIR(st.st_mode)                               ? DT_DIR
                : S_ISREG(st.st_mode)                               ? DT_REG
                                                                    : DT_UNKNOWN;
        }
        if (t == DT_DIR) {
            if (depth > 0 && !(top && strcmp(de->d_name, "quarantine") == 0))
                walk(ft, sc, di, path, depth - 1);
        } else if (t == DT_REG) {
            if (ft->lay->is_tmp(path)) { /* a write a crash or kill interrupted */
                if (unlinkat(d->fd, path, 0) == 0)
                    ft->stale_tmp++;
            } else {
                ft->lay->scan_file(ft, sc, di, path);
            }
        }
    }
    closedir(dp);
    return 0;
}

static int scan(kvt__ft *ft)
{
    struct kvt__ft_scan sc = {0};
    if (posix_memalign((void **)&sc.page, HDR, HDR) != 0)
        return kvt__fail(KVT_ENOMEM, "%s: no memory to scan", ft->lay->tier);
    for (size_t di = 0; di < ft->ndirs; di++) {
        scan_quarantine(ft, &ft->dirs[di]);
        int err = walk(ft, &sc, di, ".", ft->lay->scan_depth);
        if (err) {
            free(sc.page);
            for (size_t i = 0; i < sc.n; i++)
                free(sc.v[i]);
            free(sc.v);
            return kvt__fail(KVT_EIO, "%s: cannot list %s: %s", ft->lay->tier, ft->dirs[di].path,
                             strerror(err));
        }
    }
    free(sc.page);
    if (sc.n)
        qsort(sc.v, sc.n, sizeof *sc.v, cmp_mtime); /* oldest first: LRU order */
    pthread_mutex_lock(&ft->mu);
    for (size_t i = 0; i < sc.n; i++) {
        struct ent *e = sc.v[i], *old = find(ft, &e->info.key);
        if (old) /* two files for one key (names changed between versions): newest wins */
            drop(ft, old);
        index_add(ft, e);
        lru_append(ft, e);
        ft->used += e->file_bytes;
        ft->indexed++;
    }
    while (ft->used > ft->cap && ft->lru.next != &ft->lru) { /* a lowered cap holds at once */
        while (ft->used - ft->doomed_bytes > ft->cap && ft->lru.next != &ft->lru) {
            drop(ft, (struct ent *)ft->lru.next);
            ft->evictions++;
        }
        unlink_doomed(ft); /* a file it could not unlink stays counted: evict more */
    }
    ft->corrupt += sc.bad;
    pthread_mutex_unlock(&ft->mu);
    free(sc.v);
    if (sc.bad)
        kvt_backend_log(ft->env, KVT_LOG_WARN, "event=quarantine_at_open files=%" PRIu64
                        " first=\"%s\" reason=\"%s\"", sc.bad, sc.name, sc.why);
    return KVT_OK;
}

/* ------------------------------------------------------------------ open, close */

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

static int open_dirs(kvt__ft *ft, const char *csv, const char *key)
{
    char *copy = strdup(csv), *save = NULL;
    size_t n = 1;
    if (!copy)
        return kvt__fail(KVT_ENOMEM, "cannot allocate %s", ft->lay->tier);
    for (const char *p = csv; *p; p++)
        n += *p == ',';
    if (!(ft->dirs = calloc(n, sizeof *ft->dirs))) {
        free(copy);
        return kvt__fail(KVT_ENOMEM, "cannot allocate %s", ft->lay->tier);
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
        struct dir *d = &ft->dirs[ft->ndirs];
        d->fd = -1;
        if (!(d->path = strdup(tok)))
            rc = kvt__fail(KVT_ENOMEM, "cannot allocate %s", ft->lay->tier);
        else if (mkdirs(d->path) != 0 ||
                 (d->fd = open(d->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
            rc = kvt__fail(KVT_EIO, "%s: cannot use directory \"%s\": %s", key, d->path,
                           strerror(errno));
        else if (faccessat(d->fd, ".", W_OK, AT_EACCESS) != 0)
            rc = kvt__fail(KVT_EIO, "%s: directory \"%s\" is not writable", key, d->path);
        else
            d->direct = ft->o.odirect && probe_direct(d->fd);
        ft->ndirs++;
    }
    free(copy);
    if (rc == KVT_OK && ft->ndirs == 0)
        rc = kvt__fail(KVT_ECONFIG, "%s names no directory", key);
    for (size_t i = 0; rc == KVT_OK && i < ft->ndirs; i++)
        for (size_t j = 0; j < i; j++)
            if (strcmp(ft->dirs[i].path, ft->dirs[j].path) == 0)
                rc = kvt__fail(KVT_ECONFIG, "%s names \"%s\" twice", key, ft->dirs[i].path);
    return rc;
}

int kvt__ft_open(const kvt_backend_env *env, const struct kvt__ft_layout *lay,
                 const struct kvt__ft_opts *o, void *lctx, kvt__ft **out)
{
    kvt__ft *ft = calloc(1, sizeof *ft);
    if (!ft)
        return kvt__fail(KVT_ENOMEM, "cannot allocate %s", lay->tier);
    kvt__cond_init_monotonic(&ft->cv);
    pthread_mutex_init(&ft->mu, NULL);
    pthread_mutex_init(&ft->wmu, NULL);
    ft->lay = lay;
    ft->lctx = lctx;
    ft->o = *o;
    ft->o.dirs = NULL; /* borrowed for the call only */
    ft->lru.next = ft->lru.prev = &ft->lru;
    ft->cap = o->cap;
    ft->nbuckets = 1024;
    int rc = KVT_OK;
    if (!(ft->buckets = calloc(ft->nbuckets, sizeof *ft->buckets)) ||
        posix_memalign((void **)&ft->scratch, HDR, 2 * HDR * PUT_BATCH) != 0 ||
        !(ft->wsum = XXH3_createState()))
        rc = kvt__fail(KVT_ENOMEM, "cannot allocate %s", lay->tier);
    if (rc == KVT_OK)
        rc = open_dirs(ft, o->dirs, o->dirs_key);
    if (rc == KVT_OK) {
        struct kvt__ioeng_opts eo = {o->depth, o->req_size, o->threads, !o->io_uring};
        rc = kvt__ioeng_new(&eo, &ft->eng);
    }
    ft->env = env;
    if (rc == KVT_OK)
        rc = scan(ft);
    if (rc != KVT_OK) {
        kvt__ft_destroy(ft);
        return rc;
    }
    size_t nbuffered = 0;
    for (size_t i = 0; i < ft->ndirs; i++)
        nbuffered += !ft->dirs[i].direct;
    snprintf(ft->mode, sizeof ft->mode, "%s%s", kvt__ioeng_mode(ft->eng),
             nbuffered ? "+buffered" : "");
    *out = ft;
    return KVT_OK;
}

void kvt__ft_set_mode(kvt__ft *ft, const char *mode, kvt__ft_runner fn, void *ctx)
{
    kvt__strlcpy(ft->mode, mode, sizeof ft->mode);
    ft->run = fn;
    ft->run_ctx = ctx;
}

void kvt__ft_created(kvt__ft *ft)
{
    for (size_t i = 0; i < ft->ndirs; i++)
        if (!ft->dirs[i].direct && ft->o.odirect)
            kvt_backend_log(ft->env, KVT_LOG_INFO, "event=odirect_refused dir=\"%s\" io=buffered",
                            ft->dirs[i].path);
    if (kvt__ioeng_refused(ft->eng))
        kvt_backend_log(ft->env, KVT_LOG_INFO, "event=io_uring_refused err=%s engine=pread",
                        strerror(-kvt__ioeng_refused(ft->eng)));
    kvt_backend_log(ft->env, KVT_LOG_INFO,
                    "event=created dirs=%zu mode=%s capacity_bytes=%" PRIu64 " indexed=%" PRIu64
                    " bytes_used=%" PRIu64 " evicted_at_open=%" PRIu64 " quarantined=%" PRIu64
                    " stale_tmp=%" PRIu64 " depth=%u request_kib=%zu fsync=%d",
                    ft->ndirs, ft->mode, ft->cap, ft->indexed, ft->used, ft->evictions,
                    ft->quarantined, ft->stale_tmp, ft->o.depth, ft->o.req_size / 1024, ft->o.fsync);
}

void kvt__ft_destroy(void *state)
{
    kvt__ft *ft = state;
    if (ft->env && ft->eng)
        kvt_backend_log(ft->env, KVT_LOG_INFO,
                        "event=destroyed objects=%zu bytes_used=%" PRIu64 " evictions=%" PRIu64
                        " quarantined=%" PRIu64 " corrupt=%" PRIu64 " enospc=%" PRIu64
                        " eio=%" PRIu64 " cancelled=%" PRIu64 " recycled=%" PRIu64,
                        ft->count, ft->used, ft->evictions, ft->quarantined, ft->corrupt,
                        ft->enospc, ft->eio, ft->cancelled, ft->recycled);
    for (size_t b = 0; ft->buckets && b < ft->nbuckets; b++)
        for (struct ent *e = ft->buckets[b], *next; e; e = next) {
            next = e->hnext;
            free(e);
        }
    kvt__ioeng_free(ft->eng);
    for (size_t i = 0; i < ft->ndirs; i++) {
        if (ft->dirs[i].fd >= 0)
            close(ft->dirs[i].fd);
        free(ft->dirs[i].path);
    }
    free(ft->dirs);
    free(ft->buckets);
    free(ft->scratch);
    XXH3_freeState(ft->wsum);
    pthread_cond_destroy(&ft->cv);
    pthread_mutex_destroy(&ft->mu);
    pthread_mutex_destroy(&ft->wmu);
    free(ft);
}

void kvt__ft_counters(void *state, struct kvt__ft_counters *out)
{
    kvt__ft *ft = state;
    pthread_mutex_lock(&ft->mu);
    *out = (struct kvt__ft_counters){ft->evictions, ft->quarantined, ft->corrupt, ft->enospc,
                                     ft->eio, ft->cancelled, ft->stale_tmp, ft->indexed, ft->used,
                                     ft->recycled};
    pthread_mutex_unlock(&ft->mu);
}

void *kvt__ft_layout_ctx(const kvt__ft *ft) { return ft->lctx; }
kvt__ioeng *kvt__ft_engine(const kvt__ft *ft) { return ft->eng; }
const kvt_backend_env *kvt__ft_env(const kvt__ft *ft) { return ft->env; }
size_t kvt__ft_ndirs(const kvt__ft *ft) { return ft->ndirs; }
const char *kvt__ft_dir_path(const kvt__ft *ft, size_t i) { return ft->dirs[i].path; }
int kvt__ft_dir_fd(const kvt__ft *ft, size_t i) { return ft->dirs[i].fd; }
bool kvt__ft_dir_direct(const kvt__ft *ft, size_t i) { return ft->dirs[i].direct; }
bool kvt__ft_fsync(const kvt__ft *ft) { return ft->o.fsync; }
