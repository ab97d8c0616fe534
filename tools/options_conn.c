/* options_conn.c — the connection's options both programs share: the URL
 * from a file, the password from a file or the environment (so that no
 * secret needs to be in argv, which every user can read with ps), and the
 * TLS settings.  A password never appears in a message: they name the file
 * or the variable it came from. */
#include "options.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define SECRET_MAX 4096 /* a URL or a password read from a file */

/* The first line of path (no newline) into out.  0, or OPTS_USAGE after a
 * message naming opt and path: unreadable, empty, or too long.  A file
 * that group or others may read earns a warning on stderr, as ssh gives
 * for keys. */
static int read_first_line(opts *o, const char *opt, const char *path, char *out, size_t size)
{
    char q[OPTS_QUOTE_SIZE];
    FILE *f = fopen(path, "re");
    if (!f)
        return opts_error(o, "%s: cannot read %s: %s", opt, opts_quote(q, path), strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && (st.st_mode & (S_IRGRP | S_IROTH)) && !o->silent)
        fprintf(stderr, "%s: warning: %s %s can be read by group or others: chmod 600 it\n",
                o->prog, opt, opts_quote(q, path));
    bool got = fgets(out, (int)size, f) != NULL;
    bool whole = got && (strchr(out, '\n') || feof(f));
    fclose(f);
    if (!got || out[0] == '\n' || (out[0] == '\r' && out[1] == '\n'))
        return opts_error(o, "%s: %s is empty (expected the value on its first line)", opt,
                          opts_quote(q, path));
    if (!whole)
        return opts_error(o, "%s: the first line of %s is longer than %zu bytes", opt,
                          opts_quote(q, path), size - 2);
    out[strcspn(out, "\r\n")] = '\0';
    return 0;
}

/* A TLS or Sentinel option's value: refused when empty. */
static int tls_value(opts *o, const char *opt, const char *arg, const char **field)
{
    if (!arg[0])
        return opts_error(o, "%s: the value is empty", opt);
    *field = arg;
    return 0;
}

int opts_conn_apply(opts *o, int id, const char *opt, const char *arg)
{
    static char url[SECRET_MAX], password[SECRET_MAX], sentinel_password[SECRET_MAX];
    opts_conn *c = &o->conn;
    switch (id) {
    case OPTS_URL_FILE:
        if (strcmp(o->url_source, "--url") == 0)
            return opts_error(o, "--url and --url-file both give the URL: give one");
        if (read_first_line(o, opt, arg, url, sizeof url) != 0)
            return OPTS_USAGE;
        o->url = url;
        o->url_source = "--url-file";
        return 0;
    case OPTS_PASSWORD_FILE:
        if (read_first_line(o, opt, arg, password, sizeof password) != 0)
            return OPTS_USAGE;
        c->password = password;
        c->password_source = "--password-file";
        return 0;
    case OPTS_TLS_CA_FILE:
        return tls_value(o, opt, arg, &c->tls_ca_file);
    case OPTS_TLS_CA_DIR:
        return tls_value(o, opt, arg, &c->tls_ca_dir);
    case OPTS_TLS_CERT_FILE:
        return tls_value(o, opt, arg, &c->tls_cert_file);
    case OPTS_TLS_KEY_FILE:
        return tls_value(o, opt, arg, &c->tls_key_file);
    case OPTS_TLS_SERVER_NAME:
        return tls_value(o, opt, arg, &c->tls_server_name);
    case OPTS_TLS_INSECURE:
        c->tls_insecure = true;
        return 0;
    case OPTS_SENTINEL_USER:
        return tls_value(o, opt, arg, &c->sentinel_user);
    case OPTS_SENTINEL_PASSWORD_FILE:
        if (read_first_line(o, opt, arg, sentinel_password, sizeof sentinel_password) != 0)
            return OPTS_USAGE;
        c->sentinel_password = sentinel_password;
        return 0;
    case OPTS_MIN_REPLICAS: {
        char *end;
        long n = strtol(arg, &end, 10);
        if (!arg[0] || *end || n < 0 || n > 100)
            return opts_error(o, "%s: expected a whole number from 0 to 100, not \"%s\"", opt, arg);
        c->min_replicas = (int)n;
        return 0;
    }
    default:
        return 1;
    }
}

int opts_conn_finish(opts *o)
{
    const char *senv = getenv("SNAKETRON_SENTINEL_PASSWORD");
    if (!o->conn.sentinel_password && senv) {
        if (!senv[0])
            return opts_error(o, "SNAKETRON_SENTINEL_PASSWORD is set but empty (unset it, or "
                                 "give the password)");
        o->conn.sentinel_password = senv;
    }
    const char *env = getenv("SNAKETRON_REDIS_PASSWORD");
    if (o->conn.password || !env)
        return 0;
    if (!env[0])
        return opts_error(o, "SNAKETRON_REDIS_PASSWORD is set but empty (unset it, or give the "
                             "password)");
    o->conn.password = env;
    o->conn.password_source = "SNAKETRON_REDIS_PASSWORD";
    return 0;
}

void opts_conn_config(const opts_conn *c, leasehold_config *cfg)
{
    cfg->password = c->password;
    cfg->tls_ca_file = c->tls_ca_file;
    cfg->tls_ca_dir = c->tls_ca_dir;
    cfg->tls_cert_file = c->tls_cert_file;
    cfg->tls_key_file = c->tls_key_file;
    cfg->tls_server_name = c->tls_server_name;
    cfg->tls_insecure = c->tls_insecure;
    cfg->sentinel_user = c->sentinel_user;
    cfg->sentinel_password = c->sentinel_password;
    cfg->min_replicas = c->min_replicas;
}
