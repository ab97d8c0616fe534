/*
 * options.c — the option vocabulary `leasehold` and `server` share (see
 * options.h).
 *
 * Durations carry their unit (500ms, 2s, 1.5s, 1m, 1h) and are parsed here
 * digit by digit, not with strtod(), so "0x10s", "1e3ms", "inf" and " 2s"
 * are refused rather than read.  Timings not given follow the lease, each
 * lowered when a short lease or a large drift allowance needs it, so that
 * every lease at or above opts_min_lease_ms() works on its own; the checks
 * that follow are the library's (src/lease.c lease_config_check()), made
 * here so that a message names the option the user gave, or the derived
 * value and what it came from, and never a field of leasehold_config.
 * Every value a message echoes is quoted with its control characters
 * escaped, so a message stays one line.
 */
#include "options.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef LEASEHOLD_TOOL_VERSION
#error "LEASEHOLD_TOOL_VERSION must be defined (CMake passes the project's version)"
#endif

int opts_error(opts *o, const char *fmt, ...)
{
    int n = snprintf(o->err, sizeof o->err, "%.100s: ", o->prog);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(o->err + n, sizeof o->err - (size_t)n, fmt, ap);
    va_end(ap);
    if (!o->silent)
        fprintf(stderr, "%s\n", o->err);
    return OPTS_USAGE;
}

int opts_bad_option(opts *o, int c, char **argv, const char *command)
{
    char q[OPTS_QUOTE_SIZE];
    const char *arg = argv[optind - 1];
    const char *sep = command ? ": " : "";
    command = command ? command : "";
    if (c == ':')
        return opts_error(o, "%s%soption %s needs a value (see --help)", command, sep, arg);
    if (optopt > ' ' && optopt < 127)
        return opts_error(o, "%s%sunknown option -%c (see --help)", command, sep, optopt);
    return opts_error(o, "%s%sunknown option %s (see --help)", command, sep, opts_quote(q, arg));
}

void opts_print_version(const char *name)
{
    printf("%s %s\n", name, LEASEHOLD_TOOL_VERSION);
}

const char *opts_version(void)
{
    return LEASEHOLD_TOOL_VERSION;
}

/* The first control character of s (a byte below 0x20, or 0x7f), or NULL. */
static const char *control_char(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s == 0x7f)
            return s;
    return NULL;
}

const char *opts_quote(char out[OPTS_QUOTE_SIZE], const char *s)
{
    size_t n = 0;
    out[n++] = '\'';
    for (; *s && n < OPTS_QUOTE_SIZE - 16; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch < 0x20 || ch == 0x7f)
            n += (size_t)snprintf(out + n, 5, "\\x%02x", ch);
        else
            out[n++] = (char)ch;
    }
    if (*s) {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n++] = '\'';
    out[n] = '\0';
    return out;
}

void opts_init(opts *o, const char *prog)
{
    leasehold_config d;
    leasehold_config_init(&d);
    const char *url = getenv("SNAKETRON_REDIS_URL");
    *o = (opts){
        .prog = prog,
        .url = url && url[0] ? url : NULL,
        .url_source = "SNAKETRON_REDIS_URL",
        .log_level = LEASEHOLD_LOG_INFO,
        .conn = {.min_replicas = -1},
        .t =
            {
                .lease_ms = d.lease_ms,
                .renew_ms = d.renew_interval_ms,
                .retry_ms = d.retry_interval_ms,
                .renew_deadline_ms = d.renew_deadline_ms,
                .command_timeout_ms = d.command_timeout_ms,
                .connect_timeout_ms = d.connect_timeout_ms,
                .clock_drift_ppm = d.clock_drift_ppm,
                .priority = d.priority,
                .handover_interval_ms = d.handover_interval_ms,
            },
    };
}

/* ------------------------------------------------------------- durations */

int opts_duration(opts *o, const char *opt, const char *text, uint64_t max_ms, uint64_t *out)
{
    char q[OPTS_QUOTE_SIZE];
    const char *p = text;
    uint64_t whole = 0;
    bool big = false;
    if (*p < '0' || *p > '9')
        goto not_a_duration;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (whole > max_ms)
            big = true; /* stop counting: too large whatever the unit */
        else
            whole = whole * 10 + (uint64_t)(*p - '0');
    }
    /* The fraction, trailing zeros left out: more than 7 digits (1h is
     * 3600000ms) cannot make a whole number of milliseconds. */
    uint64_t frac = 0, scale = 1;
    bool fine = false;
    if (*p == '.') {
        const char *first = ++p;
        if (*p < '0' || *p > '9')
            goto not_a_duration;
        while (*p >= '0' && *p <= '9')
            p++;
        const char *last = p;
        while (last > first && last[-1] == '0')
            last--;
        fine = last - first > 7;
        for (const char *d = first; d < last && !fine; d++)
            frac = frac * 10 + (uint64_t)(*d - '0'), scale *= 10;
    }
    uint64_t unit;
    if (strcmp(p, "ms") == 0)
        unit = 1;
    else if (strcmp(p, "s") == 0)
        unit = 1000;
    else if (strcmp(p, "m") == 0)
        unit = 60000;
    else if (strcmp(p, "h") == 0)
        unit = 3600000;
    else if (*p == '\0')
        return opts_error(o, "%s: %s needs a unit: ms, s, m or h (like %sms or %ss)", opt,
                          opts_quote(q, text), text, text);
    else
        goto not_a_duration;
    if (big || whole * unit > max_ms)
        return opts_error(o, "%s: %s is too large (at most %" PRIu64 "ms)", opt, text, max_ms);
    if (fine || (frac * unit) % scale != 0)
        return opts_error(o, "%s: %s is not a whole number of milliseconds", opt, text);
    uint64_t ms = whole * unit + frac * unit / scale;
    if (ms > max_ms)
        return opts_error(o, "%s: %s is too large (at most %" PRIu64 "ms)", opt, text, max_ms);
    *out = ms;
    return 0;

not_a_duration:
    return opts_error(o,
                      "%s: %s is not a duration: digits, an optional fraction and a unit "
                      "(500ms, 2s, 1.5s, 1m, 1h)",
                      opt, opts_quote(q, text));
}

int opts_milliseconds(opts *o, const char *opt, const char *text, uint64_t max_ms, uint64_t *out)
{
    char q[OPTS_QUOTE_SIZE];
    uint64_t v = 0;
    const char *p = text;
    if (*p < '0' || *p > '9')
        return opts_error(o, "%s: %s is not a number of milliseconds", opt, opts_quote(q, text));
    for (; *p >= '0' && *p <= '9'; p++)
        if (v <= max_ms)
            v = v * 10 + (uint64_t)(*p - '0');
    if (*p)
        return opts_error(o, "%s: %s is not a number of milliseconds", opt, opts_quote(q, text));
    if (v > max_ms)
        return opts_error(o, "%s: %s is too large (at most %" PRIu64 ")", opt, text, max_ms);
    *out = v;
    return 0;
}

/* A timing for a uint32_t field: a duration (or plain milliseconds when
 * ms_alias), more than 0. */
static int timing(opts *o, const char *opt, const char *text, bool ms_alias, uint32_t *out)
{
    uint64_t ms;
    int rc = ms_alias ? opts_milliseconds(o, opt, text, UINT32_MAX, &ms)
                      : opts_duration(o, opt, text, UINT32_MAX, &ms);
    if (rc != 0)
        return rc;
    if (ms == 0)
        return opts_error(o, "%s: must be more than 0%s", opt, ms_alias ? "" : "ms");
    *out = (uint32_t)ms;
    return 0;
}

/* ------------------------------------------------------------ the rest */

int opts_check_identity(opts *o, const char *opt, const char *id)
{
    char q[OPTS_QUOTE_SIZE];
    size_t n = strlen(id);
    if (n == 0)
        return opts_error(o, "%s: the identity is empty", opt);
    if (n > OPTS_IDENTITY_MAX)
        return opts_error(o, "%s: the identity is %zu bytes long: at most %d", opt, n,
                          OPTS_IDENTITY_MAX);
    for (const char *p = id; *p; p++)
        if ((unsigned char)*p <= ' ' || (unsigned char)*p == 0x7f)
            return opts_error(o, "%s: %s holds a space or control character (byte 0x%02x)", opt,
                              opts_quote(q, id), (unsigned char)*p);
    return 0;
}

/* Sets the log level from option opt; two logging options conflict. */
static int log_level(opts *o, const char *opt, leasehold_log_level level)
{
    if (o->log_opt)
        return opts_error(o, "%s and %s both set the log level: give one", o->log_opt, opt);
    o->log_opt = opt;
    o->log_level = level;
    return 0;
}

/* The long name of shared option id, as "--name", for messages. */
static const char *name_of(int id)
{
    switch (id) {
    case OPTS_URL:
        return "--url";
    case OPTS_KEY:
        return "--key";
    case OPTS_REGION:
        return "--region";
    case OPTS_ID:
        return "--id";
    case OPTS_QUIET:
        return "--quiet";
    case OPTS_VERBOSE:
        return "--verbose";
    case OPTS_LOG_LEVEL:
        return "--log-level";
    case OPTS_LOG_FORMAT:
        return "--log-format";
    case OPTS_LEASE:
        return "--lease";
    case OPTS_RENEW:
        return "--renew";
    case OPTS_RETRY:
        return "--retry";
    case OPTS_RENEW_DEADLINE:
        return "--renew-deadline";
    case OPTS_COMMAND_TIMEOUT:
        return "--command-timeout";
    case OPTS_CONNECT_TIMEOUT:
        return "--connect-timeout";
    case OPTS_CLOCK_DRIFT:
        return "--clock-drift-ppm";
    case OPTS_PRIORITY:
        return "--priority";
    case OPTS_HANDOVER_INTERVAL:
        return "--handover-interval";
    case OPTS_LEASE_MS:
        return "--lease-ms";
    case OPTS_RENEW_MS:
        return "--renew-ms";
    case OPTS_RETRY_MS:
        return "--retry-ms";
    case OPTS_RENEW_DEADLINE_MS:
        return "--renew-deadline-ms";
    case OPTS_COMMAND_TIMEOUT_MS:
        return "--command-timeout-ms";
    case OPTS_CONNECT_TIMEOUT_MS:
        return "--connect-timeout-ms";
    case OPTS_URL_FILE:
        return "--url-file";
    case OPTS_PASSWORD_FILE:
        return "--password-file";
    case OPTS_TLS_CA_FILE:
        return "--tls-ca-file";
    case OPTS_TLS_CA_DIR:
        return "--tls-ca-dir";
    case OPTS_TLS_CERT_FILE:
        return "--tls-cert-file";
    case OPTS_TLS_KEY_FILE:
        return "--tls-key-file";
    case OPTS_TLS_SERVER_NAME:
        return "--tls-server-name";
    case OPTS_TLS_INSECURE:
        return "--tls-insecure";
    case OPTS_SENTINEL_USER:
        return "--sentinel-user";
    case OPTS_SENTINEL_PASSWORD_FILE:
        return "--sentinel-password-file";
    case OPTS_MIN_REPLICAS:
        return "--min-replicas";
    }
    return NULL;
}

int opts_apply(opts *o, int id, const char *arg)
{
    opts_timing *t = &o->t;
    const char *opt = name_of(id);
    if (!opt)
        return 1;
    uint64_t ppm;
    switch (id) {
    case OPTS_URL:
        if (!arg[0])
            return opts_error(o, "%s: the URL is empty", opt);
        if (strcmp(o->url_source, "--url-file") == 0)
            return opts_error(o, "--url and --url-file both give the URL: give one");
        o->url = arg;
        o->url_source = "--url";
        return 0;
    case OPTS_KEY:
        o->key_arg = arg;
        return 0;
    case OPTS_REGION:
        o->region_arg = arg;
        return 0;
    case OPTS_ID:
        o->identity = arg;
        return opts_check_identity(o, opt, arg);
    case OPTS_QUIET:
        return log_level(o, opt, LEASEHOLD_LOG_WARN);
    case OPTS_VERBOSE:
        return log_level(o, opt, LEASEHOLD_LOG_DEBUG);
    case OPTS_LOG_LEVEL: {
        static const char *const names[] = {"error", "warn", "info", "debug"};
        for (int i = 0; i < 4; i++)
            if (strcmp(arg, names[i]) == 0)
                return log_level(o, opt, (leasehold_log_level)i);
        char q[OPTS_QUOTE_SIZE];
        return opts_error(o, "%s: %s is not one of error, warn, info, debug", opt,
                          opts_quote(q, arg));
    }
    case OPTS_LOG_FORMAT:
        if (strcmp(arg, "text") == 0 || strcmp(arg, "json") == 0) {
            o->log_json = arg[0] == 'j';
            return 0;
        } else {
            char q[OPTS_QUOTE_SIZE];
            return opts_error(o, "%s: %s is not text or json", opt, opts_quote(q, arg));
        }
    case OPTS_LEASE:
    case OPTS_LEASE_MS:
        t->lease_opt = opt, t->lease_text = arg;
        return timing(o, opt, arg, id == OPTS_LEASE_MS, &t->lease_ms);
    case OPTS_RENEW:
    case OPTS_RENEW_MS:
        t->renew_opt = opt, t->renew_text = arg;
        return timing(o, opt, arg, id == OPTS_RENEW_MS, &t->renew_ms);
    case OPTS_RETRY:
    case OPTS_RETRY_MS:
        t->retry_opt = opt, t->retry_text = arg;
        return timing(o, opt, arg, id == OPTS_RETRY_MS, &t->retry_ms);
    case OPTS_RENEW_DEADLINE:
    case OPTS_RENEW_DEADLINE_MS:
        t->deadline_opt = opt, t->deadline_text = arg;
        return timing(o, opt, arg, id == OPTS_RENEW_DEADLINE_MS, &t->renew_deadline_ms);
    case OPTS_COMMAND_TIMEOUT:
    case OPTS_COMMAND_TIMEOUT_MS:
        t->timeout_opt = opt, t->timeout_text = arg;
        return timing(o, opt, arg, id == OPTS_COMMAND_TIMEOUT_MS, &t->command_timeout_ms);
    case OPTS_CONNECT_TIMEOUT:
    case OPTS_CONNECT_TIMEOUT_MS:
        return timing(o, opt, arg, id == OPTS_CONNECT_TIMEOUT_MS, &t->connect_timeout_ms);
    case OPTS_CLOCK_DRIFT:
        ppm = 0;
        for (const char *d = arg; *d >= '0' && *d <= '9' && ppm <= 200000; d++)
            ppm = ppm * 10 + (uint64_t)(*d - '0');
        if (arg[0] < '0' || arg[0] > '9' || arg[strspn(arg, "0123456789")] != '\0' || ppm == 0 ||
            ppm > 200000) {
            char q[OPTS_QUOTE_SIZE];
            return opts_error(o,
                              "%s: %s is not a number of parts per million from 1 to 200000 "
                              "(10000 is 1%%)",
                              opt, opts_quote(q, arg));
        }
        t->drift_opt = opt;
        t->clock_drift_ppm = (uint32_t)ppm;
        return 0;
    case OPTS_PRIORITY:
        ppm = 0;
        for (const char *d = arg; *d >= '0' && *d <= '9' && ppm <= LEASEHOLD_PRIORITY_MAX; d++)
            ppm = ppm * 10 + (uint64_t)(*d - '0');
        if (arg[0] < '0' || arg[0] > '9' || arg[strspn(arg, "0123456789")] != '\0' ||
            ppm > LEASEHOLD_PRIORITY_MAX) {
            char q[OPTS_QUOTE_SIZE];
            return opts_error(o, "%s: %s is not a priority from 0 (standby) to %u", opt,
                              opts_quote(q, arg), LEASEHOLD_PRIORITY_MAX);
        }
        t->priority = (uint32_t)ppm;
        return 0;
    case OPTS_HANDOVER_INTERVAL: {
        uint64_t ms;
        if (opts_duration(o, opt, arg, UINT32_MAX, &ms) != 0)
            return OPTS_USAGE;
        if (ms == 0)
            return opts_error(o, "%s: must be more than 0ms", opt);
        t->handover_interval_ms = (uint32_t)ms;
        return 0;
    }
    default:
        return opts_conn_apply(o, id, opt, arg);
    }
}

/* ------------------------------------------------------------------ key */

/* Refuses a key part (from `source`, the option or variable) that is
 * empty or holds a control character. */
static int check_key_part(opts *o, const char *source, const char *what, const char *s)
{
    char q[OPTS_QUOTE_SIZE];
    if (!s[0])
        return opts_error(o, "%s: the %s is empty", source, what);
    const char *bad = control_char(s);
    if (bad)
        return opts_error(o,
                          "%s: %s holds a control character (byte 0x%02x at offset %zu): the "
                          "%s must be printable",
                          source, opts_quote(q, s), (unsigned char)*bad, (size_t)(bad - s), what);
    return 0;
}

int opts_finish_key(opts *o)
{
    if (o->key_arg && o->region_arg)
        return opts_error(o, "--key and --region both name the key: give one");
    if (o->key_arg) {
        if (check_key_part(o, "--key", "key", o->key_arg) != 0)
            return OPTS_USAGE;
        size_t n = strlen(o->key_arg);
        if (n >= OPTS_KEY_MAX)
            return opts_error(o, "--key: the key is %zu bytes long: at most %d", n,
                              OPTS_KEY_MAX - 1);
        memcpy(o->key, o->key_arg, n + 1);
        return 0;
    }
    const char *source = "--region", *region = o->region_arg;
    if (!region) {
        source = "SNAKETRON_REGION";
        region = getenv("SNAKETRON_REGION");
        if (region && !region[0])
            return opts_error(o, "SNAKETRON_REGION is set but empty: name a region, or unset it "
                                 "for the region " OPTS_DEFAULT_REGION);
    }
    if (!region)
        region = OPTS_DEFAULT_REGION;
    if (check_key_part(o, source, "region", region) != 0)
        return OPTS_USAGE;
    int n = snprintf(o->key, sizeof o->key, OPTS_KEY_PREFIX "%s", region);
    if (n < 0 || n >= OPTS_KEY_MAX)
        return opts_error(o,
                          "%s: the key " OPTS_KEY_PREFIX "<region> would be %d bytes long: at "
                          "most %d",
                          source, n, OPTS_KEY_MAX - 1);
    return 0;
}

/* --------------------------------------------------------------- timing */

/* The lease, the drift allowance and the margin, for the checks. */
typedef struct bounds {
    uint64_t lease, drift, margin, room; /* room = drift + max(margin, 1) */
} bounds;

static bounds bounds_of(uint32_t lease_ms, uint32_t drift_ppm, uint64_t margin_ms)
{
    bounds b = {.lease = lease_ms, .margin = margin_ms};
    b.drift = (uint64_t)lease_ms * drift_ppm / 1000000u + 2u;
    b.room = b.drift + (margin_ms > 0 ? margin_ms : 1u);
    return b;
}

/* The renew deadline needs 2 ms (a renew interval of 1 ms below it, a
 * command timeout of 1 ms within half of it) after the room. */
static bool lease_works(const bounds *b)
{
    return b->lease >= b->room + 2u;
}

uint32_t opts_min_lease_ms(uint32_t drift_ppm, uint64_t (*margin_ms)(uint32_t lease_ms))
{
    for (uint32_t lease = 1;; lease++) {
        bounds b = bounds_of(lease, drift_ppm, margin_ms ? margin_ms(lease) : 0);
        if (lease_works(&b))
            return lease;
    }
}

/* "--lease 200ms" as given, or "the default --lease 2000ms". */
static const char *lease_desc(char *out, size_t size, const opts_timing *t)
{
    if (t->lease_opt)
        snprintf(out, size, "%s %s", t->lease_opt, t->lease_text);
    else
        snprintf(out, size, "the default --lease %" PRIu32 "ms", t->lease_ms);
    return out;
}

/* The renew deadline as given, or derived and from what. */
static const char *deadline_desc(char *out, size_t size, const opts_timing *t, const bounds *b)
{
    char lease[128];
    lease_desc(lease, sizeof lease, t);
    if (t->deadline_opt)
        snprintf(out, size, "%s %s", t->deadline_opt, t->deadline_text);
    else if (t->deadline_lowered)
        snprintf(out, size,
                 "--renew-deadline %" PRIu32 "ms (derived: %s less %" PRIu64
                 "ms of clock drift allowance%s)",
                 t->renew_deadline_ms, lease, b->drift,
                 b->margin > 0 ? " and the kill margin" : "");
    else
        snprintf(out, size, "--renew-deadline %" PRIu32 "ms (derived: 75%% of %s)",
                 t->renew_deadline_ms, lease);
    return out;
}

int opts_finish_timing(opts *o, uint64_t (*margin_fn)(uint32_t lease_ms))
{
    opts_timing *t = &o->t;
    uint64_t margin_ms = margin_fn ? margin_fn(t->lease_ms) : 0;
    bounds b = bounds_of(t->lease_ms, t->clock_drift_ppm, margin_ms);
    char lease[128], deadline[384];
    lease_desc(lease, sizeof lease, t);

    if (!lease_works(&b)) {
        char drift[64] = "", margin[64] = "";
        if (t->drift_opt)
            snprintf(drift, sizeof drift, " (%s %" PRIu32 ")", t->drift_opt, t->clock_drift_ppm);
        if (margin_ms > 0)
            snprintf(margin, sizeof margin, " plus the %" PRIu64 "ms kill margin", margin_ms);
        return opts_error(o,
                          "%s is too short: it must hold a renew deadline of at least 2ms "
                          "plus %" PRIu64 "ms of clock drift allowance%s%s; the smallest lease "
                          "that works is %" PRIu32 "ms",
                          lease, b.drift, drift, margin,
                          opts_min_lease_ms(t->clock_drift_ppm, margin_fn));
    }
    uint64_t limit = b.lease - b.room; /* the longest renew deadline */

    if (t->deadline_opt) {
        if (t->renew_deadline_ms > limit)
            return opts_error(o,
                              "%s %s leaves too little of %s: at most %" PRIu64
                              "ms, the lease less %" PRIu64 "ms of clock drift allowance%s",
                              t->deadline_opt, t->deadline_text, lease, limit, b.drift,
                              margin_ms > 0 ? " and the margin to kill CMD before it ends"
                                            : ", exclusive");
        if (t->renew_deadline_ms < 2)
            return opts_error(o,
                              "%s %s is too short: at least 2ms (the renew interval must be "
                              "shorter)",
                              t->deadline_opt, t->deadline_text);
    } else {
        uint64_t d = b.lease * 3u / 4u;
        t->deadline_lowered = d > limit;
        t->renew_deadline_ms = (uint32_t)(d > limit ? limit : d);
    }
    deadline_desc(deadline, sizeof deadline, t, &b);

    if (t->renew_opt) {
        if ((uint64_t)t->renew_ms * 2u > b.lease)
            return opts_error(o, "%s %s is more than half of %s: at most %" PRIu64 "ms",
                              t->renew_opt, t->renew_text, lease, b.lease / 2u);
        if (t->renew_ms >= t->renew_deadline_ms)
            return opts_error(o, "%s %s must be shorter than %s", t->renew_opt, t->renew_text,
                              deadline);
    } else {
        uint64_t r = b.lease * 3u / 20u;
        if (r >= t->renew_deadline_ms)
            r = t->renew_deadline_ms - 1u;
        t->renew_ms = r > 0 ? (uint32_t)r : 1u;
    }

    if (!t->retry_opt)
        t->retry_ms = b.lease / 2u > 0 ? (uint32_t)(b.lease / 2u) : 1u;

    uint32_t timeout_max = t->renew_deadline_ms / 2u;
    if (t->timeout_opt) {
        if (t->command_timeout_ms > timeout_max)
            return opts_error(o, "%s %s is more than half of %s: at most %" PRIu32 "ms",
                              t->timeout_opt, t->timeout_text, deadline, timeout_max);
    } else if (t->command_timeout_ms > timeout_max) {
        t->command_timeout_ms = timeout_max;
        t->command_timeout_lowered = true;
    }
    return 0;
}
