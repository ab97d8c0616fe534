/* service.c — a leader-only service in a thread of its own, with its
 * cancellation token.
 *
 * The token is how the I/O thread tells the service that its term has ended:
 * an atomic flag for polling, a condition variable for leasehold_token_sleep()
 * and an eventfd for services built around poll().  The service thread tells
 * the I/O thread that it has returned through the client's wake eventfd.
 */
#include "service.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

struct leasehold_token {
    leasehold_election *election;
    uint64_t epoch;
    atomic_bool cancelled;
    int fd; /* eventfd: readable once cancelled */
    pthread_mutex_t mu;
    pthread_cond_t cond; /* signalled on cancel; uses CLOCK_MONOTONIC */
};

struct service {
    leasehold_token token;
    service_fn fn;
    void *arg;
    int wake_fd;
    pthread_t thread;
    atomic_bool exited;
    int result;
};

static void *service_main(void *p)
{
    service *s = p;
    s->result = s->fn(&s->token, s->arg);
    atomic_store(&s->exited, true);
    uint64_t one = 1;
    ssize_t n = write(s->wake_fd, &one, sizeof one);
    (void)n; /* an eventfd write only fails on overflow, which leaves it readable */
    return NULL;
}

service *service_start(leasehold_election *e, service_fn fn, void *arg, uint64_t epoch, int wake_fd,
                       int *code)
{
    service *s = calloc(1, sizeof *s);
    if (!s) {
        *code = LEASEHOLD_ENOMEM;
        return NULL;
    }
    s->token.election = e;
    s->token.epoch = epoch;
    atomic_init(&s->token.cancelled, false);
    atomic_init(&s->exited, false);
    s->fn = fn;
    s->arg = arg;
    s->wake_fd = wake_fd;
    s->token.fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (s->token.fd < 0) {
        *code = -errno;
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
        pthread_cond_destroy(&s->token.cond);
        pthread_mutex_destroy(&s->token.mu);
        free(s);
        return NULL;
    }
    return s;
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

bool leasehold_token_cancelled(const leasehold_token *t)
{
    return atomic_load(&((leasehold_token *)t)->cancelled);
}

bool leasehold_token_sleep(leasehold_token *t, uint32_t ms)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&t->mu);
    while (!atomic_load(&t->cancelled)) {
        if (pthread_cond_timedwait(&t->cond, &t->mu, &until) == ETIMEDOUT)
            break;
    }
    bool cancelled = atomic_load(&t->cancelled);
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
