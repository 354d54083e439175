/* Unit tests for src/key.c: LMCache key strings, key identity, chained token hashes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <xxhash.h>

#include "kvtier/key.h"

/* ---------------------------------------------------------------- helpers */

static void assert_round_trip(const char *s)
{
    kvt_key k;
    char buf[KVT_KEY_STRING_MAX];
    assert_int_equal(kvt_key_parse(s, &k), KVT_OK);
    assert_int_equal(kvt_key_to_string(&k, buf, sizeof buf), KVT_OK);
    assert_string_equal(buf, s);
}

/* Parses `in` and checks it prints as `out` (a canonical spelling). */
static void assert_canonical(const char *in, const char *out)
{
    kvt_key k;
    char buf[KVT_KEY_STRING_MAX];
    assert_int_equal(kvt_key_parse(in, &k), KVT_OK);
    assert_int_equal(kvt_key_to_string(&k, buf, sizeof buf), KVT_OK);
    assert_string_equal(buf, out);
}

static bool all_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != 0)
            return false;
    return true;
}

static void fill_iota(int32_t *t, size_t n, int32_t first)
{
    for (size_t i = 0; i < n; i++)
        t[i] = first + (int32_t)i;
}

/* ---------------------------------------------------------------- string form */

static void test_lmcache_examples_round_trip(void **state)
{
    (void)state;
    assert_round_trip("vllm@1@0@1a2b3c@bfloat16");
    assert_round_trip("meta-llama/Llama-3-8B@8@3@-7f@half");
    assert_round_trip("m@1@0@ff@half@12");
    assert_round_trip("m@1@0@ff@half@user%alice@lang%en");
    assert_round_trip("m@2@1@abc@float@3@user%bob");
    assert_round_trip("m@1@0@0@fp8_e4m3fnuz");
}

static void test_parse_fills_every_field(void **state)
{
    (void)state;
    kvt_key k;
    assert_int_equal(kvt_key_parse("meta-llama/Llama-3-8B@8@3@-7f@half@5@user%alice@lang%en", &k),
                     KVT_OK);
    assert_string_equal(k.model, "meta-llama/Llama-3-8B");
    assert_int_equal(k.world_size, 8);
    assert_int_equal(k.worker_id, 3);
    assert_int_equal(k.chunk_hash, 0x7f);
    assert_true(k.hash_negative);
    assert_string_equal(k.dtype, "half");
    assert_int_equal(k.layer_id, 5);
    assert_int_equal(k.ntags, 2);
    assert_string_equal(k.tags[0].key, "user");
    assert_string_equal(k.tags[0].value, "alice");
    assert_string_equal(k.tags[1].key, "lang");
    assert_string_equal(k.tags[1].value, "en");
}

static void test_plain_key_has_no_layer(void **state)
{
    (void)state;
    kvt_key k;
    assert_int_equal(kvt_key_parse("vllm@1@0@1a2b3c@bfloat16", &k), KVT_OK);
    assert_int_equal(k.layer_id, -1);
    assert_int_equal(k.ntags, 0);
    assert_false(k.hash_negative);
}

static void test_hash_formats_like_python_hex(void **state)
{
    (void)state;
    kvt_key k;
    char buf[KVT_KEY_STRING_MAX];

    assert_int_equal(kvt_key_init(&k, "m", 1, 0, 0, "half"), KVT_OK);
    assert_int_equal(kvt_key_to_string(&k, buf, sizeof buf), KVT_OK);
    assert_string_equal(buf, "m@1@0@0@half");

    assert_int_equal(kvt_key_init(&k, "m", 1, 0, UINT64_MAX, "half"), KVT_OK);
    assert_int_equal(kvt_key_to_string(&k, buf, sizeof buf), KVT_OK);
    assert_string_equal(buf, "m@1@0@ffffffffffffffff@half");

    assert_int_equal(kvt_key_init(&k, "m", 1, 0, (uint64_t)1 << 63, "half"), KVT_OK);
    k.hash_negative = true;
    assert_int_equal(kvt_key_to_string(&k, buf, sizeof buf), KVT_OK);
    assert_string_equal(buf, "m@1@0@-8000000000000000@half");

    /* Python has no negative zero: a hand-set sign on 0 does not print. */
    assert_int_equal(kvt_key_init(&k, "m", 1, 0, 0, "half"), KVT_OK);
    k.hash_negative = true;
    assert_int_equal(kvt_key_to_string(&k, buf, sizeof buf), KVT_OK);
    assert_string_equal(buf, "m@1@0@0@half");
}

static void test_hash_range_edges_round_trip(void **state)
{
    (void)state;
    kvt_key k;
    assert_round_trip("m@1@0@ffffffffffffffff@half");
    assert_round_trip("m@1@0@-8000000000000000@half");
    assert_int_equal(kvt_key_parse("m@1@0@-8000000000000000@half", &k), KVT_OK);
    assert_int_equal(k.chunk_hash, (uint64_t)1 << 63);
    assert_true(k.hash_negative);
    assert_int_equal(kvt_key_parse("m@1@0@ffffffffffffffff@half", &k), KVT_OK);
    assert_int_equal(k.chunk_hash, UINT64_MAX);
    assert_false(k.hash_negative);
}

static void test_parse_accepts_python_hex_spellings(void **state)
{
    (void)state;
    kvt_key k;
    assert_canonical("m@1@0@ABCDEF@half", "m@1@0@abcdef@half");
    assert_canonical("m@1@0@0xFf@half", "m@1@0@ff@half");
    assert_canonical("m@1@0@0X10@half", "m@1@0@10@half");
    assert_canonical("m@1@0@-0x1F@half", "m@1@0@-1f@half");
    assert_canonical("m@1@0@00000000000000000000ff@half", "m@1@0@ff@half");
    assert_canonical("m@1@0@-0@half", "m@1@0@0@half");
    assert_int_equal(kvt_key_parse("m@1@0@-0@half", &k), KVT_OK);
    assert_false(k.hash_negative);
    assert_int_equal(k.chunk_hash, 0);
}

static void test_parse_errors_name_the_bad_part(void **state)
{
    (void)state;
    static const struct {
        const char *s, *detail;
    } bad[] = {
        {"", "need >= 5"},
        {"m@1@0@ff", "need >= 5"},
        {"@1@0@ff@half", "part 1"},
        {"m@0@0@ff@half", "world_size"},
        {"m@x@0@ff@half", "world_size"},
        {"m@+1@0@ff@half", "world_size"},
        {"m@ 1@0@ff@half", "world_size"},
        {"m@4294967297@0@ff@half", "world_size"},
        {"m@1@-1@ff@half", "worker_id"},
        {"m@1@@ff@half", "worker_id"},
        {"m@1@0@xyz@half", "hash"},
        {"m@1@0@@half", "hash"},
        {"m@1@0@-@half", "hash"},
        {"m@1@0@0x@half", "hash"},
        {"m@1@0@ 1f@half", "hash"},
        {"m@1@0@1_f@half", "hash"},
        {"m@1@0@-8000000000000001@half", "hash"},
        {"m@1@0@10000000000000000@half", "hash"},
        {"m@1@0@ff@float16", "dtype"},
        {"m@1@0@ff@", "dtype"},
        {"m@1@0@ff@half@", "part 6"},
        {"m@1@0@ff@half@user", "part 6"},
        {"m@1@0@ff@half@a%b%c", "part 6"},
        {"m@1@0@ff@half@%v", "part 6"},
        {"m@1@0@ff@half@k%", "part 6"},
        {"m@1@0@ff@half@1@2", "part 7"},
        {"m@1@0@ff@half@99999999999", "layer"},
        {"m@1@0@ff@half@a%1@b%2@c%3@d%4@e%5", "part 10"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        kvt_key k;
        memset(&k, 0xab, sizeof k);
        int rc = kvt_key_parse(bad[i].s, &k);
        if (rc != KVT_EINVAL)
            fail_msg("\"%s\": got %d, want KVT_EINVAL", bad[i].s, rc);
        if (strstr(kvt_last_error(), bad[i].detail) == NULL)
            fail_msg("\"%s\": detail \"%s\" lacks \"%s\"", bad[i].s, kvt_last_error(),
                     bad[i].detail);
        assert_true(all_zero(&k, sizeof k));
    }
}

static void test_parse_rejects_null(void **state)
{
    (void)state;
    kvt_key k;
    assert_int_equal(kvt_key_parse(NULL, &k), KVT_EINVAL);
    assert_true(all_zero(&k, sizeof k));
    assert_int_equal(kvt_key_parse("m@1@0@ff@half", NULL), KVT_EINVAL);
}

static void test_to_string_reports_short_buffer(void **state)
{
    (void)state;
    kvt_key k;
    const char *want = "m@1@0@ff@half@user%alice";
    size_t n = strlen(want);
    char buf[64];
    assert_int_equal(kvt_key_parse(want, &k), KVT_OK);
    memset(buf, 'x', sizeof buf);
    assert_int_equal(kvt_key_to_string(&k, buf, n), KVT_ETOOSMALL);
    assert_string_equal(buf, ""); /* never a truncated key that could be mistaken for one */
    assert_int_equal(kvt_key_to_string(&k, buf, 0), KVT_ETOOSMALL);
    assert_int_equal(kvt_key_to_string(&k, buf, n + 1), KVT_OK);
    assert_string_equal(buf, want);
}

static void test_string_max_fits_the_longest_key(void **state)
{
    (void)state;
    kvt_key k;
    char model[KVT_KEY_MODEL_MAX], tk[KVT_KEY_TAG_KEY_MAX], tv[KVT_KEY_TAG_VALUE_MAX];
    memset(model, 'm', sizeof model - 1);
    model[sizeof model - 1] = '\0';
    memset(tk, 'k', sizeof tk - 1);
    tk[sizeof tk - 1] = '\0';
    memset(tv, 'v', sizeof tv - 1);
    tv[sizeof tv - 1] = '\0';
    assert_int_equal(kvt_key_init(&k, model, INT32_MAX, INT32_MAX, (uint64_t)1 << 63,
                                  "fp8_e4m3fnuz"),
                     KVT_OK);
    k.hash_negative = true;
    k.layer_id = INT32_MAX;
    for (int i = 0; i < KVT_KEY_TAGS_MAX; i++)
        assert_int_equal(kvt_key_add_tag(&k, tk, tv), KVT_OK);
    char buf[KVT_KEY_STRING_MAX];
    assert_int_equal(kvt_key_to_string(&k, buf, sizeof buf), KVT_OK);
    kvt_key back;
    assert_int_equal(kvt_key_parse(buf, &back), KVT_OK);
    assert_true(kvt_key_equal(&k, &back));
}

/* ---------------------------------------------------------------- construction */

static void test_init_zeroes_and_sets_no_layer(void **state)
{
    (void)state;
    kvt_key k;
    memset(&k, 0xcd, sizeof k);
    assert_int_equal(kvt_key_init(&k, "vllm", 4, 2, 0x1234, "bfloat16"), KVT_OK);
    assert_string_equal(k.model, "vllm");
    assert_int_equal(k.world_size, 4);
    assert_int_equal(k.worker_id, 2);
    assert_int_equal(k.chunk_hash, 0x1234);
    assert_false(k.hash_negative);
    assert_int_equal(k.layer_id, -1);
    assert_int_equal(k.ntags, 0);
    assert_true(all_zero(k.model + 5, sizeof k.model - 5));
    assert_true(all_zero(k.tags, sizeof k.tags));
}

static void test_init_rejects_bad_fields(void **state)
{
    (void)state;
    kvt_key k;
    char longm[KVT_KEY_MODEL_MAX + 1];
    memset(longm, 'a', sizeof longm - 1);
    longm[sizeof longm - 1] = '\0';

    assert_int_equal(kvt_key_init(&k, "a@b", 1, 0, 1, "half"), KVT_EINVAL);
    assert_non_null(strstr(kvt_last_error(), "model"));
    assert_int_equal(kvt_key_init(&k, "", 1, 0, 1, "half"), KVT_EINVAL);
    assert_non_null(strstr(kvt_last_error(), "model"));
    assert_int_equal(kvt_key_init(&k, longm, 1, 0, 1, "half"), KVT_EINVAL);
    longm[KVT_KEY_MODEL_MAX - 1] = '\0'; /* 127 bytes: the longest that fits */
    assert_int_equal(kvt_key_init(&k, longm, 1, 0, 1, "half"), KVT_OK);

    assert_int_equal(kvt_key_init(&k, "m", 1, 0, 1, "float16"), KVT_EINVAL);
    assert_non_null(strstr(kvt_last_error(), "float16"));
    assert_int_equal(kvt_key_init(&k, "m", 1, 0, 1, ""), KVT_EINVAL);
    assert_int_equal(kvt_key_init(&k, "m", 0, 0, 1, "half"), KVT_EINVAL);
    assert_non_null(strstr(kvt_last_error(), "world_size"));
    assert_int_equal(kvt_key_init(&k, "m", -3, 0, 1, "half"), KVT_EINVAL);
    assert_int_equal(kvt_key_init(&k, "m", 1, -1, 1, "half"), KVT_EINVAL);
    assert_non_null(strstr(kvt_last_error(), "worker_id"));
    assert_int_equal(kvt_key_init(&k, NULL, 1, 0, 1, "half"), KVT_EINVAL);
    assert_int_equal(kvt_key_init(&k, "m", 1, 0, 1, NULL), KVT_EINVAL);
    assert_int_equal(kvt_key_init(NULL, "m", 1, 0, 1, "half"), KVT_EINVAL);
    /* LMCache never bounds worker_id by world_size; neither do we. */
    assert_int_equal(kvt_key_init(&k, "m", 1, 5, 1, "half"), KVT_OK);
}

static void test_init_accepts_every_lmcache_dtype(void **state)
{
    (void)state;
    static const char *const names[] = {
        "half",  "bfloat16", "float",      "double",       "int8",     "uint8",       "int16",
        "int32", "int64",    "bool",       "fp8_e4m3fn",   "fp8_e4m3fnuz", "fp8_e5m2", "fp8_e5m2fnuz",
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        kvt_key k;
        assert_int_equal(kvt_key_init(&k, "m", 1, 0, 1, names[i]), KVT_OK);
        assert_string_equal(k.dtype, names[i]);
    }
}

static void test_add_tag_validates(void **state)
{
    (void)state;
    kvt_key k;
    char longk[KVT_KEY_TAG_KEY_MAX + 1], longv[KVT_KEY_TAG_VALUE_MAX + 1];
    memset(longk, 'k', sizeof longk - 1);
    longk[sizeof longk - 1] = '\0';
    memset(longv, 'v', sizeof longv - 1);
    longv[sizeof longv - 1] = '\0';

    assert_int_equal(kvt_key_init(&k, "m", 1, 0, 1, "half"), KVT_OK);
    assert_int_equal(kvt_key_add_tag(&k, "user", "al%ice"), KVT_EINVAL);
    assert_int_equal(kvt_key_add_tag(&k, "user", "al@ice"), KVT_EINVAL);
    assert_int_equal(kvt_key_add_tag(&k, "us%er", "alice"), KVT_EINVAL);
    assert_int_equal(kvt_key_add_tag(&k, "us@er", "alice"), KVT_EINVAL);
    assert_int_equal(kvt_key_add_tag(&k, "", "alice"), KVT_EINVAL);
    assert_int_equal(kvt_key_add_tag(&k, "user", ""), KVT_EINVAL);
    assert_int_equal(kvt_key_add_tag(&k, longk, "v"), KVT_EINVAL);
    assert_int_equal(kvt_key_add_tag(&k, "k", longv), KVT_EINVAL);
    assert_int_equal(kvt_key_add_tag(&k, NULL, "v"), KVT_EINVAL);
    assert_int_equal(k.ntags, 0); /* failures add nothing */

    for (int i = 0; i < KVT_KEY_TAGS_MAX; i++)
        assert_int_equal(kvt_key_add_tag(&k, "k", "v"), KVT_OK);
    assert_int_equal(kvt_key_add_tag(&k, "k", "v"), KVT_ERANGE);
    assert_int_equal(k.ntags, KVT_KEY_TAGS_MAX);
}

/* ---------------------------------------------------------------- identity */

static void test_equal_and_hash_agree_across_construction(void **state)
{
    (void)state;
    kvt_key a, b, c;
    assert_int_equal(kvt_key_init(&a, "meta-llama/Llama-3-8B", 8, 3, 0x7f, "half"), KVT_OK);
    a.hash_negative = true;
    a.layer_id = 12;
    assert_int_equal(kvt_key_add_tag(&a, "user", "alice"), KVT_OK);
    assert_int_equal(kvt_key_parse("meta-llama/Llama-3-8B@8@3@-7F@half@12@user%alice", &b),
                     KVT_OK);
    assert_true(kvt_key_equal(&a, &b));
    assert_int_equal(kvt_key_hash(&a), kvt_key_hash(&b));

    /* Built by hand over garbage: padding differs, identity does not. */
    memset(&c, 0x5a, sizeof c);
    strcpy(c.model, "meta-llama/Llama-3-8B");
    c.world_size = 8;
    c.worker_id = 3;
    c.chunk_hash = 0x7f;
    c.hash_negative = true;
    c.layer_id = 12;
    strcpy(c.dtype, "half");
    c.ntags = 1;
    strcpy(c.tags[0].key, "user");
    strcpy(c.tags[0].value, "alice");
    assert_true(kvt_key_equal(&a, &c));
    assert_int_equal(kvt_key_hash(&a), kvt_key_hash(&c));
}

static void test_negative_zero_is_zero(void **state)
{
    (void)state;
    kvt_key a, b;
    assert_int_equal(kvt_key_init(&a, "m", 1, 0, 0, "half"), KVT_OK);
    b = a;
    b.hash_negative = true;
    assert_true(kvt_key_equal(&a, &b));
    assert_int_equal(kvt_key_hash(&a), kvt_key_hash(&b));
}

static void test_equal_distinguishes_every_field(void **state)
{
    (void)state;
    kvt_key base, k;
    assert_int_equal(kvt_key_init(&base, "m", 2, 1, 0xff, "half"), KVT_OK);
    assert_int_equal(kvt_key_add_tag(&base, "user", "alice"), KVT_OK);
    uint64_t h = kvt_key_hash(&base);

#define DIFFERS(mutation)                                                                          \
    do {                                                                                           \
        k = base;                                                                                  \
        mutation;                                                                                  \
        assert_false(kvt_key_equal(&base, &k));                                                    \
        assert_int_not_equal(kvt_key_hash(&k), h);                                                 \
    } while (0)
    DIFFERS(strcpy(k.model, "n"));
    DIFFERS(k.world_size = 3);
    DIFFERS(k.worker_id = 0);
    DIFFERS(k.chunk_hash = 0xfe);
    DIFFERS(k.hash_negative = true);
    DIFFERS(k.layer_id = 0);
    DIFFERS(strcpy(k.dtype, "bfloat16"));
    DIFFERS(strcpy(k.tags[0].value, "bob"));
    DIFFERS(strcpy(k.tags[0].key, "usr"));
    DIFFERS(k.ntags = 0);
    DIFFERS(kvt_key_add_tag(&k, "lang", "en"));
#undef DIFFERS

    /* Tag boundaries count: ("ab","c") is not ("a","bc"). */
    kvt_key x, y;
    assert_int_equal(kvt_key_init(&x, "m", 1, 0, 1, "half"), KVT_OK);
    y = x;
    assert_int_equal(kvt_key_add_tag(&x, "ab", "c"), KVT_OK);
    assert_int_equal(kvt_key_add_tag(&y, "a", "bc"), KVT_OK);
    assert_false(kvt_key_equal(&x, &y));
    assert_int_not_equal(kvt_key_hash(&x), kvt_key_hash(&y));
}

/* ---------------------------------------------------------------- token hashing */

/* Pinned outputs of kvt_hash_tokens(). If these change, every key written to disk or a
 * remote store by an older kvtier stops matching: change them only on purpose. */
static void test_hash_chain_values_are_pinned(void **state)
{
    (void)state;
    int32_t t[1024];
    uint64_t h[8];
    size_t n = 0;
    fill_iota(t, 1024, 0);
    assert_int_equal(kvt_hash_tokens(t, 1024, 256, false, h, 8, &n), KVT_OK);
    assert_int_equal(n, 4);
    assert_int_equal(h[0], 0xd12ba3ba3964c7edull);
    assert_int_equal(h[1], 0xc3b7a29d09ced826ull);
    assert_int_equal(h[2], 0x2350c969cc859650ull);
    assert_int_equal(h[3], 0xa173f91a05ac6a47ull);

    /* Negative tokens and a saved partial chunk. */
    int32_t u[40];
    for (int i = 0; i < 40; i++)
        u[i] = (i % 2 ? -1 : 1) * (i * 7919 + 13);
    assert_int_equal(kvt_hash_tokens(u, 40, 16, true, h, 8, &n), KVT_OK);
    assert_int_equal(n, 3);
    assert_int_equal(h[0], 0xb9bc84e17dd24859ull);
    assert_int_equal(h[1], 0xf2a6157713c6a0aeull);
    assert_int_equal(h[2], 0xbc7974bbee305322ull);
}

static void test_hash_chain_is_seeded_xxh3_of_le_bytes(void **state)
{
    (void)state;
    int32_t t[512];
    uint8_t le[512 * 4];
    uint64_t h[2];
    size_t n;
    for (int i = 0; i < 512; i++)
        t[i] = i * 2654435 - 1000000; /* some negative, all four bytes busy */
    for (int i = 0; i < 512; i++)
        for (int b = 0; b < 4; b++)
            le[i * 4 + b] = (uint8_t)((uint32_t)t[i] >> (8 * b));
    assert_int_equal(kvt_hash_tokens(t, 512, 256, false, h, 2, &n), KVT_OK);
    uint64_t h0 = XXH3_64bits_withSeed(le, 256 * 4, 0);
    assert_int_equal(h[0], h0);
    assert_int_equal(h[1], XXH3_64bits_withSeed(le + 256 * 4, 256 * 4, h0));
}

static void test_hash_chain_has_prefix_property(void **state)
{
    (void)state;
    int32_t t[1024];
    uint64_t a[2], b[4];
    size_t na, nb;
    fill_iota(t, 1024, 0);
    assert_int_equal(kvt_hash_tokens(t, 512, 256, false, a, 2, &na), KVT_OK);
    assert_int_equal(kvt_hash_tokens(t, 1024, 256, false, b, 4, &nb), KVT_OK);
    assert_int_equal(na, 2);
    assert_int_equal(nb, 4);
    assert_memory_equal(a, b, sizeof a);
}

static void test_first_token_changes_every_later_hash(void **state)
{
    (void)state;
    int32_t t[1024];
    uint64_t a[4], b[4];
    size_t n;
    fill_iota(t, 1024, 0);
    assert_int_equal(kvt_hash_tokens(t, 1024, 256, false, a, 4, &n), KVT_OK);
    t[0] = 1;
    assert_int_equal(kvt_hash_tokens(t, 1024, 256, false, b, 4, &n), KVT_OK);
    for (int i = 0; i < 4; i++)
        assert_int_not_equal(a[i], b[i]);
}

static void test_partial_chunk_dropped_unless_save_unfull(void **state)
{
    (void)state;
    int32_t t[600];
    uint64_t a[4], b[4];
    size_t n;
    fill_iota(t, 600, 7);
    assert_int_equal(kvt_hash_tokens(t, 600, 256, false, a, 4, &n), KVT_OK);
    assert_int_equal(n, 2);
    assert_int_equal(kvt_hash_tokens(t, 600, 256, true, b, 4, &n), KVT_OK);
    assert_int_equal(n, 3);
    assert_memory_equal(a, b, 2 * sizeof a[0]);
    assert_int_equal(b[2], XXH3_64bits_withSeed(t + 512, 88 * sizeof t[0], b[1]));

    /* Exact multiple: save_unfull adds nothing. Short input: no full chunk at all. */
    assert_int_equal(kvt_hash_tokens(t, 512, 256, true, b, 4, &n), KVT_OK);
    assert_int_equal(n, 2);
    assert_int_equal(kvt_hash_tokens(t, 100, 256, false, b, 4, &n), KVT_OK);
    assert_int_equal(n, 0);
    assert_int_equal(kvt_hash_tokens(t, 100, 256, true, b, 4, &n), KVT_OK);
    assert_int_equal(n, 1);
    assert_int_equal(kvt_hash_tokens(NULL, 0, 256, true, NULL, 0, &n), KVT_OK);
    assert_int_equal(n, 0);
}

static void test_hash_tokens_reports_short_output(void **state)
{
    (void)state;
    int32_t t[1024];
    uint64_t full[4], part[4] = {1, 2, 3, 4};
    size_t n = 0;
    fill_iota(t, 1024, 0);
    assert_int_equal(kvt_hash_tokens(t, 1024, 256, false, full, 4, &n), KVT_OK);
    assert_int_equal(kvt_hash_tokens(t, 1024, 256, false, part, 2, &n), KVT_ETOOSMALL);
    assert_int_equal(n, 4);
    assert_memory_equal(part, full, 2 * sizeof part[0]);
    assert_int_equal(part[2], 3); /* untouched past max */
    n = 0;
    assert_int_equal(kvt_hash_tokens(t, 1024, 256, false, NULL, 0, &n), KVT_ETOOSMALL);
    assert_int_equal(n, 4);
}

static void test_hash_tokens_rejects_zero_chunk_size(void **state)
{
    (void)state;
    int32_t t[4] = {1, 2, 3, 4};
    uint64_t h[4];
    size_t n;
    assert_int_equal(kvt_hash_tokens(t, 4, 0, false, h, 4, &n), KVT_EINVAL);
    assert_non_null(strstr(kvt_last_error(), "chunk_size"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lmcache_examples_round_trip),
        cmocka_unit_test(test_parse_fills_every_field),
        cmocka_unit_test(test_plain_key_has_no_layer),
        cmocka_unit_test(test_hash_formats_like_python_hex),
        cmocka_unit_test(test_hash_range_edges_round_trip),
        cmocka_unit_test(test_parse_accepts_python_hex_spellings),
        cmocka_unit_test(test_parse_errors_name_the_bad_part),
        cmocka_unit_test(test_parse_rejects_null),
        cmocka_unit_test(test_to_string_reports_short_buffer),
        cmocka_unit_test(test_string_max_fits_the_longest_key),
        cmocka_unit_test(test_init_zeroes_and_sets_no_layer),
        cmocka_unit_test(test_init_rejects_bad_fields),
        cmocka_unit_test(test_init_accepts_every_lmcache_dtype),
        cmocka_unit_test(test_add_tag_validates),
        cmocka_unit_test(test_equal_and_hash_agree_across_construction),
        cmocka_unit_test(test_negative_zero_is_zero),
        cmocka_unit_test(test_equal_distinguishes_every_field),
        cmocka_unit_test(test_hash_chain_values_are_pinned),
        cmocka_unit_test(test_hash_chain_is_seeded_xxh3_of_le_bytes),
        cmocka_unit_test(test_hash_chain_has_prefix_property),
        cmocka_unit_test(test_first_token_changes_every_later_hash),
        cmocka_unit_test(test_partial_chunk_dropped_unless_save_unfull),
        cmocka_unit_test(test_hash_tokens_reports_short_output),
        cmocka_unit_test(test_hash_tokens_rejects_zero_chunk_size),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
