/* service.h — a leader-only service in a thread of its own, with its token. */
#ifndef LEASEHOLD_SERVICE_H
#define LEASEHOLD_SERVICE_H

#include <stdbool.h>
#include <stdint.h>

#include "leasehold.h"

typedef struct service service;
typedef int (*service_fn)(leasehold_token *t, void *arg);

/*
 * Runs fn(token, arg) in a new thread for the term `epoch` of e, which is
 * certainly ours until valid_until_ms (clock.h): from then on the token
 * reads cancelled and its fd is readable, whether or not service_cancel()
 * was called.  When the thread ends it writes to (its own duplicate of)
 * wake_fd, an eventfd the I/O thread polls, so the loop learns of it without
 * polling.  Returns NULL and sets *code (LEASEHOLD_ENOMEM, or the negative
 * errno of pthread_create, timerfd_create or fcntl) on failure.
 */
service *service_start(leasehold_election *e, service_fn fn, void *arg, uint64_t epoch,
                       uint64_t valid_until_ms, int wake_fd, int *code);

/* A renewal moved the end of the term: the token stays uncancelled until
 * then, unless it is already cancelled or its old end has passed. */
void service_extend(service *s, uint64_t valid_until_ms);

/* Cancels the token: leasehold_token_cancelled() turns true, sleeps end and
 * the token's fd becomes readable.  Idempotent. */
void service_cancel(service *s);

/* True once fn has returned. */
bool service_has_exited(const service *s);

/* Joins the thread (fn must have returned), frees s, returns fn's value. */
int service_join(service *s);

/*
 * Gives up on a service that will not return: cancels its token and
 * detaches the thread, which frees s (token included) and calls
 * release(arg) once fn finally returns; whatever fn may still reach through
 * its token must stay valid until then.  Returns false, doing nothing else,
 * when fn has already returned: the caller then joins it as usual.
 */
bool service_abandon(service *s, void (*release)(void *), void *arg);

#endif
