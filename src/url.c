/* url.c — parsing redis://, rediss:// and unix:// URLs into a struct url.
 *
 * The parser is strict: anything it does not understand is an error that
 * names the URL and the problem, never a guess.  Every message shows the URL
 * with its password replaced by "***" (and control characters escaped), so a
 * secret never reaches a log, whatever is wrong with the URL.
 */
#include "url.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "error.h"

#define URL_MAX_LEN     2048    /* longer input is refused before parsing */
#define URL_SHOWN_MAX   120     /* characters of a bad URL quoted in a message */
#define URL_TIMEOUT_MAX 600000u /* ten minutes */

/* What the parser works on: the input and where its password lies, so that
 * every message can hide it. */
typedef struct parse {
    const char *s;
    size_t pass_begin, pass_end; /* the password's bytes in s; empty if none */
    leasehold_error *err;
} parse;

/* Finds the password in s by the URL grammar alone, before anything is
 * validated: after "scheme://", the userinfo ends at the last '@' and the
 * password is what follows its first ':'.  The last '@' (not the first) so
 * that a password holding a raw '@' or '/' is still hidden. */
static void locate_password(parse *p)
{
    p->pass_begin = p->pass_end = 0;
    const char *sep = strstr(p->s, "://");
    if (!sep)
        return;
    const char *auth = sep + 3;
    const char *at = strrchr(auth, '@');
    if (!at)
        return;
    const char *colon = memchr(auth, ':', (size_t)(at - auth));
    if (!colon)
        return;
    p->pass_begin = (size_t)(colon + 1 - p->s);
    p->pass_end = (size_t)(at - p->s);
}

/* Writes s[from..to) to out (of size cap) as it may be shown: the password
 * as "***", bytes outside printable ASCII as \xNN, cut with "..." after
 * `limit` input characters.  Always NUL-terminates. */
static void show(const parse *p, size_t from, size_t to, size_t limit, char *out, size_t cap)
{
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = from; i < to && n + 8 < cap; i++) {
        if (i - from >= limit) {
            n += (size_t)snprintf(out + n, cap - n, "...");
            break;
        }
        unsigned char ch = (unsigned char)p->s[i];
        if (p->pass_end > p->pass_begin && i == p->pass_begin) {
            n += (size_t)snprintf(out + n, cap - n, "***");
            i = p->pass_end - 1;
        } else if (ch < 0x20 || ch >= 0x7f) {
            n += (size_t)snprintf(out + n, cap - n, "\\x%02x", ch);
        } else {
            out[n++] = (char)ch;
            out[n] = '\0';
        }
    }
}

/* Fails the parse with LEASEHOLD_EURL: `invalid URL "<shown>": <problem>`. */
__attribute__((format(printf, 2, 3))) static int fail(const parse *p, const char *fmt, ...)
{
    char shown[URL_SHOWN_MAX * 4 + 8];
    char problem[200];
    show(p, 0, strlen(p->s), URL_SHOWN_MAX, shown, sizeof shown);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(problem, sizeof problem, fmt, ap);
    va_end(ap);
    return error_set(p->err, LEASEHOLD_EURL, "invalid URL \"%s\": %s", shown, problem);
}

/* Quotes a piece of the URL that holds no password (a port, a parameter
 * name...) for a message, escaped and cut like the URL itself. */
static const char *quote(const char *piece, size_t len, char *buf, size_t cap)
{
    parse sub = {.s = piece};
    show(&sub, 0, len, 40, buf, cap);
    return buf;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes s[0..len) into out (cap bytes with the NUL).  `what`
 * names the field in messages; a password's bytes are never quoted. */
static int decode(const parse *p, const char *s, size_t len, char *out, size_t cap,
                  const char *what, bool secret)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '%') {
            int hi = i + 1 < len ? hexval(s[i + 1]) : -1;
            int lo = i + 2 < len ? hexval(s[i + 2]) : -1;
            if (hi < 0 || lo < 0) {
                if (secret)
                    return fail(p,
                                "bad percent-encoding in the %s ('%%' must be followed by "
                                "two hex digits)",
                                what);
                char q[200];
                return fail(p,
                            "bad percent-encoding in the %s at \"%s\" ('%%' must be followed "
                            "by two hex digits)",
                            what, quote(s + i, len - i < 3 ? len - i : 3, q, sizeof q));
            }
            c = (char)(hi * 16 + lo);
            if (c == '\0')
                return fail(p, "the %s contains a percent-encoded NUL (%%00)", what);
            i += 2;
        }
        if (n + 1 >= cap)
            return fail(p, "the %s is too long (at most %zu bytes)", what, cap - 1);
        out[n++] = c;
    }
    out[n] = '\0';
    return 0;
}

/* Parses a decimal number made of digits only (no sign, no spaces) into
 * *v; false if empty, not all digits, or above max. */
static bool parse_uint(const char *s, size_t len, unsigned long long max, unsigned long long *v)
{
    if (len == 0)
        return false;
    unsigned long long acc = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        unsigned d = (unsigned)(s[i] - '0');
        if (acc > (max - d) / 10)
            return false;
        acc = acc * 10 + d;
    }
    *v = acc;
    return true;
}

static bool all_digits(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return len > 0;
}

/* The database index: digits only, 0 to INT_MAX. */
static int parse_db(const parse *p, const char *s, size_t len, int *db)
{
    char q[200];
    unsigned long long v;
    if (!all_digits(s, len))
        return fail(p, "database \"%s\" is not a non-negative whole number",
                    quote(s, len, q, sizeof q));
    if (!parse_uint(s, len, INT_MAX, &v))
        return fail(p, "database %s is out of range (0 to %d)", quote(s, len, q, sizeof q),
                    INT_MAX);
    *db = (int)v;
    return 0;
}

/* A timeout parameter: milliseconds, 1 to URL_TIMEOUT_MAX. */
static int parse_timeout(const parse *p, const char *name, const char *s, size_t len, uint32_t *ms)
{
    char q[200];
    unsigned long long v;
    if (!parse_uint(s, len, URL_TIMEOUT_MAX, &v) || v == 0)
        return fail(p, "%s must be a whole number of milliseconds from 1 to %u, not \"%s\"", name,
                    URL_TIMEOUT_MAX, quote(s, len, q, sizeof q));
    *ms = (uint32_t)v;
    return 0;
}

/* The TLS query parameters, in the order of url_tls. */
enum {
    TLS_CA_FILE,
    TLS_CA_DIR,
    TLS_CERT_FILE,
    TLS_KEY_FILE,
    TLS_SERVER_NAME,
    TLS_INSECURE,
    TLS_PARAMS
};
static const char *const tls_params[TLS_PARAMS] = {"tls_ca_file",     "tls_ca_dir",
                                                   "tls_cert_file",   "tls_key_file",
                                                   "tls_server_name", "tls_insecure"};

/* The TLS parameter named q[0..len), or -1. */
static int tls_param(const char *q, size_t len)
{
    for (int i = 0; i < TLS_PARAMS; i++)
        if (strlen(tls_params[i]) == len && memcmp(q, tls_params[i], len) == 0)
            return i;
    return -1;
}

/* The value of TLS parameter i: a path or name (percent-decoded), or
 * yes/no for tls_insecure. */
static int parse_tls_param(const parse *p, int i, const char *val, size_t len, url_tls *t)
{
    char q[200];
    char *dst[] = {t->ca_file, t->ca_dir, t->cert_file, t->key_file, t->server_name};
    size_t cap[] = {sizeof t->ca_file, sizeof t->ca_dir, sizeof t->cert_file, sizeof t->key_file,
                    sizeof t->server_name};
    if (i == TLS_INSECURE) {
        if ((len == 3 && memcmp(val, "yes", 3) == 0) || (len == 1 && val[0] == '1'))
            t->insecure = 1;
        else if ((len == 2 && memcmp(val, "no", 2) == 0) || (len == 1 && val[0] == '0'))
            t->insecure = 0;
        else
            return fail(p, "tls_insecure must be yes or no, not \"%s\"",
                        quote(val, len, q, sizeof q));
        return 0;
    }
    if (len == 0)
        return fail(p, "%s is empty", tls_params[i]);
    return decode(p, val, len, dst[i], cap[i], tls_params[i], false);
}

/* Parses "name=value&..." (after the '?', up to the end).  unix:// URLs
 * also take db=N, redis:// URLs carry the database in the path, rediss://
 * URLs take the TLS settings. */
static int parse_query(const parse *p, const char *q, url *out)
{
    char buf[200];
    bool seen_db = false, seen_connect = false, seen_command = false, seen_tls[TLS_PARAMS] = {0},
         seen_sentinel_tls = false;
    if (*q == '\0')
        return fail(p, "empty query after '?'");
    while (true) {
        size_t len = strcspn(q, "&");
        const char *eq = memchr(q, '=', len);
        if (len == 0)
            return fail(p, "empty query parameter (stray '&')");
        if (!eq)
            return fail(p, "query parameter \"%s\" has no value (expected name=value)",
                        quote(q, len, buf, sizeof buf));
        size_t name_len = (size_t)(eq - q);
        const char *val = eq + 1;
        size_t val_len = len - name_len - 1;
        bool *seen;
        int rc;
        int tls = tls_param(q, name_len);
        if (tls >= 0 && !out->tls && !out->sentinel) {
            return fail(p, "query parameter \"%s\" needs a rediss:// URL (TLS)", tls_params[tls]);
        } else if (tls >= 0) {
            seen = &seen_tls[tls];
            rc = *seen ? 0 : parse_tls_param(p, tls, val, val_len, &out->tls_opt);
        } else if (name_len == 18 && memcmp(q, "connect_timeout_ms", 18) == 0) {
            seen = &seen_connect;
            rc = parse_timeout(p, "connect_timeout_ms", val, val_len, &out->connect_timeout_ms);
        } else if (name_len == 18 && memcmp(q, "command_timeout_ms", 18) == 0) {
            seen = &seen_command;
            rc = parse_timeout(p, "command_timeout_ms", val, val_len, &out->command_timeout_ms);
        } else if (name_len == 12 && memcmp(q, "sentinel_tls", 12) == 0 && out->sentinel) {
            seen = &seen_sentinel_tls;
            rc = 0;
            if ((val_len == 3 && memcmp(val, "yes", 3) == 0) || (val_len == 1 && val[0] == '1'))
                out->sentinel_tls = 1;
            else if ((val_len == 2 && memcmp(val, "no", 2) == 0) || (val_len == 1 && val[0] == '0'))
                out->sentinel_tls = 0;
            else
                rc = fail(p, "sentinel_tls must be yes or no, not \"%s\"",
                          quote(val, val_len, buf, sizeof buf));
        } else if (name_len == 2 && memcmp(q, "db", 2) == 0 && out->kind == URL_UNIX) {
            seen = &seen_db;
            rc = parse_db(p, val, val_len, &out->db);
        } else if (name_len == 2 && memcmp(q, "db", 2) == 0) {
            if (out->cluster)
                return fail(p, "unknown query parameter \"db\" (a Cluster has only database 0)");
            return fail(p, out->sentinel ? "unknown query parameter \"db\" (a Sentinel URL gives "
                                           "the database after the master name: "
                                           "redis+sentinel://host/mymaster/N)"
                                         : "unknown query parameter \"db\" (a redis:// URL gives "
                                           "the database in its path: redis://host:port/N)");
        } else {
            return fail(p,
                        "unknown query parameter \"%s\" (known: %sconnect_timeout_ms, "
                        "command_timeout_ms%s%s)",
                        quote(q, name_len, buf, sizeof buf), out->kind == URL_UNIX ? "db, " : "",
                        out->sentinel ? ", sentinel_tls" : "",
                        out->tls ? ", tls_ca_file, tls_ca_dir, tls_cert_file, tls_key_file, "
                                   "tls_server_name, tls_insecure"
                                 : "");
        }
        if (*seen)
            return fail(p, "query parameter \"%s\" is given twice",
                        quote(q, name_len, buf, sizeof buf));
        if (rc)
            return rc;
        *seen = true;
        if (q[len] == '\0')
            return 0;
        q += len + 1;
    }
}

/* user[:password] before the '@'.  A user without a password cannot be
 * sent in AUTH, so it is refused rather than silently ignored. */
static int parse_userinfo(const parse *p, const char *s, size_t len, url *out)
{
    char q[200];
    if (len == 0)
        return fail(p, "nothing before '@' (expected user:password@ or :password@)");
    const char *colon = memchr(s, ':', len);
    if (!colon)
        return fail(p,
                    "user \"%s\" is given without a password (write user:password@ or "
                    ":password@)",
                    quote(s, len, q, sizeof q));
    size_t user_len = (size_t)(colon - s);
    int rc = decode(p, s, user_len, out->user, sizeof out->user, "user name", false);
    if (rc)
        return rc;
    rc = decode(p, colon + 1, len - user_len - 1, out->password, sizeof out->password, "password",
                true);
    if (rc)
        return rc;
    out->has_password = out->user[0] != '\0' || out->password[0] != '\0';
    return 0;
}

static bool host_char(char c)
{
    return isalnum((unsigned char)c) || c == '-' || c == '.' || c == '_';
}

/* host[:port][/db] of a redis:// URL, s[0..len) (the query excluded);
 * the port is default_port when not given. */
static int parse_hostport(const parse *p, const char *s, size_t len, uint16_t default_port,
                          url *out)
{
    char q[200];
    const char *end = s + len;
    const char *rest;
    if (len > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', len);
        if (!close)
            return fail(p, "'[' opens an IPv6 address that is never closed with ']'");
        size_t host_len = (size_t)(close - s - 1);
        if (host_len == 0)
            return fail(p, "empty host (nothing between '[' and ']')");
        if (host_len >= sizeof out->host)
            return fail(p, "host is too long");
        memcpy(out->host, s + 1, host_len);
        out->host[host_len] = '\0';
        struct in6_addr addr;
        if (inet_pton(AF_INET6, out->host, &addr) != 1)
            return fail(p, "\"%s\" between '[' and ']' is not an IPv6 address",
                        quote(s + 1, host_len, q, sizeof q));
        rest = close + 1;
        if (rest < end && *rest != ':' && *rest != '/')
            return fail(p, "unexpected \"%s\" after the IPv6 address (expected :port or /db)",
                        quote(rest, (size_t)(end - rest), q, sizeof q));
    } else {
        size_t host_len = strcspn(s, ":/");
        if (host_len > len)
            host_len = len;
        if (host_len == 0)
            return fail(p, "empty host");
        if (host_len >= sizeof out->host)
            return fail(p, "host is too long (at most %zu bytes)", sizeof out->host - 1);
        for (size_t i = 0; i < host_len; i++)
            if (!host_char(s[i]))
                return fail(p,
                            "host \"%s\" contains '%c', which no host name or IPv4 "
                            "address has (IPv6 goes in brackets: [::1])",
                            quote(s, host_len, q, sizeof q), s[i]);
        memcpy(out->host, s, host_len);
        out->host[host_len] = '\0';
        rest = s + host_len;
    }

    out->port = default_port;
    if (rest < end && *rest == ':') {
        rest++;
        size_t port_len = strcspn(rest, "/");
        if (port_len > (size_t)(end - rest))
            port_len = (size_t)(end - rest);
        unsigned long long v;
        if (!all_digits(rest, port_len))
            return fail(p, "port \"%s\" is not a number", quote(rest, port_len, q, sizeof q));
        if (!parse_uint(rest, port_len, 65535, &v) || v == 0)
            return fail(p, "port %s is out of range (1 to 65535)",
                        quote(rest, port_len, q, sizeof q));
        out->port = (uint16_t)v;
        rest += port_len;
    }
    if (rest < end && *rest == '/') {
        rest++;
        if (rest < end)
            return parse_db(p, rest, (size_t)(end - rest), &out->db);
    }
    return 0;
}

/* The userinfo at *rest, up to the last '@' before end, if there is one;
 * *rest then moves past the '@'. */
static int parse_userinfo_before(const parse *p, const char **rest, const char *end, url *out)
{
    const char *at = NULL;
    for (const char *c = *rest; c < end; c++)
        if (*c == '@')
            at = c;
    if (!at)
        return 0;
    int rc = parse_userinfo(p, *rest, (size_t)(at - *rest), out);
    if (rc == 0)
        *rest = at + 1;
    return rc;
}

/* redis[s]://[user[:password]@]host[:port][/db][?query] after "://". */
static int parse_redis(const parse *p, const char *rest, bool tls, url *out)
{
    out->kind = URL_TCP;
    out->tls = tls;
    out->tls_opt.insecure = -1;
    const char *query = strchr(rest, '?');
    const char *end = query ? query : rest + strlen(rest);
    int rc = parse_userinfo_before(p, &rest, end, out);
    if (rc)
        return rc;
    rc = parse_hostport(p, rest, (size_t)(end - rest), 6379, out);
    if (rc)
        return rc;
    return query ? parse_query(p, query + 1, out) : 0;
}

/* The master name of a Sentinel URL, s[0..len): percent-decoded, with no
 * space or control character (Sentinel's own names have none). */
static int parse_master_name(const parse *p, const char *s, size_t len, url *out)
{
    if (len == 0)
        return fail(p, "no master name (expected redis+sentinel://host:26379/mymaster)");
    int rc = decode(p, s, len, out->master_name, sizeof out->master_name, "master name", false);
    if (rc)
        return rc;
    for (const char *c = out->master_name; *c; c++)
        if ((unsigned char)*c <= 0x20 || *c == 0x7f)
            return fail(p, "the master name contains a space or a control character");
    return 0;
}

/* The comma-separated host[:port] list s[0..len) into out->hosts; what
 * names the list's entries in messages. */
static int parse_hosts(const parse *p, const char *s, size_t len, uint16_t default_port,
                       const char *what, url *out)
{
    const char *host = s, *end = s + len;
    while (true) {
        size_t n = (size_t)(end - host);
        const char *comma = memchr(host, ',', n);
        if (comma)
            n = (size_t)(comma - host);
        if (n == 0)
            return fail(p, "empty %s address (a stray ',' or nothing before '/')", what);
        if (out->host_count == URL_HOSTS_MAX)
            return fail(p, "more than %d %ss", URL_HOSTS_MAX, what);
        url one = {0};
        int rc = parse_hostport(p, host, n, default_port, &one);
        if (rc)
            return rc;
        url_endpoint *ep = &out->hosts[out->host_count++];
        memcpy(ep->host, one.host, sizeof ep->host);
        ep->port = one.port;
        if (!comma)
            return 0;
        host = comma + 1;
    }
}

/* redis[s]+sentinel://[user[:password]@]host[:port],.../name[/db][?query]
 * after "://". */
static int parse_sentinel(const parse *p, const char *rest, bool tls, url *out)
{
    out->kind = URL_TCP;
    out->tls = tls;
    out->tls_opt.insecure = -1;
    out->sentinel = true;
    out->sentinel_tls = -1;
    const char *query = strchr(rest, '?');
    const char *end = query ? query : rest + strlen(rest);
    int rc = parse_userinfo_before(p, &rest, end, out);
    if (rc)
        return rc;
    const char *slash = memchr(rest, '/', (size_t)(end - rest));
    if (!slash)
        return fail(p, "no master name (expected redis+sentinel://host:26379/mymaster)");
    rc = parse_hosts(p, rest, (size_t)(slash - rest), 26379, "Sentinel", out);
    if (rc)
        return rc;
    const char *name = slash + 1;
    size_t name_len = strcspn(name, "/?");
    if (name + name_len > end)
        name_len = (size_t)(end - name);
    rc = parse_master_name(p, name, name_len, out);
    if (rc)
        return rc;
    const char *db = name + name_len;
    if (db < end && *db == '/' && db + 1 < end) {
        rc = parse_db(p, db + 1, (size_t)(end - db - 1), &out->db);
        if (rc)
            return rc;
    }
    rc = query ? parse_query(p, query + 1, out) : 0;
    if (rc)
        return rc;
    const url_tls *t = &out->tls_opt;
    bool tls_given = t->ca_file[0] || t->ca_dir[0] || t->cert_file[0] || t->key_file[0] ||
                     t->server_name[0] || t->insecure >= 0;
    if (tls_given && !out->tls && out->sentinel_tls != 1)
        return fail(p, "TLS query parameters need rediss+sentinel:// or sentinel_tls=yes");
    return 0;
}

/* redis[s]+cluster://[user[:password]@]host[:port],...[/][?query] after
 * "://". */
static int parse_cluster(const parse *p, const char *rest, bool tls, url *out)
{
    out->kind = URL_TCP;
    out->tls = tls;
    out->tls_opt.insecure = -1;
    out->cluster = true;
    const char *query = strchr(rest, '?');
    const char *end = query ? query : rest + strlen(rest);
    int rc = parse_userinfo_before(p, &rest, end, out);
    if (rc)
        return rc;
    const char *slash = memchr(rest, '/', (size_t)(end - rest));
    if (slash && slash + 1 < end)
        return fail(p, "a Cluster URL names no database (a Cluster has only database 0): "
                       "nothing may follow the '/'");
    rc = parse_hosts(p, rest, (size_t)((slash ? slash : end) - rest), 6379, "seed node", out);
    if (rc)
        return rc;
    return query ? parse_query(p, query + 1, out) : 0;
}

/* from with host:port as its one server (no Sentinels, no seed nodes),
 * displayed as "redis[s]://host:port (what)". */
static void one_server(const url *from, const char *host, uint16_t port, const char *what, url *out)
{
    *out = *from;
    out->sentinel = out->cluster = false;
    out->host_count = 0;
    snprintf(out->host, sizeof out->host, "%s", host);
    out->port = port;
    bool v6 = strchr(out->host, ':') != NULL;
    snprintf(out->display, sizeof out->display, "%s://%s%s%s:%u (%s)",
             out->tls ? "rediss" : "redis", v6 ? "[" : "", out->host, v6 ? "]" : "", port, what);
}

void url_cluster_node(const url *cluster_url, const char *host, uint16_t port, url *out)
{
    one_server(cluster_url, host, port, "cluster node", out);
}

void url_sentinel_master(const url *sentinel_url, const char *host, uint16_t port, url *out)
{
    char what[sizeof sentinel_url->master_name + 8];
    snprintf(what, sizeof what, "master %s", sentinel_url->master_name);
    one_server(sentinel_url, host, port, what, out);
}

void url_sentinel_node(const url *sentinel_url, int i, const char *user, const char *password,
                       url *out)
{
    const url_endpoint *ep = &sentinel_url->hosts[i];
    *out = *sentinel_url;
    out->sentinel = false;
    out->host_count = 0;
    out->db = 0;
    out->tls = sentinel_url->sentinel_tls < 0 ? sentinel_url->tls : sentinel_url->sentinel_tls;
    snprintf(out->user, sizeof out->user, "%s", user ? user : "");
    snprintf(out->password, sizeof out->password, "%s", password ? password : "");
    out->has_password = out->user[0] != '\0' || out->password[0] != '\0';
    memcpy(out->host, ep->host, sizeof out->host);
    out->port = ep->port;
    bool v6 = strchr(out->host, ':') != NULL;
    snprintf(out->display, sizeof out->display, "Sentinel %s%s%s:%u", v6 ? "[" : "", out->host,
             v6 ? "]" : "", ep->port);
}

/* unix:///absolute/path[?query] after "unix://". */
static int parse_unix(const parse *p, const char *rest, url *out)
{
    out->kind = URL_UNIX;
    size_t len = strcspn(rest, "?");
    if (len == 0)
        return fail(p, "no socket path (expected unix:///path/to/redis.sock)");
    if (rest[0] != '/') {
        if (memchr(rest, '@', len))
            return fail(p, "unix:// URLs take no user or password");
        return fail(p, "unix:// URLs take no host; the path must be absolute "
                       "(unix:///path/to/redis.sock, three slashes)");
    }
    int rc = decode(p, rest, len, out->path, sizeof out->path, "socket path", false);
    if (rc)
        return rc;
    return rest[len] == '?' ? parse_query(p, rest + len + 1, out) : 0;
}

/* The display form of a parsed URL: as written, without its query, with
 * the password hidden. */
static void make_display(const parse *p, url *out)
{
    size_t len = strcspn(p->s, "?");
    show(p, 0, len, sizeof out->display, out->display, sizeof out->display);
}

int url_parse(const char *s, url *out, leasehold_error *err)
{
    parse p = {.s = s ? s : "", .err = err};
    memset(out, 0, sizeof *out);
    if (!s)
        return error_set(err, LEASEHOLD_EURL, "no URL given (NULL)");
    if (*s == '\0')
        return fail(&p, "the URL is empty (expected redis://host:port or unix:///path)");
    size_t len = strnlen(s, URL_MAX_LEN + 1);
    if (len > URL_MAX_LEN)
        return error_set(err, LEASEHOLD_EURL, "invalid URL: longer than %d characters",
                         URL_MAX_LEN);
    locate_password(&p);
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == ' ')
            return fail(&p, "contains a space at character %zu (percent-encode it as %%20)", i + 1);
        if (ch < 0x20 || ch == 0x7f)
            return fail(&p, "contains control character 0x%02x at character %zu", ch, i + 1);
    }

    const char *sep = strstr(s, "://");
    size_t scheme_len = sep ? (size_t)(sep - s) : 0;
    int rc;
    if (!sep)
        rc = fail(&p, "no scheme (expected redis://host:port or unix:///path)");
    else if (scheme_len == 5 && strncasecmp(s, "redis", 5) == 0)
        rc = parse_redis(&p, sep + 3, false, out);
    else if (scheme_len == 6 && strncasecmp(s, "rediss", 6) == 0)
        rc = parse_redis(&p, sep + 3, true, out);
    else if (scheme_len == 4 && strncasecmp(s, "unix", 4) == 0)
        rc = parse_unix(&p, sep + 3, out);
    else if (scheme_len == 14 && strncasecmp(s, "redis+sentinel", 14) == 0)
        rc = parse_sentinel(&p, sep + 3, false, out);
    else if (scheme_len == 15 && strncasecmp(s, "rediss+sentinel", 15) == 0)
        rc = parse_sentinel(&p, sep + 3, true, out);
    else if (scheme_len == 13 && strncasecmp(s, "redis+cluster", 13) == 0)
        rc = parse_cluster(&p, sep + 3, false, out);
    else if (scheme_len == 14 && strncasecmp(s, "rediss+cluster", 14) == 0)
        rc = parse_cluster(&p, sep + 3, true, out);
    else {
        char q[200];
        rc = fail(&p,
                  "unknown scheme \"%s\" (expected redis://, rediss://, unix://, "
                  "redis+sentinel:// or redis+cluster://)",
                  quote(s, scheme_len, q, sizeof q));
    }
    if (rc) {
        int code = rc;
        memset(out, 0, sizeof *out);
        return code;
    }
    make_display(&p, out);
    error_clear(err);
    return 0;
}
