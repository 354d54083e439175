/* kvtier — configuration.
 * SPDX-License-Identifier: Apache-2.0
 *
 * Every key is one row of a descriptor table (src/config.c): name, type, default,
 * environment variable, runtime-mutable flag, validator, one-line doc. Values come
 * from four sources; a value from a higher source always wins, whatever the call
 * order: defaults < file (YAML or JSON) < LMCACHE_* environment < C API setters.
 * Keys of LMCache's `extra_config` map are addressed as "extra_config.<subkey>".
 *
 * LMCache keys kvtier lacks (use_layerwise, enable_pd, storage_plugins, ...) are a second,
 * smaller table (kvt_config_ignored_key_at()): a file, the environment or a setter may
 * give them their disabled value, which is ignored; any other value is an error naming the
 * feature it asks for. Errors quote values as written ("-10", "0400"). */
#ifndef KVTIER_CONFIG_H
#define KVTIER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "status.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Opaque configuration. Thread-safety: a kvt_config is not internally locked; share
 *  it read-only or guard it. A store copies the config it is opened with. */
typedef struct kvt_config kvt_config;

typedef enum kvt_config_type {
    KVT_CONF_BOOL,
    KVT_CONF_INT,
    KVT_CONF_FLOAT,
    KVT_CONF_STRING,
    KVT_CONF_LIST /* list of strings; CSV in text form */
} kvt_config_type;

/** Where a key's current value came from; higher wins. */
typedef enum kvt_config_source {
    KVT_SRC_DEFAULT = 0,
    KVT_SRC_FILE = 1,
    KVT_SRC_ENV = 2,
    KVT_SRC_API = 3
} kvt_config_source;

/** One row of the descriptor table, as seen by callers (docs, admin server). */
typedef struct kvt_config_key_info {
    const char *name;          /**< "max_local_cpu_size" or "extra_config.disk_io_threads" */
    kvt_config_type type;
    const char *default_text;  /**< default in text form; "" = unset */
    const char *env;           /**< environment variable, NULL if only via LMCACHE_EXTRA_CONFIG */
    bool runtime_mutable;      /**< may change on a running store (kvt_store_conf_update) */
    bool secret;               /**< never shown in full (token, passwords in URLs) */
    const char *doc;           /**< one line */
} kvt_config_key_info;

/** New config holding the defaults. @param out set to the config (caller frees with
 *  kvt_config_free()), NULL on failure. Thread-safety: any thread. */
KVT_API int kvt_config_new(kvt_config **out);

/** Deep copy. @param out caller frees with kvt_config_free(). Thread-safety: not concurrently
 *  with writes to `cfg`. */
KVT_API int kvt_config_dup(const kvt_config *cfg, kvt_config **out);

/** Frees a config; NULL is a no-op. */
KVT_API void kvt_config_free(kvt_config *cfg);

/** Loads a flat YAML or JSON file (".json" suffix = JSON, else YAML) at file precedence.
 *  `extra_config` may be a nested map. Plain (unquoted) YAML scalars are typed by YAML
 *  1.1's rules, as PyYAML reads LMCache files: `on`/`off`/`yes`/`no`/`y`/`n` booleans,
 *  `0400` octal (256), `0x1F`, `0b101`, `1_000`; quoted scalars are text. Unknown keys,
 *  bad values or features kvtier lacks fail with KVT_ECONFIG and a kvt_last_error()
 *  naming the key; on failure `cfg` is unchanged. A file larger than 1 MiB, or one nested
 *  deeper than 32 levels (a flat config needs 3), is refused before any value is read, in
 *  time linear in its size. @param path borrowed. */
KVT_API int kvt_config_load_file(kvt_config *cfg, const char *path);

/** Reads LMCACHE_<KEY> variables (and LMCACHE_EXTRA_CONFIG, a JSON object nested at most
 *  32 levels) at environment precedence; all or nothing. An LMCACHE_* variable that names
 *  no key is no error: it is kept as a warning naming the nearest known variable, which
 *  the store logs when it opens. Thread-safety: not concurrently with setenv(). */
KVT_API int kvt_config_load_env(kvt_config *cfg);

/** The usual recipe: defaults, then the file `path` (or $LMCACHE_CONFIG_FILE when `path`
 *  is NULL; none is fine), then the environment. @param out caller frees. */
KVT_API int kvt_config_from_sources(const char *path, kvt_config **out);

/** Sets a key from text, converted as an environment value would be (booleans
 *  true/false/1/0/yes/no in any case, lists as CSV, "" or "null" clears an optional
 *  string) at API precedence. @param key,value borrowed (copied). */
KVT_API int kvt_config_set(kvt_config *cfg, const char *key, const char *value);
KVT_API int kvt_config_set_bool(kvt_config *cfg, const char *key, bool value);
KVT_API int kvt_config_set_int(kvt_config *cfg, const char *key, int64_t value);
KVT_API int kvt_config_set_float(kvt_config *cfg, const char *key, double value);

/** Sets several keys from text at API precedence, all or nothing: every key is looked
 *  up, converted and validated on a copy that replaces `cfg` only if all passed. With
 *  `runtime_only`, keys not flagged runtime-mutable are refused ("Config is not mutable
 *  at runtime"). On failure `*bad_key` (if not NULL) is the index of the first failing
 *  key and `cfg` is unchanged. */
KVT_API int kvt_config_patch(kvt_config *cfg, size_t n, const char *const keys[],
                             const char *const values[], bool runtime_only, size_t *bad_key);

/** Typed getters; KVT_ENOENT for an unknown key, KVT_EINVAL for the wrong type or a NULL
 *  config or key. `out` (and `items`, `n`, and get_source's `out`) may be NULL: the call
 *  then only checks that the key exists with that type. */
KVT_API int kvt_config_get_bool(const kvt_config *cfg, const char *key, bool *out);
KVT_API int kvt_config_get_int(const kvt_config *cfg, const char *key, int64_t *out);
KVT_API int kvt_config_get_float(const kvt_config *cfg, const char *key, double *out);
/** @param out borrowed, valid until the key changes; NULL when the key is unset. */
KVT_API int kvt_config_get_str(const kvt_config *cfg, const char *key, const char **out);
/** @param items borrowed array of `*n` strings, valid until the key changes. */
KVT_API int kvt_config_get_list(const kvt_config *cfg, const char *key,
                                const char *const **items, size_t *n);

/** Value as text ("5.0", "true", "a,b"; "" when unset), secrets masked when `redact`.
 *  KVT_ETOOSMALL if `cap` is too small (the text is truncated). */
KVT_API int kvt_config_get_text(const kvt_config *cfg, const char *key, bool redact,
                                char *buf, size_t cap);

/** Source of the key's current value. */
KVT_API int kvt_config_get_source(const kvt_config *cfg, const char *key,
                                  kvt_config_source *out);

/** Number of rows in the descriptor table; `i`-th row (KVT_ERANGE past the end).
 *  Thread-safety: any thread (the table is static). */
KVT_API size_t kvt_config_key_count(void);
KVT_API int kvt_config_key_at(size_t i, kvt_config_key_info *out);

/** One LMCache key kvtier lacks. Its variable is LMCACHE_ followed by the name in upper
 *  case; it has no value to get, and kvt_config_patch(runtime_only) calls it unknown. */
typedef struct kvt_config_ignored_key {
    const char *name;          /**< "use_layerwise" */
    kvt_config_type type;
    const char *disabled_text; /**< the only value accepted ("false", "256"); "" = unset or
                                    empty; NULL = any value (the key means nothing here) */
    const char *feature;       /**< what any other value asks for ("layer-wise KV transfer") */
} kvt_config_ignored_key;

/** Number of rows of the ignored-key table; `i`-th row (KVT_ERANGE past the end).
 *  Thread-safety: any thread (the table is static). */
KVT_API size_t kvt_config_ignored_key_count(void);
KVT_API int kvt_config_ignored_key_at(size_t i, kvt_config_ignored_key *out);

#ifdef __cplusplus
}
#endif
#endif
