/* kvtier — bounded write-through queue with one worker thread per tier. Internal. */
#ifndef KVTIER_WQUEUE_H
#define KVTIER_WQUEUE_H

#include "internal.h"

typedef struct kvt__wq kvt__wq;

/* Called on the worker thread for each item, in queue order; it owns `obj`'s reference. */
typedef void (*kvt__wq_fn)(void *ud, const kvt_key *key, kvt_obj *obj);

int kvt__wq_new(size_t depth, kvt__wq_fn fn, void *ud, kvt__wq **out);
/* Queues one item, taking over the caller's reference to `obj`. Blocks while full. */
void kvt__wq_push(kvt__wq *q, const kvt_key *key, kvt_obj *obj);
/* Waits until every item pushed before the call has been processed. */
void kvt__wq_flush(kvt__wq *q);
/* Items waiting (not counting the one being written). */
size_t kvt__wq_pending(kvt__wq *q);
/* Processes everything still queued, stops the worker and frees the queue. No push may
 * run concurrently or follow (the store guarantees it by draining the tier first). */
void kvt__wq_drain_free(kvt__wq *q);

#endif
