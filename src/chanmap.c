/* chanmap.c — a chained hash table of events channels (see chanmap.h). */
#include "chanmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define INITIAL_BUCKETS 64

/* FNV-1a: short strings, no adversary to fear (the channels are our
 * keys'). */
static size_t hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return (size_t)h;
}

int chanmap_init(chanmap *m)
{
    m->buckets = calloc(INITIAL_BUCKETS, sizeof *m->buckets);
    m->nbuckets = m->buckets ? INITIAL_BUCKETS : 0;
    m->count = 0;
    return m->buckets ? 0 : -1;
}

void chanmap_free(chanmap *m)
{
    free(m->buckets);
    m->buckets = NULL;
    m->nbuckets = m->count = 0;
}

/* Doubles the table when it holds more than two links per bucket; on a
 * failed allocation it stays as it is. */
static void maybe_grow(chanmap *m)
{
    if (m->count <= 2 * m->nbuckets)
        return;
    size_t n = 2 * m->nbuckets;
    chan_link **b = calloc(n, sizeof *b);
    if (!b)
        return;
    for (size_t i = 0; i < m->nbuckets; i++) {
        chan_link *l = m->buckets[i];
        while (l) {
            chan_link *next = l->next;
            size_t at = hash(l->channel) & (n - 1);
            l->next = b[at];
            b[at] = l;
            l = next;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = n;
}

void chanmap_add(chanmap *m, chan_link *l)
{
    size_t at = hash(l->channel) & (m->nbuckets - 1);
    l->next = m->buckets[at];
    m->buckets[at] = l;
    m->count++;
    maybe_grow(m);
}

void chanmap_del(chanmap *m, chan_link *l)
{
    chan_link **p = &m->buckets[hash(l->channel) & (m->nbuckets - 1)];
    while (*p && *p != l)
        p = &(*p)->next;
    if (!*p)
        return;
    *p = l->next;
    l->next = NULL;
    m->count--;
}

/* The first link from l on (l included) whose channel is channel. */
static chan_link *find_from(chan_link *l, const char *channel)
{
    while (l && strcmp(l->channel, channel) != 0)
        l = l->next;
    return l;
}

chan_link *chanmap_first(const chanmap *m, const char *channel)
{
    return find_from(m->buckets[hash(channel) & (m->nbuckets - 1)], channel);
}

chan_link *chanmap_next(const chan_link *l)
{
    return find_from(l->next, l->channel);
}
