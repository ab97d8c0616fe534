/* test_chanmap.c — chanmap.h against a plain scan: channels shared by
 * several links, links added and taken out in a random order across the
 * table's growth; every lookup finds exactly the links on that channel. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "chanmap.h"

#define LINKS    3000
#define CHANNELS 1000

static char names[CHANNELS][32];
static chan_link links[LINKS];
static int in_map[LINKS];

static uint64_t rng = 0x2545f4914f6cdd1dull;

static uint64_t next_random(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* The links the map gives for channel c agree with in_map. */
static void check_channel(const chanmap *m, int c)
{
    int want = 0, got = 0;
    for (int i = 0; i < LINKS; i++)
        want += in_map[i] && links[i].channel == names[c];
    for (chan_link *l = chanmap_first(m, names[c]); l; l = chanmap_next(l)) {
        assert_string_equal(l->channel, names[c]);
        assert_true(in_map[l - links]);
        got++;
    }
    assert_int_equal(got, want);
}

static void test_random_operations(void **state)
{
    (void)state;
    chanmap m;
    assert_int_equal(chanmap_init(&m), 0);
    for (int c = 0; c < CHANNELS; c++)
        snprintf(names[c], sizeof names[c], "{lh:key:%d}:events", c);
    for (int i = 0; i < LINKS; i++)
        links[i].channel = names[next_random() % CHANNELS];
    size_t count = 0;
    for (int step = 0; step < 60000; step++) {
        int i = (int)(next_random() % LINKS);
        if (in_map[i]) {
            chanmap_del(&m, &links[i]);
            in_map[i] = 0;
            count--;
        } else if (next_random() % 3) {
            chanmap_add(&m, &links[i]);
            in_map[i] = 1;
            count++;
        } else {
            chanmap_del(&m, &links[i]); /* not in the map: nothing happens */
        }
        assert_int_equal(m.count, count);
        check_channel(&m, (int)(links[i].channel - names[0]) / (int)sizeof names[0]);
    }
    for (int c = 0; c < CHANNELS; c++)
        check_channel(&m, c);
    assert_null(chanmap_first(&m, "{lh:nobody}:events"));
    printf("# %zu links in %zu buckets\n", m.count, m.nbuckets);
    assert_true(m.nbuckets > 64); /* it grew */
    chanmap_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_operations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
