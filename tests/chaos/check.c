/*
 * chaos_check — the verdict on a chaos run (the rules are in checker.h).
 *
 *     chaos_check --lease-ms N --retry-ms N [--settle-ms N] [--clock-step-bound-ms N]
 *                 FAULTLOG PROBELOG...
 *
 * Exit status: 0 when no violation and no liveness miss, 1 otherwise, 2 on
 * bad input (usage, an unreadable file, a line it does not understand).
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "checker.h"

static void usage(void)
{
    fprintf(stderr, "usage: chaos_check --lease-ms N --retry-ms N [--settle-ms N] "
                    "[--clock-step-bound-ms N] FAULTLOG PROBELOG...\n"
                    "  --settle-ms N  extra allowance added to the liveness bound (lease + "
                    "retry + 1000 ms); default 0\n"
                    "  --clock-step-bound-ms N  longest overlap tolerated for terms that begin "
                    "during a clock-step fault; default 0\n");
}

/* Parses a millisecond count in [0, 3600000]; false with a message naming
 * the option otherwise. */
static bool parse_ms(const char *name, const char *s, uint64_t *out)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (end == s || *end != '\0' || s[0] == '-' || v > 3600000) {
        fprintf(stderr, "chaos_check: --%s wants milliseconds from 0 to 3600000, not '%s'\n", name,
                s);
        return false;
    }
    *out = v;
    return true;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"lease-ms", required_argument, NULL, 'l'},
        {"retry-ms", required_argument, NULL, 'r'},
        {"settle-ms", required_argument, NULL, 's'},
        {"clock-step-bound-ms", required_argument, NULL, 'b'},
        {NULL, 0, NULL, 0},
    };
    checker_opts o = {0};
    bool have_lease = false, have_retry = false;
    int ch;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        bool ok;
        switch (ch) {
        case 'l':
            ok = have_lease = parse_ms("lease-ms", optarg, &o.lease_ms);
            break;
        case 'r':
            ok = have_retry = parse_ms("retry-ms", optarg, &o.retry_ms);
            break;
        case 's':
            ok = parse_ms("settle-ms", optarg, &o.settle_ms);
            break;
        case 'b':
            ok = parse_ms("clock-step-bound-ms", optarg, &o.clock_step_bound_ms);
            break;
        default:
            ok = false;
        }
        if (!ok) {
            usage();
            return 2;
        }
    }
    if (!have_lease || !have_retry || argc - optind < 2) {
        fprintf(stderr, "chaos_check: --lease-ms, --retry-ms, a fault log and at least one "
                        "probe log are required\n");
        usage();
        return 2;
    }
    return checker_run(&o, argv[optind], (const char *const *)argv + optind + 1,
                       (size_t)(argc - optind - 1), stdout);
}
