/* kvtier — backend types and the registry of backend instances.
 *
 * Types: the four built-in tiers, in LMCache's tier order, then types registered through
 * kvt_register_backend_type() in registration order. A type's position is its rank, and
 * every snapshot keeps its backends sorted by rank, so create and recreate put a backend
 * back where it belongs (LMCache appends at the end). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

/* ------------------------------------------------------------------ types */

static bool conf_set(const kvt_config *cfg, const char *key)
{
    const char *v = NULL;
    return kvt_config_get_str(cfg, key, &v) == KVT_OK && v && *v;
}

static bool conf_positive(const kvt_config *cfg, const char *key)
{
    double v = 0;
    return kvt_config_get_float(cfg, key, &v) == KVT_OK && v > 0;
}

static bool disk_wanted(const kvt_config *cfg)
{
    return conf_set(cfg, "local_disk") && conf_positive(cfg, "max_local_disk_size");
}
static bool gds_wanted(const kvt_config *cfg) { return conf_set(cfg, "gds_path"); }
static bool remote_wanted(const kvt_config *cfg) { return conf_set(cfg, "remote_url"); }

struct tier_type {
    const char *name;
    bool (*wanted)(const kvt_config *cfg); /* rows with ops use ops->wanted */
    const struct kvt_backend_ops *ops;     /* NULL: not built into this version */
};

/* Built-in tiers; a NULL ops row is a tier the config may ask for but this build lacks. */
static const struct tier_type builtins[] = {
    {"LocalCPUBackend", NULL, &kvt__local_cpu_ops},
    {"LocalDiskBackend", disk_wanted, NULL},
    {"GdsBackend", gds_wanted, NULL},
    {"RemoteBackend", remote_wanted, NULL},
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
        if (strcmp(builtins[i].name, ops->type_name) == 0)
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

/* All types in rank order; returns how many. */
static size_t list_types(struct tier_type out[MAX_TYPES])
{
    size_t n = 0;
    for (; n < KVT__ARRAY_LEN(builtins); n++) {
        out[n] = builtins[n];
        if (out[n].ops)
            out[n].wanted = out[n].ops->wanted;
    }
    pthread_mutex_lock(&types_mu);
    for (size_t i = 0; i < ncustom; i++, n++)
        out[n] = (struct tier_type){custom_types[i]->type_name, custom_types[i]->wanted,
                                    custom_types[i]};
    pthread_mutex_unlock(&types_mu);
    return n;
}

/* ------------------------------------------------------------------ instances */

static void bk_write(void *ud, const kvt_key *key, kvt_obj *obj)
{
    kvt__bk *bk = ud;
    kvt_store *s = bk->store;
    int rc = bk->ops->put(bk->state, key, obj);
    if (rc == KVT_OK) {
        atomic_fetch_add(&bk->puts, 1);
        atomic_fetch_add(&s->st.wt_done, 1);
    } else {
        atomic_fetch_add(&bk->put_failures, 1);
        atomic_fetch_add(&s->st.wt_failed, 1);
        kvt__log(&s->log, KVT_LOG_WARN, bk->name, "event=write_through_failed status=%s",
                 kvt_status_name(rc));
    }
    kvt_obj_release(obj);
}

static void bk_free(kvt__bk *bk)
{
    pthread_mutex_destroy(&bk->drain_mu);
    pthread_cond_destroy(&bk->drain_cv);
    free(bk);
}

static int bk_new(kvt_store *s, const struct tier_type *t, unsigned rank, kvt__bk **out)
{
    kvt__bk *bk = calloc(1, sizeof *bk);
    int rc;

    *out = NULL;
    if (!bk)
        return kvt__fail(KVT_ENOMEM, "cannot allocate backend %s", t->name);
    atomic_init(&bk->refs, 1);
    pthread_mutex_init(&bk->drain_mu, NULL);
    pthread_cond_init(&bk->drain_cv, NULL);
    bk->ops = t->ops;
    bk->store = s;
    bk->rank = rank;
    bk->is_cpu = t->ops == &kvt__local_cpu_ops;
    bk->env.bk = bk;
    kvt__strlcpy(bk->name, t->name, sizeof bk->name);
    rc = bk->ops->create(&bk->env, s->cfg, &bk->state);
    if (rc == KVT_OK && !bk->is_cpu) {
        rc = kvt__wq_new(s->write_queue_depth, bk_write, bk, &bk->wq);
        if (rc != KVT_OK)
            bk->ops->destroy(bk->state);
    }
    if (rc != KVT_OK) {
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

/* Stops new work, waits for calls in flight, writes out the queue, then destroys. */
static void bk_close(kvt__bk *bk)
{
    atomic_store(&bk->closing, 1);
    pthread_mutex_lock(&bk->drain_mu);
    while (atomic_load(&bk->active) > 0)
        pthread_cond_wait(&bk->drain_cv, &bk->drain_mu);
    pthread_mutex_unlock(&bk->drain_mu);
    if (bk->wq)
        kvt__wq_drain_free(bk->wq);
    bk->ops->destroy(bk->state);
}

/* ------------------------------------------------------------------ snapshots */

static bool name_in(const char (*names)[KVT_NAME_MAX], size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0)
            return true;
    return false;
}

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
        atomic_fetch_add(&bks[i]->refs, 1);
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

/* Unpublishes and closes backend `name` of `cur`, which keeps the struct alive for the
 * caller (`*closed`). mgmt held. */
static int close_locked(kvt_store *s, kvt__snap *cur, const char *name, kvt__bk **closed)
{
    kvt__bk *bk = kvt__snap_find(cur, name);
    int rc = bk ? check_cpu_dependants(cur, bk) : kvt__bk_not_found(name);
    if (rc == KVT_OK)
        rc = republish(s, cur, NULL, 0, bk);
    if (rc != KVT_OK)
        return rc;
    bk_close(bk); /* no data-path call can enter it any more */
    *closed = bk;
    return KVT_OK;
}

static void info_set(kvt_backend_info *info, const kvt__bk *bk)
{
    kvt__strlcpy(info->name, bk->name, sizeof info->name);
    kvt__strlcpy(info->class_name, bk->ops->type_name, sizeof info->class_name);
}

/* ------------------------------------------------------------------ operations */

int kvt_backends_list(kvt_store *s, kvt_backend_info *out, size_t max, size_t *n)
{
    kvt__snap *sn = kvt__snap_get(s);
    for (size_t i = 0; i < sn->n && i < max; i++)
        info_set(&out[i], sn->bk[i]);
    if (n)
        *n = sn->n;
    kvt__snap_put(sn);
    return KVT_OK;
}

int kvt_backend_close(kvt_store *s, const char *name)
{
    kvt__bk *bk;
    pthread_mutex_lock(&s->mgmt);
    kvt__snap *cur = kvt__snap_get(s);
    int rc = close_locked(s, cur, name, &bk);
    kvt__snap_put(cur);
    pthread_mutex_unlock(&s->mgmt);
    if (rc == KVT_OK)
        kvt__log(&s->log, KVT_LOG_INFO, "store", "event=backend_closed backend=%s", name);
    return rc;
}

/* Is there (or will there be) a CPU tier for a type that needs one? */
static int check_cpu_present(const struct tier_type *t, bool have_cpu)
{
    if ((t->ops->flags & KVT_BACKEND_USES_CPU_BUFFERS) && !have_cpu)
        return kvt__fail(KVT_ECONFIG, "%s needs LocalCPUBackend for its buffers; create it first "
                                      "(max_local_cpu_size > 0)", t->name);
    return KVT_OK;
}

static int check_built(const struct tier_type *t)
{
    if (!t->ops)
        return kvt__fail(KVT_ENOTSUP, "the config asks for %s, which this build of kvtier lacks",
                         t->name);
    return KVT_OK;
}

/* mgmt held. Creates every wanted, absent type; all or nothing. */
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
        rc = check_built(t);
        if (rc == KVT_OK)
            rc = check_cpu_present(t, have_cpu);
        if (rc == KVT_OK && cur->n + *nmade == KVT_MAX_BACKENDS)
            rc = kvt__fail(KVT_ENOSPC, "too many backends");
        if (rc == KVT_OK)
            rc = bk_new(s, t, (unsigned)i, &made[*nmade]);
        if (rc == KVT_OK)
            have_cpu |= made[(*nmade)++]->is_cpu;
    }
    if (rc == KVT_OK)
        rc = republish(s, cur, made, *nmade, NULL);
    if (rc != KVT_OK) {
        while (*nmade > 0) {
            kvt__bk *bk = made[--*nmade];
            bk_close(bk);
            kvt__bk_unref(bk);
        }
        return rc;
    }
    for (size_t i = 0; i < *nmade; i++)
        kvt__bk_unref(made[i]); /* the snapshot holds them now */
    return KVT_OK;
}

int kvt_backends_create(kvt_store *s, kvt_backend_info *created, size_t max, size_t *n)
{
    kvt__bk *made[KVT_MAX_BACKENDS] = {0};
    kvt_backend_info info[KVT_MAX_BACKENDS];
    size_t nmade = 0;
    pthread_mutex_lock(&s->mgmt);
    kvt__snap *cur = kvt__snap_get(s);
    int rc = create_locked(s, cur, made, &nmade);
    for (size_t i = 0; i < nmade; i++)
        info_set(&info[i], made[i]); /* the new snapshot keeps them alive while mgmt is held */
    kvt__snap_put(cur);
    pthread_mutex_unlock(&s->mgmt);
    for (size_t i = 0; i < nmade; i++) {
        if (i < max)
            created[i] = info[i];
        kvt__log(&s->log, KVT_LOG_INFO, "store", "event=backend_created backend=%s",
                 info[i].name);
    }
    if (n)
        *n = nmade;
    return rc;
}

int kvt_backend_recreate(kvt_store *s, const char *name)
{
    struct tier_type types[MAX_TYPES];
    kvt__bk *old, *fresh = NULL;

    pthread_mutex_lock(&s->mgmt);
    list_types(types); /* under mgmt: includes every type an instance was built from */
    kvt__snap *cur = kvt__snap_get(s);
    int rc = close_locked(s, cur, name, &old);
    if (rc == KVT_OK) {
        const struct tier_type *t = &types[old->rank]; /* types are never unregistered */
        bool have_cpu = cur->cpu && cur->cpu != old;
        if (!t->wanted(s->cfg))
            rc = kvt__fail(KVT_ECONFIG, "Backend %s was closed; the current config no longer "
                                        "asks for it", name);
        if (rc == KVT_OK)
            rc = check_cpu_present(t, have_cpu);
        if (rc == KVT_OK)
            rc = bk_new(s, t, old->rank, &fresh);
        kvt__snap_put(cur);
        cur = kvt__snap_get(s); /* the one close_locked published */
        if (rc == KVT_OK) {
            rc = republish(s, cur, &fresh, 1, NULL);
            if (rc != KVT_OK)
                bk_close(fresh);
            kvt__bk_unref(fresh);
        }
    }
    kvt__snap_put(cur);
    pthread_mutex_unlock(&s->mgmt);
    kvt__log(&s->log, rc == KVT_OK ? KVT_LOG_INFO : KVT_LOG_WARN, "store",
             "event=backend_recreated backend=%s status=%s", name, kvt_status_name(rc));
    return rc;
}

int kvt_backend_set_bypass(kvt_store *s, const char *name, bool on, bool *was)
{
    pthread_mutex_lock(&s->mgmt);
    kvt__snap *cur = kvt__snap_get(s);
    int rc = kvt__snap_find(cur, name) ? KVT_OK : kvt__bk_not_found(name);
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
        }
    }
    kvt__snap_put(cur);
    pthread_mutex_unlock(&s->mgmt);
    if (rc == KVT_OK)
        kvt__log(&s->log, KVT_LOG_INFO, "store", "event=bypass backend=%s on=%d", name, on);
    return rc;
}

int kvt_bypass_list(kvt_store *s, kvt_backend_info *out, size_t max, size_t *n)
{
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

void kvt__registry_close_all(kvt_store *s)
{
    pthread_mutex_lock(&s->mgmt);
    kvt__snap *cur = kvt__snap_get(s);
    kvt__snap *empty = snap_build(s, NULL, 0);
    if (empty)
        publish(s, empty);
    /* Lowest tier first: their queues may still hold objects from the CPU pool. */
    for (size_t i = cur->n; i-- > 0;)
        bk_close(cur->bk[i]);
    kvt__snap_put(cur);
    pthread_mutex_unlock(&s->mgmt);
}
