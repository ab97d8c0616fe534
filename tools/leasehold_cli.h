/*
 * leasehold_cli.h — the parts of the `leasehold` command-line tool, and
 * what they promise each other.
 *
 *   leasehold.c          main(): the subcommand and its exit status
 *   leasehold_options.c  the command line and the environment -> cli_options
 *   options.c            the options and messages shared with server (options.h)
 *   log_lines.c          log lines on stderr (text or JSON), UTC stamps, JSON strings
 *                        (shared with server; log_lines.h)
 *   log_sink.c           the queue and thread that write log lines without blocking
 *                        (shared with server)
 *   leasehold_child.c    CMD under its guardian: own process group, deadline, reaping
 *   leasehold_run.c      `leasehold run`: CMD only while leader
 *   leasehold_observe.c  `leasehold status` and `leasehold watch`
 *   leasehold_resign.c   `leasehold resign`: ask the leader to step down
 */
#ifndef LEASEHOLD_CLI_H
#define LEASEHOLD_CLI_H

#include <leasehold.h>

#include "log_lines.h"
#include "options.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

/* ------------------------------------------------------------ exit codes */

enum cli_exit {
    EXIT_NO_LEADER = 3,     /* status: nobody holds the key */
    EXIT_USAGE = 64,        /* a bad command line (EX_USAGE) */
    EXIT_DATAERR = 65,      /* the key holds something that is not a lease (EX_DATAERR) */
    EXIT_UNAVAILABLE = 69,  /* Redis unreachable or refusing us (EX_UNAVAILABLE) */
    EXIT_SOFTWARE = 70,     /* an internal error (EX_SOFTWARE) */
    EXIT_OSERR = 71,        /* the system refused a pipe, a fork... (EX_OSERR) */
    EXIT_IOERR = 74,        /* stdout could not be written (EX_IOERR) */
    EXIT_NOT_ELECTED = 75,  /* run: not elected within --wait-timeout (EX_TEMPFAIL) */
    EXIT_LOST = 79,         /* run: leadership lost (--exit-on-loss), or the hold of
                               --hold-after-exit failed; past sysexits' 64-78 on purpose:
                               76 there is EX_PROTOCOL, which this is not */
    EXIT_CANNOT_EXEC = 126, /* CMD exists but cannot be executed */
    EXIT_NOT_FOUND = 127,   /* CMD not found */
};

/* --------------------------------------------------------------- options */

typedef enum cli_command { CLI_RUN, CLI_STATUS, CLI_WATCH, CLI_RESIGN } cli_command;

#define CLI_KEY_MAX 512

typedef struct cli_options {
    cli_command command;
    const char *url;
    const char *url_source; /* "--url", "--url-file" or "SNAKETRON_REDIS_URL" */
    opts_conn conn;         /* password, TLS */
    char key[CLI_KEY_MAX];
    const char *identity; /* NULL: the library's <hostname>:<pid> */
    uint32_t lease_ms, renew_ms, retry_ms, renew_deadline_ms;
    uint32_t command_timeout_ms;   /* run: the library's command_timeout_ms */
    bool command_timeout_lowered;  /* run: the default, lowered to half the renew deadline */
    uint32_t clock_drift_ppm;      /* run: the library's clock_drift_ppm */
    uint32_t priority;             /* run: the library's priority (--priority) */
    uint32_t handover_interval_ms; /* run: the library's handover_interval_ms */
    uint32_t connect_timeout_ms;   /* run: the library's connect_timeout_ms */
    uint64_t grace_ms;             /* run: SIGTERM/SIGINT -> SIGKILL after this */
    uint64_t wait_timeout_ms;      /* run: 0 = wait for leadership forever */
    bool restart;                  /* run: CMD exiting while leader is restarted */
    bool exit_on_loss;             /* run: exit EXIT_LOST instead of campaigning again */
    bool try_once;                 /* run: exit EXIT_NOT_ELECTED once the key is seen held */
    uint64_t hold_after_exit_ms;   /* run: CMD exited on its own: keep the key this long
                                      (leasehold_resign_hold), 0: release it */
    const char *metrics_listen;    /* run: --metrics-listen's address, or NULL */
    const char *token;             /* resign: --token, the term to end, or NULL (whoever leads) */
    bool wait;                     /* resign: --wait for a successor */
    bool json;                     /* status, watch: JSON lines on stdout */
    leasehold_log_level log_level;
    cli_log_format log_format;
    char **cmd; /* run: CMD and its arguments, NULL-terminated */
} cli_options;

/*
 * Fills o from the defaults, the environment (SNAKETRON_REDIS_URL,
 * SNAKETRON_REGION) and argv.  Returns 0, -1 after printing the help or
 * the version (exit 0), or EXIT_USAGE after printing one line that says
 * what is wrong.
 */
int cli_parse_options(int argc, char **argv, cli_options *o);

/* How long before a term's valid_until CMD's group is SIGKILLed:
 * max(50 ms, 5 % of the lease). */
uint64_t cli_kill_margin_ms(uint32_t lease_ms);

/* The library's configuration for o (timings, identity, logging). */
void cli_config(const cli_options *o, leasehold_config *cfg);

/* ----------------------------------------------------------------- child */

/* A SIGKILL time that never comes. */
#define CLI_NEVER UINT64_MAX

/*
 * CMD and its guardian.  For each CMD, leasehold forks a guardian, a small
 * single-threaded process named "lh-guardian" in a process group of its
 * own with every signal blocked, and the guardian forks CMD, which leads a
 * new process group, dies with the guardian (PR_SET_PDEATHSIG=SIGKILL, set
 * by CMD and checked with getppid()), and execs only after the guardian
 * has armed CMD's SIGKILL time on a CLOCK_BOOTTIME timer.  The guardian
 * SIGKILLs CMD's group
 *   - at the SIGKILL time leasehold last gave it, which a stopped (SIGSTOP,
 *     Ctrl-Z) or starved leasehold cannot delay;
 *   - when its pipe from leasehold reaches end of file (leasehold exited or
 *     was killed, even with SIGKILL), then reaps CMD and exits;
 * and when the guardian itself dies (even by SIGKILL), CMD dies with it.
 * The guardian reports CMD's exit to leasehold without reaping it, so the
 * group's id stays reserved until cli_child_reap() lets it go.
 */
typedef struct cli_child {
    pid_t pid;           /* CMD's pid, also its group's id; 0 when none */
    pid_t guard_pid;     /* the guardian, 0 once reaped */
    int order_fd;        /* to the guardian: SIGKILL times; -1 when closed */
    int report_fd;       /* from the guardian, non-blocking; -1 when closed */
    uint64_t kill_at_ms; /* the SIGKILL time the guardian last took */
    bool exited;         /* CMD has exited (or died with its guardian) */
    bool guard_died;     /* the guardian died before it was told to go */
    int code;            /* when exited: CMD's status, or 128+N when killed by signal N */
} cli_child;

/* What cli_child_spawn() returns when no CMD could be started. */
#define CLI_SPAWN_FAILED  (-1) /* no pipe, guardian or CMD could be made; errno set */
#define CLI_SPAWN_UNARMED (-2) /* the guardian could not arm CMD's SIGKILL time; errno set */

/*
 * Starts argv (PATH searched, before fork) with envp under a new guardian
 * that SIGKILLs its group at kill_at_ms (CLOCK_BOOTTIME ms; CLI_NEVER: only
 * if leasehold or the guardian dies), stdin/stdout/stderr inherited, every
 * signal disposition reset and every signal unblocked in CMD.  CMD never
 * runs unless that SIGKILL time is armed.  Returns 0 with *c filled; on an
 * exec failure, the child's errno as a positive number, with CMD and the
 * guardian already reaped; CLI_SPAWN_FAILED or CLI_SPAWN_UNARMED with
 * errno set when CMD did not start.  Call from one thread only.
 */
int cli_child_spawn(char *const argv[], char *const envp[], uint64_t kill_at_ms, cli_child *c);

/* Tells CMD's guardian a new SIGKILL time (CLI_NEVER: none).  Never
 * blocks.  0, or errno (EPIPE: the guardian is gone; EAGAIN: it does not
 * read, e.g. it is stopped). */
int cli_child_arm(cli_child *c, uint64_t kill_at_ms);

/* The fd that turns readable when the guardian has news (CMD exited, or
 * the guardian died): for poll(). */
int cli_child_fd(const cli_child *c);

/* True, with *code CMD's status (128+N when killed by signal N), if CMD
 * has exited or its guardian has died (then guard_died is set, the
 * guardian reaped, the group SIGKILLed and *code 128+SIGKILL).  Never
 * blocks; does not reap CMD. */
bool cli_child_exited(cli_child *c, int *code);

/* Sends sig to every process in the group pgid; SIGCONT follows SIGTERM
 * and SIGHUP so a stopped process gets to handle it. */
void cli_child_signal_group(pid_t pgid, int sig);

/*
 * Ends CMD's group after CMD itself exited: SIGKILL to what is left of the
 * group, then waits up to max_wait_ms for none of it to be alive (zombies
 * do not count).  Group gone: lets the guardian reap CMD and exit, reaps
 * the guardian, clears *c, returns 0.  Otherwise SIGKILLs the group again
 * and returns how many are still alive, with CMD not reaped (the group's
 * id stays reserved) and the guardian still armed: call again later.
 */
int cli_child_reap(cli_child *c, uint64_t max_wait_ms);

/* Whether file would run as CMD, PATH searched as cli_child_spawn() does:
 * 0, ENOENT (no such command), EACCES (found, but not an executable
 * file) or ENOMEM. */
int cli_child_check(const char *file);

/* The processes of group pgid that are alive (not zombies), from /proc. */
int cli_group_live_count(pid_t pgid);

/* leasehold_now_ms(): CLOCK_BOOTTIME in milliseconds, the clock the library
 * decides by and leasehold_term_deadline_ms() is on. */
uint64_t cli_now_ms(void);

/* -------------------------------------------------------------- commands */

/* `leasehold run`: returns the exit status. */
int cli_run(const cli_options *o);

/* A client for status, watch and resign (leasehold_observe.c); prints why
 * and returns NULL on failure, with the exit status in *code. */
leasehold_client *cli_connect(const cli_options *o, int *code);

/* `leasehold status` and `leasehold watch`: return the exit status. */
int cli_status(const cli_options *o);
int cli_watch(const cli_options *o);

/* `leasehold resign`: returns the exit status. */
int cli_resign(const cli_options *o);

#endif
