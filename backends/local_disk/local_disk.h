/* kvtier — LocalDiskBackend internals shared with its tests. Internal. */
#ifndef KVTIER_LOCAL_DISK_H
#define KVTIER_LOCAL_DISK_H

#include <stdint.h>

/* Counters the backend keeps besides kvt_backend_stats (all since create). */
struct kvt__disk_counters {
    uint64_t evictions;   /* entries evicted for room, at open included */
    uint64_t quarantined; /* files moved aside (or deleted when the quarantine was full) */
    uint64_t corrupt;     /* files that failed verification: at open (header) or on read */
    uint64_t enospc;      /* puts refused for room: the filesystem's or the cap's */
    uint64_t eio;         /* puts or unlinks that failed with another error */
    uint64_t cancelled;   /* writes a remove or clear overtook */
    uint64_t stale_tmp;   /* temp files of interrupted writes deleted at open */
    uint64_t indexed;     /* files re-indexed at open */
    uint64_t used;        /* bytes counted against the cap now */
};

/* Fills `out` for the instance `state` (a LocalDiskBackend's). Thread-safety: any thread. */
void kvt__local_disk_counters(void *state, struct kvt__disk_counters *out);

#endif
