/* conn_tls.c — the TLS half of a rediss:// connection.
 *
 * OpenSSL runs over our own non-blocking socket: a BIO of ours moves the
 * bytes with recv() and send(MSG_NOSIGNAL) (so a peer that went away never
 * raises SIGPIPE in the host program), and every SSL call that would block
 * says so (WANT_READ / WANT_WRITE); conn.c then polls for what it wants.
 * The handshake runs in CONN_CONNECTING, inside the attempt's
 * connect_timeout_ms, before the [AUTH] [SELECT] PING of conn_handshake.c.
 *
 * What went wrong is told apart here, each with its own code: a certificate
 * not issued by a trusted CA, one that does not name the host, one out of
 * its dates, a client certificate Redis wants and did not get (or refused),
 * and a port that answers in plain text (which a plain Redis never does to
 * a ClientHello: conn_probe.c asks it).
 */
#include "conn_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "redis_error.h"
#include "tls.h"

/* ---------------------------------------------------------- socket BIO */

static BIO_METHOD *bio_method;
static pthread_once_t bio_method_once = PTHREAD_ONCE_INIT;

static int bio_write(BIO *b, const char *buf, int len)
{
    conn *c = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    ssize_t n;
    do
        n = send(c->fd, buf, (size_t)len, MSG_NOSIGNAL | MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        BIO_set_retry_write(b);
    return (int)n;
}

/* Reads, and keeps the first bytes of the connection for a plain-text
 * answer to be recognised. */
static int bio_read(BIO *b, char *buf, int len)
{
    conn *c = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    ssize_t n;
    do
        n = recv(c->fd, buf, (size_t)len, MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        BIO_set_retry_read(b);
    if (n > 0) {
        size_t room = sizeof c->tls.first - c->tls.first_len;
        size_t take = (size_t)n < room ? (size_t)n : room;
        memcpy(c->tls.first + c->tls.first_len, buf, take);
        c->tls.first_len += take;
    }
    return (int)n;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b, (void)num, (void)ptr;
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static void make_bio_method(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR, "leasehold socket");
    if (m && BIO_meth_set_write(m, bio_write) && BIO_meth_set_read(m, bio_read) &&
        BIO_meth_set_ctrl(m, bio_ctrl))
        bio_method = m;
    else
        BIO_meth_free(m);
}

/* ---------------------------------------------------- what went wrong */

/* A certificate's subject, "/CN=localhost". */
static void subject(X509 *cert, char *out, size_t size)
{
    if (!cert || !X509_NAME_oneline(X509_get_subject_name(cert), out, (int)size))
        snprintf(out, size, "?");
}

/* The names a certificate is valid for: "DNS:localhost, IP:127.0.0.1". */
static void cert_names(X509 *cert, char *out, size_t size)
{
    size_t n = 0;
    out[0] = '\0';
    GENERAL_NAMES *names = cert ? X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL) : NULL;
    for (int i = 0; names && i < sk_GENERAL_NAME_num(names) && n < size; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
        char ip[INET6_ADDRSTRLEN];
        const char *sep = n ? ", " : "";
        if (g->type == GEN_DNS) {
            n += (size_t)snprintf(out + n, size - n, "%sDNS:%s", sep,
                                  (const char *)ASN1_STRING_get0_data(g->d.dNSName));
        } else if (g->type == GEN_IPADD) {
            int len = ASN1_STRING_length(g->d.iPAddress);
            const unsigned char *a = ASN1_STRING_get0_data(g->d.iPAddress);
            if (inet_ntop(len == 16 ? AF_INET6 : AF_INET, a, ip, sizeof ip) &&
                (len == 4 || len == 16))
                n += (size_t)snprintf(out + n, size - n, "%sIP:%s", sep, ip);
        }
    }
    GENERAL_NAMES_free(names);
    if (!out[0])
        snprintf(out, size, "no subjectAltName");
}

/* A certificate time as "Jan  2 00:00:00 2020 GMT". */
static void cert_time(const ASN1_TIME *t, char *out, size_t size)
{
    BIO *m = BIO_new(BIO_s_mem());
    int n = m && ASN1_TIME_print(m, t) ? BIO_read(m, out, (int)size - 1) : -1;
    out[n > 0 ? n : 0] = '\0';
    BIO_free(m);
}

static bool tls_record_type(unsigned char b)
{
    return b >= 0x14 && b <= 0x18; /* change_cipher_spec .. heartbeat */
}

/* The server's certificate failed verification with v: the code, and the
 * message in msg. */
static int explain_verify(conn *c, long v, char *msg, size_t size)
{
    const tls_ctx *t = c->opt.tls;
    X509 *cert = c->tls.refused;
    char name[256], names[256], when[64], issuer[256] = "?";
    subject(cert, name, sizeof name);
    if (cert)
        X509_NAME_oneline(X509_get_issuer_name(cert), issuer, sizeof issuer);
    const char *whose = c->tls.refused_depth == 0 ? "the server's certificate" : "the certificate";
    const char *where = c->tls.refused_depth == 0 ? "" : " in the server's chain";
    switch (v) {
    case X509_V_ERR_CERT_HAS_EXPIRED:
    case X509_V_ERR_CERT_NOT_YET_VALID: {
        bool expired = v == X509_V_ERR_CERT_HAS_EXPIRED;
        when[0] = '\0';
        if (cert)
            cert_time(expired ? X509_get0_notAfter(cert) : X509_get0_notBefore(cert), when,
                      sizeof when);
        snprintf(msg, size, "%s %.100s%s %s %s", whose, name, where,
                 expired ? "expired on" : "is not valid before", when);
        return LEASEHOLD_ETLSEXPIRED;
    }
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
        cert_names(cert, names, sizeof names);
        snprintf(msg, size,
                 "the server's certificate %.80s (%.100s) does not name '%.80s': connect by a name "
                 "it has, or set tls_server_name to one",
                 name, names, t->server_name ? t->server_name : c->u.host);
        return LEASEHOLD_ETLSHOSTNAME;
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_CERT_UNTRUSTED:
        snprintf(msg, size,
                 "%s %.80s%s, issued by %.80s, does not lead to a CA trusted in %.120s: give "
                 "its CA with tls_ca_file or tls_ca_dir",
                 whose, name, where, issuer, t->trusted);
        return LEASEHOLD_ETLSUNTRUSTED;
    default:
        snprintf(msg, size, "%s %.100s%s was refused: %s", whose, name, where,
                 X509_verify_cert_error_string(v));
        return LEASEHOLD_ETLS;
    }
}

/* True for the alerts a server sends about the client's certificate. */
static bool client_cert_alert(int reason)
{
    switch (reason) {
    case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
    case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
    case SSL_R_TLSV1_ALERT_ACCESS_DENIED:
        return true;
    default:
        return false;
    }
}

/* An SSL call failed with SSL_get_error() == ssl_err (errno was sys_errno):
 * the code, and the message in msg.  Returns 0 when it is a plain socket
 * event for the caller to handle as such (an end of stream or a socket
 * error after the handshake). */
static int explain(conn *c, int ssl_err, int sys_errno, char *msg, size_t size)
{
    const tls_ctx *t = c->opt.tls;
    unsigned long e = ERR_peek_error();
    int reason = e ? ERR_GET_REASON(e) : 0;
    const char *words = e ? ERR_reason_error_string(e) : NULL;
    ERR_clear_error();
    bool before_ready = c->state != CONN_READY;
    if (before_ready && c->tls.cert_requested && !t->has_cert) {
        snprintf(msg, size,
                 "Redis requires a client certificate (tls-auth-clients yes): give one with "
                 "tls_cert_file and tls_key_file");
        return LEASEHOLD_ETLSCLIENTCERT;
    }
    if (before_ready && t->has_cert && client_cert_alert(reason)) {
        snprintf(msg, size, "Redis refused the client certificate: %s", words ? words : "?");
        return LEASEHOLD_ETLSCLIENTCERT;
    }
    if (c->tls.handshaking && c->tls.first_len > 0 && !tls_record_type(c->tls.first[0])) {
        char said[200];
        /* OpenSSL read only a record header's worth: the rest of the
         * line, if it came, is still in the socket. */
        ssize_t more = recv(c->fd, c->tls.first + c->tls.first_len,
                            sizeof c->tls.first - c->tls.first_len, MSG_DONTWAIT);
        if (more > 0)
            c->tls.first_len += (size_t)more;
        const char *first = (const char *)c->tls.first;
        size_t line = 0;
        while (line < c->tls.first_len && first[line] != '\r' && first[line] != '\n')
            line++;
        redis_error_quote(first, line, 40, said, sizeof said);
        snprintf(msg, size,
                 "Redis answered the TLS handshake in plain text (\"%s\"): this port does not "
                 "speak TLS (use redis://, or the port of Redis's tls-port)",
                 said);
        return LEASEHOLD_ETLSPLAIN;
    }
    if (c->tls.handshaking && !t->insecure) {
        long v = SSL_get_verify_result(c->tls.ssl);
        if (v != X509_V_OK)
            return explain_verify(c, v, msg, size);
    }
    if (ssl_err == SSL_ERROR_SSL) {
        snprintf(msg, size, "TLS %s failed: %s", c->tls.handshaking ? "handshake" : "session",
                 words ? words : "unknown OpenSSL error");
        return LEASEHOLD_ETLS;
    }
    if (!c->tls.handshaking)
        return 0;
    if (ssl_err == SSL_ERROR_SYSCALL && sys_errno != 0) {
        snprintf(msg, size, "TLS handshake failed: %s", strerror(sys_errno));
        return conn_errno_code(sys_errno);
    }
    snprintf(msg, size, "connection closed by Redis during the TLS handshake");
    return LEASEHOLD_ECONNRESET;
}

/* ------------------------------------------------------- handshake */

/* Keeps the first certificate verification fails on, for the message. */
static int note_refusal(int ok, X509_STORE_CTX *store)
{
    SSL *ssl = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx());
    conn *c = ssl ? SSL_get_app_data(ssl) : NULL;
    X509 *cert = X509_STORE_CTX_get_current_cert(store);
    if (!ok && c && !c->tls.refused && cert && X509_up_ref(cert)) {
        c->tls.refused = cert;
        c->tls.refused_depth = X509_STORE_CTX_get_error_depth(store);
    }
    return ok;
}

/* Notes that the server asked for a client certificate. */
static int cert_requested(SSL *ssl, void *arg)
{
    (void)ssl;
    conn *c = arg;
    c->tls.cert_requested = true;
    return 1;
}

static bool is_ip_address(const char *s)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

void conn_tls_begin(conn *c, uint64_t now_ms)
{
    const tls_ctx *t = c->opt.tls;
    pthread_once(&bio_method_once, make_bio_method);
    SSL *ssl = bio_method ? SSL_new(t->ssl) : NULL;
    BIO *bio = ssl ? BIO_new(bio_method) : NULL;
    if (!bio) {
        SSL_free(ssl);
        ERR_clear_error();
        conn_go_down(c, LEASEHOLD_ENOMEM, false, now_ms, "out of memory starting TLS");
        return;
    }
    BIO_set_data(bio, c);
    BIO_set_init(bio, 1);
    SSL_set_bio(ssl, bio, bio);
    SSL_set_app_data(ssl, c);
    SSL_set_cert_cb(ssl, cert_requested, c);
    SSL_set_verify(ssl, t->insecure ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, note_refusal);
    const char *name = t->server_name ? t->server_name : c->u.host;
    bool ip = is_ip_address(name);
    bool ok = ip || SSL_set_tlsext_host_name(ssl, name) == 1;
    if (ok && !t->insecure)
        ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) == 1
                : SSL_set1_host(ssl, name) == 1;
    if (!ok) {
        SSL_free(ssl);
        ERR_clear_error();
        conn_go_down(c, LEASEHOLD_ETLS, false, now_ms, "cannot use '%s' as the TLS server name",
                     name);
        return;
    }
    SSL_set_connect_state(ssl);
    c->tls = (conn_tls){.ssl = ssl, .handshaking = true};
    c->tls.probe_at_ms = now_ms + (c->connect_deadline_ms - now_ms) * 2 / 3;
    c->state = CONN_CONNECTING;
    conn_tls_step(c, now_ms);
}

void conn_tls_step(conn *c, uint64_t now_ms)
{
    ERR_clear_error();
    errno = 0;
    int r = SSL_do_handshake(c->tls.ssl);
    if (r == 1) {
        c->tls.handshaking = false;
        c->tls.want_write = false;
        conn_handshake_start(c, now_ms);
        return;
    }
    int e = SSL_get_error(c->tls.ssl, r);
    int sys_errno = errno;
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        c->tls.want_write = e == SSL_ERROR_WANT_WRITE;
        return;
    }
    char msg[512];
    int code = explain(c, e, sys_errno, msg, sizeof msg);
    conn_go_down(c, code, false, now_ms, "%s", msg);
}

/* ---------------------------------------------------------- data */

/* The end of an SSL_read or SSL_write that did not move bytes: -1 with
 * errno EAGAIN (wait for the socket), or with errno of the socket, or 0
 * (end of stream), or -1 with errno EPROTO and c->tls.fail_code/fail_msg
 * set for a TLS failure. */
static ssize_t data_failed(conn *c, int r)
{
    int e = SSL_get_error(c->tls.ssl, r);
    int sys_errno = errno;
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        ERR_clear_error();
        c->tls.want_write = e == SSL_ERROR_WANT_WRITE;
        errno = EAGAIN;
        return -1;
    }
    int code = explain(c, e, sys_errno, c->tls.fail_msg, sizeof c->tls.fail_msg);
    if (code) {
        c->tls.fail_code = code;
        errno = EPROTO;
        return -1;
    }
    if (e == SSL_ERROR_SYSCALL && sys_errno != 0) {
        errno = sys_errno;
        return -1;
    }
    return 0;
}

ssize_t conn_tls_read(conn *c, void *buf, size_t len)
{
    ERR_clear_error();
    errno = 0;
    c->tls.want_write = false;
    int r = SSL_read(c->tls.ssl, buf, (int)(len > INT32_MAX ? INT32_MAX : len));
    return r > 0 ? r : data_failed(c, r);
}

ssize_t conn_tls_write(conn *c, const void *buf, size_t len)
{
    ERR_clear_error();
    errno = 0;
    c->tls.want_write = false;
    int r = SSL_write(c->tls.ssl, buf, (int)(len > INT32_MAX ? INT32_MAX : len));
    if (r > 0)
        return r;
    ssize_t n = data_failed(c, r);
    if (n == 0) { /* SSL_write has no end of stream: the peer is gone */
        errno = EPIPE;
        n = -1;
    }
    if (n < 0 && errno != EAGAIN && errno != EPROTO && c->state != CONN_READY) {
        /* Redis may have said why before it closed (an alert about our
         * client certificate, sent as our handshake was on its way): the
         * bytes that came before the reset are still there to read. */
        int e = errno;
        char b[64];
        if (conn_tls_read(c, b, sizeof b) < 0 && errno == EPROTO)
            return -1;
        errno = e;
    }
    return n;
}

bool conn_tls_failed(conn *c, int e, uint64_t now_ms)
{
    if (e != EPROTO || !c->tls.fail_code)
        return false;
    conn_go_down(c, c->tls.fail_code, false, now_ms, "%s", c->tls.fail_msg);
    return true;
}

bool conn_tls_buffered(const conn *c)
{
    return c->tls.ssl && SSL_has_pending(c->tls.ssl);
}

void conn_tls_end(conn *c)
{
    SSL_free(c->tls.ssl); /* frees the BIO too */
    X509_free(c->tls.refused);
    c->tls = (conn_tls){0};
}
