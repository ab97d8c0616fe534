/* error.c — error codes, their names and messages, and filling leasehold_error. */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *leasehold_strerror(int code)
{
    switch (code) {
    case 0:
        return "success";
#define MSG_(name, value, msg)                                                                     \
    case value:                                                                                    \
        return msg;
        LEASEHOLD_ERRORS(MSG_)
#undef MSG_
    default:
        return "unknown error";
    }
}

const char *leasehold_errname(int code)
{
    switch (code) {
    case 0:
        return "0";
#define NAME_(name, value, msg)                                                                    \
    case value:                                                                                    \
        return #name;
        LEASEHOLD_ERRORS(NAME_)
#undef NAME_
    default:
        return "LEASEHOLD_EUNKNOWN";
    }
}

int error_set(leasehold_error *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

void error_clear(leasehold_error *err)
{
    if (err) {
        err->code = 0;
        err->msg[0] = '\0';
    }
}

/* The codes no retry can fix (the list is documented in leasehold.h). */
bool leasehold_error_is_permanent(int code)
{
    switch (code) {
    case LEASEHOLD_EAUTH:
    case LEASEHOLD_ENOPERM:
    case LEASEHOLD_EDB:
    case LEASEHOLD_EWRONGTYPE:
    case LEASEHOLD_EREADONLY:
    case LEASEHOLD_ENOSCRIPT:
    case LEASEHOLD_ENOTLEASE:
    case LEASEHOLD_ETLSUNTRUSTED:
    case LEASEHOLD_ETLSHOSTNAME:
    case LEASEHOLD_ETLSEXPIRED:
    case LEASEHOLD_ETLSCLIENTCERT:
    case LEASEHOLD_ETLSPLAIN:
    case LEASEHOLD_ETLSNEEDED:
    case LEASEHOLD_EURL:
    case LEASEHOLD_ECONFIG:
    case LEASEHOLD_EINVAL:
        return true;
    default:
        return false;
    }
}

/* The token's shape as api_election.c makes it: "<identity>/%016" PRIx64, the
 * identity as check_config accepts it (1..200 bytes, no byte <= ' ', no
 * DEL).  The identity may itself hold '/', so the nonce is the last 16
 * bytes after the last '/'. */
bool leasehold_is_token(const char *value)
{
    if (!value)
        return false;
    size_t n = strlen(value);
    if (n < 18 || n > 200 + 17 || value[n - 17] != '/')
        return false;
    for (size_t i = n - 16; i < n; i++)
        if (!((value[i] >= '0' && value[i] <= '9') || (value[i] >= 'a' && value[i] <= 'f')))
            return false;
    for (size_t i = 0; i < n - 17; i++) {
        unsigned char ch = (unsigned char)value[i];
        if (ch <= ' ' || ch == 0x7f)
            return false;
    }
    return true;
}
