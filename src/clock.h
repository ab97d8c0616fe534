/* clock.h — the one place that reads a clock. */
#ifndef LEASEHOLD_CLOCK_H
#define LEASEHOLD_CLOCK_H

#include <stdint.h>

/* Milliseconds of CLOCK_BOOTTIME: never steps back, never jumps with the
 * wall clock, and counts time suspended.  Leadership is decided from this and
 * nothing else. */
uint64_t clock_now_ms(void);

/* The same clock in nanoseconds, for measurements. */
uint64_t clock_now_ns(void);

#endif
