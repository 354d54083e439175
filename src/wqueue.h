/* kvtier — bounded write-through queue with one worker thread per tier. Internal. */
#ifndef KVTIER_WQUEUE_H
#define KVTIER_WQUEUE_H

#include "clock.h"
#include "internal.h"

typedef struct kvt__wq kvt__wq;

#define KVT__WQ_BATCH_MAX 8 /* items one call of the worker's fn may get */

/* Called on the worker thread with `n` (1..batch) items, in queue order; it owns each
 * objs[i]'s reference. `abandoned`: a forced close dropped them: not to be written. */
typedef void (*kvt__wq_fn)(void *ud, size_t n, const kvt_key *keys, kvt_obj **objs,
                           bool abandoned);
/* Called on the worker thread after a write that a cancel invalidated while it ran: the
 * tier must forget `key` again. */
typedef void (*kvt__wq_undo_fn)(void *ud, const kvt_key *key);
/* Called once on the worker thread after the queue stopped and emptied. */
typedef void (*kvt__wq_done_fn)(void *ud);

/* Deadlines are CLOCK_MONOTONIC (clock.h). `batch`: most items per fn call (clamped to
 * 1..KVT__WQ_BATCH_MAX and to depth); unplugged, the worker never waits for a batch to fill. */
int kvt__wq_new(size_t depth, size_t batch, kvt__wq_fn fn, kvt__wq_undo_fn undo,
                kvt__wq_done_fn done, void *ud, kvt__wq **out);
/* Queues one item, taking over the caller's reference to `obj` on KVT_OK only. Waits
 * while the queue is full, up to `deadline`: KVT_ETIMEDOUT then, KVT_ECLOSED when the
 * queue refuses pushes (bypass, close) before or while waiting. */
int kvt__wq_push(kvt__wq *q, const kvt_key *key, kvt_obj *obj, const struct timespec *deadline);
/* Plugs (on) or unplugs the queue for a producer about to push several items, as the
 * block layer's plug does: while plugged, the worker waits for a whole batch (or the last
 * unplug, or a stop) instead of taking the first item alone. Plugs nest; every plug must
 * be unplugged, soon: flushes wait for plugged items too. */
void kvt__wq_plug(kvt__wq *q, bool on);
/* Refuse pushes (and release the waiting ones) or take them again. */
void kvt__wq_refuse(kvt__wq *q, bool on);
/* Drops the queued writes of `key` (NULL: all), releasing their references, and returns
 * how many. A write of it in progress (in the batch being written) is waited for until
 * `deadline`; past it (a hung tier) that key is marked, and the worker undoes it when the
 * batch returns. Writes of other keys are never waited for. */
size_t kvt__wq_cancel(kvt__wq *q, const kvt_key *key, const struct timespec *deadline);
/* Sequence number of the last item pushed; kvt__wq_wait() waits until it is processed. */
uint64_t kvt__wq_mark(kvt__wq *q);
/* KVT_OK once every item up to `mark` is processed (written, failed, cancelled or
 * abandoned), KVT_ETIMEDOUT at `deadline`. */
int kvt__wq_wait(kvt__wq *q, uint64_t mark, const struct timespec *deadline);
/* Items queued or being written. */
size_t kvt__wq_pending(kvt__wq *q);
/* Stops taking pushes; the worker writes (or, `abandon`, drops) what is queued, calls
 * `done` and exits. Returns at once; may be called again to escalate to `abandon`. */
void kvt__wq_stop(kvt__wq *q, bool abandon);
/* Joins the worker (after `done` ran, or it blocks until then) and frees the queue. */
void kvt__wq_free(kvt__wq *q);

#endif
