/*
 * ops.h — the operator's side of `leasehold run` and `server`: an HTTP
 * listener for /metrics, /healthz and /readyz (--metrics-listen), and
 * systemd's notifications (NOTIFY_SOCKET: READY=1, STATUS=, WATCHDOG=1,
 * STOPPING=1), in one thread of their own.
 *
 *   ops_open()      before campaigning: binds the listener (so a taken port
 *                   is a usage error at start) and reads NOTIFY_SOCKET
 *   ops_start()     once campaigning has started: READY=1, then the thread
 *   ops_poke()      from election callbacks: the state changed (STATUS=)
 *   ops_stopping()  on a stop signal: STOPPING=1
 *   ops_stop()      joins the thread: before the election is freed
 *   ops_close()     closes everything: once no callback can poke it
 *
 * WATCHDOG=1 is sent every half WatchdogSec= while the elector is healthy
 * (ops_healthy(): its I/O thread is not stuck, no term is believed held past
 * its deadline), and not otherwise, so systemd restarts a wedged elector.
 */
#ifndef LEASEHOLD_OPS_H
#define LEASEHOLD_OPS_H

#include "ops_metrics.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct ops ops;

/* listen: the --metrics-listen address, or NULL for none.  NULL with the
 * reason in err when the address is bad or cannot be bound, or
 * NOTIFY_SOCKET / WATCHDOG_USEC are unusable. */
ops *ops_open(const char *listen, char *err, size_t err_size);

/* The address the listener is bound to, or NULL without one. */
const char *ops_address(const ops *o);

/* Sends READY=1 and starts serving t (copied; its strings must outlive o);
 * t NULL (no election runs): READY=1, and WATCHDOG=1 if systemd asks for it.
 * 0, or -errno when the thread cannot start. */
int ops_start(ops *o, const ops_target *t);

/* The election's state may have changed: STATUS= is sent again soon.
 * Async-signal-unsafe but lock-free: fine from callbacks.  NULL is fine. */
void ops_poke(ops *o);

/* Sends STOPPING=1 (once).  NULL is fine. */
void ops_stopping(ops *o);

/* Stops the thread, so that nothing reads the election any more: call it
 * before freeing the election.  ops_poke() stays harmless.  NULL is fine. */
void ops_stop(ops *o);

/* Stops the thread if it runs and frees o: call it once the election's
 * callbacks, which poke it, can no longer run.  NULL is fine. */
void ops_close(ops *o);

#endif
