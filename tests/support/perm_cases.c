/* perm_cases.c — the permanent-error table and its Redis set-ups (see
 * perm_cases.h). */
#include "perm_cases.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>

#include <cmocka.h>

const perm_case perm_cases[PERM_CASES] = {
    {"NOPERM: the ACL user may not run EVALSHA", 69, 69, true, "may not run 'evalsha'"},
    {"NOPERM: the ACL user may not use the key", 69, 69, true, "may not access the key"},
    {"EVALSHA renamed away", 69, 69, true, "renamed or disabled"},
    {"WRONGTYPE: the key holds a hash", 65, 65, true, "holds a hash"},
    {"READONLY: the URL names a replica", 69, 3, false, "read-only replica"},
    {"the key holds a value with no TTL", 65, 65, true, "with no TTL: not a lease"},
};

static redis_server *perm_extra; /* the second redis-server of a case, or NULL */
static char perm_url[700];

/* Runs a command on s that must not fail. */
static void perm_cmd(redis_server *s, const char *fmt, const char *a, const char *b)
{
    redisReply *r = redis_server_cmd(s, fmt, a, b);
    assert_non_null(r);
    if (r->type == REDIS_REPLY_ERROR)
        fail_msg("%s: %s", fmt, r->str);
    freeReplyObject(r);
}

const char *perm_prepare(redis_server *main, size_t i, const char *key)
{
    assert_true(i < PERM_CASES);
    perm_cmd(main, "DEL %s", key, NULL);
    snprintf(perm_url, sizeof perm_url, "%s", main->url);
    switch (i) {
    case 0:
    case 1:
        /* a user of its own per case: a tool left running by a failed case
         * cannot be granted anything by the next */
        perm_cmd(main,
                 i == 0 ? "ACL SETUSER %s reset on >pw ~* &* +@all -evalsha"
                        : "ACL SETUSER %s reset on >pw ~other:* &* +@all",
                 i == 0 ? "lh-noevalsha" : "lh-nokey", NULL);
        snprintf(perm_url, sizeof perm_url, "redis://%s:pw@127.0.0.1:%d",
                 i == 0 ? "lh-noevalsha" : "lh-nokey", main->port);
        break;
    case 2:
    case 4: {
        char port[16];
        snprintf(port, sizeof port, "%d", main->port);
        const char *renamed[] = {"--rename-command", "EVALSHA", "", NULL};
        const char *replica[] = {"--replicaof", "127.0.0.1", port, NULL};
        redis_server_opts opts = {.args = i == 2 ? renamed : replica};
        perm_extra = redis_server_start(&opts);
        assert_non_null(perm_extra);
        snprintf(perm_url, sizeof perm_url, "%s", perm_extra->url);
        break;
    }
    case 3:
        perm_cmd(main, "HSET %s field %s", key, "value");
        break;
    case 5:
        perm_cmd(main, "SET %s %s", key, "another program's value");
        break;
    }
    return perm_url;
}

void perm_done(void)
{
    redis_server_stop(perm_extra);
    perm_extra = NULL;
}
