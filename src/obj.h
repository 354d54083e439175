/* kvtier — chunk objects and the CPU memory pool. Internal. */
#ifndef KVTIER_OBJ_H
#define KVTIER_OBJ_H

#include <stdatomic.h>

#include "internal.h"

#define KVT__ALIGN 4096u /* O_DIRECT-friendly: the disk tier writes pool buffers directly */

typedef struct kvt__pool kvt__pool;

struct kvt_obj {
    atomic_uint refs;
    void *data;
    size_t size;     /* bytes the caller asked for */
    size_t cap;      /* bytes allocated: size rounded up to KVT__ALIGN */
    kvt_chunk_meta meta;
    kvt__pool *pool; /* NULL: heap object */
};

/* A byte budget over 4096-aligned buffers. Freed buffers are kept for reuse by the
 * next allocation of the same rounded size (KV chunks of one model are all alike, so
 * this avoids page-faulting fresh memory on every put) as long as live + cached bytes
 * stay within the budget. Objects hold a pool reference, so a pool outlives the tier
 * that closed it until the last object is released. */
int kvt__pool_new(uint64_t capacity, kvt__pool **out);
/* Drops the owner's reference; cached buffers are freed now, live ones on release. */
void kvt__pool_close(kvt__pool *pool);
/* KVT_ENOMEM when the budget has no room for `size` more bytes; the caller evicts and retries. */
int kvt__pool_alloc(kvt__pool *pool, size_t size, const kvt_chunk_meta *meta, kvt_obj **out);
/* Bytes an allocation of `size` takes from the budget. */
uint64_t kvt__pool_round(size_t size);
/* Would an allocation of `size` bytes fit the budget now? */
bool kvt__pool_fits(kvt__pool *pool, size_t size);
uint64_t kvt__pool_used(kvt__pool *pool);
uint64_t kvt__pool_capacity(const kvt__pool *pool);

/* An object outside any budget (no CPU tier, or a backend's own buffers). */
int kvt__obj_heap_new(size_t size, const kvt_chunk_meta *meta, kvt_obj **out);

static inline unsigned kvt__obj_refs(const kvt_obj *obj)
{
    return atomic_load_explicit(&obj->refs, memory_order_acquire);
}

#endif
