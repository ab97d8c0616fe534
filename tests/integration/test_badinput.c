/* test_badinput.c — bad URLs, bad configurations and hostile Redis setups:
 * each fails with the right code and a message naming the cause, nothing
 * crashes, nothing leaks (this binary runs under ASan in CI). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

#include "fixture.h"
#include "testutil.h"

/* True when msg contains one of the '|'-separated needles, ignoring case. */
static bool mentions(const char *msg, const char *needles)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", needles);
    char *save = NULL;
    for (char *n = strtok_r(buf, "|", &save); n; n = strtok_r(NULL, "|", &save))
        if (strcasestr(msg, n))
            return true;
    return false;
}

typedef struct bad_case {
    const char *what;
    void (*tweak)(leasehold_config *cfg); /* NULL: only the URL is bad */
    const char *url;                      /* used when tweak is NULL */
    int code, alt_code;                   /* alt_code 0: only code is right */
    const char *needles;                  /* the message names one of these */
} bad_case;

static void lease_zero(leasehold_config *c)
{
    c->lease_ms = 0;
}
static void renew_zero(leasehold_config *c)
{
    c->renew_interval_ms = 0;
}
static void renew_at_lease(leasehold_config *c)
{
    c->renew_interval_ms = c->lease_ms;
}
static void renew_over_lease(leasehold_config *c)
{
    c->renew_interval_ms = c->lease_ms * 2;
}
static void retry_zero(leasehold_config *c)
{
    c->retry_interval_ms = 0;
}
static void deadline_at_lease(leasehold_config *c)
{
    c->renew_deadline_ms = c->lease_ms;
}
static void deadline_zero(leasehold_config *c)
{
    c->renew_deadline_ms = 0;
}
static void command_timeout_zero(leasehold_config *c)
{
    c->command_timeout_ms = 0;
}
static void command_timeout_at_lease(leasehold_config *c)
{
    c->command_timeout_ms = c->lease_ms;
}
static void connect_timeout_zero(leasehold_config *c)
{
    c->connect_timeout_ms = 0;
}
static void stop_timeout_zero(leasehold_config *c)
{
    c->stop_timeout_ms = 0;
}
static void bad_version(leasehold_config *c)
{
    c->version = 99;
}
static void bad_log_level(leasehold_config *c)
{
    c->log_level = (leasehold_log_level)42;
}
static void empty_identity(leasehold_config *c)
{
    c->identity = "";
}
static void null_url(leasehold_config *c)
{
    c->url = NULL;
}

/* At least 20 malformed or unsupported inputs through leasehold_client_new:
 * each returns NULL with the right code and a message naming the problem. */
static void test_bad_urls_and_configs(void **state)
{
    (void)state;
    static char long_unix[300];
    memset(long_unix, 0, sizeof long_unix);
    strcpy(long_unix, "unix:///tmp/");
    memset(long_unix + strlen(long_unix), 'x', 200);
    const bad_case cases[] = {
        {"NULL url", null_url, NULL, LEASEHOLD_ECONFIG, LEASEHOLD_EURL, "url"},
        {"empty url", NULL, "", LEASEHOLD_EURL, LEASEHOLD_ECONFIG, "url|empty"},
        {"http scheme", NULL, "http://127.0.0.1:6379", LEASEHOLD_EURL, 0, "http|scheme"},
        {"TLS parameter on redis://", NULL, "redis://127.0.0.1:6379?tls_insecure=yes",
         LEASEHOLD_EURL, 0, "rediss|tls_insecure"},
        {"missing CA file", NULL, "rediss://127.0.0.1:6379?tls_ca_file=/nonexistent/ca.pem",
         LEASEHOLD_ECONFIG, 0, "/nonexistent/ca.pem"},
        {"no scheme", NULL, "127.0.0.1:6379", LEASEHOLD_EURL, 0, "127.0.0.1|scheme"},
        {"no host", NULL, "redis://", LEASEHOLD_EURL, 0, "host|redis://"},
        {"port 0", NULL, "redis://127.0.0.1:0", LEASEHOLD_EURL, 0, "port"},
        {"port too big", NULL, "redis://127.0.0.1:65536", LEASEHOLD_EURL, 0, "65536|port"},
        {"port not a number", NULL, "redis://127.0.0.1:abc", LEASEHOLD_EURL, 0, "abc|port"},
        {"db not a number", NULL, "redis://127.0.0.1:6379/abc", LEASEHOLD_EURL, 0, "abc|db"},
        {"negative db", NULL, "redis://127.0.0.1:6379/-1", LEASEHOLD_EURL, 0, "-1|db"},
        {"path after db", NULL, "redis://127.0.0.1:6379/0/x", LEASEHOLD_EURL, 0, "0/x|db|path"},
        {"unknown parameter", NULL, "redis://127.0.0.1:6379?bogus=1", LEASEHOLD_EURL, 0, "bogus"},
        {"bad timeout value", NULL, "redis://127.0.0.1:6379?connect_timeout_ms=abc", LEASEHOLD_EURL,
         0, "connect_timeout_ms"},
        {"zero timeout in URL", NULL, "redis://127.0.0.1:6379?command_timeout_ms=0", LEASEHOLD_EURL,
         LEASEHOLD_ECONFIG, "command_timeout"},
        {"unclosed IPv6 bracket", NULL, "redis://[::1:6379", LEASEHOLD_EURL, 0, "[::1|bracket"},
        {"bad percent escape", NULL, "redis://us%zzer:pw@127.0.0.1:6379", LEASEHOLD_EURL, 0,
         "%|escape|encod"},
        {"unix without path", NULL, "unix://", LEASEHOLD_EURL, 0, "path|unix"},
        {"unix db not a number", NULL, "unix:///tmp/r.sock?db=abc", LEASEHOLD_EURL, 0, "abc|db"},
        {"unix path too long", NULL, long_unix, LEASEHOLD_EURL, 0, "long|path"},
        {"lease 0", lease_zero, NULL, LEASEHOLD_ECONFIG, 0, "lease"},
        {"renew 0", renew_zero, NULL, LEASEHOLD_ECONFIG, 0, "renew"},
        {"renew == lease", renew_at_lease, NULL, LEASEHOLD_ECONFIG, 0, "renew"},
        {"renew > lease", renew_over_lease, NULL, LEASEHOLD_ECONFIG, 0, "renew"},
        {"retry 0", retry_zero, NULL, LEASEHOLD_ECONFIG, 0, "retry"},
        {"deadline == lease", deadline_at_lease, NULL, LEASEHOLD_ECONFIG, 0, "deadline"},
        {"deadline 0", deadline_zero, NULL, LEASEHOLD_ECONFIG, 0, "deadline"},
        {"command timeout 0", command_timeout_zero, NULL, LEASEHOLD_ECONFIG, 0,
         "command_timeout|command timeout"},
        {"command timeout == lease", command_timeout_at_lease, NULL, LEASEHOLD_ECONFIG, 0,
         "command_timeout|command timeout"},
        {"connect timeout 0", connect_timeout_zero, NULL, LEASEHOLD_ECONFIG, 0,
         "connect_timeout|connect timeout"},
        {"stop timeout 0", stop_timeout_zero, NULL, LEASEHOLD_ECONFIG, 0,
         "stop_timeout|stop timeout"},
        {"unknown config version", bad_version, NULL, LEASEHOLD_ECONFIG, LEASEHOLD_EINVAL,
         "version"},
        {"bad log level", bad_log_level, NULL, LEASEHOLD_ECONFIG, 0, "log_level|log level"},
        {"empty identity", empty_identity, NULL, LEASEHOLD_ECONFIG, 0, "identity"},
    };
    int failures = 0;
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const bad_case *bc = &cases[i];
        leasehold_config cfg;
        test_config(&cfg, fx.srv->url);
        if (bc->tweak)
            bc->tweak(&cfg);
        else
            cfg.url = bc->url;
        leasehold_error err;
        memset(&err, 0, sizeof err);
        leasehold_client *c = leasehold_client_new(&cfg, &err);
        if (c) {
            printf("# %s: accepted\n", bc->what);
            leasehold_client_free(c);
            failures++;
            continue;
        }
        bool code_ok = err.code == bc->code || (bc->alt_code && err.code == bc->alt_code);
        bool msg_ok = err.msg[0] && mentions(err.msg, bc->needles);
        if (!code_ok || !msg_ok) {
            printf("# %s: got %s \"%s\", expected %s naming %s\n", bc->what,
                   leasehold_errname(err.code), err.msg, leasehold_errname(bc->code), bc->needles);
            failures++;
        }
    }
    leasehold_error err;
    assert_null(leasehold_client_new(NULL, &err));
    assert_int_equal(err.code, LEASEHOLD_EINVAL);
    leasehold_config cfg;
    test_config(&cfg, "redis://127.0.0.1:0");
    assert_null(leasehold_client_new(&cfg, NULL)); /* err may be NULL */
    assert_int_equal(failures, 0);
}

/* A wrong password: LEASEHOLD_EAUTH, and the message does not show it. */
static void test_wrong_password(void **state)
{
    (void)state;
    redis_server_opts o = {.password = "right-password"};
    fx.own = redis_server_start(&o);
    assert_non_null(fx.own);
    char url[128];
    snprintf(url, sizeof url, "redis://:hunter2x@127.0.0.1:%d", fx.own->port);
    leasehold_config cfg;
    test_config(&cfg, url);
    leasehold_error err;
    assert_null(leasehold_client_new(&cfg, &err));
    printf("# %s: %s\n", leasehold_errname(err.code), err.msg);
    assert_int_equal(err.code, LEASEHOLD_EAUTH);
    assert_null(strstr(err.msg, "hunter2x"));
}

/* Waits for the campaign's error callback to report `code`; no leader. */
static void expect_campaign_error(int code, const char *needle, uint64_t max_ms)
{
    event ev;
    event_filter f = events_of(EV_ERROR, 0);
    for (;;) {
        if (!events_wait(fx.q, f, max_ms, &ev))
            fail_msg("no error callback reported %s", leasehold_errname(code));
        printf("# error callback: %s: %s\n", leasehold_errname((int)ev.value), ev.text);
        if (ev.value == code)
            break;
    }
    if (needle && !strstr(ev.text, needle))
        fail_msg("the message \"%s\" does not name %s", ev.text, needle);
    assert_false(leasehold_is_leader(fx.cand[0].election));
    assert_int_equal(events_count(fx.q, events_of(EV_ELECTED, -1)), 0);
}

/* The candidate for url must fail with ENOPERM: at connect, or through the
 * campaign's error callback when the handshake itself is allowed. */
static void expect_noperm(const char *url, const char *key)
{
    leasehold_config cfg;
    test_config(&cfg, url);
    int rc = candidate_start(&fx.cand[0], &cfg, key, fx.q, 0);
    if (rc != 0) {
        assert_int_equal(rc, LEASEHOLD_ENOPERM);
        return;
    }
    expect_campaign_error(LEASEHOLD_ENOPERM, NULL, TEST_FRESH_REDIS_MS + 2000);
}

/* A user allowed only +@connection: ENOPERM, at connect or in the campaign. */
static void test_acl_connection_only(void **state)
{
    (void)state;
    redisReply *r =
        redis_server_cmd(fx.srv, "ACL SETUSER conn-only on >conn-pw resetkeys +@connection");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
    char url[128];
    snprintf(url, sizeof url, "redis://conn-only:conn-pw@127.0.0.1:%d", fx.srv->port);
    expect_noperm(url, "lh:bad:acl-conn");
}

/* A user that may do anything but EVAL/EVALSHA: AUTH works, the scripts are
 * refused, the error callback reports ENOPERM. */
static void test_acl_without_eval(void **state)
{
    (void)state;
    redisReply *r = redis_server_cmd(
        fx.srv,
        "ACL SETUSER no-eval on >noeval-pw ~* &* +@all -eval -evalsha -eval_ro -evalsha_ro");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
    char url[128];
    snprintf(url, sizeof url, "redis://no-eval:noeval-pw@127.0.0.1:%d", fx.srv->port);
    expect_noperm(url, "lh:bad:acl-eval");
}

/* SELECT 99 on a 16-database server: LEASEHOLD_EDB. */
static void test_db_out_of_range(void **state)
{
    (void)state;
    char url[128];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d/99", fx.srv->port);
    leasehold_config cfg;
    test_config(&cfg, url);
    leasehold_error err;
    assert_null(leasehold_client_new(&cfg, &err));
    printf("# %s: %s\n", leasehold_errname(err.code), err.msg);
    assert_int_equal(err.code, LEASEHOLD_EDB);
    assert_non_null(strstr(err.msg, "99"));
}

/* The key holds a hash: the error callback reports WRONGTYPE naming the
 * key; no leader, no crash. */
static void test_key_holds_a_hash(void **state)
{
    (void)state;
    const char *key = "lh:bad:hash";
    redisReply *r = redis_server_cmd(fx.srv, "HSET %s field value", key);
    assert_non_null(r);
    freeReplyObject(r);
    leasehold_config cfg;
    test_config(&cfg, fx.srv->url);
    assert_int_equal(candidate_start(&fx.cand[0], &cfg, key, fx.q, 0), 0);
    expect_campaign_error(LEASEHOLD_EWRONGTYPE, key, TEST_FRESH_REDIS_MS + 2000);
    /* It halts (LEASEHOLD_EWRONGTYPE is permanent): nobody is elected (a lower bound: not
     * scaled). */
    assert_false(events_wait(fx.q, events_of(EV_ELECTED, 0), 1000, NULL));
    r = redis_server_cmd(fx.srv, "TYPE %s", key);
    assert_non_null(r);
    assert_string_equal(r->str, "hash");
    freeReplyObject(r);
}

static int never_runs(leasehold_token *t, void *arg)
{
    (void)t;
    (void)arg;
    return 0;
}

/* Keys with a '}' but no valid {hash tag} (their side keys could not share
 * their Redis Cluster slot) are refused by every entry point, with a message
 * naming the key and the reason; a key with a tag is accepted. */
static void test_key_without_a_slot_refused(void **state)
{
    (void)state;
    leasehold_config cfg;
    test_config(&cfg, fx.srv->url);
    leasehold_error err;
    leasehold_client *c = leasehold_client_new(&cfg, &err);
    assert_non_null(c);
    const char *bad[] = {"a}b", "a{}b", "}{"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        leasehold_election *e[3] = {leasehold_campaign(c, bad[i], NULL, NULL, &err), NULL, NULL};
        assert_int_equal(err.code, LEASEHOLD_EINVAL);
        e[1] = leasehold_serve(c, bad[i], never_runs, NULL, &err);
        assert_int_equal(err.code, LEASEHOLD_EINVAL);
        e[2] = leasehold_observe(c, bad[i], NULL, NULL, &err);
        assert_int_equal(err.code, LEASEHOLD_EINVAL);
        for (int k = 0; k < 3; k++)
            assert_null(e[k]);
        if (!strstr(err.msg, bad[i]) || !mentions(err.msg, "hash tag"))
            fail_msg("key %s: the message does not say why: %s", bad[i], err.msg);
        leasehold_holder h;
        assert_int_equal(leasehold_holder_get(c, bad[i], &h, &err), LEASEHOLD_EINVAL);
    }
    leasehold_election *ok = leasehold_observe(c, "a}b{tag}", NULL, NULL, &err);
    assert_non_null(ok);
    leasehold_election_free(ok);
    leasehold_client_free(c);
}

/* A read-only replica: the error callback reports EREADONLY; no leader. */
static void test_read_only_replica(void **state)
{
    (void)state;
    fixture_start_replica();
    leasehold_config cfg;
    test_config(&cfg, fx.own->url);
    assert_int_equal(candidate_start(&fx.cand[0], &cfg, "lh:bad:replica", fx.q, 0), 0);
    expect_campaign_error(LEASEHOLD_EREADONLY, NULL, TEST_FRESH_REDIS_MS + 3000);
    assert_false(events_wait(fx.q, events_of(EV_ELECTED, 0), 1000, NULL));
}

/* Nothing listening: ECONNREFUSED, the message names the port. */
static void test_connection_refused(void **state)
{
    (void)state;
    int port = redis_server_free_port();
    assert_true(port > 0);
    char url[128], port_s[16];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
    snprintf(port_s, sizeof port_s, "%d", port);
    leasehold_config cfg;
    test_config(&cfg, url);
    leasehold_error err;
    assert_null(leasehold_client_new(&cfg, &err));
    printf("# %s: %s\n", leasehold_errname(err.code), err.msg);
    assert_int_equal(err.code, LEASEHOLD_ECONNREFUSED);
    assert_non_null(strstr(err.msg, port_s));
}

/* A name that does not resolve: ERESOLVE naming it.  Its first label is 64
 * bytes long, one more than DNS allows, so the resolver rejects it without
 * sending a query: the test makes no traffic beyond this machine. */
#define UNRESOLVABLE "nosuch-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.invalid"
static void test_name_does_not_resolve(void **state)
{
    (void)state;
    leasehold_config cfg;
    test_config(&cfg, "redis://" UNRESOLVABLE ":6379");
    leasehold_error err;
    assert_null(leasehold_client_new(&cfg, &err));
    printf("# %s: %s\n", leasehold_errname(err.code), err.msg);
    assert_int_equal(err.code, LEASEHOLD_ERESOLVE);
    assert_non_null(strstr(err.msg, UNRESOLVABLE));
}

/* lazy_connect with nothing listening: the client is created, nobody
 * leads, and the connection errors reach the log callback. */
static void test_lazy_connect_nothing_listening(void **state)
{
    (void)state;
    int port = redis_server_free_port();
    char url[128];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
    leasehold_config cfg;
    test_config(&cfg, url);
    cfg.lazy_connect = true;
    assert_int_equal(candidate_start(&fx.cand[0], &cfg, "lh:bad:lazy", fx.q, 0), 0);
    event ev;
    bool seen = false;
    while (!seen && events_wait(fx.q, events_of(EV_LOG, 0), 3000, &ev))
        seen = mentions(ev.text, "refused");
    if (!seen)
        fail_msg("no log line reported the refused connection");
    printf("# log: %s\n", ev.text);
    assert_false(leasehold_is_leader(fx.cand[0].election));
    assert_int_equal(events_count(fx.q, events_of(EV_ELECTED, -1)), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        FIXTURE_TEST(test_bad_urls_and_configs),
        FIXTURE_TEST(test_wrong_password),
        FIXTURE_TEST(test_acl_connection_only),
        FIXTURE_TEST(test_acl_without_eval),
        FIXTURE_TEST(test_db_out_of_range),
        FIXTURE_TEST(test_key_holds_a_hash),
        FIXTURE_TEST(test_key_without_a_slot_refused),
        FIXTURE_TEST(test_read_only_replica),
        FIXTURE_TEST(test_connection_refused),
        FIXTURE_TEST(test_name_does_not_resolve),
        FIXTURE_TEST(test_lazy_connect_nothing_listening),
    };
    return cmocka_run_group_tests(tests, fixture_group_setup, fixture_group_teardown);
}
