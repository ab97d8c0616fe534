/* ops_metrics.c — metrics, health and readiness of ops_metrics.h. */
#include "ops_metrics.h"

#include <inttypes.h>
#include <stdint.h>
#include <string.h>

/* Prometheus label values escape backslash, double quote and newline. */
static void put_label(FILE *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            fputc('\\', out), fputc(*s, out);
        else if (*s == '\n')
            fputs("\\n", out);
        else
            fputc(*s, out);
    }
}

/* "# HELP" and "# TYPE" of a metric. */
static void describe(FILE *out, const char *name, const char *type, const char *help)
{
    fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{key="..."<extra>} */
static void series(FILE *out, const char *name, const char *key, const char *extra)
{
    fprintf(out, "%s{key=\"", name);
    put_label(out, key);
    fprintf(out, "\"%s}", extra ? extra : "");
}

/* A metric of the key with one series: its HELP, TYPE and value. */
static void key_metric(FILE *out, const char *name, const char *type, const char *help,
                       const char *key, uint64_t value)
{
    describe(out, name, type, help);
    series(out, name, key, NULL);
    fprintf(out, " %" PRIu64 "\n", value);
}

/* A term's end as a label value. */
static const char *reason_label(int reason)
{
    static const char *const names[8] = {
        "", "lost", "expired", "deadline", "disconnected", "resigned", "clock_jumped", "halted"};
    return names[reason];
}

static void write_election(const ops_target *t, const leasehold_election_stats *s, FILE *out)
{
    const char *key = leasehold_key(t->election);
    char extra[96];

    describe(out, "leasehold_leader", "gauge",
             "1 while this process leads the key (the safety rule holds), else 0.");
    series(out, "leasehold_leader", key, NULL);
    fprintf(out, " %d\n", leasehold_is_leader(t->election) ? 1 : 0);

    describe(out, "leasehold_state", "gauge",
             "1 for the state the election is in, 0 for the others.");
    for (int st = LEASEHOLD_STATE_IDLE; st <= LEASEHOLD_STATE_HALTED; st++) {
        snprintf(extra, sizeof extra, ",state=\"%s\"", leasehold_state_name((leasehold_state)st));
        series(out, "leasehold_state", key, extra);
        fprintf(out, " %d\n", (int)s->state == st);
    }

    key_metric(out, "leasehold_epoch", "gauge",
               "The highest fencing epoch seen for the key: the current or the last term's.", key,
               s->epoch_seen);

    key_metric(out, "leasehold_leader_changes_total", "counter",
               "New holders of the key seen by this process (its own terms included).", key,
               s->leader_changes);

    key_metric(out, "leasehold_terms_won_total", "counter", "Terms this process was elected for.",
               key, s->terms_won);

    describe(out, "leasehold_terms_lost_total", "counter",
             "Terms of this process that ended, by reason.");
    for (int r = LEASEHOLD_LOST; r <= LEASEHOLD_HALTED; r++) {
        snprintf(extra, sizeof extra, ",reason=\"%s\"", reason_label(r));
        series(out, "leasehold_terms_lost_total", key, extra);
        fprintf(out, " %" PRIu64 "\n", s->terms_lost[r]);
    }

    key_metric(out, "leasehold_claims_total", "counter", "Claims of the key sent.", key, s->claims);

    key_metric(out, "leasehold_renewals_total", "counter", "Renewals of the lease sent.", key,
               s->renewals);

    key_metric(out, "leasehold_renewal_failures_total", "counter",
               "Renewals that did not count: refused, an error, too few replicas, no answer.", key,
               s->renewals_failed);

    describe(out, "leasehold_renewal_duration_seconds", "histogram",
             "Round trip of the renewals that counted, from send to answer (WAIT included).");
    static const uint64_t bounds[LEASEHOLD_RTT_BUCKETS] = LEASEHOLD_RTT_BOUNDS_US;
    uint64_t cumulative = 0;
    for (int i = 0; i < LEASEHOLD_RTT_BUCKETS; i++) {
        cumulative += s->renewal_rtt_buckets[i];
        if (bounds[i] == UINT64_MAX)
            snprintf(extra, sizeof extra, ",le=\"+Inf\"");
        else
            snprintf(extra, sizeof extra, ",le=\"%g\"", (double)bounds[i] / 1e6);
        series(out, "leasehold_renewal_duration_seconds_bucket", key, extra);
        fprintf(out, " %" PRIu64 "\n", cumulative);
    }
    series(out, "leasehold_renewal_duration_seconds_sum", key, NULL);
    fprintf(out, " %.6f\n", (double)s->renewal_rtt_sum_us / 1e6);
    series(out, "leasehold_renewal_duration_seconds_count", key, NULL);
    fprintf(out, " %" PRIu64 "\n", cumulative);

    describe(out, "leasehold_lease_remaining_seconds", "gauge",
             "While leader, the time left before the lease could run out; else 0.");
    series(out, "leasehold_lease_remaining_seconds", key, NULL);
    fprintf(out, " %.3f\n", (double)s->lease_left_ms / 1e3);
}

static void write_client(const leasehold_client_stats *cs, FILE *out)
{
    describe(out, "leasehold_redis_up", "gauge",
             "1 while the command connection to the Redis node is ready, else 0.");
    for (unsigned i = 0; i < cs->node_count && i < LEASEHOLD_STATS_NODES; i++) {
        fputs("leasehold_redis_up{node=\"", out);
        put_label(out, cs->nodes[i].address);
        fprintf(out, "\"} %d\n", cs->nodes[i].connected);
    }
    describe(out, "leasehold_redis_events_up", "gauge",
             "1 while the events subscription to the Redis node is live, else 0.");
    for (unsigned i = 0; i < cs->node_count && i < LEASEHOLD_STATS_NODES; i++) {
        fputs("leasehold_redis_events_up{node=\"", out);
        put_label(out, cs->nodes[i].address);
        fprintf(out, "\"} %d\n", cs->nodes[i].events_connected);
    }
    describe(out, "leasehold_redis_connects_total", "counter",
             "Connections to Redis made ready (both kinds, the first ones included).");
    fprintf(out, "leasehold_redis_connects_total %" PRIu64 "\n", cs->connects);
    describe(out, "leasehold_redis_disconnects_total", "counter",
             "Connections to Redis lost, or failed while being made.");
    fprintf(out, "leasehold_redis_disconnects_total %" PRIu64 "\n", cs->disconnects);
    describe(out, "leasehold_errors_total", "counter", "Errors met, by leasehold error code.");
    for (unsigned i = 0; i < cs->error_kinds; i++)
        fprintf(out, "leasehold_errors_total{code=\"%s\"} %" PRIu64 "\n",
                leasehold_errname(cs->errors[i].code)[0] != 'u'
                    ? leasehold_errname(cs->errors[i].code)
                    : "other",
                cs->errors[i].count);
    describe(out, "leasehold_io_busy_seconds", "gauge",
             "How long the I/O thread has been busy with its current wake-up (0 while it "
             "waits).");
    fprintf(out, "leasehold_io_busy_seconds %.3f\n", (double)cs->loop_busy_ms / 1e3);
}

void ops_metrics_write(const ops_target *t, FILE *out)
{
    leasehold_election_stats s;
    leasehold_client_stats cs;
    leasehold_election_stats_get(t->election, &s);
    leasehold_client_stats_get(t->client, &cs);
    const char *token = leasehold_election_token(t->election);
    const char *slash = strrchr(token, '/');
    char identity[256];
    snprintf(identity, sizeof identity, "%.*s", slash ? (int)(slash - token) : 200, token);

    describe(out, "leasehold_info", "gauge", "This process: its program, version and identity.");
    fputs("leasehold_info{program=\"", out);
    put_label(out, t->program);
    fputs("\",version=\"", out);
    put_label(out, t->version);
    fputs("\",identity=\"", out);
    put_label(out, identity);
    fputs("\"} 1\n", out);
    write_election(t, &s, out);
    write_client(&cs, out);
    char why[256];
    describe(out, "leasehold_healthy", "gauge", "1 while /healthz answers 200, else 0.");
    fprintf(out, "leasehold_healthy %d\n", ops_healthy(t, why, sizeof why));
}

bool ops_healthy(const ops_target *t, char *why, size_t why_size)
{
    leasehold_election_stats s;
    leasehold_client_stats cs;
    leasehold_election_stats_get(t->election, &s);
    leasehold_client_stats_get(t->client, &cs);
    why[0] = '\0';
    size_t len = 0;
    if (cs.loop_busy_ms > OPS_LOOP_STUCK_MS)
        len += (size_t)snprintf(why + len, why_size - len,
                                "the I/O thread has been busy for %" PRIu64
                                " ms (a callback blocks it); ",
                                cs.loop_busy_ms);
    if (s.term_overdue_ms > OPS_TERM_OVERDUE_MS && len < why_size)
        len += (size_t)snprintf(why + len, why_size - len,
                                "a term is still believed held %" PRIu64 " ms past its deadline; ",
                                s.term_overdue_ms);
    if (len >= 2 && len < why_size)
        why[len - 2] = '\0'; /* the last "; " */
    return len == 0;
}

bool ops_ready(const ops_target *t, char *what, size_t what_size)
{
    leasehold_election_stats s;
    leasehold_election_stats_get(t->election, &s);
    uint64_t epoch = leasehold_epoch(t->election);
    bool leader = epoch != 0 && leasehold_is_leader(t->election);
    const char *key = leasehold_key(t->election);
    if (leader)
        snprintf(what, what_size, "leader of %.200s, epoch %" PRIu64, key, epoch);
    else if (s.epoch_seen)
        snprintf(what, what_size, "%s for %.200s, last epoch %" PRIu64,
                 leasehold_state_name(s.state), key, s.epoch_seen);
    else
        snprintf(what, what_size, "%s for %.200s", leasehold_state_name(s.state), key);
    return leader;
}
