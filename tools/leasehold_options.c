/*
 * leasehold_options.c — the command line, the environment and the help.
 *
 * Durations carry their unit (500ms, 2s, 1.5s, 1m, 1h): a bare number is
 * refused rather than guessed, since "--lease 2000" read as seconds or as
 * milliseconds are both plausible.  Timings not given follow --lease in the
 * proportions of the library's defaults (renew 15 %, renew deadline 75 %,
 * retry 50 %), so `--lease 1s` alone is a valid configuration; they are
 * computed in 64 bits, so no --lease up to the largest accepted wraps.  The
 * command timeout (250ms) is lowered to half the renew deadline when that
 * is shorter, and `run` says so in its log; given with --command-timeout,
 * it is never changed, only refused when too long.  Every bad value gets
 * one line on stderr that names the option and the value.
 */
#include "leasehold_cli.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY_PREFIX     "snaketron:leader:"
#define DEFAULT_REGION "default"
#define DEFAULT_GRACE  10000u

/* Plus two leases: --try-once's longest wait for its first answer. */
#define TRY_ONCE_WAIT_MS 10000u

/* One line on stderr, "leasehold: ...", and EXIT_USAGE. */
static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "leasehold: %s\n", msg);
    return EXIT_USAGE;
}

uint64_t cli_kill_margin_ms(uint32_t lease_ms)
{
    uint64_t pct = lease_ms / 20u;
    return pct > 50u ? pct : 50u;
}

static void print_help(void)
{
    printf("Usage: leasehold run [OPTION]... [--] CMD [ARG]...\n"
           "       leasehold status [--json] [OPTION]...\n"
           "       leasehold watch [--json] [OPTION]...\n"
           "\n"
           "Leader election on a Redis key.  `run` campaigns for the key and runs CMD only\n"
           "while this process is the leader; `status` prints who holds the key; `watch`\n"
           "prints who holds it now (or `no leader`), then every change of leader as it\n"
           "happens, and exits 0 once its stdout is closed.\n"
           "\n"
           "run: CMD gets LEASEHOLD_KEY, LEASEHOLD_EPOCH (the term's fencing epoch) and\n"
           "LEASEHOLD_TOKEN in its environment, runs in a process group of its own and\n"
           "never outlives leasehold.  On loss of leadership its group gets SIGTERM at\n"
           "once and SIGKILL shortly before the lease could pass to another process\n"
           "(max(50ms, 5%% of the lease) early); then leasehold campaigns again.  When CMD\n"
           "exits on its own, leasehold releases the lease and exits with CMD's status.\n"
           "SIGTERM and SIGINT are forwarded to CMD's group, which gets --grace to exit\n"
           "before SIGKILL; the lease is released only once CMD is gone.  SIGHUP, SIGUSR1\n"
           "and SIGUSR2 are forwarded to the group as they are.\n"
           "\n"
           "Caveats: CMD's own process group is not the terminal's foreground group, so\n"
           "an interactive CMD reading the terminal gets SIGTTIN; stdin passes through\n"
           "for pipes and files, not for an interactive terminal.  CMD's guardian process\n"
           "(lh-guardian) kills CMD's group at its SIGKILL time even if leasehold is\n"
           "stopped (Ctrl-Z); CMD dies with its guardian.\n"
           "\n"
           "Options for every command:\n"
           "  --url URL              Redis URL: redis://[user[:password]@]host[:port][/db]\n"
           "                         or unix:///path/to/redis.sock (default:\n"
           "                         $SNAKETRON_REDIS_URL)\n"
           "  --key KEY              the lease key (default: " KEY_PREFIX "<region>)\n"
           "  --region NAME          region of the default key (default: $SNAKETRON_REGION,\n"
           "                         else " DEFAULT_REGION ")\n"
           "  -q, --quiet            log only warnings and errors\n"
           "  -v, --verbose          log debugging detail too\n"
           "  --log-format FORMAT    text or json (log lines on stderr; default: text)\n"
           "  -h, --help             print this help and exit\n"
           "\n"
           "Options for run (DURATION is a number with a unit: 500ms, 2s, 1.5s, 1m, 1h):\n"
           "  --id IDENTITY          first half of the token (default: <hostname>:<pid>)\n"
           "  --lease DURATION       lease TTL (default: 2s)\n"
           "  --renew DURATION       the leader renews this often (default: 15%% of the lease)\n"
           "  --retry DURATION       a follower's longest wait between claims (default: 50%%\n"
           "                         of the lease)\n"
           "  --renew-deadline DURATION\n"
           "                         a leader unrenewed this long steps down (default: 75%%\n"
           "                         of the lease)\n"
           "  --command-timeout DURATION\n"
           "                         a Redis command unanswered this long resets the\n"
           "                         connection; at most half the renew deadline (default:\n"
           "                         250ms, or half the renew deadline when shorter, which\n"
           "                         is logged; command_timeout_ms in the URL wins)\n"
           "  --clock-drift-ppm PPM  the largest clock-rate difference between this host and\n"
           "                         Redis's, 1 to 200000 (default: 10000, i.e. 1%%)\n"
           "  --grace DURATION       after SIGTERM/SIGINT, CMD's time to exit before SIGKILL\n"
           "                         (default: 10s)\n"
           "  --wait-timeout DURATION\n"
           "                         give up (exit 75) when not leader within DURATION, at\n"
           "                         start and after each loss (default: wait forever); 0s\n"
           "                         is --try-once\n"
           "  --try-once             give up (exit 75, logged at INFO, so -q is silent) as\n"
           "                         soon as the key is seen held by another process, as\n"
           "                         flock -n does; waits for the first answer from Redis at\n"
           "                         most --wait-timeout (default: 10s + 2 leases)\n"
           "  --hold-after-exit DURATION\n"
           "                         when CMD exits on its own (any status), keep the key\n"
           "                         for DURATION instead of releasing it, and exit: late\n"
           "                         starters with --try-once give up until it runs out\n"
           "  --restart              restart CMD in place when it exits while leader, with a\n"
           "                         back-off from 500ms to 30s, keeping the lease\n"
           "  --exit-on-loss         exit 79 when leadership is lost, instead of campaigning\n"
           "                         again\n"
           "\n"
           "Options for status and watch:\n"
           "  --json                 one JSON object per line on stdout\n"
           "\n"
           "Exit status:\n"
           "  run     CMD's status when it ran (128+N when killed by signal N); 0 when\n"
           "          SIGTERM/SIGINT stopped leasehold and CMD obeyed the forwarded signal\n"
           "          (exit 0, or died of it); 75 not elected within --wait-timeout, or\n"
           "          the key held by another (--try-once); 79 leadership lost\n"
           "          (--exit-on-loss), or --hold-after-exit's hold could not be set;\n"
           "          126 CMD cannot be executed; 127 CMD not found (both checked before\n"
           "          campaigning); 128+N when leasehold was stopped by signal N before\n"
           "          CMD ran\n"
           "  status  0 a leader holds the key; 3 nobody does; 65 the key is not a lease\n"
           "          (no TTL, or not a leasehold token: the value and TTL are shown)\n"
           "  watch   0 after SIGINT/SIGTERM or when stdout is closed; 74 stdout failed\n"
           "  all     64 bad usage; 65 the key holds another type or a value with no TTL;\n"
           "          69 Redis unreachable, or refusing for good: ACL (NOPERM), password,\n"
           "          EVAL/EVALSHA renamed or disabled, a read-only replica (run; status\n"
           "          and watch can read one); 71 system error.  Those errors end run\n"
           "          and watch with one line naming the cause and the fix (run stops\n"
           "          CMD first); transient ones are retried and logged once per change.\n"
           "          A key held with a TTL by another program's value is waited for.\n");
}

/*
 * Parses a duration with its unit into milliseconds: digits, an optional
 * fraction, then ms, s, m or h.  The result must be a whole number of
 * milliseconds no larger than max_ms.
 */
static bool parse_duration(const char *opt, const char *text, uint64_t max_ms, uint64_t *out)
{
    const char *p = text;
    if (*p < '0' || *p > '9') {
        usage_error("%s: '%s' is not a duration (like 500ms, 2s, 1.5s, 1m)", opt, text);
        return false;
    }
    errno = 0;
    char *end;
    double v = strtod(p, &end);
    if (errno == ERANGE || !isfinite(v)) {
        usage_error("%s: %s is too large", opt, text);
        return false;
    }
    double unit;
    if (strcmp(end, "ms") == 0)
        unit = 1;
    else if (strcmp(end, "s") == 0)
        unit = 1000;
    else if (strcmp(end, "m") == 0)
        unit = 60000;
    else if (strcmp(end, "h") == 0)
        unit = 3600000;
    else if (*end == '\0') {
        usage_error("%s: '%s' needs a unit: ms, s, m or h (like %sms or %ss)", opt, text, text,
                    text);
        return false;
    } else {
        usage_error("%s: '%s' is not a duration (like 500ms, 2s, 1.5s, 1m)", opt, text);
        return false;
    }
    double ms = v * unit;
    if (ms > (double)max_ms) {
        usage_error("%s: %s is too large (at most %" PRIu64 "ms)", opt, text, max_ms);
        return false;
    }
    if (ms != floor(ms)) {
        usage_error("%s: %s is not a whole number of milliseconds", opt, text);
        return false;
    }
    *out = (uint64_t)ms;
    return true;
}

/* A duration for a uint32_t field of the library's configuration; at
 * least 1 ms. */
static bool parse_timing(const char *opt, const char *text, uint32_t *out)
{
    uint64_t ms;
    if (!parse_duration(opt, text, UINT32_MAX, &ms))
        return false;
    if (ms == 0) {
        usage_error("%s: must be more than 0ms", opt);
        return false;
    }
    *out = (uint32_t)ms;
    return true;
}

/* The clock-rate allowance in parts per million: digits only, 1 to 200000
 * (as the library accepts). */
static bool parse_ppm(const char *opt, const char *text, uint32_t *out)
{
    char *end = NULL;
    unsigned long v = text[0] >= '0' && text[0] <= '9' ? strtoul(text, &end, 10) : 0;
    if (!end || *end || v < 1 || v > 200000) {
        usage_error("%s: '%s' is not a number of parts per million from 1 to 200000 (10000 is "
                    "1%%)",
                    opt, text);
        return false;
    }
    *out = (uint32_t)v;
    return true;
}

/* An environment variable, or NULL when unset or empty. */
static const char *env_value(const char *name)
{
    const char *v = getenv(name);
    return v && v[0] ? v : NULL;
}

enum option_id {
    OPT_HELP = 'h',
    OPT_QUIET = 'q',
    OPT_VERBOSE = 'v',
    OPT_URL = 1000,
    OPT_KEY,
    OPT_REGION,
    OPT_LOG_FORMAT,
    OPT_ID,
    OPT_LEASE,
    OPT_RENEW,
    OPT_RETRY,
    OPT_RENEW_DEADLINE,
    OPT_COMMAND_TIMEOUT,
    OPT_CLOCK_DRIFT,
    OPT_GRACE,
    OPT_WAIT_TIMEOUT,
    OPT_RESTART,
    OPT_EXIT_ON_LOSS,
    OPT_JSON,
    OPT_TRY_ONCE,
    OPT_HOLD_AFTER_EXIT,
};

#define COMMON_OPTIONS                                                                             \
    {"help", no_argument, NULL, OPT_HELP}, {"quiet", no_argument, NULL, OPT_QUIET},                \
        {"verbose", no_argument, NULL, OPT_VERBOSE}, {"url", required_argument, NULL, OPT_URL},    \
        {"key", required_argument, NULL, OPT_KEY},                                                 \
        {"region", required_argument, NULL, OPT_REGION},                                           \
    {                                                                                              \
        "log-format", required_argument, NULL, OPT_LOG_FORMAT                                      \
    }

static const struct option run_options[] = {
    COMMON_OPTIONS,
    {"id", required_argument, NULL, OPT_ID},
    {"lease", required_argument, NULL, OPT_LEASE},
    {"renew", required_argument, NULL, OPT_RENEW},
    {"retry", required_argument, NULL, OPT_RETRY},
    {"renew-deadline", required_argument, NULL, OPT_RENEW_DEADLINE},
    {"command-timeout", required_argument, NULL, OPT_COMMAND_TIMEOUT},
    {"clock-drift-ppm", required_argument, NULL, OPT_CLOCK_DRIFT},
    {"grace", required_argument, NULL, OPT_GRACE},
    {"wait-timeout", required_argument, NULL, OPT_WAIT_TIMEOUT},
    {"restart", no_argument, NULL, OPT_RESTART},
    {"exit-on-loss", no_argument, NULL, OPT_EXIT_ON_LOSS},
    {"try-once", no_argument, NULL, OPT_TRY_ONCE},
    {"hold-after-exit", required_argument, NULL, OPT_HOLD_AFTER_EXIT},
    {NULL, 0, NULL, 0},
};

static const struct option observe_options[] = {
    COMMON_OPTIONS,
    {"json", no_argument, NULL, OPT_JSON},
    {NULL, 0, NULL, 0},
};

/* Which options were given, for the checks that need to know. */
typedef struct given {
    bool key, region, quiet, verbose, renew, retry, renew_deadline, command_timeout;
    const char *command_timeout_text; /* as given, for messages */
} given;

/* Names the option getopt_long() rejected at argv[optind - 1]. */
static int bad_option(int c, char **argv, const char *command)
{
    const char *arg = argv[optind - 1];
    if (c == ':')
        return usage_error("%s: option %s needs a value (see --help)", command, arg);
    if (optopt != 0 && optopt < 256)
        return usage_error("%s: unknown option -%c (see --help)", command, optopt);
    return usage_error("%s: unknown option %s (see --help)", command, arg);
}

/* Applies one option (getopt's c and optarg) to o.  0, or EXIT_USAGE. */
static int apply_option(int c, cli_options *o, given *g)
{
    uint64_t ms;
    switch (c) {
    case OPT_QUIET:
        g->quiet = true;
        o->log_level = LEASEHOLD_LOG_WARN;
        return 0;
    case OPT_VERBOSE:
        g->verbose = true;
        o->log_level = LEASEHOLD_LOG_DEBUG;
        return 0;
    case OPT_URL:
        if (!optarg[0])
            return usage_error("--url: the URL is empty");
        o->url = optarg;
        o->url_source = "--url";
        return 0;
    case OPT_KEY:
        if (!optarg[0])
            return usage_error("--key: the key is empty");
        if (strlen(optarg) >= CLI_KEY_MAX)
            return usage_error("--key: the key is longer than %d bytes", CLI_KEY_MAX - 1);
        g->key = true;
        snprintf(o->key, sizeof o->key, "%s", optarg);
        return 0;
    case OPT_REGION:
        if (!optarg[0])
            return usage_error("--region: the region is empty");
        g->region = true;
        if (snprintf(o->key, sizeof o->key, KEY_PREFIX "%s", optarg) >= CLI_KEY_MAX)
            return usage_error("--region: the key would be longer than %d bytes", CLI_KEY_MAX - 1);
        return 0;
    case OPT_LOG_FORMAT:
        if (strcmp(optarg, "text") == 0)
            o->log_format = CLI_LOG_TEXT;
        else if (strcmp(optarg, "json") == 0)
            o->log_format = CLI_LOG_JSON;
        else
            return usage_error("--log-format: '%s' is not text or json", optarg);
        return 0;
    case OPT_ID:
        if (!optarg[0])
            return usage_error("--id: the identity is empty");
        o->identity = optarg;
        return 0;
    case OPT_LEASE:
        return parse_timing("--lease", optarg, &o->lease_ms) ? 0 : EXIT_USAGE;
    case OPT_RENEW:
        g->renew = true;
        return parse_timing("--renew", optarg, &o->renew_ms) ? 0 : EXIT_USAGE;
    case OPT_RETRY:
        g->retry = true;
        return parse_timing("--retry", optarg, &o->retry_ms) ? 0 : EXIT_USAGE;
    case OPT_RENEW_DEADLINE:
        g->renew_deadline = true;
        return parse_timing("--renew-deadline", optarg, &o->renew_deadline_ms) ? 0 : EXIT_USAGE;
    case OPT_COMMAND_TIMEOUT:
        g->command_timeout = true;
        g->command_timeout_text = optarg;
        return parse_timing("--command-timeout", optarg, &o->command_timeout_ms) ? 0 : EXIT_USAGE;
    case OPT_CLOCK_DRIFT:
        return parse_ppm("--clock-drift-ppm", optarg, &o->clock_drift_ppm) ? 0 : EXIT_USAGE;
    case OPT_GRACE:
        return parse_duration("--grace", optarg, UINT32_MAX, &o->grace_ms) ? 0 : EXIT_USAGE;
    case OPT_WAIT_TIMEOUT:
        if (!parse_duration("--wait-timeout", optarg, UINT32_MAX, &ms))
            return EXIT_USAGE;
        o->try_once |= ms == 0; /* 0s: give up at once, as --try-once */
        o->wait_timeout_ms = ms;
        return 0;
    case OPT_RESTART:
        o->restart = true;
        return 0;
    case OPT_EXIT_ON_LOSS:
        o->exit_on_loss = true;
        return 0;
    case OPT_JSON:
        o->json = true;
        return 0;
    case OPT_TRY_ONCE:
        o->try_once = true;
        return 0;
    case OPT_HOLD_AFTER_EXIT:
        if (!parse_duration("--hold-after-exit", optarg, UINT32_MAX, &o->hold_after_exit_ms))
            return EXIT_USAGE;
        if (o->hold_after_exit_ms == 0)
            return usage_error("--hold-after-exit: must be more than 0ms (without it the key is "
                               "released when CMD exits)");
        return 0;
    }
    return EXIT_USAGE;
}

/* The checks that need every option: conflicts, the URL, and timings that
 * leave CMD no time to be killed.  0, or EXIT_USAGE. */
static int check_options(cli_options *o, const given *g)
{
    if (g->key && g->region)
        return usage_error("--key and --region both name the key: give one");
    if (g->quiet && g->verbose)
        return usage_error("--quiet and --verbose contradict each other: give one");
    if (!o->url)
        return usage_error("no Redis URL: give --url or set SNAKETRON_REDIS_URL");
    if (o->command != CLI_RUN)
        return 0;
    if (!o->cmd[0])
        return usage_error("run: no command to run (leasehold run [OPTION]... -- CMD [ARG]...)");
    if (o->restart && o->hold_after_exit_ms)
        return usage_error("--restart and --hold-after-exit contradict each other: --restart "
                           "starts CMD again when it exits, so it never exits for good");
    /* --try-once waits for its first answer (held, or elected) this long at
     * most: the restart guard and a quarantine hold a claim a lease each. */
    if (o->try_once && o->wait_timeout_ms == 0)
        o->wait_timeout_ms = TRY_ONCE_WAIT_MS + 2u * (uint64_t)o->lease_ms;
    /* Timings not given follow the lease, as the library's defaults do;
     * in 64 bits, and each at most the lease, so they fit back. */
    uint64_t lease = o->lease_ms;
    if (!g->renew)
        o->renew_ms = lease * 3u / 20u > 0 ? (uint32_t)(lease * 3u / 20u) : 1u;
    if (!g->retry)
        o->retry_ms = lease / 2u > 0 ? (uint32_t)(lease / 2u) : 1u;
    if (!g->renew_deadline)
        o->renew_deadline_ms = (uint32_t)(lease * 3u / 4u);
    /* Commands must time out well within the renew deadline. */
    uint64_t timeout_max = o->renew_deadline_ms / 2u;
    if (g->command_timeout && o->command_timeout_ms > timeout_max)
        return usage_error("--command-timeout %s is more than half the %" PRIu32
                           "ms renew deadline: at most %" PRIu64 "ms",
                           g->command_timeout_text, o->renew_deadline_ms, timeout_max);
    if (!g->command_timeout && o->command_timeout_ms > timeout_max) {
        o->command_timeout_ms = timeout_max > 0 ? (uint32_t)timeout_max : 1u;
        o->command_timeout_lowered = true;
    }
    /* The library steps down at the renew deadline; CMD must then have had
     * SIGTERM, and get SIGKILL, before valid_until = lease - drift. */
    uint64_t drift = (uint64_t)o->lease_ms * o->clock_drift_ppm / 1000000u + 2u;
    uint64_t margin = cli_kill_margin_ms(o->lease_ms);
    if ((uint64_t)o->renew_deadline_ms + drift + margin > o->lease_ms)
        return usage_error("--renew-deadline %" PRIu32 "ms leaves no time to stop CMD before the "
                           "%" PRIu32 "ms lease could pass on: at most %" PRIu64 "ms",
                           o->renew_deadline_ms, o->lease_ms,
                           o->lease_ms > drift + margin ? o->lease_ms - drift - margin : 0);
    return 0;
}

int cli_parse_options(int argc, char **argv, cli_options *o)
{
    leasehold_config d;
    leasehold_config_init(&d);
    *o = (cli_options){
        .url = env_value("SNAKETRON_REDIS_URL"),
        .url_source = "SNAKETRON_REDIS_URL",
        .lease_ms = d.lease_ms,
        .renew_ms = d.renew_interval_ms,
        .retry_ms = d.retry_interval_ms,
        .renew_deadline_ms = d.renew_deadline_ms,
        .command_timeout_ms = d.command_timeout_ms,
        .clock_drift_ppm = d.clock_drift_ppm,
        .grace_ms = DEFAULT_GRACE,
        .log_level = LEASEHOLD_LOG_INFO,
        .log_format = CLI_LOG_TEXT,
    };
    const char *region = env_value("SNAKETRON_REGION");
    snprintf(o->key, sizeof o->key, KEY_PREFIX "%s", region ? region : DEFAULT_REGION);

    if (argc < 2)
        return usage_error("no command: give run, status or watch (see --help)");
    const char *command = argv[1];
    const struct option *table;
    if (strcmp(command, "-h") == 0 || strcmp(command, "--help") == 0 ||
        strcmp(command, "help") == 0) {
        print_help();
        return -1;
    } else if (strcmp(command, "run") == 0) {
        o->command = CLI_RUN;
        table = run_options;
    } else if (strcmp(command, "status") == 0) {
        o->command = CLI_STATUS;
        table = observe_options;
    } else if (strcmp(command, "watch") == 0) {
        o->command = CLI_WATCH;
        table = observe_options;
    } else {
        return usage_error("unknown command '%s': give run, status or watch (see --help)", command);
    }

    given g = {0};
    opterr = 0;
    optind = 2;
    int c;
    /* '+': options stop at CMD, so CMD's own options stay CMD's. */
    while ((c = getopt_long(argc, argv, "+:hqv", table, NULL)) != -1) {
        if (c == OPT_HELP) {
            print_help();
            return -1;
        }
        if (c == '?' || c == ':')
            return bad_option(c, argv, command);
        if (apply_option(c, o, &g) != 0)
            return EXIT_USAGE;
    }
    o->cmd = argv + optind;
    if (o->command != CLI_RUN && optind < argc)
        return usage_error("%s: unexpected argument '%s' (see --help)", command, argv[optind]);
    return check_options(o, &g);
}

void cli_config(const cli_options *o, leasehold_config *cfg)
{
    leasehold_config_init(cfg);
    cfg->url = o->url;
    cfg->identity = o->identity;
    cfg->log = cli_library_log;
    cfg->log_level = o->log_level;
    if (o->command != CLI_RUN) {
        /* status and watch print to stdout; the library's connects are noise. */
        if (cfg->log_level == LEASEHOLD_LOG_INFO)
            cfg->log_level = LEASEHOLD_LOG_WARN;
        return;
    }
    cfg->lease_ms = o->lease_ms;
    cfg->renew_interval_ms = o->renew_ms;
    cfg->retry_interval_ms = o->retry_ms;
    cfg->renew_deadline_ms = o->renew_deadline_ms;
    cfg->command_timeout_ms = o->command_timeout_ms;
    cfg->clock_drift_ppm = o->clock_drift_ppm;
}
