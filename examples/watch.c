/* examples/watch.c — who leads a key, and every change as it happens.
 *
 *     build/examples/watch redis://127.0.0.1:6379 myapp:leader
 *     build/examples/watch redis+sentinel://10.0.0.1,10.0.0.2,10.0.0.3/mymaster myapp:leader
 *
 * leasehold_holder_get() reads the key once; leasehold_observe() then reports
 * each change without campaigning (`leasehold watch` does the same, with
 * more options). */
#include <leasehold.h>
#include <stdio.h>

static void observed(leasehold_election *e, const leasehold_observation *o, void *arg)
{
    (void)e, (void)arg;
    printf("%s: %s, epoch %llu\n", leasehold_change_name(o->change), o->token,
           (unsigned long long)o->epoch);
    fflush(stdout);
}

/* Errors after start: a permanent one (an ACL, a key that is no lease...)
 * halts the observation until leasehold_resume(); the rest are retried. */
static void error(leasehold_election *e, const leasehold_error *err, void *arg)
{
    (void)e, (void)arg;
    fprintf(stderr, "watch: %s%s\n", err->msg,
            leasehold_error_is_permanent(err->code) ? " (no longer watching: fix it, restart)"
                                                    : "");
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s REDIS_URL KEY\n", argv[0]);
        return 64;
    }
    leasehold_config cfg;
    leasehold_error err;
    leasehold_holder h;
    leasehold_config_init(&cfg);
    cfg.url = argv[1];
    leasehold_client *c = leasehold_client_new(&cfg, &err);
    if (!c || leasehold_holder_get(c, argv[2], &h, &err) < 0) {
        fprintf(stderr, "watch: %s\n", err.msg);
        leasehold_client_free(c);
        return 69;
    }
    if (h.token[0] && (h.ttl_ms < 0 || !leasehold_is_token(h.token)))
        printf("now: %s, not a leasehold lease (%s)\n", h.token,
               h.ttl_ms < 0 ? "no TTL" : "another program's value");
    else if (h.token[0])
        printf("now: %s, epoch %llu, %lld ms left\n", h.token, (unsigned long long)h.epoch,
               (long long)h.ttl_ms);
    else
        printf("now: no leader\n");
    if (h.master[0]) /* a Sentinel URL: the master that answered */
        printf("master: %s\n", h.master);
    fflush(stdout);
    leasehold_callbacks cb = {.observed = observed, .error = error};
    if (!leasehold_observe(c, argv[2], &cb, NULL, &err)) {
        fprintf(stderr, "watch: %s\n", err.msg);
        leasehold_client_free(c);
        return 69;
    }
    getchar(); /* until Enter or end of input */
    leasehold_client_free(c);
    return 0;
}
