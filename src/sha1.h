/* sha1.h — SHA-1 (FIPS 180-1), for the EVALSHA digests of our Lua scripts. */
#ifndef LEASEHOLD_SHA1_H
#define LEASEHOLD_SHA1_H

#include <stddef.h>

/* Writes the SHA-1 digest of data[0..len) to out as 40 lowercase hex digits
 * and a NUL.  Not for security: Redis names scripts by this digest.
 * Thread-safe. */
void sha1_hex(const char *data, size_t len, char out[41]);

#endif
