/* api_election.c — elections and one-off questions, on the caller's
 * threads: campaigning, observing and serving; the lock-free reads of a
 * term; resign, resume, hold and free, handed to the I/O thread through the
 * request queue; leasehold_holder_get().
 *
 * What a caller thread may touch of an election is its read-only names, its
 * atomics and, under e->mu or client->mu, the fields client_internal.h says.
 */
#include "client_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "error.h"
#include "term.h"

/* Frees e and its strings. */
static void election_destroy(leasehold_election *e)
{
    pthread_mutex_destroy(&e->mu);
    free(e->end_req);
    free(e->key);
    free(e->epoch_key);
    free(e->channel);
    free(e->quarantine_key);
    free(e->token);
    free(e);
}

/* Drops one reference to e (see refs); the last one frees it.  Any thread. */
void election_release(void *arg)
{
    leasehold_election *e = arg;
    if (atomic_fetch_sub(&e->refs, 1) == 1)
        election_destroy(e);
}

/* Frees a query and its strings. */
void query_free(query *q)
{
    free(q->key);
    free(q->epoch_key);
    free(q->token);
    free(q->channel);
    free(q->message);
    free(q);
}

/* Queues r for the I/O thread, with c->mu held; the caller wakes it. */
static void push_locked(leasehold_client *c, request *r)
{
    r->next = NULL;
    if (c->req_tail)
        c->req_tail->next = r;
    else
        c->req_head = r;
    c->req_tail = r;
}

/* Hands r to the I/O thread. */
static void push_request(leasehold_client *c, request *r)
{
    pthread_mutex_lock(&c->mu);
    push_locked(c, r);
    pthread_mutex_unlock(&c->mu);
    client_wake(c);
}

/* Queues a request of kind for e (or q) and wakes the I/O thread. */
static int enqueue(leasehold_client *c, request_kind kind, leasehold_election *e, query *q)
{
    request *r = calloc(1, sizeof *r);
    if (!r)
        return LEASEHOLD_ENOMEM;
    *r = (request){.kind = kind, .e = e, .q = q};
    push_request(c, r);
    return 0;
}

/* Makes an election for key and hands it to the I/O thread; fails on a bad
 * key, a client being freed, or a campaign of this client for the key. */
static leasehold_election *campaign(leasehold_client *c, const char *key,
                                    const leasehold_callbacks *cb, void *arg, service_fn fn,
                                    void *service_arg, bool observer, leasehold_error *err)
{
    error_clear(err);
    if (!c || !key || !key[0]) {
        error_set(err, LEASEHOLD_EINVAL, "%s", !c ? "no client given" : "the key is empty");
        return NULL;
    }
    if (protocol_check_key(key, err) < 0)
        return NULL;
    leasehold_election *e = calloc(1, sizeof *e);
    if (!e) {
        error_set(err, LEASEHOLD_ENOMEM, "out of memory");
        return NULL;
    }
    e->client = c;
    atomic_init(&e->refs, 1);
    pthread_mutex_init(&e->mu, NULL);
    e->key = strdup(key);
    e->epoch_key = protocol_epoch_key(key);
    e->channel = protocol_channel(key);
    e->quarantine_key = protocol_quarantine_key(key);
    e->token = client_format("%s/%016" PRIx64, c->identity, client_random_u64());
    if (cb)
        e->cb = *cb;
    e->arg = arg;
    e->service = fn;
    e->service_arg = service_arg;
    e->observer = observer;
    e->end_req = calloc(1, sizeof *e->end_req);
    atomic_init(&e->valid_until_ms, 0);
    atomic_init(&e->term_deadline_ms, 0);
    atomic_init(&e->epoch, 0);
    atomic_init(&e->resign_pending, 0);
    atomic_store(&e->stats.state_since_ms, clock_now_ms());
    if (!e->key || !e->epoch_key || !e->channel || !e->quarantine_key || !e->token || !e->end_req) {
        error_set(err, LEASEHOLD_ENOMEM, "out of memory");
        goto fail;
    }
    lease_config lc = client_lease_config(&c->cfg);
    pthread_mutex_lock(&c->mu);
    uint64_t seed = client_next_seed(c);
    int code = 0;
    if (c->closing)
        code = error_set(err, LEASEHOLD_ECLOSED, "the client is shutting down");
    for (leasehold_election *o = c->registry; o && !code && !observer; o = o->reg_next)
        if (!o->observer && strcmp(o->key, key) == 0)
            code = error_set(err, LEASEHOLD_EEXIST,
                             "this client already campaigns for %s: end that campaign first", key);
    if (!code) {
        lease_init(&e->lease, &lc, e->token, seed);
        e->reg_next = c->registry;
        c->registry = e;
    }
    pthread_mutex_unlock(&c->mu);
    if (code)
        goto fail;
    if (enqueue(c, REQ_CAMPAIGN, e, NULL) < 0) {
        pthread_mutex_lock(&c->mu);
        c->registry = e->reg_next; /* e is still the head: nothing else links it */
        pthread_mutex_unlock(&c->mu);
        error_set(err, LEASEHOLD_ENOMEM, "out of memory");
        goto fail;
    }
    return e;
fail:
    election_destroy(e);
    return NULL;
}

leasehold_election *leasehold_campaign(leasehold_client *c, const char *key,
                                       const leasehold_callbacks *cb, void *arg,
                                       leasehold_error *err)
{
    return campaign(c, key, cb, arg, NULL, NULL, false, err);
}

leasehold_election *leasehold_serve_cb(leasehold_client *c, const char *key, service_fn fn,
                                       void *arg, const leasehold_callbacks *cb,
                                       leasehold_error *err)
{
    if (!fn) {
        error_set(err, LEASEHOLD_EINVAL, "no service function given");
        return NULL;
    }
    return campaign(c, key, cb, arg, fn, arg, false, err);
}

leasehold_election *leasehold_serve(leasehold_client *c, const char *key, service_fn fn, void *arg,
                                    leasehold_error *err)
{
    return leasehold_serve_cb(c, key, fn, arg, NULL, err);
}

leasehold_election *leasehold_observe(leasehold_client *c, const char *key,
                                      const leasehold_callbacks *cb, void *arg,
                                      leasehold_error *err)
{
    return campaign(c, key, cb, arg, NULL, NULL, true, err);
}

uint64_t leasehold_term_deadline_ms(const leasehold_election *e)
{
    return e ? atomic_load(&((leasehold_election *)e)->term_deadline_ms) : 0;
}

/* Waits, on the thread that queued q (counted in c->waiters), for its answer:
 * at most command_timeout_ms, or connect_timeout_ms more when the connection
 * is being re-established.  0 with q to read and free; else the error in err
 * and q freed, or left to the I/O thread when it timed out. */
static int await_query(leasehold_client *c, query *q, leasehold_error *err)
{
    uint32_t wait_ms = c->cfg.command_timeout_ms + c->cfg.connect_timeout_ms;
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += wait_ms / 1000;
    until.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&c->mu);
    while (!q->done)
        if (pthread_cond_timedwait(&c->cond, &c->mu, &until) == ETIMEDOUT)
            break;
    bool done = q->done;
    if (!done) {
        q->abandoned = true; /* the I/O thread frees it */
        error_set(err, LEASEHOLD_ETIMEDOUT, "%s: no answer about key %s within %" PRIu32 " ms",
                  c->u.display, q->key, wait_ms);
    }
    c->waiters--; /* from here on c may be freed */
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->mu);
    if (!done)
        return LEASEHOLD_ETIMEDOUT;
    int code = q->code;
    if (code != 0) {
        error_set(err, code, "%s", q->msg);
        query_free(q);
    }
    return code;
}

/* Hands q (made, when made is true) to the I/O thread and waits for its
 * answer as await_query() does; q is freed on failure.  0 with q to read
 * and free, or the error in err. */
static int run_query(leasehold_client *c, query *q, bool made, leasehold_error *err)
{
    request *r = calloc(1, sizeof *r);
    int code = 0;
    if (!q || !r || !made) {
        code = error_set(err, LEASEHOLD_ENOMEM, "out of memory");
    } else {
        /* Counted as a waiter, and queued, in one step with the check: a
         * leasehold_client_free() either sees us (fails the query, waits
         * for us to leave) or we see it. */
        *r = (request){.kind = REQ_QUERY, .q = q};
        pthread_mutex_lock(&c->mu);
        if (c->closing) {
            code = error_set(err, LEASEHOLD_ECLOSED,
                             "key %s: the client is shutting down (leasehold_client_free)", q->key);
        } else {
            c->waiters++;
            push_locked(c, r);
        }
        pthread_mutex_unlock(&c->mu);
    }
    if (code) {
        if (q)
            query_free(q);
        free(r);
        return code;
    }
    client_wake(c);
    return await_query(c, q, err);
}

int leasehold_holder_get(leasehold_client *c, const char *key, leasehold_holder *out,
                         leasehold_error *err)
{
    error_clear(err);
    if (!c || !key || !key[0] || !out)
        return error_set(err, LEASEHOLD_EINVAL, "%s",
                         !c     ? "no client given"
                         : !out ? "no result given"
                                : "the key is empty");
    int bad_key = protocol_check_key(key, err);
    if (bad_key)
        return bad_key;
    if (client_on_loop_thread(c))
        return error_set(err, LEASEHOLD_EDEADLK,
                         "leasehold_holder_get() called from a callback would wait for itself");
    memset(out, 0, sizeof *out);
    query *q = calloc(1, sizeof *q);
    if (q) {
        q->key = strdup(key);
        q->epoch_key = protocol_epoch_key(key);
    }
    int code = run_query(c, q, q && q->key && q->epoch_key, err);
    if (code == 0) {
        *out = q->holder;
        query_free(q);
    }
    return code;
}

int leasehold_request_resign(leasehold_client *c, const char *key, uint64_t epoch,
                             const char *token, leasehold_error *err)
{
    error_clear(err);
    if (!c || !key || !key[0] || !token || epoch == 0 || !leasehold_is_token(token))
        return error_set(err, LEASEHOLD_EINVAL, "%s",
                         !c                ? "no client given"
                         : !key || !key[0] ? "no key given"
                         : epoch == 0      ? "no epoch given: a request names a term"
                         : !token          ? "no token given: a request names a term"
                                           : "the token is not a leasehold token");
    int bad_key = protocol_check_key(key, err);
    if (bad_key)
        return bad_key;
    if (client_on_loop_thread(c))
        return error_set(err, LEASEHOLD_EDEADLK,
                         "leasehold_request_resign() called from a callback would wait for itself");
    query *q = calloc(1, sizeof *q);
    if (q) {
        q->key = strdup(key);
        q->epoch_key = protocol_epoch_key(key);
        q->channel = protocol_channel(key);
        q->message = protocol_resign_message(epoch, token);
    }
    int code = run_query(c, q, q && q->key && q->epoch_key && q->channel && q->message, err);
    if (code == 0) {
        code = q->receivers > INT32_MAX ? INT32_MAX : (int)q->receivers;
        query_free(q);
    }
    return code;
}

bool leasehold_is_leader(const leasehold_election *e)
{
    leasehold_election *m = (leasehold_election *)e;
    if (!e || atomic_load(&m->resign_pending) > 0)
        return false;
    return clock_now_ms() < atomic_load(&m->valid_until_ms);
}

/* Nonzero whenever the leader check it makes passes: see term.h. */
uint64_t leasehold_epoch(const leasehold_election *e)
{
    leasehold_election *m = (leasehold_election *)e;
    if (!e || atomic_load(&m->resign_pending) > 0)
        return 0;
    return term_epoch(&m->epoch, &m->valid_until_ms, clock_now_ms());
}

const char *leasehold_key(const leasehold_election *e)
{
    return e ? e->key : "";
}

const char *leasehold_election_token(const leasehold_election *e)
{
    return e ? e->token : "";
}

/* Queues a resign for the I/O thread, unless the election has already been
 * let go of (an abandoned service calling it late): e->mu keeps the client
 * from being freed between the check and the queueing. */
int leasehold_resign(leasehold_election *e)
{
    if (!e)
        return LEASEHOLD_EINVAL;
    pthread_mutex_lock(&e->mu);
    int rc = LEASEHOLD_ECLOSED;
    if (!e->gone) {
        atomic_fetch_add(&e->resign_pending, 1);
        rc = enqueue(e->client, REQ_RESIGN, e, NULL);
        if (rc < 0)
            atomic_fetch_sub(&e->resign_pending, 1);
    }
    pthread_mutex_unlock(&e->mu);
    return rc;
}

/* Queues a resume for the I/O thread, as leasehold_resign() does. */
int leasehold_resume(leasehold_election *e)
{
    if (!e)
        return LEASEHOLD_EINVAL;
    pthread_mutex_lock(&e->mu);
    int rc = e->gone ? LEASEHOLD_ECLOSED : enqueue(e->client, REQ_RESUME, e, NULL);
    pthread_mutex_unlock(&e->mu);
    return rc;
}

/* Queues the hold for the I/O thread and waits for its answer.  The
 * process stops being leader here, before anything is sent, for good: the
 * caller's work has ended and a term that is being handed a hold must not
 * be acted on again, whatever the answer.  e->mu, then c->mu, as in
 * leasehold_resign(): a client being freed either fails the hold or waits
 * for it. */
int leasehold_resign_hold(leasehold_election *e, uint32_t hold_ms, leasehold_error *err)
{
    error_clear(err);
    if (!e || hold_ms == 0)
        return error_set(err, LEASEHOLD_EINVAL, "%s",
                         !e ? "no election given"
                            : "hold_ms is 0: a hold needs at least 1 ms (leasehold_resign() "
                              "releases the key at once)");
    if (e->service || e->observer)
        return error_set(err, LEASEHOLD_EINVAL,
                         "key %s: leasehold_resign_hold() is for campaigns without a service "
                         "(leasehold_campaign())",
                         e->key);
    leasehold_client *c = e->client;
    if (client_on_loop_thread(c))
        return error_set(err, LEASEHOLD_EDEADLK,
                         "leasehold_resign_hold() called from a callback would wait for itself");
    if (!leasehold_is_leader(e))
        return error_set(err, LEASEHOLD_ENOTLEADER, "key %s: not the leader: no term to hold",
                         e->key);
    query *q = calloc(1, sizeof *q);
    request *r = calloc(1, sizeof *r);
    if (q) {
        q->key = strdup(e->key);
        q->epoch_key = strdup(e->epoch_key); /* for the messages */
        q->token = strdup(e->token);
        q->hold_ms = hold_ms;
    }
    if (!q || !r || !q->key || !q->epoch_key || !q->token) {
        if (q)
            query_free(q);
        free(r);
        return error_set(err, LEASEHOLD_ENOMEM, "out of memory");
    }
    atomic_fetch_add(&e->resign_pending, 1); /* never decremented: not leader from now on */
    *r = (request){.kind = REQ_HOLD, .e = e, .q = q};
    int code = 0;
    pthread_mutex_lock(&e->mu);
    pthread_mutex_lock(&c->mu);
    if (e->gone || c->closing) {
        code = error_set(err, LEASEHOLD_ECLOSED,
                         "key %s: the election or its client is being freed: no hold", e->key);
    } else {
        c->waiters++;
        push_locked(c, r);
    }
    pthread_mutex_unlock(&c->mu);
    pthread_mutex_unlock(&e->mu);
    if (code) {
        query_free(q);
        free(r);
        return code;
    }
    client_wake(c);
    code = await_query(c, q, err);
    if (code == 0)
        query_free(q);
    return code;
}

void leasehold_election_free(leasehold_election *e)
{
    if (!e)
        return;
    leasehold_client *c = e->client;
    atomic_fetch_add(&e->resign_pending, 1); /* not leader from now on, for good */
    bool on_loop = client_on_loop_thread(c);
    pthread_mutex_lock(&c->mu);
    e->free_by_loop = on_loop;
    e->waited_for = !on_loop;
    c->waiters += !on_loop;
    pthread_mutex_unlock(&c->mu);
    request *r = e->end_req;
    *r = (request){.kind = REQ_END, .e = e};
    push_request(c, r);
    if (on_loop)
        return;
    pthread_mutex_lock(&c->mu);
    while (!e->unlinked)
        pthread_cond_wait(&c->cond, &c->mu);
    c->waiters--;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->mu);
    election_release(e);
}
