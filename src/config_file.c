/* kvtier — configuration sources: YAML and JSON files, and the LMCACHE_* environment.
 *
 * This file only walks documents. Every value goes through kvt__conf_put_*() in
 * config.c, so conversion, validation and precedence are the same for every source.
 * Each load works on a copy of the config that replaces it only when everything passed. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <yaml.h>

#include "config_internal.h"

/* Config files are a few kilobytes; the cap keeps a wrong path (a device, a huge log)
 * from being read whole. */
#define FILE_CAP (1u << 20)

/* A flat config nests 3 levels (top map, extra_config, a list). Deep nesting is refused
 * before the document is built: libyaml's loader needs 30 s for 200 KB of nested brackets,
 * and cJSON stops at 1000 levels with only a column to show. */
#define DEPTH_MAX 32

/* What one load is doing: where values go, at what precedence, and which keys it has
 * already seen (a key given twice in one document is an error, not "last one wins"). */
struct load {
    kvt_config *cfg;
    kvt_config_source src;
    bool *seen;
    bool seen_extra;
};

static int file_error(const char *path, int err)
{
    char buf[128];
    return kvt__fail(KVT_ECONFIG, "cannot read config file %.200s: %s", path,
                     strerror_r(err, buf, sizeof buf));
}

static int file_read(const char *path, char **out, size_t *len)
{
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC), err = 0;
    size_t n = 0;
    char *buf;
    *out = NULL;
    if (fd < 0)
        return file_error(path, errno);
    if (!(buf = malloc(FILE_CAP + 1))) {
        close(fd);
        return kvt__fail(KVT_ENOMEM, "out of memory");
    }
    while (n <= FILE_CAP) {
        ssize_t r = read(fd, buf + n, FILE_CAP + 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            err = errno;
            break;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    if (err || n > FILE_CAP) {
        free(buf);
        if (err)
            return file_error(path, err);
        return kvt__fail(KVT_ECONFIG, "cannot read config file %.200s: larger than 1 MiB", path);
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return KVT_OK;
}

/* Looks `name` up and rejects a second occurrence in the same document. */
static int load_key(struct load *ld, const char *name, size_t *idx)
{
    int rc = kvt__conf_lookup(name, idx);
    if (rc != KVT_OK)
        return rc;
    if (ld->seen[*idx])
        return kvt__fail(KVT_ECONFIG, "duplicate config key \"%s\"", name);
    ld->seen[*idx] = true;
    return KVT_OK;
}

/* "extra_config.<sub>"; top-level names may not use the dotted form themselves, so that a
 * file has one spelling for each key. */
static int sub_key(struct load *ld, const char *sub, size_t *idx)
{
    char name[256];
    if ((size_t)snprintf(name, sizeof name, "extra_config.%s", sub) >= sizeof name)
        return kvt__fail(KVT_ECONFIG, "unknown config key \"extra_config.%.200s\"", sub);
    return load_key(ld, name, idx);
}

static int top_key(struct load *ld, const char *name, size_t *idx)
{
    if (strncmp(name, "extra_config.", 13) == 0)
        return kvt__fail(KVT_ECONFIG,
                         "unknown config key \"%.200s\" (write extra_config subkeys inside the "
                         "extra_config map)", name);
    return load_key(ld, name, idx);
}

static int extra_twice(struct load *ld)
{
    if (ld->seen_extra)
        return kvt__fail(KVT_ECONFIG, "duplicate config key \"extra_config\"");
    ld->seen_extra = true;
    return KVT_OK;
}

static int shape_error(size_t idx, const char *what)
{
    return kvt__fail(KVT_ECONFIG, "invalid value for %s: %s", kvt__conf_name(idx), what);
}

/* ------------------------------------------------------------ YAML */

static bool yaml_is_null(const yaml_node_t *n)
{
    const char *s = (const char *)n->data.scalar.value;
    return n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
           (s[0] == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
            strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0);
}

/* A scalar's text, refusing embedded NULs, which would silently shorten the value. */
static const char *yaml_text(const yaml_node_t *n)
{
    const char *s = (const char *)n->data.scalar.value;
    return strlen(s) == n->data.scalar.length ? s : NULL;
}

static int yaml_value(struct load *ld, yaml_document_t *doc, size_t idx, yaml_node_t *n)
{
    if (n->type == YAML_SCALAR_NODE) {
        const char *s = yaml_text(n);
        if (!s)
            return shape_error(idx, "NUL character in value");
        if (yaml_is_null(n))
            return kvt__conf_put_null(ld->cfg, idx, ld->src);
        /* Only plain scalars are typed by YAML; "0400" or 'on' in quotes stay text. */
        if (n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE)
            return kvt__conf_put_yaml(ld->cfg, idx, s, ld->src);
        return kvt__conf_put_text(ld->cfg, idx, s, ld->src);
    }
    if (n->type == YAML_MAPPING_NODE)
        return shape_error(idx, "a mapping is only allowed for extra_config");
    if (kvt__conf_type(idx) != KVT_CONF_LIST)
        return shape_error(idx, "a sequence is only allowed for list keys");
    size_t cap = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start), k = 0;
    const char **items = calloc(cap + 1, sizeof *items);
    if (!items)
        return kvt__fail(KVT_ENOMEM, "out of memory");
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++) {
        yaml_node_t *item = yaml_document_get_node(doc, *it);
        if (!item || item->type != YAML_SCALAR_NODE || yaml_is_null(item) || !yaml_text(item)) {
            free(items);
            return shape_error(idx, "list items must be non-null scalars");
        }
        items[k++] = yaml_text(item);
    }
    int rc = kvt__conf_put_list(ld->cfg, idx, items, k, ld->src);
    free(items);
    return rc;
}

static int yaml_extra(struct load *ld, yaml_document_t *doc, yaml_node_t *map)
{
    int rc = extra_twice(ld);
    if (rc != KVT_OK)
        return rc;
    if (map->type == YAML_SCALAR_NODE && yaml_is_null(map))
        return KVT_OK;
    if (map->type != YAML_MAPPING_NODE)
        return kvt__fail(KVT_ECONFIG, "invalid value for extra_config: expected a mapping");
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key);
        yaml_node_t *v = yaml_document_get_node(doc, p->value);
        size_t idx;
        if (!k || !v || k->type != YAML_SCALAR_NODE || !yaml_text(k))
            return kvt__fail(KVT_ECONFIG, "extra_config: keys must be plain scalars");
        if ((rc = sub_key(ld, yaml_text(k), &idx)) != KVT_OK ||
            (rc = yaml_value(ld, doc, idx, v)) != KVT_OK)
            return rc;
    }
    return KVT_OK;
}

static int yaml_root(struct load *ld, yaml_document_t *doc)
{
    yaml_node_t *root = yaml_document_get_root_node(doc);
    int rc;
    if (!root || (root->type == YAML_SCALAR_NODE && yaml_is_null(root)))
        return KVT_OK; /* an empty file, or comments only */
    if (root->type != YAML_MAPPING_NODE)
        return kvt__fail(KVT_ECONFIG, "the top level must be a mapping of config keys");
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(doc, p->key);
        yaml_node_t *v = yaml_document_get_node(doc, p->value);
        size_t idx;
        if (!k || !v || k->type != YAML_SCALAR_NODE || !yaml_text(k))
            return kvt__fail(KVT_ECONFIG, "config keys must be plain scalars");
        const char *name = yaml_text(k);
        if (strcmp(name, "extra_config") == 0)
            rc = yaml_extra(ld, doc, v);
        else if ((rc = top_key(ld, name, &idx)) == KVT_OK)
            rc = yaml_value(ld, doc, idx, v);
        if (rc != KVT_OK)
            return rc;
    }
    return KVT_OK;
}

static int yaml_error(const yaml_parser_t *parser)
{
    return kvt__fail(KVT_ECONFIG, "YAML error at line %zu, column %zu: %s",
                     parser->problem_mark.line + 1, parser->problem_mark.column + 1,
                     parser->problem ? parser->problem : "unknown problem");
}

static int too_deep(const char *what, size_t line, size_t col)
{
    return kvt__fail(KVT_ECONFIG, "%s nested deeper than %d levels at line %zu, column %zu", what,
                     DEPTH_MAX, line, col);
}

/* Walks the events only, which stops at the first level too deep, before the loader's
 * cost grows with the depth. */
static int yaml_depth(const char *buf, size_t len)
{
    yaml_parser_t parser;
    yaml_event_t ev;
    int depth = 0, rc = KVT_OK;
    bool end = false;
    if (!yaml_parser_initialize(&parser))
        return kvt__fail(KVT_ENOMEM, "out of memory");
    yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
    while (rc == KVT_OK && !end) {
        if (!yaml_parser_parse(&parser, &ev)) {
            rc = yaml_error(&parser);
            break;
        }
        if (ev.type == YAML_SEQUENCE_START_EVENT || ev.type == YAML_MAPPING_START_EVENT) {
            if (++depth > DEPTH_MAX)
                rc = too_deep("YAML", ev.start_mark.line + 1, ev.start_mark.column + 1);
        } else if (ev.type == YAML_SEQUENCE_END_EVENT || ev.type == YAML_MAPPING_END_EVENT) {
            depth--;
        }
        end = ev.type == YAML_STREAM_END_EVENT;
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);
    return rc;
}

static int load_yaml(struct load *ld, const char *buf, size_t len)
{
    yaml_parser_t parser;
    yaml_document_t doc, next;
    int rc = yaml_depth(buf, len);
    if (rc != KVT_OK)
        return rc;
    if (!yaml_parser_initialize(&parser))
        return kvt__fail(KVT_ENOMEM, "out of memory");
    yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
    if (!yaml_parser_load(&parser, &doc)) {
        rc = yaml_error(&parser);
        yaml_parser_delete(&parser);
        return rc;
    }
    rc = yaml_root(ld, &doc);
    yaml_document_delete(&doc);
    /* A second document would be silently ignored: refuse it. */
    if (rc == KVT_OK) {
        if (!yaml_parser_load(&parser, &next)) {
            rc = yaml_error(&parser);
        } else {
            if (yaml_document_get_root_node(&next))
                rc = kvt__fail(KVT_ECONFIG, "only one YAML document is allowed");
            yaml_document_delete(&next);
        }
    }
    yaml_parser_delete(&parser);
    return rc;
}

/* ------------------------------------------------------------ JSON */

/* JSON numbers are doubles: integers beyond 2^53 would already have lost digits. */
#define JSON_INT_MAX 9007199254740992.0

static bool json_in_range(double d) { return d >= -JSON_INT_MAX && d <= JSON_INT_MAX; }

/* Whole and exact; the range test comes first so that the cast is defined. */
static bool json_integral(double d) { return json_in_range(d) && (double)(int64_t)d == d; }

static int json_list(struct load *ld, size_t idx, const cJSON *arr)
{
    size_t cap = (size_t)cJSON_GetArraySize(arr), k = 0;
    char **items = calloc(cap + 1, sizeof *items);
    int rc = KVT_OK;
    if (!items)
        return kvt__fail(KVT_ENOMEM, "out of memory");
    for (const cJSON *it = arr->child; it && rc == KVT_OK; it = it->next) {
        char num[32];
        if (cJSON_IsString(it)) {
            items[k] = strdup(it->valuestring);
        } else if (cJSON_IsNumber(it) && json_integral(it->valuedouble)) {
            snprintf(num, sizeof num, "%.0f", it->valuedouble);
            items[k] = strdup(num);
        } else {
            rc = shape_error(idx, "list items must be strings or integers");
            break;
        }
        if (!items[k++])
            rc = kvt__fail(KVT_ENOMEM, "out of memory");
    }
    if (rc == KVT_OK)
        rc = kvt__conf_put_list(ld->cfg, idx, (const char *const *)items, k, ld->src);
    for (size_t j = 0; j < k; j++)
        free(items[j]);
    free(items);
    return rc;
}

static int json_value(struct load *ld, size_t idx, const cJSON *v)
{
    kvt_config_type t = kvt__conf_type(idx);
    if (cJSON_IsNull(v))
        return kvt__conf_put_null(ld->cfg, idx, ld->src);
    if (cJSON_IsBool(v))
        return kvt__conf_put_bool(ld->cfg, idx, cJSON_IsTrue(v), ld->src);
    if (cJSON_IsString(v))
        return kvt__conf_put_text(ld->cfg, idx, v->valuestring, ld->src);
    if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        /* A whole number goes in as one, so that an error quotes "-10" as written. */
        if (t == KVT_CONF_FLOAT)
            return json_integral(d) ? kvt__conf_put_int(ld->cfg, idx, (int64_t)d, ld->src)
                                    : kvt__conf_put_float(ld->cfg, idx, d, ld->src);
        if (t != KVT_CONF_INT)
            return kvt__conf_put_float(ld->cfg, idx, d, ld->src);
        if (!json_in_range(d))
            return kvt__fail(KVT_ECONFIG, "invalid value %g for %s: integer out of range", d,
                             kvt__conf_name(idx));
        if (!json_integral(d))
            return kvt__conf_put_float(ld->cfg, idx, d, ld->src); /* names key and value */
        return kvt__conf_put_int(ld->cfg, idx, (int64_t)d, ld->src);
    }
    if (cJSON_IsArray(v)) {
        if (t != KVT_CONF_LIST)
            return shape_error(idx, "an array is only allowed for list keys");
        return json_list(ld, idx, v);
    }
    return shape_error(idx, "an object is only allowed for extra_config");
}

/* The members of an extra_config object (also the whole of LMCACHE_EXTRA_CONFIG). */
static int json_extra(struct load *ld, const cJSON *obj)
{
    if (cJSON_IsNull(obj))
        return KVT_OK;
    if (!cJSON_IsObject(obj))
        return kvt__fail(KVT_ECONFIG, "invalid value for extra_config: expected an object");
    for (const cJSON *m = obj->child; m; m = m->next) {
        size_t idx;
        int rc = sub_key(ld, m->string, &idx);
        if (rc == KVT_OK)
            rc = json_value(ld, idx, m);
        if (rc != KVT_OK)
            return rc;
    }
    return KVT_OK;
}

static int json_root(struct load *ld, const cJSON *root)
{
    if (!cJSON_IsObject(root))
        return kvt__fail(KVT_ECONFIG, "the top level must be an object of config keys");
    for (const cJSON *m = root->child; m; m = m->next) {
        size_t idx;
        int rc;
        if (strcmp(m->string, "extra_config") == 0) {
            if ((rc = extra_twice(ld)) == KVT_OK)
                rc = json_extra(ld, m);
        } else if ((rc = top_key(ld, m->string, &idx)) == KVT_OK) {
            rc = json_value(ld, idx, m);
        }
        if (rc != KVT_OK)
            return rc;
    }
    return KVT_OK;
}

/* Brackets outside strings; a malformed text is left to cJSON to report. */
static int json_depth(const char *buf, size_t len)
{
    size_t line = 1, col = 0;
    int depth = 0;
    bool in_str = false, esc = false;
    for (size_t k = 0; k < len; k++) {
        char c = buf[k];
        col = c == '\n' ? 0 : col + 1;
        line += c == '\n';
        if (in_str) {
            in_str = esc || c != '"';
            esc = !esc && c == '\\';
        } else if (c == '"') {
            in_str = true;
        } else if ((c == '[' || c == '{') && ++depth > DEPTH_MAX) {
            return too_deep("JSON", line, col);
        } else if ((c == ']' || c == '}') && depth > 0) {
            depth--; /* stray closers are cJSON's to report; they must not buy depth */
        }
    }
    return KVT_OK;
}

/* Parses a whole JSON text; trailing non-space text is an error (cJSON stops after the
 * first value). The error position comes from `end`: cJSON_GetErrorPtr() is global. */
static int json_parse(const char *buf, size_t len, cJSON **out)
{
    const char *end = NULL;
    int rc = json_depth(buf, len);
    *out = NULL;
    if (rc != KVT_OK)
        return rc;
    *out = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
    if (*out && end)
        end += strspn(end, " \t\r\n");
    if (!*out || (end && (size_t)(end - buf) < len)) {
        size_t line = 1, col = 1, at = end && end >= buf ? (size_t)(end - buf) : 0;
        for (size_t k = 0; k < at && k < len; k++) {
            col = buf[k] == '\n' ? 1 : col + 1;
            line += buf[k] == '\n';
        }
        cJSON_Delete(*out);
        *out = NULL;
        return kvt__fail(KVT_ECONFIG, "invalid JSON at line %zu, column %zu", line, col);
    }
    return KVT_OK;
}

static int load_json(struct load *ld, const char *buf, size_t len)
{
    cJSON *root;
    int rc = json_parse(buf, len, &root);
    if (rc == KVT_OK)
        rc = json_root(ld, root);
    cJSON_Delete(root);
    return rc;
}

/* ------------------------------------------------------------ loads */

static bool is_json_path(const char *path)
{
    size_t len = strlen(path);
    return len >= 5 && strcasecmp(path + len - 5, ".json") == 0;
}

/* Starts a load on a copy of `cfg`. */
static int load_begin(struct load *ld, const kvt_config *cfg, kvt_config_source src)
{
    *ld = (struct load){ .src = src };
    if (!(ld->seen = calloc(kvt__conf_slots(), sizeof *ld->seen)))
        return kvt__fail(KVT_ENOMEM, "out of memory");
    int rc = kvt_config_dup(cfg, &ld->cfg);
    if (rc != KVT_OK)
        free(ld->seen);
    return rc;
}

/* Swaps the copy in when everything (cross-key rules included) passed; frees the rest. */
static int load_end(struct load *ld, kvt_config *cfg, int rc)
{
    if (rc == KVT_OK && (rc = kvt__conf_check(ld->cfg)) == KVT_OK)
        kvt__conf_swap(cfg, ld->cfg);
    kvt_config_free(ld->cfg);
    free(ld->seen);
    return rc;
}

int kvt_config_load_file(kvt_config *cfg, const char *path)
{
    struct load ld;
    char *buf, prefix[256];
    size_t len = 0;
    int rc;
    if (!cfg || !path)
        return kvt__fail(KVT_EINVAL, "kvt_config_load_file: NULL argument");
    if ((rc = file_read(path, &buf, &len)) != KVT_OK)
        return rc;
    if ((rc = load_begin(&ld, cfg, KVT_SRC_FILE)) != KVT_OK) {
        free(buf);
        return rc;
    }
    rc = is_json_path(path) ? load_json(&ld, buf, len) : load_yaml(&ld, buf, len);
    free(buf);
    rc = load_end(&ld, cfg, rc);
    if (rc != KVT_OK) {
        snprintf(prefix, sizeof prefix, "config file %.200s", path);
        rc = kvt__conf_wrap_error(rc, prefix);
    }
    return rc;
}

static int env_extra(struct load *ld)
{
    const char *text = getenv("LMCACHE_EXTRA_CONFIG");
    cJSON *obj;
    int rc;
    if (!text || text[strspn(text, " \t\r\n")] == '\0')
        return KVT_OK;
    if ((rc = json_parse(text, strlen(text), &obj)) == KVT_OK) {
        rc = json_extra(ld, obj); /* an object, or null for none */
        cJSON_Delete(obj);
    }
    return rc != KVT_OK ? kvt__conf_wrap_error(rc, "LMCACHE_EXTRA_CONFIG") : rc;
}

/* LMCACHE_* variables that LMCache reads but that set no key; never warned about. */
static const char *const env_not_keys[] = { "LMCACHE_CONFIG_FILE", "LMCACHE_EXTRA_CONFIG",
                                            "LMCACHE_LOG_LEVEL", "LMCACHE_TRACK_USAGE" };

static bool env_is_not_key(const char *var)
{
    for (size_t k = 0; k < KVT__ARRAY_LEN(env_not_keys); k++)
        if (strcmp(var, env_not_keys[k]) == 0)
            return true;
    return false;
}

/* One LMCACHE_* variable the table loop did not read: an LMCache key kvtier lacks (checked
 * like any value), one of env_not_keys, or a name that sets nothing, which is not ours to
 * reject (it may be LMCache's) but is most likely a typo: noted with the nearest name. */
static int env_other(struct load *ld, const char *entry)
{
    char var[256], nearest[128];
    const char *eq = strchr(entry, '=');
    size_t len = eq ? (size_t)(eq - entry) : strlen(entry), idx;
    int rc;
    if (len >= sizeof var)
        len = sizeof var - 1; /* shown truncated; no known name is that long */
    memcpy(var, entry, len);
    var[len] = '\0';
    if (env_is_not_key(var))
        return KVT_OK;
    if (kvt__conf_env_lookup(var, &idx) != KVT_OK) {
        kvt__conf_nearest_env(var, env_not_keys, KVT__ARRAY_LEN(env_not_keys), nearest,
                              sizeof nearest);
        /* A name may hold anything but '=': keep the logfmt line one token per field. */
        for (char *c = var; *c; c++)
            if (!isalnum((unsigned char)*c) && *c != '_')
                *c = '?';
        return kvt__conf_note(ld->cfg, KVT_LOG_WARN, "event=unknown_env name=%s nearest=%s", var,
                              nearest);
    }
    if (idx < kvt_config_key_count() || !eq)
        return KVT_OK; /* read by the table loop */
    if ((rc = kvt__conf_put_text(ld->cfg, idx, eq + 1, KVT_SRC_ENV)) != KVT_OK)
        rc = kvt__conf_wrap_error(rc, var);
    return rc;
}

int kvt_config_load_env(kvt_config *cfg)
{
    struct load ld;
    int rc;
    if (!cfg)
        return kvt__fail(KVT_EINVAL, "kvt_config_load_env: cfg is NULL");
    if ((rc = load_begin(&ld, cfg, KVT_SRC_ENV)) != KVT_OK)
        return rc;
    /* The table's names through getenv(), as LMCache reads them (first one wins). */
    for (size_t i = 0, n = kvt_config_key_count(); i < n && rc == KVT_OK; i++) {
        kvt_config_key_info info;
        const char *text;
        kvt_config_key_at(i, &info);
        if (!info.env || !(text = getenv(info.env)))
            continue;
        if ((rc = kvt__conf_put_text(ld.cfg, i, text, KVT_SRC_ENV)) != KVT_OK)
            rc = kvt__conf_wrap_error(rc, info.env);
    }
    for (char **e = environ; rc == KVT_OK && e && *e; e++)
        if (strncmp(*e, "LMCACHE_", 8) == 0)
            rc = env_other(&ld, *e);
    if (rc == KVT_OK)
        rc = env_extra(&ld);
    return load_end(&ld, cfg, rc);
}

int kvt_config_from_sources(const char *path, kvt_config **out)
{
    kvt_config *cfg;
    int rc;
    if (!out)
        return kvt__fail(KVT_EINVAL, "kvt_config_from_sources: out is NULL");
    *out = NULL;
    if ((rc = kvt_config_new(&cfg)) != KVT_OK)
        return rc;
    if (!path && (path = getenv("LMCACHE_CONFIG_FILE")) != NULL && path[0] == '\0')
        path = NULL;
    if (path && (rc = kvt_config_load_file(cfg, path)) != KVT_OK) {
        kvt_config_free(cfg);
        return rc;
    }
    if ((rc = kvt_config_load_env(cfg)) != KVT_OK) {
        kvt_config_free(cfg);
        return rc;
    }
    *out = cfg;
    return KVT_OK;
}
