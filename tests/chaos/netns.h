/* netns.h — a private network for the chaos suite's partitions: one network
 * namespace per node (a Redis, a Sentinel, a candidate), each with one
 * address on a bridge of the driver's own, so that any set of nodes can be
 * cut off from any other, in both directions, while everything else goes
 * on.  A cut is a blackhole route on each side: established connections
 * hang (their packets are dropped, as in a real partition) and new ones
 * fail at once; the heal removes the routes and TCP resumes.
 *
 * Needs root (CAP_NET_ADMIN) and the `ip` command.  The names carry the
 * driver's pid ("lhc<pid>..."): chaos_net_create first removes what a
 * driver that no longer runs left behind, and an atexit hook removes this
 * one's.  Traffic never leaves the machine: the bridge has no uplink.
 */
#ifndef LEASEHOLD_CHAOS_NETNS_H
#define LEASEHOLD_CHAOS_NETNS_H

#include <stdbool.h>

#define CHAOS_NET_MAX 16

typedef struct chaos_net {
    int n;                                  /* nodes */
    char bridge[16];                        /* "lhc<pid>b" */
    char gateway[20];                       /* the bridge's address, in the driver's namespace */
    char ns[CHAOS_NET_MAX][32];             /* node i's namespace */
    char ip[CHAOS_NET_MAX][20];             /* node i's address */
    bool cut[CHAOS_NET_MAX][CHAOS_NET_MAX]; /* a blackhole between i and j */
} chaos_net;

/* Makes n nodes (at most CHAOS_NET_MAX) on a fresh bridge in a /24 no route
 * of this machine uses yet.  false (printed why, what was made removed)
 * when it cannot. */
bool chaos_net_create(chaos_net *net, int n);

/* Cuts (or heals) the link between nodes a and b, both ways.  false
 * (printed) when `ip` failed. */
bool chaos_net_set_cut(chaos_net *net, int a, int b, bool cut);

/* Heals every cut. */
void chaos_net_heal_all(chaos_net *net);

/* Removes the namespaces and the bridge (the processes in them must have
 * been stopped).  Safe to call twice. */
void chaos_net_destroy(chaos_net *net);

#endif
