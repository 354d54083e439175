/* kvtier — backend types and the registry of backend instances.
 *
 * Types: the four built-in tiers, in LMCache's tier order, then types registered through
 * kvt_register_backend_type() in registration order. A type's position is its rank, and
 * every snapshot keeps its backends sorted by rank, so create and recreate put a backend
 * back where it belongs (LMCache appends at the end).
 *
 * Instances: ACTIVE while published; a close unpublishes the instance and moves it to
 * the store's draining list (DRAINING) until its queue worker has written out the queue,
 * waited for the calls inside it and destroyed it (CLOSED); the next registry operation
 * reaps it. Closers wait for CLOSED with a deadline, holding no lock. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

/* ------------------------------------------------------------------ types */

struct tier_type {
    const char *name;
    bool (*wanted)(const kvt_config *cfg);
    const struct kvt_backend_ops *ops;
};

/* The built-in tiers, in LMCache's tier order. */
static const struct kvt_backend_ops *const builtins[] = {
    &kvt__local_cpu_ops,
    &kvt__local_disk_ops,
    &kvt__gds_ops,
    &kvt__remote_ops,
};

#define MAX_TYPES KVT_MAX_BACKENDS
static pthread_mutex_t types_mu = PTHREAD_MUTEX_INITIALIZER;
static const struct kvt_backend_ops *custom_types[MAX_TYPES - KVT__ARRAY_LEN(builtins)];
static size_t ncustom;

static bool valid_name(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return false;
    }
    return n >= 1 && n < KVT_NAME_MAX;
}

int kvt_register_backend_type(const struct kvt_backend_ops *ops)
{
    if (!ops || ops->abi_version < 1 || ops->abi_version > KVT_BACKEND_ABI_VERSION)
        return kvt__fail(KVT_EINVAL, "backend type has unsupported ABI version %u",
                         ops ? ops->abi_version : 0);
    if (ops->struct_size < offsetof(struct kvt_backend_ops, count_prefix))
        return kvt__fail(KVT_EINVAL, "backend type table is too small (%u bytes)", ops->struct_size);
    if (!ops->type_name || !valid_name(ops->type_name))
        return kvt__fail(KVT_EINVAL, "backend type name must match [A-Za-z0-9_.-]{1,63}");
    if (!ops->wanted || !ops->create || !ops->destroy || !ops->put || !ops->get ||
        !ops->contains || !ops->remove || !ops->clear)
        return kvt__fail(KVT_EINVAL, "backend type %s lacks a required slot", ops->type_name);
    int rc = KVT_OK;
    pthread_mutex_lock(&types_mu);
    for (size_t i = 0; i < KVT__ARRAY_LEN(builtins); i++)
        if (strcmp(builtins[i]->type_name, ops->type_name) == 0)
            rc = kvt__fail(KVT_EEXIST, "backend type %s is built in", ops->type_name);
    for (size_t i = 0; rc == KVT_OK && i < ncustom; i++)
        if (strcmp(custom_types[i]->type_name, ops->type_name) == 0)
            rc = kvt__fail(KVT_EEXIST, "backend type %s is already registered", ops->type_name);
    if (rc == KVT_OK && ncustom == KVT__ARRAY_LEN(custom_types))
        rc = kvt__fail(KVT_ENOSPC, "too many backend types");
    if (rc == KVT_OK)
        custom_types[ncustom++] = ops;
    pthread_mutex_unlock(&types_mu);
    return rc;
}

bool kvt__type_known(const char *name)
{
    bool known = false;
    for (size_t i = 0; i < KVT__ARRAY_LEN(builtins); i++)
        known |= strcmp(builtins[i]->type_name, name) == 0;
    pthread_mutex_lock(&types_mu);
    for (size_t i = 0; i < ncustom; i++)
        known |= strcmp(custom_types[i]->type_name, name) == 0;
    pthread_mutex_unlock(&types_mu);
    return known;
}

/* All types in rank order; returns how many. */
static size_t list_types(struct tier_type out[MAX_TYPES])
{
    size_t n = 0;
    for (; n < KVT__ARRAY_LEN(builtins); n++)
        out[n] = (struct tier_type){builtins[n]->type_name, builtins[n]->wanted, builtins[n]};
    pthread_mutex_lock(&types_mu);
    for (size_t i = 0; i < ncustom; i++, n++)
        out[n] = (struct tier_type){custom_types[i]->type_name, custom_types[i]->wanted,
                                    custom_types[i]};
    pthread_mutex_unlock(&types_mu);
    return n;
}

/* ------------------------------------------------------------------ instances */

/* The queue worker's write of `n` items: one batched_put when the tier has it. */
static void bk_write(void *ud, size_t n, const kvt_key *keys, kvt_obj **objs, bool abandoned)
{
    kvt__bk *bk = ud;
    kvt_store *s = bk->store;
    int sts[KVT__WQ_BATCH_MAX];
    for (size_t i = 0; i < n; i++)
        sts[i] = KVT_ECLOSED;
    if (!abandoned && n > 1) { /* the queue batches only for a tier with the slot */
        int rc = bk->ops->batched_put(bk->state, n, keys, (kvt_obj *const *)objs, sts);
        for (size_t i = 0; rc != KVT_OK && i < n; i++)
            sts[i] = rc; /* the whole batch failed */
    } else if (!abandoned)
        sts[0] = bk->ops->put(bk->state, &keys[0], objs[0]);
    for (size_t i = 0; i < n; i++) {
        int rc = sts[i];
        kvt_obj_release(objs[i]);
        if (!abandoned)
            kvt__bk_result(bk, rc);
        if (rc == KVT_OK) {
            atomic_fetch_add(&bk->puts, 1);
            atomic_fetch_add(&s->st.wt_done, 1);
            continue;
        }
        atomic_fetch_add(&bk->put_failures, 1);
        atomic_fetch_add(&s->st.wt_failed, 1);
        if (abandoned)
            atomic_fetch_add(&bk->abandoned, 1);
        else
            kvt__log(&s->log, KVT_LOG_WARN, bk->name, "event=write_through_failed status=%s",
                     kvt_status_name(rc));
    }
}

/* The queue worker, after a write a remove or clear invalidated while it ran. */
static void bk_undo(void *ud, const kvt_key *key)
{
    kvt__bk *bk = ud;
    bk->ops->remove(bk->state, key);
}

static void set_closed(kvt__bk *bk)
{
    pthread_mutex_lock(&bk->drain_mu);
    atomic_store(&bk->phase, KVT__BK_CLOSED);
    pthread_cond_broadcast(&bk->drain_cv);
    pthread_mutex_unlock(&bk->drain_mu);
}

/* Waits for the calls inside a closing backend, then destroys it. */
static void bk_finish(kvt__bk *bk)
{
    atomic_store(&bk->dead, 1);
    pthread_mutex_lock(&bk->drain_mu);
    while (atomic_load(&bk->active) > 0)
        pthread_cond_wait(&bk->drain_cv, &bk->drain_mu);
    pthread_mutex_unlock(&bk->drain_mu);
    bk->ops->destroy(bk->state);
}

/* The queue worker, once the queue stopped and emptied: the rest of the close. */
static void bk_queue_done(void *ud)
{
    kvt__bk *bk = ud;
    uint64_t dropped = atomic_load(&bk->abandoned);
    bk_finish(bk);
    if (dropped) /* before CLOSED: once it is, the store may be freed */
        kvt__log(&bk->store->log, KVT_LOG_WARN, bk->name,
                 "event=queue_abandoned count=%llu reason=forced_close",
                 (unsigned long long)dropped);
    set_closed(bk);
}

static void bk_free(kvt__bk *bk)
{
    kvt__wq_free(bk->wq); /* its worker has finished: joins at once */
    pthread_mutex_destroy(&bk->drain_mu);
    pthread_cond_destroy(&bk->drain_cv);
    pthread_mutex_destroy(&bk->log_mu);
    kvt__breaker_destroy(&bk->breaker);
    free(bk);
}

static bool name_in(const char (*names)[KVT_NAME_MAX], size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0)
            return true;
    return false;
}

/* mgmt held. Builds an instance; its log lines wait until kvt__bk_flush_log(). */
static int bk_new(kvt_store *s, const struct tier_type *t, unsigned rank, kvt__bk **out)
{
    kvt__bk *bk = calloc(1, sizeof *bk);
    int rc;

    *out = NULL;
    if (!bk)
        return kvt__fail(KVT_ENOMEM, "cannot allocate backend %s", t->name);
    atomic_init(&bk->refs, 1);
    pthread_mutex_init(&bk->drain_mu, NULL);
    kvt__cond_init_monotonic(&bk->drain_cv);
    pthread_mutex_init(&bk->log_mu, NULL);
    kvt__breaker_init(&bk->breaker);
    bk->defer_log = true;
    bk->ops = t->ops;
    bk->store = s;
    bk->rank = rank;
    bk->is_cpu = t->ops == &kvt__local_cpu_ops;
    bk->env.bk = bk;
    kvt__strlcpy(bk->name, t->name, sizeof bk->name);
    rc = bk->ops->create(&bk->env, s->cfg, &bk->state);
    if (rc == KVT_OK && !bk->is_cpu) {
        size_t batch = KVT_BACKEND_OPS_HAS(bk->ops, batched_put) ? KVT__WQ_BATCH_MAX : 1;
        rc = kvt__wq_new(s->write_queue_depth, batch, bk_write, bk_undo, bk_queue_done, bk,
                         &bk->wq);
        if (rc != KVT_OK)
            bk->ops->destroy(bk->state);
        else if (name_in(s->bypass, s->nbypass, bk->name))
            kvt__wq_refuse(bk->wq, true); /* bypass is kept by name across recreate */
    }
    if (rc != KVT_OK) { /* its lines are dropped: mgmt is held; the reason is the status */
        bk_free(bk);
        return rc;
    }
    *out = bk;
    return KVT_OK;
}

void kvt__bk_unref(kvt__bk *bk)
{
    if (atomic_fetch_sub_explicit(&bk->refs, 1, memory_order_acq_rel) == 1)
        bk_free(bk);
}

/* The instance stops taking work; its queue worker writes out what is queued. */
static void begin_close(kvt__bk *bk)
{
    atomic_store(&bk->closing, 1);
    atomic_store(&bk->phase, KVT__BK_DRAINING);
    if (bk->wq)
        kvt__wq_stop(bk->wq, false);
}

/* Waits until `bk` is CLOSED or `deadline`. The CPU tier has no worker: its calls never
 * block on I/O, so its closer waits for them and destroys it here (once). No lock held. */
static int wait_closed(kvt__bk *bk, const struct timespec *deadline)
{
    int rc = KVT_OK;
    if (bk->is_cpu && atomic_exchange(&bk->dead, 1) == 0) {
        bk_finish(bk);
        set_closed(bk);
    }
    pthread_mutex_lock(&bk->drain_mu);
    while (atomic_load(&bk->phase) != KVT__BK_CLOSED && rc == KVT_OK)
        if (pthread_cond_timedwait(&bk->drain_cv, &bk->drain_mu, deadline) == ETIMEDOUT &&
            atomic_load(&bk->phase) != KVT__BK_CLOSED)
            rc = KVT_ETIMEDOUT;
    pthread_mutex_unlock(&bk->drain_mu);
    return rc;
}

/* mgmt held. Takes CLOSED instances off the draining list into `out` (the caller drops
 * the references after unlocking); returns how many. */
static size_t reap(kvt_store *s, kvt__bk *out[KVT_MAX_BACKENDS])
{
    size_t n = 0, k = 0;
    for (size_t i = 0; i < s->ndraining; i++) {
        kvt__bk *bk = s->draining[i];
        if (atomic_load(&bk->phase) == KVT__BK_CLOSED)
            out[n++] = bk;
        else
            s->draining[k++] = bk;
    }
    s->ndraining = k;
    return n;
}

static void unref_all(kvt__bk *const *bks, size_t n)
{
    for (size_t i = 0; i < n; i++)
        kvt__bk_unref(bks[i]);
}

/* Locks mgmt, reaping what finished closing since the last registry operation. */
static void mgmt_lock(kvt_store *s)
{
    kvt__bk *done[KVT_MAX_BACKENDS];
    pthread_mutex_lock(&s->mgmt);
    size_t n = reap(s, done);
    if (n) { /* their last references may join threads: not under mgmt */
        pthread_mutex_unlock(&s->mgmt);
        unref_all(done, n);
        pthread_mutex_lock(&s->mgmt);
    }
}

static kvt__bk *find_draining(kvt_store *s, const char *name)
{
    for (size_t i = 0; name && i < s->ndraining; i++)
        if (strcmp(s->draining[i]->name, name) == 0)
            return s->draining[i];
    return NULL;
}

/* ------------------------------------------------------------------ snapshots */

/* Builds a snapshot of `n` backends (taking a reference to each) sorted by rank. */
static kvt__snap *snap_build(kvt_store *s, kvt__bk *const *bks, size_t n)
{
    kvt__snap *sn = calloc(1, sizeof *sn);
    if (!sn)
        return NULL;
    atomic_init(&sn->refs, 1);
    for (size_t i = 0; i < n; i++) {
        size_t j = sn->n++;
        while (j > 0 && sn->bk[j - 1]->rank > bks[i]->rank) {
            sn->bk[j] = sn->bk[j - 1];
            j--;
        }
        sn->bk[j] = bks[i];
        kvt__bk_ref(bks[i]);
    }
    for (size_t i = 0; i < sn->n; i++) {
        kvt__bk *bk = sn->bk[i];
        if (bk->is_cpu)
            sn->cpu = bk;
        if (name_in(s->bypass, s->nbypass, bk->name))
            sn->bypass |= 1u << i;
        if (s->nretrieve && !name_in(s->retrieve_locations, s->nretrieve, bk->name))
            sn->no_get |= 1u << i;
        if (s->store_location[0] && strcmp(s->store_location, bk->name) != 0)
            sn->no_put |= 1u << i;
    }
    return sn;
}

static void publish(kvt_store *s, kvt__snap *sn)
{
    pthread_rwlock_wrlock(&s->reg_lock);
    kvt__snap *old = s->snap;
    s->snap = sn;
    pthread_rwlock_unlock(&s->reg_lock);
    if (old)
        kvt__snap_put(old);
}

/* Publishes the current backends plus `add` minus `drop`; KVT_ENOMEM leaves all as is. */
static int republish(kvt_store *s, kvt__snap *cur, kvt__bk *const *add, size_t nadd,
                     const kvt__bk *drop)
{
    kvt__bk *bks[KVT_MAX_BACKENDS];
    size_t n = 0;
    for (size_t i = 0; i < cur->n; i++)
        if (cur->bk[i] != drop)
            bks[n++] = cur->bk[i];
    for (size_t i = 0; i < nadd; i++)
        bks[n++] = add[i];
    kvt__snap *sn = snap_build(s, bks, n);
    if (!sn)
        return kvt__fail(KVT_ENOMEM, "cannot allocate registry snapshot");
    publish(s, sn);
    return KVT_OK;
}

kvt__bk *kvt__snap_find(kvt__snap *sn, const char *name)
{
    if (!name)
        return NULL; /* callers report "not found" */
    for (size_t i = 0; i < sn->n; i++)
        if (strcmp(sn->bk[i]->name, name) == 0)
            return sn->bk[i];
    return NULL;
}

int kvt__bk_not_found(const char *name)
{
    return kvt__fail(KVT_ENOENT, "Backend %s not found", name ? name : "(null)");
}

size_t kvt__open_backends(kvt_store *s, kvt__bk *out[2 * KVT_MAX_BACKENDS])
{
    size_t n = 0;
    mgmt_lock(s);
    kvt__snap *sn = kvt__snap_get(s);
    for (size_t i = 0; i < sn->n; i++)
        out[n++] = sn->bk[i];
    for (size_t i = 0; i < s->ndraining; i++)
        out[n++] = s->draining[i];
    for (size_t i = 0; i < n; i++)
        kvt__bk_ref(out[i]);
    pthread_mutex_unlock(&s->mgmt);
    kvt__snap_put(sn);
    return n;
}

/* LocalDisk and Remote read into the CPU tier's buffers: refuse to close it under them. */
static int check_cpu_dependants(kvt__snap *sn, const kvt__bk *bk)
{
    char users[256] = "";
    size_t len = 0;
    if (!bk->is_cpu)
        return KVT_OK;
    for (size_t i = 0; i < sn->n; i++) {
        if (!(sn->bk[i]->ops->flags & KVT_BACKEND_USES_CPU_BUFFERS))
            continue;
        int w = snprintf(users + len, sizeof users - len, "%s%s", len ? ", " : "", sn->bk[i]->name);
        if (w > 0 && (size_t)w < sizeof users - len)
            len += (size_t)w;
    }
    if (len)
        return kvt__fail(KVT_EBUSY, "Backend %s is in use by %s", bk->name, users);
    return KVT_OK;
}

static void info_set(kvt_backend_info *info, kvt__bk *bk)
{
    kvt__strlcpy(info->name, bk->name, sizeof info->name);
    kvt__strlcpy(info->class_name, bk->ops->type_name, sizeof info->class_name);
    info->state = atomic_load(&bk->phase) == KVT__BK_ACTIVE ? KVT_BACKEND_ACTIVE
                                                             : KVT_BACKEND_DRAINING;
    info->pending = bk->wq ? kvt__wq_pending(bk->wq) : 0;
}

/* ------------------------------------------------------------------ operations */

int kvt_backends_list(kvt_store *s, kvt_backend_info *out, size_t max, size_t *n)
{
    kvt__bk *bks[2 * KVT_MAX_BACKENDS];
    if (n)
        *n = 0;
    if (!s || (!out && max))
        return kvt__fail(KVT_EINVAL, "kvt_backends_list: store or out is NULL");
    size_t m = kvt__open_backends(s, bks);
    for (size_t i = 1; i < m; i++) /* draining ones into tier order too */
        for (size_t j = i; j > 0 && bks[j - 1]->rank > bks[j]->rank; j--) {
            kvt__bk *t = bks[j];
            bks[j] = bks[j - 1];
            bks[j - 1] = t;
        }
    for (size_t i = 0; i < m; i++) {
        if (i < max)
            info_set(&out[i], bks[i]);
        kvt__bk_unref(bks[i]);
    }
    if (n)
        *n = m;
    return KVT_OK;
}

/* The open backend (active or draining) named `name`, with a reference; NULL (and the
 * "not found" detail) when there is none. */
static kvt__bk *find_open(kvt_store *s, const char *name)
{
    kvt__bk *bks[2 * KVT_MAX_BACKENDS], *bk = NULL;
    size_t m = kvt__open_backends(s, bks);
    for (size_t i = 0; i < m; i++) {
        if (!bk && name && strcmp(bks[i]->name, name) == 0)
            bk = bks[i];
        else
            kvt__bk_unref(bks[i]);
    }
    if (!bk)
        kvt__bk_not_found(name);
    return bk;
}

int kvt_backend_get_stats(kvt_store *s, const char *name, kvt_backend_stats *out)
{
    if (!s || !out)
        return kvt__fail(KVT_EINVAL, "kvt_backend_get_stats: store or out is NULL");
    memset(out, 0, sizeof *out);
    kvt__bk *bk = find_open(s, name);
    if (!bk)
        return KVT_ENOENT;
    if (kvt__bk_enter_any(bk)) {
        if (KVT_BACKEND_OPS_HAS(bk->ops, stats))
            bk->ops->stats(bk->state, out);
        kvt__bk_leave(bk);
    }
    out->queued = bk->wq ? kvt__wq_pending(bk->wq) : 0;
    out->hits = atomic_load(&bk->hits);
    out->misses = atomic_load(&bk->misses);
    out->puts = atomic_load(&bk->puts);
    out->put_failures = atomic_load(&bk->put_failures);
    out->skipped = atomic_load(&bk->skipped);
    out->cancelled = atomic_load(&bk->cancelled);
    kvt__bk_unref(bk);
    return KVT_OK;
}

int kvt_backend_get_health(kvt_store *s, const char *name, kvt_backend_health *out)
{
    if (!s || !out)
        return kvt__fail(KVT_EINVAL, "kvt_backend_get_health: store or out is NULL");
    memset(out, 0, sizeof *out);
    kvt__bk *bk = find_open(s, name);
    if (!bk)
        return KVT_ENOENT;
    kvt__breaker_report(&bk->breaker, out);
    pthread_mutex_lock(&s->mgmt);
    out->bypass_manual = name_in(s->bypass, s->nbypass, bk->name);
    pthread_mutex_unlock(&s->mgmt);
    kvt__bk_unref(bk);
    return KVT_OK;
}

/* Unpublishes `name` and starts its close, or finds it already draining (or closed since
 * the last registry operation: a resumed close then succeeds at once); `*bk` gets a
 * reference. */
static int start_close(kvt_store *s, const char *name, kvt__bk **out)
{
    pthread_mutex_lock(&s->mgmt); /* no reaping before the lookup */
    kvt__snap *cur = kvt__snap_get(s);
    kvt__bk *bk = kvt__snap_find(cur, name);
    int rc = KVT_OK;
    if (bk) {
        rc = check_cpu_dependants(cur, bk);
        if (rc == KVT_OK)
            rc = republish(s, cur, NULL, 0, bk);
        if (rc == KVT_OK) {
            begin_close(bk);
            kvt__bk_ref(bk);
            s->draining[s->ndraining++] = bk; /* one per type at most: it fits */
        }
    } else if (!(bk = find_draining(s, name))) {
        rc = kvt__bk_not_found(name);
    }
    if (rc == KVT_OK) {
        kvt__bk_ref(bk);
        *out = bk;
    }
    pthread_mutex_unlock(&s->mgmt);
    kvt__snap_put(cur);
    return rc;
}

int kvt_backend_close_timed(kvt_store *s, const char *name, int64_t timeout_ms, unsigned flags)
{
    kvt__bk *bk;
    if (!s || !name)
        return kvt__fail(KVT_EINVAL, "kvt_backend_close_timed: store or name is NULL");
    if (flags & ~KVT_CLOSE_FORCE)
        return kvt__fail(KVT_EINVAL, "kvt_backend_close_timed: unknown flags 0x%x", flags);
    struct timespec deadline = kvt__deadline(timeout_ms);
    int rc = start_close(s, name, &bk);
    if (rc != KVT_OK)
        return rc;
    if ((flags & KVT_CLOSE_FORCE) && bk->wq)
        kvt__wq_stop(bk->wq, true);
    rc = wait_closed(bk, &deadline);
    size_t pending = bk->wq ? kvt__wq_pending(bk->wq) : 0;
    kvt__bk_unref(bk);
    if (rc == KVT_OK) {
        mgmt_lock(s); /* reaps it */
        pthread_mutex_unlock(&s->mgmt);
        kvt__log(&s->log, KVT_LOG_INFO, "store", "event=backend_closed backend=%s", name);
        return KVT_OK;
    }
    kvt__log(&s->log, KVT_LOG_WARN, "store",
             "event=backend_draining backend=%s pending=%zu timeout_ms=%lld", name, pending,
             (long long)timeout_ms);
    return kvt__fail(KVT_ETIMEDOUT, "Backend %s is still draining after %lld ms (%zu writes "
                     "pending); close it again to keep waiting, or force it",
                     name, (long long)timeout_ms, pending);
}

int kvt_backend_close(kvt_store *s, const char *name)
{
    if (!s)
        return kvt__fail(KVT_EINVAL, "kvt_backend_close: store is NULL");
    return kvt_backend_close_timed(s, name, atomic_load(&s->close_timeout_ms), 0);
}

/* Is there (or will there be) a CPU tier for a type that needs one? */
static int check_cpu_present(const struct tier_type *t, bool have_cpu)
{
    if ((t->ops->flags & KVT_BACKEND_USES_CPU_BUFFERS) && !have_cpu)
        return kvt__fail(KVT_ECONFIG, "%s needs LocalCPUBackend for its buffers; create it first "
                                      "(max_local_cpu_size > 0)", t->name);
    return KVT_OK;
}

static int check_not_draining(kvt_store *s, const char *name)
{
    kvt__bk *bk = find_draining(s, name);
    if (!bk)
        return KVT_OK;
    return kvt__fail(KVT_EBUSY, "Backend %s is still draining (%zu writes pending); close it "
                     "again to wait for it, or force it", name,
                     bk->wq ? kvt__wq_pending(bk->wq) : (size_t)0);
}

/* Creates type t at `rank` after the checks every new instance passes. mgmt held. */
static int make_one(kvt_store *s, const struct tier_type *t, unsigned rank, bool have_cpu,
                    kvt__bk **out)
{
    int rc = check_not_draining(s, t->name);
    if (rc == KVT_OK)
        rc = check_cpu_present(t, have_cpu);
    if (rc == KVT_OK)
        rc = bk_new(s, t, rank, out);
    return rc;
}

/* Closes instances never published (a failed create): nothing queued, nothing inside. */
static void discard(kvt__bk *const *bks, size_t n)
{
    struct timespec never = kvt__deadline(-1);
    for (size_t i = 0; i < n; i++) {
        kvt__bk_flush_log(bks[i]);
        begin_close(bks[i]);
        wait_closed(bks[i], &never);
        kvt__bk_unref(bks[i]);
    }
}

/* mgmt held. Creates every wanted, absent type; all or nothing. On success `made` holds
 * a reference to each new instance for the caller. */
static int create_locked(kvt_store *s, kvt__snap *cur, kvt__bk **made, size_t *nmade)
{
    struct tier_type types[MAX_TYPES];
    size_t ntypes = list_types(types);
    bool have_cpu = cur->cpu != NULL;
    int rc = KVT_OK;

    *nmade = 0;
    for (size_t i = 0; i < ntypes && rc == KVT_OK; i++) {
        const struct tier_type *t = &types[i];
        if (kvt__snap_find(cur, t->name) || !t->wanted(s->cfg))
            continue;
        if (cur->n + *nmade == KVT_MAX_BACKENDS)
            rc = kvt__fail(KVT_ENOSPC, "too many backends");
        if (rc == KVT_OK)
            rc = make_one(s, t, (unsigned)i, have_cpu, &made[*nmade]);
        if (rc == KVT_OK)
            have_cpu |= made[(*nmade)++]->is_cpu;
    }
    if (rc == KVT_OK)
        rc = republish(s, cur, made, *nmade, NULL);
    return rc;
}

/* Sends the held-back lines of new instances, names them in `created`, drops the refs. */
static void report_created(kvt_store *s, kvt__bk *const *made, size_t nmade,
                           kvt_backend_info *created, size_t max)
{
    for (size_t i = 0; i < nmade; i++) {
        kvt__bk_flush_log(made[i]);
        if (i < max)
            info_set(&created[i], made[i]);
        kvt__log(&s->log, KVT_LOG_INFO, "store", "event=backend_created backend=%s",
                 made[i]->name);
        kvt__bk_unref(made[i]);
    }
}

int kvt_backends_create(kvt_store *s, kvt_backend_info *created, size_t max, size_t *n)
{
    kvt__bk *made[KVT_MAX_BACKENDS] = {0};
    size_t nmade = 0;
    if (n)
        *n = 0;
    if (!s || (!created && max))
        return kvt__fail(KVT_EINVAL, "kvt_backends_create: store or created is NULL");
    mgmt_lock(s);
    kvt__snap *cur = kvt__snap_get(s);
    int rc = create_locked(s, cur, made, &nmade);
    pthread_mutex_unlock(&s->mgmt);
    kvt__snap_put(cur);
    if (rc != KVT_OK) {
        char detail[512]; /* discarding logs; keep the reason */
        kvt__strlcpy(detail, kvt_last_error(), sizeof detail);
        discard(made, nmade);
        return kvt__fail(rc, "%s", detail);
    }
    report_created(s, made, nmade, created, max);
    if (n)
        *n = nmade;
    return KVT_OK;
}

/* Rank of the type named `name`; false if there is none. */
static bool type_rank(const struct tier_type *types, size_t ntypes, const char *name, unsigned *rank)
{
    for (size_t i = 0; i < ntypes; i++)
        if (strcmp(types[i].name, name) == 0) {
            *rank = (unsigned)i;
            return true;
        }
    return false;
}

int kvt_backend_recreate(kvt_store *s, const char *name)
{
    struct tier_type types[MAX_TYPES];
    kvt__bk *fresh = NULL;
    unsigned rank = 0;

    if (!s || !name)
        return kvt__fail(KVT_EINVAL, "kvt_backend_recreate: store or name is NULL");
    int rc = kvt_backend_close(s, name); /* KVT_ENOENT / KVT_ETIMEDOUT stop here */
    if (rc != KVT_OK)
        return rc;
    mgmt_lock(s);
    size_t ntypes = list_types(types); /* types are never unregistered */
    kvt__snap *cur = kvt__snap_get(s);
    if (!type_rank(types, ntypes, name, &rank))
        rc = kvt__bk_not_found(name);
    else if (kvt__snap_find(cur, name))
        rc = KVT_OK; /* another create made it meanwhile: it is new */
    else if (!types[rank].wanted(s->cfg))
        rc = kvt__fail(KVT_ECONFIG, "Backend %s was closed; the current config no longer asks "
                                    "for it", name);
    else if ((rc = make_one(s, &types[rank], rank, cur->cpu != NULL, &fresh)) == KVT_OK &&
             (rc = republish(s, cur, &fresh, 1, NULL)) != KVT_OK) {
        pthread_mutex_unlock(&s->mgmt);
        kvt__snap_put(cur);
        discard(&fresh, 1);
        return rc;
    }
    pthread_mutex_unlock(&s->mgmt);
    kvt__snap_put(cur);
    if (fresh)
        report_created(s, &fresh, 1, NULL, 0);
    kvt__log(&s->log, rc == KVT_OK ? KVT_LOG_INFO : KVT_LOG_WARN, "store",
             "event=backend_recreated backend=%s status=%s", name, kvt_status_name(rc));
    return rc;
}

int kvt_backend_set_bypass(kvt_store *s, const char *name, bool on, bool *was)
{
    if (!s || !name)
        return kvt__fail(KVT_EINVAL, "kvt_backend_set_bypass: store or name is NULL");
    mgmt_lock(s);
    kvt__snap *cur = kvt__snap_get(s);
    kvt__bk *bk = kvt__snap_find(cur, name);
    int rc = bk ? KVT_OK : kvt__bk_not_found(name);
    if (rc == KVT_OK) {
        size_t i = 0;
        while (i < s->nbypass && strcmp(s->bypass[i], name) != 0)
            i++;
        bool present = i < s->nbypass;
        char saved[KVT_MAX_BACKENDS][KVT_NAME_MAX];
        size_t nsaved = s->nbypass;
        memcpy(saved, s->bypass, sizeof saved);
        if (was)
            *was = present;
        if (on && !present)
            kvt__strlcpy(s->bypass[s->nbypass++], name, KVT_NAME_MAX);
        if (!on && present)
            memmove(s->bypass[i], s->bypass[i + 1], (--s->nbypass - i) * KVT_NAME_MAX);
        rc = republish(s, cur, NULL, 0, NULL);
        if (rc != KVT_OK) { /* the snapshot in force still says the old thing */
            memcpy(s->bypass, saved, sizeof saved);
            s->nbypass = nsaved;
        } else if (bk->wq) {
            kvt__wq_refuse(bk->wq, on); /* puts waiting on its full queue give up now */
        }
    }
    pthread_mutex_unlock(&s->mgmt);
    kvt__snap_put(cur);
    if (rc == KVT_OK)
        kvt__log(&s->log, KVT_LOG_INFO, "store", "event=bypass backend=%s on=%d", name, on);
    return rc;
}

int kvt_bypass_list(kvt_store *s, kvt_backend_info *out, size_t max, size_t *n)
{
    if (n)
        *n = 0;
    if (!s || (!out && max))
        return kvt__fail(KVT_EINVAL, "kvt_bypass_list: store or out is NULL");
    kvt__snap *sn = kvt__snap_get(s);
    size_t k = 0;
    for (size_t i = 0; i < sn->n; i++) {
        if (!(sn->bypass & (1u << i)))
            continue;
        if (k < max)
            info_set(&out[k], sn->bk[i]);
        k++;
    }
    if (n)
        *n = k;
    kvt__snap_put(sn);
    return KVT_OK;
}

/* Store close: every backend, lowest tier first, gets backend_close_timeout_ms; what is
 * still queued then is abandoned, and calls still inside are waited for (the store is
 * about to be freed). */
void kvt__registry_close_all(kvt_store *s)
{
    kvt__bk *bks[KVT_MAX_BACKENDS];
    size_t n = 0;
    mgmt_lock(s);
    kvt__snap *cur = kvt__snap_get(s);
    kvt__snap *empty = snap_build(s, NULL, 0);
    if (empty) /* without it the old snapshot stays published: no caller may run now anyway */
        publish(s, empty);
    for (size_t i = cur->n; i-- > 0;) {
        begin_close(cur->bk[i]);
        kvt__bk_ref(cur->bk[i]);
        s->draining[s->ndraining++] = cur->bk[i];
    }
    for (size_t i = 0; i < s->ndraining; i++) {
        bks[n] = s->draining[i];
        kvt__bk_ref(bks[n++]);
    }
    pthread_mutex_unlock(&s->mgmt);
    kvt__snap_put(cur);
    struct timespec never = kvt__deadline(-1);
    for (size_t i = 0; i < n; i++) {
        struct timespec deadline = kvt__deadline(atomic_load(&s->close_timeout_ms));
        if (wait_closed(bks[i], &deadline) != KVT_OK) {
            kvt__wq_stop(bks[i]->wq, true);
            wait_closed(bks[i], &never);
        }
        kvt__bk_unref(bks[i]);
    }
    mgmt_lock(s); /* reaps them all */
    pthread_mutex_unlock(&s->mgmt);
}
