/*
 * options.h — the option vocabulary `leasehold` and `server` share: one
 * parser for durations, the Redis URL, the key (--key, --region,
 * SNAKETRON_REGION), the identity, the log level and the timings, with the
 * same rules and the same messages in both programs.
 *
 * Each program keeps its own getopt_long() table and loop: the shared
 * options use the ids below (OPTS_*), and opts_apply() handles them; a
 * program's own options take ids from OPTS_PROGRAM up.  Once argv is read,
 * opts_finish_key() and opts_finish_timing() resolve what was not given and
 * check the whole.  Every message is one line on stderr that starts with
 * the program's name and names the option the user gave, or says what a
 * derived value was derived from.  Uses only the public <leasehold.h>.
 */
#ifndef LEASEHOLD_OPTIONS_H
#define LEASEHOLD_OPTIONS_H

#include <leasehold.h>

#include <stdbool.h>
#include <stdint.h>

#define OPTS_USAGE          64 /* EX_USAGE: what every opts_* failure returns */
#define OPTS_KEY_MAX        512
#define OPTS_KEY_PREFIX     "snaketron:leader:"
#define OPTS_DEFAULT_REGION "default"
#define OPTS_IDENTITY_MAX   200 /* the library's limit */

/* The ids of the shared options in a getopt_long() table. */
enum opts_id {
    OPTS_HELP = 'h',
    OPTS_QUIET = 'q',
    OPTS_VERBOSE = 'v',
    OPTS_URL = 1000,
    OPTS_KEY,
    OPTS_REGION,
    OPTS_ID,
    OPTS_LOG_LEVEL,
    OPTS_LOG_FORMAT,
    OPTS_VERSION,
    OPTS_LEASE,
    OPTS_RENEW,
    OPTS_RETRY,
    OPTS_RENEW_DEADLINE,
    OPTS_COMMAND_TIMEOUT,
    OPTS_CONNECT_TIMEOUT,
    OPTS_CLOCK_DRIFT,
    OPTS_PRIORITY,
    OPTS_HANDOVER_INTERVAL,
    /* plain milliseconds: `server`'s original spellings (--lease-ms 2000) */
    OPTS_LEASE_MS,
    OPTS_RENEW_MS,
    OPTS_RETRY_MS,
    OPTS_RENEW_DEADLINE_MS,
    OPTS_COMMAND_TIMEOUT_MS,
    OPTS_CONNECT_TIMEOUT_MS,
    /* the connection's: options_conn.c */
    OPTS_URL_FILE,
    OPTS_PASSWORD_FILE,
    OPTS_TLS_CA_FILE,
    OPTS_TLS_CA_DIR,
    OPTS_TLS_CERT_FILE,
    OPTS_TLS_KEY_FILE,
    OPTS_TLS_SERVER_NAME,
    OPTS_TLS_INSECURE,
    OPTS_SENTINEL_USER,
    OPTS_SENTINEL_PASSWORD_FILE,
    OPTS_MIN_REPLICAS,
    OPTS_PROGRAM = 1100, /* a program's own options start here */
};

/* getopt_long() entries for the shared options, to put in a table. */
#define OPTS_TABLE_GENERAL                                                                         \
    {"help", no_argument, NULL, OPTS_HELP}, {"version", no_argument, NULL, OPTS_VERSION},          \
        {"url", required_argument, NULL, OPTS_URL}, {"key", required_argument, NULL, OPTS_KEY},    \
        {"region", required_argument, NULL, OPTS_REGION},                                          \
        {"quiet", no_argument, NULL, OPTS_QUIET}, {"verbose", no_argument, NULL, OPTS_VERBOSE},    \
        {"log-level", required_argument, NULL, OPTS_LOG_LEVEL},                                    \
        {"log-format", required_argument, NULL, OPTS_LOG_FORMAT},                                  \
        {"url-file", required_argument, NULL, OPTS_URL_FILE},                                      \
        {"password-file", required_argument, NULL, OPTS_PASSWORD_FILE},                            \
        {"tls-ca-file", required_argument, NULL, OPTS_TLS_CA_FILE},                                \
        {"tls-ca-dir", required_argument, NULL, OPTS_TLS_CA_DIR},                                  \
        {"tls-cert-file", required_argument, NULL, OPTS_TLS_CERT_FILE},                            \
        {"tls-key-file", required_argument, NULL, OPTS_TLS_KEY_FILE},                              \
        {"tls-server-name", required_argument, NULL, OPTS_TLS_SERVER_NAME},                        \
        {"sentinel-user", required_argument, NULL, OPTS_SENTINEL_USER},                            \
        {"sentinel-password-file", required_argument, NULL, OPTS_SENTINEL_PASSWORD_FILE},          \
        {"min-replicas", required_argument, NULL, OPTS_MIN_REPLICAS},                              \
    {                                                                                              \
        "tls-insecure", no_argument, NULL, OPTS_TLS_INSECURE                                       \
    }
#define OPTS_TABLE_TIMING                                                                          \
    {"id", required_argument, NULL, OPTS_ID}, {"lease", required_argument, NULL, OPTS_LEASE},      \
        {"renew", required_argument, NULL, OPTS_RENEW},                                            \
        {"retry", required_argument, NULL, OPTS_RETRY},                                            \
        {"renew-deadline", required_argument, NULL, OPTS_RENEW_DEADLINE},                          \
        {"command-timeout", required_argument, NULL, OPTS_COMMAND_TIMEOUT},                        \
        {"connect-timeout", required_argument, NULL, OPTS_CONNECT_TIMEOUT},                        \
        {"priority", required_argument, NULL, OPTS_PRIORITY},                                      \
        {"handover-interval", required_argument, NULL, OPTS_HANDOVER_INTERVAL},                    \
    {                                                                                              \
        "clock-drift-ppm", required_argument, NULL, OPTS_CLOCK_DRIFT                               \
    }
#define OPTS_TABLE_MS_ALIASES                                                                      \
    {"lease-ms", required_argument, NULL, OPTS_LEASE_MS},                                          \
        {"renew-ms", required_argument, NULL, OPTS_RENEW_MS},                                      \
        {"retry-ms", required_argument, NULL, OPTS_RETRY_MS},                                      \
        {"renew-deadline-ms", required_argument, NULL, OPTS_RENEW_DEADLINE_MS},                    \
        {"command-timeout-ms", required_argument, NULL, OPTS_COMMAND_TIMEOUT_MS},                  \
    {                                                                                              \
        "connect-timeout-ms", required_argument, NULL, OPTS_CONNECT_TIMEOUT_MS                     \
    }

/* The --help lines of the shared options, so both programs say the same. */
#define OPTS_HELP_GENERAL                                                                          \
    "  --url URL              Redis URL: redis://[user[:password]@]host[:port][/db],\n"            \
    "                         rediss://... (TLS), unix:///path/to/redis.sock,\n"                   \
    "                         redis+sentinel://host:26379,host2:26379/mymaster[/db],\n"            \
    "                         or redis+cluster://host:7000,host2:7001 (Cluster seeds)\n"           \
    "                         (default: $SNAKETRON_REDIS_URL)\n"                                   \
    "  --url-file FILE        the URL from the first line of FILE (not shown by ps)\n"             \
    "  --password-file FILE   the password from the first line of FILE (default:\n"                \
    "                         $SNAKETRON_REDIS_PASSWORD); the URL must then hold none\n"           \
    "  --tls-ca-file FILE     rediss://: the CAs to trust, PEM (default: the system's)\n"          \
    "  --tls-ca-dir DIR       rediss://: a directory of CAs (openssl rehash)\n"                    \
    "  --tls-cert-file FILE   rediss://: a client certificate, PEM (tls-auth-clients)\n"           \
    "  --tls-key-file FILE    rediss://: its key (default: in the certificate's file)\n"           \
    "  --tls-server-name NAME rediss://: the name Redis's certificate must have\n"                 \
    "                         (default: the URL's host)\n"                                         \
    "  --tls-insecure         rediss:// without verifying Redis at all (tests only)\n"             \
    "  --sentinel-user NAME   Sentinel URLs: the Sentinels' own ACL user\n"                        \
    "  --sentinel-password-file FILE\n"                                                            \
    "                         Sentinel URLs: the Sentinels' own password (default:\n"              \
    "                         $SNAKETRON_SENTINEL_PASSWORD)\n"                                     \
    "  --min-replicas N       a claim or renewal counts once N replicas have it (WAIT)\n"          \
    "                         (default: 1 behind Sentinel or on a Cluster, else 0)\n"              \
    "  --key KEY              the lease key (default: " OPTS_KEY_PREFIX "<region>)\n"              \
    "  --region NAME          region of the default key (default: $SNAKETRON_REGION,\n"            \
    "                         else " OPTS_DEFAULT_REGION "; set but empty is refused)\n"           \
    "  -q, --quiet            log only warnings and errors\n"                                      \
    "  -v, --verbose          log debugging detail too\n"                                          \
    "  --log-level LEVEL      error, warn, info or debug (default: info)\n"                        \
    "  --log-format FORMAT    text or json: log lines on stderr, fatal ones included\n"            \
    "                         (default: text)\n"                                                   \
    "  -h, --help             print this help and exit\n"                                          \
    "  --version              print the version and exit\n"
#define OPTS_HELP_TIMING                                                                           \
    "  --id IDENTITY          first half of the token, 1 to 200 bytes, no spaces\n"                \
    "                         (default: <hostname>:<pid>)\n"                                       \
    "  --lease DURATION       lease TTL (default: 2s)\n"                                           \
    "  --renew DURATION       the leader renews this often (default: 15%% of the lease)\n"         \
    "  --retry DURATION       a follower's longest wait between claims (default: 50%%\n"           \
    "                         of the lease)\n"                                                     \
    "  --renew-deadline DURATION\n"                                                                \
    "                         a leader unrenewed this long steps down (default: 75%%\n"            \
    "                         of the lease, less when a short lease needs it)\n"                   \
    "  --command-timeout DURATION\n"                                                               \
    "                         a Redis command unanswered this long resets the\n"                   \
    "                         connection; at most half the renew deadline (default:\n"             \
    "                         250ms, or half the renew deadline when shorter;\n"                   \
    "                         command_timeout_ms in the URL wins)\n"                               \
    "  --connect-timeout DURATION\n"                                                               \
    "                         connecting plus AUTH/SELECT/PING (default: 1s)\n"                    \
    "  --clock-drift-ppm PPM  the largest clock-rate difference between this host and\n"           \
    "                         Redis's, 1 to 200000 (default: 10000, i.e. 1%%)\n"                   \
    "  --priority N           the preferred leader: a candidate of a higher priority\n"            \
    "                         than the leader's is handed leadership (default: 1; 0 is\n"          \
    "                         a standby that leads only while no other candidate is\n"             \
    "                         there; at most 1000000)\n"                                           \
    "  --handover-interval DURATION\n"                                                             \
    "                         a leader hands over to a preferred candidate only once\n"            \
    "                         its term has lasted this long (default: 10s)\n"

/* The connection's settings beside the URL (options_conn.c). */
typedef struct opts_conn {
    const char *password;        /* NULL: the URL's, if any; never printed */
    const char *password_source; /* "--password-file", "SNAKETRON_REDIS_PASSWORD" */
    const char *tls_ca_file, *tls_ca_dir, *tls_cert_file, *tls_key_file, *tls_server_name;
    bool tls_insecure;
    const char *sentinel_user;
    const char *sentinel_password; /* never printed */
    int min_replicas;              /* -1: the library's default */
} opts_conn;

/* The timings and where each came from. */
typedef struct opts_timing {
    uint32_t lease_ms, renew_ms, retry_ms, renew_deadline_ms, command_timeout_ms;
    uint32_t connect_timeout_ms, clock_drift_ppm;
    uint32_t priority, handover_interval_ms;
    /* The option each came from as the user spelled it ("--lease",
     * "--lease-ms") and the value as given; NULL when not given. */
    const char *lease_opt, *renew_opt, *retry_opt, *deadline_opt, *timeout_opt, *drift_opt;
    const char *lease_text, *renew_text, *retry_text, *deadline_text, *timeout_text;
    /* After opts_finish_timing(): the renew deadline was lowered below 75 %
     * of the lease to leave room for the drift allowance and the margin. */
    bool deadline_lowered;
    /* After opts_finish_timing(): the 250 ms default command timeout was
     * lowered to half the renew deadline. */
    bool command_timeout_lowered;
} opts_timing;

typedef struct opts {
    const char *prog;                 /* starts every message: "leasehold", "server" */
    bool silent;                      /* messages only into err, not on stderr (tests) */
    char err[1024];                   /* the last message, "<prog>: ..." without newline */
    const char *url;                  /* NULL: none given, SNAKETRON_REDIS_URL unset or empty */
    const char *url_source;           /* "--url", "--url-file" or "SNAKETRON_REDIS_URL" */
    opts_conn conn;                   /* password, TLS */
    const char *key_arg, *region_arg; /* --key and --region as given */
    char key[OPTS_KEY_MAX];           /* after opts_finish_key() */
    const char *identity;             /* --id; NULL: the library's <hostname>:<pid> */
    leasehold_log_level log_level;
    const char *log_opt; /* the logging option given first, NULL when none */
    bool log_json;       /* --log-format json */
    opts_timing t;
} opts;

/* Sets o to the defaults (the library's, the URL from SNAKETRON_REDIS_URL)
 * for program prog; o->prog starts every message. */
void opts_init(opts *o, const char *prog);

/*
 * Applies one shared option: id from the table (messages then name it as
 * its long form, "--lease-ms"), arg its value (NULL for flags).  0 when
 * applied; OPTS_USAGE after a message; 1 when id is not a shared option
 * (the program's own), or is OPTS_HELP/OPTS_VERSION, which the program
 * handles.
 */
int opts_apply(opts *o, int id, const char *arg);

/*
 * Resolves the key: --key; else OPTS_KEY_PREFIX and --region; else
 * SNAKETRON_REGION; else OPTS_DEFAULT_REGION.  Refuses --key with
 * --region (both name the key), an empty value (SNAKETRON_REGION set but
 * empty included: it names the variable), a control character (bytes
 * below 0x20 and 0x7f), and a key of OPTS_KEY_MAX bytes or more.  0, or
 * OPTS_USAGE after a message that names where the value came from.
 */
int opts_finish_key(opts *o);

/*
 * Fills the timings not given, in the proportions of the library's
 * defaults (renew 15 %, retry 50 %, renew deadline 75 % of the lease,
 * command timeout 250 ms), each lowered when the lease needs it, so that
 * every lease the library accepts works alone; then checks the library's
 * rules, plus margin_ms(lease) between the renew deadline and the end of
 * the lease less the drift allowance (NULL: only the library's rule).  A lease
 * too short for any renew deadline is refused naming --lease and the
 * smallest lease that works.  0, or OPTS_USAGE after one message naming
 * the option given, or the derived value and what it was derived from.
 */
int opts_finish_timing(opts *o, uint64_t (*margin_ms)(uint32_t lease_ms));

/* The smallest lease for which opts_finish_timing() can derive every
 * timing, with drift_ppm and margin_ms(lease) (NULL: 0). */
uint32_t opts_min_lease_ms(uint32_t drift_ppm, uint64_t (*margin_ms)(uint32_t lease_ms));

/*
 * Parses a duration: digits, an optional '.' and digits, then a unit (ms,
 * s, m, h), nothing else (no sign, space, exponent, hex, inf).  It must
 * be a whole number of milliseconds, at most max_ms.  0, or OPTS_USAGE
 * after a message naming opt.
 */
int opts_duration(opts *o, const char *opt, const char *text, uint64_t max_ms, uint64_t *out);

/* Plain milliseconds, digits only, at most max_ms (the -ms aliases). */
int opts_milliseconds(opts *o, const char *opt, const char *text, uint64_t max_ms, uint64_t *out);

/* Refuses id unless it is 1 to OPTS_IDENTITY_MAX bytes with no space or
 * control character, as the library requires.  0, or OPTS_USAGE. */
int opts_check_identity(opts *o, const char *opt, const char *id);

/* One message, "<prog>: ...", into o->err and (unless o->silent) on
 * stderr.  Returns OPTS_USAGE. */
int opts_error(opts *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Names the option getopt_long() rejected (c is '?' or ':') at
 * argv[optind - 1]: "[<command>: ]unknown option ..." or "... needs a
 * value", then OPTS_USAGE.  command may be NULL. */
int opts_bad_option(opts *o, int c, char **argv, const char *command);

/* s between single quotes in out, control characters as \xHH, cut with
 * "..." when long: a user's value, safe in a one-line message.  Returns
 * out. */
#define OPTS_QUOTE_SIZE 176
const char *opts_quote(char out[OPTS_QUOTE_SIZE], const char *s);

/* Applies one of the connection's options (OPTS_URL_FILE to
 * OPTS_TLS_INSECURE, opt its long name): 0, or OPTS_USAGE after a message.
 * Called by opts_apply(). */
int opts_conn_apply(opts *o, int id, const char *opt, const char *arg);

/* Once argv is read: SNAKETRON_REDIS_PASSWORD, when set and no option gave
 * a password.  0, or OPTS_USAGE after a message. */
int opts_conn_finish(opts *o);

/* Puts c into cfg (after leasehold_config_init()). */
void opts_conn_config(const opts_conn *c, leasehold_config *cfg);

/* Prints "<name> <version>" (the project's version from CMake) on stdout. */
void opts_print_version(const char *name);

/* The tools' version ("0.1.0"). */
const char *opts_version(void);

#endif
