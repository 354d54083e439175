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
 *  Called from any kvtier thread, never while the registry lock is held. */
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
 *  store. Objects the caller still holds stay valid until released. NULL is a no-op.
 *  Thread-safety: no other call on `s` may run or follow. */
KVT_API int kvt_store_close(kvt_store *s);

/* ---------------------------------------------------------------- data path
 * Thread-safety of every call in this section: any thread, concurrently with each
 * other and with the registry operations below. */

/** Stores a copy of `len` bytes under `key`: into the CPU tier synchronously, then queued
 *  to every other active tier (store_location, when set, restricts it to one backend).
 *  Blocks only while a tier's write queue is full. Frozen store: nothing is stored,
 *  KVT_OK. @param key,data,meta borrowed; meta NULL = zeroes. KVT_ENOMEM when the
 *  CPU tier has no room even after evicting. */
KVT_API int kvt_put(kvt_store *s, const kvt_key *key, const void *data, size_t len,
                    const kvt_chunk_meta *meta);

/** kvt_put() for `n` chunks, stopping at the first failure; `*stored` (may be NULL)
 *  counts the chunks stored before it. */
KVT_API int kvt_batched_put(kvt_store *s, size_t n, const kvt_key keys[], const void *const data[],
                            const size_t lens[], const kvt_chunk_meta *metas, size_t *stored);

/** Zero-copy read: the first tier in order that holds `key` wins; a hit below the CPU
 *  tier is promoted into it. @param out one reference the caller releases with
 *  kvt_obj_release(); NULL on a miss (KVT_ENOENT). */
KVT_API int kvt_get(kvt_store *s, const kvt_key *key, kvt_obj **out);

/** kvt_get() copied into `buf`. `*len` (may be NULL) = chunk size; KVT_ETOOSMALL if `cap` is
 *  short (nothing copied, `*len` still set). */
KVT_API int kvt_get_into(kvt_store *s, const kvt_key *key, void *buf, size_t cap, size_t *len);

/** KVT_OK if some active tier holds `key`, KVT_ENOENT if none. @param tier (may be NULL)
 *  the first holder's name: borrowed, static. */
KVT_API int kvt_contains(kvt_store *s, const kvt_key *key, const char **tier);

/** Run of keys found in one tier by kvt_lookup_prefix(). */
typedef struct kvt_tier_span {
    const char *backend; /**< borrowed, static */
    size_t start, count;
} kvt_tier_span;

#define KVT_LOOKUP_PIN 1u /**< pin found CPU entries until kvt_unpin() */

/** LMCache's tiered prefix match: each active tier, in order, contributes the run of
 *  consecutive keys it holds from where the previous tier stopped; a tier with no hit
 *  passes on. `*hits` = keys matched. `spans` (may be NULL) receives at most
 *  `max_spans` runs, `*nspans` (may be NULL) their number. */
KVT_API int kvt_lookup_prefix(kvt_store *s, const kvt_key keys[], size_t n, unsigned flags,
                              size_t *hits, kvt_tier_span *spans, size_t max_spans,
                              size_t *nspans);

/** Drops one pin per key taken by KVT_LOOKUP_PIN; unknown keys are skipped. */
KVT_API int kvt_unpin(kvt_store *s, const kvt_key keys[], size_t n);

/** Removes `key` from every backend (bypass and freeze ignored), after that tier's
 *  pending writes. `*removed` (may be NULL) = backends that held it. */
KVT_API int kvt_remove(kvt_store *s, const kvt_key *key, size_t *removed);

/** Removes everything from every backend after pending writes; `*tokens` (may be NULL) =
 *  tokens removed (LMCache's clear count). */
KVT_API int kvt_clear(kvt_store *s, uint64_t *tokens);

/** Waits until every write queued before the call has reached its tier, including
 *  tiers closing meanwhile. flush, remove and clear wait for registry operations in
 *  progress (and make them wait): a close never drains while they look for its queue. */
KVT_API int kvt_flush(kvt_store *s);

/* ---------------------------------------------------------------- registry
 * Thread-safety: any thread; registry operations are serialised among themselves
 * and never block the data path of tiers they do not touch. */

typedef struct kvt_backend_info {
    char name[KVT_NAME_MAX];
    char class_name[KVT_NAME_MAX];
} kvt_backend_info;

/** Backends in tier order (at most `max`); `*n` = how many exist. */
KVT_API int kvt_backends_list(kvt_store *s, kvt_backend_info *out, size_t max, size_t *n);

/** Closes backend `name`: unlisted at once, then its queue and in-flight I/O drain, then
 *  it is freed. KVT_ENOENT if unknown; KVT_EBUSY for LocalCPUBackend while tiers that
 *  read into its buffers exist (kvt_last_error() names them). */
KVT_API int kvt_backend_close(kvt_store *s, const char *name);

/** Creates every backend the current config asks for that does not exist, each at its
 *  tier position. All or nothing. `created` (may be NULL) gets at most `max` of them,
 *  `*n` (may be NULL) their number (0: nothing to do). */
KVT_API int kvt_backends_create(kvt_store *s, kvt_backend_info *created, size_t max, size_t *n);

/** Closes `name` and builds a new instance of that type only, from the current config,
 *  at the same tier position. KVT_ENOENT if unknown. If the new instance fails, the slot
 *  stays empty and the error is returned. */
KVT_API int kvt_backend_recreate(kvt_store *s, const char *name);

/** Bypass on/off: a bypassed backend gets no puts and is skipped by lookups and gets.
 *  `*was` (may be NULL) = previous state. KVT_ENOENT if no such backend. */
KVT_API int kvt_backend_set_bypass(kvt_store *s, const char *name, bool on, bool *was);
/** Names currently bypassed, in tier order. */
KVT_API int kvt_bypass_list(kvt_store *s, kvt_backend_info *out, size_t max, size_t *n);

/** Freeze: lookups and gets use the CPU tier only; puts store nothing. */
KVT_API int kvt_store_set_freeze(kvt_store *s, bool on);
KVT_API bool kvt_store_frozen(kvt_store *s);

/** Counters of backend `name`. KVT_ENOENT if unknown. */
KVT_API int kvt_backend_get_stats(kvt_store *s, const char *name, kvt_backend_stats *out);

/** Store-wide counters. `wt_*` track write-through: after kvt_flush(), enqueued ==
 *  done + failed, whatever was closed meanwhile. */
typedef struct kvt_store_stats {
    uint64_t store_requests, retrieve_requests, lookup_requests;
    uint64_t stored_chunks, retrieved_chunks;
    uint64_t promotions; /**< lower-tier hits handed to the CPU tier */
    uint64_t stored_tokens, retrieved_tokens; /**< chunk_meta.num_tokens, else chunk_size */
    uint64_t lookup_keys, lookup_hits;
    uint64_t wt_enqueued, wt_done, wt_failed;
} kvt_store_stats;
KVT_API int kvt_store_get_stats(kvt_store *s, kvt_store_stats *out);

/* ---------------------------------------------------------------- runtime config */

/** Changes runtime-mutable keys of the store's config, all or nothing (see
 *  kvt_config_patch()). Takes effect at the next create/recreate. */
KVT_API int kvt_store_conf_update(kvt_store *s, size_t n, const char *const keys[],
                                  const char *const values[], size_t *bad_key);
/** Copy of the store's current config. @param out caller frees with kvt_config_free(). */
KVT_API int kvt_store_conf_dup(kvt_store *s, kvt_config **out);

/* ---------------------------------------------------------------- metrics */

/** Prometheus text exposition of the store and per-backend counters (LMCache names
 *  where they exist). @param out NUL-terminated, caller frees with kvt_free(). */
KVT_API int kvt_metrics_render(kvt_store *s, char **out);

#ifdef __cplusplus
}
#endif
#endif
