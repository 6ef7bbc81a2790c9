/*
 * test_arena.c - the region allocator: alignment, cap, accounting, copies.
 * CI runs this under AddressSanitizer, which catches writes past a block.
 */
#include "arena/arena.h"

#include <stdint.h>
#include <string.h>

#include "test.h"

#define ALIGNED16(p) (((uintptr_t)(p)&15u) == 0)

static void
test_create_destroy(void)
{
	iotca_arena *a = iotca_arena_create(1024);

	REQUIRE(a != NULL);
	CHECK_EQ_INT(iotca_arena_used(a), 0);
	iotca_arena_destroy(a);
	iotca_arena_destroy(NULL);
	/* An arena that was never used can be destroyed too. */
	iotca_arena_destroy(iotca_arena_create(0));
}

static void
test_alignment(void)
{
	iotca_arena *a = iotca_arena_create(1 << 20);
	size_t n;
	unsigned char *p;

	REQUIRE(a != NULL);
	/* Every size from 0 to 200, twice, then a few odd large ones. */
	for (n = 0; n < 400; n++) {
		p = iotca_arena_alloc(a, n % 200);
		REQUIRE(p != NULL);
		CHECK(ALIGNED16(p));
		memset(p, 0xa5, n % 200);
	}
	p = iotca_arena_alloc(a, 4097);
	REQUIRE(p != NULL);
	CHECK(ALIGNED16(p));
	p = iotca_arena_alloc(a, 3);
	REQUIRE(p != NULL);
	CHECK(ALIGNED16(p));
	p = iotca_arena_zalloc(a, 7);
	REQUIRE(p != NULL);
	CHECK(ALIGNED16(p));
	CHECK(ALIGNED16(iotca_arena_strdup(a, "x")));
	CHECK(ALIGNED16(iotca_arena_printf(a, "%d", 12345)));
	iotca_arena_destroy(a);
}

static void
test_used_accounting(void)
{
	iotca_arena *a = iotca_arena_create(1 << 20);
	char *p, *q;

	REQUIRE(a != NULL);
	/* Sizes are rounded up to the 16-byte alignment; 0 counts as 1. */
	REQUIRE(iotca_arena_alloc(a, 1) != NULL);
	CHECK_EQ_INT(iotca_arena_used(a), 16);
	REQUIRE(iotca_arena_alloc(a, 16) != NULL);
	CHECK_EQ_INT(iotca_arena_used(a), 32);
	REQUIRE(iotca_arena_alloc(a, 17) != NULL);
	CHECK_EQ_INT(iotca_arena_used(a), 64);
	REQUIRE(iotca_arena_alloc(a, 0) != NULL);
	CHECK_EQ_INT(iotca_arena_used(a), 80);
	/* strndup counts its NUL: 15 + 1 = 16, 16 + 1 = 17 -> 32. */
	REQUIRE(iotca_arena_strndup(a, "0123456789abcdefXYZ", 15) != NULL);
	CHECK_EQ_INT(iotca_arena_used(a), 96);
	REQUIRE(iotca_arena_strndup(a, "0123456789abcdefXYZ", 16) != NULL);
	CHECK_EQ_INT(iotca_arena_used(a), 128);
	/* Consecutive small blocks do not overlap. */
	p = iotca_arena_alloc(a, 10);
	q = iotca_arena_alloc(a, 10);
	REQUIRE(p != NULL && q != NULL);
	CHECK(p + 10 <= q || q + 10 <= p);
	CHECK_EQ_INT(iotca_arena_used(a), 160);
	/* A failed allocation does not count. */
	CHECK(iotca_arena_alloc(a, SIZE_MAX) == NULL);
	CHECK_EQ_INT(iotca_arena_used(a), 160);
	iotca_arena_destroy(a);
}

static void
test_cap_enforced(void)
{
	iotca_arena *a = iotca_arena_create(1000);
	unsigned char *p;

	REQUIRE(a != NULL);
	p = iotca_arena_alloc(a, 900); /* 912 counted */
	REQUIRE(p != NULL);
	memset(p, 1, 900);
	CHECK_EQ_INT(iotca_arena_used(a), 912);
	/* 912 + 96 = 1008 would pass the cap. */
	CHECK(iotca_arena_alloc(a, 96) == NULL);
	CHECK(iotca_arena_zalloc(a, 200) == NULL);
	CHECK(iotca_arena_strndup(a, (const char *)p, 95) == NULL);
	CHECK_EQ_INT(iotca_arena_used(a), 912);
	/* Smaller ones within the cap still work: 912 + 80 = 992. */
	p = iotca_arena_alloc(a, 80);
	REQUIRE(p != NULL);
	memset(p, 2, 80);
	CHECK_EQ_INT(iotca_arena_used(a), 992);
	/* 992 + 16 = 1008 is over again, even for one byte. */
	CHECK(iotca_arena_alloc(a, 1) == NULL);
	CHECK(iotca_arena_strdup(a, "") == NULL);
	CHECK(iotca_arena_printf(a, "%s", "") == NULL);
	CHECK_EQ_INT(iotca_arena_used(a), 992);
	iotca_arena_destroy(a);

	/* A single allocation bigger than the cap never succeeds. */
	a = iotca_arena_create(100);
	REQUIRE(a != NULL);
	CHECK(iotca_arena_alloc(a, 101) == NULL);
	CHECK(iotca_arena_alloc(a, 4096) == NULL);
	CHECK(iotca_arena_alloc(a, 96) != NULL); /* 96 <= 100 */
	CHECK(iotca_arena_alloc(a, 1) == NULL);  /* 112 > 100 */
	iotca_arena_destroy(a);

	/* Cap exactly reached. */
	a = iotca_arena_create(64);
	REQUIRE(a != NULL);
	CHECK(iotca_arena_alloc(a, 48) != NULL);
	CHECK(iotca_arena_alloc(a, 16) != NULL);
	CHECK_EQ_INT(iotca_arena_used(a), 64);
	CHECK(iotca_arena_alloc(a, 1) == NULL);
	iotca_arena_destroy(a);

	/* Cap 0 hands out nothing. */
	a = iotca_arena_create(0);
	REQUIRE(a != NULL);
	CHECK(iotca_arena_alloc(a, 0) == NULL);
	CHECK(iotca_arena_alloc(a, 1) == NULL);
	CHECK_EQ_INT(iotca_arena_used(a), 0);
	iotca_arena_destroy(a);
}

static void
test_huge_sizes(void)
{
	iotca_arena *a = iotca_arena_create(SIZE_MAX);

	REQUIRE(a != NULL);
	/*
	 * Sizes whose rounding or chunk header would wrap around. (Sizes
	 * that merely fail in malloc are left out: AddressSanitizer aborts
	 * on those instead of returning NULL.)
	 */
	CHECK(iotca_arena_alloc(a, SIZE_MAX) == NULL);
	CHECK(iotca_arena_alloc(a, SIZE_MAX - 1) == NULL);
	CHECK(iotca_arena_alloc(a, SIZE_MAX - 15) == NULL);
	CHECK(iotca_arena_alloc(a, SIZE_MAX - 16) == NULL);
	CHECK(iotca_arena_alloc(a, SIZE_MAX - 32) == NULL);
	CHECK(iotca_arena_alloc(a, SIZE_MAX - 40) == NULL);
	CHECK(iotca_arena_strndup(a, "x", SIZE_MAX) == NULL);
	CHECK(iotca_arena_strndup(a, "x", SIZE_MAX - 1) == NULL);
	CHECK_EQ_INT(iotca_arena_used(a), 0);
	/* The arena still works afterwards. */
	CHECK_EQ_STR(iotca_arena_strdup(a, "still fine"), "still fine");
	iotca_arena_destroy(a);
}

static void
test_large_allocations(void)
{
	iotca_arena *a = iotca_arena_create(1 << 22);
	unsigned char *small1, *big, *small2, *big2;
	size_t i;

	REQUIRE(a != NULL);
	small1 = iotca_arena_alloc(a, 100);
	REQUIRE(small1 != NULL);
	memset(small1, 's', 100);
	/* Bigger than a chunk: gets its own block, fully writable. */
	big = iotca_arena_alloc(a, 100000);
	REQUIRE(big != NULL);
	CHECK(ALIGNED16(big));
	for (i = 0; i < 100000; i++)
		big[i] = (unsigned char)i;
	small2 = iotca_arena_alloc(a, 100);
	REQUIRE(small2 != NULL);
	memset(small2, 't', 100);
	big2 = iotca_arena_zalloc(a, 12345);
	REQUIRE(big2 != NULL);
	for (i = 0; i < 12345; i++)
		REQUIRE(big2[i] == 0);
	/* Nothing overwrote anything else. */
	for (i = 0; i < 100000; i++)
		REQUIRE(big[i] == (unsigned char)i);
	for (i = 0; i < 100; i++) {
		REQUIRE(small1[i] == 's');
		REQUIRE(small2[i] == 't');
	}
	CHECK_EQ_INT(iotca_arena_used(a), 112 + 100000 + 112 + 12352);
	iotca_arena_destroy(a);
}

static void
test_zalloc_zeroes(void)
{
	iotca_arena *a = iotca_arena_create(1 << 16);
	unsigned char *p;
	size_t i, k;

	REQUIRE(a != NULL);
	/* Dirty the chunk, then ask for zeroed memory many times. */
	for (k = 0; k < 20; k++) {
		p = iotca_arena_alloc(a, 64);
		REQUIRE(p != NULL);
		memset(p, 0xff, 64);
		p = iotca_arena_zalloc(a, 33 + k);
		REQUIRE(p != NULL);
		for (i = 0; i < 33 + k; i++)
			REQUIRE(p[i] == 0);
	}
	CHECK(iotca_arena_zalloc(a, 0) != NULL);
	iotca_arena_destroy(a);
}

static void
test_strings(void)
{
	iotca_arena *a = iotca_arena_create(1 << 16);
	const char src[] = "device-42/temperature";
	char *s, *t;

	REQUIRE(a != NULL);
	s = iotca_arena_strndup(a, src, 9);
	CHECK_EQ_STR(s, "device-42");
	CHECK(s != src);
	/* strndup copies exactly n bytes even past an embedded NUL. */
	s = iotca_arena_strndup(a, "ab\0cd", 5);
	REQUIRE(s != NULL);
	CHECK(memcmp(s, "ab\0cd", 6) == 0);
	s = iotca_arena_strndup(a, "whatever", 0);
	CHECK_EQ_STR(s, "");
	s = iotca_arena_strdup(a, src);
	CHECK_EQ_STR(s, src);
	t = iotca_arena_strdup(a, "");
	CHECK_EQ_STR(t, "");
	CHECK_EQ_STR(s, src); /* not overwritten by the next allocation */
	s = iotca_arena_printf(a, "%s=%d;%05.1f", "temp", -3, 21.5);
	CHECK_EQ_STR(s, "temp=-3;021.5");
	s = iotca_arena_printf(a, "%s", "");
	CHECK_EQ_STR(s, "");
	/* A printf result bigger than a chunk. */
	s = iotca_arena_printf(a, "%05000d|", 9);
	REQUIRE(s != NULL);
	CHECK_EQ_INT(strlen(s), 5001);
	CHECK(s[0] == '0' && s[4999] == '9' && s[5000] == '|');
	iotca_arena_destroy(a);
}

static void
test_many_allocations(void)
{
	iotca_arena *a = iotca_arena_create(64u << 20);
	char *strs[5000];
	size_t i, before, n;

	REQUIRE(a != NULL);
	for (i = 0; i < 5000; i++) {
		before = iotca_arena_used(a);
		n = (i * 37) % 700;
		strs[i] = iotca_arena_printf(a, "%zu:%*s", i, (int)n, "");
		REQUIRE(strs[i] != NULL);
		REQUIRE(ALIGNED16(strs[i]));
		/* Length is digits of i + 1 + n; used grows by that + NUL,
		 * rounded up to 16. */
		REQUIRE(iotca_arena_used(a) - before ==
		        ((strlen(strs[i]) + 1 + 15) & ~(size_t)15));
	}
	/* Every string is intact after all the others were allocated. */
	for (i = 0; i < 5000; i++) {
		char head[32];
		snprintf(head, sizeof(head), "%zu:", i);
		REQUIRE(strncmp(strs[i], head, strlen(head)) == 0);
		REQUIRE(strlen(strs[i]) == strlen(head) + (i * 37) % 700);
	}
	iotca_arena_destroy(a);
}

int
main(void)
{
	RUN(test_create_destroy);
	RUN(test_alignment);
	RUN(test_used_accounting);
	RUN(test_cap_enforced);
	RUN(test_huge_sizes);
	RUN(test_large_allocations);
	RUN(test_zalloc_zeroes);
	RUN(test_strings);
	RUN(test_many_allocations);
	return test_summary();
}
