/* cost.c — what campaigning costs: Redis commands from INFO commandstats,
 * CPU time and resident memory of a candidate from /proc.
 *
 * Redis 7 counts the commands a Lua script runs in commandstats beside the
 * EVALSHA that ran the script, so "commands" is everything Redis executed.
 * leasehold itself sends only scripts and connection housekeeping; the
 * commands its scripts run are the ones in SCRIPT_COMMANDS, so "requests"
 * (what clients sent) is the total less those.
 */
#include "bench.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The commands leasehold's scripts run (src/protocol.c); the bench and the
 * library never send them directly. */
static const char *const SCRIPT_COMMANDS[] = {"get", "set",  "pttl",    "pexpire",
                                              "del", "time", "publish", "spublish"};

void cost_read_commandstats(redis_server *redis, command_calls *out)
{
    memset(out, 0, sizeof *out);
    redisReply *r = redis_server_cmd(redis, "INFO commandstats");
    if (!r || r->type != REDIS_REPLY_STRING) {
        fprintf(stderr, "failover: INFO commandstats failed\n");
        exit(1);
    }
    char *save = NULL;
    for (char *line = strtok_r(r->str, "\r\n", &save); line && out->n < 64;
         line = strtok_r(NULL, "\r\n", &save)) {
        char name[48];
        unsigned long long calls;
        if (sscanf(line, "cmdstat_%47[^:]:calls=%llu", name, &calls) == 2) {
            snprintf(out->name[out->n], sizeof out->name[0], "%s", name);
            out->calls[out->n++] = calls;
        }
    }
    freeReplyObject(r);
    out->servers = 1;
}

void cost_add_calls(command_calls *sum, const command_calls *more)
{
    for (int i = 0; i < more->n; i++) {
        int j = 0;
        while (j < sum->n && strcmp(sum->name[j], more->name[i]) != 0)
            j++;
        if (j == sum->n) {
            if (sum->n == 64)
                continue;
            snprintf(sum->name[j], sizeof sum->name[j], "%s", more->name[i]);
            sum->calls[j] = 0;
            sum->n++;
        }
        sum->calls[j] += more->calls[i];
    }
    sum->servers += more->servers;
}

static unsigned long long calls_of(const command_calls *c, const char *name)
{
    for (int i = 0; i < c->n; i++)
        if (strcmp(c->name[i], name) == 0)
            return c->calls[i];
    return 0;
}

static bool run_by_scripts(const char *name)
{
    for (size_t i = 0; i < sizeof SCRIPT_COMMANDS / sizeof SCRIPT_COMMANDS[0]; i++)
        if (strcmp(name, SCRIPT_COMMANDS[i]) == 0)
            return true;
    return false;
}

/* Of the two INFO commands that frame the window on each server, the one
 * that opened it is counted in `after` (a command's call is counted once it
 * has run); it is the bench's, not a candidate's, and is taken out. */
void cost_rates(const command_calls *before, const command_calls *after, double seconds,
                command_rates *out)
{
    memset(out, 0, sizeof *out);
    size_t used = 0;
    for (int i = 0; i < after->n; i++) {
        unsigned long long d = after->calls[i] - calls_of(before, after->name[i]);
        if (strcmp(after->name[i], "info") == 0)
            d -= d < (unsigned long long)after->servers ? d : (unsigned long long)after->servers;
        if (d == 0)
            continue;
        double per_s = (double)d / seconds;
        out->commands += per_s;
        /* REPLCONF is a replica's (its ACKs to the GETACKs that WAIT makes
         * the master send), not a client's. */
        if (!run_by_scripts(after->name[i]) && strcmp(after->name[i], "replconf") != 0)
            out->requests += per_s;
        if (used < sizeof out->detail) {
            int n = snprintf(out->detail + used, sizeof out->detail - used, "%s%s %.2f",
                             used ? ", " : "", after->name[i], per_s);
            if (n > 0)
                used += (size_t)n;
        }
    }
}

long long cost_cpu_ticks(pid_t pid)
{
    char path[64], line[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(line, 1, sizeof line - 1, f);
    fclose(f);
    line[n] = '\0';
    /* Fields after the command name, which is in parentheses and may hold
     * spaces: state(3) ... utime(14) stime(15). */
    char *p = strrchr(line, ')');
    if (!p)
        return -1;
    unsigned long long utime, stime;
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2)
        return -1;
    return (long long)(utime + stime);
}

long cost_rss_kb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}
