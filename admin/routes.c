/* kvtier admin server — the route table and its handlers. Handlers call only kvtier's
 * public API and build their reply with the helpers of admin_internal.h; shapes follow
 * LMCache's internal API server (docs/admin-api.md). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin_internal.h"

#define MOCK_TOKENS_MAX (1u << 20) /* tokens one /cache/store or /cache/retrieve may cover */
#define CONF_KEYS_MAX 256          /* keys one POST /conf may carry */

/* ------------------------------------------------------------ small helpers */

static void add_u64(cJSON *o, const char *k, uint64_t v) { cJSON_AddNumberToObject(o, k, (double)v); }

/* The last error text, copied at once: the next kvtier call may replace it. */
static void last_error(char *buf, size_t cap)
{
    snprintf(buf, cap, "%s", kvt_last_error());
}

/* 500 {"error": what, "message": kvtier's text}; also for statuses nothing else maps. */
static void fail500(struct admin_req *r, const char *what, int rc)
{
    char msg[512];
    const char *e = kvt_last_error();
    snprintf(msg, sizeof msg, "%s", e[0] ? e : kvt_strerror(rc));
    kvt__admin_error(r, 500, what, msg);
}

/* {name: class} in tier order, NULL (with a kvt_last_error()) on failure. */
static cJSON *backends_map(kvt_store *s, kvt_backend_info *info, size_t *n)
{
    kvt_backend_info local[KVT_MAX_BACKENDS];
    size_t k, cnt = 0;
    cJSON *o;
    if (!info)
        info = local;
    if (kvt_backends_list(s, info, KVT_MAX_BACKENDS, &cnt) != KVT_OK)
        return NULL;
    if (cnt > KVT_MAX_BACKENDS)
        cnt = KVT_MAX_BACKENDS;
    if (!(o = cJSON_CreateObject()))
        return NULL;
    for (k = 0; k < cnt; k++)
        cJSON_AddStringToObject(o, info[k].name, info[k].class_name);
    if (n)
        *n = cnt;
    return o;
}

/* {"status": status, "message": msg, "backends": {...}} */
static void status_reply(struct admin_req *r, unsigned code, const char *status, const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", status);
    cJSON_AddStringToObject(o, "message", msg);
    cJSON_AddItemToObject(o, "backends", backends_map(r->srv->store, NULL, NULL));
    kvt__admin_json(r, code, o);
}

static void not_found(struct admin_req *r)
{
    char msg[128];
    snprintf(msg, sizeof msg, "Backend %s not found", r->name);
    status_reply(r, 404, "not_found", msg);
}

static bool parse_bool(const char *v, bool *out)
{
    if (!strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes")) {
        *out = true;
        return true;
    }
    if (!strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "no")) {
        *out = false;
        return true;
    }
    return false;
}

static bool parse_i64(const char *v, int64_t lo, int64_t hi, int64_t *out)
{
    char *end;
    long long x;
    errno = 0;
    x = strtoll(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi)
        return false;
    *out = x;
    return true;
}

static void count(struct admin_req *r, enum admin_op op) { atomic_fetch_add(&r->srv->ops[op], 1); }

/* ------------------------------------------------------------ /backends */

static void h_list(struct admin_req *r)
{
    cJSON *o = backends_map(r->srv->store, NULL, NULL);
    if (!o)
        fail500(r, "Failed to list backends", KVT_ENOMEM);
    else
        kvt__admin_json(r, 200, o);
}

static const char *breaker_name(kvt_breaker_state b)
{
    return b == KVT_BREAKER_OPEN ? "open" : b == KVT_BREAKER_HALF_OPEN ? "half_open" : "closed";
}

/* Everything known about one backend; `pos` its tier position. */
static cJSON *backend_doc(kvt_store *s, const kvt_backend_info *bk, size_t pos)
{
    kvt_backend_stats st;
    kvt_backend_health h;
    cJSON *o = cJSON_CreateObject(), *x;
    bool have_health = kvt_backend_get_health(s, bk->name, &h) == KVT_OK;
    cJSON_AddStringToObject(o, "name", bk->name);
    cJSON_AddStringToObject(o, "class", bk->class_name);
    add_u64(o, "position", pos);
    cJSON_AddStringToObject(o, "state", bk->state == KVT_BACKEND_DRAINING ? "draining" : "active");
    add_u64(o, "pending", bk->pending);
    if (kvt_backend_get_stats(s, bk->name, &st) != KVT_OK)
        memset(&st, 0, sizeof st);
    if (st.mode[0])
        cJSON_AddStringToObject(o, "mode", st.mode);
    else
        cJSON_AddNullToObject(o, "mode");
    x = cJSON_AddObjectToObject(o, "bypass");
    cJSON_AddBoolToObject(x, "manual", have_health && h.bypass_manual);
    cJSON_AddBoolToObject(x, "breaker", have_health && h.bypass_breaker);
    if (have_health) {
        x = cJSON_AddObjectToObject(o, "health");
        cJSON_AddStringToObject(x, "breaker", breaker_name(h.breaker));
        add_u64(x, "consecutive_failures", h.consecutive_failures);
        add_u64(x, "failures", h.failures);
        add_u64(x, "opens", h.opens);
        if (h.last_status != KVT_OK)
            cJSON_AddStringToObject(x, "last_status", kvt_status_name(h.last_status));
        else
            cJSON_AddNullToObject(x, "last_status");
        if (h.last_error[0])
            cJSON_AddStringToObject(x, "last_error", h.last_error);
        else
            cJSON_AddNullToObject(x, "last_error");
        if (h.ping_ms >= 0)
            cJSON_AddNumberToObject(x, "ping_ms", h.ping_ms);
        else
            cJSON_AddNullToObject(x, "ping_ms");
        cJSON_AddNumberToObject(x, "state_ms", h.state_ms);
        cJSON_AddNumberToObject(x, "retry_in_ms", h.retry_in_ms);
    } else {
        cJSON_AddNullToObject(o, "health");
    }
    x = cJSON_AddObjectToObject(o, "usage");
    add_u64(x, "bytes_used", st.bytes_used);
    add_u64(x, "capacity_bytes", st.capacity_bytes);
    add_u64(x, "objects", st.objects);
    add_u64(x, "pinned", st.pinned);
    x = cJSON_AddObjectToObject(o, "counters");
    add_u64(x, "hits", st.hits);
    add_u64(x, "misses", st.misses);
    add_u64(x, "puts", st.puts);
    add_u64(x, "put_failures", st.put_failures);
    add_u64(x, "queued", st.queued);
    add_u64(x, "evictions", st.evictions);
    add_u64(x, "skipped", st.skipped);
    add_u64(x, "cancelled", st.cancelled);
    return o;
}

static void h_backend(struct admin_req *r)
{
    kvt_backend_info info[KVT_MAX_BACKENDS];
    size_t n = 0, i;
    if (kvt_backends_list(r->srv->store, info, KVT_MAX_BACKENDS, &n) != KVT_OK) {
        fail500(r, "Failed to get backend", KVT_EIO);
        return;
    }
    for (i = 0; i < n && i < KVT_MAX_BACKENDS; i++)
        if (strcmp(info[i].name, r->name) == 0) {
            kvt__admin_json(r, 200, backend_doc(r->srv->store, &info[i], i));
            return;
        }
    not_found(r);
}

/* Items still queued for `name` while it drains; 0 if it is gone. */
static uint64_t pending_of(kvt_store *s, const char *name)
{
    kvt_backend_info info[KVT_MAX_BACKENDS];
    size_t n = 0;
    if (kvt_backends_list(s, info, KVT_MAX_BACKENDS, &n) != KVT_OK)
        return 0;
    for (size_t i = 0; i < n && i < KVT_MAX_BACKENDS; i++)
        if (strcmp(info[i].name, name) == 0)
            return info[i].pending;
    return 0;
}

static void draining_reply(struct admin_req *r, const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", "draining");
    cJSON_AddStringToObject(o, "message", msg);
    add_u64(o, "pending", pending_of(r->srv->store, r->name));
    cJSON_AddItemToObject(o, "backends", backends_map(r->srv->store, NULL, NULL));
    kvt__admin_json(r, 202, o);
}

/* The reply to a close or recreate that failed: 404 unknown, 202 still draining, 409 busy,
 * else 500 with kvtier's text `msg` (taken right after the call). */
static void lifecycle_failed(struct admin_req *r, int rc, const char *msg, const char *what)
{
    if (rc == KVT_ENOENT)
        not_found(r);
    else if (rc == KVT_ETIMEDOUT)
        draining_reply(r, msg);
    else if (rc == KVT_EBUSY)
        status_reply(r, 409, "conflict", msg);
    else
        kvt__admin_error(r, 500, what, msg[0] ? msg : kvt_strerror(rc));
}

static void h_close(struct admin_req *r)
{
    kvt_store *s = r->srv->store;
    const char *t = kvt__admin_query(r, "timeout_ms"), *f = kvt__admin_query(r, "force");
    int64_t timeout = -2;
    bool force = false;
    char msg[512];
    int rc;
    if ((t && !parse_i64(t, -1, 86400000, &timeout)) || (f && !parse_bool(f, &force))) {
        kvt__admin_error(r, 400, "Invalid argument",
                         t && timeout == -2 ? "timeout_ms must be an integer in [-1, 86400000]"
                                            : "force must be true or false");
        return;
    }
    count(r, OP_CLOSE);
    kvt__admin_log(r->srv, KVT_LOG_INFO, "req=%llu op=close backend=%s timeout_ms=%" PRId64 " force=%d",
                   r->id, r->name, timeout, force);
    if (timeout == -2 && !force) {
        rc = kvt_backend_close(s, r->name);
    } else {
        if (timeout == -2) { /* force alone: the configured timeout */
            kvt_config *c;
            timeout = 10000;
            if (kvt_store_conf_dup(s, &c) == KVT_OK) {
                kvt_config_get_int(c, "backend_close_timeout_ms", &timeout);
                kvt_config_free(c);
            }
        }
        rc = kvt_backend_close_timed(s, r->name, timeout, force ? KVT_CLOSE_FORCE : 0);
    }
    last_error(msg, sizeof msg);
    if (rc == KVT_OK) {
        snprintf(msg, sizeof msg, "Backend %s closed", r->name);
        status_reply(r, 200, "success", msg);
    } else {
        lifecycle_failed(r, rc, msg, "Failed to close backend");
    }
}

static void h_create(struct admin_req *r)
{
    kvt_backend_info made[KVT_MAX_BACKENDS];
    size_t n = 0;
    char msg[512];
    int rc;
    count(r, OP_CREATE);
    rc = kvt_backends_create(r->srv->store, made, KVT_MAX_BACKENDS, &n);
    last_error(msg, sizeof msg);
    kvt__admin_log(r->srv, KVT_LOG_INFO, "req=%llu op=create status=%s created=%zu", r->id,
                   kvt_status_name(rc), n);
    if (rc == KVT_OK) {
        cJSON *o = cJSON_CreateObject(), *c = cJSON_AddObjectToObject(o, "created");
        cJSON_AddStringToObject(o, "status", "success");
        for (size_t i = 0; i < n && i < KVT_MAX_BACKENDS; i++)
            cJSON_AddStringToObject(c, made[i].name, made[i].class_name);
        cJSON_AddItemToObject(o, "backends", backends_map(r->srv->store, NULL, NULL));
        kvt__admin_json(r, 200, o);
    } else if (rc == KVT_EBUSY) {
        status_reply(r, 409, "conflict", msg);
    } else {
        kvt__admin_error(r, 500, "Failed to create backends", msg[0] ? msg : kvt_strerror(rc));
    }
}

static void h_recreate(struct admin_req *r)
{
    kvt_store *s = r->srv->store;
    kvt_backend_info info[KVT_MAX_BACKENDS];
    size_t n = 0;
    char msg[512];
    int rc;
    count(r, OP_RECREATE);
    rc = kvt_backend_recreate(s, r->name);
    last_error(msg, sizeof msg);
    kvt__admin_log(r->srv, KVT_LOG_INFO, "req=%llu op=recreate backend=%s status=%s", r->id,
                   r->name, kvt_status_name(rc));
    if (rc == KVT_OK) {
        cJSON *o = cJSON_CreateObject(), *c = cJSON_AddObjectToObject(o, "recreated"), *all;
        cJSON_AddStringToObject(o, "status", "success");
        all = backends_map(s, info, &n);
        for (size_t i = 0; i < n; i++)
            if (strcmp(info[i].name, r->name) == 0)
                cJSON_AddStringToObject(c, info[i].name, info[i].class_name);
        cJSON_AddItemToObject(o, "backends", all);
        kvt__admin_json(r, 200, o);
    } else {
        lifecycle_failed(r, rc, msg, "Failed to recreate backend");
    }
}

/* ------------------------------------------------------------ bypass, freeze */

static cJSON *names_array(const kvt_backend_info *info, size_t n)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; i < n && i < KVT_MAX_BACKENDS; i++)
        cJSON_AddItemToArray(a, cJSON_CreateString(info[i].name));
    return a;
}

static cJSON *bypassed_array(kvt_store *s)
{
    kvt_backend_info info[KVT_MAX_BACKENDS];
    size_t n = 0;
    if (kvt_bypass_list(s, info, KVT_MAX_BACKENDS, &n) != KVT_OK)
        n = 0;
    return names_array(info, n);
}

static void h_bypass_list(struct admin_req *r)
{
    kvt_backend_info info[KVT_MAX_BACKENDS];
    size_t n = 0;
    cJSON *o;
    if (kvt_backends_list(r->srv->store, info, KVT_MAX_BACKENDS, &n) != KVT_OK) {
        fail500(r, "Failed to list bypassed backends", KVT_EIO);
        return;
    }
    o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", "success");
    cJSON_AddItemToObject(o, "bypassed_backends", bypassed_array(r->srv->store));
    cJSON_AddItemToObject(o, "all_backends", names_array(info, n));
    kvt__admin_json(r, 200, o);
}

static void bypass_set(struct admin_req *r, bool on)
{
    const char *name = kvt__admin_query(r, "backend_name");
    bool was = false;
    char msg[512];
    cJSON *o;
    int rc;
    if (!name || !name[0]) {
        kvt__admin_error(r, 400, "Missing backend_name", "the backend_name query argument is required");
        return;
    }
    if (!kvt__admin_valid_name(name)) {
        kvt__admin_error(r, 400, "Invalid backend_name", "backend_name is not a backend name");
        return;
    }
    count(r, OP_BYPASS);
    rc = kvt_backend_set_bypass(r->srv->store, name, on, &was);
    last_error(msg, sizeof msg);
    if (rc == KVT_ENOENT) {
        char m[128];
        snprintf(m, sizeof m, "Backend %s not found", name);
        kvt__admin_error(r, 400, "Unknown backend", m);
        return;
    }
    if (rc != KVT_OK) {
        kvt__admin_error(r, 500, on ? "Failed to bypass backend" : "Failed to remove bypass", msg);
        return;
    }
    kvt__admin_log(r->srv, KVT_LOG_INFO, "req=%llu op=bypass backend=%s on=%d was=%d", r->id, name,
                   on, was);
    o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", "success");
    cJSON_AddStringToObject(o, "backend_name", name);
    cJSON_AddBoolToObject(o, "bypassed", on);
    cJSON_AddBoolToObject(o, on ? "was_already_bypassed" : "was_bypassed", was);
    cJSON_AddItemToObject(o, "bypassed_backends", bypassed_array(r->srv->store));
    kvt__admin_json(r, 200, o);
}

static void h_bypass_add(struct admin_req *r) { bypass_set(r, true); }
static void h_bypass_remove(struct admin_req *r) { bypass_set(r, false); }

static void freeze_reply(struct admin_req *r, const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", "success");
    cJSON_AddBoolToObject(o, "freeze", kvt_store_frozen(r->srv->store));
    cJSON_AddStringToObject(o, "message", msg);
    kvt__admin_json(r, 200, o);
}

static void freeze_set(struct admin_req *r, bool on)
{
    int rc;
    count(r, OP_FREEZE);
    if ((rc = kvt_store_set_freeze(r->srv->store, on)) != KVT_OK) {
        fail500(r, on ? "Failed to enable freeze mode" : "Failed to disable freeze mode", rc);
        return;
    }
    kvt__admin_log(r->srv, KVT_LOG_INFO, "req=%llu op=freeze on=%d", r->id, on);
    freeze_reply(r, on ? "Freeze mode enabled" : "Freeze mode disabled");
}

static void h_freeze_on(struct admin_req *r) { freeze_set(r, true); }
static void h_freeze_off(struct admin_req *r) { freeze_set(r, false); }
static void h_freeze_status(struct admin_req *r)
{
    freeze_reply(r, kvt_store_frozen(r->srv->store) ? "Freeze mode is enabled"
                                                     : "Freeze mode is disabled");
}

/* ------------------------------------------------------------ /cache (synthetic KV) */

/* Chunk bytes as a function of the chunk's key hash, so a retrieve can verify them. */
static void mock_fill(unsigned char *p, size_t len, uint64_t hash)
{
    uint64_t x = hash ^ 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < len; i += 8) {
        x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
        uint64_t v = x * 0x2545f4914f6cdd1dull;
        memcpy(p + i, &v, len - i < 8 ? len - i : 8);
    }
}

struct mock {
    int64_t start, end;
    size_t chunk, nchunks;
    uint32_t bpt;
    uint64_t *hashes;
    int32_t *tokens;
    unsigned char *buf, *want;
};

static void mock_free(struct mock *m)
{
    free(m->hashes);
    free(m->tokens);
    free(m->buf);
    free(m->want);
}

/* Parses tokens_mock=S,E and hashes its chunks. false: `r` holds the reply. */
static bool mock_prepare(struct admin_req *r, struct mock *m, bool verify)
{
    const char *tm = kvt__admin_query(r, "tokens_mock");
    kvt_config *c = NULL;
    int64_t chunk = 256;
    bool unfull = false;
    char *end;
    size_t i, n;
    memset(m, 0, sizeof *m);
    errno = 0;
    if (tm) {
        m->start = strtoll(tm, &end, 10);
        if (end != tm && *end == ',') {
            const char *e2 = end + 1;
            m->end = strtoll(e2, &end, 10);
            if (end == e2 || *end)
                m->end = -1;
        } else {
            m->end = -1;
        }
    }
    if (!tm || errno || m->start < 0 || m->end <= m->start ||
        m->end - m->start > (int64_t)MOCK_TOKENS_MAX || m->end > INT32_MAX) {
        kvt__admin_error(r, 400, "Invalid tokens_mock",
                         "tokens_mock must be S,E with 0 <= S < E, E - S <= 1048576");
        return false;
    }
    if (kvt_store_conf_dup(r->srv->store, &c) == KVT_OK) {
        kvt_config_get_int(c, "chunk_size", &chunk);
        kvt_config_get_bool(c, "save_unfull_chunk", &unfull);
        kvt_config_free(c);
    }
    n = (size_t)(m->end - m->start);
    m->chunk = (size_t)chunk;
    m->bpt = r->srv->kv_bytes_per_token;
    m->tokens = malloc(n * sizeof *m->tokens);
    m->hashes = malloc((n / m->chunk + 1) * sizeof *m->hashes);
    m->buf = malloc(m->chunk * m->bpt);
    m->want = verify ? malloc(m->chunk * m->bpt) : NULL;
    if (!m->tokens || !m->hashes || !m->buf || (verify && !m->want)) {
        mock_free(m);
        kvt__admin_error(r, 500, "Failed to prepare tokens", "out of memory");
        return false;
    }
    for (i = 0; i < n; i++)
        m->tokens[i] = (int32_t)(m->start + (int64_t)i);
    if (kvt_hash_tokens(m->tokens, n, m->chunk, unfull, m->hashes, n / m->chunk + 1,
                        &m->nchunks) != KVT_OK) {
        fail500(r, "Failed to hash tokens", KVT_EINVAL);
        mock_free(m);
        return false;
    }
    return true;
}

static size_t mock_chunk_tokens(const struct mock *m, size_t i)
{
    size_t n = (size_t)(m->end - m->start), left = n - i * m->chunk;
    return left < m->chunk ? left : m->chunk;
}

static int mock_key(struct admin_req *r, const struct mock *m, size_t i, kvt_key *k)
{
    return kvt_key_init(k, r->srv->model, 1, 0, m->hashes[i], "bfloat16");
}

static void h_cache_store(struct admin_req *r)
{
    struct mock m;
    size_t i;
    int rc = KVT_OK;
    cJSON *o;
    if (!mock_prepare(r, &m, false))
        return;
    for (i = 0; i < m.nchunks && rc == KVT_OK; i++) {
        size_t nt = mock_chunk_tokens(&m, i), len = nt * m.bpt;
        kvt_chunk_meta meta = {.fmt = 1, .dtype_code = 3, .num_tokens = (uint32_t)nt};
        kvt_key k;
        mock_fill(m.buf, len, m.hashes[i]);
        if ((rc = mock_key(r, &m, i, &k)) == KVT_OK)
            rc = kvt_put(r->srv->store, &k, m.buf, len, &meta);
    }
    if (rc != KVT_OK) {
        fail500(r, "Failed to store", rc);
    } else {
        o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "status", "success");
        add_u64(o, "num_tokens", (uint64_t)(m.end - m.start));
        kvt__admin_json(r, 200, o);
    }
    mock_free(&m);
}

static void h_cache_retrieve(struct admin_req *r)
{
    struct mock m;
    size_t i;
    uint64_t got = 0;
    cJSON *o;
    if (!mock_prepare(r, &m, true))
        return;
    for (i = 0; i < m.nchunks; i++) {
        size_t nt = mock_chunk_tokens(&m, i), want = nt * m.bpt, len = 0;
        kvt_key k;
        if (mock_key(r, &m, i, &k) != KVT_OK ||
            kvt_get_into(r->srv->store, &k, m.buf, m.chunk * m.bpt, &len) != KVT_OK || len != want)
            break; /* LMCache stops at the first miss */
        mock_fill(m.want, want, m.hashes[i]);
        if (memcmp(m.buf, m.want, want) != 0)
            break; /* a chunk whose content does not verify is a miss */
        got += nt;
    }
    o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", "success");
    add_u64(o, "num_tokens", (uint64_t)(m.end - m.start));
    add_u64(o, "num_retrieved", got);
    kvt__admin_json(r, 200, o);
    mock_free(&m);
}

/* kvt_clear() empties every tier; a `locations` list must therefore name all of them. */
static void h_cache_clear(struct admin_req *r)
{
    kvt_backend_info info[KVT_MAX_BACKENDS];
    const char *loc[KVT_MAX_BACKENDS + 1];
    size_t nloc = kvt__admin_query_all(r, "locations", loc, KVT_MAX_BACKENDS + 1), n = 0, i, j;
    uint64_t tokens = 0;
    cJSON *o;
    int rc;
    if (nloc) {
        if (kvt_backends_list(r->srv->store, info, KVT_MAX_BACKENDS, &n) != KVT_OK) {
            fail500(r, "Failed to clear cache", KVT_EIO);
            return;
        }
        for (i = 0; i < n; i++) {
            for (j = 0; j < nloc && j <= KVT_MAX_BACKENDS && strcmp(loc[j], info[i].name); j++)
                ;
            if (j == nloc || j > KVT_MAX_BACKENDS) {
                kvt__admin_error(r, 400, "Invalid locations",
                                 "kvtier clears every tier at once: omit locations or list them all");
                return;
            }
        }
    }
    count(r, OP_CLEAR);
    if ((rc = kvt_clear(r->srv->store, &tokens)) != KVT_OK) {
        fail500(r, "Failed to clear cache", rc);
        return;
    }
    kvt__admin_log(r->srv, KVT_LOG_INFO, "req=%llu op=clear tokens=%" PRIu64, r->id, tokens);
    o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", "success");
    add_u64(o, "num_removed", tokens);
    kvt__admin_json(r, 200, o);
}

/* ------------------------------------------------------------ /conf */

/* When a runtime-mutable key takes effect: NULL = at once, else at the next create or
 * recreate of these backends. Matched by exact name, or by prefix for rows ending in '.'. */
static const struct conf_effect {
    const char *key;
    const char *backends; /* CSV */
} conf_effects[] = {
    {"write_queue_timeout_ms", NULL},
    {"backend_close_timeout_ms", NULL},
    {"local_disk", "LocalDiskBackend"},
    {"max_local_disk_size", "LocalDiskBackend"},
    {"extra_config.disk_io_threads", "LocalDiskBackend"},
    {"extra_config.use_odirect", "LocalDiskBackend"},
    {"gds_path", "GdsBackend"},
    {"gds_buffer_size", "GdsBackend"},
    {"max_gds_size", "GdsBackend"},
    {"use_gds", "GdsBackend"},
    {"extra_config.max_alloc_attempts", "GdsBackend"},
    {"extra_config.allocation_attempt_delay_secs", "GdsBackend"},
    {"cache_policy", "LocalCPUBackend,LocalDiskBackend"},
    {"extra_config.local_cpu.", "LocalCPUBackend"},
    {"remote_url", "RemoteBackend"},
    {"blocking_timeout_secs", "RemoteBackend"},
    {"extra_config.", "RemoteBackend"}, /* the remaining subkeys are Remote's (§6.3) */
};

static const struct conf_effect *effect_of(const char *key)
{
    for (size_t i = 0; i < sizeof conf_effects / sizeof conf_effects[0]; i++) {
        const char *k = conf_effects[i].key;
        size_t n = strlen(k);
        if (k[n - 1] == '.' ? strncmp(key, k, n) == 0 : strcmp(key, k) == 0)
            return &conf_effects[i];
    }
    return NULL;
}

static bool find_key(const char *name, kvt_config_key_info *ki)
{
    for (size_t i = 0; i < kvt_config_key_count(); i++)
        if (kvt_config_key_at(i, ki) == KVT_OK && strcmp(ki->name, name) == 0)
            return true;
    return false;
}

/* The value of `key` as typed JSON, secrets redacted. */
static cJSON *conf_value(const kvt_config *c, const kvt_config_key_info *ki)
{
    char text[4096];
    bool b;
    int64_t i;
    double f;
    const char *const *items;
    size_t n;
    switch (ki->type) {
    case KVT_CONF_BOOL:
        return kvt_config_get_bool(c, ki->name, &b) == KVT_OK ? cJSON_CreateBool(b) : cJSON_CreateNull();
    case KVT_CONF_INT:
        return kvt_config_get_int(c, ki->name, &i) == KVT_OK ? cJSON_CreateNumber((double)i)
                                                            : cJSON_CreateNull();
    case KVT_CONF_FLOAT:
        return kvt_config_get_float(c, ki->name, &f) == KVT_OK ? cJSON_CreateNumber(f)
                                                              : cJSON_CreateNull();
    case KVT_CONF_LIST:
        if (!ki->secret && kvt_config_get_list(c, ki->name, &items, &n) == KVT_OK) {
            cJSON *a = cJSON_CreateArray();
            for (size_t k = 0; k < n; k++)
                cJSON_AddItemToArray(a, cJSON_CreateString(items[k]));
            return a;
        }
        break;
    case KVT_CONF_STRING:
        break;
    }
    if (kvt_config_get_text(c, ki->name, true, text, sizeof text) != KVT_OK || !text[0])
        return cJSON_CreateNull();
    return cJSON_CreateString(text); /* redacted by the config: "***", or a URL's password */
}

/* The store's config and its version, read consistently. */
static int conf_snapshot(kvt_store *s, kvt_config **c, uint64_t *version)
{
    for (int tries = 0; tries < 8; tries++) {
        uint64_t v = kvt_store_conf_version(s);
        int rc = kvt_store_conf_dup(s, c);
        if (rc != KVT_OK)
            return rc;
        if (kvt_store_conf_version(s) == v) {
            *version = v;
            return KVT_OK;
        }
        kvt_config_free(*c);
    }
    *version = kvt_store_conf_version(s);
    return kvt_store_conf_dup(s, c);
}

static void set_etag(struct admin_req *r, uint64_t version)
{
    snprintf(r->etag, sizeof r->etag, "\"%" PRIu64 "\"", version);
}

static void h_conf_get(struct admin_req *r)
{
    const char *names = kvt__admin_query(r, "names");
    kvt_config_key_info ki;
    kvt_config *c;
    uint64_t version;
    cJSON *o;
    int rc;
    if ((rc = conf_snapshot(r->srv->store, &c, &version)) != KVT_OK) {
        fail500(r, "Failed to get config", rc);
        return;
    }
    o = cJSON_CreateObject();
    if (names && names[0]) {
        char buf[1024], *save = NULL, *tok;
        snprintf(buf, sizeof buf, "%s", names);
        for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            if (!find_key(tok, &ki)) {
                char msg[300];
                snprintf(msg, sizeof msg, "%.200s: Unknown config key", tok);
                cJSON_Delete(o);
                kvt_config_free(c);
                kvt__admin_error(r, 400, "Unknown config", msg);
                return;
            }
            cJSON_AddItemToObject(o, ki.name, conf_value(c, &ki));
        }
    } else {
        for (size_t i = 0; i < kvt_config_key_count(); i++)
            if (kvt_config_key_at(i, &ki) == KVT_OK)
                cJSON_AddItemToObject(o, ki.name, conf_value(c, &ki));
    }
    kvt_config_free(c);
    set_etag(r, version);
    kvt__admin_json(r, 200, o);
}

/* A POST /conf body flattened to text key/value pairs ("extra_config.x" for a nested
 * extra_config map), converted as environment values are. */
struct conf_body {
    size_t n;
    char *keys[CONF_KEYS_MAX];
    char *values[CONF_KEYS_MAX];
};

static void conf_body_free(struct conf_body *b)
{
    for (size_t i = 0; i < b->n; i++) {
        free(b->keys[i]);
        free(b->values[i]);
    }
}

static int depth_of(const cJSON *j)
{
    int d = 0;
    for (const cJSON *c = j ? j->child : NULL; c; c = c->next) {
        int k = depth_of(c);
        if (k > d)
            d = k;
    }
    return 1 + d;
}

/* JSON value -> config text. false with `err` set if it has no text form. */
static bool to_text(const cJSON *v, char **out, char *err, size_t cap)
{
    char buf[64];
    if (cJSON_IsString(v)) {
        *out = strdup(v->valuestring);
    } else if (cJSON_IsBool(v)) {
        *out = strdup(cJSON_IsTrue(v) ? "true" : "false");
    } else if (cJSON_IsNull(v)) {
        *out = strdup("");
    } else if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        /* Integral values within 2^53 print as integers (valueint saturates). */
        if (d == (double)(int64_t)d && d <= 9007199254740992.0 && d >= -9007199254740992.0)
            snprintf(buf, sizeof buf, "%" PRId64, (int64_t)d);
        else
            snprintf(buf, sizeof buf, "%.17g", d);
        *out = strdup(buf);
    } else if (cJSON_IsArray(v)) {
        size_t len = 1;
        const cJSON *e;
        for (e = v->child; e; e = e->next) {
            if (!cJSON_IsString(e)) {
                snprintf(err, cap, "list values must be strings");
                return false;
            }
            len += strlen(e->valuestring) + 1;
        }
        if (!(*out = malloc(len)))
            return false;
        (*out)[0] = '\0';
        for (e = v->child; e; e = e->next) {
            if (e != v->child)
                strcat(*out, ",");
            strcat(*out, e->valuestring);
        }
    } else {
        snprintf(err, cap, "unsupported value type");
        return false;
    }
    if (!*out)
        snprintf(err, cap, "out of memory");
    return *out != NULL;
}

/* Parses the body. false: `r` holds the 400. */
static bool conf_parse(struct admin_req *r, struct conf_body *b)
{
    const char *end = NULL;
    cJSON *root, *item;
    char err[256] = "";
    bool ok = true;
    memset(b, 0, sizeof *b);
    root = r->len ? cJSON_ParseWithLengthOpts(r->body, r->len, &end, 0) : NULL;
    if (root && end) {
        while (end < r->body + r->len && (*end == ' ' || *end == '\n' || *end == '\r' || *end == '\t'))
            end++;
        if (end != r->body + r->len) {
            cJSON_Delete(root);
            root = NULL;
        }
    }
    if (!root) {
        snprintf(err, sizeof err, r->len ? "not valid JSON (at byte %zu)" : "empty body",
                 end && r->len ? (size_t)(end - r->body) : (size_t)0);
        kvt__admin_error(r, 400, "Invalid JSON body", err);
        return false;
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        kvt__admin_error(r, 400, "Request body must be a JSON object", NULL);
        return false;
    }
    if (depth_of(root) > ADMIN_JSON_DEPTH) {
        cJSON_Delete(root);
        kvt__admin_error(r, 400, "Invalid JSON body", "nested deeper than 4 levels");
        return false;
    }
    for (item = root->child; item && ok; item = item->next) {
        bool nested = strcmp(item->string, "extra_config") == 0 && cJSON_IsObject(item);
        cJSON *sub = nested ? item->child : item;
        for (; sub && ok; sub = nested ? sub->next : NULL) {
            char key[300];
            snprintf(key, sizeof key, nested ? "extra_config.%.200s" : "%.200s", sub->string);
            for (size_t i = 0; i < b->n && ok; i++)
                if (strcmp(b->keys[i], key) == 0) {
                    snprintf(err, sizeof err, "duplicate key %.200s", key);
                    ok = false;
                }
            if (ok && b->n == CONF_KEYS_MAX) {
                snprintf(err, sizeof err, "more than %d keys", CONF_KEYS_MAX);
                ok = false;
            }
            if (ok) {
                char *val = NULL, e[128] = "";
                if (!to_text(sub, &val, e, sizeof e)) {
                    snprintf(err, sizeof err, "%.200s: %s", key, e);
                    ok = false;
                } else if (!(b->keys[b->n] = strdup(key))) {
                    free(val);
                    snprintf(err, sizeof err, "out of memory");
                    ok = false;
                } else {
                    b->values[b->n++] = val;
                }
            }
        }
    }
    cJSON_Delete(root);
    if (!ok) {
        conf_body_free(b);
        kvt__admin_error(r, 400, "Invalid JSON body", err);
    }
    return ok;
}

/* 400 Invalid config: message = the first problem, errors = each key that fails alone
 * (or the culprit of a cross-key rule). */
static void conf_invalid(struct admin_req *r, const struct conf_body *b, const kvt_config *base,
                         size_t bad, const char *first)
{
    cJSON *o = cJSON_CreateObject(), *errs = cJSON_CreateObject();
    for (size_t i = 0; i < b->n; i++) {
        kvt_config *c;
        if (kvt_config_dup(base, &c) != KVT_OK)
            continue;
        if (kvt_config_patch(c, 1, (const char *const *)&b->keys[i],
                             (const char *const *)&b->values[i], true, NULL) != KVT_OK)
            cJSON_AddStringToObject(errs, b->keys[i], kvt_last_error());
        kvt_config_free(c);
    }
    if (!errs->child && bad < b->n)
        cJSON_AddStringToObject(errs, b->keys[bad], first);
    cJSON_AddStringToObject(o, "error", "Invalid config");
    cJSON_AddStringToObject(o, "message", first);
    cJSON_AddItemToObject(o, "errors", errs);
    kvt__admin_json(r, 400, o);
}

/* If-Match: `"N"`, `W/"N"` or N; "*" = any. -1: absent or "*"; -2: unparsable. */
static int64_t if_match(struct admin_req *r)
{
    const char *h = kvt__admin_header(r, "If-Match");
    char buf[32];
    size_t n;
    int64_t v;
    if (!h || strcmp(h, "*") == 0)
        return -1;
    if (strncmp(h, "W/", 2) == 0)
        h += 2;
    n = strlen(h);
    if (n >= 2 && h[0] == '"' && h[n - 1] == '"') {
        h++;
        n -= 2;
    }
    if (n == 0 || n >= sizeof buf)
        return -2;
    memcpy(buf, h, n);
    buf[n] = '\0';
    return parse_i64(buf, 0, INT64_MAX, &v) ? v : -2;
}

static void precondition_failed(struct admin_req *r, uint64_t now, const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", "Precondition Failed");
    cJSON_AddStringToObject(o, "message", msg);
    add_u64(o, "version", now);
    set_etag(r, now);
    kvt__admin_json(r, 412, o);
}

static cJSON *effect_json(const char *key)
{
    const struct conf_effect *e = effect_of(key);
    cJSON *o = cJSON_CreateObject(), *a;
    if (e && !e->backends) {
        cJSON_AddStringToObject(o, "takes_effect", "immediately");
        return o;
    }
    cJSON_AddStringToObject(o, "takes_effect", "next create/recreate");
    a = cJSON_AddArrayToObject(o, "backends");
    if (e) {
        char buf[128], *save = NULL;
        snprintf(buf, sizeof buf, "%s", e->backends);
        for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
            cJSON_AddItemToArray(a, cJSON_CreateString(t));
    }
    return o;
}

static void h_conf_post(struct admin_req *r)
{
    kvt_store *s = r->srv->store;
    const char *dr = kvt__admin_query(r, "dry_run");
    bool dry = false;
    struct conf_body b;
    kvt_config *cur = NULL, *next = NULL;
    uint64_t version;
    int64_t want = if_match(r);
    size_t bad = 0;
    char first[512];
    int rc;
    cJSON *o, *x;
    if (dr && !parse_bool(dr, &dry)) {
        kvt__admin_error(r, 400, "Invalid argument", "dry_run must be true or false");
        return;
    }
    if (want == -2) {
        precondition_failed(r, kvt_store_conf_version(s), "If-Match is not a config version");
        return;
    }
    if (!conf_parse(r, &b))
        return;
    if ((rc = conf_snapshot(s, &cur, &version)) != KVT_OK) {
        conf_body_free(&b);
        fail500(r, "Failed to update config", rc);
        return;
    }
    if (want >= 0 && (uint64_t)want != version) {
        char msg[128];
        snprintf(msg, sizeof msg, "config changed since version %" PRId64 " (now %" PRIu64 ")",
                 want, version);
        precondition_failed(r, version, msg);
        goto out;
    }
    /* Validate on a copy first, for the dry run and for the per-key errors. */
    if ((rc = kvt_config_dup(cur, &next)) == KVT_OK)
        rc = kvt_config_patch(next, b.n, (const char *const *)b.keys,
                              (const char *const *)b.values, true, &bad);
    if (rc != KVT_OK) {
        last_error(first, sizeof first);
        conf_invalid(r, &b, cur, bad, first);
        goto out;
    }
    if (!dry) {
        count(r, OP_CONF_UPDATE);
        rc = want >= 0 ? kvt_store_conf_update_if(s, (uint64_t)want, b.n, (const char *const *)b.keys,
                                                  (const char *const *)b.values, &bad)
                       : kvt_store_conf_update(s, b.n, (const char *const *)b.keys,
                                               (const char *const *)b.values, &bad);
        last_error(first, sizeof first);
        if (rc == KVT_EBUSY && want >= 0) {
            precondition_failed(r, kvt_store_conf_version(s), first);
            goto out;
        }
        if (rc != KVT_OK) { /* a concurrent change made it invalid */
            conf_invalid(r, &b, cur, bad, first);
            goto out;
        }
        version = kvt_store_conf_version(s);
        for (size_t i = 0; i < b.n; i++)
            kvt__admin_log(r->srv, KVT_LOG_INFO, "req=%llu op=conf_update key=%.200s version=%" PRIu64,
                           r->id, b.keys[i], version);
    }
    o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", "success");
    if (dry)
        cJSON_AddBoolToObject(o, "dry_run", true);
    x = cJSON_AddObjectToObject(o, dry ? "changes" : "updated");
    for (size_t i = 0; i < b.n; i++) {
        kvt_config_key_info ki;
        if (!find_key(b.keys[i], &ki))
            continue;
        if (dry) {
            cJSON *e = effect_json(ki.name);
            cJSON_AddItemToObject(e, "from", conf_value(cur, &ki));
            cJSON_AddItemToObject(e, "to", conf_value(next, &ki));
            cJSON_AddItemToObject(x, ki.name, e);
        } else {
            cJSON_AddItemToObject(x, ki.name, conf_value(next, &ki));
        }
    }
    add_u64(o, "version", version);
    set_etag(r, version);
    kvt__admin_json(r, 200, o);
out:
    kvt_config_free(next);
    kvt_config_free(cur);
    conf_body_free(&b);
}

/* ------------------------------------------------------------ metrics, health, version */

static void h_metrics(struct admin_req *r)
{
    static const char *const op_names[OP_COUNT] = {"close", "create", "recreate", "conf_update",
                                                   "bypass", "freeze", "clear"};
    char *core = NULL, *text = NULL;
    size_t len = 0;
    FILE *f;
    int rc;
    if ((rc = kvt_metrics_render(r->srv->store, &core)) != KVT_OK) {
        fail500(r, "Failed to render metrics", rc);
        return;
    }
    if (!(f = open_memstream(&text, &len))) {
        kvt_free(core);
        kvt__admin_error(r, 500, "Failed to render metrics", "out of memory");
        return;
    }
    fputs(core, f);
    kvt_free(core);
    fprintf(f, "# HELP kvtier_admin_requests_total Admin HTTP requests answered.\n"
               "# TYPE kvtier_admin_requests_total counter\nkvtier_admin_requests_total %llu\n",
            (unsigned long long)atomic_load(&r->srv->requests));
    fprintf(f, "# HELP kvtier_admin_errors_total Admin HTTP requests answered with a 5xx status.\n"
               "# TYPE kvtier_admin_errors_total counter\nkvtier_admin_errors_total %llu\n",
            (unsigned long long)atomic_load(&r->srv->errors));
    fprintf(f, "# HELP kvtier_admin_operations_total Admin operations by kind.\n"
               "# TYPE kvtier_admin_operations_total counter\n");
    for (int i = 0; i < OP_COUNT; i++)
        fprintf(f, "kvtier_admin_operations_total{op=\"%s\"} %llu\n", op_names[i],
                (unsigned long long)atomic_load(&r->srv->ops[i]));
    if (fclose(f) != 0 || !text) {
        free(text);
        kvt__admin_error(r, 500, "Failed to render metrics", "out of memory");
        return;
    }
    kvt__admin_text(r, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
}

static void h_metrics_reset(struct admin_req *r)
{
    int rc = kvt_metrics_reset(r->srv->store);
    if (rc != KVT_OK) {
        fail500(r, "Failed to reset metrics", rc);
        return;
    }
    static const char ok[] = "ok";
    kvt__admin_text(r, 200, "text/plain; charset=utf-8", strdup(ok), sizeof ok - 1);
}

static void h_healthz(struct admin_req *r)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", "ok");
    kvt__admin_json(r, 200, o);
}

static void h_version(struct admin_req *r)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", "kvtier");
    cJSON_AddStringToObject(o, "version", kvt_version());
    kvt__admin_json(r, 200, o);
}

static void h_status(struct admin_req *r)
{
    kvt_store *s = r->srv->store;
    kvt_backend_info info[KVT_MAX_BACKENDS];
    kvt_store_stats st;
    size_t n = 0;
    bool ok = true;
    cJSON *o, *a, *x;
    if (kvt_backends_list(s, info, KVT_MAX_BACKENDS, &n) != KVT_OK ||
        kvt_store_get_stats(s, &st) != KVT_OK) {
        fail500(r, "Failed to get status", KVT_EIO);
        return;
    }
    o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", "ok");
    cJSON_AddStringToObject(o, "version", kvt_version());
    cJSON_AddBoolToObject(o, "frozen", kvt_store_frozen(s));
    add_u64(o, "conf_version", kvt_store_conf_version(s));
    a = cJSON_AddArrayToObject(o, "backends");
    for (size_t i = 0; i < n && i < KVT_MAX_BACKENDS; i++) {
        cJSON *d = backend_doc(s, &info[i], i), *h = cJSON_GetObjectItemCaseSensitive(d, "health");
        cJSON *br = h ? cJSON_GetObjectItemCaseSensitive(h, "breaker") : NULL;
        if (info[i].state != KVT_BACKEND_ACTIVE || (br && strcmp(br->valuestring, "closed") != 0))
            ok = false;
        cJSON_AddItemToArray(a, d);
    }
    if (!ok)
        cJSON_SetValuestring(cJSON_GetObjectItemCaseSensitive(o, "status"), "degraded");
    x = cJSON_AddObjectToObject(o, "store");
    add_u64(x, "store_requests", st.store_requests);
    add_u64(x, "retrieve_requests", st.retrieve_requests);
    add_u64(x, "lookup_requests", st.lookup_requests);
    add_u64(x, "stored_chunks", st.stored_chunks);
    add_u64(x, "retrieved_chunks", st.retrieved_chunks);
    add_u64(x, "promotions", st.promotions);
    add_u64(x, "stored_tokens", st.stored_tokens);
    add_u64(x, "retrieved_tokens", st.retrieved_tokens);
    add_u64(x, "lookup_keys", st.lookup_keys);
    add_u64(x, "lookup_hits", st.lookup_hits);
    add_u64(x, "wt_enqueued", st.wt_enqueued);
    add_u64(x, "wt_done", st.wt_done);
    add_u64(x, "wt_failed", st.wt_failed);
    add_u64(x, "wt_skipped", st.wt_skipped);
    add_u64(x, "wt_cancelled", st.wt_cancelled);
    add_u64(x, "puts_frozen", st.puts_frozen);
    add_u64(x, "puts_unstored", st.puts_unstored);
    add_u64(x, "get_unstaged", st.get_unstaged);
    kvt__admin_json(r, 200, o);
}

/* ------------------------------------------------------------ the table */

/* docs/openapi.yaml lists exactly these rows (test_admin checks it). */
const struct admin_route kvt__admin_routes[] = {
    {"GET", "/backends", h_list, 0},
    {"POST", "/backends", h_create, 0},
    {"GET", "/backends/{name}", h_backend, 0},
    {"DELETE", "/backends/{name}", h_close, 0},
    {"POST", "/backends/{name}/recreate", h_recreate, 0},
    {"GET", "/bypass/list", h_bypass_list, 0},
    {"PUT", "/bypass/add", h_bypass_add, 0},
    {"PUT", "/bypass/remove", h_bypass_remove, 0},
    {"PUT", "/freeze/enable", h_freeze_on, 0},
    {"PUT", "/freeze/disable", h_freeze_off, 0},
    {"GET", "/freeze/status", h_freeze_status, 0},
    {"POST", "/cache/store", h_cache_store, 0},
    {"POST", "/cache/retrieve", h_cache_retrieve, 0},
    {"DELETE", "/cache/clear", h_cache_clear, 0},
    {"GET", "/conf", h_conf_get, 0},
    {"POST", "/conf", h_conf_post, 0},
    {"GET", "/metrics", h_metrics, 0},
    {"POST", "/metrics/reset", h_metrics_reset, 0},
    {"GET", "/healthz", h_healthz, ROUTE_NO_AUTH | ROUTE_NO_STORE},
    {"GET", "/status", h_status, 0},
    {"GET", "/version", h_version, ROUTE_NO_STORE},
    {NULL, NULL, NULL, 0},
};
