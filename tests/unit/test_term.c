/* test_term.c — term.h's promise: a reader that finds a term valid never
 * reads epoch 0, however the writer's term starts and ends interleave with
 * its reads.  One thread starts and ends terms as fast as it can; another
 * reads valid_until, the epoch through term_epoch() and valid_until again,
 * and counts the reads in which both valid_untils were the same live term
 * and the epoch still came back 0.  Storing the epoch 0 at a term's end (the
 * old order) makes this count climb within milliseconds. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include <cmocka.h>

#include "term.h"

#define NOW_MS        1u       /* the readers' "now": every published valid_until is later */
#define BASE_VALID_MS 1000000u /* term n is valid until BASE + n: no two terms share one */

typedef struct shared {
    _Atomic uint64_t epoch, valid_until_ms; /* adjacent, as in the election */
    atomic_bool stop;
    atomic_ullong terms;
} shared;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void *writer(void *arg)
{
    shared *s = arg;
    for (uint64_t n = 1; !atomic_load(&s->stop); n++) {
        term_publish(&s->epoch, &s->valid_until_ms, n, BASE_VALID_MS + n); /* elected */
        term_publish(&s->epoch, &s->valid_until_ms, 0, 0);                 /* revoked */
        atomic_store(&s->terms, n);
    }
    return NULL;
}

static void test_epoch_never_zero_while_valid(void **state)
{
    (void)state;
    shared s;
    atomic_init(&s.epoch, 0);
    atomic_init(&s.valid_until_ms, 0);
    atomic_init(&s.stop, false);
    atomic_init(&s.terms, 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, writer, &s), 0);
    /* A fixed amount of work, not a time: enough reads within live terms,
     * across enough term changes, on any machine, slow sanitizer builds
     * included.  On a machine whose cores are busy with other tests the two
     * threads may rarely run at once, so the run goes on until then, up to
     * a deadline that only ends a run whose writer never got a core. */
    uint64_t reads = 0, valid = 0, seen = 0, last = 0, zero = 0, wrong_term = 0;
    uint64_t deadline = now_ms() + 120000;
    for (; seen < 20000u && ((reads & 0xfffff) || now_ms() < deadline); reads++) {
        uint64_t before = atomic_load(&s.valid_until_ms);
        uint64_t epoch = term_epoch(&s.epoch, &s.valid_until_ms, NOW_MS);
        uint64_t after = atomic_load(&s.valid_until_ms);
        if (before == 0 || before != after)
            continue; /* not one live term throughout */
        valid++;
        seen += before != last; /* terms read live, so reads and writes interleave */
        last = before;
        if (epoch == 0)
            zero++;
        else if (epoch < before - BASE_VALID_MS)
            wrong_term++; /* an epoch older than the term that was valid */
    }
    atomic_store(&s.stop, true);
    pthread_join(t, NULL);
    unsigned long long terms = atomic_load(&s.terms);
    printf("# %llu reads, %llu within one live term, %llu of %llu terms seen live; epoch 0: "
           "%llu, older epoch: %llu\n",
           (unsigned long long)reads, (unsigned long long)valid, (unsigned long long)seen, terms,
           (unsigned long long)zero, (unsigned long long)wrong_term);
    assert_true(seen > 1000); /* the two threads did interleave */
    assert_int_equal(zero, 0);
    assert_int_equal(wrong_term, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_epoch_never_zero_while_valid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
