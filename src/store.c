/* kvtier — the store and its data path. The lock protocol is described in store.h. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config_internal.h"
#include "store.h"

const char *kvt_version(void) { return KVT_VERSION; }
void kvt_free(void *p) { free(p); }

#define NEED(cond, fn, what)                                                                      \
    do {                                                                                          \
        if (!(cond))                                                                              \
            return kvt__fail(KVT_EINVAL, "%s: %s", fn, what);                                     \
    } while (0)

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

/* Sequentially consistent on both sides: either enter() sees the flag, or the closer
 * sees `active` > 0 and waits for the matching leave(). */
static bool enter_unless(kvt__bk *bk, atomic_int *flag)
{
    atomic_fetch_add(&bk->active, 1);
    if (!atomic_load(flag))
        return true;
    kvt__bk_leave(bk);
    return false;
}

bool kvt__bk_enter(kvt__bk *bk) { return enter_unless(bk, &bk->closing); }
bool kvt__bk_enter_any(kvt__bk *bk) { return enter_unless(bk, &bk->dead); }

void kvt__bk_leave(kvt__bk *bk)
{
    if (atomic_fetch_sub(&bk->active, 1) == 1 && atomic_load(&bk->closing)) {
        pthread_mutex_lock(&bk->drain_mu);
        pthread_cond_broadcast(&bk->drain_cv);
        pthread_mutex_unlock(&bk->drain_mu);
    }
}

void kvt__bk_ref(kvt__bk *bk) { atomic_fetch_add_explicit(&bk->refs, 1, memory_order_relaxed); }

/* ------------------------------------------------------------------ backend env */

const char *kvt_backend_name(const kvt_backend_env *env) { return env ? env->bk->name : "?"; }

kvt__pool *kvt__env_pool(const kvt_backend_env *env) { return env->bk->store->pool; }

void kvt_backend_log(const kvt_backend_env *env, kvt_log_level level, const char *fmt, ...)
{
    va_list ap;
    if (!env || !fmt)
        return;
    kvt__bk *bk = env->bk;
    va_start(ap, fmt);
    pthread_mutex_lock(&bk->log_mu);
    if (bk->defer_log) {
        if (bk->ndeferred < KVT__DEFER_LINES && level >= bk->store->log.min_level) {
            bk->deferred[bk->ndeferred].level = level;
            vsnprintf(bk->deferred[bk->ndeferred++].msg, sizeof bk->deferred[0].msg, fmt, ap);
        }
        pthread_mutex_unlock(&bk->log_mu);
    } else {
        pthread_mutex_unlock(&bk->log_mu);
        kvt__vlog(&bk->store->log, level, bk->name, fmt, ap);
    }
    va_end(ap);
}

void kvt__bk_flush_log(kvt__bk *bk)
{
    pthread_mutex_lock(&bk->log_mu);
    size_t n = bk->ndeferred;
    bk->ndeferred = 0;
    bk->defer_log = false;
    pthread_mutex_unlock(&bk->log_mu);
    for (size_t i = 0; i < n; i++) /* defer_log is never set again: the array is ours */
        kvt__log(&bk->store->log, bk->deferred[i].level, bk->name, "%s", bk->deferred[i].msg);
}

/* Reads past a full CPU tier (kvt_get_into) allocate from the heap, on the reading thread. */
static _Thread_local bool heap_reads;

/* Allocates from the CPU tier of `sn` when it has one, else from the heap. */
static int alloc_obj(kvt__snap *sn, size_t size, const kvt_chunk_meta *meta, kvt_obj **out)
{
    kvt__bk *cpu = sn->cpu;
    if (cpu && !heap_reads && kvt__bk_enter(cpu)) {
        int rc = kvt__local_cpu_alloc(cpu->state, size, meta, out);
        kvt__bk_leave(cpu);
        return rc;
    }
    return kvt__obj_heap_new(size, meta, out);
}

int kvt_backend_alloc(const kvt_backend_env *env, size_t size, const kvt_chunk_meta *meta,
                      kvt_obj **out)
{
    NEED(out, "kvt_backend_alloc", "out is NULL");
    *out = NULL;
    NEED(env, "kvt_backend_alloc", "env is NULL");
    kvt__snap *sn = kvt__snap_get(env->bk->store);
    int rc = alloc_obj(sn, size, meta, out);
    kvt__snap_put(sn);
    return rc;
}

/* ------------------------------------------------------------------ breaker, health */

static struct kvt__breaker_conf breaker_conf(kvt_store *s)
{
    return (struct kvt__breaker_conf){(uint32_t)atomic_load(&s->breaker_failures),
                                      atomic_load(&s->breaker_backoff_ms),
                                      atomic_load(&s->breaker_backoff_max_ms)};
}

/* A breaker opened: the health thread must look again, even if it is mid-pass now. */
static void health_kick(kvt_store *s)
{
    pthread_mutex_lock(&s->health_mu);
    s->health_kicked = true;
    pthread_cond_signal(&s->health_cv);
    pthread_mutex_unlock(&s->health_mu);
}

void kvt__bk_result(kvt__bk *bk, int status)
{
    if (bk->is_cpu)
        return;
    kvt_store *s = bk->store;
    struct kvt__breaker_conf c = breaker_conf(s);
    if (!kvt__breaker_record(&bk->breaker, status, kvt_last_error(), &c))
        return;
    kvt__log(&s->log, KVT_LOG_WARN, bk->name,
             "event=breaker_open status=%s failures=%u backoff_ms=%lld", kvt_status_name(status),
             c.threshold, (long long)c.backoff_ms);
    health_kick(s);
}

static int call_get(kvt__bk *bk, const kvt_key *key, kvt_obj **out);

/* Without a ping slot: put, get back and remove a scratch chunk. */
static int self_test(kvt__bk *bk)
{
    struct timespec ts = kvt__now();
    kvt_key k;
    kvt_obj *obj = NULL, *got = NULL;
    int rc = kvt_key_init(&k, "kvtier-probe", 1, 0, (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec,
                          "uint8");
    if (rc == KVT_OK)
        rc = kvt__obj_heap_new(KVT__ALIGN, NULL, &obj);
    if (rc != KVT_OK)
        return rc;
    memset(obj->data, 0x5a, obj->size);
    atomic_store(&obj->readonly, true);
    rc = bk->ops->put(bk->state, &k, obj);
    if (rc == KVT_OK && (rc = call_get(bk, &k, &got)) == KVT_OK &&
        (got->size != obj->size || memcmp(got->data, obj->data, obj->size) != 0))
        rc = kvt__fail(KVT_EIO, "probe read back other bytes than it wrote");
    bk->ops->remove(bk->state, &k);
    kvt_obj_release(got);
    kvt_obj_release(obj);
    return rc;
}

/* HALF_OPEN: one probe decides. */
static void probe(kvt_store *s, kvt__bk *bk)
{
    struct kvt__breaker_conf c = breaker_conf(s);
    if (!kvt__bk_enter(bk))
        return; /* closing: its breaker no longer matters */
    struct timespec t0 = kvt__now();
    int rc = KVT_BACKEND_OPS_HAS(bk->ops, ping) ? bk->ops->ping(bk->state) : self_test(bk);
    struct timespec t1 = kvt__now();
    kvt__bk_leave(bk);
    double ms = kvt__ms_between(&t0, &t1);
    kvt__breaker_probed(&bk->breaker, rc, kvt_last_error(), ms, &c);
    if (rc == KVT_OK)
        kvt__log(&s->log, KVT_LOG_INFO, bk->name, "event=breaker_closed probe_ms=%.3f", ms);
    else
        kvt__log(&s->log, KVT_LOG_WARN, bk->name, "event=breaker_probe_failed status=%s",
                 kvt_status_name(rc));
}

static void *health_main(void *arg)
{
    kvt_store *s = arg;
    pthread_mutex_lock(&s->health_mu);
    while (!s->health_stop) {
        s->health_kicked = false; /* a kick from now on is seen by this pass or the next */
        pthread_mutex_unlock(&s->health_mu);
        kvt__bk *bks[2 * KVT_MAX_BACKENDS];
        struct timespec next = kvt__deadline(-1);
        bool any_open = false;
        size_t n = kvt__open_backends(s, bks);
        for (size_t i = 0; i < n; i++) {
            kvt__bk *bk = bks[i];
            if (!bk->is_cpu && kvt__breaker_due(&bk->breaker, &next))
                probe(s, bk);
            if (!bk->is_cpu && !kvt__breaker_allows(&bk->breaker)) {
                kvt__breaker_next(&bk->breaker, &next);
                any_open = true;
            }
            kvt__bk_unref(bk);
        }
        pthread_mutex_lock(&s->health_mu);
        if (s->health_stop)
            break;
        if (s->health_kicked)
            continue;
        if (any_open)
            pthread_cond_timedwait(&s->health_cv, &s->health_mu, &next);
        else
            pthread_cond_wait(&s->health_cv, &s->health_mu);
    }
    pthread_mutex_unlock(&s->health_mu);
    return NULL;
}

static int health_start(kvt_store *s)
{
    if (pthread_create(&s->health_thread, NULL, health_main, s) != 0)
        return kvt__fail(KVT_ENOMEM, "cannot start the health thread");
    s->health_started = true;
    return KVT_OK;
}

static void health_stop(kvt_store *s)
{
    if (!s->health_started)
        return;
    pthread_mutex_lock(&s->health_mu);
    s->health_stop = true;
    pthread_cond_signal(&s->health_cv);
    pthread_mutex_unlock(&s->health_mu);
    pthread_join(s->health_thread, NULL);
    s->health_started = false;
}

/* ------------------------------------------------------------------ open, close */

/* store_location and retrieve_locations name backend types; a typo would store nothing. */
static int check_location(const char *key, const char *name)
{
    if (kvt__type_known(name))
        return KVT_OK;
    return kvt__fail(KVT_ECONFIG, "%s names \"%s\", which is no backend type (LocalCPUBackend, "
                     "LocalDiskBackend, GdsBackend, RemoteBackend or a registered one)", key, name);
}

static int copy_settings(kvt_store *s)
{
    int64_t chunk = 0, depth = 0, wq_ms = 0, close_ms = 0;
    int64_t bf = 0, bb = 0, bmax = 0;
    const char *loc = NULL;
    const char *const *items = NULL;
    size_t n = 0;
    int rc = kvt_config_get_int(s->cfg, "chunk_size", &chunk);
    if (rc == KVT_OK)
        rc = kvt_config_get_int(s->cfg, "write_queue_depth", &depth);
    if (rc == KVT_OK)
        rc = kvt_config_get_int(s->cfg, "write_queue_timeout_ms", &wq_ms);
    if (rc == KVT_OK)
        rc = kvt_config_get_int(s->cfg, "backend_close_timeout_ms", &close_ms);
    if (rc == KVT_OK)
        rc = kvt_config_get_int(s->cfg, "breaker_failures", &bf);
    if (rc == KVT_OK)
        rc = kvt_config_get_int(s->cfg, "breaker_backoff_ms", &bb);
    if (rc == KVT_OK)
        rc = kvt_config_get_int(s->cfg, "breaker_backoff_max_ms", &bmax);
    if (rc == KVT_OK)
        rc = kvt_config_get_str(s->cfg, "store_location", &loc);
    if (rc == KVT_OK)
        rc = kvt_config_get_list(s->cfg, "retrieve_locations", &items, &n);
    if (rc != KVT_OK)
        return rc;
    if (n > KVT_MAX_BACKENDS)
        return kvt__fail(KVT_ECONFIG, "retrieve_locations names more than %d backends",
                         KVT_MAX_BACKENDS);
    if (loc && *loc && (rc = check_location("store_location", loc)) != KVT_OK)
        return rc;
    for (size_t i = 0; i < n; i++)
        if ((rc = check_location("retrieve_locations", items[i])) != KVT_OK)
            return rc;
    s->chunk_size = (uint32_t)chunk;
    s->write_queue_depth = (size_t)depth;
    atomic_store(&s->wq_timeout_ms, wq_ms);
    atomic_store(&s->close_timeout_ms, close_ms);
    atomic_store(&s->breaker_failures, bf);
    atomic_store(&s->breaker_backoff_ms, bb);
    atomic_store(&s->breaker_backoff_max_ms, bmax);
    atomic_store(&s->conf_version, 1);
    kvt__strlcpy(s->store_location, loc ? loc : "", sizeof s->store_location);
    for (size_t i = 0; i < n; i++)
        kvt__strlcpy(s->retrieve_locations[i], items[i], KVT_NAME_MAX);
    s->nretrieve = n;
    return KVT_OK;
}

/* The CPU budget: max_local_cpu_size, lowered so that reserve_local_cpu_size GiB of the
 * host's memory stay outside it. One pool per store, so that a recreated CPU tier counts
 * what its predecessor still has out. */
static int open_pool(kvt_store *s)
{
    double gib = 0, reserve = 0;
    int rc = kvt_config_get_float(s->cfg, "max_local_cpu_size", &gib);
    if (rc == KVT_OK)
        rc = kvt_config_get_float(s->cfg, "reserve_local_cpu_size", &reserve);
    if (rc != KVT_OK || gib <= 0)
        return rc;
    const double GiB = 1024.0 * 1024.0 * 1024.0;
    double cap = gib * GiB; /* the config bounds sizes, so this fits a uint64_t */
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (reserve > 0 && pages > 0 && page > 0) {
        double avail = (double)pages * (double)page - reserve * GiB;
        if (avail < cap)
            cap = avail > 0 ? avail : 0;
    }
    return kvt__pool_new((uint64_t)cap, &s->pool);
}

static void store_free(kvt_store *s)
{
    if (s->snap)
        kvt__snap_put(s->snap);
    kvt__pool_close(s->pool);
    kvt_config_free(s->cfg);
    pthread_rwlock_destroy(&s->reg_lock);
    pthread_mutex_destroy(&s->mgmt);
    pthread_mutex_destroy(&s->health_mu);
    pthread_cond_destroy(&s->health_cv);
    free(s);
}

/* Will any put store anything? Said once at open: an LMCache file with
 * max_local_cpu_size: 0 and no other tier opens fine and caches nothing. */
static void warn_if_nothing_stored(kvt_store *s)
{
    kvt__snap *sn = kvt__snap_get(s);
    bool stores = false;
    for (size_t i = 0; i < sn->n; i++)
        stores |= !sn->bk[i]->is_cpu || kvt__local_cpu_stores(sn->bk[i]->state);
    kvt__snap_put(sn);
    if (!stores)
        kvt__log(&s->log, KVT_LOG_WARN, "store",
                 "event=nothing_stored reason=\"no tier stores chunks (max_local_cpu_size is 0 "
                 "or local_cpu is false, and no other tier is configured): puts return "
                 "KVT_ENOTIER\"");
}

static void log_config_notices(kvt_store *s)
{
    for (size_t i = 0, n = kvt__conf_notice_count(s->cfg); i < n; i++) {
        kvt_log_level level = KVT_LOG_INFO;
        const char *msg = kvt__conf_notice(s->cfg, i, &level);
        kvt__log(&s->log, level, "config", "%s", msg);
    }
}

int kvt_store_open(const kvt_config *cfg, const kvt_log_handler *log, kvt_store **out)
{
    pthread_rwlockattr_t attr;
    kvt_store *s;
    int rc;

    NEED(out, "kvt_store_open", "out is NULL");
    *out = NULL;
    NEED(cfg, "kvt_store_open", "config is NULL");
    if (!(s = calloc(1, sizeof *s)))
        return kvt__fail(KVT_ENOMEM, "cannot allocate store");
    /* Writer preference: a stream of data-path readers must not starve the admin. */
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&s->reg_lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    pthread_mutex_init(&s->mgmt, NULL);
    pthread_mutex_init(&s->health_mu, NULL);
    kvt__cond_init_monotonic(&s->health_cv);
    s->log = log ? *log : (kvt_log_handler){.fn = NULL, .ud = NULL, .min_level = KVT_LOG_INFO};
    rc = kvt_config_dup(cfg, &s->cfg);
    if (rc == KVT_OK)
        rc = copy_settings(s);
    if (rc == KVT_OK)
        rc = open_pool(s);
    if (rc == KVT_OK && !(s->snap = calloc(1, sizeof *s->snap)))
        rc = kvt__fail(KVT_ENOMEM, "cannot allocate registry snapshot");
    if (rc == KVT_OK) {
        atomic_init(&s->snap->refs, 1);
        log_config_notices(s);
        rc = kvt_backends_create(s, NULL, 0, NULL);
    }
    if (rc == KVT_OK)
        rc = health_start(s);
    if (rc != KVT_OK) {
        char detail[512]; /* closing what was made must not overwrite the reason */
        kvt__strlcpy(detail, kvt_last_error(), sizeof detail);
        if (s->snap)
            kvt__registry_close_all(s);
        store_free(s);
        return kvt__fail(rc, "%s", detail);
    }
    kvt__log(&s->log, KVT_LOG_INFO, "store", "event=store_opened version=%s", KVT_VERSION);
    warn_if_nothing_stored(s);
    *out = s;
    return KVT_OK;
}

int kvt_store_close(kvt_store *s)
{
    if (!s)
        return KVT_OK;
    health_stop(s);
    int rc = kvt_flush(s, atomic_load(&s->close_timeout_ms));
    kvt__registry_close_all(s);
    kvt__log(&s->log, KVT_LOG_INFO, "store", "event=store_closed flush=%s", kvt_status_name(rc));
    store_free(s);
    return KVT_OK;
}

/* ------------------------------------------------------------------ put */

static bool bit(uint32_t mask, size_t i) { return (mask >> i) & 1u; }

/* May tier i serve gets and lookups right now? (LMCache's get_active_storage_backends) */
static bool get_active(kvt_store *s, const kvt__snap *sn, size_t i)
{
    if (bit(sn->bypass, i) || bit(sn->no_get, i) || !kvt__breaker_allows(&sn->bk[i]->breaker))
        return false;
    return !atomic_load_explicit(&s->frozen, memory_order_relaxed) || sn->bk[i]->is_cpu;
}

static uint32_t chunk_tokens(const kvt_store *s, const kvt_chunk_meta *meta)
{
    return meta && meta->num_tokens ? meta->num_tokens : s->chunk_size;
}

/* Hands `obj` to one tier: the CPU tier synchronously, another through its queue (which
 * takes its own reference). KVT_OK when the tier took it. */
static int put_tier(kvt_store *s, kvt__bk *bk, const kvt_key *key, kvt_obj *obj,
                    const struct timespec *deadline)
{
    int rc;
    if (bk->is_cpu) {
        if (!kvt__local_cpu_stores(bk->state))
            return KVT_ENOTIER; /* allocator-only: takes nothing, fails nothing */
        rc = bk->ops->put(bk->state, key, obj);
        atomic_fetch_add(rc == KVT_OK ? &bk->puts : &bk->put_failures, 1);
        return rc;
    }
    kvt_obj_retain(obj);
    rc = kvt__wq_push(bk->wq, key, obj, deadline);
    if (rc == KVT_OK) {
        atomic_fetch_add(&s->st.wt_enqueued, 1);
        return KVT_OK;
    }
    kvt_obj_release(obj);
    atomic_fetch_add(&bk->skipped, 1);
    atomic_fetch_add(&s->st.wt_skipped, 1);
    return rc;
}

/* Stores the read-only `obj` in every put-active tier of `sn`, in tier order (so the CPU
 * copy never waits for a lower tier). One deadline for all queues: a put waits at most
 * write_queue_timeout_ms in total. */
static int commit(kvt_store *s, kvt__snap *sn, const kvt_key *key, kvt_obj *obj)
{
    struct timespec deadline = kvt__deadline(atomic_load(&s->wq_timeout_ms));
    int err = KVT_ENOTIER;
    size_t took = 0;

    atomic_store(&obj->readonly, true);
    for (size_t i = 0; i < sn->n; i++) {
        kvt__bk *bk = sn->bk[i];
        if (bit(sn->bypass, i) || bit(sn->no_put, i) || !kvt__breaker_allows(&bk->breaker) ||
            !kvt__bk_enter(bk))
            continue;
        int rc = put_tier(s, bk, key, obj, &deadline);
        kvt__bk_leave(bk);
        if (rc == KVT_OK)
            took++;
        else if (rc != KVT_ENOTIER && err == KVT_ENOTIER)
            err = rc;
    }
    if (took) {
        atomic_fetch_add(&s->st.stored_chunks, 1);
        atomic_fetch_add(&s->st.stored_tokens, chunk_tokens(s, &obj->meta));
        return KVT_OK;
    }
    atomic_fetch_add(&s->st.puts_unstored, 1);
    if (err == KVT_ENOTIER)
        return kvt__fail(KVT_ENOTIER, "no tier took the chunk: none is open to puts%s%s",
                         s->store_location[0] ? " (store_location is " : "",
                         s->store_location[0] ? s->store_location : "");
    if (err == KVT_ETIMEDOUT || err == KVT_ECLOSED)
        return kvt__fail(err, "no tier took the chunk: every write queue stayed full for "
                         "write_queue_timeout_ms or was closing");
    return err; /* the CPU tier's own failure, with its detail */
}

/* Counts a request; false when the store is frozen (LMCache's engine skips the store). */
static bool put_begin(kvt_store *s)
{
    atomic_fetch_add(&s->st.store_requests, 1);
    if (!atomic_load(&s->frozen))
        return true;
    atomic_fetch_add(&s->st.puts_frozen, 1);
    return false;
}

int kvt_put(kvt_store *s, const kvt_key *key, const void *data, size_t len,
            const kvt_chunk_meta *meta)
{
    kvt_chunk_meta m = meta ? *meta : (kvt_chunk_meta){0};
    kvt_obj *obj;

    NEED(s && key && data, "kvt_put", "store, key or data is NULL");
    NEED(len, "kvt_put", "length is 0 (a chunk holds at least one byte)");
    if (!put_begin(s))
        return KVT_OK;
    m.num_tokens = chunk_tokens(s, meta);
    kvt__snap *sn = kvt__snap_get(s);
    int rc = alloc_obj(sn, len, &m, &obj);
    if (rc == KVT_OK) {
        memcpy(obj->data, data, len);
        rc = commit(s, sn, key, obj);
        kvt_obj_release(obj);
    } else {
        atomic_fetch_add(&s->st.puts_unstored, 1);
    }
    kvt__snap_put(sn);
    return rc;
}

/* Plugs the write queues of sn's open tiers for a batch of puts: each worker then waits
 * for a whole batch (or the unplug) instead of taking the batch's first chunk alone, so
 * the batch reaches its tier as one batched_put with every request in flight. Not an
 * enter: a close need not wait for the whole call (sn's reference keeps each queue, and
 * a stopped queue ignores plugs). Returns the plugged tiers' bits. */
static uint32_t plug(kvt__snap *sn)
{
    uint32_t on = 0;
    for (size_t i = 0; i < sn->n; i++)
        if (sn->bk[i]->wq && !atomic_load(&sn->bk[i]->closing)) {
            kvt__wq_plug(sn->bk[i]->wq, true);
            on |= 1u << i;
        }
    return on;
}

static void unplug(kvt__snap *sn, uint32_t on)
{
    for (size_t i = 0; i < sn->n; i++)
        if (bit(on, i))
            kvt__wq_plug(sn->bk[i]->wq, false);
}

/* A put of the batch found no CPU room: the call's earlier chunks may still be queued (a
 * queued chunk cannot be evicted), more so while the plug holds them. So unplug, wait
 * (write_queue_timeout_ms at most) until every queue has written what it holds, and let
 * the caller try that put once more. */
static void drain_queues(kvt_store *s, kvt__snap *sn, uint32_t *plugged)
{
    uint64_t marks[KVT_MAX_BACKENDS] = {0};
    for (size_t i = 0; i < sn->n; i++)
        if (sn->bk[i]->wq)
            marks[i] = kvt__wq_mark(sn->bk[i]->wq);
    unplug(sn, *plugged);
    *plugged = 0;
    struct timespec deadline = kvt__deadline(atomic_load(&s->wq_timeout_ms));
    for (size_t i = 0; i < sn->n; i++)
        if (sn->bk[i]->wq)
            kvt__wq_wait(sn->bk[i]->wq, marks[i], &deadline);
}

/* One batched call's chunks: kvt_batched_put's (data, lens, metas) or kvt_batched_put_obj's
 * (objs). */
struct put_batch {
    const kvt_key *keys;
    const void *const *data;
    const size_t *lens;
    const kvt_chunk_meta *metas;
    kvt_obj *const *objs;
};

static int put_one(kvt_store *s, const struct put_batch *b, size_t i)
{
    if (b->objs)
        return kvt_put_obj(s, &b->keys[i], b->objs[i]);
    return kvt_put(s, &b->keys[i], b->data[i], b->lens[i], b->metas ? &b->metas[i] : NULL);
}

/* Stores b's n chunks in order with the queues plugged, stopping at the first failure; a
 * chunk without CPU room is tried again once the queues are drained. */
static int put_all(kvt_store *s, size_t n, const struct put_batch *b, size_t *stored)
{
    int rc = KVT_OK;
    size_t i = 0;
    kvt__snap *sn = kvt__snap_get(s);
    uint32_t plugged = n > 1 ? plug(sn) : 0;
    for (; i < n && rc == KVT_OK; i++)
        if ((rc = put_one(s, b, i)) == KVT_ENOMEM) {
            drain_queues(s, sn, &plugged);
            rc = put_one(s, b, i);
        }
    unplug(sn, plugged);
    kvt__snap_put(sn);
    if (stored)
        *stored = rc == KVT_OK ? n : i - 1;
    return rc;
}

int kvt_batched_put(kvt_store *s, size_t n, const kvt_key keys[], const void *const data[],
                    const size_t lens[], const kvt_chunk_meta *metas, size_t *stored)
{
    if (stored)
        *stored = 0;
    NEED(s && (!n || (keys && data && lens)), "kvt_batched_put", "store, keys, data or lens is NULL");
    return put_all(s, n, &(struct put_batch){keys, data, lens, metas, NULL}, stored);
}

int kvt_batched_put_obj(kvt_store *s, size_t n, const kvt_key keys[], kvt_obj *const objs[],
                        size_t *stored)
{
    if (stored)
        *stored = 0;
    NEED(s && (!n || (keys && objs)), "kvt_batched_put_obj", "store, keys or objs is NULL");
    return put_all(s, n, &(struct put_batch){.keys = keys, .objs = objs}, stored);
}

int kvt_obj_alloc(kvt_store *s, size_t size, const kvt_chunk_meta *meta, kvt_obj **out)
{
    NEED(out, "kvt_obj_alloc", "out is NULL");
    *out = NULL;
    NEED(s, "kvt_obj_alloc", "store is NULL");
    kvt__snap *sn = kvt__snap_get(s);
    int rc = alloc_obj(sn, size, meta, out);
    kvt__snap_put(sn);
    return rc;
}

int kvt_put_obj(kvt_store *s, const kvt_key *key, kvt_obj *obj)
{
    NEED(s && key && obj, "kvt_put_obj", "store, key or object is NULL");
    if (!put_begin(s))
        return KVT_OK;
    if (obj->meta.num_tokens == 0 && !atomic_load(&obj->readonly))
        obj->meta.num_tokens = s->chunk_size;
    kvt__snap *sn = kvt__snap_get(s);
    int rc = commit(s, sn, key, obj);
    kvt__snap_put(sn);
    return rc;
}

/* ------------------------------------------------------------------ get */

/* The invalidation generation a read starts under, for promote(). While a remove or clear
 * is in progress it is one that never matches: such a read may find the chunk in a tier the
 * remove has not reached yet, and must not put it back into one it already cleared. The
 * generation is read before the count, the reverse of the order invalidate() bumps them. */
static uint64_t read_gen(kvt_store *s)
{
    uint64_t gen = atomic_load(&s->inval_gen);
    return atomic_load(&s->inval_busy) ? UINT64_MAX : gen;
}

static bool cpu_bypassed(const kvt__snap *sn)
{
    for (size_t i = 0; i < sn->n; i++)
        if (sn->bk[i] == sn->cpu)
            return bit(sn->bypass, i);
    return false;
}

/* Copies a hit from a lower tier into the CPU tier, unless a remove or clear ran since the
 * read began (`gen`): a removed chunk must not come back. Pool objects (kvt_backend_alloc)
 * are inserted as they are; others are copied. Best effort. */
static void promote(kvt_store *s, kvt__snap *sn, const kvt_key *key, kvt_obj *obj, uint64_t gen)
{
    kvt__bk *cpu = sn->cpu;
    if (!cpu || cpu_bypassed(sn) || !kvt__bk_enter(cpu)) /* bypassed: it takes no puts */
        return;
    if (kvt__local_cpu_stores(cpu->state) &&
        kvt__local_cpu_promote(cpu->state, key, obj, &s->inval_gen, gen) == KVT_OK)
        atomic_fetch_add(&s->st.promotions, 1);
    kvt__bk_leave(cpu);
}

/* A caller buffer a read may land in when the CPU tier cannot stage it. */
struct into {
    void *buf;
    size_t cap, len;
    bool direct; /* the tier read straight into buf */
};

static int call_get(kvt__bk *bk, const kvt_key *key, kvt_obj **out)
{
    *out = NULL;
    int rc = bk->ops->get(bk->state, key, out);
    if (rc == KVT_OK && !*out)
        rc = kvt__fail(KVT_EIO, "%s returned no object for a hit", bk->name);
    if (rc != KVT_OK && *out) { /* a failing get that left an object: do not leak it */
        kvt_obj_release(*out);
        *out = NULL;
    }
    return rc;
}

/* Would the CPU tier keep a promoted read? Not when it is absent, bypassed or
 * allocator-only (local_cpu: false). */
static bool cpu_keeps_reads(kvt__snap *sn)
{
    kvt__bk *cpu = sn->cpu;
    if (!cpu || cpu_bypassed(sn) || !kvt__bk_enter(cpu))
        return false;
    bool keeps = kvt__local_cpu_stores(cpu->state);
    kvt__bk_leave(cpu);
    return keeps;
}

/* The tier's get_into slot into `into`'s buffer. */
static int read_into(kvt__bk *bk, const kvt_key *key, struct into *into)
{
    int rc = bk->ops->get_into(bk->state, key, into->buf, into->cap, &into->len);
    into->direct = rc == KVT_OK || rc == KVT_ETOOSMALL;
    return rc;
}

/* Reads `key` from tier i. KVT_OK with `*out` (read-only, promoted unless unstaged), or,
 * with `into->direct`, the bytes already in into->buf: the tier's get_into slot is used
 * when no CPU tier would keep the read, and when the CPU tier has no room to stage it
 * (KVT_ENOMEM; without the slot, through a heap buffer). Those reads are not promoted. */
static int tier_get(kvt_store *s, kvt__snap *sn, size_t i, const kvt_key *key, uint64_t gen,
                    kvt_obj **out, struct into *into)
{
    kvt__bk *bk = sn->bk[i];
    bool unstaged = false;
    *out = NULL;
    if (!get_active(s, sn, i) || !kvt__bk_enter(bk))
        return KVT_ENOENT;
    /* A read nobody will keep goes straight into the caller's buffer: no staging copy. */
    bool direct = into && !bk->is_cpu && KVT_BACKEND_OPS_HAS(bk->ops, get_into) &&
                  !cpu_keeps_reads(sn);
    int rc = direct ? read_into(bk, key, into) : call_get(bk, key, out);
    if (rc == KVT_ENOMEM && !bk->is_cpu && !direct) {
        unstaged = true;
        if (into && KVT_BACKEND_OPS_HAS(bk->ops, get_into)) {
            rc = read_into(bk, key, into);
        } else {
            heap_reads = true;
            rc = call_get(bk, key, out);
            heap_reads = false;
        }
    }
    kvt__bk_leave(bk);
    kvt__bk_result(bk, rc);
    bool hit = rc == KVT_OK || (into && into->direct);
    atomic_fetch_add(hit ? &bk->hits : &bk->misses, 1);
    if (unstaged && hit)
        atomic_fetch_add(&s->st.get_unstaged, 1);
    if (*out) {
        atomic_store(&(*out)->readonly, true);
        if (!bk->is_cpu && !unstaged)
            promote(s, sn, key, *out, gen);
    }
    return rc;
}

static void count_retrieved(kvt_store *s, const kvt_chunk_meta *meta)
{
    atomic_fetch_add(&s->st.retrieved_chunks, 1);
    atomic_fetch_add(&s->st.retrieved_tokens, chunk_tokens(s, meta));
}

int kvt_get(kvt_store *s, const kvt_key *key, kvt_obj **out)
{
    kvt_obj *obj = NULL;
    NEED(out, "kvt_get", "out is NULL");
    *out = NULL;
    NEED(s && key, "kvt_get", "store or key is NULL");
    atomic_fetch_add(&s->st.retrieve_requests, 1);
    uint64_t gen = read_gen(s);
    kvt__snap *sn = kvt__snap_get(s);
    for (size_t i = 0; i < sn->n && !obj; i++)
        tier_get(s, sn, i, key, gen, &obj, NULL);
    kvt__snap_put(sn);
    if (!obj)
        return kvt__fail(KVT_ENOENT, "key not stored in any active tier");
    count_retrieved(s, &obj->meta);
    *out = obj;
    return KVT_OK;
}

/* Delivers a hit of tier_get() into `in`'s buffer; sets in->len. */
static int deliver(struct into *in, kvt_obj *obj, int rc)
{
    if (obj) {
        in->len = obj->size;
        rc = obj->size > in->cap ? KVT_ETOOSMALL : KVT_OK;
        if (rc == KVT_OK)
            memcpy(in->buf, obj->data, obj->size);
        kvt_obj_release(obj);
    }
    if (rc == KVT_ETOOSMALL)
        return kvt__fail(rc, "chunk is %zu bytes, buffer %zu", in->len, in->cap);
    return rc;
}

/* kvt_get_into() of one key over the tiers of `sn`. */
static int get_into_snap(kvt_store *s, kvt__snap *sn, const kvt_key *key, uint64_t gen,
                         struct into *in, size_t first)
{
    for (size_t i = first; i < sn->n; i++) {
        kvt_obj *obj = NULL;
        int rc = tier_get(s, sn, i, key, gen, &obj, in);
        if (obj || in->direct)
            return deliver(in, obj, rc);
    }
    return kvt__fail(KVT_ENOENT, "key not stored in any active tier");
}

int kvt_get_into(kvt_store *s, const kvt_key *key, void *buf, size_t cap, size_t *len)
{
    struct into in = {buf, cap, 0, false};
    NEED(s && key && buf, "kvt_get_into", "store, key or buffer is NULL");
    atomic_fetch_add(&s->st.retrieve_requests, 1);
    uint64_t gen = read_gen(s);
    kvt__snap *sn = kvt__snap_get(s);
    int rc = get_into_snap(s, sn, key, gen, &in, 0);
    kvt__snap_put(sn);
    if (len && (rc == KVT_OK || rc == KVT_ETOOSMALL))
        *len = in.len;
    if (rc == KVT_OK) {
        atomic_fetch_add(&s->st.retrieved_chunks, 1);
        atomic_fetch_add(&s->st.retrieved_tokens, s->chunk_size);
    }
    return rc;
}

/* A batched get's request and its scratch: the caller's arrays, and for the tier at hand
 * the keys still missing (`idx[0..m)`) gathered into contiguous arrays. */
struct batch {
    const kvt_key *keys;
    void *const *bufs;
    const size_t *caps;
    size_t *lens;
    int *statuses;
    size_t m, *idx;
    kvt_key *tkeys;
    kvt_obj **objs;
    void **tbufs;
    size_t *tcaps, *tlens;
    int *sts;
};

static void batch_free(struct batch *b)
{
    free(b->idx);
    free(b->tkeys);
    free(b->objs);
    free(b->tbufs);
    free(b->tcaps);
    free(b->tlens);
    free(b->sts);
}

static int batch_alloc(struct batch *b, size_t n)
{
    const size_t per = sizeof(size_t) * 3 + sizeof(kvt_key) + sizeof(void *) * 2 + sizeof(int);
    if (n > SIZE_MAX / per)
        return kvt__fail(KVT_EINVAL, "kvt_batched_get_into: %zu keys is too many", n);
    b->idx = malloc(n * sizeof *b->idx + 1);
    b->tkeys = malloc(n * sizeof *b->tkeys + 1);
    b->objs = malloc(n * sizeof *b->objs + 1);
    b->tbufs = malloc(n * sizeof *b->tbufs + 1);
    b->tcaps = malloc(n * sizeof *b->tcaps + 1);
    b->tlens = malloc(n * sizeof *b->tlens + 1);
    b->sts = malloc(n * sizeof *b->sts + 1);
    if (b->idx && b->tkeys && b->objs && b->tbufs && b->tcaps && b->tlens && b->sts)
        return KVT_OK;
    return kvt__fail(KVT_ENOMEM, "cannot allocate a batch of %zu keys", n);
}

/* Records the outcome of key k: its status and, for a hit or a short buffer, its length. */
static void batch_set(struct batch *b, size_t k, int status, size_t len)
{
    b->statuses[k] = status;
    if (b->lens && (status == KVT_OK || status == KVT_ETOOSMALL))
        b->lens[k] = len;
}

/* Enters tier i for a batch and gathers the missing keys; false when it is not active. */
static bool batch_enter(kvt_store *s, kvt__snap *sn, size_t i, struct batch *b)
{
    if (!get_active(s, sn, i) || !kvt__bk_enter(sn->bk[i]))
        return false;
    for (size_t j = 0; j < b->m; j++) {
        size_t k = b->idx[j];
        b->tkeys[j] = b->keys[k];
        b->tbufs[j] = b->bufs[k];
        b->tcaps[j] = b->caps[k];
        b->tlens[j] = 0;
        b->objs[j] = NULL;
        b->sts[j] = KVT_ENOENT;
    }
    return true;
}

/* Counts one batch call's results with the tier's breaker and hit counters: one failure
 * when the whole call failed (`brc`), else one result per key. */
static void batch_count(kvt__bk *bk, struct batch *b, int brc)
{
    if (brc != KVT_OK) {
        for (size_t j = 0; j < b->m; j++)
            b->sts[j] = KVT_EIO;
        kvt__bk_result(bk, brc);
    }
    for (size_t j = 0; j < b->m; j++) {
        bool hit = b->sts[j] == KVT_OK || b->sts[j] == KVT_ETOOSMALL;
        if (brc == KVT_OK)
            kvt__bk_result(bk, b->sts[j]);
        if (b->sts[j] != KVT_ENOMEM)
            atomic_fetch_add(hit ? &bk->hits : &bk->misses, 1);
    }
}

/* Reads nobody keeps, straight into the caller's buffers (the batched_get_into slot). */
static void batch_into_tier(kvt__snap *sn, size_t i, struct batch *b)
{
    kvt__bk *bk = sn->bk[i];
    int brc = bk->ops->batched_get_into(bk->state, b->m, b->tkeys, b->tbufs, b->tcaps, b->tlens,
                                        b->sts);
    kvt__bk_leave(bk);
    batch_count(bk, b, brc);
    for (size_t j = 0; j < b->m; j++)
        if (b->sts[j] == KVT_OK || b->sts[j] == KVT_ETOOSMALL)
            batch_set(b, b->idx[j], b->sts[j], b->tlens[j]);
}

/* Reads staged in pool objects (the batched_get slot): hits are promoted and copied out;
 * a read the CPU tier has no room for is redone alone through tier_get(). */
static void batch_objs_tier(kvt_store *s, kvt__snap *sn, size_t i, uint64_t gen, struct batch *b)
{
    kvt__bk *bk = sn->bk[i];
    int brc = bk->ops->batched_get(bk->state, b->m, b->tkeys, b->objs, b->sts);
    kvt__bk_leave(bk);
    batch_count(bk, b, brc);
    for (size_t j = 0; j < b->m; j++) {
        size_t k = b->idx[j];
        struct into in = {b->bufs[k], b->caps[k], 0, false};
        kvt_obj *obj = b->sts[j] == KVT_OK ? b->objs[j] : NULL;
        if (!obj && b->objs[j])
            kvt_obj_release(b->objs[j]);
        if (obj) {
            atomic_store(&obj->readonly, true);
            if (!bk->is_cpu)
                promote(s, sn, &b->keys[k], obj, gen);
            int rc = deliver(&in, obj, KVT_OK);
            batch_set(b, k, rc, in.len);
        } else if (b->sts[j] == KVT_ENOMEM) {
            kvt_obj *one = NULL;
            int rc = tier_get(s, sn, i, &b->keys[k], gen, &one, &in);
            if (one || in.direct) {
                rc = deliver(&in, one, rc);
                batch_set(b, k, rc, in.len);
            }
        }
    }
}

/* No batch slot: one by one, in this tier only. */
static void batch_each_tier(kvt_store *s, kvt__snap *sn, size_t i, uint64_t gen, struct batch *b)
{
    for (size_t j = 0; j < b->m; j++) {
        size_t k = b->idx[j];
        struct into in = {b->bufs[k], b->caps[k], 0, false};
        kvt_obj *obj = NULL;
        int rc = tier_get(s, sn, i, &b->keys[k], gen, &obj, &in);
        if (obj || in.direct) {
            rc = deliver(&in, obj, rc);
            batch_set(b, k, rc, in.len);
        }
    }
}

int kvt_batched_get_into(kvt_store *s, size_t n, const kvt_key keys[], void *const bufs[],
                         const size_t caps[], size_t lens[], int statuses[], size_t *hits)
{
    struct batch b = {keys, bufs, caps, lens, statuses, 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    size_t nhit = 0;
    if (hits)
        *hits = 0;
    NEED(s && (!n || (keys && bufs && caps && statuses)), "kvt_batched_get_into",
         "store, keys, bufs, caps or statuses is NULL");
    int rc = batch_alloc(&b, n);
    for (size_t k = 0; k < n; k++)
        statuses[k] = bufs[k] ? KVT_ENOENT : KVT_EINVAL;
    atomic_fetch_add(&s->st.retrieve_requests, n);
    uint64_t gen = read_gen(s);
    kvt__snap *sn = kvt__snap_get(s);
    for (size_t i = 0; rc == KVT_OK && i < sn->n; i++) {
        const struct kvt_backend_ops *ops = sn->bk[i]->ops;
        b.m = 0;
        for (size_t k = 0; k < n; k++)
            if (statuses[k] == KVT_ENOENT)
                b.idx[b.m++] = k;
        if (b.m == 0)
            break;
        bool into = KVT_BACKEND_OPS_HAS(ops, batched_get_into) && !sn->bk[i]->is_cpu &&
                    !cpu_keeps_reads(sn);
        if (!into && !KVT_BACKEND_OPS_HAS(ops, batched_get))
            batch_each_tier(s, sn, i, gen, &b);
        else if (!batch_enter(s, sn, i, &b))
            continue;
        else if (into) /* both leave the tier batch_enter entered */
            batch_into_tier(sn, i, &b);
        else
            batch_objs_tier(s, sn, i, gen, &b);
    }
    kvt__snap_put(sn);
    for (size_t k = 0; rc == KVT_OK && k < n; k++)
        nhit += statuses[k] == KVT_OK;
    atomic_fetch_add(&s->st.retrieved_chunks, nhit);
    atomic_fetch_add(&s->st.retrieved_tokens, nhit * s->chunk_size);
    if (hits)
        *hits = nhit;
    batch_free(&b);
    return rc;
}

int kvt_contains(kvt_store *s, const kvt_key *key, const char **tier)
{
    const char *found = NULL;
    if (tier)
        *tier = NULL;
    NEED(s && key, "kvt_contains", "store or key is NULL");
    kvt__snap *sn = kvt__snap_get(s);
    for (size_t i = 0; i < sn->n && !found; i++) {
        kvt__bk *bk = sn->bk[i];
        if (!get_active(s, sn, i) || !kvt__bk_enter(bk))
            continue;
        int r = bk->ops->contains(bk->state, key);
        kvt__bk_leave(bk);
        kvt__bk_result(bk, r < 0 ? r : KVT_OK);
        if (r == 1)
            found = bk->ops->type_name;
    }
    kvt__snap_put(sn);
    if (tier)
        *tier = found;
    return found ? KVT_OK : kvt__fail(KVT_ENOENT, "key not stored in any active tier");
}

/* ------------------------------------------------------------------ lookup, pins */

struct pin_item {
    kvt__bk *bk; /* referenced */
    kvt_key key;
    uint64_t id; /* CPU tier entry id; 0 for other tiers */
};

struct kvt_pin {
    size_t n;
    struct pin_item items[];
};

/* Counts tier bk's run from keys[0], pinning it into `pin` when given. */
static size_t tier_prefix(kvt__bk *bk, const kvt_key *keys, size_t n, struct kvt_pin *pin,
                          uint64_t *ids)
{
    size_t hit = 0;
    if (pin && bk->is_cpu) {
        hit = kvt__local_cpu_pin_prefix(bk->state, keys, n, ids);
    } else if (KVT_BACKEND_OPS_HAS(bk->ops, count_prefix)) {
        bool can_pin = pin && KVT_BACKEND_OPS_HAS(bk->ops, unpin);
        hit = bk->ops->count_prefix(bk->state, keys, n, can_pin);
        if (!can_pin)
            pin = NULL;
        for (size_t i = 0; pin && i < hit; i++)
            ids[i] = 0;
    } else {
        while (hit < n && bk->ops->contains(bk->state, &keys[hit]) == 1)
            hit++;
        pin = NULL;
    }
    for (size_t i = 0; pin && i < hit; i++) {
        kvt__bk_ref(bk);
        pin->items[pin->n++] = (struct pin_item){bk, keys[i], ids[i]};
    }
    return hit;
}

int kvt_lookup_prefix(kvt_store *s, const kvt_key keys[], size_t n, size_t *hits,
                      kvt_tier_span *spans, size_t max_spans, size_t *nspans, kvt_pin **pin)
{
    size_t pos = 0, k = 0;
    struct kvt_pin *p = NULL;
    uint64_t *ids = NULL;
    if (pin)
        *pin = NULL;
    if (nspans)
        *nspans = 0;
    NEED(s && hits && (keys || !n) && (spans || !max_spans), "kvt_lookup_prefix",
         "store, keys, spans or hits is NULL");
    *hits = 0;
    if (pin && n) {
        if (n > (SIZE_MAX - sizeof *p) / (sizeof p->items[0] + sizeof *ids))
            return kvt__fail(KVT_EINVAL, "kvt_lookup_prefix: %zu keys is too many to pin", n);
        p = malloc(sizeof *p + n * sizeof p->items[0]);
        ids = malloc(n * sizeof *ids);
        if (!p || !ids) {
            free(p);
            free(ids);
            return kvt__fail(KVT_ENOMEM, "cannot allocate a pin handle of %zu keys", n);
        }
        p->n = 0;
    }
    atomic_fetch_add(&s->st.lookup_requests, 1);
    kvt__snap *sn = kvt__snap_get(s);
    for (size_t i = 0; i < sn->n && pos < n; i++) {
        kvt__bk *bk = sn->bk[i];
        if (!get_active(s, sn, i) || !kvt__bk_enter(bk))
            continue;
        size_t hit = tier_prefix(bk, keys + pos, n - pos, p, ids);
        kvt__bk_leave(bk);
        if (hit == 0)
            continue;
        if (k < max_spans)
            spans[k] = (kvt_tier_span){bk->ops->type_name, pos, hit};
        k++;
        pos += hit;
    }
    kvt__snap_put(sn);
    free(ids);
    atomic_fetch_add(&s->st.lookup_keys, n);
    atomic_fetch_add(&s->st.lookup_hits, pos);
    *hits = pos;
    if (nspans)
        *nspans = k;
    if (p && p->n == 0) {
        free(p);
        p = NULL;
    }
    if (pin)
        *pin = p;
    return KVT_OK;
}

int kvt_unpin(kvt_store *s, kvt_pin *pin)
{
    NEED(s, "kvt_unpin", "store is NULL");
    if (!pin)
        return KVT_OK;
    for (size_t i = 0; i < pin->n; i++) {
        struct pin_item *it = &pin->items[i];
        if (kvt__bk_enter(it->bk)) { /* a closed tier took its pins with it */
            if (it->bk->is_cpu)
                kvt__local_cpu_unpin_id(it->bk->state, &it->key, it->id);
            else
                it->bk->ops->unpin(it->bk->state, &it->key);
            kvt__bk_leave(it->bk);
        }
        kvt__bk_unref(it->bk);
    }
    free(pin);
    return KVT_OK;
}

/* ------------------------------------------------------------------ remove, clear, flush */

/* Runs `fn` on every backend open now, active or draining, bypassed or not. Invalidation
 * comes first: the generation bump stops promotions of reads already in flight, and each
 * queue drops its pending writes of the key, so no write queued before the call brings
 * the chunk back. A write of the key already in progress is waited for up to
 * write_queue_timeout_ms (a healthy tier finishes), and a hung one is undone by the queue
 * worker when it returns; unrelated writes are never waited for. */
static void invalidate(kvt_store *s, const kvt_key *key, void (*fn)(kvt__bk *bk, void *ctx),
                       void *ctx)
{
    kvt__bk *bks[2 * KVT_MAX_BACKENDS];
    atomic_fetch_add(&s->inval_busy, 1); /* before the generation: see read_gen() */
    atomic_fetch_add(&s->inval_gen, 1);
    struct timespec deadline = kvt__deadline(atomic_load(&s->wq_timeout_ms));
    size_t n = kvt__open_backends(s, bks);
    for (size_t i = 0; i < n; i++) {
        kvt__bk *bk = bks[i];
        if (bk->wq) {
            size_t c = kvt__wq_cancel(bk->wq, key, &deadline);
            atomic_fetch_add(&bk->cancelled, c);
            atomic_fetch_add(&s->st.wt_cancelled, c);
        }
        if (kvt__bk_enter_any(bk)) {
            fn(bk, ctx);
            kvt__bk_leave(bk);
        }
        kvt__bk_unref(bk);
    }
    atomic_fetch_sub(&s->inval_busy, 1);
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
    if (removed)
        *removed = 0;
    NEED(s && key, "kvt_remove", "store or key is NULL");
    invalidate(s, key, remove_one, &c);
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
    if (tokens)
        *tokens = 0;
    NEED(s, "kvt_clear", "store is NULL");
    invalidate(s, NULL, clear_one, &c);
    if (tokens)
        *tokens = c.tokens;
    return c.rc;
}

int kvt_flush(kvt_store *s, int64_t timeout_ms)
{
    kvt__bk *bks[2 * KVT_MAX_BACKENDS];
    uint64_t marks[2 * KVT_MAX_BACKENDS];
    NEED(s, "kvt_flush", "store is NULL");
    struct timespec deadline = kvt__deadline(timeout_ms);
    size_t n = kvt__open_backends(s, bks);
    for (size_t i = 0; i < n; i++)
        marks[i] = bks[i]->wq ? kvt__wq_mark(bks[i]->wq) : 0;
    int rc = KVT_OK;
    for (size_t i = 0; i < n; i++) {
        if (rc == KVT_OK && bks[i]->wq && kvt__wq_wait(bks[i]->wq, marks[i], &deadline) != KVT_OK)
            rc = kvt__fail(KVT_ETIMEDOUT, "flush timed out after %lld ms: %s still has %zu "
                           "writes pending", (long long)timeout_ms, bks[i]->name,
                           kvt__wq_pending(bks[i]->wq));
        kvt__bk_unref(bks[i]);
    }
    return rc;
}

/* ------------------------------------------------------------------ state, stats, config */

int kvt_store_set_freeze(kvt_store *s, bool on)
{
    NEED(s, "kvt_store_set_freeze", "store is NULL");
    bool was = atomic_exchange(&s->frozen, on);
    if (was != on)
        kvt__log(&s->log, KVT_LOG_INFO, "store", "event=freeze on=%d", on);
    return KVT_OK;
}

bool kvt_store_frozen(kvt_store *s) { return s && atomic_load(&s->frozen); }

int kvt_store_get_stats(kvt_store *s, kvt_store_stats *out)
{
    NEED(s && out, "kvt_store_get_stats", "store or out is NULL");
#define LOAD(f) .f = atomic_load(&s->st.f)
    *out = (kvt_store_stats){
        LOAD(store_requests), LOAD(retrieve_requests), LOAD(lookup_requests),
        LOAD(stored_chunks),  LOAD(retrieved_chunks),  LOAD(promotions),
        LOAD(stored_tokens),  LOAD(retrieved_tokens),  LOAD(lookup_keys),
        LOAD(lookup_hits),    LOAD(wt_enqueued),       LOAD(wt_done),
        LOAD(wt_failed),      LOAD(wt_skipped),        LOAD(wt_cancelled),
        LOAD(puts_frozen),    LOAD(puts_unstored),     LOAD(get_unstaged),
    };
#undef LOAD
    return KVT_OK;
}

/* The settings that apply at once; mgmt held. */
static void refresh_runtime(kvt_store *s)
{
    static const struct {
        const char *key;
        size_t off;
    } live[] = {
        {"write_queue_timeout_ms", offsetof(kvt_store, wq_timeout_ms)},
        {"backend_close_timeout_ms", offsetof(kvt_store, close_timeout_ms)},
        {"breaker_failures", offsetof(kvt_store, breaker_failures)},
        {"breaker_backoff_ms", offsetof(kvt_store, breaker_backoff_ms)},
        {"breaker_backoff_max_ms", offsetof(kvt_store, breaker_backoff_max_ms)},
    };
    for (size_t i = 0; i < KVT__ARRAY_LEN(live); i++) {
        int64_t v = 0;
        if (kvt_config_get_int(s->cfg, live[i].key, &v) == KVT_OK)
            atomic_store((atomic_int_fast64_t *)((char *)s + live[i].off), v);
    }
}

int kvt_store_conf_update_if(kvt_store *s, uint64_t version, size_t n, const char *const keys[],
                             const char *const values[], size_t *bad_key)
{
    NEED(s && (!n || (keys && values)), "kvt_store_conf_update", "store, keys or values is NULL");
    pthread_mutex_lock(&s->mgmt);
    uint64_t now = atomic_load(&s->conf_version);
    int rc = version && version != now
                 ? kvt__fail(KVT_EBUSY, "config changed since version %llu (it is at %llu)",
                             (unsigned long long)version, (unsigned long long)now)
                 : kvt_config_patch(s->cfg, n, keys, values, true, bad_key);
    if (rc == KVT_OK) {
        refresh_runtime(s);
        atomic_fetch_add(&s->conf_version, 1);
    }
    pthread_mutex_unlock(&s->mgmt);
    if (rc == KVT_OK)
        for (size_t i = 0; i < n; i++)
            kvt__log(&s->log, KVT_LOG_INFO, "store", "event=config_changed key=%s", keys[i]);
    return rc;
}

int kvt_store_conf_update(kvt_store *s, size_t n, const char *const keys[],
                          const char *const values[], size_t *bad_key)
{
    return kvt_store_conf_update_if(s, 0, n, keys, values, bad_key);
}

uint64_t kvt_store_conf_version(kvt_store *s) { return s ? atomic_load(&s->conf_version) : 0; }

int kvt_store_conf_dup(kvt_store *s, kvt_config **out)
{
    NEED(out, "kvt_store_conf_dup", "out is NULL");
    *out = NULL;
    NEED(s, "kvt_store_conf_dup", "store is NULL");
    pthread_mutex_lock(&s->mgmt);
    int rc = kvt_config_dup(s->cfg, out);
    pthread_mutex_unlock(&s->mgmt);
    return rc;
}
