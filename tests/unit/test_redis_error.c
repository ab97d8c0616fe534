/*
 * test_redis_error — which Redis error replies halt an election and what the
 * user is told: the code (permanent or transient), a message that names the
 * cause and the fix, never a script's SHA1 or an unknown command's
 * arguments; and what counts as a leasehold token.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "redis_error.h"

static const char SHA[] = "d3c21d0c2b9ca22f82737626a27bcaf5d288f99f";

static const redis_error_ctx ctx = {.key = "app:leader",
                                    .epoch_key = "{app:leader}:epoch",
                                    .side_keys = "~{app:leader}:epoch ~{app:leader}:quarantine",
                                    .channel = "{app:leader}:events",
                                    .user = "bob",
                                    .address = "redis://127.0.0.1:6380",
                                    .retried = true};

/* Explains text; checks the code, that its permanence is as expected, that
 * every `want` is in the message and no SHA1 is. */
static void expect(const char *text, int code, bool permanent, const char *want1, const char *want2)
{
    char why[256];
    int got = redis_error_explain(text, &ctx, why, sizeof why);
    printf("# %-22s %s\n", leasehold_errname(got), why);
    assert_int_equal(got, code);
    assert_int_equal(redis_error_code(text), code);
    assert_int_equal(leasehold_error_is_permanent(got), permanent);
    if (want1)
        assert_non_null(strstr(why, want1));
    if (want2)
        assert_non_null(strstr(why, want2));
    assert_null(strstr(why, SHA));
    assert_null(strstr(why, "user_script"));
}

static void test_classified(void **state)
{
    (void)state;
    char text[300];
    /* NOPERM at the top level (the command itself), and inside a script
     * (Redis 7.0's words), for a command, a key and the channel */
    expect("NOPERM this user has no permissions to run the 'evalsha' command", LEASEHOLD_ENOPERM,
           true, "ACL user 'bob'", "+evalsha +eval");
    expect("NOPERM User bob has no permissions to run the 'evalsha' command", LEASEHOLD_ENOPERM,
           true, "'evalsha'", "ACL SETUSER bob");
    /* ...and as leasehold's scripts name a command Redis refused inside them */
    snprintf(text, sizeof text,
             "NOPERM this user has no permissions to run the 'pexpire' command (in a leasehold "
             "script) script: %s, on @user_script:9.",
             SHA);
    expect(text, LEASEHOLD_ENOPERM, true, "ACL user 'bob' may not run 'pexpire'",
           "grant it with ACL SETUSER bob +pexpire");
    snprintf(text, sizeof text,
             "ERR The user executing the script can't run this command or subcommand script: "
             "%s, on @user_script:1.",
             SHA);
    expect(text, LEASEHOLD_ENOPERM, true, "may not run a command the leasehold scripts call",
           "+pexpire");
    snprintf(text, sizeof text,
             "ERR The user executing the script can't access at least one of the keys mentioned "
             "in the command arguments script: %s, on @user_script:4.",
             SHA);
    expect(text, LEASEHOLD_ENOPERM, true, "~app:leader ~{app:leader}:epoch",
           "may not access the key");
    snprintf(text, sizeof text,
             "ERR The user executing the script can't publish to the channel mentioned in the "
             "command script: %s, on @user_script:9.",
             SHA);
    expect(text, LEASEHOLD_ENOPERM, true, "&{app:leader}:events", "events channel");
    /* renamed or disabled scripting: the SHA in the arguments is not shown */
    snprintf(text, sizeof text,
             "ERR unknown command 'evalsha', with args beginning with: '%s' '1' 'app:leader' ",
             SHA);
    expect(text, LEASEHOLD_ENOSCRIPT, true, "'evalsha'", "rename-command");
    expect("ERR unknown command 'EVAL', with args beginning with: 'return 1' ", LEASEHOLD_ENOSCRIPT,
           true, "'EVAL'", "EVALSHA and EVAL");
    expect("NOSCRIPT No matching script. Please use EVAL.", LEASEHOLD_ENOSCRIPT, true,
           "will not run the leasehold scripts", NULL);
    /* the key, the replica, the password */
    snprintf(text, sizeof text,
             "WRONGTYPE Operation against a key holding the wrong kind of value script: %s, on "
             "@user_script:1.",
             SHA);
    snprintf(text, sizeof text,
             "WRONGTYPE {app:leader}:epoch holds a hash script: %s, on @user_script:8.", SHA);
    expect(text, LEASEHOLD_EWRONGTYPE, true,
           "'{app:leader}:epoch' holds a hash, not a lease string",
           "delete it, or pick another key");
    expect("WRONGTYPE my key holds a list holds a list", LEASEHOLD_EWRONGTYPE, true,
           "'my key holds a list' holds a list", NULL);
    expect("WRONGTYPE app:leader holds a ?", LEASEHOLD_EWRONGTYPE, true, "not a string", NULL);
    snprintf(text, sizeof text,
             "WRONGTYPE Operation against a key holding the wrong kind of value script: %s, on "
             "@user_script:1.",
             SHA);
    expect(text, LEASEHOLD_EWRONGTYPE, true,
           "{app:leader}:epoch) holds a value that is not a string",
           "delete it, or pick another key");
    snprintf(text, sizeof text,
             "READONLY You can't write against a read only replica. script: %s, on "
             "@user_script:1.",
             SHA);
    expect(text, LEASEHOLD_EREADONLY, true, "redis://127.0.0.1:6380 is a read-only replica",
           "point the URL at the master");
    expect("WRONGPASS invalid username-password pair or user is disabled.", LEASEHOLD_EAUTH, true,
           "authentication refused", NULL);
    /* transient: retried */
    snprintf(text, sizeof text,
             "OOM command not allowed when used memory > 'maxmemory'. script: %s, on "
             "@user_script:1.",
             SHA);
    expect(text, LEASEHOLD_EREDIS, false, "OOM command not allowed", "retrying");
    expect("LOADING Redis is loading the dataset in memory", LEASEHOLD_EREDIS, false, "LOADING",
           NULL);
    expect("BUSY Redis is busy running a script.", LEASEHOLD_EREDIS, false, "BUSY", NULL);
    expect("MASTERDOWN Link with MASTER is down", LEASEHOLD_EREDIS, false, "MASTERDOWN", NULL);
    expect("TRYAGAIN Multiple keys request during rehashing of slot", LEASEHOLD_EREDIS, false,
           "TRYAGAIN", NULL);
    expect("ERR unknown command 'hello'", LEASEHOLD_EREDIS, false, NULL, NULL);
    expect("WRONGTYPEX no", LEASEHOLD_EREDIS, false, NULL, NULL);
    assert_int_equal(redis_error_code(NULL), LEASEHOLD_EREDIS);
    /* a one-shot read (leasehold_holder_get) is not retried: no such claim */
    char why[256];
    redis_error_ctx once = ctx;
    once.retried = false;
    assert_int_equal(redis_error_explain("LOADING Redis is loading", &once, why, sizeof why),
                     LEASEHOLD_EREDIS);
    assert_string_equal(why, "LOADING Redis is loading");
}

/* The other codes: only those retrying cannot fix are permanent. */
static void test_permanent_list(void **state)
{
    (void)state;
    static const int permanent[] = {LEASEHOLD_EAUTH,      LEASEHOLD_ENOPERM,   LEASEHOLD_EDB,
                                    LEASEHOLD_EWRONGTYPE, LEASEHOLD_EREADONLY, LEASEHOLD_ENOSCRIPT,
                                    LEASEHOLD_ENOTLEASE,  LEASEHOLD_EURL,      LEASEHOLD_ECONFIG,
                                    LEASEHOLD_EINVAL};
    static const int transient[] = {0,
                                    LEASEHOLD_ETIMEDOUT,
                                    LEASEHOLD_ECONNREFUSED,
                                    LEASEHOLD_ECONNRESET,
                                    LEASEHOLD_EIO,
                                    LEASEHOLD_ERESOLVE,
                                    LEASEHOLD_EPROTO,
                                    LEASEHOLD_EREDIS,
                                    LEASEHOLD_EEVICTION,
                                    LEASEHOLD_ECLOCKJUMP,
                                    LEASEHOLD_EFOREIGN,
                                    LEASEHOLD_ENOMEM,
                                    -99999};
    for (size_t i = 0; i < sizeof permanent / sizeof permanent[0]; i++)
        assert_true(leasehold_error_is_permanent(permanent[i]));
    for (size_t i = 0; i < sizeof transient / sizeof transient[0]; i++)
        assert_false(leasehold_error_is_permanent(transient[i]));
    assert_string_equal(leasehold_errname(LEASEHOLD_ENOTLEASE), "LEASEHOLD_ENOTLEASE");
    assert_string_equal(leasehold_reason_name(LEASEHOLD_HALTED), "halted");
}

static void test_is_token(void **state)
{
    (void)state;
    char long_id[240];
    assert_true(leasehold_is_token("host:42/0123456789abcdef"));
    assert_true(leasehold_is_token("a/0000000000000000"));
    assert_true(leasehold_is_token("a/b/c/0123456789abcdef")); /* an identity may hold '/' */
    assert_false(leasehold_is_token(NULL));
    assert_false(leasehold_is_token(""));
    assert_false(leasehold_is_token("/0123456789abcdef"));       /* no identity */
    assert_false(leasehold_is_token("host/0123456789ABCDEF"));   /* uppercase */
    assert_false(leasehold_is_token("host/0123456789abcde"));    /* 15 digits */
    assert_false(leasehold_is_token("host/0123456789abcdef0"));  /* 17 digits */
    assert_false(leasehold_is_token("host/0123456789abcdeg"));   /* not hex */
    assert_false(leasehold_is_token("ho st/0123456789abcdef"));  /* space */
    assert_false(leasehold_is_token("ho\nst/0123456789abcdef")); /* control char */
    assert_false(leasehold_is_token("ho\x7fst/0123456789abcdef"));
    assert_false(leasehold_is_token("host0123456789abcdef")); /* no '/' */
    assert_false(leasehold_is_token("some value"));
    memset(long_id, 'x', 200);
    snprintf(long_id + 200, sizeof long_id - 200, "/0123456789abcdef");
    assert_true(leasehold_is_token(long_id)); /* a 200-byte identity */
    memset(long_id, 'x', 201);
    snprintf(long_id + 201, sizeof long_id - 201, "/0123456789abcdef");
    assert_false(leasehold_is_token(long_id));
}

static void test_quote(void **state)
{
    (void)state;
    char out[64];
    redis_error_quote("a\nb\tc'\\\x01\xff", 9, 40, out, sizeof out);
    assert_string_equal(out, "a\\nb\\tc\\'\\\\\\x01\\xff");
    redis_error_quote("0123456789", 10, 4, out, sizeof out);
    assert_string_equal(out, "0123...");
    redis_error_quote("0123456789012345678901234567890123456789", 40, 40, out, 16);
    assert_true(strlen(out) < 16);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classified),
        cmocka_unit_test(test_permanent_list),
        cmocka_unit_test(test_is_token),
        cmocka_unit_test(test_quote),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
