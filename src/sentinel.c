/* sentinel.c — finding a master through Redis Sentinel (see sentinel.h).
 *
 * One connection asks: in a round it is pointed at each Sentinel in turn
 * (connect, [AUTH] PING, SENTINEL get-master-addr-by-name), closed after
 * each answer or failure, and the round moves on from the timer rather
 * than from inside a handler.  A second connection keeps a +switch-master
 * subscription on the Sentinel that last answered, moving on to the next
 * one on each failure.  I/O thread only.
 */
#include "sentinel.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

struct sentinel {
    url u; /* the redis+sentinel:// URL */
    char user[128], password[512];
    sentinel_handler h;
    void *arg;
    conn *ask;   /* the round's questions */
    conn *watch; /* the +switch-master subscription, or NULL until sentinel_watch */
    conn_options opt;
    int order[URL_HOSTS_MAX]; /* indices into u.hosts, the one to ask first first */
    int watch_at;             /* the position in order the subscription tries next */

    /* The round under way. */
    bool resolving;
    bool advance; /* the current Sentinel is done with: ask the next at the next tick */
    int pos;      /* position in order of the Sentinel being asked */
    int unknown;  /* Sentinels that know no master of our name */
    int refused;  /* Sentinels that refused us (AUTH, ACL) */
    int refused_code;
    char why[640];  /* each Sentinel's failure, "; "-separated */
    char host[256]; /* the address the current Sentinel gave, waiting for SENTINEL MASTER */
    uint16_t port;
};

/* Appends one Sentinel's failure to the round's account. */
static void note(sentinel *s, const char *msg)
{
    size_t n = strlen(s->why);
    if (n + 3 < sizeof s->why)
        snprintf(s->why + n, sizeof s->why - n, "%s%s", n ? "; " : "", msg);
}

/* Ends the round with code (0: host:port found). */
static void finish(sentinel *s, int code, const char *host, uint16_t port, uint64_t role_age_ms,
                   const char *msg, uint64_t now_ms)
{
    s->resolving = false;
    s->advance = false;
    s->h.on_resolved(s->arg, code, host, port, role_age_ms, msg, now_ms);
}

/* Asks the Sentinel at s->pos, or ends the round when none is left. */
static void ask_next(sentinel *s, uint64_t now_ms)
{
    s->advance = false;
    if (s->pos >= s->u.host_count) {
        char msg[sizeof s->why + 200];
        int code;
        int answered = s->unknown + s->refused;
        if (s->unknown > 0 && s->unknown == answered) {
            code = LEASEHOLD_EMASTERNAME;
            snprintf(msg, sizeof msg, "no Sentinel knows a master named '%s' (%s)",
                     s->u.master_name, s->why);
        } else if (s->refused > 0 && s->unknown == 0) {
            code = s->refused_code;
            snprintf(msg, sizeof msg, "Sentinels refuse us: %s", s->why);
        } else {
            code = LEASEHOLD_ESENTINEL;
            snprintf(msg, sizeof msg, "no Sentinel reachable for master '%s': %s", s->u.master_name,
                     s->why);
        }
        finish(s, code, NULL, 0, UINT64_MAX, msg, now_ms);
        return;
    }
    url one;
    url_sentinel_node(&s->u, s->order[s->pos], s->user, s->password, &one);
    conn_close(s->ask);
    conn_set_target(s->ask, &one);
    explicit_bzero(one.password, sizeof one.password);
    conn_connect(s->ask, now_ms); /* a failure comes through ask_down */
}

/* Moves the Sentinel at position pos to the front of the order. */
static void to_front(sentinel *s, int pos)
{
    int first = s->order[pos];
    memmove(&s->order[1], &s->order[0], (size_t)pos * sizeof s->order[0]);
    s->order[0] = first;
}

/* The address, and how long ago the Sentinel saw the master take its role
 * (SENTINEL MASTER's role-reported-time): a promotion a process did not
 * live through itself is still seen. */
static void ask_ready(void *arg, conn *cn, uint64_t now_ms)
{
    sentinel *s = arg;
    const char *addr[3] = {"SENTINEL", "get-master-addr-by-name", s->u.master_name};
    const char *master[3] = {"SENTINEL", "MASTER", s->u.master_name};
    if (conn_send(cn, 3, addr, NULL, 0, now_ms) < 0 ||
        conn_send(cn, 3, master, NULL, 1, now_ms) < 0)
        conn_fail(cn, LEASEHOLD_ENOMEM, "cannot send SENTINEL get-master-addr-by-name", now_ms);
}

/* SENTINEL MASTER's answer, a flat list of names and values: the master's
 * role-reported-time in ms; UINT64_MAX when it does not say (an ACL that
 * refuses the command, an older Sentinel). */
static uint64_t role_age(const conn_reply *r)
{
    if (r->type != CONN_REPLY_ARRAY)
        return UINT64_MAX;
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const conn_reply *k = &r->element[i], *v = &r->element[i + 1];
        if (k->type == CONN_REPLY_STRING && strcmp(k->str, "role-reported-time") == 0 &&
            v->type == CONN_REPLY_STRING) {
            char *end;
            unsigned long long age = strtoull(v->str, &end, 10);
            return *end == '\0' && end != v->str ? age : UINT64_MAX;
        }
    }
    return UINT64_MAX;
}

/* The answers: [host, port], nil (no such master) or an error; then
 * SENTINEL MASTER's. */
static void ask_reply(void *arg, conn *cn, uint64_t tag, const conn_reply *r, uint64_t now_ms)
{
    sentinel *s = arg;
    char msg[300];
    if (tag == 1) {
        conn_close(cn);
        to_front(s, s->pos);
        finish(s, 0, s->host, s->port, role_age(r), NULL, now_ms);
        return;
    }
    if (r->type == CONN_REPLY_ARRAY && r->elements == 2 &&
        r->element[0].type == CONN_REPLY_STRING && r->element[1].type == CONN_REPLY_STRING) {
        char *end;
        long port = strtol(r->element[1].str, &end, 10);
        if (r->element[0].len > 0 && r->element[0].len < sizeof s->host && *end == '\0' &&
            port > 0 && port <= 65535) {
            memcpy(s->host, r->element[0].str, r->element[0].len + 1);
            s->port = (uint16_t)port;
            return; /* SENTINEL MASTER's answer follows */
        }
        snprintf(msg, sizeof msg, "%s: an address that is not host and port", conn_display(cn));
    } else if (r->type == CONN_REPLY_NIL) {
        s->unknown++;
        snprintf(msg, sizeof msg, "%s: no such master", conn_display(cn));
    } else if (r->type == CONN_REPLY_ERROR) {
        int code = conn_error_code(r);
        if (code == LEASEHOLD_ENOPERM || code == LEASEHOLD_EAUTH) {
            s->refused++;
            s->refused_code = code;
        }
        snprintf(msg, sizeof msg, "%s: %.200s", conn_display(cn), r->str);
    } else {
        snprintf(msg, sizeof msg, "%s: unexpected reply to SENTINEL get-master-addr-by-name",
                 conn_display(cn));
    }
    note(s, msg);
    conn_close(cn);
    s->pos++;
    s->advance = true;
}

/* The question's connection failed (refused, timed out, AUTH refused...). */
static void ask_down(void *arg, conn *cn, int code, bool by_peer, const char *msg, uint64_t now_ms)
{
    sentinel *s = arg;
    (void)by_peer, (void)now_ms;
    conn_close(cn);
    if (!s->resolving)
        return;
    if (code == LEASEHOLD_EAUTH || code == LEASEHOLD_ENOPERM) {
        s->refused++;
        s->refused_code = code;
    }
    note(s, msg);
    s->pos++;
    s->advance = true;
}

/* The question's connection never reconnects by itself. */
static bool ask_before_attempt(void *arg, conn *cn, uint64_t now_ms)
{
    (void)arg, (void)cn, (void)now_ms;
    return false;
}

static const conn_handler ask_handler = {.on_ready = ask_ready,
                                         .on_reply = ask_reply,
                                         .on_down = ask_down,
                                         .before_attempt = ask_before_attempt};

/* ------------------------------------------------------- +switch-master */

static void watch_ready(void *arg, conn *cn, uint64_t now_ms)
{
    sentinel *s = arg;
    const char *argv[2] = {"SUBSCRIBE", "+switch-master"};
    s->watch_at = 0; /* the next failure starts from the Sentinel that answers best */
    if (conn_send(cn, 2, argv, NULL, 0, now_ms) < 0)
        conn_fail(cn, LEASEHOLD_ENOMEM, "cannot send SUBSCRIBE", now_ms);
}

/* SUBSCRIBE's answer, or its refusal (an ACL): the watch then waits for the
 * next reconnect; failovers are still found by asking. */
static void watch_reply(void *arg, conn *cn, uint64_t tag, const conn_reply *r, uint64_t now_ms)
{
    (void)arg, (void)tag;
    if (r->type == CONN_REPLY_ERROR)
        conn_fail(cn, conn_error_code(r), "SUBSCRIBE +switch-master refused", now_ms);
}

static void watch_down(void *arg, conn *cn, int code, bool by_peer, const char *msg,
                       uint64_t now_ms)
{
    (void)arg, (void)cn, (void)code, (void)by_peer, (void)msg, (void)now_ms;
}

/* "+switch-master" "<name> <old ip> <old port> <new ip> <new port>". */
static bool watch_push(void *arg, conn *cn, const conn_reply *r, uint64_t now_ms)
{
    sentinel *s = arg;
    (void)cn;
    if (r->type != CONN_REPLY_ARRAY || r->elements != 3 ||
        r->element[0].type != CONN_REPLY_STRING || strcmp(r->element[0].str, "message") != 0)
        return false;
    const conn_reply *m = &r->element[2];
    if (m->type != CONN_REPLY_STRING)
        return true;
    char name[128], old_host[256], new_host[256];
    unsigned old_port, new_port;
    if (sscanf(m->str, "%127s %255s %u %255s %u", name, old_host, &old_port, new_host, &new_port) ==
            5 &&
        strcmp(name, s->u.master_name) == 0 && new_port > 0 && new_port <= 65535)
        s->h.on_switch(s->arg, new_host, (uint16_t)new_port, now_ms);
    return true;
}

/* Each attempt of the subscription goes to the next Sentinel in the order. */
static bool watch_before_attempt(void *arg, conn *cn, uint64_t now_ms)
{
    sentinel *s = arg;
    (void)now_ms;
    url one;
    int i = s->order[s->watch_at % s->u.host_count];
    s->watch_at = (s->watch_at + 1) % s->u.host_count;
    url_sentinel_node(&s->u, i, s->user, s->password, &one);
    conn_set_target(cn, &one);
    explicit_bzero(one.password, sizeof one.password);
    return true;
}

static const conn_handler watch_handler = {.on_ready = watch_ready,
                                           .on_reply = watch_reply,
                                           .on_down = watch_down,
                                           .on_push = watch_push,
                                           .before_attempt = watch_before_attempt};

/* ------------------------------------------------------------- the rest */

sentinel *sentinel_new(const url *u, const char *user, const char *password,
                       const conn_options *opt, const sentinel_handler *h, void *arg)
{
    sentinel *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->u = *u;
    snprintf(s->user, sizeof s->user, "%s", user ? user : "");
    snprintf(s->password, sizeof s->password, "%s", password ? password : "");
    s->h = *h;
    s->arg = arg;
    s->opt = *opt;
    for (int i = 0; i < u->host_count; i++)
        s->order[i] = i;
    url first;
    url_sentinel_node(u, 0, s->user, s->password, &first);
    s->ask = conn_new(&first, opt, &ask_handler, s);
    explicit_bzero(first.password, sizeof first.password);
    if (!s->ask) {
        sentinel_free(s);
        return NULL;
    }
    conn_close(s->ask);
    return s;
}

void sentinel_free(sentinel *s)
{
    if (!s)
        return;
    conn_free(s->ask);
    conn_free(s->watch);
    explicit_bzero(s->password, sizeof s->password);
    explicit_bzero(s->u.password, sizeof s->u.password);
    free(s);
}

void sentinel_resolve(sentinel *s, uint64_t now_ms)
{
    (void)now_ms;
    if (s->resolving)
        return;
    s->resolving = true;
    s->pos = 0;
    s->unknown = s->refused = 0;
    s->refused_code = 0;
    s->why[0] = '\0';
    s->advance = true; /* asked at the next tick, so on_resolved never runs inside this call */
}

bool sentinel_resolving(const sentinel *s)
{
    return s->resolving;
}

void sentinel_watch(sentinel *s, uint64_t now_ms)
{
    if (s->watch)
        return;
    conn_options opt = s->opt;
    opt.seed ^= 0x9e3779b97f4a7c15ull;
    url first;
    url_sentinel_node(&s->u, s->order[0], s->user, s->password, &first);
    s->watch = conn_new(&first, &opt, &watch_handler, s);
    explicit_bzero(first.password, sizeof first.password);
    if (s->watch)
        conn_connect(s->watch, now_ms);
}

int sentinel_conns(sentinel *s, conn *out[2])
{
    int n = 0;
    out[n++] = s->ask;
    if (s->watch)
        out[n++] = s->watch;
    return n;
}

uint64_t sentinel_wake_at(const sentinel *s)
{
    if (s->advance)
        return 0;
    uint64_t at = conn_wake_at(s->ask);
    if (s->watch) {
        uint64_t w = conn_wake_at(s->watch);
        if (w < at)
            at = w;
    }
    return at;
}

void sentinel_tick(sentinel *s, uint64_t now_ms)
{
    conn_tick(s->ask, now_ms);
    if (s->watch)
        conn_tick(s->watch, now_ms);
    if (s->advance && s->resolving)
        ask_next(s, now_ms);
}
