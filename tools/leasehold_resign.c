/*
 * leasehold_resign.c — `leasehold resign`: asks the leader of a key to step
 * down, for maintenance, and with --wait reports who took over.
 *
 * It reads who holds the key (leasehold_holder_get), then asks that very
 * term to end (leasehold_request_resign: "resign <epoch> <token>" on the
 * key's events channel); a request that arrives after the term has ended
 * is ignored by whoever leads then.  --wait reads the key until another
 * term has begun.
 */
#include "exit_codes.h"
#include "leasehold_cli.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define RESIGN_WAIT_MS 10000u /* --wait's default bound */
#define POLL_MS        5u     /* --wait reads the key this often */

/* Sleeps ms (pacing the reads of --wait). */
static void pause_ms(uint32_t ms)
{
    struct timespec ts = {0, (long)ms * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* Reads the key, logging why it could not be read; 0 or the exit status. */
static int read_holder(leasehold_client *c, const cli_options *o, leasehold_holder *h)
{
    leasehold_error err;
    int rc = leasehold_holder_get(c, o->key, h, &err);
    if (rc == 0)
        return 0;
    cli_log(LEASEHOLD_LOG_ERROR, 0, NULL, "cannot read %s: %s", o->key, err.msg);
    return exit_status_for_error(rc);
}

/* --wait: reads the key until another process holds it (a new term of the
 * same token is the one that stepped down elected again: not a takeover). */
static int wait_for_successor(leasehold_client *c, const cli_options *o, uint64_t epoch,
                              const char *token, uint64_t t0)
{
    uint64_t wait_ms = o->wait_timeout_ms ? o->wait_timeout_ms : RESIGN_WAIT_MS;
    bool released = false;
    for (;;) {
        leasehold_holder h;
        int code = read_holder(c, o, &h);
        if (code)
            return code;
        uint64_t now = cli_now_ms();
        if (h.token[0] && strcmp(h.token, token) != 0) {
            printf("%s: %s took over, epoch %" PRIu64 ", %" PRIu64 " ms after the request\n",
                   o->key, h.token, h.epoch, now - t0);
            return 0;
        }
        if (!h.token[0] && !released) {
            released = true;
            cli_log(LEASEHOLD_LOG_INFO, epoch, token,
                    "released %" PRIu64 " ms after the request; waiting for a successor", now - t0);
        }
        if (now - t0 >= wait_ms) {
            if (h.token[0] && h.epoch != epoch)
                cli_log(LEASEHOLD_LOG_ERROR, h.epoch, token,
                        "%s: the same process was elected again within %" PRIu64
                        " ms: no other candidate took over (only standbys, or none?)",
                        o->key, wait_ms);
            else if (released)
                cli_log(LEASEHOLD_LOG_ERROR, 0, NULL,
                        "%s: released, but no other process took over within %" PRIu64 " ms",
                        o->key, wait_ms);
            else
                cli_log(LEASEHOLD_LOG_ERROR, epoch, token,
                        "%s: still held by the same term after %" PRIu64
                        " ms: the leader ignored the request (a leasehold older than this "
                        "one, or the original module?)",
                        o->key, wait_ms);
            return EXIT_NOT_ELECTED;
        }
        pause_ms(POLL_MS);
    }
}

int cli_resign(const cli_options *o)
{
    int code;
    leasehold_client *c = cli_connect(o, &code);
    if (!c)
        return code;
    leasehold_error err;
    leasehold_holder h;
    code = read_holder(c, o, &h);
    if (code == 0 && !h.token[0]) {
        cli_log(LEASEHOLD_LOG_ERROR, 0, NULL, "%s: nobody holds the key: nothing to ask", o->key);
        code = EXIT_NO_LEADER;
    } else if (code == 0 && (h.ttl_ms < 0 || !leasehold_is_token(h.token))) {
        cli_log(LEASEHOLD_LOG_ERROR, 0, NULL,
                "%s: holds a value that is not a leasehold lease: no leasehold leader to ask",
                o->key);
        code = EXIT_DATAERR;
    } else if (code == 0 && o->token && strcmp(o->token, h.token) != 0) {
        cli_log(LEASEHOLD_LOG_ERROR, h.epoch, h.token,
                "%s: held by this token, not by %s: nothing asked", o->key, o->token);
        code = EXIT_NO_LEADER;
    }
    if (code) {
        leasehold_client_free(c);
        return code;
    }
    uint64_t t0 = cli_now_ms();
    int got = leasehold_request_resign(c, o->key, h.epoch, h.token, &err);
    if (got < 0) {
        cli_log(LEASEHOLD_LOG_ERROR, 0, NULL, "cannot ask the leader of %s: %s", o->key, err.msg);
        leasehold_client_free(c);
        return exit_status_for_error(got);
    }
    if (got == 0) {
        cli_log(LEASEHOLD_LOG_ERROR, h.epoch, h.token,
                "%s: nobody received the request: the term has just ended, or its leader "
                "does not listen on the events channel",
                o->key);
        leasehold_client_free(c);
        return EXIT_UNAVAILABLE;
    }
    printf("%s: asked %s (epoch %" PRIu64 ") to step down\n", o->key, h.token, h.epoch);
    fflush(stdout);
    if (o->wait)
        code = wait_for_successor(c, o, h.epoch, h.token, t0);
    leasehold_client_free(c);
    return code;
}
