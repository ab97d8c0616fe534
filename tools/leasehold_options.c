/*
 * leasehold_options.c — the command line, the environment and the help.
 *
 * The options `leasehold` shares with `server` (the URL, the key, the
 * identity, the log level, durations and timings) are parsed by options.c,
 * with the same rules and messages in both programs; this file adds the
 * subcommands and the options only `leasehold` has, and checks what needs
 * the whole command line.  Timings not given follow --lease (options.h
 * says how), so `--lease 200ms` alone is a valid configuration; the run
 * tool adds its kill margin to the library's rules.  Every bad value gets
 * one line on stderr that starts with "leasehold: " and names the option.
 */
#include "leasehold_cli.h"
#include "options.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_GRACE 10000u

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

/* Prints the usage. */
static void print_help(void)
{
    printf("Usage: leasehold run [OPTION]... [--] CMD [ARG]...\n"
           "       leasehold status [--json] [OPTION]...\n"
           "       leasehold watch [--json] [OPTION]...\n"
           "       leasehold resign [--token TOKEN] [--wait] [OPTION]...\n"
           "       leasehold --help | --version\n"
           "\n"
           "Leader election on a Redis key.  `run` campaigns for the key and runs CMD only\n"
           "while this process is the leader; `status` prints who holds the key; `watch`\n"
           "prints who holds it now (or `no leader`), then every change of leader as it\n"
           "happens, and exits 0 once its stdout is closed; `resign` asks the leader to\n"
           "step down (stop CMD, release the key) for the term it holds now, so another\n"
           "process takes over, e.g. before maintenance.\n"
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
           "Options for every command (a key or region with a control character is\n"
           "refused):\n" OPTS_HELP_GENERAL "\n"
           "Options for run (DURATION is digits, an optional fraction and a unit: 500ms,\n"
           "2s, 1.5s, 1m, 1h; --lease alone is enough, the others follow it):\n" OPTS_HELP_TIMING
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
           "  --metrics-listen ADDR  serve /metrics (Prometheus), /healthz and /readyz over\n"
           "                         HTTP on ADDR: HOST:PORT, [IPv6]:PORT or :PORT (every\n"
           "                         interface), e.g. 127.0.0.1:9464\n"
           "\n"
           "Options for status and watch:\n"
           "  --json                 one JSON object per line on stdout\n"
           "\n"
           "Options for resign:\n"
           "  --token TOKEN          ask only if TOKEN holds the key (else exit 3)\n"
           "  --wait                 then wait for another process to take over and print\n"
           "                         its token and epoch\n"
           "  --wait-timeout DURATION\n"
           "                         how long --wait waits (default: 10s; implies --wait)\n"
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
           "  resign  0 asked (and, with --wait, taken over); 3 nobody holds the key, or\n"
           "          not --token; 69 nobody received the request; 75 --wait ran out\n"
           "          (the leader ignored the request, or nobody took over)\n"
           "  all     64 bad usage; 65 the key holds another type or a value with no TTL;\n"
           "          69 Redis unreachable, or refusing for good: ACL (NOPERM), password,\n"
           "          EVAL/EVALSHA renamed or disabled, a read-only replica (run; status\n"
           "          and watch can read one); 71 system error.  Those errors end run\n"
           "          and watch with one line naming the cause and the fix (run stops\n"
           "          CMD first); transient ones are retried and logged once per change.\n"
           "          A key held with a TTL by another program's value is waited for.\n");
}

/* leasehold's own options; the shared ones are options.h's. */
enum option_id {
    OPT_GRACE = OPTS_PROGRAM,
    OPT_WAIT_TIMEOUT,
    OPT_RESTART,
    OPT_EXIT_ON_LOSS,
    OPT_JSON,
    OPT_TRY_ONCE,
    OPT_HOLD_AFTER_EXIT,
    OPT_METRICS_LISTEN,
    OPT_TOKEN,
    OPT_WAIT,
};

static const struct option run_options[] = {
    OPTS_TABLE_GENERAL,
    OPTS_TABLE_TIMING,
    {"grace", required_argument, NULL, OPT_GRACE},
    {"wait-timeout", required_argument, NULL, OPT_WAIT_TIMEOUT},
    {"restart", no_argument, NULL, OPT_RESTART},
    {"exit-on-loss", no_argument, NULL, OPT_EXIT_ON_LOSS},
    {"try-once", no_argument, NULL, OPT_TRY_ONCE},
    {"hold-after-exit", required_argument, NULL, OPT_HOLD_AFTER_EXIT},
    {"metrics-listen", required_argument, NULL, OPT_METRICS_LISTEN},
    {NULL, 0, NULL, 0},
};

static const struct option resign_options[] = {
    OPTS_TABLE_GENERAL,
    {"token", required_argument, NULL, OPT_TOKEN},
    {"wait", no_argument, NULL, OPT_WAIT},
    {"wait-timeout", required_argument, NULL, OPT_WAIT_TIMEOUT},
    {NULL, 0, NULL, 0},
};

static const struct option observe_options[] = {
    OPTS_TABLE_GENERAL,
    {"json", no_argument, NULL, OPT_JSON},
    {NULL, 0, NULL, 0},
};

/* Applies one of leasehold's own options (getopt's c and optarg) to o.
 * 0, or EXIT_USAGE. */
static int apply_option(int c, opts *s, cli_options *o)
{
    uint64_t ms;
    switch (c) {
    case OPT_GRACE:
        return opts_duration(s, "--grace", optarg, UINT32_MAX, &o->grace_ms);
    case OPT_WAIT_TIMEOUT:
        if (opts_duration(s, "--wait-timeout", optarg, UINT32_MAX, &ms) != 0)
            return EXIT_USAGE;
        o->try_once |= ms == 0; /* 0s: give up at once, as --try-once */
        o->wait_timeout_ms = ms;
        o->wait = true; /* resign: --wait-timeout implies --wait */
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
    case OPT_METRICS_LISTEN:
        o->metrics_listen = optarg;
        return 0;
    case OPT_TOKEN:
        if (!leasehold_is_token(optarg))
            return usage_error("--token: %s is not a leasehold token (identity/16 hex digits, "
                               "as `leasehold status` shows it)",
                               optarg);
        o->token = optarg;
        return 0;
    case OPT_WAIT:
        o->wait = true;
        return 0;
    case OPT_HOLD_AFTER_EXIT:
        if (opts_duration(s, "--hold-after-exit", optarg, UINT32_MAX, &o->hold_after_exit_ms) != 0)
            return EXIT_USAGE;
        if (o->hold_after_exit_ms == 0)
            return usage_error("--hold-after-exit: must be more than 0ms (without it the key is "
                               "released when CMD exits)");
        return 0;
    }
    return EXIT_USAGE;
}

/* The checks that need every option: the key, the URL, CMD, and timings
 * that leave CMD no time to be killed; then copies the shared options
 * into o.  0, or EXIT_USAGE. */
static int check_options(opts *s, cli_options *o)
{
    if (opts_finish_key(s) != 0)
        return EXIT_USAGE;
    snprintf(o->key, sizeof o->key, "%s", s->key);
    if (!s->url)
        return usage_error("no Redis URL: give --url, --url-file or set SNAKETRON_REDIS_URL");
    if (opts_conn_finish(s) != 0)
        return EXIT_USAGE;
    o->url = s->url;
    o->url_source = s->url_source;
    o->conn = s->conn;
    o->identity = s->identity;
    o->log_level = s->log_level;
    o->log_format = s->log_json ? CLI_LOG_JSON : CLI_LOG_TEXT;
    if (o->command != CLI_RUN)
        return 0;
    if (!o->cmd[0])
        return usage_error("run: no command to run (leasehold run [OPTION]... -- CMD [ARG]...)");
    if (opts_finish_timing(s, cli_kill_margin_ms) != 0)
        return EXIT_USAGE;
    o->lease_ms = s->t.lease_ms;
    o->renew_ms = s->t.renew_ms;
    o->retry_ms = s->t.retry_ms;
    o->renew_deadline_ms = s->t.renew_deadline_ms;
    o->command_timeout_ms = s->t.command_timeout_ms;
    o->command_timeout_lowered = s->t.command_timeout_lowered;
    o->connect_timeout_ms = s->t.connect_timeout_ms;
    o->clock_drift_ppm = s->t.clock_drift_ppm;
    o->priority = s->t.priority;
    o->handover_interval_ms = s->t.handover_interval_ms;
    if (o->restart && o->hold_after_exit_ms)
        return usage_error("--restart and --hold-after-exit contradict each other: --restart "
                           "starts CMD again when it exits, so it never exits for good");
    /* --try-once waits for its first answer (held, or elected) this long at
     * most: the restart guard and a quarantine hold a claim a lease each. */
    if (o->try_once && o->wait_timeout_ms == 0)
        o->wait_timeout_ms = TRY_ONCE_WAIT_MS + 2u * (uint64_t)o->lease_ms;
    return 0;
}

int cli_parse_options(int argc, char **argv, cli_options *o)
{
    *o = (cli_options){
        .grace_ms = DEFAULT_GRACE,
        .log_level = LEASEHOLD_LOG_INFO,
        .log_format = CLI_LOG_TEXT,
    };
    if (argc < 2)
        return usage_error("no command: give run, status, watch or resign (see --help)");
    const char *command = argv[1];
    const struct option *table;
    if (strcmp(command, "-h") == 0 || strcmp(command, "--help") == 0 ||
        strcmp(command, "help") == 0) {
        print_help();
        return -1;
    } else if (strcmp(command, "--version") == 0) {
        opts_print_version("leasehold");
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
    } else if (strcmp(command, "resign") == 0) {
        o->command = CLI_RESIGN;
        table = resign_options;
    } else {
        char q[OPTS_QUOTE_SIZE];
        return usage_error("unknown command %s: give run, status, watch or resign (see --help)",
                           opts_quote(q, command));
    }

    opts s;
    opts_init(&s, "leasehold");
    opterr = 0;
    optind = 2;
    int c;
    /* '+': options stop at CMD, so CMD's own options stay CMD's. */
    while ((c = getopt_long(argc, argv, "+:hqv", table, NULL)) != -1) {
        if (c == OPTS_HELP) {
            print_help();
            return -1;
        }
        if (c == OPTS_VERSION) {
            opts_print_version("leasehold");
            return -1;
        }
        if (c == '?' || c == ':')
            return opts_bad_option(&s, c, argv, command);
        int rc = opts_apply(&s, c, optarg);
        if (rc == 1)
            rc = apply_option(c, &s, o);
        if (rc != 0)
            return EXIT_USAGE;
    }
    o->cmd = argv + optind;
    char q[OPTS_QUOTE_SIZE];
    if (o->command != CLI_RUN && optind < argc)
        return usage_error("%s: unexpected argument %s (see --help)", command,
                           opts_quote(q, argv[optind]));
    return check_options(&s, o);
}

void cli_config(const cli_options *o, leasehold_config *cfg)
{
    leasehold_config_init(cfg);
    cfg->url = o->url;
    opts_conn_config(&o->conn, cfg);
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
    cfg->connect_timeout_ms = o->connect_timeout_ms;
    cfg->clock_drift_ppm = o->clock_drift_ppm;
    cfg->priority = o->priority;
    cfg->handover_interval_ms = o->handover_interval_ms;
}
