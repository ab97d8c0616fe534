/* names.c — the names of the public enums, for logs and tools. */
#include "leasehold.h"

const char *leasehold_reason_name(leasehold_reason reason)
{
    switch (reason) {
    case LEASEHOLD_LOST:
        return "lost";
    case LEASEHOLD_EXPIRED:
        return "expired";
    case LEASEHOLD_DEADLINE:
        return "renew deadline passed";
    case LEASEHOLD_DISCONNECTED:
        return "disconnected";
    case LEASEHOLD_RESIGNED:
        return "resigned";
    case LEASEHOLD_CLOCK_JUMPED:
        return "redis clock jumped";
    case LEASEHOLD_HALTED:
        return "halted";
    }
    return "unknown";
}

const char *leasehold_change_name(leasehold_change change)
{
    switch (change) {
    case LEASEHOLD_CHANGE_ELECTED:
        return "elected";
    case LEASEHOLD_CHANGE_RELEASED:
        return "released";
    case LEASEHOLD_CHANGE_EXPIRED:
        return "expired";
    }
    return "unknown";
}

const char *leasehold_state_name(leasehold_state state)
{
    switch (state) {
    case LEASEHOLD_STATE_IDLE:
        return "idle";
    case LEASEHOLD_STATE_FOLLOWER:
        return "follower";
    case LEASEHOLD_STATE_CLAIMING:
        return "claiming";
    case LEASEHOLD_STATE_LEADER:
        return "leader";
    case LEASEHOLD_STATE_STEPPING_DOWN:
        return "stepping_down";
    case LEASEHOLD_STATE_RELEASING:
        return "releasing";
    case LEASEHOLD_STATE_OBSERVING:
        return "observing";
    case LEASEHOLD_STATE_HALTED:
        return "halted";
    }
    return "unknown";
}
