/* redis_info.c — the fields of Redis's INFO leasehold reads (see redis_info.h). */
#include "redis_info.h"

#include <stdlib.h>
#include <string.h>

#define UPTIME_MAX_S 1000000000ull /* 31 years: more is no uptime, and would overflow */

/* Copies INFO's field `name` (up to the end of its line) into out; false
 * when INFO has no such field. */
static bool info_field(const char *info, const char *name, char *out, size_t size)
{
    size_t n = strlen(name);
    for (const char *p = info; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, name, n) != 0 || p[n] != ':')
            continue;
        const char *v = p + n + 1;
        size_t len = strcspn(v, "\r\n");
        if (len >= size)
            len = size - 1;
        memcpy(out, v, len);
        out[len] = '\0';
        return true;
    }
    return false;
}

void redis_info_parse(const char *info, redis_info *out)
{
    memset(out, 0, sizeof *out);
    if (!info)
        return;
    char uptime[24] = "";
    info_field(info, "run_id", out->run_id, sizeof out->run_id);
    info_field(info, "master_replid", out->replid, sizeof out->replid);
    for (const char *l = info; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
        size_t digits = strncmp(l, "slave", 5) == 0 ? strspn(l + 5, "0123456789") : 0;
        size_t len = strcspn(l, "\r\n");
        if (digits > 0 && l[5 + digits] == ':' && memmem(l, len, "state=online", 12))
            out->online_replicas++;
    }
    info_field(info, "maxmemory_policy", out->maxmemory_policy, sizeof out->maxmemory_policy);
    if (!info_field(info, "uptime_in_seconds", uptime, sizeof uptime) || uptime[0] < '0' ||
        uptime[0] > '9')
        return;
    char *end = NULL;
    unsigned long long s = strtoull(uptime, &end, 10);
    if (*end != '\0')
        return;
    if (s > UPTIME_MAX_S)
        s = UPTIME_MAX_S;
    out->has_uptime = true;
    out->up_ms = s > 1 ? (s - 1) * 1000 : 0;
}

uint64_t redis_info_guard_wait_ms(const redis_info *info, uint32_t lease_ms)
{
    return info->up_ms < lease_ms ? lease_ms - info->up_ms : 0;
}
