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
