/* kvtier — the store, its backend instances and registry snapshots. Internal.
 *
 * Lock protocol (docs/architecture.md has the long form):
 * - s->reg_lock (rwlock, writer-preferred) guards only the s->snap pointer. The data path
 *   takes the read side just long enough to take a reference to the current snapshot.
 * - A snapshot is immutable: the tier-ordered backends plus derived masks (bypass, get
 *   and put filters). Registry changes publish a new one under the write side.
 * - Each backend counts the data-path calls inside it (`active`). A call enters only while
 *   the backend is not closing (kvt__bk_enter), or, for remove/clear/stats, while it is not
 *   dead (kvt__bk_enter_any). Close unpublishes the backend, marks it closing, refuses
 *   pushes to its queue and lists it in s->draining; its queue worker then writes (or, when
 *   forced, drops) what is queued, marks it dead, waits for `active` to reach zero and
 *   destroys it. Closers wait for that with a deadline and without any lock.
 * - s->mgmt serialises registry operations for moments only: it guards s->cfg, the bypass
 *   names and s->draining, and is never held while waiting for a tier. No log line is
 *   emitted under it or under reg_lock (backends' lines from create() are held back). */
#ifndef KVTIER_STORE_H
#define KVTIER_STORE_H

#include <pthread.h>
#include <stdatomic.h>

#include "breaker.h"
#include "internal.h"
#include "log.h"
#include "obj.h"
#include "wqueue.h"

struct kvt_backend_env {
    struct kvt__bk *bk;
};

enum { KVT__BK_ACTIVE, KVT__BK_DRAINING, KVT__BK_CLOSED };

#define KVT__DEFER_LINES 16

typedef struct kvt__bk {
    atomic_uint refs;   /* snapshots, the draining list, pins and callers holding the struct */
    atomic_int closing; /* set once: kvt__bk_enter() fails from then on */
    atomic_int dead;    /* set once before destroy: kvt__bk_enter_any() fails too */
    atomic_long active; /* data-path calls inside the backend */
    atomic_int phase;   /* KVT__BK_* */
    pthread_mutex_t drain_mu;
    pthread_cond_t drain_cv; /* active reached 0, or phase became CLOSED; monotonic clock */
    const struct kvt_backend_ops *ops;
    void *state;
    kvt__wq *wq; /* write-through queue; NULL for the CPU tier (synchronous) */
    struct kvt_backend_env env;
    struct kvt_store *store;
    unsigned rank; /* tier order */
    bool is_cpu;
    char name[KVT_NAME_MAX];
    atomic_uint_fast64_t hits, misses, puts, put_failures, skipped, cancelled, abandoned;
    kvt__breaker breaker; /* unused for the CPU tier */
    /* Lines the backend logged while the store held mgmt (create), sent after. */
    pthread_mutex_t log_mu;
    bool defer_log;
    size_t ndeferred;
    struct {
        kvt_log_level level;
        char msg[256];
    } deferred[KVT__DEFER_LINES];
} kvt__bk;

typedef struct kvt__snap {
    atomic_uint refs;
    size_t n;
    kvt__bk *bk[KVT_MAX_BACKENDS]; /* tier order */
    kvt__bk *cpu;                  /* LocalCPUBackend, if present */
    uint32_t bypass;               /* bit i: bk[i] is bypassed */
    uint32_t no_get;               /* bit i: excluded by retrieve_locations */
    uint32_t no_put;               /* bit i: excluded by store_location */
} kvt__snap;

struct kvt_store {
    pthread_rwlock_t reg_lock;
    kvt__snap *snap;
    pthread_mutex_t mgmt;
    kvt_config *cfg; /* guarded by mgmt */
    char bypass[KVT_MAX_BACKENDS][KVT_NAME_MAX]; /* names, guarded by mgmt */
    size_t nbypass;
    kvt__bk *draining[KVT_MAX_BACKENDS]; /* closed, not yet reaped; guarded by mgmt */
    size_t ndraining;
    atomic_bool frozen;
    kvt_log_handler log;
    kvt__pool *pool; /* the CPU budget; NULL without max_local_cpu_size */
    /* Bumped by every remove and clear before it touches a tier: a promotion that read
     * its chunk under an older value does not reinstate it (checked under the CPU lock). */
    atomic_uint_fast64_t inval_gen;
    atomic_uint inval_busy; /* removes and clears in progress: no promotion starts meanwhile */
    atomic_int_fast64_t wq_timeout_ms, close_timeout_ms; /* runtime-mutable */
    atomic_int_fast64_t breaker_failures, breaker_backoff_ms, breaker_backoff_max_ms;
    atomic_uint_fast64_t conf_version;
    /* The health thread probes tiers whose breaker is open (breaker.h). */
    pthread_t health_thread;
    bool health_started;
    bool health_stop, health_kicked; /* guarded by health_mu */
    pthread_mutex_t health_mu;
    pthread_cond_t health_cv;
    /* Fixed at open: not runtime-mutable keys. */
    uint32_t chunk_size;
    size_t write_queue_depth;
    char store_location[KVT_NAME_MAX];
    char retrieve_locations[KVT_MAX_BACKENDS][KVT_NAME_MAX];
    size_t nretrieve;
    struct {
        atomic_uint_fast64_t store_requests, retrieve_requests, lookup_requests;
        atomic_uint_fast64_t stored_chunks, retrieved_chunks, promotions;
        atomic_uint_fast64_t stored_tokens, retrieved_tokens;
        atomic_uint_fast64_t lookup_keys, lookup_hits;
        atomic_uint_fast64_t wt_enqueued, wt_done, wt_failed, wt_skipped, wt_cancelled;
        atomic_uint_fast64_t puts_frozen, puts_unstored, get_unstaged;
    } st;
};

/* Counts the result of a call into a lower tier with its breaker (store.c); a failure
 * that opens it is logged and wakes the health thread. No lock held. */
void kvt__bk_result(kvt__bk *bk, int status);

/* Snapshots (store.c). */
kvt__snap *kvt__snap_get(kvt_store *s);
void kvt__snap_put(kvt__snap *sn);
/* Backend entry/exit around every data-path call. */
bool kvt__bk_enter(kvt__bk *bk);
bool kvt__bk_enter_any(kvt__bk *bk);
void kvt__bk_leave(kvt__bk *bk);
void kvt__bk_ref(kvt__bk *bk);
void kvt__bk_unref(kvt__bk *bk);

/* Registry (registry.c). */
void kvt__registry_close_all(kvt_store *s);
/* The backend named `name` (NULL for a NULL name) in `sn`. */
kvt__bk *kvt__snap_find(kvt__snap *sn, const char *name);
/* KVT_ENOENT with the detail "Backend <name> not found" (LMCache's text). */
int kvt__bk_not_found(const char *name);
/* Is `name` a backend type (built in, even if not in this build, or registered)? */
bool kvt__type_known(const char *name);
/* Every backend open now, active ones in tier order then draining ones, each with a
 * reference the caller drops with kvt__bk_unref(). Returns how many. */
size_t kvt__open_backends(kvt_store *s, kvt__bk *out[2 * KVT_MAX_BACKENDS]);
/* Sends the lines a backend logged while they were held back. No lock held. */
void kvt__bk_flush_log(kvt__bk *bk);

/* The built-in CPU tier (backends/local_cpu). */
extern const struct kvt_backend_ops kvt__local_cpu_ops;
/* The built-in disk tier (backends/local_disk). */
extern const struct kvt_backend_ops kvt__local_disk_ops;
/* GdsBackend (backends/gds): LMCache's GDS files, cuFile loaded at run time or compat. */
extern const struct kvt_backend_ops kvt__gds_ops;
/* RemoteBackend (backends/remote): fs://, redis://, unix:// connectors. */
extern const struct kvt_backend_ops kvt__remote_ops;
int kvt__local_cpu_alloc(void *state, size_t size, const kvt_chunk_meta *meta, kvt_obj **out);
bool kvt__local_cpu_owns(void *state, const kvt_obj *obj);
bool kvt__local_cpu_stores(void *state);
/* Inserts `obj` unless *gen moved past `seen` (a remove or clear ran since the read). */
int kvt__local_cpu_promote(void *state, const kvt_key *key, kvt_obj *obj,
                           const atomic_uint_fast64_t *gen, uint64_t seen);
/* Pins the leading stored keys; ids[i] identifies the entry pinned for keys[i]. */
size_t kvt__local_cpu_pin_prefix(void *state, const kvt_key *keys, size_t n, uint64_t *ids);
/* Drops one pin of the entry `id` of `key`, if it is still that entry. */
void kvt__local_cpu_unpin_id(void *state, const kvt_key *key, uint64_t id);
/* The store's CPU pool, for the CPU tier's create(). */
kvt__pool *kvt__env_pool(const kvt_backend_env *env);

#endif
