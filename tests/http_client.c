/* kvtier tests — see http_client.h. */
#include "http_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int dial(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {.tv_sec = 10};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Writes all of it; a server that answered early may close on us: not an error here. */
static void send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return;
        p += k;
        n -= (size_t)k;
    }
}

static int parse(char *buf, size_t n, struct http_resp *out)
{
    char *sep = buf ? strstr(buf, "\r\n\r\n") : NULL;
    char cl[32];
    if (!sep || sscanf(buf, "HTTP/1.%*d %d", &out->status) != 1) {
        out->status = -1;
        free(buf);
        return -1;
    }
    *sep = '\0';
    out->head = buf;
    out->len = n - (size_t)(sep + 4 - buf);
    if (http_header(out, "Content-Length", cl, sizeof cl) && (size_t)atol(cl) < out->len)
        out->len = (size_t)atol(cl);
    out->body = malloc(out->len + 1);
    memcpy(out->body, sep + 4, out->len);
    out->body[out->len] = '\0';
    return 0;
}

static int exchange(int port, const char *head, size_t hlen, const char *body, size_t blen,
                    struct http_resp *out)
{
    char *buf = NULL;
    size_t n = 0, cap = 0;
    double t0 = now_ms();
    int fd;
    memset(out, 0, sizeof *out);
    out->status = -1;
    if ((fd = dial(port)) < 0)
        return -1;
    send_all(fd, head, hlen);
    if (body)
        send_all(fd, body, blen);
    for (;;) {
        ssize_t k;
        if (n + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 65536;
            buf = realloc(buf, cap);
        }
        k = recv(fd, buf + n, cap - n - 1, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        n += (size_t)k;
    }
    close(fd);
    if (buf)
        buf[n] = '\0';
    out->ms = now_ms() - t0;
    return parse(buf, n, out);
}

int http_do(int port, const char *method, const char *path, const char *headers,
            const char *body, size_t len, struct http_resp *out)
{
    char head[8192];
    int k = snprintf(head, sizeof head,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n%s", method,
                     path, port, headers ? headers : "");
    if (body)
        k += snprintf(head + k, sizeof head - (size_t)k, "Content-Length: %zu\r\n", len);
    k += snprintf(head + k, sizeof head - (size_t)k, "\r\n");
    return exchange(port, head, (size_t)k, body, len, out);
}

int http_raw(int port, const char *raw, size_t len, struct http_resp *out)
{
    return exchange(port, raw, len, NULL, 0, out);
}

const char *http_header(const struct http_resp *r, const char *name, char *buf, size_t cap)
{
    size_t n = strlen(name);
    for (const char *p = r->head ? strstr(r->head, "\r\n") : NULL; p; p = strstr(p + 2, "\r\n")) {
        const char *line = p + 2, *end;
        if (strncasecmp(line, name, n) != 0 || line[n] != ':')
            continue;
        line += n + 1;
        while (*line == ' ')
            line++;
        end = strstr(line, "\r\n");
        n = end ? (size_t)(end - line) : strlen(line);
        if (n >= cap)
            n = cap - 1;
        memcpy(buf, line, n);
        buf[n] = '\0';
        return buf;
    }
    return NULL;
}

void http_free(struct http_resp *r)
{
    free(r->head);
    free(r->body);
    r->head = r->body = NULL;
}
