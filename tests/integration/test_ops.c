/*
 * test_ops.c — what operators see: the library's statistics, and the
 * tools' /metrics, /healthz and /readyz (--metrics-listen) and systemd
 * notifications (NOTIFY_SOCKET), against a private redis-server.
 *
 * HTTP is spoken by curl, as an operator would, and by raw sockets for the
 * requests curl will not send (malformed, slow, too many at once).  systemd
 * is a datagram socket of the test's own, given as NOTIFY_SOCKET.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "fixture.h"
#include "testutil.h"
#include "tool_proc.h"

#include "http_server.h"
#include "ops.h"

/* ------------------------------------------------------------- helpers */

/* A path in the test's temporary directory. */
static const char *tmp_path(const char *name)
{
    static char path[8][512];
    static int next;
    char *p = path[next++ % 8];
    snprintf(p, 512, "%s/%s", fx.tmpdir, name);
    return p;
}

/* GETs url with curl (extra: more of its options, shell-quoted) and returns
 * the HTTP status (0: no answer), the body (and headers, with -i) in body. */
static int curl(const char *url, const char *extra, char *body, size_t size)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "curl -s -m 10 %s -w '\\n%%{http_code}' '%s'", extra ? extra : "",
             url);
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    size_t n = fread(body, 1, size - 1, f);
    body[n] = '\0';
    pclose(f);
    char *last = strrchr(body, '\n');
    if (!last)
        return 0;
    *last = '\0';
    return atoi(last + 1);
}

/* The value of the series (the whole name with its labels) in a /metrics
 * body; fails the test when it is missing. */
static double metric(const char *body, const char *series)
{
    size_t len = strlen(series);
    for (const char *l = body; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        if (strncmp(l, series, len) == 0 && l[len] == ' ')
            return strtod(l + len + 1, NULL);
    fail_msg("no series %s in:\n%s", series, body);
    return 0;
}

/* http://ADDR from a tool's "serving /metrics ... on http://ADDR" line. */
static void tool_address(proc *p, char *url, size_t size)
{
    expect_output(p, "/readyz on http://", 10000);
    const char *at = strstr(p->out, "/readyz on http://") + strlen("/readyz on ");
    size_t n = strcspn(at, " \n");
    snprintf(url, size, "%.*s", (int)n, at);
}

/* A datagram socket at path, standing in for systemd's NOTIFY_SOCKET. */
static int notify_open(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    unlink(path);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    return fd;
}

/* The notifications received so far, in order, one per line. */
typedef struct notes {
    int fd;
    char log[16384];
} notes;

/* Reads datagrams into n->log until one starts with prefix (true) or
 * test_ms(max_ms) have passed (false). */
static bool notes_wait(notes *n, const char *prefix, uint64_t max_ms)
{
    uint64_t deadline = test_now_ms() + test_ms(max_ms);
    for (;;) {
        uint64_t now = test_now_ms();
        if (now >= deadline)
            return false;
        struct pollfd pfd = {.fd = n->fd, .events = POLLIN};
        if (poll(&pfd, 1, (int)(deadline - now)) <= 0)
            continue;
        char msg[512];
        ssize_t len = recv(n->fd, msg, sizeof msg - 1, 0);
        if (len <= 0)
            continue;
        msg[len] = '\0';
        size_t used = strlen(n->log);
        snprintf(n->log + used, sizeof n->log - used, "%s\n", msg);
        if (strncmp(msg, prefix, strlen(prefix)) == 0)
            return true;
    }
}

/* Reads and forgets the datagrams already queued. */
static void notes_drain(notes *n)
{
    char msg[512];
    while (recv(n->fd, msg, sizeof msg, MSG_DONTWAIT) > 0) {
    }
    n->log[0] = '\0';
}

/* Connects to the HTTP address "HOST:PORT" (http:// stripped). */
static int http_connect(const char *url)
{
    const char *hp = strncmp(url, "http://", 7) == 0 ? url + 7 : url;
    const char *colon = strrchr(hp, ':');
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    char host[64];
    snprintf(host, sizeof host, "%.*s", (int)(colon - hp), hp);
    assert_int_equal(inet_pton(AF_INET, host, &sa.sin_addr), 1);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    return fd;
}

/* Sends req (len bytes) on a new connection and returns the status line's
 * code, waiting at most test_ms(max_ms). */
static int raw_request(const char *url, const char *req, size_t len, uint64_t max_ms)
{
    int fd = http_connect(url);
    if (len)
        assert_int_equal(send(fd, req, len, MSG_NOSIGNAL), (ssize_t)len);
    char buf[256] = "";
    size_t got = 0;
    uint64_t deadline = test_now_ms() + test_ms(max_ms);
    while (got < 12 && test_now_ms() < deadline) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        ssize_t n = recv(fd, buf + got, sizeof buf - 1 - got, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    buf[got] = '\0';
    return strncmp(buf, "HTTP/1.1 ", 9) == 0 ? atoi(buf + 9) : 0;
}

/* --------------------------------------------- the library's statistics */

typedef struct stats_wait {
    leasehold_election *e;
    uint64_t renewals; /* at least this many renewals counted */
} stats_wait;

static bool renewals_counted(void *arg)
{
    stats_wait *w = arg;
    leasehold_election_stats s;
    leasehold_election_stats_get(w->e, &s);
    return s.renewal_rtt_count >= w->renewals;
}

static bool knows_epoch(void *arg)
{
    leasehold_election *e = arg;
    leasehold_election_stats s;
    leasehold_election_stats_get(e, &s);
    return s.epoch_seen > 0 && s.leader_changes > 0;
}

static bool resigned_counted(void *arg)
{
    leasehold_election_stats s;
    leasehold_election_stats_get(arg, &s);
    return s.terms_lost[LEASEHOLD_RESIGNED] == 1 && s.state == LEASEHOLD_STATE_FOLLOWER;
}

static bool events_live(void *arg)
{
    leasehold_client_stats cs;
    leasehold_client_stats_get(arg, &cs);
    return cs.node_count == 1 && cs.nodes[0].connected && cs.nodes[0].events_connected;
}

static bool disconnect_counted(void *arg)
{
    leasehold_client_stats cs;
    leasehold_client_stats_get(arg, &cs);
    for (unsigned i = 0; i < cs.error_kinds; i++)
        if (cs.errors[i].code == LEASEHOLD_ECONNRESET && cs.errors[i].count > 0)
            return cs.disconnects > 0 && cs.nodes[0].connected;
    return false;
}

/* Two candidates: the counters of leader and follower, through a
 * resignation (the follower takes over) and a connection Redis closes. */
static void test_stats_through_a_handover(void **state)
{
    (void)state;
    leasehold_config cfg;
    test_config(&cfg, fx.srv->url);
    fixture_start_candidates(&cfg, "ops:stats", 2);
    event first = fixture_first_leader(&cfg, -1);
    int l = first.who, f = 1 - l;
    leasehold_election *le = fx.cand[l].election, *fe = fx.cand[f].election;

    stats_wait w = {le, 3};
    assert_true(wait_until(renewals_counted, &w, 2000));
    assert_true(wait_until(knows_epoch, fe, 2000));
    assert_true(wait_until(events_live, fx.cand[l].client, 2000));
    leasehold_election_stats s;
    assert_int_equal(leasehold_election_stats_get(le, &s), 0);
    assert_int_equal(s.state, LEASEHOLD_STATE_LEADER);
    assert_string_equal(leasehold_state_name(s.state), "leader");
    assert_int_equal(s.epoch, first.epoch);
    assert_int_equal(s.epoch_seen, first.epoch);
    assert_int_equal(s.terms_won, 1);
    assert_true(s.lease_left_ms > 0 && s.lease_left_ms <= (int64_t)cfg.lease_ms);
    assert_int_equal(s.term_overdue_ms, 0);
    assert_true(s.claims >= 1);
    assert_true(s.renewals >= 3);
    assert_int_equal(s.renewals_failed, 0);
    assert_true(s.last_renewal_rtt_us > 0);
    assert_true(s.last_renewal_age_ms < cfg.lease_ms);
    uint64_t in_buckets = 0;
    for (int i = 0; i < LEASEHOLD_RTT_BUCKETS; i++)
        in_buckets += s.renewal_rtt_buckets[i];
    assert_int_equal(in_buckets, s.renewal_rtt_count);
    assert_true(s.renewal_rtt_sum_us >= s.renewal_rtt_count);

    assert_int_equal(leasehold_election_stats_get(fe, &s), 0);
    assert_true(s.state == LEASEHOLD_STATE_FOLLOWER || s.state == LEASEHOLD_STATE_CLAIMING);
    assert_int_equal(s.epoch, 0);
    assert_int_equal(s.epoch_seen, first.epoch);
    assert_int_equal(s.terms_won, 0);
    assert_int_equal(s.lease_left_ms, 0);
    assert_true(s.claims >= 1);
    assert_int_equal(s.renewals, 0);
    assert_int_equal(s.last_renewal_age_ms, UINT64_MAX);

    leasehold_client_stats cs;
    assert_int_equal(leasehold_client_stats_get(fx.cand[l].client, &cs), 0);
    assert_int_equal(cs.node_count, 1);
    assert_non_null(strstr(cs.nodes[0].address, "127.0.0.1"));
    assert_true(cs.connects >= 2); /* commands and events */
    assert_true(cs.loop_busy_ms < 1000);

    /* The leader resigns: the follower takes over. */
    assert_int_equal(leasehold_resign(le), 0);
    event next;
    assert_true(events_wait(fx.q, events_of(EV_ELECTED, f), 3000, &next));
    assert_true(wait_until(resigned_counted, le, 3000));
    assert_int_equal(leasehold_election_stats_get(fe, &s), 0);
    assert_int_equal(s.terms_won, 1);
    assert_int_equal(s.epoch, next.epoch);
    assert_true(next.epoch > first.epoch);

    /* Redis closes every connection: counted, as is the error. */
    redisReply *r = redis_server_cmd(fx.srv, "CLIENT KILL TYPE normal");
    assert_non_null(r);
    freeReplyObject(r);
    assert_true(wait_until(disconnect_counted, fx.cand[f].client, 3000));
    assert_true(events_wait(fx.q, events_of(EV_REVOKED, f), 3000, NULL));
    assert_int_equal(leasehold_election_stats_get(fe, &s), 0);
    assert_int_equal(s.terms_lost[LEASEHOLD_DISCONNECTED], 1);

    assert_int_equal(leasehold_election_stats_get(NULL, &s), LEASEHOLD_EINVAL);
    assert_int_equal(leasehold_client_stats_get(NULL, &cs), LEASEHOLD_EINVAL);
}

/* ---------------------------------------------- a wedged I/O thread */

static atomic_bool wedged;

/* An observer's callback that blocks the I/O thread while `wedged`. */
static void block_while_wedged(leasehold_election *e, const char *holder, uint64_t epoch, void *arg)
{
    (void)e, (void)holder, (void)epoch, (void)arg;
    while (atomic_load(&wedged))
        test_sleep_ms(5);
}

typedef struct http_wait {
    const char *url;
    int status;         /* wanted */
    const char *needle; /* in the body, or NULL */
    char body[32768];
} http_wait;

static bool answers(void *arg)
{
    http_wait *w = arg;
    return curl(w->url, NULL, w->body, sizeof w->body) == w->status &&
           (!w->needle || strstr(w->body, w->needle));
}

static bool leads(void *arg)
{
    return leasehold_is_leader(arg);
}

/* A callback that blocks the I/O thread: /healthz fails (the I/O thread is
 * busy; then the term is believed held past its deadline), /readyz too,
 * WATCHDOG=1 stops; all of it comes back once the callback returns. */
static void test_health_of_a_wedged_io_thread(void **state)
{
    (void)state;
    leasehold_config cfg;
    test_config(&cfg, fx.srv->url);
    leasehold_error err;
    leasehold_client *c = leasehold_client_new(&cfg, &err);
    assert_non_null(c);
    leasehold_election *e = leasehold_campaign(c, "ops:wedge", NULL, NULL, &err);
    assert_non_null(e);
    const leasehold_callbacks blocker = {.leader_changed = block_while_wedged};
    assert_non_null(leasehold_observe(c, "ops:wedge:other", &blocker, NULL, &err));

    notes n = {.fd = notify_open(tmp_path("notify-wedge"))};
    setenv("NOTIFY_SOCKET", tmp_path("notify-wedge"), 1);
    setenv("WATCHDOG_USEC", "100000", 1);
    char why[400];
    ops *o = ops_open("127.0.0.1:0", why, sizeof why);
    assert_non_null(o);
    assert_null(getenv("NOTIFY_SOCKET")); /* taken out of the environment */
    const ops_target t = {.client = c, .election = e, .program = "test", .version = "0"};
    assert_int_equal(ops_start(o, &t), 0);
    assert_true(notes_wait(&n, "READY=1", 2000));
    assert_string_equal(n.log, "READY=1\n"); /* first */

    char base[128], url[160];
    snprintf(base, sizeof base, "http://%s", ops_address(o));
    assert_true(wait_until(leads, e, fixture_first_election_ms(&cfg)));
    http_wait hw = {.url = url, .status = 200, .needle = "ok"};
    snprintf(url, sizeof url, "%s/healthz", base);
    assert_true(wait_until(answers, &hw, 2000));
    hw = (http_wait){.url = url, .status = 200, .needle = "leader of ops:wedge"};
    snprintf(url, sizeof url, "%s/readyz", base);
    assert_true(wait_until(answers, &hw, 2000));
    assert_true(notes_wait(&n, "STATUS=leader of ops:wedge", 2000));
    assert_true(notes_wait(&n, "WATCHDOG=1", 2000));

    /* Wedge it: the observer hears of a holder and its callback blocks. */
    atomic_store(&wedged, true);
    redisReply *r = redis_server_cmd(fx.srv, "PUBLISH %s %s", "{ops:wedge:other}:events",
                                     "elected 7 other/0123456789abcdef");
    assert_non_null(r);
    freeReplyObject(r);
    snprintf(url, sizeof url, "%s/healthz", base);
    hw = (http_wait){.url = url, .status = 503, .needle = "I/O thread has been busy"};
    assert_true(wait_until(answers, &hw, 4000));
    hw = (http_wait){.url = url, .status = 503, .needle = "past its deadline"};
    assert_true(wait_until(answers, &hw, 4000));
    snprintf(url, sizeof url, "%s/readyz", base);
    hw = (http_wait){.url = url, .status = 503, .needle = NULL};
    assert_true(wait_until(answers, &hw, 2000));
    snprintf(url, sizeof url, "%s/metrics", base);
    char body[32768];
    assert_int_equal(curl(url, NULL, body, sizeof body), 200);
    assert_true(metric(body, "leasehold_io_busy_seconds") > 1.0);
    assert_true(metric(body, "leasehold_healthy") == 0);
    assert_true(metric(body, "leasehold_leader{key=\"ops:wedge\"}") == 0);
    /* No watchdog keep-alive while wedged (a lower bound: not scaled). */
    notes_drain(&n);
    assert_false(notes_wait(&n, "WATCHDOG=1", 500));

    atomic_store(&wedged, false);
    snprintf(url, sizeof url, "%s/healthz", base);
    hw = (http_wait){.url = url, .status = 200, .needle = "ok"};
    assert_true(wait_until(answers, &hw, 3000));
    assert_true(notes_wait(&n, "WATCHDOG=1", 2000));
    ops_stopping(o);
    assert_true(notes_wait(&n, "STOPPING=1", 2000));
    ops_close(o);
    close(n.fd);
    leasehold_client_free(c);
}

/* --------------------------------------------------- manual step-down */

/* A resign request naming another term, or another token, is ignored; one
 * naming the leader's term (from `leasehold resign`) makes it step down
 * and release, so the other candidate takes over long before the lease
 * could have run out; with nobody holding the key, nothing is asked. */
static int hold_service(leasehold_token *t, void *arg)
{
    (void)arg;
    while (leasehold_token_sleep(t, 1000)) {
    }
    return 0;
}

static void test_resign_request(void **state)
{
    (void)state;
    leasehold_config cfg;
    test_config(&cfg, fx.srv->url);
    fixture_serve_candidates(&cfg, "ops:resign", 2, hold_service);
    event first = fixture_first_leader(&cfg, -1);
    int l = first.who, f = 1 - l;
    char token_l[300], token_f[300];
    snprintf(token_l, sizeof token_l, "%s", leasehold_election_token(fx.cand[l].election));
    snprintf(token_f, sizeof token_f, "%s", leasehold_election_token(fx.cand[f].election));
    assert_true(wait_until(events_live, fx.cand[f].client, 2000));
    assert_true(wait_until(events_live, fx.cand[l].client, 2000));

    /* Stale and foreign requests: heard by both, acted on by none. */
    leasehold_error err;
    assert_int_equal(
        leasehold_request_resign(fx.cand[f].client, "ops:resign", first.epoch - 1, token_l, &err),
        2);
    assert_int_equal(
        leasehold_request_resign(fx.cand[f].client, "ops:resign", first.epoch, token_f, &err), 2);
    assert_int_equal(leasehold_request_resign(fx.cand[f].client, "ops:resign", 0, token_l, &err),
                     LEASEHOLD_EINVAL);
    assert_int_equal(
        leasehold_request_resign(fx.cand[f].client, "ops:resign", first.epoch, "nonsense", &err),
        LEASEHOLD_EINVAL);
    const char *wrong[] = {"resign",     "--url",   fx.srv->url, "--key",
                           "ops:resign", "--token", token_f,     NULL};
    proc *p = proc_start("leasehold", NULL, wrong);
    assert_int_equal(proc_exit_code(p, 10000), 3);
    assert_non_null(strstr(p->out, "nothing asked"));
    proc_free(p);
    /* Nothing happened: a lower bound, not scaled. */
    assert_false(events_wait(fx.q, events_of(EV_REVOKED, -1), 300, NULL));
    assert_true(leasehold_is_leader(fx.cand[l].election));

    /* The leader's own term, asked by the tool: it steps down and releases. */
    const char *args[] = {"resign",  "--url", fx.srv->url, "--key", "ops:resign",
                          "--token", token_l, "--wait",    NULL};
    p = proc_start("leasehold", NULL, args);
    assert_int_equal(proc_exit_code(p, 10000), 0);
    event revoked, next;
    assert_true(events_wait(fx.q, events_of(EV_REVOKED, l), 2000, &revoked));
    assert_int_equal(revoked.value, LEASEHOLD_RESIGNED);
    assert_true(events_wait(fx.q, events_of(EV_ELECTED, f), 2000, &next));
    char expect[700];
    snprintf(expect, sizeof expect, "ops:resign: asked %s (epoch %llu) to step down", token_l,
             (unsigned long long)first.epoch);
    if (!strstr(p->out, expect))
        fail_msg("expected \"%s\" in:\n%s", expect, p->out);
    snprintf(expect, sizeof expect, "ops:resign: %s took over, epoch %llu, ", token_f,
             (unsigned long long)next.epoch);
    const char *took = strstr(p->out, expect);
    if (!took)
        fail_msg("expected \"%s\" in:\n%s", expect, p->out);
    long ms = strtol(took + strlen(expect), NULL, 10);
    print_message("resign: the successor took over %ld ms after the request\n", ms);
    assert_true(ms >= 0 && (uint64_t)ms < test_ms(cfg.lease_ms)); /* released, not expired */
    proc_free(p);

    /* Nobody holds the key: nothing to ask. */
    candidate_stop(&fx.cand[0]);
    candidate_stop(&fx.cand[1]);
    const char *none[] = {"resign", "--url", fx.srv->url, "--key", "ops:resign", NULL};
    p = proc_start("leasehold", NULL, none);
    assert_int_equal(proc_exit_code(p, 10000), 3);
    assert_non_null(strstr(p->out, "nobody holds the key"));
    proc_free(p);

    /* A campaign with no service and no resign_requested callback: its
     * term ends, but its key is left to lapse (its code may still act). */
    assert_int_equal(candidate_start(&fx.cand[2], &cfg, "ops:resign:lapse", fx.q, 2), 0);
    event lone;
    assert_true(events_wait(fx.q, events_of(EV_ELECTED, 2), 3000, &lone));
    const char *tok = leasehold_election_token(fx.cand[2].election);
    assert_true(leasehold_request_resign(fx.cand[2].client, "ops:resign:lapse", lone.epoch, tok,
                                         &err) >= 1);
    assert_true(events_wait(fx.q, events_of(EV_REVOKED, 2), 2000, &revoked));
    assert_int_equal(revoked.value, LEASEHOLD_RESIGNED);
    char held[300];
    fixture_redis_get("ops:resign:lapse", held, sizeof held);
    assert_string_equal(held, tok); /* not released */
    candidate_stop(&fx.cand[2]);
}

/* `leasehold run` asked to step down: CMD gets SIGTERM, the key is
 * released once CMD is gone, and (alone) it is elected again. */
static void test_run_resign(void **state)
{
    (void)state;
    const char *args[] = {"run",
                          "--url",
                          fx.srv->url,
                          "--key",
                          "ops:resign:run",
                          "--lease",
                          "1s",
                          "--retry",
                          "300ms",
                          "--",
                          "sh",
                          "-c",
                          "trap 'echo cmd-got-term; exit 0' TERM; echo cmd-started; "
                          "while :; do sleep 0.05; done",
                          NULL};
    proc *run = proc_start("leasehold", NULL, args);
    expect_output(run, "cmd-started", 10000);
    /* Alone, it is elected again: --wait says no other process took over. */
    const char *lone[] = {"resign",         "--url",          fx.srv->url, "--key",
                          "ops:resign:run", "--wait-timeout", "2s",        NULL};
    proc *r = proc_start("leasehold", NULL, lone);
    assert_int_equal(proc_exit_code(r, 10000), 75);
    assert_non_null(strstr(r->out, "the same process was elected again"));
    proc_free(r);
    expect_output(run, "asked to step down (leasehold resign): SIGTERM", 3000);
    expect_output(run, "cmd-got-term", 3000);
    expect_output(run, "stepped down as asked (leasehold resign); campaigning again", 3000);
    expect_output(run, "lease released", 3000);

    /* With another candidate: it takes over. */
    const char *other_args[] = {"run",
                                "--url",
                                fx.srv->url,
                                "--key",
                                "ops:resign:run",
                                "--lease",
                                "1s",
                                "--retry",
                                "300ms",
                                "--",
                                "sh",
                                "-c",
                                "echo other-started; exec sleep 600",
                                NULL};
    proc *other = proc_start("leasehold", NULL, other_args);
    expect_output(other, "campaigning to run", 5000);
    const char *resign[] = {"resign",         "--url",  fx.srv->url, "--key",
                            "ops:resign:run", "--wait", NULL};
    r = proc_start("leasehold", NULL, resign);
    assert_int_equal(proc_exit_code(r, 10000), 0);
    assert_non_null(strstr(r->out, "took over, epoch"));
    proc_free(r);
    expect_output(other, "other-started", 3000);
    assert_int_equal(kill(other->pid, SIGTERM), 0);
    expect_exit(other, 0, 10000);
    proc_free(other);
    assert_int_equal(kill(run->pid, SIGTERM), 0);
    expect_exit(run, 0, 10000);
    proc_free(run);
}

/* ---------------------------------------------------- preferred leader */

/* Starts candidate who for key with priority. */
static void start_with_priority(int who, const char *key, uint32_t priority)
{
    leasehold_config cfg;
    test_config(&cfg, fx.srv->url);
    cfg.priority = priority;
    cfg.handover_interval_ms = 500;
    cfg.log_level = LEASEHOLD_LOG_DEBUG;
    assert_int_equal(candidate_start(&fx.cand[who], &cfg, key, fx.q, who), 0);
}

/* Fails the test, showing the events queued, if an event of kind comes
 * within ms (a lower bound). */
static void expect_none(event_kind kind, uint64_t ms)
{
    event got;
    if (!events_wait(fx.q, events_of(kind, -1), ms, &got))
        return;
    event ev;
    while (events_wait(fx.q, events_of(EV_ANY, -1), 0, &ev))
        print_message("  candidate %d: event %d %s\n", ev.who, (int)ev.kind, ev.text);
    fail_msg("candidate %d: event %d within %llu ms", got.who, (int)got.kind,
             (unsigned long long)ms);
}

/* Waits for candidate who to be elected (fails the test if not). */
static void expect_elected(int who, uint64_t max_ms)
{
    if (!events_wait(fx.q, events_of(EV_ELECTED, who), max_ms, NULL)) {
        event ev;
        while (events_wait(fx.q, events_of(EV_ANY, -1), 0, &ev))
            print_message("  candidate %d: event %d %s\n", ev.who, (int)ev.kind, ev.text);
        fail_msg("candidate %d was not elected within %llu ms", who, (unsigned long long)max_ms);
    }
}

/* Priorities 1, 2, 3 started one after the other in the order 1, 3, 2: the
 * priority-3 candidate ends up leading and stays; restarted, it takes
 * leadership back once; equal priorities never hand over; a standby leads
 * only until another candidate comes. */
static void test_preferred_leader(void **state)
{
    (void)state;
    start_with_priority(1, "ops:prio", 1);
    expect_elected(1, 1000 + 300 + 1000 + fixture_fresh_ms());
    start_with_priority(3, "ops:prio", 3);
    expect_elected(3, 5000); /* 1 handed over once its term had lasted 500 ms */
    events_clear(fx.q);
    start_with_priority(2, "ops:prio", 2);
    /* Nothing changes any more (lower bounds: not scaled). */
    assert_false(events_wait(fx.q, events_of(EV_REVOKED, -1), 1500, NULL));
    assert_true(leasehold_is_leader(fx.cand[3].election));

    /* 3 leaves (released: 1 or 2 wins, and 2 takes it from 1), then comes
     * back and takes it back, once. */
    candidate_stop(&fx.cand[3]);
    expect_elected(2, 5000);
    events_clear(fx.q);
    start_with_priority(3, "ops:prio", 3);
    expect_elected(3, 5000);
    expect_none(EV_ELECTED, 1500);
    assert_true(leasehold_is_leader(fx.cand[3].election));
    assert_int_equal(events_count(fx.q, events_of(EV_ELECTED, 3)), 0); /* taken */
    for (int i = 1; i <= 3; i++)
        candidate_stop(&fx.cand[i]);

    /* Equal priorities: whoever leads keeps it. */
    events_clear(fx.q);
    start_with_priority(4, "ops:prio:equal", 2);
    expect_elected(4, 3000);
    start_with_priority(5, "ops:prio:equal", 2);
    assert_false(events_wait(fx.q, events_of(EV_REVOKED, -1), 2000, NULL));
    assert_true(leasehold_is_leader(fx.cand[4].election));

    /* A standby alone leads; a default candidate that comes takes over. */
    start_with_priority(6, "ops:prio:standby", 0);
    expect_elected(6, 3000);
    start_with_priority(7, "ops:prio:standby", 1);
    expect_elected(7, 3000);
    event revoked;
    assert_true(events_wait(fx.q, events_of(EV_REVOKED, 6), 1000, &revoked));
    assert_int_equal(revoked.value, LEASEHOLD_RESIGNED);
}

/* --------------------------------------------------------- the tools */

/* leasehold run's arguments for key with --metrics-listen, then cmd. */
static void run_args(const char **args, const char *key, const char *cmd)
{
    int i = 0;
    args[i++] = "run";
    args[i++] = "--url";
    args[i++] = fx.srv->url;
    args[i++] = "--key";
    args[i++] = key;
    args[i++] = "--lease";
    args[i++] = "1s";
    args[i++] = "--renew";
    args[i++] = "100ms";
    args[i++] = "--retry";
    args[i++] = "300ms";
    args[i++] = "--renew-deadline";
    args[i++] = "700ms";
    args[i++] = "--metrics-listen";
    args[i++] = "127.0.0.1:0";
    args[i++] = "--";
    args[i++] = "sh";
    args[i++] = "-c";
    args[i++] = cmd;
    args[i] = NULL;
}

/* Two `leasehold run`: scraped before and after the leader's SIGTERM, the
 * counters move; the first one's systemd notifications come in order and
 * its command never sees NOTIFY_SOCKET. */
static void test_run_metrics_across_a_handover(void **state)
{
    (void)state;
    const char *args[32];
    notes n = {.fd = notify_open(tmp_path("notify-run"))};
    char env_sock[600];
    snprintf(env_sock, sizeof env_sock, "NOTIFY_SOCKET=%s", tmp_path("notify-run"));
    const char *env[] = {env_sock, "WATCHDOG_USEC=200000", NULL};
    run_args(args, "ops:run", "echo \"ns=${NOTIFY_SOCKET:-none}\"; exec sleep 600");
    proc *a = proc_start("leasehold", env, args);
    char url_a[128], url_b[128], url[200];
    tool_address(a, url_a, sizeof url_a);
    assert_true(notes_wait(&n, "READY=1", 5000));
    assert_string_equal(n.log, "READY=1\n");
    snprintf(url, sizeof url, "%s/readyz", url_a);
    http_wait hw = {.url = url, .status = 200, .needle = "leader of ops:run"};
    assert_true(wait_until(answers, &hw, 1000 + 300 + 1000 + fixture_fresh_ms()));
    assert_true(notes_wait(&n, "STATUS=leader of ops:run", 3000));
    assert_true(notes_wait(&n, "WATCHDOG=1", 3000));
    expect_output(a, "ns=none", 3000);

    run_args(args, "ops:run", "exec sleep 600");
    proc *b = proc_start("leasehold", NULL, args);
    tool_address(b, url_b, sizeof url_b);
    char body_a[32768], body_b[32768];
    snprintf(url, sizeof url, "%s/metrics", url_b);
    hw = (http_wait){
        .url = url, .status = 200, .needle = "leasehold_leader_changes_total{key=\"ops:run\"} 1"};
    assert_true(wait_until(answers, &hw, 3000));
    snprintf(url, sizeof url, "%s/metrics", url_a);
    assert_int_equal(curl(url, NULL, body_a, sizeof body_a), 200);
    snprintf(body_b, sizeof body_b, "%s", hw.body);
    assert_true(metric(body_a, "leasehold_leader{key=\"ops:run\"}") == 1);
    assert_true(metric(body_a, "leasehold_terms_won_total{key=\"ops:run\"}") == 1);
    assert_true(metric(body_a, "leasehold_renewals_total{key=\"ops:run\"}") >= 1);
    assert_true(metric(body_a, "leasehold_lease_remaining_seconds{key=\"ops:run\"}") > 0);
    assert_true(metric(body_a, "leasehold_state{key=\"ops:run\",state=\"leader\"}") == 1);
    assert_true(metric(body_b, "leasehold_leader{key=\"ops:run\"}") == 0);
    assert_true(metric(body_b, "leasehold_terms_won_total{key=\"ops:run\"}") == 0);
    assert_true(metric(body_b, "leasehold_state{key=\"ops:run\",state=\"follower\"}") +
                    metric(body_b, "leasehold_state{key=\"ops:run\",state=\"claiming\"}") ==
                1);
    double epoch_before = metric(body_b, "leasehold_epoch{key=\"ops:run\"}");
    assert_true(epoch_before == metric(body_a, "leasehold_epoch{key=\"ops:run\"}"));
    assert_non_null(strstr(body_b, "leasehold_info{program=\"leasehold run\",version=\""));
    snprintf(url, sizeof url, "%s/readyz", url_b);
    assert_int_equal(curl(url, NULL, body_b, sizeof body_b), 503);
    assert_non_null(strstr(body_b, "for ops:run, last epoch"));

    /* The leader is stopped: b takes over. */
    assert_int_equal(kill(a->pid, SIGTERM), 0);
    hw = (http_wait){.url = url, .status = 200, .needle = "leader of ops:run"};
    assert_true(wait_until(answers, &hw, 3000));
    assert_true(notes_wait(&n, "STOPPING=1", 3000));
    assert_int_equal(strncmp(n.log, "READY=1\n", 8), 0); /* first, and only once */
    assert_null(strstr(n.log + 8, "READY=1"));
    expect_exit(a, 0, 10000); /* CMD ended by the forwarded SIGTERM */
    snprintf(url, sizeof url, "%s/metrics", url_b);
    assert_int_equal(curl(url, NULL, body_b, sizeof body_b), 200);
    assert_true(metric(body_b, "leasehold_leader{key=\"ops:run\"}") == 1);
    assert_true(metric(body_b, "leasehold_terms_won_total{key=\"ops:run\"}") == 1);
    assert_true(metric(body_b, "leasehold_leader_changes_total{key=\"ops:run\"}") >= 2);
    assert_true(metric(body_b, "leasehold_epoch{key=\"ops:run\"}") > epoch_before);
    assert_non_null(strstr(body_b, "leasehold_redis_up{node=\""));
    assert_true(metric(body_b, "leasehold_healthy") == 1);
    proc_free(a);
    proc_free(b);
    close(n.fd);
}

/* `server --metrics-listen`, and what its listener does with requests that
 * are wrong: each is answered (or timed out) without disturbing the others. */
static void test_server_listener_and_bad_requests(void **state)
{
    (void)state;
    char env_url[700];
    snprintf(env_url, sizeof env_url, "SNAKETRON_REDIS_URL=%s", fx.srv->url);
    const char *env[] = {env_url, "SNAKETRON_REGION=ops", NULL};
    const char *args[] = {"--lease", "1s", "--metrics-listen", "127.0.0.1:0", NULL};
    proc *p = proc_start("server", env, args);
    char base[128], url[200], body[32768];
    tool_address(p, base, sizeof base);
    snprintf(url, sizeof url, "%s/metrics", base);
    assert_int_equal(curl(url, NULL, body, sizeof body), 200);
    assert_non_null(strstr(body, "leasehold_info{program=\"server\""));
    assert_non_null(strstr(body, "leasehold_leader{key=\"snaketron:leader:ops\"}"));
    assert_int_equal(curl(url, "-i", body, sizeof body), 200);
    assert_non_null(strstr(body, "Content-Type: text/plain; version=0.0.4"));

    /* Asked to step down, the host process does. */
    expect_output(p, "This server is now the leader!", 10000);
    const char *resign[] = {"resign", "--url", fx.srv->url, "--key", "snaketron:leader:ops", NULL};
    proc *r = proc_start("leasehold", NULL, resign);
    assert_int_equal(proc_exit_code(r, 10000), 0);
    assert_non_null(strstr(r->out, "to step down"));
    proc_free(r);
    expect_output(p, "asked to step down by a request naming this term", 3000);

    /* Wrong in ways curl can say. */
    snprintf(url, sizeof url, "%s/nope", base);
    assert_int_equal(curl(url, NULL, body, sizeof body), 404);
    snprintf(url, sizeof url, "%s/metrics", base);
    assert_int_equal(curl(url, "-i -X POST", body, sizeof body), 405);
    assert_non_null(strstr(body, "Allow: GET, HEAD"));
    char big[6000] = "-H 'X-Big: ";
    memset(big + strlen(big), 'a', 5000);
    strcpy(big + strlen("-H 'X-Big: ") + 5000, "'");
    assert_int_equal(curl(url, big, body, sizeof body), 431);
    snprintf(url, sizeof url, "%s/healthz?verbose=1", base);
    assert_int_equal(curl(url, "-I", body, sizeof body), 200);
    assert_null(strstr(body, "ok")); /* HEAD: no body */

    /* Wrong in ways only a raw socket can be. */
    static const char garbage[] = "NONSENSE\r\n\r\n";
    assert_int_equal(raw_request(base, garbage, sizeof garbage - 1, 3000), 400);
    static const char nul[] = "GET /metrics\0 HTTP/1.1\r\n\r\n";
    assert_int_equal(raw_request(base, nul, sizeof nul - 1, 3000), 400);
    static const char http2[] = "GET /metrics HTTP/2.0\r\n\r\n";
    assert_int_equal(raw_request(base, http2, sizeof http2 - 1, 3000), 400);
    /* A slow client: half a request head, then nothing.  Others are served
     * meanwhile; it gets 408 once HTTP_REQUEST_MS have passed. */
    int slow = http_connect(base);
    static const char half[] = "GET /metrics HTTP/1.1\r\nHost: x\r\n";
    assert_int_equal(send(slow, half, sizeof half - 1, MSG_NOSIGNAL), (ssize_t)sizeof half - 1);
    uint64_t t0 = test_now_ms();
    http_wait hw = {.url = url, .status = 200, .needle = NULL};
    snprintf(url, sizeof url, "%s/healthz", base);
    assert_true(wait_until(answers, &hw, 2000));
    assert_true(test_now_ms() - t0 < HTTP_REQUEST_MS);
    char buf[128] = "";
    struct pollfd pfd = {.fd = slow, .events = POLLIN};
    assert_int_equal(poll(&pfd, 1, (int)test_ms(HTTP_REQUEST_MS + 3000)), 1);
    assert_true(recv(slow, buf, sizeof buf - 1, 0) > 0);
    if (strncmp(buf, "HTTP/1.1 408", 12) != 0)
        fail_msg("expected 408, got: %s", buf);
    assert_true(test_now_ms() - t0 >= HTTP_REQUEST_MS - 100);
    close(slow);
    /* Too many at once: past HTTP_CONNS_MAX (accepted in order), 503 at
     * once; once they are gone, requests are served again. */
    int idle[HTTP_CONNS_MAX];
    for (int i = 0; i < HTTP_CONNS_MAX; i++)
        idle[i] = http_connect(base);
    assert_int_equal(raw_request(base, "", 0, 3000), 503);
    for (int i = 0; i < HTTP_CONNS_MAX; i++)
        close(idle[i]);
    assert_true(wait_until(answers, &hw, 3000));

    assert_int_equal(kill(p->pid, SIGTERM), 0);
    expect_exit(p, 0, 10000);
    proc_free(p);
}

/* --priority in both programs: `leasehold run --priority 5` takes the key
 * from a default `server`, which hands over gracefully; a priority out of
 * range is a usage error. */
static void test_tools_priority(void **state)
{
    (void)state;
    char env_url[700];
    snprintf(env_url, sizeof env_url, "SNAKETRON_REDIS_URL=%s", fx.srv->url);
    const char *env[] = {env_url, "SNAKETRON_REGION=prio", NULL};
    const char *sargs[] = {"--lease", "1s", "--retry", "300ms", "--handover-interval",
                           "500ms",   NULL};
    proc *srv = proc_start("server", env, sargs);
    expect_output(srv, "This server is now the leader!", 10000);
    const char *rargs[] = {
        "run",     "--url", fx.srv->url, "--key", "snaketron:leader:prio",
        "--lease", "1s",    "--retry",   "300ms", "--priority",
        "5",       "--",    "sh",        "-c",    "echo cmd-started; exec sleep 600",
        NULL};
    proc *run = proc_start("leasehold", NULL, rargs);
    expect_output(run, "cmd-started", 5000);
    expect_output(srv, "asked for this term: handing over", 3000);
    expect_output(srv, "leader service stopped", 3000);
    assert_int_equal(kill(run->pid, SIGTERM), 0);
    expect_exit(run, 0, 10000);
    proc_free(run);
    assert_int_equal(kill(srv->pid, SIGTERM), 0);
    expect_exit(srv, 0, 10000);
    proc_free(srv);

    const char *bad[] = {"run", "--url", fx.srv->url, "--priority", "1000001", "--", "true", NULL};
    proc *p = proc_start("leasehold", NULL, bad);
    assert_int_equal(proc_exit_code(p, 10000), 64);
    assert_non_null(strstr(p->out, "--priority: '1000001' is not a priority"));
    proc_free(p);
}

/* A --metrics-listen that cannot be served is a usage error (64) at start,
 * naming the cause, in both programs. */
static void test_bad_listen_addresses(void **state)
{
    (void)state;
    int taken = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(taken, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(taken, 1), 0);
    socklen_t len = sizeof sa;
    assert_int_equal(getsockname(taken, (struct sockaddr *)&sa, &len), 0);
    char busy[64];
    snprintf(busy, sizeof busy, "127.0.0.1:%u", ntohs(sa.sin_port));

    const struct {
        const char *addr, *says;
    } cases[] = {
        {"nonsense", "not an address to listen on"},
        {"127.0.0.1:99999", "not an address to listen on"},
        {"::1:80", "not an address to listen on"},
        {busy, "cannot listen: Address already in use"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *args[] = {
            "run",         "--url", fx.srv->url, "--key", "ops:bad", "--metrics-listen",
            cases[i].addr, "--",    "true",      NULL};
        proc *p = proc_start("leasehold", NULL, args);
        assert_int_equal(proc_exit_code(p, 10000), 64);
        if (!strstr(p->out, cases[i].says))
            fail_msg("%s: expected \"%s\" in:\n%s", cases[i].addr, cases[i].says, p->out);
        proc_free(p);
    }
    char env_url[700];
    snprintf(env_url, sizeof env_url, "SNAKETRON_REDIS_URL=%s", fx.srv->url);
    const char *env[] = {env_url, NULL};
    const char *args[] = {"--metrics-listen", busy, NULL};
    proc *p = proc_start("server", env, args);
    assert_int_equal(proc_exit_code(p, 10000), 64);
    assert_non_null(strstr(p->out, "cannot listen"));
    proc_free(p);
    close(taken);

    /* systemd's variables, unusable: named, exit 64. */
    const char *bad_env[][2] = {{"NOTIFY_SOCKET=relative/path", "NOTIFY_SOCKET=relative/path"},
                                {"WATCHDOG_USEC=soon", "WATCHDOG_USEC=soon"}};
    for (size_t i = 0; i < 2; i++) {
        const char *env2[] = {bad_env[i][0], NULL};
        const char *run[] = {"run", "--url", fx.srv->url, "--key", "ops:bad", "--", "true", NULL};
        p = proc_start("leasehold", env2, run);
        assert_int_equal(proc_exit_code(p, 10000), 64);
        if (!strstr(p->out, bad_env[i][1]))
            fail_msg("expected \"%s\" in:\n%s", bad_env[i][1], p->out);
        proc_free(p);
    }
}

/* Both teardowns: the candidates and the tools. */
static int resign_teardown(void **state)
{
    proc_free_all(state);
    return fixture_teardown(state);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        FIXTURE_TEST(test_stats_through_a_handover),
        FIXTURE_TEST(test_health_of_a_wedged_io_thread),
        cmocka_unit_test_setup_teardown(test_resign_request, fixture_setup, resign_teardown),
        cmocka_unit_test_teardown(test_run_resign, proc_free_all),
        FIXTURE_TEST(test_preferred_leader),
        cmocka_unit_test_teardown(test_run_metrics_across_a_handover, proc_free_all),
        cmocka_unit_test_teardown(test_server_listener_and_bad_requests, proc_free_all),
        cmocka_unit_test_teardown(test_bad_listen_addresses, proc_free_all),
        cmocka_unit_test_teardown(test_tools_priority, proc_free_all),
    };
    return cmocka_run_group_tests(tests, fixture_group_setup_tmpdir, fixture_group_teardown);
}
