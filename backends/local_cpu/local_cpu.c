/* kvtier — LocalCPUBackend: tier 0, in memory.
 *
 * A hash index plus an LRU list over objects from a memory pool bounded by
 * max_local_cpu_size. The index holds one reference per object; eviction takes only
 * entries whose object nobody else references (refs == 1: no reader, no pending
 * write-through) and that nobody pinned. With local_cpu = false the tier stores nothing
 * and only lends its pool (LMCache's allocator-only mode). One mutex guards the index;
 * the pool has its own, always taken after it. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "src/store.h"

struct entry {
    kvt_key key;
    uint64_t hash;
    kvt_obj *obj;
    uint32_t pins;
    struct entry *hnext;      /* bucket chain */
    struct entry *prev, *next; /* LRU: lru.next is the least recently used */
};

struct lc {
    pthread_mutex_t mu;
    kvt__pool *pool;
    bool store;
    uint32_t evict_batch;
    struct entry **buckets;
    size_t nbuckets, count, pinned;
    struct entry lru;
    uint64_t evictions;
};

#define GiB (1024.0 * 1024.0 * 1024.0)

static void lru_unlink(struct entry *e)
{
    e->prev->next = e->next;
    e->next->prev = e->prev;
}

static void lru_push(struct lc *lc, struct entry *e)
{
    e->prev = lc->lru.prev;
    e->next = &lc->lru;
    lc->lru.prev->next = e;
    lc->lru.prev = e;
}

static struct entry **find_slot(struct lc *lc, const kvt_key *key, uint64_t h)
{
    struct entry **pp = &lc->buckets[h & (lc->nbuckets - 1)];
    while (*pp && !((*pp)->hash == h && kvt_key_equal(&(*pp)->key, key)))
        pp = &(*pp)->hnext;
    return pp;
}

static struct entry *find(struct lc *lc, const kvt_key *key)
{
    return *find_slot(lc, key, kvt_key_hash(key));
}

static void grow(struct lc *lc)
{
    size_t n = lc->nbuckets * 2;
    struct entry **b = calloc(n, sizeof *b);
    if (!b)
        return; /* longer chains, still correct */
    for (size_t i = 0; i < lc->nbuckets; i++) {
        for (struct entry *e = lc->buckets[i], *next; e; e = next) {
            next = e->hnext;
            e->hnext = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    }
    free(lc->buckets);
    lc->buckets = b;
    lc->nbuckets = n;
}

/* Unlinks `e` from the index and the LRU; the caller releases e->obj and frees e. */
static void unlink_entry(struct lc *lc, struct entry *e)
{
    struct entry **pp = find_slot(lc, &e->key, e->hash);
    *pp = e->hnext;
    lru_unlink(e);
    lc->count--;
    if (e->pins)
        lc->pinned--;
}

static void drop_entry(struct lc *lc, struct entry *e)
{
    unlink_entry(lc, e);
    kvt_obj_release(e->obj);
    free(e);
}

static bool evictable(const struct entry *e)
{
    return e->pins == 0 && kvt__obj_refs(e->obj) == 1;
}

/* Could evicting make room for `size` bytes? Checked first, so that a chunk that cannot
 * fit does not empty the tier on its way to failing. mu held. */
static bool can_make_room(struct lc *lc, size_t size)
{
    uint64_t need = kvt__pool_round(size), cap = kvt__pool_capacity(lc->pool);
    uint64_t room = cap - kvt__pool_used(lc->pool);
    if (need > cap)
        return false;
    for (struct entry *e = lc->lru.next; e != &lc->lru && room < need; e = e->next)
        if (evictable(e))
            room += e->obj->cap;
    return room >= need;
}

/* Evicts oldest-first, at most evict_batch entries per pass, until `size` bytes fit.
 * mu held, can_make_room() true: nothing can become unevictable meanwhile, since new
 * references are only taken under mu. */
static void make_room(struct lc *lc, size_t size)
{
    while (!kvt__pool_fits(lc->pool, size)) {
        size_t n = 0;
        for (struct entry *e = lc->lru.next, *next;
             e != &lc->lru && n < lc->evict_batch && !kvt__pool_fits(lc->pool, size); e = next) {
            next = e->next;
            if (evictable(e)) {
                drop_entry(lc, e);
                n++;
            }
        }
        lc->evictions += n;
    }
}

int kvt__local_cpu_alloc(void *state, size_t size, const kvt_chunk_meta *meta, kvt_obj **out)
{
    struct lc *lc = state;
    pthread_mutex_lock(&lc->mu);
    int rc = kvt__pool_alloc(lc->pool, size, meta, out);
    if (rc == KVT_ENOMEM && can_make_room(lc, size)) {
        make_room(lc, size);
        rc = kvt__pool_alloc(lc->pool, size, meta, out);
    } else if (rc == KVT_ENOMEM) {
        rc = kvt__fail(KVT_ENOMEM, "LocalCPUBackend is full: a %zu-byte chunk does not fit, even "
                       "after evicting every chunk not in use or pinned", size);
    }
    pthread_mutex_unlock(&lc->mu);
    return rc;
}

bool kvt__local_cpu_owns(void *state, const kvt_obj *obj)
{
    return obj->pool == ((struct lc *)state)->pool;
}

static bool lc_wanted(const kvt_config *cfg)
{
    double gib = 0;
    return kvt_config_get_float(cfg, "max_local_cpu_size", &gib) == KVT_OK && gib > 0;
}

/* max_local_cpu_size, lowered so that reserve_local_cpu_size GiB of the host's memory
 * stay outside the pool. */
static uint64_t capacity_bytes(double max_gib, double reserve_gib)
{
    uint64_t cap = (uint64_t)(max_gib * GiB);
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (reserve_gib > 0 && pages > 0 && page > 0) {
        double avail = (double)pages * (double)page - reserve_gib * GiB;
        if (avail < (double)cap)
            cap = avail > 0 ? (uint64_t)avail : 0;
    }
    return cap;
}

static int lc_create(const kvt_backend_env *env, const kvt_config *cfg, void **state)
{
    double gib = 0, reserve = 0;
    int64_t batch = 16;
    bool store = true;
    struct lc *lc;
    int rc = kvt_config_get_float(cfg, "max_local_cpu_size", &gib);
    if (rc == KVT_OK)
        rc = kvt_config_get_float(cfg, "reserve_local_cpu_size", &reserve);
    if (rc == KVT_OK)
        rc = kvt_config_get_bool(cfg, "local_cpu", &store);
    if (rc == KVT_OK)
        rc = kvt_config_get_int(cfg, "extra_config.local_cpu.evict_batch_candidates", &batch);
    if (rc != KVT_OK)
        return rc;
    if (!(lc = calloc(1, sizeof *lc)))
        return kvt__fail(KVT_ENOMEM, "cannot allocate LocalCPUBackend");
    lc->nbuckets = 1024;
    lc->buckets = calloc(lc->nbuckets, sizeof *lc->buckets);
    rc = lc->buckets ? kvt__pool_new(capacity_bytes(gib, reserve), &lc->pool)
                     : kvt__fail(KVT_ENOMEM, "cannot allocate LocalCPUBackend index");
    if (rc != KVT_OK) {
        free(lc->buckets);
        free(lc);
        return rc;
    }
    pthread_mutex_init(&lc->mu, NULL);
    lc->store = store;
    lc->evict_batch = (uint32_t)batch;
    lc->lru.next = lc->lru.prev = &lc->lru;
    kvt_backend_log(env, KVT_LOG_INFO, "event=created capacity_bytes=%llu local_cpu=%d",
                    (unsigned long long)kvt__pool_capacity(lc->pool), store);
    *state = lc;
    return KVT_OK;
}

static int lc_clear(void *state, uint64_t *tokens)
{
    struct lc *lc = state;
    pthread_mutex_lock(&lc->mu);
    while (lc->lru.next != &lc->lru) {
        struct entry *e = lc->lru.next;
        *tokens += e->obj->meta.num_tokens;
        drop_entry(lc, e);
    }
    pthread_mutex_unlock(&lc->mu);
    return KVT_OK;
}

static void lc_destroy(void *state)
{
    struct lc *lc = state;
    uint64_t tokens = 0;
    lc_clear(lc, &tokens);
    kvt__pool_close(lc->pool); /* objects still held by callers keep it alive */
    pthread_mutex_destroy(&lc->mu);
    free(lc->buckets);
    free(lc);
}

static int lc_put(void *state, const kvt_key *key, kvt_obj *obj)
{
    struct lc *lc = state;
    if (!lc->store)
        return KVT_OK;
    struct entry *e = malloc(sizeof *e);
    if (!e)
        return kvt__fail(KVT_ENOMEM, "cannot allocate LocalCPUBackend entry");
    e->key = *key;
    e->hash = kvt_key_hash(key);
    e->obj = obj;
    e->pins = 0;
    pthread_mutex_lock(&lc->mu);
    struct entry **pp = find_slot(lc, key, e->hash);
    if (*pp) { /* present: LMCache keeps the first copy */
        pthread_mutex_unlock(&lc->mu);
        free(e);
        return KVT_OK;
    }
    kvt_obj_retain(obj);
    e->hnext = NULL;
    *pp = e;
    lru_push(lc, e);
    if (++lc->count > lc->nbuckets)
        grow(lc);
    pthread_mutex_unlock(&lc->mu);
    return KVT_OK;
}

static int lc_get(void *state, const kvt_key *key, kvt_obj **out)
{
    struct lc *lc = state;
    pthread_mutex_lock(&lc->mu);
    struct entry *e = find(lc, key);
    if (e) {
        kvt_obj_retain(e->obj);
        lru_unlink(e);
        lru_push(lc, e);
        *out = e->obj;
    }
    pthread_mutex_unlock(&lc->mu);
    return e ? KVT_OK : KVT_ENOENT;
}

static int lc_contains(void *state, const kvt_key *key)
{
    struct lc *lc = state;
    pthread_mutex_lock(&lc->mu);
    bool found = find(lc, key) != NULL;
    pthread_mutex_unlock(&lc->mu);
    return found;
}

static int lc_remove(void *state, const kvt_key *key)
{
    struct lc *lc = state;
    pthread_mutex_lock(&lc->mu);
    struct entry *e = find(lc, key);
    if (e)
        drop_entry(lc, e);
    pthread_mutex_unlock(&lc->mu);
    return e ? KVT_OK : KVT_ENOENT;
}

static size_t lc_count_prefix(void *state, const kvt_key *keys, size_t n, bool pin)
{
    struct lc *lc = state;
    size_t i = 0;
    pthread_mutex_lock(&lc->mu);
    for (; i < n; i++) {
        struct entry *e = find(lc, &keys[i]);
        if (!e)
            break;
        if (pin && e->pins++ == 0)
            lc->pinned++;
    }
    pthread_mutex_unlock(&lc->mu);
    return i;
}

static int lc_unpin(void *state, const kvt_key *key)
{
    struct lc *lc = state;
    pthread_mutex_lock(&lc->mu);
    struct entry *e = find(lc, key);
    if (e && e->pins > 0 && --e->pins == 0)
        lc->pinned--;
    pthread_mutex_unlock(&lc->mu);
    return e ? KVT_OK : KVT_ENOENT;
}

static void lc_stats(void *state, kvt_backend_stats *out)
{
    struct lc *lc = state;
    pthread_mutex_lock(&lc->mu);
    out->objects = lc->count;
    out->evictions = lc->evictions;
    out->pinned = lc->pinned;
    pthread_mutex_unlock(&lc->mu);
    out->bytes_used = kvt__pool_used(lc->pool);
    out->capacity_bytes = kvt__pool_capacity(lc->pool);
}

const struct kvt_backend_ops kvt__local_cpu_ops = {
    .abi_version = KVT_BACKEND_ABI_VERSION,
    .struct_size = sizeof(struct kvt_backend_ops),
    .type_name = "LocalCPUBackend",
    .flags = 0,
    .wanted = lc_wanted,
    .create = lc_create,
    .destroy = lc_destroy,
    .put = lc_put,
    .get = lc_get,
    .contains = lc_contains,
    .remove = lc_remove,
    .clear = lc_clear,
    .count_prefix = lc_count_prefix,
    .unpin = lc_unpin,
    .stats = lc_stats,
};
