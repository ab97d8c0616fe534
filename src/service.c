/* service.c — a leader-only service in a thread of its own, with its
 * cancellation token.
 *
 * The token is how the service learns that its term has ended: an atomic
 * flag for polling, a condition variable for leasehold_token_sleep() and a
 * timerfd for services built around poll().  It carries the end of the term
 * (valid_until) and enforces it by itself: the flag reads cancelled and the
 * timerfd (CLOCK_BOOTTIME, the library's clock, armed at valid_until) turns
 * readable when the clock passes it, even when the I/O thread is late to
 * cancel the token or stuck in a slow callback.  A cancelled or expired
 * token stays so: a renewal that arrives after valid_until has passed does
 * not revive it.  The service thread tells the I/O thread that it has
 * returned through the client's wake eventfd.
 */
#include "service.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"

struct leasehold_token {
    leasehold_election *election;
    uint64_t epoch;
    atomic_bool cancelled;           /* set under mu; never cleared */
    _Atomic uint64_t valid_until_ms; /* the term is certainly ours before this (clock.h) */
    int fd;                          /* timerfd: readable once cancelled or expired */
    pthread_mutex_t mu;
    pthread_cond_t cond; /* signalled on cancel; uses CLOCK_MONOTONIC */
};

/* Who will free a service: the I/O thread (joining it) or, once abandoned,
 * its own thread when fn finally returns. */
enum { SVC_RUNNING, SVC_EXITED, SVC_ABANDONED };

struct service {
    leasehold_token token;
    service_fn fn;
    void *arg;
    int wake_fd; /* our own dup of the client's: valid even after the client is gone */
    pthread_t thread;
    atomic_int state;
    void (*release)(void *); /* set before abandoning: called once an abandoned fn returns */
    void *release_arg;
    int result;
};

/* Arms the token's timerfd to fire at at_ms of CLOCK_BOOTTIME (1 ns past
 * boot, i.e. at once, for 0).  A time already past fires at once. */
static void arm(leasehold_token *t, uint64_t at_ms)
{
    struct itimerspec its = {{0, 0}, {0, 1}};
    if (at_ms) {
        its.it_value.tv_sec = (time_t)(at_ms / 1000);
        its.it_value.tv_nsec = (long)(at_ms % 1000) * 1000000L;
    }
    timerfd_settime(t->fd, TFD_TIMER_ABSTIME, &its, NULL); /* cannot fail on a valid fd */
}

/* Cancels t for good, with t->mu held: the flag, the sleepers, the fd. */
static void cancel_locked(leasehold_token *t)
{
    if (atomic_exchange(&t->cancelled, true))
        return;
    pthread_cond_broadcast(&t->cond);
    arm(t, 0);
}

static void token_destroy(leasehold_token *t)
{
    close(t->fd);
    pthread_cond_destroy(&t->cond);
    pthread_mutex_destroy(&t->mu);
}

static void *service_main(void *p)
{
    service *s = p;
    s->result = s->fn(&s->token, s->arg);
    int fd = s->wake_fd;
    /* From here on s is the I/O thread's to join and free, unless it gave
     * up on us: then nobody joins, and we free it ourselves. */
    if (atomic_exchange(&s->state, SVC_EXITED) == SVC_ABANDONED) {
        void (*release)(void *) = s->release;
        void *arg = s->release_arg;
        token_destroy(&s->token);
        free(s);
        release(arg);
    }
    uint64_t one = 1;
    ssize_t n = write(fd, &one, sizeof one);
    (void)n; /* an eventfd write only fails on overflow, which leaves it readable */
    close(fd);
    return NULL;
}

service *service_start(leasehold_election *e, service_fn fn, void *arg, uint64_t epoch,
                       uint64_t valid_until_ms, int wake_fd, int *code)
{
    service *s = calloc(1, sizeof *s);
    if (!s) {
        *code = LEASEHOLD_ENOMEM;
        return NULL;
    }
    s->token.election = e;
    s->token.epoch = epoch;
    atomic_init(&s->token.cancelled, false);
    atomic_init(&s->token.valid_until_ms, valid_until_ms);
    atomic_init(&s->state, SVC_RUNNING);
    s->fn = fn;
    s->arg = arg;
    s->wake_fd = fcntl(wake_fd, F_DUPFD_CLOEXEC, 0);
    s->token.fd = timerfd_create(CLOCK_BOOTTIME, TFD_CLOEXEC | TFD_NONBLOCK);
    if (s->token.fd < 0 || s->wake_fd < 0) {
        *code = -errno;
        if (s->token.fd >= 0)
            close(s->token.fd);
        if (s->wake_fd >= 0)
            close(s->wake_fd);
        free(s);
        return NULL;
    }
    arm(&s->token, valid_until_ms);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->token.cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&s->token.mu, NULL);
    int rc = pthread_create(&s->thread, NULL, service_main, s);
    if (rc != 0) {
        *code = -rc;
        token_destroy(&s->token);
        close(s->wake_fd);
        free(s);
        return NULL;
    }
    return s;
}

/* Moves the end of the term, and the timerfd with it, unless the token is
 * cancelled or its old end has already passed (then it is cancelled now:
 * the service may have seen it expire, and must not see it revive). */
void service_extend(service *s, uint64_t valid_until_ms)
{
    leasehold_token *t = &s->token;
    pthread_mutex_lock(&t->mu);
    uint64_t old = atomic_load(&t->valid_until_ms);
    if (!atomic_load(&t->cancelled) && valid_until_ms != old) {
        if (clock_now_ms() >= old) {
            cancel_locked(t);
        } else {
            atomic_store(&t->valid_until_ms, valid_until_ms);
            arm(t, valid_until_ms);
            /* Re-arming forgets a firing: if the old end passed meanwhile,
             * the fd may have been readable a moment ago. */
            if (clock_now_ms() >= old)
                cancel_locked(t);
        }
    }
    pthread_mutex_unlock(&t->mu);
}

void service_cancel(service *s)
{
    pthread_mutex_lock(&s->token.mu);
    cancel_locked(&s->token);
    pthread_mutex_unlock(&s->token.mu);
}

bool service_has_exited(const service *s)
{
    return atomic_load(&((service *)s)->state) == SVC_EXITED;
}

int service_join(service *s)
{
    pthread_join(s->thread, NULL);
    int result = s->result;
    token_destroy(&s->token);
    free(s);
    return result;
}

bool service_abandon(service *s, void (*release)(void *), void *arg)
{
    service_cancel(s);
    s->release = release;
    s->release_arg = arg;
    int running = SVC_RUNNING;
    if (!atomic_compare_exchange_strong(&s->state, &running, SVC_ABANDONED))
        return false; /* fn has just returned: the caller joins it */
    pthread_detach(s->thread);
    return true;
}

/* Cancelled by the I/O thread when the term ends, and in any case once the
 * clock passes valid_until. */
bool leasehold_token_cancelled(const leasehold_token *t)
{
    leasehold_token *m = (leasehold_token *)t;
    return atomic_load(&m->cancelled) || clock_now_ms() >= atomic_load(&m->valid_until_ms);
}

/* The CLOCK_MONOTONIC instant ms from now, for pthread_cond_timedwait. */
static struct timespec monotonic_in(uint64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

/* Waits on the token's condition until the end of the sleep or of the term,
 * whichever is first, or a cancel. */
bool leasehold_token_sleep(leasehold_token *t, uint32_t ms)
{
    uint64_t end = clock_now_ms() + ms;
    pthread_mutex_lock(&t->mu);
    for (;;) {
        uint64_t now = clock_now_ms();
        if (leasehold_token_cancelled(t) || now >= end)
            break;
        /* Wake at the end of the sleep or of the term, whichever is first;
         * renewals move the latter, so look again then. */
        uint64_t until = atomic_load(&t->valid_until_ms);
        struct timespec ts = monotonic_in((until < end ? until : end) - now);
        pthread_cond_timedwait(&t->cond, &t->mu, &ts);
    }
    bool cancelled = leasehold_token_cancelled(t);
    pthread_mutex_unlock(&t->mu);
    return !cancelled;
}

/* The timerfd: readable from valid_until, or from the cancel if sooner. */
int leasehold_token_fd(const leasehold_token *t)
{
    return t->fd;
}

uint64_t leasehold_token_epoch(const leasehold_token *t)
{
    return t->epoch;
}

leasehold_election *leasehold_token_election(const leasehold_token *t)
{
    return t->election;
}
