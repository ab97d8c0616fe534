/*
 * test_server.c — the `server` binary, run as a user runs it, against a
 * redis-server of this test's own.
 *
 * Each server is started through `env` (to set or clear SNAKETRON_*) and
 * `sh -c 'exec "$0" "$@" 2>&1'` (to merge its stderr, where it logs, into
 * the pipe the harness gives its stdout); both exec, so the pid the harness
 * returns is the server's own.  The test reads that pipe on its own thread
 * and waits for lines with deadlines.  Every test campaigns for a key of its
 * own, so a server left behind by a failed test cannot disturb the next.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <regex.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "fixture.h"
#include "perm_cases.h"
#include "testutil.h"
#include "tool_proc.h"

#define LEADER_LINE "This server is now the leader!"

/* Timing of the servers that campaign: short, so failovers are quick. */
#define LEASE_MS 1000
static const char *const fast_timing[][2] = {
    {"--lease-ms", "1000"},           {"--renew-ms", "300"},
    {"--renew-deadline-ms", "700"},   {"--retry-ms", "300"},
    {"--service-interval-ms", "200"},
};

/* A text and how many times it should have been printed. */
typedef struct text_count {
    const char *text;
    int times;
} text_count;

static bool prints_n_times(const proc *p, const void *arg)
{
    const text_count *tc = arg;
    int n = 0;
    for (const char *c = strstr(p->out, tc->text); c; c = strstr(c + 1, tc->text))
        n++;
    return n >= tc->times;
}

/* The number of lines p printed. */
static int line_count(const proc *p)
{
    int n = 0;
    for (const char *c = p->out; *c; c++)
        n += *c == '\n';
    return n;
}

/* Fills args (room for 20) with the test Redis's URL, the key, the
 * identity and the fast timing. */
static void campaign_args(const char *args[20], const char *key, const char *id)
{
    size_t n = 0;
    args[n++] = "--url";
    args[n++] = fx.srv->url;
    args[n++] = "--key";
    args[n++] = key;
    args[n++] = "--id";
    args[n++] = id;
    for (size_t i = 0; i < sizeof fast_timing / sizeof fast_timing[0]; i++) {
        args[n++] = fast_timing[i][0];
        args[n++] = fast_timing[i][1];
    }
    args[n] = NULL;
}

/* The full line of p's output that contains needle (cut to size). */
static void line_with(const proc *p, const char *needle, char *out, size_t size)
{
    const char *hit = strstr(p->out, needle);
    assert_non_null(hit);
    const char *start = hit;
    while (start > p->out && start[-1] != '\n')
        start--;
    const char *end = strchr(hit, '\n');
    size_t len = end ? (size_t)(end - start) : strlen(start);
    snprintf(out, size, "%.*s", (int)len, start);
}

/* ------------------------------------------------------------------ tests */

/*
 * Three servers: exactly one leads, with a well-formed log line and its
 * token in the key; SIGTERM hands over at once (no waiting for the TTL) and
 * exits 0 after releasing; SIGKILL hands over once the lease lapses.
 */
static void test_three_servers_failover(void **state)
{
    (void)state;
    const char *key = "test_server:three";
    const char *ids[3] = {"s0", "s1", "s2"};
    proc *ps[3];
    for (int i = 0; i < 3; i++) {
        const char *args[20];
        campaign_args(args, key, ids[i]);
        ps[i] = proc_start("server", NULL, args);
    }

    int leader = first_to_print(ps, 3, LEADER_LINE, 10000);
    assert_true(leader >= 0);
    /* It has led for a while (two service periods); nobody else claims to. */
    const text_count twice = {"Leader service is running...", 2};
    proc *leader_only[] = {ps[leader]};
    assert_int_equal(
        procs_wait(leader_only, 1, prints_n_times, &twice, test_now_ms() + test_ms(3000)), 0);
    for (int i = 0; i < 3; i++)
        if (i != leader)
            assert_null(strstr(ps[i]->out, LEADER_LINE));

    char line[1024];
    line_with(ps[leader], LEADER_LINE, line, sizeof line);
    regex_t re;
    assert_int_equal(regcomp(&re,
                             "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "
                             "INFO  test_server:three epoch=[1-9][0-9]* token=s[0-2]/[^ ]+: "
                             "This server is now the leader!$",
                             REG_EXTENDED | REG_NOSUB),
                     0);
    int match = regexec(&re, line, 0, NULL, 0);
    regfree(&re);
    if (match != 0)
        fail_msg("malformed leader line: %s", line);
    char holder[512], expected[16];
    fixture_redis_get(key, holder, sizeof holder);
    snprintf(expected, sizeof expected, "%s/", ids[leader]);
    assert_true(strncmp(holder, expected, strlen(expected)) == 0);
    assert_non_null(strstr(line, holder)); /* the token in the log is the key's */

    /* Graceful: SIGTERM -> exit 0 after releasing; a successor well within a lease. */
    uint64_t stopped_at = test_now_ms();
    test_process_signal(ps[leader]->pid, SIGTERM);
    proc *rest[2];
    for (int i = 0, j = 0; i < 3; i++)
        if (i != leader)
            rest[j++] = ps[i];
    int heir = first_to_print(rest, 2, LEADER_LINE, 5000);
    uint64_t handover_ms = test_now_ms() - stopped_at;
    assert_true(heir >= 0);
    if (handover_ms >= test_ms(LEASE_MS * 7 / 10))
        fail_msg("graceful handover took %llu ms: the lease was not released",
                 (unsigned long long)handover_ms);
    expect_exit(ps[leader], 0, 5000);
    assert_non_null(strstr(ps[leader]->out, "received SIGTERM"));
    assert_non_null(strstr(ps[leader]->out, "releasing the lease"));

    /* Crash: SIGKILL -> the last one leads once the lease has lapsed. */
    proc *last = rest[1 - heir];
    test_process_signal(rest[heir]->pid, SIGKILL);
    expect_exit(rest[heir], 128 + SIGKILL, 5000);
    expect_output(last, LEADER_LINE, LEASE_MS + 3000);
    assert_non_null(strstr(last->out, "new leader ")); /* it saw the others lead */

    test_process_signal(last->pid, SIGTERM);
    expect_exit(last, 0, 5000);
    fixture_redis_get(key, holder, sizeof holder);
    assert_string_equal(holder, ""); /* released on the way out */
    for (int i = 0; i < 3; i++)
        proc_free(ps[i]);
}

/* The key comes from SNAKETRON_REGION when --key is not given. */
static void test_region_from_environment(void **state)
{
    (void)state;
    char url_env[700];
    snprintf(url_env, sizeof url_env, "SNAKETRON_REDIS_URL=%s", fx.srv->url);
    const char *env[] = {url_env, "SNAKETRON_REGION=test-region", NULL};
    const char *args[] = {"--lease-ms",          "1000", "--renew-ms", "300",
                          "--renew-deadline-ms", "700",  NULL};
    proc *p = proc_start("server", env, args);
    expect_output(p, LEADER_LINE, 10000);
    char line[1024], holder[512];
    line_with(p, LEADER_LINE, line, sizeof line);
    assert_non_null(strstr(line, " snaketron:leader:test-region "));
    fixture_redis_get("snaketron:leader:test-region", holder, sizeof holder);
    assert_true(holder[0] != '\0');
    assert_non_null(strstr(line, holder));
    test_process_signal(p->pid, SIGINT);
    expect_exit(p, 0, 5000);
    assert_non_null(strstr(p->out, "received SIGINT"));
    proc_free(p);
}

/* Without SNAKETRON_REDIS_URL the server runs, says so, and exits 0 on SIGTERM. */
static void test_election_disabled(void **state)
{
    (void)state;
    const char *args[] = {NULL};
    proc *p = proc_start("server", NULL, args);
    expect_output(p, "leader election disabled (SNAKETRON_REDIS_URL is not set)", 5000);
    test_process_signal(p->pid, SIGTERM);
    expect_exit(p, 0, 5000);
    assert_null(strstr(p->out, LEADER_LINE));
    proc_free(p);
}

/* Each bad option or configuration: exit 64, one line that says what is wrong. */
static void test_bad_options(void **state)
{
    (void)state;
    static const char *const cases[][6] = {
        {"--lease-ms", "abc"},
        {"--lease-ms", "4294967296"},
        {"--lease-ms", "99999999999999999999999"},
        {"--lease-ms", "-1"},
        {"--lease-ms", " 5"},
        {"--lease-ms", "5x"},
        {"--lease-ms", ""},
        {"--lease-ms"},
        {"--bogus"},
        {"-x"},
        {"--log-level", "loud"},
        {"--service-interval-ms", "0"},
        {"--region", ""},
        {"--key", ""},
        {"stray-argument"},
        {"--url", "http://127.0.0.1/"},
        {"--url", "@REDIS", "--lease-ms", "100", "--renew-ms", "300"},
        {"--clock-drift-ppm", "1%"},
        {"--url", "@REDIS", "--clock-drift-ppm", "0"},
        {"--url", "@REDIS", "--clock-drift-ppm", "200001"},
        /* with 20% of drift, lease 2000 is certain for 1598 ms only */
        {"--url", "@REDIS", "--renew-deadline-ms", "1700", "--clock-drift-ppm", "200000"},
        /* one vocabulary with leasehold: durations with units, same refusals */
        {"--lease", "2000"},
        {"--lease", "0x10s"},
        {"--lease", "1e3ms"},
        {"--lease", "4ms"},
        {"--renew", "5s"},
        {"--command-timeout", "1s"},
        {"--stop-timeout", "0s"},
        {"--service-interval", "1.5"},
        {"--key", "k", "--region", "r"},
        {"--id", "a b"},
        {"-q", "-v"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *args[8] = {0};
        for (size_t j = 0; j < 6 && cases[i][j]; j++)
            args[j] = strcmp(cases[i][j], "@REDIS") == 0 ? fx.srv->url : cases[i][j];
        proc *p = proc_start("server", NULL, args);
        int code = proc_exit_code(p, 5000);
        if (code != 64 || line_count(p) != 1 || strncmp(p->out, "server: ", 8) != 0) {
            fprintf(stderr, "--- output:\n%s--- end of output\n", p->out);
            fail_msg("case %zu (%s %s): exit %d", i, cases[i][0], cases[i][1] ? cases[i][1] : "",
                     code);
        }
        proc_free(p);
    }
}

/*
 * Item 4: a key with a control character is refused, from --key, --region
 * and SNAKETRON_REGION, as leasehold refuses it: exit 64 and one line
 * naming where it came from.  So is an empty SNAKETRON_REGION.
 */
static void test_control_characters_in_key(void **state)
{
    (void)state;
    static const struct {
        const char *env;
        const char *args[4];
        const char *message;
    } cases[] = {
        {NULL,
         {"--key", "srv\nkey"},
         "server: --key: 'srv\\x0akey' holds a control character (byte 0x0a at offset 3): the key "
         "must be printable"},
        {NULL,
         {"--region", "eu\x7f"},
         "server: --region: 'eu\\x7f' holds a control character (byte 0x7f at offset 2): the "
         "region must be printable"},
        {"SNAKETRON_REGION=eu\nwest",
         {NULL},
         "server: SNAKETRON_REGION: 'eu\\x0awest' holds a control character (byte 0x0a at offset "
         "2): the region must be printable"},
        {"SNAKETRON_REGION=",
         {NULL},
         "server: SNAKETRON_REGION is set but empty: name a region, or unset it for the region "
         "default"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *args[8] = {"--url", fx.srv->url};
        size_t n = 2;
        for (size_t a = 0; cases[i].args[a]; a++)
            args[n++] = cases[i].args[a];
        const char *env[] = {cases[i].env, NULL};
        proc *p = proc_start("server", env, args);
        int code = proc_exit_code(p, 5000);
        char want[600];
        snprintf(want, sizeof want, "%s\n", cases[i].message);
        if (code != 64 || strcmp(p->out, want) != 0) {
            fprintf(stderr, "--- output:\n%s--- end of output\n", p->out);
            fail_msg("case %zu: exit %d, want 64 and: %s", i, code, want);
        }
        proc_free(p);
    }
}

/* --version prints "leasehold-server 0.x.y", whatever the program's file
 * is called. */
static void test_version(void **state)
{
    (void)state;
    const char *args[] = {"--version", NULL};
    proc *p = proc_start("server", NULL, args);
    expect_exit(p, 0, 5000);
    if (strncmp(p->out, "leasehold-server 0.", 19) != 0 || line_count(p) != 1) {
        fprintf(stderr, "--- output:\n%s--- end of output\n", p->out);
        fail_msg("--version does not print one line, leasehold-server 0.x.y");
    }
    proc_free(p);
}

/* Durations with units, as leasehold takes them: --lease 1s alone derives
 * the other timings and the server leads. */
static void test_durations(void **state)
{
    (void)state;
    const char *args[] = {
        "--url", fx.srv->url, "--key", "srv:durations", "--lease", "1s", "--service-interval",
        "200ms", NULL};
    proc *p = proc_start("server", NULL, args);
    expect_output(p, "campaigning for leadership (lease 1000 ms)", 5000);
    expect_output(p, "Leader service is running...", 10000);
    test_process_signal(p->pid, SIGTERM);
    expect_exit(p, 0, 5000);
    proc_free(p);
}

/* Redis refusing connections: exit 69 with one line naming the URL, as
 * text or JSON (--log-format). */
static void test_unreachable_redis(void **state)
{
    (void)state;
    int port = redis_server_free_port();
    assert_true(port > 0);
    char env_url[128], url[100];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
    snprintf(env_url, sizeof env_url, "SNAKETRON_REDIS_URL=%s", url);
    const char *env[] = {env_url, NULL};
    /* One line, in the format asked for. */
    for (int json = 0; json < 2; json++) {
        const char *args[] = {"--log-format", json ? "json" : "text", NULL};
        proc *p = proc_start("server", env, args);
        int code = proc_exit_code(p, 5000);
        if (code != 69 || !strstr(p->out, url + strlen("redis://"))) {
            fprintf(stderr, "--- output:\n%s--- end of output\n", p->out);
            fail_msg("exit %d, expected 69 and a message naming %s", code, url);
        }
        expect_one_error_line(p, json);
        proc_free(p);
    }
}

/* --help exits 0 and documents every option and variable. */
static void test_help(void **state)
{
    (void)state;
    const char *args[] = {"--help", NULL};
    proc *p = proc_start("server", NULL, args);
    expect_exit(p, 0, 5000);
    expect_mentions(p, "--help",
                    "SNAKETRON_REDIS_URL|SNAKETRON_REGION|--url|--region|--key|--id|--lease-ms|"
                    "--renew-ms|--retry-ms|--renew-deadline-ms|--command-timeout-ms|"
                    "--connect-timeout-ms|--stop-timeout-ms|--log-level|--service-interval-ms|"
                    "--lease |--renew |--renew-deadline |--command-timeout |--quiet|--version|"
                    "snaketron:leader:|read-only replica|--help");
    proc_free(p);
}

/* ------------------------------------------- permanent errors (issue 9) */

/* campaign_args() against url instead of the test's Redis. */
static void perm_server_args(const char *args[20], const char *url, const char *key)
{
    campaign_args(args, key, "perm");
    args[1] = url;
}

/*
 * Issue 9's table: the server exits with the table's status within 10 s
 * (it used to retry for ever), having logged exactly one ERROR line, which
 * names the cause.
 */
static void test_permanent_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < PERM_CASES; i++) {
        char key[64];
        snprintf(key, sizeof key, "test_server:perm:%zu", i);
        const char *args[20];
        perm_server_args(args, perm_prepare(fx.srv, i, key), key);
        fprintf(stderr, "case %zu: %s\n", i, perm_cases[i].name);
        proc *p = proc_start("server", NULL, args);
        expect_exit(p, perm_cases[i].exit_code, 10000);
        expect_one_error(p, perm_cases[i].needle);
        proc_free(p);
        perm_done();
    }
}

/* A leader whose ACL loses EVALSHA mid-term stops its service and exits
 * 69 with one ERROR line naming the missing right. */
static void test_permanent_error_while_leader(void **state)
{
    (void)state;
    redisReply *r = redis_server_cmd(fx.srv, "ACL SETUSER lh-server reset on >pw ~* &* +@all");
    assert_non_null(r);
    freeReplyObject(r);
    char url[128];
    snprintf(url, sizeof url, "redis://lh-server:pw@127.0.0.1:%d", fx.srv->port);
    const char *args[20];
    perm_server_args(args, url, "test_server:perm:leader");
    proc *p = proc_start("server", NULL, args);
    expect_output(p, LEADER_LINE, 10000);
    r = redis_server_cmd(fx.srv, "ACL SETUSER lh-server -evalsha");
    assert_non_null(r);
    freeReplyObject(r);
    expect_exit(p, 69, 10000);
    expect_one_error(p, "may not run 'evalsha'");
    assert_non_null(strstr(p->out, "no longer the leader (halted)"));
    assert_non_null(strstr(p->out, "leader service stopped"));
    proc_free(p);
}

/* A key held, with a TTL, by a value that is not a leasehold token (the
 * original module's, or another program's): the server says so once,
 * waits, and leads once the key expires. */
static void test_foreign_holder(void **state)
{
    (void)state;
    const char *key = "test_server:perm:foreign";
    redisReply *r = redis_server_cmd(fx.srv, "SET %s %s PX 60000", key, "original-module");
    assert_non_null(r);
    freeReplyObject(r);
    const char *args[20];
    campaign_args(args, key, "foreign");
    proc *p = proc_start("server", NULL, args);
    const char *warn = "holds 'original-module', which is not a leasehold token";
    expect_output(p, warn, 5000);
    r = redis_server_cmd(fx.srv, "PEXPIRE %s 300", key); /* its lease runs out */
    assert_non_null(r);
    freeReplyObject(r);
    expect_output(p, LEADER_LINE, 10000);
    if (strstr(strstr(p->out, warn) + 1, warn) || strstr(p->out, " ERROR ")) {
        proc_show(p, "server");
        fail_msg("expected one warning about the foreign holder and no ERROR");
    }
    test_process_signal(p->pid, SIGTERM);
    expect_exit(p, 0, 5000);
    proc_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_help, proc_free_all),
        cmocka_unit_test_teardown(test_bad_options, proc_free_all),
        cmocka_unit_test_teardown(test_control_characters_in_key, proc_free_all),
        cmocka_unit_test_teardown(test_version, proc_free_all),
        cmocka_unit_test_teardown(test_durations, proc_free_all),
        cmocka_unit_test_teardown(test_election_disabled, proc_free_all),
        cmocka_unit_test_teardown(test_unreachable_redis, proc_free_all),
        cmocka_unit_test_teardown(test_three_servers_failover, proc_free_all),
        cmocka_unit_test_teardown(test_region_from_environment, proc_free_all),
        cmocka_unit_test_teardown(test_permanent_errors, proc_free_all),
        cmocka_unit_test_teardown(test_permanent_error_while_leader, proc_free_all),
        cmocka_unit_test_teardown(test_foreign_holder, proc_free_all),
    };
    return cmocka_run_group_tests(tests, fixture_group_setup, fixture_group_teardown);
}
