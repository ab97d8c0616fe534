/* test_timer_heap.c — timer_heap.h's heap against a plain array: after every one of
 * many random inserts, moves, removals and pops, the earliest instant is
 * the array's, a pop takes a node that was due and the earliest, and the
 * count agrees. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "timer_heap.h"

#define NODES 512

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint64_t next_random(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* The earliest instant among the queued nodes, by a plain scan. */
static uint64_t earliest(const timer_node *nodes)
{
    uint64_t at = UINT64_MAX;
    for (int i = 0; i < NODES; i++)
        if (nodes[i].queued && nodes[i].at < at)
            at = nodes[i].at;
    return at;
}

static size_t queued(const timer_node *nodes)
{
    size_t n = 0;
    for (int i = 0; i < NODES; i++)
        n += nodes[i].queued;
    return n;
}

static void test_random_operations(void **state)
{
    (void)state;
    static timer_node nodes[NODES];
    timer_heap s = {0};
    uint64_t now = 0;
    size_t pops = 0;
    for (int step = 0; step < 200000; step++) {
        timer_node *n = &nodes[next_random() % NODES];
        switch (next_random() % 6) {
        case 0:
        case 1: /* set or move, sometimes to a time already past, often to ties */
            timer_heap_set(&s, n, now + next_random() % 64);
            break;
        case 2:
            timer_heap_remove(&s, n);
            break;
        case 3:
            timer_heap_set(&s, n, UINT64_MAX);
            assert_false(n->queued);
            break;
        case 4: { /* pop everything due */
            now += next_random() % 8;
            timer_node *d;
            while ((d = timer_heap_pop_due(&s, now))) {
                assert_false(d->queued);
                assert_true(d->at <= now);
                assert_true(d->at <= earliest(nodes)); /* nothing earlier was left */
                pops++;
            }
            assert_true(earliest(nodes) > now);
            break;
        }
        default:
            break;
        }
        assert_int_equal(timer_heap_next_at(&s), earliest(nodes));
        assert_int_equal(s.count, queued(nodes));
    }
    printf("# 200000 operations, %zu pops, %zu left queued\n", pops, s.count);
    assert_true(pops > 1000);
}

static void test_empty(void **state)
{
    (void)state;
    timer_heap s = {0};
    timer_node n = {0};
    assert_int_equal(timer_heap_next_at(&s), UINT64_MAX);
    assert_null(timer_heap_pop_due(&s, UINT64_MAX - 1));
    timer_heap_remove(&s, &n); /* not queued: nothing happens */
    timer_heap_set(&s, &n, 5);
    assert_null(timer_heap_pop_due(&s, 4));
    assert_ptr_equal(timer_heap_pop_due(&s, 5), &n);
    assert_int_equal(s.count, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_random_operations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
