/* kvtier — LocalCPUBackend: tier 0, in memory.
 *
 * A hash index over objects from the store's memory pool (bounded by
 * max_local_cpu_size). The index holds one reference per object. An entry is evictable
 * when nobody else references its object (no reader, no pending write-through) and nobody
 * pinned it; exactly the evictable entries sit on the LRU list, so eviction pops its head
 * in O(1) however many entries are pinned or held. Entries leave the list when a get takes
 * a reference or a pin is taken, and return to its tail (most recent) when the last
 * outside reference is released (the pool's idle hook, see src/obj.h) or the last pin is
 * dropped. With local_cpu = false the tier stores nothing and only lends the pool
 * (LMCache's allocator-only mode). Lock order: pool hook lock, then `mu`, then the pool. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "src/store.h"

struct entry {
    kvt_key key;
    uint64_t hash;
    uint64_t id; /* distinguishes a re-put entry from the one a pin handle names */
    kvt_obj *obj;
    uint32_t pins;
    bool in_lru;
    struct entry *hnext;       /* bucket chain */
    struct entry *prev, *next; /* LRU: lru.next is the least recently used */
};

struct lc {
    pthread_mutex_t mu;
    kvt__pool *pool; /* the store's; not ours to close */
    bool store;
    struct entry **buckets;
    size_t nbuckets, count, pinned;
    struct entry lru;
    uint64_t lru_bytes; /* bytes of the entries on the LRU list: what eviction can free */
    uint64_t evictions, next_id;
};

static void lru_unlink(struct lc *lc, struct entry *e)
{
    if (!e->in_lru)
        return;
    e->prev->next = e->next;
    e->next->prev = e->prev;
    e->in_lru = false;
    lc->lru_bytes -= e->obj->cap;
}

/* Appends `e` if it is evictable now. mu held: refs cannot rise from 1 meanwhile. */
static void lru_offer(struct lc *lc, struct entry *e)
{
    if (e->in_lru || e->pins || kvt__obj_refs(e->obj) != 1)
        return;
    e->prev = lc->lru.prev;
    e->next = &lc->lru;
    lc->lru.prev->next = e;
    lc->lru.prev = e;
    e->in_lru = true;
    lc->lru_bytes += e->obj->cap;
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

/* Unlinks `e` and un-indexes its object; the caller releases the returned object (outside
 * mu when others may hold it, since that release can free pool memory). mu held. */
static kvt_obj *unlink_entry(struct lc *lc, struct entry *e)
{
    kvt_obj *obj = e->obj;
    struct entry **pp = find_slot(lc, &e->key, e->hash);
    *pp = e->hnext;
    lru_unlink(lc, e);
    lc->count--;
    if (e->pins)
        lc->pinned--;
    atomic_store(&obj->indexed, false);
    obj->entry = NULL;
    free(e);
    return obj;
}

/* Evicts from the LRU head until `size` bytes fit or the list is empty. mu held. */
static void make_room(struct lc *lc, uint64_t need)
{
    uint64_t cap = kvt__pool_capacity(lc->pool);
    while (lc->lru.next != &lc->lru && kvt__pool_used(lc->pool) > cap - need) {
        /* refs == 1: the release frees the buffer back to the pool right here. */
        kvt_obj_release(unlink_entry(lc, lc->lru.next));
        lc->evictions++;
    }
}

int kvt__local_cpu_alloc(void *state, size_t size, const kvt_chunk_meta *meta, kvt_obj **out)
{
    struct lc *lc = state;
    uint64_t need = kvt__pool_round(size), cap = kvt__pool_capacity(lc->pool);
    pthread_mutex_lock(&lc->mu);
    int rc = kvt__pool_alloc(lc->pool, size, meta, out);
    /* Checked first, so that a chunk that cannot fit does not empty the tier on its way
     * to failing: only the LRU list's bytes can be freed. */
    if (rc == KVT_ENOMEM && need <= cap && kvt__pool_used(lc->pool) - lc->lru_bytes <= cap - need) {
        make_room(lc, need);
        rc = kvt__pool_alloc(lc->pool, size, meta, out);
    }
    pthread_mutex_unlock(&lc->mu);
    if (rc == KVT_ENOMEM && !*out)
        rc = kvt__fail(KVT_ENOMEM, "LocalCPUBackend is full: a %zu-byte chunk does not fit, even "
                       "after evicting every chunk not in use or pinned", size);
    return rc;
}

bool kvt__local_cpu_owns(void *state, const kvt_obj *obj)
{
    return obj->pool == ((struct lc *)state)->pool;
}

bool kvt__local_cpu_stores(void *state) { return ((struct lc *)state)->store; }

/* The pool's idle hook: the last outside reference of an indexed object goes. */
static bool lc_idle(void *ud, kvt_obj *obj)
{
    struct lc *lc = ud;
    pthread_mutex_lock(&lc->mu);
    bool last = atomic_fetch_sub(&obj->refs, 1) == 1;
    if (!last && atomic_load(&obj->indexed))
        lru_offer(lc, obj->entry);
    pthread_mutex_unlock(&lc->mu);
    return last;
}

static bool lc_wanted(const kvt_config *cfg)
{
    double gib = 0;
    return kvt_config_get_float(cfg, "max_local_cpu_size", &gib) == KVT_OK && gib > 0;
}

static int lc_create(const kvt_backend_env *env, const kvt_config *cfg, void **state)
{
    bool store = true;
    struct lc *lc;
    kvt__pool *pool = kvt__env_pool(env);
    int rc = kvt_config_get_bool(cfg, "local_cpu", &store);
    if (rc != KVT_OK)
        return rc;
    if (!pool)
        return kvt__fail(KVT_ECONFIG, "LocalCPUBackend needs max_local_cpu_size > 0");
    if (!(lc = calloc(1, sizeof *lc)))
        return kvt__fail(KVT_ENOMEM, "cannot allocate LocalCPUBackend");
    lc->nbuckets = 1024;
    if (!(lc->buckets = calloc(lc->nbuckets, sizeof *lc->buckets))) {
        free(lc);
        return kvt__fail(KVT_ENOMEM, "cannot allocate LocalCPUBackend index");
    }
    pthread_mutex_init(&lc->mu, NULL);
    lc->pool = pool;
    lc->store = store;
    lc->lru.next = lc->lru.prev = &lc->lru;
    kvt__pool_set_idle(pool, lc_idle, lc);
    kvt_backend_log(env, KVT_LOG_INFO, "event=created capacity_bytes=%llu local_cpu=%d",
                    (unsigned long long)kvt__pool_capacity(pool), store);
    *state = lc;
    return KVT_OK;
}

/* Un-indexes every entry; releases outside mu (readers may hold some of them). */
static uint64_t drop_all(struct lc *lc)
{
    uint64_t tokens = 0;
    size_t b = 0, nb = 0; /* buckets before b were emptied: a pass resumes there */
    for (;;) {
        kvt_obj *batch[256];
        size_t n = 0;
        pthread_mutex_lock(&lc->mu);
        if (lc->nbuckets != nb) /* grown by a concurrent put: entries moved, start over */
            b = 0, nb = lc->nbuckets;
        for (; b < lc->nbuckets && n < KVT__ARRAY_LEN(batch); b++)
            while (lc->buckets[b] && n < KVT__ARRAY_LEN(batch)) {
                tokens += lc->buckets[b]->obj->meta.num_tokens;
                batch[n++] = unlink_entry(lc, lc->buckets[b]);
            }
        if (n == KVT__ARRAY_LEN(batch) && b > 0)
            b--; /* the bucket that filled the batch may hold more */
        pthread_mutex_unlock(&lc->mu);
        for (size_t i = 0; i < n; i++)
            kvt_obj_release(batch[i]);
        if (n < KVT__ARRAY_LEN(batch))
            return tokens;
    }
}

static int lc_clear(void *state, uint64_t *tokens)
{
    *tokens += drop_all(state);
    return KVT_OK;
}

static void lc_destroy(void *state)
{
    struct lc *lc = state;
    kvt__pool_set_idle(lc->pool, NULL, lc); /* waits for a hook call in progress */
    drop_all(lc);
    pthread_mutex_destroy(&lc->mu);
    free(lc->buckets);
    free(lc);
}

/* Indexes `obj` (a pool object) under `key` unless present or *gen moved on. mu held. */
static int insert(struct lc *lc, const kvt_key *key, kvt_obj *obj, struct entry *e,
                  const atomic_uint_fast64_t *gen, uint64_t seen)
{
    uint64_t h = kvt_key_hash(key);
    struct entry **pp = find_slot(lc, key, h);
    if (*pp)
        return KVT_EEXIST; /* present: LMCache keeps the first copy */
    if (gen && atomic_load(gen) != seen)
        return KVT_ECLOSED; /* a remove or clear ran since this chunk was read */
    if (atomic_load(&obj->indexed))
        return KVT_EBUSY; /* one object, one entry: the idle hook follows a single entry */
    e->key = *key;
    e->hash = h;
    e->id = ++lc->next_id;
    e->obj = obj;
    e->pins = 0;
    e->in_lru = false;
    e->hnext = NULL;
    kvt_obj_retain(obj); /* refs >= 2: the caller holds one, so not evictable yet */
    atomic_store(&obj->readonly, true);
    obj->entry = e;
    atomic_store(&obj->indexed, true);
    *pp = e;
    if (++lc->count > lc->nbuckets)
        grow(lc);
    return KVT_OK;
}

/* A pool copy of `obj`, for an object the index cannot take as it is. */
static int copy_of(struct lc *lc, const kvt_obj *obj, kvt_obj **copy)
{
    int rc = kvt__local_cpu_alloc(lc, obj->size, &obj->meta, copy);
    if (rc == KVT_OK)
        memcpy((*copy)->data, obj->data, obj->size);
    return rc;
}

static int put_if(struct lc *lc, const kvt_key *key, kvt_obj *obj,
                  const atomic_uint_fast64_t *gen, uint64_t seen)
{
    kvt_obj *copy = NULL;
    int rc = KVT_OK;
    if (!lc->store)
        return KVT_OK;
    if (obj->pool != lc->pool) /* a heap object (made while no CPU tier was open) */
        rc = copy_of(lc, obj, &copy);
    struct entry *e = rc == KVT_OK ? malloc(sizeof *e) : NULL;
    if (rc == KVT_OK && !e)
        rc = kvt__fail(KVT_ENOMEM, "cannot allocate LocalCPUBackend entry");
    while (rc == KVT_OK) {
        pthread_mutex_lock(&lc->mu);
        rc = insert(lc, key, copy ? copy : obj, e, gen, seen);
        pthread_mutex_unlock(&lc->mu);
        if (rc != KVT_EBUSY || copy)
            break;
        rc = copy_of(lc, obj, &copy); /* the object is indexed under another key already */
    }
    if (rc != KVT_OK)
        free(e);
    kvt_obj_release(copy);
    return rc == KVT_EEXIST ? KVT_OK : rc;
}

static int lc_put(void *state, const kvt_key *key, kvt_obj *obj)
{
    return put_if(state, key, obj, NULL, 0);
}

int kvt__local_cpu_promote(void *state, const kvt_key *key, kvt_obj *obj,
                           const atomic_uint_fast64_t *gen, uint64_t seen)
{
    return put_if(state, key, obj, gen, seen);
}

static int lc_get(void *state, const kvt_key *key, kvt_obj **out)
{
    struct lc *lc = state;
    pthread_mutex_lock(&lc->mu);
    struct entry *e = find(lc, key);
    if (e) {
        lru_unlink(lc, e); /* referenced now; back at the tail once released */
        kvt_obj_retain(e->obj);
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
    kvt_obj *obj = NULL;
    pthread_mutex_lock(&lc->mu);
    struct entry *e = find(lc, key);
    if (e)
        obj = unlink_entry(lc, e);
    pthread_mutex_unlock(&lc->mu);
    kvt_obj_release(obj);
    return obj ? KVT_OK : KVT_ENOENT;
}

static size_t lc_count_prefix(void *state, const kvt_key *keys, size_t n, bool pin)
{
    (void)pin; /* pins go through kvt__local_cpu_pin_prefix(), which records who took them */
    struct lc *lc = state;
    size_t i = 0;
    pthread_mutex_lock(&lc->mu);
    while (i < n && find(lc, &keys[i]))
        i++;
    pthread_mutex_unlock(&lc->mu);
    return i;
}

size_t kvt__local_cpu_pin_prefix(void *state, const kvt_key *keys, size_t n, uint64_t *ids)
{
    struct lc *lc = state;
    size_t i = 0;
    pthread_mutex_lock(&lc->mu);
    for (; i < n; i++) {
        struct entry *e = find(lc, &keys[i]);
        if (!e)
            break;
        if (e->pins++ == 0) {
            lc->pinned++;
            lru_unlink(lc, e);
        }
        ids[i] = e->id;
    }
    pthread_mutex_unlock(&lc->mu);
    return i;
}

void kvt__local_cpu_unpin_id(void *state, const kvt_key *key, uint64_t id)
{
    struct lc *lc = state;
    pthread_mutex_lock(&lc->mu);
    struct entry *e = find(lc, key);
    if (e && e->id == id && e->pins > 0 && --e->pins == 0) {
        lc->pinned--;
        lru_offer(lc, e);
    }
    pthread_mutex_unlock(&lc->mu);
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
    .stats = lc_stats,
};
