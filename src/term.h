/* term.h — the two numbers of a term that any thread reads without a lock:
 * its fencing epoch and its valid_until (clock.h milliseconds, 0 when not
 * leader).  The I/O thread writes them (io_drive.c's publish()); callers of
 * leasehold_is_leader() and leasehold_epoch() read them.
 *
 * The promise: a reader that finds valid_until in the future also finds a
 * nonzero epoch, of that term or of a later one.  So the epoch is stored
 * before valid_until when a term starts, and it is never cleared when a
 * term ends: only valid_until is.  Clearing it (in either order) would leave
 * a window in which a reader has already loaded a valid valid_until and then
 * loads the cleared epoch.  Whether an epoch means anything is decided by
 * valid_until alone.  Epochs strictly increase from term to term, so the
 * later epoch a reader may see is that of a term that is also ours and
 * current when it is read. */
#ifndef LEASEHOLD_TERM_H
#define LEASEHOLD_TERM_H

#include <stdatomic.h>
#include <stdint.h>

/* Publishes a term: epoch 0 (no term) leaves the last epoch in place. */
static inline void term_publish(_Atomic uint64_t *epoch, _Atomic uint64_t *valid_until_ms,
                                uint64_t new_epoch, uint64_t new_valid_until_ms)
{
    if (new_epoch)
        atomic_store(epoch, new_epoch);
    atomic_store(valid_until_ms, new_valid_until_ms);
}

/* The term's epoch if valid_until is after now_ms, else 0. */
static inline uint64_t term_epoch(_Atomic uint64_t *epoch, _Atomic uint64_t *valid_until_ms,
                                  uint64_t now_ms)
{
    if (now_ms >= atomic_load(valid_until_ms))
        return 0;
    return atomic_load(epoch);
}

#endif
