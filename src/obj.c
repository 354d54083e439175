/* kvtier — chunk objects and the CPU memory pool. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "obj.h"

/* A cached free buffer keeps its own list link in its first bytes. */
struct free_buf {
    struct free_buf *next;
    size_t cap;
};

struct kvt__pool {
    pthread_mutex_t mu;
    atomic_uint refs; /* the owner + one per live object */
    uint64_t capacity;
    uint64_t used;    /* bytes of live objects */
    uint64_t cached;  /* bytes of free buffers kept for reuse */
    struct free_buf *free_list;
    pthread_mutex_t hook_mu; /* guards idle/idle_ud; taken before the tier's lock */
    kvt__idle_fn idle;
    void *idle_ud;
};

/* Buffer bytes for an object of n bytes: whole aligned blocks; 0 when n cannot be rounded
 * (a length from a corrupt header, SIZE_MAX) or is 0. */
static size_t alloc_size(size_t n)
{
    if (n == 0 || n > SIZE_MAX - (KVT__ALIGN - 1))
        return 0;
    return (n + KVT__ALIGN - 1) & ~(size_t)(KVT__ALIGN - 1);
}

static int bad_size(size_t n)
{
    return kvt__fail(KVT_EINVAL, "object size %zu is %s", n,
                     n ? "too large to allocate" : "0: chunks hold at least one byte");
}

static void obj_init(kvt_obj *obj, void *data, size_t size, size_t cap, const kvt_chunk_meta *meta,
                     kvt__pool *pool)
{
    atomic_init(&obj->refs, 1);
    atomic_init(&obj->readonly, false);
    atomic_init(&obj->indexed, false);
    obj->entry = NULL;
    obj->data = data;
    obj->size = size;
    obj->cap = cap;
    if (meta)
        obj->meta = *meta;
    else
        memset(&obj->meta, 0, sizeof obj->meta);
    obj->pool = pool;
}

int kvt__pool_new(uint64_t capacity, kvt__pool **out)
{
    kvt__pool *p = calloc(1, sizeof *p);
    *out = NULL;
    if (!p)
        return kvt__fail(KVT_ENOMEM, "cannot allocate memory pool");
    pthread_mutex_init(&p->mu, NULL);
    pthread_mutex_init(&p->hook_mu, NULL);
    atomic_init(&p->refs, 1);
    p->capacity = capacity;
    *out = p;
    return KVT_OK;
}

static void free_cached(kvt__pool *p, uint64_t need)
{
    while (p->free_list && p->used + p->cached + need > p->capacity) {
        struct free_buf *fb = p->free_list;
        p->free_list = fb->next;
        p->cached -= fb->cap;
        free(fb);
    }
}

static void pool_unref(kvt__pool *p)
{
    if (atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) != 1)
        return;
    p->capacity = 0;
    free_cached(p, 1);
    pthread_mutex_destroy(&p->mu);
    pthread_mutex_destroy(&p->hook_mu);
    free(p);
}

void kvt__pool_close(kvt__pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->capacity = 0; /* nothing more is cached */
    free_cached(p, 1);
    pthread_mutex_unlock(&p->mu);
    pool_unref(p);
}

static void *take_cached(kvt__pool *p, size_t cap)
{
    for (struct free_buf **pp = &p->free_list; *pp; pp = &(*pp)->next) {
        if ((*pp)->cap == cap) {
            struct free_buf *fb = *pp;
            *pp = fb->next;
            p->cached -= cap;
            return fb;
        }
    }
    return NULL;
}

int kvt__pool_alloc(kvt__pool *p, size_t size, const kvt_chunk_meta *meta, kvt_obj **out)
{
    size_t cap = alloc_size(size);
    kvt_obj *obj;
    void *buf;

    *out = NULL;
    if (!cap)
        return bad_size(size);
    if (!(obj = malloc(sizeof *obj)))
        return kvt__fail(KVT_ENOMEM, "cannot allocate object header");
    pthread_mutex_lock(&p->mu);
    if (cap > p->capacity || p->used > p->capacity - cap) {
        pthread_mutex_unlock(&p->mu);
        free(obj);
        return KVT_ENOMEM; /* the tier evicts and retries; its caller sets the detail */
    }
    buf = take_cached(p, cap);
    if (!buf) {
        free_cached(p, cap);
        if (posix_memalign(&buf, KVT__ALIGN, cap) != 0) {
            pthread_mutex_unlock(&p->mu);
            free(obj);
            return kvt__fail(KVT_ENOMEM, "cannot allocate %zu bytes", cap);
        }
    }
    p->used += cap;
    atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
    pthread_mutex_unlock(&p->mu);
    obj_init(obj, buf, size, cap, meta, p);
    *out = obj;
    return KVT_OK;
}

static void pool_free(kvt__pool *p, void *buf, size_t cap)
{
    pthread_mutex_lock(&p->mu);
    p->used -= cap;
    if (p->used + p->cached + cap <= p->capacity) {
        struct free_buf *fb = buf;
        fb->cap = cap;
        fb->next = p->free_list;
        p->free_list = fb;
        p->cached += cap;
        buf = NULL;
    }
    pthread_mutex_unlock(&p->mu);
    free(buf);
    pool_unref(p);
}

uint64_t kvt__pool_round(size_t size) { return alloc_size(size); }

uint64_t kvt__pool_used(kvt__pool *p)
{
    pthread_mutex_lock(&p->mu);
    uint64_t used = p->used;
    pthread_mutex_unlock(&p->mu);
    return used;
}

uint64_t kvt__pool_capacity(const kvt__pool *p) { return p->capacity; }

void kvt__pool_set_idle(kvt__pool *p, kvt__idle_fn fn, void *ud)
{
    pthread_mutex_lock(&p->hook_mu);
    if (fn || p->idle_ud == ud) {
        p->idle = fn;
        p->idle_ud = fn ? ud : NULL;
    }
    pthread_mutex_unlock(&p->hook_mu);
}

int kvt__obj_heap_new(size_t size, const kvt_chunk_meta *meta, kvt_obj **out)
{
    size_t cap = alloc_size(size);
    kvt_obj *obj;
    void *buf = NULL;

    *out = NULL;
    if (!cap)
        return bad_size(size);
    obj = malloc(sizeof *obj);
    if (!obj || posix_memalign(&buf, KVT__ALIGN, cap) != 0) {
        free(obj);
        return kvt__fail(KVT_ENOMEM, "cannot allocate %zu bytes", cap);
    }
    obj_init(obj, buf, size, cap, meta, NULL);
    *out = obj;
    return KVT_OK;
}

const void *kvt_obj_data(const kvt_obj *obj) { return obj ? obj->data : NULL; }
size_t kvt_obj_size(const kvt_obj *obj) { return obj ? obj->size : 0; }
const kvt_chunk_meta *kvt_obj_meta(const kvt_obj *obj) { return obj ? &obj->meta : NULL; }

void *kvt_obj_data_mut(kvt_obj *obj)
{
    if (!obj) {
        kvt__fail(KVT_EINVAL, "kvt_obj_data_mut: object is NULL");
        return NULL;
    }
    if (atomic_load(&obj->readonly)) {
        kvt__fail(KVT_EPERM, "object is read-only: it was committed or returned by a get");
        return NULL;
    }
    return obj->data;
}

void kvt_obj_retain(kvt_obj *obj)
{
    if (obj)
        atomic_fetch_add_explicit(&obj->refs, 1, memory_order_relaxed);
}

void kvt__obj_free(kvt_obj *obj)
{
    if (obj->pool)
        pool_free(obj->pool, obj->data, obj->cap);
    else
        free(obj->data);
    free(obj);
}

/* 2 -> 1 on an indexed object: through the tier's hook, which makes the entry evictable. */
static void release_to_index(kvt_obj *obj)
{
    kvt__pool *p = obj->pool; /* indexed objects are pool objects; ours keeps it alive */
    bool last;
    pthread_mutex_lock(&p->hook_mu);
    if (p->idle)
        last = p->idle(p->idle_ud, obj);
    else
        last = atomic_fetch_sub(&obj->refs, 1) == 1;
    pthread_mutex_unlock(&p->hook_mu);
    if (last)
        kvt__obj_free(obj);
}

/* A reference count can rise from 1 only under the CPU tier's lock (the index is then the
 * sole holder), so the hook sees every transition that makes an entry evictable. */
void kvt_obj_release(kvt_obj *obj)
{
    if (!obj)
        return;
    unsigned r = atomic_load(&obj->refs);
    for (;;) {
        if (r == 2 && atomic_load(&obj->indexed)) {
            release_to_index(obj);
            return;
        }
        if (atomic_compare_exchange_weak(&obj->refs, &r, r - 1)) {
            if (r == 1)
                kvt__obj_free(obj);
            return;
        }
    }
}
