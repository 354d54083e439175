/* kvtier — the store, its backend instances and registry snapshots. Internal.
 *
 * Lock protocol (docs/architecture.md has the long form):
 * - s->reg_lock (rwlock, writer-preferred) guards only the s->snap pointer. The data path
 *   takes the read side just long enough to take a reference to the current snapshot.
 * - A snapshot is immutable: the tier-ordered backends plus derived masks (bypass, get
 *   and put filters). Registry changes publish a new one under the write side.
 * - Each backend counts the data-path calls inside it (`active`). A call enters only while
 *   the backend is not closing. Close unpublishes the backend, marks it closing, waits for
 *   `active` to reach zero, drains its write queue, and only then destroys it. Snapshots
 *   keep the struct's memory alive, never its state.
 * - s->mgmt serialises registry operations and guards s->cfg. flush, remove and clear
 *   hold it too, so no backend is half-closed while they wait for write queues. The rwlock is never held
 *   while waiting for anything, and no log line is emitted under it. */
#ifndef KVTIER_STORE_H
#define KVTIER_STORE_H

#include <pthread.h>
#include <stdatomic.h>

#include "internal.h"
#include "log.h"
#include "obj.h"
#include "wqueue.h"

struct kvt_backend_env {
    struct kvt__bk *bk;
};

typedef struct kvt__bk {
    atomic_uint refs;   /* snapshots and registry operations holding the struct */
    atomic_int closing; /* set once; enter() fails from then on */
    atomic_long active; /* data-path calls inside the backend */
    pthread_mutex_t drain_mu;
    pthread_cond_t drain_cv;
    const struct kvt_backend_ops *ops;
    void *state;
    kvt__wq *wq; /* write-through queue; NULL for the CPU tier (synchronous) */
    struct kvt_backend_env env;
    struct kvt_store *store;
    unsigned rank; /* tier order */
    bool is_cpu;
    char name[KVT_NAME_MAX];
    atomic_uint_fast64_t hits, misses, puts, put_failures;
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
    atomic_bool frozen;
    kvt_log_handler log;
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
        atomic_uint_fast64_t wt_enqueued, wt_done, wt_failed;
    } st;
};

/* Snapshots (store.c). */
kvt__snap *kvt__snap_get(kvt_store *s);
void kvt__snap_put(kvt__snap *sn);
/* Backend entry/exit around every data-path call. */
bool kvt__bk_enter(kvt__bk *bk);
void kvt__bk_leave(kvt__bk *bk);
void kvt__bk_unref(kvt__bk *bk);

/* Registry (registry.c). */
void kvt__registry_close_all(kvt_store *s);
/* The backend named `name` (NULL for a NULL name) in `sn`. */
kvt__bk *kvt__snap_find(kvt__snap *sn, const char *name);
/* KVT_ENOENT with the detail "Backend <name> not found" (LMCache's text). */
int kvt__bk_not_found(const char *name);

/* The built-in CPU tier (backends/local_cpu). */
extern const struct kvt_backend_ops kvt__local_cpu_ops;
int kvt__local_cpu_alloc(void *state, size_t size, const kvt_chunk_meta *meta, kvt_obj **out);
bool kvt__local_cpu_owns(void *state, const kvt_obj *obj);

#endif
