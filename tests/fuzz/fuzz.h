/* fuzz.h — what every fuzz target shares: an invariant check that stops the
 * run with a message libFuzzer keeps next to the crashing input. */
#ifndef LEASEHOLD_FUZZ_H
#define LEASEHOLD_FUZZ_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

/* Aborts (a crash for libFuzzer, which saves the input) with `what` when
 * the invariant does not hold. */
#define fuzz_require(cond, what)                                                                   \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: invariant broken: %s (%s)\n", __FILE__, __LINE__, what,        \
                    #cond);                                                                        \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif
