/*
 * test_identity.c - identity_parse(): the edge's message, what a JSON
 * writer may legally vary, and what a hostile or broken peer may send.
 */
#include <stdlib.h>
#include <string.h>

#include "identity.h"
#include "test.h"

/* Parses a NUL-terminated text; returns identity_parse's result. */
static int
parse(const char *text, device_identity *id, const char **why)
{
	return identity_parse(text, strlen(text), id, why);
}

static void
test_edge_message(void)
{
	device_identity id;
	const char *why = NULL;

	REQUIRE(parse("{\"productKey\":\"a1B2c3D4e5F\",\"deviceName\":"
	              "\"sensor-17\"}",
	              &id, &why) == 0);
	CHECK_EQ_STR(id.product_key, "a1B2c3D4e5F");
	CHECK_EQ_STR(id.device_name, "sensor-17");
}

static void
test_legal_variations(void)
{
	device_identity id;
	const char *why = NULL;

	/* order, whitespace, escapes, other members of every kind */
	REQUIRE(parse(" {\r\n \"deviceName\" : \"d\\u0065v_1.x@y:z\",\t"
	              "\"extra\":[1,{\"a\":null},\"s\\\"\",true],"
	              "\"n\":-1.5e3,\"productKey\":\"AAAAAAAAAA\\u0031\"} ",
	              &id, &why) == 0);
	CHECK_EQ_STR(id.product_key, "AAAAAAAAAA1");
	CHECK_EQ_STR(id.device_name, "dev_1.x@y:z");
	/* a key longer than any of ours is skipped */
	REQUIRE(parse("{\"productKeyproductKeyproductKeyproductKey\":\"x\","
	              "\"productKey\":\"BBBBBBBBBBB\",\"deviceName\":\"abcd\"}",
	              &id, &why) == 0);
	CHECK_EQ_STR(id.product_key, "BBBBBBBBBBB");
	/* 32 characters: the longest DeviceName */
	REQUIRE(parse("{\"productKey\":\"BBBBBBBBBBB\",\"deviceName\":"
	              "\"0123456789abcdef0123456789abcdef\"}",
	              &id, &why) == 0);
	CHECK_EQ_INT(strlen(id.device_name), 32);
}

/* Each input must be refused, with a reason, and leave *id alone. */
static void
test_refused(void)
{
	static const char *const bad[] = {
	    "",
	    "[]",
	    "{}",
	    "{\"productKey\":\"a1B2c3D4e5F\"}",
	    "{\"deviceName\":\"sensor-17\"}",
	    "{\"productKey\":\"a1B2c3D4e5F\",\"deviceName\":\"sensor-17\"",
	    "{\"productKey\":\"a1B2c3D4e5F\",\"deviceName\":\"sensor-17\"}x",
	    "{\"productKey\":\"a1B2c3D4e5F\",\"deviceName\":\"sensor-17\",}",
	    "{\"productKey\":\"a1B2c3D4e5F\" \"deviceName\":\"sensor-17\"}",
	    /* a wrong form: length, characters, type */
	    "{\"productKey\":\"a1B2c3D4e5\",\"deviceName\":\"sensor-17\"}",
	    "{\"productKey\":\"a1B2c3D4e5FF\",\"deviceName\":\"sensor-17\"}",
	    "{\"productKey\":\"a1B2c3D4e-F\",\"deviceName\":\"sensor-17\"}",
	    "{\"productKey\":\"a1B2c3D4e5F\",\"deviceName\":\"abc\"}",
	    "{\"productKey\":\"a1B2c3D4e5F\",\"deviceName\":\"a/b/c\"}",
	    "{\"productKey\":\"a1B2c3D4e5F\",\"deviceName\":\"dev+#\"}",
	    "{\"productKey\":\"a1B2c3D4e5F\",\"deviceName\":"
	    "\"0123456789abcdef0123456789abcdefX\"}",
	    "{\"productKey\":\"a1B2c3D4e5F\",\"deviceName\":17}",
	    "{\"productKey\":\"a1B2c3D4e5F\",\"deviceName\":\"dev\\u00e9x\"}",
	    "{\"productKey\":\"a1B2c3D4e5F\",\"deviceName\":\"dev\\u0000x\"}",
	    /* a NUL hidden in a key must not make it one of ours */
	    "{\"productKey\\u0000\":\"a1B2c3D4e5F\",\"deviceName\":\"abcd\"}",
	    /* twice */
	    "{\"productKey\":\"a1B2c3D4e5F\",\"productKey\":\"BBBBBBBBBBB\","
	    "\"deviceName\":\"abcd\"}",
	    /* broken strings and escapes */
	    "{\"productKey\":\"a1B2c3D4e5F\",\"deviceName\":\"ab\ncd\"}",
	    "{\"productKey\":\"a1B2c3D4e5F\",\"deviceName\":\"ab\\qcd\"}",
	    "{\"productKey\":\"a1B2c3D4e5F\",\"deviceName\":\"ab\\u00",
	    "{\"productKey\":\"a1B2c3D4e5F\",\"deviceName\":\"abcd",
	    "{\"productKey\":\"a1B2c3D4e5F\",\"deviceName\":\"abcd\\",
	    "{\"x\":tru,\"productKey\":\"a1B2c3D4e5F\",\"deviceName\":"
	    "\"abcd\"}",
	    /* too deep */
	    "{\"x\":[[[[[[[[[[1]]]]]]]]]],\"productKey\":\"a1B2c3D4e5F\","
	    "\"deviceName\":\"abcd\"}",
	};
	device_identity id;
	const char *why;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&id, 'z', sizeof(id));
		why = NULL;
		if (parse(bad[i], &id, &why) != -1 || why == NULL) {
			fprintf(stderr, "accepted: %s\n", bad[i]);
			CHECK(0);
		}
		CHECK(id.product_key[0] == 'z'); /* untouched */
	}
}

static void
test_caps(void)
{
	char *big;
	device_identity id;
	const char *why = NULL;
	size_t n = IDENTITY_MAX_PAYLOAD + 1, pad;
	const char *msg = "{\"productKey\":\"a1B2c3D4e5F\",\"deviceName\":"
	                  "\"sensor-17\",\"pad\":\"";

	/* a valid message padded past the cap is refused, at the cap not */
	big = malloc(n + 1);
	REQUIRE(big != NULL);
	memset(big, 'x', n);
	memcpy(big, msg, strlen(msg));
	big[n - 2] = '"';
	big[n - 1] = '}';
	CHECK(identity_parse(big, n, &id, &why) == -1);
	pad = n - 1;
	memmove(big + strlen(msg), big + strlen(msg) + 1, n - strlen(msg) - 1);
	CHECK(identity_parse(big, pad, &id, &why) == 0);
	/* only len bytes are read: a message cut short is refused */
	CHECK(identity_parse(big, 20, &id, &why) == -1);
	/* libmosquitto passes NULL for an empty payload */
	CHECK(identity_parse(NULL, 0, &id, &why) == -1);
	free(big);
}

int
main(void)
{
	RUN(test_edge_message);
	RUN(test_legal_variations);
	RUN(test_refused);
	RUN(test_caps);
	return test_summary();
}
