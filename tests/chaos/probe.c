/*
 * chaos_probe — a candidate for the chaos test, on the public API only.
 *
 *     chaos_probe --url URL --key KEY --id ID [--lease-ms N --renew-ms N
 *                 --retry-ms N --renew-deadline-ms N --command-timeout-ms N]
 *                 [--no-restart-guard] [--min-replicas N] [--priority N] [--broken]
 *
 * Campaigns for KEY with identity ID and prints, one line each, flushed,
 * stamped with CLOCK_MONOTONIC nanoseconds:
 *
 *     elected <ns> <epoch> <id>    a term began
 *     revoked <ns> <reason>        it ended: "lost", "expired",
 *                                  "renew-deadline-passed", ... (one word)
 *     action <ns> <epoch> <id>     every ~10 ms while leader (see act())
 *     exit <ns>                    after SIGTERM, once the client is freed
 *
 *     chaos_probe --url URL --key KEY --keys N --id ID [...]
 *
 * --keys campaigns for N keys at once on one client, KEY:0 to KEY:N-1 (on a
 * Redis Cluster their slots spread over the masters), and starts each of
 * the lines above but `exit` with the key's number and a space ("3 action
 * ..."), so that a log can be split into one per key and each judged alone.
 *
 *     chaos_probe --actor --id ID [--linger-ms N]
 *
 * --actor makes the CMD of a `leasehold run` candidate: it takes its epoch
 * from LEASEHOLD_EPOCH, prints `elected` at once and then `action` lines
 * every ~10 ms for as long as it lives, never asking anyone whether it
 * still leads: only the CLI's signals end it.  SIGTERM is a graceful stop
 * that takes --linger-ms (default 3000, more than the chaos lease), acting
 * all along, before `exit` and status 0; so on a loss of leadership it acts
 * until the CLI SIGKILLs it, the worst a CMD may do.
 *
 * --priority N makes it a preferred leader of that priority (handover
 * interval 2 s); the chaos driver mixes priorities among its probes.
 *
 * A resign request naming its term (leasehold_request_resign) makes it
 * resign at once, and release: acting stops with leasehold_resign().
 *
 * --broken makes a probe that believes it leads forever once elected: it
 * prints action lines with its first epoch until killed, whatever
 * leasehold_is_leader() says, so that the checker can be shown to fail.
 * Library log lines (warnings and errors) go to stderr.
 */
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "leasehold.h"

#define ACTION_INTERVAL_NS 10000000L
#define MAX_KEYS           64

static volatile sig_atomic_t terminated;
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic uint64_t first_epoch; /* --broken: the epoch of the first term, 0 before */

/* Nanoseconds of CLOCK_MONOTONIC: the one clock every probe, the driver and
 * the checker share. */
static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Prints one whole line and flushes it, from any thread: a line is never
 * torn, so a probe killed at any instant leaves only whole lines. */
__attribute__((format(printf, 1, 2))) static void emit(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&out_lock);
    vprintf(fmt, ap);
    fflush(stdout);
    pthread_mutex_unlock(&out_lock);
    va_end(ap);
}

/* One campaign of this probe: its id, and with --keys the key's number
 * that starts its lines ("" otherwise). */
typedef struct campaign {
    const char *id;
    char prefix[16];
    leasehold_election *e;
} campaign;

static void on_elected(leasehold_election *e, uint64_t epoch, void *arg)
{
    (void)e;
    const campaign *k = arg;
    uint64_t none = 0;
    atomic_compare_exchange_strong(&first_epoch, &none, epoch);
    emit("%selected %" PRIu64 " %" PRIu64 " %s\n", k->prefix, now_ns(), epoch, k->id);
}

/* The reason is printed as one word ("renew-deadline-passed"), so that
 * every field of every line splits at spaces. */
static void on_revoked(leasehold_election *e, leasehold_reason reason, void *arg)
{
    (void)e;
    const campaign *k = arg;
    uint64_t ns = now_ns();
    char word[64];
    snprintf(word, sizeof word, "%s", leasehold_reason_name(reason));
    for (char *p = word; *p; p++)
        if (*p == ' ')
            *p = '-';
    emit("%srevoked %" PRIu64 " %s\n", k->prefix, ns, word);
}

/* A resign request named this term: act() stops as soon as
 * leasehold_resign() is called (is_leader() is false from then), so the
 * term is given up at once, and released. */
static void on_resign_requested(leasehold_election *e, uint64_t epoch, void *arg)
{
    (void)epoch, (void)arg;
    leasehold_resign(e);
}

static void on_log(leasehold_log_level level, const char *msg, void *arg)
{
    (void)level;
    fprintf(stderr, "chaos_probe %s: %s\n", (const char *)arg, msg);
}

static void on_term(int sig)
{
    (void)sig;
    terminated = 1;
}

/*
 * Prints one action line if, and only if, the lease certainly held at the
 * instant printed.
 *
 * The order is: read the epoch, check leasehold_is_leader(), take the stamp,
 * check leasehold_is_leader() again, read the epoch again, and print only
 * if both checks were true and both epochs are the same, non-zero one.
 * - The first check, made before the stamp, shows that the term had begun
 *   by the stamp.  Stamping first and checking after would not: a term that
 *   began between the stamp and the check would be credited with an instant
 *   at which it did not yet exist, possibly one inside its predecessor's.
 * - The second check, made after the stamp, shows that the term was still
 *   valid at the stamp: is_leader() is true only before valid_until, and a
 *   term's valid_until never moves backwards, so stamp <= now < valid_until.
 *   Checking only before the stamp would not: the thread may be descheduled
 *   (or the process stopped) between check and stamp for longer than the
 *   lease, and the stamp would then fall after valid_until.
 * - The equal epochs show both checks saw the same term (epochs strictly
 *   increase, so a term that ended and another that began between the reads
 *   cannot show the same epoch twice).
 * The argument rests on the order of the three readings in real time, not
 * on their clocks: is_leader() measures on CLOCK_BOOTTIME, the stamp is
 * CLOCK_MONOTONIC, and the two only part while the machine is suspended.
 * A line held up after the second check is printed late but stamped
 * truthfully; the checker sorts by stamp, not by order of arrival.
 */
static void act(const campaign *k)
{
    const leasehold_election *e = k->e;
    uint64_t epoch = leasehold_epoch(e);
    if (epoch == 0 || !leasehold_is_leader(e))
        return;
    uint64_t ns = now_ns();
    if (!leasehold_is_leader(e) || leasehold_epoch(e) != epoch)
        return;
    emit("%saction %" PRIu64 " %" PRIu64 " %s\n", k->prefix, ns, epoch, k->id);
}

/* --broken: once elected, acts for its first term forever. */
static void act_broken(const char *id)
{
    uint64_t epoch = atomic_load(&first_epoch);
    if (epoch != 0)
        emit("action %" PRIu64 " %" PRIu64 " %s\n", now_ns(), epoch, id);
}

/* The option values, validated. */
typedef struct probe_opts {
    const char *url, *key, *id;
    uint32_t lease_ms, renew_ms, retry_ms, renew_deadline_ms, command_timeout_ms;
    uint32_t linger_ms;
    int keys;         /* --keys; 0: just KEY */
    int min_replicas; /* -1: the library's default */
    int priority;     /* -1: the library's default */
    bool restart_guard, broken, actor;
} probe_opts;

/* Sleeps until the next 10 ms tick after *tick (absolute, CLOCK_MONOTONIC),
 * restarting the beat from now after a stop instead of catching up. */
static void next_tick(struct timespec *tick)
{
    tick->tv_nsec += ACTION_INTERVAL_NS;
    if (tick->tv_nsec >= 1000000000L) {
        tick->tv_sec++;
        tick->tv_nsec -= 1000000000L;
    }
    uint64_t tick_ns = (uint64_t)tick->tv_sec * 1000000000u + (uint64_t)tick->tv_nsec;
    if (tick_ns + ACTION_INTERVAL_NS < now_ns())
        clock_gettime(CLOCK_MONOTONIC, tick);
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, tick, NULL);
}

/* --actor: acts for LEASEHOLD_EPOCH until SIGTERM, then linger_ms more
 * (or until killed).  Returns the exit status. */
static int run_actor(const probe_opts *o)
{
    const char *s = getenv("LEASEHOLD_EPOCH");
    char *end;
    uint64_t epoch = s ? strtoull(s, &end, 10) : 0;
    if (!s || *end != '\0' || epoch == 0) {
        fprintf(stderr, "chaos_probe --actor: LEASEHOLD_EPOCH is '%s', not an epoch\n",
                s ? s : "(unset)");
        return 1;
    }
    emit("elected %" PRIu64 " %" PRIu64 " %s\n", now_ns(), epoch, o->id);
    struct timespec tick;
    clock_gettime(CLOCK_MONOTONIC, &tick);
    uint64_t stop_at = UINT64_MAX;
    for (;;) {
        uint64_t ns = now_ns();
        if (terminated && stop_at == UINT64_MAX)
            stop_at = ns + (uint64_t)o->linger_ms * 1000000u;
        if (ns >= stop_at)
            break;
        emit("action %" PRIu64 " %" PRIu64 " %s\n", ns, epoch, o->id);
        next_tick(&tick);
    }
    emit("exit %" PRIu64 "\n", now_ns());
    return 0;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: chaos_probe --url URL --key KEY [--keys N] --id ID [--lease-ms N "
            "--renew-ms N --retry-ms N --renew-deadline-ms N --command-timeout-ms N] "
            "[--no-restart-guard] [--min-replicas N] [--priority N] [--broken]\n"
            "       chaos_probe --actor --id ID [--linger-ms N]   (the CMD of leasehold run)\n");
}

/* Parses a millisecond count in [1, 3600000] into *out; false with a message
 * naming the option otherwise. */
static bool parse_ms(const char *name, const char *s, uint32_t *out)
{
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (end == s || *end != '\0' || s[0] == '-' || v < 1 || v > 3600000) {
        fprintf(stderr, "chaos_probe: --%s wants milliseconds from 1 to 3600000, not '%s'\n", name,
                s);
        return false;
    }
    *out = (uint32_t)v;
    return true;
}

/* Reads argv into o (timings left at 0 mean the library's default).
 * Returns false, having said why, on anything it does not understand. */
static bool parse_args(int argc, char **argv, probe_opts *o)
{
    static const struct option longopts[] = {
        {"url", required_argument, NULL, 'u'},
        {"key", required_argument, NULL, 'k'},
        {"id", required_argument, NULL, 'i'},
        {"lease-ms", required_argument, NULL, 'l'},
        {"renew-ms", required_argument, NULL, 'r'},
        {"retry-ms", required_argument, NULL, 't'},
        {"renew-deadline-ms", required_argument, NULL, 'd'},
        {"command-timeout-ms", required_argument, NULL, 'c'},
        {"no-restart-guard", no_argument, NULL, 'g'},
        {"broken", no_argument, NULL, 'b'},
        {"actor", no_argument, NULL, 'a'},
        {"linger-ms", required_argument, NULL, 'L'},
        {"min-replicas", required_argument, NULL, 'm'},
        {"keys", required_argument, NULL, 'K'},
        {"priority", required_argument, NULL, 'p'},
        {NULL, 0, NULL, 0},
    };
    *o = (probe_opts){.restart_guard = true, .linger_ms = 3000, .min_replicas = -1, .priority = -1};
    int ch;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        bool ok = true;
        switch (ch) {
        case 'u':
            o->url = optarg;
            break;
        case 'k':
            o->key = optarg;
            break;
        case 'i':
            o->id = optarg;
            break;
        case 'l':
            ok = parse_ms("lease-ms", optarg, &o->lease_ms);
            break;
        case 'r':
            ok = parse_ms("renew-ms", optarg, &o->renew_ms);
            break;
        case 't':
            ok = parse_ms("retry-ms", optarg, &o->retry_ms);
            break;
        case 'd':
            ok = parse_ms("renew-deadline-ms", optarg, &o->renew_deadline_ms);
            break;
        case 'c':
            ok = parse_ms("command-timeout-ms", optarg, &o->command_timeout_ms);
            break;
        case 'g':
            o->restart_guard = false;
            break;
        case 'b':
            o->broken = true;
            break;
        case 'a':
            o->actor = true;
            break;
        case 'L':
            ok = parse_ms("linger-ms", optarg, &o->linger_ms);
            break;
        case 'K': {
            char *end;
            long v = strtol(optarg, &end, 10);
            ok = end != optarg && *end == '\0' && v >= 1 && v <= MAX_KEYS;
            if (!ok)
                fprintf(stderr, "chaos_probe: --keys wants 1 to %d, not '%s'\n", MAX_KEYS, optarg);
            o->keys = (int)v;
            break;
        }
        case 'p': {
            char *end;
            long v = strtol(optarg, &end, 10);
            ok = end != optarg && *end == '\0' && v >= 0 && v <= LEASEHOLD_PRIORITY_MAX;
            if (!ok)
                fprintf(stderr, "chaos_probe: --priority wants 0 to %d, not '%s'\n",
                        LEASEHOLD_PRIORITY_MAX, optarg);
            o->priority = (int)v;
            break;
        }
        case 'm': {
            char *end;
            long v = strtol(optarg, &end, 10);
            ok = end != optarg && *end == '\0' && v >= 0 && v <= 100;
            if (!ok)
                fprintf(stderr, "chaos_probe: --min-replicas wants 0 to 100, not '%s'\n", optarg);
            o->min_replicas = (int)v;
            break;
        }
        default:
            ok = false;
        }
        if (!ok) {
            usage();
            return false;
        }
    }
    if (optind != argc || (!o->actor && (!o->url || !o->key)) || !o->id || !o->id[0] ||
        strchr(o->id, ' ')) {
        fprintf(stderr, "chaos_probe: --url, --key and --id (one word) are required\n");
        usage();
        return false;
    }
    return true;
}

/* The client configuration the options ask for; unset timings keep the
 * library's defaults.  Connecting lazily lets a probe restarted while Redis
 * is down or cut off start anyway and campaign once it can. */
static void configure(const probe_opts *o, leasehold_config *cfg)
{
    leasehold_config_init(cfg);
    cfg->url = o->url;
    cfg->identity = o->id;
    cfg->lazy_connect = true;
    cfg->restart_guard = o->restart_guard;
    cfg->min_replicas = o->min_replicas;
    if (o->priority >= 0) {
        cfg->priority = (uint32_t)o->priority;
        cfg->handover_interval_ms = 2000;
    }
    if (o->lease_ms)
        cfg->lease_ms = o->lease_ms;
    if (o->renew_ms)
        cfg->renew_interval_ms = o->renew_ms;
    if (o->retry_ms)
        cfg->retry_interval_ms = o->retry_ms;
    if (o->renew_deadline_ms)
        cfg->renew_deadline_ms = o->renew_deadline_ms;
    if (o->command_timeout_ms)
        cfg->command_timeout_ms = o->command_timeout_ms;
    cfg->log = on_log;
    cfg->log_arg = (void *)o->id;
    cfg->log_level = LEASEHOLD_LOG_WARN;
}

int main(int argc, char **argv)
{
    probe_opts o;
    if (!parse_args(argc, argv, &o))
        return 2;
    struct sigaction sa = {.sa_handler = on_term};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    if (o.actor)
        return run_actor(&o);

    leasehold_config cfg;
    configure(&o, &cfg);
    leasehold_error err;
    leasehold_client *c = leasehold_client_new(&cfg, &err);
    if (!c) {
        fprintf(stderr, "chaos_probe %s: %s\n", o.id, err.msg);
        return 1;
    }
    const leasehold_callbacks cb = {
        .elected = on_elected, .revoked = on_revoked, .resign_requested = on_resign_requested};
    static campaign campaigns[MAX_KEYS];
    static char names[MAX_KEYS][300];
    int n = o.keys ? o.keys : 1;
    for (int j = 0; j < n; j++) {
        campaign *k = &campaigns[j];
        k->id = o.id;
        const char *key = o.key;
        if (o.keys) {
            snprintf(k->prefix, sizeof k->prefix, "%d ", j);
            snprintf(names[j], sizeof names[j], "%s:%d", o.key, j);
            key = names[j];
        }
        k->e = leasehold_campaign(c, key, &cb, k, &err);
        if (!k->e) {
            fprintf(stderr, "chaos_probe %s: campaign for %s: %s\n", o.id, key, err.msg);
            leasehold_client_free(c);
            return 1;
        }
    }
    /* Action lines on a fixed 10 ms beat (absolute ticks, so the pace does
     * not drift with the time each line takes); after a stop (SIGSTOP) the
     * beat restarts from now instead of catching up in a burst. */
    struct timespec tick;
    clock_gettime(CLOCK_MONOTONIC, &tick);
    while (!terminated) {
        if (o.broken)
            act_broken(o.id);
        else
            for (int j = 0; j < n; j++)
                act(&campaigns[j]);
        next_tick(&tick);
    }
    leasehold_client_free(c);
    emit("exit %" PRIu64 "\n", now_ns());
    return 0;
}
