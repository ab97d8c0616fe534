/* protocol.c — the Lua scripts leasehold runs on Redis and the meaning of
 * their replies.
 *
 * Compatibility: a claim is `SET K token NX PX lease` and a renewal is the
 * original module's compare-and-PEXPIRE, so a candidate that speaks only the
 * original protocol on the same key keeps working beside leasehold.
 */
#include "protocol.h"

#include "error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Acquire: SET NX PX; on success the next fencing epoch (strictly above the
 * last one, and at least Redis's TIME in microseconds so it keeps growing
 * across a restart that lost the epoch key), stored and announced; on failure
 * {holder, PTTL, epoch}.  The epoch key is read before anything is written,
 * so a wrong type there fails the script with nothing changed.  Lua numbers
 * are doubles: exact up to 2^53, far above microseconds since 1970. */
static const char SCRIPT_ACQUIRE_LUA[] =
    "if redis.replicate_commands then redis.replicate_commands() end\n"
    "local last = tonumber(redis.call('GET', KEYS[2]) or '0') or 0\n"
    "if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then\n"
    "  local t = redis.call('TIME')\n"
    "  local epoch = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
    "  if last + 1 > epoch then epoch = last + 1 end\n"
    "  local s = string.format('%.0f', epoch)\n"
    "  redis.call('SET', KEYS[2], s)\n"
    "  redis.call('PUBLISH', ARGV[3], 'elected ' .. s .. ' ' .. ARGV[1])\n"
    "  return epoch\n"
    "end\n"
    "return {redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1]), redis.call('GET', "
    "KEYS[2])}\n";

/* Renew: the original module's compare-and-PEXPIRE, answering distinctly:
 * 1 renewed, 0 the key is gone, a string: the token that holds it instead. */
static const char SCRIPT_RENEW_LUA[] = "local v = redis.call('GET', KEYS[1])\n"
                                       "if v == ARGV[1] then\n"
                                       "  return redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
                                       "end\n"
                                       "if v then return v end\n"
                                       "return 0\n";

/* Release: compare-and-DEL, then announce it.  1 deleted, 0 not ours.  The
 * term is named by token and epoch together: a campaign keeps its token from
 * term to term, and a release sent for an earlier term (held up in a
 * connection that was given up, say) must not delete a later one. */
static const char SCRIPT_RELEASE_LUA[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] and redis.call('GET', KEYS[2]) == ARGV[3] then\n"
    "  redis.call('DEL', KEYS[1])\n"
    "  redis.call('PUBLISH', ARGV[2], 'released ' .. ARGV[3] .. ' ' .. ARGV[1])\n"
    "  return 1\n"
    "end\n"
    "return 0\n";

/* Query: one consistent read of the holder, its PTTL and the epoch. */
static const char SCRIPT_QUERY_LUA[] = "return {redis.call('GET', KEYS[1]), redis.call('PTTL', "
                                       "KEYS[1]), redis.call('GET', KEYS[2])}\n";

const char *protocol_script(enum script_kind kind)
{
    switch (kind) {
    case SCRIPT_ACQUIRE:
        return SCRIPT_ACQUIRE_LUA;
    case SCRIPT_RENEW:
        return SCRIPT_RENEW_LUA;
    case SCRIPT_RELEASE:
        return SCRIPT_RELEASE_LUA;
    case SCRIPT_QUERY:
        return SCRIPT_QUERY_LUA;
    default:
        return "";
    }
}

const char *protocol_script_name(enum script_kind kind)
{
    switch (kind) {
    case SCRIPT_ACQUIRE:
        return "acquire";
    case SCRIPT_RENEW:
        return "renew";
    case SCRIPT_RELEASE:
        return "release";
    case SCRIPT_QUERY:
        return "query";
    default:
        return "?";
    }
}

/* What Redis Cluster hashes of key to find its slot (keyHashSlot in Redis's
 * cluster.c): the bytes between the first '{' and the first '}' after it
 * when there are any; otherwise the whole key.  True when that is a tag. */
static bool hashed_part(const char *key, const char **part, size_t *len)
{
    const char *open = strchr(key, '{');
    const char *close = open ? strchr(open + 1, '}') : NULL;
    if (close && close > open + 1) {
        *part = open + 1;
        *len = (size_t)(close - open - 1);
        return true;
    }
    *part = key;
    *len = strlen(key);
    return false;
}

/* A key with a {tag} is hashed by it, and so is "K:suffix".  A key without
 * one is hashed whole, and "{K}:suffix" makes K the tag, which is right only
 * when K holds no '}' (protocol_check_key refuses the others). */
char *protocol_side_key(const char *key, const char *suffix)
{
    const char *part;
    size_t len;
    char *s = NULL;
    int n = hashed_part(key, &part, &len) ? asprintf(&s, "%s:%s", key, suffix)
                                          : asprintf(&s, "{%s}:%s", key, suffix);
    return n < 0 ? NULL : s;
}

int protocol_check_key(const char *key, leasehold_error *err)
{
    const char *part;
    size_t len;
    if (!hashed_part(key, &part, &len) && strchr(key, '}'))
        return error_set(err, LEASEHOLD_EINVAL,
                         "key %s holds a '}' but no valid {hash tag}, so its side keys "
                         "({K}:epoch, {K}:events) could not share its Redis Cluster slot: use a "
                         "key without braces, or with a non-empty {tag} (e.g. leader:{eu})",
                         key);
    return 0;
}

char *protocol_epoch_key(const char *key)
{
    return protocol_side_key(key, "epoch");
}

char *protocol_channel(const char *key)
{
    return protocol_side_key(key, "events");
}

/* An error reply's code, with Redis's words as the reason. */
static int error_reply(const conn_reply *r, const char *script, char *why, size_t why_size)
{
    if (r->type == CONN_REPLY_ERROR) {
        snprintf(why, why_size, "%s", r->str ? r->str : "error reply");
        return conn_error_code(r);
    }
    snprintf(why, why_size, "unexpected reply to the %s script", script);
    return LEASEHOLD_EPROTO;
}

/* {holder or nil, PTTL, epoch or nil}: the acquire's failure and the query. */
static bool holder_snapshot(const conn_reply *r, lease_reply *out)
{
    if (r->type != CONN_REPLY_ARRAY || r->elements != 3)
        return false;
    const conn_reply *h = &r->element[0], *t = &r->element[1], *ep = &r->element[2];
    if (h->type == CONN_REPLY_STRING) {
        out->holder = h->str;
        out->holder_len = h->len;
    }
    out->pttl_ms = t->type == CONN_REPLY_INTEGER ? t->integer : -1;
    if (ep->type == CONN_REPLY_STRING)
        out->epoch = strtoull(ep->str, NULL, 10);
    return true;
}

void protocol_acquire_reply(const conn_reply *r, const char *epoch_key, lease_reply *out, char *why,
                            size_t why_size)
{
    memset(out, 0, sizeof *out);
    if (r->type == CONN_REPLY_INTEGER && r->integer > 0) {
        out->result = LEASE_ACQUIRED;
        out->epoch = (uint64_t)r->integer;
        return;
    }
    if (holder_snapshot(r, out) && out->holder) {
        out->result = LEASE_ACQUIRE_HELD;
        return;
    }
    memset(out, 0, sizeof *out);
    out->result = LEASE_ACQUIRE_FAILED;
    out->error = error_reply(r, "acquire", why, why_size);
    if (out->error == LEASEHOLD_EWRONGTYPE)
        snprintf(why, why_size,
                 "the key (or %s) holds a value that is not a string: another program uses it "
                 "(%s)",
                 epoch_key, r->str);
}

void protocol_renew_reply(const conn_reply *r, lease_reply *out, char *why, size_t why_size)
{
    memset(out, 0, sizeof *out);
    if (r->type == CONN_REPLY_INTEGER && r->integer == 1) {
        out->result = LEASE_RENEWED;
    } else if (r->type == CONN_REPLY_INTEGER && r->integer == 0) {
        out->result = LEASE_RENEW_MISSING;
    } else if (r->type == CONN_REPLY_STRING) {
        out->result = LEASE_RENEW_HELD;
        out->holder = r->str;
        out->holder_len = r->len;
    } else {
        out->result = LEASE_RENEW_FAILED;
        out->error = error_reply(r, "renew", why, why_size);
    }
}

void protocol_release_reply(const conn_reply *r, lease_reply *out, char *why, size_t why_size)
{
    memset(out, 0, sizeof *out);
    if (r->type == CONN_REPLY_INTEGER) {
        out->result = r->integer == 1 ? 1 : 0;
    } else {
        out->error = error_reply(r, "release", why, why_size);
        out->result = out->error;
    }
}

void protocol_query_reply(const conn_reply *r, const char *epoch_key, lease_reply *out, char *why,
                          size_t why_size)
{
    memset(out, 0, sizeof *out);
    if (holder_snapshot(r, out)) {
        out->result = out->holder ? LEASE_QUERY_HELD : LEASE_QUERY_FREE;
        return;
    }
    out->result = LEASE_QUERY_FAILED;
    out->error = error_reply(r, "query", why, why_size);
    if (out->error == LEASEHOLD_EWRONGTYPE)
        snprintf(why, why_size,
                 "the key (or %s) holds a value that is not a string: another program uses it "
                 "(%s)",
                 epoch_key, r->str);
}

int protocol_parse_event(const char *payload, size_t len, lease_event_kind *kind, uint64_t *epoch,
                         const char **token, size_t *token_len)
{
    static const struct {
        const char *word;
        lease_event_kind kind;
    } words[] = {{"elected ", LEASE_EVENT_ELECTED}, {"released ", LEASE_EVENT_RELEASED}};
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        size_t wl = strlen(words[i].word);
        if (len <= wl || memcmp(payload, words[i].word, wl) != 0)
            continue;
        const char *p = payload + wl, *end = payload + len;
        uint64_t v = 0;
        const char *digits = p;
        while (p < end && *p >= '0' && *p <= '9' && p - digits < 19)
            v = v * 10 + (uint64_t)(*p++ - '0');
        if (p == digits || p >= end || *p != ' ' || p + 1 >= end)
            return -1;
        *kind = words[i].kind;
        *epoch = v;
        *token = p + 1;
        *token_len = (size_t)(end - (p + 1));
        return 0;
    }
    return -1;
}
