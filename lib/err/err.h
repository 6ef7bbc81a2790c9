/*
 * err.h - the one error type of iotca.
 *
 * Every fallible function returns an iotca_err; IOTCA_OK (0) is success.
 * Modules that see errno, OpenSSL error queues, curl or gRPC codes turn them
 * into an iotca_err here-and-now and put the human explanation into an
 * iotca_errbuf, so nothing below a module leaks past it.
 *
 * iotca_err_grpc_status() is the single mapping to gRPC status codes.
 */
#ifndef IOTCA_ERR_H
#define IOTCA_ERR_H

#include <stddef.h>

typedef enum iotca_err {
	IOTCA_OK = 0,
	IOTCA_EINVAL,    /* malformed input: INVALID_ARGUMENT */
	IOTCA_ETOOBIG,   /* input over its cap: INVALID_ARGUMENT */
	IOTCA_EPRECOND,  /* a rule is not met: FAILED_PRECONDITION */
	IOTCA_ELIMIT,    /* a quota is used up: RESOURCE_EXHAUSTED */
	IOTCA_EEXIST,    /* already exists: ALREADY_EXISTS */
	IOTCA_ENOENT,    /* not found (or not yours): NOT_FOUND */
	IOTCA_EUNAUTH,   /* no or bad credential: UNAUTHENTICATED */
	IOTCA_EPERM,     /* credential not allowed here: PERMISSION_DENIED */
	IOTCA_EUNAVAIL,  /* a dependency is unreachable: UNAVAILABLE */
	IOTCA_ETIMEDOUT, /* deadline passed: DEADLINE_EXCEEDED */
	IOTCA_ECANCELED, /* the caller went away: CANCELLED */
	IOTCA_EABORTED,  /* lost a race, retry: ABORTED */
	IOTCA_ENOTSUP,   /* not implemented: UNIMPLEMENTED */
	IOTCA_ENOMEM,    /* out of memory: RESOURCE_EXHAUSTED */
	IOTCA_EOVERFLOW, /* a reply from a dependency over its cap:
	                    RESOURCE_EXHAUSTED */
	IOTCA_EPROTO,    /* a dependency answered nonsense: INTERNAL */
	IOTCA_EINTERNAL, /* a bug or an unexpected system error: INTERNAL */
	IOTCA_ERR_COUNT_ /* not an error; keep last */
} iotca_err;

/* The numeric gRPC status codes (grpc/status.h); stable across releases. */
enum {
	IOTCA_GRPC_OK = 0,
	IOTCA_GRPC_CANCELLED = 1,
	IOTCA_GRPC_UNKNOWN = 2,
	IOTCA_GRPC_INVALID_ARGUMENT = 3,
	IOTCA_GRPC_DEADLINE_EXCEEDED = 4,
	IOTCA_GRPC_NOT_FOUND = 5,
	IOTCA_GRPC_ALREADY_EXISTS = 6,
	IOTCA_GRPC_PERMISSION_DENIED = 7,
	IOTCA_GRPC_RESOURCE_EXHAUSTED = 8,
	IOTCA_GRPC_FAILED_PRECONDITION = 9,
	IOTCA_GRPC_ABORTED = 10,
	IOTCA_GRPC_OUT_OF_RANGE = 11,
	IOTCA_GRPC_UNIMPLEMENTED = 12,
	IOTCA_GRPC_INTERNAL = 13,
	IOTCA_GRPC_UNAVAILABLE = 14,
	IOTCA_GRPC_DATA_LOSS = 15,
	IOTCA_GRPC_UNAUTHENTICATED = 16,
};

/* An error code with its explanation: what was wrong and what to do. */
#define IOTCA_ERRMSG_MAX 512
typedef struct iotca_errbuf {
	iotca_err code;
	char msg[IOTCA_ERRMSG_MAX];
} iotca_errbuf;

/* Short stable description of a code ("invalid argument"). Never NULL. */
const char *iotca_strerror(iotca_err err);

/* gRPC status code for an iotca_err. */
int iotca_err_grpc_status(iotca_err err);

/* iotca_err for a gRPC status code (for clients). */
iotca_err iotca_err_from_grpc_status(int status);

/*
 * Records code and a printf-style message in eb (which may be NULL) and
 * returns code, so callers can write: return iotca_errbuf_set(eb, ...).
 */
iotca_err iotca_errbuf_set(iotca_errbuf *eb, iotca_err code, const char *fmt,
                           ...) __attribute__((format(printf, 3, 4)));

/* Clears eb to IOTCA_OK with an empty message. eb may be NULL. */
void iotca_errbuf_clear(iotca_errbuf *eb);

/* The message in eb, or iotca_strerror(code) when none was recorded. */
const char *iotca_errbuf_msg(const iotca_errbuf *eb);

#endif /* IOTCA_ERR_H */
