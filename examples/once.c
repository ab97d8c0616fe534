/* examples/once.c — a job that runs once per schedule across a fleet.
 *
 *     build/examples/once redis://127.0.0.1:6379 myapp:nightly 600000
 *     REDIS_PASSWORD=... build/examples/once \
 *         'rediss://redis.lan:6380?tls_ca_file=/etc/redis/ca.crt' myapp:nightly 600000
 *
 * Every machine starts it at the same time.  The one elected does the job,
 * then leasehold_resign_hold() keeps the key for HOLD_MS more instead of
 * releasing it, so a machine that starts late finds it held and gives up
 * (exit 75) rather than running the job a second time.  `leasehold run
 * --try-once --hold-after-exit` does the same around any command. */
#include <leasehold.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static atomic_bool taken; /* another process holds the key */

/* On the I/O thread: note a holder that is not us. */
static void held(leasehold_election *e, const char *holder, uint64_t epoch, void *arg)
{
    (void)epoch, (void)arg;
    if (holder && strcmp(holder, leasehold_election_token(e)) != 0)
        atomic_store(&taken, true);
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s REDIS_URL KEY HOLD_MS\n", argv[0]);
        return 64;
    }
    leasehold_config cfg;
    leasehold_error err;
    leasehold_config_init(&cfg);
    cfg.url = argv[1];
    /* The password from the environment, not in the URL: argv shows in ps. */
    cfg.password = getenv("REDIS_PASSWORD");
    leasehold_client *c = leasehold_client_new(&cfg, &err);
    leasehold_callbacks cb = {.leader_changed = held};
    leasehold_election *e = c ? leasehold_campaign(c, argv[2], &cb, NULL, &err) : NULL;
    if (!e) {
        fprintf(stderr, "once: %s\n", err.msg);
        leasehold_client_free(c);
        return 69;
    }
    /* Wait (30 s at most) to be elected or to see another holder. */
    for (int i = 0; i < 3000 && !leasehold_is_leader(e) && !atomic_load(&taken); i++)
        nanosleep(&(struct timespec){.tv_nsec = 10000000}, NULL);
    if (!leasehold_is_leader(e)) {
        leasehold_client_free(c);
        return 75;
    }
    printf("doing the job, epoch %llu\n", (unsigned long long)leasehold_epoch(e));
    /* ... the job, checking leasehold_is_leader() before each write ... */
    int rc = leasehold_resign_hold(e, (uint32_t)strtoul(argv[3], NULL, 10), &err);
    if (rc != 0)
        fprintf(stderr, "once: the job ran, but the key is not held: %s\n", err.msg);
    leasehold_client_free(c); /* no release: the hold stays */
    return rc == 0 ? 0 : 79;
}
