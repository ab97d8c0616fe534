/*
 * test_checker — the chaos checker decides right, and can fail.
 *
 * Synthetic logs, written to a temporary directory, cover each rule: a clean
 * history passes (with its times to leader), interleaved terms fail with
 * their overlap (tolerated up to a bound only for terms begun during a
 * Redis clock step), an epoch that does not rise fails, a leaderless heal fails,
 * and bad input is refused.  Then real probes against a private Redis: a
 * --broken probe that is stopped past its lease and resumed is caught, and
 * correct probes through the same handover pass.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "checker.h"
#include "redis_server.h"
#include "testutil.h"

#define MS      1000000ull
#define BASE_NS ((uint64_t)5000000000000) /* synthetic logs start here */

/* The synthetic logs' timings; the real probes run with probe_opts'. */
static const checker_opts opts = {.lease_ms = 2000, .retry_ms = 1000};
static const checker_opts probe_opts = {.lease_ms = 1000, .retry_ms = 300};

/* A temporary directory with the logs of one test. */
typedef struct logs {
    char dir[64];
    char faults[128];
    char probes[4][128];
    size_t n_probes;
} logs;

static void logs_init(logs *l, size_t n_probes)
{
    snprintf(l->dir, sizeof l->dir, "/tmp/test_checker.XXXXXX");
    assert_non_null(mkdtemp(l->dir));
    snprintf(l->faults, sizeof l->faults, "%s/faults.log", l->dir);
    l->n_probes = n_probes;
    for (size_t i = 0; i < n_probes; i++)
        snprintf(l->probes[i], sizeof l->probes[i], "%s/probe%zu.log", l->dir, i);
}

static void logs_remove(logs *l)
{
    unlink(l->faults);
    for (size_t i = 0; i < l->n_probes; i++)
        unlink(l->probes[i]);
    rmdir(l->dir);
}

/* Appends a formatted line to path. */
__attribute__((format(printf, 2, 3))) static void line(const char *path, const char *fmt, ...)
{
    FILE *f = fopen(path, "a");
    assert_non_null(f);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fputc('\n', f);
    fclose(f);
}

/* The synthetic time ms into a test's history. */
static uint64_t at(uint64_t ms)
{
    return BASE_NS + ms * MS;
}

/* Appends the action lines of one term, every 10 ms from from_ms to to_ms
 * (both included), at synthetic times. */
static void actions(const char *path, const char *id, uint64_t epoch, uint64_t from_ms,
                    uint64_t to_ms)
{
    FILE *f = fopen(path, "a");
    assert_non_null(f);
    for (uint64_t t = from_ms; t <= to_ms; t += 10)
        fprintf(f, "action %" PRIu64 " %" PRIu64 " %s\n", at(t), epoch, id);
    fclose(f);
}

/* Loads and analyzes the logs with the timings o; the caller frees both. */
static void analyze(const logs *l, const checker_opts *o, checker_history *h, checker_result *r)
{
    const char *probes[4];
    for (size_t i = 0; i < l->n_probes; i++)
        probes[i] = l->probes[i];
    char why[256];
    int rc = checker_load(h, l->faults, probes, l->n_probes, why, sizeof why);
    if (rc != 0)
        fail_msg("checker_load: %s", why);
    assert_int_equal(checker_analyze(h, o, r), 0);
    checker_print(h, o, r, stdout);
}

/* checker_run's exit status over the logs, its report discarded. */
static int run_status(const logs *l)
{
    const char *probes[4];
    for (size_t i = 0; i < l->n_probes; i++)
        probes[i] = l->probes[i];
    FILE *devnull = fopen("/dev/null", "w");
    assert_non_null(devnull);
    int status = checker_run(&opts, l->faults, probes, l->n_probes, devnull);
    fclose(devnull);
    return status;
}

/* A pause, a crash and a blackhole, each handed over or ridden out in turn. */
static void test_clean_history_passes(void **state)
{
    (void)state;
    logs l;
    logs_init(&l, 3);
    line(l.probes[0], "elected %" PRIu64 " 1 p0", at(0));
    actions(l.probes[0], "p0", 1, 0, 1500);
    line(l.probes[0], "revoked %" PRIu64 " renew deadline passed", at(3100));
    line(l.faults, "fault %" PRIu64 " stop p0 for 2000 ms", at(1000));
    line(l.probes[1], "elected %" PRIu64 " 2 p1", at(2600));
    actions(l.probes[1], "p1", 2, 2600, 8000);
    line(l.faults, "heal %" PRIu64 " stop", at(3000)); /* p1 leads already: 0 */
    line(l.faults, "fault %" PRIu64 " blackhole p1", at(4000));
    line(l.faults, "heal %" PRIu64 " blackhole", at(5000)); /* p1 rides it out: 0 */
    line(l.faults, "fault %" PRIu64 " kill p1", at(8005));
    line(l.probes[1], "exit %" PRIu64, at(8006));
    line(l.faults, "heal %" PRIu64 " kill", at(8100));
    line(l.probes[2], "elected %" PRIu64 " 3 p2", at(10500));
    actions(l.probes[2], "p2", 3, 10500, 12000);
    line(l.faults, "end %" PRIu64, at(12000));

    checker_history h;
    checker_result r;
    analyze(&l, &opts, &h, &r);
    assert_int_equal(r.n_violations, 0);
    assert_int_equal(r.n_terms, 3);
    assert_int_equal(r.n_heals, 3);
    assert_int_equal(r.n_misses, 0);
    assert_int_equal(r.n_unjudged, 0);
    assert_true(r.heals[0].led);
    assert_int_equal(r.heals[0].to_leader_ns, 0);
    assert_int_equal(r.heals[1].to_leader_ns, 0);
    assert_int_equal(r.heals[2].to_leader_ns, 2400 * MS);
    assert_int_equal(checker_verdict(&r), 0);
    checker_result_free(&r);
    checker_history_free(&h);
    assert_int_equal(run_status(&l), 0);
    logs_remove(&l);
}

/* p1's term begins while p0's still acts: one violation, 500 ms of overlap,
 * blamed on the fault before it. */
static void test_interleaved_terms_fail(void **state)
{
    (void)state;
    logs l;
    logs_init(&l, 2);
    line(l.faults, "fault %" PRIu64 " blackhole p0", at(100));
    line(l.faults, "heal %" PRIu64 " blackhole", at(300));
    line(l.faults, "fault %" PRIu64 " stop p0", at(400));
    actions(l.probes[0], "p0", 1, 0, 1000);
    actions(l.probes[1], "p1", 2, 500, 1500);
    line(l.faults, "heal %" PRIu64 " stop", at(1200));
    line(l.faults, "end %" PRIu64, at(6000));

    checker_history h;
    checker_result r;
    analyze(&l, &opts, &h, &r);
    assert_int_equal(r.n_violations, 1);
    const checker_violation *v = &r.violations[0];
    assert_int_equal(v->kind, CHECKER_OVERLAP);
    assert_string_equal(h.ids[v->a.id], "p0");
    assert_string_equal(h.ids[v->b.id], "p1");
    assert_int_equal(v->at_ns, at(500));
    assert_int_equal(v->overlap_ns, 500 * MS);
    assert_true(v->fault >= 0);
    assert_string_equal(h.faults[v->fault].type, "stop");
    assert_int_equal(r.n_misses, 0);
    assert_int_equal(checker_verdict(&r), 1);
    checker_result_free(&r);
    checker_history_free(&h);
    assert_int_equal(run_status(&l), 1);
    logs_remove(&l);
}

/* The clock-step history: a step at 400 ms, healed at 3000; p1 begins at
 * begin_ms while p0 acts until p0_end_ms. */
static void clock_step_history(logs *l, uint64_t begin_ms, uint64_t p0_end_ms)
{
    logs_init(l, 2);
    line(l->faults, "fault %" PRIu64 " clock-step probe=p0,step_ms=5000,ms=2600", at(400));
    actions(l->probes[0], "p0", 1, 0, p0_end_ms);
    actions(l->probes[1], "p1", 2, begin_ms, begin_ms + 3000);
    line(l->faults, "heal %" PRIu64 " clock-step", at(3000));
    line(l->faults, "end %" PRIu64, at(8000));
}

/* An overlap within the bound, begun during a clock step, is tolerated
 * (reported, not a violation); one longer than the bound is a violation. */
static void test_clock_step_overlap_bounded(void **state)
{
    (void)state;
    const checker_opts step_opts = {.lease_ms = 2000, .retry_ms = 1000, .clock_step_bound_ms = 650};
    logs l;
    clock_step_history(&l, 500, 1000); /* 500 ms of overlap */
    checker_history h;
    checker_result r;
    analyze(&l, &step_opts, &h, &r);
    assert_int_equal(r.n_violations, 0);
    assert_int_equal(r.n_tolerated, 1);
    assert_int_equal(r.tolerated[0].overlap_ns, 500 * MS);
    assert_int_equal(checker_verdict(&r), 0);
    checker_result_free(&r);
    checker_history_free(&h);
    /* without a bound (chaos_check's default) the same overlap fails */
    assert_int_equal(run_status(&l), 1);
    logs_remove(&l);

    clock_step_history(&l, 500, 1300); /* 800 ms: past the bound */
    analyze(&l, &step_opts, &h, &r);
    assert_int_equal(r.n_violations, 1);
    assert_int_equal(r.violations[0].overlap_ns, 800 * MS);
    assert_int_equal(r.n_tolerated, 0);
    assert_int_equal(checker_verdict(&r), 1);
    checker_result_free(&r);
    checker_history_free(&h);
    logs_remove(&l);
}

/* The bound is for terms that begin during a clock step only: the same
 * short overlap after its heal (the backward step) or during another fault
 * is a violation. */
static void test_clock_step_bound_is_local(void **state)
{
    (void)state;
    const checker_opts step_opts = {.lease_ms = 2000, .retry_ms = 1000, .clock_step_bound_ms = 650};
    logs l;
    clock_step_history(&l, 3100, 3400); /* begins after the heal */
    checker_history h;
    checker_result r;
    analyze(&l, &step_opts, &h, &r);
    assert_int_equal(r.n_violations, 1);
    assert_int_equal(r.n_tolerated, 0);
    checker_result_free(&r);
    checker_history_free(&h);
    logs_remove(&l);

    logs_init(&l, 2);
    line(l.faults, "fault %" PRIu64 " stop p0", at(400));
    actions(l.probes[0], "p0", 1, 0, 1000);
    actions(l.probes[1], "p1", 2, 500, 2500);
    line(l.faults, "heal %" PRIu64 " stop", at(3000));
    line(l.faults, "end %" PRIu64, at(8000));
    analyze(&l, &step_opts, &h, &r);
    assert_int_equal(r.n_violations, 1);
    assert_int_equal(r.n_tolerated, 0);
    checker_result_free(&r);
    checker_history_free(&h);
    logs_remove(&l);
}

/* A term that resumes after another has run is a violation too, even when
 * the spans of the two barely touch (a single action in between). */
static void test_resumed_term_fails(void **state)
{
    (void)state;
    logs l;
    logs_init(&l, 2);
    actions(l.probes[0], "p0", 1, 0, 500);
    actions(l.probes[1], "p1", 2, 600, 600);
    actions(l.probes[0], "p0", 1, 700, 800);
    line(l.faults, "end %" PRIu64, at(900));

    checker_history h;
    checker_result r;
    analyze(&l, &opts, &h, &r);
    assert_int_equal(r.n_violations, 1);
    assert_int_equal(r.violations[0].kind, CHECKER_OVERLAP);
    assert_int_equal(r.violations[0].overlap_ns, 0);
    assert_int_equal(r.violations[0].fault, -1);
    checker_result_free(&r);
    checker_history_free(&h);
    assert_int_equal(run_status(&l), 1);
    logs_remove(&l);
}

/* Terms that follow each other cleanly but with an epoch that does not rise:
 * once equal, once lower. */
static void test_epoch_not_increasing_fails(void **state)
{
    (void)state;
    logs l;
    logs_init(&l, 3);
    actions(l.probes[0], "p0", 5, 0, 1000);
    actions(l.probes[1], "p1", 5, 1100, 2000);
    actions(l.probes[2], "p2", 4, 2100, 3000);
    line(l.faults, "end %" PRIu64, at(3000));

    checker_history h;
    checker_result r;
    analyze(&l, &opts, &h, &r);
    assert_int_equal(r.n_violations, 2);
    for (size_t i = 0; i < 2; i++)
        assert_int_equal(r.violations[i].kind, CHECKER_EPOCH_ORDER);
    assert_string_equal(h.ids[r.violations[0].b.id], "p1");
    assert_string_equal(h.ids[r.violations[1].b.id], "p2");
    assert_int_equal(r.violations[1].b.epoch, 4);
    checker_result_free(&r);
    checker_history_free(&h);
    assert_int_equal(run_status(&l), 1);
    logs_remove(&l);
}

/* No leader within lease + retry + 1 s of a heal is a miss; a heal the log
 * ends too soon after is counted as not judged, not as a miss. */
static void test_liveness_miss_fails(void **state)
{
    (void)state;
    logs l;
    logs_init(&l, 2);
    uint64_t bound = checker_liveness_bound_ms(&opts);
    assert_int_equal(bound, 4000);
    actions(l.probes[0], "p0", 1, 0, 1000);
    line(l.faults, "fault %" PRIu64 " kill p0", at(1000));
    line(l.faults, "heal %" PRIu64 " kill", at(1100));
    line(l.probes[1], "elected %" PRIu64 " 2 p1", at(1100 + bound + 500));
    actions(l.probes[1], "p1", 2, 1100 + bound + 500, 7000);
    line(l.faults, "fault %" PRIu64 " redis-stop", at(7010));
    line(l.faults, "heal %" PRIu64 " redis-stop", at(7050));
    line(l.faults, "end %" PRIu64, at(7100));

    checker_history h;
    checker_result r;
    analyze(&l, &opts, &h, &r);
    assert_int_equal(r.n_violations, 0);
    assert_int_equal(r.n_heals, 2);
    assert_int_equal(r.n_misses, 1);
    assert_int_equal(r.heals[0].liveness, CHECKER_MISS);
    assert_int_equal(r.heals[0].to_leader_ns, (bound + 500) * MS);
    assert_int_equal(r.heals[1].liveness, CHECKER_UNJUDGED);
    assert_int_equal(r.n_unjudged, 1);
    assert_int_equal(checker_verdict(&r), 1);
    checker_result_free(&r);
    checker_history_free(&h);
    assert_int_equal(run_status(&l), 1);
    logs_remove(&l);
}

/* Writes one probe log holding text and expects exit status 2. */
static void expect_bad(const char *probe_text, const char *fault_text)
{
    logs l;
    logs_init(&l, 1);
    line(l.probes[0], "%s", probe_text);
    line(l.faults, "%s", fault_text);
    assert_int_equal(run_status(&l), 2);
    logs_remove(&l);
}

/* Lines the checker does not understand are refused, never skipped. */
static void test_bad_input_is_refused(void **state)
{
    (void)state;
    expect_bad("action 12 x p0", "end 20");
    expect_bad("action 12 1", "end 20");
    expect_bad("action 12 1 p0 extra", "end 20");
    expect_bad("acted 12 1 p0", "end 20");
    expect_bad("action 12 1 p0\nelected 13 2 p1", "end 20"); /* two ids in one file */
    expect_bad("revoked 12", "end 20");
    expect_bad("action 12 1 p0", "fault 10");
    expect_bad("action 12 1 p0", "heal 10 stop extra");
    expect_bad("action 12 1 p0", "end soon");
    expect_bad("action -12 1 p0", "end 20");

    logs l;
    logs_init(&l, 1);
    line(l.faults, "end 20");
    assert_int_equal(run_status(&l), 2); /* the probe log does not exist */
    logs_remove(&l);
}

/* ------------------------------------------------------- real probes */

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* What to look for in a probe log: a line of that kind stamped after
 * after_ns. */
typedef struct seek {
    const char *path;
    const char *kind;
    uint64_t after_ns;
} seek;

static bool log_has(void *arg)
{
    const seek *s = arg;
    FILE *f = fopen(s->path, "r");
    if (!f)
        return false;
    char buf[256];
    bool found = false;
    size_t kind_len = strlen(s->kind);
    while (!found && fgets(buf, sizeof buf, f)) {
        if (strncmp(buf, s->kind, kind_len) != 0 || buf[kind_len] != ' ')
            continue;
        found = strtoull(buf + kind_len + 1, NULL, 10) > s->after_ns;
    }
    fclose(f);
    return found;
}

static void wait_for(const char *path, const char *kind, uint64_t after_ns, uint64_t max_ms)
{
    seek s = {path, kind, after_ns};
    if (!wait_until(log_has, &s, max_ms))
        fail_msg("no '%s' line after %" PRIu64 " in %s within %" PRIu64 " ms", kind, after_ns, path,
                 test_ms(max_ms));
}

/* Starts a probe with short timings (lease 1000 ms), its output appended to
 * log_path. */
static pid_t start_probe(const redis_server *srv, const char *id, const char *log_path, bool broken)
{
    int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    char *argv[] = {CHAOS_PROBE_PATH,
                    "--url",
                    (char *)srv->url,
                    "--key",
                    "chaos:test",
                    "--id",
                    (char *)id,
                    "--lease-ms",
                    "1000",
                    "--renew-ms",
                    "100",
                    "--retry-ms",
                    "300",
                    "--renew-deadline-ms",
                    "700",
                    "--command-timeout-ms",
                    "80",
                    "--no-restart-guard",
                    broken ? "--broken" : NULL,
                    NULL};
    pid_t pid = test_process_spawn(argv, fd);
    close(fd);
    assert_true(pid > 0);
    return pid;
}

/* Ends a probe gracefully and waits for its "exit" line. */
static void stop_probe(pid_t pid, const char *log_path)
{
    uint64_t before = mono_ns();
    test_process_signal(pid, SIGTERM);
    wait_for(log_path, "exit", before, 5000);
    test_process_kill(pid);
}

/*
 * The first probe is elected and acts, then is stopped (SIGSTOP) until the
 * second leads, then resumed; the second is left to act 100 ms more; both are ended and the checker
 * judges the logs, with the pause as the fault.  The first probe is --broken when broken is true; a
 * correct one must instead notice, print "revoked" and no action.
 */
static void handover(bool broken, checker_history *h, checker_result *r)
{
    redis_server *srv = redis_server_start(NULL);
    assert_non_null(srv);
    logs l;
    logs_init(&l, 2);
    pid_t first = start_probe(srv, "first", l.probes[0], broken);
    wait_for(l.probes[0], "action", 0, 5000);
    pid_t second = start_probe(srv, "second", l.probes[1], false);

    uint64_t stop_ns = mono_ns();
    test_process_signal(first, SIGSTOP);
    line(l.faults, "fault %" PRIu64 " stop first", stop_ns);
    wait_for(l.probes[1], "action", stop_ns, 5000);
    uint64_t cont_ns = mono_ns();
    test_process_signal(first, SIGCONT);
    line(l.faults, "heal %" PRIu64 " stop", cont_ns);
    wait_for(l.probes[0], broken ? "action" : "revoked", cont_ns, 3000);
    wait_for(l.probes[1], "action", cont_ns + 100 * MS, 3000);

    stop_probe(first, l.probes[0]);
    stop_probe(second, l.probes[1]);
    line(l.faults, "end %" PRIu64, mono_ns());
    redis_server_stop(srv);
    analyze(&l, &probe_opts, h, r);
    logs_remove(&l);
}

/* The broken probe keeps acting for its old term after the pause, while the
 * second probe leads: the checker must say so. */
static void test_broken_probe_is_caught(void **state)
{
    (void)state;
    checker_history h;
    checker_result r;
    handover(true, &h, &r);
    assert_true(r.n_violations >= 1);
    const checker_violation *v = &r.violations[0];
    assert_int_equal(v->kind, CHECKER_OVERLAP);
    assert_string_equal(h.ids[v->a.id], "first");
    assert_string_equal(h.ids[v->b.id], "second");
    assert_true(v->b.epoch > v->a.epoch);
    assert_true(v->overlap_ns > 0);
    assert_true(v->fault >= 0);
    assert_string_equal(h.faults[v->fault].type, "stop");
    assert_int_equal(checker_verdict(&r), 1);
    checker_result_free(&r);
    checker_history_free(&h);
}

/* The same handover with a correct probe: no violation, a leader at once. */
static void test_correct_probes_pass_handover(void **state)
{
    (void)state;
    checker_history h;
    checker_result r;
    handover(false, &h, &r);
    assert_int_equal(r.n_violations, 0);
    assert_int_equal(r.n_misses, 0);
    assert_true(r.n_terms >= 2);
    assert_int_equal(r.n_heals, 1);
    assert_int_equal(r.heals[0].liveness, CHECKER_LIVE);
    assert_int_equal(checker_verdict(&r), 0);
    checker_result_free(&r);
    checker_history_free(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_clean_history_passes),
        cmocka_unit_test(test_interleaved_terms_fail),
        cmocka_unit_test(test_resumed_term_fails),
        cmocka_unit_test(test_clock_step_overlap_bounded),
        cmocka_unit_test(test_clock_step_bound_is_local),
        cmocka_unit_test(test_epoch_not_increasing_fails),
        cmocka_unit_test(test_liveness_miss_fails),
        cmocka_unit_test(test_bad_input_is_refused),
        cmocka_unit_test(test_broken_probe_is_caught),
        cmocka_unit_test(test_correct_probes_pass_handover),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
