/* kvtier — RemoteBackend: tier 3, another machine's memory or a shared filesystem.
 *
 * remote_url picks a connector (fs.c: fs://, redis.c: redis:// and unix://); this file
 * keeps LMCache's formats, which every connector shares: the key string names the value,
 * and the value opens with the 28-byte RemoteMetadata header unless
 * extra_config.save_chunk_meta is false. Reads land in a sink: a CPU-pool object
 * (get, batched_get) or the caller's buffer (get_into). A header whose length disagrees
 * with the payload is a miss: the length field is never used to size anything.
 *
 * Every call is bounded by the operation timeout (remote_op_timeout_ms, else
 * blocking_timeout_secs) and returns an honest status: KVT_ENOENT for a miss,
 * KVT_ETIMEDOUT / KVT_EIO / KVT_EUNAVAIL for failures, which the store's circuit breaker
 * counts. docs/remote.md has the long form. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "backends/remote/remote.h"
#include "src/internal.h"
#include "src/store.h"

struct rmt {
    const kvt_backend_env *env;
    const struct kvt__rmt_connector *c;
    void *conn;
    bool save_meta;
    uint32_t chunk_tokens; /* clear() reports chunks removed times this */
};

/* ------------------------------------------------------------ header */

static void put32(unsigned char *p, int32_t v)
{
    uint32_t u = (uint32_t)v;
    p[0] = (unsigned char)u;
    p[1] = (unsigned char)(u >> 8);
    p[2] = (unsigned char)(u >> 16);
    p[3] = (unsigned char)(u >> 24);
}

static int32_t get32(const unsigned char *p)
{
    return (int32_t)((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                     (uint32_t)p[3] << 24);
}

/* Python packs native int32: little-endian on every kvtier target. */
static int hdr_encode(unsigned char hdr[KVT__RMT_HDR], size_t len, const kvt_chunk_meta *m)
{
    if (len > INT32_MAX)
        return kvt__fail(KVT_EINVAL, "RemoteBackend: a %zu-byte chunk does not fit LMCache's "
                         "int32 length field", len);
    /* Codes 1 and 2 both mean float16; LMCache writes 2. */
    uint32_t dtype = m->dtype_code == 1 ? 2 : m->dtype_code;
    put32(hdr, (int32_t)len);
    put32(hdr + 4, (int32_t)m->fmt);
    put32(hdr + 8, (int32_t)dtype);
    for (int i = 0; i < 4; i++)
        put32(hdr + 12 + 4 * i, m->shape[i]);
    return KVT_OK;
}

struct iovec *kvt__rmt_iov_advance(struct iovec *iov, int *n, size_t done)
{
    while (*n > 0 && done >= iov->iov_len) {
        done -= iov->iov_len;
        iov++;
        --*n;
    }
    if (*n > 0) {
        iov->iov_base = (char *)iov->iov_base + done;
        iov->iov_len -= done;
    }
    return iov;
}

int64_t kvt__rmt_hdr_length(const void *hdr)
{
    int32_t len = get32(hdr);
    return len < 0 ? -1 : len;
}

int kvt__rmt_hdr_check(const void *hdr, size_t hlen, size_t len, kvt_chunk_meta *meta)
{
    const unsigned char *p = hdr;
    memset(meta, 0, sizeof *meta);
    if (hlen == 0)
        return KVT_OK;
    if (hlen != KVT__RMT_HDR)
        return KVT_ECORRUPT;
    int64_t want = kvt__rmt_hdr_length(p);
    int32_t fmt = get32(p + 4), dtype = get32(p + 8);
    if (want < 0 || (uint64_t)want != len || fmt < 0 || dtype < 0)
        return KVT_ECORRUPT;
    meta->fmt = (uint32_t)fmt;
    meta->dtype_code = dtype == 1 ? 2 : (uint32_t)dtype;
    for (int i = 0; i < 4; i++)
        meta->shape[i] = get32(p + 12 + 4 * i);
    return KVT_OK;
}

/* ------------------------------------------------------------ sinks */

struct obj_sink {
    struct kvt__rmt_sink base;
    const kvt_backend_env *env;
    kvt_obj *obj;
};

static int obj_reserve(struct kvt__rmt_sink *sink, size_t len, const kvt_chunk_meta *meta,
                       void **buf)
{
    struct obj_sink *s = (struct obj_sink *)sink;
    kvt_obj_release(s->obj); /* a retried read (reconnect) reserves again */
    s->obj = NULL;
    int rc = kvt_backend_alloc(s->env, len, meta, &s->obj);
    if (rc != KVT_OK)
        return rc == KVT_EINVAL ? KVT_ENOENT : rc; /* a 0-byte value: nothing to serve */
    *buf = kvt_obj_data_mut(s->obj);
    return KVT_OK;
}

struct into_sink {
    struct kvt__rmt_sink base;
    void *buf;
    size_t cap, len;
};

static int into_reserve(struct kvt__rmt_sink *sink, size_t len, const kvt_chunk_meta *meta,
                        void **buf)
{
    (void)meta;
    struct into_sink *s = (struct into_sink *)sink;
    s->len = len;
    if (len > s->cap)
        return KVT_ETOOSMALL;
    *buf = s->buf;
    return KVT_OK;
}

/* ------------------------------------------------------------ keys */

struct rkey {
    char s[KVT_KEY_STRING_MAX];
    struct kvt__rmt_item it;
};

static int rkey_init(struct rkey *k, const kvt_key *key, struct kvt__rmt_sink *sink)
{
    int rc = kvt_key_to_string(key, k->s, sizeof k->s);
    if (rc != KVT_OK)
        return rc;
    k->it = (struct kvt__rmt_item){k->s, strlen(k->s), key->chunk_hash, sink};
    return KVT_OK;
}

/* ------------------------------------------------------------ ops */

static bool rmt_wanted(const kvt_config *cfg)
{
    const char *url = NULL;
    return kvt_config_get_str(cfg, "remote_url", &url) == KVT_OK && url && *url;
}

/* The connector for `url`; KVT_ENOTSUP naming any other scheme. */
static int pick(const char *url, const struct kvt__rmt_connector **out)
{
    const char *sep = strstr(url, "://");
    size_t n = sep ? (size_t)(sep - url) : 0;
    char scheme[32];
    if (!sep || n == 0)
        return kvt__fail(KVT_ECONFIG, "RemoteBackend: No adapter found for URL");
    if (n >= sizeof scheme)
        n = sizeof scheme - 1;
    memcpy(scheme, url, n);
    scheme[n] = '\0';
    if (strcasecmp(scheme, "fs") == 0)
        *out = &kvt__rmt_fs;
    else if (strcasecmp(scheme, "redis") == 0 || strcasecmp(scheme, "unix") == 0)
        *out = &kvt__rmt_redis;
    else
        return kvt__fail(KVT_ENOTSUP, "RemoteBackend: unsupported scheme %s", scheme);
    return KVT_OK;
}

static int rmt_create(const kvt_backend_env *env, const kvt_config *cfg, void **state)
{
    struct kvt__rmt_params p = {.env = env};
    int64_t secs = 10, op_ms = 0, chunk = 256;
    const struct kvt__rmt_connector *c = NULL;
    int rc = kvt_config_get_str(cfg, "remote_url", &p.url);
    if (rc == KVT_OK)
        rc = kvt_config_get_int(cfg, "blocking_timeout_secs", &secs);
    if (rc == KVT_OK)
        rc = kvt_config_get_int(cfg, "remote_op_timeout_ms", &op_ms);
    if (rc == KVT_OK)
        rc = kvt_config_get_int(cfg, "remote_connect_timeout_ms", &p.connect_timeout_ms);
    if (rc == KVT_OK)
        rc = kvt_config_get_int(cfg, "remote_reconnect_interval_ms", &p.reconnect_interval_ms);
    if (rc == KVT_OK)
        rc = kvt_config_get_int(cfg, "remote_pool_size", &p.pool_size);
    if (rc == KVT_OK)
        rc = kvt_config_get_bool(cfg, "remote_fs_fsync", &p.fsync);
    if (rc == KVT_OK)
        rc = kvt_config_get_bool(cfg, "extra_config.save_chunk_meta", &p.save_meta);
    if (rc == KVT_OK)
        rc = kvt_config_get_int(cfg, "chunk_size", &chunk);
    if (rc != KVT_OK)
        return rc;
    if (!p.url || !*p.url)
        return kvt__fail(KVT_ECONFIG, "RemoteBackend needs remote_url");
    if ((rc = pick(p.url, &c)) != KVT_OK)
        return rc;
    p.op_timeout_ms = op_ms > 0 ? op_ms : secs * 1000;
    if (p.connect_timeout_ms > p.op_timeout_ms)
        p.connect_timeout_ms = p.op_timeout_ms; /* a connect is part of some operation */
    struct rmt *r = calloc(1, sizeof *r);
    if (!r)
        return kvt__fail(KVT_ENOMEM, "cannot allocate RemoteBackend");
    r->env = env;
    r->c = c;
    r->save_meta = p.save_meta;
    r->chunk_tokens = (uint32_t)chunk;
    if ((rc = c->open(&p, &r->conn)) != KVT_OK) {
        free(r);
        return rc;
    }
    kvt_backend_log(env, KVT_LOG_INFO, "event=created mode=%s op_timeout_ms=%lld "
                    "connect_timeout_ms=%lld save_chunk_meta=%d", c->mode,
                    (long long)p.op_timeout_ms, (long long)p.connect_timeout_ms, p.save_meta);
    *state = r;
    return KVT_OK;
}

static void rmt_destroy(void *state)
{
    struct rmt *r = state;
    r->c->close(r->conn);
    free(r);
}

static int rmt_put(void *state, const kvt_key *key, kvt_obj *obj)
{
    struct rmt *r = state;
    unsigned char hdr[KVT__RMT_HDR];
    struct rkey k;
    size_t len = kvt_obj_size(obj);
    int rc = rkey_init(&k, key, NULL);
    if (rc == KVT_OK && r->save_meta)
        rc = hdr_encode(hdr, len, kvt_obj_meta(obj));
    if (rc != KVT_OK)
        return rc;
    return r->c->put(r->conn, &k.it, hdr, r->save_meta ? sizeof hdr : 0, kvt_obj_data(obj), len);
}

static int rmt_get(void *state, const kvt_key *key, kvt_obj **out)
{
    struct rmt *r = state;
    struct obj_sink sink = {{obj_reserve}, r->env, NULL};
    struct rkey k;
    int rc = rkey_init(&k, key, &sink.base);
    if (rc == KVT_OK)
        rc = r->c->get(r->conn, &k.it);
    if (rc != KVT_OK) {
        kvt_obj_release(sink.obj);
        return rc;
    }
    *out = sink.obj;
    return KVT_OK;
}

static int rmt_get_into(void *state, const kvt_key *key, void *buf, size_t cap, size_t *len)
{
    struct rmt *r = state;
    struct into_sink sink = {{into_reserve}, buf, cap, 0};
    struct rkey k;
    int rc = rkey_init(&k, key, &sink.base);
    if (rc == KVT_OK)
        rc = r->c->get(r->conn, &k.it);
    if (rc == KVT_OK || rc == KVT_ETOOSMALL)
        *len = sink.len;
    return rc;
}

/* One pipelined read of `n` keys, keys[i] into sinks[i]; statuses[i] per key, all set to
 * the batch's failure when it failed as a whole. */
static int get_batch(struct rmt *r, size_t n, const kvt_key *keys, struct kvt__rmt_sink **sinks,
                     int *statuses)
{
    struct rkey *k = malloc(n * sizeof *k + 1);
    struct kvt__rmt_item *items = malloc(n * sizeof *items + 1);
    int rc = k && items ? KVT_OK : kvt__fail(KVT_ENOMEM, "cannot allocate a batch");
    for (size_t i = 0; rc == KVT_OK && i < n; i++) {
        rc = rkey_init(&k[i], &keys[i], sinks[i]);
        items[i] = k[i].it;
    }
    if (rc == KVT_OK)
        rc = r->c->get_many(r->conn, n, items, statuses);
    for (size_t i = 0; rc != KVT_OK && i < n; i++)
        statuses[i] = rc;
    free(k);
    free(items);
    return rc;
}

static int rmt_batched_get(void *state, size_t n, const kvt_key *keys, kvt_obj **outs,
                           int *statuses)
{
    struct rmt *r = state;
    struct obj_sink *sinks = malloc(n * sizeof *sinks + 1);
    struct kvt__rmt_sink **ps = malloc(n * sizeof *ps + 1);
    int rc = sinks && ps ? KVT_OK : kvt__fail(KVT_ENOMEM, "cannot allocate a batch");
    for (size_t i = 0; rc == KVT_OK && i < n; i++) {
        sinks[i] = (struct obj_sink){{obj_reserve}, r->env, NULL};
        ps[i] = &sinks[i].base;
    }
    if (rc == KVT_OK)
        rc = get_batch(r, n, keys, ps, statuses);
    for (size_t i = 0; i < n; i++) {
        outs[i] = NULL;
        if (!sinks || !ps)
            statuses[i] = rc;
        else if (statuses[i] == KVT_OK)
            outs[i] = sinks[i].obj;
        else
            kvt_obj_release(sinks[i].obj);
    }
    free(sinks);
    free(ps);
    return rc;
}

/* The same pipeline, each value straight into its caller buffer. */
static int rmt_batched_get_into(void *state, size_t n, const kvt_key *keys, void *const *bufs,
                                const size_t *caps, size_t *lens, int *statuses)
{
    struct rmt *r = state;
    struct into_sink *sinks = malloc(n * sizeof *sinks + 1);
    struct kvt__rmt_sink **ps = malloc(n * sizeof *ps + 1);
    int rc = sinks && ps ? KVT_OK : kvt__fail(KVT_ENOMEM, "cannot allocate a batch");
    for (size_t i = 0; rc == KVT_OK && i < n; i++) {
        sinks[i] = (struct into_sink){{into_reserve}, bufs[i], caps[i], 0};
        ps[i] = &sinks[i].base;
    }
    if (rc == KVT_OK)
        rc = get_batch(r, n, keys, ps, statuses);
    for (size_t i = 0; i < n; i++) {
        if (!sinks || !ps)
            statuses[i] = rc;
        else if (statuses[i] == KVT_OK || statuses[i] == KVT_ETOOSMALL)
            lens[i] = sinks[i].len;
    }
    free(sinks);
    free(ps);
    return rc;
}

static int rmt_contains(void *state, const kvt_key *key)
{
    struct rmt *r = state;
    struct rkey k;
    int rc = rkey_init(&k, key, NULL);
    return rc == KVT_OK ? r->c->contains(r->conn, &k.it) : rc;
}

/* Lookups of a run of keys: one pass through the connector (one redis pipeline). Pins are
 * not supported remotely (LMCache: pin is a no-op): `pin` is ignored, and with no unpin
 * slot the store never records a pin on this tier. */
static size_t rmt_count_prefix(void *state, const kvt_key *keys, size_t n, bool pin)
{
    struct rmt *r = state;
    (void)pin;
    if (n == 0)
        return 0;
    if (n > SIZE_MAX / (sizeof(struct rkey) + sizeof(struct kvt__rmt_item)))
        return 0;
    struct rkey *k = malloc(n * sizeof *k);
    struct kvt__rmt_item *items = malloc(n * sizeof *items);
    size_t m = 0, hit = 0;
    if (k && items) {
        /* a key that has no string form ends the run there */
        for (; m < n && rkey_init(&k[m], &keys[m], NULL) == KVT_OK; m++)
            items[m] = k[m].it;
        hit = m ? r->c->count_prefix(r->conn, m, items) : 0;
    }
    free(k);
    free(items);
    return hit;
}

static int rmt_remove(void *state, const kvt_key *key)
{
    struct rmt *r = state;
    struct rkey k;
    int rc = rkey_init(&k, key, NULL);
    return rc == KVT_OK ? r->c->remove(r->conn, &k.it) : rc;
}

static int rmt_clear(void *state, uint64_t *tokens)
{
    struct rmt *r = state;
    uint64_t chunks = 0;
    int rc = r->c->clear(r->conn, &chunks);
    *tokens += chunks * r->chunk_tokens; /* headers carry no token count: full chunks */
    return rc;
}

static int rmt_ping(void *state)
{
    struct rmt *r = state;
    return r->c->ping(r->conn);
}

static void rmt_stats(void *state, kvt_backend_stats *out)
{
    struct rmt *r = state;
    /* Objects and bytes of a shared remote are not ours to count cheaply: left at 0. */
    kvt__strlcpy(out->mode, r->c->mode, sizeof out->mode);
}

const struct kvt_backend_ops kvt__remote_ops = {
    .abi_version = KVT_BACKEND_ABI_VERSION,
    .struct_size = sizeof(struct kvt_backend_ops),
    .type_name = "RemoteBackend",
    .flags = KVT_BACKEND_USES_CPU_BUFFERS,
    .wanted = rmt_wanted,
    .create = rmt_create,
    .destroy = rmt_destroy,
    .put = rmt_put,
    .get = rmt_get,
    .contains = rmt_contains,
    .remove = rmt_remove,
    .clear = rmt_clear,
    .count_prefix = rmt_count_prefix,
    .unpin = NULL, /* no remote pins: count_prefix(pin = true) claims none */
    .stats = rmt_stats,
    .batched_get = rmt_batched_get,
    .batched_get_into = rmt_batched_get_into,
    .get_into = rmt_get_into,
    .ping = rmt_ping,
};
