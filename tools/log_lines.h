/*
 * log_lines.h — log lines on stderr for `leasehold` and `server`: one line
 * per event in one write(), text or JSON, never waiting for stderr
 * (log_sink.h).  Also the small text helpers the lines are made with.
 * Uses only the public <leasehold.h>.
 *
 *   text: 2026-11-26T07:50:18.205Z INFO  [PROG ]KEY epoch=E token=T: message
 *   json: {"ts":"2026-...Z","level":"info","prog":"PROG","key":"KEY",
 *          "epoch":E,"token":"T","msg":"message"}
 */
#ifndef LEASEHOLD_LOG_LINES_H
#define LEASEHOLD_LOG_LINES_H

#include <leasehold.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

typedef enum cli_log_format { CLI_LOG_TEXT, CLI_LOG_JSON } cli_log_format;

/* Sets where log lines go and what they carry, and starts the thread that
 * writes them (log_sink.h); call once, before any other thread starts.
 * prog names the program in JSON lines ("prog") and, when prog_in_text, in
 * text lines too (leasehold shares stderr with CMD; server's lines keep the
 * original module's shape).  0, or errno when that thread cannot start. */
int cli_log_init(const char *prog, bool prog_in_text, leasehold_log_level level,
                 cli_log_format format, const char *key);

/* Waits a little (1 s at most) for the queued log lines to reach stderr;
 * for the way out. */
void cli_log_flush(void);

/* Logs one line to stderr in one write(): UTC time, level, key, then
 * epoch and token when given (0 and NULL are left out), then the message.
 * Lines above the configured level are not formatted.  Never waits for
 * stderr: when it does not take lines in time they are dropped, counted
 * and reported once it does.  Thread-safe. */
void cli_log(leasehold_log_level level, uint64_t epoch, const char *token, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* A start-up failure, said once.  usage: a command-line value was refused
 * (exit 64): "<prog>: message", plain text as every usage error is, whatever
 * the log format; otherwise an ERROR log line in the chosen format.  Both go
 * through the same queue as the log lines, so the order holds. */
void cli_fatal(bool usage, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A leasehold_log_fn routing the library's lines into cli_log(). */
void cli_library_log(leasehold_log_level level, const char *msg, void *arg);

/* Writes ts as "2026-11-26T07:50:18.205Z" into out (at least 32 bytes). */
void cli_utc_stamp(const struct timespec *ts, char *out, size_t size);

/* Appends s to out (of size bytes, holding a NUL-terminated string) as a
 * JSON string with its quotes; cut, still a valid string, when out is
 * full.  Returns the new length. */
size_t cli_json_append(char *out, size_t size, const char *s);

/* Writes s into out (size bytes) in double quotes, escaped for a log or
 * terminal line (\n, \t, \", \\, \xNN for other control bytes), at most
 * max bytes of s, then "..." when cut; always NUL-terminated.  For values
 * read from Redis that another program may have written. */
void cli_quote(char *out, size_t size, const char *s, size_t max);

/* Writes all of buf to fd, retrying short writes and EINTR.  0, or errno.
 * Blocks as fd does: not for log lines (cli_log). */
int cli_write_all(int fd, const char *buf, size_t len);

#endif
