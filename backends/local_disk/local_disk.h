/* kvtier — LocalDiskBackend internals shared with its tests and with GdsBackend. Internal. */
#ifndef KVTIER_LOCAL_DISK_H
#define KVTIER_LOCAL_DISK_H

#include "backends/local_disk/filetier.h"

/* The file-tier core's counters (filetier.h), under the name the disk tests use. */
#define kvt__disk_counters kvt__ft_counters

/* Fills `out` for the instance `state` (a LocalDiskBackend's). Thread-safety: any thread. */
void kvt__local_disk_counters(void *state, struct kvt__disk_counters *out);

/* The file-tier I/O settings both file tiers read: local_disk_queue_depth,
 * local_disk_request_kib, local_disk_odirect (or extra_config.use_odirect),
 * local_disk_fsync, local_disk_io_uring, extra_config.disk_io_threads. */
int kvt__file_tier_opts(const kvt_config *cfg, struct kvt__ft_opts *o);

/* Preallocate each file (fallocate) before its O_DIRECT writes. */
#ifndef KVT__FT_FALLOCATE
#define KVT__FT_FALLOCATE true
#endif

#endif
