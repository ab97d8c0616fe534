/*
 * http_server.h — a small HTTP/1.1 listener for /metrics and health checks.
 *
 * It serves GET and HEAD, one request per connection (every answer closes
 * it), from the thread that drives it: the owner puts http_server_poll()'s
 * descriptors in its poll() set and calls http_server_run() when they are
 * ready or http_server_wake_at() has come.  No thread per connection, no
 * allocation per request beyond the answer's body.  It is careful with
 * what it is sent: a request head longer than HTTP_HEAD_MAX is answered 431,
 * a malformed one 400, another method 405, a client that has not sent its
 * whole head within HTTP_REQUEST_MS 408, and more than HTTP_CONNS_MAX
 * connections at once 503; none of them costs more than its slot.
 */
#ifndef LEASEHOLD_HTTP_SERVER_H
#define LEASEHOLD_HTTP_SERVER_H

#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define HTTP_HEAD_MAX   4096 /* bytes of request line and headers */
#define HTTP_REQUEST_MS 5000 /* for the whole request head; and as long to send the answer */
#define HTTP_CONNS_MAX  32   /* connections at once */
#define HTTP_POLL_MAX   (1 + HTTP_CONNS_MAX)

/* Answers a GET (or HEAD) of path (the query string cut off): writes the
 * body to `body`, sets *content_type (NULL: text/plain) and returns the
 * status (200, 404, 503...). */
typedef int (*http_handler)(void *arg, const char *path, FILE *body, const char **content_type);

typedef struct http_server http_server;

/* Listens on addr: "HOST:PORT", "[IPv6]:PORT" or ":PORT" (every
 * interface); PORT may be 0 (the kernel picks one: see
 * http_server_address()).  NULL with the reason in err on failure. */
http_server *http_server_open(const char *addr, http_handler fn, void *arg, char *err,
                              size_t err_size);

/* The address it listens on, "HOST:PORT" with the port bound. */
const char *http_server_address(const http_server *s);

/* Fills pfd with the descriptors to poll (at most HTTP_POLL_MAX); their number. */
int http_server_poll(const http_server *s, struct pollfd *pfd);

/* Accepts, reads, answers and closes what is ready or due at now_ms
 * (test_now_ms()'s clock: CLOCK_MONOTONIC).  pfd, n: as returned by
 * http_server_poll() with poll()'s revents. */
void http_server_run(http_server *s, const struct pollfd *pfd, int n, uint64_t now_ms);

/* The next instant a connection times out; UINT64_MAX when none. */
uint64_t http_server_wake_at(const http_server *s);

/* Closes every connection and the listener, and frees s.  NULL is fine. */
void http_server_close(http_server *s);

/* CLOCK_MONOTONIC in milliseconds. */
uint64_t http_now_ms(void);

#endif
