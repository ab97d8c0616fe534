/* examples/stats.c — campaign for a key and print the election's statistics
 * every second, as a monitoring thread of a service would read them.
 *
 *     build/examples/stats redis://127.0.0.1:6379 myapp:leader
 *
 * leasehold_election_stats_get() and leasehold_client_stats_get() are
 * cheap and lock-free for the reader: call them from any thread, as often
 * as you like (`leasehold run --metrics-listen` serves the same numbers to
 * Prometheus). */
#include <leasehold.h>
#include <stdio.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s REDIS_URL KEY\n", argv[0]);
        return 64;
    }
    leasehold_config cfg;
    leasehold_error err;
    leasehold_config_init(&cfg);
    cfg.url = argv[1];
    leasehold_client *c = leasehold_client_new(&cfg, &err);
    leasehold_election *e = c ? leasehold_campaign(c, argv[2], NULL, NULL, &err) : NULL;
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
