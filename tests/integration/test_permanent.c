/* test_permanent.c — errors no retry can fix halt the election; the rest
 * are retried.
 *
 * For each permanent condition (an ACL user without a command, a key or the
 * channel; EVALSHA or EVAL renamed away; a key of another type; a read-only
 * replica; a value with no TTL) against a real redis-server: the code, that
 * leasehold_error_is_permanent() agrees, one error callback and one ERROR
 * log line naming the cause and the fix, and no more traffic for the key
 * (Redis's own counters stop) until leasehold_resume().  A foreign value
 * with a TTL is reported once and waited for.  A leader whose ACL is
 * revoked ends its term with LEASEHOLD_HALTED.  Keys with control
 * characters are refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fixture.h"
#include "testutil.h"

/* Three retry intervals of test_config() and then some: long enough for a
 * campaign that was not halted to have tried again.  A lower bound: never
 * scaled. */
#define QUIET_MS 1200u

/* The fixture's teardown, with the shared server's memory limit lifted
 * once the candidate has stopped. */
static int teardown(void **state)
{
    candidate_stop(&fx.cand[0]);
    redisReply *r = redis_server_cmd(fx.srv, "CONFIG SET maxmemory 0");
    if (r)
        freeReplyObject(r);
    return fixture_teardown(state);
}

/* Runs a command on s that must succeed. */
static void admin(redis_server *s, const char *fmt, const char *arg)
{
    redisReply *r = redis_server_cmd(s, fmt, arg);
    assert_non_null(r);
    if (r->type == REDIS_REPLY_ERROR)
        fail_msg("%s: %s", fmt, r->str);
    freeReplyObject(r);
}

/* The sum of the fields `name=N` on the INFO lines that start with
 * `prefix`. */
static long long info_sum(const char *info, const char *prefix, const char *name)
{
    long long sum = 0;
    for (const char *l = strstr(info, prefix); l; l = strstr(l + 1, prefix)) {
        const char *end = strchr(l, '\n');
        const char *f = strstr(l, name);
        if (f && (!end || f < end))
            sum += strtoll(f + strlen(name), NULL, 10);
    }
    return sum;
}

/* What the scripts cost Redis so far: EVALSHA and EVAL calls (run, refused
 * or failed) and every error reply (an unknown command is only that).  The
 * test's own INFO adds nothing to these. */
static long long script_traffic(redis_server *s)
{
    redisReply *r = redis_server_cmd(s, "INFO all");
    assert_non_null(r);
    assert_non_null(r->str);
    long long n = 0;
    static const char *const fields[] = {"calls=", "rejected_calls=", "failed_calls="};
    for (size_t i = 0; i < 3; i++) {
        n += info_sum(r->str, "cmdstat_evalsha:", fields[i]);
        n += info_sum(r->str, "cmdstat_eval:", fields[i]);
    }
    n += info_sum(r->str, "total_error_replies", ":");
    freeReplyObject(r);
    return n;
}

/* Starts the candidate for url on key, with the restart guard off (its
 * first claim then goes out at once). */
static void start(const char *url, const char *key)
{
    leasehold_config cfg;
    test_config(&cfg, url);
    cfg.restart_guard = false;
    assert_int_equal(candidate_start(&fx.cand[0], &cfg, key, fx.q, 0), 0);
}

/* WARN lines saying that SUBSCRIBE was refused, seen by error_lines(). */
static int subscribe_warnings;

/* Counts the ERROR log lines queued so far (and the SUBSCRIBE warnings), and
 * drops every log line. */
static int error_lines(void)
{
    event_filter f = events_of(EV_LOG, 0);
    int n = 0;
    event ev;
    while (events_wait(fx.q, f, 0, &ev))
        if (ev.value == LEASEHOLD_LOG_ERROR) {
            printf("# ERROR log: %s\n", ev.text);
            n++;
        } else if (ev.value == LEASEHOLD_LOG_WARN && strstr(ev.text, "may not subscribe")) {
            printf("# WARN log: %s\n", ev.text);
            subscribe_warnings++;
        }
    return n;
}

/*
 * The election must halt with `code`: one error callback naming both
 * needles, permanent, one ERROR log line; then, for QUIET_MS, no second
 * callback and no traffic on s.  Returns nothing; fails the test otherwise.
 */
static void expect_halt(redis_server *s, int code, const char *needle1, const char *needle2)
{
    event ev;
    if (!events_wait(fx.q, events_of(EV_ERROR, 0), 5000, &ev))
        fail_msg("no error callback reported %s", leasehold_errname(code));
    printf("# error callback: %s: %s\n", leasehold_errname((int)ev.value), ev.text);
    assert_int_equal(ev.value, code);
    assert_true(leasehold_error_is_permanent((int)ev.value));
    if (needle1 && !strstr(ev.text, needle1))
        fail_msg("the message \"%s\" does not name %s", ev.text, needle1);
    if (needle2 && !strstr(ev.text, needle2))
        fail_msg("the message \"%s\" does not name %s", ev.text, needle2);
    assert_null(strstr(ev.text, "script: "));
    assert_false(leasehold_is_leader(fx.cand[0].election));

    /* A command already on its way may still be counted: wait for the count
     * to settle (two reads 50 ms apart agree), with a deadline. */
    long long before = script_traffic(s), previous;
    uint64_t settle_deadline = test_now_ms() + test_ms(3000);
    do {
        previous = before;
        test_sleep_ms(50);
        before = script_traffic(s);
    } while (before != previous && test_now_ms() < settle_deadline);
    test_sleep_ms(QUIET_MS);
    long long after = script_traffic(s);
    printf("# traffic during %u ms after the halt: %lld\n", QUIET_MS, after - before);
    assert_int_equal(after - before, 0);
    assert_int_equal(events_count(fx.q, events_of(EV_ERROR, -1)), 0);
    assert_int_equal(error_lines(), 1);
    assert_int_equal(events_count(fx.q, events_of(EV_ELECTED, -1)), 0);
}

/* An ACL user without EVALSHA (and EVAL): ENOPERM naming the command and
 * the grant. */
static void test_noperm_command(void **state)
{
    (void)state;
    admin(fx.srv, "ACL SETUSER %s on >pw ~* &* +@all -evalsha -eval -evalsha_ro -eval_ro",
          "no-eval");
    char url[128];
    snprintf(url, sizeof url, "redis://no-eval:pw@127.0.0.1:%d", fx.srv->port);
    start(url, "lh:perm:cmd");
    expect_halt(fx.srv, LEASEHOLD_ENOPERM, "ACL user 'no-eval' may not run 'evalsha'",
                "ACL SETUSER no-eval +evalsha +eval");
}

/* An ACL user without access to the key: ENOPERM naming the key patterns
 * to grant. */
static void test_noperm_key(void **state)
{
    (void)state;
    admin(fx.srv, "ACL SETUSER %s on >pw ~other:* &* +@all", "no-key");
    char url[128];
    snprintf(url, sizeof url, "redis://no-key:pw@127.0.0.1:%d", fx.srv->port);
    start(url, "lh:perm:key");
    expect_halt(fx.srv, LEASEHOLD_ENOPERM, "may not access the key",
                "~lh:perm:key ~{lh:perm:key}:epoch");
}

/* An ACL user without the events channel: ENOPERM naming the channel. */
static void test_noperm_channel(void **state)
{
    (void)state;
    admin(fx.srv, "ACL SETUSER %s on >pw ~* resetchannels +@all", "no-channel");
    char url[128];
    snprintf(url, sizeof url, "redis://no-channel:pw@127.0.0.1:%d", fx.srv->port);
    start(url, "lh:perm:chan");
    subscribe_warnings = 0;
    expect_halt(fx.srv, LEASEHOLD_ENOPERM, "events channel '{lh:perm:chan}:events'",
                "&{lh:perm:chan}:events");
    assert_int_equal(subscribe_warnings, 1); /* the refused SUBSCRIBE: a warning, once */
}

/* A server of the test's own with `command` renamed away. */
static void start_renamed(const char *command)
{
    const char *args[] = {"--rename-command", command, "", NULL};
    redis_server_opts o = {.args = args};
    fx.own = redis_server_start(&o);
    assert_non_null(fx.own);
}

/* EVALSHA renamed away: ENOSCRIPT, the command named, no SHA shown. */
static void test_evalsha_renamed(void **state)
{
    (void)state;
    start_renamed("EVALSHA");
    start(fx.own->url, "lh:perm:noevalsha");
    expect_halt(fx.own, LEASEHOLD_ENOSCRIPT, "does not know the command 'EVALSHA'",
                "rename-command");
}

/* EVAL renamed away: EVALSHA answers NOSCRIPT, the fallback is refused:
 * ENOSCRIPT. */
static void test_eval_renamed(void **state)
{
    (void)state;
    start_renamed("EVAL");
    start(fx.own->url, "lh:perm:noeval");
    expect_halt(fx.own, LEASEHOLD_ENOSCRIPT, "does not know the command 'EVAL'", "rename-command");
}

/* The key holds a list: EWRONGTYPE naming the type, here and in
 * leasehold_holder_get(); the list is left alone. */
static void test_wrongtype(void **state)
{
    (void)state;
    admin(fx.srv, "LPUSH %s x", "lh:perm:list");
    start(fx.srv->url, "lh:perm:list");
    expect_halt(fx.srv, LEASEHOLD_EWRONGTYPE, "'lh:perm:list' holds a list, not a lease string",
                "pick another key");
    leasehold_holder h;
    leasehold_error err;
    assert_int_equal(leasehold_holder_get(fx.cand[0].client, "lh:perm:list", &h, &err),
                     LEASEHOLD_EWRONGTYPE);
    printf("# holder_get: %s\n", err.msg);
    assert_non_null(strstr(err.msg, "'lh:perm:list' holds a list"));
    admin(fx.srv, "HSET %s f v", "{lh:perm:epochhash}:epoch");
    assert_int_equal(leasehold_holder_get(fx.cand[0].client, "lh:perm:epochhash", &h, &err),
                     LEASEHOLD_EWRONGTYPE);
    printf("# holder_get: %s\n", err.msg);
    assert_non_null(strstr(err.msg, "'{lh:perm:epochhash}:epoch' holds a hash"));
    redisReply *r = redis_server_cmd(fx.srv, "TYPE %s", "lh:perm:list");
    assert_non_null(r);
    assert_string_equal(r->str, "list");
    freeReplyObject(r);
}

/* The URL points at a replica: EREADONLY, naming the server and the fix. */
static void test_readonly_replica(void **state)
{
    (void)state;
    fixture_start_replica();
    start(fx.own->url, "lh:perm:replica");
    char where[64];
    snprintf(where, sizeof where, "127.0.0.1:%d is a read-only replica", fx.own->port);
    expect_halt(fx.own, LEASEHOLD_EREADONLY, where, "point the URL at the master");
}

/* A value with no TTL: ENOTLEASE naming the value; leasehold_holder_get()
 * still reports it (ttl -1); once it is deleted, leasehold_resume() makes
 * the campaign win. */
static void test_no_ttl_then_resume(void **state)
{
    (void)state;
    const char *key = "lh:perm:nottl";
    admin(fx.srv, "SET %s somevalue", key);
    start(fx.srv->url, key);
    expect_halt(fx.srv, LEASEHOLD_ENOTLEASE, "holds 'somevalue' with no TTL",
                "delete it, or pick another key");

    leasehold_holder h;
    leasehold_error err;
    assert_int_equal(leasehold_holder_get(fx.cand[0].client, key, &h, &err), 0);
    assert_string_equal(h.token, "somevalue");
    assert_int_equal(h.ttl_ms, -1);
    assert_false(leasehold_is_token(h.token));

    admin(fx.srv, "DEL %s", key);
    assert_int_equal(leasehold_resume(fx.cand[0].election), 0);
    event ev;
    assert_true(events_wait(fx.q, events_of(EV_ELECTED, 0), 5000, &ev));
    assert_true(leasehold_is_leader(fx.cand[0].election));
    assert_int_equal(leasehold_resume(fx.cand[0].election), 0); /* not halted: nothing */
    assert_true(leasehold_is_leader(fx.cand[0].election));
    assert_int_equal(leasehold_resume(NULL), LEASEHOLD_EINVAL);
}

/* A foreign value with a TTL (another program's, or the original module's
 * with any value): EFOREIGN once, with the value escaped; the campaign goes
 * on and wins once the key expires. */
static void test_foreign_value_waited_for(void **state)
{
    (void)state;
    const char *key = "lh:perm:foreign";
    redisReply *r = redis_server_cmd(fx.srv, "SET %s %b PX 1500", key, "cron\njob", (size_t)8);
    assert_non_null(r);
    freeReplyObject(r);
    start(fx.srv->url, key);
    event ev;
    assert_true(events_wait(fx.q, events_of(EV_ERROR, 0), 5000, &ev));
    printf("# error callback: %s: %s\n", leasehold_errname((int)ev.value), ev.text);
    assert_int_equal(ev.value, LEASEHOLD_EFOREIGN);
    assert_false(leasehold_error_is_permanent((int)ev.value));
    assert_non_null(strstr(ev.text, "'cron\\njob'"));
    assert_null(strchr(ev.text, '\n'));
    assert_true(events_wait(fx.q, events_of(EV_ELECTED, 0), 5000, NULL));
    assert_int_equal(events_count(fx.q, events_of(EV_ERROR, -1)), 0);
    assert_int_equal(error_lines(), 0); /* a warning, not an error */
}

/* A transient error (a full Redis: OOM) is retried, and reported once
 * (callback and ERROR line) however many retries meet it; once it clears,
 * the campaign wins. */
static void test_transient_retried_reported_once(void **state)
{
    (void)state;
    admin(fx.srv, "CONFIG SET maxmemory %s", "1");
    start(fx.srv->url, "lh:perm:oom");
    event ev;
    assert_true(events_wait(fx.q, events_of(EV_ERROR, 0), 5000, &ev));
    printf("# error callback: %s: %s\n", leasehold_errname((int)ev.value), ev.text);
    assert_int_equal(ev.value, LEASEHOLD_EREDIS);
    assert_false(leasehold_error_is_permanent((int)ev.value));
    assert_non_null(strstr(ev.text, "OOM"));
    assert_null(strstr(ev.text, "script: "));
    long long before = script_traffic(fx.srv);
    test_sleep_ms(QUIET_MS);
    long long after = script_traffic(fx.srv);
    printf("# traffic during %u ms of OOM: %lld\n", QUIET_MS, after - before);
    admin(fx.srv, "CONFIG SET maxmemory %s", "0");
    assert_true(after - before >= 2); /* retried (every 225-300 ms) */
    assert_int_equal(events_count(fx.q, events_of(EV_ERROR, -1)), 0);
    assert_int_equal(error_lines(), 1);
    assert_true(events_wait(fx.q, events_of(EV_ELECTED, 0), 5000, NULL));

    /* Successes in between: the same failure is news again. */
    admin(fx.srv, "CONFIG SET maxmemory %s", "1");
    assert_int_equal(leasehold_resign(fx.cand[0].election), 0);
    assert_true(events_wait(fx.q, events_of(EV_ERROR, 0), 5000, &ev));
    printf("# error callback: %s: %s\n", leasehold_errname((int)ev.value), ev.text);
    assert_int_equal(ev.value, LEASEHOLD_EREDIS);
    assert_non_null(strstr(ev.text, "OOM"));
}

/* A leader whose ACL loses EVALSHA mid-term: revoked with LEASEHOLD_HALTED,
 * one ENOPERM, no more renewals. */
static void test_leader_acl_revoked(void **state)
{
    (void)state;
    admin(fx.srv, "ACL SETUSER %s on >pw ~* &* +@all", "revocable");
    char url[128];
    snprintf(url, sizeof url, "redis://revocable:pw@127.0.0.1:%d", fx.srv->port);
    start(url, "lh:perm:revoked");
    assert_true(events_wait(fx.q, events_of(EV_ELECTED, 0), 5000, NULL));
    admin(fx.srv, "ACL SETUSER %s -evalsha -eval", "revocable");
    event ev;
    assert_true(events_wait(fx.q, events_of(EV_REVOKED, 0), 5000, &ev));
    assert_int_equal(ev.value, LEASEHOLD_HALTED);
    assert_false(leasehold_is_leader(fx.cand[0].election));
    expect_halt(fx.srv, LEASEHOLD_ENOPERM, "may not run 'evalsha'", NULL);
}

/* A service that reports (EV_NOTE 1) when its token is cancelled. */
static int probe_service(leasehold_token *t, void *arg)
{
    while (leasehold_token_sleep(t, 20)) {
    }
    event ev = {.kind = EV_NOTE, .value = 1};
    events_emit(arg, &ev);
    return 0;
}

/* revoked, and whether the election was still leader in it (EV_NOTE 2) or
 * not (EV_NOTE 3). */
static void probe_revoked(leasehold_election *e, leasehold_reason reason, void *arg)
{
    event ev = {.kind = EV_REVOKED, .value = reason};
    events_emit(arg, &ev);
    event note = {.kind = EV_NOTE, .value = leasehold_is_leader(e) ? 2 : 3};
    events_emit(arg, &note);
}

/* A leader running a service halts: not leader before revoked(HALTED), its
 * service cancelled, one ENOPERM. */
static void test_service_leader_halted(void **state)
{
    (void)state;
    admin(fx.srv, "ACL SETUSER %s on >pw ~* &* +@all", "revocable2");
    char url[128];
    snprintf(url, sizeof url, "redis://revocable2:pw@127.0.0.1:%d", fx.srv->port);
    leasehold_config cfg;
    test_config(&cfg, url);
    cfg.restart_guard = false;
    fx.cand[0].sink = (event_sink){.q = fx.q, .fd = -1, .who = 0};
    cfg.log = events_log;
    cfg.log_arg = &fx.cand[0].sink;
    leasehold_error err;
    fx.cand[0].client = leasehold_client_new(&cfg, &err);
    assert_non_null(fx.cand[0].client);
    leasehold_callbacks cb = events_callbacks;
    cb.revoked = probe_revoked;
    fx.cand[0].election = leasehold_serve_cb(fx.cand[0].client, "lh:perm:service", probe_service,
                                             &fx.cand[0].sink, &cb, &err);
    assert_non_null(fx.cand[0].election);
    assert_true(events_wait(fx.q, events_of(EV_ELECTED, 0), 5000, NULL));
    admin(fx.srv, "ACL SETUSER %s -evalsha -eval", "revocable2");
    event ev;
    assert_true(events_wait(fx.q, events_of(EV_REVOKED, 0), 5000, &ev));
    assert_int_equal(ev.value, LEASEHOLD_HALTED);
    /* Two notes, in either order: the service's token runs out by itself
     * (its timerfd), so the service may return before revoked runs. */
    bool not_leader_in_revoked = false, service_returned = false;
    for (int i = 0; i < 2; i++) {
        assert_true(events_wait(fx.q, events_of(EV_NOTE, 0), 5000, &ev));
        not_leader_in_revoked |= ev.value == 3;
        service_returned |= ev.value == 1;
    }
    assert_true(not_leader_in_revoked);
    assert_true(service_returned);
    expect_halt(fx.srv, LEASEHOLD_ENOPERM, "may not run 'evalsha'", NULL);
}

/* An observer halts too: no more reads of a key with no TTL. */
static void test_observer_halts(void **state)
{
    (void)state;
    const char *key = "lh:perm:observed";
    admin(fx.srv, "SET %s junk", key);
    leasehold_config cfg;
    test_config(&cfg, fx.srv->url);
    event_sink sink = {.q = fx.q, .fd = -1, .who = 0};
    cfg.log = events_log;
    cfg.log_arg = &sink;
    leasehold_error err;
    fx.cand[0].client = leasehold_client_new(&cfg, &err);
    assert_non_null(fx.cand[0].client);
    fx.cand[0].election = leasehold_observe(fx.cand[0].client, key, &events_callbacks, &sink, &err);
    assert_non_null(fx.cand[0].election);
    expect_halt(fx.srv, LEASEHOLD_ENOTLEASE, "holds 'junk' with no TTL", NULL);
    candidate_stop(&fx.cand[0]); /* before sink goes out of scope */
}

/* Keys with control characters are refused by every entry point. */
static void test_control_char_keys(void **state)
{
    (void)state;
    leasehold_config cfg;
    test_config(&cfg, fx.srv->url);
    leasehold_error err;
    leasehold_client *c = leasehold_client_new(&cfg, &err);
    assert_non_null(c);
    static const char *const keys[] = {"a\nb", "tab\there", "del\x7f", "\x1b[31mred"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        assert_null(leasehold_campaign(c, keys[i], NULL, NULL, &err));
        printf("# %s\n", err.msg);
        assert_int_equal(err.code, LEASEHOLD_EINVAL);
        assert_non_null(strstr(err.msg, "control character"));
        assert_null(strchr(err.msg, '\n'));
        assert_null(leasehold_observe(c, keys[i], NULL, NULL, &err));
        assert_int_equal(err.code, LEASEHOLD_EINVAL);
        assert_null(leasehold_serve(c, keys[i], NULL, NULL, &err));
        assert_int_equal(err.code, LEASEHOLD_EINVAL);
        leasehold_holder h;
        assert_int_equal(leasehold_holder_get(c, keys[i], &h, &err), LEASEHOLD_EINVAL);
        assert_non_null(strstr(err.msg, "control character"));
    }
    leasehold_client_free(c);
}

/* A test between fixture_setup and the teardown above. */
#define PERM_TEST(f) cmocka_unit_test_setup_teardown(f, fixture_setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        PERM_TEST(test_noperm_command),
        PERM_TEST(test_noperm_key),
        PERM_TEST(test_noperm_channel),
        PERM_TEST(test_evalsha_renamed),
        PERM_TEST(test_eval_renamed),
        PERM_TEST(test_wrongtype),
        PERM_TEST(test_readonly_replica),
        PERM_TEST(test_no_ttl_then_resume),
        PERM_TEST(test_foreign_value_waited_for),
        PERM_TEST(test_transient_retried_reported_once),
        PERM_TEST(test_leader_acl_revoked),
        PERM_TEST(test_service_leader_halted),
        PERM_TEST(test_observer_halts),
        PERM_TEST(test_control_char_keys),
    };
    return cmocka_run_group_tests(tests, fixture_group_setup, fixture_group_teardown);
}
