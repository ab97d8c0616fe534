/* http_server.c — the listener of http_server.h. */
#include "http_server.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define LINGER_MS 1000 /* after the answer, how long a client's unread bytes are drained */

typedef enum slot_state { SLOT_FREE, SLOT_READING, SLOT_WRITING, SLOT_DRAINING } slot_state;

/* One connection. */
typedef struct slot {
    slot_state state;
    int fd;
    uint64_t deadline_ms;
    size_t in_len;
    char in[HTTP_HEAD_MAX + 1];
    char *out; /* the whole answer, head and body */
    size_t out_len, out_off;
} slot;

struct http_server {
    int listen_fd;
    uint64_t accept_paused_until_ms; /* out of descriptors: the listener rests until then */
    http_handler fn;
    void *arg;
    char address[96];
    slot slots[HTTP_CONNS_MAX];
};

uint64_t http_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Splits "HOST:PORT", "[V6]:PORT" or ":PORT" into host (NULL: any) and
 * port; false when it has no such form. */
static bool split_address(const char *addr, char *host, size_t host_size, char *port,
                          size_t port_size, bool *any)
{
    const char *colon;
    const char *h = addr;
    size_t hlen;
    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');
        if (!close || close[1] != ':')
            return false;
        h = addr + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(addr, ':');
        if (!colon || memchr(addr, ':', (size_t)(colon - addr)))
            return false; /* no port, or a bare IPv6 address (brackets needed) */
        hlen = (size_t)(colon - addr);
    }
    const char *p = colon + 1;
    size_t plen = strlen(p);
    if (plen == 0 || plen >= port_size || strspn(p, "0123456789") != plen || atol(p) > 65535 ||
        hlen >= host_size)
        return false;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    memcpy(port, p, plen + 1);
    *any = hlen == 0;
    return true;
}

http_server *http_server_open(const char *addr, http_handler fn, void *arg, char *err,
                              size_t err_size)
{
    char host[256], port[8];
    bool any;
    if (!addr || !split_address(addr, host, sizeof host, port, sizeof port, &any)) {
        snprintf(err, err_size,
                 "%s: not an address to listen on (HOST:PORT, [IPv6]:PORT or :PORT, port 0 to "
                 "65535)",
                 addr ? addr : "(none)");
        return NULL;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(any ? NULL : host, port, &hints, &res);
    if (gai != 0) {
        snprintf(err, err_size, "%s: %s", addr, gai_strerror(gai));
        return NULL;
    }
    int fd = -1, last_errno = 0;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            last_errno = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 64) < 0) {
            last_errno = errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0) {
        snprintf(err, err_size, "%s: cannot listen: %s", addr, strerror(last_errno));
        return NULL;
    }
    http_server *s = calloc(1, sizeof *s);
    if (!s) {
        close(fd);
        snprintf(err, err_size, "%s: out of memory", addr);
        return NULL;
    }
    s->listen_fd = fd;
    s->fn = fn;
    s->arg = arg;
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char h[64] = "?", p[8] = "?";
    if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
        getnameinfo((struct sockaddr *)&ss, len, h, sizeof h, p, sizeof p,
                    NI_NUMERICHOST | NI_NUMERICSERV);
    snprintf(s->address, sizeof s->address, strchr(h, ':') ? "[%s]:%s" : "%s:%s", h, p);
    return s;
}

const char *http_server_address(const http_server *s)
{
    return s->address;
}

static void slot_close(slot *c)
{
    close(c->fd);
    free(c->out);
    c->out = NULL;
    c->state = SLOT_FREE;
}

static const char *reason_phrase(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "Unknown";
    }
}

/* Makes c's answer: status, and the body unless head_only. */
static void slot_answer(slot *c, int status, const char *content_type, const char *body,
                        size_t body_len, bool head_only, uint64_t now_ms)
{
    free(c->out);
    c->out = NULL;
    FILE *f = open_memstream(&c->out, &c->out_len);
    if (f) {
        fprintf(f,
                "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
                "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
                status, reason_phrase(status), content_type ? content_type : "text/plain", body_len,
                status == 405 ? "Allow: GET, HEAD\r\n" : "");
        if (!head_only)
            fwrite(body, 1, body_len, f);
        if (fclose(f) != 0) {
            free(c->out);
            c->out = NULL;
        }
    }
    if (!c->out) { /* out of memory: nothing to say */
        slot_close(c);
        return;
    }
    c->out_off = 0;
    c->state = SLOT_WRITING;
    c->deadline_ms = now_ms + HTTP_REQUEST_MS;
}

/* A short plain-text error answer. */
static void slot_error(slot *c, int status, const char *text, uint64_t now_ms)
{
    slot_answer(c, status, "text/plain; charset=utf-8", text, strlen(text), false, now_ms);
}

/* The request head is complete (NUL-terminated in c->in): answers it. */
static void slot_request(http_server *s, slot *c, uint64_t now_ms)
{
    char *line_end = strpbrk(c->in, "\r\n");
    if (line_end)
        *line_end = '\0';
    char *method = c->in;
    char *sp1 = strchr(method, ' ');
    char *target = sp1 ? sp1 + 1 : NULL;
    char *sp2 = target ? strchr(target, ' ') : NULL;
    char *version = sp2 ? sp2 + 1 : NULL;
    if (!sp1 || !sp2 || strchr(version, ' ') || strncmp(version, "HTTP/1.", 7) != 0 ||
        strlen(version) != 8 || target[0] != '/') {
        slot_error(c, 400, "bad request: expected \"GET /path HTTP/1.1\"\n", now_ms);
        return;
    }
    *sp1 = '\0';
    *sp2 = '\0';
    bool head = strcmp(method, "HEAD") == 0;
    if (!head && strcmp(method, "GET") != 0) {
        slot_error(c, 405, "method not allowed: GET or HEAD only\n", now_ms);
        return;
    }
    target[strcspn(target, "?#")] = '\0';
    char *body = NULL;
    size_t body_len = 0;
    const char *type = NULL;
    FILE *f = open_memstream(&body, &body_len);
    if (!f) {
        slot_close(c);
        return;
    }
    int status = s->fn(s->arg, target, f, &type);
    if (fclose(f) != 0) {
        free(body);
        slot_close(c);
        return;
    }
    slot_answer(c, status, type ? type : "text/plain; charset=utf-8", body, body_len, head, now_ms);
    free(body);
}

/* Reads what c has sent; answers once the head is complete. */
static void slot_read(http_server *s, slot *c, uint64_t now_ms)
{
    for (;;) {
        ssize_t n = recv(c->fd, c->in + c->in_len, HTTP_HEAD_MAX - c->in_len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) { /* closed before a whole request, or reset */
            slot_close(c);
            return;
        }
        c->in_len += (size_t)n;
        c->in[c->in_len] = '\0';
        if (memchr(c->in, '\0', c->in_len)) {
            slot_error(c, 400, "bad request: a NUL byte in the request\n", now_ms);
            return;
        }
        if (strstr(c->in, "\r\n\r\n") || strstr(c->in, "\n\n")) {
            slot_request(s, c, now_ms);
            return;
        }
        if (c->in_len == HTTP_HEAD_MAX) {
            slot_error(c, 431, "request head too large\n", now_ms);
            return;
        }
    }
}

/* Sends what is left of c's answer; then drains what the client may still
 * send, so that closing does not reset the connection under the answer. */
static void slot_write(slot *c, uint64_t now_ms)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n < 0) {
            slot_close(c);
            return;
        }
        c->out_off += (size_t)n;
    }
    free(c->out);
    c->out = NULL;
    shutdown(c->fd, SHUT_WR);
    c->state = SLOT_DRAINING;
    c->deadline_ms = now_ms + LINGER_MS;
}

static void slot_drain(slot *c)
{
    char buf[1024];
    for (;;) {
        ssize_t n = recv(c->fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            slot_close(c);
            return;
        }
    }
}

/* Takes the connections waiting on the listener. */
static void accept_all(http_server *s, uint64_t now_ms)
{
    for (;;) {
        int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0 && (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM))
            s->accept_paused_until_ms = now_ms + 100; /* it stays queued: no busy loop */
        if (fd < 0)
            return; /* EAGAIN, a connection gone already, or out of descriptors */
        slot *c = NULL;
        for (int i = 0; i < HTTP_CONNS_MAX && !c; i++)
            if (s->slots[i].state == SLOT_FREE)
                c = &s->slots[i];
        if (!c) {
            static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: "
                                       "0\r\nConnection: close\r\n\r\n";
            ssize_t n = send(fd, busy, sizeof busy - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
            (void)n;
            close(fd);
            continue;
        }
        *c = (slot){.state = SLOT_READING, .fd = fd, .deadline_ms = now_ms + HTTP_REQUEST_MS};
    }
}

int http_server_poll(const http_server *s, struct pollfd *pfd)
{
    int n = 0;
    bool paused = http_now_ms() < s->accept_paused_until_ms;
    pfd[n++] = (struct pollfd){.fd = paused ? -1 : s->listen_fd, .events = POLLIN};
    for (int i = 0; i < HTTP_CONNS_MAX; i++) {
        const slot *c = &s->slots[i];
        if (c->state != SLOT_FREE)
            pfd[n++] =
                (struct pollfd){.fd = c->fd, .events = c->state == SLOT_WRITING ? POLLOUT : POLLIN};
    }
    return n;
}

void http_server_run(http_server *s, const struct pollfd *pfd, int n, uint64_t now_ms)
{
    for (int i = 1; i < n; i++) {
        if (!pfd[i].revents)
            continue;
        slot *c = NULL;
        for (int j = 0; j < HTTP_CONNS_MAX && !c; j++)
            if (s->slots[j].state != SLOT_FREE && s->slots[j].fd == pfd[i].fd)
                c = &s->slots[j];
        if (!c)
            continue;
        if (c->state == SLOT_READING)
            slot_read(s, c, now_ms);
        else if (c->state == SLOT_WRITING)
            slot_write(c, now_ms);
        else if (c->state == SLOT_DRAINING)
            slot_drain(c);
        if (c->state == SLOT_WRITING) /* answered just now: try to send it at once */
            slot_write(c, now_ms);
    }
    for (int i = 0; i < HTTP_CONNS_MAX; i++) {
        slot *c = &s->slots[i];
        if (c->state == SLOT_FREE || now_ms < c->deadline_ms)
            continue;
        if (c->state == SLOT_READING) {
            slot_error(c, 408, "request timeout: the request head did not arrive in time\n",
                       now_ms);
            slot_write(c, now_ms);
        } else {
            slot_close(c);
        }
    }
    if (n > 0 && pfd[0].revents)
        accept_all(s, now_ms);
}

uint64_t http_server_wake_at(const http_server *s)
{
    uint64_t at =
        s->accept_paused_until_ms > http_now_ms() ? s->accept_paused_until_ms : UINT64_MAX;
    for (int i = 0; i < HTTP_CONNS_MAX; i++)
        if (s->slots[i].state != SLOT_FREE && s->slots[i].deadline_ms < at)
            at = s->slots[i].deadline_ms;
    return at;
}

void http_server_close(http_server *s)
{
    if (!s)
        return;
    for (int i = 0; i < HTTP_CONNS_MAX; i++)
        if (s->slots[i].state != SLOT_FREE)
            slot_close(&s->slots[i]);
    close(s->listen_fd);
    free(s);
}
