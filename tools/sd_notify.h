/*
 * sd_notify.h — systemd's readiness protocol, without libsystemd.
 *
 * A service of Type=notify is handed NOTIFY_SOCKET, a datagram socket
 * ("/path" or "@abstract"), and tells systemd READY=1, STATUS=..., WATCHDOG=1
 * and STOPPING=1 by sending those lines to it; with WatchdogSec= it is also
 * handed WATCHDOG_USEC (and WATCHDOG_PID: the pid meant).  Outside systemd
 * nothing is set and every call here does nothing.
 */
#ifndef LEASEHOLD_SD_NOTIFY_H
#define LEASEHOLD_SD_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>

typedef struct sd_notifier {
    int fd; /* -1: no NOTIFY_SOCKET (or it was unusable) */
    char path[108];
    unsigned path_len;    /* bytes of path that count (an abstract name has no NUL) */
    uint64_t watchdog_ms; /* WatchdogSec= in ms; 0: none */
} sd_notifier;

/* Reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID from the environment
 * and unsets them, so that a command leasehold runs does not notify systemd
 * in its place.  An unusable NOTIFY_SOCKET is reported in err (err_size
 * bytes) and returns false; n then does nothing. */
bool sd_notifier_open(sd_notifier *n, char *err, unsigned err_size);

/* Sends one message ("READY=1", "STATUS=leader, epoch 7"...); false when it
 * could not (never waits: a full socket drops it). */
bool sd_notify_send(const sd_notifier *n, const char *msg);

/* True when NOTIFY_SOCKET was given. */
bool sd_notifier_active(const sd_notifier *n);

void sd_notifier_close(sd_notifier *n);

#endif
