/*
 * test_buf.c - the capped growable buffer.
 */
#include "buf/buf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"

/* The contents are NUL-terminated right after len bytes. */
static int
buf_terminated(const iotca_buf *b)
{
	return b->data != NULL && b->size > b->len && b->data[b->len] == '\0';
}

static void
test_init_empty(void)
{
	iotca_buf b;

	iotca_buf_init(&b, 100);
	CHECK(b.data == NULL);
	CHECK_EQ_INT(b.len, 0);
	CHECK_EQ_INT(b.size, 0);
	CHECK_EQ_INT(b.cap, 100);
	iotca_buf_free(&b);
	CHECK(b.data == NULL);
	CHECK_EQ_INT(b.cap, 100);
}

static void
test_append_within_cap(void)
{
	iotca_buf b;

	iotca_buf_init(&b, 100);
	CHECK_EQ_INT(iotca_buf_append(&b, "abc", 3), IOTCA_OK);
	CHECK_EQ_INT(b.len, 3);
	CHECK(buf_terminated(&b));
	CHECK_EQ_STR(b.data, "abc");
	CHECK_EQ_INT(iotca_buf_append_str(&b, "def"), IOTCA_OK);
	CHECK(buf_terminated(&b));
	CHECK_EQ_STR(b.data, "abcdef");
	/* Binary bytes, embedded NUL included, are kept as given. */
	CHECK_EQ_INT(iotca_buf_append(&b, "x\0y", 3), IOTCA_OK);
	CHECK_EQ_INT(b.len, 9);
	CHECK(memcmp(b.data, "abcdefx\0y", 9) == 0);
	CHECK(buf_terminated(&b));
	/* Appending nothing is fine and changes nothing. */
	CHECK_EQ_INT(iotca_buf_append(&b, NULL, 0), IOTCA_OK);
	CHECK_EQ_INT(iotca_buf_append_str(&b, ""), IOTCA_OK);
	CHECK_EQ_INT(b.len, 9);
	CHECK(buf_terminated(&b));
	iotca_buf_free(&b);
	CHECK(b.data == NULL);
	CHECK_EQ_INT(b.len, 0);
}

static void
test_append_exactly_at_cap(void)
{
	char big[200];
	iotca_buf b;

	memset(big, 'q', sizeof(big));
	iotca_buf_init(&b, 150);
	CHECK_EQ_INT(iotca_buf_append(&b, big, 100), IOTCA_OK);
	CHECK_EQ_INT(iotca_buf_append(&b, big, 50), IOTCA_OK);
	CHECK_EQ_INT(b.len, 150);
	CHECK(buf_terminated(&b));
	CHECK_EQ_INT(strlen(b.data), 150);
	/* The NUL is not counted against the cap, nor is more allocated. */
	CHECK(b.size <= 151);
	/* Full: even one more byte is refused, and nothing changes. */
	CHECK_EQ_INT(iotca_buf_append(&b, "z", 1), IOTCA_ETOOBIG);
	CHECK_EQ_INT(b.len, 150);
	CHECK(buf_terminated(&b));
	CHECK_EQ_INT(iotca_buf_append(&b, "", 0), IOTCA_OK);
	iotca_buf_free(&b);

	/* A single append of exactly cap bytes into an empty buffer. */
	iotca_buf_init(&b, 200);
	CHECK_EQ_INT(iotca_buf_append(&b, big, 200), IOTCA_OK);
	CHECK_EQ_INT(b.len, 200);
	CHECK(buf_terminated(&b));
	iotca_buf_free(&b);
}

static void
test_one_over_cap(void)
{
	char big[101];
	iotca_buf b;

	memset(big, 'w', sizeof(big));
	iotca_buf_init(&b, 100);
	/* One byte over into an empty buffer: refused, nothing allocated. */
	CHECK_EQ_INT(iotca_buf_append(&b, big, 101), IOTCA_ETOOBIG);
	CHECK(b.data == NULL);
	CHECK_EQ_INT(b.len, 0);

	CHECK_EQ_INT(iotca_buf_append_str(&b, "hello"), IOTCA_OK);
	/* 5 + 96 = 101: one byte over; the contents stay "hello". */
	CHECK_EQ_INT(iotca_buf_append(&b, big, 96), IOTCA_ETOOBIG);
	CHECK_EQ_INT(b.len, 5);
	CHECK_EQ_STR(b.data, "hello");
	CHECK_EQ_INT(iotca_buf_printf(&b, "%096d", 1), IOTCA_ETOOBIG);
	CHECK_EQ_INT(b.len, 5);
	CHECK_EQ_STR(b.data, "hello");
	/* Huge lengths must not wrap around the cap check. */
	CHECK_EQ_INT(iotca_buf_append(&b, big, SIZE_MAX), IOTCA_ETOOBIG);
	CHECK_EQ_INT(iotca_buf_append(&b, big, SIZE_MAX - 2), IOTCA_ETOOBIG);
	CHECK_EQ_INT(b.len, 5);
	CHECK_EQ_STR(b.data, "hello");
	/* 5 + 95 = 100 still fits after the refusals. */
	CHECK_EQ_INT(iotca_buf_append(&b, big, 95), IOTCA_OK);
	CHECK_EQ_INT(b.len, 100);
	CHECK(buf_terminated(&b));
	CHECK(memcmp(b.data, "hellowww", 8) == 0);
	iotca_buf_free(&b);
}

static void
test_printf_growth(void)
{
	iotca_buf b;
	iotca_buf want;
	int i;

	iotca_buf_init(&b, 1 << 20);
	iotca_buf_init(&want, 1 << 20);
	for (i = 0; i < 2000; i++) {
		char item[32];
		int n = snprintf(item, sizeof(item), "item-%d,", i);
		REQUIRE(n > 0);
		REQUIRE(iotca_buf_printf(&b, "item-%d,", i) == IOTCA_OK);
		REQUIRE(iotca_buf_append(&want, item, (size_t)n) == IOTCA_OK);
		REQUIRE(buf_terminated(&b));
		REQUIRE(b.len == want.len);
	}
	CHECK(b.size > 4096); /* it did grow well past the first chunk */
	CHECK(memcmp(b.data, want.data, want.len) == 0);
	CHECK_EQ_STR(b.data, want.data);
	CHECK(strncmp(b.data, "item-0,item-1,item-2,", 21) == 0);
	CHECK(strstr(b.data, "item-1999,") != NULL);
	/* An empty format appends nothing and keeps the terminator. */
	CHECK_EQ_INT(iotca_buf_printf(&b, "%s", ""), IOTCA_OK);
	CHECK_EQ_INT(b.len, want.len);
	CHECK(buf_terminated(&b));
	iotca_buf_free(&b);
	iotca_buf_free(&want);
}

static void
test_printf_first_and_mixed(void)
{
	iotca_buf b;

	iotca_buf_init(&b, 64);
	CHECK_EQ_INT(iotca_buf_printf(&b, "%s=%d", "n", 42), IOTCA_OK);
	CHECK_EQ_STR(b.data, "n=42");
	CHECK(buf_terminated(&b));
	CHECK_EQ_INT(iotca_buf_append_str(&b, ";"), IOTCA_OK);
	CHECK_EQ_INT(iotca_buf_printf(&b, "%c%c", 'o', 'k'), IOTCA_OK);
	CHECK_EQ_STR(b.data, "n=42;ok");
	CHECK_EQ_INT(b.len, 7);
	/* printf to exactly the cap works; one more character does not. */
	CHECK_EQ_INT(iotca_buf_printf(&b, "%057d", 0), IOTCA_OK);
	CHECK_EQ_INT(b.len, 64);
	CHECK(buf_terminated(&b));
	CHECK_EQ_INT(iotca_buf_printf(&b, "x"), IOTCA_ETOOBIG);
	CHECK_EQ_INT(b.len, 64);
	CHECK(buf_terminated(&b));
	iotca_buf_free(&b);
}

static void
test_take(void)
{
	iotca_buf b;
	size_t len = 999;
	char *p;

	iotca_buf_init(&b, 1000);
	CHECK_EQ_INT(iotca_buf_append_str(&b, "payload"), IOTCA_OK);
	p = iotca_buf_take(&b, &len);
	REQUIRE(p != NULL);
	CHECK_EQ_INT(len, 7);
	CHECK_EQ_STR(p, "payload");
	/* The buffer is empty and no longer points at the taken memory. */
	CHECK(b.data == NULL);
	CHECK_EQ_INT(b.len, 0);
	CHECK_EQ_INT(b.size, 0);
	CHECK_EQ_INT(b.cap, 1000);
	/* It can be used again; the taken memory is unaffected. */
	CHECK_EQ_INT(iotca_buf_append_str(&b, "second"), IOTCA_OK);
	CHECK_EQ_STR(b.data, "second");
	CHECK(b.data != p);
	CHECK_EQ_STR(p, "payload");
	free(p);
	/* len may be NULL. */
	p = iotca_buf_take(&b, NULL);
	CHECK_EQ_STR(p, "second");
	free(p);
	/* Taking from a never-used buffer gives NULL and length 0. */
	len = 5;
	p = iotca_buf_take(&b, &len);
	CHECK(p == NULL);
	CHECK_EQ_INT(len, 0);
	iotca_buf_free(&b);
}

static void
test_reset_keeps_memory(void)
{
	iotca_buf b;
	char *mem;
	size_t size;

	iotca_buf_init(&b, 1000);
	iotca_buf_reset(&b); /* on a never-used buffer: harmless */
	CHECK(b.data == NULL);
	CHECK_EQ_INT(iotca_buf_printf(&b, "%0300d", 7), IOTCA_OK);
	mem = b.data;
	size = b.size;
	iotca_buf_reset(&b);
	CHECK_EQ_INT(b.len, 0);
	CHECK(b.data == mem);
	CHECK_EQ_INT(b.size, size);
	CHECK(buf_terminated(&b));
	CHECK_EQ_STR(b.data, "");
	/* Refilling up to the old length does not reallocate. */
	CHECK_EQ_INT(iotca_buf_append_str(&b, "again"), IOTCA_OK);
	CHECK(b.data == mem);
	CHECK_EQ_STR(b.data, "again");
	/* The cap still counts from zero after a reset. */
	iotca_buf_reset(&b);
	CHECK_EQ_INT(iotca_buf_printf(&b, "%01000d", 1), IOTCA_OK);
	CHECK_EQ_INT(b.len, 1000);
	iotca_buf_free(&b);
}

static void
test_cap_zero(void)
{
	iotca_buf b;

	iotca_buf_init(&b, 0);
	CHECK_EQ_INT(iotca_buf_append(&b, "a", 1), IOTCA_ETOOBIG);
	CHECK_EQ_INT(iotca_buf_printf(&b, "%d", 1), IOTCA_ETOOBIG);
	CHECK_EQ_INT(b.len, 0);
	/* Nothing at all is allowed, and gives an empty string. */
	CHECK_EQ_INT(iotca_buf_append(&b, "", 0), IOTCA_OK);
	CHECK(buf_terminated(&b));
	CHECK_EQ_STR(b.data, "");
	CHECK_EQ_INT(iotca_buf_printf(&b, "%s", ""), IOTCA_OK);
	CHECK_EQ_INT(b.len, 0);
	CHECK_EQ_INT(iotca_buf_append_str(&b, "b"), IOTCA_ETOOBIG);
	CHECK_EQ_STR(b.data, "");
	iotca_buf_free(&b);
}

/* A cap of SIZE_MAX means "no practical limit" and must still work. */
static void
test_cap_unlimited(void)
{
	iotca_buf b;
	int i;

	iotca_buf_init(&b, SIZE_MAX);
	CHECK_EQ_INT(iotca_buf_append_str(&b, "hello"), IOTCA_OK);
	CHECK_EQ_STR(b.data, "hello");
	CHECK(b.size >= 6);
	for (i = 0; i < 100; i++)
		REQUIRE(iotca_buf_printf(&b, "%d", i % 10) == IOTCA_OK);
	CHECK_EQ_INT(b.len, 105);
	CHECK(buf_terminated(&b));
	CHECK(strncmp(b.data, "hello0123456789", 15) == 0);
	iotca_buf_free(&b);
}

static void
test_many_buffers_sizes(void)
{
	char src[300];
	iotca_buf b;
	size_t cap, n;

	for (n = 0; n < sizeof(src); n++)
		src[n] = (char)('A' + n % 26);
	/* Every cap around the allocator's first sizes, filled to the brim. */
	for (cap = 0; cap < 260; cap++) {
		iotca_buf_init(&b, cap);
		for (n = 0; n < cap; n++)
			REQUIRE(iotca_buf_append(&b, src + n, 1) == IOTCA_OK);
		REQUIRE(iotca_buf_append(&b, "!", 1) == IOTCA_ETOOBIG);
		CHECK_EQ_INT(b.len, cap);
		if (cap > 0) {
			CHECK(buf_terminated(&b));
			CHECK(memcmp(b.data, src, cap) == 0);
			CHECK(b.size <= cap + 1);
		}
		iotca_buf_free(&b);
	}
}

int
main(void)
{
	RUN(test_init_empty);
	RUN(test_append_within_cap);
	RUN(test_append_exactly_at_cap);
	RUN(test_one_over_cap);
	RUN(test_printf_growth);
	RUN(test_printf_first_and_mixed);
	RUN(test_take);
	RUN(test_reset_keeps_memory);
	RUN(test_cap_zero);
	RUN(test_cap_unlimited);
	RUN(test_many_buffers_sizes);
	return test_summary();
}
