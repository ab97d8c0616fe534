/* readme.h — the README's code blocks and the source tree's files, for the
 * tests that check documentation against code and run its recipes as
 * written.  The tree is $LEASEHOLD_SOURCE_DIR (set by ctest; "." unset).
 * Assertions (cmocka) fail the calling test. */
#ifndef LEASEHOLD_README_H
#define LEASEHOLD_README_H

#include <stddef.h>

/* The lines of README.md's first fenced block of `lang` that holds `marker`,
 * into out (NUL-terminated, newline-separated); fails the test if none. */
void readme_block(const char *lang, const char *marker, char *out, size_t size);

/* The whole of the file at `rel` in the source tree, malloc'd and
 * NUL-terminated; fails the test if it cannot be read. */
char *source_file(const char *rel);

#endif
