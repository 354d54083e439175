/* kvtier — bounded write-through queue.
 *
 * A ring of (key, object) items and one worker. Producers block while the ring is full:
 * backpressure, never a silent drop, so a chunk the caller was told is stored reaches
 * every tier that was active when it was put. Flush waits on sequence numbers rather
 * than on "empty", so a steady stream of new puts cannot starve it. */
#include <pthread.h>
#include <stdlib.h>

#include "wqueue.h"

struct item {
    kvt_key key;
    kvt_obj *obj;
};

struct kvt__wq {
    pthread_mutex_t mu;
    pthread_cond_t not_empty, not_full, progress;
    struct item *ring;
    size_t depth, head, count;
    uint64_t pushed, done; /* sequence numbers: items pushed / fully processed */
    bool stopping;
    pthread_t thread;
    kvt__wq_fn fn;
    void *ud;
};

static void *worker(void *arg)
{
    kvt__wq *q = arg;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        while (q->count == 0 && !q->stopping)
            pthread_cond_wait(&q->not_empty, &q->mu);
        if (q->count == 0)
            break; /* stopping and drained */
        struct item it = q->ring[q->head];
        q->head = (q->head + 1) % q->depth;
        q->count--;
        pthread_cond_signal(&q->not_full);
        pthread_mutex_unlock(&q->mu);
        q->fn(q->ud, &it.key, it.obj);
        pthread_mutex_lock(&q->mu);
        q->done++;
        pthread_cond_broadcast(&q->progress);
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

static void wq_free(kvt__wq *q)
{
    pthread_mutex_destroy(&q->mu);
    pthread_cond_destroy(&q->not_empty);
    pthread_cond_destroy(&q->not_full);
    pthread_cond_destroy(&q->progress);
    free(q->ring);
    free(q);
}

int kvt__wq_new(size_t depth, kvt__wq_fn fn, void *ud, kvt__wq **out)
{
    kvt__wq *q = calloc(1, sizeof *q);
    *out = NULL;
    if (!q || !(q->ring = calloc(depth, sizeof *q->ring))) {
        free(q);
        return kvt__fail(KVT_ENOMEM, "cannot allocate write queue of depth %zu", depth);
    }
    q->depth = depth;
    q->fn = fn;
    q->ud = ud;
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->not_empty, NULL);
    pthread_cond_init(&q->not_full, NULL);
    pthread_cond_init(&q->progress, NULL);
    if (pthread_create(&q->thread, NULL, worker, q) != 0) {
        wq_free(q);
        return kvt__fail(KVT_ENOMEM, "cannot start write-through thread");
    }
    *out = q;
    return KVT_OK;
}

void kvt__wq_push(kvt__wq *q, const kvt_key *key, kvt_obj *obj)
{
    pthread_mutex_lock(&q->mu);
    while (q->count == q->depth)
        pthread_cond_wait(&q->not_full, &q->mu);
    struct item *it = &q->ring[(q->head + q->count) % q->depth];
    it->key = *key;
    it->obj = obj;
    q->count++;
    q->pushed++;
    pthread_cond_signal(&q->not_empty);
    pthread_mutex_unlock(&q->mu);
}

void kvt__wq_flush(kvt__wq *q)
{
    pthread_mutex_lock(&q->mu);
    uint64_t target = q->pushed;
    while (q->done < target)
        pthread_cond_wait(&q->progress, &q->mu);
    pthread_mutex_unlock(&q->mu);
}

size_t kvt__wq_pending(kvt__wq *q)
{
    pthread_mutex_lock(&q->mu);
    size_t n = q->count;
    pthread_mutex_unlock(&q->mu);
    return n;
}

void kvt__wq_drain_free(kvt__wq *q)
{
    pthread_mutex_lock(&q->mu);
    q->stopping = true;
    pthread_cond_signal(&q->not_empty);
    pthread_mutex_unlock(&q->mu);
    pthread_join(q->thread, NULL);
    wq_free(q);
}
