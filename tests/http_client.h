/* kvtier tests — a tiny blocking HTTP/1.1 client over a raw socket.
 *
 * Raw sockets rather than libcurl: no extra dependency, and the tests control the exact
 * bytes sent (a Content-Length over the cap with no body, a chunked body that grows past
 * it, odd headers), which a full client hides. One request per connection
 * (Connection: close); every read and write times out after 10 s. */
#ifndef KVTIER_TEST_HTTP_CLIENT_H
#define KVTIER_TEST_HTTP_CLIENT_H

#include <stddef.h>

struct http_resp {
    int status;   /* -1: no response (connect, send or receive failed) */
    char *head;   /* status line and headers, NUL-terminated */
    char *body;   /* NUL-terminated */
    size_t len;
    double ms;    /* wall time of the exchange */
};

/* Sends `method path` with `headers` (complete "Name: value\r\n" lines, or NULL) and
 * `body` (`len` bytes; NULL for none, then no Content-Length is sent). */
int http_do(int port, const char *method, const char *path, const char *headers,
            const char *body, size_t len, struct http_resp *out);
/* Sends `len` raw bytes, then reads the response. */
int http_raw(int port, const char *raw, size_t len, struct http_resp *out);
/* Value of header `name` (case-insensitive) copied into `buf`; NULL if absent. */
const char *http_header(const struct http_resp *r, const char *name, char *buf, size_t cap);
void http_free(struct http_resp *r);

#endif
