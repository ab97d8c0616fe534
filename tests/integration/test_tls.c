/* test_tls.c — rediss:// against a real redis-server with --tls-port, its
 * certificates made during the test with the openssl command: election,
 * graceful handover, crash takeover and reconnection after a restart, all
 * over TLS on both connections; then every mismatch a user can meet, each
 * with its own code and a message naming the cause (and never the
 * password), and the settings given in the URL or the config alike.
 *
 * One redis-server for the file; a case that needs another certificate or
 * client authentication switches it with CONFIG SET on the plain port
 * (which only the test's own admin connection uses). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "fixture.h"
#include "testutil.h"
#include "tls_certs.h"
#include "tool_proc.h"

static tls_certs certs;
static char ca_url[1000]; /* fx.srv's rediss:// URL with tls_ca_file */

/* Certificates in fx.tmpdir, and one Redis serving TLS with them. */
static int group_setup(void **state)
{
    (void)state;
    const char *tmp = getenv("TMPDIR");
    snprintf(fx.tmpdir, sizeof fx.tmpdir, "%s/leasehold-test_tls-XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(fx.tmpdir)) {
        fx.tmpdir[0] = '\0';
        return -1;
    }
    if (!tls_certs_make(fx.tmpdir, &certs))
        return -1;
    redis_server_opts o = {
        .tls_cert = certs.server_cert, .tls_key = certs.server_key, .tls_ca = certs.ca};
    fx.srv = redis_server_start(&o);
    fx.fresh = true;
    if (!fx.srv)
        return -1;
    snprintf(ca_url, sizeof ca_url, "%s?tls_ca_file=%s", fx.srv->tls_url, certs.ca);
    return 0;
}

/* Runs CONFIG SET name value on fx.srv (plain port); fails the test if
 * refused. */
static void config_set(const char *name, const char *value)
{
    redisReply *r = redis_server_cmd(fx.srv, "CONFIG SET %s %s", name, value);
    assert_non_null(r);
    if (r->type == REDIS_REPLY_ERROR)
        fail_msg("CONFIG SET %s %s: %s", name, value, r->str);
    freeReplyObject(r);
}

/* The server certificate fx.srv presents. */
static void serve_cert(const char *cert)
{
    config_set("tls-cert-file", cert);
}

/* Puts fx.srv back as group_setup made it. */
static int restore_server(void **state)
{
    serve_cert(certs.server_cert);
    config_set("tls-auth-clients", "no");
    return fixture_teardown(state);
}

#define TLS_TEST(f) cmocka_unit_test_setup_teardown(f, fixture_setup, restore_server)

/* How many clients fx.srv has on its TLS port and on its plain port
 * (laddr in CLIENT LIST), the admin connection among the plain ones. */
static void count_clients(int *tls, int *plain)
{
    redisReply *r = redis_server_cmd(fx.srv, "CLIENT LIST");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    char tls_laddr[64], plain_laddr[64];
    snprintf(tls_laddr, sizeof tls_laddr, "laddr=127.0.0.1:%d ", fx.srv->tls_port);
    snprintf(plain_laddr, sizeof plain_laddr, "laddr=127.0.0.1:%d ", fx.srv->port);
    *tls = *plain = 0;
    for (const char *p = r->str; (p = strstr(p, "laddr=")); p++) {
        *tls += strncmp(p, tls_laddr, strlen(tls_laddr)) == 0;
        *plain += strncmp(p, plain_laddr, strlen(plain_laddr)) == 0;
    }
    freeReplyObject(r);
}

/* Two candidates over TLS: an election, then a graceful handover that the
 * events channel (also over TLS) brings well inside the retry interval. */
static void test_election_and_handover(void **state)
{
    (void)state;
    leasehold_config cfg;
    test_config(&cfg, fx.srv->tls_url);
    cfg.tls_ca_file = certs.ca;
    cfg.retry_interval_ms = 5000; /* only the events channel can be this quick */
    fixture_start_candidates(&cfg, "lh:tls:handover", 2);
    event el = fixture_first_leader(&cfg, -1);
    int tls, plain;
    count_clients(&tls, &plain);
    if (tls != 4 || plain != 1)
        fail_msg("%d clients on the TLS port and %d on the plain one; expected 4 (a command and "
                 "an events connection per candidate) and 1 (the test's)",
                 tls, plain);

    uint64_t t0 = test_now_ms();
    assert_int_equal(leasehold_resign(fx.cand[el.who].election), 0);
    event next;
    event_filter f = {EV_ELECTED, -1, el.who, NULL};
    if (!events_wait(fx.q, f, 2000, &next))
        fail_msg("no successor within 2 s of the resignation (retry interval 5 s)");
    printf("# over TLS: successor elected %llu ms after the resignation\n",
           (unsigned long long)(next.at_ms - t0));
    assert_true(next.epoch > el.epoch);
}

/* The leader, a child process, SIGKILLed: another child takes over over
 * TLS; the settings travel in the URL's query. */
static void test_crash_takeover(void **state)
{
    (void)state;
    leasehold_config cfg;
    test_config(&cfg, ca_url);
    fixture_start_children(&cfg, "lh:tls:crash", 2);
    event el = fixture_first_leader(&cfg, -1);
    events_child_stop(fx.child[el.who]);
    fx.child[el.who] = NULL;
    event next;
    event_filter f = {EV_ELECTED, -1, el.who, NULL};
    if (!events_wait(fx.q, f, cfg.lease_ms + cfg.retry_interval_ms + 2000, &next))
        fail_msg("no successor of the killed leader over TLS");
    assert_true(next.epoch > el.epoch);
}

/* Redis restarted (empty): the connections come back over TLS, handshake
 * and all, and an election follows. */
static void test_reconnect_after_restart(void **state)
{
    (void)state;
    leasehold_config cfg;
    test_config(&cfg, ca_url);
    fixture_start_candidates(&cfg, "lh:tls:restart", 1);
    event el = fixture_first_leader(&cfg, 0);
    assert_int_equal(redis_server_restart(fx.srv, false), 0);
    fx.fresh = true;
    event again;
    event_filter f = {EV_ELECTED, 0, -1, NULL};
    uint64_t wait = fixture_first_election_ms(&cfg) + cfg.lease_ms;
    bool seen = false;
    while (!seen && events_wait(fx.q, f, wait, &again))
        seen = again.epoch > el.epoch;
    if (!seen)
        fail_msg("not elected again over TLS after the restart");
    int tls, plain;
    count_clients(&tls, &plain);
    assert_int_equal(tls, 2);
}

/* One way of getting TLS wrong, and what leasehold_client_new() says. */
typedef struct tls_case {
    const char *what;
    const char *server_cert; /* NULL: the good one */
    bool auth_clients;       /* tls-auth-clients yes */
    const char *url;         /* %s: fx.srv's tls_url; %p: its plain port's URL */
    const char *ca, *cert, *key, *server_name;
    bool insecure;
    int code;         /* 0: connects */
    const char *says; /* in the message */
} tls_case;

/* The case's URL: "%s" becomes fx.srv's rediss:// URL, "%p" its plain URL,
 * and "%a" the plain port's address with a password and rediss://. */
static void case_url(const char *pattern, char *out, size_t size)
{
    const char *tls = fx.srv->tls_url, *plain = fx.srv->url;
    char secret_tls_on_plain[200];
    snprintf(secret_tls_on_plain, sizeof secret_tls_on_plain, "rediss://:sekrit@127.0.0.1:%d",
             fx.srv->port);
    size_t n = 0;
    out[0] = '\0';
    for (const char *p = pattern; *p && n + 1 < size; p++) {
        const char *with = NULL;
        if (p[0] == '%' && p[1] == 's')
            with = tls;
        else if (p[0] == '%' && p[1] == 'p')
            with = plain;
        else if (p[0] == '%' && p[1] == 'a')
            with = secret_tls_on_plain;
        if (with) {
            n += (size_t)snprintf(out + n, size - n, "%s", with);
            p++;
        } else {
            out[n++] = *p;
            out[n] = '\0';
        }
    }
}

static void test_tls_mismatches(void **state)
{
    (void)state;
    char ca_query[400], cert_query[1200];
    snprintf(ca_query, sizeof ca_query, "%%s?tls_ca_file=%s", certs.ca);
    snprintf(cert_query, sizeof cert_query,
             "%%s?tls_ca_file=%s&tls_cert_file=%s&tls_key_file=%s&tls_server_name=localhost",
             certs.ca, certs.client_cert, certs.client_key);
    const tls_case cases[] = {
        {"verified: CA from the config", NULL, false, "%s", certs.ca, NULL, NULL, NULL, false, 0,
         NULL},
        {"verified: CA from the URL", NULL, false, ca_query, NULL, NULL, NULL, NULL, false, 0,
         NULL},
        {"verified: CA directory from the config", NULL, false, "%s", NULL, NULL, NULL, NULL, false,
         0, NULL},
        {"the system's trust store does not know our CA", NULL, false, "%s", NULL, NULL, NULL, NULL,
         false, LEASEHOLD_ETLSUNTRUSTED, "the system's trust store"},
        {"a server certificate from another CA", certs.other_ca_cert, false, "%s", certs.ca, NULL,
         NULL, NULL, false, LEASEHOLD_ETLSUNTRUSTED, "another CA"},
        {"...accepted with tls_insecure", certs.other_ca_cert, false, "%s", NULL, NULL, NULL, NULL,
         true, 0, NULL},
        {"a certificate for another host name", certs.wrong_host_cert, false, "%s", certs.ca, NULL,
         NULL, NULL, false, LEASEHOLD_ETLSHOSTNAME, "other.invalid"},
        {"...accepted under that name (tls_server_name)", certs.wrong_host_cert, false, "%s",
         certs.ca, NULL, NULL, "other.invalid", false, 0, NULL},
        {"an expired certificate", certs.expired_cert, false, "%s", certs.ca, NULL, NULL, NULL,
         false, LEASEHOLD_ETLSEXPIRED, "expired on"},
        {"a client certificate required, none given", NULL, true, "%s", certs.ca, NULL, NULL, NULL,
         false, LEASEHOLD_ETLSCLIENTCERT, "tls_cert_file"},
        {"...given", NULL, true, "%s", certs.ca, certs.client_cert, certs.client_key, NULL, false,
         0, NULL},
        {"...given in the URL", NULL, true, cert_query, NULL, NULL, NULL, NULL, false, 0, NULL},
        {"...one from another CA", NULL, true, "%s", certs.ca, certs.other_client_cert,
         certs.other_client_key, NULL, false, LEASEHOLD_ETLSCLIENTCERT, "refused"},
        {"rediss:// on the plain port", NULL, false, "%a", certs.ca, NULL, NULL, NULL, false,
         LEASEHOLD_ETLSPLAIN, "plain Redis"},
        {"redis:// on the TLS port", NULL, false, "redis://127.0.0.1:%s", NULL, NULL, NULL, NULL,
         false, LEASEHOLD_ETLSNEEDED, "rediss://"},
        {"a CA file that does not exist", NULL, false, "%s", "/nonexistent/ca.crt", NULL, NULL,
         NULL, false, LEASEHOLD_ECONFIG, "/nonexistent/ca.crt"},
        {"a key that is not the certificate's", NULL, false, "%s", certs.ca, certs.client_cert,
         certs.server_key, NULL, false, LEASEHOLD_ECONFIG, "does not match"},
        {"the CA given twice, differently", NULL, false, ca_query, certs.client_cert, NULL, NULL,
         NULL, false, LEASEHOLD_ECONFIG, "given twice"},
        {"TLS settings with redis://", NULL, false, "%p", certs.ca, NULL, NULL, NULL, false,
         LEASEHOLD_ECONFIG, "rediss://"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const tls_case *k = &cases[i];
        serve_cert(k->server_cert ? k->server_cert : certs.server_cert);
        config_set("tls-auth-clients", k->auth_clients ? "yes" : "no");
        char url[2000], port[16];
        snprintf(port, sizeof port, "%d", fx.srv->tls_port);
        if (strcmp(k->url, "redis://127.0.0.1:%s") == 0)
            snprintf(url, sizeof url, "redis://127.0.0.1:%s", port);
        else
            case_url(k->url, url, sizeof url);
        leasehold_config cfg;
        test_config(&cfg, url);
        cfg.connect_timeout_ms = 600;
        cfg.tls_ca_file = k->ca;
        if (strstr(k->what, "CA directory"))
            cfg.tls_ca_dir = certs.ca_dir;
        cfg.tls_cert_file = k->cert;
        cfg.tls_key_file = k->key;
        cfg.tls_server_name = k->server_name;
        cfg.tls_insecure = k->insecure;
        leasehold_error err = {0};
        leasehold_client *c = leasehold_client_new(&cfg, &err);
        printf("# %s: %s %s\n", k->what, c ? "connected" : leasehold_errname(err.code),
               c ? "" : err.msg);
        leasehold_client_free(c);
        if (k->code == 0 && !c)
            fail_msg("%s: %s", k->what, err.msg);
        if (k->code == 0)
            continue;
        if (c)
            fail_msg("%s: connected, expected %s", k->what, leasehold_errname(k->code));
        if (err.code != k->code)
            fail_msg("%s: %s (%s), expected %s", k->what, leasehold_errname(err.code), err.msg,
                     leasehold_errname(k->code));
        if (!strstr(err.msg, k->says))
            fail_msg("%s: message \"%s\" does not say \"%s\"", k->what, err.msg, k->says);
        if (strstr(err.msg, "sekrit"))
            fail_msg("%s: message \"%s\" shows the password", k->what, err.msg);
        if (k->code != LEASEHOLD_ECONFIG && !leasehold_error_is_permanent(err.code))
            fail_msg("%s: %s is not permanent", k->what, leasehold_errname(err.code));
    }
}

/* tls_insecure works, and says at start what it costs. */
static void test_insecure_warns(void **state)
{
    (void)state;
    serve_cert(certs.other_ca_cert);
    leasehold_config cfg;
    test_config(&cfg, fx.srv->tls_url);
    cfg.tls_insecure = true;
    fixture_start_candidates(&cfg, "lh:tls:insecure", 1);
    event warn;
    event_filter f = {EV_LOG, 0, -1, NULL};
    bool seen = false;
    while (!seen && events_wait(fx.q, f, 1000, &warn))
        seen = warn.value == LEASEHOLD_LOG_WARN && strstr(warn.text, "tls_insecure") &&
               strstr(warn.text, "not authenticated");
    if (!seen)
        fail_msg("no WARN line about tls_insecure");
    fixture_first_leader(&cfg, 0);
}

/* leasehold status over TLS, the CA in the URL and as an option; with
 * neither, exit 69 and the reason. */
static void test_tool_status(void **state)
{
    (void)state;
    const char *in_url[] = {"status", "--url", ca_url, "--key", "lh:tls:tool", NULL};
    const char *as_option[] = {"status",      "--url",         fx.srv->tls_url, "--key",
                               "lh:tls:tool", "--tls-ca-file", certs.ca,        NULL};
    const char *const *ok[] = {in_url, as_option};
    for (int i = 0; i < 2; i++) {
        proc *p = proc_start("leasehold", NULL, ok[i]);
        expect_exit(p, 3, 10000);
        expect_mentions(p, "status over TLS", "no leader");
        proc_free(p);
    }
    const char *untrusted[] = {"status", "--url", fx.srv->tls_url, "--key", "lh:tls:tool", NULL};
    proc *p = proc_start("leasehold", NULL, untrusted);
    expect_exit(p, 69, 10000);
    expect_mentions(p, "status with an unknown CA", "does not lead to a CA trusted");
    proc_free(p);
}

/* After start, Redis presents a certificate from another CA: the
 * reconnect fails with LEASEHOLD_ETLSUNTRUSTED and the election halts, as for
 * a refused password; with the certificate fixed, leasehold_resume()
 * campaigns again. */
static void test_mismatch_after_start_halts(void **state)
{
    (void)state;
    leasehold_config cfg;
    test_config(&cfg, ca_url);
    fixture_start_candidates(&cfg, "lh:tls:halt", 1);
    event el = fixture_first_leader(&cfg, 0);
    serve_cert(certs.other_ca_cert);
    char laddr[64];
    snprintf(laddr, sizeof laddr, "127.0.0.1:%d", fx.srv->tls_port);
    redisReply *r = redis_server_cmd(fx.srv, "CLIENT KILL LADDR %s", laddr);
    assert_non_null(r);
    freeReplyObject(r);
    event err;
    event_filter f = {EV_ERROR, 0, -1, NULL};
    if (!events_wait(fx.q, f, 5000, &err))
        fail_msg("no error after Redis changed its certificate");
    if (err.value != LEASEHOLD_ETLSUNTRUSTED)
        fail_msg("error %s (%s), expected LEASEHOLD_ETLSUNTRUSTED",
                 leasehold_errname((int)err.value), err.text);
    assert_false(leasehold_is_leader(fx.cand[0].election));
    serve_cert(certs.server_cert);
    assert_int_equal(leasehold_resume(fx.cand[0].election), 0);
    event again;
    event_filter g = {EV_ELECTED, 0, -1, NULL};
    bool seen = false;
    while (!seen && events_wait(fx.q, g, fixture_first_election_ms(&cfg) + 3000, &again))
        seen = again.epoch > el.epoch;
    if (!seen)
        fail_msg("not elected again after leasehold_resume() with the certificate fixed");
}

/* A listener that answers every connection with a plain-text line at once,
 * as a protected-mode Redis does: the TLS handshake sees text and says so. */
static int text_listener = -1;

static void *answer_in_text(void *arg)
{
    (void)arg;
    int c = accept(text_listener, NULL, NULL);
    if (c >= 0) {
        const char line[] = "-DENIED Redis is running in protected mode\r\n";
        ssize_t n = write(c, line, sizeof line - 1);
        (void)n;
        char buf[512];
        while (read(c, buf, sizeof buf) > 0) {
        }
        close(c);
    }
    return NULL;
}

static void test_plain_text_answer(void **state)
{
    (void)state;
    text_listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_int_equal(bind(text_listener, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(text_listener, 1), 0);
    assert_int_equal(getsockname(text_listener, (struct sockaddr *)&a, &len), 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, answer_in_text, NULL), 0);
    char url[128];
    snprintf(url, sizeof url, "rediss://127.0.0.1:%d", ntohs(a.sin_port));
    leasehold_config cfg;
    test_config(&cfg, url);
    cfg.tls_ca_file = certs.ca;
    leasehold_error err = {0};
    leasehold_client *c = leasehold_client_new(&cfg, &err);
    leasehold_client_free(c);
    pthread_join(t, NULL);
    close(text_listener);
    assert_null(c);
    printf("# %s\n", err.msg);
    assert_int_equal(err.code, LEASEHOLD_ETLSPLAIN);
    assert_non_null(strstr(err.msg, "-DENIED Redis is running in protected mo"));
}

/* The host process over TLS, the CA as an option. */
static void test_server(void **state)
{
    (void)state;
    const char *args[] = {"--url",         fx.srv->tls_url, "--region", "tls",
                          "--tls-ca-file", certs.ca,        NULL};
    proc *p = proc_start("server", NULL, args);
    expect_output(p, "This server is now the leader!", 10000);
    test_process_signal(p->pid, SIGTERM);
    expect_exit(p, 0, 10000);
    proc_free(p);
}

int main(int argc, char **argv)
{
    fixture_run_child(argc, argv);
    const struct CMUnitTest tests[] = {
        TLS_TEST(test_election_and_handover),
        TLS_TEST(test_crash_takeover),
        TLS_TEST(test_tls_mismatches),
        TLS_TEST(test_insecure_warns),
        TLS_TEST(test_tool_status),
        TLS_TEST(test_server),
        TLS_TEST(test_reconnect_after_restart),
        TLS_TEST(test_mismatch_after_start_halts),
        TLS_TEST(test_plain_text_answer),
    };
    return cmocka_run_group_tests(tests, group_setup, fixture_group_teardown);
}
