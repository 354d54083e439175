/* kvtier — chunk keys and token hashing (LMCache's CacheEngineKey).
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef KVTIER_KEY_H
#define KVTIER_KEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KVT_KEY_MODEL_MAX 128 /**< bytes, including the NUL */
#define KVT_KEY_DTYPE_MAX 16
#define KVT_KEY_TAGS_MAX 4
#define KVT_KEY_TAG_KEY_MAX 32
#define KVT_KEY_TAG_VALUE_MAX 64
/** Longest string kvt_key_to_string() can produce, including the NUL. */
#define KVT_KEY_STRING_MAX 640

typedef struct kvt_key_tag {
    char key[KVT_KEY_TAG_KEY_MAX];
    char value[KVT_KEY_TAG_VALUE_MAX];
} kvt_key_tag;

/** Identity of one chunk: model, world size, worker id, chained chunk hash, dtype and
 *  tags, as LMCache's key. The hash is a Python int in [-2^63, 2^64): its magnitude is
 *  `chunk_hash` and its sign `hash_negative` (set these two fields, and `layer_id`, by
 *  hand after kvt_key_init() for negative hashes and layer keys; a negative zero is
 *  treated as 0 everywhere).
 *  A plain value type: copy it freely. Build it with kvt_key_init() so unused bytes are
 *  zero (keys are compared field by field, but zeroed keys hash faster). */
typedef struct kvt_key {
    char model[KVT_KEY_MODEL_MAX];
    int32_t world_size;
    int32_t worker_id;
    uint64_t chunk_hash;
    bool hash_negative;
    int32_t layer_id; /**< -1: not a layer key; >= 0: LayerCacheEngineKey */
    char dtype[KVT_KEY_DTYPE_MAX];
    uint32_t ntags;
    kvt_key_tag tags[KVT_KEY_TAGS_MAX];
} kvt_key;

/** Fills `key` (zeroing it first) with no tags and no layer. KVT_EINVAL names the bad
 *  field: an empty model, one with '@' or too long, world_size < 1, worker_id < 0, an
 *  unknown dtype string (worker_id >= world_size is allowed, as in LMCache).
 *  @param model,dtype borrowed. */
KVT_API int kvt_key_init(kvt_key *key, const char *model, int32_t world_size, int32_t worker_id,
                         uint64_t chunk_hash, const char *dtype);

/** Appends tag k%v (LMCache's `lmcache.tag.<k>` request config, prefix stripped).
 *  KVT_EINVAL if either contains '@' or '%', is empty or too long; KVT_ERANGE past
 *  KVT_KEY_TAGS_MAX tags. */
KVT_API int kvt_key_add_tag(kvt_key *key, const char *k, const char *v);

/** `model@world_size@worker_id@hash@dtype[@layer][@k%v...]`, hash in Python's
 *  format(h, "x"). KVT_ETOOSMALL if `cap` is short. Thread-safety: any thread. */
KVT_API int kvt_key_to_string(const kvt_key *key, char *buf, size_t cap);

/** Parses the string form; KVT_EINVAL with a detail naming the bad part (also for more
 *  than KVT_KEY_TAGS_MAX tags). Numbers are strict: no '+', spaces or '_' (Python would
 *  accept them), so every key has one spelling; the hash may carry "0x" and any case.
 *  On failure `*out` is zeroed. @param s borrowed. */
KVT_API int kvt_key_parse(const char *s, kvt_key *out);

/** True when both keys denote the same chunk (two NULLs are equal, NULL and a key not). */
KVT_API bool kvt_key_equal(const kvt_key *a, const kvt_key *b);

/** 64-bit hash of a whole key (for hash tables); 0 for NULL. */
KVT_API uint64_t kvt_key_hash(const kvt_key *key);

/** Chained per-chunk token hashes: h_i = XXH3_64(tokens of chunk i as little-endian
 *  int32, seed = h_{i-1}), h_{-1} = 0, so each hash depends on the whole prefix.
 *  Only full chunks are hashed unless `save_unfull`. Writes at most `max` hashes and
 *  sets `*count` (may be NULL) to the number of chunks; KVT_ETOOSMALL if `max` was
 *  too small.
 *  @param tokens borrowed. Thread-safety: any thread. */
KVT_API int kvt_hash_tokens(const int32_t *tokens, size_t ntokens, size_t chunk_size,
                            bool save_unfull, uint64_t *hashes, size_t max, size_t *count);

#ifdef __cplusplus
}
#endif
#endif
