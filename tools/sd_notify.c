/* sd_notify.c — sd_notify.h's datagrams. */
#include "sd_notify.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

bool sd_notifier_open(sd_notifier *n, char *err, unsigned err_size)
{
    *n = (sd_notifier){.fd = -1};
    const char *sock = getenv("NOTIFY_SOCKET");
    const char *usec = getenv("WATCHDOG_USEC");
    const char *pid = getenv("WATCHDOG_PID");
    bool ok = true;
    if (usec && (!pid || strtoul(pid, NULL, 10) == (unsigned long)getpid())) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(usec, &end, 10);
        if (errno || *end || v == 0) {
            snprintf(err, err_size, "WATCHDOG_USEC=%.40s is not a positive number of microseconds",
                     usec);
            ok = false;
        } else {
            n->watchdog_ms = v / 1000 ? v / 1000 : 1;
        }
    }
    if (sock && ok) {
        size_t len = strlen(sock);
        if ((sock[0] != '/' && sock[0] != '@') || len < 2 || len >= sizeof n->path) {
            snprintf(err, err_size,
                     "NOTIFY_SOCKET=%.60s is neither a socket path nor an @abstract name", sock);
            ok = false;
        } else {
            memcpy(n->path, sock, len);
            if (sock[0] == '@')
                n->path[0] = '\0';
            n->path_len = (unsigned)len;
            n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
            if (n->fd < 0) {
                snprintf(err, err_size, "NOTIFY_SOCKET: %s", strerror(errno));
                ok = false;
            }
        }
    }
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
    if (!ok) {
        n->watchdog_ms = 0;
        if (n->fd >= 0)
            close(n->fd);
        n->fd = -1;
    }
    return ok;
}

bool sd_notify_send(const sd_notifier *n, const char *msg)
{
    if (n->fd < 0)
        return false;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path, n->path, n->path_len);
    socklen_t len =
        (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n->path_len + (n->path[0] ? 1 : 0));
    ssize_t rc;
    do
        rc = sendto(n->fd, msg, strlen(msg), MSG_NOSIGNAL | MSG_DONTWAIT, (struct sockaddr *)&sa,
                    len);
    while (rc < 0 && errno == EINTR);
    return rc >= 0;
}

bool sd_notifier_active(const sd_notifier *n)
{
    return n->fd >= 0;
}

void sd_notifier_close(sd_notifier *n)
{
    if (n->fd >= 0)
        close(n->fd);
    n->fd = -1;
}
