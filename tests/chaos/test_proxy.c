/*
 * test_proxy — chaos_proxy's keep mode: with `keep on`, a candidate's
 * connection survives a Redis restart (the proxy reconnects behind it and
 * the same connection is answered by the new server); with `keep off` (the
 * default), the candidate's connection ends with Redis's.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "redis_server.h"
#include "testutil.h"

/* A running chaos_proxy and the pipes that command it. */
typedef struct proxy_proc {
    pid_t pid;
    int cmd_fd, answer_fd;
    int port;
} proxy_proc;

/* Reads one line of the proxy's answers (no newline), waiting up to max_ms. */
static void read_answer(proxy_proc *p, char *line, size_t size, uint64_t max_ms)
{
    uint64_t deadline = test_now_ms() + test_ms(max_ms);
    size_t len = 0;
    while (len + 1 < size) {
        uint64_t now = test_now_ms();
        assert_true(now < deadline);
        struct pollfd pfd = {.fd = p->answer_fd, .events = POLLIN};
        if (poll(&pfd, 1, (int)(deadline - now)) <= 0)
            continue;
        char ch;
        assert_int_equal(read(p->answer_fd, &ch, 1), 1);
        if (ch == '\n')
            break;
        line[len++] = ch;
    }
    line[len] = '\0';
}

static void proxy_start(proxy_proc *p, int target_port)
{
    int to[2], from[2];
    assert_int_equal(pipe2(to, O_CLOEXEC), 0);
    assert_int_equal(pipe2(from, O_CLOEXEC), 0);
    char target[16];
    snprintf(target, sizeof target, "%d", target_port);
    char *argv[] = {CHAOS_PROXY_PATH, target, NULL};
    p->pid = test_process_spawn_stdio(argv, to[0], from[1], -1);
    close(to[0]);
    close(from[1]);
    assert_true(p->pid > 0);
    p->cmd_fd = to[1];
    p->answer_fd = from[0];
    char line[64];
    read_answer(p, line, sizeof line, 5000);
    assert_int_equal(sscanf(line, "port %d", &p->port), 1);
}

static void proxy_command(proxy_proc *p, const char *cmd)
{
    assert_true(dprintf(p->cmd_fd, "%s\n", cmd) > 0);
    char line[128];
    read_answer(p, line, sizeof line, 2000);
    assert_string_equal(line, "ok");
}

static void proxy_stop(proxy_proc *p)
{
    close(p->cmd_fd);
    close(p->answer_fd);
    if (!test_process_wait(p->pid, test_ms(2000), NULL))
        test_process_kill(p->pid);
}

/* A client connection through the proxy, with a command timeout. */
static redisContext *connect_through(const proxy_proc *p)
{
    struct timeval tv = {2, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", p->port, tv);
    assert_non_null(c);
    assert_int_equal(c->err, 0);
    redisSetTimeout(c, tv);
    return c;
}

/* SET through the connection; true when answered OK. */
static bool set_ok(redisContext *c, const char *val)
{
    redisReply *r = redisCommand(c, "SET k %s", val);
    bool ok = r && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "OK") == 0;
    if (r)
        freeReplyObject(r);
    return ok;
}

static void test_keep_on_survives_restart(void **state)
{
    (void)state;
    redis_server *redis = redis_server_start(NULL);
    assert_non_null(redis);
    proxy_proc p;
    proxy_start(&p, redis->port);
    proxy_command(&p, "keep on");
    redisContext *c = connect_through(&p);
    assert_true(set_ok(c, "before"));
    assert_int_equal(redis_server_restart(redis, false), 0);
    /* the same connection, now answered by the new (empty) server */
    redisReply *r = redisCommand(c, "GET k");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_NIL);
    freeReplyObject(r);
    assert_true(set_ok(c, "after"));
    r = redis_server_cmd(redis, "GET k");
    assert_non_null(r);
    assert_string_equal(r->str, "after");
    freeReplyObject(r);
    redisFree(c);
    proxy_stop(&p);
    redis_server_stop(redis);
}

static void test_keep_off_ends_with_redis(void **state)
{
    (void)state;
    redis_server *redis = redis_server_start(NULL);
    assert_non_null(redis);
    proxy_proc p;
    proxy_start(&p, redis->port);
    proxy_command(&p, "keep on");
    proxy_command(&p, "keep off");
    redisContext *c = connect_through(&p);
    assert_true(set_ok(c, "before"));
    assert_int_equal(redis_server_restart(redis, false), 0);
    redisReply *r = redisCommand(c, "GET k");
    assert_null(r);
    assert_int_equal(c->err, REDIS_ERR_EOF);
    redisFree(c);
    proxy_stop(&p);
    redis_server_stop(redis);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keep_on_survives_restart),
        cmocka_unit_test(test_keep_off_ends_with_redis),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
