/*
 * test_replies — the scripts' replies as the state machine takes them:
 * Redis's TIME in acquire and renew replies, the quarantine, and replies that
 * are malformed in every way a broken or foreign Redis could answer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "protocol.h"

/* The names the replies below are about. */
static const protocol_key K = {.key = "k",
                               .epoch_key = "{k}:epoch",
                               .quarantine_key = "{k}:quarantine",
                               .channel = "{k}:events",
                               .token = "host:1/00ff"};

static conn_reply str(const char *s)
{
    return (conn_reply){.type = CONN_REPLY_STRING, .str = s, .len = strlen(s)};
}

static conn_reply num(long long v)
{
    return (conn_reply){.type = CONN_REPLY_INTEGER, .integer = v};
}

static conn_reply nil(void)
{
    return (conn_reply){.type = CONN_REPLY_NIL};
}

static conn_reply arr(const conn_reply *el, size_t n)
{
    return (conn_reply){.type = CONN_REPLY_ARRAY, .elements = n, .element = el};
}

static void test_acquire_replies(void **state)
{
    (void)state;
    lease_reply out;
    char why[200];

    conn_reply won_el[] = {str("elected"), str("1700000000123456"), str("1700000000"),
                           str("123456")};
    conn_reply won = arr(won_el, 4);
    protocol_acquire_reply(&won, &K, &out, why, sizeof why);
    assert_int_equal(out.result, LEASE_ACQUIRED);
    assert_int_equal(out.epoch, 1700000000123456ull);
    assert_int_equal(out.redis_time_us, 1700000000123456ull);

    conn_reply held_el[] = {str("held"), str("other/1"), num(1500), str("42")};
    conn_reply held = arr(held_el, 4);
    protocol_acquire_reply(&held, &K, &out, why, sizeof why);
    assert_int_equal(out.result, LEASE_ACQUIRE_HELD);
    assert_int_equal(out.holder_len, 7);
    assert_memory_equal(out.holder, "other/1", 7);
    assert_int_equal(out.pttl_ms, 1500);
    assert_int_equal(out.epoch, 42);
    assert_int_equal(out.redis_time_us, 0);

    /* The holder the claim named as known: its epoch is not read again. */
    conn_reply known_el[] = {str("held"), str("other/1"), num(900), nil()};
    conn_reply known = arr(known_el, 4);
    protocol_acquire_reply(&known, &K, &out, why, sizeof why);
    assert_int_equal(out.result, LEASE_ACQUIRE_HELD);
    assert_int_equal(out.pttl_ms, 900);
    assert_int_equal(out.epoch, 0);

    conn_reply q_el[] = {str("quarantine"), num(1234), num(1), str("1700000002"), str("0")};
    conn_reply q = arr(q_el, 5);
    protocol_acquire_reply(&q, &K, &out, why, sizeof why);
    assert_int_equal(out.result, LEASE_ACQUIRE_QUARANTINED);
    assert_int_equal(out.pttl_ms, 1234);
    assert_true(out.fresh);
    assert_int_equal(out.redis_time_us, 1700000002000000ull);

    int64_t remaining;
    bool fresh;
    assert_int_equal(protocol_arm_reply(&q, &K, &remaining, &fresh, why, sizeof why), 0);
    assert_int_equal(remaining, 1234);
    assert_true(fresh);
    conn_reply clear_el[] = {str("clear")};
    conn_reply clear = arr(clear_el, 1);
    assert_int_equal(protocol_arm_reply(&clear, &K, &remaining, &fresh, why, sizeof why), 0);
    assert_int_equal(remaining, 0);
    assert_false(fresh);
}

static void test_renew_replies(void **state)
{
    (void)state;
    lease_reply out;
    char why[200];
    conn_reply ok_el[] = {num(1), str("1700000000"), str("999999")};
    conn_reply ok = arr(ok_el, 3);
    protocol_renew_reply(&ok, &K, &out, why, sizeof why);
    assert_int_equal(out.result, LEASE_RENEWED);
    assert_int_equal(out.redis_time_us, 1700000000999999ull);

    conn_reply gone_el[] = {num(0), str("1700000000"), str("1")};
    conn_reply gone = arr(gone_el, 3);
    protocol_renew_reply(&gone, &K, &out, why, sizeof why);
    assert_int_equal(out.result, LEASE_RENEW_MISSING);

    conn_reply held_el[] = {str("other/2"), str("1700000000"), str("1")};
    conn_reply held = arr(held_el, 3);
    protocol_renew_reply(&held, &K, &out, why, sizeof why);
    assert_int_equal(out.result, LEASE_RENEW_HELD);
    assert_int_equal(out.holder_len, 7);

    /* A TIME that is not one is no TIME: nothing is concluded from it. */
    conn_reply odd_el[] = {num(1), str("17x"), str("1")};
    conn_reply odd = arr(odd_el, 3);
    protocol_renew_reply(&odd, &K, &out, why, sizeof why);
    assert_int_equal(out.result, LEASE_RENEWED);
    assert_int_equal(out.redis_time_us, 0);
    conn_reply big_el[] = {num(1), str("1700000000"), str("1000000")};
    conn_reply big = arr(big_el, 3);
    protocol_renew_reply(&big, &K, &out, why, sizeof why);
    assert_int_equal(out.redis_time_us, 0);
}

/* Whatever else comes back is a failure naming the script, never a term. */
static void test_malformed(void **state)
{
    (void)state;
    lease_reply out;
    char why[200];
    conn_reply one = num(7);
    conn_reply n = nil();
    conn_reply short_el[] = {str("elected"), str("12")};
    conn_reply shortr = arr(short_el, 2);
    conn_reply zero_el[] = {str("elected"), str("0"), str("1"), str("2")};
    conn_reply zero = arr(zero_el, 4);
    conn_reply nohold_el[] = {str("held"), nil(), num(-2), nil()};
    conn_reply nohold = arr(nohold_el, 4);
    conn_reply oldheld_el[] = {str("held"), str("a/1"), num(5), str("4"), str("1"), str("2")};
    conn_reply oldheld = arr(oldheld_el, 6);
    conn_reply qbad_el[] = {str("quarantine"), str("x"), num(0), str("1"), str("2")};
    conn_reply qbad = arr(qbad_el, 5);
    const conn_reply *bad[] = {&one, &n, &shortr, &zero, &nohold, &oldheld, &qbad};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why[0] = '\0';
        protocol_acquire_reply(bad[i], &K, &out, why, sizeof why);
        assert_int_equal(out.result, LEASE_ACQUIRE_FAILED);
        assert_int_equal(out.error, LEASEHOLD_EPROTO);
        assert_non_null(strstr(why, "acquire"));
    }
    conn_reply old = num(1); /* the renew script's reply before it carried TIME */
    protocol_renew_reply(&old, &K, &out, why, sizeof why);
    assert_int_equal(out.result, LEASE_RENEW_FAILED);
    assert_int_equal(out.error, LEASEHOLD_EPROTO);
    int64_t remaining;
    bool fresh;
    assert_int_equal(protocol_arm_reply(&one, &K, &remaining, &fresh, why, sizeof why),
                     LEASEHOLD_EPROTO);
    assert_non_null(strstr(why, "arm"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_acquire_replies),
        cmocka_unit_test(test_renew_replies),
        cmocka_unit_test(test_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
