/* kvtier — the block I/O engine (see ioeng.h). */
#include "ioeng.h"

#include <errno.h>
#include <liburing.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

/* One request: a piece of transfer `io` of at most req_size bytes. */
struct req {
    uint32_t io;
    char *buf;
    size_t left;
    uint64_t off;
};

struct ring {
    struct io_uring ring;
    bool busy, ok;
};

/* A pread-mode batch, queued for the workers while some of its requests are untaken. */
struct pjob {
    kvt__io *ios;
    struct req *reqs;
    size_t nreq, next, done;
    pthread_cond_t cv; /* done reached nreq */
    struct pjob *qnext;
};

struct kvt__ioeng {
    struct kvt__ioeng_opts o;
    int refused; /* -errno of io_uring setup when we fell back */
    bool uring;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* uring: a ring was returned; pread: work was queued or stop */
    /* io_uring mode */
    struct ring *rings;
    unsigned nrings;
    char *reg_base;
    size_t reg_len;
    /* pread mode */
    pthread_t *workers;
    unsigned nworkers;
    bool stop;
    struct pjob *qhead, *qtail;
    atomic_uint_fast64_t batches, requests, resubmits, fixed;
};

static bool transient(int err) { return err == EINTR || err == EAGAIN || err == EBUSY; }

/* Splits `ios` into requests; NULL (KVT_ENOMEM set) on failure. */
static struct req *split(const kvt__ioeng *e, kvt__io *ios, size_t n, size_t *nreq)
{
    size_t total = 0, k = 0;
    for (size_t i = 0; i < n; i++) {
        ios[i].res = KVT_OK;
        ios[i].missing = 0;
        total += ios[i].len ? (ios[i].len + e->o.req_size - 1) / e->o.req_size : 0;
    }
    struct req *r = malloc((total ? total : 1) * sizeof *r);
    if (!r) {
        kvt__fail(KVT_ENOMEM, "cannot allocate %zu I/O requests", total);
        return NULL;
    }
    for (size_t i = 0; i < n; i++)
        for (size_t done = 0; done < ios[i].len; done += e->o.req_size) {
            size_t len = ios[i].len - done;
            r[k++] = (struct req){(uint32_t)i, (char *)ios[i].buf + done,
                                  len < e->o.req_size ? len : e->o.req_size, ios[i].off + done};
        }
    *nreq = total;
    return r;
}

static int first_error(const kvt__io *ios, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (ios[i].res != KVT_OK)
            return ios[i].res;
    return KVT_OK;
}

/* Applies a transfer result to `r`: true when the request is finished (done or failed). */
static bool settle(kvt__io *io, struct req *r, long res)
{
    if (res < 0) {
        if (io->res == KVT_OK)
            io->res = (int)res;
        return true;
    }
    if (res == 0 && io->eof_ok && !io->write) { /* the rest lies past the end of the file */
        io->missing += r->left;
        return true;
    }
    if (res == 0) { /* EOF on a read; a write that moved nothing */
        if (io->res == KVT_OK)
            io->res = io->write ? KVT_EIO : KVT_ECORRUPT;
        return true;
    }
    r->buf += res;
    r->off += (uint64_t)res;
    r->left -= (size_t)res;
    return r->left == 0;
}

/* ------------------------------------------------------------------ io_uring */

static void prep(kvt__ioeng *e, struct io_uring_sqe *sqe, const kvt__io *io, struct req *r)
{
    bool fixed = e->reg_len && r->buf >= e->reg_base && r->buf + r->left <= e->reg_base + e->reg_len;
    unsigned len = (unsigned)r->left;
    if (fixed && io->write)
        io_uring_prep_write_fixed(sqe, io->fd, r->buf, len, r->off, 0);
    else if (fixed)
        io_uring_prep_read_fixed(sqe, io->fd, r->buf, len, r->off, 0);
    else if (io->write)
        io_uring_prep_write(sqe, io->fd, r->buf, len, r->off);
    else
        io_uring_prep_read(sqe, io->fd, r->buf, len, r->off);
    if (fixed)
        atomic_fetch_add_explicit(&e->fixed, 1, memory_order_relaxed);
}

static struct ring *lease(kvt__ioeng *e)
{
    struct ring *got = NULL;
    pthread_mutex_lock(&e->mu);
    for (;;) {
        for (unsigned i = 0; i < e->nrings && !got; i++)
            if (!e->rings[i].busy && e->rings[i].ok)
                got = &e->rings[i];
        if (got)
            break;
        pthread_cond_wait(&e->cv, &e->mu);
    }
    got->busy = true;
    pthread_mutex_unlock(&e->mu);
    return got;
}

static void unlease(kvt__ioeng *e, struct ring *r)
{
    pthread_mutex_lock(&e->mu);
    r->busy = false;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
}

/* A ring whose submit failed hard may hold unsubmitted entries: replace it. */
static void ring_reset(kvt__ioeng *e, struct ring *r)
{
    io_uring_queue_exit(&r->ring);
    r->ok = io_uring_queue_init(e->o.depth, &r->ring, 0) == 0;
    if (r->ok && e->reg_len) {
        struct iovec v = {e->reg_base, e->reg_len};
        if (io_uring_register_buffers(&r->ring, &v, 1) != 0)
            e->reg_len = 0; /* plain buffers from now on (no batch runs a fixed op now: */
    }                       /* only this ring's leaseholder could) */
}

/* A hooked run's bookkeeping: requests past `lim` wait for `ready` (NULL once it ran); a
 * transfer whose requests have all finished (`left` reaches 0) waits in `fin` for
 * hooks->done, which runs once the ring has been topped up again. `called`: done() ran. */
struct track {
    const struct kvt__ioeng_hooks *h;
    bool (*ready)(void *);
    size_t lim, *left, *fin, nfin, taken;
    bool *called;
};

static void finished(struct track *t, uint32_t io)
{
    if (t->left && --t->left[io] == 0)
        t->fin[t->nfin++] = io;
}

static void call_done(struct track *t, size_t io)
{
    if (t->h->done && !(t->called && t->called[io])) {
        if (t->called)
            t->called[io] = true;
        t->h->done(t->h->ctx, io);
    }
}

static void run_done(struct track *t)
{
    for (; t->taken < t->nfin; t->taken++)
        call_done(t, t->fin[t->taken]);
}

static int run_uring(kvt__ioeng *e, kvt__io *ios, struct req *reqs, size_t nreq, struct track *t)
{
    struct ring *rg = lease(e);
    struct io_uring *ring = &rg->ring;
    unsigned depth = e->o.depth;
    size_t *redo = malloc(depth * sizeof *redo); /* requests to resubmit; at most inflight */
    size_t next = 0, nredo = 0, inflight = 0, queued = 0; /* queued: prepared, unsubmitted */
    int hard = 0;
    if (!redo) {
        unlease(e, rg);
        for (size_t k = 0; k < nreq; k++)
            ios[reqs[k].io].res = KVT_ENOMEM;
        return kvt__fail(KVT_ENOMEM, "cannot allocate an I/O batch");
    }
    while (next < nreq || nredo || inflight) {
        while (!hard && inflight < depth && (nredo || next < t->lim)) {
            size_t k = nredo ? redo[--nredo] : next++;
            if (ios[reqs[k].io].res != KVT_OK) {
                finished(t, reqs[k].io); /* its transfer already failed: the rest is moot */
                continue;
            }
            struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
            if (!sqe) { /* SQ full (cannot happen with inflight < depth): retry it later */
                redo[nredo++] = k;
                break;
            }
            prep(e, sqe, &ios[reqs[k].io], &reqs[k]);
            io_uring_sqe_set_data64(sqe, k);
            inflight++;
            queued++;
        }
        if (queued) {
            int rc = io_uring_submit(ring);
            if (rc >= 0)
                queued -= (size_t)rc < queued ? (size_t)rc : queued;
            else if (!transient(-rc)) {
                hard = rc; /* the prepared entries never reach the kernel: forget them */
                inflight -= queued;
                queued = 0;
            }
        }
        if (t->ready && t->ready(t->h->ctx)) { /* a step, while the first requests fly */
            t->ready = NULL;
            t->lim = nreq;
            continue;
        }
        run_done(t); /* the device has the next requests meanwhile */
        if (!inflight || inflight == queued) {
            if (hard)
                break;
            continue; /* nothing submitted to wait for: submit again */
        }
        struct io_uring_cqe *cqe; /* while ready() has steps left, only reap what landed */
        int rc = t->ready ? io_uring_peek_cqe(ring, &cqe) : io_uring_wait_cqe(ring, &cqe);
        if (rc < 0) {
            if (transient(-rc))
                continue;
            hard = rc;
            break; /* cannot reap: the ring is reset below, which waits for its requests */
        }
        unsigned head, seen = 0;
        io_uring_for_each_cqe(ring, head, cqe) {
            size_t k = (size_t)io_uring_cqe_get_data64(cqe);
            struct req *r = &reqs[k];
            kvt__io *io = &ios[r->io];
            int res = cqe->res;
            seen++;
            inflight--;
            if (res == -EAGAIN || res == -EINTR || (res > 0 && (size_t)res < r->left)) {
                if (res > 0)
                    settle(io, r, res);
                atomic_fetch_add_explicit(&e->resubmits, 1, memory_order_relaxed);
                redo[nredo++] = k;
            } else if (settle(io, r, res)) {
                finished(t, r->io);
            }
        }
        io_uring_cq_advance(ring, seen);
    }
    if (hard) {
        for (size_t i = 0; i < nreq; i++) /* a transfer whose done() ran keeps its result */
            if (ios[reqs[i].io].res == KVT_OK && reqs[i].left &&
                !(t->called && t->called[reqs[i].io]))
                ios[reqs[i].io].res = hard;
        ring_reset(e, rg); /* closing the ring cancels and waits for what it still holds */
    }
    free(redo);
    unlease(e, rg);
    return hard ? kvt__fail(hard, "io_uring failed: %s", strerror(-hard)) : KVT_OK;
}

/* ------------------------------------------------------------------ pread/pwrite */

static long posix_xfer(const kvt__io *io, struct req *r)
{
    for (;;) {
        ssize_t n = io->write ? pwrite(io->fd, r->buf, r->left, (off_t)r->off)
                              : pread(io->fd, r->buf, r->left, (off_t)r->off);
        if (n >= 0)
            return n;
        if (errno != EINTR && errno != EAGAIN)
            return -errno;
    }
}

/* Takes the next request of `j`; mu held. SIZE_MAX when none is left. */
static size_t take(kvt__ioeng *e, struct pjob *j)
{
    if (j->next >= j->nreq)
        return SIZE_MAX;
    size_t k = j->next++;
    if (j->next == j->nreq) { /* fully taken: off the queue */
        struct pjob **pp = &e->qhead, *prev = NULL;
        while (*pp && *pp != j) {
            prev = *pp;
            pp = &(*pp)->qnext;
        }
        if (*pp) {
            *pp = j->qnext;
            if (e->qtail == j)
                e->qtail = prev;
        }
    }
    return k;
}

/* Runs request k of `j` with mu released; mu held on entry and exit. */
static void do_req(kvt__ioeng *e, struct pjob *j, size_t k)
{
    struct req *r = &j->reqs[k];
    kvt__io *io = &j->ios[r->io];
    bool skip = io->res != KVT_OK;
    pthread_mutex_unlock(&e->mu);
    long res = 0;
    while (!skip) {
        res = posix_xfer(io, r);
        if (res <= 0 || (size_t)res >= r->left)
            break;
        r->buf += res; /* short: go on with the rest */
        r->off += (uint64_t)res;
        r->left -= (size_t)res;
        atomic_fetch_add_explicit(&e->resubmits, 1, memory_order_relaxed);
    }
    pthread_mutex_lock(&e->mu);
    if (!skip)
        settle(io, r, res);
    if (++j->done == j->nreq)
        pthread_cond_signal(&j->cv);
}

static void *worker(void *arg)
{
    kvt__ioeng *e = arg;
    pthread_mutex_lock(&e->mu);
    while (!e->stop) {
        if (!e->qhead) {
            pthread_cond_wait(&e->cv, &e->mu);
            continue;
        }
        struct pjob *j = e->qhead;
        do_req(e, j, take(e, j));
    }
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

static int run_posix(kvt__ioeng *e, kvt__io *ios, struct req *reqs, size_t nreq)
{
    struct pjob j = {ios, reqs, nreq, 0, 0, PTHREAD_COND_INITIALIZER, NULL};
    size_t k;
    pthread_mutex_lock(&e->mu);
    if (e->nworkers && nreq > 1) {
        if (e->qtail)
            e->qtail->qnext = &j;
        else
            e->qhead = &j;
        e->qtail = &j;
        pthread_cond_broadcast(&e->cv);
    }
    while ((k = take(e, &j)) != SIZE_MAX) /* the caller works too */
        do_req(e, &j, k);
    while (j.done < j.nreq)
        pthread_cond_wait(&j.cv, &e->mu);
    pthread_mutex_unlock(&e->mu);
    pthread_cond_destroy(&j.cv);
    return KVT_OK;
}

/* ------------------------------------------------------------------ API */

int kvt__ioeng_run_hooked(kvt__ioeng *e, kvt__io *ios, size_t n, const struct kvt__ioeng_hooks *h)
{
    static const struct kvt__ioeng_hooks none = {0};
    struct track t = {.h = h ? h : &none};
    size_t nreq = 0;
    struct req *reqs = n ? split(e, ios, n, &nreq) : NULL;
    bool ok = n == 0 || reqs;
    if (ok && n && t.h->done &&
        (!(t.left = calloc(n, sizeof *t.left)) || !(t.fin = malloc(n * sizeof *t.fin)) ||
         !(t.called = calloc(n, sizeof *t.called)))) {
        kvt__fail(KVT_ENOMEM, "cannot allocate an I/O batch");
        ok = false;
    }
    t.lim = nreq;
    if (ok && e->uring && t.h->ready) { /* a ring overlaps ready with the first transfers */
        size_t lim = nreq;
        while (lim > 0 && reqs[lim - 1].io >= t.h->hold) /* split() keeps their order */
            lim--;
        if (lim) {
            t.ready = t.h->ready;
            t.lim = lim;
        }
    }
    while (t.h->ready && !t.ready && !t.h->ready(t.h->ctx)) /* nothing to overlap it with */
        ;
    int rc = KVT_OK;
    if (!ok) {
        rc = KVT_ENOMEM;
        for (size_t i = 0; i < n; i++)
            ios[i].res = KVT_ENOMEM;
    } else if (n) {
        for (size_t k = 0; t.left && k < nreq; k++)
            t.left[reqs[k].io]++;
        atomic_fetch_add_explicit(&e->batches, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&e->requests, nreq, memory_order_relaxed);
        rc = e->uring ? run_uring(e, ios, reqs, nreq, &t) : run_posix(e, ios, reqs, nreq);
    }
    while (t.ready && !t.ready(t.h->ctx)) /* a ring that could not start did not finish it */
        ;
    for (size_t i = 0; i < n; i++) /* the rest: pread mode, empty or failed transfers */
        call_done(&t, i);
    free(t.left), free(t.fin), free(t.called), free(reqs);
    return rc != KVT_OK ? rc : first_error(ios, n);
}

int kvt__ioeng_run(kvt__ioeng *e, kvt__io *ios, size_t n)
{
    return kvt__ioeng_run_hooked(e, ios, n, NULL);
}

static void free_rings(kvt__ioeng *e)
{
    for (unsigned i = 0; i < e->nrings; i++)
        if (e->rings[i].ok)
            io_uring_queue_exit(&e->rings[i].ring);
    free(e->rings);
    e->rings = NULL;
    e->nrings = 0;
}

static int start_uring(kvt__ioeng *e)
{
    unsigned n = e->o.threads ? e->o.threads : 1;
    if (!(e->rings = calloc(n, sizeof *e->rings)))
        return -ENOMEM;
    for (; e->nrings < n; e->nrings++) {
        int rc = io_uring_queue_init(e->o.depth, &e->rings[e->nrings].ring, 0);
        if (rc < 0) {
            free_rings(e);
            return rc;
        }
        e->rings[e->nrings].ok = true;
    }
    return 0;
}

int kvt__ioeng_new(const struct kvt__ioeng_opts *opts, kvt__ioeng **out)
{
    *out = NULL;
    if (opts->depth < 1 || opts->depth > 4096 || opts->req_size < 4096 ||
        opts->req_size > (1u << 30) || opts->req_size % 4096)
        return kvt__fail(KVT_EINVAL, "I/O engine: depth %u or request size %zu out of range",
                         opts->depth, opts->req_size);
    kvt__ioeng *e = calloc(1, sizeof *e);
    if (!e)
        return kvt__fail(KVT_ENOMEM, "cannot allocate the I/O engine");
    e->o = *opts;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    if (!opts->force_posix) {
        int rc = start_uring(e);
        e->uring = rc == 0;
        e->refused = rc;
    }
    if (!e->uring) {
        unsigned n = opts->threads;
        if (n && !(e->workers = calloc(n, sizeof *e->workers))) {
            kvt__ioeng_free(e);
            return kvt__fail(KVT_ENOMEM, "cannot allocate I/O workers");
        }
        for (; e->nworkers < n; e->nworkers++)
            if (pthread_create(&e->workers[e->nworkers], NULL, worker, e) != 0)
                break; /* fewer workers: still correct, the caller works too */
    }
    *out = e;
    return KVT_OK;
}

void kvt__ioeng_free(kvt__ioeng *e)
{
    if (!e)
        return;
    pthread_mutex_lock(&e->mu);
    e->stop = true;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
    for (unsigned i = 0; i < e->nworkers; i++)
        pthread_join(e->workers[i], NULL);
    free(e->workers);
    free_rings(e);
    pthread_cond_destroy(&e->cv);
    pthread_mutex_destroy(&e->mu);
    free(e);
}

const char *kvt__ioeng_mode(const kvt__ioeng *e) { return e->uring ? "io_uring" : "pread"; }

int kvt__ioeng_refused(const kvt__ioeng *e) { return e->refused; }

int kvt__ioeng_register(kvt__ioeng *e, void *base, size_t len)
{
    if (!e->uring)
        return KVT_ENOTSUP;
    if (e->reg_len)
        return KVT_EEXIST;
    struct iovec v = {base, len};
    for (unsigned i = 0; i < e->nrings; i++) {
        int rc = io_uring_register_buffers(&e->rings[i].ring, &v, 1);
        if (rc < 0) {
            while (i-- > 0)
                io_uring_unregister_buffers(&e->rings[i].ring);
            return rc;
        }
    }
    e->reg_base = base;
    e->reg_len = len;
    return KVT_OK;
}

void kvt__ioeng_counters(kvt__ioeng *e, struct kvt__ioeng_counters *out)
{
    out->batches = atomic_load(&e->batches);
    out->requests = atomic_load(&e->requests);
    out->resubmits = atomic_load(&e->resubmits);
    out->fixed = atomic_load(&e->fixed);
}
