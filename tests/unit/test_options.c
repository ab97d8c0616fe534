/*
 * test_options.c — the option parser `leasehold` and `server` share
 * (tools/options.c), compiled in directly: every accepted and refused
 * duration form, the key and identity rules, the log options, derived
 * timings for every lease from the smallest accepted to the largest (each
 * configuration handed to the library, which must accept it), and the
 * messages word for word.
 */
#include "options.h"

#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

/* A fresh parser for program "prog" that keeps its messages to itself. */
static void fresh(opts *o)
{
    opts_init(o, "prog");
    o->silent = true;
}

/* The kill margin of `leasehold run` (tools/leasehold_options.c). */
static uint64_t run_margin(uint32_t lease_ms)
{
    uint64_t pct = lease_ms / 20u;
    return pct > 50u ? pct : 50u;
}

static void test_durations_accepted(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        uint64_t ms;
    } ok[] = {
        {"0ms", 0},
        {"1ms", 1},
        {"500ms", 500},
        {"2s", 2000},
        {"1.5s", 1500},
        {"1.500s", 1500},
        {"0.001s", 1},
        {"1m", 60000},
        {"1.5m", 90000},
        {"1h", 3600000},
        {"0.00001h", 36},
        {"0.5h", 1800000},
        {"007s", 7000},
        {"2.0ms", 2},
        {"1.0000000000s", 1000},
        {"4294967295ms", UINT32_MAX},
        {"1193h", 4294800000u},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        opts o;
        fresh(&o);
        uint64_t ms = 12345;
        if (opts_duration(&o, "--x", ok[i].text, UINT32_MAX, &ms) != 0)
            fail_msg("%s refused: %s", ok[i].text, o.err);
        assert_int_equal(ms, ok[i].ms);
    }
}

static void test_durations_refused(void **state)
{
    (void)state;
    static const struct {
        const char *text, *message;
    } bad[] = {
        {"0x10s", "prog: --x: '0x10s' is not a duration: digits, an optional fraction and a unit "
                  "(500ms, 2s, 1.5s, 1m, 1h)"},
        {"1e3ms", NULL},
        {"inf", NULL},
        {"nan", NULL},
        {"infs", NULL},
        {" 2s", NULL},
        {"2 s", NULL},
        {"2s ", NULL},
        {"+2s", NULL},
        {"-1s", NULL},
        {".5s", NULL},
        {"2.s", NULL},
        {"2..5s", NULL},
        {"", "prog: --x: '' is not a duration: digits, an optional fraction and a unit (500ms, "
             "2s, 1.5s, 1m, 1h)"},
        {"s", NULL},
        {"2x", NULL},
        {"2S", NULL},
        {"2sec", NULL},
        {"2\n", "prog: --x: '2\\x0a' is not a duration: digits, an optional fraction and a unit "
                "(500ms, 2s, 1.5s, 1m, 1h)"},
        {"2000", "prog: --x: '2000' needs a unit: ms, s, m or h (like 2000ms or 2000s)"},
        {"1.5", "prog: --x: '1.5' needs a unit: ms, s, m or h (like 1.5ms or 1.5s)"},
        {"1.0005s", "prog: --x: 1.0005s is not a whole number of milliseconds"},
        {"0.5ms", "prog: --x: 0.5ms is not a whole number of milliseconds"},
        {"0.0000001h", "prog: --x: 0.0000001h is not a whole number of milliseconds"},
        {"1.000000001s", "prog: --x: 1.000000001s is not a whole number of milliseconds"},
        {"4294967296ms", "prog: --x: 4294967296ms is too large (at most 4294967295ms)"},
        {"1194h", "prog: --x: 1194h is too large (at most 4294967295ms)"},
        {"9999999h", NULL},
        {"99999999999999999999999999s", NULL},
        {"4294967295.5ms", "prog: --x: 4294967295.5ms is not a whole number of milliseconds"},
        {"4294967.296s", "prog: --x: 4294967.296s is too large (at most 4294967295ms)"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        opts o;
        fresh(&o);
        uint64_t ms = 12345;
        if (opts_duration(&o, "--x", bad[i].text, UINT32_MAX, &ms) != OPTS_USAGE)
            fail_msg("'%s' accepted as %" PRIu64 "ms", bad[i].text, ms);
        assert_int_equal(ms, 12345);
        assert_non_null(strstr(o.err, "prog: --x: "));
        assert_null(strchr(o.err, '\n'));
        if (bad[i].message)
            assert_string_equal(o.err, bad[i].message);
    }
}

/* The -ms aliases: plain digits, and 0 refused as a timing. */
static void test_milliseconds(void **state)
{
    (void)state;
    opts o;
    fresh(&o);
    assert_int_equal(opts_apply(&o, OPTS_LEASE_MS, "2500"), 0);
    assert_int_equal(o.t.lease_ms, 2500);
    static const char *const bad[] = {"2s", " 5", "-1", "+1", "0x10", "1e3", "", "4294967296", "0"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fresh(&o);
        if (opts_apply(&o, OPTS_LEASE_MS, bad[i]) != OPTS_USAGE)
            fail_msg("--lease-ms '%s' accepted", bad[i]);
        assert_non_null(strstr(o.err, "prog: --lease-ms: "));
    }
    fresh(&o);
    opts_apply(&o, OPTS_LEASE_MS, "0");
    assert_string_equal(o.err, "prog: --lease-ms: must be more than 0");
    fresh(&o);
    opts_apply(&o, OPTS_LEASE, "0s");
    assert_string_equal(o.err, "prog: --lease: must be more than 0ms");
    fresh(&o);
    opts_apply(&o, OPTS_RENEW_DEADLINE_MS, "5x");
    assert_string_equal(o.err, "prog: --renew-deadline-ms: '5x' is not a number of milliseconds");
}

static void test_clock_drift_and_log_options(void **state)
{
    (void)state;
    opts o;
    static const char *const bad[] = {"0", "200001", "1%", "-5", " 5", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fresh(&o);
        assert_int_equal(opts_apply(&o, OPTS_CLOCK_DRIFT, bad[i]), OPTS_USAGE);
        assert_non_null(strstr(o.err, "prog: --clock-drift-ppm: "));
        assert_non_null(strstr(o.err, "from 1 to 200000"));
    }
    fresh(&o);
    assert_int_equal(opts_apply(&o, OPTS_CLOCK_DRIFT, "200000"), 0);
    assert_int_equal(o.t.clock_drift_ppm, 200000);

    fresh(&o);
    assert_int_equal(o.log_level, LEASEHOLD_LOG_INFO);
    assert_int_equal(opts_apply(&o, OPTS_QUIET, NULL), 0);
    assert_int_equal(o.log_level, LEASEHOLD_LOG_WARN);
    assert_int_equal(opts_apply(&o, OPTS_VERBOSE, NULL), OPTS_USAGE);
    assert_string_equal(o.err, "prog: --quiet and --verbose both set the log level: give one");
    fresh(&o);
    assert_int_equal(opts_apply(&o, OPTS_LOG_LEVEL, "debug"), 0);
    assert_int_equal(o.log_level, LEASEHOLD_LOG_DEBUG);
    fresh(&o);
    assert_int_equal(opts_apply(&o, OPTS_LOG_LEVEL, "loud"), OPTS_USAGE);
    assert_string_equal(o.err, "prog: --log-level: 'loud' is not one of error, warn, info, debug");
    fresh(&o);
    assert_int_equal(opts_apply(&o, OPTS_HELP, NULL), 1); /* the program's */
    assert_int_equal(opts_apply(&o, OPTS_PROGRAM, "x"), 1);
    assert_int_equal(opts_apply(&o, OPTS_URL, ""), OPTS_USAGE);
    assert_string_equal(o.err, "prog: --url: the URL is empty");
}

static void test_identity(void **state)
{
    (void)state;
    opts o;
    fresh(&o);
    assert_int_equal(opts_apply(&o, OPTS_ID, "host-1:42"), 0);
    assert_string_equal(o.identity, "host-1:42");
    char longest[OPTS_IDENTITY_MAX + 2];
    memset(longest, 'a', sizeof longest);
    longest[OPTS_IDENTITY_MAX] = '\0';
    assert_int_equal(opts_apply(&o, OPTS_ID, longest), 0);
    longest[OPTS_IDENTITY_MAX] = 'a';
    longest[OPTS_IDENTITY_MAX + 1] = '\0';
    assert_int_equal(opts_apply(&o, OPTS_ID, longest), OPTS_USAGE);
    assert_string_equal(o.err, "prog: --id: the identity is 201 bytes long: at most 200");
    assert_int_equal(opts_apply(&o, OPTS_ID, ""), OPTS_USAGE);
    assert_string_equal(o.err, "prog: --id: the identity is empty");
    assert_int_equal(opts_apply(&o, OPTS_ID, "a b"), OPTS_USAGE);
    assert_string_equal(o.err, "prog: --id: 'a b' holds a space or control character (byte 0x20)");
    assert_int_equal(opts_apply(&o, OPTS_ID, "a\nb"), OPTS_USAGE);
    assert_string_equal(o.err,
                        "prog: --id: 'a\\x0ab' holds a space or control character (byte 0x0a)");
    assert_int_equal(opts_apply(&o, OPTS_ID, "a\x7f"), OPTS_USAGE);
}

/* The key from --key, --region, SNAKETRON_REGION or the default. */
static void test_key(void **state)
{
    (void)state;
    opts o;
    unsetenv("SNAKETRON_REGION");
    fresh(&o);
    assert_int_equal(opts_finish_key(&o), 0);
    assert_string_equal(o.key, "snaketron:leader:default");

    setenv("SNAKETRON_REGION", "eu-west-1", 1);
    fresh(&o);
    assert_int_equal(opts_finish_key(&o), 0);
    assert_string_equal(o.key, "snaketron:leader:eu-west-1");
    fresh(&o);
    opts_apply(&o, OPTS_REGION, "us");
    assert_int_equal(opts_finish_key(&o), 0);
    assert_string_equal(o.key, "snaketron:leader:us");
    fresh(&o);
    opts_apply(&o, OPTS_KEY, "jobs:nightly");
    assert_int_equal(opts_finish_key(&o), 0);
    assert_string_equal(o.key, "jobs:nightly");

    static const struct {
        const char *env; /* SNAKETRON_REGION, NULL: unset */
        const char *key, *region, *message;
    } bad[] = {
        {NULL, "k", "r", "prog: --key and --region both name the key: give one"},
        {NULL, "", NULL, "prog: --key: the key is empty"},
        {NULL, NULL, "", "prog: --region: the region is empty"},
        {"", NULL, NULL,
         "prog: SNAKETRON_REGION is set but empty: name a region, or unset it for the region "
         "default"},
        {NULL, "a\nb", NULL,
         "prog: --key: 'a\\x0ab' holds a control character (byte 0x0a at offset 1): the key "
         "must be printable"},
        {NULL, "a\x7f", NULL,
         "prog: --key: 'a\\x7f' holds a control character (byte 0x7f at offset 1): the key must "
         "be printable"},
        {NULL, "\x1b[31mred", NULL, NULL},
        {NULL, NULL, "eu\r",
         "prog: --region: 'eu\\x0d' holds a control character (byte 0x0d at offset 2): the "
         "region must be printable"},
        {"eu\n", NULL, NULL,
         "prog: SNAKETRON_REGION: 'eu\\x0a' holds a control character (byte 0x0a at offset 2): "
         "the region must be printable"},
        {"\t", NULL, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (bad[i].env)
            setenv("SNAKETRON_REGION", bad[i].env, 1);
        else
            unsetenv("SNAKETRON_REGION");
        fresh(&o);
        if (bad[i].key)
            opts_apply(&o, OPTS_KEY, bad[i].key);
        if (bad[i].region)
            opts_apply(&o, OPTS_REGION, bad[i].region);
        if (opts_finish_key(&o) != OPTS_USAGE)
            fail_msg("case %zu accepted as key '%s'", i, o.key);
        assert_null(strchr(o.err, '\n'));
        if (bad[i].message)
            assert_string_equal(o.err, bad[i].message);
    }
    /* An empty or odd SNAKETRON_REGION does not matter when the key is given. */
    setenv("SNAKETRON_REGION", "", 1);
    fresh(&o);
    opts_apply(&o, OPTS_KEY, "k");
    assert_int_equal(opts_finish_key(&o), 0);
    unsetenv("SNAKETRON_REGION");

    char big[OPTS_KEY_MAX + 1];
    memset(big, 'k', sizeof big);
    big[OPTS_KEY_MAX - 1] = '\0';
    fresh(&o);
    opts_apply(&o, OPTS_KEY, big);
    assert_int_equal(opts_finish_key(&o), 0);
    big[OPTS_KEY_MAX - 1] = 'k';
    big[OPTS_KEY_MAX] = '\0';
    fresh(&o);
    opts_apply(&o, OPTS_KEY, big);
    assert_int_equal(opts_finish_key(&o), OPTS_USAGE);
    assert_string_equal(o.err, "prog: --key: the key is 512 bytes long: at most 511");
    fresh(&o);
    big[500] = '\0';
    opts_apply(&o, OPTS_REGION, big);
    assert_int_equal(opts_finish_key(&o), OPTS_USAGE);
    assert_string_equal(o.err, "prog: --region: the key snaketron:leader:<region> would be 517 "
                               "bytes long: at most 511");
}

/* The library's own verdict on the timings o derived: it must accept them
 * (lazy_connect, so nothing is dialled before the client is freed). */
static void expect_library_accepts(const opts *o)
{
    leasehold_config cfg;
    leasehold_config_init(&cfg);
    cfg.url = "redis://127.0.0.1:1";
    cfg.lazy_connect = true;
    cfg.lease_ms = o->t.lease_ms;
    cfg.renew_interval_ms = o->t.renew_ms;
    cfg.retry_interval_ms = o->t.retry_ms;
    cfg.renew_deadline_ms = o->t.renew_deadline_ms;
    cfg.command_timeout_ms = o->t.command_timeout_ms;
    cfg.clock_drift_ppm = o->t.clock_drift_ppm;
    leasehold_error err;
    leasehold_client *c = leasehold_client_new(&cfg, &err);
    if (!c)
        fail_msg("lease %" PRIu32 "ms, drift %" PRIu32 "ppm: the library refuses %s", o->t.lease_ms,
                 o->t.clock_drift_ppm, err.msg);
    leasehold_client_free(c);
}

/* Derives the timings for lease (ms) alone; checks the library's rules,
 * the margin, and (when ask_library) the library itself. */
static void derive(uint32_t lease, uint32_t ppm, uint64_t (*margin)(uint32_t), bool ask_library)
{
    opts o;
    fresh(&o);
    char text[32], ppm_text[16];
    snprintf(text, sizeof text, "%" PRIu32 "ms", lease);
    snprintf(ppm_text, sizeof ppm_text, "%" PRIu32, ppm);
    assert_int_equal(opts_apply(&o, OPTS_LEASE, text), 0);
    assert_int_equal(opts_apply(&o, OPTS_CLOCK_DRIFT, ppm_text), 0);
    if (opts_finish_timing(&o, margin) != 0)
        fail_msg("--lease %s with %" PRIu32 "ppm refused: %s", text, ppm, o.err);
    const opts_timing *t = &o.t;
    uint64_t drift = (uint64_t)lease * ppm / 1000000u + 2u;
    uint64_t m = margin ? margin(lease) : 0;
    assert_true(t->renew_ms >= 1 && t->retry_ms >= 1 && t->command_timeout_ms >= 1);
    assert_true((uint64_t)t->renew_ms * 2u <= lease);
    assert_true(t->renew_ms < t->renew_deadline_ms);
    assert_true((uint64_t)t->renew_deadline_ms + drift < lease);
    assert_true((uint64_t)t->renew_deadline_ms + drift + m <= lease);
    assert_true((uint64_t)t->command_timeout_ms * 2u <= t->renew_deadline_ms);
    assert_true(t->renew_deadline_ms <= (uint64_t)lease * 3u / 4u);
    if (ask_library)
        expect_library_accepts(&o);
}

/* Every lease from the smallest that works up, then a sweep to the
 * largest: each works alone, for the smallest, default and largest drift
 * allowance, with and without `leasehold run`'s kill margin. */
static void test_derived_timings(void **state)
{
    (void)state;
    static const uint32_t ppms[] = {1, 10000, 200000};
    uint64_t (*const margins[])(uint32_t) = {NULL, run_margin};
    for (size_t m = 0; m < 2; m++) {
        for (size_t p = 0; p < 3; p++) {
            uint32_t min = opts_min_lease_ms(ppms[p], margins[m]);
            /* the smallest really is the smallest */
            opts o;
            fresh(&o);
            char text[32], ppm_text[16];
            snprintf(text, sizeof text, "%" PRIu32 "ms", min - 1);
            snprintf(ppm_text, sizeof ppm_text, "%" PRIu32, ppms[p]);
            opts_apply(&o, OPTS_LEASE, text);
            opts_apply(&o, OPTS_CLOCK_DRIFT, ppm_text);
            assert_int_equal(opts_finish_timing(&o, margins[m]), OPTS_USAGE);
            char smallest[64];
            snprintf(smallest, sizeof smallest, "the smallest lease that works is %" PRIu32 "ms",
                     min);
            assert_non_null(strstr(o.err, smallest));
            for (uint32_t lease = min; lease < min + 300; lease++)
                derive(lease, ppms[p], margins[m], lease < min + 20);
            for (uint64_t lease = min + 300; lease <= UINT32_MAX; lease = lease * 5 / 4)
                derive((uint32_t)lease, ppms[p], margins[m], true);
            derive(UINT32_MAX, ppms[p], margins[m], true);
        }
    }
    assert_int_equal(opts_min_lease_ms(10000, NULL), 5);
    assert_int_equal(opts_min_lease_ms(10000, run_margin), 54);
    assert_int_equal(opts_min_lease_ms(200000, run_margin), 67);
}

/* The defaults: 2s and the library's own proportions. */
static void test_default_timings(void **state)
{
    (void)state;
    opts o;
    fresh(&o);
    assert_int_equal(opts_finish_timing(&o, run_margin), 0);
    assert_int_equal(o.t.lease_ms, 2000);
    assert_int_equal(o.t.renew_ms, 300);
    assert_int_equal(o.t.retry_ms, 1000);
    assert_int_equal(o.t.renew_deadline_ms, 1500);
    assert_int_equal(o.t.command_timeout_ms, 250);
    assert_false(o.t.command_timeout_lowered);
    fresh(&o);
    opts_apply(&o, OPTS_LEASE, "200ms");
    assert_int_equal(opts_finish_timing(&o, run_margin), 0);
    assert_int_equal(o.t.renew_deadline_ms, 146); /* 200 - 4 of drift - 50 of margin */
    assert_true(o.t.command_timeout_lowered);
    assert_int_equal(o.t.command_timeout_ms, 73);
}

/* Each refusal names the option the user gave, or the derived value and
 * what it came from; never a library field. */
static void test_timing_messages(void **state)
{
    (void)state;
    static const struct {
        const char *args[8]; /* option name, value, ... */
        bool run;            /* with leasehold run's kill margin */
        const char *message;
    } cases[] = {
        {{"--lease", "10ms"},
         true,
         "prog: --lease 10ms is too short: it must hold a renew deadline of at least 2ms plus "
         "2ms of clock drift allowance plus the 50ms kill margin; the smallest lease that works "
         "is 54ms"},
        {{"--lease-ms", "4"},
         false,
         "prog: --lease-ms 4 is too short: it must hold a renew deadline of at least 2ms plus 2ms "
         "of clock drift allowance; the smallest lease that works is 5ms"},
        {{"--lease", "60ms", "--clock-drift-ppm", "200000"},
         true,
         "prog: --lease 60ms is too short: it must hold a renew deadline of at least 2ms plus "
         "14ms of clock drift allowance (--clock-drift-ppm 200000) plus the 50ms kill margin; the "
         "smallest lease that works is 67ms"},
        {{"--renew", "5s"},
         true,
         "prog: --renew 5s is more than half of the default --lease 2000ms: at most 1000ms"},
        {{"--renew-ms", "1200", "--lease", "2s"},
         false,
         "prog: --renew-ms 1200 is more than half of --lease 2s: at most 1000ms"},
        {{"--renew-deadline", "1990ms"},
         true,
         "prog: --renew-deadline 1990ms leaves too little of the default --lease 2000ms: at most "
         "1878ms, the lease less 22ms of clock drift allowance and the margin to kill CMD before "
         "it ends"},
        {{"--renew-deadline-ms", "1990"},
         false,
         "prog: --renew-deadline-ms 1990 leaves too little of the default --lease 2000ms: at "
         "most 1977ms, the lease less 22ms of clock drift allowance, exclusive"},
        {{"--renew-deadline", "1ms", "--renew", "1ms"},
         true,
         "prog: --renew-deadline 1ms is too short: at least 2ms (the renew interval must be "
         "shorter)"},
        {{"--lease", "100ms", "--renew", "50ms", "--clock-drift-ppm", "200000"},
         true,
         "prog: --renew 50ms must be shorter than --renew-deadline 28ms (derived: --lease 100ms "
         "less 22ms of clock drift allowance and the kill margin)"},
        {{"--lease", "1s", "--renew", "800ms", "--renew-deadline", "700ms"},
         true,
         "prog: --renew 800ms is more than half of --lease 1s: at most 500ms"},
        {{"--lease", "1s", "--renew", "500ms", "--renew-deadline", "500ms"},
         true,
         "prog: --renew 500ms must be shorter than --renew-deadline 500ms"},
        {{"--lease", "1s", "--command-timeout", "600ms"},
         true,
         "prog: --command-timeout 600ms is more than half of --renew-deadline 750ms (derived: "
         "75% of --lease 1s): at most 375ms"},
        {{"--command-timeout-ms", "800"},
         false,
         "prog: --command-timeout-ms 800 is more than half of --renew-deadline 1500ms (derived: "
         "75% of the default --lease 2000ms): at most 750ms"},
        {{"--renew-deadline", "300ms", "--command-timeout", "200ms"},
         false,
         "prog: --command-timeout 200ms is more than half of --renew-deadline 300ms: at most "
         "150ms"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        static const struct {
            const char *name;
            int id;
        } ids[] = {
            {"--lease", OPTS_LEASE},
            {"--lease-ms", OPTS_LEASE_MS},
            {"--renew", OPTS_RENEW},
            {"--renew-ms", OPTS_RENEW_MS},
            {"--renew-deadline", OPTS_RENEW_DEADLINE},
            {"--renew-deadline-ms", OPTS_RENEW_DEADLINE_MS},
            {"--command-timeout", OPTS_COMMAND_TIMEOUT},
            {"--command-timeout-ms", OPTS_COMMAND_TIMEOUT_MS},
            {"--clock-drift-ppm", OPTS_CLOCK_DRIFT},
        };
        opts o;
        fresh(&o);
        for (size_t a = 0; a < 8 && cases[i].args[a]; a += 2) {
            int id = -1;
            for (size_t k = 0; k < sizeof ids / sizeof ids[0]; k++)
                if (strcmp(ids[k].name, cases[i].args[a]) == 0)
                    id = ids[k].id;
            assert_true(id >= 0);
            assert_int_equal(opts_apply(&o, id, cases[i].args[a + 1]), 0);
        }
        if (opts_finish_timing(&o, cases[i].run ? run_margin : NULL) != OPTS_USAGE)
            fail_msg("case %zu accepted", i);
        if (strcmp(o.err, cases[i].message) != 0)
            fail_msg("case %zu:\n got: %s\nwant: %s", i, o.err, cases[i].message);
        assert_null(strstr(o.err, "_ms"));
    }
}

/* A file in $TMPDIR holding text, with mode; its path into out. */
static void temp_file(char out[256], const char *text, mode_t mode)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(out, 256, "%s/leasehold-opts-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    int fd = mkstemp(out);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
}

/* --url-file, --password-file, SNAKETRON_REDIS_PASSWORD and the TLS
 * options, into the configuration; a secret never in a message. */
static void test_connection_options(void **state)
{
    (void)state;
    char url_file[256], pass_file[256], empty[256], long_line[256], crlf[256];
    temp_file(url_file, "rediss://127.0.0.1:6380\nignored\n", 0600);
    temp_file(pass_file, "s3cr3t-from-file\n", 0600);
    temp_file(empty, "\n", 0600);
    temp_file(crlf, "s3cr3t-crlf\r\n", 0600);
    static char big[5000];
    memset(big, 'x', sizeof big - 1);
    temp_file(long_line, big, 0600);

    opts o;
    unsetenv("SNAKETRON_REDIS_PASSWORD");
    fresh(&o);
    assert_int_equal(opts_apply(&o, OPTS_URL_FILE, url_file), 0);
    assert_string_equal(o.url, "rediss://127.0.0.1:6380");
    assert_string_equal(o.url_source, "--url-file");
    assert_int_equal(opts_apply(&o, OPTS_URL, "redis://h"), OPTS_USAGE);
    assert_string_equal(o.err, "prog: --url and --url-file both give the URL: give one");
    assert_int_equal(opts_apply(&o, OPTS_PASSWORD_FILE, pass_file), 0);
    assert_int_equal(opts_apply(&o, OPTS_TLS_CA_FILE, "/ca.pem"), 0);
    assert_int_equal(opts_apply(&o, OPTS_TLS_CA_DIR, "/cas"), 0);
    assert_int_equal(opts_apply(&o, OPTS_TLS_CERT_FILE, "/c.pem"), 0);
    assert_int_equal(opts_apply(&o, OPTS_TLS_KEY_FILE, "/k.pem"), 0);
    assert_int_equal(opts_apply(&o, OPTS_TLS_SERVER_NAME, "redis.lan"), 0);
    assert_int_equal(opts_apply(&o, OPTS_TLS_INSECURE, NULL), 0);
    setenv("SNAKETRON_REDIS_PASSWORD", "from-env", 1);
    assert_int_equal(opts_conn_finish(&o), 0); /* the file beats the environment */
    leasehold_config cfg;
    leasehold_config_init(&cfg);
    opts_conn_config(&o.conn, &cfg);
    assert_string_equal(cfg.password, "s3cr3t-from-file");
    assert_string_equal(o.conn.password_source, "--password-file");
    assert_string_equal(cfg.tls_ca_file, "/ca.pem");
    assert_string_equal(cfg.tls_ca_dir, "/cas");
    assert_string_equal(cfg.tls_cert_file, "/c.pem");
    assert_string_equal(cfg.tls_key_file, "/k.pem");
    assert_string_equal(cfg.tls_server_name, "redis.lan");
    assert_true(cfg.tls_insecure);

    fresh(&o);
    assert_int_equal(opts_apply(&o, OPTS_URL, "redis://h"), 0);
    assert_int_equal(opts_apply(&o, OPTS_URL_FILE, url_file), OPTS_USAGE);
    assert_int_equal(opts_conn_finish(&o), 0);
    assert_string_equal(o.conn.password, "from-env");
    assert_string_equal(o.conn.password_source, "SNAKETRON_REDIS_PASSWORD");
    setenv("SNAKETRON_REDIS_PASSWORD", "", 1);
    fresh(&o);
    assert_int_equal(opts_conn_finish(&o), OPTS_USAGE);
    assert_non_null(strstr(o.err, "SNAKETRON_REDIS_PASSWORD is set but empty"));
    unsetenv("SNAKETRON_REDIS_PASSWORD");

    fresh(&o);
    assert_int_equal(opts_apply(&o, OPTS_PASSWORD_FILE, crlf), 0);
    assert_string_equal(o.conn.password, "s3cr3t-crlf");
    assert_int_equal(opts_apply(&o, OPTS_PASSWORD_FILE, empty), OPTS_USAGE);
    assert_non_null(strstr(o.err, "is empty"));
    assert_int_equal(opts_apply(&o, OPTS_PASSWORD_FILE, long_line), OPTS_USAGE);
    assert_non_null(strstr(o.err, "longer than"));
    assert_null(strstr(o.err, "xxxxxxxxxx"));
    assert_int_equal(opts_apply(&o, OPTS_PASSWORD_FILE, "/nonexistent/pw"), OPTS_USAGE);
    assert_string_equal(o.err,
                        "prog: --password-file: cannot read '/nonexistent/pw': No such file or "
                        "directory");
    assert_int_equal(opts_apply(&o, OPTS_TLS_CA_FILE, ""), OPTS_USAGE);
    assert_string_equal(o.err, "prog: --tls-ca-file: the value is empty");
    unlink(url_file);
    unlink(pass_file);
    unlink(empty);
    unlink(long_line);
    unlink(crlf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_durations_accepted),
        cmocka_unit_test(test_durations_refused),
        cmocka_unit_test(test_milliseconds),
        cmocka_unit_test(test_clock_drift_and_log_options),
        cmocka_unit_test(test_identity),
        cmocka_unit_test(test_key),
        cmocka_unit_test(test_default_timings),
        cmocka_unit_test(test_timing_messages),
        cmocka_unit_test(test_derived_timings),
        cmocka_unit_test(test_connection_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
