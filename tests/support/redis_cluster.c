/* redis_cluster.c — a Redis Cluster for integration tests (see
 * redis_cluster.h). */
#include "redis_cluster.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cluster.h"
#include "testutil.h"

/* True when port is one of s's (plain, or TLS: a TLS cluster's nodes name
 * each other by their TLS ports, as replication does). */
static bool has_port(const redis_server *s, long long port)
{
    return s->port == port || (s->tls_port && s->tls_port == port);
}

/* The node at host:port, or NULL (nodes in network namespaces share port
 * numbers and differ by address). */
static redis_server *by_addr(redis_cluster *t, const char *host, long long port)
{
    for (int i = 0; i < t->n; i++)
        if (strcmp(t->node[i]->host, host) == 0 && has_port(t->node[i], port))
            return t->node[i];
    return NULL;
}

/* What node s's CLUSTER SLOTS says of slot, into *master (NULL when it
 * names none or a node not ours): 1, or 0 when s did not answer. */
static int slot_master(redis_cluster *t, redis_server *s, unsigned slot, redis_server **master)
{
    *master = NULL;
    redisReply *r = redis_server_cmd(s, "CLUSTER SLOTS");
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        if (r)
            freeReplyObject(r);
        return 0;
    }
    for (size_t i = 0; i < r->elements; i++) {
        redisReply *e = r->element[i];
        if (e->type == REDIS_REPLY_ARRAY && e->elements >= 3 && e->element[0]->integer <= slot &&
            slot <= (unsigned long long)e->element[1]->integer &&
            e->element[2]->type == REDIS_REPLY_ARRAY && e->element[2]->elements >= 2 &&
            e->element[2]->element[0]->type == REDIS_REPLY_STRING)
            *master =
                by_addr(t, e->element[2]->element[0]->str, e->element[2]->element[1]->integer);
    }
    freeReplyObject(r);
    return 1;
}

redis_server *redis_cluster_owner(redis_cluster *t, unsigned slot)
{
    redis_server *agreed = NULL;
    for (int i = 0; i < t->n; i++) {
        if (t->node[i]->pid <= 0)
            continue;
        redis_server *m;
        if (!slot_master(t, t->node[i], slot, &m))
            continue; /* no answer (a node SIGSTOPped): the others decide */
        if (!m || (agreed && m != agreed))
            return NULL;
        agreed = m;
    }
    return agreed && agreed->pid > 0 ? agreed : NULL;
}

/* True when s's INFO replication says `what` (a substring). */
static bool info_says(redis_server *s, const char *section, const char *what)
{
    redisReply *r = redis_server_cmd(s, "INFO %s", section);
    bool yes = r && r->type == REDIS_REPLY_STRING && strstr(r->str, what);
    if (r)
        freeReplyObject(r);
    return yes;
}

/* True when s replicates from m, its link up (INFO replication). */
static bool follows(redis_server *s, const redis_server *m)
{
    char host[96], port[40], tls_port[40];
    snprintf(host, sizeof host, "\nmaster_host:%s\r\n", m->host);
    snprintf(port, sizeof port, "\nmaster_port:%d\r\n", m->port);
    snprintf(tls_port, sizeof tls_port, "\nmaster_port:%d\r\n", m->tls_port);
    redisReply *r = redis_server_cmd(s, "INFO replication");
    bool yes = r && r->type == REDIS_REPLY_STRING && strstr(r->str, "master_link_status:up") &&
               strstr(r->str, host) &&
               (strstr(r->str, port) || (m->tls_port && strstr(r->str, tls_port)));
    if (r)
        freeReplyObject(r);
    return yes;
}

redis_server *redis_cluster_replica_of(redis_cluster *t, redis_server *m)
{
    for (int i = 0; i < t->n; i++)
        if (t->node[i] != m && t->node[i]->pid > 0 && follows(t->node[i], m))
            return t->node[i];
    return NULL;
}

/* True when two CLUSTER SLOTS node entries (address, port, ID; at least
 * the first two) name the same node. */
static bool same_node(const redisReply *a, const redisReply *b)
{
    if (a->elements >= 3 && b->elements >= 3 && a->element[2]->type == REDIS_REPLY_STRING &&
        b->element[2]->type == REDIS_REPLY_STRING)
        return strcmp(a->element[2]->str, b->element[2]->str) == 0;
    return a->element[0]->type == REDIS_REPLY_STRING && b->element[0]->type == REDIS_REPLY_STRING &&
           strcmp(a->element[0]->str, b->element[0]->str) == 0 &&
           a->element[1]->integer == b->element[1]->integer;
}

/* True when e is a CLUSTER SLOTS entry: first, last, then the master's
 * (address, port, ...). */
static bool slot_range(const redisReply *e)
{
    return e->type == REDIS_REPLY_ARRAY && e->elements >= 3 &&
           e->element[2]->type == REDIS_REPLY_ARRAY && e->element[2]->elements >= 2;
}

/* True when every entry of r, a CLUSTER SLOTS answer, is a slot range. */
static bool slot_ranges(const redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY)
        return false;
    for (size_t i = 0; i < r->elements; i++)
        if (!slot_range(r->element[i]))
            return false;
    return true;
}

/* True when every running node is ok, they agree on every slot's master
 * (checked on slot 0 and each slot range's ends by a full CLUSTER SLOTS
 * comparison), and every running replica's link is up. */
static bool all_ok(redis_cluster *t)
{
    redisReply *first = NULL;
    bool ok = true;
    for (int i = 0; i < t->n && ok; i++) {
        redis_server *s = t->node[i];
        if (s->pid <= 0)
            continue;
        ok = info_says(s, "replication", "role:master") ||
             info_says(s, "replication", "master_link_status:up");
        if (!ok)
            break;
        redisReply *r = redis_server_cmd(s, "CLUSTER INFO");
        ok = r && r->type == REDIS_REPLY_STRING && strstr(r->str, "cluster_state:ok");
        if (r)
            freeReplyObject(r);
        if (!ok)
            break;
        /* The same masters for the same ranges everywhere. */
        r = redis_server_cmd(s, "CLUSTER SLOTS");
        ok = r && slot_ranges(r);
        if (ok && first) {
            ok = r->elements == first->elements;
            for (size_t k = 0; ok && k < r->elements; k++) {
                bool found = false;
                for (size_t j = 0; j < first->elements && !found; j++)
                    found = r->element[k]->element[0]->integer ==
                                first->element[j]->element[0]->integer &&
                            r->element[k]->element[1]->integer ==
                                first->element[j]->element[1]->integer &&
                            same_node(r->element[k]->element[2], first->element[j]->element[2]);
                ok = found;
            }
        }
        if (ok && !first) {
            first = r;
            r = NULL;
        }
        if (r)
            freeReplyObject(r);
    }
    if (first)
        freeReplyObject(first);
    return ok;
}

bool redis_cluster_wait_ok(redis_cluster *t, uint64_t max_ms)
{
    uint64_t deadline = test_now_ms() + test_ms(max_ms);
    for (;;) {
        if (all_ok(t))
            return true;
        if (test_now_ms() >= deadline)
            return false;
        test_sleep_ms(50);
    }
}

/* Runs redis-cli --cluster create on the nodes; 0 when it succeeded. */
static int create(redis_cluster *t, int replicas)
{
    char *argv[REDIS_CLUSTER_MAX + 8];
    char addr[REDIS_CLUSTER_MAX][80], reps[16];
    int k = 0;
    argv[k++] = "redis-cli";
    argv[k++] = "--cluster";
    argv[k++] = "create";
    for (int i = 0; i < t->n; i++) {
        snprintf(addr[i], sizeof addr[i], "%s:%d", t->node[i]->host, t->node[i]->port);
        argv[k++] = addr[i];
    }
    snprintf(reps, sizeof reps, "%d", replicas);
    argv[k++] = "--cluster-replicas";
    argv[k++] = reps;
    argv[k++] = "--cluster-yes";
    argv[k] = NULL;
    FILE *devnull = fopen("/dev/null", "w");
    pid_t pid = test_process_spawn(argv, devnull ? fileno(devnull) : -1);
    if (devnull)
        fclose(devnull);
    int status = 0;
    if (pid < 0 || !test_process_wait(pid, test_ms(60000), &status)) {
        if (pid > 0)
            test_process_kill(pid);
        fprintf(stderr, "redis-cli --cluster create did not finish\n");
        return -1;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "redis-cli --cluster create failed (status %d)\n", status);
        return -1;
    }
    return 0;
}

redis_cluster *redis_cluster_start(const redis_cluster_opts *opts)
{
    redis_cluster_opts o = opts ? *opts : (redis_cluster_opts){0};
    int masters = o.masters ? o.masters : 3;
    int replicas = o.replicas < 0 ? 0 : o.replicas ? o.replicas : 1;
    char timeout[16];
    snprintf(timeout, sizeof timeout, "%d", o.node_timeout_ms ? o.node_timeout_ms : 1000);
    if (masters * (1 + replicas) > REDIS_CLUSTER_MAX) {
        fprintf(stderr, "redis_cluster_start: at most %d nodes\n", REDIS_CLUSTER_MAX);
        return NULL;
    }
    redis_cluster *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    const char *args[] = {"--cluster-enabled",
                          "yes",
                          "--cluster-config-file",
                          "nodes.conf",
                          "--cluster-node-timeout",
                          timeout,
                          "--cluster-require-full-coverage",
                          "no",
                          "--repl-diskless-sync-delay",
                          "0",
                          NULL, /* --tls-cluster yes --tls-replication yes, with TLS */
                          NULL,
                          NULL,
                          NULL,
                          NULL};
    redis_server_opts so = {.args = args};
    if (o.tls) {
        static const char *const tls_args[] = {"--tls-cluster", "yes", "--tls-replication", "yes"};
        size_t at = 0;
        while (args[at])
            at++;
        memcpy(&args[at], tls_args, sizeof tls_args);
        so.tls_cert = o.tls->server_cert;
        so.tls_key = o.tls->server_key;
        so.tls_ca = o.tls->ca;
    }
    for (int i = 0; i < masters * (1 + replicas); i++) {
        if (o.netns) {
            so.netns = o.netns[i];
            so.host = o.host[i];
            so.port = 6379;
        }
        t->node[i] = redis_server_start(&so);
        if (!t->node[i]) {
            redis_cluster_stop(t);
            return NULL;
        }
        t->n = i + 1;
    }
    if (create(t, replicas) < 0 || !redis_cluster_wait_ok(t, 60000)) {
        fprintf(stderr, "the cluster did not come up\n");
        redis_cluster_stop(t);
        return NULL;
    }
    if (o.tls)
        snprintf(t->url, sizeof t->url, "rediss+cluster://127.0.0.1:%d,127.0.0.1:%d?tls_ca_file=%s",
                 t->node[0]->tls_port, t->node[1]->tls_port, o.tls->ca);
    else
        snprintf(t->url, sizeof t->url, "redis+cluster://%s:%d,%s:%d", t->node[0]->host,
                 t->node[0]->port, t->node[1]->host, t->node[1]->port);
    return t;
}

void redis_cluster_stop(redis_cluster *t)
{
    if (!t)
        return;
    for (int i = 0; i < t->n; i++)
        redis_server_stop(t->node[i]);
    free(t);
}

/* The node ID of s (CLUSTER MYID) into out; false if it did not say. */
static bool node_id(redis_server *s, char *out, size_t size)
{
    redisReply *r = redis_server_cmd(s, "CLUSTER MYID");
    bool ok = r && r->type == REDIS_REPLY_STRING;
    if (ok)
        snprintf(out, size, "%s", r->str);
    if (r)
        freeReplyObject(r);
    return ok;
}

/* Runs a command that must answer +OK; false (printed) otherwise. */
static bool ok_cmd(redis_server *s, const char *what, redisReply *r)
{
    bool ok = r && r->type == REDIS_REPLY_STATUS;
    if (!ok)
        fprintf(stderr, "%s on port %d: %s\n", what, s->port,
                r && r->type == REDIS_REPLY_ERROR ? r->str : "no answer");
    if (r)
        freeReplyObject(r);
    return ok;
}

int redis_cluster_migrate_keys(redis_cluster *t, unsigned slot, redis_server *from,
                               redis_server *to)
{
    (void)t;
    char from_id[64], to_id[64];
    if (!node_id(from, from_id, sizeof from_id) || !node_id(to, to_id, sizeof to_id))
        return -1;
    if (!ok_cmd(to, "SETSLOT IMPORTING",
                redis_server_cmd(to, "CLUSTER SETSLOT %u IMPORTING %s", slot, from_id)) ||
        !ok_cmd(from, "SETSLOT MIGRATING",
                redis_server_cmd(from, "CLUSTER SETSLOT %u MIGRATING %s", slot, to_id)))
        return -1;
    for (;;) {
        redisReply *r = redis_server_cmd(from, "CLUSTER GETKEYSINSLOT %u 100", slot);
        if (!r || r->type != REDIS_REPLY_ARRAY) {
            if (r)
                freeReplyObject(r);
            return -1;
        }
        size_t n = r->elements;
        for (size_t i = 0; i < n; i++) {
            redisReply *m =
                redis_server_cmd(from, "MIGRATE %s %d %s 0 5000", to->host,
                                 to->tls_port ? to->tls_port : to->port, /* tls-cluster */
                                 r->element[i]->str);
            bool ok = m && m->type == REDIS_REPLY_STATUS;
            if (!ok)
                fprintf(stderr, "MIGRATE %s: %s\n", r->element[i]->str,
                        m && m->type == REDIS_REPLY_ERROR ? m->str : "no answer");
            if (m)
                freeReplyObject(m);
            if (!ok) {
                freeReplyObject(r);
                return -1;
            }
        }
        freeReplyObject(r);
        if (n == 0)
            return 0;
    }
}

int redis_cluster_finish_migration(redis_cluster *t, unsigned slot, redis_server *from,
                                   redis_server *to)
{
    char to_id[64];
    if (!node_id(to, to_id, sizeof to_id))
        return -1;
    /* The importer first, so that the slot is never unowned; then the
     * source, then everyone else (they would learn it by gossip anyway). */
    if (!ok_cmd(to, "SETSLOT NODE",
                redis_server_cmd(to, "CLUSTER SETSLOT %u NODE %s", slot, to_id)) ||
        !ok_cmd(from, "SETSLOT NODE",
                redis_server_cmd(from, "CLUSTER SETSLOT %u NODE %s", slot, to_id)))
        return -1;
    for (int i = 0; i < t->n; i++) {
        redis_server *s = t->node[i];
        if (s == to || s == from || s->pid <= 0 || !info_says(s, "replication", "role:master"))
            continue;
        ok_cmd(s, "SETSLOT NODE", redis_server_cmd(s, "CLUSTER SETSLOT %u NODE %s", slot, to_id));
    }
    return 0;
}

void redis_cluster_key_on(redis_cluster *t, redis_server *m, const char *prefix, char *out,
                          size_t size)
{
    for (int i = 0; i < 1000; i++) {
        snprintf(out, size, "%s%d", prefix, i);
        if (redis_cluster_owner(t, cluster_key_slot(out)) == m)
            return;
    }
    fprintf(stderr, "no key %s<N> is served by the node on port %d\n", prefix, m->port);
    abort();
}
