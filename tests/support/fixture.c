/* fixture.c — the shared setup of the integration tests (see fixture.h). */
#include "fixture.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "testutil.h"

#define CHILD_MODE "candidate" /* argv[1] of a child candidate */

fixture fx;

int fixture_group_setup(void **state)
{
    (void)state;
    fx.srv = redis_server_start(NULL);
    fx.fresh = true;
    return fx.srv ? 0 : -1;
}

int fixture_group_setup_tmpdir(void **state)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(fx.tmpdir, sizeof fx.tmpdir, "%s/leasehold-%s-XXXXXX", tmp && *tmp ? tmp : "/tmp",
             program_invocation_short_name);
    if (!mkdtemp(fx.tmpdir)) {
        fx.tmpdir[0] = '\0';
        return -1;
    }
    return fixture_group_setup(state);
}

int fixture_group_teardown(void **state)
{
    (void)state;
    redis_server_stop(fx.srv);
    fx.srv = NULL;
    if (!fx.tmpdir[0])
        return 0;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fx.tmpdir);
    fx.tmpdir[0] = '\0';
    return system(cmd) == 0 ? 0 : -1;
}

int fixture_setup(void **state)
{
    (void)state;
    memset(fx.cand, 0, sizeof fx.cand);
    memset(fx.child, 0, sizeof fx.child);
    fx.n = 0;
    fx.q = events_new();
    return fx.q ? 0 : -1;
}

int fixture_teardown(void **state)
{
    (void)state;
    for (int i = 0; i < FIXTURE_MAX_CHILDREN; i++) {
        events_child_stop(fx.child[i]);
        fx.child[i] = NULL;
    }
    for (int i = 0; i < FIXTURE_MAX_CANDIDATES; i++)
        candidate_stop(&fx.cand[i]);
    fx.n = 0;
    redis_server_stop(fx.own);
    fx.own = NULL;
    events_free(fx.q);
    fx.q = NULL;
    return 0;
}

int fixture_setup_redis(void **state)
{
    int rc = fixture_group_setup(state);
    return fixture_setup(state) || rc ? -1 : 0;
}

int fixture_teardown_redis(void **state)
{
    fixture_teardown(state);
    return fixture_group_teardown(state);
}

void fixture_start_candidates(const leasehold_config *cfg, const char *key, int n)
{
    fixture_serve_candidates(cfg, key, n, NULL);
}

void fixture_serve_candidates(const leasehold_config *cfg, const char *key, int n,
                              int (*service)(leasehold_token *t, void *arg))
{
    assert_true(n <= FIXTURE_MAX_CANDIDATES);
    for (int i = 0; i < n; i++) {
        candidate *cd = &fx.cand[i];
        int rc = service ? candidate_serve(cd, cfg, key, service, fx.q, i)
                         : candidate_start(cd, cfg, key, fx.q, i);
        assert_int_equal(rc, 0);
        fx.n = i + 1;
    }
}

int fixture_count_leaders(int *which)
{
    int n = 0;
    for (int i = 0; i < fx.n; i++) {
        if (fx.cand[i].election && leasehold_is_leader(fx.cand[i].election)) {
            n++;
            *which = i;
        }
    }
    return n;
}

void fixture_start_children(const leasehold_config *cfg, const char *key, int n)
{
    assert_true(n <= FIXTURE_MAX_CHILDREN);
    char lease[16], retry[16];
    snprintf(lease, sizeof lease, "%u", cfg->lease_ms);
    snprintf(retry, sizeof retry, "%u", cfg->retry_interval_ms);
    for (int i = 0; i < n; i++) {
        char who[16];
        snprintf(who, sizeof who, "%d", i);
        char *argv[] = {(char *)test_process_self(),
                        CHILD_MODE,
                        (char *)cfg->url,
                        (char *)key,
                        who,
                        lease,
                        retry,
                        NULL};
        fx.child[i] = events_child_start(fx.q, i, argv);
        assert_non_null(fx.child[i]);
    }
}

/* Samples leasehold_is_leader(e) every 5 ms and reports through sink each
 * change (EV_SAMPLE) and the first sample after a gap of more than 200 ms
 * (EV_WOKE: the process was stopped).  The time is read before
 * is_leader(), so a sample stamped after SIGCONT was taken after SIGCONT.
 * Never returns. */
static void sample_leadership(leasehold_election *e, event_sink *sink)
{
    uint64_t prev_ms = test_now_ms();
    bool prev = false;
    for (;;) {
        uint64_t now = test_now_ms();
        bool leader = leasehold_is_leader(e);
        if (now - prev_ms > 200) {
            event ev = {.kind = EV_WOKE, .value = leader, .epoch = prev_ms, .at_ms = now};
            events_emit(sink, &ev);
        }
        if (leader != prev) {
            event ev = {.kind = EV_SAMPLE, .value = leader, .at_ms = now};
            events_emit(sink, &ev);
        }
        prev = leader;
        prev_ms = now;
        test_sleep_ms(5);
    }
}

/* `self candidate URL KEY WHO LEASE_MS RETRY_MS`: a candidate reporting as
 * lines on stdout.  Returns only if it could not start: 2 on bad
 * arguments, 1 if the library refused. */
static int child_main(int argc, char **argv)
{
    if (argc != 7)
        return 2;
    leasehold_config cfg;
    test_config(&cfg, argv[2]);
    cfg.lease_ms = (uint32_t)atoi(argv[5]);
    cfg.retry_interval_ms = (uint32_t)atoi(argv[6]);
    event_sink sink = {NULL, STDOUT_FILENO, atoi(argv[4])};
    cfg.log = events_log;
    cfg.log_arg = &sink;
    leasehold_error err;
    leasehold_client *c = leasehold_client_new(&cfg, &err);
    if (!c) {
        fprintf(stderr, "candidate: %s\n", err.msg);
        return 1;
    }
    leasehold_election *e = leasehold_campaign(c, argv[3], &events_callbacks, &sink, &err);
    if (!e) {
        fprintf(stderr, "candidate: %s\n", err.msg);
        return 1;
    }
    sample_leadership(e, &sink);
    return 0;
}

void fixture_run_child(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], CHILD_MODE) == 0)
        exit(child_main(argc, argv));
}

uint64_t fixture_fresh_ms(void)
{
    bool fresh = fx.fresh;
    fx.fresh = false;
    return fresh ? TEST_FRESH_REDIS_MS : 0;
}

uint64_t fixture_first_election_ms(const leasehold_config *cfg)
{
    return cfg->lease_ms + cfg->retry_interval_ms + 1000 + fixture_fresh_ms();
}

event fixture_first_leader(const leasehold_config *cfg, int who)
{
    event ev;
    uint64_t max_ms = fixture_first_election_ms(cfg);
    if (!events_wait(fx.q, events_of(EV_ELECTED, who), max_ms, &ev)) {
        /* What the candidates logged says why. */
        while (events_wait(fx.q, events_of(EV_LOG, -1), 0, &ev))
            fprintf(stderr, "  candidate %d: %s\n", ev.who, ev.text);
        fail_msg("nobody was elected within %llu ms", (unsigned long long)test_ms(max_ms));
    }
    return ev;
}

void fixture_redis_get(const char *key, char *out, size_t size)
{
    redisReply *r = redis_server_cmd(fx.srv, "GET %s", key);
    assert_non_null(r);
    snprintf(out, size, "%s", r->type == REDIS_REPLY_STRING ? r->str : "");
    freeReplyObject(r);
}

void fixture_start_replica(void)
{
    char port[16];
    snprintf(port, sizeof port, "%d", fx.srv->port);
    const char *args[] = {"--replicaof", "127.0.0.1", port, NULL};
    redis_server_opts o = {.args = args};
    fx.own = redis_server_start(&o);
    assert_non_null(fx.own);
}

const char *fixture_path(const char *name)
{
    static char paths[8][512];
    static int next;
    char *p = paths[next++ % 8];
    snprintf(p, sizeof paths[0], "%s/%s", fx.tmpdir, name);
    return p;
}
