/* tool_proc.c — our programs run by the tests as child processes, their
 * output captured through a pipe (see tool_proc.h). */
#include "tool_proc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "redis_server.h"
#include "testutil.h"

static proc *live[PROC_MAX]; /* every proc not yet freed, for the teardown */

proc *proc_start(const char *tool, const char *const env[], const char *const args[])
{
    char path[4096];
    const char *dir = getenv("LEASEHOLD_BUILD_DIR");
    if (tool[0] == '/')
        snprintf(path, sizeof path, "%s", tool);
    else
        snprintf(path, sizeof path, "%s/%s", dir ? dir : ".", tool);

    const char *argv[96];
    size_t n = 0;
    argv[n++] = "env";
    argv[n++] = "-u";
    argv[n++] = "SNAKETRON_REDIS_URL";
    argv[n++] = "-u";
    argv[n++] = "SNAKETRON_REGION";
    for (size_t i = 0; env && env[i]; i++) {
        assert_true(n < 80);
        argv[n++] = env[i];
    }
    argv[n++] = "/bin/sh"; /* so that its stderr joins stdout, and the pid stays its own */
    argv[n++] = "-c";
    argv[n++] = "exec \"$0\" \"$@\" 2>&1";
    argv[n++] = path;
    for (size_t i = 0; args[i]; i++) {
        assert_true(n < 95);
        argv[n++] = args[i];
    }
    argv[n] = NULL;

    int fds[2];
    assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
    proc *p = calloc(1, sizeof *p);
    assert_non_null(p);
    p->pid = test_process_spawn((char *const *)argv, fds[1]);
    close(fds[1]);
    p->fd = fds[0];
    assert_true(p->pid > 0);
    for (int i = 0; i < PROC_MAX; i++) {
        if (!live[i]) {
            live[i] = p;
            return p;
        }
    }
    fail_msg("more than %d processes at once", PROC_MAX);
    return NULL;
}

void proc_free(proc *p)
{
    if (!p)
        return;
    if (p->pid > 0)
        test_process_kill(p->pid);
    close(p->fd);
    for (int i = 0; i < PROC_MAX; i++)
        if (live[i] == p)
            live[i] = NULL;
    free(p);
}

int proc_free_all(void **state)
{
    (void)state;
    for (int i = 0; i < PROC_MAX; i++)
        proc_free(live[i]);
    return 0;
}

void proc_read(proc *p, int wait_ms)
{
    struct pollfd pfd = {.fd = p->fd, .events = POLLIN};
    while (!p->eof && poll(&pfd, 1, wait_ms) > 0) {
        if (p->len >= PROC_OUTPUT_MAX - 1) { /* full: keep the first lines, drop the rest */
            char sink[4096];
            ssize_t n = read(p->fd, sink, sizeof sink);
            if (n < 0 && errno == EINTR)
                continue;
            p->eof = n == 0;
            if (n <= 0)
                return;
            continue;
        }
        ssize_t n = read(p->fd, p->out + p->len, PROC_OUTPUT_MAX - 1 - p->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            p->eof = true;
            return;
        }
        p->len += (size_t)n;
        p->out[p->len] = '\0';
        wait_ms = 0;
    }
}

int procs_wait(proc *const ps[], int n, proc_pred pred, const void *arg, uint64_t deadline_ms)
{
    for (;;) {
        struct pollfd pfds[PROC_MAX];
        int open = 0;
        for (int i = 0; i < n; i++) {
            if (ps[i] && pred(ps[i], arg))
                return i;
            if (ps[i] && !ps[i]->eof)
                pfds[open++] = (struct pollfd){.fd = ps[i]->fd, .events = POLLIN};
        }
        uint64_t now = test_now_ms();
        if (now >= deadline_ms || open == 0)
            return -1;
        if (poll(pfds, (nfds_t)open, (int)(deadline_ms - now)) < 0 && errno != EINTR)
            return -1;
        for (int i = 0; i < n; i++)
            if (ps[i])
                proc_read(ps[i], 0);
    }
}

bool proc_has_text(const proc *p, const void *needle)
{
    return strstr(p->out, needle) != NULL;
}

void proc_show(const proc *p, const char *what)
{
    fprintf(stderr, "--- %s printed:\n%s--- end\n", what, p->out);
}

void procs_show_all(const char *what)
{
    for (int i = 0; i < PROC_MAX; i++)
        if (live[i])
            proc_show(live[i], what);
}

void expect_output(proc *p, const char *needle, uint64_t max_ms)
{
    proc *ps[] = {p};
    if (procs_wait(ps, 1, proc_has_text, needle, test_now_ms() + test_ms(max_ms)) != 0) {
        proc_show(p, "the process");
        fail_msg("no \"%s\" within %llu ms", needle, (unsigned long long)test_ms(max_ms));
    }
}

int first_to_print(proc *const ps[], int n, const char *needle, uint64_t max_ms)
{
    int i = procs_wait(ps, n, proc_has_text, needle, test_now_ms() + test_ms(max_ms));
    if (i < 0) {
        for (int k = 0; k < n; k++)
            proc_show(ps[k], "a process");
        fail_msg("none of %d processes printed \"%s\" within %llu ms", n, needle,
                 (unsigned long long)test_ms(max_ms));
    }
    return i;
}

/* waitid(WNOWAIT) looks without reaping, so the pid stays ours until
 * test_process_kill() reaps it and the harness forgets it. */
int proc_exit_code(proc *p, uint64_t max_ms)
{
    uint64_t deadline = test_now_ms() + test_ms(max_ms);
    siginfo_t info;
    for (;;) {
        proc_read(p, 20);
        memset(&info, 0, sizeof info);
        if (waitid(P_PID, (id_t)p->pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
            info.si_pid == p->pid)
            break;
        if (test_now_ms() >= deadline) {
            proc_show(p, "the process");
            fail_msg("pid %d did not exit within %llu ms", (int)p->pid,
                     (unsigned long long)test_ms(max_ms));
        }
    }
    proc_read(p, 200); /* what it printed last (a grandchild may keep the pipe open) */
    test_process_kill(p->pid);
    p->pid = 0;
    return info.si_code == CLD_EXITED ? info.si_status : 128 + info.si_status;
}

void expect_exit(proc *p, int code, uint64_t max_ms)
{
    int got = proc_exit_code(p, max_ms);
    if (got != code) {
        proc_show(p, "the process");
        fail_msg("exit code %d, expected %d", got, code);
    }
}

void expect_mentions(const proc *p, const char *what, const char *needles)
{
    for (const char *n = needles; *n;) {
        size_t len = strcspn(n, "|");
        char needle[128];
        snprintf(needle, sizeof needle, "%.*s", (int)len, n);
        if (!strstr(p->out, needle)) {
            proc_show(p, what);
            fail_msg("%s does not mention %s", what, needle);
        }
        n += len + (n[len] == '|');
    }
}

void expect_one_error(const proc *p, const char *needle)
{
    const char *first = strstr(p->out, " ERROR ");
    const char *eol = first ? strchr(first, '\n') : NULL;
    size_t len = eol ? (size_t)(eol - first) : first ? strlen(first) : 0;
    char line[1024];
    snprintf(line, sizeof line, "%.*s", (int)len, first ? first : "");
    if (!first || !strstr(line, needle) || (eol && strstr(eol, " ERROR "))) {
        proc_show(p, "the process");
        fail_msg("expected one ERROR line, with \"%s\"", needle);
    }
}

void expect_one_error_line(const proc *p, bool json)
{
    const char *nl = strchr(p->out, '\n');
    bool one = nl && nl[1] == '\0';
    bool shaped = json ? strncmp(p->out, "{\"ts\":\"", 7) == 0 && nl && nl[-1] == '}' &&
                             strstr(p->out, "\"level\":\"error\"") != NULL
                       : strstr(p->out, " ERROR ") != NULL && p->out[0] != '{';
    if (!one || !shaped) {
        proc_show(p, "the process");
        fail_msg("expected exactly one %s error line", json ? "JSON" : "text");
    }
}
