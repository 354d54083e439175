/* kvtier — KV-cache tiering store: the umbrella header.
 * SPDX-License-Identifier: Apache-2.0
 *
 * A store holds an ordered registry of tiers (LocalCPUBackend, LocalDiskBackend,
 * GdsBackend, RemoteBackend, then registered types). put copies a chunk into the CPU
 * tier and writes it through to every other active tier in the background; get returns
 * the first hit in tier order and promotes it into the CPU tier; lookup_prefix counts
 * the longest stored prefix of a key sequence. Registry operations (close, create,
 * recreate, bypass, freeze) may run while other threads use the data path: a closing
 * tier first stops taking work, then drains its queue and in-flight I/O. */
#ifndef KVTIER_KVTIER_H
#define KVTIER_KVTIER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "config.h"
#include "key.h"
#include "obj.h"
#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KVT_VERSION "0.1.0"
#define KVT_MAX_BACKENDS 16

/** Library version ("0.1.0"). @return borrowed, static. */
KVT_API const char *kvt_version(void);

/** Frees memory kvtier handed to the caller (kvt_metrics_render()). NULL is a no-op. */
KVT_API void kvt_free(void *p);

/* ---------------------------------------------------------------- logging */

/** Receives one log line. `component` is "store" or a backend name; `msg` is logfmt
 *  text (key=value pairs) without a newline and never holds secrets or payload bytes.
 *  Called from any kvtier thread, never while a kvtier lock is held: a handler may call
 *  any kvtier function except kvt_store_close() of the store that logs. */
typedef void (*kvt_log_fn)(void *ud, kvt_log_level level, const char *component, const char *msg);

typedef struct kvt_log_handler {
    kvt_log_fn fn;           /**< NULL: logfmt lines on stderr */
    void *ud;
    kvt_log_level min_level; /**< lines below it are not formatted at all */
} kvt_log_handler;

/* ---------------------------------------------------------------- store */

typedef struct kvt_store kvt_store;

/** Opens a store: copies `cfg` (borrowed), then creates every backend the config asks
 *  for, in tier order. All or nothing: on failure no backend is left open.
 *  @param log copied; NULL = logfmt on stderr at INFO. @param out caller closes with
 *  kvt_store_close(); NULL on failure. Thread-safety: any thread. */
KVT_API int kvt_store_open(const kvt_config *cfg, const kvt_log_handler *log, kvt_store **out);

/** Flushes pending write-through, closes every backend (lowest tier first) and frees the
 *  store. Each close waits up to backend_close_timeout_ms, then abandons what is still
 *  queued (counted, logged) and waits for calls still inside the backend (a hung call,
 *  or a breaker probe of a hung tier, holds the close until it returns). Objects the
 *  caller still holds stay valid until released. NULL is a no-op.
 *  Thread-safety: no other call on `s` may run or follow. */
KVT_API int kvt_store_close(kvt_store *s);

/* ---------------------------------------------------------------- data path
 * Thread-safety of every call in this section: any thread, concurrently with each
 * other and with the registry operations below. A NULL store, key, buffer or out-pointer
 * is KVT_EINVAL with a kvt_last_error() detail. */

/** Stores a copy of `len` (> 0) bytes under `key`: into the CPU tier synchronously, then
 *  queued to every other active tier (store_location, when set, restricts it to one
 *  backend). A full queue delays the put at most write_queue_timeout_ms, then that tier's
 *  copy is skipped and counted (wt_skipped); the CPU copy never waits for a lower tier.
 *  @param key,data,meta borrowed; meta NULL = zeroes.
 *  @return KVT_OK when some tier took the chunk; KVT_ENOTIER when none is open to puts
 *  (none open, store_location names one that is not, the CPU tier stores nothing);
 *  KVT_ENOMEM when the CPU tier has no room even after evicting; KVT_ETIMEDOUT or
 *  KVT_ECLOSED when only lower tiers are open and each one's queue stayed full or was
 *  closing; KVT_EINVAL for len 0.
 *  Frozen store: nothing is stored, KVT_OK (LMCache's behaviour), counted puts_frozen. */
KVT_API int kvt_put(kvt_store *s, const kvt_key *key, const void *data, size_t len,
                    const kvt_chunk_meta *meta);

/** kvt_put() for `n` chunks, stopping at the first failure; `*stored` (may be NULL)
 *  counts the chunks stored before it. The lower tiers' write queues are plugged for the
 *  call, so the chunks reach each tier together (one batched_put of up to 8), not the
 *  first one alone: use it for the chunks of one request. A chunk that finds no CPU room
 *  (KVT_ENOMEM) first waits, write_queue_timeout_ms at most, for the queued chunks to be
 *  written (queued chunks cannot be evicted) and tries once more. */
KVT_API int kvt_batched_put(kvt_store *s, size_t n, const kvt_key keys[], const void *const data[],
                            const size_t lens[], const kvt_chunk_meta *metas, size_t *stored);

/** Zero-copy put, step 1: a writable buffer of `size` (> 0) bytes, 4096-byte aligned, from
 *  the store's CPU pool (evicting if needed; from the heap when there is no CPU tier).
 *  Fill it (e.g. straight from the GPU), then commit it with kvt_put_obj().
 *  @param meta copied; NULL = zeroes. @param out one reference the caller releases with
 *  kvt_obj_release() whether or not it is committed. KVT_ENOMEM when there is no room. */
KVT_API int kvt_obj_alloc(kvt_store *s, size_t size, const kvt_chunk_meta *meta, kvt_obj **out);

/** Zero-copy put, step 2: stores `obj` under `key` without copying it, as kvt_put() does
 *  (same results). From then on the object is read-only. The same object may be stored
 *  under several keys (the CPU tier then keeps a copy for each key after the first).
 *  @param obj borrowed: the caller
 *  still releases its reference. */
KVT_API int kvt_put_obj(kvt_store *s, const kvt_key *key, kvt_obj *obj);

/** kvt_put_obj() for `n` objects, stopping at the first failure, with the lower tiers'
 *  queues plugged as kvt_batched_put() does; `*stored` (may be NULL) counts the chunks
 *  stored before it. @param objs borrowed, as kvt_put_obj()'s. */
KVT_API int kvt_batched_put_obj(kvt_store *s, size_t n, const kvt_key keys[], kvt_obj *const objs[],
                                size_t *stored);

/** Zero-copy read: the first tier in order that holds `key` wins; a hit below the CPU
 *  tier is promoted into it (when the CPU tier has no room to stage it, the object comes
 *  from the heap and is not promoted: get_unstaged). @param out one reference (read-only) the caller releases
 *  with kvt_obj_release(); NULL on a miss (KVT_ENOENT). */
KVT_API int kvt_get(kvt_store *s, const kvt_key *key, kvt_obj **out);

/** kvt_get() copied into `buf`. `*len` (may be NULL) = chunk size; KVT_ETOOSMALL if `cap` is
 *  short (nothing copied, `*len` still set). Never fails for lack of CPU room: a lower-tier
 *  hit that cannot be staged in the CPU tier is read into `buf` and not promoted
 *  (counted as get_unstaged). */
KVT_API int kvt_get_into(kvt_store *s, const kvt_key *key, void *buf, size_t cap, size_t *len);

/** LMCache's batched_get, into caller buffers: statuses[i] is kvt_get_into()'s result for
 *  keys[i] (KVT_OK, KVT_ENOENT, KVT_ETOOSMALL, ...). Each tier in order reads the keys
 *  still missing as one batch (its batched_get slot). `lens` (may be NULL) = chunk sizes
 *  of the hits; `*hits` (may be NULL) = how many hit. KVT_OK unless an argument is bad
 *  (KVT_EINVAL) or the batch's scratch cannot be allocated (KVT_ENOMEM). */
KVT_API int kvt_batched_get_into(kvt_store *s, size_t n, const kvt_key keys[], void *const bufs[],
                                 const size_t caps[], size_t lens[], int statuses[], size_t *hits);

/** KVT_OK if some active tier holds `key`, KVT_ENOENT if none. @param tier (may be NULL)
 *  the first holder's name: borrowed, static. */
KVT_API int kvt_contains(kvt_store *s, const kvt_key *key, const char **tier);

/** Run of keys found in one tier by kvt_lookup_prefix(). */
typedef struct kvt_tier_span {
    const char *backend; /**< borrowed, static */
    size_t start, count;
} kvt_tier_span;

/** The pins one kvt_lookup_prefix() took, in every tier that pinned. */
typedef struct kvt_pin kvt_pin;

/** LMCache's tiered prefix match: each active tier, in order, contributes the run of
 *  consecutive keys it holds from where the previous tier stopped; a tier with no hit
 *  passes on. `*hits` = keys matched. `spans` (may be NULL) receives at most
 *  `max_spans` runs, `*nspans` (may be NULL) their number.
 *  @param pin NULL: pin nothing. Else the found entries are pinned (not evicted) and
 *  `*pin` is a handle the caller gives to kvt_unpin() exactly once (NULL when nothing
 *  was pinned). */
KVT_API int kvt_lookup_prefix(kvt_store *s, const kvt_key keys[], size_t n, size_t *hits,
                              kvt_tier_span *spans, size_t max_spans, size_t *nspans,
                              kvt_pin **pin);

/** Drops exactly the pins `pin` took and frees it. A pin whose entry was removed (or
 *  removed and stored again) meanwhile, or whose tier was closed, is skipped. NULL is a
 *  no-op. */
KVT_API int kvt_unpin(kvt_store *s, kvt_pin *pin);

/** Removes `key` from every backend open now, active or draining (bypass and freeze
 *  ignored). Writes of `key` still queued are cancelled; one in progress is waited for up
 *  to write_queue_timeout_ms, and if its tier hangs longer it is undone when it returns;
 *  unrelated writes are never waited for. A get in flight meanwhile may return the chunk but does not
 *  promote it back. A tier closed meanwhile keeps what it had: a persistent tier created
 *  again serves the chunk again (keys name their content, so it is the same chunk).
 *  `*removed` (may be NULL) = backends that held it. */
KVT_API int kvt_remove(kvt_store *s, const kvt_key *key, size_t *removed);

/** Removes everything from every backend open now, as kvt_remove() does for one key;
 *  `*tokens` (may be NULL) = tokens removed (LMCache's clear count). */
KVT_API int kvt_clear(kvt_store *s, uint64_t *tokens);

/** Waits until every write queued before the call has reached its tier (or failed, or
 *  was cancelled), draining tiers included, for at most `timeout_ms` (< 0: no limit).
 *  KVT_ETIMEDOUT with a detail naming the tier still pending. */
KVT_API int kvt_flush(kvt_store *s, int64_t timeout_ms);

/* ---------------------------------------------------------------- registry
 * Thread-safety: any thread; registry operations are serialised among themselves for
 * moments only (never while a tier drains) and never block the data path of tiers they
 * do not touch. */

typedef enum kvt_backend_state {
    KVT_BACKEND_ACTIVE = 0,   /**< published: serves the data path */
    KVT_BACKEND_DRAINING = 1  /**< closed to new work; in-flight calls and queue finishing */
} kvt_backend_state;

typedef struct kvt_backend_info {
    char name[KVT_NAME_MAX];
    char class_name[KVT_NAME_MAX];
    kvt_backend_state state;
    uint64_t pending; /**< write-through items still queued */
} kvt_backend_info;

/** Backends in tier order, draining ones included (at most `max`); `*n` = how many exist. */
KVT_API int kvt_backends_list(kvt_store *s, kvt_backend_info *out, size_t max, size_t *n);

#define KVT_CLOSE_FORCE 1u /**< abandon queued writes (counted failed) instead of waiting */

/** Closes backend `name`: ACTIVE -> DRAINING -> CLOSED. It is unpublished at once (no new
 *  work), then the call waits up to `timeout_ms` (< 0: no limit) for its in-flight calls
 *  and its queue, which keeps being written in the background. Past the timeout:
 *  KVT_ETIMEDOUT, the backend stays DRAINING (listed, with its items left; no new
 *  instance of its type can be created) and another close of it resumes the wait (or,
 *  once it has finished, returns KVT_OK until a registry operation forgets it, then
 *  KVT_ENOENT).
 *  KVT_CLOSE_FORCE drops what is still queued and frees the instance as soon as its
 *  in-flight calls return. KVT_ENOENT if unknown; KVT_EBUSY for LocalCPUBackend while
 *  tiers that read into its buffers exist (kvt_last_error() names them). */
KVT_API int kvt_backend_close_timed(kvt_store *s, const char *name, int64_t timeout_ms,
                                    unsigned flags);

/** kvt_backend_close_timed() with backend_close_timeout_ms and no flags. */
KVT_API int kvt_backend_close(kvt_store *s, const char *name);

/** Creates every backend the current config asks for that does not exist, each at its
 *  tier position. All or nothing; KVT_EBUSY while an instance of a wanted type is still
 *  draining. `created` (may be NULL) gets at most `max` of them, `*n` (may be NULL)
 *  their number (0: nothing to do). */
KVT_API int kvt_backends_create(kvt_store *s, kvt_backend_info *created, size_t max, size_t *n);

/** Closes `name` as kvt_backend_close() does and builds a new instance of that type only,
 *  from the current config, at the same tier position. KVT_ENOENT if unknown;
 *  KVT_ETIMEDOUT if the old instance is still draining (nothing is built). If the new
 *  instance fails, the slot stays empty and the error is returned. */
KVT_API int kvt_backend_recreate(kvt_store *s, const char *name);

/** Bypass on/off: a bypassed backend gets no puts and is skipped by lookups and gets;
 *  puts waiting on its full queue give up at once. `*was` (may be NULL) = previous
 *  state. KVT_ENOENT if no such backend. */
KVT_API int kvt_backend_set_bypass(kvt_store *s, const char *name, bool on, bool *was);
/** Names currently bypassed, in tier order. */
KVT_API int kvt_bypass_list(kvt_store *s, kvt_backend_info *out, size_t max, size_t *n);

/** Freeze: lookups and gets use the CPU tier only; puts store nothing. */
KVT_API int kvt_store_set_freeze(kvt_store *s, bool on);
/** false for NULL. */
KVT_API bool kvt_store_frozen(kvt_store *s);

/** Counters of backend `name` (active or draining). KVT_ENOENT if unknown. */
KVT_API int kvt_backend_get_stats(kvt_store *s, const char *name, kvt_backend_stats *out);

/** The circuit breaker of a backend (every tier but LocalCPUBackend has one). */
typedef enum kvt_breaker_state {
    KVT_BREAKER_CLOSED = 0,   /**< healthy: the tier serves the data path */
    KVT_BREAKER_OPEN = 1,     /**< breaker_failures consecutive failures: bypassed until a probe */
    KVT_BREAKER_HALF_OPEN = 2 /**< a probe is running; still bypassed */
} kvt_breaker_state;

/** Health of one backend, as truthfully as the store knows it. */
typedef struct kvt_backend_health {
    kvt_breaker_state breaker;
    bool bypass_manual;  /**< kvt_backend_set_bypass(); the breaker never changes it */
    bool bypass_breaker; /**< skipped by the data path because the breaker is not closed */
    uint32_t consecutive_failures;
    uint64_t failures;   /**< calls that failed (not misses) since the instance was made */
    uint64_t opens;      /**< times the breaker opened */
    int last_status;     /**< status of the last failure, KVT_OK if none */
    char last_error[256];
    double ping_ms;      /**< latency of the last probe; < 0 if none ran yet */
    double state_ms;     /**< time in the current breaker state */
    double retry_in_ms;  /**< OPEN: until the next probe; 0 otherwise */
} kvt_backend_health;

/** Health of backend `name` (active or draining). KVT_ENOENT if unknown. */
KVT_API int kvt_backend_get_health(kvt_store *s, const char *name, kvt_backend_health *out);

/** Store-wide counters. `wt_*` track write-through: after kvt_flush() returned KVT_OK,
 *  enqueued == done + failed + cancelled, whatever was closed meanwhile. */
typedef struct kvt_store_stats {
    uint64_t store_requests, retrieve_requests, lookup_requests;
    uint64_t stored_chunks, retrieved_chunks;
    uint64_t promotions; /**< lower-tier hits handed to the CPU tier */
    uint64_t stored_tokens;    /**< chunk_meta.num_tokens, else chunk_size */
    uint64_t retrieved_tokens; /**< the same for kvt_get; chunk_size per chunk for the
                                    _into variants, which may never see the metadata */
    uint64_t lookup_keys, lookup_hits;
    uint64_t wt_enqueued, wt_done, wt_failed;
    uint64_t wt_skipped;   /**< tier copies skipped: queue full past write_queue_timeout_ms,
                                or the tier was bypassed or closed while the put waited */
    uint64_t wt_cancelled; /**< queued writes invalidated by remove/clear */
    uint64_t puts_frozen;  /**< puts that stored nothing because the store was frozen */
    uint64_t puts_unstored; /**< puts no tier took (KVT_ENOTIER and CPU failures) */
    uint64_t get_unstaged; /**< lower-tier hits read past a full CPU tier, not promoted */
} kvt_store_stats;
KVT_API int kvt_store_get_stats(kvt_store *s, kvt_store_stats *out);

/* ---------------------------------------------------------------- runtime config */

/** Changes runtime-mutable keys of the store's config, all or nothing (see
 *  kvt_config_patch()). write_queue_timeout_ms, backend_close_timeout_ms and the
 *  breaker_* keys apply at once; the others at the next create/recreate. */
KVT_API int kvt_store_conf_update(kvt_store *s, size_t n, const char *const keys[],
                                  const char *const values[], size_t *bad_key);
/** kvt_store_conf_update() only if the config is still at `version` (an ETag from
 *  kvt_store_conf_version()): else KVT_EBUSY ("config changed since version N") and
 *  nothing changes, so two operators cannot overwrite each other blindly. */
KVT_API int kvt_store_conf_update_if(kvt_store *s, uint64_t version, size_t n,
                                     const char *const keys[], const char *const values[],
                                     size_t *bad_key);
/** Version of the store's config: 1 at open, +1 with every successful update. 0 for NULL. */
KVT_API uint64_t kvt_store_conf_version(kvt_store *s);
/** Copy of the store's current config. @param out caller frees with kvt_config_free(). */
KVT_API int kvt_store_conf_dup(kvt_store *s, kvt_config **out);

/* ---------------------------------------------------------------- metrics */

/** Prometheus text exposition of the store and per-backend counters (LMCache names
 *  where they exist). @param out NUL-terminated, caller frees with kvt_free(). */
KVT_API int kvt_metrics_render(kvt_store *s, char **out);

/** Zeroes the request, hit, miss, put and skip counters of the store and of every open
 *  backend (LMCache's POST /metrics/reset). The write-through balance (wt_enqueued, done,
 *  failed, cancelled) and what backends report about themselves (bytes, objects,
 *  evictions) are kept: they describe state, not traffic. Thread-safety: any thread. */
KVT_API int kvt_metrics_reset(kvt_store *s);

#ifdef __cplusplus
}
#endif
#endif
