/* protocol.c — the Lua scripts leasehold runs on Redis and the meaning of
 * their replies.
 *
 * Compatibility: a claim is `SET K token NX PX lease` and a renewal is the
 * original module's compare-and-PEXPIRE, so a candidate that speaks only the
 * original protocol on the same key keeps working beside leasehold.
 */
#include "protocol.h"

#include "cluster.h"
#include "error.h"
#include "redis_error.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What every script starts with.  call() is redis.call that names the
 * command an ACL refused (Redis's own words inside a script do not: "can't
 * run this command"), so the user is told which permission is missing:
 * "NOPERM ... to run the 'pexpire' command (in a leasehold script)".  get()
 * also fails on a value of another type with the key and its type in the
 * error ("WRONGTYPE {K}:epoch holds a list"), so the user is told which key
 * holds what.  Other errors pass through as they are. */
#define GET_LUA                                                                                    \
    "local function fail(r, cmd)\n"                                                                \
    "  if string.find(r.err, \"can't run this command\", 1, true) then\n"                          \
    "    r.err = \"NOPERM this user has no permissions to run the '\" .. string.lower(cmd) ..\n"   \
    "      \"' command (in a leasehold script)\"\n"                                                \
    "  end\n"                                                                                      \
    "  error(r)\n"                                                                                 \
    "end\n"                                                                                        \
    "local function call(cmd, ...)\n"                                                              \
    "  local r = redis.pcall(cmd, ...)\n"                                                          \
    "  if type(r) == 'table' and r.err then fail(r, cmd) end\n"                                    \
    "  return r\n"                                                                                 \
    "end\n"                                                                                        \
    "local function get(k)\n"                                                                      \
    "  local v = redis.pcall('GET', k)\n"                                                          \
    "  if type(v) == 'table' and v.err then\n"                                                     \
    "    if string.sub(v.err, 1, 9) == 'WRONGTYPE' then\n"                                         \
    "      local t = redis.pcall('TYPE', k)\n"                                                     \
    "      v.err = 'WRONGTYPE ' .. k .. ' holds a ' .. (type(t) == 'table' and t.ok or '?')\n"     \
    "    end\n"                                                                                    \
    "    fail(v, 'GET')\n"                                                                         \
    "  end\n"                                                                                      \
    "  return v\n"                                                                                 \
    "end\n"

/*
 * The quarantine (README, "The safety rule").  {K}:epoch has no TTL and is
 * never deleted, so finding it missing means Redis lost its data (a restart
 * without persistence, FLUSHALL, eviction) or K was never used: a lease that
 * another process still believes it holds may have vanished with it.  The
 * script that finds it missing stores a new epoch (Redis's TIME in
 * microseconds, at least the caller's floor) and {K}:quarantine with a TTL of
 * one lease, and no claim succeeds while that marker lives.  This holds in
 * Redis itself, whatever clocks, connections or INFO say.  Both scripts that
 * may find it missing (acquire and arm) share this step.
 */
#define QUARANTINE_STEP_LUA                                                                        \
    "if redis.replicate_commands then redis.replicate_commands() end\n"                            \
    "local t = call('TIME')\n"                                                                     \
    "local floor = tonumber(ARGV[FLOOR]) or 0\n"                                                   \
    "local last = get(KEYS[EPOCH])\n"                                                              \
    "if not last then\n"                                                                           \
    "  local e = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"                                      \
    "  if floor > e then e = floor end\n"                                                          \
    "  local s = string.format('%.0f', e)\n"                                                       \
    "  call('SET', KEYS[EPOCH], s)\n"                                                              \
    "  call('SET', KEYS[EPOCH + 1], s, 'PX', ARGV[LEASE])\n"                                       \
    "  return {'quarantine', tonumber(ARGV[LEASE]), 1, t[1], t[2]}\n"                              \
    "end\n"                                                                                        \
    "local q = call('PTTL', KEYS[EPOCH + 1])\n"                                                    \
    "if q > 0 then return {'quarantine', q, 0, t[1], t[2]} end\n"

/* Acquire.  A key held by another costs two commands, GET and PTTL:
 * {"held", holder, PTTL, epoch or nil}, where the epoch (a third command)
 * is read only when the holder is not the one the caller already knows
 * (ARGV[5]: "=" and its token, or "" for none; so an empty value is never
 * taken for a known holder), the steady state of a follower.  A free key: the
 * quarantine step, then SET NX PX and the next fencing epoch (strictly
 * above the last one, at least Redis's TIME in microseconds and at least
 * the caller's floor, the highest epoch it has seen plus one, so it keeps
 * growing across a restart that lost the epoch key even if Redis's clock
 * went back), stored and announced (PUBLISH, or SPUBLISH on a Redis 7
 * Cluster: the channel shares K's slot): {"elected", epoch, TIME}.  The epoch key
 * is read before anything is written, so a wrong type there fails the script
 * with nothing changed.  A held key needs no quarantine step: no claim can
 * succeed while it lives, and the first claim that finds it free takes the
 * step.  Lua numbers are doubles: exact up to 2^53, far above microseconds
 * since 1970 (and floors are kept below 2^52). */
#define ACQUIRE_LUA(PUBLISH)                                                                       \
    "local EPOCH, LEASE, FLOOR = 2, 2, 4\n" GET_LUA "local v = get(KEYS[1])\n"                     \
    "if v then\n"                                                                                  \
    "  local ttl = call('PTTL', KEYS[1])\n"                                                        \
    "  if '=' .. v == ARGV[5] then return {'held', v, ttl, false} end\n"                           \
    "  return {'held', v, ttl, get(KEYS[2])}\n"                                                    \
    "end\n" QUARANTINE_STEP_LUA "last = tonumber(last) or 0\n"                                     \
    "if call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then\n"                                 \
    "  local epoch = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"                                  \
    "  if last + 1 > epoch then epoch = last + 1 end\n"                                            \
    "  if floor > epoch then epoch = floor end\n"                                                  \
    "  local s = string.format('%.0f', epoch)\n"                                                   \
    "  call('SET', KEYS[2], s)\n"                                                                  \
    "  call('" PUBLISH "', ARGV[3], 'elected ' .. s .. ' ' .. ARGV[1])\n"                          \
    "  return {'elected', s, t[1], t[2]}\n"                                                        \
    "end\n"                                                                                        \
    "return redis.error_reply('ERR leasehold: the key was free and SET NX failed')\n"
static const char SCRIPT_ACQUIRE_LUA[] = ACQUIRE_LUA("PUBLISH");
static const char SCRIPT_ACQUIRE_SHARDED_LUA[] = ACQUIRE_LUA("SPUBLISH");

/* Arm: the quarantine step alone, run on each new connection so that a
 * quarantine starts when the connection does, not after the restart guard
 * has held the first claim (the two holds overlap instead of adding up):
 * {"quarantine", remaining ms, set now, TIME} or {"clear"}. */
static const char SCRIPT_ARM_LUA[] =
    "local EPOCH, LEASE, FLOOR = 1, 1, 2\n" GET_LUA QUARANTINE_STEP_LUA "return {'clear'}\n";

/* Renew: the original module's compare-and-PEXPIRE, answering distinctly,
 * with Redis's TIME: {1, TIME} renewed, {0, TIME} the key is gone,
 * {token, TIME}: the token that holds it instead. */
static const char SCRIPT_RENEW_LUA[] =
    "if redis.replicate_commands then redis.replicate_commands() end\n" GET_LUA
    "local t = call('TIME')\n"
    "local v = get(KEYS[1])\n"
    "if v == ARGV[1] then\n"
    "  return {call('PEXPIRE', KEYS[1], ARGV[2]), t[1], t[2]}\n"
    "end\n"
    "if v then return {v, t[1], t[2]} end\n"
    "return {0, t[1], t[2]}\n";

/* Release: compare-and-DEL, then announce it (as the acquire does).  1
 * deleted, 0 not ours.  The
 * term is named by token and epoch together: a campaign keeps its token from
 * term to term, and a release sent for an earlier term (held up in a
 * connection that was given up, say) must not delete a later one. */
#define RELEASE_LUA(PUBLISH)                                                                       \
    GET_LUA "if get(KEYS[1]) == ARGV[1] and get(KEYS[2]) == ARGV[3] then\n"                        \
            "  call('DEL', KEYS[1])\n"                                                             \
            "  call('" PUBLISH "', ARGV[2], 'released ' .. ARGV[3] .. ' ' .. ARGV[1])\n"           \
            "  return 1\n"                                                                         \
            "end\n"                                                                                \
            "return 0\n"
static const char SCRIPT_RELEASE_LUA[] = RELEASE_LUA("PUBLISH");
static const char SCRIPT_RELEASE_SHARDED_LUA[] = RELEASE_LUA("SPUBLISH");

/* Query: one consistent read of the holder, its PTTL and the epoch. */
static const char SCRIPT_QUERY_LUA[] =
    GET_LUA "return {get(KEYS[1]), call('PTTL', KEYS[1]), get(KEYS[2])}\n";

const char *protocol_script(enum script_kind kind, bool sharded)
{
    switch (kind) {
    case SCRIPT_ACQUIRE:
        return sharded ? SCRIPT_ACQUIRE_SHARDED_LUA : SCRIPT_ACQUIRE_LUA;
    case SCRIPT_RENEW:
        return SCRIPT_RENEW_LUA;
    case SCRIPT_RELEASE:
        return sharded ? SCRIPT_RELEASE_SHARDED_LUA : SCRIPT_RELEASE_LUA;
    case SCRIPT_QUERY:
        return SCRIPT_QUERY_LUA;
    case SCRIPT_ARM:
        return SCRIPT_ARM_LUA;
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
    case SCRIPT_ARM:
        return "arm";
    default:
        return "?";
    }
}

void protocol_call_init(protocol_call *call, enum script_kind kind, const char *sha,
                        const protocol_key *k, uint32_t ttl_ms, uint64_t epoch)
{
    snprintf(call->known, sizeof call->known, "=%s", k->known_holder ? k->known_holder : "");
    snprintf(call->ttl_ms, sizeof call->ttl_ms, "%" PRIu32, ttl_ms);
    snprintf(call->epoch, sizeof call->epoch, "%" PRIu64, epoch);
    const char **argv = call->argv;
    int argc = 0;
    argv[argc++] = sha ? "EVALSHA" : "EVAL";
    argv[argc++] = sha ? sha : protocol_script(kind, k->sharded);
    switch (kind) {
    case SCRIPT_ACQUIRE:
        argv[argc++] = "3";
        argv[argc++] = k->key;
        argv[argc++] = k->epoch_key;
        argv[argc++] = k->quarantine_key;
        argv[argc++] = k->token;
        argv[argc++] = call->ttl_ms;
        argv[argc++] = k->channel;
        argv[argc++] = call->epoch; /* the floor of the next epoch */
        argv[argc++] = k->known_holder ? call->known : "";
        break;
    case SCRIPT_ARM:
        argv[argc++] = "2";
        argv[argc++] = k->epoch_key;
        argv[argc++] = k->quarantine_key;
        argv[argc++] = call->ttl_ms;
        argv[argc++] = call->epoch; /* the floor */
        break;
    case SCRIPT_RENEW:
        argv[argc++] = "1";
        argv[argc++] = k->key;
        argv[argc++] = k->token;
        argv[argc++] = call->ttl_ms;
        break;
    case SCRIPT_RELEASE:
        argv[argc++] = "2";
        argv[argc++] = k->key;
        argv[argc++] = k->epoch_key;
        argv[argc++] = k->token;
        argv[argc++] = k->channel;
        argv[argc++] = call->epoch; /* the term's */
        break;
    case SCRIPT_QUERY:
    default:
        argv[argc++] = "2";
        argv[argc++] = k->key;
        argv[argc++] = k->epoch_key;
        break;
    }
    call->argc = argc;
}

/* A key with a {tag} is hashed by it, and so is "K:suffix".  A key without
 * one is hashed whole, and "{K}:suffix" makes K the tag, which is right only
 * when K holds no '}' (protocol_check_key refuses the others). */
char *protocol_side_key(const char *key, const char *suffix)
{
    const char *part;
    size_t len;
    char *s = NULL;
    int n = cluster_hashed_part(key, &part, &len) ? asprintf(&s, "%s:%s", key, suffix)
                                                  : asprintf(&s, "{%s}:%s", key, suffix);
    return n < 0 ? NULL : s;
}

int protocol_check_key(const char *key, leasehold_error *err)
{
    const char *part;
    size_t len;
    for (const char *k = key; *k; k++) {
        unsigned char ch = (unsigned char)*k;
        if (ch < 0x20 || ch == 0x7f) {
            char shown[120];
            redis_error_quote(key, strlen(key), 80, shown, sizeof shown);
            return error_set(err, LEASEHOLD_EINVAL,
                             "key '%s' holds a control character (byte 0x%02x at offset %zu): "
                             "it would split log lines; use a key of printable characters",
                             shown, ch, (size_t)(k - key));
        }
    }
    if (!cluster_hashed_part(key, &part, &len) && strchr(key, '}'))
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

char *protocol_quarantine_key(const char *key)
{
    return protocol_side_key(key, "quarantine");
}

/* An error reply's code, and why: for Redis's refusals the cause and the
 * fix, naming k's ACL user, side keys and channel; for a reply of the wrong
 * shape, which script got it. */
static int error_reply(const conn_reply *r, const protocol_key *k, const char *script, char *why,
                       size_t why_size)
{
    if (r->type != CONN_REPLY_ERROR) {
        snprintf(why, why_size, "unexpected reply to the %s script", script);
        return LEASEHOLD_EPROTO;
    }
    if (!k) {
        snprintf(why, why_size, "%s", r->str ? r->str : "error reply");
        return conn_error_code(r);
    }
    char side[600];
    snprintf(side, sizeof side, "~%s%s%s", k->epoch_key, k->quarantine_key ? " ~" : "",
             k->quarantine_key ? k->quarantine_key : "");
    redis_error_ctx ctx = {.key = k->key,
                           .epoch_key = k->epoch_key,
                           .side_keys = side,
                           .channel = k->channel,
                           .user = k->user && k->user[0] ? k->user : "default",
                           .address = k->address,
                           .retried = k->channel != NULL}; /* a campaign retries */
    return redis_error_explain(r->str, &ctx, why, why_size);
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

/* A decimal string reply as a number; 0 when it is not one. */
static uint64_t string_number(const conn_reply *r)
{
    if (r->type != CONN_REPLY_STRING || r->len == 0 || r->len > 20)
        return 0;
    char *end = NULL;
    unsigned long long v = strtoull(r->str, &end, 10);
    return end == r->str + r->len ? v : 0;
}

/* Redis's TIME as two string elements (seconds, microseconds), in
 * microseconds; 0 when they are not that. */
static uint64_t redis_time_us(const conn_reply *sec, const conn_reply *usec)
{
    uint64_t s = string_number(sec), us = string_number(usec);
    if (s == 0 || s > 100000000000ull || us >= 1000000)
        return 0;
    return s * 1000000u + us;
}

/* True when r is an array of n elements whose first is the string tag. */
static bool tagged(const conn_reply *r, const char *tag, size_t n)
{
    return r->type == CONN_REPLY_ARRAY && r->elements == n &&
           r->element[0].type == CONN_REPLY_STRING && strcmp(r->element[0].str, tag) == 0;
}

/* {"quarantine", remaining ms, set now (1/0), TIME sec, TIME usec}. */
static bool quarantine_reply(const conn_reply *r, lease_reply *out)
{
    if (!tagged(r, "quarantine", 5) || r->element[1].type != CONN_REPLY_INTEGER ||
        r->element[2].type != CONN_REPLY_INTEGER)
        return false;
    out->result = LEASE_ACQUIRE_QUARANTINED;
    out->pttl_ms = r->element[1].integer;
    out->fresh = r->element[2].integer == 1;
    out->redis_time_us = redis_time_us(&r->element[3], &r->element[4]);
    return true;
}

void protocol_acquire_reply(const conn_reply *r, const protocol_key *k, lease_reply *out, char *why,
                            size_t why_size)
{
    memset(out, 0, sizeof *out);
    if (tagged(r, "elected", 4) && string_number(&r->element[1]) > 0) {
        out->result = LEASE_ACQUIRED;
        out->epoch = string_number(&r->element[1]);
        out->redis_time_us = redis_time_us(&r->element[2], &r->element[3]);
        return;
    }
    if (quarantine_reply(r, out))
        return;
    if (tagged(r, "held", 4)) {
        conn_reply snapshot = {.type = CONN_REPLY_ARRAY, .elements = 3, .element = r->element + 1};
        if (holder_snapshot(&snapshot, out) && out->holder) {
            out->result = LEASE_ACQUIRE_HELD;
            return;
        }
    }
    memset(out, 0, sizeof *out);
    out->result = LEASE_ACQUIRE_FAILED;
    out->error = error_reply(r, k, "acquire", why, why_size);
}

void protocol_renew_reply(const conn_reply *r, const protocol_key *k, lease_reply *out, char *why,
                          size_t why_size)
{
    memset(out, 0, sizeof *out);
    const conn_reply *v = r->type == CONN_REPLY_ARRAY && r->elements == 3 ? &r->element[0] : NULL;
    if (v)
        out->redis_time_us = redis_time_us(&r->element[1], &r->element[2]);
    if (v && v->type == CONN_REPLY_INTEGER && v->integer == 1) {
        out->result = LEASE_RENEWED;
    } else if (v && v->type == CONN_REPLY_INTEGER && v->integer == 0) {
        out->result = LEASE_RENEW_MISSING;
    } else if (v && v->type == CONN_REPLY_STRING) {
        out->result = LEASE_RENEW_HELD;
        out->holder = v->str;
        out->holder_len = v->len;
    } else {
        out->redis_time_us = 0;
        out->result = LEASE_RENEW_FAILED;
        out->error = error_reply(r, k, "renew", why, why_size);
    }
}

void protocol_release_reply(const conn_reply *r, const protocol_key *k, lease_reply *out, char *why,
                            size_t why_size)
{
    memset(out, 0, sizeof *out);
    if (r->type == CONN_REPLY_INTEGER) {
        out->result = r->integer == 1 ? 1 : 0;
    } else {
        out->error = error_reply(r, k, "release", why, why_size);
        out->result = out->error;
    }
}

void protocol_query_reply(const conn_reply *r, const protocol_key *k, lease_reply *out, char *why,
                          size_t why_size)
{
    memset(out, 0, sizeof *out);
    if (holder_snapshot(r, out)) {
        out->result = out->holder ? LEASE_QUERY_HELD : LEASE_QUERY_FREE;
        return;
    }
    out->result = LEASE_QUERY_FAILED;
    out->error = error_reply(r, k, "query", why, why_size);
}

int protocol_arm_reply(const conn_reply *r, const protocol_key *k, int64_t *remaining_ms,
                       bool *fresh, char *why, size_t why_size)
{
    lease_reply lr = {0};
    *remaining_ms = 0;
    *fresh = false;
    if (tagged(r, "clear", 1))
        return 0;
    if (quarantine_reply(r, &lr)) {
        *remaining_ms = lr.pttl_ms;
        *fresh = lr.fresh;
        return 0;
    }
    return error_reply(r, k, "arm", why, why_size);
}

void protocol_explain_holder(int code, const char *holder, int64_t pttl_ms, char *why,
                             size_t why_size)
{
    char v[80];
    const char *h = holder ? holder : "";
    redis_error_quote(h, strlen(h), 60, v, sizeof v);
    if (code == LEASEHOLD_ENOTLEASE)
        snprintf(why, why_size,
                 "holds '%s' with no TTL: not a lease, and nothing will ever free it (delete "
                 "it, or pick another key)",
                 v);
    else
        snprintf(why, why_size,
                 "holds '%s', which is not a leasehold token (another program's value, or the "
                 "original module's): waiting for it to expire (%" PRId64 " ms left)",
                 v, pttl_ms);
}

void protocol_renew_refusal(const lease_reply *r, char *out, size_t out_size)
{
    if (r->result == LEASE_RENEW_MISSING) {
        snprintf(out, out_size, "gone");
        return;
    }
    char holder[160];
    redis_error_quote(r->holder ? r->holder : "", r->holder_len, 60, holder, sizeof holder);
    snprintf(out, out_size, "held by '%s'", holder);
}

int protocol_parse_event(const char *payload, size_t len, lease_event_kind *kind, uint64_t *epoch,
                         const char **token, size_t *token_len)
{
    static const struct {
        const char *word;
        lease_event_kind kind;
    } words[] = {{"elected ", LEASE_EVENT_ELECTED},
                 {"released ", LEASE_EVENT_RELEASED},
                 {"resign ", LEASE_EVENT_RESIGN}};
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

char *protocol_resign_message(uint64_t epoch, const char *token)
{
    size_t size = strlen(token) + 32;
    char *m = malloc(size);
    if (m)
        snprintf(m, size, "resign %" PRIu64 " %s", epoch, token);
    return m;
}

/* The next space-free word of [*p, end), which must be followed by a space
 * (last: by the end); false when there is none. */
static bool next_word(const char **p, const char *end, bool last, const char **word, size_t *len)
{
    const char *w = *p;
    const char *q = w;
    while (q < end && *q != ' ')
        q++;
    if (q == w || (last ? q != end : q == end))
        return false;
    *word = w;
    *len = (size_t)(q - w);
    *p = last ? q : q + 1;
    return true;
}

/* A decimal number of 1 to 19 digits. */
static bool word_number(const char *w, size_t len, uint64_t *out)
{
    if (len == 0 || len > 19)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (w[i] < '0' || w[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(w[i] - '0');
    }
    *out = v;
    return true;
}

int protocol_parse_request(const char *payload, size_t len, lease_request *out)
{
    static const char prefer[] = "prefer ", handover[] = "handover ";
    const char *end = payload + len, *p;
    memset(out, 0, sizeof *out);
    if (len > sizeof prefer - 1 && memcmp(payload, prefer, sizeof prefer - 1) == 0)
        p = payload + sizeof prefer - 1;
    else if (len > sizeof handover - 1 && memcmp(payload, handover, sizeof handover - 1) == 0) {
        p = payload + sizeof handover - 1;
        out->handover = true;
    } else
        return -1;
    const char *w;
    size_t wl;
    uint64_t priority = 0;
    if (!next_word(&p, end, false, &w, &wl) || !word_number(w, wl, &out->epoch) ||
        !next_word(&p, end, false, &out->holder, &out->holder_len))
        return -1;
    if (!out->handover && (!next_word(&p, end, false, &w, &wl) || !word_number(w, wl, &priority) ||
                           priority > UINT32_MAX))
        return -1;
    if (!next_word(&p, end, true, &out->other, &out->other_len))
        return -1;
    out->priority = (uint32_t)priority;
    return 0;
}

char *protocol_prefer_message(uint64_t epoch, const char *holder, uint32_t priority,
                              const char *asker)
{
    size_t size = strlen(holder) + strlen(asker) + 64;
    char *m = malloc(size);
    if (m)
        snprintf(m, size, "prefer %" PRIu64 " %s %" PRIu32 " %s", epoch, holder, priority, asker);
    return m;
}

char *protocol_handover_message(uint64_t epoch, const char *holder, const char *successor)
{
    size_t size = strlen(holder) + strlen(successor) + 48;
    char *m = malloc(size);
    if (m)
        snprintf(m, size, "handover %" PRIu64 " %s %s", epoch, holder, successor);
    return m;
}
