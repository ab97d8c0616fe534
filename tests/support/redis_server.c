/* redis_server.c — redis-server instances and child processes for tests.
 *
 * Every pid started here is kept in a small registry until it is reaped, and
 * every temporary directory until it is removed; an atexit hook kills and
 * cleans what a failed test left behind.  Children are killed by pid only,
 * reaped by pid only (never waitpid(-1)), and die with the test binary
 * (PR_SET_PDEATHSIG).
 */
#include "redis_server.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"

#define MAX_TRACKED 64

static pid_t tracked_pids[MAX_TRACKED];
static redis_server *tracked_servers[MAX_TRACKED];
static bool atexit_registered;

static void cleanup_at_exit(void);

static void ensure_atexit(void)
{
    if (!atexit_registered) {
        atexit(cleanup_at_exit);
        atexit_registered = true;
    }
}

static void track_pid(pid_t pid)
{
    ensure_atexit();
    for (int i = 0; i < MAX_TRACKED; i++) {
        if (tracked_pids[i] == 0) {
            tracked_pids[i] = pid;
            return;
        }
    }
    fprintf(stderr, "redis_server: more than %d live processes; pid %d untracked\n", MAX_TRACKED,
            (int)pid);
}

static void untrack_pid(pid_t pid)
{
    for (int i = 0; i < MAX_TRACKED; i++)
        if (tracked_pids[i] == pid)
            tracked_pids[i] = 0;
}

static void track_server(redis_server *s, bool on)
{
    ensure_atexit();
    for (int i = 0; i < MAX_TRACKED; i++) {
        if (on && tracked_servers[i] == NULL) {
            tracked_servers[i] = s;
            return;
        }
        if (!on && tracked_servers[i] == s) {
            tracked_servers[i] = NULL;
            return;
        }
    }
}

/* Waits up to max_ms for pid to exit and reaps it; true if it did. */
static bool reap_within(pid_t pid, uint64_t max_ms)
{
    uint64_t deadline = test_now_ms() + max_ms;
    for (;;) {
        pid_t r = waitpid(pid, NULL, WNOHANG);
        if (r == pid || (r < 0 && errno == ECHILD))
            return true;
        if (test_now_ms() >= deadline)
            return false;
        test_sleep_ms(5);
    }
}

void test_process_kill(pid_t pid)
{
    if (pid <= 0)
        return;
    kill(pid, SIGCONT);
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
    }
    untrack_pid(pid);
}

void test_process_signal(pid_t pid, int sig)
{
    if (pid > 0)
        kill(pid, sig);
}

const char *test_process_self(void)
{
    static char path[4096];
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
    if (n < 0)
        return "/proc/self/exe";
    path[n] = '\0';
    return path;
}

/* Runs in the child between fork and exec: only async-signal-safe calls. */
static void exec_child(char *const argv[], char *const envp[], const int fds[3], int report_fd,
                       const sigset_t *mask, pid_t parent)
{
    for (int sig = 1; sig < NSIG; sig++)
        signal(sig, SIG_DFL);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(127);
    for (int i = 0; i < 3; i++)
        if (fds[i] >= 0 && fds[i] != i)
            dup2(fds[i], i);
    sigprocmask(SIG_SETMASK, mask, NULL);
    if (envp)
        execvpe(argv[0], argv, envp);
    else
        execvp(argv[0], argv);
    int e = errno;
    ssize_t w = write(report_fd, &e, sizeof e);
    (void)w;
    _exit(127);
}

pid_t test_process_spawn(char *const argv[], int stdout_fd)
{
    return test_process_spawn_stdio(argv, -1, stdout_fd, -1);
}

pid_t test_process_spawn_stdio(char *const argv[], int stdin_fd, int stdout_fd, int stderr_fd)
{
    return test_process_spawn_env(argv, NULL, stdin_fd, stdout_fd, stderr_fd);
}

pid_t test_process_spawn_env(char *const argv[], char *const envp[], int stdin_fd, int stdout_fd,
                             int stderr_fd)
{
    int report[2];
    if (pipe2(report, O_CLOEXEC) != 0) {
        perror("test_process_spawn: pipe2");
        return -1;
    }
    const int fds[3] = {stdin_fd, stdout_fd, stderr_fd};
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0)
        exec_child(argv, envp, fds, report[1], &old, parent);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    close(report[1]);
    if (pid < 0) {
        perror("test_process_spawn: fork");
        close(report[0]);
        return -1;
    }
    track_pid(pid);
    int child_errno = 0;
    ssize_t n;
    while ((n = read(report[0], &child_errno, sizeof child_errno)) < 0 && errno == EINTR) {
    }
    close(report[0]);
    if (n > 0) {
        fprintf(stderr, "test_process_spawn: cannot exec %s: %s\n", argv[0], strerror(child_errno));
        test_process_kill(pid);
        return -1;
    }
    return pid;
}

bool test_process_wait(pid_t pid, uint64_t max_ms, int *status)
{
    uint64_t deadline = test_now_ms() + max_ms;
    for (;;) {
        int st = 0;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid || (r < 0 && errno == ECHILD)) {
            untrack_pid(pid);
            if (status)
                *status = r == pid ? st : 0;
            return true;
        }
        if (test_now_ms() >= deadline)
            return false;
        test_sleep_ms(5);
    }
}

int redis_server_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* Removes dir and everything in it (Redis's appendonlydir included). */
static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *ent;
    char path[600];
    while ((ent = readdir(d)) != NULL) {
        if (strcmp(ent->d_name, ".") == 0 || strcmp(ent->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, ent->d_name);
        if (unlink(path) != 0 && errno == EISDIR)
            remove_dir(path);
    }
    closedir(d);
    rmdir(dir);
}

static void admin_close(redis_server *s)
{
    if (s->admin) {
        redisFree(s->admin);
        s->admin = NULL;
    }
}

/* (Re)opens the admin connection, authenticating when a password is set. */
static bool admin_open(redis_server *s)
{
    struct timeval tv = {0, 300 * 1000};
    redisContext *c = redisConnectWithTimeout(s->host, s->port, tv);
    if (!c || c->err) {
        if (c)
            redisFree(c);
        return false;
    }
    /* hiredis's socket is not close-on-exec: children must not inherit it */
    fcntl(c->fd, F_SETFD, FD_CLOEXEC);
    struct timeval cmd_tv = {2, 0};
    redisSetTimeout(c, cmd_tv);
    if (s->password) {
        redisReply *r = redisCommand(c, "AUTH %s", s->password);
        bool ok = r && r->type == REDIS_REPLY_STATUS;
        if (r)
            freeReplyObject(r);
        if (!ok) {
            redisFree(c);
            return false;
        }
    }
    s->admin = c;
    return true;
}

redisReply *redis_server_vcmd(redis_server *s, const char *fmt, va_list ap)
{
    if (!s->admin && !admin_open(s))
        return NULL;
    redisReply *r = redisvCommand(s->admin, fmt, ap);
    if (!r)
        admin_close(s);
    return r;
}

redisReply *redis_server_cmd(redis_server *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redis_server_vcmd(s, fmt, ap);
    va_end(ap);
    return r;
}

/* True when the server answers PING within max_ms (several attempts). */
static bool wait_ping(redis_server *s, uint64_t max_ms)
{
    uint64_t deadline = test_now_ms() + max_ms;
    for (;;) {
        if (s->pid > 0 && waitpid(s->pid, NULL, WNOHANG) == s->pid) {
            untrack_pid(s->pid);
            s->pid = 0;
            return false; /* exited: port taken or bad arguments */
        }
        admin_close(s);
        if (admin_open(s)) {
            redisReply *r = redisCommand(s->admin, "PING");
            bool ok = r && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;
            if (r)
                freeReplyObject(r);
            if (ok)
                return true;
            admin_close(s);
        }
        if (test_now_ms() >= deadline)
            return false;
        test_sleep_ms(10);
    }
}

static void free_argv(char **argv)
{
    if (!argv)
        return;
    for (char **a = argv; *a; a++)
        free(*a);
    free(argv);
}

/* Appends the TLS arguments of o to argv at n; the new n. */
static size_t add_tls_args(const redis_server *s, const redis_server_opts *o, char **argv, size_t n)
{
    char port[16];
    snprintf(port, sizeof port, "%d", s->tls_port);
    const char *tls[] = {"--tls-port",         port,
                         "--tls-cert-file",    o->tls_cert,
                         "--tls-key-file",     o->tls_key,
                         "--tls-ca-cert-file", o->tls_ca,
                         "--tls-auth-clients", o->tls_auth_clients ? "yes" : "no"};
    for (size_t i = 0; i < sizeof tls / sizeof *tls; i++)
        argv[n++] = strdup(tls[i]);
    return n;
}

/* Builds the command line for port, with the options' extra arguments. */
static char **build_argv(const redis_server *s, const redis_server_opts *o)
{
    size_t extra = 0;
    while (o && o->args && o->args[extra])
        extra++;
    char **argv = calloc(56 + extra, sizeof *argv);
    size_t n = 0;
    char buf[600];
    if (o && o->netns) {
        const char *wrap[] = {"ip", "netns", "exec", o->netns};
        for (size_t i = 0; i < 4; i++)
            argv[n++] = strdup(wrap[i]);
    }
    argv[n++] = strdup("redis-server");
    snprintf(buf, sizeof buf, "%d", s->port);
    if (o && o->sentinel_conf) {
        char conf[600];
        snprintf(conf, sizeof conf, "%s/sentinel.conf", s->dir);
        const char *fixed[] = {conf,          "--sentinel", "--port", buf,    "--bind",   s->host,
                               "--daemonize", "no",         "--dir",  s->dir, "--logfile"};
        for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++)
            argv[n++] = strdup(fixed[i]);
        snprintf(buf, sizeof buf, "%s/redis.log", s->dir);
        argv[n++] = strdup(buf);
        if (strcmp(s->host, "127.0.0.1") != 0) {
            argv[n++] = strdup("--protected-mode");
            argv[n++] = strdup("no");
        }
        if (o->tls_cert)
            n = add_tls_args(s, o, argv, n);
        for (size_t i = 0; i < extra; i++)
            argv[n++] = strdup(o->args[i]);
        argv[n] = NULL;
        return argv;
    }
    const char *aof = o && o->appendonly ? "yes" : "no";
    /* A master made to feed a new replica starts at once instead of waiting
     * 5 s for others to join the same transfer (Redis's default delay). */
    const char *fixed[] = {"--port",
                           buf,
                           "--bind",
                           s->host,
                           "--save",
                           "",
                           "--appendonly",
                           aof,
                           "--daemonize",
                           "no",
                           "--dir",
                           s->dir,
                           "--repl-diskless-sync-delay",
                           "0"};
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++)
        argv[n++] = strdup(fixed[i]);
    argv[n++] = strdup("--logfile");
    snprintf(buf, sizeof buf, "%s/redis.log", s->dir);
    argv[n++] = strdup(buf);
    if (o && o->appendonly) {
        argv[n++] = strdup("--appendfsync");
        argv[n++] = strdup("always");
    }
    if (o && o->password) {
        argv[n++] = strdup("--requirepass");
        argv[n++] = strdup(o->password);
    }
    if (o && o->unix_socket) {
        argv[n++] = strdup("--unixsocket");
        argv[n++] = strdup(s->unix_path);
        argv[n++] = strdup("--unixsocketperm");
        argv[n++] = strdup("700");
    }
    if (o && o->tls_cert)
        n = add_tls_args(s, o, argv, n);
    if (strcmp(s->host, "127.0.0.1") != 0) {
        argv[n++] = strdup("--protected-mode");
        argv[n++] = strdup("no");
    }
    for (size_t i = 0; i < extra; i++)
        argv[n++] = strdup(o->args[i]);
    argv[n] = NULL;
    return argv;
}

extern char **environ;

/* The test's environment with extra's "NAME=value" entries added, each
 * replacing an entry of the same name; NULL when extra is NULL. */
static char **build_envp(const char *const *extra)
{
    if (!extra)
        return NULL;
    size_t n_env = 0, n_extra = 0;
    while (environ[n_env])
        n_env++;
    while (extra[n_extra])
        n_extra++;
    char **envp = calloc(n_env + n_extra + 1, sizeof *envp);
    size_t n = 0;
    for (size_t i = 0; i < n_env; i++) {
        size_t name_len = strcspn(environ[i], "=");
        bool replaced = false;
        for (size_t j = 0; j < n_extra && !replaced; j++)
            replaced = strncmp(extra[j], environ[i], name_len) == 0 && extra[j][name_len] == '=';
        if (!replaced)
            envp[n++] = strdup(environ[i]);
    }
    for (size_t j = 0; j < n_extra; j++)
        envp[n++] = strdup(extra[j]);
    envp[n] = NULL;
    return envp;
}

/* Spawns s->argv and waits for PING; false if it exited or did not answer. */
static bool launch(redis_server *s)
{
    s->pid = test_process_spawn_env(s->argv, s->envp, -1, -1, -1);
    if (s->pid < 0) {
        s->pid = 0;
        return false;
    }
    if (wait_ping(s, test_ms(5000)))
        return true;
    if (s->pid > 0)
        test_process_kill(s->pid);
    s->pid = 0;
    return false;
}

redis_server *redis_server_start(const redis_server_opts *opts)
{
    redis_server *s = calloc(1, sizeof *s);
    const char *tmp = getenv("TMPDIR");
    snprintf(s->dir, sizeof s->dir, "%s/leasehold-test-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(s->dir)) {
        perror("redis_server_start: mkdtemp");
        free(s);
        return NULL;
    }
    track_server(s, true);
    snprintf(s->host, sizeof s->host, "%s", opts && opts->host ? opts->host : "127.0.0.1");
    if (opts && opts->unix_socket)
        snprintf(s->unix_path, sizeof s->unix_path, "%s/redis.sock", s->dir);
    if (opts && opts->password)
        s->password = strdup(opts->password);
    s->envp = build_envp(opts ? opts->env : NULL);
    if (opts && opts->sentinel_conf) {
        char conf[600];
        snprintf(conf, sizeof conf, "%s/sentinel.conf", s->dir);
        FILE *f = fopen(conf, "w");
        bool written = f && fputs(opts->sentinel_conf, f) >= 0;
        if (f && fclose(f) != 0)
            written = false;
        if (!written) {
            perror("redis_server_start: sentinel.conf");
            redis_server_stop(s);
            return NULL;
        }
    }
    for (int attempt = 0; attempt < 5; attempt++) {
        s->port = opts && opts->port ? opts->port : redis_server_free_port();
        s->tls_port = opts && opts->tls_cert ? redis_server_free_port() : 0;
        if (s->port < 0 || s->tls_port < 0)
            break;
        if (s->tls_port == s->port)
            continue;
        free_argv(s->argv);
        s->argv = build_argv(s, opts);
        if (launch(s)) {
            if (s->password)
                snprintf(s->url, sizeof s->url, "redis://:%s@%s:%d", s->password, s->host, s->port);
            else
                snprintf(s->url, sizeof s->url, "redis://%s:%d", s->host, s->port);
            if (s->tls_port)
                snprintf(s->tls_url, sizeof s->tls_url, "rediss://%s%s%s%s:%d",
                         s->password ? ":" : "", s->password ? s->password : "",
                         s->password ? "@" : "", s->host, s->tls_port);
            return s;
        }
    }
    fprintf(stderr, "redis_server_start: redis-server did not answer PING; see %s/redis.log\n",
            s->dir);
    s->dir[0] = '\0'; /* keep the log for the post-mortem */
    redis_server_stop(s);
    return NULL;
}

void redis_server_kill(redis_server *s)
{
    admin_close(s);
    if (s->pid > 0)
        test_process_kill(s->pid);
    s->pid = 0;
}

void redis_server_pause(redis_server *s)
{
    if (s->pid > 0)
        kill(s->pid, SIGSTOP);
}

void redis_server_resume(redis_server *s)
{
    if (s->pid > 0)
        kill(s->pid, SIGCONT);
}

int redis_server_restart(redis_server *s, bool keep_data)
{
    if (keep_data && s->pid > 0) {
        redisReply *r = redis_server_cmd(s, "SAVE");
        if (r)
            freeReplyObject(r);
    }
    redis_server_kill(s);
    if (!keep_data) {
        char path[600];
        snprintf(path, sizeof path, "%s/dump.rdb", s->dir);
        unlink(path);
        snprintf(path, sizeof path, "%s/appendonlydir", s->dir);
        remove_dir(path);
    }
    /* The port may be briefly unavailable; launch() notices an early exit. */
    for (int attempt = 0; attempt < 5; attempt++)
        if (launch(s))
            return 0;
    fprintf(stderr, "redis_server_restart: port %d did not come back; see %s/redis.log\n", s->port,
            s->dir);
    return -1;
}

void redis_server_stop(redis_server *s)
{
    if (!s)
        return;
    admin_close(s);
    if (s->pid > 0) {
        kill(s->pid, SIGTERM);
        kill(s->pid, SIGCONT); /* a paused server handles SIGTERM only once resumed */
        if (reap_within(s->pid, 2000))
            untrack_pid(s->pid);
        else
            test_process_kill(s->pid);
        s->pid = 0;
    }
    if (s->dir[0])
        remove_dir(s->dir);
    track_server(s, false);
    free_argv(s->argv);
    free_argv(s->envp);
    free(s->password);
    free(s);
}

/* Whatever a failed or aborted test left behind: servers first (their
 * directories go too), then any other child still registered. */
static void cleanup_at_exit(void)
{
    for (int i = 0; i < MAX_TRACKED; i++) {
        if (tracked_servers[i]) {
            redis_server *s = tracked_servers[i];
            tracked_servers[i] = NULL;
            if (s->pid > 0)
                test_process_kill(s->pid);
            s->pid = 0;
            if (s->dir[0])
                remove_dir(s->dir);
            admin_close(s);
            free_argv(s->argv);
            free_argv(s->envp);
            free(s->password);
            free(s);
        }
    }
    for (int i = 0; i < MAX_TRACKED; i++)
        if (tracked_pids[i] > 0)
            test_process_kill(tracked_pids[i]);
}
