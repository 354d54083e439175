/* kvtier — the monotonic clock, deadlines and condition variables that wait on it.
 * Internal. Every timeout in kvtier is a deadline on CLOCK_MONOTONIC, so a wall-clock
 * step never shortens or stretches a wait. */
#ifndef KVTIER_CLOCK_H
#define KVTIER_CLOCK_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

struct timespec kvt__now(void);
/* `t` plus `ms` milliseconds (ms >= 0). */
struct timespec kvt__after(struct timespec t, int64_t ms);
/* Now plus `ms`; "never" (far in the future) for ms < 0 or beyond 24 days. */
struct timespec kvt__deadline(int64_t ms);
bool kvt__before(const struct timespec *a, const struct timespec *b);
/* Milliseconds on the monotonic clock (for deadlines kept as integers). */
int64_t kvt__now_ms(void);
/* b - a in milliseconds. */
double kvt__ms_between(const struct timespec *a, const struct timespec *b);
/* A condition variable whose timed waits take CLOCK_MONOTONIC deadlines. */
void kvt__cond_init_monotonic(pthread_cond_t *cv);

#endif
