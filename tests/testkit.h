/* kvtier tests — a second tier type registered through the public vtable.
 *
 * "TestTierA" and "TestTierB" keep their chunks in a process-wide "world" that outlives
 * instances (like a remote store or files on disk), so tests can see what reached a tier
 * across close/create/recreate. Reads allocate through kvt_backend_alloc(), i.e. from
 * the CPU tier's pool, so both types declare KVT_BACKEND_USES_CPU_BUFFERS. TestTierB also
 * fills the ABI v2, v4 and v5 slots (batched_get, get_into, batched_get_into, batched_put);
 * TestTierA is a v1-style table. */
#ifndef KVTIER_TESTKIT_H
#define KVTIER_TESTKIT_H

#include <pthread.h>
#include <stdatomic.h>

#include "kvtier/kvtier.h"

struct tk_world {
    pthread_mutex_t mu;
    struct tk_chunk **buckets; /* hash chains, allocated on first use */
    size_t n;
    atomic_bool wanted;          /* does the config "ask" for this type */
    atomic_int fail_create;      /* next creates fail with this status (0: succeed) */
    atomic_uint put_delay_us;    /* slow writes keep queues non-empty */
    atomic_long live, created, destroyed;
    atomic_long puts, gets, contains_calls, count_prefix_calls;
    atomic_long batched_get_calls, get_into_calls, batched_get_into_calls;
    atomic_long batched_put_calls, batched_put_max; /* ABI v5: calls, the largest n */
    atomic_ullong fail_put_hash; /* a put of this chunk hash fails with KVT_EIO (0: none) */
    atomic_bool get_returns_null; /* get() says KVT_OK without an object (a buggy tier) */
    atomic_int fail_io;           /* put/get/contains fail with this status (0: work) */
    /* Gates: while closed, put() (before storing), get() (after reading, before
     * returning) and remove() (before removing) park; `parked` counts the calls parked,
     * so tests wait for them. Indexed by TK_PUT, TK_GET, TK_REMOVE. */
    pthread_mutex_t gate_mu;
    pthread_cond_t gate_cv;
    bool gate_closed[3];
    long parked[3], pass[3];
};

extern struct tk_world tk_a, tk_b;
extern const struct kvt_backend_ops tk_a_ops, tk_b_ops;

/* Registers TestTierA and TestTierB once per process. */
void tk_register(void);
enum { TK_PUT, TK_GET, TK_REMOVE };
/* Closes or opens a world's put (put = true) or get gate. */
void tk_gate(struct tk_world *w, bool put, bool closed);
/* Lets the next `n` calls through a closed gate (parked ones first); it stays closed. */
void tk_gate_pass(struct tk_world *w, int which, long n);
/* Waits until `n` calls are parked at the put (or get) gate. */
void tk_wait_parked(struct tk_world *w, bool put, long n);
/* The same for any gate (TK_PUT, TK_GET, TK_REMOVE). */
void tk_gate_at(struct tk_world *w, int which, bool closed);
void tk_wait_parked_at(struct tk_world *w, int which, long n);
/* Milliseconds on the monotonic clock. */
double tk_now_ms(void);
/* Empties a world and resets its counters and switches. */
void tk_reset(struct tk_world *w);
/* Does the world hold `key` with exactly these bytes? */
bool tk_holds(struct tk_world *w, const kvt_key *key, const void *data, size_t len);
size_t tk_count(struct tk_world *w);

/* Test helpers shared by the test programs. */
kvt_key tk_key(uint64_t hash);
/* A key of `model` (world 1, worker 0) with chunk hash `h`; fails the test if refused. */
kvt_key tk_model_key(const char *model, uint64_t h);
/* kvt_put of `len` bytes of tk_fill(seed) under `k`, which must succeed. */
void tk_put_chunk(kvt_store *s, const kvt_key *k, size_t len, uint64_t seed,
                  const kvt_chunk_meta *meta);
/* kvt_get_into of `k` must give exactly the `len` bytes of tk_fill(seed). */
void tk_expect_chunk(kvt_store *s, const kvt_key *k, size_t len, uint64_t seed);
/* Deterministic chunk bytes for `hash`. */
void tk_fill(void *buf, size_t len, uint64_t hash);
/* A config with a CPU tier of `cpu_mib` MiB and nothing else. */
kvt_config *tk_config(double cpu_mib);
/* Log handler that keeps quiet (tests assert on state, not on lines). */
extern const kvt_log_handler tk_quiet;

#endif
