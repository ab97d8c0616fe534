/* tls_certs.c — certificates for the TLS tests (see tls_certs.h). */
#include "tls_certs.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "redis_server.h"

/* Runs openssl with args (NULL-terminated, after "openssl"); its output
 * goes to dir/openssl.log.  False, printed, when it fails. */
static bool openssl(const char *dir, const char *const *args)
{
    char *argv[32] = {"openssl"};
    int n = 1;
    for (; args[n - 1] && n < 31; n++)
        argv[n] = (char *)args[n - 1];
    argv[n] = NULL;
    char log[400];
    snprintf(log, sizeof log, "%s/openssl.log", dir);
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    pid_t pid = test_process_spawn_stdio(argv, -1, fd, fd);
    if (fd >= 0)
        close(fd);
    int status = 0;
    if (pid > 0 && test_process_wait(pid, 30000, &status) && WIFEXITED(status) &&
        WEXITSTATUS(status) == 0)
        return true;
    fprintf(stderr, "tls_certs: failed (see %s):", log);
    for (int i = 0; argv[i]; i++)
        fprintf(stderr, " %s", argv[i]);
    fprintf(stderr, "\n");
    if (pid > 0)
        test_process_kill(pid);
    return false;
}

/* dir/name into out. */
static const char *path(char out[320], const char *dir, const char *name)
{
    snprintf(out, 320, "%s/%s", dir, name);
    return out;
}

static bool write_file(const char *file, const char *text)
{
    FILE *f = fopen(file, "w");
    bool ok = f && fputs(text, f) >= 0;
    if (f && fclose(f) != 0)
        ok = false;
    if (!ok)
        fprintf(stderr, "tls_certs: cannot write %s\n", file);
    return ok;
}

/* A self-signed CA: key and certificate. */
static bool make_ca(const char *dir, const char *cn, const char *key, const char *cert)
{
    char subj[100];
    snprintf(subj, sizeof subj, "/CN=%s", cn);
    const char *args[] = {
        "req",    "-x509", "-newkey", "ec",    "-pkeyopt", "ec_paramgen_curve:P-256",
        "-nodes", "-days", "2",       "-subj", subj,       "-keyout",
        key,      "-out",  cert,      NULL};
    return openssl(dir, args);
}

/* A key and a signing request for cn. */
static bool make_request(const char *dir, const char *cn, const char *key, const char *csr)
{
    char subj[100];
    snprintf(subj, sizeof subj, "/CN=%s", cn);
    const char *args[] = {"req",    "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                          "-nodes", "-subj",   subj, "-keyout",  key,
                          "-out",   csr,       NULL};
    return openssl(dir, args);
}

/* csr signed by the CA for days (-1: expired yesterday), with the
 * extensions in ext (may be NULL). */
static bool sign(const char *dir, const char *csr, const char *ca, const char *ca_key,
                 const char *days, const char *ext, const char *cert)
{
    const char *args[] = {"x509",
                          "-req",
                          "-in",
                          csr,
                          "-CA",
                          ca,
                          "-CAkey",
                          ca_key,
                          "-CAcreateserial",
                          "-days",
                          days,
                          "-out",
                          cert,
                          ext ? "-extfile" : NULL,
                          ext,
                          NULL};
    return openssl(dir, args);
}

/* o->ca_dir: a copy of the CA, and the hash link openssl rehash makes. */
static bool make_ca_dir(const char *dir, const tls_certs *o)
{
    char copy[400];
    snprintf(copy, sizeof copy, "%s/ca.crt", o->ca_dir);
    FILE *in = fopen(o->ca, "r");
    char text[8192];
    size_t n = in ? fread(text, 1, sizeof text - 1, in) : 0;
    if (in)
        fclose(in);
    text[n] = '\0';
    if (mkdir(o->ca_dir, 0700) != 0 || n == 0 || !write_file(copy, text))
        return false;
    const char *args[] = {"rehash", o->ca_dir, NULL};
    return openssl(dir, args);
}

bool tls_certs_make(const char *dir, tls_certs *o)
{
    char ca_key[320], other_key[320], other_ca[320], csr[320], client_csr[320], other_csr[320],
        ext[320], wrong_ext[320];
    path(o->ca, dir, "ca.crt");
    path(o->ca_dir, dir, "cas");
    path(ca_key, dir, "ca.key");
    path(other_ca, dir, "other-ca.crt");
    path(other_key, dir, "other-ca.key");
    path(o->server_key, dir, "server.key");
    path(csr, dir, "server.csr");
    path(ext, dir, "server.ext");
    path(wrong_ext, dir, "wrong-host.ext");
    path(o->server_cert, dir, "server.crt");
    path(o->expired_cert, dir, "expired.crt");
    path(o->other_ca_cert, dir, "other-ca-server.crt");
    path(o->wrong_host_cert, dir, "wrong-host.crt");
    path(o->client_key, dir, "client.key");
    path(client_csr, dir, "client.csr");
    path(o->client_cert, dir, "client.crt");
    path(o->other_client_key, dir, "other-client.key");
    path(other_csr, dir, "other-client.csr");
    path(o->other_client_cert, dir, "other-client.crt");
    return write_file(ext, "subjectAltName=DNS:localhost,IP:127.0.0.1\n") &&
           write_file(wrong_ext, "subjectAltName=DNS:other.invalid\n") &&
           make_ca(dir, "leasehold test CA", ca_key, o->ca) &&
           make_ca(dir, "another CA", other_key, other_ca) && make_ca_dir(dir, o) &&
           make_request(dir, "localhost", o->server_key, csr) &&
           sign(dir, csr, o->ca, ca_key, "2", ext, o->server_cert) &&
           sign(dir, csr, o->ca, ca_key, "-1", ext, o->expired_cert) &&
           sign(dir, csr, other_ca, other_key, "2", ext, o->other_ca_cert) &&
           sign(dir, csr, o->ca, ca_key, "2", wrong_ext, o->wrong_host_cert) &&
           make_request(dir, "leasehold test client", o->client_key, client_csr) &&
           sign(dir, client_csr, o->ca, ca_key, "2", NULL, o->client_cert) &&
           make_request(dir, "another client", o->other_client_key, other_csr) &&
           sign(dir, other_csr, other_ca, other_key, "2", NULL, o->other_client_cert);
}
