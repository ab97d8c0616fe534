/*
 * test_redis_info — what leasehold reads from INFO: uptime (counted a second
 * short, and never overflowing whatever a server or a proxy answers), run_id,
 * maxmemory_policy, and what a reply without them means.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "redis_info.h"

static void test_fields(void **state)
{
    (void)state;
    redis_info i;
    redis_info_parse("# Server\r\nredis_version:7.0.15\r\nrun_id:0123abcd\r\n"
                     "uptime_in_seconds:12\r\n# Memory\r\nmaxmemory_policy:allkeys-lru\r\n",
                     &i);
    assert_true(i.has_uptime);
    assert_int_equal(i.up_ms, 11000);
    assert_string_equal(i.run_id, "0123abcd");
    assert_string_equal(i.maxmemory_policy, "allkeys-lru");
    assert_int_equal(redis_info_guard_wait_ms(&i, 2000), 0);
    assert_int_equal(redis_info_guard_wait_ms(&i, 20000), 9000);
    assert_int_equal(i.online_replicas, 0);
    assert_string_equal(i.replid, "");
}

/* The replication section: the replication ID and the replicas online (a
 * replica still syncing, or a line that only looks like one, is not). */
static void test_replication(void **state)
{
    (void)state;
    redis_info i;
    redis_info_parse("# Replication\r\nrole:master\r\nconnected_slaves:3\r\n"
                     "slave0:ip=10.0.0.2,port=6379,state=online,offset=42,lag=0\r\n"
                     "slave1:ip=10.0.0.3,port=6379,state=wait_bgsave,offset=0,lag=0\r\n"
                     "slave2:ip=10.0.0.4,port=6379,state=online,offset=42,lag=1\r\n"
                     "slaves:state=online\r\n"
                     "master_replid:9f3c0a\r\nmaster_replid2:0000\r\n",
                     &i);
    assert_int_equal(i.online_replicas, 2);
    assert_string_equal(i.replid, "9f3c0a");
}

/* 0 and 1 s both count as just started: the field can read 1 s high. */
static void test_short_uptime(void **state)
{
    (void)state;
    redis_info i;
    redis_info_parse("uptime_in_seconds:1\r\n", &i);
    assert_true(i.has_uptime);
    assert_int_equal(i.up_ms, 0);
    assert_int_equal(redis_info_guard_wait_ms(&i, 2000), 2000);
    redis_info_parse("uptime_in_seconds:0\r\n", &i);
    assert_int_equal(i.up_ms, 0);
}

/* Uptimes that would overflow (s - 1) * 1000 count as 31 years. */
static void test_huge_uptime(void **state)
{
    (void)state;
    redis_info i;
    redis_info_parse("uptime_in_seconds:18446744073709551615\r\n", &i);
    assert_true(i.has_uptime);
    assert_int_equal(i.up_ms, (1000000000ull - 1) * 1000);
    assert_int_equal(redis_info_guard_wait_ms(&i, UINT32_MAX), 0);
    redis_info_parse("uptime_in_seconds:18446744073709551616000\r\n", &i); /* too long: cut */
    assert_true(i.up_ms <= (1000000000ull - 1) * 1000);
}

/* Anything that is not a number of seconds is no uptime: just started. */
static void test_no_uptime(void **state)
{
    (void)state;
    static const char *const bad[] = {
        NULL,
        "",
        "# Server\r\n",
        "uptime_in_seconds:\r\n",
        "uptime_in_seconds:-5\r\n",
        "uptime_in_seconds:12abc\r\n",
        "uptime_in_seconds: 12\r\n",
        "xuptime_in_seconds:12\r\n",
        "uptime_in_seconds=12\r\n",
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        redis_info i;
        redis_info_parse(bad[k], &i);
        if (i.has_uptime)
            fail_msg("case %zu: an uptime was read from \"%s\"", k, bad[k] ? bad[k] : "(null)");
        assert_int_equal(redis_info_guard_wait_ms(&i, 2000), 2000);
        assert_string_equal(i.run_id, "");
    }
}

/* Long values are cut to their buffers, never overrun them. */
static void test_long_values(void **state)
{
    (void)state;
    char info[500];
    char longer[200];
    memset(longer, 'x', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    snprintf(info, sizeof info, "run_id:%s\nmaxmemory_policy:%s\n", longer, longer);
    redis_info i;
    redis_info_parse(info, &i);
    assert_int_equal(strlen(i.run_id), sizeof i.run_id - 1);
    assert_int_equal(strlen(i.maxmemory_policy), sizeof i.maxmemory_policy - 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fields),       cmocka_unit_test(test_replication),
        cmocka_unit_test(test_short_uptime), cmocka_unit_test(test_huge_uptime),
        cmocka_unit_test(test_no_uptime),    cmocka_unit_test(test_long_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
