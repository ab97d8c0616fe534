/* redis_info.h — what leasehold reads from Redis's INFO on each new
 * connection: how long the server has been up, which instance it is (and
 * which replication history it has), and whether it may evict keys.  Pure: parsing only, no I/O, no
 * state. */
#ifndef LEASEHOLD_REDIS_INFO_H
#define LEASEHOLD_REDIS_INFO_H

#include <stdbool.h>
#include <stdint.h>

typedef struct redis_info {
    bool has_uptime;
    uint64_t up_ms;            /* uptime_in_seconds counted one second short, in ms */
    char run_id[48];           /* "" when INFO does not say */
    char replid[48];           /* master_replid: "" when INFO does not say */
    int online_replicas;       /* replicas with state=online (INFO replication's slaveN) */
    char maxmemory_policy[32]; /* "" when INFO does not say */
} redis_info;

/* Reads the fields above from INFO's text (NULL: a Redis that would not
 * answer, which says nothing).  uptime_in_seconds is a difference of whole
 * wall-clock seconds and can read up to 1 s high, so it is counted one
 * second short; a value that is not a number is no uptime, and one above 31
 * years counts as 31 years.  Fields are cut to their buffers. */
void redis_info_parse(const char *info, redis_info *out);

/* How long claims wait on a Redis up for up_ms (the restart guard): the rest
 * of the lease, 0 once it has been up that long. */
uint64_t redis_info_guard_wait_ms(const redis_info *info, uint32_t lease_ms);

#endif
