/* kvtier — per-backend circuit breaker (see breaker.h). */
#include <string.h>

#include "breaker.h"

void kvt__breaker_init(kvt__breaker *b)
{
    memset(b, 0, sizeof *b);
    atomic_init(&b->state, KVT_BREAKER_CLOSED);
    atomic_init(&b->consecutive, 0);
    pthread_mutex_init(&b->mu, NULL);
    b->last_status = KVT_OK;
    b->ping_ms = -1;
    b->since = kvt__now();
}

void kvt__breaker_destroy(kvt__breaker *b) { pthread_mutex_destroy(&b->mu); }

bool kvt__breaker_is_failure(int status)
{
    switch (status) {
    case KVT_OK:
    case KVT_ENOENT:    /* a miss is an answer */
    case KVT_ETOOSMALL: /* the caller's buffer */
    case KVT_ENOMEM:    /* the CPU tier's room, not this tier */
    case KVT_ENOSPC:    /* full: puts fail, the tier still works */
    case KVT_EEXIST:
    case KVT_EINVAL:
    case KVT_ECORRUPT:  /* one bad entry, already quarantined by the tier */
    case KVT_ECLOSED:   /* the store closed or bypassed the queue */
    case KVT_ENOTIER:
        return false;
    default:
        return true;
    }
}

/* OPEN from now with back-off `ms`. mu held. */
static void open_locked(kvt__breaker *b, int64_t ms)
{
    atomic_store(&b->state, KVT_BREAKER_OPEN);
    b->since = kvt__now();
    b->backoff_ms = ms;
    b->retry_at = kvt__after(b->since, ms);
    b->opens++;
}

static void note_failure(kvt__breaker *b, int status, const char *detail)
{
    b->failures++;
    b->last_status = status;
    kvt__strlcpy(b->last_error, detail && *detail ? detail : kvt_strerror(status),
                 sizeof b->last_error);
}

bool kvt__breaker_record(kvt__breaker *b, int status, const char *detail,
                         const struct kvt__breaker_conf *c)
{
    if (!kvt__breaker_is_failure(status)) {
        if (atomic_load_explicit(&b->consecutive, memory_order_relaxed))
            atomic_store(&b->consecutive, 0);
        return false;
    }
    bool opened = false;
    pthread_mutex_lock(&b->mu);
    unsigned n = atomic_fetch_add(&b->consecutive, 1) + 1;
    note_failure(b, status, detail);
    if (atomic_load(&b->state) == KVT_BREAKER_CLOSED && n >= c->threshold) {
        open_locked(b, c->backoff_ms);
        opened = true;
    }
    pthread_mutex_unlock(&b->mu);
    return opened;
}

bool kvt__breaker_due(kvt__breaker *b, struct timespec *next)
{
    if (atomic_load(&b->state) != KVT_BREAKER_OPEN)
        return false;
    struct timespec now = kvt__now();
    bool due = false;
    pthread_mutex_lock(&b->mu);
    if (atomic_load(&b->state) == KVT_BREAKER_OPEN && !kvt__before(&now, &b->retry_at)) {
        atomic_store(&b->state, KVT_BREAKER_HALF_OPEN);
        b->since = now;
        due = true;
    } else if (kvt__before(&b->retry_at, next)) {
        *next = b->retry_at;
    }
    pthread_mutex_unlock(&b->mu);
    return due;
}

void kvt__breaker_next(kvt__breaker *b, struct timespec *next)
{
    pthread_mutex_lock(&b->mu);
    if (atomic_load(&b->state) == KVT_BREAKER_OPEN && kvt__before(&b->retry_at, next))
        *next = b->retry_at;
    pthread_mutex_unlock(&b->mu);
}

void kvt__breaker_probed(kvt__breaker *b, int status, const char *detail, double ms,
                         const struct kvt__breaker_conf *c)
{
    pthread_mutex_lock(&b->mu);
    b->ping_ms = ms;
    if (status == KVT_OK) {
        atomic_store(&b->consecutive, 0);
        atomic_store(&b->state, KVT_BREAKER_CLOSED);
        b->since = kvt__now();
    } else {
        note_failure(b, status, detail);
        int64_t next = b->backoff_ms > c->backoff_max_ms / 2 ? c->backoff_max_ms : 2 * b->backoff_ms;
        open_locked(b, next < c->backoff_ms ? c->backoff_ms : next);
    }
    pthread_mutex_unlock(&b->mu);
}

void kvt__breaker_report(kvt__breaker *b, kvt_backend_health *out)
{
    struct timespec now = kvt__now();
    pthread_mutex_lock(&b->mu);
    out->breaker = (kvt_breaker_state)atomic_load(&b->state);
    out->bypass_breaker = out->breaker != KVT_BREAKER_CLOSED;
    out->consecutive_failures = atomic_load(&b->consecutive);
    out->failures = b->failures;
    out->opens = b->opens;
    out->last_status = b->last_status;
    kvt__strlcpy(out->last_error, b->last_error, sizeof out->last_error);
    out->ping_ms = b->ping_ms;
    out->state_ms = kvt__ms_between(&b->since, &now);
    out->retry_in_ms = out->breaker == KVT_BREAKER_OPEN && kvt__before(&now, &b->retry_at)
                           ? kvt__ms_between(&now, &b->retry_at)
                           : 0;
    pthread_mutex_unlock(&b->mu);
}
