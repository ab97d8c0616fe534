/* redis_server.h — processes an integration test starts: redis-server
 * instances and children of the test binary itself.
 *
 * After Redis's tests/support/server.tcl: each server gets a free loopback
 * port and a fresh temporary directory, and is waited for until PING
 * answers.  Every process started here is stopped by its pid on every exit
 * path: by the functions below, by an atexit hook for whatever a failed test
 * left running, and by PR_SET_PDEATHSIG if the test binary itself dies.
 * Nothing here touches a port or a process it did not create.
 *
 * Not thread-safe: call it from the test's main thread (the thread that
 * forks is the one whose death PR_SET_PDEATHSIG follows).
 */
#ifndef LEASEHOLD_REDIS_SERVER_H
#define LEASEHOLD_REDIS_SERVER_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <hiredis/hiredis.h>

typedef struct redis_server_opts {
    const char *const *args; /* extra redis-server arguments, NULL-terminated; may be NULL */
    const char *password;    /* NULL, or passed as --requirepass and used by redis_server_cmd */
    bool unix_socket;        /* also listen on <dir>/redis.sock (see unix_path) */
    bool appendonly;         /* --appendonly yes --appendfsync always: every write is on
                                disk before it is answered, so a crash loses nothing */
    const char *const *env;  /* "NAME=value" entries added to (or replacing in) the server's
                                environment, NULL-terminated, kept for restarts; may be NULL
                                (the chaos driver's LD_PRELOAD clock shim) */
    /* TLS: with tls_cert set, also --tls-port on a second free port, with this
     * certificate, tls_key and tls_ca (PEM files, see tls_certs.h);
     * tls_auth_clients asks clients for a certificate.  The plain port stays
     * for the test's own admin connection (hiredis 0.14 has no TLS). */
    const char *tls_cert, *tls_key, *tls_ca;
    bool tls_auth_clients;
    /* A Sentinel: this text is written to <dir>/sentinel.conf (Sentinel
     * rewrites it) and redis-server runs with --sentinel on it, with args and
     * the TLS options; appendonly and unix_socket are not used. */
    const char *sentinel_conf;
    /* A server in a network namespace (the chaos suite's partitions): run
     * through `ip netns exec netns`, bound to host (an address of that
     * namespace, reachable from the test's), on port (fixed: each namespace
     * has its own ports), protected mode off.  NULL, NULL, 0: the test's own
     * namespace, 127.0.0.1 and a free port. */
    const char *netns;
    const char *host;
    int port;
} redis_server_opts;

typedef struct redis_server {
    pid_t pid;           /* 0 while killed/stopped */
    int port;            /* host:port */
    char host[64];       /* 127.0.0.1, or opts.host */
    char dir[256];       /* the temporary directory: --dir, redis.log, redis.sock */
    char url[600];       /* redis://[:password@]127.0.0.1:port */
    int tls_port;        /* 127.0.0.1:tls_port with opts.tls_cert, else 0 */
    char tls_url[600];   /* rediss://[:password@]127.0.0.1:tls_port, or "" */
    char unix_path[300]; /* <dir>/redis.sock when opts.unix_socket, else empty */
    /* private */
    char **argv;
    char **envp; /* NULL: the test's own environment */
    char *password;
    redisContext *admin;
} redis_server;

/* Starts redis-server from PATH (opts may be NULL) and waits until it
 * answers PING.  Returns NULL, having printed why to stderr, if it could
 * not (after retrying with other ports when one was taken). */
redis_server *redis_server_start(const redis_server_opts *opts);

/* SIGTERM, then SIGKILL if it has not exited within 2 s; reaps the pid,
 * removes the temporary directory and frees s.  NULL is ignored. */
void redis_server_stop(redis_server *s);

/* SIGKILL and reap: the server is gone as by a crash; s stays valid for
 * redis_server_restart() and redis_server_stop(). */
void redis_server_kill(redis_server *s);

/* SIGSTOP / SIGCONT: the server hangs, with its sockets open, and goes on. */
void redis_server_pause(redis_server *s);
void redis_server_resume(redis_server *s);

/* Kills the server (if running) and starts it again on the same port and
 * directory.  keep_data: SAVE first (if running) and load what is on disk
 * again, the append-only file when opts.appendonly; so redis_server_kill()
 * then keep_data is a crash and recovery.  Otherwise the data files are
 * removed and the new server starts empty.  Returns 0, or -1 (printed) if
 * it did not answer. */
int redis_server_restart(redis_server *s, bool keep_data);

/* Runs a command (hiredis printf-style format) on an admin connection of
 * the test's own, with a 2 s timeout.  Returns the reply (free it with
 * freeReplyObject), or NULL if the server did not answer; the connection is
 * then re-opened for the next call.  Error replies are returned as replies. */
redisReply *redis_server_cmd(redis_server *s, const char *fmt, ...);

/* redis_server_cmd with a va_list. */
redisReply *redis_server_vcmd(redis_server *s, const char *fmt, va_list ap);

/* A port on 127.0.0.1 nothing listened on a moment ago (for "connection
 * refused" tests), or -1. */
int redis_server_free_port(void);

/* ---------------------------------------------------- child processes */

/*
 * Starts argv[0] with argv (NULL-terminated) as a child: signals blocked
 * across fork, default signal dispositions in the child, PR_SET_PDEATHSIG
 * SIGKILL, stdout redirected to stdout_fd when stdout_fd >= 0, exec at
 * once; an exec failure is reported through a close-on-exec pipe.  Returns
 * the pid, or -1 (printed).  The pid is killed at exit if still registered.
 */
pid_t test_process_spawn(char *const argv[], int stdout_fd);

/* The same, with stdin, stdout and stderr each redirected to the given
 * descriptor when it is >= 0 (e.g. the ends of a pipe, which may be
 * close-on-exec: the child's copies on 0, 1 and 2 are not). */
pid_t test_process_spawn_stdio(char *const argv[], int stdin_fd, int stdout_fd, int stderr_fd);

/* The same with envp (NULL-terminated) as the child's whole environment;
 * envp NULL: the test's own. */
pid_t test_process_spawn_env(char *const argv[], char *const envp[], int stdin_fd, int stdout_fd,
                             int stderr_fd);

/* Waits up to max_ms (0: just looks) for pid to exit.  If it did: reaps it,
 * forgets it, stores its wait status in *status (may be NULL) and returns
 * true.  Otherwise returns false and the pid stays registered. */
bool test_process_wait(pid_t pid, uint64_t max_ms, int *status);

/* Sends sig to pid (a process started by test_process_spawn). */
void test_process_signal(pid_t pid, int sig);

/* SIGKILL (after SIGCONT, in case it is stopped), reap, forget. */
void test_process_kill(pid_t pid);

/* Path of the running test binary, to re-exec it in a child mode. */
const char *test_process_self(void);

#endif
