/* cluster.c — Redis Cluster's slots, the slot map's replies and the
 * redirections (see cluster.h). */
#include "cluster.h"

#include "conn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool cluster_hashed_part(const char *key, const char **part, size_t *len)
{
    const char *open = strchr(key, '{');
    const char *close = open ? strchr(open + 1, '}') : NULL;
    if (close && close > open + 1) {
        *part = open + 1;
        *len = (size_t)(close - open - 1);
        return true;
    }
    *part = key;
    *len = strlen(key);
    return false;
}

/* CRC16-CCITT (XMODEM: polynomial 0x1021, initial 0), bit by bit: keys are
 * short and hashed once per campaign or redirection. */
static unsigned crc16(const char *s, size_t len)
{
    unsigned crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (unsigned)(unsigned char)s[i] << 8;
        for (int b = 0; b < 8; b++)
            crc = crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1;
        crc &= 0xffff;
    }
    return crc;
}

unsigned cluster_key_slot(const char *key)
{
    const char *part;
    size_t len;
    cluster_hashed_part(key, &part, &len);
    return crc16(part, len) % CLUSTER_SLOTS;
}

void cluster_map_free(cluster_map *map)
{
    free(map->ranges);
    map->ranges = NULL;
    map->count = 0;
}

/* Appends a range; false when out of memory. */
static bool map_add(cluster_map *map, long long first, long long last, const char *host,
                    size_t host_len, long long port)
{
    cluster_range *r = realloc(map->ranges, (map->count + 1) * sizeof *r);
    if (!r)
        return false;
    map->ranges = r;
    r = &map->ranges[map->count++];
    r->first = (unsigned)first;
    r->last = (unsigned)last;
    if (host_len >= sizeof r->host)
        host_len = sizeof r->host - 1;
    memcpy(r->host, host, host_len);
    r->host[host_len] = '\0';
    r->port = (uint16_t)port;
    return true;
}

static bool is_string(const conn_reply *r)
{
    return r->type == CONN_REPLY_STRING || r->type == CONN_REPLY_STATUS;
}

/* An address as a node reports it: "" and "?" stand for the asked node's. */
static void node_host(const conn_reply *h, const char *asked_host, const char **host, size_t *len)
{
    if (!h || !is_string(h) || h->len == 0 || (h->len == 1 && h->str[0] == '?')) {
        *host = asked_host;
        *len = strlen(asked_host);
    } else {
        *host = h->str;
        *len = h->len;
    }
}

static bool valid_slot_range(long long first, long long last)
{
    return first >= 0 && last >= first && last < CLUSTER_SLOTS;
}

/* The value of field name in a flat [name, value, ...] array, or NULL. */
static const conn_reply *field(const conn_reply *r, const char *name)
{
    if (r->type != CONN_REPLY_ARRAY)
        return NULL;
    for (size_t i = 0; i + 1 < r->elements; i += 2)
        if (is_string(&r->element[i]) && strcmp(r->element[i].str, name) == 0)
            return &r->element[i + 1];
    return NULL;
}

static int fail(char *why, size_t why_size, const char *msg)
{
    snprintf(why, why_size, "%s", msg);
    return -1;
}

int cluster_parse_shards(const conn_reply *r, bool tls, const char *asked_host, cluster_map *map,
                         char *why, size_t why_size)
{
    map->ranges = NULL;
    map->count = 0;
    if (r->type != CONN_REPLY_ARRAY)
        return fail(why, why_size, "CLUSTER SHARDS did not answer with a list of shards");
    for (size_t s = 0; s < r->elements; s++) {
        const conn_reply *shard = &r->element[s];
        const conn_reply *slots = field(shard, "slots"), *nodes = field(shard, "nodes");
        if (!slots || !nodes || slots->type != CONN_REPLY_ARRAY ||
            nodes->type != CONN_REPLY_ARRAY || slots->elements % 2 != 0) {
            cluster_map_free(map);
            return fail(why, why_size, "CLUSTER SHARDS: a shard without slots or nodes");
        }
        /* A master that failed over stays listed as a master of its shard
         * until it is back: the online one serves the slots. */
        const conn_reply *master = NULL;
        bool online = false;
        for (size_t i = 0; i < nodes->elements && !online; i++) {
            const conn_reply *role = field(&nodes->element[i], "role");
            const conn_reply *health = field(&nodes->element[i], "health");
            if (!role || !is_string(role) || strcmp(role->str, "master") != 0)
                continue;
            online = health && is_string(health) && strcmp(health->str, "online") == 0;
            if (online || !master)
                master = &nodes->element[i];
        }
        if (!master)
            continue; /* a shard losing its master: asked again later */
        const conn_reply *port = tls ? field(master, "tls-port") : NULL;
        if (!port)
            port = field(master, "port");
        if (!port || port->type != CONN_REPLY_INTEGER || port->integer <= 0 ||
            port->integer > 65535)
            continue;
        const conn_reply *ip = field(master, "endpoint");
        if (!ip || !is_string(ip) || ip->len == 0 || (ip->len == 1 && ip->str[0] == '?'))
            ip = field(master, "ip");
        const char *host;
        size_t host_len;
        node_host(ip, asked_host, &host, &host_len);
        for (size_t i = 0; i + 1 < slots->elements; i += 2) {
            const conn_reply *a = &slots->element[i], *b = &slots->element[i + 1];
            if (a->type != CONN_REPLY_INTEGER || b->type != CONN_REPLY_INTEGER ||
                !valid_slot_range(a->integer, b->integer)) {
                cluster_map_free(map);
                return fail(why, why_size, "CLUSTER SHARDS: a slot range out of bounds");
            }
            if (!map_add(map, a->integer, b->integer, host, host_len, port->integer)) {
                cluster_map_free(map);
                return fail(why, why_size, "out of memory");
            }
        }
    }
    return 0;
}

int cluster_parse_slots(const conn_reply *r, const char *asked_host, cluster_map *map, char *why,
                        size_t why_size)
{
    map->ranges = NULL;
    map->count = 0;
    if (r->type != CONN_REPLY_ARRAY)
        return fail(why, why_size, "CLUSTER SLOTS did not answer with a list of slot ranges");
    for (size_t i = 0; i < r->elements; i++) {
        const conn_reply *e = &r->element[i];
        if (e->type != CONN_REPLY_ARRAY || e->elements < 3 ||
            e->element[0].type != CONN_REPLY_INTEGER || e->element[1].type != CONN_REPLY_INTEGER ||
            !valid_slot_range(e->element[0].integer, e->element[1].integer) ||
            e->element[2].type != CONN_REPLY_ARRAY || e->element[2].elements < 2 ||
            e->element[2].element[1].type != CONN_REPLY_INTEGER ||
            e->element[2].element[1].integer <= 0 || e->element[2].element[1].integer > 65535) {
            cluster_map_free(map);
            return fail(why, why_size, "CLUSTER SLOTS: a malformed slot range");
        }
        const conn_reply *m = &e->element[2];
        const char *host;
        size_t host_len;
        node_host(&m->element[0], asked_host, &host, &host_len);
        if (!map_add(map, e->element[0].integer, e->element[1].integer, host, host_len,
                     m->element[1].integer)) {
            cluster_map_free(map);
            return fail(why, why_size, "out of memory");
        }
    }
    return 0;
}

bool cluster_parse_redirect(const char *err, const char *asked_host, bool *ask, unsigned *slot,
                            char host[256], uint16_t *port)
{
    const char *p;
    if (strncmp(err, "MOVED ", 6) == 0) {
        *ask = false;
        p = err + 6;
    } else if (strncmp(err, "ASK ", 4) == 0) {
        *ask = true;
        p = err + 4;
    } else {
        return false;
    }
    char *end;
    if (*p < '0' || *p > '9') /* strtoul would take blanks and signs */
        return false;
    unsigned long s = strtoul(p, &end, 10);
    if (end == p || *end != ' ' || s >= CLUSTER_SLOTS)
        return false;
    const char *addr = end + 1;
    const char *colon = strrchr(addr, ':');
    if (!colon)
        return false;
    if (colon[1] < '0' || colon[1] > '9')
        return false;
    unsigned long pt = strtoul(colon + 1, &end, 10);
    if (end == colon + 1 || *end != '\0' || pt == 0 || pt > 65535)
        return false;
    const char *h = addr;
    size_t len = (size_t)(colon - addr);
    if (len >= 2 && h[0] == '[' && h[len - 1] == ']') {
        h++;
        len -= 2;
    }
    if (len == 0) {
        h = asked_host;
        len = strlen(asked_host);
    }
    if (len >= 256)
        return false;
    memcpy(host, h, len);
    host[len] = '\0';
    *slot = (unsigned)s;
    *port = (uint16_t)pt;
    return true;
}
