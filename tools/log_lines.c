/*
 * log_lines.c — the log lines of `leasehold` and `server` on stderr.
 *
 * CMD shares leasehold's stderr, so every leasehold line names leasehold;
 * every line is written with one write(): lines from the library's I/O thread and the
 * main thread never mix with each other, nor, below PIPE_BUF, with CMD's.
 * No thread that logs ever waits for stderr: lines go through log_sink.c,
 * which drops and counts them when stderr does not take them (a full pipe
 * would otherwise freeze the library's I/O thread, and with it renewals).
 *
 * The line formats are in log_lines.h.
 */
#include "log_lines.h"
#include "log_sink.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define LOG_LINE_MAX 2048

/* Set once by cli_log_init() before any thread starts; read-only after. */
static leasehold_log_level log_level = LEASEHOLD_LOG_INFO;
static cli_log_format log_format = CLI_LOG_TEXT;
static char log_key[512];
static char log_prog[64] = "leasehold";
static bool log_prog_in_text = true;

static void format_line(char *line, size_t size, leasehold_log_level level, uint64_t epoch,
                        const char *token, const char *msg);

/* The log_sink's notice of lines it dropped, as one of our lines. */
static size_t dropped_notice(unsigned long dropped, char *out, size_t size)
{
    char msg[128];
    snprintf(msg, sizeof msg, "%lu log lines dropped: stderr did not take them in time", dropped);
    format_line(out, size - 1, LEASEHOLD_LOG_WARN, 0, NULL, msg);
    size_t len = strlen(out);
    out[len++] = '\n';
    return len;
}

int cli_log_init(const char *prog, bool prog_in_text, leasehold_log_level level,
                 cli_log_format format, const char *key)
{
    snprintf(log_prog, sizeof log_prog, "%s", prog);
    log_prog_in_text = prog_in_text;
    log_level = level;
    log_format = format;
    snprintf(log_key, sizeof log_key, "%s", key);
    return log_sink_start(dropped_notice);
}

void cli_log_flush(void)
{
    log_sink_flush(1000);
}

int cli_write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno;
        if (n == 0)
            return EIO;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

void cli_utc_stamp(const struct timespec *ts, char *out, size_t size)
{
    struct tm tm;
    gmtime_r(&ts->tv_sec, &tm);
    size_t len = strftime(out, size, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + len, size - len, ".%03ldZ", ts->tv_nsec / 1000000);
}

size_t cli_json_append(char *out, size_t size, const char *s)
{
    size_t len = strlen(out);
    /* Room for the closing quote and the NUL is kept at every step. */
    if (len + 3 > size)
        return len;
    out[len++] = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        size_t n;
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            n = 2;
        } else if (*p == '\n') {
            memcpy(esc, "\\n", 2);
            n = 2;
        } else if (*p == '\t') {
            memcpy(esc, "\\t", 2);
            n = 2;
        } else if (*p < 0x20 || *p == 0x7f) {
            n = (size_t)snprintf(esc, sizeof esc, "\\u%04x", *p);
        } else {
            esc[0] = (char)*p;
            n = 1;
        }
        if (len + n + 2 > size)
            break;
        memcpy(out + len, esc, n);
        len += n;
    }
    out[len++] = '"';
    out[len] = '\0';
    return len;
}

void cli_quote(char *out, size_t size, const char *s, size_t max)
{
    size_t len = 0;
    /* Room for an escape of 4, the closing quote, "..." and the NUL. */
    if (size < 10) {
        if (size)
            out[0] = '\0';
        return;
    }
    out[len++] = '"';
    const unsigned char *p = (const unsigned char *)s;
    for (; *p && (size_t)(p - (const unsigned char *)s) < max && len + 9 <= size; p++) {
        if (*p == '"' || *p == '\\') {
            out[len++] = '\\';
            out[len++] = (char)*p;
        } else if (*p == '\n' || *p == '\t') {
            out[len++] = '\\';
            out[len++] = *p == '\n' ? 'n' : 't';
        } else if (*p < 0x20 || *p == 0x7f) {
            len += (size_t)snprintf(out + len, size - len, "\\x%02x", *p);
        } else {
            out[len++] = (char)*p;
        }
    }
    out[len++] = '"';
    if (*p)
        len += (size_t)snprintf(out + len, size - len, "...");
    out[len] = '\0';
}

static const char *level_name(leasehold_log_level level, bool json)
{
    static const char *const text[] = {"ERROR", "WARN ", "INFO ", "DEBUG"};
    static const char *const lower[] = {"error", "warn", "info", "debug"};
    if ((unsigned)level > LEASEHOLD_LOG_DEBUG)
        return json ? "info" : "INFO ";
    return json ? lower[level] : text[level];
}

/* Appends a formatted string to line (size bytes, NUL-terminated), cut
 * when full.  Returns the new length. */
static size_t appendf(char *line, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static size_t appendf(char *line, size_t size, const char *fmt, ...)
{
    size_t len = strlen(line);
    if (len + 1 < size) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(line + len, size - len, fmt, ap);
        va_end(ap);
    }
    return strlen(line);
}

/* One log line of msg into line (size bytes), without the newline. */
static void format_line(char *line, size_t size, leasehold_log_level level, uint64_t epoch,
                        const char *token, const char *msg)
{
    char stamp[40];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    cli_utc_stamp(&ts, stamp, sizeof stamp);
    line[0] = '\0';
    if (log_format == CLI_LOG_JSON) {
        appendf(line, size, "{\"ts\":\"%s\",\"level\":\"%s\",\"prog\":", stamp,
                level_name(level, true));
        cli_json_append(line, size, log_prog);
        appendf(line, size, ",\"key\":");
        cli_json_append(line, size, log_key);
        if (epoch != 0)
            appendf(line, size, ",\"epoch\":%" PRIu64, epoch);
        if (token) {
            appendf(line, size, ",\"token\":");
            cli_json_append(line, size, token);
        }
        appendf(line, size, ",\"msg\":");
        cli_json_append(line, size, msg);
        appendf(line, size, "}");
        return;
    }
    appendf(line, size, "%s %s %s%s%s", stamp, level_name(level, false),
            log_prog_in_text ? log_prog : "", log_prog_in_text ? " " : "", log_key);
    if (epoch != 0)
        appendf(line, size, " epoch=%" PRIu64, epoch);
    if (token)
        appendf(line, size, " token=%s", token);
    appendf(line, size, ": %s", msg);
}

void cli_log(leasehold_log_level level, uint64_t epoch, const char *token, const char *fmt, ...)
{
    if (level > log_level)
        return;
    char msg[LOG_LINE_MAX / 2];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char line[LOG_LINE_MAX];
    format_line(line, sizeof line - 1, level, epoch, token, msg);
    size_t len = strlen(line); /* at most sizeof line - 2: room for the newline */
    line[len++] = '\n';
    log_sink_put(line, len);
}

void cli_fatal(bool usage, const char *fmt, ...)
{
    char msg[LOG_LINE_MAX / 2];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (!usage) {
        cli_log(LEASEHOLD_LOG_ERROR, 0, NULL, "%s", msg);
        return;
    }
    char line[LOG_LINE_MAX];
    int n = snprintf(line, sizeof line - 1, "%s: %s", log_prog, msg);
    size_t len = n < 0 ? 0 : (size_t)n < sizeof line - 1 ? (size_t)n : sizeof line - 2;
    line[len++] = '\n';
    log_sink_put(line, len);
}

void cli_library_log(leasehold_log_level level, const char *msg, void *arg)
{
    (void)arg;
    /* The key is in every line already: drop the library's "<key>: ". */
    size_t key_len = strlen(log_key);
    if (strncmp(msg, log_key, key_len) == 0 && strncmp(msg + key_len, ": ", 2) == 0)
        msg += key_len + 2;
    cli_log(level, 0, NULL, "%s", msg);
}
