/* api_client.c — a client's life, on the caller's threads: configuration,
 * leasehold_client_new() (with the first connect, before the I/O thread
 * exists), leasehold_client_free(), and the helpers every thread may call.
 *
 * Nothing here touches a node or an election while the I/O thread runs;
 * requests go through the queue (api_election.c) under c->mu.
 */
#include "client_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <unistd.h>

#include "clock.h"
#include "error.h"
#include "random.h"
#include "sha1.h"
#include "tls.h"

/* Formats and hands a line to the user's log callback, if it wants it. */
void client_log(leasehold_client *c, leasehold_log_level level, const char *fmt, ...)
{
    if (!c->cfg.log || level > c->cfg.log_level)
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    c->cfg.log(level, line, c->cfg.log_arg);
}

/* 64 random bits: a token's nonce, the jitter's first seed. */
uint64_t client_random_u64(void)
{
    uint64_t x = 0;
    if (getrandom(&x, sizeof x, 0) != sizeof x)
        x = clock_now_ns() ^ ((uint64_t)getpid() << 32);
    return x;
}

/* A seed for each election's and each connection's jitter. */
uint64_t client_next_seed(leasehold_client *c)
{
    return random_next(&c->rng);
}

/* Wakes the I/O thread (its eventfd). */
void client_wake(leasehold_client *c)
{
    uint64_t one = 1;
    ssize_t n = write(c->wake_fd, &one, sizeof one);
    (void)n; /* fails only on overflow, when it is readable anyway */
}

void leasehold_config_init(leasehold_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->version = LEASEHOLD_CONFIG_VERSION;
    cfg->lease_ms = 2000;
    cfg->renew_interval_ms = 300;
    cfg->retry_interval_ms = 1000;
    cfg->renew_deadline_ms = 1500;
    cfg->command_timeout_ms = 250;
    cfg->connect_timeout_ms = 1000;
    cfg->stop_timeout_ms = 10000;
    cfg->clock_drift_ppm = 10000;
    cfg->log_level = LEASEHOLD_LOG_INFO;
    cfg->restart_guard = true;
    cfg->min_replicas = -1;
    cfg->priority = 1;
    cfg->handover_interval_ms = 10000;
}

/* The part of the configuration the state machine takes. */
lease_config client_lease_config(const leasehold_config *cfg)
{
    return (lease_config){.lease_ms = cfg->lease_ms,
                          .renew_interval_ms = cfg->renew_interval_ms,
                          .retry_interval_ms = cfg->retry_interval_ms,
                          .renew_deadline_ms = cfg->renew_deadline_ms,
                          .stop_timeout_ms = cfg->stop_timeout_ms,
                          .drift_ppm = cfg->clock_drift_ppm,
                          .priority = cfg->priority,
                          .standby = cfg->priority == 0,
                          .handover_interval_ms = cfg->handover_interval_ms,
                          .original_timing = cfg->original_timing};
}

/* Checks what lease.c does not: the connection's and the service's times,
 * the identity. */
static int check_config(const leasehold_config *cfg, leasehold_error *err)
{
    if (cfg->version != LEASEHOLD_CONFIG_VERSION)
        return error_set(err, LEASEHOLD_ECONFIG,
                         "config version %d is not %d: start from leasehold_config_init()",
                         cfg->version, LEASEHOLD_CONFIG_VERSION);
    if (!cfg->url || !cfg->url[0])
        return error_set(err, LEASEHOLD_ECONFIG, "no Redis URL given (config url is empty)");
    if (cfg->connect_timeout_ms == 0)
        return error_set(err, LEASEHOLD_ECONFIG, "connect_timeout_ms must be above 0");
    if (cfg->stop_timeout_ms == 0)
        return error_set(err, LEASEHOLD_ECONFIG, "stop_timeout_ms must be above 0");
    if (cfg->priority > LEASEHOLD_PRIORITY_MAX)
        return error_set(err, LEASEHOLD_ECONFIG, "priority %" PRIu32 " is above %u", cfg->priority,
                         LEASEHOLD_PRIORITY_MAX);
    if (cfg->handover_interval_ms == 0)
        return error_set(err, LEASEHOLD_ECONFIG, "handover_interval_ms must be above 0");
    if (cfg->min_replicas < -1 || cfg->min_replicas > 100)
        return error_set(err, LEASEHOLD_ECONFIG,
                         "min_replicas %d is out of range (-1 for the default, 0 to 100)",
                         cfg->min_replicas);
    if (cfg->log_level < LEASEHOLD_LOG_ERROR || cfg->log_level > LEASEHOLD_LOG_DEBUG)
        return error_set(err, LEASEHOLD_ECONFIG, "log_level %d is not a leasehold_log_level",
                         (int)cfg->log_level);
    if (cfg->identity) {
        size_t n = strlen(cfg->identity);
        if (n == 0 || n > 200)
            return error_set(err, LEASEHOLD_ECONFIG, "identity must be 1 to 200 bytes long");
        for (size_t i = 0; i < n; i++) {
            unsigned char ch = (unsigned char)cfg->identity[i];
            if (ch <= ' ' || ch == 0x7f)
                return error_set(err, LEASEHOLD_ECONFIG,
                                 "identity \"%s\" holds a space or control character",
                                 cfg->identity);
        }
    }
    return 0;
}

/* A malloc'd string, or NULL when out of memory. */
char *client_format(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    return s;
}

/* "<hostname>:<pid>", blanks replaced: the identity when none is given. */
static char *default_identity(void)
{
    char host[256];
    if (gethostname(host, sizeof host) != 0)
        snprintf(host, sizeof host, "localhost");
    host[sizeof host - 1] = '\0';
    for (char *p = host; *p; p++)
        if ((unsigned char)*p <= ' ')
            *p = '_';
    return client_format("%.180s:%ld", host, (long)getpid());
}

/* Fails every leasehold_holder_get() the I/O thread has not answered: sent,
 * waiting for the connection, or still queued.  Called once the I/O thread
 * has ended (or never ran), so that the askers return at once with
 * LEASEHOLD_ECLOSED instead of waiting out their timeout. */
static void fail_queries(leasehold_client *c)
{
    static const char why[] = "the client is shutting down (leasehold_client_free)";
    for (size_t i = 0; i < c->node_count; i++) {
        node *n = c->nodes[i];
        node_drop_pending(n, LEASEHOLD_ECLOSED, why);
        while (n->unsent) {
            query *q = n->unsent;
            n->unsent = q->next;
            query_finish(c, q, LEASEHOLD_ECLOSED, why, NULL);
        }
    }
    pthread_mutex_lock(&c->mu);
    request *queued = NULL, **rp = &c->req_head, *last = NULL;
    while (*rp) {
        request *r = *rp;
        if (r->kind == REQ_QUERY || r->kind == REQ_HOLD) {
            *rp = r->next;
            r->next = queued;
            queued = r;
        } else {
            last = r;
            rp = &r->next;
        }
    }
    c->req_tail = last;
    pthread_mutex_unlock(&c->mu);
    while (queued) {
        request *r = queued;
        queued = r->next;
        query_finish(c, r->q, LEASEHOLD_ECLOSED, why, NULL);
        free(r);
    }
}

/* Frees c and all it owns; its I/O thread has ended or never started. */
static void client_destroy(leasehold_client *c)
{
    fail_queries(c);
    for (size_t i = 0; i < c->node_count; i++)
        node_free(c->nodes[i]);
    free(c->nodes);
    free(c->slot_owner);
    free(c->pfd);
    free(c->pfd_conns);
    chanmap_free(&c->chans);
    while (c->req_head) {
        request *r = c->req_head;
        c->req_head = r->next;
        free(r);
    }
    if (c->wake_fd >= 0)
        close(c->wake_fd);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cond);
    client_counters_destroy(&c->stats);
    tls_ctx_free(c->tls);
    free(c->url_copy);
    free(c->identity);
    explicit_bzero(c->u.password, sizeof c->u.password);
    free(c);
}

/* Runs c's connections on the caller's thread until c->first_code is set
 * (1: ready, < 0: failed). */
static void first_wait(leasehold_client *c)
{
    node *n = c->nodes[0];
    while (c->first_code == 0) {
        uint64_t now = clock_now_ms();
        uint64_t at = node_wake_at(n);
        int timeout = at == UINT64_MAX ? 100 : at <= now ? 0 : (int)(at - now);
        conn *cs[NODE_CONNS];
        int k = node_conns(n, cs);
        struct pollfd pfd[NODE_CONNS];
        for (int i = 0; i < k; i++)
            pfd[i] = (struct pollfd){.fd = conn_fd(cs[i]), .events = conn_poll_events(cs[i])};
        int ready = poll(pfd, (nfds_t)k, timeout);
        now = clock_now_ms();
        for (int i = 0; ready > 0 && i < k; i++)
            if (pfd[i].fd >= 0 && pfd[i].revents && pfd[i].fd == conn_fd(cs[i]))
                conn_on_io(cs[i], pfd[i].revents, now);
        node_tick(n, now);
    }
}

/* A Cluster: the seed nodes in turn, until one connects and gives the slot
 * map.  A refusal no other seed would answer differently (the password,
 * the ACL) ends the round. */
static void first_connect_cluster(leasehold_client *c)
{
    node *n = c->nodes[0];
    char msgs[sizeof c->first_msg] = "";
    for (int i = 0; i < c->u.host_count; i++) {
        if (i > 0) {
            url m;
            url_cluster_node(&c->u, c->u.hosts[i].host, c->u.hosts[i].port, &m);
            conn_close(n->cmd);
            conn_close(n->sub);
            conn_set_target(n->cmd, &m);
            conn_set_target(n->sub, &m);
            explicit_bzero(m.password, sizeof m.password);
            snprintf(n->host, sizeof n->host, "%s", c->u.hosts[i].host);
            n->port = c->u.hosts[i].port;
        }
        c->first_code = 0;
        conn_connect(n->cmd, clock_now_ms());
        first_wait(c);
        if (c->first_code == 1) { /* connected: now the slot map */
            c->first_code = 0;
            c->topology_due_ms = 0;
            cluster_tick(c, clock_now_ms());
            first_wait(c);
        }
        if (c->first_code == 1)
            return;
        size_t used = strlen(msgs);
        int w = snprintf(msgs + used, sizeof msgs - used, "%s%s", used ? "; " : "", c->first_msg);
        if (leasehold_error_is_permanent(c->first_code) || w >= (int)(sizeof msgs - used))
            break; /* hopeless, or no room to say more */
    }
    snprintf(c->first_msg, sizeof c->first_msg, "%s", msgs);
}

/* Connects on the caller's thread, before the I/O thread exists, so that a
 * wrong URL, password or database is reported by leasehold_client_new()
 * (for a Cluster, also a seed that gives no slot map). */
static int first_connect(leasehold_client *c, leasehold_error *err)
{
    node *n = c->nodes[0];
    c->first_connect = true;
    c->first_code = 0;
    if (c->u.cluster) {
        first_connect_cluster(c);
    } else {
        node_connect(n, n->cmd, clock_now_ms());
        first_wait(c);
    }
    c->first_connect = false;
    if (c->first_code < 0)
        return error_set(err, c->first_code, "%s", c->first_msg);
    return 0;
}

/* Starts every connection not yet under way: the first node's events
 * connection (its commands' when lazy), and the nodes the slot map added. */
static void connect_all(leasehold_client *c)
{
    uint64_t now = clock_now_ms();
    for (size_t i = 0; i < c->node_count; i++) {
        node *n = c->nodes[i];
        if (conn_get_state(n->cmd) == CONN_DOWN && conn_wake_at(n->cmd) == UINT64_MAX)
            node_connect(n, n->cmd, now);
        if (c->cfg.original_timing)
            conn_close(n->sub); /* the original module had no events channel */
        else
            node_connect(n, n->sub, now);
    }
}

leasehold_client *leasehold_client_new(const leasehold_config *cfg, leasehold_error *err)
{
    error_clear(err);
    if (!cfg) {
        error_set(err, LEASEHOLD_EINVAL, "no configuration given");
        return NULL;
    }
    if (check_config(cfg, err) < 0)
        return NULL;
    url u;
    if (url_parse(cfg->url, &u, err) < 0)
        return NULL;
    if (cfg->password && u.password[0]) {
        error_set(err, LEASEHOLD_ECONFIG,
                  "the URL %s holds a password and one is given apart from it as well "
                  "(leasehold_config.password, --password-file, SNAKETRON_REDIS_PASSWORD): keep "
                  "one",
                  u.display);
        explicit_bzero(u.password, sizeof u.password);
        return NULL;
    }
    if (cfg->password) {
        if (strlen(cfg->password) >= sizeof u.password) {
            error_set(err, LEASEHOLD_ECONFIG, "password is too long (at most %zu bytes)",
                      sizeof u.password - 1);
            return NULL;
        }
        snprintf(u.password, sizeof u.password, "%s", cfg->password);
        u.has_password = true;
    }
    if (!u.sentinel && (cfg->sentinel_user || cfg->sentinel_password)) {
        error_set(err, LEASEHOLD_ECONFIG,
                  "sentinel_user or sentinel_password is set, but the URL %s is not a Sentinel "
                  "URL (redis+sentinel://)",
                  u.display);
        explicit_bzero(u.password, sizeof u.password);
        return NULL;
    }
    /* One TLS context serves whichever side speaks TLS: the master
     * (rediss+sentinel://), the Sentinels (sentinel_tls=yes), or both. */
    url tls_u = u;
    tls_u.tls = u.tls || (u.sentinel && u.sentinel_tls == 1);
    tls_ctx *tls;
    int rc = tls_ctx_make(&tls_u, cfg, &tls, err);
    explicit_bzero(tls_u.password, sizeof tls_u.password);
    if (rc < 0) {
        explicit_bzero(u.password, sizeof u.password);
        return NULL;
    }
    uint32_t command_timeout_ms =
        u.command_timeout_ms ? u.command_timeout_ms : cfg->command_timeout_ms;
    uint32_t connect_timeout_ms =
        u.connect_timeout_ms ? u.connect_timeout_ms : cfg->connect_timeout_ms;
    lease_config lc = client_lease_config(cfg);
    int min_replicas = cfg->min_replicas >= 0 ? cfg->min_replicas : u.sentinel || u.cluster ? 1 : 0;
    bool bad = lease_config_check(&lc, command_timeout_ms, err) < 0;
    uint32_t replica_timeout_ms =
        cfg->replica_timeout_ms ? cfg->replica_timeout_ms : command_timeout_ms * 2 / 5;
    if (!bad && min_replicas > 0 &&
        (replica_timeout_ms == 0 || replica_timeout_ms + 50 > command_timeout_ms) &&
        cfg->replica_timeout_ms) {
        error_set(err, LEASEHOLD_ECONFIG,
                  "replica_timeout_ms (%" PRIu32 ") must be at least 50 ms below "
                  "command_timeout_ms (%" PRIu32 "): WAIT must answer before the command "
                  "times out",
                  cfg->replica_timeout_ms, command_timeout_ms);
        bad = true;
    }
    if (bad) {
        tls_ctx_free(tls);
        explicit_bzero(u.password, sizeof u.password);
        return NULL;
    }

    leasehold_client *c = calloc(1, sizeof *c);
    if (!c) {
        tls_ctx_free(tls);
        explicit_bzero(u.password, sizeof u.password);
        error_set(err, LEASEHOLD_ENOMEM, "out of memory");
        return NULL;
    }
    c->wake_fd = -1;
    c->tls = tls;
    client_counters_init(&c->stats);
    c->stats_nodes_dirty = true;
    pthread_mutex_init(&c->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cond, &ca);
    pthread_condattr_destroy(&ca);
    c->cfg = *cfg;
    c->cfg.command_timeout_ms = command_timeout_ms;
    c->cfg.connect_timeout_ms = connect_timeout_ms;
    c->cfg.min_replicas = min_replicas;
    c->cfg.replica_timeout_ms = replica_timeout_ms ? replica_timeout_ms : 1;
    c->u = u;
    explicit_bzero(u.password, sizeof u.password);
    c->url_copy = strdup(cfg->url);
    c->identity = cfg->identity ? strdup(cfg->identity) : default_identity();
    c->cfg.url = c->url_copy;
    c->cfg.identity = c->identity;
    /* Consumed above: the caller's strings are not kept. */
    c->cfg.password = NULL;
    c->cfg.tls_ca_file = c->cfg.tls_ca_dir = c->cfg.tls_cert_file = NULL;
    c->cfg.tls_key_file = c->cfg.tls_server_name = NULL;
    c->cfg.sentinel_user = c->cfg.sentinel_password = NULL;
    c->rng = cfg->seed ? cfg->seed : client_random_u64();
    for (int sharded = 0; sharded < 2; sharded++)
        for (int k = 0; k < SCRIPT_KINDS; k++)
            sha1_hex(protocol_script(k, sharded), strlen(protocol_script(k, sharded)),
                     c->sha[sharded][k]);
    c->pfd = calloc(1 + NODE_CONNS, sizeof *c->pfd);
    c->pfd_conns = calloc(1 + NODE_CONNS, sizeof *c->pfd_conns);
    c->pfd_cap = c->pfd && c->pfd_conns ? 1 + NODE_CONNS : 0;
    c->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (!c->url_copy || !c->identity || c->wake_fd < 0 || !c->pfd_cap) {
        error_set(err, c->wake_fd < 0 ? -errno : LEASEHOLD_ENOMEM, "cannot set up the client: %s",
                  c->wake_fd < 0 ? strerror(errno) : "out of memory");
        client_destroy(c);
        return NULL;
    }

    conn_options opt = {.connect_timeout_ms = connect_timeout_ms,
                        .command_timeout_ms = command_timeout_ms,
                        .backoff_min_ms = 25,
                        .backoff_max_ms = 1000,
                        .seed = client_next_seed(c),
                        .tls = tls};
    if (tls && tls->insecure)
        client_log(c, LEASEHOLD_LOG_WARN,
                   "%s: TLS without verification (tls_insecure): the server is not "
                   "authenticated, so anyone on the path can pose as it; for tests only",
                   u.display);
    if (chanmap_init(&c->chans) < 0) {
        error_set(err, LEASEHOLD_ENOMEM, "out of memory");
        client_destroy(c);
        return NULL;
    }
    c->node_opt = opt;
    if (node_create(c, cfg->sentinel_user, cfg->sentinel_password, err) < 0) {
        client_destroy(c);
        return NULL;
    }
    if (!cfg->lazy_connect) {
        if (first_connect(c, err) < 0) {
            client_destroy(c);
            return NULL;
        }
        client_log(c, LEASEHOLD_LOG_INFO, "%s: connected", conn_display(c->nodes[0]->cmd));
        if (c->nodes[0]->sen)
            sentinel_watch(c->nodes[0]->sen, clock_now_ms());
    }
    connect_all(c);

    rc = pthread_create(&c->thread, NULL, client_loop_main, c);
    if (rc != 0) {
        error_set(err, -rc, "cannot start the I/O thread: %s", strerror(rc));
        client_destroy(c);
        return NULL;
    }
    atomic_store(&c->thread_running, true);
    return c;
}

void leasehold_client_free(leasehold_client *c)
{
    if (!c)
        return;
    if (client_on_loop_thread(c)) {
        client_log(c, LEASEHOLD_LOG_ERROR,
                   "leasehold_client_free() called from a callback of the same client: ignored");
        return;
    }
    pthread_mutex_lock(&c->mu);
    c->closing = true;
    c->shut_down = true;
    pthread_mutex_unlock(&c->mu);
    if (atomic_load(&c->thread_running)) {
        client_wake(c); /* the loop ends every election itself */
        pthread_join(c->thread, NULL);
    }
    fail_queries(c);
    /* A thread still inside leasehold_election_free() or
     * leasehold_holder_get() waits on the client's condition: let it leave
     * before the two are destroyed. */
    pthread_mutex_lock(&c->mu);
    while (c->waiters > 0)
        pthread_cond_wait(&c->cond, &c->mu);
    pthread_mutex_unlock(&c->mu);
    client_destroy(c);
}
