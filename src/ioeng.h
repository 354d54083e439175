/* kvtier — the block I/O engine shared by file tiers (LocalDisk; GDS compat mode). Internal.
 *
 * A caller hands the engine a batch of whole transfers (fd, buffer, length, offset) and
 * blocks until every one has finished or failed. The engine splits each transfer into
 * requests of at most `req_size` bytes and keeps up to `depth` of them in flight, so the
 * device sees the configured queue depth even for one chunk.
 *
 * Two modes, chosen once at kvt__ioeng_new():
 * - io_uring: a small set of rings (one per I/O thread, `threads` of them, at least one).
 *   A caller leases a free ring for the whole batch, submits and reaps on its own thread
 *   (no hand-off to another thread on the data path), and returns it. Every completion is
 *   matched to its request through user_data; short transfers are resubmitted for the
 *   rest, -EAGAIN/-EINTR completions are resubmitted, and -EINTR/-EAGAIN/-EBUSY from
 *   submit or wait are retried after reaping.
 * - pread: when the kernel refuses io_uring (-ENOSYS, -EPERM: seccomp, io_uring_disabled;
 *   -ENOMEM: memlock) or `force_posix`. `threads` worker threads plus the caller itself
 *   run the requests with pread/pwrite loops, so the fallback also keeps several requests
 *   in flight.
 *
 * Buffers may be registered with the rings (kvt__ioeng_register); transfers inside a
 * registered region then use the fixed-buffer opcodes. Registration failing (ENOMEM under
 * the default RLIMIT_MEMLOCK) is not an error: plain buffers are used, and
 * kvt__ioeng_register reports why so the caller can log it once.
 *
 * The engine never logs (it has no store); callers log kvt__ioeng_refused() etc. */
#ifndef KVTIER_IOENG_H
#define KVTIER_IOENG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct kvt__ioeng kvt__ioeng;

struct kvt__ioeng_opts {
    unsigned depth;    /* requests in flight per batch, 1..4096 */
    size_t req_size;   /* bytes per request; a multiple of 4096 for O_DIRECT files */
    unsigned threads;  /* rings (io_uring) or worker threads (pread); 0 = one ring / caller only */
    bool force_posix;  /* pread/pwrite even where io_uring works */
};

/* One transfer. `res` is set by kvt__ioeng_run: KVT_OK when all `len` bytes moved,
 * KVT_ECORRUPT when a read hit end of file first (unless `eof_ok`), else a kvt_status
 * (-errno). With `eof_ok`, a read that meets end of file is KVT_OK and `missing` says how
 * many of its `len` bytes lay past it (the last page of a file whose size is not a
 * multiple of 4096, read whole with O_DIRECT). */
typedef struct kvt__io {
    int fd;
    bool write;
    void *buf;
    size_t len;
    uint64_t off;
    int res;
    bool eof_ok;
    size_t missing;
} kvt__io;

/* KVT_OK with `*out`; falls back to pread mode (KVT_OK) when io_uring is refused. */
int kvt__ioeng_new(const struct kvt__ioeng_opts *opts, kvt__ioeng **out);
/* Frees the engine; no batch may be running. NULL is a no-op. */
void kvt__ioeng_free(kvt__ioeng *e);
/* Runs `n` transfers to completion, at most depth requests in flight. Returns KVT_OK
 * when every transfer succeeded, else the first failing transfer's res (each io has its
 * own). Thread-safety: any thread, concurrently (batches lease distinct rings). */
int kvt__ioeng_run(kvt__ioeng *e, kvt__io *ios, size_t n);
/* What a caller does while its batch runs, on its own thread (each hook may be NULL):
 * - ready(ctx): does a step of the caller's work and returns true once it is all done;
 *   the transfers from ios[hold] on start only after that. It is called again and again
 *   while the earlier transfers are in flight, each time after the ring was topped up and
 *   what had landed reaped (in pread mode: before the run, until done), so a caller can
 *   finish what the later transfers carry (a header with the payload's checksum) without
 *   the device running dry; a step should take well under one request's time;
 * - done(ctx, i): called once per transfer when it has finished or failed (its res is
 *   final), while later transfers may still be in flight (all at the end, in pread mode),
 *   so a caller can check one chunk while the device reads the next. */
struct kvt__ioeng_hooks {
    size_t hold;
    bool (*ready)(void *ctx);
    void (*done)(void *ctx, size_t i);
    void *ctx;
};
/* kvt__ioeng_run with hooks (NULL: none). */
int kvt__ioeng_run_hooked(kvt__ioeng *e, kvt__io *ios, size_t n, const struct kvt__ioeng_hooks *h);
/* "io_uring" or "pread". Static string. */
const char *kvt__ioeng_mode(const kvt__ioeng *e);
/* The -errno io_uring setup failed with when the engine fell back; 0 otherwise. */
int kvt__ioeng_refused(const kvt__ioeng *e);
/* Registers [base, base + len) with every ring (at most one region). KVT_OK, or the
 * status registration failed with (transfers then use plain buffers); KVT_ENOTSUP in
 * pread mode. Call before any batch runs. */
int kvt__ioeng_register(kvt__ioeng *e, void *base, size_t len);
/* Counters, for stats and tests. */
struct kvt__ioeng_counters {
    uint64_t batches, requests, resubmits, fixed; /* fixed: requests on registered buffers */
};
void kvt__ioeng_counters(kvt__ioeng *e, struct kvt__ioeng_counters *out);

#endif
