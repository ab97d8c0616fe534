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

int main(int argc, char **argv)
{
    leasehold_config cfg;
    leasehold_error err;
    leasehold_config_init(&cfg);
    const char *url = argc > 1 ? argv[1] : getenv("SNAKETRON_REDIS_URL");
    cfg.url = url ? url : "redis://127.0.0.1:6379";
    leasehold_client *c = leasehold_client_new(&cfg, &err);
    if (!c || !leasehold_serve(c, "myapp:leader", work, NULL, &err)) {
        fprintf(stderr, "leasehold: %s\n", err.msg);
        return 1;
    }
    getchar();                // run until Enter
    leasehold_client_free(c); // stops the service, releases the lease
    return 0;
}
