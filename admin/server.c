/* kvtier admin server — HTTP plumbing on libmicrohttpd: listening, per-request state,
 * bodies, the checks every request passes (Host, Origin, bearer token, route, size) and
 * turning a handler's reply into a response. The handlers are in routes.c. */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <microhttpd.h>

#include "admin_internal.h"

#if MHD_VERSION >= 0x00097002
typedef enum MHD_Result admin_result;
#else
typedef int admin_result;
#endif
#ifndef MHD_HTTP_CONTENT_TOO_LARGE
#define MHD_HTTP_CONTENT_TOO_LARGE 413
#endif

/* A body past the cap is read and dropped so that the 413 reaches the client; past this
 * much more the connection is simply closed. */
#define ADMIN_DISCARD_MAX (16u << 20)

/* ------------------------------------------------------------ logging */

static void log_stderr(void *ud, kvt_log_level level, const char *component, const char *msg)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    (void)ud;
    fprintf(stderr, "level=%s component=%s %s\n", names[level & 3], component, msg);
}

void kvt__admin_log(struct kvt_admin *srv, kvt_log_level level, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    if (level < srv->log.min_level)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    srv->log.fn(srv->log.ud, level, "admin", msg);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    struct kvt_admin *srv = cls;
    char msg[400];
    size_t n;
    vsnprintf(msg, sizeof msg, fmt, ap);
    n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r'))
        msg[--n] = '\0';
    kvt__admin_log(srv, KVT_LOG_WARN, "msg=\"mhd: %s\"", msg);
}

/* ------------------------------------------------------------ helpers for handlers */

const char *kvt__admin_query(struct admin_req *r, const char *key)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, key);
}

struct query_all {
    const char *key;
    const char **out;
    size_t max, n;
};

static admin_result collect_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                const char *value)
{
    struct query_all *q = cls;
    (void)kind;
    if (strcmp(key, q->key) == 0) {
        if (q->n < q->max)
            q->out[q->n] = value ? value : "";
        q->n++;
    }
    return MHD_YES;
}

size_t kvt__admin_query_all(struct admin_req *r, const char *key, const char **out, size_t max)
{
    struct query_all q = {key, out, max, 0};
    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, collect_arg, &q);
    return q.n;
}

const char *kvt__admin_header(struct admin_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

void kvt__admin_text(struct admin_req *r, unsigned status, const char *ctype, char *text,
                     size_t len)
{
    free(r->out);
    r->status = status;
    r->ctype = ctype;
    r->out = text;
    r->out_len = len;
}

void kvt__admin_json(struct admin_req *r, unsigned status, cJSON *body)
{
    char *text = body ? cJSON_PrintUnformatted(body) : NULL;
    cJSON_Delete(body);
    if (!text) {
        static const char oom[] = "{\"error\":\"Internal error\",\"message\":\"out of memory\"}";
        text = strdup(oom);
        status = MHD_HTTP_INTERNAL_SERVER_ERROR;
    }
    kvt__admin_text(r, status, "application/json", text, text ? strlen(text) : 0);
}

void kvt__admin_error(struct admin_req *r, unsigned status, const char *error, const char *message)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", error);
    if (message)
        cJSON_AddStringToObject(o, "message", message);
    kvt__admin_json(r, status, o);
}

bool kvt__admin_valid_name(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return false;
        if (n + 1 >= KVT_NAME_MAX)
            return false;
    }
    return n > 0;
}

/* ------------------------------------------------------------ routing */

/* Does `path` match `pattern`? "{name}" takes one segment that is a valid name, copied to
 * `name`. */
static bool match(const char *pattern, const char *path, char name[KVT_NAME_MAX])
{
    while (*pattern && *path) {
        if (strncmp(pattern, "{name}", 6) == 0) {
            size_t n = strcspn(path, "/");
            char seg[KVT_NAME_MAX];
            if (n == 0 || n >= sizeof seg)
                return false;
            memcpy(seg, path, n);
            seg[n] = '\0';
            if (!kvt__admin_valid_name(seg))
                return false;
            memcpy(name, seg, n + 1);
            pattern += 6;
            path += n;
            continue;
        }
        if (*pattern++ != *path++)
            return false;
    }
    return *pattern == '\0' && *path == '\0';
}

/* Finds the route; on a known path with another method fills `allow` (405). */
static const struct admin_route *route_find(struct admin_req *r, bool *path_known)
{
    const struct admin_route *rt;
    char name[KVT_NAME_MAX] = "";
    size_t used = 0;
    *path_known = false;
    r->allow[0] = '\0';
    for (rt = kvt__admin_routes; rt->method; rt++) {
        if (!match(rt->pattern, r->path, name))
            continue;
        *path_known = true;
        if (strcmp(rt->method, r->method) == 0) {
            memcpy(r->name, name, sizeof name);
            return rt;
        }
        if (!strstr(r->allow, rt->method)) {
            int k = snprintf(r->allow + used, sizeof r->allow - used, "%s%s", used ? ", " : "",
                             rt->method);
            if (k > 0 && (size_t)k < sizeof r->allow - used)
                used += (size_t)k;
        }
    }
    return NULL;
}

/* ------------------------------------------------------------ checks */

/* Bearer token, compared in constant time (in the token's length). */
static bool auth_ok(struct kvt_admin *srv, const char *header)
{
    const char *got;
    size_t m, i;
    unsigned char d;
    if (!srv->token_len)
        return true;
    if (!header || strncasecmp(header, "Bearer ", 7) != 0)
        return false;
    got = header + 7;
    m = strlen(got);
    d = m != srv->token_len;
    for (i = 0; i < srv->token_len; i++)
        d |= (unsigned char)srv->token[i] ^ (unsigned char)(i < m ? got[i] : 0);
    return d == 0;
}

/* On a loopback listener the Host header must name a loopback host (DNS rebinding). */
static bool host_ok(struct kvt_admin *srv, const char *host)
{
    static const char *const names[] = {"127.0.0.1", "localhost", "[::1]"};
    if (!srv->check_host || !host) /* HTTP/1.0 may omit it; MHD refuses 1.1 without */
        return true;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        size_t n = strlen(names[i]);
        if (strncasecmp(host, names[i], n) == 0) {
            const char *rest = host + n;
            char *end;
            long p;
            if (*rest == '\0')
                return true;
            if (*rest != ':')
                continue;
            errno = 0;
            p = strtol(rest + 1, &end, 10);
            return end != rest + 1 && *end == '\0' && errno == 0 && p == srv->port;
        }
    }
    return false;
}

/* ------------------------------------------------------------ MHD callbacks */

static admin_result queue(struct admin_req *r)
{
    struct MHD_Response *resp;
    admin_result ret;
    r->answered = true;
    if (!r->out) { /* a handler that replied nothing is a bug: say so rather than hang */
        r->status = MHD_HTTP_INTERNAL_SERVER_ERROR;
        r->out = strdup("{\"error\":\"Internal error\",\"message\":\"no reply\"}");
        r->out_len = r->out ? strlen(r->out) : 0;
        r->ctype = "application/json";
    }
    resp = MHD_create_response_from_buffer(r->out_len, r->out, MHD_RESPMEM_MUST_FREE);
    if (!resp)
        return MHD_NO;
    r->out = NULL; /* the response owns it now */
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->ctype);
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    if (r->etag[0])
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, r->etag);
    if (r->status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
    if (r->www_auth)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    atomic_fetch_add(&r->srv->requests, 1);
    if (r->status >= 500)
        atomic_fetch_add(&r->srv->errors, 1);
    kvt__admin_log(r->srv, r->status >= 500 ? KVT_LOG_WARN : KVT_LOG_DEBUG,
                   "req=%llu method=%s path=\"%.200s\" status=%u", r->id, r->method, r->path,
                   r->status);
    ret = MHD_queue_response(r->conn, r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* The checks of a request's first call, before any body is read. false: `r` holds the
 * error reply. */
static bool first_checks(struct admin_req *r)
{
    struct kvt_admin *srv = r->srv;
    bool path_known;
    const char *cl;
    if (!host_ok(srv, kvt__admin_header(r, MHD_HTTP_HEADER_HOST))) {
        kvt__admin_error(r, MHD_HTTP_FORBIDDEN, "Forbidden", "Host header is not a loopback address");
        return false;
    }
    if (kvt__admin_header(r, "Origin")) {
        kvt__admin_error(r, MHD_HTTP_FORBIDDEN, "Forbidden", "cross-origin requests are refused");
        return false;
    }
    r->route = route_find(r, &path_known);
    /* Auth comes before routing, so unknown paths do not leak which routes exist. */
    if (!(r->route && (r->route->flags & ROUTE_NO_AUTH)) &&
        !auth_ok(srv, kvt__admin_header(r, MHD_HTTP_HEADER_AUTHORIZATION))) {
        r->www_auth = true;
        kvt__admin_error(r, MHD_HTTP_UNAUTHORIZED, "Unauthorized", "missing or invalid bearer token");
        return false;
    }
    if (!r->route) {
        if (path_known)
            kvt__admin_error(r, MHD_HTTP_METHOD_NOT_ALLOWED, "Method Not Allowed", r->allow);
        else
            kvt__admin_error(r, MHD_HTTP_NOT_FOUND, "Not Found", "no such route");
        return false;
    }
    cl = kvt__admin_header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl) {
        char *end;
        unsigned long long n;
        errno = 0;
        n = strtoull(cl, &end, 10);
        if (errno || end == cl || n > ADMIN_BODY_MAX) {
            kvt__admin_error(r, MHD_HTTP_CONTENT_TOO_LARGE, "Payload Too Large",
                             "request bodies are limited to 1 MiB");
            return false;
        }
    }
    return true;
}

static void dispatch(struct admin_req *r)
{
    if (r->too_large) {
        kvt__admin_error(r, MHD_HTTP_CONTENT_TOO_LARGE, "Payload Too Large",
                         "request bodies are limited to 1 MiB");
        return;
    }
    if (!r->srv->store && !(r->route->flags & ROUTE_NO_STORE)) {
        char err[300];
        snprintf(err, sizeof err, "%.200s API is unavailable", r->path);
        kvt__admin_error(r, MHD_HTTP_SERVICE_UNAVAILABLE, err, "LMCache engine not configured.");
        return;
    }
    r->route->fn(r);
}

static admin_result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_size, void **req_cls)
{
    struct kvt_admin *srv = cls;
    struct admin_req *r = *req_cls;
    (void)version;
    if (!r) {
        if (!(r = calloc(1, sizeof *r)))
            return MHD_NO;
        *req_cls = r;
        r->srv = srv;
        r->conn = conn;
        r->id = atomic_fetch_add(&srv->next_id, 1) + 1;
        r->method = method;
        r->path = url;
        if (!first_checks(r))
            return queue(r);
        return MHD_YES; /* MHD calls again with the body, then with *upload_size == 0 */
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (!r->too_large && r->len + n > ADMIN_BODY_MAX) {
            r->too_large = true;
            free(r->body);
            r->body = NULL;
            r->len = r->cap = 0;
        }
        if (r->too_large) {
            r->discarded += n;
            return r->discarded > ADMIN_DISCARD_MAX ? MHD_NO : MHD_YES;
        }
        if (r->len + n + 1 > r->cap) {
            size_t cap = r->cap ? r->cap : 4096;
            char *p;
            while (cap < r->len + n + 1)
                cap *= 2;
            if (!(p = realloc(r->body, cap)))
                return MHD_NO;
            r->body = p;
            r->cap = cap;
        }
        memcpy(r->body + r->len, upload, n);
        r->len += n;
        r->body[r->len] = '\0';
        return MHD_YES;
    }
    if (r->answered)
        return MHD_YES;
    dispatch(r);
    return queue(r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode code)
{
    struct admin_req *r = *req_cls;
    (void)cls, (void)conn, (void)code;
    if (r) {
        free(r->body);
        free(r->out);
        free(r);
        *req_cls = NULL;
    }
}

/* ------------------------------------------------------------ start / stop */

void kvt_admin_options_init(kvt_admin_options *opt)
{
    if (!opt)
        return;
    memset(opt, 0, sizeof *opt);
    opt->port = KVT_ADMIN_PORT_CONFIG;
    opt->worker_id = -1;
    opt->allow_insecure = -1;
}

static int fail(char *err, size_t cap, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t cap, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
    return rc;
}

/* Reads the settings `opt` leaves to the store's config. */
struct settings {
    char host[256];
    int port;
    bool allow_insecure;
    unsigned max_conn, timeout;
    char sock_prefix[200];
};

static int conf_int(const kvt_config *cfg, const char *key, int64_t def)
{
    int64_t v;
    return cfg && kvt_config_get_int(cfg, key, &v) == KVT_OK ? (int)v : (int)def;
}

static int read_settings(kvt_store *s, const kvt_admin_options *opt, struct kvt_admin *srv,
                         struct settings *st, char *err, size_t cap)
{
    kvt_config *cfg = NULL;
    const char *v;
    const char *const *idx;
    size_t nidx = 0;
    int offset = opt->worker_id < 0 ? 0 : 1 + opt->worker_id;
    int rc = KVT_OK;
    bool b;
    if (s && (rc = kvt_store_conf_dup(s, &cfg)) != KVT_OK)
        return fail(err, cap, rc, "cannot read the store's config: %s", kvt_last_error());
    if (!s && (!opt->host || opt->port == KVT_ADMIN_PORT_CONFIG || !opt->token))
        return fail(err, cap, KVT_EINVAL, "without a store, host, port and token come from the options");
    v = opt->host;
    if (!v && kvt_config_get_str(cfg, "internal_api_server_host", &v) != KVT_OK)
        v = NULL;
    snprintf(st->host, sizeof st->host, "%s", v ? v : "127.0.0.1");
    st->port = opt->port;
    if (st->port == KVT_ADMIN_PORT_CONFIG)
        st->port = conf_int(cfg, "internal_api_server_port_start", 6999) + offset;
    if (st->port < 0 || st->port > 65535)
        rc = fail(err, cap, KVT_ERANGE, "admin port %d out of range", st->port);
    v = opt->token;
    if (!v && kvt_config_get_str(cfg, "internal_api_server_auth_token", &v) != KVT_OK)
        v = NULL;
    if (rc == KVT_OK && v && strlen(v) >= sizeof srv->token)
        rc = fail(err, cap, KVT_ERANGE, "admin token longer than %zu bytes", sizeof srv->token - 1);
    if (rc == KVT_OK && v) {
        srv->token_len = strlen(v);
        memcpy(srv->token, v, srv->token_len + 1);
    }
    st->allow_insecure = opt->allow_insecure == 1;
    if (opt->allow_insecure < 0 && kvt_config_get_bool(cfg, "internal_api_server_allow_insecure", &b) == KVT_OK)
        st->allow_insecure = b;
    st->max_conn = (unsigned)(opt->max_connections > 0
                                  ? opt->max_connections
                                  : conf_int(cfg, "internal_api_server_max_connections", 16));
    st->timeout = (unsigned)(opt->timeout_secs > 0
                                 ? opt->timeout_secs
                                 : conf_int(cfg, "internal_api_server_connection_timeout_secs", 10));
    st->sock_prefix[0] = '\0';
    if (cfg && kvt_config_get_str(cfg, "internal_api_server_socket_path_prefix", &v) == KVT_OK && v)
        snprintf(st->sock_prefix, sizeof st->sock_prefix, "%s", v);
    /* LMCache: only the offsets listed start a server. */
    if (rc == KVT_OK && cfg &&
        kvt_config_get_list(cfg, "internal_api_server_include_index_list", &idx, &nidx) == KVT_OK &&
        nidx) {
        bool listed = false;
        for (size_t i = 0; i < nidx; i++)
            listed |= atoi(idx[i]) == offset;
        if (!listed)
            rc = 1; /* not an error: nothing to serve */
    }
    kvt_config_free(cfg);
    return rc;
}

static bool is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family == AF_INET6)
        return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)sa)->sin6_addr);
    return false;
}

static int unix_listen(const char *path, char *err, size_t cap)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    int fd;
    if (strlen(path) >= sizeof sun.sun_path)
        return -fail(err, cap, 1, "admin socket path too long");
    memcpy(sun.sun_path, path, strlen(path) + 1);
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
        return -fail(err, cap, 1, "admin socket: %s", strerror(errno));
    unlink(path); /* a stale socket of an earlier run */
    if (bind(fd, (struct sockaddr *)&sun, sizeof sun) != 0 || listen(fd, 64) != 0) {
        fail(err, cap, 1, "admin socket %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

int kvt_admin_start(kvt_store *s, const kvt_admin_options *opt, kvt_admin **out)
{
    kvt_admin_options defaults;
    struct kvt_admin *srv;
    struct settings st;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai = NULL;
    char err[512] = "", portbuf[16];
    /* Thread per connection, not a pool: a pool worker blocked in a draining close would
     * also hold every connection it had accepted along with it. */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                     MHD_USE_POLL | MHD_USE_ERROR_LOG;
    int rc, fd = -1;
    if (out)
        *out = NULL;
    if (!out)
        return KVT_EINVAL;
    if (!opt) {
        kvt_admin_options_init(&defaults);
        opt = &defaults;
    }
    if (!(srv = calloc(1, sizeof *srv)))
        return KVT_ENOMEM;
    srv->store = s;
    srv->log = opt->log ? *opt->log : (kvt_log_handler){.fn = NULL, .min_level = KVT_LOG_INFO};
    if (!srv->log.fn)
        srv->log.fn = log_stderr;
    srv->kv_bytes_per_token = opt->kv_bytes_per_token ? opt->kv_bytes_per_token : 4096;
    snprintf(srv->model, sizeof srv->model, "%s", opt->mock_model ? opt->mock_model : "kvtier-mock");
    rc = read_settings(s, opt, srv, &st, err, sizeof err);
    if (rc == 1) {
        kvt__admin_log(srv, KVT_LOG_INFO, "msg=\"worker not in internal_api_server_include_index_list: no admin server\"");
        free(srv);
        return KVT_OK;
    }
    if (rc == KVT_OK && st.sock_prefix[0]) {
        snprintf(srv->unix_path, sizeof srv->unix_path, "%s_%d", st.sock_prefix, st.port);
        if ((fd = unix_listen(srv->unix_path, err, sizeof err)) < 0)
            rc = KVT_EIO;
    } else if (rc == KVT_OK) {
        snprintf(portbuf, sizeof portbuf, "%d", st.port);
        hints.ai_flags |= AI_NUMERICSERV;
        if (getaddrinfo(st.host, portbuf, &hints, &ai) != 0 || !ai)
            rc = fail(err, sizeof err, KVT_EINVAL, "admin host \"%.200s\" does not resolve", st.host);
        else if (!is_loopback(ai->ai_addr) && !srv->token_len && !st.allow_insecure)
            rc = fail(err, sizeof err, KVT_EPERM,
                      "admin host %.200s is not loopback and no internal_api_server_auth_token is "
                      "set: refusing to serve the admin API unauthenticated (set a token, or "
                      "internal_api_server_allow_insecure: true)", st.host);
        else {
            srv->check_host = is_loopback(ai->ai_addr);
            if (ai->ai_family == AF_INET6)
                flags |= MHD_USE_IPv6;
            if (!srv->check_host)
                kvt__admin_log(srv, KVT_LOG_WARN, "msg=\"admin API on a non-loopback address\" host=%s%s",
                               st.host, srv->token_len ? "" : " auth=none");
        }
    }
    if (rc == KVT_OK) {
        srv->port = st.port;
        srv->mhd = MHD_start_daemon(
            flags, (uint16_t)st.port, NULL, NULL, on_request, srv,
            MHD_OPTION_EXTERNAL_LOGGER, mhd_log, srv,
            fd >= 0 ? MHD_OPTION_LISTEN_SOCKET : MHD_OPTION_SOCK_ADDR,
            fd >= 0 ? (void *)(intptr_t)fd : (void *)ai->ai_addr,
            MHD_OPTION_CONNECTION_TIMEOUT, st.timeout,
            MHD_OPTION_CONNECTION_LIMIT, st.max_conn,
            MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv, MHD_OPTION_END);
        if (!srv->mhd)
            rc = fail(err, sizeof err, KVT_EIO, "cannot listen on %s:%d (port in use?)",
                      fd >= 0 ? srv->unix_path : st.host, st.port);
    }
    if (ai)
        freeaddrinfo(ai);
    if (rc != KVT_OK) {
        kvt__admin_log(srv, KVT_LOG_ERROR, "msg=\"%s\"", err);
        if (fd >= 0) {
            close(fd);
            unlink(srv->unix_path);
        }
        free(srv);
        return rc;
    }
    if (fd < 0 && st.port == 0) {
        const union MHD_DaemonInfo *di = MHD_get_daemon_info(srv->mhd, MHD_DAEMON_INFO_BIND_PORT);
        srv->port = di ? di->port : 0;
    }
    kvt__admin_log(srv, KVT_LOG_INFO, "msg=\"admin server listening\" addr=%s port=%d auth=%s",
                   fd >= 0 ? srv->unix_path : st.host, fd >= 0 ? 0 : srv->port,
                   srv->token_len ? "bearer" : "none");
    *out = srv;
    return KVT_OK;
}

int kvt_admin_port(const kvt_admin *srv)
{
    return srv && !srv->unix_path[0] ? srv->port : 0;
}

void kvt_admin_stop(kvt_admin *srv)
{
    if (!srv)
        return;
    MHD_stop_daemon(srv->mhd); /* waits for requests in progress */
    if (srv->unix_path[0])
        unlink(srv->unix_path);
    kvt__admin_log(srv, KVT_LOG_INFO, "msg=\"admin server stopped\"");
    free(srv);
}
