/* kvtier — what src/config_file.c needs from src/config.c. Never installed.
 *
 * config.c owns the descriptor table and the value representation; config_file.c only
 * walks YAML, JSON and the environment and hands each value to one of these calls, so
 * conversion, validation and precedence live in one place whatever the source. */
#ifndef KVTIER_CONFIG_INTERNAL_H
#define KVTIER_CONFIG_INTERNAL_H

#include "internal.h"

/* Table index of `name` ("chunk_size", "extra_config.disk_io_threads"). KVT_ECONFIG with a
 * detail naming the key when it is unknown or refused (extra_config.storage_plugin.*). */
int kvt__conf_lookup(const char *name, size_t *idx);
kvt_config_type kvt__conf_type(size_t idx);
const char *kvt__conf_name(size_t idx);

/* Each converts and validates, then stores at `src` unless a higher source already holds
 * the key (a lower-source value is still validated, so a bad file value is an error even
 * when the environment overrides it). KVT_ECONFIG with a detail naming key and value. */
int kvt__conf_put_text(kvt_config *cfg, size_t idx, const char *text, kvt_config_source src);
int kvt__conf_put_bool(kvt_config *cfg, size_t idx, bool b, kvt_config_source src);
int kvt__conf_put_int(kvt_config *cfg, size_t idx, int64_t i, kvt_config_source src);
int kvt__conf_put_float(kvt_config *cfg, size_t idx, double f, kvt_config_source src);
int kvt__conf_put_list(kvt_config *cfg, size_t idx, const char *const *items, size_t n,
                       kvt_config_source src);
/* A null (YAML ~, JSON null): unsets an optional key, an error for any other. */
int kvt__conf_put_null(kvt_config *cfg, size_t idx, kvt_config_source src);

/* Rules that involve several keys; run on a candidate copy before it is swapped in. */
int kvt__conf_check(const kvt_config *cfg);

/* Exchanges the contents of two configs, so a validated copy replaces the live one in
 * a single step and the caller frees what was live. */
void kvt__conf_swap(kvt_config *a, kvt_config *b);

/* Re-raises the current kvt_last_error() with a prefix ("config file x.yaml: ..."). */
int kvt__conf_wrap_error(int status, const char *prefix);

#endif
