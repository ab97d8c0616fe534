/*
 * leasehold.h — leader election for C services on Redis.
 *
 * Many processes campaign for one Redis key; at most one of them is leader at
 * any moment.  The leader holds the key with a TTL (the lease) and renews it;
 * when it dies, hangs or is cut off, the lease lapses and another process is
 * elected.  Each term carries a fencing epoch that strictly increases from term
 * to term.
 *
 * A minimal program (this is examples/minimal.c):
 *
 *     #include <leasehold.h>
 *     #include <stdio.h>
 *     #include <stdlib.h>
 *
 *     static int work(leasehold_token *t, void *arg)
 *     {
 *         (void)arg;
 *         printf("leader, epoch %llu\n", (unsigned long long)leasehold_token_epoch(t));
 *         while (leasehold_token_sleep(t, 1000))
 *             puts("doing the leader's work");
 *         return 0; // cancelled: we are no longer leader
 *     }
 *
 *     // Trouble after start (Redis down, a missing ACL permission, the key taken
 *     // by another program's value) arrives here, on leasehold's thread; a
 *     // permanent error has halted the campaign until leasehold_resume().
 *     static void on_error(leasehold_election *e, const leasehold_error *err, void *arg)
 *     {
 *         (void)e;
 *         (void)arg;
 *         fprintf(stderr, "leasehold: %s: %s%s\n", leasehold_errname(err->code), err->msg,
 *                 leasehold_error_is_permanent(err->code) ? " (campaign halted)" : "");
 *     }
 *
 *     int main(int argc, char **argv)
 *     {
 *         leasehold_config cfg;
 *         leasehold_error err;
 *         leasehold_config_init(&cfg);
 *         const char *url = argc > 1 ? argv[1] : getenv("SNAKETRON_REDIS_URL");
 *         cfg.url = url ? url : "redis://127.0.0.1:6379";
 *         leasehold_client *c = leasehold_client_new(&cfg, &err);
 *         const leasehold_callbacks cb = {.error = on_error};
 *         if (!c || !leasehold_serve_cb(c, "myapp:leader", work, NULL, &cb, &err)) {
 *             fprintf(stderr, "leasehold: %s\n", err.msg);
 *             return 1;
 *         }
 *         getchar();                // run until Enter
 *         leasehold_client_free(c); // stops the service, releases the lease
 *         return 0;
 *     }
 *
 * Threads
 * -------
 * Each leasehold_client owns one background I/O thread that talks to Redis and
 * drives every election of that client.  Callbacks (leasehold_callbacks, the
 * log callback) run on that thread: they must return quickly.  From a
 * callback, leasehold_client_free() of the same client is refused (it would
 * wait for itself) and leasehold_election_free() only schedules the end.  A
 * service given to leasehold_serve() runs in a thread of its own; it must not
 * free its own election or client (that waits for the service to return).
 * Each function below says whether it is safe to call from any thread.
 *
 * Errors
 * ------
 * Functions that can fail return NULL or a negative code and, when given a
 * leasehold_error, fill it with the code and a message that names the cause
 * and the thing ("redis://127.0.0.1:1: connection refused").  Each one below
 * lists every code it can return and when.  The library never prints, never
 * exits and never installs signal handlers.
 */
#ifndef LEASEHOLD_H
#define LEASEHOLD_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library exports these functions and nothing else. */
#if defined(__GNUC__)
#define LEASEHOLD_API __attribute__((visibility("default")))
#else
#define LEASEHOLD_API
#endif

/*
 * Error codes: 0 is success, every error is negative.  POSIX meanings are
 * reused where they exist; the rest are leasehold's own band, below -1000.
 * X(name, value, message)
 */
#define LEASEHOLD_ERRORS(X)                                                                        \
    X(LEASEHOLD_EINVAL, -EINVAL, "invalid argument")                                               \
    X(LEASEHOLD_ENOMEM, -ENOMEM, "out of memory")                                                  \
    X(LEASEHOLD_ETIMEDOUT, -ETIMEDOUT, "timed out")                                                \
    X(LEASEHOLD_ECONNREFUSED, -ECONNREFUSED, "connection refused")                                 \
    X(LEASEHOLD_ECONNRESET, -ECONNRESET, "connection closed by Redis")                             \
    X(LEASEHOLD_EIO, -EIO, "I/O error")                                                            \
    X(LEASEHOLD_EDEADLK, -EDEADLK, "called from a callback where it would wait for itself")        \
    X(LEASEHOLD_EURL, -1001, "malformed or unsupported URL")                                       \
    X(LEASEHOLD_ERESOLVE, -1002, "host name did not resolve")                                      \
    X(LEASEHOLD_EAUTH, -1003, "authentication refused")                                            \
    X(LEASEHOLD_ENOPERM, -1004, "permission denied by Redis ACL")                                  \
    X(LEASEHOLD_EDB, -1005, "database index rejected")                                             \
    X(LEASEHOLD_EWRONGTYPE, -1006, "key holds a value of the wrong type")                          \
    X(LEASEHOLD_EREADONLY, -1007, "Redis is a read-only replica")                                  \
    X(LEASEHOLD_EPROTO, -1008, "unexpected reply from Redis")                                      \
    X(LEASEHOLD_EREDIS, -1009, "error reply from Redis")                                           \
    X(LEASEHOLD_ECLOSED, -1010, "client is shutting down")                                         \
    X(LEASEHOLD_EEXIST, -1011, "this client already campaigns for that key")                       \
    X(LEASEHOLD_ECONFIG, -1012, "invalid configuration")                                           \
    X(LEASEHOLD_EEVICTION, -1013, "Redis may evict the lease key (maxmemory-policy)")              \
    X(LEASEHOLD_ECLOCKJUMP, -1014, "Redis's clock jumped forward")                                 \
    X(LEASEHOLD_ENOSCRIPT, -1015, "Redis refuses the Lua scripts leasehold needs")                 \
    X(LEASEHOLD_ENOTLEASE, -1016, "the key holds a value with no TTL: not a lease")                \
    X(LEASEHOLD_EFOREIGN, -1017, "the key holds a value that is not a leasehold token")            \
    X(LEASEHOLD_ENOTLEADER, -1018, "not the leader")                                               \
    X(LEASEHOLD_ETLS, -1019, "TLS failed")                                                         \
    X(LEASEHOLD_ETLSUNTRUSTED, -1020, "server certificate not issued by a trusted CA")             \
    X(LEASEHOLD_ETLSHOSTNAME, -1021, "server certificate does not name the host")                  \
    X(LEASEHOLD_ETLSEXPIRED, -1022, "server certificate expired or not yet valid")                 \
    X(LEASEHOLD_ETLSCLIENTCERT, -1023, "client certificate missing or refused by Redis")           \
    X(LEASEHOLD_ETLSPLAIN, -1024, "the port speaks plain Redis, not TLS: use redis://")            \
    X(LEASEHOLD_ETLSNEEDED, -1025, "the port speaks TLS: use rediss://")                           \
    X(LEASEHOLD_ESENTINEL, -1026, "no Sentinel reachable")                                         \
    X(LEASEHOLD_EMASTERNAME, -1027, "no Sentinel knows the master name")                           \
    X(LEASEHOLD_ENOMASTER, -1028, "no master yet: the server Sentinel names is not a master")      \
    X(LEASEHOLD_ENOREPLICAS, -1029, "too few replicas acknowledged the write (WAIT)")

enum leasehold_errno {
#define LEASEHOLD_ENUM_(name, value, msg) name = (value),
    LEASEHOLD_ERRORS(LEASEHOLD_ENUM_)
#undef LEASEHOLD_ENUM_
};

/* Detail of a failure: the code and a message naming the cause. */
typedef struct leasehold_error {
    int code;
    char msg[256];
} leasehold_error;

/* The message for an error code ("connection refused"); never NULL.
 * Thread-safe. */
LEASEHOLD_API const char *leasehold_strerror(int code);

/* The name of an error code ("LEASEHOLD_ECONNREFUSED"); never NULL.
 * Thread-safe. */
LEASEHOLD_API const char *leasehold_errname(int code);

/*
 * True for the codes that retrying cannot fix, because they come from how
 * Redis, its ACL or the key is set up, or from how the program was written:
 *   LEASEHOLD_EAUTH       the password or user is refused
 *   LEASEHOLD_ENOPERM     the ACL user may not run a command, or use a key
 *                         or the events channel, that leasehold needs
 *   LEASEHOLD_EDB         the database index is refused
 *   LEASEHOLD_EWRONGTYPE  the key (or a side key) is not a string
 *   LEASEHOLD_EREADONLY   the URL points at a read-only replica
 *   LEASEHOLD_ENOSCRIPT   EVAL/EVALSHA are renamed, disabled or broken
 *   LEASEHOLD_ENOTLEASE   the key holds a value with no TTL
 *   LEASEHOLD_ETLSUNTRUSTED, _ETLSHOSTNAME, _ETLSEXPIRED, _ETLSCLIENTCERT,
 *   _ETLSPLAIN, _ETLSNEEDED  the TLS settings and the server's do not match
 *   LEASEHOLD_EURL, LEASEHOLD_ECONFIG, LEASEHOLD_EINVAL  bad input
 * An election that meets one of the Redis ones halts (see the `error`
 * callback and leasehold_resume()).  Everything else (timeouts, lost
 * connections, OOM, LOADING, BUSY, MASTERDOWN, TRYAGAIN, LEASEHOLD_EFOREIGN,
 * LEASEHOLD_EEVICTION...) is transient or a warning: false.  Thread-safe.
 */
LEASEHOLD_API bool leasehold_error_is_permanent(int code);

/*
 * True when value has the form of a token leasehold writes into a lease
 * key: "<identity>/<nonce>", identity 1 to 200 bytes with no space or
 * control character, nonce exactly 16 lowercase hex digits.  A key holding
 * anything else belongs to another program (or to the original module,
 * which may write any value).  NULL is not a token.  Thread-safe.
 */
LEASEHOLD_API bool leasehold_is_token(const char *value);

/* ---------------------------------------------------------------- config */

typedef enum leasehold_log_level {
    LEASEHOLD_LOG_ERROR = 0,
    LEASEHOLD_LOG_WARN = 1,
    LEASEHOLD_LOG_INFO = 2,
    LEASEHOLD_LOG_DEBUG = 3,
} leasehold_log_level;

/* Receives the library's log lines (no trailing newline).  Runs on the I/O
 * thread, or on the caller's thread inside leasehold_client_new(). */
typedef void (*leasehold_log_fn)(leasehold_log_level level, const char *msg, void *arg);

#define LEASEHOLD_CONFIG_VERSION 5

#define LEASEHOLD_PRIORITY_MAX 1000000 /* the highest leasehold_config.priority */

/*
 * Client configuration.  Always start from leasehold_config_init(): it sets
 * every default and the version, which leasehold_client_new() checks, so a
 * program built against another version of this header is told so
 * (LEASEHOLD_ECONFIG) instead of being misread.  Times are milliseconds.
 * Zero is never taken to mean "no time": leasehold_client_new() rejects a
 * configuration that does not make sense (LEASEHOLD_ECONFIG, with the
 * reason) and never corrects it.
 */
typedef struct leasehold_config {
    int version;                 /* LEASEHOLD_CONFIG_VERSION, set by init */
    const char *url;             /* redis://, rediss:// (TLS), unix://, redis+sentinel://
                                    (Sentinels and a master name) or redis+cluster:// (seed
                                    nodes of a Cluster), see README; required */
    const char *password;        /* NULL: the URL's password, if any; else this one (a
                                    password read from a file or the environment, so it
                                    need not appear in a URL on the command line); the
                                    URL must then hold none (redis://user:@host for an
                                    ACL user), else LEASEHOLD_ECONFIG */
    const char *identity;        /* first half of each token; NULL: "<hostname>:<pid>" */
    uint32_t lease_ms;           /* TTL of the key: 2000 */
    uint32_t renew_interval_ms;  /* the leader renews this often: 300 */
    uint32_t retry_interval_ms;  /* a follower's longest wait between claims: 1000 */
    uint32_t renew_deadline_ms;  /* a leader unrenewed this long steps down: 1500 */
    uint32_t command_timeout_ms; /* unanswered this long resets the connection: 250 */
    uint32_t connect_timeout_ms; /* 1000 */
    uint32_t stop_timeout_ms;    /* how long a stopping service is waited for: 10000 */
    uint32_t clock_drift_ppm;    /* the largest difference in rate between this host's clock
                                    and the Redis host's, in parts per million: 10000 (1%).
                                    Each lease is counted lease_ms * ppm / 10^6 + 2 ms short,
                                    and Redis's clock advancing faster than this allows ends
                                    a term (LEASEHOLD_CLOCK_JUMPED).  1 to 200000; clocks
                                    disciplined by NTP slew at most 500 ppm (ntpd) or
                                    maxslewrate (chrony: 83333 ppm unless set lower) */
    bool lazy_connect;           /* false: leasehold_client_new() connects first and
                                    fails with the reason; true: it resolves the host
                                    name, then returns and keeps trying to connect in
                                    the background */
    uint64_t seed;               /* jitter seed; 0: drawn at random */
    bool restart_guard;          /* true (default): no claim on a Redis that has been up for less
                                    than the lease: it may have restarted and lost a key that
                                    another process still believes it holds */
    bool original_timing;        /* for comparisons only: behave as the original module
                                    did (a blind claim every retry_interval_ms, no
                                    events channel, no release on resign or shutdown) */
    /* TLS, for rediss:// URLs (the URL's query may give each too: tls_ca_file=,
     * tls_ca_dir=, tls_cert_file=, tls_key_file=, tls_server_name=,
     * tls_insecure=yes; given in both places, they must agree).  The server is
     * verified by default: its chain against the CAs below, its name against
     * the URL's host (or tls_server_name). */
    const char *tls_ca_file;     /* PEM file of CA certificates to trust; NULL, with no
                                    tls_ca_dir: the system's trust store */
    const char *tls_ca_dir;      /* directory of hashed CA certificates (openssl rehash) */
    const char *tls_cert_file;   /* PEM client certificate (chain), for Redis's
                                    tls-auth-clients; NULL: none */
    const char *tls_key_file;    /* its PEM private key; NULL: in tls_cert_file */
    const char *tls_server_name; /* SNI and the name checked in the server's certificate;
                                    NULL: the URL's host (an IP address is checked as one) */
    bool tls_insecure;           /* true: no verification of the server at all (logged as a
                                    WARN at start); for tests only */
    /* Redis Sentinel, for redis+sentinel:// and rediss+sentinel:// URLs (the
     * URL's user and password are the master's). */
    const char *sentinel_user;     /* the Sentinels' own ACL user; NULL: none */
    const char *sentinel_password; /* the Sentinels' own password (their requirepass);
                                      NULL: none */
    int min_replicas;              /* a claim or renewal counts only once WAIT has confirmed
                                      it on this many replicas; -1 (default): 1 for Sentinel
                                      and Cluster URLs, 0 (no WAIT) otherwise */
    uint32_t replica_timeout_ms;   /* how long WAIT may wait for them; 0 (default): 2/5
                                      of command_timeout_ms (100 ms of the default 250);
                                      else at least 50 ms below command_timeout_ms */
    /* The preferred leader: when candidates of different priorities campaign for a key,
     * the highest that is connected ends up leading.  A follower of higher priority than
     * the leader asks it (on the key's events channel) to hand over, and the leader does,
     * gracefully (as leasehold_resign(): its service stopped, the key released, and the
     * other candidates held back so that the asker wins), once its term has lasted
     * handover_interval_ms.  Equal priorities never hand over to each other.  Leaders
     * older than this version ignore the request.  Applies to every campaign of the
     * client; observers ignore it. */
    uint32_t priority;             /* 1 (default): no preference; more: preferred; 0: a
                                      standby, which claims a retry interval after the others
                                      and hands over at once to any other candidate that asks:
                                      it leads only while no other candidate is there.  At
                                      most LEASEHOLD_PRIORITY_MAX */
    uint32_t handover_interval_ms; /* a leader hands over to a preferred candidate only once
                                      its term has lasted this long (a standby: at once), so
                                      leadership moves at most once per interval: 10000 */
    leasehold_log_fn log;          /* NULL: no logging */
    void *log_arg;
    leasehold_log_level log_level; /* lines above this level are not formatted: INFO */
} leasehold_config;

/* Fills cfg with the defaults above; cfg->url is NULL.  Thread-safe. */
LEASEHOLD_API void leasehold_config_init(leasehold_config *cfg);

/* ---------------------------------------------------------------- client */

typedef struct leasehold_client leasehold_client;
typedef struct leasehold_election leasehold_election;
typedef struct leasehold_token leasehold_token;

/*
 * Validates cfg, parses the URL, resolves the host name and starts the I/O
 * thread.  Unless cfg->lazy_connect, it first connects (AUTH and SELECT
 * when the URL asks for them, then PING) and returns NULL with the reason
 * if that fails.  After that, a lost connection is re-established in the
 * background with jittered exponential back-off.  cfg is copied (strings
 * too).  err may be NULL.  Thread-safe.
 *
 * Returns the client, or NULL with err->code:
 *   LEASEHOLD_EINVAL        cfg is NULL
 *   LEASEHOLD_ECONFIG       cfg is not valid: not from leasehold_config_init()
 *                           (version), no URL, times that do not make sense,
 *                           a bad identity or log level, TLS settings without
 *                           rediss:// or given twice and differently, a CA,
 *                           certificate or key file that cannot be read or
 *                           does not match (err->msg says which)
 *   LEASEHOLD_EURL          the URL is malformed or unsupported
 *   LEASEHOLD_ERESOLVE      the host name did not resolve (lazy_connect too)
 *   LEASEHOLD_ENOMEM        out of memory
 *   -EMFILE, -ENFILE, -ENODEV  eventfd() failed (its errno, negated)
 *   -EAGAIN                 pthread_create() failed: no resources for the
 *                           I/O thread
 * and, unless cfg->lazy_connect, when the first connection fails:
 *   LEASEHOLD_ECONNREFUSED  nobody listens there (for unix://, also: no
 *                           socket file)
 *   LEASEHOLD_ETIMEDOUT     not connected, or AUTH/SELECT/PING unanswered,
 *                           within connect_timeout_ms (or TCP gave up)
 *   LEASEHOLD_ECONNRESET    Redis closed or reset the connection
 *   LEASEHOLD_EIO           another socket error (no route to host...)
 *   LEASEHOLD_ENOMEM        out of memory (also from the socket layer)
 *   LEASEHOLD_EPROTO        an answer that is not Redis's: malformed, or
 *                           not the +OK / +PONG the handshake expects
 *   LEASEHOLD_EAUTH         AUTH refused (WRONGPASS), or Redis asks for a
 *                           password the URL lacks (NOAUTH)
 *   LEASEHOLD_EDB           SELECT refused (no such database)
 *   LEASEHOLD_ENOPERM       the ACL user may not run AUTH, SELECT or PING
 * and for rediss:// (the TLS handshake shares connect_timeout_ms):
 *   LEASEHOLD_ETLSUNTRUSTED  the server's certificate chain does not lead to
 *                           a trusted CA (tls_ca_file / tls_ca_dir)
 *   LEASEHOLD_ETLSHOSTNAME  the certificate names neither the URL's host nor
 *                           tls_server_name
 *   LEASEHOLD_ETLSEXPIRED   a certificate in the chain has expired or is not
 *                           valid yet
 *   LEASEHOLD_ETLSCLIENTCERT  Redis requires a client certificate
 *                           (tls-auth-clients) and none was given, or
 *                           refused the one given
 *   LEASEHOLD_ETLSPLAIN     the server answered in plain text: a plain Redis
 *                           port (use redis://)
 *   LEASEHOLD_ETLSNEEDED    (redis://) Redis reset the connection before
 *                           answering, and the port answers a TLS
 *                           ClientHello: a TLS port (use rediss://)
 *   LEASEHOLD_ETLS          any other TLS failure (err->msg has OpenSSL's
 *                           words)
 * and for redis+sentinel:// (each Sentinel asked in turn, then ROLE on the
 * master it names):
 *   LEASEHOLD_ESENTINEL     no Sentinel of the URL could be reached
 *   LEASEHOLD_EMASTERNAME   every Sentinel that answered knows no master of
 *                           that name
 *   LEASEHOLD_ENOMASTER     the server the Sentinels name is not a master
 *                           (yet: ROLE says replica)
 *   LEASEHOLD_EAUTH, _ENOPERM  every Sentinel that answered refused
 *                           sentinel_user / sentinel_password
 * and for redis+cluster:// (each seed node asked in turn until one connects
 * and gives the slot map; the message names each seed's failure):
 *   LEASEHOLD_EPROTO        a seed answered CLUSTER SHARDS / SLOTS with
 *                           something other than a slot map (no Cluster node)
 *   LEASEHOLD_ENOPERM       the ACL user may not run CLUSTER SHARDS / SLOTS
 *                           (the message names the grant)
 *   LEASEHOLD_EREDIS        another error reply to the handshake (LOADING,
 *                           MASTERDOWN...); one whose first word is
 *                           READONLY, WRONGTYPE or NOSCRIPT gives
 *                           LEASEHOLD_EREADONLY, LEASEHOLD_EWRONGTYPE or
 *                           LEASEHOLD_ENOSCRIPT
 * leasehold_strerror() and leasehold_errname() do not know the -errno
 * codes ("unknown error"); err->msg names them.
 */
LEASEHOLD_API leasehold_client *leasehold_client_new(const leasehold_config *cfg,
                                                     leasehold_error *err);

/*
 * Ends every election of the client as leasehold_election_free() does
 * (services stopped, leases released), stops the I/O thread and frees the
 * client, with every election not freed yet (their pointers become
 * invalid).  Waits at most stop_timeout_ms for each service and
 * command_timeout_ms for the releases.  Must not be called from a callback
 * (it then logs an error and does nothing).
 */
LEASEHOLD_API void leasehold_client_free(leasehold_client *c);

/* ------------------------------------------------------------- elections */

/* Why a term ended. */
typedef enum leasehold_reason {
    LEASEHOLD_LOST = 1,         /* the key holds another process's token */
    LEASEHOLD_EXPIRED = 2,      /* the key was gone, or the lease ran out before a renewal */
    LEASEHOLD_DEADLINE = 3,     /* renewals failed for renew_deadline_ms */
    LEASEHOLD_DISCONNECTED = 4, /* Redis closed or reset the connection */
    LEASEHOLD_RESIGNED = 5,     /* leasehold_resign(), a service that returned, or shutdown */
    LEASEHOLD_CLOCK_JUMPED = 6, /* Redis's wall clock advanced faster than the drift allowance
                                   permits (it was stepped): its TTLs cannot be trusted, so the
                                   term ends at once, its deadline with it */
    LEASEHOLD_HALTED = 7,       /* a permanent error halted the campaign (see the `error`
                                   callback): the term ends at once, its deadline with it */
} leasehold_reason;

/* "lost", "expired", ...; never NULL.  Thread-safe. */
LEASEHOLD_API const char *leasehold_reason_name(leasehold_reason reason);

/*
 * Callbacks of one election; any may be NULL.  They run on the I/O thread,
 * in the order the events happened, and must return quickly.
 *
 * elected:        this process became leader for the term `epoch`.
 * revoked:        the term ended for `reason`; leasehold_is_leader() was
 *                 already false before the call.
 * leader_changed: the holder this process observes changed: `holder_token` is
 *                 the new holder's token (this process's own on election) or
 *                 NULL when nobody holds the key; `epoch` is the holder's
 *                 epoch when known, else 0.
 * error:          a condition the user should see.  When
 *                 leasehold_error_is_permanent(err->code) (NOPERM, WRONGTYPE,
 *                 READONLY, ENOSCRIPT, ENOTLEASE...), the message names the
 *                 cause and the fix, and the election HALTS: it sends
 *                 nothing more for the key (no claim, renewal or read)
 *                 until leasehold_resume(); a leader's term ends first
 *                 (revoked with LEASEHOLD_HALTED, its service cancelled), so
 *                 the error is reported once.  Otherwise (a foreign value
 *                 in the key, LEASEHOLD_EFOREIGN; an eviction policy; a
 *                 service that overran its stop timeout; a transient Redis
 *                 error such as OOM or LOADING) the election goes on
 *                 trying, with back-off, and the same condition is
 *                 reported once until it changes or clears.
 * observed:       the same changes as leader_changed, with what ended or began
 *                 a term (see leasehold_observation); for tools that report
 *                 them, such as `leasehold watch`.
 * resign_requested: leasehold_request_resign() (`leasehold resign`) asked
 *                 this process to end its term `epoch`, which it still
 *                 leads, or a candidate of higher priority did (see
 *                 leasehold_config.priority).  Stop what the term started, then call
 *                 leasehold_resign(): the key is released and another
 *                 candidate takes over at once.  Until then the term goes on.
 *                 An election that runs a service (leasehold_serve())
 *                 needs no callback: it resigns by itself (the service is
 *                 cancelled, the key renewed until it returns, then
 *                 released), and the callback, if any, is told too.
 *                 Without a service and without this callback, the term
 *                 ends at once (revoked with LEASEHOLD_RESIGNED) but its key
 *                 is left to lapse with its TTL, not released: the library
 *                 cannot know that the code acting on the term has stopped.
 */
typedef enum leasehold_change {
    LEASEHOLD_CHANGE_ELECTED = 1,  /* a new holder: .token, .epoch (a previous
                                      holder, if any, is gone) */
    LEASEHOLD_CHANGE_RELEASED = 2, /* the holder released the key: .token, .epoch
                                      of the ended term */
    LEASEHOLD_CHANGE_EXPIRED = 3,  /* the key vanished without a release (its
                                      holder stopped renewing): .token, .epoch of
                                      the ended term, when known */
} leasehold_change;

/* "elected", "released", "expired"; never NULL.  Thread-safe. */
LEASEHOLD_API const char *leasehold_change_name(leasehold_change change);

typedef struct leasehold_observation {
    leasehold_change change;
    const char *token; /* NUL-terminated; "" when unknown */
    uint64_t epoch;    /* 0 when unknown */
} leasehold_observation;

typedef struct leasehold_callbacks {
    void (*elected)(leasehold_election *e, uint64_t epoch, void *arg);
    void (*revoked)(leasehold_election *e, leasehold_reason reason, void *arg);
    void (*leader_changed)(leasehold_election *e, const char *holder_token, uint64_t epoch,
                           void *arg);
    void (*error)(leasehold_election *e, const leasehold_error *err, void *arg);
    void (*observed)(leasehold_election *e, const leasehold_observation *o, void *arg);
    void (*resign_requested)(leasehold_election *e, uint64_t epoch, void *arg);
} leasehold_callbacks;

/*
 * Starts campaigning for `key`.  cb (copied) may be NULL.  Does not wait
 * for Redis.  Errors met later (Redis refusing the scripts, a key that is
 * not a lease...) come through the `error` callback.
 * Thread-safe, callbacks included.
 *
 * Returns the election, or NULL with err->code:
 *   LEASEHOLD_EINVAL   c or key is NULL; key is empty; key holds a control
 *                      character (bytes 0x01-0x1f and 0x7f, which would
 *                      split log lines); or key holds a '}' but no valid
 *                      {hash tag}, such as a}b or a{}b, whose side keys
 *                      could not share its Redis Cluster slot
 *   LEASEHOLD_EEXIST   this client already campaigns for key (observers
 *                      of it do not count)
 *   LEASEHOLD_ECLOSED  the client is being freed (leasehold_client_free())
 *   LEASEHOLD_ENOMEM   out of memory
 */
LEASEHOLD_API leasehold_election *leasehold_campaign(leasehold_client *c, const char *key,
                                                     const leasehold_callbacks *cb, void *arg,
                                                     leasehold_error *err);

/*
 * True only while this process certainly holds the lease: it is leader and
 * the monotonic clock is before valid_until (see README, "The safety rule").
 * Lock-free; thread-safe.
 */
LEASEHOLD_API bool leasehold_is_leader(const leasehold_election *e);

/* This term's fencing epoch, or 0 when not leader.  Never 0 when the leader
 * check it makes (leasehold_is_leader()'s) passes, even while a term is
 * ending or starting on the I/O thread.  Lock-free; thread-safe. */
LEASEHOLD_API uint64_t leasehold_epoch(const leasehold_election *e);

/*
 * The instant, on leasehold_now_ms()'s clock, until which the current term,
 * or the last one once it has ended, certainly holds the key: valid_until of
 * the safety rule, extended while a resigning term keeps its key for its
 * stopping service.  Anything a term started must be stopped before it
 * (`leasehold run` kills its command shortly before).  0 before the first
 * term.  Lock-free; thread-safe.
 */
LEASEHOLD_API uint64_t leasehold_term_deadline_ms(const leasehold_election *e);

/*
 * The clock leases are measured with, in milliseconds: CLOCK_BOOTTIME, which
 * never steps back, ignores the wall clock and, unlike CLOCK_MONOTONIC, keeps
 * counting while the machine is suspended (Redis's TTL does too).
 * Thread-safe.
 */
LEASEHOLD_API uint64_t leasehold_now_ms(void);

/* The election's key and this process's token for it ("<identity>/<nonce>").
 * Valid until the election is freed.  Thread-safe. */
LEASEHOLD_API const char *leasehold_key(const leasehold_election *e);
LEASEHOLD_API const char *leasehold_election_token(const leasehold_election *e);

/*
 * Steps down if leader: leasehold_is_leader() is false when this returns 0;
 * the service (if any) is stopped, then the lease is released so a
 * successor need not wait for the TTL.  The election keeps campaigning, but
 * waits retry_interval_ms before its next claim so that another candidate
 * is preferred.  Does not wait.  Thread-safe.
 *
 * Returns 0 (the resignation is on its way), or:
 *   LEASEHOLD_EINVAL   e is NULL
 *   LEASEHOLD_ECLOSED  the election has ended (only an abandoned service,
 *                      see leasehold_token_election(), can still call it
 *                      then)
 *   LEASEHOLD_ENOMEM   out of memory: nothing done, a leader stays leader
 */
LEASEHOLD_API int leasehold_resign(leasehold_election *e);

/*
 * Campaigns (or observes) again after a permanent error halted e (see the
 * `error` callback): the next claim or read goes out at once.  Call it once
 * the cause is fixed (ACL granted, key deleted...); if it is not, the same
 * error is reported again and e halts again.  A no-op when e is not halted.
 * Does not wait.  Thread-safe, callbacks included.
 *
 * Returns 0 (also when e is not halted), or:
 *   LEASEHOLD_EINVAL   e is NULL
 *   LEASEHOLD_ECLOSED  the election has ended
 *   LEASEHOLD_ENOMEM   out of memory: e stays halted
 */
LEASEHOLD_API int leasehold_resume(leasehold_election *e);

/*
 * Ends the campaign as leader without releasing the key: the key keeps this
 * term's token, with its TTL set to hold_ms, so no other process can be
 * elected until the hold runs out (`leasehold run --hold-after-exit`: a job
 * that must run once per schedule keeps late starters out).  It is one
 * compare-and-PEXPIRE of this term's token on Redis; then no renewal and no
 * release follow, and the campaign has ended (free e as usual).
 *
 * Ordering.  leasehold_is_leader() is false from the moment of the call, for
 * good, and the campaign ends, whatever it returns, except for the failures
 * marked "nothing changed" below: stop everything the term started first,
 * since nothing may act on the term after the call.  On 0, the key is held for
 * hold_ms counted from when Redis ran the hold, which is after the call was
 * made, so no successor can be elected before (call time + hold_ms); hold_ms
 * may be shorter than what is left of the lease, which then ends sooner.  The
 * successor's fencing epoch is above this term's, as for any term.
 *
 * Only for elections made with leasehold_campaign().  Waits for the answer
 * as leasehold_holder_get() does.  Thread-safe.
 *
 * Returns 0 (the key is held), or:
 *   LEASEHOLD_EINVAL      e is NULL, hold_ms is 0, or e runs a service or
 *                         observes (leasehold_serve(), leasehold_observe()):
 *                         nothing changed
 *   LEASEHOLD_EDEADLK     called from a callback of e's client: nothing
 *                         changed
 *   LEASEHOLD_ENOTLEADER  not leader at the call: nothing changed (the
 *                         campaign goes on); or, later, the term ended
 *                         before the hold went out, or the key was no
 *                         longer this term's (gone or taken), so a
 *                         successor may lead already (err->msg says which)
 *   LEASEHOLD_ENOMEM      out of memory on the caller's thread: nothing
 *                         changed; or on the I/O thread: the key is held
 *                         if the hold went out, else it lapses with the
 *                         lease
 *   LEASEHOLD_ECLOSED     e or its client is being freed: the key is held
 *                         if the hold had gone out, else it lapses with the
 *                         lease
 *   LEASEHOLD_ETIMEDOUT   no answer within command_timeout_ms +
 *                         connect_timeout_ms, or the command timed out: the
 *                         key is held for hold_ms if the hold still arrives,
 *                         else it lapses with the lease
 *   LEASEHOLD_ECONNRESET  not connected, the hold could not be sent, or the
 *                         connection was closed or reset after it was sent:
 *                         the key is held if the hold arrived, else it
 *                         lapses with the lease
 *   LEASEHOLD_EIO         the connection failed after the hold was sent (a
 *                         socket error): as for LEASEHOLD_ECONNRESET
 *   LEASEHOLD_EPROTO      the same with a reply out of step with Redis; or
 *                         an answer the hold never gives
 *   LEASEHOLD_ENOPERM, LEASEHOLD_ENOSCRIPT, LEASEHOLD_EREADONLY,
 *   LEASEHOLD_EWRONGTYPE, LEASEHOLD_EAUTH (NOAUTH), LEASEHOLD_EREDIS (any
 *                         other: OOM, LOADING, BUSY...)  Redis answered the
 *                         hold with that error: the key lapses with the
 *                         lease
 */
LEASEHOLD_API int leasehold_resign_hold(leasehold_election *e, uint32_t hold_ms,
                                        leasehold_error *err);

/*
 * Ends the campaign: resigns as above, waits for the service and the release
 * (bounded by stop_timeout_ms and command_timeout_ms), and frees e.  From a
 * callback of e's client it cannot wait: it then only schedules the end and
 * e is freed by the I/O thread.  Thread-safe.
 */
LEASEHOLD_API void leasehold_election_free(leasehold_election *e);

/* ------------------------------------------------------------ statistics */

/* What an election is doing, for statistics and tools. */
typedef enum leasehold_state {
    LEASEHOLD_STATE_IDLE = 0,          /* not campaigning: not started yet, or ended */
    LEASEHOLD_STATE_FOLLOWER = 1,      /* waiting for its next claim */
    LEASEHOLD_STATE_CLAIMING = 2,      /* a claim is in flight */
    LEASEHOLD_STATE_LEADER = 3,        /* holds the lease and renews it */
    LEASEHOLD_STATE_STEPPING_DOWN = 4, /* the term has ended; its service is stopping */
    LEASEHOLD_STATE_RELEASING = 5,     /* the release of the ended term is in flight */
    LEASEHOLD_STATE_OBSERVING = 6,     /* an observer (leasehold_observe()) */
    LEASEHOLD_STATE_HALTED = 7,        /* a permanent error halted it (leasehold_resume()) */
} leasehold_state;

/* "idle", "follower", "claiming", "leader", "stepping_down", "releasing",
 * "observing", "halted"; never NULL.  Thread-safe. */
LEASEHOLD_API const char *leasehold_state_name(leasehold_state state);

/* The renewal round-trip histogram's buckets: bucket i counts the round
 * trips of at most LEASEHOLD_RTT_BOUNDS_US[i] microseconds and more than
 * bucket i-1's bound; the last bucket has no bound (UINT64_MAX). */
#define LEASEHOLD_RTT_BUCKETS 12
#define LEASEHOLD_RTT_BOUNDS_US                                                                    \
    {                                                                                              \
        250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 1000000, UINT64_MAX       \
    }

/*
 * One election's statistics.  Counters count from the campaign's start and
 * never go down; times are milliseconds on leasehold_now_ms()'s clock.
 */
typedef struct leasehold_election_stats {
    leasehold_state state;
    uint64_t state_ms;     /* how long it has been in that state */
    uint64_t epoch;        /* this term's fencing epoch while leader (leasehold_epoch()), else 0 */
    uint64_t epoch_seen;   /* the highest epoch seen for the key: the current or the last term's */
    int64_t lease_left_ms; /* while leader: the time left before valid_until (the safety rule,
                              moved on by each renewal); else 0 */
    uint64_t term_overdue_ms;     /* how long the I/O thread has still treated a term as held
                                     (state leader) past its deadline (leasehold_term_deadline_ms());
                                     0 when it has not.  More than a few ms: it is wedged, since a
                                     healthy one ends the term on time (leasehold_is_leader() is
                                     false past the deadline either way) */
    uint64_t terms_won;           /* terms this process was elected for */
    uint64_t terms_lost[8];       /* terms ended, by leasehold_reason ([LEASEHOLD_LOST] ...
                                     [LEASEHOLD_HALTED]; [0] is unused) */
    uint64_t leader_changes;      /* new holders seen (this process's own terms included) */
    uint64_t claims;              /* claims sent (SET NX PX, in the acquire script) */
    uint64_t renewals;            /* renewals sent */
    uint64_t renewals_failed;     /* renewals that did not count: refused (the key was gone or
                                     another's), an error reply, too few replicas (WAIT), or
                                     no answer (timed out, connection lost) */
    uint64_t last_renewal_rtt_us; /* the round trip of the last renewal that counted (from
                                     its send to its answer, WAIT included), 0 before one */
    uint64_t last_renewal_age_ms; /* how long ago that renewal was sent; UINT64_MAX before one */
    uint64_t renewal_rtt_count;   /* renewals that counted ... */
    uint64_t renewal_rtt_sum_us;  /* ... the sum of their round trips ... */
    uint64_t renewal_rtt_buckets[LEASEHOLD_RTT_BUCKETS]; /* ... and how many fell in each
                                                            bucket (not cumulative) */
} leasehold_election_stats;

/*
 * Fills *out with e's statistics.  Lock-free and cheap (a few dozen atomic
 * reads): call it as often as needed, from any thread, also while e's I/O
 * thread is stuck in a callback.  Counters are read one by one, so two of
 * them may be a moment apart.
 *
 * Returns 0, or LEASEHOLD_EINVAL when e or out is NULL.
 */
LEASEHOLD_API int leasehold_election_stats_get(const leasehold_election *e,
                                               leasehold_election_stats *out);

#define LEASEHOLD_STATS_NODES  16 /* nodes listed in leasehold_client_stats */
#define LEASEHOLD_STATS_ERRORS 16 /* distinct error codes counted there */

/* One Redis server a client talks to. */
typedef struct leasehold_node_stats {
    char address[128];     /* "host:port" (a Sentinel URL's: the current master's), or the
                              URL as shown in messages, password hidden */
    bool connected;        /* its command connection is ready */
    bool events_connected; /* its events connection is subscribed */
} leasehold_node_stats;

/* A client's statistics. */
typedef struct leasehold_client_stats {
    unsigned node_count; /* the Redis servers it knows: 1, or a Cluster's masters */
    leasehold_node_stats nodes[LEASEHOLD_STATS_NODES]; /* the first of them: min(node_count,
                                                          LEASEHOLD_STATS_NODES) */
    uint64_t connects;     /* connections made ready (both kinds, first ones included) */
    uint64_t disconnects;  /* connections lost, or failed while being made */
    uint64_t loop_busy_ms; /* how long the I/O thread has been busy with what woke it last;
                              0 while it waits.  A few ms at most when healthy: more means
                              a callback (or the log callback) blocks it, and nothing is
                              renewed meanwhile */
    unsigned error_kinds;  /* distinct error codes met (at most LEASEHOLD_STATS_ERRORS) */
    struct {
        int code;       /* a leasehold error code (or a negated errno) */
        uint64_t count; /* how often it was met: reported to an election's error callback
                           (repeats included) or ending a connection */
    } errors[LEASEHOLD_STATS_ERRORS];
} leasehold_client_stats;

/*
 * Fills *out with c's statistics.  Takes a lock the I/O thread holds only
 * to copy a few fields, never across a callback: cheap, callable from any
 * thread, also while the I/O thread is stuck.
 *
 * Returns 0, or LEASEHOLD_EINVAL when c or out is NULL.
 */
LEASEHOLD_API int leasehold_client_stats_get(leasehold_client *c, leasehold_client_stats *out);

/* ------------------------------------------------------------ observing */

/* What a key holds at one instant. */
typedef struct leasehold_holder {
    char token[256]; /* the holder's token (cut to 255 bytes); "" when nobody holds the key */
    uint64_t epoch;  /* the key's last fencing epoch ({K}:epoch), 0 if none was handed out */
    int64_t ttl_ms;  /* the lease's remaining time; -1 when the key has no TTL; 0 when free */
    char maxmemory_policy[32]; /* the Redis server's eviction policy ("noeviction" is the safe
                                  one), "" when Redis would not say */
    char master[272];          /* Sentinel URLs: the master that answered, "host:port" as the
                                  Sentinels named it; Cluster URLs: the master serving the
                                  key's slot, as the slot map names it; "" for other URLs */
    unsigned failovers;        /* Sentinel URLs: changes of master this client has followed;
                                  Cluster URLs: takeovers of slots by that master (failovers
                                  or migrations) */
} leasehold_holder;

/*
 * Asks Redis who holds `key`, in one atomic read of the key, its TTL and its
 * epoch.  Waits at most command_timeout_ms, or connect_timeout_ms more when
 * the connection is being re-established.  It reports what the key holds
 * and does not judge it: a key with no TTL is returned with 0 and ttl_ms
 * -1, and a value that is not a leasehold token as it is; the caller
 * decides (leasehold_is_token(), and a campaign would halt with
 * LEASEHOLD_ENOTLEASE on the first, LEASEHOLD_EFOREIGN on the second).
 * Thread-safe, also against a concurrent leasehold_client_free(): that
 * fails it with LEASEHOLD_ECLOSED and waits for it to return before freeing
 * the client.
 *
 * Returns 0 (*out filled), or:
 *   LEASEHOLD_EINVAL      c, key or out is NULL, or key is one that
 *                         leasehold_campaign() refuses
 *   LEASEHOLD_EDEADLK     called from a callback of c (it would wait for
 *                         itself)
 *   LEASEHOLD_ENOMEM      out of memory
 *   LEASEHOLD_ECLOSED     c is being freed (leasehold_client_free())
 *   LEASEHOLD_ETIMEDOUT   no answer in time (Redis unreachable), or the
 *                         command timed out
 *   LEASEHOLD_ECONNRESET  the query could not be sent, or Redis closed or
 *                         reset the connection before answering
 *   LEASEHOLD_EIO         the connection failed before the answer (a
 *                         socket error)
 *   LEASEHOLD_EPROTO      the same with a reply out of step with Redis; or
 *                         an answer the query never gives
 *   LEASEHOLD_EWRONGTYPE  the key or its epoch key is not a string
 *   LEASEHOLD_ENOPERM     the ACL user may not run the script or read the
 *                         keys
 *   LEASEHOLD_ENOSCRIPT   EVAL/EVALSHA are renamed, disabled or broken
 *   LEASEHOLD_EREDIS      another error reply (OOM, LOADING, BUSY...); one
 *                         whose first word is READONLY or NOAUTH gives
 *                         LEASEHOLD_EREADONLY or LEASEHOLD_EAUTH
 */
LEASEHOLD_API int leasehold_holder_get(leasehold_client *c, const char *key, leasehold_holder *out,
                                       leasehold_error *err);

/*
 * Asks the leader of `key` to step down, for the term named by epoch and
 * token (as leasehold_holder_get() reports them): publishes
 * "resign <epoch> <token>" on the key's events channel.  The process that
 * leads that very term reacts as to leasehold_resign(): its service is
 * stopped, the key released, and it waits retry_interval_ms before its next
 * claim, so another candidate takes over (`leasehold resign`, for
 * maintenance).  Every other process, and the leader of any other term,
 * ignores it, so a late request cannot end a later term.  Like every
 * message on the channel it is news, not proof: anyone allowed to PUBLISH
 * there can ask (the ACL rule for campaigning allows it; the observing one
 * does not).  Leaders older than this version, and the original module,
 * ignore it.  Waits for Redis's answer as leasehold_holder_get() does, not
 * for the step-down: watch the key for that.  Thread-safe.
 *
 * Returns how many clients received the request (0: nobody listened: the
 * term has ended, or its leader has no live events subscription), or:
 *   LEASEHOLD_EINVAL      c or key is NULL or refused as by
 *                         leasehold_campaign(), epoch is 0, or token is not
 *                         a leasehold token (leasehold_is_token())
 *   LEASEHOLD_EDEADLK, LEASEHOLD_ENOMEM, LEASEHOLD_ECLOSED,
 *   LEASEHOLD_ETIMEDOUT, LEASEHOLD_ECONNRESET, LEASEHOLD_EIO,
 *   LEASEHOLD_EPROTO      as for leasehold_holder_get()
 *   LEASEHOLD_ENOPERM     the ACL user may not publish on the channel
 *   LEASEHOLD_EREDIS      another error reply
 */
LEASEHOLD_API int leasehold_request_resign(leasehold_client *c, const char *key, uint64_t epoch,
                                           const char *token, leasehold_error *err);

/*
 * Watches `key` without campaigning: leader_changed and observed fire for
 * every change of holder, as it happens (from the key's events channel) and
 * also when the key is read (so a holder that vanished without a word is
 * noticed when its TTL runs out).  elected and revoked never fire, and
 * leasehold_is_leader() is always false.  Free it with
 * leasehold_election_free().  Thread-safe.
 *
 * Returns the election, or NULL with err->code as leasehold_campaign(),
 * except LEASEHOLD_EEXIST: a key may have any number of observers, beside
 * a campaign of the same client.
 */
LEASEHOLD_API leasehold_election *leasehold_observe(leasehold_client *c, const char *key,
                                                    const leasehold_callbacks *cb, void *arg,
                                                    leasehold_error *err);

/* ------------------------------------------------------------- services */

/*
 * Campaigns for `key` and, during each term, runs service(token, arg) in a
 * thread of its own.  When the term ends the token is cancelled at once and
 * the thread is waited for up to stop_timeout_ms (an overrun is reported
 * through the log and the error callback, and no new term starts until the
 * service has returned).  A service that returns while still leader makes
 * the election resign, so another process can lead, and campaign again after
 * retry_interval_ms.  Thread-safe.
 *
 * Returns the election (free it with leasehold_election_free()), or NULL
 * with err->code as leasehold_campaign(); also LEASEHOLD_EINVAL when
 * service is NULL.
 */
LEASEHOLD_API leasehold_election *leasehold_serve(leasehold_client *c, const char *key,
                                                  int (*service)(leasehold_token *t, void *arg),
                                                  void *arg, leasehold_error *err);

/* Like leasehold_serve(), with callbacks as well (cb copied, may be NULL);
 * the same errors. */
LEASEHOLD_API leasehold_election *leasehold_serve_cb(leasehold_client *c, const char *key,
                                                     int (*service)(leasehold_token *t, void *arg),
                                                     void *arg, const leasehold_callbacks *cb,
                                                     leasehold_error *err);

/* True once the term the service runs for has ended: cancelled by the I/O
 * thread, or valid_until passed (checked against the clock here, so a late
 * I/O thread cannot keep it false).  Never false again once true.
 * Thread-safe. */
LEASEHOLD_API bool leasehold_token_cancelled(const leasehold_token *t);

/* Sleeps up to ms; returns false as soon as the token is cancelled (at once
 * if it already is), true when the time ran out.  Thread-safe. */
LEASEHOLD_API bool leasehold_token_sleep(leasehold_token *t, uint32_t ms);

/* A descriptor for poll()-based services that becomes readable when
 * leasehold_token_cancelled() turns true: at valid_until by itself (a
 * CLOCK_BOOTTIME timerfd, re-armed by each renewal, so it fires on time even
 * while the I/O thread is stuck in a slow callback), or at once when the
 * term ends sooner.  It stays readable.  Owned by the token; do not read,
 * re-arm or close it. */
LEASEHOLD_API int leasehold_token_fd(const leasehold_token *t);

/* The fencing epoch of the service's term.  Thread-safe. */
LEASEHOLD_API uint64_t leasehold_token_epoch(const leasehold_token *t);

/*
 * The election the token belongs to.  Thread-safe.
 *
 * A service that ignores its cancellation past stop_timeout_ms while its
 * election or client is being freed is abandoned: it goes on running, and
 * its election is then kept (not freed) until the service returns.  Until
 * then it may still call, through this pointer or any it kept,
 * leasehold_is_leader() (false), leasehold_epoch() (0),
 * leasehold_term_deadline_ms(), leasehold_key(), leasehold_election_token()
 * and leasehold_resign() (LEASEHOLD_ECLOSED), as well as the token
 * functions.  It must not call leasehold_election_free() or use the client.
 */
LEASEHOLD_API leasehold_election *leasehold_token_election(const leasehold_token *t);

#ifdef __cplusplus
}
#endif

#endif /* LEASEHOLD_H */
