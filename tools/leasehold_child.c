/*
 * leasehold_child.c — CMD as a grandchild, under a guardian that kills its
 * group at its deadline, if leasehold itself is killed, and when the
 * guardian is killed.
 *
 * After libuv's src/unix/process.c: PATH is searched before fork (the
 * children of a threaded process only make system calls), signals are
 * blocked across fork(), CMD resets every disposition and unblocks every
 * signal before exec, an exec failure comes back through a close-on-exec
 * pipe, and only our own pids are waited for (never waitpid(-1): the
 * library's threads and the user's CMD are none of our business beyond
 * that).
 *
 * leasehold forks the guardian; the guardian arms CMD's SIGKILL time on a
 * CLOCK_BOOTTIME timerfd and only then forks CMD.  CMD leads a process
 * group of its own, so one kill(-pgid) reaches the grandchildren a shell
 * starts (`sh -c 'sleep 1000 & wait'`).  Nothing is left unguarded:
 *   - a stopped or starved leasehold: the guardian keeps the SIGKILL time;
 *   - a dead leasehold (even SIGKILL): the guardian's pipe from it reaches
 *     end of file and the guardian SIGKILLs the whole group;
 *   - a dead guardian (even SIGKILL): CMD has PR_SET_PDEATHSIG=SIGKILL,
 *     which fires when the thread that forked it dies; the guardian has one
 *     thread, which lives as long as it does.  CMD's grandchildren are not
 *     covered by that: leasehold SIGKILLs the group as soon as it runs.
 * The group's id is CMD's pid; it stays reserved (cannot name another
 * group) until CMD is reaped, so the guardian only reports CMD's exit
 * (waitid WNOWAIT), leasehold kills the rest of the group and waits until
 * none of it is alive, and only then lets the guardian reap CMD and exit.
 */
#include "leasehold_cli.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The library's clock, so that leasehold_term_deadline_ms() compares. */
uint64_t cli_now_ms(void)
{
    return leasehold_now_ms();
}

/* ---------------------------------------------------------------- child */

/* Frees what exec_candidates() returned. */
static void free_candidates(char **paths)
{
    for (size_t i = 0; paths[i]; i++)
        free(paths[i]);
    free(paths);
}

/*
 * The paths execvp() would try for file, built before fork so that the
 * child only calls execve(): file itself when it holds a '/' (or is
 * empty), else file in each directory of PATH (default "/bin:/usr/bin"),
 * an empty directory meaning the current one.  NULL-terminated; NULL when
 * out of memory.
 */
static char **exec_candidates(const char *file)
{
    const char *path = getenv("PATH");
    if (!path)
        path = "/bin:/usr/bin";
    bool direct = file[0] == '\0' || strchr(file, '/') != NULL;
    size_t n = 1;
    for (const char *c = path; !direct && *c; c++)
        n += *c == ':';
    char **paths = calloc(n + 1, sizeof *paths);
    if (!paths)
        return NULL;
    if (direct) {
        paths[0] = strdup(file);
        if (!paths[0]) {
            free(paths);
            return NULL;
        }
        return paths;
    }
    const char *dir = path;
    for (size_t k = 0; k < n; k++) {
        const char *end = strchrnul(dir, ':');
        int len = (int)(end - dir);
        if (asprintf(&paths[k], "%.*s%s%s", len, dir, len > 0 ? "/" : "", file) < 0) {
            paths[k] = NULL;
            free_candidates(paths);
            return NULL;
        }
        dir = *end ? end + 1 : end;
    }
    return paths;
}

int cli_child_check(const char *file)
{
    char **paths = exec_candidates(file);
    if (!paths)
        return ENOMEM;
    int rc = ENOENT;
    for (size_t i = 0; paths[i] && rc != 0; i++) {
        struct stat st;
        if (stat(paths[i], &st) != 0)
            continue;
        rc = S_ISREG(st.st_mode) && access(paths[i], X_OK) == 0 ? 0 : EACCES;
    }
    free_candidates(paths);
    return rc;
}

/* Tries each of paths with execve() as execvp() does: on to the next one
 * when a path does not lead to a file or is not permitted; EACCES if one
 * was not permitted and none worked.  Async-signal-safe; returns only on
 * failure, with the errno to report. */
static int exec_first(char *const paths[], char *const argv[], char *const envp[])
{
    bool denied = false;
    int e = ENOENT;
    for (size_t i = 0; paths[i]; i++) {
        execve(paths[i], argv, envp);
        e = errno;
        if (e == EACCES)
            denied = true;
        else if (e != ENOENT && e != ENOTDIR && e != ESTALE && e != ENODEV && e != ETIMEDOUT)
            return e; /* the file was found and cannot run */
    }
    return denied ? EACCES : e;
}

/* A report from the guardian to leasehold: one atomic pipe write. */
typedef struct guard_report {
    int32_t kind;  /* enum guard_report_kind */
    int32_t value; /* CMD's pid, its exit status, or an errno */
} guard_report;

enum guard_report_kind {
    REPORT_STARTED = 1, /* CMD has exec'd; value: its pid */
    REPORT_EXEC_FAILED, /* value: exec's errno; CMD reaped, the guardian exits */
    REPORT_UNARMED,     /* value: errno; CMD never forked, the guardian exits */
    REPORT_NO_FORK,     /* value: errno; CMD never forked, the guardian exits */
    REPORT_EXITED,      /* value: CMD's status (128+N: signal N); CMD not reaped */
};

/* Fixed fds of the guardian once it has forked CMD. */
enum { GUARD_ORDER_FD = 3, GUARD_REPORT_FD, GUARD_TIMER_FD, GUARD_SIGNAL_FD };

/* Writes one report; async-signal-safe. */
static void guard_report_send(int fd, int kind, int value)
{
    guard_report r = {.kind = kind, .value = value};
    cli_write_all(fd, (const char *)&r, sizeof r);
}

/* Sets the timerfd tfd to fire at kill_at_ms on CLOCK_BOOTTIME (never for
 * CLI_NEVER).  0, or errno.  Async-signal-safe. */
static int guard_set_timer(int tfd, uint64_t kill_at_ms)
{
    struct itimerspec its;
    memset(&its, 0, sizeof its); /* all zero: disarmed */
    if (kill_at_ms != CLI_NEVER) {
        its.it_value.tv_sec = (time_t)(kill_at_ms / 1000u);
        its.it_value.tv_nsec = (long)(kill_at_ms % 1000u) * 1000000L;
        if (kill_at_ms == 0)
            its.it_value.tv_nsec = 1; /* already past, but not "disarmed" */
    }
    return timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL) == 0 ? 0 : errno;
}

/* CLOCK_BOOTTIME in ms, as leasehold_now_ms(), async-signal-safe. */
static uint64_t guard_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_BOOTTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* CMD between fork() and exec, in the guardian's child: async-signal-safe
 * calls only.  Reports a failure's errno on report_fd.  Never returns. */
static void cmd_main(char *const paths[], char *const argv[], char *const envp[], int report_fd,
                     pid_t guardian)
{
    setpgid(0, 0);
    int e = 0;
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
        e = errno;
    else if (getppid() != guardian)
        e = ESRCH; /* the guardian died before PR_SET_PDEATHSIG could cover it */
    if (e == 0) {
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        for (int sig = 1; sig < NSIG; sig++)
            if (sig != SIGKILL && sig != SIGSTOP)
                sigaction(sig, &dfl, NULL); /* fails harmlessly for the reserved ones */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        e = exec_first(paths, argv, envp);
    }
    cli_write_all(report_fd, (const char *)&e, sizeof e);
    _exit(e == ENOENT ? EXIT_NOT_FOUND : EXIT_CANNOT_EXEC);
}

/* Moves fd to target (fd is closed afterwards); async-signal-safe.  0, or
 * -1. */
static int move_fd(int fd, int target)
{
    if (dup2(fd, target) < 0)
        return -1;
    close(fd);
    return 0;
}

/*
 * The guardian's whole life, in leasehold's forked child: async-signal-
 * safe calls only (leasehold has threads).  Arms CMD's SIGKILL time, forks
 * CMD, then SIGKILLs CMD's group at the latest SIGKILL time leasehold gave
 * it, and when leasehold's pipe reaches end of file.  Never returns.
 */
static void guard_main(char *const paths[], char *const argv[], char *const envp[], int order_fd,
                       int report_fd, uint64_t kill_at)
{
    /* Every signal stays blocked (they were across the fork): only SIGKILL
     * and SIGSTOP reach it.  Out of leasehold's group: a Ctrl-C or
     * kill(-pgid) is not for it. */
    setpgid(0, 0);
    prctl(PR_SET_NAME, "lh-guardian");
    pid_t self = getpid();

    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    int sig_fd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sig_fd < 0) {
        guard_report_send(report_fd, REPORT_UNARMED, errno);
        _exit(1);
    }
    int timer_fd = timerfd_create(CLOCK_BOOTTIME, TFD_CLOEXEC | TFD_NONBLOCK);
    int e = timer_fd < 0 ? errno : guard_set_timer(timer_fd, kill_at);
    if (e != 0) {
        guard_report_send(report_fd, REPORT_UNARMED, e);
        _exit(1);
    }

    int exec_pipe[2];
    if (pipe2(exec_pipe, O_CLOEXEC) != 0) {
        guard_report_send(report_fd, REPORT_NO_FORK, errno);
        _exit(1);
    }
    pid_t cmd = fork();
    if (cmd == 0) {
        close(exec_pipe[0]);
        cmd_main(paths, argv, envp, exec_pipe[1], self);
    }
    if (cmd < 0) {
        guard_report_send(report_fd, REPORT_NO_FORK, errno);
        _exit(1);
    }
    close(exec_pipe[1]);
    setpgid(cmd, cmd); /* as CMD does: whichever runs first makes the group */
    int exec_errno = 0;
    ssize_t n;
    while ((n = read(exec_pipe[0], &exec_errno, sizeof exec_errno)) < 0 && errno == EINTR) {
    }
    close(exec_pipe[0]);
    int status;
    if (n == (ssize_t)sizeof exec_errno) {
        while (waitpid(cmd, &status, 0) < 0 && errno == EINTR) {
        }
        guard_report_send(report_fd, REPORT_EXEC_FAILED, exec_errno);
        _exit(0);
    }
    guard_report_send(report_fd, REPORT_STARTED, (int)cmd);

    /* Keep nothing of leasehold's open but the four fds it needs: a reader
     * of leasehold's stdout must see end of file when leasehold exits. */
    int fds[4] = {order_fd, report_fd, timer_fd, sig_fd};
    for (int i = 0; i < 4; i++) /* first all above the targets, then onto them */
        if ((fds[i] = fcntl(fds[i], F_DUPFD, 10)) < 0) {
            kill(-cmd, SIGKILL);
            _exit(1);
        }
    for (int i = 0; i < 4; i++)
        if (move_fd(fds[i], GUARD_ORDER_FD + i) != 0) {
            kill(-cmd, SIGKILL);
            _exit(1);
        }
    int null_fd = open("/dev/null", O_RDWR);
    for (int i = 0; i < 3; i++)
        if (null_fd >= 0 && null_fd != i)
            dup2(null_fd, i);
    if (close_range(GUARD_SIGNAL_FD + 1, ~0u, 0) != 0) {
        for (int i = GUARD_SIGNAL_FD + 1; i < 65536; i++)
            close(i);
    }

    bool reported = false;
    for (;;) {
        struct pollfd pfds[3] = {{.fd = GUARD_ORDER_FD, .events = POLLIN},
                                 {.fd = GUARD_TIMER_FD, .events = POLLIN},
                                 {.fd = GUARD_SIGNAL_FD, .events = POLLIN}};
        if (poll(pfds, 3, -1) < 0)
            continue; /* EINTR */
        if (pfds[0].revents) {
            uint64_t order;
            n = read(GUARD_ORDER_FD, &order, sizeof order);
            if (n == (ssize_t)sizeof order) {
                kill_at = order;
                guard_set_timer(GUARD_TIMER_FD, kill_at);
            } else if (!(n < 0 && errno == EINTR)) {
                break; /* end of file: leasehold is gone or done */
            }
        }
        if (pfds[1].revents) {
            uint64_t expirations;
            if (read(GUARD_TIMER_FD, &expirations, sizeof expirations) < 0) {
                /* EAGAIN: a newer order re-set the timer meanwhile */
            }
        }
        if (pfds[2].revents) {
            struct signalfd_siginfo si;
            while (read(GUARD_SIGNAL_FD, &si, sizeof si) == (ssize_t)sizeof si) {
            }
            siginfo_t info;
            memset(&info, 0, sizeof info);
            if (!reported && waitid(P_PID, (id_t)cmd, &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
                info.si_pid == cmd) {
                reported = true;
                guard_report_send(GUARD_REPORT_FD, REPORT_EXITED,
                                  info.si_code == CLD_EXITED ? info.si_status
                                                             : 128 + info.si_status);
            }
        }
        /* Decided by the clock, not by which fd woke us: a newer deadline
         * read just now wins over the timer it replaced. */
        if (kill_at != CLI_NEVER && guard_now_ms() >= kill_at) {
            kill(-cmd, SIGKILL);
            kill_at = CLI_NEVER;
        }
    }
    kill(-cmd, SIGKILL);
    while (waitpid(cmd, &status, 0) < 0 && errno == EINTR) {
    }
    _exit(0);
}

/* Reaps the guardian, which is exiting or has exited; SIGCONT first, in
 * case someone stopped it. */
static void reap_guardian(cli_child *c)
{
    if (c->guard_pid <= 0)
        return;
    kill(c->guard_pid, SIGCONT);
    int status;
    while (waitpid(c->guard_pid, &status, 0) < 0 && errno == EINTR) {
    }
    c->guard_pid = 0;
}

/* Closes what *c holds open and clears it. */
static void child_clear(cli_child *c)
{
    if (c->order_fd >= 0)
        close(c->order_fd);
    if (c->report_fd >= 0)
        close(c->report_fd);
    *c = (cli_child){.order_fd = -1, .report_fd = -1, .kill_at_ms = CLI_NEVER};
}

int cli_child_spawn(char *const argv[], char *const envp[], uint64_t kill_at_ms, cli_child *c)
{
    *c = (cli_child){.order_fd = -1, .report_fd = -1, .kill_at_ms = kill_at_ms};
    char **paths = exec_candidates(argv[0]);
    if (!paths) {
        errno = ENOMEM;
        return CLI_SPAWN_FAILED;
    }
    int order[2], report[2];
    if (pipe2(order, O_CLOEXEC) != 0) {
        int e = errno;
        free_candidates(paths);
        errno = e;
        return CLI_SPAWN_FAILED;
    }
    if (pipe2(report, O_CLOEXEC) != 0) {
        int e = errno;
        close(order[0]);
        close(order[1]);
        free_candidates(paths);
        errno = e;
        return CLI_SPAWN_FAILED;
    }
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid_t pid = fork();
    if (pid == 0) {
        close(order[1]);
        close(report[0]);
        guard_main(paths, argv, envp, order[0], report[1], kill_at_ms);
    }
    int fork_errno = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    free_candidates(paths);
    close(order[0]);
    close(report[1]);
    if (pid < 0) {
        close(order[1]);
        close(report[0]);
        errno = fork_errno;
        return CLI_SPAWN_FAILED;
    }
    c->guard_pid = pid;
    c->order_fd = order[1];
    c->report_fd = report[0];

    guard_report r = {0};
    ssize_t n;
    while ((n = read(c->report_fd, &r, sizeof r)) < 0 && errno == EINTR) {
    }
    if (n == (ssize_t)sizeof r && r.kind == REPORT_STARTED) {
        c->pid = (pid_t)r.value;
        /* Neither end may ever block leasehold: a stopped guardian must
         * not stop it, and news is polled for. */
        fcntl(c->order_fd, F_SETFL, O_NONBLOCK);
        fcntl(c->report_fd, F_SETFL, O_NONBLOCK);
        return 0;
    }
    reap_guardian(c);
    child_clear(c);
    if (n == (ssize_t)sizeof r && r.kind == REPORT_EXEC_FAILED)
        return r.value;
    errno = n == (ssize_t)sizeof r ? r.value : ECHILD;
    return n == (ssize_t)sizeof r && r.kind == REPORT_UNARMED ? CLI_SPAWN_UNARMED
                                                              : CLI_SPAWN_FAILED;
}

int cli_child_arm(cli_child *c, uint64_t kill_at_ms)
{
    if (c->order_fd < 0)
        return EPIPE;
    /* 8 bytes: one atomic pipe write; SIGPIPE is ignored, so a dead
     * guardian shows as EPIPE. */
    ssize_t n = write(c->order_fd, &kill_at_ms, sizeof kill_at_ms);
    if (n != (ssize_t)sizeof kill_at_ms)
        return n < 0 ? errno : EIO;
    c->kill_at_ms = kill_at_ms;
    return 0;
}

int cli_child_fd(const cli_child *c)
{
    return c->report_fd;
}

bool cli_child_exited(cli_child *c, int *code)
{
    while (!c->exited && c->report_fd >= 0) {
        guard_report r;
        ssize_t n = read(c->report_fd, &r, sizeof r);
        if (n == (ssize_t)sizeof r) {
            if (r.kind == REPORT_EXITED) {
                c->exited = true;
                c->code = r.value;
            }
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n != 0)
            break; /* EAGAIN: no news */
        /* End of file before CMD's exit: the guardian died, and CMD got
         * SIGKILL with it; what else of its group runs gets it now. */
        close(c->report_fd);
        c->report_fd = -1;
        reap_guardian(c);
        kill(-c->pid, SIGKILL);
        c->guard_died = true;
        c->exited = true;
        c->code = 128 + SIGKILL;
    }
    if (c->exited)
        *code = c->code;
    return c->exited;
}

void cli_child_signal_group(pid_t pgid, int sig)
{
    if (pgid <= 0)
        return;
    kill(-pgid, sig);
    if (sig == SIGTERM || sig == SIGHUP)
        kill(-pgid, SIGCONT);
}

int cli_group_live_count(pid_t pgid)
{
    DIR *d = opendir("/proc");
    if (!d)
        return 0;
    int live = 0;
    struct dirent *ent;
    while ((ent = readdir(d)) != NULL) {
        if (ent->d_name[0] < '1' || ent->d_name[0] > '9')
            continue;
        char path[300], buf[512];
        snprintf(path, sizeof path, "/proc/%s/stat", ent->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n <= 0)
            continue;
        buf[n] = '\0';
        /* "pid (comm) S ppid pgrp ...": comm may hold spaces and parentheses. */
        const char *p = strrchr(buf, ')');
        char state;
        int ppid, pgrp;
        if (p && sscanf(p + 1, " %c %d %d", &state, &ppid, &pgrp) == 3 && pgrp == pgid &&
            state != 'Z' && state != 'X')
            live++;
    }
    closedir(d);
    return live;
}

int cli_child_reap(cli_child *c, uint64_t max_wait_ms)
{
    kill(-c->pid, SIGKILL);
    uint64_t deadline = cli_now_ms() + max_wait_ms;
    int live;
    while ((live = cli_group_live_count(c->pid)) > 0 && cli_now_ms() < deadline) {
        struct timespec pause = {0, 5 * 1000000L}; /* a SIGKILLed process dies within ms */
        nanosleep(&pause, NULL);
    }
    if (live > 0) {
        kill(-c->pid, SIGKILL);
        return live;
    }
    /* End of file: the guardian reaps CMD, which frees the group's id, and
     * exits. */
    if (c->order_fd >= 0)
        close(c->order_fd);
    c->order_fd = -1;
    reap_guardian(c);
    child_clear(c);
    return 0;
}
