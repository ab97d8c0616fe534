/* tls.c — the TLS settings of a client and its OpenSSL context (see
 * tls.h).  The per-connection half is conn_tls.c. */
#include "tls.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"

/* One setting as the URL's query and cfg give it. */
typedef struct setting {
    const char *name;     /* "tls_ca_file" */
    const char *from_url; /* "" when absent */
    const char *from_cfg; /* NULL when absent */
    const char *value;    /* the merged value, NULL when absent */
} setting;

/* OpenSSL's words for the error it queued last, the queue then emptied. */
static const char *openssl_words(char *buf, size_t size)
{
    unsigned long e = ERR_peek_last_error();
    const char *reason = e ? ERR_reason_error_string(e) : NULL;
    snprintf(buf, size, "%s", reason ? reason : "unknown OpenSSL error");
    ERR_clear_error();
    return buf;
}

/* Merges one string setting; ECONFIG if URL and cfg disagree. */
static int merge(setting *s, leasehold_error *err)
{
    bool in_url = s->from_url[0] != '\0';
    bool in_cfg = s->from_cfg && s->from_cfg[0];
    if (in_url && in_cfg && strcmp(s->from_url, s->from_cfg) != 0)
        return error_set(err, LEASEHOLD_ECONFIG,
                         "%s is given twice, differently: \"%s\" in the URL and \"%s\" in the "
                         "configuration",
                         s->name, s->from_url, s->from_cfg);
    s->value = in_url ? s->from_url : in_cfg ? s->from_cfg : NULL;
    return 0;
}

/* ECONFIG naming the setting when the file or directory it names cannot be
 * read (OpenSSL's own words for that are "system lib"). */
static int check_readable(const setting *s, bool dir, leasehold_error *err)
{
    if (!s->value)
        return 0;
    int fd = open(s->value, O_RDONLY | O_CLOEXEC | (dir ? O_DIRECTORY : 0));
    if (fd < 0)
        return error_set(err, LEASEHOLD_ECONFIG, "cannot read %s \"%s\": %s", s->name, s->value,
                         strerror(errno));
    close(fd);
    return 0;
}

/* Loads what the settings name into t->ssl. */
static int load(tls_ctx *t, const setting *ca_file, const setting *ca_dir, const setting *cert,
                const setting *key, leasehold_error *err)
{
    char why[200];
    int rc = check_readable(ca_file, false, err);
    if (!rc)
        rc = check_readable(ca_dir, true, err);
    if (!rc)
        rc = check_readable(cert, false, err);
    if (!rc)
        rc = check_readable(key, false, err);
    if (rc)
        return rc;
    if (ca_file->value || ca_dir->value) {
        if (SSL_CTX_load_verify_locations(t->ssl, ca_file->value, ca_dir->value) != 1)
            return error_set(
                err, LEASEHOLD_ECONFIG, "cannot load the CA certificates of %s \"%s\": %s",
                ca_file->value ? ca_file->name : ca_dir->name,
                ca_file->value ? ca_file->value : ca_dir->value, openssl_words(why, sizeof why));
    } else if (SSL_CTX_set_default_verify_paths(t->ssl) != 1) {
        return error_set(err, LEASEHOLD_ECONFIG, "cannot load the system's trust store: %s",
                         openssl_words(why, sizeof why));
    }
    if (key->value && !cert->value)
        return error_set(err, LEASEHOLD_ECONFIG,
                         "tls_key_file is given without tls_cert_file (the client certificate)");
    if (cert->value) {
        if (SSL_CTX_use_certificate_chain_file(t->ssl, cert->value) != 1)
            return error_set(err, LEASEHOLD_ECONFIG, "cannot load tls_cert_file \"%s\": %s",
                             cert->value, openssl_words(why, sizeof why));
        const char *k = key->value ? key->value : cert->value;
        ERR_clear_error();
        bool loaded = SSL_CTX_use_PrivateKey_file(t->ssl, k, SSL_FILETYPE_PEM) == 1;
        if (!loaded && ERR_GET_REASON(ERR_peek_last_error()) != X509_R_KEY_VALUES_MISMATCH)
            return error_set(
                err, LEASEHOLD_ECONFIG, "cannot load the private key from %s \"%s\": %s",
                key->value ? key->name : cert->name, k, openssl_words(why, sizeof why));
        if (!loaded || SSL_CTX_check_private_key(t->ssl) != 1) {
            ERR_clear_error();
            return error_set(err, LEASEHOLD_ECONFIG,
                             "the private key in \"%s\" does not match the certificate in \"%s\"",
                             k, cert->value);
        }
        t->has_cert = true;
    }
    return 0;
}

int tls_ctx_make(const url *u, const leasehold_config *cfg, tls_ctx **out, leasehold_error *err)
{
    *out = NULL;
    const url_tls *q = &u->tls_opt;
    setting s[] = {
        {"tls_ca_file", q->ca_file, cfg->tls_ca_file, NULL},
        {"tls_ca_dir", q->ca_dir, cfg->tls_ca_dir, NULL},
        {"tls_cert_file", q->cert_file, cfg->tls_cert_file, NULL},
        {"tls_key_file", q->key_file, cfg->tls_key_file, NULL},
        {"tls_server_name", q->server_name, cfg->tls_server_name, NULL},
    };
    size_t n = sizeof s / sizeof s[0];
    for (size_t i = 0; i < n; i++) {
        int rc = merge(&s[i], err);
        if (rc)
            return rc;
    }
    if (q->insecure >= 0 && cfg->tls_insecure && !q->insecure)
        return error_set(err, LEASEHOLD_ECONFIG,
                         "tls_insecure is given twice, differently: no in the URL, yes in the "
                         "configuration");
    bool insecure = q->insecure > 0 || cfg->tls_insecure;
    if (!u->tls) {
        for (size_t i = 0; i < n; i++)
            if (s[i].value)
                return error_set(err, LEASEHOLD_ECONFIG,
                                 "%s is set, but the URL %s does not use TLS (use rediss://)",
                                 s[i].name, u->display);
        if (insecure)
            return error_set(err, LEASEHOLD_ECONFIG,
                             "tls_insecure is set, but the URL %s does not use TLS (use rediss://)",
                             u->display);
        return 0;
    }

    tls_ctx *t = calloc(1, sizeof *t);
    if (!t)
        return error_set(err, LEASEHOLD_ENOMEM, "out of memory");
    t->insecure = insecure;
    t->ssl = SSL_CTX_new(TLS_client_method());
    const char *sn = s[4].value;
    t->server_name = sn ? strdup(sn) : NULL;
    const setting *ca = s[0].value ? &s[0] : s[1].value ? &s[1] : NULL;
    if (!ca)
        t->trusted = strdup("the system's trust store");
    else if (asprintf(&t->trusted, "%s %s", ca->name, ca->value) < 0)
        t->trusted = NULL;
    if (!t->ssl || (sn && !t->server_name) || !t->trusted) {
        tls_ctx_free(t);
        ERR_clear_error();
        return error_set(err, LEASEHOLD_ENOMEM, "out of memory setting up TLS");
    }
    SSL_CTX_set_min_proto_version(t->ssl, TLS1_2_VERSION);
    SSL_CTX_set_mode(t->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    /* A peer that closes without close_notify reads as an end of stream:
     * Redis's replies frame themselves, so nothing is taken for whole that
     * is not. */
    SSL_CTX_set_options(t->ssl, SSL_OP_IGNORE_UNEXPECTED_EOF);
    int rc = load(t, &s[0], &s[1], &s[2], &s[3], err);
    if (rc) {
        tls_ctx_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

void tls_ctx_free(tls_ctx *t)
{
    if (!t)
        return;
    SSL_CTX_free(t->ssl);
    free(t->server_name);
    free(t->trusted);
    free(t);
}
