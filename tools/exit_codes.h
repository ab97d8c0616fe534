/*
 * exit_codes.h — the exit status for an error the library reports, shared
 * by `leasehold` and `server` so that both programs give the same status
 * for the same cause (the sysexits.h convention):
 *   65 EX_DATAERR      the key holds something that is not a lease
 *                      (WRONGTYPE, a value with no TTL)
 *   64 EX_USAGE        a bad URL, option or configuration
 *   69 EX_UNAVAILABLE  Redis unreachable or refusing us: ACL (NOPERM),
 *                      AUTH, a refused database, scripts renamed or
 *                      disabled, a read-only replica, and every other error
 */
#ifndef LEASEHOLD_EXIT_CODES_H
#define LEASEHOLD_EXIT_CODES_H

#include <leasehold.h>

/* The exit status for the library's error code (see above). */
static inline int exit_status_for_error(int code)
{
    switch (code) {
    case LEASEHOLD_EWRONGTYPE:
    case LEASEHOLD_ENOTLEASE:
        return 65;
    case LEASEHOLD_EURL:
    case LEASEHOLD_ECONFIG:
    case LEASEHOLD_EINVAL:
        return 64;
    default:
        return 69;
    }
}

#endif
