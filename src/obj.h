/* kvtier — chunk objects and the store's CPU memory pool. Internal. */
#ifndef KVTIER_OBJ_INTERNAL_H
#define KVTIER_OBJ_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "internal.h"

#define KVT__ALIGN 4096u /* O_DIRECT-friendly: the disk tier writes pool buffers directly */

typedef struct kvt__pool kvt__pool;

struct kvt_obj {
    atomic_uint refs;
    atomic_bool readonly; /* set once the object is shared: data_mut refuses it */
    atomic_bool indexed;  /* held by the CPU tier's index (set and cleared under its lock) */
    void *entry;          /* the CPU tier's entry while indexed */
    void *data;
    size_t size;     /* bytes the caller asked for */
    size_t cap;      /* bytes allocated: size rounded up to KVT__ALIGN */
    kvt_chunk_meta meta;
    kvt__pool *pool; /* NULL: heap object */
};

/* A byte budget over 4096-aligned buffers, one per store: a recreated CPU tier counts the
 * objects its predecessor handed out. Freed buffers are kept for reuse by the next
 * allocation of the same rounded size (KV chunks of one model are all alike, so this
 * avoids page-faulting fresh memory on every put) as long as live + cached bytes stay
 * within the budget. Objects hold a pool reference, so a pool outlives its store until
 * the last object is released. */
int kvt__pool_new(uint64_t capacity, kvt__pool **out);
/* Drops the owner's reference; cached buffers are freed now, live ones on release. */
void kvt__pool_close(kvt__pool *pool);
/* KVT_ENOMEM (no detail) when the budget has no room for `size` more bytes: the caller
 * evicts and retries. KVT_EINVAL for a size of 0 or one that cannot be rounded. */
int kvt__pool_alloc(kvt__pool *pool, size_t size, const kvt_chunk_meta *meta, kvt_obj **out);
/* Bytes an allocation of `size` takes from the budget; 0 when it cannot be rounded. */
uint64_t kvt__pool_round(size_t size);
uint64_t kvt__pool_used(kvt__pool *pool);
uint64_t kvt__pool_capacity(const kvt__pool *pool);

/* The CPU tier's hook for indexed objects. Eviction takes only entries nobody but the
 * index references; to know when that becomes true without scanning, the release that
 * drops an indexed object from 2 references to 1 calls `idle` instead of decrementing
 * (under the pool's hook lock, so the tier cannot go away meanwhile). `idle` decrements
 * under the tier's own lock and returns true when it dropped the last reference (the
 * caller then frees the object). kvt__pool_set_idle(pool, NULL, ud) before the tier is
 * freed clears the hook if it is still ud's (a successor may have installed its own). */
typedef bool (*kvt__idle_fn)(void *ud, kvt_obj *obj);
void kvt__pool_set_idle(kvt__pool *pool, kvt__idle_fn fn, void *ud);
/* Frees an object whose last reference the idle hook dropped. */
void kvt__obj_free(kvt_obj *obj);

/* An object outside any budget (no CPU tier, or a read past a full one). */
int kvt__obj_heap_new(size_t size, const kvt_chunk_meta *meta, kvt_obj **out);

static inline unsigned kvt__obj_refs(const kvt_obj *obj)
{
    return atomic_load_explicit(&obj->refs, memory_order_acquire);
}

#endif
