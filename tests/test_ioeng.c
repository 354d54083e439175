/* kvtier tests — the block I/O engine's hooks (src/ioeng.h), in io_uring mode and in
 * pread mode, on real files: held transfers start only after ready() returned true (after
 * as many steps as it takes), and done() runs exactly once per transfer with its result
 * final. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "ioeng.h"
#include "kvtier/status.h"

#define MiB (1024u * 1024u)

static int tmp_file(const char *name)
{
    char p[512];
    const char *base = getenv("KVT_TEST_TMP");
    snprintf(p, sizeof p, "%s/ioeng-%s-%d", base ? base : "/tmp", name, (int)getpid());
    int fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    unlink(p);
    return fd;
}

static kvt__ioeng *engine(bool posix)
{
    struct kvt__ioeng_opts o = {.depth = 4, .req_size = MiB, .threads = 1, .force_posix = posix};
    kvt__ioeng *e = NULL;
    assert_int_equal(kvt__ioeng_new(&o, &e), KVT_OK);
    return e;
}

struct seen {
    unsigned char *head;
    kvt__io *ios;
    size_t n, steps, ready_calls, done_calls[8]; /* steps: ready() calls until it is done */
    int res_at_done[8];
    bool ready_before_any_done; /* its first step */
};

static bool on_ready(void *ctx)
{
    struct seen *s = ctx;
    if (s->ready_calls++ == 0) {
        s->ready_before_any_done = true;
        for (size_t i = 0; i < s->n; i++)
            s->ready_before_any_done &= s->done_calls[i] == 0;
    }
    if (s->ready_calls < s->steps)
        return false;
    memset(s->head, 'R', 4096); /* what the held transfer must carry */
    return true;
}

static void on_done(void *ctx, size_t i)
{
    struct seen *s = ctx;
    s->done_calls[i]++;
    s->res_at_done[i] = s->ios[i].res;
}

/* A put's shape: payload transfers first, the header page held until ready() sealed it,
 * in its fifth step. */
static void held_transfer_carries_what_ready_wrote(bool posix)
{
    kvt__ioeng *e = engine(posix);
    int fd = tmp_file("held");
    unsigned char *payload = aligned_alloc(4096, 8 * MiB), *head = aligned_alloc(4096, 4096);
    memset(payload, 'P', 8 * MiB);
    memset(head, 'X', 4096); /* unsealed */
    kvt__io io[2] = {{.fd = fd, .write = true, .buf = payload, .len = 8 * MiB, .off = 4096},
                     {.fd = fd, .write = true, .buf = head, .len = 4096, .off = 0}};
    struct seen s = {.head = head, .ios = io, .n = 2, .steps = 5};
    struct kvt__ioeng_hooks h = {.hold = 1, .ready = on_ready, .done = on_done, .ctx = &s};
    assert_int_equal(kvt__ioeng_run_hooked(e, io, 2, &h), KVT_OK);
    assert_int_equal(s.ready_calls, 5);
    assert_true(s.ready_before_any_done);
    assert_int_equal(s.done_calls[0], 1);
    assert_int_equal(s.done_calls[1], 1);
    unsigned char got[4096];
    assert_int_equal(pread(fd, got, sizeof got, 0), (ssize_t)sizeof got);
    for (size_t i = 0; i < sizeof got; i++)
        assert_int_equal(got[i], 'R');
    assert_int_equal(pread(fd, got, sizeof got, 4096 + 8 * MiB - 4096), (ssize_t)sizeof got);
    assert_int_equal(got[0], 'P');
    free(payload), free(head);
    close(fd);
    kvt__ioeng_free(e);
}

/* A batch read's shape: done() once per transfer with its final result, also for an
 * empty transfer and one that fails (a read past the end of the file). */
static void done_runs_once_per_transfer(bool posix)
{
    kvt__ioeng *e = engine(posix);
    int fd = tmp_file("done");
    unsigned char *data = aligned_alloc(4096, 6 * MiB), *back = aligned_alloc(4096, 6 * MiB);
    for (size_t i = 0; i < 6 * MiB; i++)
        data[i] = (unsigned char)(i * 7);
    assert_int_equal(pwrite(fd, data, 6 * MiB, 0), (ssize_t)(6 * MiB));
    kvt__io io[5] = {{.fd = fd, .buf = back, .len = 3 * MiB, .off = 0},
                     {.fd = fd, .buf = back + 3 * MiB, .len = 0, .off = 3 * MiB},
                     {.fd = fd, .buf = back + 3 * MiB, .len = 3 * MiB, .off = 3 * MiB},
                     {.fd = fd, .buf = data, .len = 4096, .off = 6 * MiB}, /* past the end */
                     {.fd = -1, .buf = data, .len = 4096, .off = 0}};     /* EBADF */
    struct seen s = {.ios = io, .n = 5};
    struct kvt__ioeng_hooks h = {.done = on_done, .ctx = &s};
    assert_int_not_equal(kvt__ioeng_run_hooked(e, io, 5, &h), KVT_OK);
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(s.done_calls[i], 1);
        assert_int_equal(s.res_at_done[i], io[i].res);
    }
    assert_int_equal(io[0].res, KVT_OK);
    assert_int_equal(io[1].res, KVT_OK);
    assert_int_equal(io[2].res, KVT_OK);
    assert_int_equal(io[3].res, KVT_ECORRUPT);
    assert_true(io[4].res < 0 && io[4].res != KVT_ECORRUPT);
    assert_memory_equal(back, data, 6 * MiB);
    free(data), free(back);
    close(fd);
    kvt__ioeng_free(e);
}

/* No transfers: ready still runs to the end; no hooks at all is plain kvt__ioeng_run. */
static void empty_batch_and_no_hooks(bool posix)
{
    kvt__ioeng *e = engine(posix);
    unsigned char head[4096];
    struct seen s = {.head = head, .steps = 2};
    struct kvt__ioeng_hooks h = {.ready = on_ready, .done = on_done, .ctx = &s};
    assert_int_equal(kvt__ioeng_run_hooked(e, NULL, 0, &h), KVT_OK);
    assert_int_equal(s.ready_calls, 2);
    int fd = tmp_file("plain");
    unsigned char *buf = aligned_alloc(4096, 4096);
    memset(buf, 1, 4096);
    kvt__io io = {.fd = fd, .write = true, .buf = buf, .len = 4096, .off = 0};
    assert_int_equal(kvt__ioeng_run_hooked(e, &io, 1, NULL), KVT_OK);
    free(buf);
    close(fd);
    kvt__ioeng_free(e);
}

static void uring_held(void **st) { (void)st, held_transfer_carries_what_ready_wrote(false); }
static void pread_held(void **st) { (void)st, held_transfer_carries_what_ready_wrote(true); }
static void uring_done(void **st) { (void)st, done_runs_once_per_transfer(false); }
static void pread_done(void **st) { (void)st, done_runs_once_per_transfer(true); }
static void uring_empty(void **st) { (void)st, empty_batch_and_no_hooks(false); }
static void pread_empty(void **st) { (void)st, empty_batch_and_no_hooks(true); }

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(uring_held), cmocka_unit_test(pread_held),
        cmocka_unit_test(uring_done), cmocka_unit_test(pread_done),
        cmocka_unit_test(uring_empty), cmocka_unit_test(pread_empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
