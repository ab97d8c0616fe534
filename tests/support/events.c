/* events.c — a locked queue of callback events, and children reporting theirs.
 *
 * The queue is a growing array under one mutex; a condition variable wakes
 * the test thread when something is pushed.  Waiting removes only the event
 * it matched, so events of other candidates stay for later waits.  A child
 * writes each event as one line (a single write of less than PIPE_BUF, so
 * lines from several threads never interleave).
 */
#include "events.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "redis_server.h"
#include "testutil.h"

struct event_queue {
    pthread_mutex_t lock;
    pthread_cond_t changed; /* CLOCK_MONOTONIC */
    event *items;
    size_t len, cap;
};

event_queue *events_new(void)
{
    event_queue *q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&q->changed, &attr);
    pthread_condattr_destroy(&attr);
    pthread_mutex_init(&q->lock, NULL);
    return q;
}

void events_free(event_queue *q)
{
    if (!q)
        return;
    pthread_mutex_destroy(&q->lock);
    pthread_cond_destroy(&q->changed);
    free(q->items);
    free(q);
}

void events_push(event_queue *q, const event *ev)
{
    pthread_mutex_lock(&q->lock);
    if (q->len == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 64;
        event *items = realloc(q->items, cap * sizeof *items);
        if (!items) {
            pthread_mutex_unlock(&q->lock);
            return;
        }
        q->items = items;
        q->cap = cap;
    }
    q->items[q->len] = *ev;
    if (q->items[q->len].at_ms == 0)
        q->items[q->len].at_ms = test_now_ms();
    q->len++;
    pthread_cond_broadcast(&q->changed);
    pthread_mutex_unlock(&q->lock);
}

event_filter events_of(event_kind kind, int who)
{
    event_filter f = {kind, who, -1, NULL};
    return f;
}

static bool matches(const event *ev, const event_filter *f)
{
    if (f->kind != EV_ANY && ev->kind != f->kind)
        return false;
    if (f->who >= 0 && ev->who != f->who)
        return false;
    if (f->not_who >= 0 && ev->who == f->not_who)
        return false;
    if (f->text && strcmp(ev->text, f->text) != 0)
        return false;
    return true;
}

bool events_wait(event_queue *q, event_filter f, uint64_t max_ms, event *out)
{
    uint64_t deadline_ms = test_now_ms() + test_ms(max_ms);
    struct timespec deadline = {(time_t)(deadline_ms / 1000),
                                (long)(deadline_ms % 1000) * 1000000L};
    pthread_mutex_lock(&q->lock);
    for (;;) {
        for (size_t i = 0; i < q->len; i++) {
            if (matches(&q->items[i], &f)) {
                if (out)
                    *out = q->items[i];
                memmove(&q->items[i], &q->items[i + 1], (q->len - i - 1) * sizeof *q->items);
                q->len--;
                pthread_mutex_unlock(&q->lock);
                return true;
            }
        }
        if (pthread_cond_timedwait(&q->changed, &q->lock, &deadline) == ETIMEDOUT &&
            test_now_ms() >= deadline_ms) {
            pthread_mutex_unlock(&q->lock);
            return false;
        }
    }
}

int events_count(event_queue *q, event_filter f)
{
    int n = 0;
    pthread_mutex_lock(&q->lock);
    for (size_t i = 0; i < q->len; i++)
        n += matches(&q->items[i], &f);
    pthread_mutex_unlock(&q->lock);
    return n;
}

void events_clear(event_queue *q)
{
    pthread_mutex_lock(&q->lock);
    q->len = 0;
    pthread_mutex_unlock(&q->lock);
}

/* One line: "kind who at_ms epoch value has_text text", text last and
 * without newlines. */
static void write_line(int fd, const event *ev)
{
    char line[512];
    int n = snprintf(line, sizeof line, "%d %d %llu %llu %lld %d %s", (int)ev->kind, ev->who,
                     (unsigned long long)ev->at_ms, (unsigned long long)ev->epoch, ev->value,
                     ev->has_text ? 1 : 0, ev->text);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof line - 1)
        n = (int)sizeof line - 2;
    for (int i = 0; i < n; i++)
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    line[n++] = '\n';
    ssize_t w = write(fd, line, (size_t)n);
    (void)w;
}

static bool parse_line(const char *line, event *ev)
{
    memset(ev, 0, sizeof *ev);
    int kind, has_text, off = 0;
    unsigned long long at, epoch;
    if (sscanf(line, "%d %d %llu %llu %lld %d %n", &kind, &ev->who, &at, &epoch, &ev->value,
               &has_text, &off) < 6)
        return false;
    ev->kind = (event_kind)kind;
    ev->at_ms = at;
    ev->epoch = epoch;
    ev->has_text = has_text != 0;
    snprintf(ev->text, sizeof ev->text, "%s", line + off);
    return true;
}

void events_emit(event_sink *s, const event *ev)
{
    event e = *ev;
    e.who = s->who;
    if (e.at_ms == 0)
        e.at_ms = test_now_ms();
    if (s->q)
        events_push(s->q, &e);
    else
        write_line(s->fd, &e);
}

static void on_elected(leasehold_election *e, uint64_t epoch, void *arg)
{
    (void)e;
    event ev = {.kind = EV_ELECTED, .epoch = epoch};
    events_emit(arg, &ev);
}

static void on_revoked(leasehold_election *e, leasehold_reason reason, void *arg)
{
    (void)e;
    event ev = {.kind = EV_REVOKED, .value = reason};
    events_emit(arg, &ev);
}

static void on_leader_changed(leasehold_election *e, const char *holder, uint64_t epoch, void *arg)
{
    (void)e;
    event ev = {.kind = EV_LEADER_CHANGED, .epoch = epoch, .has_text = holder != NULL};
    snprintf(ev.text, sizeof ev.text, "%s", holder ? holder : "");
    events_emit(arg, &ev);
}

static void on_error(leasehold_election *e, const leasehold_error *err, void *arg)
{
    (void)e;
    event ev = {.kind = EV_ERROR, .value = err->code, .has_text = true};
    snprintf(ev.text, sizeof ev.text, "%s", err->msg);
    events_emit(arg, &ev);
}

const leasehold_callbacks events_callbacks = {
    .elected = on_elected,
    .revoked = on_revoked,
    .leader_changed = on_leader_changed,
    .error = on_error,
};

void events_log(leasehold_log_level level, const char *msg, void *arg)
{
    event ev = {.kind = EV_LOG, .value = level, .has_text = true};
    snprintf(ev.text, sizeof ev.text, "%s", msg);
    events_emit(arg, &ev);
}

/* Creates cd's client for cfg as candidate `who` of q, then its election
 * through serve_cb when service is given, else through leasehold_campaign.
 * Returns 0, or the error code with the message printed. */
static int candidate_begin(candidate *cd, const leasehold_config *cfg, const char *key,
                           int (*service)(leasehold_token *t, void *arg), event_queue *q, int who)
{
    memset(cd, 0, sizeof *cd);
    cd->sink.q = q;
    cd->sink.fd = -1;
    cd->sink.who = who;
    leasehold_config c = *cfg;
    c.log = events_log;
    c.log_arg = &cd->sink;
    leasehold_error err = {0};
    cd->client = leasehold_client_new(&c, &err);
    if (!cd->client) {
        fprintf(stderr, "candidate %d: leasehold_client_new: %s (%s)\n", who, err.msg,
                leasehold_errname(err.code));
        return err.code ? err.code : -1;
    }
    cd->election =
        service ? leasehold_serve_cb(cd->client, key, service, &cd->sink, &events_callbacks, &err)
                : leasehold_campaign(cd->client, key, &events_callbacks, &cd->sink, &err);
    if (!cd->election) {
        fprintf(stderr, "candidate %d: %s: %s (%s)\n", who,
                service ? "leasehold_serve_cb" : "leasehold_campaign", err.msg,
                leasehold_errname(err.code));
        leasehold_client_free(cd->client);
        cd->client = NULL;
        return err.code ? err.code : -1;
    }
    return 0;
}

int candidate_start(candidate *cd, const leasehold_config *cfg, const char *key, event_queue *q,
                    int who)
{
    return candidate_begin(cd, cfg, key, NULL, q, who);
}

int candidate_serve(candidate *cd, const leasehold_config *cfg, const char *key,
                    int (*service)(leasehold_token *t, void *arg), event_queue *q, int who)
{
    return candidate_begin(cd, cfg, key, service, q, who);
}

void candidate_stop(candidate *cd)
{
    if (cd->client)
        leasehold_client_free(cd->client);
    cd->client = NULL;
    cd->election = NULL;
}

struct events_child {
    event_queue *q;
    int who;
    pid_t pid;
    int fd; /* read end of the child's stdout */
    pthread_t reader;
};

/* Queues each complete line the child writes; EV_EXIT at end of file. */
static void *read_child(void *arg)
{
    events_child *ch = arg;
    char buf[8192];
    size_t len = 0;
    for (;;) {
        ssize_t n = read(ch->fd, buf + len, sizeof buf - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
        buf[len] = '\0';
        char *start = buf, *nl;
        while ((nl = strchr(start, '\n')) != NULL) {
            *nl = '\0';
            event ev;
            if (parse_line(start, &ev))
                events_push(ch->q, &ev);
            start = nl + 1;
        }
        len = (size_t)(buf + len - start);
        memmove(buf, start, len);
        if (len == sizeof buf - 1)
            len = 0; /* a line longer than the buffer: drop it */
    }
    event ev = {.kind = EV_EXIT, .who = ch->who};
    events_push(ch->q, &ev);
    return NULL;
}

events_child *events_child_start(event_queue *q, int who, char *const argv[])
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) {
        perror("events_child_start: pipe2");
        return NULL;
    }
    events_child *ch = calloc(1, sizeof *ch);
    ch->q = q;
    ch->who = who;
    ch->fd = p[0];
    ch->pid = test_process_spawn(argv, p[1]);
    close(p[1]);
    if (ch->pid < 0 || pthread_create(&ch->reader, NULL, read_child, ch) != 0) {
        if (ch->pid > 0)
            test_process_kill(ch->pid);
        close(p[0]);
        free(ch);
        return NULL;
    }
    return ch;
}

pid_t events_child_pid(const events_child *ch)
{
    return ch->pid;
}

void events_child_stop(events_child *ch)
{
    if (!ch)
        return;
    test_process_kill(ch->pid);
    pthread_join(ch->reader, NULL);
    close(ch->fd);
    free(ch);
}
