/*
 * server — the host process of the original module, with its example service.
 *
 * With SNAKETRON_REDIS_URL set, it campaigns for snaketron:leader:<region>;
 * while it leads, a service thread logs "This server is now the leader!" and
 * then "Leader service is running..." every 10 s.  Without it, leader election
 * is disabled and the process just runs.  SIGINT or SIGTERM stops the service,
 * releases the lease and exits 0.
 *
 * Every log line goes to stderr through log_lines.c, as leasehold's do (one
 * write() per line, never waiting for stderr; text or --log-format json),
 * in the original module's shape, without the program's name:
 *
 *     2026-11-26T07:31:02.114Z INFO  snaketron:leader:eu epoch=... token=...: message
 *
 * Its options are parsed by options.c, as `leasehold run`'s are (durations
 * with units, the original -ms spellings kept as aliases); messages start
 * with the name the program was called by ("server" in the build tree,
 * "leasehold-server" installed).  --help and doc/leasehold-server.1 list
 * them and the exit codes: 0 after a signal, 64 for a bad option or
 * configuration, 69 when leader election cannot start (Redis unreachable,
 * AUTH refused...) or halts on a permanent error (NOPERM, scripts renamed or
 * disabled, a read-only replica), 65 when it halts because the key holds
 * something that is not a lease (WRONGTYPE, a value with no TTL), 71 when
 * the operating system refuses a signal mask.  exit_codes.h maps the
 * library's errors.
 */
#include <leasehold.h>

#include "exit_codes.h"
#include "log_lines.h"
#include "ops.h"
#include "options.h"

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

#define DEFAULT_SERVICE_INTERVAL_MS 10000u

/* Everything the log lines and the service need; set up once in main(). */
typedef struct server {
    char key[OPTS_KEY_MAX];
    uint32_t service_interval_ms;
    _Atomic uint64_t term_epoch; /* the epoch of the last term won, for revoked's line */
    atomic_int halt_code;        /* the permanent error that halted the election, or 0 */
    pthread_t main_thread;       /* woken with HALT_SIGNAL when it is set */
    ops *ops;                    /* --metrics-listen and systemd's notifications */
} server;

/* Wakes the main thread's sigwaitinfo() when the election halts; blocked in
 * every thread, like SIGINT and SIGTERM. */
#define HALT_SIGNAL SIGRTMIN

/*
 * The example service: the original module's closure.  Runs in its own
 * thread for one term and returns as soon as the term ends.
 */
static int leader_service(leasehold_token *t, void *arg)
{
    const server *s = arg;
    uint64_t epoch = leasehold_token_epoch(t);
    const char *token = leasehold_election_token(leasehold_token_election(t));
    cli_log(LEASEHOLD_LOG_INFO, epoch, token, "This server is now the leader!");
    while (leasehold_token_sleep(t, s->service_interval_ms))
        cli_log(LEASEHOLD_LOG_INFO, epoch, token, "Leader service is running...");
    cli_log(LEASEHOLD_LOG_INFO, epoch, token, "leader service stopped");
    return 0;
}

static void on_elected(leasehold_election *e, uint64_t epoch, void *arg)
{
    server *s = arg;
    atomic_store(&s->term_epoch, epoch);
    cli_log(LEASEHOLD_LOG_DEBUG, epoch, leasehold_election_token(e), "elected");
    ops_poke(s->ops);
}

static void on_revoked(leasehold_election *e, leasehold_reason reason, void *arg)
{
    server *s = arg;
    leasehold_log_level level =
        reason == LEASEHOLD_RESIGNED ? LEASEHOLD_LOG_INFO : LEASEHOLD_LOG_WARN;
    cli_log(level, atomic_load(&s->term_epoch), leasehold_election_token(e),
            "no longer the leader (%s)", leasehold_reason_name(reason));
    ops_poke(s->ops);
}

static void on_leader_changed(leasehold_election *e, const char *holder_token, uint64_t epoch,
                              void *arg)
{
    ops_poke(((server *)arg)->ops);
    if (!holder_token)
        cli_log(LEASEHOLD_LOG_INFO, 0, NULL, "no leader: the key is free");
    else if (!leasehold_is_token(holder_token))
        return; /* another program's value: the library warns, without our epoch */
    else if (strcmp(holder_token, leasehold_election_token(e)) == 0)
        cli_log(LEASEHOLD_LOG_DEBUG, epoch, holder_token, "leader is now this server");
    else
        cli_log(LEASEHOLD_LOG_INFO, epoch, NULL, "new leader %s", holder_token);
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

/* What main() needs from the command line; the shared options are parsed
 * by options.c, with the same rules and messages as `leasehold`. */
typedef struct options {
    const char *url;        /* NULL: leader election disabled */
    const char *url_source; /* "--url", "--url-file" or "SNAKETRON_REDIS_URL" */
    opts_conn conn;         /* password, TLS */
    char key[OPTS_KEY_MAX];
    const char *identity;
    uint32_t lease_ms, renew_ms, retry_ms, renew_deadline_ms;
    uint32_t command_timeout_ms, connect_timeout_ms, stop_timeout_ms;
    uint32_t clock_drift_ppm;
    uint32_t priority, handover_interval_ms;
    uint32_t service_interval_ms;
    const char *metrics_listen; /* --metrics-listen, or NULL */
    leasehold_log_level log_level;
    cli_log_format log_format;
    const char *prog; /* the name it was called by, for JSON lines and messages */
} options;

/* server's own options; the shared ones are options.h's. */
enum option_id {
    OPT_STOP_TIMEOUT = OPTS_PROGRAM,
    OPT_STOP_TIMEOUT_MS,
    OPT_SERVICE_INTERVAL,
    OPT_SERVICE_INTERVAL_MS,
    OPT_METRICS_LISTEN,
};

static const struct option long_options[] = {
    OPTS_TABLE_GENERAL,
    OPTS_TABLE_TIMING,
    OPTS_TABLE_MS_ALIASES,
    {"stop-timeout", required_argument, NULL, OPT_STOP_TIMEOUT},
    {"stop-timeout-ms", required_argument, NULL, OPT_STOP_TIMEOUT_MS},
    {"service-interval", required_argument, NULL, OPT_SERVICE_INTERVAL},
    {"service-interval-ms", required_argument, NULL, OPT_SERVICE_INTERVAL_MS},
    {"metrics-listen", required_argument, NULL, OPT_METRICS_LISTEN},
    {NULL, 0, NULL, 0},
};

/* Prints the usage; prog is how the program was called. */
static void print_help(const char *prog)
{
    printf(
        "Usage: %s [OPTION]...\n"
        "Runs the example leader-only service while this process holds the lease on\n"
        "the Redis key " OPTS_KEY_PREFIX "<region>.  SIGINT or SIGTERM stops the service,\n"
        "releases the lease and exits 0.  Logs go to stderr.  Installed as\n"
        "leasehold-server; see leasehold-server(1).\n"
        "\n"
        "Environment:\n"
        "  SNAKETRON_REDIS_URL    Redis URL; unset or empty: leader election is disabled\n"
        "                         and the server just runs\n"
        "  SNAKETRON_REDIS_PASSWORD  the password, when not in the URL (ps shows argv)\n"
        "  SNAKETRON_SENTINEL_PASSWORD  the Sentinels' own password (Sentinel URLs)\n"
        "  SNAKETRON_REGION       region, the key's last part (default region: " OPTS_DEFAULT_REGION
        ";\n"
        "                         set but empty is refused)\n"
        "\n"
        "Options (each overrides the environment and the default; DURATION is digits,\n"
        "an optional fraction and a unit: 500ms, 2s, 1.5s, 1m, 1h):\n",
        prog);
    printf(OPTS_HELP_GENERAL OPTS_HELP_TIMING);
    printf("  --stop-timeout DURATION\n"
           "                         how long a stopping service is waited for (default: 10s)\n"
           "  --service-interval DURATION\n"
           "                         period of \"Leader service is running...\" (default: 10s)\n"
           "  --metrics-listen ADDR  serve /metrics (Prometheus), /healthz and /readyz over\n"
           "                         HTTP on ADDR: HOST:PORT, [IPv6]:PORT or :PORT (every\n"
           "                         interface), e.g. 127.0.0.1:9464\n"
           "\n"
           "The original spellings in plain milliseconds are still accepted: --lease-ms,\n"
           "--renew-ms, --retry-ms, --renew-deadline-ms, --command-timeout-ms,\n"
           "--connect-timeout-ms, --stop-timeout-ms, --service-interval-ms (e.g.\n"
           "--lease-ms 2000 is --lease 2s).\n"
           "\n"
           "Exit status: 0 after SIGINT/SIGTERM and a clean stop; 64 bad option or\n"
           "configuration; 65 the key holds something that is not a lease; 69 Redis\n"
           "unreachable or refusing (leader election could not start, or a permanent\n"
           "error such as a missing ACL permission or a read-only replica); 71 system\n"
           "error.  A permanent error is logged once, naming the cause and the fix; the\n"
           "service is stopped before the exit.\n");
}

/* A duration (or plain milliseconds) for one of server's own options,
 * more than 0. */
static int own_timing(opts *s, const char *opt, bool ms_alias, uint32_t *out)
{
    uint64_t ms;
    int rc = ms_alias ? opts_milliseconds(s, opt, optarg, UINT32_MAX, &ms)
                      : opts_duration(s, opt, optarg, UINT32_MAX, &ms);
    if (rc != 0)
        return rc;
    if (ms == 0)
        return opts_error(s, "%s: must be more than 0%s", opt, ms_alias ? "" : "ms");
    *out = (uint32_t)ms;
    return 0;
}

/*
 * Fills o from the defaults, the environment and argv, in that order of
 * precedence (last wins).  Returns -1 to exit 0 (--help, --version),
 * EX_USAGE after printing one line that starts with prog, or 0.
 */
static int parse_options(int argc, char **argv, const char *prog, options *o)
{
    leasehold_config d;
    leasehold_config_init(&d);
    opts s;
    opts_init(&s, prog);
    *o = (options){
        .stop_timeout_ms = d.stop_timeout_ms,
        .service_interval_ms = DEFAULT_SERVICE_INTERVAL_MS,
        .prog = prog,
    };

    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":hqv", long_options, NULL)) != -1) {
        int rc = 0;
        switch (c) {
        case OPTS_HELP:
            print_help(prog);
            return -1;
        case OPTS_VERSION:
            opts_print_version("leasehold-server");
            return -1;
        case OPT_STOP_TIMEOUT:
        case OPT_STOP_TIMEOUT_MS:
            rc = own_timing(&s, c == OPT_STOP_TIMEOUT ? "--stop-timeout" : "--stop-timeout-ms",
                            c == OPT_STOP_TIMEOUT_MS, &o->stop_timeout_ms);
            break;
        case OPT_SERVICE_INTERVAL:
        case OPT_SERVICE_INTERVAL_MS:
            rc = own_timing(
                &s, c == OPT_SERVICE_INTERVAL ? "--service-interval" : "--service-interval-ms",
                c == OPT_SERVICE_INTERVAL_MS, &o->service_interval_ms);
            break;
        case OPT_METRICS_LISTEN:
            o->metrics_listen = optarg;
            break;
        case '?':
        case ':':
            return opts_bad_option(&s, c, argv, NULL);
        default:
            rc = opts_apply(&s, c, optarg);
            if (rc == 1)
                return opts_bad_option(&s, '?', argv, NULL);
        }
        if (rc != 0)
            return EX_USAGE;
    }
    char q[OPTS_QUOTE_SIZE];
    if (optind < argc)
        return opts_error(&s, "unexpected argument %s (see --help)", opts_quote(q, argv[optind]));
    if (opts_finish_key(&s) != 0 || opts_finish_timing(&s, NULL) != 0 || opts_conn_finish(&s) != 0)
        return EX_USAGE;
    o->url = s.url;
    o->url_source = s.url_source;
    o->conn = s.conn;
    snprintf(o->key, sizeof o->key, "%s", s.key);
    o->identity = s.identity;
    o->log_level = s.log_level;
    o->log_format = s.log_json ? CLI_LOG_JSON : CLI_LOG_TEXT;
    o->lease_ms = s.t.lease_ms;
    o->renew_ms = s.t.renew_ms;
    o->retry_ms = s.t.retry_ms;
    o->renew_deadline_ms = s.t.renew_deadline_ms;
    o->command_timeout_ms = s.t.command_timeout_ms;
    o->connect_timeout_ms = s.t.connect_timeout_ms;
    o->clock_drift_ppm = s.t.clock_drift_ppm;
    o->priority = s.t.priority;
    o->handover_interval_ms = s.t.handover_interval_ms;
    return 0;
}

/* ------------------------------------------------------------------- main */

/* How the program was called, without its directory, for messages:
 * "server" in the build tree, "leasehold-server" once installed. */
static const char *program_name(const char *argv0)
{
    if (!argv0 || !argv0[0])
        return "leasehold-server";
    const char *slash = strrchr(argv0, '/');
    return slash && slash[1] ? slash + 1 : argv0;
}

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
    opts_conn_config(&o->conn, &cfg);
    cfg.identity = o->identity;
    cfg.lease_ms = o->lease_ms;
    cfg.renew_interval_ms = o->renew_ms;
    cfg.retry_interval_ms = o->retry_ms;
    cfg.renew_deadline_ms = o->renew_deadline_ms;
    cfg.command_timeout_ms = o->command_timeout_ms;
    cfg.connect_timeout_ms = o->connect_timeout_ms;
    cfg.stop_timeout_ms = o->stop_timeout_ms;
    cfg.clock_drift_ppm = o->clock_drift_ppm;
    cfg.priority = o->priority;
    cfg.handover_interval_ms = o->handover_interval_ms;
    cfg.log = cli_library_log;
    cfg.log_level = o->log_level;

    leasehold_error err;
    leasehold_client *client = leasehold_client_new(&cfg, &err);
    if (!client) {
        bool usage = err.code == LEASEHOLD_ECONFIG || err.code == LEASEHOLD_EURL;
        cli_fatal(usage, "cannot start leader election (%s): %s", o->url_source, err.msg);
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
        cli_fatal(err.code == LEASEHOLD_EINVAL, "cannot campaign for %s: %s", s->key, err.msg);
        leasehold_client_free(client);
        return err.code == LEASEHOLD_EINVAL ? EX_USAGE : EX_UNAVAILABLE;
    }
    cli_log(LEASEHOLD_LOG_INFO, 0, leasehold_election_token(e),
            "campaigning for leadership (lease %" PRIu32 " ms)", o->lease_ms);
    const ops_target t = {
        .client = client, .election = e, .program = "server", .version = opts_version()};
    int ops_rc = ops_start(s->ops, &t);
    if (ops_rc < 0) {
        cli_fatal(false, "cannot start the metrics thread: %s", strerror(-ops_rc));
        leasehold_client_free(client);
        return EX_OSERR;
    }
    if (ops_address(s->ops))
        cli_log(LEASEHOLD_LOG_INFO, 0, NULL, "serving /metrics, /healthz and /readyz on http://%s",
                ops_address(s->ops));

    sigset_t wake = *stop;
    sigaddset(&wake, HALT_SIGNAL);
    int sig;
    while ((sig = wait_for_stop_signal(&wake)) == HALT_SIGNAL) {
        int halt = atomic_load(&s->halt_code);
        if (halt != 0) {
            ops_stopping(s->ops);
            ops_stop(s->ops);
            leasehold_client_free(client);
            return exit_status_for_error(halt);
        }
    }
    cli_log(LEASEHOLD_LOG_INFO, 0, NULL,
            "received %s: stopping the service and releasing the lease", signal_name(sig));
    ops_stopping(s->ops);
    ops_stop(s->ops); /* before the election it reads is freed */
    leasehold_client_free(client);
    cli_log(LEASEHOLD_LOG_INFO, 0, NULL, "stopped");
    return 0;
}

int main(int argc, char **argv)
{
    options o;
    int rc = parse_options(argc, argv, program_name(argv[0]), &o);
    if (rc != 0)
        return rc < 0 ? 0 : rc;

    static server s;
    s.service_interval_ms = o.service_interval_ms;
    /* Before any thread: it takes NOTIFY_SOCKET out of the environment. */
    char ops_err[400];
    s.ops = ops_open(o.url ? o.metrics_listen : NULL, ops_err, sizeof ops_err);
    snprintf(s.key, sizeof s.key, "%s", o.key);

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
        fprintf(stderr, "%s: cannot block SIGINT and SIGTERM: %s\n", o.prog, strerror(sigmask_rc));
        ops_close(s.ops);
        return EX_OSERR;
    }
    signal(SIGPIPE, SIG_IGN); /* a closed stderr pipe must not kill the leader */
    /* From here every line, the fatal ones too, is a log line in the
     * chosen format. */
    int sink_rc = cli_log_init(o.prog, false, o.log_level, o.log_format, o.key);
    if (sink_rc != 0) {
        fprintf(stderr, "%s: cannot start the log writer thread: %s\n", o.prog, strerror(sink_rc));
        ops_close(s.ops);
        return EX_OSERR;
    }

    if (!s.ops) {
        cli_fatal(true, "%s", ops_err);
        cli_log_flush();
        return EX_USAGE;
    }
    if (!o.url) {
        cli_log(LEASEHOLD_LOG_INFO, 0, NULL, "leader election disabled (SNAKETRON_REDIS_URL is %s)",
                getenv("SNAKETRON_REDIS_URL") ? "empty" : "not set");
        if (o.metrics_listen)
            cli_log(LEASEHOLD_LOG_WARN, 0, NULL,
                    "--metrics-listen ignored: there is no election to report on");
        ops_start(s.ops, NULL); /* READY=1, and the watchdog's keep-alives */
        int sig = wait_for_stop_signal(&stop);
        ops_stopping(s.ops);
        ops_close(s.ops);
        cli_log(LEASEHOLD_LOG_INFO, 0, NULL, "received %s: exiting", signal_name(sig));
        cli_log_flush();
        return 0;
    }
    rc = run_election(&s, &o, &stop);
    ops_close(s.ops); /* the election's callbacks, which poke it, have ended */
    cli_log_flush();
    return rc;
}
