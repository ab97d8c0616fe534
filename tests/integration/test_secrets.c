/* test_secrets.c — the password off the command line: `leasehold` and
 * `server` against a redis-server with a password, the password from
 * --password-file, SNAKETRON_REDIS_PASSWORD or a URL in --url-file; a wrong
 * one refused with exit 69; one given twice refused with exit 64; a file
 * others can read warned about; CMD of `leasehold run` not handed the
 * variable; and the secret in no line either program prints. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "fixture.h"
#include "testutil.h"
#include "tool_proc.h"

#define SECRET "s3cr3t-Pa55"
#define WRONG  "wr0ng-Pa55"

static char plain_url[128];  /* the server's URL without the password */
static char pass_file[400];  /* SECRET, mode 0600 */
static char wrong_file[400]; /* WRONG, mode 0600 */
static char open_file[400];  /* SECRET, mode 0644 */
static char url_file[400];   /* the URL with SECRET in it, mode 0600 */

static void write_secret(const char *path, const char *text, mode_t mode)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "%s\n", text);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(path, mode), 0);
}

static int group_setup(void **state)
{
    (void)state;
    const char *tmp = getenv("TMPDIR");
    snprintf(fx.tmpdir, sizeof fx.tmpdir, "%s/leasehold-test_secrets-XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(fx.tmpdir))
        return -1;
    redis_server_opts o = {.password = SECRET};
    fx.srv = redis_server_start(&o);
    if (!fx.srv)
        return -1;
    snprintf(plain_url, sizeof plain_url, "redis://127.0.0.1:%d", fx.srv->port);
    snprintf(pass_file, sizeof pass_file, "%s/password", fx.tmpdir);
    snprintf(wrong_file, sizeof wrong_file, "%s/wrong", fx.tmpdir);
    snprintf(open_file, sizeof open_file, "%s/open", fx.tmpdir);
    snprintf(url_file, sizeof url_file, "%s/url", fx.tmpdir);
    write_secret(pass_file, SECRET, 0600);
    write_secret(wrong_file, WRONG, 0600);
    write_secret(open_file, SECRET, 0644);
    write_secret(url_file, fx.srv->url, 0600);
    return 0;
}

/* Fails unless p printed neither password. */
static void expect_no_secret(const proc *p)
{
    if (strstr(p->out, SECRET) || strstr(p->out, WRONG))
        fail_msg("a password was printed:\n%s", p->out);
}

/* `leasehold status` with env and the arguments after --url URL --key K;
 * returns it after it exited with `code`. */
static proc *status(const char *const env[], const char *url, const char *extra1,
                    const char *extra2, int code)
{
    const char *args[] = {"status", "--key", "lh:secrets", "--url", url, extra1, extra2, NULL};
    if (!url)
        args[3] = extra1, args[4] = extra2, args[5] = NULL;
    proc *p = proc_start("leasehold", env, args);
    expect_exit(p, code, 10000);
    expect_no_secret(p);
    return p;
}

static void test_password_file(void **state)
{
    (void)state;
    proc *p = status(NULL, plain_url, "--password-file", pass_file, 3);
    assert_non_null(strstr(p->out, "no leader"));
    assert_null(strstr(p->out, "warning"));
    proc_free(p);
}

static void test_password_from_environment(void **state)
{
    (void)state;
    const char *env[] = {"SNAKETRON_REDIS_PASSWORD=" SECRET, NULL};
    proc *p = status(env, plain_url, NULL, NULL, 3);
    assert_non_null(strstr(p->out, "no leader"));
    proc_free(p);
    /* --password-file beats the environment */
    const char *wrong_env[] = {"SNAKETRON_REDIS_PASSWORD=" WRONG, NULL};
    p = status(wrong_env, plain_url, "--password-file", pass_file, 3);
    proc_free(p);
}

static void test_url_file(void **state)
{
    (void)state;
    proc *p = status(NULL, NULL, "--url-file", url_file, 3);
    assert_non_null(strstr(p->out, "no leader"));
    proc_free(p);
}

static void test_wrong_password(void **state)
{
    (void)state;
    proc *p = status(NULL, plain_url, "--password-file", wrong_file, 69);
    expect_mentions(p, "a wrong password", "authentication refused");
    proc_free(p);
}

static void test_password_given_twice(void **state)
{
    (void)state;
    proc *p = status(NULL, fx.srv->url, "--password-file", pass_file, 64);
    expect_mentions(p, "a password in the URL and a file", "holds a password|keep one");
    proc_free(p);
}

static void test_readable_file_warned(void **state)
{
    (void)state;
    proc *p = status(NULL, plain_url, "--password-file", open_file, 3);
    expect_mentions(p, "a password file others can read",
                    "can be read by group or others|chmod 600");
    proc_free(p);
}

/* CMD runs without SNAKETRON_REDIS_PASSWORD in its environment. */
static void test_cmd_not_given_the_password(void **state)
{
    (void)state;
    const char *env[] = {"SNAKETRON_REDIS_PASSWORD=" SECRET, NULL};
    const char *args[] = {"run",
                          "--url",
                          plain_url,
                          "--key",
                          "lh:secrets:run",
                          "--",
                          "sh",
                          "-c",
                          "echo \"cmd sees: ${SNAKETRON_REDIS_PASSWORD-nothing}\"",
                          NULL};
    proc *p = proc_start("leasehold", env, args);
    expect_exit(p, 0, 15000);
    expect_mentions(p, "CMD's environment", "cmd sees: nothing");
    expect_no_secret(p);
    proc_free(p);
}

/* The host process takes the password from the environment or a file. */
static void test_server(void **state)
{
    (void)state;
    const char *env[] = {"SNAKETRON_REDIS_PASSWORD=" SECRET, NULL};
    const char *args[] = {"--url", plain_url, "--region", "secrets", NULL};
    proc *p = proc_start("server", env, args);
    expect_output(p, "This server is now the leader!", 10000);
    test_process_signal(p->pid, SIGTERM);
    expect_exit(p, 0, 10000);
    expect_no_secret(p);
    proc_free(p);
    const char *file_args[] = {"--url",           plain_url, "--region", "secrets",
                               "--password-file", pass_file, NULL};
    p = proc_start("server", NULL, file_args);
    expect_output(p, "This server is now the leader!", 10000);
    test_process_signal(p->pid, SIGTERM);
    expect_exit(p, 0, 10000);
    expect_no_secret(p);
    proc_free(p);
}

int main(int argc, char **argv)
{
    fixture_run_child(argc, argv);
    const struct CMUnitTest tests[] = {
        FIXTURE_TEST(test_password_file),
        FIXTURE_TEST(test_password_from_environment),
        FIXTURE_TEST(test_url_file),
        FIXTURE_TEST(test_wrong_password),
        FIXTURE_TEST(test_password_given_twice),
        FIXTURE_TEST(test_readable_file_warned),
        FIXTURE_TEST(test_cmd_not_given_the_password),
        FIXTURE_TEST(test_server),
    };
    return cmocka_run_group_tests(tests, group_setup, fixture_group_teardown);
}
