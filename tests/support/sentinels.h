/* sentinels.h — a Redis Sentinel topology for integration tests: one
 * master, its replicas and the Sentinels that watch them, every one a
 * redis-server of its own on a free loopback port (redis_server.h), stopped
 * by its pid on every exit path.
 *
 * Not thread-safe: the test's main thread only.
 */
#ifndef LEASEHOLD_SENTINELS_H
#define LEASEHOLD_SENTINELS_H

#include <stdbool.h>
#include <stdint.h>

#include "redis_server.h"
#include "tls_certs.h"

#define SENTINELS_DATA_MAX 4
#define SENTINELS_MAX      5

typedef struct sentinels_opts {
    int replicas;                  /* 2 when 0 */
    int sentinels;                 /* 3 when 0; the quorum is a majority of them */
    int down_after_ms;             /* down-after-milliseconds: 1000 when 0 */
    int failover_timeout_ms;       /* failover-timeout: 3000 when 0 */
    const char *password;          /* requirepass and masterauth of the data nodes; NULL: none */
    const char *sentinel_password; /* the Sentinels' requirepass; NULL: none */
    /* Each process in a network namespace of its own (the chaos suite's
     * partitions): data node i in data_netns[i], bound to data_host[i] on
     * port 6379, Sentinel i in sen_netns[i] at sen_host[i] on 26379 (see
     * redis_server_opts).  NULL: all on loopback, on free ports. */
    const char *const *data_netns, *const *data_host;
    const char *const *sen_netns, *const *sen_host;
    /* TLS: every data node and Sentinel also has a TLS port with these
     * certificates, replication and monitoring go over TLS, and url lists
     * the Sentinels' TLS ports (rediss+sentinel://...?tls_ca_file=); the
     * plain ports stay for the test's own admin connections. */
    const tls_certs *tls;
} sentinels_opts;

typedef struct sentinels {
    redis_server *data[SENTINELS_DATA_MAX]; /* data[0] is the first master */
    int n_data;
    redis_server *sen[SENTINELS_MAX];
    int n_sen;
    char name[32]; /* the master name: "mymaster" */
    char url[900]; /* redis+sentinel://[:password@]127.0.0.1:P1,...,/mymaster */
    bool tls;      /* ports below are the TLS ports (opts.tls) */
    char *sentinel_password;
} sentinels;

/* Starts the data nodes, waits until every replica is in sync, starts the
 * Sentinels and waits until each knows every replica and every other
 * Sentinel.  NULL (printed why, everything stopped) if that fails. */
sentinels *sentinels_start(const sentinels_opts *o);

/* Stops every process by its pid; NULL is ignored. */
void sentinels_stop(sentinels *t);

/* A command on Sentinel i (hiredis printf-style), as redis_server_cmd. */
redisReply *sentinels_cmd(sentinels *t, int i, const char *fmt, ...);

/* The data node a majority of the running Sentinels name as master, or
 * NULL when they do not agree (yet). */
redis_server *sentinels_master(sentinels *t);

/* SENTINEL FAILOVER, retried for up to 10 s while the Sentinels are not
 * ready for one (INPROG, NOGOODSLAVE).  0, or -1 (printed). */
int sentinels_failover(sentinels *t);

/* Waits up to max_ms until a majority of the Sentinels name a master other
 * than old (NULL: any) and that node's ROLE says master; returns it, or
 * NULL. */
redis_server *sentinels_wait_new_master(sentinels *t, const redis_server *old, uint64_t max_ms);

/* Waits up to max_ms until every running data node other than the master
 * replicates from it with its link up, every running Sentinel names it as
 * master, and they know every replica and each other. */
bool sentinels_wait_synced(sentinels *t, uint64_t max_ms);

/* Makes every running data node that still says it is a master, other than
 * the one the Sentinels name, a replica of that one (REPLICAOF): what the
 * Sentinels do themselves, but only once their next INFO (every 10 s) has
 * seen it.  For tests that do not study that window; returns how many it
 * demoted. */
int sentinels_demote_stale(sentinels *t);

#endif
