/*
 * log_sink.h — log lines to stderr that never block the thread logging
 * them, shared by `leasehold` and `server`.
 *
 * Any thread puts whole lines into a bounded in-memory queue; one writer
 * thread of the sink writes them to stderr (blocking writes: only it ever
 * waits for stderr).  When the queue is full (stderr is a pipe nobody
 * reads: a stalled journald, `| less`), lines are dropped and counted, and
 * once the queue has drained the writer adds one line saying how many were
 * lost.  stderr's file description is left as it is (no O_NONBLOCK, which
 * would change it for every process sharing it, CMD included).
 */
#ifndef LEASEHOLD_LOG_SINK_H
#define LEASEHOLD_LOG_SINK_H

#include <stddef.h>
#include <stdint.h>

/* Formats the line that reports `dropped` lost lines into out (size
 * bytes), newline included; returns its length.  Runs on the writer. */
typedef size_t (*log_sink_notice_fn)(unsigned long dropped, char *out, size_t size);

/* Starts the writer thread, with every signal blocked in it.  Call once,
 * before any other thread starts.  0, or errno. */
int log_sink_start(log_sink_notice_fn notice);

/* Queues line (len bytes, whole lines, each ending in '\n', at most
 * LOG_SINK_LINE_MAX bytes in all) for stderr, or drops and counts it when
 * the queue is full.  Never blocks on stderr.  Thread-safe.  Before
 * log_sink_start() has succeeded, the line is written at once, blocking
 * (no other thread exists then to be blocked). */
void log_sink_put(const char *line, size_t len);

#define LOG_SINK_LINE_MAX 4096 /* PIPE_BUF: one write, never mixed with CMD's */

/* Waits up to max_ms for every queued line (and the drop notice) to be
 * written; for the way out.  Thread-safe. */
void log_sink_flush(uint64_t max_ms);

#endif
