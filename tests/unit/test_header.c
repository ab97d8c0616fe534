/* test_header.c — the example at the top of include/leasehold.h is
 * examples/minimal.c (which test_recipes builds, runs and finds in the
 * README).
 *
 * The rule, exactly.  The example starts two lines after the line
 * " * A minimal program (this is examples/minimal.c):" (the line between is
 * " *").  Each line of the program is in the header as " *     " (the
 * comment's " * " and four spaces of indentation) followed by the line,
 * and each empty line as " *" alone, with no trailing space.  The example
 * ends at the first line that is neither; the empty lines just before that
 * line (the " *" before " * Threads") are not part of it.  What is left,
 * each line ended by "\n", must equal examples/minimal.c byte for byte.
 *
 * Both files are read from $LEASEHOLD_SOURCE_DIR (set by ctest), or from
 * the current directory without it, as tests/support/readme.c does.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "readme.h"

#define MARKER " * A minimal program (this is examples/minimal.c):\n *\n"
#define PREFIX " *     "

/* The example in `header` by the rule above (malloc'd), or NULL when the
 * header has no MARKER. */
static char *header_example(const char *header)
{
    const char *p = strstr(header, MARKER);
    if (!p)
        return NULL;
    p += strlen(MARKER);
    char *out = malloc(strlen(p) + 1);
    assert_non_null(out);
    size_t len = 0, kept = 0; /* kept: len up to the last non-empty line */
    while (*p) {
        const char *eol = strchr(p, '\n');
        size_t n = eol ? (size_t)(eol - p) : strlen(p);
        if (n == 2 && strncmp(p, " *", 2) == 0) {
            out[len++] = '\n';
        } else if (n >= strlen(PREFIX) && strncmp(p, PREFIX, strlen(PREFIX)) == 0) {
            memcpy(out + len, p + strlen(PREFIX), n - strlen(PREFIX));
            len += n - strlen(PREFIX);
            out[len++] = '\n';
            kept = len;
        } else {
            break;
        }
        p += eol ? n + 1 : n;
    }
    out[kept] = '\0';
    return out;
}

static void test_example_is_minimal_c(void **state)
{
    (void)state;
    char *header = source_file("include/leasehold.h");
    char *minimal = source_file("examples/minimal.c");
    char *example = header_example(header);
    if (!example)
        fail_msg("include/leasehold.h has no line \"%.52s\"", MARKER);
    assert_string_equal(example, minimal);
    free(example);
    free(minimal);
    free(header);
}

/* The rule catches what it should: a line that lost its indentation ends
 * the example early (so the comparison fails), an empty line with a
 * trailing space does too, and a header without the marker has no
 * example. */
static void test_rule_catches_differences(void **state)
{
    (void)state;
    const char *program = "int main(void)\n{\n\n    return 0;\n}\n";
    const char *good = "/*\n" MARKER " *     int main(void)\n *     {\n *\n"
                       " *         return 0;\n *     }\n *\n * Threads\n */\n";
    char *example = header_example(good);
    assert_non_null(example);
    assert_string_equal(example, program);
    free(example);

    const char *unindented = "/*\n" MARKER " *     int main(void)\n *    {\n *\n"
                             " *         return 0;\n *     }\n *\n * Threads\n */\n";
    example = header_example(unindented);
    assert_string_equal(example, "int main(void)\n");
    free(example);

    const char *trailing_space = "/*\n" MARKER " *     int main(void)\n *     {\n * \n"
                                 " *         return 0;\n *     }\n *\n * Threads\n */\n";
    example = header_example(trailing_space);
    assert_string_equal(example, "int main(void)\n{\n");
    free(example);

    assert_null(header_example("/*\n * A minimal program:\n *\n *     int main(void)\n */\n"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_example_is_minimal_c),
        cmocka_unit_test(test_rule_catches_differences),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
