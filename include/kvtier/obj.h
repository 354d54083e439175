/* kvtier — chunk objects: what an engine and a tier author both hold.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef KVTIER_OBJ_H
#define KVTIER_OBJ_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

/** LMCache's persisted chunk metadata (MemoryFormat, remote dtype code, 4-D shape). */
typedef struct kvt_chunk_meta {
    uint32_t fmt;        /**< 0 UNDEFINED, 1 KV_2LTD, ... 4 BINARY, 5 BINARY_BUFFER, 6 KV_MLA_FMT */
    uint32_t dtype_code; /**< 0 none, 2 float16, 3 bfloat16, 4 float32, ... */
    int32_t shape[4];
    uint32_t num_tokens; /**< tokens this chunk covers; 0 = the store's chunk_size */
} kvt_chunk_meta;

/** A reference-counted chunk. It is writable only by its creator until it is shared
 *  (committed with kvt_put_obj(), stored by a tier, or returned by a get); from then on
 *  its bytes never change, and whoever holds a reference may read them until they
 *  release it. */
typedef struct kvt_obj kvt_obj;

/** @return borrowed, valid while the caller holds a reference. Thread-safety: any thread. */
KVT_API const void *kvt_obj_data(const kvt_obj *obj);
/** Bytes of the chunk; 0 for NULL. */
KVT_API size_t kvt_obj_size(const kvt_obj *obj);
/** @return borrowed, like kvt_obj_data(); NULL for NULL. */
KVT_API const kvt_chunk_meta *kvt_obj_meta(const kvt_obj *obj);
/** Writable bytes, for the creator before the object is shared. NULL (with a
 *  kvt_last_error() detail) once it is read-only, or for NULL. */
KVT_API void *kvt_obj_data_mut(kvt_obj *obj);
/** Takes one more reference. NULL is a no-op. Thread-safety: any thread. */
KVT_API void kvt_obj_retain(kvt_obj *obj);
/** Drops one reference; the last one frees the object. NULL is a no-op.
 *  Thread-safety: any thread. */
KVT_API void kvt_obj_release(kvt_obj *obj);

#ifdef __cplusplus
}
#endif
#endif
