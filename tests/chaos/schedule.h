/* schedule.h — what the chaos drivers (driver.c, cluster_driver.c) share
 * to deal their schedules: the clock every log line is stamped with, and a
 * seeded generator, the schedule's only randomness, so a seed replays. */
#ifndef LEASEHOLD_CHAOS_SCHEDULE_H
#define LEASEHOLD_CHAOS_SCHEDULE_H

#include <stdint.h>
#include <time.h>

/* Nanoseconds of CLOCK_MONOTONIC: the clock of every probe and log line. */
static inline uint64_t chaos_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* splitmix64 on *state. */
static inline uint64_t chaos_rng_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [lo, hi]. */
static inline uint32_t chaos_rng_range(uint64_t *state, uint32_t lo, uint32_t hi)
{
    return lo + (uint32_t)(chaos_rng_next(state) % ((uint64_t)hi - lo + 1));
}

#endif
