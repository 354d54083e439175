/* kvtier — RemoteBackend internals: the connector vtable shared by remote.c, fs.c and
 * redis.c. Never installed.
 *
 * remote.c owns what LMCache fixes for every connector: the key string, the 28-byte
 * RemoteMetadata header and its checks, and where a read lands (a sink). A connector only
 * moves bytes: one value is `hdr` (0 or 28 bytes) followed by the payload. */
#ifndef KVTIER_REMOTE_H
#define KVTIER_REMOTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "kvtier/backend.h"
#include "src/clock.h"

/* LMCache's RemoteMetadata: struct.pack("iiiiiii", length, fmt, dtype, s0, s1, s2, s3). */
#define KVT__RMT_HDR 28

/* Where a read lands. reserve() is called once the payload length is known and checked
 * against the header; it returns KVT_OK with a buffer of `len` bytes, KVT_ETOOSMALL (the
 * caller's buffer is short) or KVT_ENOMEM (no room to stage: the store retries through
 * get_into). The connector stops and returns that status. */
struct kvt__rmt_sink {
    int (*reserve)(struct kvt__rmt_sink *sink, size_t len, const kvt_chunk_meta *meta, void **buf);
};

/* One key of a request. */
struct kvt__rmt_item {
    const char *key; /* LMCache key string, NUL-terminated */
    size_t klen;
    uint64_t hash;   /* chunk hash magnitude: fs spreads keys over its paths by it */
    struct kvt__rmt_sink *sink;
};

struct kvt__rmt_params {
    const kvt_backend_env *env;
    const char *url;            /* scheme already checked */
    int64_t op_timeout_ms;      /* every call, end to end */
    int64_t connect_timeout_ms;
    int64_t reconnect_interval_ms;
    int64_t pool_size;
    bool save_meta;             /* extra_config.save_chunk_meta: values carry the header */
    bool fsync;                 /* fs: fsync file and directory before/after the rename */
};

struct kvt__rmt_connector {
    const char *mode; /* kvt_backend_stats.mode */
    int (*open)(const struct kvt__rmt_params *p, void **conn);
    void (*close)(void *conn);
    /* Stores hdr (hlen bytes, 0 or KVT__RMT_HDR) then data under it->key. */
    int (*put)(void *conn, const struct kvt__rmt_item *it, const void *hdr, size_t hlen,
               const void *data, size_t len);
    /* KVT_OK (bytes in it->sink's buffer), KVT_ENOENT, or a failure/sink status. */
    int (*get)(void *conn, const struct kvt__rmt_item *it);
    /* get() for n items at once; statuses[i] as get() gives it. KVT_OK unless the whole
     * batch failed (then every status says why). */
    int (*get_many)(void *conn, size_t n, const struct kvt__rmt_item *items, int *statuses);
    int (*contains)(void *conn, const struct kvt__rmt_item *it); /* 1, 0, or < 0 */
    /* The number of leading items stored, in one pass (a pipeline for redis); an error
     * ends the run. */
    size_t (*count_prefix)(void *conn, size_t n, const struct kvt__rmt_item *items);
    int (*remove)(void *conn, const struct kvt__rmt_item *it);   /* KVT_OK or KVT_ENOENT */
    int (*clear)(void *conn, uint64_t *chunks);                  /* adds chunks removed */
    int (*ping)(void *conn);
};

extern const struct kvt__rmt_connector kvt__rmt_fs, kvt__rmt_redis;

/* Decodes a header read with a payload of `len` bytes into `meta`. KVT_ECORRUPT (a miss)
 * when its length field disagrees with `len` or it is malformed; never trusts the field
 * for an allocation. hlen 0: no header (save_chunk_meta = false), meta zeroed. */
int kvt__rmt_hdr_check(const void *hdr, size_t hlen, size_t len, kvt_chunk_meta *meta);
/* The payload length a header claims, or -1 when it is malformed. */
int64_t kvt__rmt_hdr_length(const void *hdr);
/* Drops the first `done` bytes of iov[0..*n) after a short writev(); returns the new start. */
struct iovec *kvt__rmt_iov_advance(struct iovec *iov, int *n, size_t done);

#endif
