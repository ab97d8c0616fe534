/*
 * clockshift.so — an LD_PRELOAD shim that shifts one process's wall clock,
 * for the chaos driver's Redis clock step (loaded into redis-server only).
 *
 *     LEASEHOLD_CLOCK_SHIFT_FILE=/path/to/file LD_PRELOAD=.../libclockshift.so redis-server ...
 *
 * The file holds one int64 in host byte order: microseconds added to every
 * reading of the wall clock, that is clock_gettime() of CLOCK_REALTIME and
 * CLOCK_REALTIME_COARSE, gettimeofday() and time().  Every other clock
 * (CLOCK_MONOTONIC above all) is left alone.  The file is mapped shared and
 * read at each call, so whoever writes it (chaos_driver, through a shared
 * mapping of its own) steps the clock of the running process at once.
 * Without the variable, or with a file that cannot be mapped, the clock is
 * not shifted.  Thread-safe: the mapping is made once (a racing loser
 * unmaps its copy) and the offset is read with one atomic 8-byte load.
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

typedef int (*clock_gettime_fn)(clockid_t, struct timespec *);
typedef int (*gettimeofday_fn)(struct timeval *, void *);

static const int64_t no_shift;
static const int64_t *shift_ptr; /* NULL until mapped (or found unmappable) */

/* The offset in microseconds: 0 until the file is mapped. */
static int64_t shift_us(void)
{
    const int64_t *p = __atomic_load_n(&shift_ptr, __ATOMIC_ACQUIRE);
    if (!p) {
        const int64_t *mapped = &no_shift;
        const char *path = getenv("LEASEHOLD_CLOCK_SHIFT_FILE");
        int fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
        if (fd >= 0) {
            void *m = mmap(NULL, sizeof(int64_t), PROT_READ, MAP_SHARED, fd, 0);
            close(fd);
            if (m != MAP_FAILED)
                mapped = m;
        }
        const int64_t *expected = NULL;
        if (!__atomic_compare_exchange_n(&shift_ptr, &expected, mapped, false, __ATOMIC_ACQ_REL,
                                         __ATOMIC_ACQUIRE)) {
            if (mapped != &no_shift)
                munmap((void *)mapped, sizeof(int64_t));
            mapped = expected;
        }
        p = mapped;
    }
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

/* libc's own clock_gettime (found once; the symbol after ours). */
static int real_clock_gettime(clockid_t id, struct timespec *ts)
{
    static clock_gettime_fn fn;
    clock_gettime_fn f = __atomic_load_n(&fn, __ATOMIC_ACQUIRE);
    if (!f) {
        f = (clock_gettime_fn)dlsym(RTLD_NEXT, "clock_gettime");
        __atomic_store_n(&fn, f, __ATOMIC_RELEASE);
    }
    return f(id, ts);
}

/* Adds us microseconds to ts, keeping tv_nsec in [0, 1e9). */
static void add_us(struct timespec *ts, int64_t us)
{
    int64_t ns = (int64_t)ts->tv_nsec + (us % 1000000) * 1000;
    ts->tv_sec += (time_t)(us / 1000000);
    if (ns < 0) {
        ns += 1000000000;
        ts->tv_sec--;
    } else if (ns >= 1000000000) {
        ns -= 1000000000;
        ts->tv_sec++;
    }
    ts->tv_nsec = (long)ns;
}

/* clock_gettime(), shifted for the wall clocks only. */
int clock_gettime(clockid_t id, struct timespec *ts)
{
    int rc = real_clock_gettime(id, ts);
    if (rc == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE))
        add_us(ts, shift_us());
    return rc;
}

/* gettimeofday(), shifted; the timezone argument is passed through. */
int gettimeofday(struct timeval *tv, void *tz)
{
    static gettimeofday_fn fn;
    gettimeofday_fn f = __atomic_load_n(&fn, __ATOMIC_ACQUIRE);
    if (!f) {
        f = (gettimeofday_fn)dlsym(RTLD_NEXT, "gettimeofday");
        __atomic_store_n(&fn, f, __ATOMIC_RELEASE);
    }
    int rc = f(tv, tz);
    if (rc == 0) {
        struct timespec ts = {tv->tv_sec, (long)tv->tv_usec * 1000};
        add_us(&ts, shift_us());
        tv->tv_sec = ts.tv_sec;
        tv->tv_usec = ts.tv_nsec / 1000;
    }
    return rc;
}

/* time(), from the shifted CLOCK_REALTIME. */
time_t time(time_t *out)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0)
        return (time_t)-1;
    if (out)
        *out = ts.tv_sec;
    return ts.tv_sec;
}
