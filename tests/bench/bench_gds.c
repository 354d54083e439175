/* bench_gds: GdsBackend (compat mode here: no GPU) against fio and the raw O_DIRECT
 * io_uring loop at the same request size and depth, 14 and 32 MiB chunks, medians of
 * interleaved trials: `gds_put_ratio_14MiB=.. min=.. max=..` (vs the raw loop, which
 * creates a file per chunk as the tier does) and `gds_*_fio_ratio_*` (vs fio). It is
 * bench_disk.c built for GdsBackend: one benchmark, two tiers, the same baselines.
 *
 * Usage: bench_gds [--quick] [--dir DIR] [--trials N] [--request-kib N] [--no-reindex]. */
#define BENCH_GDS 1
#include "bench_disk.c"
