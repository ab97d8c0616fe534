/* test_cluster_map.c — cluster.c: key slots, the slot map's replies
 * (CLUSTER SHARDS and CLUSTER SLOTS, well-formed and not) and MOVED / ASK. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "cluster.h"
#include "conn.h"

/* Slots as Redis computes them (CLUSTER KEYSLOT): the CRC16 check value,
 * and the hash tag rule. */
static void test_key_slot(void **state)
{
    (void)state;
    assert_int_equal(cluster_key_slot("123456789"), 0x31C3 % 16384);
    assert_int_equal(cluster_key_slot("foo"), 12182);
    assert_int_equal(cluster_key_slot("bar"), 5061);
    assert_int_equal(cluster_key_slot(""), 0);
    assert_int_equal(cluster_key_slot("{user1000}.following"),
                     cluster_key_slot("{user1000}.followers"));
    assert_int_equal(cluster_key_slot("{user1000}.following"), cluster_key_slot("user1000"));
    /* An empty tag is no tag: the whole key is hashed. */
    assert_int_not_equal(cluster_key_slot("foo{}{bar}"), cluster_key_slot("bar"));
    assert_int_equal(cluster_key_slot("foo{{bar}}zap"), cluster_key_slot("{bar"));
    assert_int_equal(cluster_key_slot("leader:{eu}"), cluster_key_slot("leader:{eu}:epoch"));
}

#define STR(s)                                                                                     \
    {                                                                                              \
        .type = CONN_REPLY_STRING, .str = (s), .len = sizeof(s) - 1                                \
    }
#define INT(n)                                                                                     \
    {                                                                                              \
        .type = CONN_REPLY_INTEGER, .integer = (n)                                                 \
    }
#define ARR(a)                                                                                     \
    {                                                                                              \
        .type = CONN_REPLY_ARRAY, .elements = sizeof(a) / sizeof(a[0]), .element = (a)             \
    }

/* One shard of CLUSTER SHARDS (RESP2: flat name/value arrays): slots
 * 0-5460 and 6000-6001, a failed master listed before the online one, and a
 * replica. */
static const conn_reply failed_master[] = {
    STR("id"),       STR("a"),    STR("port"),   INT(7000),     STR("ip"),
    STR("10.0.0.1"), STR("role"), STR("master"), STR("health"), STR("fail")};
static const conn_reply online_master[] = {
    STR("id"),   STR("b"),      STR("port"),     INT(7003),       STR("tls-port"),
    INT(8003),   STR("ip"),     STR("10.0.0.4"), STR("endpoint"), STR("10.0.0.4"),
    STR("role"), STR("master"), STR("health"),   STR("online")};
static const conn_reply replica[] = {STR("id"),     STR("c"),        STR("port"), INT(7006),
                                     STR("ip"),     STR("10.0.0.7"), STR("role"), STR("replica"),
                                     STR("health"), STR("online")};
static const conn_reply shard1_nodes[] = {ARR(failed_master), ARR(replica), ARR(online_master)};
static const conn_reply shard1_slots[] = {INT(0), INT(5460), INT(6000), INT(6001)};
static const conn_reply shard1[] = {STR("slots"), ARR(shard1_slots), STR("nodes"),
                                    ARR(shard1_nodes)};
/* A second shard whose master gives "?" as its endpoint: the asked node's
 * address stands in. */
static const conn_reply m2[] = {STR("port"), INT(7001),     STR("endpoint"), STR("?"),
                                STR("role"), STR("master"), STR("health"),   STR("online")};
static const conn_reply shard2_nodes[] = {ARR(m2)};
static const conn_reply shard2_slots[] = {INT(5461), INT(5999)};
static const conn_reply shard2[] = {STR("slots"), ARR(shard2_slots), STR("nodes"),
                                    ARR(shard2_nodes)};
/* A shard with no master at all is skipped. */
static const conn_reply shard3_nodes[] = {ARR(replica)};
static const conn_reply shard3_slots[] = {INT(6002), INT(16383)};
static const conn_reply shard3[] = {STR("slots"), ARR(shard3_slots), STR("nodes"),
                                    ARR(shard3_nodes)};
static const conn_reply shards[] = {ARR(shard1), ARR(shard2), ARR(shard3)};

static void test_shards(void **state)
{
    (void)state;
    conn_reply r = ARR(shards);
    cluster_map map;
    char why[100];
    assert_int_equal(cluster_parse_shards(&r, false, "seed", &map, why, sizeof why), 0);
    assert_int_equal(map.count, 3);
    assert_int_equal(map.ranges[0].first, 0);
    assert_int_equal(map.ranges[0].last, 5460);
    assert_string_equal(map.ranges[0].host, "10.0.0.4");
    assert_int_equal(map.ranges[0].port, 7003);
    assert_int_equal(map.ranges[1].first, 6000);
    assert_int_equal(map.ranges[1].last, 6001);
    assert_string_equal(map.ranges[2].host, "seed");
    assert_int_equal(map.ranges[2].port, 7001);
    cluster_map_free(&map);
    /* Over TLS the TLS port, where a node gives one. */
    assert_int_equal(cluster_parse_shards(&r, true, "seed", &map, why, sizeof why), 0);
    assert_int_equal(map.ranges[0].port, 8003);
    assert_int_equal(map.ranges[2].port, 7001);
    cluster_map_free(&map);
}

static const conn_reply bad_range[] = {INT(5000), INT(16384)};
static const conn_reply bad_shard[] = {STR("slots"), ARR(bad_range), STR("nodes"),
                                       ARR(shard2_nodes)};
static const conn_reply bad_shards[] = {ARR(bad_shard)};
static const conn_reply odd_slots[] = {INT(1)};
static const conn_reply odd_shard[] = {STR("slots"), ARR(odd_slots), STR("nodes"),
                                       ARR(shard2_nodes)};
static const conn_reply odd_shards[] = {ARR(odd_shard)};
static const conn_reply no_nodes[] = {STR("slots"), ARR(shard2_slots)};
static const conn_reply no_nodes_shards[] = {ARR(no_nodes)};

/* Replies that are no shard list: an error naming what is wrong, no map
 * (and nothing leaked: ASan). */
static void test_shards_malformed(void **state)
{
    (void)state;
    cluster_map map;
    char why[100];
    conn_reply err = {.type = CONN_REPLY_ERROR, .str = "ERR x", .len = 5};
    assert_int_equal(cluster_parse_shards(&err, false, "h", &map, why, sizeof why), -1);
    assert_int_equal(map.count, 0);
    conn_reply r = ARR(bad_shards);
    assert_int_equal(cluster_parse_shards(&r, false, "h", &map, why, sizeof why), -1);
    assert_non_null(strstr(why, "out of bounds"));
    r = (conn_reply)ARR(odd_shards);
    assert_int_equal(cluster_parse_shards(&r, false, "h", &map, why, sizeof why), -1);
    r = (conn_reply)ARR(no_nodes_shards);
    assert_int_equal(cluster_parse_shards(&r, false, "h", &map, why, sizeof why), -1);
    /* The good shard first, then a bad one: the map is freed. */
    static const conn_reply mixed[] = {ARR(shard1), ARR(bad_shard)};
    r = (conn_reply)ARR(mixed);
    assert_int_equal(cluster_parse_shards(&r, false, "h", &map, why, sizeof why), -1);
    assert_null(map.ranges);
}

/* CLUSTER SLOTS: [[first, last, [ip, port, id], [replica...]], ...]. */
static const conn_reply s1_master[] = {STR("10.0.0.1"), INT(7000), STR("id1")};
static const conn_reply s1_replica[] = {STR("10.0.0.2"), INT(7003), STR("id2")};
static const conn_reply s1[] = {INT(0), INT(8191), ARR(s1_master), ARR(s1_replica)};
static const conn_reply s2_master[] = {STR(""), INT(7001)};
static const conn_reply s2[] = {INT(8192), INT(16383), ARR(s2_master)};
static const conn_reply slots[] = {ARR(s1), ARR(s2)};
static const conn_reply s_bad_port[] = {STR("h"), INT(70000)};
static const conn_reply s_bad[] = {INT(0), INT(1), ARR(s_bad_port)};
static const conn_reply slots_bad[] = {ARR(s_bad)};
static const conn_reply s_short[] = {INT(0), INT(1)};
static const conn_reply slots_short[] = {ARR(s_short)};

static void test_slots(void **state)
{
    (void)state;
    conn_reply r = ARR(slots);
    cluster_map map;
    char why[100];
    assert_int_equal(cluster_parse_slots(&r, "seed", &map, why, sizeof why), 0);
    assert_int_equal(map.count, 2);
    assert_int_equal(map.ranges[0].last, 8191);
    assert_string_equal(map.ranges[0].host, "10.0.0.1");
    assert_int_equal(map.ranges[0].port, 7000);
    assert_string_equal(map.ranges[1].host, "seed");
    assert_int_equal(map.ranges[1].port, 7001);
    cluster_map_free(&map);
    r = (conn_reply)ARR(slots_bad);
    assert_int_equal(cluster_parse_slots(&r, "seed", &map, why, sizeof why), -1);
    r = (conn_reply)ARR(slots_short);
    assert_int_equal(cluster_parse_slots(&r, "seed", &map, why, sizeof why), -1);
    conn_reply nil = {.type = CONN_REPLY_NIL};
    assert_int_equal(cluster_parse_slots(&nil, "seed", &map, why, sizeof why), -1);
}

static void test_redirects(void **state)
{
    (void)state;
    bool ask;
    unsigned slot;
    char host[256];
    uint16_t port;
    assert_true(
        cluster_parse_redirect("MOVED 3999 127.0.0.1:6381", "seed", &ask, &slot, host, &port));
    assert_false(ask);
    assert_int_equal(slot, 3999);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 6381);
    assert_true(cluster_parse_redirect("ASK 0 [::1]:7000", "seed", &ask, &slot, host, &port));
    assert_true(ask);
    assert_int_equal(slot, 0);
    assert_string_equal(host, "::1");
    assert_true(cluster_parse_redirect("ASK 16383 ::1:7000", "seed", &ask, &slot, host, &port));
    assert_string_equal(host, "::1");
    assert_true(cluster_parse_redirect("MOVED 12 :7002", "seed", &ask, &slot, host, &port));
    assert_string_equal(host, "seed");
    assert_int_equal(port, 7002);
    static const char *const bad[] = {
        "MOVED",           "MOVED 16384 h:1", "MOVED x h:1",  "MOVED 1 h",    "MOVED 1 h:0",
        "MOVED 1 h:65536", "MOVED 1 h:1x",    "MOVED  1 h:1", "ASKING 1 h:1", "ERR MOVED 1 h:1",
        "TRYAGAIN",        "MOVED -1 h:1",    "MOVED 1 h:-1", "MOVED 1 h: 1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(cluster_parse_redirect(bad[i], "seed", &ask, &slot, host, &port));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_slot),         cmocka_unit_test(test_shards),
        cmocka_unit_test(test_shards_malformed), cmocka_unit_test(test_slots),
        cmocka_unit_test(test_redirects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
