#include <leasehold.h>
#include <stdio.h>
#include <stdlib.h>

static int work(leasehold_token *t, void *arg)
{
    (void)arg;
    printf("leader, epoch %llu\n", (unsigned long long)leasehold_token_epoch(t));
    while (leasehold_token_sleep(t, 1000))
        puts("doing the leader's work");
    return 0; // cancelled: we are no longer leader
}

// Trouble after start (Redis down, a missing ACL permission, the key taken
// by another program's value) arrives here, on leasehold's thread; a
// permanent error has halted the campaign until leasehold_resume().
static void on_error(leasehold_election *e, const leasehold_error *err, void *arg)
{
    (void)e;
    (void)arg;
    fprintf(stderr, "leasehold: %s: %s%s\n", leasehold_errname(err->code), err->msg,
            leasehold_error_is_permanent(err->code) ? " (campaign halted)" : "");
}

int main(int argc, char **argv)
{
    leasehold_config cfg;
    leasehold_error err;
    leasehold_config_init(&cfg);
    const char *url = argc > 1 ? argv[1] : getenv("SNAKETRON_REDIS_URL");
    cfg.url = url ? url : "redis://127.0.0.1:6379";
    leasehold_client *c = leasehold_client_new(&cfg, &err);
    const leasehold_callbacks cb = {.error = on_error};
    if (!c || !leasehold_serve_cb(c, "myapp:leader", work, NULL, &cb, &err)) {
        fprintf(stderr, "leasehold: %s\n", err.msg);
        return 1;
    }
    getchar();                // run until Enter
    leasehold_client_free(c); // stops the service, releases the lease
    return 0;
}
