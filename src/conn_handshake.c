/* conn_handshake.c — what a new connection says before it is READY.
 *
 * On a connected socket conn sends [AUTH] [SELECT] PING [ROLE], pipelined,
 * and stays in CONN_HANDSHAKE until PING's +PONG (and, when the owner asks
 * for a master, ROLE's "master"): a Redis whose kernel accepts connections
 * but which does not run never looks ready, and neither does a replica.  Each refusal ends
 * the attempt through conn_go_down with the code and the message a user can
 * act on (a wrong password, a missing one, an ACL, a database out of
 * range); conn.c then backs off and retries as after any failure.
 */
#include "conn_internal.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

/* PING's +PONG ended the handshake.  Only here does the back-off start
 * over: a bare TCP connect proves nothing (a stopped Redis's kernel still
 * accepts connections), so a server that never answers keeps backing off. */
static void become_ready(conn *c, uint64_t now_ms)
{
    c->state = CONN_READY;
    c->retries = 0;
    if (c->h.on_ready)
        c->h.on_ready(c->arg, c, now_ms);
}

const char *conn_handshake_name(enum pending_kind kind)
{
    switch (kind) {
    case PENDING_AUTH:
        return "AUTH";
    case PENDING_SELECT:
        return "SELECT";
    case PENDING_ROLE:
        return "ROLE";
    default:
        return "PING";
    }
}

/* Queues one handshake command: its bytes and its pending entry. */
static int handshake_command(conn *c, enum pending_kind kind, int argc, const char **argv,
                             uint64_t now_ms)
{
    int rc = conn_out_append(c, argc, argv, NULL);
    if (rc == 0 && !conn_queue_push(c, kind, 0, now_ms))
        rc = LEASEHOLD_ENOMEM;
    return rc;
}

/* The socket is connected: send AUTH and SELECT if the URL asks for them,
 * then PING, all pipelined.  The connection stays in CONN_HANDSHAKE until
 * PING is answered, so a Redis that accepts connections but does not run
 * (stopped, paused) never looks ready and no command of the owner's is left
 * on its socket; connect_timeout_ms, counted from the start of the attempt,
 * covers the whole handshake. */
void conn_handshake_start(conn *c, uint64_t now_ms)
{
    c->state = CONN_HANDSHAKE;
    c->reader = conn_reader_new(c);
    if (!c->reader) {
        conn_go_down(c, LEASEHOLD_ENOMEM, false, now_ms, "out of memory");
        return;
    }
    int rc = 0;
    if (c->u.has_password) {
        const char *argv[3] = {"AUTH", c->u.user, c->u.password};
        if (c->u.user[0])
            rc = handshake_command(c, PENDING_AUTH, 3, argv, now_ms);
        else {
            argv[1] = c->u.password;
            rc = handshake_command(c, PENDING_AUTH, 2, argv, now_ms);
        }
    }
    if (rc == 0 && c->u.db != 0) {
        char db[16];
        snprintf(db, sizeof db, "%d", c->u.db);
        const char *argv[2] = {"SELECT", db};
        rc = handshake_command(c, PENDING_SELECT, 2, argv, now_ms);
    }
    if (rc == 0) {
        const char *argv[1] = {"PING"};
        rc = handshake_command(c, PENDING_PING, 1, argv, now_ms);
    }
    if (rc == 0 && c->opt.require_master) {
        const char *argv[1] = {"ROLE"};
        rc = handshake_command(c, PENDING_ROLE, 1, argv, now_ms);
    }
    if (rc) {
        conn_go_down(c, rc, false, now_ms, "out of memory");
        return;
    }
    int e = conn_flush(c);
    if (e && !conn_tls_failed(c, e, now_ms))
        conn_go_down(c, conn_errno_code(e), false, now_ms, "sending the handshake failed: %s",
                     strerror(e));
}

/* ROLE's answer: {"master", offset, replicas} makes the connection ready;
 * a replica or a Sentinel ends the attempt with LEASEHOLD_ENOMASTER. */
static void role_reply(conn *c, const conn_reply *r, uint64_t now_ms)
{
    const conn_reply *role = r->type == CONN_REPLY_ARRAY && r->elements > 0 ? &r->element[0] : NULL;
    if (!role || role->type != CONN_REPLY_STRING) {
        conn_go_down(c, LEASEHOLD_EPROTO, false, now_ms, "unexpected reply to ROLE");
        return;
    }
    if (strcmp(role->str, "master") == 0) {
        become_ready(c, now_ms);
        return;
    }
    if (strcmp(role->str, "slave") == 0 && r->elements >= 3 &&
        r->element[1].type == CONN_REPLY_STRING && r->element[2].type == CONN_REPLY_INTEGER)
        conn_go_down(c, LEASEHOLD_ENOMASTER, false, now_ms,
                     "not a master: ROLE says it is a replica of %.100s:%lld", r->element[1].str,
                     r->element[2].integer);
    else
        conn_go_down(c, LEASEHOLD_ENOMASTER, false, now_ms, "not a master: ROLE says %.40s",
                     role->str);
}

/* Handles the reply to AUTH, SELECT or PING.  An error ends the attempt with
 * the code its first word maps to (AUTH's and SELECT's own refusals become
 * LEASEHOLD_EAUTH and LEASEHOLD_EDB); a NOAUTH to a URL without password
 * says that the URL lacks one.  PING's +PONG, always the last answer, makes
 * the connection ready. */
void conn_handshake_reply(conn *c, enum pending_kind kind, const conn_reply *r, uint64_t now_ms)
{
    const char *what = conn_handshake_name(kind);
    if (r->type == CONN_REPLY_ERROR) {
        int code = conn_error_code(r);
        if (code == LEASEHOLD_EREDIS && kind == PENDING_AUTH)
            code = LEASEHOLD_EAUTH;
        else if (code == LEASEHOLD_EREDIS && kind == PENDING_SELECT)
            code = LEASEHOLD_EDB;
        if (code == LEASEHOLD_EAUTH && !c->u.has_password)
            conn_go_down(c, code, false, now_ms,
                         "authentication required and the URL has no password: %s", r->str);
        else if (code == LEASEHOLD_EAUTH)
            conn_go_down(c, code, false, now_ms, "authentication refused: %s", r->str);
        else if (code == LEASEHOLD_ENOPERM)
            conn_go_down(c, code, false, now_ms, "permission denied for %s: %s", what, r->str);
        else if (code == LEASEHOLD_EDB)
            conn_go_down(c, code, false, now_ms, "database %d rejected: %s", c->u.db, r->str);
        else
            conn_go_down(c, code, false, now_ms, "%s refused: %s", what, r->str);
        return;
    }
    if (kind == PENDING_ROLE) {
        role_reply(c, r, now_ms);
        return;
    }
    const char *want = kind == PENDING_PING ? "PONG" : "OK";
    if (r->type != CONN_REPLY_STATUS || strcmp(r->str, want) != 0) {
        conn_go_down(c, LEASEHOLD_EPROTO, false, now_ms, "unexpected reply to %s (expected +%s)",
                     what, want);
        return;
    }
    if (kind == PENDING_PING && !c->opt.require_master) {
        assert(c->queue_len == 0);
        become_ready(c, now_ms);
    }
}
