/* tls.h — a client's TLS settings, merged from its URL and its
 * configuration, and the OpenSSL context they make.
 *
 * One context serves every connection of a client (the command and the
 * subscription connection alike); it is built, with its files read, once in
 * leasehold_client_new(), so a missing CA file or a key that does not match
 * its certificate is an error at start, not a failure on each reconnect.
 * Connections only read it: after tls_ctx_new it may be used from any one
 * thread at a time per connection.
 */
#ifndef LEASEHOLD_TLS_H
#define LEASEHOLD_TLS_H

#include <stdbool.h>

#include <openssl/ssl.h>

#include "leasehold.h"
#include "url.h"

typedef struct tls_ctx {
    SSL_CTX *ssl;
    char *server_name; /* NULL: each connection's URL host */
    char *trusted;     /* what is trusted, for messages ("tls_ca_file /x/ca.crt") */
    bool insecure;     /* no verification at all */
    bool has_cert;     /* a client certificate was given */
} tls_ctx;

/* The context for u with cfg's TLS settings: NULL in *out for a URL
 * without TLS (and no TLS setting in cfg).  A setting may come from the
 * URL's query or from cfg; from both, the two must be equal.  Returns 0, or
 * LEASEHOLD_ECONFIG (settings without rediss://, given twice differently, a
 * file that cannot be read, a key that does not match its certificate: the
 * message names the setting and the file) or LEASEHOLD_ENOMEM. */
int tls_ctx_make(const url *u, const leasehold_config *cfg, tls_ctx **out, leasehold_error *err);

void tls_ctx_free(tls_ctx *t);

#endif
