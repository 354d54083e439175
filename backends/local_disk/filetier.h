/* kvtier — the file-tier core shared by LocalDiskBackend and GdsBackend. Internal.
 *
 * One file per chunk under one or more directories (a chunk's directory is its hash
 * modulo their number). The core holds everything but the file format: the in-memory
 * index and LRU list, the cap (a write reserves its bytes before its first byte, evicting
 * first, so used <= cap at every moment), two-phase eviction and remove (off the index
 * and renamed aside at once, unlinked once the index lock is released; the bytes stay
 * counted until then and until the last reader that had the file open closes it), reader
 * leases, pins, single and batched reads through the I/O engine
 * (src/ioeng.h), get_into, stats, ping, and the restart scan driver (quarantine, stale
 * temp files, LRU order from mtime, the cap enforced at once).
 *
 * A *layout* (struct kvt__ft_layout) says what a file is: its name for a key (which may
 * hold subdirectories, made on demand), its header page, how its bytes are checked after
 * a read, what a temp name looks like, how to walk a directory at restart, and what else
 * a write or a removal touches (GDS: the .metadata sidecar).
 *
 * Every data file is a 4096-byte header then the payload, so payload I/O is aligned for
 * O_DIRECT. Lock order: the core's `mu` only; nothing is logged and no store call is made
 * with it held. Layout hooks are called without `mu`, except `removed` (see there). */
#ifndef KVTIER_FILETIER_H
#define KVTIER_FILETIER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "src/ioeng.h"
#include "src/store.h"

#define KVT__FT_HDR 4096u

typedef struct kvt__ft kvt__ft;
struct kvt__ft_scan;

/* What a header says about a chunk: filled by a layout's parser, kept in the index. */
struct kvt__ft_info {
    kvt_key key;
    uint64_t payload_len;
    uint64_t sum; /* the layout's own check value (LocalDisk: xxh3 of the payload) */
    kvt_chunk_meta meta;
};

struct kvt__ft_layout {
    const char *tier; /* "LocalDiskBackend": error texts and log lines */
    /* The data file's name relative to its directory ("a/b/name" is allowed). */
    int (*name)(const kvt_key *key, const char *key_string, char *out, size_t cap);
    /* Temp name, in the same directory as `name`, for a write in progress. */
    void (*tmp_name)(const char *name, uint64_t rnd, char *out, size_t cap);
    /* The data file's exact size for a payload of `n` bytes (at least 4096 + n, at most
     * 4096 + n rounded up to 4096), and the bytes a chunk counts against the cap. */
    uint64_t (*file_size)(uint64_t n);
    uint64_t (*charge)(uint64_t n);
    /* Builds the header page of a put, before its payload is written. */
    int (*header)(const char *key_string, struct kvt__ft_info *info, unsigned char h[KVT__FT_HDR]);
    /* Optional, with xxh3_sum: finishes that page with info->sum, the payload's xxh3-64,
     * which the core computes while the payload's writes are in flight, before the
     * header's own write. */
    void (*seal)(const struct kvt__ft_info *info, unsigned char h[KVT__FT_HDR]);
    /* Checks a finished read. `xxh3_sum`: info->sum is the xxh3-64 of the payload, which
     * the core checks as the payload lands. `verify` (optional) checks the rest: `head`
     * is the header page read with it (NULL unless read_header), `buf` the payload;
     * true, else a reason in *why. */
    bool read_header, xxh3_sum;
    bool (*verify)(const struct kvt__ft_info *info, const unsigned char *head, const void *buf,
                   const char **why);
    /* Optional: after the data file was renamed into place (GDS: write the sidecar).
     * 0 or an errno; on failure the core unlinks the data file and fails the put. */
    int (*committed)(kvt__ft *ft, int dirfd, const char *name, const unsigned char *h);
    /* Optional: after `name` was unlinked or renamed to a temp name to be unlinked (the
     * chunk is gone either way), or moved aside as `aside` (a path relative to the
     * directory) when quarantined. Called with `mu` held: it may only touch files. */
    void (*removed)(int dirfd, const char *name, const char *aside);
    /* Is `rel` (a path under a directory) a temp file of an interrupted write? */
    bool (*is_tmp)(const char *rel);
    /* Restart: subdirectory levels to walk (0: the directory itself), and what to do
     * with one regular file `rel` found at any of them that is not a temp file: call
     * kvt__ft_scan_found() or kvt__ft_scan_bad(), or nothing for a file not of this tier. */
    unsigned scan_depth;
    void (*scan_file)(kvt__ft *ft, struct kvt__ft_scan *sc, size_t dir, const char *rel);
};

/* One batch of transfers, as kvt__ioeng_run() runs it; GDS mode puts cuFile here. */
typedef int (*kvt__ft_runner)(void *ctx, kvt__io *ios, size_t n);

struct kvt__ft_opts {
    const char *dirs;     /* CSV; file:// prefixes stripped */
    const char *dirs_key; /* the config key naming them: error texts */
    uint64_t cap;         /* bytes, > 0 */
    unsigned depth;
    size_t req_size;
    unsigned threads;
    bool io_uring, odirect, fsync, fallocate;
};

/* Counters besides kvt_backend_stats (all since create). */
struct kvt__ft_counters {
    uint64_t evictions;   /* entries evicted for room, at open included */
    uint64_t quarantined; /* files moved aside (or deleted when the quarantine was full) */
    uint64_t corrupt;     /* files that failed verification: at open (header) or on read */
    uint64_t enospc;      /* puts refused for room: the filesystem's or the cap's */
    uint64_t eio;         /* puts or unlinks that failed with another error */
    uint64_t cancelled;   /* writes a remove or clear overtook */
    uint64_t stale_tmp;   /* temp files of interrupted writes deleted at open */
    uint64_t indexed;     /* files re-indexed at open */
    uint64_t used;        /* bytes counted against the cap now */
    uint64_t recycled;    /* evicted files a put overwrote instead of a new file */
};

/* Opens the directories, the engine, and re-indexes them. Logs nothing yet (see
 * kvt__ft_created). KVT_OK with `*out`, else a status with kvt_last_error() detail. */
int kvt__ft_open(const kvt_backend_env *env, const struct kvt__ft_layout *lay,
                 const struct kvt__ft_opts *o, void *lctx, kvt__ft **out);
/* Sets the I/O mode string (stats) and, optionally, another runner for every transfer. */
void kvt__ft_set_mode(kvt__ft *ft, const char *mode, kvt__ft_runner run, void *run_ctx);
/* Logs what the open found (O_DIRECT refused, io_uring refused, the created line). */
void kvt__ft_created(kvt__ft *ft);
void *kvt__ft_layout_ctx(const kvt__ft *ft);
kvt__ioeng *kvt__ft_engine(const kvt__ft *ft);
const kvt_backend_env *kvt__ft_env(const kvt__ft *ft);
size_t kvt__ft_ndirs(const kvt__ft *ft);
const char *kvt__ft_dir_path(const kvt__ft *ft, size_t i);
int kvt__ft_dir_fd(const kvt__ft *ft, size_t i);
bool kvt__ft_dir_direct(const kvt__ft *ft, size_t i);
bool kvt__ft_fsync(const kvt__ft *ft);
/* fsyncs the directory holding `rel` (under directory fd `dirfd`); 0 or an errno. */
int kvt__ft_fsync_parent(int dirfd, const char *rel);
void kvt__ft_counters(void *state, struct kvt__ft_counters *out);

/* Restart scan, for layouts' scan_file: reads the first 4096 bytes of `rel` (O_DIRECT
 * where the directory allows it) into `h` (4096-aligned) and its stat; false with a
 * reason when it cannot be read or is shorter than a header (`st` set when stat worked). */
bool kvt__ft_read_head(kvt__ft *ft, size_t dir, const char *rel, unsigned char *h,
                       struct stat *st, bool *have_st, const char **why);
/* A 4096-aligned page for scan_file's reads (one per scan). */
unsigned char *kvt__ft_scan_page(struct kvt__ft_scan *sc);
/* A good file: indexed (LRU order from its mtime). */
void kvt__ft_scan_found(kvt__ft *ft, struct kvt__ft_scan *sc, size_t dir, const char *rel,
                        const struct stat *st, const struct kvt__ft_info *info);
/* A bad one: quarantined, counted; `bytes` stay counted while it is kept aside. */
void kvt__ft_scan_bad(kvt__ft *ft, struct kvt__ft_scan *sc, size_t dir, const char *rel,
                      uint64_t bytes, const char *why);

/* The backend slots; `state` is the kvt__ft *. */
void kvt__ft_destroy(void *state);
int kvt__ft_put(void *state, const kvt_key *key, kvt_obj *obj);
int kvt__ft_batched_put(void *state, size_t n, const kvt_key *keys, kvt_obj *const *objs,
                        int *sts);
int kvt__ft_get(void *state, const kvt_key *key, kvt_obj **out);
int kvt__ft_get_into(void *state, const kvt_key *key, void *buf, size_t cap, size_t *len);
int kvt__ft_batched_get(void *state, size_t n, const kvt_key *keys, kvt_obj **outs, int *sts);
int kvt__ft_batched_get_into(void *state, size_t n, const kvt_key *keys, void *const *bufs,
                             const size_t *caps, size_t *lens, int *sts);
int kvt__ft_contains(void *state, const kvt_key *key);
int kvt__ft_remove(void *state, const kvt_key *key);
int kvt__ft_clear(void *state, uint64_t *tokens);
size_t kvt__ft_count_prefix(void *state, const kvt_key *keys, size_t n, bool pin);
int kvt__ft_unpin(void *state, const kvt_key *key);
void kvt__ft_stats(void *state, kvt_backend_stats *out);
int kvt__ft_ping(void *state);

/* The data-path slots above, for an ops table (type name, flags, wanted, create and
 * destroy stay the caller's). */
#define KVT__FT_OPS                                                                               \
    .put = kvt__ft_put, .get = kvt__ft_get,                                                       \
    .contains = kvt__ft_contains, .remove = kvt__ft_remove, .clear = kvt__ft_clear,               \
    .count_prefix = kvt__ft_count_prefix, .unpin = kvt__ft_unpin, .stats = kvt__ft_stats,         \
    .batched_get = kvt__ft_batched_get, .get_into = kvt__ft_get_into, .ping = kvt__ft_ping,     \
    .batched_get_into = kvt__ft_batched_get_into, .batched_put = kvt__ft_batched_put

#endif
