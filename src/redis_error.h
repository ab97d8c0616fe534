/* redis_error.h — what a Redis error reply means for an election: permanent
 * or transient, and a message that names the cause and the fix.  Pure: no
 * I/O, no state. */
#ifndef LEASEHOLD_REDIS_ERROR_H
#define LEASEHOLD_REDIS_ERROR_H

#include <stddef.h>

#include "leasehold.h"

/* What the message may name.  Any field may be NULL (then left out). */
typedef struct redis_error_ctx {
    const char *key;       /* the lease key */
    const char *epoch_key; /* its epoch key */
    const char *side_keys; /* its side keys as an ACL grants them ("~{K}:epoch ~{K}:quarantine") */
    const char *channel;   /* its events channel */
    const char *user;      /* the ACL user ("default" when the URL names none) */
    const char *address;   /* the Redis server, as messages show it */
    bool retried;          /* a transient error will be retried: the message says so */
} redis_error_ctx;

/*
 * The leasehold error code of an error reply's text (Redis's own words):
 *   NOPERM, or a script's "The user executing the script can't ..."  ENOPERM
 *   WRONGTYPE                                                          EWRONGTYPE
 *   READONLY                                                           EREADONLY
 *   ERR unknown command 'eval'/'evalsha' (renamed or disabled),
 *   NOSCRIPT (only after the EVAL fallback reaches here)               ENOSCRIPT
 *   WRONGPASS, NOAUTH, ERR invalid password                            EAUTH
 *   anything else (OOM, LOADING, BUSY, MASTERDOWN, TRYAGAIN, ...)      EREDIS
 * NULL is EREDIS.
 */
int redis_error_code(const char *text);

/* The code as redis_error_code(), and in why (why_size bytes) a message
 * naming the cause and, for the permanent codes, the fix.  Redis's words
 * are passed on without the SHA1 of the script that failed ("script:
 * <sha>, on @user_script:N."), and never with the arguments of an unknown
 * command. */
int redis_error_explain(const char *text, const redis_error_ctx *ctx, char *why, size_t why_size);

/* Writes v (len bytes, any bytes) into out (out_size bytes, NUL-terminated)
 * for a message: control characters, quotes, backslashes and bytes above
 * 0x7e escaped (\n, \xNN), cut after max_chars input bytes with "...". */
void redis_error_quote(const char *v, size_t len, size_t max_chars, char *out, size_t out_size);

#endif
