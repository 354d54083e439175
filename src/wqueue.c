/* kvtier — bounded write-through queue.
 *
 * A ring of (key, object) items and one worker, which takes up to `batch` queued items
 * at a time (a tier with a batched_put slot writes them as one I/O batch). A producer
 * waits while the ring is full, but only until its deadline (write_queue_timeout_ms) or
 * until the queue refuses pushes (the tier was bypassed or is closing): a slow or hung
 * tier costs a put a bounded time, never forever, and the caller learns that this tier's
 * copy was skipped. Flush waits on
 * sequence numbers rather than on "empty", so a steady stream of puts cannot starve it.
 * Cancelled items stay in the ring with no object, so sequence numbers stay exact. */
#include <pthread.h>
#include <stdlib.h>

#include "wqueue.h"

struct item {
    kvt_key key;
    kvt_obj *obj; /* NULL: cancelled */
};

struct kvt__wq {
    pthread_mutex_t mu;
    pthread_cond_t not_empty, not_full, progress;
    struct item *ring;
    size_t depth, head, count;
    uint64_t pushed, done; /* sequence numbers: items pushed / fully processed */
    bool refuse, stopping, abandon;
    unsigned plugs; /* producers putting a batch: the worker waits for a whole one */
    bool writing;  /* the worker is inside fn() with cur[0..ncur) */
    size_t batch, ncur;
    kvt_key cur[KVT__WQ_BATCH_MAX];
    bool undo[KVT__WQ_BATCH_MAX]; /* a cancel gave up waiting for cur[i]: undo it after */
    pthread_t thread;
    kvt__wq_fn fn;
    kvt__wq_undo_fn undo_fn;
    kvt__wq_done_fn done_fn;
    void *ud;
};

/* Waits on `cv`; false once `deadline` has passed. mu held. */
static bool wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, const struct timespec *deadline)
{
    return pthread_cond_timedwait(cv, mu, deadline) != ETIMEDOUT;
}

/* Is a write of `key` (NULL: any) in progress and not yet marked for undo? mu held. */
static bool writing_key(const kvt__wq *q, const kvt_key *key)
{
    for (size_t i = 0; q->writing && i < q->ncur; i++)
        if ((!key || kvt_key_equal(&q->cur[i], key)) && !q->undo[i])
            return true;
    return false;
}

/* Takes up to `batch` live items off the head into keys/objs, and the cancelled ones
 * among them (*skipped). Returns how many live ones. mu held. */
static size_t take(kvt__wq *q, kvt_key *keys, kvt_obj **objs, size_t *skipped)
{
    size_t n = 0;
    *skipped = 0;
    while (q->count > 0 && n < q->batch) {
        struct item *it = &q->ring[q->head];
        q->head = (q->head + 1) % q->depth;
        q->count--;
        if (it->obj) {
            keys[n] = it->key;
            objs[n++] = it->obj;
        } else {
            (*skipped)++;
        }
    }
    pthread_cond_broadcast(&q->not_full);
    return n;
}

/* After a batch: undoes the writes cancels marked, until none is marked (a cancel may mark
 * one already passed while another is undone), so no mark outlives its batch. mu held. */
static void undo_marked(kvt__wq *q, size_t n)
{
    for (bool again = true; again;) {
        again = false;
        for (size_t i = 0; i < n; i++) {
            if (!q->undo[i])
                continue;
            again = true;
            q->undo[i] = false;
            pthread_mutex_unlock(&q->mu); /* cur[] changes only on this thread */
            q->undo_fn(q->ud, &q->cur[i]);
            pthread_mutex_lock(&q->mu);
        }
    }
}

static void *worker(void *arg)
{
    kvt__wq *q = arg;
    kvt_obj *objs[KVT__WQ_BATCH_MAX];
    pthread_mutex_lock(&q->mu);
    for (;;) {
        while ((q->count == 0 || (q->plugs && q->count < q->batch)) && !q->stopping)
            pthread_cond_wait(&q->not_empty, &q->mu);
        if (q->count == 0)
            break; /* stopping and drained */
        size_t skipped, n = take(q, q->cur, objs, &skipped);
        if (n > 0) {
            bool abandoned = q->abandon;
            q->writing = !abandoned;
            q->ncur = n;
            pthread_mutex_unlock(&q->mu);
            q->fn(q->ud, n, q->cur, objs, abandoned);
            pthread_mutex_lock(&q->mu);
            undo_marked(q, n);
            q->writing = false;
            q->ncur = 0;
        }
        q->done += n + skipped; /* the batch is a prefix: counted once it is all done */
        pthread_cond_broadcast(&q->progress);
    }
    while (q->done < q->pushed) /* items a forced stop is still dropping: count them first */
        pthread_cond_wait(&q->progress, &q->mu);
    pthread_mutex_unlock(&q->mu);
    q->done_fn(q->ud);
    return NULL;
}

static void wq_destroy(kvt__wq *q)
{
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->not_empty);
    pthread_cond_destroy(&q->not_full);
    pthread_cond_destroy(&q->progress);
    free(q->ring);
    free(q);
}

int kvt__wq_new(size_t depth, size_t batch, kvt__wq_fn fn, kvt__wq_undo_fn undo,
                kvt__wq_done_fn done, void *ud, kvt__wq **out)
{
    kvt__wq *q = calloc(1, sizeof *q);
    *out = NULL;
    if (!q || depth == 0 || !(q->ring = calloc(depth, sizeof *q->ring))) {
        free(q);
        return kvt__fail(KVT_ENOMEM, "cannot allocate write queue of depth %zu", depth);
    }
    q->depth = depth;
    q->batch = batch < 1 ? 1 : batch > KVT__WQ_BATCH_MAX ? KVT__WQ_BATCH_MAX : batch;
    q->batch = q->batch > depth ? depth : q->batch; /* a plugged queue must fill a batch */
    q->fn = fn;
    q->undo_fn = undo;
    q->done_fn = done;
    q->ud = ud;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->not_empty, NULL);
    kvt__cond_init_monotonic(&q->not_full);
    kvt__cond_init_monotonic(&q->progress);
    if (pthread_create(&q->thread, NULL, worker, q) != 0) {
        wq_destroy(q);
        return kvt__fail(KVT_ENOMEM, "cannot start write-through thread");
    }
    *out = q;
    return KVT_OK;
}

int kvt__wq_push(kvt__wq *q, const kvt_key *key, kvt_obj *obj, const struct timespec *deadline)
{
    int rc = KVT_OK;
    pthread_mutex_lock(&q->mu);
    while (!q->refuse && q->count == q->depth && rc == KVT_OK)
        if (!wait_until(&q->not_full, &q->mu, deadline))
            rc = KVT_ETIMEDOUT;
    if (q->refuse)
        rc = KVT_ECLOSED;
    else if (q->count < q->depth)
        rc = KVT_OK; /* room appeared as the wait timed out */
    if (rc == KVT_OK) {
        struct item *it = &q->ring[(q->head + q->count) % q->depth];
        it->key = *key;
        it->obj = obj;
        q->count++;
        q->pushed++;
        pthread_cond_signal(&q->not_empty);
    }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

void kvt__wq_plug(kvt__wq *q, bool on)
{
    pthread_mutex_lock(&q->mu);
    if (on)
        q->plugs++;
    else if (--q->plugs == 0)
        pthread_cond_signal(&q->not_empty);
    pthread_mutex_unlock(&q->mu);
}

void kvt__wq_refuse(kvt__wq *q, bool on)
{
    pthread_mutex_lock(&q->mu);
    q->refuse = on || q->stopping;
    pthread_cond_broadcast(&q->not_full);
    pthread_mutex_unlock(&q->mu);
}

size_t kvt__wq_cancel(kvt__wq *q, const kvt_key *key, const struct timespec *deadline)
{
    kvt_obj *drop[64];
    size_t n = 0, total = 0;
    pthread_mutex_lock(&q->mu);
    for (size_t i = 0; i < q->count; i++) {
        struct item *it = &q->ring[(q->head + i) % q->depth];
        if (!it->obj || (key && !kvt_key_equal(&it->key, key)))
            continue;
        if (n == KVT__ARRAY_LEN(drop)) { /* release outside the lock, in batches */
            pthread_mutex_unlock(&q->mu);
            for (size_t k = 0; k < n; k++)
                kvt_obj_release(drop[k]);
            n = 0;
            pthread_mutex_lock(&q->mu);
            i = (size_t)-1; /* the ring may have moved: rescan; cancelled items are skipped */
            continue;
        }
        drop[n++] = it->obj;
        it->obj = NULL;
        total++;
    }
    /* A write of the key in progress would bring it back after the caller removed it. */
    bool timed_out = false;
    while (writing_key(q, key) && !timed_out)
        timed_out = !wait_until(&q->progress, &q->mu, deadline);
    for (size_t i = 0; q->writing && i < q->ncur; i++)
        q->undo[i] |= !key || kvt_key_equal(&q->cur[i], key);
    pthread_mutex_unlock(&q->mu);
    for (size_t k = 0; k < n; k++)
        kvt_obj_release(drop[k]);
    return total;
}

uint64_t kvt__wq_mark(kvt__wq *q)
{
    pthread_mutex_lock(&q->mu);
    uint64_t m = q->pushed;
    pthread_mutex_unlock(&q->mu);
    return m;
}

int kvt__wq_wait(kvt__wq *q, uint64_t mark, const struct timespec *deadline)
{
    int rc = KVT_OK;
    pthread_mutex_lock(&q->mu);
    while (q->done < mark && rc == KVT_OK)
        if (!wait_until(&q->progress, &q->mu, deadline) && q->done < mark)
            rc = KVT_ETIMEDOUT;
    pthread_mutex_unlock(&q->mu);
    return rc;
}

size_t kvt__wq_pending(kvt__wq *q)
{
    pthread_mutex_lock(&q->mu);
    size_t n = (size_t)(q->pushed - q->done);
    pthread_mutex_unlock(&q->mu);
    return n;
}

void kvt__wq_stop(kvt__wq *q, bool abandon)
{
    if (!q)
        return;
    pthread_mutex_lock(&q->mu);
    q->stopping = q->refuse = true;
    q->abandon |= abandon;
    pthread_cond_broadcast(&q->not_full);
    pthread_cond_signal(&q->not_empty);
    /* Abandoned items go now, not when a hung write in progress returns. */
    while (abandon && q->count > 0) {
        struct item it = q->ring[q->head];
        q->head = (q->head + 1) % q->depth;
        q->count--;
        pthread_mutex_unlock(&q->mu);
        if (it.obj)
            q->fn(q->ud, 1, &it.key, &it.obj, true);
        pthread_mutex_lock(&q->mu);
        q->done++;
        pthread_cond_broadcast(&q->progress);
    }
    pthread_mutex_unlock(&q->mu);
}

void kvt__wq_free(kvt__wq *q)
{
    if (!q)
        return;
    kvt__wq_stop(q, false);
    pthread_join(q->thread, NULL);
    wq_destroy(q);
}
