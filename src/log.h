/* kvtier — logging through the store's handler. Internal. */
#ifndef KVTIER_LOG_H
#define KVTIER_LOG_H

#include <stdarg.h>

#include "internal.h"

/* `fmt` produces logfmt pairs ("event=backend_closed backend=RemoteBackend"). Lines
 * below the handler's level are not formatted. Never call with the registry lock held. */
void kvt__log(const kvt_log_handler *h, kvt_log_level level, const char *component,
              const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void kvt__vlog(const kvt_log_handler *h, kvt_log_level level, const char *component,
               const char *fmt, va_list ap) __attribute__((format(printf, 4, 0)));

#endif
