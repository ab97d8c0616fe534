/* redis_cluster.h — a Redis Cluster for integration tests: masters and
 * their replicas, each a redis-server of its own with --cluster-enabled on
 * a free loopback port (redis_server.h), joined by `redis-cli --cluster
 * create`, stopped by their pids on every exit path.
 *
 * Not thread-safe: the test's main thread only.
 */
#ifndef LEASEHOLD_REDIS_CLUSTER_H
#define LEASEHOLD_REDIS_CLUSTER_H

#include <stdbool.h>
#include <stdint.h>

#include "redis_server.h"
#include "tls_certs.h"

#define REDIS_CLUSTER_MAX 9

typedef struct redis_cluster_opts {
    int masters;         /* 3 when 0 */
    int replicas;        /* per master; 1 when 0, none when -1 */
    int node_timeout_ms; /* cluster-node-timeout: 1000 when 0 */
    /* TLS: every node also listens on a TLS port with these certificates,
     * the cluster bus and replication go over TLS, and url names the TLS
     * ports (rediss+cluster://, tls_ca_file).  The plain ports stay for the
     * test's own admin connections. */
    const tls_certs *tls;
    /* Network namespaces (the chaos suite's partitions, tests/chaos/netns.h):
     * node i runs in netns[i], bound to host[i] on port 6379.  NULL: every
     * node on 127.0.0.1 and a free port. */
    const char *const *netns;
    const char *const *host;
} redis_cluster_opts;

typedef struct redis_cluster {
    redis_server *node[REDIS_CLUSTER_MAX]; /* node[0..masters) are the first masters */
    int n;
    char url[900]; /* redis+cluster://H0:P0,H1:P1 (two seeds); with TLS
                      rediss+cluster://127.0.0.1:T0,127.0.0.1:T1?tls_ca_file=CA */
} redis_cluster;

/* Starts the nodes, creates the cluster (slots spread evenly over the
 * masters in order: node 0 gets the lowest), and waits until every node
 * says cluster_state:ok with the same slot map and every replica is in
 * sync.  NULL (printed why, everything stopped) if that fails.  Every node
 * runs with cluster-require-full-coverage no, as the README advises. */
redis_cluster *redis_cluster_start(const redis_cluster_opts *o);

/* Stops every node by its pid; NULL is ignored. */
void redis_cluster_stop(redis_cluster *t);

/* The running node that the running nodes name as the master of slot (by
 * CLUSTER SLOTS, asked of each that answers: they must agree), or NULL. */
redis_server *redis_cluster_owner(redis_cluster *t, unsigned slot);

/* A replica (running, in sync) of master m, or NULL. */
redis_server *redis_cluster_replica_of(redis_cluster *t, redis_server *m);

/* Waits up to max_ms until every running node says cluster_state:ok, the
 * running nodes agree on every slot's master, and each master has its
 * running replicas in sync. */
bool redis_cluster_wait_ok(redis_cluster *t, uint64_t max_ms);

/* Starts moving slot from its master `from` to master `to`: IMPORTING on
 * to, MIGRATING on from, then MIGRATEs every key of the slot.  Commands on
 * its keys now get ASK from `from`.  0, or -1 (printed). */
int redis_cluster_migrate_keys(redis_cluster *t, unsigned slot, redis_server *from,
                               redis_server *to);

/* Ends a migration: CLUSTER SETSLOT slot NODE <to> on to, from and every
 * other master; commands on its keys now get MOVED from `from`.  0, or -1. */
int redis_cluster_finish_migration(redis_cluster *t, unsigned slot, redis_server *from,
                                   redis_server *to);

/* A key named prefix + a number whose slot is served by master m (as
 * CLUSTER SLOTS says), written to out. */
void redis_cluster_key_on(redis_cluster *t, redis_server *m, const char *prefix, char *out,
                          size_t size);

#endif
