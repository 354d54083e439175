/* kvtier — the store and its data path. The lock protocol is described in store.h. */
#include <stdlib.h>
#include <string.h>

#include "store.h"

const char *kvt_version(void) { return KVT_VERSION; }
void kvt_free(void *p) { free(p); }

/* ------------------------------------------------------------------ snapshots, entry */

kvt__snap *kvt__snap_get(kvt_store *s)
{
    pthread_rwlock_rdlock(&s->reg_lock);
    kvt__snap *sn = s->snap;
    atomic_fetch_add_explicit(&sn->refs, 1, memory_order_relaxed);
    pthread_rwlock_unlock(&s->reg_lock);
    return sn;
}

void kvt__snap_put(kvt__snap *sn)
{
    if (atomic_fetch_sub_explicit(&sn->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t i = 0; i < sn->n; i++)
        kvt__bk_unref(sn->bk[i]);
    free(sn);
}

/* Sequentially consistent on both sides: either enter() sees `closing`, or the closer
 * sees `active` > 0 and waits for the matching leave(). */
bool kvt__bk_enter(kvt__bk *bk)
{
    atomic_fetch_add(&bk->active, 1);
    if (!atomic_load(&bk->closing))
        return true;
    kvt__bk_leave(bk);
    return false;
}

void kvt__bk_leave(kvt__bk *bk)
{
    if (atomic_fetch_sub(&bk->active, 1) == 1 && atomic_load(&bk->closing)) {
        pthread_mutex_lock(&bk->drain_mu);
        pthread_cond_broadcast(&bk->drain_cv);
        pthread_mutex_unlock(&bk->drain_mu);
    }
}

/* ------------------------------------------------------------------ backend env */

static const kvt_log_handler *env_log(const kvt_backend_env *env) { return &env->bk->store->log; }

const char *kvt_backend_name(const kvt_backend_env *env) { return env->bk->name; }

void kvt_backend_log(const kvt_backend_env *env, kvt_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    kvt__vlog(env_log(env), level, env->bk->name, fmt, ap);
    va_end(ap);
}

/* Allocates from the CPU tier of `sn` when it has one, else from the heap. */
static int alloc_obj(kvt__snap *sn, size_t size, const kvt_chunk_meta *meta, kvt_obj **out)
{
    kvt__bk *cpu = sn->cpu;
    if (cpu && kvt__bk_enter(cpu)) {
        int rc = kvt__local_cpu_alloc(cpu->state, size, meta, out);
        kvt__bk_leave(cpu);
        return rc;
    }
    return kvt__obj_heap_new(size, meta, out);
}

int kvt_backend_alloc(const kvt_backend_env *env, size_t size, const kvt_chunk_meta *meta,
                      kvt_obj **out)
{
    kvt__snap *sn = kvt__snap_get(env->bk->store);
    int rc = alloc_obj(sn, size, meta, out);
    kvt__snap_put(sn);
    return rc;
}

/* ------------------------------------------------------------------ open, close */

static int copy_settings(kvt_store *s)
{
    int64_t chunk = 0, depth = 0;
    const char *loc = NULL;
    const char *const *items = NULL;
    size_t n = 0;
    int rc = kvt_config_get_int(s->cfg, "chunk_size", &chunk);
    if (rc == KVT_OK)
        rc = kvt_config_get_int(s->cfg, "write_queue_depth", &depth);
    if (rc == KVT_OK)
        rc = kvt_config_get_str(s->cfg, "store_location", &loc);
    if (rc == KVT_OK)
        rc = kvt_config_get_list(s->cfg, "retrieve_locations", &items, &n);
    if (rc != KVT_OK)
        return rc;
    if (n > KVT_MAX_BACKENDS)
        return kvt__fail(KVT_ECONFIG, "retrieve_locations names more than %d backends",
                         KVT_MAX_BACKENDS);
    s->chunk_size = (uint32_t)chunk;
    s->write_queue_depth = (size_t)depth;
    kvt__strlcpy(s->store_location, loc ? loc : "", sizeof s->store_location);
    for (size_t i = 0; i < n; i++)
        kvt__strlcpy(s->retrieve_locations[i], items[i], KVT_NAME_MAX);
    s->nretrieve = n;
    return KVT_OK;
}

static void store_free(kvt_store *s)
{
    if (s->snap)
        kvt__snap_put(s->snap);
    kvt_config_free(s->cfg);
    pthread_rwlock_destroy(&s->reg_lock);
    pthread_mutex_destroy(&s->mgmt);
    free(s);
}

int kvt_store_open(const kvt_config *cfg, const kvt_log_handler *log, kvt_store **out)
{
    pthread_rwlockattr_t attr;
    kvt_store *s;
    int rc;

    *out = NULL;
    if (!cfg)
        return kvt__fail(KVT_EINVAL, "kvt_store_open: config is NULL");
    if (!(s = calloc(1, sizeof *s)))
        return kvt__fail(KVT_ENOMEM, "cannot allocate store");
    /* Writer preference: a stream of data-path readers must not starve the admin. */
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&s->reg_lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    pthread_mutex_init(&s->mgmt, NULL);
    s->log = log ? *log : (kvt_log_handler){.fn = NULL, .ud = NULL, .min_level = KVT_LOG_INFO};
    rc = kvt_config_dup(cfg, &s->cfg);
    if (rc == KVT_OK)
        rc = copy_settings(s);
    if (rc == KVT_OK && !(s->snap = calloc(1, sizeof *s->snap)))
        rc = kvt__fail(KVT_ENOMEM, "cannot allocate registry snapshot");
    if (rc == KVT_OK) {
        atomic_init(&s->snap->refs, 1);
        rc = kvt_backends_create(s, NULL, 0, NULL);
    }
    if (rc != KVT_OK) {
        store_free(s);
        return rc;
    }
    kvt__log(&s->log, KVT_LOG_INFO, "store", "event=store_opened version=%s", KVT_VERSION);
    *out = s;
    return KVT_OK;
}

int kvt_store_close(kvt_store *s)
{
    if (!s)
        return KVT_OK;
    kvt_flush(s);
    kvt__registry_close_all(s);
    kvt__log(&s->log, KVT_LOG_INFO, "store", "event=store_closed");
    store_free(s);
    return KVT_OK;
}

/* ------------------------------------------------------------------ data path */

static bool bit(uint32_t mask, size_t i) { return (mask >> i) & 1u; }

/* May tier i serve gets and lookups right now? (LMCache's get_active_storage_backends) */
static bool get_active(kvt_store *s, const kvt__snap *sn, size_t i)
{
    if (bit(sn->bypass, i) || bit(sn->no_get, i))
        return false;
    return !atomic_load_explicit(&s->frozen, memory_order_relaxed) || sn->bk[i]->is_cpu;
}

static uint32_t chunk_tokens(const kvt_store *s, const kvt_chunk_meta *meta)
{
    return meta && meta->num_tokens ? meta->num_tokens : s->chunk_size;
}

/* Hands `obj` to every put-active tier: the CPU tier synchronously, the others through
 * their write-through queues. Each tier takes its own reference. */
static void write_through(kvt_store *s, kvt__snap *sn, const kvt_key *key, kvt_obj *obj)
{
    for (size_t i = 0; i < sn->n; i++) {
        kvt__bk *bk = sn->bk[i];
        if (bit(sn->bypass, i) || bit(sn->no_put, i) || !kvt__bk_enter(bk))
            continue;
        if (bk->wq) {
            kvt_obj_retain(obj);
            atomic_fetch_add(&s->st.wt_enqueued, 1);
            kvt__wq_push(bk->wq, key, obj);
        } else if (bk->ops->put(bk->state, key, obj) == KVT_OK) {
            atomic_fetch_add(&bk->puts, 1);
        } else {
            atomic_fetch_add(&bk->put_failures, 1);
        }
        kvt__bk_leave(bk);
    }
}

int kvt_put(kvt_store *s, const kvt_key *key, const void *data, size_t len,
            const kvt_chunk_meta *meta)
{
    kvt_chunk_meta m = meta ? *meta : (kvt_chunk_meta){0};
    kvt_obj *obj;

    if (!key || (!data && len))
        return kvt__fail(KVT_EINVAL, "kvt_put: key or data is NULL");
    atomic_fetch_add(&s->st.store_requests, 1);
    if (atomic_load(&s->frozen))
        return KVT_OK;
    m.num_tokens = chunk_tokens(s, meta);
    kvt__snap *sn = kvt__snap_get(s);
    int rc = alloc_obj(sn, len, &m, &obj);
    if (rc == KVT_OK) {
        memcpy(kvt_obj_data_mut(obj), data, len);
        write_through(s, sn, key, obj);
        kvt_obj_release(obj);
        atomic_fetch_add(&s->st.stored_chunks, 1);
        atomic_fetch_add(&s->st.stored_tokens, m.num_tokens);
    }
    kvt__snap_put(sn);
    return rc;
}

int kvt_batched_put(kvt_store *s, size_t n, const kvt_key keys[], const void *const data[],
                    const size_t lens[], const kvt_chunk_meta *metas, size_t *stored)
{
    int rc = KVT_OK;
    size_t i = 0;
    for (; i < n && rc == KVT_OK; i++)
        rc = kvt_put(s, &keys[i], data[i], lens[i], metas ? &metas[i] : NULL);
    if (stored)
        *stored = rc == KVT_OK ? n : i - 1;
    return rc;
}

/* Copies a hit from another tier into the CPU tier. Objects already in the CPU pool
 * (kvt_backend_alloc) are inserted as they are; others are copied. Best effort. */
static void promote(kvt_store *s, kvt__snap *sn, const kvt_key *key, kvt_obj *obj)
{
    kvt__bk *cpu = sn->cpu;
    kvt_obj *copy = NULL;
    if (!cpu || !kvt__bk_enter(cpu))
        return;
    if (kvt__local_cpu_owns(cpu->state, obj)) {
        copy = obj;
        kvt_obj_retain(copy);
    } else if (kvt__local_cpu_alloc(cpu->state, obj->size, &obj->meta, &copy) == KVT_OK) {
        memcpy(kvt_obj_data_mut(copy), obj->data, obj->size);
    }
    if (copy && cpu->ops->put(cpu->state, key, copy) == KVT_OK)
        atomic_fetch_add(&s->st.promotions, 1);
    kvt_obj_release(copy);
    kvt__bk_leave(cpu);
}

int kvt_get(kvt_store *s, const kvt_key *key, kvt_obj **out)
{
    kvt_obj *obj = NULL;
    if (!out || !key)
        return kvt__fail(KVT_EINVAL, "kvt_get: key or out is NULL");
    *out = NULL;
    atomic_fetch_add(&s->st.retrieve_requests, 1);
    kvt__snap *sn = kvt__snap_get(s);
    for (size_t i = 0; i < sn->n && !obj; i++) {
        kvt__bk *bk = sn->bk[i];
        if (!get_active(s, sn, i) || !kvt__bk_enter(bk))
            continue;
        int rc = bk->ops->get(bk->state, key, &obj);
        kvt__bk_leave(bk);
        if (rc != KVT_OK) {
            obj = NULL;
            atomic_fetch_add(&bk->misses, 1);
            continue;
        }
        atomic_fetch_add(&bk->hits, 1);
        if (!bk->is_cpu)
            promote(s, sn, key, obj);
    }
    kvt__snap_put(sn);
    if (!obj)
        return kvt__fail(KVT_ENOENT, "key not stored in any active tier");
    atomic_fetch_add(&s->st.retrieved_chunks, 1);
    atomic_fetch_add(&s->st.retrieved_tokens, chunk_tokens(s, &obj->meta));
    *out = obj;
    return KVT_OK;
}

int kvt_get_into(kvt_store *s, const kvt_key *key, void *buf, size_t cap, size_t *len)
{
    kvt_obj *obj;
    if (!buf && cap)
        return kvt__fail(KVT_EINVAL, "kvt_get_into: buffer is NULL");
    int rc = kvt_get(s, key, &obj);
    if (rc != KVT_OK)
        return rc;
    if (len)
        *len = obj->size;
    if (obj->size > cap)
        rc = kvt__fail(KVT_ETOOSMALL, "chunk is %zu bytes, buffer %zu", obj->size, cap);
    else
        memcpy(buf, obj->data, obj->size);
    kvt_obj_release(obj);
    return rc;
}

int kvt_contains(kvt_store *s, const kvt_key *key, const char **tier)
{
    const char *found = NULL;
    if (!key)
        return kvt__fail(KVT_EINVAL, "kvt_contains: key is NULL");
    kvt__snap *sn = kvt__snap_get(s);
    for (size_t i = 0; i < sn->n && !found; i++) {
        kvt__bk *bk = sn->bk[i];
        if (!get_active(s, sn, i) || !kvt__bk_enter(bk))
            continue;
        if (bk->ops->contains(bk->state, key) == 1)
            found = bk->ops->type_name;
        kvt__bk_leave(bk);
    }
    kvt__snap_put(sn);
    if (tier)
        *tier = found;
    return found ? KVT_OK : kvt__fail(KVT_ENOENT, "key not stored in any active tier");
}

static size_t count_prefix(kvt__bk *bk, const kvt_key *keys, size_t n, bool pin)
{
    if (KVT_BACKEND_OPS_HAS(bk->ops, count_prefix))
        return bk->ops->count_prefix(bk->state, keys, n, pin);
    size_t i = 0;
    while (i < n && bk->ops->contains(bk->state, &keys[i]) == 1)
        i++;
    return i;
}

int kvt_lookup_prefix(kvt_store *s, const kvt_key keys[], size_t n, unsigned flags, size_t *hits,
                      kvt_tier_span *spans, size_t max_spans, size_t *nspans)
{
    size_t pos = 0, k = 0;
    if (!hits || (!keys && n))
        return kvt__fail(KVT_EINVAL, "kvt_lookup_prefix: keys or hits is NULL");
    atomic_fetch_add(&s->st.lookup_requests, 1);
    kvt__snap *sn = kvt__snap_get(s);
    for (size_t i = 0; i < sn->n && pos < n; i++) {
        kvt__bk *bk = sn->bk[i];
        if (!get_active(s, sn, i) || !kvt__bk_enter(bk))
            continue;
        size_t hit = count_prefix(bk, keys + pos, n - pos, flags & KVT_LOOKUP_PIN);
        kvt__bk_leave(bk);
        if (hit == 0)
            continue;
        if (spans && k < max_spans)
            spans[k] = (kvt_tier_span){bk->ops->type_name, pos, hit};
        k++;
        pos += hit;
    }
    kvt__snap_put(sn);
    atomic_fetch_add(&s->st.lookup_keys, n);
    atomic_fetch_add(&s->st.lookup_hits, pos);
    *hits = pos;
    if (nspans)
        *nspans = k;
    return KVT_OK;
}

int kvt_unpin(kvt_store *s, const kvt_key keys[], size_t n)
{
    kvt__snap *sn = kvt__snap_get(s);
    for (size_t i = 0; i < sn->n; i++) {
        kvt__bk *bk = sn->bk[i];
        if (!KVT_BACKEND_OPS_HAS(bk->ops, unpin) || !kvt__bk_enter(bk))
            continue;
        for (size_t j = 0; j < n; j++)
            bk->ops->unpin(bk->state, &keys[j]);
        kvt__bk_leave(bk);
    }
    kvt__snap_put(sn);
    return KVT_OK;
}

/* Runs `fn` (if any) on every backend, bypassed or not, after the writes queued to it
 * before the call. Under the management mutex: no close is half done meanwhile, so a
 * queue being drained by a close cannot be missed, and a removed chunk cannot come back
 * from a put still queued to a tier that closes at the same time. */
static void each_after_writes(kvt_store *s, void (*fn)(kvt__bk *bk, void *ctx), void *ctx)
{
    pthread_mutex_lock(&s->mgmt);
    kvt__snap *sn = kvt__snap_get(s);
    for (size_t i = 0; i < sn->n; i++) {
        kvt__bk *bk = sn->bk[i];
        if (!kvt__bk_enter(bk))
            continue; /* not reached: backends close only under mgmt */
        if (bk->wq)
            kvt__wq_flush(bk->wq);
        if (fn)
            fn(bk, ctx);
        kvt__bk_leave(bk);
    }
    kvt__snap_put(sn);
    pthread_mutex_unlock(&s->mgmt);
}

struct remove_ctx {
    const kvt_key *key;
    size_t removed;
};

static void remove_one(kvt__bk *bk, void *ctx)
{
    struct remove_ctx *c = ctx;
    c->removed += bk->ops->remove(bk->state, c->key) == KVT_OK;
}

int kvt_remove(kvt_store *s, const kvt_key *key, size_t *removed)
{
    struct remove_ctx c = {key, 0};
    if (!key)
        return kvt__fail(KVT_EINVAL, "kvt_remove: key is NULL");
    each_after_writes(s, remove_one, &c);
    if (removed)
        *removed = c.removed;
    return KVT_OK;
}

struct clear_ctx {
    uint64_t tokens;
    int rc;
};

static void clear_one(kvt__bk *bk, void *ctx)
{
    struct clear_ctx *c = ctx;
    int rc = bk->ops->clear(bk->state, &c->tokens);
    if (rc != KVT_OK && c->rc == KVT_OK)
        c->rc = rc;
}

int kvt_clear(kvt_store *s, uint64_t *tokens)
{
    struct clear_ctx c = {0, KVT_OK};
    each_after_writes(s, clear_one, &c);
    if (tokens)
        *tokens = c.tokens;
    return c.rc;
}

int kvt_flush(kvt_store *s)
{
    each_after_writes(s, NULL, NULL);
    return KVT_OK;
}

/* ------------------------------------------------------------------ state, stats, config */

int kvt_store_set_freeze(kvt_store *s, bool on)
{
    bool was = atomic_exchange(&s->frozen, on);
    if (was != on)
        kvt__log(&s->log, KVT_LOG_INFO, "store", "event=freeze on=%d", on);
    return KVT_OK;
}

bool kvt_store_frozen(kvt_store *s) { return atomic_load(&s->frozen); }

int kvt_backend_get_stats(kvt_store *s, const char *name, kvt_backend_stats *out)
{
    memset(out, 0, sizeof *out);
    kvt__snap *sn = kvt__snap_get(s);
    kvt__bk *bk = kvt__snap_find(sn, name);
    if (bk) {
        if (kvt__bk_enter(bk)) {
            if (KVT_BACKEND_OPS_HAS(bk->ops, stats))
                bk->ops->stats(bk->state, out);
            out->queued = bk->wq ? kvt__wq_pending(bk->wq) : 0;
            kvt__bk_leave(bk);
        }
        out->hits = atomic_load(&bk->hits);
        out->misses = atomic_load(&bk->misses);
        out->puts = atomic_load(&bk->puts);
        out->put_failures = atomic_load(&bk->put_failures);
    }
    kvt__snap_put(sn);
    return bk ? KVT_OK : kvt__bk_not_found(name);
}

int kvt_store_get_stats(kvt_store *s, kvt_store_stats *out)
{
    *out = (kvt_store_stats){
        .store_requests = atomic_load(&s->st.store_requests),
        .retrieve_requests = atomic_load(&s->st.retrieve_requests),
        .lookup_requests = atomic_load(&s->st.lookup_requests),
        .stored_chunks = atomic_load(&s->st.stored_chunks),
        .retrieved_chunks = atomic_load(&s->st.retrieved_chunks),
        .stored_tokens = atomic_load(&s->st.stored_tokens),
        .retrieved_tokens = atomic_load(&s->st.retrieved_tokens),
        .promotions = atomic_load(&s->st.promotions),
        .lookup_keys = atomic_load(&s->st.lookup_keys),
        .lookup_hits = atomic_load(&s->st.lookup_hits),
        .wt_enqueued = atomic_load(&s->st.wt_enqueued),
        .wt_done = atomic_load(&s->st.wt_done),
        .wt_failed = atomic_load(&s->st.wt_failed),
    };
    return KVT_OK;
}

int kvt_store_conf_update(kvt_store *s, size_t n, const char *const keys[],
                          const char *const values[], size_t *bad_key)
{
    pthread_mutex_lock(&s->mgmt);
    int rc = kvt_config_patch(s->cfg, n, keys, values, true, bad_key);
    pthread_mutex_unlock(&s->mgmt);
    if (rc == KVT_OK)
        for (size_t i = 0; i < n; i++)
            kvt__log(&s->log, KVT_LOG_INFO, "store", "event=config_changed key=%s", keys[i]);
    return rc;
}

int kvt_store_conf_dup(kvt_store *s, kvt_config **out)
{
    pthread_mutex_lock(&s->mgmt);
    int rc = kvt_config_dup(s->cfg, out);
    pthread_mutex_unlock(&s->mgmt);
    return rc;
}
