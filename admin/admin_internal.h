/* kvtier admin server — internal interface between server.c (HTTP, MHD) and routes.c
 * (the route table and its handlers, which never see MHD). Not installed. */
#ifndef KVTIER_ADMIN_INTERNAL_H
#define KVTIER_ADMIN_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "kvtier/admin.h"

#define ADMIN_BODY_MAX (1u << 20) /* request bodies: 413 beyond */
#define ADMIN_JSON_DEPTH 4        /* deepest JSON nesting a body may have */

struct admin_req;

/* Route flags. */
enum {
    ROUTE_NO_AUTH = 1u << 0,  /* answered without the bearer token (GET /healthz) */
    ROUTE_NO_STORE = 1u << 1  /* answered without a store (no 503) */
};

/* One row of the route table: method + pattern ("{name}" matches one backend name). */
struct admin_route {
    const char *method;
    const char *pattern;
    void (*fn)(struct admin_req *r);
    unsigned flags;
};

/* Operations counted for GET /metrics. */
enum admin_op {
    OP_CLOSE, OP_CREATE, OP_RECREATE, OP_CONF_UPDATE, OP_BYPASS, OP_FREEZE, OP_CLEAR,
    OP_COUNT
};

struct kvt_admin {
    struct MHD_Daemon *mhd;
    kvt_store *store; /* NULL: 503 */
    char token[1024]; /* "" = no auth */
    size_t token_len;
    bool check_host; /* bound to loopback over TCP: Host must say so */
    int port;
    char unix_path[256]; /* "" = TCP */
    uint32_t kv_bytes_per_token;
    char model[KVT_KEY_MODEL_MAX];
    kvt_log_handler log;
    atomic_ullong next_id;
    atomic_ullong requests, errors; /* answered; answered with status >= 500 */
    atomic_ullong ops[OP_COUNT];
};

/* Per-request state, allocated on MHD's first call, freed when the request completes. */
struct admin_req {
    struct kvt_admin *srv;
    void *conn; /* struct MHD_Connection */
    unsigned long long id;
    const char *method, *path; /* borrowed from MHD for the request's life */
    const struct admin_route *route;
    char name[KVT_NAME_MAX]; /* the {name} of the path, if any */
    char *body;
    size_t len, cap, discarded;
    bool too_large, answered;
    /* The reply the handler builds; server.c turns it into an MHD response. */
    unsigned status;
    char *out;          /* malloc'd body */
    size_t out_len;
    const char *ctype;  /* static */
    char etag[32];
    char allow[64];
    bool www_auth;
};

/* The route table, for server.c and the OpenAPI test; ends with a NULL method. */
extern const struct admin_route kvt__admin_routes[];

/* ---- implemented in server.c for the handlers ---- */
/* One query argument (unescaped); NULL if absent. */
const char *kvt__admin_query(struct admin_req *r, const char *key);
/* Every value of a repeated query argument, at most `max`; returns how many exist. */
size_t kvt__admin_query_all(struct admin_req *r, const char *key, const char **out, size_t max);
/* A request header; NULL if absent. */
const char *kvt__admin_header(struct admin_req *r, const char *name);
/* Replies: the JSON is consumed (freed) in every case. */
void kvt__admin_json(struct admin_req *r, unsigned status, cJSON *body);
void kvt__admin_text(struct admin_req *r, unsigned status, const char *ctype, char *text, size_t len);
/* {"error": error, "message": message} */
void kvt__admin_error(struct admin_req *r, unsigned status, const char *error, const char *message);
void kvt__admin_log(struct kvt_admin *srv, kvt_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Does `s` match ^[A-Za-z0-9_.-]{1,63}$ (fits KVT_NAME_MAX)? */
bool kvt__admin_valid_name(const char *s);

#endif
