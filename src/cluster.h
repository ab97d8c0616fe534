/* cluster.h — Redis Cluster's slots, as a client needs them: which slot a
 * key hashes to, the slot map from CLUSTER SHARDS or CLUSTER SLOTS, and the
 * MOVED and ASK redirections.  Pure: no I/O, no state. */
#ifndef LEASEHOLD_CLUSTER_H
#define LEASEHOLD_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct conn_reply; /* conn.h */

#define CLUSTER_SLOTS 16384

/* What Redis Cluster hashes of key to find its slot (keyHashSlot in Redis's
 * cluster.c): the bytes between the first '{' and the first '}' after it
 * when there are any; otherwise the whole key.  True when that is a tag. */
bool cluster_hashed_part(const char *key, const char **part, size_t *len);

/* The slot of key: CRC16 (XMODEM) of its hashed part, modulo 16384. */
unsigned cluster_key_slot(const char *key);

/* A run of slots and the master that serves them. */
typedef struct cluster_range {
    unsigned first, last; /* inclusive */
    char host[256];
    uint16_t port;
} cluster_range;

/* A slot map: the ranges as a node told them (not sorted, may leave slots
 * unserved).  Free with cluster_map_free. */
typedef struct cluster_map {
    cluster_range *ranges;
    size_t count;
} cluster_map;

/* Reads CLUSTER SHARDS's reply (Redis 7) into map: for each shard its slot
 * ranges and its master's address (the online one, when a master that
 * failed over is listed too); tls picks a node's "tls-port" over its
 * "port".  An empty or "?" address is asked_host's (the node that
 * answered).  0, or -1 with the reason in why when the reply is not a shard
 * list; a shard with no master or no slots is skipped. */
int cluster_parse_shards(const struct conn_reply *r, bool tls, const char *asked_host,
                         cluster_map *map, char *why, size_t why_size);

/* The same for CLUSTER SLOTS's reply (any Redis with Cluster). */
int cluster_parse_slots(const struct conn_reply *r, const char *asked_host, cluster_map *map,
                        char *why, size_t why_size);

void cluster_map_free(cluster_map *map);

/* A redirection: "MOVED <slot> <host>:<port>" or "ASK <slot> <host>:<port>"
 * (the error's text, without '-').  True and the parts filled when err is
 * one; an IPv6 host is given without brackets, an empty one (Redis's
 * "unknown endpoint": ":port") as asked_host. */
bool cluster_parse_redirect(const char *err, const char *asked_host, bool *ask, unsigned *slot,
                            char host[256], uint16_t *port);

#endif
