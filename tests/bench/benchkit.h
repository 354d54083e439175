/* kvtier benchmarks — what every benchmark program needs: a clock, the median line, and
 * for the remote benchmarks the kvtier side of a trial. Each program defines bench_die(). */
#ifndef KVTIER_BENCHKIT_H
#define KVTIER_BENCHKIT_H

#include <stddef.h>

#include <kvtier/kvtier.h>

/* Seconds on the monotonic clock. */
double bench_now(void);
/* Sorts v[0..n) and prints `name=median min=.. max=..` (median of the middle two for an
 * even n). */
void bench_report(const char *name, double *v, int n);
/* The benchmark's chunk key number i. */
kvt_key bench_key(size_t i);
/* Seconds to kvt_put vals[0..n) (len bytes each) under bench_key(i) and flush. */
double bench_putn(kvt_store *s, unsigned char **vals, size_t n, size_t len);
/* Seconds to kvt_get_into outs[0..n) (len bytes each) from bench_key(i); a miss dies. */
double bench_getn(kvt_store *s, unsigned char **outs, size_t n, size_t len);
/* Defined by each benchmark: reports a failed kvtier call and exits. */
void bench_die(const char *what, int rc) __attribute__((noreturn));

#endif
