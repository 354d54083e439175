/* kvtier — status text and the per-thread error detail. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

const char *kvt_strerror(int status)
{
    switch (status) {
#define KVT__STATUS_TEXT(name, value, text)                                                       \
    case value:                                                                                   \
        return text;
        KVT_STATUS_MAP(KVT__STATUS_TEXT)
#undef KVT__STATUS_TEXT
    }
    return "unknown error";
}

const char *kvt_status_name(int status)
{
    switch (status) {
#define KVT__STATUS_NAME(name, value, text)                                                       \
    case value:                                                                                   \
        return "KVT_" #name;
        KVT_STATUS_MAP(KVT__STATUS_NAME)
#undef KVT__STATUS_NAME
    }
    return "KVT_UNKNOWN";
}

static _Thread_local char last_error[512];

const char *kvt_last_error(void) { return last_error; }

void kvt__clear_error(void) { last_error[0] = '\0'; }

int kvt__fail(int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return status;
}

int kvt__hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool kvt__strlcpy(char *dst, const char *src, size_t cap)
{
    size_t n = strlen(src);
    if (cap == 0)
        return false;
    if (n >= cap) {
        memcpy(dst, src, cap - 1);
        dst[cap - 1] = '\0';
        return false;
    }
    memcpy(dst, src, n + 1);
    return true;
}
