/* readme.c — the README's code blocks and the source tree's files (see
 * readme.h). */
#include "readme.h"

#include <setjmp.h>
#include <stdarg.h>
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* The lines of README.md's first fenced block of `lang` that holds `marker`,
 * into out (NUL-terminated, newline-separated); fails the test if none. */
void readme_block(const char *lang, const char *marker, char *out, size_t size)
{
    const char *dir = getenv("LEASEHOLD_SOURCE_DIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/README.md", dir ? dir : ".");
    FILE *f = fopen(path, "r");
    if (!f)
        fail_msg("cannot read %s", path);
    char fence[32], line[1024];
    snprintf(fence, sizeof fence, "```%s\n", lang);
    bool in = false;
    size_t len = 0;
    out[0] = '\0';
    while (fgets(line, sizeof line, f)) {
        if (!in && strcmp(line, fence) == 0) {
            in = true;
            len = 0;
            out[0] = '\0';
        } else if (in && strncmp(line, "```", 3) == 0) {
            in = false;
            if (strstr(out, marker))
                break;
            out[0] = '\0';
        } else if (in) {
            len += (size_t)snprintf(out + len, size - len, "%s", line);
            assert_true(len < size);
        }
    }
    fclose(f);
    if (!strstr(out, marker))
        fail_msg("README.md has no ```%s block with '%s'", lang, marker);
}

char *source_file(const char *rel)
{
    const char *dir = getenv("LEASEHOLD_SOURCE_DIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir ? dir : ".", rel);
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot read %s: %s", path, strerror(errno));
    char *text = NULL;
    size_t size = 0;
    FILE *out = open_memstream(&text, &size);
    assert_non_null(out);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        fwrite(buf, 1, n, out);
    fclose(f);
    fclose(out);
    return text;
}
