/*
 * server — the host process of the original module, with its example service.
 *
 * With SNAKETRON_REDIS_URL set, it campaigns for snaketron:leader:<region>;
 * while it leads, a service thread logs "This server is now the leader!" and
 * then "Leader service is running..." every 10 s.  Without it, leader election
 * is disabled and the process just runs.  SIGINT or SIGTERM stops the service,
 * releases the lease and exits 0.
 *
 * Every log line goes to stderr, written with one write() so lines from the
 * library's I/O thread, the service thread and the main thread never mix,
 * by the writer thread of log_sink.c, so that no thread that logs ever waits
 * for stderr (lines it cannot take in time are dropped, counted, reported):
 *
 *     2026-11-26T07:31:02.114Z INFO  snaketron:leader:eu epoch=... token=...: message
 *
 * Exit codes: 0 after a signal, 64 for a bad option or configuration, 69 when
 * leader election cannot start (Redis unreachable, AUTH refused...) or halts
 * on a permanent error (NOPERM, scripts renamed or disabled, a read-only
 * replica), 65 when it halts because the key holds something that is not a
 * lease (WRONGTYPE, a value with no TTL), 71 when the operating system
 * refuses a signal mask.  exit_codes.h maps the library's errors.
 */
#include <leasehold.h>

#include "exit_codes.h"
#include "log_sink.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#define KEY_PREFIX                  "snaketron:leader:"
#define DEFAULT_REGION              "default"
#define DEFAULT_SERVICE_INTERVAL_MS 10000u
#define LOG_LINE_MAX                2048

/* Everything the log lines and the service need; set up once in main(). */
typedef struct server {
    char key[512];
    leasehold_log_level log_level;
    uint32_t service_interval_ms;
    _Atomic uint64_t term_epoch; /* the epoch of the last term won, for revoked's line */
    atomic_int halt_code;        /* the permanent error that halted the election, or 0 */
    pthread_t main_thread;       /* woken with HALT_SIGNAL when it is set */
} server;

/* Wakes the main thread's sigwaitinfo() when the election halts; blocked in
 * every thread, like SIGINT and SIGTERM. */
#define HALT_SIGNAL SIGRTMIN

static const char *level_name(leasehold_log_level level)
{
    switch (level) {
    case LEASEHOLD_LOG_ERROR:
        return "ERROR";
    case LEASEHOLD_LOG_WARN:
        return "WARN ";
    case LEASEHOLD_LOG_INFO:
        return "INFO ";
    case LEASEHOLD_LOG_DEBUG:
        return "DEBUG";
    }
    return "?    ";
}

/* One line into line (LOG_LINE_MAX bytes): UTC time with milliseconds,
 * level, key, then "epoch=E" and "token=T" when given (epoch 0 and a NULL
 * token are left out), then the message and a newline.  Its length. */
static size_t format_line(char *line, const server *s, leasehold_log_level level, uint64_t epoch,
                          const char *token, const char *fmt, va_list ap)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t len = strftime(line, LOG_LINE_MAX, "%Y-%m-%dT%H:%M:%S", &tm);
    len += (size_t)snprintf(line + len, LOG_LINE_MAX - len, ".%03ldZ %s %s", ts.tv_nsec / 1000000,
                            level_name(level), s->key);
    if (epoch != 0 && len < LOG_LINE_MAX)
        len += (size_t)snprintf(line + len, LOG_LINE_MAX - len, " epoch=%" PRIu64, epoch);
    if (token && len < LOG_LINE_MAX)
        len += (size_t)snprintf(line + len, LOG_LINE_MAX - len, " token=%s", token);
    if (len < LOG_LINE_MAX)
        len += (size_t)snprintf(line + len, LOG_LINE_MAX - len, ": ");
    if (len < LOG_LINE_MAX)
        len += (size_t)vsnprintf(line + len, LOG_LINE_MAX - len, fmt, ap);
    if (len >= LOG_LINE_MAX - 1) /* cut: keep the line a line */
        len = LOG_LINE_MAX - 1;
    line[len++] = '\n';
    return len;
}

/*
 * Logs one line (see format_line()); lines above the configured level are
 * not formatted.  Safe from any thread, and never waits for stderr: the
 * line is built on the stack and queued for the log_sink's writer.
 */
static void log_line(const server *s, leasehold_log_level level, uint64_t epoch, const char *token,
                     const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void log_line(const server *s, leasehold_log_level level, uint64_t epoch, const char *token,
                     const char *fmt, ...)
{
    if (level > s->log_level)
        return;
    char line[LOG_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    size_t len = format_line(line, s, level, epoch, token, fmt, ap);
    va_end(ap);
    log_sink_put(line, len);
}

static const server *notice_server; /* set before the log_sink starts */

/* A warning line about the log itself into out (LOG_LINE_MAX bytes); its
 * length. */
static size_t notice_line(char *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static size_t notice_line(char *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t len = format_line(out, notice_server, LEASEHOLD_LOG_WARN, 0, NULL, fmt, ap);
    va_end(ap);
    return len;
}

/* The log_sink's notice of lines it dropped, as one of our lines. */
static size_t dropped_notice(unsigned long dropped, char *out, size_t size)
{
    (void)size; /* LOG_SINK_LINE_MAX >= LOG_LINE_MAX */
    return notice_line(out, "%lu log lines dropped: stderr did not take them in time", dropped);
}

/* The library's own log lines, routed into ours.  The key is already in
 * every line, so a message that starts with "<key>: " loses that prefix. */
static void on_library_log(leasehold_log_level level, const char *msg, void *arg)
{
    const server *s = arg;
    size_t key_len = strlen(s->key);
    if (strncmp(msg, s->key, key_len) == 0 && strncmp(msg + key_len, ": ", 2) == 0)
        msg += key_len + 2;
    log_line(s, level, 0, NULL, "%s", msg);
}

/*
 * The example service: the original module's closure.  Runs in its own
 * thread for one term and returns as soon as the term ends.
 */
static int leader_service(leasehold_token *t, void *arg)
{
    const server *s = arg;
    uint64_t epoch = leasehold_token_epoch(t);
    const char *token = leasehold_token_string(leasehold_token_election(t));
    log_line(s, LEASEHOLD_LOG_INFO, epoch, token, "This server is now the leader!");
    while (leasehold_token_sleep(t, s->service_interval_ms))
        log_line(s, LEASEHOLD_LOG_INFO, epoch, token, "Leader service is running...");
    log_line(s, LEASEHOLD_LOG_INFO, epoch, token, "leader service stopped");
    return 0;
}

static void on_elected(leasehold_election *e, uint64_t epoch, void *arg)
{
    server *s = arg;
    atomic_store(&s->term_epoch, epoch);
    log_line(s, LEASEHOLD_LOG_DEBUG, epoch, leasehold_token_string(e), "elected");
}

static void on_revoked(leasehold_election *e, leasehold_reason reason, void *arg)
{
    server *s = arg;
    leasehold_log_level level =
        reason == LEASEHOLD_RESIGNED ? LEASEHOLD_LOG_INFO : LEASEHOLD_LOG_WARN;
    log_line(s, level, atomic_load(&s->term_epoch), leasehold_token_string(e),
             "no longer the leader (%s)", leasehold_reason_name(reason));
}

static void on_leader_changed(leasehold_election *e, const char *holder_token, uint64_t epoch,
                              void *arg)
{
    if (!holder_token)
        log_line(arg, LEASEHOLD_LOG_INFO, 0, NULL, "no leader: the key is free");
    else if (!leasehold_is_token(holder_token))
        return; /* another program's value: the library warns, without our epoch */
    else if (strcmp(holder_token, leasehold_token_string(e)) == 0)
        log_line(arg, LEASEHOLD_LOG_DEBUG, epoch, holder_token, "leader is now this server");
    else
        log_line(arg, LEASEHOLD_LOG_INFO, epoch, NULL, "new leader %s", holder_token);
}

/* The library has logged err->msg already, once per change (its log is
 * ours): logging it here again would double every line.  A permanent error
 * has halted the election: the main thread is woken to exit. */
static void on_error(leasehold_election *e, const leasehold_error *err, void *arg)
{
    (void)e;
    server *s = arg;
    if (!leasehold_error_is_permanent(err->code))
        return;
    int none = 0;
    if (atomic_compare_exchange_strong(&s->halt_code, &none, err->code))
        pthread_kill(s->main_thread, HALT_SIGNAL);
}

/* ---------------------------------------------------------------- options */

typedef struct options {
    const char *url;
    const char *url_source; /* "--url" or "SNAKETRON_REDIS_URL", for messages */
    const char *region;
    const char *key;
    const char *identity;
    uint32_t lease_ms, renew_ms, retry_ms, renew_deadline_ms;
    uint32_t command_timeout_ms, connect_timeout_ms, stop_timeout_ms;
    uint32_t clock_drift_ppm;
    uint32_t service_interval_ms;
    leasehold_log_level log_level;
} options;

enum option_id {
    OPT_HELP = 'h',
    OPT_URL = 1000,
    OPT_REGION,
    OPT_KEY,
    OPT_ID,
    OPT_LEASE,
    OPT_RENEW,
    OPT_RETRY,
    OPT_RENEW_DEADLINE,
    OPT_COMMAND_TIMEOUT,
    OPT_CONNECT_TIMEOUT,
    OPT_STOP_TIMEOUT,
    OPT_CLOCK_DRIFT,
    OPT_LOG_LEVEL,
    OPT_SERVICE_INTERVAL,
};

static const struct option long_options[] = {
    {"help", no_argument, NULL, OPT_HELP},
    {"url", required_argument, NULL, OPT_URL},
    {"region", required_argument, NULL, OPT_REGION},
    {"key", required_argument, NULL, OPT_KEY},
    {"id", required_argument, NULL, OPT_ID},
    {"lease-ms", required_argument, NULL, OPT_LEASE},
    {"renew-ms", required_argument, NULL, OPT_RENEW},
    {"retry-ms", required_argument, NULL, OPT_RETRY},
    {"renew-deadline-ms", required_argument, NULL, OPT_RENEW_DEADLINE},
    {"command-timeout-ms", required_argument, NULL, OPT_COMMAND_TIMEOUT},
    {"connect-timeout-ms", required_argument, NULL, OPT_CONNECT_TIMEOUT},
    {"stop-timeout-ms", required_argument, NULL, OPT_STOP_TIMEOUT},
    {"clock-drift-ppm", required_argument, NULL, OPT_CLOCK_DRIFT},
    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
    {"service-interval-ms", required_argument, NULL, OPT_SERVICE_INTERVAL},
    {NULL, 0, NULL, 0},
};

/* Prints the usage, with the defaults the library actually uses. */
static void print_help(void)
{
    leasehold_config d;
    leasehold_config_init(&d);
    printf("Usage: server [OPTION]...\n"
           "Runs the example leader-only service while this process holds the lease on\n"
           "the Redis key " KEY_PREFIX "<region>.  SIGINT or SIGTERM stops the service,\n"
           "releases the lease and exits 0.  Logs go to stderr.\n"
           "\n"
           "Environment:\n"
           "  SNAKETRON_REDIS_URL   Redis URL, redis://[user[:password]@]host[:port][/db]\n"
           "                        or unix:///path/to/redis.sock; unset or empty: leader\n"
           "                        election is disabled and the server just runs\n"
           "  SNAKETRON_REGION      region, the key's last part (default: " DEFAULT_REGION ")\n"
           "\n"
           "Options (each overrides the environment and the default):\n"
           "  --url URL                   Redis URL (default: $SNAKETRON_REDIS_URL)\n"
           "  --region NAME               region (default: $SNAKETRON_REGION or " DEFAULT_REGION
           ")\n"
           "  --key KEY                   the whole lease key (default: " KEY_PREFIX "<region>)\n"
           "  --id IDENTITY               first half of the token (default: <hostname>:<pid>)\n"
           "  --lease-ms MS               lease TTL (default: %" PRIu32 ")\n"
           "  --renew-ms MS               the leader renews this often (default: %" PRIu32 ")\n"
           "  --retry-ms MS               a follower's longest wait between claims (default: "
           "%" PRIu32 ")\n"
           "  --renew-deadline-ms MS      a leader unrenewed this long steps down (default: "
           "%" PRIu32 ")\n"
           "  --command-timeout-ms MS     Redis command timeout (default: %" PRIu32 ")\n"
           "  --connect-timeout-ms MS     Redis connect timeout (default: %" PRIu32 ")\n"
           "  --stop-timeout-ms MS        how long a stopping service is waited for (default: "
           "%" PRIu32 ")\n"
           "  --clock-drift-ppm PPM       the largest clock-rate difference between this host and\n"
           "                              Redis's, 1 to 200000 (default: %" PRIu32 ", i.e. 1%%)\n"
           "  --log-level LEVEL           error, warn, info or debug (default: info)\n"
           "  --service-interval-ms MS    period of \"Leader service is running...\" (default: "
           "%u)\n"
           "  -h, --help                  print this help and exit\n"
           "\n"
           "Exit status: 0 after SIGINT/SIGTERM, 64 bad option or configuration,\n"
           "69 leader election could not start (e.g. Redis unreachable) or stopped on an\n"
           "error no retry can fix (ACL refusal, EVAL/EVALSHA renamed or disabled, a\n"
           "read-only replica), 65 the key holds something that is not a lease (another\n"
           "type, a value with no TTL), 71 system error.  Such an error is logged once,\n"
           "naming the cause and the fix; the service is stopped before the exit.\n",
           d.lease_ms, d.renew_interval_ms, d.retry_interval_ms, d.renew_deadline_ms,
           d.command_timeout_ms, d.connect_timeout_ms, d.stop_timeout_ms, d.clock_drift_ppm,
           DEFAULT_SERVICE_INTERVAL_MS);
}

/* Parses a decimal number of `unit`s: digits only, no sign, no spaces, at
 * most UINT32_MAX.  Prints why on failure. */
static bool parse_count(const char *name, const char *text, const char *unit, uint32_t *out)
{
    if (text[0] < '0' || text[0] > '9') {
        fprintf(stderr, "server: --%s: '%s' is not a number of %s\n", name, text, unit);
        return false;
    }
    errno = 0;
    char *end;
    unsigned long long v = strtoull(text, &end, 10);
    if (*end != '\0') {
        fprintf(stderr, "server: --%s: '%s' is not a number of %s\n", name, text, unit);
        return false;
    }
    if (errno == ERANGE || v > UINT32_MAX) {
        fprintf(stderr, "server: --%s: %s is too large (at most %" PRIu32 ")\n", name, text,
                UINT32_MAX);
        return false;
    }
    *out = (uint32_t)v;
    return true;
}

static bool parse_ms(const char *name, const char *text, uint32_t *out)
{
    return parse_count(name, text, "milliseconds", out);
}

static bool parse_level(const char *text, leasehold_log_level *out)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    for (int i = 0; i < 4; i++) {
        if (strcmp(text, names[i]) == 0) {
            *out = (leasehold_log_level)i;
            return true;
        }
    }
    fprintf(stderr, "server: --log-level: '%s' is not one of error, warn, info, debug\n", text);
    return false;
}

/* An environment variable, or NULL when unset or empty. */
static const char *env_value(const char *name)
{
    const char *v = getenv(name);
    return v && v[0] ? v : NULL;
}

/* Names the option getopt_long() rejected at argv[optind - 1]. */
static void print_bad_option(int c, char **argv)
{
    const char *arg = argv[optind - 1];
    if (c == ':')
        fprintf(stderr, "server: option %s needs a value (see --help)\n", arg);
    else if (optopt != 0 && optopt != OPT_HELP && optopt < 256)
        fprintf(stderr, "server: unknown option -%c (see --help)\n", optopt);
    else
        fprintf(stderr, "server: unknown option %s (see --help)\n", arg);
}

/*
 * Fills o from the defaults, the environment and argv, in that order of
 * precedence (last wins).  Returns -1 to exit 0 (--help), EX_USAGE after
 * printing one line, or 0.
 */
static int parse_options(int argc, char **argv, options *o)
{
    leasehold_config d;
    leasehold_config_init(&d);
    *o = (options){
        .url = env_value("SNAKETRON_REDIS_URL"),
        .url_source = "SNAKETRON_REDIS_URL",
        .region = env_value("SNAKETRON_REGION"),
        .lease_ms = d.lease_ms,
        .renew_ms = d.renew_interval_ms,
        .retry_ms = d.retry_interval_ms,
        .renew_deadline_ms = d.renew_deadline_ms,
        .command_timeout_ms = d.command_timeout_ms,
        .connect_timeout_ms = d.connect_timeout_ms,
        .stop_timeout_ms = d.stop_timeout_ms,
        .clock_drift_ppm = d.clock_drift_ppm,
        .service_interval_ms = DEFAULT_SERVICE_INTERVAL_MS,
        .log_level = LEASEHOLD_LOG_INFO,
    };
    if (!o->region)
        o->region = DEFAULT_REGION;

    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":h", long_options, NULL)) != -1) {
        bool ok = true;
        switch (c) {
        case OPT_HELP:
            print_help();
            return -1;
        case OPT_URL:
            o->url = optarg;
            o->url_source = "--url";
            break;
        case OPT_REGION:
            o->region = optarg;
            break;
        case OPT_KEY:
            o->key = optarg;
            break;
        case OPT_ID:
            o->identity = optarg;
            break;
        case OPT_LEASE:
            ok = parse_ms("lease-ms", optarg, &o->lease_ms);
            break;
        case OPT_RENEW:
            ok = parse_ms("renew-ms", optarg, &o->renew_ms);
            break;
        case OPT_RETRY:
            ok = parse_ms("retry-ms", optarg, &o->retry_ms);
            break;
        case OPT_RENEW_DEADLINE:
            ok = parse_ms("renew-deadline-ms", optarg, &o->renew_deadline_ms);
            break;
        case OPT_COMMAND_TIMEOUT:
            ok = parse_ms("command-timeout-ms", optarg, &o->command_timeout_ms);
            break;
        case OPT_CONNECT_TIMEOUT:
            ok = parse_ms("connect-timeout-ms", optarg, &o->connect_timeout_ms);
            break;
        case OPT_STOP_TIMEOUT:
            ok = parse_ms("stop-timeout-ms", optarg, &o->stop_timeout_ms);
            break;
        case OPT_CLOCK_DRIFT:
            ok = parse_count("clock-drift-ppm", optarg, "parts per million", &o->clock_drift_ppm);
            break;
        case OPT_LOG_LEVEL:
            ok = parse_level(optarg, &o->log_level);
            break;
        case OPT_SERVICE_INTERVAL:
            ok = parse_ms("service-interval-ms", optarg, &o->service_interval_ms);
            if (ok && o->service_interval_ms == 0) {
                fprintf(stderr, "server: --service-interval-ms: must be at least 1\n");
                ok = false;
            }
            break;
        default:
            print_bad_option(c, argv);
            return EX_USAGE;
        }
        if (!ok)
            return EX_USAGE;
    }
    if (optind < argc) {
        fprintf(stderr, "server: unexpected argument '%s' (see --help)\n", argv[optind]);
        return EX_USAGE;
    }
    if (o->url && !o->url[0]) {
        fprintf(stderr, "server: --url: the URL is empty\n");
        return EX_USAGE;
    }
    if (!o->region[0]) {
        fprintf(stderr, "server: --region: the region is empty\n");
        return EX_USAGE;
    }
    if (o->key && !o->key[0]) {
        fprintf(stderr, "server: --key: the key is empty\n");
        return EX_USAGE;
    }
    if (o->identity && !o->identity[0]) {
        fprintf(stderr, "server: --id: the identity is empty\n");
        return EX_USAGE;
    }
    return 0;
}

/* ------------------------------------------------------------------- main */

static const char *signal_name(int sig)
{
    return sig == SIGINT ? "SIGINT" : "SIGTERM";
}

/* Waits for SIGINT or SIGTERM (blocked in every thread) and returns it. */
static int wait_for_stop_signal(const sigset_t *stop)
{
    for (;;) {
        int sig = sigwaitinfo(stop, NULL);
        if (sig > 0)
            return sig;
    }
}

/* Campaigns until a stop signal arrives, or a permanent error halts the
 * election (the library has logged why); returns the exit status. */
static int run_election(server *s, const options *o, const sigset_t *stop)
{
    leasehold_config cfg;
    leasehold_config_init(&cfg);
    cfg.url = o->url;
    cfg.identity = o->identity;
    cfg.lease_ms = o->lease_ms;
    cfg.renew_interval_ms = o->renew_ms;
    cfg.retry_interval_ms = o->retry_ms;
    cfg.renew_deadline_ms = o->renew_deadline_ms;
    cfg.command_timeout_ms = o->command_timeout_ms;
    cfg.connect_timeout_ms = o->connect_timeout_ms;
    cfg.stop_timeout_ms = o->stop_timeout_ms;
    cfg.clock_drift_ppm = o->clock_drift_ppm;
    cfg.log = on_library_log;
    cfg.log_arg = s;
    cfg.log_level = o->log_level;

    leasehold_error err;
    leasehold_client *client = leasehold_client_new(&cfg, &err);
    if (!client) {
        bool usage = err.code == LEASEHOLD_ECONFIG || err.code == LEASEHOLD_EURL;
        fprintf(stderr, "server: cannot start leader election (%s): %s\n", o->url_source, err.msg);
        return usage ? EX_USAGE : EX_UNAVAILABLE;
    }
    const leasehold_callbacks cbs = {
        .elected = on_elected,
        .revoked = on_revoked,
        .leader_changed = on_leader_changed,
        .error = on_error,
    };
    leasehold_election *e = leasehold_serve_cb(client, s->key, leader_service, s, &cbs, &err);
    if (!e) {
        fprintf(stderr, "server: cannot campaign for %s: %s\n", s->key, err.msg);
        leasehold_client_free(client);
        return err.code == LEASEHOLD_EINVAL ? EX_USAGE : EX_UNAVAILABLE;
    }
    log_line(s, LEASEHOLD_LOG_INFO, 0, leasehold_token_string(e),
             "campaigning for leadership (lease %" PRIu32 " ms)", o->lease_ms);

    sigset_t wake = *stop;
    sigaddset(&wake, HALT_SIGNAL);
    int sig;
    while ((sig = wait_for_stop_signal(&wake)) == HALT_SIGNAL) {
        int halt = atomic_load(&s->halt_code);
        if (halt != 0) {
            leasehold_client_free(client);
            return exit_status_for_error(halt);
        }
    }
    log_line(s, LEASEHOLD_LOG_INFO, 0, NULL,
             "received %s: stopping the service and releasing the lease", signal_name(sig));
    leasehold_client_free(client);
    log_line(s, LEASEHOLD_LOG_INFO, 0, NULL, "stopped");
    return 0;
}

int main(int argc, char **argv)
{
    options o;
    int rc = parse_options(argc, argv, &o);
    if (rc != 0)
        return rc < 0 ? 0 : rc;

    static server s;
    s.log_level = o.log_level;
    s.service_interval_ms = o.service_interval_ms;
    int n = o.key ? snprintf(s.key, sizeof s.key, "%s", o.key)
                  : snprintf(s.key, sizeof s.key, KEY_PREFIX "%s", o.region);
    if (n < 0 || (size_t)n >= sizeof s.key) {
        fprintf(stderr, "server: the key is longer than %zu bytes\n", sizeof s.key - 1);
        return EX_USAGE;
    }

    /* Blocked before any thread exists, so only sigwaitinfo() sees them. */
    sigset_t stop, blocked;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    blocked = stop;
    sigaddset(&blocked, HALT_SIGNAL);
    s.main_thread = pthread_self();
    int sigmask_rc = pthread_sigmask(SIG_BLOCK, &blocked, NULL);
    if (sigmask_rc != 0) {
        fprintf(stderr, "server: cannot block SIGINT and SIGTERM: %s\n", strerror(sigmask_rc));
        return EX_OSERR;
    }
    signal(SIGPIPE, SIG_IGN); /* a closed stderr pipe must not kill the leader */
    notice_server = &s;
    int sink_rc = log_sink_start(dropped_notice);
    if (sink_rc != 0) {
        fprintf(stderr, "server: cannot start the log writer thread: %s\n", strerror(sink_rc));
        return EX_OSERR;
    }

    if (!o.url) {
        log_line(&s, LEASEHOLD_LOG_INFO, 0, NULL,
                 "leader election disabled (SNAKETRON_REDIS_URL is %s)",
                 getenv("SNAKETRON_REDIS_URL") ? "empty" : "not set");
        int sig = wait_for_stop_signal(&stop);
        log_line(&s, LEASEHOLD_LOG_INFO, 0, NULL, "received %s: exiting", signal_name(sig));
        log_sink_flush(1000);
        return 0;
    }
    rc = run_election(&s, &o, &stop);
    log_sink_flush(1000);
    return rc;
}
