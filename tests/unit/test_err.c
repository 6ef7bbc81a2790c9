/*
 * test_err.c - error codes, descriptions, error buffers, gRPC mapping.
 */
#include "err/err.h"

#include <string.h>

#include "test.h"

/* The gRPC code each iotca_err is documented to map to (err.h comments). */
static const struct {
	iotca_err err;
	int grpc;
} expected_grpc[] = {
    {IOTCA_OK, IOTCA_GRPC_OK},
    {IOTCA_EINVAL, IOTCA_GRPC_INVALID_ARGUMENT},
    {IOTCA_ETOOBIG, IOTCA_GRPC_INVALID_ARGUMENT},
    {IOTCA_EPRECOND, IOTCA_GRPC_FAILED_PRECONDITION},
    {IOTCA_ELIMIT, IOTCA_GRPC_RESOURCE_EXHAUSTED},
    {IOTCA_EEXIST, IOTCA_GRPC_ALREADY_EXISTS},
    {IOTCA_ENOENT, IOTCA_GRPC_NOT_FOUND},
    {IOTCA_EUNAUTH, IOTCA_GRPC_UNAUTHENTICATED},
    {IOTCA_EPERM, IOTCA_GRPC_PERMISSION_DENIED},
    {IOTCA_EUNAVAIL, IOTCA_GRPC_UNAVAILABLE},
    {IOTCA_ETIMEDOUT, IOTCA_GRPC_DEADLINE_EXCEEDED},
    {IOTCA_ECANCELED, IOTCA_GRPC_CANCELLED},
    {IOTCA_EABORTED, IOTCA_GRPC_ABORTED},
    {IOTCA_ENOTSUP, IOTCA_GRPC_UNIMPLEMENTED},
    {IOTCA_ENOMEM, IOTCA_GRPC_RESOURCE_EXHAUSTED},
    {IOTCA_EOVERFLOW, IOTCA_GRPC_RESOURCE_EXHAUSTED},
    {IOTCA_EPROTO, IOTCA_GRPC_INTERNAL},
    {IOTCA_EINTERNAL, IOTCA_GRPC_INTERNAL},
};

#define NEXPECTED (sizeof(expected_grpc) / sizeof(expected_grpc[0]))

static void
test_grpc_mapping_matches_header(void)
{
	size_t i;

	/* The table above must cover every code, so a new one fails here. */
	CHECK_EQ_INT(NEXPECTED, IOTCA_ERR_COUNT_);
	for (i = 0; i < NEXPECTED; i++) {
		CHECK_EQ_INT(expected_grpc[i].err, i);
		CHECK_EQ_INT(iotca_err_grpc_status(expected_grpc[i].err),
		             expected_grpc[i].grpc);
	}
}

static void
test_grpc_status_out_of_range(void)
{
	CHECK_EQ_INT(iotca_err_grpc_status(IOTCA_ERR_COUNT_),
	             IOTCA_GRPC_UNKNOWN);
	CHECK_EQ_INT(iotca_err_grpc_status((iotca_err)1000),
	             IOTCA_GRPC_UNKNOWN);
	CHECK_EQ_INT(iotca_err_grpc_status((iotca_err)-1), IOTCA_GRPC_UNKNOWN);
}

static void
test_strerror_never_null(void)
{
	int e;
	size_t i, j;

	for (e = 0; e < IOTCA_ERR_COUNT_; e++) {
		const char *s = iotca_strerror((iotca_err)e);
		REQUIRE(s != NULL);
		CHECK(s[0] != '\0');
		CHECK(strcmp(s, "unknown error") != 0);
	}
	/* Each description is distinct, so logs tell codes apart. */
	for (i = 0; i < IOTCA_ERR_COUNT_; i++)
		for (j = i + 1; j < IOTCA_ERR_COUNT_; j++)
			CHECK(strcmp(iotca_strerror((iotca_err)i),
			             iotca_strerror((iotca_err)j)) != 0);
	CHECK_EQ_STR(iotca_strerror(IOTCA_OK), "ok");
	CHECK_EQ_STR(iotca_strerror(IOTCA_EINVAL), "invalid argument");
	CHECK_EQ_STR(iotca_strerror(IOTCA_ERR_COUNT_), "unknown error");
	CHECK_EQ_STR(iotca_strerror((iotca_err)12345), "unknown error");
	CHECK_EQ_STR(iotca_strerror((iotca_err)-1), "unknown error");
}

static void
test_from_grpc_status(void)
{
	size_t i;
	int s;

	/* Codes that have one obvious iotca_err. */
	CHECK_EQ_INT(iotca_err_from_grpc_status(IOTCA_GRPC_OK), IOTCA_OK);
	CHECK_EQ_INT(iotca_err_from_grpc_status(IOTCA_GRPC_CANCELLED),
	             IOTCA_ECANCELED);
	CHECK_EQ_INT(iotca_err_from_grpc_status(IOTCA_GRPC_INVALID_ARGUMENT),
	             IOTCA_EINVAL);
	CHECK_EQ_INT(iotca_err_from_grpc_status(IOTCA_GRPC_DEADLINE_EXCEEDED),
	             IOTCA_ETIMEDOUT);
	CHECK_EQ_INT(iotca_err_from_grpc_status(IOTCA_GRPC_NOT_FOUND),
	             IOTCA_ENOENT);
	CHECK_EQ_INT(iotca_err_from_grpc_status(IOTCA_GRPC_ALREADY_EXISTS),
	             IOTCA_EEXIST);
	CHECK_EQ_INT(iotca_err_from_grpc_status(IOTCA_GRPC_PERMISSION_DENIED),
	             IOTCA_EPERM);
	CHECK_EQ_INT(iotca_err_from_grpc_status(IOTCA_GRPC_RESOURCE_EXHAUSTED),
	             IOTCA_ELIMIT);
	CHECK_EQ_INT(iotca_err_from_grpc_status(IOTCA_GRPC_FAILED_PRECONDITION),
	             IOTCA_EPRECOND);
	CHECK_EQ_INT(iotca_err_from_grpc_status(IOTCA_GRPC_ABORTED),
	             IOTCA_EABORTED);
	CHECK_EQ_INT(iotca_err_from_grpc_status(IOTCA_GRPC_UNIMPLEMENTED),
	             IOTCA_ENOTSUP);
	CHECK_EQ_INT(iotca_err_from_grpc_status(IOTCA_GRPC_UNAVAILABLE),
	             IOTCA_EUNAVAIL);
	CHECK_EQ_INT(iotca_err_from_grpc_status(IOTCA_GRPC_UNAUTHENTICATED),
	             IOTCA_EUNAUTH);
	CHECK_EQ_INT(iotca_err_from_grpc_status(IOTCA_GRPC_OUT_OF_RANGE),
	             IOTCA_EINVAL);
	/* Codes with no iotca_err, and garbage, become internal errors. */
	CHECK_EQ_INT(iotca_err_from_grpc_status(IOTCA_GRPC_UNKNOWN),
	             IOTCA_EINTERNAL);
	CHECK_EQ_INT(iotca_err_from_grpc_status(IOTCA_GRPC_INTERNAL),
	             IOTCA_EINTERNAL);
	CHECK_EQ_INT(iotca_err_from_grpc_status(IOTCA_GRPC_DATA_LOSS),
	             IOTCA_EINTERNAL);
	CHECK_EQ_INT(iotca_err_from_grpc_status(-1), IOTCA_EINTERNAL);
	CHECK_EQ_INT(iotca_err_from_grpc_status(17), IOTCA_EINTERNAL);
	CHECK_EQ_INT(iotca_err_from_grpc_status(9999), IOTCA_EINTERNAL);

	/*
	 * Round trip: iotca_err -> gRPC -> iotca_err keeps the gRPC status
	 * (several codes share one status, so the code itself may change).
	 */
	for (i = 0; i < IOTCA_ERR_COUNT_; i++) {
		s = iotca_err_grpc_status((iotca_err)i);
		CHECK_EQ_INT(
		    iotca_err_grpc_status(iotca_err_from_grpc_status(s)), s);
	}
	/* Every gRPC status a client can see maps to a valid iotca_err. */
	for (s = IOTCA_GRPC_OK; s <= IOTCA_GRPC_UNAUTHENTICATED; s++) {
		iotca_err e = iotca_err_from_grpc_status(s);
		CHECK((unsigned)e < IOTCA_ERR_COUNT_);
		CHECK_EQ_INT(e == IOTCA_OK, s == IOTCA_GRPC_OK);
	}
}

static void
test_errbuf_set_returns_code(void)
{
	iotca_errbuf eb;

	iotca_errbuf_clear(&eb);
	CHECK_EQ_INT(eb.code, IOTCA_OK);
	CHECK_EQ_STR(eb.msg, "");
	CHECK_EQ_INT(iotca_errbuf_set(&eb, IOTCA_ENOENT, "no device '%s' (%d)",
	                              "dev-1", 7),
	             IOTCA_ENOENT);
	CHECK_EQ_INT(eb.code, IOTCA_ENOENT);
	CHECK_EQ_STR(eb.msg, "no device 'dev-1' (7)");
	CHECK_EQ_STR(iotca_errbuf_msg(&eb), "no device 'dev-1' (7)");
	/* A second set replaces the first. */
	CHECK_EQ_INT(iotca_errbuf_set(&eb, IOTCA_EPERM, "x"), IOTCA_EPERM);
	CHECK_EQ_INT(eb.code, IOTCA_EPERM);
	CHECK_EQ_STR(eb.msg, "x");
	iotca_errbuf_clear(&eb);
	CHECK_EQ_INT(eb.code, IOTCA_OK);
	CHECK_EQ_STR(eb.msg, "");
}

static void
test_errbuf_null_allowed(void)
{
	CHECK_EQ_INT(
	    iotca_errbuf_set(NULL, IOTCA_ETIMEDOUT, "late by %d ms", 5),
	    IOTCA_ETIMEDOUT);
	CHECK_EQ_INT(iotca_errbuf_set(NULL, IOTCA_OK, "fine"), IOTCA_OK);
	iotca_errbuf_clear(NULL);
	REQUIRE(iotca_errbuf_msg(NULL) != NULL);
	CHECK_EQ_STR(iotca_errbuf_msg(NULL), "");
}

static void
test_errbuf_truncates(void)
{
	char longmsg[IOTCA_ERRMSG_MAX * 2];
	iotca_errbuf eb;
	size_t i;

	for (i = 0; i < sizeof(longmsg) - 1; i++)
		longmsg[i] = (char)('a' + i % 26);
	longmsg[sizeof(longmsg) - 1] = '\0';
	/* Poison the buffer so a missing terminator would show. */
	memset(&eb, 'Z', sizeof(eb));
	CHECK_EQ_INT(iotca_errbuf_set(&eb, IOTCA_ETOOBIG, "%s!", longmsg),
	             IOTCA_ETOOBIG);
	CHECK_EQ_INT(strlen(eb.msg), IOTCA_ERRMSG_MAX - 1);
	CHECK_EQ_INT(eb.msg[IOTCA_ERRMSG_MAX - 1], '\0');
	CHECK(memcmp(eb.msg, longmsg, IOTCA_ERRMSG_MAX - 1) == 0);

	/* Exactly IOTCA_ERRMSG_MAX - 1 characters fit whole. */
	longmsg[IOTCA_ERRMSG_MAX - 1] = '\0';
	iotca_errbuf_set(&eb, IOTCA_EINVAL, "%s", longmsg);
	CHECK_EQ_STR(eb.msg, longmsg);
}

static void
test_errbuf_msg_falls_back(void)
{
	iotca_errbuf eb;

	iotca_errbuf_clear(&eb);
	CHECK_EQ_STR(iotca_errbuf_msg(&eb), "ok");
	eb.code = IOTCA_EUNAVAIL;
	CHECK_EQ_STR(iotca_errbuf_msg(&eb), iotca_strerror(IOTCA_EUNAVAIL));
	CHECK_EQ_STR(iotca_errbuf_msg(&eb), "unavailable");
	/* An empty formatted message also falls back. */
	iotca_errbuf_set(&eb, IOTCA_EABORTED, "%s", "");
	CHECK_EQ_STR(iotca_errbuf_msg(&eb), iotca_strerror(IOTCA_EABORTED));
	eb.code = (iotca_err)777;
	CHECK_EQ_STR(iotca_errbuf_msg(&eb), "unknown error");
}

int
main(void)
{
	RUN(test_grpc_mapping_matches_header);
	RUN(test_grpc_status_out_of_range);
	RUN(test_strerror_never_null);
	RUN(test_from_grpc_status);
	RUN(test_errbuf_set_returns_code);
	RUN(test_errbuf_null_allowed);
	RUN(test_errbuf_truncates);
	RUN(test_errbuf_msg_falls_back);
	return test_summary();
}
