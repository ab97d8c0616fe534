/* scale.c — many elections per process: what they cost, and a crash.
 *
 * P member processes (3 by default), each one leasehold_client campaigning
 * for the same N keys, against a private redis-server.  Once every key has a
 * leader the bench measures, over a window: each member's CPU (utime+stime,
 * % of one core), RSS and RSS per election (against the member's RSS before
 * its campaigns), the requests Redis received per second against the
 * protocol's minimum (a renewal per renew interval for each key, a claim per
 * retry interval for each follower), and how the leaderships are spread.
 * Then it SIGKILLs the member that leads the most keys and times, for each
 * key it led, the next member's elected callback after the kill: median,
 * p99, max, and the keys that waited longer than lease + retry.  Every
 * elected and revoked callback of every member is kept per key, and the
 * bench checks that no two members' terms overlapped (the killed member's
 * end at the kill).  For a sample of the keys (every SAMPLE_EVERY-th, at
 * least 100 keys) each member also acts as the chaos probe does, every
 * 10 ms while it leads, and the chaos checker's safety rule judges each
 * sampled key's actions (tests/chaos/checker.h).
 *
 * With --cluster the members campaign on a private Redis Cluster instead
 * (3 masters, a replica each, by redis+cluster://; min_replicas is then 1,
 * so every renewal, and every claim that wins, is followed by WAIT), and
 * Redis's load is the sum over the masters.
 *
 *   build/bench/scale --elections 10000 --lease-ms 10000 --renew-ms 1500 --retry-ms 5000
 *   make bench-scale   (the profiles of the README's table)
 *
 * Members report on a pipe, one line per callback: "e KEY EPOCH NS",
 * "r KEY NS", "ready RSS_KB_BEFORE", "x MESSAGE" (an error, the first few),
 * and "a KEY EPOCH NS" per action.  Callback times are CLOCK_BOOTTIME in ns,
 * action stamps CLOCK_MONOTONIC (as the chaos probe's); each is one clock
 * for every process.
 */
#include "bench.h"
#include "checker.h"
#include "redis_cluster.h"

#include <leasehold.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_MEMBERS  8
#define SAMPLED_KEYS 100 /* keys whose actions the checker judges */

/* Every how many keys one is sampled. */
static uint32_t sample_every(uint32_t elections)
{
    return elections > SAMPLED_KEYS ? elections / SAMPLED_KEYS : 1;
}

static uint64_t monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

typedef struct options {
    uint32_t elections, members, seconds;
    uint32_t lease_ms, renew_ms, retry_ms, renew_deadline_ms, command_timeout_ms;
    bool cluster; /* --cluster */
} options;

/* ------------------------------------------------------------- member */

static int report_fd = STDOUT_FILENO;
static atomic_int errors_reported;

static void member_elected(leasehold_election *e, uint64_t epoch, void *arg)
{
    (void)e;
    bench_write_line(report_fd, "e %lu %" PRIu64 " %" PRIu64, (unsigned long)(uintptr_t)arg, epoch,
                     bench_now_ns());
}

static void member_revoked(leasehold_election *e, leasehold_reason reason, void *arg)
{
    (void)e, (void)reason;
    bench_write_line(report_fd, "r %lu %" PRIu64, (unsigned long)(uintptr_t)arg, bench_now_ns());
}

static void member_error(leasehold_election *e, const leasehold_error *err, void *arg)
{
    (void)e, (void)arg;
    if (atomic_fetch_add(&errors_reported, 1) < 5)
        bench_write_line(report_fd, "x %s", err->msg);
}

static volatile sig_atomic_t member_stop;
static atomic_bool sampler_stop;

typedef struct sampled {
    leasehold_election **e;
    uint32_t *key;
    uint32_t n;
} sampled;

/* Acts for each sampled key it leads every 10 ms, as tests/chaos/probe.c's
 * act(): the epoch, is_leader, the stamp, is_leader and the epoch again, so
 * that an action line is stamped only inside its term.  One write per sweep,
 * so the sampling costs little of the CPU the bench measures. */
static void *sampler_main(void *arg)
{
    const sampled *s = arg;
    static char buf[SAMPLED_KEYS * 2 * 64];
    while (!atomic_load(&sampler_stop)) {
        size_t len = 0;
        for (uint32_t i = 0; i < s->n && len + 64 < sizeof buf; i++) {
            uint64_t epoch = leasehold_epoch(s->e[i]);
            if (epoch == 0 || !leasehold_is_leader(s->e[i]))
                continue;
            uint64_t ns = monotonic_ns();
            if (!leasehold_is_leader(s->e[i]) || leasehold_epoch(s->e[i]) != epoch)
                continue;
            len +=
                (size_t)snprintf(buf + len, sizeof buf - len,
                                 "a %" PRIu32 " %" PRIu64 " %" PRIu64 "\n", s->key[i], epoch, ns);
        }
        if (len) {
            ssize_t w = write(report_fd, buf, len);
            (void)w;
        }
        struct timespec pause = {0, 10000000};
        nanosleep(&pause, NULL);
    }
    return NULL;
}

static void on_term(int sig)
{
    (void)sig;
    member_stop = 1;
}

/* The member: argv = URL N lease renew retry deadline command_timeout. */
static int member_main(int argc, char **argv)
{
    uint32_t v[6];
    if (argc != 7) {
        fprintf(stderr, "scale: a member takes 7 arguments\n");
        return 64;
    }
    for (int i = 0; i < 6; i++)
        if (!bench_parse_u32(argv[1 + i], &v[i]))
            return 64;
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_term};
    sigaction(SIGTERM, &sa, NULL);
    leasehold_config cfg;
    leasehold_config_init(&cfg);
    cfg.url = argv[0];
    cfg.lease_ms = v[1];
    cfg.renew_interval_ms = v[2];
    cfg.retry_interval_ms = v[3];
    cfg.renew_deadline_ms = v[4];
    cfg.command_timeout_ms = v[5];
    cfg.log_level = LEASEHOLD_LOG_ERROR;
    leasehold_error err;
    leasehold_client *c = leasehold_client_new(&cfg, &err);
    if (!c) {
        bench_write_line(report_fd, "x %s", err.msg);
        return 69;
    }
    long rss0 = cost_rss_kb(getpid()); /* the client, before any election */
    leasehold_callbacks cb = {
        .elected = member_elected, .revoked = member_revoked, .error = member_error};
    uint32_t every = sample_every(v[0]);
    sampled s = {calloc(v[0] / every + 1, sizeof *s.e), calloc(v[0] / every + 1, sizeof *s.key), 0};
    if (!s.e || !s.key)
        return 70;
    for (uint32_t i = 0; i < v[0]; i++) {
        char key[48];
        snprintf(key, sizeof key, "lh:scale:%" PRIu32, i);
        leasehold_election *e = leasehold_campaign(c, key, &cb, (void *)(uintptr_t)i, &err);
        if (!e) {
            bench_write_line(report_fd, "x %s", err.msg);
            return 70;
        }
        if (i % every == 0 && s.n < SAMPLED_KEYS) {
            s.e[s.n] = e;
            s.key[s.n++] = i;
        }
    }
    pthread_t sampler;
    if (pthread_create(&sampler, NULL, sampler_main, &s) != 0)
        return 71;
    bench_write_line(report_fd, "ready %ld", rss0);
    sigset_t none;
    sigemptyset(&none);
    while (!member_stop)
        sigsuspend(&none);
    atomic_store(&sampler_stop, true);
    pthread_join(sampler, NULL);
    leasehold_client_free(c);
    free(s.e);
    free(s.key);
    return 0;
}

/* ---------------------------------------------------------------- bench */

typedef struct member {
    pid_t pid;
    int fd;
    bool ready, dead;
    long rss0_kb;
    char buf[65536];
    size_t len;
    uint32_t leads; /* keys it leads now */
} member;

/* One term of one key, as the callbacks told it. */
typedef struct term {
    uint8_t who;
    uint64_t from, to; /* ns; to = UINT64_MAX while open */
} term;

typedef struct key_state {
    int leader; /* the member whose term is open, -1 none */
    term *terms;
    uint32_t nterms, cap;
    checker_event *actions; /* a sampled key's, as the checker takes them */
    size_t nactions, acap;
} key_state;

static options opt;
static member members[MAX_MEMBERS];
static key_state *keys;
static uint32_t errors_seen;

static void key_open(uint32_t k, int who, uint64_t ns)
{
    key_state *s = &keys[k];
    if (s->nterms == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 4;
        s->terms = realloc(s->terms, s->cap * sizeof *s->terms);
        if (!s->terms) {
            fprintf(stderr, "scale: out of memory\n");
            exit(70);
        }
    }
    s->terms[s->nterms++] = (term){(uint8_t)who, ns, UINT64_MAX};
    s->leader = who;
    members[who].leads++;
}

static void key_close(uint32_t k, int who, uint64_t ns)
{
    key_state *s = &keys[k];
    for (uint32_t i = s->nterms; i-- > 0;)
        if (s->terms[i].who == who && s->terms[i].to == UINT64_MAX) {
            s->terms[i].to = ns;
            members[who].leads--;
            break;
        }
    if (s->leader == who)
        s->leader = -1;
}

/* An action of member who for key k. */
static void key_action(uint32_t k, int who, uint64_t epoch, uint64_t ns)
{
    key_state *s = &keys[k];
    if (s->nactions == s->acap) {
        s->acap = s->acap ? 2 * s->acap : 256;
        s->actions = realloc(s->actions, s->acap * sizeof *s->actions);
        if (!s->actions) {
            fprintf(stderr, "scale: out of memory\n");
            exit(70);
        }
    }
    s->actions[s->nactions++] =
        (checker_event){.kind = CHECKER_ACTION, .ns = ns, .epoch = epoch, .id = (size_t)who};
}

/* One line from member who. */
static void handle_line(int who, char *line)
{
    unsigned long k;
    uint64_t epoch, ns;
    long rss;
    if (sscanf(line, "a %lu %" SCNu64 " %" SCNu64, &k, &epoch, &ns) == 3 && k < opt.elections)
        key_action((uint32_t)k, who, epoch, ns);
    else if (sscanf(line, "e %lu %" SCNu64 " %" SCNu64, &k, &epoch, &ns) == 3 && k < opt.elections)
        key_open((uint32_t)k, who, ns);
    else if (sscanf(line, "r %lu %" SCNu64, &k, &ns) == 2 && k < opt.elections)
        key_close((uint32_t)k, who, ns);
    else if (sscanf(line, "ready %ld", &rss) == 1) {
        members[who].ready = true;
        members[who].rss0_kb = rss;
    } else if (line[0] == 'x' && errors_seen++ < 10)
        fprintf(stderr, "scale: member %d: %s\n", who, line + 2);
}

/* Reads what the members wrote, waiting up to wait_ms for the first byte. */
static void pump(int wait_ms)
{
    struct pollfd pfd[MAX_MEMBERS];
    for (uint32_t m = 0; m < opt.members; m++)
        pfd[m] = (struct pollfd){.fd = members[m].fd, .events = POLLIN};
    if (poll(pfd, opt.members, wait_ms) <= 0)
        return;
    for (uint32_t m = 0; m < opt.members; m++) {
        member *mb = &members[m];
        if (mb->fd < 0 || !(pfd[m].revents & (POLLIN | POLLHUP)))
            continue;
        ssize_t n = read(mb->fd, mb->buf + mb->len, sizeof mb->buf - mb->len - 1);
        if (n <= 0) {
            close(mb->fd);
            mb->fd = -1;
            continue;
        }
        mb->len += (size_t)n;
        char *start = mb->buf, *nl;
        while ((nl = memchr(start, '\n', mb->len - (size_t)(start - mb->buf)))) {
            *nl = '\0';
            handle_line((int)m, start);
            start = nl + 1;
        }
        mb->len -= (size_t)(start - mb->buf);
        memmove(mb->buf, start, mb->len);
    }
}

/* Pumps until ms have passed. */
static void pump_for(uint64_t ms)
{
    uint64_t end = bench_now_ns() + ms * 1000000u;
    for (uint64_t now; (now = bench_now_ns()) < end;)
        pump((int)((end - now) / 1000000u) + 1);
}

static uint32_t keys_led(void)
{
    uint32_t n = 0;
    for (uint32_t k = 0; k < opt.elections; k++)
        n += keys[k].leader >= 0;
    return n;
}

static void start_member(uint32_t m, const char *url)
{
    char num[6][16];
    uint32_t v[6] = {opt.elections, opt.lease_ms,          opt.renew_ms,
                     opt.retry_ms,  opt.renew_deadline_ms, opt.command_timeout_ms};
    for (int i = 0; i < 6; i++)
        snprintf(num[i], sizeof num[i], "%" PRIu32, v[i]);
    char *argv[] = {(char *)test_process_self(),
                    "--member",
                    (char *)url,
                    num[0],
                    num[1],
                    num[2],
                    num[3],
                    num[4],
                    num[5],
                    NULL};
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        perror("scale: pipe2");
        exit(71);
    }
    members[m].pid = test_process_spawn(argv, fds[1]);
    close(fds[1]);
    members[m].fd = fds[0];
    if (members[m].pid < 0)
        exit(71);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Terms of one key that overlap, the killed member's ending at kill_ns. */
static uint32_t overlaps(const key_state *s, int killed, uint64_t kill_ns, uint64_t end_ns)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < s->nterms; i++)
        for (uint32_t j = i + 1; j < s->nterms; j++) {
            const term *a = &s->terms[i], *b = &s->terms[j];
            if (a->who == b->who)
                continue;
            uint64_t ato = a->who == killed && a->to > kill_ns ? kill_ns : a->to;
            uint64_t bto = b->who == killed && b->to > kill_ns ? kill_ns : b->to;
            if (ato == UINT64_MAX)
                ato = end_ns;
            if (bto == UINT64_MAX)
                bto = end_ns;
            uint64_t from = a->from > b->from ? a->from : b->from;
            uint64_t to = ato < bto ? ato : bto;
            n += to > from;
        }
    return n;
}

/* Runs the chaos checker's rules on each sampled key's actions: the keys
 * judged, the violations, the actions and terms seen.  -1: out of memory. */
static int check_actions(uint32_t *judged, uint32_t *violations, size_t *actions, size_t *terms)
{
    char names[MAX_MEMBERS][16];
    char *ids[MAX_MEMBERS];
    for (uint32_t m = 0; m < opt.members; m++) {
        snprintf(names[m], sizeof names[m], "m%u", m);
        ids[m] = names[m];
    }
    checker_opts co = {.lease_ms = opt.lease_ms, .retry_ms = opt.retry_ms};
    uint32_t every = sample_every(opt.elections);
    for (uint32_t k = 0; k < opt.elections; k += every) {
        key_state *s = &keys[k];
        if (!s->nactions)
            continue;
        checker_history h = {.events = s->actions,
                             .n_events = s->nactions,
                             .ids = ids,
                             .n_ids = opt.members,
                             .n_logs = opt.members,
                             .start_ns = UINT64_MAX};
        for (size_t i = 0; i < s->nactions; i++) {
            if (s->actions[i].ns < h.start_ns)
                h.start_ns = s->actions[i].ns;
            if (s->actions[i].ns > h.end_ns)
                h.end_ns = s->actions[i].ns;
        }
        checker_result r;
        if (checker_analyze(&h, &co, &r) < 0)
            return -1;
        (*judged)++;
        *violations += (uint32_t)r.n_violations;
        *actions += r.n_actions;
        *terms += r.n_terms;
        checker_result_free(&r);
    }
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: scale [--elections N] [--members P] [--seconds W] [--lease-ms MS]\n"
               "             [--renew-ms MS] [--retry-ms MS] [--renew-deadline-ms MS]\n"
               "             [--command-timeout-ms MS] [--cluster]\n"
               "P members (default 3) each campaign for the same N keys (default 1000) on a\n"
               "private redis-server (--cluster: a private 3-master Redis Cluster); the cost\n"
               "over W seconds (default 20), then a SIGKILL.\n");
}

static bool parse_args(int argc, char **argv)
{
    opt = (options){.elections = 1000, .members = 3, .seconds = 20};
    leasehold_config d;
    leasehold_config_init(&d);
    opt.lease_ms = d.lease_ms;
    opt.renew_ms = d.renew_interval_ms;
    opt.retry_ms = d.retry_interval_ms;
    opt.renew_deadline_ms = d.renew_deadline_ms;
    opt.command_timeout_ms = d.command_timeout_ms;
    bool deadline_given = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            exit(0);
        }
        if (strcmp(argv[i], "--cluster") == 0) {
            opt.cluster = true;
            continue;
        }
        static const char *const names[] = {
            "--elections", "--members",  "--seconds",           "--lease-ms",
            "--renew-ms",  "--retry-ms", "--renew-deadline-ms", "--command-timeout-ms"};
        uint32_t *targets[] = {&opt.elections,         &opt.members,           &opt.seconds,
                               &opt.lease_ms,          &opt.renew_ms,          &opt.retry_ms,
                               &opt.renew_deadline_ms, &opt.command_timeout_ms};
        uint32_t *t = NULL;
        for (size_t k = 0; k < sizeof names / sizeof names[0]; k++)
            if (strcmp(argv[i], names[k]) == 0)
                t = targets[k];
        if (!t || i + 1 >= argc || !bench_parse_u32(argv[i + 1], t) || *t == 0) {
            fprintf(stderr, "scale: bad option %s (see --help)\n", argv[i]);
            return false;
        }
        deadline_given |= t == &opt.renew_deadline_ms;
        i++;
    }
    if (!deadline_given) /* the default's proportion to the lease */
        opt.renew_deadline_ms =
            (uint32_t)((uint64_t)opt.lease_ms * d.renew_deadline_ms / d.lease_ms);
    if (opt.members < 2 || opt.members > MAX_MEMBERS) {
        fprintf(stderr, "scale: --members takes 2 to %d\n", MAX_MEMBERS);
        return false;
    }
    return true;
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--member") == 0)
        return member_main(argc - 2, argv + 2);
    if (!parse_args(argc, argv))
        return 64;
    signal(SIGPIPE, SIG_IGN);
    keys = calloc(opt.elections, sizeof *keys);
    if (!keys)
        return 70;
    for (uint32_t k = 0; k < opt.elections; k++)
        keys[k].leader = -1;
    /* One Redis, or a Cluster's masters (whose commands are summed). */
    redis_server *redis = NULL;
    redis_cluster *cl = NULL;
    redis_server *masters[3];
    int n_masters = 1;
    if (opt.cluster) {
        cl = redis_cluster_start(NULL);
        if (!cl)
            return 69;
        n_masters = 3;
        for (int i = 0; i < 3; i++)
            masters[i] = cl->node[i];
    } else {
        redis = masters[0] = redis_server_start(NULL);
        if (!redis)
            return 69;
    }
    const char *url = cl ? cl->url : redis->url;
    printf("leasehold scale benchmark: %" PRIu32 " members x %" PRIu32
           " elections (the same keys), %s\n"
           "  lease %" PRIu32 " ms, renew %" PRIu32 " ms, retry %" PRIu32
           " ms, renew deadline %" PRIu32 " ms, command timeout %" PRIu32 " ms; %ld cores\n",
           opt.members, opt.elections,
           cl ? "private Redis Cluster (3 masters, 3 replicas)" : "private redis-server",
           opt.lease_ms, opt.renew_ms, opt.retry_ms, opt.renew_deadline_ms, opt.command_timeout_ms,
           sysconf(_SC_NPROCESSORS_ONLN));
    fflush(stdout);

    uint64_t t_start = bench_now_ns();
    for (uint32_t m = 0; m < opt.members; m++)
        start_member(m, url);
    /* Every member campaigning and every key led, within a generous bound. */
    uint64_t limit = t_start + (60000u + 2u * opt.lease_ms + 2u * opt.retry_ms) * 1000000ull;
    for (;;) {
        bool ready = true;
        for (uint32_t m = 0; m < opt.members; m++)
            ready &= members[m].ready;
        if (ready && keys_led() == opt.elections)
            break;
        if (bench_now_ns() > limit) {
            fprintf(stderr, "scale: only %" PRIu32 " of %" PRIu32 " keys led after %.0f s\n",
                    keys_led(), opt.elections, (double)(bench_now_ns() - t_start) / 1e9);
            return 1;
        }
        pump(100);
    }
    printf("  every key led %.1f s after the members started\n",
           (double)(bench_now_ns() - t_start) / 1e9);
    /* A retry interval for the followers' timers to settle into their pace. */
    pump_for(opt.retry_ms);

    long long cpu0[MAX_MEMBERS];
    for (uint32_t m = 0; m < opt.members; m++)
        cpu0[m] = cost_cpu_ticks(members[m].pid);
    command_calls before = {0}, after = {0}, one;
    for (int i = 0; i < n_masters; i++) {
        cost_read_commandstats(masters[i], &one);
        cost_add_calls(&before, &one);
    }
    uint64_t w0 = bench_now_ns();
    pump_for((uint64_t)opt.seconds * 1000u);
    for (int i = 0; i < n_masters; i++) {
        cost_read_commandstats(masters[i], &one);
        cost_add_calls(&after, &one);
    }
    double secs = (double)(bench_now_ns() - w0) / 1e9;
    long hz = sysconf(_SC_CLK_TCK);
    command_rates rates;
    cost_rates(&before, &after, secs, &rates);
    double minimum = (double)opt.elections * 1000.0 / opt.renew_ms +
                     (double)opt.elections * (opt.members - 1) * 1000.0 / opt.retry_ms;
    if (cl) /* min_replicas 1: a WAIT after each renewal (and each claim that wins) */
        minimum += (double)opt.elections * 1000.0 / opt.renew_ms;
    printf("\ncost over %.1f s:\n", secs);
    printf("  %-8s %10s %10s %14s %8s\n", "member", "CPU %core", "RSS MiB", "bytes/election",
           "leads");
    uint32_t most = 0;
    for (uint32_t m = 0; m < opt.members; m++) {
        long long cpu = cost_cpu_ticks(members[m].pid) - cpu0[m];
        long rss = cost_rss_kb(members[m].pid);
        printf("  %-8u %10.2f %10.1f %14.0f %8u\n", m, 100.0 * (double)cpu / (double)hz / secs,
               (double)rss / 1024.0, (double)(rss - members[m].rss0_kb) * 1024.0 / opt.elections,
               members[m].leads);
        if (members[m].leads > members[most].leads)
            most = m;
    }
    printf("  Redis: %.0f requests/s from clients (%s); the protocol's minimum %.0f/s "
           "(ratio %.3f); %.0f commands/s run in all\n",
           rates.requests, rates.detail, minimum, rates.requests / minimum, rates.commands);

    /* The crash: the member that leads the most keys. */
    uint32_t *led = malloc(opt.elections * sizeof *led);
    uint64_t *waits = malloc(opt.elections * sizeof *waits);
    if (!led || !waits)
        return 70;
    uint32_t nled = 0;
    for (uint32_t k = 0; k < opt.elections; k++)
        if (keys[k].leader == (int)most)
            led[nled++] = k;
    uint64_t kill_ns = bench_now_ns();
    test_process_kill(members[most].pid);
    members[most].dead = true;
    while (members[most].fd >= 0) /* what it wrote before it died */
        pump(100);
    for (uint32_t k = 0; k < opt.elections; k++)
        if (keys[k].leader == (int)most)
            key_close(k, (int)most, kill_ns);
    uint64_t bound_ns = (uint64_t)(opt.lease_ms + opt.retry_ms) * 1000000u;
    uint64_t give_up = kill_ns + bound_ns + 30000000000ull;
    uint32_t replaced = 0;
    while (bench_now_ns() < give_up) {
        replaced = 0;
        for (uint32_t k = 0; k < nled; k++)
            replaced += keys[led[k]].leader >= 0;
        if (replaced == nled)
            break;
        pump(100);
    }
    uint32_t n = 0, late = 0;
    for (uint32_t k = 0; k < nled; k++) {
        const key_state *s = &keys[led[k]];
        if (s->leader < 0)
            continue;
        uint64_t w = s->terms[s->nterms - 1].from - kill_ns;
        waits[n++] = w;
        late += w > bound_ns;
    }
    qsort(waits, n, sizeof *waits, cmp_u64);
    printf("\nSIGKILL of member %u, which led %u keys: %u replaced", most, nled, n);
    if (n)
        printf("; new leader after the kill: median %.0f ms, p99 %.0f ms, max %.0f ms",
               (double)waits[n / 2] / 1e6,
               (double)waits[(n * 99) / 100 == n ? n - 1 : (n * 99) / 100] / 1e6,
               (double)waits[n - 1] / 1e6);
    printf("\n  keys without a leader for longer than lease + retry (%" PRIu32 " ms): %u\n",
           opt.lease_ms + opt.retry_ms, late + (nled - n));

    uint64_t end_ns = bench_now_ns();
    uint32_t double_led = 0, terms = 0;
    for (uint32_t k = 0; k < opt.elections; k++) {
        double_led += overlaps(&keys[k], (int)most, kill_ns, end_ns) > 0;
        terms += keys[k].nterms;
    }
    printf("  keys ever led by two members at once (their elected..revoked callbacks, the "
           "killed member's ending at the kill): %u of %" PRIu32 " (%u terms)\n",
           double_led, opt.elections, terms);
    uint32_t judged = 0, violations = 0;
    size_t actions = 0, checked_terms = 0;
    if (check_actions(&judged, &violations, &actions, &checked_terms) < 0)
        return 70;
    printf("  the chaos checker's safety rule on the actions of %u sampled keys (one in %" PRIu32
           "): %u violations (%zu actions in %zu terms)\n",
           judged, sample_every(opt.elections), violations, actions, checked_terms);

    for (uint32_t m = 0; m < opt.members; m++)
        if (!members[m].dead) {
            test_process_signal(members[m].pid, SIGTERM);
            if (!test_process_wait(members[m].pid, 30000, NULL))
                test_process_kill(members[m].pid);
        }
    redis_server_stop(redis);
    redis_cluster_stop(cl);
    bool ok = late + (nled - n) == 0 && double_led == 0 && violations == 0 && errors_seen == 0;
    printf("result: %s\n", ok ? "PASS" : "FAIL");
    return ok ? 0 : 1;
}
