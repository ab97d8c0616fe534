/* url.h — parsing redis://, rediss:// and unix:// URLs. */
#ifndef LEASEHOLD_URL_H
#define LEASEHOLD_URL_H

#include <stdint.h>

#include "leasehold.h"

enum url_kind { URL_TCP, URL_UNIX };

/* At most this many Sentinels in a redis+sentinel:// URL, or seed nodes in
 * a redis+cluster:// URL. */
#define URL_HOSTS_MAX 16

/* A host and port, as a Sentinel or Cluster URL lists them. */
typedef struct url_endpoint {
    char host[256]; /* name or address, IPv6 without brackets */
    uint16_t port;
} url_endpoint;

/* The TLS settings a rediss:// URL's query may give: strings empty and
 * insecure -1 when absent. */
typedef struct url_tls {
    char ca_file[512];
    char ca_dir[512];
    char cert_file[512];
    char key_file[512];
    char server_name[256];
    int insecure; /* -1: not given; 0 or 1 */
} url_tls;

/*
 * A parsed URL.  Fields not given in the URL are empty / zero:
 * port defaults to 6379, db to 0, the timeouts to 0 ("not given").
 * `display` is the URL as messages show it, with the password replaced by
 * "***", so a message never leaks a secret.
 */
typedef struct url {
    enum url_kind kind;
    char host[256];     /* TCP: name or address, IPv6 without brackets */
    uint16_t port;      /* TCP */
    char path[108];     /* unix: socket path (sun_path limit) */
    char user[128];     /* empty: no user (AUTH <password> only) */
    char password[512]; /* empty: no AUTH */
    bool has_password;
    int db;                      /* SELECT db when non-zero */
    uint32_t connect_timeout_ms; /* from ?connect_timeout_ms=, 0 if absent */
    uint32_t command_timeout_ms; /* from ?command_timeout_ms=, 0 if absent */
    bool tls;                    /* rediss:// */
    url_tls tls_opt;             /* rediss:// only: ?tls_ca_file=...&tls_insecure=yes */
    /* redis+sentinel:// and rediss+sentinel://: the Sentinels to ask for the
     * master named master_name.  host and port are then empty until a
     * Sentinel has named the master (url_sentinel_master). */
    bool sentinel;
    char master_name[128];
    /* redis+cluster:// and rediss+cluster://: the seed nodes to ask for the
     * slot map.  host and port are empty: each node's URL is made by
     * url_cluster_node. */
    bool cluster;
    url_endpoint hosts[URL_HOSTS_MAX]; /* the Sentinels, or the Cluster's seed nodes */
    int host_count;
    int sentinel_tls; /* ?sentinel_tls=yes|no; -1: not given (as the master: tls) */
    char display[512];
} url;

/*
 * Parses
 *   redis://[user[:password]@]host[:port][/db][?connect_timeout_ms=N&command_timeout_ms=N]
 *   rediss://... the same, over TLS, and the query may also hold tls_ca_file,
 *                tls_ca_dir, tls_cert_file, tls_key_file, tls_server_name
 *                (percent-encoded) and tls_insecure=yes|no
 *   unix:///path/to/redis.sock[?db=N&connect_timeout_ms=N&command_timeout_ms=N]
 *   redis+sentinel://[user[:password]@]host[:port][,host[:port]...]/master_name[/db][?query]
 *   rediss+sentinel://... the same, the master over TLS; ?sentinel_tls=yes|no
 *                says whether the Sentinels speak TLS too (default: as the master)
 *   redis+cluster://[user[:password]@]host[:port][,host[:port]...][/][?query]
 *   rediss+cluster://... the same, over TLS (every node)
 * A Sentinel's port defaults to 26379; the user and password are the
 * master's (a Sentinel's own come from the configuration).  A Cluster
 * seed's port defaults to 6379; a Cluster has no database but 0, so its
 * URL names none.
 * Userinfo and path may be percent-encoded.  host may be [IPv6].  On error
 * returns LEASEHOLD_EURL with a message naming the URL (password hidden) and
 * what is wrong with it; never reads past the string.  Thread-safe.
 */
int url_parse(const char *s, url *out, leasehold_error *err);

/* The URL of the master a Sentinel named: sentinel_url's user, password,
 * database, timeouts and TLS settings with host and port set, displayed as
 * "redis://host:port (master NAME)".  host is cut to fit. */
void url_sentinel_master(const url *sentinel_url, const char *host, uint16_t port, url *out);

/* The URL of the Cluster node host:port: cluster_url's user, password,
 * timeouts and TLS settings, displayed as "redis://host:port (cluster
 * node)".  host is cut to fit. */
void url_cluster_node(const url *cluster_url, const char *host, uint16_t port, url *out);

/* The URL of Sentinel i of sentinel_url: its host and port, TLS as
 * sentinel_tls says (with the URL's TLS settings), with user and password
 * (either may be NULL or empty: no AUTH), no database. */
void url_sentinel_node(const url *sentinel_url, int i, const char *user, const char *password,
                       url *out);

#endif
