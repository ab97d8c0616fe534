/* test_protocol.c — side keys and the key's Redis Cluster slot.
 *
 * The test computes slots itself, as the Redis Cluster specification does
 * (CRC16-XMODEM of the hash tag or the whole key, mod 16384), and checks
 * every key protocol_check_key accepts against it: its side keys land in
 * its own slot.  Keys whose side keys could not are refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "protocol.h"

/* CRC16-XMODEM (polynomial 0x1021, initial value 0), bit by bit. */
static uint16_t crc16(const char *buf, size_t len)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)((uint8_t)buf[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (uint16_t)(crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1);
    }
    return crc;
}

/* What the specification hashes of key, into out: the part between the
 * first '{' and the first '}' after it, if there is such a part and it is
 * not empty; otherwise the whole key.  Written out here on its own. */
static void hashed(const char *key, char *out, size_t cap)
{
    size_t len = strlen(key), s, e;
    for (s = 0; s < len; s++)
        if (key[s] == '{')
            break;
    if (s < len) {
        for (e = s + 1; e < len; e++)
            if (key[e] == '}')
                break;
        if (e < len && e != s + 1) {
            snprintf(out, cap, "%.*s", (int)(e - s - 1), key + s + 1);
            return;
        }
    }
    snprintf(out, cap, "%s", key);
}

static unsigned slot(const char *key)
{
    char part[256];
    hashed(key, part, sizeof part);
    return crc16(part, strlen(part)) & 16383;
}

/* Checks one key: accepted as expected (-1: either), and when accepted its
 * side keys share its slot.  Returns whether it was accepted. */
static bool check(const char *key, int accept)
{
    leasehold_error err = {0};
    int rc = protocol_check_key(key, &err);
    if (accept >= 0 && (rc == 0) != (accept == 1))
        fail_msg("key \"%s\": %s, expected %s (%s)", key, rc ? "refused" : "accepted",
                 accept ? "accepted" : "refused", err.msg);
    if (rc) {
        assert_int_equal(rc, LEASEHOLD_EINVAL);
        assert_int_equal(err.code, LEASEHOLD_EINVAL);
        assert_non_null(strstr(err.msg, key));
        assert_non_null(strstr(err.msg, "hash tag"));
        return false;
    }
    char *side[] = {protocol_epoch_key(key), protocol_channel(key),
                    protocol_side_key(key, "quarantine")};
    for (size_t i = 0; i < sizeof side / sizeof side[0]; i++) {
        assert_non_null(side[i]);
        if (slot(side[i]) != slot(key))
            fail_msg("key \"%s\" (slot %u): side key \"%s\" is in slot %u", key, slot(key), side[i],
                     slot(side[i]));
        free(side[i]);
    }
    return true;
}

/* The specification's own examples, and the ones the review found. */
static void test_crc16_and_slots(void **state)
{
    (void)state;
    assert_int_equal(crc16("123456789", 9), 0x31C3);
    assert_int_equal(slot("{user1000}.following"), slot("{user1000}.followers"));
    assert_int_equal(slot("foo{}{bar}"), crc16("foo{}{bar}", 10) & 16383);
    assert_int_equal(slot("foo{{bar}}zap"), crc16("{bar", 4) & 16383);
    assert_int_equal(slot("foo{bar}{zap}"), crc16("bar", 3) & 16383);
    assert_int_equal(slot("a{}b"), 13694);
    assert_int_equal(slot("{a{}b}:epoch"), 14311);
    assert_int_equal(slot("a}b"), 7866);
    assert_int_equal(slot("{a}b}:epoch"), 15495);
}

static void test_awkward_keys(void **state)
{
    (void)state;
    static const struct {
        const char *key;
        int accept;
    } keys[] = {
        {"a", 1},      {"snaketron:leader:eu-west-1", 1},
        {"{a}", 1},    {"a{b}c", 1},
        {"{{a}}", 1},  {"a{b", 1},
        {"{", 1},      {"{{", 1},
        {"a{b}}", 1},  {"{a}b}", 1},
        {"x{}{y}", 0}, /* the first '}' after the first '{' ends an empty tag */
        {"{}", 0},     {"a{}b", 0},
        {"a}b", 0},    {"}{", 0},
        {"}", 0},      {"}{a}", 1}, /* the tag is "a" */
        {"{}a}", 0},
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        check(keys[i].key, keys[i].accept);
}

/* Every key of up to 5 bytes over 'a', 'b', '{', '}': each accepted one has
 * its side keys in its slot (check), and a key is refused only when its
 * side keys truly could not be. */
static void test_all_short_keys(void **state)
{
    (void)state;
    const char alphabet[] = "ab{}";
    char key[6];
    int accepted = 0, refused = 0;
    for (size_t len = 1; len <= 5; len++) {
        size_t total = 1;
        for (size_t i = 0; i < len; i++)
            total *= 4;
        for (size_t n = 0; n < total; n++) {
            size_t v = n;
            for (size_t i = 0; i < len; i++, v /= 4)
                key[i] = alphabet[v % 4];
            key[len] = '\0';
            if (check(key, -1)) {
                accepted++;
                continue;
            }
            refused++;
            /* Refused only when neither naming could work: "{K}:x" and
             * "K:x" both hash something other than what K hashes. */
            char mine[8], braced[16], plain[16], name[16];
            hashed(key, mine, sizeof mine);
            snprintf(name, sizeof name, "{%s}:x", key);
            hashed(name, braced, sizeof braced);
            snprintf(name, sizeof name, "%s:x", key);
            hashed(name, plain, sizeof plain);
            if (strcmp(braced, mine) == 0 || strcmp(plain, mine) == 0)
                fail_msg("key \"%s\" refused, but its side keys could share its slot", key);
        }
    }
    assert_true(accepted > 0 && refused > 0);
}

/* The events channel's messages: leasehold's own, as written and read. */
static void test_channel_messages(void **state)
{
    (void)state;
    lease_event_kind kind;
    uint64_t epoch;
    const char *token;
    size_t len;
    char *m = protocol_resign_message(77, "a:1/000000000000000a");
    assert_int_equal(protocol_parse_event(m, strlen(m), &kind, &epoch, &token, &len), 0);
    assert_int_equal(kind, LEASE_EVENT_RESIGN);
    assert_int_equal(epoch, 77);
    assert_int_equal(len, 20);
    free(m);

    lease_request r;
    m = protocol_prefer_message(77, "a:1/000000000000000a", 3, "b:2/000000000000000b");
    assert_string_equal(m, "prefer 77 a:1/000000000000000a 3 b:2/000000000000000b");
    assert_int_equal(protocol_parse_request(m, strlen(m), &r), 0);
    assert_false(r.handover);
    assert_int_equal(r.epoch, 77);
    assert_int_equal(r.priority, 3);
    assert_int_equal(r.holder_len, 20);
    assert_memory_equal(r.other, "b:2/000000000000000b", 20);
    assert_int_equal(r.other_len, 20);
    assert_int_equal(protocol_parse_event(m, strlen(m), &kind, &epoch, &token, &len), -1);
    free(m);
    m = protocol_handover_message(78, "a:1/000000000000000a", "b:2/000000000000000b");
    assert_int_equal(protocol_parse_request(m, strlen(m), &r), 0);
    assert_true(r.handover);
    assert_int_equal(r.epoch, 78);
    assert_memory_equal(r.other, "b:2/000000000000000b", 20);
    free(m);

    static const char *const bad[] = {"prefer",
                                      "prefer ",
                                      "prefer 1 a 2",
                                      "prefer x a 2 b",
                                      "prefer 1 a x b",
                                      "prefer 1 a 2 b c",
                                      "prefer 1  a 2 b",
                                      "prefer 1 a 2 b ",
                                      "handover 1 a",
                                      "handover 1 a b c",
                                      "prefer 1 a 99999999999 b",
                                      "elected 1 a",
                                      "prefer 12345678901234567890 a 1 b"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (protocol_parse_request(bad[i], strlen(bad[i]), &r) == 0)
            fail_msg("'%s' was taken for a request", bad[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc16_and_slots),
        cmocka_unit_test(test_awkward_keys),
        cmocka_unit_test(test_all_short_keys),
        cmocka_unit_test(test_channel_messages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
