/* tls_certs.h — certificates for the TLS tests, made during the test with
 * the `openssl` command: a CA, a server certificate for localhost and
 * 127.0.0.1, a client certificate, and the wrong ones a user may meet (an
 * expired one, one from another CA, one for another host name).  EC P-256
 * keys: quick to make.  Call from the test's main thread. */
#ifndef LEASEHOLD_TLS_CERTS_H
#define LEASEHOLD_TLS_CERTS_H

#include <stdbool.h>

typedef struct tls_certs {
    char ca[320];          /* the CA the tests trust */
    char ca_dir[320];      /* a directory holding it, hashed by openssl rehash */
    char server_cert[320]; /* signed by ca, for DNS:localhost and IP:127.0.0.1 */
    char server_key[320];  /* the key of every server certificate below */
    char expired_cert[320];
    char other_ca_cert[320];   /* the same names, signed by another CA */
    char wrong_host_cert[320]; /* signed by ca, for DNS:other.invalid only */
    char client_cert[320];     /* signed by ca */
    char client_key[320];
    char other_client_cert[320]; /* signed by the other CA */
    char other_client_key[320];
} tls_certs;

/* Makes every file in dir (which exists).  Returns false, having printed
 * the openssl command that failed, if one did. */
bool tls_certs_make(const char *dir, tls_certs *out);

#endif
