/* sentinels.c — a Redis Sentinel topology for integration tests (see
 * sentinels.h). */
#include "sentinels.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* The value of field `name` in an INFO text, copied into out; false if
 * absent. */
static bool info_value(const char *info, const char *name, char *out, size_t size)
{
    size_t n = strlen(name);
    for (const char *p = info; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, name, n) != 0 || p[n] != ':')
            continue;
        size_t len = strcspn(p + n + 1, "\r\n");
        if (len >= size)
            len = size - 1;
        memcpy(out, p + n + 1, len);
        out[len] = '\0';
        return true;
    }
    return false;
}

/* The value of `field` in a reply that lists names and values (SENTINEL
 * MASTER), as a number; -1 if absent. */
static long long field_number(const redisReply *r, const char *field)
{
    if (!r || r->type != REDIS_REPLY_ARRAY)
        return -1;
    for (size_t i = 0; i + 1 < r->elements; i += 2)
        if (r->element[i]->type == REDIS_REPLY_STRING && strcmp(r->element[i]->str, field) == 0 &&
            r->element[i + 1]->type == REDIS_REPLY_STRING)
            return atoll(r->element[i + 1]->str);
    return -1;
}

redisReply *sentinels_cmd(sentinels *t, int i, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redis_server_vcmd(t->sen[i], fmt, ap);
    va_end(ap);
    return r;
}

/* The port the Sentinels and replicas know data node s by. */
static int known_port(const sentinels *t, const redis_server *s)
{
    return t->tls ? s->tls_port : s->port;
}

/* True when data node s replicates from master m with its link up. */
static bool replica_in_sync(const sentinels *t, redis_server *s, const redis_server *m)
{
    redisReply *r = redis_server_cmd(s, "INFO replication");
    char role[16] = "", link[16] = "", port[16] = "", host[64] = "";
    if (r && r->type == REDIS_REPLY_STRING) {
        info_value(r->str, "role", role, sizeof role);
        info_value(r->str, "master_link_status", link, sizeof link);
        info_value(r->str, "master_port", port, sizeof port);
        info_value(r->str, "master_host", host, sizeof host);
    }
    if (r)
        freeReplyObject(r);
    return strcmp(role, "slave") == 0 && strcmp(link, "up") == 0 &&
           atoi(port) == known_port(t, m) && strcmp(host, m->host) == 0;
}

/* True when Sentinel i names data node s as master. */
static bool names_as_master(sentinels *t, int i, const redis_server *s)
{
    if (t->sen[i]->pid <= 0)
        return false;
    redisReply *r = sentinels_cmd(t, i, "SENTINEL get-master-addr-by-name %s", t->name);
    bool yes =
        r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[0]->type == REDIS_REPLY_STRING && r->element[1]->type == REDIS_REPLY_STRING &&
        strcmp(r->element[0]->str, s->host) == 0 && atoi(r->element[1]->str) == known_port(t, s);
    if (r)
        freeReplyObject(r);
    return yes;
}

redis_server *sentinels_master(sentinels *t)
{
    int running = 0;
    for (int i = 0; i < t->n_sen; i++)
        running += t->sen[i]->pid > 0;
    for (int d = 0; d < t->n_data; d++) {
        int votes = 0;
        for (int i = 0; i < t->n_sen; i++)
            votes += names_as_master(t, i, t->data[d]);
        if (votes * 2 > t->n_sen && votes > 0 && running > 0)
            return t->data[d];
    }
    return NULL;
}

/* True when s answers ROLE with "master". */
static bool is_master(redis_server *s)
{
    if (s->pid <= 0)
        return false;
    redisReply *r = redis_server_cmd(s, "ROLE");
    bool yes = r && r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
               r->element[0]->type == REDIS_REPLY_STRING &&
               strcmp(r->element[0]->str, "master") == 0;
    if (r)
        freeReplyObject(r);
    return yes;
}

redis_server *sentinels_wait_new_master(sentinels *t, const redis_server *old, uint64_t max_ms)
{
    uint64_t deadline = test_now_ms() + test_ms(max_ms);
    for (;;) {
        redis_server *m = sentinels_master(t);
        if (m && m != old && is_master(m))
            return m;
        if (test_now_ms() >= deadline)
            return NULL;
        test_sleep_ms(20);
    }
}

/* True when every Sentinel knows want_replicas replicas and every other
 * Sentinel. */
static bool sentinels_know_all(sentinels *t, int want_replicas)
{
    for (int i = 0; i < t->n_sen; i++) {
        if (t->sen[i]->pid <= 0)
            continue;
        redisReply *r = sentinels_cmd(t, i, "SENTINEL MASTER %s", t->name);
        bool ok = field_number(r, "num-slaves") >= want_replicas &&
                  field_number(r, "num-other-sentinels") == t->n_sen - 1;
        if (r)
            freeReplyObject(r);
        if (!ok)
            return false;
    }
    return true;
}

bool sentinels_wait_synced(sentinels *t, uint64_t max_ms)
{
    uint64_t deadline = test_now_ms() + test_ms(max_ms);
    for (;;) {
        redis_server *m = sentinels_master(t);
        bool ok = m && is_master(m);
        int replicas = 0;
        for (int d = 0; ok && d < t->n_data; d++) {
            if (t->data[d] == m || t->data[d]->pid <= 0)
                continue;
            ok = replica_in_sync(t, t->data[d], m);
            replicas++;
        }
        for (int i = 0; ok && i < t->n_sen; i++)
            ok = t->sen[i]->pid <= 0 || names_as_master(t, i, m);
        if (ok && sentinels_know_all(t, replicas))
            return true;
        if (test_now_ms() >= deadline)
            return false;
        test_sleep_ms(20);
    }
}

int sentinels_demote_stale(sentinels *t)
{
    redis_server *m = sentinels_master(t);
    if (!m)
        return 0;
    int demoted = 0;
    for (int d = 0; d < t->n_data; d++) {
        redis_server *s = t->data[d];
        if (s == m || !is_master(s))
            continue;
        redisReply *r = redis_server_cmd(s, "REPLICAOF %s %d", m->host, known_port(t, m));
        demoted += r && r->type == REDIS_REPLY_STATUS;
        if (r)
            freeReplyObject(r);
    }
    return demoted;
}

int sentinels_failover(sentinels *t)
{
    uint64_t deadline = test_now_ms() + test_ms(10000);
    for (;;) {
        int i = 0;
        while (i < t->n_sen - 1 && t->sen[i]->pid <= 0)
            i++;
        redisReply *r = sentinels_cmd(t, i, "SENTINEL FAILOVER %s", t->name);
        bool ok = r && r->type == REDIS_REPLY_STATUS;
        char why[200];
        snprintf(why, sizeof why, "%s", r && r->type == REDIS_REPLY_ERROR ? r->str : "no answer");
        if (r)
            freeReplyObject(r);
        if (ok)
            return 0;
        if (test_now_ms() >= deadline) {
            fprintf(stderr, "sentinels_failover: %s\n", why);
            return -1;
        }
        test_sleep_ms(100);
    }
}

/* Starts Sentinel i watching the master on master_host:master_port. */
static redis_server *start_sentinel(const sentinels *t, const sentinels_opts *o, int i,
                                    const char *master_host, int master_port)
{
    char conf[1024];
    int n = snprintf(conf, sizeof conf,
                     "sentinel resolve-hostnames no\n"
                     "sentinel monitor %s %s %d %d\n"
                     "sentinel down-after-milliseconds %s %d\n"
                     "sentinel failover-timeout %s %d\n",
                     t->name, master_host, master_port, t->n_sen / 2 + 1, t->name, o->down_after_ms,
                     t->name, o->failover_timeout_ms);
    if (o->password)
        n += snprintf(conf + n, sizeof conf - (size_t)n, "sentinel auth-pass %s %s\n", t->name,
                      o->password);
    if (o->sentinel_password)
        snprintf(conf + n, sizeof conf - (size_t)n, "requirepass %s\nsentinel sentinel-pass %s\n",
                 o->sentinel_password, o->sentinel_password);
    redis_server_opts so = {.sentinel_conf = conf, .password = o->sentinel_password};
    static const char *const tls_args[] = {"--tls-replication", "yes", NULL};
    if (o->tls) {
        so.tls_cert = o->tls->server_cert;
        so.tls_key = o->tls->server_key;
        so.tls_ca = o->tls->ca;
        so.args = tls_args;
    }
    if (o->sen_netns)
        so = (redis_server_opts){.sentinel_conf = conf,
                                 .password = o->sentinel_password,
                                 .netns = o->sen_netns[i],
                                 .host = o->sen_host[i],
                                 .port = 26379};
    return redis_server_start(&so);
}

sentinels *sentinels_start(const sentinels_opts *opts)
{
    sentinels_opts o = opts ? *opts : (sentinels_opts){0};
    if (!o.replicas)
        o.replicas = 2;
    if (!o.sentinels)
        o.sentinels = 3;
    if (!o.down_after_ms)
        o.down_after_ms = 1000;
    if (!o.failover_timeout_ms)
        o.failover_timeout_ms = 3000;
    if (o.replicas + 1 > SENTINELS_DATA_MAX || o.sentinels > SENTINELS_MAX)
        return NULL;
    sentinels *t = calloc(1, sizeof *t);
    snprintf(t->name, sizeof t->name, "mymaster");
    if (o.sentinel_password)
        t->sentinel_password = strdup(o.sentinel_password);

    redis_server_opts mo = {.password = o.password};
    const char *master_args[] = {"--masterauth", o.password, NULL};
    if (o.password)
        mo.args = master_args;
    if (o.data_netns) {
        mo.netns = o.data_netns[0];
        mo.host = o.data_host[0];
        mo.port = 6379;
    }
    const char *tls_master_args[] = {"--tls-replication", "yes", "--masterauth", o.password, NULL};
    if (o.tls) {
        t->tls = true;
        mo.tls_cert = o.tls->server_cert;
        mo.tls_key = o.tls->server_key;
        mo.tls_ca = o.tls->ca;
        if (!o.password)
            tls_master_args[2] = NULL;
        mo.args = tls_master_args;
    }
    t->data[t->n_data] = redis_server_start(&mo);
    if (!t->data[t->n_data])
        goto fail;
    t->n_data++;
    char port[16];
    snprintf(port, sizeof port, "%d", known_port(t, t->data[0]));
    const char *replica_args[] = {
        "--replicaof",         t->data[0]->host, port,       "--tls-replication",
        t->tls ? "yes" : "no", "--masterauth",   o.password, NULL};
    if (!o.password)
        replica_args[5] = NULL;
    for (int i = 0; i < o.replicas; i++) {
        redis_server_opts ro = {.password = o.password, .args = replica_args};
        if (o.tls) {
            ro.tls_cert = o.tls->server_cert;
            ro.tls_key = o.tls->server_key;
            ro.tls_ca = o.tls->ca;
        }
        if (o.data_netns) {
            ro.netns = o.data_netns[1 + i];
            ro.host = o.data_host[1 + i];
            ro.port = 6379;
        }
        t->data[t->n_data] = redis_server_start(&ro);
        if (!t->data[t->n_data])
            goto fail;
        t->n_data++;
    }
    uint64_t deadline = test_now_ms() + test_ms(10000);
    for (int d = 1; d < t->n_data; d++)
        while (!replica_in_sync(t, t->data[d], t->data[0])) {
            if (test_now_ms() >= deadline) {
                fprintf(stderr, "sentinels_start: replica %d never synced\n", d);
                goto fail;
            }
            test_sleep_ms(20);
        }

    t->n_sen = 0;
    int want = o.sentinels;
    for (int i = 0; i < want; i++) {
        t->n_sen = want; /* the quorum in each configuration counts them all */
        redis_server *s = start_sentinel(t, &o, i, t->data[0]->host, known_port(t, t->data[0]));
        t->n_sen = i;
        if (!s)
            goto fail;
        t->sen[t->n_sen] = s;
        t->n_sen = i + 1;
    }
    int n = snprintf(t->url, sizeof t->url, "%s://%s%s%s",
                     t->tls ? "rediss+sentinel" : "redis+sentinel", o.password ? ":" : "",
                     o.password ? o.password : "", o.password ? "@" : "");
    for (int i = 0; i < t->n_sen; i++)
        n += snprintf(t->url + n, sizeof t->url - (size_t)n, "%s%s:%d", i ? "," : "",
                      t->sen[i]->host, t->tls ? t->sen[i]->tls_port : t->sen[i]->port);
    n += snprintf(t->url + n, sizeof t->url - (size_t)n, "/%s", t->name);
    if (t->tls)
        snprintf(t->url + n, sizeof t->url - (size_t)n, "?tls_ca_file=%s", o.tls->ca);
    /* Sentinels find each other by hello messages every 2 s. */
    if (!sentinels_wait_synced(t, 20000)) {
        fprintf(stderr, "sentinels_start: the Sentinels never knew every replica and Sentinel:\n");
        for (int i = 0; i < t->n_sen; i++) {
            redisReply *r = sentinels_cmd(t, i, "SENTINEL MASTER %s", t->name);
            fprintf(stderr,
                    "  Sentinel %d (port %d, %s): master port %lld, %lld replicas, %lld "
                    "other Sentinels\n",
                    i, t->sen[i]->port, t->sen[i]->dir, field_number(r, "port"),
                    field_number(r, "num-slaves"), field_number(r, "num-other-sentinels"));
            if (r)
                freeReplyObject(r);
        }
        for (int d = 0; d < t->n_data; d++) {
            redisReply *r = redis_server_cmd(t->data[d], "INFO replication");
            char link[16] = "?", mport[16] = "?";
            if (r && r->type == REDIS_REPLY_STRING) {
                info_value(r->str, "master_link_status", link, sizeof link);
                info_value(r->str, "master_port", mport, sizeof mport);
            }
            if (r)
                freeReplyObject(r);
            fprintf(stderr, "  data node %d: port %d, TLS port %d, %s, master port %s, link %s\n",
                    d, t->data[d]->port, t->data[d]->tls_port,
                    is_master(t->data[d]) ? "master" : "not master", mport, link);
        }
        goto fail;
    }
    return t;
fail:
    sentinels_stop(t);
    return NULL;
}

void sentinels_stop(sentinels *t)
{
    if (!t)
        return;
    for (int i = 0; i < t->n_sen; i++)
        redis_server_stop(t->sen[i]);
    for (int d = 0; d < t->n_data; d++)
        redis_server_stop(t->data[d]);
    free(t->sentinel_password);
    free(t);
}
