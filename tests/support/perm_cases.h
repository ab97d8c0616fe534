/* perm_cases.h — issue 9's table of what Redis can answer that no retry
 * fixes, as a tool meets it: an ACL user who may not run EVALSHA, one who
 * may not touch the key, EVALSHA renamed away, a key holding a hash, a
 * read-only replica, a key holding a value with no TTL; and the Redis set
 * up for each case.  Assertions (cmocka) fail the calling test. */
#ifndef LEASEHOLD_PERM_CASES_H
#define LEASEHOLD_PERM_CASES_H

#include <stdbool.h>
#include <stddef.h>

#include "redis_server.h"

typedef struct perm_case {
    const char *name;
    int exit_code;      /* run, watch and server exit with this */
    int status_code;    /* `leasehold status` exits with this */
    bool watch_halts;   /* false: watch, which only reads, goes on */
    const char *needle; /* in the one ERROR line logged, and in status's message */
} perm_case;

#define PERM_CASES 6
extern const perm_case perm_cases[PERM_CASES];

/* Sets Redis up for perm_cases[i] on key: an ACL user on main, the key's
 * value on main, or a second redis-server (EVALSHA renamed, or a replica
 * of main).  Returns the URL to give the tool, valid until perm_done(). */
const char *perm_prepare(redis_server *main, size_t i, const char *key);

/* Stops the second redis-server perm_prepare() started, if any. */
void perm_done(void);

#endif
