/* kvtier — LMCache's GDS file layout (see layout.h). */
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "layout.h"

/* LMCache's remote dtype codes (contract §8) and safetensors' names for them. */
static const struct {
    uint32_t code;
    const char *name;
    unsigned size;
} dtypes[] = {
    {2, "F16", 2}, {1, "F16", 2}, {3, "BF16", 2}, {4, "F32", 4}, {5, "F64", 8},
    {6, "U8", 1},  {7, "F8E4M3FN", 1}, {8, "F8E5M2", 1}, {0, "U8", 1},
};

/* Python's str(int) of the key's hash: decimal, '-' for a negative one. */
static void hash_decimal(const kvt_key *key, char out[24])
{
    bool neg = key->hash_negative && key->chunk_hash != 0;
    snprintf(out, 24, "%s%" PRIu64, neg ? "-" : "", key->chunk_hash);
}

/* urllib.parse.quote(s, safe=""): all but unreserved bytes as %XX (upper-case hex). */
static bool quote(const char *s, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        bool keep = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                    (*p >= '0' && *p <= '9') || *p == '_' || *p == '.' || *p == '-' || *p == '~';
        if (n + (keep ? 1 : 3) >= cap)
            return false;
        if (keep) {
            out[n++] = (char)*p;
        } else {
            out[n++] = '%';
            out[n++] = hex[*p >> 4];
            out[n++] = hex[*p & 15];
        }
    }
    out[n] = '\0';
    return true;
}

/* urllib.parse.unquote for names we wrote or LMCache wrote; false on a bad escape. */
static bool unquote(const char *s, size_t len, char *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '%') {
            int hi = i + 2 < len ? kvt__hex_value(s[i + 1]) : -1;
            int lo = hi >= 0 ? kvt__hex_value(s[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return false;
            c = (char)(hi << 4 | lo);
            i += 2;
        }
        if (n + 1 >= cap || c == '\0')
            return false;
        out[n++] = c;
    }
    out[n] = '\0';
    return true;
}

/* os.path.join(root, h[0:2], h[2:4]): an empty part adds nothing. */
int kvt__gds_dir(const char *root, const kvt_key *key, char *buf, size_t cap)
{
    char h[24];
    hash_decimal(key, h);
    size_t hl = strlen(h);
    int n = snprintf(buf, cap, "%s/%.2s%s%.2s", root, h, hl > 2 ? "/" : "", hl > 2 ? h + 2 : "");
    if (n < 0 || (size_t)n >= cap)
        return kvt__fail(KVT_ETOOSMALL, "GDS path under %s is too long", root);
    return KVT_OK;
}

int kvt__gds_path(const char *root, const kvt_key *key, char *buf, size_t cap)
{
    char ks[KVT_KEY_STRING_MAX], q[3 * KVT_KEY_STRING_MAX];
    int rc = kvt_key_to_string(key, ks, sizeof ks);
    if (rc != KVT_OK)
        return rc;
    if (!quote(ks, q, sizeof q))
        return kvt__fail(KVT_ETOOSMALL, "GDS file name of %s is too long", ks);
    if ((rc = kvt__gds_dir(root, key, buf, cap)) != KVT_OK)
        return rc;
    size_t at = strlen(buf);
    int n = snprintf(buf + at, cap - at, "/%s%s", q, KVT__GDS_SUFFIX);
    if (n < 0 || (size_t)n >= cap - at)
        return kvt__fail(KVT_ETOOSMALL, "GDS path under %s is too long", root);
    return KVT_OK;
}

static int dtype_index(uint32_t code)
{
    for (size_t i = 0; i < KVT__ARRAY_LEN(dtypes); i++)
        if (dtypes[i].code == code)
            return (int)i;
    return -1;
}

int kvt__gds_header(const kvt_chunk_meta *meta, uint64_t nbytes, unsigned char out[KVT__GDS_HEADER])
{
    int d = dtype_index(meta->dtype_code);
    if (d < 0)
        return kvt__fail(KVT_EINVAL, "dtype code %u has no safetensors name", meta->dtype_code);
    char shape[96] = "";
    size_t at = 0;
    for (int i = 0; i < 4 && meta->shape[i] > 0; i++)
        at += (size_t)snprintf(shape + at, sizeof shape - at, "%s%d", i ? ", " : "", meta->shape[i]);
    if (at == 0) /* no shape given: a flat run of elements */
        snprintf(shape, sizeof shape, "%" PRIu64, nbytes / dtypes[d].size);
    /* Python's json.dumps() spacing, so a file matches LMCache's byte for byte. */
    char *json = (char *)out + 8;
    int n = snprintf(json, KVT__GDS_HEADER - 8,
                     "{\"kvcache\": {\"dtype\": \"%s\", \"shape\": [%s], \"data_offsets\": [0, %" PRIu64
                     "], \"fmt\": %u, \"__metadata__\": {\"lmcache_version\": \"1\"}}}",
                     dtypes[d].name, shape, nbytes, meta->fmt);
    if (n < 0 || (size_t)n >= KVT__GDS_HEADER - 8)
        return kvt__fail(KVT_EINVAL, "GDS header does not fit 4096 bytes");
    memset(json + n, ' ', KVT__GDS_HEADER - 8 - (size_t)n);
    uint64_t len = KVT__GDS_HEADER - 8; /* LMCache counts the padding in */
    for (int i = 0; i < 8; i++)
        out[i] = (unsigned char)(len >> (8 * i));
    return KVT_OK;
}

static int corrupt(const char *what) { return kvt__fail(KVT_ECORRUPT, "GDS header: %s", what); }

static bool as_u64(const cJSON *j, uint64_t *out)
{
    if (!cJSON_IsNumber(j) || j->valuedouble < 0 || j->valuedouble > 9007199254740992.0 ||
        j->valuedouble != (double)(uint64_t)j->valuedouble)
        return false;
    *out = (uint64_t)j->valuedouble;
    return true;
}

/* The parsed "kvcache" object into `out`. */
static int parse_tensor(const cJSON *t, struct kvt__gds_meta *out)
{
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(t, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(t, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(t, "data_offsets");
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(t, "fmt");
    const cJSON *md = cJSON_GetObjectItemCaseSensitive(t, "__metadata__");
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(md, "lmcache_version");
    uint64_t lo, hi, f, dim;
    if (!cJSON_IsString(dt) || !cJSON_IsArray(shape) || cJSON_GetArraySize(offs) != 2 ||
        !as_u64(cJSON_GetArrayItem(offs, 0), &lo) || !as_u64(cJSON_GetArrayItem(offs, 1), &hi) ||
        hi < lo || !as_u64(fmt, &f) || f > 6)
        return corrupt("missing or malformed dtype, shape, data_offsets or fmt");
    if (!cJSON_IsString(ver) || strcmp(ver->valuestring, "1") != 0)
        return corrupt("lmcache_version is not \"1\"");
    memset(out, 0, sizeof *out);
    out->nbytes = hi - lo;
    out->meta.fmt = (uint32_t)f;
    for (size_t i = 0; i < KVT__ARRAY_LEN(dtypes); i++)
        if (strcmp(dtypes[i].name, dt->valuestring) == 0 && dtypes[i].code != 1) {
            out->meta.dtype_code = dtypes[i].code;
            break;
        } /* other safetensors names (I8, U16, ...) read as plain bytes: code 0 */
    int i = 0;
    for (const cJSON *e = shape->child; e; e = e->next, i++) {
        if (!as_u64(e, &dim) || dim > INT32_MAX)
            return corrupt("a shape entry is not a non-negative integer");
        if (i < 4)
            out->meta.shape[i] = (int32_t)dim;
    }
    return KVT_OK;
}

int kvt__gds_parse(const unsigned char *buf, size_t len, struct kvt__gds_meta *out)
{
    if (len < 8)
        return corrupt("shorter than its length field");
    uint64_t n = 0;
    for (int i = 0; i < 8; i++)
        n |= (uint64_t)buf[i] << (8 * i);
    if (n > len - 8 || n > KVT__GDS_HEADER - 8)
        return corrupt("length field past the 4096-byte header");
    cJSON *j = cJSON_ParseWithLength((const char *)buf + 8, (size_t)n);
    if (!j)
        return corrupt("not JSON");
    int rc = parse_tensor(cJSON_GetObjectItemCaseSensitive(j, "kvcache"), out);
    cJSON_Delete(j);
    return rc;
}

int kvt__gds_key_of(const char *file_name, kvt_key *out)
{
    static const char suffix[] = KVT__GDS_SUFFIX KVT__GDS_META_SUFFIX;
    size_t n = strlen(file_name), sl = sizeof suffix - 1;
    char ks[KVT_KEY_STRING_MAX];
    if (n <= sl || strcmp(file_name + n - sl, suffix) != 0)
        return kvt__fail(KVT_EINVAL, "%s is not a GDS sidecar name", file_name);
    if (!unquote(file_name, n - sl, ks, sizeof ks))
        return kvt__fail(KVT_EINVAL, "%s has a bad percent escape", file_name);
    return kvt_key_parse(ks, out);
}
