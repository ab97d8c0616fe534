/*
 * log_sink.c — a bounded queue of log lines and the one thread that writes
 * them to stderr (see log_sink.h).
 *
 * The queue is a ring of bytes holding whole lines.  A line that does not
 * fit is dropped whole and counted: lines are never cut and never mixed.
 * The writer takes as many whole lines as fit in one PIPE_BUF write out of
 * the ring under the lock, then writes them without it, so a producer
 * waits at most for a memcpy, never for stderr.  When the ring is empty
 * and lines were dropped, the writer writes the notice.
 */
#include "log_sink.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define QUEUE_BYTES 32768

static struct {
    pthread_mutex_t mu;
    pthread_cond_t more;    /* the writer waits here for lines */
    pthread_cond_t drained; /* log_sink_flush() waits here (CLOCK_MONOTONIC) */
    char ring[QUEUE_BYTES];
    size_t head, len;      /* the queued bytes: ring[head], ... (wrapping) */
    unsigned long dropped; /* lines dropped since the last notice */
    bool writing;          /* the writer holds lines or a notice not yet written */
    bool started;
    log_sink_notice_fn notice;
} sink = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* Writes all of buf to stderr, retrying short writes and EINTR; gives up
 * on any other error (a closed stderr is not worth dying for). */
static void write_stderr(const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(STDERR_FILENO, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        buf += (size_t)n;
        len -= (size_t)n;
    }
}

/* Copies the oldest whole lines, at most size bytes, out of the ring into
 * out and removes them; their length (0 when the ring is empty).  Called
 * with the lock held. */
static size_t take_lines(char *out, size_t size)
{
    size_t n = sink.len < size ? sink.len : size;
    for (size_t i = 0; i < n; i++)
        out[i] = sink.ring[(sink.head + i) % QUEUE_BYTES];
    while (n > 0 && out[n - 1] != '\n') /* whole lines only */
        n--;
    sink.head = (sink.head + n) % QUEUE_BYTES;
    sink.len -= n;
    return n;
}

/* The writer: lines out of the ring onto stderr, then the drop notice once
 * the ring is empty.  Runs for the life of the process. */
static void *writer_main(void *arg)
{
    (void)arg;
    static char buf[LOG_SINK_LINE_MAX];
    pthread_mutex_lock(&sink.mu);
    for (;;) {
        sink.writing = false;
        pthread_cond_broadcast(&sink.drained);
        while (sink.len == 0 && sink.dropped == 0)
            pthread_cond_wait(&sink.more, &sink.mu);
        sink.writing = true;
        size_t n = take_lines(buf, sizeof buf);
        if (n == 0) {
            unsigned long dropped = sink.dropped;
            sink.dropped = 0;
            pthread_mutex_unlock(&sink.mu);
            n = sink.notice ? sink.notice(dropped, buf, sizeof buf) : 0;
        } else {
            pthread_mutex_unlock(&sink.mu);
        }
        write_stderr(buf, n);
        pthread_mutex_lock(&sink.mu);
    }
    return NULL;
}

int log_sink_start(log_sink_notice_fn notice)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&sink.drained, &attr);
    pthread_condattr_destroy(&attr);
    pthread_cond_init(&sink.more, NULL);
    sink.notice = notice;

    /* Every signal blocked in the writer: the process's signals are for
     * the threads that handle them. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_t thread;
    int rc = pthread_create(&thread, NULL, writer_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0)
        return rc;
    pthread_detach(thread);
    pthread_mutex_lock(&sink.mu);
    sink.started = true;
    pthread_mutex_unlock(&sink.mu);
    return 0;
}

void log_sink_put(const char *line, size_t len)
{
    pthread_mutex_lock(&sink.mu);
    if (!sink.started) {
        pthread_mutex_unlock(&sink.mu);
        write_stderr(line, len);
        return;
    }
    if (len > QUEUE_BYTES - sink.len || len > LOG_SINK_LINE_MAX || len == 0 ||
        line[len - 1] != '\n') {
        sink.dropped++; /* the last two never happen: whole lines only */
    } else {
        size_t tail = (sink.head + sink.len) % QUEUE_BYTES;
        size_t first = len < QUEUE_BYTES - tail ? len : QUEUE_BYTES - tail;
        memcpy(sink.ring + tail, line, first);
        memcpy(sink.ring, line + first, len - first);
        sink.len += len;
    }
    pthread_cond_signal(&sink.more);
    pthread_mutex_unlock(&sink.mu);
}

void log_sink_flush(uint64_t max_ms)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += (time_t)(max_ms / 1000u);
    until.tv_nsec += (long)(max_ms % 1000u) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&sink.mu);
    while (sink.started && (sink.len > 0 || sink.dropped > 0 || sink.writing))
        if (pthread_cond_timedwait(&sink.drained, &sink.mu, &until) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&sink.mu);
}
