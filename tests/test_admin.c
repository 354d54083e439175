/* The admin HTTP server over real HTTP: every route and status, LMCache's
 * test_backend_api.py behaviours, auth, body limits, the /conf transaction (validation,
 * all-or-nothing, If-Match, dry run), a close whose tier hangs, and registry churn under
 * traffic. Tiers: LocalCPUBackend + TestTierA + TestTierB (testkit.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <cjson/cJSON.h>

#include "admin/admin_internal.h"
#include "http_client.h"
#include "kvtier/admin.h"
#include "testkit.h"

#define TOKEN "s3cret-token"

struct fx {
    kvt_store *s;
    kvt_admin *srv;
    int port;
};

static kvt_config *fx_config(void)
{
    kvt_config *cfg = tk_config(16.0);
    assert_int_equal(kvt_config_set(cfg, "chunk_size", "16"), KVT_OK);
    return cfg;
}

static void fx_start(struct fx *f, const char *token)
{
    kvt_admin_options o;
    kvt_admin_options_init(&o);
    o.port = KVT_ADMIN_PORT_ANY;
    o.token = token;
    o.kv_bytes_per_token = 64; /* 1 KiB chunks */
    o.log = &tk_quiet;
    assert_int_equal(kvt_admin_start(f->s, &o, &f->srv), KVT_OK);
    assert_non_null(f->srv);
    f->port = kvt_admin_port(f->srv);
    assert_true(f->port > 0);
}

static int setup_token(void **state, const char *token)
{
    struct fx *f = calloc(1, sizeof *f);
    kvt_config *cfg;
    tk_register();
    tk_reset(&tk_a);
    tk_reset(&tk_b);
    atomic_store(&tk_a.wanted, true);
    atomic_store(&tk_b.wanted, true);
    cfg = fx_config();
    assert_int_equal(kvt_store_open(cfg, &tk_quiet, &f->s), KVT_OK);
    kvt_config_free(cfg);
    fx_start(f, token);
    *state = f;
    return 0;
}

static int setup(void **state) { return setup_token(state, ""); }

static int teardown(void **state)
{
    struct fx *f = *state;
    tk_gate(&tk_a, true, false); /* a failed test may leave a call parked */
    tk_gate(&tk_b, true, false);
    kvt_admin_stop(f->srv);
    kvt_store_close(f->s);
    assert_int_equal(atomic_load(&tk_a.live), 0);
    assert_int_equal(atomic_load(&tk_b.live), 0);
    free(f);
    return 0;
}

/* ------------------------------------------------------------ helpers */

/* One request; returns the status, `*json` the parsed body (caller frees) if asked. */
static int req(struct fx *f, const char *method, const char *path, const char *headers,
               const char *body, cJSON **json)
{
    struct http_resp r;
    http_do(f->port, method, path, headers, body, body ? strlen(body) : 0, &r);
    if (json) {
        *json = r.body ? cJSON_Parse(r.body) : NULL;
        if (r.status > 0 && !*json)
            fail_msg("%s %s: body is not JSON: %s", method, path, r.body);
    }
    http_free(&r);
    return r.status;
}

static const char *str(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : -12345;
}

static bool has(const cJSON *o, const char *k) { return cJSON_GetObjectItemCaseSensitive(o, k) != NULL; }

/* "A,B,C": the keys of a JSON object, in order. */
static const char *keys(const cJSON *o)
{
    static char buf[512];
    buf[0] = '\0';
    for (const cJSON *c = o ? o->child : NULL; c; c = c->next)
        snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s%s", buf[0] ? "," : "", c->string);
    return buf;
}

static void expect_status(struct fx *f, const char *method, const char *path, int want)
{
    int got = req(f, method, path, NULL, NULL, NULL);
    if (got != want)
        fail_msg("%s %s: %d, want %d", method, path, got, want);
}

/* ------------------------------------------------------------ route table vs OpenAPI */

static void routes_match_openapi(void **state)
{
    char path[1024], line[512], cur[256] = "";
    const char *src = getenv("KVT_TEST_SRC");
    size_t listed = 0, rows = 0;
    FILE *fp;
    (void)state;
    snprintf(path, sizeof path, "%s/docs/openapi.yaml", src ? src : ".");
    assert_non_null(fp = fopen(path, "r"));
    bool in_paths = false;
    while (fgets(line, sizeof line, fp)) {
        char m[16];
        if (strncmp(line, "paths:", 6) == 0) {
            in_paths = true;
            continue;
        }
        if (!in_paths)
            continue;
        if (line[0] != ' ' && line[0] != '\n')
            break;
        if (line[2] == '/' && sscanf(line, "  %255[^:]:", cur) == 1)
            continue;
        if (strncmp(line, "    ", 4) == 0 && line[4] != ' ' && sscanf(line + 4, "%15[a-z]:", m) == 1 &&
            (!strcmp(m, "get") || !strcmp(m, "post") || !strcmp(m, "put") || !strcmp(m, "delete"))) {
            bool found = false;
            for (const struct admin_route *rt = kvt__admin_routes; rt->method; rt++) {
                char lower[16];
                size_t i;
                for (i = 0; rt->method[i] && i < sizeof lower - 1; i++)
                    lower[i] = (char)(rt->method[i] | 0x20);
                lower[i] = '\0';
                found |= !strcmp(lower, m) && !strcmp(rt->pattern, cur);
            }
            if (!found)
                fail_msg("openapi.yaml lists %s %s, the route table does not", m, cur);
            listed++;
        }
    }
    fclose(fp);
    for (const struct admin_route *rt = kvt__admin_routes; rt->method; rt++)
        rows++;
    assert_int_equal(listed, rows); /* no row missing from the document */
}

/* ------------------------------------------------------------ /backends */

static void list_in_tier_order(void **state)
{
    struct fx *f = *state;
    cJSON *j;
    assert_int_equal(req(f, "GET", "/backends", NULL, NULL, &j), 200);
    assert_string_equal(keys(j), "LocalCPUBackend,TestTierA,TestTierB");
    assert_string_equal(str(j, "TestTierA"), "TestTierA");
    cJSON_Delete(j);
}

static void get_one_backend(void **state)
{
    struct fx *f = *state;
    cJSON *j;
    assert_int_equal(req(f, "GET", "/backends/TestTierB", NULL, NULL, &j), 200);
    assert_string_equal(str(j, "class"), "TestTierB");
    assert_int_equal(num(j, "position"), 2);
    assert_string_equal(str(j, "state"), "active");
    assert_true(has(j, "mode") && has(j, "bypass") && has(j, "health") && has(j, "usage") &&
                has(j, "counters"));
    cJSON_Delete(j);
    assert_int_equal(req(f, "GET", "/backends/NoSuchBackend", NULL, NULL, &j), 404);
    assert_string_equal(str(j, "status"), "not_found");
    cJSON_Delete(j);
}

/* LMCache #4, #5, #8, #15 and "create again creates nothing". */
static void close_then_create(void **state)
{
    struct fx *f = *state;
    cJSON *j;
    assert_int_equal(req(f, "DELETE", "/backends/TestTierA", NULL, NULL, &j), 200);
    assert_string_equal(str(j, "status"), "success");
    assert_string_equal(str(j, "message"), "Backend TestTierA closed");
    assert_string_equal(keys(cJSON_GetObjectItem(j, "backends")), "LocalCPUBackend,TestTierB");
    cJSON_Delete(j);
    assert_int_equal(req(f, "DELETE", "/backends/TestTierA", NULL, NULL, &j), 404);
    assert_string_equal(str(j, "status"), "not_found");
    assert_string_equal(str(j, "message"), "Backend TestTierA not found");
    cJSON_Delete(j);
    /* #15: the config changes in between, then create brings the tier back. */
    assert_int_equal(req(f, "POST", "/conf", NULL, "{\"blocking_timeout_secs\": 7}", NULL), 200);
    assert_int_equal(req(f, "POST", "/backends", NULL, NULL, &j), 200);
    assert_string_equal(str(j, "status"), "success");
    assert_string_equal(keys(cJSON_GetObjectItem(j, "created")), "TestTierA");
    assert_string_equal(keys(cJSON_GetObjectItem(j, "backends")),
                        "LocalCPUBackend,TestTierA,TestTierB");
    cJSON_Delete(j);
    assert_int_equal(req(f, "POST", "/backends", NULL, NULL, &j), 200);
    assert_string_equal(keys(cJSON_GetObjectItem(j, "created")), "");
    cJSON_Delete(j);
}

/* LMCache #10, #11, #12, #14; recreate keeps the position. */
static void recreate_and_failures(void **state)
{
    struct fx *f = *state;
    cJSON *j;
    assert_int_equal(req(f, "POST", "/backends/TestTierA/recreate", NULL, NULL, &j), 200);
    assert_string_equal(str(j, "status"), "success");
    assert_string_equal(keys(cJSON_GetObjectItem(j, "recreated")), "TestTierA");
    assert_string_equal(keys(cJSON_GetObjectItem(j, "backends")),
                        "LocalCPUBackend,TestTierA,TestTierB");
    cJSON_Delete(j);
    assert_int_equal(req(f, "POST", "/backends/NoSuchBackend/recreate", NULL, NULL, &j), 404);
    assert_string_equal(str(j, "status"), "not_found");
    cJSON_Delete(j);

    atomic_store(&tk_b.fail_create, KVT_EIO);
    assert_int_equal(req(f, "POST", "/backends/TestTierB/recreate", NULL, NULL, &j), 500);
    assert_string_equal(str(j, "error"), "Failed to recreate backend");
    assert_non_null(str(j, "message"));
    assert_true(strlen(str(j, "message")) > 0);
    assert_null(strstr(str(j, "message"), "0x")); /* kvtier's text, never pointers */
    cJSON_Delete(j);
    assert_int_equal(req(f, "POST", "/backends", NULL, NULL, &j), 500);
    assert_string_equal(str(j, "error"), "Failed to create backends");
    assert_true(strlen(str(j, "message")) > 0);
    cJSON_Delete(j);
    atomic_store(&tk_b.fail_create, 0);
    assert_int_equal(req(f, "POST", "/backends", NULL, NULL, &j), 200);
    assert_string_equal(keys(cJSON_GetObjectItem(j, "created")), "TestTierB");
    assert_string_equal(keys(cJSON_GetObjectItem(j, "backends")),
                        "LocalCPUBackend,TestTierA,TestTierB");
    cJSON_Delete(j);
}

/* §13.7: LocalCPU cannot close under its dependants. */
static void close_cpu_conflict(void **state)
{
    struct fx *f = *state;
    cJSON *j;
    assert_int_equal(req(f, "DELETE", "/backends/LocalCPUBackend", NULL, NULL, &j), 409);
    assert_string_equal(str(j, "status"), "conflict");
    assert_non_null(strstr(str(j, "message"), "TestTierA"));
    assert_string_equal(keys(cJSON_GetObjectItem(j, "backends")),
                        "LocalCPUBackend,TestTierA,TestTierB");
    cJSON_Delete(j);
    expect_status(f, "DELETE", "/backends/TestTierA?timeout_ms=abc", 400);
    expect_status(f, "DELETE", "/backends/TestTierA?force=maybe", 400);
}

/* ------------------------------------------------------------ no store, auth, HTTP rules */

static void no_store_503(void **state)
{
    struct fx g = {0};
    kvt_admin_options o;
    cJSON *j;
    (void)state;
    kvt_admin_options_init(&o);
    o.host = "127.0.0.1";
    o.port = KVT_ADMIN_PORT_ANY;
    o.token = "";
    o.log = &tk_quiet;
    assert_int_equal(kvt_admin_start(NULL, &o, &g.srv), KVT_OK);
    g.port = kvt_admin_port(g.srv);
    assert_int_equal(req(&g, "GET", "/backends", NULL, NULL, &j), 503);
    assert_string_equal(str(j, "error"), "/backends API is unavailable");
    assert_string_equal(str(j, "message"), "LMCache engine not configured.");
    cJSON_Delete(j);
    expect_status(&g, "DELETE", "/backends/RemoteBackend", 503);
    expect_status(&g, "POST", "/backends", 503);
    expect_status(&g, "POST", "/backends/RemoteBackend/recreate", 503);
    expect_status(&g, "GET", "/conf", 503);
    expect_status(&g, "GET", "/metrics", 503);
    expect_status(&g, "GET", "/healthz", 200);
    expect_status(&g, "GET", "/version", 200);
    kvt_admin_stop(g.srv);
    /* Without a store, host, port and token must be explicit. */
    kvt_admin_options_init(&o);
    o.log = &tk_quiet;
    assert_int_equal(kvt_admin_start(NULL, &o, &g.srv), KVT_EINVAL);
    assert_null(g.srv);
}

static int setup_auth(void **state) { return setup_token(state, TOKEN); }

static void auth_none_wrong_right(void **state)
{
    struct fx *f = *state;
    struct http_resp r;
    char buf[64];
    cJSON *j;
    http_do(f->port, "GET", "/backends", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 401);
    assert_string_equal(http_header(&r, "WWW-Authenticate", buf, sizeof buf), "Bearer");
    j = cJSON_Parse(r.body);
    assert_string_equal(str(j, "error"), "Unauthorized");
    assert_string_equal(str(j, "message"), "missing or invalid bearer token");
    cJSON_Delete(j);
    http_free(&r);
    assert_int_equal(req(f, "GET", "/backends", "Authorization: Bearer wrong\r\n", NULL, NULL), 401);
    assert_int_equal(req(f, "GET", "/backends", "Authorization: Bearer " TOKEN "x\r\n", NULL, NULL), 401);
    assert_int_equal(req(f, "GET", "/backends", "Authorization: Basic " TOKEN "\r\n", NULL, NULL), 401);
    assert_int_equal(req(f, "GET", "/backends", "Authorization: Bearer " TOKEN "\r\n", NULL, NULL), 200);
    assert_int_equal(req(f, "GET", "/healthz", NULL, NULL, NULL), 200);
    /* Auth before routing: unknown paths do not reveal themselves. */
    assert_int_equal(req(f, "GET", "/nope", NULL, NULL, NULL), 401);
    assert_int_equal(req(f, "GET", "/nope", "Authorization: Bearer " TOKEN "\r\n", NULL, NULL), 404);
    assert_int_equal(req(f, "POST", "/healthz", NULL, NULL, NULL), 401);
    /* The token is never shown. */
    assert_int_equal(req(f, "GET", "/conf", "Authorization: Bearer " TOKEN "\r\n", NULL, NULL), 200);
    {
        struct http_resp c;
        http_do(f->port, "GET", "/conf", "Authorization: Bearer " TOKEN "\r\n", NULL, 0, &c);
        assert_null(strstr(c.body, TOKEN));
        http_free(&c);
    }
}

static void not_found_and_method(void **state)
{
    struct fx *f = *state;
    struct http_resp r;
    char buf[64];
    expect_status(f, "GET", "/nope", 404);
    expect_status(f, "GET", "/backends/bad%20name", 404);
    expect_status(f, "GET", "/backends/TestTierA/recreate", 405);
    http_do(f->port, "PUT", "/backends", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 405);
    assert_string_equal(http_header(&r, "Allow", buf, sizeof buf), "GET, POST");
    http_free(&r);
    {
        static const char rebind[] = "GET /backends HTTP/1.1\r\nHost: evil.example:80\r\n"
                                     "Connection: close\r\n\r\n";
        http_raw(f->port, rebind, sizeof rebind - 1, &r);
        assert_int_equal(r.status, 403); /* DNS rebinding */
        http_free(&r);
    }
    expect_status(f, "GET", "/healthz", 200);
    assert_int_equal(req(f, "GET", "/backends", "Origin: http://evil.example\r\n", NULL, NULL), 403);
}

static void body_limit_413(void **state)
{
    struct fx *f = *state;
    struct http_resp r;
    char head[256];
    size_t big = ADMIN_BODY_MAX + 4096, n = 0;
    char *raw;
    /* Announced too large: refused before the body is read. */
    snprintf(head, sizeof head,
             "POST /conf HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
             "Content-Length: %zu\r\n\r\n", big);
    http_raw(f->port, head, strlen(head), &r);
    assert_int_equal(r.status, 413);
    http_free(&r);
    /* Chunked: the cap is hit while the body arrives. */
    raw = malloc(big + 4 * 65536);
    n = (size_t)sprintf(raw, "POST /conf HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                             "Transfer-Encoding: chunked\r\n\r\n");
    for (size_t sent = 0; sent < big; sent += 65536) {
        n += (size_t)sprintf(raw + n, "10000\r\n");
        memset(raw + n, ' ', 65536);
        n += 65536;
        n += (size_t)sprintf(raw + n, "\r\n");
        if (n > big)
            break;
    }
    n += (size_t)sprintf(raw + n, "0\r\n\r\n");
    http_raw(f->port, raw, n, &r);
    free(raw);
    assert_int_equal(r.status, 413);
    http_free(&r);
    expect_status(f, "GET", "/healthz", 200);
}

/* ------------------------------------------------------------ /conf */

static double conf_num(struct fx *f, const char *key)
{
    char path[128];
    cJSON *j;
    double v;
    snprintf(path, sizeof path, "/conf?names=%s", key);
    assert_int_equal(req(f, "GET", path, NULL, NULL, &j), 200);
    v = num(j, key);
    cJSON_Delete(j);
    return v;
}

static long etag(struct fx *f)
{
    struct http_resp r;
    char buf[32];
    long v;
    http_do(f->port, "GET", "/conf", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(http_header(&r, "ETag", buf, sizeof buf));
    assert_int_equal(sscanf(buf, "\"%ld\"", &v), 1);
    http_free(&r);
    return v;
}

static void conf_get(void **state)
{
    struct fx *f = *state;
    cJSON *j;
    assert_int_equal(req(f, "GET", "/conf", NULL, NULL, &j), 200);
    assert_int_equal(num(j, "chunk_size"), 16);
    assert_true(cJSON_IsBool(cJSON_GetObjectItem(j, "local_cpu")));
    assert_true(has(j, "extra_config.ping_interval"));
    cJSON_Delete(j);
    assert_int_equal(req(f, "GET", "/conf?names=chunk_size,save_unfull_chunk", NULL, NULL, &j), 200);
    assert_string_equal(keys(j), "chunk_size,save_unfull_chunk");
    cJSON_Delete(j);
    assert_int_equal(req(f, "GET", "/conf?names=module_path", NULL, NULL, &j), 400);
    assert_string_equal(str(j, "error"), "Unknown config");
    cJSON_Delete(j);
    assert_int_equal(etag(f), 1);
}

static void expect_invalid(struct fx *f, const char *body, const char *error, const char *in_msg)
{
    cJSON *j;
    int st = req(f, "POST", "/conf", NULL, body, &j);
    if (st != 400)
        fail_msg("POST /conf %s: %d, want 400", body, st);
    assert_string_equal(str(j, "error"), error);
    if (in_msg && !strstr(str(j, "message") ? str(j, "message") : "", in_msg))
        fail_msg("POST /conf %s: message \"%s\" lacks \"%s\"", body, str(j, "message"), in_msg);
    cJSON_Delete(j);
}

static void conf_post_rejects(void **state)
{
    struct fx *f = *state;
    cJSON *j;
    expect_invalid(f, "{\"blocking_timeout_secs\": ", "Invalid JSON body", NULL);
    expect_invalid(f, "{\"a\":1} trailing", "Invalid JSON body", NULL);
    expect_invalid(f, "", "Invalid JSON body", NULL);
    expect_invalid(f, "[1,2]", "Request body must be a JSON object", NULL);
    expect_invalid(f, "{\"storage_plugins\": [\"x\"]}", "Invalid config", "Unknown config");
    expect_invalid(f, "{\"module_path\": \"/tmp/x.so\"}", "Invalid config", "Unknown config");
    expect_invalid(f, "{\"chunk_size\": 512}", "Invalid config", "Config is not mutable at runtime");
    expect_invalid(f, "{\"internal_api_server_auth_token\": \"x\"}", "Invalid config",
                   "Config is not mutable at runtime");
    expect_invalid(f, "{\"blocking_timeout_secs\": 1, \"blocking_timeout_secs\": 2}",
                   "Invalid JSON body", "duplicate");
    expect_invalid(f, "{\"remote_url\": {\"a\": {\"b\": {\"c\": {}}}}}", "Invalid JSON body",
                   "nested");
    expect_invalid(f, "{\"blocking_timeout_secs\": {\"a\": 1}}", "Invalid JSON body", NULL);
    /* Mixed valid + invalid: nothing changes, every bad key is named. */
    assert_int_equal(req(f, "POST", "/conf", NULL,
                         "{\"blocking_timeout_secs\": 5, \"chunk_size\": 512, \"storage_plugins\": []}",
                         &j), 400);
    assert_string_equal(str(j, "error"), "Invalid config");
    assert_string_equal(keys(cJSON_GetObjectItem(j, "errors")), "chunk_size,storage_plugins");
    cJSON_Delete(j);
    assert_int_equal(req(f, "POST", "/conf", NULL,
                         "{\"write_queue_timeout_ms\": 20, \"blocking_timeout_secs\": \"x\"}", &j), 400);
    assert_string_equal(keys(cJSON_GetObjectItem(j, "errors")), "blocking_timeout_secs");
    cJSON_Delete(j);
    expect_invalid(f, "{\"blocking_timeout_secs\": 0}", "Invalid config", "blocking_timeout_secs");
    assert_int_equal(conf_num(f, "blocking_timeout_secs"), 10);
    assert_int_equal(conf_num(f, "write_queue_timeout_ms"), 10);
    assert_int_equal(etag(f), 1); /* nothing was applied */
}

static void conf_post_applies(void **state)
{
    struct fx *f = *state;
    struct http_resp r;
    char buf[32];
    cJSON *j;
    const char *body = "{\"blocking_timeout_secs\": 5, \"extra_config\": {\"ping_interval\": 7}}";
    http_do(f->port, "POST", "/conf", NULL, body, strlen(body), &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(http_header(&r, "ETag", buf, sizeof buf), "\"2\"");
    j = cJSON_Parse(r.body);
    assert_string_equal(str(j, "status"), "success");
    assert_int_equal(num(cJSON_GetObjectItem(j, "updated"), "blocking_timeout_secs"), 5);
    assert_int_equal(num(cJSON_GetObjectItem(j, "updated"), "extra_config.ping_interval"), 7);
    assert_int_equal(num(j, "version"), 2);
    cJSON_Delete(j);
    http_free(&r);
    assert_int_equal(conf_num(f, "blocking_timeout_secs"), 5);
    assert_int_equal(conf_num(f, "extra_config.ping_interval"), 7);
    /* Values converted as environment values are: "12" is an int. */
    assert_int_equal(req(f, "POST", "/conf", NULL, "{\"write_queue_timeout_ms\": \"12\"}", NULL), 200);
    assert_int_equal(conf_num(f, "write_queue_timeout_ms"), 12);
}

static void conf_if_match(void **state)
{
    struct fx *f = *state;
    cJSON *j;
    long v = etag(f);
    char hdr[64], stale[64];
    snprintf(hdr, sizeof hdr, "If-Match: \"%ld\"\r\n", v);
    snprintf(stale, sizeof stale, "If-Match: \"%ld\"\r\n", v);
    assert_int_equal(req(f, "POST", "/conf", hdr, "{\"blocking_timeout_secs\": 3}", NULL), 200);
    /* A second operator still holding the old version: 412, nothing changes. */
    assert_int_equal(req(f, "POST", "/conf", stale, "{\"blocking_timeout_secs\": 4}", &j), 412);
    assert_string_equal(str(j, "error"), "Precondition Failed");
    assert_int_equal(num(j, "version"), v + 1);
    cJSON_Delete(j);
    assert_int_equal(conf_num(f, "blocking_timeout_secs"), 3);
    assert_int_equal(req(f, "POST", "/conf", "If-Match: garbage\r\n", "{\"blocking_timeout_secs\": 4}",
                         NULL), 412);
    assert_int_equal(req(f, "POST", "/conf", "If-Match: *\r\n", "{\"blocking_timeout_secs\": 4}", NULL),
                     200);
    assert_int_equal(conf_num(f, "blocking_timeout_secs"), 4);
}

static void conf_dry_run(void **state)
{
    struct fx *f = *state;
    cJSON *j, *c;
    assert_int_equal(req(f, "POST", "/conf?dry_run=true", NULL,
                         "{\"backend_close_timeout_ms\": 500, \"blocking_timeout_secs\": 9, "
                         "\"max_local_disk_size\": 2}", &j), 200);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "dry_run")));
    c = cJSON_GetObjectItem(j, "changes");
    assert_string_equal(str(cJSON_GetObjectItem(c, "backend_close_timeout_ms"), "takes_effect"),
                        "immediately");
    assert_int_equal(num(cJSON_GetObjectItem(c, "backend_close_timeout_ms"), "from"), 10000);
    assert_int_equal(num(cJSON_GetObjectItem(c, "backend_close_timeout_ms"), "to"), 500);
    assert_string_equal(str(cJSON_GetObjectItem(c, "blocking_timeout_secs"), "takes_effect"),
                        "next create/recreate");
    assert_string_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(c,
                            "blocking_timeout_secs"), "backends"), 0)->valuestring, "RemoteBackend");
    assert_string_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(c,
                            "max_local_disk_size"), "backends"), 0)->valuestring, "LocalDiskBackend");
    cJSON_Delete(j);
    assert_int_equal(conf_num(f, "backend_close_timeout_ms"), 10000);
    assert_int_equal(etag(f), 1);
    expect_invalid(f, "{\"chunk_size\": 1}", "Invalid config", "not mutable");
    assert_int_equal(req(f, "POST", "/conf?dry_run=maybe", NULL, "{}", NULL), 400);
}

/* ------------------------------------------------------------ bypass, freeze, cache */

static void bypass_routes(void **state)
{
    struct fx *f = *state;
    cJSON *j;
    assert_int_equal(req(f, "GET", "/bypass/list", NULL, NULL, &j), 200);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "bypassed_backends")), 0);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "all_backends")), 3);
    cJSON_Delete(j);
    assert_int_equal(req(f, "PUT", "/bypass/add?backend_name=TestTierA", NULL, NULL, &j), 200);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "bypassed")));
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(j, "was_already_bypassed")));
    assert_string_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "bypassed_backends"), 0)->valuestring,
                        "TestTierA");
    cJSON_Delete(j);
    assert_int_equal(req(f, "PUT", "/bypass/add?backend_name=TestTierA", NULL, NULL, &j), 200);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "was_already_bypassed")));
    cJSON_Delete(j);
    assert_int_equal(req(f, "GET", "/backends/TestTierA", NULL, NULL, &j), 200);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "bypass"), "manual")));
    cJSON_Delete(j);
    assert_int_equal(req(f, "PUT", "/bypass/remove?backend_name=TestTierA", NULL, NULL, &j), 200);
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(j, "bypassed")));
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "was_bypassed")));
    cJSON_Delete(j);
    expect_status(f, "PUT", "/bypass/add", 400);
    expect_status(f, "PUT", "/bypass/add?backend_name=Nope", 400);
    expect_status(f, "PUT", "/bypass/remove?backend_name=a%2Fb", 400);
}

static int retrieved(struct fx *f, const char *range)
{
    char path[128];
    cJSON *j;
    int n;
    snprintf(path, sizeof path, "/cache/retrieve?tokens_mock=%s", range);
    assert_int_equal(req(f, "POST", path, NULL, NULL, &j), 200);
    n = (int)num(j, "num_retrieved");
    cJSON_Delete(j);
    return n;
}

static void freeze_routes(void **state)
{
    struct fx *f = *state;
    cJSON *j;
    assert_int_equal(req(f, "GET", "/freeze/status", NULL, NULL, &j), 200);
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(j, "freeze")));
    cJSON_Delete(j);
    assert_int_equal(req(f, "PUT", "/freeze/enable", NULL, NULL, &j), 200);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "freeze")));
    assert_string_equal(str(j, "status"), "success");
    cJSON_Delete(j);
    assert_int_equal(req(f, "POST", "/cache/store?tokens_mock=0,64", NULL, NULL, NULL), 200);
    assert_int_equal(retrieved(f, "0,64"), 0); /* frozen: nothing was stored */
    assert_int_equal(req(f, "GET", "/freeze/status", NULL, NULL, &j), 200);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "freeze")));
    cJSON_Delete(j);
    assert_int_equal(req(f, "PUT", "/freeze/disable", NULL, NULL, &j), 200);
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(j, "freeze")));
    cJSON_Delete(j);
}

static void cache_routes(void **state)
{
    struct fx *f = *state;
    cJSON *j;
    assert_int_equal(req(f, "POST", "/cache/store?tokens_mock=0,64", NULL, NULL, &j), 200);
    assert_int_equal(num(j, "num_tokens"), 64);
    cJSON_Delete(j);
    assert_int_equal(req(f, "POST", "/cache/retrieve?tokens_mock=0,64", NULL, NULL, &j), 200);
    assert_int_equal(num(j, "num_tokens"), 64);
    assert_int_equal(num(j, "num_retrieved"), 64);
    cJSON_Delete(j);
    assert_int_equal(retrieved(f, "0,128"), 64); /* shares the first 4 chunks */
    assert_int_equal(retrieved(f, "64,128"), 0); /* another prefix */
    assert_int_equal(retrieved(f, "0,40"), 32);  /* the partial chunk is not stored */
    assert_int_equal(kvt_flush(f->s, 5000), KVT_OK);
    assert_int_equal(tk_count(&tk_a), 4);       /* written through to the lower tiers */
    expect_status(f, "POST", "/cache/store?tokens_mock=5,5", 400);
    expect_status(f, "POST", "/cache/store?tokens_mock=abc", 400);
    expect_status(f, "POST", "/cache/store", 400);
    expect_status(f, "POST", "/cache/retrieve?tokens_mock=-1,4", 400);
    expect_status(f, "POST", "/cache/store?tokens_mock=0,99999999", 400);
    expect_status(f, "DELETE", "/cache/clear?locations=LocalCPUBackend", 400);
    assert_int_equal(req(f, "DELETE",
                         "/cache/clear?locations=LocalCPUBackend&locations=TestTierA&locations=TestTierB",
                         NULL, NULL, &j), 200);
    assert_string_equal(str(j, "status"), "success");
    assert_true(num(j, "num_removed") >= 64);
    cJSON_Delete(j);
    assert_int_equal(retrieved(f, "0,64"), 0);
    assert_int_equal(req(f, "DELETE", "/cache/clear", NULL, NULL, &j), 200);
    assert_int_equal(num(j, "num_removed"), 0);
    cJSON_Delete(j);
}

/* ------------------------------------------------------------ metrics, status, version */

static void metrics_status_version(void **state)
{
    struct fx *f = *state;
    struct http_resp r;
    char buf[128];
    cJSON *j;
    expect_status(f, "DELETE", "/backends/TestTierB", 200);
    expect_status(f, "POST", "/cache/store?tokens_mock=0,256", 200);
    http_do(f->port, "GET", "/metrics", NULL, NULL, 0, &r);
    assert_null(strstr(r.body, "lmcache:num_store_requests 0\n"));
    http_free(&r);
    http_do(f->port, "GET", "/metrics", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(http_header(&r, "Content-Type", buf, sizeof buf), "text/plain"));
    assert_non_null(strstr(r.body, "lmcache:num_store_requests"));
    assert_non_null(strstr(r.body, "kvtier_admin_operations_total{op=\"close\"} 1"));
    assert_non_null(strstr(r.body, "kvtier_admin_requests_total"));
    http_free(&r);
    /* LMCache's reset: traffic counters go to 0, the answer is the text "ok". */
    http_do(f->port, "POST", "/metrics/reset", NULL, NULL, 0, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "ok");
    http_free(&r);
    http_do(f->port, "GET", "/metrics", NULL, NULL, 0, &r);
    assert_non_null(strstr(r.body, "lmcache:num_store_requests 0\n"));
    http_free(&r);
    assert_int_equal(req(f, "GET", "/status", NULL, NULL, &j), 200);
    assert_string_equal(str(j, "status"), "ok");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "backends")), 2);
    assert_true(has(cJSON_GetObjectItem(j, "store"), "wt_enqueued"));
    cJSON_Delete(j);
    assert_int_equal(req(f, "GET", "/version", NULL, NULL, &j), 200);
    assert_string_equal(str(j, "version"), kvt_version());
    cJSON_Delete(j);
    assert_int_equal(req(f, "GET", "/healthz", NULL, NULL, &j), 200);
    assert_string_equal(str(j, "status"), "ok");
    cJSON_Delete(j);
}

/* ------------------------------------------------------------ a close whose tier hangs */

struct bg_req {
    struct fx *f;
    const char *method, *path;
    int status;
    double ms;
    cJSON *json;
};

static void *bg_run(void *p)
{
    struct bg_req *b = p;
    double t0 = tk_now_ms();
    b->status = req(b->f, b->method, b->path, NULL, NULL, &b->json);
    b->ms = tk_now_ms() - t0;
    return NULL;
}

static void delete_hung_tier_202(void **state)
{
    struct fx *f = *state;
    struct bg_req del = {f, "DELETE", "/backends/TestTierA?timeout_ms=400", 0, 0, NULL};
    pthread_t t;
    cJSON *j;
    tk_gate(&tk_a, true, true); /* TestTierA's writes hang */
    assert_int_equal(req(f, "POST", "/cache/store?tokens_mock=0,64", NULL, NULL, NULL), 200);
    tk_wait_parked(&tk_a, true, 1);
    pthread_create(&t, NULL, bg_run, &del);
    /* While the DELETE waits, the other routes keep answering, quickly. */
    for (int i = 0; i < 5; i++) {
        struct http_resp r;
        http_do(f->port, "GET", "/backends", NULL, NULL, 0, &r);
        assert_int_equal(r.status, 200);
        if (r.ms >= 300)
            fail_msg("GET /backends took %.0f ms while a DELETE drained", r.ms);
        http_free(&r);
        assert_int_equal(retrieved(f, "0,64"), 64);
        usleep(20000);
    }
    pthread_join(t, NULL);
    assert_int_equal(del.status, 202);
    assert_true(del.ms < 2000);
    assert_string_equal(str(del.json, "status"), "draining");
    assert_true(num(del.json, "pending") >= 0);
    assert_true(has(del.json, "backends"));
    cJSON_Delete(del.json);
    assert_int_equal(req(f, "GET", "/backends/TestTierA", NULL, NULL, &j), 200);
    assert_string_equal(str(j, "state"), "draining");
    cJSON_Delete(j);
    /* A repeated DELETE resumes the wait: still hung, still 202 (force too). */
    expect_status(f, "DELETE", "/backends/TestTierA?timeout_ms=50", 202);
    expect_status(f, "DELETE", "/backends/TestTierA?timeout_ms=50&force=true", 202);
    tk_gate(&tk_a, true, false);
    assert_int_equal(req(f, "DELETE", "/backends/TestTierA?timeout_ms=5000", NULL, NULL, &j), 200);
    assert_string_equal(keys(cJSON_GetObjectItem(j, "backends")), "LocalCPUBackend,TestTierB");
    cJSON_Delete(j);
}

/* ------------------------------------------------------------ churn under traffic */

struct client {
    struct fx *f;
    int id;
    atomic_bool *stop;
    long ok, failed;
};

static void *client_run(void *p)
{
    struct client *c = p;
    for (int i = 0; !atomic_load(c->stop); i++) {
        char path[96];
        cJSON *j = NULL;
        int base = (c->id * 1000 + i % 50) * 64;
        snprintf(path, sizeof path, "/cache/store?tokens_mock=%d,%d", base, base + 64);
        if (req(c->f, "POST", path, NULL, NULL, NULL) != 200) {
            c->failed++;
            continue;
        }
        snprintf(path, sizeof path, "/cache/retrieve?tokens_mock=%d,%d", base, base + 64);
        /* The CPU tier is never closed: every chunk just stored is found. */
        if (req(c->f, "POST", path, NULL, NULL, &j) == 200 && num(j, "num_retrieved") == 64)
            c->ok++;
        else
            c->failed++;
        cJSON_Delete(j);
    }
    return NULL;
}

static void churn_under_traffic(void **state)
{
    struct fx *f = *state;
    struct client cl[3];
    pthread_t t[3];
    atomic_bool stop = false;
    int rounds = 0;
    double t0 = tk_now_ms();
    for (int i = 0; i < 3; i++) {
        cl[i] = (struct client){f, i, &stop, 0, 0};
        pthread_create(&t[i], NULL, client_run, &cl[i]);
    }
    while (tk_now_ms() - t0 < 1500) {
        int st;
        expect_status(f, "DELETE", "/backends/TestTierA", 200);
        expect_status(f, "POST", "/backends", 200);
        st = req(f, "POST", "/backends/TestTierB/recreate", NULL, NULL, NULL);
        if (st != 200)
            fail_msg("recreate under traffic: %d", st);
        expect_status(f, "GET", "/backends/TestTierA", 200);
        rounds++;
    }
    atomic_store(&stop, true);
    for (int i = 0; i < 3; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(cl[i].failed, 0);
        assert_true(cl[i].ok > 0);
    }
    assert_true(rounds > 2);
    expect_status(f, "GET", "/backends/TestTierB", 200);
}

/* ------------------------------------------------------------ start-up rules */

static void start_rules(void **state)
{
    struct fx *f = *state;
    kvt_admin_options o;
    kvt_admin *srv = NULL;
    kvt_config *cfg;
    kvt_store *s;
    (void)f;
    kvt_admin_options_init(&o);
    o.port = KVT_ADMIN_PORT_ANY;
    o.log = &tk_quiet;
    o.host = "0.0.0.0";
    o.token = "";
    assert_int_equal(kvt_admin_start(f->s, &o, &srv), KVT_EPERM);
    assert_null(srv);
    o.allow_insecure = 1;
    assert_int_equal(kvt_admin_start(f->s, &o, &srv), KVT_OK);
    kvt_admin_stop(srv);
    o.allow_insecure = -1;
    o.token = TOKEN;
    assert_int_equal(kvt_admin_start(f->s, &o, &srv), KVT_OK);
    kvt_admin_stop(srv);
    o.host = "no-such-host.invalid";
    assert_int_equal(kvt_admin_start(f->s, &o, &srv), KVT_EINVAL);
    /* The port in use: a clear failure. */
    o.host = "127.0.0.1";
    o.port = f->port;
    assert_int_equal(kvt_admin_start(f->s, &o, &srv), KVT_EIO);
    assert_null(srv);

    /* From the config: the include list and the port rule (port_start + 1 + worker id). */
    cfg = fx_config();
    assert_int_equal(kvt_config_set(cfg, "internal_api_server_include_index_list", "2"), KVT_OK);
    assert_int_equal(kvt_config_set(cfg, "internal_api_server_port_start", "1"), KVT_OK);
    assert_int_equal(kvt_store_open(cfg, &tk_quiet, &s), KVT_OK);
    kvt_config_free(cfg);
    kvt_admin_options_init(&o);
    o.log = &tk_quiet;
    o.worker_id = 0; /* offset 1: not listed */
    assert_int_equal(kvt_admin_start(s, &o, &srv), KVT_OK);
    assert_null(srv);
    kvt_store_close(s);

    cfg = fx_config();
    assert_int_equal(kvt_config_set(cfg, "internal_api_server_host", "0.0.0.0"), KVT_OK);
    assert_int_equal(kvt_store_open(cfg, &tk_quiet, &s), KVT_OK);
    kvt_config_free(cfg);
    kvt_admin_options_init(&o);
    o.log = &tk_quiet;
    o.port = KVT_ADMIN_PORT_ANY;
    assert_int_equal(kvt_admin_start(s, &o, &srv), KVT_EPERM); /* from the config, too */
    kvt_store_close(s);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(routes_match_openapi),
        T(list_in_tier_order),
        T(get_one_backend),
        T(close_then_create),
        T(recreate_and_failures),
        T(close_cpu_conflict),
        cmocka_unit_test(no_store_503),
        cmocka_unit_test_setup_teardown(auth_none_wrong_right, setup_auth, teardown),
        T(not_found_and_method),
        T(body_limit_413),
        T(conf_get),
        T(conf_post_rejects),
        T(conf_post_applies),
        T(conf_if_match),
        T(conf_dry_run),
        T(bypass_routes),
        T(freeze_routes),
        T(cache_routes),
        T(metrics_status_version),
        T(delete_hung_tier_202),
        T(churn_under_traffic),
        T(start_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
