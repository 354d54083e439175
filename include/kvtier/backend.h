/* kvtier — storage backend interface, for authors of a tier type.
 * SPDX-License-Identifier: Apache-2.0
 *
 * A backend *type* is a `struct kvt_backend_ops` table registered once; the store
 * creates *instances* of it from a config. The table opens with its ABI version and
 * its size in the author's build; slots are only ever appended, and the store calls
 * a slot only when the registered table is large enough to hold it and it is not NULL
 * (KVT_BACKEND_OPS_HAS). Bump KVT_BACKEND_ABI_VERSION in the commit that appends one. */
#ifndef KVTIER_BACKEND_H
#define KVTIER_BACKEND_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "key.h"
#include "obj.h"
#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KVT_BACKEND_ABI_VERSION 5u
#define KVT_NAME_MAX 64 /**< backend names, including the NUL */

typedef enum kvt_log_level {
    KVT_LOG_DEBUG = 0,
    KVT_LOG_INFO = 1,
    KVT_LOG_WARN = 2,
    KVT_LOG_ERROR = 3
} kvt_log_level;

/** What the store gives a backend instance: its name, buffers, logging. Opaque;
 *  valid from create() until destroy() returns. */
typedef struct kvt_backend_env kvt_backend_env;

/** Allocates a writable object of `size` bytes (4096-byte aligned) for a read, from the
 *  store's CPU pool when it has a CPU tier (evicting if needed), else from the heap.
 *  During a read that found the CPU tier full (kvt_get, kvt_get_into, a batched get), on
 *  the thread that runs the backend's get(), it comes from the heap instead. KVT_ENOMEM when there is no room,
 *  KVT_EINVAL for a size of 0 or one that cannot be rounded to 4096 (a length read from a
 *  corrupt header takes this path). @param meta copied; NULL = zeroes. @param out one
 *  reference for the caller; NULL on failure. Thread-safety: any thread. */
KVT_API int kvt_backend_alloc(const kvt_backend_env *env, size_t size, const kvt_chunk_meta *meta,
                              kvt_obj **out);
/** Logs through the store's handler with the backend's name as component. Lines logged
 *  inside create() (which runs while the store holds its management lock) are held back
 *  and delivered once the lock is released, so a handler may call back into kvtier. */
KVT_API void kvt_backend_log(const kvt_backend_env *env, kvt_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/** The instance's registry name. @return borrowed. */
KVT_API const char *kvt_backend_name(const kvt_backend_env *env);

/** Gauges a backend reports about itself; the store adds its own counters. */
typedef struct kvt_backend_stats {
    uint64_t hits, misses;          /**< counted by the store */
    uint64_t puts, put_failures;    /**< counted by the store (write-through included) */
    uint64_t queued;                /**< write-through items waiting, store side */
    uint64_t bytes_used, capacity_bytes, objects, evictions, pinned; /**< from the backend */
    uint64_t skipped;   /**< puts whose copy skipped this tier: queue full past the timeout,
                             or bypassed or closed while the put waited */
    uint64_t cancelled; /**< queued writes dropped because remove/clear invalidated them */
    char mode[32];      /**< from the backend: how it does I/O now ("io_uring", "pread",
                             "gds", "compat", "redis", "fs"); "" if it does not say */
} kvt_backend_stats;

/** Flags of a backend type. */
#define KVT_BACKEND_USES_CPU_BUFFERS 1u /**< reads allocate from LocalCPUBackend: it must exist */

struct kvt_backend_ops {
    uint32_t abi_version; /**< KVT_BACKEND_ABI_VERSION the backend was built with */
    uint32_t struct_size; /**< sizeof(struct kvt_backend_ops) in that build */
    const char *type_name; /**< registry name = class name, e.g. "LocalDiskBackend"; static */
    uint32_t flags;        /**< KVT_BACKEND_* */

    /** Does `cfg` ask for an instance of this type? (create and store open use it.) */
    bool (*wanted)(const kvt_config *cfg);
    /** Builds an instance; `*state` is passed to every other slot. `cfg` is borrowed
     *  for the call only. Return KVT_OK or a status with kvt_last_error() detail. */
    int (*create)(const kvt_backend_env *env, const kvt_config *cfg, void **state);
    /** Frees an instance. The store calls it only after all I/O has drained. */
    void (*destroy)(void *state);
    /** Stores `obj` (borrowed: retain it to keep it). Non-CPU tiers are called from the
     *  instance's write-through thread, one put (or batched_put) at a time; a tier without
     *  a ping slot also gets the circuit breaker's probe put (a scratch key) from the
     *  store's health thread, which may overlap with it. An existing key: KVT_OK. */
    int (*put)(void *state, const kvt_key *key, kvt_obj *obj);
    /** KVT_OK with one reference in `*out` (allocate it with kvt_backend_alloc()),
     *  KVT_ENOENT on a miss, another status on error (counted as a miss by the store; OK
     *  with a NULL object is an error too). Called from any thread. */
    int (*get)(void *state, const kvt_key *key, kvt_obj **out);
    /** 1 stored, 0 not, negative on error. Called from any thread. */
    int (*contains)(void *state, const kvt_key *key);
    /** KVT_OK removed, KVT_ENOENT absent. */
    int (*remove)(void *state, const kvt_key *key);
    /** Removes everything; adds the tokens removed to `*tokens`. */
    int (*clear)(void *state, uint64_t *tokens);
    /* Optional slots (NULL allowed): */
    /** Number of leading keys stored, in one pass (else the store calls contains()). */
    size_t (*count_prefix)(void *state, const kvt_key *keys, size_t n, bool pin);
    /** Releases pins taken by count_prefix(..., pin = true). */
    int (*unpin)(void *state, const kvt_key *key);
    /** Fills the backend's own gauges. */
    void (*stats)(void *state, kvt_backend_stats *out);
    /* ---- ABI version 1 ends here ---- */
    /** Optional: reads `n` keys at once (one io_uring batch, one pipeline). statuses[i]
     *  and outs[i] as get() gives them for keys[i]; outs[i] is NULL unless statuses[i] is
     *  KVT_OK. Returns KVT_OK unless the whole batch failed. Without it, the store calls
     *  get() once per key. */
    int (*batched_get)(void *state, size_t n, const kvt_key *keys, kvt_obj **outs, int *statuses);
    /** Optional: reads `key` straight into `buf` (`cap` bytes, any alignment), `*len` = the
     *  chunk size; KVT_ETOOSMALL (with `*len` set) when `cap` is short. Used for a
     *  kvt_get_into() that no CPU tier would keep (none, bypassed, allocator-only) and when
     *  the CPU tier has no room to stage a read; without it the store reads through a
     *  heap buffer. */
    int (*get_into)(void *state, const kvt_key *key, void *buf, size_t cap, size_t *len);
    /* ---- ABI version 2 ends here ---- */
    /** Optional: a cheap health probe (a PING for remote): KVT_OK when the tier works.
     *  The circuit breaker calls it, from its own thread, to decide whether an open
     *  breaker may close; without it the breaker probes with a put, a get and a remove of
     *  a scratch key. */
    int (*ping)(void *state);
    /* ---- ABI version 3 ends here ---- */
    /** Optional: reads `n` keys at once straight into caller buffers (bufs[i], caps[i]
     *  bytes, any alignment); statuses[i] as get_into() gives them, lens[i] the chunk size
     *  for KVT_OK and KVT_ETOOSMALL. Returns KVT_OK unless the whole batch failed. The store
     *  uses it for reads no CPU tier would keep (none, bypassed, allocator-only); the
     *  others go through batched_get() so that hits can be promoted. */
    int (*batched_get_into)(void *state, size_t n, const kvt_key *keys, void *const *bufs,
                            const size_t *caps, size_t *lens, int *statuses);
    /* ---- ABI version 4 ends here ---- */
    /** Optional: stores `n` objects at once (one I/O batch), with put()'s rules for each:
     *  objs[i] borrowed, statuses[i] what put() would return for keys[i] (every one is
     *  set). The write-through thread hands it up to 8 queued items at a time, never
     *  waiting for more; without the slot it calls put() once per item. Returns KVT_OK
     *  unless the whole batch failed (every item then counts as failed with that status). */
    int (*batched_put)(void *state, size_t n, const kvt_key *keys, kvt_obj *const *objs,
                       int *statuses);
    /* ---- ABI version 5 ends here; append only ---- */
};

/** True when `ops` was built with slot `slot` and fills it. */
#define KVT_BACKEND_OPS_HAS(ops, slot)                                                            \
    ((ops)->struct_size >= offsetof(struct kvt_backend_ops, slot) + sizeof((ops)->slot) &&        \
     (ops)->slot != NULL)

/** Adds a backend type to the process-wide type table (the built-in ones are already
 *  there). Instances are created, in registration order after the built-in tiers,
 *  when `ops->wanted(cfg)` says so. KVT_EEXIST for a taken name, KVT_EINVAL for a bad
 *  table (newer ABI, short struct, missing required slot, bad name).
 *  @param ops borrowed: must outlive every store. Thread-safety: any thread. Code is
 *  never loaded from configuration: this C call is the only way to add a type. */
KVT_API int kvt_register_backend_type(const struct kvt_backend_ops *ops);

#ifdef __cplusplus
}
#endif
#endif
