/* test_url.c — url_parse over a table of valid and invalid URLs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "url.h"

/* A URL that parses, and every field it must give. */
typedef struct valid_case {
    const char *in;
    enum url_kind kind;
    const char *host;
    uint16_t port;
    const char *path;
    const char *user;
    const char *password;
    bool has_password;
    int db;
    uint32_t connect_timeout_ms;
    uint32_t command_timeout_ms;
    const char *display;
} valid_case;

static const valid_case valid[] = {
    {"redis://127.0.0.1", URL_TCP, "127.0.0.1", 6379, "", "", "", false, 0, 0, 0,
     "redis://127.0.0.1"},
    {"redis://localhost:6390", URL_TCP, "localhost", 6390, "", "", "", false, 0, 0, 0,
     "redis://localhost:6390"},
    {"redis://redis-1.example_net.com:1/15", URL_TCP, "redis-1.example_net.com", 1, "", "", "",
     false, 15, 0, 0, "redis://redis-1.example_net.com:1/15"},
    {"redis://h:65535/", URL_TCP, "h", 65535, "", "", "", false, 0, 0, 0, "redis://h:65535/"},
    {"redis://:s3cr3t@127.0.0.1:6390", URL_TCP, "127.0.0.1", 6390, "", "", "s3cr3t", true, 0, 0, 0,
     "redis://:***@127.0.0.1:6390"},
    {"redis://alice:s3cr3t@h:7000/2?connect_timeout_ms=500&command_timeout_ms=100", URL_TCP, "h",
     7000, "", "alice", "s3cr3t", true, 2, 500, 100, "redis://alice:***@h:7000/2"},
    {"redis://alice:@h", URL_TCP, "h", 6379, "", "alice", "", true, 0, 0, 0, "redis://alice:@h"},
    {"redis://:@h", URL_TCP, "h", 6379, "", "", "", false, 0, 0, 0, "redis://:@h"},
    {"redis://[::1]:6380/3", URL_TCP, "::1", 6380, "", "", "", false, 3, 0, 0,
     "redis://[::1]:6380/3"},
    {"redis://[2001:db8::7]", URL_TCP, "2001:db8::7", 6379, "", "", "", false, 0, 0, 0,
     "redis://[2001:db8::7]"},
    {"redis://a%40b:p%40ss%3Aw%2Fd@h/2147483647", URL_TCP, "h", 6379, "", "a@b", "p@ss:w/d", true,
     2147483647, 0, 0, "redis://a%40b:***@h/2147483647"},
    {"redis://u:raw@pass@h", URL_TCP, "h", 6379, "", "u", "raw@pass", true, 0, 0, 0,
     "redis://u:***@h"},
    {"REDIS://H?command_timeout_ms=600000", URL_TCP, "H", 6379, "", "", "", false, 0, 0, 600000,
     "REDIS://H"},
    {"unix:///var/run/redis.sock", URL_UNIX, "", 0, "/var/run/redis.sock", "", "", false, 0, 0, 0,
     "unix:///var/run/redis.sock"},
    {"unix:///tmp/my%20redis.sock?db=4&connect_timeout_ms=1&command_timeout_ms=2", URL_UNIX, "", 0,
     "/tmp/my redis.sock", "", "", false, 4, 1, 2, "unix:///tmp/my%20redis.sock"},
};

/* A URL that must fail: words the message must contain, and a secret it
 * must not. */
typedef struct invalid_case {
    const char *in;
    const char *says;
    const char *secret;
} invalid_case;

static const invalid_case invalid[] = {
    {"", "empty", NULL},
    {"localhost:6379", "no scheme", NULL},
    {"http://h:80", "unknown scheme \"http\"", NULL},
    {"rediss://:s3cr3t@h:6380?tls_insecure=maybe", "tls_insecure must be yes or no", "s3cr3t"},
    {"rediss://h?tls_ca_file=", "tls_ca_file is empty", NULL},
    {"rediss://h?tls_ca_file=a&tls_ca_file=b", "\"tls_ca_file\" is given twice", NULL},
    {"rediss://h?tls_ca_fil=a", "known: connect_timeout_ms, command_timeout_ms, tls_ca_file", NULL},
    {"redis://:s3cr3t@h?tls_ca_file=/ca.pem", "\"tls_ca_file\" needs a rediss:// URL", "s3cr3t"},
    {"unix:///r.sock?tls_insecure=yes", "\"tls_insecure\" needs a rediss:// URL", NULL},
    {"rediss://h?tls_cert_file=%zz", "bad percent-encoding in the tls_cert_file", NULL},
    {"redis://", "empty host", NULL},
    {"redis://:s3cr3t@", "empty host", "s3cr3t"},
    {"redis://:6379", "empty host", NULL},
    {"redis://h:", "port \"\" is not a number", NULL},
    {"redis://h:0", "port 0 is out of range", NULL},
    {"redis://h:65536", "port 65536 is out of range", NULL},
    {"redis://h:99999999999999999999999", "out of range", NULL},
    {"redis://h:63x9", "port \"63x9\" is not a number", NULL},
    {"redis://h:-1", "port \"-1\" is not a number", NULL},
    {"redis://h/abc", "database \"abc\" is not a non-negative whole number", NULL},
    {"redis://h/-1", "database \"-1\"", NULL},
    {"redis://h/2147483648", "database 2147483648 is out of range", NULL},
    {"redis://h/0/extra", "database \"0/extra\"", NULL},
    {"redis://h?db=1", "unknown query parameter \"db\"", NULL},
    {"redis://h?timeout=5", "unknown query parameter \"timeout\"", NULL},
    {"redis://h?connect_timeout_ms=0", "connect_timeout_ms must be", NULL},
    {"redis://h?command_timeout_ms=abc", "command_timeout_ms must be", NULL},
    {"redis://h?command_timeout_ms=600001", "from 1 to 600000", NULL},
    {"redis://h?command_timeout_ms=18446744073709551617", "command_timeout_ms must be", NULL},
    {"redis://h?command_timeout_ms=", "not \"\"", NULL},
    {"redis://h?command_timeout_ms=5&command_timeout_ms=6", "given twice", NULL},
    {"redis://h?", "empty query", NULL},
    {"redis://h?command_timeout_ms=5&", "empty query parameter", NULL},
    {"redis://h?command_timeout_ms", "has no value", NULL},
    {"redis://u:s3%zzcr3t@h", "bad percent-encoding in the password", "s3"},
    {"redis://u:s3cr3t%4@h", "bad percent-encoding in the password", "s3cr3t"},
    {"redis://u%4x:s3cr3t@h", "bad percent-encoding in the user name", "s3cr3t"},
    {"redis://u:s3cr%00t@h", "percent-encoded NUL", "s3cr"},
    {"redis://alice@h", "user \"alice\" is given without a password", NULL},
    {"redis://@h", "nothing before '@'", NULL},
    {"redis://[::1:6379", "never closed", NULL},
    {"redis://[::1]x", "unexpected \"x\" after the IPv6 address", NULL},
    {"redis://[]:6379", "empty host", NULL},
    {"redis://[zz::1]", "is not an IPv6 address", NULL},
    {"redis://::1", "empty host", NULL},
    {"redis://h%41", "contains '%'", NULL},
    {"redis://h:6379#frag", "port \"6379#frag\" is not a number", NULL},
    {"redis://:s3cr3t@h:6379 ", "contains a space at character 23", "s3cr3t"},
    {"redis://:s3cr3t@h:63\n79", "control character 0x0a at character 21", "s3cr3t"},
    {"redis://h\t", "control character 0x09", NULL},
    {"unix://", "no socket path", NULL},
    {"unix://localhost/tmp/redis.sock", "take no host", NULL},
    {"unix://relative/redis.sock", "take no host", NULL},
    {"unix://:s3cr3t@/tmp/redis.sock", "take no user or password", "s3cr3t"},
    {"unix:///tmp/redis.sock?db=x", "database \"x\"", NULL},
    {"unix:///tmp/redis.sock?db=1&db=2", "given twice", NULL},
    {"unix:///tmp/redis.sock?password=x", "unknown query parameter \"password\"", NULL},
    {"unix:///tmp/%zz.sock", "bad percent-encoding in the socket path at \"%zz\"", NULL},
    {"unix:///tmp/a%00b", "percent-encoded NUL", NULL},
    {"redis+sentinel://h:26379", "no master name", NULL},
    {"redis+sentinel://h:26379/", "no master name", NULL},
    {"redis+sentinel://:s3cr3t@h,,g/m", "empty Sentinel address", "s3cr3t"},
    {"redis+sentinel://h,/m", "empty Sentinel address", NULL},
    {"redis+sentinel:///m", "empty Sentinel address", NULL},
    {"redis+sentinel://h:0/m", "port 0 is out of range", NULL},
    {"redis+sentinel://h/m%20x", "master name contains a space", NULL},
    {"redis+sentinel://h/m/x", "database \"x\"", NULL},
    {"redis+sentinel://h/m?db=2", "gives the database after the master name", NULL},
    {"redis+sentinel://h/m?sentinel_tls=maybe", "sentinel_tls must be yes or no", NULL},
    {"redis+sentinel://h/m?tls_ca_file=/ca.pem", "need rediss+sentinel:// or sentinel_tls=yes",
     NULL},
    {"redis://h?sentinel_tls=yes", "unknown query parameter \"sentinel_tls\"", NULL},
    {"redis+sentinel://a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q/m", "more than 16 Sentinels", NULL},
    {"redis+cluster://h/0", "names no database", NULL},
    {"redis+cluster://h?db=1", "only database 0", NULL},
    {"redis+cluster://:s3cr3t@h,,g", "empty seed node address", "s3cr3t"},
    {"redis+cluster://", "empty seed node address", NULL},
    {"redis+cluster://h:70000", "out of range", NULL},
    {"redis+cluster://h?tls_ca_file=/ca.pem", "needs a rediss:// URL", NULL},
    {"redis+cluster://h?sentinel_tls=yes", "unknown query parameter \"sentinel_tls\"", NULL},
    {"redis+cluster://a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q", "more than 16 seed nodes", NULL},
    {"redis+clusters://h", "unknown scheme \"redis+clusters\"", NULL},
};

/* redis+sentinel:// and rediss+sentinel://: the Sentinels, the master name,
 * the database, which side speaks TLS, and the URLs made from them. */
static void test_sentinel_urls(void **state)
{
    (void)state;
    url u, m, s;
    leasehold_error err = {0};
    assert_int_equal(url_parse("redis+sentinel://:pw@10.0.0.1,[::1]:26380,s3.lan:7/my%2Dmaster/2"
                               "?command_timeout_ms=100",
                               &u, &err),
                     0);
    assert_true(u.sentinel);
    assert_false(u.tls);
    assert_int_equal(u.host_count, 3);
    assert_string_equal(u.hosts[0].host, "10.0.0.1");
    assert_int_equal(u.hosts[0].port, 26379);
    assert_string_equal(u.hosts[1].host, "::1");
    assert_int_equal(u.hosts[1].port, 26380);
    assert_string_equal(u.hosts[2].host, "s3.lan");
    assert_int_equal(u.hosts[2].port, 7);
    assert_string_equal(u.master_name, "my-master");
    assert_int_equal(u.db, 2);
    assert_string_equal(u.password, "pw");
    assert_int_equal(u.command_timeout_ms, 100);
    assert_int_equal(u.sentinel_tls, -1);
    assert_string_equal(u.display,
                        "redis+sentinel://:***@10.0.0.1,[::1]:26380,s3.lan:7/my%2Dmaster/2");

    url_sentinel_master(&u, "10.0.0.9", 6380, &m);
    assert_false(m.sentinel);
    assert_string_equal(m.host, "10.0.0.9");
    assert_int_equal(m.port, 6380);
    assert_string_equal(m.password, "pw");
    assert_int_equal(m.db, 2);
    assert_string_equal(m.display, "redis://10.0.0.9:6380 (master my-master)");

    url_sentinel_node(&u, 1, NULL, "spw", &s);
    assert_string_equal(s.host, "::1");
    assert_int_equal(s.port, 26380);
    assert_string_equal(s.password, "spw");
    assert_true(s.has_password);
    assert_int_equal(s.db, 0);
    assert_false(s.tls);
    assert_string_equal(s.display, "Sentinel [::1]:26380");
    url_sentinel_node(&u, 0, NULL, NULL, &s);
    assert_false(s.has_password);

    /* TLS: the master's by the scheme, the Sentinels' as the master unless
     * sentinel_tls says otherwise; the TLS parameters serve both. */
    assert_int_equal(url_parse("rediss+sentinel://h/m?tls_ca_file=/ca.pem", &u, &err), 0);
    assert_true(u.tls);
    assert_string_equal(u.tls_opt.ca_file, "/ca.pem");
    url_sentinel_node(&u, 0, NULL, NULL, &s);
    assert_true(s.tls);
    assert_int_equal(url_parse("rediss+sentinel://h/m?sentinel_tls=no", &u, &err), 0);
    url_sentinel_node(&u, 0, NULL, NULL, &s);
    assert_false(s.tls);
    url_sentinel_master(&u, "h2", 1, &m);
    assert_true(m.tls);
    assert_string_equal(m.display, "rediss://h2:1 (master m)");
    assert_int_equal(
        url_parse("redis+sentinel://h/m?tls_ca_file=/ca.pem&sentinel_tls=yes", &u, &err), 0);
    url_sentinel_node(&u, 0, NULL, NULL, &s);
    assert_true(s.tls);
    url_sentinel_master(&u, "h2", 1, &m);
    assert_false(m.tls);
}

/* redis+cluster:// and rediss+cluster://: the seed nodes, and each node's
 * URL made from them with the credentials, timeouts and TLS settings. */
static void test_cluster_urls(void **state)
{
    (void)state;
    url u, n;
    leasehold_error err = {0};
    assert_int_equal(url_parse("redis+cluster://u:pw@10.0.0.1:7000,[::1]:7001,c.lan/"
                               "?connect_timeout_ms=50",
                               &u, &err),
                     0);
    assert_true(u.cluster);
    assert_false(u.sentinel);
    assert_false(u.tls);
    assert_int_equal(u.host_count, 3);
    assert_string_equal(u.hosts[0].host, "10.0.0.1");
    assert_int_equal(u.hosts[0].port, 7000);
    assert_string_equal(u.hosts[1].host, "::1");
    assert_int_equal(u.hosts[1].port, 7001);
    assert_string_equal(u.hosts[2].host, "c.lan");
    assert_int_equal(u.hosts[2].port, 6379);
    assert_int_equal(u.connect_timeout_ms, 50);
    assert_string_equal(u.display, "redis+cluster://u:***@10.0.0.1:7000,[::1]:7001,c.lan/");

    url_cluster_node(&u, "10.0.0.9", 7005, &n);
    assert_false(n.cluster);
    assert_int_equal(n.host_count, 0);
    assert_string_equal(n.host, "10.0.0.9");
    assert_int_equal(n.port, 7005);
    assert_string_equal(n.user, "u");
    assert_string_equal(n.password, "pw");
    assert_int_equal(n.connect_timeout_ms, 50);
    assert_string_equal(n.display, "redis://10.0.0.9:7005 (cluster node)");

    assert_int_equal(url_parse("rediss+cluster://h1,h2?tls_ca_file=/ca.pem", &u, &err), 0);
    assert_true(u.cluster);
    assert_true(u.tls);
    url_cluster_node(&u, "::1", 7000, &n);
    assert_true(n.tls);
    assert_string_equal(n.tls_opt.ca_file, "/ca.pem");
    assert_string_equal(n.display, "rediss://[::1]:7000 (cluster node)");
}

/* The TLS half of rediss:// URLs: the scheme, and each query parameter. */
static void test_tls_urls(void **state)
{
    (void)state;
    url u;
    leasehold_error err = {0};
    assert_int_equal(url_parse("redis://h", &u, &err), 0);
    assert_false(u.tls);
    assert_int_equal(url_parse("rediss://:pw@h:6380/1", &u, &err), 0);
    assert_true(u.tls);
    assert_int_equal(u.kind, URL_TCP);
    assert_int_equal(u.port, 6380);
    assert_int_equal(u.db, 1);
    assert_string_equal(u.display, "rediss://:***@h:6380/1");
    assert_int_equal(u.tls_opt.insecure, -1);
    assert_string_equal(u.tls_opt.ca_file, "");
    assert_int_equal(url_parse("RedisS://h?tls_ca_file=/etc/ca%20x.pem&tls_ca_dir=/etc/ssl/certs&"
                               "tls_cert_file=/c.pem&tls_key_file=/k.pem&tls_server_name=redis.lan&"
                               "tls_insecure=no&connect_timeout_ms=5",
                               &u, &err),
                     0);
    assert_string_equal(u.tls_opt.ca_file, "/etc/ca x.pem");
    assert_string_equal(u.tls_opt.ca_dir, "/etc/ssl/certs");
    assert_string_equal(u.tls_opt.cert_file, "/c.pem");
    assert_string_equal(u.tls_opt.key_file, "/k.pem");
    assert_string_equal(u.tls_opt.server_name, "redis.lan");
    assert_int_equal(u.tls_opt.insecure, 0);
    assert_int_equal(u.connect_timeout_ms, 5);
    assert_string_equal(u.display, "RedisS://h");
    assert_int_equal(url_parse("rediss://h?tls_insecure=yes", &u, &err), 0);
    assert_int_equal(u.tls_opt.insecure, 1);
}

static void test_valid_urls(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof valid / sizeof valid[0]; i++) {
        const valid_case *c = &valid[i];
        url u;
        leasehold_error err = {.code = 1, .msg = "stale"};
        int rc = url_parse(c->in, &u, &err);
        if (rc != 0)
            fail_msg("%s: %s", c->in, err.msg);
        assert_int_equal(err.code, 0);
        assert_int_equal(u.kind, c->kind);
        assert_string_equal(u.host, c->host);
        assert_int_equal(u.port, c->port);
        assert_string_equal(u.path, c->path);
        assert_string_equal(u.user, c->user);
        assert_string_equal(u.password, c->password);
        assert_int_equal(u.has_password, c->has_password);
        assert_int_equal(u.db, c->db);
        assert_int_equal(u.connect_timeout_ms, c->connect_timeout_ms);
        assert_int_equal(u.command_timeout_ms, c->command_timeout_ms);
        assert_string_equal(u.display, c->display);
        if (c->password[0])
            assert_null(strstr(u.display, c->password));
    }
}

static void test_invalid_urls(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
        const invalid_case *c = &invalid[i];
        url u;
        leasehold_error err = {0};
        int rc = url_parse(c->in, &u, &err);
        if (rc != LEASEHOLD_EURL)
            fail_msg("%s: returned %d, not LEASEHOLD_EURL", c->in, rc);
        assert_int_equal(err.code, LEASEHOLD_EURL);
        if (!strstr(err.msg, c->says))
            fail_msg("%s: message \"%s\" does not say \"%s\"", c->in, err.msg, c->says);
        if (c->secret && strstr(err.msg, c->secret))
            fail_msg("%s: message \"%s\" shows the password", c->in, err.msg);
        /* The message names the URL: it quotes at least its scheme, or its
         * start when there is none. */
        if (c->in[0] && !strstr(err.msg, "invalid URL \""))
            fail_msg("%s: message \"%s\" does not name the URL", c->in, err.msg);
    }
}

static void test_null_and_missing_err(void **state)
{
    (void)state;
    url u;
    leasehold_error err = {0};
    assert_int_equal(url_parse(NULL, &u, &err), LEASEHOLD_EURL);
    assert_non_null(strstr(err.msg, "NULL"));
    assert_int_equal(url_parse("redis://h:0", &u, NULL), LEASEHOLD_EURL);
    assert_int_equal(url_parse("redis://h", &u, NULL), 0);
}

static void test_unix_path_limits(void **state)
{
    (void)state;
    char in[300], want[200];
    url u;
    leasehold_error err = {0};
    /* sun_path holds 108 bytes with the NUL: 107 fit, 108 do not. */
    memset(want, 'p', 107);
    want[0] = '/';
    want[107] = '\0';
    snprintf(in, sizeof in, "unix://%s", want);
    assert_int_equal(url_parse(in, &u, &err), 0);
    assert_string_equal(u.path, want);
    snprintf(in, sizeof in, "unix://%sp", want);
    assert_int_equal(url_parse(in, &u, &err), LEASEHOLD_EURL);
    assert_non_null(strstr(err.msg, "socket path is too long"));
}

/* A long URL is cut in the message so that the problem stays readable. */
static void test_long_url_keeps_problem_visible(void **state)
{
    (void)state;
    char in[1200];
    url u;
    leasehold_error err = {0};
    memset(in, 'h', sizeof in);
    memcpy(in, "redis://", 8);
    snprintf(in + 1000, 200, ":0");
    assert_int_equal(url_parse(in, &u, &err), LEASEHOLD_EURL);
    assert_non_null(strstr(err.msg, "host is too long"));

    char huge[3000];
    memset(huge, 'h', sizeof huge - 1);
    huge[sizeof huge - 1] = '\0';
    memcpy(huge, "redis://", 8);
    assert_int_equal(url_parse(huge, &u, &err), LEASEHOLD_EURL);
    assert_non_null(strstr(err.msg, "longer than"));
}

/* A long password never leaks, even when the message is cut. */
static void test_password_hidden_everywhere(void **state)
{
    (void)state;
    const char *bad[] = {"redis://u:topsecret@h:0",    "redis://u:topsecret@",
                         "redis://u:topsecret@[::1",   "redis://u:topsecret@h?x=1",
                         "redis://u:top/secret@h:bad", "rediss://u:topsecret@h?tls_insecure=x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        url u;
        leasehold_error err = {0};
        assert_int_equal(url_parse(bad[i], &u, &err), LEASEHOLD_EURL);
        if (strstr(err.msg, "topsecret") || strstr(err.msg, "secret"))
            fail_msg("%s: message \"%s\" shows the password", bad[i], err.msg);
        assert_non_null(strstr(err.msg, "***"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_urls),
        cmocka_unit_test(test_tls_urls),
        cmocka_unit_test(test_sentinel_urls),
        cmocka_unit_test(test_cluster_urls),
        cmocka_unit_test(test_invalid_urls),
        cmocka_unit_test(test_null_and_missing_err),
        cmocka_unit_test(test_unix_path_limits),
        cmocka_unit_test(test_long_url_keeps_problem_visible),
        cmocka_unit_test(test_password_hidden_everywhere),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
