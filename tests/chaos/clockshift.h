/*
 * clockshift.h — the controlling side of the clockshift.so shim (see
 * clockshift.c): creates the offset file and steps the shifted process's
 * wall clock through a shared mapping of it.  Used by chaos_driver and
 * test_clockshift; not thread-safe (one controller).
 */
#ifndef LEASEHOLD_CHAOS_CLOCKSHIFT_H
#define LEASEHOLD_CHAOS_CLOCKSHIFT_H

#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

/* The environment variable that names the offset file for the shim. */
#define CLOCKSHIFT_ENV "LEASEHOLD_CLOCK_SHIFT_FILE"

/* Creates (or truncates) path holding offset 0 and maps it shared for
 * writing.  Returns the mapping, or NULL with errno set. */
static inline int64_t *clockshift_create(const char *path)
{
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return NULL;
    if (ftruncate(fd, (off_t)sizeof(int64_t)) != 0) {
        close(fd);
        return NULL;
    }
    void *m = mmap(NULL, sizeof(int64_t), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    return m == MAP_FAILED ? NULL : (int64_t *)m;
}

/* Sets the offset, in microseconds: every process mapping the file sees it
 * at its next reading of the wall clock. */
static inline void clockshift_set(int64_t *shift, int64_t us)
{
    __atomic_store_n(shift, us, __ATOMIC_RELEASE);
}

/* The offset now, in microseconds. */
static inline int64_t clockshift_get(const int64_t *shift)
{
    return __atomic_load_n(shift, __ATOMIC_ACQUIRE);
}

/* Unmaps what clockshift_create() returned (NULL is ignored). */
static inline void clockshift_close(int64_t *shift)
{
    if (shift)
        munmap(shift, sizeof(int64_t));
}

#endif
