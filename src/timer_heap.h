/* timer_heap.h — the I/O thread's timers: which election is due next.
 *
 * A pairing heap of nodes embedded in the elections themselves, so that
 * scheduling never allocates and never fails: inserting, moving and taking
 * out a node cost O(log n) amortised, finding the earliest O(1).  The loop
 * then wakes for the earliest election and handles only the due ones,
 * whatever the number of elections.  Not thread-safe: I/O thread only.
 */
#ifndef LEASEHOLD_TIMER_HEAP_H
#define LEASEHOLD_TIMER_HEAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct timer_node {
    uint64_t at;              /* when it is due; meaningful while queued */
    struct timer_node *child; /* the first of its children */
    struct timer_node *next;  /* its next sibling */
    struct timer_node *prev;  /* its previous sibling, or its parent when it is the first child */
    bool queued;
} timer_node;

typedef struct timer_heap {
    timer_node *root; /* the earliest node, NULL when empty */
    size_t count;
} timer_heap;

/* Queues n for `at`, or moves it there if it is queued already;
 * at == UINT64_MAX takes it out instead. */
void timer_heap_set(timer_heap *s, timer_node *n, uint64_t at);

/* Takes n out if it is queued. */
void timer_heap_remove(timer_heap *s, timer_node *n);

/* The earliest instant queued, UINT64_MAX when none. */
uint64_t timer_heap_next_at(const timer_heap *s);

/* Takes out and returns the earliest node if it is due at now_ms (at <=
 * now_ms), else NULL. */
timer_node *timer_heap_pop_due(timer_heap *s, uint64_t now_ms);

#endif
