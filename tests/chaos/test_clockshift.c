/*
 * test_clockshift — the clock shim the chaos driver preloads into
 * redis-server really steps Redis's wall clock, and only that process's:
 * TIME moves by the step, a key's expiry comes early after a forward step
 * (SET PX 5000, step +10 s: gone at once), a backward step lengthens it,
 * and a server started without the offset file runs on the true clock.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

#include "clockshift.h"
#include "redis_server.h"
#include "testutil.h"

#define STEP_US 10000000ll /* 10 s */

/* A Redis with the shim and its offset file. */
typedef struct shifted {
    redis_server *redis;
    int64_t *shift;
    char path[128];
    char env_file[200];
    char env_preload[4200];
} shifted;

static void shifted_start(shifted *s)
{
    snprintf(s->path, sizeof s->path, "/tmp/test_clockshift.%d", (int)getpid());
    s->shift = clockshift_create(s->path);
    assert_non_null(s->shift);
    snprintf(s->env_file, sizeof s->env_file, "%s=%s", CLOCKSHIFT_ENV, s->path);
    snprintf(s->env_preload, sizeof s->env_preload, "LD_PRELOAD=%s", CLOCKSHIFT_PATH);
    const char *env[] = {s->env_file, s->env_preload, NULL};
    redis_server_opts o = {.env = env};
    s->redis = redis_server_start(&o);
    assert_non_null(s->redis);
}

static void shifted_stop(shifted *s)
{
    redis_server_stop(s->redis);
    clockshift_close(s->shift);
    unlink(s->path);
}

/* Redis's TIME in microseconds. */
static int64_t redis_time_us(redis_server *r)
{
    redisReply *rep = redis_server_cmd(r, "TIME");
    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_ARRAY);
    assert_int_equal(rep->elements, 2);
    int64_t us = strtoll(rep->element[0]->str, NULL, 10) * 1000000ll +
                 strtoll(rep->element[1]->str, NULL, 10);
    freeReplyObject(rep);
    return us;
}

/* Our own wall clock in microseconds (not shifted: the shim is Redis's). */
static int64_t wall_us(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000000ll + tv.tv_usec;
}

/* Redis's TIME minus our wall clock, in microseconds. */
static int64_t redis_offset_us(redis_server *r)
{
    return redis_time_us(r) - wall_us();
}

static long long pttl(redis_server *r, const char *key)
{
    redisReply *rep = redis_server_cmd(r, "PTTL %s", key);
    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_INTEGER);
    long long v = rep->integer;
    freeReplyObject(rep);
    return v;
}

static void set_px(redis_server *r, const char *key, int ms)
{
    redisReply *rep = redis_server_cmd(r, "SET %s v PX %d", key, ms);
    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_STATUS);
    freeReplyObject(rep);
}

/* A forward step moves TIME and expires a key whose TTL it overtakes. */
static void test_forward_step_expires_key(void **state)
{
    (void)state;
    shifted s;
    shifted_start(&s);
    /* a 2 s allowance for a busy machine between the two readings */
    assert_true(llabs(redis_offset_us(s.redis)) < 2000000);
    set_px(s.redis, "k", 5000);
    assert_true(pttl(s.redis, "k") > 0);
    clockshift_set(s.shift, STEP_US);
    int64_t off = redis_offset_us(s.redis);
    assert_true(off > STEP_US - 2000000 && off < STEP_US + 2000000);
    assert_int_equal(pttl(s.redis, "k"), -2); /* gone: it had at most 5 s left */
    shifted_stop(&s);
}

/* A backward step moves TIME back and lengthens a key's remaining TTL. */
static void test_backward_step_lengthens_ttl(void **state)
{
    (void)state;
    shifted s;
    shifted_start(&s);
    set_px(s.redis, "k", 5000);
    clockshift_set(s.shift, -STEP_US);
    int64_t off = redis_offset_us(s.redis);
    assert_true(off < -STEP_US + 2000000 && off > -STEP_US - 2000000);
    long long left = pttl(s.redis, "k");
    assert_true(left > 10000 && left <= 15000);
    shifted_stop(&s);
}

/* A plain server (no shim) keeps the true clock while the file is stepped:
 * the shift is only where it was preloaded. */
static void test_plain_server_not_shifted(void **state)
{
    (void)state;
    shifted s;
    shifted_start(&s);
    redis_server *plain = redis_server_start(NULL);
    assert_non_null(plain);
    clockshift_set(s.shift, STEP_US);
    assert_true(llabs(redis_offset_us(plain)) < 2000000);
    assert_true(redis_offset_us(s.redis) > STEP_US - 2000000);
    redis_server_stop(plain);
    shifted_stop(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forward_step_expires_key),
        cmocka_unit_test(test_backward_step_lengthens_ttl),
        cmocka_unit_test(test_plain_server_not_shifted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
