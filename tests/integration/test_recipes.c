/*
 * test_recipes.c — the README's recipes, run as written.
 *
 * Each test takes the recipe's code block from README.md (readme.h) and
 * runs it (the cron and systemd recipes are test_cron.c's) against a
 * redis-server of this test's own, with only what the recipe leaves to the user filled in (the
 * URL, the program it calls).  A recipe edited into something that no
 * longer works fails here.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "readme.h"
#include "fixture.h"
#include "testutil.h"
#include "tool_proc.h"

/* Writes text to path with mode. */
static void write_file(const char *path, const char *text, mode_t mode)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(chmod(path, mode), 0);
}

/* Waits up to test_ms(max_ms) for key to hold something; fails otherwise. */
static void wait_key_set(const char *key, uint64_t max_ms)
{
    uint64_t deadline = test_now_ms() + test_ms(max_ms);
    char value[256];
    for (fixture_redis_get(key, value, sizeof value); !value[0];
         fixture_redis_get(key, value, sizeof value)) {
        if (test_now_ms() >= deadline) {
            procs_show_all("a process");
            fail_msg("%s was not written within %llu ms", key, (unsigned long long)test_ms(max_ms));
        }
        test_sleep_ms(20); /* pacing the polls of a key the recipe writes */
    }
}

/*
 * "Recipe: LEASEHOLD_EPOCH as a fencing token": publish-prices under
 * leasehold writes with its term's epoch; the same script run with an older
 * epoch is refused by the store and stops, leaving the store as it was.
 */
static void test_fencing_recipe(void **state)
{
    (void)state;
    char script[8192];
    readme_block("sh", "# publish-prices: run as", script, sizeof script);
    write_file(fixture_path("publish-prices"), script, 0755);
    write_file(fixture_path("fetch-prices"), "#!/bin/sh\necho 'EUR/USD 1.0842'\n", 0755);

    char path_env[1200], store_env[700];
    snprintf(path_env, sizeof path_env, "PATH=%s:%s", fx.tmpdir, getenv("PATH"));
    snprintf(store_env, sizeof store_env, "PRICES_REDIS_URL=%s", fx.srv->url);
    const char *env[] = {path_env, store_env, NULL};
    const char *args[] = {"run", "--url",          fx.srv->url, "--key", "prices:publisher",
                          "--",  "publish-prices", NULL};
    proc *leader = proc_start("leasehold", env, args);
    wait_key_set("prices:fence", TEST_FRESH_REDIS_MS + 5000);

    char fence[64], latest[256];
    fixture_redis_get("prices:fence", fence, sizeof fence);
    fixture_redis_get("prices:latest", latest, sizeof latest);
    assert_string_equal(latest, "EUR/USD 1.0842");
    unsigned long long epoch = strtoull(fence, NULL, 10);
    assert_true(epoch > 0);
    char epoch_text[64];
    snprintf(epoch_text, sizeof epoch_text, "epoch=%llu", epoch);
    expect_output(leader, epoch_text, 3000); /* the fence is this term's epoch */

    test_process_signal(leader->pid, SIGTERM);
    int code = proc_exit_code(leader, 5000);
    assert_true(code == 0 || code == 128 + SIGTERM);
    proc_free(leader);

    /* A leader of an older term, paused until now, wakes up and writes. */
    freeReplyObject(redis_server_cmd(fx.srv, "SET prices:latest %s", "newer term's prices"));
    char stale_env[64];
    snprintf(stale_env, sizeof stale_env, "LEASEHOLD_EPOCH=%llu", epoch - 1);
    const char *stale_envs[] = {path_env, store_env, stale_env, NULL};
    const char *no_args[] = {NULL};
    proc *stale = proc_start(fixture_path("publish-prices"), stale_envs, no_args);
    assert_int_equal(proc_exit_code(stale, 5000), 1);
    if (!strstr(stale->out, "is stale: a newer leader wrote; stopping")) {
        proc_show(stale, "publish-prices with a stale epoch");
        fail_msg("no stale-epoch message");
    }
    proc_free(stale);
    fixture_redis_get("prices:latest", latest, sizeof latest);
    assert_string_equal(latest, "newer term's prices");
    fixture_redis_get("prices:fence", fence, sizeof fence);
    assert_int_equal(strtoull(fence, NULL, 10), epoch);

    /* Outside leasehold it refuses to run at all. */
    const char *bare_envs[] = {path_env, store_env, NULL};
    proc *bare = proc_start(fixture_path("publish-prices"), bare_envs, no_args);
    assert_int_not_equal(proc_exit_code(bare, 5000), 0);
    assert_non_null(strstr(bare->out, "run me under leasehold"));
    proc_free(bare);
}

/*
 * "Embedding": the README's code is examples/minimal.c, byte for byte, and
 * the program reports trouble after start through its error callback: a
 * key of the wrong type is named, with its code, then Enter ends it.
 */
static void test_embedding_example(void **state)
{
    (void)state;
    char shown[8192];
    readme_block("c", "static int work(leasehold_token *t", shown, sizeof shown);
    char *source = source_file("examples/minimal.c");
    assert_string_equal(shown, source);
    free(source);

    freeReplyObject(redis_server_cmd(fx.srv, "HSET myapp:leader %s %s", "owner", "billing"));
    const char *fifo = fixture_path("minimal.stdin");
    assert_int_equal(mkfifo(fifo, 0600), 0);
    int enter = open(fifo, O_RDWR | O_CLOEXEC); /* a writer, so minimal's open does not wait */
    assert_true(enter >= 0);
    char command[1200];
    snprintf(command, sizeof command, "exec %s/examples/minimal '%s' < '%s'",
             getenv("LEASEHOLD_BUILD_DIR"), fx.srv->url, fifo);
    const char *args[] = {"-c", command, NULL};
    proc *p = proc_start("/bin/sh", NULL, args);
    expect_output(p, "leasehold: LEASEHOLD_EWRONGTYPE: ", TEST_FRESH_REDIS_MS + 5000);
    expect_output(p, "(campaign halted)\n", 1000);
    assert_int_equal(write(enter, "\n", 1), 1);
    expect_exit(p, 0, 5000);
    proc_free(p);
    close(enter);
    freeReplyObject(redis_server_cmd(fx.srv, "DEL myapp:leader"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_fencing_recipe, proc_free_all),
        cmocka_unit_test_teardown(test_embedding_example, proc_free_all),
    };
    return cmocka_run_group_tests(tests, fixture_group_setup_tmpdir, fixture_group_teardown);
}
