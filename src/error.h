/* error.h — filling a leasehold_error. */
#ifndef LEASEHOLD_ERROR_H
#define LEASEHOLD_ERROR_H

#include "leasehold.h"

/* Sets err (if not NULL) to code and the printf-style message; returns code. */
int error_set(leasehold_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Clears err (if not NULL): code 0, empty message. */
void error_clear(leasehold_error *err);

#endif
