/*
 * leasehold_observe.c — `leasehold status` and `leasehold watch`: who holds
 * a key, now and as it changes, without campaigning for it.
 *
 * status reads the key, its TTL and its epoch in one request
 * (leasehold_holder_get).  watch observes the key (leasehold_observe): the
 * library reports each change from the key's events channel as it happens
 * and from reading the key, so a holder that vanished without a word shows
 * as "expired".  Its callback runs on the library's I/O thread and only
 * hands the change to the main thread through a pipe; the main thread
 * prints, so a slow reader of stdout never stalls the library.
 */
#include "exit_codes.h"
#include "leasehold_cli.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#define OUT_LINE_MAX 1024

leasehold_client *cli_connect(const cli_options *o, int *code)
{
    leasehold_config cfg;
    cli_config(o, &cfg);
    leasehold_error err;
    leasehold_client *c = leasehold_client_new(&cfg, &err);
    if (!c) {
        bool usage = err.code == LEASEHOLD_ECONFIG || err.code == LEASEHOLD_EURL;
        cli_fatal(usage, "cannot connect to Redis (%s): %s", o->url_source, err.msg);
        *code = usage ? EXIT_USAGE : EXIT_UNAVAILABLE;
    }
    return c;
}

/* Appends `"name":` and s as a JSON string, or null when s is empty. */
static size_t json_field(char *line, size_t size, const char *name, const char *s)
{
    size_t len = strlen(line);
    len += (size_t)snprintf(line + len, size - len, ",\"%s\":", name);
    if (len >= size)
        return size - 1;
    if (!s[0])
        return len + (size_t)snprintf(line + len, size - len, "null");
    return cli_json_append(line, size, s);
}

/* Writes line (with its newline added) to stdout; 0, or errno. */
static int print_line(char *line, size_t len, size_t size)
{
    if (len >= size - 1)
        len = size - 2;
    line[len++] = '\n';
    return cli_write_all(STDOUT_FILENO, line, len);
}

/* --------------------------------------------------------------- status */

#define VALUE_SHOWN_MAX 100 /* bytes of a foreign value shown in text */

/*
 * Prints who holds the key.  A key that holds something other than a lease
 * exits EXIT_DATAERR, and still shows what it holds and for how long, so
 * that beside another program (or the original module) on the same key an
 * operator sees who has it: a value with no TTL (it never expires: no one
 * can be elected while it stays), or a value with a TTL that is not a
 * leasehold token.  The JSON object then has "leader":false, "token":null,
 * the raw "value" and an "error" naming the problem.
 */
int cli_status(const cli_options *o)
{
    int code;
    leasehold_client *c = cli_connect(o, &code);
    if (!c)
        return code;
    leasehold_holder h;
    leasehold_error err;
    int rc = leasehold_holder_get(c, o->key, &h, &err);
    leasehold_client_free(c);
    if (rc != 0) {
        cli_log(LEASEHOLD_LOG_ERROR, 0, NULL, "cannot read %s: %s", o->key, err.msg);
        return exit_status_for_error(rc);
    }

    bool held = h.token[0] != '\0';
    bool no_ttl = held && h.ttl_ms < 0;
    bool foreign = held && !no_ttl && !leasehold_is_token(h.token);
    const char *problem = no_ttl    ? "the key holds a value with no TTL: not a lease"
                          : foreign ? "the key holds a value that is not a leasehold token"
                                    : NULL;
    char line[OUT_LINE_MAX] = "";
    size_t len;
    if (o->json) {
        snprintf(line, sizeof line, "{\"key\":");
        cli_json_append(line, sizeof line, o->key);
        len = strlen(line);
        len += (size_t)snprintf(line + len, sizeof line - len, ",\"leader\":%s",
                                held && !problem ? "true" : "false");
        len = json_field(line, sizeof line, "token", problem ? "" : h.token);
        if (problem)
            len = json_field(line, sizeof line, "value", h.token);
        len += (size_t)snprintf(line + len, sizeof line - len,
                                ",\"epoch\":%" PRIu64 ",\"ttl_ms\":%" PRId64, h.epoch,
                                held ? h.ttl_ms : 0);
        len = json_field(line, sizeof line, "maxmemory_policy", h.maxmemory_policy);
        if (h.master[0])
            len = json_field(line, sizeof line, "master", h.master);
        if (problem)
            len = json_field(line, sizeof line, "error", problem);
        len += (size_t)snprintf(line + len, sizeof line - len, "}");
    } else if (problem) {
        char value[VALUE_SHOWN_MAX * 4 + 16];
        cli_quote(value, sizeof value, h.token, VALUE_SHOWN_MAX);
        if (no_ttl)
            len = (size_t)snprintf(line, sizeof line,
                                   "%s: holds %s with no TTL: not a lease, and no leader can be "
                                   "elected while it stays (another program wrote it: delete "
                                   "the key or use another)",
                                   o->key, value);
        else
            len = (size_t)snprintf(line, sizeof line,
                                   "%s: held by %s (expires in %" PRId64
                                   " ms), which is not a leasehold token: another program, or "
                                   "the original module, holds this key",
                                   o->key, value, h.ttl_ms);
    } else if (held) {
        len = (size_t)snprintf(line, sizeof line,
                               "%s: leader %s, epoch %" PRIu64 ", expires in %" PRId64 " ms",
                               o->key, h.token, h.epoch, h.ttl_ms);
    } else {
        len = (size_t)snprintf(line, sizeof line, "%s: no leader (last epoch %" PRIu64 ")", o->key,
                               h.epoch);
    }
    /* Behind Sentinel: which master answered. */
    if (!o->json && h.master[0] && len < sizeof line)
        len += (size_t)snprintf(line + len, sizeof line - len, "; master %s", h.master);
    /* A Redis that may evict keys can drop the lease under its leader. */
    if (!o->json && h.maxmemory_policy[0] && strcmp(h.maxmemory_policy, "noeviction") != 0 &&
        len < sizeof line)
        len += (size_t)snprintf(line + len, sizeof line - len,
                                "; Redis maxmemory-policy is %s: it may evict the lease key",
                                h.maxmemory_policy);
    if (len >= sizeof line)
        len = sizeof line - 1;
    rc = print_line(line, len, sizeof line);
    if (rc != 0 && rc != EPIPE) {
        cli_log(LEASEHOLD_LOG_ERROR, 0, NULL, "cannot write to stdout: %s", strerror(rc));
        return EXIT_IOERR;
    }
    return problem ? EXIT_DATAERR : held ? 0 : EXIT_NO_LEADER;
}

/* ---------------------------------------------------------------- watch */

/* One change, as the I/O thread hands it over: one atomic pipe write. */
typedef struct watch_event {
    struct timespec at; /* CLOCK_REALTIME when reported */
    leasehold_change change;
    uint64_t epoch;
    char token[256];
    bool halted; /* not a change: the watch halted (watcher.halt_code) */
} watch_event;

typedef struct watcher {
    int ev_wr;
    atomic_uint dropped;  /* changes lost to a full pipe */
    atomic_int halt_code; /* the permanent error that halted the watch, or 0 */
} watcher;

/* Runs on the I/O thread: never blocks (the pipe is non-blocking). */
static void on_observed(leasehold_election *e, const leasehold_observation *obs, void *arg)
{
    (void)e;
    watcher *w = arg;
    watch_event ev = {.change = obs->change, .epoch = obs->epoch};
    clock_gettime(CLOCK_REALTIME, &ev.at);
    snprintf(ev.token, sizeof ev.token, "%s", obs->token ? obs->token : "");
    if (write(w->ev_wr, &ev, sizeof ev) != (ssize_t)sizeof ev)
        atomic_fetch_add(&w->dropped, 1);
}

/* Runs on the I/O thread.  The library has logged err->msg already, once
 * per change: nothing is logged again here.  A permanent error has halted
 * the watch: the main thread is woken (a record that is not a change) and
 * exits; halt_code keeps the code if the pipe was full. */
static void on_watch_error(leasehold_election *e, const leasehold_error *err, void *arg)
{
    (void)e;
    watcher *w = arg;
    if (!leasehold_error_is_permanent(err->code))
        return;
    atomic_store(&w->halt_code, err->code);
    watch_event ev = {.halted = true};
    ssize_t n = write(w->ev_wr, &ev, sizeof ev); /* a full pipe wakes the loop as well */
    (void)n;
}

/* Prints one change: text "<UTC> <key> <change> epoch=E token=T" (unknown
 * parts left out) or a JSON object.  0, or errno of the write. */
static int print_change(const cli_options *o, const watch_event *ev)
{
    char stamp[40], line[OUT_LINE_MAX] = "";
    cli_utc_stamp(&ev->at, stamp, sizeof stamp);
    const char *change = leasehold_change_name(ev->change);
    /* Another program's value (not a leasehold token) may hold any byte: it
     * is quoted and escaped in text; the key's epoch is not its own. */
    bool foreign = ev->token[0] && !leasehold_is_token(ev->token);
    uint64_t epoch = foreign ? 0 : ev->epoch;
    size_t len;
    if (o->json) {
        snprintf(line, sizeof line, "{\"ts\":\"%s\",\"key\":", stamp);
        cli_json_append(line, sizeof line, o->key);
        len = strlen(line);
        len +=
            (size_t)snprintf(line + len, sizeof line - len, ",\"event\":\"%s\",\"epoch\":", change);
        if (epoch != 0)
            len += (size_t)snprintf(line + len, sizeof line - len, "%" PRIu64, epoch);
        else
            len += (size_t)snprintf(line + len, sizeof line - len, "null");
        len = json_field(line, sizeof line, "token", ev->token);
        if (len + 1 < sizeof line)
            line[len++] = '}';
    } else {
        len = (size_t)snprintf(line, sizeof line, "%s %s %s", stamp, o->key, change);
        if (epoch != 0 && len < sizeof line)
            len += (size_t)snprintf(line + len, sizeof line - len, " epoch=%" PRIu64, epoch);
        char quoted[sizeof ev->token * 4 + 16];
        if (foreign)
            cli_quote(quoted, sizeof quoted, ev->token, sizeof ev->token);
        if (ev->token[0] && len < sizeof line)
            len += (size_t)snprintf(line + len, sizeof line - len, " token=%s",
                                    foreign ? quoted : ev->token);
    }
    if (len >= sizeof line)
        len = sizeof line - 1;
    return print_line(line, len, sizeof line);
}

/* Prints who holds the key now, before any change: "<UTC> <key> leader
 * epoch=E token=T" or "<UTC> <key> no leader", or a JSON object with
 * "event":"current".  The holder goes into *now, so that the change that
 * reports the same term is not printed again.  -1 to go on watching, or
 * the exit status (0 when stdout is closed already). */
static int print_current(const cli_options *o, leasehold_client *c, watch_event *now)
{
    leasehold_holder h;
    leasehold_error err;
    int rc = leasehold_holder_get(c, o->key, &h, &err);
    if (rc != 0 && leasehold_error_is_permanent(rc)) {
        /* The observation reads the key too and halts on the same cause,
         * which the library logs once and watch_loop() exits on. */
        *now = (watch_event){0};
        return -1;
    }
    if (rc != 0) {
        /* Transient (a timeout, LOADING...): the observation retries and
         * reports it; watch goes on without a current line. */
        cli_log(LEASEHOLD_LOG_WARN, 0, NULL, "cannot read %s now: %s", o->key, err.msg);
        *now = (watch_event){0};
        return -1;
    }
    bool held = h.token[0] != '\0';
    /* Another program's value may hold any byte: quoted and escaped, as in
     * print_change(), and the key's epoch is not its own. */
    bool foreign = held && !leasehold_is_token(h.token);
    *now = (watch_event){.change = LEASEHOLD_CHANGE_ELECTED, .epoch = held ? h.epoch : 0};
    snprintf(now->token, sizeof now->token, "%s", h.token);
    struct timespec at;
    clock_gettime(CLOCK_REALTIME, &at);
    char stamp[40], line[OUT_LINE_MAX] = "";
    cli_utc_stamp(&at, stamp, sizeof stamp);
    size_t len;
    if (o->json) {
        snprintf(line, sizeof line, "{\"ts\":\"%s\",\"key\":", stamp);
        cli_json_append(line, sizeof line, o->key);
        len = strlen(line);
        len += (size_t)snprintf(
            line + len, sizeof line - len,
            ",\"event\":\"current\",\"leader\":%s,\"epoch\":", held ? "true" : "false");
        if (now->epoch != 0 && !foreign)
            len += (size_t)snprintf(line + len, sizeof line - len, "%" PRIu64, now->epoch);
        else
            len += (size_t)snprintf(line + len, sizeof line - len, "null");
        len = json_field(line, sizeof line, "token", h.token);
        if (len + 1 < sizeof line)
            line[len++] = '}';
    } else if (held) {
        len = (size_t)snprintf(line, sizeof line, "%s %s leader", stamp, o->key);
        if (now->epoch != 0 && !foreign && len < sizeof line)
            len += (size_t)snprintf(line + len, sizeof line - len, " epoch=%" PRIu64, now->epoch);
        char quoted[sizeof h.token * 4 + 16];
        if (foreign)
            cli_quote(quoted, sizeof quoted, h.token, sizeof h.token);
        if (len < sizeof line)
            len += (size_t)snprintf(line + len, sizeof line - len, " token=%s",
                                    foreign ? quoted : h.token);
    } else {
        len = (size_t)snprintf(line, sizeof line, "%s %s no leader", stamp, o->key);
    }
    if (len >= sizeof line)
        len = sizeof line - 1;
    rc = print_line(line, len, sizeof line);
    if (rc != 0 && rc != EPIPE)
        cli_log(LEASEHOLD_LOG_ERROR, 0, NULL, "cannot write to stdout: %s", strerror(rc));
    return rc == 0 ? -1 : rc == EPIPE ? 0 : EXIT_IOERR;
}

/* Prints changes until SIGINT/SIGTERM or stdout closes; the exit status.
 * stdout is polled too: a pipe whose reader has gone (`watch | head -1`)
 * reports POLLERR, so watch ends at once rather than at the next change. */
static int watch_loop(const cli_options *o, watcher *w, int sig_fd, int ev_rd,
                      const watch_event *current)
{
    unsigned reported_drops = 0;
    int out_fd = STDOUT_FILENO;
    for (;;) {
        struct pollfd pfds[3] = {{.fd = sig_fd, .events = POLLIN},
                                 {.fd = ev_rd, .events = POLLIN},
                                 {.fd = out_fd, .events = 0}};
        if (poll(pfds, 3, -1) < 0) {
            if (errno == EINTR)
                continue;
            cli_log(LEASEHOLD_LOG_ERROR, 0, NULL, "poll: %s", strerror(errno));
            return EXIT_OSERR;
        }
        if (pfds[2].revents & POLLNVAL)
            out_fd = -1; /* no stdout at all: the first write says so */
        else if (pfds[2].revents & (POLLERR | POLLHUP))
            return 0; /* the reader is done (`leasehold watch | head -1`) */
        if (pfds[0].revents & POLLIN) {
            struct signalfd_siginfo si;
            if (read(sig_fd, &si, sizeof si) == (ssize_t)sizeof si) {
                cli_log(LEASEHOLD_LOG_DEBUG, 0, NULL, "received SIG%s: exiting",
                        sigabbrev_np((int)si.ssi_signo));
                return 0;
            }
        }
        watch_event ev;
        while ((pfds[1].revents & POLLIN) && read(ev_rd, &ev, sizeof ev) == (ssize_t)sizeof ev) {
            if (ev.halted)
                continue;
            if (ev.change == LEASEHOLD_CHANGE_ELECTED && ev.epoch == current->epoch &&
                strcmp(ev.token, current->token) == 0)
                continue; /* the term print_current() showed */
            int rc = print_change(o, &ev);
            if (rc == EPIPE)
                return 0; /* the reader is done (`leasehold watch | head -1`) */
            if (rc != 0) {
                cli_log(LEASEHOLD_LOG_ERROR, 0, NULL, "cannot write to stdout: %s", strerror(rc));
                return EXIT_IOERR;
            }
        }
        int halt = atomic_load(&w->halt_code);
        if (halt != 0)
            return exit_status_for_error(halt); /* the library has said why */
        unsigned dropped = atomic_load(&w->dropped);
        if (dropped != reported_drops) {
            cli_log(LEASEHOLD_LOG_WARN, 0, NULL,
                    "%u change(s) not shown: stdout was read too slowly", dropped - reported_drops);
            reported_drops = dropped;
        }
    }
}

int cli_watch(const cli_options *o)
{
    /* Before any thread exists, so only the signalfd sees them. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    int rc = pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN); /* a closed stdout shows as EPIPE */
    int sig_fd = rc == 0 ? signalfd(-1, &stop, SFD_CLOEXEC) : -1;
    int fds[2];
    if (sig_fd < 0 || pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) {
        cli_log(LEASEHOLD_LOG_ERROR, 0, NULL, "cannot set up signals and pipes: %s",
                strerror(rc ? rc : errno));
        return EXIT_OSERR;
    }
    static watcher w; /* the callbacks' arg: lives as long as the client */
    w.ev_wr = fds[1];

    int code = 0;
    leasehold_client *c = cli_connect(o, &code);
    if (c) {
        const leasehold_callbacks cbs = {.observed = on_observed, .error = on_watch_error};
        leasehold_error err;
        leasehold_election *e = leasehold_observe(c, o->key, &cbs, &w, &err);
        if (e) {
            cli_log(LEASEHOLD_LOG_DEBUG, 0, NULL, "watching");
            /* After the observation started, so no change falls between. */
            watch_event current;
            code = print_current(o, c, &current);
            if (code < 0)
                code = watch_loop(o, &w, sig_fd, fds[0], &current);
        } else {
            cli_fatal(err.code == LEASEHOLD_EINVAL, "cannot watch %s: %s", o->key, err.msg);
            code = err.code == LEASEHOLD_EINVAL ? EXIT_USAGE : EXIT_UNAVAILABLE;
        }
        leasehold_client_free(c);
    }
    close(fds[0]);
    close(fds[1]);
    close(sig_fd);
    return code;
}
