/* kvtier — status codes and error detail.
 * SPDX-License-Identifier: Apache-2.0 */
#ifndef KVTIER_STATUS_H
#define KVTIER_STATUS_H

#include <errno.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define KVT_API __attribute__((visibility("default")))
#else
#define KVT_API
#endif

/* One table generates the enum, kvt_strerror() and kvt_status_name(), so the three
 * cannot drift apart. Codes equal -errno where one exists; kvtier-only codes live at
 * -4000 and below. Codes are never renumbered or reused. */
#define KVT_STATUS_MAP(X)                                                        \
    X(OK, 0, "success")                                                          \
    X(EPERM, -EPERM, "operation not permitted")                                  \
    X(ENOENT, -ENOENT, "not found")                                              \
    X(EIO, -EIO, "input/output error")                                           \
    X(ENOMEM, -ENOMEM, "out of memory")                                          \
    X(EBUSY, -EBUSY, "in use")                                                   \
    X(EEXIST, -EEXIST, "already exists")                                         \
    X(EINVAL, -EINVAL, "invalid argument")                                       \
    X(ENOSPC, -ENOSPC, "no space left")                                          \
    X(ERANGE, -ERANGE, "value out of range")                                     \
    X(ENOTSUP, -ENOTSUP, "not supported")                                        \
    X(ETIMEDOUT, -ETIMEDOUT, "timed out")                                        \
    X(ECLOSED, -4000, "backend is closing")                                      \
    X(ECORRUPT, -4001, "stored entry failed verification")                       \
    X(EUNAVAIL, -4002, "backend not available on this host")                     \
    X(ECONFIG, -4003, "invalid configuration")                                   \
    X(ETOOSMALL, -4004, "buffer too small")                                      \
    X(ENOTIER, -4005, "no tier took the chunk")

/** Result of every fallible kvtier call: KVT_OK (0) or a negative code. */
typedef enum kvt_status {
#define KVT__STATUS_ENUM(name, value, text) KVT_##name = (value),
    KVT_STATUS_MAP(KVT__STATUS_ENUM)
#undef KVT__STATUS_ENUM
} kvt_status;

/** Static text of a status ("not found"); unknown codes give "unknown error".
 *  @return borrowed, static. Thread-safety: any thread. */
KVT_API const char *kvt_strerror(int status);

/** Symbolic name of a status ("KVT_ENOENT"). @return borrowed, static. Thread-safety: any thread. */
KVT_API const char *kvt_status_name(int status);

/** Detail of the most recent failure on the calling thread, e.g.
 *  `unknown config key "module_path"`; like errno, successful calls leave it as it was,
 *  so read it right after a call that failed. "" if no failure has set one yet.
 *  @return borrowed, valid until the next kvtier call on this thread.
 *  Thread-safety: per thread (thread-local storage). */
KVT_API const char *kvt_last_error(void);

#ifdef __cplusplus
}
#endif
#endif
