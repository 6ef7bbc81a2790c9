/*
 * rand.h - secrets and identifiers from the operating system's CSPRNG
 * (OpenSSL RAND_bytes). Thread-safe.
 */
#ifndef IOTCA_RAND_H
#define IOTCA_RAND_H

#include <stddef.h>

#include "err/err.h"

/* Fills out with 2*nbytes lowercase hex digits and a NUL. */
iotca_err iotca_rand_hex(char *out, size_t nbytes);

/* Fills out with n characters of [A-Za-z0-9] (uniform) and a NUL. */
iotca_err iotca_rand_alnum(char *out, size_t n);

#endif /* IOTCA_RAND_H */
