/* test_sha1.c — sha1_hex against the FIPS 180-1 / NIST test vectors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sha1.h"

static void check(const char *data, size_t len, const char *want)
{
    char got[41];
    memset(got, 'x', sizeof got);
    sha1_hex(data, len, got);
    assert_string_equal(got, want);
}

static void test_abc(void **state)
{
    (void)state;
    check("abc", 3, "a9993e364706816aba3e25717850c26c9cd0d89d");
}

static void test_448_bits(void **state)
{
    (void)state;
    const char *s = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    check(s, strlen(s), "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
}

static void test_empty(void **state)
{
    (void)state;
    check("", 0, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
}

static void test_million_a(void **state)
{
    (void)state;
    size_t n = 1000000;
    char *s = malloc(n);
    assert_non_null(s);
    memset(s, 'a', n);
    check(s, n, "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
    free(s);
}

/* Lengths around the padding boundaries (55, 56, 63, 64 bytes), which
 * decide whether the length fits in the last block. */
static void test_padding_boundaries(void **state)
{
    (void)state;
    char s[64];
    memset(s, 'a', sizeof s);
    check(s, 55, "c1c8bbdc22796e28c0e15163d20899b65621d65a");
    check(s, 56, "c2db330f6083854c99d4b5bfb6e8f29f201be699");
    check(s, 63, "03f09f5b158a7a8cdad920bddc29b81c18a551f5");
    check(s, 64, "0098ba824b5c16427bd7a1122a5a442a25ec644d");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_abc),
        cmocka_unit_test(test_448_bits),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_million_a),
        cmocka_unit_test(test_padding_boundaries),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
