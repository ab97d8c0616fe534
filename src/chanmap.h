/* chanmap.h — from an events channel to the elections listening on it.
 *
 * A hash table of links embedded in the elections, so that adding one
 * never fails: the table grows when it can, and a table that could not
 * grow only makes its chains longer.  A published message then reaches its
 * elections without a look at the others, however many there are.  Not
 * thread-safe: I/O thread only.
 */
#ifndef LEASEHOLD_CHANMAP_H
#define LEASEHOLD_CHANMAP_H

#include <stddef.h>

typedef struct chan_link {
    const char *channel; /* set before chanmap_add, unchanged while in the map */
    struct chan_link *next;
} chan_link;

typedef struct chanmap {
    chan_link **buckets;
    size_t nbuckets; /* a power of two */
    size_t count;
} chanmap;

/* An empty map: 0, or -1 when out of memory. */
int chanmap_init(chanmap *m);

/* Frees the table (not the links). */
void chanmap_free(chanmap *m);

/* Adds l under l->channel. */
void chanmap_add(chanmap *m, chan_link *l);

/* Takes l out; nothing happens if it is not in the map. */
void chanmap_del(chanmap *m, chan_link *l);

/* The first link on channel, NULL when none; chanmap_next gives the
 * following one on the same channel. */
chan_link *chanmap_first(const chanmap *m, const char *channel);
chan_link *chanmap_next(const chan_link *l);

#endif
