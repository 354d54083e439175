/* kvtier — what src/config_file.c needs from src/config.c. Never installed.
 *
 * config.c owns the descriptor table and the value representation; config_file.c only
 * walks YAML, JSON and the environment and hands each value to one of these calls, so
 * conversion, validation and precedence live in one place whatever the source. */
#ifndef KVTIER_CONFIG_INTERNAL_H
#define KVTIER_CONFIG_INTERNAL_H

#include "internal.h" /* kvtier.h: kvt_log_level comes from backend.h */

/* Table index of `name` ("chunk_size", "extra_config.disk_io_threads"). KVT_ECONFIG with a
 * detail naming the key when it is unknown or refused (extra_config.storage_plugin.*).
 * Indexes below kvt_config_key_count() are the public table's rows; from there up to
 * kvt__conf_slots() come the LMCache keys kvtier lacks (kvt_config_ignored_key_at()),
 * which take the same put calls: their disabled value is noted and dropped, any other is
 * an error. */
int kvt__conf_lookup(const char *name, size_t *idx);
size_t kvt__conf_slots(void);
kvt_config_type kvt__conf_type(size_t idx);
const char *kvt__conf_name(size_t idx);

/* Index of the key that environment variable `var` ("LMCACHE_CHUNK_SIZE") sets, either
 * kind; KVT_ENOENT, without a detail, when it sets none. */
int kvt__conf_env_lookup(const char *var, size_t *idx);
/* The known variable nearest to `var` by edit distance: those of both tables and the
 * `nalso` names in `also`. Copied into buf (truncated to cap). */
void kvt__conf_nearest_env(const char *var, const char *const *also, size_t nalso, char *buf,
                           size_t cap);

/* Each converts and validates, then stores at `src` unless a higher source already holds
 * the key (a lower-source value is still validated, so a bad file value is an error even
 * when the environment overrides it). KVT_ECONFIG with a detail naming key and value. */
int kvt__conf_put_text(kvt_config *cfg, size_t idx, const char *text, kvt_config_source src);
/* A plain (unquoted) YAML scalar: YAML 1.1 booleans (on/off/yes/no/y/n, ...) and integers
 * (0400 octal, 0x1F, 0b101, 1_000) and floats as PyYAML resolves them, for the key's type;
 * anything else is converted as text. Quoted scalars go to kvt__conf_put_text(). */
int kvt__conf_put_yaml(kvt_config *cfg, size_t idx, const char *text, kvt_config_source src);
int kvt__conf_put_bool(kvt_config *cfg, size_t idx, bool b, kvt_config_source src);
int kvt__conf_put_int(kvt_config *cfg, size_t idx, int64_t i, kvt_config_source src);
int kvt__conf_put_float(kvt_config *cfg, size_t idx, double f, kvt_config_source src);
int kvt__conf_put_list(kvt_config *cfg, size_t idx, const char *const *items, size_t n,
                       kvt_config_source src);
/* A null (YAML ~, JSON null): unsets an optional key, an error for any other. */
int kvt__conf_put_null(kvt_config *cfg, size_t idx, kvt_config_source src);

/* Notices: what loading noticed that is no error (an LMCache key ignored, an unknown
 * LMCACHE_* variable). Config loading has no log handler, so they ride on the config:
 * copied by kvt_config_dup(), swapped with it, freed with it; the store logs them when it
 * opens. The text is logfmt, e.g. "event=unknown_env name=LMCACHE_CHUNKSIZE
 * nearest=LMCACHE_CHUNK_SIZE" or "event=ignored_key key=use_layerwise". A text already
 * recorded is not recorded again, so each key or variable is noted once per config. */
int kvt__conf_note(kvt_config *cfg, kvt_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* How many notices `cfg` holds (0 for NULL). */
size_t kvt__conf_notice_count(const kvt_config *cfg);
/* The i-th notice, oldest first, and its level (when `level` is not NULL); NULL past the
 * end. @return borrowed, valid until `cfg` changes or is freed. */
const char *kvt__conf_notice(const kvt_config *cfg, size_t i, kvt_log_level *level);

/* Rules that involve several keys; run on a candidate copy before it is swapped in. */
int kvt__conf_check(const kvt_config *cfg);

/* Exchanges the contents of two configs, so a validated copy replaces the live one in
 * a single step and the caller frees what was live. */
void kvt__conf_swap(kvt_config *a, kvt_config *b);

/* Re-raises the current kvt_last_error() with a prefix ("config file x.yaml: ..."). */
int kvt__conf_wrap_error(int status, const char *prefix);

#endif
