/*
 * test_cli.c — the `leasehold` command-line tool, run as a user runs it,
 * against a redis-server of this test's own.
 *
 * Each leasehold is started through `env` (to clear SNAKETRON_*) and
 * `sh -c 'exec "$0" "$@" 2>&1'` (stderr into the pipe the harness reads);
 * both exec, so the harness's pid is leasehold's own.  CMD is mostly this
 * test binary in its "beat" mode: it appends "<pid> <epoch> <monotonic ms>"
 * to a file every 10 ms while it runs, so the test sees, from the file
 * alone, which CMD ran when, and checks that no two ever overlapped.  Every
 * test uses a key of its own, so one left behind cannot disturb the next.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "fixture.h"
#include "perm_cases.h"
#include "testutil.h"
#include "tool_proc.h"

#define MAX_BEATERS 32

/* ------------------------------------------------------------ CMD modes */

static volatile sig_atomic_t got_term, got_hup;
static void on_term(int sig)
{
    (void)sig;
    got_term = 1;
}
static void on_hup(int sig)
{
    (void)sig;
    got_hup = 1;
}

static void beat_write(int fd, const char *what)
{
    char line[128];
    int n = snprintf(line, sizeof line, "%d %s %llu\n", (int)getpid(), what,
                     (unsigned long long)test_now_ms());
    if (write(fd, line, (size_t)n) < 0)
        _exit(1);
}

/* `test_cli beat FILE [stubborn]`: a beat every 10 ms; "term" and exit 0 on
 * SIGTERM (stubborn: SIGTERM ignored), "hup" on SIGHUP. */
static int beat_main(const char *path, bool stubborn)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return 1;
    const char *epoch = getenv("LEASEHOLD_EPOCH");
    signal(SIGTERM, stubborn ? SIG_IGN : on_term);
    signal(SIGHUP, on_hup);
    for (;;) {
        if (got_term) {
            beat_write(fd, "term");
            return 0;
        }
        if (got_hup) {
            got_hup = 0;
            beat_write(fd, "hup");
        }
        beat_write(fd, epoch ? epoch : "none");
        test_sleep_ms(10);
    }
}

/* ---------------------------------------------------------- processes */

/* Fills args with run, the URL, the key, fast timing and extra (NULL-
 * terminated), then "--" and cmd (NULL-terminated). */
static void run_args(const char **args, size_t room, const char *key, const char *const extra[],
                     const char *const cmd[])
{
    size_t n = 0;
    const char *base[] = {"run",   "--url",   fx.srv->url, "--key",   key,     "--lease",
                          "1s",    "--renew", "100ms",     "--retry", "300ms", "--renew-deadline",
                          "700ms", NULL};
    for (size_t i = 0; base[i]; i++)
        args[n++] = base[i];
    for (size_t i = 0; extra && extra[i]; i++)
        args[n++] = extra[i];
    args[n++] = "--";
    for (size_t i = 0; cmd[i]; i++)
        args[n++] = cmd[i];
    args[n] = NULL;
    assert_true(n < room);
}

/* A path in fx.tmpdir, with nothing there yet. */
static const char *tmp_path(const char *name)
{
    const char *p = fixture_path(name);
    unlink(p);
    return p;
}

static void redis_do(const char *fmt, const char *a, const char *b)
{
    redisReply *r = redis_server_cmd(fx.srv, fmt, a, b);
    assert_non_null(r);
    freeReplyObject(r);
}

/* ----------------------------------------------------------- the beats */

/* One CMD as its beats show it. */
typedef struct beater {
    int pid;
    char epoch[64];
    uint64_t first_ms, last_ms;
    bool term, hup;
} beater;

/* Reads the beat file into bs (room for MAX_BEATERS); their number. */
static int read_beats(const char *path, beater bs[MAX_BEATERS])
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    int n = 0;
    char what[64];
    int pid;
    unsigned long long ms;
    while (fscanf(f, "%d %63s %llu", &pid, what, &ms) == 3) {
        int i = 0;
        while (i < n && bs[i].pid != pid)
            i++;
        if (i == n) {
            assert_true(n < MAX_BEATERS);
            bs[n++] = (beater){.pid = pid, .first_ms = ms};
        }
        if (strcmp(what, "term") == 0)
            bs[i].term = true;
        else if (strcmp(what, "hup") == 0)
            bs[i].hup = true;
        else
            snprintf(bs[i].epoch, sizeof bs[i].epoch, "%s", what);
        bs[i].last_ms = ms;
    }
    fclose(f);
    return n;
}

/* No two CMDs' [first beat, last beat] overlap, and epochs increase. */
static void check_no_overlap(const char *path)
{
    beater bs[MAX_BEATERS];
    int n = read_beats(path, bs);
    for (int i = 1; i < n; i++) {
        if (bs[i].first_ms <= bs[i - 1].last_ms)
            fail_msg("CMD %d started at %llu while CMD %d ran until %llu", bs[i].pid,
                     (unsigned long long)bs[i].first_ms, bs[i - 1].pid,
                     (unsigned long long)bs[i - 1].last_ms);
        if (strtoull(bs[i].epoch, NULL, 10) <= strtoull(bs[i - 1].epoch, NULL, 10))
            fail_msg("epoch %s after %s", bs[i].epoch, bs[i - 1].epoch);
    }
}

/* Waits for the beat file to show `count` CMDs; fills *last with the newest. */
static void wait_beaters(const char *path, int count, uint64_t max_ms, beater *last)
{
    uint64_t deadline = test_now_ms() + test_ms(max_ms);
    beater bs[MAX_BEATERS];
    int n;
    while ((n = read_beats(path, bs)) < count) {
        if (test_now_ms() >= deadline) {
            procs_show_all("a leasehold");
            fail_msg("%d CMD(s) ran within %llu ms, expected %d", n,
                     (unsigned long long)test_ms(max_ms), count);
        }
        test_sleep_ms(10);
    }
    if (last)
        *last = bs[n - 1];
}

/* True if pid is alive and not a zombie. */
static bool pid_alive(int pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    return p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}

static bool pid_dead(void *arg)
{
    return !pid_alive(*(int *)arg);
}

/* True if some process of group pgid is alive (not a zombie). */
static bool group_alive(int pgid)
{
    DIR *d = opendir("/proc");
    assert_non_null(d);
    bool alive = false;
    struct dirent *ent;
    while (!alive && (ent = readdir(d)) != NULL) {
        if (ent->d_name[0] < '1' || ent->d_name[0] > '9')
            continue;
        char path[300], buf[512];
        snprintf(path, sizeof path, "/proc/%s/stat", ent->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        const char *p = strrchr(buf, ')');
        char st;
        int ppid, pgrp;
        alive = p && sscanf(p + 1, " %c %d %d", &st, &ppid, &pgrp) == 3 && pgrp == pgid &&
                st != 'Z' && st != 'X';
    }
    closedir(d);
    return alive;
}

/* Reads the pid a CMD wrote to path, waiting for it. */
static int read_pid_file(const char *path)
{
    uint64_t deadline = test_now_ms() + test_ms(5000);
    for (;;) {
        FILE *f = fopen(path, "r");
        int pid = 0;
        if (f) {
            if (fscanf(f, "%d", &pid) != 1)
                pid = 0;
            fclose(f);
        }
        if (pid > 0)
            return pid;
        if (test_now_ms() >= deadline)
            fail_msg("no pid in %s", path);
        test_sleep_ms(10);
    }
}

/* A shell command: start `sleep 1000` in the background (its pid to
 * gpid_path), then exec this binary's beat mode (extra: "stubborn" or ""). */
static void grandchild_cmd(char *out, size_t size, const char *gpid_path, const char *beats,
                           const char *extra)
{
    snprintf(out, size, "sleep 1000 & echo $! > %s; exec %s beat %s %s", gpid_path,
             test_process_self(), beats, extra);
}

/* ------------------------------------------------------------------ tests */

/* CMD's environment; exit status and signal propagation; exec failures. */
static void test_env_and_exit_status(void **state)
{
    (void)state;
    const char *out = tmp_path("env.out");
    char script[700];
    snprintf(script, sizeof script,
             "echo \"$LEASEHOLD_KEY $LEASEHOLD_EPOCH $LEASEHOLD_TOKEN\" > %s; exit 7", out);
    const char *cmd[] = {"sh", "-c", script, NULL};
    const char *extra[] = {"--id", "envtest", NULL};
    const char *args[40];
    run_args(args, 40, "cli:env", extra, cmd);
    const char *env[] = {"LEASEHOLD_EPOCH=stale", NULL};
    proc *p = proc_start("leasehold", env, args);
    expect_exit(p, 7, 10000);
    char key[64], epoch[64], token[256];
    FILE *f = fopen(out, "r");
    assert_non_null(f);
    assert_int_equal(fscanf(f, "%63s %63s %255s", key, epoch, token), 3);
    fclose(f);
    assert_string_equal(key, "cli:env");
    assert_true(strtoull(epoch, NULL, 10) > 0);
    char stored[64];
    fixture_redis_get("{cli:env}:epoch", stored, sizeof stored);
    assert_string_equal(epoch, stored);
    assert_true(strncmp(token, "envtest/", 8) == 0);
    assert_non_null(strstr(p->out, token)); /* the log names the same token */
    fixture_redis_get("cli:env", stored, sizeof stored);
    assert_string_equal(stored, ""); /* released on exit */
    proc_free(p);

    /* Killed by a signal: 128 + N. */
    const char *cmd_sig[] = {"sh", "-c", "kill -USR1 $$", NULL};
    run_args(args, 40, "cli:env", NULL, cmd_sig);
    p = proc_start("leasehold", NULL, args);
    expect_exit(p, 128 + SIGUSR1, 10000);
    proc_free(p);

    /* Not found: 127; not executable: 126. */
    const char *cmd_missing[] = {"/nonexistent/cmd", NULL};
    run_args(args, 40, "cli:env", NULL, cmd_missing);
    p = proc_start("leasehold", NULL, args);
    expect_exit(p, 127, 10000);
    proc_free(p);
    const char *noexec = tmp_path("not-executable");
    FILE *nf = fopen(noexec, "w");
    assert_non_null(nf);
    fclose(nf);
    assert_int_equal(chmod(noexec, 0644), 0);
    const char *cmd_noexec[] = {noexec, NULL};
    run_args(args, 40, "cli:env", NULL, cmd_noexec);
    p = proc_start("leasehold", NULL, args);
    expect_exit(p, 126, 10000);
    proc_free(p);

    /* Searched in PATH (before fork): a candidate that cannot be executed
     * is passed over for a later one; none found: 127; only ones that
     * cannot be executed: 126. */
    char dirs[2][512], path_env[1100];
    for (int i = 0; i < 2; i++) {
        char name[16];
        snprintf(name, sizeof name, "bin%d", i);
        snprintf(dirs[i], sizeof dirs[i], "%s", tmp_path(name));
        assert_int_equal(mkdir(dirs[i], 0755), 0);
        char file[1100];
        snprintf(file, sizeof file, "%s/lh-found", dirs[i]);
        FILE *bf = fopen(file, "w");
        assert_non_null(bf);
        fputs("#!/bin/sh\nexit 5\n", bf);
        fclose(bf);
        assert_int_equal(chmod(file, i == 0 ? 0644 : 0755), 0);
    }
    snprintf(path_env, sizeof path_env, "PATH=%s:%s", dirs[0], dirs[1]);
    const char *path_envs[] = {path_env, NULL};
    const char *cmd_found[] = {"lh-found", NULL};
    run_args(args, 40, "cli:env", NULL, cmd_found);
    p = proc_start("leasehold", path_envs, args);
    expect_exit(p, 5, 10000);
    proc_free(p);
    const char *cmd_nowhere[] = {"lh-nowhere", NULL};
    run_args(args, 40, "cli:env", NULL, cmd_nowhere);
    p = proc_start("leasehold", path_envs, args);
    expect_exit(p, 127, 10000);
    proc_free(p);
    snprintf(path_env, sizeof path_env, "PATH=%s", dirs[0]);
    run_args(args, 40, "cli:env", NULL, cmd_found);
    p = proc_start("leasehold", path_envs, args);
    expect_exit(p, 126, 10000);
    proc_free(p);
}

/*
 * Three instances on one key, each CMD beating into one file: exactly one
 * runs at a time.  SIGTERM to the leader's leasehold stops its CMD (which
 * exits 0, so leasehold does) and hands over at once; SIGKILL of the next
 * leader's leasehold kills its CMD and CMD's grandchild at once, and the
 * last instance's CMD starts once the lease has lapsed.
 */
static void test_three_instances_no_overlap(void **state)
{
    (void)state;
    const char *beats = tmp_path("three.beats");
    char gpid_paths[3][512], scripts[3][1400];
    proc *ps[3];
    for (int i = 0; i < 3; i++) {
        char name[32];
        snprintf(name, sizeof name, "three.gpid%d", i);
        snprintf(gpid_paths[i], sizeof gpid_paths[i], "%s", tmp_path(name));
        grandchild_cmd(scripts[i], sizeof scripts[i], gpid_paths[i], beats, "");
        const char *cmd[] = {"sh", "-c", scripts[i], NULL};
        const char *args[40];
        run_args(args, 40, "cli:three", NULL, cmd);
        ps[i] = proc_start("leasehold", NULL, args);
    }
    beater first;
    wait_beaters(beats, 1, TEST_FRESH_REDIS_MS + 5000, &first);
    test_sleep_ms(300); /* let the others try to claim meanwhile */
    int leader = -1;
    for (int i = 0; i < 3; i++) {
        proc_read(ps[i], 0);
        if (strstr(ps[i]->out, "leader: started"))
            leader = leader < 0 ? i : 99;
    }
    assert_true(leader >= 0 && leader < 3);

    /* Graceful: CMD gets SIGTERM, exits 0; leasehold exits 0; the next CMD
     * starts well within a lease (the key was released). */
    uint64_t t0 = test_now_ms();
    test_process_signal(ps[leader]->pid, SIGTERM);
    expect_exit(ps[leader], 0, 5000);
    beater second;
    wait_beaters(beats, 2, 3000, &second);
    assert_true(second.first_ms - t0 < test_ms(900));
    int gpid = read_pid_file(gpid_paths[leader]);
    assert_true(wait_until(pid_dead, &gpid, 1000)); /* the grandchild went with its group */

    /* Crash: SIGKILL the new leader's leasehold. */
    int heir = -1;
    for (int i = 0; i < 3; i++) {
        if (i == leader)
            continue;
        proc_read(ps[i], 0);
        if (strstr(ps[i]->out, "leader: started"))
            heir = i;
    }
    assert_true(heir >= 0);
    int heir_gpid = read_pid_file(gpid_paths[heir]);
    uint64_t t1 = test_now_ms();
    test_process_signal(ps[heir]->pid, SIGKILL);
    expect_exit(ps[heir], 128 + SIGKILL, 2000);
    assert_true(wait_until(pid_dead, &second.pid, 500));
    assert_true(wait_until(pid_dead, &heir_gpid, 500));
    assert_true(test_now_ms() - t1 < test_ms(900)); /* long before the lease lapses */
    beater third;
    wait_beaters(beats, 3, 4000, &third);
    check_no_overlap(beats);

    int last = 3 - leader - heir;
    test_process_signal(ps[last]->pid, SIGTERM);
    expect_exit(ps[last], 0, 5000);
    assert_true(wait_until(pid_dead, &third.pid, 500));
    for (int i = 0; i < 3; i++)
        proc_free(ps[i]);
}

/*
 * Redis hangs (SIGSTOP) while CMD, which ignores SIGTERM and has a
 * grandchild that does too, runs: leasehold steps down at the renew
 * deadline and SIGKILLs the group before the key could expire.  The key's
 * expiry is read exactly with PEXPIRETIME after CLIENT PAUSE WRITE, which
 * stops every renewal from that instant.
 */
static void test_redis_paused_kills_before_expiry(void **state)
{
    (void)state;
    const char *beats = tmp_path("pause.beats");
    const char *gpid_path = tmp_path("pause.gpid");
    char script[1400];
    snprintf(script, sizeof script,
             "trap '' TERM; sleep 1000 & echo $! > %s; exec %s beat %s stubborn", gpid_path,
             test_process_self(), beats);
    const char *cmd[] = {"sh", "-c", script, NULL};
    const char *args[40];
    run_args(args, 40, "cli:pause", NULL, cmd);
    proc *p = proc_start("leasehold", NULL, args);
    beater b;
    wait_beaters(beats, 1, TEST_FRESH_REDIS_MS + 5000, &b);
    int gpid = read_pid_file(gpid_path);
    test_sleep_ms(200);

    redis_do("CLIENT PAUSE 10000 WRITE", NULL, NULL);
    redisReply *r = redis_server_cmd(fx.srv, "PEXPIRETIME cli:pause");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    long long expiry_ms = r->integer; /* Unix ms */
    freeReplyObject(r);
    assert_true(expiry_ms > 0);
    redis_server_pause(fx.srv);

    bool dead = wait_until(pid_dead, &b.pid, 3000) && wait_until(pid_dead, &gpid, 500);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    long long dead_at_ms = (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    redis_server_resume(fx.srv);
    redis_do("CLIENT UNPAUSE", NULL, NULL);
    if (!dead) {
        proc_show(p, "leasehold");
        fail_msg("CMD still alive 3 s after Redis hung");
    }
    if (dead_at_ms >= expiry_ms) {
        proc_show(p, "leasehold");
        fail_msg("CMD's group was gone only %lld ms after the key could expire",
                 dead_at_ms - expiry_ms);
    }
    expect_output(p, "was killed by signal 9", 1000); /* by leasehold or its guardian */
    test_process_signal(p->pid, SIGTERM);
    proc_exit_code(p, 5000);
    proc_free(p);
}

/*
 * A leasehold that is stopped (SIGSTOP, as Ctrl-Z stops it) for longer
 * than the lease cannot kill its CMD itself: its guardian does, at the
 * SIGKILL time it was last given.  The stopped leader's group (CMD and a
 * grandchild) must be dead before the other instance's CMD starts.
 */
static void test_stopped_leasehold(void **state)
{
    (void)state;
    const char *beats = tmp_path("stop.beats");
    char gpid_paths[2][512], scripts[2][1400];
    proc *ps[2];
    beater first;
    for (int i = 0; i < 2; i++) {
        char name[32];
        snprintf(name, sizeof name, "stop.gpid%d", i);
        snprintf(gpid_paths[i], sizeof gpid_paths[i], "%s", tmp_path(name));
        grandchild_cmd(scripts[i], sizeof scripts[i], gpid_paths[i], beats, "");
        const char *cmd[] = {"sh", "-c", scripts[i], NULL};
        const char *args[40];
        run_args(args, 40, "cli:stop", NULL, cmd);
        ps[i] = proc_start("leasehold", NULL, args);
        if (i == 0)
            wait_beaters(beats, 1, TEST_FRESH_REDIS_MS + 5000, &first);
    }
    int gpid = read_pid_file(gpid_paths[0]);
    assert_true(group_alive(first.pid) && pid_alive(gpid));

    test_process_signal(ps[0]->pid, SIGSTOP);
    uint64_t deadline = test_now_ms() + test_ms(3000);
    uint64_t seen_alive_ms = test_now_ms();
    for (;;) {
        uint64_t t = test_now_ms();
        if (!group_alive(first.pid))
            break;
        seen_alive_ms = t; /* alive at t or later */
        if (t >= deadline) {
            test_process_signal(ps[0]->pid, SIGCONT);
            fail_msg("the stopped leader's CMD group still alive 3 s after SIGSTOP");
        }
        test_sleep_ms(2);
    }
    beater second;
    wait_beaters(beats, 2, 5000, &second);
    test_process_signal(ps[0]->pid, SIGCONT);
    if (second.first_ms <= seen_alive_ms)
        fail_msg("CMD %d started at %llu, while the stopped leader's group was alive at %llu",
                 second.pid, (unsigned long long)second.first_ms,
                 (unsigned long long)seen_alive_ms);
    assert_false(pid_alive(gpid));
    check_no_overlap(beats);

    expect_output(ps[0], "was killed by signal 9", 3000); /* seen once it runs again */
    expect_output(ps[0], "campaigning again", 1000);
    test_process_signal(ps[0]->pid, SIGTERM);
    expect_exit(ps[0], 128 + SIGTERM, 5000);
    test_process_signal(ps[1]->pid, SIGTERM);
    expect_exit(ps[1], 0, 5000);
    for (int i = 0; i < 2; i++)
        proc_free(ps[i]);
}

/* The pid of the child of `parent` named `comm` (from /proc), or 0. */
static int child_named(int parent, const char *comm)
{
    DIR *d = opendir("/proc");
    assert_non_null(d);
    int found = 0;
    struct dirent *ent;
    while (!found && (ent = readdir(d)) != NULL) {
        if (ent->d_name[0] < '1' || ent->d_name[0] > '9')
            continue;
        char path[300], buf[512];
        snprintf(path, sizeof path, "/proc/%s/stat", ent->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        const char *open = strchr(buf, '(');
        const char *close = strrchr(buf, ')');
        char st;
        int ppid;
        if (open && close && sscanf(close + 1, " %c %d", &st, &ppid) == 2 && ppid == parent &&
            (size_t)(close - open - 1) == strlen(comm) &&
            strncmp(open + 1, comm, strlen(comm)) == 0)
            found = atoi(ent->d_name);
    }
    closedir(d);
    return found;
}

/*
 * The guardian is no single point of failure: with leasehold stopped
 * (SIGSTOP) and its guardian SIGKILLed, nobody is left to keep CMD's
 * SIGKILL time, so CMD must die with the guardian itself, long before the
 * 6 s lease would let the next leader in.
 */
static void test_guardian_killed_while_stopped(void **state)
{
    (void)state;
    const char *beats = tmp_path("guard.beats");
    const char *cmd[] = {test_process_self(), "beat", beats, NULL};
    const char *extra[] = {"--lease", "6s", "--renew", "200ms", "--renew-deadline", "4s", NULL};
    const char *args[40];
    run_args(args, 40, "cli:guard", extra, cmd);
    proc *p = proc_start("leasehold", NULL, args);
    beater b;
    wait_beaters(beats, 1, TEST_FRESH_REDIS_MS + 8000, &b);
    int guard = child_named(p->pid, "lh-guardian");
    if (guard <= 0) {
        proc_show(p, "leasehold");
        fail_msg("no child of leasehold %d is named lh-guardian", p->pid);
    }

    test_process_signal(p->pid, SIGSTOP);
    uint64_t t0 = test_now_ms();
    test_process_signal(guard, SIGKILL);
    bool gone = wait_until(pid_dead, &b.pid, 1500);
    uint64_t took_ms = test_now_ms() - t0;
    test_process_signal(p->pid, SIGCONT);
    if (!gone)
        fail_msg("CMD %d still alive %llu ms after its guardian was killed while leasehold was "
                 "stopped",
                 b.pid, (unsigned long long)took_ms);
    print_message("CMD gone %llu ms after its guardian was SIGKILLed\n",
                  (unsigned long long)took_ms);
    /* Running again, leasehold tells what happened and ends as CMD did. */
    expect_output(p, "the guardian process", 3000);
    expect_exit(p, 128 + SIGKILL, 5000);
    char holder[256];
    fixture_redis_get("cli:guard", holder, sizeof holder);
    assert_string_equal(holder, ""); /* released once CMD's group was gone */
    proc_free(p);
}

/*
 * A full stderr never stops the leader: leasehold's stderr is a pipe the
 * test does not read, filled by CMD's group in small writes, while the library's I/O
 * thread (subscription connections killed) and the main thread (SIGHUPs
 * forwarded) log at debug level.  Another candidate must not be elected
 * for five leases; once the pipe is read, leasehold says how many lines it
 * dropped.
 */
static void test_full_stderr_keeps_leading(void **state)
{
    (void)state;
    const char *beats = tmp_path("log.beats");
    char script[1400];
    snprintf(script, sizeof script,
             "i=0; while [ $i -lt 1500 ]; do echo filler; i=$((i+1)); done >&2 & exec %s beat %s",
             test_process_self(), beats);
    const char *cmd[] = {"sh", "-c", script, NULL};
    const char *extra[] = {"-v", NULL};
    const char *args[40];
    run_args(args, 40, "cli:log", extra, cmd);
    proc *p = proc_start("leasehold", NULL, args);
    int pipe_size = fcntl(p->fd, F_SETPIPE_SZ, 4096);
    assert_true(pipe_size >= 4096 && pipe_size < 65536);
    beater b;
    wait_beaters(beats, 1, TEST_FRESH_REDIS_MS + 5000, &b);
    uint64_t deadline = test_now_ms() + test_ms(5000);
    int queued = 0;
    while (ioctl(p->fd, FIONREAD, &queued) == 0 && queued < pipe_size - 64) {
        if (test_now_ms() >= deadline)
            fail_msg("leasehold's stderr pipe holds %d bytes, not %d", queued, pipe_size);
        test_sleep_ms(10);
    }
    char holder[256];
    fixture_redis_get("cli:log", holder, sizeof holder);
    assert_true(holder[0] != '\0');

    const char *other_cmd[] = {test_process_self(), "beat", beats, NULL};
    run_args(args, 40, "cli:log", NULL, other_cmd);
    proc *f = proc_start("leasehold", NULL, args);
    expect_output(f, "campaigning", 5000);

    uint64_t until = test_now_ms() + 5000; /* five leases: a lower bound, not scaled */
    while (test_now_ms() < until) {
        redis_do("CLIENT KILL TYPE pubsub", NULL, NULL);
        for (int i = 0; i < 20; i++) {
            test_process_signal(p->pid, SIGHUP);
            test_sleep_ms(1);
        }
        char now_holder[256];
        fixture_redis_get("cli:log", now_holder, sizeof now_holder);
        beater bs[MAX_BEATERS];
        if (strcmp(now_holder, holder) != 0 || read_beats(beats, bs) != 1) {
            proc_show(f, "the other leasehold");
            fail_msg("the leader with a full stderr lost the key: held by '%s', was '%s'",
                     now_holder, holder);
        }
        test_sleep_ms(200);
    }
    expect_output(p, "log lines dropped", 5000);
    /* A line the I/O thread logged while stderr was full was kept. */
    assert_non_null(strstr(p->out, "events subscription: "));
    test_process_signal(f->pid, SIGTERM);
    expect_exit(f, 128 + SIGTERM, 5000);
    test_process_signal(p->pid, SIGTERM);
    expect_exit(p, 0, 5000);
    proc_free(f);
    proc_free(p);
}

/*
 * Timings derived from a huge --lease are computed without overflow; a
 * command timeout the renew deadline cannot hold is lowered and said so,
 * or, when given with --command-timeout, refused naming the option.
 */
static void test_timing_options(void **state)
{
    (void)state;
    redis_do("SET %s %s PX 60000", "cli:timing", "other/1"); /* nobody gets elected */
    static const struct {
        const char *lease, *timeout, *expect;
    } cases[] = {
        {"2000000000ms", NULL,
         "lease 2000000000 ms, renew every 300000000 ms, retry within 1000000000 ms, renew "
         "deadline 1500000000 ms, command timeout 250 ms"},
        {"4294967295ms", NULL,
         "lease 4294967295 ms, renew every 644245094 ms, retry within 2147483647 ms, renew "
         "deadline 3221225471 ms, command timeout 250 ms"},
        {"400ms", NULL, "command timeout lowered to 150 ms, half the renew deadline"},
        {"1s", "100ms", "renew deadline 750 ms, command timeout 100 ms"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *args[16] = {"run",        "--url",   fx.srv->url,   "--key",
                                "cli:timing", "--lease", cases[i].lease};
        size_t n = 7;
        if (cases[i].timeout) {
            args[n++] = "--command-timeout";
            args[n++] = cases[i].timeout;
        }
        args[n++] = "--";
        args[n++] = "true";
        proc *p = proc_start("leasehold", NULL, args);
        expect_output(p, cases[i].expect, 5000);
        test_process_signal(p->pid, SIGTERM);
        expect_exit(p, 128 + SIGTERM, 5000);
        proc_free(p);
    }
    redis_do("DEL %s", "cli:timing", NULL);

    const char *bad[] = {"run",   "--url", fx.srv->url, "--lease", "1s", "--command-timeout",
                         "600ms", "--",    "true",      NULL};
    proc *p = proc_start("leasehold", NULL, bad);
    expect_exit(p, 64, 5000);
    if (!strstr(p->out, "leasehold: --command-timeout 600ms is more than half of --renew-deadline "
                        "750ms (derived: 75% of --lease 1s): at most 375ms")) {
        proc_show(p, "leasehold");
        fail_msg("--command-timeout 600ms was not refused as it should be");
    }
    proc_free(p);
}

/* --restart keeps the lease and restarts CMD with a back-off; SIGTERM then
 * ends it. */
static void test_restart(void **state)
{
    (void)state;
    const char *out = tmp_path("restart.out");
    char script[700];
    snprintf(script, sizeof script, "echo \"$LEASEHOLD_EPOCH\" >> %s; exit 1", out);
    const char *cmd[] = {"sh", "-c", script, NULL};
    const char *extra[] = {"--restart", NULL};
    const char *args[40];
    run_args(args, 40, "cli:restart", extra, cmd);
    proc *p = proc_start("leasehold", NULL, args);
    expect_output(p, "restarting sh in 1000 ms", 10000); /* 500, then 1000: twice started */
    char holder[256];
    fixture_redis_get("cli:restart", holder, sizeof holder);
    expect_output(p, "restarting sh in 2000 ms", 3000);
    char still[256];
    fixture_redis_get("cli:restart", still, sizeof still);
    assert_string_equal(holder, still); /* one term all along */
    FILE *f = fopen(out, "r");
    assert_non_null(f);
    char e1[32], e2[32], e3[32];
    assert_int_equal(fscanf(f, "%31s %31s %31s", e1, e2, e3), 3);
    fclose(f);
    assert_string_equal(e1, e2);
    assert_string_equal(e2, e3);
    test_process_signal(p->pid, SIGTERM);
    expect_exit(p, 128 + SIGTERM, 5000);
    fixture_redis_get("cli:restart", still, sizeof still);
    assert_string_equal(still, "");
    proc_free(p);
}

/* --exit-on-loss: another token in the key ends the term: exit 79, CMD gone.
 * The key held by another before valid_until means the lease was lost early
 * (another process may act already), so the term's deadline is now and CMD
 * is killed at once rather than given until valid_until. */
static void test_exit_on_loss(void **state)
{
    (void)state;
    const char *beats = tmp_path("loss.beats");
    const char *cmd[] = {test_process_self(), "beat", beats, NULL};
    const char *extra[] = {"--exit-on-loss", NULL};
    const char *args[40];
    run_args(args, 40, "cli:loss", extra, cmd);
    proc *p = proc_start("leasehold", NULL, args);
    beater b;
    wait_beaters(beats, 1, 10000, &b);
    redis_do("SET %s %s PX 60000", "cli:loss", "intruder/1");
    expect_exit(p, 79, 3000);
    assert_false(pid_alive(b.pid));
    proc_free(p);
    redis_do("DEL %s", "cli:loss", NULL);
}

/* --wait-timeout: a key held by someone else; exit 75 in about that time. */
static void test_wait_timeout(void **state)
{
    (void)state;
    redis_do("SET %s %s PX 60000", "cli:wait", "other/1");
    const char *cmd[] = {"true", NULL};
    const char *extra[] = {"--wait-timeout", "500ms", NULL};
    const char *args[40];
    run_args(args, 40, "cli:wait", extra, cmd);
    uint64_t t0 = test_now_ms();
    proc *p = proc_start("leasehold", NULL, args);
    expect_exit(p, 75, 3000);
    assert_true(test_now_ms() - t0 >= 500);
    assert_non_null(strstr(p->out, "not elected within 500 ms"));
    proc_free(p);
    redis_do("DEL %s", "cli:wait", NULL);
}

/* SIGHUP is forwarded as it is; SIGTERM to a CMD that ignores it ends in
 * SIGKILL after --grace, exit 128+9, and only then the lease is released. */
static void test_signals_and_grace(void **state)
{
    (void)state;
    const char *beats = tmp_path("grace.beats");
    const char *cmd[] = {test_process_self(), "beat", beats, "stubborn", NULL};
    const char *extra[] = {"--grace", "400ms", NULL};
    const char *args[40];
    run_args(args, 40, "cli:grace", extra, cmd);
    proc *p = proc_start("leasehold", NULL, args);
    beater b;
    wait_beaters(beats, 1, 10000, &b);
    test_process_signal(p->pid, SIGHUP);
    uint64_t deadline = test_now_ms() + test_ms(2000);
    beater bs[MAX_BEATERS];
    while (read_beats(beats, bs) && !bs[0].hup && test_now_ms() < deadline)
        test_sleep_ms(10);
    assert_true(bs[0].hup);

    uint64_t t0 = test_now_ms();
    test_process_signal(p->pid, SIGTERM);
    test_sleep_ms(200); /* within the grace: CMD runs and the lease is held */
    char holder[256];
    fixture_redis_get("cli:grace", holder, sizeof holder);
    assert_true(holder[0] != '\0');
    assert_true(pid_alive(b.pid));
    expect_exit(p, 128 + SIGKILL, 3000);
    assert_true(test_now_ms() - t0 >= 400);
    assert_false(pid_alive(b.pid));
    fixture_redis_get("cli:grace", holder, sizeof holder);
    assert_string_equal(holder, "");
    /* A voluntary stop: no stepping down before the kill (the lease is
     * released on the way out, after CMD is reaped). */
    if (!strstr(p->out, "--grace has run out") || strstr(p->out, "no longer the leader")) {
        proc_show(p, "leasehold");
        fail_msg("the --grace SIGKILL was not logged as such, or the term was ended first");
    }
    proc_free(p);
}

/* Redis unreachable at start: 69, naming the URL. */
static void test_unreachable(void **state)
{
    (void)state;
    int port = redis_server_free_port();
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
    /* One line, in the format asked for (issue 9: it was text under json). */
    for (int json = 0; json < 2; json++) {
        const char *format = json ? "json" : "text";
        const char *run[] = {"run", "--log-format", format, "--url", url, "--", "true", NULL};
        const char *status[] = {"status", "--log-format", format, "--url", url, NULL};
        const char *watch[] = {"watch", "--log-format", format, "--url", url, NULL};
        const char *const *cases[] = {run, status, watch};
        for (int i = 0; i < 3; i++) {
            proc *p = proc_start("leasehold", NULL, cases[i]);
            expect_exit(p, 69, 5000);
            assert_non_null(strstr(p->out, url + 8));
            expect_one_error_line(p, json);
            proc_free(p);
        }
    }
}

/* Every usage error: exit 64 and one line, "leasehold: ..." (the command
 * line is not read yet: plain text, whatever --log-format says). */
static void test_usage_errors(void **state)
{
    (void)state;
    static const char *const cases[][9] = {
        {NULL},
        {"frobnicate"},
        {"run", "--url", "@R"},
        {"run", "--url", "@R", "--"},
        {"run", "--url", "@R", "--lease", "2000", "--", "true"},
        {"run", "--url", "@R", "--lease", "abc", "--", "true"},
        {"run", "--url", "@R", "--lease", "2x", "--", "true"},
        {"run", "--url", "@R", "--lease", "0ms", "--", "true"},
        {"run", "--url", "@R", "--lease", "-1s", "--", "true"},
        {"run", "--url", "@R", "--lease", "1.0005s", "--", "true"},
        {"run", "--url", "@R", "--lease", "9999999h", "--", "true"},
        {"run", "--url", "@R", "--lease", "0x10s", "--", "true"},
        {"run", "--url", "@R", "--lease", "1e3ms", "--", "true"},
        {"run", "--url", "@R", "--lease", "inf", "--", "true"},
        {"run", "--url", "@R", "--lease", " 2s", "--", "true"},
        {"run", "--url", "@R", "--lease", ".5s", "--", "true"},
        {"run", "--url", "@R", "--lease", "10ms", "--", "true"},
        {"run", "--url", "@R", "--id", "a b", "--", "true"},
        {"run", "--url", "@R", "-q", "--log-level", "debug", "--", "true"},
        {"run", "--url", "@R", "--renew", "", "--", "true"},
        {"run", "--url", "@R", "--retry", "s", "--", "true"},
        {"run", "--url", "@R", "--renew-deadline", "1990ms", "--", "true"},
        {"run", "--url", "@R", "--grace", "ten", "--", "true"},
        {"run", "--url", "@R", "--clock-drift-ppm", "0", "--", "true"},
        {"run", "--url", "@R", "--clock-drift-ppm", "1%", "--", "true"},
        {"run", "--url", "@R", "--clock-drift-ppm", "200001", "--", "true"},
        /* 20% of drift leaves 2000 ms of lease too little for a 1700 ms deadline */
        {"run", "--url", "@R", "--clock-drift-ppm", "200000", "--renew-deadline", "1700ms", "--",
         "true"},
        {"run", "--url", "@R", "--hold-after-exit", "0s", "--", "true"},
        {"run", "--url", "@R", "--hold-after-exit", "10", "--", "true"},
        {"run", "--url", "@R", "--restart", "--hold-after-exit", "1m", "--", "true"},
        {"run", "--url", "@R", "--renew", "5s", "--", "true"},
        {"run", "--url", "@R", "--lease"},
        {"run", "--url", "@R", "--bogus", "--", "true"},
        {"run", "--url", "@R", "-x", "--", "true"},
        {"run", "--url", "@R", "--json", "--", "true"},
        {"run", "--url", "@R", "--log-format", "xml", "--", "true"},
        {"run", "--url", "@R", "--key", "", "--", "true"},
        {"run", "--url", "@R", "--region", "", "--", "true"},
        {"run", "--url", "@R", "--id", "", "--", "true"},
        {"run", "--url", "@R", "--key", "k", "--region", "r", "--", "true"},
        {"run", "--url", "@R", "-q", "-v", "--", "true"},
        {"run", "--url", "", "--", "true"},
        {"run", "--", "true"},
        {"run", "--url", "http://127.0.0.1/", "--", "true"},
        {"status", "--url", "@R", "extra"},
        {"status", "--url", "@R", "--lease", "1s"},
        {"status"},
        {"watch", "--url", "@R", "--restart"},
        {"watch", "--url", "@R", "--json", "x"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *args[10] = {0};
        for (size_t j = 0; j < 9 && cases[i][j]; j++)
            args[j] = strcmp(cases[i][j], "@R") == 0 ? fx.srv->url : cases[i][j];
        proc *p = proc_start("leasehold", NULL, args);
        int code = proc_exit_code(p, 5000);
        int lines = 0;
        for (const char *c = p->out; *c; c++)
            lines += *c == '\n';
        if (code != 64 || lines != 1 || strncmp(p->out, "leasehold: ", 11) != 0) {
            proc_show(p, "leasehold");
            fail_msg("case %zu (%s %s %s %s): exit %d, %d lines", i, args[0] ? args[0] : "",
                     args[1] ? args[1] : "", args[3] ? args[3] : "", args[4] ? args[4] : "", code,
                     lines);
        }
        proc_free(p);
    }
    const char *help[] = {"--help", NULL};
    proc *p = proc_start("leasehold", NULL, help);
    expect_exit(p, 0, 5000);
    expect_mentions(p, "--help",
                    "--url|--key|--region|--id|--lease|--renew|--retry|--renew-deadline|--grace|"
                    "--wait-timeout|--restart|--exit-on-loss|--quiet|--verbose|--log-format|--json|"
                    "LEASEHOLD_EPOCH|LEASEHOLD_TOKEN|LEASEHOLD_KEY|SNAKETRON_REDIS_URL|"
                    "SNAKETRON_REGION| 75 | 79 |--try-once|--hold-after-exit| 64 | 69 |128+N|"
                    "read-only replica");
    proc_free(p);
}

/*
 * Item 4: a key with a control character is refused, from --key, --region
 * and SNAKETRON_REGION, by every subcommand: exit 64 and one line naming
 * where the value came from.  An empty SNAKETRON_REGION is refused too.
 */
static void test_control_characters_in_key(void **state)
{
    (void)state;
    static const struct {
        const char *env;     /* NULL: none */
        const char *args[8]; /* after the subcommand and --url */
        const char *message;
    } cases[] = {
        {NULL,
         {"--key", "jobs\nnightly"},
         "leasehold: --key: 'jobs\\x0anightly' holds a control character (byte 0x0a at offset "
         "4): the key must be printable"},
        {NULL,
         {"--region", "eu\x01"},
         "leasehold: --region: 'eu\\x01' holds a control character (byte 0x01 at offset 2): "
         "the region must be printable"},
        {"SNAKETRON_REGION=eu\nwest",
         {NULL},
         "leasehold: SNAKETRON_REGION: 'eu\\x0awest' holds a control character (byte 0x0a at "
         "offset 2): the region must be printable"},
        {"SNAKETRON_REGION=",
         {NULL},
         "leasehold: SNAKETRON_REGION is set but empty: name a region, or unset it for the "
         "region default"},
    };
    static const char *const commands[] = {"run", "status", "watch"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        for (size_t c = 0; c < 3; c++) {
            const char *args[16] = {commands[c], "--url", fx.srv->url};
            size_t n = 3;
            for (size_t a = 0; cases[i].args[a]; a++)
                args[n++] = cases[i].args[a];
            if (c == 0) {
                args[n++] = "--";
                args[n++] = "true";
            }
            const char *env[] = {cases[i].env, NULL};
            proc *p = proc_start("leasehold", env, args);
            int code = proc_exit_code(p, 5000);
            char want[600];
            snprintf(want, sizeof want, "%s\n", cases[i].message);
            if (code != 64 || strcmp(p->out, want) != 0) {
                proc_show(p, "leasehold");
                fail_msg("case %zu (%s): exit %d, want 64 and: %s", i, commands[c], code, want);
            }
            proc_free(p);
        }
    }
}

/* --version, alone and after a subcommand. */
static void test_version(void **state)
{
    (void)state;
    const char *alone[] = {"--version", NULL};
    const char *after[] = {"status", "--version", NULL};
    const char *const *cases[] = {alone, after};
    for (int i = 0; i < 2; i++) {
        proc *p = proc_start("leasehold", NULL, cases[i]);
        expect_exit(p, 0, 5000);
        if (strncmp(p->out, "leasehold 0.", 12) != 0 ||
            strchr(p->out, '\n') != p->out + strlen(p->out) - 1) {
            proc_show(p, "leasehold");
            fail_msg("--version does not print one line, leasehold 0.x.y");
        }
        proc_free(p);
    }
}

/* Item 5: --lease 200ms alone works (every other timing derived), and
 * says what it derived. */
static void test_short_lease_alone(void **state)
{
    (void)state;
    const char *args[] = {"run",     "--url", fx.srv->url, "--key", "cli:short",
                          "--lease", "200ms", "--",        "true",  NULL};
    proc *p = proc_start("leasehold", NULL, args);
    expect_exit(p, 0, 10000);
    if (!strstr(p->out, "lease 200 ms, renew every 30 ms, retry within 100 ms, renew deadline "
                        "146 ms, command timeout 73 ms")) {
        proc_show(p, "leasehold");
        fail_msg("--lease 200ms alone did not run with the derived timings");
    }
    proc_free(p);
}

/* status in text and JSON, with nobody and with a leader; the key from
 * SNAKETRON_REGION and the URL from SNAKETRON_REDIS_URL. */
static void test_status(void **state)
{
    (void)state;
    char url_env[700];
    snprintf(url_env, sizeof url_env, "SNAKETRON_REDIS_URL=%s", fx.srv->url);
    const char *env[] = {url_env, "SNAKETRON_REGION=cli-status", NULL};
    const char *text[] = {"status", NULL};
    const char *json[] = {"status", "--json", NULL};
    proc *p = proc_start("leasehold", env, text);
    expect_exit(p, 3, 5000);
    assert_non_null(strstr(p->out, "snaketron:leader:cli-status: no leader"));
    proc_free(p);
    p = proc_start("leasehold", env, json);
    expect_exit(p, 3, 5000);
    assert_non_null(strstr(p->out, "{\"key\":\"snaketron:leader:cli-status\",\"leader\":false,"
                                   "\"token\":null,\"epoch\":0,\"ttl_ms\":0,"
                                   "\"maxmemory_policy\":\"noeviction\"}\n"));
    proc_free(p);
    /* A Redis that may evict the key says so. */
    redis_do("CONFIG SET maxmemory-policy %s", "volatile-lru", NULL);
    p = proc_start("leasehold", env, text);
    expect_exit(p, 3, 5000);
    redis_do("CONFIG SET maxmemory-policy %s", "noeviction", NULL);
    if (!strstr(p->out, "no leader (last epoch 0); Redis maxmemory-policy is volatile-lru: it may "
                        "evict the lease key\n"))
        fail_msg("no eviction warning in: %s", p->out);
    proc_free(p);

    const char *beats = tmp_path("status.beats");
    const char *cmd[] = {test_process_self(), "beat", beats, NULL};
    const char *extra[] = {"--id", "st", NULL};
    const char *args[40];
    run_args(args, 40, "snaketron:leader:cli-status", extra, cmd);
    proc *leader = proc_start("leasehold", NULL, args);
    beater b;
    wait_beaters(beats, 1, 10000, &b);
    char token[256], line[700];
    fixture_redis_get("snaketron:leader:cli-status", token, sizeof token);
    p = proc_start("leasehold", env, text);
    expect_exit(p, 0, 5000);
    snprintf(line, sizeof line, "snaketron:leader:cli-status: leader %s, epoch %s, expires in ",
             token, b.epoch);
    if (!strstr(p->out, line))
        fail_msg("expected \"%s\" in: %s", line, p->out);
    proc_free(p);
    p = proc_start("leasehold", env, json);
    expect_exit(p, 0, 5000);
    snprintf(line, sizeof line,
             "{\"key\":\"snaketron:leader:cli-status\",\"leader\":true,\"token\":\"%s\","
             "\"epoch\":%s,\"ttl_ms\":",
             token, b.epoch);
    if (!strstr(p->out, line))
        fail_msg("expected \"%s\" in: %s", line, p->out);
    proc_free(p);
    test_process_signal(leader->pid, SIGTERM);
    expect_exit(leader, 0, 5000);
    proc_free(leader);
}

/* watch, text and JSON side by side, against a graceful leader (elected,
 * released) and a crashed one (elected, expired). */
static void test_watch(void **state)
{
    (void)state;
    const char *text[] = {"watch", "--url", fx.srv->url, "--key", "cli:watch", NULL};
    const char *json[] = {"watch", "--url", fx.srv->url, "--key", "cli:watch", "--json", NULL};
    proc *wt = proc_start("leasehold", NULL, text);
    proc *wj = proc_start("leasehold", NULL, json);
    test_sleep_ms(300); /* let both subscribe */

    const char *beats = tmp_path("watch.beats");
    const char *cmd[] = {test_process_self(), "beat", beats, NULL};
    const char *extra[] = {"--log-format", "json", NULL};
    const char *args[40];
    run_args(args, 40, "cli:watch", extra, cmd);
    proc *a = proc_start("leasehold", NULL, args);
    beater b;
    wait_beaters(beats, 1, 10000, &b);
    char line[600];
    snprintf(line, sizeof line, " cli:watch elected epoch=%s token=", b.epoch);
    expect_output(wt, line, 2000);
    snprintf(line, sizeof line, "\"key\":\"cli:watch\",\"event\":\"elected\",\"epoch\":%s,",
             b.epoch);
    expect_output(wj, line, 2000);
    expect_output(a, "{\"ts\":\"", 1000); /* its own log is JSON */
    assert_non_null(strstr(a->out, "\"prog\":\"leasehold\",\"key\":\"cli:watch\""));
    test_process_signal(a->pid, SIGTERM);
    expect_exit(a, 0, 5000);
    snprintf(line, sizeof line, " cli:watch released epoch=%s token=", b.epoch);
    expect_output(wt, line, 2000);
    snprintf(line, sizeof line, "\"event\":\"released\",\"epoch\":%s,", b.epoch);
    expect_output(wj, line, 2000);

    proc *c = proc_start("leasehold", NULL, args);
    beater b2;
    wait_beaters(beats, 2, 5000, &b2);
    snprintf(line, sizeof line, " cli:watch elected epoch=%s token=", b2.epoch);
    expect_output(wt, line, 2000);
    test_process_signal(c->pid, SIGKILL);
    expect_exit(c, 128 + SIGKILL, 2000);
    snprintf(line, sizeof line, " cli:watch expired epoch=%s", b2.epoch);
    expect_output(wt, line, 3000);
    snprintf(line, sizeof line, "\"event\":\"expired\",\"epoch\":%s", b2.epoch);
    expect_output(wj, line, 3000);
    /* Each text line: "<UTC> key change ..." */
    assert_true(strlen(wt->out) > 25 && wt->out[10] == 'T' && wt->out[23] == 'Z');

    test_process_signal(wt->pid, SIGINT);
    expect_exit(wt, 0, 3000);
    test_process_signal(wj->pid, SIGTERM);
    expect_exit(wj, 0, 3000);
    proc_free(wt);
    proc_free(wj);
    proc_free(a);
    proc_free(c);
}

/* ------------------------------------------- permanent errors (issue 9) */

/* args: `command` against url and key (run: fast timing, then -- CMD);
 * room for 24. */
static void perm_args(const char **args, const char *command, const char *url, const char *key,
                      const char *const cmd[])
{
    size_t n = 0;
    const char *base[] = {command, "--url", url, "--key", key, NULL};
    for (size_t i = 0; base[i]; i++)
        args[n++] = base[i];
    if (strcmp(command, "run") == 0) {
        const char *timing[] = {"--lease",          "1s",    "--renew", "100ms", "--retry", "300ms",
                                "--renew-deadline", "700ms", "--",      NULL};
        for (size_t i = 0; timing[i]; i++)
            args[n++] = timing[i];
        for (size_t i = 0; cmd[i]; i++)
            args[n++] = cmd[i];
    }
    args[n] = NULL;
    assert_true(n < 24);
}

/*
 * Issue 9's table: run and watch each exit with the table's status within
 * 10 s (they used to retry for ever), having logged exactly one ERROR line,
 * which names the cause; watch goes on where it can read (a replica).
 * status answers with its own status and the same cause.
 */
static void test_permanent_errors(void **state)
{
    (void)state;
    const char *cmd[] = {"true", NULL};
    for (size_t i = 0; i < PERM_CASES; i++) {
        const perm_case *pc = &perm_cases[i];
        char key[64];
        snprintf(key, sizeof key, "cli:perm:%zu", i);
        const char *url = perm_prepare(fx.srv, i, key);
        const char *run[24], *watch[24], *status[24];
        perm_args(run, "run", url, key, cmd);
        perm_args(watch, "watch", url, key, NULL);
        perm_args(status, "status", url, key, NULL);
        fprintf(stderr, "case %zu: %s\n", i, pc->name);
        proc *r = proc_start("leasehold", NULL, run);
        proc *w = proc_start("leasehold", NULL, watch);
        expect_exit(r, pc->exit_code, 10000);
        expect_one_error(r, pc->needle);
        if (pc->watch_halts) {
            expect_exit(w, pc->exit_code, 10000);
            expect_one_error(w, pc->needle);
        } else {
            proc_read(w, 200);
            assert_null(strstr(w->out, " ERROR "));
            test_process_signal(w->pid, SIGTERM);
            expect_exit(w, 0, 5000);
        }
        proc *st = proc_start("leasehold", NULL, status);
        expect_exit(st, pc->status_code, 10000);
        if (pc->status_code != 3 && !strstr(st->out, pc->needle)) {
            proc_show(st, "status");
            fail_msg("status does not say \"%s\"", pc->needle);
        }
        proc_free(r);
        proc_free(w);
        proc_free(st);
        perm_done();
    }
}

/* A leader whose ACL loses EVALSHA mid-term: CMD is stopped as on a loss,
 * then leasehold exits 69 with one ERROR line naming the missing right. */
static void test_permanent_error_while_leader(void **state)
{
    (void)state;
    redis_do("ACL SETUSER %s reset on >pw ~* &* +@all", "lh-leader", NULL);
    char url[128];
    snprintf(url, sizeof url, "redis://lh-leader:pw@127.0.0.1:%d", fx.srv->port);
    const char *beats = tmp_path("perm.beats");
    const char *cmd[] = {test_process_self(), "beat", beats, NULL};
    const char *args[24];
    perm_args(args, "run", url, "cli:perm:leader", cmd);
    proc *p = proc_start("leasehold", NULL, args);
    beater b;
    wait_beaters(beats, 1, 10000, &b);
    redis_do("ACL SETUSER %s -evalsha", "lh-leader", NULL);
    expect_exit(p, 69, 10000);
    expect_one_error(p, "may not run 'evalsha'");
    assert_non_null(
        strstr(p->out, "no longer the leader (halted): SIGTERM to CMD's process group"));
    assert_false(pid_alive(b.pid));
    proc_free(p);
}

/*
 * A key held, with a TTL, by a value that is not a leasehold token (another
 * program's, or the original module's): status exits 65 and shows the value
 * and its TTL; watch shows it escaped; run says so once, waits, and leads
 * once the key expires.
 */
static void test_foreign_holder(void **state)
{
    (void)state;
    const char *key = "cli:perm:foreign";
    redis_do("SET %s %s PX 60000", key, "other\nprogram");
    const char *status[24],
        *json[] = {"status", "--url", fx.srv->url, "--key", key, "--json", NULL};
    perm_args(status, "status", fx.srv->url, key, NULL);
    proc *st = proc_start("leasehold", NULL, status);
    expect_exit(st, 65, 5000);
    if (!strstr(st->out, "cli:perm:foreign: held by \"other\\nprogram\" (expires in ") ||
        !strstr(st->out, "which is not a leasehold token")) {
        proc_show(st, "status");
        fail_msg("status does not show the foreign value");
    }
    proc_free(st);
    st = proc_start("leasehold", NULL, json);
    expect_exit(st, 65, 5000);
    if (!strstr(st->out, "{\"key\":\"cli:perm:foreign\",\"leader\":false,\"token\":null,"
                         "\"value\":\"other\\nprogram\",\"epoch\":0,\"ttl_ms\":") ||
        !strstr(st->out, "\"error\":\"the key holds a value that is not a leasehold token\"}")) {
        proc_show(st, "status --json");
        fail_msg("status --json does not show the foreign value");
    }
    proc_free(st);

    /* watch shows the holder first, escaped, without the key's epoch */
    const char *watch[] = {"watch", "--url", fx.srv->url, "--key", key, NULL};
    proc *w = proc_start("leasehold", NULL, watch);
    expect_output(w, " cli:perm:foreign leader token=\"other\\nprogram\"\n", 5000);

    const char *beats = tmp_path("foreign.beats");
    const char *cmd[] = {test_process_self(), "beat", beats, NULL};
    const char *run[24];
    perm_args(run, "run", fx.srv->url, key, cmd);
    proc *p = proc_start("leasehold", NULL, run);
    const char *warn = "which is not a leasehold token";
    expect_output(p, warn, 5000);
    redis_do("PEXPIRE %s %s", key, "300"); /* the other program's lease runs out */
    wait_beaters(beats, 1, 10000, NULL);
    proc_read(p, 100);
    const char *first = strstr(p->out, warn);
    if (!first || strstr(first + 1, warn) || strstr(p->out, " ERROR ")) {
        proc_show(p, "leasehold run");
        fail_msg("expected one warning about the foreign holder and no ERROR");
    }
    test_process_signal(p->pid, SIGTERM);
    expect_exit(p, 0, 5000);
    test_process_signal(w->pid, SIGTERM);
    expect_exit(w, 0, 5000);
    proc_free(p);
    proc_free(w);
}

/* A proc_pred: p printed the text of a text_times that many times. */
typedef struct text_times {
    const char *text;
    int times;
} text_times;
static bool prints_times(const proc *p, const void *arg)
{
    const text_times *tt = arg;
    int n = 0;
    for (const char *c = strstr(p->out, tt->text); c; c = strstr(c + 1, tt->text))
        n++;
    return n >= tt->times;
}

/* A transient error (OOM: maxmemory too small) is retried and logged once
 * at ERROR, its repeats at DEBUG only; once it clears, run leads. */
static void test_transient_error_once(void **state)
{
    (void)state;
    redis_do("CONFIG SET maxmemory %s", "1", NULL);
    const char *args[] = {"run",          "-v",      "--url", fx.srv->url, "--key",
                          "cli:perm:oom", "--lease", "1s",    "--retry",   "300ms",
                          "--",           "true",    NULL};
    proc *p = proc_start("leasehold", NULL, args);
    const char *oom = "OOM command not allowed";
    const text_times thrice = {oom, 3};
    proc *ps[] = {p};
    int seen = procs_wait(ps, 1, prints_times, &thrice, test_now_ms() + test_ms(10000));
    redis_do("CONFIG SET maxmemory %s", "0", NULL);
    if (seen != 0) {
        proc_show(p, "leasehold run");
        fail_msg("the OOM was not retried 3 times within 10 s");
    }
    expect_one_error(p, oom);
    expect_exit(p, 0, 10000);
    proc_free(p);
}

/* ---------------------------------------- issue 9: run's stop, watch, CMD */

/* Runs `/bin/sh -c command` (leasehold found in the build directory by its
 * path) with stdout and stderr into out; waits up to test_ms(max_ms) and
 * fails the test if it still runs; the shell's exit status, and in
 * *took_ms how long it ran. */
static int sh_run(const char *command, char *out, size_t size, uint64_t max_ms, uint64_t *took_ms)
{
    const char *path = tmp_path("sh_run.out");
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    char *argv[] = {"/bin/sh", "-c", (char *)command, NULL};
    uint64_t t0 = test_now_ms();
    pid_t pid = test_process_spawn_stdio(argv, -1, fd, fd);
    close(fd);
    assert_true(pid > 0);
    int status;
    if (!test_process_wait(pid, test_ms(max_ms), &status)) {
        test_process_kill(pid);
        fail_msg("`%s` still ran after %llu ms", command, (unsigned long long)test_ms(max_ms));
    }
    *took_ms = test_now_ms() - t0;
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(out, 1, size - 1, f);
    out[n] = '\0';
    fclose(f);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

/* Starts leasehold run with CMD on key, and waits for CMD to be started. */
static proc *start_leader(const char *key, const char *const cmd[])
{
    const char *args[40];
    run_args(args, 40, key, NULL, cmd);
    proc *p = proc_start("leasehold", NULL, args);
    expect_output(p, "leader: started ", 10000);
    return p;
}

/*
 * Item 8, a stop as systemd makes one: SIGTERM (or SIGINT) to leasehold,
 * forwarded to CMD, which obeys by dying of it: exit 0, lease released.  A
 * CMD that answers the stop with a status of its own keeps it; a leasehold
 * stopped before CMD ran (another process leads) exits 128+15.
 */
static void test_stop_exit_status(void **state)
{
    (void)state;
    const char *sleeper[] = {"sleep", "1000", NULL};
    proc *p = start_leader("cli:stop", sleeper);
    test_process_signal(p->pid, SIGTERM);
    expect_exit(p, 0, 5000);
    assert_non_null(strstr(p->out, "was killed by signal 15"));
    char holder[256];
    fixture_redis_get("cli:stop", holder, sizeof holder);
    assert_string_equal(holder, "");
    proc_free(p);

    p = start_leader("cli:stop", sleeper);
    test_process_signal(p->pid, SIGINT);
    expect_exit(p, 0, 5000);
    proc_free(p);

    const char *ready = tmp_path("stop.ready");
    char script[700];
    snprintf(script, sizeof script, "trap 'exit 3' TERM; : > '%s'; while :; do sleep 0.05; done",
             ready);
    const char *own_status[] = {"sh", "-c", script, NULL};
    p = start_leader("cli:stop", own_status);
    uint64_t deadline = test_now_ms() + test_ms(5000);
    while (access(ready, F_OK) != 0 && test_now_ms() < deadline)
        test_sleep_ms(5);
    assert_int_equal(access(ready, F_OK), 0); /* the trap is set */
    test_process_signal(p->pid, SIGTERM);
    expect_exit(p, 3, 5000);
    proc_free(p);

    redis_do("SET %s %s PX 60000", "cli:stop", "other:1/0123456789abcdef");
    const char *args[40];
    run_args(args, 40, "cli:stop", NULL, sleeper);
    p = proc_start("leasehold", NULL, args);
    expect_output(p, "new leader", 10000);
    test_process_signal(p->pid, SIGTERM);
    expect_exit(p, 128 + SIGTERM, 5000);
    proc_free(p);
    redis_do("DEL %s", "cli:stop", NULL);
}

/*
 * Item 9: `watch | head -1` ends as soon as head does, with nobody leading
 * (no change ever comes to write into the closed pipe), and its first line
 * is the current state: `no leader`, in text and JSON; then with a leader,
 * its epoch and token.  watch itself exits 0.
 */
static void test_watch_current_and_closed_stdout(void **state)
{
    (void)state;
    const char *bin = getenv("LEASEHOLD_BUILD_DIR");
    char command[1200], out[4096];
    uint64_t took;
    snprintf(command, sizeof command,
             "{ '%s/leasehold' watch --url '%s' --key cli:head; echo \"watch=$?\" >&2; } | "
             "head -1",
             bin ? bin : ".", fx.srv->url);
    assert_int_equal(sh_run(command, out, sizeof out, 5000, &took), 0);
    print_message("watch | head -1 with nobody leading: %llu ms\n", (unsigned long long)took);
    if (!strstr(out, " cli:head no leader\n") || !strstr(out, "watch=0\n") || out[10] != 'T')
        fail_msg("unexpected output of `%s`:\n%s", command, out);

    snprintf(command, sizeof command,
             "'%s/leasehold' watch --json --url '%s' --key cli:head | head -1", bin ? bin : ".",
             fx.srv->url);
    assert_int_equal(sh_run(command, out, sizeof out, 5000, &took), 0);
    if (!strstr(out, "\"key\":\"cli:head\",\"event\":\"current\",\"leader\":false,\"epoch\":null,"
                     "\"token\":null}\n"))
        fail_msg("unexpected output of `%s`:\n%s", command, out);

    const char *beats = tmp_path("head.beats");
    const char *cmd[] = {test_process_self(), "beat", beats, NULL};
    proc *leader = start_leader("cli:head", cmd);
    beater b;
    wait_beaters(beats, 1, 5000, &b);
    char token[256], line[600];
    fixture_redis_get("cli:head", token, sizeof token);
    snprintf(command, sizeof command, "'%s/leasehold' watch --url '%s' --key cli:head | head -1",
             bin ? bin : ".", fx.srv->url);
    assert_int_equal(sh_run(command, out, sizeof out, 5000, &took), 0);
    snprintf(line, sizeof line, " cli:head leader epoch=%s token=%s\n", b.epoch, token);
    if (!strstr(out, line))
        fail_msg("expected \"%s\" in:\n%s", line, out);
    test_process_signal(leader->pid, SIGTERM);
    expect_exit(leader, 0, 5000);
    proc_free(leader);
}

/*
 * Item 10: a CMD that is not found (127) or cannot be executed (126) ends
 * leasehold at once with one line, before any claim, even while another
 * process holds the key for a minute; the key is left as it was.
 */
static void test_cmd_checked_first(void **state)
{
    (void)state;
    redis_do("SET %s %s PX 60000", "cli:cmdcheck", "intruder/1");
    const char *noexec = tmp_path("cmdcheck-noexec");
    FILE *f = fopen(noexec, "w");
    assert_non_null(f);
    fputs("#!/bin/sh\nexit 0\n", f);
    fclose(f);
    assert_int_equal(chmod(noexec, 0644), 0);
    struct {
        const char *cmd;
        int code;
        const char *says;
    } cases[] = {
        {"lh-no-such-command", 127, "cannot run lh-no-such-command: command not found"},
        {"/nonexistent/dir/cmd", 127, "cannot run /nonexistent/dir/cmd: no such file"},
        {noexec, 126, "not an executable file"},
        {"/tmp", 126, "not an executable file"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *cmd[] = {cases[i].cmd, NULL};
        const char *args[40];
        run_args(args, 40, "cli:cmdcheck", NULL, cmd);
        proc *p = proc_start("leasehold", NULL, args);
        expect_exit(p, cases[i].code, 3000);
        expect_one_error_line(p, false);
        if (!strstr(p->out, cases[i].says))
            fail_msg("case %zu (%s): expected a line saying \"%s\", got:\n%s", i, cases[i].cmd,
                     cases[i].says, p->out);
        proc_free(p);
    }
    char holder[256];
    fixture_redis_get("cli:cmdcheck", holder, sizeof holder);
    assert_string_equal(holder, "intruder/1");
    redis_do("DEL %s", "cli:cmdcheck", NULL);
}

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "beat") == 0)
        return beat_main(argv[2], argc >= 4 && strcmp(argv[3], "stubborn") == 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_usage_errors, proc_free_all),
        cmocka_unit_test_teardown(test_control_characters_in_key, proc_free_all),
        cmocka_unit_test_teardown(test_version, proc_free_all),
        cmocka_unit_test_teardown(test_short_lease_alone, proc_free_all),
        cmocka_unit_test_teardown(test_unreachable, proc_free_all),
        cmocka_unit_test_teardown(test_three_instances_no_overlap, proc_free_all),
        cmocka_unit_test_teardown(test_env_and_exit_status, proc_free_all),
        cmocka_unit_test_teardown(test_redis_paused_kills_before_expiry, proc_free_all),
        cmocka_unit_test_teardown(test_stopped_leasehold, proc_free_all),
        cmocka_unit_test_teardown(test_guardian_killed_while_stopped, proc_free_all),
        cmocka_unit_test_teardown(test_full_stderr_keeps_leading, proc_free_all),
        cmocka_unit_test_teardown(test_timing_options, proc_free_all),
        cmocka_unit_test_teardown(test_restart, proc_free_all),
        cmocka_unit_test_teardown(test_exit_on_loss, proc_free_all),
        cmocka_unit_test_teardown(test_wait_timeout, proc_free_all),
        cmocka_unit_test_teardown(test_signals_and_grace, proc_free_all),
        cmocka_unit_test_teardown(test_status, proc_free_all),
        cmocka_unit_test_teardown(test_watch, proc_free_all),
        cmocka_unit_test_teardown(test_permanent_errors, proc_free_all),
        cmocka_unit_test_teardown(test_permanent_error_while_leader, proc_free_all),
        cmocka_unit_test_teardown(test_foreign_holder, proc_free_all),
        cmocka_unit_test_teardown(test_transient_error_once, proc_free_all),
        cmocka_unit_test_teardown(test_stop_exit_status, proc_free_all),
        cmocka_unit_test_teardown(test_watch_current_and_closed_stdout, proc_free_all),
        cmocka_unit_test_teardown(test_cmd_checked_first, proc_free_all),
    };
    const char *only = getenv("TEST_CLI_ONLY"); /* a cmocka pattern, to run some tests alone */
    if (only && *only)
        cmocka_set_test_filter(only);
    return cmocka_run_group_tests(tests, fixture_group_setup_tmpdir, fixture_group_teardown);
}
