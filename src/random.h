/* random.h — splitmix64, the seeded generator behind every jitter.
 * Seeded once, so a run replays exactly; not for secrets. */
#ifndef LEASEHOLD_RANDOM_H
#define LEASEHOLD_RANDOM_H

#include <stdint.h>

/* Advances *state and returns the next 64 pseudo-random bits. */
static inline uint64_t random_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

#endif
