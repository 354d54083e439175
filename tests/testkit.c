/* kvtier tests — see testkit.h. */
#include "testkit.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct tk_chunk {
    kvt_key key;
    void *data;
    size_t len;
    kvt_chunk_meta meta;
    struct tk_chunk *next;
};

#define TK_BUCKETS 65536u

struct tk_world tk_a = {.mu = PTHREAD_MUTEX_INITIALIZER,
                        .gate_mu = PTHREAD_MUTEX_INITIALIZER,
                        .gate_cv = PTHREAD_COND_INITIALIZER};
struct tk_world tk_b = {.mu = PTHREAD_MUTEX_INITIALIZER,
                        .gate_mu = PTHREAD_MUTEX_INITIALIZER,
                        .gate_cv = PTHREAD_COND_INITIALIZER};

double tk_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Parks the caller while the gate is closed. */
static void pass_gate_at(struct tk_world *w, int which)
{
    pthread_mutex_lock(&w->gate_mu);
    if (w->gate_closed[which] && w->pass[which] == 0) {
        w->parked[which]++;
        pthread_cond_broadcast(&w->gate_cv);
        while (w->gate_closed[which] && w->pass[which] == 0)
            pthread_cond_wait(&w->gate_cv, &w->gate_mu);
        w->parked[which]--;
    }
    if (w->gate_closed[which])
        w->pass[which]--;
    pthread_mutex_unlock(&w->gate_mu);
}

static void pass_gate(struct tk_world *w, bool put) { pass_gate_at(w, put ? TK_PUT : TK_GET); }

void tk_gate_at(struct tk_world *w, int which, bool closed)
{
    pthread_mutex_lock(&w->gate_mu);
    w->gate_closed[which] = closed;
    w->pass[which] = 0;
    pthread_cond_broadcast(&w->gate_cv);
    pthread_mutex_unlock(&w->gate_mu);
}

void tk_gate_pass(struct tk_world *w, int which, long n)
{
    pthread_mutex_lock(&w->gate_mu);
    w->pass[which] += n;
    pthread_cond_broadcast(&w->gate_cv);
    pthread_mutex_unlock(&w->gate_mu);
}

void tk_wait_parked_at(struct tk_world *w, int which, long n)
{
    pthread_mutex_lock(&w->gate_mu);
    while (w->parked[which] < n)
        pthread_cond_wait(&w->gate_cv, &w->gate_mu);
    pthread_mutex_unlock(&w->gate_mu);
}

void tk_gate(struct tk_world *w, bool put, bool closed) { tk_gate_at(w, put ? TK_PUT : TK_GET, closed); }

void tk_wait_parked(struct tk_world *w, bool put, long n)
{
    tk_wait_parked_at(w, put ? TK_PUT : TK_GET, n);
}

struct tk_inst {
    struct tk_world *w;
    const kvt_backend_env *env;
};

static void quiet(void *ud, kvt_log_level l, const char *c, const char *m)
{
    (void)ud, (void)l, (void)c, (void)m;
}
const kvt_log_handler tk_quiet = {.fn = quiet, .min_level = KVT_LOG_DEBUG};

static struct tk_chunk **slot(struct tk_world *w, const kvt_key *key)
{
    if (!w->buckets && !(w->buckets = calloc(TK_BUCKETS, sizeof *w->buckets)))
        abort();
    struct tk_chunk **pp = &w->buckets[kvt_key_hash(key) % TK_BUCKETS];
    while (*pp && !kvt_key_equal(&(*pp)->key, key))
        pp = &(*pp)->next;
    return pp;
}

static struct tk_chunk *find(struct tk_world *w, const kvt_key *key) { return *slot(w, key); }

static bool want_a(const kvt_config *cfg) { (void)cfg; return atomic_load(&tk_a.wanted); }
static bool want_b(const kvt_config *cfg) { (void)cfg; return atomic_load(&tk_b.wanted); }

static int tk_create(const kvt_backend_env *env, const kvt_config *cfg, void **state)
{
    (void)cfg;
    struct tk_world *w = strcmp(kvt_backend_name(env), "TestTierA") == 0 ? &tk_a : &tk_b;
    int fail = atomic_load(&w->fail_create);
    if (fail)
        return fail;
    struct tk_inst *in = calloc(1, sizeof *in);
    if (!in)
        return KVT_ENOMEM;
    in->w = w;
    in->env = env;
    atomic_fetch_add(&w->live, 1);
    atomic_fetch_add(&w->created, 1);
    *state = in;
    return KVT_OK;
}

static void tk_destroy(void *state)
{
    struct tk_inst *in = state;
    atomic_fetch_sub(&in->w->live, 1);
    atomic_fetch_add(&in->w->destroyed, 1);
    free(in);
}

static int tk_put(void *state, const kvt_key *key, kvt_obj *obj)
{
    struct tk_inst *in = state;
    struct tk_world *w = in->w;
    unsigned delay = atomic_load(&w->put_delay_us);
    if (delay)
        usleep(delay);
    pass_gate(w, true);
    int fail = atomic_load(&w->fail_io);
    if (fail)
        return fail;
    if (atomic_load(&w->fail_put_hash) == key->chunk_hash)
        return KVT_EIO;
    pthread_mutex_lock(&w->mu);
    struct tk_chunk **pp = slot(w, key);
    if (!*pp) {
        struct tk_chunk *c = calloc(1, sizeof *c);
        c->key = *key;
        c->len = kvt_obj_size(obj);
        c->data = malloc(c->len ? c->len : 1);
        memcpy(c->data, kvt_obj_data(obj), c->len);
        c->meta = *kvt_obj_meta(obj);
        *pp = c;
        w->n++;
    }
    pthread_mutex_unlock(&w->mu);
    atomic_fetch_add(&w->puts, 1);
    return KVT_OK;
}

static int tk_get(void *state, const kvt_key *key, kvt_obj **out)
{
    struct tk_inst *in = state;
    struct tk_world *w = in->w;
    int rc = KVT_ENOENT;
    atomic_fetch_add(&w->gets, 1);
    if (atomic_load(&w->fail_io))
        return atomic_load(&w->fail_io);
    pthread_mutex_lock(&w->mu);
    struct tk_chunk *c = find(w, key);
    if (c && (rc = kvt_backend_alloc(in->env, c->len, &c->meta, out)) == KVT_OK)
        memcpy(kvt_obj_data_mut(*out), c->data, c->len);
    pthread_mutex_unlock(&w->mu);
    pass_gate(w, false);
    if (rc == KVT_OK && atomic_load(&w->get_returns_null)) {
        kvt_obj_release(*out);
        *out = NULL;
    }
    return rc;
}

/* ABI v2: the batch and the read into a caller buffer (TestTierB only). */
static int tk_batched_get(void *state, size_t n, const kvt_key *keys, kvt_obj **outs, int *sts)
{
    struct tk_inst *in = state;
    atomic_fetch_add(&in->w->batched_get_calls, 1);
    atomic_fetch_sub(&in->w->gets, (long)n); /* tk_get counts singles */
    for (size_t i = 0; i < n; i++)
        sts[i] = tk_get(state, &keys[i], &outs[i]);
    return KVT_OK;
}

static int tk_get_into(void *state, const kvt_key *key, void *buf, size_t cap, size_t *len);

/* ABI v5: the write-through queue's batch (TestTierB only). */
static int tk_batched_put(void *state, size_t n, const kvt_key *keys, kvt_obj *const *objs,
                          int *sts)
{
    struct tk_inst *in = state;
    long max = atomic_load(&in->w->batched_put_max);
    while ((long)n > max && !atomic_compare_exchange_weak(&in->w->batched_put_max, &max, (long)n))
        ;
    atomic_fetch_add(&in->w->batched_put_calls, 1);
    for (size_t i = 0; i < n; i++)
        sts[i] = tk_put(state, &keys[i], objs[i]);
    return KVT_OK;
}

/* ABI v4: a batch straight into caller buffers (TestTierB only). */
static int tk_batched_get_into(void *state, size_t n, const kvt_key *keys, void *const *bufs,
                               const size_t *caps, size_t *lens, int *sts)
{
    struct tk_inst *in = state;
    atomic_fetch_add(&in->w->batched_get_into_calls, 1);
    atomic_fetch_sub(&in->w->get_into_calls, (long)n); /* tk_get_into counts singles */
    for (size_t i = 0; i < n; i++)
        sts[i] = tk_get_into(state, &keys[i], bufs[i], caps[i], &lens[i]);
    return KVT_OK;
}

static int tk_get_into(void *state, const kvt_key *key, void *buf, size_t cap, size_t *len)
{
    struct tk_inst *in = state;
    struct tk_world *w = in->w;
    int rc = KVT_ENOENT;
    atomic_fetch_add(&w->get_into_calls, 1);
    pthread_mutex_lock(&w->mu);
    struct tk_chunk *c = find(w, key);
    if (c) {
        *len = c->len;
        rc = c->len <= cap ? KVT_OK : KVT_ETOOSMALL;
        if (rc == KVT_OK)
            memcpy(buf, c->data, c->len);
    }
    pthread_mutex_unlock(&w->mu);
    return rc;
}

static int tk_contains(void *state, const kvt_key *key)
{
    struct tk_inst *in = state;
    atomic_fetch_add(&in->w->contains_calls, 1);
    if (atomic_load(&in->w->fail_io))
        return atomic_load(&in->w->fail_io);
    pthread_mutex_lock(&in->w->mu);
    bool found = find(in->w, key) != NULL;
    pthread_mutex_unlock(&in->w->mu);
    return found;
}

static int tk_remove(void *state, const kvt_key *key)
{
    struct tk_inst *in = state;
    struct tk_world *w = in->w;
    pass_gate_at(w, TK_REMOVE);
    pthread_mutex_lock(&w->mu);
    struct tk_chunk **pp = slot(w, key), *c = *pp;
    if (c) {
        *pp = c->next;
        free(c->data);
        free(c);
        w->n--;
    }
    pthread_mutex_unlock(&w->mu);
    return c ? KVT_OK : KVT_ENOENT;
}

static int tk_clear(void *state, uint64_t *tokens)
{
    struct tk_inst *in = state;
    struct tk_world *w = in->w;
    pthread_mutex_lock(&w->mu);
    for (size_t b = 0; w->buckets && b < TK_BUCKETS; b++) {
        while (w->buckets[b]) {
            struct tk_chunk *c = w->buckets[b];
            w->buckets[b] = c->next;
            *tokens += c->meta.num_tokens;
            free(c->data);
            free(c);
        }
    }
    w->n = 0;
    pthread_mutex_unlock(&w->mu);
    return KVT_OK;
}

/* Only TestTierB has it; TestTierA falls back to contains(). */
static size_t tk_count_prefix(void *state, const kvt_key *keys, size_t n, bool pin)
{
    struct tk_inst *in = state;
    (void)pin;
    atomic_fetch_add(&in->w->count_prefix_calls, 1);
    size_t i = 0;
    pthread_mutex_lock(&in->w->mu);
    while (i < n && find(in->w, &keys[i]))
        i++;
    pthread_mutex_unlock(&in->w->mu);
    return i;
}

const struct kvt_backend_ops tk_a_ops = {
    .abi_version = KVT_BACKEND_ABI_VERSION,
    .struct_size = sizeof(struct kvt_backend_ops),
    .type_name = "TestTierA",
    .flags = KVT_BACKEND_USES_CPU_BUFFERS,
    .wanted = want_a,
    .create = tk_create,
    .destroy = tk_destroy,
    .put = tk_put,
    .get = tk_get,
    .contains = tk_contains,
    .remove = tk_remove,
    .clear = tk_clear,
    .count_prefix = NULL,
    .unpin = NULL,
    .stats = NULL,
};

const struct kvt_backend_ops tk_b_ops = {
    .abi_version = KVT_BACKEND_ABI_VERSION,
    .struct_size = sizeof(struct kvt_backend_ops),
    .type_name = "TestTierB",
    .flags = KVT_BACKEND_USES_CPU_BUFFERS,
    .wanted = want_b,
    .create = tk_create,
    .destroy = tk_destroy,
    .put = tk_put,
    .get = tk_get,
    .contains = tk_contains,
    .remove = tk_remove,
    .clear = tk_clear,
    .count_prefix = tk_count_prefix,
    .unpin = NULL,
    .stats = NULL,
    .batched_get = tk_batched_get,
    .get_into = tk_get_into,
    .batched_get_into = tk_batched_get_into,
    .batched_put = tk_batched_put,
};

static void reg(void)
{
    if (kvt_register_backend_type(&tk_a_ops) != KVT_OK ||
        kvt_register_backend_type(&tk_b_ops) != KVT_OK)
        abort();
}

void tk_register(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, reg);
}

void tk_reset(struct tk_world *w)
{
    uint64_t t = 0;
    struct tk_inst in = {.w = w};
    tk_clear(&in, &t);
    pthread_mutex_lock(&w->mu);
    free(w->buckets);
    w->buckets = NULL;
    pthread_mutex_unlock(&w->mu);
    atomic_store(&w->wanted, false);
    atomic_store(&w->fail_create, 0);
    atomic_store(&w->put_delay_us, 0);
    atomic_store(&w->created, 0);
    atomic_store(&w->destroyed, 0);
    atomic_store(&w->puts, 0);
    atomic_store(&w->gets, 0);
    atomic_store(&w->contains_calls, 0);
    atomic_store(&w->count_prefix_calls, 0);
    atomic_store(&w->batched_get_calls, 0);
    atomic_store(&w->get_into_calls, 0);
    atomic_store(&w->batched_get_into_calls, 0);
    atomic_store(&w->batched_put_calls, 0);
    atomic_store(&w->batched_put_max, 0);
    atomic_store(&w->fail_put_hash, 0);
    atomic_store(&w->get_returns_null, false);
    atomic_store(&w->fail_io, 0);
    for (int g = TK_PUT; g <= TK_REMOVE; g++)
        tk_gate_at(w, g, false);
}

bool tk_holds(struct tk_world *w, const kvt_key *key, const void *data, size_t len)
{
    pthread_mutex_lock(&w->mu);
    struct tk_chunk *c = find(w, key);
    bool ok = c && c->len == len && memcmp(c->data, data, len) == 0;
    pthread_mutex_unlock(&w->mu);
    return ok;
}

size_t tk_count(struct tk_world *w)
{
    pthread_mutex_lock(&w->mu);
    size_t n = w->n;
    pthread_mutex_unlock(&w->mu);
    return n;
}

kvt_key tk_key(uint64_t hash)
{
    kvt_key k;
    if (kvt_key_init(&k, "test-model", 1, 0, hash, "bfloat16") != KVT_OK)
        abort();
    return k;
}

kvt_key tk_model_key(const char *model, uint64_t h)
{
    kvt_key k;
    assert_int_equal(kvt_key_init(&k, model, 1, 0, h, "bfloat16"), KVT_OK);
    return k;
}

void tk_put_chunk(kvt_store *s, const kvt_key *k, size_t len, uint64_t seed,
                  const kvt_chunk_meta *meta)
{
    unsigned char *buf = malloc(len);
    assert_non_null(buf);
    tk_fill(buf, len, seed);
    assert_int_equal(kvt_put(s, k, buf, len, meta), KVT_OK);
    free(buf);
}

void tk_expect_chunk(kvt_store *s, const kvt_key *k, size_t len, uint64_t seed)
{
    unsigned char *want = malloc(len), *got = malloc(len);
    size_t n = 0;
    assert_non_null(want);
    assert_non_null(got);
    tk_fill(want, len, seed);
    assert_int_equal(kvt_get_into(s, k, got, len, &n), KVT_OK);
    assert_int_equal(n, len);
    assert_memory_equal(got, want, len);
    free(want);
    free(got);
}

void tk_fill(void *buf, size_t len, uint64_t hash)
{
    unsigned char *p = buf;
    uint64_t x = hash * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        p[i] = (unsigned char)x;
    }
}

kvt_config *tk_config(double cpu_mib)
{
    kvt_config *cfg = NULL;
    if (kvt_config_new(&cfg) != KVT_OK ||
        kvt_config_set_float(cfg, "max_local_cpu_size", cpu_mib / 1024.0) != KVT_OK)
        abort();
    return cfg;
}
