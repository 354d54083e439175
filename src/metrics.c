/* kvtier — Prometheus text exposition of the store's counters.
 * LMCache's metric names where one exists (dashboards keep working), kvtier_* otherwise. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

struct sink {
    FILE *f;
};

static void metric(struct sink *k, const char *name, const char *type, const char *help,
                   uint64_t value)
{
    fprintf(k->f, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name,
            (unsigned long long)value);
}

static void store_metrics(struct sink *k, kvt_store *s)
{
    kvt_store_stats st;
    uint64_t chunk = s->chunk_size;
    kvt_store_get_stats(s, &st);
    metric(k, "lmcache:num_store_requests", "counter", "Store requests.", st.store_requests);
    metric(k, "lmcache:num_retrieve_requests", "counter", "Retrieve requests.",
           st.retrieve_requests);
    metric(k, "lmcache:num_lookup_requests", "counter", "Lookup requests.", st.lookup_requests);
    metric(k, "lmcache:num_stored_tokens", "counter", "Tokens stored.", st.stored_tokens);
    metric(k, "lmcache:num_hit_tokens", "counter", "Tokens retrieved.", st.retrieved_tokens);
    metric(k, "lmcache:num_lookup_tokens", "counter", "Tokens looked up (keys x chunk_size).",
           st.lookup_keys * chunk);
    metric(k, "lmcache:num_lookup_hits", "counter", "Tokens found by lookups (keys x chunk_size).",
           st.lookup_hits * chunk);
    metric(k, "kvtier_promotions_total", "counter", "Lower-tier hits handed to the CPU tier.",
           st.promotions);
    metric(k, "kvtier_write_through_enqueued_total", "counter", "Write-through items queued.",
           st.wt_enqueued);
    metric(k, "kvtier_write_through_done_total", "counter", "Write-through items written.",
           st.wt_done);
    metric(k, "kvtier_write_through_failed_total", "counter", "Write-through items that failed.",
           st.wt_failed);
    metric(k, "kvtier_write_through_skipped_total", "counter",
           "Tier copies skipped: queue full past write_queue_timeout_ms.", st.wt_skipped);
    metric(k, "kvtier_write_through_cancelled_total", "counter",
           "Queued writes invalidated by remove or clear.", st.wt_cancelled);
    metric(k, "kvtier_puts_frozen_total", "counter", "Puts skipped while frozen.", st.puts_frozen);
    metric(k, "kvtier_puts_unstored_total", "counter", "Puts no tier took.", st.puts_unstored);
    metric(k, "kvtier_get_unstaged_total", "counter",
           "Lower-tier hits read past a full CPU tier, not promoted.", st.get_unstaged);
    metric(k, "kvtier_frozen", "gauge", "1 while the store is frozen.", kvt_store_frozen(s));
}

/* Per-backend families: one HELP/TYPE header, one sample per backend. */
static void backend_family(struct sink *k, const char *name, const char *type, const char *help,
                           const kvt_backend_info *bk, const kvt_backend_stats *st, size_t n,
                           size_t field)
{
    fprintf(k->f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
    for (size_t i = 0; i < n; i++) {
        uint64_t v = *(const uint64_t *)((const char *)&st[i] + field);
        fprintf(k->f, "%s{backend=\"%s\"} %llu\n", name, bk[i].name, (unsigned long long)v);
    }
}

static void backend_metrics(struct sink *k, kvt_store *s)
{
    kvt_backend_info bk[KVT_MAX_BACKENDS];
    kvt_backend_stats st[KVT_MAX_BACKENDS];
    size_t n = 0, m = 0;
    kvt_backends_list(s, bk, KVT_MAX_BACKENDS, &n);
    for (size_t i = 0; i < n && i < KVT_MAX_BACKENDS; i++)
        if (kvt_backend_get_stats(s, bk[i].name, &st[m]) == KVT_OK)
            bk[m++] = bk[i]; /* skips one closed meanwhile */
    static const struct {
        const char *name, *type, *help;
        size_t field;
    } fams[] = {
        {"kvtier_backend_hits_total", "counter", "Gets served.", offsetof(kvt_backend_stats, hits)},
        {"kvtier_backend_misses_total", "counter", "Gets missed.",
         offsetof(kvt_backend_stats, misses)},
        {"kvtier_backend_puts_total", "counter", "Chunks written.", offsetof(kvt_backend_stats, puts)},
        {"kvtier_backend_put_failures_total", "counter", "Writes that failed.",
         offsetof(kvt_backend_stats, put_failures)},
        {"kvtier_backend_queued", "gauge", "Write-through items waiting.",
         offsetof(kvt_backend_stats, queued)},
        {"kvtier_backend_bytes_used", "gauge", "Bytes stored.",
         offsetof(kvt_backend_stats, bytes_used)},
        {"kvtier_backend_capacity_bytes", "gauge", "Capacity in bytes.",
         offsetof(kvt_backend_stats, capacity_bytes)},
        {"kvtier_backend_objects", "gauge", "Chunks stored.", offsetof(kvt_backend_stats, objects)},
        {"kvtier_backend_evictions_total", "counter", "Chunks evicted.",
         offsetof(kvt_backend_stats, evictions)},
        {"kvtier_backend_pinned", "gauge", "Chunks pinned.", offsetof(kvt_backend_stats, pinned)},
        {"kvtier_backend_skipped_total", "counter", "Copies skipped: queue full past the timeout.",
         offsetof(kvt_backend_stats, skipped)},
        {"kvtier_backend_cancelled_total", "counter", "Queued writes invalidated by remove/clear.",
         offsetof(kvt_backend_stats, cancelled)},
    };
    for (size_t i = 0; i < KVT__ARRAY_LEN(fams); i++)
        backend_family(k, fams[i].name, fams[i].type, fams[i].help, bk, st, m, fams[i].field);
    for (size_t i = 0; i < m; i++) {
        if (strcmp(bk[i].name, "LocalCPUBackend") != 0)
            continue;
        metric(k, "lmcache:local_cache_usage", "gauge", "CPU tier bytes in use.", st[i].bytes_used);
        metric(k, "lmcache:local_cpu_evict_count", "counter", "CPU tier evictions.",
               st[i].evictions);
        metric(k, "lmcache:pinned_memory_objs_count", "gauge", "Pinned CPU tier chunks.",
               st[i].pinned);
    }
}

int kvt_metrics_render(kvt_store *s, char **out)
{
    char *buf = NULL;
    size_t len = 0;
    if (!out)
        return kvt__fail(KVT_EINVAL, "kvt_metrics_render: out is NULL");
    *out = NULL;
    if (!s)
        return kvt__fail(KVT_EINVAL, "kvt_metrics_render: store is NULL");
    struct sink k = {open_memstream(&buf, &len)};
    if (!k.f)
        return kvt__fail(KVT_ENOMEM, "cannot render metrics");
    store_metrics(&k, s);
    backend_metrics(&k, s);
    if (fclose(k.f) != 0 || !buf) {
        free(buf);
        return kvt__fail(KVT_ENOMEM, "cannot render metrics");
    }
    *out = buf;
    return KVT_OK;
}

int kvt_metrics_reset(kvt_store *s)
{
    kvt__bk *bks[2 * KVT_MAX_BACKENDS];
    if (!s)
        return kvt__fail(KVT_EINVAL, "kvt_metrics_reset: store is NULL");
    atomic_uint_fast64_t *store_counters[] = {
        &s->st.store_requests, &s->st.retrieve_requests, &s->st.lookup_requests,
        &s->st.stored_chunks,  &s->st.retrieved_chunks,  &s->st.promotions,
        &s->st.stored_tokens,  &s->st.retrieved_tokens,  &s->st.lookup_keys,
        &s->st.lookup_hits,    &s->st.wt_skipped,        &s->st.puts_frozen,
        &s->st.puts_unstored,  &s->st.get_unstaged,
    };
    for (size_t i = 0; i < KVT__ARRAY_LEN(store_counters); i++)
        atomic_store(store_counters[i], 0);
    size_t n = kvt__open_backends(s, bks);
    for (size_t i = 0; i < n; i++) {
        kvt__bk *bk = bks[i];
        atomic_uint_fast64_t *c[] = {&bk->hits, &bk->misses, &bk->puts, &bk->put_failures,
                                     &bk->skipped, &bk->cancelled};
        for (size_t j = 0; j < KVT__ARRAY_LEN(c); j++)
            atomic_store(c[j], 0);
        kvt__bk_unref(bk);
    }
    return KVT_OK;
}
