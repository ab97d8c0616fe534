/* candidate.c — one candidate of the failover benchmark, a child process.
 *
 * It does what a user of the library does: leasehold_serve_cb() with a
 * service that only waits to be cancelled, and leasehold_client_free() on
 * SIGTERM.  What it sees goes to the bench as lines on stdout, each written
 * with one write() so that lines never interleave; the timestamp is taken
 * inside the callback, on the I/O thread, when the library reports it.
 */
#include "bench.h"

#include <leasehold.h>

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_BOOTTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

bool bench_parse_u32(const char *text, uint32_t *out)
{
    if (text[0] < '0' || text[0] > '9')
        return false;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(text, &end, 10);
    if (*end != '\0' || errno == ERANGE || v > UINT32_MAX)
        return false;
    *out = (uint32_t)v;
    return true;
}

void bench_write_line(int fd, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    size_t len = (size_t)n < sizeof line - 1 ? (size_t)n : sizeof line - 2;
    line[len++] = '\n';
    ssize_t w = write(fd, line, len);
    (void)w;
}

static void on_elected(leasehold_election *e, uint64_t epoch, void *arg)
{
    (void)e;
    (void)arg;
    bench_write_line(STDOUT_FILENO, "elected %" PRIu64 " %" PRIu64, epoch, bench_now_ns());
}

static void on_revoked(leasehold_election *e, leasehold_reason reason, void *arg)
{
    (void)e;
    (void)arg;
    bench_write_line(STDOUT_FILENO, "revoked %s %" PRIu64, leasehold_reason_name(reason),
                     bench_now_ns());
}

static void on_error(leasehold_election *e, const leasehold_error *err, void *arg)
{
    (void)e;
    (void)arg;
    bench_write_line(STDOUT_FILENO, "error %s", err->msg);
}

/* The library's debug log, on stderr, stamped with CLOCK_BOOTTIME ms. */
static void on_log(leasehold_log_level level, const char *msg, void *arg)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    uint64_t ns = bench_now_ns();
    bench_write_line(STDERR_FILENO, "%" PRIu64 ".%03u %s %s: %s", ns / 1000000u,
                     (unsigned)(ns / 1000u % 1000u), (const char *)arg,
                     level <= LEASEHOLD_LOG_DEBUG ? names[level] : "?", msg);
}

/* The leader's service: nothing but waiting to be cancelled. */
static int idle_service(leasehold_token *t, void *arg)
{
    (void)arg;
    while (leasehold_token_sleep(t, 60000)) {
    }
    return 0;
}

/* argv: URL ID KEY LEASE RENEW RETRY DEADLINE COMMAND_TIMEOUT ORIGINAL DEBUG */
int candidate_main(int argc, char **argv)
{
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL); /* before the I/O thread inherits the mask */

    leasehold_config cfg;
    leasehold_config_init(&cfg);
    uint32_t original = 0, debug = 0;
    if (argc != CANDIDATE_ARGC || !bench_parse_u32(argv[3], &cfg.lease_ms) ||
        !bench_parse_u32(argv[4], &cfg.renew_interval_ms) ||
        !bench_parse_u32(argv[5], &cfg.retry_interval_ms) ||
        !bench_parse_u32(argv[6], &cfg.renew_deadline_ms) ||
        !bench_parse_u32(argv[7], &cfg.command_timeout_ms) ||
        !bench_parse_u32(argv[8], &original) || !bench_parse_u32(argv[9], &debug)) {
        bench_write_line(STDOUT_FILENO, "error bad candidate arguments");
        return 64;
    }
    cfg.url = argv[0];
    cfg.identity = argv[1];
    cfg.original_timing = original != 0;
    if (debug) {
        cfg.log = on_log;
        cfg.log_arg = argv[1];
        cfg.log_level = LEASEHOLD_LOG_DEBUG;
    }
    leasehold_error err;
    leasehold_client *c = leasehold_client_new(&cfg, &err);
    if (!c) {
        bench_write_line(STDOUT_FILENO, "error %s", err.msg);
        return 69;
    }
    const leasehold_callbacks cbs = {
        .elected = on_elected, .revoked = on_revoked, .error = on_error};
    if (!leasehold_serve_cb(c, argv[2], idle_service, NULL, &cbs, &err)) {
        bench_write_line(STDOUT_FILENO, "error %s", err.msg);
        leasehold_client_free(c);
        return 69;
    }
    bench_write_line(STDOUT_FILENO, "ready %" PRIu64, bench_now_ns());
    int sig;
    sigwait(&stop, &sig);
    leasehold_client_free(c);
    return 0;
}
