/*
 * leasehold_run.c — `leasehold run`: CMD runs only while this process is
 * the leader.
 *
 * One thread decides: the main thread, in a poll() loop over a signalfd
 * (SIGCHLD and the signals leasehold forwards) and a pipe from the
 * library's callbacks, which run on the library's I/O thread and only
 * write a small record to that pipe.  All process work (spawning, signals,
 * reaping) happens here.
 *
 * The safety rule for CMD: CMD runs only with a SIGKILL time, kill_at =
 * (the term's valid_until) - margin, read before it is spawned; the loop
 * wakes up for it, and so does CMD's guardian (leasehold_child.c), which
 * is told every new value and kills the group itself if leasehold is
 * stopped or starved past it; CMD dies with the guardian.
 * While the term goes on, the loop looks at it at least every check_ms and
 * moves kill_at to the latest valid_until, so a term that stops being
 * renewed is enforced even if the library's revoked callback never came
 * (its record may be dropped: the callbacks never block).  When the term
 * ends (revoked, or the loop sees leasehold_is_leader() false or a new
 * epoch) CMD's group gets SIGTERM at once and SIGKILL at kill_at at the
 * latest.  The lease is released (leasehold_resign, leasehold_client_free)
 * only after CMD and its whole group are gone.
 */
#include "exit_codes.h"
#include "leasehold_cli.h"
#include "ops.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#define BACKOFF_MIN_MS     500u
#define BACKOFF_MAX_MS     30000u
#define GROUP_GONE_WAIT_MS 2000u /* how long killed group members are waited for at once */
#define REAP_RETRY_MS      100u  /* then how often they are looked for again */
#define GUARD_SLACK_MS     10u   /* the guardian is told a later SIGKILL time past this */

extern char **environ;

/* What a library callback hands to the main thread: one atomic pipe write. */
typedef struct run_event {
    /* RUN_HALTED: a permanent error halted the campaign; RUN_HELD: the key
     * is held by another token */
    enum { RUN_ELECTED = 1, RUN_REVOKED, RUN_HALTED, RUN_HELD, RUN_RESIGN_ASKED } kind;
    leasehold_reason reason;   /* RUN_REVOKED */
    uint64_t epoch;            /* RUN_ELECTED, RUN_RESIGN_ASKED */
    uint64_t term_deadline_ms; /* RUN_REVOKED: the ended term's valid_until */
} run_event;

typedef struct runner {
    const cli_options *o;
    leasehold_client *client;
    leasehold_election *e;
    ops *ops;                /* --metrics-listen and systemd's notifications */
    int sig_fd;              /* signalfd */
    int ev_rd, ev_wr;        /* callbacks -> main thread */
    atomic_uint dropped;     /* events lost to a full pipe */
    atomic_int halt_code;    /* the permanent error that halted the campaign, or 0 */
    bool halt_revoked;       /* a term was revoked HALTED: halt_code follows */
    unsigned reported_drops; /* of them, those logged */
    cli_child child;         /* CMD and its guardian, while cmd_pid != 0 */
    uint64_t margin_ms;      /* SIGKILL this long before valid_until */
    uint64_t check_ms;       /* while CMD's term goes on, look at it this often */
    uint64_t elected_epoch;  /* of the last RUN_ELECTED read */

    pid_t cmd_pid;      /* 0 when neither CMD nor its group runs; also its pgid */
    uint64_t cmd_epoch; /* the term CMD runs for */
    uint64_t cmd_started_ms;
    uint64_t checked_at_ms;     /* the term was last looked at then */
    bool cmd_term_over;         /* its term ended: SIGTERM sent */
    bool cmd_killed;            /* SIGKILL sent */
    bool cmd_exited;            /* CMD itself exited; its group is still being ended */
    int cmd_code;               /* when cmd_exited: its exit status */
    uint64_t reap_retry_at_ms;  /* when cmd_exited: look for the group's survivors then */
    bool resign_when_gone;      /* step down once the group is gone */
    bool stepping_down;         /* `leasehold resign` asked: release once CMD is gone, then
                                   campaign again */
    uint64_t kill_at_ms;        /* SIGKILL CMD's group by then (CLI_NEVER: none) */
    uint64_t start_retry_at_ms; /* a term too near its end got no CMD: look again then */

    int stop_signal;        /* SIGTERM/SIGINT received, or 0 */
    uint64_t grace_at_ms;   /* SIGKILL by then once stopping (UINT64_MAX: none) */
    uint64_t restart_at_ms; /* --restart: start CMD again then (0: no restart due) */
    uint32_t backoff_ms;
    uint64_t wait_until_ms; /* --wait-timeout: give up then (UINT64_MAX: never) */
    int exit_code;          /* -1 while running */
} runner;

/* ------------------------------------------------------------- callbacks */

/* Runs on the I/O thread: one non-blocking write, nothing else.  A full
 * pipe drops the event and counts it: the main loop reads the term from
 * the library itself as well, so no event is needed for safety. */
static void push_event(runner *r, const run_event *ev)
{
    if (write(r->ev_wr, ev, sizeof *ev) != (ssize_t)sizeof *ev)
        atomic_fetch_add(&r->dropped, 1);
}

static void on_elected(leasehold_election *e, uint64_t epoch, void *arg)
{
    (void)e;
    runner *r = arg;
    push_event(r, &(run_event){.kind = RUN_ELECTED, .epoch = epoch});
    ops_poke(r->ops);
}

static void on_revoked(leasehold_election *e, leasehold_reason reason, void *arg)
{
    /* On the I/O thread no new term can start during this call, so the
     * deadline read here is the ended term's. */
    runner *r = arg;
    push_event(r, &(run_event){.kind = RUN_REVOKED,
                               .reason = reason,
                               .term_deadline_ms = leasehold_term_deadline_ms(e)});
    ops_poke(r->ops);
}

/* `leasehold resign` named this term: the main thread stops CMD, then
 * resigns (releasing the key). */
static void on_resign_requested(leasehold_election *e, uint64_t epoch, void *arg)
{
    (void)e;
    push_event(arg, &(run_event){.kind = RUN_RESIGN_ASKED, .epoch = epoch});
}

static void on_leader_changed(leasehold_election *e, const char *holder, uint64_t epoch, void *arg)
{
    ops_poke(((runner *)arg)->ops);
    if (!holder) {
        cli_log(LEASEHOLD_LOG_INFO, 0, NULL, "no leader: the key is free");
    } else if (strcmp(holder, leasehold_election_token(e)) != 0) {
        /* Another program's value: the library warns, without our epoch. */
        if (leasehold_is_token(holder))
            cli_log(LEASEHOLD_LOG_INFO, epoch, holder, "new leader");
        push_event(arg, &(run_event){.kind = RUN_HELD, .epoch = epoch});
    }
}

/* The library has logged err->msg already, once per change (its log is
 * ours): logging it here again would double every line.  A permanent error
 * has halted the campaign: the main thread ends CMD's term, if any, and
 * exits.  The code is kept where a dropped event cannot lose it. */
static void on_error(leasehold_election *e, const leasehold_error *err, void *arg)
{
    (void)e;
    runner *r = arg;
    if (!leasehold_error_is_permanent(err->code))
        return;
    int none = 0;
    atomic_compare_exchange_strong(&r->halt_code, &none, err->code);
    push_event(r, &(run_event){.kind = RUN_HALTED});
}

/* ------------------------------------------------------------------- CMD */

/* Frees what build_env() allocated: its last three strings and the array. */
static void free_env(char **env)
{
    size_t n = 0;
    while (env[n])
        n++;
    for (size_t i = n - 3; i < n; i++)
        free(env[i]);
    free(env);
}

/* environ without LEASEHOLD_KEY/EPOCH/TOKEN, then this term's three, last;
 * without SNAKETRON_REDIS_PASSWORD and SNAKETRON_SENTINEL_PASSWORD too,
 * which are leasehold's secrets, not CMD's.  NULL when out of memory. */
static char **build_env(const runner *r, uint64_t epoch)
{
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = calloc(n + 4, sizeof *env);
    if (!env)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (strncmp(environ[i], "LEASEHOLD_KEY=", 14) != 0 &&
            strncmp(environ[i], "LEASEHOLD_EPOCH=", 16) != 0 &&
            strncmp(environ[i], "LEASEHOLD_TOKEN=", 16) != 0 &&
            strncmp(environ[i], "SNAKETRON_REDIS_PASSWORD=", 25) != 0 &&
            strncmp(environ[i], "SNAKETRON_SENTINEL_PASSWORD=", 28) != 0)
            env[k++] = environ[i];
    }
    char *own[3] = {NULL, NULL, NULL};
    if (asprintf(&own[0], "LEASEHOLD_KEY=%s", r->o->key) < 0)
        own[0] = NULL;
    if (asprintf(&own[1], "LEASEHOLD_EPOCH=%" PRIu64, epoch) < 0)
        own[1] = NULL;
    if (asprintf(&own[2], "LEASEHOLD_TOKEN=%s", leasehold_election_token(r->e)) < 0)
        own[2] = NULL;
    if (!own[0] || !own[1] || !own[2]) {
        for (int i = 0; i < 3; i++)
            free(own[i]);
        free(env);
        return NULL;
    }
    for (int i = 0; i < 3; i++)
        env[k++] = own[i];
    env[k] = NULL;
    return env;
}

/* The epoch of the term this process certainly leads now, or 0. */
static uint64_t current_term(const runner *r)
{
    uint64_t epoch = leasehold_epoch(r->e);
    if (epoch == 0 || !leasehold_is_leader(r->e) || leasehold_epoch(r->e) != epoch)
        return 0;
    return epoch;
}

/* Sets CMD's SIGKILL time, and tells the guardian when it moved earlier
 * or more than GUARD_SLACK_MS later than what the guardian holds. */
static void set_kill_at(runner *r, uint64_t kill_at)
{
    r->kill_at_ms = kill_at;
    uint64_t told = r->child.kill_at_ms;
    if (r->child.guard_died || (kill_at >= told && kill_at - told <= GUARD_SLACK_MS))
        return;
    int rc = cli_child_arm(&r->child, kill_at);
    if (rc != 0)
        cli_log(LEASEHOLD_LOG_DEBUG, r->cmd_epoch, NULL,
                "cannot tell CMD's guardian its SIGKILL time (%s): leasehold keeps it itself",
                strerror(rc));
}

/* valid_until less the margin: the SIGKILL time for a term ending then. */
static uint64_t kill_time(const runner *r, uint64_t deadline)
{
    return deadline > r->margin_ms ? deadline - r->margin_ms : 0;
}

/* CMD's term is over: SIGTERM to its group now; SIGKILL comes at kill_at. */
static void end_term(runner *r, const char *why, uint64_t now)
{
    r->cmd_term_over = true;
    uint64_t left = r->kill_at_ms > now ? r->kill_at_ms - now : 0;
    cli_log(LEASEHOLD_LOG_WARN, r->cmd_epoch, leasehold_election_token(r->e),
            "no longer the leader (%s): SIGTERM to CMD's process group %d, SIGKILL in at most "
            "%" PRIu64 " ms",
            why, (int)r->cmd_pid, left);
    cli_child_signal_group(r->cmd_pid, SIGTERM);
}

/* While CMD's term goes on, moves kill_at to the term's latest valid_until
 * less the margin; once it has ended, ends CMD's term.  A term can end
 * before its valid_until (the key lost early: its deadline is then now), so
 * kill_at only ever moves earlier here, never later, whichever term's
 * deadline is read. */
static void check_term(runner *r, uint64_t now)
{
    r->checked_at_ms = now;
    uint64_t epoch = leasehold_epoch(r->e);
    uint64_t deadline = leasehold_term_deadline_ms(r->e);
    if (leasehold_is_leader(r->e) && epoch == r->cmd_epoch && leasehold_epoch(r->e) == epoch) {
        set_kill_at(r, kill_time(r, deadline));
        return;
    }
    uint64_t lost_at = kill_time(r, deadline);
    if (lost_at < r->kill_at_ms)
        set_kill_at(r, lost_at);
    end_term(r, "the term has ended", now);
}

/* Starts CMD for the term `epoch` with its SIGKILL time read first and
 * given to the guardian before CMD can run.  A term that ends within twice
 * the margin gets no CMD (it would be killed at once): the loop looks again
 * after check_ms.  Sets exit_code when CMD cannot be started. */
static void start_cmd(runner *r, uint64_t epoch, uint64_t now)
{
    const char *token = leasehold_election_token(r->e);
    uint64_t kill_at = kill_time(r, leasehold_term_deadline_ms(r->e));
    if (current_term(r) != epoch)
        return; /* it ended meanwhile: the deadline read may be another term's */
    if (kill_at <= now + r->margin_ms) {
        cli_log(LEASEHOLD_LOG_DEBUG, epoch, token,
                "the term is about to end without a renewal: CMD not started");
        r->start_retry_at_ms = now + r->check_ms;
        return;
    }
    r->start_retry_at_ms = 0;
    char **env = build_env(r, epoch);
    if (!env) {
        cli_log(LEASEHOLD_LOG_ERROR, epoch, token, "cannot start CMD: out of memory");
        r->exit_code = EXIT_OSERR;
        return;
    }
    int rc = cli_child_spawn(r->o->cmd, env, kill_at, &r->child);
    int spawn_errno = errno;
    free_env(env);
    if (rc == CLI_SPAWN_UNARMED) {
        cli_log(LEASEHOLD_LOG_ERROR, epoch, token,
                "cannot start %s: its guardian could not arm its SIGKILL time (%s); CMD never "
                "runs without it",
                r->o->cmd[0], strerror(spawn_errno));
        r->exit_code = EXIT_OSERR;
        return;
    }
    if (rc < 0) {
        cli_log(LEASEHOLD_LOG_ERROR, epoch, token, "cannot start %s: %s", r->o->cmd[0],
                strerror(spawn_errno));
        r->exit_code = EXIT_OSERR;
        return;
    }
    if (rc > 0) {
        cli_log(LEASEHOLD_LOG_ERROR, epoch, token, "cannot run %s: %s", r->o->cmd[0], strerror(rc));
        r->exit_code = rc == ENOENT ? EXIT_NOT_FOUND : EXIT_CANNOT_EXEC;
        return;
    }
    pid_t pid = r->child.pid;
    r->cmd_pid = pid;
    r->cmd_epoch = epoch;
    r->cmd_started_ms = now;
    r->cmd_term_over = false;
    r->cmd_killed = false;
    r->cmd_exited = false;
    r->reap_retry_at_ms = 0;
    r->resign_when_gone = false;
    r->kill_at_ms = kill_at;
    r->wait_until_ms = UINT64_MAX;
    cli_log(LEASEHOLD_LOG_INFO, epoch, token, "leader: started %s (pid %d)", r->o->cmd[0],
            (int)pid);
    check_term(r, now);
}

/* --hold-after-exit: CMD exited on its own during its term and its group
 * is gone; the key keeps this term's token for the hold instead of being
 * released, and leasehold exits with CMD's status.  A hold that fails
 * (the key was lost) means a late starter may run CMD again: EXIT_LOST. */
static void hold_key(runner *r, uint64_t epoch, int code)
{
    const char *token = leasehold_election_token(r->e);
    leasehold_error err;
    if (leasehold_resign_hold(r->e, (uint32_t)r->o->hold_after_exit_ms, &err) == 0) {
        cli_log(LEASEHOLD_LOG_INFO, epoch, token,
                "the key stays held for %" PRIu64 " ms (--hold-after-exit), then lapses",
                r->o->hold_after_exit_ms);
        r->exit_code = code;
        return;
    }
    cli_log(LEASEHOLD_LOG_ERROR, epoch, token,
            "%s exited with status %d, but the key could not be held after it "
            "(--hold-after-exit): %s; another process may run it again",
            r->o->cmd[0], code, err.msg);
    r->exit_code = EXIT_LOST;
}

/* What comes after CMD and its group are gone, CMD having exited with
 * `code`. */
static void after_cmd(runner *r, int code, uint64_t now)
{
    const char *token = leasehold_election_token(r->e);
    if (code > 128)
        cli_log(LEASEHOLD_LOG_INFO, r->cmd_epoch, token, "%s (pid %d) was killed by signal %d",
                r->o->cmd[0], (int)r->cmd_pid, code - 128);
    else
        cli_log(LEASEHOLD_LOG_INFO, r->cmd_epoch, token, "%s (pid %d) exited with status %d",
                r->o->cmd[0], (int)r->cmd_pid, code);
    uint64_t epoch = r->cmd_epoch;
    r->cmd_pid = 0;
    r->cmd_exited = false;
    r->grace_at_ms = UINT64_MAX;
    if (r->resign_when_gone) {
        r->resign_when_gone = false;
        leasehold_resign(r->e);
        cli_log(LEASEHOLD_LOG_WARN, epoch, token, "CMD's group is gone: stepped down");
    }
    if (r->stepping_down) {
        r->stepping_down = false;
        if (!r->stop_signal && !r->cmd_term_over && atomic_load(&r->halt_code) == 0) {
            leasehold_resign(r->e); /* releases the key: a standby takes over at once */
            cli_log(LEASEHOLD_LOG_INFO, epoch, token,
                    "CMD's group is gone: stepped down as asked (leasehold resign); "
                    "campaigning again");
            return;
        }
    }
    int halt = atomic_load(&r->halt_code);
    if (r->stop_signal) {
        /* A stop leasehold forwarded and CMD obeyed (exit 0, or died of
         * the signal, or exited 128+N for it) is a success: systemd and
         * the shell asked for it.  A CMD that needed SIGKILL did not. */
        bool obeyed = !r->cmd_killed && (code == 0 || code == 128 + r->stop_signal);
        r->exit_code = obeyed ? 0 : code;
    } else if (halt != 0) {
        r->exit_code = exit_status_for_error(halt);
    } else if (r->halt_revoked) {
        /* The error callback's news is on its way: supervise() exits. */
    } else if (r->cmd_term_over) {
        if (r->o->exit_on_loss) {
            cli_log(LEASEHOLD_LOG_WARN, epoch, token, "leadership lost: exiting (--exit-on-loss)");
            r->exit_code = EXIT_LOST;
        } else {
            cli_log(LEASEHOLD_LOG_INFO, 0, token, "campaigning again");
        }
    } else if (r->o->restart) {
        uint32_t delay = now - r->cmd_started_ms >= BACKOFF_MAX_MS ? BACKOFF_MIN_MS : r->backoff_ms;
        r->backoff_ms = delay * 2u < BACKOFF_MAX_MS ? delay * 2u : BACKOFF_MAX_MS;
        r->restart_at_ms = now + delay;
        cli_log(LEASEHOLD_LOG_INFO, epoch, token, "restarting %s in %u ms (--restart)",
                r->o->cmd[0], delay);
    } else if (r->o->hold_after_exit_ms) {
        hold_key(r, epoch, code);
    } else {
        r->exit_code = code;
    }
}

/* CMD has exited (not reaped yet): ends its group and reaps it, then
 * decides what comes next.  Members that survive SIGKILL keep CMD counted
 * as running (no new CMD, no release, the guardian armed): they are killed
 * and looked for again every REAP_RETRY_MS. */
static void finish_cmd(runner *r, uint64_t now)
{
    bool first = r->reap_retry_at_ms == 0;
    int left = cli_child_reap(&r->child, first ? GROUP_GONE_WAIT_MS : 0);
    if (left > 0) {
        if (first)
            cli_log(LEASEHOLD_LOG_ERROR, r->cmd_epoch, leasehold_election_token(r->e),
                    "%d process(es) of CMD's group %d still alive %u ms after SIGKILL: killing "
                    "them again every %u ms; the lease is not released before they are gone",
                    left, (int)r->cmd_pid, GROUP_GONE_WAIT_MS, REAP_RETRY_MS);
        r->reap_retry_at_ms = now + REAP_RETRY_MS;
        return;
    }
    if (!first)
        cli_log(LEASEHOLD_LOG_WARN, r->cmd_epoch, leasehold_election_token(r->e),
                "the last of CMD's group %d is gone", (int)r->cmd_pid);
    after_cmd(r, r->cmd_code, now);
}

static void on_cmd_exit(runner *r, int code, uint64_t now)
{
    if (r->child.guard_died)
        cli_log(LEASEHOLD_LOG_ERROR, r->cmd_epoch, leasehold_election_token(r->e),
                "the guardian process of CMD's group %d died: CMD died with it, the rest of its "
                "group gets SIGKILL",
                (int)r->cmd_pid);
    if (!r->cmd_term_over) {
        /* The guardian may have killed CMD at kill_at before this loop did:
         * then the term is treated as kill_for_lease() treats it. */
        check_term(r, now);
        if (!r->cmd_term_over && now >= r->kill_at_ms) {
            r->cmd_term_over = true;
            r->resign_when_gone = true;
        }
    }
    r->cmd_exited = true;
    r->cmd_code = code;
    r->reap_retry_at_ms = 0;
    finish_cmd(r, now);
}

/* Waits up to max_ms for CMD to exit; true with *code set if it did.  The
 * guardian reports it, so a guardian someone stopped is continued. */
static bool wait_cmd_exit(runner *r, uint64_t max_ms, int *code)
{
    if (r->child.guard_pid > 0)
        kill(r->child.guard_pid, SIGCONT);
    uint64_t deadline = cli_now_ms() + max_ms;
    while (!cli_child_exited(&r->child, code)) {
        uint64_t now = cli_now_ms();
        if (now >= deadline)
            return false;
        struct pollfd pfd = {.fd = cli_child_fd(&r->child), .events = POLLIN};
        if (poll(&pfd, 1, (int)(deadline - now)) < 0 && errno != EINTR)
            return false;
    }
    return true;
}

/* kill_at has come: SIGKILL to CMD's group.  If the library still counts
 * this process as leader, the renewals are late and the lease is about to
 * run out: this process steps down, but only once the group is gone (it is
 * reaped here at once), so the key is never released while part of CMD
 * may run. */
static void kill_for_lease(runner *r, uint64_t now)
{
    bool still_leader = !r->cmd_term_over;
    cli_log(LEASEHOLD_LOG_WARN, r->cmd_epoch, leasehold_election_token(r->e),
            "SIGKILL to CMD's process group %d (%s)", (int)r->cmd_pid,
            still_leader ? "no renewal came in time: the lease is about to run out"
                         : "the lease could pass to another process");
    cli_child_signal_group(r->cmd_pid, SIGKILL);
    r->cmd_killed = true;
    if (!still_leader)
        return;
    r->cmd_term_over = true;
    r->resign_when_gone = true;
    int code;
    if (wait_cmd_exit(r, GROUP_GONE_WAIT_MS, &code))
        on_cmd_exit(r, code, now);
}

/* Timers and the decision to start CMD; run after every wake-up. */
static void supervise(runner *r, uint64_t now)
{
    if (r->cmd_pid) {
        if (r->cmd_exited) {
            if (now >= r->reap_retry_at_ms)
                finish_cmd(r, now);
            return;
        }
        if (!r->cmd_term_over && atomic_load(&r->halt_code) != 0)
            end_term(r, "the campaign halted on a permanent error", now);
        if (!r->cmd_term_over)
            check_term(r, now);
        if (r->cmd_killed)
            return;
        if (now >= r->kill_at_ms) {
            kill_for_lease(r, now);
        } else if (now >= r->grace_at_ms) {
            /* A voluntary stop: the lease is released on the way out, once
             * CMD has been reaped. */
            cli_log(LEASEHOLD_LOG_WARN, r->cmd_epoch, leasehold_election_token(r->e),
                    "SIGKILL to CMD's process group %d (--grace has run out)", (int)r->cmd_pid);
            cli_child_signal_group(r->cmd_pid, SIGKILL);
            r->cmd_killed = true;
        }
        return;
    }
    if (r->stop_signal) {
        r->exit_code = 128 + r->stop_signal;
        return;
    }
    int halt = atomic_load(&r->halt_code);
    if (halt != 0) {
        r->exit_code = exit_status_for_error(halt);
        return;
    }
    uint64_t epoch = current_term(r);
    if (r->restart_at_ms != 0) {
        if (epoch == 0 || epoch != r->cmd_epoch) {
            r->restart_at_ms = 0; /* the term ended during the back-off */
            if (r->o->exit_on_loss) {
                cli_log(LEASEHOLD_LOG_WARN, r->cmd_epoch, leasehold_election_token(r->e),
                        "leadership lost: exiting (--exit-on-loss)");
                r->exit_code = EXIT_LOST;
                return;
            }
        } else if (now < r->restart_at_ms) {
            return;
        } else {
            r->restart_at_ms = 0;
        }
    }
    if (epoch != 0) {
        if (now >= r->start_retry_at_ms)
            start_cmd(r, epoch, now);
        return;
    }
    r->start_retry_at_ms = 0;
    if (r->o->wait_timeout_ms == 0)
        return;
    if (r->wait_until_ms == UINT64_MAX)
        r->wait_until_ms = now + r->o->wait_timeout_ms;
    if (now >= r->wait_until_ms) {
        cli_log(LEASEHOLD_LOG_WARN, 0, NULL, "not elected within %" PRIu64 " ms (--wait-timeout)",
                r->o->wait_timeout_ms);
        r->exit_code = EXIT_NOT_ELECTED;
    }
}

/* The next instant supervise() must run at, if nothing else happens. */
static uint64_t next_wake(const runner *r)
{
    uint64_t wake = UINT64_MAX;
    if (r->cmd_pid) {
        if (r->cmd_exited)
            return r->reap_retry_at_ms;
        if (r->cmd_killed)
            return UINT64_MAX; /* SIGCHLD comes */
        wake = r->kill_at_ms < r->grace_at_ms ? r->kill_at_ms : r->grace_at_ms;
        if (!r->cmd_term_over && r->checked_at_ms + r->check_ms < wake)
            wake = r->checked_at_ms + r->check_ms;
        return wake;
    }
    if (r->restart_at_ms != 0)
        wake = r->restart_at_ms;
    if (r->start_retry_at_ms != 0 && r->start_retry_at_ms < wake)
        wake = r->start_retry_at_ms;
    if (r->wait_until_ms < wake)
        wake = r->wait_until_ms;
    return wake;
}

/* Looks for CMD's exit (or its guardian's death) and acts on it. */
static void check_cmd_exit(runner *r, uint64_t now)
{
    int code;
    if (r->cmd_pid && !r->cmd_exited && cli_child_exited(&r->child, &code))
        on_cmd_exit(r, code, now);
}

static void on_signal(runner *r, int sig, uint64_t now)
{
    const char *name = sigabbrev_np(sig);
    if (sig == SIGCHLD) {
        check_cmd_exit(r, now); /* the guardian is our only child */
        return;
    }
    if (sig == SIGTERM || sig == SIGINT)
        ops_stopping(r->ops);
    if (!r->cmd_pid) {
        if (sig == SIGTERM || sig == SIGINT) {
            cli_log(LEASEHOLD_LOG_INFO, 0, NULL, "received SIG%s: exiting", name);
            r->stop_signal = sig;
        } else {
            cli_log(LEASEHOLD_LOG_INFO, 0, NULL, "received SIG%s: no CMD runs, ignored", name);
        }
        return;
    }
    if ((sig == SIGTERM || sig == SIGINT) && !r->stop_signal) {
        r->stop_signal = sig;
        r->grace_at_ms = now + r->o->grace_ms;
        cli_log(LEASEHOLD_LOG_INFO, r->cmd_epoch, leasehold_election_token(r->e),
                "received SIG%s: forwarded to CMD's process group %d, SIGKILL in %" PRIu64
                " ms; the lease is released once it has exited",
                name, (int)r->cmd_pid, r->o->grace_ms);
    } else {
        cli_log(LEASEHOLD_LOG_DEBUG, r->cmd_epoch, NULL,
                "received SIG%s: forwarded to CMD's process group %d", name, (int)r->cmd_pid);
    }
    cli_child_signal_group(r->cmd_pid, sig);
}

/* `leasehold resign` asked the term `epoch` to end: CMD, when it runs for
 * that term, gets SIGTERM and --grace, and the key is released once its
 * group is gone (after_cmd); with no CMD running, at once.  Leadership ends
 * with a release either way, and the campaign goes on. */
static void step_down(runner *r, uint64_t epoch, uint64_t now)
{
    const char *token = leasehold_election_token(r->e);
    if (r->stop_signal || r->stepping_down)
        return; /* stopping already */
    if (r->cmd_pid && r->cmd_epoch == epoch && !r->cmd_term_over && !r->cmd_exited) {
        r->stepping_down = true;
        r->grace_at_ms = now + r->o->grace_ms;
        cli_log(LEASEHOLD_LOG_INFO, epoch, token,
                "asked to step down (leasehold resign): SIGTERM to CMD's process group %d, "
                "SIGKILL in %" PRIu64 " ms; the lease is released once it has exited",
                (int)r->cmd_pid, r->o->grace_ms);
        cli_child_signal_group(r->cmd_pid, SIGTERM);
        return;
    }
    if (!r->cmd_pid && current_term(r) == epoch) {
        r->restart_at_ms = 0;
        leasehold_resign(r->e);
        cli_log(LEASEHOLD_LOG_INFO, epoch, token,
                "asked to step down (leasehold resign): no CMD runs; released");
    }
}

static void on_event(runner *r, const run_event *ev, uint64_t now)
{
    const char *token = leasehold_election_token(r->e);
    if (ev->kind == RUN_HALTED)
        return; /* supervise() acts on halt_code */
    if (ev->kind == RUN_ELECTED) {
        r->elected_epoch = ev->epoch;
        cli_log(LEASEHOLD_LOG_DEBUG, ev->epoch, token, "elected");
        return;
    }
    if (ev->kind == RUN_RESIGN_ASKED) {
        step_down(r, ev->epoch, now);
        return;
    }
    if (ev->reason == LEASEHOLD_HALTED)
        r->halt_revoked = true;
    if (ev->kind == RUN_HELD) {
        /* INFO, not WARN: under -q (cron) the loser says nothing. */
        if (r->o->try_once && !r->cmd_pid && !r->stop_signal && r->exit_code < 0 &&
            current_term(r) == 0) {
            cli_log(LEASEHOLD_LOG_INFO, ev->epoch, NULL,
                    "%s not run: the key is held by another process (--try-once)", r->o->cmd[0]);
            r->exit_code = EXIT_NOT_ELECTED;
        }
        return;
    }
    if (r->cmd_pid && r->cmd_epoch == r->elected_epoch) {
        /* The exact valid_until of CMD's term, which the loop's last
         * reading may trail. */
        set_kill_at(r, kill_time(r, ev->term_deadline_ms));
        if (!r->cmd_term_over)
            end_term(r, leasehold_reason_name(ev->reason), now);
        return;
    }
    cli_log(ev->reason == LEASEHOLD_RESIGNED ? LEASEHOLD_LOG_INFO : LEASEHOLD_LOG_WARN,
            r->elected_epoch, token, "no longer the leader (%s)",
            leasehold_reason_name(ev->reason));
    if (r->o->exit_on_loss && !r->halt_revoked && !r->stop_signal && r->exit_code < 0) {
        cli_log(LEASEHOLD_LOG_WARN, r->elected_epoch, token,
                "leadership lost: exiting (--exit-on-loss)");
        r->exit_code = EXIT_LOST;
    }
}

/* Reads every signal, event and report from the guardian that is ready. */
static void drain(runner *r, const struct pollfd pfds[3])
{
    if (pfds[0].revents & POLLIN) {
        struct signalfd_siginfo si;
        while (read(r->sig_fd, &si, sizeof si) == (ssize_t)sizeof si)
            on_signal(r, (int)si.ssi_signo, cli_now_ms());
    }
    if (pfds[1].revents & POLLIN) {
        run_event ev;
        while (read(r->ev_rd, &ev, sizeof ev) == (ssize_t)sizeof ev)
            on_event(r, &ev, cli_now_ms());
    }
    if (pfds[2].revents)
        check_cmd_exit(r, cli_now_ms());
}

/* Logs the events the I/O thread could not hand over since last time. */
static void report_drops(runner *r)
{
    unsigned dropped = atomic_load(&r->dropped);
    if (dropped == r->reported_drops)
        return;
    cli_log(LEASEHOLD_LOG_WARN, 0, NULL,
            "%u event(s) from the election dropped (their pipe was full); the term is read "
            "from the election directly",
            dropped - r->reported_drops);
    r->reported_drops = dropped;
}

static int loop(runner *r)
{
    while (r->exit_code < 0) {
        uint64_t now = cli_now_ms();
        report_drops(r);
        supervise(r, now);
        if (r->exit_code >= 0)
            break;
        uint64_t wake = next_wake(r);
        int timeout = wake == UINT64_MAX   ? -1
                      : wake <= now        ? 0
                      : wake - now > 60000 ? 60000
                                           : (int)(wake - now);
        /* The guardian's reports only while CMD's exit is not known yet
         * (a negative fd is left out by poll). */
        int child_fd = r->cmd_pid && !r->cmd_exited ? cli_child_fd(&r->child) : -1;
        struct pollfd pfds[3] = {{.fd = r->sig_fd, .events = POLLIN},
                                 {.fd = r->ev_rd, .events = POLLIN},
                                 {.fd = child_fd, .events = POLLIN}};
        if (poll(pfds, 3, timeout) < 0) {
            if (errno == EINTR)
                continue;
            cli_log(LEASEHOLD_LOG_ERROR, 0, NULL, "poll: %s", strerror(errno));
            return EXIT_OSERR;
        }
        drain(r, pfds);
    }
    return r->exit_code;
}

/* Every path out of `run` with CMD or its group still running ends here
 * first: the group is killed and CMD reaped before the lease can be
 * released, however long survivors of SIGKILL take. */
static void kill_cmd_now(runner *r)
{
    if (!r->cmd_pid)
        return;
    cli_child_signal_group(r->cmd_pid, SIGKILL);
    int code;
    while (!r->cmd_exited && !wait_cmd_exit(r, GROUP_GONE_WAIT_MS, &code)) {
    }
    int left;
    bool told = false;
    while ((left = cli_child_reap(&r->child, GROUP_GONE_WAIT_MS)) > 0) {
        if (!told)
            cli_log(LEASEHOLD_LOG_ERROR, r->cmd_epoch, NULL,
                    "%d process(es) of CMD's group %d survive SIGKILL: waiting for them before "
                    "releasing the lease",
                    left, (int)r->cmd_pid);
        told = true;
    }
    r->cmd_pid = 0;
}

/* Blocks the signals leasehold handles (in every thread to come) and
 * opens a signalfd for them.  The fd, or -1 with errno. */
static int open_signal_fd(void)
{
    sigset_t set;
    sigemptyset(&set);
    int sigs[] = {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        sigaddset(&set, sigs[i]);
    int rc = pthread_sigmask(SIG_BLOCK, &set, NULL);
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    signal(SIGPIPE, SIG_IGN); /* a closed stderr or guardian pipe is an error, not a death */
    return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

/* Creates the client and the campaign; an exit status on failure, else 0. */
static int start_campaign(runner *r)
{
    leasehold_config cfg;
    cli_config(r->o, &cfg);
    leasehold_error err;
    r->client = leasehold_client_new(&cfg, &err);
    if (!r->client) {
        bool usage = err.code == LEASEHOLD_ECONFIG || err.code == LEASEHOLD_EURL;
        cli_fatal(usage, "cannot start leader election (%s): %s", r->o->url_source, err.msg);
        return usage ? EXIT_USAGE : EXIT_UNAVAILABLE;
    }
    const leasehold_callbacks cbs = {
        .elected = on_elected,
        .revoked = on_revoked,
        .leader_changed = on_leader_changed,
        .error = on_error,
        .resign_requested = on_resign_requested,
    };
    r->e = leasehold_campaign(r->client, r->o->key, &cbs, r, &err);
    if (!r->e) {
        cli_fatal(err.code == LEASEHOLD_EINVAL, "cannot campaign for %s: %s", r->o->key, err.msg);
        return err.code == LEASEHOLD_EINVAL ? EXIT_USAGE : EXIT_UNAVAILABLE;
    }
    const cli_options *o = r->o;
    cli_log(LEASEHOLD_LOG_INFO, 0, leasehold_election_token(r->e),
            "campaigning to run %s: lease %" PRIu32 " ms, renew every %" PRIu32
            " ms, retry within %" PRIu32 " ms, renew deadline %" PRIu32
            " ms, command timeout %" PRIu32 " ms",
            o->cmd[0], o->lease_ms, o->renew_ms, o->retry_ms, o->renew_deadline_ms,
            o->command_timeout_ms);
    if (o->command_timeout_lowered)
        cli_log(LEASEHOLD_LOG_INFO, 0, NULL,
                "command timeout lowered to %" PRIu32
                " ms, half the renew deadline (--command-timeout sets it)",
                o->command_timeout_ms);
    return 0;
}

/* Serves --metrics-listen and tells systemd the campaign has started; an
 * exit status on failure, else 0. */
static int start_ops(runner *r)
{
    const ops_target t = {.client = r->client,
                          .election = r->e,
                          .program = "leasehold run",
                          .version = opts_version()};
    int rc = ops_start(r->ops, &t);
    if (rc < 0) {
        cli_log(LEASEHOLD_LOG_ERROR, 0, NULL, "cannot start the metrics thread: %s", strerror(-rc));
        return EXIT_OSERR;
    }
    if (ops_address(r->ops))
        cli_log(LEASEHOLD_LOG_INFO, 0, NULL, "serving /metrics, /healthz and /readyz on http://%s",
                ops_address(r->ops));
    return 0;
}

int cli_run(const cli_options *o)
{
    /* A mistyped CMD is refused now, not after an election it won. */
    int bad = cli_child_check(o->cmd[0]);
    if (bad != 0) {
        cli_log(LEASEHOLD_LOG_ERROR, 0, NULL, "cannot run %s: %s", o->cmd[0],
                bad == ENOENT   ? (strchr(o->cmd[0], '/') ? "no such file"
                                                          : "command not found (PATH searched)")
                : bad == EACCES ? "not an executable file (permission denied)"
                                : strerror(bad));
        return bad == ENOENT ? EXIT_NOT_FOUND : bad == EACCES ? EXIT_CANNOT_EXEC : EXIT_OSERR;
    }
    static runner r; /* the callbacks' arg: lives as long as the client */
    r = (runner){
        .o = o,
        .sig_fd = -1,
        .ev_rd = -1,
        .ev_wr = -1,
        .child = {.order_fd = -1, .report_fd = -1, .kill_at_ms = CLI_NEVER},
        .margin_ms = cli_kill_margin_ms(o->lease_ms),
        .check_ms = o->lease_ms / 10u > 10u ? o->lease_ms / 10u : 10u,
        .kill_at_ms = CLI_NEVER,
        .grace_at_ms = UINT64_MAX,
        .backoff_ms = BACKOFF_MIN_MS,
        .wait_until_ms = UINT64_MAX,
        .exit_code = -1,
    };
    /* Before any thread exists: the mask is inherited, the fork is clean. */
    r.sig_fd = open_signal_fd();
    int fds[2];
    int rc = r.sig_fd < 0 ? errno : pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0 ? errno : 0;
    if (rc == 0) {
        r.ev_rd = fds[0];
        r.ev_wr = fds[1];
    }
    if (rc != 0) {
        cli_log(LEASEHOLD_LOG_ERROR, 0, NULL, "cannot set up signals and pipes: %s", strerror(rc));
        return EXIT_OSERR;
    }

    char why[400];
    r.ops = ops_open(o->metrics_listen, why, sizeof why);
    if (!r.ops) {
        cli_log(LEASEHOLD_LOG_ERROR, 0, NULL, "%s", why);
        close(r.ev_rd);
        close(r.ev_wr);
        close(r.sig_fd);
        return EXIT_USAGE;
    }
    int code = start_campaign(&r);
    if (code == 0)
        code = start_ops(&r);
    if (code == 0)
        code = loop(&r);
    kill_cmd_now(&r);
    ops_stopping(r.ops);
    ops_stop(r.ops); /* before the election it reads is freed */
    if (r.client) {
        leasehold_client_free(r.client); /* ends the campaign, releases the lease */
        cli_log(LEASEHOLD_LOG_DEBUG, 0, NULL, "campaign ended, lease released if held");
    }
    ops_close(r.ops); /* the callbacks that poke it have ended */
    close(r.ev_rd);
    close(r.ev_wr);
    close(r.sig_fd);
    return code;
}
