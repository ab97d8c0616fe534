/* fuzz_url.c — url_parse on arbitrary bytes, and the client's configuration
 * path after it (the URL's timeouts merged in, then lease_config_check).
 *
 * The bytes, cut at the first NUL, are the URL, in a heap copy of exactly
 * that size so that a read past its end is caught.  The same bytes read as
 * five little-endian 32-bit numbers are the timings of a configuration.
 * Checked: no crash, no out-of-bounds read, no undefined behaviour; a parse
 * that succeeds gives NUL-terminated fields that make sense and a display
 * form that hides the password; a failure says why, with LEASEHOLD_EURL;
 * the configuration is accepted exactly when it follows lease.c's rules. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "lease.h"
#include "url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool terminated(const char *s, size_t size)
{
    return memchr(s, '\0', size) != NULL;
}

/* The invariants of a URL that parsed. */
static void check_parsed(const url *u, const leasehold_error *err)
{
    fuzz_require(err->code == 0 && err->msg[0] == '\0', "success clears the error");
    fuzz_require(terminated(u->host, sizeof u->host) && terminated(u->path, sizeof u->path) &&
                     terminated(u->user, sizeof u->user) &&
                     terminated(u->password, sizeof u->password) &&
                     terminated(u->display, sizeof u->display),
                 "every string field is NUL-terminated");
    fuzz_require(u->db >= 0, "the database index is not negative");
    fuzz_require(u->display[0] != '\0', "the display form is not empty");
    if (u->kind == URL_TCP && u->sentinel) {
        fuzz_require(u->host[0] == '\0' && u->host_count >= 1 && u->host_count <= URL_HOSTS_MAX &&
                         terminated(u->master_name, sizeof u->master_name) &&
                         u->master_name[0] != '\0',
                     "a Sentinel URL has Sentinels and a master name, and no host yet");
        for (int i = 0; i < u->host_count; i++)
            fuzz_require(terminated(u->hosts[i].host, sizeof u->hosts[i].host) &&
                             u->hosts[i].host[0] != '\0' && u->hosts[i].port != 0,
                         "each Sentinel has a host and a port");
    } else if (u->kind == URL_TCP && u->cluster) {
        fuzz_require(u->host[0] == '\0' && u->host_count >= 1 && u->host_count <= URL_HOSTS_MAX &&
                         u->db == 0,
                     "a Cluster URL has seed nodes, no host and no database");
        for (int i = 0; i < u->host_count; i++)
            fuzz_require(terminated(u->hosts[i].host, sizeof u->hosts[i].host) &&
                             u->hosts[i].host[0] != '\0' && u->hosts[i].port != 0,
                         "each seed node has a host and a port");
    } else if (u->kind == URL_TCP) {
        fuzz_require(u->host[0] != '\0' && u->port != 0 && u->host_count == 0,
                     "a TCP URL has a host and a port");
    } else
        fuzz_require(u->kind == URL_UNIX && u->path[0] != '\0', "a unix URL has a path");
    if (u->password[0] != '\0') {
        /* Unless a long user name (shown escaped) fills the display form
         * before the password's place. */
        fuzz_require(u->has_password, "a password is flagged");
        fuzz_require(strstr(u->display, ":***") != NULL ||
                         strlen(u->display) + 8 >= sizeof u->display,
                     "the display form hides the password");
    }
}

/* The client's path: the URL's timeout wins over the configuration's, then
 * lease_config_check decides, and must decide as its rules say. */
static void check_config(const uint8_t *data, size_t size, const url *u)
{
    uint32_t v[5] = {0};
    memcpy(v, data, size < sizeof v ? size : sizeof v);
    lease_config cfg = {.lease_ms = v[0],
                        .renew_interval_ms = v[1],
                        .retry_interval_ms = v[2],
                        .renew_deadline_ms = v[3],
                        .stop_timeout_ms = 1000,
                        .drift_ppm = 10000};
    uint32_t timeout = u && u->command_timeout_ms ? u->command_timeout_ms : v[4];
    leasehold_error err;
    int rc = lease_config_check(&cfg, timeout, &err);

    uint64_t lease_ms = cfg.lease_ms, renew = cfg.renew_interval_ms;
    uint64_t deadline = cfg.renew_deadline_ms, drift = lease_ms / 100 + 2;
    bool valid = lease_ms && renew && cfg.retry_interval_ms && deadline && timeout &&
                 renew * 2 <= lease_ms && deadline + drift < lease_ms && renew < deadline &&
                 (uint64_t)timeout * 2 <= deadline;
    fuzz_require((rc == 0) == valid, "lease_config_check follows its rules");
    if (rc == 0)
        fuzz_require(err.code == 0, "an accepted configuration clears the error");
    else
        fuzz_require(rc == LEASEHOLD_ECONFIG && err.code == rc && err.msg[0] != '\0' &&
                         terminated(err.msg, sizeof err.msg),
                     "a refused configuration says why");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t len = strnlen((const char *)data, size);
    char *s = malloc(len + 1);
    if (!s)
        return 0;
    memcpy(s, data, len);
    s[len] = '\0';

    url u;
    leasehold_error err;
    int rc = url_parse(s, &u, &err);
    if (rc == 0) {
        check_parsed(&u, &err);
        url again;
        fuzz_require(url_parse(s, &again, NULL) == 0 && memcmp(&u, &again, sizeof u) == 0,
                     "parsing is deterministic and works without an error struct");
    } else {
        fuzz_require(rc == LEASEHOLD_EURL && err.code == rc, "a bad URL is LEASEHOLD_EURL");
        fuzz_require(err.msg[0] != '\0' && terminated(err.msg, sizeof err.msg),
                     "a bad URL's message says why");
    }
    check_config(data, size, rc == 0 ? &u : NULL);
    free(s);
    return 0;
}
