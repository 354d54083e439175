/* Harness for the README's embedding snippet (tests/readme_snippet.cmake extracts the
 * ```c block of README.md, compiles it with this file and links both against the shared
 * libkvtier). Each scenario runs in its own child process, with its own LMCACHE_*
 * environment, so a crash (say, a NULL store used after a failed open) is reported as
 * that scenario's failure and no error detail leaks from one scenario into the next.
 *
 * The snippet must: read chunk_size from the config, reuse the stored prefix, store what
 * it computed under the right keys, stop at the first failing call and return its status,
 * and print exactly one line "kvtier: <call>: <status name>: <kvt_last_error()>" whose
 * detail is the one that call left (nothing after it failed again). */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <kvtier/kvtier.h>

/* What the README defines. */
int open_store(kvt_store **store, size_t *chunk_tokens);
int serve(kvt_store *s, const char *model, const int32_t *tokens, size_t ntokens,
          size_t chunk_tokens, unsigned char *kv, size_t chunk_bytes, size_t *reused);
int close_store(kvt_store *s);
/* What the README leaves to the engine. */
void prefill(unsigned char *kv, size_t from, size_t to);

#define MODEL "meta-llama/Llama-3-8B"
#define CHUNK 16          /* LMCACHE_CHUNK_SIZE in the scenarios: not the default 256 */
#define CHUNK_BYTES 4096  /* KV bytes per chunk */
#define MAXC 80           /* more than the snippet's MAX_CHUNKS */

extern char **environ;

static int failures;
#define EXPECT(cond, ...)                                                                  \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            fprintf(stdout, "  FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);              \
            fprintf(stdout, __VA_ARGS__);                                                  \
            fputc('\n', stdout);                                                           \
            failures++;                                                                    \
        }                                                                                  \
    } while (0)

/* ---------------------------------------------------------------- the "engine" */

static uint64_t req_hashes[MAXC];
static size_t req_chunks, prefill_from = (size_t)-1, prefill_to = (size_t)-1;
static size_t chunk_bytes = CHUNK_BYTES;

static unsigned char pattern(uint64_t hash, size_t i)
{
    uint64_t x = (hash ^ (i / 8 + 1) * 0x9e3779b97f4a7c15ull) * 0xbf58476d1ce4e5b9ull;
    return (unsigned char)(x >> (8 * (i % 8)));
}

/* The KV the engine computes for chunk j of the current request: a function of the
 * chunk's chained hash, i.e. of its whole prefix, so reused bytes can be verified. */
void prefill(unsigned char *kv, size_t from, size_t to)
{
    prefill_from = from, prefill_to = to;
    for (size_t j = from; j < to && j < req_chunks; j++)
        for (size_t i = 0; i < chunk_bytes; i++)
            kv[j * chunk_bytes + i] = pattern(req_hashes[j], i);
}

/* Sets up the engine's view of a request (the harness's own hashing, not the snippet's). */
static void begin_request(const int32_t *tokens, size_t n)
{
    req_chunks = 0;
    prefill_from = prefill_to = (size_t)-1;
    if (kvt_hash_tokens(tokens, n, CHUNK, false, req_hashes, MAXC, &req_chunks) != KVT_OK)
        req_chunks = 0;
}

static bool chunk_ok(const unsigned char *kv, size_t j)
{
    for (size_t i = 0; i < chunk_bytes; i++)
        if (kv[j * chunk_bytes + i] != pattern(req_hashes[j], i))
            return false;
    return true;
}

static bool stored(kvt_store *s, size_t j)
{
    kvt_key k;
    return kvt_key_init(&k, MODEL, 1, 0, req_hashes[j], "bfloat16") == KVT_OK &&
           kvt_contains(s, &k, NULL) == KVT_OK;
}

static void tokens_of(int32_t *t, size_t n, int32_t base)
{
    for (size_t i = 0; i < n; i++)
        t[i] = base + (int32_t)i;
}

/* ---------------------------------------------------------------- stderr capture */

static FILE *cap;
static int saved_stderr = -1;

static void capture_begin(void)
{
    fflush(stderr);
    cap = tmpfile();
    saved_stderr = dup(2);
    if (!cap || saved_stderr < 0 || dup2(fileno(cap), 2) < 0) {
        perror("readme_snippet: capture stderr");
        exit(2);
    }
}

/* Restores stderr, echoes what was captured (for the test log), returns it. */
static char *capture_end(void)
{
    static char text[16384];
    fflush(stderr);
    dup2(saved_stderr, 2);
    close(saved_stderr);
    rewind(cap);
    size_t n = fread(text, 1, sizeof text - 1, cap);
    text[n] = '\0';
    fclose(cap);
    fputs(text, stderr);
    fflush(stderr);
    return text;
}

static bool contains_ci(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++) {
        size_t i = 0;
        while (i < n && hay[i] && tolower((unsigned char)hay[i]) == tolower((unsigned char)needle[i]))
            i++;
        if (i == n)
            return true;
    }
    return false;
}

/* The snippet's report of a failure: exactly one "kvtier: " line (the store's own log
 * lines are logfmt, they do not start so), naming `call` and `rc`, with the detail the
 * library holds now, which must be non-empty and mention `about` (if not NULL). */
static void expect_report(const char *err, const char *call, int rc, const char *about)
{
    char detail[600], want[1024];
    snprintf(detail, sizeof detail, "%s", kvt_last_error()); /* before any other kvtier call */
    snprintf(want, sizeof want, "kvtier: %s: %s: %s", call, kvt_status_name(rc), detail);
    size_t lines = 0;
    bool found = false;
    for (const char *p = err; *p;) {
        const char *e = strchr(p, '\n');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len >= 8 && strncmp(p, "kvtier: ", 8) == 0) {
            lines++;
            found |= len == strlen(want) && strncmp(p, want, len) == 0;
        }
        p += len + (e != NULL);
    }
    EXPECT(lines == 1, "%zu 'kvtier: ' report lines, want exactly 1", lines);
    EXPECT(found, "no report line \"%s\"", want);
    EXPECT(detail[0] != '\0', "the failure left no kvt_last_error() detail");
    if (about)
        EXPECT(contains_ci(detail, about), "detail \"%s\" does not mention %s", detail, about);
}

/* ---------------------------------------------------------------- scenarios */

static kvt_store *open_ok(size_t *chunk_tokens)
{
    kvt_store *s = NULL;
    *chunk_tokens = 0;
    int rc = open_store(&s, chunk_tokens);
    EXPECT(rc == KVT_OK && s != NULL, "open_store: %s (%s)", kvt_status_name(rc), kvt_last_error());
    EXPECT(*chunk_tokens == CHUNK, "chunk_tokens %zu: not the config's chunk_size %d",
           *chunk_tokens, CHUNK);
    return s;
}

static void close_ok(kvt_store *s)
{
    int rc = close_store(s);
    EXPECT(rc == KVT_OK, "close_store: %s (%s)", kvt_status_name(rc), kvt_last_error());
}

/* A first request is computed and stored; the same request again is served from the
 * store, bytes verified; a request sharing 4 of its chunks reuses exactly those. */
static void scenario_reuse(void)
{
    static unsigned char kv[MAXC * CHUNK_BYTES];
    int32_t a[100], b[100];
    size_t ct, reused = 99;
    kvt_store *s = open_ok(&ct);
    if (!s)
        return;
    tokens_of(a, 100, 1000);          /* 6 full chunks of 16, 4 tokens left over */
    begin_request(a, 100);
    EXPECT(req_chunks == 6, "%zu chunks", req_chunks);
    int rc = serve(s, MODEL, a, 100, ct, kv, chunk_bytes, &reused);
    EXPECT(rc == KVT_OK, "first serve: %s (%s)", kvt_status_name(rc), kvt_last_error());
    EXPECT(reused == 0, "first serve reused %zu", reused);
    EXPECT(prefill_from == 0 && prefill_to == 6, "prefill(%zu, %zu), want (0, 6)", prefill_from,
           prefill_to);
    for (size_t j = 0; j < req_chunks; j++)
        EXPECT(stored(s, j), "chunk %zu is not stored under its key", j);

    memset(kv, 0, sizeof kv);
    begin_request(a, 100);
    rc = serve(s, MODEL, a, 100, ct, kv, chunk_bytes, &reused);
    EXPECT(rc == KVT_OK, "second serve: %s (%s)", kvt_status_name(rc), kvt_last_error());
    EXPECT(reused == 6, "second serve reused %zu, want 6", reused);
    EXPECT(prefill_from == 6 && prefill_to == 6, "prefill(%zu, %zu), want (6, 6)", prefill_from,
           prefill_to);
    for (size_t j = 0; j < 6; j++)
        EXPECT(chunk_ok(kv, j), "chunk %zu read back wrong", j);

    memcpy(b, a, 64 * sizeof b[0]);   /* shares chunks 0..3 */
    tokens_of(b + 64, 36, 90000);
    memset(kv, 0, sizeof kv);
    begin_request(b, 100);
    rc = serve(s, MODEL, b, 100, ct, kv, chunk_bytes, &reused);
    EXPECT(rc == KVT_OK, "third serve: %s (%s)", kvt_status_name(rc), kvt_last_error());
    EXPECT(reused == 4, "third serve reused %zu, want 4", reused);
    EXPECT(prefill_from == 4 && prefill_to == 6, "prefill(%zu, %zu), want (4, 6)", prefill_from,
           prefill_to);
    for (size_t j = 0; j < 6; j++)
        EXPECT(chunk_ok(kv, j), "chunk %zu wrong", j);
    for (size_t j = 4; j < 6; j++)
        EXPECT(stored(s, j), "computed chunk %zu was not stored", j);
    close_ok(s);
}

/* A config that cannot be read: open_store fails at once, with the config's detail. */
static void scenario_bad_config(void)
{
    kvt_store *s = NULL;
    size_t ct = 0;
    capture_begin();
    int rc = open_store(&s, &ct);
    char *err = capture_end();
    EXPECT(rc != KVT_OK, "open_store accepted max_local_cpu_size=plenty");
    EXPECT(s == NULL, "a store after a failed open");
    if (rc != KVT_OK)
        expect_report(err, "config", rc, "max_local_cpu_size");
}

/* The config asks for a disk tier in a directory that cannot be made (under /proc): the
 * store does not open, nothing runs on the NULL store, the report names the path. */
static void scenario_open_fails(void)
{
    kvt_store *s = NULL;
    size_t ct = 0;
    capture_begin();
    int rc = open_store(&s, &ct);
    char *err = capture_end();
    EXPECT(rc == KVT_EIO, "open_store: %s, want KVT_EIO", kvt_status_name(rc));
    EXPECT(s == NULL, "a store after a failed open");
    if (rc != KVT_OK)
        expect_report(err, "open", rc, "/proc/kvtier-readme");
}

/* No tier stores anything (max_local_cpu_size 0): the put's KVT_ENOTIER is returned. */
static void scenario_no_tier(void)
{
    static unsigned char kv[MAXC * CHUNK_BYTES];
    int32_t a[100];
    size_t ct, reused = 0;
    capture_begin();
    kvt_store *s = open_ok(&ct);
    int rc = KVT_OK;
    if (s) {
        tokens_of(a, 100, 1000);
        begin_request(a, 100);
        rc = serve(s, MODEL, a, 100, ct, kv, chunk_bytes, &reused);
    }
    char *err = capture_end();
    if (!s)
        return;
    EXPECT(rc == KVT_ENOTIER, "serve: %s, want KVT_ENOTIER", kvt_status_name(rc));
    if (rc != KVT_OK)
        expect_report(err, "put", rc, NULL);
    close_ok(s);
}

/* A stored chunk read into a buffer too small for it: the get's KVT_ETOOSMALL. */
static void scenario_short_buffer(void)
{
    static unsigned char kv[MAXC * CHUNK_BYTES];
    int32_t a[100];
    size_t ct, reused = 0;
    kvt_store *s = open_ok(&ct);
    if (!s)
        return;
    tokens_of(a, 100, 1000);
    begin_request(a, 100);
    int rc = serve(s, MODEL, a, 100, ct, kv, chunk_bytes, &reused);
    EXPECT(rc == KVT_OK, "serve: %s (%s)", kvt_status_name(rc), kvt_last_error());
    chunk_bytes = CHUNK_BYTES / 2;
    begin_request(a, 100);
    capture_begin();
    rc = serve(s, MODEL, a, 100, ct, kv, chunk_bytes, &reused);
    char *err = capture_end();
    chunk_bytes = CHUNK_BYTES;
    EXPECT(rc == KVT_ETOOSMALL, "serve: %s, want KVT_ETOOSMALL", kvt_status_name(rc));
    EXPECT(prefill_from == (size_t)-1, "prefill ran after the get failed");
    if (rc != KVT_OK)
        expect_report(err, "get", rc, NULL);
    close_ok(s);
}

/* A model name a key cannot hold: the key's KVT_EINVAL, before any lookup. */
static void scenario_bad_model(void)
{
    static unsigned char kv[MAXC * CHUNK_BYTES];
    int32_t a[100];
    size_t ct, reused = 0;
    kvt_store *s = open_ok(&ct);
    if (!s)
        return;
    tokens_of(a, 100, 1000);
    begin_request(a, 100);
    capture_begin();
    int rc = serve(s, "org@model", a, 100, ct, kv, chunk_bytes, &reused);
    char *err = capture_end();
    EXPECT(rc == KVT_EINVAL, "serve: %s, want KVT_EINVAL", kvt_status_name(rc));
    EXPECT(prefill_from == (size_t)-1, "prefill ran after the key failed");
    if (rc != KVT_OK)
        expect_report(err, "key", rc, "model");
    kvt_store_stats st;
    EXPECT(kvt_store_get_stats(s, &st) == KVT_OK && st.lookup_requests == 0 &&
               st.store_requests == 0,
           "the store was used after the key failed");
    close_ok(s);
}

/* More chunks than the snippet's arrays: kvt_hash_tokens' KVT_ETOOSMALL. */
static void scenario_too_long(void)
{
    static unsigned char kv[MAXC * CHUNK_BYTES];
    static int32_t a[MAXC * CHUNK];
    size_t ct, reused = 0;
    kvt_store *s = open_ok(&ct);
    if (!s)
        return;
    tokens_of(a, MAXC * CHUNK, 1000);
    begin_request(a, MAXC * CHUNK);
    capture_begin();
    int rc = serve(s, MODEL, a, MAXC * CHUNK, ct, kv, chunk_bytes, &reused);
    char *err = capture_end();
    EXPECT(rc == KVT_ETOOSMALL, "serve of %d chunks: %s, want KVT_ETOOSMALL", MAXC,
           kvt_status_name(rc));
    EXPECT(prefill_from == (size_t)-1, "prefill ran after hashing failed");
    if (rc != KVT_OK)
        expect_report(err, "hash", rc, NULL);
    close_ok(s);
}

struct scenario {
    const char *name;
    void (*run)(void);
    const char *env[4][2]; /* {NAME, value}, on top of the common ones */
};

static const struct scenario scenarios[] = {
    {"reuse", scenario_reuse, {{NULL}}},
    {"bad_config", scenario_bad_config, {{"LMCACHE_MAX_LOCAL_CPU_SIZE", "plenty"}}},
    {"open_fails", scenario_open_fails,
     {{"LMCACHE_LOCAL_DISK", "/proc/kvtier-readme"},
      {"LMCACHE_MAX_LOCAL_DISK_SIZE", "1"}}},
    {"no_tier", scenario_no_tier, {{"LMCACHE_MAX_LOCAL_CPU_SIZE", "0"}}},
    {"short_buffer", scenario_short_buffer, {{NULL}}},
    {"bad_model", scenario_bad_model, {{NULL}}},
    {"too_long", scenario_too_long, {{NULL}}},
};

/* Child: a clean LMCACHE_* environment (nothing inherited), then the scenario's. */
static int run_child(const struct scenario *sc)
{
    for (;;) {
        char **e = environ;
        while (*e && strncmp(*e, "LMCACHE_", 8) != 0)
            e++;
        if (!*e)
            break;
        char name[256];
        size_t n = strcspn(*e, "=");
        snprintf(name, sizeof name, "%.*s", (int)(n < 255 ? n : 255), *e);
        unsetenv(name);
    }
    printf("---- %s\n", sc->name);
    setenv("LMCACHE_CHUNK_SIZE", "16", 1);
    setenv("LMCACHE_MAX_LOCAL_CPU_SIZE", "0.01", 1);
    for (size_t i = 0; i < 4 && sc->env[i][0]; i++)
        setenv(sc->env[i][0], sc->env[i][1], 1);
    sc->run();
    fflush(NULL);
    return failures ? 1 : 0;
}

int main(int argc, char **argv)
{
    int bad = 0;
    /* One stream, unbuffered: the store's log lines, the snippet's reports and the
     * verdicts come out in the order they happened. */
    setvbuf(stdout, NULL, _IONBF, 0);
    dup2(1, 2);
    for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++) {
        const struct scenario *sc = &scenarios[i];
        if (argc > 1 && strcmp(argv[1], sc->name) != 0)
            continue;
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 2;
        }
        if (pid == 0)
            exit(run_child(sc));
        int st = 0;
        waitpid(pid, &st, 0);
        if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
            printf("ok   %s\n", sc->name);
        } else {
            bad++;
            if (WIFSIGNALED(st))
                printf("FAIL %s: killed by signal %d\n", sc->name, WTERMSIG(st));
            else
                printf("FAIL %s: exit %d\n", sc->name, WEXITSTATUS(st));
        }
        fflush(stdout);
    }
    return bad ? 1 : 0;
}
