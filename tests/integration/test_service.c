/* test_service.c — leasehold_serve: a service runs only while leader, is
 * cancelled through its token on loss, resigns by returning, is reported
 * when it overruns its stop timeout, and is stopped by leasehold_client_free. */
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cmocka.h>

#include "fixture.h"
#include "testutil.h"

/* What a service does; every service reports through its candidate's sink. */
typedef enum behaviour {
    SLEEP_ON_TOKEN,   /* leasehold_token_sleep until cancelled */
    POLL_ON_FD,       /* poll() on leasehold_token_fd until readable */
    RETURN_SOON,      /* return after 200 ms while still leader */
    IGNORE_TOKEN,     /* ignore the token until the test releases it */
    IGNORE_THEN_CALL, /* as IGNORE_TOKEN, then call the election through the token */
} behaviour;

/* Notes a service emits: EV_NOTE with value one of these. */
enum note {
    NOTE_STARTED = 1, /* epoch: token epoch; text: "leader" if is_leader() at start */
    NOTE_STOPPED = 2, /* text: how it noticed ("sleep", "fd", "returned", "released") */
    NOTE_OVERLAP = 3, /* another service was running at the same time */
};

/* What the tests share with their services, besides the fixture. */
typedef struct service_state {
    behaviour how;       /* what every service of the test does */
    atomic_int running;  /* services running now, across candidates */
    atomic_bool release; /* lets an IGNORE_TOKEN service return */
    atomic_bool stall;   /* the stalling callback blocks the I/O thread... */
    atomic_bool stalled; /* ...and is blocking it now */
    bool paused;         /* the test SIGSTOPped Redis: teardown resumes it */
} service_state;

static service_state svc;

static void note(event_sink *sink, enum note what, uint64_t epoch, const char *text)
{
    event ev = {.kind = EV_NOTE, .value = what, .epoch = epoch, .has_text = text != NULL};
    snprintf(ev.text, sizeof ev.text, "%s", text ? text : "");
    events_emit(sink, &ev);
}

static int service(leasehold_token *t, void *arg)
{
    event_sink *sink = arg;
    uint64_t epoch = leasehold_token_epoch(t);
    if (atomic_fetch_add(&svc.running, 1) != 0)
        note(sink, NOTE_OVERLAP, epoch, NULL);
    bool leader = leasehold_is_leader(leasehold_token_election(t));
    note(sink, NOTE_STARTED, epoch, leader ? "leader" : "follower");
    const char *how = "";
    switch (svc.how) {
    case SLEEP_ON_TOKEN:
        while (leasehold_token_sleep(t, 10000)) {
        }
        how = leasehold_token_cancelled(t) ? "sleep" : "sleep-uncancelled";
        break;
    case POLL_ON_FD: {
        struct pollfd p = {leasehold_token_fd(t), POLLIN, 0};
        while (poll(&p, 1, 10000) == 0) {
        }
        uint64_t t0 = test_now_ms();
        bool slept = leasehold_token_sleep(t, 1000);
        how = !slept && test_now_ms() - t0 < 100 && leasehold_token_cancelled(t) ? "fd"
                                                                                 : "fd-but-sleep";
        break;
    }
    case RETURN_SOON:
        how = leasehold_token_sleep(t, 200) ? "returned" : "cancelled";
        break;
    case IGNORE_TOKEN:
        while (!atomic_load(&svc.release))
            test_sleep_ms(10);
        how = "released";
        break;
    case IGNORE_THEN_CALL: {
        while (!atomic_load(&svc.release))
            test_sleep_ms(10);
        /* The election may be freed by now: every call must still be safe. */
        leasehold_election *e = leasehold_token_election(t);
        char what[200];
        snprintf(what, sizeof what, "leader=%d epoch=%llu resign=%s cancelled=%d key=%s",
                 leasehold_is_leader(e), (unsigned long long)leasehold_epoch(e),
                 leasehold_errname(leasehold_resign(e)), leasehold_token_cancelled(t),
                 leasehold_key(e));
        atomic_fetch_sub(&svc.running, 1);
        note(sink, NOTE_STOPPED, epoch, what);
        return 0;
    }
    }
    atomic_fetch_sub(&svc.running, 1);
    note(sink, NOTE_STOPPED, epoch, how);
    return 0;
}

static int setup(void **state)
{
    atomic_store(&svc.running, 0);
    atomic_store(&svc.release, false);
    atomic_store(&svc.stall, false);
    atomic_store(&svc.stalled, false);
    svc.paused = false;
    return fixture_setup(state);
}

static int teardown(void **state)
{
    atomic_store(&svc.release, true);
    atomic_store(&svc.stall, false);
    if (svc.paused)
        redis_server_resume(fx.srv);
    return fixture_teardown(state);
}

/* Starts n candidates for key, each serving with `how`. */
static void start_candidates(const leasehold_config *cfg, const char *key, int n, behaviour how)
{
    svc.how = how;
    fixture_serve_candidates(cfg, key, n, service);
}

static event_filter note_of(int who)
{
    return events_of(EV_NOTE, who);
}

/* Waits for candidate `who`'s next note and checks it is `what`. */
static event expect_note(int who, enum note what, uint64_t max_ms)
{
    event ev;
    if (!events_wait(fx.q, note_of(who), max_ms, &ev))
        fail_msg("candidate %d: no service note %d", who, what);
    if (ev.value != what)
        fail_msg("candidate %d: service note %lld, expected %d", who, ev.value, what);
    return ev;
}

/* Overwrites key with a foreign token, so the leader loses at its next
 * renewal; returns when it was sent. */
static uint64_t steal_key(const char *key)
{
    uint64_t t0 = test_now_ms();
    redisReply *r = redis_server_cmd(fx.srv, "SET %s %s PX %d", key, "thief/1", 1500);
    assert_non_null(r);
    freeReplyObject(r);
    return t0;
}

/* The service starts when elected, as leader, with the term's epoch; it
 * runs alone; on loss its leasehold_token_sleep returns false at once. */
static void test_runs_only_while_leader(void **state)
{
    (void)state;
    leasehold_config cfg;
    test_config(&cfg, fx.srv->url);
    start_candidates(&cfg, "lh:service:only-leader", 2, SLEEP_ON_TOKEN);
    event el = fixture_first_leader(&cfg, -1);
    event st = expect_note(el.who, NOTE_STARTED, 1000);
    assert_string_equal(st.text, "leader");
    assert_int_equal(st.epoch, el.epoch);
    assert_int_equal(leasehold_epoch(fx.cand[el.who].election), el.epoch);
    assert_true(st.at_ms >= el.at_ms);

    uint64_t t0 = steal_key("lh:service:only-leader");
    event rv;
    assert_true(events_wait(fx.q, events_of(EV_REVOKED, el.who), 1000, &rv));
    event sp = expect_note(el.who, NOTE_STOPPED, 1000);
    assert_string_equal(sp.text, "sleep");
    if (sp.at_ms - t0 >= test_ms(cfg.renew_interval_ms + 400))
        fail_msg("service stopped %llu ms after the key was stolen",
                 (unsigned long long)(sp.at_ms - t0));
    /* (The token is cancelled before the revoked callback runs, so the two
     * events may come in either order.) */

    /* After the stolen key expires someone leads again, with a new service. */
    event el2;
    assert_true(
        events_wait(fx.q, events_of(EV_ELECTED, -1), 1500 + cfg.retry_interval_ms + 1000, &el2));
    assert_true(el2.epoch > el.epoch);
    event st2 = expect_note(el2.who, NOTE_STARTED, 1000);
    assert_int_equal(st2.epoch, el2.epoch);
    assert_int_equal(events_count(fx.q, events_of(EV_NOTE, -1)), 0);
}

/* A poll()-based service: the token's fd becomes readable on loss, and
 * leasehold_token_sleep then returns false at once. */
static void test_token_fd_readable_on_loss(void **state)
{
    (void)state;
    leasehold_config cfg;
    test_config(&cfg, fx.srv->url);
    start_candidates(&cfg, "lh:service:fd", 1, POLL_ON_FD);
    fixture_first_leader(&cfg, 0);
    expect_note(0, NOTE_STARTED, 1000);
    uint64_t t0 = steal_key("lh:service:fd");
    event sp = expect_note(0, NOTE_STOPPED, 1000);
    assert_string_equal(sp.text, "fd");
    if (sp.at_ms - t0 >= test_ms(cfg.renew_interval_ms + 400))
        fail_msg("fd readable %llu ms after the key was stolen",
                 (unsigned long long)(sp.at_ms - t0));
}

/* A service that returns while leader: the election resigns, the other
 * candidate leads, and the first campaigns again and leads later. */
static void test_returning_service_resigns(void **state)
{
    (void)state;
    leasehold_config cfg;
    test_config(&cfg, fx.srv->url);
    start_candidates(&cfg, "lh:service:return", 2, RETURN_SOON);
    event el = fixture_first_leader(&cfg, -1);
    int a = el.who, b = 1 - el.who;
    expect_note(a, NOTE_STARTED, 1000);
    event sp = expect_note(a, NOTE_STOPPED, 1000);
    assert_string_equal(sp.text, "returned");
    event rv;
    assert_true(events_wait(fx.q, events_of(EV_REVOKED, a), 1000, &rv));
    assert_int_equal(rv.value, LEASEHOLD_RESIGNED);
    event next;
    assert_true(events_wait(fx.q, events_of(EV_ELECTED, -1), cfg.lease_ms / 2, &next));
    if (next.who != b)
        fail_msg("the resigning candidate %d was elected again before %d", a, b);
    assert_true(next.epoch > el.epoch);
    /* b's service returns too, and a leads again: it kept campaigning. */
    event again;
    assert_true(events_wait(fx.q, events_of(EV_ELECTED, a), 2000, &again));
    assert_true(again.epoch > next.epoch);
    event_filter overlap = {EV_NOTE, -1, -1, NULL};
    event ev;
    while (events_wait(fx.q, overlap, 0, &ev))
        assert_int_not_equal(ev.value, NOTE_OVERLAP);
}

/* A service that ignores its token past stop_timeout_ms: the overrun is
 * reported (error callback and a warning in the log), and no new term
 * starts until the service returns. */
static void test_overrunning_service(void **state)
{
    (void)state;
    leasehold_config cfg;
    test_config(&cfg, fx.srv->url);
    cfg.stop_timeout_ms = 300;
    start_candidates(&cfg, "lh:service:overrun", 1, IGNORE_TOKEN);
    fixture_first_leader(&cfg, 0);
    expect_note(0, NOTE_STARTED, 1000);

    steal_key("lh:service:overrun");
    assert_true(events_wait(fx.q, events_of(EV_REVOKED, 0), 1000, NULL));
    event err;
    if (!events_wait(fx.q, events_of(EV_ERROR, 0), cfg.stop_timeout_ms + 1000, &err))
        fail_msg("no error callback reported the overrun");
    printf("# overrun reported: %s: %s\n", leasehold_errname((int)err.value), err.text);
    bool warned = false;
    event line;
    while (!warned && events_wait(fx.q, events_of(EV_LOG, 0), 0, &line))
        warned = line.value <= LEASEHOLD_LOG_WARN;
    assert_true(warned);

    /* The key is free now, yet no term may start while the service runs
     * (a lower bound: not scaled). */
    redisReply *r = redis_server_cmd(fx.srv, "DEL %s", "lh:service:overrun");
    assert_non_null(r);
    freeReplyObject(r);
    assert_false(events_wait(fx.q, events_of(EV_ELECTED, 0), 1500, NULL));
    atomic_store(&svc.release, true);
    event sp = expect_note(0, NOTE_STOPPED, 1000);
    assert_string_equal(sp.text, "released");
    event el2;
    assert_true(events_wait(fx.q, events_of(EV_ELECTED, 0), cfg.retry_interval_ms + 1500, &el2));
    assert_true(el2.at_ms >= sp.at_ms);
}

/* leasehold_client_free stops the service before it returns and releases
 * the lease, so the other candidate leads well before the TTL runs out. */
static void test_client_free_stops_and_releases(void **state)
{
    (void)state;
    leasehold_config cfg;
    test_config(&cfg, fx.srv->url);
    cfg.lease_ms = 2000;
    cfg.renew_deadline_ms = 1500;
    start_candidates(&cfg, "lh:service:free", 2, SLEEP_ON_TOKEN);
    event el = fixture_first_leader(&cfg, -1);
    expect_note(el.who, NOTE_STARTED, 1000);

    uint64_t t0 = test_now_ms();
    candidate_stop(&fx.cand[el.who]);
    uint64_t freed = test_now_ms();
    /* Its service had returned before leasehold_client_free did. */
    event sp;
    assert_true(events_wait(fx.q, note_of(el.who), 0, &sp));
    assert_int_equal(sp.value, NOTE_STOPPED);
    assert_true(sp.at_ms <= freed);
    event next;
    event_filter f = {EV_ELECTED, -1, el.who, NULL};
    assert_true(events_wait(fx.q, f, cfg.lease_ms, &next));
    if (next.at_ms - t0 >= test_ms(cfg.lease_ms / 2))
        fail_msg("successor after leasehold_client_free took %llu ms",
                 (unsigned long long)(next.at_ms - t0));
}

/* An observer's leader_changed that blocks the I/O thread while svc.stall is
 * set (for at most 20 s, scaled), as a slow callback of another election on
 * the same client would. */
static void stalling_leader_changed(leasehold_election *e, const char *holder, uint64_t epoch,
                                    void *arg)
{
    (void)e, (void)holder, (void)epoch, (void)arg;
    if (!atomic_load(&svc.stall))
        return;
    atomic_store(&svc.stalled, true);
    uint64_t end = test_now_ms() + test_ms(20000);
    while (atomic_load(&svc.stall) && test_now_ms() < end)
        test_sleep_ms(5);
    atomic_store(&svc.stalled, false);
}

static bool is_stalled(void *arg)
{
    (void)arg;
    return atomic_load(&svc.stalled);
}

/* The token's fd turns readable at the end of the term by itself, while the
 * I/O thread is stuck in a slow callback of another election on the same
 * client and cannot cancel the token (issue 8, item 4). */
static void test_token_fd_readable_at_valid_until(void **state)
{
    (void)state;
    leasehold_config cfg;
    test_config(&cfg, fx.srv->url);
    start_candidates(&cfg, "lh:service:stall", 1, POLL_ON_FD);
    fixture_first_leader(&cfg, 0);
    expect_note(0, NOTE_STARTED, 1000);
    leasehold_callbacks cb = {.leader_changed = stalling_leader_changed};
    leasehold_error err;
    leasehold_election *watch =
        leasehold_observe(fx.cand[0].client, "lh:service:stall-other", &cb, NULL, &err);
    if (!watch)
        fail_msg("leasehold_observe: %s", err.msg);

    /* A forged event makes the observer's callback run, and stall; it is
     * published until it does (the subscription may not be up yet). */
    atomic_store(&svc.stall, true);
    uint64_t give_up = test_now_ms() + test_ms(5000);
    while (!atomic_load(&svc.stalled) && test_now_ms() < give_up) {
        redisReply *r = redis_server_cmd(fx.srv, "PUBLISH %s %s", "{lh:service:stall-other}:events",
                                         "elected 7 someone/1");
        assert_non_null(r);
        freeReplyObject(r);
        wait_until(is_stalled, NULL, 100);
    }
    assert_true(atomic_load(&svc.stalled));
    /* Nothing renews the term while the I/O thread is stuck. */
    uint64_t now = leasehold_now_ms(), mono = test_now_ms();
    uint64_t deadline = leasehold_term_deadline_ms(fx.cand[0].election);
    assert_true(deadline > 0);
    uint64_t left_ms = deadline > now ? deadline - now : 0;
    printf("# I/O thread stalled with %llu ms of the term left\n", (unsigned long long)left_ms);

    event sp;
    if (!events_wait(fx.q, note_of(0), left_ms + 1000, &sp))
        fail_msg("the token's fd was not readable %llu ms after the term's end",
                 (unsigned long long)test_ms(1000));
    bool still_stalled = atomic_load(&svc.stalled);
    atomic_store(&svc.stall, false);
    assert_int_equal(sp.value, NOTE_STOPPED);
    assert_string_equal(sp.text, "fd");
    assert_true(still_stalled); /* the I/O thread had not cancelled the token */
    /* Not before the term's end (1 ms for converting between the clocks). */
    if (sp.at_ms + 1 < mono + left_ms)
        fail_msg("the fd turned readable %llu ms before the term's end",
                 (unsigned long long)(mono + left_ms - sp.at_ms));
}

/* A service that ignores its cancellation outlives its election, freed by
 * leasehold_election_free() (free_client false) or leasehold_client_free():
 * what it then calls through its token is safe and says "not leader" (issue
 * 8, item 9; ASan catches a use after free). */
static void abandoned_service_outlives(bool free_client)
{
    leasehold_config cfg;
    test_config(&cfg, fx.srv->url);
    cfg.stop_timeout_ms = 300;
    start_candidates(&cfg, free_client ? "lh:service:abandon-c" : "lh:service:abandon-e", 1,
                     IGNORE_THEN_CALL);
    fixture_first_leader(&cfg, 0);
    expect_note(0, NOTE_STARTED, 1000);
    if (free_client) {
        candidate_stop(&fx.cand[0]);
    } else {
        leasehold_election_free(fx.cand[0].election);
        fx.cand[0].election = NULL;
    }
    bool abandoned = false;
    event line;
    while (!abandoned && events_wait(fx.q, events_of(EV_LOG, 0), 0, &line))
        abandoned = strstr(line.text, "abandoning") != NULL;
    assert_true(abandoned);
    atomic_store(&svc.release, true);
    event sp = expect_note(0, NOTE_STOPPED, 2000);
    char want[200];
    snprintf(want, sizeof want, "leader=0 epoch=0 resign=LEASEHOLD_ECLOSED cancelled=1 key=%s",
             free_client ? "lh:service:abandon-c" : "lh:service:abandon-e");
    assert_string_equal(sp.text, want);
}

static void test_abandoned_service_after_election_free(void **state)
{
    (void)state;
    abandoned_service_outlives(false);
}

static void test_abandoned_service_after_client_free(void **state)
{
    (void)state;
    abandoned_service_outlives(true);
}

/* A thread in leasehold_holder_get(). */
typedef struct asker {
    leasehold_client *c;
    atomic_int tid;
    atomic_bool done;
    int rc;
    leasehold_error err;
} asker;

static void *ask(void *arg)
{
    asker *a = arg;
    atomic_store(&a->tid, (int)syscall(SYS_gettid));
    leasehold_holder h;
    a->rc = leasehold_holder_get(a->c, "lh:service:asked", &h, &a->err);
    atomic_store(&a->done, true);
    return NULL;
}

/* True once the asker's thread sleeps (in leasehold_holder_get's wait). */
static bool asker_waits(void *arg)
{
    asker *a = arg;
    int tid = atomic_load(&a->tid);
    if (!tid)
        return false;
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", tid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *paren = strrchr(buf, ')');
    return paren && paren[1] == ' ' && paren[2] == 'S';
}

static bool asker_done(void *arg)
{
    return atomic_load(&((asker *)arg)->done);
}

/* leasehold_client_free() while another thread waits in
 * leasehold_holder_get() for a Redis that does not answer: the asker
 * returns LEASEHOLD_ECLOSED naming the cause, and nothing is freed under it
 * (issue 8, item 10; ASan and TSan check the latter). */
static void test_holder_get_during_client_free(void **state)
{
    (void)state;
    leasehold_config cfg;
    test_config(&cfg, fx.srv->url);
    cfg.lease_ms = 20000;
    cfg.renew_interval_ms = 2000;
    cfg.renew_deadline_ms = 15000;
    cfg.command_timeout_ms = 5000; /* the question stays unanswered meanwhile */
    leasehold_error err;
    asker a = {0};
    a.c = leasehold_client_new(&cfg, &err);
    if (!a.c)
        fail_msg("leasehold_client_new: %s", err.msg);
    redis_server_pause(fx.srv);
    svc.paused = true;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, ask, &a), 0);
    bool waiting = wait_until(asker_waits, &a, 2000);
    leasehold_client_free(a.c);
    bool returned = wait_until(asker_done, &a, 2000);
    pthread_join(t, NULL);
    redis_server_resume(fx.srv);
    svc.paused = false;
    assert_true(waiting);
    assert_true(returned);
    printf("# holder_get: %s: %s\n", leasehold_errname(a.rc), a.err.msg);
    assert_int_equal(a.rc, LEASEHOLD_ECLOSED);
    assert_non_null(strstr(a.err.msg, "shutting down"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_runs_only_while_leader, setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_fd_readable_on_loss, setup, teardown),
        cmocka_unit_test_setup_teardown(test_returning_service_resigns, setup, teardown),
        cmocka_unit_test_setup_teardown(test_overrunning_service, setup, teardown),
        cmocka_unit_test_setup_teardown(test_client_free_stops_and_releases, setup, teardown),
        cmocka_unit_test_setup_teardown(test_token_fd_readable_at_valid_until, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abandoned_service_after_election_free, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_abandoned_service_after_client_free, setup, teardown),
        cmocka_unit_test_setup_teardown(test_holder_get_during_client_free, setup, teardown),
    };
    return cmocka_run_group_tests(tests, fixture_group_setup, fixture_group_teardown);
}
