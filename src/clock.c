/* clock.c — the one place that reads the clock leases are measured with.
 *
 * CLOCK_BOOTTIME: like CLOCK_MONOTONIC it never steps back and ignores the
 * wall clock, but it also counts the time the machine was suspended.  A
 * leader on a laptop or VM that is suspended and resumed must find its lease
 * over (Redis's TTL kept running meanwhile); CLOCK_MONOTONIC stops while
 * suspended and would not. */
#include "clock.h"

#include <time.h>

#include "leasehold.h"

uint64_t clock_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_BOOTTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t clock_now_ms(void)
{
    return clock_now_ns() / 1000000u;
}

uint64_t leasehold_now_ms(void)
{
    return clock_now_ms();
}
