/* kvtier — configuration: the descriptor table, values, precedence and validation.
 *
 * Every key is one row of conf_table. A kvt_config is one value slot per row; each slot
 * remembers the source that wrote it, and a write from a lower source never replaces a
 * higher one, so the result does not depend on the order in which sources are loaded.
 * Every public mutation works on a copy that replaces the live config only after every
 * key and every cross-key rule passed (Redis' CONFIG SET, minus partial application). */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config_internal.h"

/* ------------------------------------------------------------ the table */

struct conf_val;
struct conf_desc;
typedef int (*conf_check_fn)(const struct conf_desc *d, struct conf_val *v);

enum {
    F_RUNTIME = 1 << 0, /* may change on a running store (POST /conf) */
    F_SECRET = 1 << 1,  /* shown as "***" when redacted */
    F_URL = 1 << 2,     /* a URL whose password is masked when redacted */
    F_ABSENT = 1 << 3   /* lmc_table: an LMCache key kvtier lacks */
};

struct conf_desc {
    const char *name;
    kvt_config_type type;
    const char *def; /* "" = unset (optional keys); in lmc_table the disabled value, NULL = any */
    const char *env; /* NULL: only through LMCACHE_EXTRA_CONFIG */
    unsigned flags;
    conf_check_fn check; /* runs after type and range checks, NULL if none */
    int64_t ilo, ihi;    /* INT range, inclusive */
    double flo, fhi;     /* FLOAT range, inclusive */
    const char *doc;
};

struct conf_val {
    bool set; /* false only for an optional key without a value */
    kvt_config_source src;
    bool b;
    int64_t i;
    double f;
    char *s;      /* STRING, owned */
    char **items; /* LIST, owned, NULL-terminated */
    size_t n;
    /* The value as written, while it is validated, so that an error quotes "-10" rather
     * than the number read back ("-1e+01"); borrowed, never stored. NULL if not text. */
    const char *text;
};

static int check_disk_paths(const struct conf_desc *d, struct conf_val *v);
static int check_abs_paths(const struct conf_desc *d, struct conf_val *v);
static int check_abs_path(const struct conf_desc *d, struct conf_val *v);
static int check_url(const struct conf_desc *d, struct conf_val *v);
static int check_serde(const struct conf_desc *d, struct conf_val *v);
static int check_policy(const struct conf_desc *d, struct conf_val *v);
static int check_hash(const struct conf_desc *d, struct conf_val *v);
static int check_name(const struct conf_desc *d, struct conf_val *v);
static int check_names(const struct conf_desc *d, struct conf_val *v);
static int check_host(const struct conf_desc *d, struct conf_val *v);
static int check_indexes(const struct conf_desc *d, struct conf_val *v);
static int check_token(const struct conf_desc *d, struct conf_val *v);
static int check_fallback(const struct conf_desc *d, struct conf_val *v);

#define ENV(upper) "LMCACHE_" upper
#define B(n, def, env, fl, fn, doc)                                                               \
    { n, KVT_CONF_BOOL, def, env, fl, fn, 0, 0, 0, 0, doc }
#define I(n, def, env, fl, lo, hi, doc)                                                           \
    { n, KVT_CONF_INT, def, env, fl, NULL, lo, hi, 0, 0, doc }
#define F(n, def, env, fl, lo, hi, doc)                                                           \
    { n, KVT_CONF_FLOAT, def, env, fl, NULL, 0, 0, lo, hi, doc }
#define S(n, def, env, fl, fn, doc)                                                               \
    { n, KVT_CONF_STRING, def, env, fl, fn, 0, 0, 0, 0, doc }
#define L(n, env, fl, fn, doc)                                                                    \
    { n, KVT_CONF_LIST, "", env, fl, fn, 0, 0, 0, 0, doc }
#define XB(sub, def, doc) B("extra_config." sub, def, NULL, F_RUNTIME, NULL, doc)
#define XI(sub, def, lo, hi, doc) I("extra_config." sub, def, NULL, F_RUNTIME, lo, hi, doc)
#define XF(sub, def, lo, hi, doc) F("extra_config." sub, def, NULL, F_RUNTIME, lo, hi, doc)

/* MiB such that the byte count still fits an int64_t. */
#define MIB_MAX (INT64_MAX >> 20)
/* GiB sizes stop at 1 PiB: GiB * 2^30 then stays below 2^50, so converting the byte count
 * to uint64_t is exact and defined (1e30 GiB was accepted and overflowed it). */
#define GIB_MAX 1048576.0

static const struct conf_desc conf_table[] = {
    I("chunk_size", "256", ENV("CHUNK_SIZE"), 0, 1, 1048576, "Tokens per chunk."),
    B("local_cpu", "true", ENV("LOCAL_CPU"), 0, NULL,
      "LocalCPU stores entries; false keeps it as the allocator only."),
    F("max_local_cpu_size", "5.0", ENV("MAX_LOCAL_CPU_SIZE"), 0, 0.0, GIB_MAX,
      "GiB of CPU cache; 0 disables LocalCPU."),
    F("reserve_local_cpu_size", "0.0", ENV("RESERVE_LOCAL_CPU_SIZE"), 0, 0.0, GIB_MAX,
      "GiB of host memory kept out of the CPU pool: caps it at RAM minus this."),
    S("local_disk", "", ENV("LOCAL_DISK"), F_RUNTIME, check_disk_paths,
      "LocalDisk directory; optional file:// prefix; CSV for several absolute paths."),
    F("max_local_disk_size", "0.0", ENV("MAX_LOCAL_DISK_SIZE"), F_RUNTIME, 0.0, GIB_MAX,
      "GiB of LocalDisk cache; LocalDisk needs more than 0."),
    B("local_disk_odirect", "true", ENV("LOCAL_DISK_ODIRECT"), 0, NULL,
      "kvtier: LocalDisk uses O_DIRECT (buffered where a directory refuses it, e.g. tmpfs); "
      "when unset, an explicit extra_config.use_odirect decides."),
    I("local_disk_queue_depth", "32", ENV("LOCAL_DISK_QUEUE_DEPTH"), 0, 1, 4096,
      "kvtier: LocalDisk I/O requests in flight per batch (io_uring queue depth)."),
    I("local_disk_request_kib", "2048", ENV("LOCAL_DISK_REQUEST_KIB"), 0, 4, 65536,
      "kvtier: KiB per LocalDisk I/O request (rounded up to 4 KiB); a chunk is split into "
      "requests so the device sees the queue depth."),
    B("local_disk_fsync", "false", ENV("LOCAL_DISK_FSYNC"), 0, NULL,
      "kvtier: fdatasync each LocalDisk file and fsync its directory before a put completes; "
      "off loses recent chunks on power loss but never serves a torn one (checksums)."),
    B("local_disk_io_uring", "true", ENV("LOCAL_DISK_IO_URING"), 0, NULL,
      "kvtier: LocalDisk uses io_uring; false forces pread/pwrite threads (also the "
      "automatic fallback when the kernel refuses io_uring)."),
    S("gds_path", "", ENV("GDS_PATH"), F_RUNTIME, check_abs_paths,
      "GDS root directory; CSV for several absolute paths."),
    I("gds_buffer_size", "0", ENV("GDS_BUFFER_SIZE"), F_RUNTIME, 0, MIB_MAX,
      "MiB of GDS bounce buffer; 0 = unset."),
    F("max_gds_size", "0.0", ENV("MAX_GDS_SIZE"), F_RUNTIME, 0.0, GIB_MAX,
      "kvtier: GiB cap of GdsBackend; GdsBackend needs more than 0."),
    B("use_gds", "true", ENV("USE_GDS"), F_RUNTIME, NULL,
      "GDS uses cuFile I/O; false = POSIX I/O plus memcpy."),
    S("remote_url", "", ENV("REMOTE_URL"), F_RUNTIME | F_URL, check_url,
      "Remote tier URL: fs://, redis:// or unix://; passwords are masked when shown."),
    S("remote_serde", "naive", ENV("REMOTE_SERDE"), 0, check_serde,
      "Remote serializer; kvtier implements naive only."),
    I("blocking_timeout_secs", "10", ENV("BLOCKING_TIMEOUT_SECS"), F_RUNTIME, 1, 3600,
      "Seconds a remote get or contains may block."),
    I("remote_op_timeout_ms", "0", ENV("REMOTE_OP_TIMEOUT_MS"), F_RUNTIME, 0, 3600000,
      "kvtier: ms one RemoteBackend call may take end to end (connect included); "
      "0 = blocking_timeout_secs."),
    I("remote_connect_timeout_ms", "5000", ENV("REMOTE_CONNECT_TIMEOUT_MS"), F_RUNTIME, 1,
      600000, "kvtier: ms a Redis connect may take (capped by the operation timeout)."),
    I("remote_reconnect_interval_ms", "1000", ENV("REMOTE_RECONNECT_INTERVAL_MS"), F_RUNTIME, 0,
      3600000, "kvtier: after a failed Redis connection, ms before the next connect attempt; "
      "calls meanwhile fail at once (KVT_EUNAVAIL)."),
    I("remote_pool_size", "4", ENV("REMOTE_POOL_SIZE"), F_RUNTIME, 1, 64,
      "kvtier: Redis connections per RemoteBackend, so puts and gets run in parallel."),
    B("remote_fs_fsync", "true", ENV("REMOTE_FS_FSYNC"), F_RUNTIME, NULL,
      "kvtier: fs:// fsyncs each file and its directory around the rename; false trades "
      "crash durability for speed."),
    S("cache_policy", "LRU", ENV("CACHE_POLICY"), F_RUNTIME, check_policy,
      "Eviction policy; kvtier implements LRU only."),
    B("save_unfull_chunk", "false", ENV("SAVE_UNFULL_CHUNK"), 0, NULL,
      "Keep the trailing partial chunk."),
    S("pre_caching_hash_algorithm", "builtin", ENV("PRE_CACHING_HASH_ALGORITHM"), 0, check_hash,
      "Must be builtin: chunk hashes come from the caller or kvt_hash_tokens (xxh3)."),
    S("store_location", "", ENV("STORE_LOCATION"), 0, check_name,
      "Backend name; restricts puts to that backend."),
    L("retrieve_locations", ENV("RETRIEVE_LOCATIONS"), 0, check_names,
      "Backend names; restricts lookup and get to those backends."),
    B("internal_api_server_enabled", "false", ENV("INTERNAL_API_SERVER_ENABLED"), 0, NULL,
      "Start the admin HTTP server."),
    S("internal_api_server_host", "127.0.0.1", ENV("INTERNAL_API_SERVER_HOST"), 0, check_host,
      "Admin server bind address; a non-loopback address needs an auth token."),
    I("internal_api_server_port_start", "6999", ENV("INTERNAL_API_SERVER_PORT_START"), 0, 1,
      65535, "Admin server base port."),
    L("internal_api_server_include_index_list", ENV("INTERNAL_API_SERVER_INCLUDE_INDEX_LIST"), 0,
      check_indexes, "Worker indexes that start an admin server; unset = all."),
    S("internal_api_server_socket_path_prefix", "", ENV("INTERNAL_API_SERVER_SOCKET_PATH_PREFIX"),
      0, check_abs_path, "Absolute path prefix of the admin Unix socket; unset = TCP."),
    S("internal_api_server_auth_token", "", ENV("INTERNAL_API_SERVER_AUTH_TOKEN"), F_SECRET,
      check_token, "Bearer token every admin route but GET /healthz requires; never shown."),
    B("internal_api_server_allow_insecure", "false", ENV("INTERNAL_API_SERVER_ALLOW_INSECURE"), 0,
      NULL, "kvtier: let the admin server bind a non-loopback host without an auth token "
      "(anyone who reaches the port can then close backends and change config)."),
    I("internal_api_server_max_connections", "16", ENV("INTERNAL_API_SERVER_MAX_CONNECTIONS"), 0,
      1, 1024, "kvtier: admin connections served at once, one thread each (a draining close "
      "holds its thread, never another client's)."),
    I("internal_api_server_connection_timeout_secs", "10",
      ENV("INTERNAL_API_SERVER_CONNECTION_TIMEOUT_SECS"), 0, 1, 3600,
      "kvtier: seconds an idle admin connection is kept open."),
    I("write_queue_depth", "64", ENV("WRITE_QUEUE_DEPTH"), 0, 1, 65536,
      "kvtier: bound of each tier's write-through queue."),
    I("write_queue_timeout_ms", "10", ENV("WRITE_QUEUE_TIMEOUT_MS"), F_RUNTIME, 0, 60000,
      "kvtier: ms a put waits on a full write-through queue before skipping that tier's copy "
      "(counted as wt_skipped); 0 = never wait. 10 ms is about the time to copy one large "
      "chunk: it absorbs a healthy tier's jitter while a hung tier costs each put at most "
      "this."),
    I("backend_close_timeout_ms", "10000", ENV("BACKEND_CLOSE_TIMEOUT_MS"), F_RUNTIME, 0, 3600000,
      "kvtier: ms kvt_backend_close waits for a tier's in-flight calls and queue; past it the "
      "tier stays DRAINING and the close returns KVT_ETIMEDOUT."),
    I("breaker_failures", "5", ENV("BREAKER_FAILURES"), F_RUNTIME, 1, 1000000,
      "kvtier: consecutive failures (timeouts, I/O errors; not misses) that open a tier's "
      "circuit breaker: the tier is bypassed until a probe succeeds."),
    I("breaker_backoff_ms", "1000", ENV("BREAKER_BACKOFF_MS"), F_RUNTIME, 10, 3600000,
      "kvtier: ms an open breaker waits before its first probe; doubled after each failed "
      "probe."),
    I("breaker_backoff_max_ms", "60000", ENV("BREAKER_BACKOFF_MAX_MS"), F_RUNTIME, 10, 86400000,
      "kvtier: cap of the breaker's back-off, so a tier that recovers is back within this."),
    /* extra_config subkeys: only through LMCACHE_EXTRA_CONFIG or a file's extra_config map. */
    XI("disk_io_threads", "4", 0, 256, "LocalDisk I/O threads; 0 = no pool."),
    XB("use_odirect", "false", "LocalDisk O_DIRECT when the length is block-aligned."),
    XI("max_alloc_attempts", "10", 1, 1000, "Allocation attempts of a GDS read."),
    XF("allocation_attempt_delay_secs", "0.1", 0.0, 60.0, "Seconds between allocation attempts."),
    XI("local_cpu.evict_batch_candidates", "16", 1, 4096,
       "LMCache's eviction batch; accepted, not needed: kvtier evicts exactly what a put "
       "needs, in O(1)."),
    XB("save_chunk_meta", "true", "Remote values carry the 28-byte chunk header."),
    XB("use_exists_sync", "false", "Remote contains is synchronous."),
    S("extra_config.fallback_policy", "recompute", NULL, F_RUNTIME, check_fallback,
      "When Remote is unhealthy: recompute or local_cpu."),
    XI("ping_interval", "30", 1, 86400, "Seconds between Remote health pings."),
    XI("ping_timeout", "5", 1, 3600, "Seconds a Remote health ping may take."),
    XI("waiting_time_for_recovery", "300", 0, 86400,
       "Seconds an unhealthy Remote waits before it is retried."),
    XI("get_blocking_failed_threshold", "10", 1, 1000000,
       "Failed gets per interval that mark Remote unhealthy."),
};

#define CONF_N KVT__ARRAY_LEN(conf_table)

/* LMCache keys kvtier lacks, so that an LMCache file or environment still loads: the
 * value that leaves the feature off (LMCache's default) is accepted and ignored with an
 * INFO notice; any other value asks for the feature and is an error naming it. A key
 * here has no value slot: getters do not know it and POST /conf calls it unknown. */
#define G(n, t, off, feature) { n, KVT_CONF_##t, off, NULL, F_ABSENT, NULL, 0, 0, 0, 0, feature }
#define ANY NULL /* no value asks for anything: the key means nothing outside LMCache */
#define NO_CODE ": kvtier never loads code from configuration"
static const struct conf_desc lmc_table[] = {
    G("storage_plugins", LIST, "", "storage plugins" NO_CODE),
    G("external_backends", LIST, "", "storage plugins (old name of storage_plugins)" NO_CODE),
    G("remote_storage_plugins", LIST, "", "remote storage plugins" NO_CODE),
    G("runtime_plugin_locations", LIST, "", "runtime plugins" NO_CODE),
    G("plugin_locations", LIST, "",
      "runtime plugins (old name of runtime_plugin_locations)" NO_CODE),
    G("script_allowed_imports", LIST, "", "run_script admin route" NO_CODE),
    G("use_layerwise", BOOL, "false", "layer-wise KV transfer"),
    G("save_decode_cache", BOOL, "false", "decode-cache saving"),
    G("enable_async_loading", BOOL, "false", "asynchronous loading"),
    G("enable_scheduler_bypass_lookup", BOOL, "false", "scheduler lookup bypass"),
    G("use_gpu_connector_v3", BOOL, "false", "v3 GPU connector"),
    G("enable_kv_events", BOOL, "false", "KV cache events"),
    G("enable_hidden_state_cache", BOOL, "false", "hidden-state cache"),
    G("enable_chunk_statistics", BOOL, "false", "chunk statistics"),
    G("enable_lazy_memory_allocator", BOOL, "false", "lazy memory allocator"),
    G("local_cpu_use_hugepages", BOOL, "false", "huge-page CPU pool"),
    G("numa_mode", STRING, "", "NUMA-aware allocation"),
    G("min_retrieve_tokens", INT, "0", "minimum retrieve length"),
    G("priority_limit", INT, "", "priority-based storing"),
    G("external_lookup_client", STRING, "", "external lookup client"),
    G("py_enable_gc", BOOL, ANY, "Python garbage collection"),
    G("enable_blending", BOOL, "false", "CacheBlend"),
    G("blend_recompute_ratios", LIST, "", "CacheBlend"),
    G("blend_thresholds", LIST, "", "CacheBlend"),
    G("blend_check_layers", LIST, "", "CacheBlend"),
    G("blend_min_tokens", INT, "256", "CacheBlend"),
    G("blend_special_str", STRING, " # # ", "CacheBlend"),
    G("enable_controller", BOOL, "false", "controller"),
    G("lmcache_instance_id", STRING, ANY, "controller instance names"),
    G("controller_url", STRING, "", "controller"),
    G("controller_pull_url", STRING, "", "controller"),
    G("controller_reply_url", STRING, "", "controller"),
    G("lmcache_worker_port", INT, "", "controller workers"),
    G("lmcache_worker_ports", LIST, "", "controller workers"),
    G("lmcache_worker_ids", LIST, "", "controller workers"),
    G("lmcache_worker_heartbeat_time", INT, "", "controller workers"),
    G("distributed_url", STRING, "", "distributed lookup"),
    G("enable_p2p", BOOL, "false", "peer-to-peer sharing"),
    G("p2p_host", STRING, "", "peer-to-peer sharing"),
    G("p2p_init_ports", LIST, "", "peer-to-peer sharing"),
    G("p2p_lookup_ports", LIST, "", "peer-to-peer sharing"),
    G("transfer_channel", STRING, "", "peer-to-peer and PD transfer channels"),
    G("enable_pd", BOOL, "false", "disaggregated prefill"),
    G("enable_xpyd", BOOL, "false", "disaggregated prefill (old name of enable_pd)"),
    G("pd_role", STRING, "", "disaggregated prefill"),
    G("pd_buffer_size", INT, "", "disaggregated prefill"),
    G("pd_buffer_device", STRING, "", "disaggregated prefill"),
    G("pd_peer_host", STRING, "", "disaggregated prefill"),
    G("pd_peer_init_port", LIST, "", "disaggregated prefill"),
    G("pd_peer_alloc_port", LIST, "", "disaggregated prefill"),
    G("pd_proxy_host", STRING, "", "disaggregated prefill"),
    G("pd_proxy_port", INT, "", "disaggregated prefill"),
    G("nixl_role", STRING, "", "NIXL transfer"),
    G("nixl_peer_host", STRING, "", "NIXL transfer"),
    G("nixl_peer_port", INT, "", "NIXL transfer"),
    G("nixl_proxy_host", STRING, "", "NIXL transfer"),
    G("nixl_proxy_port", INT, "", "NIXL transfer"),
    G("nixl_buffer_size", INT, "", "NIXL transfer"),
    G("nixl_buffer_device", STRING, "", "NIXL transfer"),
    G("nixl_backends", LIST, "", "NIXL transfer"),
    G("maru_path", STRING, "", "Maru CXL backend"),
    G("mp_host", STRING, "", "multi-process server"),
    G("mp_port", INT, "5555", "multi-process server"),
    G("remote_config_url", STRING, "", "remote configuration service"),
    G("audit_actual_remote_url", STRING, "", "remote auditing"),
};
#undef G
#undef ANY
#undef NO_CODE

#define LMC_N KVT__ARRAY_LEN(lmc_table)

/* Indexes below CONF_N are conf_table rows with a value slot; the next LMC_N name
 * lmc_table rows, so that one lookup and one set of put calls serve both. */
static const struct conf_desc *desc(size_t idx)
{
    return idx < CONF_N ? &conf_table[idx] : &lmc_table[idx - CONF_N];
}

/* Something a load noticed but that is no error; the store logs them when it opens. */
struct conf_note {
    kvt_log_level level;
    char *text;
};

struct kvt_config {
    struct conf_val v[CONF_N];
    struct conf_note *notes;
    size_t nnotes;
};

/* ------------------------------------------------------------ values */

/* A key whose value may be unset: an optional string or list, or an lmc_table key whose
 * disabled value is "unset". */
static bool optional(const struct conf_desc *d) { return d->def && d->def[0] == '\0'; }

static void val_free(struct conf_val *v)
{
    free(v->s);
    if (v->items) {
        for (size_t k = 0; k < v->n; k++)
            free(v->items[k]);
        free(v->items);
    }
    *v = (struct conf_val){ .src = v->src };
}

/* Takes ownership of nothing: copies `n` items into a fresh NULL-terminated array. */
static int val_set_items(struct conf_val *v, const char *const *items, size_t n)
{
    char **a = calloc(n + 1, sizeof *a);
    if (!a)
        return kvt__fail(KVT_ENOMEM, "out of memory");
    for (size_t k = 0; k < n; k++) {
        if (!(a[k] = strdup(items[k]))) {
            for (size_t j = 0; j < k; j++)
                free(a[j]);
            free(a);
            return kvt__fail(KVT_ENOMEM, "out of memory");
        }
    }
    v->items = a;
    v->n = n;
    v->set = n > 0; /* an empty list is the same as no list */
    return KVT_OK;
}

static int val_copy(struct conf_val *dst, const struct conf_val *src)
{
    *dst = *src;
    dst->s = NULL;
    dst->items = NULL;
    dst->n = 0;
    dst->text = NULL;
    if (src->s && !(dst->s = strdup(src->s)))
        return kvt__fail(KVT_ENOMEM, "out of memory");
    if (src->items) {
        int rc = val_set_items(dst, (const char *const *)src->items, src->n);
        if (rc != KVT_OK) {
            val_free(dst);
            return rc;
        }
        dst->set = src->set;
    }
    return KVT_OK;
}

/* Shortest text that reads back as the same double, always with a '.' or an exponent so
 * that it still looks like a float ("5.0", "0.1", "1e-05"). Plain notation where it stays
 * short: %g alone writes -10 as "-1e+01", which nobody wrote. */
static void fmt_float(double f, char *buf, size_t cap)
{
    bool plain = fabs(f) >= 1e-4 && fabs(f) < 1e16; /* 17 digits need at most 21 decimals */
    for (int prec = plain ? 0 : 1; prec <= (plain ? 21 : 17); prec++) {
        snprintf(buf, cap, plain ? "%.*f" : "%.*g", prec, f);
        if (strtod(buf, NULL) == f)
            break;
    }
    if (!strpbrk(buf, ".eEn") && strlen(buf) + 3 <= cap)
        strcat(buf, ".0");
}

/* Copies text[0..len) into buf, keeping it NUL-terminated; false when it did not fit. */
static bool append(char *buf, size_t cap, size_t *at, const char *text, size_t len)
{
    bool fit = true;
    if (*at + len >= cap) {
        len = cap > *at + 1 ? cap - *at - 1 : 0;
        fit = false;
    }
    if (cap > *at) {
        memcpy(buf + *at, text, len);
        buf[*at + len] = '\0';
    }
    *at += len;
    return fit;
}

/* Masks the password of a URL: "redis://user:pw@h" -> "redis://user:***@h", and the
 * value of a "password=" query parameter (redis-py's unix:// form). */
static bool mask_url(const char *url, char *buf, size_t cap)
{
    size_t at = 0;
    bool fit = true;
    const char *p = url;
    const char *sep = strstr(url, "://");
    if (cap)
        buf[0] = '\0';
    if (sep) {
        const char *auth = sep + 3;
        size_t alen = strcspn(auth, "/?#");
        const char *at_sign = NULL;
        for (size_t k = 0; k < alen; k++)
            if (auth[k] == '@')
                at_sign = auth + k;
        const char *colon = at_sign ? memchr(auth, ':', (size_t)(at_sign - auth)) : NULL;
        if (colon) {
            fit &= append(buf, cap, &at, url, (size_t)(colon + 1 - url));
            fit &= append(buf, cap, &at, "***", 3);
            p = at_sign;
        }
    }
    for (const char *pw; (pw = strstr(p, "password=")) != NULL;) {
        bool param = pw > url && (pw[-1] == '?' || pw[-1] == '&');
        fit &= append(buf, cap, &at, p, (size_t)(pw + 9 - p));
        p = pw + 9;
        if (param) {
            fit &= append(buf, cap, &at, "***", 3);
            p += strcspn(p, "&#");
        }
    }
    fit &= append(buf, cap, &at, p, strlen(p));
    return fit;
}

/* The text form of a value; secrets masked when `redact`. False when truncated. */
static bool val_text(const struct conf_desc *d, const struct conf_val *v, bool redact, char *buf,
                     size_t cap)
{
    char num[64];
    size_t at = 0;
    bool fit = true;
    if (cap)
        buf[0] = '\0';
    if (!v->set)
        return true;
    if (redact && (d->flags & F_SECRET))
        return append(buf, cap, &at, "***", 3);
    switch (d->type) {
    case KVT_CONF_BOOL:
        return append(buf, cap, &at, v->b ? "true" : "false", v->b ? 4 : 5);
    case KVT_CONF_INT:
        snprintf(num, sizeof num, "%" PRId64, v->i);
        return append(buf, cap, &at, num, strlen(num));
    case KVT_CONF_FLOAT:
        fmt_float(v->f, num, sizeof num);
        return append(buf, cap, &at, num, strlen(num));
    case KVT_CONF_STRING:
        if (redact && (d->flags & F_URL))
            return mask_url(v->s, buf, cap);
        return append(buf, cap, &at, v->s, strlen(v->s));
    case KVT_CONF_LIST:
        for (size_t k = 0; k < v->n; k++) {
            if (k)
                fit &= append(buf, cap, &at, ",", 1);
            fit &= append(buf, cap, &at, v->items[k], strlen(v->items[k]));
        }
        return fit;
    }
    return true;
}

/* ------------------------------------------------------------ errors */

/* `invalid value "<text>" for <key>: <reason>`, with the value masked as get_text would
 * show it, so a rejected token or password never reaches kvt_last_error(). */
static int bad_text(const struct conf_desc *d, const char *text, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int bad_text(const struct conf_desc *d, const char *text, const char *fmt, ...)
{
    char reason[320], shown[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    if (!text)
        return kvt__fail(KVT_ECONFIG, "invalid value null for %s: %s", d->name, reason);
    if (d->flags & F_SECRET)
        kvt__strlcpy(shown, "***", sizeof shown);
    else if (d->flags & F_URL)
        mask_url(text, shown, sizeof shown);
    else
        kvt__strlcpy(shown, text, sizeof shown);
    return kvt__fail(KVT_ECONFIG, "invalid value \"%s\" for %s: %s", shown, d->name, reason);
}

/* Same, for a value already converted (validators): quotes it as written when it came
 * from text, else in its text form. */
static int bad(const struct conf_desc *d, const struct conf_val *v, const char *reason)
{
    char text[200];
    if (v->text)
        return bad_text(d, v->text, "%s", reason);
    val_text(d, v, false, text, sizeof text);
    return bad_text(d, text, "%s", reason);
}

/* ------------------------------------------------------------ validators */

static bool is_abs(const char *p) { return p[0] == '/'; }

/* Splits a CSV string into trimmed, non-empty items and calls `fn` on each. */
static int each_csv(const struct conf_desc *d, struct conf_val *v, const char *strip,
                    int (*fn)(const struct conf_desc *, struct conf_val *, const char *))
{
    char item[4096];
    const char *p = v->s;
    while (*p) {
        size_t len = strcspn(p, ",");
        const char *b = p, *e = p + len;
        while (b < e && isspace((unsigned char)*b))
            b++;
        while (e > b && isspace((unsigned char)e[-1]))
            e--;
        if ((size_t)(e - b) >= sizeof item)
            return bad(d, v, "path too long");
        memcpy(item, b, (size_t)(e - b));
        item[e - b] = '\0';
        const char *path = item;
        if (strip && strncmp(path, strip, strlen(strip)) == 0)
            path += strlen(strip);
        if (item[0]) {
            int rc = fn(d, v, path);
            if (rc != KVT_OK)
                return rc;
        }
        p += len + (p[len] == ',');
    }
    return KVT_OK;
}

static int path_item(const struct conf_desc *d, struct conf_val *v, const char *path)
{
    char why[300];
    if (is_abs(path))
        return KVT_OK;
    snprintf(why, sizeof why, "\"%.200s\" is not an absolute path", path);
    return bad(d, v, why);
}

static int check_disk_paths(const struct conf_desc *d, struct conf_val *v)
{
    return each_csv(d, v, "file://", path_item);
}

static int check_abs_paths(const struct conf_desc *d, struct conf_val *v)
{
    return each_csv(d, v, NULL, path_item);
}

static int check_abs_path(const struct conf_desc *d, struct conf_val *v)
{
    return is_abs(v->s) ? KVT_OK : bad(d, v, "expected an absolute path");
}

static int check_url(const struct conf_desc *d, struct conf_val *v)
{
    static const char *const ok[] = { "fs", "redis", "unix" };
    char scheme[32];
    const char *sep = strstr(v->s, "://");
    size_t len = sep ? (size_t)(sep - v->s) : 0;
    if (!sep || len == 0)
        return bad(d, v, "No adapter found for URL");
    if (len >= sizeof scheme)
        len = sizeof scheme - 1;
    memcpy(scheme, v->s, len);
    scheme[len] = '\0';
    for (size_t k = 0; k < KVT__ARRAY_LEN(ok); k++)
        if (strcasecmp(scheme, ok[k]) == 0)
            return KVT_OK;
    if (strcasecmp(scheme, "rediss") == 0)
        return bad(d, v, "unsupported scheme rediss: TLS (rediss://) is not supported: "
                         "hiredis 0.14 has no TLS");
    if (strcasecmp(scheme, "plugin") == 0 || strcasecmp(scheme, "external") == 0)
        return bad_text(d, v->s, "unsupported scheme %s: %s:// connectors load code, and kvtier "
                                 "never loads code from configuration", scheme, scheme);
    return bad_text(d, v->s, "unsupported scheme %s: remote_url scheme \"%s\" is not "
                             "implemented in kvtier", scheme, scheme);
}

static int check_serde(const struct conf_desc *d, struct conf_val *v)
{
    if (strcmp(v->s, "naive") == 0)
        return KVT_OK;
    if (strcmp(v->s, "kivi") == 0 || strcmp(v->s, "cachegen") == 0)
        return bad(d, v, "not implemented in kvtier (only naive)");
    return bad(d, v, "unknown serializer (kvtier implements naive only)");
}

static int check_policy(const struct conf_desc *d, struct conf_val *v)
{
    static const char *const lmcache_only[] = { "LFU", "FIFO", "MRU", "COST_AWARE" };
    if (strcasecmp(v->s, "LRU") == 0) {
        strcpy(v->s, "LRU"); /* same length; readers compare exactly */
        return KVT_OK;
    }
    for (size_t k = 0; k < KVT__ARRAY_LEN(lmcache_only); k++)
        if (strcasecmp(v->s, lmcache_only[k]) == 0)
            return bad(d, v, "not implemented in kvtier (only LRU)");
    return bad(d, v, "unknown cache policy (kvtier implements LRU only)");
}

static int check_hash(const struct conf_desc *d, struct conf_val *v)
{
    if (strcmp(v->s, "builtin") == 0)
        return KVT_OK;
    return bad(d, v, "kvtier takes chunk hashes from the caller or kvt_hash_tokens (xxh3); "
                     "only builtin is accepted");
}

static bool is_name(const char *s)
{
    size_t len = strlen(s);
    if (len < 1 || len > 63)
        return false;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("_.-", *p))
            return false;
    return true;
}

static int check_name(const struct conf_desc *d, struct conf_val *v)
{
    return is_name(v->s) ? KVT_OK : bad(d, v, "expected a backend name ([A-Za-z0-9_.-]{1,63})");
}

static int check_names(const struct conf_desc *d, struct conf_val *v)
{
    char why[300];
    for (size_t k = 0; k < v->n; k++) {
        if (!is_name(v->items[k])) {
            snprintf(why, sizeof why, "\"%.200s\" is not a backend name ([A-Za-z0-9_.-]{1,63})",
                     v->items[k]);
            return bad(d, v, why);
        }
    }
    return KVT_OK;
}

static int check_host(const struct conf_desc *d, struct conf_val *v)
{
    if (v->s[0] == '\0' || strlen(v->s) > 255)
        return bad(d, v, "expected a host name or address");
    for (const char *p = v->s; *p; p++)
        if (isspace((unsigned char)*p) || iscntrl((unsigned char)*p) || *p == '/')
            return bad(d, v, "expected a host name or address");
    return KVT_OK;
}

static int check_indexes(const struct conf_desc *d, struct conf_val *v)
{
    char why[300];
    for (size_t k = 0; k < v->n; k++) {
        const char *s = v->items[k];
        size_t len = strspn(s, "0123456789");
        if (len == 0 || s[len] != '\0' || len > 9) {
            snprintf(why, sizeof why, "\"%.200s\" is not a non-negative integer", s);
            return bad(d, v, why);
        }
    }
    return KVT_OK;
}

static int check_token(const struct conf_desc *d, struct conf_val *v)
{
    /* It travels in an HTTP header: a CR or LF could never be matched (or would split it). */
    for (const char *p = v->s; *p; p++)
        if (iscntrl((unsigned char)*p) || *p == ' ')
            return bad(d, v, "spaces and control characters are not allowed");
    return KVT_OK;
}

static int check_fallback(const struct conf_desc *d, struct conf_val *v)
{
    if (strcmp(v->s, "recompute") == 0 || strcmp(v->s, "local_cpu") == 0)
        return KVT_OK;
    return bad(d, v, "expected recompute or local_cpu");
}

/* Type-independent checks every value passes, whatever its source. */
static int validate(const struct conf_desc *d, struct conf_val *v)
{
    if (!v->set)
        return optional(d) ? KVT_OK : bad_text(d, NULL, "a value is required");
    if (d->type == KVT_CONF_INT && (v->i < d->ilo || v->i > d->ihi)) {
        char why[128];
        snprintf(why, sizeof why, "expected an integer in [%" PRId64 ", %" PRId64 "]", d->ilo,
                 d->ihi);
        return bad(d, v, why);
    }
    if (d->type == KVT_CONF_FLOAT) {
        if (!isfinite(v->f))
            return bad(d, v, "expected a finite number");
        if (v->f < d->flo || v->f > d->fhi) {
            char why[160], lo[64], hi[64];
            fmt_float(d->flo, lo, sizeof lo);
            fmt_float(d->fhi, hi, sizeof hi);
            snprintf(why, sizeof why, "expected a number in [%s, %s]", lo, hi);
            return bad(d, v, why);
        }
    }
    return d->check ? d->check(d, v) : KVT_OK;
}

/* ------------------------------------------------------------ text conversion */

static void trim(const char *text, const char **b, const char **e)
{
    *b = text;
    *e = text + strlen(text);
    while (*b < *e && isspace((unsigned char)**b))
        (*b)++;
    while (*e > *b && isspace((unsigned char)(*e)[-1]))
        (*e)--;
}

static bool is_null_text(const char *text)
{
    return text[0] == '\0' || strcasecmp(text, "null") == 0;
}

static int parse_bool(const struct conf_desc *d, const char *text, struct conf_val *v)
{
    static const char *const yes[] = { "true", "1", "yes" }, *const no[] = { "false", "0", "no" };
    const char *b, *e;
    trim(text, &b, &e);
    for (size_t k = 0; k < 3; k++) {
        if (strlen(yes[k]) == (size_t)(e - b) && strncasecmp(b, yes[k], (size_t)(e - b)) == 0) {
            v->b = true;
            v->set = true;
            return KVT_OK;
        }
        if (strlen(no[k]) == (size_t)(e - b) && strncasecmp(b, no[k], (size_t)(e - b)) == 0) {
            v->b = false;
            v->set = true;
            return KVT_OK;
        }
    }
    return bad_text(d, text, "expected a boolean (true/false/1/0/yes/no)");
}

static int parse_int(const struct conf_desc *d, const char *text, struct conf_val *v)
{
    char num[64], *end;
    const char *b, *e;
    trim(text, &b, &e);
    if (e == b || (size_t)(e - b) >= sizeof num)
        return bad_text(d, text, "expected an integer");
    memcpy(num, b, (size_t)(e - b));
    num[e - b] = '\0';
    errno = 0;
    long long i = strtoll(num, &end, 10);
    if (*end != '\0' || end == num || isspace((unsigned char)num[0]))
        return bad_text(d, text, "expected an integer");
    if (errno == ERANGE)
        return bad_text(d, text, "integer out of range");
    v->i = i;
    v->set = true;
    return KVT_OK;
}

static int parse_float(const struct conf_desc *d, const char *text, struct conf_val *v)
{
    char num[128], *end;
    const char *b, *e;
    trim(text, &b, &e);
    if (e == b || (size_t)(e - b) >= sizeof num)
        return bad_text(d, text, "expected a number");
    memcpy(num, b, (size_t)(e - b));
    num[e - b] = '\0';
    double f = strtod(num, &end);
    if (*end != '\0' || end == num)
        return bad_text(d, text, "expected a number");
    if (!isfinite(f))
        return bad_text(d, text, "expected a finite number");
    v->f = f;
    v->set = true;
    return KVT_OK;
}

static int parse_list(const char *text, struct conf_val *v)
{
    size_t cap = 1, n = 0;
    for (const char *p = text; *p; p++)
        cap += *p == ',';
    char **items = calloc(cap, sizeof *items), *copy = strdup(text);
    int rc = KVT_OK;
    if (!items || !copy) {
        rc = kvt__fail(KVT_ENOMEM, "out of memory");
        goto out;
    }
    for (char *p = copy, *next; p; p = next) {
        const char *b, *e;
        next = strchr(p, ',');
        if (next)
            *next++ = '\0';
        trim(p, &b, &e);
        *(char *)e = '\0';
        if (*b)
            items[n++] = (char *)b;
    }
    rc = val_set_items(v, (const char *const *)items, n);
out:
    free(items);
    free(copy);
    return rc;
}

/* Converts `text` the way an environment value is converted. */
static int parse_text(const struct conf_desc *d, const char *text, struct conf_val *v)
{
    if (optional(d) && is_null_text(text))
        return KVT_OK; /* unset */
    switch (d->type) {
    case KVT_CONF_BOOL:
        return parse_bool(d, text, v);
    case KVT_CONF_INT:
        return parse_int(d, text, v);
    case KVT_CONF_FLOAT:
        return parse_float(d, text, v);
    case KVT_CONF_STRING:
        if (!(v->s = strdup(text)))
            return kvt__fail(KVT_ENOMEM, "out of memory");
        v->set = true;
        return KVT_OK;
    case KVT_CONF_LIST:
        return parse_list(text, v);
    }
    return kvt__fail(KVT_EINVAL, "bad config type");
}

/* ------------------------------------------------------------ YAML 1.1 plain scalars */

/* LMCache files are read by PyYAML, which resolves plain scalars by YAML 1.1's rules:
 * `on`, `0400` (octal), `0x1F`, `1_000` are typed before LMCache sees them. Only the forms
 * the key's type can take are resolved here; anything else is converted as text. */

/* 1 or 0 for a boolean as PyYAML resolves it, -1 for none. The YAML 1.1 spec also lists
 * y/Y/n/N, but PyYAML leaves them strings (and LMCache then reads "y" as false), so here
 * they fall through to the text rules, which refuse them with an error naming the value
 * rather than guess. */
static int yaml_bool(const char *s)
{
    static const char *const yes[] = { "yes", "Yes", "YES", "true", "True", "TRUE",
                                       "on", "On", "ON" };
    static const char *const no[] = { "no", "No", "NO", "false", "False", "FALSE",
                                      "off", "Off", "OFF" };
    for (size_t k = 0; k < KVT__ARRAY_LEN(yes); k++) {
        if (strcmp(s, yes[k]) == 0)
            return 1;
        if (strcmp(s, no[k]) == 0)
            return 0;
    }
    return -1;
}

/* A YAML 1.1 integer: [-+]? then 0b101, 0x1F, 0400 (octal), 0 or [1-9][0-9]*, with '_'
 * anywhere after the first digit (sexagesimal 1:30 is not taken). 1 with `*out` set,
 * 0 when `s` is no such integer, -1 when it is one beyond int64_t. */
static int yaml_int(const char *s, int64_t *out)
{
    const char *p = s;
    bool neg = false;
    unsigned base = 10;
    uint64_t acc = 0, lim;
    size_t ndig = 0;
    bool over = false;
    if (*p == '+' || *p == '-')
        neg = *p++ == '-';
    if (p[0] == '0' && (p[1] == 'b' || p[1] == 'x')) {
        base = p[1] == 'b' ? 2 : 16;
        p += 2;
    } else if (p[0] == '0' && p[1] != '\0') {
        base = 8;
        p++;
        ndig = 1; /* the leading 0: "0_" is 0 */
    } else if (!(p[0] >= '0' && p[0] <= '9')) {
        return 0;
    }
    lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; *p; p++) {
        unsigned dv = (unsigned)kvt__hex_value(*p);
        if (*p == '_')
            continue;
        if (dv >= base)
            return 0; /* "1e3", "9999999999999999999.5": not an integer at all */
        over |= acc > (lim - dv) / base;
        acc = over ? acc : acc * base + dv;
        ndig++;
    }
    if (ndig == 0 || over)
        return ndig == 0 ? 0 : -1;
    *out = neg ? (acc == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)acc) : (int64_t)acc;
    return 1;
}

/* Copies the run of digits and '_' at `*p` into buf without the '_'; returns how many
 * characters it consumed. */
static size_t yaml_digits(const char **p, char *buf, size_t cap, size_t *at)
{
    size_t n = 0;
    for (; (**p >= '0' && **p <= '9') || **p == '_'; (*p)++, n++)
        if (**p != '_' && *at + 1 < cap)
            buf[(*at)++] = **p;
    return n;
}

/* A YAML 1.1 float: [-+]?[0-9][0-9_]*.[0-9_]*([eE][-+][0-9]+)?, .[0-9_]+(exponent)?,
 * [-+]?.inf, .nan (in the three spellings each). "1e3" is none: PyYAML leaves it a
 * string, which is then converted as text, the way LMCache's float() does. */
static bool yaml_float(const char *s, double *out)
{
    char buf[128], *end;
    size_t at = 0;
    const char *p = s;
    bool sign = *p == '+' || *p == '-';
    const char *inf = s + sign;
    if (strcmp(inf, ".inf") == 0 || strcmp(inf, ".Inf") == 0 || strcmp(inf, ".INF") == 0) {
        *out = *s == '-' ? -INFINITY : INFINITY;
        return true;
    }
    if (strcmp(s, ".nan") == 0 || strcmp(s, ".NaN") == 0 || strcmp(s, ".NAN") == 0) {
        *out = NAN;
        return true;
    }
    if (strlen(s) >= sizeof buf)
        return false;
    if (sign)
        buf[at++] = *p++;
    if (*p >= '0' && *p <= '9')
        yaml_digits(&p, buf, sizeof buf, &at);
    else if (sign || *p != '.')
        return false;
    if (*p != '.')
        return false;
    buf[at++] = *p++;
    if (yaml_digits(&p, buf, sizeof buf, &at) == 0 && at == 1 + (size_t)sign)
        return false; /* "." alone */
    if (*p == 'e' || *p == 'E') {
        buf[at++] = *p++;
        if (*p != '+' && *p != '-')
            return false;
        buf[at++] = *p++;
        if (!(*p >= '0' && *p <= '9'))
            return false;
        while (*p >= '0' && *p <= '9')
            buf[at++] = *p++;
    }
    buf[at] = '\0';
    if (*p != '\0')
        return false;
    *out = strtod(buf, &end);
    return *end == '\0';
}

/* ------------------------------------------------------------ storing */

static int lookup(const char *name, size_t *idx)
{
    for (size_t k = 0; k < CONF_N; k++) {
        if (strcmp(conf_table[k].name, name) == 0) {
            *idx = k;
            return KVT_OK;
        }
    }
    return KVT_ENOENT;
}

/* Same, lmc_table included. */
static int lookup_any(const char *name, size_t *idx)
{
    if (lookup(name, idx) == KVT_OK)
        return KVT_OK;
    for (size_t k = 0; k < LMC_N; k++) {
        if (strcmp(lmc_table[k].name, name) == 0) {
            *idx = CONF_N + k;
            return KVT_OK;
        }
    }
    return KVT_ENOENT;
}

int kvt__conf_lookup(const char *name, size_t *idx)
{
    static const char *const code[] = { "storage_plugin", "remote_storage_plugin",
                                        "external_backend" };
    static const char xc[] = "extra_config.";
    if (lookup_any(name, idx) == KVT_OK)
        return KVT_OK;
    if (strncmp(name, xc, sizeof xc - 1) == 0) {
        const char *sub = name + sizeof xc - 1;
        for (size_t k = 0; k < KVT__ARRAY_LEN(code); k++) {
            size_t len = strlen(code[k]);
            if (strncmp(sub, code[k], len) == 0 && (sub[len] == '\0' || sub[len] == '.'))
                return kvt__fail(KVT_ECONFIG,
                                 "config key \"%.200s\" is refused: kvtier never loads code from "
                                 "configuration", name);
        }
    }
    return kvt__fail(KVT_ECONFIG, "unknown config key \"%.200s\"", name);
}

size_t kvt__conf_slots(void) { return CONF_N + LMC_N; }

kvt_config_type kvt__conf_type(size_t idx) { return desc(idx)->type; }

const char *kvt__conf_name(size_t idx) { return desc(idx)->name; }

/* "LMCACHE_" and the key in upper case: LMCache's rule, which conf_table's env column
 * follows too (test_config checks it). False when it does not fit. */
static bool env_name(const char *key, char *buf, size_t cap)
{
    size_t len = strlen(key);
    if (8 + len >= cap)
        return false;
    memcpy(buf, "LMCACHE_", 8);
    for (size_t k = 0; k <= len; k++)
        buf[8 + k] = (char)toupper((unsigned char)key[k]);
    return true;
}

int kvt__conf_env_lookup(const char *var, size_t *idx)
{
    char name[128];
    for (size_t k = 0; k < CONF_N; k++) {
        if (conf_table[k].env && strcmp(conf_table[k].env, var) == 0) {
            *idx = k;
            return KVT_OK;
        }
    }
    for (size_t k = 0; k < LMC_N; k++) {
        if (env_name(lmc_table[k].name, name, sizeof name) && strcmp(name, var) == 0) {
            *idx = CONF_N + k;
            return KVT_OK;
        }
    }
    return KVT_ENOENT;
}

/* Levenshtein distance; `b` is a known name (short), `a` may be anything. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t lb = strlen(b), row[128];
    if (lb >= KVT__ARRAY_LEN(row))
        return SIZE_MAX;
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; a[i - 1]; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j], best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            diag = up;
            row[j] = best;
        }
    }
    return row[lb];
}

void kvt__conf_nearest_env(const char *var, const char *const *also, size_t nalso, char *buf,
                           size_t cap)
{
    char name[128];
    size_t best = SIZE_MAX;
    if (cap)
        buf[0] = '\0';
    for (size_t k = 0; k < CONF_N + LMC_N + nalso; k++) {
        const char *cand = k < CONF_N ? conf_table[k].env : NULL;
        if (k >= CONF_N + LMC_N)
            cand = also[k - CONF_N - LMC_N];
        else if (k >= CONF_N && env_name(lmc_table[k - CONF_N].name, name, sizeof name))
            cand = name;
        size_t dist = cand ? edit_distance(var, cand) : SIZE_MAX;
        if (dist < best) {
            best = dist;
            kvt__strlcpy(buf, cand, cap);
        }
    }
}

/* ------------------------------------------------------------ notices */

int kvt__conf_note(kvt_config *cfg, kvt_log_level level, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    /* Once: a key given in the file and the environment, or loaded twice, says it once. */
    for (size_t k = 0; k < cfg->nnotes; k++)
        if (strcmp(cfg->notes[k].text, text) == 0)
            return KVT_OK;
    struct conf_note *grown = realloc(cfg->notes, (cfg->nnotes + 1) * sizeof *grown);
    if (!grown)
        return kvt__fail(KVT_ENOMEM, "out of memory");
    cfg->notes = grown;
    if (!(grown[cfg->nnotes].text = strdup(text)))
        return kvt__fail(KVT_ENOMEM, "out of memory");
    grown[cfg->nnotes++].level = level;
    return KVT_OK;
}

size_t kvt__conf_notice_count(const kvt_config *cfg) { return cfg ? cfg->nnotes : 0; }

const char *kvt__conf_notice(const kvt_config *cfg, size_t i, kvt_log_level *level)
{
    if (!cfg || i >= cfg->nnotes)
        return NULL;
    if (level)
        *level = cfg->notes[i].level;
    return cfg->notes[i].text;
}

static void notes_free(kvt_config *cfg)
{
    for (size_t k = 0; k < cfg->nnotes; k++)
        free(cfg->notes[k].text);
    free(cfg->notes);
    cfg->notes = NULL;
    cfg->nnotes = 0;
}

static int notes_copy(kvt_config *dst, const kvt_config *src)
{
    for (size_t k = 0; k < src->nnotes; k++) {
        int rc = kvt__conf_note(dst, src->notes[k].level, "%s", src->notes[k].text);
        if (rc != KVT_OK)
            return rc;
    }
    return KVT_OK;
}

/* ------------------------------------------------------------ storing */

/* Whether `v` is the value that leaves an lmc_table key's feature off. */
static bool is_disabled(const struct conf_desc *d, const struct conf_val *v)
{
    struct conf_val off = { 0 };
    bool same = false;
    if (!d->def)
        return true;
    if (!v->set || optional(d))
        return !v->set;
    if (parse_text(d, d->def, &off) != KVT_OK) /* a bad row: test_config catches it */
        return false;
    switch (d->type) {
    case KVT_CONF_BOOL:
        same = v->b == off.b;
        break;
    case KVT_CONF_INT:
        same = v->i == off.i;
        break;
    case KVT_CONF_FLOAT:
        same = v->f == off.f;
        break;
    case KVT_CONF_STRING:
        same = strcmp(v->s, off.s) == 0;
        break;
    case KVT_CONF_LIST:
        break; /* a list is off only when empty */
    }
    val_free(&off);
    return same;
}

/* An lmc_table key: its disabled value is noted and dropped, any other one is an error
 * naming the feature it asks for. `v` is consumed. */
static int ignore(kvt_config *cfg, const struct conf_desc *d, struct conf_val *v)
{
    char why[320], off[64];
    int rc;
    if (is_disabled(d, v)) {
        rc = kvt__conf_note(cfg, KVT_LOG_INFO, "event=ignored_key key=%s", d->name);
    } else {
        if (optional(d))
            kvt__strlcpy(off, d->type == KVT_CONF_LIST ? "leave it unset or empty"
                                                       : "leave it unset", sizeof off);
        else if (d->type == KVT_CONF_STRING)
            snprintf(off, sizeof off, "only \"%s\" is accepted", d->def);
        else
            snprintf(off, sizeof off, "only %s is accepted", d->def);
        snprintf(why, sizeof why, "not supported by kvtier, which lacks LMCache's %s; %s",
                 d->doc, off);
        rc = bad(d, v, why);
    }
    val_free(v);
    return rc;
}

/* Validates `v` and moves it into slot `idx` if `src` is at least the stored source;
 * `v` is consumed either way. */
static int store(kvt_config *cfg, size_t idx, struct conf_val *v, kvt_config_source src)
{
    if (idx >= CONF_N)
        return ignore(cfg, desc(idx), v);
    int rc = validate(&conf_table[idx], v);
    v->text = NULL; /* borrowed from the caller: never kept */
    if (rc == KVT_OK && src >= cfg->v[idx].src) {
        val_free(&cfg->v[idx]);
        cfg->v[idx] = *v;
        cfg->v[idx].src = src;
        return KVT_OK;
    }
    val_free(v);
    return rc;
}

int kvt__conf_put_text(kvt_config *cfg, size_t idx, const char *text, kvt_config_source src)
{
    struct conf_val v = { .text = text };
    int rc = parse_text(desc(idx), text, &v);
    if (rc != KVT_OK) {
        val_free(&v);
        return rc;
    }
    return store(cfg, idx, &v, src);
}

int kvt__conf_put_yaml(kvt_config *cfg, size_t idx, const char *text, kvt_config_source src)
{
    const struct conf_desc *d = desc(idx);
    struct conf_val v = { .set = true, .text = text };
    int r;
    switch (d->type) {
    case KVT_CONF_BOOL:
        if ((r = yaml_bool(text)) < 0)
            break;
        v.b = r == 1;
        return store(cfg, idx, &v, src);
    case KVT_CONF_INT:
    case KVT_CONF_FLOAT:
        if ((r = yaml_int(text, &v.i)) < 0)
            return bad_text(d, text, "integer out of range");
        if (r == 1) {
            v.f = (double)v.i;
            return store(cfg, idx, &v, src);
        }
        if (d->type == KVT_CONF_FLOAT && yaml_float(text, &v.f))
            return store(cfg, idx, &v, src);
        break;
    case KVT_CONF_STRING:
    case KVT_CONF_LIST:
        break;
    }
    return kvt__conf_put_text(cfg, idx, text, src);
}

static const char *type_word(kvt_config_type t)
{
    switch (t) {
    case KVT_CONF_BOOL:
        return "a boolean";
    case KVT_CONF_INT:
        return "an integer";
    case KVT_CONF_FLOAT:
        return "a number";
    case KVT_CONF_STRING:
        return "a string";
    case KVT_CONF_LIST:
        return "a list";
    }
    return "?";
}

int kvt__conf_put_bool(kvt_config *cfg, size_t idx, bool b, kvt_config_source src)
{
    const struct conf_desc *d = desc(idx);
    struct conf_val v = { .set = true, .b = b };
    if (d->type != KVT_CONF_BOOL)
        return bad_text(d, b ? "true" : "false", "expected %s, got a boolean", type_word(d->type));
    return store(cfg, idx, &v, src);
}

int kvt__conf_put_int(kvt_config *cfg, size_t idx, int64_t i, kvt_config_source src)
{
    const struct conf_desc *d = desc(idx);
    char num[32];
    /* The decimal text is what an API caller or a JSON file wrote: an error on a float key
     * then says "-10", not the float's text form. */
    snprintf(num, sizeof num, "%" PRId64, i);
    struct conf_val v = { .set = true, .i = i, .f = (double)i, .text = num };
    if (d->type != KVT_CONF_INT && d->type != KVT_CONF_FLOAT)
        return bad_text(d, num, "expected %s, got a number", type_word(d->type));
    return store(cfg, idx, &v, src);
}

int kvt__conf_put_float(kvt_config *cfg, size_t idx, double f, kvt_config_source src)
{
    const struct conf_desc *d = desc(idx);
    struct conf_val v = { .set = true, .f = f };
    if (d->type != KVT_CONF_FLOAT) {
        char num[64];
        fmt_float(f, num, sizeof num);
        return bad_text(d, num, "expected %s, got a %s", type_word(d->type),
                        d->type == KVT_CONF_INT ? "fractional number" : "number");
    }
    return store(cfg, idx, &v, src);
}

int kvt__conf_put_list(kvt_config *cfg, size_t idx, const char *const *items, size_t n,
                       kvt_config_source src)
{
    const struct conf_desc *d = desc(idx);
    struct conf_val v = { 0 };
    if (d->type != KVT_CONF_LIST)
        return bad_text(d, n ? items[0] : "", "expected %s, got a list", type_word(d->type));
    int rc = val_set_items(&v, items, n);
    return rc != KVT_OK ? rc : store(cfg, idx, &v, src);
}

int kvt__conf_put_null(kvt_config *cfg, size_t idx, kvt_config_source src)
{
    const struct conf_desc *d = desc(idx);
    struct conf_val v = { 0 };
    if (!optional(d) && d->def)
        return bad_text(d, NULL, "expected %s", type_word(d->type));
    return store(cfg, idx, &v, src);
}

/* Normalises one directory of a CSV path list: trimmed, no file:// prefix, no trailing '/'. */
static size_t dir_item(const char *p, size_t len, const char **out)
{
    while (len > 0 && isspace((unsigned char)*p)) {
        p++;
        len--;
    }
    while (len > 0 && isspace((unsigned char)p[len - 1]))
        len--;
    if (len >= 7 && strncmp(p, "file://", 7) == 0) {
        p += 7;
        len -= 7;
    }
    while (len > 1 && p[len - 1] == '/')
        len--;
    *out = p;
    return len;
}

/* Whether CSV path lists `a` and `b` share a directory; if so it is copied to `dir`. */
static bool same_dir(const char *a, const char *b, char *dir, size_t cap)
{
    for (const char *p = a; *p;) {
        size_t la = strcspn(p, ",");
        const char *da;
        size_t na = dir_item(p, la, &da);
        for (const char *q = b; *q && na;) {
            size_t lb = strcspn(q, ",");
            const char *db;
            size_t nb = dir_item(q, lb, &db);
            if (na == nb && memcmp(da, db, na) == 0) {
                snprintf(dir, cap, "%.*s", (int)na, da);
                return true;
            }
            q += lb + (q[lb] == ',');
        }
        p += la + (p[la] == ',');
    }
    return false;
}

int kvt__conf_check(const kvt_config *cfg)
{
    size_t disk = 0, gds = 0;
    char dir[256];
    lookup("local_disk", &disk);
    lookup("gds_path", &gds);
    /* Both tiers name files after the key: sharing a directory, each would evict and
     * overwrite the other's files. */
    if (cfg->v[disk].set && cfg->v[gds].set &&
        same_dir(cfg->v[disk].s, cfg->v[gds].s, dir, sizeof dir))
        return kvt__fail(KVT_ECONFIG, "local_disk and gds_path both name the directory \"%s\"",
                         dir);
    return KVT_OK;
}

void kvt__conf_swap(kvt_config *a, kvt_config *b)
{
    kvt_config tmp = *a;
    *a = *b;
    *b = tmp;
}

int kvt__conf_wrap_error(int status, const char *prefix)
{
    char msg[512];
    kvt__strlcpy(msg, kvt_last_error(), sizeof msg);
    return kvt__fail(status, "%s: %s", prefix, msg);
}

/* ------------------------------------------------------------ public: life cycle */

int kvt_config_new(kvt_config **out)
{
    if (!out)
        return kvt__fail(KVT_EINVAL, "kvt_config_new: out is NULL");
    *out = NULL;
    kvt_config *cfg = calloc(1, sizeof *cfg);
    if (!cfg)
        return kvt__fail(KVT_ENOMEM, "out of memory");
    for (size_t k = 0; k < CONF_N; k++) {
        int rc = kvt__conf_put_text(cfg, k, conf_table[k].def, KVT_SRC_DEFAULT);
        if (rc != KVT_OK) { /* a bad table row: test_config catches it first */
            kvt_config_free(cfg);
            return rc;
        }
    }
    *out = cfg;
    return KVT_OK;
}

int kvt_config_dup(const kvt_config *cfg, kvt_config **out)
{
    if (!cfg || !out)
        return kvt__fail(KVT_EINVAL, "kvt_config_dup: NULL argument");
    *out = NULL;
    kvt_config *c = calloc(1, sizeof *c);
    int rc = c ? notes_copy(c, cfg) : kvt__fail(KVT_ENOMEM, "out of memory");
    for (size_t k = 0; k < CONF_N && rc == KVT_OK; k++)
        rc = val_copy(&c->v[k], &cfg->v[k]);
    if (rc != KVT_OK) {
        kvt_config_free(c);
        return rc;
    }
    *out = c;
    return KVT_OK;
}

void kvt_config_free(kvt_config *cfg)
{
    if (!cfg)
        return;
    for (size_t k = 0; k < CONF_N; k++)
        val_free(&cfg->v[k]);
    notes_free(cfg);
    free(cfg);
}

/* ------------------------------------------------------------ public: setters */

/* Applies one API write on a copy, so that a cross-key failure leaves `cfg` unchanged. */
struct one_write {
    enum { W_TEXT, W_BOOL, W_INT, W_FLOAT } kind;
    const char *text;
    bool b;
    int64_t i;
    double f;
};

static int set_one(kvt_config *cfg, const char *key, const struct one_write *w)
{
    kvt_config *c;
    size_t idx = 0;
    int rc;
    if (!cfg || !key)
        return kvt__fail(KVT_EINVAL, "kvt_config_set: NULL argument");
    if ((rc = kvt__conf_lookup(key, &idx)) != KVT_OK)
        return rc;
    kvt_config_type t = desc(idx)->type;
    if ((w->kind == W_BOOL && t != KVT_CONF_BOOL) ||
        (w->kind == W_INT && t != KVT_CONF_INT && t != KVT_CONF_FLOAT) ||
        (w->kind == W_FLOAT && t != KVT_CONF_FLOAT))
        return kvt__fail(KVT_EINVAL, "config key \"%s\" is not of that type: it takes %s", key,
                         type_word(t));
    if ((rc = kvt_config_dup(cfg, &c)) != KVT_OK)
        return rc;
    switch (w->kind) {
    case W_TEXT:
        rc = kvt__conf_put_text(c, idx, w->text, KVT_SRC_API);
        break;
    case W_BOOL:
        rc = kvt__conf_put_bool(c, idx, w->b, KVT_SRC_API);
        break;
    case W_INT:
        rc = kvt__conf_put_int(c, idx, w->i, KVT_SRC_API);
        break;
    case W_FLOAT:
        rc = kvt__conf_put_float(c, idx, w->f, KVT_SRC_API);
        break;
    }
    if (rc == KVT_OK && (rc = kvt__conf_check(c)) == KVT_OK)
        kvt__conf_swap(cfg, c);
    kvt_config_free(c);
    return rc;
}

int kvt_config_set(kvt_config *cfg, const char *key, const char *value)
{
    if (!value)
        return kvt__fail(KVT_EINVAL, "kvt_config_set: value is NULL");
    return set_one(cfg, key, &(struct one_write){ .kind = W_TEXT, .text = value });
}

int kvt_config_set_bool(kvt_config *cfg, const char *key, bool value)
{
    return set_one(cfg, key, &(struct one_write){ .kind = W_BOOL, .b = value });
}

int kvt_config_set_int(kvt_config *cfg, const char *key, int64_t value)
{
    return set_one(cfg, key, &(struct one_write){ .kind = W_INT, .i = value });
}

int kvt_config_set_float(kvt_config *cfg, const char *key, double value)
{
    return set_one(cfg, key, &(struct one_write){ .kind = W_FLOAT, .f = value });
}

/* Which of the patched keys to blame for a cross-key failure: the first that is one of
 * the keys the rules involve, else the first. */
static size_t cross_culprit(size_t n, const char *const keys[])
{
    for (size_t k = 0; k < n; k++)
        if (strcmp(keys[k], "local_disk") == 0 || strcmp(keys[k], "gds_path") == 0)
            return k;
    return 0;
}

int kvt_config_patch(kvt_config *cfg, size_t n, const char *const keys[],
                     const char *const values[], bool runtime_only, size_t *bad_key)
{
    kvt_config *c;
    size_t idx = 0, i;
    int rc;
    if (!cfg || (n && (!keys || !values)))
        return kvt__fail(KVT_EINVAL, "kvt_config_patch: NULL argument");
    if ((rc = kvt_config_dup(cfg, &c)) != KVT_OK)
        return rc;
    for (i = 0; i < n; i++) {
        if (!keys[i] || !values[i]) {
            rc = kvt__fail(KVT_EINVAL, "kvt_config_patch: key or value %zu is NULL", i);
            break;
        }
        if ((rc = kvt__conf_lookup(keys[i], &idx)) != KVT_OK) {
            if (runtime_only)
                rc = kvt__fail(rc, "%.200s: Unknown config key", keys[i]);
            break;
        }
        /* LMCache-only keys count as unknown here, as in LMCache's own POST /conf. */
        if (runtime_only && (desc(idx)->flags & F_ABSENT)) {
            rc = kvt__fail(KVT_ECONFIG, "%.200s: Unknown config key (an LMCache feature kvtier lacks)",
                           keys[i]);
            break;
        }
        if (runtime_only && !(desc(idx)->flags & F_RUNTIME)) {
            rc = kvt__fail(KVT_ECONFIG, "%.200s: Config is not mutable at runtime", keys[i]);
            break;
        }
        if ((rc = kvt__conf_put_text(c, idx, values[i], KVT_SRC_API)) != KVT_OK)
            break;
    }
    if (rc == KVT_OK && (rc = kvt__conf_check(c)) != KVT_OK)
        i = cross_culprit(n, keys);
    if (rc == KVT_OK)
        kvt__conf_swap(cfg, c);
    else if (bad_key)
        *bad_key = i;
    kvt_config_free(c);
    return rc;
}

/* ------------------------------------------------------------ public: getters */

static int slot(const kvt_config *cfg, const char *key, const struct conf_val **v,
                const struct conf_desc **d)
{
    size_t idx;
    if (!cfg || !key)
        return kvt__fail(KVT_EINVAL, "config getter: NULL argument");
    if (lookup(key, &idx) != KVT_OK)
        return kvt__fail(KVT_ENOENT, "unknown config key \"%.200s\"", key);
    *v = &cfg->v[idx];
    *d = &conf_table[idx];
    return KVT_OK;
}

static int typed(const kvt_config *cfg, const char *key, kvt_config_type t,
                 const struct conf_val **v)
{
    const struct conf_desc *d = NULL;
    int rc = slot(cfg, key, v, &d);
    if (rc == KVT_OK && d->type != t)
        return kvt__fail(KVT_EINVAL, "config key \"%s\" is %s, not %s", key, type_word(d->type),
                         type_word(t));
    return rc;
}

int kvt_config_get_bool(const kvt_config *cfg, const char *key, bool *out)
{
    const struct conf_val *v = NULL;
    int rc = typed(cfg, key, KVT_CONF_BOOL, &v);
    if (rc == KVT_OK && out)
        *out = v->b;
    return rc;
}

int kvt_config_get_int(const kvt_config *cfg, const char *key, int64_t *out)
{
    const struct conf_val *v = NULL;
    int rc = typed(cfg, key, KVT_CONF_INT, &v);
    if (rc == KVT_OK && out)
        *out = v->i;
    return rc;
}

int kvt_config_get_float(const kvt_config *cfg, const char *key, double *out)
{
    const struct conf_val *v = NULL;
    int rc = typed(cfg, key, KVT_CONF_FLOAT, &v);
    if (rc == KVT_OK && out)
        *out = v->f;
    return rc;
}

int kvt_config_get_str(const kvt_config *cfg, const char *key, const char **out)
{
    const struct conf_val *v = NULL;
    int rc = typed(cfg, key, KVT_CONF_STRING, &v);
    if (out)
        *out = rc == KVT_OK && v->set ? v->s : NULL;
    return rc;
}

int kvt_config_get_list(const kvt_config *cfg, const char *key, const char *const **items,
                        size_t *n)
{
    static const char *const none[] = { NULL };
    const struct conf_val *v = NULL;
    int rc = typed(cfg, key, KVT_CONF_LIST, &v);
    bool have = rc == KVT_OK && v->set;
    if (items)
        *items = have ? (const char *const *)v->items : none;
    if (n)
        *n = have ? v->n : 0;
    return rc;
}

int kvt_config_get_text(const kvt_config *cfg, const char *key, bool redact, char *buf,
                        size_t cap)
{
    const struct conf_val *v = NULL;
    const struct conf_desc *d = NULL;
    int rc = slot(cfg, key, &v, &d);
    if (rc != KVT_OK)
        return rc;
    if (!buf && cap)
        return kvt__fail(KVT_EINVAL, "kvt_config_get_text: buf is NULL");
    if (!val_text(d, v, redact, buf, cap) || cap == 0)
        return kvt__fail(KVT_ETOOSMALL, "value of %s does not fit in %zu bytes", key, cap);
    return KVT_OK;
}

int kvt_config_get_source(const kvt_config *cfg, const char *key, kvt_config_source *out)
{
    const struct conf_val *v = NULL;
    const struct conf_desc *d = NULL;
    int rc = slot(cfg, key, &v, &d);
    if (rc == KVT_OK && out)
        *out = v->src;
    return rc;
}

/* ------------------------------------------------------------ public: the table */

size_t kvt_config_key_count(void) { return CONF_N; }

int kvt_config_key_at(size_t i, kvt_config_key_info *out)
{
    if (i >= CONF_N)
        return kvt__fail(KVT_ERANGE, "config key index %zu is past the end (%zu keys)", i,
                         (size_t)CONF_N);
    if (!out)
        return kvt__fail(KVT_EINVAL, "kvt_config_key_at: out is NULL");
    const struct conf_desc *d = &conf_table[i];
    *out = (kvt_config_key_info){
        .name = d->name,
        .type = d->type,
        .default_text = d->def,
        .env = d->env,
        .runtime_mutable = (d->flags & F_RUNTIME) != 0,
        .secret = (d->flags & (F_SECRET | F_URL)) != 0,
        .doc = d->doc,
    };
    return KVT_OK;
}

size_t kvt_config_ignored_key_count(void) { return LMC_N; }

int kvt_config_ignored_key_at(size_t i, kvt_config_ignored_key *out)
{
    if (i >= LMC_N)
        return kvt__fail(KVT_ERANGE, "ignored config key index %zu is past the end (%zu keys)", i,
                         (size_t)LMC_N);
    if (!out)
        return kvt__fail(KVT_EINVAL, "kvt_config_ignored_key_at: out is NULL");
    *out = (kvt_config_ignored_key){
        .name = lmc_table[i].name,
        .type = lmc_table[i].type,
        .disabled_text = lmc_table[i].def,
        .feature = lmc_table[i].doc,
    };
    return KVT_OK;
}
