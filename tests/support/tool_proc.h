/* tool_proc.h — one of our programs (server, leasehold) run by a test as a
 * child process, with everything it prints captured.  Assertions (cmocka)
 * fail the calling test, so call these on the test's own thread only. */
#ifndef LEASEHOLD_TOOL_PROC_H
#define LEASEHOLD_TOOL_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define PROC_OUTPUT_MAX 65536
#define PROC_MAX        8 /* processes alive at once */

typedef struct proc {
    pid_t pid; /* 0 once reaped */
    int fd;    /* read end of its stdout + stderr */
    bool eof;
    size_t len;
    char out[PROC_OUTPUT_MAX]; /* NUL-terminated; past the limit the rest is dropped */
} proc;

/* Starts $LEASEHOLD_BUILD_DIR/<tool> (<tool> itself when it is an absolute
 * path) with `env` assignments (NULL-terminated, may be NULL) and `args`
 * (NULL-terminated).  SNAKETRON_REDIS_URL and
 * SNAKETRON_REGION are cleared first, so only what the test gives counts. */
proc *proc_start(const char *tool, const char *const env[], const char *const args[]);

/* Kills p if it still runs, reaps it and frees it.  NULL is fine. */
void proc_free(proc *p);

/* A cmocka teardown: frees whatever a (failed) test left running. */
int proc_free_all(void **state);

/* Reads what p has printed, waiting up to wait_ms for something. */
void proc_read(proc *p, int wait_ms);

/* Reads from every proc in ps until pred(p, arg) holds for one of them
 * (returns its index), or until deadline_ms of test_now_ms() (-1). */
typedef bool (*proc_pred)(const proc *p, const void *arg);
int procs_wait(proc *const ps[], int n, proc_pred pred, const void *arg, uint64_t deadline_ms);

/* A proc_pred: p printed the string arg. */
bool proc_has_text(const proc *p, const void *needle);

/* Shows on stderr what p printed, and what every live proc printed. */
void proc_show(const proc *p, const char *what);
void procs_show_all(const char *what);

/* Waits up to test_ms(max_ms) for p to print needle; else fails the test,
 * showing what p printed. */
void expect_output(proc *p, const char *needle, uint64_t max_ms);

/* The index of the first of ps to print needle within test_ms(max_ms); else
 * fails the test, showing what each printed. */
int first_to_print(proc *const ps[], int n, const char *needle, uint64_t max_ms);

/* Waits up to test_ms(max_ms) for p to exit, reads its output and reaps it;
 * returns its exit code (128 + N if killed by signal N). */
int proc_exit_code(proc *p, uint64_t max_ms);

/* Fails the test unless p printed exactly one line, an error log line in
 * the format asked for: with json, one JSON object with "level":"error";
 * else a text line with " ERROR ".  For start-up failures, which must be
 * said once, in the chosen format. */
void expect_one_error_line(const proc *p, bool json);

/* Fails the test unless p printed every one of needles ('|'-separated),
 * showing what p printed and naming the first one missing from `what`
 * (e.g. "--help"). */
void expect_mentions(const proc *p, const char *what, const char *needles);

/* As proc_exit_code(); fails the test unless the code is `code`. */
void expect_exit(proc *p, int code, uint64_t max_ms);

/* Fails the test unless p logged exactly one ERROR line and it holds
 * needle. */
void expect_one_error(const proc *p, const char *needle);

#endif
