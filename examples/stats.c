/* examples/stats.c — campaign for a key and print the election's statistics
 * every second, as a monitoring thread of a service would read them.
 *
 *     build/examples/stats redis://127.0.0.1:6379 myapp:leader [PRIORITY]
 *
 * PRIORITY (default 1) makes it a preferred leader: run two with 1 and 2 and
 * watch leadership move to the second; `leasehold resign --key myapp:leader`
 * makes the leader step down (resign_requested below).
 *
 * leasehold_election_stats_get() and leasehold_client_stats_get() are
 * cheap and lock-free for the reader: call them from any thread, as often
 * as you like (`leasehold run --metrics-listen` serves the same numbers to
 * Prometheus). */
#include <leasehold.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* Asked to step down (leasehold resign, or a preferred candidate): this
 * program does nothing on the term that needs stopping, so it resigns at
 * once, which releases the key. */
static void resign_requested(leasehold_election *e, uint64_t epoch, void *arg)
{
    (void)arg;
    printf("asked to step down (epoch %llu)\n", (unsigned long long)epoch);
    leasehold_resign(e);
}

int main(int argc, char **argv)
{
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: %s REDIS_URL KEY [PRIORITY]\n", argv[0]);
        return 64;
    }
    leasehold_config cfg;
    leasehold_error err;
    leasehold_config_init(&cfg);
    cfg.url = argv[1];
    if (argc == 4)
        cfg.priority = (uint32_t)strtoul(argv[3], NULL, 10);
    leasehold_client *c = leasehold_client_new(&cfg, &err);
    const leasehold_callbacks cb = {.resign_requested = resign_requested};
    leasehold_election *e = c ? leasehold_campaign(c, argv[2], &cb, NULL, &err) : NULL;
    if (!e) {
        fprintf(stderr, "stats: %s\n", err.msg);
        leasehold_client_free(c);
        return 69;
    }
    for (;;) { /* until killed: the lease then lapses, as after a crash */
        leasehold_election_stats s;
        leasehold_client_stats cs;
        leasehold_election_stats_get(e, &s);
        leasehold_client_stats_get(c, &cs);
        printf("%-13s for %6llu ms  epoch %llu  won %llu  claims %llu  renewals %llu "
               "(failed %llu, last %llu us)  lease left %lld ms  redis %s\n",
               leasehold_state_name(s.state), (unsigned long long)s.state_ms,
               (unsigned long long)s.epoch_seen, (unsigned long long)s.terms_won,
               (unsigned long long)s.claims, (unsigned long long)s.renewals,
               (unsigned long long)s.renewals_failed, (unsigned long long)s.last_renewal_rtt_us,
               (long long)s.lease_left_ms, cs.nodes[0].connected ? "up" : "down");
        fflush(stdout);
        sleep(1);
    }
}
