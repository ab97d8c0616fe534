/* client_internal.h — what the files of a leasehold_client share.
 *
 * A client is one I/O thread and the caller threads that use it.  Its code
 * is in one file per thread and concern, so a file's name tells which thread
 * runs it:
 *
 *   api_client.c    caller threads: configuration, leasehold_client_new()
 *                   and _free(), helpers any thread may call
 *   api_election.c  caller threads: campaigns, observers, the term's reads,
 *                   resign, resume, hold, free, holder_get; the caller's
 *                   side of the request queue
 *   io_loop.c       the I/O thread's loop: poll, timers, the requests it is
 *                   handed, ending and unlinking elections
 *   io_drive.c      the I/O thread: the state machines' actions carried
 *                   out (commands, callbacks, services), replies fed back
 *   io_query.c      the I/O thread's side of leasehold_holder_get() and
 *                   leasehold_resign_hold()
 *   io_guard.c      the I/O thread: the restart guard and the eviction check
 *   io_sub.c        the I/O thread: the events subscription
 *   io_node.c       the I/O thread: one Redis server (its connections and the
 *                   commands in flight on it), and the route from a key to it
 *   io_cluster.c    the I/O thread: a Redis Cluster's slot map, its nodes,
 *                   MOVED and ASK, and elections moving between nodes
 *
 * Ownership is stated field by field below.  "I/O thread" fields are
 * touched by the I/O thread only, once leasehold_client_new() has started
 * it.  Before it starts and after it has been joined, the creating or
 * freeing thread stands in for it: leasehold_client_new()'s first connect
 * runs io_node.c's connection handlers, and leasehold_client_free() fails
 * what is left through node_drop_pending() and query_finish().  "mu" fields
 * are under the client's mu (or the election's, where said).  Atomics are
 * read by any thread.  The caller threads touch nothing else.
 */
#ifndef LEASEHOLD_CLIENT_INTERNAL_H
#define LEASEHOLD_CLIENT_INTERNAL_H

#include "leasehold.h"

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "chanmap.h"
#include "conn.h"
#include "lease.h"
#include "protocol.h"
#include "timer_heap.h"
#include "sentinel.h"
#include "service.h"
#include "stats.h"
#include "url.h"

typedef struct query query;
typedef struct node node;

/* A command sent and not yet answered.  Replies come back in order, so each
 * node's pending entries form a FIFO that mirrors its connection's.  I/O
 * thread. */
typedef struct pending {
    struct pending *next;
    leasehold_election *e;    /* NULL once the election has gone */
    query *q;                 /* or the leasehold_holder_get() / hold it answers */
    bool info;                /* or the restart guard's INFO server */
    bool wait;                /* or the WAIT after a claim or renewal (see held) */
    node *sent_on;            /* the node it was sent on (node_send) */
    struct pending *wait_for; /* a renewal: the WAIT sent right after it */
    bool held_set;            /* a WAIT: the claim or renewal it follows succeeded (a claim's
                                 WAIT is sent once it has)... */
    lease_reply held;         /* ...and this is its reply, fed to e once WAIT confirms it */
    enum script_kind kind;
    uint32_t seq;
    uint64_t epoch;                   /* acquire's and arm's floor, release's term */
    uint64_t named_epoch, named_hash; /* acquire: the known holder it named (its epoch, the
                                         hash of its token), whose epoch the reply omits */
    bool eval;                        /* sent as EVAL (after NOSCRIPT) */
    bool topology;                    /* or CLUSTER SHARDS / SLOTS (io_cluster.c) */
    bool asking;                      /* or the ASKING before a command redirected by ASK */
    uint8_t redirects;                /* MOVED and ASK followed so far for this command */
    uint32_t hold_ms;                 /* a renew sent as a hold (leasehold_resign_hold): this TTL */
    uint64_t sent_ns;                 /* when it was sent (clock_now_ns), for statistics */
} pending;

/* A leasehold_holder_get() or leasehold_resign_hold() under way.  The asking
 * thread and the I/O thread share it under client->mu; whichever is last to
 * let go of it frees it (query_free). */
struct query {
    query *next; /* I/O thread: in the node's list of queries waiting for the connection */
    char *key, *epoch_key; /* set by the asker, then read-only */
    char *token;           /* a hold: the term's token (else NULL) */
    char *channel;         /* a publish (leasehold_request_resign): the events channel ... */
    char *message;         /* ... and what is published there (else NULL) */
    uint32_t hold_ms;      /* a hold: its TTL (0: a holder query) */
    uint8_t redirects;     /* I/O thread: MOVED and ASK followed so far */
    /* mu: */
    bool done;      /* answered: code, msg and holder are set */
    bool abandoned; /* the asker gave up waiting: the I/O thread frees it */
    int code;
    char msg[256];
    leasehold_holder holder;
    long long receivers; /* a publish: the clients that received it */
};

typedef enum request_kind {
    REQ_CAMPAIGN,
    REQ_RESIGN,
    REQ_END,
    REQ_QUERY,
    REQ_RESUME,
    REQ_HOLD,
} request_kind;

/* What a caller thread asks of the I/O thread.  Queued under client->mu,
 * then the I/O thread's. */
typedef struct request {
    struct request *next;
    request_kind kind;
    leasehold_election *e;
    query *q;
} request;

struct leasehold_election {
    /* Set at campaign, then read-only (any thread). */
    leasehold_client *client;
    char *key, *epoch_key, *channel, *token, *quarantine_key;
    leasehold_callbacks cb;
    void *arg;
    service_fn service;
    void *service_arg;
    bool observer;    /* leasehold_observe(): never claims */
    request *end_req; /* made at campaign, so that ending needs no memory */

    /* Atomics: read by any thread, written by the I/O thread (publish()),
     * except resign_pending and refs. */
    _Atomic uint64_t valid_until_ms;   /* 0 when not leader */
    _Atomic uint64_t term_deadline_ms; /* valid_until of this or the last term */
    _Atomic uint64_t epoch;            /* of this or the last term (term.h) */
    atomic_uint resign_pending;        /* leasehold_resign() calls not yet carried out */
    /* The election is freed when the last reference lets go: its owner
     * (leasehold_election_free(), or the loop) and each abandoned service
     * thread, which may still call is_leader, epoch or resign on it. */
    atomic_uint refs;
    election_counters stats; /* leasehold_election_stats_get() */

    /* Under e->mu: set when the loop has let go of it.  From then on
     * leasehold_resign() must not touch the client, which may be freed. */
    pthread_mutex_t mu;
    bool gone;

    /* Under client->mu. */
    leasehold_election *reg_next; /* in client->registry */
    bool unlinked;                /* the loop has let go of it; the ending thread may free it */
    bool waited_for;              /* a thread waits in leasehold_election_free() to free it */
    bool free_by_loop;            /* ended from a callback: the loop frees it */

    /* I/O thread only (lease_init'ed at campaign, before the I/O thread
     * sees it). */
    leasehold_election *next; /* in the client's list */
    timer_node timer;         /* in client->timers while anything is due (election_wake_at) */
    chan_link chan;           /* in client->chans under its channel while linked */
    leasehold_election *touched_next;  /* in client->touched */
    leasehold_election *stranded_next; /* node_drop_pending's list (see there) */
    bool stranded;
    bool touched;
    node *home;                   /* the node its key was last routed to (route_node) */
    leasehold_election *svc_next; /* in client->services while it has a service */
    bool in_services;
    lease lease;
    service *svc; /* the running (or stopping) service */
    uint64_t svc_stop_deadline_ms;
    bool svc_overran;        /* the overrun was reported */
    unsigned pending_count;  /* pending entries that point here */
    bool ending;             /* REQ_END or shutdown: lease_stop() called */
    bool end_asked;          /* REQ_END or shutdown came: a held campaign may be let go of */
    bool holding;            /* leasehold_resign_hold(): the term ends without a release */
    bool lapse_on_resign;    /* a resign request ends the term, its key left to lapse */
    bool stopped;            /* LEASE_STOPPED received */
    char why[256];           /* the text behind the next LEASE_ERROR */
    char last_reported[256]; /* the last error reported; cleared by a reply that is not an
                                error, a term and a resume, so each change is reported once */
    uint64_t arm_gate_ms;    /* no claim before this: the quarantine found on connecting
                                (UINT64_MAX: not known yet; 0: none) */
};

/* One Redis server: a connection for scripts, one for the events channels,
 * what the restart guard knows of the server, and the commands in flight.
 * A client has one, or one per master of a Cluster; route_node() says which
 * serves a key.  Behind a Sentinel URL the server is whichever is master:
 * the node asks the Sentinels before each attempt to connect.  I/O thread
 * only. */
struct node {
    leasehold_client *client;
    char host[256]; /* a Cluster node's address ("" otherwise) */
    uint16_t port;
    unsigned slots;              /* a Cluster node: the slots the map gives it */
    unsigned sunsubscribes;      /* SUNSUBSCRIBEs sent on sub and not yet answered */
    conn *cmd;                   /* scripts and INFO */
    conn *sub;                   /* SUBSCRIBEd to the events channels of the keys routed here */
    sentinel *sen;               /* redis+sentinel://: finds the master; NULL otherwise */
    bool events_live;            /* sub has confirmed a SUBSCRIBE since it last connected */
    bool cmd_parked, sub_parked; /* waiting for the Sentinels to name the master */
    char master_host[256];       /* the master the Sentinels named last ("": none yet) */
    uint16_t master_port;
    char news_host[256]; /* the master a +switch-master announced last, and when */
    uint16_t news_port;
    uint64_t news_ms;
    unsigned failovers;        /* changes of master followed */
    uint64_t failover_gate_ms; /* the failover guard: no claim before */
    bool replicas_pending;     /* ...nor before min_replicas replicas follow the new master */
    uint64_t info_again_ms;    /* when to ask INFO again for them (0: no need) */
    char replid[48];           /* the last connection's replication ID, "" unknown */
    char info_host[256];       /* the address run_id and replid were read at */
    uint16_t info_port;
    pending *pend_head, *pend_tail;
    query *unsent;          /* queries waiting for the connection */
    bool need_info;         /* INFO has yet to be asked on this connection */
    uint64_t claim_gate_ms; /* the restart guard: no claim before (UINT64_MAX: unknown) */
    char run_id[48];        /* the last connection's Redis instance, "" unknown */
    char policy[32];        /* its maxmemory-policy, "" unknown */
    char warned_policy[32]; /* the eviction policy last warned about */
    int reset_code;         /* nonzero: the connection must be reset (node_reset_later) */
    char reset_why[128];
    char last_conn_error[256];
    char last_sub_error[256]; /* the last refusal of SUBSCRIBE logged */
};

struct leasehold_client {
    /* Set by leasehold_client_new(), then read-only (any thread). */
    leasehold_config cfg; /* strings point into the copies below */
    char *url_copy, *identity;
    url u;
    struct tls_ctx *tls;           /* rediss://: every connection's TLS context; NULL otherwise */
    char sha[2][SCRIPT_KINDS][41]; /* [sharded][kind] */
    conn_options node_opt;         /* every node's connection settings (seed aside) */
    int wake_fd;
    pthread_t thread;
    atomic_bool thread_running;
    client_counters stats; /* leasehold_client_stats_get(): its own lock, and atomics */

    /* mu (cond: CLOCK_MONOTONIC; an election unlinked, a query answered). */
    pthread_mutex_t mu;
    pthread_cond_t cond;
    uint64_t rng;                 /* jitter seeds (client_next_seed) */
    request *req_head, *req_tail; /* the requests not yet taken by the I/O thread */
    bool closing;                 /* leasehold_client_free() has begun: no new campaigns */
    bool shut_down;               /* ... and the I/O thread is to end every election */
    unsigned waiters;             /* threads inside leasehold_election_free(),
                                     leasehold_holder_get() or leasehold_resign_hold():
                                     client_free waits for them */
    leasehold_election *registry; /* every election not yet unlinked, for EEXIST */

    /* I/O thread only. */
    node **nodes; /* the Redis servers: one, or a Cluster's (never freed before the client) */
    size_t node_count, node_cap;
    node **slot_owner;      /* a Cluster: the node serving each slot, NULL not known */
    bool sharded;           /* events by SSUBSCRIBE / SPUBLISH (a Redis 7 Cluster) */
    bool shards_refused;    /* CLUSTER SHARDS is unknown: ask CLUSTER SLOTS */
    bool topology_known;    /* a slot map has been read */
    bool topology_inflight; /* CLUSTER SHARDS / SLOTS sent, not answered */
    int seed_next;          /* lazy_connect: the seed the first node tries next */
    uint64_t topology_due_ms, topology_last_ms;
    struct pollfd *pfd; /* the loop's poll set, grown with the nodes */
    conn **pfd_conns;
    size_t pfd_cap;
    leasehold_election *elections;
    timer_heap timers;            /* every election with a timer, earliest first */
    chanmap chans;                /* events channel -> its elections */
    leasehold_election *touched;  /* elections acted on since the loop last settled them */
    leasehold_election *services; /* elections with a running (or stopping) service */
    bool shutting_down;
    uint64_t shutdown_deadline_ms;
    bool stats_nodes_dirty; /* a node was added or its connections changed (stats.c) */

    /* Inside leasehold_client_new()'s first connect (the creating thread). */
    bool first_connect;
    int first_code;
    char first_msg[256];
};

/* ------------------------------------------------- any thread (api_client.c, api_election.c) */

/* Formats and hands a line to the user's log callback, if it wants it. */
void client_log(leasehold_client *c, leasehold_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A malloc'd string, or NULL when out of memory. */
char *client_format(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* 64 random bits. */
uint64_t client_random_u64(void);

/* Wakes the I/O thread. */
void client_wake(leasehold_client *c);

/* The part of the configuration the state machine takes. */
lease_config client_lease_config(const leasehold_config *cfg);

/* A seed for an election's or a connection's jitter; with c->mu held, or
 * before the I/O thread has started. */
uint64_t client_next_seed(leasehold_client *c);

/* Drops one reference to e (see refs); the last one frees it. */
void election_release(void *arg);

/* Frees a query and its strings. */
void query_free(query *q);

/* ------------------------------------------------ I/O thread (io_loop.c) */

/* True on c's I/O thread (inside one of its callbacks). */
bool client_on_loop_thread(const leasehold_client *c);

/* The I/O thread's body. */
void *client_loop_main(void *arg);

/* Unlinks a finished election; releases it or hands it to the thread that
 * waits in leasehold_election_free(). */
void client_unlink_election(leasehold_client *c, leasehold_election *e);

/* Notes that e was acted on: before the loop sleeps, its timer is set again
 * from its state machine and its service, and it is unlinked if it has
 * finished.  Whatever changes an election's timers or its end calls this
 * (drive() does). */
void election_touch(leasehold_election *e);

/* ----------------------------------------------- I/O thread (io_drive.c) */

/* Carries out every action e's state machine has queued, in order. */
void drive(leasehold_election *e, uint64_t now_ms);

/* Reports e's error code (text in e->why) once per change. */
void report_error(leasehold_election *e, int code);

/* Sends script kind for e on the node serving its key. */
void send_for_election(leasehold_election *e, enum script_kind kind, uint32_t seq, uint64_t epoch,
                       bool eval, uint64_t now_ms);

/* The reply r to pending entry p of e; frees p. */
void election_answer(leasehold_election *e, pending *p, const conn_reply *r, uint64_t now_ms);

/* WAIT's reply w for e: the claim or renewal it follows counts (it is fed
 * to the state machine now) if enough replicas acknowledged it, else it
 * fails with LEASEHOLD_ENOREPLICAS; frees w. */
void election_wait_answer(leasehold_election *e, pending *w, const conn_reply *r, uint64_t now_ms);

/* Joins a service that returned, or deals with one past its stop timeout. */
void check_service(leasehold_election *e, uint64_t now_ms);

/* e's names for a script on the node n. */
protocol_key election_names(const leasehold_election *e, const node *n);

/* ----------------------------------------------- I/O thread (io_query.c) */

/* Hands q its answer (code 0 and r) or its failure, wakes the asker; frees
 * q when the asker has given up.  Any thread that may touch the node. */
void query_finish(leasehold_client *c, query *q, int code, const char *msg, const conn_reply *r);

/* Sends q now (eval: as EVAL, after a NOSCRIPT), or fails it. */
void query_send(leasehold_client *c, query *q, bool eval, uint64_t now_ms);

/* Sends q on n (after ASKING when asking): a redirection followed. */
void query_send_on(leasehold_client *c, query *q, node *n, bool asking, bool eval, uint64_t now_ms);

/* Sends q once its node is connected. */
void query_start(leasehold_client *c, query *q, uint64_t now_ms);

/* Sends the queries that waited for n's connection. */
void query_send_unsent(node *n, uint64_t now_ms);

/* leasehold_resign_hold() on the I/O thread. */
void query_hold_term(leasehold_client *c, leasehold_election *e, query *q, uint64_t now_ms);

/* ----------------------------------------------- I/O thread (io_guard.c) */

/* A new connection on n: with the restart guard, claims wait for INFO. */
void guard_connected(node *n, uint64_t now_ms);

/* Asks n's Redis about itself and arms each campaign's quarantine check,
 * once per connection. */
void guard_ask(node *n, uint64_t now_ms);

/* INFO's answer on n. */
void guard_answer(node *n, const conn_reply *r, uint64_t now_ms);

/* n's server may have changed without a restart (another master, a
 * promotion), seen at seen_ms: with the restart guard, no claim for one
 * lease from then, and with min_replicas, none until that many replicas
 * follow the new master and for a lease after that.  why says what was
 * seen, for the log. */
void guard_failover(node *n, const char *why, uint64_t seen_ms, uint64_t now_ms);

/* Asks INFO again when the failover guard waits for replicas (at
 * n->info_again_ms). */
void guard_tick(node *n, uint64_t now_ms);

/* The arm script's answer for e. */
void guard_arm_answer(leasehold_election *e, const conn_reply *r, uint64_t now_ms);

/* A campaign joins: its own quarantine check, the eviction warning and its
 * claim gate. */
void guard_campaign_started(leasehold_election *e, uint64_t now_ms);

/* Logs a quarantine: loudly when this process's script set it. */
void guard_log_quarantine(leasehold_election *e, int64_t remaining_ms, bool fresh);

/* ------------------------------------------------- I/O thread (io_sub.c) */

/* Subscribes to (or leaves) e's channel on node n, if n's events
 * connection is ready (once it is, it subscribes to all). */
void sub_channel(node *n, const leasehold_election *e, bool subscribe, uint64_t now_ms);

/* The events connection's handler. */
extern const conn_handler sub_handler;

/* ------------------------------------------------------ I/O thread (io_node.c) */

/* The node that serves key: the one node (behind a Sentinel URL, the
 * current master's), or the owner of the key's Cluster slot as last known
 * (the first node while the slot map is not). */
node *route_node(leasehold_client *c, const char *key);

/* Makes c's first node for the URL: its two connections, the address
 * resolved (for a Sentinel URL, the Sentinels to ask; for a Cluster URL,
 * the first seed node), not yet connected.  sentinel_user and
 * sentinel_password are the Sentinels' own (NULL: none).  0, or the error
 * in err (LEASEHOLD_ENOMEM, or conn_resolve()'s); client_destroy frees the
 * nodes either way. */
int node_create(leasehold_client *c, const char *sentinel_user, const char *sentinel_password,
                leasehold_error *err);

/* A Cluster node at host:port, added to c->nodes, connecting (both
 * connections) unless c is inside leasehold_client_new()'s first connect;
 * NULL when out of memory or the address does not resolve (logged). */
node *node_add(leasehold_client *c, const char *host, uint16_t port, uint64_t now_ms);

/* Starts connecting cn (n's cmd or sub): at once, or for a Sentinel URL
 * once the Sentinels have named the master. */
void node_connect(node *n, conn *cn, uint64_t now_ms);

/* Every connection of n to poll (at most NODE_CONNS), stored in out; their
 * number. */
#define NODE_CONNS 4
int node_conns(node *n, conn *out[NODE_CONNS]);

/* The next instant node_tick() has work, UINT64_MAX if none. */
uint64_t node_wake_at(const node *n);

/* Handles the due timers of n's connections (and of its Sentinels). */
void node_tick(node *n, uint64_t now_ms);

/* The node's before_attempt handler for cmd and sub (conn.h). */
bool node_before_attempt(void *arg, conn *cn, uint64_t now_ms);

/* Frees n and its connections (pending entries are dropped first). */
void node_free(node *n);

/* The election's names and script flavour on n, and where a script of e
 * goes: send_script sends kind on n (after ASKING when asking).  The seq,
 * epoch and eval are as send_for_election's; redirects counts the MOVED
 * and ASK this command has followed. */
void send_script(leasehold_election *e, node *n, bool asking, enum script_kind kind, uint32_t seq,
                 uint64_t epoch, bool eval, uint8_t redirects, uint64_t now_ms);

/* Sends argv on n's command connection with p queued for its reply.  On
 * failure ("<key>: <what> not sent" is logged) p is freed, the connection
 * reset and false returned. */
bool node_send(node *n, pending *p, int argc, const char **argv, const char *key, const char *what,
               uint64_t now_ms);

/* The connection must be renewed once the current callback has returned
 * (our bookkeeping and the connection's no longer agree). */
void node_reset_later(node *n, int code, const char *why);

/* Carries out a reset asked for by node_reset_later. */
void node_apply_reset(node *n);

/* Forgets every command in flight on n (its connection is gone); a query
 * among them fails with code and msg.  An election that had one there but
 * is routed elsewhere now (a Cluster: an ASK, a slot moved meanwhile) is
 * told it was lost, as by a disconnection, and goes on on its own node. */
void node_drop_pending(node *n, int code, const char *msg);

/* Makes pending entries of e forget it (e is being unlinked). */
void node_forget(node *n, const leasehold_election *e);

/* ------------------------------------------------ I/O thread (io_cluster.c) */

/* Asks for the slot map soon (a node went down, a redirection was seen):
 * at once, but at most every 100 ms. */
void cluster_refresh_soon(leasehold_client *c, uint64_t now_ms);

/* The next instant cluster_tick() has work, UINT64_MAX if none. */
uint64_t cluster_wake_at(const leasehold_client *c);

/* Asks for the slot map when it is due (on start, periodically, soon after
 * a redirection or a node going down). */
void cluster_tick(leasehold_client *c, uint64_t now_ms);

/* CLUSTER SHARDS's or SLOTS's answer on n: the slot map is applied (new
 * masters connected, elections moved to the node now serving their keys,
 * the failover guard on a node that took slots over). */
void cluster_topology_answer(node *n, const conn_reply *r, uint64_t now_ms);

/* A reply that may be a MOVED or ASK for command p (taken off n's FIFO):
 * true when it was one and p has been sent on (or failed, past the
 * redirection limit); p is then no longer the caller's. */
bool cluster_redirect(node *n, pending *p, const conn_reply *r, uint64_t now_ms);

/* Moves e to the node that now serves its key (after the slot map
 * changed): its channel follows, its state machine learns whether it is
 * connected there, and its claims wait for that node's guards. */
void cluster_rehome(leasehold_election *e, uint64_t now_ms);

/* -------------------------------------------------- I/O thread (stats.c) */

/* Copies the nodes' addresses and connection states into c->stats when
 * stats_nodes_dirty says they may have changed. */
void stats_refresh_nodes(leasehold_client *c);

#endif
