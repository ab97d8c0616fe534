/* testutil.h — deadlines and waiting for integration tests.
 *
 * Every deadline a test waits for is scaled by the environment variable
 * LEASEHOLD_TEST_TIMEOUT_MULTIPLIER (default 1), so sanitizer builds, which
 * run several times slower, get room without loosening the plain build.
 * Lower bounds ("nothing happens for N ms") are never scaled.
 */
#ifndef LEASEHOLD_TESTUTIL_H
#define LEASEHOLD_TESTUTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "leasehold.h"

/* The factor deadlines are multiplied by: LEASEHOLD_TEST_TIMEOUT_MULTIPLIER,
 * or 1 when unset or not a positive number. */
static inline double test_multiplier(void)
{
    const char *s = getenv("LEASEHOLD_TEST_TIMEOUT_MULTIPLIER");
    double m = s ? strtod(s, NULL) : 1.0;
    return m > 0 ? m : 1.0;
}

/* ms scaled by the multiplier: use it for every upper bound a test asserts. */
static inline uint64_t test_ms(uint64_t ms)
{
    return (uint64_t)((double)ms * test_multiplier());
}

/* Milliseconds of CLOCK_MONOTONIC, the same in every process of this
 * machine, so timestamps compare across processes.  (The library decides by
 * CLOCK_BOOTTIME, leasehold_now_ms(); the two differ only by time spent
 * suspended, which tests never see, and tests compare durations only.) */
static inline uint64_t test_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Sleeps ms, resuming after signals.  For pacing a test's own actions (a
 * renewal loop, a fault that lasts N ms), never for waiting on the library. */
static inline void test_sleep_ms(uint64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/*
 * A fresh Redis is not claimed on until it has been up for the lease (its
 * uptime is counted one second short): the first election on a server that
 * just started may wait this much longer than lease + retry.
 */
#define TEST_FRESH_REDIS_MS 3500u

/* Short timings for behaviour tests: lease 1000, renew 100, retry 300,
 * renew deadline 700, command timeout 80, connect 1000, stop 2000.  Runs
 * stay short and every bound the tests assert still has a wide margin. */
static inline void test_config(leasehold_config *cfg, const char *url)
{
    leasehold_config_init(cfg);
    cfg->url = url;
    cfg->lease_ms = 1000;
    cfg->renew_interval_ms = 100;
    cfg->retry_interval_ms = 300;
    cfg->renew_deadline_ms = 700;
    cfg->command_timeout_ms = 80;
    cfg->connect_timeout_ms = 1000;
    cfg->stop_timeout_ms = 2000;
    cfg->log_level = LEASEHOLD_LOG_INFO;
}

typedef bool (*test_pred)(void *arg);

/* Polls pred(arg) every 5 ms until it holds (true) or test_ms(max_ms) have
 * passed (false).  The condition is checked once more at the deadline. */
static inline bool wait_until(test_pred pred, void *arg, uint64_t max_ms)
{
    uint64_t deadline = test_now_ms() + test_ms(max_ms);
    for (;;) {
        if (pred(arg))
            return true;
        if (test_now_ms() >= deadline)
            return false;
        test_sleep_ms(5);
    }
}

#endif
