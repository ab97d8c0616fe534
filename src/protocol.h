/* protocol.h — leasehold's wire protocol on Redis: the Lua scripts, their
 * arguments, and what their replies and the events channel's messages mean.
 * Pure: no I/O, no state. */
#ifndef LEASEHOLD_PROTOCOL_H
#define LEASEHOLD_PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conn.h"
#include "lease.h"

enum script_kind {
    SCRIPT_ACQUIRE, /* KEYS: K, K:epoch, K:quarantine  ARGV: token, lease_ms, channel, floor,
                                                             known holder */
    SCRIPT_RENEW,   /* KEYS: K                         ARGV: token, lease_ms */
    SCRIPT_RELEASE, /* KEYS: K, K:epoch                ARGV: token, channel, epoch */
    SCRIPT_QUERY,   /* KEYS: K, K:epoch */
    SCRIPT_ARM,     /* KEYS: K:epoch, K:quarantine     ARGV: lease_ms, floor */
    SCRIPT_KINDS
};

/* One key's names on Redis, and what messages about it name.  A one-off
 * read or hold (leasehold_holder_get(), leasehold_resign_hold()) has no
 * campaign: quarantine_key and channel are NULL, and its errors are not
 * retried. */
typedef struct protocol_key {
    const char *key, *epoch_key, *quarantine_key, *channel;
    const char *token;        /* ours: acquire, renew (and hold), release */
    const char *known_holder; /* acquire: the holder whose epoch the caller knows, or NULL */
    const char *user;         /* the ACL user, for messages; NULL: "default" */
    const char *address;      /* the server, for messages; may be NULL */
    bool sharded;             /* events go out by SPUBLISH (a Redis 7 Cluster), not PUBLISH */
} protocol_key;

/* A script call ready for conn_send(): argv[0..argc) is EVALSHA <sha> (EVAL
 * <Lua> when no sha is given) and the script's keys and arguments in the
 * order its Lua reads them (the table above).  argv points into the key's
 * names, the sha and the struct itself: use it where it was filled. */
typedef struct protocol_call {
    int argc;
    const char *argv[12];
    char ttl_ms[24], epoch[24];
    char known[258]; /* acquire: "=" and the known holder (cut: then never matches) */
} protocol_call;

/* Fills call for script kind on k.  ttl_ms is the TTL the script gives the
 * key (the lease, or a hold's); epoch is the acquire's and arm's floor of
 * the next epoch (0: none) or the term a release names. */
void protocol_call_init(protocol_call *call, enum script_kind kind, const char *sha,
                        const protocol_key *k, uint32_t ttl_ms, uint64_t epoch);

/* Whether `key` is usable: no control character (bytes below 0x20 and
 * 0x7f, which would split log lines), and side keys in its own Redis Cluster slot.  Redis
 * Cluster hashes only a key's {tag} (the bytes between the first '{' and the
 * first '}' after it, when there are any) or else the whole key.  A key
 * without a valid tag but with a '}' (a}b, a{}b, }{) cannot: "{K}:epoch"
 * would end its tag at K's own '}'.  Returns 0, or LEASEHOLD_EINVAL with a
 * message naming the key, the reason and what to use instead. */
int protocol_check_key(const char *key, leasehold_error *err);

/* The name of the side key `suffix` of `key` (DESIGN.md): "{K}:suffix", or
 * "K:suffix" when K already holds a {tag}.  For a key that
 * protocol_check_key accepts it hashes to K's slot.  A malloc'd string,
 * NULL when out of memory.  protocol_epoch_key and protocol_channel are
 * the side keys "epoch" and "events". */
char *protocol_side_key(const char *key, const char *suffix);
char *protocol_epoch_key(const char *key);
char *protocol_channel(const char *key);
char *protocol_quarantine_key(const char *key);

/* The Lua source of a script (sharded: announcing by SPUBLISH), and its
 * name for messages. */
const char *protocol_script(enum script_kind kind, bool sharded);
const char *protocol_script_name(enum script_kind kind);

/* The replies of the scripts run on k, as the state machine takes them.
 * On an error reply (or one that makes no sense) the reply's error is set
 * and a message is written to why (why_size bytes): for Redis's refusals
 * the cause and the fix, naming k's ACL user, side keys and channel (see
 * redis_error_explain), never the script's internals.  Pointers in out
 * point into r. */
void protocol_acquire_reply(const conn_reply *r, const protocol_key *k, lease_reply *out, char *why,
                            size_t why_size);
void protocol_renew_reply(const conn_reply *r, const protocol_key *k, lease_reply *out, char *why,
                          size_t why_size);
void protocol_release_reply(const conn_reply *r, const protocol_key *k, lease_reply *out, char *why,
                            size_t why_size);
void protocol_query_reply(const conn_reply *r, const protocol_key *k, lease_reply *out, char *why,
                          size_t why_size);

/* The arm script's reply: 0 with the quarantine's remaining time (0: none)
 * and whether this script set it, or an error code with the reason in why. */
int protocol_arm_reply(const conn_reply *r, const protocol_key *k, int64_t *remaining_ms,
                       bool *fresh, char *why, size_t why_size);

/* What an acquire's or a query's holder means when it is no lease
 * (LEASEHOLD_ENOTLEASE: no TTL) or not a leasehold token
 * (LEASEHOLD_EFOREIGN, pttl_ms left): a message into why, the value quoted
 * and cut. */
void protocol_explain_holder(int code, const char *holder, int64_t pttl_ms, char *why,
                             size_t why_size);

/* A renewal refused because the key is gone or held by another token
 * (LEASE_RENEW_MISSING, LEASE_RENEW_HELD in r): "gone" or "held by
 * '<token>'", the token quoted and cut, into out. */
void protocol_renew_refusal(const lease_reply *r, char *out, size_t out_size);

/* Parses a message of the events channel, "elected <epoch> <token>",
 * "released <epoch> <token>" or "resign <epoch> <token>" (a request that the
 * leader of that term step down).  Returns 0, or -1 for anything else (which
 * is ignored: the channel is news, never proof).  *token points into
 * payload. */
int protocol_parse_event(const char *payload, size_t len, lease_event_kind *kind, uint64_t *epoch,
                         const char **token, size_t *token_len);

/* The request that the leader of the term (epoch, token) step down, as
 * protocol_parse_event reads it: malloc'd, NULL when out of memory. */
char *protocol_resign_message(uint64_t epoch, const char *token);

/* Parses a preferred leader's message, "prefer <epoch> <holder> <priority>
 * <asker>" or "handover <epoch> <holder> <successor>" (see lease_request):
 * 0, or -1 for anything else.  Its strings point into payload. */
int protocol_parse_request(const char *payload, size_t len, lease_request *out);

/* Those two messages: malloc'd, NULL when out of memory. */
char *protocol_prefer_message(uint64_t epoch, const char *holder, uint32_t priority,
                              const char *asker);
char *protocol_handover_message(uint64_t epoch, const char *holder, const char *successor);

#endif
