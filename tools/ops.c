/* ops.c — the thread of ops.h. */
#include "ops.h"

#include "http_server.h"
#include "sd_notify.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define STATUS_CHECK_MS 1000 /* STATUS= is checked this often even unpoked */

struct ops {
    http_server *http; /* NULL: no --metrics-listen */
    sd_notifier notifier;
    ops_target target;
    int wake_fd;
    pthread_t thread;
    bool started;
    atomic_bool quit;
    atomic_bool stopping_sent;
    char status[300]; /* the last STATUS= sent (the thread's) */
};

static int answer(void *arg, const char *path, FILE *body, const char **content_type);

ops *ops_open(const char *listen, char *err, size_t err_size)
{
    ops *o = calloc(1, sizeof *o);
    if (!o) {
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    o->wake_fd = -1;
    if (!sd_notifier_open(&o->notifier, err, (unsigned)err_size)) {
        free(o);
        return NULL;
    }
    o->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (o->wake_fd < 0) {
        snprintf(err, err_size, "eventfd: %s", strerror(errno));
        ops_close(o);
        return NULL;
    }
    if (listen) {
        char why[300];
        o->http = http_server_open(listen, answer, o, why, sizeof why); /* run once started */
        if (!o->http) {
            snprintf(err, err_size, "--metrics-listen %.280s", why);
            ops_close(o);
            return NULL;
        }
    }
    return o;
}

const char *ops_address(const ops *o)
{
    return o && o->http ? http_server_address(o->http) : NULL;
}

/* The HTTP answers. */
static int answer(void *arg, const char *path, FILE *body, const char **content_type)
{
    ops *o = arg;
    char text[400];
    if (strcmp(path, "/metrics") == 0) {
        *content_type = "text/plain; version=0.0.4; charset=utf-8";
        ops_metrics_write(&o->target, body);
        return 200;
    }
    if (strcmp(path, "/healthz") == 0) {
        bool ok = ops_healthy(&o->target, text, sizeof text);
        fprintf(body, "%s\n", ok ? "ok" : text);
        return ok ? 200 : 503;
    }
    if (strcmp(path, "/readyz") == 0) {
        bool ok = ops_ready(&o->target, text, sizeof text);
        fprintf(body, "%s\n", text);
        return ok ? 200 : 503;
    }
    if (strcmp(path, "/") == 0) {
        fprintf(body, "%s: /metrics, /healthz, /readyz\n", o->target.program);
        return 200;
    }
    fprintf(body, "not found: /metrics, /healthz or /readyz\n");
    return 404;
}

/* Sends STATUS= when what it says has changed. */
static void send_status(ops *o)
{
    char what[256], msg[300];
    ops_ready(&o->target, what, sizeof what);
    snprintf(msg, sizeof msg, "STATUS=%s", what);
    if (strcmp(msg, o->status) == 0)
        return;
    if (sd_notify_send(&o->notifier, msg))
        snprintf(o->status, sizeof o->status, "%s", msg);
}

static void *ops_main(void *arg)
{
    ops *o = arg;
    uint64_t next_dog = 0, next_status = 0;
    while (!atomic_load(&o->quit)) {
        uint64_t now = http_now_ms();
        if (now >= next_status) {
            if (o->target.election) /* else no election runs: nothing to say */
                send_status(o);
            next_status = now + STATUS_CHECK_MS;
        }
        if (o->notifier.watchdog_ms && now >= next_dog) {
            char why[256];
            if (!o->target.election || ops_healthy(&o->target, why, sizeof why))
                sd_notify_send(&o->notifier, "WATCHDOG=1");
            next_dog = now + (o->notifier.watchdog_ms / 2 ? o->notifier.watchdog_ms / 2 : 1);
        }
        uint64_t at = next_status;
        if (o->notifier.watchdog_ms && next_dog < at)
            at = next_dog;
        struct pollfd pfd[1 + HTTP_POLL_MAX];
        int n = 0;
        pfd[n++] = (struct pollfd){.fd = o->wake_fd, .events = POLLIN};
        if (o->http) {
            n += http_server_poll(o->http, pfd + 1);
            uint64_t h = http_server_wake_at(o->http);
            if (h < at)
                at = h;
        }
        now = http_now_ms();
        int timeout = at <= now ? 0 : (int)(at - now);
        int ready = poll(pfd, (nfds_t)n, timeout);
        if (ready < 0 && errno != EINTR)
            break;
        if (ready > 0 && pfd[0].revents) {
            uint64_t v;
            ssize_t rd = read(o->wake_fd, &v, sizeof v);
            (void)rd;
            next_status = 0; /* poked */
        }
        if (o->http)
            http_server_run(o->http, pfd + 1, n - 1, http_now_ms());
    }
    return NULL;
}

int ops_start(ops *o, const ops_target *t)
{
    sd_notify_send(&o->notifier, "READY=1");
    if (t)
        o->target = *t;
    else { /* no election to report on */
        http_server_close(o->http);
        o->http = NULL;
    }
    if (!o->http && !o->notifier.watchdog_ms && (!t || !sd_notifier_active(&o->notifier)))
        return 0; /* nothing to serve */
    int rc = pthread_create(&o->thread, NULL, ops_main, o);
    if (rc)
        return -rc;
    o->started = true;
    return 0;
}

void ops_poke(ops *o)
{
    if (!o || o->wake_fd < 0)
        return;
    uint64_t one = 1;
    ssize_t wr = write(o->wake_fd, &one, sizeof one);
    (void)wr;
}

void ops_stopping(ops *o)
{
    if (o && !atomic_exchange(&o->stopping_sent, true))
        sd_notify_send(&o->notifier, "STOPPING=1");
}

void ops_stop(ops *o)
{
    if (!o || !o->started)
        return;
    atomic_store(&o->quit, true);
    ops_poke(o);
    pthread_join(o->thread, NULL);
    o->started = false;
}

void ops_close(ops *o)
{
    if (!o)
        return;
    ops_stop(o);
    http_server_close(o->http);
    sd_notifier_close(&o->notifier);
    if (o->wake_fd >= 0)
        close(o->wake_fd);
    free(o);
}
