/* kvtier — chunk keys (LMCache's CacheEngineKey) and chained token hashing.
 *
 * The string form is LMCache's: model@world_size@worker_id@hash@dtype[@layer][@k%v...],
 * with the hash printed as Python's format(h, "x"). Parsing is strict where LMCache is
 * loose (Python's int() takes whitespace, '+' and '_'): a key string is an identity,
 * so two spellings of one key would be a bug waiting to happen. */
#include <limits.h>
#include <string.h>

#include <xxhash.h>

#include "internal.h"

/* torch dtype names LMCache writes into keys (lmcache/utils.py). */
static const char *const dtypes[] = {
    "half",  "bfloat16", "float",      "double",       "int8",     "uint8",       "int16",
    "int32", "int64",    "bool",       "fp8_e4m3fn",   "fp8_e4m3fnuz", "fp8_e5m2", "fp8_e5m2fnuz",
};

/* ---------------------------------------------------------------- validation */

/* Pointer-and-length checks, so the parser can validate parts of a string in place. */
static bool dtype_known(const char *s, size_t n)
{
    for (size_t i = 0; i < KVT__ARRAY_LEN(dtypes); i++)
        if (strlen(dtypes[i]) == n && memcmp(dtypes[i], s, n) == 0)
            return true;
    return false;
}

/* A tag half is non-empty, fits its field with the NUL, and holds neither separator. */
static bool tag_part_ok(const char *s, size_t n, size_t cap)
{
    return n > 0 && n < cap && memchr(s, '@', n) == NULL && memchr(s, '%', n) == NULL;
}

static int set_model(kvt_key *key, const char *s, size_t n)
{
    if (n == 0)
        return kvt__fail(KVT_EINVAL, "key model: empty");
    if (n >= KVT_KEY_MODEL_MAX)
        return kvt__fail(KVT_EINVAL, "key model: %zu bytes, at most %d", n, KVT_KEY_MODEL_MAX - 1);
    if (memchr(s, '@', n) != NULL)
        return kvt__fail(KVT_EINVAL, "key model \"%.*s\": contains '@'", (int)n, s);
    memcpy(key->model, s, n);
    key->model[n] = '\0';
    return KVT_OK;
}

static int set_dtype(kvt_key *key, const char *s, size_t n)
{
    if (!dtype_known(s, n))
        return kvt__fail(KVT_EINVAL, "key dtype \"%.*s\": unknown", (int)(n > 32 ? 32 : n), s);
    memcpy(key->dtype, s, n);
    key->dtype[n] = '\0';
    return KVT_OK;
}

static int add_tag(kvt_key *key, const char *k, size_t kn, const char *v, size_t vn)
{
    if (!tag_part_ok(k, kn, KVT_KEY_TAG_KEY_MAX))
        return kvt__fail(KVT_EINVAL,
                         "key tag name \"%.*s\": must be 1..%d bytes without '@' or '%%'",
                         (int)(kn > 40 ? 40 : kn), k, KVT_KEY_TAG_KEY_MAX - 1);
    if (!tag_part_ok(v, vn, KVT_KEY_TAG_VALUE_MAX))
        return kvt__fail(KVT_EINVAL,
                         "key tag \"%.*s\" value \"%.*s\": must be 1..%d bytes without '@' or '%%'",
                         (int)kn, k, (int)(vn > 80 ? 80 : vn), v, KVT_KEY_TAG_VALUE_MAX - 1);
    if (key->ntags >= KVT_KEY_TAGS_MAX)
        return kvt__fail(KVT_ERANGE, "key tag \"%.*s\": at most %d tags", (int)kn, k,
                         KVT_KEY_TAGS_MAX);
    kvt_key_tag *t = &key->tags[key->ntags++];
    memcpy(t->key, k, kn);
    t->key[kn] = '\0';
    memcpy(t->value, v, vn);
    t->value[vn] = '\0';
    return KVT_OK;
}

/* ---------------------------------------------------------------- construction */

int kvt_key_init(kvt_key *key, const char *model, int32_t world_size, int32_t worker_id,
                 uint64_t chunk_hash, const char *dtype)
{
    if (key == NULL)
        return kvt__fail(KVT_EINVAL, "key: NULL");
    /* Zero everything first: kvt_key_hash() and memcmp-minded callers never see padding
     * garbage, and a failed init leaves a harmless empty key behind. */
    memset(key, 0, sizeof *key);
    key->layer_id = -1;
    if (model == NULL || dtype == NULL)
        return kvt__fail(KVT_EINVAL, "key %s: NULL", model == NULL ? "model" : "dtype");
    if (world_size < 1)
        return kvt__fail(KVT_EINVAL, "key world_size %d: must be >= 1", (int)world_size);
    /* LMCache never checks worker_id < world_size, and keys written by a differently sized
     * deployment must still parse, so only a negative id is rejected. */
    if (worker_id < 0)
        return kvt__fail(KVT_EINVAL, "key worker_id %d: must be >= 0", (int)worker_id);
    int rc = set_model(key, model, strlen(model));
    if (rc == KVT_OK)
        rc = set_dtype(key, dtype, strlen(dtype));
    if (rc != KVT_OK) {
        memset(key, 0, sizeof *key);
        key->layer_id = -1;
        return rc;
    }
    key->world_size = world_size;
    key->worker_id = worker_id;
    key->chunk_hash = chunk_hash;
    return KVT_OK;
}

int kvt_key_add_tag(kvt_key *key, const char *k, const char *v)
{
    if (key == NULL || k == NULL || v == NULL)
        return kvt__fail(KVT_EINVAL, "key tag: NULL argument");
    return add_tag(key, k, strlen(k), v, strlen(v));
}

/* ---------------------------------------------------------------- formatting */

/* Bounded appender: `len` keeps counting past `cap` so the caller learns it overflowed. */
typedef struct sbuf {
    char *p;
    size_t cap, len;
} sbuf;

static void put_bytes(sbuf *b, const char *s, size_t n)
{
    if (b->len < b->cap) {
        size_t room = b->cap - b->len;
        memcpy(b->p + b->len, s, n < room ? n : room);
    }
    b->len += n;
}

static void put_str(sbuf *b, const char *s, size_t cap)
{
    put_bytes(b, s, strnlen(s, cap));
}

/* Unsigned in base 10 or 16 (lowercase), no padding: Python's str() and format(h, "x"). */
static void put_u64(sbuf *b, uint64_t v, unsigned base)
{
    char tmp[24];
    size_t i = sizeof tmp;
    do {
        tmp[--i] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v != 0);
    put_bytes(b, tmp + i, sizeof tmp - i);
}

static void put_i64(sbuf *b, int64_t v)
{
    if (v < 0) {
        put_bytes(b, "-", 1);
        put_u64(b, (uint64_t)0 - (uint64_t)v, 10);
    } else {
        put_u64(b, (uint64_t)v, 10);
    }
}

int kvt_key_to_string(const kvt_key *key, char *buf, size_t cap)
{
    if (key == NULL || (buf == NULL && cap != 0))
        return kvt__fail(KVT_EINVAL, "key to_string: NULL argument");
    sbuf b = {buf, cap, 0};
    put_str(&b, key->model, sizeof key->model);
    put_bytes(&b, "@", 1);
    put_i64(&b, key->world_size);
    put_bytes(&b, "@", 1);
    put_i64(&b, key->worker_id);
    put_bytes(&b, "@", 1);
    if (key->hash_negative && key->chunk_hash != 0) /* Python has no negative zero */
        put_bytes(&b, "-", 1);
    put_u64(&b, key->chunk_hash, 16);
    put_bytes(&b, "@", 1);
    put_str(&b, key->dtype, sizeof key->dtype);
    if (key->layer_id >= 0) {
        put_bytes(&b, "@", 1);
        put_i64(&b, key->layer_id);
    }
    uint32_t nt = key->ntags < KVT_KEY_TAGS_MAX ? key->ntags : KVT_KEY_TAGS_MAX;
    for (uint32_t i = 0; i < nt; i++) {
        put_bytes(&b, "@", 1);
        put_str(&b, key->tags[i].key, sizeof key->tags[i].key);
        put_bytes(&b, "%", 1);
        put_str(&b, key->tags[i].value, sizeof key->tags[i].value);
    }
    if (b.len >= cap) {
        if (cap > 0)
            buf[0] = '\0';
        return kvt__fail(KVT_ETOOSMALL, "key string needs %zu bytes, buffer has %zu", b.len + 1,
                         cap);
    }
    buf[b.len] = '\0';
    return KVT_OK;
}

/* ---------------------------------------------------------------- parsing */

/* Strict non-negative decimal: digits only, no sign or spaces, at most `max`. */
static bool parse_dec(const char *s, size_t n, int64_t max, int64_t *out)
{
    int64_t v = 0;
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
        if (v > max)
            return false;
    }
    *out = v;
    return true;
}

/* Python's int(s, 16) restricted to [-2^63, 2^64): optional '-', optional 0x/0X, one or
 * more hex digits in either case. "-0" is plain 0, as in Python. */
static bool parse_hash(const char *s, size_t n, uint64_t *mag, bool *neg)
{
    bool minus = n > 0 && s[0] == '-';
    if (minus) {
        s++;
        n--;
    }
    if (n > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        s += 2;
        n -= 2;
    }
    if (n == 0)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        int d = kvt__hex_value(s[i]);
        if (d < 0 || v > (UINT64_MAX >> 4))
            return false;
        v = (v << 4) | (uint64_t)d;
    }
    if (minus && v > ((uint64_t)1 << 63))
        return false;
    *mag = v;
    *neg = minus && v != 0;
    return true;
}

/* Splits off the next '@'-separated part of [*p, end): sets *s and *n, advances *p. */
static void next_part(const char **p, const char *end, const char **s, size_t *n)
{
    const char *at = memchr(*p, '@', (size_t)(end - *p));
    *s = *p;
    *n = (size_t)((at != NULL ? at : end) - *p);
    *p = at != NULL ? at + 1 : end + 1; /* end + 1: no parts left */
}

/* Re-raises the detail a field setter left, prefixed with the part number. The detail is
 * copied out first: kvt__fail() formats into the very buffer kvt_last_error() returns. */
static int part_fail(unsigned part)
{
    char why[256];
    kvt__strlcpy(why, kvt_last_error(), sizeof why);
    return kvt__fail(KVT_EINVAL, "key string part %u: %s", part, why);
}

/* Clip of a part for error details, so a huge bogus string cannot flood them. */
#define PART(s, n) (int)((n) > 64 ? 64 : (n)), (s)

static int parse_into(const char *str, kvt_key *key)
{
    size_t total = strlen(str);
    const char *p = str, *end = str + total, *s;
    size_t n;
    int64_t v;

    /* LMCache needs at least 5 parts; count them first for a clear message. */
    size_t parts = 1;
    for (const char *q = str; (q = memchr(q, '@', (size_t)(end - q))) != NULL; q++)
        parts++;
    if (parts < 5)
        return kvt__fail(KVT_EINVAL, "key string \"%.*s\": %zu '@'-separated parts, need >= 5",
                         PART(str, total), parts);

    next_part(&p, end, &s, &n);
    if (set_model(key, s, n) != KVT_OK)
        return part_fail(1);

    next_part(&p, end, &s, &n);
    if (!parse_dec(s, n, INT32_MAX, &v) || v < 1)
        return kvt__fail(KVT_EINVAL, "key string part 2: bad world_size \"%.*s\"", PART(s, n));
    key->world_size = (int32_t)v;

    next_part(&p, end, &s, &n);
    if (!parse_dec(s, n, INT32_MAX, &v))
        return kvt__fail(KVT_EINVAL, "key string part 3: bad worker_id \"%.*s\"", PART(s, n));
    key->worker_id = (int32_t)v;

    next_part(&p, end, &s, &n);
    if (!parse_hash(s, n, &key->chunk_hash, &key->hash_negative))
        return kvt__fail(KVT_EINVAL,
                         "key string part 4: bad hash \"%.*s\" (hex in [-2^63, 2^64))",
                         PART(s, n));

    next_part(&p, end, &s, &n);
    if (set_dtype(key, s, n) != KVT_OK)
        return part_fail(5);

    /* An all-digit 6th part is LayerCacheEngineKey's layer id (Python's str.isdigit()). */
    for (unsigned i = 6; p <= end; i++) {
        next_part(&p, end, &s, &n);
        if (i == 6 && n > 0 && strspn(s, "0123456789") >= n) {
            if (!parse_dec(s, n, INT32_MAX, &v))
                return kvt__fail(KVT_EINVAL, "key string part 6: layer id \"%.*s\" too large",
                                 PART(s, n));
            key->layer_id = (int32_t)v;
            continue;
        }
        const char *pct = memchr(s, '%', n);
        if (pct == NULL || memchr(pct + 1, '%', (size_t)(s + n - pct - 1)) != NULL)
            return kvt__fail(KVT_EINVAL, "key string part %u: \"%.*s\" is not a k%%v tag", i,
                             PART(s, n));
        size_t kn = (size_t)(pct - s);
        if (add_tag(key, s, kn, pct + 1, n - kn - 1) != KVT_OK)
            return part_fail(i);
    }
    return KVT_OK;
}

int kvt_key_parse(const char *s, kvt_key *out)
{
    if (out == NULL)
        return kvt__fail(KVT_EINVAL, "key parse: NULL output");
    memset(out, 0, sizeof *out);
    if (s == NULL)
        return kvt__fail(KVT_EINVAL, "key parse: NULL string");
    out->layer_id = -1;
    int rc = parse_into(s, out);
    if (rc != KVT_OK)
        memset(out, 0, sizeof *out);
    return rc;
}

/* ---------------------------------------------------------------- identity */

/* A negative zero (hand-built key) is the same chunk as zero. */
static bool hash_neg(const kvt_key *k) { return k->hash_negative && k->chunk_hash != 0; }

static uint32_t ntags_of(const kvt_key *k)
{
    return k->ntags < KVT_KEY_TAGS_MAX ? k->ntags : KVT_KEY_TAGS_MAX;
}

bool kvt_key_equal(const kvt_key *a, const kvt_key *b)
{
    /* Cheapest and most selective fields first: most comparisons in a hash bucket end at
     * the chunk hash. strncmp bounds the reads should a caller forget a NUL. */
    if (!a || !b)
        return a == b;
    if (a->chunk_hash != b->chunk_hash || hash_neg(a) != hash_neg(b) ||
        a->world_size != b->world_size || a->worker_id != b->worker_id ||
        a->layer_id != b->layer_id || ntags_of(a) != ntags_of(b))
        return false;
    if (strncmp(a->dtype, b->dtype, sizeof a->dtype) != 0 ||
        strncmp(a->model, b->model, sizeof a->model) != 0)
        return false;
    for (uint32_t i = 0; i < ntags_of(a); i++)
        if (strncmp(a->tags[i].key, b->tags[i].key, sizeof a->tags[i].key) != 0 ||
            strncmp(a->tags[i].value, b->tags[i].value, sizeof a->tags[i].value) != 0)
            return false;
    return true;
}

uint64_t kvt_key_hash(const kvt_key *key)
{
    if (!key)
        return 0;
    /* Hash only meaningful bytes, so keys that are equal hash equal whatever their padding.
     * It runs once per key on every lookup, so the common key goes through XXH3 in one
     * call: fixed fields, then dtype and model packed back to back (the dtype length in
     * the fixed block keeps the boundary unambiguous). Layer ids are int32 >= -1, so as
     * uint32 every value stays distinct. Tags, rare, chain through the seed. */
    size_t dn = strnlen(key->dtype, sizeof key->dtype);
    size_t mn = strnlen(key->model, sizeof key->model);
    struct {
        uint64_t fixed[3];
        char text[KVT_KEY_DTYPE_MAX + KVT_KEY_MODEL_MAX];
    } b;
    b.fixed[0] = key->chunk_hash;
    b.fixed[1] = ((uint64_t)(uint32_t)key->world_size << 32) | (uint32_t)key->worker_id;
    b.fixed[2] = ((uint64_t)(uint32_t)key->layer_id << 32) | ((uint64_t)hash_neg(key) << 31) |
                 ((uint64_t)dn << 8) | ntags_of(key);
    memcpy(b.text, key->dtype, dn);
    memcpy(b.text + dn, key->model, mn);
    uint64_t h = XXH3_64bits(&b, sizeof b.fixed + dn + mn);
    for (uint32_t i = 0; i < ntags_of(key); i++) {
        /* Lengths delimit the strings: ("ab","c") and ("a","bc") must differ. */
        const kvt_key_tag *t = &key->tags[i];
        size_t kn = strnlen(t->key, sizeof t->key), vn = strnlen(t->value, sizeof t->value);
        h = XXH3_64bits_withSeed(t->key, kn, h ^ kn);
        h = XXH3_64bits_withSeed(t->value, vn, h ^ vn);
    }
    return h;
}

/* ---------------------------------------------------------------- token hashing */

/* XXH3 of `n` int32 tokens as little-endian bytes. On little-endian hosts that is the
 * memory as it lies; elsewhere the tokens are swapped through a stack buffer in blocks
 * and streamed, which gives the same digest as the one-shot call. */
static uint64_t hash_chunk(const int32_t *t, size_t n, uint64_t seed)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    return XXH3_64bits_withSeed(t, n * sizeof *t, seed);
#else
    XXH3_state_t st;
    uint32_t tmp[256];
    XXH3_64bits_reset_withSeed(&st, seed);
    while (n > 0) {
        size_t m = n < KVT__ARRAY_LEN(tmp) ? n : KVT__ARRAY_LEN(tmp);
        for (size_t i = 0; i < m; i++)
            tmp[i] = __builtin_bswap32((uint32_t)t[i]);
        XXH3_64bits_update(&st, tmp, m * sizeof *tmp);
        t += m;
        n -= m;
    }
    return XXH3_64bits_digest(&st);
#endif
}

int kvt_hash_tokens(const int32_t *tokens, size_t ntokens, size_t chunk_size, bool save_unfull,
                    uint64_t *hashes, size_t max, size_t *count)
{
    if (chunk_size == 0)
        return kvt__fail(KVT_EINVAL, "hash_tokens: chunk_size 0");
    if ((tokens == NULL && ntokens != 0) || (hashes == NULL && max != 0))
        return kvt__fail(KVT_EINVAL, "hash_tokens: NULL buffer");
    size_t full = ntokens / chunk_size, rest = ntokens % chunk_size;
    size_t nchunks = full + (save_unfull && rest != 0);
    if (count != NULL)
        *count = nchunks;
    size_t todo = nchunks < max ? nchunks : max;
    uint64_t h = 0;
    for (size_t i = 0; i < todo; i++) {
        size_t off = i * chunk_size, len = i < full ? chunk_size : rest;
        h = hash_chunk(tokens + off, len, h);
        hashes[i] = h;
    }
    if (todo < nchunks)
        return kvt__fail(KVT_ETOOSMALL, "hash_tokens: %zu chunks, room for %zu", nchunks, max);
    return KVT_OK;
}
