/*
 * err.c - iotca error codes, their descriptions and the gRPC mapping.
 */
#include "err/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const struct {
	const char *text;
	int grpc;
} err_table[IOTCA_ERR_COUNT_] = {
    [IOTCA_OK] = {"ok", IOTCA_GRPC_OK},
    [IOTCA_EINVAL] = {"invalid argument", IOTCA_GRPC_INVALID_ARGUMENT},
    [IOTCA_ETOOBIG] = {"input too large", IOTCA_GRPC_INVALID_ARGUMENT},
    [IOTCA_EPRECOND] = {"failed precondition", IOTCA_GRPC_FAILED_PRECONDITION},
    [IOTCA_ELIMIT] = {"limit reached", IOTCA_GRPC_RESOURCE_EXHAUSTED},
    [IOTCA_EEXIST] = {"already exists", IOTCA_GRPC_ALREADY_EXISTS},
    [IOTCA_ENOENT] = {"not found", IOTCA_GRPC_NOT_FOUND},
    [IOTCA_EUNAUTH] = {"unauthenticated", IOTCA_GRPC_UNAUTHENTICATED},
    [IOTCA_EPERM] = {"permission denied", IOTCA_GRPC_PERMISSION_DENIED},
    [IOTCA_EUNAVAIL] = {"unavailable", IOTCA_GRPC_UNAVAILABLE},
    [IOTCA_ETIMEDOUT] = {"deadline exceeded", IOTCA_GRPC_DEADLINE_EXCEEDED},
    [IOTCA_ECANCELED] = {"cancelled", IOTCA_GRPC_CANCELLED},
    [IOTCA_EABORTED] = {"aborted by a concurrent change", IOTCA_GRPC_ABORTED},
    [IOTCA_ENOTSUP] = {"not implemented", IOTCA_GRPC_UNIMPLEMENTED},
    [IOTCA_ENOMEM] = {"out of memory", IOTCA_GRPC_RESOURCE_EXHAUSTED},
    [IOTCA_EOVERFLOW] = {"reply too large", IOTCA_GRPC_RESOURCE_EXHAUSTED},
    [IOTCA_EPROTO] = {"protocol error", IOTCA_GRPC_INTERNAL},
    [IOTCA_EINTERNAL] = {"internal error", IOTCA_GRPC_INTERNAL},
};

const char *
iotca_strerror(iotca_err err)
{
	if ((unsigned)err >= IOTCA_ERR_COUNT_)
		return "unknown error";
	return err_table[err].text;
}

int
iotca_err_grpc_status(iotca_err err)
{
	if ((unsigned)err >= IOTCA_ERR_COUNT_)
		return IOTCA_GRPC_UNKNOWN;
	return err_table[err].grpc;
}

iotca_err
iotca_err_from_grpc_status(int status)
{
	switch (status) {
	case IOTCA_GRPC_OK:
		return IOTCA_OK;
	case IOTCA_GRPC_CANCELLED:
		return IOTCA_ECANCELED;
	case IOTCA_GRPC_INVALID_ARGUMENT:
		return IOTCA_EINVAL;
	case IOTCA_GRPC_OUT_OF_RANGE:
		return IOTCA_EINVAL;
	case IOTCA_GRPC_DEADLINE_EXCEEDED:
		return IOTCA_ETIMEDOUT;
	case IOTCA_GRPC_NOT_FOUND:
		return IOTCA_ENOENT;
	case IOTCA_GRPC_ALREADY_EXISTS:
		return IOTCA_EEXIST;
	case IOTCA_GRPC_PERMISSION_DENIED:
		return IOTCA_EPERM;
	case IOTCA_GRPC_RESOURCE_EXHAUSTED:
		return IOTCA_ELIMIT;
	case IOTCA_GRPC_FAILED_PRECONDITION:
		return IOTCA_EPRECOND;
	case IOTCA_GRPC_ABORTED:
		return IOTCA_EABORTED;
	case IOTCA_GRPC_UNIMPLEMENTED:
		return IOTCA_ENOTSUP;
	case IOTCA_GRPC_UNAVAILABLE:
		return IOTCA_EUNAVAIL;
	case IOTCA_GRPC_UNAUTHENTICATED:
		return IOTCA_EUNAUTH;
	default:
		return IOTCA_EINTERNAL;
	}
}

iotca_err
iotca_errbuf_set(iotca_errbuf *eb, iotca_err code, const char *fmt, ...)
{
	va_list ap;

	if (eb == NULL)
		return code;
	eb->code = code;
	va_start(ap, fmt);
	vsnprintf(eb->msg, sizeof(eb->msg), fmt, ap);
	va_end(ap);
	return code;
}

void
iotca_errbuf_clear(iotca_errbuf *eb)
{
	if (eb == NULL)
		return;
	eb->code = IOTCA_OK;
	eb->msg[0] = '\0';
}

const char *
iotca_errbuf_msg(const iotca_errbuf *eb)
{
	if (eb == NULL)
		return "";
	if (eb->msg[0] != '\0')
		return eb->msg;
	return iotca_strerror(eb->code);
}
