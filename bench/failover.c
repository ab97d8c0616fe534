/*
 * failover — how long a leasehold election takes to replace its leader, and
 * what campaigning costs Redis.
 *
 * Starts a private redis-server and three candidates, each a child process
 * (this binary re-executed with --candidate) running the library.  A
 * candidate writes one line per event on its stdout, a pipe to the bench:
 *
 *     ready <ns>          campaigning (after leasehold_serve_cb)
 *     elected <epoch> <ns> from the elected callback
 *     error <message>      from the error callback
 *
 * where <ns> is CLOCK_MONOTONIC in nanoseconds, a clock every process on the
 * machine shares.  Each round:
 *   crash:    SIGKILL to the leader at t0; the time until another candidate's
 *             elected is the crash failover (the lease must lapse first);
 *   graceful: SIGTERM to the new leader at t0 (it stops its service and
 *             releases the lease); the time until another's elected.
 * The stopped candidate is restarted after each, so three always campaign.
 *
 * Then the cost: Redis commands per second (INFO commandstats deltas, which
 * include the commands the Lua scripts run) with the leader alone, and with
 * the leader and one idle follower; the follower's cost is the difference.
 */
#include <leasehold.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "redis_server.h"
#include "testutil.h"

#define CANDIDATES    3
#define KEY           "bench:failover:leader"
#define EVENT_WAIT_MS 20000 /* longest wait for any one event before giving up */

typedef struct bench_config {
    unsigned rounds;
    uint32_t lease_ms, renew_ms, retry_ms, renew_deadline_ms;
    unsigned stats_seconds;
} bench_config;

/* ------------------------------------------------------------ candidate */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Writes one whole line to stdout (the pipe to the bench) with one write(). */
static void report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void report(const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    size_t len = (size_t)n < sizeof line - 1 ? (size_t)n : sizeof line - 2;
    line[len++] = '\n';
    ssize_t w = write(STDOUT_FILENO, line, len);
    (void)w;
}

static void on_elected(leasehold_election *e, uint64_t epoch, void *arg)
{
    (void)e;
    (void)arg;
    report("elected %" PRIu64 " %" PRIu64, epoch, now_ns());
}

static void on_error(leasehold_election *e, const leasehold_error *err, void *arg)
{
    (void)e;
    (void)arg;
    report("error %s", err->msg);
}

/* The leader's service: nothing but waiting to be cancelled. */
static int idle_service(leasehold_token *t, void *arg)
{
    (void)arg;
    while (leasehold_token_sleep(t, 60000)) {
    }
    return 0;
}

static bool parse_u32(const char *text, uint32_t *out)
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

/*
 * The child: argv is URL ID LEASE RENEW RETRY DEADLINE.  Campaigns until
 * SIGTERM, then frees the client (stops the service, releases the lease).
 */
static int candidate_main(char **argv)
{
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);

    leasehold_config cfg;
    leasehold_config_init(&cfg);
    cfg.url = argv[0];
    cfg.identity = argv[1];
    if (!parse_u32(argv[2], &cfg.lease_ms) || !parse_u32(argv[3], &cfg.renew_interval_ms) ||
        !parse_u32(argv[4], &cfg.retry_interval_ms) ||
        !parse_u32(argv[5], &cfg.renew_deadline_ms)) {
        report("error bad candidate arguments");
        return 64;
    }
    leasehold_error err;
    leasehold_client *c = leasehold_client_new(&cfg, &err);
    if (!c) {
        report("error %s", err.msg);
        return 69;
    }
    const leasehold_callbacks cbs = {.elected = on_elected, .error = on_error};
    if (!leasehold_serve_cb(c, KEY, idle_service, NULL, &cbs, &err)) {
        report("error %s", err.msg);
        leasehold_client_free(c);
        return 69;
    }
    report("ready %" PRIu64, now_ns());
    int sig;
    sigwait(&stop, &sig);
    leasehold_client_free(c);
    return 0;
}

/* ---------------------------------------------------------------- bench */

typedef struct candidate {
    pid_t pid; /* 0: not running */
    int fd;    /* read end of its stdout */
    char id[32];
    bool ready;          /* it said "ready" */
    uint64_t elected_ns; /* when it was last elected, 0 if never */
    char buf[1024];
    size_t len;
} candidate;

typedef enum event_kind { EV_READY, EV_ELECTED, EV_ERROR, EV_EOF } event_kind;

typedef struct event {
    event_kind kind;
    int slot;
    uint64_t ns;
} event;

typedef struct bench {
    bench_config cfg;
    redis_server *redis;
    candidate cand[CANDIDATES + 1]; /* one spare slot for the cost measurement */
    unsigned generation;            /* makes every candidate's identity unique */
} bench;

/* Parses the next complete line of slot's buffer into ev; false if none. */
static bool next_line(bench *b, int slot, event *ev)
{
    candidate *c = &b->cand[slot];
    char *nl = memchr(c->buf, '\n', c->len);
    if (!nl)
        return false;
    *nl = '\0';
    unsigned long long a = 0, t = 0;
    ev->slot = slot;
    ev->ns = 0;
    if (sscanf(c->buf, "ready %llu", &t) == 1) {
        ev->kind = EV_READY;
        ev->ns = t;
    } else if (sscanf(c->buf, "elected %llu %llu", &a, &t) == 2) {
        ev->kind = EV_ELECTED;
        ev->ns = t;
    } else {
        fprintf(stderr, "failover: candidate %s: %s\n", c->id, c->buf);
        ev->kind = EV_ERROR;
    }
    size_t used = (size_t)(nl + 1 - c->buf);
    memmove(c->buf, nl + 1, c->len - used);
    c->len -= used;
    return true;
}

/*
 * Returns the next event of any running candidate, waiting up to
 * EVENT_WAIT_MS; false on timeout.  A candidate whose pipe closed gives
 * EV_EOF once (its fd is then closed).
 */
static bool next_event(bench *b, event *ev)
{
    uint64_t deadline = test_now_ms() + EVENT_WAIT_MS;
    for (;;) {
        struct pollfd pfds[CANDIDATES + 1];
        int slots[CANDIDATES + 1], n = 0;
        for (int i = 0; i <= CANDIDATES; i++) {
            if (b->cand[i].fd < 0)
                continue;
            if (next_line(b, i, ev))
                return true;
            pfds[n] = (struct pollfd){.fd = b->cand[i].fd, .events = POLLIN};
            slots[n++] = i;
        }
        uint64_t now = test_now_ms();
        if (n == 0 || now >= deadline)
            return false;
        int r = poll(pfds, (nfds_t)n, (int)(deadline - now));
        if (r < 0 && errno != EINTR)
            return false;
        for (int k = 0; k < n && r > 0; k++) {
            if (!pfds[k].revents)
                continue;
            candidate *c = &b->cand[slots[k]];
            ssize_t got = read(c->fd, c->buf + c->len, sizeof c->buf - 1 - c->len);
            if (got > 0) {
                c->len += (size_t)got;
            } else if (got == 0 || errno != EINTR) {
                close(c->fd);
                c->fd = -1;
                *ev = (event){.kind = EV_EOF, .slot = slots[k]};
                return true;
            }
        }
    }
}

/* Takes in the next event of any candidate; exits the bench when none
 * comes within EVENT_WAIT_MS. */
static void pump(bench *b, const char *waiting_for)
{
    event ev;
    if (!next_event(b, &ev)) {
        fprintf(stderr, "failover: no %s within %d ms; giving up\n", waiting_for, EVENT_WAIT_MS);
        exit(1);
    }
    if (ev.kind == EV_READY)
        b->cand[ev.slot].ready = true;
    else if (ev.kind == EV_ELECTED)
        b->cand[ev.slot].elected_ns = ev.ns;
}

/* Waits until a candidate other than `not` is elected after t0_ns; returns
 * its slot (the earliest, if several were). */
static int wait_elected(bench *b, uint64_t t0_ns, int not )
{
    for (;;) {
        int best = -1;
        for (int i = 0; i <= CANDIDATES; i++)
            if (i != not &&b->cand[i].elected_ns > t0_ns &&
                (best < 0 || b->cand[i].elected_ns < b->cand[best].elected_ns))
                best = i;
        if (best >= 0)
            return best;
        pump(b, "election");
    }
}

/* Starts a candidate in `slot` and waits until it campaigns. */
static void start_candidate(bench *b, int slot)
{
    candidate *c = &b->cand[slot];
    snprintf(c->id, sizeof c->id, "c%d.%u", slot, ++b->generation);
    char lease[16], renew[16], retry[16], deadline[16];
    snprintf(lease, sizeof lease, "%" PRIu32, b->cfg.lease_ms);
    snprintf(renew, sizeof renew, "%" PRIu32, b->cfg.renew_ms);
    snprintf(retry, sizeof retry, "%" PRIu32, b->cfg.retry_ms);
    snprintf(deadline, sizeof deadline, "%" PRIu32, b->cfg.renew_deadline_ms);
    char *argv[] = {(char *)test_process_self(),
                    "--candidate",
                    b->redis->url,
                    c->id,
                    lease,
                    renew,
                    retry,
                    deadline,
                    NULL};
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        perror("failover: pipe2");
        exit(1);
    }
    c->pid = test_process_spawn(argv, fds[1]);
    close(fds[1]);
    c->fd = fds[0];
    c->len = 0;
    c->ready = false;
    c->elected_ns = 0;
    if (c->pid < 0)
        exit(1);
    while (!c->ready)
        pump(b, "ready candidate");
}

/* SIGKILL (test_process_kill reaps) and forget the slot. */
static void kill_candidate(bench *b, int slot)
{
    candidate *c = &b->cand[slot];
    test_process_kill(c->pid);
    c->pid = 0;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

/* After SIGTERM: waits for the candidate to close its pipe (it has exited
 * or is about to), then reaps it. */
static void reap_stopped_candidate(bench *b, int slot)
{
    while (b->cand[slot].fd >= 0)
        pump(b, "exit of a stopped candidate");
    kill_candidate(b, slot); /* reaps; SIGKILL only if it hung */
}

/* ------------------------------------------------------------ statistics */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted[0..n). */
static double percentile(const uint64_t *sorted, size_t n, unsigned p)
{
    size_t rank = (p * n + 99) / 100;
    return (double)sorted[rank == 0 ? 0 : rank - 1] / 1e6;
}

static void print_distribution(const char *what, uint64_t *ns, size_t n)
{
    qsort(ns, n, sizeof *ns, cmp_u64);
    printf("  %-48s %8.1f %8.1f %8.1f %8.1f\n", what, (double)ns[0] / 1e6, percentile(ns, n, 50),
           percentile(ns, n, 90), (double)ns[n - 1] / 1e6);
}

/* Calls per command from INFO commandstats. */
typedef struct command_calls {
    int n;
    char name[64][48];
    unsigned long long calls[64];
} command_calls;

static void read_commandstats(bench *b, command_calls *out)
{
    memset(out, 0, sizeof *out);
    redisReply *r = redis_server_cmd(b->redis, "INFO commandstats");
    if (!r || r->type != REDIS_REPLY_STRING) {
        fprintf(stderr, "failover: INFO commandstats failed\n");
        exit(1);
    }
    for (char *line = strtok(r->str, "\r\n"); line && out->n < 64; line = strtok(NULL, "\r\n")) {
        char name[48];
        unsigned long long calls;
        if (sscanf(line, "cmdstat_%47[^:]:calls=%llu", name, &calls) == 2) {
            snprintf(out->name[out->n], sizeof out->name[0], "%s", name);
            out->calls[out->n++] = calls;
        }
    }
    freeReplyObject(r);
}

static unsigned long long calls_of(const command_calls *c, const char *name)
{
    for (int i = 0; i < c->n; i++)
        if (strcmp(c->name[i], name) == 0)
            return c->calls[i];
    return 0;
}

/* Commands per second, by command, over `seconds` of what runs now.  The
 * bench's own INFO (one per interval) is not counted. */
typedef struct command_rates {
    int n;
    char name[64][48];
    double per_s[64];
    double total;
} command_rates;

static void measure_rates(bench *b, command_rates *out)
{
    command_calls before, after;
    read_commandstats(b, &before);
    uint64_t t0 = test_now_ms();
    test_sleep_ms(b->cfg.stats_seconds * 1000u);
    read_commandstats(b, &after);
    double secs = (double)(test_now_ms() - t0) / 1000.0;
    memset(out, 0, sizeof *out);
    for (int i = 0; i < after.n; i++) {
        unsigned long long d = after.calls[i] - calls_of(&before, after.name[i]);
        if (strcmp(after.name[i], "info") == 0 && d > 0)
            d--; /* the bench's first INFO */
        if (d == 0)
            continue;
        snprintf(out->name[out->n], sizeof out->name[0], "%s", after.name[i]);
        out->per_s[out->n] = (double)d / secs;
        out->total += out->per_s[out->n++];
    }
}

static double rate_of(const command_rates *r, const char *name)
{
    for (int i = 0; i < r->n; i++)
        if (strcmp(r->name[i], name) == 0)
            return r->per_s[i];
    return 0;
}

static void print_rates(const char *what, const command_rates *r, const command_rates *minus)
{
    double total = r->total - (minus ? minus->total : 0);
    printf("  %-22s %7.2f commands/s  (", what, total);
    bool first = true;
    for (int i = 0; i < r->n; i++) {
        double v = r->per_s[i] - (minus ? rate_of(minus, r->name[i]) : 0);
        if (v < 0.005 && v > -0.005)
            continue;
        printf("%s%s %.2f", first ? "" : ", ", r->name[i], v);
        first = false;
    }
    if (minus) {
        for (int i = 0; i < minus->n; i++) { /* commands only the leader alone sent */
            if (rate_of(r, minus->name[i]) == 0) {
                printf("%s%s %.2f", first ? "" : ", ", minus->name[i], -minus->per_s[i]);
                first = false;
            }
        }
    }
    printf(")\n");
}

/* ------------------------------------------------------------------ main */

static void usage(FILE *to)
{
    fprintf(to, "Usage: failover [--rounds N] [--lease-ms MS] [--renew-ms MS] [--retry-ms MS]\n"
                "                [--renew-deadline-ms MS] [--stats-seconds S]\n"
                "Measures crash failover (SIGKILL to the leader) and graceful handover (SIGTERM)\n"
                "among 3 candidates on a private redis-server, then the Redis commands per second\n"
                "a leader and an idle follower cost.  Defaults: 20 rounds, the library's timing,\n"
                "5 s per cost measurement.\n");
}

static bool parse_args(int argc, char **argv, bench_config *cfg)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            exit(0);
        }
        uint32_t *target = NULL, value;
        if (strcmp(argv[i], "--lease-ms") == 0)
            target = &cfg->lease_ms;
        else if (strcmp(argv[i], "--renew-ms") == 0)
            target = &cfg->renew_ms;
        else if (strcmp(argv[i], "--retry-ms") == 0)
            target = &cfg->retry_ms;
        else if (strcmp(argv[i], "--renew-deadline-ms") == 0)
            target = &cfg->renew_deadline_ms;
        bool is_rounds = strcmp(argv[i], "--rounds") == 0;
        bool is_stats = strcmp(argv[i], "--stats-seconds") == 0;
        if (!target && !is_rounds && !is_stats) {
            fprintf(stderr, "failover: unknown option %s (see --help)\n", argv[i]);
            return false;
        }
        if (i + 1 >= argc || !parse_u32(argv[i + 1], &value) || value == 0) {
            fprintf(stderr, "failover: %s needs a positive number\n", argv[i]);
            return false;
        }
        i++;
        if (target)
            *target = value;
        else if (is_rounds)
            cfg->rounds = value;
        else
            cfg->stats_seconds = value;
    }
    return true;
}

/* Rounds of crash failover and graceful handover; fills the two arrays. */
static void run_rounds(bench *b, uint64_t *crash_ns, uint64_t *graceful_ns)
{
    for (int i = 0; i < CANDIDATES; i++)
        start_candidate(b, i);
    printf("waiting for the first election...\n");
    int leader = wait_elected(b, 0, -1);

    printf("\n%6s %18s %22s\n", "round", "crash failover ms", "graceful handover ms");
    for (unsigned r = 0; r < b->cfg.rounds; r++) {
        uint64_t t0 = now_ns();
        test_process_signal(b->cand[leader].pid, SIGKILL);
        int dead = leader;
        leader = wait_elected(b, t0, dead);
        crash_ns[r] = b->cand[leader].elected_ns - t0;
        kill_candidate(b, dead); /* already dead: only reaps */
        start_candidate(b, dead);

        t0 = now_ns();
        test_process_signal(b->cand[leader].pid, SIGTERM);
        int stopping = leader;
        leader = wait_elected(b, t0, stopping);
        graceful_ns[r] = b->cand[leader].elected_ns - t0;
        reap_stopped_candidate(b, stopping);
        start_candidate(b, stopping);
        printf("%6u %18.1f %22.1f\n", r + 1, (double)crash_ns[r] / 1e6,
               (double)graceful_ns[r] / 1e6);
        fflush(stdout);
    }
    for (int i = 0; i < CANDIDATES; i++) {
        test_process_signal(b->cand[i].pid, SIGTERM);
        reap_stopped_candidate(b, i);
    }
}

/* Commands per second: the leader alone, then the leader and one follower. */
static void run_cost(bench *b, command_rates *alone, command_rates *pair)
{
    printf("\nmeasuring Redis commands per second (%u s each)...\n", b->cfg.stats_seconds);
    start_candidate(b, 0);
    wait_elected(b, 0, -1);
    test_sleep_ms(b->cfg.lease_ms); /* past the first claims and renewals */
    measure_rates(b, alone);
    start_candidate(b, 1);
    test_sleep_ms(b->cfg.lease_ms); /* past its connect and first claim */
    measure_rates(b, pair);
    for (int i = 0; i < 2; i++) {
        test_process_signal(b->cand[i].pid, SIGTERM);
        reap_stopped_candidate(b, i);
    }
}

int main(int argc, char **argv)
{
    if (argc == 8 && strcmp(argv[1], "--candidate") == 0)
        return candidate_main(argv + 2);

    leasehold_config d;
    leasehold_config_init(&d);
    static bench b;
    b.cfg = (bench_config){
        .rounds = 20,
        .lease_ms = d.lease_ms,
        .renew_ms = d.renew_interval_ms,
        .retry_ms = d.retry_interval_ms,
        .renew_deadline_ms = d.renew_deadline_ms,
        .stats_seconds = 5,
    };
    if (!parse_args(argc, argv, &b.cfg))
        return 64;
    for (int i = 0; i <= CANDIDATES; i++)
        b.cand[i].fd = -1;
    signal(SIGPIPE, SIG_IGN);

    b.redis = redis_server_start(NULL);
    if (!b.redis)
        return 69;
    printf("leasehold failover benchmark\n"
           "  redis-server %s (private), key %s, %d candidates (child processes)\n"
           "  lease %" PRIu32 " ms, renew every %" PRIu32 " ms, retry %" PRIu32
           " ms, renew deadline %" PRIu32 " ms\n"
           "  %u rounds; each: SIGKILL the leader, restart it; SIGTERM the new leader, "
           "restart it\n"
           "  times: from the signal to the successor's elected callback (CLOCK_MONOTONIC)\n\n",
           b.redis->url, KEY, CANDIDATES, b.cfg.lease_ms, b.cfg.renew_ms, b.cfg.retry_ms,
           b.cfg.renew_deadline_ms, b.cfg.rounds);
    fflush(stdout);

    uint64_t *crash_ns = calloc(b.cfg.rounds, sizeof *crash_ns);
    uint64_t *graceful_ns = calloc(b.cfg.rounds, sizeof *graceful_ns);
    if (!crash_ns || !graceful_ns) {
        fprintf(stderr, "failover: out of memory\n");
        return 71;
    }
    run_rounds(&b, crash_ns, graceful_ns);
    static command_rates alone, pair;
    run_cost(&b, &alone, &pair);
    redis_server_stop(b.redis);

    printf("\n%-50s %8s %8s %8s %8s\n", "failover in ms, signal -> successor elected", "min",
           "median", "p90", "max");
    print_distribution("crash (SIGKILL; waits for the lease to lapse)", crash_ns, b.cfg.rounds);
    print_distribution("graceful (SIGTERM; lease released)", graceful_ns, b.cfg.rounds);
    printf("\nRedis load (INFO commandstats; commands run by the Lua scripts count too):\n");
    print_rates("leader alone", &alone, NULL);
    print_rates("leader + 1 follower", &pair, NULL);
    print_rates("one idle follower", &pair, &alone);
    printf("  (the follower is the difference of two %u s samples: each command's rate is\n"
           "   known to about +-%.2f/s, so a small negative number is sampling noise)\n",
           b.cfg.stats_seconds, 2.0 / b.cfg.stats_seconds);
    free(crash_ns);
    free(graceful_ns);
    return 0;
}
