/* kvtier — the redis:// and unix:// connector: LMCache's RedisConnector layout.
 *
 * Two keys per chunk, no separator: <key string>metadata (the 28-byte header) and
 * <key string>kv_bytes (the payload); the payload is written first, so a reader that
 * finds the metadata finds a whole value. Values are binary-safe (length-prefixed RESP).
 *
 * hiredis 0.14 connects and parses RESP; this file moves the bytes itself, on a
 * non-blocking socket under poll(), so that every call has one end-to-end deadline (the
 * operation timeout), whatever the value size: hiredis' own timeouts bound each read or
 * write syscall, not the call. A small pool of connections lets the write-through worker
 * and readers run in parallel; a connection that failed or timed out is discarded, and
 * new connections are attempted at most once per remote_reconnect_interval_ms after a
 * failure, so an unreachable server costs each call nothing but a fast KVT_EUNAVAIL.
 * Payload writes go straight from the chunk to the socket (writev), without hiredis'
 * output buffer copy. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "backends/remote/remote.h"
#include "src/internal.h"

#define RDS_POOL_MAX 64
#define RDS_READ_CHUNK (256 * 1024) /* hiredis-parsed replies (small ones) */
#define RDS_IN_BUF (64 * 1024)      /* GET replies: headers; payloads bypass it */

struct rds {
    const kvt_backend_env *env;
    bool is_unix, save_meta;
    char host[256];
    int port, db;
    char path[PATH_MAX];
    char user[128];
    char pass[256];
    bool has_pass;
    int64_t op_ms, connect_ms, reconnect_ms;

    pthread_mutex_t mu;
    pthread_cond_t cv; /* a connection was checked in; monotonic clock */
    size_t n;
    redisContext *ctx[RDS_POOL_MAX]; /* NULL: not connected */
    bool busy[RDS_POOL_MAX];
    int64_t next_connect_ms; /* no connect attempt before this (set by a failure) */
    atomic_uint_fast64_t connects, connect_failures, discards, timeouts, corrupt;
};

/* ------------------------------------------------------------ URL */

/* redis://[[user]:password@]host[:port][/db] or unix://[[user]:password@]/path[?db=N]. */
static int parse_url(struct rds *r, const char *url)
{
    const char *s = strstr(url, "://") + 3, *at = NULL, *end;
    r->is_unix = strncasecmp(url, "unix", 4) == 0;
    r->port = 6379;
    /* The userinfo ends at the last '@' before the path: passwords may hold '@'. */
    for (const char *p = s; p < s + strcspn(s, "/"); p++)
        if (*p == '@')
            at = p;
    if (at) {
        const char *colon = memchr(s, ':', (size_t)(at - s));
        size_t ulen = colon ? (size_t)(colon - s) : 0;
        const char *pw = colon ? colon + 1 : s;
        size_t plen = (size_t)(at - pw);
        if (ulen >= sizeof r->user || plen >= sizeof r->pass)
            return kvt__fail(KVT_ECONFIG, "RemoteBackend: remote_url credentials too long");
        memcpy(r->user, s, ulen);
        r->user[ulen] = '\0';
        memcpy(r->pass, pw, plen);
        r->pass[plen] = '\0';
        r->has_pass = plen > 0;
        s = at + 1;
    }
    if (r->is_unix) {
        end = s + strcspn(s, "?");
        if (*s != '/' || (size_t)(end - s) >= sizeof r->path)
            return kvt__fail(KVT_ECONFIG, "RemoteBackend: unix:// needs an absolute socket path");
        memcpy(r->path, s, (size_t)(end - s));
        r->path[end - s] = '\0';
        if (*end == '?' && strncmp(end, "?db=", 4) == 0)
            r->db = atoi(end + 4);
        return KVT_OK;
    }
    end = s + strcspn(s, "/");
    const char *colon = NULL;
    if (*s == '[') { /* [v6]:port */
        const char *rb = memchr(s, ']', (size_t)(end - s));
        if (!rb)
            return kvt__fail(KVT_ECONFIG, "RemoteBackend: bad host in remote_url");
        colon = rb + 1 < end && rb[1] == ':' ? rb + 1 : NULL;
        if ((size_t)(rb - s - 1) >= sizeof r->host)
            return kvt__fail(KVT_ECONFIG, "RemoteBackend: host too long in remote_url");
        memcpy(r->host, s + 1, (size_t)(rb - s - 1));
        r->host[rb - s - 1] = '\0';
    } else {
        colon = memchr(s, ':', (size_t)(end - s));
        const char *hend = colon ? colon : end;
        if (hend == s || (size_t)(hend - s) >= sizeof r->host)
            return kvt__fail(KVT_ECONFIG, "RemoteBackend: remote_url has no host");
        memcpy(r->host, s, (size_t)(hend - s));
        r->host[hend - s] = '\0';
    }
    if (colon) {
        char *e = NULL;
        long port = strtol(colon + 1, &e, 10);
        if (e != end || port < 1 || port > 65535)
            return kvt__fail(KVT_ECONFIG, "RemoteBackend: bad port in remote_url");
        r->port = (int)port;
    }
    if (*end == '/' && end[1]) {
        char *e = NULL;
        long db = strtol(end + 1, &e, 10);
        if (*e || db < 0 || db > 1000000)
            return kvt__fail(KVT_ECONFIG, "RemoteBackend: bad database number in remote_url");
        r->db = (int)db;
    }
    return KVT_OK;
}

/* ------------------------------------------------------------ socket I/O */

static int remaining(int64_t deadline)
{
    int64_t left = deadline - kvt__now_ms();
    return left <= 0 ? 0 : left > INT_MAX ? INT_MAX : (int)left;
}

/* Waits until the socket is ready for `events`; KVT_ETIMEDOUT past the deadline. */
static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        struct pollfd p = {fd, events, 0};
        int left = remaining(deadline);
        if (left == 0)
            return KVT_ETIMEDOUT;
        int n = poll(&p, 1, left);
        if (n > 0)
            return KVT_OK; /* errors and hangups surface in the read or write */
        if (n == 0)
            return KVT_ETIMEDOUT;
        if (errno != EINTR)
            return KVT_EIO;
    }
}

/* read(2) of at most `len` bytes by the deadline: how many (> 0), else KVT_EIO (the server
 * closed the connection, or a socket error) or KVT_ETIMEDOUT. */
static ssize_t read_by(int fd, void *buf, size_t len, int64_t deadline)
{
    for (;;) {
        ssize_t n = read(fd, buf, len);
        if (n > 0)
            return n;
        if (n == 0)
            return KVT_EIO;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return KVT_EIO;
        int rc = wait_fd(fd, POLLIN, deadline);
        if (rc != KVT_OK)
            return rc;
    }
}

/* Writes every byte of iov[0..n) (modified) by the deadline. */
static int send_iov(redisContext *c, struct iovec *iov, int n, int64_t deadline)
{
    while (n > 0) {
        ssize_t w = writev(c->fd, iov, n > IOV_MAX ? IOV_MAX : n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                return KVT_EIO;
            int rc = wait_fd(c->fd, POLLOUT, deadline);
            if (rc != KVT_OK)
                return rc;
            continue;
        }
        iov = kvt__rmt_iov_advance(iov, &n, (size_t)w);
    }
    return KVT_OK;
}

/* RESP commands, formatted here: keys and values are length-prefixed, binary-safe. */
struct cmd {
    char *p;
    size_t len, cap;
    bool oom;
};

static void cmd_raw(struct cmd *c, const void *data, size_t len)
{
    if (c->oom)
        return;
    if (c->len + len > c->cap) {
        size_t cap = c->cap ? c->cap : 1024;
        while (cap < c->len + len)
            cap *= 2;
        char *p = realloc(c->p, cap);
        if (!p) {
            c->oom = true;
            return;
        }
        c->p = p;
        c->cap = cap;
    }
    memcpy(c->p + c->len, data, len);
    c->len += len;
}

static void cmd_fmt(struct cmd *c, const char *prefix, size_t n)
{
    char num[32];
    int k = snprintf(num, sizeof num, "%s%zu\r\n", prefix, n);
    cmd_raw(c, num, (size_t)k);
}

/* Appends one argument; `suffix` (may be NULL) is glued to it (LMCache's key suffixes). */
static void cmd_arg(struct cmd *c, const void *a, size_t n, const char *suffix)
{
    size_t sn = suffix ? strlen(suffix) : 0;
    cmd_fmt(c, "$", n + sn);
    cmd_raw(c, a, n);
    if (sn)
        cmd_raw(c, suffix, sn);
    cmd_raw(c, "\r\n", 2);
}

/* "<verb> <key><suffix>" */
static void cmd_key(struct cmd *c, const char *verb, const struct kvt__rmt_item *it,
                    const char *suffix)
{
    cmd_fmt(c, "*", 2);
    cmd_arg(c, verb, strlen(verb), NULL);
    cmd_arg(c, it->key, it->klen, suffix);
}

/* The next reply, by the deadline. */
static int recv_reply(redisContext *c, int64_t deadline, redisReply **out)
{
    static _Thread_local char buf[RDS_READ_CHUNK];
    void *rep = NULL;
    *out = NULL;
    for (;;) {
        if (redisReaderGetReply(c->reader, &rep) != REDIS_OK)
            return KVT_EIO; /* protocol error */
        if (rep) {
            *out = rep;
            return KVT_OK;
        }
        ssize_t n = read_by(c->fd, buf, sizeof buf, deadline);
        if (n < 0)
            return (int)n;
        if (redisReaderFeed(c->reader, buf, (size_t)n) != REDIS_OK)
            return KVT_EIO;
    }
}

/* Sends `c` and reads `n` replies into reps[] (freed by the caller with drop_replies). */
static int roundtrip(redisContext *ctx, struct cmd *c, redisReply **reps, size_t n,
                     int64_t deadline)
{
    if (c->oom)
        return KVT_ENOMEM;
    struct iovec iov = {c->p, c->len};
    int rc = send_iov(ctx, &iov, 1, deadline);
    for (size_t i = 0; i < n; i++)
        reps[i] = NULL;
    for (size_t i = 0; rc == KVT_OK && i < n; i++)
        rc = recv_reply(ctx, deadline, &reps[i]);
    return rc;
}

static void drop_replies(redisReply **reps, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (reps[i])
            freeReplyObject(reps[i]);
}

/* ------------------------------------------------------------ connections */

static bool pow2(uint64_t n) { return (n & (n - 1)) == 0; }

static int error_reply(const redisReply *rep)
{
    return rep && rep->type == REDIS_REPLY_ERROR ? KVT_EIO : KVT_OK;
}

/* AUTH and SELECT on a fresh connection. KVT_EPERM for refused credentials. */
static int handshake(struct rds *r, redisContext *c, int64_t deadline)
{
    struct cmd cmd = {0};
    redisReply *rep = NULL;
    int rc = KVT_OK;
    if (r->has_pass) {
        cmd_fmt(&cmd, "*", r->user[0] ? 3 : 2);
        cmd_arg(&cmd, "AUTH", 4, NULL);
        if (r->user[0])
            cmd_arg(&cmd, r->user, strlen(r->user), NULL);
        cmd_arg(&cmd, r->pass, strlen(r->pass), NULL);
        rc = roundtrip(c, &cmd, &rep, 1, deadline);
        if (rc == KVT_OK && rep->type == REDIS_REPLY_ERROR) {
            /* The server's text ("WRONGPASS invalid username-password pair") holds no secret. */
            kvt_backend_log(r->env, KVT_LOG_ERROR, "event=redis_auth_failed reply=\"%.120s\"",
                            rep->str);
            rc = kvt__fail(KVT_EPERM, "RemoteBackend: redis AUTH failed: %.120s", rep->str);
        }
        drop_replies(&rep, 1);
        cmd.len = 0;
    }
    if (rc == KVT_OK && r->db) {
        char db[16];
        int n = snprintf(db, sizeof db, "%d", r->db);
        cmd_fmt(&cmd, "*", 2);
        cmd_arg(&cmd, "SELECT", 6, NULL);
        cmd_arg(&cmd, db, (size_t)n, NULL);
        rc = roundtrip(c, &cmd, &rep, 1, deadline);
        if (rc == KVT_OK && rep->type == REDIS_REPLY_ERROR)
            rc = kvt__fail(KVT_ECONFIG, "RemoteBackend: redis SELECT %d failed: %.120s", r->db,
                           rep->str);
        drop_replies(&rep, 1);
    }
    free(cmd.p);
    return rc;
}

/* A new connection, by the deadline. */
static int connect_one(struct rds *r, int64_t deadline, redisContext **out)
{
    int64_t ms = r->connect_ms;
    if (ms > remaining(deadline))
        ms = remaining(deadline);
    if (ms <= 0)
        return kvt__fail(KVT_ETIMEDOUT, "RemoteBackend: no time left to connect");
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    redisContext *c = r->is_unix ? redisConnectUnixWithTimeout(r->path, tv)
                                 : redisConnectWithTimeout(r->host, r->port, tv);
    int rc = KVT_OK;
    if (!c || c->err) {
        uint64_t n = atomic_fetch_add(&r->connect_failures, 1) + 1;
        if (pow2(n))
            kvt_backend_log(r->env, KVT_LOG_WARN, "event=redis_connect_failed failures=%llu "
                            "error=\"%s\"", (unsigned long long)n, c ? c->errstr : "no memory");
        rc = c && (strstr(c->errstr, "timed out") || strstr(c->errstr, "temporarily"))
                 ? KVT_ETIMEDOUT : KVT_EUNAVAIL;
        rc = kvt__fail(rc, "RemoteBackend: cannot connect to redis (%s)", kvt_strerror(rc));
    } else {
        int fl = fcntl(c->fd, F_GETFL);
        if (fl < 0 || fcntl(c->fd, F_SETFL, fl | O_NONBLOCK) < 0)
            rc = kvt__fail(KVT_EIO, "RemoteBackend: cannot make the redis socket non-blocking");
        if (!r->is_unix) { /* large values: let the kernel keep the pipe full */
            int sz = 4 << 20;
            setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
            setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
        }
        if (rc == KVT_OK)
            rc = handshake(r, c, deadline);
        if (rc == KVT_ETIMEDOUT || rc == KVT_EIO)
            rc = kvt__fail(rc, "RemoteBackend: redis handshake failed (%s)", kvt_strerror(rc));
    }
    if (rc != KVT_OK) {
        if (c)
            redisFree(c);
        return rc;
    }
    uint64_t n = atomic_fetch_add(&r->connects, 1) + 1;
    if (n > 1 && pow2(n - 1))
        kvt_backend_log(r->env, KVT_LOG_INFO, "event=redis_reconnected connects=%llu",
                        (unsigned long long)n);
    *out = c;
    return KVT_OK;
}

/* A connection for one call: slot index in *slot. Waits for a free slot by the deadline;
 * connects one if needed, unless a failure happened less than reconnect_ms ago. */
static int checkout(struct rds *r, int64_t deadline, size_t *slot, redisContext **out)
{
    size_t i = 0;
    pthread_mutex_lock(&r->mu);
    for (;;) {
        size_t free_dead = r->n;
        for (i = 0; i < r->n; i++) {
            if (r->busy[i])
                continue;
            if (r->ctx[i])
                break;
            if (free_dead == r->n)
                free_dead = i;
        }
        if (i == r->n)
            i = free_dead;
        if (i < r->n)
            break;
        int64_t left = remaining(deadline);
        if (left == 0) {
            pthread_mutex_unlock(&r->mu);
            return kvt__fail(KVT_ETIMEDOUT, "RemoteBackend: every redis connection stayed busy");
        }
        struct timespec ts = kvt__deadline(left);
        pthread_cond_timedwait(&r->cv, &r->mu, &ts);
    }
    redisContext *c = r->ctx[i];
    int64_t now = kvt__now_ms();
    if (!c && now < r->next_connect_ms) {
        int64_t wait = r->next_connect_ms - now;
        pthread_mutex_unlock(&r->mu);
        return kvt__fail(KVT_EUNAVAIL, "RemoteBackend: redis unreachable; next connect attempt "
                         "in %lld ms", (long long)wait);
    }
    r->busy[i] = true;
    pthread_mutex_unlock(&r->mu);
    int rc = KVT_OK;
    if (!c && (rc = connect_one(r, deadline, &c)) != KVT_OK) {
        pthread_mutex_lock(&r->mu);
        r->busy[i] = false;
        r->next_connect_ms = kvt__now_ms() + r->reconnect_ms;
        pthread_cond_signal(&r->cv);
        pthread_mutex_unlock(&r->mu);
        return rc;
    }
    *slot = i;
    *out = c;
    return KVT_OK;
}

/* Returns the connection; one whose call failed (any status but a reply-level one) is
 * discarded: its stream may hold half a reply. */
static void checkin(struct rds *r, size_t slot, redisContext *c, int rc)
{
    bool broken = rc == KVT_ETIMEDOUT || rc == KVT_EIO || rc == KVT_ENOMEM;
    if (rc == KVT_ETIMEDOUT)
        atomic_fetch_add(&r->timeouts, 1);
    if (broken) {
        uint64_t n = atomic_fetch_add(&r->discards, 1) + 1;
        if (pow2(n))
            kvt_backend_log(r->env, KVT_LOG_WARN, "event=redis_connection_dropped status=%s "
                            "drops=%llu", kvt_status_name(rc), (unsigned long long)n);
        redisFree(c);
        c = NULL;
    }
    pthread_mutex_lock(&r->mu);
    r->ctx[slot] = c;
    r->busy[slot] = false;
    if (broken)
        r->next_connect_ms = kvt__now_ms() + r->reconnect_ms;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

static void rds_close(void *conn)
{
    struct rds *r = conn;
    /* kvt_backend_stats has no fields for these: the close line is where they show. */
    kvt_backend_log(r->env, KVT_LOG_INFO, "event=redis_closed connects=%llu "
                    "connect_failures=%llu dropped=%llu timeouts=%llu corrupt=%llu",
                    (unsigned long long)atomic_load(&r->connects),
                    (unsigned long long)atomic_load(&r->connect_failures),
                    (unsigned long long)atomic_load(&r->discards),
                    (unsigned long long)atomic_load(&r->timeouts),
                    (unsigned long long)atomic_load(&r->corrupt));
    for (size_t i = 0; i < r->n; i++)
        if (r->ctx[i])
            redisFree(r->ctx[i]);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    explicit_bzero(r->pass, sizeof r->pass);
    free(r);
}

static int rds_open(const struct kvt__rmt_params *p, void **conn)
{
    struct rds *r = calloc(1, sizeof *r);
    if (!r)
        return kvt__fail(KVT_ENOMEM, "cannot allocate redis connector");
    int rc = parse_url(r, p->url);
    if (rc != KVT_OK) {
        free(r);
        return rc;
    }
    r->env = p->env;
    r->save_meta = p->save_meta;
    r->op_ms = p->op_timeout_ms;
    r->connect_ms = p->connect_timeout_ms;
    r->reconnect_ms = p->reconnect_interval_ms;
    r->n = p->pool_size < 1 ? 1 : p->pool_size > RDS_POOL_MAX ? RDS_POOL_MAX : (size_t)p->pool_size;
    pthread_mutex_init(&r->mu, NULL);
    kvt__cond_init_monotonic(&r->cv);
    /* One connection now: a wrong password or database is a clear error at create. An
     * unreachable server is not: the tier starts failing (the breaker opens) and
     * recovers by itself once the server answers. */
    redisContext *c = NULL;
    rc = connect_one(r, kvt__now_ms() + r->connect_ms, &c);
    if (rc == KVT_EPERM || rc == KVT_ECONFIG) {
        rds_close(r);
        return rc;
    }
    if (rc == KVT_OK)
        r->ctx[0] = c;
    else
        r->next_connect_ms = kvt__now_ms() + r->reconnect_ms;
    kvt_backend_log(p->env, rc == KVT_OK ? KVT_LOG_INFO : KVT_LOG_WARN,
                    "event=redis_open transport=%s pool=%zu db=%d auth=%d connected=%d",
                    r->is_unix ? "unix" : "tcp", r->n, r->db, r->has_pass, rc == KVT_OK);
    *conn = r;
    return KVT_OK;
}

/* ------------------------------------------------------------ values */

static void corrupt(struct rds *r, const char *why)
{
    uint64_t n = atomic_fetch_add(&r->corrupt, 1) + 1;
    if (pow2(n))
        kvt_backend_log(r->env, KVT_LOG_WARN, "event=corrupt_value reason=%s count=%llu", why,
                        (unsigned long long)n);
}

/* GET replies are read here, not by hiredis: once a bulk reply's length is known and the
 * header checked, the payload goes from the socket straight into the sink's buffer (a
 * pool object, or the caller's buffer for get_into), with no reply object and no copy.
 * Bytes read past the current reply (the next reply of the pipeline) wait in `buf`; a
 * request leaves nothing behind, since the server sends only the replies it was asked for. */
struct rin {
    int fd;
    int64_t deadline;
    size_t pos, len;
    char buf[RDS_IN_BUF];
};

/* Reads more bytes into in->buf (compacting it first). */
static int rin_fill(struct rin *in)
{
    if (in->pos > 0) {
        memmove(in->buf, in->buf + in->pos, in->len - in->pos);
        in->len -= in->pos;
        in->pos = 0;
    }
    if (in->len == sizeof in->buf)
        return KVT_EIO; /* a reply line longer than the buffer: not a GET reply */
    ssize_t n = read_by(in->fd, in->buf + in->len, sizeof in->buf - in->len, in->deadline);
    if (n < 0)
        return (int)n;
    in->len += (size_t)n;
    return KVT_OK;
}

/* The next CRLF-terminated line (without the CRLF), consumed; valid until the next call. */
static int rin_line(struct rin *in, const char **line, size_t *n)
{
    for (;;) {
        const char *p = in->buf + in->pos;
        size_t avail = in->len - in->pos;
        const char *cr = avail ? memchr(p, '\r', avail) : NULL;
        if (cr && (size_t)(cr - p) + 1 < avail) {
            if (cr[1] != '\n')
                return KVT_EIO;
            *line = p;
            *n = (size_t)(cr - p);
            in->pos += *n + 2;
            return KVT_OK;
        }
        int rc = rin_fill(in);
        if (rc != KVT_OK)
            return rc;
    }
}

/* Moves `len` payload bytes to `dst` (NULL: discards them), then the closing CRLF. What
 * the buffer holds is copied; the rest is read from the socket straight into `dst`. */
static int rin_take(struct rin *in, char *dst, size_t len)
{
    size_t have = in->len - in->pos, k = have < len ? have : len;
    if (dst)
        memcpy(dst, in->buf + in->pos, k);
    in->pos += k;
    len -= k;
    if (dst)
        dst += k;
    while (len > 0) {
        char *to = dst;
        size_t want = len;
        if (!dst) { /* discard through the buffer (empty here: all of it was payload) */
            in->pos = in->len = 0;
            to = in->buf;
            want = len < sizeof in->buf ? len : sizeof in->buf;
        }
        ssize_t n = read_by(in->fd, to, want, in->deadline);
        if (n < 0)
            return (int)n;
        len -= (size_t)n;
        if (dst)
            dst += n;
    }
    while (in->len - in->pos < 2) {
        int rc = rin_fill(in);
        if (rc != KVT_OK)
            return rc;
    }
    if (memcmp(in->buf + in->pos, "\r\n", 2) != 0)
        return KVT_EIO;
    in->pos += 2;
    return KVT_OK;
}

enum { RB_BULK, RB_NIL, RB_ERROR, RB_OTHER };

/* The head of one GET reply: a bulk string (its length in *blen, payload not read yet),
 * nil, an error reply (its text, truncated, in err) or a one-line reply of another type
 * (consumed). An array or a malformed line is a protocol error (KVT_EIO). */
static int rin_head(struct rin *in, int *kind, size_t *blen, char *err, size_t errcap)
{
    const char *l;
    size_t n;
    int rc = rin_line(in, &l, &n);
    if (rc != KVT_OK)
        return rc;
    if (n == 0)
        return KVT_EIO;
    switch (l[0]) {
    case '$': {
        if (n == 3 && l[1] == '-' && l[2] == '1') {
            *kind = RB_NIL;
            return KVT_OK;
        }
        uint64_t v = 0;
        if (n < 2 || n > 20)
            return KVT_EIO;
        for (size_t i = 1; i < n; i++) {
            if (l[i] < '0' || l[i] > '9')
                return KVT_EIO;
            v = v * 10 + (uint64_t)(l[i] - '0');
        }
        if (v > (uint64_t)SIZE_MAX / 2)
            return KVT_EIO;
        *kind = RB_BULK;
        *blen = (size_t)v;
        return KVT_OK;
    }
    case '-': {
        size_t k = n - 1 < errcap - 1 ? n - 1 : errcap - 1;
        memcpy(err, l + 1, k);
        err[k] = '\0';
        *kind = RB_ERROR;
        return KVT_OK;
    }
    case '+':
    case ':':
        *kind = RB_OTHER;
        return KVT_OK;
    default:
        return KVT_EIO;
    }
}

/* Reads the replies of one item's GET metadata (when the values carry headers) and GET
 * kv_bytes. Returns the item's status in *st (KVT_OK: payload in the sink's buffer);
 * the function's own status is the stream's (not KVT_OK: the connection is lost). */
static int read_value(struct rds *r, struct rin *in, const struct kvt__rmt_item *it, int *st)
{
    unsigned char hdr[KVT__RMT_HDR];
    char err[128] = "", verr[128] = "";
    int mkind = RB_BULK, vkind, rc;
    size_t mlen = 0, vlen = 0;
    bool meta_ok = true;
    if (r->save_meta) {
        if ((rc = rin_head(in, &mkind, &mlen, err, sizeof err)) != KVT_OK)
            return rc;
        if (mkind == RB_BULK) {
            meta_ok = mlen == KVT__RMT_HDR;
            if ((rc = rin_take(in, meta_ok ? (char *)hdr : NULL, mlen)) != KVT_OK)
                return rc;
        }
    }
    if ((rc = rin_head(in, &vkind, &vlen, verr, sizeof verr)) != KVT_OK)
        return rc;
    void *buf = NULL;
    kvt_chunk_meta m;
    if (mkind == RB_ERROR || vkind == RB_ERROR) {
        kvt_backend_log(r->env, KVT_LOG_WARN, "event=redis_error_reply reply=\"%.120s\"",
                        mkind == RB_ERROR ? err : verr);
        *st = KVT_EIO;
    } else if (mkind == RB_NIL || vkind == RB_NIL) {
        *st = KVT_ENOENT;
    } else if (mkind != RB_BULK || vkind != RB_BULK) {
        corrupt(r, "not_a_string");
        *st = KVT_ENOENT;
    } else if (!meta_ok || kvt__rmt_hdr_check(r->save_meta ? hdr : NULL,
                                              r->save_meta ? KVT__RMT_HDR : 0, vlen, &m) != KVT_OK) {
        corrupt(r, "length_mismatch");
        *st = KVT_ENOENT;
    } else {
        *st = it->sink->reserve(it->sink, vlen, &m, &buf);
    }
    if (vkind != RB_BULK)
        return KVT_OK;
    return rin_take(in, *st == KVT_OK ? buf : NULL, vlen); /* a payload not taken is skipped */
}

static void cmd_get(struct rds *r, struct cmd *c, const struct kvt__rmt_item *it)
{
    if (r->save_meta)
        cmd_key(c, "GET", it, "metadata");
    cmd_key(c, "GET", it, "kv_bytes");
}

static int rds_get_many(void *conn, size_t n, const struct kvt__rmt_item *items, int *statuses)
{
    static _Thread_local struct rin in;
    struct rds *r = conn;
    int64_t deadline = kvt__now_ms() + r->op_ms;
    size_t slot;
    redisContext *c;
    struct cmd cmd = {0};
    int rc = checkout(r, deadline, &slot, &c);
    for (size_t i = 0; i < n; i++)
        statuses[i] = rc;
    if (rc != KVT_OK)
        return rc;
    for (size_t i = 0; i < n; i++)
        cmd_get(r, &cmd, &items[i]);
    struct iovec iov = {cmd.p, cmd.len};
    rc = cmd.oom ? KVT_ENOMEM : send_iov(c, &iov, 1, deadline);
    /* One pipeline; replies come in order and each payload lands in its sink as it
     * arrives, so a batch holds no value in memory but the sinks'. */
    in.fd = c->fd;
    in.deadline = deadline;
    in.pos = in.len = 0;
    for (size_t i = 0; rc == KVT_OK && i < n; i++)
        rc = read_value(r, &in, &items[i], &statuses[i]);
    if (rc == KVT_OK && in.pos != in.len)
        rc = KVT_EIO; /* bytes nobody asked for: the stream cannot be trusted */
    if (rc != KVT_OK)
        for (size_t i = 0; i < n; i++)
            statuses[i] = rc;
    free(cmd.p);
    checkin(r, slot, c, rc);
    return rc == KVT_OK ? KVT_OK : kvt__fail(rc, "RemoteBackend: redis batched get failed (%s)",
                                             kvt_strerror(rc));
}

static int rds_get(void *conn, const struct kvt__rmt_item *it)
{
    int st = KVT_EIO;
    int rc = rds_get_many(conn, 1, it, &st);
    return rc != KVT_OK ? rc : st;
}

static int rds_put(void *conn, const struct kvt__rmt_item *it, const void *hdr, size_t hlen,
                   const void *data, size_t len)
{
    struct rds *r = conn;
    int64_t deadline = kvt__now_ms() + r->op_ms;
    size_t slot;
    redisContext *c;
    struct cmd head = {0}, tail = {0};
    redisReply *rep[2] = {NULL, NULL};
    size_t nrep = hlen ? 2 : 1;
    int rc = checkout(r, deadline, &slot, &c);
    if (rc != KVT_OK)
        return rc;
    /* SET <key>kv_bytes <payload> (the payload is sent from the chunk itself), then
     * SET <key>metadata <header>, pipelined. */
    cmd_fmt(&head, "*", 3);
    cmd_arg(&head, "SET", 3, NULL);
    cmd_arg(&head, it->key, it->klen, "kv_bytes");
    cmd_fmt(&head, "$", len);
    cmd_raw(&tail, "\r\n", 2);
    if (hlen) {
        cmd_fmt(&tail, "*", 3);
        cmd_arg(&tail, "SET", 3, NULL);
        cmd_arg(&tail, it->key, it->klen, "metadata");
        cmd_arg(&tail, hdr, hlen, NULL);
    }
    struct iovec iov[3] = {{head.p, head.len}, {(void *)data, len}, {tail.p, tail.len}};
    rc = head.oom || tail.oom ? KVT_ENOMEM : send_iov(c, iov, 3, deadline);
    for (size_t k = 0; rc == KVT_OK && k < nrep; k++)
        rc = recv_reply(c, deadline, &rep[k]);
    int reply_rc = KVT_OK;
    for (size_t k = 0; rc == KVT_OK && k < nrep; k++)
        if (error_reply(rep[k]) && reply_rc == KVT_OK) {
            kvt_backend_log(r->env, KVT_LOG_WARN, "event=redis_error_reply op=put reply=\"%.120s\"",
                            rep[k]->str);
            reply_rc = kvt__fail(KVT_EIO, "RemoteBackend: redis refused a write: %.80s",
                                 rep[k]->str);
        }
    drop_replies(rep, nrep);
    free(head.p);
    free(tail.p);
    checkin(r, slot, c, rc);
    if (rc != KVT_OK)
        return kvt__fail(rc, "RemoteBackend: redis put failed (%s)", kvt_strerror(rc));
    return reply_rc;
}

/* Runs one pipelined request of `nrep` replies on a pooled connection. */
static int request(struct rds *r, struct cmd *cmd, redisReply **rep, size_t nrep, int64_t deadline)
{
    size_t slot;
    redisContext *c;
    int rc = checkout(r, deadline, &slot, &c);
    if (rc != KVT_OK) {
        for (size_t i = 0; i < nrep; i++)
            rep[i] = NULL;
        return rc;
    }
    rc = roundtrip(c, cmd, rep, nrep, deadline);
    checkin(r, slot, c, rc);
    if (rc != KVT_OK) {
        drop_replies(rep, nrep);
        return kvt__fail(rc, "RemoteBackend: redis request failed (%s)", kvt_strerror(rc));
    }
    for (size_t i = 0; i < nrep; i++)
        if (error_reply(rep[i])) {
            kvt_backend_log(r->env, KVT_LOG_WARN, "event=redis_error_reply reply=\"%.120s\"",
                            rep[i]->str);
            drop_replies(rep, nrep);
            return kvt__fail(KVT_EIO, "RemoteBackend: redis error reply");
        }
    return KVT_OK;
}

static int rds_contains(void *conn, const struct kvt__rmt_item *it)
{
    struct rds *r = conn;
    int64_t deadline = kvt__now_ms() + r->op_ms;
    struct cmd cmd = {0};
    redisReply *rep[2];
    size_t nrep = r->save_meta ? 2 : 1;
    if (r->save_meta)
        cmd_key(&cmd, "EXISTS", it, "metadata");
    cmd_key(&cmd, "EXISTS", it, "kv_bytes");
    int rc = request(r, &cmd, rep, nrep, deadline);
    free(cmd.p);
    if (rc != KVT_OK)
        return rc;
    bool meta = rep[0]->type == REDIS_REPLY_INTEGER && rep[0]->integer > 0;
    bool val = rep[nrep - 1]->type == REDIS_REPLY_INTEGER && rep[nrep - 1]->integer > 0;
    drop_replies(rep, nrep);
    if (meta && !val) { /* LMCache: a header without its payload is deleted, a miss */
        struct cmd del = {0};
        redisReply *d = NULL;
        cmd_key(&del, "DEL", it, "metadata");
        if (request(r, &del, &d, 1, deadline) == KVT_OK)
            drop_replies(&d, 1);
        free(del.p);
    }
    return meta && val;
}

/* The run of stored keys from items[0], in one pipeline: EXISTS of every key's metadata
 * (when values carry headers) and kv_bytes. As contains(): a header without its payload
 * is deleted (LMCache) and ends the run. An error counts nothing (a miss). */
static size_t rds_count_prefix(void *conn, size_t n, const struct kvt__rmt_item *items)
{
    struct rds *r = conn;
    int64_t deadline = kvt__now_ms() + r->op_ms;
    size_t per = r->save_meta ? 2 : 1, hit = 0;
    if (n == 0 || n > SIZE_MAX / (2 * sizeof(redisReply *)))
        return 0;
    redisReply **rep = malloc(n * per * sizeof *rep);
    struct cmd cmd = {0};
    if (!rep)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (r->save_meta)
            cmd_key(&cmd, "EXISTS", &items[i], "metadata");
        cmd_key(&cmd, "EXISTS", &items[i], "kv_bytes");
    }
    int rc = request(r, &cmd, rep, n * per, deadline);
    free(cmd.p);
    if (rc != KVT_OK) {
        free(rep);
        return 0;
    }
    bool orphan = false;
    for (; hit < n; hit++) {
        const redisReply *m = rep[hit * per], *v = rep[hit * per + per - 1];
        bool meta = m->type == REDIS_REPLY_INTEGER && m->integer > 0;
        bool val = v->type == REDIS_REPLY_INTEGER && v->integer > 0;
        if (!(meta && val)) {
            orphan = meta && !val;
            break;
        }
    }
    drop_replies(rep, n * per);
    free(rep);
    if (orphan) {
        struct cmd del = {0};
        redisReply *d = NULL;
        cmd_key(&del, "DEL", &items[hit], "metadata");
        if (request(r, &del, &d, 1, deadline) == KVT_OK)
            drop_replies(&d, 1);
        free(del.p);
    }
    return hit;
}

static int rds_remove(void *conn, const struct kvt__rmt_item *it)
{
    struct rds *r = conn;
    struct cmd cmd = {0};
    redisReply *rep = NULL;
    cmd_fmt(&cmd, "*", 3);
    cmd_arg(&cmd, "DEL", 3, NULL);
    cmd_arg(&cmd, it->key, it->klen, "kv_bytes");
    cmd_arg(&cmd, it->key, it->klen, "metadata");
    int rc = request(r, &cmd, &rep, 1, kvt__now_ms() + r->op_ms);
    free(cmd.p);
    if (rc != KVT_OK)
        return rc;
    rc = rep->type == REDIS_REPLY_INTEGER && rep->integer > 0 ? KVT_OK : KVT_ENOENT;
    drop_replies(&rep, 1);
    return rc;
}

/* Deletes the keys of one SCAN page that match `pattern`; counts kv_bytes keys. */
static int clear_page(struct rds *r, const redisReply *keys, uint64_t *chunks)
{
    if (keys->elements == 0)
        return KVT_OK;
    struct cmd cmd = {0};
    redisReply *rep = NULL;
    cmd_fmt(&cmd, "*", keys->elements + 1);
    cmd_arg(&cmd, "UNLINK", 6, NULL);
    for (size_t i = 0; i < keys->elements; i++) {
        const redisReply *k = keys->element[i];
        cmd_arg(&cmd, k->str, k->len, NULL);
        if (k->len >= 8 && memcmp(k->str + k->len - 8, "kv_bytes", 8) == 0)
            (*chunks)++;
    }
    int rc = request(r, &cmd, &rep, 1, kvt__now_ms() + r->op_ms);
    free(cmd.p);
    drop_replies(&rep, 1);
    return rc;
}

/* Removes every LMCache-shaped key (*kv_bytes, *metadata) of the database: on a shared
 * Redis that is every engine's chunks (docs/remote.md). Each SCAN step has its own
 * deadline. */
static int rds_clear(void *conn, uint64_t *chunks)
{
    struct rds *r = conn;
    static const char *const pattern[] = {"*kv_bytes", "*metadata"};
    int rc = KVT_OK;
    for (size_t p = 0; p < 2 && rc == KVT_OK; p++) {
        char cursor[32] = "0";
        do {
            struct cmd cmd = {0};
            redisReply *rep = NULL;
            cmd_fmt(&cmd, "*", 6);
            cmd_arg(&cmd, "SCAN", 4, NULL);
            cmd_arg(&cmd, cursor, strlen(cursor), NULL);
            cmd_arg(&cmd, "MATCH", 5, NULL);
            cmd_arg(&cmd, pattern[p], strlen(pattern[p]), NULL);
            cmd_arg(&cmd, "COUNT", 5, NULL);
            cmd_arg(&cmd, "1000", 4, NULL);
            rc = request(r, &cmd, &rep, 1, kvt__now_ms() + r->op_ms);
            free(cmd.p);
            if (rc != KVT_OK)
                break;
            if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
                rep->element[0]->type != REDIS_REPLY_STRING ||
                rep->element[1]->type != REDIS_REPLY_ARRAY || rep->element[0]->len >= sizeof cursor)
                rc = kvt__fail(KVT_EIO, "RemoteBackend: unexpected SCAN reply");
            else {
                memcpy(cursor, rep->element[0]->str, rep->element[0]->len);
                cursor[rep->element[0]->len] = '\0';
                rc = clear_page(r, rep->element[1], chunks);
            }
            drop_replies(&rep, 1);
        } while (rc == KVT_OK && strcmp(cursor, "0") != 0);
    }
    return rc;
}

static int rds_ping(void *conn)
{
    struct rds *r = conn;
    struct cmd cmd = {0};
    redisReply *rep = NULL;
    cmd_fmt(&cmd, "*", 1);
    cmd_arg(&cmd, "PING", 4, NULL);
    int rc = request(r, &cmd, &rep, 1, kvt__now_ms() + r->op_ms);
    free(cmd.p);
    if (rc == KVT_OK && !(rep->type == REDIS_REPLY_STATUS && strcmp(rep->str, "PONG") == 0))
        rc = kvt__fail(KVT_EIO, "RemoteBackend: redis PING did not answer PONG");
    drop_replies(&rep, 1);
    return rc;
}

const struct kvt__rmt_connector kvt__rmt_redis = {
    .mode = "redis",
    .open = rds_open,
    .close = rds_close,
    .put = rds_put,
    .get = rds_get,
    .get_many = rds_get_many,
    .contains = rds_contains,
    .count_prefix = rds_count_prefix,
    .remove = rds_remove,
    .clear = rds_clear,
    .ping = rds_ping,
};
