/* kvtier — the circuit breaker every lower tier has. Internal.
 *
 * CLOSED: the tier serves. `threshold` consecutive failures (timeouts, I/O errors, an
 * unreachable remote; never misses or a full tier) open it: the data path skips the tier
 * as if bypassed, so the engine keeps serving from the tiers above. When the back-off
 * expires the store's health thread moves it to HALF_OPEN and probes the tier; success
 * closes it, failure reopens it with twice the back-off, capped. The operator's manual
 * bypass is separate state and never touched here. Deadlines use the monotonic clock. */
#ifndef KVTIER_BREAKER_H
#define KVTIER_BREAKER_H

#include <pthread.h>
#include <stdatomic.h>
#include "clock.h"
#include "internal.h"

struct kvt__breaker_conf {
    uint32_t threshold;
    int64_t backoff_ms, backoff_max_ms;
};

typedef struct kvt__breaker {
    atomic_int state;           /* kvt_breaker_state, read lock-free by the data path */
    atomic_uint consecutive;    /* failures since the last success */
    pthread_mutex_t mu;         /* the rest */
    uint64_t failures, opens;
    int last_status;
    char last_error[256];
    double ping_ms;
    struct timespec since, retry_at;
    int64_t backoff_ms;
} kvt__breaker;

void kvt__breaker_init(kvt__breaker *b);
void kvt__breaker_destroy(kvt__breaker *b);
/* May the data path use the tier? */
static inline bool kvt__breaker_allows(kvt__breaker *b)
{
    return atomic_load_explicit(&b->state, memory_order_relaxed) == KVT_BREAKER_CLOSED;
}
/* Is `status` (returned by the tier) a failure of the tier rather than an answer? */
bool kvt__breaker_is_failure(int status);
/* Records the result of one call: success resets the count; a failure is counted with
 * `detail` and may open the breaker. True when this call opened it. */
bool kvt__breaker_record(kvt__breaker *b, int status, const char *detail,
                         const struct kvt__breaker_conf *c);
/* OPEN and its back-off expired: moves it to HALF_OPEN and returns true (the caller
 * probes). Otherwise false, with `*next` lowered to its retry time when OPEN. */
bool kvt__breaker_due(kvt__breaker *b, struct timespec *next);
/* Lowers `*next` to the retry time of an OPEN breaker; changes nothing. */
void kvt__breaker_next(kvt__breaker *b, struct timespec *next);
/* The probe's outcome: CLOSED on success, else OPEN with a longer back-off. */
void kvt__breaker_probed(kvt__breaker *b, int status, const char *detail, double ms,
                         const struct kvt__breaker_conf *c);
/* Fills the breaker part of a health report. */
void kvt__breaker_report(kvt__breaker *b, kvt_backend_health *out);

#endif
