/* test_acl.c — the least-privilege ACL rules of README's "Least privilege"
 * section, run as written (the key and password swapped for the test's):
 * a user with exactly the campaign rule campaigns, hands over and releases;
 * one with exactly the observer rule reads and watches; the prefix variant
 * works; and for each permission of the campaign rule, a user with all the
 * others is told, in the line its failure or warning logs, what is missing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fixture.h"
#include "readme.h"
#include "testutil.h"
#include "tool_proc.h"

#define DOC_KEY    "jobs:scheduler"
#define MAX_TOKENS 48

/* One README rule: ACL SETUSER's arguments after the user name. */
typedef struct rule {
    char user[32];
    char *tok[MAX_TOKENS];
    int n;
    char buf[2048];
} rule;

static rule campaign_rule, observer_rule;

/* s with every DOC_KEY replaced by key, into out. */
static void swap_key(const char *s, const char *key, char *out, size_t size)
{
    size_t n = 0;
    while (*s && n + 1 < size) {
        if (strncmp(s, DOC_KEY, strlen(DOC_KEY)) == 0) {
            n += (size_t)snprintf(out + n, size - n, "%s", key);
            s += strlen(DOC_KEY);
        } else {
            out[n++] = *s++;
        }
    }
    out[n < size ? n : size - 1] = '\0';
}

/* The README line "redis-cli ACL SETUSER <user> ..." into r, single quotes
 * removed (no argument holds a space). */
static void parse_rule(const char *line, rule *r)
{
    const char *prefix = "redis-cli ACL SETUSER ";
    assert_int_equal(strncmp(line, prefix, strlen(prefix)), 0);
    size_t len = strcspn(line, "\n");
    size_t k = 0;
    for (size_t i = strlen(prefix); i < len && k + 1 < sizeof r->buf; i++)
        if (line[i] != '\'')
            r->buf[k++] = line[i];
    r->buf[k] = '\0';
    char *save = NULL;
    char *user = strtok_r(r->buf, " ", &save);
    assert_non_null(user);
    snprintf(r->user, sizeof r->user, "%s", user);
    r->n = 0;
    for (char *t; (t = strtok_r(NULL, " ", &save)) && r->n < MAX_TOKENS;)
        r->tok[r->n++] = t;
}

/* Sets user `user` to r for key (password "pw"), leaving out r->tok[skip]
 * (-1: nothing). */
static void apply_rule(const rule *r, const char *user, const char *key, int skip)
{
    const char *argv[MAX_TOKENS + 4];
    char args[MAX_TOKENS][200];
    int argc = 0;
    argv[argc++] = "ACL";
    argv[argc++] = "SETUSER";
    argv[argc++] = user;
    argv[argc++] = "reset";
    for (int i = 0; i < r->n; i++) {
        if (i == skip)
            continue;
        if (r->tok[i][0] == '>')
            snprintf(args[i], sizeof args[i], ">pw");
        else
            swap_key(r->tok[i], key, args[i], sizeof args[i]);
        argv[argc++] = args[i];
    }
    redisContext *ctx = redisConnect("127.0.0.1", fx.srv->port);
    assert_non_null(ctx);
    assert_int_equal(ctx->err, 0);
    redisReply *rep = redisCommandArgv(ctx, argc, argv, NULL);
    assert_non_null(rep);
    if (rep->type == REDIS_REPLY_ERROR)
        fail_msg("ACL SETUSER: %s", rep->str);
    freeReplyObject(rep);
    redisFree(ctx);
}

static void admin_cmd(const char *fmt, const char *arg)
{
    redisReply *r = redis_server_cmd(fx.srv, fmt, arg);
    assert_non_null(r);
    freeReplyObject(r);
}

/* Reads both rules from README (once). */
static void load_rules(void)
{
    if (campaign_rule.n)
        return;
    char block[4096];
    readme_block("sh", "# leasehold-acl:", block, sizeof block);
    const char *camp = strstr(block, "redis-cli ACL SETUSER scheduler");
    const char *obs = strstr(block, "redis-cli ACL SETUSER monitor");
    assert_non_null(camp);
    assert_non_null(obs);
    parse_rule(camp, &campaign_rule);
    parse_rule(obs, &observer_rule);
}

/* A URL for user with password "pw". */
static const char *user_url(const char *user)
{
    static char url[128];
    snprintf(url, sizeof url, "redis://%s:pw@127.0.0.1:%d", user, fx.srv->port);
    return url;
}

/* Fails if any of fx.q's log lines so far is a WARN or an ERROR. */
static void expect_quiet_logs(void)
{
    event ev;
    event_filter f = events_of(EV_LOG, -1);
    while (events_wait(fx.q, f, 0, &ev))
        if (ev.value <= LEASEHOLD_LOG_WARN)
            fail_msg("log line under the exact rule: %s", ev.text);
}

/* Two candidates under the campaign rule: elected, handed over at once (so
 * the events channel works), released; nothing warned about. */
static void campaign_works(const char *user, const char *key)
{
    leasehold_config cfg;
    test_config(&cfg, user_url(user));
    cfg.retry_interval_ms = 5000;
    fixture_start_candidates(&cfg, key, 2);
    event el = fixture_first_leader(&cfg, -1);
    assert_int_equal(leasehold_resign(fx.cand[el.who].election), 0);
    event next;
    event_filter f = {EV_ELECTED, -1, el.who, NULL};
    if (!events_wait(fx.q, f, 2000, &next))
        fail_msg("%s: no handover within 2 s (the events channel, retry 5 s)", user);
    candidate_stop(&fx.cand[el.who]);
    candidate_stop(&fx.cand[next.who]);
    char holder[256];
    fixture_redis_get(key, holder, sizeof holder);
    assert_string_equal(holder, ""); /* released */
    expect_quiet_logs();
}

static void test_campaign_rule(void **state)
{
    (void)state;
    load_rules();
    apply_rule(&campaign_rule, "scheduler", "lh:acl:campaign", -1);
    campaign_works("scheduler", "lh:acl:campaign");
}

/* The prefix variant the README gives, for a key under it. */
static void test_prefix_rule(void **state)
{
    (void)state;
    load_rules();
    rule r = campaign_rule;
    for (int i = 0; i < r.n; i++) {
        if (strcmp(r.tok[i], "~" DOC_KEY) == 0)
            r.tok[i] = "~jobs:*";
        else if (strcmp(r.tok[i], "~{" DOC_KEY "}:epoch") == 0)
            r.tok[i] = "~{jobs:*}:*";
        else if (strcmp(r.tok[i], "~{" DOC_KEY "}:quarantine") == 0)
            r.tok[i] = "-ping"; /* dropped below: ~{jobs:*}:* covers it */
        else if (strcmp(r.tok[i], "&{" DOC_KEY "}:events") == 0)
            r.tok[i] = "&{jobs:*}:events";
    }
    int quarantine = -1;
    for (int i = 0; i < r.n; i++)
        if (strcmp(r.tok[i], "-ping") == 0)
            quarantine = i;
    apply_rule(&r, "prefixed", "unused", quarantine);
    campaign_works("prefixed", "jobs:nightly");
}

/* The observer rule: status reads the holder, watch sees a change. */
static void test_observer_rule(void **state)
{
    (void)state;
    load_rules();
    const char *key = "lh:acl:observe";
    apply_rule(&campaign_rule, "scheduler", key, -1);
    apply_rule(&observer_rule, "monitor", key, -1);
    const char *watch_args[] = {"watch", "--url", user_url("monitor"), "--key", key, NULL};
    proc *w = proc_start("leasehold", NULL, watch_args);
    expect_output(w, "no leader", 5000);
    leasehold_config cfg;
    test_config(&cfg, user_url("scheduler"));
    fixture_start_candidates(&cfg, key, 1);
    fixture_first_leader(&cfg, 0);
    expect_output(w, " elected epoch=", 5000);
    const char *status_args[] = {"status", "--url", user_url("monitor"), "--key", key, NULL};
    proc *s = proc_start("leasehold", NULL, status_args);
    expect_exit(s, 0, 10000);
    expect_mentions(s, "status under the observer rule", ": leader |, epoch ");
    if (strstr(s->out, "WARN") || strstr(s->out, "ERROR") || strstr(w->out, "WARN"))
        fail_msg("the observer warned:\n%s\n%s", s->out, w->out);
    proc_free(s);
    proc_free(w);
}

/* What the failure says when permission tok is missing: the command's name
 * in quotes, the key pattern (the grant names them all), or the channel in
 * quotes. */
static void missing_says(const char *tok, const char *key, char *out, size_t size)
{
    char swapped[150];
    swap_key(tok, key, swapped, sizeof swapped);
    if (tok[0] == '+')
        snprintf(out, size, "'%s'", tok + 1);
    else if (tok[0] == '~')
        snprintf(out, size, "%s", swapped); /* in the grant of "may not access the key" */
    else
        snprintf(out, size, "'%s'", swapped + 1);
}

/* Each permission of the campaign rule left out in turn: `leasehold run`
 * (or, for +unsubscribe, a client that ends one of two elections) names it. */
static void test_each_permission_named(void **state)
{
    (void)state;
    load_rules();
    const char *key = "lh:acl:each";
    int checked = 0;
    for (int i = 0; i < campaign_rule.n; i++) {
        const char *tok = campaign_rule.tok[i];
        if (tok[0] != '+' && tok[0] != '~' && tok[0] != '&')
            continue; /* on, >password, reset*, -@all */
        apply_rule(&campaign_rule, "partial", key, i);
        admin_cmd("SCRIPT FLUSH", NULL); /* so that EVAL is needed */
        admin_cmd("DEL %s", key);
        char says[400];
        missing_says(tok, key, says, sizeof says);
        if (strcmp(tok, "+unsubscribe") == 0) {
            leasehold_config cfg;
            test_config(&cfg, user_url("partial"));
            fixture_start_candidates(&cfg, key, 1);
            fixture_first_leader(&cfg, 0);
            leasehold_election_free(fx.cand[0].election); /* the client lives on */
            fx.cand[0].election = NULL;
            event ev;
            event_filter f = events_of(EV_LOG, 0);
            bool seen = false;
            while (!seen && events_wait(fx.q, f, 3000, &ev))
                seen = strstr(ev.text, says) != NULL;
            if (!seen)
                fail_msg("without %s: no log line says \"%s\"", tok, says);
            candidate_stop(&fx.cand[0]);
        } else {
            const char *args[] = {
                "run", "--url", user_url("partial"), "--key", key, "--lease", "1s", "--",
                "sh",  "-c",    "sleep 0.6",         NULL};
            proc *p = proc_start("leasehold", NULL, args);
            proc_exit_code(p, 15000);
            if (!strstr(p->out, says))
                fail_msg("without %s: the output does not say \"%s\":\n%s", tok, says, p->out);
            printf("# without %s: says \"%s\"\n", tok, says);
            proc_free(p);
        }
        checked++;
    }
    assert_true(checked >= 16);
}

int main(int argc, char **argv)
{
    fixture_run_child(argc, argv);
    const struct CMUnitTest tests[] = {
        FIXTURE_TEST(test_campaign_rule),
        FIXTURE_TEST(test_prefix_rule),
        FIXTURE_TEST(test_observer_rule),
        FIXTURE_TEST(test_each_permission_named),
    };
    return cmocka_run_group_tests(tests, fixture_group_setup, fixture_group_teardown);
}
