/*
 * leasehold_child.c — CMD as a child process, and the guardian that kills
 * its group at its deadline or if leasehold itself is killed.
 *
 * After libuv's src/unix/process.c: PATH is searched before fork (the child
 * of a threaded process only calls execve()), signals are blocked across
 * fork(), the child resets every disposition and unblocks every signal
 * before exec, an exec failure comes back through a close-on-exec pipe, and
 * only our own
 * pids are waited for (never waitpid(-1): the library's threads and the
 * user's CMD are none of our business beyond that).
 *
 * CMD leads a process group of its own, so one kill(-pgid) reaches the
 * grandchildren a shell starts (`sh -c 'sleep 1000 & wait'`).  Three things
 * keep that group from outliving leasehold:
 *   - PR_SET_PDEATHSIG: CMD itself gets SIGKILL when leasehold's main thread
 *     dies (checked with getppid() afterwards, for a parent that died first);
 *   - the guardian (see leasehold_cli.h) SIGKILLs the whole group when its
 *     pipe from leasehold reaches end of file, which no signal can prevent,
 *     and at the SIGKILL time leasehold last gave it, which a stopped
 *     leasehold cannot delay;
 *   - CMD execs only after the guardian has been told its group and its
 *     SIGKILL time, so there is no instant at which CMD runs unguarded.
 * The group's pgid is CMD's pid; it stays reserved (cannot name another
 * group) until CMD is reaped, so CMD's exit is observed with WNOWAIT, the
 * rest of the group killed, the guardian disarmed once none of it is alive,
 * and only then CMD reaped.
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
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The library's clock, so that leasehold_term_deadline_ms() compares. */
uint64_t cli_now_ms(void)
{
    return leasehold_now_ms();
}

/* ------------------------------------------------------------- guardian */

/* One order to the guardian: one atomic pipe write, no padding. */
typedef struct guard_order {
    int64_t pgid;        /* 0: none */
    uint64_t kill_at_ms; /* CLOCK_BOOTTIME ms; CLI_NEVER: none */
} guard_order;

/* Sets the timerfd tfd to fire at kill_at_ms on CLOCK_BOOTTIME (never for
 * CLI_NEVER).  Async-signal-safe. */
static void guard_set_timer(int tfd, uint64_t kill_at_ms)
{
    struct itimerspec its;
    memset(&its, 0, sizeof its); /* all zero: disarmed */
    if (kill_at_ms != CLI_NEVER) {
        its.it_value.tv_sec = (time_t)(kill_at_ms / 1000u);
        its.it_value.tv_nsec = (long)(kill_at_ms % 1000u) * 1000000L;
        if (kill_at_ms == 0)
            its.it_value.tv_nsec = 1; /* already past, but not "disarmed" */
    }
    timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

/* CLOCK_BOOTTIME in ms, as leasehold_now_ms(), async-signal-safe. */
static uint64_t guard_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_BOOTTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* The guardian's whole life, in the forked child: async-signal-safe calls
 * only (the parent may have threads).  Never returns. */
static void guard_main(int read_fd, int timer_fd)
{
    /* Every signal blocked: only SIGKILL ends it before its pipe does. */
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    setpgid(0, 0); /* out of leasehold's group: a Ctrl-C or kill(-pgid) is not for it */
    prctl(PR_SET_NAME, "leasehold-guard");

    /* Keep nothing of leasehold's open but the pipe (as fd 3) and the timer
     * (as fd 4): a reader of leasehold's stdout must see end of file when
     * leasehold exits. */
    int fd = fcntl(read_fd, F_DUPFD, 10);
    int tfd = fcntl(timer_fd, F_DUPFD, 10);
    if (fd < 0 || tfd < 0 || dup2(fd, 3) < 0 || dup2(tfd, 4) < 0)
        _exit(1);
    int null_fd = open("/dev/null", O_RDWR);
    for (int i = 0; i < 3; i++)
        if (null_fd >= 0 && null_fd != i)
            dup2(null_fd, i);
    if (close_range(5, ~0u, 0) != 0) {
        for (int i = 5; i < 65536; i++)
            close(i);
    }

    pid_t pgid = 0;
    uint64_t kill_at = CLI_NEVER;
    for (;;) {
        struct pollfd pfds[2] = {{.fd = 3, .events = POLLIN}, {.fd = 4, .events = POLLIN}};
        if (poll(pfds, 2, -1) < 0)
            continue; /* EINTR */
        if (pfds[0].revents) {
            guard_order order;
            ssize_t n = read(3, &order, sizeof order);
            if (n == (ssize_t)sizeof order) {
                pgid = (pid_t)order.pgid;
                kill_at = pgid > 0 ? order.kill_at_ms : CLI_NEVER;
                guard_set_timer(4, kill_at);
            } else if (!(n < 0 && errno == EINTR)) {
                break; /* end of file: leasehold is gone or done */
            }
        }
        if (pfds[1].revents) {
            uint64_t expirations;
            if (read(4, &expirations, sizeof expirations) < 0) {
                /* EAGAIN: a newer order re-set the timer meanwhile */
            }
        }
        /* Decided by the clock, not by which fd woke us: a newer deadline
         * read just now wins over the timer it replaced. */
        if (kill_at != CLI_NEVER && guard_now_ms() >= kill_at) {
            kill(-pgid, SIGKILL);
            kill_at = CLI_NEVER;
        }
    }
    if (pgid > 0)
        kill(-pgid, SIGKILL);
    _exit(0);
}

int cli_guard_start(cli_guard *g)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
        return errno;
    int tfd = timerfd_create(CLOCK_BOOTTIME, TFD_CLOEXEC | TFD_NONBLOCK);
    if (tfd < 0) {
        int e = errno;
        close(fds[0]);
        close(fds[1]);
        return e;
    }
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[1]);
        guard_main(fds[0], tfd);
    }
    int fork_errno = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    close(fds[0]);
    close(tfd);
    if (pid < 0) {
        close(fds[1]);
        return fork_errno;
    }
    g->pid = pid;
    g->fd = fds[1];
    g->pgid = 0;
    g->kill_at_ms = CLI_NEVER;
    return 0;
}

int cli_guard_arm(cli_guard *g, pid_t pgid, uint64_t kill_at_ms)
{
    g->pgid = pgid;
    g->kill_at_ms = pgid > 0 ? kill_at_ms : CLI_NEVER;
    if (g->fd < 0)
        return EPIPE;
    /* 16 bytes: one atomic pipe write; SIGPIPE is ignored, so a dead
     * guardian shows as EPIPE. */
    guard_order order = {.pgid = pgid, .kill_at_ms = g->kill_at_ms};
    return cli_write_all(g->fd, (const char *)&order, sizeof order);
}

bool cli_guard_reap_if_gone(cli_guard *g)
{
    if (g->pid <= 0)
        return false;
    int status;
    pid_t r = waitpid(g->pid, &status, WNOHANG);
    if (r != g->pid)
        return false;
    g->pid = 0;
    if (g->fd >= 0)
        close(g->fd);
    g->fd = -1;
    return true;
}

void cli_guard_stop(cli_guard *g)
{
    if (g->fd >= 0) {
        close(g->fd); /* end of file: it kills what it is armed with, and exits */
        g->fd = -1;
    }
    if (g->pid > 0) {
        int status;
        while (waitpid(g->pid, &status, 0) < 0 && errno == EINTR) {
        }
        g->pid = 0;
    }
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

/* What the child does between fork() and exec: async-signal-safe calls
 * only.  Never returns. */
static void child_main(char *const paths[], char *const argv[], char *const envp[], int go_fd,
                       int report_fd, pid_t parent)
{
    setpgid(0, 0);
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
        _exit(EXIT_CANNOT_EXEC);
    /* Wait until the guardian knows our group; end of file means leasehold died. */
    char go;
    ssize_t n;
    while ((n = read(go_fd, &go, 1)) < 0 && errno == EINTR) {
    }
    if (n != 1)
        _exit(EXIT_CANNOT_EXEC);

    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            sigaction(sig, &dfl, NULL); /* fails harmlessly for the reserved ones */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    int e = exec_first(paths, argv, envp);
    cli_write_all(report_fd, (const char *)&e, sizeof e);
    _exit(e == ENOENT ? EXIT_NOT_FOUND : EXIT_CANNOT_EXEC);
}

int cli_child_spawn(char *const argv[], char *const envp[], cli_guard *g, uint64_t kill_at_ms,
                    pid_t *pid_out)
{
    *pid_out = 0;
    char **paths = exec_candidates(argv[0]);
    if (!paths) {
        errno = ENOMEM;
        return -1;
    }
    int report[2], go[2];
    if (pipe2(report, O_CLOEXEC) != 0) {
        int e = errno;
        free_candidates(paths);
        errno = e;
        return -1;
    }
    if (pipe2(go, O_CLOEXEC) != 0) {
        int e = errno;
        close(report[0]);
        close(report[1]);
        free_candidates(paths);
        errno = e;
        return -1;
    }
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        close(report[0]);
        close(go[1]);
        child_main(paths, argv, envp, go[0], report[1], parent);
    }
    int fork_errno = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    free_candidates(paths);
    close(report[1]);
    close(go[0]);
    if (pid < 0) {
        close(report[0]);
        close(go[1]);
        errno = fork_errno;
        return -1;
    }

    setpgid(pid, pid); /* as the child does: whichever runs first makes the group */
    int arm_errno = cli_guard_arm(g, pid, kill_at_ms);
    if (arm_errno != 0)
        cli_log(LEASEHOLD_LOG_WARN, 0, NULL,
                "the guardian process is gone (%s): if leasehold is killed or stopped, CMD's "
                "children may outlive it",
                strerror(arm_errno));
    cli_write_all(go[1], "x", 1);
    close(go[1]);

    int child_errno = 0;
    ssize_t n;
    while ((n = read(report[0], &child_errno, sizeof child_errno)) < 0 && errno == EINTR) {
    }
    close(report[0]);
    if (n == (ssize_t)sizeof child_errno) {
        /* It exits right after its report, and had no children. */
        while (cli_child_reap(pid, g, 1000) > 0) {
        }
        return child_errno;
    }
    *pid_out = pid;
    return 0;
}

void cli_child_signal_group(pid_t pgid, int sig)
{
    if (pgid <= 0)
        return;
    kill(-pgid, sig);
    if (sig == SIGTERM || sig == SIGHUP)
        kill(-pgid, SIGCONT);
}

bool cli_child_exited(pid_t pid, int *code)
{
    siginfo_t info;
    memset(&info, 0, sizeof info);
    if (waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT) != 0 || info.si_pid != pid)
        return false;
    *code = info.si_code == CLD_EXITED ? info.si_status : 128 + info.si_status;
    return true;
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

int cli_child_reap(pid_t pid, cli_guard *g, uint64_t max_wait_ms)
{
    kill(-pid, SIGKILL);
    uint64_t deadline = cli_now_ms() + max_wait_ms;
    int live;
    while ((live = cli_group_live_count(pid)) > 0 && cli_now_ms() < deadline) {
        struct timespec pause = {0, 5 * 1000000L}; /* a SIGKILLed process dies within ms */
        nanosleep(&pause, NULL);
    }
    if (live > 0) {
        kill(-pid, SIGKILL);
        return live;
    }
    cli_guard_arm(g, 0, CLI_NEVER);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return 0;
}
