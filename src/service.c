/* service.c — a leader-only service in a thread of its own, with its
 * cancellation token.
 *
 * The token is how the I/O thread tells the service that its term has ended:
 * an atomic flag for polling, a condition variable for leasehold_token_sleep()
 * and an eventfd for services built around poll().  It also carries the end
 * of the term (valid_until), so a service never works past the lease even
 * when the I/O thread is late to cancel it.  The service thread tells the I/O
 * thread that it has returned through the client's wake eventfd.
 */
#include "service.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"

struct leasehold_token {
    leasehold_election *election;
    uint64_t epoch;
    atomic_bool cancelled;
    _Atomic uint64_t valid_until_ms; /* the term is certainly ours before this (clock.h) */
    int fd;                          /* eventfd: readable once cancelled */
    pthread_mutex_t mu;
    pthread_cond_t cond; /* signalled on cancel; uses CLOCK_MONOTONIC */
};

struct service {
    leasehold_token token;
    service_fn fn;
    void *arg;
    int wake_fd; /* our own dup of the client's: valid even after the client is gone */
    pthread_t thread;
    atomic_bool exited;
    int result;
};

static void *service_main(void *p)
{
    service *s = p;
    s->result = s->fn(&s->token, s->arg);
    int fd = s->wake_fd;
    atomic_store(&s->exited, true); /* from here on s may be freed by service_join */
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
    atomic_init(&s->exited, false);
    s->fn = fn;
    s->arg = arg;
    s->wake_fd = fcntl(wake_fd, F_DUPFD_CLOEXEC, 0);
    s->token.fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (s->token.fd < 0 || s->wake_fd < 0) {
        *code = -errno;
        if (s->token.fd >= 0)
            close(s->token.fd);
        if (s->wake_fd >= 0)
            close(s->wake_fd);
        free(s);
        return NULL;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->token.cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&s->token.mu, NULL);
    int rc = pthread_create(&s->thread, NULL, service_main, s);
    if (rc != 0) {
        *code = -rc;
        close(s->token.fd);
        close(s->wake_fd);
        pthread_cond_destroy(&s->token.cond);
        pthread_mutex_destroy(&s->token.mu);
        free(s);
        return NULL;
    }
    return s;
}

void service_extend(service *s, uint64_t valid_until_ms)
{
    atomic_store(&s->token.valid_until_ms, valid_until_ms);
}

void service_cancel(service *s)
{
    pthread_mutex_lock(&s->token.mu);
    bool was = atomic_exchange(&s->token.cancelled, true);
    if (!was)
        pthread_cond_broadcast(&s->token.cond);
    pthread_mutex_unlock(&s->token.mu);
    if (!was) {
        uint64_t one = 1;
        ssize_t n = write(s->token.fd, &one, sizeof one);
        (void)n;
    }
}

bool service_has_exited(const service *s)
{
    return atomic_load(&((service *)s)->exited);
}

int service_join(service *s)
{
    pthread_join(s->thread, NULL);
    int result = s->result;
    close(s->token.fd);
    pthread_cond_destroy(&s->token.cond);
    pthread_mutex_destroy(&s->token.mu);
    free(s);
    return result;
}

void service_abandon(service *s)
{
    pthread_detach(s->thread);
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
