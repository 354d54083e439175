/* kvtier — logging: a user callback, or logfmt lines on stderr. */
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static const char *level_name(kvt_log_level level)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    return (unsigned)level < KVT__ARRAY_LEN(names) ? names[level] : "error";
}

/* One write(2) per line so lines from concurrent threads do not interleave. */
static void stderr_sink(kvt_log_level level, const char *component, const char *msg)
{
    char line[1024];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line,
                     "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s component=%s %s\n",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, level_name(level), component, msg);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof line) {
        n = sizeof line;
        line[n - 1] = '\n';
    }
    ssize_t rc = write(STDERR_FILENO, line, (size_t)n);
    (void)rc; /* nowhere to report a failing stderr */
}

void kvt__vlog(const kvt_log_handler *h, kvt_log_level level, const char *component,
               const char *fmt, va_list ap)
{
    char msg[768];
    if (level < h->min_level)
        return;
    vsnprintf(msg, sizeof msg, fmt, ap);
    if (h->fn)
        h->fn(h->ud, level, component, msg);
    else
        stderr_sink(level, component, msg);
}

void kvt__log(const kvt_log_handler *h, kvt_log_level level, const char *component,
              const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    kvt__vlog(h, level, component, fmt, ap);
    va_end(ap);
}
