/*
 * test_cron.c — the README's recipes for `leasehold run`, exercised as they
 * are written there: the cron line (read from README.md, run by /bin/sh as
 * cron runs it, on three "machines" at once) and the systemd unit (read
 * from README.md, checked by systemd-analyze verify).
 *
 * The cron line runs `leasehold` from PATH (the build directory first) and
 * SNAKETRON_REDIS_URL from the environment, as the crontab sets it; only
 * the job's path and the length of the hold are replaced, so that the test
 * runs its own job and need not wait ten minutes for the hold to end.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <leasehold.h>

#include "readme.h"
#include "fixture.h"
#include "testutil.h"

#define MACHINES 3
/* The recipe's 10m, shortened: long enough (scaled for the sanitizer
 * builds) that the late starter surely meets it; its end is then brought
 * forward with PEXPIRE rather than waited out. */
#define HOLD_MS 20000

extern char **environ;

/* name's path in this test's temporary directory, into out (512 bytes). */
static char *tmp_path(char out[512], const char *name)
{
    snprintf(out, 512, "%s", fixture_path(name));
    return out;
}

/* Replaces the one occurrence of `from` in s (of size bytes) with `to`. */
static void replace_once(char *s, size_t size, const char *from, const char *to)
{
    char *at = strstr(s, from);
    if (!at)
        fail_msg("'%s' not found in '%s'", from, s);
    assert_null(strstr(at + 1, from));
    char rest[2048];
    snprintf(rest, sizeof rest, "%s", at + strlen(from));
    size_t head = (size_t)(at - s);
    assert_true(head + strlen(to) + strlen(rest) < size);
    snprintf(at, size - head, "%s%s", to, rest);
}

/* The README's crontab line, its five time fields removed: the command
 * cron hands to /bin/sh, with the job and the hold replaced. */
static void cron_command(const char *job, char *out, size_t size)
{
    char block[4096];
    readme_block("cron", "leasehold run", block, sizeof block);
    char *line = strstr(block, "leasehold run");
    char *end = strchr(line, '\n');
    if (end)
        *end = '\0';
    /* The line starts with five fields: the command is what follows. */
    char *start = line;
    while (start > block && start[-1] != '\n')
        start--;
    int fields = 0;
    for (char *c = start; c < line; c++)
        fields += c[0] != ' ' && (c == start || c[-1] == ' ');
    assert_int_equal(fields, 5);
    snprintf(out, size, "%s", line);
    replace_once(out, size, "/usr/local/bin/nightly-report", job);
    char hold[64];
    snprintf(hold, sizeof hold, "--hold-after-exit %llums", (unsigned long long)test_ms(HOLD_MS));
    replace_once(out, size, "--hold-after-exit 10m", hold);
}

/* The environment cron gives the line: ours, with PATH starting at the
 * build directory and SNAKETRON_REDIS_URL as the crontab sets it. */
static char **cron_env(void)
{
    static char path[4096], url[700];
    static char *env[256];
    size_t n = 0;
    const char *build = getenv("LEASEHOLD_BUILD_DIR");
    const char *old_path = getenv("PATH");
    snprintf(path, sizeof path, "PATH=%s:%s", build ? build : ".", old_path ? old_path : "/bin");
    snprintf(url, sizeof url, "SNAKETRON_REDIS_URL=%s", fx.srv->url);
    for (char **e = environ; *e && n < 250; e++)
        if (strncmp(*e, "PATH=", 5) != 0 && strncmp(*e, "SNAKETRON_", 10) != 0)
            env[n++] = *e;
    env[n++] = path;
    env[n++] = url;
    env[n] = NULL;
    return env;
}

/* One run of `sh -c command`, its stdout and stderr into a file. */
typedef struct run {
    pid_t pid;
    char out_path[512];
    int status; /* the shell's exit status, once reaped */
} run;

static void run_start(run *r, const char *command, const char *name)
{
    tmp_path(r->out_path, name);
    int fd = open(r->out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    char *argv[] = {"/bin/sh", "-c", (char *)command, NULL};
    r->pid = test_process_spawn_env(argv, cron_env(), -1, fd, fd);
    close(fd);
    assert_true(r->pid > 0);
}

/* Waits up to test_ms(max_ms) for r to exit; its exit status. */
static int run_wait(run *r, uint64_t max_ms)
{
    int status;
    if (!test_process_wait(r->pid, test_ms(max_ms), &status))
        fail_msg("sh -c (pid %d) still runs after %llu ms", (int)r->pid,
                 (unsigned long long)test_ms(max_ms));
    assert_true(WIFEXITED(status));
    r->status = WEXITSTATUS(status);
    return r->status;
}

/* What r printed (stdout and stderr), into out. */
static void run_output(const run *r, char *out, size_t size)
{
    out[0] = '\0';
    FILE *f = fopen(r->out_path, "r");
    assert_non_null(f);
    size_t n = fread(out, 1, size - 1, f);
    out[n] = '\0';
    fclose(f);
}

static void expect_silent(const run *r, const char *what)
{
    char out[8192];
    run_output(r, out, sizeof out);
    if (out[0])
        fail_msg("%s printed (cron would mail it):\n%s", what, out);
}

/* Lines in the file at path (0 if it does not exist). */
static int line_count(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    int n = 0, c;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

static bool key_exists(const char *key)
{
    redisReply *r = redis_server_cmd(fx.srv, "EXISTS %s", key);
    assert_non_null(r);
    bool exists = r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    freeReplyObject(r);
    return exists;
}

static int64_t key_pttl(const char *key)
{
    redisReply *r = redis_server_cmd(fx.srv, "PTTL %s", key);
    assert_non_null(r);
    int64_t pttl = r->type == REDIS_REPLY_INTEGER ? r->integer : -3;
    freeReplyObject(r);
    return pttl;
}

/* ------------------------------------------------------------------ tests */

/*
 * The cron recipe on three machines at once: the job runs exactly once,
 * every line exits 0 (the losers' 75 is taken as success), nobody prints
 * anything (-q); the winner's key stays held for the hold, with no release;
 * a late starter gives up with 75 and prints nothing while the hold lasts;
 * after the hold a new schedule runs the job again.
 */
static void test_cron_recipe(void **state)
{
    (void)state;
    char runs_path[512], job[512];
    tmp_path(runs_path, "job.runs");
    tmp_path(job, "nightly-report");
    FILE *f = fopen(job, "w");
    assert_non_null(f);
    fprintf(f, "#!/bin/sh\necho \"$LEASEHOLD_EPOCH\" >> '%s'\nsleep 1\n", runs_path);
    fclose(f);
    assert_int_equal(chmod(job, 0755), 0);
    char command[2048];
    cron_command(job, command, sizeof command);

    run machines[MACHINES];
    for (int i = 0; i < MACHINES; i++) {
        char name[32];
        snprintf(name, sizeof name, "machine%d.out", i);
        run_start(&machines[i], command, name);
    }
    /* The restart guard and the new key's quarantine hold the first claim
     * for a lease each: well within --try-once's wait. */
    for (int i = 0; i < MACHINES; i++) {
        if (run_wait(&machines[i], 30000) != 0) {
            char out[8192];
            run_output(&machines[i], out, sizeof out);
            fail_msg("machine %d: the cron line exited %d:\n%s", i, machines[i].status, out);
        }
        expect_silent(&machines[i], "a machine's cron line");
    }
    assert_int_equal(line_count(runs_path), 1);
    /* Held, not released, for about the hold (never more). */
    int64_t pttl = key_pttl("cron:nightly-report");
    if (pttl <= 0 || (uint64_t)pttl > test_ms(HOLD_MS))
        fail_msg("after the job the key's PTTL is %lld, not within the %llu ms hold",
                 (long long)pttl, (unsigned long long)test_ms(HOLD_MS));

    /* A late starter, without the `|| [ $? -eq 75 ]`: 75, silent. */
    char bare[2048];
    snprintf(bare, sizeof bare, "%s", command);
    char *tail = strstr(bare, " || ");
    assert_non_null(tail);
    *tail = '\0';
    run late;
    run_start(&late, bare, "late.out");
    assert_int_equal(run_wait(&late, 10000), 75);
    expect_silent(&late, "the late starter");
    assert_int_equal(line_count(runs_path), 1);

    /* The hold runs out (brought forward to 200 ms from now: its TTL was
     * checked above); the next schedule runs the job. */
    freeReplyObject(redis_server_cmd(fx.srv, "PEXPIRE %s 200", "cron:nightly-report"));
    uint64_t deadline = test_now_ms() + test_ms(3000);
    while (key_exists("cron:nightly-report") && test_now_ms() < deadline)
        test_sleep_ms(50); /* polling Redis for the key's expiry, with a deadline */
    assert_false(key_exists("cron:nightly-report"));
    run next;
    run_start(&next, bare, "next.out");
    assert_int_equal(run_wait(&next, 15000), 0);
    expect_silent(&next, "the next schedule");
    assert_int_equal(line_count(runs_path), 2);
}

static bool is_leader(void *arg)
{
    return leasehold_is_leader(arg);
}

static int idle_service(leasehold_token *t, void *arg)
{
    (void)arg;
    while (leasehold_token_sleep(t, 100)) {
    }
    return 0;
}

static void get_key(const char *key, char *out, size_t size)
{
    redisReply *r = redis_server_cmd(fx.srv, "GET %s", key);
    assert_non_null(r);
    snprintf(out, size, "%s", r->type == REDIS_REPLY_STRING ? r->str : "");
    freeReplyObject(r);
}

/*
 * leasehold_resign_hold(), under --hold-after-exit: the key keeps the
 * term's token with the hold's TTL, the process is no longer leader, and
 * nothing releases the key afterwards, not even leasehold_client_free().
 * A key taken by another before the hold is left alone: ENOTLEADER.  Not
 * for a service's election, and not for 0 ms: EINVAL.
 */
static void test_resign_hold(void **state)
{
    (void)state;
    leasehold_config cfg;
    test_config(&cfg, fx.srv->url);
    leasehold_error err;
    leasehold_client *c = leasehold_client_new(&cfg, &err);
    assert_non_null(c);
    leasehold_election *e = leasehold_campaign(c, "lib:hold", NULL, NULL, &err);
    leasehold_election *taken = leasehold_campaign(c, "lib:taken", NULL, NULL, &err);
    leasehold_election *svc = leasehold_serve(c, "lib:svc", idle_service, NULL, &err);
    assert_non_null(e);
    assert_non_null(taken);
    assert_non_null(svc);
    assert_true(wait_until(is_leader, e, TEST_FRESH_REDIS_MS + 3000));
    assert_true(wait_until(is_leader, taken, 3000));
    assert_true(wait_until(is_leader, svc, 3000));

    assert_int_equal(leasehold_resign_hold(e, 0, &err), LEASEHOLD_EINVAL);
    assert_int_equal(leasehold_resign_hold(svc, 5000, &err), LEASEHOLD_EINVAL);
    assert_true(leasehold_is_leader(e));

    char token[256], now[256];
    snprintf(token, sizeof token, "%s", leasehold_election_token(e));
    assert_int_equal(leasehold_resign_hold(e, 5000, &err), 0);
    assert_false(leasehold_is_leader(e));
    assert_int_equal(leasehold_epoch(e), 0);
    get_key("lib:hold", now, sizeof now);
    assert_string_equal(now, token);
    int64_t pttl = key_pttl("lib:hold");
    if (pttl <= cfg.lease_ms || pttl > 5000)
        fail_msg("after a 5000 ms hold the key's PTTL is %lld", (long long)pttl);
    /* A second hold finds no term; freeing the election releases nothing. */
    assert_int_equal(leasehold_resign_hold(e, 5000, &err), LEASEHOLD_ENOTLEADER);
    leasehold_election_free(e);
    get_key("lib:hold", now, sizeof now);
    assert_string_equal(now, token);

    redisReply *r = redis_server_cmd(fx.srv, "SET lib:taken other/1 PX 60000");
    assert_non_null(r);
    freeReplyObject(r);
    int rc = leasehold_resign_hold(taken, 5000, &err);
    if (rc != LEASEHOLD_ENOTLEADER)
        fail_msg("a hold of a taken key returned %s: %s", leasehold_errname(rc), err.msg);
    get_key("lib:taken", now, sizeof now);
    assert_string_equal(now, "other/1");
    assert_true(key_pttl("lib:taken") > 50000);

    leasehold_client_free(c); /* frees `taken`, held or not */
    get_key("lib:hold", now, sizeof now);
    assert_string_equal(now, token);
}

/* Runs systemd-analyze verify on unit_path; its exit status, with what it
 * printed in out. */
static int analyze(const char *unit_path, char *out, size_t size)
{
    run r;
    char command[1024];
    snprintf(command, sizeof command, "systemd-analyze verify '%s'", unit_path);
    run_start(&r, command, "analyze.out");
    int code = run_wait(&r, 30000);
    run_output(&r, out, size);
    return code;
}

/*
 * The README's systemd unit, as written but for the two programs' paths
 * (this build's leasehold, and /bin/sleep for the scheduler, since verify
 * checks that ExecStart's program exists): systemd-analyze verify accepts
 * it without a word.  The same unit with a bad setting is refused with a
 * word, so the check can fail.
 */
static void test_systemd_unit(void **state)
{
    (void)state;
    if (system("command -v systemd-analyze >/dev/null 2>&1") != 0) {
        print_message("systemd-analyze is not installed: the unit is not verified\n");
        skip();
    }
    char unit[4096];
    readme_block("ini", "ExecStart=/usr/local/bin/leasehold run", unit, sizeof unit);
    char leasehold[600];
    const char *build = getenv("LEASEHOLD_BUILD_DIR");
    snprintf(leasehold, sizeof leasehold, "%s/leasehold", build ? build : ".");
    replace_once(unit, sizeof unit, "/usr/local/bin/leasehold", leasehold);
    replace_once(unit, sizeof unit, "/usr/local/bin/scheduler", "/bin/sleep");
    assert_non_null(strstr(unit, "SuccessExitStatus=143"));

    char path[512], bad[512];
    tmp_path(path, "scheduler.service");
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(unit, f);
    fclose(f);
    char out[4096];
    int code = analyze(path, out, sizeof out);
    if (code != 0 || out[0])
        fail_msg("systemd-analyze verify exited %d on the README's unit:\n%s\n%s", code, out, unit);

    replace_once(unit, sizeof unit, "KillMode=mixed", "KillMode=mixd");
    tmp_path(bad, "broken.service");
    f = fopen(bad, "w");
    assert_non_null(f);
    fputs(unit, f);
    fclose(f);
    analyze(bad, out, sizeof out);
    if (!strstr(out, "mixd"))
        fail_msg("systemd-analyze verify did not object to KillMode=mixd:\n%s", out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        /* First, on a Redis up for less than a lease: the restart guard
         * holds every claim back, and --try-once must wait it out. */
        cmocka_unit_test(test_cron_recipe),
        cmocka_unit_test(test_resign_hold),
        cmocka_unit_test(test_systemd_unit),
    };
    return cmocka_run_group_tests(tests, fixture_group_setup_tmpdir, fixture_group_teardown);
}
