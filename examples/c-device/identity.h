/*
 * identity.h - the identity message iotca's edge sends a device right after
 * CONNACK, on /ext/auth/identity/response:
 *
 *   {"productKey":"a1B2c3D4e5F","deviceName":"sensor-17"}
 *
 * identity_parse() reads it with a small JSON parser that trusts nothing:
 * the payload is capped, every string is bounded, nesting is limited, and
 * both values must have the documented form, so that they are safe to put
 * into topic names.
 */
#ifndef IOTCA_EXAMPLE_IDENTITY_H
#define IOTCA_EXAMPLE_IDENTITY_H

#include <stddef.h>

/* The largest payload accepted; the edge sends about 60 bytes. */
#define IDENTITY_MAX_PAYLOAD 1024
/* ProductKey: exactly 11 characters of [A-Za-z0-9]. */
#define IDENTITY_PK_LEN 11
/* DeviceName: 4-32 characters of [A-Za-z0-9_.@:-]. */
#define IDENTITY_DN_MIN 4
#define IDENTITY_DN_MAX 32

typedef struct device_identity {
	char product_key[IDENTITY_PK_LEN + 1];
	char device_name[IDENTITY_DN_MAX + 1];
} device_identity;

/* Parses payload (len bytes, not NUL-terminated). Returns 0 with *id
 * filled, or -1 with *why (a static English text) saying what was wrong;
 * *id is written only on success. Members other than productKey and
 * deviceName are skipped; a member given twice is an error. */
int identity_parse(const char *payload, size_t len, device_identity *id,
                   const char **why);

#endif /* IOTCA_EXAMPLE_IDENTITY_H */
