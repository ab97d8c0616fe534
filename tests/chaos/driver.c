/*
 * chaos_driver — runs a seeded schedule of faults against N election
 * candidates and has chaos_check judge what they printed.
 *
 *     chaos_driver [--seconds N] [--seed N] [--probes N] [--out DIR]
 *                  [--lease-ms N] [--renew-ms N] [--retry-ms N]
 *                  [--renew-deadline-ms N] [--command-timeout-ms N]
 *                  [--no-restart-guard] [--faults TYPE,TYPE...]
 *                  [--clock-step-bound-ms N] [--tls]
 *
 * With --tls every probe speaks rediss:// to Redis's TLS port (certificates
 * made with openssl in DIR, verified against their CA): the proxies pass
 * TLS bytes through, and every fault hits TLS connections.
 *
 * It starts one redis-server (appendonly, fsync always) with the clockshift
 * shim preloaded (its wall clock offset 0 until a clock step), one
 * chaos_proxy per candidate and N candidates, each reaching Redis through
 * its own proxy and printing to DIR/probe-<id>.log: N-1 chaos_probe
 * processes, and, as candidate N, `leasehold run ... -- chaos_probe --actor`
 * (the CLI, whose CMD acts until the CLI kills it; --no-restart-guard does
 * not reach it).  Then, until the time is up, it
 * picks a fault, logs it to DIR/faults.log, holds it, heals it, logs the heal
 * and lets the election settle for lease + retry + 1 s before the next.  The
 * faults aimed at "the leader" hit the probe whose log last said it acts.  At
 * the end it stops everything, writes `end`, runs chaos_check on the logs,
 * and exits with its status (1 also if a probe died on its own or the run
 * could not go on).  Without --out, DIR is a fresh temporary directory,
 * removed when the check passes.
 *
 * The two Redis restarts (from the append-only file, and empty) cut the
 * leader's link (its proxy blackholed) across the restart and for a lease
 * after it, so the leader does not learn of the restart from a reset
 * connection: then only the restart guard, or the data kept, stands between
 * a follower's claim on the new Redis and the old leader's lease.  Run with
 * --no-restart-guard, the empty restart shows the overlap.
 *
 * The three faults of issue 8:
 * - clock-step: Redis's wall clock steps forward 2-10 s while a leader
 *   leads (the lease key expires early; every second time the CLI
 *   candidate, steered to lead as below), held for lease + retry + 1 s, and
 *   steps back as much at the heal (a backward step, which must be
 *   harmless).  A forward step shortens every TTL at once, so an overlap
 *   after it cannot be zero in a TTL design: chaos_check tolerates overlaps
 *   up to --clock-step-bound-ms (default renew + command timeout + 100 ms)
 *   for terms that begin between this fault and its heal, and zero
 *   everywhere else.
 * - restart-keep: every proxy keeps its candidates' connections across
 *   Redis's end (`keep on`), Redis is restarted empty with the leader cut
 *   off as in restart-empty; the followers' connections never break, so no
 *   reconnect tells them of the restart.
 * - guardian-kill: the CLI candidate is made leader (if another leads, every
 *   other candidate's proxy is blackholed until it does: logged as a
 *   `steer` fault), then its `leasehold run` is SIGSTOPped, its guardian (a
 *   child of that pid with the same executable, found in
 *   /proc/<pid>/task/<tid>/children) SIGKILLed, held past the lease, and
 *   SIGCONTed; the CLI candidate is then restarted, so that later faults
 *   meet a whole one.
 *
 * The seed fixes the faults, their order and their durations; which probe a
 * fault hits depends on who leads then, which the timing decides.  The
 * schedule deals the fault types (all thirteen, or those --faults names) from
 * a shuffled deck, so every type comes up once in each round; the first
 * round is always dealt whole, however short --seconds is, and the run fails
 * if a type was dealt but never injected (skipped each time for want of a
 * leader).
 *
 * Every process started here is a registered child of the test support
 * (tests/support/redis_server.c): stopped by its pid on the way out, killed
 * by its atexit hook on any other exit, and by PR_SET_PDEATHSIG if the driver
 * itself dies.  SIGINT and SIGTERM only set a flag; the current fault is
 * healed and everything is torn down in order.  chaos_proxy, chaos_probe and
 * chaos_check are taken from the driver's own directory.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clockshift.h"
#include "netns.h"
#include "redis_server.h"
#include "schedule.h"
#include "sentinels.h"
#include "testutil.h"
#include "tls_certs.h"

#define MAX_PROBES            16
#define PROBE_KEY             "chaos:leader"
#define LINE_MAX_LEN          512
#define ACTING_FRESH_NS       500000000ull /* an `action` line this recent means "acts now" */
#define GRACEFUL_EXIT_MS      10000u       /* a probe's SIGTERM exit, service stop included */
#define PROXY_ANSWER_MS       2000u
#define CHECK_MAX_MS          120000u
#define TCP_ESTABLISHED_STATE 1u /* the "st" column of /proc/net/tcp */
#define SENTINEL_SETTLE_MS    "10000"

typedef enum fault_type {
    FAULT_KILL,
    FAULT_STOP,
    FAULT_REDIS_STOP,
    FAULT_BLACKHOLE,
    FAULT_LATENCY,
    FAULT_RESTART_AOF,
    FAULT_RESTART_EMPTY,
    FAULT_CLIENT_KILL,
    FAULT_TERM,
    FAULT_CLOCK_STEP,
    FAULT_RESTART_KEEP,
    FAULT_GUARDIAN_KILL,
    FAULT_RESIGN,
    /* --sentinel only: */
    FAULT_FAILOVER,
    FAULT_MASTER_KILL,
    FAULT_MASTER_STOP,
    FAULT_PARTITION,
    FAULT_LEADER_CUT,
    FAULT_REPLICA_SPLIT, /* never dealt unless --faults names it */
    FAULT_COUNT
} fault_type;

/* The first of the --sentinel topology's own faults. */
#define FAULT_SENTINEL_FIRST FAULT_FAILOVER

/* The names the fault log, --faults and chaos_check use. */
static const char *const fault_names[FAULT_COUNT] = {
    "kill",         "stop",          "redis-stop",  "blackhole",     "latency",
    "restart-aof",  "restart-empty", "client-kill", "term",          "clock-step",
    "restart-keep", "guardian-kill", "resign",      "failover",      "master-kill",
    "master-stop",  "partition",     "leader-cut",  "replica-split",
};

typedef struct options {
    unsigned seconds;
    uint64_t seed;
    int probes;
    const char *out; /* NULL: a fresh temporary directory, removed if the check passes */
    uint32_t lease_ms, renew_ms, retry_ms, renew_deadline_ms, command_timeout_ms;
    uint32_t clock_step_bound_ms; /* 0: renew + command timeout + 100 */
    bool restart_guard;
    bool tls;                   /* rediss:// to Redis's TLS port */
    bool sentinel;              /* the Sentinel topology, each node in a namespace */
    int min_replicas;           /* --min-replicas; -1: the library's default */
    bool fault_on[FAULT_COUNT]; /* the deck: --faults, or every type of the topology */
} options;

/* One fault as the schedule drew it. */
typedef struct fault_plan {
    fault_type type;
    uint32_t hold_ms;    /* how long the fault lasts before it is healed */
    uint32_t latency_ms; /* FAULT_LATENCY: the delay added to every chunk */
    uint32_t cut_ms;     /* Redis restarts: the leader stays cut off this long after */
    uint32_t step_ms;    /* FAULT_CLOCK_STEP: how far Redis's clock steps forward */
    bool stale;          /* FAULT_RESIGN: the request names the term before the leader's */
} fault_plan;

/* A chaos_proxy: its stdin takes commands, its stdout answers. */
typedef struct proxy {
    pid_t pid;
    int port;
    int cmd_fd, answer_fd;
    char buf[LINE_MAX_LEN];
    size_t len;
} proxy;

/* A chaos_probe and what its log says so far. */
typedef struct probe {
    int id;
    bool cli;     /* `leasehold run -- chaos_probe --actor`, not a chaos_probe */
    pid_t pid;    /* 0 while it is down */
    bool stopped; /* SIGSTOPped by us */
    int log_fd;   /* reads DIR/probe-<id>.log as it grows */
    char pending[LINE_MAX_LEN];
    size_t pending_len;
    bool acting; /* its latest line is `elected` or `action` */
    uint64_t epoch, last_ns;
} probe;

typedef struct chaos {
    options opt;
    char dir[PATH_MAX];
    char bindir[PATH_MAX];
    redis_server *redis;
    tls_certs certs; /* --tls: in dir */
    proxy proxies[MAX_PROBES];
    probe probes[MAX_PROBES];
    int fault_fd;
    uint64_t rng;
    int deck[FAULT_COUNT];
    int deck_size, deck_left;
    unsigned rounds; /* how many times the deck was shuffled */
    uint64_t start_ns;
    int64_t *clock_shift; /* the shim's offset file, mapped; Redis's wall clock offset */
    char clock_shift_path[PATH_MAX + 32];
    unsigned dealt[FAULT_COUNT], injected[FAULT_COUNT], skipped[FAULT_COUNT];
    unsigned unexpected_exits;
    bool broken; /* something the run needs failed: stop the schedule, fail the run */
    /* --sentinel: the private network (nodes: the data nodes, the Sentinels,
     * then the probes) and the topology on it */
    chaos_net net;
    sentinels *topo;
} chaos;

/* --sentinel: the nodes of the private network. */
#define NODE_DATA(i)  (i)
#define NODE_SEN(i)   (3 + (i))
#define NODE_PROBE(p) (6 + (p)->id - 1)

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: chaos_driver [--seconds N] [--seed N] [--probes N (>=5)] [--out DIR]\n"
               "                    [--lease-ms N] [--renew-ms N] [--retry-ms N]\n"
               "                    [--renew-deadline-ms N] [--command-timeout-ms N]\n"
               "                    [--no-restart-guard] [--faults TYPE,TYPE...]\n"
               "                    [--clock-step-bound-ms N] [--tls]\n"
               "                    [--sentinel [--min-replicas N]]\n"
               "fault types: kill stop redis-stop blackhole latency restart-aof restart-empty\n"
               "             client-kill term clock-step restart-keep guardian-kill\n"
               "  --sentinel: kill stop term failover master-kill master-stop partition\n"
               "             leader-cut (and replica-split, only when named)\n");
}

/* Fills on[] from a comma-separated list of fault names; false (printed)
 * on an unknown or empty name. */
static bool parse_faults(const char *list, bool on[FAULT_COUNT])
{
    memset(on, 0, FAULT_COUNT * sizeof *on);
    const char *p = list;
    for (;;) {
        size_t len = strcspn(p, ",");
        int t = 0;
        while (t < FAULT_COUNT &&
               !(strlen(fault_names[t]) == len && strncmp(p, fault_names[t], len) == 0))
            t++;
        if (t == FAULT_COUNT) {
            fprintf(stderr, "chaos_driver: --faults: '%.*s' is not a fault type\n", (int)len, p);
            usage(stderr);
            return false;
        }
        on[t] = true;
        if (p[len] == '\0')
            return true;
        p += len + 1;
    }
}

/* Parses a whole decimal number in [min, max] into *out; false if it is not. */
static bool parse_number(const char *name, const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = s ? strtoull(s, &end, 10) : 0;
    if (!s || errno || end == s || *end || s[0] == '-' || v < min || v > max) {
        fprintf(stderr,
                "chaos_driver: %s wants a number from %" PRIu64 " to %" PRIu64 ", not '%s'\n", name,
                min, max, s ? s : "(nothing)");
        return false;
    }
    *out = v;
    return true;
}

/* Fills o from argv; the timing defaults are the library's. */
static bool parse_options(int argc, char **argv, options *o)
{
    *o = (options){.seconds = 90,
                   .seed = 1,
                   .probes = 5,
                   .lease_ms = 2000,
                   .renew_ms = 300,
                   .retry_ms = 1000,
                   .renew_deadline_ms = 1500,
                   .command_timeout_ms = 250,
                   .restart_guard = true,
                   .min_replicas = -1};
    bool faults_given = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        uint64_t n;
        if (strcmp(a, "--no-restart-guard") == 0) {
            o->restart_guard = false;
            continue;
        }
        if (strcmp(a, "--tls") == 0) {
            o->tls = true;
            continue;
        }
        if (strcmp(a, "--sentinel") == 0) {
            o->sentinel = true;
            continue;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            exit(0);
        }
        if (strcmp(a, "--out") == 0) {
            if (!v) {
                fprintf(stderr, "chaos_driver: --out wants a directory\n");
                return false;
            }
            o->out = v;
        } else if (strcmp(a, "--faults") == 0) {
            if (!v || !parse_faults(v, o->fault_on)) {
                if (!v)
                    fprintf(stderr, "chaos_driver: --faults wants a list of fault types\n");
                return false;
            }
            faults_given = true;
        } else if (strcmp(a, "--min-replicas") == 0) {
            if (!parse_number(a, v, 0, 2, &n))
                return false;
            o->min_replicas = (int)n;
        } else if (strcmp(a, "--seconds") == 0) {
            if (!parse_number(a, v, 1, 86400, &n))
                return false;
            o->seconds = (unsigned)n;
        } else if (strcmp(a, "--seed") == 0) {
            if (!parse_number(a, v, 0, UINT64_MAX, &n))
                return false;
            o->seed = n;
        } else if (strcmp(a, "--probes") == 0) {
            if (!parse_number(a, v, 5, MAX_PROBES, &n))
                return false;
            o->probes = (int)n;
        } else {
            uint32_t *t = strcmp(a, "--lease-ms") == 0              ? &o->lease_ms
                          : strcmp(a, "--renew-ms") == 0            ? &o->renew_ms
                          : strcmp(a, "--retry-ms") == 0            ? &o->retry_ms
                          : strcmp(a, "--renew-deadline-ms") == 0   ? &o->renew_deadline_ms
                          : strcmp(a, "--command-timeout-ms") == 0  ? &o->command_timeout_ms
                          : strcmp(a, "--clock-step-bound-ms") == 0 ? &o->clock_step_bound_ms
                                                                    : NULL;
            if (!t) {
                fprintf(stderr, "chaos_driver: unknown option '%s'\n", a);
                usage(stderr);
                return false;
            }
            if (!parse_number(a, v, 1, 600000, &n))
                return false;
            *t = (uint32_t)n;
        }
        i++;
    }
    /* Each topology has its own faults: a Sentinel topology has no proxies
     * and no single Redis, the plain one no Sentinels. */
    for (int t = 0; t < FAULT_COUNT; t++) {
        bool sentinel_only = t >= FAULT_SENTINEL_FIRST;
        bool both = t == FAULT_KILL || t == FAULT_STOP || t == FAULT_TERM;
        bool fits = both || sentinel_only == o->sentinel;
        if (faults_given && o->fault_on[t] && !fits) {
            fprintf(stderr, "chaos_driver: fault type %s is not for the %s topology\n",
                    fault_names[t], o->sentinel ? "--sentinel" : "single-Redis");
            return false;
        }
        if (!faults_given)
            o->fault_on[t] = fits && t != FAULT_REPLICA_SPLIT;
    }
    if ((o->tls || !o->restart_guard) && o->sentinel) {
        fprintf(stderr, "chaos_driver: --sentinel goes without --tls and --no-restart-guard\n");
        return false;
    }
    if (o->min_replicas >= 0 && !o->sentinel) {
        fprintf(stderr, "chaos_driver: --min-replicas needs --sentinel\n");
        return false;
    }
    return true;
}

/* ------------------------------------------------------------ the logs */

/* Appends "<kind> <ns> <what>" to the fault log, ns of CLOCK_MONOTONIC. */
__attribute__((format(printf, 3, 4))) static void log_line(chaos *c, const char *kind,
                                                           const char *fmt, ...)
{
    char what[LINE_MAX_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    dprintf(c->fault_fd, "%s %" PRIu64 "%s%s\n", kind, chaos_now_ns(), what[0] ? " " : "", what);
}

/* Applies one complete line of a probe's log to what we know of it. */
static void probe_apply_line(probe *p, const char *line)
{
    char kind[16];
    uint64_t ns, epoch;
    if (sscanf(line, "%15s %" SCNu64, kind, &ns) != 2)
        return;
    if (strcmp(kind, "elected") == 0 || strcmp(kind, "action") == 0) {
        if (sscanf(line, "%*s %*s %" SCNu64, &epoch) != 1)
            return;
        p->acting = true;
        p->epoch = epoch;
        p->last_ns = ns;
    } else if (strcmp(kind, "revoked") == 0) {
        p->acting = false;
        p->last_ns = ns;
    }
}

/* Reads what the probe's log gained since the last call. */
static void probe_read_log(probe *p)
{
    char buf[8192];
    ssize_t n;
    while ((n = read(p->log_fd, buf, sizeof buf)) > 0) {
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] != '\n') {
                if (p->pending_len < sizeof p->pending - 1)
                    p->pending[p->pending_len++] = buf[i];
                continue;
            }
            p->pending[p->pending_len] = '\0';
            probe_apply_line(p, p->pending);
            p->pending_len = 0;
        }
    }
}

/* The probe that acts as leader now: running, its latest line `elected` or
 * `action` and recent, the highest epoch if several say so; or NULL. */
static probe *current_leader(chaos *c)
{
    probe *best = NULL;
    uint64_t now = chaos_now_ns();
    for (int i = 0; i < c->opt.probes; i++) {
        probe *p = &c->probes[i];
        probe_read_log(p);
        if (p->pid > 0 && !p->stopped && p->acting && now - p->last_ns < ACTING_FRESH_NS &&
            (!best || p->epoch > best->epoch))
            best = p;
    }
    return best;
}

/* --------------------------------------------------------- the processes */

/* Reads one line from a proxy's answers into line (no newline), waiting up
 * to max_ms; false on EOF, error or timeout. */
static bool proxy_read_line(proxy *px, char *line, size_t size, uint64_t max_ms)
{
    uint64_t deadline = test_now_ms() + max_ms;
    for (;;) {
        char *nl = memchr(px->buf, '\n', px->len);
        if (nl) {
            size_t n = (size_t)(nl - px->buf);
            snprintf(line, size, "%.*s", (int)n, px->buf);
            memmove(px->buf, nl + 1, px->len - n - 1);
            px->len -= n + 1;
            return true;
        }
        uint64_t now = test_now_ms();
        if (now >= deadline || px->len == sizeof px->buf)
            return false;
        struct pollfd pfd = {.fd = px->answer_fd, .events = POLLIN};
        int r = poll(&pfd, 1, (int)(deadline - now));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false;
        ssize_t got = read(px->answer_fd, px->buf + px->len, sizeof px->buf - px->len);
        if (got <= 0)
            return false;
        px->len += (size_t)got;
    }
}

/* Sends one command to a proxy and waits for its "ok"; false (printed) if
 * it answered anything else or nothing. */
static bool proxy_command(chaos *c, proxy *px, const char *cmd)
{
    char answer[LINE_MAX_LEN];
    if (dprintf(px->cmd_fd, "%s\n", cmd) < 0 ||
        !proxy_read_line(px, answer, sizeof answer, test_ms(PROXY_ANSWER_MS))) {
        fprintf(stderr, "chaos_driver: proxy pid %d did not answer '%s'\n", (int)px->pid, cmd);
        c->broken = true;
        return false;
    }
    if (strcmp(answer, "ok") != 0) {
        fprintf(stderr, "chaos_driver: proxy pid %d answered '%s' to '%s'\n", (int)px->pid, answer,
                cmd);
        c->broken = true;
        return false;
    }
    return true;
}

/* Opens DIR/name for appending (truncated first when fresh); -1 printed. */
static int open_out(chaos *c, const char *name, bool fresh)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", c->dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | (fresh ? O_TRUNC : 0), 0644);
    if (fd < 0)
        fprintf(stderr, "chaos_driver: cannot open %s: %s\n", path, strerror(errno));
    return fd;
}

/* The port the probes reach Redis on, through their proxies: the TLS port
 * with --tls. */
static int redis_port(const chaos *c)
{
    return c->opt.tls ? c->redis->tls_port : c->redis->port;
}

/* Starts proxy i towards Redis and reads the port it listens on. */
static bool start_proxy(chaos *c, int i)
{
    proxy *px = &c->proxies[i];
    int to[2], from[2];
    if (pipe2(to, O_CLOEXEC) != 0 || pipe2(from, O_CLOEXEC) != 0) {
        perror("chaos_driver: pipe2");
        return false;
    }
    char name[64], exe[PATH_MAX + 32], target[16];
    snprintf(name, sizeof name, "proxy-%d.err", i + 1);
    snprintf(exe, sizeof exe, "%s/chaos_proxy", c->bindir);
    snprintf(target, sizeof target, "%d", redis_port(c));
    int err_fd = open_out(c, name, true);
    char *argv[] = {exe, target, NULL};
    px->pid = test_process_spawn_stdio(argv, to[0], from[1], err_fd);
    close(to[0]);
    close(from[1]);
    if (err_fd >= 0)
        close(err_fd);
    px->cmd_fd = to[1];
    px->answer_fd = from[0];
    px->len = 0;
    if (px->pid < 0) {
        px->pid = 0;
        return false;
    }
    char line[LINE_MAX_LEN];
    if (!proxy_read_line(px, line, sizeof line, test_ms(5000)) ||
        sscanf(line, "port %d", &px->port) != 1) {
        fprintf(stderr, "chaos_driver: %s did not say its port (see %s/%s)\n", exe, c->dir, name);
        return false;
    }
    return true;
}

/* Starts (or restarts) probe p behind its proxy; its lines are appended to
 * DIR/probe-<id>.log. */
/* The probes' priorities (the preferred leader), mixed so that leadership
 * moves after faults: probes 1 and 4 share the highest (they never hand
 * over to each other), 3 is a standby, the rest (the CLI candidate too)
 * have the default. */
static const char *probe_priority(const probe *p)
{
    static const char *const by_id[] = {"1", "2", "1", "0", "2"};
    return by_id[p->id % 5];
}

static bool start_probe(chaos *c, probe *p, bool fresh)
{
    char log_name[64], err_name[64];
    snprintf(log_name, sizeof log_name, "probe-%d.log", p->id);
    snprintf(err_name, sizeof err_name, "probe-%d.err", p->id);
    int out_fd = open_out(c, log_name, fresh);
    int err_fd = open_out(c, err_name, fresh);
    if (out_fd < 0 || err_fd < 0) {
        if (out_fd >= 0)
            close(out_fd);
        if (err_fd >= 0)
            close(err_fd);
        c->broken = true;
        return false;
    }
    char exe[PATH_MAX + 32], url[PATH_MAX + 128], id[16], lease[16], renew[16], retry[16],
        deadline[16], timeout[16];
    snprintf(exe, sizeof exe, "%s/chaos_probe", c->bindir);
    if (c->opt.sentinel)
        snprintf(url, sizeof url, "%s", c->topo->url);
    else if (c->opt.tls)
        snprintf(url, sizeof url, "rediss://127.0.0.1:%d?tls_ca_file=%s",
                 c->proxies[p->id - 1].port, c->certs.ca);
    else
        snprintf(url, sizeof url, "redis://127.0.0.1:%d", c->proxies[p->id - 1].port);
    char min_replicas[16];
    snprintf(min_replicas, sizeof min_replicas, "%d", c->opt.min_replicas);
    snprintf(id, sizeof id, "%d", p->id);
    snprintf(lease, sizeof lease, "%" PRIu32, c->opt.lease_ms);
    snprintf(renew, sizeof renew, "%" PRIu32, c->opt.renew_ms);
    snprintf(retry, sizeof retry, "%" PRIu32, c->opt.retry_ms);
    snprintf(deadline, sizeof deadline, "%" PRIu32, c->opt.renew_deadline_ms);
    snprintf(timeout, sizeof timeout, "%" PRIu32, c->opt.command_timeout_ms);
    char *argv[40];
    int n = 0;
    if (c->opt.sentinel) { /* in the probe's own network namespace */
        argv[n++] = "ip";
        argv[n++] = "netns";
        argv[n++] = "exec";
        argv[n++] = c->net.ns[NODE_PROBE(p)];
    }
    char cli_url[PATH_MAX + 192], cli_lease[24], cli_renew[24], cli_retry[24], cli_deadline[24];
    if (p->cli) {
        /* leasehold run, its CMD a chaos_probe --actor printing to the same log */
        snprintf(cli_url, sizeof cli_url, "%s%ccommand_timeout_ms=%" PRIu32, url,
                 c->opt.tls ? '&' : '?', c->opt.command_timeout_ms);
        snprintf(cli_lease, sizeof cli_lease, "%" PRIu32 "ms", c->opt.lease_ms);
        snprintf(cli_renew, sizeof cli_renew, "%" PRIu32 "ms", c->opt.renew_ms);
        snprintf(cli_retry, sizeof cli_retry, "%" PRIu32 "ms", c->opt.retry_ms);
        snprintf(cli_deadline, sizeof cli_deadline, "%" PRIu32 "ms", c->opt.renew_deadline_ms);
        char *cli_argv[] = {LEASEHOLD_CLI_PATH,
                            "run",
                            "--url",
                            cli_url,
                            "--key",
                            PROBE_KEY,
                            "--id",
                            id,
                            "--lease",
                            cli_lease,
                            "--renew",
                            cli_renew,
                            "--retry",
                            cli_retry,
                            "--renew-deadline",
                            cli_deadline,
                            "--priority",
                            (char *)probe_priority(p),
                            "--handover-interval",
                            "2s",
                            NULL};
        for (int k = 0; cli_argv[k]; k++)
            argv[n++] = cli_argv[k];
        if (c->opt.min_replicas >= 0) {
            argv[n++] = "--min-replicas";
            argv[n++] = min_replicas;
        }
        char *cmd[] = {"--", exe, "--actor", "--id", id, NULL};
        for (int k = 0; cmd[k]; k++)
            argv[n++] = cmd[k];
        argv[n] = NULL;
    } else {
        argv[n++] = exe;
        argv[n++] = "--url";
        argv[n++] = url;
        argv[n++] = "--key";
        argv[n++] = PROBE_KEY;
        argv[n++] = "--id";
        argv[n++] = id;
        argv[n++] = "--lease-ms";
        argv[n++] = lease;
        argv[n++] = "--renew-ms";
        argv[n++] = renew;
        argv[n++] = "--retry-ms";
        argv[n++] = retry;
        argv[n++] = "--renew-deadline-ms";
        argv[n++] = deadline;
        argv[n++] = "--command-timeout-ms";
        argv[n++] = timeout;
        if (!c->opt.restart_guard)
            argv[n++] = "--no-restart-guard";
        argv[n++] = "--priority";
        argv[n++] = (char *)probe_priority(p);
        if (c->opt.min_replicas >= 0) {
            argv[n++] = "--min-replicas";
            argv[n++] = min_replicas;
        }
        argv[n] = NULL;
    }
    if (fresh) {
        char path[PATH_MAX + 64];
        snprintf(path, sizeof path, "%s/%s", c->dir, log_name);
        p->log_fd = open(path, O_RDONLY | O_CLOEXEC);
    }
    p->pid = test_process_spawn_stdio(argv, -1, out_fd, err_fd);
    close(out_fd);
    close(err_fd);
    p->stopped = false;
    if (p->pid < 0 || p->log_fd < 0) {
        p->pid = 0;
        c->broken = true;
        return false;
    }
    return true;
}

/* The probe is gone: what its log said before is history. */
static void probe_down(probe *p)
{
    probe_read_log(p);
    p->pid = 0;
    p->stopped = false;
    p->acting = false;
}

/* Notices children that exited on their own: a probe is reported and
 * restarted (the run fails at the end), a proxy or Redis breaks the run. */
static void check_children(chaos *c)
{
    int st;
    for (int i = 0; i < c->opt.probes; i++) {
        probe *p = &c->probes[i];
        if (p->pid > 0 && test_process_wait(p->pid, 0, &st)) {
            fprintf(stderr,
                    "chaos_driver: probe %d (pid %d) exited on its own, status 0x%x; "
                    "see %s/probe-%d.err; restarting it\n",
                    p->id, (int)p->pid, st, c->dir, p->id);
            c->unexpected_exits++;
            probe_down(p);
            start_probe(c, p, false);
        }
        proxy *px = &c->proxies[i];
        if (px->pid > 0 && test_process_wait(px->pid, 0, &st)) {
            fprintf(stderr,
                    "chaos_driver: proxy %d (pid %d) exited, status 0x%x; see %s/proxy-%d.err\n",
                    i + 1, (int)px->pid, st, c->dir, i + 1);
            px->pid = 0;
            c->broken = true;
        }
    }
    if (c->redis && c->redis->pid > 0 && test_process_wait(c->redis->pid, 0, &st)) {
        fprintf(stderr, "chaos_driver: redis-server (pid %d) exited, status 0x%x\n",
                (int)c->redis->pid, st);
        c->redis->pid = 0;
        c->broken = true;
    }
}

/* Lets ms pass while watching the children; returns early once
 * interrupted. */
static void pass_time(chaos *c, uint64_t ms)
{
    uint64_t deadline = test_now_ms() + ms;
    while (!interrupted) {
        check_children(c);
        uint64_t now = test_now_ms();
        if (now >= deadline)
            return;
        test_sleep_ms(deadline - now < 20 ? deadline - now : 20);
    }
}

/* Waits up to max_ms for a probe to act as leader; NULL if none did. */
static probe *wait_leader(chaos *c, uint64_t max_ms)
{
    uint64_t deadline = test_now_ms() + max_ms;
    for (;;) {
        probe *p = current_leader(c);
        if (p || interrupted || c->broken || test_now_ms() >= deadline)
            return p;
        pass_time(c, 20);
    }
}

/* Stops a probe gracefully (SIGTERM, as an operator would), killing it if
 * it has not exited within GRACEFUL_EXIT_MS; an exit status other than 0
 * (or, for the CLI candidate, 143: leasehold run stopped while it ran no
 * CMD) counts as an unexpected exit unless any_status. */
static void stop_probe_status(chaos *c, probe *p, bool any_status)
{
    if (p->pid <= 0)
        return;
    test_process_signal(p->pid, SIGCONT);
    test_process_signal(p->pid, SIGTERM);
    int st;
    if (!test_process_wait(p->pid, test_ms(GRACEFUL_EXIT_MS), &st)) {
        fprintf(stderr, "chaos_driver: probe %d did not exit within %u ms of SIGTERM; killed\n",
                p->id, GRACEFUL_EXIT_MS);
        test_process_kill(p->pid);
        c->unexpected_exits++;
    } else if (!any_status && !(WIFEXITED(st) && (WEXITSTATUS(st) == 0 ||
                                                  (p->cli && WEXITSTATUS(st) == 128 + SIGTERM)))) {
        fprintf(stderr, "chaos_driver: probe %d exited with status 0x%x after SIGTERM\n", p->id,
                st);
        c->unexpected_exits++;
    }
    probe_down(p);
}

/* Stops a probe gracefully; it must exit with status 0. */
static void stop_probe(chaos *c, probe *p)
{
    stop_probe_status(c, p, false);
}

/* Ends a proxy: EOF on its stdin, then SIGKILL if it lingers. */
static void stop_proxy(proxy *px)
{
    if (px->cmd_fd >= 0)
        close(px->cmd_fd);
    if (px->answer_fd >= 0)
        close(px->answer_fd);
    px->cmd_fd = px->answer_fd = -1;
    if (px->pid > 0 && !test_process_wait(px->pid, test_ms(2000), NULL))
        test_process_kill(px->pid);
    px->pid = 0;
}

/* Stops everything this run started, probes first, by pid. */
static void stop_all(chaos *c)
{
    for (int i = 0; i < c->opt.probes; i++)
        stop_probe(c, &c->probes[i]);
    for (int i = 0; i < c->opt.probes; i++)
        stop_proxy(&c->proxies[i]);
    redis_server_stop(c->redis);
    c->redis = NULL;
    sentinels_stop(c->topo);
    c->topo = NULL;
    chaos_net_destroy(&c->net);
}

/* ------------------------------------------------------------ the faults */

/* The local ports of the connections proxy pid holds to Redis: its sockets
 * (/proc/<pid>/fd) that /proc/net/tcp shows with Redis's port as the remote
 * end.  CLIENT LIST shows the same ports as addr=127.0.0.1:<port>. */
static int proxy_upstream_ports(pid_t pid, int redis_port, int *ports, int max)
{
    unsigned long inodes[256];
    int n_inodes = 0;
    char path[64], link[128];
    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return 0;
    struct dirent *ent;
    while ((ent = readdir(d)) != NULL && n_inodes < 256) {
        char fd_path[PATH_MAX];
        snprintf(fd_path, sizeof fd_path, "%s/%s", path, ent->d_name);
        ssize_t len = readlink(fd_path, link, sizeof link - 1);
        if (len <= 0)
            continue;
        link[len] = '\0';
        if (sscanf(link, "socket:[%lu]", &inodes[n_inodes]) == 1)
            n_inodes++;
    }
    closedir(d);
    FILE *f = fopen("/proc/net/tcp", "r");
    if (!f)
        return 0;
    char line[512];
    int n = 0;
    while (fgets(line, sizeof line, f) && n < max) {
        unsigned lport, rport, state;
        unsigned long inode;
        if (sscanf(line, " %*d: %*x:%x %*x:%x %x %*x:%*x %*x:%*x %*x %*u %*u %lu", &lport, &rport,
                   &state, &inode) != 4 ||
            state != TCP_ESTABLISHED_STATE || (int)rport != redis_port)
            continue;
        for (int i = 0; i < n_inodes; i++)
            if (inodes[i] == inode)
                ports[n++] = (int)lport;
    }
    fclose(f);
    return n;
}

/* CLIENT KILL of every connection the leader's proxy holds to Redis;
 * returns how many Redis closed. */
static int kill_connections(chaos *c, const int *ports, int n)
{
    int killed = 0;
    for (int i = 0; i < n; i++) {
        redisReply *r = redis_server_cmd(c->redis, "CLIENT KILL ADDR 127.0.0.1:%d", ports[i]);
        if (r && r->type == REDIS_REPLY_INTEGER)
            killed += (int)r->integer;
        if (r)
            freeReplyObject(r);
    }
    return killed;
}

/* Prints one line of the schedule: seconds since the start, the fault, what. */
__attribute__((format(printf, 3, 4))) static void say(const chaos *c, const char *fault,
                                                      const char *fmt, ...)
{
    char what[LINE_MAX_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    printf("%7.1f s  %-14s %s\n", (double)(chaos_now_ns() - c->start_ns) / 1e9, fault, what);
}

/* Draws the next fault: its type from the deck (reshuffled when empty), and
 * always the same number of draws for its durations, so that a seed gives
 * the same schedule whatever happens in between. */
static fault_plan draw_fault(chaos *c)
{
    if (c->deck_left == 0) {
        c->deck_size = 0;
        for (int t = 0; t < FAULT_COUNT; t++)
            if (c->opt.fault_on[t])
                c->deck[c->deck_size++] = t;
        for (int i = c->deck_size - 1; i > 0; i--) {
            int j = (int)(chaos_rng_next(&c->rng) % (uint64_t)(i + 1));
            int t = c->deck[i];
            c->deck[i] = c->deck[j];
            c->deck[j] = t;
        }
        c->deck_left = c->deck_size;
        c->rounds++;
    }
    fault_plan f = {.type = (fault_type)c->deck[--c->deck_left]};
    uint32_t a = chaos_rng_range(&c->rng, 0, 1000), b = chaos_rng_range(&c->rng, 0, 1000);
    const options *o = &c->opt;
    switch (f.type) {
    case FAULT_KILL:
    case FAULT_TERM: /* down for 0.2–1.5 s, then restarted */
        f.hold_ms = 200 + a * 1300 / 1000;
        break;
    case FAULT_STOP: /* longer than the lease: 0.2–2 s past it */
        f.hold_ms = o->lease_ms + 200 + a * 1800 / 1000;
        break;
    case FAULT_REDIS_STOP:
        f.hold_ms = 1000 + a * 3;
        break;
    case FAULT_BLACKHOLE:
        f.hold_ms = 1000 + a * 4;
        break;
    case FAULT_LATENCY: /* 1–4 s of 1.2–2× the command timeout */
        f.hold_ms = 1000 + a * 3;
        f.latency_ms = o->command_timeout_ms + o->command_timeout_ms / 5 +
                       b * (o->command_timeout_ms * 4 / 5) / 1000;
        break;
    case FAULT_RESTART_AOF:
    case FAULT_RESTART_EMPTY: /* Redis down for 0.1–0.5 s; the leader cut off a lease more */
        f.hold_ms = 100 + a * 400 / 1000;
        f.cut_ms = o->lease_ms;
        break;
    case FAULT_CLOCK_STEP: /* +2–10 s, stepped back after lease + retry + 1 s */
        f.step_ms = 2000 + a * 8;
        f.hold_ms = o->lease_ms + o->retry_ms + 1000;
        break;
    case FAULT_RESTART_KEEP: /* as restart-empty, behind connection-keeping proxies */
        f.hold_ms = 100 + a * 400 / 1000;
        f.cut_ms = o->lease_ms;
        break;
    case FAULT_GUARDIAN_KILL: /* leasehold run stopped 0.2–2 s past the lease */
        f.hold_ms = o->lease_ms + 200 + a * 1800 / 1000;
        break;
    case FAULT_MASTER_STOP: /* past down-after-milliseconds and the failover: 6–9 s */
    case FAULT_PARTITION:   /* long enough for a failover and an election there: 6–9 s */
        f.hold_ms = 6000 + a * 3;
        break;
    case FAULT_REPLICA_SPLIT: /* the cut-off replica's master link must count as down for
                                 Sentinel to pick the other one, and then the election: 12–15 s */
        f.hold_ms = 12000 + a * 3;
        break;
    case FAULT_LEADER_CUT: /* as blackhole */
        f.hold_ms = 1000 + a * 4;
        break;
    case FAULT_FAILOVER:
    case FAULT_MASTER_KILL:
    case FAULT_RESIGN: /* a third of them stale: naming the epoch before the leader's */
        f.stale = a < 333;
        f.hold_ms = 0;
        break;
    case FAULT_CLIENT_KILL:
    case FAULT_COUNT:
        f.hold_ms = 0;
        break;
    }
    return f;
}

/* True for the faults that cannot be done without a leader. */
static bool needs_leader(fault_type t)
{
    return t != FAULT_REDIS_STOP && t != FAULT_RESTART_AOF && t != FAULT_RESTART_EMPTY &&
           t != FAULT_RESTART_KEEP && t != FAULT_FAILOVER && t != FAULT_MASTER_KILL &&
           t != FAULT_MASTER_STOP;
}

/* True for the faults that involve the leader when there is one. */
static bool wants_leader(fault_type t)
{
    return t != FAULT_REDIS_STOP && t != FAULT_FAILOVER && t != FAULT_MASTER_KILL &&
           t != FAULT_MASTER_STOP;
}

/* Restarts Redis after a crash (SIGKILL) with its append-only file, or with
 * nothing on disk. */
static void redis_crash_restart(chaos *c, bool keep_data)
{
    if (redis_server_restart(c->redis, keep_data) != 0)
        c->broken = true;
}

/* Sends cmd to every proxy; false if one did not take it. */
static bool proxies_command(chaos *c, const char *cmd)
{
    bool ok = true;
    for (int i = 0; i < c->opt.probes; i++)
        ok = proxy_command(c, &c->proxies[i], cmd) && ok;
    return ok;
}

/* The CLI candidate, or NULL when there is none. */
static probe *cli_probe(chaos *c)
{
    for (int i = 0; i < c->opt.probes; i++)
        if (c->probes[i].cli)
            return &c->probes[i];
    return NULL;
}

/*
 * Makes the CLI candidate the leader when another one leads: every other
 * candidate's proxy is blackholed (the leader's lease lapses, no follower
 * but the CLI can claim) until the CLI candidate acts, then all pass again.
 * Logged as a `steer` fault and heal.  Returns the CLI candidate acting as
 * leader, or NULL (said) when it did not become leader in time.
 */
static probe *steer_to_cli(chaos *c, probe *leader)
{
    probe *cli = cli_probe(c);
    if (!cli || !leader || leader == cli)
        return leader == cli ? cli : NULL;
    say(c, "steer", "probe %d leads: blackholing all but probe %d until it leads", leader->id,
        cli->id);
    log_line(c, "fault", "steer from=%d,to=%d", leader->id, cli->id);
    for (int i = 0; i < c->opt.probes; i++)
        if (&c->probes[i] != cli)
            proxy_command(c, &c->proxies[i], "blackhole");
    uint64_t deadline = test_now_ms() + test_ms(2ull * c->opt.lease_ms + c->opt.retry_ms + 3000);
    probe *now = NULL;
    while (!interrupted && !c->broken && test_now_ms() < deadline) {
        now = current_leader(c);
        if (now == cli)
            break;
        pass_time(c, 20);
    }
    for (int i = 0; i < c->opt.probes; i++)
        if (&c->probes[i] != cli)
            proxy_command(c, &c->proxies[i], "pass");
    log_line(c, "heal", "steer");
    if (now != cli) {
        say(c, "steer", "probe %d did not become leader in time", cli->id);
        return NULL;
    }
    return cli;
}

/* The guardian of the `leasehold run` process pid: its child (found in
 * /proc/<pid>/task/<tid>/children) running the same executable, a fork
 * that never exec'd (CMD exec'd chaos_probe); one whose name says "guard"
 * is preferred if there are several.  0 when there is none. */
static pid_t find_guardian(pid_t pid)
{
    char path[128], exe[PATH_MAX], child_exe[PATH_MAX];
    snprintf(path, sizeof path, "/proc/%d/exe", (int)pid);
    ssize_t n = readlink(path, exe, sizeof exe - 1);
    if (n <= 0)
        return 0;
    exe[n] = '\0';
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return 0;
    pid_t found = 0;
    bool named = false;
    struct dirent *ent;
    while ((ent = readdir(d)) != NULL) {
        if (ent->d_name[0] == '.')
            continue;
        char children[PATH_MAX];
        snprintf(children, sizeof children, "/proc/%d/task/%s/children", (int)pid, ent->d_name);
        FILE *f = fopen(children, "r");
        if (!f)
            continue;
        int child;
        while (fscanf(f, "%d", &child) == 1) {
            snprintf(path, sizeof path, "/proc/%d/exe", child);
            ssize_t m = readlink(path, child_exe, sizeof child_exe - 1);
            if (m <= 0)
                continue;
            child_exe[m] = '\0';
            if (strcmp(child_exe, exe) != 0)
                continue;
            char comm[64] = "";
            snprintf(path, sizeof path, "/proc/%d/comm", child);
            FILE *cf = fopen(path, "r");
            if (cf) {
                if (!fgets(comm, sizeof comm, cf))
                    comm[0] = '\0';
                fclose(cf);
            }
            bool is_named = strstr(comm, "guard") != NULL;
            if (!found || (is_named && !named)) {
                found = child;
                named = is_named;
            }
        }
        fclose(f);
    }
    closedir(d);
    return found;
}

/* ------------------------------------------------- the Sentinel topology */

/* Waits up to max_ms (watching the children) until the Sentinels name a
 * master other than old that says it is one; NULL if they did not. */
static redis_server *wait_new_master(chaos *c, const redis_server *old, uint64_t max_ms)
{
    uint64_t deadline = test_now_ms() + max_ms;
    while (!interrupted && !c->broken && test_now_ms() < deadline) {
        redis_server *m = sentinels_wait_new_master(c->topo, old, 0);
        if (m)
            return m;
        pass_time(c, 100);
    }
    return NULL;
}

/* Waits up to max_ms until every data node replicates from the master and
 * the Sentinels know them all (after a failover, the old master demoted). */
static bool wait_synced(chaos *c, uint64_t max_ms)
{
    uint64_t deadline = test_now_ms() + max_ms;
    while (!interrupted && !c->broken && test_now_ms() < deadline) {
        if (sentinels_wait_synced(c->topo, 0))
            return true;
        pass_time(c, 100);
    }
    return false;
}

/* The data node that is master now, by the Sentinels' word (NULL: none). */
static int master_index(chaos *c)
{
    redis_server *m = sentinels_master(c->topo);
    for (int d = 0; d < c->topo->n_data; d++)
        if (c->topo->data[d] == m)
            return d;
    return -1;
}

/* Cuts (or heals) every link between a node of the group and one outside
 * it: the group keeps talking among itself, and so does the rest. */
static void cut_group(chaos *c, const bool in_group[CHAOS_NET_MAX], bool cut)
{
    for (int a = 0; a < c->net.n; a++)
        for (int b = 0; b < c->net.n; b++)
            if (in_group[a] && !in_group[b] && !chaos_net_set_cut(&c->net, a, b, cut))
                c->broken = true;
}

/* The Sentinel topology's faults; see inject(). */
static void inject_sentinel(chaos *c, const fault_plan *f, probe *leader)
{
    const char *name = fault_names[f->type];
    int id = leader ? leader->id : 0;
    int m = master_index(c);
    if (m < 0) {
        say(c, name, "skipped: the Sentinels name no master");
        c->skipped[f->type]++;
        return;
    }
    redis_server *old = c->topo->data[m];
    uint64_t failover_ms = test_ms(30000);
    switch (f->type) {
    case FAULT_FAILOVER:
        say(c, name, "SENTINEL FAILOVER (master: data node %d)", m);
        log_line(c, "fault", "failover master=%d", m);
        if (sentinels_failover(c->topo) != 0 || !wait_new_master(c, old, failover_ms))
            say(c, name, "no new master within %" PRIu64 " ms", failover_ms);
        break;
    case FAULT_MASTER_KILL:
        say(c, name, "master (data node %d) SIGKILLed, restarted empty once replaced", m);
        log_line(c, "fault", "master-kill master=%d", m);
        redis_server_kill(old);
        if (!wait_new_master(c, old, failover_ms))
            say(c, name, "no new master within %" PRIu64 " ms", failover_ms);
        if (redis_server_restart(old, false) != 0)
            c->broken = true;
        break;
    case FAULT_MASTER_STOP:
        say(c, name, "master (data node %d) SIGSTOPped for %u ms", m, f->hold_ms);
        log_line(c, "fault", "master-stop master=%d,ms=%u", m, f->hold_ms);
        redis_server_pause(old);
        pass_time(c, f->hold_ms);
        redis_server_resume(old);
        break;
    case FAULT_PARTITION:
    case FAULT_REPLICA_SPLIT: {
        bool group[CHAOS_NET_MAX] = {false};
        group[NODE_DATA(m)] = true;
        group[NODE_PROBE(leader)] = true;
        int replica = -1;
        if (f->type == FAULT_REPLICA_SPLIT) {
            replica = (m + 1) % c->topo->n_data;
            group[NODE_DATA(replica)] = true;
        }
        say(c, name,
            "master (data node %d)%s and probe %d (epoch %" PRIu64
            ") cut off from the rest for %u ms",
            m, replica >= 0 ? " with a replica" : "", id, leader->epoch, f->hold_ms);
        log_line(c, "fault", "%s master=%d,probe=%d,ms=%u", name, m, id, f->hold_ms);
        cut_group(c, group, true);
        pass_time(c, f->hold_ms);
        cut_group(c, group, false);
        break;
    }
    case FAULT_LEADER_CUT: {
        bool group[CHAOS_NET_MAX] = {false};
        group[NODE_PROBE(leader)] = true;
        say(c, name, "probe %d (epoch %" PRIu64 ") cut off from everything for %u ms", id,
            leader->epoch, f->hold_ms);
        log_line(c, "fault", "leader-cut probe=%d,ms=%u", id, f->hold_ms);
        cut_group(c, group, true);
        pass_time(c, f->hold_ms);
        cut_group(c, group, false);
        break;
    }
    default:
        break;
    }
    log_line(c, "heal", "%s", name);
    c->injected[f->type]++;
}

/* Injects f, holds it, heals it; the fault log gets `fault` just before
 * the damage and `heal` once it is undone.  An interrupt cuts the hold
 * short; the heal is done anyway. */
/* resign: `leasehold resign`'s request, published on the key's channel for
 * the term the key holds now (or, stale, for the one before), as anyone
 * allowed to publish there could.  The leader of that term steps down
 * (probes stop acting and release; the CLI candidate stops its CMD first);
 * a stale request changes nothing. */
static void request_resign(chaos *c, const fault_plan *f, const probe *leader)
{
    const char *name = fault_names[f->type];
    redisReply *tok = redis_server_cmd(c->redis, "GET %s", PROBE_KEY);
    redisReply *ep = redis_server_cmd(c->redis, "GET {%s}:epoch", PROBE_KEY);
    bool held = tok && tok->type == REDIS_REPLY_STRING && ep && ep->type == REDIS_REPLY_STRING;
    uint64_t epoch = held ? strtoull(ep->str, NULL, 10) : 0;
    if (!held || epoch < 2) {
        say(c, name, "skipped: the key holds no term");
        c->skipped[f->type]++;
    } else {
        uint64_t named = f->stale ? epoch - 1 : epoch;
        char msg[400];
        snprintf(msg, sizeof msg, "resign %" PRIu64 " %.300s", named, tok->str);
        redisReply *pub = redis_server_cmd(c->redis, "PUBLISH {%s}:events %s", PROBE_KEY, msg);
        long long got = pub && pub->type == REDIS_REPLY_INTEGER ? pub->integer : -1;
        say(c, name, "probe %d (epoch %" PRIu64 ")%s: %lld received", leader ? leader->id : 0,
            epoch, f->stale ? ", stale (the epoch before)" : "", got);
        log_line(c, "fault", "resign probe=%d,epoch=%" PRIu64 ",stale=%d", leader ? leader->id : 0,
                 named, f->stale);
        if (pub)
            freeReplyObject(pub);
    }
    if (tok)
        freeReplyObject(tok);
    if (ep)
        freeReplyObject(ep);
}

static void inject(chaos *c, const fault_plan *f, probe *leader)
{
    if (f->type >= FAULT_SENTINEL_FIRST) {
        inject_sentinel(c, f, leader);
        return;
    }
    const char *name = fault_names[f->type];
    proxy *px = leader ? &c->proxies[leader->id - 1] : NULL;
    int id = leader ? leader->id : 0;
    switch (f->type) {
    case FAULT_KILL:
        say(c, name, "probe %d (epoch %" PRIu64 "), down %u ms", id, leader->epoch, f->hold_ms);
        log_line(c, "fault", "kill probe=%d,down_ms=%u", id, f->hold_ms);
        test_process_kill(leader->pid);
        probe_down(leader);
        pass_time(c, f->hold_ms);
        start_probe(c, leader, false);
        break;
    case FAULT_TERM:
        say(c, name, "probe %d (epoch %" PRIu64 "), down %u ms", id, leader->epoch, f->hold_ms);
        log_line(c, "fault", "term probe=%d,down_ms=%u", id, f->hold_ms);
        stop_probe(c, leader);
        pass_time(c, f->hold_ms);
        start_probe(c, leader, false);
        break;
    case FAULT_STOP:
        say(c, name, "probe %d (epoch %" PRIu64 ") for %u ms", id, leader->epoch, f->hold_ms);
        log_line(c, "fault", "stop probe=%d,ms=%u", id, f->hold_ms);
        leader->stopped = true;
        test_process_signal(leader->pid, SIGSTOP);
        pass_time(c, f->hold_ms);
        test_process_signal(leader->pid, SIGCONT);
        leader->stopped = false;
        break;
    case FAULT_REDIS_STOP:
        say(c, name, "Redis for %u ms", f->hold_ms);
        log_line(c, "fault", "redis-stop ms=%u", f->hold_ms);
        redis_server_pause(c->redis);
        pass_time(c, f->hold_ms);
        redis_server_resume(c->redis);
        break;
    case FAULT_BLACKHOLE:
        say(c, name, "probe %d's proxy for %u ms", id, f->hold_ms);
        log_line(c, "fault", "blackhole probe=%d,ms=%u", id, f->hold_ms);
        if (proxy_command(c, px, "blackhole"))
            pass_time(c, f->hold_ms);
        proxy_command(c, px, "pass");
        break;
    case FAULT_LATENCY: {
        char cmd[32];
        snprintf(cmd, sizeof cmd, "latency %u", f->latency_ms);
        say(c, name, "%u ms on probe %d's proxy for %u ms", f->latency_ms, id, f->hold_ms);
        log_line(c, "fault", "latency probe=%d,latency_ms=%u,ms=%u", id, f->latency_ms, f->hold_ms);
        if (proxy_command(c, px, cmd))
            pass_time(c, f->hold_ms);
        proxy_command(c, px, "pass");
        break;
    }
    case FAULT_RESTART_AOF:
    case FAULT_RESTART_EMPTY: {
        /* The leader's link is cut across the restart and for cut_ms after
         * it, so it learns of the restart from no reset: the case the
         * restart guard is for (the others see their connections reset). */
        bool keep = f->type == FAULT_RESTART_AOF;
        say(c, name, "Redis killed, down %u ms, restarted %s; probe %d cut off until %u ms after",
            f->hold_ms, keep ? "from its append-only file" : "empty", id, f->cut_ms);
        log_line(c, "fault", "%s probe=%d,down_ms=%u,cut_ms=%u", name, id, f->hold_ms, f->cut_ms);
        bool cut = px && proxy_command(c, px, "blackhole");
        redis_server_kill(c->redis);
        pass_time(c, f->hold_ms);
        redis_crash_restart(c, keep);
        if (cut) {
            pass_time(c, f->cut_ms);
            proxy_command(c, px, "pass");
        }
        break;
    }
    case FAULT_CLIENT_KILL: {
        int ports[16];
        int n = proxy_upstream_ports(px->pid, redis_port(c), ports, 16);
        say(c, name, "probe %d's %d connection%s", id, n, n == 1 ? "" : "s");
        log_line(c, "fault", "client-kill probe=%d,connections=%d", id, n);
        int killed = kill_connections(c, ports, n);
        if (killed != n)
            say(c, name, "Redis closed %d of them (the others had ended)", killed);
        break;
    }
    case FAULT_CLOCK_STEP: {
        int64_t before = clockshift_get(c->clock_shift);
        say(c, name,
            "Redis's clock +%u ms while probe %d (epoch %" PRIu64 ") leads; back after %u ms",
            f->step_ms, id, leader->epoch, f->hold_ms);
        log_line(c, "fault", "clock-step probe=%d,step_ms=%u,ms=%u", id, f->step_ms, f->hold_ms);
        clockshift_set(c->clock_shift, before + (int64_t)f->step_ms * 1000);
        pass_time(c, f->hold_ms);
        clockshift_set(c->clock_shift, before); /* the backward step: must be harmless */
        break;
    }
    case FAULT_RESTART_KEEP: {
        /* As restart-empty, but no follower's connection breaks: the proxies
         * reconnect behind them. */
        say(c, name,
            "proxies keep connections; Redis killed, down %u ms, restarted empty; probe %d cut off "
            "until %u ms after",
            f->hold_ms, id, f->cut_ms);
        log_line(c, "fault", "restart-keep probe=%d,down_ms=%u,cut_ms=%u", id, f->hold_ms,
                 f->cut_ms);
        if (!proxies_command(c, "keep on"))
            break;
        bool cut = px && proxy_command(c, px, "blackhole");
        redis_server_kill(c->redis);
        pass_time(c, f->hold_ms);
        redis_crash_restart(c, false);
        if (cut) {
            pass_time(c, f->cut_ms);
            proxy_command(c, px, "pass");
        }
        proxies_command(c, "keep off");
        break;
    }
    case FAULT_RESIGN:
        request_resign(c, f, leader);
        break;
    case FAULT_GUARDIAN_KILL: {
        pid_t guardian = find_guardian(leader->pid);
        if (guardian <= 0) {
            say(c, name, "skipped: no guardian found under pid %d", (int)leader->pid);
            c->skipped[f->type]++;
            return;
        }
        say(c, name,
            "probe %d (epoch %" PRIu64 "): leasehold run stopped, guardian %d killed, %u ms", id,
            leader->epoch, (int)guardian, f->hold_ms);
        log_line(c, "fault", "guardian-kill probe=%d,guardian=%d,ms=%u", id, (int)guardian,
                 f->hold_ms);
        leader->stopped = true;
        test_process_signal(leader->pid, SIGSTOP);
        kill(guardian, SIGKILL);
        pass_time(c, f->hold_ms);
        test_process_signal(leader->pid, SIGCONT);
        leader->stopped = false;
        /* a fresh leasehold run (and guardian) for the faults to come; the
         * one that lost its guardian may exit with CMD's SIGKILL status */
        stop_probe_status(c, leader, true);
        start_probe(c, leader, false);
        break;
    }
    default:
        break;
    }
    log_line(c, "heal", "%s", name);
    c->injected[f->type]++;
}

/* Runs faults until the next one would not end (heal and settle included)
 * before the time is up. */
static void run_schedule(chaos *c)
{
    const options *o = &c->opt;
    uint64_t settle_ms = (uint64_t)o->lease_ms + o->retry_ms + 1000;
    uint64_t end_ms = test_now_ms() + (uint64_t)o->seconds * 1000;
    while (!interrupted && !c->broken) {
        fault_plan f = draw_fault(c);
        /* 2 s of room for restarts and graceful exits; the first round is
         * dealt whole whatever the time */
        if (c->rounds > 1 && test_now_ms() + f.hold_ms + f.cut_ms + settle_ms + 2000 > end_ms)
            break;
        c->dealt[f.type]++;
        probe *leader = NULL;
        if (wants_leader(f.type)) {
            leader = wait_leader(c, settle_ms);
            /* guardian-kill needs the CLI candidate; every second clock
             * step is aimed at it too (its CMD, not a probe, must stop) */
            if (leader && (f.type == FAULT_GUARDIAN_KILL ||
                           (f.type == FAULT_CLOCK_STEP && c->injected[f.type] % 2 == 1)))
                leader = steer_to_cli(c, leader);
            if (!leader && needs_leader(f.type)) {
                if (!interrupted && !c->broken) {
                    say(c, fault_names[f.type], "skipped: no probe acts as leader");
                    c->skipped[f.type]++;
                }
                continue;
            }
        }
        inject(c, &f, leader);
        /* Behind Sentinel the next fault waits for the topology to be whole
         * again (the old master demoted and in sync) */
        if (o->sentinel && !wait_synced(c, test_ms(60000)) && !interrupted) {
            fprintf(stderr, "chaos_driver: the Sentinel topology did not heal within 60 s\n");
            c->broken = true;
        }
        pass_time(c, settle_ms);
    }
}

/* ------------------------------------------------------------ the run */

/* Creates the output directory (or takes --out) and opens the fault log. */
static bool prepare_dir(chaos *c)
{
    if (c->opt.out) {
        if (mkdir(c->opt.out, 0755) != 0 && errno != EEXIST) {
            fprintf(stderr, "chaos_driver: cannot create %s: %s\n", c->opt.out, strerror(errno));
            return false;
        }
        snprintf(c->dir, sizeof c->dir, "%s", c->opt.out);
    } else {
        const char *tmp = getenv("TMPDIR");
        snprintf(c->dir, sizeof c->dir, "%s/leasehold-chaos-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(c->dir)) {
            fprintf(stderr, "chaos_driver: cannot create %s: %s\n", c->dir, strerror(errno));
            return false;
        }
    }
    c->fault_fd = open_out(c, "faults.log", true);
    return c->fault_fd >= 0;
}

/* Removes the files this run wrote in its temporary directory, and it. */
static void remove_out_dir(chaos *c)
{
    DIR *d = opendir(c->dir);
    if (!d)
        return;
    struct dirent *ent;
    while ((ent = readdir(d)) != NULL) {
        char path[PATH_MAX + 300];
        snprintf(path, sizeof path, "%s/%s", c->dir, ent->d_name);
        if (ent->d_name[0] != '.')
            unlink(path);
    }
    closedir(d);
    rmdir(c->dir);
}

/* Redis, the proxies and the probes, then the first election. */
static bool start_all(chaos *c)
{
    for (int i = 0; i < c->opt.probes; i++) {
        c->proxies[i] = (proxy){.cmd_fd = -1, .answer_fd = -1};
        c->probes[i] = (probe){.id = i + 1, .log_fd = -1, .cli = i == c->opt.probes - 1};
    }
    snprintf(c->clock_shift_path, sizeof c->clock_shift_path, "%s/clock-shift", c->dir);
    c->clock_shift = clockshift_create(c->clock_shift_path);
    if (!c->clock_shift) {
        fprintf(stderr, "chaos_driver: cannot create %s: %s\n", c->clock_shift_path,
                strerror(errno));
        return false;
    }
    if (c->opt.sentinel) {
        /* Each data node, Sentinel and probe in a namespace of its own. */
        if (!chaos_net_create(&c->net, 6 + c->opt.probes))
            return false;
        const char *dn[3], *dh[3], *sn[3], *sh[3];
        for (int i = 0; i < 3; i++) {
            dn[i] = c->net.ns[NODE_DATA(i)];
            dh[i] = c->net.ip[NODE_DATA(i)];
            sn[i] = c->net.ns[NODE_SEN(i)];
            sh[i] = c->net.ip[NODE_SEN(i)];
        }
        sentinels_opts so = {.data_netns = dn, .data_host = dh, .sen_netns = sn, .sen_host = sh};
        c->topo = sentinels_start(&so);
        if (!c->topo)
            return false;
    }
    char env_file[PATH_MAX + 64], env_preload[PATH_MAX + 64];
    snprintf(env_file, sizeof env_file, "%s=%s", CLOCKSHIFT_ENV, c->clock_shift_path);
    snprintf(env_preload, sizeof env_preload, "LD_PRELOAD=%s/%s", c->bindir, CLOCKSHIFT_NAME);
    const char *env[] = {env_file, env_preload, NULL};
    redis_server_opts ro = {.appendonly = true, .env = env};
    if (c->opt.tls) {
        if (!tls_certs_make(c->dir, &c->certs))
            return false;
        ro.tls_cert = c->certs.server_cert;
        ro.tls_key = c->certs.server_key;
        ro.tls_ca = c->certs.ca;
    }
    if (!c->opt.sentinel) {
        c->redis = redis_server_start(&ro);
        if (!c->redis)
            return false;
        for (int i = 0; i < c->opt.probes; i++)
            if (!start_proxy(c, i))
                return false;
    }
    for (int i = 0; i < c->opt.probes; i++)
        if (!start_probe(c, &c->probes[i], true))
            return false;
    /* a fresh Redis: the restart guard waits out the lease (+1 s) first */
    uint64_t first_ms = 2ull * c->opt.lease_ms + c->opt.retry_ms + 3000;
    if (!wait_leader(c, test_ms(first_ms))) {
        if (!interrupted)
            fprintf(stderr,
                    "chaos_driver: no probe became leader within %" PRIu64
                    " ms of the start; see %s\n",
                    test_ms(first_ms), c->dir);
        return false;
    }
    return true;
}

/* Runs chaos_check on the logs; its status, or 1 if it could not run. */
static int run_checker(chaos *c)
{
    char exe[PATH_MAX + 32], lease[16], retry[16], faults[PATH_MAX + 32];
    char logs[MAX_PROBES][PATH_MAX + 32];
    snprintf(exe, sizeof exe, "%s/chaos_check", c->bindir);
    snprintf(lease, sizeof lease, "%" PRIu32, c->opt.lease_ms);
    snprintf(retry, sizeof retry, "%" PRIu32, c->opt.retry_ms);
    snprintf(faults, sizeof faults, "%s/faults.log", c->dir);
    char bound[16];
    snprintf(bound, sizeof bound, "%" PRIu32,
             c->opt.clock_step_bound_ms ? c->opt.clock_step_bound_ms
                                        : c->opt.renew_ms + c->opt.command_timeout_ms + 100);
    char *argv[12 + MAX_PROBES] = {
        exe, "--lease-ms", lease, "--retry-ms", retry, "--clock-step-bound-ms", bound, faults};
    int n = 8;
    if (c->opt.sentinel) {
        /* After a failover's heal the new master is known, but the failover
         * guard holds claims for a lease from when each probe saw it. */
        argv[n++] = "--settle-ms";
        argv[n++] = SENTINEL_SETTLE_MS;
    }
    for (int i = 0; i < c->opt.probes; i++) {
        snprintf(logs[i], sizeof logs[i], "%s/probe-%d.log", c->dir, i + 1);
        argv[n++] = logs[i];
    }
    argv[n] = NULL;
    fflush(stdout);
    pid_t pid = test_process_spawn(argv, -1);
    int st;
    if (pid < 0)
        return 1;
    if (!test_process_wait(pid, test_ms(CHECK_MAX_MS), &st)) {
        fprintf(stderr, "chaos_driver: chaos_check took more than %u ms; killed\n", CHECK_MAX_MS);
        test_process_kill(pid);
        return 1;
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}

/* The faults injected (and skipped) by type, one line; then each type of
 * the deck that was dealt but never injected, which fails the run (false). */
static bool print_counts(const chaos *c)
{
    printf("faults injected:");
    for (int t = 0; t < FAULT_COUNT; t++)
        if (c->injected[t] || c->skipped[t])
            printf(" %s %u%s", fault_names[t], c->injected[t],
                   c->skipped[t] ? " (some skipped)" : "");
    printf("\n");
    bool ok = true;
    for (int t = 0; t < FAULT_COUNT; t++) {
        if (c->dealt[t] && !c->injected[t]) {
            printf("chaos: fault type %s was dealt %u time%s and never injected\n", fault_names[t],
                   c->dealt[t], c->dealt[t] == 1 ? "" : "s");
            ok = false;
        } else if (c->opt.fault_on[t] && !c->dealt[t]) {
            printf("chaos: fault type %s was never dealt (the run ended first)\n", fault_names[t]);
        }
    }
    return ok;
}

int main(int argc, char **argv)
{
    static chaos c;
    if (!parse_options(argc, argv, &c.opt))
        return 2;
    setvbuf(stdout, NULL, _IOLBF, 0);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    c.rng = c.opt.seed;
    c.fault_fd = -1;

    const char *self = test_process_self();
    const char *slash = strrchr(self, '/');
    snprintf(c.bindir, sizeof c.bindir, "%.*s", slash ? (int)(slash - self) : 1,
             slash ? self : ".");
    if (!prepare_dir(&c))
        return 1;
    printf("chaos: seed %" PRIu64 ", %u s, %d probes; lease %u ms, renew %u, retry %u, "
           "renew deadline %u, command timeout %u; restart guard %s%s%s\n"
           "chaos: logs in %s\n",
           c.opt.seed, c.opt.seconds, c.opt.probes, c.opt.lease_ms, c.opt.renew_ms, c.opt.retry_ms,
           c.opt.renew_deadline_ms, c.opt.command_timeout_ms, c.opt.restart_guard ? "on" : "off",
           c.opt.tls ? "; over TLS" : "",
           !c.opt.sentinel           ? ""
           : c.opt.min_replicas == 0 ? "; Sentinel, 1 master + 2 replicas, no replica ack"
           : c.opt.min_replicas == 2 ? "; Sentinel, 1 master + 2 replicas, min_replicas 2"
                                     : "; Sentinel, 1 master + 2 replicas, min_replicas 1",
           c.dir);

    c.start_ns = chaos_now_ns();
    bool started = start_all(&c);
    if (started)
        run_schedule(&c);
    log_line(&c, "end", "%s", "");
    stop_all(&c);
    close(c.fault_fd);
    bool all_injected = print_counts(&c);
    clockshift_close(c.clock_shift);
    if (interrupted) {
        printf("chaos: interrupted; logs kept in %s\n", c.dir);
        return 130;
    }
    int status = started && !c.broken ? run_checker(&c) : 1;
    if (!all_injected)
        status = status ? status : 1;
    if (c.unexpected_exits) {
        printf("chaos: %u probe exit%s not asked for (see the .err files)\n", c.unexpected_exits,
               c.unexpected_exits == 1 ? "" : "s");
        status = status ? status : 1;
    }
    if (status == 0 && !c.opt.out)
        remove_out_dir(&c);
    else
        printf("chaos: logs kept in %s; replay with --seed %" PRIu64 " --seconds %u\n", c.dir,
               c.opt.seed, c.opt.seconds);
    return status;
}
