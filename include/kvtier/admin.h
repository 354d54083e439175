/* kvtier — the admin HTTP server (LMCache's internal API server, secure by default).
 * SPDX-License-Identifier: Apache-2.0
 *
 * Serves LMCache's admin routes (/backends, /conf, /bypass, /freeze, /cache, /metrics)
 * plus /healthz, /status and /version for one store. libmicrohttpd's internal polling
 * thread accepts; each connection gets its own thread (bounded), so a route that blocks
 * (a close draining a hung tier) never delays another client, as a shared pool worker
 * would. The server uses only the public kvtier API.
 * Routes, status codes and JSON shapes: docs/admin-api.md and docs/openapi.yaml. */
#ifndef KVTIER_ADMIN_H
#define KVTIER_ADMIN_H

#include <stdbool.h>
#include <stdint.h>

#include "kvtier.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A running admin server. */
typedef struct kvt_admin kvt_admin;

/** Port values of kvt_admin_options.port besides 1..65535. */
#define KVT_ADMIN_PORT_CONFIG (-1) /**< internal_api_server_port_start + offset */
#define KVT_ADMIN_PORT_ANY 0       /**< any free port: read it with kvt_admin_port() */

/** What kvt_admin_start() takes besides the store. Fill it with kvt_admin_options_init();
 *  every field left at that default is read from the store's config. */
typedef struct kvt_admin_options {
    const char *host;  /**< bind address; NULL: internal_api_server_host. Borrowed (copied) */
    int port;          /**< KVT_ADMIN_PORT_CONFIG (default), KVT_ADMIN_PORT_ANY or a port */
    int worker_id;     /**< LMCache's port offset: -1 (default) = 0 (scheduler, standalone),
                            else 1 + worker_id; also checked against
                            internal_api_server_include_index_list */
    const char *token; /**< bearer token; NULL: internal_api_server_auth_token; "" = none.
                            Borrowed (copied) */
    int allow_insecure; /**< non-loopback host without a token: -1 (default) from
                             internal_api_server_allow_insecure, 0 refuse, 1 allow */
    int max_connections; /**< connections served at once, one thread each; 0:
                              internal_api_server_max_connections */
    int timeout_secs;    /**< idle connection timeout; 0: internal_api_server_connection_timeout_secs */
    uint32_t kv_bytes_per_token; /**< synthetic KV of /cache/store: bytes per token
                                      (0: 4096, so a 256-token chunk is 1 MiB) */
    const char *mock_model;      /**< model name of the /cache routes' keys; NULL: "kvtier-mock" */
    const kvt_log_handler *log;  /**< copied; NULL: logfmt on stderr at INFO (component
                                      "admin"; never tokens or bodies) */
} kvt_admin_options;

/** Fills `opt` with the defaults above. */
KVT_API void kvt_admin_options_init(kvt_admin_options *opt);

/** Starts serving `s` (borrowed: it must outlive the server; NULL: every route but
 *  /healthz and /version answers 503, as LMCache without an engine, and host, port and
 *  token must then come from `opt`). Listens on TCP, or on the Unix socket
 *  "{internal_api_server_socket_path_prefix}_{port}" when that key is set.
 *  Starts whatever internal_api_server_enabled says: the caller decides.
 *  Refuses (KVT_EPERM) a non-loopback host without a token unless allow_insecure is in
 *  force. Every failure is logged at ERROR through `opt->log` with its reason (kvtier's
 *  kvt_last_error() belongs to the library and is not set by the admin layer).
 *  @param opt borrowed; NULL = defaults. @param out the server, stopped with
 *  kvt_admin_stop(); NULL when internal_api_server_include_index_list leaves this
 *  offset out (KVT_OK: nothing to serve) and on failure.
 *  Thread-safety: any thread. */
KVT_API int kvt_admin_start(kvt_store *s, const kvt_admin_options *opt, kvt_admin **out);

/** The port listened on (useful with KVT_ADMIN_PORT_ANY); 0 for NULL or a Unix socket. */
KVT_API int kvt_admin_port(const kvt_admin *srv);

/** Stops accepting, waits for requests in progress, frees the server. Call it before
 *  kvt_store_close() of its store. NULL is a no-op.
 *  Thread-safety: not from a request handler, not twice. */
KVT_API void kvt_admin_stop(kvt_admin *srv);

#ifdef __cplusplus
}
#endif
#endif
