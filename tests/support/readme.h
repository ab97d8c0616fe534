/* readme.h — the README's code blocks, for the tests that run its recipes
 * as written.  README.md is found in $LEASEHOLD_SOURCE_DIR (set by ctest).
 * Assertions (cmocka) fail the calling test. */
#ifndef LEASEHOLD_README_H
#define LEASEHOLD_README_H

#include <stddef.h>

/* The lines of README.md's first fenced block of `lang` that holds `marker`,
 * into out (NUL-terminated, newline-separated); fails the test if none. */
void readme_block(const char *lang, const char *marker, char *out, size_t size);

#endif
