/* timer_heap.c — a pairing heap of election timers (see timer_heap.h). */
#include "timer_heap.h"

/* Joins two heaps (roots with no siblings): the later root becomes the
 * first child of the earlier one.  Returns the joined root. */
static timer_node *meld(timer_node *a, timer_node *b)
{
    if (!a)
        return b;
    if (!b)
        return a;
    if (b->at < a->at) {
        timer_node *t = a;
        a = b;
        b = t;
    }
    b->prev = a;
    b->next = a->child;
    if (a->child)
        a->child->prev = b;
    a->child = b;
    return a;
}

/* Joins a list of siblings into one heap: melded in pairs from the left,
 * then the pairs from the right (the two passes that give the pairing heap
 * its amortised bound).  Returns its root, with no siblings. */
static timer_node *merge_siblings(timer_node *first)
{
    timer_node *pairs = NULL; /* the melded pairs, the last one first (through next) */
    while (first) {
        timer_node *a = first, *b = first->next;
        first = b ? b->next : NULL;
        a->next = a->prev = NULL;
        if (b)
            b->next = b->prev = NULL;
        timer_node *m = meld(a, b);
        m->next = pairs;
        pairs = m;
    }
    timer_node *root = NULL;
    while (pairs) {
        timer_node *next = pairs->next;
        pairs->next = NULL;
        root = meld(root, pairs);
        pairs = next;
    }
    return root;
}

void timer_heap_remove(timer_heap *s, timer_node *n)
{
    if (!n->queued)
        return;
    n->queued = false;
    s->count--;
    if (n == s->root) {
        s->root = merge_siblings(n->child);
    } else {
        /* Cut n (with its children) out of its parent's list of children. */
        if (n->prev->child == n)
            n->prev->child = n->next;
        else
            n->prev->next = n->next;
        if (n->next)
            n->next->prev = n->prev;
        s->root = meld(s->root, merge_siblings(n->child));
    }
    n->child = n->next = n->prev = NULL;
}

void timer_heap_set(timer_heap *s, timer_node *n, uint64_t at)
{
    if (n->queued && n->at == at)
        return;
    timer_heap_remove(s, n);
    if (at == UINT64_MAX)
        return;
    n->at = at;
    n->child = n->next = n->prev = NULL;
    n->queued = true;
    s->count++;
    s->root = meld(s->root, n);
}

uint64_t timer_heap_next_at(const timer_heap *s)
{
    return s->root ? s->root->at : UINT64_MAX;
}

timer_node *timer_heap_pop_due(timer_heap *s, uint64_t now_ms)
{
    timer_node *n = s->root;
    if (!n || n->at > now_ms)
        return NULL;
    timer_heap_remove(s, n);
    return n;
}
