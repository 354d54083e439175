/* kvtier — internal helpers shared by src/ and backends/. Never installed. */
#ifndef KVTIER_INTERNAL_H
#define KVTIER_INTERNAL_H

#include "kvtier/kvtier.h"

/* Sets the calling thread's kvt_last_error() detail and returns `status`, so a
 * failure path reads `return kvt__fail(KVT_EINVAL, "unknown config key \"%s\"", k);` */
int kvt__fail(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Clears the detail (successful public calls need not). */
void kvt__clear_error(void);

/* The value of hex digit `c` (either case), -1 for anything else. */
int kvt__hex_value(char c);

/* Copies `src` into `dst[cap]`; false (dst truncated) when it did not fit. */
bool kvt__strlcpy(char *dst, const char *src, size_t cap);

#define KVT__ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
